/* The L2 value format (cache/compress.c): round trips raw, lz4 and zstd, the choice of raw when
 * compressing would not help, and a decoder that refuses every truncation, every flipped bit,
 * trailing bytes, oversized values and random garbage without crashing or leaking. */
#include <criterion/criterion.h>

#include "cache/compress.h"
#include "nexus/errors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define FRESH 1700000000123ull

/* A compressible value of <n> bytes: JSON-ish repetition, as tool results are. */
static char *json_like(size_t n) {
    char *v = malloc(n + 1);
    const char *pat = "{\"name\":\"file-000.txt\",\"size\":12345,\"type\":\"text/plain\"},";
    for (size_t i = 0; i < n; i++)
        v[i] = pat[i % strlen(pat)];
    v[n] = '\0';
    return v;
}

static char *random_bytes(size_t n, unsigned *seed) {
    char *v = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        v[i] = (char)rand_r(seed);
    return v;
}

static void round_trip(nx_cache_compression_t algo, const char *v, size_t n, size_t min,
                       char want_format) {
    char *enc;
    size_t elen;
    cr_assert_eq(nx__l2_value_encode(algo, min, v, n, FRESH, &enc, &elen), 0);
    cr_assert_geq(elen, NX_L2_HEADER);
    cr_assert_eq(enc[0], want_format, "format %c, want %c", enc[0], want_format);
    if (want_format != NX_L2_RAW) cr_assert_lt(elen, n, "compressed is smaller");
    nx_l2_value_t d;
    cr_assert_eq(nx__l2_value_decode(enc, elen, n, &d), 0);
    cr_assert_eq(d.len, n);
    cr_assert_eq(d.fresh_until_ms, FRESH);
    cr_assert(n == 0 || memcmp(d.p, v, n) == 0);
    if (want_format == NX_L2_RAW) cr_assert_null(d.owned, "raw values are not copied");
    nx__l2_value_release(&d);
    free(enc);
}

Test(compress, raw_lz4_and_zstd_round_trip) {
    char *v = json_like(10000);
    round_trip(NX_CACHE_COMPRESS_LZ4, v, 10000, 1024, NX_L2_LZ4);
    round_trip(NX_CACHE_COMPRESS_ZSTD, v, 10000, 1024, NX_L2_ZSTD);
    round_trip(NX_CACHE_COMPRESS_NONE, v, 10000, 1024, NX_L2_RAW);
    round_trip(NX_CACHE_COMPRESS_LZ4, v, 1023, 1024, NX_L2_RAW);   /* under compress_min */
    round_trip(NX_CACHE_COMPRESS_ZSTD, v, 1024, 1024, NX_L2_ZSTD); /* at compress_min */
    round_trip(NX_CACHE_COMPRESS_ZSTD, "", 0, 0, NX_L2_RAW);
    round_trip(NX_CACHE_COMPRESS_LZ4, "x", 1, 0, NX_L2_RAW);
    free(v);
}

Test(compress, incompressible_values_are_stored_raw) {
    unsigned seed = 99;
    char *v = random_bytes(4096, &seed);
    round_trip(NX_CACHE_COMPRESS_LZ4, v, 4096, 16, NX_L2_RAW);
    round_trip(NX_CACHE_COMPRESS_ZSTD, v, 4096, 16, NX_L2_RAW);
    free(v);
}

Test(compress, header_layout_is_little_endian) {
    char *enc;
    size_t elen;
    cr_assert_eq(nx__l2_value_encode(NX_CACHE_COMPRESS_NONE, 0, "abc", 3, 0x0102030405060708ull,
                                     &enc, &elen),
                 0);
    cr_assert_eq(elen, NX_L2_HEADER + 3);
    const unsigned char want[] = {'R', 3, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1};
    cr_assert_eq(memcmp(enc, want, sizeof(want)), 0);
    cr_assert_eq(memcmp(enc + NX_L2_HEADER, "abc", 3), 0);
    free(enc);
}

/* Every prefix of a valid value is refused, and no single flipped bit yields a different value:
 * it is refused, or (a bit zstd's frame header leaves unused) decodes to the original. */
