/* The MCP server core without a transport: lifecycle, the catalog (tools, resources, templates,
 * prompts, completion), synchronous and deferred handlers, cancellation, progress, logging,
 * server-to-client requests, peers, broadcasts and the stateless 2026-07-28 era. */
#include <criterion/criterion.h>

#include "mcp_server.h"
#include "nexus/errors.h"

#include <math.h>
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

/* ---- resources, prompts, completion, logging, progress, server-to-client requests, peers,
 * broadcasts and the stateless 2026-07-28 era. JSON below is written with ' for ". ---- */

static char *dq(const char *text) {
    char *t = strdup(text);
    cr_assert_not_null(t);
    for (char *p = t; *p; p++)
        if (*p == '\'') *p = '"';
    return t;
}

/* Fails unless <actual> equals the JSON <expected_q> exactly (an integer never equals a real). */
static void assert_json(const json_t *actual, const char *expected_q) {
    char *t = dq(expected_q);
    json_error_t je;
    json_t *want = json_loads(t, JSON_DECODE_ANY, &je);
    cr_assert_not_null(want, "bad expected JSON %s: %s", t, je.text);
    char *got = actual ? json_dumps(actual, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    bool eq = json_equal(want, (json_t *)actual);
    if (!eq) cr_assert_fail("got %s\nwant %s", got ? got : "(nothing)", t);
    free(got);
    free(t);
    json_decref(want);
}

static int g_tag;      /* the transport of the requests below */
static json_t *g_sent; /* what ctx.send got, in order */

static void reply_tagged(void *transport, json_t *msg) {
    cr_assert_eq(transport, &g_tag, "the reply goes to the request's transport");
    cr_assert_not_null(msg);
    json_array_append_new(g_replies, msg);
}

static void send_tagged(void *transport, json_t *msg) {
    cr_assert_eq(transport, &g_tag, "related messages go to the request's transport");
    cr_assert_not_null(msg);
    json_array_append_new(g_sent, msg);
}

static nx_mcp_request_ctx_t with_peer(nx_mcp_peer_t *peer) {
    return (nx_mcp_request_ctx_t){
        .reply = reply_tagged, .send = send_tagged, .transport = &g_tag, .peer = peer};
}

static nx_mcp_request_ctx_t stateless_ctx(void) {
    return (nx_mcp_request_ctx_t){
        .reply = reply_tagged, .send = send_tagged, .transport = &g_tag, .stateless = true};
}

/* Decodes <text_q> and dispatches it under <ctx>. */
static nx_mcp_dispatch_t dispatch(nx_mcp_server_t *s, nx_mcp_request_ctx_t ctx, const char *text_q,
                                  nx_mcp_call_t **pending) {
    char *t = dq(text_q);
    nx_rpc_batch_t b;
    cr_assert_eq(nx_rpc_decode(t, strlen(t), NULL, &b), 0, "%s", t);
    cr_assert_eq(b.count, 1);
    cr_assert_neq(b.msgs[0].kind, NX_RPC_INVALID, "%s", t);
    nx_mcp_dispatch_t d = nx_mcp_server_dispatch(s, &b.msgs[0], &ctx, pending);
    nx_rpc_batch_dispose(&b);
    free(t);
    return d;
}

/* The peer's own stream (WebSocket, stdio, GET stream): records what was pushed, or refuses. */
typedef struct stream_rec {
    json_t *msgs;
    bool refuse;
} stream_rec_t;

static bool push_rec(nx_mcp_peer_t *peer, json_t *msg) {
    stream_rec_t *r = peer->owner;
    if (r->refuse) {
        json_decref(msg);
        return false;
    }
    json_array_append_new(r->msgs, msg);
    return true;
}

/* What the handlers saw. */
static int g_runs;
static json_t *g_args, *g_caps, *g_params;
static char g_target[256];
static bool g_stateless;

static void note(nx_mcp_call_t *call, json_t *args) {
    g_runs++;
    json_decref(g_args);
    g_args = json_deep_copy(args);
    snprintf(g_target, sizeof(g_target), "%s", nx_mcp_call_target(call));
}

static void read_resource(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    nx_mcp_call_return(call, json_pack("{s:[{s:s, s:s}]}", "contents", "uri",
                                       nx_mcp_call_target(call), "text", (const char *)data));
}

static void cached_resource(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    nx_mcp_call_return(
        call, json_pack("{s:[], s:i, s:s}", "contents", "ttlMs", 5000, "cacheScope", "public"));
}

static void park(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    g_parked = call;
}

static void greet_prompt(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    const char *name = json_string_value(json_object_get(args, "name"));
    char text[128];
    snprintf(text, sizeof(text), "Hello %s", name ? name : "you");
    nx_mcp_call_return(call, json_pack("{s:[{s:s, s:{s:s, s:s}}]}", "messages", "role", "user",
                                       "content", "type", "text", "text", text));
}

static void complete_names(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    nx_mcp_call_return(call, json_pack("{s:{s:[s, s], s:i, s:b}}", "completion", "values", "Ada",
                                       "Adam", "total", 2, "hasMore", 0));
}

static void caps_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    json_decref(g_caps);
    json_decref(g_params);
    g_caps = json_deep_copy(nx_mcp_call_client_capabilities(call));
    g_params = json_deep_copy(nx_mcp_call_params(call));
    g_stateless = nx_mcp_call_is_stateless(call);
    nx_mcp_call_return_text(call, "ok", false);
}

static void input_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    nx_mcp_call_return(call,
                       json_pack("{s:s, s:{s:{s:s, s:{s:s}}}, s:s}", "resultType", "input_required",
                                 "inputRequests", "q", "method", "elicitation/create", "params",
                                 "message", "Name?", "requestState", "st1"));
}

static void progress_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    nx_mcp_call_progress(call, 1, -1, NULL);
    nx_mcp_call_progress(call, 2.5, 10, "half");
    nx_mcp_call_progress(call, 3, 0.5, NULL);
    nx_mcp_call_return_text(call, "done", false);
}

/* Logs once at every level: data is the level's number (null for debug), logger only on
 * error. */
static void log_all(nx_mcp_call_t *call) {
    for (int l = NX_MCP_LOG_DEBUG; l <= NX_MCP_LOG_EMERGENCY; l++)
        nx_mcp_call_log(call, (nx_mcp_log_level_t)l, l == NX_MCP_LOG_ERROR ? "lg" : NULL,
                        l == NX_MCP_LOG_DEBUG ? NULL : json_integer(l));
}

static void logs_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    log_all(call);
    nx_mcp_call_return_text(call, "logged", false);
}

/* Server-to-client requests: the callback records the answer and, when its arg is &k_answer,
 * answers the call with it. */
static int k_answer;
static int g_answers, g_cancelled;
static json_t *g_answer_result, *g_answer_error;
static nx_mcp_call_t *g_answer_call;

static void on_answer(nx_mcp_call_t *call, const json_t *result, const json_t *error, void *arg) {
    g_answers++;
    g_answer_call = call;
    cr_assert((result == NULL) != (error == NULL), "exactly one of result and error");
    json_decref(g_answer_result);
    json_decref(g_answer_error);
    g_answer_result = result ? json_deep_copy(result) : NULL;
    g_answer_error = error ? json_deep_copy(error) : NULL;
    if (arg != &k_answer) return;
    if (error != NULL)
        nx_mcp_call_return_text(call, json_string_value(json_object_get(error, "message")), true);
    else
        nx_mcp_call_return(call,
                           json_pack("{s:[{s:s, s:s}], s:o}", "content", "type", "text", "text",
                                     "answered", "structuredContent", json_deep_copy(result)));
}

static void count_cancel(nx_mcp_call_t *call, void *arg) {
    g_cancelled++;
}

static void ask_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    g_parked = call;
    nx_mcp_call_request(call, "sampling/createMessage", json_pack("{s:i}", "maxTokens", 5),
                        on_answer, data);
}

static void ask_twice_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    g_parked = call;
    nx_mcp_call_request(call, "roots/list", NULL, on_answer, NULL);
    nx_mcp_call_request(call, "elicitation/create", json_pack("{s:s}", "message", "?"), on_answer,
                        NULL);
}

static void ask_hooked_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    g_parked = call;
    nx_mcp_call_on_cancel(call, count_cancel, NULL);
    nx_mcp_call_request(call, "roots/list", NULL, on_answer, NULL);
}

/* Progress, a log line, a request, more progress: the order ctx.send must see them in. */
static void chatty_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    note(call, args);
    g_parked = call;
    nx_mcp_call_progress(call, 1, 4, "start");
    nx_mcp_call_log(call, NX_MCP_LOG_INFO, "lg", json_string("hello"));
    nx_mcp_call_request(call, "roots/list", NULL, on_answer, data);
    nx_mcp_call_progress(call, 2, 4, NULL);
}

static const nx_mcp_prompt_arg_t greet_args[] = {
    {.name = "name", .description = "Who to greet", .required = true},
    {.name = "style"},
};

