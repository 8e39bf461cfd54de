/* Backoff delays: capped exponential ceilings, full jitter, and the retry/no-retry decision.
 * The jitter maps 64 random bits onto the range with a multiply (Lemire), which uses the high
 * bits and has no modulo bias worth the name for ranges this small. */
#include "backoff.h"

void nx_backoff_config_default(nx_backoff_config_t *cfg) {
    *cfg = (nx_backoff_config_t){
        .base_ms = NX_BACKOFF_DEFAULT_BASE_MS,
        .cap_ms = NX_BACKOFF_DEFAULT_CAP_MS,
        .max_attempts = NX_BACKOFF_DEFAULT_MAX_ATTEMPTS,
    };
}

void nx_backoff_rng_seed(nx_backoff_rng_t *rng, uint64_t seed) {
    rng->state = seed;
}

uint64_t nx_backoff_rng_next(nx_backoff_rng_t *rng) {
    uint64_t z = (rng->state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

uint64_t nx_backoff_ceiling_ms(const nx_backoff_config_t *cfg, uint32_t retry) {
    uint32_t shift = retry > 0 ? retry - 1 : 0;
    /* base << shift <= cap exactly when base <= cap >> shift, and then it cannot overflow. */
    if (shift >= 64 || cfg->base_ms > cfg->cap_ms >> shift) return cfg->cap_ms;
    return cfg->base_ms << shift;
}

uint64_t nx_backoff_delay_ms(const nx_backoff_config_t *cfg, uint32_t retry, uint64_t random) {
    uint64_t ceiling = nx_backoff_ceiling_ms(cfg, retry);
    if (ceiling == UINT64_MAX) return random;
    return (uint64_t)(((unsigned __int128)random * (ceiling + 1)) >> 64);
}

bool nx_backoff_should_retry(const nx_backoff_config_t *cfg, uint32_t attempts_made,
                             uint64_t delay_ms, uint64_t remaining_ms) {
    return attempts_made < cfg->max_attempts && delay_ms < remaining_ms;
}
