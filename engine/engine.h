/* The engine: one process of nexus. It owns the configuration snapshot, the shards and their
 * front ends, the route table, and the control thread that turns signals into drain (SIGTERM,
 * SIGINT) and reload (SIGHUP) messages to the shards. */
#ifndef NX_ENGINE_ENGINE_H
#define NX_ENGINE_ENGINE_H

#include "config.h"
#include "http_server.h"
#include "listener.h"
#include "mcp_server.h"
#include "mcp_session.h"
#include "metrics.h"
#include "router.h"
#include "shard.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct nx_engine nx_engine_t;
typedef struct nx_engine_shard nx_engine_shard_t;

/* An immutable configuration shared by every shard; freed when the last holder lets go. */
typedef struct nx_config_snapshot {
    int refs;
    nx_config_t config;
} nx_config_snapshot_t;

nx_config_snapshot_t *nx_config_snapshot_new(const nx_config_t *c);
void nx_config_snapshot_ref(nx_config_snapshot_t *s);
void nx_config_snapshot_unref(nx_config_snapshot_t *s);

/* A front end (REST or MCP port) as seen by one shard. */
typedef struct nx_front {
    nx_http_server_t http;
    nx_listener_t listener;
    bool listening;
    nx_router_t *router; /* borrowed from the engine, immutable while serving */
} nx_front_t;

/* Everything one shard owns for the engine; lives on that shard's thread only. */
struct nx_engine_shard {
    nx_engine_t *engine;
    nx_shard_t *shard;
    nx_config_snapshot_t *config; /* the snapshot this shard currently serves with */
    nx_front_t rest, mcp;
    nx_shard_metrics_t metrics;
    nx_mcp_sessions_t sessions; /* MCP sessions this shard owns */
    nx_list_t ws_clients;       /* MCP-over-WebSocket connections (mcp_ws.c) */
    uint32_t ws_count;
    nx_list_t mcp_owned;       /* forwarded MCP requests this shard is still answering */
    uint32_t mcp_forwards_out; /* requests this shard forwarded and awaits answers for */
    uint64_t mcp_forward_seq;  /* numbers this shard's forwards, for cancellation by id */
    nx_list_t mcp_outbox;      /* stream frames for other shards whose mailbox was full */
    nx_timer_t mcp_outbox_timer;
    bool drain_deadline_passed;
    struct nx_mcp_stdio *stdio; /* `nexus mcp`: MCP on stdin/stdout (shard 0 only) */
    nx_timer_t session_sweep;
    nx_timer_t drain_timer;
    bool draining;
    uint64_t request_counter;
    struct nx_cache *cache; /* this shard's TTL cache (L1, Redis L2); NULL when disabled */
};

/* A registered HTTP route with what the OpenAPI document says of it. */
typedef struct nx_route_def nx_route_def_t;
typedef void (*nx_route_fn)(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                            const nx_route_match_t *m);
struct nx_route_def {
    const char *method;
    const char *pattern;
    nx_route_fn fn;
    const char *summary;
    const char *tag;
    const char *produces;     /* response content type */
    const char *request_body; /* NULL, or the content type the route accepts */
    bool debug_only;          /* only with debug_routes: true */
};

