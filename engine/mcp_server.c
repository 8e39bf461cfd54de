/* MCP server core (see mcp_server.h and include/nexus/mcp.h): the catalog, lifecycle methods,
 * dispatch to native handlers, and what a handler may do while it runs (progress, logging,
 * server-to-client requests). The catalog is built before serving and then only read, so every
 * shard shares one server; per-client state lives in peers, each on one shard thread. */
#include "mcp_server.h"

#include "jsonschema.h"
#include "mcp_rules.h"
#include "mcp_session.h"
#include "nexus/errors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum call_kind { KIND_TOOL, KIND_RESOURCE, KIND_PROMPT, KIND_COMPLETION } call_kind_t;

/* One catalog entry: a tool, a resource, a resource template or a prompt. */
typedef struct entry {
    char *name;         /* tool/prompt name, resource URI or URI template */
    json_t *descriptor; /* the object the list method returns */
    nx_schema_t *input; /* tools: compiled inputSchema */
    json_t *required;   /* prompts: names of required arguments */
    json_t *headers;    /* tools: {"<H>": "<property>"} for properties marked x-mcp-header */
    nx_mcp_handler_fn handler;
    void *data;
    nx_mcp_task_support_t task_support;
} entry_t;

typedef struct catalog {
    entry_t *items;
    uint32_t count, cap;
} catalog_t;

struct nx_mcp_server {
    char *name, *version, *instructions;
    nx_mcp_provider_t provider; /* entries beyond the native ones (backends); fns may be NULL */
    void *provider_arg;
    catalog_t tools, resources, templates, prompts;
    nx_mcp_handler_fn complete;
    void *complete_data;
    uint32_t page_size;
};

/* One request answered by a handler; owned by the handler until it answers. */
struct nx_mcp_call {
    nx_list_t peer_link; /* in peer->calls while the peer lives */
    call_kind_t kind;
    char *target; /* tool/prompt name or resource URI */
    json_t *id;
    json_t *progress_token; /* NULL when the client asked for no progress */
    json_t *client_caps;    /* as the client declared them when the call started */
    json_t *params;         /* the request's params ({} when absent) */
    bool stateless;         /* 2026-07-28: results get resultType, logs need a logLevel */
    bool cacheable;         /* a resources/read: results carry caching hints */
    int log_threshold;      /* lowest level sent when there is no peer; > max = none */
    nx_mcp_close_stream_fn close_stream;
    void (*drop)(void *transport);
    nx_mcp_reply_fn reply; /* NULL once cancelled */
    nx_mcp_reply_fn send;
    void *transport;
    nx_mcp_peer_t *peer;   /* NULL when stateless or once the client is forgotten */
    nx_list_t outgoing;    /* this call's server-to-client requests awaiting answers */
    bool *answered_inline; /* set while the handler runs: tells dispatch it answered at once */
    nx_mcp_cancel_fn on_cancel;
    void *cancel_arg;
    uint32_t *attempts_out; /* an in-process caller's counter of tries (may be NULL) */
    bool no_cache;          /* an in-process caller asks to skip the tool cache */
};

/* A server-to-client request awaiting the client's answer. */
typedef struct outgoing {
    nx_list_t peer_link, call_link;
    json_int_t id;
    nx_mcp_call_t *call;
    nx_mcp_response_fn fn;
    void *arg;
} outgoing_t;

static const char *const level_names[] = {"debug", "info",     "notice", "warning",
                                          "error", "critical", "alert",  "emergency"};

int nx_mcp_log_level_from_name(const char *name) {
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcmp(level_names[i], name) == 0) return i;
    return -1;
}

/* ---- peers ---- */

/* Clients of this thread, for broadcasts and resource updates. */
static __thread nx_list_t thread_peers;

static nx_list_t *peers_of_thread(void) {
    if (thread_peers.next == NULL) nx_list_init(&thread_peers);
    return &thread_peers;
}

void nx_mcp_peer_init(nx_mcp_peer_t *p, nx_mcp_push_fn push, void *owner) {
    memset(p, 0, sizeof(*p));
    p->log_level = NX_MCP_LOG_DEBUG;
    p->client_capabilities = json_object();
    p->subscriptions = json_object();
    nx_list_init(&p->calls);
    nx_list_init(&p->outgoing);
    p->push = push;
    p->owner = owner;
    nx_list_insert_tail(peers_of_thread(), &p->link);
}

static json_t *client_gone_error(void) {
    return json_pack("{s:i, s:s}", "code", NX_RPC_INTERNAL_ERROR, "message",
                     "the client went away before answering");
}

/* Unlinks <o> from its peer and call, runs its callback with <result> or <error>, frees it. */
static void outgoing_finish(outgoing_t *o, const json_t *result, const json_t *error) {
    nx_list_remove(&o->peer_link);
    nx_list_remove(&o->call_link);
    nx_mcp_response_fn fn = o->fn;
    nx_mcp_call_t *call = o->call;
    void *arg = o->arg;
    free(o);
    fn(call, result, error, arg);
}

void nx_mcp_peer_dispose(nx_mcp_peer_t *p) {
    /* Calls first forget the client (keeping its log level), so that a callback below cannot
     * ask it anything new; then their unanswered requests fail. */
    while (!nx_list_empty(&p->calls)) {
        nx_mcp_call_t *c = nx_container_of(p->calls.next, nx_mcp_call_t, peer_link);
        nx_list_remove(&c->peer_link);
        c->peer = NULL;
        c->log_threshold = (int)p->log_level;
    }
    json_t *gone = client_gone_error();
    /* Callbacks may answer their calls, which unlinks them: take one entry at a time. */
    while (!nx_list_empty(&p->outgoing))
        outgoing_finish(nx_container_of(p->outgoing.next, outgoing_t, peer_link), NULL, gone);
    json_decref(gone);
    nx_list_remove(&p->link);
    json_decref(p->client_capabilities);
    json_decref(p->subscriptions);
    p->client_capabilities = p->subscriptions = NULL;
}

size_t nx_mcp_broadcast(const char *method, json_t *params) {
    size_t told = 0;
    nx_list_t *pos, *list = peers_of_thread();
    nx_list_foreach(pos, list) {
        nx_mcp_peer_t *p = nx_container_of(pos, nx_mcp_peer_t, link);
        if (p->push == NULL) continue;
        json_t *n = nx_rpc_notification_new(method, params ? json_deep_copy(params) : NULL);
        if (n != NULL && p->push(p, n)) told++;
    }
    json_decref(params);
    return told;
}

size_t nx_mcp_resource_updated(const char *uri) {
    size_t told = 0;
    nx_list_t *pos, *list = peers_of_thread();
    nx_list_foreach(pos, list) {
        nx_mcp_peer_t *p = nx_container_of(pos, nx_mcp_peer_t, link);
        if (p->push == NULL || json_object_get(p->subscriptions, uri) == NULL) continue;
        json_t *n = nx_rpc_notification_new("notifications/resources/updated",
                                            json_pack("{s:s}", "uri", uri));
        if (n != NULL && p->push(p, n)) told++;
    }
    return told;
}

/* ---- the catalog ---- */

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

static void catalog_free(catalog_t *c) {
    for (uint32_t i = 0; i < c->count; i++) {
        free(c->items[i].name);
        json_decref(c->items[i].descriptor);
        json_decref(c->items[i].required);
        json_decref(c->items[i].headers);
        nx_schema_free(c->items[i].input);
    }
    free(c->items);
}

void nx_mcp_server_free(nx_mcp_server_t *s) {
    if (s == NULL) return;
    catalog_free(&s->tools);
    catalog_free(&s->resources);
    catalog_free(&s->templates);
    catalog_free(&s->prompts);
    free(s->name);
    free(s->version);
    free(s->instructions);
    free(s);
}

int nx_mcp_server_set_info(nx_mcp_server_t *s, const char *name, const char *version) {
    char *n = strdup(name), *v = strdup(version);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    free(s->name);
    free(s->version);
    s->name = n;
    s->version = v;
    return 0;
}

