/* Events and the ring of recent events (see event_ring.h). An event is one allocation: the
 * struct, then room for the WebSocket head, the JSON data and the closing brace, so the WS
 * payload is contiguous without a second copy of the data, and the SSE form is the stored head
 * plus the same data. A lazy event keeps its flat JSON instead and gets the same layout in a
 * second block the first time a subscriber needs the text. */
#include "event_ring.h"

#include "buf.h"
#include "json_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a lazy event's JSON costs besides the key and string bytes (counted by the bound): the
 * object with its first hash buckets, and per member a hash pair, buckets and a value. Over
 * jansson 2.14's real sizes with malloc's rounding, so that the ring's byte bound holds. */
#define JSON_OBJECT_COST 256u
#define JSON_MEMBER_COST 160u

static bool type_valid(const char *t) {
    size_t n = strlen(t);
    if (n == 0 || n >= NX_EVENT_TYPE_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* A new event of <type> for <execution> with <extra> bytes after the WS head room; only the
 * fields every event has are set. */
static nx_event_t *event_alloc(const char *type, const char *execution, size_t extra) {
    if (type == NULL || !type_valid(type)) return NULL;
    nx_event_t *ev = malloc(sizeof(*ev) + NX_EVENT_WS_HEAD_MAX + extra);
    if (ev == NULL) return NULL;
    memset(ev, 0, sizeof(*ev));
    ev->refs = 1;
    memcpy(ev->type, type, strlen(type) + 1); /* type_valid: shorter than the field */
    /* Execution ids are ours (x-<hex>); anything else is cut rather than refused. */
    size_t exec_len = execution ? strnlen(execution, sizeof(ev->execution) - 1) : 0;
    if (exec_len > 0) memcpy(ev->execution, execution, exec_len);
    ev->execution[exec_len] = '\0';
    ev->terminal = strcmp(type, "execution.finished") == 0 ||
                   strcmp(type, "execution.failed") == 0 ||
                   strcmp(type, "execution.cancelled") == 0;
    return ev;
}

nx_event_t *nx_event_new(const char *type, const char *execution, const char *data, size_t len) {
    if (data == NULL && len > 0) return NULL;
    /* One line of data: a CR or LF would split the SSE "data:" line. */
    if (len > 0 && (memchr(data, '\n', len) != NULL || memchr(data, '\r', len) != NULL))
        return NULL;
    nx_event_t *ev = event_alloc(type, execution, len + 2);
    if (ev == NULL) return NULL;
    ev->inline_len = len;
    ev->charge = sizeof(*ev) + NX_EVENT_WS_HEAD_MAX + len + 2;
    char *d = ev->buf + NX_EVENT_WS_HEAD_MAX;
    if (len > 0) memcpy(d, data, len);
    d[len] = '}';
    d[len + 1] = '\0';
    return ev;
}

/* Bytes one byte takes inside a JSON string, escaped as json_write.c escapes it: 2 for the
 * quote, the backslash and the controls with a short escape, 6 for other controls (\u00XX). */
static const unsigned char escaped_size[256] = {
    [0x00 ... 0x07] = 6, ['\b'] = 2, ['\t'] = 2,          ['\n'] = 2,          [0x0b] = 6,
    ['\f'] = 2,          ['\r'] = 2, [0x0e ... 0x1f] = 6, [0x20 ... 0x21] = 1, ['"'] = 2,
    [0x23 ... 0x5b] = 1, ['\\'] = 2, [0x5d ... 0xff] = 1,
};

/* Bytes the <n> bytes of <s> take inside a JSON string (quotes not included). */
static size_t escaped_len(const char *s, size_t n) {
    size_t out = 0;
    for (size_t i = 0; i < n; i++)
        out += escaped_size[(unsigned char)s[i]];
    return out;
}

bool nx_event_flat(const json_t *data, size_t max, size_t *bound) {
    if (!json_is_object(data)) return false;
    size_t n = 2; /* {} */
    /* The iterator itself rather than json_object_keylen_foreach, which looks every key up
     * again: this walk must stay well below the cost of writing the text. */
    for (void *it = json_object_iter((json_t *)data); it != NULL;
         it = json_object_iter_next((json_t *)data, it)) {
        size_t key_len = json_object_iter_key_len(it);
        if (key_len > max) return false;
        n += (n > 2) + escaped_len(json_object_iter_key(it), key_len) + 3; /* ,"": */
        const json_t *v = json_object_iter_value(it);
        switch (json_typeof(v)) {
        case JSON_STRING: {
            size_t len = json_string_length(v);
            if (len >= NX_EVENT_FLAT_STRING_MAX) return false;
            n += escaped_len(json_string_value(v), len) + 2;
            break;
        }
        case JSON_INTEGER:
            n += 20; /* -9223372036854775808 */
            break;
        case JSON_REAL:
            n += 24; /* %.17g: -2.2250738585072014e-308 */
            break;
        case JSON_TRUE:
        case JSON_NULL:
            n += 4;
            break;
        case JSON_FALSE:
            n += 5;
            break;
        default:
            return false;
        }
        if (n > max) return false;
    }
    *bound = n;
    return true;
}

/* The compact JSON of <data> (NULL = {}); data over <max> bytes loses its bulky members
 * (result, inputs, error details) and says so, so one huge result cannot evict the whole ring
 * or cut every subscriber. */
static char *serialize(const json_t *data, size_t max, size_t *len) {
    char *text = data ? nx_json_write(data, 17, len) : strdup("{}");
    if (text == NULL) return NULL;
    if (data == NULL) *len = 2;
    if (*len <= max || !json_is_object(data)) return text;
    size_t full = *len;
    free(text);
    json_t *small = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)data, k, v) {
        if (json_is_string(v) ? strlen(json_string_value(v)) < 1024
                              : !json_is_object(v) && !json_is_array(v))
            json_object_set(small, k, v);
    }
    json_object_set_new(small, "truncated", json_true());
    json_object_set_new(small, "data_bytes", json_integer((json_int_t)full));
    text = nx_json_write(small, 17, len);
    json_decref(small);
    return text;
}

