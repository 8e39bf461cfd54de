/* MCP HTTP transport rules: Accept (406), MCP-Protocol-Version (400), Origin/Host (403). */
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
