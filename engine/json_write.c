/* Compact JSON writer over jansson values: one growing buffer, runs of plain string bytes
 * copied at once, integers without printf. See json_write.h for the exact output contract. */
#include "json_write.h"

#include "buf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The text so far, and whether an append has failed (ENOMEM): later appends are then skipped
 * and the writer returns NULL. */
typedef struct out {
    nx_buf_t b;
    bool failed;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
    /* Most tokens fit the room already there: copy without the call. */
    if (n == 0) return;
    if (o->b.cap - o->b.len >= n) {
        memcpy(o->b.data + o->b.len, s, n);
        o->b.len += n;
        return;
    }
    if (!o->failed && nx_buf_append(&o->b, s, n) < 0) o->failed = true;
}

static void put_char(out_t *o, char c) {
    put(o, &c, 1);
}

/* Bytes a JSON string must escape: the quote, the backslash and the C0 controls. Not
 * nx_buf_append_json_escaped: jansson, whose bytes these are, writes \n where that one writes
 * \u000a, and a string may hold a NUL. */
static bool needs_escape(unsigned char c) {
    return c < 0x20 || c == '"' || c == '\\';
}

static void put_string(out_t *o, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    put_char(o, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape(c)) continue;
        put(o, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t len = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        put(o, esc, len);
    }
    put(o, s + run, n - run);
    put_char(o, '"');
}

static void put_integer(out_t *o, json_int_t v) {
    char text[1 + NX_U64_DIGITS];
    size_t n = 0;
    if (v < 0) text[n++] = '-';
    /* Through unsigned: the most negative value has no positive counterpart. */
    uint64_t magnitude = v < 0 ? 0ull - (uint64_t)v : (uint64_t)v;
    n += nx_u64_format(text + n, magnitude);
    put(o, text, n);
}

/* %.<precision>g, then as jansson: a ".0" when neither '.' nor 'e' would make it read back as
 * a real, and no '+' or leading zeros in the exponent. */
static void put_real(out_t *o, double v, int precision) {
    char text[64];
    int n = snprintf(text, sizeof(text), "%.*g", precision, v);
    if (n < 0 || (size_t)n >= sizeof(text) - 3) {
        o->failed = true;
        return;
    }
    size_t len = (size_t)n;
    for (size_t i = 0; i < len; i++)
        if (text[i] == ',') text[i] = '.'; /* a locale's decimal comma */
    if (memchr(text, '.', len) == NULL && memchr(text, 'e', len) == NULL) {
        memcpy(text + len, ".0", 3);
        len += 2;
    }
    char *e = memchr(text, 'e', len);
    if (e != NULL) {
        char *digits = e + 1;
        if (*digits == '-') digits++;
        char *first = digits;
        if (*first == '+') first++;
        while (*first == '0' && first[1] != '\0')
            first++;
        if (first != digits) {
            memmove(digits, first, (size_t)(text + len - first) + 1);
            len -= (size_t)(first - digits);
        }
    }
    put(o, text, len);
}

static void put_value(out_t *o, const json_t *v, int precision, int depth) {
    if (o->failed) return;
    if (depth > NX_JSON_WRITE_MAX_DEPTH) {
        o->failed = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        put_char(o, '{');
        const char *key;
        size_t key_len;
        json_t *member;
        bool first = true;
        json_object_keylen_foreach((json_t *)v, key, key_len, member) {
            if (!first) put_char(o, ',');
            first = false;
            put_string(o, key, key_len);
            put_char(o, ':');
            put_value(o, member, precision, depth + 1);
        }
        put_char(o, '}');
        break;
    }
    case JSON_ARRAY: {
        put_char(o, '[');
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (i > 0) put_char(o, ',');
            put_value(o, json_array_get(v, i), precision, depth + 1);
        }
        put_char(o, ']');
        break;
    }
    case JSON_STRING:
        put_string(o, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        put_integer(o, json_integer_value(v));
        break;
    case JSON_REAL:
        put_real(o, json_real_value(v), precision);
        break;
    case JSON_TRUE:
        put(o, "true", 4);
        break;
    case JSON_FALSE:
        put(o, "false", 5);
        break;
    case JSON_NULL:
        put(o, "null", 4);
        break;
    }
}

/* Runs <write> on <b> through an out_t; on failure <b> is back at its old length. */
static int append_with(nx_buf_t *b, out_t *o, size_t old_len) {
    *b = o->b;
    if (!o->failed) return 0;
    b->len = old_len;
    return -ENOMEM;
}

int nx_json_write_append(nx_buf_t *b, const json_t *v, int real_precision) {
    if (v == NULL) return -EINVAL;
    size_t old_len = b->len;
    out_t o = {.b = *b, .failed = false};
    put_value(&o, v, real_precision > 0 ? real_precision : 17, 1);
    return append_with(b, &o, old_len);
}

int nx_json_write_string(nx_buf_t *b, const char *s, size_t n) {
    size_t old_len = b->len;
    out_t o = {.b = *b, .failed = false};
    put_string(&o, s, n);
    return append_with(b, &o, old_len);
}

char *nx_json_write(const json_t *v, int real_precision, size_t *len) {
    nx_buf_t b;
    nx_buf_init(&b);
    if (nx_json_write_append(&b, v, real_precision) < 0 || nx_buf_append(&b, "", 1) < 0) {
        nx_buf_dispose(&b);
        return NULL;
    }
    if (len != NULL) *len = b.len - 1;
    return b.data;
}
