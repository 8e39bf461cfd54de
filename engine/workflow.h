/* Workflow (pipeline) definitions: what `workflows:` in the configuration declares, parsed and
 * checked at load into an immutable tree that every shard's executor reads.
 *
 * workflows:
 *   - name: digest                  # required: 1..64 of [a-z0-9_-], unique
 *     description: "Daily digest"   # shown by GET /api/workflows, the MCP tool, the CLI
 *     input:                        # JSON Schema of the inputs (default: any object); inputs
 *       type: object                #   are validated before anything runs
 *       properties: {topic: {type: string}}
 *       required: [topic]
 *     channels: [api, mcp, cli]     # where it may be started (default all three)
 *     deadline: 30s                 # the whole run; every call gets what is left (default 60s)
 *     tool: workflow_digest         # name of its MCP tool (default workflow_<name>)
 *     steps: [...]                  # run in order; see below
 *     output: {summary: "${{ steps.write.result }}"}   # default: the result of the last
 *                                   #   step that ran (skipped steps do not count)
 *
 * Every step is a mapping with exactly one kind key (call, parallel, switch, map, fallback,
 * steps) and these common keys:
 *   id: fetch          unique in the workflow: 1..64 of [A-Za-z0-9_-] (default: the kind and
 *                      the step's position, e.g. "call_2"); results are steps.<id>.*
 *   if: <expression>   the step runs only when true (bare or ${{ }}); else status "skipped"
 *   timeout: 5s        this step, retries included (default: what the deadline leaves)
 *   retry: {attempts: 3, base: 50ms, cap: 1s}   replaces the backend's retry policy for the
 *                      calls of this step (attempts 1 = no retry)
 *   cache: 60s         results of this step are cached for that long under the step's target
 *                      and canonical arguments (0 = never; call steps only)
 *   on_error: fail | continue | {value: <json template>}
 *                      fail (default) fails the workflow; continue records the error and goes
 *                      on (result null); value: the step succeeds with that value instead
 *
 * Kinds:
 *   call: server.tool      an MCP tool of backend <server> (its federated name follows the
 *                          server's prefix setting), or a native tool when there is no dot
 *     with: {...}          the tool's arguments (a JSON template; default {})
 *   call: billing          a backend whose transport is rest: an HTTP request
 *     method: POST         GET (default), POST, PUT, PATCH, DELETE
 *     path: /invoices/${{ input.id }}   appended to the backend URL's path (default "/")
 *     query: {page: 1}     added to the path as ?k=v (URL-encoded; templates)
 *     headers: {X-Trace: abc}   beyond the backend's own headers (templates)
 *     with: {...}          the JSON body (templates; none for GET/DELETE when absent)
 *   parallel: [step, ...]  branches (each one step, any kind) started together
 *     join: all | any | {quorum: N}   all (default) needs every branch; any the first success;
 *                          quorum the first N successes. Once decided, the others are cancelled.
 *     max_concurrency: 4   branches running at once (default all)
 *                          result: {branch_id: result} of the branches that succeeded (any:
 *                          the winner's result)
 *   switch: [{if: cond, steps: [...]}, {elif: cond, steps: [...]}, {else: [...]}]
 *                          the first case whose condition holds runs; result: its last step's
 *                          result; no case: status "skipped"
 *   map:
 *     items: ${{ input.urls }}   an array
 *     steps: [...]              run for each item (as `item`, position as `index`)
 *     concurrency: 4            iterations at once (default 1)
 *     batch_size: 10            when set, `item` is a batch: an array of up to that many items
 *                               (request batching); result: one entry per batch
 *                          result: the array of each iteration's last step result, in order
 *   fallback: [step, ...]  alternatives tried in order until one succeeds; result: the first
 *                          success's result (its id is in steps.<id>.result too)
 *   steps: [...]           a group run in order (useful as a branch or alternative); result:
 *                          its last step's result
 *
 * What a step records, readable as steps.<id>.<field> by the steps after it and in output:
 *   status       "succeeded", "failed", "skipped", "cancelled"
 *   result       the tool's structuredContent, else its text content (parsed as JSON when the
 *                whole text is JSON), the REST response body (JSON when it parses), the
 *                aggregate of a parallel/map/fallback/switch/group
 *   error        {message, code?, data?} when failed, or the error that on_error: {value}
 *                recovered from (the step then succeeded with that value); null otherwise
 *   cached       true when the result came from the cache (stale: also "stale": true)
 *   attempts     tries made (calls), 0 for steps that made none
 *   duration_ms  from start to end
 */
