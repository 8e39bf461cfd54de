/* JSON Schema (2020-12 subset) for MCP tool arguments and workflow inputs: compile a schema once
 * into an immutable tree, then validate instances against it from any thread, allocation-free on
 * the success path. Errors carry the instance's JSON Pointer and a message fit for the caller.
 *
 * Keywords: type, enum, const, properties, required, additionalProperties, patternProperties,
 * min/maxProperties, prefixItems, items, min/maxItems, uniqueItems, minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum, multipleOf, min/maxLength (in code points), pattern,
 * allOf, anyOf, oneOf, not, if/then/else, $defs/definitions and $ref to "#", "#/$defs/..." or
 * "#/definitions/..." (any other $ref fails to compile). Others (format, default, title, ...)
 * are ignored. Draft 4-7 spellings also work: items as an array with additionalItems, and
 * boolean exclusiveMinimum/exclusiveMaximum. Numbers compare mathematically (1 equals 1.0;
 * integers exactly, beyond 2^53 too).
 *
 * Patterns are ECMA-262; they are translated to POSIX extended regexes and run with regexec
 * over the string's bytes. \d \w \s (and \D \W \S) become [0-9], [A-Za-z0-9_], [[:space:]];
 * "." stops at \n and \r; (?:...) and (?<name>...) become plain groups; lazy quantifiers
 * become greedy (whether a match exists does not change); \xHH \uHHHH \cX \n \t ... are
 * decoded. Refused at compile time with the reason: lookaround, backreferences, \b \B, \p,
 * non-ASCII inside [...], {n,m} above 1000, patterns that expand past 10000 positions, and
 * patterns longer than NX_SCHEMA_MAX_PATTERN bytes. */
#ifndef NX_ENGINE_JSONSCHEMA_H
#define NX_ENGINE_JSONSCHEMA_H

#include <jansson.h>
#include <stddef.h>

#define NX_SCHEMA_MAX_DEPTH 64     /* schema nesting at compile time, instance nesting when valid */
#define NX_SCHEMA_MAX_PATTERN 1024 /* bytes in one "pattern" or "patternProperties" key */
#define NX_SCHEMA_MAX_STEPS 1000000 /* subschema evaluations in one validation */

/* A compiled schema. Owns a private copy of the schema document; immutable once compiled, so
 * threads may share one. */
typedef struct nx_schema nx_schema_t;

/* One violation (or compile error), filled in on the caller's side. Every field is
 * NUL-terminated valid UTF-8, truncated to fit. */
typedef struct nx_schema_error {
    char path[256];    /* validation: JSON Pointer into the instance ("" = root, "/items/2/name");
                          compile: location in the schema ("/properties/age/minimum") */
    char message[256]; /* "must be a string, got number", "is required", "must be >= 1", ...;
                          compile errors start with the location */
    char keyword[32];  /* the schema keyword that failed: "type", "required", "pattern", ... */
} nx_schema_error_t;

/** Compiles <schema> (borrowed: a deep copy is kept) or returns NULL with <err> (may be NULL)
 *  naming the offending location; NULL with "out of memory" on ENOMEM. */
nx_schema_t *nx_schema_compile(json_t *schema, nx_schema_error_t *err);
/** The JSON type of <v> as messages name it: object, array, string, number, boolean, null. */
const char *nx_json_type_name(const json_t *v);
/** Frees <s>. NULL-safe. */
void nx_schema_free(nx_schema_t *s);
/** Validates <instance> (borrowed) against <s>: 0 if valid, NX_EPROTO with the first violation in
 *  <err> (may be NULL), or NX_ELIMIT when a depth or work bound was hit (<err> says which).
 *  "First" is fixed: keywords in the order listed above, $ref last; object members by sorted
 *  name, whatever the instance's order; array items by index. */
int nx_schema_validate(const nx_schema_t *s, json_t *instance, nx_schema_error_t *err);
/** Like nx_schema_validate, but goes on after a violation and stores up to <max> of them in
 *  <errs> (the caller's array), setting <*count> to how many were stored. */
int nx_schema_validate_all(const nx_schema_t *s, json_t *instance, nx_schema_error_t *errs,
                           size_t max, size_t *count);

#endif
