/* The outbound WebSocket client on a real shard against a scripted server on 127.0.0.1: the
 * upgrade request on the wire, the checks of the 101 answer (accept key, subprotocol, status),
 * masked frames with a fresh key each, frames that follow the 101 in the same read, fragments
 * reassembled around a ping, pong, both close handshakes and their timeout, every protocol error
 * with its close code (masked server frame 1002, bad UTF-8 1007, too big 1009), EOF without a
 * close frame, connect refused, handshake timeout, abort, and argument checks.
 *
 * Each test runs a server script on its own thread (blocking sockets, every wait bounded by
 * poll) and a client scenario on a shard; both sides record what they saw and the test asserts
 * after the shard and the server thread have ended. */
#include <criterion/criterion.h>

#include "nexus/errors.h"
#include "shard.h"
#include "ws.h"
#include "ws_client.h"

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

#define WAIT_MS 1000 /* the longest either side waits for the other before giving up */

/* ---- the scripted server ---- */

typedef struct server server_t;
typedef void (*script_fn)(server_t *sv);

/* One frame the server read from the client, copied. */
typedef struct sframe {
    int type; /* nx_ws_type_t; -1 = nothing came (EOF or timeout), NX_EPROTO = refused */
    char payload[256];
    size_t n;
    uint16_t close_code;
    char close_reason[128];
    uint8_t mask[4];
} sframe_t;

struct server {
    int lfd;
    struct sockaddr_in addr;
    pthread_t thread;
    script_fn script;
    char request[2048]; /* the upgrade request as read */
    char key[64];       /* its Sec-WebSocket-Key */
    nx_ws_parser_t parser;
    char in[4096];
    size_t in_len;
    sframe_t frames[8]; /* what the client sent, in order */
    int frame_count;
    bool saw_eof;      /* the client closed the connection */
    bool eof_first;    /* EOF came before any frame was read */
    bool gave_up;      /* a wait of the script ran out */
    const char *reply; /* for scripts that answer the upgrade in a way the test chooses */
};

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static bool wait_readable(int fd, int ms) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, ms) == 1;
}

static int srv_accept(server_t *sv) {
    if (!wait_readable(sv->lfd, WAIT_MS)) {
        sv->gave_up = true;
        return -1;
    }
    return accept(sv->lfd, NULL, NULL);
}

static void srv_write(int fd, const void *p, size_t n) {
    ssize_t rc = send(fd, p, n, MSG_NOSIGNAL);
    (void)rc;
}

static void srv_write_str(int fd, const char *s) {
    srv_write(fd, s, strlen(s));
}

/* Reads the upgrade request head into sv->request and its key into sv->key; false on failure. */
static bool srv_read_request(server_t *sv, int fd) {
    size_t len = 0;
    char *buf = sv->request;
    while (memmem(buf, len, "\r\n\r\n", 4) == NULL) {
        if (len + 1 >= sizeof(sv->request) || !wait_readable(fd, WAIT_MS)) {
            sv->gave_up = true;
            return false;
        }
        ssize_t n = recv(fd, buf + len, sizeof(sv->request) - 1 - len, 0);
        if (n <= 0) return false;
        len += (size_t)n;
    }
    buf[len] = '\0';
    const char *k = strcasestr(buf, "\r\nSec-WebSocket-Key: ");
    if (k != NULL) sscanf(k + 21, "%63[^\r]", sv->key);
    return true;
}

/* The accept value for the request's key. */
static void srv_accept_value(server_t *sv, char out[NX_WS_ACCEPT_LEN + 1]) {
    nx_ws_accept_key(nx_str_from(sv->key), out);
}

/* Answers the upgrade with 101 and <protocol_line> ("Sec-WebSocket-Protocol: mcp\r\n" or ""),
 * followed in the same write by <extra> bytes (frames), if any. */
static void srv_switch(server_t *sv, int fd, const char *protocol_line, const nx_buf_t *extra) {
    char accept[NX_WS_ACCEPT_LEN + 1];
    srv_accept_value(sv, accept);
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n",
                     accept, protocol_line);
    nx_buf_t b;
    nx_buf_init(&b);
    nx_buf_append(&b, head, (size_t)n);
    if (extra != NULL) nx_buf_append(&b, extra->data, extra->len);
    srv_write(fd, b.data, b.len);
    nx_buf_dispose(&b);
}

