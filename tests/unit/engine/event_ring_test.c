/* The Events channel's ring (engine/event_ring.c): ids, wire forms, eviction by count and bytes,
 * replay after an id, the pick rule that lets a subscriber add a filter without duplicates
 * or gaps, and lazy events (flat data written out on first read) against eager ones. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_ring.h"
#include "json_write.h"

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
    size_t len;
    const char *data = nx_event_text(ev, &len);
    snprintf(sse, sizeof(sse), "%.*s%.*s", ev->sse_head_len, ev->sse_head, (int)len, data);
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

/* ---- lazy events ---- */

#define MAX_DATA (256u << 10) /* NX_EVENTS_MAX_DATA */

static void set(json_t *o, const char *k, json_t *v) {
    cr_assert_not_null(v, "member %s", k);
    json_object_set_new(o, k, v);
}

/* A string of <n> copies of byte <c>. */
static json_t *repeat(char c, size_t n) {
    char *s = malloc(n);
    memset(s, c, n);
    json_t *v = json_stringn_nocheck(s, n);
    free(s);
    return v;
}

/* Flat data of every kind the lazy path must write exactly as the eager one. <*exact> says
 * whether the bound must equal the text's length (no numbers). NULL past the last shape. */
static json_t *shape(int i, bool *exact) {
    json_t *o = json_object();
    *exact = true;
    switch (i) {
    case 0: /* a step.finished as the executor builds it */
        set(o, "step", json_string("fetch"));
        set(o, "kind", json_string("call"));
        set(o, "status", json_string("succeeded"));
        set(o, "duration_ms", json_integer(12));
        set(o, "cached", json_false());
        set(o, "attempts", json_integer(1));
        set(o, "execution", json_string("x-0123456789abcdef"));
        set(o, "workflow", json_string("fan-out"));
        set(o, "seq", json_integer(3));
        set(o, "time", json_string("2025-01-01T00:00:00.000Z"));
        *exact = false;
        break;
    case 1: /* strings that need escapes, and UTF-8 that must not get any */
        set(o, "quote", json_string("say \"hi\""));
        set(o, "backslash", json_string("C:\\dir\\"));
        set(o, "controls", json_string("\x01\x1f\t\n\r\b\f\x7f end"));
        set(o, "unicode", json_string("h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80 \xe2\x80\xa8"));
        set(o, "nul", json_stringn("a\0b", 3));
        set(o, "empty", json_string(""));
        break;
    case 2: /* keys that need escapes */
        set(o, "k\"e\\y\n", json_string("v"));
        set(o, "", json_string("empty key"));
        set(o, "\xc3\xbc\x01", json_null());
        break;
    case 3:
        set(o, "zero", json_integer(0));
        set(o, "negative", json_integer(-42));
        set(o, "min", json_integer(INT64_MIN));
        set(o, "max", json_integer(INT64_MAX));
        *exact = false;
        break;
    case 4:
        set(o, "half", json_real(1.5));
        set(o, "negative", json_real(-0.1));
        set(o, "integral", json_real(3.0));
        set(o, "huge", json_real(-1.7976931348623157e308));
        set(o, "tiny", json_real(-2.2250738585072014e-308));
        set(o, "subnormal", json_real(4.9406564584124654e-324));
        set(o, "negzero", json_real(-0.0));
        set(o, "long", json_real(-12345678901234568.0));
        *exact = false;
        break;
    case 5:
        set(o, "t", json_true());
        set(o, "f", json_false());
        set(o, "n", json_null());
        break;
    case 6: /* {} */
        break;
    case 7: /* the longest flat strings, escaped to twice and six times their length */
        set(o, "quotes", repeat('"', NX_EVENT_FLAT_STRING_MAX - 1));
        set(o, "controls", repeat('\x01', NX_EVENT_FLAT_STRING_MAX - 1));
        break;
    default:
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The <*len> bytes at <p> equal <want> (NUL-terminated)? Reports both on failure. <len> is
 * read here, after the accessor that fills it has run. */
static void same(const char *p, const size_t *len, const char *want, const char *what) {
    size_t n = *len;
    cr_assert_not_null(p, "%s: NULL", what);
    cr_assert(n == strlen(want) && memcmp(p, want, n) == 0, "%s:\n got %.*s\nwant %s", what, (int)n,
              p, want);
}

Test(event_ring, lazy_event_writes_what_the_eager_path_wrote) {
    bool exact;
    json_t *d;
    for (int i = 0; (d = shape(i, &exact)) != NULL; i++) {
        size_t len;
        char *text = nx_json_write(d, 17, &len);
        cr_assert_not_null(text);
        nx_event_t *eager = nx_event_new("step.finished", "x-1", text, len);
        nx_event_t *lazy = nx_event_from_json("step.finished", "x-1", d, MAX_DATA);
        cr_assert_not_null(lazy);
        cr_assert(nx_event_is_lazy(lazy), "shape %d is flat", i);
        cr_assert_str_eq(lazy->execution, "x-1");
        nx_event_ring_t ra, rb;
        nx_event_ring_init(&ra, 4, 1 << 20, 9007199254740000ull);
        nx_event_ring_init(&rb, 4, 1 << 20, 9007199254740000ull);
        nx_event_ring_push(&ra, eager, NULL);
        nx_event_ring_push(&rb, lazy, NULL);
        cr_assert_null(lazy->text, "shape %d: not written before it is read", i);
        cr_assert_eq(lazy->sse_head_len, eager->sse_head_len);
        cr_assert_str_eq(lazy->sse_head, eager->sse_head);
        size_t n;
        same(nx_event_text(lazy, &n), &n, text, "text");
        cr_assert_not_null(lazy->text, "shape %d: written once read", i);
        char *ws = malloc(len + 128);
        snprintf(ws, len + 128,
                 "{\"type\":\"event\",\"id\":9007199254740000,\"event\":"
                 "\"step.finished\",\"data\":%s}",
                 text);
        const char *p = nx_event_ws_payload(lazy, &n);
        same(p, &n, ws, "ws payload");
        cr_assert_eq(p[n], '\0');
        same(nx_event_ws_payload(eager, &n), &n, ws, "eager ws payload");
        size_t bound = 0;
        cr_assert(nx_event_flat(d, SIZE_MAX, &bound));
        cr_assert_geq(bound, len, "shape %d: bound %zu under the text's %zu", i, bound, len);
        if (exact) cr_assert_eq(bound, len, "shape %d: strings are counted exactly", i);
        free(ws);
        free(text);
        nx_event_ring_dispose(&ra);
        nx_event_ring_dispose(&rb);
        json_decref(d);
    }
}

Test(event_ring, lazy_event_read_before_its_push_gets_its_heads) {
    json_t *d = json_pack("{s:s, s:i}", "step", "a", "n", 5);
    nx_event_t *ev = nx_event_from_json("step.started", NULL, d, MAX_DATA);
    size_t n;
    same(nx_event_text(ev, &n), &n, "{\"step\":\"a\",\"n\":5}", "text");
    nx_event_ring_t r;
    nx_event_ring_init(&r, 4, 1 << 20, 31);
    nx_event_ring_push(&r, ev, NULL);
    same(nx_event_ws_payload(ev, &n), &n,
         "{\"type\":\"event\",\"id\":31,\"event\":\"step.started\",\"data\":{\"step\":\"a\","
         "\"n\":5}}",
         "ws payload");
    nx_event_ring_dispose(&r);
    json_decref(d);
}

Test(event_ring, flat_bound_counts_every_byte_as_the_writer_escapes_it) {
    for (int c = 0; c < 256; c++) {
        char key[2] = {(char)c, 'k'}, val[3] = {'v', (char)c, 'v'};
        json_t *d = json_object();
        json_object_setn_new_nocheck(d, key, 2, json_stringn_nocheck(val, 3));
        size_t len, bound = 0;
        char *text = nx_json_write(d, 17, &len);
        cr_assert(nx_event_flat(d, SIZE_MAX, &bound));
        cr_assert_eq(bound, len, "byte 0x%02x: bound %zu, text %s", c, bound, text);
        free(text);
        json_decref(d);
    }
}

Test(event_ring, lazy_charge_bounds_the_text_it_writes) {
    bool exact;
    json_t *d;
    for (int i = 0; (d = shape(i, &exact)) != NULL; i++) {
        size_t len;
        char *text = nx_json_write(d, 17, &len);
        nx_event_t *eager = nx_event_new("e", NULL, text, len);
        nx_event_t *lazy = nx_event_from_json("e", NULL, d, MAX_DATA);
        size_t charge = nx_event_bytes(lazy);
        /* The eager charge is the event with its text: the lazy one must cover at least that. */
        cr_assert_geq(charge, nx_event_bytes(eager), "shape %d", i);
        cr_assert_geq(charge, len);
        nx_event_text(lazy, &len);
        cr_assert_eq(nx_event_bytes(lazy), charge, "the charge does not move once written");
        nx_event_unref(eager);
        nx_event_unref(lazy);
        free(text);
        json_decref(d);
    }
    /* The ring's bound holds with lazy events read and unread. */
    d = shape(0, &exact);
    nx_event_t *one = nx_event_from_json("e", NULL, d, MAX_DATA);
    size_t charge = nx_event_bytes(one);
    nx_event_unref(one);
    nx_event_ring_t r;
    nx_event_ring_init(&r, 100, 3 * charge, 1);
    for (int i = 0; i < 10; i++) {
        nx_event_t *ev = nx_event_from_json("e", NULL, d, MAX_DATA);
        nx_event_ring_push(&r, ev, NULL);
        size_t n;
        if (i % 2) nx_event_text(ev, &n);
        cr_assert_eq(r.bytes, r.count * charge);
    }
    cr_assert_eq(r.count, 3);
    cr_assert_eq(r.evicted, 7);
    nx_event_ring_dispose(&r);
    json_decref(d);
}

Test(event_ring, only_small_flat_data_is_lazy) {
    json_t *nested = json_pack("{s:s, s:{s:i}}", "step", "a", "result", "x", 1);
    json_t *array = json_pack("{s:s, s:[i]}", "step", "a", "items", 1);
    json_t *longest = json_object(), *too_long = json_object();
    set(longest, "s", repeat('x', NX_EVENT_FLAT_STRING_MAX - 1));
    set(too_long, "s", repeat('x', NX_EVENT_FLAT_STRING_MAX));
    json_t *top_array = json_pack("[i]", 1);
    json_t *eager[] = {nested, array, too_long, top_array, NULL};
    size_t bound;
    for (size_t i = 0; i < sizeof(eager) / sizeof(*eager); i++) {
        cr_assert_not(nx_event_flat(eager[i], SIZE_MAX, &bound), "case %zu", i);
        nx_event_t *ev = nx_event_from_json("e", NULL, eager[i], MAX_DATA);
        cr_assert_not_null(ev);
        cr_assert_not(nx_event_is_lazy(ev), "case %zu is written at once", i);
        size_t len, n;
        char *want = eager[i] ? nx_json_write(eager[i], 17, &len) : strdup("{}");
        same(nx_event_text(ev, &n), &n, want, "eager text");
        free(want);
        nx_event_unref(ev);
    }
    cr_assert(nx_event_flat(longest, SIZE_MAX, &bound));
    nx_event_t *ev = nx_event_from_json("e", NULL, longest, MAX_DATA);
    cr_assert(nx_event_is_lazy(ev), "a string of 1023 bytes is still flat");
    nx_event_unref(ev);
    /* Flat but over max_data: the eager path, truncation included, as before. */
    json_t *wide = json_object();
    for (int i = 0; i < 4; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        set(wide, k, repeat('y', 30));
    }
    cr_assert_not(nx_event_flat(wide, 100, &bound));
    ev = nx_event_from_json("e", NULL, wide, 100);
    cr_assert_not(nx_event_is_lazy(ev));
    size_t n;
    const char *t = nx_event_text(ev, &n);
    cr_assert_not_null(strstr(t, "\"truncated\":true,\"data_bytes\":"), "%.*s", (int)n, t);
    nx_event_unref(ev);
    ev = nx_event_from_json("e", NULL, wide, MAX_DATA);
    cr_assert(nx_event_is_lazy(ev));
    nx_event_unref(ev);
    json_t *all[] = {nested, array, longest, too_long, top_array, wide};
    for (size_t i = 0; i < sizeof(all) / sizeof(*all); i++)
        json_decref(all[i]);
}

/* ---- lazy events read by several shards at once ---- */

#define RACERS 8
#define RACE_EVENTS 16
#define RACE_ROUNDS 200

typedef struct race {
    nx_event_t **evs;         /* a reference of this racer's to each */
    char **want;              /* the text each must have */
    pthread_barrier_t *start; /* all racers and the ring's owner go at once */
    bool ws_first;            /* reads the WS payload before the text */
    const char *text[RACE_EVENTS];
    bool ok;
} race_t;

static void *racer(void *arg) {
    race_t *r = arg;
    r->ok = true;
    pthread_barrier_wait(r->start);
    /* All in the same order, so that they meet on each event; half of them come through the
     * WS payload, half through the text: both write it out. */
    for (size_t k = 0; k < RACE_EVENTS; k++) {
        size_t n, ws_n = 0;
        const char *ws = r->ws_first ? nx_event_ws_payload(r->evs[k], &ws_n) : NULL;
        r->text[k] = nx_event_text(r->evs[k], &n);
        if (!r->ws_first) ws = nx_event_ws_payload(r->evs[k], &ws_n);
        if (ws == NULL || r->text[k] == NULL || n != strlen(r->want[k]) ||
            memcmp(r->text[k], r->want[k], n) != 0 || ws_n <= n ||
            memcmp(ws + ws_n - n - 1, r->want[k], n) != 0)
            r->ok = false;
    }
    for (size_t i = 0; i < RACE_EVENTS; i++)
        nx_event_unref(r->evs[i]); /* the last one frees, on whichever thread */
    return NULL;
}

Test(event_ring, concurrent_reads_write_one_text) {
    /* Wide data, so that writing it takes long enough for the racers to overlap. */
    json_t *d[RACE_EVENTS];
    char *want[RACE_EVENTS];
    for (size_t i = 0; i < RACE_EVENTS; i++) {
        d[i] = json_object();
        for (int m = 0; m < 40; m++) {
            char k[16];
            snprintf(k, sizeof(k), "member-%d", m);
            set(d[i], k,
                m % 2 ? json_integer((json_int_t)(i * 1000 + (size_t)m))
                      : json_string("a \"quoted\" value\twith escapes"));
        }
        want[i] = nx_json_write(d[i], 17, NULL);
    }
    for (int round = 0; round < RACE_ROUNDS; round++) {
        nx_event_ring_t ring;
        nx_event_ring_init(&ring, RACE_EVENTS, 1u << 30, 1);
        nx_event_t *evs[RACE_EVENTS];
        for (size_t i = 0; i < RACE_EVENTS; i++) {
            evs[i] = nx_event_from_json("step.finished", "x-1", d[i], MAX_DATA);
            cr_assert(nx_event_is_lazy(evs[i]));
            nx_event_ring_push(&ring, evs[i], NULL);
        }
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, RACERS + 1);
        race_t races[RACERS];
        pthread_t th[RACERS];
        for (size_t t = 0; t < RACERS; t++) {
            races[t] = (race_t){.evs = evs, .want = want, .start = &start, .ws_first = t % 2};
            for (size_t i = 0; i < RACE_EVENTS; i++)
                nx_event_ref(evs[i]);
            cr_assert_eq(pthread_create(&th[t], NULL, racer, &races[t]), 0);
        }
        pthread_barrier_wait(&start);
        nx_event_ring_dispose(&ring); /* the racers hold the last references */
        for (size_t t = 0; t < RACERS; t++)
            pthread_join(th[t], NULL);
        pthread_barrier_destroy(&start);
        for (size_t t = 0; t < RACERS; t++) {
            cr_assert(races[t].ok, "round %d racer %zu read a wrong text", round, t);
            /* Compared as addresses only: every racer read while holding a reference. */
            for (size_t i = 0; i < RACE_EVENTS; i++)
                cr_assert_eq(races[t].text[i], races[0].text[i],
                             "round %d: event %zu was written twice", round, i);
        }
    }
    for (size_t i = 0; i < RACE_EVENTS; i++) {
        json_decref(d[i]);
        free(want[i]);
    }
}
