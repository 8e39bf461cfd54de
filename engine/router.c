/* Router (see router.h). Patterns are split into segments once, at registration; a match splits
 * the path once and compares it with every route of the same length, which for the tens of
 * routes nexus has is faster than walking a trie. Precedence is a precomputed rank: one bit per
 * position, set for a literal, first position highest, so "more literal earlier" wins. */
#include "router.h"

#include "nexus/errors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct segment {
    nx_str_t text; /* literal text, or the parameter name */
    bool param;
} segment_t;

typedef struct entry {
    nx_route_t route;
    nx_str_t method;
    uint32_t nsegs;
    uint32_t rank; /* bit (MAX_SEGMENTS - 1 - i) set when segment i is a literal */
    segment_t segs[NX_ROUTE_MAX_SEGMENTS];
} entry_t;

struct nx_router {
    entry_t **entries; /* pointers, so a route's address survives growth */
    uint32_t count, cap;
};

nx_router_t *nx_router_new(void) {
    return calloc(1, sizeof(nx_router_t));
}

static void entry_free(entry_t *e) {
    if (e == NULL) return;
    free((char *)e->route.method);
    free((char *)e->route.pattern);
    free(e);
}

void nx_router_free(nx_router_t *r) {
    if (r == NULL) return;
    for (uint32_t i = 0; i < r->count; i++)
        entry_free(r->entries[i]);
    free(r->entries);
    free(r);
}

/* RFC 9110 token: what a request line may carry as its method. */
static bool valid_method(const char *m) {
    size_t n = strlen(m);
    if (n == 0 || n > 32) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c) != NULL))
            return false;
    }
    return true;
}

/* Splits <pattern> (the router's own copy) into <e>'s segments; 0 or NX_ECONFIG. */
static int split_pattern(entry_t *e, const char *pattern) {
    if (pattern[0] != '/') return NX_ECONFIG;
    for (const char *c = pattern; *c; c++) {
        /* '?' and '#' never reach the matcher; spaces and controls never reach the server. */
        if (*c == '?' || *c == '#' || (unsigned char)*c <= ' ' || *c == 0x7f) return NX_ECONFIG;
    }
    e->nsegs = 0;
    e->rank = 0;
    if (pattern[1] == '\0') return 0; /* "/" has no segments */
    uint32_t nparams = 0;
    const char *p = pattern + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (e->nsegs == NX_ROUTE_MAX_SEGMENTS) return NX_ECONFIG;
        segment_t *s = &e->segs[e->nsegs];
        if (memchr(p, '{', n) != NULL || memchr(p, '}', n) != NULL) {
            /* A parameter is a whole segment with a non-empty name and no nested braces. */
            if (n < 3 || p[0] != '{' || p[n - 1] != '}' || memchr(p + 1, '{', n - 2) != NULL ||
                memchr(p + 1, '}', n - 2) != NULL)
                return NX_ECONFIG;
            *s = (segment_t){{p + 1, n - 2}, true};
            for (uint32_t i = 0; i < e->nsegs; i++)
                if (e->segs[i].param && nx_str_eq(e->segs[i].text, s->text)) return NX_ECONFIG;
            if (++nparams > NX_ROUTE_MAX_PARAMS) return NX_ECONFIG;
        } else {
            *s = (segment_t){{p, n}, false}; /* may be empty: "/a/" ends in an empty literal */
            e->rank |= 1u << (NX_ROUTE_MAX_SEGMENTS - 1 - e->nsegs);
        }
        e->nsegs++;
        if (slash == NULL) break;
        p = slash + 1;
    }
    return 0;
}

/* Same method and same path shape: the second could never be chosen. */
static bool duplicate(const entry_t *a, const entry_t *b) {
    if (!nx_str_eq(a->method, b->method) || a->nsegs != b->nsegs || a->rank != b->rank)
        return false;
    for (uint32_t i = 0; i < a->nsegs; i++)
        if (!a->segs[i].param && !nx_str_eq(a->segs[i].text, b->segs[i].text)) return false;
    return true;
}

int nx_router_add(nx_router_t *r, const char *method, const char *pattern, void *handler,
                  void *data) {
    if (method == NULL || pattern == NULL || !valid_method(method)) return NX_ECONFIG;
    if (r->count == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 16;
        entry_t **n = realloc(r->entries, cap * sizeof(*n));
        if (n == NULL) return -ENOMEM;
        r->entries = n;
        r->cap = cap;
    }
    entry_t *e = calloc(1, sizeof(*e));
    int rc = -ENOMEM;
    if (e == NULL) goto fail;
    e->route.method = strdup(method);
    e->route.pattern = strdup(pattern);
    if (e->route.method == NULL || e->route.pattern == NULL) goto fail;
    e->method = nx_str_from(e->route.method);
    if ((rc = split_pattern(e, e->route.pattern)) < 0) goto fail;
    rc = NX_ECONFIG;
    for (uint32_t i = 0; i < r->count; i++)
        if (duplicate(r->entries[i], e)) goto fail;
    e->route.handler = handler;
    e->route.data = data;
    e->route.index = r->count;
    r->entries[r->count] = e;
    return (int)r->count++;
fail:
    entry_free(e);
    return rc;
}

