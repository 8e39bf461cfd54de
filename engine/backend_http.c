/* The Streamable HTTP link of a backend (see backend_link.h): one MCP session with one replica,
 * held by one shard, over that shard's connection pool to the replica (net/http_client.h).
 *
 * Every message is a POST to the MCP endpoint. The answer is 202 (a notification or a response
 * of ours), one JSON message, or an event stream carrying the server's messages about the
 * request — progress, log messages, its own requests to the client — and finally the response;
 * each is handed to the backend as "related" to the request, which is how a server-to-client
 * request finds the client that made the call. The session id the server gives with its
 * answer to initialize goes with every later request; a 404 then means the session expired,
 * and the link ends so the backend starts a new session at once. Once the session is up a GET
 * opens the standalone stream, for what the server says outside any request (list_changed,
 * requests with no related call); a response stream the server closes before answering (SEP-1699
 * polling) is resumed with GET and Last-Event-ID after its retry delay. HTTP failures become
 * JSON-RPC errors of the request they carried, flagged retryable when another try may succeed
 * (connect refused or reset, 502, 503, 504). At shutdown the session is ended with DELETE.
 *
 * A server of the 2024-11-05 era (legacy HTTP+SSE) is spoken to its way: a GET opens the one
 * stream every answer comes on, whose first event names the endpoint to POST messages to —
 * chosen with transport: sse, or found when such a server refuses the POST of initialize. */
#include "backend_link.h"

#include "backends.h"
#include "http_client.h"
#include "jsonrpc.h"
#include "log.h"
#include "nexus/errors.h"
#include "sse_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_JSON_BODY (16u << 20) /* one JSON answer at most (an event stream has no bound) */
#define SESSION_MAX 256
#define DELETE_TIMEOUT_MS 1000u
#define NOTIFY_TIMEOUT_MS 10000u

typedef struct http_link http_link_t;

/* One POST in flight. */
typedef struct post {
    nx_list_t link; /* in hl->posts */
    http_link_t *hl;
    nx_http_exchange_t *x;
    json_int_t request_id; /* 0: a notification or a response of ours */
    uint16_t status;
    bool is_sse, is_json, is_delete;
    bool is_stream;           /* legacy: the GET event stream every answer comes on */
    bool is_standalone;       /* the GET stream of messages not about any request of ours */
    bool is_resume;           /* a GET resuming the response stream of <request_id> */
    bool got_event;           /* a message came on this stream */
    bool is_probe;            /* a health check: GET of the configured path */
    uint32_t resume_attempts; /* resumptions without a message so far (is_resume) */
    char *init_text;          /* the initialize request, kept in case the server is a legacy one */
    size_t init_len;
    nx_buf_t body; /* a JSON answer */
    nx_sse_parser_t sse;
} post_t;

struct http_link {
    nx_backend_instance_t *in;
    nx_http_pool_t *pool;
    char session[SESSION_MAX]; /* Mcp-Session-Id, "" until the server gives one */
    nx_http_header_t *headers; /* the configured ones, then room for ours */
    size_t header_count;       /* configured */
    nx_list_t posts;
    uint64_t addr_generation; /* of the address the pool connects to */
    /* Legacy HTTP+SSE (2024-11-05): messages are POSTed to the endpoint the server announced
     * on its event stream, and every answer comes on that stream. */
    bool legacy;
    char *endpoint;  /* where to POST, once announced */
    char *init_text; /* the initialize to send there once it is (a fallback) */
    size_t init_len;
    json_int_t init_id;
    bool down;
    nx_timer_t down_timer; /* ends the link outside any callback of its own */
    const char *why;
    char why_buf[200];
    bool restart_now;
    /* The standalone GET stream: server requests and notifications outside any request
     * (list_changed...). Reopened after the server's retry delay when it ends; never again
     * after a 405 (the server offers none). */
    bool standalone_open, standalone_refused;
    char standalone_last_id[128];
    nx_timer_t standalone_timer;
    nx_list_t resumes; /* response streams to resume (resume_t) */
};

