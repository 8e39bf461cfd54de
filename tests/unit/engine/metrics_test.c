/* Metrics: status slots, latency bucket boundaries, the exact Prometheus text of a small fixture,
 * a parse-back of a bigger one (families, escaping, cumulative buckets), the /stats JSON totals
 * across shards, and a reader formatting while the owner writes. */
#include <criterion/criterion.h>

#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000ull /* ns */

Test(metrics, status_slots) {
    static const int listed[] = {100, 101, 200, 201, 202, 204, 206, 301, 302, 304,
                                 400, 401, 403, 404, 405, 406, 408, 409, 413, 414,
                                 415, 422, 429, 431, 500, 501, 502, 503, 504, 505};
    bool seen[NX_METRICS_STATUS_SLOTS] = {false};
    for (size_t i = 0; i < sizeof(listed) / sizeof(listed[0]); i++) {
        int slot = nx_metrics_status_slot(listed[i]);
        cr_assert(slot >= 0 && slot < NX_METRICS_STATUS_CODES, "%d has no slot of its own",
                  listed[i]);
        cr_assert_not(seen[slot], "two codes share slot %d", slot);
        seen[slot] = true;
        char code[8];
        snprintf(code, sizeof(code), "%d", listed[i]);
        cr_assert_str_eq(nx_metrics_status_label(slot), code);
    }
    /* Unlisted codes keep their class; anything else is "other". */
    static const struct {
        int status;
        const char *label;
    } rest[] = {{102, "1xx"},  {299, "2xx"},  {203, "2xx"},   {308, "3xx"},   {418, "4xx"},
                {451, "4xx"},  {499, "4xx"},  {507, "5xx"},   {599, "5xx"},   {0, "other"},
                {-1, "other"}, {99, "other"}, {600, "other"}, {1000, "other"}};
    for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
        cr_assert_str_eq(nx_metrics_status_label(nx_metrics_status_slot(rest[i].status)),
                         rest[i].label, "status %d", rest[i].status);
    cr_assert_eq(nx_metrics_status_slot(12345), NX_METRICS_STATUS_OTHER);
}

Test(metrics, latency_bucket_boundaries_are_inclusive) {
    static const double le[NX_METRICS_BUCKETS - 1] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                      1,      2.5,     5,      10};
    cr_assert_eq(nx_metrics_bucket(0), 0);
    for (int b = 0; b < NX_METRICS_BUCKETS - 1; b++) {
        uint64_t bound = (uint64_t)llround(le[b] * 1e9);
        cr_assert_eq(nx_metrics_bucket(bound), b, "exactly %g s goes to le=%g", le[b], le[b]);
        cr_assert_eq(nx_metrics_bucket(bound + 1), b + 1, "just over %g s goes above it", le[b]);
        if (b > 0) cr_assert_eq(nx_metrics_bucket(bound - 1), b);
    }
    cr_assert_eq(nx_metrics_bucket(1 * MS), 3, "exactly 1 ms goes to le=0.001");
    cr_assert_eq(nx_metrics_bucket(UINT64_MAX), NX_METRICS_BUCKETS - 1, "+Inf");
}

Test(metrics, record_request_counts_route_status_and_latency) {
    nx_shard_metrics_t *m = malloc(sizeof(*m));
    nx_metrics_init(m);
    nx_metrics_record_request(m, 3, 200, 2 * MS);
    nx_metrics_record_request(m, 3, 418, 3 * MS);
    nx_metrics_record_request(m, NX_METRICS_ROUTE_UNMATCHED, 404, 1);
    nx_metrics_record_request(m, 5000, 400, 1); /* beyond the table: counted as unmatched */
    const nx_route_metrics_t *r = &m->routes[3];
    cr_assert_eq(r->count, 2);
    cr_assert_eq(r->sum_ns, 5 * MS);
    cr_assert_eq(r->status[nx_metrics_status_slot(200)], 1);
    cr_assert_eq(r->status[nx_metrics_status_slot(499)], 1, "418 is counted as 4xx");
    cr_assert_eq(r->bucket[nx_metrics_bucket(2 * MS)], 1);
    cr_assert_eq(m->routes[NX_METRICS_ROUTE_UNMATCHED].count, 2);
    nx_net_stats_t net = {0};
    nx_metrics_gauge_add(&net.connections_open, 3);
    nx_metrics_gauge_add(&net.connections_open, -1);
    nx_metrics_add(&net.bytes_in, 10);
    nx_metrics_add(&net.bytes_in, 5);
    cr_assert_eq(nx_metrics_gauge_load(&net.connections_open), 2);
    cr_assert_eq(nx_metrics_load(&net.bytes_in), 15);
    free(m);
}

