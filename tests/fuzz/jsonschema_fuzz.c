/* libFuzzer target for engine/jsonschema.c: the input is "<schema>\0<instance>" (no NUL: the
 * schema is its own instance). Compiling and validating must never crash, hang or leak; every
 * error must be well-formed, and the first and collecting validations must agree. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema.h"
#include "nexus/errors.h"

/* Aborts unless every field is NUL-terminated valid UTF-8 and the message says something. */
static void check_error(const nx_schema_error_t *err) {
    if (memchr(err->path, '\0', sizeof(err->path)) == NULL ||
        memchr(err->message, '\0', sizeof(err->message)) == NULL ||
        memchr(err->keyword, '\0', sizeof(err->keyword)) == NULL || err->message[0] == '\0')
        abort();
    const char *fields[] = {err->path, err->message, err->keyword};
    for (size_t i = 0; i < 3; i++) {
        json_t *s = json_string(fields[i]); /* NULL when not valid UTF-8 */
        if (s == NULL) abort();
        json_decref(s);
    }
}

static void check_validation(const nx_schema_t *s, json_t *instance) {
    nx_schema_error_t first, again, all[4];
    size_t count = 0;
    int rc = nx_schema_validate(s, instance, &first);
    if (rc != 0 && rc != NX_EPROTO && rc != NX_ELIMIT) abort();
    if (rc != 0) check_error(&first);
    /* Deterministic: the same first violation every time. */
    if (nx_schema_validate(s, instance, &again) != rc) abort();
    if (rc != 0 && (strcmp(first.path, again.path) != 0 || strcmp(first.message, again.message)))
        abort();
    int rc_all = nx_schema_validate_all(s, instance, all, 4, &count);
    if ((rc == 0) != (rc_all == 0) || count > 4) abort();
    if (rc_all == NX_EPROTO && count == 0) abort();
    for (size_t i = 0; i < count; i++)
        check_error(&all[i]);
    /* With no NX_ELIMIT in the way, collecting starts with the same violation. */
    if (rc == NX_EPROTO && rc_all == NX_EPROTO &&
        (strcmp(first.path, all[0].path) != 0 || strcmp(first.message, all[0].message) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, '\0', size);
    size_t schema_len = nul ? (size_t)(nul - data) : size;
    const int flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_t *schema = json_loadb((const char *)data, schema_len, flags, NULL);
    if (schema == NULL) return 0;
    json_t *instance = nul ? json_loadb((const char *)nul + 1, size - schema_len - 1, flags, NULL)
                           : json_incref(schema);
    nx_schema_error_t err;
    nx_schema_t *s = nx_schema_compile(schema, &err);
    if (s == NULL) {
        check_error(&err);
    } else if (instance != NULL) {
        check_validation(s, instance);
    }
    nx_schema_free(s);
    json_decref(instance);
    json_decref(schema);
    return 0;
}