static nx_mcp_server_t *make_rich_server(void) {
    nx_mcp_server_t *s = make_server();
    g_sent = json_array();
    g_runs = g_answers = g_cancelled = 0;
    g_parked = NULL;
    char err[256];
    const nx_mcp_resource_def_t resources[] = {
        {.uri = "test://static",
         .name = "static",
         .title = "Static",
         .description = "A fixed text",
         .mime_type = "text/plain",
         .handler = read_resource,
         .data = "static text"},
        {.uri = "test://slow", .name = "slow", .handler = park},
        {.uri = "test://cached", .name = "cached", .handler = cached_resource},
        {.uri = "test://t/{a}/x/{b}",
         .is_template = true,
         .name = "pair",
         .mime_type = "application/json",
         .handler = read_resource,
         .data = "pair"},
        {.uri = "test://later/{id}", .is_template = true, .name = "later", .handler = park},
    };
    for (size_t i = 0; i < sizeof(resources) / sizeof(resources[0]); i++)
        cr_assert_eq(nx_mcp_server_add_resource(s, &resources[i], err, sizeof(err)), 0, "%s", err);
    const nx_mcp_prompt_def_t prompts[] = {
        {.name = "greet",
         .title = "Greeting",
         .description = "Says hello",
         .arguments = greet_args,
         .argument_count = 2,
         .handler = greet_prompt},
        {.name = "plain", .handler = greet_prompt},
        {.name = "later", .handler = park},
    };
    for (size_t i = 0; i < sizeof(prompts) / sizeof(prompts[0]); i++)
        cr_assert_eq(nx_mcp_server_add_prompt(s, &prompts[i], err, sizeof(err)), 0, "%s", err);
    const nx_mcp_tool_def_t tools[] = {
        {.name = "caps", .handler = caps_tool},
        {.name = "input", .handler = input_tool},
        {.name = "progress", .handler = progress_tool},
        {.name = "logs", .handler = logs_tool},
        {.name = "park", .handler = park},
        {.name = "ask", .handler = ask_tool, .data = &k_answer},
        {.name = "ask_keep", .handler = ask_tool},
        {.name = "ask_twice", .handler = ask_twice_tool},
        {.name = "ask_hooked", .handler = ask_hooked_tool},
        {.name = "chatty", .handler = chatty_tool, .data = &k_answer},
    };
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
        cr_assert_eq(nx_mcp_server_add_tool(s, &tools[i], err, sizeof(err)), 0, "%s", err);
    return s;
}

static void done_rich(nx_mcp_server_t *s) {
    done(s);
    json_decref(g_sent);
    json_decref(g_args);
    json_decref(g_caps);
    json_decref(g_params);
    json_decref(g_answer_result);
    json_decref(g_answer_error);
    g_args = g_caps = g_params = g_answer_result = g_answer_error = NULL;
}

/* Starts <p> and initializes it with client capabilities <caps_q>; forgets the reply. */
static void init_peer(nx_mcp_server_t *s, nx_mcp_peer_t *p, nx_mcp_push_fn push, void *owner,
                      const char *caps_q) {
    nx_mcp_peer_init(p, push, owner);
    cr_assert_not(p->initialized);
    char req[512];
    snprintf(req, sizeof(req),
             "{'jsonrpc':'2.0','id':'init','method':'initialize','params':{'protocolVersion':"
             "'2025-06-18','capabilities':%s,'clientInfo':{'name':'t','version':'0'}}}",
             caps_q);
    cr_assert_eq(dispatch(s, with_peer(p), req, NULL), NX_MCP_ANSWERED);
    cr_assert_not_null(json_object_get(last(), "result"));
    cr_assert(p->initialized);
    json_array_clear(g_replies);
}

static size_t replies(void) {
    return json_array_size(g_replies);
}

static size_t sent(void) {
    return json_array_size(g_sent);
}

/* _meta of a well-formed 2026-07-28 request without a log level. */
#define META_Q                                                                                     \
    "'_meta':{'io.modelcontextprotocol/protocolVersion':'2026-07-28',"                             \
    "'io.modelcontextprotocol/clientCapabilities':{}}"

/* ---- resources ---- */

Test(mcp_server, resource_lists_describe_resources_and_templates) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_request_ctx_t ctx = with_peer(NULL);
    cr_assert_eq(dispatch(s, ctx, "{'jsonrpc':'2.0','id':1,'method':'resources/list'}", NULL),
                 NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{'resources':["
                        "{'uri':'test://static','name':'static','title':'Static',"
                        "'description':'A fixed text','mimeType':'text/plain'},"
                        "{'uri':'test://slow','name':'slow'},"
                        "{'uri':'test://cached','name':'cached'}]}}");
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':2,'method':'resources/templates/list'}", NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'result':{'resourceTemplates':["
                        "{'uriTemplate':'test://t/{a}/x/{b}','name':'pair',"
                        "'mimeType':'application/json'},"
                        "{'uriTemplate':'test://later/{id}','name':'later'}]}}");
    /* Pages like tools/list, with a cursor of its own kind. */
    nx_mcp_server_set_page_size(s, 2);
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':3,'method':'resources/list'}", NULL);
    json_t *r = json_object_get(last(), "result");
    cr_assert_eq(json_array_size(json_object_get(r, "resources")), 2);
    char req[256];
    snprintf(req, sizeof(req),
             "{'jsonrpc':'2.0','id':4,'method':'resources/list','params':{'cursor':'%s'}}",
             json_string_value(json_object_get(r, "nextCursor")));
    dispatch(s, ctx, req, NULL);
    assert_json(json_object_get(last(), "result"),
                "{'resources':[{'uri':'test://cached','name':'cached'}]}");
    snprintf(req, sizeof(req),
             "{'jsonrpc':'2.0','id':5,'method':'prompts/list','params':{'cursor':'%s'}}",
             json_string_value(json_object_get(r, "nextCursor")));
    dispatch(s, ctx, req, NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32602, "a resources/list cursor is no prompts/list cursor");
    done_rich(s);
}

Test(mcp_server, resources_read_static_and_two_variable_template) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_request_ctx_t ctx = with_peer(NULL);
    cr_assert_eq(dispatch(s, ctx,
                          "{'jsonrpc':'2.0','id':1,'method':'resources/read','params':"
                          "{'uri':'test://static'}}",
                          NULL),
                 NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{'contents':"
                        "[{'uri':'test://static','text':'static text'}]}}");
    assert_json(g_args, "{'uri':'test://static','variables':{}}");
    cr_assert_str_eq(g_target, "test://static");

    cr_assert_eq(dispatch(s, ctx,
                          "{'jsonrpc':'2.0','id':2,'method':'resources/read','params':"
                          "{'uri':'test://t/1/x/two'}}",
                          NULL),
                 NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'result':{'contents':"
                        "[{'uri':'test://t/1/x/two','text':'pair'}]}}");
    assert_json(g_args, "{'uri':'test://t/1/x/two','variables':{'a':'1','b':'two'}}");
    cr_assert_str_eq(g_target, "test://t/1/x/two", "the call serves the URI, not the template");

    dispatch(s, ctx,
             "{'jsonrpc':'2.0','id':3,'method':'resources/read','params':"
             "{'uri':'test://later/42'}}",
             NULL);
    assert_json(g_args, "{'uri':'test://later/42','variables':{'id':'42'}}");
    nx_mcp_call_return(g_parked, json_pack("{s:[]}", "contents"));
    assert_json(last(), "{'jsonrpc':'2.0','id':3,'result':{'contents':[]}}");
    done_rich(s);
}

Test(mcp_server, resources_read_of_a_uri_nothing_matches_is_32002) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_request_ctx_t ctx = with_peer(NULL);
    const char *misses[] = {
        "test://t/1/y/2",   /* a literal differs */
        "test://t/1/x/2/3", /* a value never spans '/' */
        "test://t//x/2",    /* an empty value */
        "test://t/1/x/",    /* an empty last value */
        "test://t/1",       /* the URI ends early */
        "test://staticx",   /* a static URI matches exactly or not at all */
        "test://later/",
    };
    for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
        char req[256], want[512];
        snprintf(req, sizeof(req),
                 "{'jsonrpc':'2.0','id':%zu,'method':'resources/read','params':{'uri':'%s'}}", i,
                 misses[i]);
        cr_assert_eq(dispatch(s, ctx, req, NULL), NX_MCP_ANSWERED);
        snprintf(want, sizeof(want),
                 "{'jsonrpc':'2.0','id':%zu,'error':{'code':-32002,'message':"
                 "'Resource not found: %s','data':{'uri':'%s'}}}",
                 i, misses[i], misses[i]);
        assert_json(last(), want);
    }
    cr_assert_eq(g_runs, 0, "no handler ran");
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':9,'method':'resources/read','params':{}}", NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32602);
    cr_assert(strstr(
        json_string_value(json_object_get(json_object_get(last(), "error"), "message")), "uri"));
    done_rich(s);
}

Test(mcp_server, resource_registration_errors) {
    nx_mcp_server_t *s = make_rich_server();
    char err[256];
    nx_mcp_resource_def_t d = {.uri = "no-scheme", .name = "n", .handler = park};
    cr_assert_eq(nx_mcp_server_add_resource(s, &d, err, sizeof(err)), NX_ECONFIG);
    cr_assert(strstr(err, "absolute"), "%s", err);
    d.uri = "test://static";
    cr_assert_eq(nx_mcp_server_add_resource(s, &d, err, sizeof(err)), NX_ECONFIG);
    cr_assert(strstr(err, "twice"), "%s", err);
    d.uri = "test://new";
    d.name = NULL;
    cr_assert_eq(nx_mcp_server_add_resource(s, &d, err, sizeof(err)), NX_ECONFIG);
    d.name = "n";
    d.handler = NULL;
    cr_assert_eq(nx_mcp_server_add_resource(s, &d, err, sizeof(err)), NX_ECONFIG);
    d.handler = park;
    d.is_template = true;
    const char *bad[] = {"test://no-vars", "test://{open", "test://close}", "test://{}",
                         "test://{a{b}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        d.uri = bad[i];
        cr_assert_eq(nx_mcp_server_add_resource(s, &d, err, sizeof(err)), NX_ECONFIG, "%s", bad[i]);
    }
    d.uri = "test://t/{a}/x/{b}";
    cr_assert_eq(nx_mcp_server_add_resource(s, &d, err, sizeof(err)), NX_ECONFIG);
    cr_assert(strstr(err, "twice"), "%s", err);
    nx_mcp_prompt_def_t p = {.name = "greet", .handler = park};
    cr_assert_eq(nx_mcp_server_add_prompt(s, &p, err, sizeof(err)), NX_ECONFIG);
    cr_assert(strstr(err, "twice"), "%s", err);
    p.name = "";
    cr_assert_eq(nx_mcp_server_add_prompt(s, &p, err, sizeof(err)), NX_ECONFIG);
    p.name = "new";
    p.handler = NULL;
    cr_assert_eq(nx_mcp_server_add_prompt(s, &p, err, sizeof(err)), NX_ECONFIG);
    done_rich(s);
}

