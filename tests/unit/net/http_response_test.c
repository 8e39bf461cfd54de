/* Unit tests of the HTTP/1.1 response parser (net/http_response.c): status lines, every body
 * framing, bodiless statuses and HEAD, 1xx then the final response, 101, keep-alive, every
 * rejection with its error code, limits at and past their bounds, EOF, and every input fed
 * whole, split at each byte boundary, byte by byte, in place and with the buffer moved. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http_response.h"
#include "nexus/errors.h"

static const nx_http_response_limits_t lim = {
    .max_header_bytes = 4096, .max_headers = 32, .max_body = 1 << 20};

static const char *err_name(nx_http_resp_error_t e) {
    static const char *names[] = {
        [NX_HTTP_RESP_OK] = "OK",
        [NX_HTTP_RESP_ESTATUS_LINE] = "ESTATUS_LINE",
        [NX_HTTP_RESP_EVERSION] = "EVERSION",
        [NX_HTTP_RESP_ESTATUS] = "ESTATUS",
        [NX_HTTP_RESP_EBARE_LF] = "EBARE_LF",
        [NX_HTTP_RESP_EOBS_FOLD] = "EOBS_FOLD",
        [NX_HTTP_RESP_EHEADER] = "EHEADER",
        [NX_HTTP_RESP_EHEAD_TOO_LARGE] = "EHEAD_TOO_LARGE",
        [NX_HTTP_RESP_ETOO_MANY_HEADERS] = "ETOO_MANY_HEADERS",
        [NX_HTTP_RESP_ECL_INVALID] = "ECL_INVALID",
        [NX_HTTP_RESP_ECL_CONFLICT] = "ECL_CONFLICT",
        [NX_HTTP_RESP_ECL_AND_TE] = "ECL_AND_TE",
        [NX_HTTP_RESP_ETE_UNSUPPORTED] = "ETE_UNSUPPORTED",
        [NX_HTTP_RESP_ETE_HTTP10] = "ETE_HTTP10",
        [NX_HTTP_RESP_ECHUNK_SIZE] = "ECHUNK_SIZE",
        [NX_HTTP_RESP_ECHUNK_OVERFLOW] = "ECHUNK_OVERFLOW",
        [NX_HTTP_RESP_ECHUNK_EXT] = "ECHUNK_EXT",
        [NX_HTTP_RESP_ECHUNK_CRLF] = "ECHUNK_CRLF",
        [NX_HTTP_RESP_ETRAILER] = "ETRAILER",
        [NX_HTTP_RESP_ETRAILERS_TOO_LARGE] = "ETRAILERS_TOO_LARGE",
        [NX_HTTP_RESP_EBODY_TOO_LARGE] = "EBODY_TOO_LARGE",
        [NX_HTTP_RESP_ENO_RESPONSE] = "ENO_RESPONSE",
        [NX_HTTP_RESP_ETRUNCATED] = "ETRUNCATED",
    };
    return (size_t)e < sizeof(names) / sizeof(names[0]) && names[e] ? names[e] : "?";
}

/* ---- a canonical transcript of everything the parser reported ---- */

typedef struct opts {
    bool head;     /* the request was HEAD */
    bool eof;      /* the connection is closed after the input */
    bool pipeline; /* after DONE, parse the next response from the bytes that follow */
    const nx_http_response_limits_t *lim;
} opts_t;

static void put_str(nx_buf_t *t, nx_str_t s) {
    nx_buf_append(t, "[", 1);
    nx_buf_append(t, s.p, s.n);
    nx_buf_append(t, "]", 1);
}

static void describe_head(nx_buf_t *t, const nx_http_response_t *r, const char *kind, const char *b,
                          size_t len) {
    static const char *framings[] = {"none", "length", "chunked", "close"};
    nx_buf_appendf(t, "%s 1.%d %d ", kind, r->version_minor, r->status);
    put_str(t, r->reason);
    if (kind[0] == 'H') {
        nx_buf_appendf(t, " %s cl=%lld %s%s", framings[r->framing], (long long)r->content_length,
                       r->keep_alive ? "keep-alive" : "close", r->upgrade ? " upgrade" : "");
    }
    cr_assert_leq(r->head_len, len);
    for (uint32_t i = 0; i < r->header_count; i++) {
        const nx_http_header_t *h = &r->headers[i];
        /* every string of the head points into the head, inside the buffer just given */
        cr_assert(h->name.p >= b && h->name.p + h->name.n <= b + r->head_len);
        cr_assert(h->value.p >= b && h->value.p + h->value.n <= b + r->head_len);
        nx_buf_appendf(t, " {%.*s: %.*s}", (int)h->name.n, h->name.p, (int)h->value.n, h->value.p);
    }
    cr_assert(r->reason.p >= b && r->reason.p + r->reason.n <= b + r->head_len);
    nx_buf_append_str(t, " | ");
}

static void flush_body(nx_buf_t *t, nx_buf_t *body, bool *in_body) {
    if (!*in_body) return;
    nx_buf_append_str(t, "BODY [");
    nx_buf_append(t, body->data, body->len);
    nx_buf_append_str(t, "] | ");
    body->len = 0;
    *in_body = false;
}

/* Feeds s[0..n) in pieces — <first> bytes, then <step> more each time — the way a client
 * does: unconsumed bytes stay, new bytes are appended. With <move>, every call gets a fresh
 * exact-size copy of the unconsumed bytes and the old copy is scribbled over and freed, so a
 * stale pointer or a read past the end is caught by ASan; without, the bytes stay in place.
 * The transcript goes to <t>, NUL-terminated. */