static char *format(const nx_metrics_view_t *v) {
    nx_buf_t out;
    nx_buf_init(&out);
    cr_assert_eq(nx_metrics_format_prometheus(v, &out), 0);
    cr_assert_eq(nx_buf_append(&out, "", 1), 0);
    return out.data;
}

Test(metrics, prometheus_exact_text_for_a_small_fixture) {
    nx_shard_metrics_t *m = malloc(sizeof(*m));
    nx_metrics_init(m);
    nx_metrics_record_request(m, 0, 200, 1 * MS);
    nx_metrics_record_request(m, 0, 200, 1 * MS + 500);
    nx_metrics_record_request(m, NX_METRICS_ROUTE_UNMATCHED, 404, 20 * MS);
    nx_net_stats_t net = {0};
    nx_metrics_gauge_add(&net.connections_open, 2);
    nx_metrics_add(&net.connections_accepted, 5);
    nx_metrics_add(&net.connections_rejected, 1);
    nx_metrics_add(&net.bytes_in, 100);
    nx_metrics_add(&net.bytes_out, 200);
    const nx_shard_metrics_t *shards[] = {m};
    const nx_net_stats_t *nets[] = {&net};
    const char *names[] = {"GET /health", "GET /unused"};
    nx_metrics_view_t v = {shards, nets, 1, names, 2, "1.0.0", 12.5};
    char *text = format(&v);

    static const char *le[NX_METRICS_BUCKETS] = {
        "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
        "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf"};
    static const int health[NX_METRICS_BUCKETS] = {0, 0, 0, 1, 2, 2, 2, 2, 2,
                                                   2, 2, 2, 2, 2, 2, 2, 2};
    static const int unmatched[NX_METRICS_BUCKETS] = {0, 0, 0, 0, 0, 0, 0, 1, 1,
                                                      1, 1, 1, 1, 1, 1, 1, 1};
    nx_buf_t e;
    nx_buf_init(&e);
    nx_buf_append_str(&e, "# HELP nexus_build_info Version of the running nexus; always 1.\n"
                          "# TYPE nexus_build_info gauge\n"
                          "nexus_build_info{version=\"1.0.0\"} 1\n"
                          "# HELP nexus_uptime_seconds Seconds since nexus started.\n"
                          "# TYPE nexus_uptime_seconds gauge\n"
                          "nexus_uptime_seconds 12.500\n"
                          "# HELP nexus_shards Shards (reactor threads) serving requests.\n"
                          "# TYPE nexus_shards gauge\n"
                          "nexus_shards 1\n"
                          "# HELP nexus_http_requests_total HTTP requests answered, by shard, "
                          "route and status.\n"
                          "# TYPE nexus_http_requests_total counter\n"
                          "nexus_http_requests_total{shard=\"0\",route=\"GET /health\","
                          "status=\"200\"} 2\n"
                          "nexus_http_requests_total{shard=\"0\",route=\"unmatched\","
                          "status=\"404\"} 1\n"
                          "# HELP nexus_http_request_duration_seconds Time from a request's first "
                          "byte to its response being queued, in seconds.\n"
                          "# TYPE nexus_http_request_duration_seconds histogram\n");
    const char *h = "nexus_http_request_duration_seconds";
    for (int b = 0; b < NX_METRICS_BUCKETS; b++)
        nx_buf_appendf(&e, "%s_bucket{shard=\"0\",route=\"GET /health\",le=\"%s\"} %d\n", h, le[b],
                       health[b]);
    nx_buf_appendf(&e, "%s_sum{shard=\"0\",route=\"GET /health\"} 0.002000500\n", h);
    nx_buf_appendf(&e, "%s_count{shard=\"0\",route=\"GET /health\"} 2\n", h);
    for (int b = 0; b < NX_METRICS_BUCKETS; b++)
        nx_buf_appendf(&e, "%s_bucket{shard=\"0\",route=\"unmatched\",le=\"%s\"} %d\n", h, le[b],
                       unmatched[b]);
    nx_buf_appendf(&e, "%s_sum{shard=\"0\",route=\"unmatched\"} 0.020000000\n", h);
    nx_buf_appendf(&e, "%s_count{shard=\"0\",route=\"unmatched\"} 1\n", h);
    nx_buf_append_str(&e, "# HELP nexus_connections_open Client connections open.\n"
                          "# TYPE nexus_connections_open gauge\n"
                          "nexus_connections_open{shard=\"0\"} 2\n"
                          "# HELP nexus_connections_accepted_total Client connections accepted.\n"
                          "# TYPE nexus_connections_accepted_total counter\n"
                          "nexus_connections_accepted_total{shard=\"0\"} 5\n"
                          "# HELP nexus_connections_rejected_total Client connections refused "
                          "because the shard was at max_connections.\n"
                          "# TYPE nexus_connections_rejected_total counter\n"
                          "nexus_connections_rejected_total{shard=\"0\"} 1\n"
                          "# HELP nexus_received_bytes_total Bytes received from clients.\n"
                          "# TYPE nexus_received_bytes_total counter\n"
                          "nexus_received_bytes_total{shard=\"0\"} 100\n"
                          "# HELP nexus_sent_bytes_total Bytes sent to clients.\n"
                          "# TYPE nexus_sent_bytes_total counter\n"
                          "nexus_sent_bytes_total{shard=\"0\"} 200\n");
    nx_buf_append(&e, "", 1);
    const char *expected = e.data;
    cr_assert_str_eq(text, expected);
    nx_buf_dispose(&e);
    free(text);
    free(m);
}

