/* Cache keys (cache/key.c): the canonical JSON that makes argument order irrelevant at every
 * depth while every difference in value still splits keys, the key's text format, and the
 * XXH3-128 digest it carries. */
#include <criterion/criterion.h>

#include "cache/cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static json_t *J(const char *text) {
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    cr_assert_not_null(v, "bad test JSON %s: %s", text, err.text);
    return v;
}

static nx_cache_key_t key_of(const char *target, const char *args) {
    json_t *v = args != NULL ? J(args) : NULL;
    nx_cache_key_t k;
    cr_assert_eq(nx_cache_key_make(target, v, &k), 0);
    json_decref(v);
    return k;
}

static bool same_key(const nx_cache_key_t *a, const nx_cache_key_t *b) {
    return a->len == b->len && memcmp(a->text, b->text, a->len) == 0 && a->hash == b->hash;
}

static void check_canonical(const char *in, const char *want) {
    json_t *v = J(in);
    char *s = nx_cache_canonical_json(v);
    cr_assert_str_eq(s, want, "canonical of %s", in);
    free(s);
    json_decref(v);
}

Test(key, object_key_order_does_not_matter_at_any_depth) {
    nx_cache_key_t a = key_of("tool:t", "{\"a\":1,\"b\":{\"x\":1,\"y\":2}}");
    nx_cache_key_t b = key_of("tool:t", "{\"b\":{\"y\":2,\"x\":1},\"a\":1}");
    nx_cache_key_t c = key_of("tool:t", "{ \"b\" : { \"y\" : 2 , \"x\" : 1 } ,\n \"a\" : 1 }");
    cr_assert(same_key(&a, &b), "%s vs %s", a.text, b.text);
    cr_assert(same_key(&a, &c), "whitespace must not matter: %s vs %s", a.text, c.text);
    /* Objects inside arrays are sorted too. */
    nx_cache_key_t d = key_of("tool:t", "[{\"q\":[{\"z\":1,\"a\":2}],\"p\":0}]");
    nx_cache_key_t e = key_of("tool:t", "[{\"p\":0,\"q\":[{\"a\":2,\"z\":1}]}]");
    cr_assert(same_key(&d, &e));
}

Test(key, different_values_make_different_keys) {
    const char *args[] = {"{\"a\":1,\"b\":{\"x\":1,\"y\":2}}",
                          "{\"a\":1,\"b\":{\"x\":1,\"y\":3}}",
                          "{\"a\":1,\"b\":{\"x\":1}}",
                          "{\"a\":\"1\",\"b\":{\"x\":1,\"y\":2}}",
                          "{\"a\":1.0,\"b\":{\"x\":1,\"y\":2}}",
                          "{\"A\":1,\"b\":{\"x\":1,\"y\":2}}",
                          "[1,2]",
                          "[2,1]",
                          "{}",
                          "[]",
                          "null",
                          "\"\"",
                          "0",
                          "false"};
    size_t n = sizeof(args) / sizeof(args[0]);
    nx_cache_key_t k[sizeof(args) / sizeof(args[0])];
    for (size_t i = 0; i < n; i++)
        k[i] = key_of("tool:t", args[i]);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            cr_assert_not(same_key(&k[i], &k[j]), "%s and %s share key %s", args[i], args[j],
                          k[i].text);
}

Test(key, different_targets_make_different_keys_and_buckets) {
    nx_cache_key_t a = key_of("tool:files__read", "{}");
    nx_cache_key_t b = key_of("tool:files__write", "{}");
    cr_assert_str_neq(a.text, b.text);
    cr_assert_neq(a.hash, b.hash, "tools called with {} must not share a bucket");
    /* Same arguments: the digest part is the same, only the target differs. */
    cr_assert_str_eq(strchr(a.text, '#'), strchr(b.text, '#'));
}