static void run(const char *s, size_t n, size_t first, size_t step, bool move, opts_t o,
                nx_buf_t *t) {
    nx_http_response_parser_t *p = malloc(sizeof(*p));
    nx_http_response_event_t ev;
    nx_buf_t body;
    nx_buf_init(&body);
    nx_http_response_parser_init(p, o.lim ? o.lim : &lim, o.head);
    char *base = move ? NULL : malloc(n + 1), *rb = NULL;
    size_t off = 0, rlen = 0, fed = 0;
    bool stopped = false, failed = false, in_body = false;
    t->len = 0;
    for (size_t end = first < n ? first : n;; end = end + step < n ? end + step : n) {
        size_t add = end - fed;
        if (move) {
            char *nb = malloc(rlen + add + (rlen + add == 0));
            if (rlen > 0) memcpy(nb, rb, rlen);
            if (rb != NULL) memset(rb, 'X', rlen);
            free(rb);
            rb = nb;
            memcpy(rb + rlen, s + fed, add);
        } else {
            memcpy(base + fed, s + fed, add);
        }
        rlen += add;
        fed = end;
        int zero_events = 0;
        while (!stopped) {
            const char *b = move ? rb : base + off;
            int rc = nx_http_response_parse(p, b, rlen, &ev);
            if (rc == NX_AGAIN) break;
            if (rc < 0) {
                cr_assert_eq(rc, NX_EPROTO);
                cr_assert(p->error != NX_HTTP_RESP_OK && p->error_message && *p->error_message);
                flush_body(t, &body, &in_body);
                nx_buf_appendf(t, "ERROR %s: %s", err_name(p->error), p->error_message);
                stopped = failed = true;
                break;
            }
            cr_assert_leq((size_t)rc, rlen, "consumed %d of %zu", rc, rlen);
            cr_assert(rc > 0 || ++zero_events == 1, "two events in a row consumed nothing");
            switch (ev.kind) {
            case NX_HTTP_RESP_INFO:
            case NX_HTTP_RESP_HEAD:
                flush_body(t, &body, &in_body);
                cr_assert_eq((size_t)rc, ev.head->head_len);
                describe_head(t, ev.head, ev.kind == NX_HTTP_RESP_INFO ? "INFO" : "HEAD", b, rlen);
                break;
            case NX_HTTP_RESP_DATA:
                /* the data is inside what was given and ends where consumption ends */
                cr_assert_gt(ev.data.n, 0);
                cr_assert(ev.data.p >= b && ev.data.p + ev.data.n == b + rc);
                nx_buf_append(&body, ev.data.p, ev.data.n);
                in_body = true;
                break;
            case NX_HTTP_RESP_DONE:
                flush_body(t, &body, &in_body);
                nx_buf_appendf(t, "DONE%s | ", ev.head->keep_alive ? "" : " (close)");
                break;
            default:
                cr_assert_fail("unknown event kind %d", ev.kind);
            }
            if (move) {
                char *nb = malloc(rlen - (size_t)rc + 1);
                memcpy(nb, rb + rc, rlen - (size_t)rc);
                memset(rb, 'X', rlen);
                free(rb);
                rb = nb;
            } else {
                off += (size_t)rc;
            }
            rlen -= (size_t)rc;
            if (ev.kind == NX_HTTP_RESP_DONE) {
                if (!o.pipeline) {
                    stopped = true;
                    break;
                }
                nx_http_response_parser_init(p, o.lim ? o.lim : &lim, o.head);
                zero_events = 0;
            }
        }
        if (end == n) break;
    }
    if (!stopped) {
        flush_body(t, &body, &in_body);
        nx_buf_append_str(t, "AGAIN | ");
    }
    if (o.eof && !failed) {
        int rc = nx_http_response_eof(p, &ev);
        flush_body(t, &body, &in_body);
        if (rc == 0) {
            cr_assert_eq(ev.kind, NX_HTTP_RESP_DONE);
            nx_buf_appendf(t, "EOF DONE%s | ", ev.head->keep_alive ? "" : " (close)");
        } else {
            cr_assert_eq(rc, NX_EPROTO);
            nx_buf_appendf(t, "EOF ERROR %s: %s", err_name(p->error), p->error_message);
        }
    }
    if (stopped && !failed && rlen > 0) nx_buf_appendf(t, "LEFT %zu", rlen);
    /* the transcript ends without a trailing separator */
    while (t->len > 0 && (t->data[t->len - 1] == ' ' || t->data[t->len - 1] == '|'))
        t->len--;
    nx_buf_append(t, "", 1);
    free(move ? rb : base);
    nx_buf_dispose(&body);
    free(p);
}

/* Runs <s> whole, split at every byte boundary (moved), and byte by byte (in place and
 * moved); all transcripts must match, and the first must equal <want> when given. Returns
 * the transcript in a static buffer. */
static const char *check_o(const char *s, size_t n, opts_t o, const char *want) {
    static nx_buf_t w, g;
    run(s, n, n, n, false, o, &w);
    if (want != NULL)
        cr_assert_str_eq(w.data, want, "for input \"%.*s\":\n got \"%s\"\nwant \"%s\"", (int)n, s,
                         w.data, want);
    for (size_t k = 1; k < n; k++) {
        run(s, n, k, n, true, o, &g);
        cr_assert_str_eq(g.data, w.data, "split at %zu of \"%.*s\":\n got \"%s\"\nwant \"%s\"", k,
                         (int)n, s, g.data, w.data);
        run(s, n, k, n, false, o, &g);
        cr_assert_str_eq(g.data, w.data, "split at %zu in place", k);
    }
    run(s, n, 1, 1, false, o, &g);
    cr_assert_str_eq(g.data, w.data, "byte by byte in place");
    run(s, n, 1, 1, true, o, &g);
    cr_assert_str_eq(g.data, w.data, "byte by byte, buffer moved");
    run(s, n, 3, 7, true, o, &g);
    cr_assert_str_eq(g.data, w.data, "3 then 7 bytes per call, buffer moved");
    nx_buf_dispose(&g);
    return w.data;
}

static const char *check(const char *s, const char *want) {
    return check_o(s, strlen(s), (opts_t){0}, want);
}

static const char *check_eof(const char *s, const char *want) {
    return check_o(s, strlen(s), (opts_t){.eof = true}, want);
}

/* Asserts that <s> is refused with <code> however it is split (and at EOF, if it waits). */
static void expect_error_o(const char *s, opts_t o, nx_http_resp_error_t code) {
    o.eof = true;
    const char *t = check_o(s, strlen(s), o, NULL);
    char want[64];
    snprintf(want, sizeof(want), "ERROR %s: ", err_name(code));
    const char *e = strstr(t, "ERROR ");
    cr_assert(e != NULL && strncmp(e, want, strlen(want)) == 0 && strstr(t, "EOF ") == NULL,
              "input \"%s\": want %s before EOF, got \"%s\"", s, want, t);
}

static void expect_error(const char *s, nx_http_resp_error_t code) {
    expect_error_o(s, (opts_t){0}, code);
}

