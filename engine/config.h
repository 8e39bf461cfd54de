/* Configuration: the effective settings of one nexus process (defaults < file < environment <
 * flags), the generic YAML/JSON document tree later sections parse from, and errors that name
 * the file, line and dotted key. Plain data: no globals, no I/O beyond reading the file. */
#ifndef NX_ENGINE_CONFIG_H
#define NX_ENGINE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* Number of leaf keys in the key table of config.c (a static assert keeps the two in step). */
#define NX_CONFIG_NKEYS 43

/* One listener. Owned by nx_config_t. */
typedef struct nx_listen_config {
    char host[256];
    uint16_t port; /* 0 = let the OS pick a free port */
    bool enabled;
} nx_listen_config_t;

/* Limits of the HTTP/1.1 front end. Owned by nx_config_t. */
typedef struct nx_http_config {
    uint32_t max_header_bytes;  /* default 16384 (16 KiB) */
    uint32_t max_headers;       /* default 100, at most 128 */
    uint32_t max_uri;           /* default 8192 */
    uint64_t max_body;          /* default 10 MiB */
    uint32_t header_timeout_ms; /* default 10000: slowloris guard, whole head must arrive in it */
    uint32_t body_timeout_ms;   /* default 30000 */
    uint32_t keepalive_timeout_ms; /* default 75000; 0 closes the connection after each response */
    uint32_t max_connections;      /* per shard, default 65536 */
} nx_http_config_t;

/* Bounds of the MCP front end. Owned by nx_config_t. */
typedef struct nx_mcp_limits {
    uint32_t max_sessions;            /* mcp.max_sessions, per shard: default 10000 */
    uint32_t session_idle_timeout_ms; /* mcp.session_idle_timeout: default 30m */
    uint32_t session_evict_idle_ms;   /* mcp.session_evict_idle: when full, the least recently
                                         used session is evicted if idle this long; default 60s */
    uint32_t ws_ping_interval_ms;     /* mcp.ws_ping_interval: default 30s, 0 = no pings */
    uint32_t ws_pong_timeout_ms;      /* mcp.ws_pong_timeout: default 10s */
    uint64_t max_message;             /* mcp.max_message (WebSocket): default 10 MiB -> 1009 */
    char allowed_hosts[512];          /* mcp.allowed_hosts: more Host/Origin names accepted
                                         besides loopback and the bound addresses ("a,b") */
    uint32_t stream_buffer;           /* mcp.stream_buffer: events kept per session for
                                         Last-Event-ID resumption; default 256 */
} nx_mcp_limits_t;

/* ---- Backends (servers:) and federation ---- */

#define NX_SERVERS_MAX 256        /* entries of servers: */
#define NX_SERVER_NAME_MAX 64     /* [a-z0-9_-] */
#define NX_SERVER_REPLICAS_MAX 64 /* urls of one backend, instances of one stdio backend */

/* How nexus reaches a backend. */
typedef enum nx_server_transport {
    NX_SERVER_STDIO, /* MCP over a child process's stdin/stdout */
    NX_SERVER_HTTP,  /* MCP Streamable HTTP; falls back to legacy SSE when the server answers so */
    NX_SERVER_SSE,   /* legacy MCP HTTP+SSE */
    NX_SERVER_WS,    /* MCP over WebSocket (subprotocol mcp) */
    NX_SERVER_REST,  /* a plain HTTP/JSON service, called by pipelines and REST routes */
} nx_server_transport_t;

/* How calls spread over the replicas (urls) or the processes (instances) of a backend. */
typedef enum nx_server_balance {
    NX_BALANCE_ROUND_ROBIN,
    NX_BALANCE_LEAST_OUTSTANDING,
} nx_server_balance_t;

/* One replica URL taken apart. Plain data, owned by nx_server_config_t. */
typedef struct nx_server_endpoint {
    char host[256];  /* name or address, IPv6 without its brackets */
    uint16_t port;   /* 80 when the URL names none */
    char path[2048]; /* path and query as written, "/" when the URL has none */
} nx_server_endpoint_t;

