/* Tests for engine/tool_cache.c: the provider wrapper that serves backend tools/call results
 * from the shard's cache. A miss leads and calls the backend once, a hit answers inline
 * (marked in _meta), concurrent identical calls share one backend call, a cancelled leader
 * fails its followers, an expired entry answers a failed call within the stale grace, isError
 * results are stored only when asked, and everything else passes through.
 *
 * The "backend" is a fake provider serving tools named b__*; requests are in-process
 * (nx_invoke). engine/engine.c is compiled in for nx_engine_current_shard (a thread-local only
 * its shard start sets), and net/uring.c for the loop's cached clock, which the cache's TTLs
 * read: the test moves it by hand. */
#include <criterion/criterion.h>

#include "tests/unit/fake_clock.h"

#include "engine/engine.c"
#include "engine/tool_cache.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nx_shard_t shard;
static nx_engine_t engine;
static nx_engine_shard_t es;
static nx_tool_cache_t *tc;

/* ---- the fake backend: a provider of the tools b__* ---- */

#define MAX_HELD 8

static struct {
    int calls, cancels, lists;
    const char *mode; /* "ok" (inline), "hold", "iserror", "rpc" */
    nx_mcp_call_t *held[MAX_HELD];
    int nheld;
    bool saw_no_cache; /* the last call asked to skip the cache */
} P;

static void on_backend_cancel(nx_mcp_call_t *call, void *arg) {
    P.cancels++;
    for (int i = 0; i < P.nheld; i++)
        if (P.held[i] == call) P.held[i] = NULL;
}

static void backend_answer(nx_mcp_call_t *call, const char *mode) {
    if (strcmp(mode, "iserror") == 0) {
        nx_mcp_call_return_text(call, "backend says no", true);
    } else if (strcmp(mode, "rpc") == 0) {
        nx_mcp_call_error(call, -32050, "backend down", json_pack("{s:s}", "why", "test"));
    } else {
        json_t *args = json_object_get(nx_mcp_call_params(call), "arguments");
        nx_mcp_call_return_json(
            call, json_pack("{s:i, s:O}", "n", P.calls, "args", args ? args : json_null()), false);
    }
}

static bool backend_call(void *arg, nx_mcp_call_t *call, const char *method, const char *target) {
    if (strncmp(target, "b__", 3) != 0) return false;
    P.calls++;
    P.saw_no_cache = nx_mcp_call_no_cache(call);
    if (strcmp(P.mode, "hold") == 0) {
        cr_assert_lt(P.nheld, MAX_HELD);
        P.held[P.nheld++] = call;
        nx_mcp_call_on_cancel(call, on_backend_cancel, NULL);
        return true;
    }
    backend_answer(call, P.mode);
    return true;
}

static void backend_list(void *arg, nx_mcp_catalog_kind_t kind, json_t *items) {
    P.lists++;
}

/* Answers held call <i> (now) with <mode>. */
static void release(int i, const char *mode) {
    nx_mcp_call_t *c = P.held[i];
    cr_assert_not_null(c, "held call %d is gone", i);
    P.held[i] = NULL;
    nx_mcp_call_on_cancel(c, NULL, NULL);
    backend_answer(c, mode);
}

static void install(json_t *ttls, json_t *prefixes, uint64_t default_ttl, bool cache_errors,
                    bool stale) {
    cr_assert_eq(
        nx_tool_cache_install(engine.mcp, ttls, prefixes, default_ttl, cache_errors, stale, &tc),
        0);
    cr_assert_not_null(tc);
}

