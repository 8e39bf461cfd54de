/* The workflow expression language (see expr.h). A template is split once, at compile time,
 * into literal text and `${{ }}` expressions; each expression is read by a byte lexer and a
 * precedence-climbing parser into an AST that lives in the template's arena. Evaluation walks
 * the AST over the scope and never changes the template, so one template serves every shard.
 * nx_jtemplate_* mirror a JSON value with a compiled template at each of its strings. */
#include "expr.h"

#include "jsonschema.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64     /* nesting of an expression: parser recursion and AST height */
#define MAX_TEXT 65536   /* bytes of one template */
#define MAX_NUMBER 400   /* bytes of one number literal (longer ones are only ever noise) */
#define NO_OPEN SIZE_MAX /* parser_t.open of a bare expression: there is no `${{` */

/* ---- arena: every node and string of one template, freed at once ---- */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
} chunk_t;

/* Kinds of AST node. N_ADD, N_AND and N_OR are n-ary (a chain `a + b + c` is one node), so a
 * long chain does not make a deep tree. */
typedef enum node_kind {
    N_LIT,    /* lit */
    N_ROOT,   /* name: a path root looked up in the scope; bits: its NX_EXPR_ROOT_* */
    N_MEMBER, /* base.name, base['name'] */
    N_INDEX,  /* base[kids[0]] with a computed or numeric index */
    N_NOT,    /* !base */
    N_NEG,    /* -base */
    N_ADD,    /* kids[0] + kids[1] + ... */
    N_AND,    /* kids[0] && kids[1] && ... */
    N_OR,     /* kids[0] || kids[1] || ... */
    N_CMP,    /* kids[0] <op> kids[1] */
    N_ARRAY,  /* [kids...] */
    N_OBJECT, /* {keys[i]: kids[i]} */
    N_CALL,   /* fn(kids...) */
} node_kind_t;

typedef enum fn_id { F_LENGTH, F_DEFAULT, F_CONTAINS, F_JOIN, F_JSON } fn_id_t;

/* One AST node; owned by the arena of its template. */
typedef struct node node_t;
struct node {
    node_kind_t kind;
    unsigned op;   /* N_CMP: the comparison token; N_CALL: the fn_id_t */
    unsigned bits; /* N_ROOT: NX_EXPR_ROOT_* */
    unsigned depth;
    size_t off; /* byte offset in the template text */
    json_t *lit;
    const char *name; /* N_ROOT, N_MEMBER: NUL-terminated, name_len bytes */
    size_t name_len;
    node_t *base;
    node_t **kids;
    size_t nkids;
    const char **keys; /* N_OBJECT */
    size_t *key_lens;
};

/* A piece of an interpolated template: literal text, or an expression when expr != NULL. */
typedef struct part {
    const char *text;
    size_t len;
    const node_t *expr;
} part_t;

typedef enum tpl_kind {
    TPL_LITERAL, /* text, with `$${{` already resolved */
    TPL_WHOLE,   /* root: the value of one expression, with its type */
    TPL_INTERP,  /* parts, joined into a string */
} tpl_kind_t;

/* A compiled template. Owns its arena (nodes, texts) and the literal JSON values of its nodes;
 * read-only after compile, so shards may evaluate it concurrently. */
struct nx_expr {
    tpl_kind_t kind;
    const char *text;
    size_t len;
    const node_t *root;
    part_t *parts;
    size_t nparts, capparts;
    chunk_t *chunks;
    json_t **owned;
    size_t nowned, capowned;
};

static void *arena_alloc(nx_expr_t *e, size_t n) {
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    chunk_t *c = e->chunks;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > 4000 ? n : 4000;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL) return NULL;
        c->next = e->chunks;
        c->used = 0;
        c->cap = cap;
        e->chunks = c;
    }
    void *p = (unsigned char *)c->data + c->used;
    c->used += n;
    return p;
}

static char *arena_strndup(nx_expr_t *e, const char *s, size_t n) {
    char *d = arena_alloc(e, n + 1);
    if (d == NULL) return NULL;
    if (n > 0) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Keeps <v> (a new reference) until the template is freed; returns it, or NULL when <v> is
 * NULL or could not be kept (then it is released). */
static json_t *own(nx_expr_t *e, json_t *v) {
    if (v == NULL) return NULL;
    if (e->nowned == e->capowned) {
        size_t cap = e->capowned ? e->capowned * 2 : 8;
        json_t **o = realloc(e->owned, cap * sizeof(*o));
        if (o == NULL) {
            json_decref(v);
            return NULL;
        }
        e->owned = o;
        e->capowned = cap;
    }
    e->owned[e->nowned++] = v;
    return v;
}

void nx_expr_free(nx_expr_t *e) {
    if (e == NULL) return;
    for (size_t i = 0; i < e->nowned; i++)
        json_decref(e->owned[i]);
    free(e->owned);
    free(e->parts);
    while (e->chunks != NULL) {
        chunk_t *next = e->chunks->next;
        free(e->chunks);
        e->chunks = next;
    }
    free(e);
}

/* ---- growable byte buffer (literal text at compile time, strings at run time) ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    char small[256];
} sbuf_t;

static void sb_init(sbuf_t *b) {
    b->p = b->small;
    b->n = 0;
    b->cap = sizeof(b->small);
}

static void sb_dispose(sbuf_t *b) {
    if (b->p != b->small) free(b->p);
}

static int sb_put(sbuf_t *b, const char *s, size_t n) {
    if (n > b->cap - b->n) {
        size_t cap = b->cap;
        while (n > cap - b->n)
            cap *= 2;
        char *p = b->p == b->small ? malloc(cap) : realloc(b->p, cap);
        if (p == NULL) return -ENOMEM;
        if (b->p == b->small) memcpy(p, b->small, b->n);
        b->p = p;
        b->cap = cap;
    }
    if (n > 0) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

static int sb_dump_cb(const char *buffer, size_t size, void *data) {
    return sb_put(data, buffer, size) == 0 ? 0 : -1;
}

/* ---- lexer ---- */

typedef enum tok_kind {
    TK_EOF,
    TK_NUMBER,
    TK_STRING,
    TK_IDENT,
    TK_DOT,
    TK_COMMA,
    TK_COLON,
    TK_LPAREN,
    TK_RPAREN,
    TK_LBRACKET,
    TK_RBRACKET,
    TK_LBRACE,
    TK_RBRACE,
    TK_PLUS,
    TK_MINUS,
    TK_NOT,
    TK_AND,
    TK_OR,
    TK_EQ,
    TK_NE,
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
} tok_kind_t;

static const char *const TOK_TEXT[] = {
    [TK_DOT] = ".",    [TK_COMMA] = ",",    [TK_COLON] = ":",    [TK_LPAREN] = "(",
    [TK_RPAREN] = ")", [TK_LBRACKET] = "[", [TK_RBRACKET] = "]", [TK_LBRACE] = "{",
    [TK_RBRACE] = "}", [TK_PLUS] = "+",     [TK_MINUS] = "-",    [TK_NOT] = "!",
    [TK_AND] = "&&",   [TK_OR] = "||",      [TK_EQ] = "==",      [TK_NE] = "!=",
    [TK_LT] = "<",     [TK_LE] = "<=",      [TK_GT] = ">",       [TK_GE] = ">=",
};

/* The current token. TK_STRING: str/slen (unescaped, in the arena); TK_NUMBER: num (owned by
 * the template); TK_IDENT: the name is s[off, off+len). */
typedef struct token {
    tok_kind_t kind;
    size_t off, len;
    const char *str;
    size_t slen;
    json_t *num;
} token_t;

/* Parser state over one template text. The lexer is lazy: it reads one token ahead and no
 * further, so the template scanner can take over right after an expression's closing `}}`. */
typedef struct parser {
    nx_expr_t *e;
    const char *s;
    size_t len;
    size_t pos;  /* next byte the lexer reads */
    size_t open; /* offset of the `${{` being parsed, NO_OPEN for a bare expression */
    token_t tok;
    unsigned depth;
    bool failed;
    nx_expr_error_t *err;
} parser_t;

static bool is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}
static bool is_ident_start(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_ident(unsigned char c) {
    return is_ident_start(c) || is_digit(c);
}
static bool is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Records the first compile error; later ones are consequences of it. Returns NULL so parse
 * functions can `return syntax(...)`. */
__attribute__((format(printf, 3, 4))) static void *syntax(parser_t *p, size_t off, const char *fmt,
                                                          ...) {
    if (p->failed) return NULL;
    p->failed = true;
    p->tok.kind = TK_EOF;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
    va_end(ap);
    p->err->offset = off;
    return NULL;
}

/* A byte for a message: printable ASCII as is, anything else as \xNN. */
static const char *show_byte(unsigned char c, char buf[8]) {
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, 8, "%c", c);
    else
        snprintf(buf, 8, "\\x%02x", c);
    return buf;
}

