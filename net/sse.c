/* SSE encoder (see sse.h). Each call measures the whole event first and reserves it in one go,
 * so a 1 MiB payload costs one allocation and a failure leaves <out> exactly as it was. */
#include "sse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define DATA_PREFIX "data: "
#define PREFIX_LEN(s) (sizeof(s) - 1)

/* A field value that would end its line early (or, for NUL, be cut short) is unsendable. */
static bool has_line_break(const char *s) {
    return strpbrk(s, "\r\n") != NULL;
}

/* Length of the line starting at <p> and the length of the break that ends it (0 at the end). */
static size_t line_len(const char *p, size_t n, size_t *brk) {
    size_t i = 0;
    while (i < n && p[i] != '\n' && p[i] != '\r')
        i++;
    if (i == n)
        *brk = 0;
    else if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
        *brk = 2;
    else
        *brk = 1;
    return i;
}

/* Bytes the data lines take: each line's text plus "data: " and "\n". A trailing break starts one
 * more, empty line, which is what makes the client's data end with that newline. */
static int data_size(const char *p, size_t n, size_t *out) {
    size_t total = 0;
    for (;;) {
        size_t brk, len = line_len(p, n, &brk);
        size_t add = PREFIX_LEN(DATA_PREFIX) + len + 1;
        if (total > SIZE_MAX - add) return -ENOMEM;
        total += add;
        if (brk == 0) break;
        p += len + brk;
        n -= len + brk;
    }
    *out = total;
    return 0;
}

/* Appends "<name>: <value>\n" into room already reserved. */
static void put_field(nx_buf_t *out, const char *name, const char *value, size_t n) {
    nx_buf_append_str(out, name);
    nx_buf_append(out, ": ", 2);
    nx_buf_append(out, value, n);
    nx_buf_append(out, "\n", 1);
}

int nx_sse_encode(nx_buf_t *out, const nx_sse_event_t *ev) {
    if (ev->data == NULL && ev->data_len != 0) return -EINVAL;
    size_t id_len = 0, event_len = 0, size;
    if (ev->id != NULL) {
        if (has_line_break(ev->id)) return -EINVAL;
        id_len = strlen(ev->id);
    }
    if (ev->event != NULL) {
        if (has_line_break(ev->event)) return -EINVAL;
        event_len = strlen(ev->event);
    }
    char retry[16] = "";
    if (ev->retry_ms != 0) snprintf(retry, sizeof(retry), "%" PRIu32, ev->retry_ms);
    if (data_size(ev->data ? ev->data : "", ev->data_len, &size) < 0) return -ENOMEM;
    size_t head = 1; /* the blank line */
    if (ev->id != NULL) head += PREFIX_LEN("id: ") + id_len + 1;
    if (ev->event != NULL) head += PREFIX_LEN("event: ") + event_len + 1;
    if (ev->retry_ms != 0) head += PREFIX_LEN("retry: ") + strlen(retry) + 1;
    if (size > SIZE_MAX - head) return -ENOMEM;
    if (nx_buf_reserve(out, size + head) < 0) return -ENOMEM;

    /* Nothing below can fail: the room is reserved. */
    if (ev->id != NULL) put_field(out, "id", ev->id, id_len);
    if (ev->event != NULL) put_field(out, "event", ev->event, event_len);
    if (ev->retry_ms != 0) put_field(out, "retry", retry, strlen(retry));
    const char *p = ev->data ? ev->data : "";
    size_t n = ev->data_len;
    for (;;) {
        size_t brk, len = line_len(p, n, &brk);
        nx_buf_append(out, DATA_PREFIX, PREFIX_LEN(DATA_PREFIX));
        nx_buf_append(out, p, len);
        nx_buf_append(out, "\n", 1);
        if (brk == 0) break;
        p += len + brk;
        n -= len + brk;
    }
    nx_buf_append(out, "\n", 1);
    return 0;
}

int nx_sse_comment(nx_buf_t *out, const char *text) {
    if (text == NULL) text = "";
    if (has_line_break(text)) return -EINVAL;
    size_t n = strlen(text);
    if (nx_buf_reserve(out, n + 4) < 0) return -ENOMEM;
    nx_buf_append(out, ": ", 2);
    nx_buf_append(out, text, n);
    nx_buf_append(out, "\n\n", 2);
    return 0;
}
