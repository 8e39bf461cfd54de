/* Request and connection metrics: per shard, per route, per status, with a latency histogram,
 * and their two renderings (Prometheus text for /metrics, JSON for /stats). Each shard is the
 * only writer of its nx_shard_metrics_t; any thread may read it, with relaxed atomic loads. */
#ifndef NX_ENGINE_METRICS_H
#define NX_ENGINE_METRICS_H

#include "buf.h"
#include "shard.h"

#include <jansson.h>
#include <stdint.h>

#define NX_METRICS_MAX_ROUTES 64 /* route indices 0..63 from the router */
/* The slot for requests that matched no route or failed to parse; larger indices land here. */
#define NX_METRICS_ROUTE_UNMATCHED NX_METRICS_MAX_ROUTES
/* Status slots: 30 listed codes, then "1xx".."5xx" for unlisted codes of each class, then
 * "other" for anything outside 100..599. */
#define NX_METRICS_STATUS_CODES 30
#define NX_METRICS_STATUS_SLOTS (NX_METRICS_STATUS_CODES + 6)
#define NX_METRICS_STATUS_OTHER (NX_METRICS_STATUS_SLOTS - 1)
/* Latency buckets: 16 upper bounds from 0.1 ms to 10 s (inclusive, as "le" says), then +Inf. */
#define NX_METRICS_BUCKETS 17

/* Counters of one route on one shard. */
typedef struct nx_route_metrics {
    uint64_t status[NX_METRICS_STATUS_SLOTS];
    uint64_t bucket[NX_METRICS_BUCKETS]; /* per bucket, not cumulative */
    uint64_t sum_ns;
    uint64_t count;
} nx_route_metrics_t;

/* Owned and written by one shard (about 29 KiB); read by whichever shard serves /metrics. */
typedef struct nx_shard_metrics {
    nx_route_metrics_t routes[NX_METRICS_MAX_ROUTES + 1];
} nx_shard_metrics_t;

/* What the formatters read, borrowed for the call: every shard's counters plus names and
 * process facts. */
typedef struct nx_metrics_view {
    const nx_shard_metrics_t *const *shards;
    /* Per shard connection and byte counters, owned and written by net/ (NULL = report none). */
    const nx_net_stats_t *const *net;
    uint32_t shard_count;
    const char *const *route_names; /* route i's label, e.g. "GET /health" */
    uint32_t route_count;
    const char *version;
    double uptime_seconds;
} nx_metrics_view_t;

/** Adds <n> to <counter>; only its owning shard may call this. A relaxed load and store, not a
 *  locked add: with a single writer nothing is lost, and readers never see a torn value. */
static inline void nx_metrics_add(uint64_t *counter, uint64_t n) {
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
/** Adds <n> (possibly negative) to <gauge>; owner only, like nx_metrics_add. */
static inline void nx_metrics_gauge_add(int64_t *gauge, int64_t n) {
    __atomic_store_n(gauge, __atomic_load_n(gauge, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
/** Reads <counter> from any thread. */
static inline uint64_t nx_metrics_load(const uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}
/** Reads <gauge> from any thread. */
static inline int64_t nx_metrics_gauge_load(const int64_t *gauge) {
    return __atomic_load_n(gauge, __ATOMIC_RELAXED);
}

/** Zeroes <m>. */
void nx_metrics_init(nx_shard_metrics_t *m);
/** Counts on <m> one answered request of <route_index> (or NX_METRICS_ROUTE_UNMATCHED) with
 *  <status>, which took <latency_ns>. */
void nx_metrics_record_request(nx_shard_metrics_t *m, uint32_t route_index, int status,
                               uint64_t latency_ns);
/** The status slot <status> is counted in. */
int nx_metrics_status_slot(int status);
/** The label of status slot <slot>: "200", ..., "5xx", "other". */
const char *nx_metrics_status_label(int slot);
/** The latency bucket <latency_ns> is counted in (NX_METRICS_BUCKETS - 1 = +Inf). */
int nx_metrics_bucket(uint64_t latency_ns);
/** Appends the Prometheus text exposition (format 0.0.4) of <v> to <out>; 0, or -ENOMEM with
 *  <out> holding part of it. */
int nx_metrics_format_prometheus(const nx_metrics_view_t *v, nx_buf_t *out);
/** The /stats document of <v> (new reference, NULL on ENOMEM): totals over all shards, by route,
 *  and per shard; requests by status class and code, latency p50/p99/mean, connections, bytes. */
json_t *nx_metrics_to_json(const nx_metrics_view_t *v);

#endif
