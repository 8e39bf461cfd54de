/* The HTTP/1.1 response codec for nexus's outbound client (backend MCP servers, REST services):
 * an incremental, allocation-free parser that turns the bytes of a connection into events —
 * informational (1xx) heads, the final head, body data, the end of the message. It does no I/O;
 * the client owns the receive buffer and the parser. Framing is as strict as the request parser
 * (net/http1.c), since a response misread on a pooled connection desynchronises the next one.
 *
 * The calling convention, for a receive buffer whose first byte is the first byte not yet
 * consumed:
 *
 *     nx_http_response_parser_init(&p, &limits, request_was_head);
 *     for (;;) {                     // after each read appended bytes to buf[0..len)
 *         rc = nx_http_response_parse(&p, buf, len, &ev);
 *         if (rc == NX_AGAIN) break; // read more, append, call again (buf may move)
 *         if (rc < 0) fail(p.error, p.error_message);
 *         handle(&ev);               // ev's pointers are into buf: use them now
 *         drop(buf, rc);             // the first rc bytes are done with
 *         if (ev.kind == NX_HTTP_RESP_DONE) break;
 *     }
 *     // on EOF: nx_http_response_eof(&p, &ev) ends a close-delimited body or reports truncation
 *
 * Bytes the parser has looked at but not yet consumed (a head still arriving, a chunk-size line,
 * the trailer section) stay in the caller's buffer and are remembered as offsets, so the buffer
 * may be moved or grown between calls. At most max_header_bytes (plus a few framing bytes) are
 * ever held back this way; body data is handed out as soon as it arrives, so an endless stream
 * (SSE) never accumulates. */
#ifndef NX_NET_HTTP_RESPONSE_H
#define NX_NET_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http1.h" /* nx_http_header_t, NX_HTTP_MAX_HEADERS_CAP, nx__http_span_t */
#include "nexus/str.h"

/* Bounds on one response; owned by the client's configuration, borrowed by the parser. */
typedef struct nx_http_response_limits {
    uint32_t max_header_bytes; /* status line + headers + blank line incl. CRLFs; the same bound
                                * applies to each 1xx head, to the trailer section and to the
                                * whitespace and extensions of one chunk-size line */
    uint32_t max_headers;      /* header fields per head (clamped to NX_HTTP_MAX_HEADERS_CAP) */
    uint64_t max_body;         /* body bytes (decoded for chunked); UINT64_MAX for no bound */
} nx_http_response_limits_t;

/* Used when nx_http_response_parser_init gets NULL limits: 16 KiB head, 100 headers, 16 MiB
 * body. Event streams need their own limits with max_body = UINT64_MAX. */
extern const nx_http_response_limits_t nx_http_response_default_limits;

/* How the body of a final response is delimited (RFC 9112 §6.3). */
typedef enum {
    NX_HTTP_BODY_NONE = 0, /* 1xx, 204, 304, any response to HEAD, 101 (the rest is not HTTP) */
    NX_HTTP_BODY_LENGTH,   /* Content-Length */
    NX_HTTP_BODY_CHUNKED,  /* Transfer-Encoding: chunked */
    NX_HTTP_BODY_CLOSE,    /* neither: the body runs until the server closes the connection */
} nx_http_body_framing_t;

/* One response head. The scalar fields stay valid until the parser is initialised again; every
 * nx_str_t (and headers[]) points into the buffer of the call that reported the head and is
 * valid only until the caller drops those bytes or calls again: copy what must outlive that. */
typedef struct nx_http_response {
    uint16_t status;       /* 100..599 */
    uint8_t version_minor; /* HTTP/1.0 -> 0, HTTP/1.1 -> 1 */
    nx_http_body_framing_t framing;
    bool keep_alive;           /* the connection may carry another request after this response:
                                * 1.1 unless "Connection: close", 1.0 only with "keep-alive";
                                * never after a close-delimited body or a 101 */
    bool upgrade;              /* 101 Switching Protocols: bytes after the head are not HTTP */
    int64_t content_length;    /* the Content-Length value, -1 when absent; reported even when
                                * the status or a HEAD request means there is no body */
    nx_str_t reason;           /* reason phrase, possibly empty; clients should ignore it */
    nx_str_t content_type;     /* Content-Type value (first field); {NULL, 0} if absent */
    nx_str_t media_type;       /* content_type up to ';', trimmed ("text/event-stream") */
    nx_http_header_t *headers; /* points into the parser; values trimmed of OWS */
    uint32_t header_count;
    size_t head_len; /* bytes of the head, status line through blank line */
} nx_http_response_t;

/* What one nx_http_response_parse call reports. */
typedef enum {
    NX_HTTP_RESP_INFO = 1, /* a 1xx head other than 101 (100 Continue, 103 Early Hints):
                            * informational, skipped; the final response follows */
    NX_HTTP_RESP_HEAD,     /* the final head: ev.head is filled */
    NX_HTTP_RESP_DATA,     /* a piece of the body, decoded: ev.data */
    NX_HTTP_RESP_DONE,     /* the response is complete (after its last DATA, if any) */
} nx_http_resp_event_kind_t;

typedef struct nx_http_response_event {
    nx_http_resp_event_kind_t kind;
    const nx_http_response_t *head; /* INFO, HEAD and DONE (see nx_http_response_t) */
    nx_str_t data;                  /* DATA: bytes inside the caller's buffer, never empty */
} nx_http_response_event_t;

