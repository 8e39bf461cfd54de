/* Events and the ring of recent events (see event_ring.h). An event is one allocation: the
 * struct, then room for the WebSocket head, the JSON data and the closing brace, so the WS
 * payload is contiguous without a second copy of the data, and the SSE form is the stored head
 * plus the same data. */
#include "event_ring.h"

#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

nx_event_t *nx_event_new(const char *type, const char *execution, const char *data, size_t len) {
    if (type == NULL || !type_valid(type) || (data == NULL && len > 0)) return NULL;
    /* One line of data: a CR or LF would split the SSE "data:" line. */
    if (len > 0 && (memchr(data, '\n', len) != NULL || memchr(data, '\r', len) != NULL))
        return NULL;
    nx_event_t *ev = malloc(sizeof(*ev) + NX_EVENT_WS_HEAD_MAX + len + 2);
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
    ev->data_len = len;
    char *d = ev->buf + NX_EVENT_WS_HEAD_MAX;
    if (len > 0) memcpy(d, data, len);
    d[len] = '}';
    d[len + 1] = '\0';
    return ev;
}

void nx_event_ref(nx_event_t *ev) {
    __atomic_add_fetch(&ev->refs, 1, __ATOMIC_RELAXED);
}

void nx_event_unref(nx_event_t *ev) {
    if (ev != NULL && __atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) == 0) free(ev);
}

/* Writes the heads that carry the id; the WS head is right-aligned against the data. */
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
