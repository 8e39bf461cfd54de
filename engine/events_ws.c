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
#include "log.h"
#include "nexus/errors.h"
#include "ws_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_MAX_MESSAGE (64u << 10) /* control messages are small */
#define WS_CLOSE_DEADLINE_MS 5000u /* a peer that never reads our close is dropped */
#define SUBPROTOCOL "nexus.events"

/* One WebSocket event client; owned by its nx_conn_t (freed in ws_free). */
typedef struct ev_ws {
    nx_ws_conn_t ws;
    nx_event_sub_t sub; /* attached from the handshake on, with no filter until subscribe */
    nx_list_t link;     /* in the shard's ws_conns */
    nx_engine_shard_t *es;
} ev_ws_t;

static ev_ws_t *of_conn(nx_ws_conn_t *ws) {
    return nx_container_of(ws, ev_ws_t, ws);
}

static void send_json(ev_ws_t *ws, json_t *msg) {
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (text != NULL) nx_ws_conn_send_text(&ws->ws, text, strlen(text));
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
    return nx_conn_unsent(nx_container_of(s, ev_ws_t, sub)->ws.conn);
}

static void ws_overflow(nx_event_sub_t *s, uint64_t next_id) {
    (void)next_id;
    nx_ws_conn_close(&nx_container_of(s, ev_ws_t, sub)->ws, NX_WS_CLOSE_POLICY,
                     "subscriber too slow: events dropped; resume with last_event_id");
}

static void ws_deliver(nx_event_sub_t *s, nx_event_t *ev) {
    ev_ws_t *ws = nx_container_of(s, ev_ws_t, sub);
    size_t n;
    const char *p = nx_event_ws_payload(ev, &n);
    if (p == NULL) {
        /* Skipping it would leave a silent gap: close (which detaches) so the client resumes
         * with last_event_id, as after an overflow. */
        nx_log_warn("events: out of memory writing event %llu; closing a WebSocket client",
                    (unsigned long long)ev->id);
        nx_ws_conn_close(&ws->ws, NX_WS_CLOSE_INTERNAL,
                         "server out of memory: events dropped; resume with last_event_id");
        return;
    }
    nx_ws_conn_send_text(&ws->ws, p, n);
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
    nx_ws_conn_close(&nx_container_of(s, ev_ws_t, sub)->ws, NX_WS_CLOSE_GOING_AWAY,
                     "server shutting down");
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

static void ws_text(nx_ws_conn_t *ws, const char *data, size_t len) {
    handle_text(of_conn(ws), data, len);
}

static void ws_binary(nx_ws_conn_t *ws, const char *data, size_t len) {
    send_error(of_conn(ws), NULL, "binary frames are not understood: send JSON text frames");
}

static void ws_keepalive(nx_ws_conn_t *ws, uint32_t *interval_ms, uint32_t *timeout_ms) {
    nx_ws_server_keepalive(of_conn(ws)->es, interval_ms, timeout_ms);
}

/* No event may follow our close frame. */
static void ws_closing(nx_ws_conn_t *ws) {
    nx__events_detach(&of_conn(ws)->sub);
}

static void ws_free(nx_ws_conn_t *c) {
    ev_ws_t *ws = of_conn(c);
    nx__events_detach(&ws->sub);
    nx_list_remove(&ws->link);
    nx_engine_shard_t *es = ws->es;
    nx__events_shard(es)->ws_count--;
    free(ws);
    nx_engine_shard_maybe_stop(es);
}

static const nx_ws_conn_ops_t ws_ops = {.on_text = ws_text,
                                        .on_binary = ws_binary,
                                        .keepalive = ws_keepalive,
                                        .on_closing = ws_closing,
                                        .on_free = ws_free};

void nx__events_ws_close_all(nx_engine_shard_t *es) {
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &nx__events_shard(es)->ws_conns) {
        nx_conn_close(nx_container_of(pos, ev_ws_t, link)->ws.conn);
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
    static const char *const protocols[] = {SUBPROTOCOL, NULL};
    nx_ws_upgrade_t up;
    ev_ws_t *ws = nx_ws_server_admit(es, hc, req, protocols, sizeof(*ws), &up);
    if (ws == NULL) return;
    int rc = nx__events_attach(&ws->sub, &ws_sub_ops, es);
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
    nx_ws_conn_init(&ws->ws, &ws_ops, WS_MAX_MESSAGE, WS_CLOSE_DEADLINE_MS);
    nx_events_shard_t *sh = nx__events_shard(es);
    nx_list_insert_tail(&sh->ws_conns, &ws->link);
    sh->ws_count++;
    nx_ws_conn_accept(&ws->ws, hc, &up);
}
