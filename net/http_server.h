/* The HTTP/1.1 server codec on top of nx_conn_t: drives the incremental parser, enforces the
 * header/body/keep-alive timeouts and size limits, answers protocol errors itself (with a JSON
 * body), keeps pipelined responses in order, applies backpressure, and hands each complete
 * request to the engine's handler. One nx_http_server_t per shard. */
#ifndef NX_NET_HTTP_SERVER_H
#define NX_NET_HTTP_SERVER_H

#include "conn.h"
#include "http1.h"
#include "listener.h"

typedef struct nx_http_server nx_http_server_t;
typedef struct nx_http_conn nx_http_conn_t;

/* Called for each complete request. <req> and everything it points at is valid only during
 * the call. The handler either answers at once (nx_http_respond) or calls nx_http_defer and
 * answers later. */
typedef void (*nx_http_handler_fn)(nx_http_server_t *srv, nx_http_conn_t *hc,
                                   nx_http_request_t *req);
/* Called after every response (also protocol errors answered by the server itself). */
typedef void (*nx_http_done_fn)(nx_http_server_t *srv, nx_http_conn_t *hc, int status,
                                uint64_t latency_ns);
/* A deferred request's connection went away; the engine must stop its work and forget <hc>. */
typedef void (*nx_http_abort_fn)(nx_http_conn_t *hc, void *arg);

typedef struct nx_http_server_opts {
    nx_http_limits_t limits;
    uint32_t header_timeout_ms;    /* the whole head must arrive within this (slowloris) */
    uint32_t body_timeout_ms;      /* the whole body must arrive within this */
    uint32_t keepalive_timeout_ms; /* idle time between requests */
    uint32_t max_connections;      /* per shard; beyond it new connections get 503 */
    uint32_t max_pending_output;   /* stop reading while this many response bytes are unsent */
} nx_http_server_opts_t;

/* Per-shard server; owned by the engine's shard state. */
struct nx_http_server {
    nx_shard_t *shard;
    nx_http_server_opts_t opts;
    nx_http_handler_fn handler;
    nx_http_done_fn on_done;
    void *user;
    uint32_t conn_count;
    bool draining;
    void (*on_drained)(nx_http_server_t *srv); /* draining and the last connection closed */
    nx_list_t conns;                           /* nx_http_conn_t.link */
    nx_list_t parser_pool;
    uint32_t parser_pool_size;
    /* The Date header value, refreshed at most once a second. */
    uint64_t date_sec;
    char date[40];
};

#define NX_HTTP_TAG_NONE UINT32_MAX

typedef enum nx_http_phase {
    NX_HTTP_PHASE_IDLE,     /* between requests (keep-alive) */
    NX_HTTP_PHASE_HEAD,     /* reading a request head */
    NX_HTTP_PHASE_BODY,     /* head parsed, reading the body */
    NX_HTTP_PHASE_DEFERRED, /* the handler answers later */
    NX_HTTP_PHASE_DONE,     /* final response queued; closing */
} nx_http_phase_t;

/* One client connection speaking HTTP/1.1; owned by its nx_conn_t (freed in on_free). */
struct nx_http_conn {
    nx_list_t link;
    nx_http_server_t *srv;
    nx_conn_t *conn;
    nx_http_parser_t *parser; /* borrowed from the shard's pool only while a request is partial */
    nx_buf_t in;              /* bytes of a partial or not yet processed request */
    nx_timer_t timer;
    nx_http_phase_t phase;
    bool keep_alive; /* of the current request */
    bool head_only;  /* current request is HEAD: no body in the response */
    bool continue_sent;
    bool processing; /* inside process_input (guards re-entry from handlers) */
    uint8_t version_minor;
    uint64_t start_ns; /* when the current request's first byte arrived */
    nx_http_abort_fn abort_fn;
    void *abort_arg;
    bool streaming;                   /* a streamed (chunked) response is in progress */
    const nx_conn_ops_t *upgrade_ops; /* set by nx_http_upgrade: the codec taking over */
    void *upgrade_codec;
    uint16_t stream_status;
    uint32_t tag;         /* the engine's per-request label (route index for metrics);
                           * NX_HTTP_TAG_NONE until the engine sets it */
    uint64_t request_seq; /* requests served on this connection */
};

/** Prepares <srv> on shard <s> (call on the shard thread). */
void nx_http_server_init(nx_http_server_t *srv, nx_shard_t *s, const nx_http_server_opts_t *o,
                         nx_http_handler_fn handler, nx_http_done_fn on_done, void *user);
/** Releases pooled parsers; call after every connection is gone. */
void nx_http_server_dispose(nx_http_server_t *srv);
/** Accept callback for nx_listener_start (listener data = the nx_http_server_t). */
void nx_http_server_accept(nx_listener_t *ls, int fd);
/** Stops keep-alive: idle connections close now, busy ones after their response. */
void nx_http_server_drain(nx_http_server_t *srv);
/** Closes every connection now (end of the drain grace period). */
void nx_http_server_close_all(nx_http_server_t *srv);

/** Queues a complete response to the current request of <hc>. <extra_headers> is NULL or
 *  preformatted "Name: value\r\n" lines. The body is copied. */
void nx_http_respond(nx_http_conn_t *hc, int status, const char *content_type, const void *body,
                     size_t body_len, const char *extra_headers);
/** Answers with {"error":{"code":<status>,"message":<message>}} (message JSON-escaped). */
void nx_http_respond_error(nx_http_conn_t *hc, int status, const char *message,
                           const char *extra_headers);
/** Starts a streamed response to the current request (chunked on HTTP/1.1, close-delimited on
 *  1.0), deferring it: <abort> runs if the client goes away before nx_http_stream_end. */
int nx_http_stream_begin(nx_http_conn_t *hc, int status, const char *content_type,
                         const char *extra_headers, nx_http_abort_fn abort, void *arg);
/** Sends <len> bytes of the streamed body now; NX_ECLOSED once the connection is going away. */
int nx_http_stream_write(nx_http_conn_t *hc, const void *data, size_t len);
/** Ends the streamed body; the connection then serves its next request. */
void nx_http_stream_end(nx_http_conn_t *hc);
/** From inside the handler, after queuing a 101 response: hands the connection to <ops>/<codec>
 *  once the handler returns (bytes received after the request go to ops->on_data) and frees
 *  <hc>. Returns NX_ECLOSED when called outside a handler. */
int nx_http_upgrade(nx_http_conn_t *hc, const nx_conn_ops_t *ops, void *codec);
/** Drops the connection with a TCP reset, answering nothing (fault injection in test peers). */
void nx_http_reset(nx_http_conn_t *hc);
/** Marks the current request as answered later; <abort> runs if the client goes away first. */
void nx_http_defer(nx_http_conn_t *hc, nx_http_abort_fn abort, void *arg);

#endif
