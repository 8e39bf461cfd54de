/* demo_backends: the small services behind `make run` (examples/quickstart.yaml). One program on
 * the embedding API plays one service per process, chosen by --role: news, templates, database,
 * analytics, reports, external (a partner's CRM API), transform, monitor or alerts. Every tool
 * has a JSON Schema and answers structuredContent computed from its arguments (state lives in
 * memory, per process), so a pipeline's result can be checked; `simulate` arguments and flags
 * inject the failures the pipelines are built to survive: outages, slow answers, dead targets. */
#include "nexus/app.h"

#include "engine.h"
#include "log.h"
#include "nexus/list.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ROWS 10000 /* per database table */
#define MAX_ALERTS 50  /* alerts.history keeps the newest */
#define SLOW_CHECK_MS 400

/* The flags: written before serving, read-only afterwards. */
static struct {
    const char *role;
    double fail_rate;    /* news.fetch_latest, external.get_customer: simulated outages */
    unsigned fail_every; /* external.get_customer: every Nth call is slow */
    unsigned slow_ms;    /* how slow a slow answer is */
    unsigned latency_ms; /* added to every answer */
} opt = {.slow_ms = 1500};

/* What the services remember. Handlers run on shard threads (one with --stdio, several when the
 * program serves HTTP itself), so the state has one lock; the work done under it is small. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t rng, customer_calls, event_total, alert_total;
    json_t *tables;    /* database: {name: {"next": id, "rows": [...]}} */
    json_t *events;    /* analytics: {event: count} */
    json_t *alerts;    /* alerts: the newest MAX_ALERTS sent, oldest first */
    json_t *slow_seen; /* external: customer ids already answered slowly (slow_once) */
} st;

/* ---- answering ---- */

/* An answer held back by --latency-ms or a simulated slow upstream; owned by its call until
 * sent or cancelled (nexus gave up on it). */
typedef struct later {
    nx_timer_t timer;
    nx_mcp_call_t *call;
    json_t *value; /* structuredContent, or {message, data?} of a JSON-RPC error */
    bool rpc_error;
} later_t;

static void send_now(nx_mcp_call_t *call, json_t *value, bool rpc_error) {
    if (value == NULL) {
        nx_mcp_call_return_text(call, "out of memory", true);
    } else if (!rpc_error) {
        nx_mcp_call_return_json(call, value, false);
    } else {
        nx_mcp_call_error(call, -32603, json_string_value(json_object_get(value, "message")),
                          json_incref(json_object_get(value, "data")));
        json_decref(value);
    }
}

static void on_later(nx_timer_t *t) {
    later_t *l = nx_container_of(t, later_t, timer);
    send_now(l->call, l->value, l->rpc_error);
    free(l);
}

static void on_later_cancelled(nx_mcp_call_t *call, void *arg) {
    later_t *l = arg;
    nx_timer_stop(&l->timer);
    json_decref(l->value);
    free(l);
}

/* Answers <call> with <value> (stolen) after <delay_ms> plus --latency-ms. */
static void answer(nx_mcp_call_t *call, json_t *value, bool rpc_error, uint64_t delay_ms) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    delay_ms += opt.latency_ms;
    later_t *l = delay_ms > 0 && es != NULL ? calloc(1, sizeof(*l)) : NULL;
    if (l == NULL) {
        send_now(call, value, rpc_error);
        return;
    }
    *l = (later_t){.call = call, .value = value, .rpc_error = rpc_error};
    nx_timer_init(&l->timer, on_later);
    nx_mcp_call_on_cancel(call, on_later_cancelled, l);
    nx_shard_timer_start(es->shard, &l->timer, delay_ms);
}

static void reply(nx_mcp_call_t *call, json_t *value) {
    answer(call, value, false, 0);
}

