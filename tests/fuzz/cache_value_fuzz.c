/* libFuzzer target for the L2 value decoder (cache/compress.c): arbitrary bytes from Redis must
 * decode to a bounded value or be refused, never crash or leak; a value that decodes survives a
 * re-encoding unchanged; and the input taken as a value round-trips through raw, lz4 and zstd. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "nexus/errors.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

#define MAX_LEN (1u << 20)

static void round_trip(nx_cache_compression_t algo, const char *v, size_t n, uint64_t fresh) {
    char *enc;
    size_t elen;
    CHECK(nx__l2_value_encode(algo, 0, v, n, fresh, &enc, &elen) == 0);
    nx_l2_value_t d;
    CHECK(nx__l2_value_decode(enc, elen, n, &d) == 0);
    CHECK(d.len == n && d.fresh_until_ms == fresh);
    CHECK(n == 0 || memcmp(d.p, v, n) == 0);
    nx__l2_value_release(&d);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *in = (const char *)data;
    nx_l2_value_t v;
    int rc = nx__l2_value_decode(in, size, MAX_LEN, &v);
    CHECK(rc == 0 || rc == NX_EPROTO || rc == -ENOMEM);
    if (rc == 0) {
        CHECK(v.len <= MAX_LEN);
        round_trip(NX_CACHE_COMPRESS_NONE, v.p, v.len, v.fresh_until_ms);
        nx__l2_value_release(&v);
    }
    uint64_t fresh = size >= 8 ? (uint64_t)data[0] << 40 | data[size - 1] : 42;
    round_trip(NX_CACHE_COMPRESS_NONE, in, size, fresh);
    round_trip(NX_CACHE_COMPRESS_LZ4, in, size, fresh);
    round_trip(NX_CACHE_COMPRESS_ZSTD, in, size, fresh);
    return 0;
}
