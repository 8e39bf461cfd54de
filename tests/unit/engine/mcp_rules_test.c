/* MCP HTTP transport rules: Accept (406), MCP-Protocol-Version (400), Origin/Host (403), and the
 * 2026-07-28 checks of _meta (-32602/-32020/-32022) and of the routing headers (-32020). */
#include <criterion/criterion.h>

#include "mcp_rules.h"

static char msg[256];

Test(mcp_rules, accept_for_post_and_get) {
    cr_assert_eq(
        nx_mcp_check_accept(NX_STR("application/json, text/event-stream"), true, msg, sizeof(msg)),
        0);
    cr_assert_eq(nx_mcp_check_accept(NX_STR("text/event-stream;q=0.9,application/json"), true, msg,
                                     sizeof(msg)),
                 0);
    cr_assert_eq(nx_mcp_check_accept(NX_STR("*/*"), true, msg, sizeof(msg)), 0, "*/* covers both");
    cr_assert_eq(nx_mcp_check_accept(NX_STR("application/json"), true, msg, sizeof(msg)), 406);
    cr_assert(strstr(msg, "text/event-stream") != NULL);
    cr_assert_eq(nx_mcp_check_accept((nx_str_t){NULL, 0}, true, msg, sizeof(msg)), 406);
    cr_assert(strstr(msg, "missing") != NULL);
    cr_assert_eq(nx_mcp_check_accept(NX_STR("application/json, text/event-stream;q=0"), true, msg,
                                     sizeof(msg)),
                 406, "q=0 means not acceptable");
    cr_assert_eq(nx_mcp_check_accept(NX_STR("TEXT/Event-Stream"), false, msg, sizeof(msg)), 0);
    cr_assert_eq(nx_mcp_check_accept(NX_STR("application/json"), false, msg, sizeof(msg)), 406);
}

Test(mcp_rules, protocol_version_header) {
    nx_str_t v;
    cr_assert_eq(nx_mcp_check_protocol_header((nx_str_t){NULL, 0}, &v, msg, sizeof(msg)), 0);
    cr_assert(nx_str_eq(v, NX_STR("2025-03-26")), "absent means 2025-03-26");
    cr_assert_eq(nx_mcp_check_protocol_header(NX_STR("2025-06-18"), &v, msg, sizeof(msg)), 0);
    cr_assert(nx_str_eq(v, NX_STR("2025-06-18")));
    cr_assert_eq(nx_mcp_check_protocol_header(NX_STR("2099-01-01"), &v, msg, sizeof(msg)), 400);
    cr_assert(strstr(msg, "2099-01-01") && strstr(msg, "2025-11-25"), "%s", msg);
    cr_assert_str_eq(nx_mcp_negotiate_version(NX_STR("2024-11-05")), "2024-11-05");
    cr_assert_str_eq(nx_mcp_negotiate_version(NX_STR("1999-01-01")), "2025-11-25");
    cr_assert(nx_mcp_version_supported(NX_STR("2026-07-28")));
}

Test(mcp_rules, host_part) {
    char h[64];
    cr_assert(nx_mcp_host_part(NX_STR("LocalHost:3000"), h, sizeof(h)));
    cr_assert_str_eq(h, "localhost");
    cr_assert(nx_mcp_host_part(NX_STR("[::1]:3000"), h, sizeof(h)));
    cr_assert_str_eq(h, "::1");
    cr_assert(nx_mcp_host_part(NX_STR("127.0.0.1"), h, sizeof(h)));
    cr_assert_not(nx_mcp_host_part(NX_STR("[::1"), h, sizeof(h)));
    cr_assert_not(nx_mcp_host_part(NX_STR("a:1:2"), h, sizeof(h)));
    cr_assert_not(nx_mcp_host_part(NX_STR(""), h, sizeof(h)));
    cr_assert_not(nx_mcp_host_part(NX_STR("user@evil"), h, sizeof(h)));
}

