/* Tests for engine/workflow_def.c: `workflows:` loaded through nx_config_load_string (so lines
 * are real) into the right tree for every step kind, the defaults, every definition error with
 * its file:line and path, the order rules of steps.<id> references, federated tool names,
 * describe, JSON export, and the sharing of the definitions between configuration copies. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"
#include "nexus/app.h"
#include "nexus/errors.h"
#include "workflow.h"

/* ---- helpers ---- */

/* Five lines of backends every document starts with: two MCP backends (news prefixed, raw
 * not), a rest backend and a disabled one. */
#define SERVERS                                                                                    \
    "servers:\n"                                                                                   \
    "  - {name: news, transport: http, url: 'http://127.0.0.1:3001/mcp'}\n"                        \
    "  - {name: raw, transport: http, url: 'http://127.0.0.1:3002/mcp', prefix: false}\n"          \
    "  - {name: billing, transport: rest, url: 'http://127.0.0.1:8080/api'}\n"                     \
    "  - {name: off, transport: http, url: 'http://127.0.0.1:3003/mcp', enabled: false}\n"

/* The file line of line <n> after SERVERS. */
#define L(n) (5 + (n))

/* One workflow "w" whose steps follow, the first of them on line L(4). */
#define HEAD SERVERS "workflows:\n  - name: w\n    steps:\n"

static int load(nx_config_t *c, const char *text, nx_config_error_t *err) {
    nx_config_defaults(c);
    memset(err, 0, sizeof(*err));
    return nx_config_load_string(c, "nexus.yaml", text, strlen(text), err);
}

static void load_ok(nx_config_t *c, const char *text) {
    nx_config_error_t err;
    int rc = load(c, text, &err);
    cr_assert_eq(rc, 0, "unexpected error: %s:%d: %s: %s\nfor:\n%s", err.file, err.line, err.key,
                 err.message, text);
}

/* Loads <text> and expects an error at <line> and <key> whose message contains <msg>. */
static void expect_error(const char *text, int line, const char *key, const char *msg) {
    nx_config_t c;
    nx_config_error_t err;
    int rc = load(&c, text, &err);
    if (rc == 0) nx_config_dispose(&c);
    cr_assert_eq(rc, NX_ECONFIG, "expected an error for:\n%s", text);
    cr_expect_str_eq(err.file, "nexus.yaml");
    cr_expect_eq(err.line, line, "line %d, expected %d (%s: %s)", err.line, line, err.key,
                 err.message);
    cr_expect_str_eq(err.key, key, "key '%s', expected '%s' (%s)", err.key, key, err.message);
    cr_expect(strstr(err.message, msg) != NULL, "message '%s' lacks '%s'", err.message, msg);
}

static const nx_workflow_t *only(const nx_config_t *c) {
    cr_assert_not_null(c->workflows);
    cr_assert_eq(c->workflows->count, 1);
    return c->workflows->items[0];
}

static const nx_step_t *step_by_id(const nx_workflow_t *wf, const char *id) {
    for (uint32_t i = 0; i < wf->step_count; i++)
        if (strcmp(wf->by_index[i]->id, id) == 0) return wf->by_index[i];
    cr_assert_fail("no step '%s'", id);
    return NULL;
}

/* Evaluates template <t> with an empty scope and returns the compact JSON text (caller frees). */
static char *eval_text(const nx_jtemplate_t *t, const char *scope_json) {
    char err[128];
    json_t *scope = json_loads(scope_json, 0, NULL);
    cr_assert_not_null(scope);
    json_t *v = nx_jtemplate_eval(t, scope, err, sizeof(err));
    json_decref(scope);
    cr_assert_not_null(v, "eval: %s", err);
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    return s;
}

/* ---- every kind ---- */

static const char *const full_doc =
    SERVERS "workflows:\n"                                                               /* 1 */
            "  - name: digest\n"                                                         /* 2 */
            "    description: Daily digest\n"                                            /* 3 */
            "    input:\n"                                                               /* 4 */
            "      type: object\n"                                                       /* 5 */
            "      properties: {topic: {type: string}}\n"                                /* 6 */
            "      required: [topic]\n"                                                  /* 7 */
            "    channels: [api, cli]\n"                                                 /* 8 */
            "    deadline: 30s\n"                                                        /* 9 */
            "    tool: make_digest\n"                                                    /* 10 */
            "    steps:\n"                                                               /* 11 */
            "      - id: fetch\n"                                                        /* 12 */
            "        call: news.search\n"                                                /* 13 */
            "        with: {q: \"${{ input.topic }}\", limit: 5}\n"                      /* 14 */
            "        timeout: 5s\n"                                                      /* 15 */
            "        retry: {attempts: 2, base: 10ms, cap: 100ms}\n"                     /* 16 */
            "        cache: 1m\n"                                                        /* 17 */
            "      - call: raw.echo\n"                                                   /* 18 */
            "        on_error: continue\n"                                               /* 19 */
            "      - call: now\n"                                                        /* 20 */
            "      - id: bill\n"                                                         /* 21 */
            "        call: billing\n"                                                    /* 22 */
            "        method: post\n"                                                     /* 23 */
            "        path: \"/invoices/${{ input.topic }}\"\n"                           /* 24 */
            "        query: {page: 1}\n"                                                 /* 25 */
            "        headers: {X-Trace: abc}\n"                                          /* 26 */
            "        with: {total: \"${{ steps.fetch.result.total }}\"}\n"               /* 27 */
            "        on_error: {value: {total: 0}}\n"                                    /* 28 */
            "      - id: fan\n"                                                          /* 29 */
            "        parallel:\n"                                                        /* 30 */
            "          - {id: a, call: news.search}\n"                                   /* 31 */
            "          - {id: b, call: news.search}\n"                                   /* 32 */
            "          - steps:\n"                                                       /* 33 */
            "              - {id: c1, call: news.search}\n"                              /* 34 */
            "        join: {quorum: 2}\n"                                                /* 35 */
            "        max_concurrency: 2\n"                                               /* 36 */
            "      - id: pick\n"                                                         /* 37 */
            "        switch:\n"                                                          /* 38 */
            "          - if: input.topic == 'x'\n"                                       /* 39 */
            "            steps: [{id: s1, call: now}]\n"                                 /* 40 */
            "          - elif: \"${{ steps.fan.result.a }}\"\n"                          /* 41 */
            "            steps: [{id: s2, call: now}]\n"                                 /* 42 */
            "          - else: [{id: s3, call: now}]\n"                                  /* 43 */
            "      - id: each\n"                                                         /* 44 */
            "        map:\n"                                                             /* 45 */
            "          items: ${{ steps.fetch.result.items }}\n"                         /* 46 */
            "          concurrency: 4\n"                                                 /* 47 */
            "          batch_size: 10\n"                                                 /* 48 */
            "          steps:\n"                                                         /* 49 */
            "            - {id: m1, call: news.search, with: {q: \"${{ item }}\"}}\n"    /* 50 */
            "      - id: alt\n"                                                          /* 51 */
            "        fallback:\n"                                                        /* 52 */
            "          - {id: f1, call: news.search}\n"                                  /* 53 */
            "          - {id: f2, call: now}\n"                                          /* 54 */
            "      - steps:\n"                                                           /* 55 */
            "          - {id: g1, call: now, if: \"steps.alt.status == 'succeeded'\"}\n" /* 56 */
            "    output: {summary: \"${{ steps.m1.result }}\", n: \"${{ steps.g1.result }}\"}\n";

