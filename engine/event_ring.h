/* The events of the Events channel as data: an immutable, refcounted event carrying its wire
 * forms (SSE head, WebSocket payload around the same JSON text), and the bounded ring of recent
 * events that reconnecting clients replay from. Pure data, no locks, no I/O: the bus
 * (events.c) holds the lock around every ring call. Small flat data is written out lazily, by
 * whichever shard first delivers the event (most events are never read). */
#ifndef NX_ENGINE_EVENT_RING_H
#define NX_ENGINE_EVENT_RING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NX_EVENT_TYPE_MAX 32          /* event type, NUL included: [A-Za-z0-9._-] */
#define NX_EVENT_EXEC_MAX 48          /* execution id, NUL included */
#define NX_EVENT_WS_HEAD_MAX 128      /* room for {"type":"event","id":N,"event":T,"data": */
#define NX_EVENT_FLAT_STRING_MAX 1024 /* flat data has only strings shorter than this */

/* The written-out data of a lazy event: one block, set once. */
typedef struct nx_event_text {
    size_t len; /* the JSON text of the data */
    /* [NX_EVENT_WS_HEAD_MAX bytes whose tail holds the WS head][data]["}"][NUL] */
    char buf[];
} nx_event_text_t;

/* One published event. Shared by the ring and by every shard delivering it (nx_event_ref /
 * nx_event_unref, atomic); immutable once the ring has given it its id, except that a lazy
 * event's text is written once, by whichever reader comes first (an atomic compare-and-swap
 * on <text>). Read the data through nx_event_text / nx_event_ws_payload only. */
typedef struct nx_event {
    int refs;
    uint64_t id;                       /* 0 until pushed into a ring */
    char type[NX_EVENT_TYPE_MAX];      /* "step.finished" */
    char execution[NX_EVENT_EXEC_MAX]; /* the execution it belongs to; "" for other events */
    bool terminal;         /* execution.finished, execution.failed, execution.cancelled */
    struct nx_event *next; /* the ring's list of evicted events, for the caller */
    char sse_head[96];     /* "id: N\nevent: T\ndata: " */
    uint16_t sse_head_len;
    uint16_t ws_head_len;
    size_t charge;         /* bytes it accounts for in a ring: fixed at creation */
    size_t inline_len;     /* eager: the JSON text of data, one line (compact), in buf */
    json_t *json;          /* lazy: the flat data (a reference), kept until the event goes */
    size_t bound;          /* lazy: at least the length of its text */
    nx_event_text_t *text; /* lazy: NULL until first read (atomic) */
    /* [NX_EVENT_WS_HEAD_MAX bytes whose tail holds the WS head], then when eager:
     * [data]["}"][NUL] */
    char buf[];
} nx_event_t;

/** A new event of <type> (must be 1..31 of [A-Za-z0-9._-]) for <execution> (NULL or "" for
 *  none; cut at 47 bytes) whose data is the <len> bytes of compact JSON <data> (copied; no CR or
 *  LF). One reference, id 0. NULL on a bad type, CR/LF in data, or ENOMEM. */
nx_event_t *nx_event_new(const char *type, const char *execution, const char *data, size_t len);
/** True when <data> is flat: an object whose members are all strings (each shorter than
 *  NX_EVENT_FLAT_STRING_MAX bytes), numbers, booleans or null, whose compact text is at most
 *  <max> bytes by the bound that goes to <*bound> (at least that text's length). No
 *  allocation. */
bool nx_event_flat(const json_t *data, size_t max, size_t *bound);
/** An event of <type> for <execution> (as nx_event_new) with JSON <data> (NULL = {}): when
 *  <data> is flat within <max_data> bytes it keeps a reference to it (then <data> must not
 *  change afterwards) and writes its text only when first read; otherwise the text is written
 *  now, and data over <max_data> bytes loses its bulky members (strings of 1 KiB or more,
 *  objects, arrays) and says so ("truncated", "data_bytes"). One reference, id 0; NULL on a
 *  bad type or ENOMEM. */
nx_event_t *nx_event_from_json(const char *type, const char *execution, const json_t *data,
                               size_t max_data);
