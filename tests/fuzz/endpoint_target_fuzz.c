/* libFuzzer target for the legacy HTTP+SSE endpoint resolution (engine/backend_http.c): any
 * event data, against any stream path, gives a path starting with '/' made only of bytes of the
 * data and the base, and never reads past either. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend_link.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) __builtin_trap();                                                             \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* The first byte splits the input into the stream's path and the event's data. */
    size_t cut = size > 0 ? data[0] % (size) : 0;
    char *base = malloc(cut + 2);
    if (base == NULL) return 0;
    base[0] = '/';
    if (cut > 1) memcpy(base + 1, data + 1, cut - 1);
    base[cut > 1 ? cut : 1] = '\0';
    /* An exact-size copy, so reading past the data is caught. */
    size_t n = size - (cut > 0 ? cut : (size > 0));
    uint8_t *event = malloc(n ? n : 1);
    if (event == NULL) {
        free(base);
        return 0;
    }
    memcpy(event, data + size - n, n);
    char *out = nx_backend_endpoint_target(base, (const char *)event, n);
    if (out != NULL) {
        CHECK(out[0] == '/');
        CHECK(strlen(out) <= strlen(base) + n + 1);
    }
    free(out);
    free(event);
    free(base);
    return 0;
}
