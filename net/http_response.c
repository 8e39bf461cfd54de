/* The HTTP/1.1 response parser (see http_response.h): a byte-level state machine over offsets
 * into the caller's buffer. The head is scanned line by line as it arrives and reported once
 * complete; body bytes are handed out in place as they arrive, chunked framing stripped. */
#include "http_response.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "http_lex.h"
#include "nexus/errors.h"

const nx_http_response_limits_t nx_http_response_default_limits = {
    .max_header_bytes = 16384,
    .max_headers = 100,
    .max_body = 16u << 20,
};

/* One response's life: head lines, one body framing, then DONE. */
enum nx__hresp_state {
    NX_HR_STATUS_LINE, /* before the status line's LF */
    NX_HR_INFO,        /* a 1xx head was reported; the next call starts the next head */
    NX_HR_HEADERS,
    NX_HR_BODY_LENGTH,
    NX_HR_BODY_CLOSE,
    NX_HR_CHUNK_SIZE,
    NX_HR_CHUNK_WS, /* BWS after the size: only ';' may follow */
    NX_HR_CHUNK_EXT,
    NX_HR_CHUNK_SIZE_LF,
    NX_HR_CHUNK_DATA,
    NX_HR_CHUNK_DATA_CR,
    NX_HR_CHUNK_DATA_LF,
    NX_HR_TRAILERS,
    NX_HR_COMPLETE, /* the message is complete; DONE not yet reported */
    NX_HR_DONE,
    NX_HR_ERROR,
};

enum {
    NX__HRESP_F_CLOSE = 1 << 0,      /* Connection: close */
    NX__HRESP_F_KEEP_ALIVE = 1 << 1, /* Connection: keep-alive */
    NX__HRESP_F_CL = 1 << 2,         /* a Content-Length field is present */
};

static int fail(nx_http_response_parser_t *p, nx_http_resp_error_t e, const char *msg) {
    p->state = NX_HR_ERROR;
    p->error = e;
    p->error_message = msg;
    return NX_EPROTO;
}

static inline bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Forgets the head read so far, keeping limits, the HEAD flag and the 1xx count. */
static void reset_head(nx_http_response_parser_t *p) {
    const nx_http_response_limits_t *limits = p->limits;
    bool head_request = p->head_request;
    uint32_t info_count = p->info_count;
    /* the header arrays sit after the state and are rewritten before being read */
    memset(p, 0, offsetof(nx_http_response_parser_t, hdr_off));
    p->limits = limits;
    p->max_headers = limits->max_headers < NX_HTTP_MAX_HEADERS_CAP ? limits->max_headers
                                                                   : NX_HTTP_MAX_HEADERS_CAP;
    p->head_request = head_request;
    p->info_count = info_count;
    p->state = NX_HR_STATUS_LINE;
    p->resp.content_length = -1;
}

void nx_http_response_parser_init(nx_http_response_parser_t *p,
                                  const nx_http_response_limits_t *limits, bool head_request) {
    p->limits = limits != NULL ? limits : &nx_http_response_default_limits;
    p->head_request = head_request;
    p->info_count = 0;
    reset_head(p);
}

/* Checks the status line s[0..n), CRLF excluded, whose first five bytes are "HTTP/". The SP
 * before an empty reason phrase is optional, as many servers leave it out. */
