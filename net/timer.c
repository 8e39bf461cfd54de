/* Timer wheel (see timer.h). Level L holds timers due 64^L to 64^(L+1) ticks ahead, in the slot
 * of bits [6L, 6L+6) of their expiry. When the clock enters the 64^L-tick block a level-L slot
 * stands for, that slot is cascaded: its timers are re-placed relative to that tick, so each
 * moves down at most three times (plus once per 4.7 h when parked beyond the top level) and
 * level 0 slots hold only timers due on exactly their tick. A bitmap per level lets
 * advance jump straight to the next tick where something happens. */
#include "timer.h"

#define SHIFT(l) (NX_TIMER_SLOT_BITS * (l))
#define SPAN(l) (1ull << SHIFT((l) + 1)) /* ticks level l reaches ahead */
#define SLOT_MASK (NX_TIMER_SLOTS - 1)
#define DUE_LEVEL NX_TIMER_LEVELS
/* Timers further out than the top level reaches are parked at its far end; each cascade of
 * their slot re-places them by their real expiry, so only level 3 ever holds a parked timer. */
#define MAX_DELTA (SPAN(NX_TIMER_LEVELS - 1) - 1)

void nx_timer_wheel_init(nx_timer_wheel_t *w, uint64_t now_ms) {
    w->now_ms = now_ms;
    w->count = 0;
    nx_list_init(&w->due);
    for (int l = 0; l < NX_TIMER_LEVELS; l++) {
        w->occupied[l] = 0;
        for (unsigned s = 0; s < NX_TIMER_SLOTS; s++)
            nx_list_init(&w->slots[l][s]);
    }
}

void nx_timer_init(nx_timer_t *t, nx_timer_cb cb) {
    nx_list_init(&t->link);
    t->expires_ms = 0;
    t->cb = cb;
    t->wheel = NULL;
    t->level = 0;
    t->slot = 0;
}

/* Links <t> where its expiry belongs relative to the wheel's clock; does not count it. */
static void place(nx_timer_wheel_t *w, nx_timer_t *t) {
    t->wheel = w;
    if (t->expires_ms <= w->now_ms) {
        /* That tick's slot has been (or is being) processed: the due list is run next. */
        t->level = DUE_LEVEL;
        nx_list_insert_tail(&w->due, &t->link);
        return;
    }
    uint64_t delta = t->expires_ms - w->now_ms, at = t->expires_ms;
    if (delta > MAX_DELTA) {
        delta = MAX_DELTA;
        at = w->now_ms + MAX_DELTA;
    }
    int level = 0;
    while (delta >= SPAN(level))
        level++;
    unsigned slot = (unsigned)(at >> SHIFT(level)) & SLOT_MASK;
    t->level = (uint8_t)level;
    t->slot = (uint8_t)slot;
    nx_list_insert_tail(&w->slots[level][slot], &t->link);
    w->occupied[level] |= 1ull << slot;
}

void nx_timer_start(nx_timer_wheel_t *w, nx_timer_t *t, uint64_t now_ms, uint64_t delay_ms) {
    nx_timer_stop(t);
    uint64_t base = now_ms > w->now_ms ? now_ms : w->now_ms;
    t->expires_ms = delay_ms > UINT64_MAX - base ? UINT64_MAX : base + delay_ms;
    place(w, t);
    w->count++;
}

void nx_timer_stop(nx_timer_t *t) {
    if (!nx_timer_active(t)) return;
    nx_timer_wheel_t *w = t->wheel;
    nx_list_remove(&t->link);
    w->count--;
    if (t->level != DUE_LEVEL && nx_list_empty(&w->slots[t->level][t->slot]))
        w->occupied[t->level] &= ~(1ull << t->slot);
}

size_t nx_timer_wheel_count(const nx_timer_wheel_t *w) {
    return w->count;
}

static void take_slot(nx_timer_wheel_t *w, int l, unsigned s, nx_list_t *to) {
    w->occupied[l] &= ~(1ull << s);
    nx_list_move_all(to, &w->slots[l][s]);
}

