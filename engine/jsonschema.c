/* JSON Schema validator (see jsonschema.h). nx_schema_compile turns each schema object into a
 * node_t with its keywords parsed once (properties sorted, patterns translated to POSIX ERE and
 * compiled, $ref resolved to a node); nx_schema_validate then walks nodes over the instance. */
#include "jsonschema.h"

#include "nexus/errors.h"
#include "nexus/str.h"

#include <float.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Instance type bits of the "type" keyword, in the order messages list them. */
enum {
    T_STRING = 1 << 0,
    T_NUMBER = 1 << 1,
    T_INTEGER = 1 << 2,
    T_BOOLEAN = 1 << 3,
    T_OBJECT = 1 << 4,
    T_ARRAY = 1 << 5,
    T_NULL = 1 << 6,
};
static const char *const TYPE_NAME[] = {"string", "number", "integer", "boolean",
                                        "object", "array",  "null"};
static const char *const TYPE_ARTICLE[] = {"a string",  "a number", "an integer", "a boolean",
                                           "an object", "an array", "null"};

#define MAX_FRAMES 256   /* nested evaluations: $ref chains and combinators, not just depth */
#define MAX_GROUPS 32    /* parenthesis nesting in a pattern */
#define MAX_REPEAT 1000  /* largest n or m of {n,m} */
#define MAX_COST 10000   /* pattern positions once {n,m} is expanded: bounds regcomp's memory */
#define SMALL_UNIQUE 256 /* uniqueItems hashes this many items on the stack, more on the heap */

typedef enum node_kind { NODE_TRUE, NODE_FALSE, NODE_OBJECT } node_kind_t;

typedef struct node node_t;

typedef struct prop {
    nx_str_t name; /* borrowed from the schema's document */
    const node_t *schema;
} prop_t;

typedef struct pattern_prop {
    regex_t re;
    const node_t *schema;
} pattern_prop_t;

/* One compiled schema object, owned by nx_schema_t's node list. Strings and values are borrowed
 * from the schema's private document; child nodes are not owned (a $ref target has many
 * parents). Absent keywords are NULL, 0-length or -1. */
struct node {
    node_kind_t kind;
    uint8_t types; /* T_* bits, 0 when "type" is absent */
    bool unique_items;
    bool has_pattern;
    const json_t *enum_values, *const_value;
    char *enum_msg, *const_msg; /* owned, built at compile time so failures format nothing */
    prop_t *props;              /* sorted by name */
    size_t nprops;
    nx_str_t *required;
    size_t nrequired;
    pattern_prop_t *pattern_props;
    size_t npattern_props;
    const node_t *additional;
    int64_t min_props, max_props;
    const node_t **prefix;
    size_t nprefix;
    const node_t *items;
    int64_t min_items, max_items;
    const json_t *minimum, *maximum, *xminimum, *xmaximum, *multiple_of;
    int64_t min_len, max_len;
    regex_t pattern;
    const char *pattern_src;
    const node_t **all_of, **any_of, **one_of;
    size_t nall_of, nany_of, none_of;
    const node_t *not_, *if_, *then_, *else_, *ref;
};

static const node_t TRUE_NODE = {.kind = NODE_TRUE};
static const node_t FALSE_NODE = {.kind = NODE_FALSE};

/* A $ref target or a $defs entry, compiled once however often it is referenced. Targets are
 * compiled from a worklist, not recursively, so a long chain of references cannot nest. */
typedef struct target {
    const json_t *json;
    node_t *node;
    char *loc; /* owned; its location while still waiting to be compiled, then NULL */
} target_t;

struct nx_schema {
    json_t *doc; /* owned deep copy of the caller's schema */
    const node_t *root;
    node_t **nodes; /* every node_t, for nx_schema_free */
    size_t nnodes, cap_nodes;
    target_t *targets;
    size_t ntargets, cap_targets;
};

/* ---- bounded, UTF-8-safe string building ---- */

typedef struct buf {
    char *p;
    size_t cap, n;
    bool full;
} buf_t;

static buf_t buf_on(char *p, size_t cap) {
    p[0] = '\0';
    return (buf_t){p, cap, 0, false};
}

static void buf_put(buf_t *b, const char *s, size_t n) {
    if (b->full) return;
    size_t room = b->cap - 1 - b->n;
    if (n > room) {
        n = room;
        b->full = true;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void buf_str(buf_t *b, const char *s) {
    buf_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void buf_printf(buf_t *b, const char *fmt, ...) {
    if (b->full) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k >= b->cap - b->n) {
        b->n = b->cap - 1;
        b->full = true;
    } else {
        b->n += (size_t)k;
    }
}

/* A cut string ends in "...", never in half a UTF-8 sequence. */
static void buf_finish(buf_t *b) {
    if (!b->full || b->cap < 4) return;
    size_t n = b->n > 3 ? b->n - 3 : 0;
    while (n > 0 && ((unsigned char)b->p[n] & 0xC0) == 0x80)
        n--;
    memcpy(b->p + n, "...", 4);
    b->n = n + 3;
}

/* Appends <s> as a JSON-style quoted string, for names in messages. */
static void buf_quote(buf_t *b, const char *s, size_t n) {
    buf_put(b, "\"", 1);
    for (size_t i = 0; i < n && !b->full; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            buf_put(b, esc, 2);
        } else if (ch < 0x20) {
            buf_printf(b, "\\u%04x", ch);
        } else {
            buf_put(b, (const char *)&s[i], 1);
        }
    }
    buf_put(b, "\"", 1);
}

/* Appends one JSON Pointer reference token ("a/b" becomes "/a~1b"). */
static void buf_pointer_token(buf_t *b, const char *s, size_t n) {
    buf_put(b, "/", 1);
    for (size_t i = 0; i < n && !b->full; i++) {
        if (s[i] == '~')
            buf_put(b, "~0", 2);
        else if (s[i] == '/')
            buf_put(b, "~1", 2);
        else if (s[i] != '\0')
            buf_put(b, &s[i], 1);
    }
}

static void copy_field(char *dst, size_t cap, const char *src) {
    buf_t b = buf_on(dst, cap);
    buf_str(&b, src);
    buf_finish(&b);
}

/* ---- numbers and values ---- */

static double number_value(const json_t *v) {
    return json_is_integer(v) ? (double)json_integer_value(v) : json_real_value(v);
}

/* Every double of magnitude 2^53 or more is an integer; below, the cast is exact. */
static bool is_integral(double d) {
    if (d >= 9007199254740992.0 || d <= -9007199254740992.0) return true;
    return d == (double)(int64_t)d;
}

/* <v> as an int64 when it is an integer or an integral real in range. */
static bool int_value(const json_t *v, json_int_t *out) {
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    double d = json_real_value(v);
    if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0) || !is_integral(d)) return false;
    *out = (json_int_t)d;
    return true;
}

/* Sign of i - d, exactly: no rounding of i to a double. */
static int cmp_int_real(json_int_t i, double d) {
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    json_int_t t = (json_int_t)d; /* truncation of a double is itself a double: exact */
    if (i != t) return i < t ? -1 : 1;
    double frac = d - (double)t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

/* Sign of a - b for two JSON numbers; integers compare exactly even beyond 2^53. */
static int num_cmp(const json_t *a, const json_t *b) {
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_integer(a)) return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b)) return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return x < y ? -1 : x > y;
}

/* Integers divide exactly; otherwise the quotient must be within a few ULPs of an integer, so
 * 0.3 is a multiple of 0.1 although 0.3 / 0.1 is 2.9999999999999996 in binary. */
static bool is_multiple(const json_t *v, const json_t *m) {
    json_int_t mi;
    if (json_is_integer(v) && int_value(m, &mi)) return json_integer_value(v) % mi == 0;
    double q = number_value(v) / number_value(m);
    if (q >= 9007199254740992.0 || q <= -9007199254740992.0) return true; /* no fraction left */
    double r = (double)(int64_t)(q < 0 ? q - 0.5 : q + 0.5);
    double diff = q > r ? q - r : r - q, mag = q < 0 ? -q : q;
    return diff <= 4 * DBL_EPSILON * mag;
}

/* Shortest text that reads back as the same number. */
static const char *format_number(const json_t *v, char *out, size_t cap) {
    if (json_is_integer(v)) {
        snprintf(out, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return out;
    }
    double d = json_real_value(v);
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, d);
        if (strtod(out, NULL) == d) break;
    }
    return out;
}

/* Deep equality with JSON Schema's notion of numbers: 1 equals 1.0. */
static bool values_equal(json_t *a, json_t *b) {
    if (json_is_number(a) && json_is_number(b)) return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b)) return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return false;
        for (void *it = json_object_iter(a); it; it = json_object_iter_next(a, it)) {
            json_t *bv =
                json_object_getn(b, json_object_iter_key(it), json_object_iter_key_len(it));
            if (bv == NULL || !values_equal(json_object_iter_value(it), bv)) return false;
        }
        return true;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b)) return false;
        for (size_t i = 0; i < n; i++)
            if (!values_equal(json_array_get(a, i), json_array_get(b, i))) return false;
        return true;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default:
        return true; /* true, false, null */
    }
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