/* Why a response was refused: set in parser.error with a precise parser.error_message. */
typedef enum {
    NX_HTTP_RESP_OK = 0,
    NX_HTTP_RESP_ESTATUS_LINE,        /* malformed status line */
    NX_HTTP_RESP_EVERSION,            /* well-formed version other than HTTP/1.0 and 1.1 */
    NX_HTTP_RESP_ESTATUS,             /* status code outside 100..599 */
    NX_HTTP_RESP_EBARE_LF,            /* a head, chunk or trailer line ended in LF without CR */
    NX_HTTP_RESP_EOBS_FOLD,           /* a header line starting with whitespace (RFC 9112 §5.2) */
    NX_HTTP_RESP_EHEADER,             /* malformed header field line */
    NX_HTTP_RESP_EHEAD_TOO_LARGE,     /* head longer than max_header_bytes */
    NX_HTTP_RESP_ETOO_MANY_HEADERS,   /* more than max_headers fields */
    NX_HTTP_RESP_ECL_INVALID,         /* Content-Length not a decimal number, or overflowing */
    NX_HTTP_RESP_ECL_CONFLICT,        /* Content-Length fields with different values */
    NX_HTTP_RESP_ECL_AND_TE,          /* both Content-Length and Transfer-Encoding */
    NX_HTTP_RESP_ETE_UNSUPPORTED,     /* a Transfer-Encoding other than exactly one "chunked" */
    NX_HTTP_RESP_ETE_HTTP10,          /* Transfer-Encoding in an HTTP/1.0 response (§6.1) */
    NX_HTTP_RESP_ECHUNK_SIZE,         /* chunk-size line malformed */
    NX_HTTP_RESP_ECHUNK_OVERFLOW,     /* chunk size does not fit in 64 bits */
    NX_HTTP_RESP_ECHUNK_EXT,          /* control character in, or overlong, chunk extension */
    NX_HTTP_RESP_ECHUNK_CRLF,         /* chunk data not followed by CRLF */
    NX_HTTP_RESP_ETRAILER,            /* malformed trailer field line */
    NX_HTTP_RESP_ETRAILERS_TOO_LARGE, /* trailer section longer than max_header_bytes */
    NX_HTTP_RESP_EBODY_TOO_LARGE,     /* body longer than max_body */
    NX_HTTP_RESP_ENO_RESPONSE,        /* EOF before any byte of a response: on a reused
                                       * connection, the server had closed it while idle */
    NX_HTTP_RESP_ETRUNCATED,          /* EOF inside a head or a length- or chunk-framed body */
} nx_http_resp_error_t;

/* Parser state for one response; the client embeds it (_init per response, no _dispose). All
 * positions are offsets from the first unconsumed byte, so the buffer may move between calls. */
typedef struct nx_http_response_parser {
    const nx_http_response_limits_t *limits;
    uint32_t max_headers; /* limits->max_headers clamped to the cap */
    uint8_t state;        /* an nx__hresp_state (http_response.c) */
    uint8_t flags;        /* NX__HRESP_F_* (http_response.c): Connection tokens, CL seen */
    uint8_t te_count;     /* Transfer-Encoding fields seen */
    bool te_chunked;      /* every Transfer-Encoding field so far was exactly "chunked" */
    bool head_request;    /* the request was HEAD: the response has no body */
    uint32_t info_count;  /* 1xx heads skipped before this one */
    size_t pos;           /* next byte to examine */
    size_t line;          /* start of the current head or trailer line */
    size_t trailer_start; /* first byte of the trailer section */
    nx__http_span_t reason, content_type;
    uint32_t header_count;
    uint64_t left;    /* body bytes left (Content-Length), or the chunk size being read/left */
    uint64_t decoded; /* body bytes handed out so far */
    uint32_t chunk_digits;
    uint32_t ext_bytes; /* whitespace and extension bytes on this chunk-size line */
    nx_http_response_t resp;
    nx_http_resp_error_t error;
    const char *error_message; /* static string saying precisely what was wrong */
    nx__http_span_t hdr_off[NX_HTTP_MAX_HEADERS_CAP][2]; /* name, value */
    nx_http_header_t headers[NX_HTTP_MAX_HEADERS_CAP];
} nx_http_response_parser_t;

/** Prepares <p> for one response; <limits> is borrowed (NULL = defaults); <head_request> says
 *  the request was HEAD, so the response has no body whatever its headers say. */
void nx_http_response_parser_init(nx_http_response_parser_t *p,
                                  const nx_http_response_limits_t *limits, bool head_request);
/** Parses from <buf>[0..<len>), whose first byte is the first one not yet consumed; reports one
 *  event in <ev> and returns the bytes it consumed (>= 0; the caller drops them before the next
 *  call), NX_AGAIN when more input is needed (nothing consumed: keep every byte, append more and
 *  call again, buf may move), or NX_EPROTO with p->error and p->error_message set (sticky).
 *  Once DONE is reported, further calls report DONE again and consume nothing; bytes after the
 *  response are not part of it (a server that sends any unasked should not be reused). */
int nx_http_response_parse(nx_http_response_parser_t *p, const char *buf, size_t len,
                           nx_http_response_event_t *ev);
/** Tells <p> the connection reached EOF after every byte was fed; returns 0 with a DONE event in
 *  <ev> when that completes the response (a close-delimited body, or a response already
 *  complete), else NX_EPROTO with NX_HTTP_RESP_ENO_RESPONSE or NX_HTTP_RESP_ETRUNCATED. */
int nx_http_response_eof(nx_http_response_parser_t *p, nx_http_response_event_t *ev);
/** Case-insensitive lookup of header <name> in <r>; the first value, or {NULL, 0} if absent.
 *  Valid only while <r>'s strings are (see nx_http_response_t). */
nx_str_t nx_http_response_header(const nx_http_response_t *r, const char *name);
/** A static name for error <e> ("NX_HTTP_RESP_ECL_AND_TE" -> "Content-Length and
 *  Transfer-Encoding"), for logs; p->error_message says more. */
const char *nx_http_response_strerror(nx_http_resp_error_t e);

#endif
