/* libFuzzer target for the HTTP/1.1 response parser (net/http_response.c): the same bytes fed
 * whole, split at a data-derived point into moved exact-size buffers, in small steps in place,
 * and byte by byte must produce the same events, body and verdict, every event must keep the
 * parser's promises, and the responses that follow a complete one are parsed the same way. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http_response.h"
#include "nexus/errors.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

/* Heads the fuzzer may put in front of its bytes, so the body states are reached at once. */
static const char *const prefixes[] = {
    "",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "HTTP/1.0 200 OK\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
    "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
};

/* In token mode each byte from 0xf0 up stands for one of these, so that the fuzzer reaches the
 * header rules without a dictionary. */
static const char *const tokens[16] = {
    "HTTP/1.1 ",
    "HTTP/1.0 ",
    "200 OK\r\n",
    "\r\n",
    "Content-Length: ",
    "Transfer-Encoding: chunked\r\n",
    "Connection: close\r\n",
    "Connection: keep-alive\r\n",
    "100 Continue\r\n\r\n",
    "204 No Content\r\n",
    "HTTP/",
    "101 Switching Protocols\r\n",
    "Content-Type: text/event-stream; charset=utf-8\r\n",
    "0\r\n\r\n",
    "Transfer-Encoding: gzip\r\n",
    ";ext=\"v\"",
};

static void put_bytes(nx_buf_t *t, const void *p, size_t n) {
    uint64_t len = n;
    nx_buf_append(t, &len, sizeof(len));
    nx_buf_append(t, p, n);
}

static void put_u64(nx_buf_t *t, uint64_t v) {
    nx_buf_append(t, &v, sizeof(v));
}

/* What one response must satisfy when its head is reported, whatever the input. */
static void check_head(const nx_http_response_t *r, const nx_http_response_limits_t *l,
                       const char *b, size_t len, int rc, bool info) {
    CHECK((size_t)rc == r->head_len && r->head_len <= len && r->head_len <= l->max_header_bytes);
    CHECK(r->status >= 100 && r->status <= 599 && r->version_minor <= 1);
    CHECK(info == (r->status < 200 && r->status != 101));
    CHECK(r->header_count <= l->max_headers && r->header_count <= NX_HTTP_MAX_HEADERS_CAP);
    CHECK(r->reason.p >= b && r->reason.p + r->reason.n <= b + r->head_len);
    CHECK(memchr(r->reason.p, '\r', r->reason.n) == NULL);
    for (uint32_t i = 0; i < r->header_count; i++) {
        const nx_http_header_t *h = &r->headers[i];
        CHECK(h->name.n > 0 && h->name.p >= b && h->name.p + h->name.n <= b + r->head_len);
        CHECK(h->value.p >= b && h->value.p + h->value.n <= b + r->head_len);
        CHECK(memchr(h->value.p, '\n', h->value.n) == NULL);
        CHECK(memchr(h->value.p, '\r', h->value.n) == NULL);
    }
    if (info) return;
    CHECK(r->content_length >= -1);
    if (r->framing == NX_HTTP_BODY_CLOSE || r->upgrade) CHECK(!r->keep_alive);
    if (r->framing == NX_HTTP_BODY_LENGTH) CHECK((uint64_t)r->content_length <= l->max_body);
    if (r->framing == NX_HTTP_BODY_CHUNKED) CHECK(r->content_length == -1);
    if (r->status == 204 || r->status == 304 || r->status < 200)
        CHECK(r->framing == NX_HTTP_BODY_NONE);
}

/* Feeds s[0..n): a first piece of <first> bytes, then <step> more each time. With <move>, the
 * unconsumed bytes go to a fresh exact-size buffer before every call and the old one is
 * scribbled over and freed; else they stay in place. Appends the transcript to <t>. */
