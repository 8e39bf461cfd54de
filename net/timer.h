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
typedef struct nx_timer_wheel nx_timer_wheel_t;
typedef void (*nx_timer_cb)(nx_timer_t *t);

/* Embedded in its owner, which gets itself back with nx_container_of. Inactive while its link
 * is unlinked; the wheel never touches an inactive timer, so the owner may free it then. */
struct nx_timer {
    nx_list_t link;
    uint64_t expires_ms;
    nx_timer_cb cb;
    /* private: where the timer is linked, so that stop is O(1) */
    nx_timer_wheel_t *wheel;
    uint8_t level; /* NX_TIMER_LEVELS = the wheel's list of already-due timers */
    uint8_t slot;
};

/* Owned by one shard. Every tick up to <now_ms> has been processed. */
struct nx_timer_wheel {
    uint64_t now_ms;
    size_t count;                       /* armed timers */
    uint64_t occupied[NX_TIMER_LEVELS]; /* bit s set <=> slots[level][s] is non-empty */
    nx_list_t due;                      /* armed for a time the wheel has already passed */
    nx_list_t slots[NX_TIMER_LEVELS][NX_TIMER_SLOTS];
};

/** Prepares an empty wheel <w> whose clock starts at <now_ms>. */
void nx_timer_wheel_init(nx_timer_wheel_t *w, uint64_t now_ms);
/** Makes <t> an inactive timer that will call <cb>. */
void nx_timer_init(nx_timer_t *t, nx_timer_cb cb);
/** Arms <t> on <w> to fire at <now_ms> + <delay_ms> (never before the wheel's own clock plus
 *  <delay_ms>); re-arming an active timer moves it. */
void nx_timer_start(nx_timer_wheel_t *w, nx_timer_t *t, uint64_t now_ms, uint64_t delay_ms);
/** Disarms <t>; a no-op when it is inactive. O(1). */
void nx_timer_stop(nx_timer_t *t);
/** True while <t> is armed. */
static inline bool nx_timer_active(const nx_timer_t *t) {
    return nx_list_linked(&t->link);
}
/** Milliseconds from <now_ms> until the earliest timer of <w> may fire (0 = due now), or -1 when
 *  none is armed; may be early (when a timer moves down a level), never late. */
int64_t nx_timer_wheel_next_ms(nx_timer_wheel_t *w, uint64_t now_ms);
/** Fires every timer of <w> due at or before <now_ms>, tick by tick in order of expiry;
 *  callbacks may start and stop any timer. One a callback arms for a time already passed fires
 *  after the current batch of callbacks: later in this call, or in the next one. Returns how
 *  many fired. */
size_t nx_timer_wheel_advance(nx_timer_wheel_t *w, uint64_t now_ms);
/** Number of timers armed on <w>. */
size_t nx_timer_wheel_count(const nx_timer_wheel_t *w);

#endif
