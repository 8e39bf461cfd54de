/* Unit tests of the Server-Sent Events parser (net/sse_parse.c): the WHATWG examples, every
 * field rule, CR/LF/CRLF line ends split across pieces, the BOM, comments, retry, id
 * persistence and NUL, MCP priming events, restarts and limits — each input fed whole, split at
 * every byte boundary (and every pair of boundaries when short), and byte by byte. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "nexus/errors.h"
#include "sse_parse.h"

static const nx_sse_limits_t lim = {.max_event_bytes = 1 << 20, .max_id_bytes = 256};

static const char *err_name(nx_sse_error_t e) {
    switch (e) {
    case NX_SSE_OK:
        return "OK";
    case NX_SSE_EEVENT_TOO_LARGE:
        return "EEVENT_TOO_LARGE";
    case NX_SSE_EID_TOO_LONG:
        return "EID_TOO_LONG";
    case NX_SSE_ENOMEM:
        return "ENOMEM";
    }
    return "?";
}

static void put_str(nx_buf_t *t, nx_str_t s) {
    cr_assert_not_null(s.p);
    nx_buf_append(t, "[", 1);
    nx_buf_append(t, s.p, s.n);
    nx_buf_append(t, "]", 1);
}

/* Feeds the parser the pieces s[cuts[i]..cuts[i+1]) in turn, each in a fresh exact-size buffer
 * freed right after its calls (the parser must keep nothing of its input), and writes every
 * message, then the stream's last event ID, reconnection time and any error, to <t>. */
static void run_cuts(const char *s, size_t n, const size_t *cuts, size_t ncuts,
                     const nx_sse_limits_t *l, nx_buf_t *t) {
    nx_sse_parser_t p;
    nx_sse_message_t m;
    nx_sse_parser_init(&p, l ? l : &lim);
    t->len = 0;
    bool failed = false;
    for (size_t c = 0; c + 1 < ncuts && !failed; c++) {
        size_t len = cuts[c + 1] - cuts[c];
        char *piece = malloc(len + (len == 0));
        memcpy(piece, s + cuts[c], len);
        size_t off = 0;
        for (;;) {
            int rc = nx_sse_parse(&p, piece + off, len - off, &m);
            if (rc == NX_AGAIN) break;
            if (rc < 0) {
                cr_assert_eq(rc, NX_EPROTO);
                cr_assert(p.error != NX_SSE_OK && p.error_message && *p.error_message);
                nx_buf_appendf(t, "ERROR %s: %s | ", err_name(p.error), p.error_message);
                failed = true;
                break;
            }
            cr_assert(rc > 0 && (size_t)rc <= len - off, "consumed %d of %zu", rc, len - off);
            /* a message ends at a line end */
            cr_assert(piece[off + rc - 1] == '\n' || piece[off + rc - 1] == '\r');
            nx_buf_append_str(t, "MSG ");
            put_str(t, m.type);
            nx_buf_append(t, " ", 1);
            put_str(t, m.data);
            nx_buf_append_str(t, " id=");
            put_str(t, m.id);
            nx_buf_appendf(t, " retry=%lld | ", (long long)m.retry_ms);
            off += (size_t)rc;
            if (off == len) break; /* nothing left in this piece to consume */
        }
        memset(piece, 'X', len);
        free(piece);
    }
    if (failed) {
        /* errors are sticky */
        cr_assert_eq(nx_sse_parse(&p, "data: x\n\n", 9, &m), NX_EPROTO);
    }
    nx_buf_append_str(t, "LAST ");
    put_str(t, nx_sse_parser_last_event_id(&p));
    nx_buf_appendf(t, " retry=%lld", (long long)nx_sse_parser_retry_ms(&p));
    nx_buf_append(t, "", 1);
    nx_sse_parser_dispose(&p);
}

static void run(const char *s, size_t n, size_t first, size_t step, const nx_sse_limits_t *l,
                nx_buf_t *t) {
    size_t *cuts = malloc((n + 2) * sizeof(*cuts)), nc = 0;
    cuts[nc++] = 0;
    for (size_t end = first < n ? first : n;; end = end + step < n ? end + step : n) {
        cuts[nc++] = end;
        if (end == n) break;
    }
    run_cuts(s, n, cuts, nc, l, t);
    free(cuts);
}

