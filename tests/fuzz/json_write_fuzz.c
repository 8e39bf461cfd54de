/* libFuzzer target for engine/json_write.c, differential: whatever jansson parses from the
 * input (any value, NULs in strings allowed) must be written byte for byte as json_dumps
 * writes it in compact mode, at full and at reduced real precision. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_write.h"

static void check(int ok) {
    if (!ok) abort();
}

static void compare(const json_t *v, int precision) {
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision));
    size_t len = 0;
    char *got = nx_json_write(v, precision, &len);
    /* jansson gives up where we do: beyond its nesting limit, or out of memory. */
    if (want == NULL || got == NULL) {
        free(want);
        free(got);
        return;
    }
    check(len == strlen(want));
    check(memcmp(got, want, len) == 0);
    free(want);
    free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (v == NULL) return 0;
    compare(v, 0);
    compare(v, 10);
    json_decref(v);
    return 0;
}
