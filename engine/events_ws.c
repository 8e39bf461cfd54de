/* The Events channel over WebSocket: /ws with subprotocol "nexus.events" (or /ws?events=1).
 * The client sends {"type":"subscribe"[,"execution":ID][,"last_event_id":N][,"id":any]},
 * {"type":"unsubscribe"[,"execution":ID]} or {"type":"ping"}; the server answers each with
 * subscribed / unsubscribed / pong (echoing "id"), sends {"type":"event","id":N,"event":T,
 * "data":{...}} frames, {"type":"reset"} when events were lost, and {"type":"error"} for a
 * message it cannot use, keeping the connection. An execution subscription ends by itself after
 * the execution's terminal event ({"type":"unsubscribed","reason":"ended"}). Ping/pong
 * keep-alive and the dead-peer timeout follow mcp.ws_ping_interval / mcp.ws_pong_timeout; a
 * client too slow for the bus's flow control is closed with 1008. */
#include "events.h"

#include "events_internal.h"
#include "executions.h"
#include "mcp_rules.h"
#include "nexus/errors.h"
#include "ws.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_MAX_MESSAGE (64u << 10) /* control messages are small */
#define WS_CLOSE_LINGER_MS 2000u
#define WS_CLOSE_DEADLINE_MS 5000u /* a peer that never reads our close is dropped */
#define SUBPROTOCOL "nexus.events"

/* One WebSocket event client; owned by its nx_conn_t (freed in on_free). */
typedef struct ev_ws {
    nx_event_sub_t sub; /* attached from the handshake on, with no filter until subscribe */
    nx_list_t link;     /* in the shard's ws_conns */
    nx_conn_t *conn;
    nx_engine_shard_t *es;
    nx_ws_parser_t parser;
    nx_buf_t in; /* bytes of a frame not yet complete, kept as the parser left them */
    nx_timer_t keepalive;
    nx_timer_t close_deadline;
    bool ping_outstanding;
    bool close_sent;
} ev_ws_t;

static const nx_mcp_limits_t *limits(const ev_ws_t *ws) {
    return &ws->es->config->config.mcp_limits;
}

static void arm_keepalive(ev_ws_t *ws) {
    uint32_t every = limits(ws)->ws_ping_interval_ms;
    if (every > 0) nx_shard_timer_start(ws->es->shard, &ws->keepalive, every);
}

static void send_frame(ev_ws_t *ws, nx_ws_opcode_t op, const void *p, size_t n) {
    if (ws->close_sent || ws->conn->state != NX_CONN_OPEN) return;
    nx_ws_encode_frame(nx_conn_out(ws->conn), op, true, p, n, NULL);
    nx_conn_flush(ws->conn);
}

/* Starts the close handshake; the connection closes when the peer answers, after the linger,
 * or at the deadline if the peer does not even read. */
static void send_close(ev_ws_t *ws, uint16_t code, const char *reason) {
    if (ws->close_sent || ws->conn->state != NX_CONN_OPEN) return;
    nx__events_detach(&ws->sub);
    nx_ws_encode_close(nx_conn_out(ws->conn), code, reason, NULL);
    ws->close_sent = true;
    nx_timer_stop(&ws->keepalive);
    nx_shard_timer_start(ws->es->shard, &ws->close_deadline, WS_CLOSE_DEADLINE_MS);
    nx_conn_close_graceful(ws->conn, WS_CLOSE_LINGER_MS);
}

static void send_json(ev_ws_t *ws, json_t *msg) {
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (text != NULL) send_frame(ws, NX_WS_OP_TEXT, text, strlen(text));
    free(text);
}

/* Adds the client's correlation "id" (if it sent one) to <msg>. */
static json_t *with_ref(json_t *msg, json_t *ref) {
    if (msg != NULL && ref != NULL) json_object_set(msg, "id", ref);
    return msg;
}

static void send_error(ev_ws_t *ws, json_t *ref, const char *message) {
    send_json(ws, with_ref(json_pack("{s:s, s:s}", "type", "error", "message", message), ref));
}

static size_t ws_unsent(const nx_event_sub_t *s) {
    return nx_conn_unsent(nx_container_of(s, ev_ws_t, sub)->conn);
}

