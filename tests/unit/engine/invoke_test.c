/* Tests for engine/invoke.c: in-process MCP requests through nx_mcp_server_dispatch. A tool that
 * answers inline calls <done> before nx_invoke returns (no handle); one that answers later gets
 * a handle and <done> runs once at its answer; cancelling runs the tool's cancel hook and <done>
 * never runs; progress (with a progressToken in _meta) and log messages reach the note
 * callback; errors, unknown tools and attempts come back as the header says.
 *
 * No shard is needed: the "held" tool keeps its call and the test answers it. */
#include <criterion/criterion.h>

#include "engine/invoke.c"

#include "nexus/mcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nx_mcp_server_t *server;

/* ---- tools ---- */

static struct {
    nx_mcp_call_t *held; /* the "held" tool's call, until answered or cancelled */
    int held_calls, cancel_hooks;
    bool hook; /* the held tool registers a cancel hook */
    json_t *held_args;
} T;

static void tool_echo(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return_json(call, json_deep_copy(args), false);
}

/* Reports progress and a log message, then answers, all inline. */
static void tool_chatty(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_progress(call, 1, 10, "one");
    nx_mcp_call_log(call, NX_MCP_LOG_INFO, "lg", json_string("hi"));
    nx_mcp_call_note_attempts(call, 3);
    nx_mcp_call_return_text(call, "done", false);
}

static void tool_rpc_error(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_error(call, -32050, "nope", json_pack("{s:i}", "n", 7));
}

static void on_held_cancel(nx_mcp_call_t *call, void *arg) {
    cr_assert_eq(call, T.held);
    T.cancel_hooks++;
    T.held = NULL;
}

static void tool_held(nx_mcp_call_t *call, json_t *args, void *data) {
    T.held_calls++;
    T.held = call;
    json_decref(T.held_args);
    T.held_args = json_deep_copy(args);
    if (T.hook) nx_mcp_call_on_cancel(call, on_held_cancel, NULL);
}

static void add_tool(const char *name, nx_mcp_handler_fn fn) {
    char err[256];
    nx_mcp_tool_def_t def = {.name = name, .handler = fn};
    cr_assert_eq(nx_mcp_server_add_tool(server, &def, err, sizeof(err)), 0, "%s", err);
}

static void setup(void) {
    memset(&T, 0, sizeof(T));
    T.hook = true;
    server = nx_mcp_server_new("test", "1.0");
    cr_assert_not_null(server);
    add_tool("echo", tool_echo);
    add_tool("chatty", tool_chatty);
    add_tool("rpc_error", tool_rpc_error);
    add_tool("held", tool_held);
}

static void teardown(void) {
    if (T.held != NULL) nx_mcp_call_return_text(T.held, "bye", false);
    json_decref(T.held_args);
    nx_mcp_server_free(server);
}

TestSuite(invoke, .init = setup, .fini = teardown, .timeout = 30);

/* ---- what the caller heard ---- */

typedef struct heard {
    int done;
    bool inside_invoke; /* nx_invoke has not returned yet */
    bool done_inline;
    json_t *result, *error;
    uint32_t attempts;
    json_t *notes; /* [[method, params], ...] */
} heard_t;

static void on_done(void *arg, const json_t *result, const json_t *error, uint32_t attempts) {
    heard_t *h = arg;
    h->done++;
    h->done_inline = h->inside_invoke;
    cr_assert((result == NULL) != (error == NULL), "exactly one of result and error");
    h->result = json_deep_copy(result);
    h->error = json_deep_copy(error);
    h->attempts = attempts;
}

static void on_note(void *arg, const char *method, const json_t *params) {
    heard_t *h = arg;
    json_array_append_new(h->notes, json_pack("[s, O]", method, params));
}

static void heard_dispose(heard_t *h) {
    json_decref(h->result);
    json_decref(h->error);
    json_decref(h->notes);
}

/* Calls tool <name> with <args> (JSON text; may be NULL) and <meta> (JSON text or NULL). */
static nx_invoke_t *call_tool(heard_t *h, const char *name, const char *args, const char *meta,
                              bool notes) {
    memset(h, 0, sizeof(*h));
    h->notes = json_array();
    json_t *params = json_pack("{s:s}", "name", name);
    if (args != NULL) json_object_set_new(params, "arguments", json_loads(args, 0, NULL));
    if (meta != NULL) json_object_set_new(params, "_meta", json_loads(meta, 0, NULL));
    nx_invoke_opts_t opts = {.note = notes ? on_note : NULL};
    nx_invoke_t *inv = (nx_invoke_t *)1;
    h->inside_invoke = true;
    int rc = nx_invoke(server, "tools/call", params, &opts, on_done, h, &inv);
    h->inside_invoke = false;
    json_decref(params);
    cr_assert_eq(rc, 0);
    cr_assert_eq(inv == NULL, h->done > 0, "a handle exactly when the answer is still to come");
    return inv;
}

