/* What the message-oriented MCP transports (WebSocket, stdio) share: one JSON-RPC message in,
 * dispatch to the server core, answers out in whatever order tools finish, the calls still
 * running (cancelled by notifications/cancelled or when the transport ends). The transport
 * embeds an nx_mcp_stream_t and supplies the function that sends one message. */
#ifndef NX_ENGINE_MCP_STREAM_H
#define NX_ENGINE_MCP_STREAM_H

#include "mcp_server.h"
#include "nexus/list.h"

#include <stddef.h>

typedef struct nx_mcp_stream nx_mcp_stream_t;

/* Sends <msg> (stolen) to the peer of <st>. */
typedef void (*nx_mcp_stream_send_fn)(nx_mcp_stream_t *st, json_t *msg);

/* Embedded in its transport. */
struct nx_mcp_stream {
    nx_mcp_server_t *server;
    nx_mcp_stream_send_fn send;
    nx_list_t calls;                   /* requests not answered yet */
    void (*drop)(nx_mcp_stream_t *st); /* resets the connection (nx_mcp_call_drop_connection);
                                          NULL where there is none (stdio) */
    nx_mcp_peer_t peer; /* the client: log level, subscriptions, server-to-client requests */
};

/** Prepares <st> to dispatch to <server> and answer through <send>. */
void nx_mcp_stream_init(nx_mcp_stream_t *st, nx_mcp_server_t *server, nx_mcp_stream_send_fn send);
/** Handles one received message of <n> bytes: decodes, dispatches, answers (now or later). */
void nx_mcp_stream_handle(nx_mcp_stream_t *st, const char *p, size_t n);
/** True while some request is still being answered. */
bool nx_mcp_stream_busy(const nx_mcp_stream_t *st);
/** Cancels every running call (the transport is ending); their answers are dropped. */
void nx_mcp_stream_cancel_all(nx_mcp_stream_t *st);
/** Cancels what still runs and forgets the client; <st> is unusable afterwards. */
void nx_mcp_stream_dispose(nx_mcp_stream_t *st);

#endif
