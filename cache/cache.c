/* The cache front of one shard: nx_cache_lookup and nx_cache_complete tie the L1, the
 * single-flight table and the Redis L2 together, and decide which waiter gets which outcome and
 * when. The policies live elsewhere (l1.c, flight.c, compress.c, key.c); this file is the
 * protocol of cache.h and its callback contract: every lookup's callback runs exactly once,
 * callbacks may call back into the cache, and nothing is touched after a callback that could
 * have changed it. */
#include "cache.h"
#include "compress.h"
#include "flight.h"
#include "l1.h"

#include "nexus/errors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PREFIX_MAX 128
#define RKEY_MAX (PREFIX_MAX + sizeof(((nx_cache_key_t *)0)->text))
#define DEFAULT_MAX_BYTES (64ull << 20)
#define DEFAULT_MAX_ENTRY_BYTES (1ull << 20)
#define DEFAULT_COMPRESS_MIN 1024u

/* Owned by its shard (created and used on its thread only); the counters are relaxed atomics
 * so that nx_cache_stats_add may run on any thread. */
struct nx_cache {
    nx_shard_t *s;
    nx_l1_t l1;
    nx_flights_t flights;
    nx_redis_t *redis; /* NULL = L1 only */
    char prefix[PREFIX_MAX + 1];
    size_t prefix_len;
    uint64_t stale_grace_ms, compress_min, max_entry_bytes;
    nx_cache_compression_t compression;
    char *stale_buf; /* the last nx_cache_stale answer (a copy: see nx_cache_complete) */
    bool closing;    /* nx_cache_free is delivering the last outcomes */
    bool redis_was_up;
    bool redis_up; /* relaxed atomic: read by nx_cache_stats_add */
    uint64_t l2_hits, l2_misses, l2_errors, flights_led, shared, stale_served, redis_down_events;
};

