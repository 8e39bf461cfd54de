/* The retry budget: the minimum with no traffic, the ratio of active requests, release and
 * finish moving the limit, exact granted/denied counters, and threads racing for slots never
 * exceeding the limit. */
#include <criterion/criterion.h>

#include "retry_budget.h"

#include <pthread.h>

static void init_default(nx_retry_budget_t *rb) {
    nx_retry_budget_config_t c;
    nx_retry_budget_config_default(&c);
    cr_assert_eq(c.ratio_percent, 20);
    cr_assert_eq(c.minimum, 3);
    nx_retry_budget_init(rb, &c);
}

Test(retry_budget, the_minimum_is_allowed_with_no_traffic) {
    nx_retry_budget_t rb;
    init_default(&rb);
    cr_assert_eq(nx_retry_budget_limit(&rb), 3);
    for (int i = 0; i < 3; i++)
        cr_assert(nx_retry_budget_try_acquire(&rb));
    cr_assert_not(nx_retry_budget_try_acquire(&rb));
    cr_assert_eq(nx_retry_budget_in_flight(&rb), 3);
    nx_retry_budget_release(&rb);
    cr_assert(nx_retry_budget_try_acquire(&rb), "a released slot can be taken again");
    cr_assert_not(nx_retry_budget_try_acquire(&rb));
    cr_assert_eq(nx_retry_budget_granted(&rb), 4);
    cr_assert_eq(nx_retry_budget_denied(&rb), 2);
}

Test(retry_budget, the_ratio_of_active_requests_sets_the_limit) {
    nx_retry_budget_t rb;
    init_default(&rb);
    for (int i = 0; i < 14; i++)
        nx_retry_budget_request_started(&rb);
    cr_assert_eq(nx_retry_budget_limit(&rb), 3, "20%% of 14 is 2, below the minimum");
    for (int i = 14; i < 100; i++)
        nx_retry_budget_request_started(&rb);
    cr_assert_eq(nx_retry_budget_active(&rb), 100);
    cr_assert_eq(nx_retry_budget_limit(&rb), 20);
    for (int i = 0; i < 20; i++)
        cr_assert(nx_retry_budget_try_acquire(&rb), "retry %d", i);
    cr_assert_not(nx_retry_budget_try_acquire(&rb), "the 21st retry of 100 requests");
    nx_retry_budget_request_started(&rb);
    nx_retry_budget_request_started(&rb);
    nx_retry_budget_request_started(&rb);
    nx_retry_budget_request_started(&rb);
    cr_assert_not(nx_retry_budget_try_acquire(&rb), "104 requests: still 20 (floor)");
    nx_retry_budget_request_started(&rb);
    cr_assert(nx_retry_budget_try_acquire(&rb), "105 requests: 21");
    /* Requests finishing lower the limit below the retries in flight: no new retry. */
    for (int i = 0; i < 55; i++)
        nx_retry_budget_request_finished(&rb);
    cr_assert_eq(nx_retry_budget_limit(&rb), 10);
    cr_assert_not(nx_retry_budget_try_acquire(&rb));
    for (int i = 0; i < 11; i++)
        nx_retry_budget_release(&rb);
    cr_assert_eq(nx_retry_budget_in_flight(&rb), 10);
    cr_assert_not(nx_retry_budget_try_acquire(&rb));
    nx_retry_budget_release(&rb);
    cr_assert(nx_retry_budget_try_acquire(&rb));
}

Test(retry_budget, a_ratio_of_zero_leaves_only_the_minimum) {
    nx_retry_budget_t rb;
    nx_retry_budget_config_t c = {.ratio_percent = 0, .minimum = 1};
    nx_retry_budget_init(&rb, &c);
    for (int i = 0; i < 1000; i++)
        nx_retry_budget_request_started(&rb);
    cr_assert(nx_retry_budget_try_acquire(&rb));
    cr_assert_not(nx_retry_budget_try_acquire(&rb));
    nx_retry_budget_config_t none = {.ratio_percent = 0, .minimum = 0};
    nx_retry_budget_init(&rb, &none);
    cr_assert_not(nx_retry_budget_try_acquire(&rb), "no retries at all");
}

enum { RB_THREADS = 4, RB_ITERS = 50000 };
static nx_retry_budget_t g_rb;
static _Atomic int g_held, g_max_held;
static _Atomic uint64_t g_ok, g_no;

static void *take_and_release(void *arg) {
    for (int i = 0; i < RB_ITERS; i++) {
        if (!nx_retry_budget_try_acquire(&g_rb)) {
            atomic_fetch_add(&g_no, 1);
            continue;
        }
        atomic_fetch_add(&g_ok, 1);
        int v = atomic_fetch_add(&g_held, 1) + 1;
        int m = atomic_load(&g_max_held);
        while (v > m && !atomic_compare_exchange_weak(&g_max_held, &m, v)) {
        }
        atomic_fetch_sub(&g_held, 1);
        nx_retry_budget_release(&g_rb);
    }
    return NULL;
}

Test(retry_budget, racing_threads_never_exceed_the_limit) {
    nx_retry_budget_config_t c = {.ratio_percent = 20, .minimum = 1};
    nx_retry_budget_init(&g_rb, &c);
    for (int i = 0; i < 10; i++)
        nx_retry_budget_request_started(&g_rb); /* limit 2 */
    pthread_t t[RB_THREADS];
    for (int i = 0; i < RB_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, take_and_release, NULL), 0);
    for (int i = 0; i < RB_THREADS; i++)
        pthread_join(t[i], NULL);
    cr_assert_leq(atomic_load(&g_max_held), 2);
    cr_assert_eq(nx_retry_budget_in_flight(&g_rb), 0);
    cr_assert_eq(nx_retry_budget_granted(&g_rb), atomic_load(&g_ok));
    cr_assert_eq(nx_retry_budget_denied(&g_rb), atomic_load(&g_no));
    cr_assert_eq(atomic_load(&g_ok) + atomic_load(&g_no), (uint64_t)RB_THREADS * RB_ITERS);
}