static int parse_status_line(nx_http_response_parser_t *p, const char *s, size_t n, size_t line) {
    if (n < 8 || !is_digit(s[5]) || s[6] != '.' || !is_digit(s[7]))
        return fail(p, NX_HTTP_RESP_ESTATUS_LINE, "malformed HTTP version in the status line");
    if (n > 8 && s[8] != ' ')
        return fail(p, NX_HTTP_RESP_ESTATUS_LINE, "malformed HTTP version in the status line");
    if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
        return fail(p, NX_HTTP_RESP_EVERSION, "unsupported HTTP version (only 1.0 and 1.1 are)");
    if (n < 12 || !is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) ||
        (n > 12 && s[12] != ' '))
        return fail(p, NX_HTTP_RESP_ESTATUS_LINE, "status code is not three digits");
    int status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (status < 100 || status > 599)
        return fail(p, NX_HTTP_RESP_ESTATUS, "status code outside 100-599");
    for (size_t i = 13; i < n; i++)
        if (!(nx_http_cls[(unsigned char)s[i]] & NX_HTTP_C_VALUE))
            return fail(p, NX_HTTP_RESP_ESTATUS_LINE, "control character in the reason phrase");
    p->resp.version_minor = (uint8_t)(s[7] - '0');
    p->resp.status = (uint16_t)status;
    p->reason = n > 13 ? nx_http_span(line + 13, n - 13) : nx_http_span(line + n, 0);
    return 0;
}

/* Checks one field line (header or trailer) s[0..n), CRLF excluded. Returns NX_HTTP_RESP_OK
 * with the name length and the value bounds, or the error with *why set. */
static nx_http_resp_error_t check_field_line(const char *s, size_t n, bool first, size_t *name_len,
                                             size_t *vs, size_t *ve, const char **why) {
    if (nx_http_is_ows(s[0])) {
        *why = first ? "whitespace before the first header field"
                     : "obsolete line folding (line starts with whitespace)";
        return NX_HTTP_RESP_EOBS_FOLD;
    }
    *why = nx_http_field_line(s, n, name_len, vs, ve);
    return *why != NULL ? NX_HTTP_RESP_EHEADER : NX_HTTP_RESP_OK;
}

static void scan_connection(nx_http_response_parser_t *p, const char *v, size_t n) {
    size_t k = 0;
    nx_str_t tok;
    while (nx_http_next_token(v, n, &k, &tok)) {
        if (nx_http_eq_lower(tok, "close"))
            p->flags |= NX__HRESP_F_CLOSE;
        else if (nx_http_eq_lower(tok, "keep-alive"))
            p->flags |= NX__HRESP_F_KEEP_ALIVE;
    }
}

/* One decimal number; a list ("5, 5") is refused like any other non-digit. */
static int parse_content_length(nx_http_response_parser_t *p, nx_str_t v) {
    int64_t cl = 0;
    switch (nx_http_parse_decimal(v, &cl)) {
    case NX_HTTP_DECIMAL_EMPTY:
        return fail(p, NX_HTTP_RESP_ECL_INVALID, "empty Content-Length");
    case NX_HTTP_DECIMAL_NOT_DIGITS:
        return fail(p, NX_HTTP_RESP_ECL_INVALID, "Content-Length is not a number");
    case NX_HTTP_DECIMAL_OVERFLOW:
        return fail(p, NX_HTTP_RESP_ECL_INVALID, "Content-Length overflows");
    case NX_HTTP_DECIMAL_OK:
        break;
    }
    if ((p->flags & NX__HRESP_F_CL) && cl != p->resp.content_length)
        return fail(p, NX_HTTP_RESP_ECL_CONFLICT, "Content-Length fields with different values");
    p->flags |= NX__HRESP_F_CL;
    p->resp.content_length = cl;
    return 0;
}

/* Records the header line buf[ls..le) (le at its CR) and notes the fields that frame the
 * response or steer the connection. */
