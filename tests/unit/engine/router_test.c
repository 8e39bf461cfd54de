/* The router: literal and parameter routes, precedence, 404 and 405 with its Allow value, HEAD
 * fallback, query strings, trailing slashes, invalid patterns and duplicates, dense indices. */
#include <criterion/criterion.h>

#include "nexus/errors.h"
#include "router.h"

#include <stdio.h>
#include <string.h>

static int H1, H2, H3, H4, H5;

static nx_router_t *sample(void) {
    nx_router_t *r = nx_router_new();
    cr_assert_not_null(r);
    cr_assert_eq(nx_router_add(r, "GET", "/health", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "GET", "/api/executions/{id}", &H2, NULL), 1);
    cr_assert_eq(nx_router_add(r, "DELETE", "/api/executions/{id}", &H3, NULL), 2);
    cr_assert_eq(nx_router_add(r, "GET", "/api/executions/stats", &H4, NULL), 3);
    cr_assert_eq(nx_router_add(r, "POST", "/api/workflows/{name}/runs/{run}", &H5, NULL), 4);
    cr_assert_eq(nx_router_add(r, "GET", "/", &H4, NULL), 5);
    return r;
}

static int match(const nx_router_t *r, const char *method, const char *path, nx_route_match_t *m) {
    return nx_router_match(r, nx_str_from(method), nx_str_from(path), m);
}

static const void *handler_of(const nx_router_t *r, const char *method, const char *path) {
    nx_route_match_t m;
    int rc = match(r, method, path, &m);
    cr_assert_eq(rc, 0, "%s %s: %d", method, path, rc);
    return m.route->handler;
}

Test(router, literal_and_param_routes) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    cr_assert_eq(match(r, "GET", "/health", &m), 0);
    cr_assert_eq(m.route->handler, &H1);
    cr_assert_str_eq(m.route->method, "GET");
    cr_assert_str_eq(m.route->pattern, "/health");
    cr_assert_eq(m.param_count, 0);
    cr_assert_eq(match(r, "GET", "/", &m), 0);
    cr_assert_eq(m.route->index, 5);
    const char *path = "/api/executions/abc123";
    cr_assert_eq(match(r, "GET", path, &m), 0);
    cr_assert_eq(m.route->handler, &H2);
    cr_assert_eq(m.param_count, 1);
    cr_assert(nx_str_eq(m.param_names[0], NX_STR("id")));
    cr_assert(nx_str_eq(m.params[0], NX_STR("abc123")));
    cr_assert_eq(m.params[0].p, path + 16, "params point into the path, no copy");
    cr_assert_eq(match(r, "POST", "/api/workflows/etl/runs/7", &m), 0);
    cr_assert_eq(m.route->handler, &H5);
    cr_assert_eq(m.param_count, 2);
    cr_assert(nx_str_eq(m.param_names[0], NX_STR("name")));
    cr_assert(nx_str_eq(m.params[0], NX_STR("etl")));
    cr_assert(nx_str_eq(m.param_names[1], NX_STR("run")));
    cr_assert(nx_str_eq(m.params[1], NX_STR("7")));
    nx_router_free(r);
}

Test(router, path_is_not_a_nul_terminated_string) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    /* The request buffer goes on past the path: only path.n bytes count. */
    const char buf[] = "/api/executions/42 HTTP/1.1\r\n";
    cr_assert_eq(nx_router_match(r, NX_STR("GET"), (nx_str_t){buf, 18}, &m), 0);
    cr_assert(nx_str_eq(m.params[0], NX_STR("42")));
    cr_assert_eq(nx_router_match(r, NX_STR("GET"), (nx_str_t){buf, 7}, &m), NX_ENOTFOUND);
    cr_assert_eq(nx_router_match(r, NX_STR("GET"), (nx_str_t){NULL, 0}, &m), NX_ENOTFOUND);
    nx_router_free(r);
}