/* A response stream the server closed before answering (SEP-1699 polling): resumed with GET
 * and Last-Event-ID after the retry delay. */
typedef struct resume {
    nx_list_t link; /* in hl->resumes */
    http_link_t *hl;
    json_int_t request_id;
    char last_id[128];
    uint32_t attempts;
    nx_timer_t timer;
} resume_t;

#define MAX_RESUMES 10        /* consecutive resumptions of one stream without an answer */
#define DEFAULT_RETRY_MS 1000 /* when the server named no retry delay */

/* ---- ending ---- */

static void post_free(post_t *p) {
    free(p->init_text);
    nx_list_remove(&p->link);
    nx_buf_dispose(&p->body);
    if (p->is_sse) nx_sse_parser_dispose(&p->sse);
    free(p);
}

static void link_free(http_link_t *hl) {
    while (!nx_list_empty(&hl->posts)) {
        post_t *p = nx_container_of(hl->posts.next, post_t, link);
        nx_http_exchange_cancel(p->x);
        post_free(p);
    }
    while (!nx_list_empty(&hl->resumes)) {
        resume_t *r = nx_container_of(hl->resumes.next, resume_t, link);
        nx_timer_stop(&r->timer);
        nx_list_remove(&r->link);
        free(r);
    }
    nx_timer_stop(&hl->standalone_timer);
    nx_http_pool_free(hl->pool);
    nx_timer_stop(&hl->down_timer);
    free(hl->endpoint);
    free(hl->init_text);
    free(hl->headers);
    free(hl);
}

static void on_down_timer(nx_timer_t *t) {
    http_link_t *hl = nx_container_of(t, http_link_t, down_timer);
    nx_backend_instance_t *in = hl->in;
    const char *why = hl->why;
    bool now = hl->restart_now;
    in->link = NULL;
    link_free(hl);
    nx_backend_link_down(in, why, now);
}

/* Ends the link soon (from a timer: callers may be inside callbacks of its exchanges). */
static void link_end(http_link_t *hl, const char *why, bool restart_now) {
    if (hl->down) return;
    hl->down = true;
    hl->why = why;
    hl->restart_now = restart_now;
    nx_shard_timer_start(hl->in->es->shard, &hl->down_timer, 0);
}

/* ---- answers ---- */

/* Fails our request <id> with a JSON-RPC error as if the server had sent it. */
static void fail_request(http_link_t *hl, json_int_t id, const char *message, bool retryable) {
    if (id <= 0 || hl->down) return;
    json_t *err = json_pack("{s:s, s:I, s:{s:i, s:s, s:{s:s, s:b}}}", "jsonrpc", "2.0", "id", id,
                            "error", "code", -32603, "message", message, "data", "backend",
                            hl->in->name, "retryable", retryable);
    char *text = json_dumps(err, JSON_COMPACT);
    json_decref(err);
    if (text != NULL) nx_backend_link_receive(hl->in, text, strlen(text), id);
    free(text);
}

static void on_head(nx_http_exchange_t *x, const nx_http_response_t *head, void *arg) {
    post_t *p = arg;
    http_link_t *hl = p->hl;
    p->status = head->status;
    nx_str_t sid = nx_http_response_header(head, "mcp-session-id");
    if (sid.n > 0 && sid.n < SESSION_MAX && hl->session[0] == '\0')
        snprintf(hl->session, sizeof(hl->session), "%.*s", (int)sid.n, sid.p);
    if (head->status / 100 != 2) return;
    nx_str_t media = head->media_type;
    if ((p->is_stream || p->is_standalone || p->is_resume) && head->status != 200) return;
    if (media.n == 17 && strncasecmp(media.p, "text/event-stream", 17) == 0) {
        p->is_sse = true;
        nx_sse_parser_init(&p->sse, NULL);
    } else if (media.n == 16 && strncasecmp(media.p, "application/json", 16) == 0) {
        p->is_json = true;
    }
}

static int http_post(http_link_t *hl, const char *method, const char *text, size_t len,
                     json_int_t request_id);
static int open_stream(http_link_t *hl);