Test(workflow_parse, every_step_kind_lands_in_the_tree) {
    nx_config_t c;
    load_ok(&c, full_doc);
    const nx_workflow_t *wf = only(&c);
    cr_expect_str_eq(wf->name, "digest");
    cr_expect_str_eq(wf->description, "Daily digest");
    cr_expect_str_eq(wf->tool_name, "make_digest");
    cr_expect_eq(wf->line, L(2));
    cr_expect_eq(wf->channels, NX_WF_CHANNEL_API | NX_WF_CHANNEL_CLI);
    cr_expect_eq(wf->deadline_ms, 30000);
    cr_expect_not_null(wf->validator);
    cr_expect_not_null(wf->output);
    cr_assert_eq(wf->steps.count, 9);
    cr_assert_eq(wf->step_count, 20);
    for (uint32_t i = 0; i < wf->step_count; i++)
        cr_expect_eq(wf->by_index[i]->index, i);

    /* Index is depth first: a step, then its children, then its next sibling. */
    static const char *const order[] = {
        "fetch", "call_2", "call_3", "bill", "fan", "a",   "b",  "group_8", "c1",       "pick",
        "s1",    "s2",     "s3",     "each", "m1",  "alt", "f1", "f2",      "group_19", "g1"};
    for (uint32_t i = 0; i < 20; i++)
        cr_expect_str_eq(wf->by_index[i]->id, order[i], "index %u", i);

    const nx_step_t *s = step_by_id(wf, "fetch");
    cr_expect_eq(s->kind, NX_STEP_CALL);
    cr_expect_str_eq(s->server, "news");
    cr_expect_str_eq(s->tool, "news__search");
    cr_expect_str_eq(s->target, "news.search");
    cr_expect_str_eq(s->path, "workflows[0].steps[0]");
    cr_expect_eq(s->line, L(12));
    cr_expect_eq(s->timeout_ms, 5000);
    cr_expect(s->has_retry);
    cr_expect_eq(s->retry.max_attempts, 2);
    cr_expect_eq(s->retry.base_ms, 10);
    cr_expect_eq(s->retry.cap_ms, 100);
    cr_expect_eq(s->cache_ttl_ms, 60000);
    cr_expect_eq(s->on_error, NX_ON_ERROR_FAIL);
    char *with = eval_text(s->with, "{\"input\": {\"topic\": \"rust\"}}");
    cr_expect_str_eq(with, "{\"limit\":5,\"q\":\"rust\"}");
    free(with);

    s = step_by_id(wf, "call_2");
    cr_expect_eq(s->kind, NX_STEP_CALL);
    cr_expect_str_eq(s->tool, "echo"); /* prefix: false */
    cr_expect_eq(s->on_error, NX_ON_ERROR_CONTINUE);
    cr_expect_null(s->with);

    s = step_by_id(wf, "call_3");
    cr_expect_eq(s->kind, NX_STEP_CALL);
    cr_expect_null(s->server); /* native */
    cr_expect_str_eq(s->tool, "now");

    s = step_by_id(wf, "bill");
    cr_expect_eq(s->kind, NX_STEP_REST);
    cr_expect_str_eq(s->server, "billing");
    cr_expect_null(s->tool);
    cr_expect_str_eq(s->method, "POST");
    json_t *scope = json_pack("{s:{s:s}}", "input", "topic", "a b");
    char err[128];
    json_t *p = nx_expr_eval(s->rest_path, scope, err, sizeof(err));
    cr_expect_str_eq(json_string_value(p), "/invoices/a b");
    json_decref(p);
    json_decref(scope);
    char *q = eval_text(s->query, "{}"), *h = eval_text(s->headers, "{}");
    cr_expect_str_eq(q, "{\"page\":1}");
    cr_expect_str_eq(h, "{\"X-Trace\":\"abc\"}");
    free(q);
    free(h);
    cr_expect_eq(s->on_error, NX_ON_ERROR_VALUE);
    char *v = eval_text(s->on_error_value, "{}");
    cr_expect_str_eq(v, "{\"total\":0}");
    free(v);

    s = step_by_id(wf, "fan");
    cr_expect_eq(s->kind, NX_STEP_PARALLEL);
    cr_expect_eq(s->children.count, 3);
    cr_expect_eq(s->join, NX_JOIN_QUORUM);
    cr_expect_eq(s->quorum, 2);
    cr_expect_eq(s->max_concurrency, 2);
    cr_expect_eq(s->children.items[2]->kind, NX_STEP_GROUP);
    cr_expect_str_eq(s->children.items[2]->children.items[0]->id, "c1");
    cr_expect_str_eq(s->children.items[2]->children.items[0]->path,
                     "workflows[0].steps[4].parallel[2].steps[0]");

    s = step_by_id(wf, "pick");
    cr_expect_eq(s->kind, NX_STEP_SWITCH);
    cr_assert_eq(s->case_count, 3);
    cr_expect_not_null(s->cases[0].cond);
    cr_expect_not_null(s->cases[1].cond);
    cr_expect_null(s->cases[2].cond);
    cr_expect_str_eq(s->cases[2].steps.items[0]->id, "s3");

    s = step_by_id(wf, "each");
    cr_expect_eq(s->kind, NX_STEP_MAP);
    cr_expect_not_null(s->items);
    cr_expect_eq(s->max_concurrency, 4);
    cr_expect_eq(s->batch_size, 10);
    cr_expect_eq(s->children.count, 1);

    s = step_by_id(wf, "alt");
    cr_expect_eq(s->kind, NX_STEP_FALLBACK);
    cr_expect_eq(s->children.count, 2);

    s = step_by_id(wf, "group_19");
    cr_expect_eq(s->kind, NX_STEP_GROUP);
    cr_expect_not_null(s->children.items[0]->cond);

    cr_expect_eq(nx_workflows_find(c.workflows, "digest"), wf);
    cr_expect_null(nx_workflows_find(c.workflows, "nope"));
    cr_expect_eq(nx_workflows_find_tool(c.workflows, "make_digest"), wf);
    cr_expect_null(nx_workflows_find_tool(c.workflows, "workflow_digest"));
    nx_config_dispose(&c);
}