/* A tool error (an isError result): the service is up, what it was asked failed. */
static void fail(nx_mcp_call_t *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(nx_mcp_call_t *call, const char *fmt, ...) {
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    nx_mcp_call_return_text(call, text, true);
}

/* ---- helpers ---- */

static uint32_t hash(const char *s) { /* FNV-1a: the same data for the same arguments */
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static uint32_t hash2(const char *a, const char *b) {
    return hash(b) ^ (hash(a) * 31u);
}

static const char *str(const json_t *o, const char *key, const char *def) {
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : def;
}

static json_int_t num(const json_t *o, const char *key, json_int_t def) {
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

static double round2(double v) {
    return round(v * 100.0) / 100.0;
}

/* True with probability <p>, from a splitmix64 stream with a fixed seed (runs repeat). */
static bool chance(double p) {
    if (p <= 0) return false;
    pthread_mutex_lock(&lock);
    uint64_t z = st.rng += 0x9e3779b97f4a7c15ull;
    pthread_mutex_unlock(&lock);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53 < p;
}

/* True when the array <list> holds the string <s>. */
static bool listed(const json_t *list, const char *s) {
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *v = json_string_value(json_array_get(list, i));
        if (v != NULL && strcmp(v, s) == 0) return true;
    }
    return false;
}

/* Writes a scalar as a person reads it (strings bare, 2 decimals for fractions), HTML-escaped
 * when <html>; arrays and objects as compact JSON. */
static void put_value(FILE *out, const json_t *v, bool html) {
    char *dumped = NULL;
    const char *s = NULL;
    if (json_is_string(v))
        s = json_string_value(v);
    else if (json_is_integer(v))
        fprintf(out, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        fprintf(out, "%.2f", json_real_value(v));
    else if (json_is_boolean(v))
        fputs(json_is_true(v) ? "yes" : "no", out);
    else if (v == NULL || json_is_null(v))
        fputs("-", out);
    else
        s = dumped = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    for (; s != NULL && *s; s++) {
        const char *esc = !html       ? NULL
                          : *s == '<' ? "&lt;"
                          : *s == '>' ? "&gt;"
                          : *s == '&' ? "&amp;"
                          : *s == '"' ? "&quot;"
                                      : NULL;
        if (esc != NULL)
            fputs(esc, out);
        else
            fputc(*s, out);
    }
    free(dumped);
}

/* The text an open_memstream collected, as a new JSON string (the buffer is freed). */
static json_t *stream_text(FILE *out, char **buf) {
    fclose(out);
    json_t *s = *buf != NULL ? json_string(*buf) : NULL;
    free(*buf);
    return s != NULL ? s : json_string("");
}

/* ---- news: the latest articles on a topic, and the cache that outlives the feed ---- */

static const char *const headline_forms[] = {
    "%s: what changed this week",        "Five things to know about %s",
    "Why %s is back on the agenda",      "%s in numbers: the quarter so far",
    "Opinion: %s needs better defaults", "How teams are adopting %s",
    "The %s stack, explained",           "%s: the open questions",
};
static const char *const summary_forms[] = {
    "A short briefing on %s and why it matters now.",
    "Analysts weigh the latest %s announcements.",
    "Practitioners share what worked, and what did not, with %s.",
    "New figures put the growth of %s in context.",
};

static json_t *articles(const char *topic, int limit, bool cached) {
    uint32_t h = hash(topic);
    json_t *list = json_array();
    for (int i = 0; i < limit; i++) {
        char id[32], title[200], summary[200], date[24];
        snprintf(id, sizeof(id), "%s-%06x-%d", cached ? "cache" : "news", h & 0xffffffu, i + 1);
        snprintf(title, sizeof(title), headline_forms[(h + 3u * (unsigned)i) % 8u], topic);
        snprintf(summary, sizeof(summary), summary_forms[((h >> 3) + (unsigned)i) % 4u], topic);
        snprintf(date, sizeof(date), "2026-11-%02d", 28 - 2 * i - (int)(h % 3u) - (cached ? 7 : 0));
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "id", id, "title", title,
                                              "summary", summary, "published", date));
    }
    return list;
}

static void news_fetch_latest(nx_mcp_call_t *call, json_t *args) {
    const char *topic = str(args, "topic", "");
    int limit = (int)num(args, "limit", 3);
    if (json_is_true(json_object_get(args, "simulate_outage")) || chance(opt.fail_rate)) {
        fail(call, "news feed unavailable: the wire service timed out (simulated outage)");
        return;
    }
    reply(call, json_pack("{s:s, s:s, s:i, s:o}", "topic", topic, "source", "live", "count", limit,
                          "articles", articles(topic, limit, false)));
}

static void news_cached_headlines(nx_mcp_call_t *call, json_t *args) {
    const char *topic = str(args, "topic", "");
    int limit = (int)num(args, "limit", 3);
    reply(call, json_pack("{s:s, s:s, s:b, s:s, s:i, s:o}", "topic", topic, "source", "cache",
                          "stale", 1, "as_of", "2026-11-14", "count", limit, "articles",
                          articles(topic, limit, true)));
}

/* ---- templates: {{key}} placeholders filled from data; {{items}} lists items' titles ---- */

static const struct {
    const char *name, *text, *html;
} templates[] = {
    {"article", "{{title}}\n\n{{summary}}\n\nPublished {{published}} ({{id}})",
     "<article id=\"{{id}}\"><h2>{{title}}</h2><p>{{summary}}</p>"
     "<footer>Published {{published}}</footer></article>"},
    {"digest", "{{title}}\n\n{{items}}", "<section><h2>{{title}}</h2><ul>{{items}}</ul></section>"},
    {"alert", "[{{severity}}] {{message}}",
     "<div class=\"alert alert-{{severity}}\">{{message}}</div>"},
};

/* Template <t> filled from <data> and <items>, as a new JSON string (NULL: out of memory). */
static json_t *render(const char *t, const json_t *data, const json_t *items, bool html) {
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (out == NULL) return NULL;
    for (const char *open; (open = strstr(t, "{{")) != NULL;) {
        const char *close = strstr(open, "}}"); /* our templates always close */
        char key[32];
        snprintf(key, sizeof(key), "%.*s", (int)(close - open - 2), open + 2);
        fwrite(t, 1, (size_t)(open - t), out);
        if (strcmp(key, "items") != 0) {
            put_value(out, json_object_get(data, key), html);
        } else {
            size_t i;
            json_t *it;
            json_array_foreach(items, i, it) {
                fputs(html ? "<li>" : "- ", out);
                put_value(out, json_is_object(it) ? json_object_get(it, "title") : it, html);
                fputs(html ? "</li>" : "\n", out);
            }
        }
        t = close + 2;
    }
    fputs(t, out);
    return stream_text(out, &buf);
}

static void templates_render(nx_mcp_call_t *call, json_t *args) {
    const char *name = str(args, "template", "");
    json_t *data = json_object_get(args, "data"), *items = json_object_get(args, "items");
    size_t k = 0;
    while (k < COUNT(templates) - 1 && strcmp(templates[k].name, name) != 0)
        k++; /* the schema's enum allows only known names */
    json_t *text = render(templates[k].text, data, items, false);
    json_t *html = render(templates[k].html, data, items, true);
    json_t *r = text && html
                    ? json_pack("{s:s, s:s, s:I, s:O, s:O}", "template", name, "title",
                                str(data, "title", name), "chars",
                                (json_int_t)json_string_length(text), "text", text, "html", html)
                    : NULL;
    json_decref(text);
    json_decref(html);
    const char *source = str(data, "id", NULL);
    if (r != NULL && source != NULL) json_object_set_new(r, "source_id", json_string(source));
    reply(call, r);
}

/* ---- database: tables in memory, and canned queries over seeded business data ---- */

static const char *const regions[] = {"EMEA", "AMER", "APAC", "LATAM"};
static const char *const segments[] = {"free", "pro", "enterprise"};
static const struct {
    const char *sku, *name;
    int price;
} products[] = {
    {"SKU-100", "Starter plan", 29},     {"SKU-200", "Team plan", 99},
    {"SKU-300", "Enterprise plan", 499}, {"SKU-410", "Support add-on", 149},
    {"SKU-520", "Analytics add-on", 79}, {"SKU-610", "Training day", 1200},
};

static void database_insert(nx_mcp_call_t *call, json_t *args) {
    const char *name = str(args, "table", "");
    json_t *rows = json_object_get(args, "rows"), *row, *ids = json_array();
    size_t i;
    pthread_mutex_lock(&lock);
    json_t *t = json_object_get(st.tables, name);
    if (t == NULL) {
        t = json_pack("{s:i, s:[]}", "next", 1, "rows");
        json_object_set_new(st.tables, name, t);
    }
    json_t *stored = json_object_get(t, "rows");
    if (json_array_size(stored) + json_array_size(rows) > MAX_ROWS) {
        pthread_mutex_unlock(&lock);
        json_decref(ids);
        fail(call, "table %s is full (%d rows at most)", name, MAX_ROWS);
        return;
    }
    json_int_t next = json_integer_value(json_object_get(t, "next"));
    json_array_foreach(rows, i, row) {
        json_t *copy = json_deep_copy(row);
        json_object_set_new(copy, "id", json_integer(next));
        json_array_append_new(stored, copy);
        json_array_append_new(ids, json_integer(next++));
    }
    json_object_set_new(t, "next", json_integer(next));
    json_int_t total = (json_int_t)json_array_size(stored);
    pthread_mutex_unlock(&lock);
    reply(call, json_pack("{s:s, s:I, s:o, s:I}", "table", name, "inserted",
                          (json_int_t)json_array_size(rows), "ids", ids, "total_rows", total));
}

static int by_revenue_desc(const void *a, const void *b) {
    json_int_t x = num(*(json_t *const *)a, "revenue", 0),
               y = num(*(json_t *const *)b, "revenue", 0);
    return x < y ? 1 : x > y ? -1 : 0;
}

static void database_query(nx_mcp_call_t *call, json_t *args) {
    const char *q = str(args, "query", "");
    json_t *params = json_object_get(args, "params");
    const char *period = str(params, "period", "2026-Q3");
    size_t limit = (size_t)num(params, "limit", 5);
    json_t *rows = json_array();
    if (strcmp(q, "sales_by_region") == 0) {
        for (size_t i = 0; i < COUNT(regions); i++) {
            uint32_t h = hash2(period, regions[i]);
            json_array_append_new(rows,
                                  json_pack("{s:s, s:I, s:I, s:f}", "region", regions[i], "revenue",
                                            (json_int_t)(100000 + h % 400000), "orders",
                                            (json_int_t)(200 + (h >> 7) % 900), "growth_pct",
                                            round2(((int)((h >> 13) % 300) - 100) / 10.0)));
        }
    } else if (strcmp(q, "top_products") == 0) {
        json_t *all[COUNT(products)];
        for (size_t i = 0; i < COUNT(products); i++) {
            json_int_t units = 20 + hash2(period, products[i].sku) % 480;
            all[i] =
                json_pack("{s:s, s:s, s:I, s:I}", "sku", products[i].sku, "name", products[i].name,
                          "units", units, "revenue", units * products[i].price);
        }
        qsort(all, COUNT(all), sizeof(all[0]), by_revenue_desc);
        for (size_t i = 0; i < COUNT(all); i++) {
            if (i < limit) json_array_append(rows, all[i]);
            json_decref(all[i]);
        }
    } else if (strcmp(q, "active_users") == 0) {
        for (size_t i = 0; i < COUNT(segments); i++) {
            uint32_t h = hash2(period, segments[i]);
            json_array_append_new(rows,
                                  json_pack("{s:s, s:I, s:f}", "segment", segments[i], "users",
                                            (json_int_t)(500 + h % (9500 >> i)), "change_pct",
                                            round2(((int)((h >> 11) % 200) - 50) / 10.0)));
        }
    } else { /* recent_articles: what content_pipeline stored, newest first */
        pthread_mutex_lock(&lock);
        json_t *stored = json_object_get(json_object_get(st.tables, "articles"), "rows");
        for (size_t n = json_array_size(stored); n > 0 && json_array_size(rows) < limit; n--)
            json_array_append_new(rows, json_deep_copy(json_array_get(stored, n - 1)));
        pthread_mutex_unlock(&lock);
    }
    reply(call, json_pack("{s:s, s:I, s:o}", "query", q, "count", (json_int_t)json_array_size(rows),
                          "rows", rows));
}

/* ---- analytics: summaries of numbers, and an event counter ---- */

/* <d> as JSON: null when <none>, whole numbers (revenue, users) as integers, else 2 decimals. */
static json_t *number(double d, bool whole, bool none) {
    return none ? json_null() : whole ? json_integer((json_int_t)d) : json_real(round2(d));
}

static void analytics_summarize(nx_mcp_call_t *call, json_t *args) {
    json_t *values = json_object_get(args, "values"), *rows = json_object_get(args, "rows"), *v;
    const char *field = str(args, "field", NULL);
    if (values == NULL && (rows == NULL || field == NULL)) {
        fail(call, "give values, or rows and the field to summarize");
        return;
    }
    json_t *list = values != NULL ? values : rows;
    size_t i, count = 0, skipped = 0;
    double sum = 0, min = 0, max = 0;
    bool integers = true;
    json_array_foreach(list, i, v) {
        const json_t *x = values != NULL ? v : json_object_get(v, field);
        if (!json_is_number(x)) {
            skipped++;
            continue;
        }
        double d = json_number_value(x);
        integers = integers && json_is_integer(x);
        min = count == 0 || d < min ? d : min;
        max = count == 0 || d > max ? d : max;
        sum += d;
        count++;
    }
    bool whole = integers && fabs(sum) < 9e15, none = count == 0;
    double mean = none ? 0 : sum / (double)count;
    json_t *r = json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}", "count", (json_int_t)count, "skipped",
                          (json_int_t)skipped, "sum", number(sum, whole, false), "mean",
                          number(mean, false, none), "min", number(min, whole, none), "max",
                          number(max, whole, none));
    if (r != NULL && field != NULL && values == NULL)
        json_object_set_new(r, "field", json_string(field));
    reply(call, r);
}

