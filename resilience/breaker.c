/* The circuit breaker's state machine. Everything that must change together (state, the time
 * the state began, a generation number and the half-open probe counts) lives in one 64-bit
 * word, so every transition and every probe admission is a single compare-and-swap that also
 * stamps the time: no mutex, no torn state, and exactly one thread wins each transition.
 *
 * The window is a ring of 16-bit slots, each tagged with the generation of the CLOSED period
 * that wrote it; slots of another generation count as empty, so a late outcome from an older
 * period can never open a newer one. */
#include "breaker.h"

#include "nexus/errors.h"

#include <stddef.h>

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the breaker needs lock-free 64-bit atomics");
_Static_assert(ATOMIC_SHORT_LOCK_FREE == 2, "the breaker needs lock-free 16-bit atomics");

/* word: since_ms | state | gen | probes admitted | probes succeeded (low to high bits) */
#define TIME_BITS 40
#define TIME_MASK ((UINT64_C(1) << TIME_BITS) - 1)
#define STATE_SHIFT 40
#define GEN_SHIFT 42
#define GEN_BITS 10
#define GEN_MASK ((1u << GEN_BITS) - 1)
#define ADMIT_SHIFT 52
#define OK_SHIFT 58
#define PROBE_MASK 63u

/* slot: failed (bit 0) | slow (bit 1) | written (bit 2) | gen (bits 3-12) */
#define SLOT_FAILED 1u
#define SLOT_SLOW 2u
#define SLOT_WRITTEN 4u
#define SLOT_GEN_SHIFT 3

static uint64_t w_since(uint64_t w) {
    return w & TIME_MASK;
}
static nx_breaker_state_t w_state(uint64_t w) {
    return (nx_breaker_state_t)((w >> STATE_SHIFT) & 3u);
}
static uint32_t w_gen(uint64_t w) {
    return (uint32_t)(w >> GEN_SHIFT) & GEN_MASK;
}
static uint32_t w_admitted(uint64_t w) {
    return (uint32_t)(w >> ADMIT_SHIFT) & PROBE_MASK;
}
static uint32_t w_ok(uint64_t w) {
    return (uint32_t)(w >> OK_SHIFT) & PROBE_MASK;
}
static uint64_t w_pack(uint64_t since_ms, nx_breaker_state_t s, uint32_t gen, uint32_t admitted,
                       uint32_t ok) {
    return (since_ms & TIME_MASK) | (uint64_t)s << STATE_SHIFT |
           (uint64_t)(gen & GEN_MASK) << GEN_SHIFT |
           (uint64_t)(admitted & PROBE_MASK) << ADMIT_SHIFT |
           (uint64_t)(ok & PROBE_MASK) << OK_SHIFT;
}

/* Milliseconds from the 40-bit stamp <since> to <now_ms>, modulo 2^40 so that a clock past
 * 2^40 ms still works. Shards read the clock at slightly different moments, so a <now_ms> a
 * little older than the stamp is normal: that is 0 ms, not 2^40. */
static uint64_t elapsed_ms(uint64_t now_ms, uint64_t since) {
    uint64_t d = (now_ms - since) & TIME_MASK;
    return d >= (UINT64_C(1) << (TIME_BITS - 1)) ? 0 : d;
}

