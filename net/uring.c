/* The io_uring loop: ring setup with feature detection, the provided-buffer ring, SQE
 * preparation for every operation nexus uses, and completion dispatch. This is the only file
 * that includes liburing.h; the rest of nexus speaks nx_op_t + callback (see uring.h). */
#include "uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define NX_BUF_GROUP 0

struct nx_loop {
    struct io_uring ring;
    const char *mode;
    uint64_t now_ms;

    /* Provided-buffer ring for multishot receive (group NX_BUF_GROUP). */
    struct io_uring_buf_ring *buf_ring;
    size_t buf_ring_bytes;
    char *buf_base;
    unsigned buf_count;
    unsigned buf_size;
    int buf_mask;

    /* Storage for linked-timeout timespecs until their SQEs are submitted (see nx_loop_connect). */
    struct __kernel_timespec *timeouts;
    unsigned timeout_count, timeout_next;
};

uint64_t nx_loop_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Tries the best ring setup first and falls back: DEFER_TASKRUN (6.1+) runs completions only
 * when we ask for them, so a burst of CQEs is processed in one batch on our own schedule;
 * COOP_TASKRUN (5.19+) at least avoids IPIs; a plain ring works everywhere else. */
static int setup_ring(nx_loop_t *l, unsigned entries) {
    static const struct {
        unsigned flags;
        const char *name;
    } modes[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "defer_taskrun"},
        {IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, "coop_taskrun"},
        {0, "basic"},
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        /* Multishot operations can post many CQEs per SQE: give the CQ ample room. */
        p.flags = modes[i].flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = entries * 8;
        rc = io_uring_queue_init_params(entries, &l->ring, &p);
        if (rc == 0) {
            l->mode = modes[i].name;
            return 0;
        }
        if (rc != -EINVAL) return rc;
    }
    return rc;
}

static int setup_buf_ring(nx_loop_t *l, unsigned count, unsigned size) {
    if (count == 0) return 0;
    if ((count & (count - 1)) != 0 || count > 32768) return -EINVAL;
    l->buf_ring_bytes = count * sizeof(struct io_uring_buf);
    void *ring_mem =
        mmap(NULL, l->buf_ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ring_mem == MAP_FAILED) return -errno;
    l->buf_ring = ring_mem;
    l->buf_base = malloc((size_t)count * size);
    if (l->buf_base == NULL) return -ENOMEM;
    l->buf_count = count;
    l->buf_size = size;
    l->buf_mask = io_uring_buf_ring_mask(count);

    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)(uintptr_t)l->buf_ring;
    reg.ring_entries = count;
    reg.bgid = NX_BUF_GROUP;
    int rc = io_uring_register_buf_ring(&l->ring, &reg, 0);
    if (rc < 0) return rc;
    io_uring_buf_ring_init(l->buf_ring);
    for (unsigned i = 0; i < count; i++)
        io_uring_buf_ring_add(l->buf_ring, l->buf_base + (size_t)i * size, size, (unsigned short)i,
                              l->buf_mask, (int)i);
    io_uring_buf_ring_advance(l->buf_ring, (int)count);
    return 0;
}

int nx_loop_new(const nx_loop_opts_t *opts, nx_loop_t **out) {
    nx_loop_t *l = calloc(1, sizeof(*l));
    if (l == NULL) return -ENOMEM;
    l->ring.ring_fd = -1;
    unsigned entries = opts->entries ? opts->entries : 256;
    int rc = setup_ring(l, entries);
    if (rc < 0) {
        free(l);
        return rc;
    }
    rc = setup_buf_ring(l, opts->buf_count, opts->buf_size);
    if (rc < 0) goto fail;
    l->timeout_count = l->ring.sq.ring_entries;
    l->timeouts = calloc(l->timeout_count, sizeof(*l->timeouts));
    if (l->timeouts == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    l->now_ms = nx_loop_clock_ns() / 1000000u;
    *out = l;
    return 0;
fail:
    nx_loop_free(l);
    return rc;
}

void nx_loop_free(nx_loop_t *l) {
    if (l == NULL) return;
    if (l->ring.ring_fd >= 0) io_uring_queue_exit(&l->ring);
    if (l->buf_ring != NULL) munmap(l->buf_ring, l->buf_ring_bytes);
    free(l->buf_base);
    free(l->timeouts);
    free(l);
}

const char *nx_loop_mode(const nx_loop_t *l) {
    return l->mode;
}

int nx_loop_ring_fd(const nx_loop_t *l) {
    return l->ring.ring_fd;
}

uint64_t nx_loop_now_ms(const nx_loop_t *l) {
    return l->now_ms;
}

/* Returns a free SQE, flushing the queue to the kernel once if it is full. */
static struct io_uring_sqe *get_sqe(nx_loop_t *l) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
    if (sqe == NULL) {
        io_uring_submit(&l->ring);
        sqe = io_uring_get_sqe(&l->ring);
    }
    return sqe;
}

static inline void set_op(struct io_uring_sqe *sqe, nx_op_t *op) {
    io_uring_sqe_set_data(sqe, op);
}

int nx_loop_run_once(nx_loop_t *l, int64_t timeout_ms) {
    struct io_uring_cqe *cqe = NULL;
    int rc;
    if (timeout_ms == 0) {
        rc = io_uring_submit_and_get_events(&l->ring);
    } else if (timeout_ms < 0) {
        rc = io_uring_submit_and_wait(&l->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                       .tv_nsec = (timeout_ms % 1000) * 1000000};
        rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) return rc;
    l->now_ms = nx_loop_clock_ns() / 1000000u;

    unsigned head, seen = 0;
    io_uring_for_each_cqe(&l->ring, head, cqe) {
        nx_op_t *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        unsigned f = 0, buf_id = 0;
        if (cqe->flags & IORING_CQE_F_MORE) f |= NX_OP_MORE;
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            f |= NX_OP_HAS_BUF;
            buf_id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        }
        seen++;
        if (op != NULL && op->cb != NULL) {
            op->cb(op, res, f, buf_id);
        } else if (f & NX_OP_HAS_BUF) {
            nx_loop_buf_recycle(l, buf_id); /* nobody wants these bytes */
        }
    }
    io_uring_cq_advance(&l->ring, seen);
    return (int)seen;
}