/* A hash consistent with values_equal (numbers hash by their double value; members combine
 * order-free). Below <depth> 32 everything collides, which only costs comparisons. */
static uint64_t hash_value(json_t *v, int depth) {
    uint64_t h = 0xcbf29ce484222325ull + (uint64_t)json_typeof(v);
    if (depth > 32) return h;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            uint64_t k = hash_bytes(0xcbf29ce484222325ull, json_object_iter_key(it),
                                    json_object_iter_key_len(it));
            h += (k ^ hash_value(json_object_iter_value(it), depth + 1)) * 0x9e3779b97f4a7c15ull;
        }
        return h;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++)
            h = (h ^ hash_value(json_array_get(v, i), depth + 1)) * 0x100000001b3ull;
        return h;
    case JSON_STRING:
        return hash_bytes(h, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
    case JSON_REAL: {
        double d = number_value(v);
        if (d == 0) d = 0; /* -0.0 equals 0 */
        return hash_bytes(0xcbf29ce484222325ull + JSON_REAL, &d, sizeof(d));
    }
    default:
        return h;
    }
}

static size_t utf8_length(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}

static int keycmp(const char *a, size_t an, const char *b, size_t bn) {
    int r = memcmp(a, b, an < bn ? an : bn);
    return r != 0 ? r : an < bn ? -1 : an > bn;
}

/* ---- patterns: ECMA-262 to POSIX ERE ---- */

/* Translation state. Each group level sums the positions regcomp will build for it, so that
 * "((a{100}){100}){100}" is refused before regcomp tries to expand it. */
typedef struct xlate {
    const char *src;
    size_t n, i;
    buf_t out;
    uint64_t cost[MAX_GROUPS + 1];
    int depth;
    uint64_t atom; /* positions of the atom just emitted; 0 when nothing may be repeated */
    const char *why;
} xlate_t;

static int xfail(xlate_t *x, const char *why) {
    x->why = why;
    return -1;
}

/* Emits ASCII <ch> as a literal, escaping what ERE treats specially. */
static void emit_literal(xlate_t *x, unsigned char ch) {
    char s[2] = {'\\', (char)ch};
    if (strchr(".[\\()*+?{}|^$", ch) != NULL)
        buf_put(&x->out, s, 2);
    else
        buf_put(&x->out, &s[1], 1);
}

