/* TCP connection machinery (see conn.h). The life of a connection:
 *   NX_CONN_OPEN --close_graceful+flushed--> NX_CONN_LINGER --EOF/timeout--> NX_CONN_CLOSING
 *   NX_CONN_OPEN --close--> NX_CONN_CLOSING --last completion--> freed */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Output buffers above this size are released once drained so idle connections stay small. */
#define NX_CONN_KEEP_BUF 16384

static void on_recv(nx_op_t *op, int res, unsigned flags, unsigned buf_id);
static void on_send(nx_op_t *op, int res, unsigned flags, unsigned buf_id);
static void on_close_done(nx_op_t *op, int res, unsigned flags, unsigned buf_id);
static void on_linger_timeout(nx_timer_t *t);

static void arm_recv(nx_conn_t *c) {
    if (c->recv_armed || c->recv_paused || c->state == NX_CONN_CLOSING) return;
    if (nx_loop_recv_multishot(c->shard->loop, &c->recv_op, c->fd) == 0) c->recv_armed = true;
}

static nx_conn_t *conn_new(nx_shard_t *s, int fd, const nx_conn_ops_t *ops, void *codec,
                           bool outbound) {
    nx_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->shard = s;
    c->ops = ops;
    c->codec = codec;
    c->fd = fd;
    c->state = NX_CONN_OPEN;
    c->outbound = outbound;
    c->recv_op.cb = on_recv;
    c->send_op.cb = on_send;
    c->close_op.cb = on_close_done;
    nx_timer_init(&c->linger_timer, on_linger_timeout);
    nx_list_insert_tail(&s->conns, &c->link);
    if (!outbound) {
        __atomic_store_n(&s->stats.connections_open, s->stats.connections_open + 1,
                         __ATOMIC_RELAXED);
        nx_stat_add(&s->stats.connections_accepted, 1);
    }
    arm_recv(c);
    return c;
}

nx_conn_t *nx_conn_new(nx_shard_t *s, int fd, const nx_conn_ops_t *ops, void *codec) {
    return conn_new(s, fd, ops, codec, false);
}

nx_conn_t *nx_conn_new_outbound(nx_shard_t *s, int fd, const nx_conn_ops_t *ops, void *codec) {
    return conn_new(s, fd, ops, codec, true);
}

static void maybe_free(nx_conn_t *c) {
    if (c->state != NX_CONN_CLOSING || c->recv_armed || c->send_busy || c->close_submitted) return;
    nx_timer_stop(&c->linger_timer);
    if (c->ops->on_free != NULL) c->ops->on_free(c);
    nx_list_remove(&c->link);
    nx_shard_t *s = c->shard;
    if (!c->outbound)
        __atomic_store_n(&s->stats.connections_open, s->stats.connections_open - 1,
                         __ATOMIC_RELAXED);
    nx_buf_dispose(&c->out);
    nx_buf_dispose(&c->sending);
    free(c);
}

void nx_conn_close(nx_conn_t *c) {
    if (c->state == NX_CONN_CLOSING) return;
    c->state = NX_CONN_CLOSING;
    nx_timer_stop(&c->linger_timer);
    nx_loop_t *l = c->shard->loop;
    if (c->recv_armed) nx_loop_cancel(l, &c->recv_op);
    if (c->send_busy) nx_loop_cancel(l, &c->send_op);
    if (nx_loop_close(l, &c->close_op, c->fd) == 0) {
        c->close_submitted = true;
    } else {
        close(c->fd); /* submission queue jammed: close synchronously rather than leak */
    }
    c->fd = -1;
    maybe_free(c);
}

void nx_conn_reset(nx_conn_t *c) {
    if (c->state == NX_CONN_CLOSING) return;
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    nx_conn_close(c);
}

static void enter_linger(nx_conn_t *c) {
    c->close_pending = false;
    if (shutdown(c->fd, SHUT_WR) < 0 || c->linger_ms == 0) {
        nx_conn_close(c);
        return;
    }
    c->state = NX_CONN_LINGER;
    c->recv_paused = false;
    arm_recv(c);
    nx_shard_timer_start(c->shard, &c->linger_timer, c->linger_ms);
}

