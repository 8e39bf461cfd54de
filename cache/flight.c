/* The single-flight table of one shard: flights keyed by cache key, and their waiters. Only
 * memory and lists here; which waiter gets which outcome is cache.c's business. */
#include "flight.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int nx__flights_init(nx_flights_t *t) {
    nx_list_init(&t->all);
    return nx__htab_init(&t->table);
}

void nx__flights_dispose(nx_flights_t *t) {
    nx__htab_dispose(&t->table);
}

nx_flight_t *nx__flight_find(nx_flights_t *t, const char *key, size_t klen, uint64_t hash) {
    for (nx_htab_node_t *n = nx__htab_chain(&t->table, hash); n != NULL; n = n->next) {
        nx_flight_t *f = nx_container_of(n, nx_flight_t, node);
        if (n->hash == hash && f->klen == klen && memcmp(f->key, key, klen) == 0) return f;
    }
    return NULL;
}

nx_flight_t *nx__flights_any(nx_flights_t *t) {
    return nx_list_empty(&t->all) ? NULL : nx_container_of(t->all.next, nx_flight_t, all_link);
}

nx_flight_t *nx__flight_start(nx_flights_t *t, const char *key, size_t klen, uint64_t hash) {
    nx_flight_t *f = calloc(1, sizeof(*f) + klen);
    if (f == NULL) return NULL;
    f->node.hash = hash;
    f->table = t;
    f->state = NX_FLIGHT_LEAD;
    nx_list_init(&f->waiters);
    f->klen = klen;
    memcpy(f->key, key, klen);
    nx__htab_insert(&t->table, &f->node);
    nx_list_insert_tail(&t->all, &f->all_link);
    return f;
}

nx_cache_wait_t *nx__flight_join(nx_flight_t *f, nx_cache_fn fn, void *arg) {
    nx_cache_wait_t *w = calloc(1, sizeof(*w));
    if (w == NULL) return NULL;
    w->flight = f;
    w->fn = fn;
    w->arg = arg;
    nx_list_insert_tail(&f->waiters, &w->link);
    return w;
}

nx_cache_wait_t *nx__flight_pop(nx_flight_t *f) {
    nx_list_t *n = nx_list_pop_head(&f->waiters);
    if (n == NULL) return NULL;
    nx_cache_wait_t *w = nx_container_of(n, nx_cache_wait_t, link);
    w->flight = NULL;
    return w;
}

void nx__flight_end(nx_flight_t *f, nx_list_t *out) {
    nx_cache_wait_t *w;
    while ((w = nx__flight_pop(f)) != NULL) {
        if (out != NULL)
            nx_list_insert_tail(out, &w->link);
        else
            free(w);
    }
    nx__htab_remove(&f->table->table, &f->node);
    nx_list_remove(&f->all_link);
    free(f);
}