/* Emits one non-ASCII code point as a group, so a quantifier after it repeats all its bytes. */
static void emit_utf8(xlate_t *x, uint32_t cp) {
    char s[6];
    size_t n = 0;
    s[n++] = '(';
    if (cp < 0x800) {
        s[n++] = (char)(0xC0 | cp >> 6);
    } else if (cp < 0x10000) {
        s[n++] = (char)(0xE0 | cp >> 12);
        s[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
    } else {
        s[n++] = (char)(0xF0 | cp >> 18);
        s[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
        s[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
    }
    buf_put(&x->out, s, n);
    s[0] = (char)(0x80 | (cp & 0x3F));
    s[1] = ')';
    buf_put(&x->out, s, 2);
}

static int hex_value(char ch) {
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

static int hex_digits(xlate_t *x, size_t count, uint32_t *out) {
    uint32_t v = 0;
    for (size_t k = 0; k < count; k++) {
        if (x->i >= x->n) return xfail(x, "truncated \\x or \\u escape");
        int d = hex_value(x->src[x->i++]);
        if (d < 0) return xfail(x, "bad hex digit in \\x or \\u escape");
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* Reads the code point of \xHH or \uHHHH (a surrogate pair counts as one); x->i is past 'x'/'u'. */
static int escaped_code_point(xlate_t *x, char kind, uint32_t *cp) {
    if (hex_digits(x, kind == 'x' ? 2 : 4, cp) < 0) return -1;
    if (*cp >= 0xD800 && *cp < 0xDC00) {
        uint32_t lo;
        if (x->i + 2 > x->n || x->src[x->i] != '\\' || x->src[x->i + 1] != 'u')
            return xfail(x, "unpaired surrogate escape");
        x->i += 2;
        if (hex_digits(x, 4, &lo) < 0) return -1;
        if (lo < 0xDC00 || lo > 0xDFFF) return xfail(x, "unpaired surrogate escape");
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (*cp >= 0xDC00 && *cp <= 0xDFFF) {
        return xfail(x, "unpaired surrogate escape");
    }
    if (*cp == 0) return xfail(x, "NUL characters are not supported");
    return 0;
}

/* The escapes both contexts share: control characters and hex code points. Returns 1 with
 * <*cp> set, 0 when <ch> is none of them, -1 on error. x->i is past <ch>. */
static int common_escape(xlate_t *x, char ch, uint32_t *cp) {
    switch (ch) {
    case 'n':
        *cp = '\n';
        return 1;
    case 't':
        *cp = '\t';
        return 1;
    case 'r':
        *cp = '\r';
        return 1;
    case 'f':
        *cp = '\f';
        return 1;
    case 'v':
        *cp = '\v';
        return 1;
    case 'x':
    case 'u':
        return escaped_code_point(x, ch, cp) < 0 ? -1 : 1;
    case 'c':
        if (x->i < x->n && ((x->src[x->i] | 0x20) >= 'a' && (x->src[x->i] | 0x20) <= 'z')) {
            *cp = (uint32_t)(x->src[x->i++] & 31);
            return 1;
        }
        return xfail(x, "\\c must be followed by a letter");
    case '0':
        return xfail(x, "NUL characters are not supported");
    case 'k':
    case '1' ... '9':
        return xfail(x, "backreferences are not supported");
    case 'p':
    case 'P':
        return xfail(x, "Unicode property escapes \\p and \\P are not supported");
    default:
        return 0;
    }
}

/* One escape outside [...]; x->i is past the backslash. */
static int xlate_escape(xlate_t *x) {
    if (x->i >= x->n) return xfail(x, "pattern ends with a backslash");
    char ch = x->src[x->i++];
    static const struct {
        char ch;
        const char *ere;
    } classes[] = {{'d', "[0-9]"},         {'D', "[^0-9]"},      {'w', "[A-Za-z0-9_]"},
                   {'W', "[^A-Za-z0-9_]"}, {'s', "[[:space:]]"}, {'S', "[^[:space:]]"}};
    for (size_t k = 0; k < sizeof(classes) / sizeof(classes[0]); k++) {
        if (classes[k].ch == ch) {
            buf_str(&x->out, classes[k].ere);
            return 0;
        }
    }
    if (ch == 'b' || ch == 'B') return xfail(x, "word boundaries \\b and \\B are not supported");
    uint32_t cp;
    int rc = common_escape(x, ch, &cp);
    if (rc < 0) return -1;
    if (rc == 0) {
        if ((unsigned char)ch >= 0x80) { /* identity escape of a multi-byte character */
            x->i--;
            return 1;
        }
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
            return xfail(x, "unsupported escape sequence");
        cp = (unsigned char)ch;
    }
    if (cp < 0x80)
        emit_literal(x, (unsigned char)cp);
    else
        emit_utf8(x, cp);
    return 0;
}

/* One item of a [...] class: a single ASCII character (*ch) or a class body (*cls). */
static int class_item(xlate_t *x, unsigned char *ch, const char **cls) {
    *cls = NULL;
    unsigned char c = (unsigned char)x->src[x->i++];
    if (c >= 0x80) return xfail(x, "non-ASCII characters inside [...] are not supported");
    if (c != '\\') {
        *ch = c;
        return 0;
    }
    if (x->i >= x->n) return xfail(x, "pattern ends with a backslash");
    char e = x->src[x->i++];
    switch (e) {
    case 'd':
        *cls = "0-9";
        return 0;
    case 'w':
        *cls = "A-Za-z0-9_";
        return 0;
    case 's':
        *cls = "[:space:]";
        return 0;
    case 'D':
    case 'W':
    case 'S':
        return xfail(x, "\\D, \\W and \\S inside [...] are not supported");
    case 'b':
        *ch = '\b';
        return 0;
    default:
        break;
    }
    uint32_t cp;
    int rc = common_escape(x, e, &cp);
    if (rc < 0) return -1;
    if (rc == 0) {
        if ((unsigned char)e >= 0x80 || (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') ||
            (e >= '0' && e <= '9'))
            return xfail(x, "unsupported escape sequence inside [...]");
        cp = (unsigned char)e;
    }
    if (cp >= 0x80) return xfail(x, "non-ASCII characters inside [...] are not supported");
    *ch = (unsigned char)cp;
    return 0;
}

/* A [...] class; x->i is past '['. POSIX gives ']', '^', '-' and '[' meaning by position, so
 * those are gathered as flags and placed where they are literal. */
static int xlate_class(xlate_t *x) {
    bool neg = false, rbracket = false, caret = false, dash = false, lbracket = false;
    char body_mem[8 * NX_SCHEMA_MAX_PATTERN + 16];
    buf_t body = buf_on(body_mem, sizeof(body_mem));
    if (x->i < x->n && x->src[x->i] == '^') {
        neg = true;
        x->i++;
    }
    if (x->i < x->n && x->src[x->i] == ']')
        return xfail(x, "empty classes [] and [^] are not supported");
    for (;;) {
        if (x->i >= x->n) return xfail(x, "unterminated [...]");
        if (x->src[x->i] == ']') break;
        unsigned char ch, hi;
        const char *cls, *hicls;
        if (class_item(x, &ch, &cls) < 0) return -1;
        if (cls != NULL) {
            buf_str(&body, cls);
            continue;
        }
        if (x->i + 1 < x->n && x->src[x->i] == '-' && x->src[x->i + 1] != ']') {
            x->i++;
            if (class_item(x, &hi, &hicls) < 0) return -1;
            if (hicls != NULL) return xfail(x, "a range cannot end in a class escape");
            if (hi < ch) return xfail(x, "range out of order in [...]");
            if (strchr("]^-[", ch) != NULL || strchr("]^-[", hi) != NULL)
                return xfail(x, "ranges starting or ending in ] ^ - [ are not supported");
            char r[3] = {(char)ch, '-', (char)hi};
            buf_put(&body, r, 3);
            continue;
        }
        if (ch == ']')
            rbracket = true;
        else if (ch == '^')
            caret = true;
        else if (ch == '-')
            dash = true;
        else if (ch == '[')
            lbracket = true;
        else
            buf_put(&body, (const char *)&ch, 1);
    }
    x->i++; /* ']' */
    if (body.full) return xfail(x, "pattern is too long once translated");
    if (!neg && !rbracket && !lbracket && body.n == 0 && caret && !dash) {
        buf_str(&x->out, "\\^"); /* "[^]" would be a negation */
        return 0;
    }
    buf_str(&x->out, neg ? "[^" : "[");
    if (rbracket) buf_str(&x->out, "]");
    if (caret && !rbracket && !lbracket && body.n == 0) { /* "-^" keeps '^' off the front */
        buf_str(&x->out, "-^]");
        return 0;
    }
    buf_put(&x->out, body.p, body.n);
    if (lbracket) buf_str(&x->out, "[");
    if (caret) buf_str(&x->out, "^");
    if (dash) buf_str(&x->out, "-");
    buf_str(&x->out, "]");
    return 0;
}

/* Parses "{n}", "{n,}" or "{n,m}" at x->i; false (x->i unchanged) when it is a literal brace. */
static bool parse_braces(xlate_t *x, uint64_t *lo, uint64_t *hi, bool *open) {
    size_t i = x->i + 1;
    uint64_t a = 0, b = 0;
    size_t digits = 0;
    while (i < x->n && x->src[i] >= '0' && x->src[i] <= '9' && digits < 9) {
        a = a * 10 + (uint64_t)(x->src[i++] - '0');
        digits++;
    }
    if (digits == 0 || i >= x->n) return false;
    *open = false;
    if (x->src[i] == ',') {
        i++;
        digits = 0;
        while (i < x->n && x->src[i] >= '0' && x->src[i] <= '9' && digits < 9) {
            b = b * 10 + (uint64_t)(x->src[i++] - '0');
            digits++;
        }
        if (digits == 0) *open = true;
    } else {
        b = a;
    }
    if (i >= x->n || x->src[i] != '}') return false;
    *lo = a;
    *hi = b;
    x->i = i + 1;
    return true;
}

static int add_cost(xlate_t *x, uint64_t c) {
    x->cost[x->depth] += c;
    return x->cost[x->depth] > MAX_COST ? xfail(x, "pattern is too complex") : 0;
}

/* A quantifier after the last atom: ERE keeps it; the lazy '?' is dropped because only
 * whether a match exists counts, which laziness never changes. */
static int xlate_quantifier(xlate_t *x, uint64_t copies) {
    if (x->atom == 0) return xfail(x, "quantifier with nothing to repeat");
    if (add_cost(x, x->atom * copies) < 0) return -1;
    x->atom = 0;
    if (x->i < x->n && x->src[x->i] == '?') x->i++;
    return 0;
}

static int xlate_group(xlate_t *x) {
    if (x->i < x->n && x->src[x->i] == '?') {
        const char *s = x->src + x->i, *end = x->src + x->n;
        if (s + 1 < end && s[1] == ':') {
            x->i += 2;
        } else if (s + 2 < end && s[1] == '<' && s[2] != '=' && s[2] != '!') {
            const char *gt = s + 2;
            while (gt < end && (*gt == '_' || *gt == '$' || (*gt >= '0' && *gt <= '9') ||
                                ((*gt | 0x20) >= 'a' && (*gt | 0x20) <= 'z')))
                gt++;
            if (gt == end || *gt != '>' || gt == s + 2) return xfail(x, "bad group name");
            x->i = (size_t)(gt + 1 - x->src); /* a named group only captures */
        } else {
            return xfail(x, "lookahead and lookbehind are not supported");
        }
    }
    if (x->depth == MAX_GROUPS) return xfail(x, "groups nested too deeply");
    buf_str(&x->out, "(");
    x->cost[++x->depth] = 0;
    x->atom = 0;
    return 0;
}

/* Translates <src> into ERE in <out>; 0, or -1 with <*why>. */
static int translate_pattern(const char *src, size_t n, char *out, size_t cap, const char **why) {
    xlate_t x = {.src = src, .n = n, .out = buf_on(out, cap)};
    while (x.i < x.n && x.why == NULL) {
        unsigned char ch = (unsigned char)src[x.i++];
        uint64_t lo, hi;
        bool open;
        switch (ch) {
        case '\\': {
            int rc = xlate_escape(&x);
            if (rc < 0) break;
            if (rc == 1) continue; /* an escaped multi-byte character: copy it next round */
            x.atom = 1;
            add_cost(&x, 1);
            break;
        }
        case '[':
            if (xlate_class(&x) < 0) break;
            x.atom = 1;
            add_cost(&x, 1);
            break;
        case '(':
            xlate_group(&x);
            break;
        case ')':
            if (x.depth == 0) {
                xfail(&x, "unbalanced )");
                break;
            }
            buf_str(&x.out, ")");
            x.atom = x.cost[x.depth--] + 1;
            add_cost(&x, x.atom);
            break;
        case '|':
        case '^':
        case '$':
            buf_put(&x.out, (const char *)&ch, 1);
            x.atom = 0;
            break;
        case '*':
        case '?':
            buf_put(&x.out, (const char *)&ch, 1);
            xlate_quantifier(&x, 0);
            break;
        case '+':
            buf_put(&x.out, "+", 1);
            xlate_quantifier(&x, 1); /* regcomp expands a+ to aa* */
            break;
        case '{':
            x.i--;
            if (!parse_braces(&x, &lo, &hi, &open)) {
                x.i++;
                buf_str(&x.out, "\\{");
                x.atom = 1;
                add_cost(&x, 1);
                break;
            }
            if (lo > MAX_REPEAT || hi > MAX_REPEAT) {
                xfail(&x, "repetition count above 1000");
                break;
            }
            if (!open && hi < lo) {
                xfail(&x, "repetition range out of order");
                break;
            }
            buf_printf(&x.out, open ? "{%llu,}" : "{%llu,%llu}", (unsigned long long)lo,
                       (unsigned long long)hi);
            xlate_quantifier(&x, open ? lo + 1 : hi);
            break;
        case '}':
            buf_str(&x.out, "\\}");
            x.atom = 1;
            add_cost(&x, 1);
            break;
        case '.': /* ECMA's dot stops at line terminators; POSIX's does not */
            buf_str(&x.out, "[^\n\r]");
            x.atom = 1;
            add_cost(&x, 1);
            break;
        default:
            if (ch < 0x80) {
                emit_literal(&x, ch);
            } else { /* a whole UTF-8 sequence, grouped (see emit_utf8) */
                size_t len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : 2;
                if (x.i - 1 + len > x.n) len = x.n - x.i + 1;
                buf_put(&x.out, "(", 1);
                buf_put(&x.out, src + x.i - 1, len);
                buf_put(&x.out, ")", 1);
                x.i += len - 1;
            }
            x.atom = 1;
            add_cost(&x, 1);
            break;
        }
    }
    if (x.why == NULL && x.depth != 0) xfail(&x, "unbalanced (");
    if (x.why == NULL && x.out.full) xfail(&x, "pattern is too long once translated");
    *why = x.why;
    return x.why ? -1 : 0;
}

/* Whole-string search, as ECMA's pattern keyword means; strings may hold NUL bytes. */
static bool regex_matches(const regex_t *re, const char *s, size_t n) {
    if (n > INT32_MAX) return false;
    regmatch_t m[1] = {{.rm_so = 0, .rm_eo = (regoff_t)n}};
    return regexec(re, s, 1, m, REG_STARTEND) == 0;
}

/* ---- compiling ---- */

typedef struct cctx {
    nx_schema_t *s;
    nx_schema_error_t *err;
    unsigned depth;
    size_t loclen;
    char loc[512]; /* JSON Pointer of the schema value being compiled */
} cctx_t;

static size_t loc_push(cctx_t *c, const char *seg, size_t n) {
    size_t mark = c->loclen;
    buf_t b = {c->loc, sizeof(c->loc), c->loclen, false};
    buf_pointer_token(&b, seg, n);
    c->loclen = b.n;
    return mark;
}

static void loc_pop(cctx_t *c, size_t mark) {
    c->loclen = mark;
    c->loc[mark] = '\0';
}

__attribute__((format(printf, 3, 4))) static int cfail(cctx_t *c, const char *keyword,
                                                       const char *fmt, ...) {
    if (c->err == NULL) return -1;
    copy_field(c->err->path, sizeof(c->err->path), c->loc);
    copy_field(c->err->keyword, sizeof(c->err->keyword), keyword);
    buf_t b = buf_on(c->err->message, sizeof(c->err->message));
    if (c->loclen == 0) {
        buf_str(&b, "schema");
    } else if (c->loclen <= 120) {
        buf_str(&b, c->loc);
    } else { /* keep the end of a long location, from a token boundary */
        const char *tail = strchr(c->loc + c->loclen - 120, '/');
        buf_str(&b, "...");
        buf_str(&b, tail ? tail : c->loc + c->loclen - 120);
    }
    buf_put(&b, " ", 1);
    va_list ap;
    va_start(ap, fmt);
    if (!b.full) {
        int k = vsnprintf(b.p + b.n, b.cap - b.n, fmt, ap);
        if (k >= 0 && (size_t)k >= b.cap - b.n) b.full = true, b.n = b.cap - 1;
    }
    va_end(ap);
    buf_finish(&b);
    return -1;
}

static int oom(cctx_t *c) {
    return cfail(c, "", "cannot be compiled: out of memory");
}

/* Fails at <loc>/<kw>: "/properties/age/minimum must be a number". */
#define KW_FAIL(c, kw, ...)                                                                        \
    do {                                                                                           \
        loc_push((c), (kw), strlen(kw));                                                           \
        return cfail((c), (kw), __VA_ARGS__);                                                      \
    } while (0)

static node_t *node_new(cctx_t *c) {
    nx_schema_t *s = c->s;
    if (s->nnodes == s->cap_nodes) {
        size_t cap = s->cap_nodes ? s->cap_nodes * 2 : 16;
        node_t **n = realloc(s->nodes, cap * sizeof(*n));
        if (n == NULL) return NULL;
        s->nodes = n;
        s->cap_nodes = cap;
    }
    node_t *n = calloc(1, sizeof(*n));
    if (n == NULL) return NULL;
    n->kind = NODE_OBJECT;
    n->min_props = n->max_props = n->min_items = n->max_items = n->min_len = n->max_len = -1;
    s->nodes[s->nnodes++] = n;
    return n;
}

static void node_free(node_t *n) {
    free(n->enum_msg);
    free(n->const_msg);
    free(n->props);
    free(n->required);
    for (size_t i = 0; i < n->npattern_props; i++)
        regfree(&n->pattern_props[i].re);
    free(n->pattern_props);
    free(n->prefix);
    if (n->has_pattern) regfree(&n->pattern);
    free(n->all_of);
    free(n->any_of);
    free(n->one_of);
    free(n);
}

static int compile_node(cctx_t *c, const json_t *j, const node_t **out);
static int add_target(cctx_t *c, const json_t *j, const char *loc, const node_t **out);

/* Compiles the subschema at <loc>/<kw>[/<seg>] (seg may be NULL). */
static int compile_child(cctx_t *c, const json_t *j, const char *kw, const char *seg, size_t segn,
                         const node_t **out) {
    size_t mark = loc_push(c, kw, strlen(kw));
    if (seg != NULL) loc_push(c, seg, segn);
    int rc = compile_node(c, j, out);
    if (rc == 0) loc_pop(c, mark);
    return rc;
}

static int compile_list(cctx_t *c, const json_t *arr, const char *kw, bool nonempty,
                        const node_t ***out, size_t *count) {
    if (!json_is_array(arr) || (nonempty && json_array_size(arr) == 0))
        KW_FAIL(c, kw, "must be %sarray of schemas", nonempty ? "a non-empty " : "an ");
    size_t n = json_array_size(arr);
    if (n == 0) return 0;
    if ((*out = calloc(n, sizeof(**out))) == NULL) return oom(c);
    for (size_t i = 0; i < n; i++) {
        char idx[24];
        int len = snprintf(idx, sizeof(idx), "%zu", i);
        if (compile_child(c, json_array_get(arr, i), kw, idx, (size_t)len, &(*out)[i]) < 0)
            return -1;
        *count = i + 1;
    }
    return 0;
}

static int parse_count(cctx_t *c, const json_t *v, const char *kw, int64_t *out) {
    if (v == NULL) return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) >= 0 && is_integral(json_real_value(v))) {
        double d = json_real_value(v);
        *out = d >= 9223372036854775807.0 ? INT64_MAX : (int64_t)d;
        return 0;
    }
    KW_FAIL(c, kw, "must be a non-negative integer");
}

static int parse_number(cctx_t *c, const json_t *v, const char *kw, const json_t **out) {
    if (v == NULL) return 0;
    if (!json_is_number(v)) KW_FAIL(c, kw, "must be a number");
    *out = v;
    return 0;
}

static int parse_type(cctx_t *c, const json_t *v, uint8_t *out) {
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && (!json_is_array(v) || n == 0))
        KW_FAIL(c, "type", "must be a type name or a non-empty array of type names");
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_is_array(v) ? json_array_get(v, i) : v;
        size_t k = 0;
        while (k < 7 && !(json_is_string(t) && strcmp(json_string_value(t), TYPE_NAME[k]) == 0))
            k++;
        if (k == 7) {
            char q[64];
            buf_t b = buf_on(q, sizeof(q));
            if (json_is_string(t))
                buf_quote(&b, json_string_value(t), json_string_length(t));
            else
                buf_str(&b, "a non-string");
            buf_finish(&b);
            KW_FAIL(c, "type",
                    "has unknown type %s (expected null, boolean, object, array, "
                    "number, integer or string)",
                    q);
        }
        *out |= (uint8_t)(1u << k);
    }
    return 0;
}

/* "must be one of: \"a\", \"b\"" or "must be equal to {...}", built now so a failing
 * validation formats nothing. */
static char *value_message(const char *lead, const json_t *values, bool list) {
    char msg[256];
    buf_t b = buf_on(msg, sizeof(msg));
    buf_str(&b, lead);
    size_t n = list ? json_array_size(values) : 1;
    for (size_t i = 0; i < n && !b.full; i++) {
        const json_t *v = list ? json_array_get(values, i) : values;
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
        if (text == NULL) return NULL;
        if (i) buf_str(&b, ", ");
        buf_str(&b, text);
        free(text);
    }
    if (list && n == 0) buf_str(&b, "(nothing: enum is empty)");
    buf_finish(&b);
    return strdup(msg);
}

static int compile_regex(cctx_t *c, const char *src, size_t n, const char *kw, regex_t *re) {
    if (n > NX_SCHEMA_MAX_PATTERN)
        return cfail(c, kw, "is longer than %d bytes", NX_SCHEMA_MAX_PATTERN);
    if (memchr(src, '\0', n) != NULL) return cfail(c, kw, "contains a NUL character");
    size_t cap = 8 * n + 16; /* the widest translation, "[^[:space:]]" for "\S", is 6x */
    char *ere = malloc(cap);
    if (ere == NULL) return oom(c);
    const char *why = NULL;
    int rc = translate_pattern(src, n, ere, cap, &why);
    if (rc < 0) {
        free(ere);
        return cfail(c, kw, "is not a supported regular expression: %s", why);
    }
    rc = regcomp(re, ere, REG_EXTENDED | REG_NOSUB);
    free(ere);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof(msg));
        return cfail(c, kw, "is not a valid regular expression: %s", msg);
    }
    return 0;
}

static int prop_cmp(const void *a, const void *b) {
    const prop_t *x = a, *y = b;
    return keycmp(x->name.p, x->name.n, y->name.p, y->name.n);
}

static int compile_object_keywords(cctx_t *c, const json_t *j, node_t *n) {
    const json_t *k;
    if ((k = json_object_get(j, "properties")) != NULL) {
        if (!json_is_object(k)) KW_FAIL(c, "properties", "must be an object of schemas");
        if (json_object_size(k) > 0 &&
            (n->props = calloc(json_object_size(k), sizeof(*n->props))) == NULL)
            return oom(c);
        for (void *it = json_object_iter((json_t *)k); it;
             it = json_object_iter_next((json_t *)k, it)) {
            prop_t *p = &n->props[n->nprops];
            p->name = (nx_str_t){json_object_iter_key(it), json_object_iter_key_len(it)};
            if (compile_child(c, json_object_iter_value(it), "properties", p->name.p, p->name.n,
                              &p->schema) < 0)
                return -1;
            n->nprops++;
        }
        if (n->nprops > 1) qsort(n->props, n->nprops, sizeof(*n->props), prop_cmp);
    }
    if ((k = json_object_get(j, "required")) != NULL) {
        if (!json_is_array(k)) KW_FAIL(c, "required", "must be an array of strings");
        size_t count = json_array_size(k);
        if (count > 0 && (n->required = calloc(count, sizeof(*n->required))) == NULL) return oom(c);
        for (size_t i = 0; i < count; i++) {
            const json_t *name = json_array_get(k, i);
            if (!json_is_string(name)) KW_FAIL(c, "required", "must be an array of strings");
            n->required[n->nrequired++] =
                (nx_str_t){json_string_value(name), json_string_length(name)};
        }
    }
    if ((k = json_object_get(j, "additionalProperties")) != NULL &&
        compile_child(c, k, "additionalProperties", NULL, 0, &n->additional) < 0)
        return -1;
    if ((k = json_object_get(j, "patternProperties")) != NULL) {
        if (!json_is_object(k)) KW_FAIL(c, "patternProperties", "must be an object of schemas");
        if (json_object_size(k) > 0 &&
            (n->pattern_props = calloc(json_object_size(k), sizeof(*n->pattern_props))) == NULL)
            return oom(c);
        for (void *it = json_object_iter((json_t *)k); it;
             it = json_object_iter_next((json_t *)k, it)) {
            pattern_prop_t *pp = &n->pattern_props[n->npattern_props];
            const char *key = json_object_iter_key(it);
            size_t keylen = json_object_iter_key_len(it);
            size_t mark = loc_push(c, "patternProperties", 17);
            loc_push(c, key, keylen);
            if (compile_regex(c, key, keylen, "patternProperties", &pp->re) < 0) return -1;
            loc_pop(c, mark);
            n->npattern_props++;
            if (compile_child(c, json_object_iter_value(it), "patternProperties", key, keylen,
                              &pp->schema) < 0)
                return -1;
        }
    }
    if (parse_count(c, json_object_get(j, "minProperties"), "minProperties", &n->min_props) < 0 ||
        parse_count(c, json_object_get(j, "maxProperties"), "maxProperties", &n->max_props) < 0)
        return -1;
    return 0;
}

static int compile_array_keywords(cctx_t *c, const json_t *j, node_t *n) {
    const json_t *items = json_object_get(j, "items"), *prefix = json_object_get(j, "prefixItems");
    if (prefix != NULL) {
        if (json_is_array(items))
            KW_FAIL(c, "items", "must be a schema when prefixItems is present");
        if (compile_list(c, prefix, "prefixItems", false, &n->prefix, &n->nprefix) < 0) return -1;
    }
    if (json_is_array(items)) { /* the pre-2020 spelling of prefixItems and items */
        if (compile_list(c, items, "items", false, &n->prefix, &n->nprefix) < 0) return -1;
        const json_t *extra = json_object_get(j, "additionalItems");
        if (extra != NULL && compile_child(c, extra, "additionalItems", NULL, 0, &n->items) < 0)
            return -1;
    } else if (items != NULL && compile_child(c, items, "items", NULL, 0, &n->items) < 0) {
        return -1;
    }
    if (parse_count(c, json_object_get(j, "minItems"), "minItems", &n->min_items) < 0 ||
        parse_count(c, json_object_get(j, "maxItems"), "maxItems", &n->max_items) < 0)
        return -1;
    const json_t *k = json_object_get(j, "uniqueItems");
    if (k != NULL && !json_is_boolean(k)) KW_FAIL(c, "uniqueItems", "must be a boolean");
    n->unique_items = json_is_true(k);
    return 0;
}

/* exclusiveMinimum is a number since draft 6; draft 4's boolean form moves minimum over. */
static int parse_exclusive(cctx_t *c, const json_t *j, const char *kw, const json_t **bound,
                           const json_t **exclusive) {
    const json_t *k = json_object_get(j, kw);
    if (json_is_boolean(k)) {
        if (json_is_true(k)) *exclusive = *bound, *bound = NULL;
        return 0;
    }
    return parse_number(c, k, kw, exclusive);
}

static int compile_scalar_keywords(cctx_t *c, const json_t *j, node_t *n) {
    if (parse_number(c, json_object_get(j, "minimum"), "minimum", &n->minimum) < 0 ||
        parse_number(c, json_object_get(j, "maximum"), "maximum", &n->maximum) < 0 ||
        parse_exclusive(c, j, "exclusiveMinimum", &n->minimum, &n->xminimum) < 0 ||
        parse_exclusive(c, j, "exclusiveMaximum", &n->maximum, &n->xmaximum) < 0 ||
        parse_number(c, json_object_get(j, "multipleOf"), "multipleOf", &n->multiple_of) < 0)
        return -1;
    if (n->multiple_of != NULL && number_value(n->multiple_of) <= 0)
        KW_FAIL(c, "multipleOf", "must be a number greater than 0");
    if (parse_count(c, json_object_get(j, "minLength"), "minLength", &n->min_len) < 0 ||
        parse_count(c, json_object_get(j, "maxLength"), "maxLength", &n->max_len) < 0)
        return -1;
    const json_t *k = json_object_get(j, "pattern");
    if (k != NULL) {
        if (!json_is_string(k)) KW_FAIL(c, "pattern", "must be a string");
        size_t mark = loc_push(c, "pattern", 7);
        if (compile_regex(c, json_string_value(k), json_string_length(k), "pattern", &n->pattern) <
            0)
            return -1;
        loc_pop(c, mark);
        n->has_pattern = true;
        n->pattern_src = json_string_value(k);
    }
    return 0;
}

/* Reads a percent-encoded JSON Pointer fragment and returns the value it names in the
 * document, or NULL; <decoded> receives the pointer for error locations. */
static const json_t *resolve_pointer(const json_t *doc, const char *frag, size_t n, char *decoded,
                                     size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned ch = (unsigned char)frag[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hex_value(frag[i + 1]) : -1,
                lo = hi < 0 ? -1 : hex_value(frag[i + 2]);
            if (lo < 0) return NULL;
            ch = (unsigned)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= cap || ch == 0) return NULL;
        decoded[o++] = (char)ch;
    }
    decoded[o] = '\0';
    const json_t *cur = doc;
    char token[512];
    for (const char *p = decoded; *p == '/' && cur != NULL;) {
        p++;
        size_t t = 0;
        for (; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~') {
                if (p[1] != '0' && p[1] != '1') return NULL;
                ch = *++p == '0' ? '~' : '/';
            }
            token[t++] = ch;
        }
        token[t] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, token, t);
        } else if (json_is_array(cur)) {
            char *end;
            unsigned long idx = strtoul(token, &end, 10);
            bool digits = t > 0 && *end == '\0' && token[0] >= '0' && token[0] <= '9' &&
                          (t == 1 || token[0] != '0');
            cur = digits ? json_array_get(cur, idx) : NULL;
        } else {
            cur = NULL;
        }
    }
    return cur;
}

