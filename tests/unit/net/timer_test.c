/* The timer wheel with a fake clock: exact firing, cascades across every level, re-arming from
 * callbacks, big clock jumps, and agreement with a brute-force reference. */
#include <criterion/criterion.h>

#include "timer.h"

#include <stdlib.h>

typedef struct probe {
    nx_timer_t t;
    uint64_t fired_at;
    int fired;
} probe_t;

static uint64_t g_now;

static void on_fire(nx_timer_t *t) {
    probe_t *p = nx_container_of(t, probe_t, t);
    p->fired++;
    p->fired_at = g_now;
}

/* Steps the fake clock one ms at a time, as a shard loop waking every ms would. */
static void run_until(nx_timer_wheel_t *w, uint64_t until) {
    while (g_now < until) {
        g_now++;
        nx_timer_wheel_advance(w, g_now);
    }
}

Test(timer, fires_exactly_when_due_at_every_level_boundary) {
    static const uint64_t delays[] = {0,    1,    63,    64,     65,     4095,    4096,
                                      4097, 9999, 262143, 262144, 262145, 1000000};
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        nx_timer_wheel_t w;
        g_now = 1000 + i * 7; /* not aligned to any slot */
        nx_timer_wheel_init(&w, g_now);
        probe_t p = {0};
        nx_timer_init(&p.t, on_fire);
        uint64_t start = g_now;
        nx_timer_start(&w, &p.t, g_now, delays[i]);
        cr_assert(nx_timer_active(&p.t));
        uint64_t due = start + (delays[i] ? delays[i] : 1);
        run_until(&w, due - 1);
        cr_assert_eq(p.fired, 0, "delay %lu fired early at +%lu", (unsigned long)delays[i],
                     (unsigned long)(p.fired_at - start));
        run_until(&w, due);
        cr_assert_eq(p.fired, 1, "delay %lu did not fire on time", (unsigned long)delays[i]);
        cr_assert_not(nx_timer_active(&p.t));
        cr_assert_eq(nx_timer_wheel_count(&w), 0);
    }
}

Test(timer, stop_and_restart) {
    nx_timer_wheel_t w;
    g_now = 0;
    nx_timer_wheel_init(&w, 0);
    probe_t a = {0}, b = {0};
    nx_timer_init(&a.t, on_fire);
    nx_timer_init(&b.t, on_fire);
    nx_timer_start(&w, &a.t, 0, 10);
    nx_timer_start(&w, &b.t, 0, 10);
    nx_timer_stop(&a.t);
    nx_timer_stop(&a.t); /* stopping twice is harmless */
    nx_timer_start(&w, &b.t, 0, 5000); /* restart moves it */
    cr_assert_eq(nx_timer_wheel_count(&w), 1);
    run_until(&w, 4999);
    cr_assert_eq(a.fired + b.fired, 0);
    run_until(&w, 5000);
    cr_assert_eq(b.fired, 1);
    cr_assert_eq(a.fired, 0);
}

static nx_timer_wheel_t *g_wheel;
static probe_t *g_victim;

static void rearm_self(nx_timer_t *t) {
    probe_t *p = nx_container_of(t, probe_t, t);
    p->fired++;
    if (p->fired < 3) nx_timer_start(g_wheel, t, g_now, 100);
}

static void stop_victim(nx_timer_t *t) {
    on_fire(t);
    nx_timer_stop(&g_victim->t);
}

Test(timer, callbacks_may_rearm_and_stop_others_due_now) {
    nx_timer_wheel_t w;
    g_now = 0;
    g_wheel = &w;
    nx_timer_wheel_init(&w, 0);
    probe_t self = {0}, killer = {0}, victim = {0};
    nx_timer_init(&self.t, rearm_self);
    nx_timer_init(&killer.t, stop_victim);
    nx_timer_init(&victim.t, on_fire);
    g_victim = &victim;
    nx_timer_start(&w, &self.t, 0, 100);
    nx_timer_start(&w, &killer.t, 0, 50);
    nx_timer_start(&w, &victim.t, 0, 50); /* same tick, after the killer */
    run_until(&w, 1000);
    cr_assert_eq(self.fired, 3, "a callback re-arming its own timer must fire again");
    cr_assert_eq(killer.fired, 1);
    cr_assert_eq(victim.fired, 0, "a timer stopped by an earlier callback of the tick must not fire");
}

Test(timer, big_clock_jump_fires_everything_once) {
    nx_timer_wheel_t w;
    g_now = 0;
    nx_timer_wheel_init(&w, 0);
    probe_t p[50] = {0};
    for (int i = 0; i < 50; i++) {
        nx_timer_init(&p[i].t, on_fire);
        nx_timer_start(&w, &p[i].t, 0, (uint64_t)i * 1777);
    }
    g_now = 100000;
    cr_assert_eq(nx_timer_wheel_advance(&w, g_now), 50);
    for (int i = 0; i < 50; i++) cr_assert_eq(p[i].fired, 1);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, g_now), -1);
}

Test(timer, next_ms_is_never_late) {
    nx_timer_wheel_t w;
    nx_timer_wheel_init(&w, 0);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 0), -1);
    probe_t p = {0};
    nx_timer_init(&p.t, on_fire);
    nx_timer_start(&w, &p.t, 0, 30);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 0), 30);
    cr_assert_eq(nx_timer_wheel_next_ms(&w, 40), 0, "overdue reports 0");
    nx_timer_start(&w, &p.t, 0, 70000);
    int64_t n = nx_timer_wheel_next_ms(&w, 0);
    cr_assert(n > 0 && n <= 70000);
}

Test(timer, agrees_with_brute_force_reference) {
    enum { N = 10000 };
    nx_timer_wheel_t w;
    g_now = 12345;
    nx_timer_wheel_init(&w, g_now);
    probe_t *p = calloc(N, sizeof(*p));
    uint64_t *due = calloc(N, sizeof(*due));
    srand(42);
    for (int i = 0; i < N; i++) {
        nx_timer_init(&p[i].t, on_fire);
        uint64_t d = (uint64_t)(rand() % 300000);
        nx_timer_start(&w, &p[i].t, g_now, d);
        due[i] = g_now + (d ? d : 1);
        if (i % 10 == 0) { /* a tenth are cancelled */
            nx_timer_stop(&p[i].t);
            due[i] = 0;
        }
    }
    uint64_t end = g_now + 300001;
    while (g_now < end) {
        g_now += 1 + (uint64_t)(rand() % 3); /* the loop sometimes wakes late */
        nx_timer_wheel_advance(&w, g_now);
    }
    for (int i = 0; i < N; i++) {
        if (due[i] == 0) {
            cr_assert_eq(p[i].fired, 0);
            continue;
        }
        cr_assert_eq(p[i].fired, 1, "timer %d fired %d times", i, p[i].fired);
        cr_assert(p[i].fired_at >= due[i], "timer %d fired early", i);
        cr_assert(p[i].fired_at <= due[i] + 3, "timer %d fired %lu ms late", i,
                  (unsigned long)(p[i].fired_at - due[i]));
    }
    free(p);
    free(due);
}
