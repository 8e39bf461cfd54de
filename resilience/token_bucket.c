/* GCRA: instead of a token count and a last-refill time (two values that would have to change
 * together), keep the time at which the bucket would be full again. A take of n tokens pushes
 * that time n token-intervals later, and is refused when it would land more than a full
 * bucket's worth of intervals after now. One word, one compare-and-swap. */
#include "token_bucket.h"

#include "nexus/errors.h"

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the token bucket needs lock-free 64-bit atomics");

#define UNITS_MAX (UINT64_C(1) << 62)

int nx_token_bucket_init_rate(nx_token_bucket_t *tb, uint32_t capacity, uint32_t refill_tokens,
                              uint64_t refill_period_ms, uint64_t now_ms) {
    if (capacity == 0 || refill_tokens == 0 || refill_period_ms == 0 ||
        refill_period_ms >= UNITS_MAX / capacity)
        return NX_ECONFIG;
    tb->origin_ms = now_ms;
    tb->capacity = capacity;
    tb->unit_per_ms = refill_tokens;
    tb->unit_per_tok = refill_period_ms;
    tb->burst_units = capacity * refill_period_ms;
    atomic_init(&tb->tat, 0);
    atomic_init(&tb->taken, 0);
    atomic_init(&tb->rejected, 0);
    return 0;
}

int nx_token_bucket_init(nx_token_bucket_t *tb, uint32_t capacity, uint32_t refill_per_sec,
                         uint64_t now_ms) {
    return nx_token_bucket_init_rate(tb, capacity, refill_per_sec, 1000, now_ms);
}

/* <now_ms> in units since origin; a clock before origin (another thread's slightly older
 * reading) is origin, and one too far ahead to count in 62 bits saturates. */
static uint64_t now_units(const nx_token_bucket_t *tb, uint64_t now_ms) {
    uint64_t rel = now_ms > tb->origin_ms ? now_ms - tb->origin_ms : 0;
    if (rel >= UNITS_MAX / tb->unit_per_ms) return UNITS_MAX;
    return rel * tb->unit_per_ms;
}

bool nx_token_bucket_take(nx_token_bucket_t *tb, uint32_t n, uint64_t now_ms) {
    if (n == 0) return true;
    if (n > tb->capacity) goto reject;
    uint64_t now = now_units(tb, now_ms);
    uint64_t cost = n * tb->unit_per_tok;
    uint64_t tat = atomic_load_explicit(&tb->tat, memory_order_relaxed);
    uint64_t next;
    do {
        next = (tat > now ? tat : now) + cost;
        if (next - now > tb->burst_units) goto reject;
    } while (!atomic_compare_exchange_weak_explicit(&tb->tat, &tat, next, memory_order_relaxed,
                                                    memory_order_relaxed));
    atomic_fetch_add_explicit(&tb->taken, 1, memory_order_relaxed);
    return true;
reject:
    atomic_fetch_add_explicit(&tb->rejected, 1, memory_order_relaxed);
    return false;
}

uint64_t nx_token_bucket_wait_ms(nx_token_bucket_t *tb, uint32_t n, uint64_t now_ms) {
    if (n > tb->capacity) return UINT64_MAX;
    uint64_t now = now_units(tb, now_ms);
    uint64_t tat = atomic_load_explicit(&tb->tat, memory_order_relaxed);
    /* <n> tokens fit once now >= tat + cost - burst. */
    uint64_t after = tat + n * tb->unit_per_tok;
    if (after <= tb->burst_units || after - tb->burst_units <= now) return 0;
    return (after - tb->burst_units - now + tb->unit_per_ms - 1) / tb->unit_per_ms;
}

uint64_t nx_token_bucket_available(nx_token_bucket_t *tb, uint64_t now_ms) {
    uint64_t now = now_units(tb, now_ms);
    uint64_t tat = atomic_load_explicit(&tb->tat, memory_order_relaxed);
    uint64_t owed = tat > now ? tat - now : 0;
    return owed >= tb->burst_units ? 0 : (tb->burst_units - owed) / tb->unit_per_tok;
}

uint64_t nx_token_bucket_taken(nx_token_bucket_t *tb) {
    return atomic_load_explicit(&tb->taken, memory_order_relaxed);
}

uint64_t nx_token_bucket_rejected(nx_token_bucket_t *tb) {
    return atomic_load_explicit(&tb->rejected, memory_order_relaxed);
}