/* Sends one unmasked server frame (or masked with <mask> when not NULL). */
static void srv_frame(int fd, nx_ws_opcode_t op, bool fin, const void *p, size_t n,
                      const uint8_t *mask) {
    nx_buf_t b;
    nx_buf_init(&b);
    nx_ws_encode_frame(&b, op, fin, p, n, mask);
    srv_write(fd, b.data, b.len);
    nx_buf_dispose(&b);
}

static void srv_close_frame(int fd, uint16_t code, const char *reason) {
    nx_buf_t b;
    nx_buf_init(&b);
    nx_ws_encode_close(&b, code, reason, NULL);
    srv_write(fd, b.data, b.len);
    nx_buf_dispose(&b);
}

/* Reads the client's next frame with a server-role parser (which refuses unmasked frames) into
 * sv->frames; returns it (type -1 at EOF or when nothing came in time). */
static sframe_t *srv_read_frame(server_t *sv, int fd) {
    sframe_t *f = &sv->frames[sv->frame_count < 7 ? sv->frame_count++ : 7];
    memset(f, 0, sizeof(*f));
    f->type = -1;
    for (;;) {
        nx_ws_event_t ev;
        int rc = sv->in_len > 0 ? nx_ws_parse(&sv->parser, sv->in, sv->in_len, &ev) : NX_AGAIN;
        if (rc >= 0) {
            if (ev.type == NX_WS_NONE) { /* a fragment: keep reading */
                memmove(sv->in, sv->in + rc, sv->in_len - (size_t)rc);
                sv->in_len -= (size_t)rc;
                continue;
            }
            f->type = (int)ev.type;
            f->n = ev.payload.n < sizeof(f->payload) ? ev.payload.n : sizeof(f->payload);
            memcpy(f->payload, ev.payload.p, f->n);
            memcpy(f->mask, sv->parser.mask, 4);
            f->close_code = ev.close_code;
            snprintf(f->close_reason, sizeof(f->close_reason), "%.*s", (int)ev.close_reason.n,
                     ev.close_reason.p ? ev.close_reason.p : "");
            memmove(sv->in, sv->in + rc, sv->in_len - (size_t)rc);
            sv->in_len -= (size_t)rc;
            return f;
        }
        if (rc != NX_AGAIN) {
            f->type = NX_EPROTO;
            return f;
        }
        if (sv->in_len == sizeof(sv->in) || !wait_readable(fd, WAIT_MS)) {
            sv->gave_up = true;
            return f;
        }
        ssize_t n = recv(fd, sv->in + sv->in_len, sizeof(sv->in) - sv->in_len, 0);
        if (n <= 0) {
            sv->saw_eof = true;
            if (sv->frame_count == 1) sv->eof_first = true;
            return f;
        }
        sv->in_len += (size_t)n;
    }
}

/* Waits for the client to close the connection (EOF or reset), then closes it. */
static void srv_wait_eof(server_t *sv, int fd) {
    char b[256];
    for (;;) {
        if (!wait_readable(fd, WAIT_MS)) {
            sv->gave_up = true;
            break;
        }
        if (recv(fd, b, sizeof(b), 0) <= 0) {
            sv->saw_eof = true;
            break;
        }
    }
    close(fd);
}

static void *server_main(void *arg) {
    server_t *sv = arg;
    sv->script(sv);
    return NULL;
}

/* Starts <script> on a listening socket; <reply> is for the script to read. */
static void server_start(server_t *sv, script_fn script, const char *reply) {
    memset(sv, 0, sizeof(*sv));
    sv->script = script;
    sv->reply = reply;
    nx_ws_parser_init(&sv->parser, NX_WS_SERVER, 0);
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
    nx_ws_parser_dispose(&sv->parser);
}

/* ---- the client side (runs on the shard thread) ---- */

typedef struct tc tc_t;

struct tc {
    nx_shard_t *s;
    nx_ws_client_t *c;
    nx_ws_client_opts_t opts;
    struct sockaddr_in addr; /* where to connect (default: the server) */
    int connect_rc;
    char events[256];    /* "o m:<text> c " in callback order */
    char messages[1024]; /* every message, '|' after each */
    bool binary_seen;
    int open_calls, close_calls;
    int code;
    char reason[128];
    int err;
    bool opened_at_close;
    int send_after_close_rc; /* send_text after nx_ws_client_close */
    int send_before_open_rc; /* send_text right after connect */
    uint64_t t0, close_ms;
    bool guard_fired, finished;
    nx_timer_t guard_timer, step_timer;
    /* actions */
    const char *send_on_open[3]; /* texts sent from on_open */
    bool close_on_open;          /* nx_ws_client_close(1000, "done") from on_open */
    bool abort_on_message;
    uint32_t end_after_ms; /* ends the scenario this long after start (abort test) */
};