static void expect_json(const json_t *v, const char *want) {
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(w, "bad expectation %s", want);
    char *got = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    cr_expect(json_equal(v, w), "got %s, want %s", got ? got : "(null)", want);
    free(got);
    json_decref(w);
}

/* ================= tests ================= */

Test(invoke, inline_answer_runs_done_before_returning) {
    heard_t h;
    nx_invoke_t *inv = call_tool(&h, "echo", "{\"a\": [1, 2]}", NULL, true);
    cr_expect_null(inv);
    cr_expect_eq(h.done, 1);
    cr_expect(h.done_inline);
    cr_expect_null(h.error);
    expect_json(json_object_get(h.result, "structuredContent"), "{\"a\": [1, 2]}");
    cr_expect_eq(h.attempts, 1, "1 when the provider does not say");
    heard_dispose(&h);
}

Test(invoke, later_answer_runs_done_once_at_the_answer) {
    heard_t h;
    nx_invoke_t *inv = call_tool(&h, "held", "{\"q\": \"x\"}", NULL, true);
    cr_assert_not_null(inv);
    cr_expect_eq(h.done, 0);
    cr_assert_not_null(T.held);
    expect_json(T.held_args, "{\"q\": \"x\"}");
    nx_mcp_call_note_attempts(T.held, 2);
    nx_mcp_call_t *c = T.held;
    T.held = NULL;
    nx_mcp_call_return_json(c, json_pack("{s:i}", "v", 5), false);
    cr_expect_eq(h.done, 1);
    cr_expect(!h.done_inline);
    expect_json(json_object_get(h.result, "structuredContent"), "{\"v\": 5}");
    cr_expect_eq(h.attempts, 2);
    cr_expect_eq(T.cancel_hooks, 0);
    heard_dispose(&h);
}

Test(invoke, cancel_runs_the_tools_hook_and_never_done) {
    heard_t h;
    nx_invoke_t *inv = call_tool(&h, "held", "{}", NULL, true);
    cr_assert_not_null(inv);
    nx_invoke_cancel(inv);
    cr_expect_eq(T.cancel_hooks, 1);
    cr_expect_null(T.held, "the call is gone once its hook ran");
    cr_expect_eq(h.done, 0);
    nx_invoke_cancel(NULL); /* NULL-safe */
    heard_dispose(&h);
}

Test(invoke, cancel_without_a_hook_drops_the_later_answer) {
    T.hook = false;
    heard_t h;
    nx_invoke_t *inv = call_tool(&h, "held", "{}", "{\"progressToken\": 9}", true);
    cr_assert_not_null(inv);
    nx_invoke_cancel(inv);
    cr_assert_not_null(T.held, "without a hook the call lives until the tool answers");
    nx_mcp_call_t *c = T.held;
    T.held = NULL;
    cr_expect(nx_mcp_call_cancelled(c));
    nx_mcp_call_progress(c, 1, -1, NULL); /* after the cancel: nobody hears it */
    nx_mcp_call_note_attempts(c, 4);      /* must not write into the freed request */
    nx_mcp_call_return_text(c, "late", false);
    cr_expect_eq(h.done, 0);
    cr_expect_eq(json_array_size(h.notes), 0);
    heard_dispose(&h);
}

Test(invoke, progress_and_log_notes_reach_the_caller) {
    heard_t h;
    nx_invoke_t *inv = call_tool(&h, "chatty", "{}", "{\"progressToken\": \"tok\"}", true);
    cr_expect_null(inv);
    cr_assert_eq(h.done, 1);
    cr_expect_eq(h.attempts, 3);
    expect_json(h.notes,
                "[[\"notifications/progress\", {\"progressToken\": \"tok\", \"progress\": 1,"
                " \"total\": 10, \"message\": \"one\"}],"
                " [\"notifications/message\", {\"level\": \"info\", \"logger\": \"lg\","
                " \"data\": \"hi\"}]]");
    heard_dispose(&h);

    /* Without a progressToken there is no progress to report; log messages still come. */
    call_tool(&h, "chatty", "{}", NULL, true);
    cr_assert_eq(h.done, 1);
    cr_expect_eq(json_array_size(h.notes), 1);
    cr_expect_str_eq(json_string_value(json_array_get(json_array_get(h.notes, 0), 0)),
                     "notifications/message");
    heard_dispose(&h);

    /* No note callback: they are dropped, the answer still comes. */
    call_tool(&h, "chatty", "{}", "{\"progressToken\": 1}", false);
    cr_expect_eq(h.done, 1);
    cr_expect_eq(json_array_size(h.notes), 0);
    heard_dispose(&h);
}