/* ---- status lines and heads ---- */

Test(head, status_line_and_headers) {
    check("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Empty:\r\n"
          "X-Pad: \t v a l \t\r\nContent-Length: 2\r\n\r\n{}",
          "HEAD 1.1 200 [OK] length cl=2 keep-alive {Content-Type: application/json} "
          "{X-Empty: } {X-Pad: v a l} {Content-Length: 2} | BODY [{}] | DONE");
}

Test(head, reason_phrase_forms) {
    check("HTTP/1.1 404 Not Found Here\r\nContent-Length: 0\r\n\r\n",
          "HEAD 1.1 404 [Not Found Here] length cl=0 keep-alive {Content-Length: 0} | DONE");
    check("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
          "HEAD 1.1 200 [] length cl=0 keep-alive {Content-Length: 0} | DONE");
    check("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", /* SP left out before an empty reason */
          "HEAD 1.1 200 [] length cl=0 keep-alive {Content-Length: 0} | DONE");
    check("HTTP/1.1 200 \xc3\x9c\tok\r\nContent-Length: 0\r\n\r\n", /* obs-text and HTAB */
          "HEAD 1.1 200 [\xc3\x9c\tok] length cl=0 keep-alive {Content-Length: 0} | DONE");
}

Test(head, status_codes_at_the_edges) {
    check("HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n",
          "HEAD 1.1 599 [X] length cl=0 keep-alive {Content-Length: 0} | DONE");
    check("HTTP/1.1 299 X\r\nContent-Length: 0\r\n\r\n",
          "HEAD 1.1 299 [X] length cl=0 keep-alive {Content-Length: 0} | DONE");
}

Test(head, content_type_media_type_and_lookup) {
    const char *s = "HTTP/1.1 200 OK\r\ncontent-TYPE: text/event-stream ; charset=utf-8\r\n"
                    "Mcp-Session-Id: abc\r\nX-Dup: 1\r\nx-dup: 2\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 0\r\n\r\n";
    size_t n = strlen(s);
    nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, &lim, false);
    cr_assert_eq(nx_http_response_parse(&p, s, n, &ev), (int)n);
    cr_assert_eq(ev.kind, NX_HTTP_RESP_HEAD);
    const nx_http_response_t *r = ev.head;
    cr_assert(nx_str_eq(r->content_type, NX_STR("text/event-stream ; charset=utf-8")));
    cr_assert(nx_str_eq(r->media_type, NX_STR("text/event-stream")));
    cr_assert(nx_str_eq(nx_http_response_header(r, "mcp-session-id"), NX_STR("abc")));
    cr_assert(nx_str_eq(nx_http_response_header(r, "MCP-SESSION-ID"), NX_STR("abc")));
    cr_assert(nx_str_eq(nx_http_response_header(r, "X-DUP"), NX_STR("1")));
    cr_assert_null(nx_http_response_header(r, "Mcp-Session").p);
    cr_assert_null(nx_http_response_header(r, "Location").p);
    cr_assert_eq(r->header_count, 6);

    nx_http_response_parser_init(&p, &lim, false);
    const char *t =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n";
    cr_assert_gt(nx_http_response_parse(&p, t, strlen(t), &ev), 0);
    cr_assert(nx_str_eq(ev.head->media_type, NX_STR("application/json")));
    nx_http_response_parser_init(&p, &lim, false);
    t = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    cr_assert_gt(nx_http_response_parse(&p, t, strlen(t), &ev), 0);
    cr_assert_null(ev.head->content_type.p);
    cr_assert_null(ev.head->media_type.p);
}

Test(head, head_strings_point_into_the_buffer_of_the_reporting_call) {
    const char *s = "HTTP/1.1 201 Created\r\nLocation: /items/7\r\nContent-Length: 0\r\n\r\n";
    size_t n = strlen(s), k = 30;
    nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, &lim, false);
    char *b1 = malloc(k);
    memcpy(b1, s, k);
    cr_assert_eq(nx_http_response_parse(&p, b1, k, &ev), NX_AGAIN);
    char *b2 = malloc(n);
    memcpy(b2, b1, k);
    memset(b1, 'X', k);
    free(b1);
    memcpy(b2 + k, s + k, n - k);
    cr_assert_eq(nx_http_response_parse(&p, b2, n, &ev), (int)n);
    nx_str_t loc = nx_http_response_header(ev.head, "location");
    cr_assert(nx_str_eq(loc, NX_STR("/items/7")));
    cr_assert(loc.p > b2 && loc.p < b2 + n);
    cr_assert(nx_str_eq(ev.head->reason, NX_STR("Created")));
    cr_assert_eq(ev.head->reason.p, b2 + 13);
    free(b2);
}

Test(head, again_consumes_nothing_and_remembers_how_far_it_looked) {
    nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, &lim, false);
    const char *head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    const char *line = "1a;ext=1\r\n";
    char s[128];
    snprintf(s, sizeof(s), "%s%s", head, line);
    size_t n = strlen(s), k = strlen(line);
    int rc = nx_http_response_parse(&p, s, n, &ev);
    cr_assert_eq(rc, (int)strlen(head));
    cr_assert_eq(ev.kind, NX_HTTP_RESP_HEAD);
    /* the chunk-size line alone gives no event: nothing consumed, keep it and wait */
    cr_assert_eq(nx_http_response_parse(&p, s + rc, k, &ev), NX_AGAIN);
    cr_assert_eq(p.pos, k);
    cr_assert_eq(nx_http_response_parse(&p, s + rc, k, &ev), NX_AGAIN);
    cr_assert_eq(nx_http_response_parse(&p, "", 0, &ev), NX_AGAIN); /* bytes dropped: wait */
}

/* ---- body framings ---- */

Test(body, content_length) {
    check("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
          "HEAD 1.1 200 [OK] length cl=11 keep-alive {Content-Length: 11} | "
          "BODY [hello world] | DONE");
    check("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
          "HEAD 1.1 200 [OK] length cl=0 keep-alive {Content-Length: 0} | DONE");
    check("HTTP/1.1 200 OK\r\nContent-Length: 000005\r\n\r\n12345",
          "HEAD 1.1 200 [OK] length cl=5 keep-alive {Content-Length: 000005} | BODY [12345] | "
          "DONE");
}

