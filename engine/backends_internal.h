/* Internal to the backends (backends.c and backend_rest.c): a backend as a whole, the set of them,
 * and what the rest transport shares with MCP calls — replica choice, breaker and outlier
 * accounting, the connection manager's counters, retry delays — so an HTTP request to a rest
 * backend goes through the same policy objects as a tools/call does. */
#ifndef NX_ENGINE_BACKENDS_INTERNAL_H
#define NX_ENGINE_BACKENDS_INTERNAL_H

#include "backend_link.h"
#include "backends.h"
#include "bulkhead.h"
#include "resolver.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define NX__BACKENDS_MAX_SHARDS 256
#define NX__BACKEND_KINDS 4 /* catalogs: tools, resources, resource templates, prompts */

typedef struct nx_backend nx_backend_t;

/* One backend. Owned by nx_backends_t (items[]); its spec, policy objects and instances live
 * until nx_backends_free. The comments of each block say who touches it. */
struct nx_backend {
    nx_backends_t *all;
    uint32_t index;
    nx_backend_spec_t spec; /* deep copy: the strings below */
    char *name, *cwd;
    char **argv, **env, **headers;
    nx_http_header_t *header_fields; /* <headers> split, pointing into them */
    char *health_path;
    nx_backend_url_t *urls;
    int *url_slots; /* each url's address in the resolver */
    const nx_backend_link_ops_t *link;
    nx_backend_instance_t *instances;
    uint32_t instance_count;
    uint32_t catalog_shard; /* its instances refresh and publish the catalog */
    bool prefix;
    uint32_t call_timeout_ms, deadline_ms, max_concurrent;
    /* read by every shard */
    _Atomic(json_t *) catalog; /* {"tools": [...], "resources": ..., "resourceTemplates": ...,
                                  "prompts": ...}; tools and prompts under their public names */
    _Atomic(json_t *) hazard[NX__BACKENDS_MAX_SHARDS];
    _Atomic bool listed; /* every catalog the server offers was listed at least once */
    _Atomic uint64_t restarts, calls_total, failures_total, retries_total, ejections_total;
    /* latency of answered calls at the origin (retries included), microseconds */
    _Atomic uint64_t answered, succeeded, latency_sum_us, latency_min_us, latency_max_us;
    bool breaker_enabled;
    nx_backoff_config_t backoff;
    nx_retry_budget_t budget; /* engine-wide: retries in flight against calls in flight */
    nx_breaker_t breaker;     /* engine-wide: every origin shard asks and reports */
    nx_bulkhead_t bulkhead;   /* engine-wide bound on calls in flight */
    /* the catalog shard only */
    nx_engine_shard_t *catalog_es;
    nx_timer_t retire_timer;
    json_t *retired;                  /* replaced snapshots waiting for their readers */
    json_t *pages[NX__BACKEND_KINDS]; /* entries collected by each catalog refresh under way */
    nx_backend_instance_t *pages_in[NX__BACKEND_KINDS];
    bool refresh_again[NX__BACKEND_KINDS];
    json_t *subscriptions;          /* {uri: count of front-end subscriptions} */
    nx_backend_instance_t *subs_in; /* the instance the backend knows the subscriptions through */
    uint32_t subs_generation;
    /* per origin shard, touched only by it */
    uint32_t *next_pick; /* [shard]: round robin */
    nx_health_t *health; /* [shard * instance_count + i]: outlier ejection as seen there */
};

/* Every backend of an engine. Created before the shards start, freed after they stopped. */
struct nx_backends {
    nx_engine_t *e;
    nx_backend_t *items;
    size_t count;
    char sep[9];
    nx_list_t proxies[NX__BACKENDS_MAX_SHARDS];    /* MCP calls per origin shard, touched by it */
    nx_list_t rest_calls[NX__BACKENDS_MAX_SHARDS]; /* HTTP requests per calling shard, likewise */
    uint64_t next_seq[NX__BACKENDS_MAX_SHARDS];
    nx_resolver_t *resolver;
};

/* ---- backends.c, for backend_rest.c ---- */

