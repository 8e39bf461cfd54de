/* The per-session event log behind MCP Streamable HTTP resumability: every SSE event a session
 * sends gets a sequence number (its SSE id), and a client that reconnects with Last-Event-ID is
 * replayed what followed on that stream. Bounded by count and bytes; pure data, no I/O. */
#ifndef NX_ENGINE_MCP_EVENTS_H
#define NX_ENGINE_MCP_EVENTS_H

#include <stddef.h>
#include <stdint.h>

/* One sent event; owned by its log. <text> is a NUL-terminated copy of <len> bytes. */
typedef struct nx_mcp_event {
    uint64_t seq;    /* the SSE id it was sent with */
    uint32_t stream; /* the caller's name for the SSE stream it went out on */
    char *text;
    size_t len;
} nx_mcp_event_t;

/* Embedded in its session, which calls init and dispose. The ring holds seqs
 * next_seq - count .. next_seq - 1, oldest at <head>. */
typedef struct nx_mcp_event_log {
    nx_mcp_event_t *ring; /* cap slots, allocated by init */
    uint32_t cap, head, count;
    size_t bytes, max_bytes; /* text bytes kept, and their bound */
    uint64_t next_seq;
    uint64_t dropped; /* events evicted so far */
} nx_mcp_event_log_t;

/** Prepares <log> empty, keeping at most <cap> events (>= 1) and <max_bytes> bytes of text; the
 * first seq is 1. Returns 0, -EINVAL when <cap> is 0, or -ENOMEM. */
int nx_mcp_event_log_init(nx_mcp_event_log_t *log, uint32_t cap, size_t max_bytes);

/** Frees every event of <log> and its ring; <log> may be initialized again. NULL-safe. */
void nx_mcp_event_log_dispose(nx_mcp_event_log_t *log);

/** Records a copy of <text>/<len> sent on <stream>, evicting the oldest events while over either
 * bound (an event larger than max_bytes alone is still kept, as the only event). Returns its seq
 * (> 0, strictly increasing), or 0 when out of memory (the log is then unchanged). */
uint64_t nx_mcp_event_log_append(nx_mcp_event_log_t *log, uint32_t stream, const char *text,
                                 size_t len);

/** Sets *<stream> to the stream event <seq> was sent on and returns 0, or returns -ENOENT when
 * <seq> was never issued or has been evicted. */
int nx_mcp_event_log_stream_of(const nx_mcp_event_log_t *log, uint64_t seq, uint32_t *stream);

/* Called for each replayed event, oldest first; returns non-zero to stop the replay. The log must
 * not be changed from inside. */
typedef int (*nx_mcp_event_fn)(const nx_mcp_event_t *ev, void *arg);

/** Calls <fn>(event, <arg>) for every kept event of <stream> with seq > <after>, oldest first,
 * until <fn> returns non-zero; returns how many events were passed (the stopping one included). */
size_t nx_mcp_event_log_replay(const nx_mcp_event_log_t *log, uint32_t stream, uint64_t after,
                               nx_mcp_event_fn fn, void *arg);

/** Parses the Last-Event-ID value <p>/<n> as a seq this log could have issued: 1 to 20 decimal
 * digits, no sign, space or leading zero, > 0, fitting uint64. Returns 0 with *<seq>, or -EINVAL.
 */
int nx_mcp_event_id_parse(const char *p, size_t n, uint64_t *seq);

#endif
