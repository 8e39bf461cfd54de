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
#include "workflow.h"

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

typedef nx_cfg_suggest_t suggest_t;

void nx_cfg_suggest_init(nx_cfg_suggest_t *sg, const char *word) {
    sg->word = word;
    sg->best_d = SIZE_MAX;
    sg->best[0] = '\0';
}
#define suggest_init nx_cfg_suggest_init
#define suggest_try nx_cfg_suggest_try

void nx_cfg_suggest_try(nx_cfg_suggest_t *sg, const char *cand, size_t n) {
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
    KT_SEP,    /* federation.separator */
    KT_CHOICE, /* one of the words in key_def_t.choices ("a|b|c"), stored as its index */
    KT_REDIS,  /* a redis:// URL or "" */
    KT_PREFIX, /* 0..64 printable characters without spaces */
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
    case KT_SEP:
        return "expected 1 to 8 of the characters A-Z a-z 0-9 _ . -";
    case KT_CHOICE:
        return "expected one of the listed words";
    case KT_REDIS:
        return "expected redis://[:password@]host[:port][/db] or \"\"";
    case KT_PREFIX:
        return "expected up to 64 printable characters without spaces";
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

/* The federation separator: 1 to 8 of [A-Za-z0-9_.-], so a prefixed tool name stays a valid
 * MCP tool name. */
static int parse_sep(const char *s, size_t n, char *out, size_t outcap, char *msg, size_t cap) {
    char got[64];
    bool ok = n >= 1 && n <= 8 && n < outcap;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)s[i]) || strchr("_.-", s[i]) != NULL;
    if (!ok || s[0] == '\0') {
        got_text(got, sizeof(got), s, n);
        msgf(msg, cap, "%s, got %s", expect_phrase(KT_SEP), got);
        return -1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* ---- the table of known keys ----
 * Every scalar key is one row: its dotted name, how its text converts, where it lives in
 * nx_config_t and its range. The file walker, nx_config_set, the environment, validation and
 * nx_config_to_json all read this table, so a new scalar key is one row (plus the field, the
 * default and NX_CONFIG_NKEYS). Sections holding sequences (servers:, workflows:) are parsed
 * from the nx_cfg_node_t tree with nx_cfg_check_keys and the nx_cfg_read_* readers, dispatched
 * from apply_mapping before the unknown-key check, and dropped from future_sections. */

/* One of the words of <choices> ("a|b|c"), stored as its index. */
static int parse_choice(const char *choices, const char *s, size_t n, uint32_t *out, char *msg,
                        size_t cap) {
    uint32_t i = 0;
    for (const char *w = choices; *w != '\0'; i++) {
        const char *end = strchr(w, '|');
        size_t len = end ? (size_t)(end - w) : strlen(w);
        if (len == n && strncasecmp(w, s, n) == 0) {
            *out = i;
            return 0;
        }
        if (end == NULL) break;
        w = end + 1;
    }
    char list[96];
    snprintf(list, sizeof(list), "%s", choices);
    for (char *p = list; *p; p++)
        if (*p == '|') *p = '/';
    snprintf(msg, cap, "'%.*s' is not one of %s", (int)(n > 64 ? 64 : n), s, list);
    return -1;
}

int nx_config_parse_redis_url(const char *url, char *host, uint16_t *port, char *password,
                              uint32_t *db, char *msg, size_t msglen) {
    static const char scheme[] = "redis://";
    host[0] = password[0] = '\0';
    *port = 6379;
    *db = 0;
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        snprintf(msg, msglen, "must start with redis:// (rediss:// is not supported yet)");
        return -1;
    }
    const char *p = url + sizeof(scheme) - 1;
    const char *at = strrchr(p, '@');
    if (at != NULL) {
        const char *cred = p;
        const char *colon = memchr(cred, ':', (size_t)(at - cred));
        const char *pw = colon ? colon + 1 : cred;
        size_t len = (size_t)(at - pw);
        if (len == 0 || len > 255) {
            snprintf(msg, msglen, "the password must be 1..255 characters");
            return -1;
        }
        memcpy(password, pw, len);
        password[len] = '\0';
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hend = slash ? slash : p + strlen(p);
    const char *colon = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(hend - p));
        if (close == NULL) {
            snprintf(msg, msglen, "unclosed [ in the host");
            return -1;
        }
        memcpy(host, p + 1, (size_t)(close - p - 1));
        host[close - p - 1] = '\0';
        colon = close + 1 < hend && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(hend - p));
        const char *e = colon ? colon : hend;
        if (e - p > 255) {
            snprintf(msg, msglen, "the host is too long");
            return -1;
        }
        memcpy(host, p, (size_t)(e - p));
        host[e - p] = '\0';
    }
    if (host[0] == '\0') {
        snprintf(msg, msglen, "the host is missing");
        return -1;
    }
    if (colon != NULL) {
        char *end;
        unsigned long v = strtoul(colon + 1, &end, 10);
        if (end != hend || colon + 1 == hend || v == 0 || v > 65535) {
            snprintf(msg, msglen, "the port must be 1..65535");
            return -1;
        }
        *port = (uint16_t)v;
    }
    if (slash != NULL && slash[1] != '\0') {
        char *end;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || v > 255) {
            snprintf(msg, msglen, "the database must be a number 0..255");
            return -1;
        }
        *db = (uint32_t)v;
    }
    return 0;
}

static int parse_redis(const char *s, size_t n, char *out, size_t outcap, char *msg, size_t cap) {
    if (n == 0) {
        out[0] = '\0';
        return 0;
    }
    if (n >= outcap) {
        snprintf(msg, cap, "the URL is longer than %zu bytes", outcap - 1);
        return -1;
    }
    char url[512], host[256], password[256];
    memcpy(url, s, n);
    url[n] = '\0';
    uint16_t port;
    uint32_t db;
    char why[128];
    if (strlen(url) != n ||
        nx_config_parse_redis_url(url, host, &port, password, &db, why, sizeof(why)) < 0) {
        snprintf(msg, cap, "bad Redis URL: %s", strlen(url) != n ? "NUL byte" : why);
        return -1;
    }
    memcpy(out, url, n + 1);
    return 0;
}