static void refuses_damage(nx_cache_compression_t algo, size_t n) {
    char *v = json_like(n);
    char *enc;
    size_t elen;
    cr_assert_eq(nx__l2_value_encode(algo, 64, v, n, FRESH, &enc, &elen), 0);
    nx_l2_value_t d;
    for (size_t cut = 0; cut < elen; cut++)
        cr_assert_eq(nx__l2_value_decode(enc, cut, n, &d), NX_EPROTO, "cut at %zu", cut);
    int refused = 0;
    for (size_t i = 0; i < elen; i++) {
        for (int bit = 0; bit < 8; bit++) {
            enc[i] ^= (char)(1 << bit);
            int rc = nx__l2_value_decode(enc, elen, 1 << 20, &d);
            enc[i] ^= (char)(1 << bit);
            if (rc == 0) {
                bool same = d.len == n && memcmp(d.p, v, n) == 0 && d.fresh_until_ms == FRESH;
                nx__l2_value_release(&d);
                cr_assert(same, "format %c: byte %zu bit %d flipped gave another value", enc[0], i,
                          bit);
            } else {
                cr_assert_eq(rc, NX_EPROTO);
                refused++;
            }
        }
    }
    cr_assert_geq(refused, (int)(elen * 8) - 8, "all but a few unused bits are refused");
    /* Trailing bytes. */
    char *longer = malloc(elen + 1);
    memcpy(longer, enc, elen);
    longer[elen] = 0;
    cr_assert_eq(nx__l2_value_decode(longer, elen + 1, 1 << 20, &d), NX_EPROTO);
    free(longer);
    /* Longer than the reader accepts. */
    cr_assert_eq(nx__l2_value_decode(enc, elen, n - 1, &d), NX_EPROTO);
    cr_assert_eq(nx__l2_value_decode(enc, elen, n, &d), 0);
    nx__l2_value_release(&d);
    free(enc);
    free(v);
}

Test(compress, raw_damage_is_refused) {
    refuses_damage(NX_CACHE_COMPRESS_NONE, 300);
}

Test(compress, lz4_damage_is_refused) {
    refuses_damage(NX_CACHE_COMPRESS_LZ4, 300);
}

Test(compress, zstd_damage_is_refused) {
    refuses_damage(NX_CACHE_COMPRESS_ZSTD, 300);
}

Test(compress, a_second_zstd_frame_or_a_skippable_frame_is_refused) {
    char *v = json_like(2000);
    char *enc;
    size_t elen;
    cr_assert_eq(nx__l2_value_encode(NX_CACHE_COMPRESS_ZSTD, 64, v, 2000, FRESH, &enc, &elen), 0);
    size_t flen = elen - NX_L2_HEADER;
    char *two = malloc(elen + flen);
    memcpy(two, enc, elen);
    memcpy(two + elen, enc + NX_L2_HEADER, flen);
    nx_l2_value_t d;
    cr_assert_eq(nx__l2_value_decode(two, elen + flen, 1 << 20, &d), NX_EPROTO);
    /* A skippable frame (magic 0x184D2A50, 4 bytes of length, then that much) after ours. */
    const char skip[] = {0x50, 0x2A, 0x4D, 0x18, 1, 0, 0, 0, 'x'};
    memcpy(two + elen, skip, sizeof(skip));
    cr_assert_eq(nx__l2_value_decode(two, elen + sizeof(skip), 1 << 20, &d), NX_EPROTO);
    free(two);
    free(enc);
    free(v);
}

/* Garbage of every kind: random bytes, and random bytes behind a plausible header (a known
 * format byte and a length that fits). Never a crash, a leak or an accepted value. */
Test(compress, garbage_never_decodes) {
    unsigned seed = 4242;
    const char formats[] = {NX_L2_RAW, NX_L2_LZ4, NX_L2_ZSTD, 0, 'r'};
    for (int i = 0; i < 50000; i++) {
        size_t n = rand_r(&seed) % 200u;
        char *g = random_bytes(n, &seed);
        if (n >= NX_L2_HEADER && (i & 1)) {
            g[0] = formats[rand_r(&seed) % 5u];
            uint32_t len = rand_r(&seed) % 400u;
            memcpy(g + 1, &len, 4); /* little-endian hosts only: fine for garbage */
        }
        if (n >= NX_L2_HEADER + 4 && i % 4 == 1) {
            /* A real zstd frame magic, so the decoder gets into zstd's frame parsing. */
            const char magic[] = {0x28, (char)0xB5, 0x2F, (char)0xFD};
            memcpy(g + NX_L2_HEADER, magic, 4);
            g[0] = NX_L2_ZSTD;
        }
        nx_l2_value_t d;
        int rc = nx__l2_value_decode(g, n, 1 << 16, &d);
        cr_assert_eq(rc, NX_EPROTO, "iteration %d accepted garbage", i);
        free(g);
    }
    nx_l2_value_t d;
    cr_assert_eq(nx__l2_value_decode(NULL, 0, 10, &d), NX_EPROTO);
}