char *nx_backend_endpoint_target(const char *base, const char *data, size_t n) {
    char *out = NULL;
    const char *p = data, *end = data + n;
    if ((n > 7 && strncmp(p, "http://", 7) == 0) || (n > 8 && strncmp(p, "https://", 8) == 0)) {
        const char *authority = p + (p[4] == ':' ? 7 : 8);
        p = memchr(authority, '/', (size_t)(end - authority));
        if (p == NULL) return strdup("/");
        n = (size_t)(end - p);
    }
    if (n > 0 && p[0] == '/') {
        if ((out = malloc(n + 1)) != NULL) { /* <data> is not NUL-terminated */
            memcpy(out, p, n);
            out[n] = '\0';
        }
    } else {
        const char *slash = strrchr(base, '/');
        size_t dir = slash ? (size_t)(slash - base) + 1 : 0;
        if ((out = malloc(dir + n + 2)) != NULL) {
            if (dir == 0)
                out[dir++] = '/';
            else
                memcpy(out, base, dir);
            memcpy(out + dir, p, n);
            out[dir + n] = '\0';
        }
    }
    return out;
}

/* One event of a legacy server's stream: where to POST, or a message. */
static void stream_event(http_link_t *hl, const nx_sse_message_t *m) {
    nx_backend_instance_t *in = hl->in;
    if (m->type.n == 8 && memcmp(m->type.p, "endpoint", 8) == 0) {
        char *target =
            nx_backend_endpoint_target(in->spec->urls[in->replica].path, m->data.p, m->data.n);
        if (target == NULL) return;
        bool first = hl->endpoint == NULL;
        free(hl->endpoint);
        hl->endpoint = target;
        if (!first) return;
        if (hl->init_text != NULL) {
            /* We came here from Streamable HTTP: the initialize the server refused goes again,
             * the legacy way. */
            char *text = hl->init_text;
            hl->init_text = NULL;
            if (http_post(hl, "POST", text, hl->init_len, hl->init_id) < 0)
                link_end(hl, "cannot send initialize to the legacy endpoint", false);
            free(text);
        } else {
            nx_backend_link_up(in);
        }
        return;
    }
    if (m->data.n > 0) nx_backend_link_receive(in, m->data.p, m->data.n, 0);
}

static void on_data(nx_http_exchange_t *x, const char *data, size_t len, void *arg) {
    post_t *p = arg;
    http_link_t *hl = p->hl;
    if (p->is_json) {
        if (p->body.len + len > MAX_JSON_BODY || nx_buf_append(&p->body, data, len) < 0)
            p->is_json = false; /* dropped: the request fails when the exchange ends */
        return;
    }
    if (!p->is_sse) return;
    while (len > 0 && !hl->down) {
        nx_sse_message_t m;
        int rc = nx_sse_parse(&p->sse, data, len, &m);
        if (rc == NX_AGAIN) return;
        if (rc < 0) {
            nx_log_warn("backend %s: bad event stream: %s", hl->in->name, p->sse.error_message);
            p->is_sse = false;
            nx_sse_parser_dispose(&p->sse);
            return;
        }
        if (p->is_stream)
            stream_event(hl, &m);
        else if (m.data.n > 0) {
            p->got_event = true;
            nx_backend_link_receive(hl->in, m.data.p, m.data.n, p->request_id);
        }
        if (hl->down) return;
        data += rc;
        len -= (size_t)rc;
    }
}

static post_t *submit_get(http_link_t *hl, json_int_t request_id, const char *last_id,
                          bool standalone);

static void on_resume_timer(nx_timer_t *t) {
    resume_t *r = nx_container_of(t, resume_t, timer);
    http_link_t *hl = r->hl;
    nx_list_remove(&r->link);
    json_int_t id = r->request_id;
    uint32_t attempts = r->attempts;
    if (!hl->down && nx_mcp_client_waiting(&hl->in->client, id)) {
        post_t *p = submit_get(hl, id, r->last_id, false);
        if (p == NULL)
            fail_request(hl, id, "cannot resume the response stream", true);
        else
            p->resume_attempts = attempts;
    }
    free(r);
}

