/* MCP over HTTP on /mcp of both ports, and the legacy HTTP+SSE transport (/sse + /messages).
 *
 * Streamable HTTP: POST carries one JSON-RPC message (a batch for 2025-03-26). A request is
 * answered with application/json when nothing else must be said first; as soon as its handler
 * sends something related (progress, a log message, a server-to-client request) the answer
 * turns into a text/event-stream carrying those messages and then the response. GET opens the
 * session's standalone stream (unsolicited messages) or, with Last-Event-ID, resumes a stream
 * from the session's bounded event log. DELETE ends a session.
 *
 * Sessions live on the shard that created them. A request that lands on another shard (the
 * "origin") is forwarded through the mailbox to the owner, which processes it and sends the
 * answer back as a sequence of frames (open, events, final), so clients never see which thread
 * they hit. Frames to one shard keep their order: when its mailbox is full they wait in this
 * shard's outbox rather than overtake each other. */
#include "mcp_http.h"

#include "jsonrpc.h"
#include "log.h"
#include "mcp_events.h"
#include "mcp_rules.h"
#include "mcp_server.h"
#include "mcp_ws.h"
#include "nexus/errors.h"
#include "sse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_HEADER "Mcp-Session-Id"
#define MISSING_SESSION "the " SESSION_HEADER " header is required after initialize"
#define STREAM_HEADERS "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
#define EVENT_LOG_BYTES (4u << 20) /* per session, whatever mcp.stream_buffer says */

typedef struct mcp_forward mcp_forward_t;

/* Room for a Last-Event-ID this server issued (a decimal uint64). */
#define EVENT_ID_MAX 24

/* Copies the Last-Event-ID header <v> into <out>; one too long to be ours becomes "x", which
 * names no event (the client then gets 404), rather than a truncated id naming another. */
static void copy_event_id(char out[EVENT_ID_MAX], nx_str_t v) {
    if (v.n >= EVENT_ID_MAX) {
        snprintf(out, EVENT_ID_MAX, "x");
        return;
    }
    if (v.n > 0) memcpy(out, v.p, v.n);
    out[v.n] = '\0';
}
typedef struct http_session http_session_t;

/* Where an exchange's output goes. */
typedef enum sink_kind {
    SINK_HTTP,     /* the request's connection on this shard */
    SINK_REMOTE,   /* frames to the origin shard, which owns the connection */
    SINK_DETACHED, /* the client went away from a resumable stream: events go to the log only */
    SINK_SESSION,  /* legacy HTTP+SSE: everything goes on the session's standalone stream */
} sink_kind_t;

/* What the owner tells the origin about a forwarded exchange. */
typedef enum frame_kind {
    FRAME_RESET, /* drop the connection (fault injection) */
    FRAME_OPEN,  /* start the event stream (headers only) */
    FRAME_EVENT, /* SSE bytes */
    FRAME_FINAL, /* the last bytes: the SSE tail, or a whole response when nothing streamed */
} frame_kind_t;

/* One request or stream being processed on the shard that owns its session. */
typedef struct mcp_exchange {
    nx_list_t link;         /* in es->mcp_owned while it waits for a handler or streams */
    nx_list_t session_link; /* in hs->exchanges (POST streams) or hs->standalone (GET) */
    nx_engine_shard_t *es;
    http_session_t *hs; /* NULL without a session, or once it ended */
    uint32_t stream;    /* its number in the session's event log */
    sink_kind_t sink;
    nx_http_conn_t *hc; /* SINK_HTTP */
    bool streaming;     /* an event stream has started on the sink */
    mcp_forward_t *fwd; /* SINK_REMOTE: pointer valid on the origin only */
    nx_engine_shard_t *fwd_origin;
    uint64_t fwd_seq;
    char session_id[NX_MCP_SESSION_ID_LEN + 1];
    bool is_init;
    bool stateless;              /* a 2026-07-28 request: errors map to HTTP statuses */
    bool standalone;             /* a GET stream: never ends by itself */
    nx_mcp_call_t *pending;      /* a handler still running */
    json_t *batch_answers;       /* a batch being answered: the responses so far */
    uint32_t batch_waiting;      /* responses of the batch still to come */
    nx_mcp_call_t **batch_calls; /* a batch's handlers still running (NULL once answered) */
    uint32_t batch_count;
} mcp_exchange_t;

/* The transport state of one session; owned by its nx_mcp_session_t (user), freed by the
 * table's release hook. */
struct http_session {
    nx_mcp_session_t *session;
    nx_engine_shard_t *es;
    nx_mcp_peer_t peer;
    nx_mcp_event_log_t events;
    uint32_t next_stream; /* stream numbers; 0 is never used */
    nx_list_t exchanges;  /* POST exchanges with a stream number, alive */
    nx_list_t standalone; /* GET streams: unsolicited messages go to the oldest */
    bool legacy_sse;      /* created by GET /sse: answers go on the standalone stream */
};

/* A request forwarded to the owner shard. The origin owns it: freed when the final frame
 * arrives. <hc> and <streaming> are touched only on the origin. */
struct mcp_forward {
    nx_msg_t msg;
    nx_engine_shard_t *origin, *owner;
    uint64_t seq; /* unique per origin */
    nx_http_conn_t *hc;
    bool streaming;
    enum { FWD_POST, FWD_DELETE, FWD_GET, FWD_MESSAGES, FWD_STATELESS } kind;
    char session_id[NX_MCP_SESSION_ID_LEN + 1];
    char last_event_id[EVENT_ID_MAX];
    char *body;
    size_t body_len;
};

/* Part of a forwarded exchange's answer, on its way back to the origin. */
typedef struct fwd_frame {
    nx_msg_t msg;
    nx_list_t link; /* in the owner's outbox while the origin's mailbox is full */
    nx_engine_shard_t *origin;
    mcp_forward_t *fwd;
    frame_kind_t kind;
    int status;
    char *data;
    size_t len;
    char extra[128];
} fwd_frame_t;

static void on_client_gone(nx_http_conn_t *hc, void *arg);
static void on_forward_client_gone(nx_http_conn_t *hc, void *arg);
static void post_frame(nx_engine_shard_t *es, fwd_frame_t *fr);
static void forward(nx_engine_shard_t *es, nx_engine_shard_t *owner, nx_http_conn_t *hc,
                    nx_str_t sid, nx_str_t body, int kind, nx_str_t last_event_id);

/* ---- writing to a connection (on the shard that owns it) ---- */

