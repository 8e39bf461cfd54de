/* Unit tests of the HTTP/1.1 request parser (net/http1.c): request fields, every rejection and
 * its status, limits at and past their bounds, input split anywhere or moved between calls,
 * pipelining, keep-alive, 100-continue and chunked decoding. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"
#include "nexus/errors.h"

static const nx_http_limits_t lim = {
    .max_header_bytes = 8192, .max_headers = 64, .max_uri = 2048, .max_body = 1 << 20};

/* The last whole-buffer parse: its parser, request and a writable copy of the input. */
static nx_http_parser_t P;
static nx_http_request_t R;
static char B[1 << 16];

static int parse_n_lim(const char *s, size_t n, const nx_http_limits_t *l) {
    cr_assert_leq(n, sizeof(B));
    memcpy(B, s, n);
    nx_http_parser_init(&P, l);
    memset(&R, 0, sizeof(R));
    return nx_http_parse_request(&P, B, n, &R);
}

static int parse_lim(const char *s, const nx_http_limits_t *l) {
    return parse_n_lim(s, strlen(s), l);
}

static int parse(const char *s) {
    return parse_lim(s, &lim);
}

static bool str_is(nx_str_t s, const char *lit) {
    size_t n = strlen(lit);
    return s.p != NULL && s.n == n && memcmp(s.p, lit, n) == 0;
}

#define assert_str(s, lit)                                                                         \
    cr_assert(str_is((s), (lit)), "%s is \"%.*s\", want \"%s\"", #s, (int)(s).n,                   \
              (s).p ? (s).p : "", (lit))

/* Asserts that <s> is rejected with <status>, with a message saying why. */
static void expect_reject_lim(const char *s, int status, const nx_http_limits_t *l) {
    int rc = parse_lim(s, l);
    cr_assert_eq(rc, NX_EPROTO, "want %d for \"%s\", got rc %d", status, s, rc);
    cr_assert_eq(P.error_status, status, "want %d for \"%s\", got %d (%s)", status, s,
                 P.error_status, P.error_message);
    cr_assert(P.error_message != NULL && P.error_message[0] != '\0');
}

static void expect_reject(const char *s, int status) {
    expect_reject_lim(s, status, &lim);
}

static void expect_ok(const char *s) {
    int rc = parse(s);
    cr_assert_eq(rc, (int)strlen(s), "\"%s\": rc %d (%d %s)", s, rc, P.error_status,
                 P.error_message ? P.error_message : "");
}

/* ---- a canonical text of a parse outcome, to compare split parses with whole ones ---- */

static void put(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(char *out, size_t cap, const char *fmt, ...) {
    size_t used = strlen(out);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, cap - used, fmt, ap);
    va_end(ap);
}

static void put_str(char *out, size_t cap, const char *label, nx_str_t s) {
    if (s.p == NULL)
        put(out, cap, " %s=<null>", label);
    else
        put(out, cap, " %s=[%.*s]", label, (int)s.n, s.p);
}

static void describe(char *out, size_t cap, int rc, const nx_http_parser_t *p,
                     const nx_http_request_t *r) {
    out[0] = '\0';
    put(out, cap, "rc=%d", rc);
    if (rc < 0) {
        put(out, cap, " status=%d", rc == NX_EPROTO ? p->error_status : 0);
        return;
    }
    put(out, cap, " m=%d", r->method);
    put_str(out, cap, "mn", r->method_name);
    put_str(out, cap, "t", r->target);
    put_str(out, cap, "p", r->path);
    put_str(out, cap, "q", r->query);
    put(out, cap, " v=%d ka=%d ec=%d ch=%d up=%d cl=%lld hl=%zu", r->version_minor, r->keep_alive,
        r->expect_continue, r->chunked, r->upgrade, (long long)r->content_length, r->head_len);
    put_str(out, cap, "host", r->host);
    for (uint32_t i = 0; i < r->header_count; i++) {
        put_str(out, cap, "hn", r->headers[i].name);
        put_str(out, cap, "hv", r->headers[i].value);
    }
    put_str(out, cap, "body", r->body);
}

/* ---- feeding input in pieces ---- */