static int compile_ref(cctx_t *c, const json_t *ref, node_t *n) {
    if (!json_is_string(ref)) KW_FAIL(c, "$ref", "must be a string");
    const char *r = json_string_value(ref);
    size_t len = json_string_length(ref);
    char q[160];
    buf_t b = buf_on(q, sizeof(q));
    buf_quote(&b, r, len);
    buf_finish(&b);
    if (!(len == 1 && r[0] == '#') && strncmp(r, "#/$defs/", 8) != 0 &&
        strncmp(r, "#/definitions/", 14) != 0)
        KW_FAIL(c, "$ref",
                "%s is not supported: only \"#\", \"#/$defs/...\" and "
                "\"#/definitions/...\" may be referenced",
                q);
    char decoded[256];
    const json_t *target = resolve_pointer(c->s->doc, r + 1, len - 1, decoded, sizeof(decoded));
    if (target == NULL) KW_FAIL(c, "$ref", "%s does not resolve to a value in this schema", q);
    if (!json_is_object(target) && !json_is_boolean(target))
        KW_FAIL(c, "$ref", "%s does not resolve to a schema", q);
    return add_target(c, target, decoded, &n->ref);
}

static int compile_defs(cctx_t *c, const json_t *j, const char *kw) {
    const json_t *defs = json_object_get(j, kw);
    if (defs == NULL) return 0;
    if (!json_is_object(defs)) KW_FAIL(c, kw, "must be an object of schemas");
    for (void *it = json_object_iter((json_t *)defs); it;
         it = json_object_iter_next((json_t *)defs, it)) {
        const node_t *ignored;
        const json_t *def = json_object_iter_value(it);
        size_t mark = loc_push(c, kw, strlen(kw));
        loc_push(c, json_object_iter_key(it), json_object_iter_key_len(it));
        if (!json_is_object(def) && !json_is_boolean(def))
            return cfail(c, "", "must be an object or a boolean");
        if (add_target(c, def, c->loc, &ignored) < 0) return -1;
        loc_pop(c, mark);
    }
    return 0;
}

