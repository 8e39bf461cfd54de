/* nx_buf_t: growth, formatting, consumption and JSON escaping. */
#include <criterion/criterion.h>

#include "buf.h"

#include <string.h>

Test(buf, appends_grow_and_keep_content) {
    nx_buf_t b;
    nx_buf_init(&b);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(nx_buf_append(&b, "abcdefgh", 8), 0);
    cr_assert_eq(b.len, 8000);
    cr_assert(b.cap >= 8000);
    cr_assert_eq(memcmp(b.data + 7992, "abcdefgh", 8), 0);
    nx_buf_dispose(&b);
    cr_assert_null(b.data);
    nx_buf_dispose(NULL);
}

Test(buf, formats_long_and_short_strings) {
    nx_buf_t b;
    nx_buf_init(&b);
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    nx_buf_appendf(&b, "<%s>", "hi");
    nx_buf_appendf(&b, "%s", big); /* longer than the 256-byte fast path */
    cr_assert_eq(b.len, 4 + 999);
    cr_assert_eq(memcmp(b.data, "<hi>xxx", 7), 0);
    nx_buf_dispose(&b);
}

Test(buf, u64_and_consume) {
    nx_buf_t b;
    nx_buf_init(&b);
    nx_buf_append_u64(&b, 0);
    nx_buf_append(&b, " ", 1);
    nx_buf_append_u64(&b, 18446744073709551615ull);
    cr_assert_eq(b.len, 22);
    cr_assert_eq(memcmp(b.data, "0 18446744073709551615", 22), 0);
    nx_buf_consume(&b, 2);
    cr_assert_eq(memcmp(b.data, "18446744073709551615", 20), 0);
    nx_buf_consume(&b, 100);
    cr_assert_eq(b.len, 0);
    nx_buf_dispose(&b);
}

Test(buf, json_escaping_follows_rfc8259) {
    nx_buf_t b;
    nx_buf_init(&b);
    nx_buf_append_json_escaped(&b, "a\"b\\c\n\x01 é");
    nx_buf_append(&b, "", 1);
    cr_assert_str_eq(b.data, "a\\\"b\\\\c\\u000a\\u0001 é");
    nx_buf_dispose(&b);
}
