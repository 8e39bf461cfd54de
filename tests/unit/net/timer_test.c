/* The timer wheel with a fake clock: exact firing across every level boundary, stop and restart,
 * callbacks that re-arm and stop timers, big clock jumps, next_ms, and a randomized run checked
 * against a brute-force reference. */
#include <criterion/criterion.h>

#include "timer.h"

#include <stdlib.h>

typedef struct probe {
    nx_timer_t t;
    uint64_t fired_at;
    int fired;
    int id;
} probe_t;

static uint64_t g_now;
static int g_order[64];
static int g_order_n;

static void on_fire(nx_timer_t *t) {
    probe_t *p = nx_container_of(t, probe_t, t);
    p->fired++;
    p->fired_at = g_now;
    if (g_order_n < 64) g_order[g_order_n++] = p->id;
}

static void probe_init(probe_t *p, int id, nx_timer_cb cb) {
    *p = (probe_t){.id = id};
    nx_timer_init(&p->t, cb);
}

/* Moves the fake clock to <until>, one ms at a time as a loop waking every ms would, checking
 * that next_ms never points past a pending expiry. */
static void step_until(nx_timer_wheel_t *w, uint64_t until, const probe_t *watch) {
    while (g_now < until) {
        if (watch != NULL && nx_timer_active(&watch->t)) {
            int64_t next = nx_timer_wheel_next_ms(w, g_now);
            cr_assert(next >= 0 && (uint64_t)next <= watch->t.expires_ms - g_now,
                      "next_ms %lld is past the expiry %llu (now %llu)", (long long)next,
                      (unsigned long long)watch->t.expires_ms, (unsigned long long)g_now);
        }
        g_now++;
        nx_timer_wheel_advance(w, g_now);
    }
}

Test(timer, fires_exactly_when_due_across_every_level_boundary) {
    static const uint64_t delays[] = {1,    2,    63,   64,   65,    127,    128,    4095,
                                      4096, 4097, 8191, 8192, 70000, 262143, 262144, 262145};
    /* Aligned and unaligned starts: cascades must not add or lose a tick either way. */
    static const uint64_t starts[] = {0, 1, 63, 64, 4095, 4096, 262143, 262144, 1000003};
    for (size_t si = 0; si < sizeof(starts) / sizeof(starts[0]); si++) {
        for (size_t di = 0; di < sizeof(delays) / sizeof(delays[0]); di++) {
            nx_timer_wheel_t w;
            g_now = starts[si];
            nx_timer_wheel_init(&w, g_now);
            probe_t p;
            probe_init(&p, 0, on_fire);
            uint64_t due = g_now + delays[di];
            nx_timer_start(&w, &p.t, g_now, delays[di]);
            cr_assert(nx_timer_active(&p.t));
            cr_assert_eq(p.t.expires_ms, due);
            step_until(&w, due - 1, &p);
            cr_assert_eq(p.fired, 0, "start %llu delay %llu fired early at %llu",
                         (unsigned long long)starts[si], (unsigned long long)delays[di],
                         (unsigned long long)p.fired_at);
            step_until(&w, due, &p);
            cr_assert_eq(p.fired, 1, "start %llu delay %llu did not fire at its due ms",
                         (unsigned long long)starts[si], (unsigned long long)delays[di]);
            cr_assert_not(nx_timer_active(&p.t));
            cr_assert_eq(nx_timer_wheel_count(&w), 0);
            cr_assert_eq(nx_timer_wheel_next_ms(&w, g_now), -1);
        }
    }
}