/* ---- a small parser for the text format, to check a bigger exposition line by line ---- */

typedef struct sample {
    char name[96];
    int nlabels;
    char key[4][16];
    char val[4][96]; /* unescaped */
    double value;
} sample_t;

static const char *label(const sample_t *s, const char *key) {
    for (int i = 0; i < s->nlabels; i++)
        if (strcmp(s->key[i], key) == 0) return s->val[i];
    return NULL;
}

/* Parses "name{k="v",...} value" strictly; false on any deviation. */
static bool parse_sample(const char *line, sample_t *s) {
    memset(s, 0, sizeof(*s));
    size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:0123456789");
    if (n == 0 || n >= sizeof(s->name)) return false;
    memcpy(s->name, line, n);
    const char *p = line + n;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (s->nlabels == 4) return false;
            size_t k = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
            if (k == 0 || k >= 16 || p[k] != '=' || p[k + 1] != '"') return false;
            memcpy(s->key[s->nlabels], p, k);
            p += k + 2;
            char *v = s->val[s->nlabels];
            size_t vn = 0;
            while (*p != '"') {
                if (*p == '\0' || *p == '\n' || vn + 1 >= 96) return false;
                if (*p == '\\') {
                    p++;
                    if (*p == 'n')
                        v[vn++] = '\n';
                    else if (*p == '\\' || *p == '"')
                        v[vn++] = *p;
                    else
                        return false;
                } else {
                    v[vn++] = *p;
                }
                p++;
            }
            p++;
            s->nlabels++;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return false;
        }
        p++;
    }
    if (*p != ' ') return false;
    char *end;
    s->value = strtod(p + 1, &end);
    return end != p + 1 && *end == '\0';
}

typedef struct fixture {
    nx_shard_metrics_t *m[2];
    const char *names[3];
    nx_net_stats_t net[2];
    const nx_net_stats_t *netp[2];
    nx_metrics_view_t v;
} fixture_t;

