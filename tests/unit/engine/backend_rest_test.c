/* Unit tests for the pure parts of engine/backend_rest.c: where a request goes on a replica
 * (paths and queries joined), which endings of an exchange are retried, and the response
 * object a workflow step reads. */
#include "backends_internal.h"

#include "nexus/errors.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void expect_target(const char *base, const char *path, const char *want) {
    char *got = nx__rest_target(base, path);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want, "base %s, path %s", base, path ? path : "(null)");
    free(got);
}

Test(rest_target, paths_join_with_exactly_one_slash) {
    expect_target("/", "/invoices/7", "/invoices/7");
    expect_target("/api", "/invoices/7", "/api/invoices/7");
    expect_target("/api/", "/invoices/7", "/api/invoices/7");
    expect_target("/api/", "invoices", "/api/invoices");
    expect_target("/api", "", "/api/");
    expect_target("/api", NULL, "/api/");
    expect_target("", "/x", "/x");
}

Test(rest_target, queries_of_the_url_and_the_request_are_both_kept) {
    expect_target("/", "/search?q=a&page=2", "/search?q=a&page=2");
    expect_target("/v1?key=k1", "/items", "/v1/items?key=k1");
    expect_target("/v1?key=k1", "/items?page=2", "/v1/items?key=k1&page=2");
    expect_target("/v1?", "/items?", "/v1/items");
}

Test(rest_classify, gateway_errors_are_retried_other_answers_are_not) {
    cr_expect_eq(nx__rest_classify(0, true, 200), NX__REST_ANSWER);
    cr_expect_eq(nx__rest_classify(0, true, 404), NX__REST_ANSWER);
    cr_expect_eq(nx__rest_classify(0, true, 429), NX__REST_ANSWER);
    cr_expect_eq(nx__rest_classify(0, true, 500), NX__REST_ANSWER);
    cr_expect_eq(nx__rest_classify(0, true, 502), NX__REST_RETRY_STATUS);
    cr_expect_eq(nx__rest_classify(0, true, 503), NX__REST_RETRY_STATUS);
    cr_expect_eq(nx__rest_classify(0, true, 504), NX__REST_RETRY_STATUS);
}

Test(rest_classify, only_failures_the_server_cannot_have_acted_on_are_retried) {
    cr_expect_eq(nx__rest_classify(-ECONNREFUSED, false, 0), NX__REST_RETRY_TRANSPORT);
    cr_expect_eq(nx__rest_classify(-ETIMEDOUT, false, 0), NX__REST_RETRY_TRANSPORT);
    cr_expect_eq(nx__rest_classify(-ECONNRESET, false, 0), NX__REST_RETRY_TRANSPORT);
    /* Reset halfway through the answer: the server saw the request. */
    cr_expect_eq(nx__rest_classify(-ECONNRESET, true, 0), NX__REST_FAIL);
    cr_expect_eq(nx__rest_classify(NX_EPROTO, true, 0), NX__REST_FAIL);
    cr_expect_eq(nx__rest_classify(-ECANCELED, false, 0), NX__REST_FAIL);
}

Test(rest_response, a_json_body_is_parsed_and_anything_else_is_text) {
    json_t *h = json_object();
    nx__rest_add_header(h, NX_STR("Content-Type"), NX_STR("application/json"));
    const char *body = "{\"id\": 7, \"tags\": [\"a\"]}";
    json_t *r = nx__rest_response(201, h, body, strlen(body));
    cr_assert_not_null(r);
    cr_expect_eq(json_integer_value(json_object_get(r, "status")), 201);
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(r, "headers"), "content-type")),
        "application/json");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(r, "body"), "id")), 7);
    json_decref(r);

    r = nx__rest_response(200, h, "plain words", 11);
    cr_expect_str_eq(json_string_value(json_object_get(r, "body")), "plain words");
    json_decref(r);
    r = nx__rest_response(200, h, "42", 2); /* any JSON value, not only objects */
    cr_expect_eq(json_integer_value(json_object_get(r, "body")), 42);
    json_decref(r);
    r = nx__rest_response(204, NULL, NULL, 0);
    cr_expect_str_eq(json_string_value(json_object_get(r, "body")), "");
    cr_expect(json_is_object(json_object_get(r, "headers")));
    json_decref(r);
    json_decref(h);
}

Test(rest_response, invalid_utf8_becomes_text_with_its_bad_bytes_replaced) {
    const char body[] = {'o', 'k', (char)0xff, '!'};
    json_t *r = nx__rest_response(200, NULL, body, sizeof(body));
    cr_assert_not_null(r);
    cr_expect_str_eq(json_string_value(json_object_get(r, "body")), "ok?!");
    json_decref(r);
}

Test(rest_headers, names_are_lowercased_and_repeats_joined) {
    json_t *h = json_object();
    nx__rest_add_header(h, NX_STR("Set-Cookie"), NX_STR("a=1"));
    nx__rest_add_header(h, NX_STR("set-cookie"), NX_STR("b=2"));
    nx__rest_add_header(h, NX_STR("X-Request-ID"), NX_STR("r7"));
    cr_expect_str_eq(json_string_value(json_object_get(h, "set-cookie")), "a=1, b=2");
    cr_expect_str_eq(json_string_value(json_object_get(h, "x-request-id")), "r7");
    cr_expect_eq(json_object_size(h), 2);
    json_decref(h);
}
