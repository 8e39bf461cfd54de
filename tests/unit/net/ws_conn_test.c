/* The server side of a WebSocket connection on a real shard, one end of a socketpair, against a
 * scripted client on the other: messages reassembled across reads and fragments, pings answered
 * in between, binary messages handed over, the peer's close code echoed (1000 for an empty
 * close), keep-alive pings and the 1001 close of a peer that does not answer them, protocol
 * errors closed with their code (1002, 1007, 1009), a close by the user that stops everything
 * after it, and the close deadline that drops a peer which stopped reading.
 *
 * The client script runs on its own thread (blocking socket, every wait bounded by poll) and
 * records what it read; the test asserts after the shard and that thread have ended. */
#include <criterion/criterion.h>

#include "nexus/errors.h"
#include "shard.h"
#include "ws.h"
#include "ws_conn.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 1500 /* the longest the client waits for the server before giving up */

typedef struct tc tc_t;
typedef void (*script_fn)(tc_t *t);

/* One frame the client read, copied. */
typedef struct cframe {
    int type; /* nx_ws_type_t; -1 = nothing came (EOF or timeout), NX_EPROTO = refused */
    char payload[128];
    size_t n;
    uint16_t close_code;
    char close_reason[128];
    uint64_t at_ms; /* since the start */
} cframe_t;

struct tc {
    nx_ws_conn_t ws; /* the server side, on the shard */
    nx_shard_t *s;
    int fds[2]; /* [0] the server's (owned by its nx_conn_t), [1] the client's */
    /* server configuration */
    uint32_t interval_ms, timeout_ms, close_deadline_ms;
    uint64_t max_message;
    int sndbuf; /* SO_SNDBUF of the server's socket, when not 0 */
    /* what the server saw */
    char texts[256]; /* every text message, '|' after each */
    char binaries[64];
    int closing_calls, free_calls;
    bool closed_before_free; /* on_closing ran before on_free */
    int send_after_close_rc;
    uint64_t free_ms;
    bool guard_fired;
    nx_timer_t guard;
    /* the client script */
    script_fn script;
    pthread_t thread;
    nx_ws_parser_t parser; /* client role: reads the server's unmasked frames */
    char in[1 << 17];
    size_t in_len;
    cframe_t frames[12];
    int frame_count;
    bool saw_eof, gave_up;
    struct timespec t0;
};

static uint64_t elapsed_ms(const tc_t *t) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - t->t0.tv_sec) * 1000 +
           (uint64_t)((now.tv_nsec - t->t0.tv_nsec) / 1000000);
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the client ---- */

static void cl_write(tc_t *t, const void *p, size_t n) {
    ssize_t rc = send(t->fds[1], p, n, MSG_NOSIGNAL);
    (void)rc;
}

/* Sends one client frame, masked as clients must (unmasked when <unmasked>). */
static void cl_frame(tc_t *t, nx_ws_opcode_t op, bool fin, const void *p, size_t n, bool unmasked) {
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    nx_buf_t b;
    nx_buf_init(&b);
    nx_ws_encode_frame(&b, op, fin, p, n, unmasked ? NULL : mask);
    cl_write(t, b.data, b.len);
    nx_buf_dispose(&b);
}

static void cl_close(tc_t *t, uint16_t code, const char *reason) {
    static const uint8_t mask[4] = {1, 2, 3, 4};
    nx_buf_t b;
    nx_buf_init(&b);
    nx_ws_encode_close(&b, code, reason, mask);
    cl_write(t, b.data, b.len);
    nx_buf_dispose(&b);
}

static bool wait_readable(int fd, int ms) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, ms) == 1;
}

