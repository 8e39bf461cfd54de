/* The MCP client core, independent of transports: the legacy-era handshake (initialize, then
 * notifications/initialized), requests with their callbacks, notifications and server-to-client
 * requests handed to the owner, cancellation, and failing everything when the transport dies.
 * A transport (stdio child, HTTP, WebSocket) gives it each message it receives and sends what it
 * asks. No I/O and no clock: timeouts are the caller's (nx_mcp_client_abandon). One thread. */
#ifndef NX_ENGINE_MCP_CLIENT_H
#define NX_ENGINE_MCP_CLIENT_H

#include "jsonrpc.h"
#include "nexus/list.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nx_mcp_client nx_mcp_client_t;

/* The answer to one request: exactly one of <result> and <error> is non-NULL (both borrowed for
 * the call). <error> is a JSON-RPC error object; the client makes one itself (code -32603) when
 * the transport died or the request was abandoned. */
typedef void (*nx_mcp_client_cb)(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                                 void *arg);

typedef struct nx_mcp_client_ops {
    /* Sends one message (compact JSON, no newline) to the server; returns 0 or a negative
     * error (the transport is gone: the client then fails what waits). */
    int (*send)(nx_mcp_client_t *cl, const char *text, size_t len, void *arg);
    /* The handshake is done: requests may go (optional). */
    void (*on_ready)(nx_mcp_client_t *cl, void *arg);
    /* The handshake failed (cl->error says why): the owner should end the transport and try
     * again later (optional). */
    void (*on_failed)(nx_mcp_client_t *cl, void *arg);
    /* A notification from the server (progress, message, the list_changed ones...) (optional). */
    void (*on_notification)(nx_mcp_client_t *cl, const char *method, const json_t *params,
                            void *arg);
    /* A request from the server (sampling, elicitation, roots): answer it with
     * nx_mcp_client_respond(cl, id, ...) now or later. Without this handler the client answers
     * -32601 itself. */
    void (*on_request)(nx_mcp_client_t *cl, const json_t *id, const char *method,
                       const json_t *params, void *arg);
} nx_mcp_client_ops_t;

typedef enum nx_mcp_client_state {
    NX_MCP_CLIENT_NEW,          /* nothing sent yet */
    NX_MCP_CLIENT_INITIALIZING, /* initialize sent */
    NX_MCP_CLIENT_READY,        /* initialized */
    NX_MCP_CLIENT_FAILED,       /* the handshake failed or the transport died */
} nx_mcp_client_state_t;

struct nx_mcp_client {
    nx_mcp_client_ops_t ops;
    void *arg;
    nx_mcp_client_state_t state;
    json_int_t next_id;
    nx_list_t pending; /* requests awaiting an answer */
    uint32_t pending_count;
    json_t *server_info, *server_capabilities, *instructions;
    char protocol_version[16];
    char client_name[64];
    json_t *capabilities;  /* what we declare (sampling, elicitation, roots...) */
    char error[256];       /* why the handshake failed */
    json_int_t sending_id; /* during ops.send: the id of the request being sent, else 0 (a
                              transport that carries each request on its own exchange, such as
                              Streamable HTTP, files what comes back under it) */
};

/** Prepares <cl> (embedded in its transport) to talk as <client_name> declaring <capabilities>
 *  (stolen; NULL = {}). */
void nx_mcp_client_init(nx_mcp_client_t *cl, const nx_mcp_client_ops_t *ops, void *arg,
                        const char *client_name, json_t *capabilities);
/** Fails what waits (their callbacks run) and frees the client's state. */
void nx_mcp_client_dispose(nx_mcp_client_t *cl);
/** Sends initialize (protocol 2025-11-25, which servers may lower); on_ready follows. */
int nx_mcp_client_start(nx_mcp_client_t *cl);
/** Handles one message received from the server (<len> bytes of JSON). */
void nx_mcp_client_receive(nx_mcp_client_t *cl, const char *text, size_t len);
/** Sends request <method> with <params> (stolen, may be NULL) and calls <cb> with the answer.
 *  Returns the request id (> 0), or 0 when it could not be sent (then <cb> has already run
 *  with the error). */
json_int_t nx_mcp_client_request(nx_mcp_client_t *cl, const char *method, json_t *params,
                                 nx_mcp_client_cb cb, void *arg);
/** Sends notification <method> with <params> (stolen, may be NULL); 0 or a negative error. */
int nx_mcp_client_notify(nx_mcp_client_t *cl, const char *method, json_t *params);
/** Stops waiting for request <id>: its callback will not run; with <reason> non-NULL the server
 *  is told (notifications/cancelled). Returns false when no such request waits. */
bool nx_mcp_client_abandon(nx_mcp_client_t *cl, json_int_t id, const char *reason);
/** True while request <id> waits for its answer. */
bool nx_mcp_client_waiting(const nx_mcp_client_t *cl, json_int_t id);
/** Answers the server's request <id> with <result> (stolen) or, when NULL, with <error>
 *  (stolen; a JSON-RPC error object). */
int nx_mcp_client_respond(nx_mcp_client_t *cl, const json_t *id, json_t *result, json_t *error);
/** The transport died: every waiting request fails with <why>; the client is FAILED. */
void nx_mcp_client_fail(nx_mcp_client_t *cl, const char *why);

#endif