static bool lex_number(parser_t *p, size_t start) {
    const char *s = p->s;
    size_t i = start, n = p->len;
    bool is_int = true;
    if (s[i] == '0') {
        i++;
        if (i < n && is_digit(s[i])) return syntax(p, start, "bad number: leading zero");
    } else {
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && s[i] == '.') {
        is_int = false;
        if (++i >= n || !is_digit(s[i])) return syntax(p, i, "bad number: a digit must follow '.'");
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        is_int = false;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !is_digit(s[i])) return syntax(p, i, "bad number: exponent without digits");
        while (i < n && is_digit(s[i]))
            i++;
    }
    size_t len = i - start;
    json_t *v = NULL;
    if (is_int) {
        json_int_t x = 0;
        for (size_t k = start; k < i && is_int; k++)
            if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, s[k] - '0', &x))
                is_int = false; /* too big for an integer: it becomes a real, as in JSON */
        if (is_int) v = json_integer(x);
    }
    if (!is_int) {
        if (len > MAX_NUMBER) return syntax(p, start, "number too long");
        char buf[MAX_NUMBER + 1];
        memcpy(buf, s + start, len);
        buf[len] = '\0';
        double d = strtod(buf, NULL);
        if (!isfinite(d)) return syntax(p, start, "number out of range");
        v = json_real(d);
    }
    p->tok = (token_t){.kind = TK_NUMBER, .off = start, .len = len, .num = own(p->e, v)};
    if (p->tok.num == NULL) return syntax(p, start, "out of memory");
    p->pos = i;
    return true;
}

/* 'single' or "double" quoted, with the escapes \\ \' \" \n \t. Two passes: find the end and
 * the unescaped length, then copy into the arena. */
static bool lex_string(parser_t *p, size_t start) {
    const char *s = p->s;
    char q = s[start], b[8];
    size_t i = start + 1, out = 0;
    for (;;) {
        if (i >= p->len) return syntax(p, start, "unterminated string");
        if (s[i] == q) break;
        if (s[i] == '\\') {
            if (i + 1 >= p->len) return syntax(p, start, "unterminated string");
            if (strchr("\\'\"nt", s[i + 1]) == NULL || s[i + 1] == '\0')
                return syntax(p, i, "unknown escape '\\%s' (known: \\\\ \\' \\\" \\n \\t)",
                              show_byte((unsigned char)s[i + 1], b));
            i++;
        }
        i++;
        out++;
    }
    char *d = arena_alloc(p->e, out + 1);
    if (d == NULL) return syntax(p, start, "out of memory");
    size_t o = 0;
    for (size_t k = start + 1; k < i; k++) {
        char c = s[k];
        if (c == '\\') {
            c = s[++k];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
        }
        d[o++] = c;
    }
    d[o] = '\0';
    p->tok = (token_t){.kind = TK_STRING, .off = start, .len = i + 1 - start, .str = d, .slen = o};
    p->pos = i + 1;
    return true;
}

/* Tokens of one byte, and the second byte that makes some of them two-byte tokens: `!=`, `<=`,
 * `>=`, and `==` `&&` `||` whose first byte alone is no token. */
static const struct {
    unsigned char one, two; /* tok_kind_t; TK_EOF = none */
    char second;
} PUNCT[128] = {
    ['.'] = {TK_DOT, 0, 0},        [','] = {TK_COMMA, 0, 0},     [':'] = {TK_COLON, 0, 0},
    ['('] = {TK_LPAREN, 0, 0},     [')'] = {TK_RPAREN, 0, 0},    ['['] = {TK_LBRACKET, 0, 0},
    [']'] = {TK_RBRACKET, 0, 0},   ['{'] = {TK_LBRACE, 0, 0},    ['}'] = {TK_RBRACE, 0, 0},
    ['+'] = {TK_PLUS, 0, 0},       ['-'] = {TK_MINUS, 0, 0},     ['!'] = {TK_NOT, TK_NE, '='},
    ['<'] = {TK_LT, TK_LE, '='},   ['>'] = {TK_GT, TK_GE, '='},  ['='] = {TK_EOF, TK_EQ, '='},
    ['&'] = {TK_EOF, TK_AND, '&'}, ['|'] = {TK_EOF, TK_OR, '|'},
};

/* Reads the next token into p->tok; false (with the error recorded) on a bad token. */
static bool next(parser_t *p) {
    if (p->failed) return false;
    const char *s = p->s;
    while (p->pos < p->len && is_space(s[p->pos]))
        p->pos++;
    size_t i = p->pos, n = 1;
    p->tok = (token_t){.kind = TK_EOF, .off = i};
    if (i >= p->len) return true;
    unsigned char c = (unsigned char)s[i];
    char b[8];
    if (c == '\'' || c == '"') return lex_string(p, i);
    if (is_digit(c)) return lex_number(p, i);
    if (is_ident_start(c)) {
        while (n < p->len - i && is_ident((unsigned char)s[i + n]))
            n++;
        p->tok.kind = TK_IDENT;
    } else if (c < 128 && (PUNCT[c].one != TK_EOF || PUNCT[c].two != TK_EOF)) {
        if (PUNCT[c].two != TK_EOF && i + 1 < p->len && s[i + 1] == PUNCT[c].second) {
            p->tok.kind = PUNCT[c].two;
            n = 2;
        } else if (PUNCT[c].one != TK_EOF) {
            p->tok.kind = PUNCT[c].one;
        } else {
            return syntax(p, i, "unexpected '%c' (did you mean '%c%c'?)", c, c, PUNCT[c].second);
        }
    } else {
        return syntax(p, i, "unexpected character '%s'", show_byte(c, b));
    }
    p->tok.len = n;
    p->pos = i + n;
    return true;
}

/* After '.', a member name: letters, digits, '_' and '-' (step ids may hold '-' and start with
 * a digit; the language has no binary minus, so `a.b-c` is unambiguous). */
static bool lex_member(parser_t *p) {
    if (p->failed) return false;
    while (p->pos < p->len && is_space(p->s[p->pos]))
        p->pos++;
    size_t i = p->pos, n = 0;
    while (i + n < p->len && (is_ident((unsigned char)p->s[i + n]) || p->s[i + n] == '-'))
        n++;
    if (n == 0) {
        if (i >= p->len && p->open != NO_OPEN)
            return syntax(p, p->open, "unterminated '${{': no closing '}}'");
        return syntax(p, i, "expected a name after '.'");
    }
    p->tok = (token_t){.kind = TK_IDENT, .off = i, .len = n};
    p->pos = i + n;
    return true;
}

/* "'name'", "number", ... for messages about the current token. */
static const char *describe(const parser_t *p, char *buf, size_t size) {
    const token_t *t = &p->tok;
    switch (t->kind) {
    case TK_EOF:
        return "end of expression";
    case TK_NUMBER:
        return "a number";
    case TK_STRING:
        return "a string";
    case TK_IDENT:
        snprintf(buf, size, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), p->s + t->off);
        return buf;
    default:
        snprintf(buf, size, "'%s'", TOK_TEXT[t->kind]);
        return buf;
    }
}