Test(body, content_length_body_waits_and_truncation_is_an_error_at_eof) {
    check("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
          "HEAD 1.1 200 [OK] length cl=10 keep-alive {Content-Length: 10} | BODY [hello] | "
          "AGAIN");
    check_eof("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
              "HEAD 1.1 200 [OK] length cl=10 keep-alive {Content-Length: 10} | BODY [hello] | "
              "AGAIN | EOF ERROR ETRUNCATED: connection closed before Content-Length bytes");
}

Test(body, bytes_after_the_body_are_left_for_the_caller) {
    check("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1",
          "HEAD 1.1 200 [OK] length cl=3 keep-alive {Content-Length: 3} | BODY [abc] | DONE | "
          "LEFT 8");
}

Test(body, chunked_with_extensions_and_trailers) {
    check("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
          "4;ext=1;other=\"q v\"\r\nWiki\r\n"
          "5 ;x\r\npedia\r\n"
          "E\t; a = b\r\n in\r\n\r\nchunks.\r\n"
          "0;last\r\n"
          "Expires: never\r\n"
          "X-Trailer: 1\r\n"
          "\r\n",
          "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: Chunked} | "
          "BODY [Wikipedia in\r\n\r\nchunks.] | DONE");
}

Test(body, chunked_empty_and_hex_sizes) {
    check("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
          "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | DONE");
    check("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
          "0000000000000001\r\na\r\n10\r\n0123456789abcdef\r\n00\r\n\r\nNEXT",
          "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | "
          "BODY [a0123456789abcdef] | DONE | LEFT 4");
}

Test(body, chunked_data_is_handed_out_before_the_chunk_ends) {
    /* an event stream: each piece must reach the caller as soon as it arrives */
    nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, &lim, false);
    const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    cr_assert_eq(nx_http_response_parse(&p, h, strlen(h), &ev), (int)strlen(h));
    cr_assert_eq(nx_http_response_parse(&p, "40\r\ndata: ", 10, &ev), 10);
    cr_assert_eq(ev.kind, NX_HTTP_RESP_DATA);
    cr_assert(nx_str_eq(ev.data, NX_STR("data: ")));
    cr_assert_eq(nx_http_response_parse(&p, "x", 1, &ev), 1);
    cr_assert(nx_str_eq(ev.data, NX_STR("x")));
    cr_assert_eq(nx_http_response_parse(&p, "", 0, &ev), NX_AGAIN);
}

Test(body, chunk_of_the_largest_size_is_accepted_without_a_body_bound) {
    nx_http_response_limits_t l = lim;
    l.max_body = UINT64_MAX;
    const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nab";
    check_o(s, strlen(s), (opts_t){.lim = &l, .eof = true},
            "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | "
            "BODY [ab] | AGAIN | EOF ERROR ETRUNCATED: connection closed inside a chunked body");
}

Test(body, close_delimited_without_a_length) {
    check_eof("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this, until EOF\r\n\r\n",
              "HEAD 1.1 200 [OK] close cl=-1 close {Content-Type: text/plain} | "
              "BODY [all of this, until EOF\r\n\r\n] | AGAIN | EOF DONE (close)");
    check_eof("HTTP/1.0 200 OK\r\n\r\nold", "HEAD 1.0 200 [OK] close cl=-1 close | BODY [old] | "
                                            "AGAIN | EOF DONE (close)");
    check_eof("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
              "HEAD 1.0 200 [OK] close cl=-1 close {Connection: keep-alive} | AGAIN | "
              "EOF DONE (close)");
}

Test(body, http10_with_content_length_may_keep_alive) {
    check("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok",
          "HEAD 1.0 200 [OK] length cl=2 keep-alive {Connection: Keep-Alive} "
          "{Content-Length: 2} | BODY [ok] | DONE");
}

/* ---- responses without a body ---- */

Test(nobody, status_204_304_and_1xx_ignore_framing_headers) {
    check("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/",
          "HEAD 1.1 204 [No Content] none cl=5 keep-alive {Content-Length: 5} | DONE | LEFT 5");
    check("HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\nETag: \"x\"\r\n\r\n",
          "HEAD 1.1 304 [Not Modified] none cl=1000 keep-alive {Content-Length: 1000} "
          "{ETag: \"x\"} | DONE");
    check("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
          "HEAD 1.1 204 [No Content] none cl=-1 keep-alive {Transfer-Encoding: chunked} | DONE");
    /* no framing header at all would mean "until close" for a 200, but not for a 204 */
    check("HTTP/1.1 204 No Content\r\n\r\n", "HEAD 1.1 204 [No Content] none cl=-1 keep-alive | "
                                             "DONE");
}

Test(nobody, head_requests_get_no_body_whatever_the_headers_say) {
    opts_t o = {.head = true};
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] none cl=1234 keep-alive {Content-Length: 1234} | "
            "DONE");
    s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] none cl=-1 keep-alive "
            "{Transfer-Encoding: chunked} | DONE");
    s = "HTTP/1.1 200 OK\r\n\r\n"; /* not close-delimited either: the connection stays usable */
    check_o(s, strlen(s), o, "HEAD 1.1 200 [OK] none cl=-1 keep-alive | DONE");
    /* a Content-Length over the body bound does not matter when there is no body */
    nx_http_response_limits_t l = lim;
    l.max_body = 10;
    o.lim = &l;
    s = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] none cl=1000000 keep-alive "
            "{Content-Length: 1000000} | DONE");
}

Test(nobody, continue_then_the_final_response) {
    check("HTTP/1.1 100 Continue\r\n\r\n"
          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
          "INFO 1.1 100 [Continue] | "
          "HEAD 1.1 200 [OK] length cl=2 keep-alive {Content-Length: 2} | BODY [ok] | DONE");
}

Test(nobody, several_informational_heads_with_headers) {
    check("HTTP/1.1 100 Continue\r\n\r\n"
          "HTTP/1.1 102 Processing\r\n\r\n"
          "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
          "INFO 1.1 100 [Continue] | INFO 1.1 102 [Processing] | "
          "INFO 1.1 103 [Early Hints] {Link: </style.css>; rel=preload} | "
          "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | "
          "BODY [abc] | DONE");
}

