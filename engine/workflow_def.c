/* Workflow definitions: walks the `workflows:` sequence of the configuration tree into the
 * immutable nx_workflows_t the executors of every shard read. Everything a run could trip over
 * is checked here, once (keys, kinds, ids, expressions and the order of the steps they read,
 * backends, ranges, the input schema), so a bad definition is a load error with file:line. */
#include "workflow.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nexus/errors.h"

#define NX_WF_MAX 1024                /* workflows in one configuration */
#define NX_WF_MAX_STEPS 10000         /* steps of one workflow, at any depth */
#define NX_WF_NAME_MAX 64             /* workflow names and step ids */
#define NX_WF_TOOL_MAX 128            /* MCP tool names */
#define NX_WF_TEXT_MAX 4096           /* description, call target */
#define NX_WF_DAY_MS 86400000ull      /* the longest deadline and step timeout */
#define NX_WF_RETRY_MAX_MS 3600000ull /* retry base and cap, as for servers[].retry */
#define NX_WF_CACHE_MAX_MS (30ull * NX_WF_DAY_MS)
#define NX_WF_CONCURRENCY_MAX 1024
#define NX_WF_BATCH_MAX 10000
#define NX_WF_DEFAULT_DEADLINE_MS 60000

/* Tools nexus serves itself: a workflow tool with one of these names would hide it. */
static const char *const builtin_tools[] = {"health_check",
                                            "get_server_metrics",
                                            "get_available_tools",
                                            "list_connections",
                                            "get_connection_metrics",
                                            "test_connection",
                                            NULL};

static const char *const kind_names[] = {"call", "rest",     "parallel", "switch",
                                         "map",  "fallback", "group"};

const char *nx_step_kind_name(nx_step_kind_t k) {
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "unknown";
}

/* ---- the keys of a step and the kinds each belongs to ---- */

enum {
    K_CALL = 1u << 0, /* call: (MCP tool, native tool or rest backend) */
    K_PAR = 1u << 1,
    K_SW = 1u << 2,
    K_MAP = 1u << 3,
    K_FB = 1u << 4,
    K_GRP = 1u << 5,
    K_ALL = 0x3f,
};

static const struct {
    const char *key;
    unsigned kinds;
    bool is_kind; /* the key that makes the step this kind */
} step_keys[] = {
    {"call", K_CALL, true},
    {"parallel", K_PAR, true},
    {"switch", K_SW, true},
    {"map", K_MAP, true},
    {"fallback", K_FB, true},
    {"steps", K_GRP, true},
    {"id", K_ALL, false},
    {"if", K_ALL, false},
    {"timeout", K_ALL, false},
    {"retry", K_ALL, false},
    {"cache", K_CALL, false},
    {"on_error", K_ALL, false},
    {"with", K_CALL, false},
    {"method", K_CALL, false},
    {"path", K_CALL, false},
    {"query", K_CALL, false},
    {"headers", K_CALL, false},
    {"join", K_PAR, false},
    {"max_concurrency", K_PAR, false},
};
#define NSTEP_KEYS (sizeof(step_keys) / sizeof(step_keys[0]))

static const char *kinds_phrase(unsigned kinds) {
    switch (kinds) {
    case K_CALL:
        return "call steps";
    case K_PAR:
        return "parallel steps";
    default:
        return "other steps";
    }
}

static const char *key_word(unsigned kind_bit) {
    switch (kind_bit) {
    case K_CALL:
        return "call";
    case K_PAR:
        return "parallel";
    case K_SW:
        return "switch";
    case K_MAP:
        return "map";
    case K_FB:
        return "fallback";
    default:
        return "steps";
    }
}

/* ---- small text helpers ---- */

/* Writes <s> as 'text' for a message: at most 40 bytes, control and non-ASCII bytes as '?'. */
static void quote(char *out, size_t cap, const char *s, size_t n) {
    char body[48];
    size_t shown = n > 40 ? 40 : n, i;
    for (i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)s[i];
        body[i] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
    }
    body[i] = '\0';
    snprintf(out, cap, "'%s%s'", body, n > shown ? "..." : "");
}

/* "a mapping", "a sequence", "an empty value", "null" or 'text': what a message says was found. */
static void got_node(char *out, size_t cap, const nx_cfg_node_t *n) {
    size_t len;
    const char *text = nx_cfg_text(n, &len);
    if (nx_cfg_kind(n) == NX_CFG_MAPPING)
        snprintf(out, cap, "a mapping");
    else if (nx_cfg_kind(n) == NX_CFG_SEQUENCE)
        snprintf(out, cap, "a sequence");
    else if (nx_cfg_is_null(n))
        snprintf(out, cap, len == 0 ? "an empty value" : "null");
    else
        quote(out, cap, text, len);
}

/* Did-you-mean suggestions come from config.c (one notion of "close" for every message). */
typedef nx_cfg_suggest_t suggest_t;

static void suggest_try(suggest_t *sg, const char *cand) {
    nx_cfg_suggest_try(sg, cand, strlen(cand));
}

/* " (did you mean 'x'?)" or "". */
static void suggest_tail(char *out, size_t cap, const suggest_t *sg) {
    if (sg->best[0] != '\0')
        snprintf(out, cap, " (did you mean '%.63s'?)", sg->best);
    else if (cap > 0)
        out[0] = '\0';
}

static bool name_ok(const char *s, size_t n, bool upper) {
    if (n == 0 || n > NX_WF_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
                  (upper && ch >= 'A' && ch <= 'Z');
        if (!ok) return false;
    }
    return true;
}

/* MCP tool names: 1 to 128 of [A-Za-z0-9_.-]. */
static bool tool_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > NX_WF_TOOL_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && strchr("_.-", s[i]) == NULL) return false;
    return true;
}

/* A tool name as a backend spells it: anything printable, no spaces. */
static bool remote_tool_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > NX_WF_TOOL_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f) return false;
    return true;
}

static bool in_list(const char *const *list, const char *s) {
    for (; list != NULL && *list != NULL; list++)
        if (strcmp(*list, s) == 0) return true;
    return false;
}

/* ---- the state of one parse ---- */

/* What the checks after the walk need to know of each step (by nx_step_t.index). */
typedef struct step_info {
    const nx_cfg_node_t *node; /* the step's mapping */
    json_t *source;            /* its object in the workflow's source (borrowed) */
    int parent;                /* the enclosing step, -1 at the top */
    const void *list;          /* identity of the list holding it */
    size_t pos;                /* its position there */
    bool concurrent;           /* that list runs at once (the branches of a parallel) */
} step_info_t;

/* An expression written somewhere, for the reference checks once every id is known. */
typedef struct site {
    const nx_cfg_node_t *node; /* where it is written */
    nx_expr_t *expr;
    bool owned;  /* compiled for the checks only (a string inside a JSON template) */
    int owner;   /* the step that evaluates it; -1 = output:, after every step */
    bool in_map; /* evaluated inside the steps of a map, where item and index exist */
} site_t;

typedef struct wctx {
    const nx_config_t *c;
    const char *const *native;
    nx_config_error_t *err;
    nx_workflow_t *wf;
    nx_step_t **steps; /* by index; becomes wf->by_index */
    step_info_t *info;
    size_t nsteps, cap;
    site_t *sites;
    size_t nsites, sites_cap;
} wctx_t;

/* Which strings met while converting a node are templates (compiled and checked), or none. */
typedef struct tmpl {
    int owner;
    bool in_map;
} tmpl_t;

static int add_site(wctx_t *x, const nx_cfg_node_t *n, nx_expr_t *e, bool owned, int owner,
                    bool in_map) {
    if (x->nsites == x->sites_cap) {
        size_t cap = x->sites_cap ? x->sites_cap * 2 : 32;
        site_t *s = realloc(x->sites, cap * sizeof(*s));
        if (s == NULL) {
            if (owned) nx_expr_free(e);
            return nx_cfg_fail(x->err, n, "out of memory");
        }
        x->sites = s;
        x->sites_cap = cap;
    }
    x->sites[x->nsites++] = (site_t){n, e, owned, owner, in_map};
    return 0;
}

/* Compiles <len> bytes of <text> written at <n> (bare: a condition; else a template) and
 * records it for the reference checks. With <out> the caller keeps the expression, else it is
 * kept for the checks only. */
static int compile_at(wctx_t *x, const nx_cfg_node_t *n, const char *text, size_t len, bool bare,
                      const tmpl_t *t, nx_expr_t **out) {
    nx_expr_error_t e = {0};
    nx_expr_t *expr = NULL;
    int rc =
        bare ? nx_expr_compile_bare(text, len, &expr, &e) : nx_expr_compile(text, len, &expr, &e);
    if (rc != 0) {
        e.message[sizeof(e.message) - 1] = '\0';
        return nx_cfg_fail(x->err, n, "expression error at column %zu: %s", e.offset + 1,
                           e.message[0] ? e.message : "invalid expression");
    }
    if (out != NULL) *out = expr;
    return add_site(x, n, expr, out == NULL, t->owner, t->in_map);
}