static void analytics_track(nx_mcp_call_t *call, json_t *args) {
    const char *event = str(args, "event", "");
    pthread_mutex_lock(&lock);
    json_int_t n = num(st.events, event, 0) + 1, id = (json_int_t)++st.event_total;
    json_object_set_new(st.events, event, json_integer(n));
    pthread_mutex_unlock(&lock);
    char eid[32];
    snprintf(eid, sizeof(eid), "evt-%06lld", (long long)id);
    reply(call, json_pack("{s:b, s:s, s:s, s:I, s:I}", "tracked", 1, "id", eid, "event", event,
                          "count", n, "properties",
                          (json_int_t)json_object_size(json_object_get(args, "properties"))));
}

/* ---- reports: sections of text and data as one Markdown document ---- */

/* Data as Markdown: a table for an array of objects, a list for an object or other arrays. */
static void put_data(FILE *out, const json_t *data) {
    const char *key;
    json_t *v, *first = json_array_get(data, 0);
    size_t i;
    if (json_is_array(data) && json_is_object(first)) {
        fputc('|', out);
        json_object_foreach(first, key, v) fprintf(out, " %s |", key);
        fputs("\n|", out);
        for (size_t k = json_object_size(first); k > 0; k--)
            fputs(" --- |", out);
        json_array_foreach(data, i, v) {
            fputs("\n|", out);
            json_t *cell;
            json_object_foreach(first, key, cell) {
                fputc(' ', out);
                put_value(out, json_object_get(v, key), false);
                fputs(" |", out);
            }
        }
        fputc('\n', out);
    } else if (json_is_array(data)) {
        if (json_array_size(data) == 0) fputs("_none_\n", out);
        json_array_foreach(data, i, v) {
            fputs("- ", out);
            put_value(out, v, false);
            fputc('\n', out);
        }
    } else if (json_is_object(data)) {
        json_object_foreach((json_t *)data, key, v) {
            fprintf(out, "- **%s**: ", key);
            put_value(out, v, false);
            fputc('\n', out);
        }
    } else {
        put_value(out, data, false);
        fputc('\n', out);
    }
}

