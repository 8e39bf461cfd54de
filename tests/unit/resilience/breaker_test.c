/* The circuit breaker with a fake clock: every transition (failure rate, slow-call rate, the
 * minimum number of calls, the sliding window, half-open after the open period, the probe limit,
 * probe failure, slow probes, probe timeouts), Retry-After, late outcomes from a finished period,
 * a clock past 2^40 ms, and several threads hammering one breaker. */
#include <criterion/criterion.h>

#include "breaker.h"
#include "nexus/errors.h"

#include <pthread.h>
#include <sched.h>

static nx_breaker_config_t small_cfg(void) {
    return (nx_breaker_config_t){
        .window_size = 10,
        .minimum_calls = 5,
        .failure_rate_threshold = 50,
        .slow_call_rate_threshold = 60,
        .slow_call_duration_ms = 100,
        .open_duration_ms = 1000,
        .half_open_max_calls = 2,
        .probe_timeout_ms = 500,
    };
}

static void init_small(nx_breaker_t *b) {
    nx_breaker_config_t cfg = small_cfg();
    cr_assert_eq(nx_breaker_init(b, &cfg), 0);
}

/* One call admitted at <start>, finished at <end>; the breaker must admit it. */
static void call(nx_breaker_t *b, uint64_t start, uint64_t end, bool ok) {
    nx_breaker_permit_t p;
    cr_assert(nx_breaker_allow(b, start, &p), "a call at %llu was rejected",
              (unsigned long long)start);
    cr_assert_not(p.probe);
    nx_breaker_record(b, &p, end, ok);
}

/* Five fast failures at <t>: the small breaker opens at <t>. */
static void trip(nx_breaker_t *b, uint64_t t) {
    for (int i = 0; i < 5; i++)
        call(b, t, t, false);
    cr_assert_eq(nx_breaker_state(b), NX_BREAKER_OPEN);
}

static nx_breaker_stats_t stats(nx_breaker_t *b) {
    nx_breaker_stats_t s;
    nx_breaker_stats(b, &s);
    return s;
}

static nx_breaker_window_t window(nx_breaker_t *b) {
    nx_breaker_window_t w;
    nx_breaker_window(b, &w);
    return w;
}

Test(breaker, starts_closed_and_names_its_states) {
    nx_breaker_t b;
    init_small(&b);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 123), 0);
    cr_assert_str_eq(nx_breaker_state_name(NX_BREAKER_CLOSED), "closed");
    cr_assert_str_eq(nx_breaker_state_name(NX_BREAKER_OPEN), "open");
    cr_assert_str_eq(nx_breaker_state_name(NX_BREAKER_HALF_OPEN), "half_open");
    cr_assert_str_eq(nx_breaker_state_name((nx_breaker_state_t)7), "invalid");
    nx_breaker_stats_t s = stats(&b);
    cr_assert_eq(s.calls + s.rejections + s.transitions, 0);
}

