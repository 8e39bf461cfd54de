/* Tests for engine/workflow_exec.c: the result of every step kind, skipped steps and the "last
 * step that ran" rule, parallel joins (all / any / quorum) with the losers cancelled and
 * max_concurrency, map concurrency, batches and order, fallback order, on_error, step timeouts,
 * the workflow deadline, cancellation and freeing from the hooks, a map of 20000 inline steps
 * (the pump keeps the stack flat), the events and the record, and the step cache (hit,
 * single-flight, stale-if-error, a cancelled leader), re-entrant callbacks (a cache completion
 * or a hook that cancels or frees).
 *
 * Definitions come from YAML through nx_config_load_string. Tools are native tools of a real
 * nx_mcp_server_t: "echo" and "raw" answer inline, "later" answers from a shard timer and counts
 * cancellations, "fail" fails (isError or a JSON-RPC error). Everything runs on this thread
 * against a hand-made shard whose clock is fake: net/uring.c is compiled in here so the test
 * owns the loop's cached time, and nx_loop_clock_ns is replaced, so timers, deadlines, cache
 * TTLs and recorded durations all follow the test's clock and nothing waits for real time. */
#include <criterion/criterion.h>

#include "tests/unit/fake_clock.h"

#include "engine/workflow_exec.c"

#include "config.h"
#include "nexus/mcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fake shard and its clock ---- */

static nx_shard_t shard;
static nx_engine_t engine;
static nx_engine_shard_t es;
static nx_config_t cfg;
static bool cfg_loaded;

/* The end of a loop turn: runs what waited for the turn's I/O to be submitted. */
static size_t end_turn(void) {
    size_t ran = 0;
    nx_list_t *n;
    while ((n = nx_list_pop_head(&shard.after_submit)) != NULL) {
        nx_later_t *l = nx_container_of(n, nx_later_t, link);
        l->fn(l);
        ran++;
    }
    return ran;
}

/* Fires every timer due at the current time, including those armed by the callbacks, and
 * ends the turn. */
static void settle(void) {
    for (int i = 0; i < 1000000; i++)
        if (nx_timer_wheel_advance(&shard.wheel, fake_ms) == 0 && end_turn() == 0) return;
    cr_assert_fail("timers keep firing at the same instant");
}

/* Moves the clock on by <ms>, one millisecond at a time, firing timers as they fall due. */
static void advance(uint64_t ms) {
    settle();
    for (uint64_t i = 0; i < ms; i++) {
        set_clock(fake_ms + 1);
        settle();
    }
}

/* ---- tools ---- */

/* What the tools saw. */
static struct {
    int echo_calls, raw_calls, later_calls, fail_calls;
    int later_cancels;
    int active, max_active; /* "later" calls in flight */
    char log[16384];        /* "start:a;end:a;echo:b;cancel:c;..." */
    const char *later_mode; /* when a call does not say: NULL/"ok", "iserror", "rpc" */
    uint64_t later_ms;      /* non-zero: every "later" call takes this long */
    json_int_t last_timeout_ms, last_depth; /* from the _meta of the last "later" call */
    nx_list_t pending;                      /* "later" calls not answered yet */
} T;

static void tool_log(const char *what, const json_t *args) {
    const char *tag = json_string_value(json_object_get(args, "tag"));
    char t[64];
    if (tag == NULL && json_is_integer(json_object_get(args, "tag"))) {
        snprintf(t, sizeof(t), "%lld", (long long)json_integer_value(json_object_get(args, "tag")));
        tag = t;
    }
    size_t n = strlen(T.log);
    snprintf(T.log + n, sizeof(T.log) - n, "%s:%s;", what, tag ? tag : "-");
}

static void tool_echo(nx_mcp_call_t *call, json_t *args, void *data) {
    T.echo_calls++;
    tool_log("echo", args);
    nx_mcp_call_return_json(call, json_deep_copy(args), false);
}

/* Answers with args.result as the CallToolResult itself. */
static void tool_raw(nx_mcp_call_t *call, json_t *args, void *data) {
    T.raw_calls++;
    json_t *r = json_object_get(args, "result");
    nx_mcp_call_return(call, r ? json_deep_copy(r) : json_object());
}

static void answer_by_mode(nx_mcp_call_t *call, const char *mode, const char *message,
                           json_t *value) {
    if (mode != NULL && strcmp(mode, "iserror") == 0) {
        json_decref(value);
        nx_mcp_call_return_text(call, message ? message : "it went wrong", true);
    } else if (mode != NULL && strcmp(mode, "rpc") == 0) {
        json_decref(value);
        nx_mcp_call_error(call, -32050, message ? message : "rpc failure",
                          json_pack("{s:s}", "why", "asked to"));
    } else {
        nx_mcp_call_return_json(call, value, false);
    }
}

/* {mode: iserror|rpc, message, tag} */
static void tool_fail(nx_mcp_call_t *call, json_t *args, void *data) {
    T.fail_calls++;
    tool_log("fail", args);
    const char *mode = json_string_value(json_object_get(args, "mode"));
    answer_by_mode(call, mode ? mode : "iserror",
                   json_string_value(json_object_get(args, "message")), NULL);
}

/* A "later" call: answered by its timer, or cancelled. */
typedef struct later {
    nx_mcp_call_t *call;
    nx_timer_t timer;
    json_t *args;
    json_int_t n; /* the number of this call among all "later" calls */
    nx_list_t link;
} later_t;

static void later_free(later_t *l) {
    nx_timer_stop(&l->timer);
    nx_list_remove(&l->link);
    json_decref(l->args);
    free(l);
    T.active--;
}

static void on_later_timer(nx_timer_t *t) {
    later_t *l = nx_container_of(t, later_t, timer);
    nx_mcp_call_t *call = l->call;
    tool_log("end", l->args);
    json_t *value = json_object_get(l->args, "value");
    value = value ? json_deep_copy(value) : json_pack("{s:I}", "n", l->n);
    const char *mode = json_string_value(json_object_get(l->args, "mode"));
    const char *message = json_string_value(json_object_get(l->args, "message"));
    char m[64];
    snprintf(m, sizeof(m), "%s", mode ? mode : T.later_mode ? T.later_mode : "ok");
    char msg[128];
    snprintf(msg, sizeof(msg), "%s", message ? message : "later failed");
    later_free(l);
    answer_by_mode(call, m, msg, value);
}

static void on_later_cancel(nx_mcp_call_t *call, void *arg) {
    later_t *l = arg;
    T.later_cancels++;
    tool_log("cancel", l->args);
    later_free(l);
}

/* {ms (default 10), value?, mode?, message?, tag?} */
static void tool_later(nx_mcp_call_t *call, json_t *args, void *data) {
    T.later_calls++;
    tool_log("start", args);
    json_t *meta = json_object_get(nx_mcp_call_params(call), "_meta");
    T.last_timeout_ms = json_integer_value(json_object_get(meta, NX_BACKENDS_META_TIMEOUT));
    T.last_depth = json_integer_value(json_object_get(meta, NX_EXEC_META_DEPTH));
    later_t *l = calloc(1, sizeof(*l));
    cr_assert_not_null(l);
    l->call = call;
    l->args = json_deep_copy(args);
    l->n = T.later_calls;
    nx_timer_init(&l->timer, on_later_timer);
    nx_list_insert_tail(&T.pending, &l->link);
    if (++T.active > T.max_active) T.max_active = T.active;
    json_t *ms = json_object_get(args, "ms");
    nx_mcp_call_on_cancel(call, on_later_cancel, l);
    nx_shard_timer_start(&shard, &l->timer,
                         T.later_ms ? T.later_ms
                         : ms       ? (uint64_t)json_integer_value(ms)
                                    : 10);
}

static void add_tool(const char *name, nx_mcp_handler_fn fn) {
    char err[256];
    nx_mcp_tool_def_t def = {.name = name, .handler = fn};
    cr_assert_eq(nx_mcp_server_add_tool(engine.mcp, &def, err, sizeof(err)), 0, "%s", err);
}

/* ---- executions and what their hooks heard ---- */

typedef struct run {
    nx_exec_t *x;
    json_t *events; /* [[type, data], ...] unless count_only */
    bool count_only;
    int nevents;
    int done;
    uint64_t done_at; /* fake ms */
    bool free_in_done;
    bool freed;
    int events_after_done;
} run_t;

#define MAX_RUNS 4
static run_t runs[MAX_RUNS];
static int nruns;

static void on_event(void *arg, nx_exec_t *x, const char *type, const json_t *data) {
    run_t *r = arg;
    cr_assert_eq(x, r->x, "the hook names its execution");
    r->nevents++;
    if (r->done) r->events_after_done++;
    if (!r->count_only) json_array_append_new(r->events, json_pack("[s, O]", type, data));
}

static void expect_written_record_is_the_record(const nx_exec_t *x);

