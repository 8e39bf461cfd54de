/* A shard: one thread with its own io_uring loop, timer wheel, mailbox and connections. Shards
 * share nothing; work crosses between them only as an nx_msg_t posted to a mailbox, whose
 * owner is woken with IORING_OP_MSG_RING. */
#ifndef NX_NET_SHARD_H
#define NX_NET_SHARD_H

#include "mailbox.h"
#include "timer.h"
#include "uring.h"

#include "nexus/list.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct nx_shard nx_shard_t;
typedef struct nx_msg nx_msg_t;

/* Runs on the receiving shard's thread; the message is the receiver's to free or reuse. */
typedef void (*nx_msg_fn)(nx_shard_t *s, nx_msg_t *m);
/* Releases a message that never ran (posted after its shard stopped); NULL = free(m). */
typedef void (*nx_msg_dispose_fn)(nx_msg_t *m);
struct nx_msg {
    nx_msg_fn fn;
    nx_msg_dispose_fn dispose;
};

/* Work a shard runs at the end of a loop turn, around the moment the I/O the turn queued goes
 * to the kernel: before it (nx_shard_at_turn_end: a writer gathers what the whole turn
 * produced into one write) or after it (nx_shard_after_submit: bookkeeping, such as a
 * workflow's events, that must not delay the bytes a client or a backend waits for).
 * Embedded in its owner, which cancels it before it goes away. */
typedef struct nx_later nx_later_t;
struct nx_later {
    nx_list_t link; /* in one of the shard's queues while queued */
    void (*fn)(nx_later_t *l);
};

static inline void nx_later_init(nx_later_t *l, void (*fn)(nx_later_t *l)) {
    nx_list_init(&l->link);
    l->fn = fn;
}
static inline bool nx_later_queued(const nx_later_t *l) {
    return nx_list_linked(&l->link);
}
/** Takes <l> off its queue; a no-op when it is not queued. */
static inline void nx_later_cancel(nx_later_t *l) {
    if (nx_list_linked(&l->link)) nx_list_remove(&l->link);
}

/* Byte and connection counters of one shard's sockets. Written only by the owning shard with
 * relaxed atomics; any thread may read them (for /metrics and /stats). */
typedef struct nx_net_stats {
    int64_t connections_open;
    uint64_t connections_accepted;
    uint64_t connections_rejected;
    uint64_t bytes_in;
    uint64_t bytes_out;
} nx_net_stats_t;

static inline void nx_stat_add(uint64_t *c, uint64_t n) {
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}
static inline uint64_t nx_stat_get(const uint64_t *c) {
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

typedef struct nx_shard_opts {
    unsigned ring_entries;
    unsigned buf_count;
    unsigned buf_size;
    unsigned mailbox_capacity;
    /* Runs on the shard thread once its loop exists; a negative return aborts the start. */
    int (*on_start)(nx_shard_t *s);
    /* Runs on the shard thread after the loop has stopped, before it is freed. */
    void (*on_stop)(nx_shard_t *s);
    void *user;
} nx_shard_opts_t;

struct nx_shard {
    int id;
    nx_loop_t *loop;
    nx_timer_wheel_t wheel;
    nx_mailbox_t mailbox;
    nx_op_t wake_op;
    nx_net_stats_t stats;
    nx_list_t conns; /* every nx_conn_t of this shard */
    void *user;      /* the engine's per-shard state */
    bool stop;       /* leave the loop after this iteration */
    /* A message was posted to this shard from its own thread: the loop drains the mailbox at
     * the end of this iteration instead of ringing itself through the kernel. */
    bool self_posted;
    nx_list_t turn_end, after_submit; /* nx_later_t.link, in the order queued */

    nx_shard_opts_t opts;
    pthread_t thread;
    int start_rc;
    pthread_mutex_t start_lock; /* start handshake only; never taken on the request path */
    pthread_cond_t start_cond;
    bool started;
};

/** Starts shard <id> on a new thread and waits until its loop runs; returns it in <out>. */
int nx_shard_start(int id, const nx_shard_opts_t *opts, nx_shard_t **out);
/** Posts <m> to <to>'s mailbox from a thread whose loop is <from> (used to send the wake-up);
 *  returns 0 or NX_EFULL. */
int nx_shard_post(nx_shard_t *to, nx_loop_t *from, nx_msg_t *m);
/** Runs <l> on <s> (call on its thread) at the end of this loop turn, before the turn's I/O is
 *  submitted; a no-op while <l> is queued. */
void nx_shard_at_turn_end(nx_shard_t *s, nx_later_t *l);
/** Runs <l> on <s> (call on its thread) later in this loop turn, once the I/O queued so far
 *  has been submitted; a no-op while <l> is queued. Both queues run in the order queued, and
 *  what is still queued when the shard stops runs before its on_stop. */
void nx_shard_after_submit(nx_shard_t *s, nx_later_t *l);
/** Asks the shard's loop to end; call on the shard's own thread. */
void nx_shard_stop(nx_shard_t *s);
/** Waits for the shard thread to end (idempotent). Join every shard before freeing any: a
 *  running shard may still post to a stopped one. NULL-safe. */
void nx_shard_join(nx_shard_t *s);
/** Joins the shard, releases messages posted after it stopped (their dispose function, else
 *  free) and frees it. NULL-safe. */
void nx_shard_join_free(nx_shard_t *s);
/** The shard's cached monotonic time in milliseconds. */
static inline uint64_t nx_shard_now_ms(const nx_shard_t *s) {
    return nx_loop_now_ms(s->loop);
}
/** Arms <t> to fire <delay_ms> from now on <s>'s wheel. */
static inline void nx_shard_timer_start(nx_shard_t *s, nx_timer_t *t, uint64_t delay_ms) {
    nx_timer_start(&s->wheel, t, nx_loop_now_ms(s->loop), delay_ms);
}

#endif