/* Transcripts may hold NUL bytes (data passes through), so they are compared by length. */
#define assert_same(g, w, ...)                                                                     \
    cr_assert((g).len == (w).len && memcmp((g).data, (w).data, (w).len) == 0, __VA_ARGS__)

/* Runs <s> whole, split at every boundary, at every pair of boundaries (short inputs), byte by
 * byte and with empty pieces in between; every transcript must match, and the whole one must
 * equal <want> when given. */
static const char *check_lim(const char *s, size_t n, const nx_sse_limits_t *l, const char *want) {
    static nx_buf_t w, g;
    run(s, n, n, n, l, &w);
    if (want != NULL)
        cr_assert_str_eq(w.data, want, "input \"%.*s\":\n got \"%s\"\nwant \"%s\"", (int)n, s,
                         w.data, want);
    for (size_t k = 1; k < n; k++) {
        run(s, n, k, n, l, &g);
        assert_same(g, w, "split at %zu:\n got \"%s\"\nwant \"%s\"", k, g.data, w.data);
    }
    if (n <= 64) {
        for (size_t a = 1; a < n; a++)
            for (size_t b = a + 1; b < n; b++) {
                size_t cuts[] = {0, a, b, n};
                run_cuts(s, n, cuts, 4, l, &g);
                assert_same(g, w, "split at %zu and %zu:\n got \"%s\"", a, b, g.data);
            }
    }
    run(s, n, 1, 1, l, &g);
    assert_same(g, w, "byte by byte:\n got \"%s\"\nwant \"%s\"", g.data, w.data);
    /* empty pieces change nothing */
    size_t cuts[] = {0, 0, n / 2, n / 2, n, n};
    run_cuts(s, n, cuts, 6, l, &g);
    assert_same(g, w, "with empty pieces");
    nx_buf_dispose(&g);
    return w.data;
}

static const char *check(const char *s, const char *want) {
    return check_lim(s, strlen(s), NULL, want);
}

/* ---- the examples of the WHATWG specification (9.2.6) ---- */

Test(whatwg, three_messages_one_with_two_lines) {
    check("data: This is the first message.\n\n"
          "data: This is the second message, it\n"
          "data: has two lines.\n\n"
          "data: This is the third message.\n\n",
          "MSG [message] [This is the first message.] id=[] retry=-1 | "
          "MSG [message] [This is the second message, it\nhas two lines.] id=[] retry=-1 | "
          "MSG [message] [This is the third message.] id=[] retry=-1 | LAST [] retry=-1");
}

Test(whatwg, event_types) {
    check("event: add\ndata: 73857293\n\n"
          "event: remove\ndata: 2153\n\n"
          "event: add\ndata: 113411\n\n",
          "MSG [add] [73857293] id=[] retry=-1 | MSG [remove] [2153] id=[] retry=-1 | "
          "MSG [add] [113411] id=[] retry=-1 | LAST [] retry=-1");
}

Test(whatwg, stock_ticker_lines_joined) {
    check("data: YHOO\ndata: +2\ndata: 10\n\n",
          "MSG [message] [YHOO\n+2\n10] id=[] retry=-1 | LAST [] retry=-1");
}

Test(whatwg, comment_ids_and_one_space_stripped) {
    check(": test stream\n\n"
          "data: first event\nid: 1\n\n"
          "data:second event\nid\n\n"
          "data:  third event\n\n",
          "MSG [message] [first event] id=[1] retry=-1 | "
          "MSG [message] [second event] id=[] retry=-1 | "
          "MSG [message] [ third event] id=[] retry=-1 | LAST [] retry=-1");
}

Test(whatwg, empty_data_and_a_lone_newline_and_an_unfinished_block) {
    /* "The first block fires events with the data set to the empty string, as would the last
     * block if it was followed by a blank line. The middle block fires an event with the data
     * set to a single newline character." */
    check("data\n\ndata\ndata\n\ndata:",
          "MSG [message] [] id=[] retry=-1 | MSG [message] [\n] id=[] retry=-1 | "
          "LAST [] retry=-1");
}

