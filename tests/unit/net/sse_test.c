/* Unit tests of the SSE encoder (net/sse.c): exact bytes for every field combination, each
 * newline style in data, empty and trailing-newline data, rejected ids and event types leaving
 * the buffer untouched, comments, and a 1 MiB payload. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

static nx_buf_t B;

static void setup(void) {
    nx_buf_init(&B);
}
static void teardown(void) {
    nx_buf_dispose(&B);
}

TestSuite(sse, .init = setup, .fini = teardown);

/* Encodes <ev> into a fresh buffer and checks the exact bytes. */
static void expect(nx_sse_event_t ev, const char *want) {
    nx_buf_clear(&B);
    cr_assert_eq(nx_sse_encode(&B, &ev), 0);
    cr_assert_eq(B.len, strlen(want), "got %zu bytes \"%.*s\", want \"%s\"", B.len, (int)B.len,
                 B.data, want);
    cr_assert_eq(memcmp(B.data, want, B.len), 0, "got \"%.*s\", want \"%s\"", (int)B.len, B.data,
                 want);
}

static nx_sse_event_t data_ev(const char *s) {
    return (nx_sse_event_t){.data = s, .data_len = strlen(s)};
}

Test(sse, data_only) {
    expect(data_ev("hello"), "data: hello\n\n");
}

Test(sse, every_field_combination_in_order) {
    /* Each bit turns one optional field on; the order on the wire never changes. */
    for (int mask = 0; mask < 8; mask++) {
        nx_sse_event_t ev = data_ev("{\"x\":1}");
        char want[128] = "";
        if (mask & 1) {
            ev.id = "42";
            strcat(want, "id: 42\n");
        }
        if (mask & 2) {
            ev.event = "message";
            strcat(want, "event: message\n");
        }
        if (mask & 4) {
            ev.retry_ms = 3000;
            strcat(want, "retry: 3000\n");
        }
        strcat(want, "data: {\"x\":1}\n\n");
        expect(ev, want);
    }
}

Test(sse, priming_event_id_and_empty_data) {
    expect((nx_sse_event_t){.id = "1"}, "id: 1\ndata: \n\n");
    expect((nx_sse_event_t){.id = "1", .data = "", .data_len = 0}, "id: 1\ndata: \n\n");
}

Test(sse, empty_event_still_has_one_data_line) {
    expect((nx_sse_event_t){0}, "data: \n\n");
}

Test(sse, retry_extremes) {
    expect((nx_sse_event_t){.retry_ms = 1}, "retry: 1\ndata: \n\n");
    expect((nx_sse_event_t){.retry_ms = UINT32_MAX}, "retry: 4294967295\ndata: \n\n");
}

Test(sse, multi_line_data_each_newline_style) {
    const char *want = "data: a\ndata: b\ndata: c\n\n";
    expect(data_ev("a\nb\nc"), want);
    expect(data_ev("a\r\nb\r\nc"), want);
    expect(data_ev("a\rb\rc"), want);
    expect(data_ev("a\r\nb\rc"), want);
    expect(data_ev("a\nb\r\nc"), want);
}

Test(sse, lf_cr_is_two_breaks_and_blank_lines_are_kept) {
    /* "\n\r" is LF then CR, not one break; an empty line in the middle stays an empty line. */
    expect(data_ev("a\n\rb"), "data: a\ndata: \ndata: b\n\n");
    expect(data_ev("a\n\nb"), "data: a\ndata: \ndata: b\n\n");
    expect(data_ev("a\r\n\r\nb"), "data: a\ndata: \ndata: b\n\n");
}

Test(sse, trailing_newline_gives_a_final_empty_line) {
    expect(data_ev("a\n"), "data: a\ndata: \n\n");
    expect(data_ev("a\r\n"), "data: a\ndata: \n\n");
    expect(data_ev("a\r"), "data: a\ndata: \n\n");
    expect(data_ev("\n"), "data: \ndata: \n\n");
    expect(data_ev("\r\n"), "data: \ndata: \n\n");
}

Test(sse, data_len_bounds_the_data_not_strlen) {
    /* Only data_len bytes count: a CR at the end of the slice is a break even if LF follows. */
    expect((nx_sse_event_t){.data = "ab\r\ncd", .data_len = 3}, "data: ab\ndata: \n\n");
    expect((nx_sse_event_t){.data = "abcdef", .data_len = 2}, "data: ab\n\n");
}

