/* libFuzzer target for the small parsers of MCP over HTTP: the Accept header (engine/mcp_rules.c),
 * Host/Origin host parts, Mcp-Param-* values (=?base64?...?=), Last-Event-ID values
 * (engine/mcp_events.c) and the _meta / routing-header checks of the 2026-07-28 era on any JSON.
 * Each must accept or refuse without reading out of bounds, and what it accepts must be
 * consistent: a decoded header fits its buffer, an event id round-trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_events.h"
#include "mcp_rules.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy, so that reading past <size> is caught by the sanitizer. */
    char *p = malloc(size ? size : 1);
    if (p == NULL) return 0;
    memcpy(p, data, size);
    nx_str_t v = {p, size};
    char msg[256];

    nx_mcp_check_accept(v, true, msg, sizeof(msg));
    nx_mcp_check_accept(v, false, msg, sizeof(msg));
    nx_str_t version;
    int st = nx_mcp_check_protocol_header(v, &version, msg, sizeof(msg));
    CHECK(st == 0 || st == 400);

    char host[64];
    if (nx_mcp_host_part(v, host, sizeof(host))) CHECK(strlen(host) < sizeof(host));
    const char *const allowed[] = {"localhost", "127.0.0.1", "::1", NULL};
    nx_mcp_origin_policy_t policy = {.allowed_hosts = allowed};
    st = nx_mcp_check_origin(&policy, v, v, msg, sizeof(msg));
    CHECK(st == 0 || st == 403);

    char dec[128];
    size_t dlen = 0;
    if (nx_mcp_param_header_decode(v, dec, sizeof(dec), &dlen) == 0) CHECK(dlen <= sizeof(dec));

    uint64_t seq = 0;
    if (nx_mcp_event_id_parse(p, size, &seq) == 0) {
        char again[32];
        int n = snprintf(again, sizeof(again), "%llu", (unsigned long long)seq);
        CHECK(seq > 0 && (size_t)n == size && memcmp(again, p, size) == 0);
    }

    json_t *params = json_loadb(p, size, 0, NULL);
    if (params != NULL) {
        json_t *extra = NULL;
        int code = nx_mcp_check_modern_meta(params, (nx_str_t){"2026-07-28", 10}, msg,
                                            sizeof(msg), &extra);
        CHECK(code == 0 || code == -32602 || code == -32020 || code == -32022);
        CHECK((extra != NULL) == (code == -32022));
        json_decref(extra);
        static const char *const methods[] = {"tools/call", "prompts/get", "resources/read",
                                              "tasks/get", "tools/list"};
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
            code = nx_mcp_check_routing_headers(nx_str_from(methods[i]), v, methods[i], params,
                                                msg, sizeof(msg));
            CHECK(code == 0 || code == -32020);
        }
        json_decref(params);
    }
    free(p);
    return 0;
}