Test(router, literal_beats_param_whatever_the_registration_order) {
    nx_router_t *r = sample(); /* {id} was registered before stats */
    cr_assert_eq(handler_of(r, "GET", "/api/executions/stats"), &H4);
    cr_assert_eq(handler_of(r, "GET", "/api/executions/statsX"), &H2);
    nx_router_free(r);

    r = nx_router_new(); /* literal first this time */
    cr_assert_eq(nx_router_add(r, "GET", "/api/executions/stats", &H4, NULL), 0);
    cr_assert_eq(nx_router_add(r, "GET", "/api/executions/{id}", &H2, NULL), 1);
    cr_assert_eq(handler_of(r, "GET", "/api/executions/stats"), &H4);
    cr_assert_eq(handler_of(r, "GET", "/api/executions/9"), &H2);
    nx_router_free(r);
}

Test(router, earlier_literal_wins_across_positions) {
    nx_router_t *r = nx_router_new();
    cr_assert_eq(nx_router_add(r, "GET", "/{a}/b/c", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{b}/{c}", &H2, NULL), 1);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{b}/c", &H3, NULL), 2);
    cr_assert_eq(nx_router_add(r, "GET", "/{a}/{b}/{c}", &H4, NULL), 3);
    cr_assert_eq(handler_of(r, "GET", "/a/b/c"), &H3, "literal at positions 1 and 3");
    cr_assert_eq(handler_of(r, "GET", "/a/b/x"), &H2);
    cr_assert_eq(handler_of(r, "GET", "/x/b/c"), &H1);
    cr_assert_eq(handler_of(r, "GET", "/x/y/z"), &H4);
    nx_router_free(r);
}

Test(router, precedence_is_among_routes_of_the_requested_method) {
    /* The literal route exists only for POST: a GET still finds the parameter route. */
    nx_router_t *r = nx_router_new();
    cr_assert_eq(nx_router_add(r, "GET", "/jobs/{id}", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "POST", "/jobs/run", &H2, NULL), 1);
    cr_assert_eq(handler_of(r, "GET", "/jobs/run"), &H1);
    cr_assert_eq(handler_of(r, "POST", "/jobs/run"), &H2);
    nx_route_match_t m;
    cr_assert_eq(match(r, "POST", "/jobs/7", &m), NX_ENOMETHOD);
    cr_assert_str_eq(m.allow, "GET, HEAD");
    nx_router_free(r);
}

Test(router, not_found) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    cr_assert_eq(match(r, "GET", "/nope", &m), NX_ENOTFOUND);
    cr_assert_null(m.route);
    cr_assert_eq(m.param_count, 0);
    cr_assert_eq(match(r, "GET", "", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "GET", "health", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "GET", "*", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "GET", "/api/executions/", &m), NX_ENOTFOUND, "params are non-empty");
    cr_assert_eq(match(r, "GET", "/api/executions/a/b", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "GET", "/api/executions", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "GET", "/Health", &m), NX_ENOTFOUND, "paths are case-sensitive");
    cr_assert_eq(match(r, "GET", "//health", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "GET", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", &m), NX_ENOTFOUND,
                 "more segments than any route can have");
    nx_router_free(r);
}

Test(router, method_not_allowed_lists_allow_sorted_and_deduplicated) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    cr_assert_eq(match(r, "POST", "/health", &m), NX_ENOMETHOD);
    cr_assert_null(m.route);
    cr_assert_str_eq(m.allow, "GET, HEAD");
    cr_assert_eq(match(r, "PUT", "/api/executions/9", &m), NX_ENOMETHOD);
    cr_assert_str_eq(m.allow, "DELETE, GET, HEAD");
    /* Both /api/executions/{id} and /api/executions/stats match "stats": union of methods. */
    cr_assert_eq(match(r, "PATCH", "/api/executions/stats", &m), NX_ENOMETHOD);
    cr_assert_str_eq(m.allow, "DELETE, GET, HEAD");
    cr_assert_eq(match(r, "get", "/health", &m), NX_ENOMETHOD, "methods are case-sensitive");
    cr_assert_eq(match(r, "GET", "/api/workflows/a/runs/1", &m), NX_ENOMETHOD);
    cr_assert_str_eq(m.allow, "POST", "no HEAD without GET");
    cr_assert_eq(match(r, "HEAD", "/api/workflows/a/runs/1", &m), NX_ENOMETHOD);
    cr_assert_str_eq(m.allow, "POST");
    nx_router_free(r);

    /* An explicit HEAD next to GET is listed once; OPTIONS and custom tokens sort in. */
    r = nx_router_new();
    cr_assert_eq(nx_router_add(r, "PUT", "/x/{id}", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "HEAD", "/x/{id}", &H1, NULL), 1);
    cr_assert_eq(nx_router_add(r, "GET", "/x/{id}", &H1, NULL), 2);
    cr_assert_eq(nx_router_add(r, "GET", "/x/y", &H1, NULL), 3);
    cr_assert_eq(nx_router_add(r, "OPTIONS", "/x/y", &H1, NULL), 4);
    cr_assert_eq(nx_router_add(r, "M-SEARCH", "/{a}/{b}", &H1, NULL), 5);
    cr_assert_eq(match(r, "POST", "/x/y", &m), NX_ENOMETHOD);
    cr_assert_str_eq(m.allow, "GET, HEAD, M-SEARCH, OPTIONS, PUT");
    nx_router_free(r);
}

