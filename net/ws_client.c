/* The outbound WebSocket client (see ws_client.h). The life of a client:
 *   NX_WSC_CONNECTING --connected--> NX_WSC_HANDSHAKE --valid 101--> NX_WSC_OPEN
 *   NX_WSC_OPEN --nx_ws_client_close--> NX_WSC_CLOSING --server's close frame--> NX_WSC_CLOSED
 *   NX_WSC_OPEN --server's close frame (echoed) or a protocol error (close frame sent)--> CLOSED
 *   any --failure, timeout, EOF, abort--> NX_WSC_CLOSED
 * In NX_WSC_CLOSED the transport is being released (the connect cancelled, the connection
 * lingering until the server's FIN or closed); once nothing in the kernel refers to the client,
 * on_close is reported from a 0 ms timer (so never inside an API call) and the client is freed.
 * <depth> keeps it alive while one of its callbacks is on the stack. */
#include "ws_client.h"

#include "conn.h"
#include "http_lex.h"
#include "nexus/errors.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_CLOSE_TIMEOUT_MS 1000
#define REASON_MAX 128

typedef enum nx_wsc_state {
    NX_WSC_CONNECTING, /* the connect is in the kernel; <fd> is ours */
    NX_WSC_HANDSHAKE,  /* connected, the upgrade request sent, reading the response head */
    NX_WSC_OPEN,       /* messages flow both ways */
    NX_WSC_CLOSING,    /* our close frame is sent; waiting for the server's */
    NX_WSC_CLOSED,     /* over: the transport is being released, then on_close */
} nx_wsc_state_t;

/* Owned by its user until on_close returns (or abort); the memory goes when, in addition, the
 * connect and the connection have released it. */
struct nx_ws_client {
    nx_shard_t *shard;
    nx_ws_client_ops_t ops;
    void *arg;
    nx_wsc_state_t state;
    int fd;          /* while connecting; then the nx_conn_t owns it */
    nx_conn_t *conn; /* once connected, until its on_free */
    nx_op_t connect_op;
    bool connecting; /* the connect is in the kernel */
    bool aborted;    /* no callback any more */
    bool reporting;  /* on_close is running */
    bool opened;
    uint32_t depth; /* callbacks of ours on the stack */
    uint32_t close_timeout_ms;
    struct sockaddr_storage addr; /* the connect reads it until it completes */
    socklen_t addrlen;
    nx_buf_t req;                      /* the upgrade request, until it is queued */
    char accept[NX_WS_ACCEPT_LEN + 1]; /* the Sec-WebSocket-Accept we expect */
    char *subprotocol;                 /* asked for, or NULL */
    nx_http_response_parser_t *resp;   /* during the handshake only (it is large) */
    nx_ws_parser_t parser;
    nx_buf_t in;             /* bytes of a head or frame not yet complete */
    nx_timer_t deadline;     /* the opening handshake, or the wait for the server's close */
    nx_timer_t report_timer; /* on_close, outside any call */
    /* the outcome, set once by the first cause */
    bool ended;
    int err;
    int code;
    char reason[REASON_MAX];
};

static void on_connect(nx_op_t *op, int res, unsigned flags, unsigned buf_id);
static void conn_on_data(nx_conn_t *conn, char *data, size_t len);
static void conn_on_eof(nx_conn_t *conn, int err);
static void conn_on_free(nx_conn_t *conn);

static const nx_conn_ops_t client_conn_ops = {
    .on_data = conn_on_data, .on_eof = conn_on_eof, .on_free = conn_on_free};

/* ---- ending ---- */

static void client_free(nx_ws_client_t *c) {
    nx_timer_stop(&c->deadline);
    nx_timer_stop(&c->report_timer);
    nx_buf_dispose(&c->req);
    nx_buf_dispose(&c->in);
    nx_ws_parser_dispose(&c->parser);
    free(c->resp);
    free(c->subprotocol);
    free(c);
}

/* Reports (from the timer) or frees <c> once nothing in the kernel and no callback of ours on
 * the stack refers to it any more. */