/* Plans the resumption of <p>'s stream, which ended before its answer; false when it cannot
 * be resumed (no event id to resume from, or resumed too often without progress). */
static bool schedule_resume(http_link_t *hl, post_t *p) {
    nx_str_t last = nx_sse_parser_last_event_id(&p->sse);
    uint32_t attempts = p->is_resume && !p->got_event ? p->resume_attempts + 1 : 1;
    if (last.n == 0 || last.n >= sizeof(((resume_t *)0)->last_id) || attempts > MAX_RESUMES)
        return false;
    resume_t *r = calloc(1, sizeof(*r));
    if (r == NULL) return false;
    r->hl = hl;
    r->request_id = p->request_id;
    r->attempts = attempts; /* a stream that brought a message resets the count */
    memcpy(r->last_id, last.p, last.n);
    nx_timer_init(&r->timer, on_resume_timer);
    nx_list_insert_tail(&hl->resumes, &r->link);
    int64_t retry = nx_sse_parser_retry_ms(&p->sse);
    nx_shard_timer_start(hl->in->es->shard, &r->timer,
                         retry >= 0 ? (uint64_t)retry : DEFAULT_RETRY_MS);
    return true;
}

static void on_standalone_timer(nx_timer_t *t) {
    http_link_t *hl = nx_container_of(t, http_link_t, standalone_timer);
    if (hl->down || hl->standalone_open || hl->standalone_refused) return;
    if (submit_get(hl, 0, hl->standalone_last_id[0] ? hl->standalone_last_id : NULL, true) != NULL)
        hl->standalone_open = true;
}

/* The standalone stream ended: reopened after the server's retry delay (resuming from its last
 * event), unless the server does not offer one. */
static void standalone_ended(http_link_t *hl, post_t *p, int err) {
    hl->standalone_open = false;
    if (err == 0 && (p->status == 405 || p->status / 100 == 4)) {
        hl->standalone_refused = true; /* "no stream here" (405), or not for us */
    } else if (!hl->down) {
        int64_t retry = p->is_sse ? nx_sse_parser_retry_ms(&p->sse) : -1;
        if (p->is_sse) {
            nx_str_t last = nx_sse_parser_last_event_id(&p->sse);
            if (last.n < sizeof(hl->standalone_last_id)) {
                memcpy(hl->standalone_last_id, last.p, last.n);
                hl->standalone_last_id[last.n] = '\0';
            }
        }
        nx_shard_timer_start(hl->in->es->shard, &hl->standalone_timer,
                             retry >= 0 ? (uint64_t)retry : DEFAULT_RETRY_MS);
    }
    post_free(p);
}

