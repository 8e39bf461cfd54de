/* The Events channel's ring (engine/event_ring.c): ids, wire forms, eviction by count and bytes,
 * replay after an id, and the pick rule that lets a subscriber add a filter without duplicates
 * or gaps. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "event_ring.h"

static nx_event_t *mk(const char *type, const char *exec, const char *data) {
    nx_event_t *ev = nx_event_new(type, exec, data, strlen(data));
    cr_assert_not_null(ev);
    return ev;
}

static uint64_t push(nx_event_ring_t *r, const char *type, const char *exec) {
    return nx_event_ring_push(r, mk(type, exec, "{}"), NULL);
}

static bool match_exec(const nx_event_t *ev, const void *f) {
    return strcmp(ev->execution, f) == 0;
}

static bool match_all(const nx_event_t *ev, const void *f) {
    (void)ev;
    (void)f;
    return true;
}

/* The ids of <evs> as "a b c", dropping the references. */
static void ids(nx_event_t **evs, size_t n, uint64_t base, char *out, size_t cap) {
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s%llu", i ? " " : "",
                 (unsigned long long)(evs[i]->id - base));
        nx_event_unref(evs[i]);
    }
}

Test(event_ring, ids_start_where_told_and_increase) {
    nx_event_ring_t r;
    cr_assert_eq(nx_event_ring_init(&r, 4, 1 << 20, 1000), 0);
    cr_assert_eq(nx_event_ring_oldest(&r), 1000, "empty: the next id");
    cr_assert_eq(push(&r, "a", NULL), 1000);
    cr_assert_eq(push(&r, "b", NULL), 1001);
    cr_assert_eq(nx_event_ring_oldest(&r), 1000);
    cr_assert_str_eq(nx_event_ring_get(&r, 1001)->type, "b");
    cr_assert_null(nx_event_ring_get(&r, 1002));
    nx_event_ring_dispose(&r);
}

Test(event_ring, wire_forms_carry_id_type_and_data) {
    nx_event_ring_t r;
    nx_event_ring_init(&r, 4, 1 << 20, 7);
    nx_event_t *ev = mk("step.finished", "x-1", "{\"step\":\"a\"}");
    nx_event_ring_push(&r, ev, NULL);
    char sse[256];
    snprintf(sse, sizeof(sse), "%.*s%.*s", ev->sse_head_len, ev->sse_head, (int)ev->data_len,
             nx_event_data(ev));
    cr_assert_str_eq(sse, "id: 7\nevent: step.finished\ndata: {\"step\":\"a\"}");
    size_t n;
    const char *ws = nx_event_ws_payload(ev, &n);
    cr_assert_eq(n, strlen(ws));
    cr_assert_str_eq(ws, "{\"type\":\"event\",\"id\":7,\"event\":\"step.finished\",\"data\":"
                         "{\"step\":\"a\"}}");
    cr_assert_str_eq(ev->execution, "x-1");
    cr_assert_not(ev->terminal);
    nx_event_ring_dispose(&r);
}

Test(event_ring, terminal_types_are_marked) {
    const char *term[] = {"execution.finished", "execution.failed", "execution.cancelled"};
    for (size_t i = 0; i < 3; i++) {
        nx_event_t *ev = mk(term[i], "x", "{}");
        cr_assert(ev->terminal, "%s", term[i]);
        nx_event_unref(ev);
    }
    nx_event_t *ev = mk("execution.started", "x", "{}");
    cr_assert_not(ev->terminal);
    nx_event_unref(ev);
}

Test(event_ring, bad_types_and_multiline_data_are_refused) {
    cr_assert_null(nx_event_new("", NULL, "{}", 2));
    cr_assert_null(nx_event_new("a b", NULL, "{}", 2));
    cr_assert_null(nx_event_new("a\nevent: x", NULL, "{}", 2), "no SSE field injection");
    cr_assert_null(nx_event_new("a", NULL, "{\n}", 3), "data must be one line");
    cr_assert_null(nx_event_new("a", NULL, "{\r}", 3));
    char longtype[40];
    memset(longtype, 'a', sizeof(longtype) - 1);
    longtype[sizeof(longtype) - 1] = '\0';
    cr_assert_null(nx_event_new(longtype, NULL, "{}", 2));
}