static void *unexpected(parser_t *p, const char *expected) {
    if (p->failed) return NULL;
    if (p->open != NO_OPEN &&
        (p->tok.kind == TK_EOF || (p->tok.kind == TK_RBRACE && p->tok.off + 1 >= p->len)))
        return syntax(p, p->open, "unterminated '${{': no closing '}}'");
    char b[64];
    return syntax(p, p->tok.off, "unexpected %s, expected %s", describe(p, b, sizeof(b)), expected);
}

static bool expect(parser_t *p, tok_kind_t k, const char *what) {
    if (p->tok.kind != k) return unexpected(p, what) != NULL;
    return next(p);
}

/* ---- parser: or > and > comparison > + > unary (! -) > postfix (. [] ) > primary ---- */

static node_t *mk(parser_t *p, node_kind_t kind, size_t off) {
    node_t *n = arena_alloc(p->e, sizeof(*n));
    if (n == NULL) return syntax(p, off, "out of memory");
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->off = off;
    n->depth = 1;
    return n;
}

/* Sets the height of <n> from its children and enforces the depth limit (evaluation recurses
 * over the tree, so its height bounds the stack). */
static node_t *finish(parser_t *p, node_t *n) {
    unsigned d = n->base ? n->base->depth : 0;
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i]->depth > d) d = n->kids[i]->depth;
    n->depth = d + 1;
    if (n->depth > MAX_DEPTH)
        return syntax(p, n->off, "expression nested deeper than %d", MAX_DEPTH);
    return n;
}

/* A list of nodes growing in the arena while a chain, array or call is parsed. */
typedef struct nodevec {
    node_t **items;
    size_t n, cap;
    const char **keys;
    size_t *key_lens;
} nodevec_t;

static bool vec_push(parser_t *p, nodevec_t *v, node_t *item, const char *key, size_t key_len) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        node_t **items = arena_alloc(p->e, cap * sizeof(*items));
        const char **keys = arena_alloc(p->e, cap * sizeof(*keys));
        size_t *lens = arena_alloc(p->e, cap * sizeof(*lens));
        if (items == NULL || keys == NULL || lens == NULL) return syntax(p, 0, "out of memory");
        if (v->n > 0) {
            memcpy(items, v->items, v->n * sizeof(*items));
            memcpy(keys, v->keys, v->n * sizeof(*keys));
            memcpy(lens, v->key_lens, v->n * sizeof(*lens));
        }
        v->items = items;
        v->keys = keys;
        v->key_lens = lens;
        v->cap = cap;
    }
    v->items[v->n] = item;
    v->keys[v->n] = key;
    v->key_lens[v->n] = key_len;
    v->n++;
    return true;
}

static node_t *parse_expr(parser_t *p);
static node_t *parse_unary(parser_t *p);

typedef node_t *(*parse_fn)(parser_t *p);

/* sub (tok sub)*: one n-ary node of <kind>, or the single operand when there is no <tok>. */
static node_t *parse_chain(parser_t *p, tok_kind_t tok, node_kind_t kind, parse_fn sub) {
    size_t off = p->tok.off;
    node_t *first = sub(p);
    if (first == NULL || p->tok.kind != tok) return first;
    nodevec_t v = {0};
    if (!vec_push(p, &v, first, NULL, 0)) return NULL;
    while (p->tok.kind == tok) {
        if (!next(p)) return NULL;
        node_t *k = sub(p);
        if (k == NULL || !vec_push(p, &v, k, NULL, 0)) return NULL;
    }
    node_t *n = mk(p, kind, off);
    if (n == NULL) return NULL;
    n->kids = v.items;
    n->nkids = v.n;
    return finish(p, n);
}

static node_t *parse_add(parser_t *p) {
    return parse_chain(p, TK_PLUS, N_ADD, parse_unary);
}

static bool is_cmp(tok_kind_t k) {
    return k == TK_EQ || k == TK_NE || k == TK_LT || k == TK_LE || k == TK_GT || k == TK_GE;
}

static node_t *parse_cmp(parser_t *p) {
    node_t *left = parse_add(p);
    while (left != NULL && is_cmp(p->tok.kind)) {
        tok_kind_t op = p->tok.kind;
        size_t off = p->tok.off;
        if (!next(p)) return NULL;
        node_t *right = parse_add(p);
        node_t **kids = arena_alloc(p->e, 2 * sizeof(*kids));
        node_t *n = right && kids ? mk(p, N_CMP, off) : NULL;
        if (n == NULL) return syntax(p, off, "out of memory");
        kids[0] = left;
        kids[1] = right;
        n->kids = kids;
        n->nkids = 2;
        n->op = op;
        left = finish(p, n);
    }
    return left;
}

static node_t *parse_and(parser_t *p) {
    return parse_chain(p, TK_AND, N_AND, parse_cmp);
}

static node_t *parse_expr(parser_t *p) {
    if (++p->depth > MAX_DEPTH)
        return syntax(p, p->tok.off, "expression nested deeper than %d", MAX_DEPTH);
    node_t *n = parse_chain(p, TK_OR, N_OR, parse_and);
    p->depth--;
    return n;
}

static const struct {
    const char *name;
    size_t min, max;
    const char *takes;
} FUNCS[] = {
    [F_LENGTH] = {"length", 1, 1, "1 argument"},
    [F_DEFAULT] = {"default", 2, 2, "2 arguments"},
    [F_CONTAINS] = {"contains", 2, 2, "2 arguments"},
    [F_JOIN] = {"join", 1, 2, "1 or 2 arguments"},
    [F_JSON] = {"json", 1, 1, "1 argument"},
};

static node_t *parse_call(parser_t *p, const char *name, size_t len, size_t off) {
    unsigned fn = 0;
    while (fn < sizeof(FUNCS) / sizeof(FUNCS[0]) &&
           !(strlen(FUNCS[fn].name) == len && memcmp(FUNCS[fn].name, name, len) == 0))
        fn++;
    if (fn == sizeof(FUNCS) / sizeof(FUNCS[0]))
        return syntax(p, off,
                      "unknown function '%.*s' (known: length, default, contains, join, json)",
                      (int)(len > 40 ? 40 : len), name);
    if (!next(p)) return NULL; /* ( */
    nodevec_t v = {0};
    if (p->tok.kind != TK_RPAREN) {
        for (;;) {
            node_t *a = parse_expr(p);
            if (a == NULL || !vec_push(p, &v, a, NULL, 0)) return NULL;
            if (p->tok.kind != TK_COMMA) break;
            if (!next(p)) return NULL;
        }
    }
    if (!expect(p, TK_RPAREN, "',' or ')'")) return NULL;
    if (v.n < FUNCS[fn].min || v.n > FUNCS[fn].max)
        return syntax(p, off, "%s() takes %s, got %zu", FUNCS[fn].name, FUNCS[fn].takes, v.n);
    node_t *n = mk(p, N_CALL, off);
    if (n == NULL) return NULL;
    n->op = fn;
    n->kids = v.items;
    n->nkids = v.n;
    return finish(p, n);
}

static unsigned root_bits(const char *name, size_t len) {
    static const struct {
        const char *name;
        unsigned bits;
    } roots[] = {{"input", NX_EXPR_ROOT_INPUT},
                 {"steps", NX_EXPR_ROOT_STEPS},
                 {"item", NX_EXPR_ROOT_ITEM},
                 {"index", NX_EXPR_ROOT_ITEM},
                 {"session", NX_EXPR_ROOT_SESSION}};
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
        if (strlen(roots[i].name) == len && memcmp(roots[i].name, name, len) == 0)
            return roots[i].bits;
    return NX_EXPR_ROOT_OTHER;
}

static node_t *lit_node(parser_t *p, json_t *v, size_t off) {
    node_t *n = mk(p, N_LIT, off);
    if (n == NULL) return NULL;
    n->lit = v;
    return n;
}

