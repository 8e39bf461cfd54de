/* Router (see router.h). Patterns are pre-split into segments; a match walks the path once
 * per candidate route, which for the tens of routes nexus has beats building a trie. Among
 * routes matching the path, the most specific wins: compared segment by segment, a literal
 * beats a parameter. */
#include "router.h"

#include "nexus/errors.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct segment {
    nx_str_t text; /* literal text, or the parameter name */
    bool param;
} segment_t;

typedef struct entry {
    nx_route_t route;
    segment_t segs[NX_ROUTE_MAX_SEGMENTS];
    uint32_t nsegs;
    uint32_t nparams;
} entry_t;

struct nx_router {
    entry_t *entries;
    uint32_t count, cap;
};

nx_router_t *nx_router_new(void) {
    return calloc(1, sizeof(nx_router_t));
}

void nx_router_free(nx_router_t *r) {
    if (r == NULL) return;
    for (uint32_t i = 0; i < r->count; i++) {
        free((char *)r->entries[i].route.method);
        free((char *)r->entries[i].route.pattern);
    }
    free(r->entries);
    free(r);
}

/* Splits <pattern> into <e>'s segments; returns 0 or NX_ECONFIG. */
static int split_pattern(entry_t *e, const char *pattern) {
    if (pattern[0] != '/') return NX_ECONFIG;
    const char *p = pattern + 1;
    e->nsegs = e->nparams = 0;
    if (*p == '\0') return 0; /* "/" has no segments */
    for (;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (e->nsegs == NX_ROUTE_MAX_SEGMENTS) return NX_ECONFIG;
        segment_t *s = &e->segs[e->nsegs++];
        bool open = memchr(p, '{', n) != NULL, close = memchr(p, '}', n) != NULL;
        if (open || close) {
            if (n < 3 || p[0] != '{' || p[n - 1] != '}' || memchr(p + 1, '{', n - 2) ||
                memchr(p + 1, '}', n - 2))
                return NX_ECONFIG; /* a parameter must be a whole, non-empty segment */
            s->param = true;
            s->text = (nx_str_t){p + 1, n - 2};
            for (uint32_t i = 0; i + 1 < e->nsegs; i++)
                if (e->segs[i].param && nx_str_eq(e->segs[i].text, s->text)) return NX_ECONFIG;
            if (++e->nparams > NX_ROUTE_MAX_PARAMS) return NX_ECONFIG;
        } else {
            s->param = false;
            s->text = (nx_str_t){p, n};
        }
        if (end == NULL) break;
        p = end + 1;
        if (*p == '\0') { /* trailing slash: an empty last segment, matched literally */
            if (e->nsegs == NX_ROUTE_MAX_SEGMENTS) return NX_ECONFIG;
            e->segs[e->nsegs++] = (segment_t){{p, 0}, false};
            break;
        }
    }
    return 0;
}

static bool same_shape(const entry_t *a, const entry_t *b) {
    if (a->nsegs != b->nsegs) return false;
    for (uint32_t i = 0; i < a->nsegs; i++) {
        if (a->segs[i].param != b->segs[i].param) return false;
        if (!a->segs[i].param && !nx_str_eq(a->segs[i].text, b->segs[i].text)) return false;
    }
    return true;
}

int nx_router_add(nx_router_t *r, const char *method, const char *pattern, void *handler,
                  void *data) {
    if (method == NULL || method[0] == '\0' || pattern == NULL) return NX_ECONFIG;
    if (r->count == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 16;
        entry_t *n = realloc(r->entries, cap * sizeof(*n));
        if (n == NULL) return -ENOMEM;
        /* Segments point into the pattern copies, which do not move: safe to realloc. */
        r->entries = n;
        r->cap = cap;
    }
    entry_t *e = &r->entries[r->count];
    memset(e, 0, sizeof(*e));
    char *pat = strdup(pattern), *meth = strdup(method);
    if (pat == NULL || meth == NULL) {
        free(pat);
        free(meth);
        return -ENOMEM;
    }
    int rc = split_pattern(e, pat);
    for (uint32_t i = 0; rc == 0 && i < r->count; i++) {
        if (strcmp(r->entries[i].route.method, meth) == 0 && same_shape(&r->entries[i], e))
            rc = NX_ECONFIG; /* the same method and path shape twice */
    }
    if (rc < 0) {
        free(pat);
        free(meth);
        return rc;
    }
    e->route = (nx_route_t){meth, pat, handler, data, r->count};
    return (int)r->count++;
}