Test(mcp_rules, dns_rebinding_protection) {
    nx_mcp_origin_policy_t p = {.allowed_hosts = nx_mcp_loopback_hosts};
    cr_assert_eq(
        nx_mcp_check_origin(&p, (nx_str_t){NULL, 0}, NX_STR("127.0.0.1:3000"), msg, sizeof(msg)),
        0);
    cr_assert_eq(nx_mcp_check_origin(&p, NX_STR("http://localhost:5173"), NX_STR("localhost:3000"),
                                     msg, sizeof(msg)),
                 0);
    cr_assert_eq(
        nx_mcp_check_origin(&p, (nx_str_t){NULL, 0}, NX_STR("evil.example.com"), msg, sizeof(msg)),
        403, "the conformance scenario: a foreign Host");
    cr_assert(strstr(msg, "evil.example.com") != NULL);
    cr_assert_eq(nx_mcp_check_origin(&p, NX_STR("https://evil.example.com"),
                                     NX_STR("127.0.0.1:3000"), msg, sizeof(msg)),
                 403);
    cr_assert_eq(nx_mcp_check_origin(&p, NX_STR("null"), NX_STR("[::1]:80"), msg, sizeof(msg)), 403,
                 "an opaque origin (sandboxed frame) names no allowed host");
    cr_assert_eq(
        nx_mcp_check_origin(&p, NX_STR("http://[::1]:5173"), NX_STR("[::1]:80"), msg, sizeof(msg)),
        0);
    cr_assert_eq(nx_mcp_check_origin(&p, NX_STR("garbage"), NX_STR("localhost"), msg, sizeof(msg)),
                 403);
    nx_mcp_origin_policy_t any = {.allow_any = true};
    cr_assert_eq(nx_mcp_check_origin(&any, NX_STR("https://evil.example.com"), NX_STR("evil"), msg,
                                     sizeof(msg)),
                 0);
}

/* ---- the 2026-07-28 era: _meta and the routing headers ---- */

static json_t *parse_q(const char *text_q) {
    char *t = strdup(text_q);
    for (char *p = t; *p; p++)
        if (*p == '\'') *p = '"';
    json_error_t je;
    json_t *j = json_loads(t, JSON_DECODE_ANY, &je);
    cr_assert_not_null(j, "%s: %s", t, je.text);
    free(t);
    return j;
}

static const nx_str_t no_header = {NULL, 0};

Test(mcp_rules, legacy_versions_and_modern_params) {
    cr_assert(nx_mcp_version_is_legacy(NX_STR("2025-11-25")));
    cr_assert(nx_mcp_version_is_legacy(NX_STR("2025-06-18")));
    cr_assert(nx_mcp_version_is_legacy(NX_STR("2025-03-26")));
    cr_assert(nx_mcp_version_is_legacy(NX_STR("2024-11-05")));
    cr_assert_not(nx_mcp_version_is_legacy(NX_STR("2026-07-28")), "the modern era");
    cr_assert_not(nx_mcp_version_is_legacy(NX_STR("2025-06-1")), "a prefix");
    cr_assert_not(nx_mcp_version_is_legacy(NX_STR("2025-06-18 ")));
    cr_assert_not(nx_mcp_version_is_legacy(NX_STR("")));
    cr_assert_not(nx_mcp_version_is_legacy(no_header));
    cr_assert(nx_mcp_version_supported(NX_STR("2024-11-05")));
    cr_assert_not(nx_mcp_version_supported(NX_STR("2026-07-29")));

    const char *modern[] = {
        "{'_meta':{'io.modelcontextprotocol/protocolVersion':'2026-07-28'}}",
        /* An unsupported version is still a modern-shaped request: -32022 comes later. */
        "{'_meta':{'io.modelcontextprotocol/protocolVersion':'2099-01-01'},'name':'x'}",
    };
    for (size_t i = 0; i < 2; i++) {
        json_t *p = parse_q(modern[i]);
        cr_assert(nx_mcp_params_are_modern(p), "%s", modern[i]);
        json_decref(p);
    }
    const char *legacy[] = {
        "{}",
        "{'_meta':{}}",
        "{'_meta':{'progressToken':1}}",
        "{'_meta':'io.modelcontextprotocol/protocolVersion'}",
        "{'io.modelcontextprotocol/protocolVersion':'2026-07-28'}", /* not in _meta */
        "{'protocolVersion':'2026-07-28'}",
        "['2026-07-28']",
    };
    for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++) {
        json_t *p = parse_q(legacy[i]);
        cr_assert_not(nx_mcp_params_are_modern(p), "%s", legacy[i]);
        json_decref(p);
    }
    cr_assert_not(nx_mcp_params_are_modern(NULL), "no params");
}

/* Runs nx_mcp_check_modern_meta on <params_q> with <header>; returns the code, data in *data. */
static int check_meta(const char *params_q, nx_str_t header, json_t **data) {
    json_t *p = params_q ? parse_q(params_q) : NULL;
    msg[0] = '\0';
    *data = (json_t *)1; /* must be reset */
    int rc = nx_mcp_check_modern_meta(p, header, msg, sizeof(msg), data);
    json_decref(p);
    return rc;
}

#define V_Q "'io.modelcontextprotocol/protocolVersion'"
#define C_Q "'io.modelcontextprotocol/clientCapabilities'"

