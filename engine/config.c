/* Configuration: libyaml events -> a generic document tree (nodes with lines) -> the table of
 * known keys, plus environment and flag overrides, validation and JSON export. Every error
 * names the file, line and dotted key; nothing here keeps global state. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "nexus/errors.h"

#define NX_CFG_MAX_DEPTH 64         /* nesting levels of mappings and sequences */
#define NX_CFG_MAX_KEYS 10000       /* entries per mapping (duplicate check is quadratic) */
#define NX_CFG_MAX_FILE (4u << 20)  /* bytes; a config file larger than this is a mistake */
#define NX_MAX_DURATION_MS 3600000u /* one hour: the ceiling of every timeout */

/* ---- errors ---- */

/* Copies <src> into <dst> with control and non-ASCII bytes replaced, so error text is always
 * printable ASCII (and valid UTF-8 for JSON) whatever the input held. */
static void copy_clean(char *dst, size_t cap, const char *src, size_t n) {
    size_t i = 0;
    if (cap == 0) return;
    for (; i < n && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

static void copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int vfail(nx_config_error_t *err, const char *file, int line, const char *key,
                 const char *fmt, va_list ap) {
    char msg[sizeof(err->message)];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    copy_clean(err->file, sizeof(err->file), file ? file : "", file ? strlen(file) : 0);
    copy_clean(err->key, sizeof(err->key), key ? key : "", key ? strlen(key) : 0);
    err->line = line;
    copy_clean(err->message, sizeof(err->message), msg, strlen(msg));
    return NX_ECONFIG;
}

__attribute__((format(printf, 5, 6))) static int
fail_at(nx_config_error_t *err, const char *file, int line, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(err, file, line, key, fmt, ap);
    va_end(ap);
    return rc;
}

/* Writes <s> as 'text' for a message, shortened and made printable. */
static void quote(char *out, size_t cap, const char *s, size_t n) {
    char body[52];
    size_t shown = n > 40 ? 40 : n;
    copy_clean(body, sizeof(body), s, shown);
    snprintf(out, cap, "'%s%s'", body, n > shown ? "..." : "");
}

/* printf into a message buffer the caller may have passed as NULL. */
__attribute__((format(printf, 3, 4))) static void msgf(char *msg, size_t cap, const char *fmt,
                                                       ...) {
    va_list ap;
    if (msg == NULL || cap == 0) return;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
}

void nx_config_error_format(const nx_config_error_t *err, char *out, size_t outlen) {
    char line[24] = "";
    if (outlen == 0) return;
    if (err->line > 0) snprintf(line, sizeof(line), ":%d", err->line);
    snprintf(out, outlen, "%s%s: %s%s%s", err->file, line, err->key, err->key[0] ? ": " : "",
             err->message);
}

/* ---- suggestions for unknown keys ---- */

/* Optimal string alignment distance (edits and adjacent swaps), ignoring case. */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb) {
    size_t d[64][64];
    if (la >= 64 || lb >= 64) return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ai = tolower((unsigned char)a[i - 1]), bj = tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + (ai != bj);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

typedef struct suggest {
    const char *word;
    size_t best_d;
    char best[64];
} suggest_t;

static void suggest_init(suggest_t *sg, const char *word) {
    sg->word = word;
    sg->best_d = SIZE_MAX;
    sg->best[0] = '\0';
}

static void suggest_try(suggest_t *sg, const char *cand, size_t n) {
    size_t d = edit_distance(sg->word, strlen(sg->word), cand, n);
    size_t limit = n <= 4 ? 1 : 2;
    if (d <= limit && d < sg->best_d && n < sizeof(sg->best)) {
        sg->best_d = d;
        memcpy(sg->best, cand, n);
        sg->best[n] = '\0';
    }
}

/* Writes "unknown key 'x'" plus "; did you mean 'y'?" when a candidate was close. */
static void unknown_msg(char *msg, size_t cap, const suggest_t *sg) {
    char q[64];
    quote(q, sizeof(q), sg->word, strlen(sg->word));
    if (sg->best[0])
        msgf(msg, cap, "unknown key %s; did you mean '%s'?", q, sg->best);
    else
        msgf(msg, cap, "unknown key %s", q);
}

/* ---- the document tree ---- */

struct nx_cfg_node {
    nx_cfg_kind_t kind;
    int line;
    int key_line;
    char *key;    /* key in the parent mapping, NULL otherwise */
    size_t index; /* position in the parent */
    struct nx_cfg_node *parent;
    char *name; /* document name, root only */
    char *text; /* scalars */
    size_t len;
    bool quoted;
    struct nx_cfg_node **items; /* mappings and sequences */
    size_t count, cap;
};

void nx_cfg_free(nx_cfg_node_t *n) {
    if (n == NULL) return;
    for (size_t i = 0; i < n->count; i++)
        nx_cfg_free(n->items[i]);
    free(n->items);
    free(n->key);
    free(n->name);
    free(n->text);
    free(n);
}

nx_cfg_kind_t nx_cfg_kind(const nx_cfg_node_t *n) {
    return n->kind;
}
int nx_cfg_line(const nx_cfg_node_t *n) {
    return n->line;
}
int nx_cfg_key_line(const nx_cfg_node_t *n) {
    return n->key ? n->key_line : n->line;
}
const char *nx_cfg_key(const nx_cfg_node_t *n) {
    return n->key;
}
const nx_cfg_node_t *nx_cfg_parent(const nx_cfg_node_t *n) {
    return n->parent;
}
size_t nx_cfg_count(const nx_cfg_node_t *n) {
    return n->kind == NX_CFG_SCALAR ? 0 : n->count;
}

const char *nx_cfg_text(const nx_cfg_node_t *n, size_t *len) {
    if (n->kind != NX_CFG_SCALAR) return NULL;
    if (len) *len = n->len;
    return n->text;
}

bool nx_cfg_is_null(const nx_cfg_node_t *n) {
    if (n->kind != NX_CFG_SCALAR || n->quoted) return false;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

bool nx_cfg_is_quoted(const nx_cfg_node_t *n) {
    return n->kind == NX_CFG_SCALAR && n->quoted;
}

const nx_cfg_node_t *nx_cfg_at(const nx_cfg_node_t *n, size_t i) {
    return n->kind != NX_CFG_SCALAR && i < n->count ? n->items[i] : NULL;
}

const nx_cfg_node_t *nx_cfg_get(const nx_cfg_node_t *map, const char *key) {
    if (map == NULL || map->kind != NX_CFG_MAPPING) return NULL;
    for (size_t i = 0; i < map->count; i++)
        if (strcmp(map->items[i]->key, key) == 0) return map->items[i];
    return NULL;
}

/* Appends to a fixed buffer, keeping count of the full length like snprintf. */
typedef struct sbuf {
    char *p;
    size_t cap, len;
} sbuf_t;

static void sbuf_add(sbuf_t *b, const char *s, size_t n) {
    if (b->len + 1 < b->cap) {
        size_t room = b->cap - 1 - b->len;
        memcpy(b->p + b->len, s, n < room ? n : room);
        b->p[b->len + (n < room ? n : room)] = '\0';
    }
    b->len += n;
}

/* Appends the step from a parent to a child: ".key" (or "key" at the root) or "[i]". */
static void path_step(sbuf_t *b, const char *key, size_t index) {
    if (key != NULL) {
        if (b->len > 0) sbuf_add(b, ".", 1);
        sbuf_add(b, key, strlen(key));
    } else {
        char idx[32];
        int n = snprintf(idx, sizeof(idx), "[%zu]", index);
        sbuf_add(b, idx, (size_t)n);
    }
}

static void path_build(sbuf_t *b, const nx_cfg_node_t *n) {
    if (n->parent == NULL) return;
    path_build(b, n->parent);
    path_step(b, n->key, n->index);
}

size_t nx_cfg_path(const nx_cfg_node_t *n, char *out, size_t outlen) {
    sbuf_t b = {out, outlen, 0};
    if (outlen > 0) out[0] = '\0';
    path_build(&b, n);
    return b.len;
}

static const char *doc_name(const nx_cfg_node_t *n) {
    while (n->parent)
        n = n->parent;
    return n->name ? n->name : "";
}

static int node_vfail(nx_config_error_t *err, const nx_cfg_node_t *n, int line, const char *fmt,
                      va_list ap) {
    char path[sizeof(err->key)];
    nx_cfg_path(n, path, sizeof(path));
    return vfail(err, doc_name(n), line, path, fmt, ap);
}

int nx_cfg_fail(nx_config_error_t *err, const nx_cfg_node_t *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = node_vfail(err, n, n->line, fmt, ap);
    va_end(ap);
    return rc;
}

int nx_cfg_fail_key(nx_config_error_t *err, const nx_cfg_node_t *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = node_vfail(err, n, nx_cfg_key_line(n), fmt, ap);
    va_end(ap);
    return rc;
}

static int clamp_line(size_t zero_based) {
    return zero_based >= (size_t)INT_MAX ? INT_MAX : (int)zero_based + 1;
}

static nx_cfg_node_t *node_new(nx_cfg_kind_t kind, int line) {
    nx_cfg_node_t *n = calloc(1, sizeof(*n));
    if (n == NULL) return NULL;
    n->kind = kind;
    n->line = line;
    n->key_line = line;
    return n;
}

static int node_append(nx_cfg_node_t *parent, nx_cfg_node_t *child) {
    if (parent->count == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        nx_cfg_node_t **items = realloc(parent->items, cap * sizeof(*items));
        if (items == NULL) return -ENOMEM;
        parent->items = items;
        parent->cap = cap;
    }
    child->parent = parent;
    child->index = parent->count;
    parent->items[parent->count++] = child;
    return 0;
}

/* State of one nx_cfg_parse: the open containers and a mapping key waiting for its value. */
typedef struct builder {
    const char *name;
    nx_config_error_t *err;
    nx_cfg_node_t *root;
    nx_cfg_node_t *stack[NX_CFG_MAX_DEPTH];
    int depth;
    char *key; /* pending key of the innermost mapping, owned */
    int key_line;
    int docs;
} builder_t;

/* The path a node arriving now would get, for errors before it exists. */
static void pending_path(const builder_t *b, char *out, size_t cap) {
    sbuf_t s = {out, cap, 0};
    out[0] = '\0';
    if (b->depth == 0) return;
    const nx_cfg_node_t *top = b->stack[b->depth - 1];
    path_build(&s, top);
    if (top->kind == NX_CFG_MAPPING && b->key != NULL)
        path_step(&s, b->key, 0);
    else if (top->kind == NX_CFG_SEQUENCE)
        path_step(&s, NULL, top->count);
}

__attribute__((format(printf, 3, 4))) static int build_fail(builder_t *b, int line, const char *fmt,
                                                            ...) {
    char path[sizeof(b->err->key)];
    va_list ap;
    pending_path(b, path, sizeof(path));
    va_start(ap, fmt);
    int rc = vfail(b->err, b->name, line, path, fmt, ap);
    va_end(ap);
    return rc;
}

/* Handles a mapping key: it must be a scalar without NULs and new to its mapping. */
static int build_key(builder_t *b, const yaml_event_t *ev, int line) {
    nx_cfg_node_t *top = b->stack[b->depth - 1];
    if (ev->type != YAML_SCALAR_EVENT)
        return build_fail(b, line, "mapping keys must be plain strings, not a %s",
                          ev->type == YAML_MAPPING_START_EVENT ? "mapping" : "sequence");
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (strlen(text) != len) return build_fail(b, line, "a key contains a NUL character");
    if (top->count >= NX_CFG_MAX_KEYS)
        return build_fail(b, line, "a mapping has more than %d keys", NX_CFG_MAX_KEYS);
    for (size_t i = 0; i < top->count; i++) {
        if (strcmp(top->items[i]->key, text) == 0) {
            char q[64];
            quote(q, sizeof(q), text, len);
            b->key = (char *)text; /* borrowed for the error path only */
            build_fail(b, line, "duplicate key %s (first set on line %d)", q,
                       top->items[i]->key_line);
            b->key = NULL;
            return NX_ECONFIG;
        }
    }
    b->key = strdup(text);
    if (b->key == NULL) return build_fail(b, line, "out of memory");
    b->key_line = line;
    return 0;
}

/* Handles a scalar, mapping start or sequence start: a key, or a value placed in its parent. */
static int build_node(builder_t *b, const yaml_event_t *ev) {
    int line = clamp_line(ev->start_mark.line);
    const yaml_char_t *anchor = NULL, *tag = NULL;
    nx_cfg_kind_t kind;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        anchor = ev->data.scalar.anchor, tag = ev->data.scalar.tag, kind = NX_CFG_SCALAR;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ev->data.mapping_start.anchor, tag = ev->data.mapping_start.tag;
        kind = NX_CFG_MAPPING;
        break;
    default:
        anchor = ev->data.sequence_start.anchor, tag = ev->data.sequence_start.tag;
        kind = NX_CFG_SEQUENCE;
        break;
    }
    if (anchor != NULL)
        return build_fail(b, line, "anchors (&%.40s) are not supported", (const char *)anchor);
    if (tag != NULL)
        return build_fail(b, line, "tags (%.40s) are not supported", (const char *)tag);

    nx_cfg_node_t *top = b->depth > 0 ? b->stack[b->depth - 1] : NULL;
    if (top != NULL && top->kind == NX_CFG_MAPPING && b->key == NULL) return build_key(b, ev, line);
    if (kind != NX_CFG_SCALAR && b->depth == NX_CFG_MAX_DEPTH)
        return build_fail(b, line, "nested deeper than %d levels", NX_CFG_MAX_DEPTH);

    nx_cfg_node_t *n = node_new(kind, line);
    if (n == NULL) return build_fail(b, line, "out of memory");
    if (kind == NX_CFG_SCALAR) {
        n->len = ev->data.scalar.length;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        n->text = malloc(n->len + 1);
        if (n->text == NULL) {
            nx_cfg_free(n);
            return build_fail(b, line, "out of memory");
        }
        memcpy(n->text, ev->data.scalar.value, n->len);
        n->text[n->len] = '\0';
    }
    if (top == NULL) {
        b->root = n;
    } else {
        if (node_append(top, n) < 0) {
            nx_cfg_free(n);
            return build_fail(b, line, "out of memory");
        }
        if (top->kind == NX_CFG_MAPPING) {
            n->key = b->key;
            n->key_line = b->key_line;
            b->key = NULL;
        }
    }
    if (kind != NX_CFG_SCALAR) b->stack[b->depth++] = n;
    return 0;
}

/* Turns libyaml's error into "YAML syntax error: <problem> (<context> on line N)". */
static int syntax_error(builder_t *b, const yaml_parser_t *p, const char *text, size_t len) {
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_MEMORY_ERROR) return fail_at(b->err, b->name, 0, "", "out of memory");
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark. */
        int line = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++)
            if (text[i] == '\n' && line < INT_MAX) line++;
        return fail_at(b->err, b->name, line, "", "invalid input: %s", problem);
    }
    const char *hint = "";
    if (strstr(problem, "invalid Unicode character escape"))
        hint = " (JSON surrogate pairs like \\ud83d\\ude00 are not supported; write the "
               "character itself)";
    int line = clamp_line(p->problem_mark.line);
    if (p->context != NULL)
        return fail_at(b->err, b->name, line, "", "YAML syntax error: %s (%s on line %d)%s",
                       problem, p->context, clamp_line(p->context_mark.line), hint);
    return fail_at(b->err, b->name, line, "", "YAML syntax error: %s%s", problem, hint);
}

