/* The outbound HTTP/1.1 client pool on a real shard against a scripted TCP server on 127.0.0.1:
 * response framings, keep-alive reuse and the reasons not to reuse, the pool bound with its FIFO
 * queue, connect and head failures, the one stale-connection retry (and when not to retry),
 * streaming bodies, cancel, freeing the pool with work in flight, idle timeout, re-resolution.
 *
 * Each test runs a server script on its own thread (blocking sockets, every wait bounded by
 * poll) and a client scenario on a shard; the client records what its callbacks saw and the
 * test asserts on both sides after the shard and the server thread have ended. */
#include <criterion/criterion.h>

#include "http_client.h"
#include "nexus/errors.h"
#include "shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 2000 /* the longest any side waits for the other before giving up */

/* ---- the scripted server ---- */

typedef struct server server_t;
typedef void (*script_fn)(server_t *sv);

struct server {
    int lfd;
    struct sockaddr_in addr;
    pthread_t thread;
    script_fn script;
    int accepted;
    char log[1024];      /* "METHOD target|" per request read */
    char first_req[512]; /* the raw bytes of the first request */
    int eofs;            /* connections the client closed, as seen by the script */
    bool gave_up;        /* a wait of the script ran out: the client did not do its part */
    int client_events;   /* bumped by the client thread (atomics): lets a script wait for it */
};

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static bool wait_readable(int fd, int ms) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, ms) == 1;
}

static int srv_accept_within(server_t *sv, int ms) {
    if (!wait_readable(sv->lfd, ms)) return -1;
    int fd = accept(sv->lfd, NULL, NULL);
    if (fd >= 0) sv->accepted++;
    return fd;
}

static int srv_accept(server_t *sv) {
    int fd = srv_accept_within(sv, WAIT_MS);
    if (fd < 0) sv->gave_up = true;
    return fd;
}

/* Reads one request (head and Content-Length body) from <fd>; its length, 0 at EOF, -1 when
 * nothing came in time. */
static int srv_read(server_t *sv, int fd) {
    char buf[4096];
    size_t len = 0;
    for (;;) {
        char *end = memmem(buf, len, "\r\n\r\n", 4);
        if (end != NULL) {
            size_t head = (size_t)(end - buf) + 4;
            size_t body = 0;
            for (char *l = buf; l < end; l = strstr(l, "\r\n") + 2)
                if (strncasecmp(l, "Content-Length:", 15) == 0) body = strtoul(l + 15, NULL, 10);
            if (len >= head + body) break;
        }
        if (len == sizeof(buf) || !wait_readable(fd, WAIT_MS)) {
            sv->gave_up = true;
            return -1;
        }
        ssize_t n = recv(fd, buf + len, sizeof(buf) - len, 0);
        if (n <= 0) return 0;
        len += (size_t)n;
    }
    if (sv->first_req[0] == '\0')
        snprintf(sv->first_req, sizeof(sv->first_req), "%.*s", (int)len, buf);
    char *sp1 = memchr(buf, ' ', len), *sp2 = sp1 ? memchr(sp1 + 1, ' ', len) : NULL;
    size_t n = strlen(sv->log);
    if (sp2 != NULL) snprintf(sv->log + n, sizeof(sv->log) - n, "%.*s|", (int)(sp2 - buf), buf);
    return (int)len;
}

static void srv_write(int fd, const char *s) {
    ssize_t rc = send(fd, s, strlen(s), MSG_NOSIGNAL);
    (void)rc;
}

/* Waits for the client to close <fd> (EOF or reset), then closes it. */
static void srv_wait_close(server_t *sv, int fd) {
    char b[256];
    for (;;) {
        if (!wait_readable(fd, WAIT_MS)) {
            sv->gave_up = true;
            break;
        }
        if (recv(fd, b, sizeof(b), 0) <= 0) {
            sv->eofs++;
            break;
        }
    }
    close(fd);
}

/* Closes <fd> with a TCP reset, as a crashing server would. */
static void srv_reset(int fd) {
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(fd);
}

static bool srv_wait_client_events(server_t *sv, int n) {
    for (int i = 0; i < WAIT_MS; i++) {
        if (__atomic_load_n(&sv->client_events, __ATOMIC_ACQUIRE) >= n) return true;
        sleep_ms(1);
    }
    sv->gave_up = true;
    return false;
}

static void *server_main(void *arg) {
    server_t *sv = arg;
    sv->script(sv);
    return NULL;
}

static void server_start(server_t *sv, script_fn script) {
    memset(sv, 0, sizeof(*sv));
    sv->script = script;
    sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(sv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sv->addr.sin_family = AF_INET;
    sv->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(sv->lfd, (struct sockaddr *)&sv->addr, sizeof(sv->addr)), 0);
    socklen_t len = sizeof(sv->addr);
    getsockname(sv->lfd, (struct sockaddr *)&sv->addr, &len);
    cr_assert_eq(listen(sv->lfd, 16), 0);
    cr_assert_eq(pthread_create(&sv->thread, NULL, server_main, sv), 0);
}