static void note(tc_t *t, const char *s) {
    size_t n = strlen(t->events);
    snprintf(t->events + n, sizeof(t->events) - n, "%s ", s);
}

static void end_scenario(tc_t *t) {
    if (t->finished) return;
    t->finished = true;
    nx_timer_stop(&t->guard_timer);
    nx_timer_stop(&t->step_timer);
    if (t->c != NULL) nx_ws_client_abort(t->c);
    t->c = NULL;
    nx_shard_stop(t->s);
}

static void c_on_open(nx_ws_client_t *c, void *arg) {
    tc_t *t = arg;
    t->open_calls++;
    note(t, "o");
    for (int i = 0; i < 3 && t->send_on_open[i] != NULL; i++)
        nx_ws_client_send_text(c, t->send_on_open[i], strlen(t->send_on_open[i]));
    if (t->close_on_open) {
        cr_expect_eq(nx_ws_client_close(c, 1000, "done"), 0);
        t->send_after_close_rc = nx_ws_client_send_text(c, "late", 4);
    }
}

static void c_on_message(nx_ws_client_t *c, const char *d, size_t n, bool binary, void *arg) {
    tc_t *t = arg;
    size_t l = strlen(t->messages);
    snprintf(t->messages + l, sizeof(t->messages) - l, "%.*s|", (int)n, d);
    t->binary_seen |= binary;
    note(t, "m");
    if (t->abort_on_message) {
        nx_ws_client_abort(c);
        nx_ws_client_abort(c); /* twice: harmless */
        t->c = NULL;
    }
}

static void c_on_close(nx_ws_client_t *c, int code, const char *reason, void *arg) {
    tc_t *t = arg;
    t->close_calls++;
    t->code = code;
    snprintf(t->reason, sizeof(t->reason), "%s", reason);
    t->err = nx_ws_client_error(c);
    t->opened_at_close = nx_ws_client_opened(c);
    t->close_ms = nx_shard_now_ms(t->s) - t->t0;
    note(t, "c");
    nx_ws_client_abort(c); /* a no-op inside on_close */
    t->c = NULL;
    end_scenario(t);
}

static const nx_ws_client_ops_t ops = {
    .on_open = c_on_open, .on_message = c_on_message, .on_close = c_on_close};

static void on_guard(nx_timer_t *tm) {
    tc_t *t = nx_container_of(tm, tc_t, guard_timer);
    t->guard_fired = true;
    end_scenario(t);
}

static void on_step(nx_timer_t *tm) {
    end_scenario(nx_container_of(tm, tc_t, step_timer));
}

static int scenario_start(nx_shard_t *s) {
    tc_t *t = s->user;
    t->s = s;
    t->t0 = nx_shard_now_ms(s);
    nx_timer_init(&t->guard_timer, on_guard);
    nx_timer_init(&t->step_timer, on_step);
    nx_shard_timer_start(s, &t->guard_timer, 2500);
    if (t->end_after_ms > 0) nx_shard_timer_start(s, &t->step_timer, t->end_after_ms);
    if (t->opts.host == NULL) t->opts.host = "example.test:80";
    if (t->opts.path == NULL) t->opts.path = "/ws";
    t->connect_rc = nx_ws_client_connect(s, (struct sockaddr *)&t->addr, sizeof(t->addr), &t->opts,
                                         &ops, t, &t->c);
    if (t->connect_rc < 0) {
        t->c = NULL;
        end_scenario(t);
        return 0;
    }
    t->send_before_open_rc = nx_ws_client_send_text(t->c, "early", 5);
    return 0;
}

/* After the loop stopped: let the closes complete so the client's memory goes (ASan checks). */
static void scenario_stop(nx_shard_t *s) {
    for (int i = 0; i < 200 && !nx_list_empty(&s->conns); i++)
        nx_loop_run_once(s->loop, 5);
    for (int i = 0; i < 5; i++)
        nx_loop_run_once(s->loop, 1);
}