int nx_cfg_parse(const char *name, const char *text, size_t len, nx_cfg_node_t **out,
                 nx_config_error_t *err) {
    nx_config_error_t scratch;
    builder_t b = {.name = name ? name : "<string>", .err = err ? err : &scratch};
    yaml_parser_t p;
    int rc = 0;

    *out = NULL;
    if (!yaml_parser_initialize(&p)) return fail_at(b.err, b.name, 0, "", "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)(text ? text : ""), text ? len : 0);
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = syntax_error(&b, &p, text, len);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++b.docs > 1)
                rc = build_fail(&b, clamp_line(ev.start_mark.line),
                                "a second YAML document (---) was found; a config holds one");
            break;
        case YAML_ALIAS_EVENT:
            rc =
                build_fail(&b, clamp_line(ev.start_mark.line), "aliases (*%.40s) are not supported",
                           (const char *)ev.data.alias.anchor);
            break;
        case YAML_SCALAR_EVENT:
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            rc = build_node(&b, &ev);
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (b.depth > 0) b.depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    free(b.key);
    if (rc != 0) {
        nx_cfg_free(b.root);
        return rc;
    }
    if (b.root != NULL) {
        b.root->name = strdup(b.name);
        if (b.root->name == NULL) {
            nx_cfg_free(b.root);
            return fail_at(b.err, b.name, 0, "", "out of memory");
        }
    }
    *out = b.root;
    return 0;
}