struct nx_engine {
    nx_config_snapshot_t *config; /* current snapshot (the control thread's reference) */
    char **overrides;             /* flag key/value pairs re-applied on reload, NULL-terminated */
    uint32_t shard_count;
    nx_engine_shard_t **shards;
    nx_router_t *rest_router;
    nx_router_t *mcp_router;
    const char *route_names[NX_METRICS_MAX_ROUTES]; /* "GET /health", by nx_rest_routes index */
    char route_name_storage[NX_METRICS_MAX_ROUTES][96];
    int *rest_fds, *mcp_fds;
    uint16_t rest_port, mcp_port; /* bound ports (resolved when configured as 0) */
    uint64_t start_ms;
    int64_t started_at; /* wall clock, seconds */
    const char *ring_mode;
    char *openapi_json;                /* serialized once at start */
    nx_mcp_server_t *mcp;              /* the MCP catalog: built before serving, then read-only */
    struct nx_backends *backends;      /* servers: (backends.c); NULL without any */
    struct nx_workflows *workflows;    /* workflows: of the starting configuration; NULL = none */
    struct nx_exec_store *executions;  /* the execution store (executions.c) */
    struct nx_tool_cache *tool_cache;  /* servers[].cache TTLs (tool_cache.c); NULL = none */
    /* cache.redis, resolved once at start: the shards' Redis clients connect to this. */
    char redis_addr[64];
    uint16_t redis_port;
    uint32_t redis_db;
    char redis_password[256];
    struct nx_events *events;          /* the Events channel's bus (events.c) */
    const char *mcp_allowed_hosts[48]; /* Host/Origin allow-list (DNS-rebinding protection) */
    char mcp_host_storage[2][256];     /* the bound addresses */
    char mcp_hosts_config[512];        /* mcp.allowed_hosts, split in place */
    nx_loop_t *control;
    bool draining;
    bool stdio_mode;      /* `nexus mcp`: one shard, no listeners, MCP on stdin/stdout */
    nx_op_t control_wake; /* a shard asks the control thread to finish (stdio input ended) */
    bool stop_requested;
    /* Runs on each shard's thread once the shard has started, before its loop runs
     * (embedders such as `nexus client` start their work there); NULL = nothing. */
    void (*on_shard_started)(nx_engine_shard_t *es, void *arg);
    void *on_shard_started_arg;
};

/** Creates an engine for <snap> (the engine takes the reference) with CLI <overrides> (key,
 *  value pairs, borrowed for the engine's life) re-applied on reload. */
int nx_engine_new(nx_config_snapshot_t *snap, char **overrides, nx_engine_t **out);
/** Binds the listeners, starts the shards and runs the control loop until a drain completes;
 *  returns the process exit status. */
int nx_engine_run(nx_engine_t *e);
/** Like nx_engine_run, but serves MCP on stdin/stdout from one shard with no listeners, until
 *  input ends or a signal. */
int nx_engine_run_stdio(nx_engine_t *e);
void nx_engine_free(nx_engine_t *e);

/** Builds the effective config: defaults, then <file> (may be NULL), then environment, then
 *  <overrides>; returns 0 or NX_ECONFIG with <err>. */
int nx_engine_load_config(nx_config_t *c, const char *file, char **overrides,
                          nx_config_error_t *err);

/* Routes (api_routes.c). */
/** The route table of the REST port, NULL-terminated. */
extern const nx_route_def_t nx_rest_routes[];
/** Registers the routes of <defs> allowed by <c> into <r>. */
int nx_routes_register(nx_router_t *r, const nx_route_def_t *defs, const nx_config_t *c);
/** The OpenAPI 3.1 document describing every route registered in <r>. */
json_t *nx_openapi_document(const nx_router_t *r, const nx_config_t *c);
/** Sends <j> (stolen) as an application/json response with <status>. */
void nx_respond_json(nx_http_conn_t *hc, int status, json_t *j);

/** Stops <es>'s loop once it is draining and its last connection is gone. */
void nx_engine_shard_maybe_stop(nx_engine_shard_t *es);
/** The engine shard running on the calling thread (NULL off the shards). */
nx_engine_shard_t *nx_engine_current_shard(void);

/* Seen by the routes: engine facts for /health, /status, /stats, /metrics. */
double nx_engine_uptime_seconds(const nx_engine_t *e);
/** Live MCP sessions over all shards (read from any thread, relaxed). */
uint64_t nx_engine_mcp_sessions(const nx_engine_t *e);
void nx_engine_metrics_view(const nx_engine_t *e, nx_metrics_view_t *v,
                            const nx_shard_metrics_t **shard_metrics,
                            const nx_net_stats_t **net_stats);

#endif
