/* MCP event log (engine/mcp_events.c): seqs, replay per stream after a Last-Event-ID, eviction
 * by count and by bytes, the oversized event, stopping a replay, and Last-Event-ID parsing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mcp_events.h"

/* What a replay saw, as "seq:text " pairs. */
typedef struct seen {
    char log[512];
    size_t calls;
    size_t stop_after; /* 0 = never stop */
} seen_t;

static int record(const nx_mcp_event_t *ev, void *arg) {
    seen_t *s = arg;
    size_t used = strlen(s->log);
    snprintf(s->log + used, sizeof(s->log) - used, "%llu:%.*s ", (unsigned long long)ev->seq,
             (int)ev->len, ev->text);
    s->calls++;
    return s->stop_after != 0 && s->calls == s->stop_after;
}

static uint64_t add(nx_mcp_event_log_t *log, uint32_t stream, const char *text) {
    return nx_mcp_event_log_append(log, stream, text, strlen(text));
}

/* Replays <stream> after <after> and checks both the return value and what <fn> saw. */
static void expect_replay(const nx_mcp_event_log_t *log, uint32_t stream, uint64_t after,
                          const char *want) {
    seen_t s = {0};
    size_t n = nx_mcp_event_log_replay(log, stream, after, record, &s);
    cr_assert_str_eq(s.log, want, "stream %u after %llu", stream, (unsigned long long)after);
    cr_assert_eq(n, s.calls);
}

Test(mcp_events, seqs_start_at_one_and_increase) {
    nx_mcp_event_log_t log;
    cr_assert_eq(nx_mcp_event_log_init(&log, 3, 1000), 0);
    uint64_t prev = 0;
    for (int i = 0; i < 10; i++) {
        uint64_t seq = add(&log, (uint32_t)(i % 2), "e");
        cr_assert_eq(seq, prev + 1);
        prev = seq;
    }
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, replay_by_stream_after_a_seq) {
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 16, 1 << 20);
    add(&log, 1, "a"); /* 1 */
    add(&log, 2, "b"); /* 2 */
    add(&log, 1, "c"); /* 3 */
    add(&log, 1, "d"); /* 4 */
    add(&log, 2, "e"); /* 5 */
    expect_replay(&log, 1, 0, "1:a 3:c 4:d ");
    expect_replay(&log, 1, 1, "3:c 4:d ");
    expect_replay(&log, 1, 2, "3:c 4:d ");
    expect_replay(&log, 1, 3, "4:d ");
    expect_replay(&log, 2, 2, "5:e ");
    expect_replay(&log, 3, 0, "");
    uint32_t st;
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 2, &st), 0);
    cr_assert_eq(st, 2);
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 4, &st), 0);
    cr_assert_eq(st, 1);
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, replay_after_the_newest_is_empty) {
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 4, 1000);
    expect_replay(&log, 0, 0, "");
    uint64_t last = add(&log, 0, "x");
    expect_replay(&log, 0, last, "");
    expect_replay(&log, 0, last + 100, "");
    expect_replay(&log, 0, UINT64_MAX, "");
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, stream_of_unknown_seqs) {
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 4, 1000);
    uint32_t st = 77;
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 0, &st), -ENOENT);
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 1, &st), -ENOENT, "not issued yet");
    add(&log, 5, "x");
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 1, &st), 0);
    cr_assert_eq(st, 5);
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 2, &st), -ENOENT);
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, UINT64_MAX, &st), -ENOENT);
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, eviction_by_count) {
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 3, 1000);
    for (int i = 0; i < 5; i++)
        add(&log, (uint32_t)(i % 2), (const char *[]){"a", "b", "c", "d", "e"}[i]);
    /* Kept: 3:c (stream 0), 4:d (1), 5:e (0). */
    cr_assert_eq(log.count, 3);
    cr_assert_eq(log.bytes, 3);
    cr_assert_eq(log.dropped, 2);
    uint32_t st;
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 1, &st), -ENOENT);
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 2, &st), -ENOENT);
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 3, &st), 0);
    cr_assert_eq(st, 0);
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 4, &st), 0);
    cr_assert_eq(st, 1);
    expect_replay(&log, 0, 0, "3:c 5:e ");
    expect_replay(&log, 0, 1, "3:c 5:e ");
    expect_replay(&log, 0, 3, "5:e ");
    expect_replay(&log, 1, 0, "4:d ");
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, ring_wraps_many_times) {
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 4, 1000);
    char text[16];
    for (int i = 1; i <= 1001; i++) {
        snprintf(text, sizeof(text), "%d", i);
        cr_assert_eq(add(&log, 0, text), (uint64_t)i);
    }
    expect_replay(&log, 0, 0, "998:998 999:999 1000:1000 1001:1001 ");
    expect_replay(&log, 0, 999, "1000:1000 1001:1001 ");
    cr_assert_eq(log.dropped, 997);
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, eviction_by_bytes) {
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 100, 10);
    add(&log, 0, "aaaa"); /* 1: 4 bytes */
    add(&log, 0, "bbbb"); /* 2: 8 */
    add(&log, 0, "cc");   /* 3: 10, exactly the bound: nothing evicted */
    cr_assert_eq(log.count, 3);
    cr_assert_eq(log.bytes, 10);
    add(&log, 0, "d"); /* 4: 11 would pass it, so 1 goes */
    cr_assert_eq(log.count, 3);
    cr_assert_eq(log.bytes, 7);
    uint32_t st;
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 1, &st), -ENOENT);
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 2, &st), 0);
    add(&log, 0, "eeeeeeee"); /* 5: 8 bytes; 2 and 3 go, 4 (1 byte) still fits beside it */
    cr_assert_eq(log.count, 2);
    cr_assert_eq(log.bytes, 9);
    cr_assert_eq(log.dropped, 3);
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 3, &st), -ENOENT);
    expect_replay(&log, 0, 0, "4:d 5:eeeeeeee ");
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, oversized_event_is_kept_alone_then_evicted) {
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 100, 4);
    add(&log, 0, "ab");
    add(&log, 0, "cd");
    uint64_t big = add(&log, 0, "0123456789");
    cr_assert_eq(big, 3);
    cr_assert_eq(log.count, 1);
    cr_assert_eq(log.bytes, 10);
    expect_replay(&log, 0, 0, "3:0123456789 ");
    /* The next event, however small, pushes the oversized one out. */
    add(&log, 0, "x");
    cr_assert_eq(log.count, 1);
    cr_assert_eq(log.bytes, 1);
    uint32_t st;
    cr_assert_eq(nx_mcp_event_log_stream_of(&log, 3, &st), -ENOENT);
    expect_replay(&log, 0, 0, "4:x ");
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, empty_text_and_nul_terminated_copy) {
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 2, 0);
    char src[] = "hello";
    cr_assert_eq(nx_mcp_event_log_append(&log, 0, src, 3), 1);
    src[0] = 'J'; /* the log keeps a copy */
    const nx_mcp_event_t *ev = &log.ring[log.head];
    cr_assert_str_eq(ev->text, "hel");
    cr_assert_eq(nx_mcp_event_log_append(&log, 0, NULL, 0), 2);
    expect_replay(&log, 0, 0, "2: ");
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, replay_stops_when_fn_says_so) {
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 8, 1000);
    for (int i = 0; i < 6; i++)
        add(&log, 9, "z");
    seen_t s = {.stop_after = 2};
    cr_assert_eq(nx_mcp_event_log_replay(&log, 9, 1, record, &s), 2);
    cr_assert_str_eq(s.log, "2:z 3:z ");
    nx_mcp_event_log_dispose(&log);
}