static void server_join(server_t *sv) {
    pthread_join(sv->thread, NULL);
    close(sv->lfd);
}

/* ---- the client side (runs on the shard thread) ---- */

typedef struct tc tc_t;

/* What the callbacks of one exchange saw. */
typedef struct rec {
    tc_t *t;
    int idx;
    int rc; /* of nx_http_request */
    nx_http_exchange_t *x;
    int done_calls, head_calls, data_calls;
    int done_calls_at_submit; /* on_done calls that happened inside nx_http_request */
    int err;
    int status;
    bool keep_alive;
    char media[64];
    char body[4096];
    size_t body_len;
    bool got_bytes;
    const char *error;
    uint64_t done_ms; /* since the scenario started */
    /* actions */
    bool cancel_in_data;
    bool free_in_head;
} rec_t;

struct tc {
    nx_shard_t *s;
    nx_http_pool_t *pool;
    nx_http_pool_opts_t opts;
    server_t *sv;
    struct sockaddr_in addr; /* where the pool connects (default: the server) */
    rec_t r[8];
    int done_total;
    int expect; /* the scenario ends once this many exchanges are done */
    void (*start)(tc_t *t);
    void (*after_done)(tc_t *t, rec_t *r); /* e.g. submit the next request */
    void (*step)(tc_t *t);                 /* run by step_timer */
    nx_timer_t step_timer, guard_timer;
    nx_http_pool_stats_t mid, after, end; /* taken by the scenario; <end> just before the free */
    int set_addr_rc;
    char events[256]; /* "h0 d0 D0 " ... in callback order */
    bool guard_fired, finished;
    uint64_t t0;
    int data_events; /* on_data calls, mirrored to the server */
    void *extra;
};

static void note(tc_t *t, char kind, int idx) {
    size_t n = strlen(t->events);
    snprintf(t->events + n, sizeof(t->events) - n, "%c%d ", kind, idx);
}

static void end_scenario(tc_t *t) {
    if (t->finished) return;
    t->finished = true;
    nx_timer_stop(&t->step_timer);
    nx_timer_stop(&t->guard_timer);
    if (t->pool != NULL) {
        nx_http_pool_stats(t->pool, &t->end);
        nx_http_pool_t *p = t->pool;
        t->pool = NULL;
        nx_http_pool_free(p); /* often from inside on_done: must be safe */
    }
    nx_shard_stop(t->s);
}

static void on_head(nx_http_exchange_t *x, const nx_http_response_t *h, void *arg) {
    rec_t *r = arg;
    r->head_calls++;
    r->status = h->status;
    r->keep_alive = h->keep_alive;
    snprintf(r->media, sizeof(r->media), "%.*s", (int)h->media_type.n,
             h->media_type.p ? h->media_type.p : "");
    note(r->t, 'h', r->idx);
    if (r->free_in_head) end_scenario(r->t);
}

static void on_data(nx_http_exchange_t *x, const char *d, size_t n, void *arg) {
    rec_t *r = arg;
    r->data_calls++;
    if (r->body_len + n <= sizeof(r->body)) {
        memcpy(r->body + r->body_len, d, n);
        r->body_len += n;
    }
    note(r->t, 'd', r->idx);
    __atomic_add_fetch(&r->t->sv->client_events, 1, __ATOMIC_RELEASE);
    if (r->cancel_in_data) {
        nx_http_exchange_cancel(x);
        nx_http_exchange_cancel(x); /* twice: still harmless */
        nx_http_pool_stats(r->t->pool, &r->t->mid);
        nx_shard_timer_start(r->t->s, &r->t->step_timer, 20);
    }
}

static void on_done(nx_http_exchange_t *x, int err, void *arg) {
    rec_t *r = arg;
    tc_t *t = r->t;
    r->done_calls++;
    r->err = err;
    r->got_bytes = nx_http_exchange_got_bytes(x);
    r->error = nx_http_exchange_error(x);
    r->done_ms = nx_shard_now_ms(t->s) - t->t0;
    note(t, 'D', r->idx);
    nx_http_exchange_cancel(x); /* a no-op inside on_done */
    t->done_total++;
    if (t->after_done != NULL && !t->finished) t->after_done(t, r);
    if (t->done_total >= t->expect) end_scenario(t);
}

static const nx_http_client_ops_t ops = {
    .on_head = on_head, .on_data = on_data, .on_done = on_done};

static int submit_req(tc_t *t, int i, const nx_http_client_request_t *req) {
    rec_t *r = &t->r[i];
    r->t = t;
    r->idx = i;
    r->rc = nx_http_request(t->pool, req, &ops, r, &r->x);
    r->done_calls_at_submit = r->done_calls;
    return r->rc;
}

static int submit(tc_t *t, int i, const char *method, const char *target, uint32_t timeout_ms) {
    nx_http_client_request_t req = {.method = method, .target = target, .timeout_ms = timeout_ms};
    return submit_req(t, i, &req);
}

/* For steps that wait for something the other thread does: true (and <t>->mid filled) once
 * <cond> holds or a second has passed; otherwise the step runs again in 5 ms. */