static void on_done(void *arg, nx_exec_t *x) {
    run_t *r = arg;
    cr_assert_eq(x, r->x);
    r->done++;
    r->done_at = fake_ms;
    expect_written_record_is_the_record(x); /* ended: the record as REST answers it */
    if (r->free_in_done) {
        r->freed = true;
        nx_exec_free(x);
    }
}

static const nx_exec_hooks_t hooks = {.event = on_event, .done = on_done};

static void setup(void) {
    memset(&T, 0, sizeof(T));
    nx_list_init(&T.pending);
    memset(&fake_loop, 0, sizeof(fake_loop));
    memset(&shard, 0, sizeof(shard));
    memset(&engine, 0, sizeof(engine));
    memset(&es, 0, sizeof(es));
    memset(runs, 0, sizeof(runs));
    nruns = 0;
    set_clock(1000000);
    shard.loop = &fake_loop;
    nx_list_init(&shard.turn_end);
    nx_list_init(&shard.after_submit);
    nx_timer_wheel_init(&shard.wheel, fake_ms);
    engine.mcp = nx_mcp_server_new("test", "1.0");
    cr_assert_not_null(engine.mcp);
    add_tool("echo", tool_echo);
    add_tool("raw", tool_raw);
    add_tool("later", tool_later);
    add_tool("fail", tool_fail);
    es.engine = &engine;
    es.shard = &shard;
    cfg_loaded = false;
}

static void teardown(void) {
    for (int i = 0; i < nruns; i++) {
        if (!runs[i].freed) nx_exec_free(runs[i].x);
        json_decref(runs[i].events);
    }
    /* Nothing may be left waiting on a tool: every "later" call was answered or cancelled. */
    int left = 0;
    while (!nx_list_empty(&T.pending)) {
        later_t *l = nx_container_of(T.pending.next, later_t, link);
        nx_mcp_call_on_cancel(l->call, NULL, NULL);
        nx_mcp_call_cancel(l->call);
        later_free(l);
        left++;
    }
    nx_cache_free(es.cache);
    nx_mcp_server_free(engine.mcp);
    if (cfg_loaded) nx_config_dispose(&cfg);
    cr_expect_eq(left, 0, "%d tool calls were left pending", left);
}

TestSuite(workflow_exec, .init = setup, .fini = teardown, .timeout = 60);

/* Loads a configuration document and returns its workflow <name>. */
static const nx_workflow_t *load(const char *yaml, const char *name) {
    nx_config_error_t err;
    memset(&err, 0, sizeof(err));
    nx_config_defaults(&cfg);
    int rc = nx_config_load_string(&cfg, "test.yaml", yaml, strlen(yaml), &err);
    cr_assert_eq(rc, 0, "%s:%d: %s: %s", err.file, err.line, err.key, err.message);
    cfg_loaded = true;
    const nx_workflow_t *wf = nx_workflows_find(cfg.workflows, name);
    cr_assert_not_null(wf, "no workflow %s", name);
    return wf;
}

/* Expects the record as text (nx_exec_record_write, what REST answers and snapshots carry) to
 * be exactly the compact text of the record as JSON (nx_exec_record). */
static void expect_written_record_is_the_record(const nx_exec_t *x) {
    json_t *rec = nx_exec_record(x);
    char *want = nx_json_write(rec, 17, NULL);
    json_decref(rec);
    nx_buf_t got;
    nx_buf_init(&got);
    cr_assert_eq(nx_exec_record_write(x, &got), 0);
    nx_buf_append(&got, "", 1);
    cr_expect_str_eq(got.data, want, "written record\n%s\nwant\n%s", got.data, want);
    nx_buf_dispose(&got);
    free(want);
}

static run_t *start_json(const nx_workflow_t *wf, json_t *inputs) {
    cr_assert_lt(nruns, MAX_RUNS);
    run_t *r = &runs[nruns++];
    r->events = json_array();
    char id[16];
    snprintf(id, sizeof(id), "x%d", nruns);
    json_t *errors = NULL;
    int rc = nx_exec_start(&es, cfg.workflows, wf, id, inputs, 0, &hooks, r, &r->x, &errors);
    char *e = errors ? json_dumps(errors, JSON_COMPACT) : NULL;
    cr_assert_eq(rc, 0, "nx_exec_start: %d %s", rc, e ? e : "");
    free(e);
    json_decref(errors);
    cr_assert_eq(r->nevents, 0, "hooks never run inline in nx_exec_start");
    expect_written_record_is_the_record(r->x); /* every step pending */
    return r;
}

static run_t *start(const nx_workflow_t *wf, const char *inputs) {
    json_t *in = inputs ? json_loads(inputs, 0, NULL) : NULL;
    cr_assert(inputs == NULL || in != NULL, "bad inputs %s", inputs);
    run_t *r = start_json(wf, in);
    json_decref(in);
    return r;
}

/* Runs the clock until <r> is done (at most <max_ms>). */
static void run_until_done(run_t *r, uint64_t max_ms) {
    settle();
    for (uint64_t i = 0; i < max_ms && r->done == 0; i++)
        advance(1);
    cr_assert_eq(r->done, 1, "the execution did not end within %llu ms",
                 (unsigned long long)max_ms);
}

static char *dump(const json_t *v) {
    return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : strdup("(null)");
}

/* Expects <v> to equal the JSON text <want>. */
static void expect_json(const json_t *v, const char *want, const char *what) {
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(w, "bad expectation %s", want);
    char *got = dump(v);
    cr_expect(json_equal(v, w), "%s: got %s, want %s", what, got, want);
    free(got);
    json_decref(w);
}

static void expect_result(const run_t *r, const char *want) {
    const json_t *err = nx_exec_error(r->x);
    char *e = dump(err);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_SUCCEEDED, "status %s, error %s",
                 nx_exec_status_name(nx_exec_status(r->x)), e);
    free(e);
    expect_json(nx_exec_result(r->x), want, "result");
}

static const char *error_message(const run_t *r) {
    return json_string_value(json_object_get(nx_exec_error(r->x), "message"));
}

/* The record entry of step <id>. */
static json_t *record_step_of(json_t *rec, const char *id) {
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(rec, "steps"), i, s) {
        if (strcmp(json_string_value(json_object_get(s, "id")), id) == 0) return s;
    }
    cr_assert_fail("no step %s in the record", id);
    return NULL;
}

static const char *step_status(const run_t *r, const char *id) {
    static char buf[32];
    json_t *rec = nx_exec_record(r->x);
    snprintf(buf, sizeof(buf), "%s",
             json_string_value(json_object_get(record_step_of(rec, id), "status")));
    json_decref(rec);
    return buf;
}

static void expect_log(const char *want) {
    cr_expect_str_eq(T.log, want, "tool log %s, want %s", T.log, want);
}

/* A workflow entry, and the start of a document with one. */
#define NAME(name) "  - name: " name "\n"
#define WF(name) "workflows:\n" NAME(name)

/* ================= what each kind of step gives ================= */

Test(workflow_exec, call_result_is_structured_content_else_text_else_content) {
    const nx_workflow_t *wf = load(
        WF("w") "    steps:\n"
                "      - {id: sc, call: raw, with: {result: {structuredContent: {a: 1}, "
                "content: [{type: text, text: ignored}]}}}\n"
                "      - {id: js, call: raw, with: {result: {content: [{type: text, text: '[1, "
                "2]'}]}}}\n"
                "      - {id: tx, call: raw, with: {result: {content: [{type: text, text: "
                "hello}]}}}\n"
                "      - {id: two, call: raw, with: {result: {content: [{type: text, text: a}, "
                "{type: text, text: b}]}}}\n"
                "      - {id: img, call: raw, with: {result: {content: [{type: image, data: AA, "
                "mimeType: image/png}]}}}\n"
                "      - {id: none, call: raw, with: {result: {}}}\n"
                "    output:\n"
                "      sc: ${{ steps.sc.result }}\n"
                "      js: ${{ steps.js.result }}\n"
                "      tx: ${{ steps.tx.result }}\n"
                "      two: ${{ steps.two.result }}\n"
                "      img: ${{ steps.img.result }}\n"
                "      none: ${{ steps.none.result }}\n"
                "      meta: ['${{ steps.sc.status }}', '${{ steps.sc.attempts }}', "
                "'${{ steps.sc.cached }}', '${{ steps.sc.error }}']\n",
        "w");
    run_t *r = start(wf, NULL);
    run_until_done(r, 10);
    expect_result(r, "{\"sc\": {\"a\": 1}, \"js\": [1, 2], \"tx\": \"hello\", \"two\": \"a\\nb\","
                     " \"img\": [{\"type\": \"image\", \"data\": \"AA\", \"mimeType\": "
                     "\"image/png\"}], \"none\": null,"
                     " \"meta\": [\"succeeded\", 1, false, null]}");
    cr_expect_eq(T.raw_calls, 6);
}