/* Fills <n> from the schema object <j>, in the order nx_schema_validate reports. */
static int compile_keywords(cctx_t *c, const json_t *j, node_t *n) {
    if (++c->depth > NX_SCHEMA_MAX_DEPTH)
        return cfail(c, "", "nests subschemas deeper than %d levels", NX_SCHEMA_MAX_DEPTH);
    const json_t *k;
    if ((k = json_object_get(j, "type")) != NULL && parse_type(c, k, &n->types) < 0) return -1;
    if ((k = json_object_get(j, "enum")) != NULL) {
        if (!json_is_array(k)) KW_FAIL(c, "enum", "must be an array");
        n->enum_values = k;
        if ((n->enum_msg = value_message("must be one of: ", k, true)) == NULL) return oom(c);
    }
    if ((k = json_object_get(j, "const")) != NULL) {
        n->const_value = k;
        if ((n->const_msg = value_message("must be equal to ", k, false)) == NULL) return oom(c);
    }
    if (compile_object_keywords(c, j, n) < 0 || compile_array_keywords(c, j, n) < 0 ||
        compile_scalar_keywords(c, j, n) < 0)
        return -1;
    if ((k = json_object_get(j, "allOf")) != NULL &&
        compile_list(c, k, "allOf", true, &n->all_of, &n->nall_of) < 0)
        return -1;
    if ((k = json_object_get(j, "anyOf")) != NULL &&
        compile_list(c, k, "anyOf", true, &n->any_of, &n->nany_of) < 0)
        return -1;
    if ((k = json_object_get(j, "oneOf")) != NULL &&
        compile_list(c, k, "oneOf", true, &n->one_of, &n->none_of) < 0)
        return -1;
    static const char *const single[] = {"not", "if", "then", "else"};
    const node_t **slot[] = {&n->not_, &n->if_, &n->then_, &n->else_};
    for (size_t i = 0; i < 4; i++)
        if ((k = json_object_get(j, single[i])) != NULL &&
            compile_child(c, k, single[i], NULL, 0, slot[i]) < 0)
            return -1;
    if (compile_defs(c, j, "$defs") < 0 || compile_defs(c, j, "definitions") < 0) return -1;
    if ((k = json_object_get(j, "$ref")) != NULL && compile_ref(c, k, n) < 0) return -1;
    c->depth--;
    return 0;
}