static void reports_build(nx_mcp_call_t *call, json_t *args) {
    const char *title = str(args, "title", "");
    json_t *sections = json_object_get(args, "sections"), *s;
    char *buf = NULL;
    size_t len = 0, i;
    FILE *out = open_memstream(&buf, &len);
    if (out == NULL) {
        fail(call, "out of memory");
        return;
    }
    fprintf(out, "# %s\n", title);
    json_array_foreach(sections, i, s) {
        fprintf(out, "\n## %s\n\n", str(s, "heading", ""));
        if (json_object_get(s, "body") != NULL) fprintf(out, "%s\n\n", str(s, "body", ""));
        if (json_object_get(s, "data") != NULL) put_data(out, json_object_get(s, "data"));
    }
    json_t *md = stream_text(out, &buf);
    char id[16];
    snprintf(id, sizeof(id), "rpt-%08x", hash(json_string_value(md)));
    reply(call, json_pack("{s:s, s:s, s:I, s:I, s:o}", "id", id, "title", title, "sections",
                          (json_int_t)json_array_size(sections), "chars",
                          (json_int_t)json_string_length(md), "markdown", md));
}

/* ---- external: a partner's CRM API, with messy records, cold lookups and outages ---- */

static const struct {
    const char *name, *email, *phone, *country, *tier;
} people[] = {
    {"  ada LOVELACE", "Ada.Lovelace@Example.COM ", "+44 (20) 7946-0018", "united kingdom", "GOLD"},
    {"grace   hopper ", "GRACE.HOPPER@EXAMPLE.COM", "001 555 010 2030", "usa", "Platinum"},
    {"alan turing", "alan.turing@example.com", "+44 161 496 0321", "GB", "silver"},
    {"katherine JOHNSON", " k.johnson@example.com", "(555) 010-7788", "United States", "gold"},
    {"emmy noether", "Emmy.Noether@Example.de", "+49 30 901820", "germany", "SILVER"},
    {"marie curie", "marie.curie@example.fr", "+33 1 23 45 67 89", "France", "platinum"},
    {"hedy lamarr", "hedy.lamarr-at-example.com", "+1 555 0100 999", "us", "bronze"},
    {"ken THOMPSON", "ken@example.com", "+81 3-1234-5678", "jp", "Gold"},
};

static void external_get_customer(nx_mcp_call_t *call, json_t *args) {
    const char *id = str(args, "id", ""), *sim = str(args, "simulate", "none");
    pthread_mutex_lock(&lock);
    st.customer_calls++;
    bool slow = opt.fail_every > 0 && st.customer_calls % opt.fail_every == 0;
    if (strcmp(sim, "slow_once") == 0 && json_object_get(st.slow_seen, id) == NULL) {
        json_object_set_new(st.slow_seen, id, json_true());
        slow = true;
    }
    pthread_mutex_unlock(&lock);
    if (strcmp(sim, "outage") == 0 || chance(opt.fail_rate)) {
        answer(call,
               json_pack("{s:s, s:{s:i, s:s}}", "message",
                         "partner API unavailable: HTTP 503 from crm.example.com (simulated)",
                         "data", "upstream_status", 503, "upstream", "crm.example.com"),
               true, 0);
        return;
    }
    uint32_t h = hash(id);
    const int p = (int)(h % COUNT(people));
    char since[16];
    snprintf(since, sizeof(since), "20%02u-%02u-01", 15 + (h >> 4) % 10, 1 + (h >> 8) % 12);
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f}", "id", id, "name",
                          people[p].name, "email", people[p].email, "phone", people[p].phone,
                          "country", people[p].country, "tier", people[p].tier, "customer_since",
                          since, "lifetime_value", round2((h >> 12) % 5000000 / 100.0));
    answer(call, c, false, slow ? opt.slow_ms : 0);
}