Test(timer, delays_beyond_the_top_level_fire_exactly_too) {
    /* The top level reaches 2^24 ms (about 4.7 h); longer delays are parked and re-placed. */
    static const uint64_t delays[] = {16777215, 16777216, 16777217, 3ull * 86400 * 1000 + 17,
                                      40ull * 86400 * 1000};
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        nx_timer_wheel_t w;
        g_now = 5000 + i;
        nx_timer_wheel_init(&w, g_now);
        probe_t p;
        probe_init(&p, 0, on_fire);
        uint64_t due = g_now + delays[i];
        nx_timer_start(&w, &p.t, g_now, delays[i]);
        /* Jumps of uneven size, the way a loop sleeping on next_ms would move. */
        while (g_now < due - 1) {
            int64_t next = nx_timer_wheel_next_ms(&w, g_now);
            cr_assert(next > 0 && (uint64_t)next <= due - g_now, "next_ms %lld late",
                      (long long)next);
            uint64_t step = (uint64_t)next + 977;
            g_now = g_now + step < due - 1 ? g_now + step : due - 1;
            nx_timer_wheel_advance(&w, g_now);
            cr_assert_eq(p.fired, 0, "delay %llu fired %llu ms early",
                         (unsigned long long)delays[i], (unsigned long long)(due - g_now));
        }
        cr_assert_eq(nx_timer_wheel_next_ms(&w, g_now), 1, "the last ms is exact");
        g_now = due;
        cr_assert_eq(nx_timer_wheel_advance(&w, g_now), 1);
        cr_assert_eq(p.fired, 1);
        cr_assert_eq(nx_timer_wheel_count(&w), 0);
    }
}

Test(timer, delay_zero_fires_on_the_next_advance_even_at_the_same_now) {
    nx_timer_wheel_t w;
    g_now = 777;
    nx_timer_wheel_init(&w, g_now);
    probe_t p;
    probe_init(&p, 0, on_fire);
    nx_timer_start(&w, &p.t, g_now, 0);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, g_now), 0);
    cr_assert_eq(nx_timer_wheel_advance(&w, g_now), 1, "expires_ms <= now must fire");
    cr_assert_eq(p.fired, 1);
}

Test(timer, a_stale_now_never_makes_a_timer_early) {
    nx_timer_wheel_t w;
    g_now = 1000;
    nx_timer_wheel_init(&w, 900);
    nx_timer_wheel_advance(&w, 1000);
    probe_t p;
    probe_init(&p, 0, on_fire);
    nx_timer_start(&w, &p.t, 950, 10); /* the caller's clock lags the wheel's */
    step_until(&w, 1009, &p);
    cr_assert_eq(p.fired, 0);
    step_until(&w, 1010, &p);
    cr_assert_eq(p.fired, 1);
}

Test(timer, fires_in_order_of_expiry_on_a_big_clock_jump) {
    nx_timer_wheel_t w;
    g_now = 31;
    nx_timer_wheel_init(&w, g_now);
    enum { N = 50 };
    probe_t p[N];
    g_order_n = 0;
    srand(7);
    uint64_t delay[N];
    for (int i = 0; i < N; i++) {
        probe_init(&p[i], i, on_fire);
        delay[i] = (uint64_t)(rand() % 99000) + 1;
        nx_timer_start(&w, &p[i].t, g_now, delay[i]);
    }
    cr_assert_eq(nx_timer_wheel_count(&w), N);
    g_now += 100000;
    cr_assert_eq(nx_timer_wheel_advance(&w, g_now), N);
    cr_assert_eq(g_order_n, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(p[i].fired, 1, "timer %d fired %d times", i, p[i].fired);
    for (int i = 1; i < N; i++)
        cr_assert(delay[g_order[i - 1]] <= delay[g_order[i]], "fired out of order at %d", i);
    cr_assert_eq(nx_timer_wheel_count(&w), 0);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, g_now), -1);
    cr_assert_eq(nx_timer_wheel_advance(&w, g_now + 100000), 0, "nothing fires twice");
}

Test(timer, stop_prevents_firing_and_restart_moves) {
    nx_timer_wheel_t w;
    g_now = 0;
    nx_timer_wheel_init(&w, 0);
    probe_t a, b, c, never;
    probe_init(&a, 0, on_fire);
    probe_init(&b, 1, on_fire);
    probe_init(&c, 2, on_fire);
    probe_init(&never, 3, on_fire);
    nx_timer_stop(&never.t); /* stopping a timer that was never started is a no-op */
    nx_timer_start(&w, &a.t, 0, 10);
    nx_timer_start(&w, &b.t, 0, 10);
    nx_timer_start(&w, &c.t, 0, 5000);
    nx_timer_stop(&a.t);
    nx_timer_stop(&a.t);
    cr_assert_not(nx_timer_active(&a.t));
    nx_timer_start(&w, &b.t, 0, 5000); /* later: moves out of level 0 */
    nx_timer_start(&w, &c.t, 0, 20);   /* earlier: moves down from level 1 */
    cr_assert_eq(nx_timer_wheel_count(&w), 2);
    step_until(&w, 19, NULL);
    cr_assert_eq(a.fired + b.fired + c.fired, 0);
    step_until(&w, 20, NULL);
    cr_assert_eq(c.fired, 1);
    step_until(&w, 4999, NULL);
    cr_assert_eq(b.fired, 0);
    step_until(&w, 5000, NULL);
    cr_assert_eq(b.fired, 1);
    cr_assert_eq(a.fired, 0);
    cr_assert_eq(never.fired, 0);
    cr_assert_eq(nx_timer_wheel_count(&w), 0);
}