static int parse_header(nx_http_response_parser_t *p, const char *buf, size_t ls, size_t le,
                        bool first) {
    const char *s = buf + ls, *why = NULL;
    size_t name_len = 0, vs = 0, ve = 0;
    nx_http_resp_error_t e = check_field_line(s, le - ls, first, &name_len, &vs, &ve, &why);
    if (e != NX_HTTP_RESP_OK) return fail(p, e, why);
    if (p->header_count >= p->max_headers)
        return fail(p, NX_HTTP_RESP_ETOO_MANY_HEADERS, "too many header fields");
    nx__http_span_t *h = p->hdr_off[p->header_count++];
    h[0] = nx_http_span(ls, name_len);
    h[1] = nx_http_span(ls + vs, ve - vs);
    nx_str_t name = {s, name_len}, value = {s + vs, ve - vs};
    switch (name_len) {
    case 10:
        if (nx_http_eq_lower(name, "connection")) scan_connection(p, value.p, value.n);
        break;
    case 12:
        if (nx_http_eq_lower(name, "content-type") && p->content_type.off == 0)
            p->content_type = h[1];
        break;
    case 14:
        if (nx_http_eq_lower(name, "content-length")) return parse_content_length(p, value);
        break;
    case 17:
        if (!nx_http_eq_lower(name, "transfer-encoding")) break;
        if (p->te_count < UINT8_MAX) p->te_count++;
        if (p->te_count == 1) p->te_chunked = true;
        if (!nx_http_eq_lower(value, "chunked")) p->te_chunked = false;
        break;
    }
    return 0;
}

/* Runs the head states over buf[0..len); 0 once the blank line is in. Bytes past
 * max_header_bytes are never looked at, so the verdict is the same however input is split. */
static int parse_head(nx_http_response_parser_t *p, const char *buf, size_t len) {
    const uint32_t max_hb = p->limits->max_header_bytes;
    size_t hlen = len < max_hb ? len : max_hb, i = p->pos;
    const char *lf;
    if (i >= hlen) goto again; /* nothing new to look at */
    if (p->state == NX_HR_STATUS_LINE) {
        /* anything but "HTTP/" is refused at once: no waiting for a line end that may not come */
        if (memcmp(buf, "HTTP/", hlen < 5 ? hlen : 5) != 0)
            return fail(p, NX_HTTP_RESP_ESTATUS_LINE, "response does not start with \"HTTP/\"");
        lf = memchr(buf + i, '\n', hlen - i);
        if (lf == NULL) {
            i = hlen;
            goto again;
        }
        size_t le = (size_t)(lf - buf);
        if (le < 5 || buf[le - 1] != '\r')
            return fail(p, NX_HTTP_RESP_EBARE_LF, "status line ends in a bare LF");
        if (parse_status_line(p, buf, le - 1, 0) < 0) return NX_EPROTO;
        i = p->line = le + 1;
        p->state = NX_HR_HEADERS;
    }
    while ((lf = memchr(buf + i, '\n', hlen - i)) != NULL) {
        size_t le = (size_t)(lf - buf);
        i = le + 1;
        if (le == p->line || buf[le - 1] != '\r')
            return fail(p, NX_HTTP_RESP_EBARE_LF, "header line ends in a bare LF");
        if (le - 1 == p->line) {
            p->pos = p->resp.head_len = i;
            return 0;
        }
        if (parse_header(p, buf, p->line, le - 1, p->header_count == 0) < 0) return NX_EPROTO;
        p->line = i;
    }
    i = hlen;
again:
    p->pos = i;
    if (len >= max_hb) return fail(p, NX_HTTP_RESP_EHEAD_TOO_LARGE, "response head too large");
    return NX_AGAIN;
}