/* ---- scalar conversions: (text, length) -> value or a message ---- */

typedef enum key_type {
    KT_HOST,
    KT_HOSTS, /* comma-separated host names, stored joined by ',' */
    KT_PORT,
    KT_UINT,
    KT_BOOL,
    KT_DURATION,
    KT_SIZE,
    KT_LEVEL,
} key_type_t;

static const char *expect_phrase(key_type_t t) {
    switch (t) {
    case KT_HOST:
        return "expected a host name or address";
    case KT_HOSTS:
        return "expected host names or addresses separated by commas";
    case KT_PORT:
        return "expected a port number (0..65535)";
    case KT_UINT:
        return "expected an integer";
    case KT_BOOL:
        return "expected a boolean (true/false, yes/no, on/off)";
    case KT_DURATION:
        return "expected a duration like 10s or 250ms";
    case KT_SIZE:
        return "expected a size like 16KiB or 10MiB";
    case KT_LEVEL:
        return "expected a log level (debug, info, warn, error, off)";
    }
    return "unexpected value";
}

/* "got 'x'" / "got an empty value" for a message about scalar text. */
static void got_text(char *out, size_t cap, const char *s, size_t n) {
    if (n == 0) {
        snprintf(out, cap, "an empty value");
        return;
    }
    quote(out, cap, s, n);
}

static void got_node(char *out, size_t cap, const nx_cfg_node_t *n) {
    if (n->kind == NX_CFG_MAPPING)
        snprintf(out, cap, "a mapping");
    else if (n->kind == NX_CFG_SEQUENCE)
        snprintf(out, cap, "a sequence");
    else if (nx_cfg_is_null(n))
        snprintf(out, cap, n->len == 0 ? "an empty value" : "null");
    else
        quote(out, cap, n->text, n->len);
}

static void fmt_duration(char *out, size_t cap, uint64_t ms) {
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(out, cap, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, cap, "%llum", (unsigned long long)(ms / 60000));
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(out, cap, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, cap, "%llums", (unsigned long long)ms);
}

static void fmt_size(char *out, size_t cap, uint64_t v) {
    if (v != 0 && v % (1ull << 30) == 0)
        snprintf(out, cap, "%lluGiB", (unsigned long long)(v >> 30));
    else if (v != 0 && v % (1ull << 20) == 0)
        snprintf(out, cap, "%lluMiB", (unsigned long long)(v >> 20));
    else if (v != 0 && v % (1ull << 10) == 0)
        snprintf(out, cap, "%lluKiB", (unsigned long long)(v >> 10));
    else
        snprintf(out, cap, "%lluB", (unsigned long long)v);
}

static void fmt_value(char *out, size_t cap, key_type_t t, uint64_t v) {
    if (t == KT_DURATION)
        fmt_duration(out, cap, v);
    else if (t == KT_SIZE)
        fmt_size(out, cap, v);
    else
        snprintf(out, cap, "%llu", (unsigned long long)v);
}

static int range_check(key_type_t t, const char *s, size_t n, uint64_t v, uint64_t min,
                       uint64_t max, char *msg, size_t cap) {
    char q[64], lo[32], hi[32];
    if (v >= min && v <= max) return 0;
    quote(q, sizeof(q), s, n);
    fmt_value(lo, sizeof(lo), t, min);
    fmt_value(hi, sizeof(hi), t, max);
    msgf(msg, cap, "%s is out of range (%s..%s)", q, lo, hi);
    return -1;
}

