/* REST access to the MCP tool catalog: GET /tools lists every tool, POST /tools/{name} calls one
 * with the JSON body as its arguments. Both are ordinary tools/list and tools/call requests
 * handed to the MCP server core without a session, so a REST caller gets exactly what an MCP
 * client gets: the same merged catalog, argument validation, routing to a backend owned by
 * another shard, breakers and bulkheads. Without a session a tool cannot ask the client
 * anything (sampling, elicitation, roots fail) and its progress and log messages are dropped.
 * A call the core answers later keeps its HTTP request deferred; if the client goes away first
 * the call is cancelled, as mcp_http.c does for a request whose connection is gone. */
#include "rest_tools.h"
#include "json_write.h"

#include "jsonrpc.h"
#include "mcp_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tools/list pages followed at most: far beyond any catalog (a page holds 100 tools). */
#define MAX_LIST_PAGES 10000u
/* Levels the arguments may nest: the MCP endpoint's limit less the message and its params. */
#define MAX_ARGS_DEPTH (NX_RPC_DEFAULT_MAX_DEPTH - 2)
/* The longest Retry-After we send (a day), whatever retryAfterMs says. */
#define MAX_RETRY_AFTER_S 86400u

/* Sends <j> (stolen) with <status> and <headers> (NULL or "Name: value\r\n" lines). Numbers
 * keep their full precision: a tool result is passed on as the tool wrote it. */
void nx_rest_send_json(nx_http_conn_t *hc, int status, json_t *j, const char *headers) {
    size_t len = 0;
    char *body = j ? nx_json_write(j, 17, &len) : NULL;
    json_decref(j);
    if (body == NULL) {
        nx_http_respond_error(hc, 500, "could not encode the response", NULL);
        return;
    }
    nx_http_respond(hc, status, "application/json", body, len, headers);
    free(body);
}

/* Answers the house error body {"error": {"code": <status>, "message": ...}} with the members of
 * <extra> (stolen, may be NULL) added to "error". */
void nx_rest_send_error(nx_http_conn_t *hc, int status, const char *message, json_t *extra,
                        const char *headers) {
    json_t *error = json_pack("{s:i, s:s}", "code", status, "message", message);
    if (error != NULL && extra != NULL) json_object_update(error, extra);
    json_decref(extra);
    nx_rest_send_json(hc, status, error ? json_pack("{s:o}", "error", error) : NULL, headers);
}

/* ---- GET /tools ---- */

/* The reply function of a tools/list page: keeps the response for the caller. */
static void on_list_page(void *transport, json_t *response) {
    json_t **out = transport;
    json_decref(*out);
    *out = response;
}

void nx_rest_route_tools_list(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                              const nx_route_match_t *m) {
    json_t *tools = json_array();
    json_t *id = json_integer(1);
    json_t *cursor = NULL;
    const char *failure = tools && id ? NULL : "out of memory";
    for (uint32_t page = 0; failure == NULL; page++) {
        if (page == MAX_LIST_PAGES) {
            failure = "tools/list did not end";
            break;
        }
        json_t *params = cursor ? json_pack("{s:O}", "cursor", cursor) : json_object();
        json_t *response = NULL;
        nx_rpc_msg_t msg = {
            .kind = NX_RPC_REQUEST, .id = id, .method = "tools/list", .params = params};
        nx_mcp_request_ctx_t ctx = {.reply = on_list_page, .transport = &response};
        nx_mcp_call_t *pending = NULL;
        /* The catalog is read-only while serving, so every page is answered at once. */
        if (params == NULL ||
            nx_mcp_server_dispatch(es->engine->mcp, &msg, &ctx, &pending) == NX_MCP_PENDING) {
            if (pending != NULL) nx_mcp_call_cancel(pending);
            failure = params ? "tools/list did not answer at once" : "out of memory";
        }
        json_decref(params);
        json_t *result = json_object_get(response, "result");
        json_t *items = json_object_get(result, "tools");
        json_t *next = json_object_get(result, "nextCursor");
        if (failure == NULL && (!json_is_array(items) || json_array_extend(tools, items) < 0))
            failure = "tools/list failed";
        json_decref(cursor);
        cursor = json_is_string(next) ? json_incref(next) : NULL;
        json_decref(response);
        if (cursor == NULL) break;
    }
    json_decref(cursor);
    json_decref(id);
    if (failure != NULL) {
        json_decref(tools);
        nx_rest_send_error(hc, 500, failure, NULL, NULL);
        return;
    }
    nx_rest_send_json(
        hc, 200,
        json_pack("{s:o, s:I}", "tools", tools, "count", (json_int_t)json_array_size(tools)), NULL);
}