/* Decides the body framing once the blank line is in (RFC 9112 §6.3, minus the leniency). */
static int finish_head(nx_http_response_parser_t *p) {
    nx_http_response_t *r = &p->resp;
    if (p->te_count > 0) {
        if (p->flags & NX__HRESP_F_CL)
            return fail(p, NX_HTTP_RESP_ECL_AND_TE, "both Content-Length and Transfer-Encoding");
        if (r->version_minor == 0)
            return fail(p, NX_HTTP_RESP_ETE_HTTP10, "Transfer-Encoding in an HTTP/1.0 response");
        if (p->te_count > 1 || !p->te_chunked)
            return fail(p, NX_HTTP_RESP_ETE_UNSUPPORTED,
                        "unsupported Transfer-Encoding (only \"chunked\" is)");
    }
    uint16_t st = r->status;
    if (st < 200 || st == 204 || st == 304 || p->head_request) {
        r->framing = NX_HTTP_BODY_NONE;
        p->state = NX_HR_COMPLETE;
    } else if (p->te_count > 0) {
        r->framing = NX_HTTP_BODY_CHUNKED;
        p->state = NX_HR_CHUNK_SIZE;
    } else if (p->flags & NX__HRESP_F_CL) {
        if ((uint64_t)r->content_length > p->limits->max_body)
            return fail(p, NX_HTTP_RESP_EBODY_TOO_LARGE, "Content-Length exceeds the body limit");
        r->framing = NX_HTTP_BODY_LENGTH;
        p->left = (uint64_t)r->content_length;
        p->state = p->left > 0 ? NX_HR_BODY_LENGTH : NX_HR_COMPLETE;
    } else {
        r->framing = NX_HTTP_BODY_CLOSE;
        p->state = NX_HR_BODY_CLOSE;
    }
    r->upgrade = st == 101;
    r->keep_alive = r->version_minor == 1
                        ? !(p->flags & NX__HRESP_F_CLOSE)
                        : (p->flags & NX__HRESP_F_KEEP_ALIVE) && !(p->flags & NX__HRESP_F_CLOSE);
    if (r->framing == NX_HTTP_BODY_CLOSE || r->upgrade) r->keep_alive = false;
    return 0;
}

/* Points the head's strings at buf, where the complete head now is. */
static void fill_head(nx_http_response_parser_t *p, const char *buf) {
    nx_http_response_t *r = &p->resp;
    for (uint32_t i = 0; i < p->header_count; i++) {
        p->headers[i].name = nx_http_at(buf, p->hdr_off[i][0]);
        p->headers[i].value = nx_http_at(buf, p->hdr_off[i][1]);
    }
    r->headers = p->headers;
    r->header_count = p->header_count;
    r->reason = nx_http_at(buf, p->reason);
    if (p->content_type.off != 0) {
        nx_str_t ct = nx_http_at(buf, p->content_type), mt = ct;
        const char *semi = memchr(ct.p, ';', ct.n);
        if (semi != NULL) mt.n = (size_t)(semi - ct.p);
        while (mt.n > 0 && nx_http_is_ows(mt.p[mt.n - 1]))
            mt.n--;
        r->content_type = ct;
        r->media_type = mt;
    } else {
        r->content_type = r->media_type = (nx_str_t){NULL, 0};
    }
}

/* Trailer lines after the last chunk: checked like headers, bounded by max_header_bytes, and
 * dropped. 0 once the blank line is in, with p->pos just past it. */
static int parse_trailers(nx_http_response_parser_t *p, const char *buf, size_t len) {
    const uint32_t max_hb = p->limits->max_header_bytes;
    size_t tlen = len - p->trailer_start > max_hb ? p->trailer_start + max_hb : len;
    size_t i = p->pos;
    const char *lf;
    while (i < tlen && (lf = memchr(buf + i, '\n', tlen - i)) != NULL) {
        size_t le = (size_t)(lf - buf), name_len, vs, ve;
        const char *why = NULL;
        i = le + 1;
        if (le == p->line || buf[le - 1] != '\r')
            return fail(p, NX_HTTP_RESP_EBARE_LF, "trailer line ends in a bare LF");
        if (le - 1 == p->line) {
            p->pos = i;
            return 0;
        }
        if (check_field_line(buf + p->line, le - 1 - p->line, false, &name_len, &vs, &ve, &why) !=
            NX_HTTP_RESP_OK)
            return fail(p, NX_HTTP_RESP_ETRAILER, why);
        p->line = i;
    }
    p->pos = tlen;
    if (len - p->trailer_start >= max_hb)
        return fail(p, NX_HTTP_RESP_ETRAILERS_TOO_LARGE, "trailer section too large");
    return NX_AGAIN;
}

/* Runs the chunked states from p->pos; returns the bytes consumed with a DATA or DONE event,
 * NX_AGAIN (nothing consumed, p->pos remembers how far it looked) or NX_EPROTO. */
