/* REST routes operating the MCP front end (see mcp_admin.c). */
#ifndef NX_ENGINE_MCP_ADMIN_H
#define NX_ENGINE_MCP_ADMIN_H

#include "engine.h"

/** POST /api/v1/mcp/broadcast {"method", "params"?}: sends the notification to every connected
 *  MCP client on every shard; answers {"method", "delivered": N}. */
void nx_mcp_route_broadcast(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                            const nx_route_match_t *m);
/** GET /api/v1/mcp/clients: connected WebSocket clients and live sessions over all shards. */
void nx_mcp_route_clients(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                          const nx_route_match_t *m);

#endif
