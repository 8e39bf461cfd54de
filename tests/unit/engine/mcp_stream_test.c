/* The message-stream transports' common part (WebSocket, stdio) over the server core: answers
 * and related messages on one stream, server-to-client requests answered through the same
 * stream, modern (2026-07-28) requests checked and served statelessly, notifications/cancelled
 * and the end of the stream. */
#include <criterion/criterion.h>

#include "mcp_stream.h"

#include <string.h>

static json_t *g_out; /* everything the stream sent, in order */

static void on_send(nx_mcp_stream_t *st, json_t *msg) {
    cr_assert_not_null(msg);
    json_array_append_new(g_out, msg);
}

/* Feeds one message written with ' for ". */
static void feed(nx_mcp_stream_t *st, const char *text_q) {
    char *t = strdup(text_q);
    for (char *p = t; *p; p++)
        if (*p == '\'') *p = '"';
    nx_mcp_stream_handle(st, t, strlen(t));
    free(t);
}

static json_t *out(size_t i) {
    return json_array_get(g_out, i);
}

static size_t outs(void) {
    return json_array_size(g_out);
}

static json_int_t error_code(const json_t *m) {
    return json_integer_value(json_object_get(json_object_get(m, "error"), "code"));
}

static int g_answers, g_cancelled;
static char g_error[128];

/* Answers the call with what the client said: a result's "v", or the error's message. */
static void on_answer(nx_mcp_call_t *call, const json_t *result, const json_t *error, void *arg) {
    g_answers++;
    g_error[0] = '\0';
    if (error != NULL)
        snprintf(g_error, sizeof(g_error), "%s",
                 json_string_value(json_object_get(error, "message")));
    if (arg == NULL) return;
    nx_mcp_call_return_text(call, error ? g_error : json_string_value(json_object_get(result, "v")),
                            error != NULL);
}

static void count_cancel(nx_mcp_call_t *call, void *arg) {
    g_cancelled++;
}

/* Logs a line, then asks the client; <answer> non-NULL: the callback answers the call. */
static void ask(nx_mcp_call_t *call, void *answer) {
    nx_mcp_call_log(call, NX_MCP_LOG_INFO, NULL, json_string("asking"));
    nx_mcp_call_request(call, "elicitation/create", json_pack("{s:s}", "message", "Name?"),
                        on_answer, answer);
}

/* Calls the callback will not answer, for the test to answer. */
static nx_mcp_call_t *g_kept[8];
static size_t g_nkept;

static void ask_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    if (data == NULL) g_kept[g_nkept++] = call;
    ask(call, data);
}

static void hooked_ask_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_on_cancel(call, count_cancel, NULL);
    ask(call, NULL);
}

static void log_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_log(call, NX_MCP_LOG_ERROR, NULL, json_string("oops"));
    nx_mcp_call_return_text(call, nx_mcp_call_is_stateless(call) ? "stateless" : "session", false);
}

static int k_answer;

static nx_mcp_server_t *make_server(nx_mcp_stream_t *st) {
    g_out = json_array();
    g_answers = g_cancelled = 0;
    g_nkept = 0;
    nx_mcp_server_t *s = nx_mcp_server_new("nexus-test", "1.2.3");
    char err[256];
    const nx_mcp_tool_def_t tools[] = {
        {.name = "ask", .handler = ask_tool, .data = &k_answer},
        {.name = "ask_keep", .handler = ask_tool},
        {.name = "ask_hooked", .handler = hooked_ask_tool},
        {.name = "log", .handler = log_tool},
    };
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
        cr_assert_eq(nx_mcp_server_add_tool(s, &tools[i], err, sizeof(err)), 0, "%s", err);
    nx_mcp_stream_init(st, s, on_send);
    return s;
}

static void initialize(nx_mcp_stream_t *st) {
    feed(st, "{'jsonrpc':'2.0','id':0,'method':'initialize','params':{'protocolVersion':"
             "'2025-06-18','capabilities':{'elicitation':{}},'clientInfo':{'name':'t'}}}");
    cr_assert_not_null(json_object_get(out(outs() - 1), "result"));
    json_array_clear(g_out);
}

static void done(nx_mcp_server_t *s) {
    nx_mcp_server_free(s);
    json_decref(g_out);
}

#define META_Q                                                                                     \
    "'_meta':{'io.modelcontextprotocol/protocolVersion':'2026-07-28',"                             \
    "'io.modelcontextprotocol/clientCapabilities':{}}"

Test(mcp_stream, server_request_round_trip_on_one_stream) {
    nx_mcp_stream_t st;
    nx_mcp_server_t *s = make_server(&st);
    initialize(&st);
    feed(&st, "{'jsonrpc':'2.0','id':7,'method':'tools/call','params':{'name':'ask'}}");
    cr_assert(nx_mcp_stream_busy(&st));
    cr_assert_eq(outs(), 2, "the log line and the request, no answer yet");
    cr_assert_str_eq(json_string_value(json_object_get(out(0), "method")), "notifications/message");
    cr_assert_str_eq(json_string_value(json_object_get(out(1), "method")), "elicitation/create");
    json_int_t id = json_integer_value(json_object_get(out(1), "id"));
    cr_assert_eq(id, 1);
    feed(&st, "{'jsonrpc':'2.0','id':1,'result':{'v':'Ada'}}");
    cr_assert_eq(g_answers, 1);
    cr_assert_eq(outs(), 3, "the response to our request gets no reply of its own");
    cr_assert_eq(json_integer_value(json_object_get(out(2), "id")), 7);
    cr_assert_str_eq(
        json_string_value(json_object_get(
            json_array_get(json_object_get(json_object_get(out(2), "result"), "content"), 0),
            "text")),
        "Ada");
    cr_assert_not(nx_mcp_stream_busy(&st));
    /* The client refuses the next one. */
    feed(&st, "{'jsonrpc':'2.0','id':8,'method':'tools/call','params':{'name':'ask'}}");
    feed(&st, "{'jsonrpc':'2.0','id':2,'error':{'code':-1,'message':'declined'}}");
    cr_assert_eq(g_answers, 2);
    cr_assert_str_eq(g_error, "declined");
    json_t *r = json_object_get(out(outs() - 1), "result");
    cr_assert(json_is_true(json_object_get(r, "isError")));
    nx_mcp_stream_dispose(&st);
    done(s);
}