static void setup(void) {
    memset(&P, 0, sizeof(P));
    P.mode = "ok";
    memset(&fake_loop, 0, sizeof(fake_loop));
    memset(&shard, 0, sizeof(shard));
    memset(&engine, 0, sizeof(engine));
    memset(&es, 0, sizeof(es));
    set_clock(1000000);
    shard.loop = &fake_loop;
    nx_timer_wheel_init(&shard.wheel, fake_ms);
    engine.mcp = nx_mcp_server_new("test", "1.0");
    cr_assert_not_null(engine.mcp);
    nx_mcp_provider_t p = {.list = backend_list, .call = backend_call};
    nx_mcp_server_set_provider(engine.mcp, &p, NULL);
    es.engine = &engine;
    es.shard = &shard;
    nx_cache_config_t cc = {.stale_grace_ms = 10000};
    cr_assert_eq(nx_cache_new(&shard, &cc, &es.cache), 0);
    t_current_shard = &es;
    tc = NULL;
}

static void teardown(void) {
    for (int i = 0; i < P.nheld; i++)
        if (P.held[i] != NULL) release(i, "ok");
    t_current_shard = NULL;
    nx_cache_free(es.cache);
    nx_tool_cache_free(tc);
    nx_mcp_server_free(engine.mcp);
}

TestSuite(tool_cache, .init = setup, .fini = teardown, .timeout = 30);

/* ---- requests ---- */

typedef struct answer {
    int done;
    json_t *result, *error, *notes;
    nx_invoke_t *inv;
} answer_t;

static answer_t answers[8];
static int nanswers;

static void on_done(void *arg, const json_t *result, const json_t *error, uint32_t attempts) {
    answer_t *a = arg;
    a->done++;
    a->inv = NULL;
    a->result = json_deep_copy(result);
    a->error = json_deep_copy(error);
}

static void on_note(void *arg, const char *method, const json_t *params) {
    answer_t *a = arg;
    json_array_append_new(a->notes, json_pack("[s, O]", method, params));
}

/* tools/call of <tool> with <args> (JSON text) and <meta> (JSON text or NULL). */
static answer_t *call_opts(const char *tool, const char *args, const char *meta, bool no_cache) {
    cr_assert_lt(nanswers, 8);
    answer_t *a = &answers[nanswers++];
    memset(a, 0, sizeof(*a));
    a->notes = json_array();
    json_t *params = json_pack("{s:s, s:o}", "name", tool, "arguments", json_loads(args, 0, NULL));
    if (meta != NULL) json_object_set_new(params, "_meta", json_loads(meta, 0, NULL));
    nx_invoke_opts_t opts = {.note = on_note, .no_cache = no_cache};
    nx_invoke_t *inv = NULL;
    cr_assert_eq(nx_invoke(engine.mcp, "tools/call", params, &opts, on_done, a, &inv), 0);
    json_decref(params);
    if (a->done == 0) a->inv = inv;
    return a;
}

static answer_t *call(const char *tool, const char *args) {
    return call_opts(tool, args, NULL, false);
}

static void answers_dispose(void) {
    for (int i = 0; i < nanswers; i++) {
        if (answers[i].inv != NULL) nx_invoke_cancel(answers[i].inv);
        json_decref(answers[i].result);
        json_decref(answers[i].error);
        json_decref(answers[i].notes);
    }
    nanswers = 0;
}

/* What _meta says about the cache ("hit", "shared", "stale"), or NULL. */
static const char *how(const answer_t *a) {
    return json_string_value(
        json_object_get(json_object_get(a->result, "_meta"), "io.nexus/cache"));
}

static json_int_t n_of(const answer_t *a) {
    return json_integer_value(
        json_object_get(json_object_get(a->result, "structuredContent"), "n"));
}

static void expect_ok(const answer_t *a, json_int_t n, const char *how_want) {
    cr_assert_eq(a->done, 1, "answered %d times", a->done);
    cr_assert_not_null(a->result, "error %s",
                       json_string_value(json_object_get(a->error, "message")));
    cr_expect_eq(n_of(a), n, "served by backend call %lld, want %lld", (long long)n_of(a),
                 (long long)n);
    const char *h = how(a);
    if (how_want == NULL)
        cr_expect_null(h, "marked %s", h);
    else
        cr_expect(h != NULL && strcmp(h, how_want) == 0, "marked %s, want %s", h ? h : "nothing",
                  how_want);
}

