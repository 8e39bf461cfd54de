/* Routes of MCP Streamable HTTP (/mcp on the MCP and REST ports); see mcp_http.c. */
#ifndef NX_ENGINE_MCP_HTTP_H
#define NX_ENGINE_MCP_HTTP_H

#include "engine.h"

/** POST /mcp: one JSON-RPC message in, application/json (or 202) out. */
void nx_mcp_route_post(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                       const nx_route_match_t *m);
/** DELETE /mcp: ends the session named by Mcp-Session-Id. */
void nx_mcp_route_delete(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                         const nx_route_match_t *m);
/** GET /mcp: the session's standalone event stream, a resumed stream (Last-Event-ID), or a
 *  WebSocket upgrade. */
void nx_mcp_route_get(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                      const nx_route_match_t *m);
/** GET /sse: legacy HTTP+SSE transport; creates a session and announces its endpoint. */
void nx_mcp_route_sse(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                      const nx_route_match_t *m);
/** POST /messages?sessionId=...: a message of the legacy transport; 202, reply on the stream. */
void nx_mcp_route_messages(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                           const nx_route_match_t *m);
/** Prepares <es>'s MCP HTTP state (session release hook, outbox). */
void nx_mcp_http_shard_init(nx_engine_shard_t *es);
/** Ends the standalone event streams of <es> (drain: they never end by themselves). */
void nx_mcp_http_drain(nx_engine_shard_t *es);
/** Frees frames still waiting for another shard's mailbox (shard stop). */
void nx_mcp_http_free_outbox(nx_engine_shard_t *es);
/** Cancels the forwarded requests <es> is still answering and answers them 503 (end of the
 *  drain grace period). */
void nx_mcp_http_cancel_owned(nx_engine_shard_t *es);
/** Registers the built-in tools (health_check, get_server_metrics, get_available_tools, and
 *  with debug routes debug_echo and debug_sleep) on <e>'s MCP server. */
int nx_mcp_register_builtin_tools(nx_engine_t *e, bool debug);

#endif
