/* The connection manager (see connections.h). Views are read from the backends' atomics on the
 * shard that asks; a test travels to the owner of one instance of the backend and back, the
 * HTTP exchange or the MCP call waiting meanwhile (and forgetting the test if its client goes
 * away first). */
#include "connections.h"

#include "backends.h"
#include "nexus/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies route parameter {id} into <out>; false when it does not fit. */
static bool route_id(const nx_route_match_t *m, char *out, size_t len) {
    if (m->param_count < 1 || m->params[0].n == 0 || m->params[0].n >= len) return false;
    memcpy(out, m->params[0].p, m->params[0].n);
    out[m->params[0].n] = '\0';
    return true;
}

static void respond_unknown(nx_http_conn_t *hc, const char *id) {
    char msg[200];
    snprintf(msg, sizeof(msg), "no connection named '%.64s' (GET /api/v1/connections lists them)",
             id);
    nx_http_respond_error(hc, 404, msg, NULL);
}

void nx_route_connections(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                          const nx_route_match_t *m) {
    json_t *list = nx_backends_connections(es->engine->backends, NULL);
    nx_respond_json(
        hc, 200,
        json_pack("{s:o, s:I}", "connections", list, "count", (json_int_t)json_array_size(list)));
}

void nx_route_connection_metrics(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                                 const nx_route_match_t *m) {
    char id[128];
    json_t *one =
        route_id(m, id, sizeof(id)) ? nx_backends_connections(es->engine->backends, id) : NULL;
    if (one == NULL) {
        respond_unknown(hc, id);
        return;
    }
    nx_respond_json(hc, 200, one);
}

/* One test waiting for its outcome on the shard that asked. */
typedef struct pending_test {
    nx_engine_shard_t *es;
    nx_http_conn_t *hc;  /* REST: NULL once the client went away */
    nx_mcp_call_t *call; /* MCP: NULL once cancelled */
} pending_test_t;

static void test_finished(const json_t *outcome, void *arg) {
    pending_test_t *t = arg;
    if (t->hc != NULL) nx_respond_json(t->hc, 200, json_deep_copy(outcome));
    if (t->call != NULL) {
        nx_mcp_call_on_cancel(t->call, NULL, NULL);
        nx_mcp_call_return_json(t->call, json_deep_copy(outcome),
                                !json_is_true(json_object_get(outcome, "ok")));
    }
    nx_engine_shard_t *es = t->es;
    free(t);
    es->mcp_forwards_out--;
    nx_engine_shard_maybe_stop(es);
}

static void on_test_client_gone(nx_http_conn_t *hc, void *arg) {
    ((pending_test_t *)arg)->hc = NULL;
}

static void on_test_call_cancelled(nx_mcp_call_t *call, void *arg) {
    ((pending_test_t *)arg)->call = NULL;
}

/* Starts a test of <id> for <t>; 0, or NX_ENOTFOUND / another error with nothing pending. */
static int start_test(nx_engine_shard_t *es, const char *id, pending_test_t *t) {
    t->es = es;
    es->mcp_forwards_out++; /* the shard waits for the outcome before it stops */
    int rc = nx_backends_test(es->engine->backends, id, test_finished, t);
    if (rc < 0) es->mcp_forwards_out--;
    return rc;
}

void nx_route_connection_test(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                              const nx_route_match_t *m) {
    char id[128] = "";
    pending_test_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    t->hc = hc;
    int rc = route_id(m, id, sizeof(id)) ? start_test(es, id, t) : NX_ENOTFOUND;
    if (rc < 0) {
        free(t);
        if (rc == NX_ENOTFOUND)
            respond_unknown(hc, id);
        else
            nx_http_respond_error(hc, 503, "nexus is overloaded; retry", "Retry-After: 1\r\n");
        return;
    }
    nx_http_defer(hc, on_test_client_gone, t);
}

/* ---- as MCP tools ---- */

static void unknown_connection(nx_mcp_call_t *call, const char *id) {
    char msg[200];
    snprintf(msg, sizeof(msg), "no connection named '%.64s' (list_connections lists them)",
             id ? id : "");
    nx_mcp_call_return_text(call, msg, true);
}

void nx_tool_list_connections(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_engine_t *e = data;
    json_t *list = nx_backends_connections(e->backends, NULL);
    nx_mcp_call_return_json(
        call,
        json_pack("{s:o, s:I}", "connections", list, "count", (json_int_t)json_array_size(list)),
        false);
}

void nx_tool_get_connection_metrics(nx_mcp_call_t *call, json_t *args, void *data) {
    nx_engine_t *e = data;
    const char *id = json_string_value(json_object_get(args, "id"));
    json_t *one = id ? nx_backends_connections(e->backends, id) : NULL;
    if (one == NULL) {
        unknown_connection(call, id);
        return;
    }
    nx_mcp_call_return_json(call, one, false);
}

void nx_tool_test_connection(nx_mcp_call_t *call, json_t *args, void *data) {
    const char *id = json_string_value(json_object_get(args, "id"));
    nx_engine_shard_t *es = nx_engine_current_shard();
    pending_test_t *t = calloc(1, sizeof(*t));
    if (t == NULL || es == NULL) {
        free(t);
        nx_mcp_call_error(call, -32603, "out of memory", NULL);
        return;
    }
    t->call = call;
    nx_mcp_call_on_cancel(call, on_test_call_cancelled, t);
    int rc = id ? start_test(es, id, t) : NX_ENOTFOUND;
    if (rc < 0) {
        nx_mcp_call_on_cancel(call, NULL, NULL);
        free(t);
        if (rc == NX_ENOTFOUND)
            unknown_connection(call, id);
        else
            nx_mcp_call_error(call, -32603, "nexus is overloaded; retry", NULL);
    }
}
