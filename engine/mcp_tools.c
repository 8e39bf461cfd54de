/* Built-in MCP tools every nexus serves: health_check, get_server_metrics and
 * get_available_tools, and the connection manager's list_connections, get_connection_metrics and
 * test_connection; with debug routes also the test stand-ins debug_echo (fast), debug_sleep
 * (slow, asynchronous), debug_progress (progress and log notifications while it runs) and
 * debug_sample (asks the client to sample, answers with what it said). */
#include "connections.h"
#include "mcp_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tool_health_check(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_engine_t *e = data;
    nx_engine_shard_t *es = nx_engine_current_shard();
    bool draining = e->draining || (es != NULL && es->draining);
    nx_mcp_call_return_json(call,
                            json_pack("{s:s, s:s, s:f, s:i, s:s}", "status",
                                      draining ? "draining" : "ok", "version", NX_VERSION,
                                      "uptime_seconds", nx_engine_uptime_seconds(e), "shards",
                                      (int)e->shard_count, "ring_mode", e->ring_mode),
                            false);
}

static void tool_get_server_metrics(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_engine_t *e = data;
    const nx_shard_metrics_t *sm[e->shard_count];
    const nx_net_stats_t *ns[e->shard_count];
    nx_metrics_view_t v;
    nx_engine_metrics_view(e, &v, sm, ns);
    json_t *stats = nx_metrics_to_json(&v);
    json_object_set_new(stats, "mcp_sessions", json_integer((json_int_t)nx_engine_mcp_sessions(e)));
    nx_mcp_call_return_json(call, stats, false);
}

static void tool_get_available_tools(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_engine_t *e = data;
    json_t *list = nx_mcp_server_tool_names(e->mcp);
    char text[4096];
    size_t off = (size_t)snprintf(text, sizeof(text), "%zu tools:", json_array_size(list));
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (off >= sizeof(text)) break;
        off += (size_t)snprintf(text + off, sizeof(text) - off, "%s %s", i ? "," : "",
                                json_string_value(v));
    }
    json_t *r = json_pack("{s:[{s:s, s:s}], s:{s:o}}", "content", "type", "text", "text", text,
                          "structuredContent", "tools", list);
    nx_mcp_call_return(call, r);
}

static void tool_debug_echo(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_mcp_call_return_text(call, json_string_value(json_object_get(args, "message")), false);
}

/* debug_sleep answers from the shard's timer wheel: an asynchronous tool. */
typedef struct sleeper {
    nx_timer_t timer;
    nx_mcp_call_t *call;
    json_int_t ms;
} sleeper_t;

static void on_slept(nx_timer_t *t) {
    sleeper_t *sl = nx_container_of(t, sleeper_t, timer);
    char text[64];
    snprintf(text, sizeof(text), "slept %lld ms", (long long)sl->ms);
    nx_mcp_call_return_text(sl->call, text, false);
    free(sl);
}

static void on_sleep_cancelled(nx_mcp_call_t *call, void *arg) {
    sleeper_t *sl = arg;
    nx_timer_stop(&sl->timer);
    free(sl);
}

static void tool_debug_sleep(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    sleeper_t *sl = calloc(1, sizeof(*sl));
    if (sl == NULL || es == NULL) {
        free(sl);
        nx_mcp_call_return_text(call, "out of memory", true);
        return;
    }
    sl->call = call;
    sl->ms = json_integer_value(json_object_get(args, "ms"));
    nx_timer_init(&sl->timer, on_slept);
    nx_mcp_call_on_cancel(call, on_sleep_cancelled, sl);
    nx_shard_timer_start(es->shard, &sl->timer, (uint64_t)sl->ms);
}

/* debug_progress: <steps> steps <ms> apart, each reported as progress and logged. */
typedef struct stepper {
    nx_timer_t timer;
    nx_mcp_call_t *call;
    json_int_t step, steps, ms;
} stepper_t;

static void on_step(nx_timer_t *t) {
    stepper_t *st = nx_container_of(t, stepper_t, timer);
    if (st->step < st->steps) {
        st->step++;
        char msg[64];
        snprintf(msg, sizeof(msg), "step %lld of %lld", (long long)st->step, (long long)st->steps);
        nx_mcp_call_progress(st->call, (double)st->step, (double)st->steps, msg);
        nx_mcp_call_log(st->call, NX_MCP_LOG_INFO, "debug_progress", json_string(msg));
        nx_engine_shard_t *es = nx_engine_current_shard();
        nx_shard_timer_start(es->shard, &st->timer, (uint64_t)st->ms);
        return;
    }
    char text[64];
    snprintf(text, sizeof(text), "done after %lld steps", (long long)st->steps);
    nx_mcp_call_return_text(st->call, text, false);
    free(st);
}

static void on_steps_cancelled(nx_mcp_call_t *call, void *arg) {
    stepper_t *st = arg;
    nx_timer_stop(&st->timer);
    free(st);
}

static void tool_debug_progress(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    stepper_t *st = calloc(1, sizeof(*st));
    if (st == NULL || es == NULL) {
        free(st);
        nx_mcp_call_return_text(call, "out of memory", true);
        return;
    }
    st->call = call;
    st->steps = json_integer_value(json_object_get(args, "steps"));
    st->ms = json_integer_value(json_object_get(args, "ms"));
    nx_timer_init(&st->timer, on_step);
    nx_mcp_call_on_cancel(call, on_steps_cancelled, st);
    nx_shard_timer_start(es->shard, &st->timer, (uint64_t)st->ms);
}

