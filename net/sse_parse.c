/* The Server-Sent Events parser (see sse_parse.h): a byte state machine that streams each field
 * value straight into the buffer it belongs to (data, event type, id, retry digits) or past it
 * (comments, unknown fields), so nothing but what the spec keeps is ever copied or held. */
#include "sse_parse.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "nexus/errors.h"

const nx_sse_limits_t nx_sse_default_limits = {
    .max_event_bytes = 4u << 20,
    .max_id_bytes = 1024,
};

/* A line's life: an optional BOM before the first one, then name, colon, value, line end. */
enum nx__sse_state {
    NX_SSE_S_BOM,        /* the stream's first bytes, while they may still be a BOM */
    NX_SSE_S_LINE_START, /* blank line, comment or field name next */
    NX_SSE_S_NAME,
    NX_SSE_S_VALUE_START, /* just after the colon: one space is dropped */
    NX_SSE_S_VALUE,
    NX_SSE_S_COMMENT,
    NX_SSE_S_ERROR,
};

enum nx__sse_field { NX_SSE_F_IGNORE, NX_SSE_F_DATA, NX_SSE_F_EVENT, NX_SSE_F_ID, NX_SSE_F_RETRY };

static const unsigned char bom[3] = {0xef, 0xbb, 0xbf};

/* Buffers larger than this are given back once their event has been delivered, so a stream
 * that once carried a large event does not keep its memory while idle. */
#define NX_SSE_KEEP_CAP (64u * 1024)

static int fail(nx_sse_parser_t *p, nx_sse_error_t e, const char *msg) {
    p->state = NX_SSE_S_ERROR;
    p->error = e;
    p->error_message = msg;
    return e == NX_SSE_ENOMEM ? -ENOMEM : NX_EPROTO;
}

static inline nx_str_t str_of(const nx_buf_t *b) {
    return (nx_str_t){b->data != NULL ? b->data : "", b->len};
}

static inline bool is_eol(unsigned char c) {
    return c == '\n' || c == '\r';
}

/* Length of the run s[0..n) before the first CR or LF (n if none). */
static size_t find_eol(const char *s, size_t n) {
    const char *lf = memchr(s, '\n', n);
    size_t m = lf != NULL ? (size_t)(lf - s) : n;
    const char *cr = memchr(s, '\r', m);
    return cr != NULL ? (size_t)(cr - s) : m;
}

void nx_sse_parser_init(nx_sse_parser_t *p, const nx_sse_limits_t *limits) {
    memset(p, 0, sizeof(*p));
    p->limits = limits != NULL ? limits : &nx_sse_default_limits;
    p->retry_ms = -1;
    nx_buf_init(&p->data);
    nx_buf_init(&p->type);
    nx_buf_init(&p->id_line);
    nx_buf_init(&p->id);
    nx_buf_init(&p->last_id);
    p->state = NX_SSE_S_BOM;
}

void nx_sse_parser_dispose(nx_sse_parser_t *p) {
    if (p == NULL) return;
    nx_buf_dispose(&p->data);
    nx_buf_dispose(&p->type);
    nx_buf_dispose(&p->id_line);
    nx_buf_dispose(&p->id);
    nx_buf_dispose(&p->last_id);
}

static void trim(nx_buf_t *b) {
    b->len = 0;
    if (b->cap > NX_SSE_KEEP_CAP) nx_buf_dispose(b);
}

void nx_sse_parser_restart(nx_sse_parser_t *p) {
    trim(&p->data);
    trim(&p->type);
    trim(&p->id_line);
    /* the id buffer restarts from the last event ID; both are bounded by max_id_bytes */
    p->id.len = 0;
    if (nx_buf_append(&p->id, p->last_id.data, p->last_id.len) < 0) {
        fail(p, NX_SSE_ENOMEM, "out of memory for the last event ID");
        return;
    }
    p->state = NX_SSE_S_BOM;
    p->bom_matched = 0;
    p->after_cr = p->reported = p->id_changed = false;
    p->name_len = 0;
    p->error = NX_SSE_OK;
    p->error_message = NULL;
}

