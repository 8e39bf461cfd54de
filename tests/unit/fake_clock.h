/* A loop whose time the test sets, for unit tests that drive a hand-made shard: net/uring.c is
 * compiled into the test with its monotonic clock replaced by fake_ms, so that timers,
 * deadlines, TTLs and recorded durations all follow set_clock and nothing waits for real time.
 * Include it first, before the sources under test. */
#ifndef NX_TESTS_FAKE_CLOCK_H
#define NX_TESTS_FAKE_CLOCK_H

#define nx_loop_clock_ns nx_loop_clock_ns_real
#include "net/uring.c"
#undef nx_loop_clock_ns

static uint64_t fake_ms;

uint64_t nx_loop_clock_ns(void);
uint64_t nx_loop_clock_ns(void) {
    return fake_ms * 1000000ull;
}

/* The hand-made shard's loop: only its cached time (now_ms) is used. */
static struct nx_loop fake_loop;

static void set_clock(uint64_t ms) {
    fake_ms = ms;
    fake_loop.now_ms = ms;
}

#endif
