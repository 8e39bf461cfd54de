/* The embedding API of nexus's MCP server: register native tools (with a JSON Schema for their
 * arguments), resources (static URIs and URI templates), prompts and a completion provider, and
 * answer their requests now or later. While a request runs its handler may report progress,
 * log to the client and ask the client something (sampling, elicitation, roots) and await the
 * answer. Everything about one request happens on the shard thread that received it. */
#ifndef NEXUS_MCP_H
#define NEXUS_MCP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nx_mcp_server nx_mcp_server_t;
/* One request being answered by a handler (tools/call, resources/read, prompts/get,
 * completion/complete). The handler owns it until it answers. */
typedef struct nx_mcp_call nx_mcp_call_t;

/* Runs a request. <args> (borrowed for the duration of the handler only) depends on the kind:
 *  - tool: the call's arguments, already valid against the inputSchema;
 *  - resource: {"uri": "...", "variables": {name: value}} (variables of a template, else {});
 *  - prompt: the prompt's arguments (an object of strings; required ones are present);
 *  - completion: the completion/complete params ({"ref", "argument", "context"?}).
 * The handler answers through nx_mcp_call_return* / nx_mcp_call_error exactly once, now or
 * later; until then it owns <call>. */
typedef void (*nx_mcp_handler_fn)(nx_mcp_call_t *call, json_t *args, void *data);
typedef nx_mcp_handler_fn nx_mcp_tool_fn;

/* Whether a tool may run as a task (extension io.modelcontextprotocol/tasks, 2026-07-28 era):
 * a client that declares the extension then gets a task id at once and polls tasks/get. */
typedef enum nx_mcp_task_support {
    NX_MCP_TASK_FORBIDDEN = 0, /* always answered in the request (the default) */
    NX_MCP_TASK_OPTIONAL,      /* a task when the handler does not answer at once */
    NX_MCP_TASK_REQUIRED,      /* only as a task: clients without the extension get -32021 */
} nx_mcp_task_support_t;

/* A tool as registered; the strings are copied. */
typedef struct nx_mcp_tool_def {
    const char *name;          /* 1-128 of [A-Za-z0-9_.-] */
    const char *title;         /* may be NULL */
    const char *description;   /* may be NULL */
    const char *input_schema;  /* JSON text of an object schema; NULL = any object */
    const char *output_schema; /* JSON text or NULL */
    const char *annotations;   /* JSON text of ToolAnnotations or NULL */
    nx_mcp_handler_fn handler;
    void *data;
    nx_mcp_task_support_t task_support;
} nx_mcp_tool_def_t;

/* A resource, or a family of them named by an RFC 6570 level-1 URI template
 * ("test://template/{id}/data"); strings are copied. The handler answers with a
 * ReadResourceResult ({"contents": [...]}) or nx_mcp_call_error(call, -32002, ...). */
typedef struct nx_mcp_resource_def {
    const char *uri; /* a URI, or a template when is_template */
    bool is_template;
    const char *name;                            /* required */
    const char *title, *description, *mime_type; /* may be NULL */
    nx_mcp_handler_fn handler;
    void *data;
} nx_mcp_resource_def_t;

/* One argument of a prompt. */
typedef struct nx_mcp_prompt_arg {
    const char *name;
    const char *description; /* may be NULL */
    bool required;
} nx_mcp_prompt_arg_t;

/* A prompt; strings are copied. The handler answers with a GetPromptResult
 * ({"messages": [...], "description"?}). */
typedef struct nx_mcp_prompt_def {
    const char *name;
    const char *title, *description; /* may be NULL */
    const nx_mcp_prompt_arg_t *arguments;
    size_t argument_count;
    nx_mcp_handler_fn handler;
    void *data;
} nx_mcp_prompt_def_t;

/* Levels of notifications/message, in increasing severity (RFC 5424 names). */
typedef enum nx_mcp_log_level {
    NX_MCP_LOG_DEBUG,
    NX_MCP_LOG_INFO,
    NX_MCP_LOG_NOTICE,
    NX_MCP_LOG_WARNING,
    NX_MCP_LOG_ERROR,
    NX_MCP_LOG_CRITICAL,
    NX_MCP_LOG_ALERT,
    NX_MCP_LOG_EMERGENCY,
} nx_mcp_log_level_t;

/** Creates a server announcing itself as <name> <version>; NULL on ENOMEM. */
nx_mcp_server_t *nx_mcp_server_new(const char *name, const char *version);
/** Frees <s> and its catalog. NULL-safe. Calls in flight must have been answered. */
void nx_mcp_server_free(nx_mcp_server_t *s);
/** Renames the server as initialize and server/discover announce it (copied); -ENOMEM. */
int nx_mcp_server_set_info(nx_mcp_server_t *s, const char *name, const char *version);
/** Sets the instructions returned by initialize (copied; NULL clears). */
void nx_mcp_server_set_instructions(nx_mcp_server_t *s, const char *instructions);
/** Registers the tool <def>; returns 0, or NX_ECONFIG with a message in <err> (bad name, a
 *  duplicate, a schema that is not valid JSON or does not compile). */
int nx_mcp_server_add_tool(nx_mcp_server_t *s, const nx_mcp_tool_def_t *def, char *err,
                           size_t errlen);
/** Registers the resource or template <def>; 0 or NX_ECONFIG with a message in <err>. */
int nx_mcp_server_add_resource(nx_mcp_server_t *s, const nx_mcp_resource_def_t *def, char *err,
                               size_t errlen);
