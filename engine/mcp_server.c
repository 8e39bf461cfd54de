/* MCP server core (see mcp_server.h and include/nexus/mcp.h): the tool catalog, lifecycle
 * methods and tools/call dispatch. The catalog is built before serving and then only read, so
 * every shard shares one server. */
#include "mcp_server.h"

#include "jsonschema.h"
#include "mcp_rules.h"
#include "nexus/errors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tool {
    char *name;
    json_t *descriptor; /* the Tool object tools/list returns */
    nx_schema_t *input; /* compiled inputSchema */
    nx_mcp_tool_fn handler;
    void *data;
} tool_t;

struct nx_mcp_server {
    char *name, *version;
    tool_t *tools;
    uint32_t tool_count, tool_cap;
    uint32_t page_size;
};

/* One tools/call in flight; owned by the tool handler until it answers. */
struct nx_mcp_call {
    const tool_t *tool;
    json_t *id;
    nx_mcp_reply_fn reply; /* NULL once cancelled */
    void *transport;
    bool *answered_inline; /* set while the handler runs: tells dispatch it answered at once */
    nx_mcp_cancel_fn on_cancel;
    void *cancel_arg;
};

nx_mcp_server_t *nx_mcp_server_new(const char *name, const char *version) {
    nx_mcp_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    s->name = strdup(name);
    s->version = strdup(version);
    s->page_size = 100;
    if (s->name == NULL || s->version == NULL) {
        nx_mcp_server_free(s);
        return NULL;
    }
    return s;
}

void nx_mcp_server_free(nx_mcp_server_t *s) {
    if (s == NULL) return;
    for (uint32_t i = 0; i < s->tool_count; i++) {
        free(s->tools[i].name);
        json_decref(s->tools[i].descriptor);
        nx_schema_free(s->tools[i].input);
    }
    free(s->tools);
    free(s->name);
    free(s->version);
    free(s);
}

void nx_mcp_server_set_page_size(nx_mcp_server_t *s, uint32_t page_size) {
    s->page_size = page_size ? page_size : 100;
}

uint32_t nx_mcp_server_tool_count(const nx_mcp_server_t *s) {
    return s->tool_count;
}

json_t *nx_mcp_server_tool_names(const nx_mcp_server_t *s) {
    json_t *names = json_array();
    for (uint32_t i = 0; i < s->tool_count; i++)
        json_array_append_new(names, json_string(s->tools[i].name));
    return names;
}