Test(whatwg, with_and_without_the_space) {
    check("data:test\n\ndata: test\n\n",
          "MSG [message] [test] id=[] retry=-1 | MSG [message] [test] id=[] retry=-1 | "
          "LAST [] retry=-1");
}

/* ---- line ends ---- */

Test(lines, cr_lf_and_crlf_are_each_one_line_end) {
    const char *want = "MSG [message] [a\nb] id=[] retry=-1 | LAST [] retry=-1";
    check("data: a\ndata: b\n\n", want);
    check("data: a\rdata: b\r\r", want);
    check("data: a\r\ndata: b\r\n\r\n", want);
    check("data: a\rdata: b\n\r\n", want);
    check("data: a\r\ndata: b\r\r\n", want); /* CR ends the b line, CRLF is the blank line */
    check("data: a\ndata: b\n\r", want);
    check("data: a\ndata: b\r\n\r", want);
}

Test(lines, crlf_split_between_pieces_is_one_line_end) {
    /* had the LF after the CR counted as a blank line, "a" would be dispatched alone */
    size_t cuts[] = {0, 8, 9, 18, 19, 20};
    const char *s = "data: a\r\ndata: b\r\n\r\n";
    nx_buf_t t;
    nx_buf_init(&t);
    cr_assert_eq(s[7], '\r');
    cr_assert_eq(s[8], '\n');
    run_cuts(s, strlen(s), cuts, 6, NULL, &t);
    cr_assert_str_eq(t.data, "MSG [message] [a\nb] id=[] retry=-1 | LAST [] retry=-1");
    nx_buf_dispose(&t);
}

Test(lines, lf_then_cr_are_two_line_ends) {
    check("data: a\n\rdata: b\n\n",
          "MSG [message] [a] id=[] retry=-1 | MSG [message] [b] id=[] retry=-1 | "
          "LAST [] retry=-1");
}

Test(lines, a_cr_inside_a_value_ends_the_line) {
    check("data: a\rb\n\n", "MSG [message] [a] id=[] retry=-1 | LAST [] retry=-1");
    check("data: a\rdata\n\n", "MSG [message] [a\n] id=[] retry=-1 | LAST [] retry=-1");
}

Test(lines, many_blank_lines_dispatch_nothing_more) {
    check("\n\r\n\r\r\n\ndata: x\n\n\n\n\r\n",
          "MSG [message] [x] id=[] retry=-1 | LAST [] retry=-1");
}

/* ---- BOM ---- */

Test(bom, one_at_the_start_is_skipped) {
    check("\xef\xbb\xbf"
          "data: x\n\n",
          "MSG [message] [x] id=[] retry=-1 | LAST [] retry=-1");
    check("\xef\xbb\xbf\n"
          "data: x\n\n",
          "MSG [message] [x] id=[] retry=-1 | LAST [] retry=-1");
    check("\xef\xbb\xbf:comment\ndata: x\n\n",
          "MSG [message] [x] id=[] retry=-1 | LAST [] retry=-1");
}

Test(bom, a_second_or_late_or_partial_bom_is_content) {
    /* each makes the first line's field name unknown, so that line is ignored */
    check("\xef\xbb\xbf\xef\xbb\xbf"
          "data: x\n\ndata: y\n\n",
          "MSG [message] [y] id=[] retry=-1 | LAST [] retry=-1");
    check("\xef\xbb"
          "data: x\n\ndata: y\n\n",
          "MSG [message] [y] id=[] retry=-1 | LAST [] retry=-1");
    check("\xef"
          "data: x\n\ndata: y\n\n",
          "MSG [message] [y] id=[] retry=-1 | LAST [] retry=-1");
    check("data: x\n\n\xef\xbb\xbf"
          "data: y\n\n",
          "MSG [message] [x] id=[] retry=-1 | LAST [] retry=-1");
    /* a partial BOM then a line end: an unknown field, then a blank line */
    check("\xef\xbb\ndata: y\n\n", "MSG [message] [y] id=[] retry=-1 | LAST [] retry=-1");
    /* bytes that only look like a BOM inside a value are kept */
    check("data: \xef\xbb\xbf\n\n",
          "MSG [message] [\xef\xbb\xbf] id=[] retry=-1 | LAST [] retry=-1");
}

