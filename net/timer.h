/* Hierarchical timer wheel (4 levels x 64 slots, 1 ms ticks): O(1) start and stop for the
 * tens of thousands of per-connection timeouts a shard keeps armed and constantly moves.
 * Pure: the clock is passed in, so tests drive it with a fake one. */
#ifndef NX_NET_TIMER_H
#define NX_NET_TIMER_H

#include "nexus/list.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NX_TIMER_LEVELS 4
#define NX_TIMER_SLOT_BITS 6
#define NX_TIMER_SLOTS (1u << NX_TIMER_SLOT_BITS)

typedef struct nx_timer nx_timer_t;
typedef void (*nx_timer_cb)(nx_timer_t *t);

/* Embedded in its owner (recover it with nx_container_of); inactive when its link is unlinked. */
typedef struct nx_timer_wheel nx_timer_wheel_t;
struct nx_timer {
    nx_list_t link;
    uint64_t expires_ms;
    nx_timer_cb cb;
    nx_timer_wheel_t *wheel; /* set while armed */
    uint8_t level;
};

/* Owned by one shard. <now_ms> is the last tick processed. */
struct nx_timer_wheel {
    uint64_t now_ms;
    size_t level_count[NX_TIMER_LEVELS]; /* armed timers per level */
    nx_list_t slots[NX_TIMER_LEVELS][NX_TIMER_SLOTS];
};

/** Prepares an empty wheel whose clock starts at <now_ms>. */
void nx_timer_wheel_init(nx_timer_wheel_t *w, uint64_t now_ms);
/** Makes <t> an inactive timer that will call <cb>. */
void nx_timer_init(nx_timer_t *t, nx_timer_cb cb);
/** Arms <t> to fire at <now_ms> + <delay_ms>; re-arming an active timer moves it. */
void nx_timer_start(nx_timer_wheel_t *w, nx_timer_t *t, uint64_t now_ms, uint64_t delay_ms);
/** Disarms <t>; a no-op when it is inactive. */
void nx_timer_stop(nx_timer_t *t);
/** True while <t> is armed. */
static inline bool nx_timer_active(const nx_timer_t *t) {
    return nx_list_linked(&t->link);
}
/** Milliseconds from <now_ms> until the earliest timer may fire (0 = due), -1 when none is
 *  armed; may be early (a cascade boundary), never late. */
int64_t nx_timer_wheel_next_ms(nx_timer_wheel_t *w, uint64_t now_ms);
/** Fires every timer due at or before <now_ms>; callbacks may start and stop any timer.
 *  Returns how many fired. */
size_t nx_timer_wheel_advance(nx_timer_wheel_t *w, uint64_t now_ms);
/** Armed timers. */
size_t nx_timer_wheel_count(const nx_timer_wheel_t *w);

#endif
