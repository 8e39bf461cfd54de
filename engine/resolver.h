/* Name resolution for backend URLs, kept off the shard loops: every name is resolved once when
 * the backends are created (a name that does not resolve is a configuration error then), and
 * re-resolved periodically by one background thread, which publishes each new address as an
 * immutable record that shards read with one atomic load. Records are kept until the resolver
 * is freed (they change only when DNS does), so a reader never needs to hold anything. */
#ifndef NX_ENGINE_RESOLVER_H
#define NX_ENGINE_RESOLVER_H

#include <stdint.h>
#include <sys/socket.h>

/* One resolved address; immutable once published. */
typedef struct nx_resolved {
    struct sockaddr_storage addr;
    socklen_t len;
    uint64_t generation; /* grows with every change of this name's address */
} nx_resolved_t;

typedef struct nx_resolver nx_resolver_t;

/** Creates a resolver that re-resolves every <interval_ms> (0 = never); NULL on ENOMEM. */
nx_resolver_t *nx_resolver_new(uint32_t interval_ms);
/** Resolves <host>:<port> now and keeps it; returns its slot (>= 0), or -1 with the resolver's
 *  message in <err> when the name does not resolve. Call before nx_resolver_start. */
int nx_resolver_add(nx_resolver_t *r, const char *host, uint16_t port, char *err, size_t errlen);
/** The current address of slot <slot> (any thread; never NULL for a slot that was added). */
const nx_resolved_t *nx_resolver_get(const nx_resolver_t *r, int slot);
/** Starts the background re-resolution (when an interval was given). 0 or -errno. */
int nx_resolver_start(nx_resolver_t *r);
/** Stops the thread and frees everything, records included. NULL-safe. */
void nx_resolver_free(nx_resolver_t *r);

#endif