static void make_fixture(fixture_t *f) {
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < 2; i++) {
        f->m[i] = malloc(sizeof(nx_shard_metrics_t));
        nx_metrics_init(f->m[i]);
    }
    f->names[0] = "GET /health";
    f->names[1] = "GET /a\"b\\c\nd"; /* every character that needs escaping */
    f->names[2] = "POST /never";
    nx_metrics_record_request(f->m[0], 0, 200, 50000);  /* 50 us */
    nx_metrics_record_request(f->m[0], 0, 200, 2 * MS); /* 2 ms */
    nx_metrics_record_request(f->m[1], 0, 503, 1 * MS);
    nx_metrics_record_request(f->m[1], 1, 404, 300000);
    nx_metrics_record_request(f->m[1], 1, 418, 7 * MS);
    nx_metrics_record_request(f->m[1], NX_METRICS_ROUTE_UNMATCHED, 400, 10000);
    nx_metrics_record_request(f->m[1], 9, 200, 20 * 1000 * MS); /* unnamed slot, 20 s */
    nx_metrics_gauge_add(&f->net[0].connections_open, 3);
    nx_metrics_gauge_add(&f->net[1].connections_open, 4);
    nx_metrics_add(&f->net[0].connections_accepted, 10);
    nx_metrics_add(&f->net[1].connections_accepted, 20);
    nx_metrics_add(&f->net[1].connections_rejected, 2);
    nx_metrics_add(&f->net[0].bytes_in, 1000);
    nx_metrics_add(&f->net[1].bytes_in, 500);
    nx_metrics_add(&f->net[1].bytes_out, 12345);
    f->netp[0] = &f->net[0];
    f->netp[1] = &f->net[1];
    f->v = (nx_metrics_view_t){.shards = (const nx_shard_metrics_t *const *)f->m,
                               .net = f->netp,
                               .shard_count = 2,
                               .route_names = f->names,
                               .route_count = 3,
                               .version = "9.9.9-\"rc\"",
                               .uptime_seconds = 1.5};
}

static void free_fixture(fixture_t *f) {
    free(f->m[0]);
    free(f->m[1]);
}

/* The family a sample belongs to: histogram series drop their suffix. */
static void family_of(const char *name, char *fam, size_t cap) {
    snprintf(fam, cap, "%s", name);
    static const char *suffixes[] = {"_bucket", "_sum", "_count"};
    if (strncmp(fam, "nexus_http_request_duration_seconds", 35) != 0) return;
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(fam), k = strlen(suffixes[i]);
        if (n > k && strcmp(fam + n - k, suffixes[i]) == 0) fam[n - k] = '\0';
    }
}

static double find(sample_t *all, int n, const char *name, const char *route, const char *shard,
                   const char *extra_key, const char *extra_val) {
    for (int i = 0; i < n; i++) {
        sample_t *s = &all[i];
        if (strcmp(s->name, name) != 0) continue;
        if (route && (!label(s, "route") || strcmp(label(s, "route"), route) != 0)) continue;
        if (shard && (!label(s, "shard") || strcmp(label(s, "shard"), shard) != 0)) continue;
        if (extra_key && (!label(s, extra_key) || strcmp(label(s, extra_key), extra_val) != 0))
            continue;
        return s->value;
    }
    return -1;
}