nx_str_t nx_sse_parser_last_event_id(const nx_sse_parser_t *p) {
    return str_of(&p->last_id);
}

int64_t nx_sse_parser_retry_ms(const nx_sse_parser_t *p) {
    return p->retry_ms;
}

/* The colon (or the line end) after the field name: picks where the value goes. */
static void begin_value(nx_sse_parser_t *p) {
    const char *n = p->name;
    uint8_t len = p->name_len;
    p->field = NX_SSE_F_IGNORE;
    if (len == 4 && memcmp(n, "data", 4) == 0) {
        p->field = NX_SSE_F_DATA;
    } else if (len == 5 && memcmp(n, "event", 5) == 0) {
        p->field = NX_SSE_F_EVENT;
        p->type.len = 0; /* the last event field of a block wins */
    } else if (len == 2 && memcmp(n, "id", 2) == 0) {
        p->field = NX_SSE_F_ID;
        p->id_line.len = 0;
        p->id_has_nul = false;
    } else if (len == 5 && memcmp(n, "retry", 5) == 0) {
        p->field = NX_SSE_F_RETRY;
        p->retry_ok = true;
        p->retry_digits = 0;
        p->retry_value = 0;
    }
}

/* Appends s[0..n) to the data or event type buffer, which share max_event_bytes. */
static int add_event_bytes(nx_sse_parser_t *p, nx_buf_t *b, const char *s, size_t n) {
    if (n > (size_t)p->limits->max_event_bytes - p->data.len - p->type.len)
        return fail(p, NX_SSE_EEVENT_TOO_LARGE, "event larger than max_event_bytes");
    if (nx_buf_append(b, s, n) < 0) return fail(p, NX_SSE_ENOMEM, "out of memory for an event");
    return 0;
}

/* A piece s[0..n) of the current field's value, without line-end bytes. */
static int add_value(nx_sse_parser_t *p, const char *s, size_t n) {
    switch (p->field) {
    case NX_SSE_F_DATA:
        return add_event_bytes(p, &p->data, s, n);
    case NX_SSE_F_EVENT:
        return add_event_bytes(p, &p->type, s, n);
    case NX_SSE_F_ID:
        if (n > (size_t)p->limits->max_id_bytes - p->id_line.len)
            return fail(p, NX_SSE_EID_TOO_LONG, "event id longer than max_id_bytes");
        if (memchr(s, '\0', n) != NULL) p->id_has_nul = true;
        if (nx_buf_append(&p->id_line, s, n) < 0)
            return fail(p, NX_SSE_ENOMEM, "out of memory for an event id");
        return 0;
    case NX_SSE_F_RETRY:
        for (size_t i = 0; i < n && p->retry_ok; i++) {
            unsigned d = (unsigned char)s[i] - '0';
            if (d > 9) {
                p->retry_ok = false;
                break;
            }
            p->retry_digits = 1;
            const uint64_t max = INT64_MAX;
            p->retry_value = p->retry_value > (max - d) / 10 ? max : p->retry_value * 10 + d;
        }
        return 0;
    default:
        return 0;
    }
}

/* The line end after a field: commits the value where the spec says a field takes effect. */
static int end_field(nx_sse_parser_t *p) {
    switch (p->field) {
    case NX_SSE_F_DATA:
        return add_event_bytes(p, &p->data, "\n", 1);
    case NX_SSE_F_ID:
        if (!p->id_has_nul) {
            nx_buf_t t = p->id;
            p->id = p->id_line;
            p->id_line = t;
            p->id_changed = true;
        }
        return 0;
    case NX_SSE_F_RETRY:
        if (p->retry_ok && p->retry_digits > 0) p->retry_ms = (int64_t)p->retry_value;
        return 0;
    default:
        return 0;
    }
}

