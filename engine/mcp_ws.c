/* MCP over WebSocket on the MCP port (GET /mcp or /ws with Upgrade: websocket, subprotocol
 * "mcp"): one JSON-RPC message per text frame (mcp_stream.c), a session per connection, ping/pong
 * keep-alive with a dead-peer timeout, the close handshake, and 1009 for messages over the size
 * limit. Frames, keep-alive and the close handshake are net/ws_conn.c's; this file maps them
 * onto an MCP stream and closes binary frames with 1003. */
#include "mcp_ws.h"

#include "events.h"
#include "jsonrpc.h"
#include "mcp_stream.h"
#include "log.h"
#include "mcp_server.h"
#include "ws_server.h"

#include <stdlib.h>

typedef struct mcp_ws mcp_ws_t;

/* One WebSocket client; owned by its nx_conn_t (freed in ws_free). */
struct mcp_ws {
    nx_ws_conn_t ws;
    nx_list_t link; /* in es->ws_clients */
    nx_engine_shard_t *es;
    nx_mcp_stream_t stream; /* the requests of this connection */
};

static mcp_ws_t *of_conn(nx_ws_conn_t *ws) {
    return nx_container_of(ws, mcp_ws_t, ws);
}

static void send_json(mcp_ws_t *ws, json_t *msg) {
    size_t len = 0;
    char *text = msg ? nx_rpc_encode(msg, &len) : NULL;
    json_decref(msg);
    if (text != NULL) nx_ws_conn_send_text(&ws->ws, text, len);
    free(text);
}

static void ws_send(nx_mcp_stream_t *st, json_t *msg) {
    send_json(nx_container_of(st, mcp_ws_t, stream), msg);
}

static void ws_drop(nx_mcp_stream_t *st) {
    nx_conn_reset(nx_container_of(st, mcp_ws_t, stream)->ws.conn);
}

static void ws_text(nx_ws_conn_t *ws, const char *data, size_t len) {
    nx_mcp_stream_handle(&of_conn(ws)->stream, data, len);
}

static void ws_binary(nx_ws_conn_t *ws, const char *data, size_t len) {
    nx_ws_conn_close(ws, NX_WS_CLOSE_UNSUPPORTED, "MCP over WebSocket uses text frames");
}

static void ws_keepalive(nx_ws_conn_t *ws, uint32_t *interval_ms, uint32_t *timeout_ms) {
    nx_ws_server_keepalive(of_conn(ws)->es, interval_ms, timeout_ms);
}

static void ws_free(nx_ws_conn_t *c) {
    mcp_ws_t *ws = of_conn(c);
    nx_mcp_stream_dispose(&ws->stream);
    nx_list_remove(&ws->link);
    nx_engine_shard_t *es = ws->es;
    es->ws_count--;
    free(ws);
    nx_engine_shard_maybe_stop(es);
}

static const nx_ws_conn_ops_t ws_ops = {
    .on_text = ws_text, .on_binary = ws_binary, .keepalive = ws_keepalive, .on_free = ws_free};

void nx_mcp_ws_drain(nx_engine_shard_t *es) {
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &es->ws_clients) {
        nx_ws_conn_close(&nx_container_of(pos, mcp_ws_t, link)->ws, NX_WS_CLOSE_GOING_AWAY,
                         "server shutting down");
    }
}

void nx_mcp_ws_close_all(nx_engine_shard_t *es) {
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &es->ws_clients) {
        nx_conn_close(nx_container_of(pos, mcp_ws_t, link)->ws.conn);
    }
}

bool nx_mcp_ws_is_upgrade(const nx_http_request_t *req) {
    return req->upgrade &&
           nx_str_eq_lit_nocase(nx_http_request_header(req, "Upgrade"), "websocket");
}

void nx_mcp_ws_accept(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req) {
    static const char *const protocols[] = {"mcp", NULL};
    nx_ws_upgrade_t up;
    mcp_ws_t *ws = nx_ws_server_admit(es, hc, req, protocols, sizeof(*ws), &up);
    if (ws == NULL) return;
    ws->es = es;
    nx_ws_conn_init(&ws->ws, &ws_ops, es->config->config.mcp_limits.max_message, 0);
    nx_mcp_stream_init(&ws->stream, es->engine->mcp, ws_send);
    ws->stream.drop = ws_drop;
    nx_list_insert_tail(&es->ws_clients, &ws->link);
    es->ws_count++;
    nx_ws_conn_accept(&ws->ws, hc, &up);
}

void nx_mcp_route_ws(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                     const nx_route_match_t *m) {
    if (!nx_mcp_ws_is_upgrade(req)) {
        nx_http_respond_error(hc, 426,
                              "this endpoint speaks MCP over WebSocket: send "
                              "Connection: Upgrade, Upgrade: websocket",
                              "Upgrade: websocket\r\n");
        return;
    }
    /* The Events channel shares /ws: chosen by subprotocol nexus.events or ?events=1. */
    if (nx_events_ws_wanted(req)) {
        nx_events_ws_accept(es, hc, req);
        return;
    }
    nx_mcp_ws_accept(es, hc, req);
}