Test(invoke, progress_of_a_later_answer_comes_before_done) {
    heard_t h;
    nx_invoke_t *inv = call_tool(&h, "held", "{}", "{\"progressToken\": 42}", true);
    cr_assert_not_null(inv);
    nx_mcp_call_progress(T.held, 1, 2, NULL);
    nx_mcp_call_progress(T.held, 2, 2, "almost");
    cr_expect_eq(json_array_size(h.notes), 2);
    cr_expect_eq(h.done, 0);
    expect_json(json_array_get(json_array_get(h.notes, 1), 1),
                "{\"progressToken\": 42, \"progress\": 2, \"total\": 2, \"message\": \"almost\"}");
    nx_mcp_call_t *c = T.held;
    T.held = NULL;
    nx_mcp_call_return_text(c, "ok", false);
    cr_expect_eq(h.done, 1);
    expect_json(h.result, "{\"content\": [{\"type\": \"text\", \"text\": \"ok\"}]}");
    heard_dispose(&h);
}

Test(invoke, errors_come_back_as_error_objects) {
    heard_t h;
    call_tool(&h, "rpc_error", "{}", NULL, true);
    cr_assert_eq(h.done, 1);
    cr_expect_null(h.result);
    expect_json(h.error, "{\"code\": -32050, \"message\": \"nope\", \"data\": {\"n\": 7}}");
    heard_dispose(&h);

    call_tool(&h, "no_such_tool", "{}", NULL, true);
    cr_assert_eq(h.done, 1);
    cr_expect_eq(json_integer_value(json_object_get(h.error, "code")), NX_RPC_INVALID_PARAMS);
    cr_expect(strstr(json_string_value(json_object_get(h.error, "message")), "no_such_tool"));
    heard_dispose(&h);

    /* Arguments the schema rejects are the tool's isError result, not a protocol error. */
    char err[256];
    nx_mcp_tool_def_t def = {.name = "typed",
                             .input_schema = "{\"type\": \"object\", \"required\": [\"n\"]}",
                             .handler = tool_echo};
    cr_assert_eq(nx_mcp_server_add_tool(server, &def, err, sizeof(err)), 0, "%s", err);
    call_tool(&h, "typed", "{}", NULL, true);
    cr_assert_eq(h.done, 1);
    cr_expect(json_is_true(json_object_get(h.result, "isError")));
    heard_dispose(&h);
}

Test(invoke, other_methods_answer_too) {
    heard_t h;
    memset(&h, 0, sizeof(h));
    nx_invoke_t *inv = (nx_invoke_t *)1;
    int rc = nx_invoke(server, "tools/list", NULL, NULL, on_done, &h, &inv);
    cr_assert_eq(rc, 0);
    cr_expect_null(inv);
    cr_assert_eq(h.done, 1);
    json_t *tools = json_object_get(h.result, "tools");
    cr_expect_eq(json_array_size(tools), 4);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(tools, 0), "name")), "echo");
    heard_dispose(&h);

    memset(&h, 0, sizeof(h));
    rc = nx_invoke(server, "no/such/method", NULL, NULL, on_done, &h, &inv);
    cr_assert_eq(rc, 0);
    cr_expect_eq(h.done, 1);
    cr_expect_eq(json_integer_value(json_object_get(h.error, "code")), NX_RPC_METHOD_NOT_FOUND);
    heard_dispose(&h);
}

/* Many requests in flight at once each get their own answer. */
static nx_mcp_call_t *held_calls[3];
static int nheld;

static void tool_hold_many(nx_mcp_call_t *call, json_t *args, void *data) {
    held_calls[nheld++] = call;
}

Test(invoke, concurrent_requests_keep_their_own_answers) {
    add_tool("many", tool_hold_many);
    heard_t h[3];
    nx_invoke_t *inv[3];
    for (int i = 0; i < 3; i++) {
        char args[32];
        snprintf(args, sizeof(args), "{\"i\": %d}", i);
        inv[i] = call_tool(&h[i], "many", args, NULL, true);
        cr_assert_not_null(inv[i]);
    }
    cr_assert_eq(nheld, 3);
    /* answer in reverse order, with the argument each call got */
    for (int i = 2; i >= 0; i--) {
        json_t *a = json_object_get(nx_mcp_call_params(held_calls[i]), "arguments");
        nx_mcp_call_return_json(held_calls[i], json_deep_copy(a), false);
    }
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(h[i].done, 1);
        cr_expect_eq(json_integer_value(
                         json_object_get(json_object_get(h[i].result, "structuredContent"), "i")),
                     i);
        heard_dispose(&h[i]);
    }
}