static void external_get_orders(nx_mcp_call_t *call, json_t *args) {
    const char *id = str(args, "customer_id", ""), *sim = str(args, "simulate", "none");
    if (strcmp(sim, "orders_down") == 0) {
        fail(call, "orders service unavailable: HTTP 502 from orders.example.com (simulated)");
        return;
    }
    static const char *const states[] = {"delivered", "delivered", "shipped", "processing"};
    uint32_t h = hash(id);
    json_t *orders = json_array();
    int n = 2 + (int)(h % 4u);
    for (int i = 0; i < n; i++) {
        uint32_t o = hash2(id, states[i % 4]) + (uint32_t)i * 7919u;
        char oid[24], date[24];
        snprintf(oid, sizeof(oid), "O-%05u", (o >> 3) % 100000);
        snprintf(date, sizeof(date), "2026-%02d-%02u", 11 - i, 1 + o % 28);
        json_array_append_new(orders, json_pack("{s:s, s:s, s:f, s:s, s:s}", "id", oid, "date",
                                                date, "amount", round2(20 + o % 48000 / 100.0),
                                                "currency", "EUR", "status", states[i % 4]));
    }
    reply(call, json_pack("{s:s, s:i, s:o}", "customer_id", id, "count", n, "orders", orders));
}

/* ---- transform: a record cleaned up the way a warehouse wants it ---- */

/* <s> trimmed, inner spaces collapsed, and title-cased or lower-cased when asked (ASCII). */
static char *tidy(const char *s, int mode /* 0 keep, 1 title, 2 lower */) {
    char *out = malloc(strlen(s) + 1), *w = out;
    bool word_start = true;
    for (; out != NULL && *s; s++) {
        if (isspace((unsigned char)*s)) {
            word_start = true;
            continue;
        }
        if (word_start && w != out) *w++ = ' ';
        *w++ = mode == 1 && word_start ? (char)toupper((unsigned char)*s)
               : mode != 0             ? (char)tolower((unsigned char)*s)
                                       : *s;
        word_start = false;
    }
    if (out != NULL) *w = '\0';
    return out;
}

static const char *country_code(const char *lower) {
    static const char *const map[][2] = {
        {"united kingdom", "GB"}, {"uk", "GB"}, {"gb", "GB"},      {"usa", "US"},
        {"united states", "US"},  {"us", "US"}, {"germany", "DE"}, {"de", "DE"},
        {"france", "FR"},         {"fr", "FR"}, {"japan", "JP"},   {"jp", "JP"},
    };
    for (size_t i = 0; i < COUNT(map); i++)
        if (strcmp(lower, map[i][0]) == 0) return map[i][1];
    return NULL;
}

static void transform_normalize(nx_mcp_call_t *call, json_t *args) {
    json_t *in = json_object_get(args, "record"), *out = json_deep_copy(in), *v;
    json_t *changes = json_array(), *issues = json_array();
    const char *key;
    json_object_foreach(in, key, v) {
        if (!json_is_string(v)) continue;
        bool name = strcmp(key, "name") == 0, email = strcmp(key, "email") == 0;
        bool lower = email || strcmp(key, "tier") == 0 || strcmp(key, "country") == 0;
        char *t = tidy(json_string_value(v), name ? 1 : lower ? 2 : 0);
        if (t == NULL) continue;
        if (strcmp(key, "phone") == 0) { /* +digits; a leading 00 is the international prefix */
            char *w = t;
            for (const char *r = t; *r; r++)
                if (isdigit((unsigned char)*r) || (*r == '+' && w == t)) *w++ = *r;
            *w = '\0';
            if (strncmp(t, "00", 2) == 0) { /* 0049... is +49... */
                memmove(t, t + 1, strlen(t));
                t[0] = '+';
            }
        } else if (strcmp(key, "country") == 0) {
            const char *cc = country_code(t);
            if (cc != NULL) {
                strcpy(t, cc);
            } else { /* kept as written, trimmed */
                json_array_append_new(issues, json_sprintf("country: unknown country '%s'", t));
                free(t);
                if ((t = tidy(json_string_value(v), 0)) == NULL) continue;
            }
        } else if (email && strchr(t, '@') == NULL) {
            json_array_append_new(issues, json_sprintf("email: '%s' is not an address", t));
        }
        if (strcmp(t, json_string_value(v)) != 0) {
            json_object_set_new(out, key, json_string(t));
            json_array_append_new(changes, json_string(key));
        }
        free(t);
    }
    reply(call, json_pack("{s:o, s:o, s:o, s:b}", "record", out, "changes", changes, "issues",
                          issues, "valid", json_array_size(issues) == 0));
}

/* ---- monitor: checks of targets, and a verdict over many checks ---- */

static void monitor_check(nx_mcp_call_t *call, json_t *args) {
    const char *target = str(args, "target", "");
    bool down = listed(json_object_get(args, "simulate_down"), target);
    bool slow = listed(json_object_get(args, "simulate_slow"), target);
    json_int_t ms = slow ? SLOW_CHECK_MS : 5 + hash(target) % 40;
    json_t *r = down ? json_pack("{s:s, s:s, s:n, s:s}", "target", target, "status", "down",
                                 "latency_ms", "error", "connection refused (simulated)")
                     : json_pack("{s:s, s:s, s:I}", "target", target, "status",
                                 slow ? "degraded" : "up", "latency_ms", ms);
    answer(call, r, false, down ? 20 : (uint64_t)ms); /* the check takes as long as it says */
}