/* ================= tests ================= */

Test(tool_cache, miss_then_hit) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, false);
    answer_t *a = call("b__get", "{\"a\": 1, \"b\": 2}");
    expect_ok(a, 1, NULL);
    cr_expect(P.saw_no_cache, "the leader's own request skips the cache");
    answer_t *b = call("b__get", "{\"b\": 2, \"a\": 1}"); /* the same arguments, reordered */
    expect_ok(b, 1, "hit");
    cr_expect_eq(P.calls, 1);
    answer_t *c = call("b__get", "{\"a\": 2}"); /* other arguments: another key */
    expect_ok(c, 2, NULL);
    /* The TTL ends it. */
    set_clock(fake_ms + 101);
    answer_t *d = call("b__get", "{\"a\": 1, \"b\": 2}");
    expect_ok(d, 3, NULL);
    cr_expect_eq(P.calls, 3);
    answers_dispose();
}

Test(tool_cache, only_tools_with_a_ttl_are_cached) {
    install(json_pack("{s:i}", "b__get", 100), json_pack("{s:i}", "b__pre_", 50), 0, false, false);
    expect_ok(call("b__other", "{}"), 1, NULL);
    expect_ok(call("b__other", "{}"), 2, NULL);
    /* a prefix gives every tool under it a TTL */
    expect_ok(call("b__pre_x", "{}"), 3, NULL);
    expect_ok(call("b__pre_x", "{}"), 3, "hit");
    set_clock(fake_ms + 51);
    expect_ok(call("b__pre_x", "{}"), 4, NULL);
    /* no_cache (the cache's own leader requests) goes straight to the backend */
    expect_ok(call_opts("b__get", "{}", NULL, true), 5, NULL);
    expect_ok(call_opts("b__get", "{}", NULL, true), 6, NULL);
    answers_dispose();
}

Test(tool_cache, default_ttl_and_ttl_names_win_over_prefixes) {
    install(json_pack("{s:i}", "b__pre_short", 10), json_pack("{s:i}", "b__pre_", 1000), 50, false,
            false);
    expect_ok(call("b__any", "{}"), 1, NULL);
    expect_ok(call("b__any", "{}"), 1, "hit");
    expect_ok(call("b__pre_short", "{}"), 2, NULL);
    set_clock(fake_ms + 11);
    expect_ok(call("b__pre_short", "{}"), 3, NULL);
    expect_ok(call("b__any", "{}"), 1, "hit"); /* 50 ms not over yet */
    answers_dispose();
}

Test(tool_cache, concurrent_identical_calls_share_one_backend_call) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, false);
    P.mode = "hold";
    answer_t *a = call("b__get", "{\"q\": 1}");
    answer_t *b = call("b__get", "{\"q\": 1}");
    answer_t *c = call("b__get", "{\"q\": 2}");
    cr_assert_eq(a->done + b->done + c->done, 0);
    cr_expect_eq(P.calls, 2, "one call per key");
    release(0, "ok");
    expect_ok(a, 2, NULL); /* n is the number of calls made when it answered */
    expect_ok(b, 2, "shared");
    cr_expect_eq(c->done, 0);
    release(1, "ok");
    expect_ok(c, 2, NULL);
    P.mode = "ok";
    expect_ok(call("b__get", "{\"q\": 1}"), 2, "hit");
    cr_expect_eq(P.calls, 2);
    answers_dispose();
}