/* servers[].timeouts: connect, per try, and overall including retries (deadline >= call). */
typedef struct nx_server_timeouts {
    uint32_t connect_ms;  /* default 2s */
    uint32_t call_ms;     /* default 30s */
    uint32_t deadline_ms; /* default 60s; if only one of call/deadline is written, the other
                             follows it rather than contradict it */
} nx_server_timeouts_t;

/* servers[].retry: exponential backoff with full jitter under a retry budget. */
typedef struct nx_server_retry {
    uint32_t attempts;       /* 1..10, the first try included; 1 = no retry; default 3 */
    uint32_t base_ms;        /* default 25ms */
    uint32_t cap_ms;         /* default 250ms; base <= cap */
    uint32_t budget_percent; /* retries in flight per 100 requests in flight, 0..100; 20 */
    uint32_t min_retries;    /* retries always allowed whatever the percentage says; 3 */
} nx_server_retry_t;

/* servers[].breaker: a count-based circuit breaker (resilience/breaker.h). */
typedef struct nx_server_breaker {
    bool enabled;              /* default true */
    uint32_t window;           /* outcomes remembered, 1..1024; default 20 */
    uint32_t failure_rate;     /* percent of failures that opens, 1..100; default 50 */
    uint32_t slow_call_ms;     /* a call this long is slow, 0 = none is; default 5s */
    uint32_t slow_call_rate;   /* percent of slow calls that opens, 1..100; default 100 */
    uint32_t minimum_calls;    /* no opening with fewer outcomes, 1..window; default 10 */
    uint32_t open_ms;          /* open_for: time open before probing; default 30s */
    uint32_t half_open_calls;  /* probes while half-open, 1..63; default 3 */
    uint32_t probe_timeout_ms; /* a probe silent this long failed; default 5s */
} nx_server_breaker_t;

/* servers[].pool: connections per shard per replica (http, sse, ws, rest). */
typedef struct nx_server_pool {
    uint32_t max_connections; /* default 64 */
    uint32_t max_idle;        /* <= max_connections; default 16 (or max_connections if less) */
    uint32_t idle_timeout_ms; /* default 60s */
    uint32_t max_requests;    /* per connection, 0 = unlimited (default) */
} nx_server_pool_t;

/* servers[].health: active checks per replica and outlier ejection. */
typedef struct nx_server_health {
    bool enabled;              /* default true */
    uint32_t interval_ms;      /* default 10s */
    uint32_t timeout_ms;       /* default 2s */
    char path[1024];           /* HTTP GET path: rest default "/health"; http: "" = MCP ping
                                  (the default), else GET this path; others always ping */
    uint32_t healthy_after;    /* consecutive passing checks that make it healthy; default 2 */
    uint32_t unhealthy_after;  /* consecutive failing checks that make it unhealthy; default 3 */
    uint32_t eject_after;      /* consecutive failed calls that eject it, 0 = never; default 5 */
    uint32_t base_ejection_ms; /* first ejection; default 30s */
    uint32_t max_ejection_ms;  /* longest ejection, >= base_ejection; default 5m */
} nx_server_health_t;

/* One backend, an entry of servers:. Owned by nx_servers_config_t; the lists are heap
 * arrays, NULL-terminated, each string malloc'd, and NULL when empty. */