static node_t *parse_primary(parser_t *p) {
    size_t off = p->tok.off;
    switch (p->tok.kind) {
    case TK_NUMBER: {
        json_t *v = p->tok.num;
        return next(p) ? lit_node(p, v, off) : NULL;
    }
    case TK_STRING: {
        json_t *v = own(p->e, json_stringn_nocheck(p->tok.str, p->tok.slen));
        if (v == NULL) return syntax(p, off, "out of memory");
        return next(p) ? lit_node(p, v, off) : NULL;
    }
    case TK_IDENT: {
        const char *name = p->s + off;
        size_t len = p->tok.len;
        if (!next(p)) return NULL;
        if (p->tok.kind == TK_LPAREN) return parse_call(p, name, len, off);
        if (len == 4 && memcmp(name, "null", 4) == 0) return lit_node(p, json_null(), off);
        if (len == 4 && memcmp(name, "true", 4) == 0) return lit_node(p, json_true(), off);
        if (len == 5 && memcmp(name, "false", 5) == 0) return lit_node(p, json_false(), off);
        node_t *n = mk(p, N_ROOT, off);
        if (n == NULL || (n->name = arena_strndup(p->e, name, len)) == NULL)
            return syntax(p, off, "out of memory");
        n->name_len = len;
        n->bits = root_bits(name, len);
        return n;
    }
    case TK_LPAREN: {
        if (!next(p)) return NULL;
        node_t *n = parse_expr(p);
        return n != NULL && expect(p, TK_RPAREN, "')'") ? n : NULL;
    }
    case TK_LBRACKET: {
        if (!next(p)) return NULL;
        nodevec_t v = {0};
        if (p->tok.kind != TK_RBRACKET) {
            for (;;) {
                node_t *a = parse_expr(p);
                if (a == NULL || !vec_push(p, &v, a, NULL, 0)) return NULL;
                if (p->tok.kind != TK_COMMA) break;
                if (!next(p)) return NULL;
            }
        }
        if (!expect(p, TK_RBRACKET, "',' or ']'")) return NULL;
        node_t *n = mk(p, N_ARRAY, off);
        if (n == NULL) return NULL;
        n->kids = v.items;
        n->nkids = v.n;
        return finish(p, n);
    }
    case TK_LBRACE: {
        if (!next(p)) return NULL;
        nodevec_t v = {0};
        if (p->tok.kind != TK_RBRACE) {
            for (;;) {
                const char *key;
                size_t key_len;
                if (p->tok.kind == TK_STRING) {
                    key = p->tok.str;
                    key_len = p->tok.slen;
                } else if (p->tok.kind == TK_IDENT) {
                    key = arena_strndup(p->e, p->s + p->tok.off, p->tok.len);
                    key_len = p->tok.len;
                    if (key == NULL) return syntax(p, p->tok.off, "out of memory");
                } else {
                    return unexpected(p, "a key (a name or a string)");
                }
                if (!next(p) || !expect(p, TK_COLON, "':'")) return NULL;
                node_t *a = parse_expr(p);
                if (a == NULL || !vec_push(p, &v, a, key, key_len)) return NULL;
                if (p->tok.kind != TK_COMMA) break;
                if (!next(p)) return NULL;
            }
        }
        if (!expect(p, TK_RBRACE, "',' or '}'")) return NULL;
        node_t *n = mk(p, N_OBJECT, off);
        if (n == NULL) return NULL;
        n->kids = v.items;
        n->nkids = v.n;
        n->keys = v.keys;
        n->key_lens = v.key_lens;
        return finish(p, n);
    }
    default:
        return unexpected(p, "an expression");
    }
}

/* primary ( .name | [expr] )*: paths work on any value, so `(x).a` and `json(s)[0]` too. */
static node_t *parse_postfix(parser_t *p) {
    node_t *n = parse_primary(p);
    while (n != NULL) {
        size_t off = p->tok.off;
        node_t *m;
        if (p->tok.kind == TK_DOT) {
            if (!lex_member(p)) return NULL;
            m = mk(p, N_MEMBER, off);
            if (m == NULL || (m->name = arena_strndup(p->e, p->s + p->tok.off, p->tok.len)) == NULL)
                return syntax(p, off, "out of memory");
            m->name_len = p->tok.len;
            if (!next(p)) return NULL;
        } else if (p->tok.kind == TK_LBRACKET) {
            if (!next(p)) return NULL;
            node_t *idx = parse_expr(p);
            if (idx == NULL || !expect(p, TK_RBRACKET, "']'")) return NULL;
            if (idx->kind == N_LIT && json_is_string(idx->lit)) {
                /* x['key'] is x.key: one lookup path, and refs see steps['id'] */
                m = mk(p, N_MEMBER, off);
                if (m == NULL) return NULL;
                m->name = json_string_value(idx->lit);
                m->name_len = json_string_length(idx->lit);
            } else {
                node_t **kids = arena_alloc(p->e, sizeof(*kids));
                m = kids ? mk(p, N_INDEX, off) : NULL;
                if (m == NULL) return syntax(p, off, "out of memory");
                kids[0] = idx;
                m->kids = kids;
                m->nkids = 1;
            }
        } else {
            break;
        }
        m->base = n;
        n = finish(p, m);
    }
    return n;
}

static node_t *parse_unary(parser_t *p) {
    if (p->tok.kind != TK_NOT && p->tok.kind != TK_MINUS) return parse_postfix(p);
    size_t off = p->tok.off;
    bool neg = p->tok.kind == TK_MINUS;
    if (++p->depth > MAX_DEPTH)
        return syntax(p, off, "expression nested deeper than %d", MAX_DEPTH);
    node_t *operand = next(p) ? parse_unary(p) : NULL;
    p->depth--;
    if (operand == NULL) return NULL;
    if (neg && operand->kind == N_LIT) {
        /* fold -<number literal> into a literal */
        json_t *v = operand->lit, *r = NULL;
        if (json_is_integer(v) && json_integer_value(v) != INT64_MIN)
            r = json_integer(-json_integer_value(v));
        else if (json_is_real(v))
            r = json_real(-json_real_value(v));
        if (r != NULL) {
            if (own(p->e, r) == NULL) return syntax(p, off, "out of memory");
            return lit_node(p, r, off);
        }
    }
    node_t *n = mk(p, neg ? N_NEG : N_NOT, off);
    if (n == NULL) return NULL;
    n->base = operand;
    return finish(p, n);
}

/* ---- templates ---- */

/* Offset of the first byte of s[0, n) that is not valid UTF-8 (overlong forms, surrogates and
 * code points past U+10FFFF are invalid, as jansson has it), or n. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i <= k) return i;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += k + 1;
    }
    return n;
}

static int add_part(nx_expr_t *e, const char *text, size_t len, const node_t *expr) {
    if (e->nparts == e->capparts) {
        size_t cap = e->capparts ? e->capparts * 2 : 4;
        part_t *parts = realloc(e->parts, cap * sizeof(*parts));
        if (parts == NULL) return -ENOMEM;
        e->parts = parts;
        e->capparts = cap;
    }
    e->parts[e->nparts++] = (part_t){.text = text, .len = len, .expr = expr};
    return 0;
}

/* Parses the expression of the `${{` at <open> up to its `}}`; *end is the offset after it. */
static const node_t *parse_embedded(parser_t *p, size_t open, size_t *end) {
    p->open = open;
    p->pos = open + 3;
    p->depth = 0;
    if (!next(p)) return NULL;
    if (p->tok.kind == TK_RBRACE && p->tok.off + 1 < p->len && p->s[p->tok.off + 1] == '}')
        return syntax(p, open, "empty expression in '${{ }}'");
    node_t *n = parse_expr(p);
    if (n == NULL || p->failed) return NULL;
    if (p->tok.kind != TK_RBRACE || p->tok.off + 1 >= p->len || p->s[p->tok.off + 1] != '}')
        return unexpected(p, "'}}' after the expression");
    *end = p->tok.off + 2;
    return n;
}