static int compile_node(cctx_t *c, const json_t *j, const node_t **out) {
    if (json_is_true(j) || json_is_false(j)) {
        *out = json_is_true(j) ? &TRUE_NODE : &FALSE_NODE;
        return 0;
    }
    if (!json_is_object(j)) return cfail(c, "", "must be an object or a boolean");
    node_t *n = node_new(c);
    if (n == NULL) return oom(c);
    *out = n;
    return compile_keywords(c, j, n);
}

/* Finds or registers the target <j> (an object or a boolean) at <loc>; compile_targets fills
 * it in later, so a schema that refers to itself gets its own node. */
static int add_target(cctx_t *c, const json_t *j, const char *loc, const node_t **out) {
    nx_schema_t *s = c->s;
    if (!json_is_object(j)) {
        *out = json_is_true(j) ? &TRUE_NODE : &FALSE_NODE;
        return 0;
    }
    for (size_t i = 0; i < s->ntargets; i++) {
        if (s->targets[i].json == j) {
            *out = s->targets[i].node;
            return 0;
        }
    }
    if (s->ntargets == s->cap_targets) {
        size_t cap = s->cap_targets ? s->cap_targets * 2 : 8;
        target_t *t = realloc(s->targets, cap * sizeof(*t));
        if (t == NULL) return oom(c);
        s->targets = t;
        s->cap_targets = cap;
    }
    node_t *n = node_new(c);
    char *copy = strdup(loc);
    if (n == NULL || copy == NULL) {
        free(copy);
        return oom(c);
    }
    s->targets[s->ntargets++] = (target_t){j, n, copy};
    *out = n;
    return 0;
}

/* Compiles every registered target, including those registered meanwhile, each from depth 0. */
static int compile_targets(cctx_t *c) {
    for (size_t i = 0; i < c->s->ntargets; i++) {
        target_t t = c->s->targets[i]; /* a copy: compiling may grow the array */
        if (t.loc == NULL) continue;
        copy_field(c->loc, sizeof(c->loc), t.loc);
        c->loclen = strlen(c->loc);
        free(t.loc);
        c->s->targets[i].loc = NULL;
        c->depth = 0;
        if (compile_keywords(c, t.json, t.node) < 0) return -1;
    }
    return 0;
}

nx_schema_t *nx_schema_compile(json_t *schema, nx_schema_error_t *err) {
    nx_schema_t *s = calloc(1, sizeof(*s));
    cctx_t c = {.s = s, .err = err};
    if (err != NULL) memset(err, 0, sizeof(*err));
    if (s == NULL) {
        oom(&c);
        return NULL;
    }
    if (schema == NULL || (!json_is_object(schema) && !json_is_boolean(schema))) {
        cfail(&c, "", "must be an object or a boolean");
        goto fail;
    }
    if ((s->doc = json_deep_copy(schema)) == NULL) {
        oom(&c);
        goto fail;
    }
    if (add_target(&c, s->doc, "", &s->root) < 0 || compile_targets(&c) < 0) goto fail;
    free(s->targets); /* only compilation needs them */
    s->targets = NULL;
    s->ntargets = 0;
    return s;
fail:
    nx_schema_free(s);
    return NULL;
}

void nx_schema_free(nx_schema_t *s) {
    if (s == NULL) return;
    for (size_t i = 0; i < s->nnodes; i++)
        node_free(s->nodes[i]);
    free(s->nodes);
    for (size_t i = 0; s->targets != NULL && i < s->ntargets; i++)
        free(s->targets[i].loc);
    free(s->targets);
    json_decref(s->doc);
    free(s);
}

/* ---- validating ---- */

/* One step of the instance path: an object member (key != NULL) or an array index. */
typedef struct seg {
    const char *key;
    size_t len;
} seg_t;

/* Validation state on the caller's stack. errs/cap/n/all change while a combinator tries a
 * branch quietly: cap 0 means only pass or fail matters, and nothing is formatted. */
typedef struct vctx {
    nx_schema_error_t *errs;
    size_t cap, n;
    bool all; /* go on after a violation */
    unsigned nsegs, frames;
    uint32_t steps;
    seg_t segs[NX_SCHEMA_MAX_DEPTH];
    nx_schema_error_t limit; /* filled when NX_ELIMIT is returned */
} vctx_t;

typedef struct quiet {
    nx_schema_error_t *errs;
    size_t cap, n;
    bool all;
} quiet_t;

static quiet_t quiet_begin(vctx_t *c, nx_schema_error_t *scratch) {
    quiet_t q = {c->errs, c->cap, c->n, c->all};
    c->errs = scratch;
    c->cap = scratch ? 1 : 0;
    c->n = 0;
    c->all = false;
    return q;
}

static void quiet_end(vctx_t *c, quiet_t q) {
    c->errs = q.errs;
    c->cap = q.cap;
    c->n = q.n;
    c->all = q.all;
}

static bool go_on(const vctx_t *c) {
    return c->all && c->n < c->cap;
}

/* Records a failing check and folds it into <bad>; returns from the caller unless collecting
 * every violation. NX_ELIMIT always returns: a bound hit is never a mere violation. */
#define CHECK(expr)                                                                                \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0) {                                                                            \
            if (rc_ != NX_EPROTO || !go_on(c)) return rc_;                                         \
            bad = NX_EPROTO;                                                                       \
        }                                                                                          \
    } while (0)

static void render_path(const vctx_t *c, const nx_str_t *extra, char *out, size_t cap) {
    buf_t b = buf_on(out, cap);
    for (unsigned i = 0; i < c->nsegs; i++) {
        const seg_t *s = &c->segs[i];
        if (s->key != NULL)
            buf_pointer_token(&b, s->key, s->len);
        else
            buf_printf(&b, "/%zu", s->len);
    }
    if (extra != NULL) buf_pointer_token(&b, extra->p, extra->n);
    buf_finish(&b);
}

static void fill_error(const vctx_t *c, nx_schema_error_t *e, const nx_str_t *extra,
                       const char *keyword, const char *fmt, va_list ap) {
    render_path(c, extra, e->path, sizeof(e->path));
    copy_field(e->keyword, sizeof(e->keyword), keyword);
    buf_t b = buf_on(e->message, sizeof(e->message));
    int k = vsnprintf(b.p, b.cap, fmt, ap);
    if (k >= 0 && (size_t)k >= b.cap) b.full = true, b.n = b.cap - 1;
    buf_finish(&b);
}

/* A violation at the current path, or at its child <extra> ("required" names the missing
 * member). */