/* Applies one frame of an answer to <hc>, whose stream state is <*streaming>. */
static void deliver(nx_http_conn_t *hc, bool *streaming, frame_kind_t kind, int status,
                    const char *p, size_t n, const char *extra, nx_http_abort_fn abort, void *arg) {
    if (kind == FRAME_RESET) {
        nx_http_reset(hc);
        return;
    }
    if (kind != FRAME_FINAL || *streaming || status == 0) {
        if (!*streaming) {
            char headers[256];
            snprintf(headers, sizeof(headers), "%s" STREAM_HEADERS, extra ? extra : "");
            nx_http_stream_begin(hc, 200, "text/event-stream", headers, abort, arg);
            *streaming = true;
        }
        if (n > 0) nx_http_stream_write(hc, p, n);
        if (kind == FRAME_FINAL) nx_http_stream_end(hc);
        return;
    }
    nx_http_respond(hc, status, n ? "application/json" : NULL, p, n,
                    extra && extra[0] ? extra : NULL);
}

/* ---- exchanges ---- */

static mcp_exchange_t *exchange_new(nx_engine_shard_t *es) {
    mcp_exchange_t *ex = calloc(1, sizeof(*ex));
    if (ex == NULL) return NULL;
    nx_list_init(&ex->link);
    nx_list_init(&ex->session_link);
    ex->es = es;
    return ex;
}

/* Unlinks and frees <ex>; the shard may now be able to stop. */
static void exchange_free(mcp_exchange_t *ex) {
    nx_engine_shard_t *es = ex->es;
    bool owned = nx_list_linked(&ex->link);
    if (owned) nx_list_remove(&ex->link);
    if (nx_list_linked(&ex->session_link)) nx_list_remove(&ex->session_link);
    json_decref(ex->batch_answers);
    free(ex->batch_calls);
    free(ex);
    if (owned) nx_engine_shard_maybe_stop(es);
}

/* Sends one frame of <ex>'s answer to its sink. */
static void sink_send(mcp_exchange_t *ex, frame_kind_t kind, int status, const char *p, size_t n,
                      const char *extra) {
    switch (ex->sink) {
    case SINK_HTTP:
        if (ex->hc != NULL)
            deliver(ex->hc, &ex->streaming, kind, status, p, n, extra, on_client_gone, ex);
        break;
    case SINK_REMOTE: {
        fwd_frame_t *fr = calloc(1, sizeof(*fr));
        if (fr == NULL || (n > 0 && (fr->data = malloc(n)) == NULL)) {
            free(fr);
            if (kind != FRAME_FINAL) break; /* an event lost to ENOMEM; the answer still comes */
            /* The final frame must arrive or the origin waits forever: retry without data. */
            fr = calloc(1, sizeof(*fr));
            if (fr == NULL) {
                nx_log_error("mcp: out of memory answering a forwarded request");
                break;
            }
            status = 503;
            n = 0;
        }
        if (n > 0) memcpy(fr->data, p, n);
        fr->len = n;
        fr->kind = kind;
        fr->status = status;
        fr->origin = ex->fwd_origin;
        fr->fwd = ex->fwd;
        snprintf(fr->extra, sizeof(fr->extra), "%s", extra ? extra : "");
        nx_list_init(&fr->link);
        post_frame(ex->es, fr);
        ex->streaming = ex->streaming || kind != FRAME_FINAL;
        break;
    }
    case SINK_DETACHED:
    case SINK_SESSION:
        break;
    }
}

/* Sends one frame of <ex>'s answer to its sink; FRAME_FINAL frees <ex>. */
static void sink_write(mcp_exchange_t *ex, frame_kind_t kind, int status, const char *p, size_t n,
                       const char *extra) {
    sink_send(ex, kind, status, p, n, extra);
    if (kind == FRAME_FINAL) exchange_free(ex);
}

/* Answers <ex> with <msg> (stolen) as its whole response: JSON, or an event that ends the
 * stream when one has started. */
static void finish_json(mcp_exchange_t *ex, int status, json_t *msg, const char *extra);

/* Encodes <msg> (stolen) as an SSE event of <ex>'s stream, recorded in the session's log when
 * there is one so that a client can resume after it; returns the event bytes in <out>. */
static int encode_event(mcp_exchange_t *ex, json_t *msg, nx_buf_t *out) {
    size_t len = 0;
    char *text = msg ? nx_rpc_encode(msg, &len) : NULL;
    json_decref(msg);
    if (text == NULL) return -ENOMEM;
    char id[24] = "";
    if (ex->hs != NULL && ex->stream != 0) {
        uint64_t seq = nx_mcp_event_log_append(&ex->hs->events, ex->stream, text, len);
        if (seq > 0) snprintf(id, sizeof(id), "%llu", (unsigned long long)seq);
    }
    nx_sse_event_t ev = {
        .id = id[0] ? id : NULL, .event = "message", .data = text, .data_len = len};
    int rc = nx_sse_encode(out, &ev);
    free(text);
    return rc;
}

/* Clients of revision 2025-11-25 and later understand priming events (an id with empty data):
 * each request stream starts with one, so that it can be resumed before its first message. */
#define PRIMING_RETRY_MS 1000u

static bool primes_streams(const mcp_exchange_t *ex) {
    return ex->hs != NULL && ex->stream != 0 &&
           strcmp(ex->hs->peer.protocol_version, "2025-11-25") >= 0;
}

/* Sends a priming event on <ex>'s stream: a logged id, a retry delay, no message. */
static void send_priming(mcp_exchange_t *ex, uint32_t retry_ms) {
    uint64_t seq = nx_mcp_event_log_append(&ex->hs->events, ex->stream, "", 0);
    if (seq == 0) return;
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)seq);
    nx_buf_t out;
    nx_buf_init(&out);
    nx_sse_event_t ev = {.id = id, .retry_ms = retry_ms, .data = "", .data_len = 0};
    if (nx_sse_encode(&out, &ev) == 0) sink_send(ex, FRAME_EVENT, 0, out.data, out.len, NULL);
    nx_buf_dispose(&out);
}

/* Gives <ex> a stream number in its session (its events become resumable) and lists it there.
 * Requests' streams get even numbers, standalone streams odd ones, so that a Last-Event-ID
 * still tells which kind of stream it resumes after the request has ended. */
static void number_stream(mcp_exchange_t *ex, nx_list_t *list) {
    if (ex->hs == NULL || ex->stream != 0) return;
    http_session_t *hs = ex->hs;
    hs->next_stream += 1 + ((hs->next_stream & 1u) == (ex->standalone ? 1u : 0u));
    ex->stream = hs->next_stream;
    if (!nx_list_linked(&ex->session_link)) nx_list_insert_tail(list, &ex->session_link);
}

static mcp_exchange_t *standalone_of(http_session_t *hs) {
    if (hs == NULL || nx_list_empty(&hs->standalone)) return NULL;
    return nx_container_of(hs->standalone.next, mcp_exchange_t, session_link);
}

