/* Unit tests of the WebSocket codec (net/ws.c): the handshake and its rejections, frames of every
 * length class, every 1002/1007/1009 verdict, fragmentation, input split anywhere or moved
 * between calls, close codes, encoders decoded back, and the UTF-8 validator. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nexus/errors.h"
#include "ws.h"

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- building client streams ---- */

static nx_buf_t S; /* the stream under construction */

static void setup(void) {
    nx_buf_init(&S);
}
static void teardown(void) {
    nx_buf_dispose(&S);
}

/* Appends a masked client frame. */
static void frame(nx_ws_opcode_t op, bool fin, const void *payload, size_t n) {
    cr_assert_eq(nx_ws_encode_frame(&S, op, fin, payload, n, KEY), 0);
}
static void frame_s(nx_ws_opcode_t op, bool fin, const char *s) {
    frame(op, fin, s, strlen(s));
}
/* Appends raw bytes (for frames the encoder refuses to make). */
static void raw(const void *b, size_t n) {
    cr_assert_eq(nx_buf_append(&S, b, n), 0);
}
/* A masked frame with a hand-written first byte and payload (key 0 so the payload is as given). */
static void raw_frame(uint8_t b0, const void *payload, uint8_t n) {
    uint8_t h[6] = {b0, (uint8_t)(0x80 | n), 0, 0, 0, 0};
    raw(h, sizeof(h));
    raw(payload, n);
}

/* ---- running the parser ---- */

/* The canonical text of everything a parse produced, to compare different feeds. */
typedef struct run {
    nx_buf_t log;
    int verdict; /* NX_AGAIN (stream ended cleanly or mid-frame), NX_EPROTO, NX_ECLOSED */
    uint16_t close_code;
    const char *message;
    int events;
    size_t consumed;
} run_t;

static void log_event(run_t *r, const nx_ws_event_t *ev) {
    if (ev->type == NX_WS_NONE) return;
    r->events++;
    nx_buf_appendf(&r->log, "%d:%zu:", (int)ev->type, ev->payload.n);
    nx_buf_append(&r->log, ev->payload.p, ev->payload.n);
    if (ev->type == NX_WS_CLOSE) {
        nx_buf_appendf(&r->log, ":%u:", ev->close_code);
        nx_buf_append(&r->log, ev->close_reason.p, ev->close_reason.n);
    }
    nx_buf_append_str(&r->log, ";");
}

/* Feeds <s> in pieces of <step> bytes (after a first piece of <first> bytes when nonzero) through
 * a receive buffer that is consumed after every frame and reallocated after every piece, as a
 * connection would. */
static run_t feed(const void *s, size_t n, uint64_t max, size_t first, size_t step) {
    run_t r = {.verdict = NX_AGAIN};
    nx_buf_init(&r.log);
    nx_ws_parser_t p;
    nx_ws_parser_init(&p, NX_WS_SERVER, max);
    nx_buf_t rb;
    nx_buf_init(&rb);
    size_t fed = 0;
    while (r.verdict == NX_AGAIN && fed < n) {
        size_t add = first != 0 && fed == 0 ? first : step;
        if (add > n - fed) add = n - fed;
        /* move the unconsumed bytes to fresh storage to catch pointers kept across calls */
        nx_buf_t moved;
        nx_buf_init(&moved);
        cr_assert_eq(nx_buf_append(&moved, rb.data, rb.len), 0);
        cr_assert_eq(nx_buf_append(&moved, (const char *)s + fed, add), 0);
        nx_buf_dispose(&rb);
        rb = moved;
        fed += add;
        for (;;) {
            nx_ws_event_t ev;
            int rc = nx_ws_parse(&p, rb.data, rb.len, &ev);
            if (rc < 0) {
                r.verdict = rc;
                break;
            }
            log_event(&r, &ev);
            nx_buf_consume(&rb, (size_t)rc);
            r.consumed += (size_t)rc;
        }
    }
    r.close_code = p.close_code;
    r.message = p.error_message;
    nx_buf_dispose(&rb);
    nx_ws_parser_dispose(&p);
    return r;
}

static run_t feed_whole(const void *s, size_t n, uint64_t max) {
    return feed(s, n, max, 0, n > 0 ? n : 1);
}

static void expect_same(run_t *a, run_t *b, const char *what, size_t at) {
    cr_assert_eq(a->verdict, b->verdict, "%s %zu: verdict %d vs %d", what, at, a->verdict,
                 b->verdict);
    cr_assert_eq(a->close_code, b->close_code, "%s %zu", what, at);
    cr_assert_eq(a->message, b->message, "%s %zu", what, at);
    cr_assert_eq(a->consumed, b->consumed, "%s %zu", what, at);
    cr_assert_eq(a->log.len, b->log.len, "%s %zu: logs differ in length", what, at);
    cr_assert(a->log.len == 0 || memcmp(a->log.data, b->log.data, a->log.len) == 0, "%s %zu", what,
              at);
}

/* The verdict on the stream in S must not depend on how it is split: checks the whole stream,
 * byte-at-a-time feeding and every two-piece split, and returns the whole run. */
