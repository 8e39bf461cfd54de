/* MCP client core (see mcp_client.h): request ids are integers counted by the client, so an
 * answer is matched to its waiting request by id alone; anything else the server sends is a
 * notification or a request for the owner. */
#include "mcp_client.h"

#include "mcp_rules.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_VERSION "2025-11-25"

/* A request waiting for the server's answer. */
typedef struct waiting {
    nx_list_t link;
    json_int_t id;
    nx_mcp_client_cb cb;
    void *arg;
} waiting_t;

static json_t *error_object(int code, const char *message) {
    return json_pack("{s:i, s:s}", "code", code, "message", message);
}

void nx_mcp_client_init(nx_mcp_client_t *cl, const nx_mcp_client_ops_t *ops, void *arg,
                        const char *client_name, json_t *capabilities) {
    memset(cl, 0, sizeof(*cl));
    cl->ops = *ops;
    cl->arg = arg;
    cl->state = NX_MCP_CLIENT_NEW;
    nx_list_init(&cl->pending);
    snprintf(cl->client_name, sizeof(cl->client_name), "%s", client_name);
    cl->capabilities = capabilities ? capabilities : json_object();
}

/* Sends <msg> (stolen); on a transport error everything waiting fails. */
static int send_msg(nx_mcp_client_t *cl, json_t *msg) {
    size_t len = 0;
    char *text = msg ? nx_rpc_encode(msg, &len) : NULL;
    json_decref(msg);
    if (text == NULL) return -ENOMEM;
    int rc = cl->ops.send(cl, text, len, cl->arg);
    free(text);
    return rc;
}

static void finish(waiting_t *w, nx_mcp_client_t *cl, const json_t *result, const json_t *error) {
    nx_list_remove(&w->link);
    cl->pending_count--;
    nx_mcp_client_cb cb = w->cb;
    void *arg = w->arg;
    free(w);
    cb(cl, result, error, arg);
}

void nx_mcp_client_fail(nx_mcp_client_t *cl, const char *why) {
    cl->state = NX_MCP_CLIENT_FAILED;
    if (cl->error[0] == '\0') snprintf(cl->error, sizeof(cl->error), "%s", why);
    json_t *e = error_object(-32603, why);
    /* Callbacks may send new requests (which fail at once): take one entry at a time. */
    while (!nx_list_empty(&cl->pending))
        finish(nx_container_of(cl->pending.next, waiting_t, link), cl, NULL, e);
    json_decref(e);
}

void nx_mcp_client_dispose(nx_mcp_client_t *cl) {
    nx_mcp_client_fail(cl, "the connection to the server was closed");
    json_decref(cl->server_info);
    json_decref(cl->server_capabilities);
    json_decref(cl->instructions);
    json_decref(cl->capabilities);
    cl->server_info = cl->server_capabilities = cl->instructions = cl->capabilities = NULL;
}

/* Sends a request whatever the state (the handshake's own initialize included). */
static json_int_t send_request(nx_mcp_client_t *cl, const char *method, json_t *params,
                               nx_mcp_client_cb cb, void *arg) {
    waiting_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        json_decref(params);
        json_t *e = error_object(-32603, "out of memory");
        cb(cl, NULL, e, arg);
        json_decref(e);
        return 0;
    }
    w->id = ++cl->next_id;
    w->cb = cb;
    w->arg = arg;
    nx_list_insert_tail(&cl->pending, &w->link);
    cl->pending_count++;
    json_t *id = json_integer(w->id);
    json_t *req = nx_rpc_request_new(id, method, params);
    json_decref(id);
    json_int_t sent = w->id;
    cl->sending_id = sent;
    int rc = send_msg(cl, req);
    cl->sending_id = 0;
    if (rc < 0) {
        json_t *e = error_object(-32603, "the server's transport is gone");
        finish(w, cl, NULL, e);
        json_decref(e);
        return 0;
    }
    return sent;
}

json_int_t nx_mcp_client_request(nx_mcp_client_t *cl, const char *method, json_t *params,
                                 nx_mcp_client_cb cb, void *arg) {
    if (cl->state != NX_MCP_CLIENT_READY) {
        json_decref(params);
        char m[300];
        snprintf(m, sizeof(m), "the server is not ready%s%s", cl->error[0] ? ": " : "", cl->error);
        json_t *e = error_object(-32603, m);
        cb(cl, NULL, e, arg);
        json_decref(e);
        return 0;
    }
    return send_request(cl, method, params, cb, arg);
}

int nx_mcp_client_notify(nx_mcp_client_t *cl, const char *method, json_t *params) {
    return send_msg(cl, nx_rpc_notification_new(method, params));
}

bool nx_mcp_client_abandon(nx_mcp_client_t *cl, json_int_t id, const char *reason) {
    nx_list_t *pos;
    nx_list_foreach(pos, &cl->pending) {
        waiting_t *w = nx_container_of(pos, waiting_t, link);
        if (w->id != id) continue;
        nx_list_remove(&w->link);
        cl->pending_count--;
        free(w);
        if (reason != NULL)
            nx_mcp_client_notify(cl, "notifications/cancelled",
                                 json_pack("{s:I, s:s}", "requestId", id, "reason", reason));
        return true;
    }
    return false;
}