/* Runs scenario <t> against a server running <script> (NULL: no server). */
static void run(tc_t *t, server_t *sv, script_fn script) {
    if (script != NULL) {
        server_start(sv, script, NULL);
        if (t->addr.sin_family == 0) t->addr = sv->addr;
    }
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
    if (script != NULL) server_join(sv);
    cr_assert_not(t->guard_fired, "the scenario did not finish (events: %s)", t->events);
}

#define PROTO_MCP "Sec-WebSocket-Protocol: mcp\r\n"

/* ---- the opening handshake ---- */

static void script_echo_then_server_close(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    if (!srv_read_request(sv, fd)) return;
    /* A first message in the same write as the 101 head. */
    nx_buf_t f;
    nx_buf_init(&f);
    nx_ws_encode_frame(&f, NX_WS_OP_TEXT, true, "welcome", 7, NULL);
    srv_switch(sv, fd, PROTO_MCP, &f);
    nx_buf_dispose(&f);
    sframe_t *a = srv_read_frame(sv, fd);
    sframe_t *b = srv_read_frame(sv, fd);
    /* Echo both back, then close. */
    srv_frame(fd, NX_WS_OP_TEXT, true, a->payload, a->n, NULL);
    srv_frame(fd, NX_WS_OP_TEXT, true, b->payload, b->n, NULL);
    srv_close_frame(fd, 1000, "bye");
    srv_read_frame(sv, fd); /* the echoed close */
    close(fd);              /* the server closes TCP first */
}

