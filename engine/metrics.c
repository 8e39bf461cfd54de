/* Metrics counters and their two renderings (see metrics.h). Counters are written with a
 * relaxed load + store by their single owner: that compiles to a plain add on x86, and
 * readers on other shards see a consistent (if slightly stale) value without a data race. */
#include "metrics.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const int status_codes[NX_METRICS_STATUS_SLOTS - 1] = {
    100, 101, 200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405,
    406, 408, 409, 413, 414, 415, 422, 429, 431, 500, 501, 502, 503, 504, 505};

/* Bucket upper bounds in nanoseconds, and their Prometheus "le" labels in seconds. */
static const uint64_t bucket_ns[NX_METRICS_BUCKETS - 1] = {
    100000,    250000,    500000,     1000000,    2500000,    5000000,
    10000000,  25000000,  50000000,   100000000,  250000000,  500000000,
    1000000000, 2500000000, 5000000000, 10000000000};
static const char *const bucket_le[NX_METRICS_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf"};

static inline void bump(uint64_t *c, uint64_t n) {
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
static inline uint64_t get(const uint64_t *c) {
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

void nx_metrics_init(nx_shard_metrics_t *m) {
    memset(m, 0, sizeof(*m));
}

int nx_metrics_status_slot(int status) {
    int lo = 0, hi = NX_METRICS_STATUS_SLOTS - 2;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (status_codes[mid] == status) return mid;
        if (status_codes[mid] < status) lo = mid + 1;
        else hi = mid - 1;
    }
    return NX_METRICS_STATUS_SLOTS - 1;
}

int nx_metrics_bucket(uint64_t latency_ns) {
    int b = 0;
    while (b < NX_METRICS_BUCKETS - 1 && latency_ns > bucket_ns[b]) b++;
    return b;
}

void nx_metrics_record_request(nx_shard_metrics_t *m, uint32_t route, int status,
                               uint64_t latency_ns) {
    if (route > NX_METRICS_ROUTE_UNMATCHED) route = NX_METRICS_ROUTE_UNMATCHED;
    nx_route_metrics_t *r = &m->routes[route];
    bump(&r->status[nx_metrics_status_slot(status)], 1);
    bump(&r->bucket[nx_metrics_bucket(latency_ns)], 1);
    bump(&r->sum_ns, latency_ns);
    bump(&r->count, 1);
}

static const char *route_label(const nx_metrics_view_t *v, uint32_t route) {
    if (route == NX_METRICS_ROUTE_UNMATCHED || route >= v->route_count) return "unmatched";
    return v->route_names[route];
}

/* Appends <s> as a Prometheus label value: backslash, quote and newline escaped. */
static void label_escape(nx_buf_t *o, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') nx_buf_append(o, "\\\\", 2);
        else if (*s == '"') nx_buf_append(o, "\\\"", 2);
        else if (*s == '\n') nx_buf_append(o, "\\n", 2);
        else nx_buf_append(o, s, 1);
    }
}

static void family(nx_buf_t *o, const char *name, const char *type, const char *help) {
    nx_buf_appendf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void route_labels(nx_buf_t *o, uint32_t shard, const nx_metrics_view_t *v,
                         uint32_t route) {
    nx_buf_appendf(o, "{shard=\"%u\",route=\"", shard);
    label_escape(o, route_label(v, route));
    nx_buf_append(o, "\"", 1);
}

static void net_family(nx_buf_t *o, const nx_metrics_view_t *v, const char *name,
                       const char *type, const char *help, size_t offset) {
    if (v->net == NULL) return;
    family(o, name, type, help);
    for (uint32_t s = 0; s < v->shard_count; s++) {
        const char *base = (const char *)v->net[s];
        int64_t val = (int64_t)get((const uint64_t *)(base + offset));
        nx_buf_appendf(o, "%s{shard=\"%u\"} %lld\n", name, s, (long long)val);
    }
}

int nx_metrics_format_prometheus(const nx_metrics_view_t *v, nx_buf_t *o) {
    family(o, "nexus_build_info", "gauge", "Version of the running nexus.");
    nx_buf_append_str(o, "nexus_build_info{version=\"");
    label_escape(o, v->version ? v->version : "unknown");
    nx_buf_append_str(o, "\"} 1\n");
    family(o, "nexus_uptime_seconds", "gauge", "Seconds since the process started serving.");
    nx_buf_appendf(o, "nexus_uptime_seconds %.3f\n", v->uptime_seconds);
    family(o, "nexus_shards", "gauge", "Shards (reactor threads) running.");
    nx_buf_appendf(o, "nexus_shards %u\n", v->shard_count);

    family(o, "nexus_http_requests_total", "counter",
           "HTTP requests answered, by shard, route and status.");
    for (uint32_t s = 0; s < v->shard_count; s++) {
        for (uint32_t r = 0; r <= NX_METRICS_ROUTE_UNMATCHED; r++) {
            if (r < NX_METRICS_ROUTE_UNMATCHED && r >= v->route_count) continue;
            const nx_route_metrics_t *rm = &v->shards[s]->routes[r];
            for (int k = 0; k < NX_METRICS_STATUS_SLOTS; k++) {
                uint64_t n = get(&rm->status[k]);
                if (n == 0) continue;
                nx_buf_append_str(o, "nexus_http_requests_total");
                route_labels(o, s, v, r);
                if (k == NX_METRICS_STATUS_SLOTS - 1) nx_buf_append_str(o, ",status=\"other\"}");
                else nx_buf_appendf(o, ",status=\"%d\"}", status_codes[k]);
                nx_buf_appendf(o, " %llu\n", (unsigned long long)n);
            }
        }
    }
    family(o, "nexus_http_request_duration_seconds", "histogram",
           "Time from a request's first byte to its response being queued.");
    for (uint32_t s = 0; s < v->shard_count; s++) {
        for (uint32_t r = 0; r <= NX_METRICS_ROUTE_UNMATCHED; r++) {
            if (r < NX_METRICS_ROUTE_UNMATCHED && r >= v->route_count) continue;
            const nx_route_metrics_t *rm = &v->shards[s]->routes[r];
            uint64_t count = get(&rm->count);
            if (count == 0) continue;
            uint64_t cumulative = 0;
            for (int b = 0; b < NX_METRICS_BUCKETS; b++) {
                cumulative += get(&rm->bucket[b]);
                nx_buf_append_str(o, "nexus_http_request_duration_seconds_bucket");
                route_labels(o, s, v, r);
                nx_buf_appendf(o, ",le=\"%s\"} %llu\n", bucket_le[b],
                               (unsigned long long)cumulative);
            }
            nx_buf_append_str(o, "nexus_http_request_duration_seconds_sum");
            route_labels(o, s, v, r);
            nx_buf_appendf(o, "} %.9f\n", (double)get(&rm->sum_ns) / 1e9);
            nx_buf_append_str(o, "nexus_http_request_duration_seconds_count");
            route_labels(o, s, v, r);
            nx_buf_appendf(o, "} %llu\n", (unsigned long long)cumulative);
        }
    }
    net_family(o, v, "nexus_connections_open", "gauge", "Client connections open.",
               offsetof(nx_net_stats_t, connections_open));
    net_family(o, v, "nexus_connections_accepted_total", "counter",
               "Client connections accepted.", offsetof(nx_net_stats_t, connections_accepted));
    net_family(o, v, "nexus_connections_rejected_total", "counter",
               "Connections refused because the shard was at http.max_connections.",
               offsetof(nx_net_stats_t, connections_rejected));
    net_family(o, v, "nexus_received_bytes_total", "counter", "Bytes received from clients.",
               offsetof(nx_net_stats_t, bytes_in));
    net_family(o, v, "nexus_sent_bytes_total", "counter", "Bytes sent to clients.",
               offsetof(nx_net_stats_t, bytes_out));
    return o->data == NULL ? -ENOMEM : 0;
}

/* Estimates quantile <q> from cumulative bucket counts, interpolating inside the bucket. */
static double quantile(const uint64_t *buckets, uint64_t count, double q) {
    if (count == 0) return 0.0;
    double rank = q * (double)count;
    uint64_t cumulative = 0;
    for (int b = 0; b < NX_METRICS_BUCKETS; b++) {
        uint64_t prev = cumulative;
        cumulative += buckets[b];
        if ((double)cumulative >= rank && buckets[b] > 0) {
            double lo = b == 0 ? 0.0 : (double)bucket_ns[b - 1];
            if (b == NX_METRICS_BUCKETS - 1) return lo / 1e9; /* beyond the last bound */
            double hi = (double)bucket_ns[b];
            double frac = (rank - (double)prev) / (double)buckets[b];
            return (lo + (hi - lo) * frac) / 1e9;
        }
    }
    return (double)bucket_ns[NX_METRICS_BUCKETS - 2] / 1e9;
}

json_t *nx_metrics_to_json(const nx_metrics_view_t *v) {
    uint64_t total = 0, classes[6] = {0};
    uint64_t all_buckets[NX_METRICS_BUCKETS] = {0};
    json_t *by_route = json_object(), *per_shard = json_array();
    for (uint32_t r = 0; r <= NX_METRICS_ROUTE_UNMATCHED; r++) {
        if (r < NX_METRICS_ROUTE_UNMATCHED && r >= v->route_count) continue;
        uint64_t count = 0, buckets[NX_METRICS_BUCKETS] = {0}, sum_ns = 0;
        json_t *by_status = json_object();
        uint64_t status_totals[NX_METRICS_STATUS_SLOTS] = {0};
        for (uint32_t s = 0; s < v->shard_count; s++) {
            const nx_route_metrics_t *rm = &v->shards[s]->routes[r];
            count += get(&rm->count);
            sum_ns += get(&rm->sum_ns);
            for (int b = 0; b < NX_METRICS_BUCKETS; b++) buckets[b] += get(&rm->bucket[b]);
            for (int k = 0; k < NX_METRICS_STATUS_SLOTS; k++) status_totals[k] += get(&rm->status[k]);
        }
        if (count == 0) {
            json_decref(by_status);
            continue;
        }
        for (int k = 0; k < NX_METRICS_STATUS_SLOTS; k++) {
            if (status_totals[k] == 0) continue;
            char code[8];
            if (k == NX_METRICS_STATUS_SLOTS - 1) {
                snprintf(code, sizeof(code), "other");
                classes[0] += status_totals[k];
            } else {
                snprintf(code, sizeof(code), "%d", status_codes[k]);
                int cls = status_codes[k] / 100;
                classes[cls >= 1 && cls <= 5 ? cls : 0] += status_totals[k];
            }
            json_object_set_new(by_status, code, json_integer((json_int_t)status_totals[k]));
        }
        for (int b = 0; b < NX_METRICS_BUCKETS; b++) all_buckets[b] += buckets[b];
        total += count;
        json_object_set_new(
            by_route, route_label(v, r),
            json_pack("{s:I, s:o, s:f, s:f, s:f}", "count", (json_int_t)count, "by_status",
                      by_status, "mean_seconds", (double)sum_ns / 1e9 / (double)count,
                      "p50_seconds", quantile(buckets, count, 0.50), "p99_seconds",
                      quantile(buckets, count, 0.99)));
    }
    for (uint32_t s = 0; s < v->shard_count; s++) {
        uint64_t n = 0;
        for (uint32_t r = 0; r <= NX_METRICS_ROUTE_UNMATCHED; r++)
            n += get(&v->shards[s]->routes[r].count);
        json_array_append_new(per_shard,
                              json_pack("{s:i, s:I}", "shard", (int)s, "requests", (json_int_t)n));
    }
    return json_pack("{s:s, s:f, s:i, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:f, s:f}, s:o, "
                     "s:o}",
                     "version", v->version ? v->version : "unknown", "uptime_seconds",
                     v->uptime_seconds, "shards", (int)v->shard_count, "requests_total",
                     (json_int_t)total, "by_status_class", "1xx", (json_int_t)classes[1], "2xx",
                     (json_int_t)classes[2], "3xx", (json_int_t)classes[3], "4xx",
                     (json_int_t)classes[4], "5xx", (json_int_t)classes[5], "other",
                     (json_int_t)classes[0], "latency_seconds", "p50",
                     quantile(all_buckets, total, 0.50), "p99",
                     quantile(all_buckets, total, 0.99), "by_route", by_route, "per_shard",
                     per_shard);
}
