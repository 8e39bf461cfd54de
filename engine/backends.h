/* Backend MCP servers behind nexus (federation), first transport: stdio. Each backend is one
 * supervised process owned by one shard (restarted with exponential backoff when it dies) and
 * spoken to through the MCP client core. Its tools, resources, resource templates and prompts
 * join nexus's catalog (tools and prompts as "<server><sep><name>" or unprefixed; URIs as they
 * are); tools/call, resources/read, prompts/get and completion/complete on any shard travel
 * through the mailbox to the owner, and the answer, progress, log messages and the backend's own
 * requests to the client (sampling, elicitation, roots) travel back to the client of the call.
 * Each catalog a backend announced is an immutable JSON snapshot every shard reads without
 * locks. Backends whose transport is rest are plain HTTP services (backend_rest.c): no catalog,
 * reached with nx_backends_http from any shard through the same policy (bulkhead, breaker,
 * balance, retries) and seen by the same health, connection and metrics views. */
#ifndef NX_ENGINE_BACKENDS_H
#define NX_ENGINE_BACKENDS_H

#include "backoff.h"
#include "breaker.h"
#include "engine.h"
#include "health.h"
#include "http1.h"
#include "retry_budget.h"

#include <stdbool.h>
#include <stdint.h>

/* How nexus reaches a backend. */
typedef enum nx_backend_transport {
    NX_BACKEND_STDIO, /* a supervised child process per instance */
    NX_BACKEND_HTTP,  /* MCP Streamable HTTP, one session per shard per replica */
    NX_BACKEND_WS,    /* MCP over WebSocket, one connection per shard per replica */
    NX_BACKEND_SSE,   /* legacy MCP HTTP+SSE (2024-11-05), one stream per shard per replica */
    NX_BACKEND_REST,  /* plain HTTP/JSON (nx_backends_http), one pool per shard per replica;
                         no MCP session, no catalog */
} nx_backend_transport_t;

/* One replica of an HTTP backend. */
typedef struct nx_backend_url {
    const char *host; /* name or address, resolved at start */
    uint16_t port;
    const char *path; /* path and query of the MCP endpoint */
} nx_backend_url_t;

/* What one backend is, as configured (copied by nx_backends_new). */
typedef struct nx_backend_spec {
    const char *name;
    nx_backend_transport_t transport;
    uint32_t instances;           /* stdio: processes (each owned by one shard); default 1 */
    bool least_outstanding;       /* balance: least outstanding calls, else round robin */
    const char *const *argv;      /* stdio command and arguments, NULL-terminated */
    const char *const *env;       /* extra "NAME=value", NULL-terminated, may be NULL */
    const char *cwd;              /* may be NULL */
    const nx_backend_url_t *urls; /* http: the replicas */
    size_t url_count;
    const char *const *headers; /* http: "Name: value" sent with every request; may be NULL */
    const nx_http_header_t *header_fields; /* the same split into name and value: filled by
                                              nx_backends_new in its copy, for the links */
    size_t header_field_count;
    uint32_t connect_timeout_ms;
    uint32_t pool_max_connections, pool_max_idle, pool_idle_timeout_ms, pool_max_requests;
    bool prefix;               /* tool names become <name><separator><tool> */
    uint32_t call_timeout_ms;  /* per try */
    uint32_t deadline_ms;      /* the whole call, retries included; 0 = none */
    nx_backoff_config_t retry; /* attempts and delays of retries after retryable failures */
    nx_retry_budget_config_t retry_budget;
    uint32_t restart_base_ms, restart_cap_ms;
    uint32_t term_after_ms, kill_after_ms;
    bool breaker_enabled;
    nx_breaker_config_t breaker; /* per backend, shared by every shard */
    uint32_t max_concurrent;     /* bulkhead: calls in flight at most (all shards); 0 = any */
    nx_health_config_t health;   /* check thresholds and outlier ejection of instances */
    bool health_checks;          /* active checks: an MCP ping per instance, or */
    const char *health_path;     /* http: GET this path (2xx passes) instead; NULL = ping;
                                    rest: always GET, NULL = /health */
    uint32_t check_interval_ms, check_timeout_ms;
} nx_backend_spec_t;

/* A tools/call (or other routed request) may carry "_meta": {"io.nexus/timeoutMs": N}: the call
 * then ends within N ms, retries included, if the backend's own deadline is later. */
#define NX_BACKENDS_META_TIMEOUT "io.nexus/timeoutMs"
/* ... and "_meta": {"io.nexus/retry": {"attempts": N, "base": ms, "cap": ms}}: this policy
 * replaces the backend's retry policy for the call (workflow steps with retry:). The tries made
 * are reported through nx_mcp_call_note_attempts. */
#define NX_BACKENDS_META_RETRY "io.nexus/retry"

/* An HTTP request to a backend whose transport is rest (a workflow step). Strings are
 * borrowed until nx_backends_http returns. Sent with the backend's configured headers, then
 * <headers> (Host, Content-Length and Transfer-Encoding among them are dropped: the client
 * frames the message), then Content-Type when there is a body and <headers> has none. Each try
 * is bounded by the backend's timeouts.call; 502, 503, 504, a refused connection, a per-try
 * timeout and a reset before any response byte are retried. */