Test(workflow_exec, rest_step_without_backends_fails_cleanly) {
    const nx_workflow_t *wf =
        load("servers:\n"
             "  - {name: billing, transport: rest, url: 'http://127.0.0.1:9/api'}\n" WF(
                 "w") "    steps:\n"
                      "      - {id: bill, call: billing, method: post, path: /x, with: {a: 1}}\n",
             "w");
    run_t *r = start(wf, NULL);
    run_until_done(r, 10);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
    cr_expect_str_eq(error_message(r), "no rest backend billing");
    cr_expect_str_eq(json_string_value(json_object_get(nx_exec_error(r->x), "step")), "bill");
    cr_expect_str_eq(step_status(r, "bill"), "failed");
}

Test(workflow_exec, group_and_default_output_is_the_last_step_that_ran) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n"
                     "      - {id: a, call: echo, with: {v: 1}}\n"
                     "      - {id: b, call: echo, with: {v: 2}, if: input.go}\n"
                     "      - id: g\n"
                     "        steps:\n"
                     "          - {id: g1, call: echo, with: {v: 3}}\n"
                     "          - {id: g2, call: echo, with: {v: 4}, if: input.go}\n"
                     "      - {id: c, call: echo, with: {v: 5}, if: \"input.go && steps.a.result.v "
                     "== 1\"}\n",
             "w");
    /* go: false: b, g2 and c are skipped; the group's result is g1's, and the workflow's is the
     * group's (skipped steps do not count, at any depth). */
    run_t *r = start(wf, "{\"go\": false}");
    run_until_done(r, 10);
    expect_result(r, "{\"v\": 3}");
    cr_expect_eq(T.echo_calls, 2);
    json_t *rec = nx_exec_record(r->x);
    expect_json(record_step_of(rec, "b"),
                "{\"id\": \"b\", \"kind\": \"call\", \"status\": \"skipped\", \"attempts\": 0, "
                "\"cached\": false, \"duration_ms\": 0, \"runs\": 1}",
                "record of b");
    cr_expect_str_eq(json_string_value(json_object_get(record_step_of(rec, "g2"), "status")),
                     "skipped");
    cr_expect_str_eq(json_string_value(json_object_get(record_step_of(rec, "c"), "status")),
                     "skipped");
    cr_expect_str_eq(json_string_value(json_object_get(record_step_of(rec, "g"), "status")),
                     "succeeded");
    json_decref(rec);

    /* go: true: everything runs and the last step gives the result. */
    run_t *r2 = start(wf, "{\"go\": true}");
    run_until_done(r2, 10);
    expect_result(r2, "{\"v\": 5}");
    cr_expect_eq(T.echo_calls, 2 + 5);
}

Test(workflow_exec, switch_runs_the_first_case_that_holds) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n"
                     "      - id: sw\n"
                     "        switch:\n"
                     "          - if: input.n == 1\n"
                     "            steps: [{id: one, call: echo, with: {c: 1}}]\n"
                     "          - elif: input.n >= 2\n"
                     "            steps: [{id: two, call: echo, with: {c: 2}},"
                     " {id: two_b, call: echo, with: {c: 22}}]\n"
                     "          - elif: input.n >= 3\n"
                     "            steps: [{id: three, call: echo, with: {c: 3}}]\n"
                     "          - else: [{id: other, call: echo, with: {c: 0}}]\n" NAME(
                         "nocase") "    steps:\n"
                                   "      - {id: first, call: echo, with: {c: 9}}\n"
                                   "      - id: sw\n"
                                   "        switch:\n"
                                   "          - if: input.n == 1\n"
                                   "            steps: [{id: one, call: echo, with: {c: 1}}]\n",
             "w");
    run_t *r = start(wf, "{\"n\": 3}"); /* both elifs hold: the first one wins */
    run_until_done(r, 10);
    expect_result(r, "{\"c\": 22}");
    cr_expect_str_eq(step_status(r, "one"), "pending");
    cr_expect_str_eq(step_status(r, "two"), "succeeded");
    cr_expect_str_eq(step_status(r, "three"), "pending");
    cr_expect_str_eq(step_status(r, "other"), "pending");

    run_t *r3 = start(wf, "{\"n\": 0}");
    run_until_done(r3, 10);
    expect_result(r3, "{\"c\": 0}");

    /* No case holds and no else: the switch is skipped and does not count as the last step. */
    const nx_workflow_t *nocase = nx_workflows_find(cfg.workflows, "nocase");
    run_t *r4 = start(nocase, "{\"n\": 5}");
    run_until_done(r4, 10);
    expect_result(r4, "{\"c\": 9}");
    cr_expect_str_eq(step_status(r4, "sw"), "skipped");
}

/* ================= parallel ================= */

Test(workflow_exec, parallel_all_gives_every_branch_result_by_id) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: p\n"
                                           "        parallel:\n"
                                           "          - {id: a, call: later, with: {ms: 30, "
                                           "value: {x: a}, tag: a}}\n"
                                           "          - {id: b, call: echo, with: {y: b}}\n"
                                           "          - id: c\n"
                                           "            steps: [{id: c1, call: later, with: {ms: "
                                           "10, value: {z: 1}, tag: c1}}]\n",
                                   "w");
    uint64_t t0 = fake_ms;
    run_t *r = start(wf, NULL);
    run_until_done(r, 100);
    expect_result(r, "{\"a\": {\"x\": \"a\"}, \"b\": {\"y\": \"b\"}, \"c\": {\"z\": 1}}");
    cr_expect_eq(r->done_at - t0, 30, "all branches run at once: done after the slowest (%llu)",
                 (unsigned long long)(r->done_at - t0));
    cr_expect_eq(T.max_active, 2);
    cr_expect_eq(T.later_cancels, 0);
}

Test(workflow_exec, parallel_any_takes_the_first_success_and_cancels_the_rest) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: p\n"
                                           "        join: any\n"
                                           "        parallel:\n"
                                           "          - {id: a, call: later, with: {ms: 50, "
                                           "value: {w: a}, tag: a}}\n"
                                           "          - {id: f, call: later, with: {ms: 5, "
                                           "mode: iserror, tag: f}}\n"
                                           "          - {id: b, call: later, with: {ms: 10, "
                                           "value: {w: b}, tag: b}}\n"
                                           "          - {id: c, call: later, with: {ms: 100, "
                                           "value: {w: c}, tag: c}}\n",
                                   "w");
    uint64_t t0 = fake_ms;
    run_t *r = start(wf, NULL);
    run_until_done(r, 200);
    expect_result(r, "{\"w\": \"b\"}");
    cr_expect_eq(r->done_at - t0, 10);
    cr_expect_eq(T.later_cancels, 2, "the losers hear of it (%d cancels)", T.later_cancels);
    cr_expect(strstr(T.log, "cancel:a;") && strstr(T.log, "cancel:c;"), "log %s", T.log);
    cr_expect_str_eq(step_status(r, "a"), "cancelled");
    cr_expect_str_eq(step_status(r, "c"), "cancelled");
    cr_expect_str_eq(step_status(r, "f"), "failed");
    cr_expect_str_eq(step_status(r, "b"), "succeeded");
    advance(200); /* the cancelled calls never answer, nothing more happens */
    cr_expect_eq(r->done, 1);
    cr_expect_null(strstr(T.log, "end:a;"), "log %s", T.log);
    cr_expect_eq(r->events_after_done, 0);
}

Test(workflow_exec, parallel_quorum_takes_the_first_n_successes) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: p\n"
                                           "        join: {quorum: 2}\n"
                                           "        parallel:\n"
                                           "          - {id: a, call: later, with: {ms: 10, "
                                           "value: 1, tag: a}}\n"
                                           "          - {id: b, call: later, with: {ms: 20, "
                                           "value: 2, tag: b}}\n"
                                           "          - {id: c, call: later, with: {ms: 100, "
                                           "value: 3, tag: c}}\n",
                                   "w");
    uint64_t t0 = fake_ms;
    run_t *r = start(wf, NULL);
    run_until_done(r, 200);
    expect_result(r, "{\"a\": 1, \"b\": 2}");
    cr_expect_eq(r->done_at - t0, 20);
    cr_expect_eq(T.later_cancels, 1);
    cr_expect_str_eq(step_status(r, "c"), "cancelled");
}

Test(workflow_exec, parallel_quorum_that_can_no_longer_be_met_fails_at_once) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: p\n"
                                           "        join: {quorum: 2}\n"
                                           "        parallel:\n"
                                           "          - {id: a, call: later, with: {ms: 10, "
                                           "mode: iserror, message: first, tag: a}}\n"
                                           "          - {id: b, call: later, with: {ms: 20, "
                                           "mode: rpc, message: second, tag: b}}\n"
                                           "          - {id: c, call: later, with: {ms: 100, "
                                           "tag: c}}\n",
                                   "w");
    uint64_t t0 = fake_ms;
    run_t *r = start(wf, NULL);
    run_until_done(r, 200);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
    cr_expect_eq(r->done_at - t0, 20, "decided when the second branch failed");
    cr_expect_str_eq(error_message(r), "step p: only 0 of the 2 branches needed succeeded");
    json_t *cause = json_object_get(nx_exec_error(r->x), "cause");
    cr_expect_str_eq(json_string_value(json_object_get(cause, "message")), "first");
    cr_expect_eq(T.later_cancels, 1);
    cr_expect_str_eq(step_status(r, "c"), "cancelled");
}