static bool valid_tool_name(const char *n) {
    size_t len = strlen(n);
    if (len == 0 || len > 128) return false;
    for (const char *p = n; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* Parses the JSON text <text> of field <what>, or fails with a message. */
static json_t *parse_field(const char *text, const char *what, char *err, size_t errlen) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        snprintf(err, errlen, "%s is not valid JSON: %s (line %d)", what, je.text, je.line);
    return j;
}

int nx_mcp_server_add_tool(nx_mcp_server_t *s, const nx_mcp_tool_def_t *def, char *err,
                           size_t errlen) {
    if (def->name == NULL || !valid_tool_name(def->name)) {
        snprintf(err, errlen, "tool name '%s' must be 1-128 characters of [A-Za-z0-9_.-]",
                 def->name ? def->name : "");
        return NX_ECONFIG;
    }
    for (uint32_t i = 0; i < s->tool_count; i++) {
        if (strcmp(s->tools[i].name, def->name) == 0) {
            snprintf(err, errlen, "tool '%s' is registered twice", def->name);
            return NX_ECONFIG;
        }
    }
    if (def->handler == NULL) {
        snprintf(err, errlen, "tool '%s' has no handler", def->name);
        return NX_ECONFIG;
    }
    json_t *input = def->input_schema ? parse_field(def->input_schema, "inputSchema", err, errlen)
                                      : json_pack("{s:s}", "type", "object");
    if (input == NULL) return NX_ECONFIG;
    if (!json_is_object(input) || !json_is_string(json_object_get(input, "type")) ||
        strcmp(json_string_value(json_object_get(input, "type")), "object") != 0) {
        snprintf(err, errlen,
                 "tool '%s': inputSchema must be an object schema (\"type\": "
                 "\"object\")",
                 def->name);
        json_decref(input);
        return NX_ECONFIG;
    }
    nx_schema_error_t se;
    nx_schema_t *compiled = nx_schema_compile(input, &se);
    if (compiled == NULL) {
        snprintf(err, errlen, "tool '%s': inputSchema: %s", def->name, se.message);
        json_decref(input);
        return NX_ECONFIG;
    }
    json_t *desc = json_pack("{s:s, s:o}", "name", def->name, "inputSchema", input);
    if (def->title) json_object_set_new(desc, "title", json_string(def->title));
    if (def->description) json_object_set_new(desc, "description", json_string(def->description));
    static const struct {
        const char *key, *label;
    } optional[] = {{"outputSchema", "outputSchema"}, {"annotations", "annotations"}};
    const char *texts[] = {def->output_schema, def->annotations};
    for (size_t i = 0; i < 2; i++) {
        if (texts[i] == NULL) continue;
        json_t *j = parse_field(texts[i], optional[i].label, err, errlen);
        if (j == NULL) {
            json_decref(desc);
            nx_schema_free(compiled);
            return NX_ECONFIG;
        }
        json_object_set_new(desc, optional[i].key, j);
    }
    if (s->tool_count == s->tool_cap) {
        uint32_t cap = s->tool_cap ? s->tool_cap * 2 : 16;
        tool_t *t = realloc(s->tools, cap * sizeof(*t));
        if (t == NULL) {
            json_decref(desc);
            nx_schema_free(compiled);
            return -ENOMEM;
        }
        s->tools = t;
        s->tool_cap = cap;
    }
    s->tools[s->tool_count++] =
        (tool_t){strdup(def->name), desc, compiled, def->handler, def->data};
    return 0;
}

/* ---- answering ---- */

static nx_mcp_dispatch_t reply_error(const nx_mcp_request_ctx_t *ctx, json_t *id, int code,
                                     const char *message) {
    ctx->reply(ctx->transport, nx_rpc_error_new(id, code, message, NULL));
    return NX_MCP_ANSWERED;
}

static nx_mcp_dispatch_t reply_result(const nx_mcp_request_ctx_t *ctx, json_t *id, json_t *result) {
    ctx->reply(ctx->transport, nx_rpc_result_new(id, result));
    return NX_MCP_ANSWERED;
}

void nx_mcp_call_return(nx_mcp_call_t *call, json_t *result) {
    if (call->answered_inline != NULL) *call->answered_inline = true;
    if (call->reply != NULL) {
        call->reply(call->transport, nx_rpc_result_new(call->id, result));
    } else {
        json_decref(result); /* cancelled: nobody is listening */
    }
    json_decref(call->id);
    free(call);
}

void nx_mcp_call_return_text(nx_mcp_call_t *call, const char *text, bool is_error) {
    json_t *r = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text);
    if (is_error) json_object_set_new(r, "isError", json_true());
    nx_mcp_call_return(call, r);
}

bool nx_mcp_call_cancelled(const nx_mcp_call_t *call) {
    return call->reply == NULL;
}

void nx_mcp_call_on_cancel(nx_mcp_call_t *call, nx_mcp_cancel_fn fn, void *arg) {
    call->on_cancel = fn;
    call->cancel_arg = arg;
}

void nx_mcp_call_cancel(nx_mcp_call_t *call) {
    call->reply = NULL;
    call->transport = NULL;
    if (call->on_cancel != NULL) {
        call->on_cancel(call, call->cancel_arg);
        json_decref(call->id);
        free(call);
    }
}

const char *nx_mcp_call_tool(const nx_mcp_call_t *call) {
    return call->tool->name;
}

/* ---- methods ---- */