static run_t run_all_ways(uint64_t max) {
    run_t whole = feed_whole(S.data, S.len, max);
    run_t bytes = feed(S.data, S.len, max, 0, 1);
    expect_same(&whole, &bytes, "byte-at-a-time", 1);
    nx_buf_dispose(&bytes.log);
    for (size_t k = 1; k < S.len; k++) {
        run_t split = feed(S.data, S.len, max, k, S.len);
        expect_same(&whole, &split, "split at", k);
        nx_buf_dispose(&split.log);
    }
    return whole;
}

static void expect_close(uint16_t code, uint64_t max) {
    run_t r = run_all_ways(max);
    cr_assert_eq(r.verdict, NX_EPROTO, "want %u, got verdict %d", code, r.verdict);
    cr_assert_eq(r.close_code, code, "want %u, got %u (%s)", code, r.close_code, r.message);
    cr_assert(r.message != NULL && r.message[0] != '\0');
    nx_buf_dispose(&r.log);
}

static void expect_log(const char *want, size_t want_len) {
    run_t r = run_all_ways(0);
    cr_assert_eq(r.verdict, NX_AGAIN, "verdict %d: %s", r.verdict, r.message ? r.message : "");
    cr_assert_eq(r.consumed, S.len);
    cr_assert_eq(r.log.len, want_len, "log \"%.*s\"", (int)r.log.len, r.log.data);
    cr_assert(memcmp(r.log.data, want, want_len) == 0, "log \"%.*s\"", (int)r.log.len, r.log.data);
    nx_buf_dispose(&r.log);
}
#define EXPECT_LOG(lit) expect_log((lit), sizeof(lit) - 1)

/* ---- handshake ---- */

static nx_ws_handshake_req_t good_req(void) {
    return (nx_ws_handshake_req_t){
        .method = NX_STR("GET"),
        .version_minor = 1,
        .upgrade = NX_STR("websocket"),
        .connection = NX_STR("keep-alive, Upgrade"),
        .key = NX_STR("dGhlIHNhbXBsZSBub25jZQ=="),
        .version = NX_STR("13"),
    };
}

static const char *const MCP[] = {"mcp", NULL};

static void expect_hs_error(nx_ws_handshake_req_t req, int status, const char *msg) {
    nx_ws_handshake_t hs;
    nx_buf_t out;
    nx_buf_init(&out);
    cr_assert_eq(nx_ws_handshake(&req, MCP, &hs, &out), NX_EPROTO);
    cr_assert_eq(hs.status, status, "want %d, got %d (%s)", status, hs.status, hs.error);
    cr_assert_str_eq(hs.error, msg);
    cr_assert_eq(out.len, 0, "nothing is written on failure");
    nx_buf_dispose(&out);
}