Test(workflow_exec, parallel_all_fails_with_the_first_failed_branch_and_cancels_the_rest) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: p\n"
                                           "        parallel:\n"
                                           "          - {id: a, call: later, with: {ms: 100, "
                                           "tag: a}}\n"
                                           "          - {id: b, call: fail, with: {mode: rpc, "
                                           "message: nope, tag: b}}\n"
                                           "      - {id: after, call: echo}\n",
                                   "w");
    run_t *r = start(wf, NULL);
    run_until_done(r, 200);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
    cr_expect_str_eq(error_message(r), "branch of step p failed");
    json_t *cause = json_object_get(nx_exec_error(r->x), "cause");
    cr_expect_str_eq(json_string_value(json_object_get(cause, "message")), "nope");
    cr_expect_eq(json_integer_value(json_object_get(cause, "code")), -32050);
    cr_expect_eq(T.later_cancels, 1);
    cr_expect_eq(T.echo_calls, 0, "nothing after a failed step runs");
    cr_expect_str_eq(step_status(r, "after"), "pending");
}

Test(workflow_exec, parallel_max_concurrency_starts_branches_in_order_as_others_end) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n"
                     "      - id: p\n"
                     "        max_concurrency: 2\n"
                     "        parallel:\n"
                     "          - {id: a, call: later, with: {ms: 30, "
                     "tag: a}}\n"
                     "          - {id: b, call: later, with: {ms: 10, "
                     "tag: b}}\n"
                     "          - {id: c, call: later, with: {ms: 10, "
                     "tag: c}}\n"
                     "          - {id: d, call: later, with: {ms: 5, "
                     "tag: d}}\n" NAME("one") "    steps:\n"
                                              "      - id: p\n"
                                              "        max_concurrency: 1\n"
                                              "        parallel:\n"
                                              "          - {id: a, call: later, with: {ms: 30, "
                                              "tag: a}}\n"
                                              "          - {id: b, call: later, with: {ms: 10, "
                                              "tag: b}}\n"
                                              "          - {id: c, call: later, with: {ms: 10, "
                                              "tag: c}}\n",
             "w");
    uint64_t t0 = fake_ms;
    run_t *r = start(wf, NULL);
    run_until_done(r, 200);
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_SUCCEEDED);
    expect_log("start:a;start:b;end:b;start:c;end:c;start:d;end:d;end:a;");
    cr_expect_eq(T.max_active, 2);
    cr_expect_eq(r->done_at - t0, 30);

    T.log[0] = '\0';
    T.max_active = 0;
    t0 = fake_ms;
    run_t *r2 = start(nx_workflows_find(cfg.workflows, "one"), NULL);
    run_until_done(r2, 200);
    expect_log("start:a;end:a;start:b;end:b;start:c;end:c;");
    cr_expect_eq(T.max_active, 1);
    cr_expect_eq(r2->done_at - t0, 50);
    json_t *res = (json_t *)nx_exec_result(r2->x);
    cr_expect_eq(json_object_size(res), 3);
}

/* ================= map ================= */

Test(workflow_exec, map_keeps_results_in_order_when_iterations_end_out_of_order) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n"
                     "      - id: m\n"
                     "        map:\n"
                     "          items: ${{ input.items }}\n"
                     "          concurrency: 3\n"
                     "          steps:\n"
                     "            - {id: it, call: later, with: {ms: '${{ item.ms }}', "
                     "value: {v: '${{ item.v }}', i: '${{ index }}'}, tag: '${{ item.v }}'}}\n",
             "w");
    uint64_t t0 = fake_ms;
    run_t *r = start(wf, "{\"items\": [{\"ms\": 40, \"v\": \"a\"}, {\"ms\": 10, \"v\": \"b\"},"
                         " {\"ms\": 20, \"v\": \"c\"}, {\"ms\": 5, \"v\": \"d\"},"
                         " {\"ms\": 3, \"v\": \"e\"}]}");
    run_until_done(r, 200);
    expect_result(r,
                  "[{\"v\": \"a\", \"i\": 0}, {\"v\": \"b\", \"i\": 1}, {\"v\": \"c\", \"i\": 2},"
                  " {\"v\": \"d\", \"i\": 3}, {\"v\": \"e\", \"i\": 4}]");
    /* b ends at 10 and d takes its place, d at 15 and e starts, e at 18, c at 20, a at 40. */
    expect_log("start:a;start:b;start:c;end:b;start:d;end:d;start:e;end:e;end:c;end:a;");
    cr_expect_eq(T.max_active, 3);
    cr_expect_eq(r->done_at - t0, 40);
    json_t *rec = nx_exec_record(r->x);
    cr_expect_eq(json_integer_value(json_object_get(record_step_of(rec, "it"), "runs")), 5);
    json_decref(rec);
}

Test(workflow_exec, map_default_concurrency_is_one) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: m\n"
                                           "        map:\n"
                                           "          items: ${{ input.items }}\n"
                                           "          steps:\n"
                                           "            - {id: it, call: later, with: {ms: 5, "
                                           "tag: '${{ item }}'}}\n",
                                   "w");
    run_t *r = start(wf, "{\"items\": [1, 2, 3]}");
    run_until_done(r, 100);
    expect_log("start:1;end:1;start:2;end:2;start:3;end:3;");
    cr_expect_eq(T.max_active, 1);
}

Test(workflow_exec, map_batch_size_hands_each_iteration_a_batch) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: m\n"
                                           "        map:\n"
                                           "          items: ${{ input.items }}\n"
                                           "          batch_size: 2\n"
                                           "          concurrency: 2\n"
                                           "          steps:\n"
                                           "            - {id: it, call: echo, with: {b: '${{ "
                                           "item }}', i: '${{ index }}'}}\n",
                                   "w");
    run_t *r = start(wf, "{\"items\": [1, 2, 3, 4, 5]}");
    run_until_done(r, 10);
    expect_result(r,
                  "[{\"b\": [1, 2], \"i\": 0}, {\"b\": [3, 4], \"i\": 1}, {\"b\": [5], \"i\": 2}]");
    cr_expect_eq(T.echo_calls, 3);
}

Test(workflow_exec, map_of_nothing_and_of_a_non_array) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: m\n"
                                           "        map:\n"
                                           "          items: ${{ input.items }}\n"
                                           "          steps: [{id: it, call: echo}]\n",
                                   "w");
    run_t *r = start(wf, "{\"items\": []}");
    run_until_done(r, 10);
    expect_result(r, "[]");
    run_t *r2 = start(wf, "{\"items\": {\"a\": 1}}");
    run_until_done(r2, 10);
    cr_assert_eq(nx_exec_status(r2->x), NX_EXEC_FAILED);
    cr_expect_str_eq(error_message(r2), "step m: items must be an array");
    cr_expect_eq(T.echo_calls, 0);
}

Test(workflow_exec, map_fails_with_its_first_failed_iteration) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: m\n"
                                           "        map:\n"
                                           "          items: ${{ input.items }}\n"
                                           "          concurrency: 2\n"
                                           "          steps:\n"
                                           "            - {id: it, call: later, with: {ms: '${{ "
                                           "item.ms }}', mode: '${{ item.mode }}', "
                                           "message: '${{ item.m }}', tag: '${{ index }}'}}\n",
                                   "w");
    run_t *r = start(wf, "{\"items\": [{\"ms\": 50}, {\"ms\": 10, \"mode\": \"rpc\", \"m\": "
                         "\"broke\"}, {\"ms\": 5}]}");
    run_until_done(r, 200);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
    cr_expect_str_eq(error_message(r), "step m: iteration 1 failed");
    json_t *cause = json_object_get(nx_exec_error(r->x), "cause");
    cr_expect_str_eq(json_string_value(json_object_get(cause, "message")), "broke");
    expect_log("start:0;start:1;end:1;cancel:0;");
    cr_expect_eq(T.later_cancels, 1);
}

/* With every step answering inline, 20000 iterations one after another must not deepen the
 * stack: the pump delivers outcomes in a loop. A recursive delivery overflows the stack here. */
Test(workflow_exec, map_of_20000_inline_iterations_keeps_the_stack_flat) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: m\n"
                                           "        map:\n"
                                           "          items: ${{ input.items }}\n"
                                           "          steps:\n"
                                           "            - {id: e, call: echo, with: {v: '${{ "
                                           "item }}'}}\n",
                                   "w");
    enum { N = 20000 };
    json_t *items = json_array();
    for (int i = 0; i < N; i++)
        json_array_append_new(items, json_integer(i));
    json_t *in = json_pack("{s:o}", "items", items);
    cr_assert_lt(nruns, MAX_RUNS);
    runs[nruns].count_only = true;
    run_t *r = start_json(wf, in);
    json_decref(in);
    run_until_done(r, 10);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_SUCCEEDED);
    const json_t *res = nx_exec_result(r->x);
    cr_assert_eq(json_array_size(res), N);
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(res, N - 1), "v")), N - 1);
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(res, 12345), "v")), 12345);
    cr_expect_eq(T.echo_calls, N);
    /* started + N x (step.started, step.finished) for e + the map's own two + finished */
    cr_expect_eq(r->nevents, 1 + 2 * N + 2 + 1);
}

