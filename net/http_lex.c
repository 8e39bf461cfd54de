/* HTTP lexical helpers shared by the request and response parsers (see http_lex.h). */
#include "http_lex.h"

#include <string.h>

#define IS_TCHAR(c)                                                                                \
    (((c) >= '0' && (c) <= '9') || ((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z') ||     \
     (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' || (c) == '&' || (c) == '\'' ||          \
     (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' ||           \
     (c) == '`' || (c) == '|' || (c) == '~')
#define IS_TARGET(c) ((c) > 0x20 && (c) != 0x7f)
/* Field-value bytes (RFC 9110 §5.5): HTAB, SP, VCHAR and obs-text; no other control bytes. */
#define IS_VALUE(c) ((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f))
#define CLS(c)                                                                                     \
    (IS_TCHAR(c) * NX_HTTP_C_TCHAR | IS_TARGET(c) * NX_HTTP_C_TARGET |                             \
     IS_VALUE(c) * NX_HTTP_C_VALUE)
#define CLS4(c) CLS(c), CLS(c + 1), CLS(c + 2), CLS(c + 3)
#define CLS16(c) CLS4(c), CLS4(c + 4), CLS4(c + 8), CLS4(c + 12)
#define CLS64(c) CLS16(c), CLS16(c + 16), CLS16(c + 32), CLS16(c + 48)
const unsigned char nx_http_cls[256] = {CLS64(0), CLS64(64), CLS64(128), CLS64(192)};

const char *nx_http_field_line(const char *s, size_t n, size_t *name_len, size_t *vs, size_t *ve) {
    size_t k = 0;
    while (k < n && (nx_http_cls[(unsigned char)s[k]] & NX_HTTP_C_TCHAR))
        k++;
    if (k < n && s[k] != ':' && memchr(s + k, ':', n - k) != NULL)
        return nx_http_is_ows(s[k]) ? "whitespace in header name or before the colon"
                                    : "invalid character in header name";
    if (k == n || s[k] != ':') return "header line without a colon";
    if (k == 0) return "empty header name";
    size_t v = k + 1, e = n, i = v;
    while (i + 8 <= n && !nx_http_has_ctl(nx_http_load64(s + i), 0x20))
        i += 8;
    for (; i < n; i++)
        if (!(nx_http_cls[(unsigned char)s[i]] & NX_HTTP_C_VALUE))
            return "control character in header value";
    while (v < e && nx_http_is_ows(s[v]))
        v++;
    while (e > v && nx_http_is_ows(s[e - 1]))
        e--;
    *name_len = k;
    *vs = v;
    *ve = e;
    return NULL;
}

bool nx_http_next_token(const char *v, size_t n, size_t *k, nx_str_t *tok) {
    size_t i = *k;
    while (i < n && (nx_http_is_ows(v[i]) || v[i] == ','))
        i++;
    if (i >= n) {
        *k = n;
        return false;
    }
    size_t s = i;
    while (i < n && v[i] != ',')
        i++;
    size_t e = i;
    while (e > s && nx_http_is_ows(v[e - 1]))
        e--;
    *k = i;
    *tok = (nx_str_t){v + s, e - s};
    return true;
}

nx_http_decimal_t nx_http_parse_decimal(nx_str_t v, int64_t *out) {
    if (v.n == 0) return NX_HTTP_DECIMAL_EMPTY;
    int64_t x = 0;
    for (size_t i = 0; i < v.n; i++) {
        unsigned d = (unsigned char)v.p[i] - '0';
        if (d > 9) return NX_HTTP_DECIMAL_NOT_DIGITS;
        if (x > (INT64_MAX - (int64_t)d) / 10) return NX_HTTP_DECIMAL_OVERFLOW;
        x = x * 10 + (int64_t)d;
    }
    *out = x;
    return NX_HTTP_DECIMAL_OK;
}

bool nx_http_text_safe(const char *s, const char *bad) {
    return s != NULL && s[0] != '\0' && strpbrk(s, bad) == NULL;
}

/* No CR, LF or NUL in s[0..n) (each would end the line early). */
static bool line_safe(nx_str_t s) {
    for (size_t i = 0; i < s.n; i++)
        if (s.p[i] == '\r' || s.p[i] == '\n' || s.p[i] == '\0') return false;
    return true;
}

bool nx_http_field_safe(nx_str_t name, nx_str_t value) {
    if (name.n == 0 || name.p == NULL || (value.n > 0 && value.p == NULL)) return false;
    return memchr(name.p, ':', name.n) == NULL && line_safe(name) && line_safe(value);
}