static void on_done(nx_http_exchange_t *x, int err, void *arg) {
    post_t *p = arg;
    http_link_t *hl = p->hl;
    json_int_t id = p->request_id;
    if (p->is_delete || hl->down) {
        bool was_delete = p->is_delete;
        post_free(p);
        if (was_delete) link_end(hl, "session closed", false);
        return;
    }
    if (p->is_standalone) {
        standalone_ended(hl, p, err);
        return;
    }
    if (p->is_probe) {
        bool ok = err == 0 && p->status / 100 == 2;
        nx_backend_instance_t *in = hl->in;
        post_free(p);
        nx_backend_link_probed(in, ok);
        return;
    }
    if (p->is_stream) {
        /* A legacy server's stream carries the whole session: when it ends, so does the link. */
        char m[200];
        const char *why = err ? nx_http_exchange_error(x) : NULL;
        snprintf(m, sizeof(m), "the event stream ended (%s)",
                 err                ? (why ? why : strerror(-err))
                 : p->status != 200 ? "HTTP status not 200"
                                    : "closed by the server");
        post_free(p);
        snprintf(hl->why_buf, sizeof(hl->why_buf), "%s", m);
        link_end(hl, hl->why_buf, false);
        return;
    }
    if (err == 0 && !hl->legacy && p->init_text != NULL && hl->session[0] == '\0' &&
        (p->status == 400 || p->status == 404 || p->status == 405)) {
        /* A server of the 2024-11-05 era refuses a POST of initialize here: speak its way. */
        nx_log_info("backend %s: HTTP %u to initialize; trying the legacy HTTP+SSE transport",
                    hl->in->name, p->status);
        hl->legacy = true;
        hl->init_text = p->init_text;
        hl->init_len = p->init_len;
        hl->init_id = id;
        p->init_text = NULL;
        post_free(p);
        if (open_stream(hl) < 0) link_end(hl, "cannot open the legacy event stream", false);
        return;
    }
    if (err != 0) {
        char m[200];
        const char *why = nx_http_exchange_error(x);
        snprintf(m, sizeof(m), "backend %s: %s", hl->in->name, why ? why : strerror(-err));
        /* Safe to try again elsewhere when the server cannot have seen the request. */
        bool retryable = err == -ECONNREFUSED || err == -ETIMEDOUT ||
                         (err == -ECONNRESET && !nx_http_exchange_got_bytes(x));
        post_free(p);
        fail_request(hl, id, m, retryable);
        return;
    }
    if (p->status == 404 && hl->session[0] != '\0') {
        /* The session expired: a new one, at once (the calls in flight are retried). */
        post_free(p);
        link_end(hl, "the session expired (HTTP 404); starting a new one", true);
        return;
    }
    if (p->status / 100 != 2) {
        char m[200];
        snprintf(m, sizeof(m), "backend %s answered HTTP %u", hl->in->name, p->status);
        bool retryable = p->status == 502 || p->status == 503 || p->status == 504;
        post_free(p);
        fail_request(hl, id, m, retryable);
        return;
    }
    uint16_t status = p->status;
    if (hl->legacy) { /* the answer comes on the event stream */
        post_free(p);
        return;
    }
    if (p->is_sse && id > 0 && nx_mcp_client_waiting(&hl->in->client, id) &&
        schedule_resume(hl, p)) {
        post_free(p); /* the server closed the stream early: it goes on from its last event */
        return;
    }
    if (p->is_json && p->body.len > 0)
        nx_backend_link_receive(hl->in, p->body.data, p->body.len, id);
    post_free(p);
    /* A request whose answer never came (202, an empty or cut stream): it fails now rather
     * than wait for the per-try timeout. fail_request is ignored once answered, since the
     * client no longer waits for that id. */
    if (id > 0 && status != 202)
        fail_request(hl, id, "the backend ended the response without answering", true);
}

static const nx_http_client_ops_t post_ops = {
    .on_head = on_head, .on_data = on_data, .on_done = on_done};

/* ---- sending ---- */

/* What one exchange is. */
typedef struct submission {
    const char *method; /* POST, DELETE, GET */
    const char *text;   /* the JSON-RPC message (POST) */
    size_t len;
    json_int_t request_id;     /* ours, when the message is a request, or the stream resumed */
    const char *last_event_id; /* GET: resume from this event */
    bool standalone;           /* GET: the standalone stream (Streamable HTTP) */
    const char *probe_path;    /* GET: a health check of this path */
    uint32_t timeout_ms;       /* a probe's */
} submission_t;