Test(ws_handshake, rfc_example_accept_key) {
    char acc[NX_WS_ACCEPT_LEN + 1];
    cr_assert_eq(nx_ws_accept_key(NX_STR("dGhlIHNhbXBsZSBub25jZQ=="), acc), 0);
    cr_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws_handshake, writes_101_response) {
    nx_ws_handshake_req_t req = good_req();
    nx_ws_handshake_t hs;
    nx_buf_t out;
    nx_buf_init(&out);
    nx_buf_append_str(&out, "X"); /* appended after what is there */
    cr_assert_eq(nx_ws_handshake(&req, NULL, &hs, &out), 0);
    cr_assert_eq(hs.status, 101);
    cr_assert_null(hs.error);
    cr_assert_null(hs.protocol.p);
    nx_buf_append(&out, "", 1);
    cr_assert_str_eq(out.data, "XHTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    nx_buf_dispose(&out);
}

Test(ws_handshake, header_values_are_case_insensitive_tokens) {
    nx_ws_handshake_req_t req = good_req();
    req.upgrade = NX_STR("WebSocket");
    req.connection = NX_STR("UPGRADE");
    nx_ws_handshake_t hs;
    nx_buf_t out;
    nx_buf_init(&out);
    cr_assert_eq(nx_ws_handshake(&req, NULL, &hs, &out), 0);
    req.connection = NX_STR("keep-alive ,\t upgrade ");
    cr_assert_eq(nx_ws_handshake(&req, NULL, &hs, &out), 0);
    nx_buf_dispose(&out);
}

Test(ws_handshake, rejections) {
    nx_ws_handshake_req_t r;
    r = good_req(), r.key = (nx_str_t){NULL, 0};
    expect_hs_error(r, 400, "missing Sec-WebSocket-Key header");
    r = good_req(), r.duplicate_key = true;
    expect_hs_error(r, 400, "duplicate Sec-WebSocket-Key header");
    r = good_req(), r.key = NX_STR("dGhlIHNhbXBsZSBub25jZQ="); /* 23 chars */
    expect_hs_error(r, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");
    r = good_req(), r.key = NX_STR("dGhlIHNhbXBsZSBub25jZSE="); /* 17 bytes */
    expect_hs_error(r, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");
    r = good_req(), r.key = NX_STR("dGhlIHNhbXBsZSBub25j*Q==");
    expect_hs_error(r, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");
    r = good_req(), r.connection = NX_STR("keep-alive");
    expect_hs_error(r, 400, "Connection header must contain \"upgrade\"");
    r = good_req(), r.connection = NX_STR("upgrades");
    expect_hs_error(r, 400, "Connection header must contain \"upgrade\"");
    r = good_req(), r.connection = (nx_str_t){NULL, 0};
    expect_hs_error(r, 400, "Connection header must contain \"upgrade\"");
    r = good_req(), r.upgrade = NX_STR("h2c");
    expect_hs_error(r, 400, "Upgrade header must be \"websocket\"");
    r = good_req(), r.method = NX_STR("POST");
    expect_hs_error(r, 405, "WebSocket upgrade requires the GET method");
    r = good_req(), r.version_minor = 0;
    expect_hs_error(r, 400, "WebSocket upgrade requires HTTP/1.1");
}

Test(ws_handshake, wrong_or_missing_version_is_426_naming_13) {
    const nx_str_t versions[] = {NX_STR("8"), NX_STR("14"), NX_STR("13, 8"), {NULL, 0}};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        nx_ws_handshake_req_t r = good_req();
        r.version = versions[i];
        expect_hs_error(r, 426, "Sec-WebSocket-Version must be 13");
    }
    nx_ws_handshake_req_t r = good_req();
    r.version = NX_STR("8");
    nx_ws_handshake_t hs;
    nx_buf_t out;
    nx_buf_init(&out);
    cr_assert_eq(nx_ws_handshake(&r, NULL, &hs, &out), NX_EPROTO);
    cr_assert_eq(nx_ws_handshake_write_error(&hs, &out), 0);
    nx_buf_append(&out, "", 1);
    cr_assert_str_eq(out.data, "HTTP/1.1 426 Upgrade Required\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 33\r\n"
                               "Connection: close\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "Upgrade: websocket\r\n"
                               "\r\n"
                               "Sec-WebSocket-Version must be 13\n");
    nx_buf_dispose(&out);
}

static nx_str_t pick(const char *offer, const char *const *supported) {
    nx_ws_handshake_req_t r = good_req();
    r.protocol = nx_str_from(offer);
    nx_ws_handshake_t hs;
    nx_buf_t out;
    nx_buf_init(&out);
    cr_assert_eq(nx_ws_handshake(&r, supported, &hs, &out), 0);
    nx_buf_append(&out, "", 1);
    bool has_hdr = strstr(out.data, "Sec-WebSocket-Protocol") != NULL;
    cr_assert_eq(has_hdr, hs.protocol.p != NULL, "header iff a protocol was chosen");
    if (has_hdr) {
        char line[128];
        snprintf(line, sizeof(line), "\r\nSec-WebSocket-Protocol: %.*s\r\n\r\n", (int)hs.protocol.n,
                 hs.protocol.p);
        cr_assert(strstr(out.data, line) != NULL, "%s", out.data);
    }
    nx_buf_dispose(&out);
    return hs.protocol;
}

Test(ws_handshake, subprotocol_selection) {
    static const char *const two[] = {"mcp", "graphql-ws", NULL};
    cr_assert(nx_str_eq(pick("mcp", MCP), NX_STR("mcp")));
    cr_assert(nx_str_eq(pick("chat, mcp", MCP), NX_STR("mcp")));
    cr_assert(nx_str_eq(pick(" ,mcp ,", MCP), NX_STR("mcp")));
    /* the client's order of preference wins */
    cr_assert(nx_str_eq(pick("graphql-ws, mcp", two), NX_STR("graphql-ws")));
    cr_assert(nx_str_eq(pick("mcp, graphql-ws", two), NX_STR("mcp")));
    /* no match, exact-case names, no offer, no supported list: no header */
    cr_assert_null(pick("chat", MCP).p);
    cr_assert_null(pick("MCP", MCP).p);
    cr_assert_null(pick("mcpx", MCP).p);
    cr_assert_null(pick(NULL, MCP).p);
    cr_assert_null(pick("mcp", NULL).p);
}

Test(ws_handshake, from_parsed_http_request) {
    nx_http_header_t h[] = {
        {NX_STR("Host"), NX_STR("x")},
        {NX_STR("connection"), NX_STR("keep-alive")},
        {NX_STR("Connection"), NX_STR("Upgrade")},
        {NX_STR("UPGRADE"), NX_STR("websocket")},
        {NX_STR("Sec-WebSocket-Key"), NX_STR("dGhlIHNhbXBsZSBub25jZQ==")},
        {NX_STR("Sec-WebSocket-Version"), NX_STR("13")},
        {NX_STR("Sec-WebSocket-Protocol"), NX_STR("chat, mcp")},
    };
    nx_http_request_t req = {
        .method_name = NX_STR("GET"), .version_minor = 1, .headers = h, .header_count = 7};
    nx_ws_handshake_req_t r;
    nx_ws_handshake_from_http(&req, &r);
    cr_assert(nx_str_eq(r.connection, NX_STR("Upgrade")));
    cr_assert(nx_str_eq(r.upgrade, NX_STR("websocket")));
    cr_assert(nx_str_eq(r.protocol, NX_STR("chat, mcp")));
    cr_assert(!r.duplicate_key && !r.duplicate_version);
    nx_ws_handshake_t hs;
    nx_buf_t out;
    nx_buf_init(&out);
    cr_assert_eq(nx_ws_handshake(&r, MCP, &hs, &out), 0);
    cr_assert(nx_str_eq(hs.protocol, NX_STR("mcp")));

    h[6] = (nx_http_header_t){NX_STR("sec-websocket-key"), NX_STR("AAAAAAAAAAAAAAAAAAAAAA==")};
    nx_ws_handshake_from_http(&req, &r);
    cr_assert(r.duplicate_key);
    cr_assert_eq(nx_ws_handshake(&r, MCP, &hs, &out), NX_EPROTO);
    cr_assert_eq(hs.status, 400);
    nx_buf_dispose(&out);
}

/* ---- frames ---- */

TestSuite(ws_frames, .init = setup, .fini = teardown);

Test(ws_frames, every_length_class_masked) {
    static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    static const size_t head[] = {6, 6, 6, 8, 8, 8, 14, 14};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = lens[i];
        uint8_t *pl = malloc(n + 1);
        for (size_t j = 0; j < n; j++)
            pl[j] = (uint8_t)(j * 7 + 3);
        nx_buf_clear(&S);
        frame(NX_WS_OP_BINARY, true, pl, n);
        cr_assert_eq(S.len, head[i] + n, "length %zu: %zu-byte header expected", n, head[i]);
        nx_ws_parser_t p;
        nx_ws_parser_init(&p, NX_WS_SERVER, 0);
        nx_ws_event_t ev;
        cr_assert_eq(nx_ws_parse(&p, S.data, S.len, &ev), (int)S.len, "length %zu", n);
        cr_assert_eq(ev.type, NX_WS_BINARY);
        cr_assert_eq(ev.payload.n, n);
        cr_assert(n == 0 || memcmp(ev.payload.p, pl, n) == 0, "length %zu unmasked", n);
        /* one byte short is partial */
        nx_buf_clear(&S);
        frame(NX_WS_OP_BINARY, true, pl, n);
        nx_ws_parser_init(&p, NX_WS_SERVER, 0);
        cr_assert_eq(nx_ws_parse(&p, S.data, S.len - 1, &ev), NX_AGAIN);
        cr_assert_eq(ev.type, NX_WS_NONE);
        cr_assert_eq(nx_ws_parse(&p, S.data, S.len, &ev), (int)S.len);
        cr_assert(n == 0 || memcmp(ev.payload.p, pl, n) == 0);
        nx_ws_parser_dispose(&p);
        free(pl);
    }
}

Test(ws_frames, non_minimal_lengths_are_accepted) {
    const uint8_t f16[] = {0x82, 0x80 | 126, 0, 3, 0, 0, 0, 0, 'a', 'b', 'c'};
    const uint8_t f64[] = {0x81, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 'h', 'i'};
    raw(f16, sizeof(f16));
    raw(f64, sizeof(f64));
    EXPECT_LOG("2:3:abc;1:2:hi;");
}

Test(ws_frames, unmasked_client_frame_is_1002) {
    const uint8_t f[] = {0x81, 0x02, 'h', 'i'};
    raw(f, sizeof(f));
    expect_close(1002, 0);
}

Test(ws_frames, rsv_bits_are_1002) {
    for (uint8_t bit = 0x10; bit <= 0x40; bit <<= 1) {
        nx_buf_clear(&S);
        raw_frame((uint8_t)(0x81 | bit), "hi", 2);
        expect_close(1002, 0);
    }
}

Test(ws_frames, reserved_opcodes_are_1002) {
    const uint8_t ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof(ops); i++) {
        nx_buf_clear(&S);
        raw_frame((uint8_t)(0x80 | ops[i]), "", 0);
        expect_close(1002, 0);
    }
}

Test(ws_frames, control_frame_rules_are_1002) {
    raw_frame(0x09, "p", 1); /* ping without FIN */
    expect_close(1002, 0);
    nx_buf_clear(&S);
    const uint8_t big_ping[] = {0x89, 0x80 | 126, 0, 126, 0, 0, 0, 0};
    raw(big_ping, sizeof(big_ping));
    char pl[126] = {0};
    raw(pl, sizeof(pl));
    expect_close(1002, 0);
    nx_buf_clear(&S);
    raw_frame(0x88, "\x03", 1); /* close with a 1-byte body */
    expect_close(1002, 0);
    /* exactly 125 is fine */
    nx_buf_clear(&S);
    frame(NX_WS_OP_PONG, true, pl, 125);
    run_t r = run_all_ways(0);
    cr_assert_eq(r.verdict, NX_AGAIN);
    cr_assert_eq(r.events, 1);
    nx_buf_dispose(&r.log);
}

Test(ws_frames, length_with_high_bit_is_1002) {
    const uint8_t f[] = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    raw(f, sizeof(f));
    expect_close(1002, 0);
    /* refused on its third byte, before the rest of the header arrives */
    nx_ws_parser_t p;
    nx_ws_parser_init(&p, NX_WS_SERVER, 0);
    nx_ws_event_t ev;
    cr_assert_eq(nx_ws_parse(&p, S.data, 3, &ev), NX_EPROTO);
}

Test(ws_frames, continuation_without_message_is_1002) {
    frame_s(NX_WS_OP_CONT, true, "x");
    expect_close(1002, 0);
    /* also right after a complete fragmented message */
    nx_buf_clear(&S);
    frame_s(NX_WS_OP_TEXT, false, "a");
    frame_s(NX_WS_OP_CONT, true, "b");
    frame_s(NX_WS_OP_CONT, true, "c");
    expect_close(1002, 0);
}

Test(ws_frames, new_data_frame_inside_message_is_1002) {
    frame_s(NX_WS_OP_TEXT, false, "a");
    frame_s(NX_WS_OP_BINARY, true, "b");
    expect_close(1002, 0);
    nx_buf_clear(&S);
    frame_s(NX_WS_OP_BINARY, false, "a");
    frame_s(NX_WS_OP_TEXT, false, "b");
    expect_close(1002, 0);
}

Test(ws_frames, fragments_with_interleaved_ping) {
    frame_s(NX_WS_OP_TEXT, false, "Hel");
    frame_s(NX_WS_OP_PING, true, "p1");
    frame_s(NX_WS_OP_CONT, false, "");
    frame_s(NX_WS_OP_PONG, true, "");
    frame_s(NX_WS_OP_CONT, true, "lo");
    frame_s(NX_WS_OP_BINARY, true, "\xff");
    frame_s(NX_WS_OP_BINARY, false, "\x01");
    frame_s(NX_WS_OP_CONT, true, "\x02");
    EXPECT_LOG("9:2:p1;10:0:;1:5:Hello;2:1:\xff;2:2:\x01\x02;");
}

Test(ws_frames, empty_fragments_make_an_empty_message) {
    frame_s(NX_WS_OP_TEXT, false, "");
    frame_s(NX_WS_OP_CONT, true, "");
    EXPECT_LOG("1:0:;");
}

Test(ws_frames, code_point_split_across_fragments_is_valid) {
    /* U+1F600 split 1+3, 2+2 and 3+1, and a 3-byte one over three fragments */
    for (int cut = 1; cut < 4; cut++) {
        nx_buf_clear(&S);
        const char *emoji = "\xF0\x9F\x98\x80";
        frame(NX_WS_OP_TEXT, false, emoji, (size_t)cut);
        frame(NX_WS_OP_CONT, true, emoji + cut, 4 - (size_t)cut);
        EXPECT_LOG("1:4:\xF0\x9F\x98\x80;");
    }
    nx_buf_clear(&S);
    frame_s(NX_WS_OP_TEXT, false, "\xE2");
    frame_s(NX_WS_OP_PING, true, "");
    frame_s(NX_WS_OP_CONT, false, "\x82");
    frame_s(NX_WS_OP_CONT, true, "\xAC");
    EXPECT_LOG("9:0:;1:3:\xE2\x82\xAC;");
}

Test(ws_frames, invalid_utf8_is_1007) {
    static const char *bad[] = {
        "\x80",             /* stray continuation */
        "\xC0\xAF",         /* overlong '/' */
        "\xC1\xBF",         /* overlong */
        "\xE0\x80\xAF",     /* overlong 3-byte */
        "\xF0\x80\x80\xAF", /* overlong 4-byte */
        "\xED\xA0\x80",     /* U+D800 */
        "\xED\xBF\xBF",     /* U+DFFF */
        "\xF4\x90\x80\x80", /* U+110000 */
        "\xF5\x80\x80\x80", /* past the range */
        "\xFF",
        "a\xE2\x82",    /* truncated at the end of the message */
        "\xE2\x28\xA1", /* bad continuation */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nx_buf_clear(&S);
        frame_s(NX_WS_OP_TEXT, true, bad[i]);
        expect_close(1007, 0);
        /* and the same bytes fragmented */
        nx_buf_clear(&S);
        frame(NX_WS_OP_TEXT, false, bad[i], 1);
        frame(NX_WS_OP_CONT, true, bad[i] + 1, strlen(bad[i]) - 1);
        expect_close(1007, 0);
    }
    /* binary messages are not checked */
    nx_buf_clear(&S);
    frame_s(NX_WS_OP_BINARY, true, "\xC0\xAF");
    EXPECT_LOG("2:2:\xC0\xAF;");
}

Test(ws_frames, truncated_sequence_at_fragmented_end_is_1007) {
    frame_s(NX_WS_OP_TEXT, false, "ok");
    frame_s(NX_WS_OP_CONT, true, "\xF0\x9F\x98");
    expect_close(1007, 0);
}

Test(ws_frames, invalid_utf8_fails_before_the_frame_is_complete) {
    frame_s(NX_WS_OP_TEXT, true, "abc\xC0 and a long rest of the frame");
    nx_ws_parser_t p;
    nx_ws_parser_init(&p, NX_WS_SERVER, 0);
    nx_ws_event_t ev;
    cr_assert_eq(nx_ws_parse(&p, S.data, 6 + 3, &ev), NX_AGAIN);
    cr_assert_eq(nx_ws_parse(&p, S.data, 6 + 4, &ev), NX_EPROTO);
    cr_assert_eq(p.close_code, 1007);
    /* the verdict is sticky */
    cr_assert_eq(nx_ws_parse(&p, S.data, S.len, &ev), NX_EPROTO);
}

Test(ws_frames, message_size_limit_is_1009) {
    char pl[100] = {0};
    frame(NX_WS_OP_BINARY, true, pl, 100);
    run_t r = run_all_ways(100); /* exactly the limit */
    cr_assert_eq(r.events, 1);
    nx_buf_dispose(&r.log);
    expect_close(1009, 99);

    /* the limit is on the reassembled message; control frames do not count */
    nx_buf_clear(&S);
    frame(NX_WS_OP_BINARY, false, pl, 60);
    frame(NX_WS_OP_PING, true, pl, 100);
    frame(NX_WS_OP_CONT, true, pl, 40);
    r = run_all_ways(100);
    cr_assert_eq(r.verdict, NX_AGAIN);
    cr_assert_eq(r.events, 2);
    nx_buf_dispose(&r.log);
    nx_buf_clear(&S);
    frame(NX_WS_OP_BINARY, false, pl, 60);
    frame(NX_WS_OP_CONT, true, pl, 41);
    expect_close(1009, 100);
}

Test(ws_frames, huge_announced_length_is_1009_from_the_header) {
    /* a header announcing 1 GiB is refused as soon as its length is read: no payload needed */
    const uint8_t f[] = {0x82, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0};
    raw(f, sizeof(f));
    nx_ws_parser_t p;
    nx_ws_parser_init(&p, NX_WS_SERVER, 0);
    nx_ws_event_t ev;
    cr_assert_eq(nx_ws_parse(&p, S.data, S.len, &ev), NX_EPROTO);
    cr_assert_eq(p.close_code, 1009);
    cr_assert_eq(p.max_message, NX_WS_DEFAULT_MAX_MESSAGE);
    nx_ws_parser_dispose(&p);
}

Test(ws_frames, close_codes) {
    static const uint16_t ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                  1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const uint16_t bad[] = {0,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        nx_buf_clear(&S);
        cr_assert_eq(nx_ws_encode_close(&S, ok[i], "bye", KEY), 0);
        run_t r = run_all_ways(0);
        cr_assert_eq(r.verdict, NX_ECLOSED, "code %u", ok[i]);
        char want[64];
        int wn =
            snprintf(want, sizeof(want), "8:5:%c%cbye:%u:bye;", ok[i] >> 8, ok[i] & 0xff, ok[i]);
        cr_assert_eq(r.log.len, (size_t)wn);
        cr_assert(memcmp(r.log.data, want, (size_t)wn) == 0);
        nx_buf_dispose(&r.log);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nx_buf_clear(&S);
        uint8_t body[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        frame(NX_WS_OP_CLOSE, true, body, 2);
        expect_close(1002, 0);
    }
}

Test(ws_frames, close_without_body_and_with_bad_reason) {
    frame(NX_WS_OP_CLOSE, true, NULL, 0);
    run_t r = run_all_ways(0);
    cr_assert_eq(r.verdict, NX_ECLOSED);
    cr_assert_eq(r.log.len, strlen("8:0::1005:;"));
    cr_assert(memcmp(r.log.data, "8:0::1005:;", r.log.len) == 0);
    nx_buf_dispose(&r.log);

    nx_buf_clear(&S);
    frame(NX_WS_OP_CLOSE, true, "\x03\xe8\xC0\xAF", 4);
    expect_close(1007, 0);
}

Test(ws_frames, nothing_is_read_after_close) {
    frame(NX_WS_OP_CLOSE, true, "\x03\xe8", 2);
    frame_s(NX_WS_OP_TEXT, true, "late");
    run_t r = run_all_ways(0);
    cr_assert_eq(r.verdict, NX_ECLOSED);
    cr_assert_eq(r.events, 1);
    cr_assert_eq(r.consumed, 8);
    nx_buf_dispose(&r.log);
}

Test(ws_frames, every_split_of_a_mixed_stream_agrees) {
    char big[300];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    frame_s(NX_WS_OP_TEXT, true, "h\xC3\xA9llo \xF0\x9F\x98\x80");
    frame(NX_WS_OP_BINARY, false, big, 200);
    frame_s(NX_WS_OP_PING, true, "are you there");
    frame(NX_WS_OP_CONT, false, big, 0);
    frame(NX_WS_OP_CONT, true, big + 200, 100);
    frame_s(NX_WS_OP_TEXT, false, "\xF0\x9F");
    frame_s(NX_WS_OP_PONG, true, "x");
    frame_s(NX_WS_OP_CONT, true, "\x98\x80!");
    cr_assert_eq(nx_ws_encode_close(&S, 1000, "done", KEY), 0);
    run_t r = run_all_ways(0);
    cr_assert_eq(r.verdict, NX_ECLOSED);
    cr_assert_eq(r.events, 6);
    cr_assert_eq(r.consumed, S.len);
    nx_buf_dispose(&r.log);
}

Test(ws_frames, reassembly_memory_is_released_after_a_large_message) {
    size_t n = 200000;
    char *pl = calloc(1, n);
    frame(NX_WS_OP_BINARY, false, pl, n);
    frame(NX_WS_OP_CONT, true, pl, 1);
    frame_s(NX_WS_OP_PING, true, "");
    nx_ws_parser_t p;
    nx_ws_parser_init(&p, NX_WS_SERVER, 0);
    nx_ws_event_t ev;
    int a = nx_ws_parse(&p, S.data, S.len, &ev);
    cr_assert_gt(a, 0);
    cr_assert_eq(ev.type, NX_WS_NONE);
    int b = nx_ws_parse(&p, S.data + a, S.len - (size_t)a, &ev);
    cr_assert_eq(ev.type, NX_WS_BINARY);
    cr_assert_eq(ev.payload.n, n + 1);
    cr_assert_eq(ev.payload.p, p.msg.data, "fragmented messages come from the parser's buffer");
    nx_ws_parse(&p, S.data + a + b, S.len - (size_t)(a + b), &ev);
    cr_assert_eq(ev.type, NX_WS_PING);
    cr_assert_eq(p.msg.cap, 0);
    nx_ws_parser_dispose(&p);
    free(pl);
}

/* ---- encoders ---- */

Test(ws_encode, client_frames_decode_back) {
    static const size_t lens[] = {0, 5, 125, 126, 65535, 65536};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = lens[i];
        char *pl = malloc(n + 1);
        for (size_t j = 0; j < n; j++)
            pl[j] = (char)(j % 95 + ' ');
        nx_buf_t out;
        nx_buf_init(&out);
        for (uint8_t k = 0; k < 4; k++) {
            const uint8_t key[4] = {k, (uint8_t)(k * 3), 0xff, 0x10};
            nx_buf_clear(&out);
            cr_assert_eq(nx_ws_encode_frame(&out, NX_WS_OP_TEXT, true, pl, n, key), 0);
            cr_assert(n == 0 || memcmp(out.data + out.len - n, pl, n) != 0 || k == 0,
                      "payload is masked on the wire");
            nx_ws_parser_t p;
            nx_ws_parser_init(&p, NX_WS_SERVER, 0);
            nx_ws_event_t ev;
            cr_assert_eq(nx_ws_parse(&p, out.data, out.len, &ev), (int)out.len);
            cr_assert_eq(ev.type, NX_WS_TEXT);
            cr_assert_eq(ev.payload.n, n);
            cr_assert(n == 0 || memcmp(ev.payload.p, pl, n) == 0);
        }
        nx_buf_dispose(&out);
        free(pl);
    }
}

/* A tiny client-side decoder, independent of the parser: one unmasked frame. */
static size_t tiny_decode(const uint8_t *b, size_t len, uint8_t *b0, const uint8_t **pl,
                          uint64_t *n) {
    cr_assert_geq(len, 2);
    cr_assert_eq(b[1] & 0x80, 0, "server frames are not masked");
    size_t h = 2;
    *b0 = b[0];
    *n = b[1] & 0x7f;
    if (*n == 126) {
        *n = (uint64_t)b[2] << 8 | b[3];
        cr_assert_geq(*n, 126, "minimal length encoding");
        h = 4;
    } else if (*n == 127) {
        *n = 0;
        for (int i = 2; i < 10; i++)
            *n = *n << 8 | b[i];
        cr_assert_gt(*n, 65535, "minimal length encoding");
        h = 10;
    }
    *pl = b + h;
    return h + (size_t)*n;
}

Test(ws_encode, server_frames_decode_back) {
    static const size_t lens[] = {0, 125, 126, 65535, 65536};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = lens[i];
        char *pl = malloc(n + 1);
        for (size_t j = 0; j < n; j++)
            pl[j] = (char)j;
        nx_buf_t out;
        nx_buf_init(&out);
        cr_assert_eq(nx_ws_encode_frame(&out, NX_WS_OP_BINARY, true, pl, n, NULL), 0);
        uint8_t b0;
        const uint8_t *got;
        uint64_t gn;
        cr_assert_eq(tiny_decode((uint8_t *)out.data, out.len, &b0, &got, &gn), out.len);
        cr_assert_eq(b0, 0x82);
        cr_assert_eq(gn, n);
        cr_assert(n == 0 || memcmp(got, pl, n) == 0);
        /* and the client-role parser agrees */
        nx_ws_parser_t p;
        nx_ws_parser_init(&p, NX_WS_CLIENT, 0);
        nx_ws_event_t ev;
        cr_assert_eq(nx_ws_parse(&p, out.data, out.len, &ev), (int)out.len);
        cr_assert_eq(ev.type, NX_WS_BINARY);
        cr_assert_eq(ev.payload.n, n);
        nx_buf_dispose(&out);
        free(pl);
    }
}

