/* The event bus of the Events channel: execution and backend-health events published on any
 * shard reach the subscribers of every shard (SSE GET /events, WebSocket /ws with subprotocol
 * nexus.events), filtered by execution; reconnecting clients resume with Last-Event-ID from a
 * bounded ring of recent events. */
#ifndef NX_ENGINE_EVENTS_H
#define NX_ENGINE_EVENTS_H

#include "engine.h"

#include <jansson.h>

/* Bounds (see the README, "Events"). */
#define NX_EVENTS_RING 8192u                 /* recent events kept for replay */
#define NX_EVENTS_RING_BYTES (64u << 20)     /* and at most this many bytes of them */
#define NX_EVENTS_MAX_DATA (256u << 10)      /* larger data is cut (result/inputs dropped) */
#define NX_EVENTS_MAX_SUBSCRIBERS 1024u      /* per shard: SSE streams + WebSocket clients */
#define NX_EVENTS_MAX_QUEUE_BYTES (1u << 20) /* unsent bytes per subscriber: it waits then */
#define NX_EVENTS_STALL_MS 30000u     /* a waiting subscriber that reads nothing this long is cut */
#define NX_EVENTS_MAX_FILTERS 64u     /* executions one WebSocket client follows */
#define NX_EVENTS_KEEPALIVE_MS 15000u /* an SSE stream gets a comment this often */
#define NX_EVENTS_POLL_MS 1000u       /* a shard with subscribers checks the ring */
#define NX_EVENTS_HEALTH_MS 500u      /* backend status is compared this often */

typedef struct nx_events nx_events_t;

/** Creates the bus of <e> (e->events) before the shards start; 0 or -ENOMEM. */
int nx_events_new(nx_engine_t *e);
/** Frees the bus after every shard has stopped. NULL-safe. */
void nx_events_free(nx_engine_t *e);

/** Publishes event <type> with <data> (carries "execution" for execution events) from the
 *  calling shard to the subscribers on every shard. Small flat <data> is kept by reference and
 *  must not change afterwards; other data is serialized now. Cheap when nobody listens: a walk
 *  of the data (or one serialization) and a short locked append to the ring. */
void nx_events_publish(nx_engine_t *e, const char *type, const json_t *data);
/** nx_events_publish, later in the calling shard's loop turn: once the I/O it has queued (the
 *  calls a workflow step just sent, the answer to its client) has gone to the kernel, so that
 *  serializing and appending events never delays them. Events keep their order; <data> is
 *  kept by reference and must not change afterwards. Off the shards: at once. */
void nx_events_publish_soon(nx_engine_t *e, const char *type, json_t *data);

/* Shard lifecycle (engine.c). */
void nx_events_shard_start(nx_engine_shard_t *es);
/** Ends the SSE streams and closes the WebSocket event clients of <es> with 1001. */
void nx_events_shard_drain(nx_engine_shard_t *es);
/** Closes the WebSocket event clients of <es> now (grace period over). */
void nx_events_shard_close_all(nx_engine_shard_t *es);
/** At shard stop, after the connections are closed: no more deliveries on <es>. */
void nx_events_shard_stop(nx_engine_shard_t *es);
/** True while <es> still has WebSocket event clients (the drain waits for them). */
bool nx_events_shard_busy(nx_engine_shard_t *es);

/** Counts for /health: {subscribers, retained, last_event_id, evicted}. */
json_t *nx_events_health(const nx_engine_t *e);

/* Front ends. */
/** GET /events: the SSE stream (?execution=, ?last_event_id= or Last-Event-ID, ?follow=1). */
void nx_route_events(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                     const nx_route_match_t *m);
/** POST /debug/events (debug_routes): publishes {type, data, count} test events. */
void nx_route_debug_events(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                           const nx_route_match_t *m);
/** True when WebSocket upgrade <req> asks for events: subprotocol nexus.events offered, or
 *  ?events=1 on the URL. */
bool nx_events_ws_wanted(const nx_http_request_t *req);
/** Completes the handshake of <req> (or answers its error) and makes the connection a
 *  WebSocket event client of <es>. Call from a route handler. */
void nx_events_ws_accept(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req);

#endif
