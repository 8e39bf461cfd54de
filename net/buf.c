/* nx_buf_t: the one growable byte buffer of nexus (see buf.h). */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nx_buf_dispose(nx_buf_t *b) {
    if (b == NULL) return;
    free(b->data);
    nx_buf_init(b);
}

int nx_buf_reserve(nx_buf_t *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int nx_buf_append(nx_buf_t *b, const void *p, size_t n) {
    if (n == 0) return 0;
    if (nx_buf_reserve(b, n) < 0) return -ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int nx_buf_append_str(nx_buf_t *b, const char *s) {
    return nx_buf_append(b, s, strlen(s));
}

int nx_buf_vappendf(nx_buf_t *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return -EINVAL;
    }
    if ((size_t)n < sizeof(small)) {
        va_end(ap2);
        return nx_buf_append(b, small, (size_t)n);
    }
    if (nx_buf_reserve(b, (size_t)n + 1) < 0) {
        va_end(ap2);
        return -ENOMEM;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return 0;
}

int nx_buf_appendf(nx_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = nx_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

size_t nx_u64_format(char out[NX_U64_DIGITS], uint64_t v) {
    char tmp[NX_U64_DIGITS];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    memcpy(out, tmp + i, sizeof(tmp) - i);
    return sizeof(tmp) - i;
}

int nx_buf_append_u64(nx_buf_t *b, uint64_t v) {
    char digits[NX_U64_DIGITS];
    return nx_buf_append(b, digits, nx_u64_format(digits, v));
}

void nx_buf_consume(nx_buf_t *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

int nx_buf_append_json_escaped(nx_buf_t *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
        unsigned char ch = *p;
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            rc = nx_buf_append(b, e, 2);
        } else if (ch < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            rc = nx_buf_append(b, e, 6);
        } else {
            rc = nx_buf_append(b, p, 1);
        }
    }
    return rc;
}