/* ---- POST /tools/{name} ---- */

/* One call in flight; owned by itself: freed by its reply, or by its client going away. */
typedef struct rest_call {
    nx_http_conn_t *hc;
    nx_mcp_call_t *pending; /* once the core answers later */
    const char *tool;       /* while inside nx_mcp_server_dispatch only (borrowed) */
} rest_call_t;

/* The HTTP answer to the JSON-RPC <response> (borrowed) of tools/call <tool>; <tool> is NULL
 * when the core answered later. */
static void respond_call(nx_http_conn_t *hc, const json_t *response, const char *tool) {
    json_t *result = json_object_get(response, "result");
    if (result != NULL) {
        /* Tool failures are results too (isError: true): the call worked, the tool said no. */
        nx_rest_send_json(hc, 200, json_incref(result), NULL);
        return;
    }
    json_t *error = json_object_get(response, "error");
    json_int_t code = json_integer_value(json_object_get(error, "code"));
    const char *message = json_string_value(json_object_get(error, "message"));
    json_t *data = json_object_get(error, "data");
    /* Our request always has a string name and object arguments, so the only -32602 the core
     * answers at once is an unknown tool. */
    if (tool != NULL && code == NX_RPC_INVALID_PARAMS) {
        /* Built whole rather than cut to a buffer, which could split a UTF-8 sequence. */
        json_t *text = json_sprintf("no tool named \"%s\" (GET /tools lists them)", tool);
        nx_rest_send_error(hc, 404, text ? json_string_value(text) : "no such tool",
                           json_pack("{s:s}", "tool", tool), NULL);
        json_decref(text);
        return;
    }
    /* A backend that is failing (open breaker) or full (bulkhead) says when to come back. */
    json_t *after = json_object_get(data, "retryAfterMs");
    int status = 502;
    char headers[64] = "";
    if (json_is_number(after)) {
        double ms = json_number_value(after);
        double s = ms > 0 ? (ms + 999.0) / 1000.0 : 0;
        unsigned long long secs = s < MAX_RETRY_AFTER_S ? (unsigned long long)s : MAX_RETRY_AFTER_S;
        snprintf(headers, sizeof(headers), "Retry-After: %llu\r\n", secs);
        status = 503;
    }
    json_t *extra = json_pack("{s:I}", "jsonrpc_code", code);
    if (extra != NULL && data != NULL) json_object_set(extra, "data", data);
    nx_rest_send_error(hc, status, message ? message : "the tool call failed", extra,
                       headers[0] ? headers : NULL);
}

static void on_call_reply(void *transport, json_t *response) {
    rest_call_t *rc = transport;
    respond_call(rc->hc, response, rc->tool);
    json_decref(response);
    free(rc);
}

/* The client went away before the answer: stop the call (a backend hears notifications/
 * cancelled); the core then never calls on_call_reply. */
static void on_call_client_gone(nx_http_conn_t *hc, void *arg) {
    rest_call_t *rc = arg;
    nx_mcp_call_cancel(rc->pending);
    free(rc);
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes the percent-encoding of <in> into <out> (room for in.n + 1 bytes, NUL-terminated);
 * false for a malformed escape or an encoded NUL. */
static bool percent_decode(nx_str_t in, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < in.n; i++) {
        char c = in.p[i];
        if (c == '%') {
            int hi = i + 2 < in.n ? hex_digit(in.p[i + 1]) : -1;
            int lo = hi >= 0 ? hex_digit(in.p[i + 2]) : -1;
            if (lo < 0 || (hi | lo) == 0) return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

/* True when <j> nests arrays and objects deeper than <max> levels (<j> itself is level 1).
 * The recursion is bounded by <max>. */
static bool nests_deeper(const json_t *j, uint32_t max) {
    if (!json_is_object(j) && !json_is_array(j)) return false;
    if (max == 0) return true;
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            if (nests_deeper(json_array_get(j, i), max - 1)) return true;
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)j, key, v) {
        if (nests_deeper(v, max - 1)) return true;
    }
    return false;
}

static const char *json_type_name(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    default:
        return "an object";
    }
}