static uint64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t add_sat(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static size_t redis_key(const nx_cache_t *c, const char *key, size_t klen, char *buf) {
    memcpy(buf, c->prefix, c->prefix_len);
    memcpy(buf + c->prefix_len, key, klen);
    return c->prefix_len + klen;
}

static bool redis_usable(const nx_cache_t *c) {
    return c->redis != NULL && nx_redis_up(c->redis);
}

/* Runs <w>'s callback and frees it. <c> is not touched after the callback: it may have ended
 * the flight, started another, or cancelled other waiters. */
static void run(nx_cache_t *c, nx_cache_wait_t *w, nx_cache_outcome_t outcome, const char *value,
                size_t len, unsigned flags) {
    if (outcome == NX_CACHE_LEAD) nx_stat_add(&c->flights_led, 1);
    if (outcome == NX_CACHE_SHARED) nx_stat_add(&c->shared, 1);
    w->running = true;
    w->fn(w->arg, outcome, value, len, flags);
    free(w);
}

/* Delivers one outcome to the waiters of <ws>, oldest first. Popped one at a time because a
 * callback may cancel a waiter that is still in <ws>, which then simply leaves the list. */
static void deliver(nx_cache_t *c, nx_list_t *ws, nx_cache_outcome_t outcome, const char *value,
                    size_t len, unsigned flags) {
    nx_list_t *n;
    while ((n = nx_list_pop_head(ws)) != NULL)
        run(c, nx_container_of(n, nx_cache_wait_t, link), outcome, value, len, flags);
}

/* The GET missed: the oldest waiter leads; the others stay as its followers. */
static void lead_next(nx_cache_t *c, nx_flight_t *f) {
    nx_cache_wait_t *w = nx__flight_pop(f);
    if (w == NULL) {
        nx__flight_end(f, NULL);
        return;
    }
    f->state = NX_FLIGHT_LEAD; /* before the callback, which may complete the flight at once */
    run(c, w, NX_CACHE_LEAD, NULL, 0, 0);
}

/* Judges an L2 value at the current time: a fresh one is a hit for every waiter (and is copied
 * into L1 for its remaining TTL); a stale one within its grace is kept in L1 for stale-if-error
 * only and counts as a miss. True when it was a hit (the flight has then ended). */
static bool l2_value(nx_cache_t *c, nx_flight_t *f, const char *value, size_t len) {
    nx_l2_value_t v;
    if (nx__l2_value_decode(value, len, c->max_entry_bytes, &v) < 0) {
        nx_stat_add(&c->l2_errors, 1);
        return false;
    }
    uint64_t now = nx_shard_now_ms(c->s), wall = wall_ms();
    if (v.fresh_until_ms > wall) {
        nx_stat_add(&c->l2_hits, 1);
        uint64_t fresh = add_sat(now, v.fresh_until_ms - wall);
        nx__l1_put(&c->l1, f->key, f->klen, f->node.hash, v.p, v.len, now, fresh,
                   add_sat(fresh, c->stale_grace_ms));
        nx_list_t ws;
        nx_list_init(&ws);
        nx__flight_end(f, &ws);
        deliver(c, &ws, NX_CACHE_HIT, v.p, v.len, NX_CACHE_FROM_L2);
        nx__l2_value_release(&v);
        return true;
    }
    nx_stat_add(&c->l2_misses, 1);
    uint64_t drop_wall = add_sat(v.fresh_until_ms, c->stale_grace_ms);
    if (drop_wall > wall && nx__l1_peek(&c->l1, f->key, f->klen, f->node.hash, now) == NULL)
        nx__l1_put(&c->l1, f->key, f->klen, f->node.hash, v.p, v.len, now, now,
                   add_sat(now, drop_wall - wall));
    nx__l2_value_release(&v);
    return false;
}

static void on_l2_reply(void *arg, int status, const char *value, size_t len) {
    nx_flight_t *f = arg;
    nx_cache_t *c = nx_container_of(f->table, nx_cache_t, flights);
    f->req = NULL;
    if (status == 0) {
        if (l2_value(c, f, value, len)) return;
    } else if (status == NX_ENOTFOUND) {
        nx_stat_add(&c->l2_misses, 1);
    } else {
        nx_stat_add(&c->l2_errors, 1); /* timeout, lost connection, error reply */
    }
    lead_next(c, f);
}

static void on_redis_state(void *arg, bool up) {
    nx_cache_t *c = arg;
    if (!up && c->redis_was_up) nx_stat_add(&c->redis_down_events, 1);
    c->redis_was_up = up;
    __atomic_store_n(&c->redis_up, up, __ATOMIC_RELAXED);
}

int nx_cache_new(nx_shard_t *s, const nx_cache_config_t *cfg, nx_cache_t **out) {
    if (out != NULL) *out = NULL;
    if (s == NULL || cfg == NULL || out == NULL) return -EINVAL;
    if ((unsigned)cfg->eviction > NX_CACHE_CLOCK ||
        (unsigned)cfg->compression > NX_CACHE_COMPRESS_ZSTD)
        return -EINVAL;
    const char *prefix = cfg->redis_prefix != NULL ? cfg->redis_prefix : "nexus:";
    if (strlen(prefix) > PREFIX_MAX) return -EINVAL;
    if (cfg->redis != NULL && cfg->redis->host == NULL) return -EINVAL;
    nx_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return -ENOMEM;
    c->s = s;
    c->prefix_len = strlen(prefix);
    memcpy(c->prefix, prefix, c->prefix_len);
    c->stale_grace_ms = cfg->stale_grace_ms;
    c->compression = cfg->compression;
    c->compress_min = cfg->compress_min ? cfg->compress_min : DEFAULT_COMPRESS_MIN;
    c->max_entry_bytes = cfg->max_entry_bytes ? cfg->max_entry_bytes : DEFAULT_MAX_ENTRY_BYTES;
    nx_l1_config_t l1 = {.max_bytes = cfg->max_bytes ? cfg->max_bytes : DEFAULT_MAX_BYTES,
                         .max_entry_bytes = c->max_entry_bytes,
                         .eviction = cfg->eviction};
    /* Both inits leave their object safe to dispose even when they fail. */
    int rc = nx__l1_init(&c->l1, &l1);
    int rc2 = nx__flights_init(&c->flights);
    if (rc < 0 || rc2 < 0) {
        rc = -ENOMEM;
        goto fail;
    }
    /* The client copies its configuration. */
    if (cfg->redis != NULL) {
        rc = nx_redis_new(s, cfg->redis, on_redis_state, c, &c->redis);
        if (rc < 0) goto fail;
    }
    *out = c;
    return 0;
fail:
    nx_cache_free(c);
    return rc;
}

void nx_cache_free(nx_cache_t *c) {
    if (c == NULL) return;
    c->closing = true;
    /* Pending GETs are cancelled first so that no reply arrives mid-teardown; every waiter
     * then hears LEAD (there is no cache to wait for any more). */
    nx_list_t ws;
    nx_list_init(&ws);
    nx_flight_t *f;
    while ((f = nx__flights_any(&c->flights)) != NULL) {
        if (f->req != NULL) nx_redis_cancel(f->req);
        nx__flight_end(f, &ws);
    }
    deliver(c, &ws, NX_CACHE_LEAD, NULL, 0, 0);
    nx_redis_free(c->redis);
    nx__l1_dispose(&c->l1);
    nx__flights_dispose(&c->flights);
    free(c->stale_buf);
    free(c);
}

nx_cache_wait_t *nx_cache_lookup(nx_cache_t *c, const nx_cache_key_t *key, nx_cache_fn fn,
                                 void *arg) {
    if (c->closing) {
        fn(arg, NX_CACHE_LEAD, NULL, 0, 0);
        return NULL;
    }
    nx_l1_entry_t *e = nx__l1_get(&c->l1, key->text, key->len, key->hash, nx_shard_now_ms(c->s));
    if (e != NULL) {
        /* Pinned: the callback may complete or invalidate this very key. */
        nx__l1_pin(e);
        fn(arg, NX_CACHE_HIT, nx__l1_value(e), e->vlen, 0);
        nx__l1_unpin(e);
        return NULL;
    }
    nx_flight_t *f = nx__flight_find(&c->flights, key->text, key->len, key->hash);
    if (f != NULL) {
        nx_cache_wait_t *w = nx__flight_join(f, fn, arg);
        if (w != NULL) return w;
        /* No memory to wait: this caller calls the backend too, as without a cache. */
    } else {
        f = nx__flight_start(&c->flights, key->text, key->len, key->hash);
        nx_cache_wait_t *w;
        if (f != NULL && redis_usable(c) && (w = nx__flight_join(f, fn, arg)) != NULL) {
            char rkey[RKEY_MAX];
            size_t rlen = redis_key(c, key->text, key->len, rkey);
            f->state = NX_FLIGHT_L2;
            if (nx_redis_get(c->redis, rkey, rlen, on_l2_reply, f, &f->req) == 0) return w;
            /* Refused at once (lost, full): lead now; nobody waits on a Redis that cannot
             * answer. */
            nx_stat_add(&c->l2_errors, 1);
            f->state = NX_FLIGHT_LEAD;
            free(nx__flight_pop(f));
        }
    }
    nx_stat_add(&c->flights_led, 1);
    fn(arg, NX_CACHE_LEAD, NULL, 0, 0);
    return NULL;
}

void nx_cache_lookup_cancel(nx_cache_wait_t *w) {
    if (w == NULL || w->running) return;
    nx_flight_t *f = w->flight;
    nx_list_remove(&w->link);
    free(w);
    /* The GET stays useful while someone waits: the next in line leads if it misses. With
     * nobody left, its answer has no taker. */
    if (f != NULL && f->state == NX_FLIGHT_L2 && nx_list_empty(&f->waiters)) {
        nx_redis_cancel(f->req);
        nx__flight_end(f, NULL);
    }
}

/* Keeps <value> in L1 and Redis for <ttl_ms>, plus the grace (so any replica can serve it
 * stale). */
static void store(nx_cache_t *c, const nx_cache_key_t *key, const char *value, size_t len,
                  uint64_t ttl_ms) {
    uint64_t now = nx_shard_now_ms(c->s);
    uint64_t fresh = add_sat(now, ttl_ms);
    nx__l1_put(&c->l1, key->text, key->len, key->hash, value, len, now, fresh,
               add_sat(fresh, c->stale_grace_ms));
    if (!redis_usable(c)) return;
    char *enc;
    size_t elen;
    if (nx__l2_value_encode(c->compression, c->compress_min, value, len, add_sat(wall_ms(), ttl_ms),
                            &enc, &elen) < 0)
        return;
    char rkey[RKEY_MAX];
    size_t rlen = redis_key(c, key->text, key->len, rkey);
    nx_redis_set(c->redis, rkey, rlen, enc, elen, add_sat(ttl_ms, c->stale_grace_ms));
    free(enc);
}

void nx_cache_complete(nx_cache_t *c, const nx_cache_key_t *key, const char *value, size_t len,
                       bool ok, uint64_t ttl_ms) {
    if (c->closing) return;
    /* The leader may pass back what nx_cache_stale gave it: the buffer is this call's until
     * the followers have seen it, whatever their callbacks ask of the cache. */
    char *owned = NULL;
    if (value != NULL && value == c->stale_buf) {
        owned = c->stale_buf;
        c->stale_buf = NULL;
    }
    /* A value over max_entry_bytes is not kept anywhere, and replaces nothing. */
    if (ok && ttl_ms > 0 && len <= c->max_entry_bytes) store(c, key, value, len, ttl_ms);
    nx_flight_t *f = nx__flight_find(&c->flights, key->text, key->len, key->hash);
    if (f != NULL && f->state == NX_FLIGHT_LEAD) {
        nx_list_t ws;
        nx_list_init(&ws);
        nx__flight_end(f, &ws);
        deliver(c, &ws, NX_CACHE_SHARED, value, len, ok ? NX_CACHE_OK : 0);
    }
    free(owned);
}

bool nx_cache_stale(nx_cache_t *c, const nx_cache_key_t *key, const char **value, size_t *len) {
    if (c->closing) return false;
    nx_l1_entry_t *e = nx__l1_peek(&c->l1, key->text, key->len, key->hash, nx_shard_now_ms(c->s));
    if (e == NULL) return false;
    /* A copy, so that later cache calls (a completion that evicts, a re-entrant lookup) can
     * never pull it away from under the engine. Stale answers are rare; the copy is cheap. */
    char *copy = malloc(e->vlen + 1);
    if (copy == NULL) return false;
    memcpy(copy, nx__l1_value(e), e->vlen);
    free(c->stale_buf);
    c->stale_buf = copy;
    *value = copy;
    *len = e->vlen;
    return true;
}

void nx_cache_invalidate(nx_cache_t *c, const nx_cache_key_t *key) {
    if (c->closing) return;
    nx__l1_remove(&c->l1, key->text, key->len, key->hash);
    if (!redis_usable(c)) return;
    char rkey[RKEY_MAX];
    nx_redis_del(c->redis, rkey, redis_key(c, key->text, key->len, rkey));
}

void nx_cache_stats_add(const nx_cache_t *c, nx_cache_stats_t *out) {
    out->l1_hits += nx_stat_get(&c->l1.hits);
    out->l1_misses += nx_stat_get(&c->l1.misses);
    out->l1_evictions += nx_stat_get(&c->l1.evictions);
    out->l1_expired += nx_stat_get(&c->l1.expired);
    out->l1_entries += nx_stat_get(&c->l1.entries);
    out->l1_bytes += nx_stat_get(&c->l1.bytes);
    out->l2_hits += nx_stat_get(&c->l2_hits);
    out->l2_misses += nx_stat_get(&c->l2_misses);
    out->l2_errors += nx_stat_get(&c->l2_errors);
    out->flights += nx_stat_get(&c->flights_led);
    out->shared += nx_stat_get(&c->shared);
    out->stale_served += nx_stat_get(&c->stale_served);
    out->redis_down_events += nx_stat_get(&c->redis_down_events);
    if (c->redis != NULL) {
        bool up = __atomic_load_n(&c->redis_up, __ATOMIC_RELAXED);
        out->redis_up = out->redis_configured ? out->redis_up && up : up;
        out->redis_configured = true;
    }
}

void nx_cache_note_stale(nx_cache_t *c) {
    nx_stat_add(&c->stale_served, 1);
}