void nx_mcp_server_set_instructions(nx_mcp_server_t *s, const char *instructions) {
    free(s->instructions);
    s->instructions = instructions ? strdup(instructions) : NULL;
}

void nx_mcp_server_set_completion(nx_mcp_server_t *s, nx_mcp_handler_fn handler, void *data) {
    s->complete = handler;
    s->complete_data = data;
}

void nx_mcp_server_set_page_size(nx_mcp_server_t *s, uint32_t page_size) {
    s->page_size = page_size ? page_size : 100;
}

uint32_t nx_mcp_server_tool_count(const nx_mcp_server_t *s) {
    return s->tools.count;
}

json_t *nx_mcp_server_tool_names(const nx_mcp_server_t *s) {
    json_t *names = json_array();
    for (uint32_t i = 0; i < s->tools.count; i++)
        json_array_append_new(names, json_string(s->tools.items[i].name));
    return names;
}

static const entry_t *catalog_find(const catalog_t *c, const char *name) {
    for (uint32_t i = 0; i < c->count; i++)
        if (strcmp(c->items[i].name, name) == 0) return &c->items[i];
    return NULL;
}

/* Appends <e> (its members now owned by the catalog); -ENOMEM leaves them to the caller. */
static int catalog_add(catalog_t *c, entry_t e) {
    if (c->count == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 16;
        entry_t *items = realloc(c->items, cap * sizeof(*items));
        if (items == NULL) return -ENOMEM;
        c->items = items;
        c->cap = cap;
    }
    c->items[c->count++] = e;
    return 0;
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

/* Sets <key> of <obj> to the string <value> when it is not NULL. */
static void set_opt_string(json_t *obj, const char *key, const char *value) {
    if (value != NULL) json_object_set_new(obj, key, json_string(value));
}

int nx_mcp_server_add_tool(nx_mcp_server_t *s, const nx_mcp_tool_def_t *def, char *err,
                           size_t errlen) {
    if (def->name == NULL || !valid_tool_name(def->name)) {
        snprintf(err, errlen, "tool name '%s' must be 1-128 characters of [A-Za-z0-9_.-]",
                 def->name ? def->name : "");
        return NX_ECONFIG;
    }
    if (catalog_find(&s->tools, def->name) != NULL) {
        snprintf(err, errlen, "tool '%s' is registered twice", def->name);
        return NX_ECONFIG;
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
                 "tool '%s': inputSchema must be an object schema (\"type\": \"object\")",
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
    set_opt_string(desc, "title", def->title);
    set_opt_string(desc, "description", def->description);
    const char *keys[] = {"outputSchema", "annotations"};
    const char *texts[] = {def->output_schema, def->annotations};
    for (size_t i = 0; i < 2; i++) {
        if (texts[i] == NULL) continue;
        json_t *j = parse_field(texts[i], keys[i], err, errlen);
        if (j == NULL) {
            json_decref(desc);
            nx_schema_free(compiled);
            return NX_ECONFIG;
        }
        json_object_set_new(desc, keys[i], j);
    }
    /* SEP-2243: properties mirrored in Mcp-Param-<H> request headers. */
    json_t *headers = json_object();
    const char *prop;
    json_t *ps;
    json_object_foreach(json_object_get(input, "properties"), prop, ps) {
        const char *h = json_string_value(json_object_get(ps, "x-mcp-header"));
        if (h != NULL) json_object_set_new(headers, h, json_string(prop));
    }
    if (def->task_support != NX_MCP_TASK_FORBIDDEN)
        json_object_set_new(
            desc, "execution",
            json_pack("{s:s}", "taskSupport",
                      def->task_support == NX_MCP_TASK_REQUIRED ? "required" : "optional"));
    entry_t e = {.name = strdup(def->name),
                 .descriptor = desc,
                 .headers = headers,
                 .input = compiled,
                 .task_support = def->task_support,
                 .handler = def->handler,
                 .data = def->data};
    if (e.name == NULL || catalog_add(&s->tools, e) < 0) {
        free(e.name);
        json_decref(desc);
        json_decref(headers);
        nx_schema_free(compiled);
        return -ENOMEM;
    }
    return 0;
}

/* A level-1 URI template: balanced {name} expressions with non-empty names. */
static bool valid_template(const char *t) {
    bool open = false, any = false;
    size_t name_len = 0;
    for (const char *p = t; *p; p++) {
        if (*p == '{') {
            if (open) return false;
            open = true;
            name_len = 0;
        } else if (*p == '}') {
            if (!open || name_len == 0) return false;
            open = false;
            any = true;
        } else if (open) {
            name_len++;
        }
    }
    return !open && any;
}

int nx_mcp_server_add_resource(nx_mcp_server_t *s, const nx_mcp_resource_def_t *def, char *err,
                               size_t errlen) {
    catalog_t *c = def->is_template ? &s->templates : &s->resources;
    const char *what = def->is_template ? "resource template" : "resource";
    if (def->uri == NULL || def->uri[0] == '\0' || strchr(def->uri, ':') == NULL) {
        snprintf(err, errlen, "%s URI '%s' must be an absolute URI (scheme:...)", what,
                 def->uri ? def->uri : "");
        return NX_ECONFIG;
    }
    if (def->is_template && !valid_template(def->uri)) {
        snprintf(err, errlen, "resource template '%s' needs balanced {name} expressions", def->uri);
        return NX_ECONFIG;
    }
    if (def->name == NULL || def->name[0] == '\0' || def->handler == NULL) {
        snprintf(err, errlen, "%s '%s' needs a name and a handler", what, def->uri);
        return NX_ECONFIG;
    }
    if (catalog_find(c, def->uri) != NULL) {
        snprintf(err, errlen, "%s '%s' is registered twice", what, def->uri);
        return NX_ECONFIG;
    }
    json_t *desc = json_pack("{s:s, s:s}", def->is_template ? "uriTemplate" : "uri", def->uri,
                             "name", def->name);
    set_opt_string(desc, "title", def->title);
    set_opt_string(desc, "description", def->description);
    set_opt_string(desc, "mimeType", def->mime_type);
    entry_t e = {
        .name = strdup(def->uri), .descriptor = desc, .handler = def->handler, .data = def->data};
    if (e.name == NULL || catalog_add(c, e) < 0) {
        free(e.name);
        json_decref(desc);
        return -ENOMEM;
    }
    return 0;
}

int nx_mcp_server_add_prompt(nx_mcp_server_t *s, const nx_mcp_prompt_def_t *def, char *err,
                             size_t errlen) {
    if (def->name == NULL || def->name[0] == '\0' || def->handler == NULL) {
        snprintf(err, errlen, "prompt '%s' needs a name and a handler", def->name ? def->name : "");
        return NX_ECONFIG;
    }
    if (catalog_find(&s->prompts, def->name) != NULL) {
        snprintf(err, errlen, "prompt '%s' is registered twice", def->name);
        return NX_ECONFIG;
    }
    json_t *desc = json_pack("{s:s}", "name", def->name);
    set_opt_string(desc, "title", def->title);
    set_opt_string(desc, "description", def->description);
    json_t *args = json_array(), *required = json_array();
    for (size_t i = 0; i < def->argument_count; i++) {
        const nx_mcp_prompt_arg_t *a = &def->arguments[i];
        json_t *arg = json_pack("{s:s, s:b}", "name", a->name, "required", a->required);
        set_opt_string(arg, "description", a->description);
        json_array_append_new(args, arg);
        if (a->required) json_array_append_new(required, json_string(a->name));
    }
    json_object_set_new(desc, "arguments", args);
    entry_t e = {.name = strdup(def->name),
                 .descriptor = desc,
                 .required = required,
                 .handler = def->handler,
                 .data = def->data};
    if (e.name == NULL || catalog_add(&s->prompts, e) < 0) {
        free(e.name);
        json_decref(desc);
        json_decref(required);
        return -ENOMEM;
    }
    return 0;
}

int nx_mcp_server_check_param_headers(const nx_mcp_server_t *s, const char *tool,
                                      const json_t *args, nx_mcp_header_fn header, void *arg,
                                      char *msg, size_t msglen) {
    const entry_t *e = tool ? catalog_find(&s->tools, tool) : NULL;
    if (e == NULL || json_object_size(e->headers) == 0) return 0;
    const char *h;
    json_t *prop;
    json_object_foreach(e->headers, h, prop) {
        char name[160];
        snprintf(name, sizeof(name), "Mcp-Param-%s", h);
        nx_str_t got = header(arg, name);
        json_t *v = json_object_get(args, json_string_value(prop));
        if (v == NULL && got.p == NULL) continue;
        if (got.p == NULL || v == NULL) {
            snprintf(msg, msglen, "the %s header and argument %s must come together", name,
                     json_string_value(prop));
            return NX_RPC_HEADER_MISMATCH;
        }
        char want[1024], dec[1024];
        size_t wlen, dlen = 0;
        if (json_is_string(v)) {
            wlen = (size_t)snprintf(want, sizeof(want), "%s", json_string_value(v));
        } else {
            char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            wlen = (size_t)snprintf(want, sizeof(want), "%s", t ? t : "");
            free(t);
        }
        if (nx_mcp_param_header_decode(got, dec, sizeof(dec), &dlen) < 0) {
            snprintf(msg, msglen, "the %s header is not valid =?base64?...?= text", name);
            return NX_RPC_HEADER_MISMATCH;
        }
        if (dlen != wlen || memcmp(dec, want, wlen) != 0) {
            snprintf(msg, msglen, "the %s header does not match argument %s", name,
                     json_string_value(prop));
            return NX_RPC_HEADER_MISMATCH;
        }
    }
    return 0;
}

/* Matches <uri> against level-1 template <t>; on a match fills <vars> with each expression's
 * value (a value never spans a '/'). */
static bool template_match(const char *t, const char *uri, json_t *vars) {
    while (*t && *t != '{') {
        if (*t++ != *uri++) return false;
    }
    if (*t == '\0') return *uri == '\0';
    /* An expression: its value is one or more characters other than '/', and as many as the
     * rest of the template allows (tried longest first, backtracking on a mismatch). */
    const char *close = strchr(t, '}');
    size_t longest = strcspn(uri, "/");
    for (size_t len = longest; len >= 1; len--) {
        if (!template_match(close + 1, uri + len, vars)) continue;
        char name[128], value[1024];
        snprintf(name, sizeof(name), "%.*s", (int)(close - t - 1), t + 1);
        snprintf(value, sizeof(value), "%.*s", (int)len, uri);
        json_object_set_new(vars, name, json_string(value));
        return true;
    }
    return false;
}

bool nx_mcp_server_has(const nx_mcp_server_t *s, nx_mcp_catalog_kind_t kind, const char *name) {
    const catalog_t *c = kind == NX_MCP_CATALOG_TOOLS       ? &s->tools
                         : kind == NX_MCP_CATALOG_RESOURCES ? &s->resources
                         : kind == NX_MCP_CATALOG_TEMPLATES ? &s->templates
                                                            : &s->prompts;
    return catalog_find(c, name) != NULL;
}

bool nx_mcp_uri_template_match(const char *tmpl, const char *uri) {
    json_t *vars = json_object();
    bool match = template_match(tmpl, uri, vars);
    json_decref(vars);
    return match;
}

/* ---- answering ---- */

/* Caching hints of list results and reads in the modern era: the catalog is fixed while
 * serving, so lists may be shared for a minute; what a read returns is the handler's business. */
#define LIST_TTL_MS 60000
#define READ_TTL_MS 0

/* Adds what the modern era requires of a result unless the handler set it: resultType and,
 * for cacheable methods, ttlMs and cacheScope. */
static json_t *decorate(json_t *result, bool stateless, int cache_kind) {
    if (!stateless || !json_is_object(result)) return result;
    if (json_object_get(result, "resultType") == NULL)
        json_object_set_new(result, "resultType", json_string("complete"));
    if (cache_kind != 0 && json_object_get(result, "ttlMs") == NULL) {
        json_object_set_new(result, "ttlMs",
                            json_integer(cache_kind == 1 ? LIST_TTL_MS : READ_TTL_MS));
        json_object_set_new(result, "cacheScope",
                            json_string(cache_kind == 1 ? "public" : "private"));
    }
    return result;
}

/* 1 for the list methods and server/discover (shared catalog), 2 for reads, 0 otherwise. */
static int cache_kind_of(const char *method) {
    static const char *const lists[] = {"tools/list", "prompts/list", "resources/list",
                                        "resources/templates/list", "server/discover"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        if (strcmp(method, lists[i]) == 0) return 1;
    return strcmp(method, "resources/read") == 0 ? 2 : 0;
}

static nx_mcp_dispatch_t reply_error(const nx_mcp_request_ctx_t *ctx, json_t *id, int code,
                                     const char *message) {
    ctx->reply(ctx->transport, nx_rpc_error_new(id, code, message, NULL));
    return NX_MCP_ANSWERED;
}

static nx_mcp_dispatch_t reply_result(const nx_mcp_request_ctx_t *ctx, const nx_rpc_msg_t *msg,
                                      json_t *result) {
    if (ctx->stateless) result = decorate(result, true, cache_kind_of(msg->method));
    ctx->reply(ctx->transport, nx_rpc_result_new(msg->id, result));
    return NX_MCP_ANSWERED;
}

/* Ends <call>: unlinks it, drops its unanswered server-to-client requests, sends <msg> (stolen)
 * unless cancelled, frees it. */
static void call_finish(nx_mcp_call_t *call, json_t *msg) {
    if (call->answered_inline != NULL) *call->answered_inline = true;
    while (!nx_list_empty(&call->outgoing)) {
        outgoing_t *o = nx_container_of(call->outgoing.next, outgoing_t, call_link);
        nx_list_remove(&o->peer_link);
        nx_list_remove(&o->call_link);
        free(o);
    }
    if (call->peer != NULL) nx_list_remove(&call->peer_link);
    if (call->reply != NULL && msg != NULL)
        call->reply(call->transport, msg);
    else
        json_decref(msg); /* cancelled: nobody is listening */
    json_decref(call->id);
    json_decref(call->progress_token);
    json_decref(call->client_caps);
    json_decref(call->params);
    free(call->target);
    free(call);
}

void nx_mcp_call_return(nx_mcp_call_t *call, json_t *result) {
    if (result == NULL) result = json_object();
    result = decorate(result, call->stateless, call->cacheable ? 2 : 0);
    call_finish(call, nx_rpc_result_new(call->id, result));
}

void nx_mcp_call_return_text(nx_mcp_call_t *call, const char *text, bool is_error) {
    json_t *r = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text);
    if (is_error) json_object_set_new(r, "isError", json_true());
    nx_mcp_call_return(call, r);
}

void nx_mcp_call_return_json(nx_mcp_call_t *call, json_t *value, bool is_error) {
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    json_t *r = json_pack("{s:[{s:s, s:s}], s:o}", "content", "type", "text", "text",
                          text ? text : "null", "structuredContent", value);
    free(text);
    if (is_error) json_object_set_new(r, "isError", json_true());
    nx_mcp_call_return(call, r);
}

void nx_mcp_call_error(nx_mcp_call_t *call, int code, const char *message, json_t *data) {
    call_finish(call, nx_rpc_error_new(call->id, code, message, data));
}

bool nx_mcp_call_cancelled(const nx_mcp_call_t *call) {
    return call->reply == NULL;
}

void nx_mcp_call_on_cancel(nx_mcp_call_t *call, nx_mcp_cancel_fn fn, void *arg) {
    call->on_cancel = fn;
    call->cancel_arg = arg;
}

bool nx_mcp_call_no_cache(const nx_mcp_call_t *call) {
    return call->no_cache;
}

void nx_mcp_call_note_attempts(nx_mcp_call_t *call, uint32_t attempts) {
    if (call->attempts_out != NULL) *call->attempts_out = attempts;
}

void nx_mcp_call_cancel(nx_mcp_call_t *call) {
    call->attempts_out = NULL;
    call->reply = NULL;
    call->send = NULL;
    call->transport = NULL;
    if (call->on_cancel != NULL) {
        call->on_cancel(call, call->cancel_arg);
        call_finish(call, NULL);
    }
}

json_t *nx_mcp_call_id(const nx_mcp_call_t *call) {
    return call->id;
}

const char *nx_mcp_call_target(const nx_mcp_call_t *call) {
    return call->target;
}

const json_t *nx_mcp_call_client_capabilities(const nx_mcp_call_t *call) {
    return call->client_caps;
}

const json_t *nx_mcp_call_params(const nx_mcp_call_t *call) {
    return call->params;
}

bool nx_mcp_call_is_stateless(const nx_mcp_call_t *call) {
    return call->stateless;
}

void nx_mcp_call_drop_connection(nx_mcp_call_t *call) {
    if (call->drop != NULL && call->reply != NULL) call->drop(call->transport);
}

void nx_mcp_call_close_stream(nx_mcp_call_t *call, uint32_t retry_ms) {
    if (call->close_stream != NULL && call->reply != NULL)
        call->close_stream(call->transport, retry_ms);
}

/* Sends <msg> (stolen) related to <call> before its answer; false when it could not go. */
static bool call_send(nx_mcp_call_t *call, json_t *msg) {
    if (msg == NULL || call->reply == NULL) {
        json_decref(msg);
        return false;
    }
    if (call->send != NULL) {
        call->send(call->transport, msg);
        return true;
    }
    if (call->peer != NULL && call->peer->push != NULL) return call->peer->push(call->peer, msg);
    json_decref(msg);
    return false;
}

/* A JSON number for <v>: an integer when it is one (progress counts are usually whole). */
static json_t *json_number(double v) {
    if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(json_int_t)v)
        return json_integer((json_int_t)v);
    return json_real(v);
}

void nx_mcp_call_progress(nx_mcp_call_t *call, double progress, double total, const char *message) {
    if (call->progress_token == NULL || !isfinite(progress) || (total >= 0 && !isfinite(total)))
        return; /* JSON has no NaN or infinity */
    json_t *p = json_pack("{s:O, s:o}", "progressToken", call->progress_token, "progress",
                          json_number(progress));
    if (total >= 0) json_object_set_new(p, "total", json_number(total));
    set_opt_string(p, "message", message);
    call_send(call, nx_rpc_notification_new("notifications/progress", p));
}

void nx_mcp_call_log(nx_mcp_call_t *call, nx_mcp_log_level_t level, const char *logger,
                     json_t *data) {
    int threshold = call->peer != NULL ? (int)call->peer->log_level : call->log_threshold;
    if ((int)level < threshold) {
        json_decref(data);
        return;
    }
    json_t *p =
        json_pack("{s:s, s:o}", "level", level_names[level], "data", data ? data : json_null());
    set_opt_string(p, "logger", logger);
    call_send(call, nx_rpc_notification_new("notifications/message", p));
}

void nx_mcp_call_request(nx_mcp_call_t *call, const char *method, json_t *params,
                         nx_mcp_response_fn fn, void *arg) {
    nx_mcp_peer_t *peer = call->peer;
    outgoing_t *o = peer && call->reply ? calloc(1, sizeof(*o)) : NULL;
    if (o == NULL) {
        json_decref(params);
        json_t *e = json_pack("{s:i, s:s}", "code", NX_RPC_INTERNAL_ERROR, "message",
                              peer ? "cannot send the request to the client"
                                   : "this client has no session to receive server requests");
        fn(call, NULL, e, arg);
        json_decref(e);
        return;
    }
    o->id = ++peer->next_request_id;
    o->call = call;
    o->fn = fn;
    o->arg = arg;
    nx_list_insert_tail(&peer->outgoing, &o->peer_link);
    nx_list_insert_tail(&call->outgoing, &o->call_link);
    json_t *id = json_integer(o->id);
    json_t *req = nx_rpc_request_new(id, method, params);
    json_decref(id);
    if (!call_send(call, req)) {
        json_t *e = json_pack("{s:i, s:s}", "code", NX_RPC_INTERNAL_ERROR, "message",
                              "the client has no open stream to receive the request");
        outgoing_finish(o, NULL, e);
        json_decref(e);
    }
}

/* A response or error from the client to one of our requests. */
static void take_response(nx_mcp_peer_t *peer, const nx_rpc_msg_t *msg) {
    if (peer == NULL || !json_is_integer(msg->id)) return;
    json_int_t id = json_integer_value(msg->id);
    nx_list_t *pos;
    nx_list_foreach(pos, &peer->outgoing) {
        outgoing_t *o = nx_container_of(pos, outgoing_t, peer_link);
        if (o->id == id) {
            outgoing_finish(o, msg->kind == NX_RPC_RESPONSE ? msg->result : NULL,
                            msg->kind == NX_RPC_ERROR_RESPONSE ? msg->error : NULL);
            return;
        }
    }
    /* Unknown: answered after its call ended; nothing waits for it. */
}

/* Starts a call of <kind> on <target> and runs <handler> with <args>. */
/* A new call of <kind> on <target> for request <msg> under <ctx>; NULL on ENOMEM. */
static nx_mcp_call_t *call_new(const nx_rpc_msg_t *msg, const nx_mcp_request_ctx_t *ctx,
                               call_kind_t kind, const char *target) {
    nx_mcp_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL || (call->target = strdup(target)) == NULL) {
        free(call);
        return NULL;
    }
    nx_rpc_error_t err;
    json_t *token = NULL;
    if (nx_rpc_progress_token(msg->params, &token, &err) == 1)
        call->progress_token = json_incref(token);
    call->kind = kind;
    call->id = json_incref(msg->id);
    call->reply = ctx->reply;
    call->send = ctx->send;
    call->transport = ctx->transport;
    call->peer = ctx->peer;
    call->stateless = ctx->stateless;
    call->cacheable = kind == KIND_RESOURCE;
    call->close_stream = ctx->close_stream;
    call->drop = ctx->drop;
    call->attempts_out = ctx->attempts_out;
    call->no_cache = ctx->no_cache;
    call->params = msg->params ? json_incref(msg->params) : json_object();
    json_t *meta = json_object_get(msg->params, "_meta");
    if (ctx->stateless) {
        /* The modern era says everything about the client in each request's _meta; without a
         * logLevel there the client wants no log messages at all. */
        json_t *caps = json_object_get(meta, NX_MCP_META_CAPABILITIES);
        call->client_caps = caps ? json_incref(caps) : json_object();
        const char *lvl = json_string_value(json_object_get(meta, NX_MCP_META_LOG_LEVEL));
        int l = lvl ? nx_mcp_log_level_from_name(lvl) : -1;
        call->log_threshold = l >= 0 ? l : NX_MCP_LOG_EMERGENCY + 1;
    } else {
        call->client_caps = ctx->peer && ctx->peer->client_capabilities
                                ? json_incref(ctx->peer->client_capabilities)
                                : json_object();
    }
    nx_list_init(&call->outgoing);
    nx_list_init(&call->peer_link);
    if (call->peer != NULL) nx_list_insert_tail(&call->peer->calls, &call->peer_link);
    return call;
}

