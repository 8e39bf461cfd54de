/* Admission and config for the engine's WebSocket endpoints (see ws_server.h). */
#include "ws_server.h"

#include "mcp_rules.h"

#include <stdlib.h>

void *nx_ws_server_admit(nx_engine_shard_t *es, nx_http_conn_t *hc, const nx_http_request_t *req,
                         const char *const *protocols, size_t size, nx_ws_upgrade_t *up) {
    /* Browsers send Origin on WebSocket handshakes and no CORS check applies: the same
     * DNS-rebinding protection as /mcp keeps a foreign page from driving this server or reading
     * its events. */
    char msg[256];
    nx_mcp_origin_policy_t policy = {.allowed_hosts = es->engine->mcp_allowed_hosts};
    int status = nx_mcp_check_origin(&policy, nx_http_request_header(req, "Origin"), req->host, msg,
                                     sizeof(msg));
    if (status != 0) {
        nx_http_respond_error(hc, status, msg, NULL);
        return NULL;
    }
    if (es->draining) {
        nx_http_respond_error(hc, 503, "draining: not accepting new WebSocket clients",
                              "Retry-After: 1\r\n");
        return NULL;
    }
    if (nx_ws_conn_handshake(hc, req, protocols, up) < 0) return NULL;
    void *obj = calloc(1, size);
    if (obj == NULL)
        nx_http_respond_error(hc, 503, "cannot accept the WebSocket now", "Retry-After: 1\r\n");
    return obj;
}

void nx_ws_server_keepalive(const nx_engine_shard_t *es, uint32_t *interval_ms,
                            uint32_t *timeout_ms) {
    const nx_mcp_limits_t *l = &es->config->config.mcp_limits;
    *interval_ms = l->ws_ping_interval_ms;
    *timeout_ms = l->ws_pong_timeout_ms;
}