static void release_check(nx_ws_client_t *c) {
    if (c->state != NX_WSC_CLOSED || c->depth > 0 || c->connecting || c->conn != NULL) return;
    if (c->aborted) {
        client_free(c);
        return;
    }
    if (!nx_timer_active(&c->report_timer)) nx_shard_timer_start(c->shard, &c->report_timer, 0);
}

static void on_report(nx_timer_t *t) {
    nx_ws_client_t *c = nx_container_of(t, nx_ws_client_t, report_timer);
    c->reporting = true;
    c->ops.on_close(c, c->code, c->reason, c->arg);
    client_free(c);
}

/* Records why <c> ends; the first cause wins. */
static void set_outcome(nx_ws_client_t *c, int err, int code, const char *reason) {
    if (c->ended) return;
    c->ended = true;
    c->err = err;
    c->code = code;
    snprintf(c->reason, sizeof(c->reason), "%s", reason != NULL ? reason : "");
}

/* Ends <c> now: no close handshake (any more), the connect or connection closed at once. */
static void fail_now(nx_ws_client_t *c, int err, const char *reason) {
    set_outcome(c, err, NX_WS_CLOSE_ABNORMAL, reason);
    c->state = NX_WSC_CLOSED;
    nx_timer_stop(&c->deadline);
    if (c->connecting) nx_loop_cancel(c->shard->loop, &c->connect_op); /* on_connect follows */
    if (c->conn != NULL) nx_conn_close(c->conn);                       /* conn_on_free follows */
    release_check(c);
}

/* Ends <c> after the close frame in its output: the rest is flushed, the write side shut, and
 * the connection lingers until the server closes its side (RFC 6455 §7.1.1: the server closes
 * TCP first) or close_timeout_ms pass. */
static void close_after_frame(nx_ws_client_t *c) {
    c->state = NX_WSC_CLOSED;
    nx_timer_stop(&c->deadline);
    nx_conn_close_graceful(c->conn, c->close_timeout_ms);
}

/* The server broke the protocol: close frame with <code>, then the connection goes. */
static void fail_protocol(nx_ws_client_t *c, uint16_t code, const char *why) {
    set_outcome(c, code == NX_WS_CLOSE_INTERNAL ? -ENOMEM : NX_EPROTO, code, why);
    uint8_t key[4];
    /* After our own close frame nothing more may be sent. */
    if (c->state == NX_WSC_OPEN && RAND_bytes(key, sizeof(key)) == 1)
        nx_ws_encode_close(nx_conn_out(c->conn), code, why, key);
    close_after_frame(c);
}

/* ---- the opening handshake ---- */

/* True if some field <name> of <head> lists <token> (lowercase). */
static bool header_has_token(const nx_http_response_t *head, const char *name, const char *token) {
    size_t tl = strlen(token);
    for (uint32_t i = 0; i < head->header_count; i++) {
        const nx_http_header_t *h = &head->headers[i];
        if (!nx_str_eq_lit_nocase(h->name, name)) continue;
        size_t k = 0;
        nx_str_t tok;
        while (nx_http_next_token(h->value.p, h->value.n, &k, &tok))
            if (nx_http_eq_lower_n(tok, token, tl)) return true;
    }
    return false;
}

/* How many fields <name> <head> has, and the first one's value in *<first>. */
static int header_count(const nx_http_response_t *head, const char *name, nx_str_t *first) {
    int n = 0;
    *first = (nx_str_t){NULL, 0};
    for (uint32_t i = 0; i < head->header_count; i++) {
        if (!nx_str_eq_lit_nocase(head->headers[i].name, name)) continue;
        if (n++ == 0) *first = head->headers[i].value;
    }
    return n;
}