/* The blank line: 1 with <msg> filled when a message is dispatched, 0 when not, or an error. */
static int dispatch(nx_sse_parser_t *p, nx_sse_message_t *msg) {
    if (p->id_changed) {
        p->last_id.len = 0;
        if (nx_buf_append(&p->last_id, p->id.data, p->id.len) < 0)
            return fail(p, NX_SSE_ENOMEM, "out of memory for the last event ID");
        p->id_changed = false;
    }
    if (p->data.len == 0) {
        p->type.len = 0;
        return 0;
    }
    p->data.len--; /* every data line ended in LF: drop the last one */
    msg->type = p->type.len > 0 ? str_of(&p->type) : NX_STR("message");
    msg->data = str_of(&p->data);
    msg->id = str_of(&p->last_id);
    msg->retry_ms = p->retry_ms;
    p->reported = true;
    return 1;
}

int nx_sse_parse(nx_sse_parser_t *p, const char *buf, size_t len, nx_sse_message_t *msg) {
    if (p->state == NX_SSE_S_ERROR) return p->error == NX_SSE_ENOMEM ? -ENOMEM : NX_EPROTO;
    if (len > INT_MAX) return -EINVAL;
    if (p->reported) {
        trim(&p->data);
        trim(&p->type);
        p->reported = false;
    }
    size_t i = 0;
    int rc;
    while (i < len) {
        unsigned char c = (unsigned char)buf[i];
        if (p->after_cr) {
            p->after_cr = false;
            if (c == '\n') { /* the LF of a CRLF whose CR ended the line */
                i++;
                continue;
            }
        }
        switch (p->state) {
        case NX_SSE_S_BOM:
            if (c == bom[p->bom_matched]) {
                i++;
                if (++p->bom_matched == sizeof(bom)) p->state = NX_SSE_S_LINE_START;
                continue;
            }
            /* not a BOM after all: what was taken for its start begins a field name (none of
             * those bytes is a colon or a line end) */
            memcpy(p->name, bom, p->bom_matched);
            p->name_len = p->bom_matched;
            p->state = p->bom_matched > 0 ? NX_SSE_S_NAME : NX_SSE_S_LINE_START;
            continue;
        case NX_SSE_S_LINE_START:
            if (is_eol(c)) {
                p->after_cr = c == '\r';
                i++;
                rc = dispatch(p, msg);
                if (rc < 0) return rc;
                if (rc > 0) return (int)i;
                continue;
            }
            if (c == ':') {
                p->state = NX_SSE_S_COMMENT;
                i++;
                continue;
            }
            p->name_len = 0;
            p->state = NX_SSE_S_NAME;
            continue;
        case NX_SSE_S_NAME:
            if (c == ':') {
                begin_value(p);
                p->state = NX_SSE_S_VALUE_START;
                i++;
            } else if (is_eol(c)) { /* a field with no colon has an empty value */
                begin_value(p);
                if ((rc = end_field(p)) < 0) return rc;
                p->after_cr = c == '\r';
                p->state = NX_SSE_S_LINE_START;
                i++;
            } else {
                /* names longer than the buffer are not ones we know: stop recording them */
                if (p->name_len < sizeof(p->name)) p->name[p->name_len++] = (char)c;
                i++;
            }
            continue;
        case NX_SSE_S_VALUE_START:
            p->state = NX_SSE_S_VALUE;
            if (c == ' ') i++;
            continue;
        case NX_SSE_S_VALUE: {
            size_t run = find_eol(buf + i, len - i);
            if (run > 0 && (rc = add_value(p, buf + i, run)) < 0) return rc;
            i += run;
            if (i == len) continue;
            if ((rc = end_field(p)) < 0) return rc;
            p->after_cr = buf[i] == '\r';
            p->state = NX_SSE_S_LINE_START;
            i++;
            continue;
        }
        case NX_SSE_S_COMMENT: {
            size_t run = find_eol(buf + i, len - i);
            i += run;
            if (i == len) continue;
            p->after_cr = buf[i] == '\r';
            p->state = NX_SSE_S_LINE_START;
            i++;
            continue;
        }
        }
    }
    return NX_AGAIN;
}