Test(timer, constant_restarts_keep_a_timer_from_firing) {
    /* A keep-alive timeout pushed back on every request never fires while requests keep coming. */
    nx_timer_wheel_t w;
    g_now = 100;
    nx_timer_wheel_init(&w, g_now);
    probe_t p;
    probe_init(&p, 0, on_fire);
    for (int i = 0; i < 20000; i++) {
        nx_timer_start(&w, &p.t, g_now, 5000);
        g_now += 3;
        nx_timer_wheel_advance(&w, g_now);
    }
    cr_assert_eq(p.fired, 0);
    cr_assert_eq(nx_timer_wheel_count(&w), 1);
    uint64_t due = p.t.expires_ms;
    step_until(&w, due, &p);
    cr_assert_eq(p.fired, 1);
    cr_assert_eq(p.fired_at, due);
}

static nx_timer_wheel_t *g_wheel;
static probe_t *g_victim;
static uint64_t g_rearm_delay;
static int g_rearm_limit;

static void rearm_self(nx_timer_t *t) {
    on_fire(t);
    probe_t *p = nx_container_of(t, probe_t, t);
    /* Periodic without drift: the next period counts from this expiry, not from the clock. */
    if (p->fired < g_rearm_limit) nx_timer_start(g_wheel, t, t->expires_ms, g_rearm_delay);
}

static void stop_victim(nx_timer_t *t) {
    on_fire(t);
    nx_timer_stop(&g_victim->t);
}

Test(timer, callback_rearms_itself) {
    nx_timer_wheel_t w;
    g_now = 0;
    g_wheel = &w;
    g_rearm_delay = 100;
    g_rearm_limit = 3;
    nx_timer_wheel_init(&w, 0);
    probe_t self;
    probe_init(&self, 0, rearm_self);
    nx_timer_start(&w, &self.t, 0, 100);
    step_until(&w, 299, NULL);
    cr_assert_eq(self.fired, 2);
    cr_assert(nx_timer_active(&self.t));
    step_until(&w, 1000, NULL);
    cr_assert_eq(self.fired, 3, "fired at 100, 200 and 300, then stopped re-arming");
    cr_assert_eq(self.fired_at, 300);
    cr_assert_eq(nx_timer_wheel_count(&w), 0);

    /* The same through one big jump: each re-arm lands inside the jump and fires in it. */
    probe_init(&self, 0, rearm_self);
    nx_timer_start(&w, &self.t, g_now, 100);
    g_now += 1000;
    cr_assert_eq(nx_timer_wheel_advance(&w, g_now), 3);
}

Test(timer, self_rearm_with_no_delay_does_not_spin) {
    nx_timer_wheel_t w;
    g_now = 50;
    g_wheel = &w;
    g_rearm_delay = 0;
    g_rearm_limit = 1000000;
    nx_timer_wheel_init(&w, g_now);
    probe_t self;
    probe_init(&self, 0, rearm_self);
    nx_timer_start(&w, &self.t, g_now, 0);
    size_t n = nx_timer_wheel_advance(&w, g_now);
    cr_assert(n >= 1 && n <= 2, "advance must return, having fired it once or twice: %zu", n);
    cr_assert(nx_timer_active(&self.t));
    cr_assert_eq(nx_timer_wheel_next_ms(&w, g_now), 0, "still due");
    size_t m = nx_timer_wheel_advance(&w, g_now + 10);
    cr_assert(m >= 1 && m <= 22, "at most about twice per tick: %zu", m);
    nx_timer_stop(&self.t);
}