Test(workflow_parse, defaults) {
    nx_config_t c;
    load_ok(&c, HEAD "      - call: billing\n"
                     "      - map: {items: [1, 2], steps: [{call: now}]}\n"
                     "      - parallel: [{call: now}]\n");
    const nx_workflow_t *wf = only(&c);
    cr_expect_null(wf->description);
    cr_expect_str_eq(wf->tool_name, "workflow_w");
    cr_expect_eq(wf->channels, NX_WF_CHANNEL_ALL);
    cr_expect_eq(wf->deadline_ms, 60000);
    cr_expect_null(wf->output);
    char *schema = json_dumps(wf->input_schema, JSON_COMPACT);
    cr_expect_str_eq(schema, "{\"type\":\"object\"}");
    free(schema);
    cr_expect_not_null(wf->validator);

    const nx_step_t *rest = wf->by_index[0];
    cr_expect_str_eq(rest->id, "rest_1");
    cr_expect_str_eq(rest->method, "GET");
    cr_expect_not_null(rest->rest_path);
    cr_expect(nx_expr_is_literal(rest->rest_path));
    cr_expect_null(rest->with);
    cr_expect_null(rest->query);
    cr_expect_null(rest->headers);
    cr_expect_null(rest->cond);
    cr_expect_eq(rest->timeout_ms, 0);
    cr_expect(!rest->has_retry);
    cr_expect_eq(rest->cache_ttl_ms, 0);
    cr_expect_eq(rest->on_error, NX_ON_ERROR_FAIL);

    const nx_step_t *map = wf->by_index[1];
    cr_expect_str_eq(map->id, "map_2");
    cr_expect_eq(map->max_concurrency, 1);
    cr_expect_eq(map->batch_size, 0);
    char err[64];
    json_t *scope = json_object(), *want = json_pack("[i,i]", 1, 2);
    json_t *items = nx_expr_eval(map->items, scope, err, sizeof(err));
    cr_expect(json_equal(items, want), "a sequence written out is a literal list");
    json_decref(items);
    json_decref(want);
    json_decref(scope);
    cr_expect_str_eq(wf->by_index[2]->id, "call_3");

    const nx_step_t *par = wf->by_index[3];
    cr_expect_str_eq(par->id, "parallel_4");
    cr_expect_eq(par->join, NX_JOIN_ALL);
    cr_expect_eq(par->max_concurrency, 0);
    nx_config_dispose(&c);
}

Test(workflow_parse, retry_keys_written_alone_and_join_any) {
    nx_config_t c;
    load_ok(&c, HEAD "      - call: now\n"
                     "        retry: {base: 1s}\n"
                     "      - parallel: [{call: now}, {call: now}]\n"
                     "        join: any\n");
    const nx_workflow_t *wf = only(&c);
    cr_expect_eq(wf->by_index[0]->retry.max_attempts, 3);
    cr_expect_eq(wf->by_index[0]->retry.base_ms, 1000);
    cr_expect_eq(wf->by_index[0]->retry.cap_ms, 1000); /* the cap follows the base */
    cr_expect_eq(wf->by_index[1]->join, NX_JOIN_ANY);
    nx_config_dispose(&c);
}

Test(workflow_parse, empty_or_absent_workflows_are_none) {
    nx_config_t c;
    load_ok(&c, SERVERS);
    cr_expect_null(c.workflows);
    nx_config_dispose(&c);
    load_ok(&c, SERVERS "workflows:\n");
    cr_expect_null(c.workflows);
    nx_config_dispose(&c);
    load_ok(&c, SERVERS "workflows: []\n");
    cr_expect_null(c.workflows);
    nx_config_dispose(&c);
}

Test(workflow_parse, workflows_may_come_before_servers) {
    nx_config_t c;
    load_ok(&c, "workflows:\n"
                "  - {name: w, steps: [{call: news.search}, {call: billing}]}\n" SERVERS);
    cr_expect_eq(only(&c)->by_index[0]->kind, NX_STEP_CALL);
    cr_expect_eq(only(&c)->by_index[1]->kind, NX_STEP_REST);
    nx_config_dispose(&c);
}

Test(workflow_parse, a_json_document_works_too) {
    nx_config_t c;
    load_ok(&c, "{\"servers\": [{\"name\": \"news\", \"transport\": \"http\", \"url\": "
                "\"http://127.0.0.1:1/mcp\"}],\n"
                " \"workflows\": [{\"name\": \"j\", \"steps\": [{\"call\": \"news.search\", "
                "\"with\": {\"n\": 1, \"s\": \"${{ input.s }}\", \"b\": true}}]}]}\n");
    char *with = eval_text(only(&c)->by_index[0]->with, "{\"input\": {\"s\": \"x\"}}");
    cr_expect_str_eq(with, "{\"b\":true,\"n\":1,\"s\":\"x\"}");
    free(with);
    nx_config_dispose(&c);
}

Test(workflow_parse, yaml_scalars_become_json_values) {
    nx_config_t c;
    load_ok(&c, HEAD "      - call: news.search\n"
                     "        with: {a: 1, b: -2.5, c: true, d: ~, e: '1', f: \"true\", g: 1e3,\n"
                     "               h: 0x1F, i: yes, j: 99999999999999999999, k: [1, x]}\n");
    char *with = eval_text(only(&c)->by_index[0]->with, "{}");
    cr_expect_str_eq(with, "{\"a\":1,\"b\":-2.5,\"c\":true,\"d\":null,\"e\":\"1\",\"f\":\"true\","
                           "\"g\":1000.0,\"h\":\"0x1F\",\"i\":\"yes\",\"j\":1e20,\"k\":[1,\"x\"]}");
    free(with);
    nx_config_dispose(&c);
}

