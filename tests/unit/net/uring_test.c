/* The io_uring loop against real sockets: multishot receive into provided buffers, sends,
 * MSG_RING between two loops, connect with a linked timeout. */
#include <criterion/criterion.h>

#include "nexus/list.h"
#include "uring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct recorder {
    nx_op_t op;
    nx_loop_t *loop;
    int calls;
    int last_res;
    unsigned last_flags;
    char data[256];
    size_t len;
} recorder_t;

static void on_record(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    recorder_t *r = nx_container_of(op, recorder_t, op);
    r->calls++;
    r->last_res = res;
    r->last_flags = flags;
    if (res > 0 && (flags & NX_OP_HAS_BUF)) {
        memcpy(r->data + r->len, nx_loop_buf(r->loop, buf_id), (size_t)res);
        r->len += (size_t)res;
        nx_loop_buf_recycle(r->loop, buf_id);
    }
}

static nx_loop_t *new_loop(unsigned bufs) {
    nx_loop_opts_t o = {.entries = 64, .buf_count = bufs, .buf_size = 64};
    nx_loop_t *l = NULL;
    cr_assert_eq(nx_loop_new(&o, &l), 0);
    return l;
}

Test(uring, reports_a_ring_mode) {
    nx_loop_t *l = new_loop(0);
    const char *mode = nx_loop_mode(l);
    cr_assert(strcmp(mode, "defer_taskrun") == 0 || strcmp(mode, "coop_taskrun") == 0 ||
              strcmp(mode, "basic") == 0);
    nx_loop_free(l);
}

Test(uring, multishot_recv_delivers_every_chunk_in_provided_buffers) {
    nx_loop_t *l = new_loop(8);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    recorder_t r = {.op.cb = on_record, .loop = l};
    cr_assert_eq(nx_loop_recv_multishot(l, &r.op, sv[0]), 0);
    nx_loop_run_once(l, 0);
    /* More bytes than one 64-byte buffer: must arrive split across buffers, in order. */
    char msg[200];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (char)('a' + i % 26);
    cr_assert_eq(write(sv[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
    for (int i = 0; i < 50 && r.len < sizeof(msg); i++)
        nx_loop_run_once(l, 100);
    cr_assert_eq(r.len, sizeof(msg));
    cr_assert_eq(memcmp(r.data, msg, sizeof(msg)), 0);
    cr_assert(r.last_flags & NX_OP_MORE, "multishot receive must stay armed");
    close(sv[1]);
    int before = r.calls;
    for (int i = 0; i < 50 && r.last_res != 0; i++)
        nx_loop_run_once(l, 100);
    cr_assert_gt(r.calls, before);
    cr_assert_eq(r.last_res, 0, "EOF is a zero-byte completion");
    cr_assert_not(r.last_flags & NX_OP_MORE);
    close(sv[0]);
    nx_loop_free(l);
}

Test(uring, send_and_msg_ring_cross_loops) {
    nx_loop_t *a = new_loop(0), *b = new_loop(0);
    recorder_t target = {.op.cb = on_record, .loop = b};
    cr_assert_eq(nx_loop_msg_ring(a, nx_loop_ring_fd(b), &target.op, 42), 0);
    nx_loop_submit(a);
    for (int i = 0; i < 50 && target.calls == 0; i++)
        nx_loop_run_once(b, 100);
    cr_assert_eq(target.calls, 1);
    cr_assert_eq(target.last_res, 42, "the message value arrives as the completion result");

    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    recorder_t sent = {.op.cb = on_record, .loop = a};
    cr_assert_eq(nx_loop_send(a, &sent.op, sv[0], "hello", 5), 0);
    for (int i = 0; i < 50 && sent.calls == 0; i++)
        nx_loop_run_once(a, 100);
    cr_assert_eq(sent.last_res, 5);
    char got[8] = {0};
    cr_assert_eq(read(sv[1], got, sizeof(got)), 5);
    cr_assert_str_eq(got, "hello");
    close(sv[0]);
    close(sv[1]);
    nx_loop_free(a);
    nx_loop_free(b);
}

Test(uring, connect_refused_and_accept) {
    nx_loop_t *l = new_loop(0);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    /* Not listening yet: connect must fail with ECONNREFUSED, not hang. */
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    recorder_t c = {.op.cb = on_record, .loop = l};
    cr_assert_eq(nx_loop_connect(l, &c.op, cfd, (struct sockaddr *)&sa, sizeof(sa), 1000), 0);
    for (int i = 0; i < 50 && c.calls == 0; i++)
        nx_loop_run_once(l, 100);
    cr_assert_eq(c.last_res, -ECONNREFUSED);
    close(cfd);

    listen(lfd, 16);
    recorder_t acc = {.op.cb = on_record, .loop = l};
    cr_assert_eq(nx_loop_accept_multishot(l, &acc.op, lfd), 0);
    int c1 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int c2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    recorder_t k1 = {.op.cb = on_record, .loop = l}, k2 = {.op.cb = on_record, .loop = l};
    nx_loop_connect(l, &k1.op, c1, (struct sockaddr *)&sa, sizeof(sa), 1000);
    nx_loop_connect(l, &k2.op, c2, (struct sockaddr *)&sa, sizeof(sa), 0);
    for (int i = 0; i < 50 && (acc.calls < 2 || k1.calls == 0 || k2.calls == 0); i++)
        nx_loop_run_once(l, 100);
    cr_assert_eq(k1.last_res, 0);
    cr_assert_eq(k2.last_res, 0);
    cr_assert_eq(acc.calls, 2, "one multishot accept must deliver both connections");
    cr_assert(acc.last_flags & NX_OP_MORE);
    close(c1);
    close(c2);
    close(lfd);
    nx_loop_free(l);
}

/* A timeout fires at its deadline to well under the timer wheel's 1 ms tick, and a cancelled
 * one completes at once with -ECANCELED. */
Test(uring, timeout_at_fires_at_its_deadline_and_cancels) {
    nx_loop_t *l = new_loop(0);
    recorder_t r = {.op.cb = on_record, .loop = l};
    uint64_t start = nx_loop_clock_ns(), deadline = start + 2500000; /* 2.5 ms */
    cr_assert_eq(nx_loop_timeout_at(l, &r.op, deadline), 0);
    while (r.calls == 0)
        nx_loop_run_once(l, 100);
    uint64_t fired = nx_loop_clock_ns();
    cr_assert_eq(r.last_res, -ETIME);
    cr_assert_geq(fired, deadline, "fired %llu ns early", (unsigned long long)(deadline - fired));
    /* A loaded machine may wake it late, never early; a 1 ms tick would round 2.5 to 2 or 3. */
    cr_assert_lt(fired - start, 100000000u);

    recorder_t c = {.op.cb = on_record, .loop = l};
    cr_assert_eq(nx_loop_timeout_at(l, &c.op, nx_loop_clock_ns() + 10000000000ull), 0);
    nx_loop_run_once(l, 0);
    cr_assert_eq(c.calls, 0);
    cr_assert_eq(nx_loop_cancel(l, &c.op), 0);
    for (int i = 0; i < 100 && c.calls == 0; i++)
        nx_loop_run_once(l, 10);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.last_res, -ECANCELED);
    nx_loop_free(l);
}