static bool settled(tc_t *t, bool cond) {
    if (!cond && nx_shard_now_ms(t->s) - t->t0 < 1000) {
        nx_shard_timer_start(t->s, &t->step_timer, 5);
        return false;
    }
    return true;
}

static void on_step(nx_timer_t *tm) {
    tc_t *t = nx_container_of(tm, tc_t, step_timer);
    if (t->step != NULL) t->step(t);
}

static void on_guard(nx_timer_t *tm) {
    tc_t *t = nx_container_of(tm, tc_t, guard_timer);
    t->guard_fired = true;
    end_scenario(t);
}

static int scenario_start(nx_shard_t *s) {
    tc_t *t = s->user;
    t->s = s;
    t->t0 = nx_shard_now_ms(s);
    nx_timer_init(&t->step_timer, on_step);
    nx_timer_init(&t->guard_timer, on_guard);
    nx_shard_timer_start(s, &t->guard_timer, 3000);
    t->pool =
        nx_http_pool_new(s, (struct sockaddr *)&t->addr, sizeof(t->addr), "example.test", &t->opts);
    if (t->pool == NULL) return -ENOMEM;
    t->start(t);
    return 0;
}

/* After the loop stopped: let the closes complete so the pool's memory goes (ASan checks). */
static void scenario_stop(nx_shard_t *s) {
    for (int i = 0; i < 200 && !nx_list_empty(&s->conns); i++)
        nx_loop_run_once(s->loop, 5);
    for (int i = 0; i < 5; i++)
        nx_loop_run_once(s->loop, 1);
}

/* Runs scenario <t> against a server running <script>. */
static void run(tc_t *t, server_t *sv, script_fn script) {
    server_start(sv, script);
    t->sv = sv;
    if (t->addr.sin_family == 0) t->addr = sv->addr;
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
    server_join(sv);
    cr_assert_not(t->guard_fired, "the scenario did not finish (events: %s)", t->events);
}

#define OK5 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

/* ---- framings ---- */

static void script_content_length(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    srv_wait_close(sv, fd);
}

static void start_content_length(tc_t *t) {
    nx_http_header_t h[] = {{NX_STR("X-Trace"), NX_STR("7")}};
    nx_http_client_request_t req = {
        .method = "GET", .target = "/a?b=1", .headers = h, .header_count = 1};
    submit_req(t, 0, &req);
}

Test(http_client, content_length_response_and_the_request_on_the_wire, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 1, .start = start_content_length};
    run(&t, &sv, script_content_length);
    cr_assert_str_eq(sv.first_req,
                     "GET /a?b=1 HTTP/1.1\r\nHost: example.test\r\nX-Trace: 7\r\n\r\n",
                     "only Host is added; GET without a body has no Content-Length");
    cr_assert_eq(t.r[0].rc, 0);
    cr_assert_eq(t.r[0].done_calls_at_submit, 0, "no callback inside nx_http_request");
    cr_assert_eq(t.r[0].err, 0);
    cr_assert_eq(t.r[0].status, 200);
    cr_assert_eq(t.r[0].body_len, 5);
    cr_assert_eq(memcmp(t.r[0].body, "hello", 5), 0);
    cr_assert_str_eq(t.events, "h0 d0 D0 ");
    cr_assert_eq(t.end.idle, 1, "a keep-alive response leaves the connection idle");
    cr_assert_eq(t.end.connects, 1);
    cr_assert_eq(t.end.requests, 1);
    cr_assert_eq(sv.eofs, 1, "freeing the pool closes the idle connection");
}

static void script_chunked(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    /* Split inside the head, inside a chunk-size line and inside chunk data. */
    srv_write(fd, "HTTP/1.1 200 OK\r\nTransfer-Enc");
    sleep_ms(20);
    srv_write(fd, "oding: chunked\r\n\r\n5\r\nhel");
    sleep_ms(20);
    srv_write(fd, "lo\r\n");
    sleep_ms(20);
    srv_write(fd, "6\r");
    sleep_ms(20);
    srv_write(fd, "\n world\r\n0\r\n\r\n");
    srv_wait_close(sv, fd);
}

static void start_post(tc_t *t) {
    nx_http_client_request_t req = {
        .method = "POST", .target = "/mcp", .body = "{\"x\":1}", .body_len = 7};
    submit_req(t, 0, &req);
}

Test(http_client, chunked_response_split_across_writes, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 1, .start = start_post};
    run(&t, &sv, script_chunked);
    cr_assert_str_eq(sv.first_req, "POST /mcp HTTP/1.1\r\nHost: example.test\r\n"
                                   "Content-Length: 7\r\n\r\n{\"x\":1}");
    cr_assert_eq(t.r[0].err, 0);
    cr_assert_eq(t.r[0].body_len, 11);
    cr_assert_eq(memcmp(t.r[0].body, "hello world", 11), 0, "chunk framing removed");
    cr_assert_geq(t.r[0].data_calls, 2, "data is handed out as it arrives");
    cr_assert_eq(t.end.idle, 1);
}