Test(nobody, eof_after_an_informational_head_is_truncation) {
    check_eof("HTTP/1.1 100 Continue\r\n\r\n",
              "INFO 1.1 100 [Continue] | AGAIN | EOF ERROR ETRUNCATED: connection closed after "
              "a 1xx response");
    check_eof("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2",
              "INFO 1.1 100 [Continue] | AGAIN | EOF ERROR ETRUNCATED: connection closed inside "
              "the response head");
    /* EOF reported right after the INFO event, before another parse call */
    nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, &lim, false);
    const char *s = "HTTP/1.1 100 Continue\r\n\r\n";
    cr_assert_eq(nx_http_response_parse(&p, s, strlen(s), &ev), (int)strlen(s));
    cr_assert_eq(ev.kind, NX_HTTP_RESP_INFO);
    cr_assert_eq(nx_http_response_eof(&p, &ev), NX_EPROTO);
    cr_assert_eq(p.error, NX_HTTP_RESP_ETRUNCATED);
    cr_assert_str_eq(p.error_message, "connection closed after a 1xx response");
}

Test(nobody, switching_protocols_ends_http_on_the_connection) {
    check("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
          "\x81\x05hello",
          "HEAD 1.1 101 [Switching Protocols] none cl=-1 close upgrade {Upgrade: websocket} "
          "{Connection: Upgrade} | DONE (close) | LEFT 7");
}

/* ---- keep-alive ---- */

Test(keep_alive, version_and_connection_tokens_for_every_framing) {
    static const struct {
        const char *version, *connection; /* connection NULL: no Connection field */
        bool keep_alive;
    } cases[] = {
        {"1.1", NULL, true},
        {"1.1", "close", false},
        {"1.1", "Close", false},
        {"1.1", "keep-alive", true},
        {"1.1", "foo, close", false},
        {"1.1", "keep-alive, close", false},
        {"1.1", "closed", true},
        {"1.0", NULL, false},
        {"1.0", "keep-alive", true},
        {"1.0", "KEEP-ALIVE", true},
        {"1.0", " te ,\tkeep-alive ,", true},
        {"1.0", "keep-alive, close", false},
        {"1.0", "close", false},
    };
    static const struct {
        const char *headers, *body;
        bool always_close, needs_11;
    } framings[] = {
        {"Content-Length: 2\r\n", "ok", false, false},
        {"Transfer-Encoding: chunked\r\n", "2\r\nok\r\n0\r\n\r\n", false, true},
        {"", "until close", true, false},
    };
    char s[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t f = 0; f < sizeof(framings) / sizeof(framings[0]); f++) {
            if (framings[f].needs_11 && strcmp(cases[i].version, "1.0") == 0) continue;
            char conn[128] = "";
            if (cases[i].connection)
                snprintf(conn, sizeof(conn), "Connection: %s\r\n", cases[i].connection);
            snprintf(s, sizeof(s), "HTTP/%s 200 OK\r\n%s%s\r\n%s", cases[i].version, conn,
                     framings[f].headers, framings[f].body);
            nx_http_response_parser_t p;
            nx_http_response_event_t ev;
            nx_http_response_parser_init(&p, &lim, false);
            size_t n = strlen(s), off = 0;
            int rc;
            while ((rc = nx_http_response_parse(&p, s + off, n - off, &ev)) >= 0 &&
                   ev.kind != NX_HTTP_RESP_DONE)
                off += (size_t)rc;
            if (rc == NX_AGAIN) rc = nx_http_response_eof(&p, &ev);
            cr_assert(rc >= 0 && ev.kind == NX_HTTP_RESP_DONE, "%s", s);
            bool want = cases[i].keep_alive && !framings[f].always_close;
            cr_assert_eq(ev.head->keep_alive, want, "%s", s);
        }
    }
}

Test(keep_alive, consecutive_responses_on_one_connection) {
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                    "HTTP/1.1 204 No Content\r\n\r\n"
                    "HTTP/1.1 100 Continue\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nc";
    check_o(s, strlen(s), (opts_t){.pipeline = true, .eof = true},
            "HEAD 1.1 200 [OK] length cl=1 keep-alive {Content-Length: 1} | BODY [a] | DONE | "
            "HEAD 1.1 204 [No Content] none cl=-1 keep-alive | DONE | "
            "INFO 1.1 100 [Continue] | "
            "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | "
            "BODY [b] | DONE | "
            "HEAD 1.1 200 [OK] length cl=1 close {Connection: close} {Content-Length: 1} | "
            "BODY [c] | DONE (close) | AGAIN | "
            "EOF ERROR ENO_RESPONSE: connection closed before any response");
}

Test(keep_alive, informational_heads_do_not_decide_the_connection) {
    check("HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n"
          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
          "INFO 1.1 100 [Continue] {Connection: close} | "
          "HEAD 1.1 200 [OK] length cl=0 keep-alive {Content-Length: 0} | DONE");
}

/* ---- EOF ---- */

Test(eof, before_and_inside_a_response) {
    nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, &lim, false);
    cr_assert_eq(nx_http_response_eof(&p, &ev), NX_EPROTO);
    cr_assert_eq(p.error, NX_HTTP_RESP_ENO_RESPONSE);
    nx_http_response_parser_init(&p, &lim, false);
    cr_assert_eq(nx_http_response_parse(&p, "", 0, &ev), NX_AGAIN);
    cr_assert_eq(nx_http_response_eof(&p, &ev), NX_EPROTO);
    cr_assert_eq(p.error, NX_HTTP_RESP_ENO_RESPONSE);
    check_eof("H", "AGAIN | EOF ERROR ETRUNCATED: connection closed inside the response head");
    check_eof("HTTP/1.1 200 OK\r\nContent-Le",
              "AGAIN | EOF ERROR ETRUNCATED: connection closed inside the response head");
    check_eof("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
              "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | "
              "BODY [ab] | AGAIN | EOF ERROR ETRUNCATED: connection closed inside a chunked body");
    check_eof("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n",
              "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | "
              "AGAIN | EOF ERROR ETRUNCATED: connection closed inside a chunked body");
}

