/* Fast compact JSON text of jansson values for the hot paths (JSON-RPC messages, REST answers,
 * events). jansson's own dumper goes through a callback per token and snprintf per number,
 * which made it a fifth of nexus's CPU on a workflow fan-out; this writes straight into one
 * growing buffer. The text is byte for byte what json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY
 * | JSON_REAL_PRECISION(p)) gives (the unit test holds it to that): members in insertion
 * order, UTF-8 as is, control characters as \uXXXX, reals with %.<p>g and a ".0" when they
 * would read back as integers. */
#ifndef NX_ENGINE_JSON_WRITE_H
#define NX_ENGINE_JSON_WRITE_H

#include "buf.h"

#include <jansson.h>
#include <stddef.h>

/* Values nested deeper than this are refused (NULL), as jansson refuses them. */
#define NX_JSON_WRITE_MAX_DEPTH 2048

/** The compact text of <v> (any value), NUL-terminated, malloc'd; its length (without the NUL)
 *  goes to <*len> when <len> is not NULL. <real_precision> is the %g precision of reals (0 means
 *  17, exact). NULL on ENOMEM, a NULL <v> or nesting beyond NX_JSON_WRITE_MAX_DEPTH. */
char *nx_json_write(const json_t *v, int real_precision, size_t *len);
/** Appends the compact text of <v> to <b> (no NUL). 0, or -EINVAL (NULL <v>) or -ENOMEM (also
 *  for nesting beyond NX_JSON_WRITE_MAX_DEPTH); on failure <b> keeps its old length. For
 *  writers that put a document together from known parts around jansson values. */
int nx_json_write_append(nx_buf_t *b, const json_t *v, int real_precision);
/** Appends the <n> bytes of <s> as a JSON string, quotes included, escaped exactly as
 *  nx_json_write escapes strings. 0 or -ENOMEM (<b> then keeps its old length). */
int nx_json_write_string(nx_buf_t *b, const char *s, size_t n);

#endif
