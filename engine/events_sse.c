/* GET /events: the Events channel as a text/event-stream. Each event goes out as
 * "id: N / event: TYPE / data: JSON"; a client resumes with Last-Event-ID (header, as
 * EventSource sends it) or ?last_event_id=N; ?execution=ID keeps one execution's events (from
 * its start when no resume id is given) and ends the stream after its terminal event unless
 * ?follow=1. A comment every 15 s keeps proxies from timing the stream out. A client that reads
 * slowly is paced by the bus; one that falls out of the ring or stops reading is cut after a
 * final "overflow" event. */
#include "events.h"

#include "events_internal.h"
#include "executions.h"
#include "log.h"
#include "nexus/errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_HEADERS "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
#define FINISH_CHECK_MS 200u  /* a cut stream checks this often whether its bytes left */
#define FINISH_GRACE_MS 5000u /* and is closed hard after this */

/* One SSE stream. Owned by its deferred request: freed by the abort (client gone) or once the
 * stream has ended (finish timer). */
typedef struct sse_sub {
    nx_event_sub_t sub;
    nx_http_conn_t *hc;
    nx_timer_t keepalive;
    nx_timer_t finish; /* ends the stream outside of a delivery */
    uint64_t finish_started_ms;
    bool follow;
    bool ending;                       /* the stream ends at the next finish tick */
    bool overflowed;                   /* cut: wait for the bytes to leave, then close */
    char execution[NX_EVENT_EXEC_MAX]; /* the filter; "" = every event */
} sse_sub_t;

static sse_sub_t *sse_of(nx_event_sub_t *s) {
    return nx_container_of(s, sse_sub_t, sub);
}

static void schedule_finish(sse_sub_t *ss) {
    if (ss->ending) return;
    ss->ending = true;
    nx__events_detach(&ss->sub);
    nx_timer_stop(&ss->keepalive);
    ss->finish_started_ms = nx_shard_now_ms(ss->sub.es->shard);
    nx_shard_timer_start(ss->sub.es->shard, &ss->finish, 0);
}

static void sse_free(sse_sub_t *ss) {
    nx__events_detach(&ss->sub);
    nx_timer_stop(&ss->keepalive);
    nx_timer_stop(&ss->finish);
    free(ss);
}

static void write_text(sse_sub_t *ss, const char *text, size_t len) {
    if (ss->hc != NULL) nx_http_stream_write(ss->hc, text, len);
}

/* An event without an id (reset, overflow): the client's Last-Event-ID stays where it was. */
static void write_notice(sse_sub_t *ss, const char *type, json_t *data) {
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    if (text == NULL) return;
    nx_buf_t *o = &nx__events_shard(ss->sub.es)->out;
    nx_buf_clear(o);
    nx_buf_appendf(o, "event: %s\ndata: %s\n\n", type, text);
    free(text);
    write_text(ss, o->data, o->len);
}

static size_t sse_unsent(const nx_event_sub_t *s) {
    const sse_sub_t *ss = nx_container_of(s, sse_sub_t, sub);
    return ss->hc != NULL ? nx_conn_unsent(ss->hc->conn) : 0;
}

/* Events from <next_id> on will not reach the client: a final "overflow" event says why and
 * where to resume (if it ever reads again), and the stream ends. */
static void cut(sse_sub_t *ss, uint64_t next_id, const char *why) {
    if (ss->ending) return;
    write_notice(ss, "overflow",
                 json_pack("{s:s, s:I}", "message", why, "next_event_id", (json_int_t)next_id));
    ss->overflowed = true;
    schedule_finish(ss);
}

/* The client reads too slowly to keep up. */
static void sse_overflow(nx_event_sub_t *s, uint64_t next_id) {
    cut(sse_of(s), next_id,
        "subscriber too slow: events it had not read yet were dropped; reconnect with "
        "Last-Event-ID to resume");
}

static void sse_deliver(nx_event_sub_t *s, nx_event_t *ev) {
    sse_sub_t *ss = sse_of(s);
    if (ss->ending || ss->hc == NULL) return;
    size_t len;
    const char *data = nx_event_text(ev, &len);
    if (data == NULL) {
        /* Skipping it would leave a silent gap: end the stream where the client can resume. */
        nx_log_warn("events: out of memory writing event %llu; ending an SSE stream",
                    (unsigned long long)ev->id);
        cut(ss, ev->id,
            "server out of memory: events were dropped; reconnect with Last-Event-ID to "
            "resume");
        return;
    }
    nx_buf_t *o = &nx__events_shard(s->es)->out;
    nx_buf_clear(o);
    nx_buf_append(o, ev->sse_head, ev->sse_head_len);
    nx_buf_append(o, data, len);
    nx_buf_append(o, "\n\n", 2);
    write_text(ss, o->data, o->len);
    /* One execution's stream is complete with its terminal event. */
    if (ev->terminal && !ss->follow && ss->execution[0] != '\0' &&
        strcmp(ev->execution, ss->execution) == 0)
        schedule_finish(ss);
}