static int parse_prefix(const char *s, size_t n, char *out, size_t outcap, char *msg, size_t cap) {
    if (n >= outcap) {
        snprintf(msg, cap, "longer than %zu characters", outcap - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f) {
            snprintf(msg, cap, "only printable characters without spaces");
            return -1;
        }
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

typedef struct key_def {
    const char *name; /* dotted */
    key_type_t type;
    size_t off, width;
    uint64_t min, max;
    const char *choices; /* KT_CHOICE: "lru|clock" */
} key_def_t;

#define FIELD(m) offsetof(nx_config_t, m), sizeof(((nx_config_t *)0)->m)

static const key_def_t keys[] = {
    {"server.host", KT_HOST, FIELD(rest.host), 0, 0, NULL},
    {"server.port", KT_PORT, FIELD(rest.port), 0, 65535, NULL},
    {"server.shards", KT_UINT, FIELD(shards), 0, 256, NULL},
    {"mcp.host", KT_HOST, FIELD(mcp.host), 0, 0, NULL},
    {"mcp.port", KT_PORT, FIELD(mcp.port), 0, 65535, NULL},
    {"mcp.enabled", KT_BOOL, FIELD(mcp.enabled), 0, 0, NULL},
    {"mcp.max_sessions", KT_UINT, FIELD(mcp_limits.max_sessions), 1, 1u << 24, NULL},
    {"mcp.session_idle_timeout", KT_DURATION, FIELD(mcp_limits.session_idle_timeout_ms), 1000,
     NX_MAX_DURATION_MS, NULL},
    {"mcp.session_evict_idle", KT_DURATION, FIELD(mcp_limits.session_evict_idle_ms), 0,
     NX_MAX_DURATION_MS, NULL},
    {"mcp.ws_ping_interval", KT_DURATION, FIELD(mcp_limits.ws_ping_interval_ms), 0,
     NX_MAX_DURATION_MS, NULL},
    {"mcp.ws_pong_timeout", KT_DURATION, FIELD(mcp_limits.ws_pong_timeout_ms), 1,
     NX_MAX_DURATION_MS, NULL},
    {"mcp.max_message", KT_SIZE, FIELD(mcp_limits.max_message), 1024, 1u << 30, NULL},
    {"mcp.allowed_hosts", KT_HOSTS, FIELD(mcp_limits.allowed_hosts), 0, 0, NULL},
    {"mcp.stream_buffer", KT_UINT, FIELD(mcp_limits.stream_buffer), 1, 1u << 20, NULL},
    {"log.level", KT_LEVEL, FIELD(log_level), 0, 0, NULL},
    {"log.access", KT_BOOL, FIELD(access_log), 0, 0, NULL},
    {"http.max_header_bytes", KT_SIZE, FIELD(http.max_header_bytes), 256, 1u << 20, NULL},
    {"http.max_headers", KT_UINT, FIELD(http.max_headers), 1, 128, NULL},
    {"http.max_uri", KT_SIZE, FIELD(http.max_uri), 16, 1u << 20, NULL},
    {"http.max_body", KT_SIZE, FIELD(http.max_body), 0, 1ull << 40, NULL},
    {"http.header_timeout", KT_DURATION, FIELD(http.header_timeout_ms), 1, NX_MAX_DURATION_MS,
     NULL},
    {"http.body_timeout", KT_DURATION, FIELD(http.body_timeout_ms), 1, NX_MAX_DURATION_MS, NULL},
    {"http.keepalive_timeout", KT_DURATION, FIELD(http.keepalive_timeout_ms), 0, NX_MAX_DURATION_MS,
     NULL},
    {"http.max_connections", KT_UINT, FIELD(http.max_connections), 1, 1u << 24, NULL},
    {"shutdown.grace", KT_DURATION, FIELD(drain_timeout_ms), 0, NX_MAX_DURATION_MS, NULL},
    {"debug_routes", KT_BOOL, FIELD(debug_routes), 0, 0, NULL},
    {"federation.separator", KT_SEP, FIELD(servers.separator), 0, 0, NULL},
    {"federation.list_budget", KT_DURATION, FIELD(servers.list_budget_ms), 1, NX_MAX_DURATION_MS,
     NULL},
    {"cache.enabled", KT_BOOL, FIELD(cache.enabled), 0, 0, NULL},
    {"cache.max_bytes", KT_SIZE, FIELD(cache.max_bytes), 1, 1ull << 40, NULL},
    {"cache.max_entry", KT_SIZE, FIELD(cache.max_entry), 1, 1u << 30, NULL},
    {"cache.eviction", KT_CHOICE, FIELD(cache.eviction), 0, 1, "lru|clock"},
    {"cache.stale_grace", KT_DURATION, FIELD(cache.stale_grace_ms), 0, NX_MAX_DURATION_MS, NULL},
    {"cache.compression", KT_CHOICE, FIELD(cache.compression), 0, 2, "none|lz4|zstd"},
    {"cache.compress_min", KT_SIZE, FIELD(cache.compress_min), 0, 1u << 30, NULL},
    {"cache.redis", KT_REDIS, FIELD(cache.redis), 0, 0, NULL},
    {"cache.redis_timeout", KT_DURATION, FIELD(cache.redis_timeout_ms), 1, 60000, NULL},
    {"cache.redis_connect_timeout", KT_DURATION, FIELD(cache.redis_connect_timeout_ms), 1, 60000,
     NULL},
    {"cache.redis_prefix", KT_PREFIX, FIELD(cache.redis_prefix), 0, 0, NULL},
    {"cache.default_ttl", KT_DURATION, FIELD(cache.default_ttl_ms), 0, 7u * 24u * 3600u * 1000u,
     NULL},
    {"cache.cache_errors", KT_BOOL, FIELD(cache.cache_errors), 0, 0, NULL},
    {"executions.max_stored", KT_UINT, FIELD(executions_max), 1, 10000000, NULL},
    {"executions.keep", KT_DURATION, FIELD(executions_keep_ms), 1000, 30u * 24u * 3600u * 1000u,
     NULL},
};
#define NKEYS ((int)(sizeof(keys) / sizeof(keys[0])))
_Static_assert(sizeof(keys) / sizeof(keys[0]) == NX_CONFIG_NKEYS, "update NX_CONFIG_NKEYS");

/* Sections later versions add; named so the error says so instead of guessing a typo. */
static const char *const future_sections[] = {"auth", "sessions", "rate_limits", NULL};

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
    case KT_SEP:
        return parse_sep(s, n, field, d->width, msg, cap);
    case KT_CHOICE:
        return parse_choice(d->choices, s, n, (uint32_t *)field, msg, cap);
    case KT_REDIS:
        return parse_redis(s, n, field, d->width, msg, cap);
    case KT_PREFIX:
        return parse_prefix(s, n, field, d->width, msg, cap);
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
    snprintf(c->servers.separator, sizeof(c->servers.separator), "__");
    c->servers.list_budget_ms = 2000;
    c->cache = (nx_cache_settings_t){
        .enabled = true,
        .max_bytes = 64u << 20,
        .max_entry = 1u << 20,
        .eviction = 0,
        .stale_grace_ms = 60000,
        .compression = 1,
        .compress_min = 1024,
        .redis_timeout_ms = 250,
        .redis_connect_timeout_ms = 1000,
    };
    snprintf(c->cache.redis_prefix, sizeof(c->cache.redis_prefix), "nexus:");
    c->executions_max = 10000;
    c->executions_keep_ms = 3600000;
}

/* ---- servers: and federation ----
 * servers: is a sequence, so it is walked from the document tree instead of the key table.
 * Each entry is checked whole (required keys, keys of another transport, ranges, pairs that
 * must be ordered) and every error names the entry's path, e.g. servers[1].retry.base. The
 * federation.* keys are ordinary rows of the key table. */

#define NX_SERVER_LIST_MAX 1024    /* args, env entries */
#define NX_SERVER_STRING_MAX 65536 /* one argument or environment value */
#define NX_SERVER_HEADERS_MAX 64   /* extra request headers */
#define NX_SERVER_HEADER_MAX 8192  /* one header value */
#define NX_SERVER_URL_MAX 2047     /* one replica URL */

#define T_STDIO (1u << NX_SERVER_STDIO)
#define T_NET                                                                                      \
    ((1u << NX_SERVER_HTTP) | (1u << NX_SERVER_SSE) | (1u << NX_SERVER_WS) | (1u << NX_SERVER_REST))
#define T_HTTP_GET ((1u << NX_SERVER_HTTP) | (1u << NX_SERVER_REST))
#define T_ALL (T_STDIO | T_NET)

static const char *const transport_names[] = {"stdio", "http", "sse", "ws", "rest"};
static const char *const balance_names[] = {"round_robin", "least_outstanding"};

const char *nx_server_transport_name(nx_server_transport_t t) {
    return (unsigned)t < sizeof(transport_names) / sizeof(transport_names[0]) ? transport_names[t]
                                                                              : "unknown";
}

/* The keys of one entry and the transports each is meant for. */
static const struct {
    const char *key;
    unsigned transports;
} entry_keys[] = {
    {"name", T_ALL},       {"transport", T_ALL}, {"command", T_STDIO},   {"args", T_STDIO},
    {"env", T_STDIO},      {"cwd", T_STDIO},     {"instances", T_STDIO}, {"restart", T_ALL},
    {"shutdown", T_STDIO}, {"url", T_NET},       {"urls", T_NET},        {"balance", T_ALL},
    {"headers", T_NET},    {"pool", T_NET},      {"prefix", T_ALL},      {"enabled", T_ALL},
    {"timeouts", T_ALL},   {"retry", T_ALL},     {"breaker", T_ALL},     {"bulkhead", T_ALL},
    {"health", T_ALL},     {"cache", T_ALL},
};
#define NENTRY_KEYS (sizeof(entry_keys) / sizeof(entry_keys[0]))

static const char *scope_phrase(unsigned mask) {
    if (mask == T_STDIO) return "only for transport stdio";
    if (mask == T_NET) return "only for transports http, sse, ws and rest";
    return "only for transports http and rest (sse and ws backends are checked with an MCP "
           "ping)";
}

/* The scalar keys of the sub-mappings (timeouts:, retry:, ...), as offsets into an entry. */
typedef enum sfield_type { SF_DURATION, SF_UINT, SF_BOOL } sfield_type_t;

typedef struct sfield {
    const char *key;
    sfield_type_t type;
    size_t off, width;
    uint64_t min, max;
} sfield_t;

#define SFIELD(m) offsetof(nx_server_config_t, m), sizeof(((nx_server_config_t *)0)->m)
#define D_MAX NX_MAX_DURATION_MS

static const sfield_t timeouts_fields[] = {
    {"connect", SF_DURATION, SFIELD(timeouts.connect_ms), 1, D_MAX},
    {"call", SF_DURATION, SFIELD(timeouts.call_ms), 1, D_MAX},
    {"deadline", SF_DURATION, SFIELD(timeouts.deadline_ms), 1, D_MAX},
};
static const sfield_t retry_fields[] = {
    {"attempts", SF_UINT, SFIELD(retry.attempts), 1, 10},
    {"base", SF_DURATION, SFIELD(retry.base_ms), 1, D_MAX},
    {"cap", SF_DURATION, SFIELD(retry.cap_ms), 1, D_MAX},
    {"budget_percent", SF_UINT, SFIELD(retry.budget_percent), 0, 100},
    {"min_retries", SF_UINT, SFIELD(retry.min_retries), 0, 1000000},
};
static const sfield_t breaker_fields[] = {
    {"enabled", SF_BOOL, SFIELD(breaker.enabled), 0, 0},
    {"window", SF_UINT, SFIELD(breaker.window), 1, 1024},
    {"failure_rate", SF_UINT, SFIELD(breaker.failure_rate), 1, 100},
    {"slow_call", SF_DURATION, SFIELD(breaker.slow_call_ms), 0, D_MAX},
    {"slow_call_rate", SF_UINT, SFIELD(breaker.slow_call_rate), 1, 100},
    {"minimum_calls", SF_UINT, SFIELD(breaker.minimum_calls), 1, 1024},
    {"open_for", SF_DURATION, SFIELD(breaker.open_ms), 1, D_MAX},
    {"half_open_calls", SF_UINT, SFIELD(breaker.half_open_calls), 1, 63},
    {"probe_timeout", SF_DURATION, SFIELD(breaker.probe_timeout_ms), 1, D_MAX},
};
static const sfield_t bulkhead_fields[] = {
    {"max_concurrent", SF_UINT, SFIELD(max_concurrent), 1, 1000000},
};
static const sfield_t pool_fields[] = {
    {"max_connections", SF_UINT, SFIELD(pool.max_connections), 1, 100000},
    {"max_idle", SF_UINT, SFIELD(pool.max_idle), 0, 100000},
    {"idle_timeout", SF_DURATION, SFIELD(pool.idle_timeout_ms), 1, D_MAX},
    {"max_requests", SF_UINT, SFIELD(pool.max_requests), 0, UINT32_MAX},
};
static const sfield_t health_fields[] = {
    {"enabled", SF_BOOL, SFIELD(health.enabled), 0, 0},
    {"interval", SF_DURATION, SFIELD(health.interval_ms), 10, D_MAX},
    {"timeout", SF_DURATION, SFIELD(health.timeout_ms), 1, D_MAX},
    {"healthy_after", SF_UINT, SFIELD(health.healthy_after), 1, 1000},
    {"unhealthy_after", SF_UINT, SFIELD(health.unhealthy_after), 1, 1000},
    {"eject_after", SF_UINT, SFIELD(health.eject_after), 0, 1000},
    {"base_ejection", SF_DURATION, SFIELD(health.base_ejection_ms), 1, D_MAX},
    {"max_ejection", SF_DURATION, SFIELD(health.max_ejection_ms), 1, D_MAX},
};
static const sfield_t restart_fields[] = {
    {"base", SF_DURATION, SFIELD(restart_base_ms), 1, D_MAX},
    {"cap", SF_DURATION, SFIELD(restart_cap_ms), 1, D_MAX},
};
static const sfield_t shutdown_fields[] = {
    {"term_after", SF_DURATION, SFIELD(shutdown_term_ms), 0, D_MAX},
    {"kill_after", SF_DURATION, SFIELD(shutdown_kill_ms), 0, D_MAX},
};

typedef struct ssection {
    const char *name;
    const sfield_t *fields;
    size_t nfields;
} ssection_t;

#define SFIELDS(a) a, sizeof(a) / sizeof(a[0])
static const ssection_t ssections[] = {
    {"timeouts", SFIELDS(timeouts_fields)}, {"retry", SFIELDS(retry_fields)},
    {"breaker", SFIELDS(breaker_fields)},   {"bulkhead", SFIELDS(bulkhead_fields)},
    {"pool", SFIELDS(pool_fields)},         {"health", SFIELDS(health_fields)},
    {"restart", SFIELDS(restart_fields)},   {"shutdown", SFIELDS(shutdown_fields)},
};
#define NSSECTIONS (sizeof(ssections) / sizeof(ssections[0]))

/* Pairs that must be ordered (lo <= hi). When only one of the two is written the other follows
 * it (call: 90s alone raises the deadline to 90s); when both are, a wrong order is an error at
 * the key named first in the message. */
static const struct {
    const char *section, *lo, *hi;
    bool blame_hi;
} spairs[] = {
    {"timeouts", "call", "deadline", true},
    {"retry", "base", "cap", false},
    {"breaker", "minimum_calls", "window", false},
    {"pool", "max_idle", "max_connections", false},
    {"health", "base_ejection", "max_ejection", false},
    {"restart", "base", "cap", false},
};

static unsigned entry_scope(const char *key) {
    for (size_t i = 0; i < NENTRY_KEYS; i++)
        if (strcmp(entry_keys[i].key, key) == 0) return entry_keys[i].transports;
    return 0;
}

static const sfield_t *find_sfield(const char *section, const char *key) {
    for (size_t i = 0; i < NSSECTIONS; i++) {
        if (strcmp(ssections[i].name, section) != 0) continue;
        for (size_t k = 0; k < ssections[i].nfields; k++)
            if (strcmp(ssections[i].fields[k].key, key) == 0) return &ssections[i].fields[k];
    }
    return NULL;
}

void nx_server_config_defaults(nx_server_config_t *s, nx_server_transport_t t) {
    memset(s, 0, sizeof(*s));
    s->transport = t;
    s->enabled = true;
    s->prefix = true;
    s->instances = 1;
    s->restart_base_ms = 1000;
    s->restart_cap_ms = 30000;
    s->shutdown_term_ms = 2000;
    s->shutdown_kill_ms = 2000;
    s->balance = NX_BALANCE_ROUND_ROBIN;
    s->pool = (nx_server_pool_t){
        .max_connections = 64, .max_idle = 16, .idle_timeout_ms = 60000, .max_requests = 0};
    s->timeouts =
        (nx_server_timeouts_t){.connect_ms = 2000, .call_ms = 30000, .deadline_ms = 60000};
    s->retry = (nx_server_retry_t){
        .attempts = 3, .base_ms = 25, .cap_ms = 250, .budget_percent = 20, .min_retries = 3};
    s->breaker = (nx_server_breaker_t){
        .enabled = true,
        .window = 20,
        .failure_rate = 50,
        .slow_call_ms = 5000,
        .slow_call_rate = 100,
        .minimum_calls = 10,
        .open_ms = 30000,
        .half_open_calls = 3,
        .probe_timeout_ms = 5000,
    };
    s->max_concurrent = 100;
    s->health = (nx_server_health_t){
        .enabled = true,
        .interval_ms = 10000,
        .timeout_ms = 2000,
        .healthy_after = 2,
        .unhealthy_after = 3,
        .eject_after = 5,
        .base_ejection_ms = 30000,
        .max_ejection_ms = 300000,
    };
    if (t == NX_SERVER_REST) snprintf(s->health.path, sizeof(s->health.path), "/health");
}

/* ---- string lists: NULL-terminated, each string malloc'd, NULL when empty ---- */

static void strv_free(char **v) {
    if (v == NULL) return;
    for (char **p = v; *p != NULL; p++)
        free(*p);
    free(v);
}

static int strv_dup(char *const *v, char ***out) {
    size_t n = 0;
    *out = NULL;
    if (v == NULL) return 0;
    while (v[n] != NULL)
        n++;
    char **d = calloc(n + 1, sizeof(*d));
    if (d == NULL) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((d[i] = strdup(v[i])) == NULL) {
            strv_free(d);
            return -ENOMEM;
        }
    }
    *out = d;
    return 0;
}

