/* Unit tests for engine/resolver.c: names resolved at add time, addresses read by slot, the
 * background thread re-resolving without changing a stable address, and clean shutdown. */
#include "resolver.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

Test(resolver, numeric_addresses_resolve_at_once) {
    nx_resolver_t *r = nx_resolver_new(0);
    char err[200] = "";
    int a = nx_resolver_add(r, "127.0.0.1", 8080, err, sizeof(err));
    int b = nx_resolver_add(r, "::1", 9090, err, sizeof(err));
    cr_assert_eq(a, 0, "%s", err);
    cr_assert_eq(b, 1, "%s", err);
    const nx_resolved_t *ra = nx_resolver_get(r, a);
    cr_assert_eq(ra->addr.ss_family, AF_INET);
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ra->addr;
    cr_assert_eq(ntohs(in4->sin_port), 8080);
    cr_assert_eq(in4->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    cr_assert_eq(ra->generation, 1);
    const nx_resolved_t *rb = nx_resolver_get(r, b);
    cr_assert_eq(rb->addr.ss_family, AF_INET6);
    cr_assert_eq(ntohs(((const struct sockaddr_in6 *)&rb->addr)->sin6_port), 9090);
    nx_resolver_free(r);
}

Test(resolver, localhost_resolves_by_name) {
    nx_resolver_t *r = nx_resolver_new(0);
    char err[200] = "";
    int a = nx_resolver_add(r, "localhost", 1234, err, sizeof(err));
    cr_assert_geq(a, 0, "%s", err);
    int fam = nx_resolver_get(r, a)->addr.ss_family;
    cr_assert(fam == AF_INET || fam == AF_INET6);
    nx_resolver_free(r);
}

Test(resolver, background_refresh_keeps_a_stable_address_and_stops_promptly) {
    nx_resolver_t *r = nx_resolver_new(10);
    char err[200] = "";
    int a = nx_resolver_add(r, "127.0.0.1", 80, err, sizeof(err));
    cr_assert_eq(a, 0);
    const nx_resolved_t *before = nx_resolver_get(r, a);
    cr_assert_eq(nx_resolver_start(r), 0);
    struct timespec ts = {0, 60 * 1000000L}; /* several refreshes */
    nanosleep(&ts, NULL);
    cr_assert_eq(nx_resolver_get(r, a), before, "an unchanged address is not republished");
    cr_assert_eq(nx_resolver_get(r, a)->generation, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    nx_resolver_free(r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 2, "the thread is woken, not waited for");
}