Test(timer, callback_stops_another_timer_due_in_the_same_tick) {
    nx_timer_wheel_t w;
    g_now = 0;
    g_wheel = &w;
    nx_timer_wheel_init(&w, 0);
    probe_t killer, victim, bystander;
    probe_init(&killer, 0, stop_victim);
    probe_init(&victim, 1, on_fire);
    probe_init(&bystander, 2, on_fire);
    g_victim = &victim;
    nx_timer_start(&w, &killer.t, 0, 50);
    nx_timer_start(&w, &victim.t, 0, 50); /* same tick, after the killer */
    nx_timer_start(&w, &bystander.t, 0, 50);
    cr_assert_eq(nx_timer_wheel_advance(&w, 50), 2);
    cr_assert_eq(killer.fired, 1);
    cr_assert_eq(victim.fired, 0,
                 "a timer stopped by an earlier callback of the tick must not fire");
    cr_assert_eq(bystander.fired, 1);
    cr_assert_eq(nx_timer_wheel_count(&w), 0);

    /* Same with the victim due later inside one big jump, and one cascaded from level 2. */
    probe_init(&killer, 0, stop_victim);
    probe_init(&victim, 1, on_fire);
    nx_timer_start(&w, &killer.t, 50, 5000);
    nx_timer_start(&w, &victim.t, 50, 70000);
    cr_assert_eq(nx_timer_wheel_advance(&w, 100000), 1);
    cr_assert_eq(victim.fired, 0);
    cr_assert_eq(nx_timer_wheel_count(&w), 0);
}

static probe_t *g_child;

static void start_child(nx_timer_t *t) {
    on_fire(t);
    nx_timer_start(g_wheel, &g_child->t, g_now, 0);
}

Test(timer, a_timer_armed_by_a_callback_for_now_fires_in_the_same_advance) {
    nx_timer_wheel_t w;
    g_now = 10;
    g_wheel = &w;
    nx_timer_wheel_init(&w, g_now);
    probe_t parent, child;
    probe_init(&parent, 0, start_child);
    probe_init(&child, 1, on_fire);
    g_child = &child;
    nx_timer_start(&w, &parent.t, g_now, 5);
    g_now = 15;
    cr_assert_eq(nx_timer_wheel_advance(&w, g_now), 2);
    cr_assert_eq(child.fired, 1);
    cr_assert_eq(child.fired_at, 15);
}

Test(timer, next_ms) {
    nx_timer_wheel_t w;
    nx_timer_wheel_init(&w, 0);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 0), -1);
    probe_t p, q;
    probe_init(&p, 0, on_fire);
    probe_init(&q, 1, on_fire);
    nx_timer_start(&w, &p.t, 0, 30);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 0), 30, "level 0 is exact");
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 12), 18);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 40), 0, "overdue reports 0");
    nx_timer_start(&w, &q.t, 0, 20);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 0), 20, "the earliest of several");
    nx_timer_stop(&q.t);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 0), 30, "a stopped timer no longer counts");
    /* A keep-alive timeout on level 2: the answer is a cascade tick, early but not every 64 ms. */
    nx_timer_start(&w, &p.t, 0, 70000);
    int64_t n = nx_timer_wheel_next_ms(&w, 0);
    cr_assert(n >= 64 && n <= 70000, "next_ms %lld", (long long)n);
    cr_assert_eq(n, 69632, "the level-2 slot of 70000 is cascaded at 17 * 4096");
    nx_timer_stop(&p.t);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 0), -1);
}

/* Randomized: 10 000 timers started, restarted and stopped while the clock moves by uneven
 * steps (and sometimes jumps); a brute-force reference says when each must fire. */
enum { RN = 10000 };
static uint64_t r_exp[RN];       /* reference expiry, 0 = not armed */
static uint64_t r_arm_calls[RN]; /* advance calls completed when it was last armed */
static uint64_t r_calls;         /* advance calls completed */
static uint64_t r_prev_now;      /* the now of the last completed advance call */
static size_t r_armed;
static probe_t *r_probes;

