/* Backends whose transport is rest: plain HTTP/JSON services that workflow steps call. A rest
 * backend has instances like an HTTP MCP backend — one per shard per replica — but its link is
 * only a connection pool (net/http_client.h): no session, no catalog. A request
 * (nx_backends_http) lives on the shard that makes it and uses that shard's pools only, so it
 * never crosses a mailbox; it goes through the backend's bulkhead, breaker, replica choice,
 * retries (backoff, budget, deadline) and counters exactly as a tools/call does
 * (backends_internal.h). Active health checks GET the configured path through the same pools. */
#include "backends_internal.h"

#include "http_client.h"
#include "log.h"
#include "nexus/errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXTRA_HEADERS 1 /* headers a request adds beyond the backend's and the caller's */

/* ---- pure helpers ---- */

char *nx__rest_target(const char *base, const char *path) {
    if (base == NULL || base[0] == '\0') base = "/";
    if (path == NULL) path = "";
    const char *bq = strchr(base, '?'), *pq = strchr(path, '?');
    size_t bp = bq ? (size_t)(bq - base) : strlen(base);
    size_t pp = pq ? (size_t)(pq - path) : strlen(path);
    while (bp > 0 && base[bp - 1] == '/')
        bp--; /* the joint gets exactly one '/' */
    while (pp > 0 && path[0] == '/')
        path++, pp--;
    size_t cap = bp + pp + strlen(base) + strlen(path) + 4;
    char *out = malloc(cap);
    if (out == NULL) return NULL;
    int n = snprintf(out, cap, "%.*s/%.*s", (int)bp, base, (int)pp, path);
    const char *q1 = bq ? bq + 1 : NULL, *q2 = pq ? pq + 1 : NULL;
    if (q1 != NULL && q1[0] == '\0') q1 = NULL;
    if (q2 != NULL && q2[0] == '\0') q2 = NULL;
    if (q1 || q2)
        snprintf(out + n, cap - (size_t)n, "?%s%s%s", q1 ? q1 : "", q1 && q2 ? "&" : "",
                 q2 ? q2 : "");
    return out;
}

nx__rest_outcome_t nx__rest_classify(int err, bool got_bytes, uint16_t status) {
    if (err == 0)
        return status == 502 || status == 503 || status == 504 ? NX__REST_RETRY_STATUS
                                                               : NX__REST_ANSWER;
    /* Safe to try again only when the server cannot have acted on the request: it refused the
     * connection, or the connection broke before it said anything. A per-try timeout is retried
     * like an MCP call's (the caller's retry policy decides how often). */
    if (err == -ECONNREFUSED || err == -ETIMEDOUT || (err == -ECONNRESET && !got_bytes))
        return NX__REST_RETRY_TRANSPORT;
    return NX__REST_FAIL;
}