Test(router, head_falls_back_to_get) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    cr_assert_eq(match(r, "HEAD", "/health", &m), 0);
    cr_assert_eq(m.route->handler, &H1);
    cr_assert_str_eq(m.route->method, "GET", "the GET route itself is returned");
    cr_assert_eq(match(r, "HEAD", "/api/executions/x1", &m), 0);
    cr_assert_eq(m.route->handler, &H2);
    cr_assert(nx_str_eq(m.params[0], NX_STR("x1")));
    cr_assert_eq(match(r, "HEAD", "/api/executions/stats", &m), 0);
    cr_assert_eq(m.route->handler, &H4, "precedence holds for the fallback too");
    cr_assert_eq(nx_router_add(r, "HEAD", "/health", &H3, NULL), 6);
    cr_assert_eq(match(r, "HEAD", "/health", &m), 0);
    cr_assert_eq(m.route->handler, &H3, "an explicit HEAD route wins");
    cr_assert_eq(match(r, "GET", "/health", &m), 0);
    cr_assert_eq(m.route->handler, &H1);
    nx_router_free(r);
}

Test(router, trailing_slash_is_significant) {
    nx_router_t *r = nx_router_new();
    cr_assert_eq(nx_router_add(r, "GET", "/docs", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "GET", "/docs/", &H2, NULL), 1);
    cr_assert_eq(nx_router_add(r, "GET", "/items/{id}", &H3, NULL), 2);
    nx_route_match_t m;
    cr_assert_eq(handler_of(r, "GET", "/docs"), &H1);
    cr_assert_eq(handler_of(r, "GET", "/docs/"), &H2);
    cr_assert_eq(match(r, "GET", "/items/7/", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "GET", "/docs//", &m), NX_ENOTFOUND);
    nx_router_free(r);
}

Test(router, query_string_is_ignored_and_percent_encoding_kept) {
    nx_router_t *r = sample();
    nx_route_match_t m;
    cr_assert_eq(handler_of(r, "GET", "/health?verbose=1"), &H1);
    cr_assert_eq(handler_of(r, "GET", "/?x"), &H4);
    cr_assert_eq(handler_of(r, "GET", "/health?"), &H1);
    cr_assert_eq(match(r, "GET", "/health/?a=/b", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "POST", "/api/workflows/etl/runs/7?wait=true&x=/y", &m), 0);
    cr_assert(nx_str_eq(m.params[1], NX_STR("7")), "the query string is not part of a param");
    cr_assert_eq(match(r, "GET", "/api/executions/?id=3", &m), NX_ENOTFOUND);
    cr_assert_eq(match(r, "GET", "/api/executions/a%2Fb%20c", &m), 0);
    cr_assert(nx_str_eq(m.params[0], NX_STR("a%2Fb%20c")), "percent-encoding is left as is");
    nx_router_free(r);
}

