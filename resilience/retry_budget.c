/* The retry budget: two counters and a compare-and-swap. The limit is computed from a fresh
 * read of the active count; that read and the swap are not one atomic step, which only means
 * a retry racing a request start or finish sees the budget as it was a moment earlier. */
#include "retry_budget.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the retry budget needs lock-free 64-bit atomics");

void nx_retry_budget_config_default(nx_retry_budget_config_t *cfg) {
    *cfg = (nx_retry_budget_config_t){
        .ratio_percent = NX_RETRY_BUDGET_DEFAULT_RATIO_PERCENT,
        .minimum = NX_RETRY_BUDGET_DEFAULT_MINIMUM,
    };
}

void nx_retry_budget_init(nx_retry_budget_t *rb, const nx_retry_budget_config_t *cfg) {
    rb->cfg = *cfg;
    atomic_init(&rb->active, 0);
    atomic_init(&rb->retries, 0);
    atomic_init(&rb->granted, 0);
    atomic_init(&rb->denied, 0);
}

void nx_retry_budget_request_started(nx_retry_budget_t *rb) {
    atomic_fetch_add_explicit(&rb->active, 1, memory_order_relaxed);
}

void nx_retry_budget_request_finished(nx_retry_budget_t *rb) {
    atomic_fetch_sub_explicit(&rb->active, 1, memory_order_relaxed);
}

/* A count is signed so that an unmatched finish or release shows up as a negative number in a
 * debugger instead of wrapping to 2^64; it is read as 0. */
static uint64_t read_count(_Atomic int64_t *c) {
    int64_t v = atomic_load_explicit(c, memory_order_relaxed);
    return v > 0 ? (uint64_t)v : 0;
}

uint64_t nx_retry_budget_limit(nx_retry_budget_t *rb) {
    uint64_t by_ratio = read_count(&rb->active) * rb->cfg.ratio_percent / 100;
    return by_ratio > rb->cfg.minimum ? by_ratio : rb->cfg.minimum;
}

bool nx_retry_budget_try_acquire(nx_retry_budget_t *rb) {
    int64_t cur = atomic_load_explicit(&rb->retries, memory_order_relaxed);
    for (;;) {
        uint64_t limit = nx_retry_budget_limit(rb);
        if (cur >= 0 && (uint64_t)cur >= limit) {
            atomic_fetch_add_explicit(&rb->denied, 1, memory_order_relaxed);
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(&rb->retries, &cur, cur + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    atomic_fetch_add_explicit(&rb->granted, 1, memory_order_relaxed);
    return true;
}

void nx_retry_budget_release(nx_retry_budget_t *rb) {
    atomic_fetch_sub_explicit(&rb->retries, 1, memory_order_relaxed);
}

uint64_t nx_retry_budget_active(nx_retry_budget_t *rb) {
    return read_count(&rb->active);
}

uint64_t nx_retry_budget_in_flight(nx_retry_budget_t *rb) {
    return read_count(&rb->retries);
}

uint64_t nx_retry_budget_granted(nx_retry_budget_t *rb) {
    return atomic_load_explicit(&rb->granted, memory_order_relaxed);
}

uint64_t nx_retry_budget_denied(nx_retry_budget_t *rb) {
    return atomic_load_explicit(&rb->denied, memory_order_relaxed);
}
