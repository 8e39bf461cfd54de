/* The HTTP/1.1 request parser (see http1.h): a byte-level state machine that keeps offsets into
 * the caller's buffer, scans each head byte once (memchr for line ends, a class table for
 * tokens) and compacts chunked bodies in place. Framing rules are strict to defeat smuggling. */
#include "http1.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "http_lex.h"
#include "nexus/errors.h"

const nx_http_limits_t nx_http_default_limits = {
    .max_header_bytes = 8192,
    .max_headers = 100,
    .max_uri = 4096,
    .max_body = 1u << 20,
};

/* One request's life: the request line byte by byte, header lines, then one body framing. */
enum nx__http_state {
    NX_H1_RL_METHOD, /* method token; empty lines before it are skipped here */
    NX_H1_RL_TARGET,
    NX_H1_RL_VERSION, /* the rest of the request line, handled once its LF is in */
    NX_H1_HEADERS,
    NX_H1_BODY, /* Content-Length body */
    NX_H1_CHUNK_SIZE,
    NX_H1_CHUNK_WS, /* BWS after the size: only ';' may follow */
    NX_H1_CHUNK_EXT,
    NX_H1_CHUNK_SIZE_LF,
    NX_H1_CHUNK_DATA,
    NX_H1_CHUNK_DATA_CR,
    NX_H1_CHUNK_DATA_LF,
    NX_H1_TRAILERS,
    NX_H1_DONE,
    NX_H1_ERROR,
};

enum {
    NX__HTTP_F_CLOSE = 1 << 0,        /* Connection: close */
    NX__HTTP_F_KEEP_ALIVE = 1 << 1,   /* Connection: keep-alive */
    NX__HTTP_F_CONN_UPGRADE = 1 << 2, /* Connection: upgrade */
    NX__HTTP_F_UPGRADE_HDR = 1 << 3,  /* an Upgrade header is present */
    NX__HTTP_F_EXPECT = 1 << 4,       /* Expect: 100-continue */
    NX__HTTP_F_CL = 1 << 5,           /* a Content-Length header is present */
    NX__HTTP_F_ABS_HOST = 1 << 6,     /* absolute-form target: host comes from it */
    NX__HTTP_F_ABS_NO_PATH = 1 << 7,  /* absolute-form target without a path: path is "/" */
    NX__HTTP_F_HEAD_DONE = 1 << 8,
};

/* Byte classes (RFC 9110 §5.6.2 tchar, request-target bytes, field-value bytes). */

static int fail(nx_http_parser_t *p, uint16_t status, const char *msg) {
    p->state = NX_H1_ERROR;
    p->error_status = status;
    p->error_message = msg;
    return NX_EPROTO;
}

void nx_http_parser_init(nx_http_parser_t *p, const nx_http_limits_t *limits) {
    p->limits = limits != NULL ? limits : &nx_http_default_limits;
    nx_http_parser_reset(p);
}

void nx_http_parser_reset(nx_http_parser_t *p) {
    const nx_http_limits_t *limits = p->limits;
    /* the header arrays sit after the state and are rewritten before being read */
    memset(p, 0, offsetof(nx_http_parser_t, hdr_off));
    p->limits = limits;
    p->max_headers = limits->max_headers < NX_HTTP_MAX_HEADERS_CAP ? limits->max_headers
                                                                   : NX_HTTP_MAX_HEADERS_CAP;
    p->content_length = -1;
    p->error_status = 0;
    p->error_message = NULL;
}

bool nx_http_parser_head_done(const nx_http_parser_t *p) {
    return (p->flags & NX__HTTP_F_HEAD_DONE) != 0;
}

