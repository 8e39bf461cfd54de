/* The router: literal and parameter routes, precedence, 404/405 with Allow, HEAD fallback,
 * invalid patterns. */
#include <criterion/criterion.h>

#include "nexus/errors.h"
#include "router.h"

#include <stdio.h>

static int H1, H2, H3, H4;

static nx_router_t *sample(void) {
    nx_router_t *r = nx_router_new();
    cr_assert_eq(nx_router_add(r, "GET", "/health", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "GET", "/api/executions/{id}", &H2, NULL), 1);
    cr_assert_eq(nx_router_add(r, "DELETE", "/api/executions/{id}", &H3, NULL), 2);
    cr_assert_eq(nx_router_add(r, "GET", "/api/executions/stats", &H4, NULL), 3);
    cr_assert_eq(nx_router_add(r, "POST", "/api/workflows/{name}/runs/{run}", &H1, NULL), 4);
    cr_assert_eq(nx_router_add(r, "GET", "/", &H4, NULL), 5);
    return r;
}

static int match(nx_router_t *r, const char *method, const char *path, nx_route_match_t *m) {
    return nx_router_match(r, nx_str_from(method), nx_str_from(path), m);
}

Test(router, literal_and_param_routes) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    cr_assert_eq(match(r, "GET", "/health", &m), 0);
    cr_assert_eq(m.route->handler, &H1);
    cr_assert_eq(m.param_count, 0);
    cr_assert_eq(match(r, "GET", "/", &m), 0);
    cr_assert_eq(m.route->index, 5);
    cr_assert_eq(match(r, "GET", "/api/executions/abc123", &m), 0);
    cr_assert_eq(m.route->handler, &H2);
    cr_assert_eq(m.param_count, 1);
    cr_assert(nx_str_eq(m.param_names[0], NX_STR("id")));
    cr_assert(nx_str_eq(m.params[0], NX_STR("abc123")));
    cr_assert_eq(match(r, "POST", "/api/workflows/etl/runs/7?wait=true", &m), 0);
    cr_assert_eq(m.param_count, 2);
    cr_assert(nx_str_eq(m.params[0], NX_STR("etl")));
    cr_assert(nx_str_eq(m.params[1], NX_STR("7")), "the query string is not part of a param");
    nx_router_free(r);
}

Test(router, literal_beats_param) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    cr_assert_eq(match(r, "GET", "/api/executions/stats", &m), 0);
    cr_assert_eq(m.route->handler, &H4);
    nx_router_free(r);
}

Test(router, not_found_and_method_not_allowed) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    cr_assert_eq(match(r, "GET", "/nope", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "GET", "/health/", &m), NX_ENOTFOUND, "trailing slash is significant");
    cr_assert_eq(match(r, "GET", "/api/executions/", &m), NX_ENOTFOUND, "params are non-empty");
    cr_assert_eq(match(r, "GET", "/api/executions/a/b", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "POST", "/health", &m), NX_ENOMETHOD);
    cr_assert_str_eq(m.allow, "GET, HEAD");
    cr_assert_eq(match(r, "PUT", "/api/executions/9", &m), NX_ENOMETHOD);
    cr_assert_str_eq(m.allow, "DELETE, GET, HEAD");
    nx_router_free(r);
}

Test(router, head_falls_back_to_get) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    cr_assert_eq(match(r, "HEAD", "/health", &m), 0);
    cr_assert_eq(m.route->handler, &H1);
    cr_assert_eq(nx_router_add(r, "HEAD", "/health", &H3, NULL), 6);
    cr_assert_eq(match(r, "HEAD", "/health", &m), 0);
    cr_assert_eq(m.route->handler, &H3, "an explicit HEAD route wins");
    nx_router_free(r);
}

Test(router, rejects_bad_patterns_and_duplicates) {
    nx_router_t *r = nx_router_new();
    cr_assert_eq(nx_router_add(r, "GET", "health", &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{}", &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, "GET", "/a/x{id}", &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{id}/{id}", &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{id", &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{id}", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{other}", &H1, NULL), NX_ECONFIG,
                 "same shape under another param name is a duplicate");
    cr_assert_eq(nx_router_add(r, "POST", "/a/{other}", &H1, NULL), 1);
    cr_assert_eq(nx_router_count(r), 2);
    cr_assert_str_eq(nx_router_route(r, 1)->pattern, "/a/{other}");
    cr_assert_null(nx_router_route(r, 2));
    nx_router_free(r);
}

Test(router, many_params_and_many_routes) {
    nx_router_t *r = nx_router_new();
    cr_assert_eq(nx_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}", &H1, NULL),
                 NX_ECONFIG, "more than NX_ROUTE_MAX_PARAMS");
    char pat[32];
    for (int i = 0; i < 40; i++) {
        snprintf(pat, sizeof(pat), "/r%d", i);
        cr_assert_eq(nx_router_add(r, "GET", pat, &H2, NULL), i + 1);
    }
    nx_route_match_t m;
    cr_assert_eq(match(r, "GET", "/1/2/3/4/5/6/7/8", &m), 0);
    cr_assert_eq(m.param_count, 8);
    cr_assert(nx_str_eq(m.params[7], NX_STR("8")));
    cr_assert_eq(match(r, "GET", "/r39", &m), 0);
    cr_assert_eq(m.route->index, 40);
    nx_router_free(r);
}
