/* Inside the Events channel: the subscriber that the bus (events.c) delivers to and the two
 * front ends (events_sse.c, events_ws.c) embed. A subscriber lives on one shard and is touched
 * only by that shard's thread.
 *
 * Flow control: when a subscriber's connection has NX_EVENTS_MAX_QUEUE_BYTES unsent, the bus
 * stops handing it events (its cursor stays put) and later catches it up from the ring once
 * the bytes have gone, so a client reading a large backlog is paced rather than cut. It is cut
 * (ops->overflow) when the ring drops an event it still needs, or when it reads nothing for
 * NX_EVENTS_STALL_MS. */
#ifndef NX_ENGINE_EVENTS_INTERNAL_H
#define NX_ENGINE_EVENTS_INTERNAL_H

#include "event_ring.h"
#include "events.h"

#include "nexus/list.h"
#include "buf.h"
#include "shard.h"

typedef struct nx_event_sub nx_event_sub_t;

/* What the bus calls on a subscriber, always on its shard's thread. */
typedef struct nx_event_sub_ops {
    /* An event the subscriber's filters match, in id order (borrowed for the call; not const:
     * reading a lazy event's text writes it out). The callee may detach and free the
     * subscriber from inside, and must when it cannot send the event (out of memory). */
    void (*deliver)(nx_event_sub_t *s, nx_event_t *ev);
    /* Events after <after> and before <oldest> are gone from the ring: the subscriber cannot
     * have them (resumed too late, or its shard fell behind the ring). */
    void (*lost)(nx_event_sub_t *s, uint64_t after, uint64_t oldest);
    /* The shard drains: end gracefully (SSE: end the stream; WebSocket: close 1001). */
    void (*drain)(nx_event_sub_t *s);
    /* Bytes queued on the subscriber's connection and not yet sent. */
    size_t (*unsent)(const nx_event_sub_t *s);
    /* Too slow: the bus has detached it; <next_id> is the first event it did not get. Say so
     * and close (SSE: a final overflow event; WebSocket: close 1008). */
    void (*overflow)(nx_event_sub_t *s, uint64_t next_id);
} nx_event_sub_ops_t;

/* Embedded in an SSE stream or a WebSocket connection, which owns it. */
struct nx_event_sub {
    nx_list_t link; /* in its shard's subscriber list while attached */
    const nx_event_sub_ops_t *ops;
    nx_engine_shard_t *es;
    uint64_t cursor; /* every event up to this id was delivered or did not match */
    bool attached;
    bool paused;           /* its connection is backed up: it catches up from the ring later */
    uint64_t paused_at_ms; /* since when it has made no progress */
    nx_timer_t resume;     /* while paused: checks whether the bytes went */
    bool all;              /* every event */
    uint32_t exec_count;   /* and the events of these executions */
    char (*execs)[NX_EVENT_EXEC_MAX]; /* heap, NX_EVENTS_MAX_FILTERS slots once needed */
};

/* What a subscribe found besides the events themselves. */
typedef struct nx_event_replay {
    nx_event_t **events; /* references, oldest first; nx__events_replay_finish drops them */
    size_t count;
    uint64_t last_id;    /* newest id when subscribing: live events come after it */
    bool lost;           /* the requested resume point is gone from the ring */
    uint64_t lost_after; /* the id asked to resume after */
    uint64_t oldest;     /* the oldest id still retained */
    bool unknown;        /* the resume id was never issued by this process */
    bool terminal_seen;  /* the replay holds the terminal event of the filter's execution */
    bool resumable;      /* the replay is exactly the ring after some id under the filters
                          * (no earlier filter): it may pause and go on from the ring */
} nx_event_replay_t;

/** Attaches <s> to the bus on its shard (s->es): 0, or NX_EFULL when the shard already has
 *  NX_EVENTS_MAX_SUBSCRIBERS, or NX_ECLOSED when the shard is draining. */
int nx__events_attach(nx_event_sub_t *s, const nx_event_sub_ops_t *ops, nx_engine_shard_t *es);
/** Detaches <s> (no more deliveries) and frees its filters; idempotent. */
void nx__events_detach(nx_event_sub_t *s);
/** Adds the filter <execution> (NULL = every event) to attached <s> and collects into <r> what
 *  it must receive first: with <has_after>, the matching retained events after <after>;
 *  without, an execution's retained events from its start, or nothing for every event. Returns
 *  0, NX_ELIMIT (NX_EVENTS_MAX_FILTERS reached) or -ENOMEM; <r> is filled only on 0. */
int nx__events_subscribe(nx_event_sub_t *s, const char *execution, bool has_after, uint64_t after,
                         nx_event_replay_t *r);
/** Delivers the events of <r> to <s> (those still after its cursor) and drops <r>'s
 *  references. <s> may be detached and freed by a delivery: then pass nothing else to it. */
void nx__events_replay_finish(nx_event_sub_t *s, nx_event_replay_t *r);
/** Drops <r>'s references without delivering. */
void nx__events_replay_drop(nx_event_replay_t *r);
/** Removes filter <execution> (NULL = all of them) from <s>; returns how many went. */
uint32_t nx__events_unsubscribe(nx_event_sub_t *s, const char *execution);
/** True when <s>'s filters match <ev>. */
bool nx__events_sub_matches(const nx_event_sub_t *s, const nx_event_t *ev);
/** True when <s> has execution <id> among its filters. */
bool nx__events_sub_has_exec(const nx_event_sub_t *s, const char *id);

/* The bus's state on one shard; touched by that shard only, except the atomics. */
typedef struct nx_events_shard {
    nx_msg_t wake;        /* the doorbell: posted when pending goes 0 -> 1, never freed */
    int pending;          /* atomic: a doorbell is on its way */
    uint32_t subscribers; /* atomic mirror of the list length: publishers read it */
    nx_list_t subs;       /* nx_event_sub_t.link */
    uint64_t cursor;      /* newest id this shard has taken from the ring */
    nx_timer_t poll;      /* while subscribed: catches a doorbell a full mailbox refused */
    nx_engine_shard_t *es;
    nx_events_t *bus;
    bool started, draining, stopped;
    nx_event_t **scratch; /* room for a whole ring of references */
    nx_buf_t out;         /* SSE framing scratch */
    nx_list_t ws_conns;   /* events_ws.c: WebSocket event clients */
    uint32_t ws_count;
    /* nx_events_publish_soon: what this shard will publish once its I/O is submitted */
    nx_later_t flush;
    struct nx_events_soon *soon;
    size_t soon_count, soon_cap;
} nx_events_shard_t;

/** The bus state of shard <es>. */
nx_events_shard_t *nx__events_shard(nx_engine_shard_t *es);

/* The WebSocket front end, called by the bus at shard stop. */
void nx__events_ws_close_all(nx_engine_shard_t *es);

#endif
