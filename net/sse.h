/* Server-Sent Events encoding (WHATWG HTML, "server-sent events"): one event or one comment
 * appended to a caller's nx_buf_t in the text/event-stream wire format. No parsing, no I/O; the
 * connection that owns the buffer sends it. */
#ifndef NX_NET_SSE_H
#define NX_NET_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* One event, borrowed for the duration of nx_sse_encode; NULL/0 fields are omitted. */
typedef struct nx_sse_event {
    const char *id;    /* must not contain CR or LF; NULL = no id line ("" resets the client's) */
    const char *event; /* event type; must not contain CR or LF; NULL = none ("message") */
    const char *data;  /* may contain LF, CRLF or CR: each line becomes its own "data:" line */
    size_t data_len;   /* data may be NULL with len 0: one empty "data: " line is written */
    uint32_t retry_ms; /* 0 = no retry line */
} nx_sse_event_t;

/** Appends <ev> as one SSE event to <out>: "id: ", "event: " and "retry: " lines as set, then a
 * "data: " line for every line of data (always at least one), then a blank line. Returns 0,
 * -EINVAL when id or event contain CR or LF (or data is NULL with a length), or -ENOMEM; on
 * error nothing is appended. */
int nx_sse_encode(nx_buf_t *out, const nx_sse_event_t *ev);

/** Appends the comment ": <text>\n\n" to <out>, a keep-alive clients ignore; NULL <text> is
 * taken as "". Returns 0, -EINVAL when <text> contains CR or LF, or -ENOMEM (nothing appended). */
int nx_sse_comment(nx_buf_t *out, const char *text);

#endif