/* ---- fields ---- */

Test(fields, comments_are_ignored) {
    check(":ping\n\n: keep-alive\r\n\r\n", "LAST [] retry=-1");
    check(": hi\ndata: a\n: middle : of the event\ndata: b\n:\n\n",
          "MSG [message] [a\nb] id=[] retry=-1 | LAST [] retry=-1");
}

Test(fields, names_are_exact_and_unknown_ones_ignored) {
    check("Data: x\n\nDATA: x\n\ndataa: x\n\ndat: x\n\n data: x\n\n"
          "abcdefghijklmnop: x\n\nfoo\n\n",
          "LAST [] retry=-1");
    check("foo: bar\ndata: x\nbaz\n\n", "MSG [message] [x] id=[] retry=-1 | LAST [] retry=-1");
}

Test(fields, field_without_colon_has_an_empty_value) {
    check("data\n\n", "MSG [message] [] id=[] retry=-1 | LAST [] retry=-1");
    check("event\ndata: x\n\n", "MSG [message] [x] id=[] retry=-1 | LAST [] retry=-1");
    check("id: 1\n\nid\ndata: x\n\n", "MSG [message] [x] id=[] retry=-1 | LAST [] retry=-1");
    check("retry\ndata: x\n\n", "MSG [message] [x] id=[] retry=-1 | LAST [] retry=-1");
}

Test(fields, only_one_space_after_the_colon_is_stripped) {
    check("data:  two\n\n", "MSG [message] [ two] id=[] retry=-1 | LAST [] retry=-1");
    check("data:\tx\n\n", "MSG [message] [\tx] id=[] retry=-1 | LAST [] retry=-1");
    check("data: x \n\n", "MSG [message] [x ] id=[] retry=-1 | LAST [] retry=-1");
    check("event:  sp\ndata: x\n\n", "MSG [ sp] [x] id=[] retry=-1 | LAST [] retry=-1");
    check("data: a: b:c\n\n", "MSG [message] [a: b:c] id=[] retry=-1 | LAST [] retry=-1");
}

Test(fields, event_type_lasts_one_block) {
    check("event: a\ndata: 1\n\ndata: 2\n\n",
          "MSG [a] [1] id=[] retry=-1 | MSG [message] [2] id=[] retry=-1 | LAST [] retry=-1");
    /* a block with a type and no data dispatches nothing and clears the type */
    check("event: a\n\ndata: 2\n\n", "MSG [message] [2] id=[] retry=-1 | LAST [] retry=-1");
    check("event: a\nevent: b\ndata: 1\n\n", "MSG [b] [1] id=[] retry=-1 | LAST [] retry=-1");
    check("event:\ndata: 1\n\n", "MSG [message] [1] id=[] retry=-1 | LAST [] retry=-1");
    check("event: a\ndata: 1\nevent: b\n\n", "MSG [b] [1] id=[] retry=-1 | LAST [] retry=-1");
}

Test(fields, data_bytes_pass_through_unchanged) {
    static const char s[] = "data: a\0b\xff\n\n";
    const char *t = check_lim(s, sizeof(s) - 1, NULL, NULL);
    cr_assert_eq(memcmp(t, "MSG [message] [a\0b\xff] id=[]", 26), 0);
}

/* ---- retry ---- */