nx_event_t *nx_event_from_json(const char *type, const char *execution, const json_t *data,
                               size_t max_data) {
    size_t bound;
    /* Within max_data by the bound, the text cannot be over it: no truncation to apply. */
    if (!nx_event_flat(data, max_data, &bound)) {
        size_t len = 0;
        char *text = serialize(data, max_data, &len);
        nx_event_t *ev = text ? nx_event_new(type, execution, text, len) : NULL;
        free(text);
        return ev;
    }
    /* No CR/LF check: compact JSON escapes them. */
    nx_event_t *ev = event_alloc(type, execution, 0);
    if (ev == NULL) return NULL;
    ev->json = json_incref((json_t *)data); /* immutable from now on (the caller's word) */
    ev->bound = bound;
    ev->charge = sizeof(*ev) + NX_EVENT_WS_HEAD_MAX + sizeof(nx_event_text_t) +
                 NX_EVENT_WS_HEAD_MAX + bound + 2 + JSON_OBJECT_COST +
                 json_object_size(data) * JSON_MEMBER_COST + bound;
    return ev;
}

/* Writes the text of lazy <ev> into a block of its own and installs it unless another thread
 * was first (then ours goes and theirs is used). The WS head comes from the event, where the
 * ring wrote it before any other thread could see the event. */