/* The tool's arguments from the request body: {} when empty, else a JSON object; NULL after
 * answering 400. */
static json_t *read_arguments(nx_http_conn_t *hc, nx_str_t body) {
    size_t skip = 0;
    while (skip < body.n && (body.p[skip] == ' ' || body.p[skip] == '\t' || body.p[skip] == '\r' ||
                             body.p[skip] == '\n'))
        skip++;
    json_t *args = skip == body.n ? json_object() : NULL;
    if (skip == body.n) {
        if (args == NULL) nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return args;
    }
    json_error_t je;
    args = json_loadb(body.p, body.n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    char text[320];
    if (args == NULL) {
        snprintf(text, sizeof(text),
                 "the body must be a JSON object of the tool's arguments: %s (line %d, column %d)",
                 je.text, je.line, je.column);
    } else if (!json_is_object(args)) {
        snprintf(text, sizeof(text),
                 "the body must be a JSON object of the tool's arguments, not %s",
                 json_type_name(args));
    } else if (nests_deeper(args, MAX_ARGS_DEPTH)) {
        snprintf(text, sizeof(text), "the arguments nest deeper than %u levels",
                 (unsigned)MAX_ARGS_DEPTH);
    } else {
        return args;
    }
    json_decref(args);
    /* The parser quotes the body near the error: keep the message printable ASCII (valid
     * UTF-8 whatever the body held, and not cut inside a sequence). */
    for (char *p = text; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) *p = '?';
    nx_rest_send_error(hc, 400, text, NULL, NULL);
    return NULL;
}

void nx_rest_route_tools_call(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                              const nx_route_match_t *m) {
    nx_str_t raw = m->params[0];
    char *name = malloc(raw.n + 1);
    if (name == NULL) {
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    json_t *jname = NULL;
    if (!percent_decode(raw, name) || (jname = json_string(name)) == NULL) {
        free(name);
        nx_http_respond_error(hc, 400,
                              "the tool name in the path must be percent-encoded UTF-8 "
                              "without NUL bytes",
                              NULL);
        return;
    }
    json_t *args = read_arguments(hc, req->body);
    if (args == NULL) { /* answered */
        json_decref(jname);
        free(name);
        return;
    }
    json_t *id = json_integer(1);
    json_t *params = json_object();
    rest_call_t *rc = calloc(1, sizeof(*rc));
    /* json_object_set_new takes its value even when it fails. */
    bool ok = id != NULL && params != NULL && rc != NULL;
    if (ok)
        ok = json_object_set_new(params, "name", jname) == 0;
    else
        json_decref(jname);
    if (ok)
        ok = json_object_set_new(params, "arguments", args) == 0;
    else
        json_decref(args);
    if (!ok) {
        json_decref(params);
        json_decref(id);
        free(rc);
        free(name);
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    rc->hc = hc;
    rc->tool = name;
    nx_rpc_msg_t msg = {.kind = NX_RPC_REQUEST, .id = id, .method = "tools/call", .params = params};
    nx_mcp_request_ctx_t ctx = {.reply = on_call_reply, .transport = rc};
    nx_mcp_call_t *pending = NULL;
    /* Answered now: on_call_reply has run and freed <rc>. Later: it runs on this thread. */
    if (nx_mcp_server_dispatch(es->engine->mcp, &msg, &ctx, &pending) == NX_MCP_PENDING) {
        rc->tool = NULL;
        rc->pending = pending;
        nx_http_defer(hc, on_call_client_gone, rc);
    }
    json_decref(params);
    json_decref(id);
    free(name);
}