static void script_close_delimited(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, "HTTP/1.1 200 OK\r\n\r\nuntil ");
    sleep_ms(20);
    srv_write(fd, "close");
    close(fd);
}

Test(http_client, close_delimited_body_ends_at_eof, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 1, .start = start_content_length};
    run(&t, &sv, script_close_delimited);
    cr_assert_eq(t.r[0].err, 0, "EOF completes a close-delimited body");
    cr_assert_eq(t.r[0].body_len, 11);
    cr_assert_eq(memcmp(t.r[0].body, "until close", 11), 0);
    cr_assert_not(t.r[0].keep_alive);
    cr_assert_eq(t.end.open, 0, "never reused");
    cr_assert_eq(t.end.idle, 0);
}

/* 1xx skipped, 204, a HEAD response with Content-Length, 304, then a normal one: all on one
 * connection, which only works if no framing consumed too much or too little. */
static void script_no_body(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    static const char informational_then_204[] =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n";
    const char *resp[] = {
        informational_then_204,
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
        OK5,
    };
    for (int i = 0; i < 4; i++) {
        if (srv_read(sv, fd) <= 0) break;
        srv_write(fd, resp[i]);
    }
    srv_wait_close(sv, fd);
}

static void next_no_body(tc_t *t, rec_t *r) {
    static const char *const methods[] = {"DELETE", "HEAD", "GET", "GET"};
    if (r->idx < 3) submit(t, r->idx + 1, methods[r->idx + 1], "/n", 0);
}

static void start_no_body(tc_t *t) {
    submit(t, 0, "DELETE", "/n", 0);
}

Test(http_client, informational_204_head_and_304_have_no_body, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 4, .start = start_no_body, .after_done = next_no_body};
    run(&t, &sv, script_no_body);
    cr_assert_str_eq(t.events, "h0 D0 h1 D1 h2 D2 h3 d3 D3 ", "1xx heads are not reported");
    cr_assert_eq(t.r[0].status, 204);
    cr_assert_eq(t.r[1].status, 200);
    cr_assert_eq(t.r[2].status, 304);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(t.r[i].err, 0, "request %d", i);
    cr_assert_eq(t.r[3].body_len, 5);
    cr_assert_eq(t.end.connects, 1);
    cr_assert_eq(t.end.reuses, 3);
}

static void script_bad(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc");
    srv_wait_close(sv, fd);
}

Test(http_client, malformed_response_fails_with_the_parser_message, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 1, .start = start_content_length};
    run(&t, &sv, script_bad);
    cr_assert_eq(t.r[0].err, NX_EPROTO);
    cr_assert_not_null(t.r[0].error);
    cr_assert_eq(t.r[0].head_calls, 0);
    cr_assert(t.r[0].got_bytes);
    cr_assert_eq(t.end.open, 0, "a connection that sent garbage is closed");
    cr_assert_eq(t.end.failures, 1);
    cr_assert_eq(sv.eofs, 1);
}

/* ---- keep-alive and the reasons not to reuse ---- */

static void script_keepalive(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    for (int i = 0; i < 5; i++) {
        if (srv_read(sv, fd) <= 0) break;
        char resp[128];
        snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok%d", i);
        srv_write(fd, resp);
    }
    srv_wait_close(sv, fd);
    /* A second connection would show up here. */
    int extra = srv_accept_within(sv, 50);
    if (extra >= 0) close(extra);
}

static void next_keepalive(tc_t *t, rec_t *r) {
    static const char *const targets[] = {"/0", "/1", "/2", "/3", "/4"};
    if (r->idx < 4) {
        nx_http_client_request_t req = {
            .method = "POST", .target = targets[r->idx + 1], .body = "ping", .body_len = 4};
        submit_req(t, r->idx + 1, &req);
    }
}

static void start_keepalive(tc_t *t) {
    nx_http_client_request_t req = {
        .method = "POST", .target = "/0", .body = "ping", .body_len = 4};
    submit_req(t, 0, &req);
}

Test(http_client, keep_alive_reuses_one_connection, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 5, .start = start_keepalive, .after_done = next_keepalive};
    run(&t, &sv, script_keepalive);
    cr_assert_eq(sv.accepted, 1, "five sequential requests, one connection");
    cr_assert_str_eq(sv.log, "POST /0|POST /1|POST /2|POST /3|POST /4|");
    for (int i = 0; i < 5; i++) {
        char want[4];
        snprintf(want, sizeof(want), "ok%d", i);
        cr_assert_eq(t.r[i].err, 0);
        cr_assert_eq(memcmp(t.r[i].body, want, 3), 0, "response %d", i);
    }
    cr_assert_eq(t.end.connects, 1);
    cr_assert_eq(t.end.reuses, 4);
    cr_assert_eq(t.end.requests, 5);
    cr_assert_eq(t.end.stale_retries, 0);
}

