/* The WebSocket codec (see ws.h): handshake validation and the 101 response, a frame parser that
 * checks each header byte as it arrives, unmasks and validates payload bytes once each (keeping
 * offsets into the caller's buffer), and reassembles fragments into its own buffer; encoders. */
#include "ws.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>

#include "nexus/errors.h"

/* One frame's life: its header (parsed again from byte 0 until complete, so every check sees the
 * same bytes whatever the split), its payload, then the next frame. */
enum nx__ws_state {
    NX_WS_ST_HEAD,
    NX_WS_ST_PAYLOAD, /* header complete: head_len, payload_len, mask are known */
    NX_WS_ST_CLOSED,  /* a close frame was delivered; nothing may follow */
    NX_WS_ST_ERROR,
};

/* A reassembly buffer larger than this is freed once its message is handed out, so an idle
 * connection does not keep the memory of its largest message. */
#define NX_WS_KEEP_MSG_CAP (64u << 10)

/* ---- UTF-8 ---- */

static const nx__ws_utf8_t utf8_start = {0, 0x80, 0xBF};

/* Feeds <n> bytes to the validator; false at the first byte that cannot continue a valid text. */
static bool utf8_feed(nx__ws_utf8_t *u, const uint8_t *s, size_t n) {
    uint8_t need = u->need, lo = u->lo, hi = u->hi;
    size_t i = 0;
    while (i < n) {
        uint8_t c;
        if (need == 0) {
            /* ASCII runs eight bytes at a time */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, s + i, sizeof(w));
                if (w & 0x8080808080808080ull) break;
                i += 8;
            }
            if (i == n) break;
            c = s[i++];
            if (c < 0x80) continue;
            if (c < 0xC2) return false; /* stray continuation, or C0/C1: overlong 2-byte form */
            lo = 0x80;
            hi = 0xBF;
            if (c < 0xE0) {
                need = 1;
            } else if (c < 0xF0) {
                need = 2;
                if (c == 0xE0) lo = 0xA0; /* overlong 3-byte form */
                if (c == 0xED) hi = 0x9F; /* U+D800..U+DFFF */
            } else if (c < 0xF5) {
                need = 3;
                if (c == 0xF0) lo = 0x90; /* overlong 4-byte form */
                if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
            } else {
                return false;
            }
        } else {
            c = s[i++];
            if (c < lo || c > hi) return false;
            need--;
            lo = 0x80;
            hi = 0xBF;
        }
    }
    u->need = need;
    u->lo = lo;
    u->hi = hi;
    return true;
}

bool nx_ws_utf8_valid(const void *s, size_t n) {
    nx__ws_utf8_t u = utf8_start;
    return utf8_feed(&u, s, n) && u.need == 0;
}

/* ---- handshake ---- */

/* ASCII case-insensitive comparison of <s> with a lowercase literal, locale-free. */
static bool eq_lower(nx_str_t s, const char *lit) {
    size_t n = strlen(lit);
    if (s.n != n) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)lit[i]) return false;
    }
    return true;
}

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* The next element of a comma-separated list starting at *pos, trimmed of OWS; false at the end.
 * Empty elements are returned as empty strings (the caller skips them). */
static bool next_elem(nx_str_t list, size_t *pos, nx_str_t *out) {
    if (list.p == NULL || *pos > list.n) return false;
    size_t a = *pos, b = a;
    while (b < list.n && list.p[b] != ',')
        b++;
    *pos = b + 1;
    while (a < b && is_ows(list.p[a]))
        a++;
    while (b > a && is_ows(list.p[b - 1]))
        b--;
    *out = (nx_str_t){list.p + a, b - a};
    return true;
}

static bool has_token(nx_str_t list, const char *lower_token) {
    size_t pos = 0;
    nx_str_t e;
    while (next_elem(list, &pos, &e))
        if (eq_lower(e, lower_token)) return true;
    return false;
}

