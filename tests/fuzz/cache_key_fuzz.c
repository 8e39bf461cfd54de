/* libFuzzer target for cache keys (cache/key.c): any JSON document jansson accepts has a
 * canonical form that is a fixed point (printing the parsed canonical text gives it back), the
 * key depends only on that form, and the key text is the target, '#' and 32 hex digits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t err;
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY, &err);
    if (v == NULL) return 0;
    char *canon = nx_cache_canonical_json(v);
    CHECK(canon != NULL);
    json_t *back = json_loads(canon, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    CHECK(back != NULL);
    char *again = nx_cache_canonical_json(back);
    CHECK(again != NULL && strcmp(canon, again) == 0);
    nx_cache_key_t a, b;
    CHECK(nx_cache_key_make("tool:fuzz", v, &a) == 0);
    CHECK(nx_cache_key_make("tool:fuzz", back, &b) == 0);
    CHECK(a.len == b.len && memcmp(a.text, b.text, a.len) == 0 && a.hash == b.hash);
    CHECK(a.len == strlen("tool:fuzz") + 33 && a.text[9] == '#' && a.text[a.len] == '\0');
    for (size_t i = 10; i < a.len; i++)
        CHECK((a.text[i] >= '0' && a.text[i] <= '9') || (a.text[i] >= 'a' && a.text[i] <= 'f'));
    free(again);
    free(canon);
    json_decref(back);
    json_decref(v);
    return 0;
}
