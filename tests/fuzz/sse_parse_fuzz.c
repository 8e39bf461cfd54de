/* libFuzzer target for the Server-Sent Events parser (net/sse_parse.c): the same stream fed
 * whole, split at a data-derived point, in small steps and byte by byte must dispatch the same
 * messages and end in the same state; every message must keep the parser's promises; and with
 * limits out of reach the result must equal a plain line-by-line reading of the WHATWG
 * algorithm, written here independently of the parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "nexus/errors.h"
#include "sse_parse.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

static void put_bytes(nx_buf_t *t, const void *p, size_t n) {
    uint64_t len = n;
    nx_buf_append(t, &len, sizeof(len));
    nx_buf_append(t, p, n);
}

static void put_u64(nx_buf_t *t, uint64_t v) {
    nx_buf_append(t, &v, sizeof(v));
}

static void put_message(nx_buf_t *t, nx_str_t type, nx_str_t data, nx_str_t id, int64_t retry) {
    put_u64(t, 'M');
    put_bytes(t, type.p, type.n);
    put_bytes(t, data.p, data.n);
    put_bytes(t, id.p, id.n);
    put_u64(t, (uint64_t)retry);
}

static void put_end(nx_buf_t *t, nx_str_t last_id, int64_t retry) {
    put_u64(t, 'L');
    put_bytes(t, last_id.p, last_id.n);
    put_u64(t, (uint64_t)retry);
}

/* Feeds s[0..n) in pieces (<first> bytes, then <step> each), each piece a fresh exact-size
 * copy freed after use; appends the transcript to <t>. */
static void drive(const uint8_t *s, size_t n, size_t first, size_t step, const nx_sse_limits_t *l,
                  nx_buf_t *t) {
    nx_sse_parser_t p;
    nx_sse_message_t m;
    nx_sse_parser_init(&p, l);
    bool failed = false;
    size_t fed = 0;
    for (size_t end = first < n ? first : n; !failed; end = end + step < n ? end + step : n) {
        size_t len = end - fed;
        char *piece = malloc(len + 1);
        memcpy(piece, s + fed, len);
        size_t off = 0;
        for (;;) {
            int rc = nx_sse_parse(&p, piece + off, len - off, &m);
            if (rc == NX_AGAIN) break;
            if (rc < 0) {
                CHECK(rc == NX_EPROTO && p.error != NX_SSE_OK && p.error_message != NULL);
                CHECK(nx_sse_parse(&p, piece, len, &m) == NX_EPROTO); /* sticky */
                put_u64(t, 'E');
                put_u64(t, p.error);
                put_u64(t, (uintptr_t)p.error_message);
                failed = true;
                break;
            }
            CHECK(rc > 0 && (size_t)rc <= len - off);
            CHECK(piece[off + rc - 1] == '\n' || piece[off + rc - 1] == '\r');
            CHECK(m.type.p != NULL && m.data.p != NULL && m.id.p != NULL);
            CHECK(m.type.n > 0 && memchr(m.type.p, '\n', m.type.n) == NULL);
            CHECK(memchr(m.type.p, '\r', m.type.n) == NULL);
            CHECK(memchr(m.data.p, '\r', m.data.n) == NULL);
            CHECK(memchr(m.id.p, '\0', m.id.n) == NULL && memchr(m.id.p, '\n', m.id.n) == NULL);
            CHECK(m.id.n <= l->max_id_bytes);
            CHECK(m.data.n + 1 <= l->max_event_bytes);
            CHECK(m.retry_ms >= -1);
            put_message(t, m.type, m.data, m.id, m.retry_ms);
            off += (size_t)rc;
            if (off == len) break;
        }
        memset(piece, 'X', len);
        free(piece);
        fed = end;
        if (end == n) break;
    }
    put_end(t, nx_sse_parser_last_event_id(&p), nx_sse_parser_retry_ms(&p));
    nx_sse_parser_dispose(&p);
}

/* ---- the reference: the spec's steps over whole lines, no state machine, no limits ---- */

typedef struct ref {
    nx_buf_t data, type, id, last_id;
    int64_t retry;
} ref_t;