/* ---- YAML nodes -> JSON ---- */

/* JSON number syntax: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; *<integer> when neither a
 * fraction nor an exponent is written. */
static bool json_number_text(const char *s, size_t n, bool *integer) {
    size_t i = 0;
    *integer = true;
    if (i < n && s[i] == '-') i++;
    if (i == n || s[i] < '0' || s[i] > '9') return false;
    if (s[i] == '0')
        i++;
    else
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start) return false;
        *integer = false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start) return false;
        *integer = false;
    }
    return i == n;
}

/* A scalar as JSON: quoted scalars are strings; plain ones spelling null, true/false or a JSON
 * number are those (integers beyond 64 bits become reals); everything else is a string. */
static json_t *scalar_json(const nx_cfg_node_t *n, bool *is_string) {
    size_t len;
    const char *text = nx_cfg_text(n, &len);
    bool integer;
    *is_string = false;
    if (!nx_cfg_is_quoted(n)) {
        if (nx_cfg_is_null(n)) return json_null();
        if (!strcmp(text, "true") || !strcmp(text, "True") || !strcmp(text, "TRUE"))
            return json_true();
        if (!strcmp(text, "false") || !strcmp(text, "False") || !strcmp(text, "FALSE"))
            return json_false();
        if (json_number_text(text, len, &integer)) {
            if (integer) {
                errno = 0;
                long long v = strtoll(text, NULL, 10);
                if (errno == 0) return json_integer((json_int_t)v);
            }
            double d = strtod(text, NULL);
            if (isfinite(d)) return json_real(d);
        }
    }
    *is_string = true;
    return json_stringn(text, len);
}

/* Converts <n> to JSON; with <t>, every string is also compiled as a template and checked.
 * NULL with x->err filled on failure. */
static json_t *node_json(wctx_t *x, const nx_cfg_node_t *n, const tmpl_t *t) {
    json_t *out;
    if (nx_cfg_kind(n) == NX_CFG_SCALAR) {
        size_t len;
        const char *text = nx_cfg_text(n, &len);
        bool is_string;
        if (strlen(text) != len) {
            nx_cfg_fail(x->err, n, "contains a NUL character");
            return NULL;
        }
        out = scalar_json(n, &is_string);
        if (out == NULL) {
            nx_cfg_fail(x->err, n, "is not valid UTF-8");
            return NULL;
        }
        if (is_string && t != NULL && compile_at(x, n, text, len, false, t, NULL) != 0) {
            json_decref(out);
            return NULL;
        }
        return out;
    }
    bool map = nx_cfg_kind(n) == NX_CFG_MAPPING;
    out = map ? json_object() : json_array();
    if (out == NULL) {
        nx_cfg_fail(x->err, n, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < nx_cfg_count(n); i++) {
        const nx_cfg_node_t *item = nx_cfg_at(n, i);
        json_t *v = node_json(x, item, t);
        if (v == NULL) {
            json_decref(out);
            return NULL;
        }
        if ((map ? json_object_set_new(out, nx_cfg_key(item), v) : json_array_append_new(out, v)) <
            0) {
            json_decref(out);
            nx_cfg_fail_key(x->err, item, "out of memory");
            return NULL;
        }
    }
    return out;
}

/* The node a JSON Pointer-like <ptr> ("/a/0/b") names inside <n>, or the deepest one found. */
static const nx_cfg_node_t *node_at(const nx_cfg_node_t *n, const char *ptr) {
    while (ptr != NULL && *ptr == '/') {
        char seg[256];
        size_t k = 0;
        ptr++;
        while (*ptr != '\0' && *ptr != '/') {
            char ch = *ptr++;
            if (ch == '~' && (*ptr == '0' || *ptr == '1')) ch = *ptr++ == '1' ? '/' : '~';
            if (k + 1 < sizeof(seg)) seg[k++] = ch;
        }
        seg[k] = '\0';
        const nx_cfg_node_t *next = NULL;
        if (nx_cfg_kind(n) == NX_CFG_MAPPING) {
            next = nx_cfg_get(n, seg);
        } else if (nx_cfg_kind(n) == NX_CFG_SEQUENCE && k > 0 && strspn(seg, "0123456789") == k) {
            next = nx_cfg_at(n, strtoul(seg, NULL, 10));
        }
        if (next == NULL) break;
        n = next;
    }
    return n;
}

/* Compiles the JSON template written at <n> (its strings already checked one by one). */
static int template_at(wctx_t *x, const nx_cfg_node_t *n, const tmpl_t *t, nx_jtemplate_t **out) {
    nx_expr_error_t e = {0};
    char where[256] = "";
    json_t *v = node_json(x, n, t);
    if (v == NULL) return NX_ECONFIG;
    int rc = nx_jtemplate_compile(v, out, &e, where, sizeof(where));
    json_decref(v);
    if (rc != 0) {
        e.message[sizeof(e.message) - 1] = '\0';
        where[sizeof(where) - 1] = '\0';
        return nx_cfg_fail(x->err, node_at(n, where), "expression error at column %zu: %s",
                           e.offset + 1, e.message[0] ? e.message : "invalid template");
    }
    return 0;
}

/* ---- typed readers ---- */

/* Points *<text> at scalar <n>: a string without NULs of at most <max> bytes, not null. */
static int read_text(wctx_t *x, const nx_cfg_node_t *n, size_t max, const char **text) {
    char got[64];
    size_t len;
    const char *s = nx_cfg_text(n, &len);
    if (s == NULL || nx_cfg_is_null(n)) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(x->err, n, "expected a string, got %s", got);
    }
    if (strlen(s) != len) return nx_cfg_fail(x->err, n, "contains a NUL character");
    if (len > max) return nx_cfg_fail(x->err, n, "is longer than %zu characters", max);
    *text = s;
    return 0;
}

static int dup_text(wctx_t *x, const nx_cfg_node_t *n, const char *s, char **out) {
    if ((*out = strdup(s)) == NULL) return nx_cfg_fail(x->err, n, "out of memory");
    return 0;
}

static int read_u32(wctx_t *x, const nx_cfg_node_t *n, uint64_t min, uint64_t max, uint32_t *out) {
    uint64_t v;
    int rc = nx_cfg_read_uint(n, min, max, &v, x->err);
    if (rc == 0) *out = (uint32_t)v;
    return rc;
}

/* A bare expression or one ${{ }} (if:, elif:, items:); booleans and numbers written plainly
 * are expressions too. <what> says what was expected. */
#define COND "a condition like input.n > 3"

static int read_cond(wctx_t *x, const nx_cfg_node_t *n, const char *what, const tmpl_t *t,
                     nx_expr_t **out) {
    char got[64];
    size_t len;
    const char *text = nx_cfg_text(n, &len);
    if (text == NULL || (nx_cfg_is_null(n) && len == 0)) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(x->err, n, "expected %s, got %s", what, got);
    }
    if (strlen(text) != len) return nx_cfg_fail(x->err, n, "contains a NUL character");
    return compile_at(x, n, text, len, true, t, out);
}

/* ---- call: targets ---- */

/* How a call: target resolves against the servers. */
typedef struct resolved {
    nx_step_kind_t kind;
    const nx_server_config_t *server;                    /* NULL for a native tool */
    char tool[NX_SERVER_NAME_MAX + 16 + NX_WF_TOOL_MAX]; /* NX_STEP_CALL: the catalog name */
} resolved_t;

/* Resolves <target> in <c>: "server.tool" is an MCP tool, "name" a rest backend or else a
 * native tool (checked against <native> when known). -1 with <msg> when it cannot be. */
