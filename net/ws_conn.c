/* The server side of a WebSocket connection (see ws_conn.h): input goes through nx_ws_parse with
 * an incomplete frame kept in <in> between reads, control frames are answered here, messages go
 * to the user's ops, and one timer does the keep-alive (ping, then the pong deadline). */
#include "ws_conn.h"

#include "nexus/errors.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void arm_keepalive(nx_ws_conn_t *ws) {
    uint32_t every = 0, timeout = 0;
    ws->ops->keepalive(ws, &every, &timeout);
    if (every > 0) nx_shard_timer_start(ws->conn->shard, &ws->keepalive, every);
}

static int send_frame(nx_ws_conn_t *ws, nx_ws_opcode_t op, const void *p, size_t n) {
    if (ws->close_sent || ws->conn->state != NX_CONN_OPEN) return NX_ECLOSED;
    int rc = nx_ws_encode_frame(nx_conn_out(ws->conn), op, true, p, n, NULL);
    nx_conn_flush(ws->conn);
    return rc;
}

int nx_ws_conn_send_text(nx_ws_conn_t *ws, const void *p, size_t n) {
    return send_frame(ws, NX_WS_OP_TEXT, p, n);
}

void nx_ws_conn_close(nx_ws_conn_t *ws, uint16_t code, const char *reason) {
    if (ws->close_sent || ws->conn->state != NX_CONN_OPEN) return;
    ws->close_sent = true; /* first, so that nothing on_closing does can send or close again */
    if (ws->ops->on_closing != NULL) ws->ops->on_closing(ws);
    nx_ws_encode_close(nx_conn_out(ws->conn), code, reason, NULL);
    nx_timer_stop(&ws->keepalive);
    if (ws->close_deadline_ms > 0)
        nx_shard_timer_start(ws->conn->shard, &ws->close_deadline, ws->close_deadline_ms);
    nx_conn_close_graceful(ws->conn, NX_WS_CONN_LINGER_MS);
}

static void handle_event(nx_ws_conn_t *ws, const nx_ws_event_t *ev) {
    switch (ev->type) {
    case NX_WS_TEXT:
        ws->ops->on_text(ws, ev->payload.p, ev->payload.n);
        break;
    case NX_WS_BINARY:
        ws->ops->on_binary(ws, ev->payload.p, ev->payload.n);
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
            nx_ws_conn_close(ws, code, "");
        } else {
            nx_conn_close(ws->conn);
        }
        break;
    case NX_WS_NONE:
        break;
    }
}

static void on_data(nx_conn_t *c, char *data, size_t len) {
    nx_ws_conn_t *ws = c->codec;
    char *buf = data;
    size_t n = len;
    bool from_in = ws->in.len > 0;
    if (from_in) {
        if (nx_buf_append(&ws->in, data, len) < 0) {
            nx_ws_conn_close(ws, NX_WS_CLOSE_INTERNAL, "out of memory");
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
                nx_ws_conn_close(ws, ws->parser.close_code, ws->parser.error_message);
            else if (rc != NX_ECLOSED)
                nx_ws_conn_close(ws, NX_WS_CLOSE_INTERNAL, "out of memory");
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
        nx_ws_conn_close(ws, NX_WS_CLOSE_INTERNAL, "out of memory");
    }
}

static void on_keepalive(nx_timer_t *t) {
    nx_ws_conn_t *ws = nx_container_of(t, nx_ws_conn_t, keepalive);
    if (ws->ping_outstanding) {
        nx_ws_conn_close(ws, NX_WS_CLOSE_GOING_AWAY, "no pong: peer presumed dead");
        return;
    }
    ws->ping_outstanding = true;
    send_frame(ws, NX_WS_OP_PING, "nx", 2);
    uint32_t every = 0, timeout = 0;
    ws->ops->keepalive(ws, &every, &timeout);
    nx_shard_timer_start(ws->conn->shard, &ws->keepalive, timeout);
}

static void on_close_deadline(nx_timer_t *t) {
    nx_conn_close(nx_container_of(t, nx_ws_conn_t, close_deadline)->conn);
}

static void on_eof(nx_conn_t *c, int err) {
    nx_conn_close(c);
}

static void on_free(nx_conn_t *c) {
    nx_ws_conn_t *ws = c->codec;
    nx_timer_stop(&ws->keepalive);
    nx_timer_stop(&ws->close_deadline);
    nx_ws_parser_dispose(&ws->parser);
    nx_buf_dispose(&ws->in);
    ws->ops->on_free(ws); /* last: it may free <ws> */
}

const nx_conn_ops_t nx_ws_conn_codec = {.on_data = on_data, .on_eof = on_eof, .on_free = on_free};

void nx_ws_conn_init(nx_ws_conn_t *ws, const nx_ws_conn_ops_t *ops, uint64_t max_message,
                     uint32_t close_deadline_ms) {
    memset(ws, 0, sizeof(*ws));
    ws->ops = ops;
    ws->close_deadline_ms = close_deadline_ms;
    nx_ws_parser_init(&ws->parser, NX_WS_SERVER, max_message);
    nx_buf_init(&ws->in);
    nx_timer_init(&ws->keepalive, on_keepalive);
    nx_timer_init(&ws->close_deadline, on_close_deadline);
}

void nx_ws_conn_start(nx_ws_conn_t *ws, nx_conn_t *c) {
    ws->conn = c;
    arm_keepalive(ws);
}

int nx_ws_conn_handshake(nx_http_conn_t *hc, const nx_http_request_t *req,
                         const char *const *protocols, nx_ws_upgrade_t *up) {
    nx_ws_handshake_req_t hreq;
    nx_ws_handshake_from_http(req, &hreq);
    nx_ws_handshake_t hs;
    nx_buf_t scratch; /* the 101 written here is not used: nx_ws_conn_accept answers */
    nx_buf_init(&scratch);
    int rc = nx_ws_handshake(&hreq, protocols, &hs, &scratch);
    nx_buf_dispose(&scratch);
    if (rc < 0) {
        char extra[96] = "";
        if (hs.extra_header) snprintf(extra, sizeof(extra), "%s\r\n", hs.extra_header);
        nx_http_respond_error(hc, rc == -ENOMEM ? 503 : hs.status,
                              hs.error ? hs.error : "out of memory", extra);
        return rc;
    }
    if (nx_ws_accept_key(hreq.key, up->accept) < 0) {
        nx_http_respond_error(hc, 503, "cannot accept the WebSocket now", "Retry-After: 1\r\n");
        return -EIO;
    }
    up->protocol = hs.protocol;
    return 0;
}

void nx_ws_conn_accept(nx_ws_conn_t *ws, nx_http_conn_t *hc, const nx_ws_upgrade_t *up) {
    nx_conn_t *c = hc->conn;
    nx_str_t proto = up->protocol;
    char extra[256];
    snprintf(extra, sizeof(extra),
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%.*s%s",
             up->accept, proto.n ? "Sec-WebSocket-Protocol: " : "", (int)proto.n,
             proto.n ? proto.p : "", proto.n ? "\r\n" : "");
    nx_http_respond(hc, 101, NULL, NULL, 0, extra);
    nx_http_upgrade(hc, &nx_ws_conn_codec, ws);
    nx_ws_conn_start(ws, c);
}
