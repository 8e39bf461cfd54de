/* The request rules of MCP's HTTP transports, as pure functions: which protocol revisions
 * nexus speaks, the Accept header a POST or GET must carry (406), the MCP-Protocol-Version
 * header (400), and DNS-rebinding protection by Origin and Host allow-lists (403). Each check
 * returns 0 or the HTTP status, with a message saying what was wrong. */
#ifndef NX_ENGINE_MCP_RULES_H
#define NX_ENGINE_MCP_RULES_H

#include "nexus/str.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Legacy-era revisions, newest first; the modern (stateless) era is negotiated separately. */
extern const char *const nx_mcp_legacy_versions[];
#define NX_MCP_MODERN_VERSION "2026-07-28"
/* Assumed when a request carries no MCP-Protocol-Version header (spec: 2025-03-26). */
#define NX_MCP_DEFAULT_HEADER_VERSION "2025-03-26"

/** True if <v> is a revision nexus speaks (legacy or modern). */
bool nx_mcp_version_supported(nx_str_t v);
/** The revision to answer an initialize that asked for <requested>: the same when supported,
 *  else the newest legacy revision (the client then decides whether it can go on). */
const char *nx_mcp_negotiate_version(nx_str_t requested);

/** POST needs application/json and text/event-stream acceptable; GET needs text/event-stream.
 *  Returns 0 or 406. Media ranges with * count; q=0 excludes. */
int nx_mcp_check_accept(nx_str_t accept, bool is_post, char *msg, size_t msglen);
/** Validates the MCP-Protocol-Version header: 0 with <*version> set (the header, or the
 *  default when absent), or 400 for an unsupported value. */
int nx_mcp_check_protocol_header(nx_str_t header, nx_str_t *version, char *msg, size_t msglen);

/* _meta keys of the 2026-07-28 (modern, stateless) era. */
#define NX_MCP_META_VERSION "io.modelcontextprotocol/protocolVersion"
#define NX_MCP_META_CAPABILITIES "io.modelcontextprotocol/clientCapabilities"
#define NX_MCP_META_CLIENT_INFO "io.modelcontextprotocol/clientInfo"
#define NX_MCP_META_LOG_LEVEL "io.modelcontextprotocol/logLevel"
#define NX_MCP_META_SERVER_INFO "io.modelcontextprotocol/serverInfo"

/** True if <v> is a legacy-era revision. */
bool nx_mcp_version_is_legacy(nx_str_t v);
/** True if <params> carries the modern era's protocol version in its _meta. */
bool nx_mcp_params_are_modern(const json_t *params);
/** Checks the _meta of a modern request, in the order the spec fixes: _meta with protocolVersion
 *  and clientCapabilities present (-32602), then equal to <header_version> when the transport
 *  has one (-32020), then a version nexus speaks (-32022, with <*data> = {"supported",
 *  "requested"}). Returns 0 or the JSON-RPC error code with a message in <msg>. */
int nx_mcp_check_modern_meta(const json_t *params, nx_str_t header_version, char *msg,
                             size_t msglen, json_t **data);
/** Checks Mcp-Method against the body's <method> (exact) and, for tools/call, prompts/get and
 *  resources/read and tasks/get|update|cancel, Mcp-Name against params.name / params.uri /
 *  params.taskId (surrounding spaces ignored).
 *  Returns 0 or -32020 with a message in <msg>. */
int nx_mcp_check_routing_headers(nx_str_t mcp_method, nx_str_t mcp_name, const char *method,
                                 const json_t *params, char *msg, size_t msglen);

/** Decodes an Mcp-Param-* header value: "=?base64?<standard base64 with padding>?=" is decoded
 *  strictly (bad characters or padding fail), anything else is taken literally. Returns 0 with
 *  the value in <out> (<*len> bytes), or -1 when the encoded form is malformed or too long. */
int nx_mcp_param_header_decode(nx_str_t v, char *out, size_t cap, size_t *len);

/* Allowed hosts (names or addresses, no port) for the Host and Origin checks. Borrowed. */
typedef struct nx_mcp_origin_policy {
    const char *const *allowed_hosts; /* NULL-terminated */
    bool allow_any;                   /* explicitly configured "*" : no check */
} nx_mcp_origin_policy_t;

/** The default allow-list: localhost, 127.0.0.1 and ::1. */
extern const char *const nx_mcp_loopback_hosts[];
/** DNS-rebinding protection: a present Origin (even "null") must name an allowed host, and
 *  the Host header must name an allowed host; returns 0 or 403. */
int nx_mcp_check_origin(const nx_mcp_origin_policy_t *p, nx_str_t origin, nx_str_t host, char *msg,
                        size_t msglen);
/** Extracts the host part of "host[:port]" or "[v6]:port" into <out> (lowercased, no brackets);
 *  false when malformed. */
bool nx_mcp_host_part(nx_str_t hostport, char *out, size_t outlen);

#endif
