/* The L1 policy of one shard: lookup, insertion under the byte budget, LRU or CLOCK eviction,
 * TTL and stale grace judged against the time each call passes in. No I/O and no clock of its
 * own, so tests drive it with a fake one. */
#include "l1.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void stat_sub(uint64_t *c, uint64_t n) {
    nx_stat_add(c, (uint64_t)0 - n);
}

static nx_l1_entry_t *entry_of(nx_list_t *link) {
    return nx_container_of(link, nx_l1_entry_t, link);
}

static nx_l1_entry_t *find(const nx_l1_t *l, const char *key, size_t klen, uint64_t hash) {
    for (nx_htab_node_t *n = nx__htab_chain(&l->table, hash); n != NULL; n = n->next) {
        nx_l1_entry_t *e = nx_container_of(n, nx_l1_entry_t, node);
        if (n->hash == hash && e->klen == klen && memcmp(e->data, key, klen) == 0) return e;
    }
    return NULL;
}

/* Takes <e> out of the table and the eviction order; its memory goes now, or with its last
 * pin when a callback is still reading the value. */
static void unlink_entry(nx_l1_t *l, nx_l1_entry_t *e) {
    nx__htab_remove(&l->table, &e->node);
    if (l->hand == &e->link) l->hand = e->link.next;
    nx_list_remove(&e->link);
    stat_sub(&l->entries, 1);
    stat_sub(&l->bytes, nx__l1_cost(e->klen, e->vlen));
    e->removed = true;
    if (e->pins == 0) free(e);
}

/* Drops <e> to make room or because its time is over; counted as expired when it was dead
 * anyway, so that evictions measure only the budget's pressure. */
static void drop(nx_l1_t *l, nx_l1_entry_t *e, uint64_t now_ms) {
    nx_stat_add(now_ms >= e->drop_at_ms ? &l->expired : &l->evictions, 1);
    unlink_entry(l, e);
}

/* The entry to evict next: the least recently used one, or the first one the CLOCK hand finds
 * unreferenced (or dead), clearing reference bits as it passes. Ends within two sweeps. */
static nx_l1_entry_t *victim(nx_l1_t *l, uint64_t now_ms) {
    if (nx_list_empty(&l->order)) return NULL;
    if (l->cfg.eviction == NX_CACHE_LRU) return entry_of(l->order.next);
    for (;;) {
        if (l->hand == &l->order) l->hand = l->order.next;
        nx_l1_entry_t *e = entry_of(l->hand);
        if (!e->ref || now_ms >= e->drop_at_ms) return e;
        e->ref = false;
        l->hand = l->hand->next;
    }
}

int nx__l1_init(nx_l1_t *l, const nx_l1_config_t *cfg) {
    memset(l, 0, sizeof(*l));
    l->cfg = *cfg;
    nx_list_init(&l->order);
    l->hand = &l->order;
    return nx__htab_init(&l->table);
}

void nx__l1_dispose(nx_l1_t *l) {
    nx_list_t *n;
    while ((n = nx_list_pop_head(&l->order)) != NULL)
        free(entry_of(n));
    nx__htab_dispose(&l->table);
    l->hand = &l->order;
    __atomic_store_n(&l->entries, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&l->bytes, 0, __ATOMIC_RELAXED);
}

nx_l1_entry_t *nx__l1_get(nx_l1_t *l, const char *key, size_t klen, uint64_t hash,
                          uint64_t now_ms) {
    nx_l1_entry_t *e = find(l, key, klen, hash);
    if (e != NULL && now_ms >= e->drop_at_ms) {
        drop(l, e, now_ms);
        e = NULL;
    }
    if (e == NULL || now_ms >= e->fresh_until_ms) {
        nx_stat_add(&l->misses, 1);
        return NULL;
    }
    nx_stat_add(&l->hits, 1);
    if (l->cfg.eviction == NX_CACHE_LRU) {
        nx_list_remove(&e->link);
        nx_list_insert_tail(&l->order, &e->link);
    } else {
        e->ref = true; /* CLOCK's point: a hit writes one bit, no list surgery */
    }
    return e;
}

nx_l1_entry_t *nx__l1_peek(nx_l1_t *l, const char *key, size_t klen, uint64_t hash,
                           uint64_t now_ms) {
    nx_l1_entry_t *e = find(l, key, klen, hash);
    if (e != NULL && now_ms >= e->drop_at_ms) {
        drop(l, e, now_ms);
        return NULL;
    }
    return e;
}

int nx__l1_put(nx_l1_t *l, const char *key, size_t klen, uint64_t hash, const char *value,
               size_t vlen, uint64_t now_ms, uint64_t fresh_until_ms, uint64_t drop_at_ms) {
    /* The old value goes even when the new one cannot be kept: it is older than what the
     * caller just learned. */
    nx_l1_entry_t *old = find(l, key, klen, hash);
    if (old != NULL) unlink_entry(l, old);
    uint64_t cost = nx__l1_cost(klen, vlen);
    if (vlen > l->cfg.max_entry_bytes || cost > l->cfg.max_bytes) return -E2BIG;
    nx_l1_entry_t *e = malloc(sizeof(*e) + klen + vlen);
    if (e == NULL) return -ENOMEM;
    while (nx_stat_get(&l->bytes) + cost > l->cfg.max_bytes)
        drop(l, victim(l, now_ms), now_ms);
    memset(e, 0, sizeof(*e));
    e->node.hash = hash;
    e->klen = klen;
    e->vlen = vlen;
    e->fresh_until_ms = fresh_until_ms;
    e->drop_at_ms = drop_at_ms < fresh_until_ms ? fresh_until_ms : drop_at_ms;
    memcpy(e->data, key, klen);
    if (vlen > 0) memcpy(e->data + klen, value, vlen);
    nx__htab_insert(&l->table, &e->node);
    /* CLOCK: just behind the hand, so a new entry is the last one the sweep reaches. */
    nx_list_insert_tail(l->cfg.eviction == NX_CACHE_LRU ? &l->order : l->hand, &e->link);
    nx_stat_add(&l->entries, 1);
    nx_stat_add(&l->bytes, cost);
    return 0;
}

bool nx__l1_remove(nx_l1_t *l, const char *key, size_t klen, uint64_t hash) {
    nx_l1_entry_t *e = find(l, key, klen, hash);
    if (e == NULL) return false;
    unlink_entry(l, e);
    return true;
}

void nx__l1_unpin(nx_l1_entry_t *e) {
    if (--e->pins == 0 && e->removed) free(e);
}
