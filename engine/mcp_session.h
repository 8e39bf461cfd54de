/* Sessions of the MCP front end (legacy protocol era): a bounded table per shard. Ids carry 128
 * random bits from OpenSSL plus the owning shard, so a request that lands on another shard can
 * be forwarded there. Idle expiry and eviction take the clock as an argument (no I/O). */
#ifndef NX_ENGINE_MCP_SESSION_H
#define NX_ENGINE_MCP_SESSION_H

#include "nexus/list.h"
#include "nexus/str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "<2 hex digits of shard><32 hex digits of randomness>" */
#define NX_MCP_SESSION_ID_LEN 34

typedef struct nx_mcp_session nx_mcp_session_t;
typedef struct nx_mcp_sessions nx_mcp_sessions_t;

/* Called just before a session is freed (closed, expired or evicted) to release user state. */
typedef void (*nx_mcp_session_release_fn)(nx_mcp_session_t *s, void *arg);

/* Owned by its shard's table. */
struct nx_mcp_session {
    char id[NX_MCP_SESSION_ID_LEN + 1];
    uint64_t created_ms;
    uint64_t last_used_ms;
    nx_list_t lru; /* in the table's LRU list, least recently used first */
    nx_mcp_session_t *hash_next;
    void *user; /* the transport's state for the session, released by the release hook */
};

/* Owned by one shard. */
struct nx_mcp_sessions {
    uint32_t shard;
    uint32_t max;           /* bound on live sessions */
    uint64_t idle_ms;       /* sessions idle longer than this expire */
    uint64_t evict_idle_ms; /* when full, the LRU session is evicted if idle at least this */
    uint32_t count;
    nx_mcp_session_t **buckets;
    uint32_t bucket_mask;
    nx_list_t lru;
    nx_mcp_session_release_fn release;
    void *release_arg;
    uint64_t evicted, expired; /* counters for metrics */
};

/** Sets the hook run just before each session is freed. */
void nx_mcp_sessions_on_release(nx_mcp_sessions_t *t, nx_mcp_session_release_fn fn, void *arg);
/** Prepares an empty table for shard <shard> holding at most <max> sessions. */
int nx_mcp_sessions_init(nx_mcp_sessions_t *t, uint32_t shard, uint32_t max, uint64_t idle_ms,
                         uint64_t evict_idle_ms);
/** Frees every session (running the release hook) and the table's storage. */
void nx_mcp_sessions_dispose(nx_mcp_sessions_t *t);
/** Creates a session at <now_ms>; when the table is full the least recently used session is
 *  evicted if it has been idle at least evict_idle_ms, else NX_EFULL (answer 503). Returns 0
 *  with the session in <out>, NX_EFULL, -ENOMEM, or -EIO when no randomness is available. */
int nx_mcp_session_create(nx_mcp_sessions_t *t, uint64_t now_ms, nx_mcp_session_t **out);
/** Finds session <id> and marks it used at <now_ms>; NULL when unknown, expired or closed. */
nx_mcp_session_t *nx_mcp_session_find(nx_mcp_sessions_t *t, nx_str_t id, uint64_t now_ms);
/** Closes and frees <s> (DELETE, or the transport ended it). */
void nx_mcp_session_close(nx_mcp_sessions_t *t, nx_mcp_session_t *s);
/** Frees every session idle longer than idle_ms at <now_ms>; returns how many. */
size_t nx_mcp_sessions_expire(nx_mcp_sessions_t *t, uint64_t now_ms);
/** Writes a fresh id for an object owned by <shard> (sessions, tasks): the shard in 2 hex
 *  digits, then 128 random bits in hex. Returns 0, or -EIO when no randomness is available. */
int nx_mcp_random_id(uint32_t shard, char out[NX_MCP_SESSION_ID_LEN + 1]);
/** The shard named by session id <id>, or -1 when <id> is not a well-formed session id. */
int nx_mcp_session_id_shard(nx_str_t id);

#endif
