/* The MCP server core without a transport: initialize, ping, tools/list pagination, tools/call
 * with schema-validated arguments, synchronous and deferred handlers, cancellation, errors. */
#include <criterion/criterion.h>

#include "mcp_server.h"
#include "nexus/errors.h"

#include <string.h>

static json_t *g_replies; /* every response the "transport" got */

static void collect(void *transport, json_t *response) {
    cr_assert_not_null(response);
    json_array_append_new(g_replies, response);
}

/* Decodes <text> and dispatches it; returns the outcome, the pending call in <pending>. */
static nx_mcp_dispatch_t send_msg(nx_mcp_server_t *s, const char *text, nx_mcp_call_t **pending) {
    nx_rpc_batch_t b;
    nx_rpc_decode(text, strlen(text), NULL, &b);
    cr_assert_eq(b.count, 1);
    nx_mcp_request_ctx_t ctx = {.reply = collect, .transport = NULL};
    nx_mcp_dispatch_t d = nx_mcp_server_dispatch(s, &b.msgs[0], &ctx, pending);
    nx_rpc_batch_dispose(&b);
    return d;
}

static json_t *last(void) {
    return json_array_get(g_replies, json_array_size(g_replies) - 1);
}

static void echo_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return_text(call, json_string_value(json_object_get(args, "message")), false);
}

static nx_mcp_call_t *g_parked;
static void slow_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    g_parked = call; /* answered later by the test */
}

static nx_mcp_server_t *make_server(void) {
    g_replies = json_array();
    nx_mcp_server_t *s = nx_mcp_server_new("nexus-test", "1.2.3");
    char err[256];
    nx_mcp_tool_def_t echo = {
        .name = "echo",
        .title = "Echo",
        .description = "Returns its message",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\","
                        "\"minLength\":1}},\"required\":[\"message\"],"
                        "\"additionalProperties\":false}",
        .annotations = "{\"readOnlyHint\":true}",
        .handler = echo_tool};
    cr_assert_eq(nx_mcp_server_add_tool(s, &echo, err, sizeof(err)), 0, "%s", err);
    nx_mcp_tool_def_t slow = {.name = "slow", .handler = slow_tool};
    cr_assert_eq(nx_mcp_server_add_tool(s, &slow, err, sizeof(err)), 0, "%s", err);
    return s;
}

static void done(nx_mcp_server_t *s) {
    nx_mcp_server_free(s);
    json_decref(g_replies);
}

Test(mcp_server, initialize_negotiates_and_announces_tools) {
    nx_mcp_server_t *s = make_server();
    cr_assert_eq(send_msg(s,
                          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                          "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
                          "\"clientInfo\":{\"name\":\"t\",\"version\":\"0\"}}}",
                          NULL),
                 NX_MCP_ANSWERED);
    json_t *r = json_object_get(last(), "result");
    cr_assert_str_eq(json_string_value(json_object_get(r, "protocolVersion")), "2025-06-18");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "serverInfo"), "name")),
                     "nexus-test");
    cr_assert_not_null(json_object_get(json_object_get(r, "capabilities"), "tools"));
    /* An unknown revision gets the newest one nexus speaks. */
    send_msg(s,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"1999-01-01\",\"capabilities\":{},\"clientInfo\":{}}}",
             NULL);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(last(), "result"), "protocolVersion")),
        "2025-11-25");
    /* Missing fields are named. */
    send_msg(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":{}}", NULL);
    json_t *e = json_object_get(last(), "error");
    cr_assert_eq(json_integer_value(json_object_get(e, "code")), -32602);
    cr_assert(strstr(json_string_value(json_object_get(e, "message")), "protocolVersion"));
    done(s);
}

Test(mcp_server, ping_notifications_and_unknown_methods) {
    nx_mcp_server_t *s = make_server();
    cr_assert_eq(send_msg(s, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}", NULL),
                 NX_MCP_ANSWERED);
    cr_assert(json_is_object(json_object_get(last(), "result")));
    cr_assert_str_eq(json_string_value(json_object_get(last(), "id")), "p");
    cr_assert_eq(
        send_msg(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", NULL),
        NX_MCP_NO_REPLY);
    cr_assert_eq(json_array_size(g_replies), 1, "a notification gets no reply");
    send_msg(s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"nope/never\"}", NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32601);
    done(s);
}

Test(mcp_server, tools_list_pages_with_opaque_cursors) {
    nx_mcp_server_t *s = make_server();
    char err[128], name[16];
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        nx_mcp_tool_def_t d = {.name = name, .handler = echo_tool};
        cr_assert_eq(nx_mcp_server_add_tool(s, &d, err, sizeof(err)), 0);
    }
    nx_mcp_server_set_page_size(s, 3);
    send_msg(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", NULL);
    json_t *r = json_object_get(last(), "result");
    cr_assert_eq(json_array_size(json_object_get(r, "tools")), 3);
    json_t *first = json_array_get(json_object_get(r, "tools"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "name")), "echo");
    cr_assert_str_eq(json_string_value(json_object_get(first, "title")), "Echo");
    cr_assert(json_is_true(json_object_get(json_object_get(first, "annotations"), "readOnlyHint")));
    cr_assert_not_null(json_object_get(json_object_get(first, "inputSchema"), "properties"));
    const char *cursor = json_string_value(json_object_get(r, "nextCursor"));
    cr_assert_not_null(cursor);
    /* Follow every page: 7 tools, each once, and the last page has no cursor. */
    int seen = 3;
    char req[256];
    while (cursor != NULL) {
        snprintf(req, sizeof(req),
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/"
                 "list\",\"params\":{\"cursor\":\"%s\"}}",
                 cursor);
        send_msg(s, req, NULL);
        r = json_object_get(last(), "result");
        seen += (int)json_array_size(json_object_get(r, "tools"));
        cursor = json_string_value(json_object_get(r, "nextCursor"));
    }
    cr_assert_eq(seen, 7);
    send_msg(s,
             "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/"
             "list\",\"params\":{\"cursor\":\"bogus\"}}",
             NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32602);
    done(s);
}

