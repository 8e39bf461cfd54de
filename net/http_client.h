/* The outbound HTTP/1.1 client: a pool of keep-alive connections to one backend address, owned by
 * one shard (one pool = one shard x one backend replica), and the exchanges (request + response)
 * that run on it. Requests wait FIFO in a bounded queue when the pool is at max_connections;
 * responses are read with the incremental parser of http_response.h and handed out as a head,
 * decoded body bytes and a final status, so an endless event stream (SSE) flows through without
 * being buffered. A request that fails on a reused connection before any response byte (the
 * server had closed it while idle) is retried once on a fresh connection. Everything runs on the
 * owning shard's loop thread; nothing here knows what MCP or JSON is.
 *
 * The shard must have a provided-buffer ring (nx_shard_opts_t.buf_count > 0): connections are
 * nx_conn_t and receive with multishot recv. */
#ifndef NX_NET_HTTP_CLIENT_H
#define NX_NET_HTTP_CLIENT_H

#include "http1.h"
#include "http_response.h"
#include "shard.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct nx_http_pool nx_http_pool_t;
typedef struct nx_http_exchange nx_http_exchange_t;

/* Bounds of one pool; 0 in a field means its default. */
typedef struct nx_http_pool_opts {
    uint32_t max_connections;         /* open at most (busy + idle + connecting); default 64 */
    uint32_t max_idle;                /* idle kept at most; default 16 */
    uint32_t idle_timeout_ms;         /* an idle connection is closed after this; default 60000 */
    uint32_t connect_timeout_ms;      /* io_uring connect with a linked timeout; default 2000 */
    uint32_t max_requests_per_conn;   /* then the connection is closed after its response; 0 = no
                                       * bound */
    uint32_t max_pending;             /* requests queued for a busy pool at most (beyond those a
                                       * connect was started for); beyond -> -EBUSY; default 1024 */
    nx_http_response_limits_t limits; /* zero fields = nx_http_response_default_limits' */
} nx_http_pool_opts_t;

/* A snapshot of one pool. open = idle + busy + connecting; a connection being closed counts in
 * none of them. */
typedef struct nx_http_pool_stats {
    uint32_t open, idle, busy, connecting;
    uint32_t pending;          /* requests waiting for a connection (queued or being connected) */
    uint64_t connects;         /* connection attempts started */
    uint64_t connect_failures; /* attempts that failed (refused, timed out, ...) */
    uint64_t reuses;           /* requests sent on a connection that had carried one before */
    uint64_t requests;         /* requests accepted by nx_http_request */
    uint64_t stale_retries;    /* requests retried on a fresh connection (see the file comment) */
    uint64_t failures;         /* exchanges that ended with an error other than a cancel */
} nx_http_pool_stats_t;

/* One request; everything is copied by nx_http_request, so it may live on the caller's stack. */
typedef struct nx_http_client_request {
    const char *method;              /* "GET", "POST", "DELETE", ... */
    const char *target;              /* origin-form: "/mcp?x=1" */
    const nx_http_header_t *headers; /* extra request headers. The client adds Host and
                                      * Content-Length (with a body, or for POST/PUT/PATCH) and
                                      * nothing else; Host, Content-Length and Transfer-Encoding
                                      * must not be passed */
    size_t header_count;
    const char *body;
    size_t body_len;
    uint32_t timeout_ms; /* from submit until the final response head arrives, waiting for and
                          * opening a connection included; 0 = none. The body may then stream
                          * for as long as it lasts (SSE) */
    bool stream;         /* the body is an unbounded stream (text/event-stream): no max_body */
} nx_http_client_request_t;

/* What an exchange reports, in this order: on_head once, on_data zero or more times, on_done
 * exactly once and last (also when on_head never ran). Any callback may cancel its exchange, submit
 * new requests or free the pool. */
typedef struct nx_http_client_ops {
    /* The final head (1xx heads are skipped); its strings are valid during the call only. */
    void (*on_head)(nx_http_exchange_t *x, const nx_http_response_t *head, void *arg);
    /* Decoded body bytes (chunked framing removed), valid during the call only. */
    void (*on_data)(nx_http_exchange_t *x, const char *data, size_t len, void *arg);
    /* <err> is 0 for a complete response, else: -ECONNREFUSED; -ECONNRESET (reset, or closed
     * before the response was complete: nx_http_exchange_error says which); -ETIMEDOUT (connect
     * or head timeout); -ECANCELED (the pool was freed); NX_EPROTO (a malformed response:
     * nx_http_exchange_error gives the parser's message); -EPIPE or another -errno. <x> is freed
     * when this returns. */
    void (*on_done)(nx_http_exchange_t *x, int err, void *arg);
} nx_http_client_ops_t;

/** Creates a pool on shard <s> for backend <addr> (copied; AF_INET, AF_INET6 or AF_UNIX) whose
 *  requests carry Host: <authority> (copied); <opts> may be NULL. NULL on ENOMEM or a bad
 *  address. Call only on <s>'s thread. */
nx_http_pool_t *nx_http_pool_new(nx_shard_t *s, const struct sockaddr *addr, socklen_t addrlen,
                                 const char *authority, const nx_http_pool_opts_t *opts);
/** Points <p> at <addr> (re-resolution): new connections use it, idle ones are closed, busy and
 *  connecting ones are closed after their current response. 0, or -EINVAL for a bad address. */
int nx_http_pool_set_addr(nx_http_pool_t *p, const struct sockaddr *addr, socklen_t addrlen);
/** Frees <p>: every exchange still queued or in flight first ends with on_done(-ECANCELED) (an
 *  exchange inside one of its own callbacks gets it when that returns), connections are closed,
 *  and the memory goes with the last completion. Safe inside any callback. NULL-safe. */
void nx_http_pool_free(nx_http_pool_t *p);
/** Fills <out> with <p>'s current counts and counters. */
void nx_http_pool_stats(const nx_http_pool_t *p, nx_http_pool_stats_t *out);

/** Submits <req> on <p>; <ops>/<arg> receive the response. Returns 0 with the exchange in <out>
 *  (which may be NULL; the exchange is valid until its on_done returns or it is cancelled), or
 *  <0 with nothing called: -EBUSY (queue at max_pending), -EINVAL (a CR or LF in the method,
 *  target or a header; a missing method or target), NX_ECLOSED (the pool is being freed),
 *  -ENOMEM, or the -errno of opening a socket. Callbacks never run inside this call. */
int nx_http_request(nx_http_pool_t *p, const nx_http_client_request_t *req,
                    const nx_http_client_ops_t *ops, void *arg, nx_http_exchange_t **out);
/** Abandons <x>: no callback of it runs afterwards and it is freed (after the current callback
 *  when called inside one). Its connection is closed, never reused, since the response is not
 *  complete (a complete one has already been returned to the pool when on_done runs). Safe
 *  inside any callback; a no-op inside on_done. */
void nx_http_exchange_cancel(nx_http_exchange_t *x);
/** True once any byte of the response was read: a failure is then not safe to retry blindly. */
bool nx_http_exchange_got_bytes(const nx_http_exchange_t *x);
/** A static description of why <x> failed (the parser's message for NX_EPROTO), or NULL. */
const char *nx_http_exchange_error(const nx_http_exchange_t *x);

#endif