Test(mcp_events, init_rejects_zero_cap_and_dispose_is_null_safe) {
    nx_mcp_event_log_t log;
    cr_assert_eq(nx_mcp_event_log_init(&log, 0, 100), -EINVAL);
    nx_mcp_event_log_dispose(&log); /* safe after a failed init */
    nx_mcp_event_log_dispose(NULL);
}

Test(mcp_events, dispose_frees_everything_and_allows_reuse) {
    /* Leaks fail this suite under ASan (tests/run_unit.sh). */
    nx_mcp_event_log_t log;
    nx_mcp_event_log_init(&log, 5, 1 << 20);
    for (int i = 0; i < 12; i++)
        add(&log, 0, "some event text");
    nx_mcp_event_log_dispose(&log);
    cr_assert_null(log.ring);
    cr_assert_eq(log.count, 0);
    cr_assert_eq(nx_mcp_event_log_init(&log, 2, 100), 0);
    cr_assert_eq(add(&log, 0, "again"), 1);
    nx_mcp_event_log_dispose(&log);
}

static int parse(const char *s, uint64_t *seq) {
    return nx_mcp_event_id_parse(s, strlen(s), seq);
}

Test(mcp_events, id_parse_accepts_what_the_log_issues) {
    uint64_t seq = 0;
    cr_assert_eq(parse("1", &seq), 0);
    cr_assert_eq(seq, 1);
    cr_assert_eq(parse("1234567890", &seq), 0);
    cr_assert_eq(seq, 1234567890ull);
    cr_assert_eq(parse("18446744073709551615", &seq), 0);
    cr_assert_eq(seq, UINT64_MAX);
    cr_assert_eq(nx_mcp_event_id_parse("42junk", 2, &seq), 0, "only <n> bytes are read");
    cr_assert_eq(seq, 42);
}

Test(mcp_events, id_parse_rejects) {
    const char *bad[] = {
        "",
        "0",
        "00",
        "01",
        "+1",
        "-1",
        " 1",
        "1 ",
        "1\n",
        "1a",
        "a1",
        "0x10",
        "1.0",
        "1e3",
        "18446744073709551616",
        "99999999999999999999",
        "100000000000000000000",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t seq = 77;
        cr_assert_eq(parse(bad[i], &seq), -EINVAL, "\"%s\"", bad[i]);
        cr_assert_eq(seq, 77, "\"%s\" must leave *seq alone", bad[i]);
    }
    uint64_t seq;
    cr_assert_eq(nx_mcp_event_id_parse("1\0002", 3, &seq), -EINVAL, "embedded NUL");
    cr_assert_eq(nx_mcp_event_id_parse(NULL, 0, &seq), -EINVAL);
}