static bool path_matches(const entry_t *e, const nx_str_t *segs, uint32_t nsegs) {
    if (e->nsegs != nsegs) return false;
    for (uint32_t i = 0; i < nsegs; i++) {
        const segment_t *s = &e->segs[i];
        if (s->param ? segs[i].n == 0 : !nx_str_eq(s->text, segs[i])) return false;
    }
    return true;
}

/* Builds the Allow value of a 405: the methods of every route matching the path, plus HEAD
 * wherever GET is, sorted and deduplicated. Runs only on the (rare) 405 path. */
static void build_allow(const nx_router_t *r, const nx_str_t *segs, uint32_t nsegs, char *out,
                        size_t cap) {
    nx_str_t list[32];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->count; i++) {
        const entry_t *e = r->entries[i];
        if (!path_matches(e, segs, nsegs)) continue;
        nx_str_t add[2] = {e->method, NX_STR("HEAD")};
        uint32_t nadd = nx_str_eq(e->method, NX_STR("GET")) ? 2 : 1;
        for (uint32_t a = 0; a < nadd; a++) {
            uint32_t k = 0;
            while (k < n && !nx_str_eq(list[k], add[a]))
                k++;
            if (k == n && n < 32) list[n++] = add[a];
        }
    }
    for (uint32_t i = 1; i < n; i++) { /* insertion sort: a handful of names */
        for (uint32_t j = i; j > 0; j--) {
            nx_str_t x = list[j - 1], y = list[j];
            int c = memcmp(x.p, y.p, x.n < y.n ? x.n : y.n);
            if (c < 0 || (c == 0 && x.n < y.n)) break;
            list[j - 1] = y;
            list[j] = x;
        }
    }
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t need = (i ? 2 : 0) + list[i].n;
        if (off + need >= cap) break; /* cannot happen with sane method names; stay a list */
        if (i) {
            memcpy(out + off, ", ", 2);
            off += 2;
        }
        memcpy(out + off, list[i].p, list[i].n);
        off += list[i].n;
    }
    out[off] = '\0';
}

int nx_router_match(const nx_router_t *r, nx_str_t method, nx_str_t path, nx_route_match_t *m) {
    m->route = NULL;
    m->param_count = 0;
    m->allow[0] = '\0';
    const char *q = path.n ? memchr(path.p, '?', path.n) : NULL;
    if (q != NULL) path.n = (size_t)(q - path.p);
    if (path.n == 0 || path.p[0] != '/') return NX_ENOTFOUND;

    nx_str_t segs[NX_ROUTE_MAX_SEGMENTS];
    uint32_t nsegs = 0;
    if (path.n > 1) {
        const char *p = path.p + 1, *end = path.p + path.n;
        for (;;) {
            if (nsegs == NX_ROUTE_MAX_SEGMENTS) return NX_ENOTFOUND; /* longer than any route */
            const char *slash = memchr(p, '/', (size_t)(end - p));
            segs[nsegs++] = (nx_str_t){p, (size_t)((slash ? slash : end) - p)};
            if (slash == NULL) break;
            p = slash + 1;
        }
    }

    bool head = nx_str_eq(method, NX_STR("HEAD")), path_known = false;
    const entry_t *best = NULL, *best_get = NULL;
    for (uint32_t i = 0; i < r->count; i++) {
        const entry_t *e = r->entries[i];
        if (!path_matches(e, segs, nsegs)) continue;
        path_known = true;
        if (nx_str_eq(e->method, method)) {
            if (best == NULL || e->rank > best->rank) best = e;
        } else if (head && nx_str_eq(e->method, NX_STR("GET"))) {
            if (best_get == NULL || e->rank > best_get->rank) best_get = e;
        }
    }
    if (best == NULL) best = best_get; /* HEAD without a HEAD route for this path */
    if (best == NULL) {
        if (!path_known) return NX_ENOTFOUND;
        build_allow(r, segs, nsegs, m->allow, sizeof(m->allow));
        return NX_ENOMETHOD;
    }
    m->route = &best->route;
    for (uint32_t i = 0; i < nsegs; i++) {
        if (!best->segs[i].param) continue;
        m->param_names[m->param_count] = best->segs[i].text;
        m->params[m->param_count++] = segs[i];
    }
    return 0;
}

uint32_t nx_router_count(const nx_router_t *r) {
    return r->count;
}

const nx_route_t *nx_router_route(const nx_router_t *r, uint32_t index) {
    return index < r->count ? &r->entries[index]->route : NULL;
}
