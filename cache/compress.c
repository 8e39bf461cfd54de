/* Encoding and decoding of L2 (Redis) values: the header of compress.h, lz4 (fast default
 * level) or zstd (level 1) for values worth compressing, and a decoder that trusts nothing it
 * reads. L1 never sees these bytes; it stores values raw. */
#include "compress.h"

#include "nexus/errors.h"

#include <errno.h>
#include <limits.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

static void put_u32(char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (char)(v >> (8 * i));
}
static void put_u64(char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (char)(v >> (8 * i));
}
static uint32_t get_u32(const char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)(unsigned char)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)(unsigned char)p[i] << (8 * i);
    return v;
}

/* Seeded with the fresh-until time so that a damaged timestamp is caught too (the format and
 * length are checked by decoding itself). */
static uint32_t checksum(const char *p, size_t n, uint64_t fresh_until_ms) {
    return (uint32_t)XXH3_64bits_withSeed(p, n, fresh_until_ms);
}

/* Compresses into <dst> (room for <cap>); the compressed size, or 0 when <algo> failed or did
 * not fit, in which case the caller stores the value raw. */
static size_t compress_into(nx_cache_compression_t algo, const char *src, size_t len, char *dst,
                            size_t cap) {
    if (algo == NX_CACHE_COMPRESS_LZ4) {
        int n = LZ4_compress_default(src, dst, (int)len, cap > INT_MAX ? INT_MAX : (int)cap);
        return n > 0 ? (size_t)n : 0;
    }
    size_t n = ZSTD_compress(dst, cap, src, len, 1);
    return ZSTD_isError(n) ? 0 : n;
}

/* Worst-case compressed size of <len> bytes, or 0 when <algo> cannot take them. */
static size_t compress_bound(nx_cache_compression_t algo, size_t len) {
    if (algo == NX_CACHE_COMPRESS_LZ4)
        return len <= LZ4_MAX_INPUT_SIZE ? (size_t)LZ4_compressBound((int)len) : 0;
    if (algo == NX_CACHE_COMPRESS_ZSTD) return ZSTD_compressBound(len);
    return 0;
}

int nx__l2_value_encode(nx_cache_compression_t algo, size_t compress_min, const char *value,
                        size_t len, uint64_t fresh_until_ms, char **out, size_t *out_len) {
    if (len > UINT32_MAX) return -E2BIG;
    size_t bound = len > 0 && len >= compress_min ? compress_bound(algo, len) : 0;
    char *buf = malloc(NX_L2_HEADER + (bound > len ? bound : len) + 1);
    if (buf == NULL) return -ENOMEM;
    char format = NX_L2_RAW;
    size_t payload = 0;
    if (bound > 0) {
        payload = compress_into(algo, value, len, buf + NX_L2_HEADER, bound);
        /* Compressed only when it saves bytes: the reader pays a decompression for it. */
        if (payload > 0 && payload < len)
            format = algo == NX_CACHE_COMPRESS_LZ4 ? NX_L2_LZ4 : NX_L2_ZSTD;
    }
    if (format == NX_L2_RAW) {
        payload = len;
        if (len > 0) memcpy(buf + NX_L2_HEADER, value, len);
    }
    buf[0] = format;
    put_u32(buf + 1, (uint32_t)len);
    put_u64(buf + 5, fresh_until_ms);
    put_u32(buf + 13, checksum(value, len, fresh_until_ms));
    *out = buf;
    *out_len = NX_L2_HEADER + payload;
    return 0;
}

int nx__l2_value_decode(const char *in, size_t n, size_t max_len, nx_l2_value_t *out) {
    memset(out, 0, sizeof(*out));
    if (in == NULL || n < NX_L2_HEADER) return NX_EPROTO;
    size_t len = get_u32(in + 1);
    const char *src = in + NX_L2_HEADER;
    size_t srclen = n - NX_L2_HEADER;
    if (len > max_len) return NX_EPROTO;
    switch (in[0]) {
    case NX_L2_RAW:
        if (srclen != len) return NX_EPROTO;
        out->p = src;
        break;
    case NX_L2_LZ4:
    case NX_L2_ZSTD: {
        /* The encoder compresses only non-empty values and only when that saves bytes. */
        if (len == 0 || srclen >= len) return NX_EPROTO;
        if (in[0] == NX_L2_LZ4 && len > LZ4_MAX_INPUT_SIZE) return NX_EPROTO;
        char *dst = malloc(len);
        if (dst == NULL) return -ENOMEM;
        bool good;
        if (in[0] == NX_L2_LZ4) {
            good = LZ4_decompress_safe(src, dst, (int)srclen, (int)len) == (int)len;
        } else {
            /* Exactly one frame that declares our length: no trailing bytes, no skippable
             * frames, no frame that leaves its size unknown. */
            good = ZSTD_getFrameContentSize(src, srclen) == len &&
                   ZSTD_findFrameCompressedSize(src, srclen) == srclen &&
                   ZSTD_decompress(dst, len, src, srclen) == len;
        }
        if (!good) {
            free(dst);
            return NX_EPROTO;
        }
        out->owned = dst;
        out->p = dst;
        break;
    }
    default:
        return NX_EPROTO;
    }
    out->len = len;
    out->fresh_until_ms = get_u64(in + 5);
    if (checksum(out->p, len, out->fresh_until_ms) != get_u32(in + 13)) {
        nx__l2_value_release(out);
        return NX_EPROTO;
    }
    return 0;
}

void nx__l2_value_release(nx_l2_value_t *v) {
    free(v->owned);
    memset(v, 0, sizeof(*v));
}
