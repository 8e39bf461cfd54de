/* The TTL cache of one shard: L1 in memory (bounded bytes, TTL, LRU or CLOCK eviction), L2 in
 * Redis when configured (shared by replicas), and single-flight so that concurrent identical
 * misses on the shard make one backend call. Values are opaque bytes (the engine stores
 * serialized JSON results); values over a threshold are compressed (lz4 or zstd) on their way
 * to Redis. An entry outlives its TTL by a grace period so it can still answer when the backend
 * fails (stale-if-error). Everything runs on the owning shard's thread.
 *
 * Lookup protocol, per key:
 *   nx_cache_lookup -> NX_CACHE_HIT     a fresh value (L1, or L2 then copied into L1)
 *                   -> NX_CACHE_LEAD    a miss; the caller makes the call, then MUST end the
 *                                       flight with nx_cache_complete (success or failure)
 *                   -> NX_CACHE_SHARED  another caller on this shard led the flight; here is
 *                                       its outcome (value + the leader's <ok> flag)
 * so only the leader calls the backend. */
#ifndef NX_CACHE_CACHE_H
#define NX_CACHE_CACHE_H

#include "redis.h"
#include "shard.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum nx_cache_eviction {
    NX_CACHE_LRU,
    NX_CACHE_CLOCK,
} nx_cache_eviction_t;

typedef enum nx_cache_compression {
    NX_CACHE_COMPRESS_NONE,
    NX_CACHE_COMPRESS_LZ4,
    NX_CACHE_COMPRESS_ZSTD,
} nx_cache_compression_t;

typedef struct nx_cache_config {
    uint64_t max_bytes;       /* L1 budget per shard (keys + values + overhead); default 64 MiB */
    uint64_t max_entry_bytes; /* larger values are not cached; default 1 MiB */
    nx_cache_eviction_t eviction;
    uint64_t stale_grace_ms;            /* entries stay this long past their TTL for stale-if-error;
                                           0 = none */
    nx_cache_compression_t compression; /* for values of at least compress_min bytes */
    uint64_t compress_min;              /* default 1 KiB */
    const nx_redis_config_t *redis;     /* NULL = L1 only */
    const char *redis_prefix;           /* prepended to every Redis key; default "nexus:" */
} nx_cache_config_t;

/* A key: the target (e.g. "tool:files__read" or "step:digest.fetch") and a 128-bit hash of
 * the canonical JSON of the arguments (object keys sorted at every depth, no insignificant
 * whitespace, numbers as jansson prints them), so {"a":1,"b":2} and {"b":2,"a":1} are one key. */
typedef struct nx_cache_key {
    char text[256 + 34]; /* "<target>#<32 hex digits>", NUL-terminated */
    size_t len;
    uint64_t hash; /* bucket hash */
} nx_cache_key_t;

/** Builds the key of <target> (at most 256 bytes) with <args> (borrowed; NULL = null).
 *  Returns 0 or -EINVAL (target NULL or too long, or <args> unprintable: a cycle, or no memory
 *  to sort its keys). */
int nx_cache_key_make(const char *target, const json_t *args, nx_cache_key_t *out);
/** Writes the canonical JSON of <v> into a new string (for tests and the key); NULL on ENOMEM. */
char *nx_cache_canonical_json(const json_t *v);

/* What a leader that went away (its caller cancelled) completes its flight with (ok false):
 * followers that receive it should look the key up again rather than fail. */
#define NX_CACHE_LEADER_GONE "{\"io.nexus/leaderGone\":true}"

typedef enum nx_cache_outcome {
    NX_CACHE_HIT,
    NX_CACHE_LEAD,
    NX_CACHE_SHARED,
} nx_cache_outcome_t;

/* Flags of a delivered value. */
enum {
    NX_CACHE_FROM_L2 = 1u << 0, /* the hit came from Redis */
    NX_CACHE_OK = 1u << 1,      /* SHARED: the leader succeeded (else <value> is its failure) */
};