Test(mcp_rules, modern_meta_checks_presence_then_header_then_version) {
    json_t *data;
    cr_assert_eq(check_meta("{'_meta':{" V_Q ":'2026-07-28'," C_Q ":{}}}", no_header, &data), 0);
    cr_assert_null(data);
    cr_assert_eq(check_meta("{'_meta':{" V_Q ":'2026-07-28'," C_Q ":{'sampling':{}}}}",
                            NX_STR("2026-07-28"), &data),
                 0, "%s", msg);
    cr_assert_null(data);

    /* -32602: what must be there is not, whatever the header says. */
    const char *incomplete[] = {
        NULL,
        "{}",
        "{'_meta':[]}",
        "{'_meta':{" C_Q ":{}}}",
        "{'_meta':{" V_Q ":20260728," C_Q ":{}}}",
        "{'_meta':{" V_Q ":null," C_Q ":{}}}",
    };
    for (size_t i = 0; i < sizeof(incomplete) / sizeof(incomplete[0]); i++) {
        cr_assert_eq(check_meta(incomplete[i], NX_STR("2025-06-18"), &data), -32602, "%s",
                     incomplete[i] ? incomplete[i] : "NULL");
        cr_assert_null(data);
        cr_assert(strstr(msg, "io.modelcontextprotocol/protocolVersion") != NULL, "%s", msg);
    }
    const char *no_caps[] = {
        "{'_meta':{" V_Q ":'2026-07-28'}}", "{'_meta':{" V_Q ":'2026-07-28'," C_Q ":[]}}",
        "{'_meta':{" V_Q ":'2026-07-28'," C_Q ":null}}",
        "{'_meta':{" V_Q ":'2099-01-01'}}", /* presence comes before the version's value */
    };
    for (size_t i = 0; i < sizeof(no_caps) / sizeof(no_caps[0]); i++) {
        cr_assert_eq(check_meta(no_caps[i], NX_STR("2025-06-18"), &data), -32602, "%s", no_caps[i]);
        cr_assert_null(data);
        cr_assert(strstr(msg, "io.modelcontextprotocol/clientCapabilities") != NULL, "%s", msg);
    }

    /* -32020: the header disagrees with _meta, even when _meta names a version nexus lacks. */
    cr_assert_eq(
        check_meta("{'_meta':{" V_Q ":'2026-07-28'," C_Q ":{}}}", NX_STR("2025-06-18"), &data),
        -32020);
    cr_assert_null(data);
    cr_assert(strstr(msg, "2025-06-18") && strstr(msg, "2026-07-28"), "%s", msg);
    cr_assert_eq(
        check_meta("{'_meta':{" V_Q ":'2099-01-01'," C_Q ":{}}}", NX_STR("2026-07-28"), &data),
        -32020);
    cr_assert_null(data);
    cr_assert_eq(check_meta("{'_meta':{" V_Q ":'2026-07-28'," C_Q ":{}}}", NX_STR(""), &data),
                 -32020, "a present but empty header is a mismatch");
    cr_assert_eq(
        check_meta("{'_meta':{" V_Q ":'2026-07-28'," C_Q ":{}}}", NX_STR("2026-07-28 "), &data),
        -32020);

    /* -32022: a version nexus does not speak, with what it does speak. */
    cr_assert_eq(check_meta("{'_meta':{" V_Q ":'2099-01-01'," C_Q ":{}}}", no_header, &data),
                 -32022);
    cr_assert_not_null(data);
    char *d = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
    cr_assert_str_eq(d, "{\"requested\":\"2099-01-01\",\"supported\":[\"2026-07-28\"]}");
    free(d);
    json_decref(data);
    cr_assert(strstr(msg, "2099-01-01") && strstr(msg, "2026-07-28"), "%s", msg);
    cr_assert_eq(
        check_meta("{'_meta':{" V_Q ":'2099-01-01'," C_Q ":{}}}", NX_STR("2099-01-01"), &data),
        -32022, "header and _meta agree on a version nexus lacks");
    json_decref(data);
    /* A legacy revision is not a modern one. */
    cr_assert_eq(check_meta("{'_meta':{" V_Q ":'2025-06-18'," C_Q ":{}}}", no_header, &data),
                 -32022);
    cr_assert_str_eq(json_string_value(json_object_get(data, "requested")), "2025-06-18");
    json_decref(data);
}

/* Runs nx_mcp_check_routing_headers for <method> with <params_q> (NULL = none). */
static int route(nx_str_t mcp_method, nx_str_t mcp_name, const char *method, const char *params_q) {
    json_t *p = params_q ? parse_q(params_q) : NULL;
    msg[0] = '\0';
    int rc = nx_mcp_check_routing_headers(mcp_method, mcp_name, method, p, msg, sizeof(msg));
    json_decref(p);
    return rc;
}

