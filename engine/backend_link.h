/* Internal to the backends (backends.c and the backend_*.c transports): one instance of a
 * backend — a supervised process (stdio), or an MCP session with one replica over Streamable
 * HTTP or WebSocket — owned by one shard, and the contract between the generic backend logic
 * (MCP client, calls, restarts) and the transport that carries its messages (the link).
 *
 * A link is started; once messages can flow it calls nx_backend_link_up, hands every message
 * it receives to nx_backend_link_receive and, when it ends for any reason, calls
 * nx_backend_link_down once. The backend then restarts it with backoff unless it is draining. */
#ifndef NX_ENGINE_BACKEND_LINK_H
#define NX_ENGINE_BACKEND_LINK_H

#include "engine.h"
#include "health.h"
#include "mcp_client.h"
#include "resolver.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct nx_backend_instance nx_backend_instance_t;
typedef struct nx_backend_spec nx_backend_spec_t;

typedef struct nx_backend_link_ops {
    const char *name; /* "stdio", "http", "ws" (for /health) */
    /* Begins the link (spawns, connects); 0, or a negative error when it could not even begin
     * (the backend then retries later; no callback follows). */
    int (*start)(nx_backend_instance_t *in);
    /* Sends one JSON-RPC message (compact JSON); <request_id> > 0 when it is one of our
     * requests. 0, or a negative error when the link is gone. */
    int (*send)(nx_backend_instance_t *in, const char *text, size_t len, json_int_t request_id);
    /* Our request <request_id> was abandoned (timed out, cancelled): whatever still carries its
     * answer may go (optional). */
    void (*forget)(nx_backend_instance_t *in, json_int_t request_id);
    /* Checks the instance's health its own way (optional; HTTP: GET spec->health_path within
     * <timeout_ms>): nx_backend_link_probed follows exactly once, unless the link ends first. */
    void (*probe)(nx_backend_instance_t *in, uint32_t timeout_ms);
    /* The MCP handshake is done (optional): a link may open what needs a session. */
    void (*ready)(nx_backend_instance_t *in);
    /* Ends the link (shutdown, or a failed handshake); nx_backend_link_down follows, now or
     * later. */
    void (*drain)(nx_backend_instance_t *in);
    /* Frees the link at once, without callbacks (shard stop). */
    void (*destroy)(nx_backend_instance_t *in);
} nx_backend_link_ops_t;

extern const nx_backend_link_ops_t nx_backend_stdio_link;
extern const nx_backend_link_ops_t nx_backend_http_link;
extern const nx_backend_link_ops_t nx_backend_ws_link;

/* One instance. The transport uses the fields of the first block and <link>; the rest belongs
 * to backends.c. Everything but the atomics is touched only by the owner shard. */
struct nx_backend_instance {
    const nx_backend_spec_t *spec; /* the backend's configuration (urls, argv, pool...) */
    const char *name;              /* the backend's name, for logs */
    uint32_t replica;              /* which url (http, ws) */
    nx_engine_shard_t *es;         /* the owner shard */
    void *link;                    /* the transport's state */
    nx_mcp_client_t client;
    bool client_live;             /* <client> is initialised (between link up and link down) */
    _Atomic int pid;              /* stdio: the process, for /health; 0 when none */
    _Atomic int state;            /* a backend_state_t (backends.c) */
    _Atomic uint32_t outstanding; /* calls in flight here (least-outstanding balancing) */
    /* backends.c */
    void *backend;
    uint32_t index, owner;
    bool draining;      /* shutting down: no new calls; the link ends once the calls did */
    bool link_stopping; /* the link was asked to end */
    nx_timer_t restart_timer;
    uint32_t failures; /* consecutive failed starts, for the restart backoff */
    uint64_t ready_at;
    json_int_t next_progress_token;
    uint32_t generation; /* counts links: answers meant for an older one are dropped */
    json_int_t related;  /* while a received message is handled: the request it came with */
    nx_list_t calls;
    /* active health checks: an MCP ping every interval */
    nx_timer_t check_timer;   /* the next check, or the timeout of the one in flight */
    json_int_t check_request; /* the ping in flight, 0 when none */
    uint64_t check_sent_ns;
    nx_health_t checks;             /* the verdict of the checks (owner only) */
    _Atomic bool check_unhealthy;   /* published for the origins that route */
    _Atomic uint32_t last_check_us; /* round trip of the last passing check */
};

/** The current address of <in>'s url (re-resolved in the background; compare generations to
 *  see a change). Any thread; only for instances of backends with urls. */
const nx_resolved_t *nx_backend_instance_address(const nx_backend_instance_t *in);
/** The path (and query) a legacy HTTP+SSE server wants messages POSTed to, from the data of its
 *  "endpoint" event (<n> bytes, not NUL-terminated): a path, a URL (its path and query; the
 *  server is the one the stream came from), or a path relative to <base>, the stream's path.
 *  Always starts with '/'; a new string, NULL on ENOMEM. */
char *nx_backend_endpoint_target(const char *base, const char *data, size_t n);
/** The outcome of a link's probe (see nx_backend_link_ops_t.probe). */
void nx_backend_link_probed(nx_backend_instance_t *in, bool ok);
/** The link can carry messages: the MCP handshake starts. */
void nx_backend_link_up(nx_backend_instance_t *in);
/** One message from the backend; <related> > 0 names our request it came with (the response
 *  stream of that request), 0 when unknown. */
void nx_backend_link_receive(nx_backend_instance_t *in, const char *text, size_t len,
                             json_int_t related);
/** The link ended (<why> for the log); calls in flight fail as retryable and the instance
 *  restarts: after backoff, or at once when <restart_now> (an expired session). */
void nx_backend_link_down(nx_backend_instance_t *in, const char *why, bool restart_now);

#endif
