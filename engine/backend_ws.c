/* The WebSocket link of a backend (see backend_link.h): one MCP session with one replica, held
 * by one shard, over one WebSocket connection (net/ws_client.h) that asks for the subprotocol
 * "mcp" and carries one JSON-RPC message per text frame, both ways.
 *
 * The connection is the session: when it ends (the server closed it, died, or broke the
 * protocol) the link is down and the backend connects again after its backoff. Unlike
 * Streamable HTTP nothing ties what the server sends to the request it serves, so messages are
 * handed over unrelated (the backend attributes them as it does for stdio). At shutdown the
 * link ends with the close handshake (1000). */
#include "backend_link.h"

#include "backends.h"
#include "log.h"
#include "nexus/errors.h"
#include "ws_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE (16u << 20) /* one message from the server at most */
#define CLOSE_TIMEOUT_MS 1000u

static void on_open(nx_ws_client_t *c, void *arg) {
    nx_backend_link_up(arg);
}

static void on_message(nx_ws_client_t *c, const char *data, size_t len, bool binary, void *arg) {
    /* MCP uses text frames; a server that sends its JSON in binary ones is still understood. */
    nx_backend_link_receive(arg, data, len, 0);
}

static void on_close(nx_ws_client_t *c, int code, const char *reason, void *arg) {
    nx_backend_instance_t *in = arg;
    char why[256];
    if (!nx_ws_client_opened(c))
        snprintf(why, sizeof(why), "WebSocket connection failed: %s", reason);
    else
        snprintf(why, sizeof(why), "WebSocket closed (%d%s%s)", code, reason[0] ? ": " : "",
                 reason);
    in->link = NULL;
    nx_backend_link_down(in, why, false);
}

static const nx_ws_client_ops_t ws_ops = {
    .on_open = on_open, .on_message = on_message, .on_close = on_close};

static int ws_start(nx_backend_instance_t *in) {
    const nx_backend_spec_t *sp = in->spec;
    const nx_backend_url_t *u = &sp->urls[in->replica];
    const nx_resolved_t *addr = nx_backend_instance_address(in);
    char host[300];
    snprintf(host, sizeof(host), strchr(u->host, ':') != NULL ? "[%s]:%u" : "%s:%u", u->host,
             u->port);
    nx_ws_client_opts_t o = {
        .host = host,
        .path = u->path,
        .subprotocol = "mcp",
        .headers = sp->header_fields,
        .header_count = sp->header_field_count,
        .connect_timeout_ms = sp->connect_timeout_ms,
        .close_timeout_ms = CLOSE_TIMEOUT_MS,
        .max_message = MAX_MESSAGE,
    };
    nx_ws_client_t *c = NULL;
    int rc = nx_ws_client_connect(in->es->shard, (const struct sockaddr *)&addr->addr, addr->len,
                                  &o, &ws_ops, in, &c);
    if (rc < 0) return rc;
    in->link = c;
    return 0;
}

static int ws_send(nx_backend_instance_t *in, const char *text, size_t len, json_int_t request_id) {
    if (in->link == NULL) return -EPIPE;
    return nx_ws_client_send_text(in->link, text, len) < 0 ? -EPIPE : 0;
}

static void ws_drain(nx_backend_instance_t *in) {
    /* The server answers our close and the link goes down then (or after a timeout). */
    if (in->link != NULL) nx_ws_client_close(in->link, NX_WS_CLOSE_NORMAL, NULL);
}

static void ws_destroy(nx_backend_instance_t *in) {
    nx_ws_client_abort(in->link);
    in->link = NULL;
}

const nx_backend_link_ops_t nx_backend_ws_link = {
    .name = "ws",
    .start = ws_start,
    .send = ws_send,
    .drain = ws_drain,
    .destroy = ws_destroy,
};