/* Frees a call that was never handed to anyone (nothing is answered). */
static void call_discard(nx_mcp_call_t *call) {
    call->reply = NULL;
    call_finish(call, NULL);
}

static nx_mcp_dispatch_t run_handler(const nx_rpc_msg_t *msg, const nx_mcp_request_ctx_t *ctx,
                                     nx_mcp_call_t **pending, call_kind_t kind, const char *target,
                                     nx_mcp_handler_fn handler, void *data, json_t *args) {
    nx_mcp_call_t *call = call_new(msg, ctx, kind, target);
    if (call == NULL) return reply_error(ctx, msg->id, NX_RPC_INTERNAL_ERROR, "out of memory");
    /* A handler that answers inside this call frees <call> before returning. */
    bool answered = false;
    call->answered_inline = &answered;
    handler(call, args, data);
    if (answered) return NX_MCP_ANSWERED;
    call->answered_inline = NULL;
    if (pending != NULL) *pending = call;
    return NX_MCP_PENDING;
}

/* Hands a call to the provider as if it were a native handler (see offer). */
typedef struct provider_offer {
    nx_mcp_server_t *s;
    const char *method, *target;
    bool taken;
} provider_offer_t;

static void offer_to_provider(nx_mcp_call_t *call, json_t *args, void *data) {
    provider_offer_t *o = data;
    (void)args;
    o->taken = o->s->provider.call(o->s->provider_arg, call, o->method, o->target);
}

