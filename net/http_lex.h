/* Lexical pieces shared by the HTTP/1.1 request parser (http1.c) and response parser
 * (http_response.c): byte classes, case-insensitive token matching, field-line splitting, the
 * comma-separated token lists of Connection and friends, and Content-Length digits. Private to
 * net/. */
#ifndef NX_NET_HTTP_LEX_H
#define NX_NET_HTTP_LEX_H

#include "http1.h"
#include "nexus/str.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Byte classes (RFC 9110): token characters, request-target bytes, field-value bytes. */
enum { NX_HTTP_C_TCHAR = 1, NX_HTTP_C_TARGET = 2, NX_HTTP_C_VALUE = 4 };
extern const unsigned char nx_http_cls[256];

static inline bool nx_http_is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* ASCII case-insensitive match of s against a lowercase literal (no locale, unlike strncasecmp). */
#define nx_http_eq_lower(s, lit) nx_http_eq_lower_n((s), (lit), sizeof(lit) - 1)
static inline bool nx_http_eq_lower_n(nx_str_t s, const char *lit, size_t n) {
    if (s.n != n) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)lit[i]) return false;
    }
    return true;
}

/* Eight bytes at a time: nonzero when a byte of w is below <below> (<= 0x80) or is DEL. Bytes
 * at 0x80 and above never match, as obs-text is allowed wherever this is used. */
static inline uint64_t nx_http_has_ctl(uint64_t w, uint64_t below) {
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t del = w ^ (0x7f * ones);
    return (((w - below * ones) & ~w) | ((del - ones) & ~del)) & highs;
}

static inline uint64_t nx_http_load64(const char *s) {
    uint64_t w;
    memcpy(&w, s, sizeof(w));
    return w;
}

static inline int nx_http_hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static inline nx__http_span_t nx_http_span(size_t off, size_t len) {
    return (nx__http_span_t){(uint32_t)off, (uint32_t)len};
}

static inline nx_str_t nx_http_at(const char *buf, nx__http_span_t s) {
    return (nx_str_t){buf + s.off, s.len};
}

/** Splits the field line s[0..n) (CRLF excluded; the caller has refused a leading space or tab
 *  already) into a name s[0..*name_len) and a value s[*vs..*ve) with its whitespace trimmed;
 *  returns NULL, or why the line is not a valid field line. */
const char *nx_http_field_line(const char *s, size_t n, size_t *name_len, size_t *vs, size_t *ve);
/** True when <s> is non-empty and has no byte of <bad> (a request line's method, target...):
 *  what a caller hands an outbound request must not end a line early or split it. */
bool nx_http_text_safe(const char *s, const char *bad);
/** True when the header <name>: <value> can be written as one field line: a non-empty name
 *  without ':', and neither with CR, LF or NUL. */
bool nx_http_field_safe(nx_str_t name, nx_str_t value);
/** Steps through the comma-separated list v[0..n) from offset *k: true with the next element
 *  (whitespace trimmed, empty elements skipped) in <tok>, false at the end. */
bool nx_http_next_token(const char *v, size_t n, size_t *k, nx_str_t *tok);

typedef enum nx_http_decimal {
    NX_HTTP_DECIMAL_OK,
    NX_HTTP_DECIMAL_EMPTY,
    NX_HTTP_DECIMAL_NOT_DIGITS,
    NX_HTTP_DECIMAL_OVERFLOW,
} nx_http_decimal_t;
/** Reads v as a non-negative decimal int64 (digits only, as Content-Length is written). */
nx_http_decimal_t nx_http_parse_decimal(nx_str_t v, int64_t *out);

#endif