static int parse_chunked(nx_http_response_parser_t *p, const char *buf, size_t len,
                         nx_http_response_event_t *ev) {
    const uint64_t max_body = p->limits->max_body;
    size_t i = p->pos;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        switch (p->state) {
        case NX_HR_CHUNK_SIZE: {
            int d = nx_http_hex_value(c);
            if (d >= 0) {
                if (p->left >> 60 != 0)
                    return fail(p, NX_HTTP_RESP_ECHUNK_OVERFLOW, "chunk size overflows 64 bits");
                if (++p->chunk_digits > 16)
                    return fail(p, NX_HTTP_RESP_ECHUNK_SIZE,
                                "chunk size has more than 16 hex digits");
                p->left = p->left << 4 | (uint64_t)d;
                if (p->left > max_body - p->decoded)
                    return fail(p, NX_HTTP_RESP_EBODY_TOO_LARGE,
                                "chunked body exceeds the body limit");
                i++;
                break;
            }
            if (p->chunk_digits == 0)
                return fail(p, NX_HTTP_RESP_ECHUNK_SIZE, "chunk size missing or not hex");
            if (c == '\r')
                p->state = NX_HR_CHUNK_SIZE_LF;
            else if (c == ';' || nx_http_is_ows((char)c)) {
                /* everything between the size and the CR counts towards the line's bound */
                if (++p->ext_bytes > p->limits->max_header_bytes)
                    return fail(p, NX_HTTP_RESP_ECHUNK_EXT, "chunk extension too long");
                p->state = c == ';' ? NX_HR_CHUNK_EXT : NX_HR_CHUNK_WS;
            } else if (c == '\n')
                return fail(p, NX_HTTP_RESP_EBARE_LF, "chunk-size line ends in a bare LF");
            else
                return fail(p, NX_HTTP_RESP_ECHUNK_SIZE, "invalid character after chunk size");
            i++;
            break;
        }
        case NX_HR_CHUNK_WS:
            if (c != ';' && !nx_http_is_ows((char)c))
                return fail(p, NX_HTTP_RESP_ECHUNK_SIZE,
                            "whitespace after chunk size without an extension");
            if (++p->ext_bytes > p->limits->max_header_bytes)
                return fail(p, NX_HTTP_RESP_ECHUNK_EXT, "chunk extension too long");
            if (c == ';') p->state = NX_HR_CHUNK_EXT;
            i++;
            break;
        case NX_HR_CHUNK_EXT:
            if (c == '\r')
                p->state = NX_HR_CHUNK_SIZE_LF;
            else if (c == '\n')
                return fail(p, NX_HTTP_RESP_EBARE_LF, "chunk-size line ends in a bare LF");
            else if (!(nx_http_cls[c] & NX_HTTP_C_VALUE))
                return fail(p, NX_HTTP_RESP_ECHUNK_EXT, "control character in chunk extension");
            else if (++p->ext_bytes > p->limits->max_header_bytes)
                return fail(p, NX_HTTP_RESP_ECHUNK_EXT, "chunk extension too long");
            i++;
            break;
        case NX_HR_CHUNK_SIZE_LF:
            if (c != '\n')
                return fail(p, NX_HTTP_RESP_ECHUNK_SIZE, "CR not followed by LF after chunk size");
            i++;
            p->chunk_digits = p->ext_bytes = 0;
            if (p->left == 0) {
                p->state = NX_HR_TRAILERS;
                p->pos = p->line = p->trailer_start = i;
                goto trailers;
            }
            p->state = NX_HR_CHUNK_DATA;
            break;
        case NX_HR_CHUNK_DATA: {
            size_t n = len - i;
            if (n > p->left) n = (size_t)p->left;
            p->left -= n;
            p->decoded += n;
            if (p->left == 0) p->state = NX_HR_CHUNK_DATA_CR;
            ev->kind = NX_HTTP_RESP_DATA;
            ev->data = (nx_str_t){buf + i, n};
            p->pos = 0;
            return (int)(i + n);
        }
        case NX_HR_CHUNK_DATA_CR:
            if (c == '\n')
                return fail(p, NX_HTTP_RESP_EBARE_LF, "chunk data followed by a bare LF");
            if (c != '\r')
                return fail(p, NX_HTTP_RESP_ECHUNK_CRLF, "chunk data not followed by CRLF");
            p->state = NX_HR_CHUNK_DATA_LF;
            i++;
            break;
        case NX_HR_CHUNK_DATA_LF:
            if (c != '\n')
                return fail(p, NX_HTTP_RESP_ECHUNK_CRLF, "chunk data not followed by CRLF");
            p->state = NX_HR_CHUNK_SIZE;
            i++;
            break;
        case NX_HR_TRAILERS:
            p->pos = i;
            goto trailers;
        }
    }
    p->pos = i;
    return NX_AGAIN;