static int resolve_call(const nx_config_t *c, const char *const *native, const char *target,
                        resolved_t *r, char *msg, size_t cap) {
    const nx_servers_config_t *sv = &c->servers;
    const char *dot = strchr(target, '.');
    char name[NX_SERVER_NAME_MAX + 1], tail[96], q[64];
    suggest_t sg;
    nx_cfg_suggest_init(&sg, target);
    memset(r, 0, sizeof(*r));
    if (dot != NULL) {
        size_t n = (size_t)(dot - target);
        const char *tool = dot + 1;
        quote(q, sizeof(q), target, n);
        if (n == 0 || n > NX_SERVER_NAME_MAX) {
            snprintf(msg, cap, "expected server.tool or a tool name, got '%.64s'", target);
            return -1;
        }
        memcpy(name, target, n);
        name[n] = '\0';
        const nx_server_config_t *s = nx_config_find_server(c, name);
        if (s == NULL) {
            sg.word = name;
            for (size_t i = 0; i < sv->count; i++)
                suggest_try(&sg, sv->items[i].name);
            suggest_tail(tail, sizeof(tail), &sg);
            snprintf(msg, cap, "no backend %s%s", q, tail);
            return -1;
        }
        if (s->transport == NX_SERVER_REST) {
            snprintf(msg, cap,
                     "backend '%s' uses transport rest, which has no tools; write call: %s "
                     "(with method and path)",
                     s->name, s->name);
            return -1;
        }
        if (!s->enabled) {
            snprintf(msg, cap, "backend '%s' is disabled (enabled: false)", s->name);
            return -1;
        }
        if (!remote_tool_ok(tool)) {
            snprintf(msg, cap, "'%.64s' is not a tool name (1 to %d characters, no spaces)", tool,
                     NX_WF_TOOL_MAX);
            return -1;
        }
        r->kind = NX_STEP_CALL;
        r->server = s;
        snprintf(r->tool, sizeof(r->tool), "%s%s%s", s->prefix ? s->name : "",
                 s->prefix ? sv->separator : "", tool);
        return 0;
    }
    const nx_server_config_t *s = nx_config_find_server(c, target);
    if (s != NULL) {
        if (s->transport != NX_SERVER_REST) {
            snprintf(msg, cap,
                     "'%s' is an MCP backend (transport %s); name one of its tools: %s.<tool>",
                     s->name, nx_server_transport_name(s->transport), s->name);
            return -1;
        }
        if (!s->enabled) {
            snprintf(msg, cap, "backend '%s' is disabled (enabled: false)", s->name);
            return -1;
        }
        r->kind = NX_STEP_REST;
        r->server = s;
        return 0;
    }
    quote(q, sizeof(q), target, strlen(target));
    if (!tool_name_ok(target)) {
        snprintf(msg, cap, "%s is not a tool name (1 to %d of A-Z a-z 0-9 _ . -)", q,
                 NX_WF_TOOL_MAX);
        return -1;
    }
    /* Without the list of native tools a misspelt rest backend would pass as a tool name. */
    if (!in_list(native, target) && !in_list(builtin_tools, target)) {
        for (size_t i = 0; i < sv->count; i++)
            if (sv->items[i].transport == NX_SERVER_REST) suggest_try(&sg, sv->items[i].name);
        for (const char *const *p = native; p != NULL && *p != NULL; p++)
            suggest_try(&sg, *p);
        if (native != NULL || sg.best[0] != '\0') {
            suggest_tail(tail, sizeof(tail), &sg);
            snprintf(msg, cap, "no rest backend or native tool %s%s", q, tail);
            return -1;
        }
    }
    r->kind = NX_STEP_CALL;
    snprintf(r->tool, sizeof(r->tool), "%s", target);
    return 0;
}

/* ---- steps ---- */

static void list_free(nx_step_list_t *l);

static void step_free(nx_step_t *s) {
    if (s == NULL) return;
    free(s->id);
    free(s->path);
    free(s->target);
    free(s->server);
    free(s->tool);
    nx_expr_free(s->cond);
    nx_expr_free(s->rest_path);
    nx_expr_free(s->items);
    nx_jtemplate_free(s->on_error_value);
    nx_jtemplate_free(s->with);
    nx_jtemplate_free(s->query);
    nx_jtemplate_free(s->headers);
    list_free(&s->children);
    for (size_t i = 0; i < s->case_count; i++) {
        nx_expr_free(s->cases[i].cond);
        list_free(&s->cases[i].steps);
    }
    free(s->cases);
    free(s);
}

static void list_free(nx_step_list_t *l) {
    for (size_t i = 0; i < l->count; i++)
        step_free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int parse_step(wctx_t *x, const nx_cfg_node_t *n, json_t *sj, nx_step_t *s, int parent,
                      const void *list, size_t pos, bool concurrent, bool in_map);

/* Parses the sequence of steps <seq> (its JSON twin <arr>) into <out>: the steps of <parent>
 * (-1 = the workflow), run at once when <concurrent>. */
static int parse_list(wctx_t *x, const nx_cfg_node_t *seq, json_t *arr, int parent, bool concurrent,
                      bool in_map, bool allow_empty, nx_step_list_t *out) {
    char got[64];
    size_t n = nx_cfg_count(seq);
    if (nx_cfg_kind(seq) != NX_CFG_SEQUENCE && !(allow_empty && nx_cfg_is_null(seq))) {
        got_node(got, sizeof(got), seq);
        return nx_cfg_fail(x->err, seq, "expected a sequence of steps (- call: ...), got %s", got);
    }
    if (n == 0 && !allow_empty) return nx_cfg_fail(x->err, seq, "expected at least one step");
    if (n == 0) return 0;
    if ((out->items = calloc(n, sizeof(*out->items))) == NULL)
        return nx_cfg_fail(x->err, seq, "out of memory");
    for (size_t i = 0; i < n; i++) {
        /* Attached before it is filled, so a failure frees what was built. */
        if ((out->items[i] = calloc(1, sizeof(nx_step_t))) == NULL)
            return nx_cfg_fail(x->err, seq, "out of memory");
        out->count = i + 1;
        int rc = parse_step(x, nx_cfg_at(seq, i), json_array_get(arr, i), out->items[i], parent,
                            seq, i, concurrent, in_map);
        if (rc != 0) return rc;
    }
    return 0;
}

/* Adds step <s> to the index (depth first: a step before its children). */
static int register_step(wctx_t *x, nx_step_t *s, const nx_cfg_node_t *n, json_t *sj, int parent,
                         const void *list, size_t pos, bool concurrent) {
    if (x->nsteps >= NX_WF_MAX_STEPS)
        return nx_cfg_fail(x->err, n, "more than %d steps in one workflow", NX_WF_MAX_STEPS);
    if (x->nsteps == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        nx_step_t **steps = realloc(x->steps, cap * sizeof(*steps));
        if (steps == NULL) return nx_cfg_fail(x->err, n, "out of memory");
        x->steps = steps;
        step_info_t *info = realloc(x->info, cap * sizeof(*info));
        if (info == NULL) return nx_cfg_fail(x->err, n, "out of memory");
        x->info = info;
        x->cap = cap;
    }
    s->index = (uint32_t)x->nsteps;
    x->steps[x->nsteps] = s;
    x->info[x->nsteps++] = (step_info_t){n, sj, parent, list, pos, concurrent};
    return 0;
}

static int parse_retry(wctx_t *x, const nx_cfg_node_t *n, nx_step_t *s) {
    static const char *const keys[] = {"attempts", "base", "cap"};
    const nx_cfg_node_t *a = nx_cfg_get(n, "attempts"), *b = nx_cfg_get(n, "base"),
                        *c = nx_cfg_get(n, "cap");
    uint64_t v;
    int rc = nx_cfg_check_keys(n, keys, 3, x->err);
    if (rc != 0) return rc;
    nx_backoff_config_default(&s->retry);
    s->has_retry = true;
    if (a != NULL && (rc = read_u32(x, a, 1, 10, &s->retry.max_attempts)) != 0) return rc;
    if (b != NULL) {
        if ((rc = nx_cfg_read_duration(b, 1, NX_WF_RETRY_MAX_MS, &v, x->err)) != 0) return rc;
        s->retry.base_ms = v;
    }
    if (c != NULL) {
        if ((rc = nx_cfg_read_duration(c, 1, NX_WF_RETRY_MAX_MS, &v, x->err)) != 0) return rc;
        s->retry.cap_ms = v;
    }
    if (s->retry.base_ms > s->retry.cap_ms) {
        /* One of the two written alone: the other follows it, as for servers[].retry. */
        if (b != NULL && c != NULL)
            return nx_cfg_fail(x->err, b, "%llums must not exceed cap (%llums)",
                               (unsigned long long)s->retry.base_ms,
                               (unsigned long long)s->retry.cap_ms);
        if (b != NULL)
            s->retry.cap_ms = s->retry.base_ms;
        else
            s->retry.base_ms = s->retry.cap_ms;
    }
    return 0;
}

static int parse_on_error(wctx_t *x, const nx_cfg_node_t *n, nx_step_t *s, const tmpl_t *t) {
    static const char *const keys[] = {"value"};
    char got[64];
    size_t len;
    const char *text = nx_cfg_text(n, &len);
    if (text != NULL && !nx_cfg_is_null(n)) {
        if (strcmp(text, "fail") == 0) {
            s->on_error = NX_ON_ERROR_FAIL;
            return 0;
        }
        if (strcmp(text, "continue") == 0) {
            s->on_error = NX_ON_ERROR_CONTINUE;
            return 0;
        }
    }
    if (nx_cfg_kind(n) != NX_CFG_MAPPING) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(x->err, n, "expected fail, continue or {value: ...}, got %s", got);
    }
    int rc = nx_cfg_check_keys(n, keys, 1, x->err);
    if (rc != 0) return rc;
    const nx_cfg_node_t *v = nx_cfg_get(n, "value");
    if (v == NULL) return nx_cfg_fail(x->err, n, "missing required key 'value'");
    s->on_error = NX_ON_ERROR_VALUE;
    return template_at(x, v, t, &s->on_error_value);
}