Test(ws_client, handshake_request_messages_both_ways_and_a_server_close, .timeout = 10) {
    static server_t sv;
    static tc_t t;
    nx_http_header_t h[] = {{NX_STR("Authorization"), NX_STR("Bearer abc")}};
    t.opts = (nx_ws_client_opts_t){.host = "127.0.0.1:9",
                                   .path = "/mcp?x=1",
                                   .subprotocol = "mcp",
                                   .headers = h,
                                   .header_count = 1};
    t.send_on_open[0] = "{\"id\":1}";
    t.send_on_open[1] = "second";
    run(&t, &sv, script_echo_then_server_close);

    cr_assert_not(sv.gave_up, "the server waited in vain (events: %s)", t.events);
    cr_assert(strncmp(sv.request, "GET /mcp?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n", 42) == 0,
              "request line and Host first: %s", sv.request);
    cr_assert(strstr(sv.request, "\r\nUpgrade: websocket\r\n") != NULL);
    cr_assert(strstr(sv.request, "\r\nConnection: Upgrade\r\n") != NULL);
    cr_assert(strstr(sv.request, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
    cr_assert(strstr(sv.request, "\r\nSec-WebSocket-Protocol: mcp\r\n") != NULL);
    cr_assert(strstr(sv.request, "\r\nAuthorization: Bearer abc\r\n") != NULL);
    cr_assert_eq(strlen(sv.key), 24, "the key is base64 of 16 bytes: '%s'", sv.key);
    cr_assert_eq(sv.key[22], '=');

    cr_assert_eq(t.connect_rc, 0);
    cr_assert_eq(t.send_before_open_rc, NX_ECLOSED, "nothing can be sent before the 101");
    cr_assert_eq(sv.frames[0].type, NX_WS_TEXT, "masked, as the server-role parser demands");
    cr_assert_eq(sv.frames[0].n, 8);
    cr_assert_eq(memcmp(sv.frames[0].payload, "{\"id\":1}", 8), 0);
    cr_assert_eq(sv.frames[1].type, NX_WS_TEXT);
    cr_assert_neq(memcmp(sv.frames[0].mask, sv.frames[1].mask, 4), 0, "a fresh mask per frame");
    cr_assert_eq(sv.frames[2].type, NX_WS_CLOSE, "the client echoes the server's close");
    cr_assert_eq(sv.frames[2].close_code, 1000);

    cr_assert_str_eq(t.messages, "welcome|{\"id\":1}|second|",
                     "the frame that came with the 101 head is delivered, after on_open");
    cr_assert_str_eq(t.events, "o m m m c ");
    cr_assert_eq(t.close_calls, 1);
    cr_assert_eq(t.code, 1000);
    cr_assert_str_eq(t.reason, "bye");
    cr_assert_eq(t.err, 0, "a close handshake is a clean end");
    cr_assert(t.opened_at_close);
    cr_assert_not(t.binary_seen);
}

static void script_reply(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    if (!srv_read_request(sv, fd)) return;
    char accept[NX_WS_ACCEPT_LEN + 1];
    srv_accept_value(sv, accept);
    char head[512];
    snprintf(head, sizeof(head), sv->reply, accept);
    srv_write_str(fd, head);
    srv_read_frame(sv, fd); /* nothing may come: the client gives up */
    close(fd);
}

/* Runs a handshake whose answer is <reply> (a format with one %s for the right accept value),
 * asking for <protocol>; returns the finished scenario. */
static tc_t *refused(const char *reply, const char *protocol) {
    static server_t sv;
    static tc_t t;
    memset(&t, 0, sizeof(t));
    t.opts.subprotocol = protocol;
    server_start(&sv, script_reply, reply);
    t.addr = sv.addr;
    nx_shard_opts_t o = {.ring_entries = 256,
                         .buf_count = 64,
                         .buf_size = 4096,
                         .mailbox_capacity = 16,
                         .on_start = scenario_start,
                         .on_stop = scenario_stop,
                         .user = &t};
    nx_shard_t *s = NULL;
    cr_assert_eq(nx_shard_start(0, &o, &s), 0);
    nx_shard_join_free(s);
    server_join(&sv);
    cr_assert_not(t.guard_fired, "the scenario did not finish (events: %s)", t.events);
    cr_assert_eq(t.open_calls, 0, "a refused handshake never opens");
    cr_assert_eq(t.close_calls, 1);
    cr_assert_eq(t.code, NX_WS_CLOSE_ABNORMAL);
    cr_assert_eq(t.err, NX_EPROTO);
    cr_assert_not(t.opened_at_close);
    cr_assert_eq(sv.frames[0].type, -1, "no frame is sent to a server that failed the handshake");
    cr_assert(sv.saw_eof, "the client closes the connection");
    return &t;
}

#define SWITCH_HEAD                                                                                \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"

Test(ws_client, a_wrong_accept_key_fails_the_handshake, .timeout = 10) {
    tc_t *t = refused(SWITCH_HEAD "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==%.0s\r\n"
                                  "Sec-WebSocket-Protocol: mcp\r\n\r\n",
                      "mcp");
    cr_assert(strstr(t->reason, "Sec-WebSocket-Accept") != NULL, "%s", t->reason);
}

Test(ws_client, a_missing_subprotocol_fails_the_handshake, .timeout = 10) {
    tc_t *t = refused(SWITCH_HEAD "Sec-WebSocket-Accept: %s\r\n\r\n", "mcp");
    cr_assert(strstr(t->reason, "subprotocol") != NULL, "%s", t->reason);
}

Test(ws_client, another_subprotocol_fails_the_handshake, .timeout = 10) {
    tc_t *t = refused(
        SWITCH_HEAD "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: chat\r\n\r\n", "mcp");
    cr_assert(strstr(t->reason, "subprotocol") != NULL, "%s", t->reason);
}

Test(ws_client, a_subprotocol_nobody_asked_for_fails_the_handshake, .timeout = 10) {
    tc_t *t = refused(SWITCH_HEAD "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: mcp\r\n\r\n",
                      NULL);
    cr_assert(strstr(t->reason, "not offered") != NULL, "%s", t->reason);
}

Test(ws_client, an_http_error_instead_of_101_fails_with_its_status, .timeout = 10) {
    tc_t *t = refused("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n%.0s\r\n", "mcp");
    cr_assert(strstr(t->reason, "HTTP 404") != NULL, "%s", t->reason);
}

static void script_silent(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    srv_read_request(sv, fd);
    srv_wait_eof(sv, fd); /* never answers */
}

Test(ws_client, a_server_that_never_answers_the_upgrade_times_out, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.opts = {.connect_timeout_ms = 150}};
    run(&t, &sv, script_silent);
    cr_assert_eq(t.close_calls, 1);
    cr_assert_eq(t.err, -ETIMEDOUT);
    cr_assert_eq(t.code, NX_WS_CLOSE_ABNORMAL);
    cr_assert(t.close_ms >= 140 && t.close_ms < 800, "gave up after %llu ms",
              (unsigned long long)t.close_ms);
    cr_assert(sv.saw_eof, "the connection is closed");
}

Test(ws_client, connect_refused_is_reported_once, .timeout = 10) {
    static tc_t t;
    /* A port with nothing listening: bind one, then close it. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    t.addr.sin_family = AF_INET;
    t.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&t.addr, sizeof(t.addr)), 0);
    socklen_t len = sizeof(t.addr);
    getsockname(fd, (struct sockaddr *)&t.addr, &len);
    close(fd);
    run(&t, NULL, NULL);
    cr_assert_eq(t.connect_rc, 0, "the connect is asynchronous: nothing is reported inside it");
    cr_assert_eq(t.close_calls, 1);
    cr_assert_eq(t.open_calls, 0);
    cr_assert_eq(t.err, -ECONNREFUSED);
    cr_assert_eq(t.code, NX_WS_CLOSE_ABNORMAL);
    cr_assert(strstr(t.reason, "refused") != NULL, "%s", t.reason);
}

/* ---- messages and control frames ---- */

static void script_fragments(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    if (!srv_read_request(sv, fd)) return;
    srv_switch(sv, fd, "", NULL);
    /* "héllo wörld" in three fragments, a UTF-8 sequence split between two of them, a ping in
     * the middle, each fragment in its own write. */
    srv_frame(fd, NX_WS_OP_TEXT, false, "h\xc3", 2, NULL);
    sleep_ms(10);
    srv_frame(fd, NX_WS_OP_PING, true, "p1", 2, NULL);
    sleep_ms(10);
    srv_frame(fd, NX_WS_OP_CONT, false, "\xa9llo w", 6, NULL);
    sleep_ms(10);
    srv_frame(fd, NX_WS_OP_CONT, true, "\xc3\xb6rld", 5, NULL);
    srv_frame(fd, NX_WS_OP_BINARY, true, "bin", 3, NULL);
    srv_read_frame(sv, fd); /* the pong */
    srv_close_frame(fd, 1001, "going");
    srv_read_frame(sv, fd);
    close(fd);
}

Test(ws_client, fragments_are_reassembled_and_a_ping_in_between_is_answered, .timeout = 10) {
    static server_t sv;
    static tc_t t;
    run(&t, &sv, script_fragments);
    cr_assert_not(sv.gave_up);
    cr_assert_str_eq(t.messages, "h\xc3\xa9llo w\xc3\xb6rld|bin|", "one message per message");
    cr_assert(t.binary_seen);
    cr_assert_eq(sv.frames[0].type, NX_WS_PONG, "the ping is answered with a (masked) pong");
    cr_assert_eq(sv.frames[0].n, 2);
    cr_assert_eq(memcmp(sv.frames[0].payload, "p1", 2), 0, "carrying the ping's payload");
    cr_assert_eq(sv.frames[1].type, NX_WS_CLOSE);
    cr_assert_eq(sv.frames[1].close_code, 1001, "the close code is echoed");
    cr_assert_eq(t.code, 1001);
    cr_assert_str_eq(t.reason, "going");
    cr_assert_eq(t.err, 0);
}

/* ---- protocol errors: the close frame says which ---- */

static void script_bad_frame(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    if (!srv_read_request(sv, fd)) return;
    srv_switch(sv, fd, "", NULL);
    srv_frame(fd, NX_WS_OP_TEXT, true, "fine", 4, NULL);
    sleep_ms(10);
    const char *which = sv->reply;
    static const uint8_t mask[4] = {1, 2, 3, 4};
    if (strcmp(which, "masked") == 0)
        srv_frame(fd, NX_WS_OP_TEXT, true, "hidden", 6, mask);
    else if (strcmp(which, "utf8") == 0)
        srv_frame(fd, NX_WS_OP_TEXT, true, "bad \xc0\xaf", 6, NULL);
    else if (strcmp(which, "big") == 0)
        srv_frame(fd, NX_WS_OP_TEXT, true, "0123456789abcdefg", 17, NULL);
    srv_read_frame(sv, fd); /* the client's close frame */
    srv_wait_eof(sv, fd);
}

/* The client receives "fine" and then the bad frame <which>; returns the scenario. */
static tc_t *protocol_error(const char *which) {
    static server_t sv;
    static tc_t t;
    memset(&t, 0, sizeof(t));
    t.opts.max_message = 16;
    server_start(&sv, script_bad_frame, which);
    t.addr = sv.addr;
    nx_shard_opts_t o = {.ring_entries = 256,
                         .buf_count = 64,
                         .buf_size = 4096,
                         .mailbox_capacity = 16,
                         .on_start = scenario_start,
                         .on_stop = scenario_stop,
                         .user = &t};
    nx_shard_t *s = NULL;
    cr_assert_eq(nx_shard_start(0, &o, &s), 0);
    nx_shard_join_free(s);
    server_join(&sv);
    cr_assert_not(t.guard_fired, "the scenario did not finish (events: %s)", t.events);
    cr_assert_not(sv.gave_up, "the server waited in vain (events: %s)", t.events);
    cr_assert_str_eq(t.messages, "fine|", "what came before the bad frame was delivered");
    cr_assert_eq(t.close_calls, 1);
    cr_assert_eq(t.err, NX_EPROTO);
    cr_assert(t.opened_at_close);
    cr_assert_eq(sv.frames[0].type, NX_WS_CLOSE, "the client sends a close frame");
    cr_assert_eq(sv.frames[0].close_code, t.code, "with the code it reports");
    cr_assert(sv.saw_eof);
    return &t;
}

Test(ws_client, a_masked_server_frame_is_a_protocol_error_1002, .timeout = 10) {
    tc_t *t = protocol_error("masked");
    cr_assert_eq(t->code, NX_WS_CLOSE_PROTOCOL);
    cr_assert(strstr(t->reason, "masked") != NULL, "%s", t->reason);
}

Test(ws_client, invalid_utf8_in_a_text_message_closes_with_1007, .timeout = 10) {
    tc_t *t = protocol_error("utf8");
    cr_assert_eq(t->code, NX_WS_CLOSE_INVALID_DATA);
}

Test(ws_client, a_message_over_the_limit_closes_with_1009, .timeout = 10) {
    tc_t *t = protocol_error("big");
    cr_assert_eq(t->code, NX_WS_CLOSE_TOO_BIG);
}

/* ---- closing ---- */

static void script_client_closes(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    if (!srv_read_request(sv, fd)) return;
    srv_switch(sv, fd, "", NULL);
    srv_read_frame(sv, fd); /* the client's close */
    /* A message sent before the server saw the close still reaches the client. */
    srv_frame(fd, NX_WS_OP_TEXT, true, "last words", 10, NULL);
    if (strcmp(sv->reply, "answer") == 0) {
        srv_close_frame(fd, 1000, "");
        close(fd);
    } else {
        srv_wait_eof(sv, fd); /* never answers the close */
    }
}

Test(ws_client, the_client_close_handshake, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.close_on_open = true};
    server_start(&sv, script_client_closes, "answer");
    t.addr = sv.addr;
    run(&t, &sv, NULL);
    server_join(&sv);
    cr_assert_not(sv.gave_up);
    cr_assert_eq(sv.frames[0].type, NX_WS_CLOSE, "masked close frame");
    cr_assert_eq(sv.frames[0].close_code, 1000);
    cr_assert_str_eq(sv.frames[0].close_reason, "done");
    cr_assert_eq(t.send_after_close_rc, NX_ECLOSED, "no message after our close frame");
    cr_assert_str_eq(t.messages, "last words|");
    cr_assert_str_eq(t.events, "o m c ");
    cr_assert_eq(t.code, 1000);
    cr_assert_eq(t.err, 0);
}

Test(ws_client, a_close_the_server_never_answers_times_out, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.close_on_open = true, .opts = {.close_timeout_ms = 200}};
    server_start(&sv, script_client_closes, "ignore");
    t.addr = sv.addr;
    run(&t, &sv, NULL);
    server_join(&sv);
    cr_assert_eq(t.close_calls, 1);
    cr_assert_eq(t.err, -ETIMEDOUT);
    cr_assert_eq(t.code, NX_WS_CLOSE_ABNORMAL);
    cr_assert(t.close_ms >= 190 && t.close_ms < 900, "after %llu ms",
              (unsigned long long)t.close_ms);
    cr_assert(sv.saw_eof, "then the connection is closed");
}