/* ================= fallback, on_error ================= */

Test(workflow_exec, fallback_tries_alternatives_in_order_until_one_succeeds) {
    const nx_workflow_t *wf = load(
        WF("w") "    steps:\n"
                "      - id: fb\n"
                "        fallback:\n"
                "          - {id: f1, call: fail, with: {mode: iserror, message: one, tag: "
                "f1}}\n"
                "          - {id: f2, call: later, with: {ms: 10, mode: rpc, message: two, "
                "tag: f2}}\n"
                "          - {id: f3, call: echo, with: {ok: 3, tag: f3}}\n"
                "          - {id: f4, call: echo, with: {ok: 4, tag: f4}}\n"
                "      - {id: next, call: echo, with: {via: '${{ steps.f3.result.ok }}', "
                "tag: next}}\n" NAME(
                    "none") "    steps:\n"
                            "      - id: fb\n"
                            "        fallback:\n"
                            "          - {id: f1, call: fail, with: {mode: iserror, message: "
                            "one}}\n"
                            "          - {id: f2, call: fail, with: {mode: rpc, message: two}}\n",
        "w");
    run_t *r = start(wf, NULL);
    run_until_done(r, 100);
    expect_result(r, "{\"via\": 3, \"tag\": \"next\"}");
    expect_log("fail:f1;start:f2;end:f2;echo:f3;echo:next;");
    cr_expect_str_eq(step_status(r, "f1"), "failed");
    cr_expect_str_eq(step_status(r, "f2"), "failed");
    cr_expect_str_eq(step_status(r, "f3"), "succeeded");
    cr_expect_str_eq(step_status(r, "f4"), "pending");
    cr_expect_str_eq(step_status(r, "fb"), "succeeded");

    run_t *r2 = start(nx_workflows_find(cfg.workflows, "none"), NULL);
    run_until_done(r2, 100);
    cr_assert_eq(nx_exec_status(r2->x), NX_EXEC_FAILED);
    cr_expect_str_eq(error_message(r2), "every alternative of step fb failed");
    json_t *last = json_object_get(nx_exec_error(r2->x), "last_error");
    cr_expect_str_eq(json_string_value(json_object_get(last, "message")), "two");
    cr_expect_eq(json_integer_value(json_object_get(last, "code")), -32050);
    expect_json(json_object_get(last, "data"), "{\"why\": \"asked to\"}", "data");
}

Test(workflow_exec, on_error_continue_and_value) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n"
                     "      - {id: a, call: fail, with: {mode: rpc, message: boom}, on_error: "
                     "continue}\n"
                     "      - {id: b, call: echo, with: {st: '${{ steps.a.status }}', msg: '${{ "
                     "steps.a.error.message }}', res: '${{ steps.a.result }}'}}\n"
                     "      - {id: c, call: fail, with: {mode: iserror, message: bad}, on_error: "
                     "{value: {fallback: true, why: '${{ steps.a.error.message }}'}}}\n"
                     "    output: {b: '${{ steps.b.result }}', c: '${{ steps.c.result }}', "
                     "cs: '${{ steps.c.status }}'}\n" NAME(
                         "tail") "    steps:\n"
                                 "      - {id: a, call: echo, with: {v: 1}}\n"
                                 "      - {id: z, call: fail, with: {mode: iserror}, on_error: "
                                 "continue}\n",
             "w");
    run_t *r = start(wf, NULL);
    run_until_done(r, 10);
    expect_result(r, "{\"b\": {\"st\": \"failed\", \"msg\": \"boom\", \"res\": null},"
                     " \"c\": {\"fallback\": true, \"why\": \"boom\"}, \"cs\": \"succeeded\"}");
    json_t *rec = nx_exec_record(r->x);
    json_t *a = record_step_of(rec, "a");
    cr_expect_str_eq(json_string_value(json_object_get(a, "status")), "failed");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(a, "error"), "message")),
                     "boom");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(a, "error"), "code")), -32050);
    cr_expect_str_eq(json_string_value(json_object_get(record_step_of(rec, "c"), "status")),
                     "succeeded");
    json_decref(rec);

    /* A continued failure as the last step: the workflow goes on with null. */
    run_t *r2 = start(nx_workflows_find(cfg.workflows, "tail"), NULL);
    run_until_done(r2, 10);
    expect_result(r2, "null");
}

/* ================= time ================= */

Test(workflow_exec, step_timeout_fails_the_step_and_cancels_its_call) {
    const nx_workflow_t *wf = load(
        WF("w") "    steps:\n"
                "      - {id: slow, call: later, with: {ms: 1000, tag: slow}, timeout: 50ms}\n"
                "      - {id: after, call: echo}\n" NAME(
                    "goes_on") "    steps:\n"
                               "      - {id: slow, call: later, with: {ms: 1000, tag: slow}, "
                               "timeout: 50ms,"
                               " on_error: continue}\n"
                               "      - id: g\n"
                               "        timeout: 30ms\n"
                               "        steps: [{id: g1, call: later, with: {ms: 100, tag: g1}}]\n"
                               "        on_error: {value: late}\n",
        "w");
    uint64_t t0 = fake_ms;
    run_t *r = start(wf, NULL);
    run_until_done(r, 2000);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
    cr_expect_eq(r->done_at - t0, 50);
    cr_expect_str_eq(error_message(r), "step slow timed out after 50 ms");
    cr_expect_str_eq(json_string_value(json_object_get(nx_exec_error(r->x), "reason")), "timeout");
    cr_expect_eq(T.last_timeout_ms, 50, "the call is told the time it has: %lld",
                 (long long)T.last_timeout_ms);
    cr_expect_eq(T.later_cancels, 1);
    cr_expect_eq(T.echo_calls, 0);

    /* A group times out as a whole: its running step is cancelled. */
    t0 = fake_ms;
    run_t *r2 = start(nx_workflows_find(cfg.workflows, "goes_on"), NULL);
    run_until_done(r2, 2000);
    expect_result(r2, "\"late\"");
    cr_expect_eq(r2->done_at - t0, 80);
    cr_expect_eq(T.later_cancels, 3);
    cr_expect_str_eq(step_status(r2, "slow"), "failed");
    cr_expect_str_eq(step_status(r2, "g1"), "cancelled");
    cr_expect_str_eq(step_status(r2, "g"), "succeeded");
}

Test(workflow_exec, deadline_ends_the_workflow_and_cancels_what_runs) {
    const nx_workflow_t *wf =
        load(WF("w") "    deadline: 100ms\n"
                     "    steps:\n"
                     "      - {id: first, call: later, with: {ms: 40, tag: first}}\n"
                     "      - {id: slow, call: later, with: {ms: 10000, tag: slow}}\n",
             "w");
    uint64_t t0 = fake_ms;
    run_t *r = start(wf, NULL);
    run_until_done(r, 1000);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
    cr_expect_eq(r->done_at - t0, 100);
    cr_expect_eq(T.last_timeout_ms, 60, "the second call gets what is left: %lld",
                 (long long)T.last_timeout_ms);
    cr_expect_str_eq(json_string_value(json_object_get(nx_exec_error(r->x), "reason")), "deadline");
    cr_expect(strstr(error_message(r), "deadline of 100 ms") != NULL, "%s", error_message(r));
    cr_expect_eq(T.later_cancels, 1);
    cr_expect_str_eq(step_status(r, "first"), "succeeded");
    cr_expect_str_eq(step_status(r, "slow"), "cancelled");
    size_t n = json_array_size(r->events);
    cr_expect_str_eq(json_string_value(json_array_get(json_array_get(r->events, n - 1), 0)),
                     "execution.failed");
    advance(500);
    cr_expect_eq(r->done, 1);
    cr_expect_eq(r->events_after_done, 0);
}

/* ================= cancel and free ================= */

Test(workflow_exec, cancel_mid_run_cancels_calls_and_ends_once) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: p\n"
                                           "        parallel:\n"
                                           "          - {id: a, call: later, with: {ms: 1000, "
                                           "tag: a}}\n"
                                           "          - id: m\n"
                                           "            map:\n"
                                           "              items: ${{ input.items }}\n"
                                           "              concurrency: 2\n"
                                           "              steps: [{id: it, call: later, with: "
                                           "{ms: 1000, tag: '${{ item }}'}}]\n"
                                           "      - {id: after, call: echo}\n",
                                   "w");
    run_t *r = start(wf, "{\"items\": [1, 2, 3]}");
    advance(10);
    cr_assert_eq(T.active, 3);
    cr_assert_eq(r->done, 0);
    nx_exec_cancel(r->x);
    advance(10);
    cr_assert_eq(r->done, 1);
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_CANCELLED);
    cr_expect_str_eq(json_string_value(json_object_get(nx_exec_error(r->x), "reason")),
                     "cancelled");
    cr_expect_eq(T.later_cancels, 3);
    cr_expect_eq(T.active, 0);
    size_t n = json_array_size(r->events);
    cr_expect_str_eq(json_string_value(json_array_get(json_array_get(r->events, n - 1), 0)),
                     "execution.cancelled");
    cr_expect_str_eq(step_status(r, "a"), "cancelled");
    cr_expect_str_eq(step_status(r, "p"), "cancelled");
    cr_expect_str_eq(step_status(r, "after"), "pending");

    nx_exec_cancel(r->x); /* no effect once ended */
    advance(2000);
    cr_expect_eq(r->done, 1);
    cr_expect_eq(r->events_after_done, 0);
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_CANCELLED);
    cr_expect_eq(T.echo_calls, 0);
}