Test(eof, after_a_complete_response_is_fine) {
    check_eof("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
              "HEAD 1.1 200 [OK] length cl=1 keep-alive {Content-Length: 1} | BODY [x] | DONE | "
              "EOF DONE");
    /* the last DATA was reported but DONE not yet asked for */
    nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, &lim, false);
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
    int rc = nx_http_response_parse(&p, s, strlen(s), &ev);
    cr_assert_eq(nx_http_response_parse(&p, s + rc, 1, &ev), 1);
    cr_assert_eq(ev.kind, NX_HTTP_RESP_DATA);
    cr_assert_eq(nx_http_response_eof(&p, &ev), 0);
    cr_assert_eq(ev.kind, NX_HTTP_RESP_DONE);
    cr_assert(ev.head->keep_alive);
}

Test(eof, done_is_stable) {
    nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, &lim, false);
    const char *s = "HTTP/1.1 204 No Content\r\n\r\nxyz";
    int rc = nx_http_response_parse(&p, s, strlen(s), &ev);
    cr_assert_eq(rc, (int)strlen(s) - 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(nx_http_response_parse(&p, s + rc, 3, &ev), 0);
        cr_assert_eq(ev.kind, NX_HTTP_RESP_DONE);
    }
}

/* ---- rejections, each with its code ---- */

Test(reject, status_line) {
    static const char *cases[] = {
        "HTTX/1.1 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n", /* a stray line end before the status line */
        " HTTP/1.1 200 OK\r\n\r\n",
        "\x16\x03\x01\x02\x00", /* TLS where plain text was expected: refused at once */
        "HTTP/1.1\r\n\r\n",
        "HTTP/1 200 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200OK\r\n\r\n",
        "HTTP/1.1\t200 OK\r\n\r\n",
        "HTTP/1.10 200 OK\r\n\r\n",
        "HTTP/11.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 O\x7fK\r\n\r\n",
        "HTTP/1.1 200 OK\rX\r\n\r\n", /* bare CR in the reason phrase */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i], NX_HTTP_RESP_ESTATUS_LINE);
}

Test(reject, version_and_status_code) {
    expect_error("HTTP/2.0 200 OK\r\n\r\n", NX_HTTP_RESP_EVERSION);
    expect_error("HTTP/1.2 200 OK\r\n\r\n", NX_HTTP_RESP_EVERSION);
    expect_error("HTTP/0.9 200 OK\r\n\r\n", NX_HTTP_RESP_EVERSION);
    expect_error("HTTP/3.0 200\r\n\r\n", NX_HTTP_RESP_EVERSION);
    expect_error("HTTP/1.1 099 Low\r\n\r\n", NX_HTTP_RESP_ESTATUS);
    expect_error("HTTP/1.1 000 Zero\r\n\r\n", NX_HTTP_RESP_ESTATUS);
    expect_error("HTTP/1.1 600 High\r\n\r\n", NX_HTTP_RESP_ESTATUS);
    expect_error("HTTP/1.1 999\r\n\r\n", NX_HTTP_RESP_ESTATUS);
}

Test(reject, bare_lf_anywhere_a_crlf_belongs) {
    static const char *cases[] = {
        "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n",
        "HTTP/1.1 200 OK\r\nX: a\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i], NX_HTTP_RESP_EBARE_LF);
}

Test(reject, obs_fold_and_leading_whitespace) {
    expect_error("HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
                 NX_HTTP_RESP_EOBS_FOLD);
    expect_error("HTTP/1.1 200 OK\r\nX-A: b\r\n\tc\r\nContent-Length: 0\r\n\r\n",
                 NX_HTTP_RESP_EOBS_FOLD);
    expect_error("HTTP/1.1 200 OK\r\n Content-Length: 0\r\n\r\n", NX_HTTP_RESP_EOBS_FOLD);
}

Test(reject, malformed_header_lines) {
    static const char *cases[] = {
        "HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n",    "HTTP/1.1 200 OK\r\nX-A\t: b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",    "HTTP/1.1 200 OK\r\n: b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX(A): b\r\n\r\n",    "HTTP/1.1 200 OK\r\nX-A: b\x01z\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\x7f\r\n\r\n", "HTTP/1.1 200 OK\r\nX-A: b\rz\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\r\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_error(cases[i], NX_HTTP_RESP_EHEADER);
    /* a NUL is a control character like any other, not the end of a string */
    static const char nul[] = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n";
    check_o(nul, sizeof(nul) - 1, (opts_t){0}, "ERROR EHEADER: control character in header value");
    static const char nul_name[] = "HTTP/1.1 200 OK\r\nX\0A: b\r\n\r\n";
    check_o(nul_name, sizeof(nul_name) - 1, (opts_t){0},
            "ERROR EHEADER: invalid character in header name");
}

Test(reject, content_length) {
    static const char *values[] = {"abc",
                                   "-1",
                                   "+5",
                                   "0x5",
                                   "5 5",
                                   "5,5",
                                   "5, 5",
                                   "",
                                   "1e3",
                                   "5.0",
                                   "9223372036854775808",
                                   "99999999999999999999999"};
    char s[256];
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n", values[i]);
        expect_error(s, NX_HTTP_RESP_ECL_INVALID);
    }
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
                 NX_HTTP_RESP_ECL_CONFLICT);
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n"
                 "Content-Length: 4\r\n\r\nhello",
                 NX_HTTP_RESP_ECL_CONFLICT);
}

Test(reject, repeated_equal_content_length_is_one) {
    check("HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc",
          "HEAD 1.1 200 [OK] length cl=3 keep-alive {Content-Length: 3} {content-length: 3} | "
          "BODY [abc] | DONE");
}

Test(reject, smuggling_framing_conflicts) {
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                 "0\r\n\r\n",
                 NX_HTTP_RESP_ECL_AND_TE);
    expect_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "0\r\n\r\n",
                 NX_HTTP_RESP_ECL_AND_TE);
    /* even where there is no body: the server is confused about framing */
    expect_error("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n",
                 NX_HTTP_RESP_ECL_AND_TE);
    expect_error("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 NX_HTTP_RESP_ETE_HTTP10);
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
                 NX_HTTP_RESP_EHEADER);
}

Test(reject, unsupported_transfer_codings) {
    static const char *codings[] = {"gzip",     "chunked, gzip", "gzip, chunked",   "identity",
                                    "xchunked", "chunked;q=1",   "chunked,chunked", ""};
    char s[256];
    for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++) {
        snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n0\r\n\r\n",
                 codings[i]);
        expect_error(s, NX_HTTP_RESP_ETE_UNSUPPORTED);
    }
    expect_error("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n0\r\n\r\n",
                 NX_HTTP_RESP_ETE_UNSUPPORTED);
}