static void server_dispose(nx_server_config_t *s) {
    strv_free(s->args);
    strv_free(s->env);
    strv_free(s->urls);
    strv_free(s->headers);
    strv_free(s->cache_tools);
    free(s->endpoints);
    s->cache_tools = NULL;
    s->args = s->env = s->urls = s->headers = NULL;
    s->endpoints = NULL;
    s->url_count = 0;
}

static void servers_free(nx_server_config_t *items, size_t n) {
    for (size_t i = 0; items != NULL && i < n; i++)
        server_dispose(&items[i]);
    free(items);
}

void nx_config_dispose(nx_config_t *c) {
    if (c == NULL) return;
    servers_free(c->servers.items, c->servers.count);
    c->servers.items = NULL;
    c->servers.count = 0;
    nx_workflows_unref(c->workflows);
    c->workflows = NULL;
}

int nx_config_copy(nx_config_t *dst, const nx_config_t *src) {
    const nx_servers_config_t *sv = &src->servers;
    *dst = *src;
    dst->servers.items = NULL;
    dst->servers.count = 0;
    dst->workflows = NULL; /* referenced only once the copy cannot fail */
    if (sv->count == 0) {
        dst->workflows = nx_workflows_ref(src->workflows);
        return 0;
    }
    nx_server_config_t *items = calloc(sv->count, sizeof(*items));
    if (items == NULL) return -ENOMEM;
    for (size_t i = 0; i < sv->count; i++) {
        const nx_server_config_t *s = &sv->items[i];
        nx_server_config_t *d = &items[i];
        *d = *s;
        d->args = d->env = d->urls = d->headers = d->cache_tools = NULL;
        d->endpoints = NULL;
        if (strv_dup(s->args, &d->args) < 0 || strv_dup(s->env, &d->env) < 0 ||
            strv_dup(s->urls, &d->urls) < 0 || strv_dup(s->headers, &d->headers) < 0 ||
            strv_dup(s->cache_tools, &d->cache_tools) < 0)
            goto fail;
        if (s->url_count > 0) {
            d->endpoints = malloc(s->url_count * sizeof(*d->endpoints));
            if (d->endpoints == NULL) goto fail;
            memcpy(d->endpoints, s->endpoints, s->url_count * sizeof(*d->endpoints));
        }
        continue;
    fail:
        servers_free(items, i + 1);
        return -ENOMEM;
    }
    dst->servers.items = items;
    dst->servers.count = sv->count;
    dst->workflows = nx_workflows_ref(src->workflows);
    return 0;
}

