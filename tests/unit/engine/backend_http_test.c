/* Unit tests for the legacy HTTP+SSE endpoint resolution of engine/backend_http.c: where a
 * 2024-11-05 server's "endpoint" event says to POST. */
#include "backend_link.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static void expect(const char *base, const char *data, const char *want) {
    char *got = nx_backend_endpoint_target(base, data, strlen(data));
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want, "base %s, data %s", base, data);
    free(got);
}

Test(endpoint_target, an_absolute_path_is_taken_as_is) {
    expect("/sse", "/messages?sessionId=abc", "/messages?sessionId=abc");
}

Test(endpoint_target, a_url_gives_its_path_and_query) {
    expect("/sse", "http://127.0.0.1:8080/messages?x=1", "/messages?x=1");
    expect("/sse", "https://example.com/a/b", "/a/b");
    expect("/sse", "http://example.com", "/");
}

Test(endpoint_target, a_relative_path_is_resolved_against_the_stream_path) {
    expect("/api/sse", "messages?s=2", "/api/messages?s=2");
    expect("/sse", "messages", "/messages");
    expect("sse", "messages", "/messages");
}

Test(endpoint_target, data_is_not_read_past_its_length) {
    const char data[] = "/messagesXXXX";
    char *got = nx_backend_endpoint_target("/sse", data, 9);
    cr_assert_str_eq(got, "/messages");
    free(got);
}