Test(mcp_stream, modern_requests_are_checked_and_stateless) {
    nx_mcp_stream_t st;
    nx_mcp_server_t *s = make_server(&st);
    initialize(&st);
    feed(&st, "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'log','_meta':{"
              "'io.modelcontextprotocol/protocolVersion':'2099-01-01',"
              "'io.modelcontextprotocol/clientCapabilities':{}}}}");
    cr_assert_eq(outs(), 1);
    cr_assert_eq(error_code(out(0)), -32022);
    json_t *data = json_object_get(json_object_get(out(0), "error"), "data");
    cr_assert_str_eq(json_string_value(json_object_get(data, "requested")), "2099-01-01");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(data, "supported"), 0)),
                     "2026-07-28");
    feed(&st, "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'log','_meta':{"
              "'io.modelcontextprotocol/protocolVersion':'2026-07-28'}}}");
    cr_assert_eq(error_code(out(1)), -32602, "clientCapabilities missing");
    cr_assert_not(nx_mcp_stream_busy(&st), "a refused request leaves nothing behind");
    /* A valid one is served without the session: no logLevel in _meta, so no log line. */
    feed(&st, "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':{'name':'log'," META_Q "}}");
    cr_assert_eq(outs(), 3);
    json_t *r = json_object_get(out(2), "result");
    cr_assert_str_eq(json_string_value(json_object_get(r, "resultType")), "complete");
    cr_assert_str_eq(json_string_value(
                         json_object_get(json_array_get(json_object_get(r, "content"), 0), "text")),
                     "stateless");
    feed(&st, "{'jsonrpc':'2.0','id':4,'method':'ping','params':{" META_Q "}}");
    cr_assert_eq(error_code(out(3)), -32601, "ping needs a session");
    /* The legacy session is still there for legacy requests. */
    feed(&st, "{'jsonrpc':'2.0','id':5,'method':'tools/call','params':{'name':'log'}}");
    cr_assert_eq(outs(), 6, "the log line, then the answer");
    cr_assert_str_eq(json_string_value(json_object_get(out(4), "method")), "notifications/message");
    cr_assert_null(json_object_get(json_object_get(out(5), "result"), "resultType"));
    nx_mcp_stream_dispose(&st);
    done(s);
}

Test(mcp_stream, cancelled_call_drops_its_request_and_answer) {
    nx_mcp_stream_t st;
    nx_mcp_server_t *s = make_server(&st);
    initialize(&st);
    feed(&st, "{'jsonrpc':'2.0','id':'c1','method':'tools/call','params':{'name':'ask_hooked'}}");
    cr_assert_eq(outs(), 2);
    feed(&st, "{'jsonrpc':'2.0','method':'notifications/cancelled','params':{'requestId':'c1'}}");
    cr_assert_eq(g_cancelled, 1);
    cr_assert_not(nx_mcp_stream_busy(&st));
    feed(&st, "{'jsonrpc':'2.0','id':1,'result':{'v':'late'}}");
    cr_assert_eq(g_answers, 0, "nothing waits for the answer any more");
    cr_assert_eq(outs(), 2, "and nothing is sent for the cancelled request");
    /* Cancelling an unknown or finished request is harmless. */
    feed(&st, "{'jsonrpc':'2.0','method':'notifications/cancelled','params':{'requestId':'c1'}}");
    feed(&st, "{'jsonrpc':'2.0','method':'notifications/cancelled','params':{}}");
    cr_assert_eq(outs(), 2);
    nx_mcp_stream_dispose(&st);
    done(s);
}

Test(mcp_stream, dispose_fails_requests_still_awaiting_the_client) {
    nx_mcp_stream_t st;
    nx_mcp_server_t *s = make_server(&st);
    initialize(&st);
    feed(&st, "{'jsonrpc':'2.0','id':1,'method':'tools/call','params':{'name':'ask_keep'}}");
    feed(&st, "{'jsonrpc':'2.0','id':2,'method':'tools/call','params':{'name':'ask'}}");
    feed(&st, "{'jsonrpc':'2.0','id':3,'method':'tools/call','params':{'name':'ask_keep'}}");
    cr_assert_eq(outs(), 6, "three log lines and three requests");
    cr_assert_eq(g_nkept, 2);
    nx_mcp_stream_dispose(&st);
    cr_assert_eq(g_answers, 3, "every pending request failed");
    cr_assert(strstr(g_error, "went away"), "%s", g_error);
    cr_assert_eq(outs(), 6, "answers of cancelled calls are dropped");
    /* Calls without a cancel hook live until their handler answers. */
    for (size_t i = 0; i < g_nkept; i++) {
        cr_assert(nx_mcp_call_cancelled(g_kept[i]));
        nx_mcp_call_return_text(g_kept[i], "late", false);
    }
    cr_assert_eq(outs(), 6);
    done(s);
}
