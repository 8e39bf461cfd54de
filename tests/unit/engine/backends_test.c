/* Unit tests for the pure parts of engine/backends.c: the per-call retry policy a caller may
 * bring in "_meta": {"io.nexus/retry": {...}} (workflow steps with retry:). */
#include "backends_internal.h"

#include <criterion/criterion.h>

static const nx_backoff_config_t backend = {.base_ms = 25, .cap_ms = 250, .max_attempts = 3};

static bool parse(const char *text, nx_backoff_config_t *out) {
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    cr_assert_not_null(v, "%s", text);
    bool ok = nx__backend_retry_override(v, &backend, out);
    json_decref(v);
    return ok;
}

Test(retry_override, a_full_policy_replaces_the_backends) {
    nx_backoff_config_t out = {0};
    cr_assert(parse("{\"attempts\": 5, \"base\": 10, \"cap\": 80}", &out));
    cr_expect_eq(out.max_attempts, 5);
    cr_expect_eq(out.base_ms, 10);
    cr_expect_eq(out.cap_ms, 80);
    cr_assert(parse("{\"attempts\": 1}", &out)); /* no retry at all */
    cr_expect_eq(out.max_attempts, 1);
}

Test(retry_override, missing_delays_are_the_backends) {
    nx_backoff_config_t out = {0};
    cr_assert(parse("{\"attempts\": 2, \"cap\": 1000}", &out));
    cr_expect_eq(out.base_ms, 25);
    cr_expect_eq(out.cap_ms, 1000);
}

Test(retry_override, a_malformed_policy_is_ignored) {
    const char *bad[] = {
        "{\"attempts\": 0}",
        "{\"attempts\": 11}",
        "{\"attempts\": \"3\"}",
        "{\"attempts\": 2.5}",
        "{\"base\": 10, \"cap\": 20}",
        "{\"attempts\": 3, \"base\": 100, \"cap\": 50}",
        "{\"attempts\": 3, \"base\": -1}",
        "{\"attempts\": 3, \"cap\": 10}", /* the backend's base 25 > cap 10 */
        "{\"attempts\": 3, \"base\": \"10ms\"}",
        "[3]",
        "null",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nx_backoff_config_t out = {.max_attempts = 99};
        cr_expect(!parse(bad[i], &out), "%s was accepted", bad[i]);
        cr_expect_eq(out.max_attempts, 99, "%s changed the policy", bad[i]);
    }
    nx_backoff_config_t out = {.max_attempts = 99};
    cr_expect(!nx__backend_retry_override(NULL, &backend, &out));
}