typedef struct run {
    nx_http_parser_t p;
    nx_http_request_t r;
    char *buf;
    int rc;
} run_t;

/* Feeds s[0..n) in calls covering <first>, then <step> more bytes each; with <move> every call
 * gets a fresh exact-size copy of the buffer (so ASan catches stale pointers and overreads).
 * Asserts NX_AGAIN before the last call and head_done exactly once <head_len> bytes are in. */
static void feed(run_t *run, const char *s, size_t n, size_t first, size_t step, bool move,
                 size_t head_len) {
    nx_http_parser_init(&run->p, &lim);
    memset(&run->r, 0, sizeof(run->r));
    run->buf = move ? NULL : malloc(n);
    size_t fed = 0;
    for (size_t end = first < n ? first : n;; end = end + step < n ? end + step : n) {
        if (move) {
            char *nb = malloc(end);
            if (fed > 0) memcpy(nb, run->buf, fed);  /* keeps the parser's in-place edits */
            if (fed > 0) memset(run->buf, 'X', fed); /* stale pointers would now see garbage */
            free(run->buf);
            run->buf = nb;
        }
        memcpy(run->buf + fed, s + fed, end - fed);
        fed = end;
        run->rc = nx_http_parse_request(&run->p, run->buf, fed, &run->r);
        if (fed == n) break;
        cr_assert_eq(run->rc, NX_AGAIN, "after %zu of %zu bytes: rc %d (%s)", fed, n, run->rc,
                     run->p.error_message ? run->p.error_message : "");
        cr_assert_eq(nx_http_parser_head_done(&run->p), fed >= head_len,
                     "head_done wrong after %zu bytes (head is %zu)", fed, head_len);
    }
}

/* Parses s whole, then split at every byte boundary, one byte per call in place, and one byte
 * per call with the buffer moved each time; every outcome must equal the whole parse. */
static void check_any_split(const char *s) {
    size_t n = strlen(s);
    static char want[1 << 14], got[1 << 14];
    int rc = parse(s);
    cr_assert_eq(rc, (int)n, "whole parse: rc %d (%s)", rc, P.error_message);
    describe(want, sizeof(want), rc, &P, &R);
    size_t head_len = R.head_len;
    run_t *run = malloc(sizeof(*run));
    for (size_t k = 1; k < n; k++) {
        feed(run, s, n, k, n, true, head_len);
        describe(got, sizeof(got), run->rc, &run->p, &run->r);
        cr_assert_str_eq(got, want, "split at %zu", k);
        free(run->buf);
    }
    for (int move = 0; move <= 1; move++) {
        feed(run, s, n, 1, 1, move, head_len);
        describe(got, sizeof(got), run->rc, &run->p, &run->r);
        cr_assert_str_eq(got, want, "one byte per call%s", move ? ", buffer moved" : "");
        free(run->buf);
    }
    free(run);
}

/* ---- requests and their fields ---- */

Test(request, simple_get) {
    const char *s = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    cr_assert_eq(parse(s), (int)strlen(s));
    cr_assert_eq(R.method, NX_HTTP_GET);
    assert_str(R.path, "/");
    cr_assert_null(R.query.p);
    cr_assert_eq(R.version_minor, 1);
    cr_assert(R.keep_alive);
    assert_str(R.host, "example.com");
    cr_assert_eq(R.content_length, -1);
    cr_assert_eq(R.body.n, 0);
    cr_assert_eq(R.head_len, strlen(s));
    cr_assert(nx_http_parser_head_done(&P));
}

