/* The L1 of one shard: a hash table of entries bounded in bytes, evicting in LRU order or by
 * CLOCK (a ring swept by a hand that spares entries whose reference bit is set), with a TTL and
 * a stale grace per entry. Pure policy: every call takes the time, so tests use a fake clock.
 *
 * An entry is fresh while now < fresh_until_ms, stale while now < drop_at_ms (kept only for
 * stale-if-error), and dead after that: a dead entry is dropped when a lookup or an eviction
 * meets it (counted as expired, not as an eviction). */
#ifndef NX_CACHE_L1_H
#define NX_CACHE_L1_H

#include "cache.h"
#include "htab.h"

#include "nexus/list.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nx_l1_config {
    uint64_t max_bytes;       /* budget for every entry's nx__l1_cost */
    uint64_t max_entry_bytes; /* longer values are refused */
    nx_cache_eviction_t eviction;
} nx_l1_config_t;

/* One cached value, owned by its L1 (or, once removed while pinned, by its last pin). The key
 * and the value follow the struct in one allocation. */
typedef struct nx_l1_entry {
    nx_htab_node_t node;
    nx_list_t link; /* LRU: oldest use first; CLOCK: the ring the hand sweeps */
    uint64_t fresh_until_ms;
    uint64_t drop_at_ms;
    size_t klen, vlen;
    uint32_t pins; /* a callback is reading the value: removal defers the free */
    bool ref;      /* CLOCK reference bit: used since the hand last passed */
    bool removed;  /* no longer in the table (freed by the last unpin) */
    char data[];   /* key bytes, then value bytes */
} nx_l1_entry_t;

/* Embedded in its cache. The counters are written by the owning shard only, with relaxed
 * atomics (nx_stat_add), so /metrics may read them from any shard. */
typedef struct nx_l1 {
    nx_l1_config_t cfg;
    nx_htab_t table;
    nx_list_t order;
    nx_list_t *hand; /* CLOCK: the next node the hand looks at (&order when at the end) */
    uint64_t hits, misses, evictions, expired, entries, bytes;
} nx_l1_t;

/** What one entry of <klen> + <vlen> bytes counts against max_bytes (the struct, the key, the
 *  value and its share of the bucket array). */
static inline uint64_t nx__l1_cost(size_t klen, size_t vlen) {
    return sizeof(nx_l1_entry_t) + sizeof(nx_htab_node_t *) + (uint64_t)klen + vlen;
}
static inline const char *nx__l1_value(const nx_l1_entry_t *e) {
    return e->data + e->klen;
}

/** Prepares an empty L1 <l> with <cfg> (copied). 0 or -ENOMEM. */
int nx__l1_init(nx_l1_t *l, const nx_l1_config_t *cfg);
/** Frees every entry of <l>; no entry may be pinned. */
void nx__l1_dispose(nx_l1_t *l);

/** The fresh entry of <key> at <now_ms> (counts a hit and marks it used), or NULL (counts a
 *  miss; an entry found dead is dropped). The entry is borrowed until the next L1 call unless
 *  pinned. */
nx_l1_entry_t *nx__l1_get(nx_l1_t *l, const char *key, size_t klen, uint64_t hash, uint64_t now_ms);
/** The entry of <key> if fresh or stale at <now_ms>, without counting or marking it used;
 *  NULL otherwise (an entry found dead is dropped). */
nx_l1_entry_t *nx__l1_peek(nx_l1_t *l, const char *key, size_t klen, uint64_t hash,
                           uint64_t now_ms);
/** Stores a copy of <value> under <key> (replacing any entry of that key), fresh until
 *  <fresh_until_ms> and kept until <drop_at_ms>, evicting entries as needed. Returns 0, -E2BIG
 *  (the value or the entry is over its bound; an older entry of the key is still removed) or
 *  -ENOMEM. */
int nx__l1_put(nx_l1_t *l, const char *key, size_t klen, uint64_t hash, const char *value,
               size_t vlen, uint64_t now_ms, uint64_t fresh_until_ms, uint64_t drop_at_ms);
/** Removes the entry of <key>; true if there was one. */
bool nx__l1_remove(nx_l1_t *l, const char *key, size_t klen, uint64_t hash);

/** Keeps <e>'s memory alive across calls that may remove it (a callback reading its value). */
static inline void nx__l1_pin(nx_l1_entry_t *e) {
    e->pins++;
}
/** Ends a pin; frees <e> if it was removed meanwhile. */
void nx__l1_unpin(nx_l1_entry_t *e);

#endif
