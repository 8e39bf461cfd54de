/* The WebSocket codec (RFC 6455): the server side of the opening handshake, an incremental,
 * offset-keeping frame parser that reassembles fragmented messages and validates UTF-8, and
 * frame encoders for both roles. It does no I/O; the connection owns buffers and parser. */
#ifndef NX_NET_WS_H
#define NX_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"
#include "nexus/str.h"

#define NX_WS_MAX_CONTROL 125                 /* payload bound of close, ping and pong */
#define NX_WS_DEFAULT_MAX_MESSAGE (10u << 20) /* used when the parser is given 0 */
#define NX_WS_ACCEPT_LEN 28                   /* base64 of a SHA-1 digest */
#define NX_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 §1.3 */

typedef enum {
    NX_WS_OP_CONT = 0x0,
    NX_WS_OP_TEXT = 0x1,
    NX_WS_OP_BINARY = 0x2,
    NX_WS_OP_CLOSE = 0x8,
    NX_WS_OP_PING = 0x9,
    NX_WS_OP_PONG = 0xA,
} nx_ws_opcode_t;

/* What a parsed frame delivered; the values match the opcodes that carry them. */
typedef enum {
    NX_WS_NONE = 0, /* a non-final fragment, kept by the parser */
    NX_WS_TEXT = NX_WS_OP_TEXT,
    NX_WS_BINARY = NX_WS_OP_BINARY,
    NX_WS_CLOSE = NX_WS_OP_CLOSE,
    NX_WS_PING = NX_WS_OP_PING,
    NX_WS_PONG = NX_WS_OP_PONG,
} nx_ws_type_t;

/* Close status codes (RFC 6455 §7.4.1); 1005 and 1006 are never sent on the wire. */
enum {
    NX_WS_CLOSE_NORMAL = 1000,
    NX_WS_CLOSE_GOING_AWAY = 1001,
    NX_WS_CLOSE_PROTOCOL = 1002,
    NX_WS_CLOSE_UNSUPPORTED = 1003,
    NX_WS_CLOSE_NO_STATUS = 1005,
    NX_WS_CLOSE_ABNORMAL = 1006,
    NX_WS_CLOSE_INVALID_DATA = 1007,
    NX_WS_CLOSE_POLICY = 1008,
    NX_WS_CLOSE_TOO_BIG = 1009,
    NX_WS_CLOSE_EXTENSION = 1010,
    NX_WS_CLOSE_INTERNAL = 1011,
};

typedef enum {
    NX_WS_SERVER = 0, /* parses masked client frames */
    NX_WS_CLIENT = 1, /* parses unmasked server frames */
} nx_ws_role_t;

/* ---- opening handshake ---- */

/* The parts of an upgrade request the handshake reads. Every nx_str_t is borrowed and
 * {NULL, 0} when the header is absent; the caller owns the request it points into. */
typedef struct nx_ws_handshake_req {
    nx_str_t method;        /* must be "GET" */
    uint8_t version_minor;  /* HTTP/1.<minor>; must be 1 */
    nx_str_t upgrade;       /* Upgrade: must contain the token "websocket" */
    nx_str_t connection;    /* Connection: must contain the token "upgrade" */
    nx_str_t key;           /* Sec-WebSocket-Key: base64 of 16 bytes */
    nx_str_t version;       /* Sec-WebSocket-Version: must be 13 */
    nx_str_t protocol;      /* Sec-WebSocket-Protocol: the client's offer, comma-separated */
    bool duplicate_key;     /* Sec-WebSocket-Key appeared more than once */
    bool duplicate_version; /* Sec-WebSocket-Version appeared more than once */
} nx_ws_handshake_req_t;

/* The outcome of nx_ws_handshake; filled on success and on failure. */
typedef struct nx_ws_handshake {
    uint16_t status;          /* 101, or 400 / 405 / 426 on failure */
    const char *error;        /* static message saying precisely what was wrong; NULL on 101 */
    const char *extra_header; /* a header line (no CRLF) the error response must carry, or NULL:
                               * "Sec-WebSocket-Version: 13" with 426, "Allow: GET" with 405 */
    nx_str_t protocol;        /* the chosen subprotocol, pointing into the supported list;
                               * {NULL, 0} when none was offered or none matched */
} nx_ws_handshake_t;

/** Fills <out> from the parsed request <req>, whose strings it borrows: the first value of each
 *  header, except Connection, where the first field carrying "upgrade" is taken. */
void nx_ws_handshake_from_http(const nx_http_request_t *req, nx_ws_handshake_req_t *out);
/** Validates <req> and, on success, appends the "101 Switching Protocols" response to <out>,
 *  choosing the first subprotocol of the client's offer found in the NULL-terminated list
 *  <supported> (NULL = none). Returns 0, NX_EPROTO with hs->status/error/extra_header set and
 *  <out> untouched, or -ENOMEM. */
int nx_ws_handshake(const nx_ws_handshake_req_t *req, const char *const *supported,
                    nx_ws_handshake_t *hs, nx_buf_t *out);
/** Appends to <out> a complete "Connection: close" error response for the failed <hs>, with its
 *  extra header and the message as a text/plain body. Returns 0 or -ENOMEM. */