Test(request, all_fields) {
    const char *s = "POST /api/v1/items?x=1&y=%20 HTTP/1.1\r\n"
                    "Host: api.example.com:8080\r\n"
                    "Content-Type: \t application/json \t\r\n"
                    "X-Empty:\r\n"
                    "Content-Length: 7\r\n"
                    "\r\n"
                    "{\"a\":1}";
    cr_assert_eq(parse(s), (int)strlen(s));
    cr_assert_eq(R.method, NX_HTTP_POST);
    assert_str(R.method_name, "POST");
    assert_str(R.target, "/api/v1/items?x=1&y=%20");
    assert_str(R.path, "/api/v1/items");
    assert_str(R.query, "x=1&y=%20");
    cr_assert_eq(R.version_minor, 1);
    cr_assert(R.keep_alive);
    cr_assert_not(R.expect_continue);
    cr_assert_not(R.chunked);
    cr_assert_not(R.upgrade);
    cr_assert_eq(R.content_length, 7);
    assert_str(R.host, "api.example.com:8080");
    cr_assert_eq(R.header_count, 4);
    assert_str(R.headers[0].name, "Host");
    assert_str(R.headers[1].name, "Content-Type");
    assert_str(R.headers[1].value, "application/json");
    assert_str(R.headers[2].name, "X-Empty");
    cr_assert_eq(R.headers[2].value.n, 0);
    assert_str(R.headers[3].value, "7");
    assert_str(R.body, "{\"a\":1}");
    cr_assert_eq(R.head_len, strlen(s) - 7);
    cr_assert_eq(R.body.p, B + R.head_len);
}