Test(router, rejects_bad_patterns_and_methods) {
    static const char *bad[] = {
        "",
        "health",
        "/a/{}",
        "/a/x{id}",
        "/a/{id}x",
        "/a/{id",
        "/a/id}",
        "/a/{{id}}",
        "/a/{i}d}",
        "/a/{i{d}",
        "/a b",
        "/a?x=1",
        "/a#frag",
        "/a\tb",
        "/{id}/{id}",
        "/{a}/b/{a}",
        "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", /* 17 segments */
        "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",       /* 9 params */
    };
    nx_router_t *r = nx_router_new();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(nx_router_add(r, "GET", bad[i], &H1, NULL), NX_ECONFIG, "accepted \"%s\"",
                     bad[i]);
    cr_assert_eq(nx_router_add(r, "", "/a", &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, "GE T", "/a", &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, "GET\r\n", "/a", &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, NULL, "/a", &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, "GET", NULL, &H1, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_count(r), 0, "failed adds leave nothing behind");
    /* The limits themselves are fine. */
    cr_assert_eq(nx_router_add(r, "GET", "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{x-y.z_1}", &H1, NULL), 1);
    nx_router_free(r);
}

Test(router, rejects_duplicates) {
    nx_router_t *r = nx_router_new();
    cr_assert_eq(nx_router_add(r, "GET", "/a/{id}", &H1, NULL), 0);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{id}", &H2, NULL), NX_ECONFIG);
    cr_assert_eq(nx_router_add(r, "GET", "/a/{other}", &H1, NULL), NX_ECONFIG,
                 "same shape under another param name is a duplicate");
    cr_assert_eq(nx_router_add(r, "POST", "/a/{other}", &H1, NULL), 1);
    cr_assert_eq(nx_router_add(r, "GET", "/a/b", &H1, NULL), 2, "a literal is another shape");
    cr_assert_eq(nx_router_add(r, "GET", "/a/{id}/", &H1, NULL), 3);
    cr_assert_eq(nx_router_count(r), 4);
    nx_router_free(r);
}

Test(router, many_params) {
    nx_router_t *r = nx_router_new();
    cr_assert_eq(nx_router_add(r, "GET", "/{a}/{b}/{c}/x/{d}/{e}/{f}/{g}/{h}", &H1, NULL), 0);
    nx_route_match_t m;
    cr_assert_eq(match(r, "GET", "/1/2/3/x/4/5/6/7/8", &m), 0);
    cr_assert_eq(m.param_count, NX_ROUTE_MAX_PARAMS);
    static const char *names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (int i = 0; i < NX_ROUTE_MAX_PARAMS; i++) {
        char v[2] = {(char)('1' + i), 0};
        cr_assert(nx_str_eq(m.param_names[i], nx_str_from(names[i])), "name %d", i);
        cr_assert(nx_str_eq(m.params[i], nx_str_from(v)), "value %d", i);
    }
    cr_assert_eq(match(r, "GET", "/1/2/3/y/4/5/6/7/8", &m), NX_ENOTFOUND);
    nx_router_free(r);
}

Test(router, dense_indices_and_copied_strings) {
    nx_router_t *r = nx_router_new();
    char method[8], pat[32];
    for (int i = 0; i < 40; i++) {
        snprintf(method, sizeof(method), "%s", i % 2 ? "POST" : "GET");
        snprintf(pat, sizeof(pat), "/r%d/{id}", i);
        cr_assert_eq(nx_router_add(r, method, pat, &H2, (void *)(intptr_t)i), i);
        if (i == 10) cr_assert_eq(nx_router_add(r, "GET", "bad", &H2, NULL), NX_ECONFIG);
    }
    memset(pat, 'x', sizeof(pat) - 1); /* the router keeps its own copies */
    memset(method, 'x', sizeof(method) - 1);
    cr_assert_eq(nx_router_count(r), 40);
    const nx_route_t *first = nx_router_route(r, 0);
    for (uint32_t i = 0; i < 40; i++) {
        const nx_route_t *rt = nx_router_route(r, i);
        cr_assert_not_null(rt);
        cr_assert_eq(rt->index, i);
        cr_assert_eq((intptr_t)rt->data, (intptr_t)i);
        snprintf(pat, sizeof(pat), "/r%u/{id}", i);
        cr_assert_str_eq(rt->pattern, pat);
        cr_assert_str_eq(rt->method, i % 2 ? "POST" : "GET");
    }
    cr_assert_null(nx_router_route(r, 40));
    cr_assert_eq(nx_router_add(r, "GET", "/late", &H1, NULL), 40);
    cr_assert_eq(nx_router_route(r, 0), first, "route pointers survive later additions");
    nx_route_match_t m;
    cr_assert_eq(match(r, "POST", "/r39/abc", &m), 0);
    cr_assert_eq(m.route->index, 39);
    cr_assert_eq(m.route, nx_router_route(r, 39));
    nx_router_free(r);
    nx_router_free(NULL);
}
