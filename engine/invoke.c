/* In-process MCP requests (see invoke.h): a request message dispatched to the MCP server core
 * with this file as its transport. The core answers through on_reply (the response) and
 * on_send (progress and log messages about the call); nothing here knows what the request
 * reaches (a native tool, a backend on another shard, a workflow). */
#include "invoke.h"

#include "jsonrpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One request; owned by itself until its answer (or cancellation) frees it. */
struct nx_invoke {
    nx_mcp_call_t *pending; /* the core's call while it answers later */
    nx_invoke_done_fn done;
    nx_invoke_note_fn note;
    void *arg;
    uint32_t attempts;
    bool *answered_inline; /* set while inside nx_mcp_server_dispatch */
};

static void on_reply(void *transport, json_t *response) {
    nx_invoke_t *inv = transport;
    if (inv->answered_inline != NULL) *inv->answered_inline = true;
    json_t *result = json_object_get(response, "result");
    json_t *error = result ? NULL : json_object_get(response, "error");
    json_t *fallback = NULL;
    if (result == NULL && error == NULL)
        error = fallback =
            json_pack("{s:i, s:s}", "code", NX_RPC_INTERNAL_ERROR, "message", "malformed answer");
    inv->done(inv->arg, result, error, inv->attempts ? inv->attempts : 1);
    json_decref(fallback);
    json_decref(response);
    free(inv);
}

static void on_send(void *transport, json_t *msg) {
    nx_invoke_t *inv = transport;
    const char *method = json_string_value(json_object_get(msg, "method"));
    /* Server-to-client requests cannot be answered here: the core fails them when the call
     * ends; notifications go to the caller. */
    if (inv->note != NULL && method != NULL && json_object_get(msg, "id") == NULL)
        inv->note(inv->arg, method, json_object_get(msg, "params"));
    json_decref(msg);
}

int nx_invoke(nx_mcp_server_t *server, const char *method, const json_t *params,
              const nx_invoke_opts_t *opts, nx_invoke_done_fn done, void *arg, nx_invoke_t **out) {
    *out = NULL;
    nx_invoke_t *inv = calloc(1, sizeof(*inv));
    json_t *id = json_integer(1);
    if (inv == NULL || id == NULL) {
        free(inv);
        json_decref(id);
        return -ENOMEM;
    }
    inv->done = done;
    inv->arg = arg;
    inv->note = opts ? opts->note : NULL;
    bool answered = false;
    inv->answered_inline = &answered;
    nx_rpc_msg_t msg = {
        .kind = NX_RPC_REQUEST, .id = id, .method = method, .params = (json_t *)params};
    nx_mcp_request_ctx_t ctx = {.reply = on_reply,
                                .send = on_send,
                                .transport = inv,
                                .attempts_out = &inv->attempts,
                                .no_cache = opts ? opts->no_cache : false};
    nx_mcp_call_t *pending = NULL;
    nx_mcp_dispatch_t d = nx_mcp_server_dispatch(server, &msg, &ctx, &pending);
    json_decref(id);
    if (answered) return 0; /* <inv> is gone */
    if (d != NX_MCP_PENDING) {
        /* A notification-like outcome cannot happen for a request; answer it as a failure. */
        json_t *e = json_pack("{s:i, s:s}", "code", NX_RPC_INTERNAL_ERROR, "message",
                              "the request was not answered");
        done(arg, NULL, e, 0);
        json_decref(e);
        free(inv);
        return 0;
    }
    inv->answered_inline = NULL;
    inv->pending = pending;
    *out = inv;
    return 0;
}

void nx_invoke_cancel(nx_invoke_t *inv) {
    if (inv == NULL) return;
    nx_mcp_call_cancel(inv->pending);
    free(inv);
}