int nx_ws_client_check_handshake(const nx_http_response_t *head, const char *accept,
                                 const char *subprotocol, const char **why) {
    nx_str_t v;
    *why = NULL;
    if (head->status != 101)
        *why = "the server did not switch protocols (no 101 answer)";
    else if (!header_has_token(head, "upgrade", "websocket"))
        *why = "the 101 answer lacks Upgrade: websocket";
    else if (!header_has_token(head, "connection", "upgrade"))
        *why = "the 101 answer lacks Connection: upgrade";
    else if (header_count(head, "sec-websocket-accept", &v) != 1 ||
             !nx_str_eq(v, nx_str_from(accept)))
        *why = "Sec-WebSocket-Accept does not match the key sent";
    else if (header_count(head, "sec-websocket-extensions", &v) != 0)
        *why = "the server chose an extension that was not offered";
    else if (subprotocol == NULL && header_count(head, "sec-websocket-protocol", &v) != 0)
        *why = "the server chose a subprotocol that was not offered";
    else if (subprotocol != NULL && (header_count(head, "sec-websocket-protocol", &v) != 1 ||
                                     !nx_str_eq(v, nx_str_from(subprotocol))))
        *why = "the server did not accept the subprotocol asked for";
    return *why == NULL ? 0 : NX_EPROTO;
}

static void handle_frames(nx_ws_client_t *c, char *buf, size_t n, bool from_in);

/* The response head arrives: <buf>[0..<n>) are the unconsumed bytes (c->in when <from_in>). */
static void handle_handshake(nx_ws_client_t *c, char *buf, size_t n, bool from_in) {
    size_t off = 0;
    for (;;) {
        nx_http_response_event_t ev;
        int rc = nx_http_response_parse(c->resp, buf + off, n - off, &ev);
        if (rc == NX_AGAIN) break;
        if (rc < 0) {
            fail_now(c, NX_EPROTO, c->resp->error_message);
            return;
        }
        off += (size_t)rc;
        if (ev.kind != NX_HTTP_RESP_HEAD) continue; /* 1xx other than 101: skipped */
        const char *why = NULL;
        if (nx_ws_client_check_handshake(ev.head, c->accept, c->subprotocol, &why) < 0) {
            char m[REASON_MAX];
            if (ev.head->status != 101)
                snprintf(m, sizeof(m), "the server answered HTTP %u instead of 101",
                         (unsigned)ev.head->status);
            fail_now(c, NX_EPROTO, ev.head->status != 101 ? m : why);
            return;
        }
        free(c->resp);
        c->resp = NULL;
        nx_timer_stop(&c->deadline);
        c->state = NX_WSC_OPEN;
        c->opened = true;
        /* Frames may follow the head in the same read: they are the server's first messages,
         * handed out after on_open. */
        if (from_in) {
            nx_buf_consume(&c->in, off);
            buf = c->in.data;
            n = c->in.len;
            off = 0;
        }
        c->ops.on_open(c, c->arg);
        if (c->aborted || (c->state != NX_WSC_OPEN && c->state != NX_WSC_CLOSING)) return;
        if (off < n) {
            handle_frames(c, buf + off, n - off, from_in);
        } else if (from_in) {
            nx_buf_clear(&c->in);
        }
        return;
    }
    if (from_in) {
        nx_buf_consume(&c->in, off);
    } else if (off < n && nx_buf_append(&c->in, buf + off, n - off) < 0) {
        fail_now(c, -ENOMEM, "out of memory");
    }
}

/* ---- frames ---- */

static int send_frame(nx_ws_client_t *c, nx_ws_opcode_t op, const void *p, size_t n) {
    uint8_t key[4];
    if (RAND_bytes(key, sizeof(key)) != 1) return -EIO;
    int rc = nx_ws_encode_frame(nx_conn_out(c->conn), op, true, p, n, key);
    if (rc < 0) return rc;
    nx_conn_flush(c->conn);
    return 0;
}

static void handle_event(nx_ws_client_t *c, const nx_ws_event_t *ev) {
    switch (ev->type) {
    case NX_WS_TEXT:
    case NX_WS_BINARY:
        c->ops.on_message(c, ev->payload.p, ev->payload.n, ev->type == NX_WS_BINARY, c->arg);
        break;
    case NX_WS_PING:
        if (c->state == NX_WSC_OPEN) send_frame(c, NX_WS_OP_PONG, ev->payload.p, ev->payload.n);
        break;
    case NX_WS_PONG:
    case NX_WS_NONE:
        break;
    case NX_WS_CLOSE: {
        char reason[REASON_MAX];
        snprintf(reason, sizeof(reason), "%.*s", (int)ev->close_reason.n,
                 ev->close_reason.p != NULL ? ev->close_reason.p : "");
        set_outcome(c, 0, ev->close_code, reason);
        if (c->state == NX_WSC_OPEN) {
            /* Echo the server's code (RFC 6455 §5.5.1); none when it sent none. */
            uint8_t key[4];
            uint16_t code = ev->close_code == NX_WS_CLOSE_NO_STATUS ? 0 : ev->close_code;
            if (RAND_bytes(key, sizeof(key)) == 1)
                nx_ws_encode_close(nx_conn_out(c->conn), code, NULL, key);
        }
        close_after_frame(c);
        break;
    }
    }
}