/* Sends <msg> (stolen) on <ex>'s stream before its final answer. */
static void send_event(mcp_exchange_t *ex, json_t *msg) {
    if (ex->sink == SINK_SESSION) {
        mcp_exchange_t *st = standalone_of(ex->hs);
        if (st != NULL)
            send_event(st, msg);
        else
            json_decref(msg);
        return;
    }
    if (ex->hs != NULL) number_stream(ex, &ex->hs->exchanges);
    if (!ex->streaming && primes_streams(ex)) send_priming(ex, PRIMING_RETRY_MS);
    nx_buf_t out;
    nx_buf_init(&out);
    if (encode_event(ex, msg, &out) == 0) sink_write(ex, FRAME_EVENT, 0, out.data, out.len, NULL);
    nx_buf_dispose(&out);
}

/* The request's handler asks the client to poll (SEP-1699): prime the stream with a resumable
 * id and a retry delay, end it, and keep the handler running detached; what it sends next waits
 * in the event log for the client's GET with Last-Event-ID. */
static void close_stream(void *transport, uint32_t retry_ms) {
    mcp_exchange_t *ex = transport;
    if (ex->hs == NULL || ex->batch_answers != NULL ||
        (ex->sink != SINK_HTTP && ex->sink != SINK_REMOTE))
        return;
    number_stream(ex, &ex->hs->exchanges);
    send_priming(ex, retry_ms);
    sink_send(ex, FRAME_FINAL, 200, NULL, 0, NULL);
    if (ex->sink == SINK_HTTP) ex->hc = NULL;
    ex->sink = SINK_DETACHED;
}

static void finish_json(mcp_exchange_t *ex, int status, json_t *msg, const char *extra) {
    if (ex->sink == SINK_SESSION) {
        /* Legacy HTTP+SSE: the POST was answered 202 already; the answer is an event. */
        if (msg != NULL) send_event(ex, msg);
        exchange_free(ex);
        return;
    }
    if (ex->streaming || ex->sink == SINK_DETACHED) {
        nx_buf_t out;
        nx_buf_init(&out);
        if (msg != NULL) encode_event(ex, msg, &out);
        sink_write(ex, FRAME_FINAL, 200, out.data, out.len, NULL);
        nx_buf_dispose(&out);
        return;
    }
    size_t len = 0;
    char *text = msg ? nx_rpc_encode(msg, &len) : NULL;
    json_decref(msg);
    if (msg != NULL && text == NULL) status = 500;
    sink_write(ex, FRAME_FINAL, status, text, len, extra);
    free(text);
}

static void finish_rpc_error(mcp_exchange_t *ex, int status, int code, const char *message,
                             const char *extra) {
    finish_json(ex, status, nx_rpc_error_new(NULL, code, message, NULL), extra);
}

static void finish_empty(mcp_exchange_t *ex, int status) {
    finish_json(ex, status, NULL, NULL);
}

/* Stops <ex>'s handler (if any) and ends its answer with a 503 or, when streaming, the end of
 * the stream. */
static void cancel_calls(mcp_exchange_t *ex) {
    if (ex->pending != NULL) nx_mcp_call_cancel(ex->pending);
    ex->pending = NULL;
    for (uint32_t i = 0; i < ex->batch_count; i++) {
        if (ex->batch_calls[i] != NULL) nx_mcp_call_cancel(ex->batch_calls[i]);
        ex->batch_calls[i] = NULL;
    }
}

static void cancel_exchange(mcp_exchange_t *ex, const char *why) {
    cancel_calls(ex);
    if (ex->standalone || ex->streaming) {
        sink_write(ex, FRAME_FINAL, 200, NULL, 0, NULL);
        return;
    }
    finish_rpc_error(ex, 503, NX_RPC_INTERNAL_ERROR, why, "Retry-After: 1\r\n");
}

void nx_mcp_http_cancel_owned(nx_engine_shard_t *es) {
    nx_list_t *n;
    while ((n = es->mcp_owned.next) != &es->mcp_owned) {
        cancel_exchange(nx_container_of(n, mcp_exchange_t, link),
                        "the server is shutting down; the call was cancelled");
    }
}

void nx_mcp_http_drain(nx_engine_shard_t *es) {
    /* Standalone streams never end by themselves: end them now so the drain can finish. */
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &es->mcp_owned) {
        mcp_exchange_t *ex = nx_container_of(pos, mcp_exchange_t, link);
        if (ex->standalone) cancel_exchange(ex, "draining");
    }
}

/* The client of a local exchange went away. A stream whose events can be resumed keeps its
 * handler running (the client may come back with Last-Event-ID); anything else is cancelled. */
static void on_client_gone(nx_http_conn_t *hc, void *arg) {
    mcp_exchange_t *ex = arg;
    ex->hc = NULL;
    if (ex->pending != NULL && ex->stream != 0 && !ex->standalone) {
        ex->sink = SINK_DETACHED;
        return;
    }
    cancel_calls(ex);
    /* A legacy HTTP+SSE session lives exactly as long as its event stream. */
    http_session_t *legacy = ex->standalone && ex->hs && ex->hs->legacy_sse ? ex->hs : NULL;
    exchange_free(ex);
    if (legacy != NULL) nx_mcp_session_close(&legacy->es->sessions, legacy->session);
}

/* ---- sessions ---- */

/* Unsolicited messages of a session go on its standalone stream when one is open. */
static bool session_push(nx_mcp_peer_t *peer, json_t *msg) {
    http_session_t *hs = peer->owner;
    mcp_exchange_t *st = standalone_of(hs);
    if (st == NULL) {
        json_decref(msg);
        return false;
    }
    send_event(st, msg);
    return true;
}

static void release_session(nx_mcp_session_t *s, void *arg) {
    http_session_t *hs = s->user;
    if (hs == NULL) return;
    s->user = NULL;
    nx_list_t *n;
    while ((n = hs->exchanges.next) != &hs->exchanges) {
        mcp_exchange_t *ex = nx_container_of(n, mcp_exchange_t, session_link);
        nx_list_remove(&ex->session_link);
        ex->hs = NULL;
        ex->stream = 0;
        if (ex->sink == SINK_DETACHED) cancel_exchange(ex, "the session ended");
    }
    while ((n = hs->standalone.next) != &hs->standalone) {
        mcp_exchange_t *ex = nx_container_of(n, mcp_exchange_t, session_link);
        nx_list_remove(&ex->session_link);
        ex->hs = NULL;
        cancel_exchange(ex, "the session ended");
    }
    nx_mcp_peer_dispose(&hs->peer);
    nx_mcp_event_log_dispose(&hs->events);
    free(hs);
}

void nx_mcp_http_shard_init(nx_engine_shard_t *es) {
    nx_mcp_sessions_on_release(&es->sessions, release_session, es);
    nx_list_init(&es->mcp_outbox);
}

