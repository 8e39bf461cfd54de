/* libFuzzer target for the HTTP/1.1 request parser (net/http1.c): the same input parsed whole,
 * split at a data-derived point into a moved buffer, and fed in small steps must agree, and
 * every pipelined request after the first must parse without breaking the invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"
#include "nexus/errors.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static bool same_str(nx_str_t a, nx_str_t b) {
    if ((a.p == NULL) != (b.p == NULL) || a.n != b.n) return false;
    return a.n == 0 || memcmp(a.p, b.p, a.n) == 0;
}

/* Two outcomes of the same input must match field by field (their buffers differ). */
static void check_same(int rc_a, const nx_http_parser_t *pa, const nx_http_request_t *a, int rc_b,
                       const nx_http_parser_t *pb, const nx_http_request_t *b) {
    CHECK(rc_a == rc_b);
    if (rc_a == NX_EPROTO) {
        CHECK(pa->error_status == pb->error_status);
        CHECK(pa->error_message == pb->error_message);
        return;
    }
    CHECK(nx_http_parser_head_done(pa) == nx_http_parser_head_done(pb));
    if (rc_a < 0) return;
    CHECK(a->method == b->method && a->version_minor == b->version_minor);
    CHECK(a->keep_alive == b->keep_alive && a->expect_continue == b->expect_continue);
    CHECK(a->chunked == b->chunked && a->upgrade == b->upgrade);
    CHECK(a->content_length == b->content_length && a->head_len == b->head_len);
    CHECK(same_str(a->method_name, b->method_name) && same_str(a->target, b->target));
    CHECK(same_str(a->path, b->path) && same_str(a->query, b->query));
    CHECK(same_str(a->host, b->host) && same_str(a->body, b->body));
    CHECK(a->header_count == b->header_count);
    for (uint32_t i = 0; i < a->header_count; i++) {
        CHECK(same_str(a->headers[i].name, b->headers[i].name));
        CHECK(same_str(a->headers[i].value, b->headers[i].value));
    }
}

/* What a complete request must satisfy whatever the input. */
static void check_request(int rc, const nx_http_limits_t *l, const char *buf, size_t len,
                          const nx_http_request_t *r) {
    if (rc < 0) {
        CHECK(rc == NX_AGAIN || rc == NX_EPROTO);
        return;
    }
    CHECK(rc > 0 && (size_t)rc <= len);
    CHECK(r->head_len <= (size_t)rc && r->head_len <= l->max_header_bytes);
    CHECK(r->target.n > 0 && r->target.n <= l->max_uri);
    CHECK(r->header_count <= l->max_headers && r->header_count <= NX_HTTP_MAX_HEADERS_CAP);
    CHECK(r->version_minor <= 1);
    CHECK(r->body.p == buf + r->head_len && r->body.n <= l->max_body);
    CHECK(r->head_len + r->body.n <= (size_t)rc);
    if (r->chunked)
        CHECK(r->content_length == -1);
    else
        CHECK(r->body.n == (r->content_length < 0 ? 0 : (size_t)r->content_length));
    if (r->version_minor == 1) CHECK(r->host.p != NULL);
    for (uint32_t i = 0; i < r->header_count; i++) {
        const nx_http_header_t *h = &r->headers[i];
        CHECK(h->name.n > 0 && h->name.p >= buf && h->name.p + h->name.n <= buf + r->head_len);
        CHECK(memchr(h->value.p, '\n', h->value.n) == NULL);
        CHECK(memchr(h->value.p, '\r', h->value.n) == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 6) return 0;
    /* small limits from the first bytes so every limit path is reachable */
    nx_http_limits_t lim = {
        .max_header_bytes = 8u + data[0] * 4u,
        .max_headers = data[1] & 0x80 ? 1000 : data[1] & 0x1f,
        .max_uri = data[2],
        .max_body = data[3] == 0xff ? UINT64_MAX : data[3] * 4u,
    };
    size_t step = 1 + data[4] % 8;
    size_t k = size > 6 ? 1 + data[5] % (size - 6) : 0;
    data += 6;
    size -= 6;
    if (size == 0) return 0;

    static nx_http_parser_t pw, ps, pf;
    nx_http_request_t rw, rs, rf;

    /* whole buffer */
    char *whole = malloc(size);
    memcpy(whole, data, size);
    nx_http_parser_init(&pw, &lim);
    int rc_w = nx_http_parse_request(&pw, whole, size, &rw);
    check_request(rc_w, &lim, whole, size, &rw);

    /* split at k, the second call on a moved buffer of exactly the input's size */
    char *part = malloc(k);
    memcpy(part, data, k);
    nx_http_parser_init(&ps, &lim);
    int rc_s = nx_http_parse_request(&ps, part, k, &rs);
    char *moved = malloc(size);
    memcpy(moved, part, k);
    memcpy(moved + k, data + k, size - k);
    free(part);
    if (rc_s != NX_EPROTO) rc_s = nx_http_parse_request(&ps, moved, size, &rs); /* done is stable */
    check_same(rc_w, &pw, &rw, rc_s, &ps, &rs);
    free(moved);

    /* fed in steps of <step> bytes, in place */
    char *grow = malloc(size);
    nx_http_parser_init(&pf, &lim);
    int rc_f = NX_AGAIN;
    for (size_t fed = 0; fed < size && rc_f == NX_AGAIN;) {
        size_t add = size - fed < step ? size - fed : step;
        memcpy(grow + fed, data + fed, add);
        fed += add;
        rc_f = nx_http_parse_request(&pf, grow, fed, &rf);
    }
    check_same(rc_w, &pw, &rw, rc_f, &pf, &rf);
    free(grow);

    /* pipelined: whatever follows a complete request is the next one */
    size_t off = 0;
    int rc = rc_w;
    for (int n = 0; rc > 0 && n < 64; n++) {
        off += (size_t)rc;
        nx_http_parser_reset(&pw);
        rc = nx_http_parse_request(&pw, whole + off, size - off, &rw);
        check_request(rc, &lim, whole + off, size - off, &rw);
    }
    free(whole);
    return 0;
}