void nx_conn_flush(nx_conn_t *c) {
    if (c->send_busy || c->state != NX_CONN_OPEN) return;
    if (c->out.len == 0) {
        if (c->close_pending) enter_linger(c);
        return;
    }
    /* Swap instead of copy: <out> becomes the in-flight buffer, the old one collects more. */
    nx_buf_t tmp = c->sending;
    c->sending = c->out;
    c->out = tmp;
    c->out.len = 0;
    c->sent = 0;
    if (nx_loop_send(c->shard->loop, &c->send_op, c->fd, c->sending.data, c->sending.len) < 0) {
        nx_conn_close(c);
        return;
    }
    c->send_busy = true;
}

static void on_send(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_conn_t *c = nx_container_of(op, nx_conn_t, send_op);
    c->send_busy = false;
    if (c->state == NX_CONN_CLOSING) {
        maybe_free(c);
        return;
    }
    if (res <= 0) {
        c->error = res < 0 ? res : -EPIPE;
        nx_conn_close(c); /* peer gone (EPIPE, ECONNRESET) */
        return;
    }
    if (!c->outbound) nx_stat_add(&c->shard->stats.bytes_out, (uint64_t)res);
    c->sent += (size_t)res;
    if (c->sent < c->sending.len) { /* short write: send the rest */
        if (nx_loop_send(c->shard->loop, &c->send_op, c->fd, c->sending.data + c->sent,
                         c->sending.len - c->sent) < 0) {
            nx_conn_close(c);
            return;
        }
        c->send_busy = true;
        return;
    }
    c->sending.len = 0;
    c->sent = 0;
    if (c->sending.cap > NX_CONN_KEEP_BUF) nx_buf_dispose(&c->sending);
    if (c->out.len > 0 || c->close_pending) {
        nx_conn_flush(c);
        return;
    }
    if (c->out.cap > NX_CONN_KEEP_BUF) nx_buf_dispose(&c->out);
    if (c->ops->on_sent != NULL) c->ops->on_sent(c);
}

static void on_recv(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_conn_t *c = nx_container_of(op, nx_conn_t, recv_op);
    nx_loop_t *l = c->shard->loop;
    if (!(flags & NX_OP_MORE)) c->recv_armed = false;
    if (res > 0 && (flags & NX_OP_HAS_BUF)) {
        if (!c->outbound) nx_stat_add(&c->shard->stats.bytes_in, (uint64_t)res);
        /* Input after the final response (close pending, lingering) is not for us. */
        if (c->state == NX_CONN_OPEN && !c->close_pending)
            c->ops->on_data(c, nx_loop_buf(l, buf_id), (size_t)res);
        nx_loop_buf_recycle(l, buf_id);
    } else if (flags & NX_OP_HAS_BUF) {
        nx_loop_buf_recycle(l, buf_id);
    }
    if (c->state == NX_CONN_CLOSING) {
        maybe_free(c);
        return;
    }
    if (res == 0 || (res < 0 && res != -ENOBUFS && res != -ECANCELED)) {
        if (c->state == NX_CONN_LINGER) {
            nx_conn_close(c);
        } else if (c->ops->on_eof != NULL) {
            c->ops->on_eof(c, res);
        } else {
            nx_conn_close(c);
        }
        return;
    }
    /* Multishot ended (buffers ran out, cancelled by a pause, or the kernel chose to): re-arm
     * unless paused. */
    if (!c->recv_armed) arm_recv(c);
}

static void on_close_done(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_conn_t *c = nx_container_of(op, nx_conn_t, close_op);
    c->close_submitted = false;
    maybe_free(c);
}

static void on_linger_timeout(nx_timer_t *t) {
    nx_conn_close(nx_container_of(t, nx_conn_t, linger_timer));
}

void nx_conn_pause_recv(nx_conn_t *c) {
    if (c->recv_paused) return;
    c->recv_paused = true;
    if (c->recv_armed) nx_loop_cancel(c->shard->loop, &c->recv_op);
}

void nx_conn_resume_recv(nx_conn_t *c) {
    if (!c->recv_paused) return;
    c->recv_paused = false;
    arm_recv(c);
}

void nx_conn_close_graceful(nx_conn_t *c, uint32_t linger_ms) {
    if (c->state != NX_CONN_OPEN) return;
    c->close_pending = true;
    c->linger_ms = linger_ms;
    nx_conn_flush(c);
}
