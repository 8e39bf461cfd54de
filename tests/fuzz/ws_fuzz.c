/* libFuzzer target for the WebSocket frame parser (net/ws.c): the same stream parsed whole, split
 * at a data-derived point into a moved buffer, and fed in small steps must give the same events
 * and verdict; every event must respect the limits, and encoded frames must decode back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/errors.h"
#include "ws.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

/* Everything one feeding produced, as bytes (events are copied: their payloads are transient). */
typedef struct outcome {
    nx_buf_t log;
    int verdict;
    uint16_t close_code;
    const char *message;
    size_t consumed;
} outcome_t;

static void check_event(const nx_ws_parser_t *p, const nx_ws_event_t *ev, outcome_t *o) {
    switch (ev->type) {
    case NX_WS_NONE:
        CHECK(ev->payload.n == 0);
        return;
    case NX_WS_TEXT:
        CHECK(nx_ws_utf8_valid(ev->payload.p, ev->payload.n));
        /* fall through */
    case NX_WS_BINARY:
        CHECK(ev->payload.n <= p->max_message);
        break;
    case NX_WS_CLOSE:
        CHECK(ev->payload.n <= NX_WS_MAX_CONTROL && ev->payload.n != 1);
        if (ev->payload.n == 0)
            CHECK(ev->close_code == NX_WS_CLOSE_NO_STATUS && ev->close_reason.n == 0);
        else
            CHECK(nx_ws_close_code_valid(ev->close_code) &&
                  ev->close_reason.n == ev->payload.n - 2 &&
                  nx_ws_utf8_valid(ev->close_reason.p, ev->close_reason.n));
        break;
    case NX_WS_PING:
    case NX_WS_PONG:
        CHECK(ev->payload.n <= NX_WS_MAX_CONTROL);
        break;
    default:
        CHECK(0);
    }
    CHECK(ev->payload.p != NULL);
    nx_buf_append(&o->log, &(uint8_t){(uint8_t)ev->type}, 1);
    nx_buf_append(&o->log, &ev->payload.n, sizeof(ev->payload.n));
    nx_buf_append(&o->log, ev->payload.p, ev->payload.n);
    nx_buf_append(&o->log, &ev->close_code, sizeof(ev->close_code));
}

/* Parses every complete frame of rb, consuming them; stops at the first negative result. */
static void drain(nx_ws_parser_t *p, nx_buf_t *rb, outcome_t *o) {
    while (o->verdict == NX_AGAIN) {
        nx_ws_event_t ev;
        int rc = nx_ws_parse(p, rb->data, rb->len, &ev);
        if (rc < 0) {
            CHECK(rc == NX_AGAIN || rc == NX_EPROTO || rc == NX_ECLOSED);
            o->verdict = rc;
            return;
        }
        CHECK(rc >= 2 && (size_t)rc <= rb->len);
        check_event(p, &ev, o);
        nx_buf_consume(rb, (size_t)rc);
        o->consumed += (size_t)rc;
    }
}

/* Feeds data in pieces (the first of <first> bytes, then <step>), moving the unconsumed bytes to
 * new storage before each call so no pointer may survive between calls. */
static outcome_t feed(const uint8_t *data, size_t size, nx_ws_role_t role, uint64_t max,
                      size_t first, size_t step) {
    outcome_t o = {.verdict = NX_AGAIN};
    nx_buf_init(&o.log);
    nx_ws_parser_t p;
    nx_ws_parser_init(&p, role, max);
    nx_buf_t rb;
    nx_buf_init(&rb);
    for (size_t fed = 0; fed < size && o.verdict == NX_AGAIN;) {
        size_t add = fed == 0 ? first : step;
        if (add > size - fed) add = size - fed;
        nx_buf_t moved;
        nx_buf_init(&moved);
        nx_buf_append(&moved, rb.data, rb.len);
        nx_buf_append(&moved, data + fed, add);
        nx_buf_dispose(&rb);
        rb = moved;
        fed += add;
        drain(&p, &rb, &o);
    }
    CHECK(o.consumed + rb.len == size || o.verdict != NX_AGAIN);
    if (o.verdict == NX_EPROTO) {
        CHECK(p.close_code == 1002 || p.close_code == 1007 || p.close_code == 1009);
        CHECK(p.error_message != NULL);
    }
    o.close_code = p.close_code;
    o.message = p.error_message;
    nx_buf_dispose(&rb);
    nx_ws_parser_dispose(&p);
    return o;
}