static nx_mcp_dispatch_t do_initialize(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                       const nx_mcp_request_ctx_t *ctx) {
    nx_rpc_error_t err;
    const char *version = NULL;
    if (nx_rpc_param_string(msg->params, "protocolVersion", true, &version, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    json_t *caps = NULL;
    if (nx_rpc_param(msg->params, "capabilities", NX_RPC_T_OBJECT, true, &caps, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    json_t *info = NULL;
    if (nx_rpc_param(msg->params, "clientInfo", NX_RPC_T_OBJECT, true, &info, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    const char *answer = nx_mcp_negotiate_version(nx_str_from(version));
    return reply_result(ctx, msg->id,
                        json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}}", "protocolVersion", answer,
                                  "capabilities", "tools", "listChanged", 0, "serverInfo", "name",
                                  s->name, "version", s->version));
}

/* Cursors are opaque to clients: "t" + the offset of the next page in hex. */
static nx_mcp_dispatch_t do_tools_list(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                       const nx_mcp_request_ctx_t *ctx) {
    nx_rpc_error_t err;
    const char *cursor = NULL;
    if (nx_rpc_param_string(msg->params, "cursor", false, &cursor, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    unsigned long offset = 0;
    if (cursor != NULL) {
        char *end = NULL;
        offset = cursor[0] == 't' && cursor[1] != '\0' ? strtoul(cursor + 1, &end, 16) : 0;
        if (end == NULL || *end != '\0' || offset > s->tool_count)
            return reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS,
                               "params.cursor is not a cursor this server returned");
    }
    json_t *tools = json_array();
    uint32_t i = (uint32_t)offset;
    for (; i < s->tool_count && json_array_size(tools) < s->page_size; i++)
        json_array_append(tools, s->tools[i].descriptor);
    json_t *result = json_pack("{s:o}", "tools", tools);
    if (i < s->tool_count) {
        char next[24];
        snprintf(next, sizeof(next), "t%x", i);
        json_object_set_new(result, "nextCursor", json_string(next));
    }
    return reply_result(ctx, msg->id, result);
}

static nx_mcp_dispatch_t do_tools_call(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                       const nx_mcp_request_ctx_t *ctx, nx_mcp_call_t **pending) {
    nx_rpc_error_t err;
    const char *name = NULL;
    if (nx_rpc_param_string(msg->params, "name", true, &name, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    json_t *args = NULL;
    if (nx_rpc_param(msg->params, "arguments", NX_RPC_T_OBJECT, false, &args, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    const tool_t *tool = NULL;
    for (uint32_t i = 0; i < s->tool_count && tool == NULL; i++)
        if (strcmp(s->tools[i].name, name) == 0) tool = &s->tools[i];
    if (tool == NULL) {
        char m[200];
        snprintf(m, sizeof(m), "Unknown tool: %.128s", name);
        return reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS, m);
    }
    json_t *empty = NULL;
    if (args == NULL) args = empty = json_object();
    /* Arguments that break the schema are the model's mistake to see and fix: an isError
     * result naming the field, not a protocol error. */
    nx_schema_error_t se;
    if (nx_schema_validate(tool->input, args, &se) != 0) {
        char m[600];
        snprintf(m, sizeof(m), "Invalid arguments for tool %s: %s%s%s", tool->name,
                 se.path[0] ? "argument " : "", se.path[0] ? se.path : "", se.path[0] ? " " : "");
        snprintf(m + strlen(m), sizeof(m) - strlen(m), "%s", se.message);
        json_decref(empty);
        return reply_result(
            ctx, msg->id,
            json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", m, "isError", 1));
    }
    nx_mcp_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL) {
        json_decref(empty);
        return reply_error(ctx, msg->id, NX_RPC_INTERNAL_ERROR, "out of memory");
    }
    call->tool = tool;
    call->id = json_incref(msg->id);
    call->reply = ctx->reply;
    call->transport = ctx->transport;
    /* A handler that answers inside this call frees <call> before returning. */
    bool answered = false;
    call->answered_inline = &answered;
    tool->handler(call, args, tool->data);
    json_decref(empty);
    if (answered) return NX_MCP_ANSWERED;
    call->answered_inline = NULL;
    if (pending != NULL) *pending = call;
    return NX_MCP_PENDING;
}

nx_mcp_dispatch_t nx_mcp_server_dispatch(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                         const nx_mcp_request_ctx_t *ctx, nx_mcp_call_t **pending) {
    if (pending != NULL) *pending = NULL;
    switch (msg->kind) {
    case NX_RPC_INVALID:
        ctx->reply(ctx->transport, nx_rpc_reject_new(msg));
        return NX_MCP_ANSWERED;
    case NX_RPC_NOTIFICATION:
    case NX_RPC_RESPONSE:
    case NX_RPC_ERROR_RESPONSE:
        return NX_MCP_NO_REPLY;
    case NX_RPC_REQUEST:
        break;
    }
    const char *m = msg->method;
    if (strcmp(m, "initialize") == 0) return do_initialize(s, msg, ctx);
    if (strcmp(m, "ping") == 0) return reply_result(ctx, msg->id, json_object());
    if (strcmp(m, "tools/list") == 0) return do_tools_list(s, msg, ctx);
    if (strcmp(m, "tools/call") == 0) return do_tools_call(s, msg, ctx, pending);
    char text[200];
    snprintf(text, sizeof(text), "Method not found: %.128s", m);
    return reply_error(ctx, msg->id, NX_RPC_METHOD_NOT_FOUND, text);
}