Test(breaker, init_rejects_out_of_range_config) {
    nx_breaker_t b;
    nx_breaker_config_t def;
    nx_breaker_config_default(&def);
    cr_assert_eq(nx_breaker_init(&b, &def), 0);
    cr_assert_eq(b.cfg.window_size, 100);
    cr_assert_eq(b.cfg.minimum_calls, 20);
    cr_assert_eq(b.cfg.failure_rate_threshold, 50);
    cr_assert_eq(b.cfg.open_duration_ms, 30000);
    cr_assert_eq(b.cfg.half_open_max_calls, 3);

    nx_breaker_config_t c = small_cfg();
    c.window_size = 0;
    cr_assert_eq(nx_breaker_init(&b, &c), NX_ECONFIG);
    c.window_size = NX_BREAKER_WINDOW_MAX + 1;
    cr_assert_eq(nx_breaker_init(&b, &c), NX_ECONFIG);
    c.window_size = NX_BREAKER_WINDOW_MAX;
    c.minimum_calls = NX_BREAKER_WINDOW_MAX;
    cr_assert_eq(nx_breaker_init(&b, &c), 0, "the largest window is allowed");
    c = small_cfg();
    c.minimum_calls = 11;
    cr_assert_eq(nx_breaker_init(&b, &c), NX_ECONFIG, "minimum beyond the window never opens");
    c = small_cfg();
    c.failure_rate_threshold = 101;
    cr_assert_eq(nx_breaker_init(&b, &c), NX_ECONFIG);
    c = small_cfg();
    c.slow_call_rate_threshold = 101;
    cr_assert_eq(nx_breaker_init(&b, &c), NX_ECONFIG);
    c = small_cfg();
    c.half_open_max_calls = 0;
    cr_assert_eq(nx_breaker_init(&b, &c), NX_ECONFIG);
    c.half_open_max_calls = NX_BREAKER_PROBES_MAX + 1;
    cr_assert_eq(nx_breaker_init(&b, &c), NX_ECONFIG);
    c.half_open_max_calls = NX_BREAKER_PROBES_MAX;
    cr_assert_eq(nx_breaker_init(&b, &c), 0);
    c = small_cfg();
    c.probe_timeout_ms = 0;
    cr_assert_eq(nx_breaker_init(&b, &c), NX_ECONFIG, "a probe must be able to time out");
}

Test(breaker, does_not_open_before_minimum_calls) {
    nx_breaker_t b;
    init_small(&b);
    for (int i = 0; i < 4; i++)
        call(&b, 10, 11, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED, "4 of 4 failed, but 5 are needed");
    nx_breaker_window_t w = window(&b);
    cr_assert_eq(w.calls, 4);
    cr_assert_eq(w.failures, 4);
    call(&b, 12, 13, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN);
    nx_breaker_stats_t s = stats(&b);
    cr_assert_eq(s.calls, 5);
    cr_assert_eq(s.failures, 5);
    cr_assert_eq(s.to_open, 1);
    cr_assert_eq(s.transitions, 1);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 13), 1000, "open from the failure that tripped it");
}

Test(breaker, a_success_that_reaches_the_minimum_can_open) {
    nx_breaker_t b;
    init_small(&b);
    for (int i = 0; i < 4; i++)
        call(&b, 0, 0, false);
    call(&b, 0, 0, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "4 of 5 failed");
}

Test(breaker, opens_exactly_at_the_failure_rate_threshold) {
    nx_breaker_t b;
    init_small(&b);
    call(&b, 0, 1, true);
    call(&b, 0, 1, true);
    call(&b, 0, 1, true);
    call(&b, 0, 1, false);
    call(&b, 0, 1, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED, "2 of 5 is 40%%");
    call(&b, 0, 1, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "3 of 6 is 50%%");
}

Test(breaker, the_window_holds_exactly_the_last_window_size_outcomes) {
    nx_breaker_t b;
    init_small(&b);
    /* 4 failures in 10, never 50% along the way. */
    static const bool first[10] = {1, 1, 0, 1, 0, 1, 0, 1, 0, 1};
    for (int i = 0; i < 10; i++)
        call(&b, 0, 0, first[i]);
    nx_breaker_window_t w = window(&b);
    cr_assert_eq(w.calls, 10);
    cr_assert_eq(w.failures, 4);
    /* Successes push the oldest outcomes out one by one, in order. */
    static const uint32_t failures_left[10] = {4, 4, 3, 3, 2, 2, 1, 1, 0, 0};
    for (int i = 0; i < 10; i++) {
        call(&b, 0, 0, true);
        w = window(&b);
        cr_assert_eq(w.calls, 10, "the window never holds more than 10");
        cr_assert_eq(w.failures, failures_left[i], "after success %d: %u failures", i, w.failures);
    }
    for (uint32_t i = 1; i <= 4; i++) {
        call(&b, 0, 0, false);
        cr_assert_eq(window(&b).failures, i);
        cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    }
    call(&b, 0, 0, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "5 of the last 10");
    cr_assert_eq(stats(&b).calls, 25);
}

