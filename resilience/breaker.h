/* Circuit breaker for one backend, shared by every shard: a count-based sliding window of the
 * last N call outcomes opens it, a timer (read lazily from the caller's clock) half-opens it,
 * and a few probe calls close it again. Lock-free: the whole state machine is one 64-bit atomic
 * word changed by compare-and-swap, the window is a ring of atomic slots. Pure: no I/O, the
 * monotonic clock is passed in as now_ms. */
#ifndef NX_RESILIENCE_BREAKER_H
#define NX_RESILIENCE_BREAKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define NX_BREAKER_WINDOW_MAX 1024u /* largest window_size */
#define NX_BREAKER_PROBES_MAX 63u   /* largest half_open_max_calls */

typedef enum nx_breaker_state {
    NX_BREAKER_CLOSED = 0, /* calls go; outcomes fill the window */
    NX_BREAKER_OPEN,       /* calls are rejected until open_duration_ms has passed */
    NX_BREAKER_HALF_OPEN,  /* up to half_open_max_calls probes go; the rest are rejected */
} nx_breaker_state_t;

/* Plain data, copied into the breaker by nx_breaker_init. Percentages are 0-100; a rate
 * threshold of 0 disables that rule. */
typedef struct nx_breaker_config {
    uint32_t window_size;              /* outcomes remembered, 1..NX_BREAKER_WINDOW_MAX */
    uint32_t minimum_calls;            /* no opening with fewer outcomes in the window */
    uint32_t failure_rate_threshold;   /* percent of failed calls that opens */
    uint32_t slow_call_rate_threshold; /* percent of slow calls that opens */
    uint64_t slow_call_duration_ms;    /* a call this long or longer is slow; 0 = none is */
    uint64_t open_duration_ms;         /* time OPEN before the next allow half-opens */
    uint32_t half_open_max_calls;      /* probes per half-open period, 1..NX_BREAKER_PROBES_MAX */
    uint64_t probe_timeout_ms;         /* a probe silent this long counts as failed; > 0 */
} nx_breaker_config_t;

/* Filled by nx_breaker_allow, handed back to nx_breaker_record; owned by the caller (usually
 * embedded in the call). <gen> ties the outcome to the state period that admitted it, so an
 * outcome that arrives after the breaker moved on is counted but does not steer it. */
typedef struct nx_breaker_permit {
    uint64_t start_ms; /* when the call was admitted; the duration decides slow calls */
    uint32_t gen;      /* state period that admitted the call */
    bool probe;        /* admitted as a half-open probe */
} nx_breaker_permit_t;

/* Cumulative counters for metrics; every field only grows. */
typedef struct nx_breaker_stats {
    uint64_t calls;          /* outcomes recorded */
    uint64_t failures;       /* of which failed */
    uint64_t slow;           /* of which slow (success or not) */
    uint64_t rejections;     /* nx_breaker_allow answers false */
    uint64_t probes;         /* calls admitted as half-open probes */
    uint64_t probe_timeouts; /* probes counted as failed because they took too long */
    uint64_t stale;          /* outcomes that arrived after their state period ended */
    uint64_t transitions;    /* sum of the three below */
    uint64_t to_open;
    uint64_t to_half_open;
    uint64_t to_closed;
} nx_breaker_stats_t;

/* The outcomes currently in the window (the current CLOSED period only). */
typedef struct nx_breaker_window {
    uint32_t calls;
    uint32_t failures;
    uint32_t slow;
} nx_breaker_window_t;

/* One per backend, engine-wide: owned by whoever owns the backend's configuration and shared
 * by pointer with every shard; all mutable fields are atomics, so any thread may call any
 * function below concurrently (except init). Embedded, no heap: nothing to dispose. */
typedef struct nx_breaker {
    nx_breaker_config_t cfg; /* immutable after init */
    /* The state machine in one word: since_ms (40 bits) | state (2) | gen (10) | probes
     * admitted (6) | probes succeeded (6). See breaker.c. */
    _Atomic uint64_t word;
    _Atomic uint64_t seq; /* outcomes written to the window so far: the next slot */
    _Atomic uint64_t calls, failures, slow, rejections, probes, probe_timeouts, stale;
    _Atomic uint64_t to_open, to_half_open, to_closed;
    _Atomic uint16_t window[NX_BREAKER_WINDOW_MAX]; /* 0 = empty, else gen | slow | failed */
} nx_breaker_t;

/** Fills <cfg> with the defaults: window 100, minimum 20 calls, 50% failures or 100% slow
 *  calls (slow = 10 000 ms) open for 30 000 ms, then 3 probes with a 10 000 ms timeout. */
void nx_breaker_config_default(nx_breaker_config_t *cfg);
/** Makes <b> a CLOSED breaker with an empty window, copying <cfg>; returns 0, or NX_ECONFIG
 *  when a size or percentage is out of range (then <b> is unusable). Not thread-safe: <b> must
 *  be initialized before it is shared. */
int nx_breaker_init(nx_breaker_t *b, const nx_breaker_config_t *cfg);
/** Asks whether a call to the backend may go at <now_ms> (monotonic ms). True: the call goes
 *  and <permit> (caller-owned) must be passed to exactly one nx_breaker_record. False: the
 *  breaker is open or its half-open probes are all taken; <permit> is zeroed. An OPEN breaker
 *  whose open_duration_ms has passed half-opens here; a HALF_OPEN one whose last probe was
 *  admitted probe_timeout_ms ago without all probes reporting opens again here. */
bool nx_breaker_allow(nx_breaker_t *b, uint64_t now_ms, nx_breaker_permit_t *permit);
/** Records the outcome of the call admitted with <permit>, finished at <now_ms>: <success>
 *  false for a failure; a duration of at least slow_call_duration_ms makes it slow. In CLOSED,
 *  the window opening rule is checked. A probe that failed, was slow or took probe_timeout_ms
 *  or more opens the breaker again; the last of half_open_max_calls good probes closes it with
 *  an empty window. <permit> is only read. */
void nx_breaker_record(nx_breaker_t *b, const nx_breaker_permit_t *permit, uint64_t now_ms,
                       bool success);
/** Milliseconds from <now_ms> until <b> may admit a call again, for a Retry-After hint: the rest
 *  of the open period, or of the last probe's timeout when all probes are out; 0 when a call
 *  would be admitted now. */
uint64_t nx_breaker_retry_after_ms(nx_breaker_t *b, uint64_t now_ms);
/** The stored state of <b>; OPEN turns HALF_OPEN only on the next nx_breaker_allow. */
nx_breaker_state_t nx_breaker_state(nx_breaker_t *b);
/** Copies the counters of <b> into <out> (each read atomically, not all at one instant). */
void nx_breaker_stats(nx_breaker_t *b, nx_breaker_stats_t *out);
/** Counts the outcomes in the current window of <b> into <out> (all zero unless CLOSED). */
void nx_breaker_window(nx_breaker_t *b, nx_breaker_window_t *out);
/** "closed", "open" or "half_open" for <s>; "invalid" for anything else. Static storage. */
const char *nx_breaker_state_name(nx_breaker_state_t s);

#endif
