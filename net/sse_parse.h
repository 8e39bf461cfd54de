/* Server-Sent Events parsing (WHATWG HTML, "9.2.6 Interpreting an event stream"): an
 * incremental parser that turns a text/event-stream body, fed in pieces of any size, into
 * messages, for nexus's client side of MCP's Streamable HTTP and SSE transports. It copies what
 * it keeps, so every input byte may be discarded once a call returns. No I/O. (The encoder is
 * net/sse.h.)
 *
 * What the spec says and this parser does, byte for byte:
 *  - Lines end in CRLF, LF or CR. A CR ending one piece and an LF starting the next are one
 *    line end. One UTF-8 BOM (EF BB BF) at the very start of the stream is skipped.
 *  - A line starting with ':' is a comment and ignored. Otherwise the field name runs to the
 *    first ':' (or is the whole line, with an empty value); one space after the colon is
 *    dropped. Names are case-sensitive; unknown fields are ignored.
 *  - "event" sets the event type; "data" appends its value and an LF to the data buffer; "id"
 *    sets the last event ID unless the value contains NUL (then the field is ignored); "retry"
 *    sets the reconnection time when the value is one or more ASCII digits (else ignored).
 *  - A blank line dispatches: the stream's last event ID becomes the id buffer's (even if no
 *    message follows); then if the data buffer is empty, data and type are cleared and nothing
 *    is reported; else one trailing LF is removed and a message is reported with type "message"
 *    unless an event field set another.
 *  - At the end of the stream an incomplete event is discarded (there is nothing to call).
 *
 * MCP priming events: a Streamable HTTP server opens a stream with "id: 5\ndata: \n\n" (or
 * "data:" with nothing after it) so the client learns an id to resume from. The data line
 * appends "" + LF, so the buffer is "\n": not empty, so the event is dispatched, and the LF is
 * trimmed: the message has data "" (length 0) and id "5". A block with an id and no data line
 * ("id: 5\n\n") reports no message but still updates nx_sse_parser_last_event_id().
 *
 * Bytes are not UTF-8 validated or replaced (a browser would substitute U+FFFD); consumers such
 * as a JSON parser reject invalid text themselves. */
#ifndef NX_NET_SSE_PARSE_H
#define NX_NET_SSE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "nexus/str.h"

/* Bounds on what one stream may make the parser hold; owned by the configuration, borrowed. */
typedef struct nx_sse_limits {
    uint32_t max_event_bytes; /* data buffer (each data line's value plus its LF) + event type
                               * of one event; over -> NX_SSE_EEVENT_TOO_LARGE */
    uint32_t max_id_bytes;    /* one id field's value; over -> NX_SSE_EID_TOO_LONG */
} nx_sse_limits_t;

/* Used when nx_sse_parser_init gets NULL limits: 4 MiB events, 1 KiB ids. */
extern const nx_sse_limits_t nx_sse_default_limits;

/* One dispatched event. Every nx_str_t points into the parser and is valid until the next call
 * on it; none is NULL. */
typedef struct nx_sse_message {
    nx_str_t type;    /* the event field's value, or "message" when absent or empty */
    nx_str_t data;    /* data lines joined with LF, the final LF removed; may be empty */
    nx_str_t id;      /* the stream's last event ID, which persists across events ("" if none) */
    int64_t retry_ms; /* the reconnection time in effect (last valid retry field), -1 if none */
} nx_sse_message_t;

/* Why a stream was refused: set in parser.error with parser.error_message. */
typedef enum {
    NX_SSE_OK = 0,
    NX_SSE_EEVENT_TOO_LARGE, /* data + event type of one event over max_event_bytes */
    NX_SSE_EID_TOO_LONG,     /* an id value over max_id_bytes */
    NX_SSE_ENOMEM,           /* an allocation failed */
} nx_sse_error_t;

/* Parser state for one event stream (and its reconnections); the client embeds it and owns it:
 * _init, then _dispose to free the buffers. */
typedef struct nx_sse_parser {
    const nx_sse_limits_t *limits;
    uint8_t state;       /* an nx__sse_state (sse_parse.c) */
    uint8_t field;       /* the nx__sse_field the current line's value goes to */
    uint8_t bom_matched; /* bytes of a BOM seen at the start of the stream */
    bool after_cr;       /* the last line ended in CR: an LF next is part of that line end */
    bool retry_ok;       /* the retry value so far is all digits */
    bool id_has_nul;     /* the id value so far contains NUL */
    bool reported;       /* a message was returned: clear its buffers on the next call */
    bool id_changed;     /* an id field was committed since the last blank line */
    uint8_t name_len;    /* bytes of the field name so far (capped) */
    char name[6];        /* the field name's first bytes; longer names are unknown fields */
    uint32_t retry_digits;
    uint64_t retry_value; /* the retry value being read, saturating */
    int64_t retry_ms;     /* the reconnection time in effect, -1 if never set */
    nx_buf_t data;        /* the data buffer: each data line's value + LF */
    nx_buf_t type;        /* the event type buffer */
    nx_buf_t id_line;     /* the value of the id field being read */
    nx_buf_t id;          /* the last event ID buffer (set by id fields) */
    nx_buf_t last_id;     /* the stream's last event ID (set from <id> on every blank line) */
    nx_sse_error_t error;
    const char *error_message;
} nx_sse_parser_t;

/** Prepares <p> for a new stream; <limits> is borrowed (NULL = defaults). */
void nx_sse_parser_init(nx_sse_parser_t *p, const nx_sse_limits_t *limits);
/** Frees <p>'s buffers; NULL-safe. <p> may be initialised again. */
void nx_sse_parser_dispose(nx_sse_parser_t *p);
/** Starts the next response body of the same event source (after a reconnect): the pending
 *  event is dropped, a BOM is skipped again and errors are cleared; the last event ID and the
 *  reconnection time persist, and the new stream's id buffer starts from that last event ID (as
 *  browsers do), so a stream that sends no id keeps the one the client resumed from. */
void nx_sse_parser_restart(nx_sse_parser_t *p);
/** Parses <buf>[0..<len>) (<len> at most INT_MAX, else -EINVAL); returns the bytes consumed up
 *  to and including the line end that dispatched a message (> 0, <msg> filled, valid until the
 *  next call), NX_AGAIN when all <len> bytes were consumed without completing a message (they
 *  may be discarded), NX_EPROTO with p->error and p->error_message set, or -ENOMEM (p->error
 *  NX_SSE_ENOMEM). Errors are sticky until restart. Call again with the rest of the input after
 *  a message. */
int nx_sse_parse(nx_sse_parser_t *p, const char *buf, size_t len, nx_sse_message_t *msg);
/** The stream's last event ID: what a reconnecting client sends as Last-Event-ID ("" if none).
 *  Valid until the next call on <p>. */
nx_str_t nx_sse_parser_last_event_id(const nx_sse_parser_t *p);
/** The reconnection time in milliseconds set by the stream's last valid retry field, or -1. */
int64_t nx_sse_parser_retry_ms(const nx_sse_parser_t *p);

#endif
