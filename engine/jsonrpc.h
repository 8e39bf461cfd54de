/* JSON-RPC 2.0 codec of the MCP front end: decodes one body, frame or line into classified,
 * strictly validated messages (or batches of them), builds and serializes responses and
 * requests, and reads typed members of "params". Pure code over jansson: no I/O, no globals. */
#ifndef NX_ENGINE_JSONRPC_H
#define NX_ENGINE_JSONRPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes of JSON-RPC 2.0 and of MCP, as sent in error.code. */
enum {
    NX_RPC_PARSE_ERROR = -32700,
    NX_RPC_INVALID_REQUEST = -32600,
    NX_RPC_METHOD_NOT_FOUND = -32601,
    NX_RPC_INVALID_PARAMS = -32602,
    NX_RPC_INTERNAL_ERROR = -32603,
    NX_RPC_RESOURCE_NOT_FOUND = -32002,  /* MCP legacy era */
    NX_RPC_HEADER_MISMATCH = -32020,     /* MCP 2026-07-28: Mcp-Method/Mcp-Name vs body */
    NX_RPC_MISSING_CAPABILITY = -32021,  /* MCP 2026-07-28: data.requiredCapabilities */
    NX_RPC_UNSUPPORTED_VERSION = -32022, /* MCP 2026-07-28: data.supported lists versions */
};

#define NX_RPC_DEFAULT_MAX_DEPTH 64
#define NX_RPC_DEFAULT_MAX_BATCH 100
#define NX_RPC_ERROR_MAX 256 /* bytes of an nx_rpc_error_t message, NUL included */

/* A JSON-RPC error to send back: code plus a message naming the field and the reason. Plain
 * data, owned by whoever embeds it; the message is printable ASCII (safe in logs and JSON). */
typedef struct nx_rpc_error {
    int code;
    char message[NX_RPC_ERROR_MAX];
} nx_rpc_error_t;

typedef enum nx_rpc_kind {
    NX_RPC_INVALID = 0,    /* rejected: answer with msg->reject */
    NX_RPC_REQUEST,        /* "method" and "id" */
    NX_RPC_NOTIFICATION,   /* "method", no "id" */
    NX_RPC_RESPONSE,       /* "result" and "id" */
    NX_RPC_ERROR_RESPONSE, /* "error" and "id" (which may be null) */
} nx_rpc_kind_t;

/* One decoded message. It owns one reference, <root>; every other pointer borrows from root and
 * lives as long as the message does (json_incref what must outlive it). Fields that do not
 * apply to the kind are NULL / 0. */
typedef struct nx_rpc_msg {
    nx_rpc_kind_t kind;
    json_t *root; /* the message as received; NULL only for a whole-body error (parse error...) */
    json_t *id;   /* string or integer; NULL for notifications, null ids and unrecoverable ids */
    const char *method;        /* requests and notifications */
    json_t *params;            /* object or array, or NULL when absent */
    json_t *result;            /* responses */
    json_t *error;             /* error responses: the whole error object */
    json_int_t error_code;     /* error responses: error.code */
    const char *error_message; /* error responses: error.message */
    nx_rpc_error_t reject;     /* NX_RPC_INVALID: what to answer, echoing <id> */
} nx_rpc_msg_t;

/* What one body decoded to. Embedded by the caller, filled by nx_rpc_decode, released by
 * nx_rpc_batch_dispose; it owns msgs and every message in it. */
typedef struct nx_rpc_batch {
    nx_rpc_msg_t *msgs;
    uint32_t count;
    bool is_batch; /* the body was an accepted array: the answer is an array too */
} nx_rpc_batch_t;

/* Decoder limits; a zeroed struct (or NULL) means single messages only, default limits. */
typedef struct nx_rpc_decode_opts {
    bool allow_batch;   /* only MCP revision 2025-03-26 allows batches */
    uint32_t max_batch; /* 0 = NX_RPC_DEFAULT_MAX_BATCH */
    uint32_t max_depth; /* levels of objects/arrays in one message, itself level 1; 0 = default;
                           jansson refuses more than 2048 whatever this says */
} nx_rpc_decode_opts_t;

/* Expected JSON type of a params member. */
typedef enum nx_rpc_type {
    NX_RPC_T_ANY = 0,
    NX_RPC_T_STRING,
    NX_RPC_T_INTEGER,
    NX_RPC_T_NUMBER, /* integer or real */
    NX_RPC_T_BOOLEAN,
    NX_RPC_T_OBJECT,
    NX_RPC_T_ARRAY,
} nx_rpc_type_t;