static void expect_chunked_error(const char *body, nx_http_resp_error_t code) {
    char s[512];
    snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s", body);
    expect_error(s, code);
}

Test(reject, chunked_framing) {
    static const char *size_errors[] = {
        "zz\r\nhello\r\n0\r\n\r\n",                /* not hex */
        "\r\nhello\r\n0\r\n\r\n",                  /* empty size */
        "-5\r\nhello\r\n0\r\n\r\n",                /* sign */
        "0x5\r\nhello\r\n0\r\n\r\n",               /* 0x prefix */
        "00000000000000005\r\nhello\r\n0\r\n\r\n", /* 17 hex digits, leading zeros */
        "5\rhello\r\n0\r\n\r\n",                   /* CR not followed by LF */
        "5 \r\nhello\r\n0\r\n\r\n",                /* whitespace without an extension */
        "5x\r\nhello\r\n0\r\n\r\n",                /* junk after the size */
        ";x\r\nhello\r\n0\r\n\r\n",                /* extension without a size */
    };
    for (size_t i = 0; i < sizeof(size_errors) / sizeof(size_errors[0]); i++)
        expect_chunked_error(size_errors[i], NX_HTTP_RESP_ECHUNK_SIZE);
    expect_chunked_error("5;a=\x01\r\nhello\r\n0\r\n\r\n", NX_HTTP_RESP_ECHUNK_EXT);
    expect_chunked_error("5;a=\x7f\r\nhello\r\n0\r\n\r\n", NX_HTTP_RESP_ECHUNK_EXT);
    expect_chunked_error("5\r\nhelloX\r\n0\r\n\r\n", NX_HTTP_RESP_ECHUNK_CRLF);
    expect_chunked_error("5\r\nhello\rX0\r\n\r\n", NX_HTTP_RESP_ECHUNK_CRLF);
    expect_chunked_error("5\r\nhello\r\n0\r\nTrailer\r\n\r\n", NX_HTTP_RESP_ETRAILER);
    expect_chunked_error("5\r\nhello\r\n0\r\n folded: x\r\n\r\n", NX_HTTP_RESP_ETRAILER);
    expect_chunked_error("5\r\nhello\r\n0\r\nX: \x01\r\n\r\n", NX_HTTP_RESP_ETRAILER);
}

Test(reject, chunk_size_overflow) {
    nx_http_response_limits_t l = lim;
    l.max_body = UINT64_MAX; /* so that only the 64-bit bound can refuse */
    opts_t o = {.lim = &l};
    static const char *sizes[] = {"10000000000000000", "FFFFFFFFFFFFFFFFF", "fffffffffffffffff0",
                                  "123456789abcdef01"};
    char s[256];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\n",
                 sizes[i]);
        expect_error_o(s, o, NX_HTTP_RESP_ECHUNK_OVERFLOW);
    }
    /* with a body bound, the same sizes are refused as too large first */
    snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\n", sizes[0]);
    expect_error(s, NX_HTTP_RESP_EBODY_TOO_LARGE);
}

Test(reject, errors_are_sticky) {
    nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, &lim, false);
    const char *bad = "HTTP/1.1 200 OK\r\nBad Header: x\r\n";
    cr_assert_eq(nx_http_response_parse(&p, bad, strlen(bad), &ev), NX_EPROTO);
    const char *good = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    cr_assert_eq(nx_http_response_parse(&p, good, strlen(good), &ev), NX_EPROTO);
    cr_assert_eq(nx_http_response_eof(&p, &ev), NX_EPROTO);
    cr_assert_eq(p.error, NX_HTTP_RESP_EHEADER);
    cr_assert_str_eq(p.error_message, "whitespace in header name or before the colon");
    cr_assert_str_eq(nx_http_response_strerror(p.error), "malformed header field");
}

Test(reject, every_error_code_has_a_description) {
    for (int e = NX_HTTP_RESP_OK; e <= NX_HTTP_RESP_ETRUNCATED; e++) {
        cr_assert_str_neq(nx_http_response_strerror((nx_http_resp_error_t)e), "unknown error");
        cr_assert_str_neq(err_name((nx_http_resp_error_t)e), "?");
    }
}

/* ---- limits, exactly at and one past each bound ---- */

/* A 200 head of exactly <total> bytes (complete or still missing its blank line). */
static char *head_of_size(size_t total, bool complete) {
    const char *pre = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ";
    size_t fixed = strlen(pre) + 4;
    cr_assert_geq(total, fixed + 1);
    char *s = malloc(total + 1);
    strcpy(s, pre);
    memset(s + strlen(pre), 'p', total - fixed);
    strcpy(s + total - 4, complete ? "\r\n\r\n" : "pppp");
    return s;
}

Test(limits, head_bytes_at_and_past_the_bound) {
    nx_http_response_limits_t l = lim;
    l.max_header_bytes = 100;
    opts_t o = {.lim = &l};
    char *s = head_of_size(100, true);
    const char *t = check_o(s, 100, o, NULL);
    cr_assert(strncmp(t, "HEAD 1.1 200", 12) == 0, "%s", t);
    free(s);
    s = head_of_size(101, true);
    expect_error_o(s, o, NX_HTTP_RESP_EHEAD_TOO_LARGE);
    free(s);
    /* refused once max_header_bytes are in without a blank line, not after waiting */
    s = head_of_size(100, false);
    expect_error_o(s, o, NX_HTTP_RESP_EHEAD_TOO_LARGE);
    s[99] = '\0';
    check_o(s, 99, o, "AGAIN");
    free(s);
}

Test(limits, each_informational_head_has_its_own_budget) {
    nx_http_response_limits_t l = lim;
    l.max_header_bytes = 40;
    const char *s = "HTTP/1.1 100 Continue\r\nX-A: 01234567\r\n\r\n" /* 40 bytes */
                    "HTTP/1.1 204 No Content\r\n\r\n";
    check_o(s, strlen(s), (opts_t){.lim = &l},
            "INFO 1.1 100 [Continue] {X-A: 01234567} | HEAD 1.1 204 [No Content] none cl=-1 "
            "keep-alive | DONE");
}

