/* The L1 policy (cache/l1.c) on a fake clock: TTL and stale grace, the byte budget and the
 * per-entry bound, LRU versus CLOCK victims, expired versus evicted counting, replacement,
 * pinning, hash collisions, and the bookkeeping invariants under a random workload. */
#include <criterion/criterion.h>

#include "cache/l1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COST(k, v) nx__l1_cost(strlen(k), strlen(v))

static nx_l1_t L;

static void init(uint64_t max_bytes, uint64_t max_entry, nx_cache_eviction_t ev) {
    nx_l1_config_t cfg = {.max_bytes = max_bytes, .max_entry_bytes = max_entry, .eviction = ev};
    cr_assert_eq(nx__l1_init(&L, &cfg), 0);
}

static void fini(void) {
    nx__l1_dispose(&L);
}

/* A weak hash on purpose for most tests, so chains hold more than one key. */
static uint64_t h(const char *k) {
    return (uint64_t)strlen(k) * 0x9E3779B97F4A7C15ull + (unsigned char)k[0];
}

static int put(const char *k, const char *v, uint64_t now, uint64_t ttl, uint64_t grace) {
    return nx__l1_put(&L, k, strlen(k), h(k), v, strlen(v), now, now + ttl, now + ttl + grace);
}

/* The fresh value of <k> at <now> as a string, or NULL. */
static const char *get(const char *k, uint64_t now) {
    static char buf[256];
    nx_l1_entry_t *e = nx__l1_get(&L, k, strlen(k), h(k), now);
    if (e == NULL) return NULL;
    snprintf(buf, sizeof(buf), "%.*s", (int)e->vlen, nx__l1_value(e));
    return buf;
}

static bool has(const char *k, uint64_t now) {
    return nx__l1_peek(&L, k, strlen(k), h(k), now) != NULL;
}

TestSuite(l1, .fini = fini);

Test(l1, fresh_until_ttl_then_stale_for_the_grace_then_gone) {
    init(1 << 20, 1 << 10, NX_CACHE_LRU);
    cr_assert_eq(put("k", "v1", 1000, 100, 50), 0);
    cr_assert_str_eq(get("k", 1000), "v1");
    cr_assert_str_eq(get("k", 1099), "v1", "fresh until the last millisecond of the TTL");
    cr_assert_null(get("k", 1100), "not fresh at fresh_until");
    cr_assert(has("k", 1100), "stale within the grace");
    cr_assert(has("k", 1149));
    cr_assert_eq(L.expired, 0);
    cr_assert_not(has("k", 1150), "gone at fresh_until + grace");
    cr_assert_eq(L.expired, 1, "dropped lazily and counted as expired");
    cr_assert_eq(L.entries, 0);
    cr_assert_eq(L.bytes, 0);
    cr_assert_eq(L.hits, 2);
    cr_assert_eq(L.misses, 1);
    cr_assert_eq(L.evictions, 0);
}

Test(l1, without_grace_an_entry_dies_at_its_ttl) {
    init(1 << 20, 1 << 10, NX_CACHE_CLOCK);
    cr_assert_eq(put("k", "v", 0, 10, 0), 0);
    cr_assert_not_null(get("k", 9));
    cr_assert_null(get("k", 10));
    cr_assert_eq(L.expired, 1, "a lookup that meets a dead entry drops it");
    cr_assert_eq(L.entries, 0);
}

Test(l1, value_bound_is_max_entry_bytes_and_budget_bound_is_the_entry_cost) {
    init(1 << 20, 8, NX_CACHE_LRU);
    cr_assert_eq(put("k", "12345678", 0, 10, 0), 0, "exactly max_entry_bytes is kept");
    cr_assert_eq(put("j", "123456789", 0, 10, 0), -E2BIG);
    cr_assert_null(get("j", 1));
    cr_assert_eq(L.entries, 1);
    /* An oversized update still removes the older value of that key. */
    cr_assert_eq(put("k", "123456789", 0, 10, 0), -E2BIG);
    cr_assert_null(get("k", 1));
    cr_assert_eq(L.entries, 0);
    fini();
    init(COST("k", "12") - 1, 1 << 10, NX_CACHE_LRU);
    cr_assert_eq(put("k", "12", 0, 10, 0), -E2BIG, "an entry that cannot fit the budget");
    cr_assert_eq(put("k", "1", 0, 10, 0), 0);
}