/* Offers request <msg> on <target> to the provider. True when it took it (or when the call
 * could not even be made: answered), with the outcome in <*d>; false when the provider does not
 * serve <target>, having answered nothing. */
static bool offer(nx_mcp_server_t *s, const nx_rpc_msg_t *msg, const nx_mcp_request_ctx_t *ctx,
                  nx_mcp_call_t **pending, call_kind_t kind, const char *target,
                  nx_mcp_dispatch_t *d) {
    if (s->provider.call == NULL) return false;
    provider_offer_t o = {s, msg->method, target, false};
    nx_mcp_call_t *call = NULL;
    *d = run_handler(msg, ctx, &call, kind, target, offer_to_provider, &o, NULL);
    if (o.taken || *d == NX_MCP_ANSWERED) { /* taken, or out of memory (answered) */
        if (pending != NULL) *pending = call;
        return true;
    }
    call_discard(call); /* untouched by a provider that does not serve the target */
    return false;
}

void nx_mcp_server_set_provider(nx_mcp_server_t *s, const nx_mcp_provider_t *p, void *arg) {
    s->provider = *p;
    s->provider_arg = arg;
}

void nx_mcp_server_get_provider(const nx_mcp_server_t *s, nx_mcp_provider_t *p, void **arg) {
    *p = s->provider;
    *arg = s->provider_arg;
}