/** The backend named <name>, or NULL. */
nx_backend_t *nx__backends_find(const nx_backends_t *all, const char *name);
/** The instance for the next try of a call made on shard <origin> (balance, ejection, checks). */
uint32_t nx__backend_pick(nx_backend_t *b, uint32_t origin);
/** Reports the outcome of a try on <instance> made from <origin> (0 success, 1 failure, -1
 *  none: it was abandoned) to the breaker, once (<*permitted> is cleared), and to the
 *  instance's outlier detection. */
void nx__backend_record(nx_backend_t *b, uint32_t origin, uint32_t instance,
                        const nx_breaker_permit_t *permit, bool *permitted, int outcome);
/** Counts an answered call that started at <started_ns> (latency, success rate). */
void nx__backend_record_latency(nx_backend_t *b, uint64_t started_ns, bool ok);
/** The jittered delay before retry number <attempts> under <cfg> (the calling shard's rng). */
uint64_t nx__backend_retry_delay(const nx_backoff_config_t *cfg, uint32_t attempts);
/** Reads a per-call retry policy {"attempts": 1..10, "base": ms, "cap": ms} from <v> into
 *  <out>; base and cap default to <dflt>'s. False, leaving <out> alone, when <v> is not such
 *  an object (missing or malformed: the caller keeps its policy). */
bool nx__backend_retry_override(const json_t *v, const nx_backoff_config_t *dflt,
                                nx_backoff_config_t *out);
/** The link of <in> (no MCP session: rest) carries requests now: the instance is ready and its
 *  health checks start. */
void nx_backend_link_serving(nx_backend_instance_t *in);

/* ---- backend_rest.c ---- */

extern const nx_backend_link_ops_t nx_backend_rest_link;

/* The outcome of nx__backend_rest_check: <ok> for a 2xx answer; <status> 0 when none came,
 * then <why> says what happened. */
typedef void (*nx__backend_rest_check_fn)(void *arg, bool ok, uint16_t status, const char *why);
/** GETs <in>'s health path through its pool within <timeout_ms>; <fn> runs once, later (also
 *  when the link goes away first: not ok). 0, or a negative error with <fn> not to run. */
int nx__backend_rest_check(nx_backend_instance_t *in, uint32_t timeout_ms,
                           nx__backend_rest_check_fn fn, void *arg);
/** Ends the HTTP requests made on shard <shard> (shard stop): their callbacks run now with an
 *  error. */
void nx__backend_rest_shard_stop(nx_backends_t *all, uint32_t shard);

/* Pure helpers of backend_rest.c (unit-tested). */

/** The request target for <path> (path and query, may be NULL) on a replica whose URL has
 *  path <base>: their paths joined with one '/', their queries joined with '&'. A new string,
 *  NULL on ENOMEM. */
char *nx__rest_target(const char *base, const char *path);
/* What an exchange's end means for a rest request. */
typedef enum nx__rest_outcome {
    NX__REST_ANSWER,          /* an HTTP answer to hand back */
    NX__REST_RETRY_STATUS,    /* 502, 503, 504: retried; the last one is the answer */
    NX__REST_RETRY_TRANSPORT, /* refused, timed out, reset before any response byte */
    NX__REST_FAIL,            /* no answer, and another try is not safe or useful */
} nx__rest_outcome_t;
/** Classifies an exchange that ended with <err> (0 or -errno / NX_E*), after <got_bytes> of
 *  the response, with status <status> (when err is 0). */
nx__rest_outcome_t nx__rest_classify(int err, bool got_bytes, uint16_t status);
/** {"status", "headers", "body"}: <headers> (a {lowercase name: value} object) is borrowed;
 *  the body becomes JSON when <len> bytes at <body> parse as JSON, else a string (invalid
 *  UTF-8 replaced). NULL on ENOMEM. */
json_t *nx__rest_response(uint16_t status, const json_t *headers, const char *body, size_t len);
/** Adds header <name>: <value> to <headers> under the lowercased name; a repeated name's values
 *  are joined with ", ". */
void nx__rest_add_header(json_t *headers, nx_str_t name, nx_str_t value);

#endif
