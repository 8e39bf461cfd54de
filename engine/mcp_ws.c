/* MCP over WebSocket on the MCP port (GET /mcp or /ws with Upgrade: websocket, subprotocol
 * "mcp"): one JSON-RPC message per text frame (mcp_stream.c), a session per connection, ping/pong
 * keep-alive with a dead-peer timeout, the close handshake, and 1009 for messages over the size
 * limit. The connection is a codec on nx_conn_t (net/conn.h) after the HTTP upgrade hand-off. */
#include "mcp_ws.h"

#include "events.h"
#include "jsonrpc.h"
#include "mcp_stream.h"
#include "log.h"
#include "mcp_rules.h"
#include "mcp_server.h"
#include "nexus/errors.h"
#include "ws.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_CLOSE_LINGER_MS 2000u

typedef struct mcp_ws mcp_ws_t;

/* One WebSocket client; owned by its nx_conn_t (freed in on_free). */
struct mcp_ws {
    nx_list_t link; /* in es->ws_clients */
    nx_conn_t *conn;
    nx_engine_shard_t *es;
    nx_ws_parser_t parser;
    nx_buf_t in; /* bytes of a frame not yet complete, kept as the parser left them */
    nx_timer_t keepalive;
    bool ping_outstanding;
    bool close_sent;
    nx_mcp_stream_t stream; /* the requests of this connection */
};

static const nx_mcp_limits_t *limits(const mcp_ws_t *ws) {
    return &ws->es->config->config.mcp_limits;
}

/* Arms the next keep-alive ping, unless pings are switched off. */
static void arm_keepalive(mcp_ws_t *ws) {
    uint32_t every = limits(ws)->ws_ping_interval_ms;
    if (every > 0) nx_shard_timer_start(ws->es->shard, &ws->keepalive, every);
}

static void send_frame(mcp_ws_t *ws, nx_ws_opcode_t op, const void *p, size_t n) {
    if (ws->close_sent || ws->conn->state != NX_CONN_OPEN) return;
    nx_ws_encode_frame(nx_conn_out(ws->conn), op, true, p, n, NULL);
    nx_conn_flush(ws->conn);
}

/* Starts the close handshake with <code>; the connection closes once the peer answers or
 * after a linger. */
static void send_close(mcp_ws_t *ws, uint16_t code, const char *reason) {
    if (ws->close_sent || ws->conn->state != NX_CONN_OPEN) return;
    nx_ws_encode_close(nx_conn_out(ws->conn), code, reason, NULL);
    ws->close_sent = true;
    nx_timer_stop(&ws->keepalive);
    nx_conn_close_graceful(ws->conn, WS_CLOSE_LINGER_MS);
}

static void send_json(mcp_ws_t *ws, json_t *msg) {
    size_t len = 0;
    char *text = msg ? nx_rpc_encode(msg, &len) : NULL;
    json_decref(msg);
    if (text != NULL) send_frame(ws, NX_WS_OP_TEXT, text, len);
    free(text);
}

static void ws_send(nx_mcp_stream_t *st, json_t *msg) {
    send_json(nx_container_of(st, mcp_ws_t, stream), msg);
}

static void ws_drop(nx_mcp_stream_t *st) {
    nx_conn_reset(nx_container_of(st, mcp_ws_t, stream)->conn);
}

static void handle_event(mcp_ws_t *ws, const nx_ws_event_t *ev) {
    switch (ev->type) {
    case NX_WS_TEXT:
        nx_mcp_stream_handle(&ws->stream, ev->payload.p, ev->payload.n);
        break;
    case NX_WS_BINARY:
        send_close(ws, NX_WS_CLOSE_UNSUPPORTED, "MCP over WebSocket uses text frames");
        break;
    case NX_WS_PING:
        send_frame(ws, NX_WS_OP_PONG, ev->payload.p, ev->payload.n);
        break;
    case NX_WS_PONG:
        ws->ping_outstanding = false;
        break;
    case NX_WS_CLOSE:
        /* Echo the peer's code (RFC 6455 5.5.1), then close. */
        if (!ws->close_sent) {
            uint16_t code =
                ev->close_code == NX_WS_CLOSE_NO_STATUS ? NX_WS_CLOSE_NORMAL : ev->close_code;
            send_close(ws, code, "");
        } else {
            nx_conn_close(ws->conn);
        }
        break;
    case NX_WS_NONE:
        break;
    }
}