static void count(_Atomic uint64_t *c) {
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void nx_breaker_config_default(nx_breaker_config_t *cfg) {
    *cfg = (nx_breaker_config_t){
        .window_size = 100,
        .minimum_calls = 20,
        .failure_rate_threshold = 50,
        .slow_call_rate_threshold = 100,
        .slow_call_duration_ms = 10000,
        .open_duration_ms = 30000,
        .half_open_max_calls = 3,
        .probe_timeout_ms = 10000,
    };
}

int nx_breaker_init(nx_breaker_t *b, const nx_breaker_config_t *cfg) {
    if (cfg->window_size == 0 || cfg->window_size > NX_BREAKER_WINDOW_MAX ||
        cfg->minimum_calls > cfg->window_size || cfg->failure_rate_threshold > 100 ||
        cfg->slow_call_rate_threshold > 100 || cfg->half_open_max_calls == 0 ||
        cfg->half_open_max_calls > NX_BREAKER_PROBES_MAX || cfg->probe_timeout_ms == 0)
        return NX_ECONFIG;
    b->cfg = *cfg;
    if (b->cfg.minimum_calls == 0) b->cfg.minimum_calls = 1;
    atomic_init(&b->word, w_pack(0, NX_BREAKER_CLOSED, 0, 0, 0));
    atomic_init(&b->seq, 0);
    _Atomic uint64_t *counters[] = {&b->calls,        &b->failures,       &b->slow,  &b->rejections,
                                    &b->probes,       &b->probe_timeouts, &b->stale, &b->to_open,
                                    &b->to_half_open, &b->to_closed};
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        atomic_init(counters[i], 0);
    for (size_t i = 0; i < NX_BREAKER_WINDOW_MAX; i++)
        atomic_init(&b->window[i], 0);
    return 0;
}

/* The one transition function: moves <b> from the state in *<w> to <to> at <now_ms>, starting
 * a new generation with no probes. Returns true if this thread made the move (then *<w> is the
 * new word); false if the word had changed, and then *<w> holds its current value. */
static bool transition(nx_breaker_t *b, uint64_t *w, nx_breaker_state_t to, uint64_t now_ms) {
    uint64_t next = w_pack(now_ms, to, w_gen(*w) + 1, 0, 0);
    if (!atomic_compare_exchange_strong(&b->word, w, next)) return false;
    *w = next;
    switch (to) {
    case NX_BREAKER_CLOSED:
        /* A fresh window. Slots of older generations would count as empty anyway; clearing
         * them keeps a 10-bit generation from ever matching a slot written 1024 periods ago.
         * A slot a new-generation call fills while we clear may be lost: one outcome. */
        for (uint32_t i = 0; i < b->cfg.window_size; i++)
            atomic_store_explicit(&b->window[i], 0, memory_order_relaxed);
        count(&b->to_closed);
        break;
    case NX_BREAKER_OPEN:
        count(&b->to_open);
        break;
    case NX_BREAKER_HALF_OPEN:
        count(&b->to_half_open);
        break;
    }
    return true;
}

bool nx_breaker_allow(nx_breaker_t *b, uint64_t now_ms, nx_breaker_permit_t *permit) {
    uint64_t w = atomic_load(&b->word);
    for (;;) {
        switch (w_state(w)) {
        case NX_BREAKER_CLOSED:
            *permit = (nx_breaker_permit_t){.start_ms = now_ms, .gen = w_gen(w), .probe = false};
            return true;
        case NX_BREAKER_OPEN:
            if (elapsed_ms(now_ms, w_since(w)) < b->cfg.open_duration_ms) goto reject;
            transition(b, &w, NX_BREAKER_HALF_OPEN, now_ms);
            continue; /* half-open now (by us or another thread), or changed again: re-read */
        case NX_BREAKER_HALF_OPEN: {
            uint32_t admitted = w_admitted(w);
            if (admitted < b->cfg.half_open_max_calls) {
                /* The stamp becomes the latest admission, which the probe timeout runs from;
                 * a lagging clock never moves it back. */
                uint64_t since = elapsed_ms(now_ms, w_since(w)) > 0 ? now_ms : w_since(w);
                uint64_t next =
                    w_pack(since, NX_BREAKER_HALF_OPEN, w_gen(w), admitted + 1, w_ok(w));
                if (!atomic_compare_exchange_weak(&b->word, &w, next)) continue;
                count(&b->probes);
                *permit = (nx_breaker_permit_t){.start_ms = now_ms, .gen = w_gen(w), .probe = true};
                return true;
            }
            /* All probes are out. The newest was admitted probe_timeout_ms ago, so every probe
             * still silent is overdue: count that as a failure rather than wait forever. */
            if (elapsed_ms(now_ms, w_since(w)) >= b->cfg.probe_timeout_ms) {
                if (transition(b, &w, NX_BREAKER_OPEN, now_ms)) count(&b->probe_timeouts);
                continue;
            }
            goto reject;
        }
        }
        goto reject; /* not reached: the state is always one of the three */
    }
reject:
    count(&b->rejections);
    *permit = (nx_breaker_permit_t){0};
    return false;
}

/* Counts the current generation's outcomes in the window. */
static nx_breaker_window_t window_count(nx_breaker_t *b, uint32_t gen) {
    nx_breaker_window_t c = {0};
    for (uint32_t i = 0; i < b->cfg.window_size; i++) {
        uint32_t s = atomic_load_explicit(&b->window[i], memory_order_relaxed);
        if (!(s & SLOT_WRITTEN) || (s >> SLOT_GEN_SHIFT) != gen) continue;
        c.calls++;
        c.failures += s & SLOT_FAILED;
        c.slow += (s & SLOT_SLOW) >> 1;
    }
    return c;
}

static bool window_trips(const nx_breaker_config_t *cfg, nx_breaker_window_t c) {
    if (c.calls < cfg->minimum_calls) return false;
    if (cfg->failure_rate_threshold > 0 &&
        (uint64_t)c.failures * 100 >= (uint64_t)cfg->failure_rate_threshold * c.calls)
        return true;
    return cfg->slow_call_rate_threshold > 0 &&
           (uint64_t)c.slow * 100 >= (uint64_t)cfg->slow_call_rate_threshold * c.calls;
}

void nx_breaker_record(nx_breaker_t *b, const nx_breaker_permit_t *permit, uint64_t now_ms,
                       bool success) {
    uint64_t duration = now_ms > permit->start_ms ? now_ms - permit->start_ms : 0;
    bool slow = b->cfg.slow_call_duration_ms > 0 && duration >= b->cfg.slow_call_duration_ms;
    count(&b->calls);
    if (!success) count(&b->failures);
    if (slow) count(&b->slow);

    uint64_t w = atomic_load(&b->word);
    if (w_gen(w) != permit->gen) {
        count(&b->stale);
        return;
    }
    if (!permit->probe) {
        /* The generation matches, so the breaker is still in the CLOSED period that admitted
         * the call. */
        uint64_t i = atomic_fetch_add_explicit(&b->seq, 1, memory_order_relaxed);
        uint16_t slot = (uint16_t)(permit->gen << SLOT_GEN_SHIFT | SLOT_WRITTEN |
                                   (slow ? SLOT_SLOW : 0u) | (success ? 0u : SLOT_FAILED));
        atomic_store_explicit(&b->window[i % b->cfg.window_size], slot, memory_order_relaxed);
        /* A CLOSED word changes only by leaving CLOSED: if the swap fails, someone else did. */
        if (window_trips(&b->cfg, window_count(b, permit->gen)))
            transition(b, &w, NX_BREAKER_OPEN, now_ms);
        return;
    }
    bool late = duration >= b->cfg.probe_timeout_ms;
    while (w_gen(w) == permit->gen) {
        if (!success || slow || late) {
            if (!transition(b, &w, NX_BREAKER_OPEN, now_ms)) continue;
            if (late) count(&b->probe_timeouts);
            return;
        }
        uint32_t ok = w_ok(w) + 1;
        if (ok >= b->cfg.half_open_max_calls) {
            if (transition(b, &w, NX_BREAKER_CLOSED, now_ms)) return;
            continue;
        }
        uint64_t next = w_pack(w_since(w), NX_BREAKER_HALF_OPEN, w_gen(w), w_admitted(w), ok);
        if (atomic_compare_exchange_weak(&b->word, &w, next)) return;
    }
    /* Another probe failed or timed out first: this outcome belongs to a finished period. */
    count(&b->stale);
}

uint64_t nx_breaker_retry_after_ms(nx_breaker_t *b, uint64_t now_ms) {
    uint64_t w = atomic_load(&b->word);
    uint64_t e = elapsed_ms(now_ms, w_since(w));
    switch (w_state(w)) {
    case NX_BREAKER_CLOSED:
        return 0;
    case NX_BREAKER_OPEN:
        return e >= b->cfg.open_duration_ms ? 0 : b->cfg.open_duration_ms - e;
    case NX_BREAKER_HALF_OPEN:
        if (w_admitted(w) < b->cfg.half_open_max_calls) return 0;
        /* Overdue probes: the next allow opens the breaker again for a full period. */
        if (e >= b->cfg.probe_timeout_ms) return b->cfg.open_duration_ms;
        return b->cfg.probe_timeout_ms - e;
    }
    return 0;
}

nx_breaker_state_t nx_breaker_state(nx_breaker_t *b) {
    return w_state(atomic_load(&b->word));
}

void nx_breaker_stats(nx_breaker_t *b, nx_breaker_stats_t *out) {
    *out = (nx_breaker_stats_t){
        .calls = atomic_load_explicit(&b->calls, memory_order_relaxed),
        .failures = atomic_load_explicit(&b->failures, memory_order_relaxed),
        .slow = atomic_load_explicit(&b->slow, memory_order_relaxed),
        .rejections = atomic_load_explicit(&b->rejections, memory_order_relaxed),
        .probes = atomic_load_explicit(&b->probes, memory_order_relaxed),
        .probe_timeouts = atomic_load_explicit(&b->probe_timeouts, memory_order_relaxed),
        .stale = atomic_load_explicit(&b->stale, memory_order_relaxed),
        .to_open = atomic_load_explicit(&b->to_open, memory_order_relaxed),
        .to_half_open = atomic_load_explicit(&b->to_half_open, memory_order_relaxed),
        .to_closed = atomic_load_explicit(&b->to_closed, memory_order_relaxed),
    };
    out->transitions = out->to_open + out->to_half_open + out->to_closed;
}

void nx_breaker_window(nx_breaker_t *b, nx_breaker_window_t *out) {
    uint64_t w = atomic_load(&b->word);
    if (w_state(w) != NX_BREAKER_CLOSED) {
        *out = (nx_breaker_window_t){0};
        return;
    }
    *out = window_count(b, w_gen(w));
}

const char *nx_breaker_state_name(nx_breaker_state_t s) {
    static const char *const names[] = {
        [NX_BREAKER_CLOSED] = "closed",
        [NX_BREAKER_OPEN] = "open",
        [NX_BREAKER_HALF_OPEN] = "half_open",
    };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "invalid";
}