Test(metrics, prometheus_parses_back) {
    fixture_t f;
    make_fixture(&f);
    char *text = format(&f.v);
    cr_assert_eq(text[strlen(text) - 1], '\n', "the exposition ends with a newline");

    enum { MAXS = 512 };
    sample_t *all = calloc(MAXS, sizeof(*all));
    int n = 0;
    char families[32][64], cur[64] = "";
    int nfam = 0, help_seen = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[64];
            cr_assert_eq(sscanf(line + 7, "%63s", name), 1);
            for (int i = 0; i < nfam; i++)
                cr_assert_str_neq(families[i], name, "family %s declared twice", name);
            snprintf(cur, sizeof(cur), "%s", name);
            help_seen = 1;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[64], type[32];
            cr_assert_eq(sscanf(line + 7, "%63s %31s", name, type), 2);
            cr_assert(help_seen && strcmp(name, cur) == 0, "TYPE %s without its HELP", name);
            cr_assert(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                          strcmp(type, "histogram") == 0,
                      "type %s", type);
            if (strcmp(type, "counter") == 0)
                cr_assert(strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_total") == 0,
                          "counter %s does not end in _total", name);
            snprintf(families[nfam++], 64, "%s", name);
            help_seen = 0;
            continue;
        }
        cr_assert_neq(line[0], '#', "unexpected comment: %s", line);
        cr_assert(n < MAXS);
        cr_assert(parse_sample(line, &all[n]), "bad sample line: %s", line);
        char fam[96];
        family_of(all[n].name, fam, sizeof(fam));
        cr_assert(nfam > 0 && strcmp(fam, families[nfam - 1]) == 0,
                  "%s is not under its own family's TYPE", all[n].name);
        n++;
    }
    free(copy);
    cr_assert_eq(nfam, 10, "every family is there, once");

    cr_assert_eq(find(all, n, "nexus_build_info", NULL, NULL, "version", "9.9.9-\"rc\""), 1);
    cr_assert_eq(find(all, n, "nexus_shards", NULL, NULL, NULL, NULL), 2);
    cr_assert_eq(find(all, n, "nexus_uptime_seconds", NULL, NULL, NULL, NULL), 1.5);
    const char *rq = "nexus_http_requests_total";
    cr_assert_eq(find(all, n, rq, "GET /health", "0", "status", "200"), 2);
    cr_assert_eq(find(all, n, rq, "GET /health", "1", "status", "503"), 1);
    cr_assert_eq(find(all, n, rq, "GET /health", "0", "status", "503"), -1, "zeros omitted");
    cr_assert_eq(find(all, n, rq, "GET /a\"b\\c\nd", "1", "status", "404"), 1,
                 "label values are escaped and come back intact");
    cr_assert_eq(find(all, n, rq, "GET /a\"b\\c\nd", "1", "status", "4xx"), 1);
    cr_assert_eq(find(all, n, rq, "unmatched", "1", "status", "400"), 1);
    cr_assert_eq(find(all, n, rq, "route_9", "1", "status", "200"), 1);
    cr_assert_eq(find(all, n, rq, "POST /never", NULL, NULL, NULL), -1, "idle routes omitted");
    cr_assert_eq(
        find(all, n, "nexus_http_request_duration_seconds_count", "POST /never", NULL, NULL, NULL),
        -1);

    /* Histograms: le ascending to +Inf, cumulative, _count == +Inf, _sum as recorded. */
    int series = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(all[i].name, "nexus_http_request_duration_seconds_count") != 0) continue;
        series++;
        const char *route = label(&all[i], "route"), *shard = label(&all[i], "shard");
        double prev_le = -1, prev_v = -1, inf = -1;
        int buckets = 0;
        for (int k = 0; k < n; k++) {
            sample_t *b = &all[k];
            if (strcmp(b->name, "nexus_http_request_duration_seconds_bucket") != 0 ||
                strcmp(label(b, "route"), route) != 0 || strcmp(label(b, "shard"), shard) != 0)
                continue;
            buckets++;
            const char *le = label(b, "le");
            double lev = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
            cr_assert(lev > prev_le, "le not ascending for %s", route);
            cr_assert(b->value >= prev_v, "buckets of %s on shard %s not cumulative", route, shard);
            prev_le = lev;
            prev_v = b->value;
            if (isinf(lev)) inf = b->value;
        }
        cr_assert_eq(buckets, NX_METRICS_BUCKETS);
        cr_assert_eq(all[i].value, inf, "_count differs from the +Inf bucket for %s", route);
    }
    cr_assert_eq(series, 5, "health on both shards, a\"b, unmatched, route_9");
    const char *bk = "nexus_http_request_duration_seconds_bucket";
    cr_assert_eq(find(all, n, bk, "GET /health", "0", "le", "0.0001"), 1);
    cr_assert_eq(find(all, n, bk, "GET /health", "0", "le", "0.001"), 1);
    cr_assert_eq(find(all, n, bk, "GET /health", "0", "le", "0.0025"), 2);
    cr_assert_eq(find(all, n, bk, "GET /health", "1", "le", "0.001"), 1, "exactly 1 ms");
    cr_assert_eq(find(all, n, bk, "route_9", "1", "le", "10"), 0, "20 s is beyond 10 s");
    cr_assert_eq(find(all, n, bk, "route_9", "1", "le", "+Inf"), 1);
    double sum =
        find(all, n, "nexus_http_request_duration_seconds_sum", "GET /health", "0", NULL, NULL);
    cr_assert_float_eq(sum, 0.00205, 1e-12);

    cr_assert_eq(find(all, n, "nexus_connections_open", NULL, "1", NULL, NULL), 4);
    cr_assert_eq(find(all, n, "nexus_connections_accepted_total", NULL, "1", NULL, NULL), 20);
    cr_assert_eq(find(all, n, "nexus_connections_rejected_total", NULL, "1", NULL, NULL), 2);
    cr_assert_eq(find(all, n, "nexus_received_bytes_total", NULL, "0", NULL, NULL), 1000);
    cr_assert_eq(find(all, n, "nexus_sent_bytes_total", NULL, "1", NULL, NULL), 12345);
    cr_assert_eq(find(all, n, "nexus_sent_bytes_total", NULL, "0", NULL, NULL), 0,
                 "per-shard counters are there even at zero");
    free(all);
    free(text);
    free_fixture(&f);
}

