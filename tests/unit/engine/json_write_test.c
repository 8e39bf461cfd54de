/* engine/json_write.c: byte for byte what jansson's json_dumps gives in compact mode, for the
 * edge cases by hand and for thousands of random documents. */
#include <criterion/criterion.h>

#include "json_write.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Compares the writer with jansson at <precision> and returns nothing: fails on a difference. */
static void same_as_jansson(const json_t *v, int precision) {
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision);
    char *want = json_dumps(v, flags);
    size_t len = 0;
    char *got = nx_json_write(v, precision, &len);
    cr_assert_not_null(want);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want);
    cr_assert_eq(len, strlen(want));
    free(want);
    free(got);
}

Test(json_write, scalars_and_empty_containers) {
    json_t *vs[] = {json_null(),
                    json_true(),
                    json_false(),
                    json_integer(0),
                    json_integer(-1),
                    json_integer(INT64_MAX),
                    json_integer(INT64_MIN),
                    json_integer(1234567),
                    json_string(""),
                    json_object(),
                    json_array(),
                    json_string("plain")};
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        same_as_jansson(vs[i], 0);
        json_decref(vs[i]);
    }
}

Test(json_write, reals_as_jansson_prints_them) {
    double ds[] = {0.0,
                   -0.0,
                   0.1,
                   1.0 / 3,
                   5.0,
                   -2.5,
                   1e300,
                   1e-300,
                   1e-7,
                   1e21,
                   1e22,
                   123456789012345678.0,
                   2.5e-5,
                   1e100,
                   1.5e17,
                   4.9e-324,
                   1.7976931348623157e308,
                   100.0,
                   1e15,
                   1e16,
                   1e17};
    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
        json_t *r = json_real(ds[i]);
        same_as_jansson(r, 0);
        same_as_jansson(r, 10);
        same_as_jansson(r, 1);
        json_decref(r);
    }
}

Test(json_write, strings_escape_quotes_backslashes_and_controls) {
    char all[40];
    for (int i = 0; i < 32; i++)
        all[i] = (char)(i + 1 < 32 ? i + 1 : 'x');
    memcpy(all + 31, "\"\\/\x7f", 5);
    json_t *s = json_stringn(all, 35);
    same_as_jansson(s, 0);
    json_decref(s);
    json_t *nul = json_stringn("a\0b", 3);
    same_as_jansson(nul, 0);
    json_decref(nul);
    json_t *utf8 = json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8");
    same_as_jansson(utf8, 0);
    json_decref(utf8);
    json_t *o = json_object();
    json_object_set_new(o, "k\"ey\n", json_string("v\t"));
    json_object_setn_new(o, "n\0ul", 4, json_integer(1));
    json_object_set_new(o, "", json_null());
    same_as_jansson(o, 0);
    json_decref(o);
}

Test(json_write, members_in_insertion_order_and_deep_nesting) {
    json_t *o = json_object();
    const char *keys[] = {"zeta", "alpha", "mid", "beta", "0"};
    for (size_t i = 0; i < 5; i++)
        json_object_set_new(o, keys[i], json_integer((json_int_t)i));
    json_object_del(o, "mid");
    json_object_set_new(o, "mid", json_string("again"));
    same_as_jansson(o, 0);
    json_decref(o);

    json_t *root = json_array(), *at = root;
    for (int i = 0; i < 500; i++) {
        json_t *next = i % 2 ? json_array() : json_object();
        if (json_is_array(at))
            json_array_append_new(at, next);
        else
            json_object_set_new(at, "k", next);
        at = next;
    }
    same_as_jansson(root, 0);
    json_decref(root);
}

Test(json_write, refuses_null_and_nesting_beyond_the_limit) {
    cr_assert_null(nx_json_write(NULL, 0, NULL));
    json_t *root = json_array(), *at = root;
    for (int i = 0; i < NX_JSON_WRITE_MAX_DEPTH + 5; i++) {
        json_t *next = json_array();
        json_array_append_new(at, next);
        at = next;
    }
    cr_assert_null(nx_json_write(root, 0, NULL));
    json_decref(root);
}

/* ---- random documents ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static json_t *random_string(void) {
    static const char *pieces[] = {"a",
                                   "Z",
                                   "9",
                                   " ",
                                   "\"",
                                   "\\",
                                   "\n",
                                   "\x01",
                                   "\x1f",
                                   "/",
                                   "\xc3\xa9",
                                   "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80",
                                   "\t"};
    char buf[64];
    size_t len = 0, n = next_rand() % 12;
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[next_rand() % (sizeof(pieces) / sizeof(pieces[0]))];
        size_t pl = strlen(p);
        memcpy(buf + len, p, pl);
        len += pl;
    }
    return json_stringn(buf, len);
}

static json_t *random_value(int depth) {
    unsigned kind = (unsigned)(next_rand() % (depth > 5 ? 6 : 8));
    switch (kind) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(next_rand() & 1);
    case 2:
        return json_integer((json_int_t)next_rand() >> (next_rand() % 64));
    case 3: {
        uint64_t bits = next_rand();
        double d;
        memcpy(&d, &bits, sizeof(d));
        if (d != d || d - d != 0) d = (double)(int64_t)bits / 1e9; /* no NaN or infinity */
        return json_real(d);
    }
    case 4:
    case 5:
        return random_string();
    case 6: {
        json_t *a = json_array();
        for (size_t i = 0, n = next_rand() % 5; i < n; i++)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t i = 0, n = next_rand() % 5; i < n; i++) {
            json_t *k = random_string();
            json_object_setn_new(o, json_string_value(k), json_string_length(k),
                                 random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

Test(json_write, random_documents_match_jansson) {
    for (int i = 0; i < 5000; i++) {
        json_t *v = random_value(0);
        cr_assert_not_null(v);
        same_as_jansson(v, 0);
        same_as_jansson(v, 10);
        json_decref(v);
    }
}