/* Header fields nexus writes itself or that would break the request's framing. */
static bool header_reserved(const char *name) {
    static const char *const reserved[] = {"content-length",
                                           "transfer-encoding",
                                           "connection",
                                           "upgrade",
                                           "keep-alive",
                                           "te",
                                           "trailer",
                                           "host",
                                           NULL};
    for (const char *const *r = reserved; *r; r++)
        if (strcasecmp(name, *r) == 0) return true;
    return false;
}

static bool header_name_ok(const char *k) {
    if (k[0] == '\0') return false;
    for (const char *p = k; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("!#$%&'*+-.^_`|~", *p) == NULL) return false;
    return true;
}

/* query: and headers: mappings of scalars (header values as the text written). */
static int parse_rest_map(wctx_t *x, const nx_cfg_node_t *n, bool headers, const tmpl_t *t,
                          nx_jtemplate_t **out) {
    char got[64];
    if (nx_cfg_kind(n) != NX_CFG_MAPPING) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(x->err, n, "expected a mapping of %s, got %s",
                           headers ? "header names to values" : "parameters to values", got);
    }
    json_t *obj = json_object();
    int rc = obj ? 0 : nx_cfg_fail(x->err, n, "out of memory");
    for (size_t i = 0; rc == 0 && i < nx_cfg_count(n); i++) {
        const nx_cfg_node_t *e = nx_cfg_at(n, i);
        const char *k = nx_cfg_key(e), *text;
        json_t *v = NULL;
        quote(got, sizeof(got), k, strlen(k));
        if (headers && !header_name_ok(k))
            rc = nx_cfg_fail_key(x->err, e, "%s is not a valid HTTP header name", got);
        else if (headers && header_reserved(k))
            rc = nx_cfg_fail_key(x->err, e, "%s is set by nexus itself and cannot be configured",
                                 got);
        else if (nx_cfg_kind(e) != NX_CFG_SCALAR) {
            got_node(got, sizeof(got), e);
            rc = nx_cfg_fail(x->err, e, "expected a single value, got %s", got);
        } else if (headers) {
            if ((rc = read_text(x, e, 8192, &text)) == 0 &&
                (rc = compile_at(x, e, text, strlen(text), false, t, NULL)) == 0 &&
                (v = json_string(text)) == NULL)
                rc = nx_cfg_fail(x->err, e, "is not valid UTF-8");
        } else if ((v = node_json(x, e, t)) == NULL) {
            rc = NX_ECONFIG;
        }
        if (rc == 0 && json_object_set_new(obj, k, v) < 0)
            rc = nx_cfg_fail_key(x->err, e, "out of memory");
    }
    if (rc == 0) {
        nx_expr_error_t ee = {0};
        char where[256];
        if (nx_jtemplate_compile(obj, out, &ee, where, sizeof(where)) != 0)
            rc = nx_cfg_fail(x->err, n, "expression error: %.150s", ee.message);
    }
    json_decref(obj);
    return rc;
}

static int parse_call(wctx_t *x, const nx_cfg_node_t *n, const nx_cfg_node_t *kn, nx_step_t *s,
                      const tmpl_t *t) {
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    static const char *const rest_only[] = {"method", "path", "query", "headers"};
    char msg[256];
    const char *target, *text;
    resolved_t r;
    int rc = read_text(x, kn, NX_WF_TEXT_MAX, &target);
    if (rc != 0) return rc;
    if (resolve_call(x->c, x->native, target, &r, msg, sizeof(msg)) != 0)
        return nx_cfg_fail(x->err, kn, "%s", msg);
    s->kind = r.kind;
    if ((rc = dup_text(x, kn, target, &s->target)) != 0) return rc;
    if (r.server != NULL && (rc = dup_text(x, kn, r.server->name, &s->server)) != 0) return rc;
    const nx_cfg_node_t *v;
    if (r.kind == NX_STEP_CALL) {
        if ((rc = dup_text(x, kn, r.tool, &s->tool)) != 0) return rc;
        for (size_t i = 0; i < 4; i++) {
            if ((v = nx_cfg_get(n, rest_only[i])) != NULL)
                return nx_cfg_fail_key(
                    x->err, v, "'%s' is only for calls to a rest backend ('%.64s' is %s)",
                    rest_only[i], target, r.server ? "a tool of an MCP backend" : "a native tool");
        }
        if ((v = nx_cfg_get(n, "with")) == NULL || nx_cfg_is_null(v)) return 0;
        if ((rc = template_at(x, v, t, &s->with)) != 0) return rc;
        /* Tool arguments are an object: a mapping, or one expression that gives one. */
        size_t len;
        const char *wt = nx_cfg_text(v, &len);
        bool expr = wt != NULL && nx_cfg_kind(v) == NX_CFG_SCALAR && strstr(wt, "${{") != NULL;
        if (nx_cfg_kind(v) != NX_CFG_MAPPING && !expr) {
            char got[64];
            got_node(got, sizeof(got), v);
            return nx_cfg_fail(x->err, v,
                               "expected a mapping of arguments (or one ${{ }} giving an "
                               "object), got %s",
                               got);
        }
        return 0;
    }
    snprintf(s->method, sizeof(s->method), "GET");
    if ((v = nx_cfg_get(n, "method")) != NULL) {
        size_t i = 0;
        if ((rc = read_text(x, v, 16, &text)) != 0) return rc;
        while (i < 5 && strcasecmp(methods[i], text) != 0)
            i++;
        if (i == 5) {
            char got[64];
            quote(got, sizeof(got), text, strlen(text));
            return nx_cfg_fail(x->err, v, "expected GET, POST, PUT, PATCH or DELETE, got %s", got);
        }
        snprintf(s->method, sizeof(s->method), "%s", methods[i]);
    }
    text = "/";
    if ((v = nx_cfg_get(n, "path")) != NULL) {
        if ((rc = read_text(x, v, 8192, &text)) != 0) return rc;
        if (text[0] != '/' && strncmp(text, "${{", 3) != 0)
            return nx_cfg_fail(x->err, v,
                               "must start with '/' (it is appended to the backend's "
                               "URL)");
        /* The written text, not what ${{ }} gives: the executor encodes values. */
        for (const char *p = text; *p; p++) {
            if (p[0] == '$' && p[1] == '{' && p[2] == '{' && strstr(p, "}}") != NULL)
                p = strstr(p, "}}") + 1;
            else if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                return nx_cfg_fail(x->err, v,
                                   "contains a space or control character (percent-encode it)");
        }
    }
    if ((rc = compile_at(x, v ? v : kn, text, strlen(text), false, t, &s->rest_path)) != 0)
        return rc;
    if ((v = nx_cfg_get(n, "query")) != NULL &&
        (rc = parse_rest_map(x, v, false, t, &s->query)) != 0)
        return rc;
    if ((v = nx_cfg_get(n, "headers")) != NULL &&
        (rc = parse_rest_map(x, v, true, t, &s->headers)) != 0)
        return rc;
    if ((v = nx_cfg_get(n, "with")) != NULL && !nx_cfg_is_null(v) &&
        (rc = template_at(x, v, t, &s->with)) != 0)
        return rc;
    return 0;
}

static int parse_join(wctx_t *x, const nx_cfg_node_t *n, nx_step_t *s) {
    static const char *const keys[] = {"quorum"};
    char got[64];
    size_t len;
    const char *text = nx_cfg_text(n, &len);
    if (text != NULL && strcmp(text, "all") == 0) {
        s->join = NX_JOIN_ALL;
        return 0;
    }
    if (text != NULL && strcmp(text, "any") == 0) {
        s->join = NX_JOIN_ANY;
        return 0;
    }
    if (nx_cfg_kind(n) != NX_CFG_MAPPING) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(x->err, n, "expected all, any or {quorum: N}, got %s", got);
    }
    int rc = nx_cfg_check_keys(n, keys, 1, x->err);
    const nx_cfg_node_t *q = nx_cfg_get(n, "quorum");
    if (rc != 0) return rc;
    if (q == NULL) return nx_cfg_fail(x->err, n, "missing required key 'quorum'");
    s->join = NX_JOIN_QUORUM;
    return read_u32(x, q, 1, s->children.count, &s->quorum);
}

