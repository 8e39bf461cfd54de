/* libFuzzer target for what the WebSocket client (net/ws_client.c) reads from a server: the
 * answer to its upgrade, checked by nx_ws_client_check_handshake, and the frames after a 101,
 * parsed in the client role. A head the check accepts must really be a 101 carrying the expected
 * accept value and exactly the subprotocol asked for; the frames must give the same events fed
 * whole and in small steps through moved buffers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http_response.h"
#include "nexus/errors.h"
#include "ws.h"
#include "ws_client.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

/* The RFC 6455 §1.3 example: this key gives this accept value. */
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* A valid answer the fuzzer may put in front of its bytes, so that frames are reached at once. */
static const char *const heads[] = {
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: " ACCEPT "\r\nSec-WebSocket-Protocol: mcp\r\n\r\n",
};

static size_t fields(const nx_http_response_t *h, const char *name, nx_str_t *first) {
    size_t n = 0;
    for (uint32_t i = 0; i < h->header_count; i++) {
        if (!nx_str_eq_lit_nocase(h->headers[i].name, name)) continue;
        if (n++ == 0) *first = h->headers[i].value;
    }
    return n;
}

/* Parses the response head at the start of <b>; the bytes it took, or 0 when there is none. */
static size_t check_head(const char *b, size_t n, const char *protocol, bool *ok) {
    nx_http_response_parser_t p;
    nx_http_response_parser_init(&p, NULL, false);
    size_t off = 0;
    *ok = false;
    for (;;) {
        nx_http_response_event_t ev;
        int rc = nx_http_response_parse(&p, b + off, n - off, &ev);
        if (rc < 0) return 0;
        off += (size_t)rc;
        if (ev.kind != NX_HTTP_RESP_HEAD) continue;
        const char *why = NULL, *why2 = NULL;
        int v = nx_ws_client_check_handshake(ev.head, ACCEPT, protocol, &why);
        CHECK(v == 0 || v == NX_EPROTO);
        CHECK((v == 0) == (why == NULL));
        CHECK(nx_ws_client_check_handshake(ev.head, ACCEPT, protocol, &why2) == v && why2 == why);
        if (v == 0) {
            nx_str_t a = {NULL, 0}, sp = {NULL, 0}, ext = {NULL, 0};
            CHECK(ev.head->status == 101 && ev.head->upgrade);
            CHECK(fields(ev.head, "sec-websocket-accept", &a) == 1);
            CHECK(nx_str_eq(a, NX_STR(ACCEPT)));
            CHECK(fields(ev.head, "sec-websocket-extensions", &ext) == 0);
            size_t np = fields(ev.head, "sec-websocket-protocol", &sp);
            CHECK(protocol == NULL ? np == 0 : np == 1 && nx_str_eq(sp, nx_str_from(protocol)));
        }
        *ok = v == 0;
        return off;
    }
}

/* Parses frames from <data> as a client, <step> bytes at a time through moved buffers, logging
 * each event; returns the verdict. */
static int frames(const uint8_t *data, size_t size, size_t step, nx_buf_t *log) {
    nx_ws_parser_t p;
    nx_ws_parser_init(&p, NX_WS_CLIENT, 64);
    nx_buf_t rb;
    nx_buf_init(&rb);
    int verdict = NX_AGAIN;
    for (size_t fed = 0; fed < size && verdict == NX_AGAIN;) {
        size_t add = step < size - fed ? step : size - fed;
        nx_buf_t moved;
        nx_buf_init(&moved);
        nx_buf_append(&moved, rb.data, rb.len);
        nx_buf_append(&moved, data + fed, add);
        nx_buf_dispose(&rb);
        rb = moved;
        fed += add;
        while (verdict == NX_AGAIN) {
            nx_ws_event_t ev;
            int rc = nx_ws_parse(&p, rb.data, rb.len, &ev);
            if (rc < 0) {
                CHECK(rc == NX_AGAIN || rc == NX_EPROTO || rc == NX_ECLOSED);
                if (rc != NX_AGAIN) verdict = rc;
                break;
            }
            if (ev.type == NX_WS_TEXT) CHECK(nx_ws_utf8_valid(ev.payload.p, ev.payload.n));
            if (ev.type == NX_WS_TEXT || ev.type == NX_WS_BINARY) CHECK(ev.payload.n <= 64);
            nx_buf_append(log, &(uint8_t){(uint8_t)ev.type}, 1);
            nx_buf_append(log, ev.payload.p, ev.payload.n);
            nx_buf_consume(&rb, (size_t)rc);
        }
    }
    if (verdict == NX_EPROTO)
        CHECK(p.close_code == 1002 || p.close_code == 1007 || p.close_code == 1009);
    nx_buf_dispose(&rb);
    nx_ws_parser_dispose(&p);
    return verdict;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *protocol = data[0] & 1 ? "mcp" : NULL;
    bool prefixed = (data[0] & 2) != 0;
    size_t step = 1 + (data[0] >> 4);
    data++;
    size--;
    nx_buf_t in;
    nx_buf_init(&in);
    if (prefixed) nx_buf_append_str(&in, heads[protocol != NULL]);
    nx_buf_append(&in, data, size);
    bool ok = false;
    size_t head = in.len > 0 ? check_head(in.data, in.len, protocol, &ok) : 0;
    if (prefixed) CHECK(ok && head == strlen(heads[protocol != NULL]));
    if (ok) {
        nx_buf_t a, b;
        nx_buf_init(&a);
        nx_buf_init(&b);
        const uint8_t *rest = (const uint8_t *)in.data + head;
        int va = frames(rest, in.len - head, in.len - head, &a);
        int vb = frames(rest, in.len - head, step, &b);
        CHECK(va == vb && a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
        nx_buf_dispose(&a);
        nx_buf_dispose(&b);
    }
    nx_buf_dispose(&in);
    return 0;
}