static void on_ref_fire(nx_timer_t *t) {
    probe_t *p = nx_container_of(t, probe_t, t);
    int i = p->id;
    cr_assert_neq(r_exp[i], 0, "timer %d fired while not armed", i);
    cr_assert(r_exp[i] <= g_now, "timer %d fired early: due %llu, now %llu", i,
              (unsigned long long)r_exp[i], (unsigned long long)g_now);
    cr_assert(r_arm_calls[i] == r_calls || r_exp[i] > r_prev_now,
              "timer %d fired late: due %llu, missed at %llu", i, (unsigned long long)r_exp[i],
              (unsigned long long)r_prev_now);
    r_exp[i] = 0;
    r_armed--;
    p->fired++;
}

static void ref_check_all(nx_timer_wheel_t *w) {
    uint64_t earliest = UINT64_MAX;
    for (int i = 0; i < RN; i++) {
        cr_assert_eq(nx_timer_active(&r_probes[i].t), r_exp[i] != 0, "timer %d active state", i);
        if (r_exp[i] == 0) continue;
        cr_assert(r_exp[i] > g_now, "timer %d due %llu missed (now %llu)", i,
                  (unsigned long long)r_exp[i], (unsigned long long)g_now);
        if (r_exp[i] < earliest) earliest = r_exp[i];
    }
    int64_t next = nx_timer_wheel_next_ms(w, g_now);
    if (earliest == UINT64_MAX) {
        cr_assert_eq(next, -1);
    } else {
        cr_assert(next >= 0 && (uint64_t)next <= earliest - g_now,
                  "next_ms %lld but a timer is due in %llu", (long long)next,
                  (unsigned long long)(earliest - g_now));
    }
}

Test(timer, agrees_with_brute_force_reference) {
    nx_timer_wheel_t w;
    g_now = 12345;
    r_prev_now = g_now;
    r_calls = 0;
    nx_timer_wheel_init(&w, g_now);
    r_probes = calloc(RN, sizeof(*r_probes));
    r_armed = 0;
    srand(42);
    for (int i = 0; i < RN; i++) {
        probe_init(&r_probes[i], i, on_ref_fire);
        r_exp[i] = 0;
    }
    for (int step = 0; step < 60000; step++) {
        /* A few operations per step: starts (mostly short, some level 2-3), restarts, stops. */
        for (int k = 0; k < 3; k++) {
            int i = rand() % RN;
            int op = rand() % 10;
            if (op < 7) {
                uint64_t d;
                int kind = rand() % 10;
                if (kind < 5)
                    d = (uint64_t)(rand() % 64);
                else if (kind < 8)
                    d = (uint64_t)(rand() % 5000);
                else if (kind < 9)
                    d = (uint64_t)(rand() % 300000);
                else
                    d = (uint64_t)(rand() % 20000000);
                if (r_exp[i] == 0) r_armed++;
                nx_timer_start(&w, &r_probes[i].t, g_now, d);
                r_exp[i] = g_now + d;
                r_arm_calls[i] = r_calls;
            } else if (r_exp[i] != 0) {
                nx_timer_stop(&r_probes[i].t);
                r_exp[i] = 0;
                r_armed--;
            } else {
                nx_timer_stop(&r_probes[i].t);
            }
        }
        cr_assert_eq(nx_timer_wheel_count(&w), r_armed);
        /* The loop mostly wakes every ms or so; sometimes it oversleeps a lot. */
        r_prev_now = g_now;
        int jump = rand() % 1000;
        g_now += jump < 990 ? (uint64_t)(rand() % 3) : (uint64_t)(rand() % 200000);
        nx_timer_wheel_advance(&w, g_now);
        r_calls++;
        cr_assert_eq(nx_timer_wheel_count(&w), r_armed);
        if (step % 2000 == 0) ref_check_all(&w);
    }
    ref_check_all(&w);
    /* Drain: everything still armed fires exactly once, on time. */
    while (r_armed > 0) {
        r_prev_now = g_now;
        int64_t next = nx_timer_wheel_next_ms(&w, g_now);
        cr_assert(next >= 0);
        g_now += next > 0 ? (uint64_t)next : 1;
        nx_timer_wheel_advance(&w, g_now);
        r_calls++;
    }
    ref_check_all(&w);
    cr_assert_eq(nx_timer_wheel_count(&w), 0);
    free(r_probes);
}
