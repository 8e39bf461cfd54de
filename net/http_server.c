/* HTTP/1.1 server codec (see http_server.h). The life of one connection:
 *   NX_HTTP_PHASE_IDLE --first byte--> NX_HTTP_PHASE_HEAD --head parsed, body pending-->
 * NX_HTTP_PHASE_BODY NX_HTTP_PHASE_HEAD|BODY --complete--> handler --> respond -->
 * NX_HTTP_PHASE_IDLE (keep-alive)
 *                                            \-> defer --> NX_HTTP_PHASE_DEFERRED --> respond
 *   any --error, Connection: close, drain--> NX_HTTP_PHASE_DONE (final response, lingering close)
 * Input that arrives while a request is deferred or output is backed up waits in hc->in, so
 * pipelined responses always leave in request order. */
#include "http_server.h"

#include "nexus/errors.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NX_HTTP_LINGER_MS 2000
#define NX_HTTP_PARSER_POOL_MAX 64

/* A parser with the link that keeps it in the shard's pool while unused. */
typedef struct pooled_parser {
    nx_list_t link;
    nx_http_parser_t parser;
} pooled_parser_t;

static void on_data(nx_conn_t *c, char *data, size_t len);
static void on_eof(nx_conn_t *c, int err);
static void on_sent(nx_conn_t *c);
static void on_free(nx_conn_t *c);
static void on_timer(nx_timer_t *t);
static void process(nx_http_conn_t *hc, char *buf, size_t n, bool from_in);

static const nx_conn_ops_t http_conn_ops = {
    .on_data = on_data, .on_eof = on_eof, .on_sent = on_sent, .on_free = on_free};

void nx_http_server_init(nx_http_server_t *srv, nx_shard_t *s, const nx_http_server_opts_t *o,
                         nx_http_handler_fn handler, nx_http_done_fn on_done, void *user) {
    memset(srv, 0, sizeof(*srv));
    srv->shard = s;
    srv->opts = *o;
    if (srv->opts.max_pending_output == 0) srv->opts.max_pending_output = 1u << 20;
    srv->handler = handler;
    srv->on_done = on_done;
    srv->user = user;
    nx_list_init(&srv->conns);
    nx_list_init(&srv->parser_pool);
}

void nx_http_server_dispose(nx_http_server_t *srv) {
    nx_list_t *n;
    while ((n = nx_list_pop_head(&srv->parser_pool)) != NULL)
        free(nx_container_of(n, pooled_parser_t, link));
    srv->parser_pool_size = 0;
}

static nx_http_parser_t *borrow_parser(nx_http_server_t *srv) {
    nx_list_t *n = nx_list_pop_head(&srv->parser_pool);
    pooled_parser_t *pp;
    if (n != NULL) {
        srv->parser_pool_size--;
        pp = nx_container_of(n, pooled_parser_t, link);
    } else {
        pp = malloc(sizeof(*pp));
        if (pp == NULL) return NULL;
    }
    nx_http_parser_init(&pp->parser, &srv->opts.limits);
    return &pp->parser;
}

static void return_parser(nx_http_server_t *srv, nx_http_parser_t *p) {
    pooled_parser_t *pp = nx_container_of(p, pooled_parser_t, parser);
    if (srv->parser_pool_size >= NX_HTTP_PARSER_POOL_MAX) {
        free(pp);
        return;
    }
    nx_list_insert_head(&srv->parser_pool, &pp->link);
    srv->parser_pool_size++;
}