static int parse_switch(wctx_t *x, const nx_cfg_node_t *kn, json_t *kj, nx_step_t *s,
                        const tmpl_t *t) {
    static const char *const keys[] = {"if", "elif", "else", "steps"};
    char got[64];
    size_t n = nx_cfg_count(kn);
    if (nx_cfg_kind(kn) != NX_CFG_SEQUENCE || n == 0) {
        got_node(got, sizeof(got), kn);
        return nx_cfg_fail(x->err, kn,
                           "expected a sequence of cases (- if: ... steps: [...]), got %s",
                           nx_cfg_kind(kn) == NX_CFG_SEQUENCE ? "an empty one" : got);
    }
    if ((s->cases = calloc(n, sizeof(*s->cases))) == NULL)
        return nx_cfg_fail(x->err, kn, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const nx_cfg_node_t *cn = nx_cfg_at(kn, i);
        json_t *cj = json_array_get(kj, i);
        nx_switch_case_t *cs = &s->cases[i];
        int rc = nx_cfg_check_keys(cn, keys, 4, x->err);
        if (rc != 0) return rc;
        s->case_count = i + 1;
        const nx_cfg_node_t *c_if = nx_cfg_get(cn, "if"), *c_elif = nx_cfg_get(cn, "elif"),
                            *c_else = nx_cfg_get(cn, "else"), *c_steps = nx_cfg_get(cn, "steps");
        int conds = (c_if != NULL) + (c_elif != NULL) + (c_else != NULL);
        if (conds != 1)
            return nx_cfg_fail(x->err, cn,
                               conds == 0 ? "a case needs if:, elif: or else:"
                                          : "a case has one of if:, elif: and else:");
        if (i > 0 && nx_cfg_get(nx_cfg_at(kn, i - 1), "else") != NULL)
            return nx_cfg_fail(x->err, cn, "this case comes after else: and would never run");
        if (c_else != NULL) {
            if (c_steps != NULL)
                return nx_cfg_fail_key(x->err, c_steps,
                                       "else: takes the steps itself (else: [...])");
            rc = parse_list(x, c_else, json_object_get(cj, "else"), (int)s->index, false, t->in_map,
                            true, &cs->steps);
        } else {
            if (c_if != NULL && i > 0)
                return nx_cfg_fail_key(x->err, c_if, "only the first case says if:; use elif:");
            if (c_elif != NULL && i == 0)
                return nx_cfg_fail_key(x->err, c_elif, "the first case says if:, not elif:");
            if (c_steps == NULL) return nx_cfg_fail(x->err, cn, "missing required key 'steps'");
            if ((rc = read_cond(x, c_if ? c_if : c_elif, COND, t, &cs->cond)) != 0) return rc;
            rc = parse_list(x, c_steps, json_object_get(cj, "steps"), (int)s->index, false,
                            t->in_map, true, &cs->steps);
        }
        if (rc != 0) return rc;
    }
    return 0;
}

static int parse_map(wctx_t *x, const nx_cfg_node_t *kn, json_t *kj, nx_step_t *s,
                     const tmpl_t *t) {
    static const char *const keys[] = {"items", "steps", "concurrency", "batch_size"};
    int rc = nx_cfg_check_keys(kn, keys, 4, x->err);
    if (rc != 0) return rc;
    const nx_cfg_node_t *items = nx_cfg_get(kn, "items"), *steps = nx_cfg_get(kn, "steps"), *v;
    if (items == NULL) return nx_cfg_fail(x->err, kn, "missing required key 'items'");
    if (steps == NULL) return nx_cfg_fail(x->err, kn, "missing required key 'steps'");
    if (nx_cfg_kind(items) == NX_CFG_SEQUENCE) {
        /* A list written out is a literal array: compile its JSON text as an expression. */
        json_t *arr = node_json(x, items, NULL);
        char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
        json_decref(arr);
        if (text == NULL) return arr ? nx_cfg_fail(x->err, items, "out of memory") : NX_ECONFIG;
        rc = compile_at(x, items, text, strlen(text), true, t, &s->items);
        free(text);
    } else if (nx_cfg_kind(items) == NX_CFG_MAPPING) {
        rc = nx_cfg_fail(x->err, items,
                         "expected an expression giving an array (items: ${{ input.urls }}) or "
                         "a sequence, got a mapping");
    } else {
        rc = read_cond(x, items, "an expression giving an array (${{ input.urls }})", t, &s->items);
    }
    if (rc != 0) return rc;
    s->max_concurrency = 1;
    if ((v = nx_cfg_get(kn, "concurrency")) != NULL &&
        (rc = read_u32(x, v, 1, NX_WF_CONCURRENCY_MAX, &s->max_concurrency)) != 0)
        return rc;
    if ((v = nx_cfg_get(kn, "batch_size")) != NULL &&
        (rc = read_u32(x, v, 1, NX_WF_BATCH_MAX, &s->batch_size)) != 0)
        return rc;
    return parse_list(x, steps, json_object_get(kj, "steps"), (int)s->index, false, true, false,
                      &s->children);
}

static int parse_step(wctx_t *x, const nx_cfg_node_t *n, json_t *sj, nx_step_t *s, int parent,
                      const void *list, size_t pos, bool concurrent, bool in_map) {
    const char *known[NSTEP_KEYS];
    for (size_t i = 0; i < NSTEP_KEYS; i++)
        known[i] = step_keys[i].key;
    int rc = nx_cfg_check_keys(n, known, NSTEP_KEYS, x->err);
    if (rc != 0) return rc;

    const nx_cfg_node_t *kn = NULL;
    unsigned kind = 0;
    for (size_t i = 0; i < nx_cfg_count(n); i++) {
        const nx_cfg_node_t *v = nx_cfg_at(n, i);
        for (size_t k = 0; k < NSTEP_KEYS; k++) {
            if (!step_keys[k].is_kind || strcmp(step_keys[k].key, nx_cfg_key(v)) != 0) continue;
            if (kn != NULL)
                return nx_cfg_fail_key(x->err, v,
                                       "a step has one kind, but '%s' and '%s' are both set (make "
                                       "two steps, or a group of them with steps:)",
                                       nx_cfg_key(kn), nx_cfg_key(v));
            kn = v;
            kind = step_keys[k].kinds;
        }
    }
    if (kn == NULL)
        return nx_cfg_fail(x->err, n,
                           "a step needs one of call, parallel, switch, map, fallback or steps");
    if ((rc = register_step(x, s, n, sj, parent, list, pos, concurrent)) != 0) return rc;
    s->line = nx_cfg_line(n);
    size_t plen = nx_cfg_path(n, NULL, 0);
    if ((s->path = malloc(plen + 1)) == NULL) return nx_cfg_fail(x->err, n, "out of memory");
    nx_cfg_path(n, s->path, plen + 1);
    for (size_t i = 0; i < nx_cfg_count(n); i++) {
        const nx_cfg_node_t *v = nx_cfg_at(n, i);
        for (size_t k = 0; k < NSTEP_KEYS; k++)
            if (strcmp(step_keys[k].key, nx_cfg_key(v)) == 0 && !(step_keys[k].kinds & kind))
                return nx_cfg_fail_key(x->err, v, "'%s' is only for %s (this is a %s step)",
                                       step_keys[k].key, kinds_phrase(step_keys[k].kinds),
                                       key_word(kind));
    }

    tmpl_t t = {(int)s->index, in_map};
    const nx_cfg_node_t *v;
    const char *text;
    uint64_t ms;
    if ((v = nx_cfg_get(n, "id")) != NULL) {
        if ((rc = read_text(x, v, 1024, &text)) != 0) return rc;
        if (!name_ok(text, strlen(text), true)) {
            char got[64];
            quote(got, sizeof(got), text, strlen(text));
            return nx_cfg_fail(x->err, v, "%s is not a valid step id (1 to %d of A-Z a-z 0-9 _ -)",
                               got, NX_WF_NAME_MAX);
        }
        if ((rc = dup_text(x, v, text, &s->id)) != 0) return rc;
    }
    if ((v = nx_cfg_get(n, "if")) != NULL && (rc = read_cond(x, v, COND, &t, &s->cond)) != 0)
        return rc;
    if ((v = nx_cfg_get(n, "timeout")) != NULL) {
        if ((rc = nx_cfg_read_duration(v, 1, NX_WF_DAY_MS, &ms, x->err)) != 0) return rc;
        s->timeout_ms = (uint32_t)ms;
    }
    if ((v = nx_cfg_get(n, "retry")) != NULL && (rc = parse_retry(x, v, s)) != 0) return rc;
    if ((v = nx_cfg_get(n, "cache")) != NULL) {
        if ((rc = nx_cfg_read_duration(v, 0, NX_WF_CACHE_MAX_MS, &ms, x->err)) != 0) return rc;
        s->cache_ttl_ms = ms;
    }
    if ((v = nx_cfg_get(n, "on_error")) != NULL && (rc = parse_on_error(x, v, s, &t)) != 0)
        return rc;

    json_t *kj = json_object_get(sj, nx_cfg_key(kn));
    switch (kind) {
    case K_CALL:
        return parse_call(x, n, kn, s, &t);
    case K_PAR:
        s->kind = NX_STEP_PARALLEL;
        if ((rc = parse_list(x, kn, kj, (int)s->index, true, in_map, false, &s->children)) != 0)
            return rc;
        if ((v = nx_cfg_get(n, "join")) != NULL && (rc = parse_join(x, v, s)) != 0) return rc;
        if ((v = nx_cfg_get(n, "max_concurrency")) != NULL)
            return read_u32(x, v, 1, NX_WF_CONCURRENCY_MAX, &s->max_concurrency);
        return 0;
    case K_SW:
        s->kind = NX_STEP_SWITCH;
        return parse_switch(x, kn, kj, s, &t);
    case K_MAP:
        s->kind = NX_STEP_MAP;
        if (nx_cfg_kind(kn) != NX_CFG_MAPPING) {
            char got[64];
            got_node(got, sizeof(got), kn);
            return nx_cfg_fail(x->err, kn, "expected a mapping (items:, steps:), got %s", got);
        }
        return parse_map(x, kn, kj, s, &t);
    case K_FB:
        s->kind = NX_STEP_FALLBACK;
        return parse_list(x, kn, kj, (int)s->index, false, in_map, false, &s->children);
    default:
        s->kind = NX_STEP_GROUP;
        return parse_list(x, kn, kj, (int)s->index, false, in_map, false, &s->children);
    }
}