static json_t *jpath(json_t *j, const char *a, const char *b, const char *c) {
    j = json_object_get(j, a);
    if (b) j = json_object_get(j, b);
    if (c) j = json_object_get(j, c);
    return j;
}

static json_int_t jint_at(json_t *j, const char *a, const char *b, const char *c) {
    json_t *x = jpath(j, a, b, c);
    cr_assert(json_is_integer(x), "%s.%s.%s is not an integer", a, b ? b : "", c ? c : "");
    return json_integer_value(x);
}

Test(metrics, json_totals_across_two_shards) {
    fixture_t f;
    make_fixture(&f);
    json_t *j = nx_metrics_to_json(&f.v);
    cr_assert_not_null(j);
    cr_assert_eq(jint_at(j, "requests", NULL, NULL), 7);
    cr_assert_eq(jint_at(j, "by_status_class", "2xx", NULL), 3);
    cr_assert_eq(jint_at(j, "by_status_class", "4xx", NULL), 3, "404, 418 and 400");
    cr_assert_eq(jint_at(j, "by_status_class", "5xx", NULL), 1);
    cr_assert_eq(jint_at(j, "by_status_class", "1xx", NULL), 0);
    cr_assert_eq(jint_at(j, "by_status_class", "other", NULL), 0);
    cr_assert_eq(jint_at(j, "by_status", "200", NULL), 3);
    cr_assert_eq(jint_at(j, "by_status", "4xx", NULL), 1);
    cr_assert_null(jpath(j, "by_status", "201", NULL), "zero codes are left out");
    cr_assert_eq(jint_at(j, "connections_open", NULL, NULL), 7);
    cr_assert_eq(jint_at(j, "connections_accepted", NULL, NULL), 30);
    cr_assert_eq(jint_at(j, "connections_rejected", NULL, NULL), 2);
    cr_assert_eq(jint_at(j, "bytes_in", NULL, NULL), 1500);
    cr_assert_eq(jint_at(j, "bytes_out", NULL, NULL), 12345);
    cr_assert_eq(jint_at(j, "shards", NULL, NULL), 2);
    cr_assert_str_eq(json_string_value(json_object_get(j, "version")), "9.9.9-\"rc\"");

    json_t *health = jpath(j, "by_route", "GET /health", NULL);
    cr_assert_eq(jint_at(health, "requests", NULL, NULL), 3, "summed over shards");
    cr_assert_eq(jint_at(health, "by_status", "503", NULL), 1);
    cr_assert_eq(jint_at(health, "by_status", "200", NULL), 2);
    double p50 = json_real_value(jpath(health, "latency_seconds", "p50", NULL));
    /* As histogram_quantile: rank 1.5 of 3 is halfway through (0.5 ms, 1 ms]; rank 2.97 is 97%
     * through (1 ms, 2.5 ms]. */
    cr_assert_float_eq(p50, 0.00075, 1e-12, "p50 %g", p50);
    double p99 = json_real_value(jpath(health, "latency_seconds", "p99", NULL));
    cr_assert_float_eq(p99, 0.001 + 0.0015 * 0.97, 1e-12, "p99 %g", p99);
    double mean = json_real_value(jpath(health, "latency_seconds", "mean", NULL));
    cr_assert_float_eq(mean, (0.00005 + 0.002 + 0.001) / 3, 1e-12);
    cr_assert_eq(jint_at(j, "by_route", "unmatched", "requests"), 1);
    cr_assert_eq(jint_at(j, "by_route", "route_9", "requests"), 1);
    cr_assert_float_eq(
        json_real_value(json_object_get(jpath(j, "by_route", "route_9", "latency_seconds"), "p99")),
        10.0, 1e-9, "beyond the last bound, quantiles answer the last bound");
    cr_assert_null(jpath(j, "by_route", "POST /never", NULL), "idle routes are left out");

    json_t *shards = json_object_get(j, "per_shard");
    cr_assert_eq(json_array_size(shards), 2);
    json_t *s1 = json_array_get(shards, 1);
    cr_assert_eq(jint_at(s1, "shard", NULL, NULL), 1);
    cr_assert_eq(jint_at(s1, "requests", NULL, NULL), 5);
    cr_assert_eq(jint_at(s1, "by_status_class", "4xx", NULL), 3);
    cr_assert_eq(jint_at(s1, "connections_open", NULL, NULL), 4);
    cr_assert_eq(jint_at(s1, "bytes_out", NULL, NULL), 12345);
    cr_assert_eq(jint_at(json_array_get(shards, 0), "requests", NULL, NULL), 2);
    json_decref(j);
    free_fixture(&f);
}