static void script_drop(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    if (!srv_read_request(sv, fd)) return;
    srv_switch(sv, fd, "", NULL);
    srv_frame(fd, NX_WS_OP_TEXT, true, "one", 3, NULL);
    close(fd); /* no close frame */
}

Test(ws_client, eof_without_a_close_frame_is_abnormal, .timeout = 10) {
    static server_t sv;
    static tc_t t;
    run(&t, &sv, script_drop);
    cr_assert_str_eq(t.messages, "one|");
    cr_assert_eq(t.close_calls, 1);
    cr_assert_eq(t.code, NX_WS_CLOSE_ABNORMAL);
    cr_assert_eq(t.err, -ECONNRESET);
}

static void script_two_messages(server_t *sv) {
    int fd = srv_accept(sv);
    if (fd < 0) return;
    if (!srv_read_request(sv, fd)) return;
    srv_switch(sv, fd, "", NULL);
    nx_buf_t b;
    nx_buf_init(&b);
    nx_ws_encode_frame(&b, NX_WS_OP_TEXT, true, "first", 5, NULL);
    nx_ws_encode_frame(&b, NX_WS_OP_TEXT, true, "second", 6, NULL);
    srv_write(fd, b.data, b.len);
    nx_buf_dispose(&b);
    srv_read_frame(sv, fd); /* nothing: the client aborts */
    close(fd);
}

