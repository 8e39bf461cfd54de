/* Timer wheel (see timer.h). Level L holds timers due within 64^(L+1) ticks, in the slot of
 * bits [6L, 6L+6) of their expiry; when a lower level wraps, the matching slot of the level
 * above is re-inserted (cascaded) one level down. Timers further out than the top level can
 * reach are parked at its far end and re-inserted until they are in range. */
#include "timer.h"

#define LEVEL_SPAN(l) (1ull << (NX_TIMER_SLOT_BITS * ((l) + 1)))
#define SLOT_MASK (NX_TIMER_SLOTS - 1)
/* Furthest distance placed directly; keeps a top-level slot from aliasing the current one. */
#define MAX_PLACE (LEVEL_SPAN(NX_TIMER_LEVELS - 1) - LEVEL_SPAN(NX_TIMER_LEVELS - 2))

void nx_timer_wheel_init(nx_timer_wheel_t *w, uint64_t now_ms) {
    w->now_ms = now_ms;
    for (int l = 0; l < NX_TIMER_LEVELS; l++) {
        w->level_count[l] = 0;
        for (unsigned s = 0; s < NX_TIMER_SLOTS; s++) nx_list_init(&w->slots[l][s]);
    }
}

void nx_timer_init(nx_timer_t *t, nx_timer_cb cb) {
    nx_list_init(&t->link);
    t->expires_ms = 0;
    t->cb = cb;
    t->wheel = NULL;
    t->level = 0;
}

/* Links <t> into the slot its expiry maps to relative to the wheel's current tick. */
static void place(nx_timer_wheel_t *w, nx_timer_t *t) {
    uint64_t at = t->expires_ms;
    /* Already due: fire on the next tick (the current one's slot has been emptied). */
    if (at <= w->now_ms) at = w->now_ms + 1;
    uint64_t delta = at - w->now_ms;
    if (delta > MAX_PLACE) {
        delta = MAX_PLACE;
        at = w->now_ms + MAX_PLACE;
    }
    int level = 0;
    while (level < NX_TIMER_LEVELS - 1 && delta >= LEVEL_SPAN(level)) level++;
    unsigned slot = (unsigned)(at >> (NX_TIMER_SLOT_BITS * level)) & SLOT_MASK;
    nx_list_insert_tail(&w->slots[level][slot], &t->link);
    t->wheel = w;
    t->level = (uint8_t)level;
    w->level_count[level]++;
}

static void unlink_timer(nx_timer_t *t) {
    nx_list_remove(&t->link);
    t->wheel->level_count[t->level]--;
    t->wheel = NULL;
}

void nx_timer_start(nx_timer_wheel_t *w, nx_timer_t *t, uint64_t now_ms, uint64_t delay_ms) {
    if (nx_timer_active(t)) unlink_timer(t);
    uint64_t base = now_ms > w->now_ms ? now_ms : w->now_ms;
    t->expires_ms = delay_ms > UINT64_MAX - base ? UINT64_MAX : base + delay_ms;
    place(w, t);
}

void nx_timer_stop(nx_timer_t *t) {
    if (nx_timer_active(t)) unlink_timer(t);
}

size_t nx_timer_wheel_count(const nx_timer_wheel_t *w) {
    size_t n = 0;
    for (int l = 0; l < NX_TIMER_LEVELS; l++) n += w->level_count[l];
    return n;
}

/* Moves every timer of list <h> onto the local list <to>, leaving <h> empty. */
static void splice_out(nx_list_t *h, nx_list_t *to) {
    nx_list_init(to);
    if (nx_list_empty(h)) return;
    to->next = h->next;
    to->prev = h->prev;
    to->next->prev = to;
    to->prev->next = to;
    nx_list_init(h);
}

static void cascade(nx_timer_wheel_t *w, int level, unsigned slot) {
    nx_list_t moving, *n;
    /* Splice the whole slot out first: re-placing may put a timer back into this same slot. */
    splice_out(&w->slots[level][slot], &moving);
    while ((n = nx_list_pop_head(&moving)) != NULL) {
        nx_timer_t *t = nx_container_of(n, nx_timer_t, link);
        w->level_count[level]--;
        place(w, t);
    }
}

size_t nx_timer_wheel_advance(nx_timer_wheel_t *w, uint64_t now_ms) {
    size_t fired = 0;
    while (w->now_ms < now_ms) {
        if (nx_timer_wheel_count(w) == 0) {
            w->now_ms = now_ms; /* nothing armed: jump straight there */
            break;
        }
        uint64_t tick = ++w->now_ms;
        /* Higher levels first, so a timer cascading two levels lands in time. */
        for (int l = NX_TIMER_LEVELS - 1; l >= 1; l--) {
            if ((tick & (LEVEL_SPAN(l - 1) - 1)) == 0)
                cascade(w, l, (unsigned)(tick >> (NX_TIMER_SLOT_BITS * l)) & SLOT_MASK);
        }
        nx_list_t due, *n;
        splice_out(&w->slots[0][tick & SLOT_MASK], &due);
        while ((n = nx_list_pop_head(&due)) != NULL) {
            nx_timer_t *t = nx_container_of(n, nx_timer_t, link);
            w->level_count[0]--;
            t->wheel = NULL;
            if (t->expires_ms > tick) { /* a parked far-future timer: not yet */
                place(w, t);
                continue;
            }
            fired++;
            t->cb(t);
        }
    }
    return fired;
}

int64_t nx_timer_wheel_next_ms(nx_timer_wheel_t *w, uint64_t now_ms) {
    uint64_t best = UINT64_MAX;
    if (w->level_count[0] > 0) {
        for (unsigned k = 1; k < NX_TIMER_SLOTS; k++) {
            uint64_t tick = w->now_ms + k;
            if (!nx_list_empty(&w->slots[0][tick & SLOT_MASK])) {
                best = tick;
                break;
            }
        }
    }
    /* A higher-level timer can only become due after the next level-0 wrap, when it cascades. */
    for (int l = 1; l < NX_TIMER_LEVELS; l++) {
        if (w->level_count[l] > 0) {
            uint64_t boundary = (w->now_ms / NX_TIMER_SLOTS + 1) * NX_TIMER_SLOTS;
            if (boundary < best) best = boundary;
            break;
        }
    }
    if (best == UINT64_MAX) return -1;
    return best <= now_ms ? 0 : (int64_t)(best - now_ms);
}