typedef struct nx_server_config {
    char name[NX_SERVER_NAME_MAX + 1]; /* unique, [a-z0-9_-], without the separator */
    nx_server_transport_t transport;
    int line;     /* line of the entry in the file it came from (c->source), for later errors */
    bool enabled; /* default true */
    bool prefix;  /* default true: tools appear as <name><separator><tool> */
    /* stdio */
    char command[4096];
    char **args;               /* arguments after the command */
    char **env;                /* "KEY=value", added to nexus's own environment */
    char cwd[4096];            /* "" = nexus's working directory */
    uint32_t instances;        /* processes, 1..64; default 1 */
    uint32_t restart_base_ms;  /* restart.base: first restart (or reconnect, for http, sse and
                                  ws) delay; default 1s */
    uint32_t restart_cap_ms;   /* restart.cap: longest restart delay; default 30s */
    uint32_t shutdown_term_ms; /* shutdown.term_after: stdin closed -> SIGTERM; default 2s */
    uint32_t shutdown_kill_ms; /* shutdown.kill_after: SIGTERM -> SIGKILL; default 2s */
    /* http, sse, ws, rest */
    char **urls;                     /* replicas as written (url: is one of them) */
    nx_server_endpoint_t *endpoints; /* the same, parsed; url_count entries */
    size_t url_count;
    nx_server_balance_t balance; /* default round_robin */
    char **headers;              /* "Name: value", sent with every request */
    nx_server_pool_t pool;
    /* every transport */
    nx_server_timeouts_t timeouts;
    nx_server_retry_t retry;
    nx_server_breaker_t breaker;
    uint32_t max_concurrent; /* bulkhead.max_concurrent, 1..1000000; default 100 */
    uint32_t cache_ttl_ms;   /* cache.ttl: results of every tool are cached this long; 0 (the
                                default) = none */
    char **cache_tools;      /* cache.tools: "name=ttl_ms" per tool, overriding cache.ttl */
    nx_server_health_t health;
} nx_server_config_t;

/* The backends and how their catalogs merge. Owned by nx_config_t: items is a heap array
 * (NULL when count is 0) released by nx_config_dispose. */
typedef struct nx_servers_config {
    nx_server_config_t *items;
    size_t count;
    char separator[9];       /* federation.separator: 1..8 of [A-Za-z0-9_.-]; default "__" */
    uint32_t list_budget_ms; /* federation.list_budget: tools/list answers within it; 2s */
} nx_servers_config_t;

/* cache.*: the TTL cache of tool calls and workflow steps (L1 per shard, Redis L2). */
typedef struct nx_cache_settings {
    bool enabled;              /* cache.enabled: default true */
    uint64_t max_bytes;        /* cache.max_bytes: L1 budget per shard, at least 1 B;
                                    default 64 MiB */
    uint64_t max_entry;        /* cache.max_entry: larger values are not cached; 1 MiB */
    uint32_t eviction;         /* cache.eviction: 0 lru (default), 1 clock */
    uint32_t stale_grace_ms;   /* cache.stale_grace: expired entries may still answer a
                                  failed call for this long; 0 = never; default 60s */
    uint32_t compression;      /* cache.compression: 0 none, 1 lz4 (default), 2 zstd */
    uint64_t compress_min;     /* cache.compress_min: smaller values are stored as they are;
                                  default 1 KiB */
    char redis[512];           /* cache.redis: redis://[:password@]host[:port][/db], "" = none */
    uint32_t redis_timeout_ms; /* cache.redis_timeout: each command; default 250ms */
    uint32_t redis_connect_timeout_ms; /* cache.redis_connect_timeout: default 1s */
    char redis_prefix[65];             /* cache.redis_prefix: prepended to every key; "nexus:" */
    uint32_t default_ttl_ms;           /* cache.default_ttl: TTL of backend tools no servers[].cache
                                          names; 0 (default) = not cached */
    bool cache_errors;                 /* cache.cache_errors: cache isError results too; false */
} nx_cache_settings_t;

/* The closest of several candidates to a misspelt word ("did you mean ...?"): within 1 edit
 * for words of up to 4 characters, else 2 (edits and adjacent swaps, ignoring case). */
typedef struct nx_cfg_suggest {
    const char *word;
    size_t best_d;
    char best[64]; /* "" = no candidate close enough */
} nx_cfg_suggest_t;
void nx_cfg_suggest_init(nx_cfg_suggest_t *sg, const char *word);
/** Considers candidate <cand> (<n> bytes). */
void nx_cfg_suggest_try(nx_cfg_suggest_t *sg, const char *cand, size_t n);

/** Splits a cache.redis URL into host (room for 256), port, password (room for 256, "" =
 *  none) and db; -1 with a message in <msg> for a malformed one. */
int nx_config_parse_redis_url(const char *url, char *host, uint16_t *port, char *password,
                              uint32_t *db, char *msg, size_t msglen);