/** Decodes the <len> bytes at <buf> (not NUL-terminated, duplicate keys refused) under <opts>
 *  (NULL = defaults) into <out>, which the caller disposes whatever the result: 0 when the body
 *  held a message or a batch (elements may still be NX_RPC_INVALID), NX_EPROTO when the whole
 *  body was rejected (out holds one NX_RPC_INVALID message saying why), -ENOMEM (out empty). */
int nx_rpc_decode(const char *buf, size_t len, const nx_rpc_decode_opts_t *opts,
                  nx_rpc_batch_t *out);
/** Releases the messages of <b> and empties it. NULL-safe. */
void nx_rpc_batch_dispose(nx_rpc_batch_t *b);
/** Static name of <kind> for logs: "request", "notification", "response", "error", "invalid". */
const char *nx_rpc_kind_name(nx_rpc_kind_t kind);

/** Builds {"jsonrpc":"2.0","id":<id>,"result":<result>}; borrows <id> (string or integer),
 *  steals <result> (NULL = {}); NULL on ENOMEM or a bad id, <result> released in every case. */
json_t *nx_rpc_result_new(json_t *id, json_t *result);
/** Builds an error response echoing <id> (borrowed; NULL or json null = null) with <code>,
 *  <message> (non-UTF-8 bytes become '?') and <data> (stolen, may be NULL); NULL on ENOMEM or
 *  a bad id, <data> released in every case. */
json_t *nx_rpc_error_new(json_t *id, int code, const char *message, json_t *data);
/** Builds the error response for <m>, an NX_RPC_INVALID message or whole-body error, echoing
 *  the id it recovered; NULL on ENOMEM. */
json_t *nx_rpc_reject_new(const nx_rpc_msg_t *m);
/** Builds a request for <method> with <id> (borrowed; string or integer) and <params>
 *  (stolen; object, array or NULL to omit); NULL on ENOMEM or bad arguments, <params> released
 *  in every case. */
json_t *nx_rpc_request_new(json_t *id, const char *method, json_t *params);
/** Builds a notification for <method> with <params> (stolen; object, array or NULL to omit);
 *  NULL on ENOMEM or bad arguments, <params> released in every case. */
json_t *nx_rpc_notification_new(const char *method, json_t *params);
/** Serializes <msg> (borrowed) on one line: compact, 17-digit reals, no raw newline; returns a
 *  malloc'd NUL-terminated string (caller frees) and its length in <*len> (if non-NULL), or
 *  NULL on ENOMEM or a non-container <msg>. */
char *nx_rpc_encode(const json_t *msg, size_t *len);
/** Serializes <msg> like nx_rpc_encode into <buf> (no NUL added); returns the length, which when
 *  above <cap> is the size needed and <buf> holds nothing useful; 0 on failure. */
size_t nx_rpc_encode_into(const json_t *msg, char *buf, size_t cap);

/** Looks up params.<name> of type <type> in <params> (borrowed; NULL = no params): 1 with
 *  *out borrowed when present, 0 with *out untouched when absent and not <required>,
 *  NX_EPROTO with <err> = -32602 "params.<name> must be ..." otherwise. */
int nx_rpc_param(const json_t *params, const char *name, nx_rpc_type_t type, bool required,
                 json_t **out, nx_rpc_error_t *err);
/** nx_rpc_param for a string member; *out borrows from <params>. */
int nx_rpc_param_string(const json_t *params, const char *name, bool required, const char **out,
                        nx_rpc_error_t *err);
/** nx_rpc_param for an integer member. */
int nx_rpc_param_int(const json_t *params, const char *name, bool required, json_int_t *out,
                     nx_rpc_error_t *err);
/** nx_rpc_param for a boolean member. */
int nx_rpc_param_bool(const json_t *params, const char *name, bool required, bool *out,
                      nx_rpc_error_t *err);
/** Finds params._meta.progressToken (string or integer): 1 with *out borrowed, 0 when absent,
 *  NX_EPROTO with <err> = -32602 when _meta or the token has the wrong type. */
int nx_rpc_progress_token(const json_t *params, json_t **out, nx_rpc_error_t *err);

#endif
