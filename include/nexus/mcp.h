/* The embedding API of nexus's MCP server: register native tools with a JSON Schema for their
 * arguments, and answer their calls now or later. Arguments reach a handler only after they
 * validated against the tool's inputSchema. */
#ifndef NEXUS_MCP_H
#define NEXUS_MCP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct nx_mcp_server nx_mcp_server_t;
typedef struct nx_mcp_call nx_mcp_call_t;

/* Runs a tool. <arguments> (borrowed for the call) already match the inputSchema. The handler
 * answers through nx_mcp_call_return* exactly once, now or later; until then it owns <call>. */
typedef void (*nx_mcp_tool_fn)(nx_mcp_call_t *call, json_t *arguments, void *data);

/* A tool as registered; the strings are copied. */
typedef struct nx_mcp_tool_def {
    const char *name;          /* 1-128 of [A-Za-z0-9_.-] */
    const char *title;         /* may be NULL */
    const char *description;   /* may be NULL */
    const char *input_schema;  /* JSON text of an object schema; NULL = any object */
    const char *output_schema; /* JSON text or NULL */
    const char *annotations;   /* JSON text of ToolAnnotations or NULL */
    nx_mcp_tool_fn handler;
    void *data;
} nx_mcp_tool_def_t;

/** Creates a server announcing itself as <name> <version>; NULL on ENOMEM. */
nx_mcp_server_t *nx_mcp_server_new(const char *name, const char *version);
/** Frees <s> and its tools. NULL-safe. Calls in flight must have been answered. */
void nx_mcp_server_free(nx_mcp_server_t *s);
/** Registers the tool <def>; returns 0, or NX_ECONFIG with a message in <err> (bad name, a
 *  duplicate, a schema that is not valid JSON or does not compile). */
int nx_mcp_server_add_tool(nx_mcp_server_t *s, const nx_mcp_tool_def_t *def, char *err,
                           size_t errlen);
/** Answers <call> with the CallToolResult <result> (stolen) and frees <call>. */
void nx_mcp_call_return(nx_mcp_call_t *call, json_t *result);
/** Answers <call> with one text content item, flagged isError when <is_error>, and frees it. */
void nx_mcp_call_return_text(nx_mcp_call_t *call, const char *text, bool is_error);
/* Releases a tool's state when its call is cancelled; after it returns <call> is freed and must
 * not be touched. */
typedef void (*nx_mcp_cancel_fn)(nx_mcp_call_t *call, void *arg);
/** Registers <fn>(<call>, <arg>) to run if <call> is cancelled before it is answered (client gone,
 *  shutdown). Every tool that answers later must register one, or its state outlives the call. */
void nx_mcp_call_on_cancel(nx_mcp_call_t *call, nx_mcp_cancel_fn fn, void *arg);
/** True once the client cancelled the call or went away: the answer will be dropped. */
bool nx_mcp_call_cancelled(const nx_mcp_call_t *call);
/** The name of the tool <call> runs. */
const char *nx_mcp_call_tool(const nx_mcp_call_t *call);

#endif