void nx_mcp_call_forward(nx_mcp_call_t *call, const char *method, const json_t *params) {
    if (strcmp(method, "notifications/progress") == 0) {
        if (call->progress_token == NULL) return;
        json_t *p = json_deep_copy(params);
        json_object_set(p, "progressToken", call->progress_token);
        call_send(call, nx_rpc_notification_new(method, p));
        return;
    }
    if (strcmp(method, "notifications/message") == 0) {
        const char *name = json_string_value(json_object_get(params, "level"));
        int level = name ? nx_mcp_log_level_from_name(name) : -1;
        int threshold = call->peer != NULL ? (int)call->peer->log_level : call->log_threshold;
        if (level < 0 || level < threshold) return;
    }
    call_send(call, nx_rpc_notification_new(method, params ? json_deep_copy(params) : NULL));
}

/* ---- tasks (extension io.modelcontextprotocol/tasks, SEP-2663, 2026-07-28 era) ----
 * A tools/call from a client that declares the extension, for a tool that allows tasks and
 * does not answer at once, is answered with a task id; the call goes on, its answer is kept in
 * the task, and the client polls tasks/get, answers input requests with tasks/update and may
 * tasks/cancel. Tasks live on the shard thread that created them (the id names it; transports
 * route the tasks methods there) and are kept ttlMs after they end. */

#define TASKS_EXT "io.modelcontextprotocol/tasks"
#define TASK_TTL_MS 300000u
#define TASK_POLL_MS 250u
#define TASKS_PER_THREAD 10000u

typedef struct task {
    nx_list_t link;
    char id[NX_MCP_SESSION_ID_LEN + 1];
    const char *status; /* working, input_required, completed, failed, cancelled */
    json_t *result, *error;
    json_t *input_requests; /* while input_required: what the handler asked for */
    json_t *responses;      /* the answers collected so far by tasks/update */
    json_t *request_state;  /* handed back to the handler with the answers, never shown */
    const entry_t *tool;
    json_t *params; /* the tools/call params, to run the handler again with answers */
    nx_mcp_call_t *call;
    char created[32], updated[32];
    uint64_t expires_ms; /* monotonic; 0 while not ended */
} task_t;

static __thread nx_list_t thread_tasks;
static __thread uint32_t thread_task_count;
static __thread uint32_t thread_shard;

void nx_mcp_tasks_set_shard(uint32_t shard) {
    thread_shard = shard;
}

static nx_list_t *tasks_of_thread(void) {
    if (thread_tasks.next == NULL) nx_list_init(&thread_tasks);
    return &thread_tasks;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ISO-8601 UTC with milliseconds, as task timestamps are written. */
static void iso_now(char out[32]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static bool task_ended(const task_t *t) {
    return strcmp(t->status, "completed") == 0 || strcmp(t->status, "failed") == 0 ||
           strcmp(t->status, "cancelled") == 0;
}

static void task_free(task_t *t) {
    nx_list_remove(&t->link);
    thread_task_count--;
    json_decref(t->result);
    json_decref(t->error);
    json_decref(t->input_requests);
    json_decref(t->responses);
    json_decref(t->request_state);
    json_decref(t->params);
    free(t);
}

/* Drops ended tasks whose time to live is over. */
static void tasks_sweep(void) {
    uint64_t now = mono_ms();
    nx_list_t *pos, *tmp, *list = tasks_of_thread();
    nx_list_foreach_safe(pos, tmp, list) {
        task_t *t = nx_container_of(pos, task_t, link);
        if (t->expires_ms != 0 && t->expires_ms <= now) task_free(t);
    }
}

static task_t *task_find(const char *id) {
    nx_list_t *pos, *list = tasks_of_thread();
    nx_list_foreach(pos, list) {
        task_t *t = nx_container_of(pos, task_t, link);
        if (strcmp(t->id, id) == 0) return t;
    }
    return NULL;
}

static void task_set_status(task_t *t, const char *status) {
    t->status = status;
    iso_now(t->updated);
    if (task_ended(t)) t->expires_ms = mono_ms() + TASK_TTL_MS;
}

/* The reply function of a call running as a task: its answer becomes the task's state. */
static void task_on_reply(void *transport, json_t *response) {
    task_t *t = transport;
    t->call = NULL;
    json_t *error = json_object_get(response, "error");
    json_t *result = json_object_get(response, "result");
    const char *type = json_string_value(json_object_get(result, "resultType"));
    if (error != NULL) {
        t->error = json_incref(error);
        task_set_status(t, "failed");
    } else if (type != NULL && strcmp(type, "input_required") == 0) {
        json_decref(t->input_requests);
        json_decref(t->request_state);
        json_decref(t->responses);
        t->input_requests = json_incref(json_object_get(result, "inputRequests"));
        t->request_state = json_incref(json_object_get(result, "requestState"));
        t->responses = json_object();
        task_set_status(t, "input_required");
    } else {
        t->result = json_incref(result);
        task_set_status(t, "completed");
    }
    json_decref(response);
}

/* Progress and log messages of a task have nobody to go to: the client polls. */
static void task_on_send(void *transport, json_t *msg) {
    json_decref(msg);
}

/* Makes the running <call> the task's: its answer now goes to the task. */
static void task_adopt(task_t *t, nx_mcp_call_t *call) {
    t->call = call;
    call->reply = task_on_reply;
    call->send = task_on_send;
    call->transport = t;
    call->close_stream = NULL;
    call->drop = NULL;
}

static json_t *task_envelope(const task_t *t, const char *result_type) {
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i}", "resultType", result_type, "taskId",
                     t->id, "status", t->status, "createdAt", t->created, "lastUpdatedAt",
                     t->updated, "ttlMs", (json_int_t)TASK_TTL_MS, "pollIntervalMs",
                     (json_int_t)TASK_POLL_MS);
}