static post_t *submit(http_link_t *hl, const submission_t *sub) {
    nx_backend_instance_t *in = hl->in;
    /* The name moved (re-resolved in the background): new connections go to the new address. */
    const nx_resolved_t *addr = nx_backend_instance_address(in);
    if (addr->generation != hl->addr_generation &&
        nx_http_pool_set_addr(hl->pool, (const struct sockaddr *)&addr->addr, addr->len) == 0)
        hl->addr_generation = addr->generation;
    post_t *p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    bool get = strcmp(sub->method, "GET") == 0;
    p->hl = hl;
    p->request_id = sub->request_id;
    p->is_delete = strcmp(sub->method, "DELETE") == 0;
    p->is_standalone = get && sub->standalone;
    p->is_resume = get && !sub->standalone && sub->request_id > 0;
    p->is_probe = get && sub->probe_path != NULL;
    p->is_stream = get && hl->legacy && !p->is_probe;
    nx_list_init(&p->link);
    /* The initialize of a Streamable HTTP attempt is kept: a legacy server refuses it, and it
     * then goes again to the endpoint that server announces. */
    if (!hl->legacy && sub->text != NULL && sub->request_id > 0 &&
        in->client.state == NX_MCP_CLIENT_INITIALIZING &&
        (p->init_text = malloc(sub->len)) != NULL) {
        memcpy(p->init_text, sub->text, sub->len);
        p->init_len = sub->len;
    }
    size_t n = hl->header_count;
    nx_http_header_t *h = hl->headers;
    if (sub->text != NULL) {
        h[n++] = (nx_http_header_t){NX_STR("Content-Type"), NX_STR("application/json")};
        h[n++] =
            (nx_http_header_t){NX_STR("Accept"), NX_STR("application/json, text/event-stream")};
    } else if (get && !p->is_probe) {
        h[n++] = (nx_http_header_t){NX_STR("Accept"), NX_STR("text/event-stream")};
    }
    if (sub->last_event_id != NULL)
        h[n++] = (nx_http_header_t){NX_STR("Last-Event-ID"), nx_str_from(sub->last_event_id)};
    if (hl->session[0] != '\0' && !p->is_probe)
        h[n++] = (nx_http_header_t){NX_STR("Mcp-Session-Id"), nx_str_from(hl->session)};
    if (in->client.protocol_version[0] != '\0' && !hl->legacy && !p->is_probe)
        h[n++] = (nx_http_header_t){NX_STR("MCP-Protocol-Version"),
                                    nx_str_from(in->client.protocol_version)};
    nx_http_client_request_t req = {
        .method = sub->method,
        .target = p->is_probe          ? sub->probe_path
                  : hl->legacy && !get ? hl->endpoint
                                       : in->spec->urls[in->replica].path,
        .headers = h,
        .header_count = n,
        .body = sub->text,
        .body_len = sub->len,
        /* A request's time is the backend's per-try timeout (it abandons us); the rest must
         * not linger (a stream's bound is on its head only). */
        .timeout_ms = p->is_probe                   ? sub->timeout_ms
                      : sub->request_id > 0 && !get ? 0
                      : p->is_delete                ? DELETE_TIMEOUT_MS
                                                    : NOTIFY_TIMEOUT_MS,
        .stream = true,
    };
    int rc = nx_http_request(hl->pool, &req, &post_ops, p, &p->x);
    if (rc < 0) {
        free(p->init_text);
        free(p);
        return NULL;
    }
    nx_list_insert_tail(&hl->posts, &p->link);
    return p;
}

static int http_post(http_link_t *hl, const char *method, const char *text, size_t len,
                     json_int_t request_id) {
    submission_t sub = {.method = method, .text = text, .len = len, .request_id = request_id};
    return submit(hl, &sub) ? 0 : -ENOMEM;
}

static post_t *submit_get(http_link_t *hl, json_int_t request_id, const char *last_id,
                          bool standalone) {
    submission_t sub = {.method = "GET",
                        .request_id = request_id,
                        .last_event_id = last_id,
                        .standalone = standalone};
    return submit(hl, &sub);
}

/* Opens a legacy server's event stream. */
static int open_stream(http_link_t *hl) {
    return http_post(hl, "GET", NULL, 0, 0);
}

static int http_send(nx_backend_instance_t *in, const char *text, size_t len,
                     json_int_t request_id) {
    http_link_t *hl = in->link;
    if (hl == NULL || hl->down || (hl->legacy && hl->endpoint == NULL)) return -EPIPE;
    return http_post(hl, "POST", text, len, request_id);
}

static void http_forget(nx_backend_instance_t *in, json_int_t request_id) {
    http_link_t *hl = in->link;
    if (hl == NULL) return;
    nx_list_t *pos;
    nx_list_foreach(pos, &hl->posts) {
        post_t *p = nx_container_of(pos, post_t, link);
        if (p->request_id != request_id) continue;
        nx_http_exchange_cancel(p->x); /* its stream may stay open: the connection goes */
        post_free(p);
        return;
    }
}