static nx_event_text_t *materialize(nx_event_t *ev) {
    size_t room = sizeof(nx_event_text_t) + NX_EVENT_WS_HEAD_MAX;
    /* The bound is enough: the writer grows the block only if it were not. */
    nx_buf_t b = {.data = malloc(room + ev->bound + 2), .len = room, .cap = room + ev->bound + 2};
    if (b.data == NULL) return NULL;
    if (nx_json_write_append(&b, ev->json, 17) < 0 || nx_buf_append(&b, "}", 2) < 0) {
        free(b.data);
        return NULL;
    }
    nx_event_text_t *t = (nx_event_text_t *)b.data;
    t->len = b.len - room - 2;
    size_t head = ev->ws_head_len;
    memcpy(t->buf + NX_EVENT_WS_HEAD_MAX - head, ev->buf + NX_EVENT_WS_HEAD_MAX - head, head);
    nx_event_text_t *seen = NULL;
    if (!__atomic_compare_exchange_n(&ev->text, &seen, t, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        free(t);
        t = seen;
    }
    return t;
}

/* The block [WS head room][data]["}"][NUL] of <ev> and the data's length, or NULL (ENOMEM). */
static char *wire(nx_event_t *ev, size_t *len) {
    if (ev->json == NULL) {
        *len = ev->inline_len;
        return ev->buf;
    }
    nx_event_text_t *t = __atomic_load_n(&ev->text, __ATOMIC_ACQUIRE);
    if (t == NULL && (t = materialize(ev)) == NULL) return NULL;
    *len = t->len;
    return t->buf;
}

const char *nx_event_text(nx_event_t *ev, size_t *len) {
    char *w = wire(ev, len);
    return w ? w + NX_EVENT_WS_HEAD_MAX : NULL;
}

const char *nx_event_ws_payload(nx_event_t *ev, size_t *len) {
    size_t data_len;
    char *w = wire(ev, &data_len);
    if (w == NULL) return NULL;
    *len = (size_t)ev->ws_head_len + data_len + 1;
    return w + NX_EVENT_WS_HEAD_MAX - ev->ws_head_len;
}

void nx_event_ref(nx_event_t *ev) {
    __atomic_add_fetch(&ev->refs, 1, __ATOMIC_RELAXED);
}

void nx_event_unref(nx_event_t *ev) {
    if (ev == NULL || __atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    free(__atomic_load_n(&ev->text, __ATOMIC_ACQUIRE));
    json_decref(ev->json);
    free(ev);
}

/* Appends <n> bytes of <src> at <*at> of <dst>. The heads have fixed room for the longest type
 * and id (checked by the sizes in event_ring.h), so there is nothing to bound here. */
static void put(char *dst, size_t *at, const char *src, size_t n) {
    memcpy(dst + *at, src, n);
    *at += n;
}

static void put_u64(char *dst, size_t *at, uint64_t v) {
    *at += nx_u64_format(dst + *at, v);
}

/* The longest heads fit their fields: 20 digits of id and a type of NX_EVENT_TYPE_MAX - 1. */
_Static_assert(4 + 20 + 8 + (NX_EVENT_TYPE_MAX - 1) + 7 < sizeof(((nx_event_t *)0)->sse_head),
               "sse_head too small");
_Static_assert(21 + 20 + 10 + (NX_EVENT_TYPE_MAX - 1) + 9 <= NX_EVENT_WS_HEAD_MAX,
               "NX_EVENT_WS_HEAD_MAX too small");

/* Writes the wire heads of <ev> once it has its id: without printf, under the bus's lock. */
static void seal(nx_event_t *ev) {
    size_t type_len = strlen(ev->type), n = 0;
    put(ev->sse_head, &n, "id: ", 4);
    put_u64(ev->sse_head, &n, ev->id);
    put(ev->sse_head, &n, "\nevent: ", 8);
    put(ev->sse_head, &n, ev->type, type_len);
    put(ev->sse_head, &n, "\ndata: ", 7);
    ev->sse_head[n] = '\0';
    ev->sse_head_len = (uint16_t)n;
    char head[NX_EVENT_WS_HEAD_MAX];
    n = 0;
    put(head, &n, "{\"type\":\"event\",\"id\":", 21);
    put_u64(head, &n, ev->id);
    put(head, &n, ",\"event\":\"", 10);
    put(head, &n, ev->type, type_len);
    put(head, &n, "\",\"data\":", 9);
    ev->ws_head_len = (uint16_t)n;
    memcpy(ev->buf + NX_EVENT_WS_HEAD_MAX - n, head, n);
    /* A lazy event read before its push (only its owner can have) has the old head there. */
    nx_event_text_t *t = __atomic_load_n(&ev->text, __ATOMIC_ACQUIRE);
    if (t != NULL) memcpy(t->buf + NX_EVENT_WS_HEAD_MAX - n, head, n);
}

int nx_event_ring_init(nx_event_ring_t *r, uint32_t cap, size_t max_bytes, uint64_t first_id) {
    memset(r, 0, sizeof(*r));
    if (cap == 0 || first_id == 0) return -EINVAL;
    r->slots = calloc(cap, sizeof(*r->slots));
    if (r->slots == NULL) return -ENOMEM;
    r->cap = cap;
    r->max_bytes = max_bytes;
    r->first_id = first_id;
    r->last_id = first_id - 1;
    return 0;
}

void nx_event_ring_dispose(nx_event_ring_t *r) {
    if (r == NULL || r->slots == NULL) return;
    for (uint64_t id = r->first_id; r->count > 0 && id <= r->last_id; id++)
        nx_event_unref(r->slots[id % r->cap]);
    free(r->slots);
    r->slots = NULL;
    r->count = 0;
}

uint64_t nx_event_ring_push(nx_event_ring_t *r, nx_event_t *ev, nx_event_t **evicted) {
    nx_event_t *gone = NULL;
    size_t add = nx_event_bytes(ev);
    /* Make room: by count (the slot of the new id is the oldest's when full) and by bytes. */
    while (r->count > 0 && (r->count >= r->cap || r->bytes + add > r->max_bytes)) {
        nx_event_t *old = r->slots[r->first_id % r->cap];
        r->slots[r->first_id % r->cap] = NULL;
        r->first_id++;
        r->count--;
        r->bytes -= nx_event_bytes(old);
        r->evicted++;
        old->next = gone;
        gone = old;
    }
    ev->id = ++r->last_id;
    if (r->count == 0) r->first_id = ev->id;
    seal(ev);
    r->slots[ev->id % r->cap] = ev;
    r->count++;
    r->bytes += add;
    if (evicted != NULL) {
        *evicted = gone;
    } else {
        while (gone != NULL) {
            nx_event_t *next = gone->next;
            nx_event_unref(gone);
            gone = next;
        }
    }
    return ev->id;
}

nx_event_t *nx_event_ring_get(const nx_event_ring_t *r, uint64_t id) {
    if (r->count == 0 || id < r->first_id || id > r->last_id) return NULL;
    return r->slots[id % r->cap];
}

size_t nx_event_ring_pick(const nx_event_ring_t *r, const nx_event_pick_t *p, nx_event_t **out,
                          size_t cap) {
    if (r->count == 0) return 0;
    uint64_t from = (p->after < p->cursor ? p->after : p->cursor) + 1;
    if (from < r->first_id) from = r->first_id;
    size_t n = 0;
    for (uint64_t id = from; id <= r->last_id && n < cap; id++) {
        nx_event_t *ev = r->slots[id % r->cap];
        bool old = p->old_match != NULL && p->old_match(ev, p->old_filter);
        bool fresh = p->new_match != NULL && p->new_match(ev, p->new_filter);
        /* The old filter resumes after the cursor; the new one after <after>, minus what the
         * old one already sent. */
        bool take =
            (id > p->cursor && old) || (id > p->after && fresh && !(old && id <= p->cursor));
        if (!take) continue;
        nx_event_ref(ev);
        out[n++] = ev;
    }
    return n;
}

size_t nx_event_ring_since(const nx_event_ring_t *r, uint64_t after, nx_event_t **out, size_t cap) {
    if (r->count == 0) return 0;
    uint64_t from = after + 1 < r->first_id ? r->first_id : after + 1;
    size_t n = 0;
    for (uint64_t id = from; id <= r->last_id && n < cap; id++) {
        nx_event_t *ev = r->slots[id % r->cap];
        nx_event_ref(ev);
        out[n++] = ev;
    }
    return n;
}
