/* The bulkhead: the limit, immediate rejection, leave freeing a place, exact counters, no limit
 * at 0, and threads racing for places never exceeding the limit. */
#include <criterion/criterion.h>

#include "bulkhead.h"

#include <pthread.h>
#include <sched.h>

Test(bulkhead, admits_up_to_the_limit_and_rejects_the_rest_at_once) {
    nx_bulkhead_t bh;
    nx_bulkhead_init(&bh, 2);
    cr_assert(nx_bulkhead_try_enter(&bh));
    cr_assert(nx_bulkhead_try_enter(&bh));
    cr_assert_not(nx_bulkhead_try_enter(&bh));
    cr_assert_not(nx_bulkhead_try_enter(&bh));
    cr_assert_eq(nx_bulkhead_in_flight(&bh), 2);
    nx_bulkhead_leave(&bh);
    cr_assert_eq(nx_bulkhead_in_flight(&bh), 1);
    cr_assert(nx_bulkhead_try_enter(&bh));
    cr_assert_not(nx_bulkhead_try_enter(&bh));
    nx_bulkhead_leave(&bh);
    nx_bulkhead_leave(&bh);
    cr_assert_eq(nx_bulkhead_in_flight(&bh), 0);
    cr_assert_eq(nx_bulkhead_admitted(&bh), 3);
    cr_assert_eq(nx_bulkhead_rejected(&bh), 3);
}

Test(bulkhead, a_limit_of_one_serialises) {
    nx_bulkhead_t bh;
    nx_bulkhead_init(&bh, 1);
    for (int i = 0; i < 10; i++) {
        cr_assert(nx_bulkhead_try_enter(&bh));
        cr_assert_not(nx_bulkhead_try_enter(&bh));
        nx_bulkhead_leave(&bh);
    }
    cr_assert_eq(nx_bulkhead_admitted(&bh), 10);
    cr_assert_eq(nx_bulkhead_rejected(&bh), 10);
}

Test(bulkhead, zero_means_no_limit) {
    nx_bulkhead_t bh;
    nx_bulkhead_init(&bh, 0);
    for (int i = 0; i < 100000; i++)
        cr_assert(nx_bulkhead_try_enter(&bh));
    cr_assert_eq(nx_bulkhead_in_flight(&bh), 100000);
    cr_assert_eq(nx_bulkhead_rejected(&bh), 0);
}

enum { BH_THREADS = 4, BH_ITERS = 50000, BH_MAX = 3 };
static nx_bulkhead_t g_bh;
static _Atomic int g_inside, g_max_inside;
static _Atomic uint64_t g_in, g_out;

static void *enter_and_leave(void *arg) {
    for (int i = 0; i < BH_ITERS; i++) {
        if (!nx_bulkhead_try_enter(&g_bh)) {
            atomic_fetch_add(&g_out, 1);
            continue;
        }
        atomic_fetch_add(&g_in, 1);
        int v = atomic_fetch_add(&g_inside, 1) + 1;
        int m = atomic_load(&g_max_inside);
        while (v > m && !atomic_compare_exchange_weak(&g_max_inside, &m, v)) {
        }
        if (i % 16 == 0) sched_yield();
        atomic_fetch_sub(&g_inside, 1);
        nx_bulkhead_leave(&g_bh);
    }
    return NULL;
}

Test(bulkhead, racing_threads_never_exceed_the_limit) {
    nx_bulkhead_init(&g_bh, BH_MAX);
    pthread_t t[BH_THREADS];
    for (int i = 0; i < BH_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, enter_and_leave, NULL), 0);
    for (int i = 0; i < BH_THREADS; i++)
        pthread_join(t[i], NULL);
    cr_assert_leq(atomic_load(&g_max_inside), BH_MAX);
    cr_assert_eq(nx_bulkhead_in_flight(&g_bh), 0);
    cr_assert_eq(nx_bulkhead_admitted(&g_bh), atomic_load(&g_in));
    cr_assert_eq(nx_bulkhead_rejected(&g_bh), atomic_load(&g_out));
    cr_assert_eq(atomic_load(&g_in) + atomic_load(&g_out), (uint64_t)BH_THREADS * BH_ITERS);
    cr_assert_gt(atomic_load(&g_out), 0, "4 threads on 3 places: some must be turned away");
}
