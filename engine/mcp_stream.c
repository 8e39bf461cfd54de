/* Message-stream MCP transports' common part (see mcp_stream.h). */
#include "mcp_stream.h"

#include "jsonrpc.h"
#include "mcp_rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request being answered; freed when answered or cancelled. */
typedef struct stream_call {
    nx_list_t link;
    nx_mcp_stream_t *st;
    json_t *id;
    nx_mcp_call_t *pending; /* a tool still running */
} stream_call_t;

/* Unsolicited messages (broadcasts, resource updates) share the one stream. */
static bool push(nx_mcp_peer_t *peer, json_t *msg) {
    nx_mcp_stream_t *st = peer->owner;
    st->send(st, msg);
    return true;
}

void nx_mcp_stream_init(nx_mcp_stream_t *st, nx_mcp_server_t *server, nx_mcp_stream_send_fn send) {
    memset(st, 0, sizeof(*st));
    st->server = server;
    st->send = send;
    nx_list_init(&st->calls);
    nx_mcp_peer_init(&st->peer, push, st);
}

static void free_call(stream_call_t *c) {
    nx_list_remove(&c->link);
    json_decref(c->id);
    free(c);
}

/* Progress, log messages and server-to-client requests of a call go on the same stream. */
static void on_related(void *transport, json_t *msg) {
    stream_call_t *c = transport;
    c->st->send(c->st, msg);
}

static void on_drop(void *transport) {
    stream_call_t *c = transport;
    if (c->st->drop != NULL) c->st->drop(c->st);
}

static void on_reply(void *transport, json_t *response) {
    stream_call_t *c = transport;
    nx_mcp_stream_t *st = c->st;
    free_call(c);
    st->send(st, response);
}

/* notifications/cancelled {requestId, reason?}: stop that call; no answer is sent for it. */
static void cancel_request(nx_mcp_stream_t *st, const json_t *params) {
    json_t *id = json_object_get(params, "requestId");
    if (id == NULL) return;
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &st->calls) {
        stream_call_t *c = nx_container_of(pos, stream_call_t, link);
        if (c->pending != NULL && json_equal(c->id, id)) {
            nx_mcp_call_cancel(c->pending);
            free_call(c);
            return;
        }
    }
    /* Unknown or already answered: the cancellation raced the answer, which is fine. */
}

void nx_mcp_stream_handle(nx_mcp_stream_t *st, const char *p, size_t n) {
    nx_rpc_batch_t batch;
    int rc = nx_rpc_decode(p, n, NULL, &batch);
    const nx_rpc_msg_t *msg = &batch.msgs[0];
    if (rc == -ENOMEM) {
        st->send(st, nx_rpc_error_new(NULL, NX_RPC_INTERNAL_ERROR, "out of memory", NULL));
        return;
    }
    if (rc < 0 || msg->kind == NX_RPC_INVALID) {
        st->send(st, nx_rpc_reject_new(msg));
        nx_rpc_batch_dispose(&batch);
        return;
    }
    if (msg->kind == NX_RPC_NOTIFICATION && strcmp(msg->method, "notifications/cancelled") == 0) {
        cancel_request(st, msg->params);
        nx_rpc_batch_dispose(&batch);
        return;
    }
    stream_call_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        if (msg->kind == NX_RPC_REQUEST)
            st->send(st, nx_rpc_error_new(msg->id, NX_RPC_INTERNAL_ERROR, "out of memory", NULL));
        nx_rpc_batch_dispose(&batch);
        return;
    }
    c->st = st;
    c->id = json_incref(msg->id);
    nx_list_insert_tail(&st->calls, &c->link);
    nx_mcp_request_ctx_t ctx = {
        .reply = on_reply, .send = on_related, .drop = on_drop, .transport = c, .peer = &st->peer};
    if (msg->kind == NX_RPC_REQUEST && nx_mcp_params_are_modern(msg->params)) {
        /* A 2026-07-28 request: self-contained, whatever the connection negotiated before. */
        char text[320];
        json_t *data = NULL;
        int code =
            nx_mcp_check_modern_meta(msg->params, (nx_str_t){NULL, 0}, text, sizeof(text), &data);
        if (code != 0) {
            free_call(c);
            st->send(st, nx_rpc_error_new(msg->id, code, text, data));
            nx_rpc_batch_dispose(&batch);
            return;
        }
        ctx.peer = NULL;
        ctx.stateless = true;
    }
    nx_mcp_call_t *pending = NULL;
    nx_mcp_dispatch_t d = nx_mcp_server_dispatch(st->server, msg, &ctx, &pending);
    if (d == NX_MCP_PENDING)
        c->pending = pending;
    else if (d == NX_MCP_NO_REPLY)
        free_call(c);
    nx_rpc_batch_dispose(&batch);
}

bool nx_mcp_stream_busy(const nx_mcp_stream_t *st) {
    return !nx_list_empty(&st->calls);
}

void nx_mcp_stream_cancel_all(nx_mcp_stream_t *st) {
    nx_list_t *n;
    while ((n = st->calls.next) != &st->calls) {
        stream_call_t *c = nx_container_of(n, stream_call_t, link);
        if (c->pending != NULL) nx_mcp_call_cancel(c->pending);
        free_call(c);
    }
}

void nx_mcp_stream_dispose(nx_mcp_stream_t *st) {
    nx_mcp_stream_cancel_all(st);
    nx_mcp_peer_dispose(&st->peer);
}
