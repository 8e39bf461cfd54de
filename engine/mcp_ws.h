/* MCP over WebSocket (see mcp_ws.c). */
#ifndef NX_ENGINE_MCP_WS_H
#define NX_ENGINE_MCP_WS_H

#include "engine.h"

/** True when <req> asks to upgrade to WebSocket. */
bool nx_mcp_ws_is_upgrade(const nx_http_request_t *req);
/** Completes the WebSocket handshake for <req> (or answers its error) and turns the connection
 *  into an MCP-over-WebSocket client of shard <es>. Call from a route handler. */
void nx_mcp_ws_accept(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req);
/** GET /ws: the WebSocket endpoint; 426 without an upgrade. */
void nx_mcp_route_ws(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                     const nx_route_match_t *m);
/** Sends close 1001 to every WebSocket client of <es> (drain). */
void nx_mcp_ws_drain(nx_engine_shard_t *es);
/** Closes every WebSocket client of <es> now (end of the grace period, shard stop). */
void nx_mcp_ws_close_all(nx_engine_shard_t *es);

#endif