static void script_close_and_http10(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    /* Connection: close, and the server does not even close: the client must not reuse it. */
    srv_write(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello");
    srv_wait_close(sv, fd);
    if ((fd = srv_accept(sv)) < 0) return;
    srv_read(sv, fd);
    srv_write(fd, "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    srv_wait_close(sv, fd);
    if ((fd = srv_accept(sv)) < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    srv_wait_close(sv, fd);
}

static void next_get(tc_t *t, rec_t *r) {
    if (r->idx + 1 < t->expect) submit(t, r->idx + 1, "GET", "/next", 0);
}

static void start_get(tc_t *t) {
    submit(t, 0, "GET", "/first", 0);
}

Test(http_client, connection_close_and_http10_are_not_reused, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 3, .start = start_get, .after_done = next_get};
    run(&t, &sv, script_close_and_http10);
    cr_assert_eq(sv.accepted, 3);
    cr_assert_eq(sv.eofs, 3, "the client closed every connection");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(t.r[i].err, 0);
    cr_assert_not(t.r[0].keep_alive);
    cr_assert_not(t.r[1].keep_alive);
    cr_assert_eq(t.end.connects, 3);
    cr_assert_eq(t.end.reuses, 0);
}

static void script_max_requests(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    for (int i = 0; i < 2; i++) {
        srv_read(sv, fd);
        srv_write(fd, OK5);
    }
    srv_wait_close(sv, fd); /* closed by the client after its second response */
    if ((fd = srv_accept(sv)) < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    srv_wait_close(sv, fd);
}

Test(http_client, max_requests_per_conn_closes_after_the_last_response, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 3,
                     .start = start_get,
                     .after_done = next_get,
                     .opts = {.max_requests_per_conn = 2}};
    run(&t, &sv, script_max_requests);
    cr_assert_eq(sv.accepted, 2);
    cr_assert_eq(sv.eofs, 2);
    cr_assert_eq(t.end.connects, 2);
    cr_assert_eq(t.end.reuses, 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(t.r[i].err, 0);
}

static void script_extra_bytes(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5 "HTTP/1.1 200 OK\r\n"); /* a second response nobody asked for */
    srv_wait_close(sv, fd);
    if ((fd = srv_accept(sv)) < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    srv_wait_close(sv, fd);
}

Test(http_client, bytes_after_a_response_prevent_reuse, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 2, .start = start_get, .after_done = next_get};
    run(&t, &sv, script_extra_bytes);
    cr_assert_eq(t.r[0].err, 0, "the response itself is fine");
    cr_assert_eq(t.r[1].err, 0);
    cr_assert_eq(sv.accepted, 2, "the connection with unasked bytes was not reused");
    cr_assert_eq(t.end.reuses, 0);
}

/* ---- the pool bound and its queue ---- */

/* Two connections; answers requests in the order they are read. */
static void script_two_conns(server_t *sv) {
    int fds[2] = {srv_accept(sv), srv_accept(sv)};
    if (fds[0] < 0 || fds[1] < 0) return;
    for (int served = 0; served < 4;) {
        struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
        if (poll(p, 2, WAIT_MS) <= 0) {
            sv->gave_up = true;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & POLLIN)) continue;
            if (srv_read(sv, fds[i]) <= 0) continue;
            sleep_ms(10);
            srv_write(fds[i], OK5);
            served++;
        }
    }
    srv_wait_close(sv, fds[0]);
    srv_wait_close(sv, fds[1]);
}

static void start_limit(tc_t *t) {
    static const char *const targets[] = {"/1", "/2", "/3", "/4", "/5"};
    for (int i = 0; i < 5; i++)
        submit(t, i, "GET", targets[i], 0);
    nx_http_pool_stats(t->pool, &t->mid);
}

