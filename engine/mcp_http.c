/* MCP Streamable HTTP (legacy era) on /mcp of both ports: POST carries one JSON-RPC message
 * and is answered with application/json (202 for notifications and responses), DELETE ends a
 * session, GET has no standalone stream yet (405). Sessions live on the shard that created
 * them; a request that lands on another shard is forwarded through the mailbox to the owner,
 * which answers back the same way, so clients never see which thread they hit. */
#include "mcp_http.h"

#include "jsonrpc.h"
#include "log.h"
#include "mcp_rules.h"
#include "mcp_server.h"
#include "mcp_ws.h"
#include "nexus/errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_HEADER "Mcp-Session-Id"
#define MISSING_SESSION "the " SESSION_HEADER " header is required after initialize"

typedef struct mcp_forward mcp_forward_t;

/* One MCP request being processed on the shard that owns its session. Answers go to <hc>
 * (same shard) or back to the origin shard through <fwd>. Freed by exchange_finish. */
typedef struct mcp_exchange {
    nx_list_t link; /* in es->mcp_owned while a forwarded request's tool runs */
    nx_engine_shard_t *es;
    nx_http_conn_t *hc;
    mcp_forward_t *fwd;
    nx_engine_shard_t *fwd_origin; /* with fwd_seq: names the forward without touching it */
    uint64_t fwd_seq;
    char session_id[NX_MCP_SESSION_ID_LEN + 1];
    bool is_init;
    nx_mcp_call_t *pending; /* a tool still running */
} mcp_exchange_t;

/* A request forwarded to the owner shard and, filled there, its answer on the way back. The
 * origin shard owns it: it is freed when the answer arrives. <hc> is touched only on the origin
 * (set to NULL there when the client goes away first). */
struct mcp_forward {
    nx_msg_t msg;
    nx_engine_shard_t *origin, *owner;
    uint64_t seq; /* unique per origin */
    nx_http_conn_t *hc;
    bool is_delete;
    char session_id[NX_MCP_SESSION_ID_LEN + 1];
    char *body;
    size_t body_len;
    /* the answer */
    int status;
    char *resp;
    size_t resp_len;
    char extra[128];
    nx_timer_t retry; /* on the owner: re-posts the answer when the origin's mailbox is full */
};

/* ---- answering ---- */

static void post_answer(nx_timer_t *t);
static void finish_rpc_error(struct mcp_exchange *ex, int status, int code, const char *message,
                             const char *extra);
static void cancel_exchange(struct mcp_exchange *ex, const char *why);

static void exchange_finish(mcp_exchange_t *ex, int status, const char *body, size_t len,
                            const char *extra) {
    nx_engine_shard_t *es = ex->es;
    bool owned = nx_list_linked(&ex->link);
    if (owned) nx_list_remove(&ex->link);
    if (ex->hc != NULL) {
        nx_http_respond(ex->hc, status, len ? "application/json" : NULL, body, len, extra);
    } else if (ex->fwd != NULL) {
        mcp_forward_t *f = ex->fwd;
        f->status = status;
        f->resp = len ? malloc(len) : NULL;
        if (f->resp != NULL) memcpy(f->resp, body, len);
        f->resp_len = f->resp ? len : 0;
        snprintf(f->extra, sizeof(f->extra), "%s", extra ? extra : "");
        post_answer(&f->retry);
    }
    free(ex);
    if (owned) nx_engine_shard_maybe_stop(es);
}

/* Allocates an exchange for a request processed on <es>. */
static mcp_exchange_t *exchange_new(nx_engine_shard_t *es) {
    mcp_exchange_t *ex = calloc(1, sizeof(*ex));
    if (ex == NULL) return NULL;
    nx_list_init(&ex->link);
    ex->es = es;
    return ex;
}

void nx_mcp_http_cancel_owned(nx_engine_shard_t *es) {
    nx_list_t *n;
    while ((n = es->mcp_owned.next) != &es->mcp_owned) {
        cancel_exchange(nx_container_of(n, mcp_exchange_t, link),
                        "the server is shutting down; the call was cancelled");
    }
}