#ifndef NX_ENGINE_WORKFLOW_H
#define NX_ENGINE_WORKFLOW_H

#include "backoff.h"
#include "config.h"
#include "expr.h"
#include "jsonschema.h" /* nx_schema_t */

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum nx_step_kind {
    NX_STEP_CALL,     /* an MCP tool */
    NX_STEP_REST,     /* an HTTP request to a rest backend (written as call: too) */
    NX_STEP_PARALLEL, /* branches at once, joined */
    NX_STEP_SWITCH,   /* the first case whose condition holds */
    NX_STEP_MAP,      /* steps for each item (or batch) of a list */
    NX_STEP_FALLBACK, /* alternatives in order until one succeeds */
    NX_STEP_GROUP,    /* steps in order */
} nx_step_kind_t;

typedef enum nx_join {
    NX_JOIN_ALL,
    NX_JOIN_ANY,
    NX_JOIN_QUORUM,
} nx_join_t;

typedef enum nx_on_error {
    NX_ON_ERROR_FAIL,
    NX_ON_ERROR_CONTINUE,
    NX_ON_ERROR_VALUE,
} nx_on_error_t;

/* Channels a workflow may be started from (bit set). */
enum {
    NX_WF_CHANNEL_API = 1u << 0,
    NX_WF_CHANNEL_MCP = 1u << 1,
    NX_WF_CHANNEL_CLI = 1u << 2,
    NX_WF_CHANNEL_ALL = 7u,
};

typedef struct nx_step nx_step_t;

/* An ordered list of steps. */
typedef struct nx_step_list {
    nx_step_t **items;
    size_t count;
} nx_step_list_t;

/* One case of a switch: the condition (NULL for else) and its steps. */
typedef struct nx_switch_case {
    nx_expr_t *cond;
    nx_step_list_t steps;
} nx_switch_case_t;

struct nx_step {
    char *id;       /* given or generated; unique in the workflow */
    char *path;     /* where it is written: "workflows[0].steps[2].parallel[1]" */
    int line;       /* line of the step's mapping in the file */
    uint32_t index; /* 0-based position among every step of the workflow (depth first):
                       the executor's record slot */
    nx_step_kind_t kind;
    nx_expr_t *cond;     /* if:, NULL = always */
    uint32_t timeout_ms; /* 0 = what the deadline leaves */
    bool has_retry;
    nx_backoff_config_t retry;
    uint64_t cache_ttl_ms; /* 0 = not cached */
    nx_on_error_t on_error;
    nx_jtemplate_t *on_error_value; /* NX_ON_ERROR_VALUE */

    /* NX_STEP_CALL and NX_STEP_REST */
    char *target;         /* what call: says ("news.search", "billing", "now"): the tool name is
                             derived from it and the servers again when they change */
    char *server;         /* backend name; NULL for a native tool */
    char *tool;           /* NX_STEP_CALL: the name to call in nexus's catalog (federated
                             name, or native name) */
    nx_jtemplate_t *with; /* arguments / JSON body; NULL = {} (call) or none (rest) */
    char method[8];       /* NX_STEP_REST */
    nx_expr_t *rest_path; /* NX_STEP_REST: template of the path */
    nx_jtemplate_t *query, *headers; /* NX_STEP_REST; may be NULL */

    /* NX_STEP_PARALLEL: branches; NX_STEP_FALLBACK: alternatives; NX_STEP_GROUP and
     * NX_STEP_MAP: the body */
    nx_step_list_t children;
    nx_join_t join;
    uint32_t quorum;          /* NX_JOIN_QUORUM */
    uint32_t max_concurrency; /* parallel: 0 = all; map: concurrency (default 1) */