/* Frames from <buf>[0..<n>) (c->in when <from_in>): each delivered, the rest kept. */
static void handle_frames(nx_ws_client_t *c, char *buf, size_t n, bool from_in) {
    size_t off = 0;
    while (off < n && !c->aborted && (c->state == NX_WSC_OPEN || c->state == NX_WSC_CLOSING)) {
        nx_ws_event_t ev;
        int rc = nx_ws_parse(&c->parser, buf + off, n - off, &ev);
        if (rc == NX_AGAIN) break;
        if (rc < 0) {
            if (rc == NX_EPROTO)
                fail_protocol(c, c->parser.close_code, c->parser.error_message);
            else
                fail_protocol(c, NX_WS_CLOSE_INTERNAL, "out of memory");
            break;
        }
        off += (size_t)rc;
        handle_event(c, &ev);
    }
    if (c->aborted || (c->state != NX_WSC_OPEN && c->state != NX_WSC_CLOSING)) {
        nx_buf_clear(&c->in);
        return;
    }
    if (from_in) {
        nx_buf_consume(&c->in, off);
    } else if (off < n && nx_buf_append(&c->in, buf + off, n - off) < 0) {
        fail_protocol(c, NX_WS_CLOSE_INTERNAL, "out of memory");
    }
}

/* ---- the connection ---- */

static void conn_on_data(nx_conn_t *conn, char *data, size_t len) {
    nx_ws_client_t *c = conn->codec;
    if (c->aborted || c->state == NX_WSC_CLOSED) return;
    c->depth++;
    char *buf = data;
    size_t n = len;
    bool from_in = c->in.len > 0;
    if (from_in) {
        if (nx_buf_append(&c->in, data, len) < 0) {
            fail_now(c, -ENOMEM, "out of memory");
            goto out;
        }
        buf = c->in.data;
        n = c->in.len;
    }
    if (c->state == NX_WSC_HANDSHAKE)
        handle_handshake(c, buf, n, from_in);
    else
        handle_frames(c, buf, n, from_in);
out:
    c->depth--;
    release_check(c);
}

static void conn_on_eof(nx_conn_t *conn, int err) {
    nx_ws_client_t *c = conn->codec;
    int e = err < 0 ? err : -ECONNRESET;
    if (c->state == NX_WSC_HANDSHAKE)
        fail_now(c, e, "the connection closed before the handshake answer");
    else if (c->state == NX_WSC_OPEN || c->state == NX_WSC_CLOSING)
        fail_now(c, e, "the connection closed without a close frame");
    else
        nx_conn_close(conn);
}

static void conn_on_free(nx_conn_t *conn) {
    nx_ws_client_t *c = conn->codec;
    c->conn = NULL;
    if (c->state != NX_WSC_CLOSED) { /* closed under us: a send failed */
        set_outcome(c, conn->error < 0 ? conn->error : -ECONNRESET, NX_WS_CLOSE_ABNORMAL,
                    "sending to the server failed");
        c->state = NX_WSC_CLOSED;
        nx_timer_stop(&c->deadline);
    }
    release_check(c);
}