nx_http_method_t nx_http_method_from(nx_str_t m) {
#define IS(lit) (m.n == sizeof(lit) - 1 && memcmp(m.p, lit, sizeof(lit) - 1) == 0)
    switch (m.n) {
    case 3:
        if (IS("GET")) return NX_HTTP_GET;
        if (IS("PUT")) return NX_HTTP_PUT;
        break;
    case 4:
        if (IS("POST")) return NX_HTTP_POST;
        if (IS("HEAD")) return NX_HTTP_HEAD;
        break;
    case 5:
        if (IS("PATCH")) return NX_HTTP_PATCH;
        if (IS("TRACE")) return NX_HTTP_TRACE;
        break;
    case 6:
        if (IS("DELETE")) return NX_HTTP_DELETE;
        break;
    case 7:
        if (IS("OPTIONS")) return NX_HTTP_OPTIONS;
        if (IS("CONNECT")) return NX_HTTP_CONNECT;
        break;
    }
    return NX_HTTP_OTHER;
#undef IS
}

/* "HTTP/1.0" and "HTTP/1.1" are served; any other well-formed version gets 505. */
static int parse_version(nx_http_parser_t *p, const char *v, size_t n) {
    if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
        p->version_minor = (uint8_t)(v[7] - '0');
        return 0;
    }
    if (n > 5 && memcmp(v, "HTTP/", 5) == 0) {
        size_t k = 5;
        while (k < n && k < 8 && v[k] >= '0' && v[k] <= '9')
            k++;
        if (k > 5 && k < n && v[k] == '.') {
            size_t d = ++k;
            while (k < n && k < d + 3 && v[k] >= '0' && v[k] <= '9')
                k++;
            if (k == d) k = 0;
        }
        if (k == n) return fail(p, 505, "unsupported HTTP version");
    }
    return fail(p, 400, "malformed HTTP version");
}

/* Splits the target into path and query after checking its form (RFC 9112 §3.2). */
static int parse_target(nx_http_parser_t *p, const char *buf) {
    const char *t = buf + p->target.off;
    size_t n = p->target.len, path = 0;
    if (t[0] == '/') {
        path = 0;
    } else if (n == 1 && t[0] == '*') {
        if (p->method_id != NX_HTTP_OPTIONS)
            return fail(p, 400, "asterisk-form target on a method other than OPTIONS");
        p->path = p->target;
        return 0;
    } else {
        size_t a;
        if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
            a = 7;
        else if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
            a = 8;
        else
            return fail(p, 400, "request target is not origin-, absolute- or asterisk-form");
        size_t e = a;
        while (e < n && t[e] != '/' && t[e] != '?')
            e++;
        if (e == a) return fail(p, 400, "absolute-form target without a host");
        if (memchr(t + a, '@', e - a) != NULL)
            return fail(p, 400, "absolute-form target with userinfo");
        p->host = nx_http_span(p->target.off + a, e - a);
        p->flags |= NX__HTTP_F_ABS_HOST;
        if (e == n || t[e] == '?') p->flags |= NX__HTTP_F_ABS_NO_PATH;
        path = e;
    }
    const char *q = memchr(t + path, '?', n - path);
    size_t path_end = q != NULL ? (size_t)(q - t) : n;
    p->path = nx_http_span(p->target.off + path, path_end - path);
    if (q != NULL) p->query = nx_http_span(p->target.off + path_end + 1, n - path_end - 1);
    return 0;
}

/* Checks one field line (header or trailer) s[0..n), CRLF excluded; returns NULL or why not. */
static const char *check_field_line(const char *s, size_t n, size_t *name_len, size_t *vs,
                                    size_t *ve) {
    if (nx_http_is_ows(s[0])) return "obsolete line folding (line starts with whitespace)";
    return nx_http_field_line(s, n, name_len, vs, ve);
}

static void scan_connection(nx_http_parser_t *p, const char *v, size_t n) {
    size_t k = 0;
    nx_str_t tok;
    while (nx_http_next_token(v, n, &k, &tok)) {
        if (nx_http_eq_lower(tok, "close"))
            p->flags |= NX__HTTP_F_CLOSE;
        else if (nx_http_eq_lower(tok, "keep-alive"))
            p->flags |= NX__HTTP_F_KEEP_ALIVE;
        else if (nx_http_eq_lower(tok, "upgrade"))
            p->flags |= NX__HTTP_F_CONN_UPGRADE;
    }
}