static void sse_lost(nx_event_sub_t *s, uint64_t after, uint64_t oldest) {
    sse_sub_t *ss = sse_of(s);
    bool unknown = after >= oldest;
    write_notice(ss, "reset",
                 json_pack("{s:s, s:I, s:I}", "message",
                           unknown ? "Last-Event-ID names no event of this server (restarted?): "
                                     "events may have been missed"
                                   : "events after Last-Event-ID are no longer retained: some "
                                     "were missed",
                           "last_event_id", (json_int_t)after, "oldest_event_id",
                           (json_int_t)oldest));
}

static void sse_drain(nx_event_sub_t *s) {
    schedule_finish(sse_of(s));
}

static const nx_event_sub_ops_t sse_ops = {.deliver = sse_deliver,
                                           .lost = sse_lost,
                                           .drain = sse_drain,
                                           .unsent = sse_unsent,
                                           .overflow = sse_overflow};

static void on_keepalive(nx_timer_t *t) {
    sse_sub_t *ss = nx_container_of(t, sse_sub_t, keepalive);
    if (ss->ending || ss->hc == NULL) return;
    static const char ping[] = ": keep-alive\n\n";
    /* A waiting subscriber has bytes in flight already: no need to add any. */
    if (!ss->sub.paused) write_text(ss, ping, sizeof(ping) - 1);
    nx_shard_timer_start(ss->sub.es->shard, &ss->keepalive, NX_EVENTS_KEEPALIVE_MS);
}

static void on_finish(nx_timer_t *t) {
    sse_sub_t *ss = nx_container_of(t, sse_sub_t, finish);
    nx_http_conn_t *hc = ss->hc;
    if (hc == NULL) return;
    if (ss->overflowed && nx_conn_unsent(hc->conn) > 0) {
        uint64_t now = nx_shard_now_ms(ss->sub.es->shard);
        if (now - ss->finish_started_ms < FINISH_GRACE_MS) {
            nx_shard_timer_start(ss->sub.es->shard, &ss->finish, FINISH_CHECK_MS);
            return;
        }
        /* Still not read: drop the connection (the abort frees us). */
        nx_conn_close(hc->conn);
        return;
    }
    if (ss->overflowed) hc->keep_alive = false; /* a cut client starts over on a new connection */
    ss->hc = NULL;
    sse_free(ss);
    nx_http_stream_end(hc);
}

static void on_abort(nx_http_conn_t *hc, void *arg) {
    (void)hc;
    sse_free(arg);
}

/* ---- the route ---- */

/* The value of query parameter <name> in <q>, or {NULL, 0}. */
static nx_str_t query_param(nx_str_t q, const char *name) {
    size_t nl = strlen(name);
    const char *p = q.p, *end = q.p + q.n;
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) >= nl && memcmp(p, name, nl) == 0 &&
            ((size_t)(stop - p) == nl || p[nl] == '='))
            return (size_t)(stop - p) == nl ? (nx_str_t){stop, 0}
                                            : (nx_str_t){p + nl + 1, (size_t)(stop - p - nl - 1)};
        p = amp ? amp + 1 : NULL;
    }
    return (nx_str_t){NULL, 0};
}

