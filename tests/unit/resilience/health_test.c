/* Replica health with a fake clock: check thresholds in both directions (and runs broken by
 * the other result), degraded, ejection after consecutive failures, growing and capped
 * ejection times, failures during an ejection, forgiveness after clean stretches, and names. */
#include <criterion/criterion.h>

#include "health.h"

static nx_health_config_t cfg(void) {
    return (nx_health_config_t){
        .healthy_threshold = 2,
        .unhealthy_threshold = 3,
        .consecutive_failures = 5,
        .base_ejection_ms = 30000,
        .max_ejection_ms = 100000,
    };
}

static void fail_calls(nx_health_t *h, uint64_t now, int n) {
    for (int i = 0; i < n; i++)
        nx_health_call_result(h, now, false);
}

Test(health, starts_unknown_and_available) {
    nx_health_t h;
    nx_health_config_t c = cfg();
    nx_health_init(&h, &c);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_UNKNOWN);
    cr_assert(nx_health_available(&h, 0));
    cr_assert_eq(nx_health_ejected_for_ms(&h, 0), 0);
    nx_health_config_t d;
    nx_health_config_default(&d);
    cr_assert_eq(d.healthy_threshold, 2);
    cr_assert_eq(d.unhealthy_threshold, 3);
    cr_assert_eq(d.consecutive_failures, 5);
    cr_assert_eq(d.base_ejection_ms, 30000);
    cr_assert_eq(d.max_ejection_ms, 300000);
}

Test(health, names) {
    cr_assert_str_eq(nx_health_status_name(NX_HEALTH_HEALTHY), "healthy");
    cr_assert_str_eq(nx_health_status_name(NX_HEALTH_DEGRADED), "degraded");
    cr_assert_str_eq(nx_health_status_name(NX_HEALTH_UNHEALTHY), "unhealthy");
    cr_assert_str_eq(nx_health_status_name(NX_HEALTH_EJECTED), "ejected");
    cr_assert_str_eq(nx_health_status_name(NX_HEALTH_UNKNOWN), "unknown");
    cr_assert_str_eq(nx_health_status_name((nx_health_status_t)42), "invalid");
}

Test(health, check_thresholds_flip_the_verdict_in_both_directions) {
    nx_health_t h;
    nx_health_config_t c = cfg();
    nx_health_init(&h, &c);
    nx_health_check_result(&h, 0, true);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_UNKNOWN, "1 of 2 passing checks");
    nx_health_check_result(&h, 0, true);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_HEALTHY);
    nx_health_check_result(&h, 0, false);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_DEGRADED);
    cr_assert(nx_health_available(&h, 0), "degraded still takes calls");
    nx_health_check_result(&h, 0, false);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_DEGRADED);
    nx_health_check_result(&h, 0, false);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_UNHEALTHY, "3 failing checks in a row");
    cr_assert_not(nx_health_available(&h, 0));
    nx_health_check_result(&h, 0, true);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_UNHEALTHY, "1 pass is not enough");
    cr_assert_not(nx_health_available(&h, 0));
    nx_health_check_result(&h, 0, true);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_HEALTHY);
    cr_assert(nx_health_available(&h, 0));
}

Test(health, a_run_broken_by_the_other_result_starts_over) {
    nx_health_t h;
    nx_health_config_t c = cfg();
    nx_health_init(&h, &c);
    nx_health_check_result(&h, 0, true);
    nx_health_check_result(&h, 0, true);
    for (int i = 0; i < 10; i++) {
        nx_health_check_result(&h, 0, false);
        nx_health_check_result(&h, 0, false);
        nx_health_check_result(&h, 0, true);
    }
    cr_assert(nx_health_available(&h, 0), "never 3 failures in a row");
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_HEALTHY);
    nx_health_check_result(&h, 0, false);
    nx_health_check_result(&h, 0, false);
    nx_health_check_result(&h, 0, false);
    nx_health_check_result(&h, 0, true);
    nx_health_check_result(&h, 0, false);
    nx_health_check_result(&h, 0, true);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_UNHEALTHY, "never 2 passes in a row");
}

Test(health, consecutive_call_failures_eject_for_base_ejection_ms) {
    nx_health_t h;
    nx_health_config_t c = cfg();
    nx_health_init(&h, &c);
    fail_calls(&h, 1000, 4);
    cr_assert_eq(nx_health_status(&h, 1000), NX_HEALTH_DEGRADED);
    cr_assert(nx_health_available(&h, 1000));
    nx_health_call_result(&h, 1000, true);
    fail_calls(&h, 1000, 4);
    cr_assert(nx_health_available(&h, 1000), "a success broke the run");
    cr_assert(nx_health_call_result(&h, 2000, false), "the 5th failure in a row ejects");
    cr_assert_eq(nx_health_status(&h, 2000), NX_HEALTH_EJECTED);
    cr_assert_not(nx_health_available(&h, 2000));
    cr_assert_eq(nx_health_ejected_for_ms(&h, 2000), 30000);
    cr_assert_eq(nx_health_ejected_for_ms(&h, 31999), 1);
    cr_assert_not(nx_health_available(&h, 31999));
    cr_assert(nx_health_available(&h, 32000));
    cr_assert_eq(nx_health_status(&h, 32000), NX_HEALTH_UNKNOWN, "back, no pending failure");
    cr_assert_eq(h.ejections_total, 1);
}

