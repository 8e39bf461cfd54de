/* The MCP server core, independent of transports: lifecycle and capability negotiation, the
 * catalog (tools, resources, templates, prompts, completions) with pagination, argument
 * validation, dispatch to native handlers, and the per-client state (nx_mcp_peer_t) that
 * logging levels, subscriptions and server-to-client requests need. A transport decodes
 * JSON-RPC, hands each message to nx_mcp_server_dispatch with the client's peer and sends what
 * comes back through its functions. */
#ifndef NX_ENGINE_MCP_SERVER_H
#define NX_ENGINE_MCP_SERVER_H

#include "jsonrpc.h"
#include "nexus/list.h"
#include "nexus/str.h"
#include "nexus/mcp.h"

#include <stdint.h>

/* Sends a JSON-RPC message (stolen) to the transport of one request. */
typedef void (*nx_mcp_reply_fn)(void *transport, json_t *msg);

typedef struct nx_mcp_peer nx_mcp_peer_t;
/* Sends an unsolicited message (stolen) on the client's own stream (WebSocket, stdio, HTTP GET
 * stream); returns false, having released <msg>, when there is no such stream now. */
typedef bool (*nx_mcp_push_fn)(nx_mcp_peer_t *peer, json_t *msg);

/* What the server remembers about one client (a session, a WebSocket, stdio). Embedded in the
 * transport's object; lives on one shard thread. */
struct nx_mcp_peer {
    nx_list_t link; /* in the calling thread's peer list (broadcasts) */
    nx_mcp_log_level_t log_level;
    bool initialized; /* initialize answered (legacy era) */
    char protocol_version[16];
    json_t *client_capabilities; /* {} until initialize */
    json_t *subscriptions;       /* resource URIs subscribed to: {uri: true} */
    nx_list_t calls;             /* calls in flight on behalf of this client */
    nx_list_t outgoing;          /* server-to-client requests awaiting an answer */
    json_int_t next_request_id;
    nx_mcp_push_fn push; /* NULL: no stream of its own */
    void *owner;         /* the transport object embedding the peer */
};

/** Prepares <p> for a new client; <push> may be NULL. Registers it on the calling thread. */
void nx_mcp_peer_init(nx_mcp_peer_t *p, nx_mcp_push_fn push, void *owner);
/** Forgets the client: its pending server-to-client requests fail (their callbacks run), its
 *  calls keep running without it. */
void nx_mcp_peer_dispose(nx_mcp_peer_t *p);

/* Ends the event stream of one request early (SEP-1699 polling); see nx_mcp_call_close_stream. */
typedef void (*nx_mcp_close_stream_fn)(void *transport, uint32_t retry_ms);

/* What a transport knows about the request it dispatches. */
typedef struct nx_mcp_request_ctx {
    nx_mcp_reply_fn reply; /* the response, exactly once */
    nx_mcp_reply_fn send;  /* messages related to the request before its response (progress,
                              log, server-to-client requests); NULL = the peer's push */
    nx_mcp_close_stream_fn close_stream; /* NULL when the transport cannot resume streams */
    void (*drop)(void *transport);       /* resets the connection; NULL where there is none */
    void *transport;
    nx_mcp_peer_t *peer; /* NULL: no session (stateless requests) */
    bool stateless;      /* the 2026-07-28 era: _meta already validated by the transport */
    uint32_t *attempts_out; /* in-process callers: tries the provider made (may be NULL) */
    bool no_cache;          /* in-process callers: skip the tool cache */
} nx_mcp_request_ctx_t;

/* Outcome of dispatching one message. */
typedef enum nx_mcp_dispatch {
    NX_MCP_ANSWERED, /* the reply function has run */
    NX_MCP_PENDING,  /* a handler is running: the reply comes later (nx_mcp_call_t owns it) */
    NX_MCP_NO_REPLY, /* a notification or a response: nothing to send (HTTP 202) */
} nx_mcp_dispatch_t;

/** Handles <msg> (borrowed) under <ctx>; see nx_mcp_dispatch_t for when the reply is sent.
 *  A pending call is handed back in <*pending> (if non-NULL) so the transport can cancel it.
 *  notifications/cancelled is the transport's business (it knows its requests). */
nx_mcp_dispatch_t nx_mcp_server_dispatch(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                         const nx_mcp_request_ctx_t *ctx, nx_mcp_call_t **pending);
/** Cancels <call> (client gone, notifications/cancelled, shutdown): with a cancel hook the hook
 *  runs and the call is freed now; without one the call lives until the handler answers, and
 *  the answer is dropped. Either way the transport must forget <call>. */