Test(mcp_server, tools_call_validates_then_runs) {
    nx_mcp_server_t *s = make_server();
    cr_assert_eq(send_msg(s,
                          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
                          "{\"name\":\"echo\",\"arguments\":{\"message\":\"hi\"}}}",
                          NULL),
                 NX_MCP_ANSWERED, "a handler answering inline is ANSWERED");
    json_t *r = json_object_get(last(), "result");
    cr_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(r, "content"), 0), "text")),
                     "hi");
    cr_assert_null(json_object_get(r, "isError"));
    /* Schema violations are isError results naming the field. */
    send_msg(s,
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"echo\",\"arguments\":{\"message\":42}}}",
             NULL);
    r = json_object_get(last(), "result");
    cr_assert(json_is_true(json_object_get(r, "isError")));
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
    cr_assert(strstr(text, "/message") && strstr(text, "string"), "%s", text);
    send_msg(
        s,
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}",
        NULL);
    r = json_object_get(last(), "result");
    cr_assert(json_is_true(json_object_get(r, "isError")), "missing required argument");
    /* Unknown tool and malformed params are protocol errors. */
    send_msg(
        s,
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\"}}",
        NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32602);
    send_msg(s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":7}}",
             NULL);
    cr_assert(strstr(
        json_string_value(json_object_get(json_object_get(last(), "error"), "message")), "name"));
    done(s);
}

Test(mcp_server, deferred_answers_and_cancellation) {
    nx_mcp_server_t *s = make_server();
    nx_mcp_call_t *pending = NULL;
    g_parked = NULL;
    cr_assert_eq(send_msg(s,
                          "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
                          "{\"name\":\"slow\"}}",
                          &pending),
                 NX_MCP_PENDING);
    cr_assert_eq(pending, g_parked);
    cr_assert_str_eq(nx_mcp_call_tool(pending), "slow");
    cr_assert_eq(json_array_size(g_replies), 0, "no reply until the tool answers");
    nx_mcp_call_return_text(g_parked, "late", false);
    cr_assert_eq(json_array_size(g_replies), 1);
    cr_assert_eq(json_integer_value(json_object_get(last(), "id")), 7);

    send_msg(
        s,
        "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\"}}",
        &pending);
    nx_mcp_call_cancel(pending);
    cr_assert(nx_mcp_call_cancelled(g_parked));
    nx_mcp_call_return_text(g_parked, "nobody listens", false);
    cr_assert_eq(json_array_size(g_replies), 1, "a cancelled call's answer is dropped");
    done(s);
}

Test(mcp_server, registration_errors) {
    nx_mcp_server_t *s = make_server();
    char err[256];
    nx_mcp_tool_def_t bad = {.name = "has space", .handler = echo_tool};
    cr_assert_eq(nx_mcp_server_add_tool(s, &bad, err, sizeof(err)), NX_ECONFIG);
    bad.name = "echo";
    cr_assert_eq(nx_mcp_server_add_tool(s, &bad, err, sizeof(err)), NX_ECONFIG);
    cr_assert(strstr(err, "twice"));
    bad.name = "x";
    bad.input_schema = "{\"type\":\"object\",";
    cr_assert_eq(nx_mcp_server_add_tool(s, &bad, err, sizeof(err)), NX_ECONFIG);
    cr_assert(strstr(err, "not valid JSON"), "%s", err);
    bad.input_schema = "{\"type\":\"string\"}";
    cr_assert_eq(nx_mcp_server_add_tool(s, &bad, err, sizeof(err)), NX_ECONFIG);
    bad.input_schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"minimum\":\"x\"}}}";
    cr_assert_eq(nx_mcp_server_add_tool(s, &bad, err, sizeof(err)), NX_ECONFIG);
    cr_assert(strstr(err, "minimum"), "%s", err);
    cr_assert_eq(nx_mcp_server_tool_count(s), 2);
    done(s);
}

static int g_cancelled;
static void on_cancel_hook(nx_mcp_call_t *call, void *arg) {
    g_cancelled++;
    free(arg); /* the tool's own state */
}
static void hooked_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    g_parked = call;
    nx_mcp_call_on_cancel(call, on_cancel_hook, malloc(16));
}

Test(mcp_server, cancel_hook_releases_tool_state_and_frees_the_call) {
    nx_mcp_server_t *s = make_server();
    char err[128];
    nx_mcp_tool_def_t d = {.name = "hooked", .handler = hooked_tool};
    cr_assert_eq(nx_mcp_server_add_tool(s, &d, err, sizeof(err)), 0);
    nx_mcp_call_t *pending = NULL;
    g_cancelled = 0;
    cr_assert_eq(send_msg(s,
                          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
                          "{\"name\":\"hooked\"}}",
                          &pending),
                 NX_MCP_PENDING);
    nx_mcp_call_cancel(pending); /* frees the call and, through the hook, the tool's state */
    cr_assert_eq(g_cancelled, 1);
    cr_assert_eq(json_array_size(g_replies), 0);
    done(s); /* LeakSanitizer (tests/run_unit.sh) fails the test if anything leaked */
}
