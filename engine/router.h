/* The HTTP router: method + path patterns with {param} segments. Built once at start and then
 * read-only, so every shard can share it; matching allocates nothing. */
#ifndef NX_ENGINE_ROUTER_H
#define NX_ENGINE_ROUTER_H

#include "nexus/str.h"

#include <stdint.h>

#define NX_ROUTE_MAX_PARAMS 8
#define NX_ROUTE_MAX_SEGMENTS 16

typedef struct nx_router nx_router_t;

/* A registered route, read-only. */
typedef struct nx_route {
    const char *method;
    const char *pattern;
    void *handler;
    void *data;
    uint32_t index; /* dense, in registration order */
} nx_route_t;

/* The result of a match; params point into the matched path. */
typedef struct nx_route_match {
    const nx_route_t *route;
    uint32_t param_count;
    nx_str_t param_names[NX_ROUTE_MAX_PARAMS];
    nx_str_t params[NX_ROUTE_MAX_PARAMS];
    char allow[128]; /* on NX_ENOMETHOD: the Allow header value, e.g. "GET, HEAD, POST" */
} nx_route_match_t;

/** Creates an empty router; NULL on ENOMEM. */
nx_router_t *nx_router_new(void);
/** Frees <r> and its routes. NULL-safe. */
void nx_router_free(nx_router_t *r);
/** Registers <method> + <pattern> ("/api/executions/{id}"); returns the route index, or
 *  NX_ECONFIG for a bad pattern or a duplicate, or -ENOMEM. Strings are copied. */
int nx_router_add(nx_router_t *r, const char *method, const char *pattern, void *handler,
                  void *data);
/** Matches <method> and <path> (anything from '?' on is ignored): 0 with <m> filled,
 *  NX_ENOTFOUND, or NX_ENOMETHOD with m->allow set. HEAD falls back to GET; a literal segment
 *  beats a {param} at the same position. */
int nx_router_match(const nx_router_t *r, nx_str_t method, nx_str_t path, nx_route_match_t *m);
/** Number of registered routes. */
uint32_t nx_router_count(const nx_router_t *r);
/** Route <index> (0 .. count-1), or NULL. */
const nx_route_t *nx_router_route(const nx_router_t *r, uint32_t index);

#endif