/* Sorts every check found in <v> (objects with a string status, at any depth up to 4; named by
 * target, service or their key) into <up>, <degraded> and <down>. */
static void collect(const json_t *v, const char *key, int depth, json_int_t slow_ms, size_t *up,
                    json_t *degraded, json_t *down) {
    const char *status = str(v, "status", NULL), *k;
    json_t *x;
    size_t i;
    if (status != NULL) {
        const char *name = str(v, "target", str(v, "service", key ? key : "?"));
        bool ok = strcmp(status, "up") == 0 || strcmp(status, "ok") == 0;
        if (ok && num(v, "latency_ms", 0) <= slow_ms)
            (*up)++;
        else
            json_array_append_new(ok || strcmp(status, "degraded") == 0 ? degraded : down,
                                  json_string(name));
    } else if (depth < 4 && json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x)
            collect(x, k, depth + 1, slow_ms, up, degraded, down);
    } else if (depth < 4 && json_is_array(v)) {
        json_array_foreach(v, i, x) collect(x, NULL, depth + 1, slow_ms, up, degraded, down);
    }
}

static void monitor_evaluate(nx_mcp_call_t *call, json_t *args) {
    size_t up = 0;
    json_t *degraded = json_array(), *down = json_array();
    collect(json_object_get(args, "checks"), NULL, 0, num(args, "slow_ms", 250), &up, degraded,
            down);
    size_t nd = json_array_size(down), ng = json_array_size(degraded), total = up + nd + ng;
    const char *status = nd > 0 ? "critical" : ng > 0 ? "degraded" : "ok";
    char *buf = NULL;
    size_t len = 0, i;
    FILE *out = open_memstream(&buf, &len);
    if (out == NULL) {
        json_decref(degraded);
        json_decref(down);
        fail(call, "out of memory");
        return;
    }
    fprintf(out, "%zu of %zu up", up, total);
    json_t *lists[2] = {down, degraded}, *s;
    for (int l = 0; l < 2; l++)
        json_array_foreach(lists[l], i, s) fprintf(out, "%s%s",
                                                   i > 0    ? ", "
                                                   : l == 0 ? "; down: "
                                                            : "; slow: ",
                                                   json_string_value(s));
    json_t *summary = stream_text(out, &buf);
    reply(call,
          json_pack("{s:s, s:o, s:I, s:I, s:o, s:o}", "status", status, "summary", summary, "total",
                    (json_int_t)total, "up", (json_int_t)up, "degraded", degraded, "down", down));
}

/* ---- alerts: a pager that remembers what it sent ---- */

static void alerts_send(nx_mcp_call_t *call, json_t *args) {
    const char *severity = str(args, "severity", "info");
    json_t *targets = json_object_get(args, "targets");
    pthread_mutex_lock(&lock);
    char id[32];
    snprintf(id, sizeof(id), "alert-%llu", (unsigned long long)++st.alert_total);
    json_array_append_new(st.alerts,
                          json_pack("{s:s, s:s, s:s, s:o}", "id", id, "severity", severity,
                                    "message", str(args, "message", ""), "targets",
                                    targets ? json_deep_copy(targets) : json_null()));
    if (json_array_size(st.alerts) > MAX_ALERTS) json_array_remove(st.alerts, 0);
    pthread_mutex_unlock(&lock);
    reply(call, json_pack("{s:b, s:s, s:s, s:s}", "sent", 1, "id", id, "severity", severity,
                          "channel", "#ops-oncall (demo)"));
}

static void alerts_history(nx_mcp_call_t *call, json_t *args) {
    pthread_mutex_lock(&lock);
    json_t *alerts = json_deep_copy(st.alerts); /* nothing shared leaves the lock */
    json_int_t sent = (json_int_t)st.alert_total;
    pthread_mutex_unlock(&lock);
    reply(call, json_pack("{s:I, s:o}", "sent", sent, "alerts", alerts));
}

/* ---- the roles and their tools ---- */

/* Schemas are written with single quotes for legibility; setup turns them into JSON. */
#define OBJ(props, req)                                                                            \
    "{'type':'object','properties':{" props "}," req "'additionalProperties':false}"
#define REQ(names) "'required':[" names "],"
#define STR(min, max) "{'type':'string','minLength':" #min ",'maxLength':" #max "}"
#define NAMES "{'type':'array','maxItems':50,'items':" STR(1, 64) "}"
#define SIMULATE(names) "'simulate':{'type':'string','enum':['none'," names "]}"

typedef struct tool {
    const char *name, *description, *schema;
    void (*fn)(nx_mcp_call_t *call, json_t *args);
} tool_t;

static const tool_t news_tools[] = {
    {"fetch_latest",
     "The latest articles on a topic from the live wire: {topic, source: live, count, articles: "
     "[{id, title, summary, published}]}. simulate_outage (or --fail-rate) makes the feed fail.",
     OBJ("'topic':" STR(1, 64) ",'limit':{'type':'integer','minimum':1,'maximum':10},"
                               "'simulate_outage':{'type':'boolean'}",
         REQ("'topic'")),
     news_fetch_latest},
    {"cached_headlines",
     "Yesterday's headlines on a topic from the local cache, always available: {topic, source: "
     "cache, stale: true, as_of, count, articles}.",
     OBJ("'topic':" STR(1, 64) ",'limit':{'type':'integer','minimum':1,'maximum':10}",
         REQ("'topic'")),
     news_cached_headlines},
};