/* ---- federated names ---- */

Test(workflow_names, prefix_true_and_false_and_the_separator) {
    nx_config_t c;
    load_ok(&c, "federation: {separator: '--'}\n" HEAD "      - call: news.search.deep\n"
                "      - call: raw.search\n");
    cr_expect_str_eq(only(&c)->by_index[0]->tool, "news--search.deep");
    cr_expect_str_eq(only(&c)->by_index[0]->server, "news");
    cr_expect_str_eq(only(&c)->by_index[1]->tool, "search");
    cr_expect_str_eq(only(&c)->by_index[1]->server, "raw");
    nx_config_dispose(&c);
}

Test(workflow_names, a_separator_changed_later_is_caught_by_validate) {
    nx_config_t c;
    nx_config_error_t err;
    load_ok(&c, HEAD "      - call: raw.a\n"
                     "      - call: news.search\n");
    cr_assert_eq(nx_config_validate(&c, &err), 0, "%s", err.message);
    char *env[] = {"NEXUS_FEDERATION__SEPARATOR=--", NULL};
    cr_assert_eq(nx_config_apply_env(&c, env, &err), 0, "%s", err.message);
    cr_assert_eq(nx_config_validate(&c, &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, "nexus.yaml");
    cr_expect_eq(err.line, L(5));
    cr_expect_str_eq(err.key, "workflows[0].steps[1].call");
    cr_expect(strstr(err.message, "'news.search' now names the tool 'news--search', not "
                                  "'news__search'") != NULL,
              "%s", err.message);
    nx_config_dispose(&c);
}

/* ---- errors: structure ---- */

Test(workflow_errors, keys_and_kinds) {
    expect_error(SERVERS "workflows:\n  - name: w\n    stpes: []\n", L(3), "workflows[0].stpes",
                 "unknown key 'stpes'; did you mean 'steps'?");
    expect_error(HEAD "      - call: news.search\n        wiht: {}\n", L(5),
                 "workflows[0].steps[0].wiht", "unknown key 'wiht'; did you mean 'with'?");
    expect_error(HEAD "      - id: a\n        timeout: 1s\n", L(4), "workflows[0].steps[0]",
                 "a step needs one of call, parallel, switch, map, fallback or steps");
    expect_error(HEAD "      - call: news.search\n        steps: [{call: now}]\n", L(5),
                 "workflows[0].steps[0].steps", "'call' and 'steps' are both set");
    expect_error(HEAD "      - call\n", L(4), "workflows[0].steps[0]",
                 "expected a mapping, got 'call'");
    expect_error(HEAD "      - parallel: [{call: now}]\n        cache: 1s\n", L(5),
                 "workflows[0].steps[0].cache",
                 "'cache' is only for call steps (this is a parallel step)");
    expect_error(HEAD "      - call: now\n        join: any\n", L(5), "workflows[0].steps[0].join",
                 "'join' is only for parallel steps (this is a call step)");
    expect_error(SERVERS "workflows:\n  - steps: [{call: now}]\n", L(2), "workflows[0]",
                 "missing required key 'name'");
    expect_error(SERVERS "workflows:\n  - name: w\n", L(2), "workflows[0]",
                 "missing required key 'steps'");
    expect_error(SERVERS "workflows:\n  - name: w\n    steps: []\n", L(3), "workflows[0].steps",
                 "expected at least one step");
    expect_error(SERVERS "workflows: {w: 1}\n", L(1), "workflows",
                 "expected a sequence of workflows (- name: ...), got a mapping");
    expect_error(SERVERS "workflow:\n  - name: w\n", L(1), "workflow",
                 "unknown key 'workflow'; did you mean 'workflows'?");
}

Test(workflow_errors, names_ids_and_tools) {
    expect_error(SERVERS "workflows:\n  - {name: Big, steps: [{call: now}]}\n", L(2),
                 "workflows[0].name", "'Big' is not a valid workflow name");
    expect_error(HEAD "      - id: 'bad id'\n        call: now\n", L(4), "workflows[0].steps[0].id",
                 "'bad id' is not a valid step id (1 to 64 of A-Z a-z 0-9 _ -)");
    expect_error(HEAD "      - id: a\n"
                      "        call: now\n"
                      "      - parallel:\n"
                      "          - {id: a, call: now}\n",
                 L(7), "workflows[0].steps[1].parallel[0].id",
                 "duplicate step id 'a' (first used at workflows[0].steps[0], line 9)");
    expect_error(HEAD "      - call: now\n      - id: call_1\n        call: now\n", L(5),
                 "workflows[0].steps[1].id",
                 "step id 'call_1' is the id given to the step without one at "
                 "workflows[0].steps[0] (line 9)");
    expect_error(SERVERS "workflows:\n"
                         "  - {name: w, steps: [{call: now}]}\n"
                         "  - {name: w, steps: [{call: now}]}\n",
                 L(3), "workflows[1].name", "duplicate workflow name 'w' (workflows[0], line 7)");
    expect_error(SERVERS "workflows:\n"
                         "  - {name: a, tool: t, steps: [{call: now}]}\n"
                         "  - {name: b, tool: t, steps: [{call: now}]}\n",
                 L(3), "workflows[1].tool",
                 "tool 't' is already the tool of workflow 'a' (line 7)");
    expect_error(SERVERS "workflows:\n"
                         "  - {name: a, tool: workflow_b, steps: [{call: now}]}\n"
                         "  - {name: b, steps: [{call: now}]}\n",
                 L(3), "workflows[1].name",
                 "tool 'workflow_b' is already the tool of workflow 'a' (line 7) (its default "
                 "tool name; set tool:)");
    expect_error(SERVERS "workflows:\n  - {name: a, tool: health_check, steps: [{call: now}]}\n",
                 L(2), "workflows[0].tool", "tool 'health_check' is a built-in tool of nexus");
    expect_error(SERVERS "workflows:\n  - {name: a, tool: 'a b', steps: [{call: now}]}\n", L(2),
                 "workflows[0].tool", "'a b' is not a valid tool name");
}

Test(workflow_errors, calls_and_backends) {
    expect_error(HEAD "      - call: newz.search\n", L(4), "workflows[0].steps[0].call",
                 "no backend 'newz' (did you mean 'news'?)");
    expect_error(HEAD "      - call: billing.get\n", L(4), "workflows[0].steps[0].call",
                 "backend 'billing' uses transport rest");
    expect_error(HEAD "      - call: news\n", L(4), "workflows[0].steps[0].call",
                 "'news' is an MCP backend (transport http); name one of its tools: news.<tool>");
    expect_error(HEAD "      - call: off.search\n", L(4), "workflows[0].steps[0].call",
                 "backend 'off' is disabled (enabled: false)");
    expect_error(HEAD "      - call: biling\n", L(4), "workflows[0].steps[0].call",
                 "no rest backend or native tool 'biling' (did you mean 'billing'?)");
    expect_error(HEAD "      - call: news.\n", L(4), "workflows[0].steps[0].call",
                 "'' is not a tool name");
    expect_error(HEAD "      - call: news.search\n        method: POST\n", L(5),
                 "workflows[0].steps[0].method",
                 "'method' is only for calls to a rest backend ('news.search' is a tool of an "
                 "MCP backend)");
    expect_error(HEAD "      - call: now\n        headers: {a: b}\n", L(5),
                 "workflows[0].steps[0].headers", "('now' is a native tool)");
    expect_error(HEAD "      - call: billing\n        method: FETCH\n", L(5),
                 "workflows[0].steps[0].method", "expected GET, POST, PUT, PATCH or DELETE");
    expect_error(HEAD "      - call: billing\n        path: invoices\n", L(5),
                 "workflows[0].steps[0].path", "must start with '/'");
    expect_error(HEAD "      - call: billing\n        headers: {Host: x}\n", L(5),
                 "workflows[0].steps[0].headers.Host", "'Host' is set by nexus itself");
    expect_error(HEAD "      - call: billing\n        query: {a: [1]}\n", L(5),
                 "workflows[0].steps[0].query.a", "expected a single value, got a sequence");
    expect_error(HEAD "      - call: news.search\n        with: [1]\n", L(5),
                 "workflows[0].steps[0].with", "expected a mapping of arguments");
}

Test(workflow_errors, numbers_and_durations) {
    expect_error(HEAD "      - parallel: [{call: now}, {call: now}]\n        join: {quorum: 3}\n",
                 L(5), "workflows[0].steps[0].join.quorum", "'3' is out of range (1..2)");
    expect_error(HEAD "      - parallel: [{call: now}]\n        join: most\n", L(5),
                 "workflows[0].steps[0].join", "expected all, any or {quorum: N}, got 'most'");
    expect_error(HEAD "      - parallel: [{call: now}]\n        max_concurrency: 0\n", L(5),
                 "workflows[0].steps[0].max_concurrency", "'0' is out of range (1..1024)");
    expect_error(HEAD "      - map: {items: [1], steps: [{call: now}], concurrency: 2000}\n", L(4),
                 "workflows[0].steps[0].map.concurrency", "'2000' is out of range (1..1024)");
    expect_error(HEAD "      - map: {items: [1], steps: [{call: now}], batch_size: 0}\n", L(4),
                 "workflows[0].steps[0].map.batch_size", "'0' is out of range (1..10000)");
    expect_error(HEAD "      - call: now\n        timeout: soon\n", L(5),
                 "workflows[0].steps[0].timeout", "expected a duration");
    expect_error(HEAD "      - call: now\n        timeout: 25h\n", L(5),
                 "workflows[0].steps[0].timeout", "out of range (1ms..24h)");
    expect_error(HEAD "      - call: now\n        retry: {attempts: 11}\n", L(5),
                 "workflows[0].steps[0].retry.attempts", "'11' is out of range (1..10)");
    expect_error(HEAD "      - call: now\n        retry: {base: 2s, cap: 1s}\n", L(5),
                 "workflows[0].steps[0].retry.base", "2000ms must not exceed cap (1000ms)");
    expect_error(HEAD "      - call: now\n        retry: {tries: 2}\n", L(5),
                 "workflows[0].steps[0].retry.tries", "unknown key 'tries'");
    expect_error(HEAD "      - call: now\n        cache: forever\n", L(5),
                 "workflows[0].steps[0].cache", "expected a duration");
    expect_error(SERVERS "workflows:\n  - {name: w, deadline: 25h, steps: [{call: now}]}\n", L(2),
                 "workflows[0].deadline", "'25h' is out of range (1ms..24h)");
    expect_error(SERVERS "workflows:\n  - {name: w, deadline: 0, steps: [{call: now}]}\n", L(2),
                 "workflows[0].deadline", "'0' is out of range (1ms..24h)");
}

Test(workflow_errors, channels_input_on_error_and_switch) {
    expect_error(SERVERS "workflows:\n  - {name: w, channels: [], steps: [{call: now}]}\n", L(2),
                 "workflows[0].channels",
                 "expected a sequence of api, mcp and cli, got an empty one");
    expect_error(SERVERS "workflows:\n  - {name: w, channels: [api, web], steps: [{call: now}]}\n",
                 L(2), "workflows[0].channels[1]", "expected api, mcp or cli, got 'web'");
    expect_error(SERVERS "workflows:\n  - {name: w, channels: [api, api], steps: [{call: now}]}\n",
                 L(2), "workflows[0].channels[1]", "'api' is listed twice");
    expect_error(SERVERS "workflows:\n"
                         "  - name: w\n"
                         "    input:\n"
                         "      type: array\n"
                         "    steps: [{call: now}]\n",
                 L(4), "workflows[0].input.type", "the input schema must have type: object");
    expect_error(SERVERS "workflows:\n"
                         "  - name: w\n"
                         "    input:\n"
                         "      type: object\n"
                         "      properties:\n"
                         "        a: {minimum: x}\n"
                         "    steps: [{call: now}]\n",
                 L(6), "workflows[0].input.properties.a.minimum", "invalid JSON Schema");
    expect_error(HEAD "      - call: now\n        on_error: ignore\n", L(5),
                 "workflows[0].steps[0].on_error",
                 "expected fail, continue or {value: ...}, got 'ignore'");
    expect_error(HEAD "      - call: now\n        on_error: {val: 1}\n", L(5),
                 "workflows[0].steps[0].on_error.val", "did you mean 'value'?");
    expect_error(HEAD "      - switch:\n"
                      "          - else: [{call: now}]\n"
                      "          - if: input.a\n"
                      "            steps: [{call: now}]\n",
                 L(6), "workflows[0].steps[0].switch[1]", "comes after else: and would never run");
    expect_error(HEAD "      - switch:\n"
                      "          - elif: input.a\n"
                      "            steps: [{call: now}]\n",
                 L(5), "workflows[0].steps[0].switch[0].elif", "the first case says if:");
    expect_error(HEAD "      - switch:\n"
                      "          - steps: [{call: now}]\n",
                 L(5), "workflows[0].steps[0].switch[0]", "a case needs if:, elif: or else:");
    expect_error(HEAD "      - switch: []\n", L(4), "workflows[0].steps[0].switch",
                 "expected a sequence of cases");
    expect_error(HEAD "      - map: {steps: [{call: now}]}\n", L(4), "workflows[0].steps[0].map",
                 "missing required key 'items'");
    expect_error(HEAD "      - map: {items: {a: 1}, steps: [{call: now}]}\n", L(4),
                 "workflows[0].steps[0].map.items", "expected an expression giving an array");
}

/* ---- errors: expressions ---- */

/* The column nx_expr_compile reports for <text>. */
static size_t column_of(const char *text) {
    nx_expr_t *e = NULL;
    nx_expr_error_t err;
    cr_assert_neq(nx_expr_compile(text, strlen(text), &e, &err), 0);
    return err.offset + 1;
}

Test(workflow_errors, expression_syntax_names_the_path_and_column) {
    char want[64];
    snprintf(want, sizeof(want), "expression error at column %zu:", column_of("${{ input.a + }}"));
    expect_error(HEAD "      - call: news.search\n        with: {q: \"${{ input.a + }}\"}\n", L(5),
                 "workflows[0].steps[0].with.q", want);
    snprintf(want, sizeof(want),
             "expression error at column %zu:", column_of("x ${{ lenght(input.a) }}"));
    expect_error(HEAD "      - call: now\n"
                      "      - call: now\n"
                      "      - parallel:\n"
                      "          - call: now\n"
                      "          - call: news.search\n"
                      "            with:\n"
                      "              q: \"x ${{ lenght(input.a) }}\"\n",
                 L(10), "workflows[0].steps[2].parallel[1].with.q", want);
    expect_error(HEAD "      - call: now\n        if: \"input.a ==\"\n", L(5),
                 "workflows[0].steps[0].if", "expression error at column");
    expect_error(HEAD "      - call: billing\n        headers: {X-A: \"${{ (\"}\n", L(5),
                 "workflows[0].steps[0].headers.X-A", "expression error at column");
    expect_error(HEAD "      - call: now\n        on_error: {value: {a: [\"${{ ) }}\"]}}\n", L(5),
                 "workflows[0].steps[0].on_error.value.a[0]", "expression error at column");
    expect_error(SERVERS "workflows:\n"
                         "  - name: w\n"
                         "    steps: [{call: now}]\n"
                         "    output: {a: \"${{ steps. }}\"}\n",
                 L(4), "workflows[0].output.a", "expression error at column");
}

Test(workflow_errors, unknown_names_in_expressions) {
    expect_error(HEAD "      - id: fetch\n"
                      "        call: now\n"
                      "      - call: now\n"
                      "        if: steps.fecth.status == 'succeeded'\n",
                 L(7), "workflows[0].steps[1].if",
                 "steps.fecth: no step has the id 'fecth' (did you mean 'fetch'?)");
    expect_error(HEAD "      - call: news.search\n        with: {q: \"${{ foo.bar }}\"}\n", L(5),
                 "workflows[0].steps[0].with.q",
                 "reads a name that is not input, steps, item, index or session");
    expect_error(HEAD "      - call: news.search\n        with: {q: \"${{ item }}\"}\n", L(5),
                 "workflows[0].steps[0].with.q",
                 "item and index exist only inside the steps of a map");
    expect_error(HEAD "      - map: {items: \"${{ index }}\", steps: [{call: now}]}\n", L(4),
                 "workflows[0].steps[0].map.items", "item and index exist only inside");
    expect_error(SERVERS "workflows:\n"
                         "  - name: w\n"
                         "    steps: [{call: now}]\n"
                         "    output: \"${{ item }}\"\n",
                 L(4), "workflows[0].output", "item and index exist only inside");
}

/* ---- the order of references ---- */

Test(workflow_refs, a_later_step_is_an_error) {
    expect_error(HEAD "      - id: a\n"
                      "        call: news.search\n"
                      "        with: {q: \"${{ steps.b.result }}\"}\n"
                      "      - id: b\n"
                      "        call: news.search\n",
                 L(6), "workflows[0].steps[0].with.q",
                 "steps.b: step 'b' (line 12) runs after this step");
}

Test(workflow_refs, the_step_itself_is_an_error) {
    expect_error(HEAD "      - id: a\n"
                      "        call: now\n"
                      "        if: steps.a.status != 'failed'\n",
                 L(6), "workflows[0].steps[0].if",
                 "steps.a: step 'a' (line 9) is this step itself");
}

Test(workflow_refs, an_enclosing_step_is_an_error) {
    expect_error(HEAD "      - id: p\n"
                      "        parallel:\n"
                      "          - steps:\n"
                      "              - call: news.search\n"
                      "                with: {q: \"${{ steps.p.result }}\"}\n",
                 L(8), "workflows[0].steps[0].parallel[0].steps[0].with.q",
                 "steps.p: step 'p' (line 9) encloses this step");
}

Test(workflow_refs, a_step_inside_is_an_error) {
    expect_error(HEAD "      - id: g\n"
                      "        if: steps.inner.result\n"
                      "        steps:\n"
                      "          - {id: inner, call: now}\n",
                 L(5), "workflows[0].steps[0].if",
                 "steps.inner: step 'inner' (line 12) is inside this step");
}

Test(workflow_refs, a_sibling_branch_of_a_parallel_is_an_error) {
    expect_error(HEAD "      - parallel:\n"
                      "          - {id: a, call: now}\n"
                      "          - steps:\n"
                      "              - call: news.search\n"
                      "                with: {q: \"${{ steps.a.result }}\"}\n",
                 L(8), "workflows[0].steps[0].parallel[1].steps[0].with.q",
                 "steps.a: step 'a' (line 10) is in another branch of the same parallel");
}

Test(workflow_refs, another_case_of_a_switch_is_an_error) {
    expect_error(HEAD "      - switch:\n"
                      "          - if: input.a\n"
                      "            steps: [{id: a, call: now}]\n"
                      "          - else:\n"
                      "              - {call: now, if: steps.a.result}\n",
                 L(8), "workflows[0].steps[0].switch[1].else[0].if",
                 "is in another case of the same switch");
}

/* A cycle (a reads b, b reads a) cannot pass: whichever runs first reads one that runs after. */
Test(workflow_refs, a_cycle_is_reported_at_the_earlier_step) {
    expect_error(HEAD "      - id: a\n"
                      "        call: news.search\n"
                      "        with: {q: \"${{ steps.b.result }}\"}\n"
                      "      - id: b\n"
                      "        call: news.search\n"
                      "        with: {q: \"${{ steps.a.result }}\"}\n",
                 L(6), "workflows[0].steps[0].with.q", "step 'b' (line 12) runs after this step");
    /* The same across levels: a group reading a step that reads the group. */
    expect_error(HEAD "      - id: g\n"
                      "        steps: [{id: x, call: now, if: steps.y.result}]\n"
                      "      - id: y\n"
                      "        call: now\n"
                      "        if: steps.g.result\n",
                 L(5), "workflows[0].steps[0].steps[0].if", "step 'y' (line 11) runs after");
}

Test(workflow_refs, steps_that_finished_are_fine) {
    nx_config_t c;
    load_ok(&c, HEAD "      - {id: first, call: news.search}\n"
                     /* earlier sibling */
                     "      - {id: second, call: now, if: steps.first.status == 'succeeded'}\n"
                     /* an earlier step of an enclosing list, from inside a parallel branch */
                     "      - parallel:\n"
                     "          - steps:\n"
                     "              - {id: deep, call: news.search,\n"
                     "                 with: {q: \"${{ steps.first.result }}\"}}\n"
                     "              - {call: now, if: steps.deep.result}\n"
                     "          - {call: now, if: steps.second.result}\n"
                     /* a step inside an earlier sibling */
                     "      - {id: after, call: now, if: steps.deep.result}\n"
                     /* an earlier alternative of a fallback has finished (failed) */
                     "      - fallback:\n"
                     "          - {id: alt1, call: news.search}\n"
                     "          - {call: now, if: steps.alt1.error}\n"
                     /* item and index inside a map, at any depth */
                     "      - map:\n"
                     "          items: ${{ steps.first.result.list }}\n"
                     "          steps:\n"
                     "            - {id: it, call: news.search, with: {q: \"${{ item }}\"}}\n"
                     "            - steps:\n"
                     "                - {call: now, if: index > 0 && steps.it.result}\n"
                     /* a switch's conditions read earlier steps */
                     "      - switch:\n"
                     "          - if: steps.after.result\n"
                     "            steps: [{call: now}]\n"
                     "          - elif: session.user\n"
                     "            steps: []\n"
                     "    output:\n"
                     "      any: \"${{ steps.it.result }}\"\n"
                     "      last: \"${{ steps.switch_16.status }}\"\n");
    cr_expect_eq(only(&c)->step_count, 17);
    cr_expect_str_eq(only(&c)->by_index[15]->id, "switch_16");
    nx_config_dispose(&c);
}

/* ---- describe and JSON ---- */

Test(workflow_json, describe) {
    nx_config_t c;
    load_ok(&c, full_doc);
    json_t *d = nx_workflow_describe(only(&c));
    cr_assert_not_null(d);
    cr_expect_str_eq(json_string_value(json_object_get(d, "name")), "digest");
    cr_expect_str_eq(json_string_value(json_object_get(d, "description")), "Daily digest");
    cr_expect_str_eq(json_string_value(json_object_get(d, "tool")), "make_digest");
    cr_expect_eq(json_integer_value(json_object_get(d, "deadline_ms")), 30000);
    char *ch = json_dumps(json_object_get(d, "channels"), JSON_COMPACT);
    cr_expect_str_eq(ch, "[\"api\",\"cli\"]");
    free(ch);
    cr_expect(json_equal(json_object_get(d, "input_schema"), only(&c)->input_schema));
    json_t *steps = json_object_get(d, "steps");
    cr_assert_eq(json_array_size(steps), 9);
    json_t *fetch = json_array_get(steps, 0);
    cr_expect_str_eq(json_string_value(json_object_get(fetch, "id")), "fetch");
    cr_expect_str_eq(json_string_value(json_object_get(fetch, "kind")), "call");
    cr_expect_str_eq(json_string_value(json_object_get(fetch, "server")), "news");
    cr_expect_str_eq(json_string_value(json_object_get(fetch, "tool")), "news__search");
    cr_expect_eq(json_integer_value(json_object_get(fetch, "timeout_ms")), 5000);
    cr_expect_eq(json_integer_value(json_object_get(fetch, "cache_ttl_ms")), 60000);
    json_t *native = json_array_get(steps, 2);
    cr_expect(json_is_null(json_object_get(native, "server")));
    json_t *bill = json_array_get(steps, 3);
    cr_expect_str_eq(json_string_value(json_object_get(bill, "kind")), "rest");
    cr_expect_str_eq(json_string_value(json_object_get(bill, "method")), "POST");
    cr_expect_str_eq(json_string_value(json_object_get(bill, "on_error")), "value");
    json_t *fan = json_array_get(steps, 4);
    cr_expect_str_eq(json_string_value(json_object_get(fan, "join")), "quorum");
    cr_expect_eq(json_integer_value(json_object_get(fan, "quorum")), 2);
    cr_expect_eq(json_array_size(json_object_get(fan, "branches")), 3);
    json_t *pick = json_array_get(steps, 5);
    cr_expect_eq(json_array_size(json_object_get(pick, "cases")), 3);
    cr_expect(
        json_is_true(json_object_get(json_array_get(json_object_get(pick, "cases"), 2), "else")));
    json_t *each = json_array_get(steps, 6);
    cr_expect_eq(json_integer_value(json_object_get(each, "batch_size")), 10);
    cr_expect_eq(json_integer_value(json_object_get(each, "concurrency")), 4);
    cr_expect_eq(json_array_size(json_object_get(json_array_get(steps, 7), "alternatives")), 2);
    json_t *g1 = json_array_get(json_object_get(json_array_get(steps, 8), "steps"), 0);
    cr_expect(json_is_true(json_object_get(g1, "conditional")));
    json_decref(d);
    nx_config_dispose(&c);

    cr_expect_str_eq(nx_step_kind_name(NX_STEP_CALL), "call");
    cr_expect_str_eq(nx_step_kind_name(NX_STEP_REST), "rest");
    cr_expect_str_eq(nx_step_kind_name(NX_STEP_GROUP), "group");
    cr_expect_str_eq(nx_step_kind_name((nx_step_kind_t)99), "unknown");
}

/* The configuration printed as JSON loads back to the same workflows. */
Test(workflow_json, config_to_json_loads_back) {
    nx_config_t c, back;
    nx_config_error_t err;
    load_ok(&c, full_doc);
    json_t *j = nx_config_to_json(&c);
    cr_assert_not_null(j);
    json_t *w = json_object_get(j, "workflows");
    cr_assert_eq(json_array_size(w), 1);
    json_t *first = json_array_get(json_object_get(json_array_get(w, 0), "steps"), 1);
    cr_expect_str_eq(json_string_value(json_object_get(first, "id")), "call_2");
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(w, 0), "deadline")), 30000);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    nx_config_defaults(&back);
    int rc = nx_config_load_string(&back, "status.json", text, strlen(text), &err);
    free(text);
    cr_assert_eq(rc, 0, "%s: %s", err.key, err.message);
    json_t *d1 = nx_workflow_describe(only(&c)), *d2 = nx_workflow_describe(only(&back));
    json_object_del(d1, "steps"); /* lines differ: the JSON is one line */
    json_object_del(d2, "steps");
    cr_expect(json_equal(d1, d2));
    cr_expect_eq(only(&back)->step_count, only(&c)->step_count);
    for (uint32_t i = 0; i < only(&c)->step_count; i++) {
        const nx_step_t *a = only(&c)->by_index[i], *b = only(&back)->by_index[i];
        cr_expect_str_eq(a->id, b->id);
        cr_expect_eq(a->kind, b->kind);
    }
    json_decref(d1);
    json_decref(d2);
    nx_config_dispose(&back);
    nx_config_dispose(&c);

    load_ok(&c, SERVERS);
    j = nx_config_to_json(&c);
    cr_expect_null(json_object_get(j, "workflows"));
    json_decref(j);
    nx_config_dispose(&c);
}

