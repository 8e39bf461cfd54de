/* A borrowed byte slice (pointer + length). Parsers hand these out pointing into the
 * caller's buffer, so they are valid only as long as that buffer is. */
#ifndef NEXUS_STR_H
#define NEXUS_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

typedef struct nx_str {
    const char *p;
    size_t n;
} nx_str_t;

#define NX_STR(lit) ((nx_str_t){(lit), sizeof(lit) - 1})

static inline nx_str_t nx_str_from(const char *s) {
    return (nx_str_t){s, s ? strlen(s) : 0};
}
static inline bool nx_str_eq(nx_str_t a, nx_str_t b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}
static inline bool nx_str_eq_lit_nocase(nx_str_t a, const char *lit) {
    size_t n = strlen(lit);
    return a.n == n && strncasecmp(a.p, lit, n) == 0;
}

#endif
