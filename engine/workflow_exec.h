/* The workflow executor: runs one execution of a workflow definition on the shard that started
 * it, as a state machine of frames (one per running step) driven by call completions and
 * timers — no thread per execution. It evaluates the templates, calls tools and REST backends
 * with what is left of the deadline, consults the step cache, joins parallel branches, and
 * records each step's status, attempts, timing and cache use. Everything about an execution
 * happens on its shard's thread. */
#ifndef NX_ENGINE_WORKFLOW_EXEC_H
#define NX_ENGINE_WORKFLOW_EXEC_H

#include "engine.h"
#include "workflow.h"

#include "buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct nx_exec nx_exec_t;

typedef enum nx_exec_status {
    NX_EXEC_RUNNING,
    NX_EXEC_SUCCEEDED,
    NX_EXEC_FAILED,
    NX_EXEC_CANCELLED,
} nx_exec_status_t;

/* What the starter of an execution hears. Any may be NULL. */
typedef struct nx_exec_hooks {
    /* An event of the execution: <type> is execution.started, step.started, step.finished,
     * execution.finished, execution.failed or execution.cancelled; <data> (borrowed) carries
     * {execution, workflow, ...}. */
    void (*event)(void *arg, nx_exec_t *x, const char *type, const json_t *data);
    /* The execution ended (after its last event); <x> stays valid until nx_exec_free. */
    void (*done)(void *arg, nx_exec_t *x);
} nx_exec_hooks_t;

/** Validates <inputs> (borrowed) against <wf>'s schema and starts an execution with id <id>
 *  (copied) on the calling shard <es>, nested <depth> workflows deep; <wfs> (the set <wf> belongs
 * to) is referenced while it runs. Returns 0 and the execution in <*out>; -EINVAL with the schema
 * errors as a JSON array in <*errors> (new reference) when the inputs do not fit; -ENOMEM. Hooks
 * run later, never inline. */
int nx_exec_start(nx_engine_shard_t *es, nx_workflows_t *wfs, const nx_workflow_t *wf,
                  const char *id, const json_t *inputs, uint32_t depth,
                  const nx_exec_hooks_t *hooks, void *arg, nx_exec_t **out, json_t **errors);
/* The _meta member carrying how many workflows a call runs inside: each call a step makes
 * says its execution's depth + 1, so workflows calling workflows are bounded. */
#define NX_EXEC_META_DEPTH "io.nexus/depth"
/** Cancels a running execution: outstanding calls are cancelled and it ends as cancelled; the
 *  hooks (the cancelled event, then done) run before this returns — or, when called from one
 *  of the execution's own hooks, as soon as that work unwinds. No effect once ended. */
void nx_exec_cancel(nx_exec_t *x);
/** Frees an ended execution, or cancels a running one and frees it when it ends (hooks no
 *  longer run). NULL-safe. */
void nx_exec_free(nx_exec_t *x);
/** Detaches the hooks (the starter went away); the execution goes on. */
void nx_exec_detach(nx_exec_t *x);

nx_exec_status_t nx_exec_status(const nx_exec_t *x);
const char *nx_exec_status_name(nx_exec_status_t s);
const char *nx_exec_id(const nx_exec_t *x);
const nx_workflow_t *nx_exec_workflow(const nx_exec_t *x);
/** The result (borrowed; NULL until succeeded). */
const json_t *nx_exec_result(const nx_exec_t *x);
/** The error (borrowed; {message, step?, code?, data?}; NULL unless failed or cancelled). */
const json_t *nx_exec_error(const nx_exec_t *x);
/** Steps finished so far and the total number of steps (for progress). */
void nx_exec_progress(const nx_exec_t *x, uint32_t *finished, uint32_t *total);
/** The record of the execution: {id, workflow, status, started_at, ended_at?, duration_ms,
 *  inputs, result?, error?, steps: [{id, kind, status, attempts, cached, stale?, duration_ms,
 *  runs, error?}]} (new reference). */
json_t *nx_exec_record(const nx_exec_t *x);
/** Appends the compact JSON text of nx_exec_record(x) to <b>, the same bytes, written directly
 *  (for answers and snapshots). 0, or -ENOMEM with <b> at its old length. */
int nx_exec_record_write(const nx_exec_t *x, nx_buf_t *b);

#endif