static void ws_overflow(nx_event_sub_t *s, uint64_t next_id) {
    (void)next_id;
    send_close(nx_container_of(s, ev_ws_t, sub), NX_WS_CLOSE_POLICY,
               "subscriber too slow: events dropped; resume with last_event_id");
}

static void ws_deliver(nx_event_sub_t *s, const nx_event_t *ev) {
    ev_ws_t *ws = nx_container_of(s, ev_ws_t, sub);
    size_t n;
    const char *p = nx_event_ws_payload(ev, &n);
    send_frame(ws, NX_WS_OP_TEXT, p, n);
    /* An execution subscription is complete with its terminal event. */
    if (ev->terminal && nx__events_sub_has_exec(s, ev->execution)) {
        nx__events_unsubscribe(s, ev->execution);
        send_json(ws, json_pack("{s:s, s:s, s:s}", "type", "unsubscribed", "execution",
                                ev->execution, "reason", "ended"));
    }
}

static void ws_lost(nx_event_sub_t *s, uint64_t after, uint64_t oldest) {
    ev_ws_t *ws = nx_container_of(s, ev_ws_t, sub);
    bool unknown = after >= oldest;
    send_json(ws,
              json_pack("{s:s, s:s, s:I, s:I}", "type", "reset", "message",
                        unknown ? "last_event_id names no event of this server (restarted?): "
                                  "events may have been missed"
                                : "events after last_event_id are no longer retained: some "
                                  "were missed",
                        "last_event_id", (json_int_t)after, "oldest_event_id", (json_int_t)oldest));
}

static void ws_drain(nx_event_sub_t *s) {
    send_close(nx_container_of(s, ev_ws_t, sub), NX_WS_CLOSE_GOING_AWAY, "server shutting down");
}

static const nx_event_sub_ops_t ws_sub_ops = {.deliver = ws_deliver,
                                              .lost = ws_lost,
                                              .drain = ws_drain,
                                              .unsent = ws_unsent,
                                              .overflow = ws_overflow};

/* ---- client messages ---- */