/* ---- sharing and replacing ---- */

Test(workflow_share, copies_share_one_set_by_reference) {
    nx_config_t a, b, d;
    load_ok(&a, HEAD "      - call: news.search\n");
    nx_workflows_t *w = a.workflows;
    cr_expect_eq(atomic_load(&w->refs), 1);
    cr_assert_eq(nx_config_copy(&b, &a), 0);
    cr_expect_eq(b.workflows, w);
    cr_expect_eq(atomic_load(&w->refs), 2);
    nx_config_dispose(&a);
    cr_expect_null(a.workflows);
    cr_expect_eq(atomic_load(&w->refs), 1);
    cr_expect_not_null(nx_workflows_find(b.workflows, "w"));
    nx_config_dispose(&a); /* a second dispose does nothing */

    /* Without servers the copy takes its reference on the short path. */
    load_ok(&a, "workflows:\n  - {name: n, steps: [{call: now}]}\n");
    cr_assert_eq(nx_config_copy(&d, &a), 0);
    cr_expect_eq(d.workflows, a.workflows);
    cr_expect_eq(atomic_load(&a.workflows->refs), 2);
    nx_config_dispose(&a);
    nx_config_dispose(&d);
    nx_config_dispose(&b); /* the last reference: ASan reports anything left */

    cr_expect_null(nx_workflows_ref(NULL));
    nx_workflows_unref(NULL);
}

