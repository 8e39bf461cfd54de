/* MCP session table (see mcp_session.h): chained hash on the id for lookups, an LRU list for
 * expiry and eviction, both intrusive in the session. */
#include "mcp_session.h"

#include "nexus/errors.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t hash_id(const char *p, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a; the ids are random, so any mix will do */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

int nx_mcp_sessions_init(nx_mcp_sessions_t *t, uint32_t shard, uint32_t max, uint64_t idle_ms,
                         uint64_t evict_idle_ms) {
    memset(t, 0, sizeof(*t));
    uint32_t buckets = 16;
    while (buckets < max && buckets < (1u << 24))
        buckets *= 2;
    t->buckets = calloc(buckets, sizeof(*t->buckets));
    if (t->buckets == NULL) return -ENOMEM;
    t->bucket_mask = buckets - 1;
    t->shard = shard;
    t->max = max;
    t->idle_ms = idle_ms;
    t->evict_idle_ms = evict_idle_ms;
    nx_list_init(&t->lru);
    return 0;
}

static void unlink_session(nx_mcp_sessions_t *t, nx_mcp_session_t *s) {
    nx_mcp_session_t **pp = &t->buckets[hash_id(s->id, NX_MCP_SESSION_ID_LEN) & t->bucket_mask];
    while (*pp != NULL && *pp != s)
        pp = &(*pp)->hash_next;
    if (*pp == s) *pp = s->hash_next;
    nx_list_remove(&s->lru);
    t->count--;
    if (t->release != NULL) t->release(s, t->release_arg);
    free(s);
}

void nx_mcp_sessions_dispose(nx_mcp_sessions_t *t) {
    nx_list_t *n;
    while ((n = t->lru.next) != &t->lru && t->buckets != NULL)
        unlink_session(t, nx_container_of(n, nx_mcp_session_t, lru));
    free(t->buckets);
    t->buckets = NULL;
}

int nx_mcp_session_create(nx_mcp_sessions_t *t, uint64_t now_ms, nx_mcp_session_t **out) {
    nx_mcp_sessions_expire(t, now_ms);
    if (t->count >= t->max) {
        nx_mcp_session_t *lru =
            nx_list_empty(&t->lru) ? NULL : nx_container_of(t->lru.next, nx_mcp_session_t, lru);
        /* A flood of new sessions must not push out sessions that are in use. */
        if (lru == NULL || now_ms - lru->last_used_ms < t->evict_idle_ms) return NX_EFULL;
        unlink_session(t, lru);
        t->evicted++;
    }
    nx_mcp_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL) return -ENOMEM;
    if (nx_mcp_random_id(t->shard, s->id) < 0) {
        free(s);
        return -EIO;
    }
    s->created_ms = s->last_used_ms = now_ms;
    uint32_t b = hash_id(s->id, NX_MCP_SESSION_ID_LEN) & t->bucket_mask;
    s->hash_next = t->buckets[b];
    t->buckets[b] = s;
    nx_list_insert_tail(&t->lru, &s->lru);
    t->count++;
    *out = s;
    return 0;
}

nx_mcp_session_t *nx_mcp_session_find(nx_mcp_sessions_t *t, nx_str_t id, uint64_t now_ms) {
    if (id.n != NX_MCP_SESSION_ID_LEN) return NULL;
    nx_mcp_session_t *s = t->buckets[hash_id(id.p, id.n) & t->bucket_mask];
    while (s != NULL && memcmp(s->id, id.p, id.n) != 0)
        s = s->hash_next;
    if (s == NULL) return NULL;
    if (now_ms - s->last_used_ms > t->idle_ms) { /* expired but not yet swept */
        unlink_session(t, s);
        t->expired++;
        return NULL;
    }
    s->last_used_ms = now_ms;
    nx_list_remove(&s->lru);
    nx_list_insert_tail(&t->lru, &s->lru);
    return s;
}

void nx_mcp_session_close(nx_mcp_sessions_t *t, nx_mcp_session_t *s) {
    unlink_session(t, s);
}

size_t nx_mcp_sessions_expire(nx_mcp_sessions_t *t, uint64_t now_ms) {
    size_t n = 0;
    while (!nx_list_empty(&t->lru)) {
        nx_mcp_session_t *s = nx_container_of(t->lru.next, nx_mcp_session_t, lru);
        if (now_ms - s->last_used_ms <= t->idle_ms) break; /* the rest were used more recently */
        unlink_session(t, s);
        t->expired++;
        n++;
    }
    return n;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int nx_mcp_session_id_shard(nx_str_t id) {
    if (id.n != NX_MCP_SESSION_ID_LEN) return -1;
    for (size_t i = 0; i < id.n; i++)
        if (hex_value(id.p[i]) < 0) return -1;
    return hex_value(id.p[0]) * 16 + hex_value(id.p[1]);
}

int nx_mcp_random_id(uint32_t shard, char out[NX_MCP_SESSION_ID_LEN + 1]) {
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) return -EIO;
    static const char hex[] = "0123456789abcdef";
    out[0] = hex[(shard >> 4) & 15];
    out[1] = hex[shard & 15];
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 + 2 * i] = hex[rnd[i] >> 4];
        out[3 + 2 * i] = hex[rnd[i] & 15];
    }
    out[NX_MCP_SESSION_ID_LEN] = '\0';
    return 0;
}

void nx_mcp_sessions_on_release(nx_mcp_sessions_t *t, nx_mcp_session_release_fn fn, void *arg) {
    t->release = fn;
    t->release_arg = arg;
}
