/* Exponential backoff with full jitter between retries: the n-th retry waits a uniform random
 * time in [0, min(cap, base * 2^(n-1))], which spreads the retries of many clients instead of
 * synchronising them. Pure: randomness comes from the caller, as a 64-bit value or from a tiny
 * seeded generator the caller owns (one per shard; never rand()). */
#ifndef NX_RESILIENCE_BACKOFF_H
#define NX_RESILIENCE_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define NX_BACKOFF_DEFAULT_BASE_MS 25
#define NX_BACKOFF_DEFAULT_CAP_MS 250
#define NX_BACKOFF_DEFAULT_MAX_ATTEMPTS 3

/* Plain data. */
typedef struct nx_backoff_config {
    uint64_t base_ms;      /* ceiling of the first retry's delay */
    uint64_t cap_ms;       /* no delay is longer */
    uint32_t max_attempts; /* tries in all, the first one included; 1 = never retry */
} nx_backoff_config_t;

/* splitmix64 state: a seeded source of jitter, owned by one thread. */
typedef struct nx_backoff_rng {
    uint64_t state;
} nx_backoff_rng_t;

/** Fills <cfg> with base 25 ms, cap 250 ms, 3 attempts. */
void nx_backoff_config_default(nx_backoff_config_t *cfg);
/** Seeds <rng> with <seed> (any value, 0 included); the same seed gives the same sequence. */
void nx_backoff_rng_seed(nx_backoff_rng_t *rng, uint64_t seed);
/** Returns the next 64 uniformly distributed bits of <rng> and advances it. */
uint64_t nx_backoff_rng_next(nx_backoff_rng_t *rng);
/** The longest delay in ms for retry number <retry> (1-based; 0 counts as 1):
 *  min(cap_ms, base_ms * 2^(retry-1)), without overflow for any <retry>. */
uint64_t nx_backoff_ceiling_ms(const nx_backoff_config_t *cfg, uint32_t retry);
/** The delay in ms before retry number <retry> (1-based; 0 counts as 1): <random> (64 uniform
 *  bits) mapped uniformly onto [0, nx_backoff_ceiling_ms(cfg, retry)], both ends included. */
uint64_t nx_backoff_delay_ms(const nx_backoff_config_t *cfg, uint32_t retry, uint64_t random);
/** True when, after <attempts_made> tries (>= 1) failed, retry number <attempts_made> may go:
 *  fewer than max_attempts tries were made and waiting <delay_ms> still leaves time before the
 *  deadline, which is <remaining_ms> away (UINT64_MAX = no deadline). */
bool nx_backoff_should_retry(const nx_backoff_config_t *cfg, uint32_t attempts_made,
                             uint64_t delay_ms, uint64_t remaining_ms);

#endif
