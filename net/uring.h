/* The io_uring loop of one thread (a shard, the control thread, or a load generator).
 * uring.c is the only file that includes liburing.h: everything else hands this API an
 * operation (an nx_op_t embedded in its owner) and gets the completion through op->cb. */
#ifndef NX_NET_URING_H
#define NX_NET_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

typedef struct nx_loop nx_loop_t;
typedef struct nx_op nx_op_t;

/* Completion flags, translated from the CQE so no caller needs liburing. */
enum {
    NX_OP_MORE = 1u << 0,    /* a multishot operation stays armed: more completions follow */
    NX_OP_HAS_BUF = 1u << 1, /* res bytes landed in provided buffer <buf_id> */
};

/* <res> is the syscall result (bytes, fd, 0) or -errno; <buf_id> is valid with NX_OP_HAS_BUF. */
typedef void (*nx_op_cb)(nx_op_t *op, int res, unsigned flags, unsigned buf_id);

/* Embedded in the object that owns the operation; recover it with nx_container_of. An op may
 * be reused once its last completion (one without NX_OP_MORE) has been delivered. */
struct nx_op {
    nx_op_cb cb;
};

typedef struct nx_loop_opts {
    unsigned entries;   /* submission queue depth (rounded up to a power of two) */
    unsigned buf_count; /* provided receive buffers (power of two); 0 = no buffer ring */
    unsigned buf_size;  /* bytes per provided buffer */
} nx_loop_opts_t;

/** Creates a loop owned by the calling thread (the ring is single-issuer); returns it in <out>. */
int nx_loop_new(const nx_loop_opts_t *opts, nx_loop_t **out);
/** Frees <l> and its ring; operations still in flight are abandoned. NULL-safe. */
void nx_loop_free(nx_loop_t *l);
/** Names the ring setup detected at start: "defer_taskrun", "coop_taskrun" or "basic". */
const char *nx_loop_mode(const nx_loop_t *l);
/** The ring's file descriptor, the target address for nx_loop_msg_ring from other threads. */
int nx_loop_ring_fd(const nx_loop_t *l);
/** Monotonic milliseconds, cached at the last loop iteration (cheap to call). */
uint64_t nx_loop_now_ms(const nx_loop_t *l);
/** Monotonic nanoseconds read from the clock now. */
uint64_t nx_loop_clock_ns(void);

/** Submits queued operations, waits up to <timeout_ms> (-1 = forever, 0 = no wait) for at
 *  least one completion, and dispatches every ready completion; returns how many or -errno. */
int nx_loop_run_once(nx_loop_t *l, int64_t timeout_ms);

/** Hands queued operations to the kernel now, without waiting or dispatching completions. */
int nx_loop_submit(nx_loop_t *l);

/* Every submit call queues one operation and returns 0 or -errno (-EBUSY when the submission
 * queue stays full after a flush). <op> may be NULL when the completion does not matter. */
int nx_loop_accept_multishot(nx_loop_t *l, nx_op_t *op, int listen_fd);
/** Multishot receive into the loop's provided buffers; each completion carries NX_OP_HAS_BUF. */
int nx_loop_recv_multishot(nx_loop_t *l, nx_op_t *op, int fd);
int nx_loop_recv(nx_loop_t *l, nx_op_t *op, int fd, void *buf, size_t len);
int nx_loop_send(nx_loop_t *l, nx_op_t *op, int fd, const void *buf, size_t len);
/** Gathered send of <iovcnt> buffers; <msg> and what it points at must live until completion. */
int nx_loop_sendmsg(nx_loop_t *l, nx_op_t *op, int fd, const struct msghdr *msg);
int nx_loop_read(nx_loop_t *l, nx_op_t *op, int fd, void *buf, size_t len);
int nx_loop_write(nx_loop_t *l, nx_op_t *op, int fd, const void *buf, size_t len);
/** Connects <fd>; <addr> must live until completion. With <timeout_ms> > 0 a linked timeout
 *  cancels the connect, which then completes with -ECANCELED. */
int nx_loop_connect(nx_loop_t *l, nx_op_t *op, int fd, const struct sockaddr *addr,
                    socklen_t addrlen, uint32_t timeout_ms);
int nx_loop_close(nx_loop_t *l, nx_op_t *op, int fd);
/** Asks the kernel to cancel every operation whose op pointer is <target>. */
int nx_loop_cancel(nx_loop_t *l, nx_op_t *target);
/** Asks the kernel to cancel every operation on <fd>. */
int nx_loop_cancel_fd(nx_loop_t *l, int fd);
/** Completes <op> with -ETIME at <deadline_ns> on the nx_loop_clock_ns clock (CLOCK_MONOTONIC),
 *  to the nanosecond rather than the timer wheel's millisecond ticks; nx_loop_cancel ends it
 *  early with -ECANCELED. */
int nx_loop_timeout_at(nx_loop_t *l, nx_op_t *op, uint64_t deadline_ns);
/** One-shot poll for <events> (POLLIN, …) on <fd>. */
int nx_loop_poll(nx_loop_t *l, nx_op_t *op, int fd, unsigned events);
/** Posts a completion (res = <res>) for <target_op> onto the ring <ring_fd> of another thread;
 *  this is how mailboxes wake their owner. Produces no completion on this loop. */
int nx_loop_msg_ring(nx_loop_t *l, int ring_fd, nx_op_t *target_op, int res);

/** The storage of provided buffer <buf_id> (nx_loop_buf_size bytes). */
char *nx_loop_buf(nx_loop_t *l, unsigned buf_id);
size_t nx_loop_buf_size(const nx_loop_t *l);
/** Hands provided buffer <buf_id> back to the kernel once its bytes are consumed. */
void nx_loop_buf_recycle(nx_loop_t *l, unsigned buf_id);

#endif
