/* The HTTP router: method + path patterns with {param} segments. Built once at start and then
 * read-only, so every shard may share one; matching allocates nothing. */
#ifndef NX_ENGINE_ROUTER_H
#define NX_ENGINE_ROUTER_H

#include "nexus/str.h"

#include <stdint.h>

#define NX_ROUTE_MAX_PARAMS 8
#define NX_ROUTE_MAX_SEGMENTS 16 /* longer patterns are rejected, longer paths never match */

typedef struct nx_router nx_router_t;

/* One registered route, owned by the router and read-only. */
typedef struct nx_route {
    const char *method;
    const char *pattern;
    void *handler;
    void *data;
    uint32_t index; /* dense from 0, in registration order */
} nx_route_t;

/* The result of a match, filled in by nx_router_match on the caller's stack. params point into
 * the matched path, param_names into the router. */
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
/** Registers <method> (an HTTP token, case-sensitive) + <pattern> ("/api/executions/{id}") with
 *  <handler> and <data>, both borrowed; copies the strings. Returns the route index, NX_ECONFIG
 *  for a bad method or pattern or a duplicate (same method, same pattern up to param names),
 *  or -ENOMEM. */
int nx_router_add(nx_router_t *r, const char *method, const char *pattern, void *handler,
                  void *data);
/** Matches <method> and <path> (ignoring anything from '?' on) into <m>: 0, NX_ENOTFOUND, or
 *  NX_ENOMETHOD with m->allow set. Among routes of the method that match, the one with a literal
 *  at the first position where they differ wins; HEAD falls back to GET. */
int nx_router_match(const nx_router_t *r, nx_str_t method, nx_str_t path, nx_route_match_t *m);
/** Number of routes registered in <r>. */
uint32_t nx_router_count(const nx_router_t *r);
/** Route <index> (0 .. count-1) of <r>, or NULL. */
const nx_route_t *nx_router_route(const nx_router_t *r, uint32_t index);

#endif