static void on_connect(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_ws_client_t *c = nx_container_of(op, nx_ws_client_t, connect_op);
    c->connecting = false;
    if (c->state == NX_WSC_CLOSED) { /* given up meanwhile (close, abort, deadline) */
        close(c->fd);
        c->fd = -1;
        release_check(c);
        return;
    }
    if (res < 0) {
        close(c->fd);
        c->fd = -1;
        /* The linked timeout cancels the connect. */
        if (res == -ECANCELED)
            fail_now(c, -ETIMEDOUT, "connect timed out");
        else if (res == -ECONNREFUSED)
            fail_now(c, res, "connection refused");
        else
            fail_now(c, res, "connect failed");
        return;
    }
    c->conn = nx_conn_new_outbound(c->shard, c->fd, &client_conn_ops, c);
    c->fd = -1; /* the connection owns it now, closed even on failure */
    if (c->conn == NULL) {
        fail_now(c, -ENOMEM, "out of memory");
        return;
    }
    c->state = NX_WSC_HANDSHAKE;
    /* Hand the request bytes over instead of copying them. */
    nx_buf_t *out = nx_conn_out(c->conn);
    nx_buf_t t = *out;
    *out = c->req;
    c->req = t;
    nx_conn_flush(c->conn); /* last: a failed send frees the connection (conn_on_free) */
}

static void on_deadline(nx_timer_t *t) {
    nx_ws_client_t *c = nx_container_of(t, nx_ws_client_t, deadline);
    if (c->state == NX_WSC_CLOSING)
        fail_now(c, -ETIMEDOUT, "the server did not answer the close in time");
    else
        fail_now(c, -ETIMEDOUT, "the opening handshake timed out");
}

/* ---- API ---- */

/* The headers the client writes itself may not come from the caller. */
static bool reserved_header(nx_str_t name) {
    static const char *const own[] = {"host",
                                      "upgrade",
                                      "connection",
                                      "sec-websocket-key",
                                      "sec-websocket-version",
                                      "sec-websocket-protocol",
                                      "sec-websocket-extensions",
                                      "content-length",
                                      "transfer-encoding",
                                      NULL};
    for (const char *const *o = own; *o != NULL; o++)
        if (nx_str_eq_lit_nocase(name, *o)) return true;
    return false;
}

static int build_request(nx_ws_client_t *c, const nx_ws_client_opts_t *o, const char *key) {
    nx_buf_t *b = &c->req;
    int rc = nx_buf_appendf(b,
                            "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                            "Sec-WebSocket-Version: 13\r\n",
                            o->path, o->host, key);
    if (o->subprotocol != NULL)
        rc |= nx_buf_appendf(b, "Sec-WebSocket-Protocol: %s\r\n", o->subprotocol);
    for (size_t i = 0; i < o->header_count; i++) {
        const nx_http_header_t *h = &o->headers[i];
        rc |= nx_buf_append(b, h->name.p, h->name.n);
        rc |= nx_buf_append(b, ": ", 2);
        rc |= nx_buf_append(b, h->value.p, h->value.n);
        rc |= nx_buf_append(b, "\r\n", 2);
    }
    rc |= nx_buf_append(b, "\r\n", 2);
    return rc < 0 ? -ENOMEM : 0;
}

static int check_opts(const struct sockaddr *addr, socklen_t addrlen, const nx_ws_client_opts_t *o,
                      const nx_ws_client_ops_t *ops) {
    if (addr == NULL || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6 && addr->sa_family != AF_UNIX))
        return -EINVAL;
    if (o == NULL || ops == NULL || ops->on_open == NULL || ops->on_message == NULL ||
        ops->on_close == NULL)
        return -EINVAL;
    if (!nx_http_text_safe(o->host, "\r\n") || !nx_http_text_safe(o->path, " \t\r\n") ||
        (o->subprotocol != NULL && !nx_http_text_safe(o->subprotocol, " \t\r\n,")) ||
        (o->header_count > 0 && o->headers == NULL))
        return -EINVAL;
    for (size_t i = 0; i < o->header_count; i++) {
        const nx_http_header_t *h = &o->headers[i];
        if (!nx_http_field_safe(h->name, h->value) || reserved_header(h->name)) return -EINVAL;
    }
    return 0;
}