trailers : {
    int rc = parse_trailers(p, buf, len);
    if (rc < 0) return rc;
    p->state = NX_HR_DONE;
    ev->kind = NX_HTTP_RESP_DONE;
    size_t used = p->pos;
    p->pos = 0;
    return (int)used;
}
}

int nx_http_response_parse(nx_http_response_parser_t *p, const char *buf, size_t len,
                           nx_http_response_event_t *ev) {
    /* the result is an int: look at no more than INT_MAX bytes per call */
    size_t n = len < INT_MAX ? len : INT_MAX;
    ev->kind = 0;
    ev->head = &p->resp;
    ev->data = (nx_str_t){NULL, 0};
    if (p->state == NX_HR_ERROR) return NX_EPROTO;
    if (n < p->pos) return NX_AGAIN; /* the caller dropped bytes it was told to keep */
    if (p->state == NX_HR_INFO) reset_head(p);
    switch (p->state) {
    case NX_HR_STATUS_LINE:
    case NX_HR_HEADERS: {
        int rc = parse_head(p, buf, n);
        if (rc == 0) rc = finish_head(p);
        if (rc < 0) return rc;
        fill_head(p, buf);
        if (p->resp.status < 200 && p->resp.status != 101) {
            /* the 1xx head stays readable through ev until the next call starts the next one */
            ev->kind = NX_HTTP_RESP_INFO;
            p->info_count++;
            p->state = NX_HR_INFO;
        } else {
            ev->kind = NX_HTTP_RESP_HEAD;
        }
        p->pos = 0;
        return (int)p->resp.head_len;
    }
    case NX_HR_BODY_LENGTH: {
        if (n == 0) return NX_AGAIN;
        size_t take = n < p->left ? n : (size_t)p->left;
        p->left -= take;
        p->decoded += take;
        if (p->left == 0) p->state = NX_HR_COMPLETE;
        ev->kind = NX_HTTP_RESP_DATA;
        ev->data = (nx_str_t){buf, take};
        return (int)take;
    }
    case NX_HR_BODY_CLOSE: {
        if (n == 0) return NX_AGAIN;
        /* hand out what fits, then refuse: the same bytes are delivered however input is split */
        uint64_t room = p->limits->max_body - p->decoded;
        if (room == 0)
            return fail(p, NX_HTTP_RESP_EBODY_TOO_LARGE, "response body exceeds the body limit");
        size_t take = n < room ? n : (size_t)room;
        p->decoded += take;
        ev->kind = NX_HTTP_RESP_DATA;
        ev->data = (nx_str_t){buf, take};
        return (int)take;
    }
    case NX_HR_COMPLETE:
        p->state = NX_HR_DONE;
        /* fallthrough */
    case NX_HR_DONE:
        ev->kind = NX_HTTP_RESP_DONE;
        return 0;
    default:
        return parse_chunked(p, buf, n, ev);
    }
}

