/* The shard thread: creates its loop on itself (the ring is single-issuer), then runs
 * nx_shard_run: wait for completions or the next timer, dispatch, fire timers, repeat. */
#include "shard.h"

#include "nexus/errors.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void drain(nx_shard_t *s) {
    /* Clear the flags before draining: a producer that pushes after our last pop then sends
     * a fresh wake-up instead of assuming one is on its way. */
    s->self_posted = false;
    nx_mailbox_wake_done(&s->mailbox);
    nx_msg_t *m;
    while ((m = nx_mailbox_pop(&s->mailbox)) != NULL)
        m->fn(s, m);
}

static void on_wake(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    drain(nx_container_of(op, nx_shard_t, wake_op));
}

void nx_shard_at_turn_end(nx_shard_t *s, nx_later_t *l) {
    if (!nx_later_queued(l)) nx_list_insert_tail(&s->turn_end, &l->link);
}

void nx_shard_after_submit(nx_shard_t *s, nx_later_t *l) {
    if (!nx_later_queued(l)) nx_list_insert_tail(&s->after_submit, &l->link);
}

/* Runs what <queue> holds now; what that work queues again waits for the next turn. */
static void run_queue(nx_list_t *queue) {
    nx_list_t now;
    nx_list_move_all(&now, queue);
    nx_list_t *n;
    while ((n = nx_list_pop_head(&now)) != NULL) {
        nx_later_t *l = nx_container_of(n, nx_later_t, link);
        l->fn(l);
    }
}

/* The end of a loop turn: the gathered writes are queued, then, when something waits for it,
 * the turn's I/O is submitted and the bookkeeping runs. */
static void end_turn(nx_shard_t *s) {
    if (!nx_list_empty(&s->turn_end)) run_queue(&s->turn_end);
    if (!nx_list_empty(&s->after_submit)) {
        nx_loop_submit(s->loop);
        run_queue(&s->after_submit);
    }
}

static bool turn_work_queued(const nx_shard_t *s) {
    return s->self_posted || !nx_list_empty(&s->turn_end) || !nx_list_empty(&s->after_submit);
}

/* The loop's phases: wait (bounded by the next timer; not at all while the shard has posted to
 * itself or queued work for the end of a turn), dispatch completions, fire timers, run what
 * the shard posted to itself, end the turn. */
static void nx_shard_run(nx_shard_t *s) {
    while (!s->stop) {
        int64_t wait_ms =
            turn_work_queued(s) ? 0 : nx_timer_wheel_next_ms(&s->wheel, nx_loop_now_ms(s->loop));
        int rc = nx_loop_run_once(s->loop, wait_ms);
        if (rc < 0) {
            fprintf(stderr, "shard %d: io_uring wait failed: %d\n", s->id, rc);
            break;
        }
        nx_timer_wheel_advance(&s->wheel, nx_loop_now_ms(s->loop));
        if (s->self_posted) drain(s);
        end_turn(s);
    }
}

static void signal_started(nx_shard_t *s, int rc) {
    pthread_mutex_lock(&s->start_lock);
    s->start_rc = rc;
    s->started = true;
    pthread_cond_signal(&s->start_cond);
    pthread_mutex_unlock(&s->start_lock);
}

static void *shard_main(void *arg) {
    nx_shard_t *s = arg;
    nx_loop_opts_t lo = {.entries = s->opts.ring_entries,
                         .buf_count = s->opts.buf_count,
                         .buf_size = s->opts.buf_size};
    int rc = nx_loop_new(&lo, &s->loop);
    if (rc < 0) {
        signal_started(s, rc);
        return NULL;
    }
    nx_timer_wheel_init(&s->wheel, nx_loop_now_ms(s->loop));
    s->wake_op.cb = on_wake;
    if (s->opts.on_start != NULL && (rc = s->opts.on_start(s)) < 0) {
        signal_started(s, rc);
        nx_loop_free(s->loop);
        s->loop = NULL;
        return NULL;
    }
    signal_started(s, 0);
    nx_shard_run(s);
    while (!nx_list_empty(&s->turn_end) || !nx_list_empty(&s->after_submit))
        end_turn(s);
    if (s->opts.on_stop != NULL) s->opts.on_stop(s);
    /* Messages that arrived after the stop are drained so their senders' memory is released. */
    nx_mailbox_wake_done(&s->mailbox);
    nx_msg_t *m;
    while ((m = nx_mailbox_pop(&s->mailbox)) != NULL)
        m->fn(s, m);
    return NULL;
}

void nx_shard_join(nx_shard_t *s) {
    if (s == NULL || !s->thread) return;
    pthread_join(s->thread, NULL);
    s->thread = 0;
}

int nx_shard_start(int id, const nx_shard_opts_t *opts, nx_shard_t **out) {
    nx_shard_t *s = calloc(1, sizeof(*s));
    if (s == NULL) return -ENOMEM;
    s->id = id;
    s->opts = *opts;
    s->user = opts->user;
    nx_list_init(&s->conns);
    nx_list_init(&s->turn_end);
    nx_list_init(&s->after_submit);
    pthread_mutex_init(&s->start_lock, NULL);
    pthread_cond_init(&s->start_cond, NULL);
    int rc = nx_mailbox_init(&s->mailbox, opts->mailbox_capacity ? opts->mailbox_capacity : 4096);
    if (rc < 0) goto fail;
    rc = -pthread_create(&s->thread, NULL, shard_main, s);
    if (rc < 0) goto fail;
    pthread_mutex_lock(&s->start_lock);
    while (!s->started)
        pthread_cond_wait(&s->start_cond, &s->start_lock);
    pthread_mutex_unlock(&s->start_lock);
    if (s->start_rc < 0) {
        rc = s->start_rc;
        pthread_join(s->thread, NULL);
        s->thread = 0;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    s->thread = 0;
    nx_shard_join_free(s);
    return rc;
}

int nx_shard_post(nx_shard_t *to, nx_loop_t *from, nx_msg_t *m) {
    int rc = nx_mailbox_push(&to->mailbox, m);
    if (rc < 0) return rc;
    if (from == to->loop) {
        /* Posted on the shard's own thread (its loop is used nowhere else): no wake-up through
         * the kernel, the loop drains before it next waits. */
        to->self_posted = true;
        return 0;
    }
    if (nx_mailbox_need_wake(&to->mailbox)) {
        rc = nx_loop_msg_ring(from, nx_loop_ring_fd(to->loop), &to->wake_op, 0);
        if (rc < 0) {
            nx_mailbox_wake_done(&to->mailbox);
            return rc;
        }
        /* Send the wake-up now rather than at the sender's next wait, which may be far off. */
        nx_loop_submit(from);
    }
    return 0;
}

void nx_shard_stop(nx_shard_t *s) {
    s->stop = true;
}

void nx_shard_join_free(nx_shard_t *s) {
    if (s == NULL) return;
    nx_shard_join(s);
    nx_msg_t *m;
    while ((m = nx_mailbox_pop(&s->mailbox)) != NULL) {
        if (m->dispose != NULL)
            m->dispose(m);
        else
            free(m);
    }
    nx_loop_free(s->loop);
    nx_mailbox_dispose(&s->mailbox);
    pthread_mutex_destroy(&s->start_lock);
    pthread_cond_destroy(&s->start_cond);
    free(s);
}