static int parse_uint(key_type_t t, const char *s, size_t n, uint64_t min, uint64_t max,
                      uint64_t *out, char *msg, size_t cap) {
    char got[64];
    size_t i = (n > 0 && s[0] == '-') ? 1 : 0;
    uint64_t v = 0;
    bool over = false;
    got_text(got, sizeof(got), s, n);
    if (i == n) {
        msgf(msg, cap, "%s, got %s", expect_phrase(t), got);
        return -1;
    }
    for (size_t j = i; j < n; j++) {
        if (s[j] < '0' || s[j] > '9') {
            msgf(msg, cap, "%s, got %s", expect_phrase(t), got);
            return -1;
        }
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[j] - '0', &v))
            over = true;
    }
    if (over || (i == 1 && v != 0)) {
        char lo[32], hi[32];
        fmt_value(lo, sizeof(lo), t, min);
        fmt_value(hi, sizeof(hi), t, max);
        msgf(msg, cap, "%s is out of range (%s..%s)", got, lo, hi);
        return -1;
    }
    if (range_check(t, s, n, v, min, max, msg, cap) < 0) return -1;
    *out = v;
    return 0;
}

typedef struct unit {
    const char *name;
    uint64_t mult;
} unit_t;

static const unit_t duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
};

static const unit_t size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", 1ull << 10},
    {"kib", 1ull << 10},
    {"m", 1ull << 20},
    {"mib", 1ull << 20},
    {"g", 1ull << 30},
    {"gib", 1ull << 30},
    {"kb", 1000},
    {"mb", 1000000},
    {"gb", 1000000000},
};

/* Parses "<digits>[.<digits>][ ]*<unit>" and scales by the unit: the shared body of durations
 * and sizes. <what> is "milliseconds" or "bytes"; <unit_hint> lists the units. */
static int parse_scaled(key_type_t t, const char *s, size_t n, const unit_t *units, size_t nunits,
                        const char *what, const char *unit_hint, uint64_t *out, char *msg,
                        size_t cap) {
    char got[64];
    size_t i = 0;
    unsigned __int128 ip = 0, frac = 0, scale = 1;
    bool inexact = false;

    got_text(got, sizeof(got), s, n);
    if (n > 0 && s[0] == '-') {
        msgf(msg, cap, "%s must not be negative", got);
        return -1;
    }
    if (n == 0 || s[0] < '0' || s[0] > '9') {
        msgf(msg, cap, "%s, got %s", expect_phrase(t), got);
        return -1;
    }
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        ip = ip * 10 + (unsigned)(s[i] - '0');
        if (ip > UINT64_MAX) {
            msgf(msg, cap, "%s is too large", got);
            return -1;
        }
    }
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (scale < 1000000000000000000ull) {
                frac = frac * 10 + (unsigned)(s[i] - '0');
                scale *= 10;
            } else if (s[i] != '0') {
                inexact = true;
            }
        }
        if (i == start) {
            msgf(msg, cap, "%s, got %s", expect_phrase(t), got);
            return -1;
        }
    }
    while (i < n && s[i] == ' ')
        i++;
    const char *u = s + i;
    size_t ulen = n - i;
    const unit_t *unit = NULL;
    for (size_t k = 0; k < nunits; k++)
        if (strlen(units[k].name) == ulen && strncasecmp(u, units[k].name, ulen) == 0)
            unit = &units[k];
    if (unit == NULL) {
        char uq[64];
        quote(uq, sizeof(uq), u, ulen);
        msgf(msg, cap, "unknown unit %s in %s (use %s)", uq, got, unit_hint);
        return -1;
    }
    unsigned __int128 whole = ip * unit->mult, part = frac * unit->mult;
    if (inexact || part % scale != 0) {
        msgf(msg, cap, "%s is not a whole number of %s", got, what);
        return -1;
    }
    whole += part / scale;
    if (whole > UINT64_MAX) {
        msgf(msg, cap, "%s is too large", got);
        return -1;
    }
    *out = (uint64_t)whole;
    return 0;
}

static int parse_duration(const char *s, size_t n, uint64_t *ms, char *msg, size_t cap) {
    return parse_scaled(KT_DURATION, s, n, duration_units,
                        sizeof(duration_units) / sizeof(duration_units[0]), "milliseconds",
                        "ms, s, m or h", ms, msg, cap);
}

static int parse_size(const char *s, size_t n, uint64_t *bytes, char *msg, size_t cap) {
    return parse_scaled(KT_SIZE, s, n, size_units, sizeof(size_units) / sizeof(size_units[0]),
                        "bytes", "B, KiB, MiB, GiB, KB, MB or GB", bytes, msg, cap);
}

int nx_config_parse_duration(const char *s, size_t len, uint64_t *ms, char *msg, size_t msglen) {
    return parse_duration(s, len, ms, msg, msglen) < 0 ? NX_ECONFIG : 0;
}

int nx_config_parse_size(const char *s, size_t len, uint64_t *bytes, char *msg, size_t msglen) {
    return parse_size(s, len, bytes, msg, msglen) < 0 ? NX_ECONFIG : 0;
}

static bool word_in(const char *s, size_t n, const char *const *words) {
    for (; *words; words++)
        if (strlen(*words) == n && strncasecmp(s, *words, n) == 0) return true;
    return false;
}

static int parse_bool(const char *s, size_t n, bool *out, char *msg, size_t cap) {
    static const char *const yes[] = {"true", "yes", "on", NULL};
    static const char *const no[] = {"false", "no", "off", NULL};
    char got[64];
    if (word_in(s, n, yes)) {
        *out = true;
        return 0;
    }
    if (word_in(s, n, no)) {
        *out = false;
        return 0;
    }
    got_text(got, sizeof(got), s, n);
    msgf(msg, cap, "%s, got %s", expect_phrase(KT_BOOL), got);
    return -1;
}

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

static int parse_level(const char *s, size_t n, nx_log_level_t *out, char *msg, size_t cap) {
    static const char *const warning[] = {"warning", NULL};
    char got[64];
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        const char *one[] = {level_names[i], NULL};
        if (word_in(s, n, one)) {
            *out = (nx_log_level_t)i;
            return 0;
        }
    }
    if (word_in(s, n, warning)) {
        *out = NX_LOG_WARN;
        return 0;
    }
    got_text(got, sizeof(got), s, n);
    msgf(msg, cap, "%s, got %s", expect_phrase(KT_LEVEL), got);
    return -1;
}

/* A host name or address: letters, digits and . - _ : % * (IPv6 scope ids use %), at most 255
 * bytes; "[::1]" loses its brackets, so the stored form never has any. */