/* base64 of 16 bytes: 22 alphabet characters and "==" (the padding bits are not checked). */
static bool key_is_valid(nx_str_t k) {
    if (k.n != 24 || k.p[22] != '=' || k.p[23] != '=') return false;
    for (size_t i = 0; i < 22; i++) {
        unsigned char c = (unsigned char)k.p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    return true;
}

void nx_ws_handshake_from_http(const nx_http_request_t *req, nx_ws_handshake_req_t *out) {
    memset(out, 0, sizeof(*out));
    out->method = req->method_name;
    out->version_minor = req->version_minor;
    bool conn_upgrade = false;
    for (uint32_t i = 0; i < req->header_count; i++) {
        nx_str_t name = req->headers[i].name, value = req->headers[i].value;
        if (eq_lower(name, "upgrade")) {
            if (out->upgrade.p == NULL) out->upgrade = value;
        } else if (eq_lower(name, "connection")) {
            /* Connection may be split over fields; the one naming "upgrade" is what counts */
            if (!conn_upgrade && (out->connection.p == NULL || has_token(value, "upgrade"))) {
                out->connection = value;
                conn_upgrade = has_token(value, "upgrade");
            }
        } else if (eq_lower(name, "sec-websocket-key")) {
            if (out->key.p != NULL)
                out->duplicate_key = true;
            else
                out->key = value;
        } else if (eq_lower(name, "sec-websocket-version")) {
            if (out->version.p != NULL)
                out->duplicate_version = true;
            else
                out->version = value;
        } else if (eq_lower(name, "sec-websocket-protocol")) {
            if (out->protocol.p == NULL) out->protocol = value;
        }
    }
}

int nx_ws_accept_key(nx_str_t key, char out[NX_WS_ACCEPT_LEN + 1]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, key.p, key.n) == 1 &&
             EVP_DigestUpdate(ctx, NX_WS_GUID, sizeof(NX_WS_GUID) - 1) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok) return -EIO;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 characters and a NUL */
    return 0;
}

static int hs_fail(nx_ws_handshake_t *hs, uint16_t status, const char *msg, const char *extra) {
    hs->status = status;
    hs->error = msg;
    hs->extra_header = extra;
    return NX_EPROTO;
}

/* The client's preference wins (RFC 6455 §4.1 orders the offer by preference); names are
 * compared exactly. */
static nx_str_t select_protocol(nx_str_t offer, const char *const *supported) {
    if (supported == NULL) return (nx_str_t){NULL, 0};
    size_t pos = 0;
    nx_str_t e;
    while (next_elem(offer, &pos, &e)) {
        if (e.n == 0) continue;
        for (const char *const *s = supported; *s != NULL; s++)
            if (nx_str_eq(e, nx_str_from(*s))) return nx_str_from(*s);
    }
    return (nx_str_t){NULL, 0};
}

int nx_ws_handshake(const nx_ws_handshake_req_t *req, const char *const *supported,
                    nx_ws_handshake_t *hs, nx_buf_t *out) {
    memset(hs, 0, sizeof(*hs));
    if (!nx_str_eq(req->method, NX_STR("GET")))
        return hs_fail(hs, 405, "WebSocket upgrade requires the GET method", "Allow: GET");
    if (req->version_minor != 1)
        return hs_fail(hs, 400, "WebSocket upgrade requires HTTP/1.1", NULL);
    if (!has_token(req->upgrade, "websocket"))
        return hs_fail(hs, 400, "Upgrade header must be \"websocket\"", NULL);
    if (!has_token(req->connection, "upgrade"))
        return hs_fail(hs, 400, "Connection header must contain \"upgrade\"", NULL);
    if (req->duplicate_version || !nx_str_eq(req->version, NX_STR("13")))
        return hs_fail(hs, 426, "Sec-WebSocket-Version must be 13",
                       "Sec-WebSocket-Version: 13\r\nUpgrade: websocket");
    if (req->key.p == NULL) return hs_fail(hs, 400, "missing Sec-WebSocket-Key header", NULL);
    if (req->duplicate_key) return hs_fail(hs, 400, "duplicate Sec-WebSocket-Key header", NULL);
    if (!key_is_valid(req->key))
        return hs_fail(hs, 400, "Sec-WebSocket-Key must be base64 of 16 bytes", NULL);

    char accept[NX_WS_ACCEPT_LEN + 1];
    int rc = nx_ws_accept_key(req->key, accept);
    if (rc < 0) return rc;
    hs->protocol = select_protocol(req->protocol, supported);
    hs->status = 101;

    size_t mark = out->len;
    rc = nx_buf_append_str(out, "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: ");
    if (rc == 0) rc = nx_buf_append(out, accept, NX_WS_ACCEPT_LEN);
    if (rc == 0 && hs->protocol.p != NULL) {
        rc = nx_buf_append_str(out, "\r\nSec-WebSocket-Protocol: ");
        if (rc == 0) rc = nx_buf_append(out, hs->protocol.p, hs->protocol.n);
    }
    if (rc == 0) rc = nx_buf_append_str(out, "\r\n\r\n");
    if (rc < 0) out->len = mark;
    return rc;
}