static void on_sampled(nx_mcp_call_t *call, const json_t *result, const json_t *error, void *arg) {
    if (error != NULL) {
        char text[300];
        snprintf(text, sizeof(text), "sampling failed: %s",
                 json_string_value(json_object_get(error, "message")));
        nx_mcp_call_return_text(call, text, true);
        return;
    }
    const char *said =
        json_string_value(json_object_get(json_object_get(result, "content"), "text"));
    char text[600];
    snprintf(text, sizeof(text), "the client said: %s", said ? said : "(no text)");
    nx_mcp_call_return_text(call, text, false);
}

static void tool_debug_sample(nx_mcp_call_t *call, json_t *args, void *data) {
    if (json_object_get(nx_mcp_call_client_capabilities(call), "sampling") == NULL) {
        nx_mcp_call_return_text(call, "the client does not offer sampling", true);
        return;
    }
    json_t *params =
        json_pack("{s:[{s:s, s:{s:s, s:O}}], s:i}", "messages", "role", "user", "content", "type",
                  "text", "text", json_object_get(args, "prompt"), "maxTokens", 100);
    nx_mcp_call_request(call, "sampling/createMessage", params, on_sampled, NULL);
}

int nx_mcp_register_builtin_tools(nx_engine_t *e, bool debug) {
    static const char *const no_args = "{\"type\":\"object\",\"properties\":{},"
                                       "\"additionalProperties\":false}";
#define CONNECTION_ID                                                                              \
    "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"description\":"            \
    "\"the backend's name\"}},\"required\":[\"id\"],\"additionalProperties\":false}"
    const nx_mcp_tool_def_t tools[] = {
        {"health_check", "Health check",
         "Reports whether nexus is serving: status, version, uptime, shards.", no_args, NULL,
         "{\"readOnlyHint\":true,\"openWorldHint\":false}", tool_health_check, e,
         NX_MCP_TASK_FORBIDDEN},
        {"get_server_metrics", "Server metrics",
         "Request counters by route and status, latency percentiles, connections, bytes and "
         "MCP sessions, over all shards.",
         no_args, NULL, "{\"readOnlyHint\":true,\"openWorldHint\":false}", tool_get_server_metrics,
         e, NX_MCP_TASK_FORBIDDEN},
        {"get_available_tools", "Available tools",
         "Lists the names of every tool this server offers.", no_args, NULL,
         "{\"readOnlyHint\":true,\"openWorldHint\":false}", tool_get_available_tools, e,
         NX_MCP_TASK_FORBIDDEN},
        {"list_connections", "List connections",
         "The backends as connections: status (connected, degraded, disconnected, unknown), "
         "latency, success rate, breaker state, instances.",
         no_args, NULL, "{\"readOnlyHint\":true,\"openWorldHint\":false}", nx_tool_list_connections,
         e, NX_MCP_TASK_FORBIDDEN},
        {"get_connection_metrics", "Connection metrics",
         "Status, latency (min/avg/max), success rate, breaker state and instances of one "
         "backend.",
         CONNECTION_ID, NULL, "{\"readOnlyHint\":true,\"openWorldHint\":false}",
         nx_tool_get_connection_metrics, e, NX_MCP_TASK_FORBIDDEN},
        {"test_connection", "Test a connection",
         "Pings one backend now through one of its instances: ok and round-trip latency, or "
         "why not.",
         CONNECTION_ID, NULL, "{\"readOnlyHint\":true,\"openWorldHint\":true}",
         nx_tool_test_connection, e, NX_MCP_TASK_FORBIDDEN},
        {"debug_echo", "Echo (test)", "Test only: returns its message.",
         "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\"}},"
         "\"required\":[\"message\"],\"additionalProperties\":false}",
         NULL, NULL, tool_debug_echo, e, NX_MCP_TASK_FORBIDDEN},
        {"debug_sleep", "Sleep (test)", "Test only: answers after ms milliseconds.",
         "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\",\"minimum\":0,"
         "\"maximum\":60000}},\"required\":[\"ms\"],\"additionalProperties\":false}",
         NULL, NULL, tool_debug_sleep, e, NX_MCP_TASK_OPTIONAL},
        {"debug_progress", "Progress (test)",
         "Test only: <steps> steps <ms> apart, each sent as a progress and a log notification.",
         "{\"type\":\"object\",\"properties\":{\"steps\":{\"type\":\"integer\",\"minimum\":0,"
         "\"maximum\":1000},\"ms\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10000}},"
         "\"required\":[\"steps\",\"ms\"],\"additionalProperties\":false}",
         NULL, NULL, tool_debug_progress, e, NX_MCP_TASK_FORBIDDEN},
        {"debug_sample", "Sample (test)",
         "Test only: asks the client to sample a reply to <prompt> and returns its text.",
         "{\"type\":\"object\",\"properties\":{\"prompt\":{\"type\":\"string\"}},"
         "\"required\":[\"prompt\"],\"additionalProperties\":false}",
         NULL, NULL, tool_debug_sample, e, NX_MCP_TASK_FORBIDDEN},
    };
    size_t n = sizeof(tools) / sizeof(tools[0]);
    if (!debug) n -= 4;
    char err[256];
    for (size_t i = 0; i < n; i++) {
        int rc = nx_mcp_server_add_tool(e->mcp, &tools[i], err, sizeof(err));
        if (rc < 0) return rc;
    }
    return 0;
}