Test(workflow_share, a_later_document_replaces_or_keeps_them) {
    nx_config_t c;
    nx_config_error_t err;
    load_ok(&c, HEAD "      - call: news.search\n");
    const char *next = SERVERS "workflows:\n  - {name: v, steps: [{call: now}]}\n";
    cr_assert_eq(nx_config_load_string(&c, "two.yaml", next, strlen(next), &err), 0);
    cr_expect_null(nx_workflows_find(c.workflows, "w"));
    cr_expect_not_null(nx_workflows_find(c.workflows, "v"));
    nx_workflows_t *kept = c.workflows;

    const char *other = "log: {level: debug}\n";
    cr_assert_eq(nx_config_load_string(&c, "three.yaml", other, strlen(other), &err), 0);
    cr_expect_eq(c.workflows, kept);

    const char *bad = "workflows:\n  - {name: x, steps: [{call: nope.tool}]}\n";
    cr_assert_eq(nx_config_load_string(&c, "bad.yaml", bad, strlen(bad), &err), NX_ECONFIG);
    cr_expect_str_eq(err.file, "bad.yaml");
    cr_expect_eq(c.workflows, kept); /* a failed load changes nothing */
    cr_expect_eq(atomic_load(&kept->refs), 1);

    /* A failure elsewhere in a document that also replaces the servers. */
    const char *bad2 = SERVERS "workflows:\n  - {name: x, steps: [{call: now}]}\nhttp: {x: 1}\n";
    cr_assert_eq(nx_config_load_string(&c, "bad2.yaml", bad2, strlen(bad2), &err), NX_ECONFIG);
    cr_expect_eq(c.workflows, kept);

    const char *none = "workflows: []\n";
    cr_assert_eq(nx_config_load_string(&c, "four.yaml", none, strlen(none), &err), 0);
    cr_expect_null(c.workflows);
    nx_config_dispose(&c);
}

