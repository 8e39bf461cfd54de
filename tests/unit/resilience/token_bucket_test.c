/* The token bucket with a fake clock: starts full, exact refill times (also for rates that do
 * not divide a second), the cap after idling, all-or-nothing takes, the wait for Retry-After,
 * per-minute rates, bad configs, a lagging clock, and threads racing for a fixed supply. */
#include <criterion/criterion.h>

#include "nexus/errors.h"
#include "token_bucket.h"

#include <pthread.h>

Test(token_bucket, starts_full_and_refills_one_token_per_interval) {
    nx_token_bucket_t tb;
    cr_assert_eq(nx_token_bucket_init(&tb, 5, 10, 1000), 0); /* 10/s: a token every 100 ms */
    cr_assert_eq(nx_token_bucket_available(&tb, 1000), 5);
    for (int i = 0; i < 5; i++)
        cr_assert(nx_token_bucket_take(&tb, 1, 1000));
    cr_assert_not(nx_token_bucket_take(&tb, 1, 1000));
    cr_assert_eq(nx_token_bucket_available(&tb, 1000), 0);
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 1, 1000), 100);
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 1, 1060), 40);
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 3, 1000), 300);
    cr_assert_not(nx_token_bucket_take(&tb, 1, 1099));
    cr_assert(nx_token_bucket_take(&tb, 1, 1100));
    cr_assert_not(nx_token_bucket_take(&tb, 1, 1100));
    cr_assert_eq(nx_token_bucket_available(&tb, 1350), 2);
    cr_assert_eq(nx_token_bucket_taken(&tb), 6);
    cr_assert_eq(nx_token_bucket_rejected(&tb), 3);
}

Test(token_bucket, idling_never_fills_past_the_capacity) {
    nx_token_bucket_t tb;
    cr_assert_eq(nx_token_bucket_init(&tb, 5, 10, 0), 0);
    cr_assert(nx_token_bucket_take(&tb, 5, 0));
    cr_assert_eq(nx_token_bucket_available(&tb, 3600000), 5);
    cr_assert(nx_token_bucket_take(&tb, 5, 3600000));
    cr_assert_not(nx_token_bucket_take(&tb, 1, 3600000));
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 1, 3600000), 100);
}

Test(token_bucket, a_take_is_all_or_nothing) {
    nx_token_bucket_t tb;
    cr_assert_eq(nx_token_bucket_init(&tb, 5, 10, 0), 0);
    cr_assert(nx_token_bucket_take(&tb, 3, 0));
    cr_assert_not(nx_token_bucket_take(&tb, 3, 0), "2 left");
    cr_assert_eq(nx_token_bucket_available(&tb, 0), 2, "the failed take took nothing");
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 3, 0), 100);
    cr_assert(nx_token_bucket_take(&tb, 2, 0));
    cr_assert_not(nx_token_bucket_take(&tb, 6, 999999), "more than the capacity");
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 6, 0), UINT64_MAX);
    cr_assert(nx_token_bucket_take(&tb, 0, 0), "nothing is always there");
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 0, 0), 0);
}

Test(token_bucket, rates_that_do_not_divide_a_second_are_exact) {
    nx_token_bucket_t tb;
    cr_assert_eq(nx_token_bucket_init(&tb, 2, 3, 0), 0); /* a token every 333.33 ms */
    cr_assert(nx_token_bucket_take(&tb, 2, 0));
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 1, 0), 334, "rounded up");
    cr_assert_not(nx_token_bucket_take(&tb, 1, 333));
    cr_assert(nx_token_bucket_take(&tb, 1, 334));
    /* A consumer polling every ms never lets the bucket fill, so no fraction of a token is lost:
     * the k-th refill is taken at exactly ceil(k * 1000 / 3) ms, the 10th at 3334. */
    uint64_t got = 1, last = 334;
    for (uint64_t now = 335; now <= 3334; now++) {
        if (!nx_token_bucket_take(&tb, 1, now)) continue;
        got++;
        cr_assert_eq(now, (got * 1000 + 2) / 3, "refill %llu at %llu", (unsigned long long)got,
                     (unsigned long long)now);
        last = now;
    }
    cr_assert_eq(got, 10);
    cr_assert_eq(last, 3334);
}

Test(token_bucket, per_minute_rates) {
    nx_token_bucket_t tb;
    cr_assert_eq(nx_token_bucket_init_rate(&tb, 2, 30, 60000, 500), 0); /* every 2000 ms */
    cr_assert(nx_token_bucket_take(&tb, 2, 500));
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 1, 500), 2000);
    cr_assert_eq(nx_token_bucket_wait_ms(&tb, 2, 500), 4000);
    cr_assert_not(nx_token_bucket_take(&tb, 1, 2499));
    cr_assert(nx_token_bucket_take(&tb, 1, 2500));
}

Test(token_bucket, rejects_bad_configs) {
    nx_token_bucket_t tb;
    cr_assert_eq(nx_token_bucket_init(&tb, 0, 10, 0), NX_ECONFIG);
    cr_assert_eq(nx_token_bucket_init(&tb, 10, 0, 0), NX_ECONFIG);
    cr_assert_eq(nx_token_bucket_init_rate(&tb, 10, 1, 0, 0), NX_ECONFIG);
    cr_assert_eq(nx_token_bucket_init_rate(&tb, UINT32_MAX, 1, UINT64_C(1) << 31, 0), NX_ECONFIG);
    cr_assert_eq(nx_token_bucket_init_rate(&tb, UINT32_MAX, UINT32_MAX, 1000, 0), 0);
    cr_assert(nx_token_bucket_take(&tb, UINT32_MAX, 0));
    cr_assert_not(nx_token_bucket_take(&tb, 1, 0));
}

Test(token_bucket, a_lagging_or_huge_clock_is_handled) {
    nx_token_bucket_t tb;
    cr_assert_eq(nx_token_bucket_init(&tb, 2, 1, 10000), 0);
    cr_assert(nx_token_bucket_take(&tb, 1, 9000), "a clock before init counts as init");
    cr_assert(nx_token_bucket_take(&tb, 1, 9000));
    cr_assert_not(nx_token_bucket_take(&tb, 1, 10999));
    cr_assert(nx_token_bucket_take(&tb, 1, 11000));
    cr_assert(nx_token_bucket_take(&tb, 2, UINT64_MAX), "full again, no overflow");
    cr_assert_not(nx_token_bucket_take(&tb, 1, UINT64_MAX));
}

enum { TB_THREADS = 4, TB_ITERS = 20000, TB_CAPACITY = 1000 };
static nx_token_bucket_t g_tb;
static _Atomic uint64_t g_got;

static void *take_many(void *arg) {
    for (int i = 0; i < TB_ITERS; i++)
        if (nx_token_bucket_take(&g_tb, 1, 5000)) atomic_fetch_add(&g_got, 1);
    return NULL;
}

Test(token_bucket, racing_threads_get_exactly_the_supply) {
    cr_assert_eq(nx_token_bucket_init(&g_tb, TB_CAPACITY, 1, 5000), 0);
    pthread_t t[TB_THREADS];
    for (int i = 0; i < TB_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, take_many, NULL), 0);
    for (int i = 0; i < TB_THREADS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&g_got), TB_CAPACITY, "a full bucket and no time passing");
    cr_assert_eq(nx_token_bucket_taken(&g_tb), TB_CAPACITY);
    cr_assert_eq(nx_token_bucket_rejected(&g_tb), (uint64_t)TB_THREADS * TB_ITERS - TB_CAPACITY);
}