/* Turns the pending <call> of tools/call <msg> into a new task; NULL when the thread holds too
 * many (the call then simply goes on as a request). */
static task_t *task_start(const entry_t *tool, const nx_rpc_msg_t *msg, nx_mcp_call_t *call) {
    tasks_sweep();
    if (thread_task_count >= TASKS_PER_THREAD) return NULL;
    task_t *t = calloc(1, sizeof(*t));
    if (t == NULL || nx_mcp_random_id(thread_shard, t->id) < 0) {
        free(t);
        return NULL;
    }
    t->tool = tool;
    t->params = json_deep_copy(msg->params);
    iso_now(t->created);
    memcpy(t->updated, t->created, sizeof(t->updated));
    t->status = "working";
    nx_list_insert_tail(tasks_of_thread(), &t->link);
    thread_task_count++;
    task_adopt(t, call);
    return t;
}

void nx_mcp_tasks_dispose(void) {
    nx_list_t *list = tasks_of_thread();
    while (!nx_list_empty(list)) {
        task_t *t = nx_container_of(list->next, task_t, link);
        if (t->call != NULL) nx_mcp_call_cancel(t->call);
        task_free(t);
    }
}

static bool client_has_tasks(const nx_mcp_request_ctx_t *ctx, const nx_rpc_msg_t *msg) {
    json_t *caps = json_object_get(json_object_get(msg->params, "_meta"), NX_MCP_META_CAPABILITIES);
    return ctx->stateless && json_object_get(json_object_get(caps, "extensions"), TASKS_EXT);
}

static nx_mcp_dispatch_t reply_missing_tasks(const nx_mcp_request_ctx_t *ctx, json_t *id,
                                             const char *what) {
    char m[200];
    snprintf(m, sizeof(m), "%s needs the client capability extensions[\"%s\"]", what, TASKS_EXT);
    ctx->reply(ctx->transport, nx_rpc_error_new(id, NX_RPC_MISSING_CAPABILITY, m,
                                                json_pack("{s:{s:{s:{}}}}", "requiredCapabilities",
                                                          "extensions", TASKS_EXT)));
    return NX_MCP_ANSWERED;
}

/* Runs the task's tool again with the answers to its input requests (SEP-2322 style). */
static void task_resume(nx_mcp_server_t *s, task_t *t);

static nx_mcp_dispatch_t do_tasks(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                  const nx_mcp_request_ctx_t *ctx) {
    if (!ctx->stateless) {
        char text[200];
        snprintf(text, sizeof(text), "Method not found: %.64s (tasks need protocol %s)",
                 msg->method, NX_MCP_MODERN_VERSION);
        return reply_error(ctx, msg->id, NX_RPC_METHOD_NOT_FOUND, text);
    }
    if (!client_has_tasks(ctx, msg)) return reply_missing_tasks(ctx, msg->id, msg->method);
    nx_rpc_error_t err;
    const char *id = NULL;
    if (nx_rpc_param_string(msg->params, "taskId", true, &id, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    tasks_sweep();
    task_t *t = task_find(id);
    if (t == NULL) {
        char m[200];
        snprintf(m, sizeof(m), "unknown taskId '%.64s' (never created here, or expired)", id);
        return reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS, m);
    }
    if (strcmp(msg->method, "tasks/cancel") == 0) {
        if (!task_ended(t)) {
            nx_mcp_call_t *call = t->call;
            t->call = NULL;
            if (call != NULL) nx_mcp_call_cancel(call);
            task_set_status(t, "cancelled");
        }
        return reply_result(ctx, msg, json_object());
    }
    if (strcmp(msg->method, "tasks/update") == 0) {
        json_t *answers = NULL;
        if (nx_rpc_param(msg->params, "inputResponses", NX_RPC_T_OBJECT, true, &answers, &err) < 0)
            return reply_error(ctx, msg->id, err.code, err.message);
        if (strcmp(t->status, "input_required") == 0) {
            const char *key;
            json_t *v;
            json_object_foreach(answers, key, v) {
                if (json_object_get(t->input_requests, key) != NULL)
                    json_object_set(t->responses, key, v);
            }
            if (json_object_size(t->responses) >= json_object_size(t->input_requests))
                task_resume(s, t);
        }
        return reply_result(ctx, msg, json_object());
    }
    /* tasks/get: the task, with what its state carries */
    json_t *r = task_envelope(t, "complete");
    if (t->result != NULL) json_object_set(r, "result", t->result);
    if (t->error != NULL) json_object_set(r, "error", t->error);
    if (strcmp(t->status, "input_required") == 0) {
        json_t *pending = json_object();
        const char *key;
        json_t *v;
        json_object_foreach(t->input_requests, key, v) {
            if (json_object_get(t->responses, key) == NULL) json_object_set(pending, key, v);
        }
        json_object_set_new(r, "inputRequests", pending);
    }
    ctx->reply(ctx->transport, nx_rpc_result_new(msg->id, r));
    return NX_MCP_ANSWERED;
}

/* ---- methods ---- */

static json_t *capabilities(const nx_mcp_server_t *s) {
    /* Every method is served (empty lists included), so every capability is declared. */
    (void)s;
    return json_pack("{s:{s:b}, s:{s:b, s:b}, s:{s:b}, s:{}, s:{}}", "tools", "listChanged", 1,
                     "resources", "subscribe", 1, "listChanged", 1, "prompts", "listChanged", 1,
                     "logging", "completions");
}

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
    nx_mcp_peer_t *peer = ctx->peer;
    if (peer != NULL) {
        json_decref(peer->client_capabilities);
        peer->client_capabilities = json_deep_copy(caps);
        snprintf(peer->protocol_version, sizeof(peer->protocol_version), "%s", answer);
        peer->initialized = true;
    }
    json_t *result =
        json_pack("{s:s, s:o, s:{s:s, s:s}}", "protocolVersion", answer, "capabilities",
                  capabilities(s), "serverInfo", "name", s->name, "version", s->version);
    set_opt_string(result, "instructions", s->instructions);
    return reply_result(ctx, msg, result);
}

/* Reads params.cursor for list <c> with cursor prefix <tag>: the offset it names, 0 without a
 * cursor, or -1 after answering -32602. Cursors are opaque to clients: tag + hex offset. */
static long read_cursor(const nx_rpc_msg_t *msg, const nx_mcp_request_ctx_t *ctx, char tag,
                        uint32_t count) {
    nx_rpc_error_t err;
    const char *cursor = NULL;
    if (nx_rpc_param_string(msg->params, "cursor", false, &cursor, &err) < 0) {
        reply_error(ctx, msg->id, err.code, err.message);
        return -1;
    }
    if (cursor == NULL) return 0;
    char *end = NULL;
    unsigned long offset =
        cursor[0] == tag && cursor[1] != '\0' ? strtoul(cursor + 1, &end, 16) : 0;
    if (end == NULL || *end != '\0' || offset > count) {
        reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS,
                    "params.cursor is not a cursor this server returned");
        return -1;
    }
    return (long)offset;
}

static nx_mcp_dispatch_t do_list(const nx_mcp_server_t *s, const catalog_t *c, const char *key,
                                 char tag, const nx_rpc_msg_t *msg,
                                 const nx_mcp_request_ctx_t *ctx) {
    /* Entries of a provider (backends) follow the native ones; the merged list is paged
     * alike. */
    json_t *extra = NULL;
    if (s->provider.list != NULL) {
        extra = json_array();
        nx_mcp_catalog_kind_t kind = c == &s->tools       ? NX_MCP_CATALOG_TOOLS
                                     : c == &s->resources ? NX_MCP_CATALOG_RESOURCES
                                     : c == &s->templates ? NX_MCP_CATALOG_TEMPLATES
                                                          : NX_MCP_CATALOG_PROMPTS;
        s->provider.list(s->provider_arg, kind, extra);
    }
    uint32_t total = c->count + (uint32_t)json_array_size(extra);
    long offset = read_cursor(msg, ctx, tag, total);
    if (offset < 0) {
        json_decref(extra);
        return NX_MCP_ANSWERED;
    }
    json_t *items = json_array();
    uint32_t i = (uint32_t)offset;
    for (; i < total && json_array_size(items) < s->page_size; i++)
        json_array_append(items, i < c->count ? c->items[i].descriptor
                                              : json_array_get(extra, i - c->count));
    json_decref(extra);
    json_t *result = json_pack("{s:o}", key, items);
    if (i < total) {
        char next[24];
        snprintf(next, sizeof(next), "%c%x", tag, i);
        json_object_set_new(result, "nextCursor", json_string(next));
    }
    return reply_result(ctx, msg, result);
}