Test(ws_client, abort_inside_a_callback_stops_every_callback, .timeout = 10) {
    static server_t sv;
    static tc_t t = {.abort_on_message = true, .end_after_ms = 150};
    run(&t, &sv, script_two_messages);
    cr_assert_str_eq(t.messages, "first|", "nothing after the abort, not even the next message");
    cr_assert_eq(t.close_calls, 0, "no on_close after an abort");
    cr_assert(sv.saw_eof, "the connection is closed at once, without a close frame");
    cr_assert_eq(sv.frames[0].type, -1);
}

/* ---- arguments ---- */

Test(ws_client, bad_arguments_are_refused_before_anything_starts) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    nx_ws_client_t *c = NULL;
    nx_http_header_t crlf[] = {{NX_STR("X-A"), NX_STR("b\r\nEvil: 1")}};
    nx_http_header_t host[] = {{NX_STR("host"), NX_STR("x")}};
    nx_ws_client_opts_t ok = {.host = "h:1", .path = "/"};
    nx_ws_client_opts_t o = ok;
    const struct sockaddr *sa = (struct sockaddr *)&a;
    /* No shard is needed: nothing starts. */
    cr_assert_eq(nx_ws_client_connect(NULL, sa, sizeof(a), &o, NULL, NULL, &c), -EINVAL);
    o.path = NULL;
    cr_assert_eq(nx_ws_client_connect(NULL, sa, sizeof(a), &o, &ops, NULL, &c), -EINVAL);
    o = ok;
    o.path = "/a b";
    cr_assert_eq(nx_ws_client_connect(NULL, sa, sizeof(a), &o, &ops, NULL, &c), -EINVAL);
    o = ok;
    o.headers = crlf;
    o.header_count = 1;
    cr_assert_eq(nx_ws_client_connect(NULL, sa, sizeof(a), &o, &ops, NULL, &c), -EINVAL);
    o.headers = host;
    cr_assert_eq(nx_ws_client_connect(NULL, sa, sizeof(a), &o, &ops, NULL, &c), -EINVAL,
                 "Host is written by the client");
    o = ok;
    o.subprotocol = "a, b";
    cr_assert_eq(nx_ws_client_connect(NULL, sa, sizeof(a), &o, &ops, NULL, &c), -EINVAL);
    struct sockaddr bad = {.sa_family = AF_APPLETALK};
    cr_assert_eq(nx_ws_client_connect(NULL, &bad, sizeof(bad), &ok, &ops, NULL, &c), -EINVAL);
    cr_assert_null(c, "no client was made");
}

/* ---- the handshake check, without sockets ---- */

static int check(const char *head, const char *accept, const char *protocol) {
    nx_http_response_parser_t p;
    nx_http_response_parser_init(&p, NULL, false);
    nx_http_response_event_t ev;
    int rc = nx_http_response_parse(&p, head, strlen(head), &ev);
    cr_assert_gt(rc, 0);
    const char *why = NULL;
    return nx_ws_client_check_handshake(ev.head, accept, protocol, &why);
}

Test(ws_client, the_handshake_check_reads_token_lists_and_refuses_extensions) {
    const char *acc = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    cr_assert_eq(check("HTTP/1.1 101 OK\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade"
                       "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                       acc, NULL),
                 0, "tokens are case-insensitive and found in lists");
    cr_assert_eq(check("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                       "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                       acc, NULL),
                 NX_EPROTO, "an extension nobody offered");
    cr_assert_eq(check("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                       acc, NULL),
                 NX_EPROTO, "no Connection: upgrade");
    cr_assert_eq(check("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                       acc, NULL),
                 NX_EPROTO, "two accept values");
}