/** Registers the prompt <def>; 0 or NX_ECONFIG with a message in <err>. */
int nx_mcp_server_add_prompt(nx_mcp_server_t *s, const nx_mcp_prompt_def_t *def, char *err,
                             size_t errlen);
/** Sets the handler of completion/complete, answering {"completion": {"values": [...],
 *  "total"?, "hasMore"?}}; without one the server completes nothing (empty values). */
void nx_mcp_server_set_completion(nx_mcp_server_t *s, nx_mcp_handler_fn handler, void *data);

/** Answers <call> with <result> (stolen: a CallToolResult, ReadResourceResult, ...) and frees
 *  <call>. */
void nx_mcp_call_return(nx_mcp_call_t *call, json_t *result);
/** Answers <call> with one text content item, flagged isError when <is_error>, and frees it. */
void nx_mcp_call_return_text(nx_mcp_call_t *call, const char *text, bool is_error);
/** Answers <call> with <value> (stolen) as structuredContent and, for clients that read only
 *  text, as pretty-printed JSON text; flagged isError when <is_error>. Frees <call>. */
void nx_mcp_call_return_json(nx_mcp_call_t *call, json_t *value, bool is_error);
/** Answers <call> with the JSON-RPC error <code>/<message> (data stolen, may be NULL) and frees
 *  it. Tools report their own failures as isError results instead. */
void nx_mcp_call_error(nx_mcp_call_t *call, int code, const char *message, json_t *data);

/* Releases a handler's state when its call is cancelled; after it returns <call> is freed and
 * must not be touched. */
typedef void (*nx_mcp_cancel_fn)(nx_mcp_call_t *call, void *arg);
/** Registers <fn>(<call>, <arg>) to run if <call> is cancelled before it is answered (client gone,
 *  notifications/cancelled, shutdown). Every handler that answers later must register one, or
 *  its state outlives the call. */
void nx_mcp_call_on_cancel(nx_mcp_call_t *call, nx_mcp_cancel_fn fn, void *arg);
/** True once the client cancelled the call or went away: the answer will be dropped. */
bool nx_mcp_call_cancelled(const nx_mcp_call_t *call);
/** The name of the tool or prompt, or the URI of the resource, that <call> serves. */
const char *nx_mcp_call_target(const nx_mcp_call_t *call);
#define nx_mcp_call_tool nx_mcp_call_target

/** Sends notifications/progress for <call> when the client asked for it (a progressToken in
 *  the request's _meta); <total> < 0 and <message> NULL are omitted. Progress must increase. */
void nx_mcp_call_progress(nx_mcp_call_t *call, double progress, double total, const char *message);
/** Sends notifications/message at <level> from <logger> (may be NULL) with <data> (stolen),
 *  unless the client set a higher level with logging/setLevel. */
void nx_mcp_call_log(nx_mcp_call_t *call, nx_mcp_log_level_t level, const char *logger,
                     json_t *data);
/** The client's capabilities as it declared them (borrowed; {} when unknown). */
const json_t *nx_mcp_call_client_capabilities(const nx_mcp_call_t *call);

/* Receives the client's answer to a server-to-client request: exactly one of <result> and
 * <error> (both borrowed for the duration of the callback) is non-NULL. <error> is a JSON-RPC
 * error object; the server also fails the request itself (code -32603) when the client went
 * away or cannot be asked. The callback may answer <call>. */
typedef void (*nx_mcp_response_fn)(nx_mcp_call_t *call, const json_t *result, const json_t *error,
                                   void *arg);
/** Sends the request <method> with <params> (stolen) to the client on whose behalf <call> runs
 *  (sampling/createMessage, elicitation/create, roots/list) and calls <fn> with its answer.
 *  The answer is awaited only while <call> is unanswered. */
void nx_mcp_call_request(nx_mcp_call_t *call, const char *method, json_t *params,
                         nx_mcp_response_fn fn, void *arg);

/** The request's params as the client sent them (borrowed; {} when absent): for what a
 *  handler needs beyond its arguments, such as _meta, or inputResponses and requestState when
 *  a 2026-07-28 client answers an input_required result. */
const json_t *nx_mcp_call_params(const nx_mcp_call_t *call);
/** True when the request came in the stateless 2026-07-28 era: there is no session, so
 *  nx_mcp_call_request always fails; a handler that needs input from the client returns
 *  {"resultType": "input_required", "inputRequests": {...}, "requestState"?: "..."} instead. */
bool nx_mcp_call_is_stateless(const nx_mcp_call_t *call);
/** Ends the event stream the call's answer would go on, after a priming event that tells the
 *  client to reconnect after <retry_ms> (SEP-1699 polling). The call goes on; its later
 *  messages and its answer wait in the session's event log until the client resumes with
 *  Last-Event-ID. No effect where streams cannot be resumed (no session, WebSocket, stdio). */
void nx_mcp_call_close_stream(nx_mcp_call_t *call, uint32_t retry_ms);

/** Resets the connection <call> came on without answering, as a crashing server would (for
 *  test peers injecting faults); the call is then cancelled like any whose client went away,
 *  so its cancel hook runs. No effect on stdio. */
void nx_mcp_call_drop_connection(nx_mcp_call_t *call);

/** Tells the clients of the calling shard thread that subscribed to <uri>
 *  (resources/subscribe) that it changed: notifications/resources/updated on each one's
 *  stream. Returns how many were told. */
size_t nx_mcp_resource_updated(const char *uri);
/** Sends the notification <method> with <params> (stolen, may be NULL) to every client of the
 *  calling shard thread that has a stream to receive it (WebSocket, stdio, an open GET stream);
 *  returns how many. */
size_t nx_mcp_broadcast(const char *method, json_t *params);

#endif