/* Matches the path segments against <e>; fills params into <m> when <m> is not NULL. */
static bool match_entry(const entry_t *e, const nx_str_t *segs, uint32_t nsegs,
                        nx_route_match_t *m) {
    if (e->nsegs != nsegs) return false;
    for (uint32_t i = 0; i < nsegs; i++) {
        const segment_t *s = &e->segs[i];
        if (s->param) {
            if (segs[i].n == 0) return false;
        } else if (!nx_str_eq(s->text, segs[i])) {
            return false;
        }
    }
    if (m != NULL) {
        m->param_count = 0;
        for (uint32_t i = 0; i < nsegs; i++) {
            if (!e->segs[i].param) continue;
            m->param_names[m->param_count] = e->segs[i].text;
            m->params[m->param_count++] = segs[i];
        }
    }
    return true;
}

/* True if <a> is more specific than <b>: the first segment where they differ is literal in a. */
static bool more_specific(const entry_t *a, const entry_t *b) {
    for (uint32_t i = 0; i < a->nsegs && i < b->nsegs; i++) {
        if (a->segs[i].param != b->segs[i].param) return !a->segs[i].param;
    }
    return false;
}

static void add_allow(char *allow, size_t cap, const char *method) {
    /* Keep the list sorted and free of duplicates. */
    char list[16][16];
    int n = 0;
    for (const char *p = allow; *p && n < 15;) {
        const char *end = strstr(p, ", ");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= 16) len = 15;
        memcpy(list[n], p, len);
        list[n++][len] = '\0';
        p = end ? end + 2 : p + len;
    }
    for (int i = 0; i < n; i++)
        if (strcmp(list[i], method) == 0) return;
    if (n == 15) return;
    snprintf(list[n++], 16, "%s", method);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of names */
        for (int j = i; j > 0 && strcmp(list[j - 1], list[j]) > 0; j--) {
            char tmp[16];
            memcpy(tmp, list[j], 16);
            memcpy(list[j], list[j - 1], 16);
            memcpy(list[j - 1], tmp, 16);
        }
    size_t off = 0;
    allow[0] = '\0';
    for (int i = 0; i < n && off < cap; i++)
        off += (size_t)snprintf(allow + off, cap - off, "%s%s", i ? ", " : "", list[i]);
}

int nx_router_match(const nx_router_t *r, nx_str_t method, nx_str_t path, nx_route_match_t *m) {
    const char *q = path.n ? memchr(path.p, '?', path.n) : NULL;
    if (q != NULL) path.n = (size_t)(q - path.p);
    memset(m, 0, offsetof(nx_route_match_t, param_names));
    m->allow[0] = '\0';
    if (path.n == 0 || path.p[0] != '/') return NX_ENOTFOUND;

    nx_str_t segs[NX_ROUTE_MAX_SEGMENTS];
    uint32_t nsegs = 0;
    const char *p = path.p + 1, *end = path.p + path.n;
    if (p < end || path.n > 1) {
        for (;;) {
            const char *slash = memchr(p, '/', (size_t)(end - p));
            if (nsegs == NX_ROUTE_MAX_SEGMENTS) return NX_ENOTFOUND;
            segs[nsegs++] = (nx_str_t){p, slash ? (size_t)(slash - p) : (size_t)(end - p)};
            if (slash == NULL) break;
            p = slash + 1;
        }
    }

    bool head = nx_str_eq(method, NX_STR("HEAD"));
    const entry_t *best = NULL, *best_get = NULL;
    bool path_known = false;
    for (uint32_t i = 0; i < r->count; i++) {
        const entry_t *e = &r->entries[i];
        if (!match_entry(e, segs, nsegs, NULL)) continue;
        path_known = true;
        nx_str_t em = nx_str_from(e->route.method);
        if (nx_str_eq(em, method)) {
            if (best == NULL || more_specific(e, best)) best = e;
        } else if (head && strcmp(e->route.method, "GET") == 0) {
            if (best_get == NULL || more_specific(e, best_get)) best_get = e;
        }
    }
    if (best == NULL) best = best_get;
    if (best != NULL) {
        m->route = &best->route;
        match_entry(best, segs, nsegs, m);
        return 0;
    }
    if (!path_known) return NX_ENOTFOUND;
    for (uint32_t i = 0; i < r->count; i++) {
        const entry_t *e = &r->entries[i];
        if (!match_entry(e, segs, nsegs, NULL)) continue;
        add_allow(m->allow, sizeof(m->allow), e->route.method);
        if (strcmp(e->route.method, "GET") == 0) add_allow(m->allow, sizeof(m->allow), "HEAD");
    }
    return NX_ENOMETHOD;
}

uint32_t nx_router_count(const nx_router_t *r) {
    return r->count;
}

const nx_route_t *nx_router_route(const nx_router_t *r, uint32_t index) {
    return index < r->count ? &r->entries[index].route : NULL;
}
