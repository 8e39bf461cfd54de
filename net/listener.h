/* Listening sockets: created before the shards start (so port 0 resolves to one port every
 * shard shares through SO_REUSEPORT), then each shard accepts on its own socket with a
 * multishot accept. */
#ifndef NX_NET_LISTENER_H
#define NX_NET_LISTENER_H

#include "shard.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct nx_listener nx_listener_t;
/* A new connection <fd> (non-blocking, close-on-exec) arrived; the callee owns it. */
typedef void (*nx_accept_cb)(nx_listener_t *ls, int fd);

/* Owned by the engine's per-shard state; lives until its accept has completed for the last time. */
struct nx_listener {
    nx_op_t accept_op;
    nx_timer_t retry_timer; /* re-arms accept after EMFILE/ENFILE instead of spinning */
    nx_shard_t *shard;
    int fd;
    bool armed;
    bool stopped;
    nx_accept_cb on_accept;
    void *data;
};

/** Opens a TCP listening socket on <host>:<port> (port 0 = any free port) with SO_REUSEPORT;
 *  returns the fd, and the bound port in <bound_port>; or -errno. */
int nx_listen_tcp(const char *host, uint16_t port, int backlog, uint16_t *bound_port);
/** Starts accepting on <fd> (which <ls> now owns) on shard <s>; <cb> gets each connection. */
int nx_listener_start(nx_listener_t *ls, nx_shard_t *s, int fd, nx_accept_cb cb, void *data);
/** Stops accepting and closes the socket; connections already accepted are unaffected. */
void nx_listener_stop(nx_listener_t *ls);

#endif