static bool exec_id_ok(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n >= NX_EVENT_EXEC_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Reads "last_event_id": a non-negative integer or a decimal string (as SSE ids are). */
static bool read_last_id(json_t *v, uint64_t *out) {
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    const char *s = json_string_value(v);
    if (s == NULL || *s == '\0' || strlen(s) > 20) return false;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        uint64_t d = (uint64_t)(*s - '0');
        if (x > (UINT64_MAX - d) / 10) return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

static void handle_subscribe(ev_ws_t *ws, json_t *ref, const char *exec, json_t *last) {
    bool has_after = last != NULL;
    uint64_t after = 0;
    if (has_after && !read_last_id(last, &after)) {
        send_error(ws, ref, "last_event_id must be a non-negative integer (an event id)");
        return;
    }
    int state = 0;
    if (exec != NULL && (state = nx_executions_state(ws->es->engine, exec)) < 0) {
        send_error(ws, ref, "no such execution (records expire an hour after the end)");
        return;
    }
    nx_event_replay_t r;
    int rc = nx__events_subscribe(&ws->sub, exec, has_after, after, &r);
    if (rc == NX_ELIMIT) {
        send_error(ws, ref,
                   "too many execution subscriptions on this connection (64): "
                   "unsubscribe from some first");
        return;
    }
    if (rc < 0) {
        send_error(ws, ref, "out of memory");
        return;
    }
    json_t *ack = json_pack("{s:s, s:I, s:I}", "type", "subscribed", "last_event_id",
                            (json_int_t)r.last_id, "replay", (json_int_t)r.count);
    json_object_set_new(ack, "execution", exec ? json_string(exec) : json_null());
    send_json(ws, with_ref(ack, ref));
    bool terminal = r.terminal_seen;
    nx__events_replay_finish(&ws->sub, &r);
    if (exec != NULL && state > 0 && !terminal && nx__events_sub_has_exec(&ws->sub, exec)) {
        /* Ended before, and its terminal event was sent earlier or is gone: nothing follows. */
        nx__events_unsubscribe(&ws->sub, exec);
        send_json(ws, json_pack("{s:s, s:s, s:s}", "type", "unsubscribed", "execution", exec,
                                "reason", "ended"));
    }
}

static void handle_text(ev_ws_t *ws, const char *text, size_t len) {
    json_error_t je;
    json_t *msg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(msg)) {
        char m[300];
        if (msg == NULL)
            snprintf(m, sizeof(m), "not JSON: %s (line %d, column %d)", je.text, je.line,
                     je.column);
        else
            snprintf(m, sizeof(m), "a message must be a JSON object with a \"type\"");
        json_decref(msg);
        send_error(ws, NULL, m);
        return;
    }
    json_t *ref = json_object_get(msg, "id");
    const char *type = json_string_value(json_object_get(msg, "type"));
    json_t *jexec = json_object_get(msg, "execution");
    json_t *last = json_object_get(msg, "last_event_id");
    const char *exec = json_string_value(jexec);
    const char *k;
    json_t *v;
    const char *problem = NULL;
    json_object_foreach(msg, k, v) {
        if (strcmp(k, "type") && strcmp(k, "execution") && strcmp(k, "last_event_id") &&
            strcmp(k, "id")) {
            problem = "unknown member (expected type, execution, last_event_id, id)";
            break;
        }
    }
    if (problem == NULL && type == NULL)
        problem = "\"type\" (subscribe, unsubscribe or ping) is required";
    else if (problem == NULL && jexec != NULL && !json_is_null(jexec) &&
             (exec == NULL || !exec_id_ok(exec)))
        problem = "\"execution\" must be an execution id (x-...)";
    if (problem != NULL) {
        send_error(ws, ref, problem);
    } else if (strcmp(type, "subscribe") == 0) {
        handle_subscribe(ws, ref, exec, last);
    } else if (strcmp(type, "unsubscribe") == 0) {
        uint32_t n = nx__events_unsubscribe(&ws->sub, exec);
        if (n == 0) {
            send_error(ws, ref, exec ? "not subscribed to that execution" : "not subscribed");
        } else {
            json_t *ack = json_pack("{s:s, s:I}", "type", "unsubscribed", "removed", (json_int_t)n);
            json_object_set_new(ack, "execution", exec ? json_string(exec) : json_null());
            send_json(ws, with_ref(ack, ref));
        }
    } else if (strcmp(type, "ping") == 0) {
        send_json(ws, with_ref(json_pack("{s:s}", "type", "pong"), ref));
    } else {
        send_error(ws, ref, "unknown type (expected subscribe, unsubscribe or ping)");
    }
    json_decref(msg);
}

static void handle_event(ev_ws_t *ws, const nx_ws_event_t *ev) {
    switch (ev->type) {
    case NX_WS_TEXT:
        handle_text(ws, ev->payload.p, ev->payload.n);
        break;
    case NX_WS_BINARY:
        send_error(ws, NULL, "binary frames are not understood: send JSON text frames");
        break;
    case NX_WS_PING:
        send_frame(ws, NX_WS_OP_PONG, ev->payload.p, ev->payload.n);
        break;
    case NX_WS_PONG:
        ws->ping_outstanding = false;
        break;
    case NX_WS_CLOSE:
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
    ev_ws_t *ws = c->codec;
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
    ws->ping_outstanding = false;
    arm_keepalive(ws);
    if (from_in) {
        nx_buf_consume(&ws->in, off);
    } else if (off < n && nx_buf_append(&ws->in, buf + off, n - off) < 0) {
        send_close(ws, NX_WS_CLOSE_INTERNAL, "out of memory");
    }
}

static void on_keepalive(nx_timer_t *t) {
    ev_ws_t *ws = nx_container_of(t, ev_ws_t, keepalive);
    if (ws->ping_outstanding) {
        send_close(ws, NX_WS_CLOSE_GOING_AWAY, "no pong: peer presumed dead");
        return;
    }
    ws->ping_outstanding = true;
    send_frame(ws, NX_WS_OP_PING, "nx", 2);
    nx_shard_timer_start(ws->es->shard, &ws->keepalive, limits(ws)->ws_pong_timeout_ms);
}

static void on_close_deadline(nx_timer_t *t) {
    nx_conn_close(nx_container_of(t, ev_ws_t, close_deadline)->conn);
}

static void on_eof(nx_conn_t *c, int err) {
    (void)err;
    nx_conn_close(c);
}

static void on_free(nx_conn_t *c) {
    ev_ws_t *ws = c->codec;
    nx__events_detach(&ws->sub);
    nx_timer_stop(&ws->keepalive);
    nx_timer_stop(&ws->close_deadline);
    nx_ws_parser_dispose(&ws->parser);
    nx_buf_dispose(&ws->in);
    nx_list_remove(&ws->link);
    nx_engine_shard_t *es = ws->es;
    nx__events_shard(es)->ws_count--;
    free(ws);
    nx_engine_shard_maybe_stop(es);
}

static const nx_conn_ops_t ws_ops = {.on_data = on_data, .on_eof = on_eof, .on_free = on_free};

void nx__events_ws_close_all(nx_engine_shard_t *es) {
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &nx__events_shard(es)->ws_conns) {
        nx_conn_close(nx_container_of(pos, ev_ws_t, link)->conn);
    }
}

/* ---- handshake ---- */

/* True when the comma-separated <list> holds token <tok> (case-sensitive, as subprotocols are). */
static bool has_token(nx_str_t list, const char *tok) {
    size_t tl = strlen(tok), i = 0;
    while (list.p != NULL && i < list.n) {
        while (i < list.n && (list.p[i] == ' ' || list.p[i] == '\t' || list.p[i] == ','))
            i++;
        size_t start = i;
        while (i < list.n && list.p[i] != ',' && list.p[i] != ' ' && list.p[i] != '\t')
            i++;
        if (i - start == tl && memcmp(list.p + start, tok, tl) == 0) return true;
    }
    return false;
}

bool nx_events_ws_wanted(const nx_http_request_t *req) {
    if (has_token(nx_http_request_header(req, "Sec-WebSocket-Protocol"), SUBPROTOCOL)) return true;
    nx_str_t q = req->query;
    static const char *const on[] = {"events=1", "events=true", "events", NULL};
    for (size_t s = 0; q.p != NULL && s < q.n;) {
        size_t e = s;
        while (e < q.n && q.p[e] != '&')
            e++;
        for (size_t k = 0; on[k] != NULL; k++)
            if (e - s == strlen(on[k]) && memcmp(q.p + s, on[k], e - s) == 0) return true;
        s = e + 1;
    }
    return false;
}

void nx_events_ws_accept(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req) {
    /* Browsers send Origin on WebSocket handshakes and no CORS check applies: the same
     * DNS-rebinding protection as /mcp keeps a foreign page from reading the events. */
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
    static const char *const protocols[] = {SUBPROTOCOL, NULL};
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
    ev_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL || nx_ws_accept_key(hreq.key, accept) < 0) {
        free(ws);
        nx_http_respond_error(hc, 503, "cannot accept the WebSocket now", "Retry-After: 1\r\n");
        return;
    }
    rc = nx__events_attach(&ws->sub, &ws_sub_ops, es);
    if (rc < 0) {
        free(ws);
        nx_http_respond_error(hc, 503,
                              rc == NX_EFULL ? "too many event subscribers on this shard; retry "
                                               "later"
                                             : "draining: not accepting new WebSocket clients",
                              "Retry-After: 1\r\n");
        return;
    }
    ws->es = es;
    ws->conn = hc->conn;
    nx_ws_parser_init(&ws->parser, NX_WS_SERVER, WS_MAX_MESSAGE);
    nx_timer_init(&ws->keepalive, on_keepalive);
    nx_timer_init(&ws->close_deadline, on_close_deadline);
    nx_events_shard_t *sh = nx__events_shard(es);
    nx_list_insert_tail(&sh->ws_conns, &ws->link);
    sh->ws_count++;
    char extra[256];
    snprintf(extra, sizeof(extra),
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%.*s%s",
             accept, hs.protocol.n ? "Sec-WebSocket-Protocol: " : "", (int)hs.protocol.n,
             hs.protocol.n ? hs.protocol.p : "", hs.protocol.n ? "\r\n" : "");
    nx_http_respond(hc, 101, NULL, NULL, 0, extra);
    nx_http_upgrade(hc, &ws_ops, ws);
    arm_keepalive(ws);
}