/* Where one key's value came from, so validation errors can point at it. */
typedef struct nx_config_origin {
    char file[256]; /* a file name, "environment", "command line"; "" = the built-in default */
    char key[64];   /* the variable or flag name when not from a file, else "" */
    int line;       /* 1-based line in <file>, 0 when not from a file */
} nx_config_origin_t;

/* The effective configuration, owned by value by whoever holds it (an immutable snapshot once
 * serving starts). Plain data except servers.items: a struct copy shares that, so exactly one
 * holder calls nx_config_dispose and others take nx_config_copy. */
typedef struct nx_config {
    char source[4096];          /* file it was loaded from, "" for defaults only */
    nx_listen_config_t rest;    /* server.host/server.port: default 127.0.0.1:8000, enabled */
    nx_listen_config_t mcp;     /* mcp.host/mcp.port/mcp.enabled: default 127.0.0.1:3000, enabled */
    nx_mcp_limits_t mcp_limits; /* mcp.max_sessions, mcp.session_idle_timeout, ... */
    uint32_t shards;            /* server.shards: 0 = one per online CPU; max 256 */
    nx_log_level_t log_level;   /* log.level: default info */
    bool access_log;            /* log.access: default false */
    nx_http_config_t http;      /* http.* */
    uint32_t drain_timeout_ms;  /* shutdown.grace: default 10000 */
    bool debug_routes;          /* debug_routes: default false (enables the /debug/ test routes) */
    nx_servers_config_t servers; /* servers: and federation.*; heap parts, see nx_config_dispose */
    nx_cache_settings_t cache;   /* cache.* */
    uint32_t executions_max;     /* executions.max_stored: records kept (running ones included);
                                    default 10000 */
    uint32_t executions_keep_ms; /* executions.keep: an ended record is kept this long; 1h */
    struct nx_workflows *workflows; /* workflows: (engine/workflow.h), NULL when none; shared by
                                       reference: copies take one, nx_config_dispose drops one */
    nx_config_origin_t origin[NX_CONFIG_NKEYS]; /* per key, in key-table order */
} nx_config_t;

/* A configuration error, filled by every function below that returns NX_ECONFIG. */
typedef struct nx_config_error {
    char file[256]; /* "nexus.yaml", or "environment", or "command line" */
    int line;       /* 1-based; 0 when not from a file */
    char key[128];  /* dotted key, e.g. "http.max_body", or the env var / flag name */
    char message[256];
} nx_config_error_t;

/** Fills <c> with the built-in defaults (no servers; nothing to dispose). */
void nx_config_defaults(nx_config_t *c);
/** Frees the heap parts of <c> (the servers) and drops its reference to the workflows, leaving
 *  it without either; a second call, or one on defaults, does nothing. */
void nx_config_dispose(nx_config_t *c);
/** Makes <dst> a deep copy of <src> (the workflows by reference) that the caller disposes;
 *  <dst> is overwritten, not disposed. Returns 0 or -ENOMEM (then <dst> holds no servers and
 *  no workflows). */
int nx_config_copy(nx_config_t *dst, const nx_config_t *src);
/** Fills <s> with the defaults of a backend using transport <t> (no name, no lists). */
void nx_server_config_defaults(nx_server_config_t *s, nx_server_transport_t t);
/** The backend called <name> in <c>, or NULL. */
const nx_server_config_t *nx_config_find_server(const nx_config_t *c, const char *name);
/** The config spelling of <t> ("stdio", "http", "sse", "ws", "rest"). */
const char *nx_server_transport_name(nx_server_transport_t t);
/** Parses the <len> bytes of replica URL <url> for transport <t> (http:// for http, sse and
 *  rest, ws:// for ws; https and wss are refused until TLS exists) into *<out>; on failure
 *  returns NX_ECONFIG and writes why into <msg> (may be NULL). */
int nx_config_parse_url(const char *url, size_t len, nx_server_transport_t t,
                        nx_server_endpoint_t *out, char *msg, size_t msglen);
/** Loads the YAML (or JSON) file <path> over the values already in <c>; on failure returns
 *  NX_ECONFIG with <err> filled (I/O errors too: file = path, line 0, message = strerror) and
 *  leaves <c> unchanged. A servers: section replaces the servers <c> had (freeing them). */