typedef struct nx_backends_http_request {
    const char *method;              /* GET, POST, PUT, PATCH, DELETE */
    const char *path;                /* path and query, appended to the replica URL's path */
    const nx_http_header_t *headers; /* beyond the backend's own; may be NULL */
    size_t header_count;
    const char *body; /* NULL = no body */
    size_t body_len;
    const char *content_type;         /* of the body; default application/json */
    uint32_t timeout_ms;              /* overall deadline (retries included), 0 = the backend's;
                                         never later than the backend's */
    const nx_backoff_config_t *retry; /* NULL (or max_attempts 0) = the backend's policy */
} nx_backends_http_request_t;

/* The outcome of an HTTP request: <response> is {"status": N, "headers": {lowercase name:
 * value (repeated names joined with ", ")}, "body": parsed JSON when the body parses as JSON,
 * else the text} for every HTTP answer (4xx/5xx included, after retries of 502/503/504);
 * <error> is {"message", "data": {"backend", "reason", "retryable"[, "retryAfterMs"]}} when no
 * answer came; reason is one of refused, reset, timeout (the tries failed so), protocol (a
 * malformed answer), unavailable, deadline, circuit_open, bulkhead, overloaded (the pool's
 * queue is full), shutdown, nomem. Exactly one is non-NULL (borrowed). <attempts> counts the
 * tries made. */
typedef void (*nx_backends_http_fn)(void *arg, const json_t *response, const json_t *error,
                                    uint32_t attempts);
typedef struct nx_backends_http_call nx_backends_http_call_t;
struct nx_backends;
/** Sends <req> to rest backend <backend> from the calling shard (a shard thread) through its
 *  bulkhead, breaker, replica choice (balance, ejection), pool and retries; <fn> runs once, on
 *  this shard, never inline. Returns a handle for nx_backends_http_cancel, or NULL with <fn>
 *  not to be called when there is no such rest backend (NX_ENOTFOUND in <*rc>), the request
 *  cannot be sent (-EINVAL: a CR, LF or NUL in the method, path or a header; off a shard) or
 *  on -ENOMEM. A request still running at shard stop gets its callback then (reason
 *  shutdown). */
nx_backends_http_call_t *nx_backends_http(struct nx_backends *b, const char *backend,
                                          const nx_backends_http_request_t *req,
                                          nx_backends_http_fn fn, void *arg, int *rc);
/** Abandons <call> (before its callback ran; on its shard): its callback will not run; the
 *  request in flight is cancelled. NULL-safe. */
void nx_backends_http_cancel(nx_backends_http_call_t *call);
/** POST /debug/rest/{backend} (debug_routes only): sends {"method", "path", "headers": {name:
 *  value}, "body" (a string as text/plain, else JSON), "content_type", "timeout_ms", "retry":
 *  {"attempts", "base", "cap"}} with nx_backends_http and answers {response, error,
 *  attempts}. */
void nx_backends_route_debug_rest(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                                  const nx_route_match_t *m);

typedef struct nx_backends nx_backends_t;

/** Creates the backends of <e> from <specs> (copied) with tool-name separator <sep>, and makes
 *  them the MCP server's provider; NX_ECONFIG with <err> for a bad spec. Call before the
 *  shards start. */
int nx_backends_new(nx_engine_t *e, const nx_backend_spec_t *specs, size_t count, const char *sep,
                    nx_backends_t **out, char *err, size_t errlen);
/** Starts the backends a shard owns (from the shard thread, at start). */
void nx_backends_shard_start(nx_backends_t *b, nx_engine_shard_t *es);
/** Stops the backends a shard owns (drain): their processes are asked to exit. */
void nx_backends_shard_drain(nx_backends_t *b, nx_engine_shard_t *es);
/** Frees the processes and state of a shard's backends (shard stop). */
void nx_backends_shard_stop(nx_backends_t *b, nx_engine_shard_t *es);
/** True while some backend of the shard still has a process or calls in flight. */
bool nx_backends_shard_busy(const nx_backends_t *b, const nx_engine_shard_t *es);
/** Frees everything (after every shard has stopped). NULL-safe. */
void nx_backends_free(nx_backends_t *b);
/** True once every backend has listed each catalog its server offers at least once (its tools
 *  can then be called by name); any thread. */
bool nx_backends_listed(const nx_backends_t *b);
/** /health view: {name: {state, tools, restarts, pid, breaker, instances, ...}}. */
json_t *nx_backends_health(const nx_backends_t *b);
/** The connection manager's view of backend <name>, or of all of them in an array when <name>
 *  is NULL: {id, transport, status (connected, degraded, disconnected, unknown), latency_ms
 *  {min, avg, max}, success_rate, calls, failures, breaker, instances, pool}. NULL when there
 *  is no backend <name>. */
json_t *nx_backends_connections(const nx_backends_t *b, const char *name);
/* The outcome of a connection test: {id, ok, latency_ms | error} (borrowed). */
typedef void (*nx_backends_test_cb)(const json_t *outcome, void *arg);
/** Tests backend <name> now with an MCP ping through one of its instances (rest: a GET of its
 *  health path through the calling shard's pool); <cb> runs later on the calling shard.
 *  Returns 0, or NX_ENOTFOUND for no such backend, or -ENOMEM. */
int nx_backends_test(nx_backends_t *b, const char *name, nx_backends_test_cb cb, void *arg);
/** Appends the backends' metrics to <out> in Prometheus text format. */
int nx_backends_metrics(const nx_backends_t *b, nx_buf_t *out);

#endif
