/* Single-flight bookkeeping of one shard: at most one flight per key, each with the lookups
 * waiting on it in arrival order. A flight is first waiting for its L2 GET (every lookup,
 * including the one that started it, waits; the first in line leads if the GET misses), then
 * led (the leader calls the backend; the others wait for nx_cache_complete). cache.c decides
 * the transitions; this file owns the table and the memory. */
#ifndef NX_CACHE_FLIGHT_H
#define NX_CACHE_FLIGHT_H

#include "cache.h"
#include "htab.h"

#include "nexus/list.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nx_flight nx_flight_t;
typedef struct nx_flights nx_flights_t;

typedef enum nx_flight_state {
    NX_FLIGHT_L2,   /* the GET in <req> is pending; every lookup waits */
    NX_FLIGHT_LEAD, /* a leader is calling the backend; the waiters are followers */
} nx_flight_state_t;

/* A lookup that did not complete inline: the handle nx_cache_lookup returns. Owned by its
 * flight while waiting, then by whoever delivers its outcome, which frees it after <fn>. */
struct nx_cache_wait {
    nx_list_t link;      /* in its flight's waiters, or in a list being delivered */
    nx_flight_t *flight; /* NULL once taken out of its flight for delivery */
    nx_cache_fn fn;
    void *arg;
    bool running; /* <fn> is running: a cancel now is a no-op */
};

/* One key's flight, owned by its table; the key bytes follow the struct. */
struct nx_flight {
    nx_htab_node_t node;
    nx_list_t all_link;
    nx_flights_t *table;
    nx_flight_state_t state;
    nx_list_t waiters;   /* nx_cache_wait_t.link, oldest first */
    nx_redis_req_t *req; /* NX_FLIGHT_L2: the pending GET */
    size_t klen;
    char key[];
};

/* Embedded in its cache. */
struct nx_flights {
    nx_htab_t table;
    nx_list_t all; /* every flight, for teardown */
};

/** Prepares an empty table. 0 or -ENOMEM. */
int nx__flights_init(nx_flights_t *t);
/** Frees the table; every flight must have ended. */
void nx__flights_dispose(nx_flights_t *t);
/** The flight of <key>, or NULL. */
nx_flight_t *nx__flight_find(nx_flights_t *t, const char *key, size_t klen, uint64_t hash);
/** Any flight of <t> (for teardown), or NULL when none is left. */
nx_flight_t *nx__flights_any(nx_flights_t *t);
/** Starts the flight of <key> (absent from <t>) in state NX_FLIGHT_LEAD with no waiters, or
 *  NULL on ENOMEM. */
nx_flight_t *nx__flight_start(nx_flights_t *t, const char *key, size_t klen, uint64_t hash);
/** Appends a waiter for <fn>/<arg> to <f>; NULL on ENOMEM. */
nx_cache_wait_t *nx__flight_join(nx_flight_t *f, nx_cache_fn fn, void *arg);
/** Takes the oldest waiter out of <f> for delivery (it is then the caller's), or NULL. */
nx_cache_wait_t *nx__flight_pop(nx_flight_t *f);
/** Ends <f>: removes and frees it, moving its waiters to the tail of <out> for delivery (or
 *  freeing them when <out> is NULL). */
void nx__flight_end(nx_flight_t *f, nx_list_t *out);

#endif