static int parse_content_length(nx_http_parser_t *p, nx_str_t v) {
    int64_t cl = 0;
    switch (nx_http_parse_decimal(v, &cl)) {
    case NX_HTTP_DECIMAL_EMPTY:
        return fail(p, 400, "empty Content-Length");
    case NX_HTTP_DECIMAL_NOT_DIGITS:
        return fail(p, 400, "Content-Length is not a decimal number");
    case NX_HTTP_DECIMAL_OVERFLOW:
        return fail(p, 400, "Content-Length overflows");
    case NX_HTTP_DECIMAL_OK:
        break;
    }
    if ((p->flags & NX__HTTP_F_CL) && cl != p->content_length)
        return fail(p, 400, "conflicting Content-Length values");
    p->flags |= NX__HTTP_F_CL;
    p->content_length = cl;
    return 0;
}

/* Records the header line buf[ls..le) (le at its CR) and notes the fields that frame the
 * request or steer the connection. */
static int parse_header(nx_http_parser_t *p, const char *buf, size_t ls, size_t le) {
    const char *s = buf + ls;
    size_t name_len, vs, ve;
    const char *why = check_field_line(s, le - ls, &name_len, &vs, &ve);
    if (why != NULL) return fail(p, 400, why);
    if (p->header_count >= p->max_headers) return fail(p, 431, "too many header fields");
    nx__http_span_t *h = p->hdr_off[p->header_count++];
    h[0] = nx_http_span(ls, name_len);
    h[1] = nx_http_span(ls + vs, ve - vs);
    nx_str_t name = {s, name_len}, value = {s + vs, ve - vs};
    switch (name_len) {
    case 4:
        if (!nx_http_eq_lower(name, "host")) break;
        if (++p->host_count > 1) return fail(p, 400, "more than one Host header");
        if (!(p->flags & NX__HTTP_F_ABS_HOST)) p->host = h[1];
        break;
    case 6:
        if (p->version_minor == 1 && nx_http_eq_lower(name, "expect") &&
            nx_http_eq_lower(value, "100-continue"))
            p->flags |= NX__HTTP_F_EXPECT;
        break;
    case 7:
        if (nx_http_eq_lower(name, "upgrade")) p->flags |= NX__HTTP_F_UPGRADE_HDR;
        break;
    case 10:
        if (nx_http_eq_lower(name, "connection")) scan_connection(p, value.p, value.n);
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

/* Decides the body framing once the blank line is in (RFC 9112 §6.3, minus the leniency). */
static int finish_head(nx_http_parser_t *p) {
    const nx_http_limits_t *lim = p->limits;
    if (p->version_minor == 1 && p->host_count == 0)
        return fail(p, 400, "HTTP/1.1 request without a Host header");
    p->wpos = p->head_len;
    if (p->te_count > 0) {
        if (p->version_minor == 0) return fail(p, 400, "Transfer-Encoding on an HTTP/1.0 request");
        if (p->flags & NX__HTTP_F_CL)
            return fail(p, 400, "both Transfer-Encoding and Content-Length");
        if (p->te_count > 1 || !p->te_chunked)
            return fail(p, 501, "unsupported Transfer-Encoding (only \"chunked\" is)");
        p->content_length = -1;
        p->state = NX_H1_CHUNK_SIZE;
    } else if (p->content_length > 0) {
        if ((uint64_t)p->content_length > lim->max_body)
            return fail(p, 413, "Content-Length exceeds the body limit");
        if ((uint64_t)p->content_length > (uint64_t)INT_MAX - p->head_len)
            return fail(p, 413, "request larger than 2 GiB");
        p->state = NX_H1_BODY;
    } else {
        p->state = NX_H1_DONE;
    }
    p->flags |= NX__HTTP_F_HEAD_DONE;
    return 0;
}

/* Runs the head states over buf[0..len); 0 once the blank line is in. Bytes past
 * max_header_bytes are not looked at, so the verdict is the same however input is split. */
static int parse_head(nx_http_parser_t *p, const char *buf, size_t len) {
    const uint32_t max_hb = p->limits->max_header_bytes;
    size_t hlen = len < max_hb ? len : max_hb, i = p->pos;
    const char *lf;
    switch (p->state) {
    case NX_H1_RL_METHOD:
        for (;; i++) {
            if (i >= hlen) goto again;
            unsigned char c = (unsigned char)buf[i];
            if (nx_http_cls[c] & NX_HTTP_C_TCHAR) continue;
            if (i == p->line && c == '\r') { /* empty line before the request (§2.2) */
                if (i + 1 >= hlen) goto again;
                if (buf[i + 1] != '\n') return fail(p, 400, "bare CR before the request line");
                p->line = ++i + 1;
                continue;
            }
            if (c == ' ' && i > p->line) break;
            if (c == '\n') return fail(p, 400, "bare LF in the request line");
            return fail(p, 400, i == p->line ? "empty or invalid method" : "invalid method");
        }
        p->method = nx_http_span(p->line, i - p->line);
        p->method_id = (uint8_t)nx_http_method_from(nx_http_at(buf, p->method));
        p->target.off = (uint32_t)++i;
        p->state = NX_H1_RL_TARGET;
        /* fallthrough */
    case NX_H1_RL_TARGET: {
        /* bounded by max_uri rather than max_header_bytes, so a long target gets 414 */
        size_t start = p->target.off, max_uri = p->limits->max_uri;
        size_t stop = len - start > max_uri ? start + max_uri + 1 : len;
        while (i + 8 <= stop && !nx_http_has_ctl(nx_http_load64(buf + i), 0x21))
            i += 8;
        while (i < stop && (nx_http_cls[(unsigned char)buf[i]] & NX_HTTP_C_TARGET))
            i++;
        if (i == stop) {
            if (i - start > max_uri) return fail(p, 414, "request target too long");
            p->pos = i;
            return NX_AGAIN;
        }
        if (buf[i] != ' ') {
            if (i == start) return fail(p, 400, "empty request target");
            return fail(p, 400,
                        buf[i] == '\r' || buf[i] == '\n' ? "request line without an HTTP version"
                                                         : "control character in request target");
        }
        if (i == start) return fail(p, 400, "empty request target (double space)");
        p->target.len = (uint32_t)(i - start);
        p->state = NX_H1_RL_VERSION;
        i++;
    }
        /* fallthrough */
    case NX_H1_RL_VERSION: {
        if (i > hlen) goto again; /* the target ran past max_header_bytes */
        lf = memchr(buf + i, '\n', hlen - i);
        if (lf == NULL) {
            i = hlen;
            goto again;
        }
        size_t le = (size_t)(lf - buf), vs = p->target.off + p->target.len + 1;
        if (buf[le - 1] != '\r') return fail(p, 400, "request line ends in a bare LF");
        if (parse_version(p, buf + vs, le - 1 - vs) < 0) return NX_EPROTO;
        if (parse_target(p, buf) < 0) return NX_EPROTO;
        i = p->line = le + 1;
        p->state = NX_H1_HEADERS;
    }
        /* fallthrough */
    case NX_H1_HEADERS:
        while ((lf = memchr(buf + i, '\n', hlen - i)) != NULL) {
            size_t le = (size_t)(lf - buf);
            i = le + 1;
            if (le == p->line || buf[le - 1] != '\r')
                return fail(p, 400, "header line ends in a bare LF");
            if (le - 1 == p->line) {
                p->pos = p->head_len = i;
                return 0;
            }
            if (parse_header(p, buf, p->line, le - 1) < 0) return NX_EPROTO;
            p->line = i;
        }
        i = hlen;
        goto again;
    }
again:
    p->pos = i;
    if (len >= max_hb) return fail(p, 431, "request head too large");
    return NX_AGAIN;
}

/* Trailer lines after the last chunk: checked like headers, bounded by max_header_bytes, and
 * dropped. */
static int parse_trailers(nx_http_parser_t *p, const char *buf, size_t len) {
    const uint32_t max_hb = p->limits->max_header_bytes;
    size_t tlen = len - p->trailer_start > max_hb ? p->trailer_start + max_hb : len;
    size_t i = p->pos;
    const char *lf;
    while (i < tlen && (lf = memchr(buf + i, '\n', tlen - i)) != NULL) {
        size_t le = (size_t)(lf - buf), name_len, vs, ve;
        i = le + 1;
        if (le == p->line || buf[le - 1] != '\r')
            return fail(p, 400, "trailer line ends in a bare LF");
        if (le - 1 == p->line) {
            p->pos = i;
            p->state = NX_H1_DONE;
            return 0;
        }
        const char *why = check_field_line(buf + p->line, le - 1 - p->line, &name_len, &vs, &ve);
        if (why != NULL) return fail(p, 400, why);
        p->line = i;
    }
    p->pos = tlen;
    if (len - p->trailer_start >= max_hb) return fail(p, 431, "trailer section too large");
    return NX_AGAIN;
}

/* Decodes chunks from p->pos on, moving data down to p->wpos so the body ends up contiguous
 * right after the head; state survives between calls at any byte boundary. */
static int parse_chunked(nx_http_parser_t *p, char *buf, size_t len) {
    const uint64_t max_body = p->limits->max_body;
    size_t i = p->pos;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        switch (p->state) {
        case NX_H1_CHUNK_SIZE: {
            int d = nx_http_hex_value(c);
            if (d >= 0) {
                if (++p->chunk_digits > 16)
                    return fail(p, 400, "chunk size has more than 16 hex digits");
                p->chunk_left = p->chunk_left << 4 | (uint64_t)d;
                if (p->chunk_left > max_body - p->decoded)
                    return fail(p, 413, "chunked body exceeds the body limit");
                i++;
                break;
            }
            if (p->chunk_digits == 0) return fail(p, 400, "chunk size missing or not hex");
            if (c == '\r')
                p->state = NX_H1_CHUNK_SIZE_LF;
            else if (c == ';')
                p->state = NX_H1_CHUNK_EXT;
            else if (nx_http_is_ows((char)c))
                p->state = NX_H1_CHUNK_WS;
            else
                return fail(p, 400, "invalid character after chunk size");
            i++;
            break;
        }
        case NX_H1_CHUNK_WS:
            if (c == ';')
                p->state = NX_H1_CHUNK_EXT;
            else if (!nx_http_is_ows((char)c))
                return fail(p, 400, "whitespace after chunk size without an extension");
            i++;
            break;
        case NX_H1_CHUNK_EXT:
            if (c == '\r')
                p->state = NX_H1_CHUNK_SIZE_LF;
            else if (!(nx_http_cls[c] & NX_HTTP_C_VALUE))
                return fail(p, 400, "control character in chunk extension");
            else if (++p->ext_bytes > p->limits->max_header_bytes)
                return fail(p, 400, "chunk extensions too long");
            i++;
            break;
        case NX_H1_CHUNK_SIZE_LF:
            if (c != '\n') return fail(p, 400, "chunk size line not ended by CRLF");
            i++;
            p->chunk_digits = 0;
            if (p->chunk_left == 0) {
                p->state = NX_H1_TRAILERS;
                p->pos = p->line = p->trailer_start = i;
                return parse_trailers(p, buf, len);
            }
            p->state = NX_H1_CHUNK_DATA;
            break;
        case NX_H1_CHUNK_DATA: {
            size_t n = len - i;
            if (n > p->chunk_left) n = (size_t)p->chunk_left;
            if (p->wpos != i) memmove(buf + p->wpos, buf + i, n);
            p->wpos += n;
            p->decoded += n;
            p->chunk_left -= n;
            i += n;
            if (p->chunk_left == 0) p->state = NX_H1_CHUNK_DATA_CR;
            break;
        }
        case NX_H1_CHUNK_DATA_CR:
        case NX_H1_CHUNK_DATA_LF:
            if (c != (p->state == NX_H1_CHUNK_DATA_CR ? '\r' : '\n'))
                return fail(p, 400, "chunk data not followed by CRLF");
            p->state = p->state == NX_H1_CHUNK_DATA_CR ? NX_H1_CHUNK_DATA_LF : NX_H1_CHUNK_SIZE;
            i++;
            break;
        case NX_H1_TRAILERS:
            return parse_trailers(p, buf, len);
        }
    }
    p->pos = i;
    return NX_AGAIN;
}

/* Points req at the parsed head inside buf; the header array is recomputed only when the
 * caller moved the buffer. */
static void fill_request(nx_http_parser_t *p, const char *buf, nx_http_request_t *req) {
    if (p->filled_base != (uintptr_t)buf) {
        for (uint32_t i = 0; i < p->header_count; i++) {
            p->headers[i].name = nx_http_at(buf, p->hdr_off[i][0]);
            p->headers[i].value = nx_http_at(buf, p->hdr_off[i][1]);
        }
        p->filled_base = (uintptr_t)buf;
    }
    uint16_t f = p->flags;
    req->method = (nx_http_method_t)p->method_id;
    req->method_name = nx_http_at(buf, p->method);
    req->target = nx_http_at(buf, p->target);
    req->path = (f & NX__HTTP_F_ABS_NO_PATH) ? NX_STR("/") : nx_http_at(buf, p->path);
    req->query = p->query.off != 0 ? nx_http_at(buf, p->query) : (nx_str_t){NULL, 0};
    req->version_minor = p->version_minor;
    req->keep_alive = p->version_minor == 1
                          ? !(f & NX__HTTP_F_CLOSE)
                          : (f & NX__HTTP_F_KEEP_ALIVE) && !(f & NX__HTTP_F_CLOSE);
    req->expect_continue = (f & NX__HTTP_F_EXPECT) != 0;
    req->chunked = p->te_count > 0;
    req->upgrade = (f & NX__HTTP_F_CONN_UPGRADE) && (f & NX__HTTP_F_UPGRADE_HDR);
    req->content_length = p->content_length;
    req->host = p->host.off != 0 ? nx_http_at(buf, p->host) : (nx_str_t){NULL, 0};
    req->headers = p->headers;
    req->header_count = p->header_count;
    req->body = (nx_str_t){NULL, 0};
    req->head_len = p->head_len;
}

int nx_http_parse_request(nx_http_parser_t *p, char *buf, size_t len, nx_http_request_t *req) {
    /* the result is an int, so a request may not span more than INT_MAX bytes */
    size_t n = len < INT_MAX ? len : INT_MAX;
    int rc = 0;
    if (p->state == NX_H1_ERROR) return NX_EPROTO;
    if (n < p->pos) return NX_AGAIN; /* the caller dropped bytes: nothing safe to do */
    switch (p->state) {
    case NX_H1_RL_METHOD:
    case NX_H1_RL_TARGET:
    case NX_H1_RL_VERSION:
    case NX_H1_HEADERS:
        rc = parse_head(p, buf, n);
        if (rc == 0) rc = finish_head(p);
        if (rc < 0) return rc;
        break;
    default:
        break;
    }
    fill_request(p, buf, req);
    switch (p->state) {
    case NX_H1_BODY:
        if (n - p->head_len < (uint64_t)p->content_length) {
            rc = NX_AGAIN;
            break;
        }
        p->pos = p->head_len + (size_t)p->content_length;
        p->wpos = p->pos;
        p->state = NX_H1_DONE;
        break;
    case NX_H1_DONE:
        break;
    default:
        rc = parse_chunked(p, buf, n);
        break;
    }
    if (rc == NX_AGAIN && len > n) return fail(p, 413, "request larger than 2 GiB");
    if (rc < 0) return rc;
    req->body = (nx_str_t){buf + p->head_len, p->wpos - p->head_len};
    return (int)p->pos;
}

nx_str_t nx_http_request_header(const nx_http_request_t *req, const char *name) {
    size_t n = strlen(name);
    for (uint32_t i = 0; i < req->header_count; i++) {
        const nx_http_header_t *h = &req->headers[i];
        if (h->name.n == n && strncasecmp(h->name.p, name, n) == 0) return h->value;
    }
    return (nx_str_t){NULL, 0};
}

const char *nx_http_status_reason(int status) {
    /* clang-format off */
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
    /* clang-format on */
}