Test(tool_cache, a_cancelled_leader_hands_the_flight_to_a_follower) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, false);
    P.mode = "hold";
    answer_t *a = call("b__get", "{}");
    answer_t *b = call("b__get", "{}");
    answer_t *c = call("b__get", "{}");
    cr_assert_not_null(a->inv);
    cr_assert_eq(P.calls, 1);
    nx_invoke_cancel(a->inv);
    a->inv = NULL;
    cr_expect_eq(P.cancels, 1, "the backend hears of it");
    cr_expect_eq(a->done, 0);
    /* The followers look again rather than fail: the first leads, the other follows it. */
    cr_expect_eq(b->done + c->done, 0);
    cr_expect_eq(P.calls, 2);
    release(1, "ok");
    expect_ok(b, 2, NULL);
    expect_ok(c, 2, "shared");
    P.mode = "ok";
    expect_ok(call("b__get", "{}"), 2, "hit");
    answers_dispose();
}

/* A follower that is cancelled while it waits for a new leader leaves nothing behind. */
Test(tool_cache, a_cancelled_leader_with_a_cancelled_follower) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, false);
    P.mode = "hold";
    answer_t *a = call("b__get", "{}");
    answer_t *b = call("b__get", "{}");
    nx_invoke_cancel(b->inv);
    b->inv = NULL;
    nx_invoke_cancel(a->inv);
    a->inv = NULL;
    cr_expect_eq(P.cancels, 1);
    cr_expect_eq(P.calls, 1, "nobody is left to lead");
    cr_expect_eq(a->done + b->done, 0);
    P.mode = "ok";
    expect_ok(call("b__get", "{}"), 2, NULL);
    answers_dispose();
}

Test(tool_cache, a_cancelled_follower_leaves_the_flight_alone) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, false);
    P.mode = "hold";
    answer_t *a = call("b__get", "{}");
    answer_t *b = call("b__get", "{}");
    answer_t *c = call("b__get", "{}");
    nx_invoke_cancel(b->inv);
    b->inv = NULL;
    cr_expect_eq(P.cancels, 0);
    release(0, "ok");
    expect_ok(a, 1, NULL);
    expect_ok(c, 1, "shared");
    cr_expect_eq(b->done, 0);
    answers_dispose();
}

Test(tool_cache, failures_are_shared_with_the_followers_but_not_stored) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, false);
    P.mode = "hold";
    answer_t *a = call("b__get", "{}");
    answer_t *b = call("b__get", "{}");
    release(0, "rpc");
    for (int i = 0; i < 2; i++) {
        answer_t *f = i ? b : a;
        cr_assert_eq(f->done, 1);
        cr_expect_null(f->result);
        cr_expect_eq(json_integer_value(json_object_get(f->error, "code")), -32050);
        cr_expect_str_eq(json_string_value(json_object_get(f->error, "message")), "backend down");
        cr_expect_str_eq(
            json_string_value(json_object_get(json_object_get(f->error, "data"), "why")), "test");
    }
    /* an isError result is shared as the result it is */
    answer_t *c = call("b__get", "{}");
    answer_t *d = call("b__get", "{}");
    release(1, "iserror");
    cr_expect(json_is_true(json_object_get(c->result, "isError")));
    cr_expect(json_is_true(json_object_get(d->result, "isError")));
    cr_expect_str_eq(how(d), "shared");
    /* neither was stored */
    P.mode = "ok";
    expect_ok(call("b__get", "{}"), 3, NULL);
    answers_dispose();
}

Test(tool_cache, is_error_results_are_stored_when_asked) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, true, false);
    P.mode = "iserror";
    answer_t *a = call("b__get", "{}");
    cr_expect(json_is_true(json_object_get(a->result, "isError")));
    answer_t *b = call("b__get", "{}");
    cr_expect(json_is_true(json_object_get(b->result, "isError")));
    cr_expect_str_eq(how(b), "hit");
    cr_expect_eq(P.calls, 1);
    /* JSON-RPC errors never are */
    P.mode = "rpc";
    call("b__get", "{\"x\": 1}");
    call("b__get", "{\"x\": 1}");
    cr_expect_eq(P.calls, 3);
    answers_dispose();
}