/* Reads the server's next frame into t->frames; returns it (type -1 at EOF or timeout). */
static cframe_t *cl_read(tc_t *t) {
    cframe_t *f = &t->frames[t->frame_count < 11 ? t->frame_count++ : 11];
    memset(f, 0, sizeof(*f));
    f->type = -1;
    for (;;) {
        nx_ws_event_t ev;
        int rc = t->in_len > 0 ? nx_ws_parse(&t->parser, t->in, t->in_len, &ev) : NX_AGAIN;
        if (rc >= 0) {
            if (ev.type != NX_WS_NONE) {
                f->type = (int)ev.type;
                f->n = ev.payload.n < sizeof(f->payload) ? ev.payload.n : sizeof(f->payload);
                memcpy(f->payload, ev.payload.p, f->n);
                f->close_code = ev.close_code;
                snprintf(f->close_reason, sizeof(f->close_reason), "%.*s", (int)ev.close_reason.n,
                         ev.close_reason.p ? ev.close_reason.p : "");
                f->at_ms = elapsed_ms(t);
            }
            memmove(t->in, t->in + rc, t->in_len - (size_t)rc);
            t->in_len -= (size_t)rc;
            if (ev.type != NX_WS_NONE) return f;
            continue;
        }
        if (rc != NX_AGAIN) {
            f->type = NX_EPROTO;
            return f;
        }
        if (t->in_len == sizeof(t->in) || !wait_readable(t->fds[1], WAIT_MS)) {
            t->gave_up = true;
            return f;
        }
        ssize_t n = recv(t->fds[1], t->in + t->in_len, sizeof(t->in) - t->in_len, 0);
        if (n <= 0) {
            t->saw_eof = true;
            return f;
        }
        t->in_len += (size_t)n;
    }
}

/* Reads until the server closes the connection, then closes the client's end. */
static void cl_wait_eof(tc_t *t) {
    char b[4096];
    for (;;) {
        if (!wait_readable(t->fds[1], WAIT_MS)) {
            t->gave_up = true;
            break;
        }
        if (recv(t->fds[1], b, sizeof(b), 0) <= 0) {
            t->saw_eof = true;
            break;
        }
    }
    close(t->fds[1]);
}

static void *client_main(void *arg) {
    tc_t *t = arg;
    t->script(t);
    return NULL;
}

/* ---- the server (on the shard) ---- */

static void s_on_text(nx_ws_conn_t *ws, const char *data, size_t len) {
    tc_t *t = nx_container_of(ws, tc_t, ws);
    size_t l = strlen(t->texts);
    snprintf(t->texts + l, sizeof(t->texts) - l, "%.*s|", (int)len, data);
    if (len == 3 && memcmp(data, "bye", 3) == 0) {
        nx_ws_conn_close(ws, NX_WS_CLOSE_NORMAL, "done");
        t->send_after_close_rc = nx_ws_conn_send_text(ws, "late", 4);
    } else if (len == 5 && memcmp(data, "flood", 5) == 0) {
        /* More than the socket holds, then a close the client will never read. */
        static char big[64 << 10];
        memset(big, 'x', sizeof(big));
        nx_ws_conn_send_text(ws, big, sizeof(big));
        nx_ws_conn_close(ws, NX_WS_CLOSE_NORMAL, "done");
    } else {
        nx_ws_conn_send_text(ws, data, len); /* echo */
    }
}

static void s_on_binary(nx_ws_conn_t *ws, const char *data, size_t len) {
    tc_t *t = nx_container_of(ws, tc_t, ws);
    snprintf(t->binaries, sizeof(t->binaries), "%zu:%02x", len, len ? (uint8_t)data[0] : 0);
    nx_ws_conn_send_text(ws, "binary", 6);
}

static void s_keepalive(nx_ws_conn_t *ws, uint32_t *interval_ms, uint32_t *timeout_ms) {
    tc_t *t = nx_container_of(ws, tc_t, ws);
    *interval_ms = t->interval_ms;
    *timeout_ms = t->timeout_ms;
}

static void s_on_closing(nx_ws_conn_t *ws) {
    nx_container_of(ws, tc_t, ws)->closing_calls++;
}

static void s_on_free(nx_ws_conn_t *ws) {
    tc_t *t = nx_container_of(ws, tc_t, ws);
    t->free_calls++;
    t->closed_before_free = t->closing_calls > 0;
    t->free_ms = elapsed_ms(t);
    nx_timer_stop(&t->guard);
    nx_shard_stop(t->s);
}

static const nx_ws_conn_ops_t ops = {.on_text = s_on_text,
                                     .on_binary = s_on_binary,
                                     .keepalive = s_keepalive,
                                     .on_closing = s_on_closing,
                                     .on_free = s_on_free};