Test(mcp_server, handler_answers_later_with_call_error) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_call_t *pending = NULL;
    cr_assert_eq(dispatch(s, with_peer(NULL),
                          "{'jsonrpc':'2.0','id':'r1','method':'resources/read','params':"
                          "{'uri':'test://later/7'}}",
                          &pending),
                 NX_MCP_PENDING);
    cr_assert_eq(pending, g_parked);
    cr_assert_eq(replies(), 0);
    cr_assert_str_eq(json_string_value(nx_mcp_call_id(pending)), "r1");
    nx_mcp_call_error(pending, -32002, "Resource vanished",
                      json_pack("{s:s}", "uri", "test://later/7"));
    cr_assert_eq(replies(), 1);
    assert_json(last(), "{'jsonrpc':'2.0','id':'r1','error':{'code':-32002,"
                        "'message':'Resource vanished','data':{'uri':'test://later/7'}}}");
    /* Without data there is no data member. */
    dispatch(s, with_peer(NULL),
             "{'jsonrpc':'2.0','id':2,'method':'prompts/get','params':{'name':'later'}}", &pending);
    cr_assert_str_eq(nx_mcp_call_target(pending), "later");
    nx_mcp_call_error(pending, -32603, "backend down", NULL);
    assert_json(last(),
                "{'jsonrpc':'2.0','id':2,'error':{'code':-32603,'message':'backend down'}}");
    done_rich(s);
}

/* ---- prompts and completion ---- */

Test(mcp_server, prompts_list_and_get) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_request_ctx_t ctx = with_peer(NULL);
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':1,'method':'prompts/list'}", NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{'prompts':["
                        "{'name':'greet','title':'Greeting','description':'Says hello',"
                        "'arguments':[{'name':'name','required':true,'description':'Who to greet'},"
                        "{'name':'style','required':false}]},"
                        "{'name':'plain','arguments':[]},{'name':'later','arguments':[]}]}}");
    cr_assert_eq(dispatch(s, ctx,
                          "{'jsonrpc':'2.0','id':2,'method':'prompts/get','params':"
                          "{'name':'greet','arguments':{'name':'Ada','style':'warm'}}}",
                          NULL),
                 NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'result':{'messages':[{'role':'user',"
                        "'content':{'type':'text','text':'Hello Ada'}}]}}");
    assert_json(g_args, "{'name':'Ada','style':'warm'}");
    cr_assert_str_eq(g_target, "greet");
    /* A prompt without required arguments runs without any: the handler sees {}. */
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':3,'method':'prompts/get','params':{'name':'plain'}}",
             NULL);
    assert_json(g_args, "{}");
    cr_assert_str_eq(
        json_string_value(json_object_get(
            json_object_get(
                json_array_get(json_object_get(json_object_get(last(), "result"), "messages"), 0),
                "content"),
            "text")),
        "Hello you");
    done_rich(s);
}

Test(mcp_server, prompts_get_checks_arguments_before_the_handler) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_request_ctx_t ctx = with_peer(NULL);
    dispatch(s, ctx,
             "{'jsonrpc':'2.0','id':1,'method':'prompts/get','params':"
             "{'name':'greet','arguments':{'style':'warm'}}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'error':{'code':-32602,'message':"
                        "'params.arguments.name is required by prompt greet'}}");
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':2,'method':'prompts/get','params':{'name':'greet'}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'error':{'code':-32602,'message':"
                        "'params.arguments.name is required by prompt greet'}}");
    dispatch(s, ctx,
             "{'jsonrpc':'2.0','id':3,'method':'prompts/get','params':"
             "{'name':'greet','arguments':{'name':'Ada','style':3}}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':3,'error':{'code':-32602,'message':"
                        "'params.arguments.style must be a string'}}");
    dispatch(s, ctx,
             "{'jsonrpc':'2.0','id':4,'method':'prompts/get','params':"
             "{'name':'plain','arguments':{'x':null}}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':4,'error':{'code':-32602,'message':"
                        "'params.arguments.x must be a string'}}");
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':5,'method':'prompts/get','params':{'name':'nope'}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':5,'error':{'code':-32602,'message':"
                        "'Unknown prompt: nope'}}");
    dispatch(s, ctx,
             "{'jsonrpc':'2.0','id':6,'method':'prompts/get','params':"
             "{'name':'greet','arguments':['Ada']}}",
             NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32602);
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':7,'method':'prompts/get','params':{}}", NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32602);
    cr_assert_eq(g_runs, 0, "the handler never ran");
    done_rich(s);
}

#define COMPLETE_Q(ref, arg)                                                                       \
    "{'jsonrpc':'2.0','id':1,'method':'completion/complete','params':{'ref':" ref                  \
    ",'argument':" arg "}}"

Test(mcp_server, completion_is_empty_without_a_handler_and_checks_params) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_request_ctx_t ctx = with_peer(NULL);
    cr_assert_eq(
        dispatch(s, ctx,
                 COMPLETE_Q("{'type':'ref/prompt','name':'greet'}", "{'name':'name','value':'A'}"),
                 NULL),
        NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{'completion':"
                        "{'values':[],'total':0,'hasMore':false}}}");
    dispatch(s, ctx, COMPLETE_Q("{'type':'ref/tool','name':'x'}", "{'name':'n','value':'A'}"),
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'error':{'code':-32602,'message':"
                        "'params.ref.type must be \\\"ref/prompt\\\" or \\\"ref/resource\\\"'}}");
    dispatch(s, ctx, COMPLETE_Q("{'type':'ref/prompt','name':'greet'}", "{'name':'name'}"), NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'error':{'code':-32602,'message':"
                        "'params.argument needs string members name and value'}}");
    dispatch(s, ctx, COMPLETE_Q("{'type':'ref/prompt','name':'greet'}", "{'name':1,'value':'A'}"),
             NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32602);
    dispatch(s, ctx,
             "{'jsonrpc':'2.0','id':1,'method':'completion/complete','params':"
             "{'argument':{'name':'n','value':'A'}}}",
             NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32602, "ref is required");
    done_rich(s);
}

Test(mcp_server, completion_handler_gets_the_params_and_answers) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_server_set_completion(s, complete_names, NULL);
    nx_mcp_request_ctx_t ctx = with_peer(NULL);
    cr_assert_eq(
        dispatch(s, ctx,
                 COMPLETE_Q("{'type':'ref/prompt','name':'greet'}", "{'name':'name','value':'Ad'}"),
                 NULL),
        NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{'completion':"
                        "{'values':['Ada','Adam'],'total':2,'hasMore':false}}}");
    assert_json(
        g_args,
        "{'ref':{'type':'ref/prompt','name':'greet'},'argument':{'name':'name','value':'Ad'}}");
    cr_assert_str_eq(g_target, "greet");
    dispatch(
        s, ctx,
        COMPLETE_Q("{'type':'ref/resource','uri':'test://t/{a}/x/{b}'}", "{'name':'a','value':''}"),
        NULL);
    cr_assert_str_eq(g_target, "test://t/{a}/x/{b}");
    cr_assert_eq(g_runs, 2);
    /* Back to the default. */
    nx_mcp_server_set_completion(s, NULL, NULL);
    dispatch(s, ctx, COMPLETE_Q("{'type':'ref/prompt','name':'greet'}", "{'name':'n','value':''}"),
             NULL);
    cr_assert_eq(g_runs, 2);
    cr_assert_eq(json_array_size(json_object_get(
                     json_object_get(json_object_get(last(), "result"), "completion"), "values")),
                 0);
    done_rich(s);
}

/* The capabilities every initialize must declare: every method is served (empty lists
 * included), whatever the catalog holds. */
static void assert_core_capabilities(const json_t *caps) {
    assert_json(json_object_get(caps, "tools"), "{'listChanged':true}");
    assert_json(json_object_get(caps, "resources"), "{'subscribe':true,'listChanged':true}");
    assert_json(json_object_get(caps, "prompts"), "{'listChanged':true}");
    assert_json(json_object_get(caps, "logging"), "{}");
    assert_json(json_object_get(caps, "completions"), "{}");
}

Test(mcp_server, initialize_declares_every_capability) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_server_set_instructions(s, "Be nice");
    dispatch(s, with_peer(NULL),
             "{'jsonrpc':'2.0','id':1,'method':'initialize','params':{'protocolVersion':"
             "'2025-11-25','capabilities':{},'clientInfo':{'name':'t','version':'0'}}}",
             NULL);
    json_t *r = json_object_get(last(), "result");
    cr_assert_str_eq(json_string_value(json_object_get(r, "protocolVersion")), "2025-11-25");
    assert_core_capabilities(json_object_get(r, "capabilities"));
    assert_json(json_object_get(r, "serverInfo"), "{'name':'nexus-test','version':'1.2.3'}");
    cr_assert_str_eq(json_string_value(json_object_get(r, "instructions")), "Be nice");
    done_rich(s);
    /* An empty catalog declares the same, and its lists answer empty. */
    s = make_server();
    send_msg(s,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{}}}",
             NULL);
    r = json_object_get(last(), "result");
    assert_core_capabilities(json_object_get(r, "capabilities"));
    cr_assert_null(json_object_get(r, "instructions"));
    send_msg(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/list\"}", NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'result':{'resources':[]}}");
    send_msg(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/list\"}", NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':3,'result':{'prompts':[]}}");
    done(s);
}

