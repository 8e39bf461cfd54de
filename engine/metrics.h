/* Request metrics: per shard, per route, per status, with a latency histogram. Each shard is
 * the only writer of its nx_shard_metrics_t (relaxed atomic stores, no lock prefix); /metrics
 * and /stats read every shard's counters from whichever shard serves them. */
#ifndef NX_ENGINE_METRICS_H
#define NX_ENGINE_METRICS_H

#include "buf.h"
#include "shard.h"

#include <jansson.h>
#include <stdint.h>

#define NX_METRICS_MAX_ROUTES 64
/* The slot for requests that matched no route or failed to parse. */
#define NX_METRICS_ROUTE_UNMATCHED NX_METRICS_MAX_ROUTES
#define NX_METRICS_STATUS_SLOTS 31 /* the 30 codes of metrics.c, then "other" */
#define NX_METRICS_BUCKETS 17      /* 16 bounds, then +Inf */

/* Counters of one route on one shard. */
typedef struct nx_route_metrics {
    uint64_t status[NX_METRICS_STATUS_SLOTS];
    uint64_t bucket[NX_METRICS_BUCKETS]; /* per bucket, not cumulative */
    uint64_t sum_ns;
    uint64_t count;
} nx_route_metrics_t;

/* Owned (and written) by one shard. */
typedef struct nx_shard_metrics {
    nx_route_metrics_t routes[NX_METRICS_MAX_ROUTES + 1];
} nx_shard_metrics_t;

/* What the formatters read: every shard's counters plus names and process facts. */
typedef struct nx_metrics_view {
    const nx_shard_metrics_t *const *shards;
    const nx_net_stats_t *const *net; /* per shard; may be NULL */
    uint32_t shard_count;
    const char *const *route_names; /* route i's label, e.g. "GET /health" */
    uint32_t route_count;
    const char *version;
    double uptime_seconds;
} nx_metrics_view_t;

/** Zeroes <m>. */
void nx_metrics_init(nx_shard_metrics_t *m);
/** Counts one answered request of <route> (or NX_METRICS_ROUTE_UNMATCHED) with <status>. */
void nx_metrics_record_request(nx_shard_metrics_t *m, uint32_t route, int status,
                               uint64_t latency_ns);
/** The status slot <status> is counted in (NX_METRICS_STATUS_SLOTS - 1 = other). */
int nx_metrics_status_slot(int status);
/** The histogram bucket of <latency_ns>. */
int nx_metrics_bucket(uint64_t latency_ns);
/** Appends the Prometheus text exposition (format 0.0.4) of <v> to <out>; 0 or -ENOMEM. */
int nx_metrics_format_prometheus(const nx_metrics_view_t *v, nx_buf_t *out);
/** The /stats document: totals, by status class, by route (count, p50, p99), per shard. */
json_t *nx_metrics_to_json(const nx_metrics_view_t *v);

#endif