Test(ws_encode, control_frames_and_close) {
    nx_buf_t out;
    nx_buf_init(&out);
    char pl[126] = {0};
    cr_assert_eq(nx_ws_encode_frame(&out, NX_WS_OP_PING, true, pl, 126, NULL), NX_ELIMIT);
    cr_assert_eq(nx_ws_encode_frame(&out, NX_WS_OP_PONG, false, pl, 1, NULL), -EINVAL);
    cr_assert_eq(nx_ws_encode_frame(&out, (nx_ws_opcode_t)3, true, pl, 1, NULL), -EINVAL);
    cr_assert_eq(nx_ws_encode_close(&out, 1005, NULL, NULL), -EINVAL);
    cr_assert_eq(nx_ws_encode_close(&out, 1006, NULL, NULL), -EINVAL);
    cr_assert_eq(out.len, 0);

    cr_assert_eq(nx_ws_encode_frame(&out, NX_WS_OP_PONG, true, "abc", 3, NULL), 0);
    cr_assert_eq(out.len, 5);
    cr_assert(memcmp(out.data,
                     "\x8a\x03"
                     "abc",
                     5) == 0);
    nx_buf_clear(&out);
    cr_assert_eq(nx_ws_encode_close(&out, 0, "ignored", NULL), 0);
    cr_assert(out.len == 2 && memcmp(out.data, "\x88\x00", 2) == 0);
    nx_buf_clear(&out);
    cr_assert_eq(nx_ws_encode_close(&out, 1001, "going", NULL), 0);
    cr_assert(out.len == 9 && memcmp(out.data, "\x88\x07\x03\xe9going", 9) == 0);

    /* a long reason is cut to 123 bytes, never inside a code point */
    char reason[200];
    memset(reason, 'r', sizeof(reason));
    memcpy(reason + 121, "\xE2\x82\xAC", 3); /* the euro sign straddles byte 123 */
    reason[199] = '\0';
    nx_buf_clear(&out);
    cr_assert_eq(nx_ws_encode_close(&out, 1000, reason, NULL), 0);
    cr_assert_eq(out.len, 2 + 2 + 121);
    nx_ws_parser_t p;
    nx_ws_parser_init(&p, NX_WS_CLIENT, 0);
    nx_ws_event_t ev;
    cr_assert_eq(nx_ws_parse(&p, out.data, out.len, &ev), (int)out.len);
    cr_assert_eq(ev.close_code, 1000);
    cr_assert_eq(ev.close_reason.n, 121);
    memcpy(reason + 120, "\xE2\x82\xACr", 4); /* now it ends exactly at byte 123 */
    nx_buf_clear(&out);
    cr_assert_eq(nx_ws_encode_close(&out, 1000, reason, NULL), 0);
    cr_assert_eq(out.len, 2 + 125);
    nx_buf_dispose(&out);
}