int nx_ws_client_connect(nx_shard_t *s, const struct sockaddr *addr, socklen_t addrlen,
                         const nx_ws_client_opts_t *opts, const nx_ws_client_ops_t *ops, void *arg,
                         nx_ws_client_t **out) {
    int rc = check_opts(addr, addrlen, opts, ops);
    if (rc < 0) return rc;
    /* The key: base64 of 16 random bytes; the answer must carry its digest. */
    unsigned char nonce[16];
    char key[25];
    if (RAND_bytes(nonce, sizeof(nonce)) != 1) return -EIO;
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce));
    nx_ws_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL) return -ENOMEM;
    c->shard = s;
    c->ops = *ops;
    c->arg = arg;
    c->fd = -1;
    c->state = NX_WSC_CONNECTING;
    c->close_timeout_ms =
        opts->close_timeout_ms ? opts->close_timeout_ms : DEFAULT_CLOSE_TIMEOUT_MS;
    memcpy(&c->addr, addr, addrlen);
    c->addrlen = addrlen;
    c->connect_op.cb = on_connect;
    nx_timer_init(&c->deadline, on_deadline);
    nx_timer_init(&c->report_timer, on_report);
    nx_ws_parser_init(&c->parser, NX_WS_CLIENT, opts->max_message);
    rc = -ENOMEM;
    if (opts->subprotocol != NULL && (c->subprotocol = strdup(opts->subprotocol)) == NULL)
        goto fail;
    if ((c->resp = malloc(sizeof(*c->resp))) == NULL) goto fail;
    nx_http_response_parser_init(c->resp, NULL, false);
    if ((rc = nx_ws_accept_key(nx_str_from(key), c->accept)) < 0) goto fail;
    if ((rc = build_request(c, opts, key)) < 0) goto fail;
    c->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        rc = -errno;
        goto fail;
    }
    if (addr->sa_family != AF_UNIX) {
        int one = 1; /* messages are written whole: waiting for more only adds latency */
        (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    uint32_t timeout =
        opts->connect_timeout_ms ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    rc = nx_loop_connect(s->loop, &c->connect_op, c->fd, (struct sockaddr *)&c->addr, c->addrlen,
                         timeout);
    if (rc < 0) goto fail;
    c->connecting = true;
    nx_shard_timer_start(s, &c->deadline, timeout);
    *out = c;
    return 0;
fail:
    if (c->fd >= 0) close(c->fd);
    client_free(c);
    return rc;
}

int nx_ws_client_send_text(nx_ws_client_t *c, const char *data, size_t len) {
    /* The connection may have failed a send and be closing: conn_on_free tells us soon. */
    if (c->state != NX_WSC_OPEN || c->aborted || c->conn->state != NX_CONN_OPEN) return NX_ECLOSED;
    return send_frame(c, NX_WS_OP_TEXT, data, len);
}

int nx_ws_client_close(nx_ws_client_t *c, uint16_t code, const char *reason) {
    if (c->aborted || c->reporting) return 0;
    switch (c->state) {
    case NX_WSC_CONNECTING:
    case NX_WSC_HANDSHAKE:
        fail_now(c, -ECANCELED, "closed before the connection opened");
        return 0;
    case NX_WSC_OPEN: {
        uint8_t key[4];
        if (RAND_bytes(key, sizeof(key)) != 1) {
            fail_now(c, -EIO, "no randomness for the close frame");
            return 0;
        }
        int rc = nx_ws_encode_close(nx_conn_out(c->conn), code, reason, key);
        if (rc < 0) return rc;
        c->state = NX_WSC_CLOSING;
        nx_conn_flush(c->conn);
        /* The flush may have failed and closed the connection: conn_on_free ended us then. */
        if (c->state == NX_WSC_CLOSING)
            nx_shard_timer_start(c->shard, &c->deadline, c->close_timeout_ms);
        return 0;
    }
    case NX_WSC_CLOSING:
    case NX_WSC_CLOSED:
        return 0;
    }
    return 0;
}

void nx_ws_client_abort(nx_ws_client_t *c) {
    if (c == NULL || c->aborted || c->reporting) return;
    c->aborted = true;
    nx_timer_stop(&c->report_timer);
    nx_timer_stop(&c->deadline);
    c->state = NX_WSC_CLOSED;
    if (c->connecting) nx_loop_cancel(c->shard->loop, &c->connect_op);
    if (c->conn != NULL) nx_conn_close(c->conn); /* also one that lingers: abort is at once */
    release_check(c);
}

int nx_ws_client_error(const nx_ws_client_t *c) {
    return c->err;
}

bool nx_ws_client_opened(const nx_ws_client_t *c) {
    return c->opened;
}