static void on_data(nx_conn_t *c, char *data, size_t len) {
    mcp_ws_t *ws = c->codec;
    char *buf = data;
    size_t n = len;
    bool from_in = ws->in.len > 0;
    if (from_in) {
        if (nx_buf_append(&ws->in, data, len) < 0) {
            send_close(ws, NX_WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
        buf = ws->in.data;
        n = ws->in.len;
    }
    size_t off = 0;
    while (off < n && !ws->close_sent && c->state == NX_CONN_OPEN) {
        nx_ws_event_t ev;
        int rc = nx_ws_parse(&ws->parser, buf + off, n - off, &ev);
        if (rc == NX_AGAIN) break;
        if (rc < 0) {
            if (rc == NX_EPROTO)
                send_close(ws, ws->parser.close_code, ws->parser.error_message);
            else if (rc != NX_ECLOSED)
                send_close(ws, NX_WS_CLOSE_INTERNAL, "out of memory");
            off = n;
            break;
        }
        off += (size_t)rc;
        handle_event(ws, &ev);
    }
    if (c->state != NX_CONN_OPEN || ws->close_sent) {
        nx_buf_clear(&ws->in);
        return;
    }
    /* Anything from the peer proves it alive: back to the regular ping interval. */
    ws->ping_outstanding = false;
    arm_keepalive(ws);
    if (from_in) {
        nx_buf_consume(&ws->in, off);
    } else if (off < n && nx_buf_append(&ws->in, buf + off, n - off) < 0) {
        send_close(ws, NX_WS_CLOSE_INTERNAL, "out of memory");
    }
}

static void on_keepalive(nx_timer_t *t) {
    mcp_ws_t *ws = nx_container_of(t, mcp_ws_t, keepalive);
    if (ws->ping_outstanding) {
        send_close(ws, NX_WS_CLOSE_GOING_AWAY, "no pong: peer presumed dead");
        return;
    }
    ws->ping_outstanding = true;
    send_frame(ws, NX_WS_OP_PING, "nx", 2);
    nx_shard_timer_start(ws->es->shard, &ws->keepalive, limits(ws)->ws_pong_timeout_ms);
}

static void on_eof(nx_conn_t *c, int err) {
    nx_conn_close(c);
}

static void on_free(nx_conn_t *c) {
    mcp_ws_t *ws = c->codec;
    nx_mcp_stream_dispose(&ws->stream);
    nx_timer_stop(&ws->keepalive);
    nx_ws_parser_dispose(&ws->parser);
    nx_buf_dispose(&ws->in);
    nx_list_remove(&ws->link);
    nx_engine_shard_t *es = ws->es;
    es->ws_count--;
    free(ws);
    nx_engine_shard_maybe_stop(es);
}

void nx_mcp_ws_drain(nx_engine_shard_t *es) {
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &es->ws_clients) {
        send_close(nx_container_of(pos, mcp_ws_t, link), NX_WS_CLOSE_GOING_AWAY,
                   "server shutting down");
    }
}

void nx_mcp_ws_close_all(nx_engine_shard_t *es) {
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &es->ws_clients) {
        nx_conn_close(nx_container_of(pos, mcp_ws_t, link)->conn);
    }
}

static const nx_conn_ops_t ws_ops = {.on_data = on_data, .on_eof = on_eof, .on_free = on_free};

bool nx_mcp_ws_is_upgrade(const nx_http_request_t *req) {
    return req->upgrade &&
           nx_str_eq_lit_nocase(nx_http_request_header(req, "Upgrade"), "websocket");
}

void nx_mcp_ws_accept(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req) {
    /* Browsers send Origin on WebSocket handshakes: the same DNS-rebinding protection as /mcp
     * keeps a foreign page from driving this server. */
    char msg[256];
    nx_mcp_origin_policy_t policy = {.allowed_hosts = es->engine->mcp_allowed_hosts};
    int status = nx_mcp_check_origin(&policy, nx_http_request_header(req, "Origin"), req->host, msg,
                                     sizeof(msg));
    if (status != 0) {
        nx_http_respond_error(hc, status, msg, NULL);
        return;
    }
    if (es->draining) {
        nx_http_respond_error(hc, 503, "draining: not accepting new WebSocket clients",
                              "Retry-After: 1\r\n");
        return;
    }
    static const char *const protocols[] = {"mcp", NULL};
    nx_ws_handshake_req_t hreq;
    nx_ws_handshake_from_http(req, &hreq);
    nx_ws_handshake_t hs;
    nx_buf_t scratch;
    nx_buf_init(&scratch);
    int rc = nx_ws_handshake(&hreq, protocols, &hs, &scratch);
    nx_buf_dispose(&scratch);
    if (rc < 0) {
        char extra[96] = "";
        if (hs.extra_header) snprintf(extra, sizeof(extra), "%s\r\n", hs.extra_header);
        nx_http_respond_error(hc, rc == -ENOMEM ? 503 : hs.status,
                              hs.error ? hs.error : "out of memory", extra);
        return;
    }
    char accept[NX_WS_ACCEPT_LEN + 1];
    mcp_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL || nx_ws_accept_key(hreq.key, accept) < 0) {
        free(ws);
        nx_http_respond_error(hc, 503, "cannot accept the WebSocket now", "Retry-After: 1\r\n");
        return;
    }
    ws->es = es;
    ws->conn = hc->conn;
    nx_ws_parser_init(&ws->parser, NX_WS_SERVER, es->config->config.mcp_limits.max_message);
    nx_mcp_stream_init(&ws->stream, es->engine->mcp, ws_send);
    ws->stream.drop = ws_drop;
    nx_timer_init(&ws->keepalive, on_keepalive);
    nx_list_insert_tail(&es->ws_clients, &ws->link);
    es->ws_count++;
    char extra[256];
    snprintf(extra, sizeof(extra),
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%.*s%s",
             accept, hs.protocol.n ? "Sec-WebSocket-Protocol: " : "", (int)hs.protocol.n,
             hs.protocol.n ? hs.protocol.p : "", hs.protocol.n ? "\r\n" : "");
    nx_http_respond(hc, 101, NULL, NULL, 0, extra);
    nx_http_upgrade(hc, &ws_ops, ws);
    arm_keepalive(ws);
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