/* Creates a session with its transport state; 0, or answers 503 and returns -1. */
static int create_session(mcp_exchange_t *ex, bool legacy_sse) {
    nx_engine_shard_t *es = ex->es;
    nx_mcp_session_t *s = NULL;
    int rc = nx_mcp_session_create(&es->sessions, nx_shard_now_ms(es->shard), &s);
    http_session_t *hs = rc == 0 ? calloc(1, sizeof(*hs)) : NULL;
    if (hs == NULL ||
        nx_mcp_event_log_init(&hs->events, es->config->config.mcp_limits.stream_buffer,
                              EVENT_LOG_BYTES) < 0) {
        free(hs);
        if (s != NULL) nx_mcp_session_close(&es->sessions, s);
        finish_rpc_error(ex, 503, NX_RPC_INTERNAL_ERROR,
                         rc == NX_EFULL ? "too many MCP sessions on this server; retry later"
                                        : "cannot create a session",
                         "Retry-After: 1\r\n");
        return -1;
    }
    hs->session = s;
    hs->es = es;
    hs->legacy_sse = legacy_sse;
    nx_list_init(&hs->exchanges);
    nx_list_init(&hs->standalone);
    nx_mcp_peer_init(&hs->peer, session_push, hs);
    s->user = hs;
    ex->hs = hs;
    memcpy(ex->session_id, s->id, sizeof(ex->session_id));
    return 0;
}

/* Finds the session of <ex> (404 answered and NULL when unknown or ended). */
static http_session_t *find_session(mcp_exchange_t *ex) {
    nx_mcp_session_t *s = nx_mcp_session_find(&ex->es->sessions, nx_str_from(ex->session_id),
                                              nx_shard_now_ms(ex->es->shard));
    if (s == NULL || s->user == NULL) {
        finish_rpc_error(ex, 404, NX_RPC_INVALID_REQUEST,
                         "unknown or terminated session: send initialize to start a new one", NULL);
        return NULL;
    }
    ex->hs = s->user;
    return ex->hs;
}

/* ---- processing on the owner shard ---- */

/* Adds response <msg> (stolen) of a batch element; the batch is answered with the last one. */
static void batch_answer(mcp_exchange_t *ex, json_t *msg) {
    if (msg != NULL) json_array_append_new(ex->batch_answers, msg);
    if (--ex->batch_waiting > 0) return;
    json_t *all = ex->batch_answers;
    ex->batch_answers = NULL;
    if (json_array_size(all) == 0) {
        json_decref(all);
        finish_empty(ex, 202);
        return;
    }
    finish_json(ex, 200, all, NULL);
}

/* The HTTP status of a 2026-07-28 answer: errors of the request's form are 400, an unknown
 * method 404; everything else, tool failures and missing resources included, is 200. */
static int stateless_status(const json_t *response) {
    json_int_t code =
        json_integer_value(json_object_get(json_object_get(response, "error"), "code"));
    switch (code) {
    case NX_RPC_METHOD_NOT_FOUND:
        return 404;
    case NX_RPC_PARSE_ERROR:
    case NX_RPC_INVALID_REQUEST:
    case NX_RPC_HEADER_MISMATCH:
    case NX_RPC_MISSING_CAPABILITY:
    case NX_RPC_UNSUPPORTED_VERSION:
        return 400;
    default:
        return 200;
    }
}

/* The MCP server's reply function: the response to the request of <transport>. */
static void on_reply(void *transport, json_t *response) {
    mcp_exchange_t *ex = transport;
    ex->pending = NULL;
    json_t *id = json_object_get(response, "id");
    for (uint32_t i = 0; i < ex->batch_count; i++) {
        if (ex->batch_calls[i] != NULL && json_equal(nx_mcp_call_id(ex->batch_calls[i]), id)) {
            ex->batch_calls[i] = NULL;
            break;
        }
    }
    if (ex->batch_answers != NULL) {
        batch_answer(ex, response);
        return;
    }
    char extra[96] = "";
    if (ex->is_init) snprintf(extra, sizeof(extra), SESSION_HEADER ": %s\r\n", ex->session_id);
    finish_json(ex, ex->stateless ? stateless_status(response) : 200, response, extra);
}

static void on_related(void *transport, json_t *msg) {
    send_event(transport, msg);
}

/* nx_mcp_call_drop_connection: the connection goes, and with it (through the client-gone path)
 * the call. */
static void on_drop(void *transport) {
    mcp_exchange_t *ex = transport;
    if (ex->sink == SINK_HTTP || ex->sink == SINK_REMOTE)
        sink_send(ex, FRAME_RESET, 0, NULL, 0, NULL);
}

/* Keeps <ex> alive while its handler runs: on the shard's list, and for a local connection,
 * deferred so that the client's departure reaches us. */
static void park(mcp_exchange_t *ex) {
    if (!nx_list_linked(&ex->link)) nx_list_insert_tail(&ex->es->mcp_owned, &ex->link);
    if (ex->sink == SINK_HTTP && ex->hc != NULL && !ex->streaming)
        nx_http_defer(ex->hc, on_client_gone, ex);
}

/* notifications/cancelled {requestId}: stops that request of the session, wherever it runs. */
static void cancel_request(http_session_t *hs, const json_t *params) {
    json_t *id = json_object_get(params, "requestId");
    if (hs == NULL || id == NULL) return;
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &hs->es->mcp_owned) {
        mcp_exchange_t *ex = nx_container_of(pos, mcp_exchange_t, link);
        if (ex->hs == hs && ex->pending != NULL && ex->batch_answers == NULL &&
            json_equal(nx_mcp_call_id(ex->pending), id)) {
            cancel_exchange(ex, "cancelled by the client");
            return;
        }
    }
}