void nx__rest_add_header(json_t *headers, nx_str_t name, nx_str_t value) {
    char key[256];
    if (name.n == 0 || name.n >= sizeof(key)) return;
    for (size_t i = 0; i < name.n; i++) {
        char c = name.p[i];
        key[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    key[name.n] = '\0';
    json_t *v = json_stringn(value.p ? value.p : "", value.n);
    if (v == NULL) return; /* not UTF-8: such a header says nothing a workflow can use */
    const char *prev = json_string_value(json_object_get(headers, key));
    if (prev != NULL) {
        size_t pn = strlen(prev);
        char *joined = malloc(pn + value.n + 3);
        if (joined == NULL) {
            json_decref(v);
            return;
        }
        memcpy(joined, prev, pn);
        memcpy(joined + pn, ", ", 2);
        memcpy(joined + pn + 2, value.p, value.n);
        json_decref(v);
        v = json_stringn(joined, pn + 2 + value.n);
        free(joined);
    }
    json_object_set_new(headers, key, v);
}

json_t *nx__rest_response(uint16_t status, const json_t *headers, const char *body, size_t len) {
    json_t *parsed = len > 0 ? json_loadb(body, len, JSON_DECODE_ANY, NULL) : NULL;
    if (parsed == NULL) {
        parsed = json_stringn(body ? body : "", len);
        if (parsed == NULL) { /* not UTF-8: the text with its bad bytes replaced */
            char *text = malloc(len + 1);
            if (text == NULL) return NULL;
            for (size_t i = 0; i < len; i++)
                text[i] = (unsigned char)body[i] < 0x80 && body[i] != '\0' ? body[i] : '?';
            parsed = json_stringn(text, len);
            free(text);
        }
    }
    json_t *h = headers ? json_deep_copy(headers) : json_object();
    return json_pack("{s:i, s:o, s:o}", "status", (int)status, "headers", h, "body", parsed);
}

/* ---- the link: one pool per instance ---- */

typedef struct rest_link rest_link_t;
typedef struct rest_x rest_x_t;
/* The end of an exchange: <err> as on_done's; <rx> (status, headers, body) is freed after. */
typedef void (*rest_x_done_fn)(rest_x_t *rx, int err, void *arg);

/* One exchange on a link's pool: a try of a request, a health check or a connection test.
 * Owned by the link's list until it ends or its owner cancels it. */
struct rest_x {
    nx_list_t link; /* in rl->xs */
    rest_link_t *rl;
    nx_http_exchange_t *x;
    rest_x_done_fn done;
    void *arg;
    bool keep;       /* collect headers and body (requests; checks need the status only) */
    bool lost;       /* the body could not be kept (out of memory): the request fails */
    bool got_bytes;  /* at the end: some response byte had arrived */
    const char *why; /* at the end: the client's description of a failure (static) */
    uint16_t status; /* 0 until the head came */
    json_t *headers; /* {lowercase name: value} */
    nx_buf_t body;
};

/* The link of one instance. Owned by the instance (in->link) on its shard. */
struct rest_link {
    nx_backend_instance_t *in;
    nx_http_pool_t *pool;
    uint64_t addr_generation; /* of the address the pool connects to */
    nx_list_t xs;             /* exchanges in flight */
    bool ending;              /* drained: ends once its exchanges did */
    nx_timer_t end_timer;     /* ends it outside any callback of its own */
};

/* What went wrong with an exchange that ended with <err>, in words, into <buf>. */
static const char *describe(const rest_x_t *rx, int err, char *buf, size_t len) {
    bool errno_like = err < 0 && err > -4096;
    if (rx->why != NULL && errno_like)
        snprintf(buf, len, "%s (%s)", rx->why, strerror(-err));
    else if (rx->why != NULL)
        snprintf(buf, len, "%s", rx->why);
    else
        snprintf(buf, len, "%s", errno_like ? strerror(-err) : "malformed response");
    return buf;
}

static void rest_x_free(rest_x_t *rx) {
    nx_list_remove(&rx->link);
    json_decref(rx->headers);
    nx_buf_dispose(&rx->body);
    free(rx);
}

static void maybe_end(rest_link_t *rl) {
    if (rl->ending && nx_list_empty(&rl->xs))
        nx_shard_timer_start(rl->in->es->shard, &rl->end_timer, 0);
}

static void on_end_timer(nx_timer_t *t) {
    rest_link_t *rl = nx_container_of(t, rest_link_t, end_timer);
    nx_backend_instance_t *in = rl->in;
    if (!nx_list_empty(&rl->xs)) return; /* one started meanwhile; its end ends the link */
    in->link = NULL;
    nx_http_pool_free(rl->pool);
    free(rl);
    nx_backend_link_down(in, "stopped", false);
}

static void rx_on_head(nx_http_exchange_t *x, const nx_http_response_t *head, void *arg) {
    rest_x_t *rx = arg;
    rx->status = head->status;
    if (!rx->keep) return;
    for (uint32_t i = 0; i < head->header_count; i++)
        nx__rest_add_header(rx->headers, head->headers[i].name, head->headers[i].value);
}

static void rx_on_data(nx_http_exchange_t *x, const char *data, size_t len, void *arg) {
    rest_x_t *rx = arg;
    /* The pool's body limit bounds this (stream is off). */
    if (rx->keep && !rx->lost && nx_buf_append(&rx->body, data, len) < 0) rx->lost = true;
}

static void rx_on_done(nx_http_exchange_t *x, int err, void *arg) {
    rest_x_t *rx = arg;
    rest_link_t *rl = rx->rl;
    rx->got_bytes = nx_http_exchange_got_bytes(x);
    rx->why = nx_http_exchange_error(x);
    rx->x = NULL;
    nx_list_remove(&rx->link); /* leaves it self-linked: rest_x_free may remove it again */
    rx->done(rx, err, rx->arg);
    rest_x_free(rx);
    maybe_end(rl);
}

static const nx_http_client_ops_t rx_ops = {
    .on_head = rx_on_head, .on_data = rx_on_data, .on_done = rx_on_done};

/* Submits <req> on <rl>'s pool; <done> runs once, later. NULL with <*rc> when it cannot go. */
static rest_x_t *rx_submit(rest_link_t *rl, const nx_http_client_request_t *req, bool keep,
                           rest_x_done_fn done, void *arg, int *rc) {
    /* The name moved (re-resolved in the background): new connections go to the new address. */
    const nx_resolved_t *addr = nx_backend_instance_address(rl->in);
    if (addr->generation != rl->addr_generation &&
        nx_http_pool_set_addr(rl->pool, (const struct sockaddr *)&addr->addr, addr->len) == 0)
        rl->addr_generation = addr->generation;
    rest_x_t *rx = calloc(1, sizeof(*rx));
    if (rx == NULL || (keep && (rx->headers = json_object()) == NULL)) {
        free(rx);
        *rc = -ENOMEM;
        return NULL;
    }
    rx->rl = rl;
    rx->done = done;
    rx->arg = arg;
    rx->keep = keep;
    nx_buf_init(&rx->body);
    nx_list_init(&rx->link);
    *rc = nx_http_request(rl->pool, req, &rx_ops, rx, &rx->x);
    if (*rc < 0) {
        rest_x_free(rx);
        return NULL;
    }
    nx_list_insert_tail(&rl->xs, &rx->link);
    return rx;
}

/* Abandons <rx> without its callback. */
static void rx_cancel(rest_x_t *rx) {
    rest_link_t *rl = rx->rl;
    if (rx->x != NULL) nx_http_exchange_cancel(rx->x);
    rest_x_free(rx);
    maybe_end(rl);
}

static int rest_start(nx_backend_instance_t *in) {
    const nx_backend_spec_t *sp = in->spec;
    const nx_backend_url_t *u = &sp->urls[in->replica];
    const nx_resolved_t *addr = nx_backend_instance_address(in);
    rest_link_t *rl = calloc(1, sizeof(*rl));
    if (rl == NULL) return -ENOMEM;
    char authority[300];
    bool v6 = strchr(u->host, ':') != NULL;
    snprintf(authority, sizeof(authority), v6 ? "[%s]:%u" : "%s:%u", u->host, u->port);
    nx_http_pool_opts_t opts = {.max_connections = sp->pool_max_connections,
                                .max_idle = sp->pool_max_idle,
                                .idle_timeout_ms = sp->pool_idle_timeout_ms,
                                .connect_timeout_ms = sp->connect_timeout_ms,
                                .max_requests_per_conn = sp->pool_max_requests};
    rl->pool = nx_http_pool_new(in->es->shard, (const struct sockaddr *)&addr->addr, addr->len,
                                authority, &opts);
    if (rl->pool == NULL) {
        free(rl);
        return -ENOMEM;
    }
    rl->in = in;
    rl->addr_generation = addr->generation;
    nx_list_init(&rl->xs);
    nx_timer_init(&rl->end_timer, on_end_timer);
    in->link = rl;
    nx_backend_link_serving(in);
    return 0;
}

static int rest_send(nx_backend_instance_t *in, const char *text, size_t len,
                     json_int_t request_id) {
    return -EPIPE; /* no MCP messages: nothing routes any here */
}

typedef struct check {
    nx__backend_rest_check_fn fn;
    void *arg;
} check_t;

static void on_check_done(rest_x_t *rx, int err, void *arg) {
    check_t c = *(check_t *)arg;
    free(arg);
    char why[200];
    c.fn(c.arg, err == 0 && rx->status / 100 == 2, err == 0 ? rx->status : 0,
         err == 0 ? NULL : describe(rx, err, why, sizeof(why)));
}

int nx__backend_rest_check(nx_backend_instance_t *in, uint32_t timeout_ms,
                           nx__backend_rest_check_fn fn, void *arg) {
    rest_link_t *rl = in->link;
    if (rl == NULL || rl->ending) return NX_ECLOSED;
    check_t *c = malloc(sizeof(*c));
    if (c == NULL) return -ENOMEM;
    *c = (check_t){fn, arg};
    /* The backend's own headers go along: a health endpoint may want its key too. */
    nx_http_client_request_t req = {.method = "GET",
                                    .target = in->spec->health_path,
                                    .headers = in->spec->header_fields,
                                    .header_count = in->spec->header_field_count,
                                    .timeout_ms = timeout_ms};
    int rc;
    if (rx_submit(rl, &req, false, on_check_done, c, &rc) == NULL) {
        free(c);
        return rc;
    }
    return 0;
}

static void on_probed(void *arg, bool ok, uint16_t status, const char *why) {
    nx_backend_link_probed(arg, ok);
}

/* A health check: GET of the health path; 2xx passes (see nx_backend_link_ops_t.probe). */
static void rest_probe(nx_backend_instance_t *in, uint32_t timeout_ms) {
    if (nx__backend_rest_check(in, timeout_ms, on_probed, in) < 0)
        nx_backend_link_probed(in, false);
}

/* Ends a check or test now, as failed (requests are left alone). */
static void end_check(rest_x_t *rx) {
    nx_http_exchange_cancel(rx->x);
    rx->x = NULL;
    nx_list_remove(&rx->link);
    rx->done(rx, -ECANCELED, rx->arg);
    rest_x_free(rx);
}

static void rest_drain(nx_backend_instance_t *in) {
    rest_link_t *rl = in->link;
    if (rl == NULL || rl->ending) return;
    /* Requests in flight finish first (within the grace period); checks need not. */
    rl->ending = true;
    nx_list_t *pos, *next;
    for (pos = rl->xs.next; pos != &rl->xs; pos = next) {
        next = pos->next;
        rest_x_t *rx = nx_container_of(pos, rest_x_t, link);
        if (!rx->keep) end_check(rx);
    }
    maybe_end(rl);
}

static void rest_destroy(nx_backend_instance_t *in) {
    rest_link_t *rl = in->link;
    if (rl == NULL) return;
    in->link = NULL;
    /* Requests were ended by nx__backend_rest_shard_stop; checks and tests are told here so
     * what waits on them is freed. */
    while (!nx_list_empty(&rl->xs))
        end_check(nx_container_of(rl->xs.next, rest_x_t, link));
    nx_timer_stop(&rl->end_timer);
    nx_http_pool_free(rl->pool);
    free(rl);
}

const nx_backend_link_ops_t nx_backend_rest_link = {
    .name = "rest",
    .start = rest_start,
    .send = rest_send,
    .probe = rest_probe,
    .drain = rest_drain,
    .destroy = rest_destroy,
};

/* ---- requests ---- */

/* One request, on the shard that made it (its origin). Owned by all->rest_calls[origin] until
 * its callback runs or it is cancelled. */
struct nx_backends_http_call {
    nx_list_t link; /* in all->rest_calls[origin] */
    nx_backends_t *all;
    nx_backend_t *b;
    uint32_t origin;
    uint32_t instance; /* of the current (or last) try */
    nx_backends_http_fn fn;
    void *arg;
    char *method, *path, *content_type, *body;
    size_t body_len;
    nx_http_header_t *headers; /* the caller's, copied into <header_text> */
    size_t header_count;
    char *header_text;
    nx_backoff_config_t backoff;
    uint64_t started_ns;
    uint64_t deadline_ms; /* monotonic; 0 = none */
    uint64_t budget_ms;   /* deadline_ms - the start, for messages */
    uint32_t attempts;    /* tries sent so far */
    nx_breaker_permit_t permit;
    bool permitted;   /* the breaker admitted the current try: its outcome must be recorded */
    bool in_bulkhead; /* holds a place in the bulkhead */
    bool counted;     /* counted as a request in flight by the retry budget */
    bool retry_held;  /* a retry slot of the budget is ours */
    rest_x_t *rx;     /* the try in flight, NULL between tries */
    json_t *early;    /* an error decided before any callback may run, delivered by the timer */
    nx_timer_t retry_timer; /* the next try, or the delivery of <early> */
    nx_timer_t try_timer;   /* the per-try timeout */
    nx_timer_t deadline_timer;
};

static uint64_t mono_ms(void) {
    return nx_loop_clock_ns() / 1000000u;
}

static json_t *error_json(const nx_backend_t *b, const char *message, const char *reason,
                          bool retryable) {
    return json_pack("{s:s, s:{s:s, s:s, s:b}}", "message", message, "data", "backend", b->name,
                     "reason", reason, "retryable", retryable);
}

static void call_free(nx_backends_http_call_t *c) {
    nx_list_remove(&c->link);
    free(c->method);
    free(c->path);
    free(c->content_type);
    free(c->body);
    free(c->headers);
    free(c->header_text);
    json_decref(c->early);
    free(c);
}

/* Ends the try in flight, if any, without an outcome of its own. */
static void drop_try(nx_backends_http_call_t *c) {
    nx_timer_stop(&c->try_timer);
    if (c->rx == NULL) return;
    atomic_fetch_sub(&c->b->instances[c->instance].outstanding, 1);
    rx_cancel(c->rx);
    c->rx = NULL;
}

/* Gives back everything <c> holds; <outcome> is the current try's (see nx__backend_record). */
static void release(nx_backends_http_call_t *c, int outcome) {
    nx_backend_t *b = c->b;
    drop_try(c);
    nx__backend_record(b, c->origin, c->instance, &c->permit, &c->permitted, outcome);
    nx_timer_stop(&c->retry_timer);
    nx_timer_stop(&c->deadline_timer);
    if (c->retry_held) nx_retry_budget_release(&b->budget);
    c->retry_held = false;
    if (c->counted) nx_retry_budget_request_finished(&b->budget);
    c->counted = false;
    if (c->in_bulkhead) nx_bulkhead_leave(&b->bulkhead);
    c->in_bulkhead = false;
}

/* Ends <c> with <response> or <error> (stolen); the callback runs last, <c> already gone. */
static void deliver(nx_backends_http_call_t *c, json_t *response, json_t *error, int outcome) {
    nx_backends_http_fn fn = c->fn;
    void *arg = c->arg;
    uint32_t attempts = c->attempts;
    release(c, outcome);
    call_free(c);
    if (response == NULL && error == NULL)
        error = json_pack("{s:s, s:{s:s}}", "message", "out of memory", "data", "reason", "nomem");
    fn(arg, response, response ? NULL : error, attempts);
    json_decref(response);
    json_decref(error);
}

/* deliver, from the loop: a draining shard may stop once its last request ended. */
static void finish(nx_backends_http_call_t *c, json_t *response, json_t *error, int outcome) {
    deliver(c, response, error, outcome);
    nx_engine_shard_t *es = nx_engine_current_shard();
    if (es != NULL) nx_engine_shard_maybe_stop(es);
}

/* An error decided where the callback may not run yet: delivered from a zero-delay timer. */
static void fail_soon(nx_backends_http_call_t *c, json_t *error) {
    json_decref(c->early);
    c->early = error;
    nx_shard_timer_start(nx_engine_current_shard()->shard, &c->retry_timer, 0);
}

static void on_try_done(rest_x_t *rx, int err, void *arg);

/* Sends the next try through the origin's pool to a replica it picks. */
static void start_try(nx_backends_http_call_t *c) {
    nx_backend_t *b = c->b;
    c->instance = nx__backend_pick(b, c->origin);
    nx_backend_instance_t *in = &b->instances[c->instance];
    rest_link_t *rl = in->link;
    char m[300];
    if (rl == NULL || rl->ending || in->draining) {
        snprintf(m, sizeof(m), "backend %s: nexus is shutting down", b->name);
        fail_soon(c, error_json(b, m, "shutdown", false));
        return;
    }
    char *target = nx__rest_target(b->urls[in->replica].path, c->path);
    size_t own = b->spec.header_field_count;
    nx_http_header_t *h = calloc(own + c->header_count + EXTRA_HEADERS, sizeof(*h));
    if (target == NULL || h == NULL) {
        free(target);
        free(h);
        fail_soon(c, error_json(b, "out of memory", "nomem", false));
        return;
    }
    /* The backend's headers, then the request's, then what the body needs. */
    size_t n = 0;
    for (size_t i = 0; i < own; i++)
        h[n++] = b->spec.header_fields[i];
    for (size_t i = 0; i < c->header_count; i++)
        h[n++] = c->headers[i];
    if (c->body != NULL && c->content_type != NULL)
        h[n++] = (nx_http_header_t){NX_STR("Content-Type"), nx_str_from(c->content_type)};
    nx_http_client_request_t req = {.method = c->method,
                                    .target = target,
                                    .headers = h,
                                    .header_count = n,
                                    .body = c->body,
                                    .body_len = c->body_len};
    int rc;
    c->rx = rx_submit(rl, &req, true, on_try_done, c, &rc);
    free(target);
    free(h);
    if (c->rx == NULL) {
        snprintf(m, sizeof(m), "backend %s: %s", b->name,
                 rc == -EBUSY    ? "its connection pool is full; retry later"
                 : rc == -ENOMEM ? "out of memory"
                                 : strerror(rc < 0 ? -rc : rc));
        fail_soon(c, error_json(b, m, rc == -EBUSY ? "overloaded" : "unavailable", rc == -EBUSY));
        return;
    }
    c->attempts++;
    atomic_fetch_add(&in->outstanding, 1);
    atomic_fetch_add(&b->calls_total, 1);
    if (b->call_timeout_ms > 0)
        nx_shard_timer_start(nx_engine_current_shard()->shard, &c->try_timer, b->call_timeout_ms);
}

/* After a retryable failure of the current try: schedules the next one when attempts, the
 * deadline and the retry budget allow it; false when the failure is final. */
static bool try_retry(nx_backends_http_call_t *c) {
    nx_backend_t *b = c->b;
    if (c->all->e->draining) return false; /* shutting down: nothing new starts */
    if (c->retry_held) nx_retry_budget_release(&b->budget);
    c->retry_held = false;
    uint64_t delay = nx__backend_retry_delay(&c->backoff, c->attempts);
    uint64_t now = mono_ms();
    uint64_t remaining = c->deadline_ms == 0    ? UINT64_MAX
                         : c->deadline_ms > now ? c->deadline_ms - now
                                                : 0;
    if (!nx_backoff_should_retry(&c->backoff, c->attempts, delay, remaining)) return false;
    if (!nx_retry_budget_try_acquire(&b->budget)) return false;
    nx__backend_record(b, c->origin, c->instance, &c->permit, &c->permitted, 1);
    c->retry_held = true;
    atomic_fetch_add(&b->retries_total, 1);
    nx_shard_timer_start(nx_engine_current_shard()->shard, &c->retry_timer, delay);
    return true;
}

/* A try failed without an answer (<reason>, <message>): retried when it may be, else final. */
static void try_failed(nx_backends_http_call_t *c, bool retryable, const char *reason,
                       const char *message) {
    if (retryable && try_retry(c)) return;
    nx__backend_record_latency(c->b, c->started_ns, false);
    finish(c, NULL, error_json(c->b, message, reason, retryable), 1);
}

static const char *transport_reason(int err) {
    switch (err) {
    case -ECONNREFUSED:
        return "refused";
    case -ECONNRESET:
        return "reset";
    case -ETIMEDOUT:
        return "timeout";
    case NX_EPROTO:
        return "protocol";
    default:
        return "unavailable";
    }
}

static void on_try_done(rest_x_t *rx, int err, void *arg) {
    nx_backends_http_call_t *c = arg;
    nx_backend_t *b = c->b;
    nx_timer_stop(&c->try_timer);
    atomic_fetch_sub(&b->instances[c->instance].outstanding, 1);
    c->rx = NULL;
    nx__rest_outcome_t o = nx__rest_classify(err, rx->got_bytes, rx->status);
    if (rx->lost) {
        nx__backend_record_latency(b, c->started_ns, false);
        finish(c, NULL, error_json(b, "out of memory", "nomem", false), -1);
        return;
    }
    if (o == NX__REST_RETRY_TRANSPORT || o == NX__REST_FAIL) {
        char m[300];
        char why[200];
        snprintf(m, sizeof(m), "backend %s: %s", b->name, describe(rx, err, why, sizeof(why)));
        try_failed(c, o == NX__REST_RETRY_TRANSPORT, transport_reason(err), m);
        return;
    }
    if (o == NX__REST_RETRY_STATUS && try_retry(c)) return;
    /* An answer: the backend's errors (5xx) count against it; the request's (4xx) do not. */
    bool ok = rx->status < 500;
    nx__backend_record_latency(b, c->started_ns, ok);
    finish(c, nx__rest_response(rx->status, rx->headers, rx->body.data, rx->body.len), NULL,
           ok ? 0 : 1);
}

static void on_try_timeout(nx_timer_t *t) {
    nx_backends_http_call_t *c = nx_container_of(t, nx_backends_http_call_t, try_timer);
    drop_try(c);
    char m[300];
    snprintf(m, sizeof(m), "backend %s did not answer within %u ms", c->b->name,
             c->b->call_timeout_ms);
    try_failed(c, true, "timeout", m);
}

static void on_retry_timer(nx_timer_t *t) {
    nx_backends_http_call_t *c = nx_container_of(t, nx_backends_http_call_t, retry_timer);
    nx_backend_t *b = c->b;
    if (c->early != NULL) {
        json_t *e = c->early;
        c->early = NULL;
        finish(c, NULL, e, -1);
        return;
    }
    uint64_t now = mono_ms();
    if (b->breaker_enabled && !nx_breaker_allow(&b->breaker, now, &c->permit)) {
        uint64_t wait = nx_breaker_retry_after_ms(&b->breaker, now);
        char m[300];
        snprintf(m, sizeof(m), "backend %s is failing (circuit open); retry after %llu ms", b->name,
                 (unsigned long long)wait);
        json_t *e = error_json(b, m, "circuit_open", false);
        json_object_set_new(json_object_get(e, "data"), "retryAfterMs",
                            json_integer((json_int_t)wait));
        finish(c, NULL, e, -1);
        return;
    }
    c->permitted = b->breaker_enabled;
    start_try(c);
}

/* The overall deadline passed: the try under way is abandoned (a slow try counts against the
 * backend) and the caller gets an error naming the backend. */
static void on_deadline(nx_timer_t *t) {
    nx_backends_http_call_t *c = nx_container_of(t, nx_backends_http_call_t, deadline_timer);
    bool in_try = c->rx != NULL;
    char m[300];
    snprintf(m, sizeof(m), "backend %s did not answer within %llu ms (the request's deadline)",
             c->b->name, (unsigned long long)c->budget_ms);
    finish(c, NULL, error_json(c->b, m, "deadline", false), in_try ? 1 : -1);
}

static bool has_crlf(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return true;
    return false;
}

/* Copies the caller's request into <c>; -EINVAL for one that cannot go on the wire. */
static int copy_request(nx_backends_http_call_t *c, const nx_backends_http_request_t *req) {
    const char *method = req->method ? req->method : "GET";
    const char *path = req->path ? req->path : "/";
    if (method[0] == '\0' || has_crlf(method, strlen(method)) || has_crlf(path, strlen(path)))
        return -EINVAL;
    size_t text = 0;
    for (size_t i = 0; i < req->header_count; i++) {
        const nx_http_header_t *hd = &req->headers[i];
        if (hd->name.n == 0 || has_crlf(hd->name.p, hd->name.n) ||
            has_crlf(hd->value.p, hd->value.n))
            return -EINVAL;
        text += hd->name.n + hd->value.n;
    }
    c->method = strdup(method);
    c->path = strdup(path);
    bool ct_given = false;
    for (size_t i = 0; i < c->b->spec.header_field_count; i++)
        if (nx_str_eq_lit_nocase(c->b->spec.header_fields[i].name, "Content-Type")) ct_given = true;
    c->headers = calloc(req->header_count + 1, sizeof(*c->headers));
    c->header_text = malloc(text + 1);
    if (c->method == NULL || c->path == NULL || c->headers == NULL || c->header_text == NULL)
        return -ENOMEM;
    char *p = c->header_text;
    for (size_t i = 0; i < req->header_count; i++) {
        const nx_http_header_t *hd = &req->headers[i];
        /* The client frames the message itself. */
        if (nx_str_eq_lit_nocase(hd->name, "Host") ||
            nx_str_eq_lit_nocase(hd->name, "Content-Length") ||
            nx_str_eq_lit_nocase(hd->name, "Transfer-Encoding"))
            continue;
        if (nx_str_eq_lit_nocase(hd->name, "Content-Type")) ct_given = true;
        memcpy(p, hd->name.p, hd->name.n);
        nx_str_t name = {p, hd->name.n};
        p += hd->name.n;
        if (hd->value.n > 0) memcpy(p, hd->value.p, hd->value.n);
        nx_str_t value = {p, hd->value.n};
        p += hd->value.n;
        c->headers[c->header_count++] = (nx_http_header_t){name, value};
    }
    if (req->body != NULL) {
        if ((c->body = malloc(req->body_len + 1)) == NULL) return -ENOMEM;
        memcpy(c->body, req->body, req->body_len);
        c->body_len = req->body_len;
        const char *ct = req->content_type ? req->content_type : "application/json";
        if (has_crlf(ct, strlen(ct))) return -EINVAL;
        if (!ct_given && (c->content_type = strdup(ct)) == NULL) return -ENOMEM;
    }
    return 0;
}

nx_backends_http_call_t *nx_backends_http(struct nx_backends *all, const char *backend,
                                          const nx_backends_http_request_t *req,
                                          nx_backends_http_fn fn, void *arg, int *rc) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    nx_backend_t *b = backend ? nx__backends_find(all, backend) : NULL;
    *rc = 0;
    if (b == NULL || b->spec.transport != NX_BACKEND_REST) {
        *rc = NX_ENOTFOUND;
        return NULL;
    }
    if (es == NULL) { /* the pools belong to shards */
        *rc = -EINVAL;
        return NULL;
    }
    nx_backends_http_call_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    nx_list_init(&c->link);
    c->b = b;
    int crc = copy_request(c, req);
    if (crc < 0) {
        call_free(c);
        *rc = crc;
        return NULL;
    }
    uint32_t origin = (uint32_t)es->shard->id;
    uint64_t now = mono_ms();
    c->all = all;
    c->b = b;
    c->origin = origin;
    c->fn = fn;
    c->arg = arg;
    c->started_ns = nx_loop_clock_ns();
    c->backoff = req->retry && req->retry->max_attempts > 0 ? *req->retry : b->backoff;
    /* The caller may want its answer sooner than the backend's deadline, never later. */
    uint64_t limit = b->deadline_ms;
    if (req->timeout_ms > 0 && (limit == 0 || req->timeout_ms < limit)) limit = req->timeout_ms;
    c->deadline_ms = limit ? now + limit : 0;
    c->budget_ms = limit;
    nx_timer_init(&c->retry_timer, on_retry_timer);
    nx_timer_init(&c->try_timer, on_try_timeout);
    nx_timer_init(&c->deadline_timer, on_deadline);
    nx_list_insert_tail(&all->rest_calls[origin], &c->link);
    char m[300];
    /* Fail fast, naming the backend, when it is overloaded or its breaker is open. */
    if (!nx_bulkhead_try_enter(&b->bulkhead)) {
        snprintf(m, sizeof(m), "backend %s is at its limit of %u calls in flight; retry later",
                 b->name, b->max_concurrent);
        json_t *e = error_json(b, m, "bulkhead", false);
        json_object_set_new(json_object_get(e, "data"), "retryAfterMs", json_integer(100));
        fail_soon(c, e);
        return c;
    }
    c->in_bulkhead = true;
    if (b->breaker_enabled && !nx_breaker_allow(&b->breaker, now, &c->permit)) {
        uint64_t wait = nx_breaker_retry_after_ms(&b->breaker, now);
        snprintf(m, sizeof(m), "backend %s is failing (circuit open); retry after %llu ms", b->name,
                 (unsigned long long)wait);
        json_t *e = error_json(b, m, "circuit_open", false);
        json_object_set_new(json_object_get(e, "data"), "retryAfterMs",
                            json_integer((json_int_t)wait));
        fail_soon(c, e);
        return c;
    }
    c->permitted = b->breaker_enabled;
    nx_retry_budget_request_started(&b->budget);
    c->counted = true;
    if (c->deadline_ms != 0) nx_shard_timer_start(es->shard, &c->deadline_timer, limit);
    start_try(c);
    return c;
}

void nx_backends_http_cancel(nx_backends_http_call_t *c) {
    if (c == NULL) return;
    release(c, -1);
    call_free(c);
}

void nx__backend_rest_shard_stop(nx_backends_t *all, uint32_t shard) {
    nx_list_t *list = &all->rest_calls[shard];
    while (!nx_list_empty(list)) {
        nx_backends_http_call_t *c = nx_container_of(list->next, nx_backends_http_call_t, link);
        char m[300];
        snprintf(m, sizeof(m), "backend %s: the server is shutting down", c->b->name);
        deliver(c, NULL, error_json(c->b, m, "shutdown", false), -1);
    }
}

/* ---- POST /debug/rest/{backend} (test only) ---- */

/* A debug request waiting for its answer. Freed by the callback or when the client leaves. */
typedef struct debug_rest {
    nx_http_conn_t *hc;
    nx_backends_http_call_t *call;
} debug_rest_t;

static void on_debug_answer(void *arg, const json_t *response, const json_t *error,
                            uint32_t attempts) {
    debug_rest_t *d = arg;
    nx_http_conn_t *hc = d->hc;
    free(d);
    nx_respond_json(hc, 200,
                    json_pack("{s:O, s:O, s:i}", "response", response ? response : json_null(),
                              "error", error ? error : json_null(), "attempts", (int)attempts));
}

static void on_debug_gone(nx_http_conn_t *hc, void *arg) {
    debug_rest_t *d = arg;
    nx_backends_http_cancel(d->call);
    free(d);
}

void nx_backends_route_debug_rest(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                                  const nx_route_match_t *m) {
    char name[128];
    if (m->param_count < 1 || m->params[0].n == 0 || m->params[0].n >= sizeof(name)) {
        nx_http_respond_error(hc, 404, "no such backend", NULL);
        return;
    }
    memcpy(name, m->params[0].p, m->params[0].n);
    name[m->params[0].n] = '\0';
    nx_backend_t *b = nx__backends_find(es->engine->backends, name);
    if (b == NULL || b->spec.transport != NX_BACKEND_REST) {
        nx_http_respond_error(hc, 404, "no rest backend by that name", NULL);
        return;
    }
    json_t *in = req->body.n ? json_loadb(req->body.p, req->body.n, 0, NULL) : json_object();
    if (!json_is_object(in)) {
        json_decref(in);
        nx_http_respond_error(hc, 400, "the body must be a JSON object", NULL);
        return;
    }
    nx_backends_http_request_t r = {
        .method = json_string_value(json_object_get(in, "method")),
        .path = json_string_value(json_object_get(in, "path")),
        .content_type = json_string_value(json_object_get(in, "content_type")),
    };
    json_t *t = json_object_get(in, "timeout_ms");
    if (json_is_integer(t) && json_integer_value(t) > 0 && json_integer_value(t) < UINT32_MAX)
        r.timeout_ms = (uint32_t)json_integer_value(t);
    nx_backoff_config_t retry;
    if (nx__backend_retry_override(json_object_get(in, "retry"), &b->backoff, &retry))
        r.retry = &retry;
    json_t *hs = json_object_get(in, "headers");
    size_t hn = json_object_size(hs);
    nx_http_header_t *headers = calloc(hn + 1, sizeof(*headers));
    const char *key;
    json_t *v;
    json_object_foreach(hs, key, v) {
        if (headers != NULL && json_is_string(v))
            headers[r.header_count++] =
                (nx_http_header_t){nx_str_from(key), {json_string_value(v), json_string_length(v)}};
    }
    r.headers = headers;
    json_t *body = json_object_get(in, "body");
    char *text = NULL;
    if (json_is_string(body)) {
        r.body = json_string_value(body);
        r.body_len = json_string_length(body);
        if (r.content_type == NULL) r.content_type = "text/plain; charset=utf-8";
    } else if (body != NULL && !json_is_null(body)) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        r.body = text;
        r.body_len = text ? strlen(text) : 0;
    }
    debug_rest_t *d = calloc(1, sizeof(*d));
    int rc = -ENOMEM;
    if (d != NULL && headers != NULL) {
        d->hc = hc;
        d->call = nx_backends_http(es->engine->backends, name, &r, on_debug_answer, d, &rc);
    }
    free(text);
    free(headers);
    json_decref(in);
    if (d == NULL || d->call == NULL) {
        free(d);
        nx_http_respond_error(
            hc, rc == -EINVAL ? 400 : 503,
            rc == -EINVAL ? "the request cannot be sent (CR or LF in it?)" : "out of memory", NULL);
        return;
    }
    nx_http_defer(hc, on_debug_gone, d);
}
