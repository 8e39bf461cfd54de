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
/** GET /mcp: no standalone stream yet, so 405 after the common checks. */
void nx_mcp_route_get(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                      const nx_route_match_t *m);
/** Cancels the forwarded requests <es> is still answering and answers them 503 (end of the
 *  drain grace period). */
void nx_mcp_http_cancel_owned(nx_engine_shard_t *es);
/** Registers the built-in tools (health_check, get_server_metrics, get_available_tools, and
 *  with debug routes debug_echo and debug_sleep) on <e>'s MCP server. */
int nx_mcp_register_builtin_tools(nx_engine_t *e, bool debug);

#endif
