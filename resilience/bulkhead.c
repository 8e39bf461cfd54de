/* The bulkhead: a compare-and-swap on the in-flight count, so the count never goes past the
 * limit even for an instant (an add-then-undo would make a racing caller see a full bulkhead
 * that is not). */
#include "bulkhead.h"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the bulkhead needs lock-free 32-bit atomics");

void nx_bulkhead_init(nx_bulkhead_t *bh, uint32_t max_concurrent) {
    bh->max_concurrent = max_concurrent;
    atomic_init(&bh->in_flight, 0);
    atomic_init(&bh->admitted, 0);
    atomic_init(&bh->rejected, 0);
}

bool nx_bulkhead_try_enter(nx_bulkhead_t *bh) {
    uint32_t limit = bh->max_concurrent > 0 ? bh->max_concurrent : UINT32_MAX;
    uint32_t cur = atomic_load_explicit(&bh->in_flight, memory_order_relaxed);
    do {
        if (cur >= limit) {
            atomic_fetch_add_explicit(&bh->rejected, 1, memory_order_relaxed);
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(&bh->in_flight, &cur, cur + 1,
                                                    memory_order_acquire, memory_order_relaxed));
    atomic_fetch_add_explicit(&bh->admitted, 1, memory_order_relaxed);
    return true;
}

void nx_bulkhead_leave(nx_bulkhead_t *bh) {
    atomic_fetch_sub_explicit(&bh->in_flight, 1, memory_order_release);
}

uint32_t nx_bulkhead_in_flight(nx_bulkhead_t *bh) {
    return atomic_load_explicit(&bh->in_flight, memory_order_relaxed);
}

uint64_t nx_bulkhead_admitted(nx_bulkhead_t *bh) {
    return atomic_load_explicit(&bh->admitted, memory_order_relaxed);
}

uint64_t nx_bulkhead_rejected(nx_bulkhead_t *bh) {
    return atomic_load_explicit(&bh->rejected, memory_order_relaxed);
}
