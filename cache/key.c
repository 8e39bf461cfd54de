/* Cache keys: the canonical JSON of a call's arguments, hashed with XXH3-128 and appended to the
 * target. Canonical means jansson's own compact printing with object keys sorted bytewise at
 * every depth (JSON_SORT_KEYS compares keys with memcmp), so the numbers and the string escapes
 * are exactly jansson's, and a client's key order never splits one entry into two. */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no allocation per key */
#include "cache.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#define CANONICAL_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
#define TARGET_MAX 256

char *nx_cache_canonical_json(const json_t *v) {
    json_t *null = NULL;
    if (v == NULL) v = null = json_null();
    char *s = json_dumps(v, CANONICAL_FLAGS);
    json_decref(null);
    return s;
}

/* Streams the canonical JSON into the hash as jansson prints it, token by token. */
static int hash_chunk(const char *buf, size_t size, void *data) {
    return XXH3_128bits_update(data, buf, size) == XXH_OK ? 0 : -1;
}

int nx_cache_key_make(const char *target, const json_t *args, nx_cache_key_t *out) {
    if (target == NULL || out == NULL) return -EINVAL;
    size_t tlen = strlen(target);
    if (tlen > TARGET_MAX) return -EINVAL;
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_128bits_reset(&st);
    json_t *null = NULL;
    if (args == NULL) args = null = json_null();
    /* Fails only for a value jansson cannot print (a cycle) or no memory to sort keys. */
    int rc = json_dump_callback(args, hash_chunk, &st, CANONICAL_FLAGS);
    json_decref(null);
    if (rc != 0) return -EINVAL;
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    memcpy(out->text, target, tlen);
    int n = snprintf(out->text + tlen, sizeof(out->text) - tlen, "#%016llx%016llx",
                     (unsigned long long)h.high64, (unsigned long long)h.low64);
    out->len = tlen + (size_t)n;
    /* The bucket hash covers the target too: many tools called with {} must not share one
     * chain. */
    out->hash = XXH3_64bits(out->text, out->len);
    return 0;
}