static int parse_host(const char *s, size_t n, char *out, size_t outcap, char *msg, size_t cap) {
    char got[64];
    got_text(got, sizeof(got), s, n);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') s++, n -= 2;
    if (n == 0) {
        msgf(msg, cap, "%s, got %s", expect_phrase(KT_HOST), got);
        return -1;
    }
    if (n >= outcap) {
        msgf(msg, cap, "host is longer than %zu characters", outcap - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (ch == '\0' || strchr(".-_:%*", ch) == NULL)) {
            msgf(msg, cap, "%s is not a valid host name or address", got);
            return -1;
        }
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* A comma-separated list of hosts ("a.example, 10.0.0.5"; empty = none), each checked like a
 * host, stored as "a.example,10.0.0.5". */
static int parse_hosts(const char *s, size_t n, char *out, size_t outcap, char *msg, size_t cap) {
    size_t len = 0;
    out[0] = '\0';
    while (n > 0) {
        while (n > 0 && (*s == ',' || *s == ' '))
            s++, n--;
        size_t item = 0;
        while (item < n && s[item] != ',' && s[item] != ' ')
            item++;
        if (item == 0) break;
        char one[256];
        if (parse_host(s, item, one, sizeof(one), msg, cap) < 0) return -1;
        size_t need = strlen(one) + (len ? 1 : 0);
        if (len + need >= outcap) {
            msgf(msg, cap, "the host list is longer than %zu characters", outcap - 1);
            return -1;
        }
        len += (size_t)snprintf(out + len, outcap - len, "%s%s", len ? "," : "", one);
        s += item, n -= item;
    }
    return 0;
}

/* ---- the table of known keys ----
 * Every scalar key is one row: its dotted name, how its text converts, where it lives in
 * nx_config_t and its range. The file walker, nx_config_set, the environment, validation and
 * nx_config_to_json all read this table, so a new scalar key is one row (plus the field, the
 * default and NX_CONFIG_NKEYS). Sections holding sequences (servers:, workflows:) are parsed
 * from the nx_cfg_node_t tree with nx_cfg_check_keys and the nx_cfg_read_* readers, dispatched
 * from apply_mapping before the unknown-key check, and dropped from future_sections. */

typedef struct key_def {
    const char *name; /* dotted */
    key_type_t type;
    size_t off, width;
    uint64_t min, max;
} key_def_t;

#define FIELD(m) offsetof(nx_config_t, m), sizeof(((nx_config_t *)0)->m)

static const key_def_t keys[] = {
    {"server.host", KT_HOST, FIELD(rest.host), 0, 0},
    {"server.port", KT_PORT, FIELD(rest.port), 0, 65535},
    {"server.shards", KT_UINT, FIELD(shards), 0, 256},
    {"mcp.host", KT_HOST, FIELD(mcp.host), 0, 0},
    {"mcp.port", KT_PORT, FIELD(mcp.port), 0, 65535},
    {"mcp.enabled", KT_BOOL, FIELD(mcp.enabled), 0, 0},
    {"mcp.max_sessions", KT_UINT, FIELD(mcp_limits.max_sessions), 1, 1u << 24},
    {"mcp.session_idle_timeout", KT_DURATION, FIELD(mcp_limits.session_idle_timeout_ms), 1000,
     NX_MAX_DURATION_MS},
    {"mcp.session_evict_idle", KT_DURATION, FIELD(mcp_limits.session_evict_idle_ms), 0,
     NX_MAX_DURATION_MS},
    {"mcp.ws_ping_interval", KT_DURATION, FIELD(mcp_limits.ws_ping_interval_ms), 0,
     NX_MAX_DURATION_MS},
    {"mcp.ws_pong_timeout", KT_DURATION, FIELD(mcp_limits.ws_pong_timeout_ms), 1,
     NX_MAX_DURATION_MS},
    {"mcp.max_message", KT_SIZE, FIELD(mcp_limits.max_message), 1024, 1u << 30},
    {"mcp.allowed_hosts", KT_HOSTS, FIELD(mcp_limits.allowed_hosts), 0, 0},
    {"mcp.stream_buffer", KT_UINT, FIELD(mcp_limits.stream_buffer), 1, 1u << 20},
    {"log.level", KT_LEVEL, FIELD(log_level), 0, 0},
    {"log.access", KT_BOOL, FIELD(access_log), 0, 0},
    {"http.max_header_bytes", KT_SIZE, FIELD(http.max_header_bytes), 256, 1u << 20},
    {"http.max_headers", KT_UINT, FIELD(http.max_headers), 1, 128},
    {"http.max_uri", KT_SIZE, FIELD(http.max_uri), 16, 1u << 20},
    {"http.max_body", KT_SIZE, FIELD(http.max_body), 0, 1ull << 40},
    {"http.header_timeout", KT_DURATION, FIELD(http.header_timeout_ms), 1, NX_MAX_DURATION_MS},
    {"http.body_timeout", KT_DURATION, FIELD(http.body_timeout_ms), 1, NX_MAX_DURATION_MS},
    {"http.keepalive_timeout", KT_DURATION, FIELD(http.keepalive_timeout_ms), 0,
     NX_MAX_DURATION_MS},
    {"http.max_connections", KT_UINT, FIELD(http.max_connections), 1, 1u << 24},
    {"shutdown.grace", KT_DURATION, FIELD(drain_timeout_ms), 0, NX_MAX_DURATION_MS},
    {"debug_routes", KT_BOOL, FIELD(debug_routes), 0, 0},
};
#define NKEYS ((int)(sizeof(keys) / sizeof(keys[0])))
_Static_assert(sizeof(keys) / sizeof(keys[0]) == NX_CONFIG_NKEYS, "update NX_CONFIG_NKEYS");

/* Sections later versions add; named so the error says so instead of guessing a typo. */
static const char *const future_sections[] = {"servers",  "workflows",   "cache", "auth",
                                              "sessions", "rate_limits", NULL};

static int find_key(const char *name) {
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return i;
    return -1;
}

int nx_config_key_index(const char *key) {
    return find_key(key);
}

const char *nx_config_key_name(int i) {
    return i >= 0 && i < NKEYS ? keys[i].name : NULL;
}

static bool is_section(const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < NKEYS; i++)
        if (strncmp(keys[i].name, name, n) == 0 && keys[i].name[n] == '.') return true;
    return false;
}

static void store_uint(void *p, size_t width, uint64_t v) {
    if (width == sizeof(uint16_t))
        *(uint16_t *)p = (uint16_t)v;
    else if (width == sizeof(uint32_t))
        *(uint32_t *)p = (uint32_t)v;
    else
        *(uint64_t *)p = v;
}

static uint64_t load_uint(const void *p, size_t width) {
    if (width == sizeof(uint16_t)) return *(const uint16_t *)p;
    if (width == sizeof(uint32_t)) return *(const uint32_t *)p;
    return *(const uint64_t *)p;
}

/* Converts <s> for key <idx> and stores it in <c>; on failure <c> is untouched. */
static int set_text(nx_config_t *c, int idx, const char *s, size_t n, char *msg, size_t cap) {
    const key_def_t *d = &keys[idx];
    char *field = (char *)c + d->off;
    uint64_t v = 0;
    switch (d->type) {
    case KT_HOST:
        return parse_host(s, n, field, d->width, msg, cap);
    case KT_HOSTS:
        return parse_hosts(s, n, field, d->width, msg, cap);
    case KT_BOOL:
        return parse_bool(s, n, (bool *)field, msg, cap);
    case KT_LEVEL:
        return parse_level(s, n, (nx_log_level_t *)field, msg, cap);
    case KT_PORT:
    case KT_UINT:
        if (parse_uint(d->type, s, n, d->min, d->max, &v, msg, cap) < 0) return -1;
        break;
    case KT_DURATION:
        if (parse_duration(s, n, &v, msg, cap) < 0 ||
            range_check(d->type, s, n, v, d->min, d->max, msg, cap) < 0)
            return -1;
        break;
    case KT_SIZE:
        if (parse_size(s, n, &v, msg, cap) < 0 ||
            range_check(d->type, s, n, v, d->min, d->max, msg, cap) < 0)
            return -1;
        break;
    }
    store_uint(field, d->width, v);
    return 0;
}

static void set_origin(nx_config_t *c, int idx, const char *file, const char *key, int line) {
    nx_config_origin_t *o = &c->origin[idx];
    copy_str(o->file, sizeof(o->file), file);
    copy_str(o->key, sizeof(o->key), key);
    o->line = line;
}

void nx_config_defaults(nx_config_t *c) {
    memset(c, 0, sizeof(*c));
    snprintf(c->rest.host, sizeof(c->rest.host), "127.0.0.1");
    c->rest.port = 8000;
    c->rest.enabled = true;
    snprintf(c->mcp.host, sizeof(c->mcp.host), "127.0.0.1");
    c->mcp.port = 3000;
    c->mcp.enabled = true;
    c->shards = 0;
    c->log_level = NX_LOG_INFO;
    c->access_log = false;
    c->http = (nx_http_config_t){
        .max_header_bytes = 16384,
        .max_headers = 100,
        .max_uri = 8192,
        .max_body = 10u << 20,
        .header_timeout_ms = 10000,
        .body_timeout_ms = 30000,
        .keepalive_timeout_ms = 75000,
        .max_connections = 65536,
    };
    c->drain_timeout_ms = 10000;
    c->mcp_limits = (nx_mcp_limits_t){
        .max_sessions = 10000,
        .session_idle_timeout_ms = 30u * 60u * 1000u,
        .session_evict_idle_ms = 60000,
        .ws_ping_interval_ms = 30000,
        .ws_pong_timeout_ms = 10000,
        .max_message = 10u << 20,
        .stream_buffer = 256,
    };
    c->debug_routes = false;
}

/* ---- applying a document ---- */

/* Fails for the unknown key of node <v> in the mapping at <prefix> ("" = top level). */
static int unknown_key(const nx_cfg_node_t *v, const char *prefix, nx_config_error_t *err) {
    char msg[sizeof(err->message)];
    suggest_t sg;
    size_t plen = strlen(prefix);
    if (plen == 0) {
        for (const char *const *f = future_sections; *f; f++) {
            if (strcmp(*f, v->key) == 0)
                return nx_cfg_fail_key(
                    err, v, "unknown key '%s' (this section is not supported yet)", v->key);
        }
    }
    suggest_init(&sg, v->key);
    for (int i = 0; i < NKEYS; i++) {
        const char *name = keys[i].name;
        if (plen > 0 && (strncmp(name, prefix, plen) != 0 || name[plen] != '.')) continue;
        const char *seg = plen > 0 ? name + plen + 1 : name;
        suggest_try(&sg, seg, strcspn(seg, "."));
    }
    unknown_msg(msg, sizeof(msg), &sg);
    return nx_cfg_fail_key(err, v, "%s", msg);
}

static int apply_leaf(nx_config_t *c, int idx, const nx_cfg_node_t *v, nx_config_error_t *err) {
    char msg[sizeof(err->message)], got[64];
    if (v->kind != NX_CFG_SCALAR || nx_cfg_is_null(v)) {
        got_node(got, sizeof(got), v);
        return nx_cfg_fail(err, v, "%s, got %s", expect_phrase(keys[idx].type), got);
    }
    if (set_text(c, idx, v->text, v->len, msg, sizeof(msg)) < 0)
        return nx_cfg_fail(err, v, "%s", msg);
    set_origin(c, idx, doc_name(v), "", v->line);
    return 0;
}

static int apply_mapping(nx_config_t *c, const nx_cfg_node_t *map, const char *prefix,
                         nx_config_error_t *err) {
    for (size_t i = 0; i < map->count; i++) {
        const nx_cfg_node_t *v = map->items[i];
        char full[256];
        int rc, n = snprintf(full, sizeof(full), "%s%s%s", prefix, prefix[0] ? "." : "", v->key);
        int idx = n < (int)sizeof(full) ? find_key(full) : -1;
        if (idx >= 0) {
            rc = apply_leaf(c, idx, v, err);
        } else if (n < (int)sizeof(full) && is_section(full)) {
            if (nx_cfg_is_null(v)) continue; /* "http:" with every key commented out */
            if (v->kind != NX_CFG_MAPPING) {
                char got[64];
                got_node(got, sizeof(got), v);
                return nx_cfg_fail(err, v, "expected a mapping, got %s", got);
            }
            rc = apply_mapping(c, v, full, err);
        } else {
            rc = unknown_key(v, prefix, err);
        }
        if (rc != 0) return rc;
    }
    return 0;
}

int nx_config_load_string(nx_config_t *c, const char *name, const char *text, size_t len,
                          nx_config_error_t *err) {
    nx_config_error_t scratch;
    nx_cfg_node_t *root = NULL;
    if (err == NULL) err = &scratch;
    if (name == NULL) name = "<string>";
    int rc = nx_cfg_parse(name, text, len, &root, err);
    if (rc != 0) return rc;

    nx_config_t *tmp = malloc(sizeof(*tmp));
    if (tmp == NULL) {
        nx_cfg_free(root);
        return fail_at(err, name, 0, "", "out of memory");
    }
    *tmp = *c;
    if (root != NULL && !nx_cfg_is_null(root)) {
        if (root->kind != NX_CFG_MAPPING) {
            char got[64];
            got_node(got, sizeof(got), root);
            rc = nx_cfg_fail(err, root, "expected a mapping at the top level, got %s", got);
        } else {
            rc = apply_mapping(tmp, root, "", err);
        }
    }
    if (rc == 0) {
        copy_str(tmp->source, sizeof(tmp->source), name);
        *c = *tmp;
    }
    free(tmp);
    nx_cfg_free(root);
    return rc;
}

static int io_error(nx_config_error_t *err, const char *path, int e) {
    char buf[128];
    return fail_at(err, path, 0, "", "%s", strerror_r(e, buf, sizeof(buf)));
}

int nx_config_load_file(nx_config_t *c, const char *path, nx_config_error_t *err) {
    nx_config_error_t scratch;
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;
    if (err == NULL) err = &scratch;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_error(err, path, errno);
    if (fstat(fd, &st) < 0) {
        rc = io_error(err, path, errno);
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = io_error(err, path, EISDIR);
        goto done;
    }
    for (;;) {
        if (len > NX_CFG_MAX_FILE) {
            rc = fail_at(err, path, 0, "", "file is larger than %u MiB", NX_CFG_MAX_FILE >> 20);
            goto done;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 16384;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                rc = fail_at(err, path, 0, "", "out of memory");
                goto done;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = io_error(err, path, errno);
            goto done;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    rc = nx_config_load_string(c, path, buf ? buf : "", len, err);
done:
    free(buf);
    close(fd);
    return rc;
}

/* ---- flags and environment ---- */

/* Sets key <idx> from <value> without the checks nx_config_set does on the key name. */
static int set_index(nx_config_t *c, int idx, const char *value, const char *origin,
                     const char *origin_key, nx_config_error_t *err) {
    char msg[sizeof(err->message)];
    if (set_text(c, idx, value, strlen(value), msg, sizeof(msg)) < 0)
        return fail_at(err, origin, 0, origin_key, "%s", msg);
    set_origin(c, idx, origin, origin_key, 0);
    return 0;
}

/* Fails with "unknown key", suggesting the closest full dotted key. */
static int unknown_dotted(const char *key, const char *origin, const char *origin_key,
                          nx_config_error_t *err) {
    char msg[sizeof(err->message)];
    suggest_t sg;
    if (is_section(key))
        return fail_at(err, origin, 0, origin_key, "'%s' is a section, not a key", key);
    suggest_init(&sg, key);
    for (int i = 0; i < NKEYS; i++)
        suggest_try(&sg, keys[i].name, strlen(keys[i].name));
    unknown_msg(msg, sizeof(msg), &sg);
    return fail_at(err, origin, 0, origin_key, "%s", msg);
}

int nx_config_set(nx_config_t *c, const char *key, const char *value, const char *origin,
                  const char *origin_key, nx_config_error_t *err) {
    nx_config_error_t scratch;
    if (err == NULL) err = &scratch;
    if (origin == NULL) origin = "command line";
    if (origin_key == NULL) origin_key = key;
    int idx = find_key(key);
    if (idx < 0) return unknown_dotted(key, origin, origin_key, err);
    return set_index(c, idx, value ? value : "", origin, origin_key, err);
}

static const struct {
    const char *var, *key;
} env_aliases[] = {
    {"NEXUS_HOST", "server.host"},          {"NEXUS_PORT", "server.port"},
    {"NEXUS_MCP_HOST", "mcp.host"},         {"NEXUS_MCP_PORT", "mcp.port"},
    {"NEXUS_SHARDS", "server.shards"},      {"NEXUS_LOG_LEVEL", "log.level"},
    {"NEXUS_DEBUG_ROUTES", "debug_routes"},
};

/* Maps a variable name to a dotted key: an alias, or NEXUS_A__B_C -> "a.b_c". Returns false
 * for NEXUS_ variables that are not configuration (no "__"). */
static bool env_key(const char *var, char *key, size_t cap) {
    for (size_t i = 0; i < sizeof(env_aliases) / sizeof(env_aliases[0]); i++) {
        if (strcmp(var, env_aliases[i].var) == 0) {
            copy_str(key, cap, env_aliases[i].key);
            return true;
        }
    }
    const char *s = var + strlen("NEXUS_");
    if (strstr(s, "__") == NULL) return false;
    size_t o = 0;
    for (; *s && o + 1 < cap; s++) {
        if (s[0] == '_' && s[1] == '_') {
            key[o++] = '.';
            s++;
        } else {
            key[o++] = (char)tolower((unsigned char)*s);
        }
    }
    key[o] = '\0';
    return true;
}

int nx_config_apply_env(nx_config_t *c, char *const *envp, nx_config_error_t *err) {
    nx_config_error_t scratch;
    int setter[NX_CONFIG_NKEYS];
    int rc = 0;
    if (err == NULL) err = &scratch;
    if (envp == NULL) return 0;
    nx_config_t *tmp = malloc(sizeof(*tmp));
    if (tmp == NULL) return fail_at(err, "environment", 0, "", "out of memory");
    *tmp = *c;
    for (int i = 0; i < NKEYS; i++)
        setter[i] = -1;

    for (int e = 0; envp[e] != NULL && rc == 0; e++) {
        const char *eq = strchr(envp[e], '=');
        char var[128], key[128];
        if (strncmp(envp[e], "NEXUS_", 6) != 0 || eq == NULL) continue;
        copy_clean(var, sizeof(var), envp[e], (size_t)(eq - envp[e]));
        if (!env_key(var, key, sizeof(key))) continue;
        int idx = find_key(key);
        if (idx < 0) {
            rc = unknown_dotted(key, "environment", var, err);
        } else if (setter[idx] >= 0) {
            const char *other = envp[setter[idx]];
            rc = fail_at(err, "environment", 0, var, "conflicts with %.*s (both set %s)",
                         (int)strcspn(other, "="), other, keys[idx].name);
        } else {
            setter[idx] = e;
            rc = set_index(tmp, idx, eq + 1, "environment", var, err);
        }
    }
    if (rc == 0) *c = *tmp;
    free(tmp);
    return rc;
}

/* ---- validation ---- */

/* Fails with the location key <idx> was set at (file and line, variable, flag or default). */
__attribute__((format(printf, 4, 5))) static int
blame(const nx_config_t *c, int idx, nx_config_error_t *err, const char *fmt, ...) {
    const nx_config_origin_t *o = &c->origin[idx];
    const char *file = o->file[0] ? o->file : "defaults";
    const char *key = o->key[0] ? o->key : keys[idx].name;
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(err, file, o->line, key, fmt, ap);
    va_end(ap);
    return rc;
}

/* The first of keys <a>, <b> set somewhere other than the defaults, else <a>. */
static int pick_set(const nx_config_t *c, int a, int b) {
    return c->origin[a].file[0] || !c->origin[b].file[0] ? a : b;
}

static bool is_wildcard(const char *h) {
    return strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "*") == 0;
}

int nx_config_validate(const nx_config_t *c, nx_config_error_t *err) {
    nx_config_error_t scratch;
    if (err == NULL) err = &scratch;
    for (int i = 0; i < NKEYS; i++) {
        const key_def_t *d = &keys[i];
        const char *field = (const char *)c + d->off;
        char v[32], lo[32], hi[32];
        if (d->type == KT_HOST || d->type == KT_HOSTS) {
            size_t n = strnlen(field, d->width);
            char tmp[1024], msg[sizeof(err->message)];
            int bad = n == d->width ? -1
                      : d->type == KT_HOST
                          ? parse_host(field, n, tmp, sizeof(tmp), msg, sizeof(msg))
                          : parse_hosts(field, n, tmp, sizeof(tmp), msg, sizeof(msg));
            if (bad < 0)
                return blame(c, i, err, "%s", n == d->width ? "host is not terminated" : msg);
        } else if (d->type == KT_LEVEL) {
            nx_log_level_t lvl = *(const nx_log_level_t *)field;
            if ((int)lvl < NX_LOG_DEBUG || lvl > NX_LOG_OFF)
                return blame(c, i, err, "log level %d is out of range", (int)lvl);
        } else if (d->type != KT_BOOL) {
            uint64_t x = load_uint(field, d->width);
            if (x < d->min || x > d->max) {
                fmt_value(v, sizeof(v), d->type, x);
                fmt_value(lo, sizeof(lo), d->type, d->min);
                fmt_value(hi, sizeof(hi), d->type, d->max);
                return blame(c, i, err, "%s is out of range (%s..%s)", v, lo, hi);
            }
        }
    }
    int i_rhost = find_key("server.host"), i_rport = find_key("server.port");
    int i_mhost = find_key("mcp.host"), i_mport = find_key("mcp.port");
    int i_menabled = find_key("mcp.enabled");
    int i_uri = find_key("http.max_uri"), i_head = find_key("http.max_header_bytes");

    if (!c->rest.enabled && !c->mcp.enabled)
        return blame(c, i_menabled, err, "server and mcp are both disabled; nothing to serve");
    if (c->http.max_uri > c->http.max_header_bytes)
        return blame(c, pick_set(c, i_uri, i_head), err,
                     "http.max_uri (%u) must not exceed http.max_header_bytes (%u)",
                     c->http.max_uri, c->http.max_header_bytes);
    if (c->rest.enabled && c->mcp.enabled && c->rest.port != 0 && c->rest.port == c->mcp.port &&
        (strcasecmp(c->rest.host, c->mcp.host) == 0 || is_wildcard(c->rest.host) ||
         is_wildcard(c->mcp.host))) {
        int who = pick_set(c, pick_set(c, i_mport, i_rport), pick_set(c, i_mhost, i_rhost));
        return blame(c, who, err, "server (%s) and mcp (%s) both listen on port %u", c->rest.host,
                     c->mcp.host, c->rest.port);
    }
    return 0;
}

/* ---- JSON export ---- */

json_t *nx_config_to_json(const nx_config_t *c) {
    json_t *root = json_object();
    if (root == NULL) return NULL;
    for (int i = 0; i < NKEYS; i++) {
        const key_def_t *d = &keys[i];
        const char *field = (const char *)c + d->off;
        const char *name = d->name, *dot;
        json_t *obj = root, *v = NULL;
        char seg[64];
        while ((dot = strchr(name, '.')) != NULL) {
            size_t n = (size_t)(dot - name) < sizeof(seg) ? (size_t)(dot - name) : 0;
            memcpy(seg, name, n);
            seg[n] = '\0';
            json_t *sub = json_object_get(obj, seg);
            if (sub == NULL) {
                sub = json_object();
                if (json_object_set_new(obj, seg, sub) < 0) goto fail;
            }
            obj = sub;
            name = dot + 1;
        }
        switch (d->type) {
        case KT_HOST:
        case KT_HOSTS:
            v = json_stringn(field, strnlen(field, d->width));
            break;
        case KT_BOOL:
            v = json_boolean(*(const bool *)field);
            break;
        case KT_LEVEL: {
            unsigned lvl = (unsigned)*(const nx_log_level_t *)field;
            v = json_string(lvl < 5 ? level_names[lvl] : "info");
            break;
        }
        default:
            v = json_integer((json_int_t)load_uint(field, d->width));
            break;
        }
        if (json_object_set_new(obj, name, v) < 0) goto fail;
    }
    return root;
fail:
    json_decref(root);
    return NULL;
}

/* ---- typed readers for later sections ---- */

static int read_scalar(const nx_cfg_node_t *n, key_type_t t, nx_config_error_t *err) {
    char got[64];
    if (n->kind == NX_CFG_SCALAR && !nx_cfg_is_null(n)) return 0;
    got_node(got, sizeof(got), n);
    return nx_cfg_fail(err, n, "%s, got %s", expect_phrase(t), got);
}

int nx_cfg_read_string(const nx_cfg_node_t *n, char *out, size_t outlen, nx_config_error_t *err) {
    char got[64];
    if (n->kind != NX_CFG_SCALAR || nx_cfg_is_null(n)) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(err, n, "expected a string, got %s", got);
    }
    if (strlen(n->text) != n->len) return nx_cfg_fail(err, n, "contains a NUL character");
    if (n->len >= outlen)
        return nx_cfg_fail(err, n, "is longer than %zu characters", outlen ? outlen - 1 : 0);
    memcpy(out, n->text, n->len + 1);
    return 0;
}

int nx_cfg_read_uint(const nx_cfg_node_t *n, uint64_t min, uint64_t max, uint64_t *out,
                     nx_config_error_t *err) {
    char msg[sizeof(err->message)];
    int rc = read_scalar(n, KT_UINT, err);
    if (rc == 0 && parse_uint(KT_UINT, n->text, n->len, min, max, out, msg, sizeof(msg)) < 0)
        rc = nx_cfg_fail(err, n, "%s", msg);
    return rc;
}

int nx_cfg_read_bool(const nx_cfg_node_t *n, bool *out, nx_config_error_t *err) {
    char msg[sizeof(err->message)];
    int rc = read_scalar(n, KT_BOOL, err);
    if (rc == 0 && parse_bool(n->text, n->len, out, msg, sizeof(msg)) < 0)
        rc = nx_cfg_fail(err, n, "%s", msg);
    return rc;
}

static int read_scaled(const nx_cfg_node_t *n, key_type_t t, uint64_t min, uint64_t max,
                       uint64_t *out, nx_config_error_t *err) {
    char msg[sizeof(err->message)];
    uint64_t v;
    int rc = read_scalar(n, t, err);
    if (rc != 0) return rc;
    int bad = t == KT_DURATION ? parse_duration(n->text, n->len, &v, msg, sizeof(msg))
                               : parse_size(n->text, n->len, &v, msg, sizeof(msg));
    if (bad < 0 || range_check(t, n->text, n->len, v, min, max, msg, sizeof(msg)) < 0)
        return nx_cfg_fail(err, n, "%s", msg);
    *out = v;
    return 0;
}

int nx_cfg_read_duration(const nx_cfg_node_t *n, uint64_t min_ms, uint64_t max_ms, uint64_t *out_ms,
                         nx_config_error_t *err) {
    return read_scaled(n, KT_DURATION, min_ms, max_ms, out_ms, err);
}

int nx_cfg_read_size(const nx_cfg_node_t *n, uint64_t min, uint64_t max, uint64_t *out,
                     nx_config_error_t *err) {
    return read_scaled(n, KT_SIZE, min, max, out, err);
}

int nx_cfg_check_keys(const nx_cfg_node_t *map, const char *const *known, size_t nknown,
                      nx_config_error_t *err) {
    char msg[sizeof(err->message)], got[64];
    if (map->kind != NX_CFG_MAPPING) {
        got_node(got, sizeof(got), map);
        return nx_cfg_fail(err, map, "expected a mapping, got %s", got);
    }
    for (size_t i = 0; i < map->count; i++) {
        const nx_cfg_node_t *v = map->items[i];
        bool ok = false;
        for (size_t k = 0; k < nknown && !ok; k++)
            ok = strcmp(known[k], v->key) == 0;
        if (ok) continue;
        suggest_t sg;
        suggest_init(&sg, v->key);
        for (size_t k = 0; k < nknown; k++)
            suggest_try(&sg, known[k], strlen(known[k]));
        unknown_msg(msg, sizeof(msg), &sg);
        return nx_cfg_fail_key(err, v, "%s", msg);
    }
    return 0;
}