const nx_server_config_t *nx_config_find_server(const nx_config_t *c, const char *name) {
    for (size_t i = 0; i < c->servers.count; i++)
        if (strcmp(c->servers.items[i].name, name) == 0) return &c->servers.items[i];
    return NULL;
}

/* ---- URLs ---- */

static bool host_char(unsigned char ch) {
    return isalnum(ch) || ch == '.' || ch == '-' || ch == '_';
}

int nx_config_parse_url(const char *url, size_t len, nx_server_transport_t t,
                        nx_server_endpoint_t *out, char *msg, size_t cap) {
    char got[64];
    const char *want = t == NX_SERVER_WS ? "ws" : "http";
    size_t wlen = strlen(want);
    got_text(got, sizeof(got), url, len);
    if (t == NX_SERVER_STDIO) {
        msgf(msg, cap, "transport stdio takes a command, not a URL");
        return NX_ECONFIG;
    }
    if (len > NX_SERVER_URL_MAX) {
        msgf(msg, cap, "the URL is longer than %u characters", NX_SERVER_URL_MAX);
        return NX_ECONFIG;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            msgf(msg, cap,
                 "%s contains a space, control or non-ASCII character (percent-encode it)", got);
            return NX_ECONFIG;
        }
    }
    const char *end = url + len, *sep = NULL;
    for (const char *p = url; p + 3 <= end && sep == NULL; p++)
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') sep = p;
    if (sep == NULL || sep == url) {
        msgf(msg, cap, "%s is not a URL; expected %s://host[:port][/path]", got, want);
        return NX_ECONFIG;
    }
    size_t slen = (size_t)(sep - url);
    if (slen == wlen + 1 && strncasecmp(url, want, wlen) == 0 && (url[wlen] | 0x20) == 's') {
        msgf(msg, cap,
             "%.*s:// needs TLS, which nexus does not support yet; use %s:// (for "
             "example to a local TLS proxy)",
             (int)slen, url, want);
        return NX_ECONFIG;
    }
    if (slen != wlen || strncasecmp(url, want, wlen) != 0) {
        bool known = false;
        static const char *const schemes[] = {"http", "https", "ws", "wss", NULL};
        for (const char *const *s = schemes; *s && !known; s++)
            known = strlen(*s) == slen && strncasecmp(url, *s, slen) == 0;
        if (known)
            msgf(msg, cap, "scheme '%.*s' does not match transport %s; use %s://", (int)slen, url,
                 nx_server_transport_name(t), want);
        else
            msgf(msg, cap, "unsupported scheme '%.*s'; use %s://", (int)(slen > 40 ? 40 : slen),
                 url, want);
        return NX_ECONFIG;
    }
    const char *p = sep + 3;
    if (memchr(p, '#', (size_t)(end - p)) != NULL) {
        msgf(msg, cap, "a backend URL must not have a fragment (#...)");
        return NX_ECONFIG;
    }
    const char *auth_end = p;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?')
        auth_end++;
    if (memchr(p, '@', (size_t)(auth_end - p)) != NULL) {
        msgf(msg, cap,
             "credentials in the URL are not supported; send them with headers: "
             "(e.g. Authorization)");
        return NX_ECONFIG;
    }
    const char *host = p, *host_end, *rest;
    if (p < auth_end && *p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (close == NULL) {
            msgf(msg, cap, "'[' in %s is not closed by ']'", got);
            return NX_ECONFIG;
        }
        host = p + 1, host_end = close, rest = close + 1;
        bool colon = false, ok = host_end > host;
        for (const char *h = host; ok && h < host_end; h++) {
            ok = isxdigit((unsigned char)*h) || *h == ':' || *h == '.';
            colon |= *h == ':';
        }
        if (!ok || !colon) {
            msgf(msg, cap, "'%.*s' is not an IPv6 address", (int)(host_end - host), host);
            return NX_ECONFIG;
        }
    } else {
        host_end = p;
        while (host_end < auth_end && *host_end != ':')
            host_end++;
        rest = host_end;
        for (const char *h = host; h < host_end; h++) {
            if (!host_char((unsigned char)*h)) {
                msgf(msg, cap, "'%.*s' is not a valid host name or address",
                     (int)(host_end - host > 64 ? 64 : host_end - host), host);
                return NX_ECONFIG;
            }
        }
    }
    if (host_end == host) {
        msgf(msg, cap, "%s has no host", got);
        return NX_ECONFIG;
    }
    if ((size_t)(host_end - host) >= sizeof(out->host)) {
        msgf(msg, cap, "the host is longer than %zu characters", sizeof(out->host) - 1);
        return NX_ECONFIG;
    }
    uint64_t port = 80;
    if (rest < auth_end) {
        if (*rest != ':') {
            msgf(msg, cap, "unexpected '%.*s' after the host", (int)(auth_end - rest), rest);
            return NX_ECONFIG;
        }
        const char *ps = rest + 1;
        size_t plen = (size_t)(auth_end - ps);
        if (plen == 0) {
            msgf(msg, cap, "':' after the host must be followed by a port number");
            return NX_ECONFIG;
        }
        port = 0;
        for (size_t i = 0; i < plen; i++) {
            if (ps[i] < '0' || ps[i] > '9') {
                msgf(msg, cap, "port '%.*s' is not a number", (int)(plen > 20 ? 20 : plen), ps);
                return NX_ECONFIG;
            }
            if (port <= 65535) port = port * 10 + (uint64_t)(ps[i] - '0');
        }
        if (port == 0 || port > 65535) {
            msgf(msg, cap, "port '%.*s' is out of range (1..65535)", (int)(plen > 20 ? 20 : plen),
                 ps);
            return NX_ECONFIG;
        }
    }
    memcpy(out->host, host, (size_t)(host_end - host));
    out->host[host_end - host] = '\0';
    out->port = (uint16_t)port;
    size_t path_len = (size_t)(end - auth_end);
    size_t o = 0;
    if (path_len == 0 || *auth_end == '?') out->path[o++] = '/';
    memcpy(out->path + o, auth_end, path_len);
    out->path[o + path_len] = '\0';
    return 0;
}