__attribute__((format(printf, 4, 5))) static int report(vctx_t *c, const nx_str_t *extra,
                                                        const char *keyword, const char *fmt, ...) {
    if (c->n >= c->cap) return NX_EPROTO;
    va_list ap;
    va_start(ap, fmt);
    fill_error(c, &c->errs[c->n++], extra, keyword, fmt, ap);
    va_end(ap);
    return NX_EPROTO;
}

__attribute__((format(printf, 3, 4))) static int limit(vctx_t *c, const char *keyword,
                                                       const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fill_error(c, &c->limit, NULL, keyword, fmt, ap);
    va_end(ap);
    return NX_ELIMIT;
}

static int eval(vctx_t *c, const node_t *n, json_t *v);

static int eval_child(vctx_t *c, const node_t *n, const char *key, size_t len, json_t *v) {
    if (c->nsegs == NX_SCHEMA_MAX_DEPTH)
        return limit(c, "", "is nested deeper than %d levels", NX_SCHEMA_MAX_DEPTH);
    c->segs[c->nsegs++] = (seg_t){key, len};
    int rc = eval(c, n, v);
    c->nsegs--;
    return rc;
}

static int eval_quietly(vctx_t *c, const node_t *n, json_t *v, nx_schema_error_t *scratch) {
    quiet_t q = quiet_begin(c, scratch);
    int rc = eval(c, n, v);
    quiet_end(c, q);
    return rc;
}

const char *nx_json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static bool type_ok(unsigned types, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return types & T_OBJECT;
    case JSON_ARRAY:
        return types & T_ARRAY;
    case JSON_STRING:
        return types & T_STRING;
    case JSON_INTEGER:
        return types & (T_NUMBER | T_INTEGER);
    case JSON_REAL:
        return (types & T_NUMBER) || ((types & T_INTEGER) && is_integral(json_real_value(v)));
    case JSON_TRUE:
    case JSON_FALSE:
        return types & T_BOOLEAN;
    default:
        return types & T_NULL;
    }
}

/* "must be a string or null, got number" */
static int report_type(vctx_t *c, unsigned types, const json_t *v) {
    if (c->n >= c->cap) return NX_EPROTO;
    if (types & T_NUMBER) types &= ~(unsigned)T_INTEGER;
    char want[128];
    buf_t b = buf_on(want, sizeof(want));
    unsigned left = (unsigned)__builtin_popcount(types);
    for (unsigned k = 0; k < 7; k++) {
        if (!(types & (1u << k))) continue;
        left--;
        buf_str(&b, TYPE_ARTICLE[k]);
        if (left > 1)
            buf_str(&b, ", ");
        else if (left == 1)
            buf_str(&b, " or ");
    }
    return report(c, NULL, "type", "must be %s, got %s", want, nx_json_type_name(v));
}

static bool has_prop(const node_t *n, const char *k, size_t len) {
    size_t lo = 0, hi = n->nprops;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int r = keycmp(n->props[mid].name.p, n->props[mid].name.n, k, len);
        if (r == 0) return true;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* patternProperties and additionalProperties for one member <k> of the instance. */
static int eval_extra_member(vctx_t *c, const node_t *n, const char *k, size_t len, json_t *m) {
    int bad = 0;
    bool matched = false;
    for (size_t i = 0; i < n->npattern_props; i++) {
        if (!regex_matches(&n->pattern_props[i].re, k, len)) continue;
        matched = true;
        CHECK(eval_child(c, n->pattern_props[i].schema, k, len, m));
    }
    if (matched || n->additional == NULL || has_prop(n, k, len)) return bad;
    if (n->additional->kind == NODE_FALSE) {
        if (c->n >= c->cap) return NX_EPROTO;
        char q[160];
        buf_t b = buf_on(q, sizeof(q));
        buf_quote(&b, k, len);
        buf_finish(&b);
        CHECK(report(c, NULL, "additionalProperties", "unexpected property %s", q));
        return bad;
    }
    CHECK(eval_child(c, n->additional, k, len, m));
    return bad;
}

/* Members that patternProperties or additionalProperties cover, reported in sorted name order
 * whatever the instance's order: the passing case is one pass in instance order; only a
 * failure searches for the smallest failing name (and the next, when collecting). */
static int eval_extra_members(vctx_t *c, const node_t *n, json_t *v) {
    if (c->cap == 0) {
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            int rc = eval_extra_member(c, n, json_object_iter_key(it), json_object_iter_key_len(it),
                                       json_object_iter_value(it));
            if (rc != 0) return rc;
        }
        return 0;
    }
    int bad = 0;
    const char *last = NULL;
    size_t lastlen = 0;
    for (;;) {
        const char *best = NULL;
        size_t bestlen = 0;
        json_t *bestv = NULL;
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            const char *k = json_object_iter_key(it);
            size_t len = json_object_iter_key_len(it);
            if (last != NULL && keycmp(k, len, last, lastlen) <= 0) continue;
            if (best != NULL && keycmp(k, len, best, bestlen) >= 0) continue;
            quiet_t q = quiet_begin(c, NULL);
            int rc = eval_extra_member(c, n, k, len, json_object_iter_value(it));
            quiet_end(c, q);
            if (rc == NX_ELIMIT) return rc;
            if (rc != 0) best = k, bestlen = len, bestv = json_object_iter_value(it);
        }
        if (best == NULL) return bad;
        int rc = eval_extra_member(c, n, best, bestlen, bestv);
        if (rc == 0) return bad; /* cannot happen: a verdict does not change */
        CHECK(rc);
        last = best;
        lastlen = bestlen;
    }
}

static int eval_object(vctx_t *c, const node_t *n, json_t *v) {
    int bad = 0;
    for (size_t i = 0; i < n->nprops; i++) {
        const prop_t *p = &n->props[i];
        json_t *m = json_object_getn(v, p->name.p, p->name.n);
        if (m != NULL) CHECK(eval_child(c, p->schema, p->name.p, p->name.n, m));
    }
    for (size_t i = 0; i < n->nrequired; i++)
        if (json_object_getn(v, n->required[i].p, n->required[i].n) == NULL)
            CHECK(report(c, &n->required[i], "required", "is required"));
    if (n->npattern_props > 0 || n->additional != NULL) CHECK(eval_extra_members(c, n, v));
    size_t count = json_object_size(v);
    if (n->min_props >= 0 && count < (uint64_t)n->min_props)
        CHECK(report(c, NULL, "minProperties", "must have at least %lld propert%s",
                     (long long)n->min_props, n->min_props == 1 ? "y" : "ies"));
    if (n->max_props >= 0 && count > (uint64_t)n->max_props)
        CHECK(report(c, NULL, "maxProperties", "must have at most %lld propert%s",
                     (long long)n->max_props, n->max_props == 1 ? "y" : "ies"));
    return bad;
}

static int report_duplicate(vctx_t *c, size_t i, size_t j) {
    return report(c, NULL, "uniqueItems", "must have unique items, but items %zu and %zu are equal",
                  i, j);
}

typedef struct hashed {
    uint64_t hash;
    size_t index;
} hashed_t;