int nx_ws_handshake_write_error(const nx_ws_handshake_t *hs, nx_buf_t *out);
/** Writes Sec-WebSocket-Accept for <key> (base64(SHA-1(key + GUID))) into <out>, NUL-terminated.
 *  Returns 0, or -EIO if libcrypto fails. */
int nx_ws_accept_key(nx_str_t key, char out[NX_WS_ACCEPT_LEN + 1]);

/* ---- frame parser ---- */

/* One delivered message or control frame. Payloads point into the caller's buffer (single-frame
 * messages and control frames, unmasked in place) or into the parser's reassembly buffer
 * (fragmented messages); either way they are valid until the next nx_ws_parse call on the
 * parser and until the caller moves or consumes its buffer. */
typedef struct nx_ws_event {
    nx_ws_type_t type;
    nx_str_t payload;      /* the whole message / control payload (for CLOSE: code + reason) */
    uint16_t close_code;   /* CLOSE: the peer's code, NX_WS_CLOSE_NO_STATUS for an empty body */
    nx_str_t close_reason; /* CLOSE: the UTF-8 reason after the code, possibly empty */
} nx_ws_event_t;

/* Incremental UTF-8 validator state: continuation bytes still needed and the range allowed for
 * the next one (which is how overlongs, surrogates and code points past U+10FFFF are refused). */
typedef struct nx__ws_utf8 {
    uint8_t need, lo, hi;
} nx__ws_utf8_t;

/* Parser state for one connection; the connection embeds it (_init / _dispose). Positions in the
 * current frame are offsets from its first byte, so the caller's buffer may move between calls.
 * The reassembly buffer <msg> is owned here. */
typedef struct nx_ws_parser {
    uint64_t max_message; /* bound on a reassembled message, checked against frame headers */
    uint8_t role;         /* nx_ws_role_t */
    uint8_t state;        /* an nx__ws_state (ws.c) */
    /* the current frame, valid once its header is complete */
    uint8_t opcode;
    bool fin;
    bool masked;
    uint8_t mask[4];
    uint8_t head_len;     /* header bytes, 2..14 */
    uint64_t payload_len; /* as announced */
    uint64_t done;        /* payload bytes already unmasked and validated */
    /* the message in progress */
    uint8_t msg_opcode;        /* TEXT or BINARY while a fragmented message is open, else 0 */
    bool release_msg;          /* <msg> was handed out: empty it on the next call */
    nx__ws_utf8_t utf8;        /* across every fragment of a text message */
    nx_buf_t msg;              /* payloads of the fragments so far */
    uint16_t close_code;       /* set on NX_EPROTO: 1002, 1007 or 1009 (1011 after -ENOMEM) */
    const char *error_message; /* static string saying precisely what was wrong */
} nx_ws_parser_t;

/** Prepares <p> for a connection of <role>; messages above <max_message> bytes are refused
 *  with 1009 (0 = NX_WS_DEFAULT_MAX_MESSAGE; clamped so a frame's length fits an int). */
void nx_ws_parser_init(nx_ws_parser_t *p, nx_ws_role_t role, uint64_t max_message);
/** Frees <p>'s reassembly buffer; NULL-safe. */
void nx_ws_parser_dispose(nx_ws_parser_t *p);
/** Parses one frame from <buf>[0..<len>), which starts at the frame's first byte and may be moved
 *  or grown between calls; payload bytes are unmasked in place as they arrive, so <buf> must be
 *  writable and kept as left. Returns the frame's byte length once it is complete, with <ev>
 *  filled (type NX_WS_NONE for a non-final fragment, whose payload the parser copied); NX_AGAIN
 *  for more input; NX_EPROTO with p->close_code/error_message set (sticky); NX_ECLOSED on every
 *  call after a CLOSE was delivered; or -ENOMEM. */
int nx_ws_parse(nx_ws_parser_t *p, char *buf, size_t len, nx_ws_event_t *ev);
/** True if a peer may send close code <code> (1000-1003, 1007-1014, 3000-4999). */
bool nx_ws_close_code_valid(unsigned code);

/* ---- frame encoders ---- */

/** Appends one frame of <opcode> with <n> bytes of <payload> to <out>, with the minimal length
 *  encoding; unmasked when <mask_key> is NULL (server), else masked with those 4 bytes (client).
 *  <fin> false starts or continues a fragmented message. Returns 0, -ENOMEM, -EINVAL for an
 *  unknown opcode or a fragmented control frame, or NX_ELIMIT for a control payload over 125. */
int nx_ws_encode_frame(nx_buf_t *out, nx_ws_opcode_t opcode, bool fin, const void *payload,
                       size_t n, const uint8_t *mask_key);
/** Appends a close frame with <code> and <reason> (NUL-terminated, or NULL), the reason cut at a
 *  UTF-8 boundary to fit 125 bytes; <code> 0 sends an empty body. <mask_key> as above. Returns 0,
 *  -ENOMEM, or -EINVAL for a code that may not be sent. */
int nx_ws_encode_close(nx_buf_t *out, uint16_t code, const char *reason, const uint8_t *mask_key);

/* ---- UTF-8 ---- */

/** True if <s>[0..<n>) is well-formed UTF-8 (no overlongs, surrogates, or code points past
 *  U+10FFFF). */
bool nx_ws_utf8_valid(const void *s, size_t n);

#endif
