/* Bounded multi-producer, single-consumer queue of message pointers: the only way work crosses
 * from one thread to a shard. Lock-free (sequence-numbered slots); a full queue says so
 * (NX_EFULL) instead of growing, so a slow shard sheds load rather than eating memory. */
#ifndef NX_NET_MAILBOX_H
#define NX_NET_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nx_mailbox_slot {
    uint64_t seq;
    void *msg;
} nx_mailbox_slot_t;

/* Owned by the receiving shard; producers only call nx_mailbox_push. */
typedef struct nx_mailbox {
    nx_mailbox_slot_t *slots;
    uint64_t mask;
    uint64_t head __attribute__((aligned(64)));    /* next slot to pop (consumer only) */
    uint64_t tail __attribute__((aligned(64)));    /* next slot to claim (producers) */
    int wake_pending __attribute__((aligned(64))); /* 1 while a wake-up is on its way */
} nx_mailbox_t;

/** Initializes <mb> with room for <capacity> messages (rounded up to a power of two). */
int nx_mailbox_init(nx_mailbox_t *mb, size_t capacity);
void nx_mailbox_dispose(nx_mailbox_t *mb);
/** Enqueues <msg>; returns 0, or NX_EFULL when the mailbox is full. Any thread. */
int nx_mailbox_push(nx_mailbox_t *mb, void *msg);
/** Dequeues the oldest message or returns NULL when empty. Owner thread only. */
void *nx_mailbox_pop(nx_mailbox_t *mb);
/** True if the caller must wake the owner (no wake-up is pending yet); producers call this
 *  after a successful push. The owner calls nx_mailbox_wake_done before draining. */
bool nx_mailbox_need_wake(nx_mailbox_t *mb);
void nx_mailbox_wake_done(nx_mailbox_t *mb);

#endif