static void refresh_date(nx_http_server_t *srv) {
    uint64_t sec = nx_shard_now_ms(srv->shard) / 1000;
    if (sec == srv->date_sec && srv->date[0] != '\0') return;
    srv->date_sec = sec;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void reject_connection(nx_http_server_t *srv, int fd) {
    static const char body[] =
        "{\"error\":{\"code\":503,\"message\":\"too many open connections\"}}\n";
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    ssize_t rc = send(fd, resp, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)rc; /* best effort: the connection is refused either way */
    close(fd);
    nx_stat_add(&srv->shard->stats.connections_rejected, 1);
}

void nx_http_server_accept(nx_listener_t *ls, int fd) {
    nx_http_server_t *srv = ls->data;
    if (srv->draining) {
        close(fd);
        return;
    }
    if (srv->conn_count >= srv->opts.max_connections) {
        reject_connection(srv, fd);
        return;
    }
    nx_http_conn_t *hc = calloc(1, sizeof(*hc));
    if (hc == NULL) {
        reject_connection(srv, fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    hc->srv = srv;
    hc->phase = NX_HTTP_PHASE_IDLE;
    hc->tag = NX_HTTP_TAG_NONE;
    nx_timer_init(&hc->timer, on_timer);
    nx_list_insert_tail(&srv->conns, &hc->link);
    srv->conn_count++;
    hc->conn = nx_conn_new(srv->shard, fd, &http_conn_ops, hc);
    if (hc->conn == NULL) {
        nx_list_remove(&hc->link);
        srv->conn_count--;
        free(hc);
        return;
    }
    /* Until its first byte a new connection gets the header timeout, not the longer
     * keep-alive one: a silent connection is the cheapest slowloris. */
    nx_shard_timer_start(srv->shard, &hc->timer, srv->opts.header_timeout_ms);
}

static void finish_request_state(nx_http_conn_t *hc) {
    if (hc->parser != NULL) {
        /* Mid-batch the parser is reset, not pooled: the next pipelined request needs one. */
        if (hc->in.len == 0 && !hc->processing) {
            return_parser(hc->srv, hc->parser);
            hc->parser = NULL;
        } else {
            nx_http_parser_reset(hc->parser);
        }
    }
    hc->continue_sent = false;
}

static void append_status_line(nx_buf_t *o, int status) {
    if (status == 200) {
        nx_buf_append(o, "HTTP/1.1 200 OK\r\n", 17);
        return;
    }
    nx_buf_appendf(o, "HTTP/1.1 %d %s\r\n", status, nx_http_status_reason(status));
}

/* Queues the status line and headers. <body_len> < 0 means a streamed body: chunked on
 * HTTP/1.1, delimited by the connection's close on HTTP/1.0. */
static void write_head(nx_http_conn_t *hc, int status, const char *content_type, int64_t body_len,
                       const char *extra_headers) {
    nx_http_server_t *srv = hc->srv;
    nx_buf_t *o = nx_conn_out(hc->conn);
    bool no_body = status == 204 || status == 304 || status < 200;
    if (srv->draining) hc->keep_alive = false;
    if (body_len < 0 && hc->version_minor == 0) hc->keep_alive = false;

    refresh_date(srv);
    nx_buf_reserve(o, 160 + (body_len > 0 ? (size_t)body_len : 0));
    append_status_line(o, status);
    nx_buf_append(o, "Server: nexus\r\nDate: ", 21);
    nx_buf_append(o, srv->date, 29);
    if (content_type != NULL) {
        nx_buf_append(o, "\r\nContent-Type: ", 16);
        nx_buf_append_str(o, content_type);
    }
    if (!no_body && body_len >= 0) {
        nx_buf_append(o, "\r\nContent-Length: ", 18);
        nx_buf_append_u64(o, (uint64_t)body_len);
    } else if (!no_body && hc->version_minor == 1) {
        nx_buf_append(o, "\r\nTransfer-Encoding: chunked", 28);
    }
    if (!hc->keep_alive) {
        nx_buf_append(o, "\r\nConnection: close", 19);
    } else if (hc->version_minor == 0) {
        nx_buf_append(o, "\r\nConnection: keep-alive", 24);
    }
    nx_buf_append(o, "\r\n", 2);
    if (extra_headers != NULL) nx_buf_append_str(o, extra_headers);
    nx_buf_append(o, "\r\n", 2);
}

/* The response to the current request is fully queued: count it, then either close or get
 * ready for the next request (answering any that queued up behind a deferred one). */
static void complete_response(nx_http_conn_t *hc, int status, bool was_deferred) {
    nx_http_server_t *srv = hc->srv;
    /* A response that began before the drain (a long stream) still ends the connection: the
     * client must come back to another instance, not on this one. */
    if (srv->draining) hc->keep_alive = false;
    if (srv->on_done != NULL) srv->on_done(srv, hc, status, nx_loop_clock_ns() - hc->start_ns);
    hc->abort_fn = NULL;
    finish_request_state(hc);
    if (!hc->keep_alive) {
        hc->phase = NX_HTTP_PHASE_DONE;
        nx_timer_stop(&hc->timer);
        nx_conn_close_graceful(hc->conn, NX_HTTP_LINGER_MS);
        return;
    }
    hc->phase = NX_HTTP_PHASE_IDLE;
    if (was_deferred && !hc->processing) {
        /* Requests that arrived behind the deferred one are answered now, in order. */
        if (hc->in.len > 0) {
            process(hc, hc->in.data, hc->in.len, true);
        } else {
            nx_shard_timer_start(srv->shard, &hc->timer, srv->opts.keepalive_timeout_ms);
            nx_conn_flush(hc->conn);
        }
        nx_conn_resume_recv(hc->conn);
    }
}

void nx_http_respond(nx_http_conn_t *hc, int status, const char *content_type, const void *body,
                     size_t body_len, const char *extra_headers) {
    if (hc->phase == NX_HTTP_PHASE_DONE || hc->conn == NULL || hc->streaming) return;
    bool was_deferred = hc->phase == NX_HTTP_PHASE_DEFERRED;
    bool no_body = status == 204 || status == 304 || status < 200;
    write_head(hc, status, content_type, (int64_t)body_len, extra_headers);
    if (!no_body && !hc->head_only) nx_buf_append(nx_conn_out(hc->conn), body, body_len);
    complete_response(hc, status, was_deferred);
}

int nx_http_stream_begin(nx_http_conn_t *hc, int status, const char *content_type,
                         const char *extra_headers, nx_http_abort_fn abort, void *arg) {
    if (hc->phase == NX_HTTP_PHASE_DONE || hc->streaming) return NX_ECLOSED;
    nx_http_defer(hc, abort, arg);
    write_head(hc, status, content_type, -1, extra_headers);
    hc->streaming = true;
    hc->stream_status = (uint16_t)status;
    nx_conn_flush(hc->conn);
    return 0;
}

int nx_http_stream_write(nx_http_conn_t *hc, const void *data, size_t len) {
    if (!hc->streaming || hc->conn->state != NX_CONN_OPEN) return NX_ECLOSED;
    if (len == 0 || hc->head_only) return 0;
    nx_buf_t *o = nx_conn_out(hc->conn);
    if (hc->version_minor == 1) {
        char size[20];
        int n = snprintf(size, sizeof(size), "%zx\r\n", len);
        nx_buf_append(o, size, (size_t)n);
    }
    nx_buf_append(o, data, len);
    if (hc->version_minor == 1) nx_buf_append(o, "\r\n", 2);
    nx_conn_flush(hc->conn);
    return 0;
}

void nx_http_stream_end(nx_http_conn_t *hc) {
    if (!hc->streaming) return;
    hc->streaming = false;
    if (hc->version_minor == 1 && !hc->head_only)
        nx_buf_append(nx_conn_out(hc->conn), "0\r\n\r\n", 5);
    complete_response(hc, hc->stream_status, true);
    nx_conn_flush(hc->conn);
}

void nx_http_respond_error(nx_http_conn_t *hc, int status, const char *message,
                           const char *extra_headers) {
    nx_buf_t body;
    nx_buf_init(&body);
    nx_buf_appendf(&body, "{\"error\":{\"code\":%d,\"message\":\"", status);
    nx_buf_append_json_escaped(&body, message);
    nx_buf_append_str(&body, "\"}}\n");
    nx_http_respond(hc, status, "application/json", body.data, body.len, extra_headers);
    nx_buf_dispose(&body);
}

void nx_http_reset(nx_http_conn_t *hc) {
    nx_conn_reset(hc->conn);
}

void nx_http_defer(nx_http_conn_t *hc, nx_http_abort_fn abort, void *arg) {
    hc->phase = NX_HTTP_PHASE_DEFERRED;
    hc->abort_fn = abort;
    hc->abort_arg = arg;
    nx_timer_stop(&hc->timer);
}

/* Answers a protocol error found by the server itself: the stream can no longer be trusted,
 * so the connection closes after the response. */
static void protocol_error(nx_http_conn_t *hc, int status, const char *message) {
    hc->keep_alive = false;
    hc->head_only = false;
    nx_http_respond_error(hc, status, message, NULL);
}

static void free_http_conn(nx_http_conn_t *hc) {
    nx_http_server_t *srv = hc->srv;
    nx_timer_stop(&hc->timer);
    if (hc->parser != NULL) return_parser(srv, hc->parser);
    nx_buf_dispose(&hc->in);
    nx_list_remove(&hc->link);
    srv->conn_count--;
    free(hc);
    if (srv->draining && srv->conn_count == 0 && srv->on_drained != NULL) srv->on_drained(srv);
}

/* Gives hc's connection to the codec chosen by nx_http_upgrade, with the <n> bytes that
 * followed the upgrade request, and frees hc. */
static void hand_off(nx_http_conn_t *hc, const char *rest, size_t n) {
    nx_conn_t *c = hc->conn;
    nx_buf_t leftover;
    nx_buf_init(&leftover);
    if (n > 0 && nx_buf_append(&leftover, rest, n) < 0) {
        nx_conn_close(c);
        return;
    }
    c->ops = hc->upgrade_ops;
    c->codec = hc->upgrade_codec;
    free_http_conn(hc);
    nx_conn_flush(c); /* the 101 response */
    if (leftover.len > 0 && c->state == NX_CONN_OPEN)
        c->ops->on_data(c, leftover.data, leftover.len);
    nx_buf_dispose(&leftover);
}

int nx_http_upgrade(nx_http_conn_t *hc, const nx_conn_ops_t *ops, void *codec) {
    if (!hc->processing || hc->phase == NX_HTTP_PHASE_DONE || hc->upgrade_ops != NULL)
        return NX_ECLOSED;
    hc->upgrade_ops = ops;
    hc->upgrade_codec = codec;
    return 0;
}

/* Parses and dispatches every complete request in buf[0..n). <from_in> says buf is hc->in
 * (else it is a provided receive buffer that must not be kept past this call). */
static void process(nx_http_conn_t *hc, char *buf, size_t n, bool from_in) {
    nx_http_server_t *srv = hc->srv;
    size_t off = 0;
    hc->processing = true;
    while (off < n && (hc->phase == NX_HTTP_PHASE_IDLE || hc->phase == NX_HTTP_PHASE_HEAD ||
                       hc->phase == NX_HTTP_PHASE_BODY)) {
        if (nx_conn_unsent(hc->conn) > srv->opts.max_pending_output) {
            /* The client sends faster than it reads: stop reading until output drains. */
            nx_conn_pause_recv(hc->conn);
            break;
        }
        if (hc->phase == NX_HTTP_PHASE_IDLE) {
            hc->phase = NX_HTTP_PHASE_HEAD;
            hc->tag = NX_HTTP_TAG_NONE;
            hc->start_ns = nx_loop_clock_ns();
            nx_shard_timer_start(srv->shard, &hc->timer, srv->opts.header_timeout_ms);
        }
        if (hc->parser == NULL && (hc->parser = borrow_parser(srv)) == NULL) {
            protocol_error(hc, 503, "out of memory");
            break;
        }
        nx_http_request_t req;
        int rc = nx_http_parse_request(hc->parser, buf + off, n - off, &req);
        if (rc == NX_AGAIN) {
            if (hc->phase == NX_HTTP_PHASE_HEAD && nx_http_parser_head_done(hc->parser)) {
                hc->phase = NX_HTTP_PHASE_BODY;
                nx_shard_timer_start(srv->shard, &hc->timer, srv->opts.body_timeout_ms);
                if (req.expect_continue && req.version_minor == 1 && !hc->continue_sent) {
                    nx_buf_append_str(nx_conn_out(hc->conn), "HTTP/1.1 100 Continue\r\n\r\n");
                    hc->continue_sent = true;
                }
            }
            break;
        }
        if (rc < 0) {
            const char *msg =
                hc->parser->error_message ? hc->parser->error_message : "malformed request";
            int status = hc->parser->error_status ? hc->parser->error_status : 400;
            off = n; /* nothing after a broken request can be trusted */
            protocol_error(hc, status, msg);
            break;
        }
        off += (size_t)rc;
        nx_timer_stop(&hc->timer);
        /* keepalive_timeout 0 means one request per connection. */
        hc->keep_alive = req.keep_alive && !srv->draining && srv->opts.keepalive_timeout_ms > 0;
        hc->head_only = req.method == NX_HTTP_HEAD;
        hc->version_minor = req.version_minor;
        hc->request_seq++;
        srv->handler(srv, hc, &req);
        if (hc->upgrade_ops != NULL) {
            /* The handler switched protocols: the bytes after this request are the new
             * protocol's, and hc is gone after the hand-off. */
            hand_off(hc, buf + off, n - off);
            return;
        }
    }
    hc->processing = false;
    if (hc->conn->state != NX_CONN_OPEN || hc->phase == NX_HTTP_PHASE_DONE) {
        if (from_in) nx_buf_clear(&hc->in);
        return;
    }
    if (from_in) {
        nx_buf_consume(&hc->in, off);
    } else if (off < n) {
        nx_buf_append(&hc->in, buf + off, n - off);
    }
    if (hc->phase == NX_HTTP_PHASE_IDLE && hc->in.len == 0) {
        finish_request_state(hc);
        nx_shard_timer_start(srv->shard, &hc->timer, srv->opts.keepalive_timeout_ms);
    }
    nx_conn_flush(hc->conn);
}

static void on_data(nx_conn_t *c, char *data, size_t len) {
    nx_http_conn_t *hc = c->codec;
    if (hc->in.len > 0 || hc->phase == NX_HTTP_PHASE_DEFERRED || hc->conn->recv_paused) {
        /* Earlier bytes are waiting: keep order by appending and parsing from hc->in. */
        if (nx_buf_append(&hc->in, data, len) < 0) {
            protocol_error(hc, 503, "out of memory");
            return;
        }
        if (hc->phase == NX_HTTP_PHASE_DEFERRED || hc->conn->recv_paused) {
            /* Bound what a client can pile up behind a slow request. */
            uint64_t cap =
                (uint64_t)hc->srv->opts.limits.max_header_bytes + hc->srv->opts.limits.max_body;
            if (hc->in.len > cap) nx_conn_pause_recv(c);
            return;
        }
        process(hc, hc->in.data, hc->in.len, true);
        return;
    }
    process(hc, data, len, false);
}

static void on_eof(nx_conn_t *c, int err) {
    nx_http_conn_t *hc = c->codec;
    if (hc->phase == NX_HTTP_PHASE_DEFERRED && hc->abort_fn != NULL) {
        nx_http_abort_fn fn = hc->abort_fn;
        hc->abort_fn = NULL;
        fn(hc, hc->abort_arg);
    }
    /* Responses already queued still go out (a client may half-close after sending). */
    if (err == 0 && nx_conn_unsent(c) > 0) {
        hc->phase = NX_HTTP_PHASE_DONE;
        nx_conn_close_graceful(c, 0);
        return;
    }
    nx_conn_close(c);
}

static void on_sent(nx_conn_t *c) {
    nx_http_conn_t *hc = c->codec;
    if (!c->recv_paused || hc->phase == NX_HTTP_PHASE_DEFERRED) return;
    nx_conn_resume_recv(c);
    if (hc->in.len > 0) process(hc, hc->in.data, hc->in.len, true);
}

static void on_free(nx_conn_t *c) {
    nx_http_conn_t *hc = c->codec;
    if (hc->phase == NX_HTTP_PHASE_DEFERRED && hc->abort_fn != NULL)
        hc->abort_fn(hc, hc->abort_arg);
    free_http_conn(hc);
}

static void on_timer(nx_timer_t *t) {
    nx_http_conn_t *hc = nx_container_of(t, nx_http_conn_t, timer);
    switch (hc->phase) {
    case NX_HTTP_PHASE_IDLE:
        nx_conn_close(hc->conn);
        break;
    case NX_HTTP_PHASE_HEAD:
        protocol_error(hc, 408, "request headers not received in time");
        break;
    case NX_HTTP_PHASE_BODY:
        protocol_error(hc, 408, "request body not received in time");
        break;
    case NX_HTTP_PHASE_DEFERRED:
    case NX_HTTP_PHASE_DONE:
        break;
    }
}

void nx_http_server_drain(nx_http_server_t *srv) {
    srv->draining = true;
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &srv->conns) {
        nx_http_conn_t *hc = nx_container_of(pos, nx_http_conn_t, link);
        if (hc->phase == NX_HTTP_PHASE_IDLE && hc->in.len == 0) nx_conn_close(hc->conn);
    }
    if (srv->conn_count == 0 && srv->on_drained != NULL) srv->on_drained(srv);
}

void nx_http_server_close_all(nx_http_server_t *srv) {
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &srv->conns) {
        nx_http_conn_t *hc = nx_container_of(pos, nx_http_conn_t, link);
        nx_conn_close(hc->conn);
    }
}
