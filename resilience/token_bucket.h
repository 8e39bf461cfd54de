/* Token-bucket rate limiter, shareable between shards: holds up to <capacity> tokens, refills
 * <refill_tokens> every <refill_period_ms> continuously (not in steps), and a take of n tokens
 * succeeds or fails at once. Lock-free: kept as GCRA, a single atomic "theoretical arrival
 * time" that a take advances by compare-and-swap. The clock is passed in as now_ms. */
#ifndef NX_RESILIENCE_TOKEN_BUCKET_H
#define NX_RESILIENCE_TOKEN_BUCKET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Time is counted in units of 1 / (refill_tokens * refill_period_ms) of a period: one ms is
 * refill_tokens units, one token is refill_period_ms units, so every rate is exact in integers.
 * One per limited thing (a client, a route), shared by pointer; any thread may take. Embedded,
 * no heap: nothing to dispose. */
typedef struct nx_token_bucket {
    uint64_t origin_ms;    /* clock at init; times are kept relative to it */
    uint64_t capacity;     /* tokens in a full bucket */
    uint64_t unit_per_ms;  /* = refill_tokens */
    uint64_t unit_per_tok; /* = refill_period_ms */
    uint64_t burst_units;  /* = capacity * unit_per_tok */
    _Atomic uint64_t tat;  /* units since origin at which the bucket will be full again */
    _Atomic uint64_t taken, rejected;
} nx_token_bucket_t;

/** Makes <tb> a full bucket of <capacity> tokens at <now_ms> refilling <refill_per_sec> tokens a
 *  second; returns 0, or NX_ECONFIG when a value is 0 or too large. Before sharing <tb>. */
int nx_token_bucket_init(nx_token_bucket_t *tb, uint32_t capacity, uint32_t refill_per_sec,
                         uint64_t now_ms);
/** Like nx_token_bucket_init with a refill of <refill_tokens> every <refill_period_ms>, e.g.
 *  30 a minute as (30, 60000); capacity * period must stay below 2^62. */
int nx_token_bucket_init_rate(nx_token_bucket_t *tb, uint32_t capacity, uint32_t refill_tokens,
                              uint64_t refill_period_ms, uint64_t now_ms);
/** Takes <n> tokens at <now_ms> if the bucket holds that many: true; otherwise false and
 *  nothing is taken (also when <n> exceeds the capacity). Taking 0 always succeeds. */
bool nx_token_bucket_take(nx_token_bucket_t *tb, uint32_t n, uint64_t now_ms);
/** Milliseconds from <now_ms> until <n> tokens will be there, rounded up (for Retry-After):
 *  0 when they are there now, UINT64_MAX when <n> exceeds the capacity. */
uint64_t nx_token_bucket_wait_ms(nx_token_bucket_t *tb, uint32_t n, uint64_t now_ms);
/** Whole tokens in the bucket at <now_ms>. */
uint64_t nx_token_bucket_available(nx_token_bucket_t *tb, uint64_t now_ms);
/** Successful takes so far (cumulative, for metrics). */
uint64_t nx_token_bucket_taken(nx_token_bucket_t *tb);
/** Failed takes so far (cumulative, for metrics). */
uint64_t nx_token_bucket_rejected(nx_token_bucket_t *tb);

#endif
