/* The MCP server core, independent of transports: lifecycle and capability negotiation, the tool
 * catalog and its pagination, argument validation and dispatch to native tools. A transport
 * decodes JSON-RPC, hands each message to nx_mcp_server_dispatch and sends what comes back
 * through its reply function. */
#ifndef NX_ENGINE_MCP_SERVER_H
#define NX_ENGINE_MCP_SERVER_H

#include "jsonrpc.h"
#include "nexus/mcp.h"

#include <stdint.h>

/* Sends a complete JSON-RPC response (stolen) for one request to the transport that received
 * it; called exactly once per request, possibly after dispatch has returned. */
typedef void (*nx_mcp_reply_fn)(void *transport, json_t *response);

/* What a transport knows about the request it dispatches. */
typedef struct nx_mcp_request_ctx {
    nx_mcp_reply_fn reply;
    void *transport;
} nx_mcp_request_ctx_t;

/* Outcome of dispatching one message. */
typedef enum nx_mcp_dispatch {
    NX_MCP_ANSWERED, /* the reply function has run */
    NX_MCP_PENDING,  /* a tool is running: the reply comes later (nx_mcp_call_t owns it) */
    NX_MCP_NO_REPLY, /* a notification or a response: nothing to send (HTTP 202) */
} nx_mcp_dispatch_t;

/** Handles <msg> (borrowed) under <ctx>; see nx_mcp_dispatch_t for when the reply is sent.
 *  A pending call is handed back in <*pending> (if non-NULL) so the transport can cancel it. */
nx_mcp_dispatch_t nx_mcp_server_dispatch(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                         const nx_mcp_request_ctx_t *ctx, nx_mcp_call_t **pending);
/** Cancels <call> (client gone, notifications/cancelled, shutdown): with a cancel hook the hook
 *  runs and the call is freed now; without one the call lives until the tool answers, and the
 *  answer is dropped. Either way the transport must forget <call>. */
void nx_mcp_call_cancel(nx_mcp_call_t *call);
/** Page size of tools/list (default 100). */
void nx_mcp_server_set_page_size(nx_mcp_server_t *s, uint32_t page_size);
/** The names of the registered tools, in order (a new JSON array). */
json_t *nx_mcp_server_tool_names(const nx_mcp_server_t *s);
/** Number of registered tools. */
uint32_t nx_mcp_server_tool_count(const nx_mcp_server_t *s);

#endif
