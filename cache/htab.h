/* An intrusive chained hash table, shared by the L1 entries and the single-flight table of a
 * shard: the owner embeds an nx_htab_node_t, carries its own key and compares it itself while
 * walking a chain. Chains stay short because the table doubles once it holds as many nodes as
 * buckets; when that allocation fails the table keeps working with longer chains. */
#ifndef NX_CACHE_HTAB_H
#define NX_CACHE_HTAB_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct nx_htab_node {
    struct nx_htab_node *next;
    uint64_t hash;
} nx_htab_node_t;

/* Embedded in its owner (an L1 or a flight table); holds only links to the owner's nodes. */
typedef struct nx_htab {
    nx_htab_node_t **buckets;
    size_t mask; /* bucket count - 1 (a power of two) */
    size_t count;
} nx_htab_t;

#define NX_HTAB_MIN_BUCKETS 64u

/** Prepares an empty table <t>. 0 or -ENOMEM. */
static inline int nx__htab_init(nx_htab_t *t) {
    t->buckets = calloc(NX_HTAB_MIN_BUCKETS, sizeof(*t->buckets));
    t->mask = NX_HTAB_MIN_BUCKETS - 1;
    t->count = 0;
    return t->buckets == NULL ? -ENOMEM : 0;
}

/** Frees the bucket array; the nodes belong to the owner. */
static inline void nx__htab_dispose(nx_htab_t *t) {
    free(t->buckets);
    t->buckets = NULL;
    t->count = 0;
}

/** The first node of the chain <hash> falls in; walk it with ->next and compare keys. */
static inline nx_htab_node_t *nx__htab_chain(const nx_htab_t *t, uint64_t hash) {
    return t->buckets[hash & t->mask];
}

static inline void nx__htab_grow(nx_htab_t *t) {
    size_t n = (t->mask + 1) * 2;
    nx_htab_node_t **b = calloc(n, sizeof(*b));
    if (b == NULL) return; /* longer chains, still correct */
    for (size_t i = 0; i <= t->mask; i++) {
        nx_htab_node_t *node = t->buckets[i];
        while (node != NULL) {
            nx_htab_node_t *next = node->next;
            node->next = b[node->hash & (n - 1)];
            b[node->hash & (n - 1)] = node;
            node = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = n - 1;
}

/** Links <n> (its hash set by the caller) into <t>; the caller made sure its key is absent. */
static inline void nx__htab_insert(nx_htab_t *t, nx_htab_node_t *n) {
    if (t->count > t->mask) nx__htab_grow(t);
    nx_htab_node_t **head = &t->buckets[n->hash & t->mask];
    n->next = *head;
    *head = n;
    t->count++;
}

/** Unlinks <n>, which must be in <t>. */
static inline void nx__htab_remove(nx_htab_t *t, nx_htab_node_t *n) {
    nx_htab_node_t **pp = &t->buckets[n->hash & t->mask];
    while (*pp != n)
        pp = &(*pp)->next;
    *pp = n->next;
    n->next = NULL;
    t->count--;
}

#endif