Test(event_ring, full_ring_evicts_the_oldest) {
    nx_event_ring_t r;
    nx_event_ring_init(&r, 3, 1 << 20, 1);
    nx_event_t *evicted = (nx_event_t *)1;
    for (int i = 0; i < 3; i++)
        push(&r, "e", NULL);
    nx_event_ring_push(&r, mk("e", NULL, "{}"), &evicted);
    cr_assert_not_null(evicted);
    cr_assert_eq(evicted->id, 1);
    cr_assert_null(evicted->next);
    nx_event_unref(evicted);
    cr_assert_eq(nx_event_ring_oldest(&r), 2);
    cr_assert_null(nx_event_ring_get(&r, 1));
    cr_assert_eq(r.count, 3);
    cr_assert_eq(r.evicted, 1);
    nx_event_ring_dispose(&r);
}

Test(event_ring, byte_bound_evicts_but_keeps_the_newest) {
    nx_event_ring_t r;
    char big[2000];
    memset(big, 'x', sizeof(big));
    big[0] = '"';
    big[sizeof(big) - 1] = '"';
    size_t one = sizeof(nx_event_t) + NX_EVENT_WS_HEAD_MAX + sizeof(big) + 2;
    nx_event_ring_init(&r, 100, 2 * one, 1);
    for (int i = 0; i < 5; i++)
        nx_event_ring_push(&r, nx_event_new("e", NULL, big, sizeof(big)), NULL);
    cr_assert_eq(r.count, 2, "two fit the byte bound");
    cr_assert_eq(nx_event_ring_oldest(&r), 4);
    cr_assert_leq(r.bytes, 2 * one);
    /* One event larger than the whole bound is still kept, alone. */
    nx_event_ring_t tiny;
    nx_event_ring_init(&tiny, 100, 10, 1);
    nx_event_ring_push(&tiny, nx_event_new("e", NULL, big, sizeof(big)), NULL);
    nx_event_ring_push(&tiny, nx_event_new("e", NULL, big, sizeof(big)), NULL);
    cr_assert_eq(tiny.count, 1);
    cr_assert_eq(nx_event_ring_oldest(&tiny), 2);
    nx_event_ring_dispose(&tiny);
    nx_event_ring_dispose(&r);
}

Test(event_ring, since_returns_what_followed_bounded_by_cap) {
    nx_event_ring_t r;
    nx_event_ring_init(&r, 8, 1 << 20, 1);
    for (int i = 0; i < 6; i++)
        push(&r, "e", NULL);
    nx_event_t *out[8];
    char s[64];
    ids(out, nx_event_ring_since(&r, 3, out, 8), 0, s, sizeof(s));
    cr_assert_str_eq(s, "4 5 6");
    ids(out, nx_event_ring_since(&r, 0, out, 2), 0, s, sizeof(s));
    cr_assert_str_eq(s, "1 2", "a batch stops at cap");
    ids(out, nx_event_ring_since(&r, 6, out, 8), 0, s, sizeof(s));
    cr_assert_str_eq(s, "");
    nx_event_ring_dispose(&r);
}

/* The ring holds A B A B A (ids 1..5) for executions "A" and "B". */
static void ab_ring(nx_event_ring_t *r) {
    nx_event_ring_init(r, 16, 1 << 20, 1);
    const char *seq[] = {"A", "B", "A", "B", "A"};
    for (size_t i = 0; i < 5; i++)
        push(r, "step.finished", seq[i]);
}

Test(event_ring, pick_fresh_execution_replays_from_its_start) {
    nx_event_ring_t r;
    ab_ring(&r);
    nx_event_t *out[16];
    char s[64];
    nx_event_pick_t p = {.cursor = 5, .new_match = match_exec, .new_filter = "A", .after = 0};
    ids(out, nx_event_ring_pick(&r, &p, out, 16), 0, s, sizeof(s));
    cr_assert_str_eq(s, "1 3 5");
    nx_event_ring_dispose(&r);
}

