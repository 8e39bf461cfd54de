/* The connection manager: the backends seen as connections, over REST (GET /api/v1/connections,
 * GET /api/v1/connections/{id}/metrics, POST /api/v1/connections/{id}/test) and as the native
 * MCP tools list_connections, get_connection_metrics and test_connection. */
#ifndef NX_ENGINE_CONNECTIONS_H
#define NX_ENGINE_CONNECTIONS_H

#include "engine.h"
#include "nexus/mcp.h"

void nx_route_connections(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                          const nx_route_match_t *m);
void nx_route_connection_metrics(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                                 const nx_route_match_t *m);
void nx_route_connection_test(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                              const nx_route_match_t *m);

/* MCP tool handlers; <data> is the engine. */
void nx_tool_list_connections(nx_mcp_call_t *call, json_t *args, void *data);
void nx_tool_get_connection_metrics(nx_mcp_call_t *call, json_t *args, void *data);
void nx_tool_test_connection(nx_mcp_call_t *call, json_t *args, void *data);

#endif