/* Reads params.name and params.arguments (an object, optional) of a tools/call or prompts/get;
 * false after answering -32602 when either is wrong. */
static bool read_name_args(const nx_rpc_msg_t *msg, const nx_mcp_request_ctx_t *ctx,
                           const char **name, json_t **args) {
    nx_rpc_error_t err;
    if (nx_rpc_param_string(msg->params, "name", true, name, &err) < 0 ||
        nx_rpc_param(msg->params, "arguments", NX_RPC_T_OBJECT, false, args, &err) < 0) {
        reply_error(ctx, msg->id, err.code, err.message);
        return false;
    }
    return true;
}

static nx_mcp_dispatch_t reply_unknown(const nx_mcp_request_ctx_t *ctx, const nx_rpc_msg_t *msg,
                                       const char *what, const char *name) {
    char m[200];
    snprintf(m, sizeof(m), "Unknown %s: %.128s", what, name);
    return reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS, m);
}

static nx_mcp_dispatch_t do_tools_call(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                       const nx_mcp_request_ctx_t *ctx, nx_mcp_call_t **pending) {
    const char *name = NULL;
    json_t *args = NULL;
    if (!read_name_args(msg, ctx, &name, &args)) return NX_MCP_ANSWERED;
    const entry_t *tool = catalog_find(&s->tools, name);
    nx_mcp_dispatch_t d;
    /* Not native: maybe a backend's tool, validated by the backend itself. */
    if (tool == NULL && offer(s, msg, ctx, pending, KIND_TOOL, name, &d)) return d;
    if (tool == NULL) return reply_unknown(ctx, msg, "tool", name);
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
            ctx, msg,
            json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", m, "isError", 1));
    }
    bool tasks = client_has_tasks(ctx, msg);
    if (tool->task_support == NX_MCP_TASK_REQUIRED && !tasks) {
        json_decref(empty);
        return reply_missing_tasks(ctx, msg->id, "this tool runs only as a task: it");
    }
    nx_mcp_call_t *call = NULL;
    d = run_handler(msg, ctx, &call, KIND_TOOL, tool->name, tool->handler, tool->data, args);
    json_decref(empty);
    task_t *t = NULL;
    if (d == NX_MCP_PENDING && tasks && tool->task_support != NX_MCP_TASK_FORBIDDEN &&
        (t = task_start(tool, msg, call)) != NULL) {
        /* Still running: the client gets the task now and polls for the rest. */
        ctx->reply(ctx->transport, nx_rpc_result_new(msg->id, task_envelope(t, "task")));
        return NX_MCP_ANSWERED;
    }
    if (pending != NULL) *pending = call;
    return d;
}

static void task_resume(nx_mcp_server_t *s, task_t *t) {
    json_t *params = json_deep_copy(t->params);
    json_object_set(params, "inputResponses", t->responses);
    if (t->request_state != NULL) json_object_set(params, "requestState", t->request_state);
    json_decref(t->input_requests);
    json_decref(t->request_state);
    t->input_requests = t->request_state = NULL;
    task_set_status(t, "working");
    json_t *id = json_integer(0);
    nx_rpc_msg_t msg = {.kind = NX_RPC_REQUEST, .id = id, .method = "tools/call", .params = params};
    nx_mcp_request_ctx_t ctx = {
        .reply = task_on_reply, .send = task_on_send, .transport = t, .stateless = true};
    json_t *args = json_object_get(params, "arguments");
    json_t *empty = args ? NULL : json_object();
    nx_mcp_call_t *call = NULL;
    if (run_handler(&msg, &ctx, &call, KIND_TOOL, t->tool->name, t->tool->handler, t->tool->data,
                    args ? args : empty) == NX_MCP_PENDING)
        t->call = call;
    json_decref(empty);
    json_decref(id);
    json_decref(params);
}