Test(event_ring, pick_resume_sends_only_what_followed) {
    nx_event_ring_t r;
    ab_ring(&r);
    nx_event_t *out[16];
    char s[64];
    nx_event_pick_t p = {.cursor = 5, .new_match = match_exec, .new_filter = "A", .after = 3};
    ids(out, nx_event_ring_pick(&r, &p, out, 16), 0, s, sizeof(s));
    cr_assert_str_eq(s, "5", "events up to the Last-Event-ID are not repeated");
    nx_event_pick_t all = {.cursor = 5, .new_match = match_all, .after = 2};
    ids(out, nx_event_ring_pick(&r, &all, out, 16), 0, s, sizeof(s));
    cr_assert_str_eq(s, "3 4 5");
    nx_event_pick_t live = {.cursor = 5, .new_match = match_all, .after = 5};
    cr_assert_eq(nx_event_ring_pick(&r, &live, out, 16), 0, "live only: nothing to replay");
    nx_event_ring_dispose(&r);
}

Test(event_ring, pick_adding_a_filter_neither_repeats_nor_skips) {
    nx_event_ring_t r;
    ab_ring(&r);
    nx_event_t *out[16];
    char s[64];
    /* Subscribed to A and delivered up to id 3; events 4 and 5 are still on their way. Adding
     * B from its start must give B's 2 (not sent before), and 4 (B) and 5 (A) once each. */
    nx_event_pick_t p = {.cursor = 3,
                         .old_match = match_exec,
                         .old_filter = "A",
                         .new_match = match_exec,
                         .new_filter = "B",
                         .after = 0};
    ids(out, nx_event_ring_pick(&r, &p, out, 16), 0, s, sizeof(s));
    cr_assert_str_eq(s, "2 4 5");
    /* Adding A again from the start: A's 1 and 3 were already sent. */
    nx_event_pick_t again = {.cursor = 3,
                             .old_match = match_exec,
                             .old_filter = "A",
                             .new_match = match_exec,
                             .new_filter = "A",
                             .after = 0};
    ids(out, nx_event_ring_pick(&r, &again, out, 16), 0, s, sizeof(s));
    cr_assert_str_eq(s, "5");
    /* Adding "every event" live: only the old filter's pending events, in order. */
    nx_event_pick_t all = {.cursor = 3,
                           .old_match = match_exec,
                           .old_filter = "A",
                           .new_match = match_all,
                           .after = 5};
    ids(out, nx_event_ring_pick(&r, &all, out, 16), 0, s, sizeof(s));
    cr_assert_str_eq(s, "5");
    nx_event_ring_dispose(&r);
}

Test(event_ring, pick_skips_what_was_evicted) {
    nx_event_ring_t r;
    nx_event_ring_init(&r, 3, 1 << 20, 1);
    for (int i = 0; i < 5; i++)
        push(&r, "e", "A");
    nx_event_t *out[4];
    char s[64];
    nx_event_pick_t p = {.cursor = 5, .new_match = match_exec, .new_filter = "A", .after = 1};
    ids(out, nx_event_ring_pick(&r, &p, out, 4), 0, s, sizeof(s));
    cr_assert_str_eq(s, "3 4 5", "only the retained ones; the bus reports the gap");
    cr_assert_eq(nx_event_ring_oldest(&r), 3);
    nx_event_ring_dispose(&r);
}

Test(event_ring, references_outlive_eviction) {
    nx_event_ring_t r;
    nx_event_ring_init(&r, 1, 1 << 20, 1);
    push(&r, "first", NULL);
    nx_event_t *held[1];
    cr_assert_eq(nx_event_ring_since(&r, 0, held, 1), 1);
    push(&r, "second", NULL); /* evicts "first" while a shard still delivers it */
    cr_assert_str_eq(held[0]->type, "first");
    cr_assert_eq(held[0]->id, 1);
    nx_event_unref(held[0]);
    nx_event_ring_dispose(&r);
}