void nx_mcp_call_cancel(nx_mcp_call_t *call);
/** The JSON-RPC id of the request <call> answers (borrowed). */
json_t *nx_mcp_call_id(const nx_mcp_call_t *call);
/** Page size of the list methods (default 100). */
void nx_mcp_server_set_page_size(nx_mcp_server_t *s, uint32_t page_size);
/** The names of the registered tools, in order (a new JSON array). */
json_t *nx_mcp_server_tool_names(const nx_mcp_server_t *s);
/** Number of registered tools. */
uint32_t nx_mcp_server_tool_count(const nx_mcp_server_t *s);
/* Looks up request header <name> (case-insensitive); {NULL, 0} when absent. */
typedef nx_str_t (*nx_mcp_header_fn)(void *arg, const char *name);
/** Checks the Mcp-Param-<H> headers of a 2026-07-28 tools/call of <tool> with <args> against
 *  the properties its inputSchema marks "x-mcp-header": "<H>": each argument given must come
 *  with its header, equal (after =?base64?...?= decoding) to the argument as a string. Returns
 *  0 (also for unknown tools: dispatch reports those), or -32020 with a message in <msg>. */
int nx_mcp_server_check_param_headers(const nx_mcp_server_t *s, const char *tool,
                                      const json_t *args, nx_mcp_header_fn header, void *arg,
                                      char *msg, size_t msglen);
/* The catalogs the server serves, for providers. */
typedef enum nx_mcp_catalog_kind {
    NX_MCP_CATALOG_TOOLS,
    NX_MCP_CATALOG_RESOURCES,
    NX_MCP_CATALOG_TEMPLATES,
    NX_MCP_CATALOG_PROMPTS,
} nx_mcp_catalog_kind_t;

/* Tools, resources, templates and prompts beyond the native ones, from backends (federation).
 * Functions run on shard threads; any may be NULL. */
typedef struct nx_mcp_provider {
    /* Appends the provider's descriptors of catalog <kind> (Tool, Resource, ResourceTemplate or
     * Prompt objects) to the array <items>; they follow the native ones in every list. */
    void (*list)(void *arg, nx_mcp_catalog_kind_t kind, json_t *items);
    /* Takes <call> of request <method> (tools/call, resources/read, prompts/get or
     * completion/complete) on <target> (the tool or prompt name, the resource URI, or the
     * name/URI of a completion's ref) and answers it now or later like a native handler (the
     * request's params: nx_mcp_call_params). Returns false, touching nothing, when the target
     * is not the provider's. Native targets never reach the provider. */
    bool (*call)(void *arg, nx_mcp_call_t *call, const char *method, const char *target);
    /* A client subscribed to (<on>) or unsubscribed from a resource that is not native. */
    void (*subscribe)(void *arg, const char *uri, bool on);
} nx_mcp_provider_t;
/** Sets the provider of non-native entries (set before serving). */
void nx_mcp_server_set_provider(nx_mcp_server_t *s, const nx_mcp_provider_t *p, void *arg);
/** The provider set (zeroed functions when none), so another can wrap it. */
void nx_mcp_server_get_provider(const nx_mcp_server_t *s, nx_mcp_provider_t *p, void **arg);
/** True when a native tool (NX_MCP_CATALOG_TOOLS) or prompt (NX_MCP_CATALOG_PROMPTS) is named
 *  <name>, or a native resource or template is <name> (the other kinds). */
bool nx_mcp_server_has(const nx_mcp_server_t *s, nx_mcp_catalog_kind_t kind, const char *name);
/** True when <uri> matches the RFC 6570 level-1 template <tmpl> (as resources/read matches). */
bool nx_mcp_uri_template_match(const char *tmpl, const char *uri);
/** Relays a backend's notification about <call> to the call's client: progress gets the
 *  client's own progressToken (none asked: dropped), log messages pass the client's level. */
void nx_mcp_call_forward(nx_mcp_call_t *call, const char *method, const json_t *params);

/** Records that the provider made <attempts> tries to answer <call> (retries included), for an
 *  in-process caller that wants to know (nx_mcp_invoke); no effect otherwise. */
void nx_mcp_call_note_attempts(nx_mcp_call_t *call, uint32_t attempts);

/** True when the call's in-process caller asked to skip the tool cache. */
bool nx_mcp_call_no_cache(const nx_mcp_call_t *call);

/** Names the shard of the calling thread (task ids carry it, so requests reach their task). */
void nx_mcp_tasks_set_shard(uint32_t shard);
/** Cancels and frees the calling thread's tasks (shard stop). */
void nx_mcp_tasks_dispose(void);
/** The log level named <name> ("debug" ... "emergency"), or -1. */
int nx_mcp_log_level_from_name(const char *name);

#endif