static void on_guard(nx_timer_t *tm) {
    tc_t *t = nx_container_of(tm, tc_t, guard);
    t->guard_fired = true;
    if (t->ws.conn != NULL) nx_conn_close(t->ws.conn);
    nx_shard_stop(t->s);
}

static int scenario_start(nx_shard_t *s) {
    tc_t *t = s->user;
    t->s = s;
    nx_timer_init(&t->guard, on_guard);
    nx_shard_timer_start(s, &t->guard, 4000);
    nx_ws_conn_init(&t->ws, &ops, t->max_message, t->close_deadline_ms);
    nx_conn_t *c = nx_conn_new(s, t->fds[0], &nx_ws_conn_codec, &t->ws);
    if (c == NULL) return -1;
    nx_ws_conn_start(&t->ws, c);
    return 0;
}

/* After the loop stopped: let the close complete so nothing leaks (ASan checks). */
static void scenario_stop(nx_shard_t *s) {
    for (int i = 0; i < 200 && !nx_list_empty(&s->conns); i++)
        nx_loop_run_once(s->loop, 5);
}

/* Runs the server side configured in <t> against the client <script>. */
static void run(tc_t *t, script_fn script) {
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t->fds), 0);
    if (t->sndbuf > 0)
        cr_assert_eq(setsockopt(t->fds[0], SOL_SOCKET, SO_SNDBUF, &t->sndbuf, sizeof(t->sndbuf)),
                     0);
    t->script = script;
    nx_ws_parser_init(&t->parser, NX_WS_CLIENT, 0);
    clock_gettime(CLOCK_MONOTONIC, &t->t0);
    cr_assert_eq(pthread_create(&t->thread, NULL, client_main, t), 0);
    nx_shard_opts_t o = {.ring_entries = 256,
                         .buf_count = 64,
                         .buf_size = 4096,
                         .mailbox_capacity = 16,
                         .on_start = scenario_start,
                         .on_stop = scenario_stop,
                         .user = t};
    nx_shard_t *s = NULL;
    cr_assert_eq(nx_shard_start(0, &o, &s), 0);
    nx_shard_join_free(s);
    pthread_join(t->thread, NULL);
    nx_ws_parser_dispose(&t->parser);
    cr_assert_not(t->guard_fired, "the connection was never freed");
    cr_assert_not(t->gave_up, "the client waited in vain");
    cr_assert_eq(t->free_calls, 1);
}

/* ---- messages, control frames, the peer's close ---- */

static void script_messages(tc_t *t) {
    /* "hello" in two reads, the header itself cut in half. */
    nx_buf_t b;
    nx_buf_init(&b);
    static const uint8_t mask[4] = {9, 8, 7, 6};
    nx_ws_encode_frame(&b, NX_WS_OP_TEXT, true, "hello", 5, mask);
    cl_write(t, b.data, 1);
    sleep_ms(30);
    cl_write(t, b.data + 1, 4);
    sleep_ms(30);
    cl_write(t, b.data + 5, b.len - 5);
    nx_buf_dispose(&b);
    cl_read(t); /* 0: the echo */
    /* A fragmented message with a ping between its fragments. */
    cl_frame(t, NX_WS_OP_TEXT, false, "ab", 2, false);
    cl_frame(t, NX_WS_OP_PING, true, "p1", 2, false);
    cl_frame(t, NX_WS_OP_CONT, true, "cd", 2, false);
    cl_read(t); /* 1: pong */
    cl_read(t); /* 2: echo */
    cl_frame(t, NX_WS_OP_BINARY, true, "\x7f\x01", 2, false);
    cl_read(t); /* 3: "binary" */
    cl_close(t, 4000, "client leaves");
    cl_read(t); /* 4: the echoed close */
    cl_wait_eof(t);
}