static const tool_t templates_tools[] = {
    {"render",
     "Renders template article, digest or alert with data (its {{key}} placeholders) and items "
     "(digest: a list of their titles): {template, title, chars, text, html, source_id?}.",
     OBJ("'template':{'type':'string','enum':['article','digest','alert']},"
         "'data':{'type':'object'},'items':{'type':'array','maxItems':1000}",
         REQ("'template'")),
     templates_render},
};

static const tool_t database_tools[] = {
    {"insert",
     "Appends rows to a table (created on first use; in memory) and numbers them: {table, "
     "inserted, ids, total_rows}.",
     OBJ("'table':{'type':'string','pattern':'^[a-z][a-z0-9_]{0,31}$'},"
         "'rows':{'type':'array','maxItems':1000,'items':{'type':'object'}}",
         REQ("'table','rows'")),
     database_insert},
    {"query",
     "Runs a canned query: sales_by_region, top_products, active_users (seeded by "
     "params.period) or recent_articles (what insert stored in table articles): {query, count, "
     "rows}.",
     OBJ("'query':{'type':'string','enum':['sales_by_region','top_products','active_users',"
         "'recent_articles']},'params':" OBJ(
             "'period':{'type':'string','pattern':'^[0-9]{4}-(Q[1-4]|[01][0-9])$'},"
             "'limit':{'type':'integer','minimum':1,'maximum':50}",
             ""),
         REQ("'query'")),
     database_query},
};

static const tool_t analytics_tools[] = {
    {"summarize",
     "Count, sum, mean, min and max of numbers: values, or the field of rows (rows without a "
     "number there are skipped): {count, skipped, sum, mean, min, max, field?}.",
     OBJ("'values':{'type':'array','maxItems':100000,'items':{'type':'number'}},"
         "'rows':{'type':'array','maxItems':100000,'items':{'type':'object'}},'field':" STR(1, 64),
         "'anyOf':[{'required':['values']},{'required':['rows','field']}],"),
     analytics_summarize},
    {"track",
     "Records an event: {tracked: true, id, event, count (of this event so far), properties (how "
     "many)}.",
     OBJ("'event':{'type':'string','pattern':'^[a-z][a-z0-9_.]{0,63}$'},'properties':{'type':"
         "'object'}",
         REQ("'event'")),
     analytics_track},
};

static const tool_t reports_tools[] = {
    {"build",
     "Builds a Markdown report from sections of text (body) and data (tables from arrays of "
     "objects, lists otherwise): {id, title, sections, chars, markdown}.",
     OBJ("'title':" STR(1, 200) ",'sections':{'type':'array','maxItems':50,'items':" OBJ(
             "'heading':" STR(1, 200) ",'body':{'type':'string'},'data':{}", REQ("'heading'")) "}",
         REQ("'title','sections'")),
     reports_build},
};

static const tool_t external_tools[] = {
    {"get_customer",
     "A customer record from the partner CRM, as messy as partners send them: {id, name, email, "
     "phone, country, tier, customer_since, lifetime_value}. simulate: slow_once (the first "
     "lookup of an id answers after --slow-ms), outage (JSON-RPC error: HTTP 503 upstream).",
     OBJ("'id':{'type':'string','pattern':'^C-[0-9]{3,6}$'}," SIMULATE(
             "'slow_once','orders_down','outage'"),
         REQ("'id'")),
     external_get_customer},
    {"get_orders",
     "A customer's recent orders: {customer_id, count, orders: [{id, date, amount, currency, "
     "status}]}. simulate: orders_down (the orders service fails).",
     OBJ("'customer_id':{'type':'string','pattern':'^C-[0-9]{3,6}$'}," SIMULATE(
             "'slow_once','orders_down','outage'"),
         REQ("'customer_id'")),
     external_get_orders},
};

static const tool_t transform_tools[] = {
    {"normalize",
     "Cleans a record: spaces trimmed, name title-cased, email and tier lower-cased, phone as "
     "+digits, country as an ISO code: {record, changes (fields changed), issues, valid}.",
     OBJ("'record':{'type':'object','maxProperties':100}", REQ("'record'")), transform_normalize},
};

static const tool_t monitor_tools[] = {
    {"check",
     "Checks a target (answers after the latency it reports): {target, status: up|degraded|down, "
     "latency_ms, error?}. Targets listed in simulate_down are down, in simulate_slow slow.",
     OBJ("'target':{'type':'string','pattern':'^[a-z0-9][a-z0-9.-]{0,62}$'},"
         "'simulate_down':" NAMES ",'simulate_slow':" NAMES,
         REQ("'target'")),
     monitor_check},
    {"evaluate",
     "A verdict over checks (objects with a status, nested in arrays and objects): {status: "
     "ok|degraded|critical, summary, total, up, degraded: [names], down: [names]}; up but slower "
     "than slow_ms (default 250) counts as degraded.",
     OBJ("'checks':{'type':['array','object']},'slow_ms':{'type':'integer','minimum':1}",
         REQ("'checks'")),
     monitor_evaluate},
};

static const tool_t alerts_tools[] = {
    {"send", "Pages the on-call channel: {sent: true, id, severity, channel}.",
     OBJ("'severity':{'type':'string','enum':['info','warning','critical']},'message':" STR(
             1, 2000) ",'targets':" NAMES,
         REQ("'severity','message'")),
     alerts_send},
    {"history", "The alerts sent so far by this process (the newest 50): {sent, alerts}.",
     OBJ("", ""), alerts_history},
};

static const struct role {
    const char *name, *about;
    const tool_t *tools;
    size_t count;
} roles[] = {
    {"news", "news wire: latest articles, cached headlines", news_tools, COUNT(news_tools)},
    {"templates", "template renderer", templates_tools, COUNT(templates_tools)},
    {"database", "in-memory tables and canned BI queries", database_tools, COUNT(database_tools)},
    {"analytics", "summaries and event tracking", analytics_tools, COUNT(analytics_tools)},
    {"reports", "Markdown report builder", reports_tools, COUNT(reports_tools)},
    {"external", "a partner's CRM API (slow lookups, outages)", external_tools,
     COUNT(external_tools)},
    {"transform", "record normalization", transform_tools, COUNT(transform_tools)},
    {"monitor", "health checks and verdicts", monitor_tools, COUNT(monitor_tools)},
    {"alerts", "the on-call pager", alerts_tools, COUNT(alerts_tools)},
};