int nx_config_load_file(nx_config_t *c, const char *path, nx_config_error_t *err);
/** Same from <len> bytes of <text>; <name> is used as err->file and as c->source. */
int nx_config_load_string(nx_config_t *c, const char *name, const char *text, size_t len,
                          nx_config_error_t *err);
/** Sets the dotted <key> (e.g. "server.port") from the string <value>; <origin> and
 *  <origin_key> (e.g. "environment", "NEXUS_PORT") fill err->file/err->key on failure and are
 *  remembered for nx_config_validate; NULL means "command line" and <key>. */
int nx_config_set(nx_config_t *c, const char *key, const char *value, const char *origin,
                  const char *origin_key, nx_config_error_t *err);
/** Applies the NEXUS_* variables of the NULL-terminated <envp> (like environ): the aliases
 *  NEXUS_HOST, NEXUS_PORT, NEXUS_MCP_HOST, NEXUS_MCP_PORT, NEXUS_SHARDS, NEXUS_LOG_LEVEL,
 *  NEXUS_DEBUG_ROUTES and the generic NEXUS_<SECTION>__<KEY> (case-insensitive, "__" = ".");
 *  a generic name that is not a key, or two variables setting one key, is an error; other
 *  NEXUS_ variables are ignored. All or nothing: <c> is unchanged on failure. */
int nx_config_apply_env(nx_config_t *c, char *const *envp, nx_config_error_t *err);
/** Checks ranges and cross-field rules of <c> (listeners must not overlap, max_uri fits in
 *  max_header_bytes, something is enabled, server names are unique and free of the federation
 *  separator); the error points at where the blamed key was set. */
int nx_config_validate(const nx_config_t *c, nx_config_error_t *err);
/** Formats <err> as "file:line: key: message" ("file: key: message" when line is 0, without
 *  "key: " when key is empty) into <out>. */
void nx_config_error_format(const nx_config_error_t *err, char *out, size_t outlen);
/** Returns a new JSON object of the effective <c>, keyed like the YAML file (durations in ms,
 *  sizes in bytes), so it loads back as a config; header and env values of servers show as
 *  "***". The caller owns the reference. */
json_t *nx_config_to_json(const nx_config_t *c);

/** The index of dotted <key> in nx_config_t.origin (e.g. "server.port"), or -1 if unknown. */
int nx_config_key_index(const char *key);
/** The dotted name of key <i> (0 <= i < NX_CONFIG_NKEYS), or NULL. */
const char *nx_config_key_name(int i);

/** Parses a duration ("250ms", "10s", "1.5m", "2h"; a bare number is ms) into *<ms>; on failure
 *  returns NX_ECONFIG and writes why into <msg> (may be NULL). */
int nx_config_parse_duration(const char *s, size_t len, uint64_t *ms, char *msg, size_t msglen);
/** Parses a size (bytes, or B, KiB/k, MiB/M, GiB/G = powers of 1024; KB, MB, GB = of 1000) into
 *  *<bytes>; on failure returns NX_ECONFIG and writes why into <msg> (may be NULL). */
int nx_config_parse_size(const char *s, size_t len, uint64_t *bytes, char *msg, size_t msglen);

/* ---- The document tree: YAML/JSON parsed into nodes with lines, for sections to walk. ---- */

typedef enum nx_cfg_kind {
    NX_CFG_SCALAR,
    NX_CFG_MAPPING,
    NX_CFG_SEQUENCE,
} nx_cfg_kind_t;

/* One node; the root owns the whole tree (nx_cfg_free). Mappings keep their keys in document
 * order and never hold duplicates; anchors, aliases and tags are rejected by the parser. */
typedef struct nx_cfg_node nx_cfg_node_t;

/** Parses <len> bytes of YAML or JSON <text> into *<out> (NULL for an empty document); <name>
 *  names the document in errors. The caller frees *<out> with nx_cfg_free. */
int nx_cfg_parse(const char *name, const char *text, size_t len, nx_cfg_node_t **out,
                 nx_config_error_t *err);