static bool all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space(s[i])) return false;
    return true;
}

static int fail_compile(nx_expr_t *e, nx_expr_error_t *err, size_t off, const char *msg) {
    nx_expr_free(e);
    snprintf(err->message, sizeof(err->message), "%s", msg);
    err->offset = off;
    return -EINVAL;
}

/* Checks the limits shared by both forms and makes an empty template. */
static int start_compile(const char *text, size_t len, nx_expr_t **e, nx_expr_error_t *err) {
    *e = NULL;
    if (text == NULL && len > 0) return fail_compile(NULL, err, 0, "no text");
    if (len > MAX_TEXT) return fail_compile(NULL, err, MAX_TEXT, "longer than 65536 bytes");
    size_t bad = len ? utf8_invalid_at((const unsigned char *)text, len) : 0;
    if (bad < len) return fail_compile(NULL, err, bad, "not valid UTF-8");
    *e = calloc(1, sizeof(**e));
    if (*e == NULL) return fail_compile(NULL, err, 0, "out of memory");
    return 0;
}

/* Splits text into literal text and `${{ }}` expressions; *first_end: where the first
 * expression's `}}` ends (for nx_expr_compile_bare's message). */
static int compile_template(const char *text, size_t len, nx_expr_t **out, nx_expr_error_t *err,
                            size_t *first_end) {
    nx_expr_t *e;
    int rc = start_compile(text, len, &e, err);
    if (rc < 0) return rc;
    parser_t p = {.e = e, .s = text, .len = len, .err = err};
    sbuf_t lit;
    sb_init(&lit);
    size_t i = 0, seg = 0, nexpr = 0;
    bool spaces_only = true, oom = false;
    while (i < len && !p.failed && !oom) {
        const char *d = memchr(text + i, '$', len - i);
        if (d == NULL) break;
        size_t j = (size_t)(d - text);
        if (j + 3 < len && memcmp(d, "$${{", 4) == 0) {
            oom |= sb_put(&lit, text + seg, j - seg) < 0 || sb_put(&lit, "${{", 3) < 0;
            spaces_only = false;
            i = seg = j + 4;
        } else if (j + 2 < len && memcmp(d, "${{", 3) == 0) {
            oom |= sb_put(&lit, text + seg, j - seg) < 0;
            if (oom) break;
            if (lit.n > 0) {
                const char *t = arena_strndup(e, lit.p, lit.n);
                spaces_only &= all_space(lit.p, lit.n);
                oom |= t == NULL || add_part(e, t, lit.n, NULL) < 0;
                lit.n = 0;
            }
            size_t end = 0;
            const node_t *n = parse_embedded(&p, j, &end);
            if (n == NULL) break;
            oom |= add_part(e, NULL, 0, n) < 0;
            if (nexpr++ == 0) *first_end = end;
            i = seg = end;
        } else {
            i = j + 1;
        }
    }
    if (!p.failed && !oom) {
        oom |= sb_put(&lit, text + seg, len - seg) < 0;
        if (!oom && lit.n > 0) {
            const char *t = arena_strndup(e, lit.p, lit.n);
            spaces_only &= all_space(lit.p, lit.n);
            oom |= t == NULL || add_part(e, t, lit.n, NULL) < 0;
        }
    }
    sb_dispose(&lit);
    if (p.failed) {
        nx_expr_free(e); /* err is filled */
        return -EINVAL;
    }
    if (oom) return fail_compile(e, err, 0, "out of memory");
    if (nexpr == 0) {
        e->kind = TPL_LITERAL;
        e->text = e->nparts ? e->parts[0].text : "";
        e->len = e->nparts ? e->parts[0].len : 0;
    } else if (nexpr == 1 && spaces_only) {
        e->kind = TPL_WHOLE;
        for (size_t k = 0; k < e->nparts; k++)
            if (e->parts[k].expr != NULL) e->root = e->parts[k].expr;
    } else {
        e->kind = TPL_INTERP;
    }
    *out = e;
    return 0;
}

int nx_expr_compile(const char *text, size_t len, nx_expr_t **out, nx_expr_error_t *err) {
    nx_expr_error_t local;
    size_t first_end = 0;
    *out = NULL;
    return compile_template(text, len, out, err ? err : &local, &first_end);
}

int nx_expr_compile_bare(const char *text, size_t len, nx_expr_t **out, nx_expr_error_t *err) {
    nx_expr_error_t local;
    if (err == NULL) err = &local;
    *out = NULL;
    size_t start = 0;
    while (text != NULL && start < len && is_space(text[start]))
        start++;
    if (len - start >= 3 && memcmp(text + start, "${{", 3) == 0) {
        size_t first_end = 0;
        int rc = compile_template(text, len, out, err, &first_end);
        if (rc == 0 && (*out)->kind != TPL_WHOLE) {
            nx_expr_free(*out);
            *out = NULL;
            return fail_compile(NULL, err, first_end,
                                "text outside '${{ }}': a condition is one expression");
        }
        return rc;
    }
    nx_expr_t *e;
    int rc = start_compile(text, len, &e, err);
    if (rc < 0) return rc;
    parser_t p = {.e = e, .s = text, .len = len, .open = NO_OPEN, .err = err};
    const node_t *n = NULL;
    if (next(&p)) {
        if (p.tok.kind == TK_EOF)
            syntax(&p, start, "empty expression");
        else if ((n = parse_expr(&p)) != NULL && p.tok.kind != TK_EOF)
            unexpected(&p, "the end of the expression");
    }
    if (p.failed) {
        nx_expr_free(e);
        return -EINVAL;
    }
    e->kind = TPL_WHOLE;
    e->root = n;
    *out = e;
    return 0;
}

bool nx_expr_is_literal(const nx_expr_t *e) {
    return e != NULL && e->kind == TPL_LITERAL;
}

/* ---- evaluation ---- */

/* Where a run-time error goes; evaluation stops at the first one. */
typedef struct ev {
    const json_t *scope;
    char *err;
    size_t errlen;
} ev_t;

__attribute__((format(printf, 2, 3))) static json_t *fail(ev_t *ev, const char *fmt, ...) {
    if (ev->err != NULL && ev->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ev->err, ev->errlen, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

bool nx_expr_truthy(const json_t *v) {
    if (v == NULL) return false;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    case JSON_TRUE:
        return true;
    default:
        return false;
    }
}

/* Compares integer <i> with real <r> exactly (through doubles, 2^53 + 1 would equal 2^53). */
static int cmp_int_real(json_int_t i, double r) {
    if (r >= 0x1p63) return -1;
    if (r < -0x1p63) return 1;
    json_int_t t = (json_int_t)r; /* trunc(r), exact in both types */
    if (i != t) return i < t ? -1 : 1;
    double frac = r - (double)t;
    return frac > 0 ? -1 : frac < 0 ? 1 : 0;
}

static int cmp_numbers(const json_t *a, const json_t *b) {
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_integer(a)) return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b)) return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return x < y ? -1 : x > y;
}

static int cmp_strings(const json_t *a, const json_t *b) {
    size_t n = json_string_length(a), m = json_string_length(b);
    int c = memcmp(json_string_value(a), json_string_value(b), n < m ? n : m);
    return c != 0 ? c : n < m ? -1 : n > m;
}

/* Deep JSON equality where numbers compare by value (1 == 1.0), unlike json_equal. */
static bool equal(const json_t *a, const json_t *b) {
    if (a == b) return true;
    if (json_is_number(a) && json_is_number(b)) return cmp_numbers(a, b) == 0;
    if (json_typeof(a) != json_typeof(b)) return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return cmp_strings(a, b) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!equal(json_array_get(a, i), json_array_get(b, i))) return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char *k;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach((json_t *)a, k, klen, v) {
            const json_t *w = json_object_getn(b, k, klen);
            if (w == NULL || !equal(v, w)) return false;
        }
        return true;
    }
    default:
        return true; /* true, false, null: the type is the value */
    }
}