static void process(mcp_exchange_t *ex, const char *body, size_t len, bool legacy_messages) {
    nx_engine_shard_t *es = ex->es;
    nx_rpc_decode_opts_t opts = {.allow_batch = true};
    nx_rpc_batch_t batch;
    int rc = nx_rpc_decode(body, len, &opts, &batch);
    if (rc == -ENOMEM) {
        finish_rpc_error(ex, 503, NX_RPC_INTERNAL_ERROR, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    const nx_rpc_msg_t *first = &batch.msgs[0];
    if (rc < 0 || (!batch.is_batch && first->kind == NX_RPC_INVALID)) {
        finish_json(ex, 400, nx_rpc_reject_new(first), NULL);
        nx_rpc_batch_dispose(&batch);
        return;
    }
    bool init = !batch.is_batch && first->kind == NX_RPC_REQUEST &&
                strcmp(first->method, "initialize") == 0;
    if (legacy_messages) {
        if (find_session(ex) == NULL) goto out;
        /* The legacy transport answers every POST 202 and replies on the event stream. */
        sink_send(ex, FRAME_FINAL, 202, NULL, 0, NULL);
        ex->sink = SINK_SESSION;
        ex->hc = NULL;
    } else if (init) {
        if (create_session(ex, false) < 0) goto out;
        ex->is_init = true;
    } else if (ex->session_id[0] == '\0') {
        finish_rpc_error(ex, 400, NX_RPC_INVALID_REQUEST, MISSING_SESSION, NULL);
        goto out;
    } else if (find_session(ex) == NULL) {
        goto out;
    }
    if (batch.is_batch) {
        const char *v = ex->hs ? ex->hs->peer.protocol_version : "";
        if (strcmp(v, "2025-03-26") != 0) {
            finish_json(ex, 400,
                        nx_rpc_error_new(NULL, NX_RPC_INVALID_REQUEST,
                                         "JSON-RPC batches are only allowed in protocol "
                                         "revision 2025-03-26",
                                         NULL),
                        NULL);
            goto out;
        }
        /* Pending elements are found again by id when they answer: ids must be unique. */
        for (uint32_t i = 0; i < batch.count; i++) {
            for (uint32_t j = 0; j < i; j++) {
                if (batch.msgs[i].kind == NX_RPC_REQUEST && batch.msgs[j].kind == NX_RPC_REQUEST &&
                    json_equal(batch.msgs[i].id, batch.msgs[j].id)) {
                    finish_json(ex, 400,
                                nx_rpc_error_new(NULL, NX_RPC_INVALID_REQUEST,
                                                 "a batch must not repeat a request id", NULL),
                                NULL);
                    goto out;
                }
            }
        }
        ex->batch_calls = calloc(batch.count, sizeof(*ex->batch_calls));
        ex->batch_answers = json_array();
        if (ex->batch_calls == NULL || ex->batch_answers == NULL) {
            finish_rpc_error(ex, 503, NX_RPC_INTERNAL_ERROR, "out of memory", "Retry-After: 1\r\n");
            goto out;
        }
        ex->batch_count = batch.count;
        ex->batch_waiting = 1; /* released after the loop */
    }
    nx_mcp_request_ctx_t ctx = {.reply = on_reply,
                                .send = on_related,
                                .close_stream = close_stream,
                                .drop = on_drop,
                                .transport = ex,
                                .peer = ex->hs ? &ex->hs->peer : NULL};
    uint32_t requests = 0;
    for (uint32_t i = 0; i < batch.count; i++) {
        const nx_rpc_msg_t *msg = &batch.msgs[i];
        if (msg->kind == NX_RPC_NOTIFICATION &&
            strcmp(msg->method, "notifications/cancelled") == 0) {
            cancel_request(ex->hs, msg->params);
            continue;
        }
        if (msg->kind == NX_RPC_REQUEST || msg->kind == NX_RPC_INVALID) {
            requests++;
            if (ex->batch_answers != NULL) ex->batch_waiting++;
        }
        nx_mcp_call_t *pending = NULL;
        nx_mcp_dispatch_t d = nx_mcp_server_dispatch(es->engine->mcp, msg, &ctx, &pending);
        /* A batch lives until its last element answers, after this loop; a single request's
         * <ex> is freed once answered, so look at it only while it is pending. */
        if (batch.is_batch) {
            if (d == NX_MCP_PENDING) ex->batch_calls[i] = pending;
        } else if (d != NX_MCP_NO_REPLY) {
            if (d == NX_MCP_PENDING) {
                ex->pending = pending;
                park(ex);
            }
            goto out;
        }
    }
    if (ex->batch_answers != NULL) {
        if (ex->batch_waiting > 1) park(ex);
        batch_answer(ex, NULL);
    } else if (requests == 0) {
        finish_empty(ex, 202); /* notifications and responses only */
    }
out:
    nx_rpc_batch_dispose(&batch);
}

static nx_str_t request_header(void *req, const char *name) {
    return nx_http_request_header(req, name);
}

/* Dispatches a validated 2026-07-28 request. */
static void dispatch_stateless(mcp_exchange_t *ex, const nx_rpc_msg_t *msg) {
    ex->stateless = true;
    nx_mcp_request_ctx_t ctx = {
        .reply = on_reply, .send = on_related, .drop = on_drop, .transport = ex, .stateless = true};
    nx_mcp_call_t *pending = NULL;
    if (nx_mcp_server_dispatch(ex->es->engine->mcp, msg, &ctx, &pending) == NX_MCP_PENDING) {
        ex->pending = pending;
        park(ex);
    }
}

/* A forwarded 2026-07-28 request (validated on the shard that received it). */
static void process_forwarded_stateless(mcp_exchange_t *ex, const char *body, size_t len) {
    nx_rpc_batch_t batch;
    if (nx_rpc_decode(body, len, NULL, &batch) < 0 || batch.msgs[0].kind != NX_RPC_REQUEST) {
        ex->stateless = true;
        finish_rpc_error(ex, 400, NX_RPC_INVALID_REQUEST, "not a request", NULL);
    } else {
        dispatch_stateless(ex, &batch.msgs[0]);
    }
    nx_rpc_batch_dispose(&batch);
}

/* A 2026-07-28 request: no session, everything about the client in _meta, the routing headers
 * checked against the body. Checked in the order the spec fixes so that each mistake gets its
 * own error (and every error echoes the request's id). */
static void process_stateless(mcp_exchange_t *ex, nx_http_request_t *req) {
    nx_rpc_batch_t batch;
    int rc = nx_rpc_decode(req->body.p, req->body.n, NULL, &batch);
    if (rc == -ENOMEM) {
        finish_rpc_error(ex, 503, NX_RPC_INTERNAL_ERROR, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    const nx_rpc_msg_t *msg = &batch.msgs[0];
    ex->stateless = true;
    if (rc < 0 || msg->kind == NX_RPC_INVALID) {
        finish_json(ex, 400, nx_rpc_reject_new(msg), NULL);
        goto out;
    }
    if (msg->kind != NX_RPC_REQUEST) {
        finish_empty(ex, 202); /* notifications and responses: nothing to answer */
        goto out;
    }
    char text[320];
    json_t *data = NULL;
    nx_str_t header = nx_http_request_header(req, "MCP-Protocol-Version");
    int code = 0;
    if (header.p == NULL) {
        code = NX_RPC_HEADER_MISMATCH;
        snprintf(text, sizeof(text), "the MCP-Protocol-Version header is required (%s)",
                 NX_MCP_MODERN_VERSION);
    }
    if (code == 0) code = nx_mcp_check_modern_meta(msg->params, header, text, sizeof(text), &data);
    if (code == 0)
        code = nx_mcp_check_routing_headers(nx_http_request_header(req, "Mcp-Method"),
                                            nx_http_request_header(req, "Mcp-Name"), msg->method,
                                            msg->params, text, sizeof(text));
    if (code == 0 && strcmp(msg->method, "tools/call") == 0)
        code = nx_mcp_server_check_param_headers(
            ex->es->engine->mcp, json_string_value(json_object_get(msg->params, "name")),
            json_object_get(msg->params, "arguments"), request_header, req, text, sizeof(text));
    if (code != 0) {
        finish_json(ex, 400, nx_rpc_error_new(msg->id, code, text, data), NULL);
        goto out;
    }
    /* A task lives on the shard that created it, which its id names. */
    const char *task = strncmp(msg->method, "tasks/", 6) == 0
                           ? json_string_value(json_object_get(msg->params, "taskId"))
                           : NULL;
    int owner = task ? nx_mcp_session_id_shard(nx_str_from(task)) : -1;
    nx_engine_shard_t *es = ex->es;
    if (owner >= 0 && (uint32_t)owner < es->engine->shard_count &&
        (uint32_t)owner != (uint32_t)es->shard->id && ex->sink == SINK_HTTP) {
        nx_http_conn_t *hc = ex->hc;
        exchange_free(ex);
        forward(es, es->engine->shards[owner], hc, (nx_str_t){NULL, 0}, req->body, FWD_STATELESS,
                (nx_str_t){NULL, 0});
        goto out;
    }
    dispatch_stateless(ex, msg);
out:
    nx_rpc_batch_dispose(&batch);
}

/* True when a POST without a session speaks the 2026-07-28 era: its MCP-Protocol-Version
 * header names no legacy revision, or its body carries the modern _meta. A legacy initialize
 * with a version header and no _meta stays legacy. */
static bool is_stateless_post(nx_http_request_t *req) {
    nx_str_t v = nx_http_request_header(req, "MCP-Protocol-Version");
    if (v.p != NULL && !nx_mcp_version_is_legacy(v)) return true;
    static const char key[] = NX_MCP_META_VERSION;
    return req->body.n >= sizeof(key) - 1 &&
           memmem(req->body.p, req->body.n, key, sizeof(key) - 1) != NULL;
}

/* Sends one logged event again, into the exchange <arg>. */
static int replay_one(const nx_mcp_event_t *e, void *arg) {
    mcp_exchange_t *ex = arg;
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)e->seq);
    nx_buf_t out;
    nx_buf_init(&out);
    /* An empty event was a priming event: replayed as one (no event type, empty data). */
    nx_sse_event_t ev = {
        .id = id, .event = e->len ? "message" : NULL, .data = e->text, .data_len = e->len};
    if (nx_sse_encode(&out, &ev) == 0) sink_send(ex, FRAME_EVENT, 0, out.data, out.len, NULL);
    nx_buf_dispose(&out);
    return 0;
}

/* The live exchange of <hs> that owns stream <stream>, or NULL. */
static mcp_exchange_t *exchange_of_stream(http_session_t *hs, uint32_t stream) {
    nx_list_t *lists[] = {&hs->exchanges, &hs->standalone};
    for (size_t i = 0; i < 2; i++) {
        nx_list_t *pos;
        nx_list_foreach(pos, lists[i]) {
            mcp_exchange_t *e = nx_container_of(pos, mcp_exchange_t, session_link);
            if (e->stream == stream) return e;
        }
    }
    return NULL;
}

/* Makes <ex> a standalone stream of its session (unsolicited messages). */
static void open_standalone(mcp_exchange_t *ex) {
    ex->standalone = true;
    number_stream(ex, &ex->hs->standalone);
    if (!ex->streaming) sink_send(ex, FRAME_OPEN, 0, NULL, 0, NULL);
    park(ex);
}

/* GET /mcp on the owner: a standalone stream, or with Last-Event-ID the resumption of the
 * stream that event belongs to: what was missed is replayed, then the stream goes on. */
static void process_get(mcp_exchange_t *ex, const char *last_event_id) {
    http_session_t *hs = find_session(ex);
    if (hs == NULL) return;
    if (last_event_id == NULL || last_event_id[0] == '\0') {
        open_standalone(ex);
        return;
    }
    uint64_t seq = 0;
    uint32_t stream = 0;
    if (nx_mcp_event_id_parse(last_event_id, strlen(last_event_id), &seq) < 0 ||
        nx_mcp_event_log_stream_of(&hs->events, seq, &stream) < 0) {
        finish_rpc_error(ex, 404, NX_RPC_INVALID_REQUEST,
                         "Last-Event-ID names no event this session can replay (unknown or too "
                         "old)",
                         NULL);
        return;
    }
    sink_send(ex, FRAME_OPEN, 0, NULL, 0, NULL);
    nx_mcp_event_log_replay(&hs->events, stream, seq, replay_one, ex);
    mcp_exchange_t *owner = exchange_of_stream(hs, stream);
    if (stream & 1u) {
        /* A standalone stream: this connection now receives the unsolicited messages. */
        if (owner != NULL) cancel_exchange(owner, "replaced by a resumed stream");
        open_standalone(ex);
        return;
    }
    if (owner != NULL && owner->sink == SINK_DETACHED) {
        /* The request still runs: hand it this connection for its next events and answer. */
        owner->sink = ex->sink;
        owner->hc = ex->hc;
        owner->fwd = ex->fwd;
        owner->fwd_origin = ex->fwd_origin;
        owner->fwd_seq = ex->fwd_seq;
        owner->streaming = true;
        if (owner->sink == SINK_HTTP) nx_http_defer(owner->hc, on_client_gone, owner);
        exchange_free(ex);
        return;
    }
    sink_write(ex, FRAME_FINAL, 200, NULL, 0, NULL); /* that request has been answered */
}

static void process_delete(mcp_exchange_t *ex) {
    nx_mcp_session_t *s = nx_mcp_session_find(&ex->es->sessions, nx_str_from(ex->session_id),
                                              nx_shard_now_ms(ex->es->shard));
    if (s == NULL) {
        finish_rpc_error(ex, 404, NX_RPC_INVALID_REQUEST, "unknown or terminated session", NULL);
        return;
    }
    nx_mcp_session_close(&ex->es->sessions, s);
    finish_empty(ex, 204);
}

/* ---- forwarding between shards ---- */

static void on_frame(nx_shard_t *s, nx_msg_t *m) {
    fwd_frame_t *fr = (fwd_frame_t *)m;
    mcp_forward_t *f = fr->fwd;
    nx_engine_shard_t *origin = f->origin;
    if (f->hc != NULL)
        deliver(f->hc, &f->streaming, fr->kind, fr->status, fr->data, fr->len,
                fr->extra[0] ? fr->extra : NULL, on_forward_client_gone, f);
    bool final = fr->kind == FRAME_FINAL;
    free(fr->data);
    free(fr);
    if (!final) return;
    free(f->body);
    free(f);
    origin->mcp_forwards_out--;
    nx_engine_shard_maybe_stop(origin);
}

/* Messages that never ran because their shard had stopped (shutdown). */
static void dispose_frame(nx_msg_t *m) {
    fwd_frame_t *fr = (fwd_frame_t *)m;
    free(fr->data);
    free(fr);
}

static void dispose_forward(nx_msg_t *m) {
    mcp_forward_t *f = (mcp_forward_t *)m;
    free(f->body);
    free(f);
}

static void flush_outbox(nx_timer_t *t) {
    nx_engine_shard_t *es = nx_container_of(t, nx_engine_shard_t, mcp_outbox_timer);
    while (!nx_list_empty(&es->mcp_outbox)) {
        fwd_frame_t *fr = nx_container_of(es->mcp_outbox.next, fwd_frame_t, link);
        fr->msg.fn = on_frame;
        fr->msg.dispose = dispose_frame;
        nx_list_remove(&fr->link);
        if (nx_shard_post(fr->origin->shard, es->shard->loop, &fr->msg) < 0) {
            nx_list_insert_head(&es->mcp_outbox, &fr->link);
            nx_shard_timer_start(es->shard, &es->mcp_outbox_timer, 1);
            return;
        }
    }
    nx_engine_shard_maybe_stop(es);
}

static void post_frame(nx_engine_shard_t *es, fwd_frame_t *fr) {
    fr->msg.fn = on_frame;
    fr->msg.dispose = dispose_frame;
    if (nx_list_empty(&es->mcp_outbox) &&
        nx_shard_post(fr->origin->shard, es->shard->loop, &fr->msg) == 0)
        return;
    /* The origin's mailbox is full: queue behind what already waits, in order. */
    nx_list_insert_tail(&es->mcp_outbox, &fr->link);
    if (!nx_timer_active(&es->mcp_outbox_timer)) {
        nx_timer_init(&es->mcp_outbox_timer, flush_outbox);
        nx_shard_timer_start(es->shard, &es->mcp_outbox_timer, 1);
    }
}

void nx_mcp_http_free_outbox(nx_engine_shard_t *es) {
    nx_timer_stop(&es->mcp_outbox_timer);
    while (!nx_list_empty(&es->mcp_outbox)) {
        fwd_frame_t *fr = nx_container_of(es->mcp_outbox.next, fwd_frame_t, link);
        nx_list_remove(&fr->link);
        free(fr->data);
        free(fr);
    }
}

static void on_forwarded(nx_shard_t *s, nx_msg_t *m) {
    mcp_forward_t *f = (mcp_forward_t *)m;
    mcp_exchange_t *ex = exchange_new(f->owner);
    if (ex == NULL) {
        fwd_frame_t *fr = calloc(1, sizeof(*fr));
        if (fr == NULL) return; /* the origin's deadline ends it */
        fr->kind = FRAME_FINAL;
        fr->status = 503;
        fr->origin = f->origin;
        fr->fwd = f;
        nx_list_init(&fr->link);
        post_frame(f->owner, fr);
        return;
    }
    ex->sink = SINK_REMOTE;
    ex->fwd = f;
    ex->fwd_origin = f->origin;
    ex->fwd_seq = f->seq;
    memcpy(ex->session_id, f->session_id, sizeof(ex->session_id));
    switch (f->kind) {
    case FWD_DELETE:
        process_delete(ex);
        break;
    case FWD_GET:
        process_get(ex, f->last_event_id);
        break;
    case FWD_POST:
    case FWD_MESSAGES:
        process(ex, f->body, f->body_len, f->kind == FWD_MESSAGES);
        break;
    case FWD_STATELESS:
        process_forwarded_stateless(ex, f->body, f->body_len);
        break;
    }
}

/* Asks the owner shard to cancel a forwarded exchange whose client went away. It names the
 * forward by (origin, seq) so the owner never touches a forward the origin may have freed. */
typedef struct forward_cancel {
    nx_msg_t msg;
    nx_engine_shard_t *origin;
    uint64_t seq;
} forward_cancel_t;

static void on_forward_cancel(nx_shard_t *s, nx_msg_t *m) {
    forward_cancel_t *c = (forward_cancel_t *)m;
    nx_engine_shard_t *es = s->user;
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &es->mcp_owned) {
        mcp_exchange_t *ex = nx_container_of(pos, mcp_exchange_t, link);
        if (ex->sink == SINK_REMOTE && ex->fwd_origin == c->origin && ex->fwd_seq == c->seq) {
            if (ex->pending != NULL && ex->stream != 0 && !ex->standalone) {
                /* Resumable: the request goes on; its answer waits in the event log. */
                fwd_frame_t *fr = calloc(1, sizeof(*fr));
                if (fr != NULL) {
                    fr->kind = FRAME_FINAL;
                    fr->origin = ex->fwd_origin;
                    fr->fwd = ex->fwd;
                    nx_list_init(&fr->link);
                    post_frame(es, fr);
                    ex->sink = SINK_DETACHED;
                    break;
                }
            }
            cancel_exchange(ex, "the client went away; the call was cancelled");
            break;
        }
    }
    /* Not found: the exchange already ended and its final frame is on its way back. */
    free(c);
}

static void on_forward_client_gone(nx_http_conn_t *hc, void *arg) {
    mcp_forward_t *f = arg;
    f->hc = NULL; /* frames still arrive until the final one; they are dropped */
    forward_cancel_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return; /* the exchange then runs to completion */
    c->msg.fn = on_forward_cancel;
    c->origin = f->origin;
    c->seq = f->seq;
    if (nx_shard_post(f->owner->shard, f->origin->shard->loop, &c->msg) < 0) free(c);
}

static void forward(nx_engine_shard_t *es, nx_engine_shard_t *owner, nx_http_conn_t *hc,
                    nx_str_t sid, nx_str_t body, int kind, nx_str_t last_event_id) {
    if (es->draining) {
        /* The owner may already have stopped: do not start work that could not be answered. */
        nx_http_respond_error(hc, 503, "draining: not accepting new MCP requests",
                              "Retry-After: 1\r\n");
        return;
    }
    mcp_forward_t *f = calloc(1, sizeof(*f));
    if (f == NULL || (body.n > 0 && (f->body = malloc(body.n)) == NULL)) {
        free(f);
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    if (body.n > 0) memcpy(f->body, body.p, body.n);
    f->body_len = body.n;
    f->origin = es;
    f->owner = owner;
    f->seq = ++es->mcp_forward_seq;
    f->hc = hc;
    f->kind = kind;
    if (sid.n > 0) memcpy(f->session_id, sid.p, sid.n);
    copy_event_id(f->last_event_id, last_event_id);
    f->msg.fn = on_forwarded;
    f->msg.dispose = dispose_forward;
    if (nx_shard_post(owner->shard, es->shard->loop, &f->msg) < 0) {
        free(f->body);
        free(f);
        nx_http_respond_error(hc, 503, "the shard owning this session is overloaded",
                              "Retry-After: 1\r\n");
        return;
    }
    es->mcp_forwards_out++;
    nx_http_defer(hc, on_forward_client_gone, f);
}

/* ---- the routes ---- */

/* The checks every MCP HTTP request passes first; returns 0 or the HTTP status it answered. */
static int check_request(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                         bool needs_accept, bool is_post, bool check_version) {
    char msg[256];
    nx_str_t version;
    nx_mcp_origin_policy_t policy = {.allowed_hosts = es->engine->mcp_allowed_hosts};
    int status = nx_mcp_check_origin(&policy, nx_http_request_header(req, "Origin"), req->host, msg,
                                     sizeof(msg));
    if (status == 0 && needs_accept)
        status =
            nx_mcp_check_accept(nx_http_request_header(req, "Accept"), is_post, msg, sizeof(msg));
    if (status == 0 && check_version)
        status = nx_mcp_check_protocol_header(nx_http_request_header(req, "MCP-Protocol-Version"),
                                              &version, msg, sizeof(msg));
    if (status != 0) nx_http_respond_error(hc, status, msg, NULL);
    return status;
}

static void respond_rpc_error(nx_http_conn_t *hc, int status, int code, const char *message) {
    json_t *err = nx_rpc_error_new(NULL, code, message, NULL);
    size_t len = 0;
    char *text = err ? nx_rpc_encode(err, &len) : NULL;
    json_decref(err);
    nx_http_respond(hc, status, "application/json", text, len, NULL);
    free(text);
}

/* Finds the shard owning session <sid>; answers 400/404 and returns NULL when there is none. */
static nx_engine_shard_t *session_owner(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_str_t sid) {
    if (sid.p == NULL || sid.n == 0) {
        respond_rpc_error(hc, 400, NX_RPC_INVALID_REQUEST, MISSING_SESSION);
        return NULL;
    }
    int shard = nx_mcp_session_id_shard(sid);
    if (shard < 0 || (uint32_t)shard >= es->engine->shard_count) {
        respond_rpc_error(hc, 404, NX_RPC_INVALID_REQUEST, "unknown or terminated session");
        return NULL;
    }
    return es->engine->shards[shard];
}

/* An exchange answered on <hc> by this shard, for session <sid> (may be absent); NULL after
 * answering 503 when memory is short. */
static mcp_exchange_t *local_exchange(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_str_t sid) {
    mcp_exchange_t *ex = exchange_new(es);
    if (ex == NULL) {
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return NULL;
    }
    ex->sink = SINK_HTTP;
    ex->hc = hc;
    if (sid.n == NX_MCP_SESSION_ID_LEN) memcpy(ex->session_id, sid.p, sid.n);
    return ex;
}

/* Runs <kind> for session <sid> here or on the shard that owns it. */
static void route_to_owner(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_str_t sid, int kind,
                           nx_str_t body, nx_str_t last_event_id) {
    nx_engine_shard_t *owner = session_owner(es, hc, sid);
    if (owner == NULL) return;
    if (owner != es) {
        forward(es, owner, hc, sid, body, kind, last_event_id);
        return;
    }
    mcp_exchange_t *ex = local_exchange(es, hc, sid);
    if (ex == NULL) return;
    char leid[EVENT_ID_MAX];
    switch (kind) {
    case FWD_DELETE:
        process_delete(ex);
        break;
    case FWD_GET:
        copy_event_id(leid, last_event_id);
        process_get(ex, leid);
        break;
    default:
        process(ex, body.p, body.n, kind == FWD_MESSAGES);
        break;
    }
}

void nx_mcp_route_post(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                       const nx_route_match_t *m) {
    nx_str_t sid = nx_http_request_header(req, SESSION_HEADER);
    bool has_session = sid.p != NULL && sid.n > 0;
    /* A stateless request's version is checked against its _meta (-32022), not here. */
    if (check_request(es, hc, req, true, true, has_session || !is_stateless_post(req)) != 0) return;
    if (sid.p != NULL && sid.n > 0) {
        route_to_owner(es, hc, sid, FWD_POST, req->body, (nx_str_t){NULL, 0});
        return;
    }
    /* Without a session id: a stateless request, or an initialize answered here (process()
     * refuses anything else once it has decoded the body). */
    mcp_exchange_t *ex = local_exchange(es, hc, sid);
    if (ex == NULL) return;
    if (is_stateless_post(req))
        process_stateless(ex, req);
    else
        process(ex, req->body.p, req->body.n, false);
}

void nx_mcp_route_delete(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                         const nx_route_match_t *m) {
    if (check_request(es, hc, req, false, false, true) != 0) return;
    route_to_owner(es, hc, nx_http_request_header(req, SESSION_HEADER), FWD_DELETE,
                   (nx_str_t){NULL, 0}, (nx_str_t){NULL, 0});
}

void nx_mcp_route_get(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                      const nx_route_match_t *m) {
    if (nx_mcp_ws_is_upgrade(req)) {
        nx_mcp_ws_accept(es, hc, req);
        return;
    }
    if (es->draining) {
        /* A stream opened now would only hold the shutdown up. */
        nx_http_respond_error(hc, 503, "draining: not opening new MCP streams",
                              "Retry-After: 1\r\n");
        return;
    }
    if (check_request(es, hc, req, true, false, true) != 0) return;
    route_to_owner(es, hc, nx_http_request_header(req, SESSION_HEADER), FWD_GET,
                   (nx_str_t){NULL, 0}, nx_http_request_header(req, "Last-Event-ID"));
}

/* ---- legacy HTTP+SSE (protocol 2024-11-05) ---- */

void nx_mcp_route_sse(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                      const nx_route_match_t *m) {
    if (check_request(es, hc, req, false, false, true) != 0) return;
    mcp_exchange_t *ex = local_exchange(es, hc, (nx_str_t){NULL, 0});
    if (ex == NULL || create_session(ex, true) < 0) return;
    http_session_t *hs = ex->hs;
    ex->standalone = true;
    number_stream(ex, &hs->standalone);
    /* The session is initialized by the initialize message that arrives on /messages. */
    char data[96];
    int n = snprintf(data, sizeof(data), "/messages?sessionId=%s", ex->session_id);
    nx_buf_t out;
    nx_buf_init(&out);
    nx_sse_event_t ev = {.event = "endpoint", .data = data, .data_len = (size_t)n};
    nx_sse_encode(&out, &ev);
    sink_write(ex, FRAME_EVENT, 0, out.data, out.len, NULL);
    nx_buf_dispose(&out);
    park(ex);
}

/* The value of query parameter <name> in <q>, or {NULL, 0}. */
static nx_str_t query_param(nx_str_t q, const char *name) {
    size_t nl = strlen(name);
    const char *p = q.p, *end = q.p + q.n;
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=')
            return (nx_str_t){p + nl + 1, (size_t)(stop - p - nl - 1)};
        p = amp ? amp + 1 : NULL;
    }
    return (nx_str_t){NULL, 0};
}

void nx_mcp_route_messages(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                           const nx_route_match_t *m) {
    if (check_request(es, hc, req, false, false, true) != 0) return;
    nx_str_t sid = query_param(req->query, "sessionId");
    if (sid.p == NULL || sid.n == 0) {
        respond_rpc_error(hc, 400, NX_RPC_INVALID_REQUEST,
                          "the sessionId query parameter is required (from the endpoint event "
                          "of GET /sse)");
        return;
    }
    route_to_owner(es, hc, sid, FWD_MESSAGES, req->body, (nx_str_t){NULL, 0});
}