void nx_event_ref(nx_event_t *ev);
/** Drops a reference; the last one frees the event. NULL-safe. */
void nx_event_unref(nx_event_t *ev);
/** True while the event's data is kept as JSON rather than text. */
static inline bool nx_event_is_lazy(const nx_event_t *ev) {
    return ev->json != NULL;
}
/** The compact JSON text of the event's data, its length to <*len> (not NUL-terminated: the
 *  closing brace of the WS payload follows). Writes it out on first use, safely from several
 *  threads at once; NULL on ENOMEM. */
const char *nx_event_text(nx_event_t *ev, size_t *len);
/** The WebSocket text payload {"type":"event","id":N,"event":T,"data":{...}} (valid once the
 *  event has its id); its length goes to <*len>. NULL on ENOMEM, as nx_event_text. */
const char *nx_event_ws_payload(nx_event_t *ev, size_t *len);
/** Bytes the event accounts for in a ring: its text (for a lazy event, a bound on it) and, for
 *  a lazy event, an estimate of the JSON it keeps. Never changes. */
static inline size_t nx_event_bytes(const nx_event_t *ev) {
    return ev->charge;
}

/* The ring: ids are consecutive, so event <id> sits in slot id % cap and the ring retains
 * [first_id, last_id] (empty when first_id > last_id). Embedded by its owner (init/dispose). */
typedef struct nx_event_ring {
    nx_event_t **slots;
    uint32_t cap;
    uint32_t count;
    uint64_t first_id; /* oldest retained */
    uint64_t last_id;  /* newest issued; first_id - 1 before the first push */
    size_t bytes, max_bytes;
    uint64_t evicted; /* events dropped so far, by count or bytes */
} nx_event_ring_t;

/** Prepares <r> empty for at most <cap> (>= 1) events and <max_bytes> bytes; the first event
 *  gets id <first_id> (>= 1). Returns 0, -EINVAL or -ENOMEM. */
int nx_event_ring_init(nx_event_ring_t *r, uint32_t cap, size_t max_bytes, uint64_t first_id);
/** Drops the ring's reference to every event and frees the slots. NULL-safe. */
void nx_event_ring_dispose(nx_event_ring_t *r);
/** Gives <ev> (the ring takes the caller's reference) the next id, writes its wire heads and
 *  appends it, evicting the oldest events while over either bound (the newest is always kept).
 *  Returns the id; the evicted events, linked through <next>, go to <*evicted> for the caller
 *  to unref outside its lock (may be NULL: then they are dropped here). */
uint64_t nx_event_ring_push(nx_event_ring_t *r, nx_event_t *ev, nx_event_t **evicted);
/** The retained event <id> (borrowed), or NULL. */
nx_event_t *nx_event_ring_get(const nx_event_ring_t *r, uint64_t id);
/** The oldest retained id, or last_id + 1 when empty. */
static inline uint64_t nx_event_ring_oldest(const nx_event_ring_t *r) {
    return r->count ? r->first_id : r->last_id + 1;
}

/* Chooses which retained events a subscriber receives, without locks or I/O (the bus wraps it).
 * A subscriber has already been given everything up to <cursor> that matched its <old> filter;
 * it adds a <new> filter and asks for what matched it after <after>. */
typedef bool (*nx_event_match_fn)(const nx_event_t *ev, const void *filter);
typedef struct nx_event_pick {
    uint64_t cursor;             /* the subscriber's cursor before the call */
    nx_event_match_fn old_match; /* NULL = no filter yet */
    const void *old_filter;
    nx_event_match_fn new_match;
    const void *new_filter;
    uint64_t after; /* replay of the new filter starts after this id */
} nx_event_pick_t;

/** Appends to <out> new references to the events of <r>, in id order, that the subscriber must
 *  now receive: those after <cursor> matching the old filter, and those after <after> matching
 *  the new filter that the old one has not already sent. Stops at <cap> (room for r->count is
 * always enough). Returns how many. */
size_t nx_event_ring_pick(const nx_event_ring_t *r, const nx_event_pick_t *p, nx_event_t **out,
                          size_t cap);
/** Like pick with only a cursor: new references to up to <cap> events after <after>, oldest
 *  first (the live path of a shard). Returns how many. */
size_t nx_event_ring_since(const nx_event_ring_t *r, uint64_t after, nx_event_t **out, size_t cap);

#endif