Test(l1, bytes_count_key_value_and_overhead) {
    init(1 << 20, 1 << 10, NX_CACHE_LRU);
    put("alpha", "0123456789", 0, 10, 0);
    put("b", "", 0, 10, 0);
    cr_assert_eq(L.bytes, COST("alpha", "0123456789") + COST("b", ""));
    cr_assert_gt(COST("b", ""), sizeof(nx_l1_entry_t), "overhead is counted");
    cr_assert_eq(L.entries, 2);
    cr_assert_str_eq(get("b", 1), "", "an empty value is a value");
}

Test(l1, replacing_a_key_keeps_one_entry) {
    init(1 << 20, 1 << 10, NX_CACHE_LRU);
    put("k", "old", 0, 10, 0);
    put("k", "newer", 5, 10, 0);
    cr_assert_str_eq(get("k", 12), "newer", "the new TTL counts from the new put");
    cr_assert_eq(L.entries, 1);
    cr_assert_eq(L.bytes, COST("k", "newer"));
}

Test(l1, lru_evicts_the_least_recently_used) {
    init(3 * COST("a", "1"), 1 << 10, NX_CACHE_LRU);
    put("a", "1", 0, 1000, 0);
    put("b", "1", 0, 1000, 0);
    put("c", "1", 0, 1000, 0);
    cr_assert_not_null(get("c", 1));
    cr_assert_not_null(get("b", 1));
    cr_assert_not_null(get("a", 1)); /* recency now: c, b, a */
    put("d", "1", 2, 1000, 0);
    cr_assert_not(has("c", 3), "c was used longest ago");
    cr_assert(has("a", 3) && has("b", 3) && has("d", 3));
    cr_assert_eq(L.evictions, 1);
    cr_assert_eq(L.expired, 0);
    cr_assert_eq(L.bytes, 3 * COST("a", "1"));
}

Test(l1, clock_spares_referenced_entries) {
    init(3 * COST("a", "1"), 1 << 10, NX_CACHE_CLOCK);
    put("a", "1", 0, 1000, 0);
    put("b", "1", 0, 1000, 0);
    put("c", "1", 0, 1000, 0);
    cr_assert_not_null(get("a", 1));
    put("d", "1", 2, 1000, 0);
    cr_assert(has("a", 3), "a was referenced: its bit buys it another round");
    cr_assert_not(has("b", 3));
    put("e", "1", 4, 1000, 0);
    cr_assert_not(has("c", 5), "the hand goes on from where it stopped");
    cr_assert(has("a", 5) && has("d", 5) && has("e", 5));
    cr_assert_eq(L.evictions, 2);
}

Test(l1, clock_evicts_in_ring_order_when_everything_was_used) {
    /* The case that tells CLOCK from LRU: LRU would evict c, the least recently used. */
    init(3 * COST("a", "1"), 1 << 10, NX_CACHE_CLOCK);
    put("a", "1", 0, 1000, 0);
    put("b", "1", 0, 1000, 0);
    put("c", "1", 0, 1000, 0);
    get("c", 1);
    get("b", 1);
    get("a", 1);
    put("d", "1", 2, 1000, 0);
    cr_assert_not(has("a", 3), "every bit cleared in one sweep, then the first in the ring goes");
    cr_assert(has("b", 3) && has("c", 3) && has("d", 3));
}

Test(l1, a_dead_victim_counts_as_expired_not_evicted) {
    init(2 * COST("a", "1"), 1 << 10, NX_CACHE_LRU);
    put("a", "1", 0, 10, 5);
    put("b", "1", 0, 1000, 0);
    put("c", "1", 20, 1000, 0); /* a (oldest) is dead at 20: 10 + 5 <= 20 */
    cr_assert_eq(L.expired, 1);
    cr_assert_eq(L.evictions, 0);
    put("d", "1", 21, 1000, 0);
    cr_assert_eq(L.evictions, 1, "b was alive: a real eviction");
}

Test(l1, clock_takes_a_dead_entry_even_when_referenced) {
    init(2 * COST("a", "1"), 1 << 10, NX_CACHE_CLOCK);
    put("a", "1", 0, 10, 0);
    put("b", "1", 0, 1000, 0);
    get("a", 1);
    get("b", 1);
    put("c", "1", 50, 1000, 0);
    cr_assert(has("b", 51));
    cr_assert_eq(L.expired, 1);
    cr_assert_eq(L.evictions, 0);
}

Test(l1, colliding_hashes_stay_distinct) {
    init(1 << 20, 1 << 10, NX_CACHE_LRU);
    const char *keys[] = {"x1", "x2", "x3", "y1"}; /* all put under hash 42 */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(nx__l1_put(&L, keys[i], 2, 42, keys[i], 2, 0, 100, 100), 0);
    for (int i = 0; i < 4; i++) {
        nx_l1_entry_t *e = nx__l1_get(&L, keys[i], 2, 42, 1);
        cr_assert_not_null(e);
        cr_assert_eq(memcmp(nx__l1_value(e), keys[i], 2), 0);
    }
    cr_assert(nx__l1_remove(&L, "x2", 2, 42));
    cr_assert_not(nx__l1_remove(&L, "x2", 2, 42));
    cr_assert_null(nx__l1_get(&L, "x2", 2, 42, 1));
    cr_assert_not_null(nx__l1_get(&L, "x3", 2, 42, 1));
}

