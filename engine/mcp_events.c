/* MCP event log (see mcp_events.h): a ring of copied event texts. Seqs in the ring are
 * contiguous (every issued seq is appended, eviction takes the oldest), so a seq maps to its slot
 * by arithmetic and replay starts at the right slot without a search. */
#include "mcp_events.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int nx_mcp_event_log_init(nx_mcp_event_log_t *log, uint32_t cap, size_t max_bytes) {
    memset(log, 0, sizeof(*log));
    if (cap == 0) return -EINVAL;
    log->ring = calloc(cap, sizeof(*log->ring));
    if (log->ring == NULL) return -ENOMEM;
    log->cap = cap;
    log->max_bytes = max_bytes;
    log->next_seq = 1;
    return 0;
}

/* Frees the oldest event. */
static void evict_oldest(nx_mcp_event_log_t *log) {
    nx_mcp_event_t *ev = &log->ring[log->head];
    log->bytes -= ev->len;
    free(ev->text);
    memset(ev, 0, sizeof(*ev));
    log->head = (log->head + 1) % log->cap;
    log->count--;
    log->dropped++;
}

void nx_mcp_event_log_dispose(nx_mcp_event_log_t *log) {
    if (log == NULL) return;
    while (log->count > 0)
        evict_oldest(log);
    free(log->ring);
    memset(log, 0, sizeof(*log));
}

/* Whether <len> more bytes would pass max_bytes; <bytes> alone may already (an oversized event). */
static bool over_bytes(const nx_mcp_event_log_t *log, size_t len) {
    return log->bytes > log->max_bytes || len > log->max_bytes - log->bytes;
}

uint64_t nx_mcp_event_log_append(nx_mcp_event_log_t *log, uint32_t stream, const char *text,
                                 size_t len) {
    /* Copy first, so running out of memory costs no kept event. */
    if (len == SIZE_MAX) return 0;
    char *copy = malloc(len + 1);
    if (copy == NULL) return 0;
    if (len > 0) memcpy(copy, text, len);
    copy[len] = '\0';
    while (log->count > 0 && (log->count == log->cap || over_bytes(log, len)))
        evict_oldest(log);
    /* An oversized event now stands alone; its bytes may exceed max_bytes until it is evicted. */
    nx_mcp_event_t *ev = &log->ring[(log->head + log->count) % log->cap];
    ev->seq = log->next_seq++;
    ev->stream = stream;
    ev->text = copy;
    ev->len = len;
    log->count++;
    log->bytes += len;
    return ev->seq;
}

/* The slot of a kept <seq>, or -1. */
static int64_t slot_of(const nx_mcp_event_log_t *log, uint64_t seq) {
    uint64_t oldest = log->next_seq - log->count;
    if (seq < oldest || seq >= log->next_seq) return -1;
    return (int64_t)((log->head + (seq - oldest)) % log->cap);
}

int nx_mcp_event_log_stream_of(const nx_mcp_event_log_t *log, uint64_t seq, uint32_t *stream) {
    int64_t i = slot_of(log, seq);
    if (i < 0) return -ENOENT;
    *stream = log->ring[i].stream;
    return 0;
}

size_t nx_mcp_event_log_replay(const nx_mcp_event_log_t *log, uint32_t stream, uint64_t after,
                               nx_mcp_event_fn fn, void *arg) {
    uint64_t oldest = log->next_seq - log->count;
    uint64_t skip = after < oldest ? 0 : after - oldest + 1; /* kept events at or before <after> */
    if (skip > log->count) skip = log->count;
    size_t passed = 0;
    for (uint32_t k = (uint32_t)skip; k < log->count; k++) {
        const nx_mcp_event_t *ev = &log->ring[(log->head + k) % log->cap];
        if (ev->stream != stream) continue;
        passed++;
        if (fn(ev, arg) != 0) break;
    }
    return passed;
}

int nx_mcp_event_id_parse(const char *p, size_t n, uint64_t *seq) {
    if (n == 0 || n > 20 || p[0] == '0') return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -EINVAL;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -EINVAL;
        v = v * 10 + d;
    }
    *seq = v;
    return 0;
}