int nx_ws_handshake_write_error(const nx_ws_handshake_t *hs, nx_buf_t *out) {
    const char *reason = hs->status == 405   ? "Method Not Allowed"
                         : hs->status == 426 ? "Upgrade Required"
                         : hs->status == 400 ? "Bad Request"
                                             : "Error";
    const char *msg = hs->error != NULL ? hs->error : reason;
    size_t mark = out->len;
    int rc = nx_buf_appendf(out,
                            "HTTP/1.1 %u %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                            "Connection: close\r\n%s%s\r\n%s\n",
                            (unsigned)hs->status, reason, strlen(msg) + 1,
                            hs->extra_header != NULL ? hs->extra_header : "",
                            hs->extra_header != NULL ? "\r\n" : "", msg);
    if (rc < 0) out->len = mark;
    return rc;
}

/* ---- frame parser ---- */

void nx_ws_parser_init(nx_ws_parser_t *p, nx_ws_role_t role, uint64_t max_message) {
    memset(p, 0, sizeof(*p));
    /* a frame is at most 14 header bytes plus a payload within the limit, and its length is
     * returned as an int */
    const uint64_t cap = (uint64_t)INT_MAX - 14;
    if (max_message == 0) max_message = NX_WS_DEFAULT_MAX_MESSAGE;
    p->max_message = max_message < cap ? max_message : cap;
    p->role = (uint8_t)role;
    p->state = NX_WS_ST_HEAD;
    p->utf8 = utf8_start;
    nx_buf_init(&p->msg);
}

void nx_ws_parser_dispose(nx_ws_parser_t *p) {
    if (p == NULL) return;
    nx_buf_dispose(&p->msg);
}

bool nx_ws_close_code_valid(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static int fail(nx_ws_parser_t *p, uint16_t code, const char *msg) {
    p->state = NX_WS_ST_ERROR;
    p->close_code = code;
    p->error_message = msg;
    return NX_EPROTO;
}

/* Checks the header in <b>[0..<len>) byte by byte as far as it goes, so a bad first byte is
 * refused at once; returns 0 with the frame fields set once the header is complete. */
static int parse_head(nx_ws_parser_t *p, const uint8_t *b, size_t len) {
    if (len < 1) return NX_AGAIN;
    uint8_t op = b[0] & 0x0f;
    bool fin = (b[0] & 0x80) != 0;
    if (b[0] & 0x70) return fail(p, NX_WS_CLOSE_PROTOCOL, "RSV bits set without an extension");
    switch (op) {
    case NX_WS_OP_CONT:
    case NX_WS_OP_TEXT:
    case NX_WS_OP_BINARY:
    case NX_WS_OP_CLOSE:
    case NX_WS_OP_PING:
    case NX_WS_OP_PONG:
        break;
    default:
        return fail(p, NX_WS_CLOSE_PROTOCOL, "reserved opcode");
    }
    bool control = op >= NX_WS_OP_CLOSE;
    if (control && !fin) return fail(p, NX_WS_CLOSE_PROTOCOL, "fragmented control frame");
    if (op == NX_WS_OP_CONT && p->msg_opcode == 0)
        return fail(p, NX_WS_CLOSE_PROTOCOL, "continuation frame without a message to continue");
    if ((op == NX_WS_OP_TEXT || op == NX_WS_OP_BINARY) && p->msg_opcode != 0)
        return fail(p, NX_WS_CLOSE_PROTOCOL, "new data frame inside a fragmented message");

    if (len < 2) return NX_AGAIN;
    bool masked = (b[1] & 0x80) != 0;
    if (p->role == NX_WS_SERVER && !masked)
        return fail(p, NX_WS_CLOSE_PROTOCOL, "client frame is not masked");
    if (p->role == NX_WS_CLIENT && masked)
        return fail(p, NX_WS_CLOSE_PROTOCOL, "server frame is masked");
    uint64_t plen = b[1] & 0x7f;
    size_t hl = 2;
    if (control && plen > NX_WS_MAX_CONTROL)
        return fail(p, NX_WS_CLOSE_PROTOCOL, "control frame payload over 125 bytes");
    if (op == NX_WS_OP_CLOSE && plen == 1)
        return fail(p, NX_WS_CLOSE_PROTOCOL, "close frame payload of 1 byte");
    if (plen == 126) {
        if (len < 4) return NX_AGAIN;
        plen = (uint64_t)b[2] << 8 | b[3];
        hl = 4;
    } else if (plen == 127) {
        if (len < 3) return NX_AGAIN;
        if (b[2] & 0x80)
            return fail(p, NX_WS_CLOSE_PROTOCOL, "64-bit payload length with the high bit set");
        if (len < 10) return NX_AGAIN;
        plen = 0;
        for (int i = 2; i < 10; i++)
            plen = plen << 8 | b[i];
        hl = 10;
    }
    /* the limit is on the reassembled message, so fragments count what came before */
    uint64_t have = op == NX_WS_OP_CONT ? p->msg.len : 0;
    if (!control && plen > p->max_message - have)
        return fail(p, NX_WS_CLOSE_TOO_BIG, "message larger than the configured maximum");
    if (masked) {
        if (len < hl + 4) return NX_AGAIN;
        memcpy(p->mask, b + hl, 4);
        hl += 4;
    }
    p->opcode = op;
    p->fin = fin;
    p->masked = masked;
    p->head_len = (uint8_t)hl;
    p->payload_len = plen;
    p->done = 0;
    return 0;
}

/* XORs <n> bytes at <d> with the key, <off> being their offset in the payload. */
static void apply_mask(uint8_t *d, size_t n, const uint8_t key[4], uint64_t off) {
    uint8_t k[8];
    for (int j = 0; j < 8; j++)
        k[j] = key[(off + (uint64_t)j) & 3];
    uint64_t kw;
    memcpy(&kw, k, sizeof(kw));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, sizeof(w));
        w ^= kw;
        memcpy(d + i, &w, sizeof(w));
    }
    for (; i < n; i++)
        d[i] ^= k[i & 7];
}