/* ---- checks once every step is known ---- */

static int by_id(const void *a, const void *b, void *arg) {
    nx_step_t *const *steps = arg;
    uint32_t ia = *(const uint32_t *)a, ib = *(const uint32_t *)b;
    int d = strcmp(steps[ia]->id, steps[ib]->id);
    return d != 0 ? d : (ia > ib) - (ia < ib);
}

/* The index of the step called <id>, or -1; <sorted> holds the indexes in id order. */
static int find_id(const wctx_t *x, const uint32_t *sorted, const char *id) {
    size_t lo = 0, hi = x->nsteps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(x->steps[sorted[mid]]->id, id);
        if (d == 0) return (int)sorted[mid];
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Gives the steps without an id "<kind>_<position>", then fails on the first step (in order)
 * whose id another step before it has. */
static int assign_ids(wctx_t *x, uint32_t *sorted) {
    for (size_t i = 0; i < x->nsteps; i++) {
        nx_step_t *s = x->steps[i];
        sorted[i] = (uint32_t)i;
        if (s->id != NULL) continue;
        char id[32];
        snprintf(id, sizeof(id), "%s_%zu", nx_step_kind_name(s->kind), i + 1);
        if ((s->id = strdup(id)) == NULL)
            return nx_cfg_fail(x->err, x->info[i].node, "out of memory");
    }
    qsort_r(sorted, x->nsteps, sizeof(*sorted), by_id, x->steps);
    size_t worst = SIZE_MAX, first = 0;
    for (size_t k = 1; k < x->nsteps; k++) {
        if (strcmp(x->steps[sorted[k]]->id, x->steps[sorted[k - 1]]->id) != 0) continue;
        /* Equal ids sort by index: the group's first is at the start of the run. */
        size_t start = k - 1;
        while (start > 0 && strcmp(x->steps[sorted[start - 1]]->id, x->steps[sorted[k]]->id) == 0)
            start--;
        if (sorted[k] < worst) {
            worst = sorted[k];
            first = sorted[start];
        }
    }
    if (worst == SIZE_MAX) return 0;
    const nx_step_t *a = x->steps[first], *b = x->steps[worst];
    const nx_cfg_node_t *an = nx_cfg_get(x->info[first].node, "id");
    const nx_cfg_node_t *bn = nx_cfg_get(x->info[worst].node, "id");
    if (an != NULL && bn != NULL)
        return nx_cfg_fail(x->err, bn, "duplicate step id '%s' (first used at %s, line %d)", b->id,
                           a->path, a->line);
    if (bn != NULL)
        return nx_cfg_fail(x->err, bn,
                           "step id '%s' is the id given to the step without one at %s (line %d); "
                           "choose another",
                           b->id, a->path, a->line);
    return nx_cfg_fail(x->err, an,
                       "step id '%s' is the id given to the step without one at %s (line %d); "
                       "choose another",
                       a->id, b->path, b->line);
}

/* Why step <t> has not finished when step <s> evaluates an expression, or NULL when it has. */
static const char *order_problem(const wctx_t *x, int s, int t) {
    if (t == s) return "is this step itself, which has not finished when this is evaluated";
    for (int a = x->info[s].parent; a >= 0; a = x->info[a].parent)
        if (a == t) return "encloses this step and has not finished while it runs";
    for (int b = x->info[t].parent; b >= 0; b = x->info[b].parent)
        if (b == s) return "is inside this step and has not run when this is evaluated";
    /* The lists holding s and t meet where an ancestor of each sits in one list. */
    for (int a = s; a >= 0; a = x->info[a].parent) {
        for (int b = t; b >= 0; b = x->info[b].parent) {
            if (a == b)
                return "is in another case of the same switch, which does not run with this one";
            if (x->info[a].list != x->info[b].list) continue;
            if (x->info[a].concurrent)
                return "is in another branch of the same parallel, which runs at the same time";
            return x->info[b].pos < x->info[a].pos ? NULL : "runs after this step";
        }
    }
    return NULL; /* both at the top: handled by the list check above */
}

/* The state of the reference checks of one expression. */
typedef struct refcheck {
    const wctx_t *x;
    const uint32_t *sorted;
    const site_t *site;
    char msg[256];
    bool bad;
} refcheck_t;

static void check_ref(void *arg, const char *id) {
    refcheck_t *r = arg;
    if (r->bad) return;
    const wctx_t *x = r->x;
    char q[64];
    quote(q, sizeof(q), id, strlen(id));
    int t = find_id(x, r->sorted, id);
    if (t < 0) {
        char tail[96];
        suggest_t sg;
        nx_cfg_suggest_init(&sg, id);
        for (size_t i = 0; i < x->nsteps; i++)
            suggest_try(&sg, x->steps[i]->id);
        suggest_tail(tail, sizeof(tail), &sg);
        snprintf(r->msg, sizeof(r->msg), "steps.%.64s: no step has the id %s%s", id, q, tail);
        r->bad = true;
        return;
    }
    if (r->site->owner < 0) return; /* output: runs after every step */
    const char *why = order_problem(x, r->site->owner, t);
    if (why != NULL) {
        snprintf(r->msg, sizeof(r->msg), "steps.%.64s: step %s (line %d) %s", id, q,
                 x->steps[t]->line, why);
        r->bad = true;
    }
}

static int check_refs(wctx_t *x, const uint32_t *sorted) {
    for (size_t i = 0; i < x->nsites; i++) {
        const site_t *st = &x->sites[i];
        refcheck_t r = {.x = x, .sorted = sorted, .site = st};
        unsigned roots = nx_expr_refs(st->expr, check_ref, &r);
        if (r.bad) return nx_cfg_fail(x->err, st->node, "%s", r.msg);
        if (roots & NX_EXPR_ROOT_OTHER)
            return nx_cfg_fail(x->err, st->node,
                               "the expression reads a name that is not input, steps, item, "
                               "index or session (quote text: 'text')");
        if ((roots & NX_EXPR_ROOT_ITEM) && !st->in_map)
            return nx_cfg_fail(x->err, st->node,
                               "item and index exist only inside the steps of a map");
    }
    return 0;
}

/* ---- workflows ---- */

static void workflow_free(nx_workflow_t *wf) {
    if (wf == NULL) return;
    free(wf->name);
    free(wf->description);
    free(wf->tool_name);
    json_decref(wf->input_schema);
    nx_schema_free(wf->validator);
    list_free(&wf->steps);
    free(wf->by_index);
    nx_jtemplate_free(wf->output);
    json_decref(wf->source);
    free(wf);
}

static void workflows_free(nx_workflows_t *w) {
    if (w == NULL) return;
    for (size_t i = 0; i < w->count; i++)
        workflow_free(w->items[i]);
    free(w->items);
    free(w->file);
    free(w);
}

nx_workflows_t *nx_workflows_ref(nx_workflows_t *w) {
    if (w != NULL) atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    return w;
}

void nx_workflows_unref(nx_workflows_t *w) {
    if (w != NULL && atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1)
        workflows_free(w);
}

static int parse_input(wctx_t *x, const nx_cfg_node_t *n) {
    nx_workflow_t *wf = x->wf;
    nx_schema_error_t se;
    if (n == NULL) {
        wf->input_schema = json_pack("{s:s}", "type", "object");
    } else {
        if (nx_cfg_kind(n) != NX_CFG_MAPPING) {
            char got[64];
            got_node(got, sizeof(got), n);
            return nx_cfg_fail(x->err, n, "expected a JSON Schema mapping (type: object), got %s",
                               got);
        }
        if ((wf->input_schema = node_json(x, n, NULL)) == NULL) return NX_ECONFIG;
        json_t *type = json_object_get(wf->input_schema, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "object") != 0) {
            const nx_cfg_node_t *tn = nx_cfg_get(n, "type");
            return nx_cfg_fail(x->err, tn ? tn : n,
                               "the input schema must have type: object (inputs are named)");
        }
    }
    if (wf->input_schema == NULL) return nx_cfg_fail(x->err, n, "out of memory");
    memset(&se, 0, sizeof(se));
    if ((wf->validator = nx_schema_compile(wf->input_schema, &se)) == NULL) {
        se.message[sizeof(se.message) - 1] = '\0';
        se.path[sizeof(se.path) - 1] = '\0';
        return nx_cfg_fail(x->err, node_at(n, se.path), "invalid JSON Schema: %s", se.message);
    }
    return 0;
}