/* ---- one entry ---- */

/* Checks that scalar <n> is a string without NULs of at most <max> bytes and points *<text> at
 * it (borrowed from the tree). */
static int node_text(const nx_cfg_node_t *n, size_t max, const char **text, size_t *len,
                     nx_config_error_t *err) {
    char got[64];
    if (n->kind != NX_CFG_SCALAR || nx_cfg_is_null(n)) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(err, n, "expected a string, got %s", got);
    }
    if (strlen(n->text) != n->len) return nx_cfg_fail(err, n, "contains a NUL character");
    if (n->len > max) return nx_cfg_fail(err, n, "is longer than %zu characters", max);
    *text = n->text;
    *len = n->len;
    return 0;
}

static int read_nonempty(const nx_cfg_node_t *n, char *out, size_t cap, nx_config_error_t *err) {
    int rc = nx_cfg_read_string(n, out, cap, err);
    if (rc == 0 && out[0] == '\0') return nx_cfg_fail(err, n, "must not be empty");
    return rc;
}

/* Reads sequence <n> of strings into a new list (NULL when empty). */
static int read_strv(const nx_cfg_node_t *n, char ***out, nx_config_error_t *err) {
    char got[64];
    *out = NULL;
    if (nx_cfg_is_null(n)) return 0;
    if (n->kind != NX_CFG_SEQUENCE) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(err, n, "expected a sequence of strings, got %s", got);
    }
    if (n->count > NX_SERVER_LIST_MAX)
        return nx_cfg_fail(err, n, "has more than %d entries", NX_SERVER_LIST_MAX);
    if (n->count == 0) return 0;
    char **v = calloc(n->count + 1, sizeof(*v));
    if (v == NULL) return nx_cfg_fail(err, n, "out of memory");
    for (size_t i = 0; i < n->count; i++) {
        const char *text;
        size_t len;
        int rc = node_text(n->items[i], NX_SERVER_STRING_MAX, &text, &len, err);
        if (rc == 0 && (v[i] = strdup(text)) == NULL) rc = nx_cfg_fail(err, n, "out of memory");
        if (rc != 0) {
            strv_free(v);
            return rc;
        }
    }
    *out = v;
    return 0;
}

static bool env_name_ok(const char *k) {
    if (!(isalpha((unsigned char)k[0]) || k[0] == '_')) return false;
    for (const char *p = k; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_')) return false;
    return true;
}

static bool is_tchar(unsigned char ch) {
    return isalnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Header fields nexus writes itself: a configured value would break framing or the session. */
static bool header_managed(const char *name) {
    static const char *const managed[] = {"content-length",
                                          "transfer-encoding",
                                          "connection",
                                          "upgrade",
                                          "keep-alive",
                                          "te",
                                          "trailer",
                                          "mcp-session-id",
                                          "mcp-protocol-version",
                                          NULL};
    for (const char *const *m = managed; *m; m++)
        if (strcasecmp(name, *m) == 0) return true;
    return strncasecmp(name, "sec-websocket-", 14) == 0;
}

/* Reads mapping <n> of strings into a list of "<key><sep><value>" (env: "=", headers: ": "). */
static int read_strmap(const nx_cfg_node_t *n, bool headers, char ***out, nx_config_error_t *err) {
    char got[64];
    size_t max = headers ? NX_SERVER_HEADERS_MAX : NX_SERVER_LIST_MAX;
    *out = NULL;
    if (nx_cfg_is_null(n)) return 0;
    if (n->kind != NX_CFG_MAPPING) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(err, n, "expected a mapping of %s, got %s",
                           headers ? "header names to values" : "variable names to values", got);
    }
    if (n->count > max) return nx_cfg_fail(err, n, "has more than %zu entries", max);
    if (n->count == 0) return 0;
    char **v = calloc(n->count + 1, sizeof(*v));
    if (v == NULL) return nx_cfg_fail(err, n, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < n->count && rc == 0; i++) {
        const nx_cfg_node_t *e = n->items[i];
        const char *k = e->key, *text;
        size_t len;
        quote(got, sizeof(got), k, strlen(k));
        if (headers) {
            bool ok = k[0] != '\0';
            for (const char *p = k; ok && *p; p++)
                ok = is_tchar((unsigned char)*p);
            if (!ok) {
                rc = nx_cfg_fail_key(err, e, "%s is not a valid HTTP header name", got);
                break;
            }
            if (header_managed(k)) {
                rc = nx_cfg_fail_key(err, e, "%s is set by nexus itself and cannot be configured",
                                     got);
                break;
            }
            for (size_t j = 0; j < i; j++) {
                if (strcasecmp(n->items[j]->key, k) == 0) {
                    rc = nx_cfg_fail_key(err, e, "%s repeats '%s' (header names ignore case)", got,
                                         n->items[j]->key);
                    break;
                }
            }
            if (rc != 0) break;
        } else if (!env_name_ok(k)) {
            rc = nx_cfg_fail_key(err, e,
                                 "%s is not a valid environment variable name "
                                 "([A-Za-z_][A-Za-z0-9_]*)",
                                 got);
            break;
        }
        rc = node_text(e, headers ? NX_SERVER_HEADER_MAX : NX_SERVER_STRING_MAX, &text, &len, err);
        for (size_t j = 0; rc == 0 && headers && j < len; j++) {
            unsigned char ch = (unsigned char)text[j];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                rc = nx_cfg_fail(err, e, "a header value must not contain control characters");
        }
        if (rc != 0) break;
        size_t need = strlen(k) + len + 3;
        if ((v[i] = malloc(need)) == NULL) {
            rc = nx_cfg_fail(err, e, "out of memory");
            break;
        }
        snprintf(v[i], need, "%s%s%s", k, headers ? ": " : "=", text);
    }
    if (rc != 0) {
        strv_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* Reads a word of <words> (exact spelling) at <n> into *<out>. */
static int read_choice(const nx_cfg_node_t *n, const char *const *words, size_t nwords,
                       const char *expected, unsigned *out, nx_config_error_t *err) {
    char got[64];
    if (n->kind == NX_CFG_SCALAR && !nx_cfg_is_null(n)) {
        for (size_t i = 0; i < nwords; i++) {
            if (strlen(words[i]) == n->len && memcmp(words[i], n->text, n->len) == 0) {
                *out = (unsigned)i;
                return 0;
            }
        }
    }
    got_node(got, sizeof(got), n);
    return nx_cfg_fail(err, n, "expected %s, got %s", expected, got);
}

static bool server_name_ok(const char *s, size_t n) {
    if (n == 0 || n > NX_SERVER_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '-'))
            return false;
    return true;
}

static int read_urls(nx_server_config_t *s, const nx_cfg_node_t *item, nx_config_error_t *err) {
    const nx_cfg_node_t *one = nx_cfg_get(item, "url"), *many = nx_cfg_get(item, "urls");
    char got[64];
    if (one != NULL && many != NULL) return nx_cfg_fail_key(err, many, "set url or urls, not both");
    if (one == NULL && many == NULL)
        return nx_cfg_fail(err, item, "missing required key 'url' (or 'urls') for transport %s",
                           nx_server_transport_name(s->transport));
    size_t n = 1;
    if (many != NULL) {
        if (many->kind != NX_CFG_SEQUENCE) {
            got_node(got, sizeof(got), many);
            return nx_cfg_fail(err, many, "expected a sequence of URLs, got %s", got);
        }
        n = many->count;
        if (n == 0 || n > NX_SERVER_REPLICAS_MAX)
            return nx_cfg_fail(err, many, "expected 1 to %d URLs, got %zu", NX_SERVER_REPLICAS_MAX,
                               n);
    }
    s->urls = calloc(n + 1, sizeof(*s->urls));
    s->endpoints = calloc(n, sizeof(*s->endpoints));
    if (s->urls == NULL || s->endpoints == NULL) return nx_cfg_fail(err, item, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const nx_cfg_node_t *u = many ? many->items[i] : one;
        char msg[sizeof(err->message)];
        const char *text;
        size_t len;
        int rc = node_text(u, NX_SERVER_URL_MAX, &text, &len, err);
        if (rc != 0) return rc;
        if (nx_config_parse_url(text, len, s->transport, &s->endpoints[i], msg, sizeof(msg)) != 0)
            return nx_cfg_fail(err, u, "%s", msg);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->urls[j], text) == 0) return nx_cfg_fail(err, u, "repeats urls[%zu]", j);
        if ((s->urls[i] = strdup(text)) == NULL) return nx_cfg_fail(err, u, "out of memory");
        s->url_count = i + 1;
    }
    return 0;
}