/* ---- life ---- */

static int http_start(nx_backend_instance_t *in) {
    const nx_backend_url_t *u = &in->spec->urls[in->replica];
    const nx_resolved_t *addr = nx_backend_instance_address(in);
    http_link_t *hl = calloc(1, sizeof(*hl));
    if (hl == NULL) return -ENOMEM;
    hl->in = in;
    nx_list_init(&hl->posts);
    nx_list_init(&hl->resumes);
    nx_timer_init(&hl->down_timer, on_down_timer);
    nx_timer_init(&hl->standalone_timer, on_standalone_timer);
    char authority[300];
    bool v6 = strchr(u->host, ':') != NULL;
    snprintf(authority, sizeof(authority), v6 ? "[%s]:%u" : "%s:%u", u->host, u->port);
    const nx_backend_spec_t *sp = in->spec;
    nx_http_pool_opts_t opts = {.max_connections = sp->pool_max_connections,
                                .max_idle = sp->pool_max_idle,
                                .idle_timeout_ms = sp->pool_idle_timeout_ms,
                                .connect_timeout_ms = sp->connect_timeout_ms,
                                .max_requests_per_conn = sp->pool_max_requests};
    /* The configured headers, then room for the (at most 5) each request adds. */
    hl->header_count = sp->header_field_count;
    hl->headers = calloc(hl->header_count + 5, sizeof(*hl->headers));
    if (hl->headers != NULL && hl->header_count > 0)
        memcpy(hl->headers, sp->header_fields, hl->header_count * sizeof(*hl->headers));
    if (hl->headers == NULL ||
        (hl->pool = nx_http_pool_new(in->es->shard, (const struct sockaddr *)&addr->addr, addr->len,
                                     authority, &opts)) == NULL) {
        free(hl->headers);
        free(hl);
        return -ENOMEM;
    }
    hl->addr_generation = addr->generation;
    in->link = hl;
    if (sp->transport == NX_BACKEND_SSE) {
        /* The handshake starts once the server has said where to POST. */
        hl->legacy = true;
        if (open_stream(hl) < 0) {
            in->link = NULL;
            link_free(hl);
            return -ENOMEM;
        }
        return 0;
    }
    nx_backend_link_up(in);
    return 0;
}

/* A health check: GET of the configured path; 2xx passes, anything else (or no answer within
 * <timeout_ms>) fails. */
static void http_probe(nx_backend_instance_t *in, uint32_t timeout_ms) {
    http_link_t *hl = in->link;
    submission_t sub = {
        .method = "GET", .probe_path = in->spec->health_path, .timeout_ms = timeout_ms};
    if (hl == NULL || hl->down || submit(hl, &sub) == NULL) nx_backend_link_probed(in, false);
}

/* The session is initialized: open the standalone stream (Streamable HTTP only; a legacy
 * server's one stream carries everything already). */
static void http_ready(nx_backend_instance_t *in) {
    http_link_t *hl = in->link;
    if (hl == NULL || hl->legacy || hl->standalone_open || hl->standalone_refused) return;
    nx_shard_timer_start(in->es->shard, &hl->standalone_timer, 0);
}

static void http_drain(nx_backend_instance_t *in) {
    http_link_t *hl = in->link;
    if (hl == NULL || hl->down) return;
    /* Tell the server the session is over (it frees it now rather than at its idle timeout);
     * the link ends when it answers, or at once without a session. */
    if (hl->legacy || hl->session[0] == '\0' || http_post(hl, "DELETE", NULL, 0, 0) < 0)
        link_end(hl, "stopped", false);
}

static void http_destroy(nx_backend_instance_t *in) {
    if (in->link != NULL) link_free(in->link);
    in->link = NULL;
}

const nx_backend_link_ops_t nx_backend_http_link = {
    .name = "http",
    .start = http_start,
    .send = http_send,
    .forget = http_forget,
    .probe = http_probe,
    .ready = http_ready,
    .drain = http_drain,
    .destroy = http_destroy,
};