Test(sse, appends_after_existing_content) {
    cr_assert_eq(nx_buf_append_str(&B, "x"), 0);
    nx_sse_event_t ev = data_ev("1");
    cr_assert_eq(nx_sse_encode(&B, &ev), 0);
    cr_assert_eq(nx_sse_encode(&B, &ev), 0);
    cr_assert_eq(B.len, strlen("xdata: 1\n\ndata: 1\n\n"));
    cr_assert_eq(memcmp(B.data, "xdata: 1\n\ndata: 1\n\n", B.len), 0);
}

Test(sse, line_breaks_in_id_or_event_rejected_nothing_appended) {
    const char *bad[] = {"a\nb", "a\rb", "a\r\n", "\n", "\r"};
    cr_assert_eq(nx_buf_append_str(&B, "keep"), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nx_sse_event_t ev = data_ev("x");
        ev.id = bad[i];
        cr_assert_eq(nx_sse_encode(&B, &ev), -EINVAL, "id %zu", i);
        ev.id = "1";
        ev.event = bad[i];
        cr_assert_eq(nx_sse_encode(&B, &ev), -EINVAL, "event %zu", i);
    }
    cr_assert_eq(B.len, 4);
    cr_assert_eq(memcmp(B.data, "keep", 4), 0);
}

Test(sse, null_data_with_length_rejected) {
    nx_sse_event_t ev = {.data = NULL, .data_len = 3};
    cr_assert_eq(nx_sse_encode(&B, &ev), -EINVAL);
    cr_assert_eq(B.len, 0);
}

Test(sse, empty_id_and_event_are_written) {
    /* An empty id line is how a server clears the client's last event id. */
    expect((nx_sse_event_t){.id = "", .event = ""}, "id: \nevent: \ndata: \n\n");
}

Test(sse, comment) {
    cr_assert_eq(nx_sse_comment(&B, "keep-alive"), 0);
    cr_assert_eq(nx_sse_comment(&B, NULL), 0);
    const char *want = ": keep-alive\n\n: \n\n";
    cr_assert_eq(B.len, strlen(want));
    cr_assert_eq(memcmp(B.data, want, B.len), 0);
    cr_assert_eq(nx_sse_comment(&B, "a\nb"), -EINVAL);
    cr_assert_eq(nx_sse_comment(&B, "a\r"), -EINVAL);
    cr_assert_eq(B.len, strlen(want));
}

Test(sse, one_mebibyte_of_data) {
    size_t n = 1u << 20;
    char *d = malloc(n);
    cr_assert_not_null(d);
    /* 1 MiB of lines of 63 'x' plus "\n": every line gets a prefix, the last break a final line. */
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) {
        d[i] = (i % 64 == 63) ? '\n' : 'x';
        lines += d[i] == '\n';
    }
    nx_sse_event_t ev = {.id = "7", .data = d, .data_len = n};
    cr_assert_eq(nx_sse_encode(&B, &ev), 0);
    size_t data_lines = lines + 1;
    cr_assert_eq(B.len, strlen("id: 7\n") + n + data_lines * strlen("data: ") + 1 + 1);
    cr_assert_eq(memcmp(B.data + B.len - 9, "\ndata: \n\n", 9), 0);
    /* Undo the framing and the data comes back byte for byte. */
    const char *p = B.data + strlen("id: 7\n");
    for (size_t off = 0; off < n; off += 64) {
        cr_assert_eq(memcmp(p, "data: ", 6), 0);
        cr_assert_eq(memcmp(p + 6, d + off, 64), 0);
        p += 6 + 64;
    }
    free(d);

    /* One line of 1 MiB, no breaks. */
    nx_buf_clear(&B);
    d = malloc(n);
    memset(d, 'y', n);
    ev = (nx_sse_event_t){.data = d, .data_len = n};
    cr_assert_eq(nx_sse_encode(&B, &ev), 0);
    cr_assert_eq(B.len, n + strlen("data: \n\n"));
    cr_assert_eq(memcmp(B.data + 6, d, n), 0);
    free(d);
}