/* ---- peers ---- */

Test(mcp_server, peer_refuses_requests_before_initialize) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    nx_mcp_peer_init(&p, NULL, NULL);
    nx_mcp_request_ctx_t ctx = with_peer(&p);
    cr_assert_eq(dispatch(s, ctx, "{'jsonrpc':'2.0','id':1,'method':'ping'}", NULL),
                 NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{}}");
    const char *early[] = {
        "{'jsonrpc':'2.0','id':2,'method':'tools/list'}",
        "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'caps'}}",
        "{'jsonrpc':'2.0','id':2,'method':'resources/list'}",
        "{'jsonrpc':'2.0','id':2,'method':'resources/templates/list'}",
        "{'jsonrpc':'2.0','id':2,'method':'resources/read','params':{'uri':'test://static'}}",
        "{'jsonrpc':'2.0','id':2,'method':'resources/subscribe','params':{'uri':'test://static'}}",
        "{'jsonrpc':'2.0','id':2,'method':'resources/unsubscribe','params':{'uri':'x:y'}}",
        "{'jsonrpc':'2.0','id':2,'method':'prompts/list'}",
        "{'jsonrpc':'2.0','id':2,'method':'prompts/get','params':{'name':'plain'}}",
        ("{'jsonrpc':'2.0','id':2,'method':'completion/complete','params':{'ref':{'type':'ref/"
         "prompt','name':'greet'},'argument':{'name':'n','value':''}}}"),
        "{'jsonrpc':'2.0','id':2,'method':'logging/setLevel','params':{'level':'error'}}",
    };
    for (size_t i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
        cr_assert_eq(dispatch(s, ctx, early[i], NULL), NX_MCP_ANSWERED);
        assert_json(last(), "{'jsonrpc':'2.0','id':2,'error':{'code':-32600,'message':"
                            "'the connection is not initialized: send initialize first'}}");
    }
    cr_assert_eq(g_runs, 0);
    cr_assert_eq(p.log_level, NX_MCP_LOG_DEBUG, "a refused setLevel changes nothing");
    cr_assert_eq(json_object_size(p.subscriptions), 0, "a refused subscribe changes nothing");
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':3,'method':'nope/never'}", NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32601, "an unknown method is unknown, initialized or not");
    dispatch(s, ctx,
             "{'jsonrpc':'2.0','id':4,'method':'initialize','params':{'protocolVersion':"
             "'2024-11-05','capabilities':{'sampling':{}},'clientInfo':{'name':'t'}}}",
             NULL);
    cr_assert(p.initialized);
    cr_assert_str_eq(p.protocol_version, "2024-11-05");
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':5,'method':'tools/call','params':{'name':'caps'}}",
             NULL);
    cr_assert_not_null(json_object_get(last(), "result"));
    cr_assert_eq(g_runs, 1);
    assert_json(g_caps, "{'sampling':{}}");
    cr_assert_not(g_stateless);
    nx_mcp_peer_dispose(&p);
    done_rich(s);
}

Test(mcp_server, handlers_see_the_peer_capabilities_and_params) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{'roots':{'listChanged':true},'elicitation':{}}");
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'caps',"
             "'arguments':{'k':1},'_meta':{'progressToken':'t'},'extra':'x'}}",
             NULL);
    assert_json(g_caps, "{'roots':{'listChanged':true},'elicitation':{}}");
    assert_json(g_params,
                "{'name':'caps','arguments':{'k':1},'_meta':{'progressToken':'t'},'extra':'x'}");
    assert_json(g_args, "{'k':1}");
    /* Without a peer nothing is known about the client. */
    dispatch(s, with_peer(NULL),
             "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'caps'}}", NULL);
    assert_json(g_caps, "{}");
    assert_json(g_args, "{}");
    nx_mcp_peer_dispose(&p);
    done_rich(s);
}

/* ---- progress ---- */

Test(mcp_server, progress_is_sent_only_with_a_token_and_whole_numbers_are_integers) {
    nx_mcp_server_t *s = make_rich_server();
    cr_assert_eq(dispatch(s, with_peer(NULL),
                          "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':"
                          "{'name':'progress'}}",
                          NULL),
                 NX_MCP_ANSWERED);
    cr_assert_eq(sent(), 0, "no progressToken: no progress");
    cr_assert_eq(replies(), 1);
    dispatch(s, with_peer(NULL),
             "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':"
             "{'name':'progress','_meta':{'otherKey':1}}}",
             NULL);
    cr_assert_eq(sent(), 0, "_meta without a progressToken: no progress");
    dispatch(s, with_peer(NULL),
             "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':"
             "{'name':'progress','_meta':{'progressToken':7}}}",
             NULL);
    cr_assert_eq(sent(), 3);
    assert_json(json_array_get(g_sent, 0), "{'jsonrpc':'2.0','method':'notifications/progress',"
                                           "'params':{'progressToken':7,'progress':1}}");
    assert_json(json_array_get(g_sent, 1),
                "{'jsonrpc':'2.0','method':'notifications/progress','params':"
                "{'progressToken':7,'progress':2.5,'total':10,'message':'half'}}");
    assert_json(json_array_get(g_sent, 2),
                "{'jsonrpc':'2.0','method':'notifications/progress',"
                "'params':{'progressToken':7,'progress':3,'total':0.5}}");
    cr_assert(json_is_integer(
        json_object_get(json_object_get(json_array_get(g_sent, 2), "params"), "progress")));
    cr_assert_eq(replies(), 3);
    /* A string token is echoed as a string. */
    dispatch(s, with_peer(NULL),
             "{'jsonrpc':'2.0','id':4,'method':'tools/call','params':"
             "{'name':'progress','_meta':{'progressToken':'abc'}}}",
             NULL);
    cr_assert_eq(sent(), 6);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(g_sent, 3), "params"), "progressToken")),
                     "abc");
    done_rich(s);
}

/* ---- server-to-client requests ---- */

Test(mcp_server, send_gets_progress_log_and_request_in_order_then_the_answer_completes) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{'roots':{}}");
    nx_mcp_call_t *pending = NULL;
    cr_assert_eq(dispatch(s, with_peer(&p),
                          "{'jsonrpc':'2.0','id':5,'method':'tools/call','params':"
                          "{'name':'chatty','_meta':{'progressToken':'tok'}}}",
                          &pending),
                 NX_MCP_PENDING);
    cr_assert_eq(pending, g_parked);
    cr_assert_eq(sent(), 4);
    assert_json(json_array_get(g_sent, 0),
                "{'jsonrpc':'2.0','method':'notifications/progress','params':"
                "{'progressToken':'tok','progress':1,'total':4,'message':'start'}}");
    assert_json(json_array_get(g_sent, 1),
                "{'jsonrpc':'2.0','method':'notifications/message','params':"
                "{'level':'info','logger':'lg','data':'hello'}}");
    assert_json(json_array_get(g_sent, 2), "{'jsonrpc':'2.0','id':1,'method':'roots/list'}");
    assert_json(json_array_get(g_sent, 3),
                "{'jsonrpc':'2.0','method':'notifications/progress','params':"
                "{'progressToken':'tok','progress':2,'total':4}}");
    cr_assert_eq(replies(), 0);
    cr_assert_eq(g_answers, 0);
    /* The client's answer comes back through dispatch on the same peer. */
    cr_assert_eq(dispatch(s, with_peer(&p),
                          "{'jsonrpc':'2.0','id':1,'result':{'roots':[{'uri':'file:///r'}]}}",
                          NULL),
                 NX_MCP_NO_REPLY);
    cr_assert_eq(g_answers, 1);
    assert_json(g_answer_result, "{'roots':[{'uri':'file:///r'}]}");
    cr_assert_null(g_answer_error);
    cr_assert_eq(replies(), 1);
    assert_json(last(),
                "{'jsonrpc':'2.0','id':5,'result':{'content':[{'type':'text',"
                "'text':'answered'}],'structuredContent':{'roots':[{'uri':'file:///r'}]}}}");
    cr_assert_eq(sent(), 4, "the response went to reply, not send");
    /* Ids count on per peer. */
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':6,'method':'tools/call','params':{'name':'chatty'}}", NULL);
    cr_assert_eq(sent(), 6, "without a progressToken only the log and the request go out");
    assert_json(json_array_get(g_sent, 5), "{'jsonrpc':'2.0','id':2,'method':'roots/list'}");
    dispatch(s, with_peer(&p), "{'jsonrpc':'2.0','id':2,'result':{}}", NULL);
    cr_assert_eq(g_answers, 2);
    cr_assert_eq(json_integer_value(json_object_get(last(), "id")), 6);
    nx_mcp_peer_dispose(&p);
    done_rich(s);
}