Test(workflow_exec, cancel_before_the_start_ends_it_without_running_anything) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n      - {id: a, call: echo}\n", "w");
    run_t *r = start(wf, NULL);
    nx_exec_cancel(r->x);
    advance(10);
    cr_expect_eq(r->done, 1);
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_CANCELLED);
    cr_expect_eq(T.echo_calls, 0);
    cr_expect_eq(r->nevents, 1, "only execution.cancelled (%d events)", r->nevents);
}

Test(workflow_exec, free_from_inside_the_done_hook) {
    const nx_workflow_t *wf = load(WF("inline") "    steps:\n      - {id: a, call: echo}\n" NAME(
                                       "timer") "    steps:\n"
                                                "      - {id: a, call: later, with: {ms: 5}}\n"
                                                "      - {id: b, call: echo}\n",
                                   "inline");
    /* The last step answered inline (within the start timer). */
    runs[0].free_in_done = true;
    run_t *r = start(wf, NULL);
    run_until_done(r, 10);
    cr_expect(r->freed);
    /* Ended from a tool's timer. */
    runs[1].free_in_done = true;
    run_t *r2 = start(nx_workflows_find(cfg.workflows, "timer"), NULL);
    run_until_done(r2, 100);
    cr_expect(r2->freed);
    /* Ended by nx_exec_cancel. */
    runs[2].free_in_done = true;
    run_t *r3 = start(nx_workflows_find(cfg.workflows, "timer"), NULL);
    advance(1);
    nx_exec_cancel(r3->x);
    settle();
    cr_expect_eq(r3->done, 1);
    cr_expect(r3->freed);
    cr_expect_eq(T.later_cancels, 1);
    /* ASan reports any use of a freed execution; advancing shows nothing fires afterwards. */
    advance(100);
    cr_expect_eq(r->done + r2->done + r3->done, 3);
}

Test(workflow_exec, free_while_running_cancels_and_tells_nobody) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n      - {id: a, call: later, with: {ms: 100}}\n", "w");
    run_t *r = start(wf, NULL);
    advance(10);
    cr_assert_eq(T.active, 1);
    int before = r->nevents;
    nx_exec_free(r->x);
    r->freed = true;
    cr_expect_eq(T.later_cancels, 1);
    advance(200);
    cr_expect_eq(r->done, 0, "hooks no longer run");
    cr_expect_eq(r->nevents, before);
}

Test(workflow_exec, detached_execution_goes_on_silently) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n      - {id: a, call: later, with: {ms: 10, value: 7}}\n", "w");
    run_t *r = start(wf, NULL);
    advance(1);
    int before = r->nevents;
    nx_exec_detach(r->x);
    advance(20);
    cr_expect_eq(r->done, 0);
    cr_expect_eq(r->nevents, before);
    expect_result(r, "7");
}

/* ================= events and record ================= */

Test(workflow_exec, events_come_in_order) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - {id: a, call: echo}\n"
                                           "      - {id: s, call: echo, if: input.no}\n"
                                           "      - id: p\n"
                                           "        parallel:\n"
                                           "          - {id: b, call: later, with: {ms: 20}}\n"
                                           "          - {id: c, call: later, with: {ms: 10}}\n"
                                           "      - id: m\n"
                                           "        map:\n"
                                           "          items: ${{ input.items }}\n"
                                           "          concurrency: 2\n"
                                           "          steps: [{id: it, call: later, with: {ms: "
                                           "'${{ item }}'}}]\n",
                                   "w");
    run_t *r = start(wf, "{\"items\": [30, 10], \"no\": false}");
    run_until_done(r, 200);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_SUCCEEDED);
    size_t n = json_array_size(r->events);
    cr_assert_gt(n, 2);
    /* execution.started first, execution.finished last, seq 1, 2, 3, ... */
    cr_expect_str_eq(json_string_value(json_array_get(json_array_get(r->events, 0), 0)),
                     "execution.started");
    json_t *first = json_array_get(json_array_get(r->events, 0), 1);
    expect_json(json_object_get(first, "inputs"), "{\"items\": [30, 10], \"no\": false}", "inputs");
    cr_expect_eq(json_integer_value(json_object_get(first, "steps")), 7);
    cr_expect_str_eq(json_string_value(json_array_get(json_array_get(r->events, n - 1), 0)),
                     "execution.finished");
    expect_json(json_object_get(json_array_get(json_array_get(r->events, n - 1), 1), "result"),
                "[{\"n\": 3}, {\"n\": 4}]", "result in the last event");
    json_t *open = json_object(); /* "step#iteration" -> started and not yet finished */
    int finished = 0, started = 0;
    for (size_t i = 0; i < n; i++) {
        const char *type = json_string_value(json_array_get(json_array_get(r->events, i), 0));
        json_t *d = json_array_get(json_array_get(r->events, i), 1);
        cr_expect_eq(json_integer_value(json_object_get(d, "seq")), (json_int_t)i + 1,
                     "seq of event %zu (%s)", i, type);
        cr_expect_str_eq(json_string_value(json_object_get(d, "execution")), "x1");
        cr_expect_str_eq(json_string_value(json_object_get(d, "workflow")), "w");
        cr_expect(json_is_string(json_object_get(d, "time")));
        if (strncmp(type, "step.", 5) != 0) {
            cr_expect(i == 0 || i == n - 1, "%s at %zu", type, i);
            continue;
        }
        char key[96];
        json_t *it = json_object_get(d, "iteration");
        snprintf(key, sizeof(key), "%s#%lld", json_string_value(json_object_get(d, "step")),
                 it ? (long long)json_integer_value(it) : -1LL);
        if (strcmp(type, "step.started") == 0) {
            started++;
            cr_expect_null(json_object_get(open, key), "%s started twice", key);
            json_object_set_new(open, key, json_true());
        } else {
            finished++;
            const char *st = json_string_value(json_object_get(d, "status"));
            if (strcmp(st, "skipped") != 0) {
                cr_expect_not_null(json_object_get(open, key), "%s finished before it started",
                                   key);
                json_object_del(open, key);
            }
        }
    }
    cr_expect_eq(json_object_size(open), 0, "every started step finished");
    cr_expect_eq(started, 7, "a, p, b, c, m, it x2 (%d)", started);
    cr_expect_eq(finished, 8, "the same and the skipped s (%d)", finished);
    json_decref(open);
}

Test(workflow_exec, record_has_status_attempts_runs_and_durations) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n"
                     "      - {id: a, call: later, with: {ms: 30, value: {x: 1}}}\n"
                     "      - id: m\n"
                     "        map:\n"
                     "          items: ${{ input.items }}\n"
                     "          steps: [{id: e, call: later, with: {ms: 5}}]\n"
                     "      - {id: f, call: fail, with: {mode: rpc, message: nope}}\n"
                     "      - {id: z, call: echo}\n",
             "w");
    run_t *r = start(wf, "{\"items\": [1, 2, 3]}");
    uint32_t done_steps, total;
    nx_exec_progress(r->x, &done_steps, &total);
    cr_expect_eq(total, 5);
    cr_expect_eq(done_steps, 0);
    run_until_done(r, 200);
    cr_assert_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
    expect_json(nx_exec_error(r->x),
                "{\"message\": \"nope\", \"step\": \"f\", \"code\": -32050, \"data\": {\"why\": "
                "\"asked to\"}}",
                "error");
    json_t *rec = nx_exec_record(r->x);
    cr_expect_str_eq(json_string_value(json_object_get(rec, "id")), "x1");
    cr_expect_str_eq(json_string_value(json_object_get(rec, "workflow")), "w");
    cr_expect_str_eq(json_string_value(json_object_get(rec, "status")), "failed");
    cr_expect_eq(json_integer_value(json_object_get(rec, "duration_ms")), 45);
    cr_expect(json_is_string(json_object_get(rec, "started_at")));
    cr_expect(json_is_string(json_object_get(rec, "ended_at")));
    expect_json(json_object_get(rec, "inputs"), "{\"items\": [1, 2, 3]}", "inputs");
    cr_expect_null(json_object_get(rec, "result"));
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(rec, "error"), "message")),
                     "nope");
    cr_expect_eq(json_array_size(json_object_get(rec, "steps")), 5);
    expect_json(record_step_of(rec, "a"),
                "{\"id\": \"a\", \"kind\": \"call\", \"status\": \"succeeded\", \"attempts\": 1,"
                " \"cached\": false, \"duration_ms\": 30, \"runs\": 1}",
                "a");
    expect_json(record_step_of(rec, "m"),
                "{\"id\": \"m\", \"kind\": \"map\", \"status\": \"succeeded\", \"attempts\": 0,"
                " \"cached\": false, \"duration_ms\": 15, \"runs\": 1}",
                "m");
    expect_json(record_step_of(rec, "e"),
                "{\"id\": \"e\", \"kind\": \"call\", \"status\": \"succeeded\", \"attempts\": 1,"
                " \"cached\": false, \"duration_ms\": 5, \"runs\": 3}",
                "e");
    json_t *f = record_step_of(rec, "f");
    cr_expect_str_eq(json_string_value(json_object_get(f, "status")), "failed");
    cr_expect_eq(json_integer_value(json_object_get(f, "attempts")), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(f, "error"), "message")),
                     "nope");
    expect_json(record_step_of(rec, "z"),
                "{\"id\": \"z\", \"kind\": \"call\", \"status\": \"pending\", \"attempts\": 0,"
                " \"cached\": false, \"duration_ms\": 0, \"runs\": 0}",
                "z");
    json_decref(rec);
}