static void check_same(const outcome_t *a, const outcome_t *b) {
    CHECK(a->verdict == b->verdict && a->close_code == b->close_code);
    CHECK(a->message == b->message && a->consumed == b->consumed);
    CHECK(a->log.len == b->log.len);
    CHECK(a->log.len == 0 || memcmp(a->log.data, b->log.data, a->log.len) == 0);
}

/* The encoders' output parses back to what was encoded. */
static void round_trip(const uint8_t *data, size_t size, const uint8_t key[4]) {
    nx_buf_t out;
    nx_buf_init(&out);
    nx_ws_parser_t p;
    nx_ws_event_t ev;
    CHECK(nx_ws_encode_frame(&out, NX_WS_OP_BINARY, true, data, size, key) == 0);
    nx_ws_parser_init(&p, NX_WS_SERVER, size + 1);
    CHECK(nx_ws_parse(&p, out.data, out.len, &ev) == (int)out.len);
    CHECK(ev.type == NX_WS_BINARY && ev.payload.n == size);
    CHECK(size == 0 || memcmp(ev.payload.p, data, size) == 0);

    nx_ws_parser_dispose(&p);
    nx_buf_clear(&out);
    size_t n = size < NX_WS_MAX_CONTROL ? size : NX_WS_MAX_CONTROL;
    CHECK(nx_ws_encode_frame(&out, NX_WS_OP_PING, true, data, n, NULL) == 0);
    nx_ws_parser_dispose(&p);
    nx_ws_parser_init(&p, NX_WS_CLIENT, 0);
    CHECK(nx_ws_parse(&p, out.data, out.len, &ev) == (int)out.len);
    CHECK(ev.type == NX_WS_PING && ev.payload.n == n);
    CHECK(n == 0 || memcmp(ev.payload.p, data, n) == 0);

    /* a close reason made of the input, if it is text, is cut at a code point boundary */
    char *reason = malloc(size + 1);
    memcpy(reason, data, size);
    reason[size] = '\0';
    nx_buf_clear(&out);
    int rc = nx_ws_encode_close(&out, 1000, reason, key);
    if (nx_ws_utf8_valid(reason, strlen(reason))) {
        CHECK(rc == 0);
        nx_ws_parser_dispose(&p);
        nx_ws_parser_init(&p, NX_WS_SERVER, 0);
        CHECK(nx_ws_parse(&p, out.data, out.len, &ev) == (int)out.len);
        CHECK(ev.type == NX_WS_CLOSE && ev.close_code == 1000);
        CHECK(memcmp(ev.close_reason.p, reason, ev.close_reason.n) == 0);
    }
    free(reason);
    nx_ws_parser_dispose(&p);
    nx_buf_dispose(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    /* a small message limit from the first byte so 1009 is reachable (0xff: the default) */
    uint64_t max = data[0] == 0xff ? 0 : 1u + data[0] * 4u;
    nx_ws_role_t role = data[1] & 0x80 ? NX_WS_CLIENT : NX_WS_SERVER;
    size_t step = 1 + (data[1] & 0x0f);
    uint8_t cut = data[2];
    data += 3;
    size -= 3;
    if (size == 0) return 0;
    size_t k = 1 + cut % size;

    outcome_t whole = feed(data, size, role, max, size, size);
    outcome_t split = feed(data, size, role, max, k, size);
    check_same(&whole, &split);
    outcome_t steps = feed(data, size, role, max, step, step);
    check_same(&whole, &steps);
    nx_buf_dispose(&whole.log);
    nx_buf_dispose(&split.log);
    nx_buf_dispose(&steps.log);

    const uint8_t key[4] = {cut, (uint8_t)(cut * 7), data[0], data[size - 1]};
    round_trip(data, size, key);
    return 0;
}