int nx_http_response_eof(nx_http_response_parser_t *p, nx_http_response_event_t *ev) {
    ev->kind = 0;
    ev->head = &p->resp;
    ev->data = (nx_str_t){NULL, 0};
    switch (p->state) {
    case NX_HR_ERROR:
        return NX_EPROTO;
    case NX_HR_INFO:
        return fail(p, NX_HTTP_RESP_ETRUNCATED, "connection closed after a 1xx response");
    case NX_HR_STATUS_LINE:
        if (p->pos == 0)
            return p->info_count == 0
                       ? fail(p, NX_HTTP_RESP_ENO_RESPONSE, "connection closed before any response")
                       : fail(p, NX_HTTP_RESP_ETRUNCATED, "connection closed after a 1xx response");
        /* fallthrough */
    case NX_HR_HEADERS:
        return fail(p, NX_HTTP_RESP_ETRUNCATED, "connection closed inside the response head");
    case NX_HR_BODY_CLOSE:
    case NX_HR_COMPLETE:
    case NX_HR_DONE:
        p->state = NX_HR_DONE;
        ev->kind = NX_HTTP_RESP_DONE;
        return 0;
    case NX_HR_BODY_LENGTH:
        return fail(p, NX_HTTP_RESP_ETRUNCATED, "connection closed before Content-Length bytes");
    default:
        return fail(p, NX_HTTP_RESP_ETRUNCATED, "connection closed inside a chunked body");
    }
}

nx_str_t nx_http_response_header(const nx_http_response_t *r, const char *name) {
    size_t n = strlen(name);
    for (uint32_t i = 0; i < r->header_count; i++) {
        const nx_http_header_t *h = &r->headers[i];
        if (h->name.n == n && strncasecmp(h->name.p, name, n) == 0) return h->value;
    }
    return (nx_str_t){NULL, 0};
}

const char *nx_http_response_strerror(nx_http_resp_error_t e) {
    /* clang-format off */
    switch (e) {
    case NX_HTTP_RESP_OK: return "no error";
    case NX_HTTP_RESP_ESTATUS_LINE: return "malformed status line";
    case NX_HTTP_RESP_EVERSION: return "unsupported HTTP version";
    case NX_HTTP_RESP_ESTATUS: return "invalid status code";
    case NX_HTTP_RESP_EBARE_LF: return "bare LF line ending";
    case NX_HTTP_RESP_EOBS_FOLD: return "obsolete line folding";
    case NX_HTTP_RESP_EHEADER: return "malformed header field";
    case NX_HTTP_RESP_EHEAD_TOO_LARGE: return "response head too large";
    case NX_HTTP_RESP_ETOO_MANY_HEADERS: return "too many header fields";
    case NX_HTTP_RESP_ECL_INVALID: return "invalid Content-Length";
    case NX_HTTP_RESP_ECL_CONFLICT: return "conflicting Content-Length";
    case NX_HTTP_RESP_ECL_AND_TE: return "Content-Length and Transfer-Encoding";
    case NX_HTTP_RESP_ETE_UNSUPPORTED: return "unsupported Transfer-Encoding";
    case NX_HTTP_RESP_ETE_HTTP10: return "Transfer-Encoding in HTTP/1.0";
    case NX_HTTP_RESP_ECHUNK_SIZE: return "malformed chunk size";
    case NX_HTTP_RESP_ECHUNK_OVERFLOW: return "chunk size overflow";
    case NX_HTTP_RESP_ECHUNK_EXT: return "malformed chunk extension";
    case NX_HTTP_RESP_ECHUNK_CRLF: return "chunk data not followed by CRLF";
    case NX_HTTP_RESP_ETRAILER: return "malformed trailer field";
    case NX_HTTP_RESP_ETRAILERS_TOO_LARGE: return "trailer section too large";
    case NX_HTTP_RESP_EBODY_TOO_LARGE: return "response body too large";
    case NX_HTTP_RESP_ENO_RESPONSE: return "connection closed before a response";
    case NX_HTTP_RESP_ETRUNCATED: return "response truncated";
    }
    /* clang-format on */
    return "unknown error";
}