/* The outcome of a lookup: <value>/<len> (borrowed for the callback) for HIT and SHARED, NULL
 * for LEAD. */
typedef void (*nx_cache_fn)(void *arg, nx_cache_outcome_t outcome, const char *value, size_t len,
                            unsigned flags);

typedef struct nx_cache nx_cache_t;
typedef struct nx_cache_wait nx_cache_wait_t;

/** Creates the cache of shard <s> (from its thread): L1, and the Redis client when configured.
 *  -ENOMEM or -EINVAL. */
int nx_cache_new(nx_shard_t *s, const nx_cache_config_t *cfg, nx_cache_t **out);
/** Frees <c>: waiting lookups complete as LEAD first (their callers then find the cache gone
 *  and call nothing more; nx_cache_complete on a freed cache must not happen). Not from inside
 *  one of <c>'s callbacks; during those last LEAD callbacks a lookup leads at once and
 *  complete, invalidate and stale do nothing. NULL-safe. */
void nx_cache_free(nx_cache_t *c);

/** Looks <key> up. <fn> runs exactly once: inline for an L1 hit, or a lead when Redis is not
 *  configured or not up (no waiting on a Redis that cannot answer), else later (the Redis reply,
 *  or the leader's completion). <fn> may call the cache again (look up, complete, cancel another
 *  lookup). Returns NULL when <fn> already ran, or a handle for nx_cache_lookup_cancel valid
 *  until <fn> runs (cancelling from inside <fn> itself is a no-op). */
nx_cache_wait_t *nx_cache_lookup(nx_cache_t *c, const nx_cache_key_t *key, nx_cache_fn fn,
                                 void *arg);
/** Forgets a pending lookup (its caller went away); if it was waiting as a follower nothing
 *  else changes; if it was the pending leader's Redis lookup, the next waiter takes its place
 *  (it gets the GET's hit, or leads on a miss), and with no waiter left the flight ends. */
void nx_cache_lookup_cancel(nx_cache_wait_t *w);
/** Ends the flight of <key> led by the caller: every follower gets SHARED with <value>/<len>
 *  and <ok>. When <ok> and <ttl_ms> > 0 the value is stored in L1 and Redis for <ttl_ms>
 *  (plus the stale grace). */
void nx_cache_complete(nx_cache_t *c, const nx_cache_key_t *key, const char *value, size_t len,
                       bool ok, uint64_t ttl_ms);
/** The value of <key> if it is fresh or expired less than the stale grace ago (L1 only): for
 *  stale-if-error after a failed call. Returns true and a pointer to a copy owned by <c>, valid
 *  until the next nx_cache_stale, or the end of the nx_cache_complete it is passed to (so a
 *  leader may share it with its followers as is), or nx_cache_free. Counts nothing: see
 *  nx_cache_note_stale. */
bool nx_cache_stale(nx_cache_t *c, const nx_cache_key_t *key, const char **value, size_t *len);
/** Drops <key> from L1 and Redis. */
void nx_cache_invalidate(nx_cache_t *c, const nx_cache_key_t *key);

typedef struct nx_cache_stats {
    /* expired: entries dropped because TTL + grace ran out; evictions: dropped for room */
    uint64_t l1_hits, l1_misses, l1_evictions, l1_expired, l1_entries, l1_bytes;
    uint64_t l2_hits, l2_misses, l2_errors; /* misses include stale values; errors: timeouts,
                                               disconnected, error replies, bad values */
    uint64_t flights, shared;               /* lookups that led / that joined a flight */
    uint64_t stale_served;                  /* stale answers served (nx_cache_note_stale) */
    uint64_t redis_down_events;             /* times the Redis connection was lost */
    bool redis_configured, redis_up;
} nx_cache_stats_t;
/** Adds <c>'s counters into <out> (call once per shard to sum; booleans: configured if any,
 *  up only if every configured one is up). */
void nx_cache_stats_add(const nx_cache_t *c, nx_cache_stats_t *out);
/** Counts one stale answer (the engine decided to serve it). */
void nx_cache_note_stale(nx_cache_t *c);

#endif
