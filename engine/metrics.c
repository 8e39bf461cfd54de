/* Metrics counters and their two renderings (see metrics.h). Recording is a handful of relaxed
 * single-writer adds; formatting reads every shard with relaxed loads, so a scrape sees each
 * counter whole but not one instant across counters (a bucket may be ahead of its _count by a
 * request in flight; Prometheus tolerates that). */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const int status_codes[NX_METRICS_STATUS_CODES] = {
    100, 101, 200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405,
    406, 408, 409, 413, 414, 415, 422, 429, 431, 500, 501, 502, 503, 504, 505};
static const char *const status_labels[NX_METRICS_STATUS_SLOTS] = {
    "100", "101", "200", "201", "202", "204", "206", "301", "302", "304", "400", "401",
    "403", "404", "405", "406", "408", "409", "413", "414", "415", "422", "429", "431",
    "500", "501", "502", "503", "504", "505", "1xx", "2xx", "3xx", "4xx", "5xx", "other"};
/* The last six labels double as the status classes of /stats. */
static const char *const *const class_labels = status_labels + NX_METRICS_STATUS_CODES;

/* Bucket upper bounds in nanoseconds, and the same in seconds as Prometheus "le" labels. */
static const uint64_t bucket_ns[NX_METRICS_BUCKETS - 1] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};
static const char *const bucket_le[NX_METRICS_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf"};

void nx_metrics_init(nx_shard_metrics_t *m) {
    memset(m, 0, sizeof(*m));
}

int nx_metrics_status_slot(int status) {
    int lo = 0, hi = NX_METRICS_STATUS_CODES - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (status_codes[mid] == status) return mid;
        if (status_codes[mid] < status)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    if (status >= 100 && status <= 599) return NX_METRICS_STATUS_CODES + status / 100 - 1;
    return NX_METRICS_STATUS_OTHER;
}

const char *nx_metrics_status_label(int slot) {
    if (slot < 0 || slot >= NX_METRICS_STATUS_SLOTS) return "other";
    return status_labels[slot];
}

/* The status class index of <slot>: 0..4 for 1xx..5xx, 5 for other. */
static int slot_class(int slot) {
    if (slot < NX_METRICS_STATUS_CODES) return status_codes[slot] / 100 - 1;
    return slot - NX_METRICS_STATUS_CODES;
}

int nx_metrics_bucket(uint64_t latency_ns) {
    int b = 0;
    while (b < NX_METRICS_BUCKETS - 1 && latency_ns > bucket_ns[b])
        b++;
    return b;
}

void nx_metrics_record_request(nx_shard_metrics_t *m, uint32_t route_index, int status,
                               uint64_t latency_ns) {
    if (route_index > NX_METRICS_ROUTE_UNMATCHED) route_index = NX_METRICS_ROUTE_UNMATCHED;
    nx_route_metrics_t *r = &m->routes[route_index];
    nx_metrics_add(&r->status[nx_metrics_status_slot(status)], 1);
    nx_metrics_add(&r->bucket[nx_metrics_bucket(latency_ns)], 1);
    nx_metrics_add(&r->sum_ns, latency_ns);
    nx_metrics_add(&r->count, 1);
}

/* Route <r>'s label: its name, "unmatched", or "route_<r>" for a slot the view has no name for
 * (written into <tmp>). */
static const char *route_label(const nx_metrics_view_t *v, uint32_t r, char tmp[16]) {
    if (r == NX_METRICS_ROUTE_UNMATCHED) return "unmatched";
    if (r < v->route_count && v->route_names != NULL && v->route_names[r] != NULL)
        return v->route_names[r];
    snprintf(tmp, 16, "route_%u", r);
    return tmp;
}

/* ---- Prometheus text format 0.0.4 ---- */

/* An output buffer that remembers its first failure, so the formatter reads straight through. */
typedef struct prom {
    nx_buf_t *b;
    int rc;
} prom_t;

static void put(prom_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(prom_t *o, const char *fmt, ...) {
    if (o->rc < 0) return;
    va_list ap;
    va_start(ap, fmt);
    o->rc = nx_buf_vappendf(o->b, fmt, ap);
    va_end(ap);
}

/* Appends <s> as a label value: backslash, double quote and newline escaped. */
static void put_label_value(prom_t *o, const char *s) {
    while (o->rc == 0 && *s != '\0') {
        size_t n = strcspn(s, "\\\"\n");
        o->rc = nx_buf_append(o->b, s, n);
        s += n;
        if (o->rc < 0 || *s == '\0') break;
        const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n";
        o->rc = nx_buf_append(o->b, esc, 2);
        s++;
    }
}

static void put_family(prom_t *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends "<name>{shard="<s>",route="<label>"" without the closing brace. */
static void put_route_series(prom_t *o, const char *name, uint32_t s, const char *route) {
    put(o, "%s{shard=\"%" PRIu32 "\",route=\"", name, s);
    put_label_value(o, route);
    put(o, "\"");
}

static void put_shard_counter(prom_t *o, const nx_metrics_view_t *v, const char *name,
                              const char *help, size_t offset) {
    if (v->net == NULL) return;
    put_family(o, name, "counter", help);
    for (uint32_t s = 0; s < v->shard_count; s++) {
        const uint64_t *c = (const uint64_t *)((const char *)v->net[s] + offset);
        put(o, "%s{shard=\"%" PRIu32 "\"} %" PRIu64 "\n", name, s, nx_metrics_load(c));
    }
}

int nx_metrics_format_prometheus(const nx_metrics_view_t *v, nx_buf_t *out) {
    prom_t o = {out, 0};
    char tmp[16];

    put_family(&o, "nexus_build_info", "gauge", "Version of the running nexus; always 1.");
    put(&o, "nexus_build_info{version=\"");
    put_label_value(&o, v->version != NULL ? v->version : "unknown");
    put(&o, "\"} 1\n");
    put_family(&o, "nexus_uptime_seconds", "gauge", "Seconds since nexus started.");
    put(&o, "nexus_uptime_seconds %.3f\n", v->uptime_seconds);
    put_family(&o, "nexus_shards", "gauge", "Shards (reactor threads) serving requests.");
    put(&o, "nexus_shards %" PRIu32 "\n", v->shard_count);

    put_family(&o, "nexus_http_requests_total", "counter",
               "HTTP requests answered, by shard, route and status.");
    for (uint32_t s = 0; s < v->shard_count; s++) {
        for (uint32_t r = 0; r <= NX_METRICS_ROUTE_UNMATCHED; r++) {
            const nx_route_metrics_t *rm = &v->shards[s]->routes[r];
            if (nx_metrics_load(&rm->count) == 0) continue;
            const char *route = route_label(v, r, tmp);
            for (int k = 0; k < NX_METRICS_STATUS_SLOTS; k++) {
                uint64_t n = nx_metrics_load(&rm->status[k]);
                if (n == 0) continue;
                put_route_series(&o, "nexus_http_requests_total", s, route);
                put(&o, ",status=\"%s\"} %" PRIu64 "\n", nx_metrics_status_label(k), n);
            }
        }
    }

    put_family(&o, "nexus_http_request_duration_seconds", "histogram",
               "Time from a request's first byte to its response being queued, in seconds.");
    for (uint32_t s = 0; s < v->shard_count; s++) {
        for (uint32_t r = 0; r <= NX_METRICS_ROUTE_UNMATCHED; r++) {
            const nx_route_metrics_t *rm = &v->shards[s]->routes[r];
            if (nx_metrics_load(&rm->count) == 0) continue;
            const char *route = route_label(v, r, tmp);
            /* _count is the +Inf bucket as read here, so the two always agree. */
            uint64_t cumulative = 0;
            for (int b = 0; b < NX_METRICS_BUCKETS; b++) {
                cumulative += nx_metrics_load(&rm->bucket[b]);
                put_route_series(&o, "nexus_http_request_duration_seconds_bucket", s, route);
                put(&o, ",le=\"%s\"} %" PRIu64 "\n", bucket_le[b], cumulative);
            }
            uint64_t sum_ns = nx_metrics_load(&rm->sum_ns);
            put_route_series(&o, "nexus_http_request_duration_seconds_sum", s, route);
            put(&o, "} %" PRIu64 ".%09" PRIu64 "\n", sum_ns / 1000000000u, sum_ns % 1000000000u);
            put_route_series(&o, "nexus_http_request_duration_seconds_count", s, route);
            put(&o, "} %" PRIu64 "\n", cumulative);
        }
    }

    if (v->net != NULL) {
        put_family(&o, "nexus_connections_open", "gauge", "Client connections open.");
        for (uint32_t s = 0; s < v->shard_count; s++)
            put(&o, "nexus_connections_open{shard=\"%" PRIu32 "\"} %" PRId64 "\n", s,
                nx_metrics_gauge_load(&v->net[s]->connections_open));
    }
    put_shard_counter(&o, v, "nexus_connections_accepted_total", "Client connections accepted.",
                      offsetof(nx_net_stats_t, connections_accepted));
    put_shard_counter(&o, v, "nexus_connections_rejected_total",
                      "Client connections refused because the shard was at max_connections.",
                      offsetof(nx_net_stats_t, connections_rejected));
    put_shard_counter(&o, v, "nexus_received_bytes_total", "Bytes received from clients.",
                      offsetof(nx_net_stats_t, bytes_in));
    put_shard_counter(&o, v, "nexus_sent_bytes_total", "Bytes sent to clients.",
                      offsetof(nx_net_stats_t, bytes_out));
    return o.rc < 0 ? -ENOMEM : 0;
}

/* ---- JSON for /stats ---- */

/* Counters summed over some routes and shards. */
typedef struct agg {
    uint64_t status[NX_METRICS_STATUS_SLOTS];
    uint64_t bucket[NX_METRICS_BUCKETS];
    uint64_t sum_ns;
    uint64_t count;
} agg_t;

static void agg_add(agg_t *a, const nx_route_metrics_t *rm) {
    for (int k = 0; k < NX_METRICS_STATUS_SLOTS; k++)
        a->status[k] += nx_metrics_load(&rm->status[k]);
    for (int b = 0; b < NX_METRICS_BUCKETS; b++)
        a->bucket[b] += nx_metrics_load(&rm->bucket[b]);
    a->sum_ns += nx_metrics_load(&rm->sum_ns);
    a->count += nx_metrics_load(&rm->count);
}

/* Estimates quantile <q> in seconds the way Prometheus' histogram_quantile does: find the bucket
 * holding rank q * count and interpolate linearly inside it; in +Inf, answer the last bound. */
static double quantile(const agg_t *a, double q) {
    uint64_t total = 0;
    for (int b = 0; b < NX_METRICS_BUCKETS; b++)
        total += a->bucket[b];
    if (total == 0) return 0.0;
    double rank = q * (double)total;
    uint64_t below = 0;
    for (int b = 0; b < NX_METRICS_BUCKETS - 1; b++) {
        if (a->bucket[b] > 0 && (double)(below + a->bucket[b]) >= rank) {
            double lo = b == 0 ? 0.0 : (double)bucket_ns[b - 1];
            double hi = (double)bucket_ns[b];
            double frac = (rank - (double)below) / (double)a->bucket[b];
            return (lo + (hi - lo) * frac) / 1e9;
        }
        below += a->bucket[b];
    }
    return (double)bucket_ns[NX_METRICS_BUCKETS - 2] / 1e9;
}

static json_t *jint(uint64_t n) {
    return json_integer(n > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)n);
}

/* Sets <key> of <obj> to <val> (stolen); remembers a failure in <*ok>. */
static void jset(json_t *obj, const char *key, json_t *val, bool *ok) {
    if (obj == NULL || val == NULL || json_object_set_new(obj, key, val) < 0) {
        if (obj == NULL || val == NULL) json_decref(val);
        *ok = false;
    }
}

/* {"requests", "by_status_class", "by_status", "latency_seconds": {p50, p99, mean}} */
static json_t *agg_json(const agg_t *a, bool *ok) {
    json_t *o = json_object(), *cls = json_object(), *codes = json_object(), *lat = json_object();
    uint64_t classes[6] = {0};
    for (int k = 0; k < NX_METRICS_STATUS_SLOTS; k++) {
        classes[slot_class(k)] += a->status[k];
        if (a->status[k] != 0) jset(codes, nx_metrics_status_label(k), jint(a->status[k]), ok);
    }
    for (int c = 0; c < 6; c++)
        jset(cls, class_labels[c], jint(classes[c]), ok);
    jset(lat, "p50", json_real(quantile(a, 0.50)), ok);
    jset(lat, "p99", json_real(quantile(a, 0.99)), ok);
    jset(lat, "mean", json_real(a->count ? (double)a->sum_ns / 1e9 / (double)a->count : 0.0), ok);
    jset(o, "requests", jint(a->count), ok);
    jset(o, "by_status_class", cls, ok);
    jset(o, "by_status", codes, ok);
    jset(o, "latency_seconds", lat, ok);
    return o;
}

/* Connection and byte counters, read once. */
typedef struct net_sum {
    int64_t open;
    uint64_t accepted, rejected, in, out;
} net_sum_t;

static void net_add(net_sum_t *t, const nx_net_stats_t *m) {
    if (m == NULL) return;
    t->open += nx_metrics_gauge_load(&m->connections_open);
    t->accepted += nx_metrics_load(&m->connections_accepted);
    t->rejected += nx_metrics_load(&m->connections_rejected);
    t->in += nx_metrics_load(&m->bytes_in);
    t->out += nx_metrics_load(&m->bytes_out);
}

static void net_json(json_t *o, const net_sum_t *n, bool *ok) {
    jset(o, "connections_open", json_integer(n->open), ok);
    jset(o, "connections_accepted", jint(n->accepted), ok);
    jset(o, "connections_rejected", jint(n->rejected), ok);
    jset(o, "bytes_in", jint(n->in), ok);
    jset(o, "bytes_out", jint(n->out), ok);
}

json_t *nx_metrics_to_json(const nx_metrics_view_t *v) {
    bool ok = true;
    char tmp[16];
    agg_t total = {0};
    net_sum_t net_total = {0};
    json_t *by_route = json_object(), *per_shard = json_array();
    if (by_route == NULL || per_shard == NULL) ok = false;

    for (uint32_t s = 0; ok && s < v->shard_count; s++) {
        agg_t a = {0};
        net_sum_t n = {0};
        for (uint32_t r = 0; r <= NX_METRICS_ROUTE_UNMATCHED; r++)
            agg_add(&a, &v->shards[s]->routes[r]);
        net_add(&n, v->net ? v->net[s] : NULL);
        net_add(&net_total, v->net ? v->net[s] : NULL);
        json_t *sj = agg_json(&a, &ok);
        jset(sj, "shard", json_integer(s), &ok);
        net_json(sj, &n, &ok);
        if (sj == NULL || json_array_append_new(per_shard, sj) < 0) ok = false;
    }
    for (uint32_t r = 0; ok && r <= NX_METRICS_ROUTE_UNMATCHED; r++) {
        agg_t a = {0};
        for (uint32_t s = 0; s < v->shard_count; s++)
            agg_add(&a, &v->shards[s]->routes[r]);
        if (a.count == 0) continue;
        for (int k = 0; k < NX_METRICS_STATUS_SLOTS; k++)
            total.status[k] += a.status[k];
        for (int b = 0; b < NX_METRICS_BUCKETS; b++)
            total.bucket[b] += a.bucket[b];
        total.sum_ns += a.sum_ns;
        total.count += a.count;
        jset(by_route, route_label(v, r, tmp), agg_json(&a, &ok), &ok);
    }

    /* The totals sit at the top level, next to "by_route" and "per_shard". */
    json_t *j = ok ? agg_json(&total, &ok) : NULL;
    jset(j, "version", json_string(v->version != NULL ? v->version : "unknown"), &ok);
    jset(j, "uptime_seconds", json_real(v->uptime_seconds), &ok);
    jset(j, "shards", json_integer(v->shard_count), &ok);
    net_json(j, &net_total, &ok);
    jset(j, "by_route", by_route, &ok);
    jset(j, "per_shard", per_shard, &ok);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}
