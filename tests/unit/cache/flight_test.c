/* The single-flight table (cache/flight.c): one flight per key even when hashes collide,
 * waiters kept in arrival order, ending a flight hands its waiters over in that order, and the
 * table grows without losing a flight. The protocol on top is tested in cache_test.c. */
#include <criterion/criterion.h>

#include "cache/flight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nx_flights_t T;

static void setup(void) {
    cr_assert_eq(nx__flights_init(&T), 0);
}

static void teardown(void) {
    nx_flight_t *f;
    while ((f = nx__flights_any(&T)) != NULL)
        nx__flight_end(f, NULL);
    nx__flights_dispose(&T);
}

TestSuite(flight, .init = setup, .fini = teardown);

static void fn(void *arg, nx_cache_outcome_t o, const char *v, size_t n, unsigned flags) {}

Test(flight, one_flight_per_key_even_with_colliding_hashes) {
    nx_flight_t *a = nx__flight_start(&T, "tool:a#1", 8, 7);
    nx_flight_t *b = nx__flight_start(&T, "tool:b#1", 8, 7);
    cr_assert_not_null(a);
    cr_assert_neq(a, b);
    cr_assert_eq(a->state, NX_FLIGHT_LEAD);
    cr_assert_eq(nx__flight_find(&T, "tool:a#1", 8, 7), a);
    cr_assert_eq(nx__flight_find(&T, "tool:b#1", 8, 7), b);
    cr_assert_null(nx__flight_find(&T, "tool:c#1", 8, 7));
    cr_assert_null(nx__flight_find(&T, "tool:a#1", 7, 7), "length is part of the key");
    nx__flight_end(a, NULL);
    cr_assert_null(nx__flight_find(&T, "tool:a#1", 8, 7));
    cr_assert_eq(nx__flight_find(&T, "tool:b#1", 8, 7), b);
}

Test(flight, waiters_keep_arrival_order_through_pop_and_end) {
    nx_flight_t *f = nx__flight_start(&T, "k", 1, 1);
    int args[4];
    nx_cache_wait_t *w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = nx__flight_join(f, fn, &args[i]);
        cr_assert_eq(w[i]->flight, f);
        cr_assert_eq(w[i]->arg, &args[i]);
    }
    nx_cache_wait_t *first = nx__flight_pop(f);
    cr_assert_eq(first, w[0]);
    cr_assert_null(first->flight, "a popped waiter belongs to no flight");
    free(first);
    nx_list_t out;
    nx_list_init(&out);
    nx__flight_end(f, &out);
    for (int i = 1; i < 4; i++) {
        nx_list_t *n = nx_list_pop_head(&out);
        cr_assert_not_null(n);
        nx_cache_wait_t *got = nx_container_of(n, nx_cache_wait_t, link);
        cr_assert_eq(got, w[i]);
        cr_assert_null(got->flight);
        free(got);
    }
    cr_assert(nx_list_empty(&out));
    cr_assert_null(nx__flights_any(&T));
}

Test(flight, ending_without_an_out_list_frees_the_waiters) {
    nx_flight_t *f = nx__flight_start(&T, "k", 1, 1);
    for (int i = 0; i < 3; i++)
        nx__flight_join(f, fn, NULL);
    nx__flight_end(f, NULL); /* ASan: nothing leaks */
    cr_assert_eq(T.table.count, 0);
}

Test(flight, the_table_grows_and_finds_every_flight) {
    char k[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(k, sizeof(k), "tool:t#%d", i);
        cr_assert_not_null(
            nx__flight_start(&T, k, (size_t)n, (uint64_t)i * 11400714819323198485ull));
    }
    cr_assert_gt(T.table.mask + 1, 2048);
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(k, sizeof(k), "tool:t#%d", i);
        nx_flight_t *f = nx__flight_find(&T, k, (size_t)n, (uint64_t)i * 11400714819323198485ull);
        cr_assert_not_null(f);
        cr_assert_eq(memcmp(f->key, k, (size_t)n), 0);
    }
}