static int read_sfield(nx_server_config_t *s, const sfield_t *f, const nx_cfg_node_t *n,
                       nx_config_error_t *err) {
    uint64_t v = 0;
    int rc;
    char *field = (char *)s + f->off;
    switch (f->type) {
    case SF_BOOL:
        return nx_cfg_read_bool(n, (bool *)field, err);
    case SF_UINT:
        rc = nx_cfg_read_uint(n, f->min, f->max, &v, err);
        break;
    default:
        rc = nx_cfg_read_duration(n, f->min, f->max, &v, err);
        break;
    }
    if (rc == 0) store_uint(field, f->width, v);
    return rc;
}

static int read_section(nx_server_config_t *s, const ssection_t *sec, const nx_cfg_node_t *n,
                        nx_config_error_t *err) {
    const char *known[16];
    size_t nknown = 0;
    bool health = strcmp(sec->name, "health") == 0;
    if (nx_cfg_is_null(n)) return 0; /* "retry:" with every key commented out */
    for (size_t k = 0; k < sec->nfields; k++)
        known[nknown++] = sec->fields[k].key;
    if (health) known[nknown++] = "path";
    int rc = nx_cfg_check_keys(n, known, nknown, err);
    for (size_t k = 0; rc == 0 && k < sec->nfields; k++) {
        const nx_cfg_node_t *v = nx_cfg_get(n, sec->fields[k].key);
        if (v != NULL) rc = read_sfield(s, &sec->fields[k], v, err);
    }
    const nx_cfg_node_t *path = health ? nx_cfg_get(n, "path") : NULL;
    if (rc == 0 && path != NULL) {
        if (!((1u << s->transport) & T_HTTP_GET))
            return nx_cfg_fail_key(err, path, "%s (this server uses %s)", scope_phrase(T_HTTP_GET),
                                   nx_server_transport_name(s->transport));
        rc = read_nonempty(path, s->health.path, sizeof(s->health.path), err);
        for (const char *p = s->health.path; rc == 0 && *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                rc = nx_cfg_fail(err, path,
                                 "contains a space, control or non-ASCII character "
                                 "(percent-encode it)");
        if (rc == 0 && s->health.path[0] != '/') rc = nx_cfg_fail(err, path, "must start with '/'");
    }
    return rc;
}

/* cache: {ttl: 30s, tools: {name: 10s}}: how long results of the server's tools are cached. */
static int read_server_cache(nx_server_config_t *s, const nx_cfg_node_t *n,
                             nx_config_error_t *err) {
    static const char *const known[] = {"ttl", "tools"};
    if (nx_cfg_is_null(n)) return 0;
    int rc = nx_cfg_check_keys(n, known, 2, err);
    if (rc != 0) return rc;
    const nx_cfg_node_t *v = nx_cfg_get(n, "ttl");
    uint64_t ms = 0;
    if (v != NULL) {
        if ((rc = nx_cfg_read_duration(v, 0, 7u * 24u * 3600u * 1000u, &ms, err)) != 0) return rc;
        s->cache_ttl_ms = (uint32_t)ms;
    }
    const nx_cfg_node_t *tools = nx_cfg_get(n, "tools");
    if (tools == NULL || nx_cfg_is_null(tools)) return 0;
    if (nx_cfg_kind(tools) != NX_CFG_MAPPING) {
        char got[64];
        got_node(got, sizeof(got), tools);
        return nx_cfg_fail(err, tools, "expected a mapping of tool names to durations, got %s",
                           got);
    }
    size_t count = nx_cfg_count(tools);
    if (count > 4096) return nx_cfg_fail(err, tools, "more than 4096 tools");
    char **list = calloc(count + 1, sizeof(*list));
    if (list == NULL) return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        const nx_cfg_node_t *t = nx_cfg_at(tools, i);
        const char *name = nx_cfg_key(t);
        if (name == NULL || name[0] == '\0' || strlen(name) > 128) {
            strv_free(list);
            return nx_cfg_fail_key(err, t, "a tool name must be 1 to 128 characters");
        }
        if ((rc = nx_cfg_read_duration(t, 0, 7u * 24u * 3600u * 1000u, &ms, err)) != 0) {
            strv_free(list);
            return rc;
        }
        size_t len = strlen(name) + 24;
        if ((list[i] = malloc(len)) == NULL) {
            strv_free(list);
            return -ENOMEM;
        }
        snprintf(list[i], len, "%s=%llu", name, (unsigned long long)ms);
    }
    strv_free(s->cache_tools);
    s->cache_tools = list;
    return 0;
}

/* Applies the ordered pairs: an error when both keys are written in the wrong order, else the
 * unwritten one follows the written one. */
static int order_pairs(nx_server_config_t *s, const nx_cfg_node_t *item, nx_config_error_t *err) {
    for (size_t i = 0; i < sizeof(spairs) / sizeof(spairs[0]); i++) {
        if (!(entry_scope(spairs[i].section) & (1u << s->transport))) continue;
        const sfield_t *lo = find_sfield(spairs[i].section, spairs[i].lo);
        const sfield_t *hi = find_sfield(spairs[i].section, spairs[i].hi);
        const nx_cfg_node_t *sec = nx_cfg_get(item, spairs[i].section);
        const nx_cfg_node_t *lo_n = nx_cfg_get(sec, lo->key), *hi_n = nx_cfg_get(sec, hi->key);
        char *lo_f = (char *)s + lo->off, *hi_f = (char *)s + hi->off;
        uint64_t lo_v = load_uint(lo_f, lo->width), hi_v = load_uint(hi_f, hi->width);
        if (lo_v <= hi_v) continue;
        key_type_t t = lo->type == SF_DURATION ? KT_DURATION : KT_UINT;
        char lo_s[32], hi_s[32];
        fmt_value(lo_s, sizeof(lo_s), t, lo_v);
        fmt_value(hi_s, sizeof(hi_s), t, hi_v);
        if (lo_n != NULL && hi_n != NULL) {
            if (spairs[i].blame_hi)
                return nx_cfg_fail(err, hi_n, "%s must not be shorter than %s (%s)", hi_s, lo->key,
                                   lo_s);
            return nx_cfg_fail(err, lo_n, "%s must not exceed %s (%s)", lo_s, hi->key, hi_s);
        }
        if (lo_n != NULL)
            store_uint(hi_f, hi->width, lo_v);
        else
            store_uint(lo_f, lo->width, hi_v);
    }
    return 0;
}