static inline uint64_t rotr64(uint64_t x, unsigned s) {
    return s == 0 ? x : (x >> s) | (x << (64 - s));
}

/* The first tick after the wheel's clock at which a slot holding timers is processed (fired
 * for level 0, cascaded for the others), or UINT64_MAX when every slot is empty. */
static uint64_t next_event_tick(const nx_timer_wheel_t *w) {
    uint64_t best = UINT64_MAX;
    for (int l = 0; l < NX_TIMER_LEVELS; l++) {
        if (w->occupied[l] == 0) continue;
        /* Slot s of level l is processed when the clock enters a 64^l block k with k % 64 == s;
         * the first block after the current one is g + 1. */
        uint64_t g = w->now_ms >> SHIFT(l);
        uint64_t bits = rotr64(w->occupied[l], (unsigned)((g + 1) & SLOT_MASK));
        uint64_t tick = (g + 1 + (uint64_t)__builtin_ctzll(bits)) << SHIFT(l);
        if (tick < best) best = tick;
    }
    return best;
}

/* Fires the timers on local list <h>; callbacks may stop the ones still on it. */
static size_t fire_list(nx_timer_wheel_t *w, nx_list_t *h) {
    size_t fired = 0;
    nx_list_t *n;
    while ((n = nx_list_pop_head(h)) != NULL) {
        nx_timer_t *t = nx_container_of(n, nx_timer_t, link);
        w->count--;
        fired++;
        t->cb(t);
    }
    return fired;
}

/* Runs the timers that were armed for a time already passed, as of now. */
static size_t run_due(nx_timer_wheel_t *w) {
    if (nx_list_empty(&w->due)) return 0;
    nx_list_t batch;
    /* Take the batch first: what its callbacks arm for "now" waits for the next batch, so a
     * timer re-arming itself with no delay cannot keep advance spinning. */
    nx_list_move_all(&batch, &w->due);
    return fire_list(w, &batch);
}

/* Processes tick <tick>: cascades the slots whose block starts here, then fires level 0's. */
static size_t run_tick(nx_timer_wheel_t *w, uint64_t tick) {
    nx_list_t moving, *n;
    w->now_ms = tick;
    /* A cascaded timer lands on level 0, in a later block of a lower level, or (due exactly
     * now) on the due list: never in a slot this tick has yet to take. */
    for (int l = NX_TIMER_LEVELS - 1; l >= 1; l--) {
        if ((tick & ((1ull << SHIFT(l)) - 1)) != 0) continue;
        unsigned s = (unsigned)(tick >> SHIFT(l)) & SLOT_MASK;
        if ((w->occupied[l] & (1ull << s)) == 0) continue;
        take_slot(w, l, s, &moving);
        while ((n = nx_list_pop_head(&moving)) != NULL)
            place(w, nx_container_of(n, nx_timer_t, link));
    }
    nx_list_t firing;
    take_slot(w, 0, (unsigned)tick & SLOT_MASK, &firing);
    return fire_list(w, &firing);
}

size_t nx_timer_wheel_advance(nx_timer_wheel_t *w, uint64_t now_ms) {
    size_t fired = run_due(w);
    while (w->now_ms < now_ms) {
        uint64_t tick = next_event_tick(w);
        if (tick > now_ms) { /* nothing happens before now_ms: jump there */
            w->now_ms = now_ms;
            break;
        }
        fired += run_tick(w, tick);
        fired += run_due(w); /* cascaded to exactly this tick, or armed by its callbacks */
    }
    return fired;
}

int64_t nx_timer_wheel_next_ms(nx_timer_wheel_t *w, uint64_t now_ms) {
    if (!nx_list_empty(&w->due)) return 0;
    uint64_t tick = next_event_tick(w);
    if (tick == UINT64_MAX) return -1;
    if (tick <= now_ms) return 0;
    uint64_t d = tick - now_ms;
    return d > INT64_MAX ? INT64_MAX : (int64_t)d;
}