Test(mcp_server, client_error_response_reaches_the_callback) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{'sampling':{}}");
    cr_assert_eq(dispatch(s, with_peer(&p),
                          "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':{'name':'ask'}}",
                          NULL),
                 NX_MCP_PENDING);
    assert_json(json_array_get(g_sent, 0), "{'jsonrpc':'2.0','id':1,'method':"
                                           "'sampling/createMessage','params':{'maxTokens':5}}");
    cr_assert_eq(dispatch(s, with_peer(&p),
                          "{'jsonrpc':'2.0','id':1,'error':{'code':-1,'message':"
                          "'User rejected sampling','data':{'why':'no'}}}",
                          NULL),
                 NX_MCP_NO_REPLY);
    cr_assert_eq(g_answers, 1);
    cr_assert_null(g_answer_result);
    assert_json(g_answer_error,
                "{'code':-1,'message':'User rejected sampling','data':{'why':'no'}}");
    assert_json(last(), "{'jsonrpc':'2.0','id':3,'result':{'content':[{'type':'text',"
                        "'text':'User rejected sampling'}],'isError':true}}");
    /* A second answer to the same id finds nothing waiting. */
    dispatch(s, with_peer(&p), "{'jsonrpc':'2.0','id':1,'result':{}}", NULL);
    cr_assert_eq(g_answers, 1);
    cr_assert_eq(replies(), 1);
    nx_mcp_peer_dispose(&p);
    done_rich(s);
}

Test(mcp_server, responses_that_match_no_request_are_ignored) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p, other;
    init_peer(s, &p, NULL, NULL, "{}");
    init_peer(s, &other, NULL, NULL, "{}");
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':"
             "{'name':'ask'}}",
             NULL);
    const char *strays[] = {
        "{'jsonrpc':'2.0','id':'1','result':{}}", /* a string is not our integer id */
        "{'jsonrpc':'2.0','id':99,'result':{}}",
        "{'jsonrpc':'2.0','id':99,'error':{'code':-1,'message':'x'}}",
        "{'jsonrpc':'2.0','id':null,'error':{'code':-32700,'message':'parse error'}}",
    };
    for (size_t i = 0; i < sizeof(strays) / sizeof(strays[0]); i++)
        cr_assert_eq(dispatch(s, with_peer(&p), strays[i], NULL), NX_MCP_NO_REPLY, "%s", strays[i]);
    /* The right id on another peer, or with no peer, is not this peer's answer. */
    cr_assert_eq(dispatch(s, with_peer(&other), "{'jsonrpc':'2.0','id':1,'result':{}}", NULL),
                 NX_MCP_NO_REPLY);
    cr_assert_eq(dispatch(s, with_peer(NULL), "{'jsonrpc':'2.0','id':1,'result':{}}", NULL),
                 NX_MCP_NO_REPLY);
    cr_assert_eq(g_answers, 0);
    cr_assert_eq(replies(), 0);
    dispatch(s, with_peer(&p), "{'jsonrpc':'2.0','id':1,'result':{'ok':true}}", NULL);
    cr_assert_eq(g_answers, 1);
    cr_assert_eq(replies(), 1);
    nx_mcp_peer_dispose(&other);
    nx_mcp_peer_dispose(&p);
    done_rich(s);
}

Test(mcp_server, request_without_a_stream_fails_at_once) {
    nx_mcp_server_t *s = make_rich_server();
    stream_rec_t refusing = {.msgs = json_array(), .refuse = true};
    stream_rec_t open = {.msgs = json_array()};
    nx_mcp_peer_t none, refuses, pushes;
    init_peer(s, &none, NULL, NULL, "{}");
    init_peer(s, &refuses, push_rec, &refusing, "{}");
    init_peer(s, &pushes, push_rec, &open, "{}");
    const char *ask = "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':{'name':'ask',"
                      "'_meta':{'progressToken':1}}}";
    nx_mcp_request_ctx_t ctx = with_peer(&none);
    ctx.send = NULL; /* related messages take the peer's own stream, which it has not */
    cr_assert_eq(dispatch(s, ctx, ask, NULL), NX_MCP_ANSWERED,
                 "the callback answered inside the handler");
    cr_assert_eq(g_answers, 1);
    assert_json(g_answer_error,
                "{'code':-32603,'message':'the client has no open stream to receive the request'}");
    assert_json(last(),
                "{'jsonrpc':'2.0','id':3,'result':{'content':[{'type':'text','text':"
                "'the client has no open stream to receive the request'}],'isError':true}}");
    ctx.peer = &refuses;
    cr_assert_eq(dispatch(s, ctx, ask, NULL), NX_MCP_ANSWERED);
    cr_assert_eq(g_answers, 2);
    cr_assert_eq(json_integer_value(json_object_get(g_answer_error, "code")), -32603);
    /* With a stream of its own the request goes there and awaits the answer. */
    ctx.peer = &pushes;
    cr_assert_eq(dispatch(s, ctx, ask, NULL), NX_MCP_PENDING);
    cr_assert_eq(g_answers, 2);
    cr_assert_eq(json_array_size(open.msgs), 1);
    assert_json(json_array_get(open.msgs, 0), "{'jsonrpc':'2.0','id':1,'method':"
                                              "'sampling/createMessage','params':{'maxTokens':5}}");
    nx_mcp_call_progress(g_parked, 1, -1, NULL);
    nx_mcp_call_log(g_parked, NX_MCP_LOG_ERROR, NULL, json_string("x"));
    cr_assert_eq(json_array_size(open.msgs), 3, "progress and logs take the peer's stream too");
    cr_assert_eq(sent(), 0);
    dispatch(s, ctx, "{'jsonrpc':'2.0','id':1,'result':{}}", NULL);
    cr_assert_eq(g_answers, 3);
    cr_assert_null(g_answer_error);
    nx_mcp_peer_dispose(&pushes);
    nx_mcp_peer_dispose(&refuses);
    nx_mcp_peer_dispose(&none);
    json_decref(refusing.msgs);
    json_decref(open.msgs);
    done_rich(s);
}

Test(mcp_server, request_fails_in_a_stateless_or_cancelled_call) {
    nx_mcp_server_t *s = make_rich_server();
    cr_assert_eq(dispatch(s, stateless_ctx(),
                          "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':{'name':'ask',"
                          "" META_Q "}}",
                          NULL),
                 NX_MCP_ANSWERED);
    cr_assert_eq(g_answers, 1);
    assert_json(g_answer_error, "{'code':-32603,'message':"
                                "'this client has no session to receive server requests'}");
    cr_assert_eq(sent(), 0, "nothing went out");
    assert_json(last(), "{'jsonrpc':'2.0','id':3,'result':{'content':[{'type':'text','text':"
                        "'this client has no session to receive server requests'}],"
                        "'isError':true,'resultType':'complete'}}");
    /* A cancelled call can no longer ask, report progress or log, not even on the peer's own
     * stream. */
    stream_rec_t rec = {.msgs = json_array()};
    nx_mcp_peer_t p;
    init_peer(s, &p, push_rec, &rec, "{}");
    nx_mcp_call_t *pending = NULL;
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':4,'method':'tools/call','params':{'name':'park',"
             "'_meta':{'progressToken':1}}}",
             &pending);
    nx_mcp_call_cancel(pending); /* no hook: the call lives until the handler answers */
    cr_assert(nx_mcp_call_cancelled(pending));
    nx_mcp_call_request(pending, "roots/list", json_object(), on_answer, NULL);
    cr_assert_eq(g_answers, 2);
    assert_json(g_answer_error,
                "{'code':-32603,'message':'cannot send the request to the client'}");
    nx_mcp_call_progress(pending, 1, 2, "x");
    nx_mcp_call_log(pending, NX_MCP_LOG_EMERGENCY, NULL, json_string("x"));
    cr_assert_eq(sent(), 0);
    cr_assert_eq(json_array_size(rec.msgs), 0);
    nx_mcp_call_return_text(pending, "late", false);
    cr_assert_eq(replies(), 0, "a cancelled call's answer is dropped");
    nx_mcp_peer_dispose(&p);
    json_decref(rec.msgs);
    done_rich(s);
}

Test(mcp_server, peer_dispose_fails_outstanding_requests) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{}");
    nx_mcp_call_t *keep = NULL, *answer = NULL;
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'ask_keep'}}", &keep);
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'ask'}}", &answer);
    cr_assert_not_null(keep);
    cr_assert_not_null(answer);
    cr_assert_eq(sent(), 2);
    nx_mcp_peer_dispose(&p);
    cr_assert_eq(g_answers, 2, "both requests failed");
    cr_assert_null(g_answer_result);
    cr_assert_eq(json_integer_value(json_object_get(g_answer_error, "code")), -32603);
    const char *m = json_string_value(json_object_get(g_answer_error, "message"));
    cr_assert(m != NULL && strstr(m, "went away"), "%s", m ? m : "(none)");
    /* The callback that answered did so on the request's transport. */
    cr_assert_eq(replies(), 1);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'result':{'content':[{'type':'text','text':"
                        "'the client went away before answering'}],'isError':true}}");
    /* The other call keeps running without the client. */
    cr_assert_not(nx_mcp_call_cancelled(keep));
    nx_mcp_call_request(keep, "roots/list", NULL, on_answer, NULL);
    cr_assert_eq(g_answers, 3, "no client to ask any more");
    cr_assert_eq(json_integer_value(json_object_get(g_answer_error, "code")), -32603);
    nx_mcp_call_return_text(keep, "finished anyway", false);
    cr_assert_eq(replies(), 2);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{'content':[{'type':'text','text':"
                        "'finished anyway'}]}}");
    done_rich(s);
}

Test(mcp_server, cancel_with_a_hook_drops_outstanding_requests) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{}");
    nx_mcp_call_t *pending = NULL;
    cr_assert_eq(dispatch(s, with_peer(&p),
                          "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':"
                          "{'name':'ask_hooked'}}",
                          &pending),
                 NX_MCP_PENDING);
    cr_assert_eq(sent(), 1);
    nx_mcp_call_cancel(pending); /* the hook runs and the call is freed */
    cr_assert_eq(g_cancelled, 1);
    cr_assert_eq(g_answers, 0);
    cr_assert_eq(dispatch(s, with_peer(&p), "{'jsonrpc':'2.0','id':1,'result':{}}", NULL),
                 NX_MCP_NO_REPLY);
    cr_assert_eq(g_answers, 0, "the answer to a cancelled call's request runs no callback");
    nx_mcp_peer_dispose(&p);
    cr_assert_eq(g_answers, 0, "nor does forgetting the client");
    cr_assert_eq(replies(), 0);
    done_rich(s); /* LeakSanitizer: the request's record went with the call */
}

Test(mcp_server, a_call_that_ends_drops_its_outstanding_requests) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{}");
    nx_mcp_call_t *pending = NULL;
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':4,'method':'tools/call','params':{'name':'ask_twice'}}",
             &pending);
    cr_assert_eq(sent(), 2);
    assert_json(json_array_get(g_sent, 0), "{'jsonrpc':'2.0','id':1,'method':'roots/list'}");
    assert_json(json_array_get(g_sent, 1), "{'jsonrpc':'2.0','id':2,'method':"
                                           "'elicitation/create','params':{'message':'?'}}");
    nx_mcp_call_error(pending, -32000, "gave up", json_pack("{s:s}", "why", "timeout"));
    assert_json(last(), "{'jsonrpc':'2.0','id':4,'error':{'code':-32000,'message':'gave up',"
                        "'data':{'why':'timeout'}}}");
    dispatch(s, with_peer(&p), "{'jsonrpc':'2.0','id':1,'result':{}}", NULL);
    dispatch(s, with_peer(&p), "{'jsonrpc':'2.0','id':2,'error':{'code':-1,'message':'no'}}", NULL);
    nx_mcp_peer_dispose(&p);
    cr_assert_eq(g_answers, 0);
    cr_assert_eq(replies(), 1);
    done_rich(s);
}