Test(workflow_exec, written_record_escapes_and_orders_as_the_json_record) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n"
                     "      - id: a\n"
                     "        call: later\n"
                     "        with:\n"
                     "          ms: 10\n"
                     "          value: ${{ input }}\n"
                     "      - {id: b, call: fail, with: {mode: rpc, message: \"bad \\\"x\\\"\"},"
                     " on_error: continue}\n",
             "w");
    run_t *r = start(wf, "{\"s\": \"quote \\\" slash \\\\ tab \\t nl \\n nul-free \\u0001 \\u00e9 "
                         "\\ud83d\\ude00\", \"n\": -12, \"f\": 0.5, \"t\": true, \"z\": null}");
    advance(5);
    expect_written_record_is_the_record(r->x); /* running: a in flight, no ended_at */
    run_until_done(r, 100);                    /* the done hook checks the ended record */
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_SUCCEEDED);
    json_t *rec = nx_exec_record(r->x);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_object_get(record_step_of(rec, "b"), "error"), "message")),
                     "bad \"x\"");
    json_decref(rec);
}

Test(workflow_exec, inputs_are_validated_before_anything_runs) {
    const nx_workflow_t *wf = load(WF("w") "    input:\n"
                                           "      type: object\n"
                                           "      properties: {n: {type: integer}}\n"
                                           "      required: [n]\n"
                                           "    steps:\n      - {id: a, call: echo}\n",
                                   "w");
    json_t *in = json_pack("{s:s}", "n", "three");
    nx_exec_t *x = (nx_exec_t *)1;
    json_t *errors = NULL;
    int rc = nx_exec_start(&es, cfg.workflows, wf, "bad", in, 0, &hooks, NULL, &x, &errors);
    json_decref(in);
    cr_expect_eq(rc, -EINVAL);
    cr_expect_null(x);
    cr_assert(json_is_array(errors) && json_array_size(errors) >= 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(errors, 0), "path")), "/n",
                     "path %s",
                     json_string_value(json_object_get(json_array_get(errors, 0), "path")));
    json_decref(errors);
    advance(10);
    cr_expect_eq(T.echo_calls, 0);
}

/* ================= the step cache ================= */

static void use_cache(uint64_t stale_grace_ms) {
    nx_cache_config_t cc = {.stale_grace_ms = stale_grace_ms};
    cr_assert_eq(nx_cache_new(&shard, &cc, &es.cache), 0);
}

static const char *const cached_doc =
    WF("w") "    steps:\n"
            "      - {id: c, call: later, with: {ms: 20, q: '${{ input.q }}'}, cache: 100ms}\n";

static json_t *step_finished_event(const run_t *r, const char *id) {
    size_t i;
    json_t *e;
    json_array_foreach(r->events, i, e) {
        json_t *d = json_array_get(e, 1);
        if (strcmp(json_string_value(json_array_get(e, 0)), "step.finished") == 0 &&
            strcmp(json_string_value(json_object_get(d, "step")), id) == 0)
            return d;
    }
    cr_assert_fail("no step.finished for %s", id);
    return NULL;
}

Test(workflow_exec, step_cache_answers_the_second_run) {
    use_cache(0);
    const nx_workflow_t *wf = load(cached_doc, "w");
    run_t *r = start(wf, "{\"q\": \"x\"}");
    run_until_done(r, 100);
    expect_result(r, "{\"n\": 1}");
    cr_expect_eq(json_is_true(json_object_get(step_finished_event(r, "c"), "cached")), false);

    uint64_t t0 = fake_ms;
    run_t *r2 = start(wf, "{\"q\": \"x\"}");
    run_until_done(r2, 100);
    expect_result(r2, "{\"n\": 1}");
    cr_expect_eq(r2->done_at, t0, "a hit answers at once");
    cr_expect_eq(T.later_calls, 1);
    json_t *rec = nx_exec_record(r2->x);
    json_t *c = record_step_of(rec, "c");
    cr_expect(json_is_true(json_object_get(c, "cached")));
    cr_expect_eq(json_integer_value(json_object_get(c, "attempts")), 0);
    json_decref(rec);
    cr_expect(json_is_true(json_object_get(step_finished_event(r2, "c"), "cached")));

    /* Other arguments are another key; the TTL ends the entry. */
    run_t *r3 = start(wf, "{\"q\": \"y\"}");
    run_until_done(r3, 100);
    expect_result(r3, "{\"n\": 2}");
    advance(150);
    run_t *r4 = start(wf, "{\"q\": \"x\"}");
    run_until_done(r4, 100);
    expect_result(r4, "{\"n\": 3}");
    cr_expect_eq(T.later_calls, 3);
}

Test(workflow_exec, step_cache_single_flight_makes_one_call) {
    use_cache(0);
    const nx_workflow_t *wf = load(cached_doc, "w");
    run_t *r = start(wf, "{\"q\": \"x\"}");
    run_t *r2 = start(wf, "{\"q\": \"x\"}");
    run_until_done(r, 100);
    run_until_done(r2, 100);
    cr_expect_eq(T.later_calls, 1);
    expect_result(r, "{\"n\": 1}");
    expect_result(r2, "{\"n\": 1}");
    json_t *rec = nx_exec_record(r->x), *rec2 = nx_exec_record(r2->x);
    bool c1 = json_is_true(json_object_get(record_step_of(rec, "c"), "cached"));
    bool c2 = json_is_true(json_object_get(record_step_of(rec2, "c"), "cached"));
    cr_expect(!c1 && c2, "the leader calls, the follower is served (%d %d)", c1, c2);
    json_decref(rec);
    json_decref(rec2);
}

Test(workflow_exec, step_cache_failures_are_shared_not_stored) {
    use_cache(0);
    T.later_mode = "iserror";
    const nx_workflow_t *wf = load(cached_doc, "w");
    run_t *r = start(wf, "{\"q\": \"x\"}");
    run_t *r2 = start(wf, "{\"q\": \"x\"}");
    run_until_done(r, 100);
    run_until_done(r2, 100);
    cr_expect_eq(T.later_calls, 1);
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
    cr_expect_eq(nx_exec_status(r2->x), NX_EXEC_FAILED);
    cr_expect_str_eq(error_message(r2), "later failed",
                     "the follower fails with the leader's "
                     "error");
    T.later_mode = NULL;
    run_t *r3 = start(wf, "{\"q\": \"x\"}");
    run_until_done(r3, 100);
    expect_result(r3, "{\"n\": 2}");
}

Test(workflow_exec, step_cache_answers_from_a_stale_entry_when_the_call_fails) {
    use_cache(10000);
    const nx_workflow_t *wf = load(cached_doc, "w");
    run_t *r = start(wf, "{\"q\": \"x\"}");
    run_until_done(r, 100);
    expect_result(r, "{\"n\": 1}");
    advance(150); /* past the TTL, within the grace */
    T.later_mode = "rpc";
    run_t *r2 = start(wf, "{\"q\": \"x\"}");
    run_until_done(r2, 100);
    expect_result(r2, "{\"n\": 1}");
    cr_expect_eq(T.later_calls, 2, "an expired entry is not a hit: the call is made");
    json_t *rec = nx_exec_record(r2->x);
    json_t *c = record_step_of(rec, "c");
    cr_expect(json_is_true(json_object_get(c, "cached")));
    cr_expect(json_is_true(json_object_get(c, "stale")));
    cr_expect_str_eq(json_string_value(json_object_get(c, "status")), "succeeded");
    json_decref(rec);
    cr_expect(json_is_true(json_object_get(step_finished_event(r2, "c"), "stale")));

    /* Past the grace there is nothing to fall back on. */
    advance(11000);
    run_t *r3 = start(wf, "{\"q\": \"x\"}");
    run_until_done(r3, 100);
    cr_expect_eq(nx_exec_status(r3->x), NX_EXEC_FAILED);
}

