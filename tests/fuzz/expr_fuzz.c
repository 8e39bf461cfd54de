/* libFuzzer target for engine/expr.c: any bytes, compiled as a template and as a bare
 * expression, must compile or be rejected with a printable message at an offset inside the
 * text, never crash or leak. What compiles is evaluated against a fixed scope with nested
 * objects and arrays (a value or a printable run-time error) and its references are walked;
 * the same bytes as a string inside a JSON template must agree with the plain compile. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"

static void check(int ok) {
    if (!ok) abort();
}

static void check_printable(const char *s) {
    check(s[0] != '\0');
    for (const char *c = s; *c; c++)
        check(*c >= 0x20 && *c < 0x7f);
}

static const json_t *scope(void) {
    static json_t *s;
    if (s == NULL) {
        s = json_loads(
            "{\"input\": {\"n\": 5, \"r\": 2.5, \"s\": \"hello\", \"e\": \"\", \"t\": true,"
            " \"nul\": null, \"arr\": [1, 2.5, \"x\", [3, {\"k\": null}]], \"json\": \"[1,{}]\","
            " \"obj\": {\"k\": \"v\", \"odd key\": {\"deep\": [true, false]}},"
            " \"big\": 9223372036854775807, \"neg\": -9223372036854775807, \"u\": \"\\u00e9\"},"
            " \"steps\": {\"a\": {\"result\": {\"items\": [{\"name\": \"x\"}], \"n\": 1e300},"
            " \"status\": \"succeeded\"}, \"b-c\": {\"result\": [[], {}]}},"
            " \"item\": {\"id\": 3}, \"index\": 0, \"session\": {\"user\": \"bob\"}}",
            0, NULL);
        check(s != NULL);
    }
    return s;
}

static void count_ref(void *arg, const char *step_id) {
    check(step_id != NULL);
    (*(unsigned *)arg)++;
}

static void exercise(const nx_expr_t *e) {
    char err[128];
    err[0] = '\0';
    json_t *v = nx_expr_eval(e, scope(), err, sizeof(err));
    if (v == NULL) {
        check_printable(err);
    } else {
        check(!nx_expr_is_literal(e) || json_is_string(v));
        (void)nx_expr_truthy(v);
        /* every result must be serialisable (valid UTF-8 strings, finite numbers) */
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        check(s != NULL);
        free(s);
        json_decref(v);
    }
    unsigned calls = 0;
    unsigned bits = nx_expr_refs(e, count_ref, &calls);
    check((bits & ~31u) == 0);
    check(calls == 0 || (bits & NX_EXPR_ROOT_STEPS));
    check(nx_expr_refs(e, NULL, NULL) == bits);
}

static int compile_one(int bare, const char *text, size_t size) {
    nx_expr_t *e = (nx_expr_t *)&e; /* must be reset */
    nx_expr_error_t err;
    memset(&err, 0, sizeof(err));
    int rc =
        bare ? nx_expr_compile_bare(text, size, &e, &err) : nx_expr_compile(text, size, &e, &err);
    if (rc == 0) {
        check(e != NULL);
        exercise(e);
        nx_expr_free(e);
    } else {
        check(rc == -EINVAL && e == NULL);
        check_printable(err.message);
        check(err.offset <= size);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    int rc = compile_one(0, text, size);
    compile_one(1, text, size);

    /* The same text as a string two levels down in a JSON template. */
    json_t *str = json_stringn(text, size);
    if (str == NULL) return 0; /* not UTF-8: JSON cannot hold it */
    json_t *doc = json_pack("{s:[i,o]}", "a", 7, str);
    check(doc != NULL);
    nx_jtemplate_t *t = NULL;
    nx_expr_error_t err;
    char where[32];
    int jrc = nx_jtemplate_compile(doc, &t, &err, where, sizeof(where));
    check((jrc == 0) == (rc == 0));
    if (jrc == 0) {
        char msg[128];
        msg[0] = '\0';
        json_t *v = nx_jtemplate_eval(t, scope(), msg, sizeof(msg));
        if (v != NULL) {
            check(json_is_object(v) && json_array_size(json_object_get(v, "a")) == 2);
            json_decref(v);
        } else {
            check_printable(msg);
        }
        (void)nx_jtemplate_refs(t, NULL, NULL);
        nx_jtemplate_free(t);
    } else {
        check(t == NULL && strcmp(where, "/a/1") == 0);
        check_printable(err.message);
    }
    json_decref(doc);
    return 0;
}