/* ---- logging ---- */

/* The levels of the notifications/message in g_sent from index <from>, as a string "01234". */
static const char *sent_levels(size_t from) {
    static char out[16];
    size_t n = 0;
    for (size_t i = from; i < sent() && n + 1 < sizeof(out); i++) {
        json_t *m = json_array_get(g_sent, i);
        cr_assert_str_eq(json_string_value(json_object_get(m, "method")), "notifications/message");
        const char *l = json_string_value(json_object_get(json_object_get(m, "params"), "level"));
        out[n++] = (char)('0' + nx_mcp_log_level_from_name(l));
    }
    out[n] = '\0';
    return out;
}

Test(mcp_server, logs_carry_level_logger_and_data) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{}");
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':"
             "{'name':'logs'}}",
             NULL);
    cr_assert_str_eq(sent_levels(0), "01234567", "a new peer gets every level");
    assert_json(json_array_get(g_sent, 0), "{'jsonrpc':'2.0','method':'notifications/message',"
                                           "'params':{'level':'debug','data':null}}");
    assert_json(json_array_get(g_sent, 4), "{'jsonrpc':'2.0','method':'notifications/message',"
                                           "'params':{'level':'error','logger':'lg','data':4}}");
    assert_json(json_array_get(g_sent, 7), "{'jsonrpc':'2.0','method':'notifications/message',"
                                           "'params':{'level':'emergency','data':7}}");
    cr_assert_eq(nx_mcp_log_level_from_name("emergency"), NX_MCP_LOG_EMERGENCY);
    cr_assert_eq(nx_mcp_log_level_from_name("notice"), NX_MCP_LOG_NOTICE);
    cr_assert_eq(nx_mcp_log_level_from_name("DEBUG"), -1);
    cr_assert_eq(nx_mcp_log_level_from_name("warn"), -1);
    nx_mcp_peer_dispose(&p);
    done_rich(s);
}

Test(mcp_server, set_level_filters_per_peer_at_log_time) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t a, b;
    init_peer(s, &a, NULL, NULL, "{}");
    init_peer(s, &b, NULL, NULL, "{}");
    cr_assert_eq(dispatch(s, with_peer(&a),
                          "{'jsonrpc':'2.0','id':1,'method':'logging/setLevel','params':"
                          "{'level':'warning'}}",
                          NULL),
                 NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{}}");
    cr_assert_eq(a.log_level, NX_MCP_LOG_WARNING);
    const char *call = "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'logs'}}";
    dispatch(s, with_peer(&a), call, NULL);
    cr_assert_str_eq(sent_levels(0), "34567", "warning and above");
    size_t mark = sent();
    dispatch(s, with_peer(&b), call, NULL);
    cr_assert_str_eq(sent_levels(mark), "01234567", "another peer keeps its own level");
    /* The level in force when the message is logged counts, not the one at the call's start. */
    nx_mcp_call_t *pending = NULL;
    dispatch(s, with_peer(&a),
             "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':"
             "{'name':'park'}}",
             &pending);
    dispatch(s, with_peer(&a),
             "{'jsonrpc':'2.0','id':4,'method':'logging/setLevel','params':{'level':'critical'}}",
             NULL);
    mark = sent();
    log_all(pending);
    cr_assert_str_eq(sent_levels(mark), "567");
    nx_mcp_call_return_text(pending, "ok", false);
    /* Back down to debug. */
    dispatch(s, with_peer(&a),
             "{'jsonrpc':'2.0','id':5,'method':'logging/setLevel','params':{'level':'debug'}}",
             NULL);
    mark = sent();
    dispatch(s, with_peer(&a), call, NULL);
    cr_assert_str_eq(sent_levels(mark), "01234567");
    nx_mcp_peer_dispose(&a);
    nx_mcp_peer_dispose(&b);
    done_rich(s);
}

Test(mcp_server, set_level_rejects_what_is_not_a_level) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{}");
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':1,'method':'logging/setLevel','params':{'level':'error'}}",
             NULL);
    const char *bad[] = {
        "{'jsonrpc':'2.0','id':2,'method':'logging/setLevel','params':{'level':'verbose'}}",
        "{'jsonrpc':'2.0','id':2,'method':'logging/setLevel','params':{'level':'Error'}}",
        "{'jsonrpc':'2.0','id':2,'method':'logging/setLevel','params':{'level':3}}",
        "{'jsonrpc':'2.0','id':2,'method':'logging/setLevel','params':{}}",
        "{'jsonrpc':'2.0','id':2,'method':'logging/setLevel'}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(dispatch(s, with_peer(&p), bad[i], NULL), NX_MCP_ANSWERED);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                     -32602, "%s", bad[i]);
        cr_assert_eq(p.log_level, NX_MCP_LOG_ERROR, "a refused level changes nothing");
    }
    dispatch(s, with_peer(&p), bad[0], NULL);
    assert_json(json_object_get(last(), "error"),
                "{'code':-32602,'message':'params.level must be one of debug, info, notice, "
                "warning, error, critical, alert, emergency'}");
    nx_mcp_peer_dispose(&p);
    done_rich(s);
}

Test(mcp_server, logs_without_a_peer) {
    nx_mcp_server_t *s = make_rich_server();
    /* Legacy era without a session: nobody set a level, so everything goes. */
    dispatch(s, with_peer(NULL),
             "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'logs'}}", NULL);
    cr_assert_str_eq(sent_levels(0), "01234567");
    /* Stateless: the level comes from _meta, and without one the client wants no logs. */
    size_t mark = sent();
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'logs'," META_Q "}}",
             NULL);
    cr_assert_eq(sent(), mark, "no logLevel: no logs");
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':{'name':'logs','_meta':{"
             "'io.modelcontextprotocol/protocolVersion':'2026-07-28',"
             "'io.modelcontextprotocol/clientCapabilities':{},"
             "'io.modelcontextprotocol/logLevel':'notice'}}}",
             NULL);
    cr_assert_str_eq(sent_levels(mark), "234567");
    mark = sent();
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':4,'method':'tools/call','params':{'name':'logs','_meta':{"
             "'io.modelcontextprotocol/protocolVersion':'2026-07-28',"
             "'io.modelcontextprotocol/clientCapabilities':{},"
             "'io.modelcontextprotocol/logLevel':'debug'}}}",
             NULL);
    cr_assert_str_eq(sent_levels(mark), "01234567");
    mark = sent();
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':5,'method':'tools/call','params':{'name':'logs','_meta':{"
             "'io.modelcontextprotocol/protocolVersion':'2026-07-28',"
             "'io.modelcontextprotocol/clientCapabilities':{},"
             "'io.modelcontextprotocol/logLevel':'loud'}}}",
             NULL);
    cr_assert_eq(sent(), mark, "an unknown logLevel: no logs");
    done_rich(s);
}

/* ---- subscriptions and broadcasts ---- */