static bool is_text(const nx_ws_parser_t *p) {
    return p->opcode == NX_WS_OP_TEXT ||
           (p->opcode == NX_WS_OP_CONT && p->msg_opcode == NX_WS_OP_TEXT);
}

/* The frame's payload is all in and valid so far: deliver it or keep it for its message. */
static int finish_frame(nx_ws_parser_t *p, char *buf, nx_ws_event_t *ev) {
    const char *pl = buf + p->head_len;
    size_t n = (size_t)p->payload_len;
    int total = (int)(p->head_len + n);
    p->state = NX_WS_ST_HEAD;

    switch (p->opcode) {
    case NX_WS_OP_TEXT:
    case NX_WS_OP_BINARY:
    case NX_WS_OP_CONT:
        if (p->fin && p->opcode != NX_WS_OP_CONT) { /* a whole message: hand out in place */
            if (p->opcode == NX_WS_OP_TEXT && p->utf8.need != 0)
                return fail(p, NX_WS_CLOSE_INVALID_DATA,
                            "text message ends inside a UTF-8 "
                            "sequence");
            ev->type = (nx_ws_type_t)p->opcode;
            ev->payload = (nx_str_t){pl, n};
            p->utf8 = utf8_start;
            return total;
        }
        if (p->opcode != NX_WS_OP_CONT) p->msg_opcode = p->opcode;
        if (nx_buf_append(&p->msg, pl, n) < 0) {
            fail(p, NX_WS_CLOSE_INTERNAL, "out of memory reassembling a message");
            return -ENOMEM;
        }
        if (!p->fin) return total; /* ev->type stays NX_WS_NONE */
        if (p->msg_opcode == NX_WS_OP_TEXT && p->utf8.need != 0)
            return fail(p, NX_WS_CLOSE_INVALID_DATA, "text message ends inside a UTF-8 sequence");
        ev->type = (nx_ws_type_t)p->msg_opcode;
        ev->payload = (nx_str_t){p->msg.data != NULL ? p->msg.data : "", p->msg.len};
        p->msg_opcode = 0;
        p->release_msg = true;
        p->utf8 = utf8_start;
        return total;
    case NX_WS_OP_CLOSE: {
        uint16_t code = NX_WS_CLOSE_NO_STATUS;
        if (n >= 2) {
            code = (uint16_t)((uint8_t)pl[0] << 8 | (uint8_t)pl[1]);
            if (!nx_ws_close_code_valid(code))
                return fail(p, NX_WS_CLOSE_PROTOCOL, "invalid close code");
            if (!nx_ws_utf8_valid(pl + 2, n - 2))
                return fail(p, NX_WS_CLOSE_INVALID_DATA, "close reason is not valid UTF-8");
        }
        ev->type = NX_WS_CLOSE;
        ev->payload = (nx_str_t){pl, n};
        ev->close_code = code;
        ev->close_reason = n >= 2 ? (nx_str_t){pl + 2, n - 2} : (nx_str_t){pl + n, 0};
        p->state = NX_WS_ST_CLOSED;
        return total;
    }
    default: /* ping, pong */
        ev->type = (nx_ws_type_t)p->opcode;
        ev->payload = (nx_str_t){pl, n};
        return total;
    }
}