    /* NX_STEP_SWITCH */
    nx_switch_case_t *cases;
    size_t case_count;

    /* NX_STEP_MAP */
    nx_expr_t *items;
    uint32_t batch_size; /* 0 = one item per iteration */
};

typedef struct nx_workflow {
    char *name;
    char *description; /* may be NULL */
    char *tool_name;   /* the MCP tool: workflow_<name> unless configured */
    int line;
    json_t *input_schema;   /* as written ({"type": "object"} when absent) */
    nx_schema_t *validator; /* compiled input_schema */
    unsigned channels;      /* NX_WF_CHANNEL_* */
    uint32_t deadline_ms;
    nx_step_list_t steps;
    uint32_t step_count;    /* every step at any depth: the record slots */
    nx_step_t **by_index;   /* step_count entries, by nx_step_t.index */
    nx_jtemplate_t *output; /* NULL = the last step's result */
    json_t *source;         /* the entry as written, with the defaults and generated ids
                               filled in: what nx_config_to_json prints (it loads back) */
} nx_workflow_t;

/* Every workflow of a configuration: immutable once loaded, shared by reference between
 * configuration copies and shards. */
typedef struct nx_workflows {
    _Atomic int refs;
    nx_workflow_t **items;
    size_t count;
    char *file; /* the document they were read from, for errors found after the load */
} nx_workflows_t;

/** Parses the `workflows:` sequence <seq> of a configuration file, with the servers already
 *  parsed in <c> (for backend names, transports, prefixes and the separator) and the native
 *  tools <native_tools> (a NULL-terminated list of names; NULL = not known, unknown tools are
 *  then not reported, except a name one or two edits from a rest backend's: a typo).
 *  Returns 0 and a new set in <*out> (refs 1), or NX_ECONFIG with <err> naming file, line and
 *  path ("nexus.yaml:40: workflows[0].steps[1].call: no backend
 *  'newz' (did you mean 'news'?)"). Checks: unknown keys, kinds, ids (unique, well-formed),
 *  expressions (syntax; references to steps that are unknown or cannot have finished before
 *  the referring step: a later step, itself, an enclosing step, a sibling branch of a
 *  parallel), backends (exist, enabled, transport rest for HTTP requests and MCP otherwise),
 *  native tool names, numbers in range, the input schema (compiles). A null or empty <seq>
 *  gives 0 and NULL in <*out> (no workflows). */
int nx_workflows_parse(const nx_config_t *c, const nx_cfg_node_t *seq,
                       const char *const *native_tools, nx_workflows_t **out,
                       nx_config_error_t *err);
/** Takes a reference. NULL-safe. */
nx_workflows_t *nx_workflows_ref(nx_workflows_t *w);
/** Drops a reference; the last one frees everything. NULL-safe. */
void nx_workflows_unref(nx_workflows_t *w);
/** The workflow named <name>, or NULL. */
const nx_workflow_t *nx_workflows_find(const nx_workflows_t *w, const char *name);
/** The workflow whose MCP tool is <tool>, or NULL. */
const nx_workflow_t *nx_workflows_find_tool(const nx_workflows_t *w, const char *tool);
/** The name of step kind <k> ("call", "rest", "parallel", ...). */
const char *nx_step_kind_name(nx_step_kind_t k);
/** A JSON description of <wf> for GET /api/workflows and `nexus workflows`: {name,
 *  description, input_schema, channels, deadline_ms, tool, steps: [{id, kind, ...}]}. */
json_t *nx_workflow_describe(const nx_workflow_t *wf);
/** The workflows of <w> as a new JSON array keyed like the file (what was written, plus the
 *  defaults and generated ids), so a configuration printed as JSON loads back. */
json_t *nx_workflows_to_json(const nx_workflows_t *w);
/** Checks that the call steps of <w> still resolve as they did at load in <c> (backends there,
 *  enabled, same transport kind, same federated tool names: the environment may have changed
 *  federation.separator after the file was read); NX_ECONFIG with <err> at the step otherwise.
 *  NULL <w> is fine. */
int nx_workflows_check(const nx_workflows_t *w, const nx_config_t *c, nx_config_error_t *err);

#endif