Test(breaker, opens_on_the_slow_call_rate) {
    nx_breaker_t b;
    init_small(&b);
    call(&b, 1000, 1100, true); /* exactly slow_call_duration_ms: slow */
    call(&b, 1000, 1099, true); /* one ms less: not slow */
    call(&b, 1000, 1500, true);
    call(&b, 2000, 2050, true);
    nx_breaker_window_t w = window(&b);
    cr_assert_eq(w.calls, 4);
    cr_assert_eq(w.slow, 2);
    cr_assert_eq(w.failures, 0);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED, "fewer than minimum calls");
    call(&b, 3000, 3100, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "3 of 5 slow is 60%%");
    nx_breaker_stats_t s = stats(&b);
    cr_assert_eq(s.slow, 3);
    cr_assert_eq(s.failures, 0);
}

Test(breaker, slow_calls_below_the_slow_rate_do_not_open) {
    nx_breaker_t b;
    init_small(&b);
    call(&b, 0, 100, true);
    call(&b, 0, 100, true);
    for (int i = 0; i < 8; i++)
        call(&b, 0, 10, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    cr_assert_eq(window(&b).slow, 2);
}

Test(breaker, thresholds_of_zero_disable_the_rules) {
    nx_breaker_t b;
    nx_breaker_config_t c = small_cfg();
    c.failure_rate_threshold = 0;
    c.slow_call_rate_threshold = 0;
    cr_assert_eq(nx_breaker_init(&b, &c), 0);
    for (int i = 0; i < 50; i++)
        call(&b, 0, 5000, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    cr_assert_eq(stats(&b).failures, 50);
}

Test(breaker, open_rejects_and_counts_down_retry_after) {
    nx_breaker_t b;
    init_small(&b);
    trip(&b, 5000);
    nx_breaker_permit_t p = {.start_ms = 77, .gen = 77, .probe = true};
    cr_assert_not(nx_breaker_allow(&b, 5000, &p));
    cr_assert_eq(p.start_ms, 0, "a refusal zeroes the permit");
    cr_assert_not(p.probe);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 5000), 1000);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 5400), 600);
    cr_assert_not(nx_breaker_allow(&b, 5999, &p));
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 5999), 1);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 6000), 0);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "half-opening is lazy");
    cr_assert_eq(stats(&b).rejections, 2);
    cr_assert(nx_breaker_allow(&b, 6000, &p));
    cr_assert(p.probe);
    cr_assert_eq(p.start_ms, 6000);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_HALF_OPEN);
    nx_breaker_stats_t s = stats(&b);
    cr_assert_eq(s.to_half_open, 1);
    cr_assert_eq(s.probes, 1);
}

Test(breaker, half_open_admits_at_most_max_probes_then_closes_on_their_success) {
    nx_breaker_t b;
    init_small(&b);
    trip(&b, 0);
    nx_breaker_permit_t p1, p2, p3;
    cr_assert(nx_breaker_allow(&b, 1000, &p1));
    cr_assert(nx_breaker_allow(&b, 1010, &p2));
    cr_assert(p1.probe && p2.probe);
    cr_assert_not(nx_breaker_allow(&b, 1020, &p3), "half_open_max_calls is 2");
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 1020), 490,
                 "until the newest probe (admitted at 1010) times out");
    nx_breaker_record(&b, &p1, 1030, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_HALF_OPEN, "one of two probes succeeded");
    cr_assert_not(nx_breaker_allow(&b, 1031, &p3), "a reported probe does not free a slot");
    nx_breaker_record(&b, &p2, 1040, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    nx_breaker_window_t w = window(&b);
    cr_assert_eq(w.calls, 0, "closing starts an empty window");
    nx_breaker_stats_t s = stats(&b);
    cr_assert_eq(s.to_open, 1);
    cr_assert_eq(s.to_half_open, 1);
    cr_assert_eq(s.to_closed, 1);
    cr_assert_eq(s.transitions, 3);
    cr_assert_eq(s.probes, 2);
    cr_assert_eq(s.rejections, 2);
    cr_assert_eq(s.stale, 0);
    /* The old failures are gone: it takes the minimum number of calls again to open. */
    for (int i = 0; i < 4; i++)
        call(&b, 2000, 2000, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    call(&b, 2000, 2000, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN);
}

Test(breaker, a_failed_probe_opens_again_and_the_other_probe_is_stale) {
    nx_breaker_t b;
    init_small(&b);
    trip(&b, 0);
    nx_breaker_permit_t p1, p2, p;
    cr_assert(nx_breaker_allow(&b, 1000, &p1));
    cr_assert(nx_breaker_allow(&b, 1000, &p2));
    nx_breaker_record(&b, &p1, 1005, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 1005), 1000, "a full open period from the failure");
    cr_assert_not(nx_breaker_allow(&b, 2004, &p));
    nx_breaker_record(&b, &p2, 1010, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "a late success cannot close it");
    nx_breaker_stats_t s = stats(&b);
    cr_assert_eq(s.stale, 1);
    cr_assert_eq(s.to_open, 2);
    cr_assert_eq(s.calls, 7);
    cr_assert(nx_breaker_allow(&b, 2005, &p));
    cr_assert(p.probe);
}