static void dispatch(nx_mcp_call_t *call, json_t *args, void *data) {
    ((const tool_t *)data)->fn(call, args);
}

static int add_tool(nx_mcp_server_t *server, const tool_t *t, char *err, size_t errlen) {
    char schema[2048];
    size_t n = strlen(t->schema);
    if (n >= sizeof(schema)) {
        snprintf(err, errlen, "the schema of %s is too long", t->name);
        return -EINVAL;
    }
    for (size_t i = 0; i <= n; i++)
        schema[i] = t->schema[i] == '\'' ? '"' : t->schema[i];
    nx_mcp_tool_def_t def = {.name = t->name,
                             .description = t->description,
                             .input_schema = schema,
                             .handler = dispatch,
                             .data = (void *)t};
    return nx_mcp_server_add_tool(server, &def, err, errlen);
}

/* ---- flags and main ---- */

static int parse_role(const char *value, void *arg) {
    for (size_t i = 0; i < COUNT(roles); i++)
        if (strcmp(value, roles[i].name) == 0) {
            opt.role = roles[i].name;
            return 0;
        }
    fprintf(stderr,
            "demo_backends: --role: expected news, templates, database, analytics, "
            "reports, external, transform, monitor or alerts, got '%s'\n",
            value);
    return -1;
}

/* Reads all of <s> as a number from <min> to <max>. */
static int read_number(const char *s, double min, double max, const char *flag, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= min && v <= max)) {
        fprintf(stderr, "demo_backends: %s: expected a number from %g to %g, got '%s'\n", flag, min,
                max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_fail_rate(const char *value, void *arg) {
    return read_number(value, 0, 1, "--fail-rate", &opt.fail_rate);
}

static int parse_uint(const char *value, const char *flag, unsigned *out) {
    double v;
    if (read_number(value, 0, 600000, flag, &v) < 0) return -1;
    if (v != floor(v)) {
        fprintf(stderr, "demo_backends: %s: expected a whole number, got '%s'\n", flag, value);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_fail_every(const char *value, void *arg) {
    return parse_uint(value, "--fail-every", &opt.fail_every);
}

static int parse_slow_ms(const char *value, void *arg) {
    return parse_uint(value, "--slow-ms", &opt.slow_ms);
}

static int parse_latency_ms(const char *value, void *arg) {
    return parse_uint(value, "--latency-ms", &opt.latency_ms);
}

static const nx_app_flag_t flags[] = {
    {"--role", true,
     "the service to play: news, templates, database, analytics, reports, external, transform, "
     "monitor or alerts (required)",
     parse_role},
    {"--fail-rate", true,
     "fraction (0..1) of news.fetch_latest and external.get_customer calls that fail as in an "
     "outage",
     parse_fail_rate},
    {"--fail-every", true,
     "external: every Nth get_customer call answers after --slow-ms (0 = never)", parse_fail_every},
    {"--slow-ms", true, "how long a slow answer takes (default 1500)", parse_slow_ms},
    {"--latency-ms", true, "added to every answer (default 0)", parse_latency_ms},
};

static const char about[] =
    "demo_backends: the demo services of examples/quickstart.yaml, one per process (--role).\n"
    "  news       fetch_latest {topic, limit?, simulate_outage?}, cached_headlines {topic}\n"
    "  templates  render {template: article|digest|alert, data?, items?}\n"
    "  database   insert {table, rows}, query {query, params?}\n"
    "  analytics  summarize {values | rows + field}, track {event, properties?}\n"
    "  reports    build {title, sections: [{heading, body?, data?}]}\n"
    "  external   get_customer {id, simulate?}, get_orders {customer_id, simulate?}\n"
    "  transform  normalize {record}\n"
    "  monitor    check {target, simulate_down?, simulate_slow?}, evaluate {checks}\n"
    "  alerts     send {severity, message, targets?}, history {}\n"
    "nexus's own tools (health_check, ...) are there too. Run under nexus with --stdio, as\n"
    "examples/quickstart.yaml does.";

static int setup(nx_mcp_server_t *server, void *arg, char *err, size_t errlen) {
    const struct role *r = NULL;
    for (size_t i = 0; opt.role != NULL && i < COUNT(roles); i++)
        if (strcmp(opt.role, roles[i].name) == 0) r = &roles[i];
    if (r == NULL) {
        snprintf(err, errlen, "--role is required (see --help)");
        return -EINVAL;
    }
    char name[64];
    snprintf(name, sizeof(name), "demo-%s", r->name);
    st.tables = json_object();
    st.events = json_object();
    st.alerts = json_array();
    st.slow_seen = json_object();
    int rc = nx_mcp_server_set_info(server, name, NX_VERSION);
    if (rc < 0) snprintf(err, errlen, "out of memory");
    nx_mcp_server_set_instructions(server, r->about);
    for (size_t i = 0; rc == 0 && i < r->count; i++)
        rc = add_tool(server, &r->tools[i], err, errlen);
    if (rc == 0) nx_log_info("demo_backends: serving %s (%s)", r->name, r->about);
    return rc;
}

int main(int argc, char **argv) {
    static const nx_app_t app = {
        .about = about, .setup = setup, .flags = flags, .flag_count = COUNT(flags)};
    int rc = nx_app_main(argc, argv, &app);
    json_decref(st.tables);
    json_decref(st.events);
    json_decref(st.alerts);
    json_decref(st.slow_seen);
    return rc;
}
