/* The HTTP/1.1 request codec: an incremental, allocation-free parser that turns bytes from a
 * connection into an nx_http_request_t (head, then body, chunked bodies decoded in place), and
 * the table of status reason phrases. It does no I/O; the connection owns buffer and parser. */
#ifndef NX_NET_HTTP1_H
#define NX_NET_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nexus/str.h"

typedef enum {
    NX_HTTP_OTHER = 0,
    NX_HTTP_GET,
    NX_HTTP_HEAD,
    NX_HTTP_POST,
    NX_HTTP_PUT,
    NX_HTTP_DELETE,
    NX_HTTP_PATCH,
    NX_HTTP_OPTIONS,
    NX_HTTP_CONNECT,
    NX_HTTP_TRACE
} nx_http_method_t;

#define NX_HTTP_MAX_HEADERS_CAP 128 /* hard cap on the header array */

/* Bounds on one request; owned by the configuration, borrowed by every parser using them. */
typedef struct nx_http_limits {
    uint32_t max_header_bytes; /* request line + headers + blank line incl. CRLFs; over -> 431 */
    uint32_t max_headers;      /* header count (clamped to NX_HTTP_MAX_HEADERS_CAP); over -> 431 */
    uint32_t max_uri;          /* request-target length; over -> 414, even before the line ends */
    uint64_t max_body;         /* body bytes (decoded for chunked); over -> 413 */
} nx_http_limits_t;

/* Used when nx_http_parser_init gets NULL limits: 8 KiB head, 100 headers, 4 KiB target,
 * 1 MiB body. */
extern const nx_http_limits_t nx_http_default_limits;

typedef struct nx_http_header {
    nx_str_t name, value; /* value trimmed of OWS */
} nx_http_header_t;

/* One parsed request, filled by nx_http_parse_request. Every nx_str_t points into the caller's
 * buffer (or at a static string) and is valid until that buffer is moved or consumed. */
typedef struct nx_http_request {
    nx_http_method_t method;
    nx_str_t method_name;
    nx_str_t target;        /* request-target as sent */
    nx_str_t path;          /* target up to '?'; for absolute-form, the path part ("/" if none) */
    nx_str_t query;         /* after '?'; {NULL, 0} when the target has no '?' */
    uint8_t version_minor;  /* HTTP/1.0 -> 0, HTTP/1.1 -> 1 */
    bool keep_alive;        /* 1.1: on unless "close"; 1.0: off unless "keep-alive" */
    bool expect_continue;   /* "Expect: 100-continue" on an HTTP/1.1 request */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool upgrade;           /* Connection contains "upgrade" and an Upgrade header is present */
    int64_t content_length; /* -1 when absent (always -1 for chunked requests) */
    nx_str_t host; /* Host header value (authority for absolute-form); {NULL, 0} if absent */
    nx_http_header_t *headers; /* points into the parser's array */
    uint32_t header_count;
    nx_str_t body;   /* the complete body; chunked bodies are decoded in place, contiguous */
    size_t head_len; /* bytes from buf[0] through the blank line (incl. skipped leading CRLFs),
                      * so the body starts at buf + head_len */
} nx_http_request_t;

/* Private span of the head, kept as offsets because the caller may move the buffer. */
typedef struct nx__http_span {
    uint32_t off, len;
} nx__http_span_t;

/* Parser state for one connection; the connection embeds it (_init, no _dispose needed). All
 * positions are offsets from buf[0] so that buf may be reallocated between calls. */
typedef struct nx_http_parser {
    const nx_http_limits_t *limits;
    uint32_t max_headers; /* limits->max_headers clamped to the cap */
    uint8_t state;        /* an nx__http_state (http1.c) */
    uint8_t version_minor;
    uint8_t method_id;  /* nx_http_method_t */
    uint16_t flags;     /* NX__HTTP_F_* (http1.c): Connection tokens, Upgrade, Expect, ... */
    uint8_t host_count; /* Host header fields seen */
    uint8_t te_count;   /* Transfer-Encoding header fields seen */
    bool te_chunked;    /* every Transfer-Encoding field so far was exactly "chunked" */
    size_t pos;         /* next byte to examine */
    size_t line;        /* start of the current head or trailer line */
    nx__http_span_t method, target, path, query, host;
    uint32_t header_count;
    int64_t content_length;
    size_t head_len;
    /* chunked decoding */
    size_t wpos;         /* end of the decoded body so far */
    uint64_t chunk_left; /* data bytes left in the current chunk, or the size being read */
    uint64_t decoded;    /* body bytes decoded so far */
    uint32_t chunk_digits;
    uint32_t ext_bytes;    /* chunk-extension bytes in this body */
    size_t trailer_start;  /* first byte of the trailer section */
    uintptr_t filled_base; /* buf address the headers[] pointers were computed for */
    nx__http_span_t hdr_off[NX_HTTP_MAX_HEADERS_CAP][2]; /* name, value */
    nx_http_header_t headers[NX_HTTP_MAX_HEADERS_CAP];
    uint16_t error_status;     /* set on NX_EPROTO: 400, 413, 414, 431, 501 or 505 */
    const char *error_message; /* static string saying precisely what was wrong */
} nx_http_parser_t;

/** Prepares <p> for the first request on a connection; <limits> is borrowed (NULL = defaults). */
void nx_http_parser_init(nx_http_parser_t *p, const nx_http_limits_t *limits);
/** Makes <p> ready for the next request on the same connection, keeping its limits. */
void nx_http_parser_reset(nx_http_parser_t *p);
/** Parses one request from <buf>[0..<len>), which starts at the request's first byte and may be
 *  moved or grown between calls; returns the bytes the complete request occupies (> 0) with
 *  <req> filled, NX_AGAIN for more input, or NX_EPROTO with p->error_status/error_message set.
 *  Chunked bodies are decoded in place, so <buf> must be writable and kept as left. Since the
 *  result is an int, a request spanning more than INT_MAX bytes is refused with 413. */
int nx_http_parse_request(nx_http_parser_t *p, char *buf, size_t len, nx_http_request_t *req);
/** True once the head of the current request is parsed: <req>'s head fields are then valid even
 *  while the body is pending (for "100 Continue" and the switch to the body timeout). */
bool nx_http_parser_head_done(const nx_http_parser_t *p);
/** Case-insensitive lookup of header <name> in <req>; the first value, or {NULL, 0} if absent. */
nx_str_t nx_http_request_header(const nx_http_request_t *req, const char *name);
/** The reason phrase of <status> ("OK", "Not Found", ...), "Unknown" for unknown codes. */
const char *nx_http_status_reason(int status);
/** The method enum for token <name> (case-sensitive); NX_HTTP_OTHER for unknown tokens. */
nx_http_method_t nx_http_method_from(nx_str_t name);

#endif