Test(http_client, pool_limit_queues_fifo_and_refuses_beyond_max_pending, .timeout = 10) {
    static server_t sv;
    static tc_t t = {
        .expect = 4, .start = start_limit, .opts = {.max_connections = 2, .max_pending = 2}};
    run(&t, &sv, script_two_conns);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(t.r[i].rc, 0, "request %d accepted", i);
    cr_assert_eq(t.r[4].rc, -EBUSY, "two connecting + two queued: the fifth is refused");
    cr_assert_eq(t.r[4].done_calls, 0, "a refused request gets no callback");
    cr_assert_eq(t.mid.open, 2);
    cr_assert_eq(t.mid.connecting, 2);
    cr_assert_eq(t.mid.pending, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(t.r[i].err, 0);
    cr_assert_eq(sv.accepted, 2, "never more than max_connections");
    const char *p3 = strstr(sv.log, "/3"), *p4 = strstr(sv.log, "/4");
    cr_assert(p3 != NULL && p4 != NULL && p3 < p4, "queued requests leave in FIFO order: %s",
              sv.log);
    cr_assert_eq(t.end.connects, 2);
    cr_assert_eq(t.end.reuses, 2);
}

/* ---- failures and timeouts ---- */

static void script_nothing(server_t *sv) {}

static void start_refused(tc_t *t) {
    submit(t, 0, "GET", "/", 0);
}

Test(http_client, connect_refused, .timeout = 10) {
    /* A bound but not listening port refuses connections, and nobody else can take it. */
    int refused_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(refused_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    getsockname(refused_fd, (struct sockaddr *)&sa, &len);
    static server_t sv;
    static tc_t t = {.expect = 1, .start = start_refused};
    t.addr = sa;
    run(&t, &sv, script_nothing);
    close(refused_fd);
    cr_assert_eq(t.r[0].rc, 0);
    cr_assert_eq(t.r[0].done_calls_at_submit, 0, "reported later, not inside nx_http_request");
    cr_assert_eq(t.r[0].done_calls, 1);
    cr_assert_eq(t.r[0].err, -ECONNREFUSED);
    cr_assert_not(t.r[0].got_bytes);
    cr_assert_eq(t.end.connects, 1, "a fresh connection is never retried");
    cr_assert_eq(t.end.connect_failures, 1);
    cr_assert_eq(t.end.stale_retries, 0);
    cr_assert_eq(t.end.failures, 1);
    cr_assert_eq(t.end.open, 0);
}

static void script_silent(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_wait_close(sv, fd); /* never answers */
}

static void start_head_timeout(tc_t *t) {
    submit(t, 0, "GET", "/slow", 150);
    submit(t, 1, "GET", "/queued", 60); /* waits for the only connection */
    nx_http_pool_stats(t->pool, &t->mid);
}

Test(http_client, head_timeout_and_queue_timeout, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 2, .start = start_head_timeout, .opts = {.max_connections = 1}};
    run(&t, &sv, script_silent);
    cr_assert_eq(t.mid.pending, 2);
    cr_assert_str_eq(t.events, "D1 D0 ", "the queued one times out first");
    cr_assert_eq(t.r[1].err, -ETIMEDOUT);
    cr_assert_eq(t.r[0].err, -ETIMEDOUT);
    cr_assert_str_eq(t.r[1].error, "no connection became free in time");
    cr_assert_str_eq(t.r[0].error, "no response head in time");
    cr_assert_geq(t.r[1].done_ms, 60);
    cr_assert_geq(t.r[0].done_ms, 150);
    cr_assert_lt(t.r[0].done_ms, 1000);
    cr_assert_eq(sv.eofs, 1, "a connection without its response head is closed");
    cr_assert_eq(t.end.open, 0);
    cr_assert_str_eq(sv.log, "GET /slow|", "the queued request was never sent");
}

static void script_stale(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    /* The second request arrives on the kept-alive connection; the server closes it without an
     * answer, as one that timed the connection out just then would. */
    srv_read(sv, fd);
    close(fd);
    if ((fd = srv_accept(sv)) < 0) return;
    srv_read(sv, fd);
    srv_write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond");
    srv_wait_close(sv, fd);
}

Test(http_client, stale_reused_connection_is_retried_once_on_a_fresh_one, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 2, .start = start_get, .after_done = next_get};
    run(&t, &sv, script_stale);
    cr_assert_eq(t.r[0].err, 0);
    cr_assert_eq(t.r[1].err, 0, "the retry is transparent");
    cr_assert_eq(t.r[1].body_len, 6);
    cr_assert_eq(memcmp(t.r[1].body, "second", 6), 0);
    cr_assert_str_eq(sv.log, "GET /first|GET /next|GET /next|", "sent twice, same request");
    cr_assert_eq(sv.accepted, 2);
    cr_assert_eq(t.end.stale_retries, 1);
    cr_assert_eq(t.end.connects, 2);
}

static void script_stale_twice(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    srv_read(sv, fd);
    close(fd);
    if ((fd = srv_accept(sv)) < 0) return;
    srv_read(sv, fd);
    close(fd); /* the fresh connection fails too: no second retry */
    int extra = srv_accept_within(sv, 100);
    if (extra >= 0) close(extra);
}

Test(http_client, a_retry_is_never_retried_again, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 2, .start = start_get, .after_done = next_get};
    run(&t, &sv, script_stale_twice);
    cr_assert_eq(t.r[1].err, -ECONNRESET);
    cr_assert_str_eq(t.r[1].error, "connection closed before any response");
    cr_assert_eq(sv.accepted, 2);
    cr_assert_eq(t.end.stale_retries, 1);
}

static void script_idle_close(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    close(fd); /* right after a keep-alive response */
    if ((fd = srv_accept(sv)) < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    srv_wait_close(sv, fd);
}

static void step_after_idle_close(tc_t *t) {
    nx_http_pool_stats(t->pool, &t->mid);
    /* Nothing is sent meanwhile: only the server's FIN can empty the pool (the idle timeout is
     * a minute). */
    if (!settled(t, t->mid.idle == 0)) return;
    submit(t, 1, "GET", "/again", 0);
}

static void first_done_then_wait(tc_t *t, rec_t *r) {
    if (r->idx == 0) nx_shard_timer_start(t->s, &t->step_timer, 5);
}

Test(http_client, eof_on_an_idle_connection_drops_it_at_once, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 2,
                     .start = start_get,
                     .after_done = first_done_then_wait,
                     .step = step_after_idle_close};
    run(&t, &sv, script_idle_close);
    cr_assert_eq(t.mid.idle, 0, "the server's close removed it from the pool");
    cr_assert_eq(t.mid.open, 0);
    cr_assert_eq(t.r[1].err, 0);
    cr_assert_eq(t.end.stale_retries, 0, "no stale connection was ever used");
    cr_assert_eq(t.end.connects, 2);
}