Test(key, text_is_target_hash_and_32_hex_of_xxh3_128_of_the_canonical_json) {
    const char *args = "{\"path\":\"/tmp/x\",\"opts\":{\"b\":true,\"a\":[1,2.5,null]}}";
    nx_cache_key_t k = key_of("step:digest.fetch", args);
    json_t *v = J(args);
    char *canon = nx_cache_canonical_json(v);
    cr_assert_str_eq(canon, "{\"opts\":{\"a\":[1,2.5,null],\"b\":true},\"path\":\"/tmp/x\"}");
    XXH128_hash_t h = XXH3_128bits(canon, strlen(canon));
    char want[400];
    snprintf(want, sizeof(want), "step:digest.fetch#%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
    cr_assert_str_eq(k.text, want);
    cr_assert_eq(k.len, strlen(want));
    cr_assert_eq(k.hash, XXH3_64bits(k.text, k.len));
    free(canon);
    json_decref(v);
}

Test(key, null_args_are_json_null) {
    nx_cache_key_t a = key_of("tool:t", NULL);
    nx_cache_key_t b = key_of("tool:t", "null");
    cr_assert(same_key(&a, &b));
    char *s = nx_cache_canonical_json(NULL);
    cr_assert_str_eq(s, "null");
    free(s);
}

Test(key, canonical_json_is_compact_bytewise_sorted_with_janssons_numbers_and_escapes) {
    /* Bytewise: "" < "B" < "a" < "ab" < "b" < "é" (0xc3 0xa9 sorts after ASCII). */
    check_canonical("{\"b\":1,\"\\u00e9\":3,\"B\":2,\"ab\":4,\"a\":5,\"\":6}",
                    "{\"\":6,\"B\":2,\"a\":5,\"ab\":4,\"b\":1,\"\xc3\xa9\":3}");
    check_canonical("[ 1 , 1.0 , 1e3 , -0.5 , 12345678901234 ]",
                    "[1,1.0,1000.0,-0.5,12345678901234]");
    check_canonical("\"tab\\tquote\\\"slash/ctl\\u0001\"", "\"tab\\tquote\\\"slash/ctl\\u0001\"");
    check_canonical("{\"k\":{}, \"j\":[], \"i\":[{}]}", "{\"i\":[{}],\"j\":[],\"k\":{}}");
}

Test(key, target_length_is_bounded) {
    char t[300];
    memset(t, 'x', sizeof(t));
    t[256] = '\0';
    nx_cache_key_t k;
    cr_assert_eq(nx_cache_key_make(t, NULL, &k), 0, "256 bytes fit");
    cr_assert_eq(k.len, 256 + 33);
    cr_assert_eq(strlen(k.text), k.len);
    t[256] = 'x';
    t[257] = '\0';
    cr_assert_eq(nx_cache_key_make(t, NULL, &k), -EINVAL);
    cr_assert_eq(nx_cache_key_make(NULL, NULL, &k), -EINVAL);
}

Test(key, a_cycle_is_refused_not_looped_on) {
    json_t *a = json_object(), *b = json_object();
    json_object_set(a, "b", b);
    json_object_set(b, "a", a);
    nx_cache_key_t k;
    cr_assert_eq(nx_cache_key_make("tool:t", a, &k), -EINVAL);
    cr_assert_null(nx_cache_canonical_json(a));
    json_object_del(b, "a"); /* break the cycle so the refcounts can free both */
    json_decref(b);
    json_decref(a);
}

/* Property: an object built from the same members inserted in any order has one key. */
Test(key, random_insertion_orders_agree) {
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        int n = 1 + (int)(rand_r(&seed) % 12);
        char names[12][16];
        int order[12];
        for (int i = 0; i < n; i++) {
            snprintf(names[i], sizeof(names[i]), "%c%d", 'a' + (int)(rand_r(&seed) % 26u), i);
            order[i] = i;
        }
        json_t *x = json_object(), *y = json_object();
        for (int i = 0; i < n; i++) {
            int j = i + (int)(rand_r(&seed) % (unsigned)(n - i));
            int tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        for (int i = 0; i < n; i++) {
            json_object_set_new(x, names[i], json_pack("{s:i,s:[i,s]}", "v", i, "w", i, "s"));
            json_object_set_new(y, names[order[i]],
                                json_pack("{s:[i,s],s:i}", "w", order[i], "s", "v", order[i]));
        }
        nx_cache_key_t kx, ky;
        cr_assert_eq(nx_cache_key_make("tool:p", x, &kx), 0);
        cr_assert_eq(nx_cache_key_make("tool:p", y, &ky), 0);
        cr_assert(same_key(&kx, &ky), "round %d", round);
        json_decref(x);
        json_decref(y);
    }
}
