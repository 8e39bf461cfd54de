/* The MCP client core against a scripted server: the handshake (initialize, version check,
 * notifications/initialized), requests answered in any order, errors, notifications and
 * server-to-client requests handed to the owner, ping answered by the client itself,
 * abandoning with and without telling the server, and a dying transport failing everything. */
#include <criterion/criterion.h>

#include "mcp_client.h"

#include <string.h>

static json_t *g_sent;    /* every message the client sent, decoded */
static json_t *g_answers; /* [result|error, ...] in callback order */
static json_t *g_events;  /* notifications and requests seen by the owner */
static int g_ready;
static bool g_transport_down;

static int fake_send(nx_mcp_client_t *cl, const char *text, size_t len, void *arg) {
    if (g_transport_down) return -1;
    json_t *m = json_loadb(text, len, 0, NULL);
    cr_assert_not_null(m, "the client sent invalid JSON: %.*s", (int)len, text);
    cr_assert_null(memchr(text, '\n', len), "a message must fit on one line");
    json_array_append_new(g_sent, m);
    return 0;
}

static void on_ready(nx_mcp_client_t *cl, void *arg) {
    g_ready++;
}

static void on_notification(nx_mcp_client_t *cl, const char *method, const json_t *params,
                            void *arg) {
    json_array_append_new(g_events, json_pack("{s:s, s:s, s:O?}", "kind", "notification", "method",
                                              method, "params", params));
}

static void on_request(nx_mcp_client_t *cl, const json_t *id, const char *method,
                       const json_t *params, void *arg) {
    json_array_append_new(
        g_events, json_pack("{s:s, s:s, s:O}", "kind", "request", "method", method, "id", id));
    /* Answer at once, as an owner relaying to a client would later. */
    nx_mcp_client_respond(cl, id, json_pack("{s:s}", "echo", method), NULL);
}

static void collect(nx_mcp_client_t *cl, const json_t *result, const json_t *error, void *arg) {
    cr_assert((result == NULL) != (error == NULL), "exactly one of result and error");
    json_array_append_new(g_answers,
                          json_pack("{s:s, s:O}", "tag", (const char *)arg,
                                    result ? "result" : "error", result ? result : error));
}

static const nx_mcp_client_ops_t OPS = {.send = fake_send,
                                        .on_ready = on_ready,
                                        .on_notification = on_notification,
                                        .on_request = on_request};

static void setup(void) {
    g_sent = json_array();
    g_answers = json_array();
    g_events = json_array();
    g_ready = 0;
    g_transport_down = false;
}

static void teardown(void) {
    json_decref(g_sent);
    json_decref(g_answers);
    json_decref(g_events);
}

static void feed(nx_mcp_client_t *cl, const char *text) {
    nx_mcp_client_receive(cl, text, strlen(text));
}

static json_t *sent(size_t i) {
    return json_array_get(g_sent, i);
}

/* Runs the handshake with a server answering <version>. */
static void handshake(nx_mcp_client_t *cl, const char *version) {
    nx_mcp_client_init(cl, &OPS, NULL, "nexus-test", json_pack("{s:{}}", "sampling"));
    cr_assert_eq(nx_mcp_client_start(cl), 0);
    json_t *init = sent(0);
    cr_assert_str_eq(json_string_value(json_object_get(init, "method")), "initialize");
    json_t *p = json_object_get(init, "params");
    cr_assert_str_eq(json_string_value(json_object_get(p, "protocolVersion")), "2025-11-25");
    cr_assert_not_null(json_object_get(json_object_get(p, "capabilities"), "sampling"));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(p, "clientInfo"), "name")),
                     "nexus-test");
    char answer[400];
    snprintf(answer, sizeof(answer),
             "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"protocolVersion\":\"%s\","
             "\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"srv\",\"version\":"
             "\"9\"}}}",
             (long long)json_integer_value(json_object_get(init, "id")), version);
    feed(cl, answer);
}

TestSuite(mcp_client, .init = setup, .fini = teardown);

Test(mcp_client, handshake_then_requests_answered_in_any_order) {
    nx_mcp_client_t cl;
    handshake(&cl, "2025-06-18");
    cr_assert_eq(cl.state, NX_MCP_CLIENT_READY);
    cr_assert_eq(g_ready, 1);
    cr_assert_str_eq(cl.protocol_version, "2025-06-18");
    cr_assert_str_eq(json_string_value(json_object_get(cl.server_info, "name")), "srv");
    cr_assert_str_eq(json_string_value(json_object_get(sent(1), "method")),
                     "notifications/initialized");
    cr_assert_null(json_object_get(sent(1), "id"), "a notification has no id");
    json_int_t a = nx_mcp_client_request(&cl, "tools/list", NULL, collect, "a");
    json_int_t b =
        nx_mcp_client_request(&cl, "tools/call", json_pack("{s:s}", "name", "echo"), collect, "b");
    cr_assert(a > 0 && b > a);
    char text[200];
    snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"ok\":2}}",
             (long long)b);
    feed(&cl, text);
    snprintf(text, sizeof(text),
             "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32601,\"message\":\"no\"}}",
             (long long)a);
    feed(&cl, text);
    cr_assert_eq(json_array_size(g_answers), 2);
    json_t *first = json_array_get(g_answers, 0), *second = json_array_get(g_answers, 1);
    cr_assert_str_eq(json_string_value(json_object_get(first, "tag")), "b");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(first, "result"), "ok")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(second, "tag")), "a");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(second, "error"), "code")),
                 -32601);
    cr_assert_eq(cl.pending_count, 0);
    /* An answer nobody waits for is ignored. */
    feed(&cl, text);
    cr_assert_eq(json_array_size(g_answers), 2);
    nx_mcp_client_dispose(&cl);
}

