/* The Streamable HTTP link of a backend (see backend_link.h): not yet built. */
#include "backend_link.h"

#include <errno.h>

static int http_start(nx_backend_instance_t *in) {
    return -ENOTSUP;
}

static int http_send(nx_backend_instance_t *in, const char *text, size_t len,
                     json_int_t request_id) {
    return -EPIPE;
}

static void http_drain(nx_backend_instance_t *in) {}

static void http_destroy(nx_backend_instance_t *in) {}

const nx_backend_link_ops_t nx_backend_http_link = {
    .name = "http",
    .start = http_start,
    .send = http_send,
    .drain = http_drain,
    .destroy = http_destroy,
};