Test(breaker, a_slow_probe_opens_again) {
    nx_breaker_t b;
    init_small(&b);
    trip(&b, 0);
    nx_breaker_permit_t p1, p2;
    cr_assert(nx_breaker_allow(&b, 1000, &p1));
    cr_assert(nx_breaker_allow(&b, 1000, &p2));
    nx_breaker_record(&b, &p1, 1099, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_HALF_OPEN);
    nx_breaker_record(&b, &p2, 1100, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "successful but slow");
    cr_assert_eq(stats(&b).probe_timeouts, 0);
}

Test(breaker, silent_probes_time_out_and_open_it_again) {
    nx_breaker_t b;
    init_small(&b);
    trip(&b, 0);
    nx_breaker_permit_t p1, p2, p;
    cr_assert(nx_breaker_allow(&b, 1000, &p1));
    cr_assert(nx_breaker_allow(&b, 1100, &p2));
    /* Neither probe reports. The newer was admitted at 1100: it times out at 1600. */
    cr_assert_not(nx_breaker_allow(&b, 1599, &p));
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_HALF_OPEN);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 1599), 1);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 1600), 1000, "overdue: the next allow reopens");
    cr_assert_not(nx_breaker_allow(&b, 1600, &p));
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "HALF_OPEN never wedges");
    nx_breaker_stats_t s = stats(&b);
    cr_assert_eq(s.probe_timeouts, 1);
    cr_assert_eq(s.to_open, 2);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 1600), 1000);
    /* The lost probes finally report: too late to matter, counted once as stale. */
    nx_breaker_record(&b, &p1, 1700, true);
    nx_breaker_record(&b, &p2, 1700, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN);
    s = stats(&b);
    cr_assert_eq(s.stale, 2);
    cr_assert_eq(s.probe_timeouts, 1, "the timeout is not counted again");
    cr_assert_not(nx_breaker_allow(&b, 2599, &p));
    cr_assert(nx_breaker_allow(&b, 2600, &p));
    cr_assert(p.probe);
}

Test(breaker, a_probe_reporting_after_its_timeout_counts_as_failed) {
    nx_breaker_t b;
    init_small(&b);
    trip(&b, 0);
    nx_breaker_permit_t p1, p2;
    cr_assert(nx_breaker_allow(&b, 1000, &p1));
    cr_assert(nx_breaker_allow(&b, 1000, &p2));
    nx_breaker_record(&b, &p1, 1050, true);
    nx_breaker_record(&b, &p2, 1500, true); /* a success, but probe_timeout_ms after its start */
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN);
    cr_assert_eq(stats(&b).probe_timeouts, 1);
}