/** Frees the tree rooted at <root>; NULL is fine. */
void nx_cfg_free(nx_cfg_node_t *root);
/** The kind of <n>. */
nx_cfg_kind_t nx_cfg_kind(const nx_cfg_node_t *n);
/** The 1-based line where <n> starts. */
int nx_cfg_line(const nx_cfg_node_t *n);
/** The 1-based line of the key under which <n> sits in its parent mapping (else its line). */
int nx_cfg_key_line(const nx_cfg_node_t *n);
/** The key under which <n> sits in its parent mapping, or NULL (root, sequence items). */
const char *nx_cfg_key(const nx_cfg_node_t *n);
/** The text of scalar <n> (NUL-terminated; *<len> gets its length, which counts embedded NULs),
 *  or NULL when <n> is not a scalar. <len> may be NULL. */
const char *nx_cfg_text(const nx_cfg_node_t *n, size_t *len);
/** True when <n> is a plain scalar spelling null: empty, "~", "null", "Null", "NULL". */
bool nx_cfg_is_null(const nx_cfg_node_t *n);
/** True when scalar <n> was quoted or a block scalar (so "on" is a string, not a boolean). */
bool nx_cfg_is_quoted(const nx_cfg_node_t *n);
/** The number of entries of mapping or sequence <n> (0 for scalars). */
size_t nx_cfg_count(const nx_cfg_node_t *n);
/** Entry <i> of mapping or sequence <n> (the value; see nx_cfg_key), or NULL past the end. */
const nx_cfg_node_t *nx_cfg_at(const nx_cfg_node_t *n, size_t i);
/** The value of <key> in mapping <map>, or NULL when absent or <map> is not a mapping. */
const nx_cfg_node_t *nx_cfg_get(const nx_cfg_node_t *map, const char *key);
/** The parent of <n>, or NULL for the root. */
const nx_cfg_node_t *nx_cfg_parent(const nx_cfg_node_t *n);
/** Writes the path of <n> ("servers[1].url"; "" for the root) into <out>; returns its length. */
size_t nx_cfg_path(const nx_cfg_node_t *n, char *out, size_t outlen);
/** Fills <err> with the document name, the line of <n> and its path, and the printf-style
 *  message; returns NX_ECONFIG. */
int nx_cfg_fail(nx_config_error_t *err, const nx_cfg_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Same, at the line of <n>'s key (for errors about the key itself). */
int nx_cfg_fail_key(nx_config_error_t *err, const nx_cfg_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Fails with "unknown key 'x'; did you mean 'y'?" for the first key of mapping <map> not in
 *  <known>[0..<nknown>), or "expected a mapping" when <map> is not one; 0 when all are known. */
int nx_cfg_check_keys(const nx_cfg_node_t *map, const char *const *known, size_t nknown,
                      nx_config_error_t *err);

/* Typed readers: each fails with the node's line and path, e.g. "expected an integer, got a
 * sequence" or "'300' is out of range (1..128)". */

/** Copies scalar <n> into <out> (NUL-terminated, at most <outlen> - 1 bytes, no NULs); a plain
 *  null (empty, ~) is an error, a quoted "" is an empty string. */
int nx_cfg_read_string(const nx_cfg_node_t *n, char *out, size_t outlen, nx_config_error_t *err);
/** Reads a decimal integer in [<min>, <max>] into *<out>. */
int nx_cfg_read_uint(const nx_cfg_node_t *n, uint64_t min, uint64_t max, uint64_t *out,
                     nx_config_error_t *err);
/** Reads true/false, yes/no or on/off (any case) into *<out>. */
int nx_cfg_read_bool(const nx_cfg_node_t *n, bool *out, nx_config_error_t *err);
/** Reads a duration in [<min_ms>, <max_ms>] into *<out_ms>. */
int nx_cfg_read_duration(const nx_cfg_node_t *n, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms,
                         nx_config_error_t *err);
/** Reads a size in [<min>, <max>] bytes into *<out>. */
int nx_cfg_read_size(const nx_cfg_node_t *n, uint64_t min, uint64_t max, uint64_t *out,
                     nx_config_error_t *err);

#endif
