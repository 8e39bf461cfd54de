/* The format of a value in Redis (L2): a header, then the value raw or compressed with lz4 or
 * zstd. The header carries the fresh-until wall-clock time, so any replica reading the value
 * can judge it fresh or stale; decoding checks every field, the payload and a checksum, since
 * Redis holds bytes anyone could have written (an older version, another program, a
 * truncation).
 *
 *   offset 0   u8   format: 'R' raw, 'L' lz4, 'Z' zstd
 *   offset 1   u32  length of the original value, little-endian
 *   offset 5   u64  fresh until, wall-clock ms since the Unix epoch, little-endian
 *   offset 13  u32  low 32 bits of XXH3-64 of the original value seeded with fresh-until, LE
 *   offset 17  the payload */
#ifndef NX_CACHE_COMPRESS_H
#define NX_CACHE_COMPRESS_H

#include "cache.h"

#include <stddef.h>
#include <stdint.h>

#define NX_L2_HEADER 17u

enum {
    NX_L2_RAW = 'R',
    NX_L2_LZ4 = 'L',
    NX_L2_ZSTD = 'Z',
};

/* A decoded value: <p>/<len> point into the input (raw) or into <owned> (decompressed). */
typedef struct nx_l2_value {
    const char *p;
    size_t len;
    uint64_t fresh_until_ms; /* wall clock */
    char *owned;
} nx_l2_value_t;

/** Encodes <value>/<len>: compressed with <algo> when <len> >= <compress_min> and that makes it
 *  smaller, else raw. The result is a new buffer in <*out> (the caller frees it). Returns 0,
 *  -E2BIG (over 4 GiB, or over what lz4 accepts) or -ENOMEM. */
int nx__l2_value_encode(nx_cache_compression_t algo, size_t compress_min, const char *value,
                        size_t len, uint64_t fresh_until_ms, char **out, size_t *out_len);
/** Decodes <in>/<n> into <out> (release it with nx__l2_value_release); values longer than
 *  <max_len> are refused. Returns 0, NX_EPROTO (not a value we wrote: bad header, truncated,
 *  trailing bytes, corrupt payload, checksum mismatch, too long) or -ENOMEM. */
int nx__l2_value_decode(const char *in, size_t n, size_t max_len, nx_l2_value_t *out);
/** Frees what <v> owns. */
void nx__l2_value_release(nx_l2_value_t *v);

#endif
