/* A TCP connection owned by one shard: multishot receive on the shard's provided buffers, a
 * send queue that gathers everything written during one loop iteration into one send (with
 * short-write handling), graceful (lingering) and hard close. Protocols plug in as codecs
 * through nx_conn_ops_t, so HTTP/1.1, WebSocket and SSE share this machinery. Freed by its
 * last completion, never by the caller. */
#ifndef NX_NET_CONN_H
#define NX_NET_CONN_H

#include "buf.h"
#include "shard.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct nx_conn nx_conn_t;

typedef enum nx_conn_state {
    NX_CONN_OPEN,    /* reading and writing */
    NX_CONN_LINGER,  /* final bytes sent and write side shut: discarding input until EOF */
    NX_CONN_CLOSING, /* fd closed or closing; waiting for the last completion to free */
} nx_conn_state_t;

typedef struct nx_conn_ops {
    /* Bytes arrived; <data> is writable but valid only during the call: keep what you need. */
    void (*on_data)(nx_conn_t *c, char *data, size_t len);
    /* The peer closed its side (err = 0) or receiving failed (-errno). */
    void (*on_eof)(nx_conn_t *c, int err);
    /* Everything queued so far has been handed to the kernel and acknowledged as sent. */
    void (*on_sent)(nx_conn_t *c);
    /* The connection is being freed: release the codec's state. */
    void (*on_free)(nx_conn_t *c);
} nx_conn_ops_t;

/* Owned by its shard (linked in shard->conns); the codec borrows it until on_free. */
struct nx_conn {
    nx_list_t link;
    nx_shard_t *shard;
    const nx_conn_ops_t *ops;
    void *codec;
    int fd;
    nx_conn_state_t state;
    bool recv_armed;      /* a multishot receive is in the kernel */
    bool recv_paused;     /* the codec asked us to stop reading (backpressure) */
    bool send_busy;       /* <sending> is in the kernel */
    bool close_pending;   /* close fd once <out> and <sending> are flushed, then linger */
    bool close_submitted; /* the close of fd is in flight */
    bool outbound;        /* opened by us (a backend connection): not in the shard's client stats */
    int error;            /* the send error that closed the connection (-errno), else 0 */
    nx_op_t recv_op, send_op, close_op;
    nx_buf_t out;     /* written by the codec, not yet handed to the kernel */
    nx_buf_t sending; /* in the kernel from offset <sent> */
    size_t sent;
    uint32_t linger_ms;
    nx_timer_t linger_timer;
};

/** Wraps accepted socket <fd> in a connection on <s> using codec <ops>/<codec>; NULL on ENOMEM
 *  (then <fd> is closed). Receiving starts at once. */
nx_conn_t *nx_conn_new(nx_shard_t *s, int fd, const nx_conn_ops_t *ops, void *codec);
/** Like nx_conn_new for socket <fd> this shard connected itself (a backend connection, see
 *  http_client.h): the shard's counters of client connections and bytes leave it out. */
nx_conn_t *nx_conn_new_outbound(nx_shard_t *s, int fd, const nx_conn_ops_t *ops, void *codec);
/** The buffer the codec appends output to; nx_conn_flush hands it to the kernel. */
static inline nx_buf_t *nx_conn_out(nx_conn_t *c) {
    return &c->out;
}
/** Bytes written but not yet acknowledged by the kernel. */
static inline size_t nx_conn_unsent(const nx_conn_t *c) {
    return c->out.len + (c->sending.len - c->sent);
}
/** Starts sending what is queued, unless a send is already in flight (then it follows it). */
void nx_conn_flush(nx_conn_t *c);
/** Stops reading (backpressure) until nx_conn_resume_recv. */
void nx_conn_pause_recv(nx_conn_t *c);
void nx_conn_resume_recv(nx_conn_t *c);
/** Sends what is queued, shuts the write side, discards input until EOF or <linger_ms>, then
 *  closes: the peer receives the final response even if it is still sending. */
void nx_conn_close_graceful(nx_conn_t *c, uint32_t linger_ms);
/** Closes now, dropping unsent output. Safe to call more than once. */
void nx_conn_close(nx_conn_t *c);
/** Closes now with a TCP reset (SO_LINGER 0), as a crashing peer would. */
void nx_conn_reset(nx_conn_t *c);

#endif