Test(workflow_exec, step_cache_stale_entry_also_answers_a_timeout) {
    use_cache(10000);
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n"
                     "      - {id: c, call: later, cache: 100ms, timeout: 50ms}\n",
             "w");
    run_t *r = start(wf, NULL);
    run_until_done(r, 100);
    expect_result(r, "{\"n\": 1}");
    advance(150);
    T.later_ms = 1000; /* the call now hangs: the step times out */
    uint64_t t0 = fake_ms;
    run_t *r2 = start(wf, NULL);
    run_until_done(r2, 100);
    expect_result(r2, "{\"n\": 1}");
    cr_expect_eq(r2->done_at - t0, 50);
    cr_expect_eq(T.later_cancels, 1);
    cr_expect(json_is_true(json_object_get(step_finished_event(r2, "c"), "stale")));
}

Test(workflow_exec, step_cache_a_cancelled_leader_hands_the_flight_to_a_follower) {
    use_cache(0);
    const nx_workflow_t *wf = load(cached_doc, "w");
    run_t *a = start(wf, "{\"q\": \"x\"}");
    run_t *b = start(wf, "{\"q\": \"x\"}");
    advance(5);
    cr_assert_eq(T.later_calls, 1, "b follows a");
    nx_exec_cancel(a->x);
    cr_expect_eq(T.later_cancels, 1);
    cr_expect_eq(T.later_calls, 2, "b looked again and leads");
    run_until_done(b, 100);
    cr_expect_eq(nx_exec_status(a->x), NX_EXEC_CANCELLED);
    expect_result(b, "{\"n\": 2}");
    json_t *rec = nx_exec_record(b->x);
    cr_expect(!json_is_true(json_object_get(record_step_of(rec, "c"), "cached")));
    json_decref(rec);
}

Test(workflow_exec, calls_carry_the_nesting_depth) {
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n      - {id: a, call: later, with: {ms: 1}}\n", "w");
    run_t *r = &runs[nruns++];
    r->events = json_array();
    cr_assert_eq(nx_exec_start(&es, cfg.workflows, wf, "deep", NULL, 2, &hooks, r, &r->x, NULL), 0);
    run_until_done(r, 10);
    cr_expect_eq(T.last_depth, 3, "depth %lld", (long long)T.last_depth);
    run_t *r2 = start(wf, NULL);
    run_until_done(r2, 10);
    cr_expect_eq(T.last_depth, 1);
}

/* ================= re-entrancy: callbacks that run inline =================
 * Each of these failed (a use-after-free, a wasted call, a wrong winner) before its fix. */

static const char *const map_cached_doc =
    WF("w") "    steps:\n"
            "      - id: m\n"
            "        map:\n"
            "          items: ${{ input.items }}\n"
            "          concurrency: 2\n"
            "          steps: [{id: c, call: later, with: {ms: 10}, cache: 1m}]\n";

/* The leader's completion wakes its follower (same execution) inline; the follower fails its
 * iteration and the map cancels the other iterations, the leader's among them, while the
 * leader is still in call_outcome: deliveries must wait until it is done (hold/release). */
Test(workflow_exec, cached_leader_failing_under_a_follower_of_the_same_execution) {
    use_cache(0);
    T.later_mode = "iserror";
    const nx_workflow_t *wf = load(map_cached_doc, "w");
    run_t *r = start(wf, "{\"items\": [1, 1]}"); /* same arguments: one flight */
    run_until_done(r, 100);
    cr_expect_eq(T.later_calls, 1);
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
}

/* The same through a step timeout: on_step_timeout -> call_outcome -> the follower. */
Test(workflow_exec, cached_leader_timing_out_under_a_follower_of_the_same_execution) {
    use_cache(0);
    T.later_ms = 100;
    const nx_workflow_t *wf =
        load(WF("w") "    steps:\n"
                     "      - id: m\n"
                     "        map:\n"
                     "          items: ${{ input.items }}\n"
                     "          concurrency: 2\n"
                     "          steps: [{id: c, call: later, timeout: 20ms, cache: 1m}]\n",
             "w");
    run_t *r = start(wf, "{\"items\": [1, 1]}");
    run_until_done(r, 200);
    cr_expect_eq(T.later_calls, 1);
    cr_expect_eq(T.later_cancels, 1);
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_FAILED);
}

/* BUG (minor): cancelling an execution whose map holds a cached leader and its follower: the
 * leader's frame_stop_op ends its flight with NX_CACHE_LEADER_GONE, the follower (about to be
 * cancelled too) looks the key up again, leads and starts a new backend call, which the next
 * step of the teardown cancels: 2 calls made and 2 cancelled instead of 1 and 1. (Before the
 * hold/release change this was a heap-use-after-free in frame_stop_op.) */
Test(workflow_exec, cancel_with_a_cached_leader_and_follower_in_the_same_execution) {
    use_cache(0);
    T.later_ms = 100;
    const nx_workflow_t *wf = load(map_cached_doc, "w");
    run_t *r = start(wf, "{\"items\": [1, 1]}");
    advance(10);
    nx_exec_cancel(r->x);
    advance(10);
    cr_expect_eq(r->done, 1);
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_CANCELLED);
    cr_expect_eq(T.later_calls, 1, "calls made: %d", T.later_calls);
    cr_expect_eq(T.later_cancels, 1, "calls cancelled: %d", T.later_cancels);
}

static void cancel_on_step_started(void *arg, nx_exec_t *x, const char *type, const json_t *d) {
    run_t *r = arg;
    r->nevents++;
    if (strcmp(type, "step.started") == 0) nx_exec_cancel(x);
}

/* BUG: an event hook that cancels its execution frees the frame start_step is still setting
 * up: emit(step.started) in start_step, then start_call(f) on the freed frame
 * (heap-use-after-free). The done hook runs inline in nx_exec_cancel too. */
Test(workflow_exec, cancel_from_an_event_hook) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n      - {id: a, call: later}\n", "w");
    nx_exec_hooks_t h = {.event = cancel_on_step_started, .done = on_done};
    run_t *r = &runs[nruns++];
    cr_assert_eq(nx_exec_start(&es, cfg.workflows, wf, "x", NULL, 0, &h, r, &r->x, NULL), 0);
    advance(20);
    cr_expect_eq(nx_exec_status(r->x), NX_EXEC_CANCELLED);
    cr_expect_eq(r->done, 1);
}

/* A hook that frees its ended execution from the terminal event (nx_exec_free allows it once
 * ended): nx_exec_cancel must not touch it afterwards. */
static void free_on_terminal_event(void *arg, nx_exec_t *x, const char *type, const json_t *d) {
    run_t *r = arg;
    if (strcmp(type, "execution.cancelled") == 0) {
        r->freed = true;
        nx_exec_free(x); /* it has ended: nx_exec_free frees it */
    }
}

Test(workflow_exec, free_from_the_terminal_event_of_a_cancel) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n      - {id: a, call: later}\n", "w");
    nx_exec_hooks_t h = {.event = free_on_terminal_event};
    run_t *r = &runs[nruns++];
    cr_assert_eq(nx_exec_start(&es, cfg.workflows, wf, "x", NULL, 0, &h, r, &r->x, NULL), 0);
    advance(2);
    nx_exec_cancel(r->x);
    advance(20);
    cr_expect(r->freed);
}

/* BUG (semantics): a skipped branch counts as a success in child_done's parallel join, so with
 * join: any a branch whose if: is false wins with null and cancels the branch that runs. */
Test(workflow_exec, parallel_any_is_not_won_by_a_skipped_branch) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: p\n"
                                           "        join: any\n"
                                           "        parallel:\n"
                                           "          - {id: a, call: later, with: {ms: 10, "
                                           "value: 1}}\n"
                                           "          - {id: b, call: echo, if: input.no}\n",
                                   "w");
    run_t *r = start(wf, "{\"no\": false}");
    run_until_done(r, 100);
    expect_result(r, "1");
    cr_expect_eq(T.later_cancels, 0);
}

/* BUG: record_step counts every run of a step, so steps inside a map push the "finished"
 * of nx_exec_progress past the total (4 of 2 here). */
Test(workflow_exec, progress_never_passes_the_total) {
    const nx_workflow_t *wf = load(WF("w") "    steps:\n"
                                           "      - id: m\n"
                                           "        map:\n"
                                           "          items: ${{ input.items }}\n"
                                           "          steps: [{id: e, call: echo}]\n",
                                   "w");
    run_t *r = start(wf, "{\"items\": [1, 2, 3]}");
    run_until_done(r, 100);
    uint32_t finished, total;
    nx_exec_progress(r->x, &finished, &total);
    cr_expect_eq(total, 2);
    cr_expect_leq(finished, total, "finished %u of %u", finished, total);
}