static void script_reset_mid_response(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    srv_read(sv, fd);
    srv_write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    srv_wait_client_events(sv, 2); /* the client has read "hello" and "abc" */
    srv_reset(fd);
    int extra = srv_accept_within(sv, 100);
    if (extra >= 0) close(extra);
}

Test(http_client, reset_after_response_bytes_is_not_retried, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 2, .start = start_get, .after_done = next_get};
    run(&t, &sv, script_reset_mid_response);
    cr_assert_not(sv.gave_up);
    cr_assert_eq(t.r[1].head_calls, 1);
    cr_assert_eq(t.r[1].body_len, 3);
    cr_assert_eq(t.r[1].err, -ECONNRESET);
    cr_assert(t.r[1].got_bytes, "callers see that the backend had started answering");
    cr_assert_eq(t.end.stale_retries, 0);
    cr_assert_eq(sv.accepted, 1, "no second connection: not retried");
}

static void script_fresh_close(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    close(fd);
    int extra = srv_accept_within(sv, 100);
    if (extra >= 0) close(extra);
}

Test(http_client, failure_on_a_fresh_connection_is_not_retried, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 1, .start = start_get};
    run(&t, &sv, script_fresh_close);
    cr_assert_eq(t.r[0].err, -ECONNRESET);
    cr_assert_not(t.r[0].got_bytes);
    cr_assert_eq(sv.accepted, 1);
    cr_assert_eq(t.end.stale_retries, 0);
}

/* ---- streaming, cancel, free ---- */

static void script_sse(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                  "Transfer-Encoding: chunked\r\n\r\nb\r\ndata: one\n\n\r\n");
    /* Each next event is written only once the client has the previous one: the body must be
     * delivered as it arrives, not at the end. */
    if (!srv_wait_client_events(sv, 1)) goto out;
    sleep_ms(350); /* past the request's timeout_ms, which ended with the head */
    srv_write(fd, "b\r\ndata: two\n\n\r\n");
    if (!srv_wait_client_events(sv, 2)) goto out;
    srv_write(fd, "d\r\ndata: three\n\n\r\n0\r\n\r\n");
out:
    srv_wait_close(sv, fd);
}

static void start_sse(tc_t *t) {
    nx_http_header_t h[] = {{NX_STR("Accept"), NX_STR("text/event-stream")}};
    nx_http_client_request_t req = {.method = "GET",
                                    .target = "/events",
                                    .headers = h,
                                    .header_count = 1,
                                    .timeout_ms = 300, /* the head only: the stream outlives it */
                                    .stream = true};
    submit_req(t, 0, &req);
}

Test(http_client, event_stream_is_delivered_incrementally_without_a_body_bound, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 1, .start = start_sse, .opts = {.limits = {.max_body = 16}}};
    run(&t, &sv, script_sse);
    cr_assert_not(sv.gave_up, "each event reached the client before the next was sent");
    cr_assert_eq(t.r[0].err, 0);
    cr_assert_str_eq(t.r[0].media, "text/event-stream");
    cr_assert_eq(t.r[0].data_calls, 3);
    const char *want = "data: one\n\ndata: two\n\ndata: three\n\n";
    cr_assert_eq(t.r[0].body_len, strlen(want), "longer than max_body, and fine");
    cr_assert_eq(memcmp(t.r[0].body, want, strlen(want)), 0);
}

static void start_cancel(tc_t *t) {
    t->r[0].cancel_in_data = true;
    submit(t, 0, "GET", "/big", 0);
}

static void step_after_cancel(tc_t *t) {
    submit(t, 1, "GET", "/after", 0);
}

static void script_cancel(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    srv_wait_close(sv, fd); /* the cancel closes it */
    if ((fd = srv_accept(sv)) < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    srv_wait_close(sv, fd);
}

Test(http_client, cancel_mid_body_closes_the_connection_silently, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 1, .start = start_cancel, .step = step_after_cancel};
    run(&t, &sv, script_cancel);
    cr_assert_eq(t.r[0].data_calls, 1);
    cr_assert_eq(t.r[0].done_calls, 0, "no callback after cancel, not even on_done");
    cr_assert_eq(t.mid.open, 0, "an incomplete response's connection is closed");
    cr_assert_eq(t.mid.busy, 0);
    cr_assert_eq(t.r[1].err, 0);
    cr_assert_eq(sv.accepted, 2);
    cr_assert_eq(sv.eofs, 2);
    cr_assert_str_eq(t.events, "h0 d0 h1 d1 D1 ");
}

static void start_free_in_flight(tc_t *t) {
    submit(t, 0, "GET", "/a", 0);
    submit(t, 1, "GET", "/b", 0);
    submit(t, 2, "GET", "/c", 0);
    nx_shard_timer_start(t->s, &t->step_timer, 5);
}

static void step_free(tc_t *t) {
    nx_http_pool_stats(t->pool, &t->mid);
    if (!settled(t, t->mid.busy == 1)) return; /* connected and sent */
    end_scenario(t); /* frees the pool with one request sent and two queued */
}