/* Parses entry <item> into <s> (zeroed by the caller); <prev>[0..<nprev>) are the entries
 * before it, for the unique-name check. On failure <s> may hold lists for servers_free. */
static int parse_server(nx_server_config_t *s, const nx_cfg_node_t *item,
                        const nx_server_config_t *prev, size_t nprev, nx_config_error_t *err) {
    const char *known[NENTRY_KEYS];
    char got[64];
    unsigned t = 0;
    for (size_t i = 0; i < NENTRY_KEYS; i++)
        known[i] = entry_keys[i].key;
    int rc = nx_cfg_check_keys(item, known, NENTRY_KEYS, err);
    if (rc != 0) return rc;

    const nx_cfg_node_t *name = nx_cfg_get(item, "name"), *tr = nx_cfg_get(item, "transport");
    if (name == NULL) return nx_cfg_fail(err, item, "missing required key 'name'");
    const char *text;
    size_t len;
    if ((rc = node_text(name, 1024, &text, &len, err)) != 0) return rc;
    if (!server_name_ok(text, len)) {
        got_text(got, sizeof(got), text, len);
        return nx_cfg_fail(err, name,
                           "%s is not a valid server name (1 to %d of a-z, 0-9, _ and -)", got,
                           NX_SERVER_NAME_MAX);
    }
    for (size_t i = 0; i < nprev; i++)
        if (strcmp(prev[i].name, text) == 0)
            return nx_cfg_fail(err, name, "duplicate server name '%s' (servers[%zu], line %d)",
                               text, i, prev[i].line);
    if (tr == NULL)
        return nx_cfg_fail(err, item,
                           "missing required key 'transport' (stdio, http, sse, ws or rest)");
    rc = read_choice(tr, transport_names, sizeof(transport_names) / sizeof(transport_names[0]),
                     "a transport (stdio, http, sse, ws or rest)", &t, err);
    if (rc != 0) return rc;
    for (size_t i = 0; i < item->count; i++) {
        const nx_cfg_node_t *v = item->items[i];
        unsigned scope = entry_scope(v->key);
        if (!(scope & (1u << t)))
            return nx_cfg_fail_key(err, v, "%s (this server uses %s)", scope_phrase(scope),
                                   transport_names[t]);
    }

    nx_server_config_defaults(s, (nx_server_transport_t)t);
    memcpy(s->name, text, len + 1);
    s->line = item->line;
    const nx_cfg_node_t *v;
    unsigned b;
    if ((v = nx_cfg_get(item, "balance")) != NULL) {
        rc = read_choice(v, balance_names, 2, "round_robin or least_outstanding", &b, err);
        if (rc != 0) return rc;
        s->balance = (nx_server_balance_t)b;
    }
    if (t == NX_SERVER_STDIO) {
        if ((v = nx_cfg_get(item, "command")) == NULL)
            return nx_cfg_fail(err, item, "missing required key 'command' for transport stdio");
        if ((rc = read_nonempty(v, s->command, sizeof(s->command), err)) != 0) return rc;
        if ((v = nx_cfg_get(item, "args")) != NULL && (rc = read_strv(v, &s->args, err)) != 0)
            return rc;
        if ((v = nx_cfg_get(item, "env")) != NULL &&
            (rc = read_strmap(v, false, &s->env, err)) != 0)
            return rc;
        if ((v = nx_cfg_get(item, "cwd")) != NULL &&
            (rc = read_nonempty(v, s->cwd, sizeof(s->cwd), err)) != 0)
            return rc;
        uint64_t n;
        if ((v = nx_cfg_get(item, "instances")) != NULL) {
            if ((rc = nx_cfg_read_uint(v, 1, NX_SERVER_REPLICAS_MAX, &n, err)) != 0) return rc;
            s->instances = (uint32_t)n;
        }
    } else {
        if ((rc = read_urls(s, item, err)) != 0) return rc;
        if ((v = nx_cfg_get(item, "headers")) != NULL &&
            (rc = read_strmap(v, true, &s->headers, err)) != 0)
            return rc;
    }
    if ((v = nx_cfg_get(item, "prefix")) != NULL && (rc = nx_cfg_read_bool(v, &s->prefix, err)))
        return rc;
    if ((v = nx_cfg_get(item, "enabled")) != NULL && (rc = nx_cfg_read_bool(v, &s->enabled, err)))
        return rc;
    for (size_t i = 0; i < NSSECTIONS; i++) {
        if ((v = nx_cfg_get(item, ssections[i].name)) == NULL) continue;
        if ((rc = read_section(s, &ssections[i], v, err)) != 0) return rc;
    }
    if ((v = nx_cfg_get(item, "cache")) != NULL && (rc = read_server_cache(s, v, err)) != 0)
        return rc;
    return order_pairs(s, item, err);
}

/* Parses the servers: sequence <seq> into c->servers, replacing (not freeing) the list there:
 * during a load that list still belongs to the caller's config. */
static int parse_servers(nx_config_t *c, const nx_cfg_node_t *seq, nx_config_error_t *err) {
    char got[64];
    nx_server_config_t *items = NULL;
    size_t n = 0;
    if (!nx_cfg_is_null(seq)) { /* "servers:" with every entry commented out is none */
        if (seq->kind != NX_CFG_SEQUENCE) {
            got_node(got, sizeof(got), seq);
            return nx_cfg_fail(err, seq, "expected a sequence of servers (- name: ...), got %s",
                               got);
        }
        n = seq->count;
        if (n > NX_SERVERS_MAX)
            return nx_cfg_fail(err, seq->items[NX_SERVERS_MAX], "more than %d servers",
                               NX_SERVERS_MAX);
    }
    if (n > 0 && (items = calloc(n, sizeof(*items))) == NULL)
        return nx_cfg_fail(err, seq, "out of memory");
    for (size_t i = 0; i < n; i++) {
        int rc = parse_server(&items[i], seq->items[i], items, i, err);
        if (rc != 0) {
            servers_free(items, i + 1);
            return rc;
        }
    }
    c->servers.items = items;
    c->servers.count = n;
    return 0;
}

/* A name holding the separator would make "<name><sep><tool>" ambiguous. */
static bool name_has_sep(const nx_servers_config_t *sv, size_t i) {
    return sv->separator[0] != '\0' && strstr(sv->items[i].name, sv->separator) != NULL;
}

