/* Growable byte buffer used for send queues, partial input and response building. The owner
 * embeds an nx_buf_t; nx_buf_dispose frees its storage. Appends grow geometrically. */
#ifndef NX_NET_BUF_H
#define NX_NET_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nx_buf {
    char *data;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
} nx_buf_t;

/** Initializes <b> empty, with no storage. */
static inline void nx_buf_init(nx_buf_t *b) {
    b->data = NULL;
    b->len = b->cap = 0;
}
/** Frees <b>'s storage; <b> may be reused after nx_buf_init. NULL-safe. */
void nx_buf_dispose(nx_buf_t *b);
/** Ensures room for <extra> more bytes; returns 0 or -ENOMEM. */
int nx_buf_reserve(nx_buf_t *b, size_t extra);
/** Appends <n> bytes from <p>; returns 0 or -ENOMEM. */
int nx_buf_append(nx_buf_t *b, const void *p, size_t n);
/** Appends a NUL-terminated string (without the NUL). */
int nx_buf_append_str(nx_buf_t *b, const char *s);
/** Appends printf-formatted text; returns 0 or -ENOMEM. */
int nx_buf_appendf(nx_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int nx_buf_vappendf(nx_buf_t *b, const char *fmt, va_list ap);
/* Room for the decimal form of any uint64_t. */
#define NX_U64_DIGITS 20
/** Writes the decimal form of <v> to <out> (no NUL) and returns its length (1..20). */
size_t nx_u64_format(char out[NX_U64_DIGITS], uint64_t v);
/** Appends the decimal form of <v>. */
int nx_buf_append_u64(nx_buf_t *b, uint64_t v);
/** Appends <s> escaped as the inside of a JSON string (RFC 8259), without the quotes. */
int nx_buf_append_json_escaped(nx_buf_t *b, const char *s);
/** Drops the first <n> bytes, moving the rest to the front. */
void nx_buf_consume(nx_buf_t *b, size_t n);
/** Empties <b>, keeping its storage. */
static inline void nx_buf_clear(nx_buf_t *b) {
    b->len = 0;
}

#endif