Test(http_client, freeing_the_pool_cancels_everything_in_flight, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 99,
                     .start = start_free_in_flight,
                     .step = step_free,
                     .opts = {.max_connections = 1}};
    run(&t, &sv, script_silent);
    cr_assert_eq(t.mid.busy, 1);
    cr_assert_eq(t.mid.pending, 2);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(t.r[i].done_calls, 1, "request %d ends exactly once", i);
        cr_assert_eq(t.r[i].err, -ECANCELED);
    }
    cr_assert_str_eq(t.events, "D0 D1 D2 ");
    cr_assert_eq(sv.eofs, 1);
}

static void script_head_then_hang(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    srv_wait_close(sv, fd);
}

static void start_free_in_head(tc_t *t) {
    t->r[0].free_in_head = true;
    submit(t, 0, "GET", "/a", 0);
    submit(t, 1, "GET", "/b", 0);
}

Test(http_client, freeing_the_pool_inside_a_callback_is_safe, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 99, .start = start_free_in_head, .opts = {.max_connections = 1}};
    run(&t, &sv, script_head_then_hang);
    /* The exchange inside on_head gets its on_done when on_head returns; no data after. */
    cr_assert_eq(t.r[0].done_calls, 1);
    cr_assert_eq(t.r[0].err, -ECANCELED);
    cr_assert_eq(t.r[0].data_calls, 0);
    cr_assert_eq(t.r[1].done_calls, 1);
    cr_assert_eq(t.r[1].err, -ECANCELED);
    cr_assert_str_eq(t.events, "h0 D1 D0 ");
    cr_assert_eq(sv.eofs, 1);
}

/* ---- idle timeout and re-resolution ---- */

static void step_idle(tc_t *t) {
    nx_http_pool_stats(t->pool, &t->mid);
    end_scenario(t);
}

static void wait_after_done(tc_t *t, rec_t *r) {
    nx_http_pool_stats(t->pool, &t->after);
    nx_shard_timer_start(t->s, &t->step_timer, 200);
}

static void script_one_then_wait(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read(sv, fd);
    srv_write(fd, OK5);
    srv_wait_close(sv, fd);
}

Test(http_client, idle_timeout_closes_idle_connections, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 99,
                     .start = start_get,
                     .after_done = wait_after_done,
                     .step = step_idle,
                     .opts = {.idle_timeout_ms = 50}};
    run(&t, &sv, script_one_then_wait);
    cr_assert_eq(t.r[0].err, 0);
    cr_assert_eq(t.after.idle, 1, "idle right after the response");
    cr_assert_eq(t.mid.idle, 0, "closed by the idle timeout");
    cr_assert_eq(t.mid.open, 0);
    cr_assert_eq(sv.eofs, 1);
}

static server_t g_second;

static void readdress_after_first(tc_t *t, rec_t *r) {
    if (r->idx != 0) return;
    t->set_addr_rc =
        nx_http_pool_set_addr(t->pool, (struct sockaddr *)&g_second.addr, sizeof(g_second.addr));
    nx_http_pool_stats(t->pool, &t->mid);
    submit(t, 1, "GET", "/moved", 0);
}

Test(http_client, set_addr_closes_idle_connections_and_moves_new_ones, .timeout = 10) {
    server_start(&g_second, script_one_then_wait);
    static server_t sv;
    static tc_t t = {.expect = 2, .start = start_get, .after_done = readdress_after_first};
    run(&t, &sv, script_one_then_wait);
    server_join(&g_second);
    cr_assert_eq(t.set_addr_rc, 0);
    cr_assert_eq(t.mid.idle, 0, "the idle connection to the old address was closed");
    cr_assert_eq(t.r[1].err, 0);
    cr_assert_eq(sv.accepted, 1);
    cr_assert_eq(sv.eofs, 1);
    cr_assert_eq(g_second.accepted, 1);
    cr_assert_str_eq(g_second.log, "GET /moved|");
}

/* ---- argument checks ---- */

static void start_bad_args(tc_t *t) {
    nx_http_header_t crlf[] = {{NX_STR("X-A"), NX_STR("1\r\nHost: evil")}};
    nx_http_client_request_t bad_header = {
        .method = "GET", .target = "/", .headers = crlf, .header_count = 1};
    submit_req(t, 0, &bad_header);
    submit(t, 1, "GET", "/a b", 0);
    submit(t, 2, "", "/", 0);
    submit(t, 3, "GET", "/ok", 0);
}

Test(http_client, header_injection_is_refused, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.expect = 1, .start = start_bad_args};
    run(&t, &sv, script_one_then_wait);
    cr_assert_eq(t.r[0].rc, -EINVAL);
    cr_assert_eq(t.r[1].rc, -EINVAL);
    cr_assert_eq(t.r[2].rc, -EINVAL);
    cr_assert_eq(t.r[3].rc, 0);
    cr_assert_str_eq(sv.log, "GET /ok|");
    cr_assert_eq(t.end.requests, 1);
}
