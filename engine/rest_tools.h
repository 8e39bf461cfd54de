/* REST access to the MCP tool catalog (see rest_tools.c). */
#ifndef NX_ENGINE_REST_TOOLS_H
#define NX_ENGINE_REST_TOOLS_H

#include "engine.h"

/** Sends <j> (stolen) as application/json with <status> and <headers> (NULL or "Name: value\r\n"
 *  lines); numbers keep their full precision. 500 when it cannot be encoded. */
void nx_rest_send_json(nx_http_conn_t *hc, int status, json_t *j, const char *headers);
/** Answers the house error body {"error": {"code": <status>, "message", ...<extra>}} (<extra>
 *  stolen, may be NULL). */
void nx_rest_send_error(nx_http_conn_t *hc, int status, const char *message, json_t *extra,
                        const char *headers);

/** GET /tools: 200 {"tools": [every Tool object, native then federated], "count": N}. */
void nx_rest_route_tools_list(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                              const nx_route_match_t *m);
/** POST /tools/{name}: calls tool {name} (percent-decoded) with the JSON object body (empty =
 *  {}) as its arguments; 200 with the CallToolResult as is (isError results too), 400 for a
 *  bad body or name, 404 for an unknown tool, 503 + Retry-After when the error says when to
 *  retry (open breaker, full bulkhead), 502 for any other JSON-RPC error. */
void nx_rest_route_tools_call(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                              const nx_route_match_t *m);

#endif
