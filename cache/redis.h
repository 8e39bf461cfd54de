/* A Redis client for one shard: hiredis's async API driven by the shard's io_uring loop
 * through a custom adapter (one-shot poll operations for readable/writable), with the timeouts
 * hiredis 0.14 lacks enforced by the shard's timer wheel, and reconnection with exponential
 * backoff and jitter when Redis goes away. Commands are pipelined: each one is written as soon
 * as it is issued, replies come back in order. While Redis is down commands fail at once
 * (NX_ECLOSED) so callers fall back without waiting. Everything runs on the owning shard's
 * thread. */
#ifndef NX_CACHE_REDIS_H
#define NX_CACHE_REDIS_H

#include "shard.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nx_redis nx_redis_t;
typedef struct nx_redis_req nx_redis_req_t;

typedef struct nx_redis_config {
    const char *host; /* a numeric IPv4/IPv6 address (names are resolved by the caller
                         beforehand: a name is -EINVAL, so no DNS ever runs on the shard) */
    uint16_t port;
    const char *password;        /* AUTH after connecting; NULL = none */
    uint32_t db;                 /* SELECT after connecting when not 0 */
    uint32_t connect_timeout_ms; /* connect + AUTH/SELECT (or PING); default 1000 */
    uint32_t command_timeout_ms; /* each command's reply; default 250 */
    uint32_t reconnect_base_ms;  /* first reconnect delay; default 100 */
    uint32_t reconnect_cap_ms;   /* longest; default 5000 */
    uint32_t max_pending;        /* commands awaiting replies at most; more fail NX_EFULL;
                                    default 4096 */
} nx_redis_config_t;

/* The reply to a GET: <status> 0 with the value in <value>/<len> (borrowed for the callback),
 * NX_ENOTFOUND for a missing key, or a negative error: NX_ETIMEOUT (no reply in time; the
 * connection is then dropped and re-established, as replies can no longer be matched),
 * NX_ECLOSED (not connected, or the connection was lost), NX_EPROTO (an error reply),
 * -ECANCELED (nx_redis_free while pending). */
typedef void (*nx_redis_get_fn)(void *arg, int status, const char *value, size_t len);
/* Reports the connection coming up (<up> true) or going down; "down" only follows an "up"
 * (failed attempts are counted, not reported) and nx_redis_free reports nothing. */
typedef void (*nx_redis_state_fn)(void *arg, bool up);

/* commands: accepted by get/set/del; replies: answers to them; errors: error replies (and GET
 * replies that are not a value) plus commands lost with their connection; timeouts: commands
 * that ended with NX_ETIMEOUT; connects: handshakes completed; disconnects: connections lost
 * after being up; connect_failures: attempts that never came up (refused, timed out, error
 * reply to AUTH/SELECT/PING). */
typedef struct nx_redis_stats {
    uint64_t commands, replies, errors, timeouts, connects, disconnects, connect_failures;
    bool up;
} nx_redis_stats_t;

/** Creates a client on shard <s> (the calling thread must be its thread) and starts
 *  connecting; <state> (may be NULL) hears of every up/down change. -ENOMEM or -EINVAL. */
int nx_redis_new(nx_shard_t *s, const nx_redis_config_t *cfg, nx_redis_state_fn state,
                 void *state_arg, nx_redis_t **out);
/** Disconnects and frees <r>: pending GETs complete with -ECANCELED first. Safe inside any of
 *  its callbacks (the memory goes when they return). Polls still in the kernel are cancelled and
 *  keep a small connection struct alive until their completions, so the shard's loop must run
 *  on for an iteration or two (as for every async close) or that struct leaks. NULL-safe. */
void nx_redis_free(nx_redis_t *r);
/** True while connected and Redis has answered the handshake (AUTH/SELECT, else PING). */
bool nx_redis_up(const nx_redis_t *r);
/** GET <key>; <fn> runs exactly once, never inline. Returns 0 and, when <req> is non-NULL, a
 *  handle for nx_redis_cancel (valid until <fn> runs); or NX_ECLOSED / NX_EFULL / -ENOMEM at
 *  once without calling <fn>. */
int nx_redis_get(nx_redis_t *r, const char *key, size_t klen, nx_redis_get_fn fn, void *arg,
                 nx_redis_req_t **req);
/** SET <key> <value> PX <ttl_ms> (ttl 0 = no expiry), fire and forget: failures are counted,
 *  never reported. Returns 0, NX_ECLOSED, NX_EFULL or -ENOMEM. */
int nx_redis_set(nx_redis_t *r, const char *key, size_t klen, const void *value, size_t vlen,
                 uint64_t ttl_ms);
/** DEL <key>, fire and forget. */
int nx_redis_del(nx_redis_t *r, const char *key, size_t klen);
/** Forgets <req>: its callback will not run (the reply, when it comes, is discarded); <req>
 *  is not to be used again. Call only before its callback has run. */
void nx_redis_cancel(nx_redis_req_t *req);
void nx_redis_stats(const nx_redis_t *r, nx_redis_stats_t *out);

#endif
