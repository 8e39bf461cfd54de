/* Workflow executions as the channels see them: the bounded execution store (every shard can
 * read any execution's record; running executions live on the shard that started them), the
 * REST routes /api/workflows and /api/executions, and one MCP tool per workflow. Events of
 * every execution go to nx_events_publish. */
#ifndef NX_ENGINE_EXECUTIONS_H
#define NX_ENGINE_EXECUTIONS_H

#include "engine.h"
#include "workflow_exec.h"

/** Sets up the workflows of <e>'s configuration: the store and the MCP tools (call after the
 *  MCP server and the backends exist, before serving). NX_ECONFIG with a message in <err> for
 *  a call step naming a native tool that does not exist. */
int nx_executions_setup(nx_engine_t *e, char *err, size_t errlen);
/** Frees the store (after every shard stopped). */
void nx_executions_free(nx_engine_t *e);
/** Starts shard 0's check of the call steps against the backends' catalogs (shard start). */
void nx_executions_shard_start(nx_engine_shard_t *es);
/** Cancels and frees the executions running on the calling shard (shard stop). */
void nx_executions_shard_stop(nx_engine_shard_t *es);
/** Counts for /health: {defined, running, stored}. */
json_t *nx_executions_health(const nx_engine_t *e);
/** Whether execution <id> is known, for the Events channel: -1 unknown (or expired), 0 running,
 *  1 ended (its terminal event has been published by then). Any shard. */
int nx_executions_state(nx_engine_t *e, const char *id);

/* What a channel hears of an execution it started. */
typedef struct nx_run_hooks {
    void (*event)(void *arg, nx_exec_t *x, const char *type, const json_t *data);
    void (*done)(void *arg, nx_exec_t *x);
} nx_run_hooks_t;

/** Starts workflow <name> for channel <channel> (NX_WF_CHANNEL_*) with <inputs> on the calling
 *  shard and stores its record; <depth> counts the workflows it runs inside (0 for a
 *  client's run), refused with NX_ELIMIT from 8 on. Returns 0 with the execution in <*out> (the store owns it;
 *  <hooks> run until done, after which the execution may be gone); NX_ENOTFOUND (no such
 *  workflow, or not on that channel: <*why> says which), -EINVAL (inputs invalid: <*errors>),
 *  NX_EFULL (the store is full of running executions), -ENOMEM. */
int nx_run_start(nx_engine_shard_t *es, const char *name, unsigned channel, const json_t *inputs,
                 uint32_t depth, const nx_run_hooks_t *hooks, void *arg, nx_exec_t **out, json_t **errors,
                 const char **why);
/** Stops the hooks of an execution (its starter went away) and, when <cancel>, cancels it. */
void nx_run_abandon(nx_exec_t *x, bool cancel);

/* Routes (REST port). */
void nx_route_workflows_list(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                             const nx_route_match_t *m);
void nx_route_workflow_run(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                           const nx_route_match_t *m);
void nx_route_executions_list(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                              const nx_route_match_t *m);
void nx_route_executions_start(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                               const nx_route_match_t *m);
void nx_route_execution_get(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                            const nx_route_match_t *m);
void nx_route_execution_cancel(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                               const nx_route_match_t *m);

#endif