static void ref_line(ref_t *r, const uint8_t *line, size_t n, nx_buf_t *t) {
    if (n == 0) { /* dispatch */
        r->last_id.len = 0;
        nx_buf_append(&r->last_id, r->id.data, r->id.len);
        if (r->data.len == 0) {
            r->type.len = 0;
            return;
        }
        if (r->data.data[r->data.len - 1] == '\n') r->data.len--;
        nx_str_t type = r->type.len ? (nx_str_t){r->type.data, r->type.len} : NX_STR("message");
        put_message(t, type, (nx_str_t){r->data.data ? r->data.data : "", r->data.len},
                    (nx_str_t){r->last_id.data ? r->last_id.data : "", r->last_id.len}, r->retry);
        r->data.len = r->type.len = 0;
        return;
    }
    if (line[0] == ':') return;
    const uint8_t *colon = memchr(line, ':', n);
    size_t fn = colon ? (size_t)(colon - line) : n;
    const uint8_t *v = colon ? colon + 1 : line + n;
    size_t vn = colon ? n - fn - 1 : 0;
    if (vn > 0 && v[0] == ' ') {
        v++;
        vn--;
    }
    if (fn == 5 && memcmp(line, "event", 5) == 0) {
        r->type.len = 0;
        nx_buf_append(&r->type, v, vn);
    } else if (fn == 4 && memcmp(line, "data", 4) == 0) {
        nx_buf_append(&r->data, v, vn);
        nx_buf_append(&r->data, "\n", 1);
    } else if (fn == 2 && memcmp(line, "id", 2) == 0) {
        if (memchr(v, '\0', vn) == NULL) {
            r->id.len = 0;
            nx_buf_append(&r->id, v, vn);
        }
    } else if (fn == 5 && memcmp(line, "retry", 5) == 0) {
        bool digits = vn > 0;
        for (size_t i = 0; i < vn; i++)
            digits = digits && v[i] >= '0' && v[i] <= '9';
        if (digits) {
            uint64_t x = 0;
            for (size_t i = 0; i < vn; i++)
                if (__builtin_mul_overflow(x, 10, &x) ||
                    __builtin_add_overflow(x, (uint64_t)(v[i] - '0'), &x) || x > INT64_MAX)
                    x = INT64_MAX;
            r->retry = (int64_t)x;
        }
    }
}

static void reference(const uint8_t *s, size_t n, nx_buf_t *t) {
    ref_t r;
    memset(&r, 0, sizeof(r));
    r.retry = -1;
    size_t i = n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    while (i < n) {
        size_t e = i;
        while (e < n && s[e] != '\r' && s[e] != '\n')
            e++;
        if (e == n) break; /* an unfinished line is never processed */
        ref_line(&r, s + i, e - i, t);
        i = e + 1 + (s[e] == '\r' && e + 1 < n && s[e + 1] == '\n');
    }
    put_end(t, (nx_str_t){r.last_id.data ? r.last_id.data : "", r.last_id.len}, r.retry);
    nx_buf_dispose(&r.data);
    nx_buf_dispose(&r.type);
    nx_buf_dispose(&r.id);
    nx_buf_dispose(&r.last_id);
}

static bool same(const nx_buf_t *a, const nx_buf_t *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    /* small limits from the first bytes so both bounds are reachable */
    nx_sse_limits_t lim = {.max_event_bytes = 1u + data[0] * 2u, .max_id_bytes = data[1] / 4u};
    size_t step = 1 + data[2] % 16;
    uint8_t split = data[3];
    data += 4;
    size -= 4;
    size_t k = size > 1 ? 1 + split % (size - 1) : size;

    nx_buf_t whole, other;
    nx_buf_init(&whole);
    nx_buf_init(&other);
    drive(data, size, size, size, &lim, &whole);
    drive(data, size, k, size, &lim, &other);
    CHECK(same(&whole, &other));
    other.len = 0;
    drive(data, size, step, step, &lim, &other);
    CHECK(same(&whole, &other));
    other.len = 0;
    drive(data, size, 1, 1, &lim, &other);
    CHECK(same(&whole, &other));

    /* out of reach of the limits, the parser is the spec */
    nx_sse_limits_t roomy = {.max_event_bytes = UINT32_MAX, .max_id_bytes = UINT32_MAX};
    whole.len = other.len = 0;
    drive(data, size, k, step, &roomy, &whole);
    reference(data, size, &other);
    CHECK(same(&whole, &other));

    nx_buf_dispose(&whole);
    nx_buf_dispose(&other);
    return 0;
}