int nx_ws_parse(nx_ws_parser_t *p, char *buf, size_t len, nx_ws_event_t *ev) {
    memset(ev, 0, sizeof(*ev));
    if (p->state == NX_WS_ST_ERROR) return NX_EPROTO;
    if (p->state == NX_WS_ST_CLOSED) return NX_ECLOSED;
    if (p->release_msg) {
        p->release_msg = false;
        if (p->msg.cap > NX_WS_KEEP_MSG_CAP) nx_buf_dispose(&p->msg);
        nx_buf_clear(&p->msg);
    }
    if (p->state == NX_WS_ST_HEAD) {
        int rc = parse_head(p, (const uint8_t *)buf, len);
        if (rc < 0) return rc;
        p->state = NX_WS_ST_PAYLOAD;
    }
    /* payload bytes that arrived since the last call: unmask and validate each once */
    size_t avail = len > p->head_len ? len - p->head_len : 0;
    if (avail > p->payload_len) avail = (size_t)p->payload_len;
    if (avail > p->done) {
        uint8_t *d = (uint8_t *)buf + p->head_len + p->done;
        size_t n = avail - (size_t)p->done;
        if (p->masked) apply_mask(d, n, p->mask, p->done);
        if (is_text(p) && !utf8_feed(&p->utf8, d, n))
            return fail(p, NX_WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8");
        p->done = avail;
    }
    if (p->done < p->payload_len) return NX_AGAIN;
    return finish_frame(p, buf, ev);
}

/* ---- encoders ---- */

int nx_ws_encode_frame(nx_buf_t *out, nx_ws_opcode_t opcode, bool fin, const void *payload,
                       size_t n, const uint8_t *mask_key) {
    switch (opcode) {
    case NX_WS_OP_CONT:
    case NX_WS_OP_TEXT:
    case NX_WS_OP_BINARY:
        break;
    case NX_WS_OP_CLOSE:
    case NX_WS_OP_PING:
    case NX_WS_OP_PONG:
        if (!fin) return -EINVAL;
        if (n > NX_WS_MAX_CONTROL) return NX_ELIMIT;
        break;
    default:
        return -EINVAL;
    }
    uint8_t h[14];
    size_t hl = 0;
    uint8_t mbit = mask_key != NULL ? 0x80 : 0;
    h[hl++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        h[hl++] = (uint8_t)(mbit | n);
    } else if (n <= 0xffff) {
        h[hl++] = mbit | 126;
        h[hl++] = (uint8_t)(n >> 8);
        h[hl++] = (uint8_t)n;
    } else {
        h[hl++] = mbit | 127;
        for (int s = 56; s >= 0; s -= 8)
            h[hl++] = (uint8_t)((uint64_t)n >> s);
    }
    if (mask_key != NULL) {
        memcpy(h + hl, mask_key, 4);
        hl += 4;
    }
    if (n > SIZE_MAX - hl || nx_buf_reserve(out, hl + n) < 0) return -ENOMEM;
    memcpy(out->data + out->len, h, hl);
    out->len += hl;
    if (n > 0) {
        memcpy(out->data + out->len, payload, n);
        if (mask_key != NULL) apply_mask((uint8_t *)out->data + out->len, n, mask_key, 0);
        out->len += n;
    }
    return 0;
}

int nx_ws_encode_close(nx_buf_t *out, uint16_t code, const char *reason, const uint8_t *mask_key) {
    if (code == 0) return nx_ws_encode_frame(out, NX_WS_OP_CLOSE, true, NULL, 0, mask_key);
    if (!nx_ws_close_code_valid(code)) return -EINVAL;
    char body[NX_WS_MAX_CONTROL];
    size_t rn = reason != NULL ? strlen(reason) : 0;
    if (rn > NX_WS_MAX_CONTROL - 2) {
        /* cut before the code point that would straddle the bound */
        rn = NX_WS_MAX_CONTROL - 2;
        while (rn > 0 && ((uint8_t)reason[rn] & 0xC0) == 0x80)
            rn--;
    }
    if (!nx_ws_utf8_valid(reason, rn)) return -EINVAL;
    body[0] = (char)(code >> 8);
    body[1] = (char)code;
    if (rn > 0) memcpy(body + 2, reason, rn);
    return nx_ws_encode_frame(out, NX_WS_OP_CLOSE, true, body, rn + 2, mask_key);
}