static nx_mcp_dispatch_t do_resources_read(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                           const nx_mcp_request_ctx_t *ctx,
                                           nx_mcp_call_t **pending) {
    nx_rpc_error_t err;
    const char *uri = NULL;
    if (nx_rpc_param_string(msg->params, "uri", true, &uri, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    json_t *vars = json_object();
    const entry_t *e = catalog_find(&s->resources, uri);
    for (uint32_t i = 0; e == NULL && i < s->templates.count; i++) {
        json_object_clear(vars);
        if (template_match(s->templates.items[i].name, uri, vars)) e = &s->templates.items[i];
    }
    nx_mcp_dispatch_t d;
    if (e == NULL && offer(s, msg, ctx, pending, KIND_RESOURCE, uri, &d)) {
        json_decref(vars);
        return d;
    }
    if (e == NULL) {
        json_decref(vars);
        char m[300];
        snprintf(m, sizeof(m), "Resource not found: %.256s", uri);
        /* -32002 was the legacy era's code; 2026-07-28 (SEP-2164) says invalid params. */
        int code = ctx->stateless ? NX_RPC_INVALID_PARAMS : NX_RPC_RESOURCE_NOT_FOUND;
        ctx->reply(ctx->transport,
                   nx_rpc_error_new(msg->id, code, m, json_pack("{s:s}", "uri", uri)));
        return NX_MCP_ANSWERED;
    }
    json_t *args = json_pack("{s:s, s:o}", "uri", uri, "variables", vars);
    d = run_handler(msg, ctx, pending, KIND_RESOURCE, uri, e->handler, e->data, args);
    json_decref(args);
    return d;
}

/* resources/subscribe and resources/unsubscribe {uri}. */
static bool is_native_resource(const nx_mcp_server_t *s, const char *uri) {
    if (catalog_find(&s->resources, uri) != NULL) return true;
    for (uint32_t i = 0; i < s->templates.count; i++)
        if (nx_mcp_uri_template_match(s->templates.items[i].name, uri)) return true;
    return false;
}

static nx_mcp_dispatch_t do_subscription(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                         const nx_mcp_request_ctx_t *ctx, bool subscribe) {
    nx_rpc_error_t err;
    const char *uri = NULL;
    if (nx_rpc_param_string(msg->params, "uri", true, &uri, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    if (ctx->peer == NULL)
        return reply_error(ctx, msg->id, NX_RPC_INVALID_REQUEST,
                           "subscriptions need a session (or a WebSocket/stdio connection)");
    bool had = json_object_get(ctx->peer->subscriptions, uri) != NULL;
    if (subscribe)
        json_object_set_new(ctx->peer->subscriptions, uri, json_true());
    else
        json_object_del(ctx->peer->subscriptions, uri);
    /* A backend's resource: the backend is told too, so its updates reach us (and, through
     * nx_mcp_resource_updated, this client). */
    if (had != subscribe && s->provider.subscribe != NULL && !is_native_resource(s, uri))
        s->provider.subscribe(s->provider_arg, uri, subscribe);
    return reply_result(ctx, msg, json_object());
}

static nx_mcp_dispatch_t do_prompts_get(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                        const nx_mcp_request_ctx_t *ctx, nx_mcp_call_t **pending) {
    const char *name = NULL;
    json_t *args = NULL;
    if (!read_name_args(msg, ctx, &name, &args)) return NX_MCP_ANSWERED;
    const entry_t *p = catalog_find(&s->prompts, name);
    nx_mcp_dispatch_t d;
    if (p == NULL && offer(s, msg, ctx, pending, KIND_PROMPT, name, &d)) return d;
    if (p == NULL) return reply_unknown(ctx, msg, "prompt", name);
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v) {
        if (!json_is_string(v)) {
            char m[200];
            snprintf(m, sizeof(m), "params.arguments.%.64s must be a string", key);
            return reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS, m);
        }
    }
    size_t i;
    json_array_foreach(p->required, i, v) {
        if (json_object_get(args, json_string_value(v)) == NULL) {
            char m[200];
            snprintf(m, sizeof(m), "params.arguments.%.64s is required by prompt %.64s",
                     json_string_value(v), name);
            return reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS, m);
        }
    }
    json_t *empty = NULL;
    if (args == NULL) args = empty = json_object();
    d = run_handler(msg, ctx, pending, KIND_PROMPT, p->name, p->handler, p->data, args);
    json_decref(empty);
    return d;
}

static nx_mcp_dispatch_t do_complete(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                     const nx_mcp_request_ctx_t *ctx, nx_mcp_call_t **pending) {
    nx_rpc_error_t err;
    json_t *ref = NULL, *argument = NULL;
    if (nx_rpc_param(msg->params, "ref", NX_RPC_T_OBJECT, true, &ref, &err) < 0 ||
        nx_rpc_param(msg->params, "argument", NX_RPC_T_OBJECT, true, &argument, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    const char *type = json_string_value(json_object_get(ref, "type"));
    if (type == NULL || (strcmp(type, "ref/prompt") != 0 && strcmp(type, "ref/resource") != 0))
        return reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS,
                           "params.ref.type must be \"ref/prompt\" or \"ref/resource\"");
    if (!json_is_string(json_object_get(argument, "name")) ||
        !json_is_string(json_object_get(argument, "value")))
        return reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS,
                           "params.argument needs string members name and value");
    const char *target = json_string_value(json_object_get(ref, "name"));
    if (target == NULL) target = json_string_value(json_object_get(ref, "uri"));
    /* A backend's prompt or template completes at the backend. */
    bool native = target != NULL && (strcmp(type, "ref/prompt") == 0
                                         ? catalog_find(&s->prompts, target) != NULL
                                         : catalog_find(&s->templates, target) != NULL ||
                                               catalog_find(&s->resources, target) != NULL);
    nx_mcp_dispatch_t d;
    if (!native && target != NULL && offer(s, msg, ctx, pending, KIND_COMPLETION, target, &d))
        return d;
    if (s->complete == NULL)
        return reply_result(
            ctx, msg,
            json_pack("{s:{s:[], s:i, s:b}}", "completion", "values", "total", 0, "hasMore", 0));
    return run_handler(msg, ctx, pending, KIND_COMPLETION, target ? target : "", s->complete,
                       s->complete_data, msg->params);
}

/* server/discover (2026-07-28): versions, capabilities and who we are, in one cacheable answer.
 * listChanged and subscribe are not offered: the stateless era delivers them through
 * subscriptions/listen, which nexus does not serve yet. */
static nx_mcp_dispatch_t do_discover(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                     const nx_mcp_request_ctx_t *ctx) {
    json_t *result =
        json_pack("{s:[s], s:{s:{}, s:{}, s:{}, s:{}, s:{s:{}}}, s:{s:{s:s, s:s}}}",
                  "supportedVersions", NX_MCP_MODERN_VERSION, "capabilities", "tools", "resources",
                  "prompts", "completions", "extensions", TASKS_EXT, "_meta",
                  NX_MCP_META_SERVER_INFO, "name", s->name, "version", s->version);
    set_opt_string(result, "instructions", s->instructions);
    return reply_result(ctx, msg, result);
}

static nx_mcp_dispatch_t do_set_level(const nx_rpc_msg_t *msg, const nx_mcp_request_ctx_t *ctx) {
    nx_rpc_error_t err;
    const char *level = NULL;
    if (nx_rpc_param_string(msg->params, "level", true, &level, &err) < 0)
        return reply_error(ctx, msg->id, err.code, err.message);
    int l = nx_mcp_log_level_from_name(level);
    if (l < 0)
        return reply_error(ctx, msg->id, NX_RPC_INVALID_PARAMS,
                           "params.level must be one of debug, info, notice, warning, error, "
                           "critical, alert, emergency");
    if (ctx->peer != NULL) ctx->peer->log_level = (nx_mcp_log_level_t)l;
    return reply_result(ctx, msg, json_object());
}

nx_mcp_dispatch_t nx_mcp_server_dispatch(nx_mcp_server_t *s, const nx_rpc_msg_t *msg,
                                         const nx_mcp_request_ctx_t *ctx, nx_mcp_call_t **pending) {
    if (pending != NULL) *pending = NULL;
    switch (msg->kind) {
    case NX_RPC_INVALID:
        ctx->reply(ctx->transport, nx_rpc_reject_new(msg));
        return NX_MCP_ANSWERED;
    case NX_RPC_RESPONSE:
    case NX_RPC_ERROR_RESPONSE:
        take_response(ctx->peer, msg);
        return NX_MCP_NO_REPLY;
    case NX_RPC_NOTIFICATION:
        return NX_MCP_NO_REPLY;
    case NX_RPC_REQUEST:
        break;
    }
    const char *m = msg->method;
    static const char *const methods[] = {"initialize",
                                          "ping",
                                          "tools/list",
                                          "tools/call",
                                          "resources/list",
                                          "resources/templates/list",
                                          "resources/read",
                                          "resources/subscribe",
                                          "resources/unsubscribe",
                                          "prompts/list",
                                          "prompts/get",
                                          "completion/complete",
                                          "logging/setLevel"};
    size_t which = 0, n = sizeof(methods) / sizeof(methods[0]);
    while (which < n && strcmp(methods[which], m) != 0)
        which++;
    if (strcmp(m, "tasks/get") == 0 || strcmp(m, "tasks/update") == 0 ||
        strcmp(m, "tasks/cancel") == 0)
        return do_tasks(s, msg, ctx);
    if (ctx->stateless) {
        /* What needs a session (initialize, ping, setLevel, subscriptions) is gone in
         * 2026-07-28; server/discover is new. */
        if (strcmp(m, "server/discover") == 0) return do_discover(s, msg, ctx);
        if (which == 0 || which == 1 || which == 7 || which == 8 || which == 12) which = n;
    }
    /* Before initialize only initialize and ping make sense on a connection (legacy era). */
    if (which >= 2 && which < n && ctx->peer != NULL && !ctx->peer->initialized)
        return reply_error(ctx, msg->id, NX_RPC_INVALID_REQUEST,
                           "the connection is not initialized: send initialize first");
    switch (which) {
    case 0:
        return do_initialize(s, msg, ctx);
    case 1:
        return reply_result(ctx, msg, json_object());
    case 2:
        return do_list(s, &s->tools, "tools", 't', msg, ctx);
    case 3:
        return do_tools_call(s, msg, ctx, pending);
    case 4:
        return do_list(s, &s->resources, "resources", 'r', msg, ctx);
    case 5:
        return do_list(s, &s->templates, "resourceTemplates", 'u', msg, ctx);
    case 6:
        return do_resources_read(s, msg, ctx, pending);
    case 7:
        return do_subscription(s, msg, ctx, true);
    case 8:
        return do_subscription(s, msg, ctx, false);
    case 9:
        return do_list(s, &s->prompts, "prompts", 'p', msg, ctx);
    case 10:
        return do_prompts_get(s, msg, ctx, pending);
    case 11:
        return do_complete(s, msg, ctx, pending);
    case 12:
        return do_set_level(msg, ctx);
    default:
        break;
    }
    char text[200];
    snprintf(text, sizeof(text), "Method not found: %.128s%s", m,
             ctx->stateless ? " (in protocol " NX_MCP_MODERN_VERSION ")" : "");
    return reply_error(ctx, msg->id, NX_RPC_METHOD_NOT_FOUND, text);
}