Test(mcp_server, resource_updated_tells_subscribed_peers_with_a_stream) {
    nx_mcp_server_t *s = make_rich_server();
    stream_rec_t ra = {.msgs = json_array()}, rb = {.msgs = json_array()};
    stream_rec_t rd = {.msgs = json_array(), .refuse = true};
    nx_mcp_peer_t a, b, c, d;
    init_peer(s, &a, push_rec, &ra, "{}");
    init_peer(s, &b, push_rec, &rb, "{}");
    init_peer(s, &c, NULL, NULL, "{}");
    init_peer(s, &d, push_rec, &rd, "{}");
    const char *sub = "{'jsonrpc':'2.0','id':1,'method':'resources/subscribe','params':"
                      "{'uri':'test://static'}}";
    nx_mcp_peer_t *subscribers[] = {&a, &c, &d};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(dispatch(s, with_peer(subscribers[i]), sub, NULL), NX_MCP_ANSWERED);
        assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{}}");
    }
    cr_assert_eq(nx_mcp_resource_updated("test://static"), 1,
                 "a: subscribed; b: not; c: no stream; d: its stream refused");
    cr_assert_eq(json_array_size(ra.msgs), 1);
    assert_json(json_array_get(ra.msgs, 0), "{'jsonrpc':'2.0','method':"
                                            "'notifications/resources/updated','params':"
                                            "{'uri':'test://static'}}");
    cr_assert_eq(json_array_size(rb.msgs), 0);
    cr_assert_eq(nx_mcp_resource_updated("test://slow"), 0);
    cr_assert_eq(json_array_size(ra.msgs), 1);
    dispatch(s, with_peer(&a),
             "{'jsonrpc':'2.0','id':2,'method':'resources/unsubscribe','params':"
             "{'uri':'test://static'}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'result':{}}");
    cr_assert_eq(nx_mcp_resource_updated("test://static"), 0);
    /* Subscriptions need a peer and a uri. */
    dispatch(s, with_peer(NULL), sub, NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32600);
    dispatch(s, with_peer(&b), "{'jsonrpc':'2.0','id':3,'method':'resources/subscribe'}", NULL);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(last(), "error"), "code")),
                 -32602);
    dispatch(s, with_peer(&b), sub, NULL);
    nx_mcp_peer_dispose(&b);
    cr_assert_eq(nx_mcp_resource_updated("test://static"), 0, "a forgotten peer is not told");
    nx_mcp_peer_dispose(&a);
    nx_mcp_peer_dispose(&c);
    nx_mcp_peer_dispose(&d);
    json_decref(ra.msgs);
    json_decref(rb.msgs);
    json_decref(rd.msgs);
    done_rich(s);
}

Test(mcp_server, broadcast_reaches_every_peer_with_a_stream) {
    nx_mcp_server_t *s = make_rich_server();
    stream_rec_t ra = {.msgs = json_array()}, rb = {.msgs = json_array()};
    stream_rec_t rd = {.msgs = json_array(), .refuse = true};
    nx_mcp_peer_t a, b, c, d;
    nx_mcp_peer_init(&a, push_rec, &ra); /* broadcasts do not wait for initialize */
    init_peer(s, &b, push_rec, &rb, "{}");
    init_peer(s, &c, NULL, NULL, "{}");
    init_peer(s, &d, push_rec, &rd, "{}");
    cr_assert_eq(nx_mcp_broadcast("notifications/tools/list_changed", NULL), 2);
    assert_json(json_array_get(ra.msgs, 0),
                "{'jsonrpc':'2.0','method':'notifications/tools/list_changed'}");
    assert_json(json_array_get(rb.msgs, 0),
                "{'jsonrpc':'2.0','method':'notifications/tools/list_changed'}");
    cr_assert_eq(nx_mcp_broadcast("notifications/x", json_pack("{s:i}", "n", 1)), 2);
    json_t *pa = json_object_get(json_array_get(ra.msgs, 1), "params");
    json_t *pb = json_object_get(json_array_get(rb.msgs, 1), "params");
    assert_json(pa, "{'n':1}");
    assert_json(pb, "{'n':1}");
    cr_assert_neq(pa, pb, "each peer gets its own copy of params");
    nx_mcp_peer_dispose(&b);
    cr_assert_eq(nx_mcp_broadcast("notifications/x", json_object()), 1);
    nx_mcp_peer_dispose(&a);
    cr_assert_eq(nx_mcp_broadcast("notifications/x", json_object()), 0);
    nx_mcp_peer_dispose(&c);
    nx_mcp_peer_dispose(&d);
    cr_assert_eq(json_array_size(ra.msgs), 3);
    cr_assert_eq(json_array_size(rb.msgs), 2);
    json_decref(ra.msgs);
    json_decref(rb.msgs);
    json_decref(rd.msgs);
    done_rich(s);
}

/* ---- the stateless 2026-07-28 era ---- */

Test(mcp_server, stateless_refuses_what_needs_a_session) {
    nx_mcp_server_t *s = make_rich_server();
    const char *methods[] = {"initialize", "ping", "logging/setLevel", "resources/subscribe",
                             "resources/unsubscribe"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        char req[512], want[256];
        snprintf(req, sizeof(req),
                 "{'jsonrpc':'2.0','id':1,'method':'%s','params':{'uri':'test://static',"
                 "'level':'debug','protocolVersion':'2025-06-18','capabilities':{},"
                 "'clientInfo':{}," META_Q "}}",
                 methods[i]);
        cr_assert_eq(dispatch(s, stateless_ctx(), req, NULL), NX_MCP_ANSWERED);
        snprintf(want, sizeof(want),
                 "{'jsonrpc':'2.0','id':1,'error':{'code':-32601,'message':"
                 "'Method not found: %s (in protocol 2026-07-28)'}}",
                 methods[i]);
        assert_json(last(), want);
    }
    /* server/discover belongs to the stateless era only. */
    dispatch(s, with_peer(NULL), "{'jsonrpc':'2.0','id':2,'method':'server/discover'}", NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'error':{'code':-32601,'message':"
                        "'Method not found: server/discover'}}");
    done_rich(s);
}

Test(mcp_server, stateless_lists_and_discover_carry_cache_hints) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_server_set_instructions(s, "Be nice");
    cr_assert_eq(
        dispatch(s, stateless_ctx(),
                 "{'jsonrpc':'2.0','id':1,'method':'server/discover','params':{" META_Q "}}", NULL),
        NX_MCP_ANSWERED);
    json_t *r = json_object_get(last(), "result");
    assert_json(json_object_get(r, "supportedVersions"), "['2026-07-28']");
    json_t *caps = json_object_get(r, "capabilities");
    const char *served[] = {"tools", "resources", "prompts", "completions"};
    for (size_t i = 0; i < 4; i++)
        assert_json(json_object_get(caps, served[i]), "{}");
    assert_json(json_object_get(r, "_meta"), "{'io.modelcontextprotocol/serverInfo':"
                                             "{'name':'nexus-test','version':'1.2.3'}}");
    cr_assert_str_eq(json_string_value(json_object_get(r, "instructions")), "Be nice");
    cr_assert_str_eq(json_string_value(json_object_get(r, "resultType")), "complete");
    assert_json(json_object_get(r, "ttlMs"), "60000");
    cr_assert_str_eq(json_string_value(json_object_get(r, "cacheScope")), "public");
    dispatch(s, stateless_ctx(), "{'jsonrpc':'2.0','id':2,'method':'resources/list'}", NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'result':{'resources':["
                        "{'uri':'test://static','name':'static','title':'Static',"
                        "'description':'A fixed text','mimeType':'text/plain'},"
                        "{'uri':'test://slow','name':'slow'},"
                        "{'uri':'test://cached','name':'cached'}],"
                        "'resultType':'complete','ttlMs':60000,'cacheScope':'public'}}");
    const char *lists[] = {"tools/list", "prompts/list", "resources/templates/list"};
    for (size_t i = 0; i < 3; i++) {
        char req[256];
        snprintf(req, sizeof(req), "{'jsonrpc':'2.0','id':3,'method':'%s','params':{" META_Q "}}",
                 lists[i]);
        dispatch(s, stateless_ctx(), req, NULL);
        r = json_object_get(last(), "result");
        cr_assert_not_null(r, "%s", lists[i]);
        cr_assert_str_eq(json_string_value(json_object_get(r, "resultType")), "complete");
        cr_assert(json_is_integer(json_object_get(r, "ttlMs")));
        cr_assert_eq(json_integer_value(json_object_get(r, "ttlMs")), 60000);
        cr_assert_str_eq(json_string_value(json_object_get(r, "cacheScope")), "public");
    }
    /* The legacy era gets none of it. */
    dispatch(s, with_peer(NULL), "{'jsonrpc':'2.0','id':4,'method':'prompts/list'}", NULL);
    r = json_object_get(last(), "result");
    cr_assert_null(json_object_get(r, "resultType"));
    cr_assert_null(json_object_get(r, "ttlMs"));
    cr_assert_null(json_object_get(r, "cacheScope"));
    done_rich(s);
}

Test(mcp_server, stateless_results_are_complete_sync_and_async) {
    nx_mcp_server_t *s = make_rich_server();
    cr_assert_eq(dispatch(s, stateless_ctx(),
                          "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'echo',"
                          "'arguments':{'message':'hi'}," META_Q "}}",
                          NULL),
                 NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{'content':[{'type':'text',"
                        "'text':'hi'}],'resultType':'complete'}}");
    nx_mcp_call_t *pending = NULL;
    cr_assert_eq(dispatch(s, stateless_ctx(),
                          "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'park',"
                          "" META_Q "}}",
                          &pending),
                 NX_MCP_PENDING);
    cr_assert(nx_mcp_call_is_stateless(pending));
    nx_mcp_call_return_text(pending, "later", false);
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'result':{'content':[{'type':'text',"
                        "'text':'later'}],'resultType':'complete'}}");
    /* A handler's own resultType stands. */
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':{'name':'input'," META_Q "}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':3,'result':{'resultType':'input_required',"
                        "'inputRequests':{'q':{'method':'elicitation/create','params':"
                        "{'message':'Name?'}}},'requestState':'st1'}}");
    /* Schema violations, prompts and completions are results too. */
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':4,'method':'tools/call','params':{'name':'echo',"
             "'arguments':{}," META_Q "}}",
             NULL);
    json_t *r = json_object_get(last(), "result");
    cr_assert(json_is_true(json_object_get(r, "isError")));
    cr_assert_str_eq(json_string_value(json_object_get(r, "resultType")), "complete");
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':5,'method':'prompts/get','params':{'name':'plain'," META_Q "}}",
             NULL);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(last(), "result"), "resultType")),
        "complete");
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':6,'method':'completion/complete','params':{'ref':{'type':"
             "'ref/prompt','name':'greet'},'argument':{'name':'name','value':''}," META_Q "}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':6,'result':{'completion':{'values':[],'total':0,"
                        "'hasMore':false},'resultType':'complete'}}");
    /* Calls get no caching hints, and errors no resultType. */
    cr_assert_null(
        json_object_get(json_object_get(json_array_get(g_replies, 0), "result"), "ttlMs"));
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':7,'method':'tools/call','params':{'name':'park'," META_Q "}}",
             &pending);
    nx_mcp_call_error(pending, -32603, "broke", NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':7,'error':{'code':-32603,'message':'broke'}}");
    /* The legacy era's results stay as the handler made them. */
    dispatch(s, with_peer(NULL),
             "{'jsonrpc':'2.0','id':8,'method':'tools/call','params':{'name':'echo',"
             "'arguments':{'message':'hi'}}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':8,'result':{'content':[{'type':'text',"
                        "'text':'hi'}]}}");
    done_rich(s);
}

Test(mcp_server, stateless_reads_are_private_and_uncached) {
    nx_mcp_server_t *s = make_rich_server();
    cr_assert_eq(dispatch(s, stateless_ctx(),
                          "{'jsonrpc':'2.0','id':1,'method':'resources/read','params':"
                          "{'uri':'test://static'," META_Q "}}",
                          NULL),
                 NX_MCP_ANSWERED);
    assert_json(last(), "{'jsonrpc':'2.0','id':1,'result':{'contents':[{'uri':'test://static',"
                        "'text':'static text'}],'resultType':'complete','ttlMs':0,"
                        "'cacheScope':'private'}}");
    nx_mcp_call_t *pending = NULL;
    cr_assert_eq(dispatch(s, stateless_ctx(),
                          "{'jsonrpc':'2.0','id':2,'method':'resources/read','params':"
                          "{'uri':'test://later/9'," META_Q "}}",
                          &pending),
                 NX_MCP_PENDING);
    nx_mcp_call_return(pending, json_pack("{s:[]}", "contents"));
    assert_json(last(), "{'jsonrpc':'2.0','id':2,'result':{'contents':[],'resultType':'complete',"
                        "'ttlMs':0,'cacheScope':'private'}}");
    /* A handler's own hints stand. */
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':3,'method':'resources/read','params':{'uri':'test://cached',"
             "" META_Q "}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':3,'result':{'contents':[],'ttlMs':5000,"
                        "'cacheScope':'public','resultType':'complete'}}");
    /* An unknown resource is invalid params (SEP-2164), still naming the URI. */
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':4,'method':'resources/read','params':{'uri':'test://nope',"
             "" META_Q "}}",
             NULL);
    assert_json(last(), "{'jsonrpc':'2.0','id':4,'error':{'code':-32602,'message':"
                        "'Resource not found: test://nope','data':{'uri':'test://nope'}}}");
    done_rich(s);
}