Test(mcp_rules, routing_headers_repeat_method_and_name) {
    /* Methods without a name: only Mcp-Method counts; Mcp-Name is ignored. */
    cr_assert_eq(route(NX_STR("tools/list"), no_header, "tools/list", NULL), 0, "%s", msg);
    cr_assert_eq(route(NX_STR("tools/list"), NX_STR("junk"), "tools/list", "{}"), 0);
    cr_assert_eq(route(NX_STR("server/discover"), no_header, "server/discover", NULL), 0);
    cr_assert_eq(route(no_header, no_header, "tools/list", NULL), -32020);
    cr_assert(strstr(msg, "Mcp-Method") && strstr(msg, "required"), "%s", msg);
    cr_assert_eq(route(NX_STR("tools/call"), no_header, "tools/list", NULL), -32020);
    cr_assert(strstr(msg, "tools/call") && strstr(msg, "tools/list"), "%s", msg);
    cr_assert_eq(route(NX_STR("Tools/List"), no_header, "tools/list", NULL), -32020,
                 "case-sensitive");
    cr_assert_eq(route(NX_STR(""), no_header, "tools/list", NULL), -32020);
    cr_assert_eq(route(NX_STR("tools/lis"), no_header, "tools/list", NULL), -32020);
    cr_assert_eq(route(NX_STR("tools/list/"), no_header, "tools/list", NULL), -32020);

    /* tools/call and prompts/get name params.name; resources/read names params.uri. */
    cr_assert_eq(route(NX_STR("tools/call"), NX_STR("echo"), "tools/call", "{'name':'echo'}"), 0);
    cr_assert_eq(route(NX_STR("prompts/get"), NX_STR("greet"), "prompts/get", "{'name':'greet'}"),
                 0);
    cr_assert_eq(route(NX_STR("resources/read"), NX_STR("test://t/1"), "resources/read",
                       "{'uri':'test://t/1'}"),
                 0);
    cr_assert_eq(route(NX_STR("tools/call"), NX_STR(" \techo \t"), "tools/call", "{'name':'echo'}"),
                 0, "surrounding spaces and tabs are not part of the name");

    cr_assert_eq(route(NX_STR("tools/call"), no_header, "tools/call", "{'name':'echo'}"), -32020);
    cr_assert(strstr(msg, "Mcp-Name") && strstr(msg, "params.name"), "%s", msg);
    cr_assert_eq(route(NX_STR("resources/read"), no_header, "resources/read", "{'uri':'a:b'}"),
                 -32020);
    cr_assert(strstr(msg, "params.uri"), "%s", msg);
    cr_assert_eq(route(NX_STR("prompts/get"), no_header, "prompts/get", "{'name':'greet'}"),
                 -32020);
    cr_assert_eq(route(NX_STR("tools/call"), NX_STR("ECHO"), "tools/call", "{'name':'echo'}"),
                 -32020, "case-sensitive");
    cr_assert_eq(route(NX_STR("tools/call"), NX_STR("ech"), "tools/call", "{'name':'echo'}"),
                 -32020);
    cr_assert_eq(route(NX_STR("tools/call"), NX_STR("e cho"), "tools/call", "{'name':'echo'}"),
                 -32020, "inner spaces count");
    cr_assert_eq(route(NX_STR("tools/call"), NX_STR(""), "tools/call", "{'name':'echo'}"), -32020);
    cr_assert_eq(route(NX_STR("tools/call"), NX_STR("   "), "tools/call", "{'name':'echo'}"),
                 -32020);
    cr_assert_eq(route(NX_STR("tools/call"), NX_STR("echo"), "tools/call", NULL), -32020,
                 "no params: nothing to match");
    cr_assert_eq(route(NX_STR("tools/call"), NX_STR("echo"), "tools/call", "{'name':7}"), -32020);
    cr_assert_eq(route(NX_STR("resources/read"), NX_STR("res"), "resources/read",
                       "{'name':'res','uri':'a:b'}"),
                 -32020, "resources/read is named by its uri, not a name");
    cr_assert_eq(route(NX_STR("prompts/get"), NX_STR("greet"), "prompts/get", "{'uri':'greet'}"),
                 -32020);
    /* The method is checked first. */
    cr_assert_eq(route(NX_STR("tools/list"), NX_STR("echo"), "tools/call", "{'name':'echo'}"),
                 -32020);
    cr_assert(strstr(msg, "Mcp-Method") != NULL, "%s", msg);
}