Test(health, ejections_grow_with_their_number_up_to_the_cap) {
    nx_health_t h;
    nx_health_config_t c = cfg();
    nx_health_init(&h, &c);
    static const uint64_t want[] = {30000, 60000, 90000, 100000, 100000};
    uint64_t now = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        fail_calls(&h, now, 5);
        cr_assert_eq(nx_health_ejected_for_ms(&h, now), want[i], "ejection %zu lasts %llu", i + 1,
                     (unsigned long long)nx_health_ejected_for_ms(&h, now));
        now += want[i]; /* fails again the moment it is back */
    }
    cr_assert_eq(h.ejections_total, 5);
}

Test(health, failures_during_an_ejection_neither_extend_it_nor_count_after) {
    nx_health_t h;
    nx_health_config_t c = cfg();
    nx_health_init(&h, &c);
    fail_calls(&h, 0, 5);
    for (int i = 0; i < 20; i++)
        cr_assert_not(nx_health_call_result(&h, 100, false));
    cr_assert_eq(nx_health_ejected_for_ms(&h, 100), 29900);
    fail_calls(&h, 30000, 4);
    cr_assert(nx_health_available(&h, 30000), "it needs 5 fresh failures");
    cr_assert(nx_health_call_result(&h, 30000, false));
    cr_assert_eq(nx_health_ejected_for_ms(&h, 30000), 60000);
}

Test(health, a_clean_stretch_forgives_past_ejections) {
    nx_health_t h;
    nx_health_config_t c = cfg();
    nx_health_init(&h, &c);
    fail_calls(&h, 0, 5);      /* 1st: 30 s, back at 30 000 */
    fail_calls(&h, 30000, 5);  /* 2nd: 60 s, back at 90 000 */
    fail_calls(&h, 189999, 5); /* 99 999 ms clean: not enough, 3rd: 90 s */
    cr_assert_eq(nx_health_ejected_for_ms(&h, 189999), 90000);
    uint64_t back = 189999 + 90000;
    fail_calls(&h, back + 100000, 5); /* one max_ejection_ms clean: the 4th counts as the 3rd */
    cr_assert_eq(nx_health_ejected_for_ms(&h, back + 100000), 90000);
    back += 100000 + 90000;
    fail_calls(&h, back + 250000, 5); /* two stretches: back to the 2nd */
    cr_assert_eq(nx_health_ejected_for_ms(&h, back + 250000), 60000);
    back += 250000 + 60000;
    fail_calls(&h, back + 1000000, 5); /* long gone: like the first time */
    cr_assert_eq(nx_health_ejected_for_ms(&h, back + 1000000), 30000);
    cr_assert_eq(h.ejections_total, 6);
}

Test(health, ejection_can_be_switched_off_and_never_overflows) {
    nx_health_t h;
    nx_health_config_t c = cfg();
    c.consecutive_failures = 0;
    nx_health_init(&h, &c);
    fail_calls(&h, 0, 1000);
    cr_assert(nx_health_available(&h, 0));
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_DEGRADED);

    c = cfg();
    c.base_ejection_ms = UINT64_MAX / 2;
    c.max_ejection_ms = UINT64_MAX;
    nx_health_init(&h, &c);
    fail_calls(&h, 10, 5);
    cr_assert_eq(nx_health_ejected_for_ms(&h, 10), UINT64_MAX / 2);
    uint64_t t = 10 + UINT64_MAX / 2;
    fail_calls(&h, t, 5); /* 2 * base would pass UINT64_MAX: capped, then saturated */
    cr_assert_eq(h.ejected_until_ms, UINT64_MAX);
    cr_assert_not(nx_health_available(&h, UINT64_MAX - 1));
}

Test(health, ejected_wins_over_the_check_verdict_and_unhealthy_over_degraded) {
    nx_health_t h;
    nx_health_config_t c = cfg();
    nx_health_init(&h, &c);
    nx_health_check_result(&h, 0, true);
    nx_health_check_result(&h, 0, true);
    fail_calls(&h, 0, 5);
    cr_assert_eq(nx_health_status(&h, 0), NX_HEALTH_EJECTED);
    cr_assert_eq(nx_health_status(&h, 30000), NX_HEALTH_HEALTHY);
    for (int i = 0; i < 3; i++)
        nx_health_check_result(&h, 30000, false);
    nx_health_call_result(&h, 30000, false);
    cr_assert_eq(nx_health_status(&h, 30000), NX_HEALTH_UNHEALTHY);
}