/* ---- nexus check-config ---- */

/* Runs `nexus check-config <path>` in-process; its stderr goes to <out>. */
static int check_config(const char *path, char *out, size_t cap) {
    char tmpl[] = "/tmp/nx_wf_stderr_XXXXXX";
    int fd = mkstemp(tmpl);
    cr_assert_geq(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    char *argv[] = {"nexus", "check-config", (char *)path, NULL};
    int rc = nx_app_main(3, argv, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(tmpl);
    return rc;
}

Test(workflow_check_config, reports_workflow_errors_with_file_and_line) {
    char path[] = "/tmp/nx_wf_check_XXXXXX.yaml", out[2048], want[512];
    int fd = mkstemps(path, 5);
    cr_assert_geq(fd, 0);
    const char *doc = HEAD "      - call: newz.search\n";
    cr_assert_eq(write(fd, doc, strlen(doc)), (ssize_t)strlen(doc));
    close(fd);
    int rc = check_config(path, out, sizeof(out));
    unlink(path);
    cr_expect_eq(rc, 2);
    snprintf(want, sizeof(want),
             "nexus: configuration error: %s:%d: workflows[0].steps[0].call: no backend 'newz' "
             "(did you mean 'news'?)",
             path, L(4));
    cr_expect(strstr(out, want) != NULL, "stderr: %s\nwanted: %s", out, want);
}