/* Parses a decimal event id; false unless <v> is one. */
static bool parse_id(nx_str_t v, uint64_t *out) {
    if (v.n == 0 || v.n > 20) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') return false;
        uint64_t d = (uint64_t)(v.p[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

static bool flag_on(nx_str_t v) {
    return v.p != NULL && (v.n == 0 || nx_str_eq_lit_nocase(v, "1") ||
                           nx_str_eq_lit_nocase(v, "true") || nx_str_eq_lit_nocase(v, "yes"));
}

/* Copies an execution id: ours are x-<hex>; refuse anything that could not be one. */
static bool copy_exec(nx_str_t v, char out[NX_EVENT_EXEC_MAX]) {
    if (v.n == 0 || v.n >= NX_EVENT_EXEC_MAX) return false;
    for (size_t i = 0; i < v.n; i++) {
        char c = v.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    memcpy(out, v.p, v.n);
    out[v.n] = '\0';
    return true;
}

void nx_route_events(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                     const nx_route_match_t *m) {
    (void)m;
    char exec[NX_EVENT_EXEC_MAX] = "";
    nx_str_t qe = query_param(req->query, "execution");
    if (qe.p != NULL && !copy_exec(qe, exec)) {
        nx_http_respond_error(hc, 400, "execution must be an execution id (x-...)", NULL);
        return;
    }
    bool has_after = false;
    uint64_t after = 0;
    nx_str_t hdr = nx_http_request_header(req, "Last-Event-ID");
    nx_str_t qa = query_param(req->query, "last_event_id");
    if (hdr.p != NULL) {
        /* The header is what a reconnecting EventSource sends: newer than the URL's. An id
         * that is not one of ours means "unknown": the client is told events may be lost. */
        has_after = true;
        if (!parse_id(hdr, &after)) after = UINT64_MAX;
    } else if (qa.p != NULL) {
        if (!parse_id(qa, &after)) {
            nx_http_respond_error(hc, 400, "last_event_id must be a decimal event id", NULL);
            return;
        }
        has_after = true;
    }
    bool follow = flag_on(query_param(req->query, "follow"));
    int state = exec[0] ? nx_executions_state(es->engine, exec) : 0;
    if (state < 0) {
        nx_http_respond_error(hc, 404, "no such execution (records expire an hour after the end)",
                              NULL);
        return;
    }
    if (req->method == NX_HTTP_HEAD) { /* the headers a GET would get, without a stream */
        nx_http_respond(hc, 200, "text/event-stream", NULL, 0, STREAM_HEADERS);
        return;
    }
    if (es->draining) {
        nx_http_respond_error(hc, 503, "draining: not opening new event streams",
                              "Retry-After: 1\r\n");
        return;
    }
    sse_sub_t *ss = calloc(1, sizeof(*ss));
    if (ss == NULL) {
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    int rc = nx__events_attach(&ss->sub, &sse_ops, es);
    nx_event_replay_t r;
    if (rc == 0) rc = nx__events_subscribe(&ss->sub, exec[0] ? exec : NULL, has_after, after, &r);
    if (rc < 0) {
        sse_free(ss);
        if (rc == NX_EFULL)
            nx_http_respond_error(hc, 503, "too many event subscribers on this shard; retry later",
                                  "Retry-After: 1\r\n");
        else
            nx_http_respond_error(hc, 503, rc == NX_ECLOSED ? "draining" : "out of memory",
                                  "Retry-After: 1\r\n");
        return;
    }
    ss->hc = hc;
    ss->follow = follow;
    snprintf(ss->execution, sizeof(ss->execution), "%s", exec);
    nx_timer_init(&ss->keepalive, on_keepalive);
    nx_timer_init(&ss->finish, on_finish);
    if (nx_http_stream_begin(hc, 200, "text/event-stream", STREAM_HEADERS, on_abort, ss) < 0) {
        nx__events_replay_drop(&r);
        sse_free(ss);
        return;
    }
    static const char hello[] = ": nexus events\n\n";
    write_text(ss, hello, sizeof(hello) - 1);
    bool terminal = r.terminal_seen;
    bool empty = r.count == 0;
    nx__events_replay_finish(&ss->sub, &r);
    if (ss->ending) return;
    if (exec[0] && !follow && state > 0 && !terminal) {
        /* Ended before this request and nothing more will come: the client had the terminal
         * event already (resumed after it), or the ring no longer has this execution. */
        if (empty && !has_after)
            write_notice(ss, "reset",
                         json_pack("{s:s, s:s}", "message",
                                   "the execution ended and its events are no longer retained",
                                   "execution", exec));
        schedule_finish(ss);
        return;
    }
    nx_shard_timer_start(es->shard, &ss->keepalive, NX_EVENTS_KEEPALIVE_MS);
}

/* ---- test-only: publish synthetic events ---- */

void nx_route_debug_events(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                           const nx_route_match_t *m) {
    (void)m;
    json_error_t je;
    json_t *body = json_loadb(req->body.p, req->body.n, 0, &je);
    const char *type = json_string_value(json_object_get(body, "type"));
    json_t *data = json_object_get(body, "data");
    json_int_t count = json_integer_value(json_object_get(body, "count"));
    if (!json_object_get(body, "count")) count = 1;
    if (!json_is_object(body) || type == NULL || (data && !json_is_object(data)) || count < 1 ||
        count > 100000) {
        json_decref(body);
        nx_http_respond_error(
            hc, 400, "expected {\"type\": string, \"data\": object, \"count\": 1..100000}", NULL);
        return;
    }
    for (json_int_t i = 0; i < count; i++) {
        json_t *d = data ? json_deep_copy(data) : json_object();
        json_object_set_new(d, "n", json_integer(i));
        nx_events_publish(es->engine, type, d);
        json_decref(d);
    }
    json_decref(body);
    nx_respond_json(hc, 200, json_pack("{s:I}", "published", (json_int_t)count));
}