Test(metrics, empty_view) {
    nx_metrics_view_t v = {NULL, NULL, 0, NULL, 0, NULL, 0.0};
    char *text = format(&v);
    cr_assert_not_null(strstr(text, "nexus_shards 0\n"));
    cr_assert_not_null(strstr(text, "nexus_build_info{version=\"unknown\"} 1\n"));
    free(text);
    json_t *j = nx_metrics_to_json(&v);
    cr_assert_not_null(j);
    cr_assert_eq(jint_at(j, "requests", NULL, NULL), 0);
    cr_assert_float_eq(json_real_value(jpath(j, "latency_seconds", "p50", NULL)), 0.0, 1e-12);
    cr_assert_eq(json_array_size(json_object_get(j, "per_shard")), 0);
    json_decref(j);
}

/* The owner writes while another thread formats: counters only ever move up and end exact.
 * (Run under -fsanitize=thread to see there is no data race.) */
enum { WRITES = 200000 };
static nx_net_stats_t g_net;
static void *writer(void *arg) {
    nx_shard_metrics_t *m = arg;
    for (int i = 0; i < WRITES; i++) {
        nx_metrics_record_request(m, 0, 200, (uint64_t)(i % 1000) * 1000);
        nx_metrics_add(&g_net.bytes_out, 10);
    }
    return NULL;
}

Test(metrics, reader_while_the_owner_writes) {
    nx_shard_metrics_t *m = malloc(sizeof(*m));
    nx_metrics_init(m);
    const nx_shard_metrics_t *shards[] = {m};
    const nx_net_stats_t *nets[] = {&g_net};
    const char *names[] = {"GET /x"};
    nx_metrics_view_t v = {shards, nets, 1, names, 1, "t", 0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, writer, m), 0);
    json_int_t prev = 0;
    for (int i = 0; i < 50; i++) {
        json_t *j = nx_metrics_to_json(&v);
        json_int_t now = jint_at(j, "requests", NULL, NULL);
        cr_assert(now >= prev);
        prev = now;
        json_decref(j);
        nx_buf_t out;
        nx_buf_init(&out);
        cr_assert_eq(nx_metrics_format_prometheus(&v, &out), 0);
        nx_buf_dispose(&out);
    }
    pthread_join(th, NULL);
    json_t *j = nx_metrics_to_json(&v);
    cr_assert_eq(jint_at(j, "requests", NULL, NULL), WRITES);
    cr_assert_eq(jint_at(j, "bytes_out", NULL, NULL), 10 * WRITES);
    json_decref(j);
    free(m);
}