Test(tool_cache, stale_entry_answers_a_failed_call_within_the_grace) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, true);
    expect_ok(call("b__get", "{}"), 1, NULL);
    set_clock(fake_ms + 150); /* expired, well within the 10 s grace */
    P.mode = "rpc";
    answer_t *a = call("b__get", "{}");
    expect_ok(a, 1, "stale");
    cr_expect_eq(P.calls, 2, "an expired entry is not a hit");
    P.mode = "iserror";
    expect_ok(call("b__get", "{}"), 1, "stale");
    /* followers of a flight answered stale get the stale value */
    P.mode = "hold";
    answer_t *l = call("b__get", "{}");
    answer_t *f = call("b__get", "{}");
    release(0, "rpc");
    expect_ok(l, 1, "stale");
    expect_ok(f, 1, "shared");
    /* past the grace the failure is the answer */
    set_clock(fake_ms + 20000);
    P.mode = "rpc";
    answer_t *g = call("b__get", "{}");
    cr_assert_eq(g->done, 1);
    cr_expect_null(g->result);
    answers_dispose();
}

Test(tool_cache, without_stale_if_error_a_failure_is_the_answer) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, false);
    expect_ok(call("b__get", "{}"), 1, NULL);
    set_clock(fake_ms + 150);
    P.mode = "rpc";
    answer_t *a = call("b__get", "{}");
    cr_assert_eq(a->done, 1);
    cr_expect_null(a->result);
    answers_dispose();
}

Test(tool_cache, the_leaders_progress_reaches_its_caller) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, false);
    P.mode = "hold";
    answer_t *a = call_opts("b__get", "{}", "{\"progressToken\": \"outer\"}", false);
    cr_assert_eq(P.nheld, 1);
    nx_mcp_call_progress(P.held[0], 1, 2, "half");
    cr_assert_eq(json_array_size(a->notes), 1);
    json_t *p = json_array_get(json_array_get(a->notes, 0), 1);
    cr_expect_str_eq(json_string_value(json_object_get(p, "progressToken")), "outer");
    cr_expect_eq(json_integer_value(json_object_get(p, "progress")), 1);
    release(0, "ok");
    expect_ok(a, 1, NULL);
    answers_dispose();
}

Test(tool_cache, passes_through_without_a_shard_cache) {
    install(json_pack("{s:i}", "b__get", 100), NULL, 0, false, false);
    nx_cache_t *c = es.cache;
    es.cache = NULL;
    expect_ok(call("b__get", "{}"), 1, NULL);
    expect_ok(call("b__get", "{}"), 2, NULL);
    t_current_shard = NULL; /* off the shards */
    es.cache = c;
    expect_ok(call("b__get", "{}"), 3, NULL);
    t_current_shard = &es;
    /* unknown tools are still unknown; lists go to the backend */
    answer_t *u = call("nobody", "{}");
    cr_expect_eq(json_integer_value(json_object_get(u->error, "code")), NX_RPC_INVALID_PARAMS);
    answer_t *l = &answers[nanswers++];
    memset(l, 0, sizeof(*l));
    nx_invoke_t *inv = NULL;
    nx_invoke(engine.mcp, "tools/list", NULL, NULL, on_done, l, &inv);
    cr_expect_eq(l->done, 1);
    cr_expect_eq(P.lists, 1);
    answers_dispose();
}

Test(tool_cache, install_without_ttls_installs_nothing) {
    nx_tool_cache_t *none = (nx_tool_cache_t *)1;
    cr_assert_eq(nx_tool_cache_install(engine.mcp, json_object(), NULL, 0, true, true, &none), 0);
    cr_expect_null(none);
    nx_mcp_provider_t p;
    void *arg;
    nx_mcp_server_get_provider(engine.mcp, &p, &arg);
    cr_expect_eq(p.call, backend_call, "the backends' provider is left alone");
    nx_tool_cache_free(NULL);
}