static int hashed_cmp(const void *a, const void *b) {
    const hashed_t *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Large arrays: sort (hash, index) so equal items meet; report the pair with the smallest
 * second index, as the pairwise scan would. The one allocation a validation may make. */
static int check_unique_large(vctx_t *c, json_t *a, size_t n) {
    hashed_t *h = malloc(n * sizeof(*h));
    if (h == NULL) return limit(c, "uniqueItems", "cannot check uniqueItems: out of memory");
    for (size_t i = 0; i < n; i++)
        h[i] = (hashed_t){hash_value(json_array_get(a, i), 0), i};
    qsort(h, n, sizeof(*h), hashed_cmp);
    size_t bi = SIZE_MAX, bj = SIZE_MAX;
    for (size_t s = 0; s < n;) {
        size_t e = s + 1;
        while (e < n && h[e].hash == h[s].hash)
            e++;
        for (size_t y = s + 1; y < e; y++) {
            if (h[y].index >= bj) break;
            for (size_t x = s; x < y; x++) {
                if (values_equal(json_array_get(a, h[x].index), json_array_get(a, h[y].index))) {
                    bi = h[x].index, bj = h[y].index;
                    break;
                }
            }
        }
        s = e;
    }
    free(h);
    return bj == SIZE_MAX ? 0 : report_duplicate(c, bi, bj);
}

static int check_unique(vctx_t *c, json_t *a) {
    size_t n = json_array_size(a);
    if (n > SMALL_UNIQUE) return check_unique_large(c, a, n);
    uint64_t h[SMALL_UNIQUE];
    for (size_t j = 0; j < n; j++) {
        h[j] = hash_value(json_array_get(a, j), 0);
        for (size_t i = 0; i < j; i++)
            if (h[i] == h[j] && values_equal(json_array_get(a, i), json_array_get(a, j)))
                return report_duplicate(c, i, j);
    }
    return 0;
}

static int eval_array(vctx_t *c, const node_t *n, json_t *v) {
    int bad = 0;
    size_t size = json_array_size(v);
    for (size_t i = 0; i < size; i++) {
        const node_t *item = i < n->nprefix ? n->prefix[i] : n->items;
        if (item == NULL) break;
        CHECK(eval_child(c, item, NULL, i, json_array_get(v, i)));
    }
    if (n->min_items >= 0 && size < (uint64_t)n->min_items)
        CHECK(report(c, NULL, "minItems", "must have at least %lld item%s", (long long)n->min_items,
                     n->min_items == 1 ? "" : "s"));
    if (n->max_items >= 0 && size > (uint64_t)n->max_items)
        CHECK(report(c, NULL, "maxItems", "must have at most %lld item%s", (long long)n->max_items,
                     n->max_items == 1 ? "" : "s"));
    if (n->unique_items && size > 1) CHECK(check_unique(c, v));
    return bad;
}

static int eval_number(vctx_t *c, const node_t *n, json_t *v) {
    int bad = 0;
    char num[40];
    if (n->minimum != NULL && num_cmp(v, n->minimum) < 0)
        CHECK(report(c, NULL, "minimum", "must be >= %s",
                     format_number(n->minimum, num, sizeof(num))));
    if (n->maximum != NULL && num_cmp(v, n->maximum) > 0)
        CHECK(report(c, NULL, "maximum", "must be <= %s",
                     format_number(n->maximum, num, sizeof(num))));
    if (n->xminimum != NULL && num_cmp(v, n->xminimum) <= 0)
        CHECK(report(c, NULL, "exclusiveMinimum", "must be > %s",
                     format_number(n->xminimum, num, sizeof(num))));
    if (n->xmaximum != NULL && num_cmp(v, n->xmaximum) >= 0)
        CHECK(report(c, NULL, "exclusiveMaximum", "must be < %s",
                     format_number(n->xmaximum, num, sizeof(num))));
    if (n->multiple_of != NULL && !is_multiple(v, n->multiple_of))
        CHECK(report(c, NULL, "multipleOf", "must be a multiple of %s",
                     format_number(n->multiple_of, num, sizeof(num))));
    return bad;
}

static int eval_string(vctx_t *c, const node_t *n, json_t *v) {
    int bad = 0;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (n->min_len >= 0 || n->max_len >= 0) {
        size_t chars = utf8_length(s, len);
        if (n->min_len >= 0 && chars < (uint64_t)n->min_len)
            CHECK(report(c, NULL, "minLength", "must be at least %lld character%s long",
                         (long long)n->min_len, n->min_len == 1 ? "" : "s"));
        if (n->max_len >= 0 && chars > (uint64_t)n->max_len)
            CHECK(report(c, NULL, "maxLength", "must be at most %lld character%s long",
                         (long long)n->max_len, n->max_len == 1 ? "" : "s"));
    }
    if (n->has_pattern && !regex_matches(&n->pattern, s, len))
        CHECK(report(c, NULL, "pattern", "must match pattern %s", n->pattern_src));
    return bad;
}

/* anyOf or oneOf matched nothing: the message lists each branch's first violation. Runs the
 * branches again with a scratch error, so it costs only when validation already failed. */
static int report_branches(vctx_t *c, const node_t *const *branches, size_t count, json_t *v,
                           const char *keyword, const char *lead) {
    if (c->n >= c->cap) return NX_EPROTO;
    char msg[256], here[256];
    buf_t b = buf_on(msg, sizeof(msg));
    buf_str(&b, lead);
    render_path(c, NULL, here, sizeof(here));
    for (size_t i = 0; i < count && !b.full; i++) {
        nx_schema_error_t e = {.message = "is invalid"};
        memcpy(e.path, here, sizeof(here));
        int rc = eval_quietly(c, branches[i], v, &e);
        if (rc == NX_ELIMIT) return rc;
        if (rc == 0) continue;
        buf_printf(&b, "%s #%zu", i ? ";" : "", i);
        if (strcmp(e.path, here) != 0) buf_printf(&b, " at %s", e.path);
        buf_printf(&b, " %s", e.message);
    }
    buf_finish(&b);
    return report(c, NULL, keyword, "%s", msg);
}

static int eval_any_of(vctx_t *c, const node_t *n, json_t *v) {
    for (size_t i = 0; i < n->nany_of; i++) {
        int rc = eval_quietly(c, n->any_of[i], v, NULL);
        if (rc == 0 || rc == NX_ELIMIT) return rc;
    }
    return report_branches(c, n->any_of, n->nany_of, v, "anyOf",
                           "must match at least one anyOf schema:");
}

static int eval_one_of(vctx_t *c, const node_t *n, json_t *v) {
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < n->none_of; i++) {
        int rc = eval_quietly(c, n->one_of[i], v, NULL);
        if (rc == NX_ELIMIT) return rc;
        if (rc != 0) continue;
        if (first != SIZE_MAX)
            return report(c, NULL, "oneOf",
                          "must match exactly one oneOf schema, but matches #%zu and #%zu", first,
                          i);
        first = i;
    }
    if (first != SIZE_MAX) return 0;
    return report_branches(c, n->one_of, n->none_of, v, "oneOf",
                           "must match exactly one oneOf schema, but matches none:");
}

/* Every keyword of <n> that applies to <v>, in the order the header promises. */
static int eval_keywords(vctx_t *c, const node_t *n, json_t *v) {
    int bad = 0;
    if (n->types != 0 && !type_ok(n->types, v)) return report_type(c, n->types, v);
    if (n->enum_values != NULL) {
        size_t i = 0, count = json_array_size(n->enum_values);
        while (i < count && !values_equal(v, json_array_get(n->enum_values, i)))
            i++;
        if (i == count) CHECK(report(c, NULL, "enum", "%s", n->enum_msg));
    }
    if (n->const_value != NULL && !values_equal(v, (json_t *)n->const_value))
        CHECK(report(c, NULL, "const", "%s", n->const_msg));
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        CHECK(eval_object(c, n, v));
        break;
    case JSON_ARRAY:
        CHECK(eval_array(c, n, v));
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        CHECK(eval_number(c, n, v));
        break;
    case JSON_STRING:
        CHECK(eval_string(c, n, v));
        break;
    default:
        break;
    }
    for (size_t i = 0; i < n->nall_of; i++)
        CHECK(eval(c, n->all_of[i], v));
    if (n->nany_of > 0) CHECK(eval_any_of(c, n, v));
    if (n->none_of > 0) CHECK(eval_one_of(c, n, v));
    if (n->not_ != NULL) {
        int rc = eval_quietly(c, n->not_, v, NULL);
        if (rc == NX_ELIMIT) return rc;
        if (rc == 0) CHECK(report(c, NULL, "not", "must not match the schema in \"not\""));
    }
    if (n->if_ != NULL) {
        int rc = eval_quietly(c, n->if_, v, NULL);
        if (rc == NX_ELIMIT) return rc;
        const node_t *branch = rc == 0 ? n->then_ : n->else_;
        if (branch != NULL) CHECK(eval(c, branch, v));
    }
    if (n->ref != NULL) CHECK(eval(c, n->ref, v));
    return bad;
}

static int eval(vctx_t *c, const node_t *n, json_t *v) {
    if (n->kind == NODE_TRUE) return 0;
    if (n->kind == NODE_FALSE) return report(c, NULL, "false", "is not allowed here");
    if (++c->steps > NX_SCHEMA_MAX_STEPS)
        return limit(c, "", "needs more than %d validation steps", NX_SCHEMA_MAX_STEPS);
    if (c->frames == MAX_FRAMES)
        return limit(c, "$ref", "needs schemas nested deeper than %d levels", MAX_FRAMES);
    c->frames++;
    int rc = eval_keywords(c, n, v);
    c->frames--;
    return rc;
}

static int validate(const nx_schema_t *s, json_t *instance, nx_schema_error_t *errs, size_t max,
                    bool all, size_t *count) {
    vctx_t c = {.errs = errs, .cap = errs ? max : 0, .all = all};
    if (instance == NULL) {
        if (c.cap > 0) {
            *c.errs = (nx_schema_error_t){.keyword = "", .path = ""};
            copy_field(c.errs->message, sizeof(c.errs->message), "is missing (NULL instance)");
            c.n = 1;
        }
        *count = c.n;
        return NX_EPROTO;
    }
    int rc = eval(&c, s->root, instance);
    if (rc == NX_ELIMIT && c.n < c.cap) c.errs[c.n++] = c.limit;
    *count = c.n;
    return rc;
}

int nx_schema_validate(const nx_schema_t *s, json_t *instance, nx_schema_error_t *err) {
    size_t count;
    return validate(s, instance, err, 1, false, &count);
}

int nx_schema_validate_all(const nx_schema_t *s, json_t *instance, nx_schema_error_t *errs,
                           size_t max, size_t *count) {
    size_t ignored;
    return validate(s, instance, errs, max, true, count ? count : &ignored);
}