bool nx_mcp_client_waiting(const nx_mcp_client_t *cl, json_int_t id) {
    const nx_list_t *pos;
    for (pos = cl->pending.next; pos != &cl->pending; pos = pos->next)
        if (nx_container_of(pos, waiting_t, link)->id == id) return true;
    return false;
}

int nx_mcp_client_respond(nx_mcp_client_t *cl, const json_t *id, json_t *result, json_t *error) {
    json_t *msg;
    if (result != NULL) {
        msg = nx_rpc_result_new((json_t *)id, result);
        json_decref(error);
    } else {
        json_int_t code = json_integer_value(json_object_get(error, "code"));
        const char *text = json_string_value(json_object_get(error, "message"));
        json_t *data = json_object_get(error, "data");
        msg = nx_rpc_error_new((json_t *)id, code ? (int)code : -32603, text ? text : "error",
                               data ? json_incref(data) : NULL);
        json_decref(error);
    }
    return send_msg(cl, msg);
}

/* ---- the handshake ---- */

/* The handshake failed: everything waiting fails and the owner hears it. */
static void handshake_failed(nx_mcp_client_t *cl) {
    nx_mcp_client_fail(cl, cl->error);
    if (cl->ops.on_failed != NULL) cl->ops.on_failed(cl, cl->arg);
}

static void on_initialized(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                           void *arg) {
    if (error != NULL) {
        snprintf(cl->error, sizeof(cl->error), "initialize failed: %s",
                 json_string_value(json_object_get(error, "message"))
                     ? json_string_value(json_object_get(error, "message"))
                     : "error");
        handshake_failed(cl);
        return;
    }
    const char *v = json_string_value(json_object_get(result, "protocolVersion"));
    if (v == NULL || !nx_mcp_version_is_legacy(nx_str_from(v))) {
        snprintf(cl->error, sizeof(cl->error),
                 "the server answered initialize with protocol "
                 "version %.40s, which nexus does not speak",
                 v ? v : "(none)");
        handshake_failed(cl);
        return;
    }
    snprintf(cl->protocol_version, sizeof(cl->protocol_version), "%s", v);
    cl->server_info = json_incref(json_object_get(result, "serverInfo"));
    cl->server_capabilities = json_incref(json_object_get(result, "capabilities"));
    cl->instructions = json_incref(json_object_get(result, "instructions"));
    if (nx_mcp_client_notify(cl, "notifications/initialized", NULL) < 0) {
        snprintf(cl->error, sizeof(cl->error), "the server's transport is gone");
        handshake_failed(cl);
        return;
    }
    cl->state = NX_MCP_CLIENT_READY;
    if (cl->ops.on_ready != NULL) cl->ops.on_ready(cl, cl->arg);
}

int nx_mcp_client_start(nx_mcp_client_t *cl) {
    cl->state = NX_MCP_CLIENT_INITIALIZING;
    json_t *params =
        json_pack("{s:s, s:O, s:{s:s, s:s}}", "protocolVersion", CLIENT_VERSION, "capabilities",
                  cl->capabilities, "clientInfo", "name", cl->client_name, "version", NX_VERSION);
    return send_request(cl, "initialize", params, on_initialized, NULL) > 0 ? 0 : -EIO;
}

/* ---- receiving ---- */

static void take_answer(nx_mcp_client_t *cl, const nx_rpc_msg_t *m) {
    if (!json_is_integer(m->id)) return; /* not one of ours */
    json_int_t id = json_integer_value(m->id);
    nx_list_t *pos;
    nx_list_foreach(pos, &cl->pending) {
        waiting_t *w = nx_container_of(pos, waiting_t, link);
        if (w->id == id) {
            finish(w, cl, m->kind == NX_RPC_RESPONSE ? m->result : NULL,
                   m->kind == NX_RPC_ERROR_RESPONSE ? m->error : NULL);
            return;
        }
    }
    /* Answered after it was abandoned: nobody waits. */
}

void nx_mcp_client_receive(nx_mcp_client_t *cl, const char *text, size_t len) {
    nx_rpc_decode_opts_t opts = {.allow_batch = true};
    nx_rpc_batch_t batch;
    if (nx_rpc_decode(text, len, &opts, &batch) < 0) {
        nx_rpc_batch_dispose(&batch);
        return; /* not JSON-RPC: a server writing logs to stdout; nothing to answer */
    }
    for (uint32_t i = 0; i < batch.count; i++) {
        const nx_rpc_msg_t *m = &batch.msgs[i];
        switch (m->kind) {
        case NX_RPC_RESPONSE:
        case NX_RPC_ERROR_RESPONSE:
            take_answer(cl, m);
            break;
        case NX_RPC_NOTIFICATION:
            if (cl->ops.on_notification != NULL)
                cl->ops.on_notification(cl, m->method, m->params, cl->arg);
            break;
        case NX_RPC_REQUEST:
            if (strcmp(m->method, "ping") == 0) {
                nx_mcp_client_respond(cl, m->id, json_object(), NULL);
            } else if (cl->ops.on_request != NULL) {
                cl->ops.on_request(cl, m->id, m->method, m->params, cl->arg);
            } else {
                nx_mcp_client_respond(
                    cl, m->id, NULL,
                    error_object(NX_RPC_METHOD_NOT_FOUND, "this client serves no requests"));
            }
            break;
        case NX_RPC_INVALID:
            break;
        }
    }
    nx_rpc_batch_dispose(&batch);
}