int nx_loop_submit(nx_loop_t *l) {
    return io_uring_submit(&l->ring);
}

int nx_loop_accept_multishot(nx_loop_t *l, nx_op_t *op, int listen_fd) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    set_op(sqe, op);
    return 0;
}

int nx_loop_recv_multishot(nx_loop_t *l, nx_op_t *op, int fd) {
    if (l->buf_ring == NULL) return -EINVAL;
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = NX_BUF_GROUP;
    set_op(sqe, op);
    return 0;
}

int nx_loop_recv(nx_loop_t *l, nx_op_t *op, int fd, void *buf, size_t len) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_recv(sqe, fd, buf, len, 0);
    set_op(sqe, op);
    return 0;
}

int nx_loop_send(nx_loop_t *l, nx_op_t *op, int fd, const void *buf, size_t len) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
    set_op(sqe, op);
    return 0;
}

int nx_loop_sendmsg(nx_loop_t *l, nx_op_t *op, int fd, const struct msghdr *msg) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
    set_op(sqe, op);
    return 0;
}

int nx_loop_read(nx_loop_t *l, nx_op_t *op, int fd, void *buf, size_t len) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_read(sqe, fd, buf, (unsigned)len, (uint64_t)-1);
    set_op(sqe, op);
    return 0;
}

int nx_loop_write(nx_loop_t *l, nx_op_t *op, int fd, const void *buf, size_t len) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_write(sqe, fd, buf, (unsigned)len, (uint64_t)-1);
    set_op(sqe, op);
    return 0;
}

/* Timespec storage for timeouts (nx_loop_connect, nx_loop_timeout_at): the kernel reads one when
 * its SQE is submitted. */
static struct __kernel_timespec *next_timespec(nx_loop_t *l) {
    return &l->timeouts[l->timeout_next++ % l->timeout_count];
}

int nx_loop_connect(nx_loop_t *l, nx_op_t *op, int fd, const struct sockaddr *addr,
                    socklen_t addrlen, uint32_t timeout_ms) {
    /* Reserve both SQEs up front so a link is never split across a flush. */
    if (timeout_ms > 0 && io_uring_sq_space_left(&l->ring) < 2) io_uring_submit(&l->ring);
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_connect(sqe, fd, addr, addrlen);
    set_op(sqe, op);
    if (timeout_ms == 0) return 0;
    sqe->flags |= IOSQE_IO_LINK;
    struct io_uring_sqe *tsqe = io_uring_get_sqe(&l->ring);
    if (tsqe == NULL) return -EBUSY; /* unreachable: space was reserved above */
    /* The kernel reads the timespec when the SQE is submitted, not when it is prepared. At most
     * one SQ's worth of SQEs is ever pending (get_sqe flushes when full), so a ring of as many
     * slots as SQ entries is never overwritten before the kernel has read it. */
    struct __kernel_timespec *ts = next_timespec(l);
    ts->tv_sec = timeout_ms / 1000;
    ts->tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
    io_uring_prep_link_timeout(tsqe, ts, 0);
    io_uring_sqe_set_data(tsqe, NULL);
    tsqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    return 0;
}

int nx_loop_timeout_at(nx_loop_t *l, nx_op_t *op, uint64_t deadline_ns) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    struct __kernel_timespec *ts = next_timespec(l);
    ts->tv_sec = (long long)(deadline_ns / 1000000000u);
    ts->tv_nsec = (long long)(deadline_ns % 1000000000u);
    io_uring_prep_timeout(sqe, ts, 0, IORING_TIMEOUT_ABS);
    set_op(sqe, op);
    return 0;
}

int nx_loop_close(nx_loop_t *l, nx_op_t *op, int fd) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_close(sqe, fd);
    set_op(sqe, op);
    return 0;
}

int nx_loop_cancel(nx_loop_t *l, nx_op_t *target) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_cancel(sqe, target, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(sqe, NULL);
    return 0;
}

int nx_loop_cancel_fd(nx_loop_t *l, int fd) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(sqe, NULL);
    return 0;
}

int nx_loop_poll(nx_loop_t *l, nx_op_t *op, int fd, unsigned events) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_poll_add(sqe, fd, events);
    set_op(sqe, op);
    return 0;
}

int nx_loop_msg_ring(nx_loop_t *l, int ring_fd, nx_op_t *target_op, int res) {
    struct io_uring_sqe *sqe = get_sqe(l);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_msg_ring(sqe, ring_fd, (unsigned)res, (uint64_t)(uintptr_t)target_op, 0);
    io_uring_sqe_set_data(sqe, NULL);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    return 0;
}

char *nx_loop_buf(nx_loop_t *l, unsigned buf_id) {
    return l->buf_base + (size_t)buf_id * l->buf_size;
}

size_t nx_loop_buf_size(const nx_loop_t *l) {
    return l->buf_size;
}

void nx_loop_buf_recycle(nx_loop_t *l, unsigned buf_id) {
    io_uring_buf_ring_add(l->buf_ring, nx_loop_buf(l, buf_id), l->buf_size, (unsigned short)buf_id,
                          l->buf_mask, 0);
    io_uring_buf_ring_advance(l->buf_ring, 1);
}