Test(mcp_server, stateless_client_capabilities_and_params_come_from_the_request) {
    nx_mcp_server_t *s = make_rich_server();
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'caps',"
             "'requestState':'st1','inputResponses':{'q':{'action':'accept'}},'_meta':{"
             "'io.modelcontextprotocol/protocolVersion':'2026-07-28',"
             "'io.modelcontextprotocol/clientCapabilities':{'elicitation':{'form':{}}}}}}",
             NULL);
    cr_assert(g_stateless);
    assert_json(g_caps, "{'elicitation':{'form':{}}}");
    assert_json(g_params, "{'name':'caps','requestState':'st1','inputResponses':{'q':"
                          "{'action':'accept'}},'_meta':{"
                          "'io.modelcontextprotocol/protocolVersion':'2026-07-28',"
                          "'io.modelcontextprotocol/clientCapabilities':"
                          "{'elicitation':{'form':{}}}}}");
    /* Capabilities the request does not declare are unknown: {}. */
    dispatch(s, stateless_ctx(),
             "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'caps','_meta':{"
             "'io.modelcontextprotocol/protocolVersion':'2026-07-28'}}}",
             NULL);
    assert_json(g_caps, "{}");
    done_rich(s);
}

/* ---- SEP-1699 polling ---- */

static void *g_closed_on;
static uint32_t g_retry_ms;

static void close_rec(void *transport, uint32_t retry_ms) {
    g_closed_on = transport;
    g_retry_ms = retry_ms;
}

Test(mcp_server, close_stream_reaches_the_transport_while_the_call_runs) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_request_ctx_t ctx = with_peer(NULL);
    ctx.close_stream = close_rec;
    const char *req = "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'park'}}";
    nx_mcp_call_t *pending = NULL;
    dispatch(s, ctx, req, &pending);
    nx_mcp_call_close_stream(pending, 1500);
    cr_assert_eq(g_closed_on, &g_tag);
    cr_assert_eq(g_retry_ms, 1500);
    nx_mcp_call_return_text(pending, "still answered", false);
    cr_assert_eq(replies(), 1, "the call goes on after its stream closed");
    /* A cancelled call's stream is not the transport's business any more. */
    g_closed_on = NULL;
    dispatch(s, ctx, req, &pending);
    nx_mcp_call_cancel(pending);
    nx_mcp_call_close_stream(pending, 10);
    cr_assert_null(g_closed_on);
    nx_mcp_call_return_text(pending, "dropped", false);
    /* Transports that cannot resume streams ignore it. */
    dispatch(s, with_peer(NULL), req, &pending);
    nx_mcp_call_close_stream(pending, 10);
    cr_assert_null(g_closed_on);
    nx_mcp_call_return_text(pending, "ok", false);
    cr_assert_eq(replies(), 2);
    done_rich(s);
}

/* ---- regressions: bugs found by review, each fixed in the core ---- */

/* A template value may contain the next literal's first character: "test://{a}.json" matches
 * "test://v1.2.json" with a = "v1.2" (matching backtracks). */
Test(mcp_server, template_value_may_contain_the_next_literal) {
    nx_mcp_server_t *s = make_rich_server();
    char err[256];
    nx_mcp_resource_def_t d = {
        .uri = "test://{a}.json", .is_template = true, .name = "dotted", .handler = park};
    cr_assert_eq(nx_mcp_server_add_resource(s, &d, err, sizeof(err)), 0, "%s", err);
    nx_mcp_call_t *pending = NULL;
    cr_assert_eq(dispatch(s, with_peer(NULL),
                          "{'jsonrpc':'2.0','id':1,'method':'resources/read','params':"
                          "{'uri':'test://v1.2.json'}}",
                          &pending),
                 NX_MCP_PENDING, "no template matched");
    assert_json(g_args, "{'uri':'test://v1.2.json','variables':{'a':'v1.2'}}");
    nx_mcp_call_return(pending, json_pack("{s:[]}", "contents"));
    done_rich(s);
}

/* A callback that asks again while its peer is being disposed fails at once, with nothing sent
 * to the departed client (and a callback that always retries cannot keep dispose going). */
static int g_retries;
static void retry_once(nx_mcp_call_t *call, const json_t *result, const json_t *error, void *arg) {
    on_answer(call, result, error, NULL);
    if (error != NULL && g_retries++ == 0)
        nx_mcp_call_request(call, "roots/list", NULL, retry_once, NULL);
}

Test(mcp_server, no_request_is_sent_from_a_dispose_callback) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{}");
    nx_mcp_call_t *pending = NULL;
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'park'}}", &pending);
    nx_mcp_call_request(pending, "roots/list", NULL, retry_once, NULL);
    cr_assert_eq(sent(), 1);
    nx_mcp_peer_dispose(&p);
    cr_assert_eq(g_answers, 2, "the request and its retry both failed");
    cr_assert_eq(sent(), 1, "nothing was sent to a client that is gone");
    nx_mcp_call_return_text(pending, "ok", false);
    done_rich(s);
}

/* A call whose peer is disposed keeps the client's log level: a client that asked for errors
 * only gets no debug lines on the request's own stream. */
Test(mcp_server, log_level_kept_when_the_peer_goes) {
    nx_mcp_server_t *s = make_rich_server();
    nx_mcp_peer_t p;
    init_peer(s, &p, NULL, NULL, "{}");
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':1,'method':'logging/setLevel','params':{'level':'error'}}",
             NULL);
    nx_mcp_call_t *pending = NULL;
    dispatch(s, with_peer(&p),
             "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'park'}}", &pending);
    nx_mcp_peer_dispose(&p);
    log_all(pending);
    cr_assert_str_eq(sent_levels(0), "4567", "the client asked for error and above");
    nx_mcp_call_return_text(pending, "ok", false);
    done_rich(s);
}

/* JSON has no NaN or infinity: such progress is dropped, never sent without params. */
static void nan_progress_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_progress(call, NAN, -1, NULL);
    nx_mcp_call_progress(call, INFINITY, -1, NULL);
    nx_mcp_call_return_text(call, "done", false);
}

Test(mcp_server, non_finite_progress_is_dropped) {
    nx_mcp_server_t *s = make_rich_server();
    char err[128];
    nx_mcp_tool_def_t d = {.name = "nan", .handler = nan_progress_tool};
    cr_assert_eq(nx_mcp_server_add_tool(s, &d, err, sizeof(err)), 0);
    dispatch(s, with_peer(NULL),
             "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'nan',"
             "'_meta':{'progressToken':1}}}",
             NULL);
    for (size_t i = 0; i < sent(); i++)
        cr_assert_not_null(
            json_object_get(json_object_get(json_array_get(g_sent, i), "params"), "progressToken"),
            "every progress notification names its token");
    done_rich(s);
}
