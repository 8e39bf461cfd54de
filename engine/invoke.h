/* In-process MCP requests: how workflows (and the tool cache's leader calls) call a tool,
 * exactly as a client would — the same catalog, argument validation, routing to a backend on
 * any shard, breakers, bulkheads and deadlines — without a session. The answer and any
 * notifications about the call (progress, log messages) come back through callbacks on the
 * calling shard. */
#ifndef NX_ENGINE_INVOKE_H
#define NX_ENGINE_INVOKE_H

#include "mcp_server.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct nx_invoke nx_invoke_t;

/* The answer: exactly one of <result> (the method's result) and <error> (a JSON-RPC error
 * object) is non-NULL, both borrowed for the callback; <attempts> is how many tries the
 * provider made (1 when it does not say). */
typedef void (*nx_invoke_done_fn)(void *arg, const json_t *result, const json_t *error,
                                  uint32_t attempts);
/* A notification about the call (notifications/progress, notifications/message; <params>
 * borrowed). */
typedef void (*nx_invoke_note_fn)(void *arg, const char *method, const json_t *params);

/* Options of one request. */
typedef struct nx_invoke_opts {
    nx_invoke_note_fn note; /* NULL: notifications are dropped */
    bool no_cache;          /* skip the tool cache (the cache's own leader calls) */
} nx_invoke_opts_t;

/** Sends request <method> with <params> (borrowed) to <server>. <done> runs exactly once: inline
 *  when the server answers at once (*<out> is then NULL), else later on this thread (*<out> is
 *  the handle for nx_invoke_cancel until then). Returns 0, or -ENOMEM without calling <done>. */
int nx_invoke(nx_mcp_server_t *server, const char *method, const json_t *params,
              const nx_invoke_opts_t *opts, nx_invoke_done_fn done, void *arg, nx_invoke_t **out);
/** Cancels <inv>: the provider hears of it (a backend gets notifications/cancelled) and <done>
 *  never runs. */
void nx_invoke_cancel(nx_invoke_t *inv);

#endif