/* Appends <v> as text: strings as they are, null as nothing, the rest as compact JSON. */
static int to_text(sbuf_t *b, const json_t *v) {
    char num[32];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return sb_put(b, json_string_value(v), json_string_length(v));
    case JSON_NULL:
        return 0;
    case JSON_TRUE:
        return sb_put(b, "true", 4);
    case JSON_FALSE:
        return sb_put(b, "false", 5);
    case JSON_INTEGER:
        return sb_put(
            b, num,
            (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
    default:
        return json_dump_callback(v, sb_dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) == 0 ? 0 : -1;
    }
}

/* The string made of <b>'s bytes (consumed), or NULL with a message. */
static json_t *sb_string(ev_t *ev, sbuf_t *b) {
    json_t *s = json_stringn(b->p, b->n);
    sb_dispose(b);
    return s != NULL ? s : fail(ev, "cannot make a string (out of memory or bad UTF-8)");
}

static json_t *eval(ev_t *ev, const node_t *n);

/* <base>[<key>]: an array item by integer, an object member by string; anything else (and
 * anything out of range) is absent. Borrowed. */
static const json_t *index_get(const json_t *base, const json_t *key) {
    if (json_is_integer(key)) {
        json_int_t i = json_integer_value(key);
        return i < 0 ? NULL : json_array_get(base, (size_t)i);
    }
    if (json_is_string(key))
        return json_object_getn(base, json_string_value(key), json_string_length(key));
    return NULL;
}

/* For a path whose every step has a constant key (a.b['c'][0]), the value it names borrowed
 * from the scope (NULL = absent) with no refcount traffic; false when <n> is not such a path. */
static bool borrow_path(const node_t *n, const json_t *scope, const json_t **out) {
    const json_t *b;
    switch (n->kind) {
    case N_ROOT:
        *out = scope != NULL ? json_object_getn(scope, n->name, n->name_len) : NULL;
        return true;
    case N_MEMBER:
        if (!borrow_path(n->base, scope, &b)) return false;
        *out = b != NULL ? json_object_getn(b, n->name, n->name_len) : NULL;
        return true;
    case N_INDEX:
        if (n->kids[0]->kind != N_LIT || !borrow_path(n->base, scope, &b)) return false;
        *out = b != NULL ? index_get(b, n->kids[0]->lit) : NULL;
        return true;
    default:
        return false;
    }
}

static json_t *new_ref(const json_t *v) {
    return v != NULL ? json_incref((json_t *)v) : json_null();
}

static json_t *eval_path(ev_t *ev, const node_t *n) {
    const json_t *v;
    if (borrow_path(n, ev->scope, &v)) return new_ref(v);
    json_t *base = eval(ev, n->base);
    if (base == NULL) return NULL;
    json_t *r;
    if (n->kind == N_MEMBER) {
        r = new_ref(json_object_getn(base, n->name, n->name_len));
    } else {
        json_t *key = eval(ev, n->kids[0]);
        r = key != NULL ? new_ref(index_get(base, key)) : NULL;
        json_decref(key);
    }
    json_decref(base);
    return r;
}

static json_t *number_or_overflow(ev_t *ev, double d) {
    return isfinite(d) ? json_real(d) : fail(ev, "number overflow");
}

static json_t *add(ev_t *ev, const json_t *a, const json_t *b) {
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t r;
        if (!__builtin_add_overflow(json_integer_value(a), json_integer_value(b), &r))
            return json_integer(r);
    }
    if (json_is_number(a) && json_is_number(b))
        return number_or_overflow(ev, json_number_value(a) + json_number_value(b));
    if (!json_is_string(a) && !json_is_string(b))
        return fail(ev, "cannot add %s and %s ('+' adds numbers or joins strings)",
                    nx_json_type_name(a), nx_json_type_name(b));
    sbuf_t s;
    sb_init(&s);
    if (to_text(&s, a) < 0 || to_text(&s, b) < 0) {
        sb_dispose(&s);
        return fail(ev, "cannot convert a value to text");
    }
    return sb_string(ev, &s);
}

static json_t *compare(ev_t *ev, const node_t *n, const json_t *a, const json_t *b) {
    if (n->op == TK_EQ) return json_boolean(equal(a, b));
    if (n->op == TK_NE) return json_boolean(!equal(a, b));
    int c;
    if (json_is_number(a) && json_is_number(b))
        c = cmp_numbers(a, b);
    else if (json_is_string(a) && json_is_string(b))
        c = cmp_strings(a, b);
    else
        return fail(ev, "cannot compare %s and %s with '%s' (only numbers or strings)",
                    nx_json_type_name(a), nx_json_type_name(b), TOK_TEXT[n->op]);
    switch (n->op) {
    case TK_LT:
        return json_boolean(c < 0);
    case TK_LE:
        return json_boolean(c <= 0);
    case TK_GT:
        return json_boolean(c > 0);
    default:
        return json_boolean(c >= 0);
    }
}

static size_t utf8_chars(const char *s, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xc0) != 0x80;
    return count;
}

static json_t *fn_contains(ev_t *ev, const json_t *h, const json_t *needle) {
    if (json_is_null(h)) return json_false(); /* a missing list contains nothing */
    if (json_is_array(h)) {
        for (size_t i = 0; i < json_array_size(h); i++)
            if (equal(json_array_get(h, i), needle)) return json_true();
        return json_false();
    }
    if (!json_is_string(h) && !json_is_object(h))
        return fail(ev, "contains() needs a string, array or object, got %s", nx_json_type_name(h));
    if (!json_is_string(needle))
        return fail(ev, "contains() on %s %s needs a string to look for, got %s",
                    json_is_string(h) ? "a" : "an", nx_json_type_name(h),
                    nx_json_type_name(needle));
    if (json_is_object(h))
        return json_boolean(
            json_object_getn(h, json_string_value(needle), json_string_length(needle)) != NULL);
    return json_boolean(json_string_length(needle) == 0 ||
                        memmem(json_string_value(h), json_string_length(h),
                               json_string_value(needle), json_string_length(needle)) != NULL);
}

static json_t *fn_join(ev_t *ev, const json_t *a, const json_t *sep) {
    if (sep != NULL && !json_is_string(sep))
        return fail(ev, "join() separator must be a string, got %s", nx_json_type_name(sep));
    if (json_is_null(a)) return json_string("");
    if (!json_is_array(a)) return fail(ev, "join() needs an array, got %s", nx_json_type_name(a));
    const char *s = sep != NULL ? json_string_value(sep) : ",";
    size_t slen = sep != NULL ? json_string_length(sep) : 1;
    sbuf_t b;
    sb_init(&b);
    for (size_t i = 0; i < json_array_size(a); i++) {
        if ((i > 0 && sb_put(&b, s, slen) < 0) || to_text(&b, json_array_get(a, i)) < 0) {
            sb_dispose(&b);
            return fail(ev, "cannot convert a value to text");
        }
    }
    return sb_string(ev, &b);
}