Test(ws_conn, messages_across_reads_pings_between_fragments_binary_and_the_peer_close,
     .timeout = 15) {
    static tc_t t;
    run(&t, script_messages);
    cr_assert_eq(t.frames[0].type, NX_WS_TEXT);
    cr_assert_eq(t.frames[0].n, 5);
    cr_assert_arr_eq(t.frames[0].payload, "hello", 5);
    cr_assert_eq(t.frames[1].type, NX_WS_PONG, "the ping is answered before the message ends");
    cr_assert_arr_eq(t.frames[1].payload, "p1", 2);
    cr_assert_eq(t.frames[2].type, NX_WS_TEXT);
    cr_assert_arr_eq(t.frames[2].payload, "abcd", 4);
    cr_assert_str_eq(t.texts, "hello|abcd|");
    cr_assert_str_eq(t.binaries, "2:7f");
    cr_assert_arr_eq(t.frames[3].payload, "binary", 6);
    cr_assert_eq(t.frames[4].type, NX_WS_CLOSE);
    cr_assert_eq(t.frames[4].close_code, 4000, "the peer's code is echoed");
    cr_assert(t.saw_eof);
    cr_assert_eq(t.closing_calls, 1);
    cr_assert(t.closed_before_free);
}

static void script_empty_close(tc_t *t) {
    cl_close(t, 0, NULL);
    cl_read(t);
    cl_wait_eof(t);
}

Test(ws_conn, an_empty_close_is_answered_with_1000, .timeout = 15) {
    static tc_t t;
    run(&t, script_empty_close);
    cr_assert_eq(t.frames[0].type, NX_WS_CLOSE);
    cr_assert_eq(t.frames[0].close_code, NX_WS_CLOSE_NORMAL);
}

/* ---- keep-alive ---- */

static void script_silent(tc_t *t) {
    cl_read(t); /* the ping */
    cl_read(t); /* the close */
    cl_wait_eof(t);
}

Test(ws_conn, a_peer_that_answers_no_ping_is_closed_with_1001, .timeout = 15) {
    static tc_t t;
    t.interval_ms = 150;
    t.timeout_ms = 100;
    run(&t, script_silent);
    cr_assert_eq(t.frames[0].type, NX_WS_PING);
    cr_assert_arr_eq(t.frames[0].payload, "nx", 2);
    cr_assert_geq(t.frames[0].at_ms, 120, "the ping came after %llu ms",
                  (unsigned long long)t.frames[0].at_ms);
    cr_assert_eq(t.frames[1].type, NX_WS_CLOSE);
    cr_assert_eq(t.frames[1].close_code, NX_WS_CLOSE_GOING_AWAY);
    cr_assert_str_eq(t.frames[1].close_reason, "no pong: peer presumed dead");
    cr_assert_geq(t.frames[1].at_ms - t.frames[0].at_ms, 80);
}

static void script_pongs(tc_t *t) {
    for (int i = 0; i < 4; i++) {
        cframe_t *f = cl_read(t);
        if (f->type != NX_WS_PING) break;
        cl_frame(t, NX_WS_OP_PONG, true, f->payload, f->n, false);
    }
    cl_close(t, NX_WS_CLOSE_NORMAL, "enough");
    cl_read(t);
    cl_wait_eof(t);
}

Test(ws_conn, a_peer_that_answers_pings_stays_open, .timeout = 15) {
    static tc_t t;
    t.interval_ms = 60;
    t.timeout_ms = 60;
    run(&t, script_pongs);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(t.frames[i].type, NX_WS_PING, "frame %d is %d", i, t.frames[i].type);
    cr_assert_eq(t.frames[4].type, NX_WS_CLOSE);
    cr_assert_eq(t.frames[4].close_code, NX_WS_CLOSE_NORMAL, "closed by the client, not 1001");
}

static void script_no_pings(tc_t *t) {
    sleep_ms(300);
    cl_frame(t, NX_WS_OP_TEXT, true, "hi", 2, false);
    cl_read(t);
    cl_close(t, NX_WS_CLOSE_NORMAL, NULL);
    cl_read(t);
    cl_wait_eof(t);
}

Test(ws_conn, an_interval_of_zero_sends_no_pings, .timeout = 15) {
    static tc_t t;
    t.interval_ms = 0;
    t.timeout_ms = 10;
    run(&t, script_no_pings);
    cr_assert_eq(t.frames[0].type, NX_WS_TEXT, "the first frame is the echo, not a ping");
    cr_assert_eq(t.frames[1].type, NX_WS_CLOSE);
}