Test(limits, header_count_at_and_past_the_bound) {
    nx_http_response_limits_t l = lim;
    l.max_headers = 3;
    opts_t o = {.lim = &l};
    const char *ok = "HTTP/1.1 204 No Content\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    check_o(ok, strlen(ok), o,
            "HEAD 1.1 204 [No Content] none cl=-1 keep-alive {A: 1} {B: 2} {C: 3} | DONE");
    expect_error_o("HTTP/1.1 204 No Content\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", o,
                   NX_HTTP_RESP_ETOO_MANY_HEADERS);
    l.max_headers = 0;
    expect_error_o("HTTP/1.1 204 No Content\r\nA: 1\r\n\r\n", o, NX_HTTP_RESP_ETOO_MANY_HEADERS);
}

Test(limits, header_count_is_capped_by_the_array) {
    nx_http_response_limits_t l = lim;
    l.max_headers = 1000;
    l.max_header_bytes = 1 << 16;
    static char s[8192];
    strcpy(s, "HTTP/1.1 204 No Content\r\n");
    for (int i = 0; i < NX_HTTP_MAX_HEADERS_CAP; i++)
        sprintf(s + strlen(s), "X-%d: v\r\n", i);
    strcat(s, "\r\n");
    nx_http_response_parser_t *p = malloc(sizeof(*p));
    nx_http_response_event_t ev;
    nx_http_response_parser_init(p, &l, false);
    cr_assert_eq(nx_http_response_parse(p, s, strlen(s), &ev), (int)strlen(s));
    cr_assert_eq(ev.head->header_count, NX_HTTP_MAX_HEADERS_CAP);
    strcpy(s + strlen(s) - 2, "X-last: v\r\n\r\n");
    nx_http_response_parser_init(p, &l, false);
    cr_assert_eq(nx_http_response_parse(p, s, strlen(s), &ev), NX_EPROTO);
    cr_assert_eq(p->error, NX_HTTP_RESP_ETOO_MANY_HEADERS);
    free(p);
}

Test(limits, content_length_body_at_and_past_the_bound) {
    nx_http_response_limits_t l = lim;
    l.max_body = 10;
    opts_t o = {.lim = &l};
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] length cl=10 keep-alive {Content-Length: 10} | "
            "BODY [0123456789] | DONE");
    /* refused from the head alone, before any body byte */
    expect_error_o("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", o,
                   NX_HTTP_RESP_EBODY_TOO_LARGE);
}

Test(limits, chunked_body_at_and_past_the_bound) {
    nx_http_response_limits_t l = lim;
    l.max_body = 10;
    opts_t o = {.lim = &l};
    const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n";
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | "
            "BODY [abcdefghij] | DONE");
    /* refused at the size line that would pass the bound, before its data */
    s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\nghijk\r\n";
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | "
            "BODY [abcdef] | ERROR EBODY_TOO_LARGE: chunked body exceeds the body limit");
}

Test(limits, close_delimited_body_delivers_up_to_the_bound_then_fails) {
    nx_http_response_limits_t l = lim;
    l.max_body = 10;
    opts_t o = {.lim = &l, .eof = true};
    const char *s = "HTTP/1.1 200 OK\r\n\r\n0123456789";
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] close cl=-1 close | BODY [0123456789] | AGAIN | EOF DONE (close)");
    s = "HTTP/1.1 200 OK\r\n\r\n0123456789X";
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] close cl=-1 close | BODY [0123456789] | "
            "ERROR EBODY_TOO_LARGE: response body exceeds the body limit");
}

Test(limits, chunk_extensions_and_trailers_are_bounded) {
    nx_http_response_limits_t l = lim;
    l.max_header_bytes = 64;
    opts_t o = {.lim = &l};
    char s[512], ext[128];
    /* 64 extension bytes per size line are fine, on every line: the bound is per line */
    memset(ext, 'e', 63);
    ext[63] = '\0'; /* ';' + 63 */
    snprintf(s, sizeof(s),
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             "1;%s\r\na\r\n1;%s\r\nb\r\n0\r\n\r\n",
             ext, ext);
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | "
            "BODY [ab] | DONE");
    snprintf(s, sizeof(s),
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;%se\r\na\r\n0\r\n\r\n", ext);
    expect_error_o(s, o, NX_HTTP_RESP_ECHUNK_EXT);
    /* whitespace before ';' counts too, so no line can grow without bound */
    memset(ext, ' ', 70);
    ext[70] = '\0';
    snprintf(s, sizeof(s),
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1%s;x\r\na\r\n0\r\n\r\n", ext);
    expect_error_o(s, o, NX_HTTP_RESP_ECHUNK_EXT);
    /* a trailer section of exactly 64 bytes: "X: " + 57 + CRLF + CRLF */
    snprintf(s, sizeof(s),
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: %057d\r\n\r\n", 0);
    check_o(s, strlen(s), o,
            "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Transfer-Encoding: chunked} | DONE");
    snprintf(s, sizeof(s),
             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: %058d\r\n\r\n", 0);
    expect_error_o(s, o, NX_HTTP_RESP_ETRAILERS_TOO_LARGE);
}

Test(limits, default_limits_are_used_for_null) {
    nx_http_response_parser_t p;
    nx_http_response_parser_init(&p, NULL, false);
    cr_assert_eq(p.limits, &nx_http_response_default_limits);
    cr_assert_eq(p.max_headers, 100);
}

/* ---- a realistic MCP exchange, split everywhere ---- */

Test(realistic, streamable_http_sse_response) {
    check("HTTP/1.1 200 OK\r\n"
          "Content-Type: text/event-stream\r\n"
          "Cache-Control: no-cache\r\n"
          "Mcp-Session-Id: 1868a90c\r\n"
          "Transfer-Encoding: chunked\r\n"
          "\r\n"
          "e\r\nid: 1\ndata: \n\n\r\n"
          "28\r\nevent: message\ndata: {\"jsonrpc\":\"2.0\"}\n\n\r\n"
          "0\r\n\r\n",
          "HEAD 1.1 200 [OK] chunked cl=-1 keep-alive {Content-Type: text/event-stream} "
          "{Cache-Control: no-cache} {Mcp-Session-Id: 1868a90c} {Transfer-Encoding: chunked} | "
          "BODY [id: 1\ndata: \n\nevent: message\ndata: {\"jsonrpc\":\"2.0\"}\n\n] | DONE");
}