static json_t *fn_json(ev_t *ev, json_t *x) {
    if (json_is_string(x)) {
        json_t *v = json_loadb(json_string_value(x), json_string_length(x),
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        return v != NULL ? v : json_incref(x);
    }
    sbuf_t b;
    sb_init(&b);
    if (json_dump_callback(x, sb_dump_cb, &b, JSON_COMPACT | JSON_ENCODE_ANY) < 0) {
        sb_dispose(&b);
        return fail(ev, "cannot convert a value to JSON");
    }
    return sb_string(ev, &b);
}

static json_t *call(ev_t *ev, const node_t *n) {
    json_t *a = eval(ev, n->kids[0]);
    if (a == NULL) return NULL;
    if (n->op == F_DEFAULT) {
        /* the fallback is evaluated only when needed */
        if (!json_is_null(a)) return a;
        json_decref(a);
        return eval(ev, n->kids[1]);
    }
    json_t *b = NULL, *r = NULL;
    if (n->nkids > 1 && (b = eval(ev, n->kids[1])) == NULL) {
        json_decref(a);
        return NULL;
    }
    switch ((fn_id_t)n->op) {
    case F_LENGTH:
        if (json_is_string(a))
            r = json_integer((json_int_t)utf8_chars(json_string_value(a), json_string_length(a)));
        else if (json_is_array(a))
            r = json_integer((json_int_t)json_array_size(a));
        else if (json_is_object(a))
            r = json_integer((json_int_t)json_object_size(a));
        else if (json_is_null(a))
            r = json_integer(0);
        else
            r = fail(ev, "length() needs a string, array or object, got %s", nx_json_type_name(a));
        break;
    case F_CONTAINS:
        r = fn_contains(ev, a, b);
        break;
    case F_JOIN:
        r = fn_join(ev, a, b);
        break;
    case F_JSON:
        r = fn_json(ev, a);
        break;
    case F_DEFAULT:
        break;
    }
    json_decref(a);
    json_decref(b);
    return r;
}

/* kids[0] + kids[1] + ... left to right. Once the sum is a string every further + appends, so
 * the rest is built in one buffer rather than one new string per operand. */
static json_t *eval_add(ev_t *ev, const node_t *n) {
    json_t *r = eval(ev, n->kids[0]);
    size_t i = 1;
    for (; r != NULL && i < n->nkids && !json_is_string(r); i++) {
        json_t *a = r, *b = eval(ev, n->kids[i]);
        r = b != NULL ? add(ev, a, b) : NULL;
        json_decref(a);
        json_decref(b);
    }
    if (r == NULL || i == n->nkids) return r;
    sbuf_t s;
    sb_init(&s);
    int rc = to_text(&s, r);
    json_decref(r);
    for (; rc == 0 && i < n->nkids; i++) {
        json_t *b = eval(ev, n->kids[i]);
        if (b == NULL) {
            sb_dispose(&s);
            return NULL;
        }
        rc = to_text(&s, b);
        json_decref(b);
    }
    if (rc < 0) {
        sb_dispose(&s);
        return fail(ev, "cannot convert a value to text");
    }
    return sb_string(ev, &s);
}

static json_t *eval(ev_t *ev, const node_t *n) {
    json_t *a, *b, *r;
    switch (n->kind) {
    case N_LIT:
        return json_incref(n->lit);
    case N_ROOT:
    case N_MEMBER:
    case N_INDEX:
        return eval_path(ev, n);
    case N_NOT:
        if ((a = eval(ev, n->base)) == NULL) return NULL;
        r = json_boolean(!nx_expr_truthy(a));
        json_decref(a);
        return r;
    case N_NEG:
        if ((a = eval(ev, n->base)) == NULL) return NULL;
        if (json_is_integer(a) && json_integer_value(a) != INT64_MIN)
            r = json_integer(-json_integer_value(a));
        else if (json_is_number(a))
            r = json_real(-json_number_value(a));
        else
            r = fail(ev, "unary '-' needs a number, got %s", nx_json_type_name(a));
        json_decref(a);
        return r;
    case N_ADD:
        return eval_add(ev, n);
    case N_AND:
    case N_OR:
        /* short-circuit, yielding the operand that decided (JS semantics) */
        r = eval(ev, n->kids[0]);
        for (size_t i = 1; i < n->nkids && r != NULL; i++) {
            if (nx_expr_truthy(r) != (n->kind == N_AND)) break;
            json_decref(r);
            r = eval(ev, n->kids[i]);
        }
        return r;
    case N_CMP:
        if ((a = eval(ev, n->kids[0])) == NULL) return NULL;
        if ((b = eval(ev, n->kids[1])) == NULL) {
            json_decref(a);
            return NULL;
        }
        r = compare(ev, n, a, b);
        json_decref(a);
        json_decref(b);
        return r;
    case N_ARRAY:
        if ((r = json_array()) == NULL) return fail(ev, "out of memory");
        for (size_t i = 0; i < n->nkids; i++) {
            if ((a = eval(ev, n->kids[i])) == NULL || json_array_append_new(r, a) < 0) {
                json_decref(r);
                return a == NULL ? NULL : fail(ev, "out of memory");
            }
        }
        return r;
    case N_OBJECT:
        if ((r = json_object()) == NULL) return fail(ev, "out of memory");
        for (size_t i = 0; i < n->nkids; i++) {
            if ((a = eval(ev, n->kids[i])) == NULL ||
                json_object_setn_new_nocheck(r, n->keys[i], n->key_lens[i], a) < 0) {
                json_decref(r);
                return a == NULL ? NULL : fail(ev, "out of memory");
            }
        }
        return r;
    case N_CALL:
        return call(ev, n);
    }
    return fail(ev, "bad expression");
}

json_t *nx_expr_eval(const nx_expr_t *e, const json_t *scope, char *err, size_t errlen) {
    ev_t ev = {.scope = scope, .err = err, .errlen = errlen};
    if (e == NULL) return fail(&ev, "no expression");
    switch (e->kind) {
    case TPL_LITERAL:
        return json_stringn_nocheck(e->text, e->len); /* checked at compile */
    case TPL_WHOLE:
        return eval(&ev, e->root);
    case TPL_INTERP:
        break;
    }
    sbuf_t b;
    sb_init(&b);
    for (size_t i = 0; i < e->nparts; i++) {
        const part_t *pt = &e->parts[i];
        if (pt->expr == NULL) {
            if (sb_put(&b, pt->text, pt->len) < 0) goto oom;
            continue;
        }
        json_t *v = eval(&ev, pt->expr);
        if (v == NULL) {
            sb_dispose(&b);
            return NULL;
        }
        int rc = to_text(&b, v);
        json_decref(v);
        if (rc < 0) goto oom;
    }
    return sb_string(&ev, &b);
oom:
    sb_dispose(&b);
    return fail(&ev, "cannot convert a value to text");
}

static unsigned refs_walk(const node_t *n, nx_expr_ref_fn fn, void *arg) {
    unsigned bits = 0;
    switch (n->kind) {
    case N_ROOT:
        return n->bits;
    case N_MEMBER:
        if (n->base->kind == N_ROOT && n->base->bits == NX_EXPR_ROOT_STEPS) {
            if (fn != NULL) fn(arg, n->name);
            return NX_EXPR_ROOT_STEPS;
        }
        break;
    default:
        break;
    }
    if (n->base != NULL) bits |= refs_walk(n->base, fn, arg);
    for (size_t i = 0; i < n->nkids; i++)
        bits |= refs_walk(n->kids[i], fn, arg);
    return bits;
}

unsigned nx_expr_refs(const nx_expr_t *e, nx_expr_ref_fn fn, void *arg) {
    if (e == NULL) return 0;
    if (e->kind == TPL_WHOLE) return refs_walk(e->root, fn, arg);
    unsigned bits = 0;
    if (e->kind == TPL_INTERP)
        for (size_t i = 0; i < e->nparts; i++)
            if (e->parts[i].expr != NULL) bits |= refs_walk(e->parts[i].expr, fn, arg);
    return bits;
}

/* ---- JSON templates ---- */

typedef enum jt_kind { JT_CONST, JT_EXPR, JT_ARRAY, JT_OBJECT } jt_kind_t;

/* One node of a JSON template, mirroring the value it was compiled from. A subtree without
 * any expression is folded into one JT_CONST whose value every evaluation shares. */
struct nx_jtemplate {
    jt_kind_t kind;
    json_t *value;   /* JT_CONST (owned) */
    nx_expr_t *expr; /* JT_EXPR (owned) */
    nx_jtemplate_t **items;
    char **keys; /* JT_OBJECT: NUL-terminated, key_lens[i] bytes */
    size_t *key_lens;
    size_t count;
};

void nx_jtemplate_free(nx_jtemplate_t *t) {
    if (t == NULL) return;
    json_decref(t->value);
    nx_expr_free(t->expr);
    for (size_t i = 0; i < t->count; i++) {
        nx_jtemplate_free(t->items[i]);
        if (t->keys != NULL) free(t->keys[i]);
    }
    free(t->items);
    free(t->keys);
    free(t->key_lens);
    free(t);
}

/* Compile state: the JSON-pointer path of the value being compiled, for error messages. */
typedef struct jt_ctx {
    nx_expr_error_t *err;
    char path[512];
    size_t pathlen;
} jt_ctx_t;

/* Appends "/<segment>" (with ~ and / escaped as in JSON pointers); returns the old length. */
static size_t path_push(jt_ctx_t *c, const char *seg, size_t len) {
    size_t old = c->pathlen, cap = sizeof(c->path) - 1;
    if (c->pathlen < cap) c->path[c->pathlen++] = '/';
    for (size_t i = 0; i < len && c->pathlen < cap; i++) {
        const char *esc = seg[i] == '~' ? "~0" : seg[i] == '/' ? "~1" : NULL;
        if (esc == NULL) {
            c->path[c->pathlen++] = seg[i];
        } else if (c->pathlen + 2 <= cap) {
            c->path[c->pathlen++] = esc[0];
            c->path[c->pathlen++] = esc[1];
        }
    }
    c->path[c->pathlen] = '\0';
    return old;
}

static nx_jtemplate_t *jt_fail(jt_ctx_t *c, nx_jtemplate_t *t, const char *msg) {
    nx_jtemplate_free(t);
    if (msg != NULL) {
        snprintf(c->err->message, sizeof(c->err->message), "%s", msg);
        c->err->offset = 0;
    }
    return NULL;
}

static nx_jtemplate_t *jt_compile(jt_ctx_t *c, const json_t *v) {
    nx_jtemplate_t *t = calloc(1, sizeof(*t));
    if (t == NULL) return jt_fail(c, NULL, "out of memory");
    if (json_is_string(v)) {
        if (nx_expr_compile(json_string_value(v), json_string_length(v), &t->expr, c->err) < 0)
            return jt_fail(c, t, NULL);
        t->kind = JT_EXPR;
        if (nx_expr_is_literal(t->expr)) {
            t->kind = JT_CONST;
            t->value = json_stringn_nocheck(t->expr->text, t->expr->len);
            nx_expr_free(t->expr);
            t->expr = NULL;
            if (t->value == NULL) return jt_fail(c, t, "out of memory");
        }
        return t;
    }
    if (!json_is_array(v) && !json_is_object(v)) {
        t->kind = JT_CONST;
        t->value = json_deep_copy(v); /* a scalar: our own, so the caller may change theirs */
        return t->value != NULL ? t : jt_fail(c, t, "out of memory");
    }
    size_t n = json_is_array(v) ? json_array_size(v) : json_object_size(v);
    t->kind = json_is_array(v) ? JT_ARRAY : JT_OBJECT;
    t->items = calloc(n ? n : 1, sizeof(*t->items));
    if (t->items == NULL) return jt_fail(c, t, "out of memory");
    if (t->kind == JT_OBJECT) {
        t->keys = calloc(n ? n : 1, sizeof(*t->keys));
        t->key_lens = calloc(n ? n : 1, sizeof(*t->key_lens));
        if (t->keys == NULL || t->key_lens == NULL) return jt_fail(c, t, "out of memory");
    }
    bool constant = true;
    if (t->kind == JT_ARRAY) {
        for (size_t i = 0; i < n; i++) {
            char seg[24];
            size_t old = path_push(c, seg, (size_t)snprintf(seg, sizeof(seg), "%zu", i));
            nx_jtemplate_t *child = jt_compile(c, json_array_get(v, i));
            if (child == NULL) return jt_fail(c, t, NULL);
            c->pathlen = old;
            c->path[old] = '\0';
            t->items[t->count++] = child;
            constant &= child->kind == JT_CONST;
        }
    } else {
        const char *k;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach((json_t *)v, k, klen, m) {
            size_t old = path_push(c, k, klen);
            nx_jtemplate_t *child = jt_compile(c, m);
            if (child == NULL) return jt_fail(c, t, NULL);
            c->pathlen = old;
            c->path[old] = '\0';
            t->keys[t->count] = malloc(klen + 1);
            if (t->keys[t->count] == NULL) {
                nx_jtemplate_free(child);
                return jt_fail(c, t, "out of memory");
            }
            memcpy(t->keys[t->count], k, klen);
            t->keys[t->count][klen] = '\0';
            t->key_lens[t->count] = klen;
            t->items[t->count++] = child;
            constant &= child->kind == JT_CONST;
        }
    }
    if (!constant) return t;
    /* no expression anywhere below: build the value once and share it */
    json_t *value = t->kind == JT_ARRAY ? json_array() : json_object();
    for (size_t i = 0; value != NULL && i < t->count; i++) {
        int rc = t->kind == JT_ARRAY ? json_array_append(value, t->items[i]->value)
                                     : json_object_setn_nocheck(value, t->keys[i], t->key_lens[i],
                                                                t->items[i]->value);
        if (rc < 0) {
            json_decref(value);
            value = NULL;
        }
    }
    if (value == NULL) return jt_fail(c, t, "out of memory");
    for (size_t i = 0; i < t->count; i++) {
        nx_jtemplate_free(t->items[i]);
        if (t->keys != NULL) free(t->keys[i]);
    }
    free(t->items);
    free(t->keys);
    free(t->key_lens);
    *t = (nx_jtemplate_t){.kind = JT_CONST, .value = value};
    return t;
}

int nx_jtemplate_compile(const json_t *value, nx_jtemplate_t **out, nx_expr_error_t *err,
                         char *where, size_t wherelen) {
    nx_expr_error_t local;
    jt_ctx_t c = {.err = err ? err : &local};
    *out = NULL;
    if (value == NULL) {
        snprintf(c.err->message, sizeof(c.err->message), "no value");
        c.err->offset = 0;
        if (where != NULL && wherelen > 0) where[0] = '\0';
        return -EINVAL;
    }
    *out = jt_compile(&c, value);
    if (*out != NULL) return 0;
    if (where != NULL && wherelen > 0) snprintf(where, wherelen, "%s", c.path);
    return -EINVAL;
}

json_t *nx_jtemplate_eval(const nx_jtemplate_t *t, const json_t *scope, char *err, size_t errlen) {
    ev_t ev = {.scope = scope, .err = err, .errlen = errlen};
    if (t == NULL) return fail(&ev, "no template");
    json_t *r, *v;
    switch (t->kind) {
    case JT_CONST:
        return json_incref(t->value);
    case JT_EXPR:
        return nx_expr_eval(t->expr, scope, err, errlen);
    case JT_ARRAY:
        if ((r = json_array()) == NULL) return fail(&ev, "out of memory");
        for (size_t i = 0; i < t->count; i++) {
            if ((v = nx_jtemplate_eval(t->items[i], scope, err, errlen)) == NULL ||
                json_array_append_new(r, v) < 0) {
                json_decref(r);
                return v == NULL ? NULL : fail(&ev, "out of memory");
            }
        }
        return r;
    case JT_OBJECT:
        if ((r = json_object()) == NULL) return fail(&ev, "out of memory");
        for (size_t i = 0; i < t->count; i++) {
            if ((v = nx_jtemplate_eval(t->items[i], scope, err, errlen)) == NULL ||
                json_object_setn_new_nocheck(r, t->keys[i], t->key_lens[i], v) < 0) {
                json_decref(r);
                return v == NULL ? NULL : fail(&ev, "out of memory");
            }
        }
        return r;
    }
    return fail(&ev, "bad template");
}

unsigned nx_jtemplate_refs(const nx_jtemplate_t *t, nx_expr_ref_fn fn, void *arg) {
    if (t == NULL) return 0;
    unsigned bits = nx_expr_refs(t->expr, fn, arg);
    for (size_t i = 0; i < t->count; i++)
        bits |= nx_jtemplate_refs(t->items[i], fn, arg);
    return bits;
}