Test(retry, digits_only) {
    check("retry: 1000\n\n", "LAST [] retry=1000");
    check("retry: 0\n\n", "LAST [] retry=0");
    check("retry:250\ndata: x\n\n", "MSG [message] [x] id=[] retry=250 | LAST [] retry=250");
    static const char *ignored[] = {"retry: 10a\n\n", "retry: -1\n\n", "retry:\n\n",
                                    "retry: \n\n",    "retry: 1 \n\n", "retry:  5\n\n",
                                    "retry: 1.5\n\n", "retry: +5\n\n", "Retry: 5\n\n"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        check(ignored[i], "LAST [] retry=-1");
}

Test(retry, takes_effect_at_its_line_and_persists) {
    check("retry: 100\ndata: a\n\nretry: x\ndata: b\n\nretry: 200\n",
          "MSG [message] [a] id=[] retry=100 | MSG [message] [b] id=[] retry=100 | "
          "LAST [] retry=200");
    check("retry: 99999999999999999999999999\n", "LAST [] retry=9223372036854775807");
}

/* ---- id ---- */

Test(id, persists_across_events_until_changed) {
    check("id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\nid\ndata: d\n\n",
          "MSG [message] [a] id=[1] retry=-1 | MSG [message] [b] id=[1] retry=-1 | "
          "MSG [message] [c] id=[2] retry=-1 | MSG [message] [d] id=[] retry=-1 | "
          "LAST [] retry=-1");
}

Test(id, id_field_after_data_in_a_block_applies_to_that_event) {
    check("data: a\nid: 7\n\n", "MSG [message] [a] id=[7] retry=-1 | LAST [7] retry=-1");
}

Test(id, with_nul_is_ignored) {
    static const char s[] = "id: 1\n\nid: a\0b\ndata: x\n\n";
    check_lim(s, sizeof(s) - 1, NULL, "MSG [message] [x] id=[1] retry=-1 | LAST [1] retry=-1");
    static const char s2[] = "id: 1\nid: \0\ndata: x\n\n";
    check_lim(s2, sizeof(s2) - 1, NULL, "MSG [message] [x] id=[1] retry=-1 | LAST [1] retry=-1");
}

Test(id, a_block_without_data_still_sets_the_last_event_id) {
    check("id: 7\n\n", "LAST [7] retry=-1");
    check("id: 7\n\ndata: x\n\n", "MSG [message] [x] id=[7] retry=-1 | LAST [7] retry=-1");
}

Test(id, an_unfinished_block_does_not_change_the_last_event_id) {
    check("id: 1\n\nid: 2\n", "LAST [1] retry=-1");
    check("id: 1\n\nid: 2", "LAST [1] retry=-1");
}

Test(id, spaces_and_colons_are_kept) {
    check("id:  a:b \ndata\n\n", "MSG [message] [] id=[ a:b ] retry=-1 | LAST [ a:b ] retry=-1");
}

/* ---- MCP priming events ---- */

Test(mcp, priming_event_is_dispatched_with_empty_data_and_its_id) {
    const char *want = "MSG [message] [] id=[5] retry=-1 | LAST [5] retry=-1";
    check("id: 5\ndata: \n\n", want);
    check("id: 5\ndata:\n\n", want);
    check("id: 5\r\ndata: \r\n\r\n", want);
    check("id: 0-stream-1\nretry: 3000\ndata:\n\n"
          "id: 0-stream-2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
          "MSG [message] [] id=[0-stream-1] retry=3000 | "
          "MSG [message] [{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}] id=[0-stream-2] "
          "retry=3000 | LAST [0-stream-2] retry=3000");
}

Test(mcp, priming_event_data_is_empty_not_null) {
    nx_sse_parser_t p;
    nx_sse_message_t m;
    nx_sse_parser_init(&p, NULL);
    const char *s = "id: 5\ndata: \n\n";
    cr_assert_eq(nx_sse_parse(&p, s, strlen(s), &m), (int)strlen(s));
    cr_assert_not_null(m.data.p);
    cr_assert_eq(m.data.n, 0);
    cr_assert(nx_str_eq(m.id, NX_STR("5")));
    cr_assert(nx_str_eq(m.type, NX_STR("message")));
    nx_sse_parser_dispose(&p);
}

/* ---- the calling convention ---- */

Test(api, returns_at_each_message_and_again_at_the_end) {
    nx_sse_parser_t p;
    nx_sse_message_t m;
    nx_sse_parser_init(&p, NULL);
    const char *s = "data: 1\n\ndata: 2\r\n\r\ndata: 3";
    size_t n = strlen(s);
    cr_assert_eq(nx_sse_parse(&p, s, n, &m), 9);
    cr_assert(nx_str_eq(m.data, NX_STR("1")));
    cr_assert_eq(nx_sse_parse(&p, s + 9, n - 9, &m), 10); /* through the CR of the blank line */
    cr_assert(nx_str_eq(m.data, NX_STR("2")));
    cr_assert_eq(nx_sse_parse(&p, s + 19, n - 19, &m), NX_AGAIN); /* "\ndata: 3" all consumed */
    cr_assert_eq(nx_sse_parse(&p, "\n", 1, &m), NX_AGAIN);
    cr_assert_eq(nx_sse_parse(&p, "\n", 1, &m), 1);
    cr_assert(nx_str_eq(m.data, NX_STR("3")));
    cr_assert_eq(nx_sse_parse(&p, NULL, 0, &m), NX_AGAIN);
    cr_assert_eq(nx_sse_parse(&p, "x", (size_t)INT_MAX + 1, &m), -EINVAL);
    nx_sse_parser_dispose(&p);
    nx_sse_parser_dispose(NULL);
}

Test(api, restart_keeps_last_id_and_retry_and_drops_the_pending_event) {
    nx_sse_parser_t p;
    nx_sse_message_t m;
    nx_sse_parser_init(&p, NULL);
    const char *s1 = "retry: 500\nid: 9\ndata: a\n\nevent: x\ndata: partial";
    int used = nx_sse_parse(&p, s1, strlen(s1), &m);
    cr_assert_eq(used, 26);
    cr_assert(nx_str_eq(m.data, NX_STR("a")));
    cr_assert_eq(nx_sse_parse(&p, s1 + used, strlen(s1) - (size_t)used, &m), NX_AGAIN);
    nx_sse_parser_restart(&p);
    cr_assert(nx_str_eq(nx_sse_parser_last_event_id(&p), NX_STR("9")));
    /* a BOM is skipped again at the start of the new body */
    const char *s2 = "\xef\xbb\xbf"
                     "data: b\n\n";
    cr_assert_eq(nx_sse_parse(&p, s2, strlen(s2), &m), (int)strlen(s2));
    cr_assert(nx_str_eq(m.data, NX_STR("b")));
    cr_assert(nx_str_eq(m.type, NX_STR("message")));
    cr_assert(nx_str_eq(m.id, NX_STR("9")));
    cr_assert_eq(m.retry_ms, 500);
    nx_sse_parser_dispose(&p);
}

Test(api, a_crlf_split_by_restart_is_not_joined) {
    nx_sse_parser_t p;
    nx_sse_message_t m;
    nx_sse_parser_init(&p, NULL);
    cr_assert_eq(nx_sse_parse(&p, "data: a\r", 8, &m), NX_AGAIN);
    nx_sse_parser_restart(&p);
    /* a new body: its leading LF is a blank line of its own, dispatching nothing */
    cr_assert_eq(nx_sse_parse(&p, "\ndata: b\n\n", 10, &m), 10);
    cr_assert(nx_str_eq(m.data, NX_STR("b")));
    nx_sse_parser_dispose(&p);
}

/* ---- limits ---- */

Test(limits, event_bytes_at_and_past_the_bound) {
    nx_sse_limits_t l = {.max_event_bytes = 16, .max_id_bytes = 8};
    /* 15 bytes + LF = 16 */
    const char *s = "data: 0123456789abcde\n\n";
    check_lim(s, strlen(s), &l,
              "MSG [message] [0123456789abcde] id=[] retry=-1 | LAST [] retry=-1");
    s = "data: 0123456789abcdef\n\n";
    check_lim(s, strlen(s), &l,
              "ERROR EEVENT_TOO_LARGE: event larger than max_event_bytes | LAST [] retry=-1");
    /* the type counts too: 4 + 11 + LF = 16 */
    s = "event: abcd\ndata: 0123456789a\n\n";
    check_lim(s, strlen(s), &l, "MSG [abcd] [0123456789a] id=[] retry=-1 | LAST [] retry=-1");
    s = "event: abcde\ndata: 0123456789a\n\n";
    check_lim(s, strlen(s), &l,
              "ERROR EEVENT_TOO_LARGE: event larger than max_event_bytes | LAST [] retry=-1");
    /* each LF of a data line counts */
    s = "data\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\ndata\n"
        "data\ndata\ndata\n\n";
    check_lim(s, strlen(s), &l,
              "ERROR EEVENT_TOO_LARGE: event larger than max_event_bytes | LAST [] retry=-1");
}

Test(limits, the_bound_is_per_event) {
    nx_sse_limits_t l = {.max_event_bytes = 16, .max_id_bytes = 8};
    const char *s = "data: 0123456789abcde\n\ndata: 0123456789abcde\n\n: a long comment is "
                    "not stored, nor an unknown field's value\nxyz: 0123456789012345678901\n\n";
    check_lim(s, strlen(s), &l,
              "MSG [message] [0123456789abcde] id=[] retry=-1 | "
              "MSG [message] [0123456789abcde] id=[] retry=-1 | LAST [] retry=-1");
}

Test(limits, id_at_and_past_the_bound) {
    nx_sse_limits_t l = {.max_event_bytes = 16, .max_id_bytes = 8};
    const char *s = "id: 12345678\n\n";
    check_lim(s, strlen(s), &l, "LAST [12345678] retry=-1");
    s = "id: 123456789\n\n";
    check_lim(s, strlen(s), &l,
              "ERROR EID_TOO_LONG: event id longer than max_id_bytes | LAST [] retry=-1");
}

Test(limits, restart_clears_an_error) {
    nx_sse_limits_t l = {.max_event_bytes = 4, .max_id_bytes = 4};
    nx_sse_parser_t p;
    nx_sse_message_t m;
    nx_sse_parser_init(&p, &l);
    cr_assert_eq(nx_sse_parse(&p, "data: 12345\n\n", 13, &m), NX_EPROTO);
    cr_assert_eq(p.error, NX_SSE_EEVENT_TOO_LARGE);
    cr_assert_eq(nx_sse_parse(&p, "data: 1\n\n", 9, &m), NX_EPROTO);
    nx_sse_parser_restart(&p);
    cr_assert_eq(nx_sse_parse(&p, "data: 1\n\n", 9, &m), 9);
    cr_assert(nx_str_eq(m.data, NX_STR("1")));
    nx_sse_parser_dispose(&p);
}

Test(limits, large_event_in_many_pieces_and_memory_given_back) {
    nx_sse_limits_t l = {.max_event_bytes = 1 << 20, .max_id_bytes = 64};
    size_t big = (1 << 20) - 1; /* + LF = the bound exactly */
    char *s = malloc(big + 16);
    memcpy(s, "data: ", 6);
    memset(s + 6, 'x', big);
    memcpy(s + 6 + big, "\n\n", 2);
    size_t n = 6 + big + 2;
    nx_sse_parser_t p;
    nx_sse_message_t m;
    nx_sse_parser_init(&p, &l);
    int rc = NX_AGAIN;
    size_t off = 0;
    while (off < n && rc == NX_AGAIN) {
        size_t piece = n - off < 1500 ? n - off : 1500;
        rc = nx_sse_parse(&p, s + off, piece, &m);
        off += piece;
    }
    cr_assert_gt(rc, 0);
    cr_assert_eq(off, n);
    cr_assert_eq(m.data.n, big);
    cr_assert_eq(m.data.p[0], 'x');
    cr_assert_eq(m.data.p[big - 1], 'x');
    /* once the next call starts, the big buffer goes back */
    cr_assert_eq(nx_sse_parse(&p, "", 0, &m), NX_AGAIN);
    cr_assert_eq(p.data.cap, 0);
    /* one byte more and the same event is refused */
    nx_sse_parser_restart(&p);
    s[6] = 'y';
    memcpy(s + 6 + big, "z\n\n", 3);
    rc = nx_sse_parse(&p, s, n + 1, &m);
    cr_assert_eq(rc, NX_EPROTO);
    cr_assert_eq(p.error, NX_SSE_EEVENT_TOO_LARGE);
    nx_sse_parser_dispose(&p);
    free(s);
}

Test(limits, default_limits_are_used_for_null) {
    nx_sse_parser_t p;
    nx_sse_parser_init(&p, NULL);
    cr_assert_eq(p.limits, &nx_sse_default_limits);
    cr_assert_eq(nx_sse_parser_retry_ms(&p), -1);
    cr_assert(nx_str_eq(nx_sse_parser_last_event_id(&p), NX_STR("")));
    nx_sse_parser_dispose(&p);
}