Test(request, known_methods_map_to_the_enum_and_others_are_accepted) {
    static const struct {
        const char *name;
        nx_http_method_t m;
    } cases[] = {
        {"GET", NX_HTTP_GET},         {"HEAD", NX_HTTP_HEAD},       {"POST", NX_HTTP_POST},
        {"PUT", NX_HTTP_PUT},         {"DELETE", NX_HTTP_DELETE},   {"PATCH", NX_HTTP_PATCH},
        {"OPTIONS", NX_HTTP_OPTIONS}, {"CONNECT", NX_HTTP_CONNECT}, {"TRACE", NX_HTTP_TRACE},
        {"PURGE", NX_HTTP_OTHER},     {"get", NX_HTTP_OTHER},       {"M-SEARCH", NX_HTTP_OTHER},
    };
    char s[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(s, sizeof(s), "%s /x HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].name);
        expect_ok(s);
        cr_assert_eq(R.method, cases[i].m, "%s", cases[i].name);
        assert_str(R.method_name, cases[i].name);
    }
}

Test(request, http10_without_host) {
    expect_ok("GET /index.html HTTP/1.0\r\n\r\n");
    cr_assert_eq(R.version_minor, 0);
    cr_assert_null(R.host.p);
    cr_assert_eq(R.header_count, 0);
}

Test(request, absolute_form_takes_host_and_path_from_the_target) {
    expect_ok("GET http://example.com:81/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_str(R.target, "http://example.com:81/a/b?c=d");
    assert_str(R.path, "/a/b");
    assert_str(R.query, "c=d");
    assert_str(R.host, "example.com:81");
    expect_ok("GET HTTPS://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_str(R.path, "/");
    cr_assert_null(R.query.p);
}

Test(request, asterisk_form_only_for_options) {
    expect_ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_str(R.path, "*");
    expect_reject("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

Test(request, empty_query_is_present_but_empty) {
    expect_ok("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_str(R.path, "/p");
    cr_assert_not_null(R.query.p);
    cr_assert_eq(R.query.n, 0);
}

Test(request, leading_empty_lines_are_skipped_and_consumed) {
    const char *s = "\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    cr_assert_eq(parse(s), (int)strlen(s));
    assert_str(R.method_name, "GET");
    assert_str(R.path, "/x");
}

Test(request, raw_utf8_in_target_is_accepted) {
    expect_ok("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_str(R.path, "/caf\xc3\xa9");
}

Test(request, incomplete_input_asks_for_more) {
    cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: h\r\n"), NX_AGAIN);
    cr_assert_not(nx_http_parser_head_done(&P));
    cr_assert_eq(parse(""), NX_AGAIN);
    cr_assert_eq(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab"), NX_AGAIN);
    cr_assert(nx_http_parser_head_done(&P));
    cr_assert_eq(R.content_length, 4);
}

/* ---- rejections ---- */

Test(malformed, request_line_is_400) {
    static const char *cases[] = {
        " / HTTP/1.1\r\nHost: h\r\n\r\n",              /* empty method */
        "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",           /* separator in the method */
        "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",          /* two spaces */
        "GET /  HTTP/1.1\r\nHost: h\r\n\r\n",          /* two spaces before the version */
        "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",          /* trailing space */
        "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",          /* tab as separator */
        "GET /a\x01z HTTP/1.1\r\nHost: h\r\n\r\n",     /* control char in target */
        "GET /a\x7fz HTTP/1.1\r\nHost: h\r\n\r\n",     /* DEL in target */
        "GET /a\tz HTTP/1.1\r\nHost: h\r\n\r\n",       /* tab in target */
        "GET a/b HTTP/1.1\r\nHost: h\r\n\r\n",         /* not origin-form */
        "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n",    /* other scheme */
        "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n",   /* absolute-form without host */
        "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", /* userinfo */
        "GET / http/1.1\r\nHost: h\r\n\r\n",           /* lowercase version */
        "GET / HTTP/1.1x\r\nHost: h\r\n\r\n",          /* garbage version */
        "GET / HTTX/1.1\r\nHost: h\r\n\r\n",
        "GET /\r\nHost: h\r\n\r\n",              /* HTTP/0.9 style, no version */
        "GET / HTTP/1.1\nHost: h\r\n\r\n",       /* bare LF */
        "GET / HTTP/1.1\rHost: h\r\n\r\n",       /* bare CR */
        "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",   /* bare LF before the request */
        "\r\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", /* bare CR before the request */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_reject(cases[i], 400);
}

Test(malformed, header_lines_are_400) {
    static const char *cases[] = {
        "GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n",        /* space before colon */
        "GET / HTTP/1.1\r\nHost: h\r\nX-A\t: b\r\n\r\n",       /* tab before colon */
        "GET / HTTP/1.1\r\nHost: h\r\nNoColonHere\r\n\r\n",    /* no colon */
        "GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n",            /* empty name */
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n",   /* obs-fold with SP */
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n\tc\r\n\r\n",  /* obs-fold with HT */
        "GET / HTTP/1.1\r\n Host: h\r\n\r\n",                  /* whitespace first line */
        "GET / HTTP/1.1\r\nHost: h\r\nX(A): b\r\n\r\n",        /* separator in name */
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\x01z\r\n\r\n",    /* CTL in value */
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\x7f\r\n\r\n",     /* DEL in value */
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\rz\r\n\r\n",      /* bare CR in value */
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: b\nX-B: c\r\n\r\n", /* bare LF ends a line */
        "GET / HTTP/1.1\r\nHost: h\r\n\n",                     /* bare LF as blank line */
        "GET / HTTP/1.1\r\nHost: h\r\n\r\r\n",                 /* CR CR LF */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_reject(cases[i], 400);
}

Test(malformed, host_rules_are_400) {
    expect_reject("GET / HTTP/1.1\r\n\r\n", 400);
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
}

Test(malformed, content_length_is_400) {
    static const char *cases[] = {
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_reject(cases[i], 400);
}

Test(malformed, repeated_equal_content_length_is_accepted) {
    expect_ok("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc");
    cr_assert_eq(R.content_length, 3);
    assert_str(R.body, "abc");
}

Test(malformed, smuggling_framing_conflicts_are_400) {
    expect_reject("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                  "Content-Length: 5\r\n\r\n0\r\n\r\n",
                  400);
    expect_reject("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                  400);
    expect_reject("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
                  400);
    expect_reject("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

Test(malformed, unsupported_transfer_coding_is_501) {
    static const char *codings[] = {"gzip",     "chunked, gzip", "gzip, chunked",  "identity",
                                    "xchunked", "chunked;q=1",   "chunked,chunked"};
    char s[256];
    for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++) {
        snprintf(s, sizeof(s),
                 "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: %s\r\n\r\n0\r\n\r\n",
                 codings[i]);
        expect_reject(s, 501);
    }
    expect_reject("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                  501);
}

Test(malformed, unsupported_http_version_is_505) {
    static const char *versions[] = {"HTTP/2.0", "HTTP/3", "HTTP/1.2", "HTTP/0.9", "HTTP/2"};
    char s[128];
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        snprintf(s, sizeof(s), "GET / %s\r\nHost: h\r\n\r\n", versions[i]);
        expect_reject(s, 505);
    }
}

Test(malformed, garbage_is_rejected_without_waiting_for_a_line_end) {
    /* a TLS ClientHello sent to the plain-text port */
    cr_assert_eq(parse_n_lim("\x16\x03\x01\x02\x00\x01", 6, &lim), NX_EPROTO);
    cr_assert_eq(P.error_status, 400);
    cr_assert_eq(parse("GET /a\x01"), NX_EPROTO);
    cr_assert_eq(P.error_status, 400);
}

Test(malformed, errors_are_sticky) {
    const char *s = "GET / HTTP/1.1\r\nBad Header: x\r\nHost: h\r\n\r\n";
    cr_assert_eq(parse_n_lim(s, 32, &lim), NX_EPROTO); /* the bad line is complete */
    memcpy(B, s, strlen(s));                           /* the rest would parse fine */
    cr_assert_eq(nx_http_parse_request(&P, B, strlen(s), &R), NX_EPROTO);
    cr_assert_eq(P.error_status, 400);
}

Test(malformed, chunked_framing_is_400) {
    static const char *bodies[] = {
        "zz\r\nhello\r\n0\r\n\r\n",                /* not hex */
        "\r\nhello\r\n0\r\n\r\n",                  /* empty size */
        "-5\r\nhello\r\n0\r\n\r\n",                /* sign */
        "0x5\r\nhello\r\n0\r\n\r\n",               /* 0x prefix */
        "00000000000000005\r\nhello\r\n0\r\n\r\n", /* 17 hex digits */
        "5\r\nhelloX\r\n0\r\n\r\n",                /* no CRLF after data */
        "5\r\nhello\n0\r\n\r\n",                   /* bare LF after data */
        "5\nhello\r\n0\r\n\r\n",                   /* bare LF after size */
        "5\rhello\r\n0\r\n\r\n",                   /* bare CR after size */
        "5 \r\nhello\r\n0\r\n\r\n",                /* whitespace, no extension */
        "5;a=\x01\r\nhello\r\n0\r\n\r\n",          /* CTL in extension */
        "5;a\nb\r\nhello\r\n0\r\n\r\n",            /* LF in extension */
        "5\r\nhello\r\n0\r\nTrailer\r\n\r\n",      /* trailer without colon */
        "5\r\nhello\r\n0\r\nX: a\nY: b\r\n\r\n",   /* bare LF in trailers */
        "5\r\nhello\r\n0\r\n folded: x\r\n\r\n",   /* obs-fold in trailers */
    };
    char s[256];
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        snprintf(s, sizeof(s), "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                 bodies[i]);
        expect_reject(s, 400);
    }
}

/* ---- limits, exactly at and one past each bound ---- */

/* A GET whose head (request line through blank line) is exactly <total> bytes. */
static char *head_of_size(size_t total, bool complete) {
    const char *pre = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    size_t fixed = strlen(pre) + 4;
    cr_assert_geq(total, fixed + 1);
    char *s = malloc(total + 1);
    strcpy(s, pre);
    memset(s + strlen(pre), 'p', total - fixed);
    strcpy(s + total - 4, complete ? "\r\n\r\n" : "pppp");
    return s;
}

Test(limits, header_bytes_at_and_past_the_bound) {
    nx_http_limits_t l = lim;
    l.max_header_bytes = 100;
    char *s = head_of_size(100, true);
    cr_assert_eq(parse_lim(s, &l), 100);
    cr_assert_eq(R.head_len, 100);
    free(s);
    s = head_of_size(101, true);
    expect_reject_lim(s, 431, &l);
    free(s);
}

Test(limits, oversized_partial_head_is_431_without_waiting) {
    nx_http_limits_t l = lim;
    l.max_header_bytes = 100;
    char *s = head_of_size(100, false); /* 100 bytes and still no blank line */
    expect_reject_lim(s, 431, &l);
    s[99] = '\0';
    cr_assert_eq(parse_lim(s, &l), NX_AGAIN);
    free(s);
}

Test(limits, header_count_at_and_past_the_bound) {
    nx_http_limits_t l = lim;
    l.max_headers = 3;
    expect_reject_lim("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, &l);
    const char *at_bound = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    cr_assert_eq(parse_lim(at_bound, &l), (int)strlen(at_bound));
    cr_assert_eq(R.header_count, 3);
}

Test(limits, header_count_is_capped_by_the_array) {
    nx_http_limits_t l = lim;
    l.max_headers = 1000;
    char s[8192] = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (int i = 1; i < NX_HTTP_MAX_HEADERS_CAP; i++)
        sprintf(s + strlen(s), "X-%d: v\r\n", i);
    strcat(s, "\r\n");
    cr_assert_eq(parse_lim(s, &l), (int)strlen(s));
    cr_assert_eq(R.header_count, NX_HTTP_MAX_HEADERS_CAP);
    strcpy(s + strlen(s) - 2, "X-last: v\r\n\r\n");
    expect_reject_lim(s, 431, &l);
}

Test(limits, uri_at_and_past_the_bound) {
    nx_http_limits_t l = lim;
    l.max_uri = 16;
    cr_assert_gt(parse_lim("GET /aaaaaaaaaaaaaaa HTTP/1.1\r\nHost: h\r\n\r\n", &l), 0);
    assert_str(R.target, "/aaaaaaaaaaaaaaa");
    cr_assert_eq(R.target.n, 16);
    expect_reject_lim("GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: h\r\n\r\n", 414, &l);
}

Test(limits, long_target_is_414_before_the_line_ends) {
    nx_http_limits_t l = lim;
    l.max_uri = 16;
    cr_assert_eq(parse_lim("GET /aaaaaaaaaaaaaaa", &l), NX_AGAIN); /* 16 so far: may still end */
    expect_reject_lim("GET /aaaaaaaaaaaaaaaa", 414, &l);
}

Test(limits, long_target_is_414_not_431) {
    nx_http_limits_t l = lim;
    l.max_uri = 64;
    l.max_header_bytes = 32;
    char s[512] = "GET /";
    memset(s + 5, 'a', 200);
    strcpy(s + 205, " HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_reject_lim(s, 414, &l);
    s[60] = '\0'; /* a 56-byte target so far: over the head bound but not yet over max_uri */
    cr_assert_eq(parse_lim(s, &l), NX_AGAIN);
}

Test(limits, content_length_at_and_past_max_body) {
    nx_http_limits_t l = lim;
    l.max_body = 10;
    cr_assert_gt(
        parse_lim("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", &l), 0);
    assert_str(R.body, "0123456789");
    /* refused from the head alone, before any body byte arrives */
    expect_reject_lim("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", 413, &l);
}

Test(limits, chunked_body_at_and_past_max_body) {
    nx_http_limits_t l = lim;
    l.max_body = 10;
    const char *head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    char s[256];
    snprintf(s, sizeof(s), "%s6\r\nabcdef\r\n4\r\nghij\r\n0\r\n\r\n", head);
    cr_assert_eq(parse_lim(s, &l), (int)strlen(s));
    assert_str(R.body, "abcdefghij");
    /* refused at the size line that would pass the bound, before its data */
    snprintf(s, sizeof(s), "%s6\r\nabcdef\r\n5\r\n", head);
    expect_reject_lim(s, 413, &l);
    snprintf(s, sizeof(s), "%sFFFFFFFFFFFFFFFF\r\n", head);
    expect_reject_lim(s, 413, &l);
}

Test(limits, trailer_section_is_bounded_by_max_header_bytes) {
    nx_http_limits_t l = lim;
    l.max_header_bytes = 80;
    const char *head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
    char s[512];
    /* trailer section of exactly 80 bytes: "X: " + 73 + CRLF + CRLF */
    snprintf(s, sizeof(s), "%sX: %073d\r\n\r\n", head, 0);
    cr_assert_eq(parse_lim(s, &l), (int)strlen(s));
    snprintf(s, sizeof(s), "%sX: %074d\r\n\r\n", head, 0);
    expect_reject_lim(s, 431, &l);
}

/* ---- partial input and moved buffers ---- */

Test(partial, headers_only_request_split_anywhere) {
    check_any_split("GET /search?q=io_uring&lang=c HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "User-Agent: test/1.0\r\n"
                    "Accept: */*\r\n"
                    "Connection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\n"
                    "\r\n");
    cr_assert(R.upgrade);
}

Test(partial, content_length_body_split_anywhere) {
    check_any_split("\r\nPUT /items/42 HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "Content-Type: text/plain\r\n"
                    "Content-Length: 26\r\n"
                    "Expect: 100-continue\r\n"
                    "\r\n"
                    "abcdefghijklmnopqrstuvwxyz");
    assert_str(R.body, "abcdefghijklmnopqrstuvwxyz");
    cr_assert(R.expect_continue);
}

Test(partial, chunked_body_split_anywhere) {
    check_any_split("POST /upload HTTP/1.1\r\n"
                    "Host: example.com\r\n"
                    "Transfer-Encoding: chunked\r\n"
                    "\r\n"
                    "5;name=\"va;l\"\r\nhello\r\n"
                    "1\r\n \r\n"
                    "0000a ; x=y\r\n0123456789\r\n"
                    "0\r\n"
                    "Checksum: abc\r\n"
                    "\r\n");
    assert_str(R.body, "hello 0123456789");
}

Test(partial, body_pending_after_a_moved_buffer_keeps_head_fields) {
    const char *s = "POST /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Id: 7\r\n\r\nabc";
    size_t n = strlen(s), head = n - 3;
    nx_http_parser_t *p = malloc(sizeof(*p));
    nx_http_request_t r;
    nx_http_parser_init(p, &lim);
    char *b1 = malloc(head + 1);
    memcpy(b1, s, head + 1);
    cr_assert_eq(nx_http_parse_request(p, b1, head + 1, &r), NX_AGAIN);
    char *b2 = malloc(n);
    memcpy(b2, b1, head + 1);
    memset(b1, 'X', head + 1); /* the old buffer is garbage now */
    memcpy(b2 + head + 1, s + head + 1, n - head - 1);
    cr_assert_eq(nx_http_parse_request(p, b2, n, &r), (int)n);
    assert_str(r.path, "/p");
    assert_str(r.query, "q");
    assert_str(nx_http_request_header(&r, "x-id"), "7");
    assert_str(r.body, "abc");
    cr_assert_eq(r.body.p, b2 + head);
    free(b1);
    free(b2);
    free(p);
}

/* ---- pipelining ---- */

Test(pipeline, three_requests_in_one_buffer) {
    const char *s = "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                    "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
                    "PUT /c HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nwxyz";
    size_t n = strlen(s), off = 0;
    memcpy(B, s, n);
    nx_http_parser_init(&P, &lim);
    static const char *paths[] = {"/a", "/b", "/c"}, *bodies[] = {"abcde", "", "wxyz"};
    for (int i = 0; i < 3; i++) {
        int rc = nx_http_parse_request(&P, B + off, n - off, &R);
        cr_assert_gt(rc, 0, "request %d: rc %d (%s)", i, rc, P.error_message);
        assert_str(R.path, paths[i]);
        cr_assert_eq(R.body.n, strlen(bodies[i]));
        cr_assert_eq(memcmp(R.body.p, bodies[i], R.body.n), 0);
        off += (size_t)rc;
        nx_http_parser_reset(&P);
    }
    cr_assert_eq(off, n);
    cr_assert_eq(nx_http_parse_request(&P, B + off, 0, &R), NX_AGAIN);
}

Test(pipeline, partial_second_request_waits) {
    const char *s = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHo";
    size_t n = strlen(s);
    memcpy(B, s, n);
    nx_http_parser_init(&P, &lim);
    int rc = nx_http_parse_request(&P, B, n, &R);
    cr_assert_eq(rc, 28);
    nx_http_parser_reset(&P);
    cr_assert_eq(nx_http_parse_request(&P, B + rc, n - (size_t)rc, &R), NX_AGAIN);
    cr_assert_not(nx_http_parser_head_done(&P));
}

/* ---- connection management ---- */

Test(connection, keep_alive_defaults_and_tokens) {
    static const struct {
        const char *req;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: x\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: te ,\tkeep-alive ,\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_ok(cases[i].req);
        cr_assert_eq(R.keep_alive, cases[i].keep_alive, "%s", cases[i].req);
    }
}

Test(connection, upgrade_needs_both_headers) {
    expect_ok("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    cr_assert(R.upgrade);
    assert_str(nx_http_request_header(&R, "upgrade"), "websocket");
    expect_ok("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n");
    cr_assert_not(R.upgrade);
    expect_ok("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
    cr_assert_not(R.upgrade);
}

/* ---- Expect: 100-continue ---- */

Test(expect, head_is_done_before_the_body_arrives) {
    const char *s = "POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n"
                    "Content-Length: 5\r\n\r\nhello";
    size_t n = strlen(s), head = n - 5;
    memcpy(B, s, n);
    nx_http_parser_init(&P, &lim);
    cr_assert_eq(nx_http_parse_request(&P, B, head - 1, &R), NX_AGAIN);
    cr_assert_not(nx_http_parser_head_done(&P));
    cr_assert_eq(nx_http_parse_request(&P, B, head, &R), NX_AGAIN);
    cr_assert(nx_http_parser_head_done(&P));
    cr_assert(R.expect_continue);
    cr_assert_eq(R.content_length, 5);
    assert_str(R.path, "/up");
    cr_assert_eq(nx_http_parse_request(&P, B, n, &R), (int)n);
    assert_str(R.body, "hello");
}

Test(expect, other_values_and_http10_are_ignored) {
    expect_ok("POST / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\nContent-Length: 0\r\n\r\n");
    cr_assert_not(R.expect_continue);
    expect_ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
    cr_assert_not(R.expect_continue); /* no 100 Continue to an HTTP/1.0 client */
}

/* ---- chunked bodies ---- */

Test(chunked, extensions_and_trailers_are_dropped) {
    const char *s = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
                    "4;ext=1;other=\"q v\"\r\nWiki\r\n"
                    "5 ;x\r\npedia\r\n"
                    "E\r\n in\r\n\r\nchunks.\r\n"
                    "0;last\r\n"
                    "Expires: never\r\n"
                    "X-Trailer: 1\r\n"
                    "\r\n";
    cr_assert_eq(parse(s), (int)strlen(s));
    cr_assert(R.chunked);
    cr_assert_eq(R.content_length, -1);
    assert_str(R.body, "Wikipedia in\r\n\r\nchunks.");
    cr_assert_eq(R.body.p, B + R.head_len);
    cr_assert_eq(R.header_count, 2);
    cr_assert_null(nx_http_request_header(&R, "Expires").p);
}

Test(chunked, empty_body) {
    expect_ok("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    cr_assert(R.chunked);
    cr_assert_eq(R.body.n, 0);
}

Test(chunked, incomplete_body_asks_for_more) {
    cr_assert_eq(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\n"),
                 NX_AGAIN);
    cr_assert(nx_http_parser_head_done(&P));
}

/* ---- header lookup and reason phrases ---- */

Test(headers, lookup_is_case_insensitive) {
    expect_ok("GET / HTTP/1.1\r\nHost: h\r\nContent-Type: text/html\r\nX-Dup: 1\r\n"
              "x-dup: 2\r\n\r\n");
    assert_str(nx_http_request_header(&R, "content-type"), "text/html");
    assert_str(nx_http_request_header(&R, "CONTENT-TYPE"), "text/html");
    assert_str(nx_http_request_header(&R, "X-DUP"), "1");
    cr_assert_null(nx_http_request_header(&R, "Content-Length").p);
    cr_assert_null(nx_http_request_header(&R, "Content-Typ").p);
}

Test(status, reason_phrases) {
    static const int codes[] = {100, 101, 200, 201, 202, 204, 206, 301, 302, 304, 400,
                                401, 403, 404, 405, 406, 408, 409, 411, 413, 414, 415,
                                417, 422, 426, 429, 431, 500, 501, 502, 503, 504, 505};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        cr_assert_str_neq(nx_http_status_reason(codes[i]), "Unknown", "%d", codes[i]);
    cr_assert_str_eq(nx_http_status_reason(200), "OK");
    cr_assert_str_eq(nx_http_status_reason(404), "Not Found");
    cr_assert_str_eq(nx_http_status_reason(431), "Request Header Fields Too Large");
    cr_assert_str_eq(nx_http_status_reason(505), "HTTP Version Not Supported");
    cr_assert_str_eq(nx_http_status_reason(299), "Unknown");
    cr_assert_str_eq(nx_http_status_reason(-1), "Unknown");
}
