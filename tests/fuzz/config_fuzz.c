/* libFuzzer target for engine/config.c: any bytes as a config file must load or fail with a
 * located error, never crash or leak; a loaded config must survive nx_config_to_json and load
 * back to the same values. The raw duration and size parsers get the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "nexus/errors.h"

static void check_error(const nx_config_error_t *err) {
    char out[1024];
    if (err->line < 0 || memchr(err->file, '\0', sizeof(err->file)) == NULL ||
        memchr(err->key, '\0', sizeof(err->key)) == NULL ||
        memchr(err->message, '\0', sizeof(err->message)) == NULL || err->message[0] == '\0')
        abort();
    nx_config_error_format(err, out, sizeof(out));
}

/* Exports <c> as JSON, loads that back over defaults and aborts unless every value matches. */
static void check_round_trip(const nx_config_t *c) {
    nx_config_t back;
    nx_config_error_t err;
    json_t *j = nx_config_to_json(c);
    if (j == NULL) abort();
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL) abort();
    nx_config_defaults(&back);
    if (nx_config_load_string(&back, "status.json", text, strlen(text), &err) != 0) abort();
    free(text);
    /* Copy the bookkeeping over, then the values must be byte-identical. */
    memcpy(back.source, c->source, sizeof(back.source));
    memcpy(back.origin, c->origin, sizeof(back.origin));
    if (strcmp(back.rest.host, c->rest.host) != 0 || back.rest.port != c->rest.port ||
        strcmp(back.mcp.host, c->mcp.host) != 0 || back.mcp.port != c->mcp.port ||
        back.mcp.enabled != c->mcp.enabled || back.shards != c->shards ||
        back.log_level != c->log_level || back.access_log != c->access_log ||
        /* Field by field: nx_http_config_t has padding, whose bytes are unspecified. */
        back.http.max_header_bytes != c->http.max_header_bytes ||
        back.http.max_headers != c->http.max_headers || back.http.max_uri != c->http.max_uri ||
        back.http.max_body != c->http.max_body ||
        back.http.header_timeout_ms != c->http.header_timeout_ms ||
        back.http.body_timeout_ms != c->http.body_timeout_ms ||
        back.http.keepalive_timeout_ms != c->http.keepalive_timeout_ms ||
        back.http.max_connections != c->http.max_connections ||
        back.mcp_limits.max_sessions != c->mcp_limits.max_sessions ||
        back.mcp_limits.session_idle_timeout_ms != c->mcp_limits.session_idle_timeout_ms ||
        back.mcp_limits.session_evict_idle_ms != c->mcp_limits.session_evict_idle_ms ||
        back.mcp_limits.ws_ping_interval_ms != c->mcp_limits.ws_ping_interval_ms ||
        back.mcp_limits.ws_pong_timeout_ms != c->mcp_limits.ws_pong_timeout_ms ||
        back.mcp_limits.max_message != c->mcp_limits.max_message ||
        back.drain_timeout_ms != c->drain_timeout_ms || back.debug_routes != c->debug_routes)
        abort();
    if (back.servers.count != c->servers.count) abort();
    nx_config_dispose(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nx_config_t c;
    nx_config_error_t err;
    char msg[256];
    uint64_t v;

    nx_config_defaults(&c);
    if (nx_config_load_string(&c, "fuzz.yaml", (const char *)data, size, &err) == 0) {
        check_round_trip(&c);
        if (nx_config_validate(&c, &err) != 0) check_error(&err);
    } else {
        check_error(&err);
    }
    nx_config_dispose(&c);
    nx_config_parse_duration((const char *)data, size, &v, msg, sizeof(msg));
    nx_config_parse_size((const char *)data, size, &v, msg, sizeof(msg));
    return 0;
}
