/* Bounded MPSC queue (see mailbox.h): each slot carries a sequence number telling producers and
 * the consumer whose turn it is, so no lock is ever taken. */
#include "mailbox.h"

#include "nexus/errors.h"

#include <errno.h>
#include <stdlib.h>

int nx_mailbox_init(nx_mailbox_t *mb, size_t capacity) {
    size_t cap = 2;
    while (cap < capacity)
        cap *= 2;
    mb->slots = calloc(cap, sizeof(*mb->slots));
    if (mb->slots == NULL) return -ENOMEM;
    for (size_t i = 0; i < cap; i++)
        mb->slots[i].seq = i;
    mb->mask = cap - 1;
    mb->head = mb->tail = 0;
    mb->wake_pending = 0;
    return 0;
}

void nx_mailbox_dispose(nx_mailbox_t *mb) {
    if (mb == NULL) return;
    free(mb->slots);
    mb->slots = NULL;
}

int nx_mailbox_push(nx_mailbox_t *mb, void *msg) {
    uint64_t pos = __atomic_load_n(&mb->tail, __ATOMIC_RELAXED);
    for (;;) {
        nx_mailbox_slot_t *slot = &mb->slots[pos & mb->mask];
        uint64_t seq = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0) {
            if (__atomic_compare_exchange_n(&mb->tail, &pos, pos + 1, true, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED)) {
                slot->msg = msg;
                __atomic_store_n(&slot->seq, pos + 1, __ATOMIC_RELEASE);
                return 0;
            }
        } else if (diff < 0) {
            return NX_EFULL; /* the consumer has not freed this slot yet */
        } else {
            pos = __atomic_load_n(&mb->tail, __ATOMIC_RELAXED);
        }
    }
}

void *nx_mailbox_pop(nx_mailbox_t *mb) {
    uint64_t pos = mb->head;
    nx_mailbox_slot_t *slot = &mb->slots[pos & mb->mask];
    uint64_t seq = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
    if ((int64_t)(seq - (pos + 1)) < 0) return NULL;
    void *msg = slot->msg;
    __atomic_store_n(&slot->seq, pos + mb->mask + 1, __ATOMIC_RELEASE);
    mb->head = pos + 1;
    return msg;
}

bool nx_mailbox_need_wake(nx_mailbox_t *mb) {
    return __atomic_exchange_n(&mb->wake_pending, 1, __ATOMIC_ACQ_REL) == 0;
}

void nx_mailbox_wake_done(nx_mailbox_t *mb) {
    __atomic_store_n(&mb->wake_pending, 0, __ATOMIC_SEQ_CST);
}