Test(l1, a_pinned_entry_outlives_its_removal_until_unpinned) {
    init(1 << 20, 1 << 10, NX_CACHE_LRU);
    put("k", "pinned value", 0, 100, 0);
    nx_l1_entry_t *e = nx__l1_get(&L, "k", 1, h("k"), 1);
    nx__l1_pin(e);
    put("k", "replacement", 1, 100, 0); /* removes e from the table */
    cr_assert_eq(L.entries, 1);
    cr_assert_eq(memcmp(nx__l1_value(e), "pinned value", 12), 0, "still readable (ASan)");
    nx__l1_unpin(e); /* frees it: ASan reports a leak otherwise */
    cr_assert_str_eq(get("k", 2), "replacement");
}

Test(l1, the_table_grows_and_every_key_stays_reachable) {
    init(1ull << 32, 1 << 10, NX_CACHE_CLOCK);
    char k[32];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof(k), "key-%d", i);
        cr_assert_eq(
            nx__l1_put(&L, k, (size_t)n, (uint64_t)i * 2654435761u, k, (size_t)n, 0, 100, 100), 0);
    }
    cr_assert_gt(L.table.mask + 1, 20000 / 2, "the bucket array grew with the entries");
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof(k), "key-%d", i);
        nx_l1_entry_t *e = nx__l1_get(&L, k, (size_t)n, (uint64_t)i * 2654435761u, 1);
        cr_assert_not_null(e, "%s", k);
        cr_assert_eq(memcmp(nx__l1_value(e), k, (size_t)n), 0);
    }
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof(k), "key-%d", i);
        cr_assert(nx__l1_remove(&L, k, (size_t)n, (uint64_t)i * 2654435761u));
    }
    cr_assert_eq(L.entries, 0);
    cr_assert_eq(L.bytes, 0);
}

/* Table, list and counters must agree, and the budget must hold. */
static void check_invariants(void) {
    uint64_t bytes = 0, n = 0;
    nx_list_t *p;
    nx_list_foreach(p, &L.order) {
        nx_l1_entry_t *e = nx_container_of(p, nx_l1_entry_t, link);
        bytes += nx__l1_cost(e->klen, e->vlen);
        n++;
        cr_assert_eq(nx__l1_peek(&L, e->data, e->klen, e->node.hash, 0), e, "in the table");
    }
    cr_assert_eq(n, L.entries);
    cr_assert_eq(n, L.table.count);
    cr_assert_eq(bytes, L.bytes);
    cr_assert_leq(L.bytes, L.cfg.max_bytes);
}

static void random_workload(nx_cache_eviction_t ev) {
    init(40 * COST("key-00", "0123456789"), 64, ev);
    unsigned seed = 7;
    char k[16], v[80];
    uint64_t now = 0;
    for (int i = 0; i < 20000; i++) {
        now += rand_r(&seed) % 3;
        int kn = snprintf(k, sizeof(k), "key-%02u", rand_r(&seed) % 100u);
        unsigned op = rand_r(&seed) % 10u;
        if (op < 5) {
            size_t vn = rand_r(&seed) % 70u; /* sometimes over max_entry_bytes */
            memset(v, 'a' + (int)(i % 26), vn);
            nx__l1_put(&L, k, (size_t)kn, h(k), v, vn, now, now + rand_r(&seed) % 50u,
                       now + 50 + rand_r(&seed) % 50u);
        } else if (op < 9) {
            nx_l1_entry_t *e = nx__l1_get(&L, k, (size_t)kn, h(k), now);
            if (e != NULL) cr_assert_lt(now, e->fresh_until_ms, "a hit is fresh");
        } else {
            nx__l1_remove(&L, k, (size_t)kn, h(k));
        }
        if (i % 97 == 0) check_invariants();
    }
    check_invariants();
    cr_assert_gt(L.evictions, 0);
    cr_assert_gt(L.expired, 0);
    cr_assert_gt(L.hits, 0);
}

Test(l1, random_workload_keeps_the_books_lru) {
    random_workload(NX_CACHE_LRU);
}

Test(l1, random_workload_keeps_the_books_clock) {
    random_workload(NX_CACHE_CLOCK);
}