static void finish_json(mcp_exchange_t *ex, int status, json_t *msg, const char *extra) {
    size_t len = 0;
    char *text = msg ? nx_rpc_encode(msg, &len) : NULL;
    json_decref(msg);
    if (text == NULL) {
        exchange_finish(ex, 500, NULL, 0, NULL);
        return;
    }
    exchange_finish(ex, status, text, len, extra);
    free(text);
}

static void finish_rpc_error(mcp_exchange_t *ex, int status, int code, const char *message,
                             const char *extra) {
    finish_json(ex, status, nx_rpc_error_new(NULL, code, message, NULL), extra);
}

/* The MCP server's reply function: one JSON-RPC response for the request of <transport>. */
static void on_reply(void *transport, json_t *response) {
    mcp_exchange_t *ex = transport;
    char extra[96] = "";
    if (ex->is_init) snprintf(extra, sizeof(extra), SESSION_HEADER ": %s\r\n", ex->session_id);
    finish_json(ex, 200, response, extra);
}

static void on_client_gone(nx_http_conn_t *hc, void *arg) {
    mcp_exchange_t *ex = arg;
    if (ex->pending != NULL) nx_mcp_call_cancel(ex->pending);
    free(ex);
}

/* ---- processing on the owner shard ---- */

static void process(mcp_exchange_t *ex, const char *body, size_t len) {
    nx_engine_shard_t *es = ex->es;
    uint64_t now = nx_shard_now_ms(es->shard);
    nx_rpc_decode_opts_t opts = {0};
    nx_rpc_batch_t batch;
    int rc = nx_rpc_decode(body, len, &opts, &batch);
    if (rc == -ENOMEM) {
        finish_rpc_error(ex, 503, NX_RPC_INTERNAL_ERROR, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    const nx_rpc_msg_t *msg = &batch.msgs[0];
    if (rc < 0 || msg->kind == NX_RPC_INVALID) {
        finish_json(ex, 400, nx_rpc_reject_new(msg), NULL);
        nx_rpc_batch_dispose(&batch);
        return;
    }
    bool init = msg->kind == NX_RPC_REQUEST && strcmp(msg->method, "initialize") == 0;
    nx_mcp_session_t *session = NULL;
    if (init) {
        rc = nx_mcp_session_create(&es->sessions, now, &session);
        if (rc < 0) {
            finish_rpc_error(ex, 503, NX_RPC_INTERNAL_ERROR,
                             rc == NX_EFULL ? "too many MCP sessions on this server; retry later"
                                            : "cannot create a session",
                             "Retry-After: 1\r\n");
            nx_rpc_batch_dispose(&batch);
            return;
        }
        memcpy(ex->session_id, session->id, sizeof(ex->session_id));
        ex->is_init = true;
    } else if (ex->session_id[0] == '\0') {
        finish_rpc_error(ex, 400, NX_RPC_INVALID_REQUEST, MISSING_SESSION, NULL);
        nx_rpc_batch_dispose(&batch);
        return;
    } else {
        session = nx_mcp_session_find(&es->sessions, nx_str_from(ex->session_id), now);
        if (session == NULL) {
            finish_rpc_error(ex, 404, NX_RPC_INVALID_REQUEST,
                             "unknown or terminated session: send initialize to start a new one",
                             NULL);
            nx_rpc_batch_dispose(&batch);
            return;
        }
    }
    if (msg->kind != NX_RPC_REQUEST) {
        exchange_finish(ex, 202, NULL, 0, NULL);
        nx_rpc_batch_dispose(&batch);
        return;
    }
    nx_mcp_request_ctx_t ctx = {.reply = on_reply, .transport = ex};
    nx_mcp_call_t *pending = NULL;
    nx_mcp_dispatch_t d = nx_mcp_server_dispatch(es->engine->mcp, msg, &ctx, &pending);
    if (d == NX_MCP_PENDING) {
        ex->pending = pending;
        if (ex->hc != NULL) {
            nx_http_defer(ex->hc, on_client_gone, ex);
        } else {
            /* Forwarded: the origin waits for us, so this shard must not stop before
             * answering (nx_engine_shard_maybe_stop checks the list). */
            nx_list_insert_tail(&es->mcp_owned, &ex->link);
        }
    }
    nx_rpc_batch_dispose(&batch);
}

static void process_delete(mcp_exchange_t *ex) {
    nx_mcp_session_t *s = nx_mcp_session_find(&ex->es->sessions, nx_str_from(ex->session_id),
                                              nx_shard_now_ms(ex->es->shard));
    if (s == NULL) {
        finish_rpc_error(ex, 404, NX_RPC_INVALID_REQUEST, "unknown or terminated session", NULL);
        return;
    }
    nx_mcp_session_close(&ex->es->sessions, s);
    exchange_finish(ex, 204, NULL, 0, NULL);
}

/* ---- forwarding between shards ---- */

static void on_answer(nx_shard_t *s, nx_msg_t *m) {
    mcp_forward_t *f = (mcp_forward_t *)m;
    nx_engine_shard_t *origin = f->origin;
    if (f->hc != NULL) {
        nx_http_respond(f->hc, f->status, f->resp_len ? "application/json" : NULL, f->resp,
                        f->resp_len, f->extra[0] ? f->extra : NULL);
    }
    free(f->resp);
    free(f->body);
    free(f);
    origin->mcp_forwards_out--;
    nx_engine_shard_maybe_stop(origin);
}

static void post_answer(nx_timer_t *t) {
    mcp_forward_t *f = nx_container_of(t, mcp_forward_t, retry);
    f->msg.fn = on_answer;
    if (nx_shard_post(f->origin->shard, f->owner->shard->loop, &f->msg) < 0) {
        /* The origin's mailbox is full: try again shortly rather than lose the answer. */
        nx_shard_timer_start(f->owner->shard, &f->retry, 1);
    }
}

static void on_forwarded(nx_shard_t *s, nx_msg_t *m) {
    mcp_forward_t *f = (mcp_forward_t *)m;
    mcp_exchange_t *ex = exchange_new(f->owner);
    if (ex == NULL) {
        f->status = 503;
        post_answer(&f->retry);
        return;
    }
    ex->fwd = f;
    ex->fwd_origin = f->origin;
    ex->fwd_seq = f->seq;
    memcpy(ex->session_id, f->session_id, sizeof(ex->session_id));
    if (f->is_delete) {
        process_delete(ex);
    } else {
        process(ex, f->body, f->body_len);
    }
}

/* Asks the owner shard to cancel a forwarded call whose client went away. It names the forward
 * by (origin, seq) so the owner never touches a forward the origin may already have freed. */
typedef struct forward_cancel {
    nx_msg_t msg;
    nx_engine_shard_t *origin;
    uint64_t seq;
} forward_cancel_t;

static void cancel_exchange(mcp_exchange_t *ex, const char *why) {
    if (ex->pending != NULL) nx_mcp_call_cancel(ex->pending);
    ex->pending = NULL;
    finish_rpc_error(ex, 503, NX_RPC_INTERNAL_ERROR, why, "Retry-After: 1\r\n");
}

static void on_forward_cancel(nx_shard_t *s, nx_msg_t *m) {
    forward_cancel_t *c = (forward_cancel_t *)m;
    nx_engine_shard_t *es = s->user;
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &es->mcp_owned) {
        mcp_exchange_t *ex = nx_container_of(pos, mcp_exchange_t, link);
        if (ex->fwd_origin == c->origin && ex->fwd_seq == c->seq) {
            cancel_exchange(ex, "the client went away; the call was cancelled");
            break;
        }
    }
    /* Not found: the call was already answered and the answer is on its way back. */
    free(c);
}

static void on_forward_client_gone(nx_http_conn_t *hc, void *arg) {
    mcp_forward_t *f = arg;
    f->hc = NULL; /* the answer will still arrive; it is then dropped */
    forward_cancel_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return; /* the call then runs to completion */
    c->msg.fn = on_forward_cancel;
    c->origin = f->origin;
    c->seq = f->seq;
    if (nx_shard_post(f->owner->shard, f->origin->shard->loop, &c->msg) < 0) free(c);
}

static void forward(nx_engine_shard_t *es, nx_engine_shard_t *owner, nx_http_conn_t *hc,
                    nx_str_t sid, nx_str_t body, bool is_delete) {
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
    f->is_delete = is_delete;
    memcpy(f->session_id, sid.p, sid.n);
    nx_timer_init(&f->retry, post_answer);
    f->msg.fn = on_forwarded;
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

/* The checks every /mcp request passes first; returns 0 or the HTTP status it answered. */
static int check_request(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                         bool needs_accept, bool is_post) {
    char msg[256];
    nx_str_t version;
    nx_mcp_origin_policy_t policy = {.allowed_hosts = es->engine->mcp_allowed_hosts};
    int status = nx_mcp_check_origin(&policy, nx_http_request_header(req, "Origin"), req->host, msg,
                                     sizeof(msg));
    if (status == 0 && needs_accept)
        status =
            nx_mcp_check_accept(nx_http_request_header(req, "Accept"), is_post, msg, sizeof(msg));
    if (status == 0)
        status = nx_mcp_check_protocol_header(nx_http_request_header(req, "MCP-Protocol-Version"),
                                              &version, msg, sizeof(msg));
    if (status != 0) nx_http_respond_error(hc, status, msg, NULL);
    return status;
}

/* Finds the shard owning the session named in the request; answers 400/404 and returns NULL
 * when there is none. */
static void respond_rpc_error(nx_http_conn_t *hc, int status, int code, const char *message) {
    json_t *err = nx_rpc_error_new(NULL, code, message, NULL);
    size_t len = 0;
    char *text = err ? nx_rpc_encode(err, &len) : NULL;
    json_decref(err);
    nx_http_respond(hc, status, "application/json", text, len, NULL);
    free(text);
}

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
    ex->hc = hc;
    if (sid.n == NX_MCP_SESSION_ID_LEN) memcpy(ex->session_id, sid.p, sid.n);
    return ex;
}

void nx_mcp_route_post(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                       const nx_route_match_t *m) {
    if (check_request(es, hc, req, true, true) != 0) return;
    nx_str_t sid = nx_http_request_header(req, SESSION_HEADER);
    /* Without a session id the message must be an initialize, answered here; process()
     * refuses anything else once it has decoded the body. */
    nx_engine_shard_t *owner = es;
    if (sid.p != NULL && sid.n > 0 && (owner = session_owner(es, hc, sid)) == NULL) return;
    if (owner != es) {
        forward(es, owner, hc, sid, req->body, false);
        return;
    }
    mcp_exchange_t *ex = local_exchange(es, hc, sid);
    if (ex != NULL) process(ex, req->body.p, req->body.n);
}

void nx_mcp_route_delete(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                         const nx_route_match_t *m) {
    if (check_request(es, hc, req, false, false) != 0) return;
    nx_str_t sid = nx_http_request_header(req, SESSION_HEADER);
    nx_engine_shard_t *owner = session_owner(es, hc, sid);
    if (owner == NULL) return;
    if (owner != es) {
        forward(es, owner, hc, sid, (nx_str_t){NULL, 0}, true);
        return;
    }
    mcp_exchange_t *ex = local_exchange(es, hc, sid);
    if (ex != NULL) process_delete(ex);
}

void nx_mcp_route_get(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                      const nx_route_match_t *m) {
    if (nx_mcp_ws_is_upgrade(req)) {
        nx_mcp_ws_accept(es, hc, req);
        return;
    }
    if (check_request(es, hc, req, false, false) != 0) return;
    nx_http_respond_error(hc, 405,
                          "this server offers no standalone server-to-client stream on GET; "
                          "use POST",
                          "Allow: POST, DELETE\r\n");
}