Test(ws_encode, client_parser_rejects_masked_server_frames) {
    nx_buf_t out;
    nx_buf_init(&out);
    cr_assert_eq(nx_ws_encode_frame(&out, NX_WS_OP_TEXT, true, "hi", 2, KEY), 0);
    nx_ws_parser_t p;
    nx_ws_parser_init(&p, NX_WS_CLIENT, 0);
    nx_ws_event_t ev;
    cr_assert_eq(nx_ws_parse(&p, out.data, out.len, &ev), NX_EPROTO);
    cr_assert_eq(p.close_code, 1002);
    nx_buf_dispose(&out);
}

/* ---- UTF-8 ---- */

Test(ws_utf8, whole_string_validation) {
    cr_assert(nx_ws_utf8_valid("", 0));
    cr_assert(nx_ws_utf8_valid("plain ascii, long enough for the fast path", 42));
    cr_assert(nx_ws_utf8_valid("\xC2\x80\xDF\xBF", 4)); /* U+0080, U+07FF */
    cr_assert(
        nx_ws_utf8_valid("\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80", 9));   /* U+0800 U+D7FF U+E000 */
    cr_assert(nx_ws_utf8_valid("\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", 8)); /* U+10000, U+10FFFF */
    cr_assert(nx_ws_utf8_valid("a\0b", 3));
    cr_assert_not(nx_ws_utf8_valid("\xC0\x80", 2));
    cr_assert_not(nx_ws_utf8_valid("\xE0\x9F\xBF", 3));
    cr_assert_not(nx_ws_utf8_valid("\xED\xA0\x80", 3));
    cr_assert_not(nx_ws_utf8_valid("\xF0\x8F\xBF\xBF", 4));
    cr_assert_not(nx_ws_utf8_valid("\xF4\x90\x80\x80", 4));
    cr_assert_not(nx_ws_utf8_valid("abcdefgh\xE2\x82", 10));
    cr_assert_not(nx_ws_utf8_valid("abcdefghijklmno\xFE", 16));
}
