/* Exponential backoff with full jitter: exact ceilings per retry, the cap, retry 1 and 0, retry
 * numbers far past any shift width, the extremes of the random input, the observed minimum and
 * maximum over many seeded random values, and the retry decision. */
#include <criterion/criterion.h>

#include "backoff.h"

static nx_backoff_config_t defaults(void) {
    nx_backoff_config_t c;
    nx_backoff_config_default(&c);
    return c;
}

Test(backoff, defaults_are_25_250_and_3) {
    nx_backoff_config_t c = defaults();
    cr_assert_eq(c.base_ms, 25);
    cr_assert_eq(c.cap_ms, 250);
    cr_assert_eq(c.max_attempts, 3);
}

Test(backoff, ceiling_doubles_per_retry_up_to_the_cap) {
    nx_backoff_config_t c = defaults();
    static const uint64_t want[] = {25, 25, 50, 100, 200, 250, 250, 250};
    for (uint32_t r = 0; r < sizeof(want) / sizeof(want[0]); r++)
        cr_assert_eq(nx_backoff_ceiling_ms(&c, r), want[r], "retry %u: %llu", r,
                     (unsigned long long)nx_backoff_ceiling_ms(&c, r));
}

Test(backoff, huge_retry_numbers_do_not_overflow) {
    nx_backoff_config_t c = defaults();
    static const uint32_t retries[] = {33, 63, 64, 65, 66, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof(retries) / sizeof(retries[0]); i++) {
        cr_assert_eq(nx_backoff_ceiling_ms(&c, retries[i]), 250, "retry %u", retries[i]);
        cr_assert_eq(nx_backoff_delay_ms(&c, retries[i], UINT64_MAX), 250);
        cr_assert_eq(nx_backoff_delay_ms(&c, retries[i], 0), 0);
    }
    /* A cap near 2^64: the doubling itself must stop before it wraps. */
    nx_backoff_config_t big = {.base_ms = UINT64_C(1) << 62, .cap_ms = UINT64_MAX};
    cr_assert_eq(nx_backoff_ceiling_ms(&big, 1), UINT64_C(1) << 62);
    cr_assert_eq(nx_backoff_ceiling_ms(&big, 2), UINT64_C(1) << 63);
    cr_assert_eq(nx_backoff_ceiling_ms(&big, 3), UINT64_MAX);
    cr_assert_eq(nx_backoff_ceiling_ms(&big, 200), UINT64_MAX);
    cr_assert_eq(nx_backoff_delay_ms(&big, 3, 12345), 12345, "the whole 64-bit range");
    nx_backoff_config_t odd = {.base_ms = 3, .cap_ms = 1000};
    cr_assert_eq(nx_backoff_ceiling_ms(&odd, 9), 768);
    cr_assert_eq(nx_backoff_ceiling_ms(&odd, 10), 1000);
}

Test(backoff, a_base_above_the_cap_is_capped_and_a_zero_base_never_waits) {
    nx_backoff_config_t c = {.base_ms = 500, .cap_ms = 100, .max_attempts = 3};
    cr_assert_eq(nx_backoff_ceiling_ms(&c, 1), 100);
    cr_assert_eq(nx_backoff_delay_ms(&c, 1, UINT64_MAX), 100);
    nx_backoff_config_t z = {.base_ms = 0, .cap_ms = 100, .max_attempts = 3};
    cr_assert_eq(nx_backoff_ceiling_ms(&z, 5), 0);
    cr_assert_eq(nx_backoff_delay_ms(&z, 5, UINT64_MAX), 0);
}

Test(backoff, the_random_extremes_map_to_the_range_ends) {
    nx_backoff_config_t c = defaults();
    cr_assert_eq(nx_backoff_delay_ms(&c, 1, 0), 0);
    cr_assert_eq(nx_backoff_delay_ms(&c, 1, UINT64_MAX), 25);
    cr_assert_eq(nx_backoff_delay_ms(&c, 3, UINT64_MAX), 100);
    cr_assert_eq(nx_backoff_delay_ms(&c, 3, UINT64_C(1) << 63), 50, "the middle maps to half");
}

Test(backoff, full_jitter_covers_exactly_zero_to_the_ceiling) {
    nx_backoff_config_t c = defaults();
    nx_backoff_rng_t rng;
    nx_backoff_rng_seed(&rng, 2024);
    for (uint32_t retry = 1; retry <= 7; retry++) {
        uint64_t ceiling = nx_backoff_ceiling_ms(&c, retry);
        static uint32_t hits[251];
        for (size_t i = 0; i < 251; i++)
            hits[i] = 0;
        uint64_t min = UINT64_MAX, max = 0, sum = 0;
        enum { N = 200000 };
        for (int i = 0; i < N; i++) {
            uint64_t d = nx_backoff_delay_ms(&c, retry, nx_backoff_rng_next(&rng));
            cr_assert_leq(d, ceiling, "retry %u delay %llu above %llu", retry,
                          (unsigned long long)d, (unsigned long long)ceiling);
            hits[d]++;
            if (d < min) min = d;
            if (d > max) max = d;
            sum += d;
        }
        cr_assert_eq(min, 0, "retry %u: full jitter reaches 0", retry);
        cr_assert_eq(max, ceiling, "retry %u: and the ceiling", retry);
        for (uint64_t v = 0; v <= ceiling; v++)
            cr_assert_gt(hits[v], 0, "retry %u never gave %llu", retry, (unsigned long long)v);
        /* Uniform: the mean is ceiling / 2 within 2 percent of the ceiling. */
        double mean = (double)sum / N;
        cr_assert(mean > ceiling * 0.48 && mean < ceiling * 0.52, "retry %u mean %.2f", retry,
                  mean);
    }
}

Test(backoff, the_rng_is_splitmix64_and_reproducible) {
    nx_backoff_rng_t a, b;
    nx_backoff_rng_seed(&a, 0);
    cr_assert_eq(nx_backoff_rng_next(&a), UINT64_C(0xe220a8397b1dcdaf));
    cr_assert_eq(nx_backoff_rng_next(&a), UINT64_C(0x6e789e6aa1b965f4));
    nx_backoff_rng_seed(&a, 99);
    nx_backoff_rng_seed(&b, 99);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(nx_backoff_rng_next(&a), nx_backoff_rng_next(&b));
    nx_backoff_rng_seed(&b, 100);
    cr_assert_neq(nx_backoff_rng_next(&a), nx_backoff_rng_next(&b));
}

Test(backoff, should_retry_counts_attempts_and_respects_the_deadline) {
    nx_backoff_config_t c = defaults();
    cr_assert(nx_backoff_should_retry(&c, 1, 10, UINT64_MAX), "1 of 3 tries made");
    cr_assert(nx_backoff_should_retry(&c, 2, 10, UINT64_MAX));
    cr_assert_not(nx_backoff_should_retry(&c, 3, 10, UINT64_MAX), "3 of 3 tries made");
    cr_assert_not(nx_backoff_should_retry(&c, 4, 0, UINT64_MAX));
    cr_assert(nx_backoff_should_retry(&c, 1, 99, 100), "1 ms left after waiting");
    cr_assert_not(nx_backoff_should_retry(&c, 1, 100, 100), "nothing left after waiting");
    cr_assert_not(nx_backoff_should_retry(&c, 1, 0, 0), "the deadline has passed");
    nx_backoff_config_t once = {.base_ms = 25, .cap_ms = 250, .max_attempts = 1};
    cr_assert_not(nx_backoff_should_retry(&once, 1, 0, UINT64_MAX));
}
