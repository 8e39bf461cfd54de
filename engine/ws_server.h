/* The engine's side of its WebSocket endpoints (mcp_ws.c, events_ws.c) around the connection
 * layer of net/ws_conn.h: who may open one on a shard, and the keep-alive timing from config. */
#ifndef NX_ENGINE_WS_SERVER_H
#define NX_ENGINE_WS_SERVER_H

#include "engine.h"
#include "ws_conn.h"

#include <stddef.h>
#include <stdint.h>

/** From a route handler on shard <es>: admits the WebSocket upgrade <req> (its Origin must pass
 *  the DNS-rebinding check of /mcp; a draining shard takes no new clients), validates its
 *  handshake against the NULL-terminated subprotocol list <protocols>, filling <up>, and
 *  allocates the connection's object. Returns <size> zeroed bytes (the caller's; it embeds the
 *  nx_ws_conn_t), or NULL after answering <hc> with the refusal. */
void *nx_ws_server_admit(nx_engine_shard_t *es, nx_http_conn_t *hc, const nx_http_request_t *req,
                         const char *const *protocols, size_t size, nx_ws_upgrade_t *up);
/** The keep-alive timing of <es>'s current config (mcp.ws_ping_interval, mcp.ws_pong_timeout),
 *  for nx_ws_conn_ops_t.keepalive. */
void nx_ws_server_keepalive(const nx_engine_shard_t *es, uint32_t *interval_ms,
                            uint32_t *timeout_ms);

#endif