static int parse_channels(wctx_t *x, const nx_cfg_node_t *n) {
    static const char *const names[] = {"api", "mcp", "cli"};
    char got[64];
    if (nx_cfg_kind(n) != NX_CFG_SEQUENCE || nx_cfg_count(n) == 0) {
        got_node(got, sizeof(got), n);
        return nx_cfg_fail(x->err, n, "expected a sequence of api, mcp and cli, got %s",
                           nx_cfg_kind(n) == NX_CFG_SEQUENCE ? "an empty one" : got);
    }
    x->wf->channels = 0;
    for (size_t i = 0; i < nx_cfg_count(n); i++) {
        const nx_cfg_node_t *e = nx_cfg_at(n, i);
        size_t len, k = 0;
        const char *text = nx_cfg_text(e, &len);
        while (k < 3 && !(text != NULL && strcmp(text, names[k]) == 0))
            k++;
        if (k == 3) {
            got_node(got, sizeof(got), e);
            return nx_cfg_fail(x->err, e, "expected api, mcp or cli, got %s", got);
        }
        if (x->wf->channels & (1u << k))
            return nx_cfg_fail(x->err, e, "'%s' is listed twice", names[k]);
        x->wf->channels |= 1u << k;
    }
    return 0;
}

/* The workflow before <wf> in <prev>[0..<n>) that already has tool <tool>, or -1. */
static int tool_taken(nx_workflow_t *const *prev, size_t n, const char *tool) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(prev[i]->tool_name, tool) == 0) return (int)i;
    return -1;
}

static int parse_tool(wctx_t *x, const nx_cfg_node_t *item, nx_workflow_t *const *prev,
                      size_t nprev) {
    nx_workflow_t *wf = x->wf;
    const nx_cfg_node_t *n = nx_cfg_get(item, "tool");
    const char *text;
    int rc;
    if (n != NULL) {
        if ((rc = read_text(x, n, 1024, &text)) != 0) return rc;
        if (!tool_name_ok(text)) {
            char got[64];
            quote(got, sizeof(got), text, strlen(text));
            return nx_cfg_fail(x->err, n,
                               "%s is not a valid tool name (1 to %d of A-Z a-z 0-9 _ . -)", got,
                               NX_WF_TOOL_MAX);
        }
        if ((rc = dup_text(x, n, text, &wf->tool_name)) != 0) return rc;
    } else {
        n = nx_cfg_get(item, "name");
        size_t len = strlen(wf->name) + sizeof("workflow_");
        if ((wf->tool_name = malloc(len)) == NULL) return nx_cfg_fail(x->err, n, "out of memory");
        snprintf(wf->tool_name, len, "workflow_%s", wf->name);
    }
    const char *how = nx_cfg_get(item, "tool") ? "" : " (its default tool name; set tool:)";
    if (in_list(builtin_tools, wf->tool_name))
        return nx_cfg_fail(x->err, n, "tool '%s' is a built-in tool of nexus%s", wf->tool_name,
                           how);
    if (in_list(x->native, wf->tool_name))
        return nx_cfg_fail(x->err, n, "tool '%s' is a native tool%s", wf->tool_name, how);
    int j = tool_taken(prev, nprev, wf->tool_name);
    if (j >= 0)
        return nx_cfg_fail(x->err, n, "tool '%s' is already the tool of workflow '%s' (line %d)%s",
                           wf->tool_name, prev[j]->name, prev[j]->line, how);
    return 0;
}

/* Puts the defaults and generated ids into the workflow's source, so it prints as it runs. */
static int fill_source(wctx_t *x, const nx_cfg_node_t *item) {
    static const char *const names[] = {"api", "mcp", "cli"};
    nx_workflow_t *wf = x->wf;
    json_t *ch = json_array();
    int rc = ch ? 0 : -1;
    for (unsigned k = 0; rc == 0 && k < 3; k++)
        if (wf->channels & (1u << k)) rc = json_array_append_new(ch, json_string(names[k]));
    rc |= json_object_set_new(wf->source, "channels", ch);
    rc |= json_object_set_new(wf->source, "deadline", json_integer(wf->deadline_ms));
    rc |= json_object_set_new(wf->source, "tool", json_string(wf->tool_name));
    rc |= json_object_set_new(wf->source, "input", json_deep_copy(wf->input_schema));
    for (size_t i = 0; rc == 0 && i < x->nsteps; i++)
        rc = json_object_set_new(x->info[i].source, "id", json_string(x->steps[i]->id));
    return rc == 0 ? 0 : nx_cfg_fail(x->err, item, "out of memory");
}

static int parse_workflow(wctx_t *x, const nx_cfg_node_t *item, nx_workflow_t *const *prev,
                          size_t nprev) {
    static const char *const keys[] = {"name",     "description", "input", "channels",
                                       "deadline", "tool",        "steps", "output"};
    nx_workflow_t *wf = x->wf;
    const nx_cfg_node_t *v;
    const char *text;
    char got[64];
    uint64_t ms;
    int rc = nx_cfg_check_keys(item, keys, sizeof(keys) / sizeof(keys[0]), x->err);
    if (rc != 0) return rc;
    wf->line = nx_cfg_line(item);
    if ((v = nx_cfg_get(item, "name")) == NULL)
        return nx_cfg_fail(x->err, item, "missing required key 'name'");
    if ((rc = read_text(x, v, 1024, &text)) != 0) return rc;
    if (!name_ok(text, strlen(text), false)) {
        quote(got, sizeof(got), text, strlen(text));
        return nx_cfg_fail(x->err, v, "%s is not a valid workflow name (1 to %d of a-z 0-9 _ -)",
                           got, NX_WF_NAME_MAX);
    }
    for (size_t i = 0; i < nprev; i++)
        if (strcmp(prev[i]->name, text) == 0)
            return nx_cfg_fail(x->err, v, "duplicate workflow name '%s' (workflows[%zu], line %d)",
                               text, i, prev[i]->line);
    if ((rc = dup_text(x, v, text, &wf->name)) != 0) return rc;
    if ((wf->source = node_json(x, item, NULL)) == NULL) return NX_ECONFIG;
    if ((v = nx_cfg_get(item, "description")) != NULL) {
        if ((rc = read_text(x, v, NX_WF_TEXT_MAX, &text)) != 0) return rc;
        if ((rc = dup_text(x, v, text, &wf->description)) != 0) return rc;
    }
    if ((rc = parse_input(x, nx_cfg_get(item, "input"))) != 0) return rc;
    wf->channels = NX_WF_CHANNEL_ALL;
    if ((v = nx_cfg_get(item, "channels")) != NULL && (rc = parse_channels(x, v)) != 0) return rc;
    wf->deadline_ms = NX_WF_DEFAULT_DEADLINE_MS;
    if ((v = nx_cfg_get(item, "deadline")) != NULL) {
        if ((rc = nx_cfg_read_duration(v, 1, NX_WF_DAY_MS, &ms, x->err)) != 0) return rc;
        wf->deadline_ms = (uint32_t)ms;
    }
    if ((rc = parse_tool(x, item, prev, nprev)) != 0) return rc;
    if ((v = nx_cfg_get(item, "steps")) == NULL)
        return nx_cfg_fail(x->err, item, "missing required key 'steps'");
    rc =
        parse_list(x, v, json_object_get(wf->source, "steps"), -1, false, false, false, &wf->steps);
    if (rc != 0) return rc;
    if ((v = nx_cfg_get(item, "output")) != NULL) {
        tmpl_t t = {-1, false};
        if ((rc = template_at(x, v, &t, &wf->output)) != 0) return rc;
    }

    uint32_t *sorted = malloc(x->nsteps * sizeof(*sorted));
    if (sorted == NULL) return nx_cfg_fail(x->err, item, "out of memory");
    rc = assign_ids(x, sorted);
    if (rc == 0) rc = check_refs(x, sorted);
    free(sorted);
    if (rc == 0) rc = fill_source(x, item);
    if (rc != 0) return rc;
    wf->step_count = (uint32_t)x->nsteps;
    wf->by_index = x->steps; /* exactly the steps, in index order */
    x->steps = NULL;
    return 0;
}