Test(breaker, a_probe_limit_of_one_closes_on_the_first_good_probe) {
    nx_breaker_t b;
    nx_breaker_config_t c = small_cfg();
    c.half_open_max_calls = 1;
    cr_assert_eq(nx_breaker_init(&b, &c), 0);
    trip(&b, 0);
    nx_breaker_permit_t p, q;
    cr_assert(nx_breaker_allow(&b, 1000, &p));
    cr_assert_not(nx_breaker_allow(&b, 1000, &q));
    nx_breaker_record(&b, &p, 1001, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    cr_assert(nx_breaker_allow(&b, 1001, &q));
    cr_assert_not(q.probe);
    nx_breaker_record(&b, &q, 1002, true);
}

Test(breaker, outcomes_from_a_closed_period_that_ended_do_not_steer_the_next) {
    nx_breaker_t b;
    init_small(&b);
    enum { LATE = 8 };
    nx_breaker_permit_t late[LATE];
    for (int i = 0; i < LATE; i++)
        cr_assert(nx_breaker_allow(&b, 0, &late[i]));
    trip(&b, 10);
    nx_breaker_permit_t p1, p2;
    cr_assert(nx_breaker_allow(&b, 1010, &p1));
    cr_assert(nx_breaker_allow(&b, 1010, &p2));
    nx_breaker_record(&b, &p1, 1011, true);
    nx_breaker_record(&b, &p2, 1011, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    /* Eight failures admitted before the breaker opened arrive now, in the new period. */
    for (int i = 0; i < LATE; i++)
        nx_breaker_record(&b, &late[i], 1012, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    cr_assert_eq(window(&b).calls, 0);
    nx_breaker_stats_t s = stats(&b);
    cr_assert_eq(s.stale, LATE);
    cr_assert_eq(s.failures, 5 + LATE, "still counted for metrics");
}

Test(breaker, a_clock_lagging_behind_the_open_stamp_is_not_a_huge_elapsed_time) {
    /* Another shard read the clock a moment before the one that tripped the breaker. */
    nx_breaker_t b;
    init_small(&b);
    trip(&b, 50000);
    nx_breaker_permit_t p;
    cr_assert_not(nx_breaker_allow(&b, 49990, &p));
    cr_assert_eq(nx_breaker_retry_after_ms(&b, 49990), 1000);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN);
}

Test(breaker, works_across_the_40_bit_clock_boundary) {
    nx_breaker_t b;
    init_small(&b);
    uint64_t t = (UINT64_C(1) << 40) - 300;
    trip(&b, t);
    nx_breaker_permit_t p;
    cr_assert_eq(nx_breaker_retry_after_ms(&b, t + 400), 600);
    cr_assert_not(nx_breaker_allow(&b, t + 999, &p));
    cr_assert(nx_breaker_allow(&b, t + 1000, &p));
    cr_assert(p.probe);
    nx_breaker_permit_t q;
    cr_assert(nx_breaker_allow(&b, t + 1000, &q));
    cr_assert_eq(nx_breaker_retry_after_ms(&b, t + 1100), 400);
    nx_breaker_record(&b, &p, t + 1010, true);
    nx_breaker_record(&b, &q, t + 1010, true);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    /* And with a clock far beyond 2^40. */
    t = UINT64_C(5) << 41;
    trip(&b, t);
    cr_assert_eq(nx_breaker_retry_after_ms(&b, t + 1), 999);
    cr_assert_not(nx_breaker_allow(&b, t + 999, &p));
    cr_assert(nx_breaker_allow(&b, t + 1000, &p));
    nx_breaker_record(&b, &p, t + 1001, false);
}

Test(breaker, a_window_of_1024_counts_every_slot) {
    nx_breaker_t b;
    nx_breaker_config_t c = small_cfg();
    c.window_size = NX_BREAKER_WINDOW_MAX;
    c.minimum_calls = 1000;
    cr_assert_eq(nx_breaker_init(&b, &c), 0);
    for (int i = 0; i < 999; i++)
        call(&b, 0, 0, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    call(&b, 0, 0, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "the 1000th call reaches the minimum");

    cr_assert_eq(nx_breaker_init(&b, &c), 0);
    for (int i = 0; i < 2000; i++)
        call(&b, 0, 0, true);
    nx_breaker_window_t w = window(&b);
    cr_assert_eq(w.calls, 1024);
    cr_assert_eq(w.failures, 0);
    for (int i = 0; i < 511; i++)
        call(&b, 0, 0, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_CLOSED);
    w = window(&b);
    cr_assert_eq(w.calls, 1024);
    cr_assert_eq(w.failures, 511);
    call(&b, 0, 0, false);
    cr_assert_eq(nx_breaker_state(&b), NX_BREAKER_OPEN, "512 of 1024 is 50%%");
}

/* ---- several threads on one breaker ---- */

enum { HAMMER_THREADS = 4, HAMMER_ITERS = 60000, PROBES = 3 };

static nx_breaker_t g_b;
static _Atomic uint64_t g_clock;
static _Atomic uint64_t g_allowed, g_rejected, g_failed, g_slow, g_probes;
static _Atomic int g_inflight_by_gen[1024];
static _Atomic int g_max_inflight_by_gen;

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void raise_max(_Atomic int *max, int v) {
    int cur = atomic_load(max);
    while (v > cur && !atomic_compare_exchange_weak(max, &cur, v)) {
    }
}

static void *hammer(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15u + 1;
    for (int i = 0; i < HAMMER_ITERS; i++) {
        uint64_t now = atomic_fetch_add(&g_clock, 1);
        nx_breaker_permit_t p;
        if (!nx_breaker_allow(&g_b, now, &p)) {
            atomic_fetch_add(&g_rejected, 1);
            continue;
        }
        atomic_fetch_add(&g_allowed, 1);
        if (p.probe) {
            atomic_fetch_add(&g_probes, 1);
            raise_max(&g_max_inflight_by_gen, atomic_fetch_add(&g_inflight_by_gen[p.gen], 1) + 1);
        }
        uint64_t r = xorshift(&rng);
        if (r % 8 == 0) sched_yield(); /* let other threads overlap this call */
        /* Alternating bad and good spells of 3000 ms make the breaker cycle. */
        bool bad_spell = (now / 3000) % 2 == 0;
        bool ok = (r >> 8) % 100 >= (bad_spell ? 70u : 3u);
        uint64_t end = atomic_load(&g_clock) + (r >> 20) % 4;
        if (end - p.start_ms >= g_b.cfg.slow_call_duration_ms) atomic_fetch_add(&g_slow, 1);
        if (!ok) atomic_fetch_add(&g_failed, 1);
        if (p.probe) atomic_fetch_sub(&g_inflight_by_gen[p.gen], 1);
        nx_breaker_record(&g_b, &p, end, ok);
    }
    return NULL;
}

Test(breaker, concurrent_threads_keep_the_probe_limit_and_the_counters) {
    nx_breaker_config_t c = {
        .window_size = 20,
        .minimum_calls = 10,
        .failure_rate_threshold = 50,
        .slow_call_rate_threshold = 90,
        .slow_call_duration_ms = 40,
        .open_duration_ms = 40,
        .half_open_max_calls = PROBES,
        .probe_timeout_ms = 30,
    };
    cr_assert_eq(nx_breaker_init(&g_b, &c), 0);
    pthread_t t[HAMMER_THREADS];
    for (uintptr_t i = 0; i < HAMMER_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, hammer, (void *)(i + 1)), 0);
    for (int i = 0; i < HAMMER_THREADS; i++)
        pthread_join(t[i], NULL);

    nx_breaker_stats_t s = stats(&g_b);
    cr_assert_eq(s.calls, atomic_load(&g_allowed), "every admitted call was recorded once");
    cr_assert_eq(s.calls + s.rejections, (uint64_t)HAMMER_THREADS * HAMMER_ITERS);
    cr_assert_eq(s.rejections, atomic_load(&g_rejected));
    cr_assert_eq(s.failures, atomic_load(&g_failed));
    cr_assert_eq(s.slow, atomic_load(&g_slow));
    cr_assert_eq(s.probes, atomic_load(&g_probes));
    cr_assert(s.stale <= s.calls);
    cr_assert(s.probe_timeouts <= s.to_open);
    cr_assert_leq(atomic_load(&g_max_inflight_by_gen), PROBES,
                  "more than half_open_max_calls probes of one half-open period in flight");
    cr_assert_leq(s.probes, (uint64_t)PROBES * s.to_half_open,
                  "more probes than half_open_max_calls per half-open period");
    /* The transitions form one path from CLOSED: every HALF_OPEN came from an OPEN, and the
     * only OPEN not followed by a HALF_OPEN is the current state. */
    nx_breaker_state_t end = nx_breaker_state(&g_b);
    cr_assert_eq(s.to_open - s.to_half_open, end == NX_BREAKER_OPEN ? 1u : 0u,
                 "to_open %llu to_half_open %llu final %s", (unsigned long long)s.to_open,
                 (unsigned long long)s.to_half_open, nx_breaker_state_name(end));
    cr_assert_leq(s.to_closed, s.to_half_open);
    cr_assert_eq(s.transitions, s.to_open + s.to_half_open + s.to_closed);
    /* The run must actually have exercised the state machine. */
    cr_assert_geq(s.to_open, 10, "to_open %llu", (unsigned long long)s.to_open);
    cr_assert_geq(s.to_closed, 5, "to_closed %llu", (unsigned long long)s.to_closed);
    cr_assert_gt(s.rejections, 0);
}

/* Two threads released together at the moment the open period ends: exactly one of them
 * half-opens the breaker and exactly half_open_max_calls of their calls become probes, round
 * after round. The helper spins on the round number (yielding, in case of a single core) and the
 * test thread is the other rusher, so both really call allow within nanoseconds of each other. */
enum { RUSH_CALLS = 8, RUSH_ROUNDS = 20000 };
static nx_breaker_t g_rush;
static _Atomic int g_rush_round, g_rush_done, g_rush_probes;

static void rush_once(void) {
    for (int i = 0; i < RUSH_CALLS; i++) {
        nx_breaker_permit_t p;
        if (nx_breaker_allow(&g_rush, 1000, &p) && p.probe) atomic_fetch_add(&g_rush_probes, 1);
    }
}

static void *rush_helper(void *arg) {
    for (int r = 1; r <= RUSH_ROUNDS; r++) {
        while (atomic_load(&g_rush_round) != r)
            sched_yield();
        rush_once();
        atomic_store(&g_rush_done, r);
    }
    return NULL;
}

Test(breaker, threads_rushing_a_half_open_breaker_get_exactly_the_probe_limit) {
    nx_breaker_config_t c = small_cfg();
    c.half_open_max_calls = 3;
    pthread_t helper;
    cr_assert_eq(pthread_create(&helper, NULL, rush_helper, NULL), 0);
    int bad_probes = -1, bad_transitions = -1;
    for (int r = 1; r <= RUSH_ROUNDS; r++) {
        cr_assert_eq(nx_breaker_init(&g_rush, &c), 0);
        for (int i = 0; i < 5; i++) {
            nx_breaker_permit_t p;
            nx_breaker_allow(&g_rush, 0, &p);
            nx_breaker_record(&g_rush, &p, 0, false);
        }
        atomic_store(&g_rush_probes, 0);
        atomic_store(&g_rush_round, r);
        rush_once();
        while (atomic_load(&g_rush_done) != r)
            sched_yield();
        nx_breaker_stats_t s = stats(&g_rush);
        if (bad_probes < 0 && atomic_load(&g_rush_probes) != 3) bad_probes = r;
        if (bad_transitions < 0 &&
            (s.to_half_open != 1 || s.probes != 3 || s.rejections != 2 * RUSH_CALLS - 3))
            bad_transitions = r;
    }
    pthread_join(helper, NULL);
    cr_assert_eq(bad_probes, -1, "round %d admitted a number of probes other than 3", bad_probes);
    cr_assert_eq(bad_transitions, -1, "round %d: wrong transition or counters", bad_transitions);
}