/* ---- protocol errors ---- */

static void script_unmasked(tc_t *t) {
    cl_frame(t, NX_WS_OP_TEXT, true, "hi", 2, true);
    cl_read(t);
    cl_wait_eof(t);
}

static void script_bad_utf8(tc_t *t) {
    cl_frame(t, NX_WS_OP_TEXT, true, "\xc3\x28", 2, false);
    cl_read(t);
    cl_wait_eof(t);
}

static void script_too_big(tc_t *t) {
    char big[64];
    memset(big, 'a', sizeof(big));
    cl_frame(t, NX_WS_OP_TEXT, true, big, sizeof(big), false);
    cl_read(t);
    cl_wait_eof(t);
}

Test(ws_conn, protocol_errors_close_with_their_code, .timeout = 20) {
    static const struct {
        script_fn script;
        uint16_t code;
    } cases[] = {{script_unmasked, NX_WS_CLOSE_PROTOCOL},
                 {script_bad_utf8, NX_WS_CLOSE_INVALID_DATA},
                 {script_too_big, NX_WS_CLOSE_TOO_BIG}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        static tc_t t;
        memset(&t, 0, sizeof(t));
        t.max_message = 32;
        run(&t, cases[i].script);
        cr_assert_eq(t.frames[0].type, NX_WS_CLOSE, "case %zu", i);
        cr_assert_eq(t.frames[0].close_code, cases[i].code, "case %zu: %u", i,
                     t.frames[0].close_code);
        cr_assert_gt(strlen(t.frames[0].close_reason), 0, "case %zu: the reason says why", i);
        cr_assert_str_empty(t.texts, "case %zu: nothing was delivered", i);
    }
}

/* ---- closing from the user ---- */

static void script_bye(tc_t *t) {
    /* "after" is in the same read as "bye" and must not be delivered. */
    nx_buf_t b;
    nx_buf_init(&b);
    static const uint8_t mask[4] = {5, 6, 7, 8};
    nx_ws_encode_frame(&b, NX_WS_OP_TEXT, true, "bye", 3, mask);
    nx_ws_encode_frame(&b, NX_WS_OP_TEXT, true, "after", 5, mask);
    cl_write(t, b.data, b.len);
    nx_buf_dispose(&b);
    cl_read(t);
    cl_wait_eof(t);
}

Test(ws_conn, a_close_by_the_user_ends_everything_after_it, .timeout = 15) {
    static tc_t t;
    run(&t, script_bye);
    cr_assert_eq(t.frames[0].type, NX_WS_CLOSE);
    cr_assert_eq(t.frames[0].close_code, NX_WS_CLOSE_NORMAL);
    cr_assert_str_eq(t.frames[0].close_reason, "done");
    cr_assert_eq(t.send_after_close_rc, NX_ECLOSED);
    cr_assert_str_eq(t.texts, "bye|");
    cr_assert_eq(t.closing_calls, 1);
}

static void script_never_reads(tc_t *t) {
    cl_frame(t, NX_WS_OP_TEXT, true, "flood", 5, false);
    /* Read nothing until the server gives up on us. */
    struct pollfd pfd = {.fd = t->fds[1], .events = POLLRDHUP};
    for (int i = 0; i < 300 && !(pfd.revents & (POLLRDHUP | POLLHUP)); i++)
        poll(&pfd, 1, 10);
    cl_wait_eof(t);
}

Test(ws_conn, the_close_deadline_drops_a_peer_that_stopped_reading, .timeout = 15) {
    static tc_t t;
    t.close_deadline_ms = 200;
    t.sndbuf = 4096; /* the flood cannot all be handed to the kernel: the linger never starts */
    run(&t, script_never_reads);
    cr_assert_lt(t.free_ms, 1500, "freed after %llu ms", (unsigned long long)t.free_ms);
    cr_assert_geq(t.free_ms, 150, "freed after %llu ms", (unsigned long long)t.free_ms);
    cr_assert(t.saw_eof);
}