static void drive(const uint8_t *s, size_t n, size_t first, size_t step, bool move, bool head,
                  const nx_http_response_limits_t *l, nx_buf_t *t) {
    static nx_http_response_parser_t p;
    nx_http_response_event_t ev;
    nx_http_response_parser_init(&p, l, head);
    char *base = move ? NULL : malloc(n + 1), *rb = NULL;
    size_t off = 0, rlen = 0, fed = 0, responses = 0;
    uint64_t body = 0;
    nx_http_body_framing_t framing = NX_HTTP_BODY_NONE;
    bool stopped = false;
    for (size_t end = first < n ? first : n;; end = end + step < n ? end + step : n) {
        size_t add = end - fed;
        if (move) {
            char *nb = malloc(rlen + add + 1);
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
        int zero = 0;
        while (!stopped) {
            const char *b = move ? rb : base + off;
            int rc = nx_http_response_parse(&p, b, rlen, &ev);
            if (rc == NX_AGAIN) break;
            if (rc < 0) {
                CHECK(rc == NX_EPROTO && p.error != NX_HTTP_RESP_OK && p.error_message != NULL);
                CHECK(nx_http_response_parse(&p, b, rlen, &ev) == NX_EPROTO); /* sticky */
                put_u64(t, 'E');
                put_u64(t, p.error);
                put_u64(t, (uintptr_t)p.error_message);
                stopped = true;
                break;
            }
            CHECK((size_t)rc <= rlen);
            CHECK(rc > 0 || ++zero == 1);
            switch (ev.kind) {
            case NX_HTTP_RESP_INFO:
            case NX_HTTP_RESP_HEAD: {
                const nx_http_response_t *r = ev.head;
                check_head(r, l, b, rlen, rc, ev.kind == NX_HTTP_RESP_INFO);
                put_u64(t, ev.kind);
                put_u64(t, r->status | r->version_minor << 16 | (uint64_t)r->framing << 20 |
                               (uint64_t)r->keep_alive << 24 | (uint64_t)r->upgrade << 25);
                put_u64(t, (uint64_t)r->content_length);
                put_bytes(t, r->reason.p, r->reason.n);
                put_bytes(t, r->content_type.p, r->content_type.n);
                put_bytes(t, r->media_type.p, r->media_type.n);
                put_u64(t, r->header_count);
                for (uint32_t i = 0; i < r->header_count; i++) {
                    put_bytes(t, r->headers[i].name.p, r->headers[i].name.n);
                    put_bytes(t, r->headers[i].value.p, r->headers[i].value.n);
                }
                framing = r->framing;
                body = 0;
                break;
            }
            case NX_HTTP_RESP_DATA:
                /* pieces differ with the split: only their concatenation goes in */
                CHECK(ev.data.n > 0 && ev.data.p >= b && ev.data.p + ev.data.n == b + rc);
                CHECK(framing != NX_HTTP_BODY_NONE);
                body += ev.data.n;
                CHECK(body <= l->max_body);
                nx_buf_append(t, ev.data.p, ev.data.n);
                break;
            case NX_HTTP_RESP_DONE:
                if (framing == NX_HTTP_BODY_LENGTH)
                    CHECK(body == (uint64_t)ev.head->content_length);
                if (framing == NX_HTTP_BODY_NONE) CHECK(body == 0);
                CHECK(framing != NX_HTTP_BODY_CLOSE); /* only EOF ends those */
                put_u64(t, 'D');
                put_u64(t, ev.head->keep_alive);
                break;
            default:
                CHECK(0);
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
                /* the bytes that follow are the next response on the connection */
                if (++responses == 16) {
                    stopped = true;
                    break;
                }
                nx_http_response_parser_init(&p, l, head);
                framing = NX_HTTP_BODY_NONE;
                zero = 0;
            }
        }
        if (end == n) break;
    }
    put_u64(t, stopped ? 'S' : 'A');
    if (!stopped) {
        int rc = nx_http_response_eof(&p, &ev);
        CHECK(rc == 0 || rc == NX_EPROTO);
        if (rc == 0) CHECK(ev.kind == NX_HTTP_RESP_DONE);
        put_u64(t, rc == 0 ? 0 : p.error);
        CHECK(nx_http_response_eof(&p, &ev) == rc); /* stable */
    }
    put_u64(t, rlen);
    free(move ? rb : base);
}

static bool same(const nx_buf_t *a, const nx_buf_t *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 6) return 0;
    /* small limits from the first bytes so every bound is reachable */
    nx_http_response_limits_t lim = {
        .max_header_bytes = 8u + data[0] * 4u,
        .max_headers = data[1] & 0x80 ? 1000 : data[1] & 0x1f,
        .max_body = data[2] == 0xff ? UINT64_MAX : data[2] * 8u,
    };
    bool head = data[3] & 1, expand = data[3] & 0x10;
    const char *prefix = prefixes[(data[3] >> 1) & 7];
    size_t step = 1 + data[4] % 16;
    uint8_t split = data[5];
    data += 6;
    size -= 6;

    size_t plen = strlen(prefix), n = plen;
    uint8_t *s = malloc(plen + size * 48 + 1);
    memcpy(s, prefix, plen);
    for (size_t i = 0; i < size; i++) {
        if (expand && data[i] >= 0xf0) {
            const char *tok = tokens[data[i] - 0xf0];
            memcpy(s + n, tok, strlen(tok));
            n += strlen(tok);
        } else {
            s[n++] = data[i];
        }
    }
    size_t k = n > 1 ? 1 + split % (n - 1) : n;

    nx_buf_t whole, other;
    nx_buf_init(&whole);
    nx_buf_init(&other);
    drive(s, n, n, n, false, head, &lim, &whole);

    drive(s, n, k, n, true, head, &lim, &other); /* split at k, moved */
    CHECK(same(&whole, &other));
    other.len = 0;
    drive(s, n, step, step, false, head, &lim, &other); /* steps, in place */
    CHECK(same(&whole, &other));
    other.len = 0;
    drive(s, n, 1, 1, true, head, &lim, &other); /* byte by byte, moved */
    CHECK(same(&whole, &other));

    nx_buf_dispose(&whole);
    nx_buf_dispose(&other);
    free(s);
    return 0;
}