/* The document name of <n> as nx_cfg_fail reports it. */
static char *doc_file(const nx_cfg_node_t *n) {
    nx_config_error_t e;
    nx_cfg_fail(&e, n, "-");
    return strdup(e.file);
}

int nx_workflows_parse(const nx_config_t *c, const nx_cfg_node_t *seq,
                       const char *const *native_tools, nx_workflows_t **out,
                       nx_config_error_t *err) {
    nx_config_error_t scratch;
    char got[64];
    if (err == NULL) err = &scratch;
    *out = NULL;
    if (seq == NULL || nx_cfg_is_null(seq)) return 0; /* every entry commented out */
    if (nx_cfg_kind(seq) != NX_CFG_SEQUENCE) {
        got_node(got, sizeof(got), seq);
        return nx_cfg_fail(err, seq, "expected a sequence of workflows (- name: ...), got %s", got);
    }
    size_t n = nx_cfg_count(seq);
    if (n == 0) return 0;
    if (n > NX_WF_MAX)
        return nx_cfg_fail(err, nx_cfg_at(seq, NX_WF_MAX), "more than %d workflows", NX_WF_MAX);
    nx_workflows_t *w = calloc(1, sizeof(*w));
    if (w == NULL || (w->items = calloc(n, sizeof(*w->items))) == NULL ||
        (w->file = doc_file(seq)) == NULL) {
        workflows_free(w);
        return nx_cfg_fail(err, seq, "out of memory");
    }
    atomic_init(&w->refs, 1);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        wctx_t x = {.c = c, .native = native_tools, .err = err};
        if ((x.wf = calloc(1, sizeof(*x.wf))) == NULL) {
            rc = nx_cfg_fail(err, nx_cfg_at(seq, i), "out of memory");
            break;
        }
        w->items[w->count++] = x.wf;
        rc = parse_workflow(&x, nx_cfg_at(seq, i), w->items, i);
        for (size_t k = 0; k < x.nsites; k++)
            if (x.sites[k].owned) nx_expr_free(x.sites[k].expr);
        free(x.sites);
        free(x.steps);
        free(x.info);
    }
    if (rc != 0) {
        workflows_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

const nx_workflow_t *nx_workflows_find(const nx_workflows_t *w, const char *name) {
    for (size_t i = 0; w != NULL && i < w->count; i++)
        if (strcmp(w->items[i]->name, name) == 0) return w->items[i];
    return NULL;
}

const nx_workflow_t *nx_workflows_find_tool(const nx_workflows_t *w, const char *tool) {
    for (size_t i = 0; w != NULL && i < w->count; i++)
        if (strcmp(w->items[i]->tool_name, tool) == 0) return w->items[i];
    return NULL;
}

/* Copies <src> into the fixed field <dst>, cut to fit. */
static void copy_field(char *dst, size_t cap, const char *src) {
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int nx_workflows_check(const nx_workflows_t *w, const nx_config_t *c, nx_config_error_t *err) {
    nx_config_error_t scratch;
    if (err == NULL) err = &scratch;
    for (size_t i = 0; w != NULL && i < w->count; i++) {
        const nx_workflow_t *wf = w->items[i];
        for (uint32_t k = 0; k < wf->step_count; k++) {
            const nx_step_t *s = wf->by_index[k];
            resolved_t r;
            char msg[512];
            if ((s->kind != NX_STEP_CALL && s->kind != NX_STEP_REST) || s->server == NULL)
                continue; /* native tools: the engine checks those */
            int bad = resolve_call(c, NULL, s->target, &r, msg, sizeof(msg));
            if (bad == 0 && r.kind == s->kind &&
                (r.kind == NX_STEP_REST || !strcmp(r.tool, s->tool)))
                continue;
            if (bad == 0)
                snprintf(msg, sizeof(msg),
                         "'%.64s' now names %s '%.80s', not '%.80s' as when the file was read "
                         "(set federation.separator in the file)",
                         s->target, r.kind == NX_STEP_CALL ? "the tool" : "the rest backend",
                         r.kind == NX_STEP_CALL ? r.tool : s->server, s->tool ? s->tool : "");
            copy_field(err->file, sizeof(err->file), w->file);
            copy_field(err->message, sizeof(err->message), msg);
            size_t n = strnlen(s->path, sizeof(err->key) - 6);
            memcpy(err->key, s->path, n);
            memcpy(err->key + n, ".call", 6);
            err->line = s->line;
            return NX_ECONFIG;
        }
    }
    return 0;
}

/* ---- JSON ---- */

json_t *nx_workflows_to_json(const nx_workflows_t *w) {
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && w != NULL && i < w->count; i++) {
        if (json_array_append(arr, w->items[i]->source) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *list_describe(const nx_step_list_t *l);

static json_t *step_describe(const nx_step_t *s) {
    static const char *const on_error[] = {"fail", "continue", "value"};
    static const char *const joins[] = {"all", "any", "quorum"};
    json_t *o = json_pack("{s:s, s:s, s:i, s:s}", "id", s->id, "kind", nx_step_kind_name(s->kind),
                          "line", s->line, "on_error", on_error[s->on_error]);
    if (o == NULL) return NULL;
    int rc = 0;
    if (s->cond) rc |= json_object_set_new(o, "conditional", json_true());
    if (s->timeout_ms) rc |= json_object_set_new(o, "timeout_ms", json_integer(s->timeout_ms));
    if (s->has_retry)
        rc |= json_object_set_new(
            o, "retry",
            json_pack("{s:i, s:I, s:I}", "attempts", (int)s->retry.max_attempts, "base_ms",
                      (json_int_t)s->retry.base_ms, "cap_ms", (json_int_t)s->retry.cap_ms));
    if (s->cache_ttl_ms)
        rc |= json_object_set_new(o, "cache_ttl_ms", json_integer((json_int_t)s->cache_ttl_ms));
    switch (s->kind) {
    case NX_STEP_CALL:
        rc |= json_object_set_new(o, "server", s->server ? json_string(s->server) : json_null());
        rc |= json_object_set_new(o, "tool", json_string(s->tool));
        break;
    case NX_STEP_REST:
        rc |= json_object_set_new(o, "server", json_string(s->server));
        rc |= json_object_set_new(o, "method", json_string(s->method));
        break;
    case NX_STEP_PARALLEL:
        rc |= json_object_set_new(o, "join", json_string(joins[s->join]));
        if (s->join == NX_JOIN_QUORUM)
            rc |= json_object_set_new(o, "quorum", json_integer(s->quorum));
        if (s->max_concurrency)
            rc |= json_object_set_new(o, "max_concurrency", json_integer(s->max_concurrency));
        rc |= json_object_set_new(o, "branches", list_describe(&s->children));
        break;
    case NX_STEP_SWITCH: {
        json_t *cases = json_array();
        rc |= json_object_set_new(o, "cases", cases);
        for (size_t i = 0; rc == 0 && i < s->case_count; i++)
            rc |= json_array_append_new(cases,
                                        json_pack("{s:b, s:o}", "else", s->cases[i].cond == NULL,
                                                  "steps", list_describe(&s->cases[i].steps)));
        break;
    }
    case NX_STEP_MAP:
        rc |= json_object_set_new(o, "concurrency", json_integer(s->max_concurrency));
        if (s->batch_size) rc |= json_object_set_new(o, "batch_size", json_integer(s->batch_size));
        rc |= json_object_set_new(o, "steps", list_describe(&s->children));
        break;
    case NX_STEP_FALLBACK:
        rc |= json_object_set_new(o, "alternatives", list_describe(&s->children));
        break;
    case NX_STEP_GROUP:
        rc |= json_object_set_new(o, "steps", list_describe(&s->children));
        break;
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *list_describe(const nx_step_list_t *l) {
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < l->count; i++) {
        if (json_array_append_new(arr, step_describe(l->items[i])) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

json_t *nx_workflow_describe(const nx_workflow_t *wf) {
    static const char *const names[] = {"api", "mcp", "cli"};
    json_t *ch = json_array();
    for (unsigned k = 0; ch != NULL && k < 3; k++)
        if ((wf->channels & (1u << k)) && json_array_append_new(ch, json_string(names[k])) < 0) {
            json_decref(ch);
            ch = NULL;
        }
    return json_pack("{s:s, s:s?, s:O, s:o, s:i, s:s, s:o}", "name", wf->name, "description",
                     wf->description, "input_schema", wf->input_schema, "channels", ch,
                     "deadline_ms", (int)wf->deadline_ms, "tool", wf->tool_name, "steps",
                     list_describe(&wf->steps));
}