/* After a load replaced the servers: each name against the separator the document left. */
static int check_names_at(const nx_servers_config_t *sv, const nx_cfg_node_t *seq,
                          nx_config_error_t *err) {
    for (size_t i = 0; i < sv->count; i++) {
        if (!name_has_sep(sv, i)) continue;
        return nx_cfg_fail(err, nx_cfg_get(seq->items[i], "name"),
                           "'%s' contains the federation separator '%s'; rename the server or "
                           "change federation.separator",
                           sv->items[i].name, sv->separator);
    }
    return 0;
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
    if (plen == 0) suggest_try(&sg, "servers", strlen("servers"));
    if (plen == 0) suggest_try(&sg, "workflows", strlen("workflows"));
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
        if (prefix[0] == '\0' && strcmp(v->key, "servers") == 0) {
            rc = parse_servers(c, v, err);
        } else if (prefix[0] == '\0' && strcmp(v->key, "workflows") == 0) {
            rc = 0; /* parsed by nx_config_load_string once the servers are known */
        } else if (idx >= 0) {
            rc = apply_leaf(c, idx, v, err);
        } else if (n < (int)sizeof(full) && is_section(full)) {
            if (nx_cfg_is_null(v)) continue; /* "http:" with every key commented out */
            if (v->kind != NX_CFG_MAPPING) {
                char got[64];
                got_node(got, sizeof(got), v);
                bool hint = strcmp(full, "server") == 0 && v->kind == NX_CFG_SEQUENCE;
                return nx_cfg_fail(err, v, "expected a mapping, got %s%s", got,
                                   hint ? " (backends are listed under servers:)" : "");
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
    /* tmp shares c's servers until a servers: section replaces them; only then does one of the
     * two lists get freed, c's on success, the new one on failure. */
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
    bool replaced = tmp->servers.items != c->servers.items;
    if (rc == 0 && replaced) rc = check_names_at(&tmp->servers, nx_cfg_get(root, "servers"), err);
    /* workflows: last, whatever its place in the file: its steps name the servers. Like
     * servers:, a document's workflows: replaces the ones <c> had. */
    const nx_cfg_node_t *wf_node = rc == 0 ? nx_cfg_get(root, "workflows") : NULL;
    nx_workflows_t *wf = NULL;
    if (wf_node != NULL) rc = nx_workflows_parse(tmp, wf_node, NULL, &wf, err);
    tmp->workflows = NULL; /* c keeps its reference until the commit below */
    if (rc == 0) {
        copy_str(tmp->source, sizeof(tmp->source), name);
        tmp->workflows = wf_node != NULL ? wf : c->workflows;
        if (wf_node != NULL) nx_workflows_unref(c->workflows);
        c->workflows = NULL;
        if (replaced) nx_config_dispose(c);
        *c = *tmp;
    } else if (replaced) {
        nx_config_dispose(tmp);
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
    if (strncmp(key, "servers", 7) == 0 && (key[7] == '\0' || key[7] == '.'))
        return fail_at(err, origin, 0, origin_key,
                       "unknown key '%.64s' (servers: is a list and is set in the file only)", key);
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

/* The server rules that depend on more than one entry or on federation.separator, which the
 * environment or a flag may have changed after the file was read. */
static int validate_servers(const nx_config_t *c, nx_config_error_t *err) {
    const nx_servers_config_t *sv = &c->servers;
    const char *file = c->source[0] ? c->source : "defaults";
    for (size_t i = 0; i < sv->count; i++) {
        const nx_server_config_t *s = &sv->items[i];
        char key[64];
        snprintf(key, sizeof(key), "servers[%zu].name", i);
        size_t n = strnlen(s->name, sizeof(s->name));
        if (n == sizeof(s->name) || !server_name_ok(s->name, n))
            return fail_at(err, file, s->line, key,
                           "not a valid server name (1 to %d of a-z, 0-9, _ and -)",
                           NX_SERVER_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(sv->items[j].name, s->name) == 0)
                return fail_at(err, file, s->line, key, "duplicate server name '%s' (servers[%zu])",
                               s->name, j);
        if (name_has_sep(sv, i)) {
            const nx_config_origin_t *o = &c->origin[find_key("federation.separator")];
            return fail_at(err, file, s->line, key,
                           "'%s' contains the federation separator '%s' (set in %s%s%s)", s->name,
                           sv->separator, o->file[0] ? o->file : "defaults", o->key[0] ? " " : "",
                           o->key);
        }
    }
    return 0;
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
        } else if (d->type == KT_SEP) {
            char tmp[16], msg[sizeof(err->message)];
            size_t n = strnlen(field, d->width);
            if (n == d->width || parse_sep(field, n, tmp, sizeof(tmp), msg, sizeof(msg)) < 0)
                return blame(c, i, err, "%s", n == d->width ? "separator is not terminated" : msg);
        } else if (d->type == KT_LEVEL) {
            nx_log_level_t lvl = *(const nx_log_level_t *)field;
            if ((int)lvl < NX_LOG_DEBUG || lvl > NX_LOG_OFF)
                return blame(c, i, err, "log level %d is out of range", (int)lvl);
        } else if (d->type == KT_REDIS || d->type == KT_PREFIX) {
            char tmp[512], msg[sizeof(err->message)];
            size_t n = strnlen(field, d->width);
            int bad = n == d->width ? -1
                      : d->type == KT_REDIS
                          ? parse_redis(field, n, tmp, sizeof(tmp), msg, sizeof(msg))
                          : parse_prefix(field, n, tmp, sizeof(tmp), msg, sizeof(msg));
            if (bad < 0) return blame(c, i, err, "%s", n == d->width ? "not terminated" : msg);
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
    int rc = validate_servers(c, err);
    return rc != 0 ? rc : nx_workflows_check(c->workflows, c, err);
}

/* ---- JSON export ---- */

/* A list as a JSON array, or (<redact_sep> given) as an object of its "<key><sep><value>"
 * entries with every value shown as "***": env values and headers often carry secrets. */
static json_t *strv_json(char *const *v, const char *redact_sep) {
    json_t *out = redact_sep ? json_object() : json_array();
    for (char *const *p = v; out != NULL && p != NULL && *p != NULL; p++) {
        int rc;
        if (redact_sep == NULL) {
            rc = json_array_append_new(out, json_string(*p));
        } else {
            const char *at = strstr(*p, redact_sep);
            size_t klen = at ? (size_t)(at - *p) : strlen(*p);
            rc = json_object_setn_new(out, *p, klen, json_string("***"));
        }
        if (rc < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* One servers: entry keyed like the file, with only the keys its transport takes. */
static json_t *server_to_json(const nx_server_config_t *s) {
    unsigned bit = 1u << s->transport;
    json_t *o = json_object();
    if (o == NULL) return NULL;
    int rc = json_object_set_new(o, "name", json_string(s->name));
    rc |= json_object_set_new(o, "transport", json_string(nx_server_transport_name(s->transport)));
    rc |= json_object_set_new(o, "enabled", json_boolean(s->enabled));
    rc |= json_object_set_new(o, "prefix", json_boolean(s->prefix));
    if (bit & T_STDIO) {
        rc |= json_object_set_new(o, "command", json_string(s->command));
        rc |= json_object_set_new(o, "args", strv_json(s->args, NULL));
        rc |= json_object_set_new(o, "env", strv_json(s->env, "="));
        if (s->cwd[0]) rc |= json_object_set_new(o, "cwd", json_string(s->cwd));
        rc |= json_object_set_new(o, "instances", json_integer(s->instances));
    } else {
        rc |= json_object_set_new(o, "urls", strv_json(s->urls, NULL));
        rc |= json_object_set_new(o, "headers", strv_json(s->headers, ": "));
    }
    rc |= json_object_set_new(
        o, "balance", json_string(balance_names[s->balance == NX_BALANCE_LEAST_OUTSTANDING]));
    for (size_t i = 0; i < NSSECTIONS && rc == 0; i++) {
        const ssection_t *sec = &ssections[i];
        if (!(entry_scope(sec->name) & bit)) continue;
        json_t *m = json_object();
        rc |= json_object_set_new(o, sec->name, m);
        for (size_t k = 0; k < sec->nfields && rc == 0; k++) {
            const sfield_t *f = &sec->fields[k];
            const char *field = (const char *)s + f->off;
            json_t *v = f->type == SF_BOOL ? json_boolean(*(const bool *)field)
                                           : json_integer((json_int_t)load_uint(field, f->width));
            rc |= json_object_set_new(m, f->key, v);
        }
        if (strcmp(sec->name, "health") == 0 && (bit & T_HTTP_GET) && s->health.path[0])
            rc |= json_object_set_new(m, "path", json_string(s->health.path));
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

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
        case KT_SEP:
        case KT_REDIS:
        case KT_PREFIX:
            v = json_stringn(field, strnlen(field, d->width));
            break;
        case KT_CHOICE: {
            uint32_t idx = *(const uint32_t *)field;
            const char *w = d->choices;
            for (uint32_t k = 0; k < idx && strchr(w, '|'); k++)
                w = strchr(w, '|') + 1;
            const char *end = strchr(w, '|');
            v = json_stringn(w, end ? (size_t)(end - w) : strlen(w));
            break;
        }
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
    json_t *servers = json_array();
    if (json_object_set_new(root, "servers", servers) < 0) goto fail;
    for (size_t i = 0; i < c->servers.count; i++)
        if (json_array_append_new(servers, server_to_json(&c->servers.items[i])) < 0) goto fail;
    if (c->workflows != NULL &&
        json_object_set_new(root, "workflows", nx_workflows_to_json(c->workflows)) < 0)
        goto fail;
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