Test(mcp_client, unsupported_version_or_error_fails_the_handshake) {
    nx_mcp_client_t cl;
    handshake(&cl, "1999-01-01");
    cr_assert_eq(cl.state, NX_MCP_CLIENT_FAILED);
    cr_assert_eq(g_ready, 0);
    cr_assert(strstr(cl.error, "1999-01-01"), "%s", cl.error);
    cr_assert_eq(json_array_size(g_sent), 1, "no initialized notification");
    nx_mcp_client_request(&cl, "tools/list", NULL, collect, "late");
    json_t *e = json_object_get(json_array_get(g_answers, 0), "error");
    cr_assert(strstr(json_string_value(json_object_get(e, "message")), "not ready"));
    nx_mcp_client_dispose(&cl);
}

Test(mcp_client, notifications_and_server_requests_reach_the_owner_ping_is_answered) {
    nx_mcp_client_t cl;
    handshake(&cl, "2025-11-25");
    size_t before = json_array_size(g_sent);
    feed(&cl, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
              "{\"progressToken\":7,\"progress\":1}}");
    feed(&cl, "{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"sampling/createMessage\","
              "\"params\":{}}");
    feed(&cl, "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"ping\"}");
    feed(&cl, "this is not JSON: a server logging to stdout");
    cr_assert_eq(json_array_size(g_events), 2);
    json_t *n = json_array_get(g_events, 0);
    cr_assert_str_eq(json_string_value(json_object_get(n, "method")), "notifications/progress");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(n, "params"), "progressToken")),
                 7);
    json_t *r = json_array_get(g_events, 1);
    cr_assert_str_eq(json_string_value(json_object_get(r, "id")), "s1");
    /* Two answers went back: the owner's for s1, the client's own for the ping. */
    cr_assert_eq(json_array_size(g_sent), before + 2);
    cr_assert_str_eq(json_string_value(json_object_get(sent(before), "id")), "s1");
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(sent(before), "result"), "echo")),
        "sampling/createMessage");
    cr_assert_eq(json_integer_value(json_object_get(sent(before + 1), "id")), 99);
    cr_assert(json_is_object(json_object_get(sent(before + 1), "result")));
    nx_mcp_client_dispose(&cl);
}

Test(mcp_client, abandon_tells_the_server_only_when_asked) {
    nx_mcp_client_t cl;
    handshake(&cl, "2025-11-25");
    json_int_t a = nx_mcp_client_request(&cl, "tools/call", NULL, collect, "a");
    json_int_t b = nx_mcp_client_request(&cl, "tools/call", NULL, collect, "b");
    size_t before = json_array_size(g_sent);
    cr_assert(nx_mcp_client_abandon(&cl, a, "timed out"));
    cr_assert(nx_mcp_client_abandon(&cl, b, NULL));
    cr_assert(!nx_mcp_client_abandon(&cl, b, NULL), "only once");
    cr_assert_eq(json_array_size(g_sent), before + 1);
    json_t *c = sent(before);
    cr_assert_str_eq(json_string_value(json_object_get(c, "method")), "notifications/cancelled");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(c, "params"), "requestId")), a);
    char text[120];
    snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{}}", (long long)a);
    feed(&cl, text);
    cr_assert_eq(json_array_size(g_answers), 0, "abandoned requests get no callback");
    nx_mcp_client_dispose(&cl);
}

Test(mcp_client, a_dying_transport_fails_everything_waiting) {
    nx_mcp_client_t cl;
    handshake(&cl, "2025-11-25");
    nx_mcp_client_request(&cl, "tools/list", NULL, collect, "a");
    nx_mcp_client_request(&cl, "tools/list", NULL, collect, "b");
    g_transport_down = true;
    cr_assert_eq(nx_mcp_client_request(&cl, "tools/list", NULL, collect, "c"), 0);
    cr_assert_eq(json_array_size(g_answers), 1, "c failed at once");
    nx_mcp_client_fail(&cl, "the process exited");
    cr_assert_eq(json_array_size(g_answers), 3);
    json_t *e = json_object_get(json_array_get(g_answers, 2), "error");
    cr_assert_str_eq(json_string_value(json_object_get(e, "message")), "the process exited");
    cr_assert_eq(cl.state, NX_MCP_CLIENT_FAILED);
    nx_mcp_client_dispose(&cl);
}
