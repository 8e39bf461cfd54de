/* Intrusive doubly linked list: embed an nx_list_t in the owner and recover the owner with
 * nx_container_of. A head is a list node that points at itself when empty. */
#ifndef NEXUS_LIST_H
#define NEXUS_LIST_H

#include <stddef.h>
#include <stdbool.h>

typedef struct nx_list {
    struct nx_list *prev, *next;
} nx_list_t;

#define nx_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void nx_list_init(nx_list_t *h) {
    h->prev = h->next = h;
}
static inline bool nx_list_empty(const nx_list_t *h) {
    return h->next == h;
}
/* A node that is in no list has both links NULL (after calloc) or points at itself. */
static inline bool nx_list_linked(const nx_list_t *n) {
    return n->next != NULL && n->next != n;
}
static inline void nx_list_insert_tail(nx_list_t *h, nx_list_t *n) {
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void nx_list_insert_head(nx_list_t *h, nx_list_t *n) {
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}
static inline void nx_list_remove(nx_list_t *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
static inline nx_list_t *nx_list_pop_head(nx_list_t *h) {
    if (nx_list_empty(h)) return NULL;
    nx_list_t *n = h->next;
    nx_list_remove(n);
    return n;
}

/* Moves every node of <from> to the empty list <to>, leaving <from> empty. */
static inline void nx_list_move_all(nx_list_t *to, nx_list_t *from) {
    nx_list_init(to);
    if (nx_list_empty(from)) return;
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    nx_list_init(from);
}

/* Visits every node; the loop body must not remove <pos> (see nx_list_foreach_safe). */
#define nx_list_foreach(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#define nx_list_foreach_safe(pos, tmp, head)                                                       \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
