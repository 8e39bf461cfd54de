/* Operating the MCP front end over REST: how many clients are connected (GET
 * /api/v1/mcp/clients) and broadcasting a notification to all of them (POST
 * /api/v1/mcp/broadcast). A broadcast visits every shard through its mailbox: each one sends the
 * notification to its own clients (WebSocket, stdio, open GET streams, legacy SSE streams) and
 * reports how many it reached; the answer waits for every shard. */
#include "mcp_admin.h"

#include "jsonrpc.h"
#include "mcp_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One broadcast; owned by the shard that received the request (the origin). */
typedef struct broadcast {
    nx_engine_shard_t *origin;
    nx_http_conn_t *hc; /* NULL once the client went away */
    char *method;
    char *params; /* JSON text, or NULL: each shard decodes its own copy */
    uint32_t waiting;
    uint64_t delivered;
} broadcast_t;

typedef struct broadcast_visit {
    nx_msg_t msg;
    broadcast_t *b;
    uint64_t delivered;
    nx_shard_t *visited;
    nx_timer_t retry; /* re-posts the count when the origin's mailbox is full */
} broadcast_visit_t;

static void broadcast_done(broadcast_t *b) {
    nx_engine_shard_t *origin = b->origin;
    if (b->hc != NULL)
        nx_respond_json(
            b->hc, 200,
            json_pack("{s:s, s:I}", "method", b->method, "delivered", (json_int_t)b->delivered));
    free(b->method);
    free(b->params);
    free(b);
    origin->mcp_forwards_out--;
    nx_engine_shard_maybe_stop(origin);
}

static void on_visit_back(nx_shard_t *s, nx_msg_t *m) {
    broadcast_visit_t *v = (broadcast_visit_t *)m;
    broadcast_t *b = v->b;
    b->delivered += v->delivered;
    free(v);
    if (--b->waiting == 0) broadcast_done(b);
}

static void post_back(nx_timer_t *t) {
    broadcast_visit_t *v = nx_container_of(t, broadcast_visit_t, retry);
    v->msg.fn = on_visit_back;
    /* The origin waits for every shard, so the count must arrive: retry until it fits. */
    if (nx_shard_post(v->b->origin->shard, v->visited->loop, &v->msg) < 0)
        nx_shard_timer_start(v->visited, &v->retry, 1);
}

static void on_visit(nx_shard_t *s, nx_msg_t *m) {
    broadcast_visit_t *v = (broadcast_visit_t *)m;
    broadcast_t *b = v->b;
    json_t *params = b->params ? json_loads(b->params, 0, NULL) : NULL;
    v->delivered = nx_mcp_broadcast(b->method, params);
    v->visited = s;
    nx_timer_init(&v->retry, post_back);
    post_back(&v->retry);
}

static void on_broadcast_client_gone(nx_http_conn_t *hc, void *arg) {
    broadcast_t *b = arg;
    b->hc = NULL;
}

void nx_mcp_route_broadcast(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                            const nx_route_match_t *m) {
    json_error_t je;
    json_t *body = json_loadb(req->body.p, req->body.n, JSON_REJECT_DUPLICATES, &je);
    const char *method = json_string_value(json_object_get(body, "method"));
    json_t *params = json_object_get(body, "params");
    if (body == NULL || !json_is_object(body) || method == NULL ||
        strncmp(method, "notifications/", 14) != 0 || (params && !json_is_object(params))) {
        json_decref(body);
        nx_http_respond_error(
            hc, 400, "expected {\"method\": \"notifications/...\", \"params\"?: {...}}", NULL);
        return;
    }
    broadcast_t *b = calloc(1, sizeof(*b));
    if (b != NULL) {
        b->method = strdup(method);
        b->params = params ? json_dumps(params, JSON_COMPACT) : NULL;
    }
    json_decref(body);
    if (b == NULL || b->method == NULL || (params && b->params == NULL)) {
        if (b) free(b->method), free(b->params);
        free(b);
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    b->origin = es;
    b->hc = hc;
    nx_engine_t *e = es->engine;
    b->waiting = 1; /* released below, after every visit is on its way */
    es->mcp_forwards_out++;
    nx_http_defer(hc, on_broadcast_client_gone, b);
    for (uint32_t i = 0; i < e->shard_count; i++) {
        broadcast_visit_t *v = calloc(1, sizeof(*v));
        if (v == NULL) continue;
        v->b = b;
        v->msg.fn = on_visit;
        b->waiting++;
        if (nx_shard_post(e->shards[i]->shard, es->shard->loop, &v->msg) < 0) {
            b->waiting--;
            free(v);
        }
    }
    if (--b->waiting == 0) broadcast_done(b);
}

void nx_mcp_route_clients(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                          const nx_route_match_t *m) {
    nx_engine_t *e = es->engine;
    uint64_t ws = 0;
    for (uint32_t i = 0; i < e->shard_count; i++)
        ws += __atomic_load_n(&e->shards[i]->ws_count, __ATOMIC_RELAXED);
    nx_respond_json(hc, 200,
                    json_pack("{s:I, s:I, s:b}", "websocket", (json_int_t)ws, "sessions",
                              (json_int_t)nx_engine_mcp_sessions(e), "stdio", e->stdio_mode));
}
