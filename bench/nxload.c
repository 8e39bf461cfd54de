/* nxload: an HTTP/1.1 load generator on nexus's own io_uring loop (net/uring.h). Closed loop
 * (each connection keeps DEPTH requests outstanding) or open loop at a constant rate with
 * latency measured from the intended send time; results from a log-linear histogram. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "nexus/list.h"
#include "uring.h"

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

/* A run given only -n still stops by itself after this long. */
#define NXL_COUNT_ONLY_CAP_NS (60 * NS_PER_S)
/* Beyond duration + timeout, threads get this long before the process gives up on them. */
#define NXL_HARD_CAP_SLACK_NS (5 * NS_PER_S)
#define NXL_MAX_WAIT_MS 50
#define NXL_TIMEOUT_SCAN_NS (5 * NS_PER_MS)
#define NXL_RETRY_MIN_MS 10
#define NXL_RETRY_MAX_MS 500

/* ---- histogram: log-linear buckets in nanoseconds, exact below 2048 ns, then 1024 linear
 * sub-buckets per power of two (relative error <= 1/1024 = 0.1%: 4 us at 4-8 ms, fine enough
 * to tell apart overheads of tens of microseconds on a call of milliseconds), clamped at
 * 2^36 ns (68 s); 216 KiB per thread. */

#define HIST_SUB_BITS 10
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 36
#define HIST_BUCKETS (2 * HIST_SUB + (HIST_MAX_EXP - HIST_SUB_BITS - 1) * HIST_SUB)

/* Owned by one thread while it runs; merged by main afterwards. */
typedef struct nxl_hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max;
    double sum, sumsq;
} nxl_hist_t;

static unsigned hist_index(uint64_t v) {
    if (v < 2 * HIST_SUB) return (unsigned)v;
    if (v >= (1ull << HIST_MAX_EXP)) v = (1ull << HIST_MAX_EXP) - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = e - HIST_SUB_BITS;
    return 2 * HIST_SUB + (e - HIST_SUB_BITS - 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

/* The midpoint of bucket <i>: what a percentile landing in it reports. */
static uint64_t hist_value(unsigned i) {
    if (i < 2 * HIST_SUB) return i;
    unsigned j = i - 2 * HIST_SUB;
    unsigned e = j / HIST_SUB + HIST_SUB_BITS + 1;
    unsigned shift = e - HIST_SUB_BITS;
    uint64_t lo = (uint64_t)(j % HIST_SUB + HIST_SUB) << shift;
    return lo + ((1ull << shift) >> 1);
}

static void hist_reset(nxl_hist_t *h) {
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static inline void hist_record(nxl_hist_t *h, uint64_t v) {
    h->counts[hist_index(v)]++;
    h->total++;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    double d = (double)v;
    h->sum += d;
    h->sumsq += d * d;
}

static void hist_merge(nxl_hist_t *dst, const nxl_hist_t *src) {
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->sum += src->sum;
    dst->sumsq += src->sumsq;
}

static uint64_t hist_percentile(const nxl_hist_t *h, double pct) {
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)ceil(pct / 100.0 * (double)h->total);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_value(i);
            if (v > h->max) v = h->max;
            if (v < h->min) v = h->min;
            return v;
        }
    }
    return h->max;
}

/* ---- configuration ---- */

typedef enum nxl_err_kind {
    NXL_ERR_CONNECT,
    NXL_ERR_READ,
    NXL_ERR_WRITE,
    NXL_ERR_TIMEOUT,
    NXL_ERR_PARSE,
    NXL_ERR_CLOSED,
    NXL_ERR_COUNT,
} nxl_err_kind_t;

static const char *const nxl_err_names[NXL_ERR_COUNT] = {"connect", "read",  "write",
                                                         "timeout", "parse", "closed"};

/* Filled by main from the command line; read-only once threads start. */
typedef struct nxl_config {
    const char *url;
    char host[256]; /* Host header value, as written in the URL */
    const char *path;
    struct sockaddr_in addr;
    unsigned conns, threads, depth;
    uint64_t duration_ns; /* 0 = not given */
    uint64_t count;       /* 0 = not given */
    uint64_t warmup_ns;
    uint64_t gap_ns; /* --gap: closed loop, a connection waits this long after an answer */
    double rate;     /* req/s; 0 = closed loop */
    uint32_t timeout_ms;
    const char *method;
    bool head; /* responses carry no body */
    bool json, quiet;
    char *req;      /* <depth> copies of the request, back to back */
    size_t req_len; /* bytes of one copy */
    /* --conn-headers: one request set per header line; connection i sends set i % nvariants
     * (e.g. one MCP session per connection). Without it there is one set, req. */
    char **variants;
    size_t *variant_len;
    unsigned nvariants;
    /* --alt-path / --alt-body-file: every connection alternates this request with req, one
     * after the other, and its latencies go to a histogram of their own (paired runs: two
     * targets measured under the same conditions, request by request). */
    char *alt_req;
    size_t alt_req_len;
    size_t rbuf_size;
} nxl_config_t;

/* ---- per-thread state ---- */

typedef struct nxl_stats {
    uint64_t completed;
    uint64_t bytes_in, bytes_out;
    uint64_t status[600];
    uint64_t errors[NXL_ERR_COUNT];
    int last_errno[NXL_ERR_COUNT];
    uint64_t connects, reconnects;
    uint64_t unfinished;
    nxl_hist_t hist;
    uint64_t alt_completed; /* the alternate request's answers (not in completed) */
    nxl_hist_t alt_hist;
} nxl_stats_t;

typedef enum nxl_conn_state {
    NXL_CONN_IDLE,       /* no socket; waiting in the retry list or stopped */
    NXL_CONN_CONNECTING, /* connect (or its POLLOUT fallback) in flight */
    NXL_CONN_OPEN,       /* connected, a receive always armed */
    NXL_CONN_CLOSING,    /* cancelled; the last completion of its ops closes the socket */
} nxl_conn_state_t;

/* Incremental response parser states, one per byte-range kind. */
typedef enum nxl_parse_state {
    NXL_P_STATUS,
    NXL_P_HEADERS,
    NXL_P_BODY,     /* <remaining> bytes of Content-Length body */
    NXL_P_BODY_EOF, /* body runs until the peer closes */
    NXL_P_CHUNK_SIZE,
    NXL_P_CHUNK_DATA,
    NXL_P_CHUNK_CRLF,
    NXL_P_TRAILERS,
} nxl_parse_state_t;

typedef struct nxl_thread nxl_thread_t;

/* Owned by its thread (an array element). Outstanding requests sit in a ring of <depth> slots:
 * intended start (latency origin) and actual send time (timeout origin). */
typedef struct nxl_conn {
    nxl_thread_t *t;
    const char *req; /* <depth> copies of this connection's request */
    size_t req_len;
    int fd;
    nxl_conn_state_t state;
    nx_op_t op_connect, op_send, op_recv;
    unsigned ops; /* operations in flight */
    bool polling; /* connect finishing through POLLOUT */
    bool backoff; /* while closing: reconnect after a delay (the connect itself failed) */
    bool sending;
    size_t send_off, send_len;
    unsigned inflight, head;
    uint64_t *start_ns, *sent_ns;
    uint64_t alt_sent, alt_done; /* requests sent and answered, for the alternation */
    uint64_t last_answer_ns;     /* --gap: when the last answer came */
    nx_list_t link;              /* ready list (open loop) or retry list */
    uint64_t retry_at_ns;
    unsigned retry_ms;
    /* parser */
    nxl_parse_state_t ps;
    int status;
    bool keepalive, chunked, has_len;
    uint64_t remaining;
    char *rbuf;
    size_t rlen, rpos;
} nxl_conn_t;

struct nxl_thread {
    int id;
    unsigned first_conn; /* global index of conns[0] */
    const nxl_config_t *cfg;
    nx_loop_t *loop;
    pthread_t tid;
    nxl_conn_t *conns;
    unsigned nconns;
    nx_list_t ready;  /* open loop: connections that can take a request now */
    nx_list_t retry;  /* connections waiting to reconnect */
    nx_list_t gapped; /* --gap: connections waiting to send their next request */
    uint64_t budget;  /* requests this thread may still send (UINT64_MAX = no -n) */
    uint64_t outstanding;
    bool stopping, measuring, done;
    uint64_t t_measure, t_end, t_finish;
    uint64_t next_scan;
    /* open loop */
    uint64_t sched_t0;
    uint64_t due_idx, sent_idx, idx_limit;
    int tfd;
    bool timer_pending;
    uint64_t timer_buf;
    nx_op_t op_timer;
    int fatal;
    nxl_stats_t st;
};

static volatile sig_atomic_t g_stop;
static pthread_barrier_t g_barrier;
static uint64_t g_t0;
static char g_ring_mode[32] = "unknown";

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* ---- connection life ---- */

static void conn_connect(nxl_conn_t *c);
static void conn_top_up(nxl_conn_t *c, uint64_t now);

static void count_error(nxl_thread_t *t, nxl_err_kind_t kind, uint64_t n, int err) {
    if (!t->measuring) return;
    t->st.errors[kind] += n;
    if (err) t->st.last_errno[kind] = err;
}

static bool conn_ready_eligible(const nxl_conn_t *c) {
    return c->state == NXL_CONN_OPEN && !c->sending && c->inflight < c->t->cfg->depth;
}

static void conn_mark_ready(nxl_conn_t *c) {
    if (c->t->cfg->rate > 0 && conn_ready_eligible(c) && !nx_list_linked(&c->link))
        nx_list_insert_tail(&c->t->ready, &c->link);
}

/* Socket gone and no operation in flight: close it and plan the next connection. */
static void conn_finish_close(nxl_conn_t *c, bool backoff) {
    nxl_thread_t *t = c->t;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = NXL_CONN_IDLE;
    c->polling = false;
    /* a closed loop whose -n budget is spent needs no new connection */
    if (t->stopping || (t->cfg->rate == 0 && t->budget == 0)) return;
    if (backoff) {
        c->retry_ms = c->retry_ms ? c->retry_ms * 2 : NXL_RETRY_MIN_MS;
        if (c->retry_ms > NXL_RETRY_MAX_MS) c->retry_ms = NXL_RETRY_MAX_MS;
        c->retry_at_ns = now_ns() + (uint64_t)c->retry_ms * NS_PER_MS;
        if (nx_list_linked(&c->link)) nx_list_remove(&c->link);
        nx_list_insert_tail(&t->retry, &c->link);
        return;
    }
    if (t->measuring) t->st.reconnects++;
    conn_connect(c);
}

/* Drops the connection: its outstanding requests are lost as <kind> errors (at least one when
 * <always> says the failure itself is an error), then it reconnects. */
static void conn_fail(nxl_conn_t *c, nxl_err_kind_t kind, bool always, int err) {
    nxl_thread_t *t = c->t;
    if (c->state == NXL_CONN_CLOSING || c->state == NXL_CONN_IDLE) return;
    uint64_t lost = c->inflight;
    if (lost > 0 || always) count_error(t, kind, lost > 0 ? lost : 1, err);
    t->outstanding -= c->inflight;
    c->inflight = 0;
    c->head = 0;
    c->alt_done = c->alt_sent; /* what was lost is not answered: stay in step */
    if (nx_list_linked(&c->link)) nx_list_remove(&c->link);
    c->backoff = kind == NXL_ERR_CONNECT;
    c->state = NXL_CONN_CLOSING;
    if (!c->backoff) c->retry_ms = 0;
    if (c->ops == 0) {
        conn_finish_close(c, c->backoff);
        return;
    }
    /* the last completion sees CLOSING and calls conn_finish_close */
    nx_loop_cancel_fd(t->loop, c->fd);
}

static void conn_op_done(nxl_conn_t *c) {
    c->ops--;
    if (c->state == NXL_CONN_CLOSING && c->ops == 0) conn_finish_close(c, c->backoff);
}

static void parser_reset(nxl_conn_t *c) {
    c->ps = NXL_P_STATUS;
    c->rlen = c->rpos = 0;
}

static void conn_arm_recv(nxl_conn_t *c) {
    if (c->rlen == c->t->cfg->rbuf_size) {
        conn_fail(c, NXL_ERR_PARSE, true, 0); /* one header line fills the whole buffer */
        return;
    }
    int rc = nx_loop_recv(c->t->loop, &c->op_recv, c->fd, c->rbuf + c->rlen,
                          c->t->cfg->rbuf_size - c->rlen);
    if (rc < 0) {
        conn_fail(c, NXL_ERR_READ, true, -rc);
        return;
    }
    c->ops++;
}

static void conn_start_send(nxl_conn_t *c) {
    int rc = nx_loop_send(c->t->loop, &c->op_send, c->fd, c->req + c->send_off,
                          c->send_len - c->send_off);
    if (rc < 0) {
        conn_fail(c, NXL_ERR_WRITE, true, -rc);
        return;
    }
    c->ops++;
    c->sending = true;
}

/* Queues <k> requests whose latency origins are <start>[0..k) (NULL = <now> for all). */
static void conn_send_requests(nxl_conn_t *c, unsigned k, const uint64_t *start, uint64_t now) {
    const nxl_config_t *cfg = c->t->cfg;
    for (unsigned i = 0; i < k; i++) {
        unsigned slot = (c->head + c->inflight + i) % cfg->depth;
        c->start_ns[slot] = start ? start[i] : now;
        c->sent_ns[slot] = now;
    }
    if (cfg->alt_req != NULL) { /* depth 1: one request at a time */
        bool alt = c->alt_sent++ % 2 == 1;
        c->req = alt ? cfg->alt_req : cfg->req;
        c->req_len = alt ? cfg->alt_req_len : cfg->req_len;
    }
    c->inflight += k;
    c->t->outstanding += k;
    c->send_off = 0;
    c->send_len = (size_t)k * c->req_len;
    conn_start_send(c);
}

/* Closed loop: keep <depth> requests outstanding while the budget lasts. */
static void conn_top_up(nxl_conn_t *c, uint64_t now) {
    nxl_thread_t *t = c->t;
    if (t->cfg->rate > 0 || t->stopping || c->state != NXL_CONN_OPEN || c->sending) return;
    if (t->cfg->gap_ns > 0 && c->last_answer_ns != 0 && now < c->last_answer_ns + t->cfg->gap_ns) {
        /* Not yet: the thread's loop sends it when the gap is over (run_gapped). */
        if (!nx_list_linked(&c->link)) nx_list_insert_tail(&t->gapped, &c->link);
        return;
    }
    uint64_t k = t->cfg->depth - c->inflight;
    if (k > t->budget) k = t->budget;
    if (k == 0) return;
    if (t->budget != UINT64_MAX) t->budget -= k;
    conn_send_requests(c, (unsigned)k, NULL, now);
}

static void on_connect(nx_op_t *op, int res, unsigned flags, unsigned buf_id);

static void conn_connect(nxl_conn_t *c) {
    nxl_thread_t *t = c->t;
    if (nx_list_linked(&c->link)) nx_list_remove(&c->link);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        count_error(t, NXL_ERR_CONNECT, 1, errno);
        c->state = NXL_CONN_CLOSING;
        conn_finish_close(c, true);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->state = NXL_CONN_CONNECTING;
    c->polling = false;
    c->sending = false;
    c->inflight = c->head = 0;
    parser_reset(c);
    int rc = nx_loop_connect(t->loop, &c->op_connect, fd, (const struct sockaddr *)&t->cfg->addr,
                             sizeof(t->cfg->addr), t->cfg->timeout_ms);
    if (rc < 0) {
        conn_fail(c, NXL_ERR_CONNECT, true, -rc);
        return;
    }
    c->ops++;
}

static void on_connect(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nxl_conn_t *c = nx_container_of(op, nxl_conn_t, op_connect);
    nxl_thread_t *t = c->t;
    if (c->state == NXL_CONN_CLOSING) {
        conn_op_done(c);
        return;
    }
    c->ops--;
    if (c->polling && res >= 0) {
        /* POLLOUT fallback: the verdict is the socket error */
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        res = -err;
    } else if (res == -EINPROGRESS || res == -EALREADY || res == -EAGAIN) {
        /* a kernel that honours O_NONBLOCK on connect: wait for writability instead */
        c->polling = true;
        int rc = nx_loop_poll(t->loop, &c->op_connect, c->fd, POLLOUT);
        if (rc < 0) {
            conn_fail(c, NXL_ERR_CONNECT, true, -rc);
            return;
        }
        c->ops++;
        return;
    }
    if (res < 0) {
        conn_fail(c, NXL_ERR_CONNECT, true, res == -ECANCELED ? ETIMEDOUT : -res);
        return;
    }
    c->polling = false;
    c->state = NXL_CONN_OPEN;
    c->retry_ms = 0;
    t->st.connects++;
    conn_arm_recv(c);
    if (c->state != NXL_CONN_OPEN) return;
    conn_top_up(c, now_ns());
    conn_mark_ready(c);
}

static void on_send(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nxl_conn_t *c = nx_container_of(op, nxl_conn_t, op_send);
    nxl_thread_t *t = c->t;
    c->sending = false;
    if (c->state == NXL_CONN_CLOSING) {
        conn_op_done(c);
        return;
    }
    c->ops--;
    if (res == -EAGAIN || res == -EINTR) res = 0;
    if (res < 0) {
        conn_fail(c, NXL_ERR_WRITE, true, -res);
        return;
    }
    if (t->measuring) t->st.bytes_out += (uint64_t)res;
    c->send_off += (size_t)res;
    if (c->send_off < c->send_len) {
        conn_start_send(c);
        return;
    }
    conn_top_up(c, now_ns());
    conn_mark_ready(c);
}

/* ---- response parsing ---- */

static bool header_is(const char *line, size_t len, const char *name, size_t nlen) {
    return len > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0;
}

/* Case-insensitive search for <tok> in [p, p+len). */
static bool contains_token(const char *p, size_t len, const char *tok) {
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= len; i++)
        if (strncasecmp(p + i, tok, tl) == 0) return true;
    return false;
}

static int parse_status_line(nxl_conn_t *c, const char *p, size_t len) {
    /* "HTTP/1.x SSS reason" */
    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') return NXL_ERR_PARSE;
    if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
        return NXL_ERR_PARSE;
    if (len > 12 && p[12] != ' ') return NXL_ERR_PARSE;
    c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    c->keepalive = p[7] == '1';
    c->chunked = c->has_len = false;
    c->remaining = 0;
    return -1;
}

static int parse_header_line(nxl_conn_t *c, const char *p, size_t len) {
    if (header_is(p, len, "content-length", 14)) {
        const char *v = p + 15, *end = p + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        uint64_t n = 0;
        const char *d = v;
        while (d < end && *d >= '0' && *d <= '9') {
            if (n > (UINT64_MAX - 9) / 10) return NXL_ERR_PARSE;
            n = n * 10 + (uint64_t)(*d++ - '0');
        }
        if (d == v) return NXL_ERR_PARSE;
        c->remaining = n;
        c->has_len = true;
    } else if (header_is(p, len, "transfer-encoding", 17)) {
        if (contains_token(p + 18, len - 18, "chunked")) c->chunked = true;
    } else if (header_is(p, len, "connection", 10)) {
        if (contains_token(p + 11, len - 11, "close"))
            c->keepalive = false;
        else if (contains_token(p + 11, len - 11, "keep-alive"))
            c->keepalive = true;
    }
    return -1;
}

/* A complete response for the oldest outstanding request. Returns false when the connection
 * was dropped (peer asked to close). */
static bool response_done(nxl_conn_t *c, uint64_t now) {
    nxl_thread_t *t = c->t;
    unsigned slot = c->head;
    c->head = (c->head + 1) % t->cfg->depth;
    c->inflight--;
    t->outstanding--;
    bool alt = t->cfg->alt_req != NULL && c->alt_done++ % 2 == 1;
    c->last_answer_ns = now;
    if (t->measuring) {
        uint64_t start = c->start_ns[slot];
        hist_record(alt ? &t->st.alt_hist : &t->st.hist, now > start ? now - start : 0);
        if (alt)
            t->st.alt_completed++;
        else
            t->st.completed++;
        t->st.status[c->status]++;
    }
    c->ps = NXL_P_STATUS;
    if (!c->keepalive) {
        /* the peer closes after this one: anything still outstanding is lost */
        conn_fail(c, NXL_ERR_CLOSED, false, 0);
        return false;
    }
    return true;
}

/* Consumes [rpos, rlen). Returns -1 when more input is needed, or an error kind. Stops early
 * (returning -2) if the connection was dropped. */
static int conn_parse(nxl_conn_t *c, uint64_t now) {
    while (c->rpos < c->rlen) {
        char *p = c->rbuf + c->rpos;
        size_t avail = c->rlen - c->rpos;
        if (c->ps == NXL_P_BODY || c->ps == NXL_P_CHUNK_DATA) {
            size_t n = avail < c->remaining ? avail : (size_t)c->remaining;
            c->rpos += n;
            c->remaining -= n;
            if (c->remaining > 0) return -1;
            if (c->ps == NXL_P_CHUNK_DATA) {
                c->ps = NXL_P_CHUNK_CRLF;
                continue;
            }
            if (!response_done(c, now)) return -2;
            continue;
        }
        if (c->ps == NXL_P_BODY_EOF) {
            c->rpos = c->rlen;
            return -1;
        }
        /* every other state consumes one line */
        char *nl = memchr(p, '\n', avail);
        if (nl == NULL) return -1;
        size_t len = (size_t)(nl - p);
        c->rpos += len + 1;
        if (len > 0 && p[len - 1] == '\r') len--;
        int rc = -1;
        switch (c->ps) {
        case NXL_P_STATUS:
            if (c->inflight == 0) return NXL_ERR_PARSE; /* a response nobody asked for */
            rc = parse_status_line(c, p, len);
            if (rc < 0) c->ps = NXL_P_HEADERS;
            break;
        case NXL_P_HEADERS:
            if (len > 0) {
                rc = parse_header_line(c, p, len);
                break;
            }
            if (c->status < 200) {
                c->ps = NXL_P_STATUS; /* interim response: the real one follows */
            } else if (c->status == 204 || c->status == 304 || c->t->cfg->head) {
                if (!response_done(c, now)) return -2;
            } else if (c->chunked) {
                c->ps = NXL_P_CHUNK_SIZE;
            } else if (c->has_len && c->remaining > 0) {
                c->ps = NXL_P_BODY;
            } else if (c->has_len) {
                if (!response_done(c, now)) return -2;
            } else {
                c->ps = NXL_P_BODY_EOF;
                c->keepalive = false;
            }
            break;
        case NXL_P_CHUNK_SIZE: {
            uint64_t n = 0;
            size_t i = 0;
            for (; i < len; i++) {
                char ch = p[i];
                int d = ch >= '0' && ch <= '9'   ? ch - '0'
                        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                        : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                 : -1;
                if (d < 0) break;
                if (n >> 59) return NXL_ERR_PARSE;
                n = n * 16 + (uint64_t)d;
            }
            if (i == 0 || (i < len && p[i] != ';' && p[i] != ' ' && p[i] != '\t'))
                return NXL_ERR_PARSE;
            c->remaining = n;
            c->ps = n == 0 ? NXL_P_TRAILERS : NXL_P_CHUNK_DATA;
            break;
        }
        case NXL_P_CHUNK_CRLF:
            if (len != 0) return NXL_ERR_PARSE;
            c->ps = NXL_P_CHUNK_SIZE;
            break;
        case NXL_P_TRAILERS:
            if (len == 0 && !response_done(c, now)) return -2;
            break;
        default:
            return NXL_ERR_PARSE;
        }
        if (rc >= 0) return rc;
    }
    return -1;
}

static void on_recv(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nxl_conn_t *c = nx_container_of(op, nxl_conn_t, op_recv);
    nxl_thread_t *t = c->t;
    if (c->state == NXL_CONN_CLOSING) {
        conn_op_done(c);
        return;
    }
    c->ops--;
    uint64_t now = now_ns();
    if (res == -EAGAIN || res == -EINTR || res == -ENOBUFS) {
        conn_arm_recv(c);
        return;
    }
    if (res < 0) {
        conn_fail(c, NXL_ERR_READ, true, -res);
        return;
    }
    if (res == 0) {
        /* peer closed: ends a read-until-close body, loses anything else outstanding */
        if (c->ps == NXL_P_BODY_EOF && c->inflight > 0) {
            c->keepalive = false;
            response_done(c, now);
            return;
        }
        conn_fail(c, NXL_ERR_CLOSED, false, 0);
        return;
    }
    if (t->measuring) t->st.bytes_in += (uint64_t)res;
    c->rlen += (size_t)res;
    int rc = conn_parse(c, now);
    if (rc == -2) return;
    if (rc >= 0) {
        conn_fail(c, (nxl_err_kind_t)rc, true, 0);
        return;
    }
    /* keep an unfinished line, drop everything consumed */
    if (c->rpos == c->rlen) {
        c->rpos = c->rlen = 0;
    } else if (c->rpos > 0) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
        c->rlen -= c->rpos;
        c->rpos = 0;
    }
    conn_arm_recv(c);
    if (c->state != NXL_CONN_OPEN) return;
    conn_top_up(c, now);
    conn_mark_ready(c);
}

/* ---- open loop: intended send times t0 + i/R, interleaved across threads ---- */

static uint64_t intended_ns(const nxl_thread_t *t, uint64_t idx) {
    const nxl_config_t *cfg = t->cfg;
    double global = (double)t->id + (double)idx * (double)cfg->threads;
    return t->sched_t0 + (uint64_t)(global * 1e9 / cfg->rate);
}

static void open_dispatch(nxl_thread_t *t, uint64_t now) {
    const nxl_config_t *cfg = t->cfg;
    while (t->due_idx < t->idx_limit && intended_ns(t, t->due_idx) <= now)
        t->due_idx++;
    uint64_t starts[64];
    while (t->sent_idx < t->due_idx && !nx_list_empty(&t->ready)) {
        nxl_conn_t *c = nx_container_of(nx_list_pop_head(&t->ready), nxl_conn_t, link);
        uint64_t k = cfg->depth - c->inflight;
        if (k > t->due_idx - t->sent_idx) k = t->due_idx - t->sent_idx;
        if (k > 64) k = 64;
        for (unsigned i = 0; i < k; i++)
            starts[i] = intended_ns(t, t->sent_idx + i);
        t->sent_idx += k;
        conn_send_requests(c, (unsigned)k, starts, now);
    }
}

static void on_timer(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nxl_thread_t *t = nx_container_of(op, nxl_thread_t, op_timer);
    t->timer_pending = false;
}

/* Wakes the loop at the next intended send time, below the millisecond run_once resolution. */
static void open_arm_timer(nxl_thread_t *t) {
    if (t->timer_pending || t->tfd < 0 || t->due_idx >= t->idx_limit) return;
    uint64_t at = intended_ns(t, t->due_idx);
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(at / NS_PER_S);
    its.it_value.tv_nsec = (long)(at % NS_PER_S);
    if (timerfd_settime(t->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) return;
    if (nx_loop_read(t->loop, &t->op_timer, t->tfd, &t->timer_buf, sizeof(t->timer_buf)) == 0)
        t->timer_pending = true;
}

/* ---- thread ---- */

static void scan_timeouts(nxl_thread_t *t, uint64_t now) {
    uint64_t limit = (uint64_t)t->cfg->timeout_ms * NS_PER_MS;
    for (unsigned i = 0; i < t->nconns; i++) {
        nxl_conn_t *c = &t->conns[i];
        if (c->state == NXL_CONN_OPEN && c->inflight > 0 && now - c->sent_ns[c->head] > limit)
            conn_fail(c, NXL_ERR_TIMEOUT, true, ETIMEDOUT);
    }
}

/* Sends the next request of every connection whose --gap is over; returns when the next one
 * is (UINT64_MAX: none waits). */
static uint64_t run_gapped(nxl_thread_t *t, uint64_t now) {
    uint64_t next = UINT64_MAX;
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &t->gapped) {
        nxl_conn_t *c = nx_container_of(pos, nxl_conn_t, link);
        uint64_t due = c->last_answer_ns + t->cfg->gap_ns;
        if (due <= now || c->state != NXL_CONN_OPEN) {
            nx_list_remove(&c->link);
            conn_top_up(c, now);
        } else if (due < next) {
            next = due;
        }
    }
    return next;
}

static void run_retries(nxl_thread_t *t, uint64_t now) {
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &t->retry) {
        nxl_conn_t *c = nx_container_of(pos, nxl_conn_t, link);
        if (c->retry_at_ns <= now) {
            nx_list_remove(&c->link);
            conn_connect(c);
        }
    }
}

static void start_measuring(nxl_thread_t *t, uint64_t now) {
    nxl_stats_t *st = &t->st;
    uint64_t connects = st->connects; /* connections opened in warmup still serve the run */
    memset(st, 0, sizeof(*st));
    st->connects = connects;
    hist_reset(&st->hist);
    hist_reset(&st->alt_hist);
    t->measuring = true;
    t->t_measure = now;
    if (t->cfg->count) {
        uint64_t share = t->cfg->count / t->cfg->threads +
                         ((uint64_t)t->id < t->cfg->count % t->cfg->threads ? 1 : 0);
        if (t->cfg->rate > 0)
            t->idx_limit = t->sent_idx + share;
        else
            t->budget = share;
    }
}

static int thread_setup(nxl_thread_t *t) {
    const nxl_config_t *cfg = t->cfg;
    unsigned entries = 256;
    while (entries < t->nconns * 3 + 16 && entries < 32768)
        entries *= 2;
    nx_loop_opts_t opts = {.entries = entries, .buf_count = 0, .buf_size = 0};
    int rc = nx_loop_new(&opts, &t->loop);
    if (rc < 0) return rc;
    nx_list_init(&t->ready);
    nx_list_init(&t->retry);
    nx_list_init(&t->gapped);
    t->tfd = -1;
    if (cfg->rate > 0) {
        t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (t->tfd < 0) return -errno;
        t->op_timer.cb = on_timer;
    }
    t->conns = calloc(t->nconns, sizeof(*t->conns));
    if (t->conns == NULL) return -ENOMEM;
    for (unsigned i = 0; i < t->nconns; i++) {
        nxl_conn_t *c = &t->conns[i];
        c->t = t;
        c->req = cfg->req;
        c->req_len = cfg->req_len;
        if (cfg->nvariants > 0) {
            unsigned v = (t->first_conn + i) % cfg->nvariants;
            c->req = cfg->variants[v];
            c->req_len = cfg->variant_len[v];
        }
        c->fd = -1;
        c->op_connect.cb = on_connect;
        c->op_send.cb = on_send;
        c->op_recv.cb = on_recv;
        nx_list_init(&c->link);
        c->rbuf = malloc(cfg->rbuf_size);
        c->start_ns = calloc(cfg->depth, sizeof(uint64_t));
        c->sent_ns = calloc(cfg->depth, sizeof(uint64_t));
        if (c->rbuf == NULL || c->start_ns == NULL || c->sent_ns == NULL) return -ENOMEM;
    }
    return 0;
}

static void thread_teardown(nxl_thread_t *t) {
    nx_loop_free(t->loop); /* abandons what is in flight; no callback runs after this */
    t->loop = NULL;
    for (unsigned i = 0; t->conns && i < t->nconns; i++) {
        nxl_conn_t *c = &t->conns[i];
        if (c->fd >= 0) close(c->fd);
        free(c->rbuf);
        free(c->start_ns);
        free(c->sent_ns);
    }
    free(t->conns);
    t->conns = NULL;
    if (t->tfd >= 0) close(t->tfd);
    t->tfd = -1;
}

static void *thread_main(void *arg) {
    nxl_thread_t *t = arg;
    const nxl_config_t *cfg = t->cfg;
    t->fatal = thread_setup(t);
    if (t->id == 0 && t->loop)
        snprintf(g_ring_mode, sizeof(g_ring_mode), "%s", nx_loop_mode(t->loop));
    pthread_barrier_wait(&g_barrier);
    if (t->fatal < 0 || g_stop) {
        t->done = true;
        return NULL;
    }
    t->budget = UINT64_MAX;
    t->idx_limit = UINT64_MAX;
    t->sched_t0 = g_t0;
    uint64_t measure_at = g_t0 + cfg->warmup_ns;
    t->t_end = measure_at + cfg->duration_ns;
    hist_reset(&t->st.hist);
    hist_reset(&t->st.alt_hist);
    uint64_t now = now_ns();
    if (cfg->warmup_ns == 0) start_measuring(t, now);
    for (unsigned i = 0; i < t->nconns; i++)
        conn_connect(&t->conns[i]);
    t->next_scan = now + NXL_TIMEOUT_SCAN_NS;
    for (;;) {
        now = now_ns();
        if (g_stop || now >= t->t_end) break;
        if (!t->measuring && now >= measure_at) start_measuring(t, now);
        if (t->measuring && cfg->count && t->outstanding == 0 &&
            (cfg->rate > 0 ? t->sent_idx >= t->idx_limit : t->budget == 0))
            break;
        if (cfg->rate > 0) {
            open_dispatch(t, now);
            open_arm_timer(t);
        }
        if (now >= t->next_scan) {
            scan_timeouts(t, now);
            t->next_scan = now + NXL_TIMEOUT_SCAN_NS;
        }
        if (!nx_list_empty(&t->retry)) run_retries(t, now);
        uint64_t wake = t->t_end;
        if (!nx_list_empty(&t->gapped)) {
            uint64_t due = run_gapped(t, now);
            if (due < wake) wake = due;
        }
        if (!t->measuring && measure_at < wake) wake = measure_at;
        if (!nx_list_empty(&t->retry)) {
            uint64_t soon = now + NXL_RETRY_MIN_MS * NS_PER_MS;
            if (soon < wake) wake = soon;
        }
        int64_t wait_ms = (int64_t)((wake - now + NS_PER_MS - 1) / NS_PER_MS);
        if (wait_ms > NXL_MAX_WAIT_MS) wait_ms = NXL_MAX_WAIT_MS;
        int rc = nx_loop_run_once(t->loop, wait_ms);
        if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN) {
            t->fatal = rc;
            break;
        }
    }
    t->stopping = true;
    t->t_finish = now_ns();
    if (t->t_finish > t->t_end) t->t_finish = t->t_end;
    if (!t->measuring) t->t_measure = t->t_finish;
    if (cfg->rate > 0)
        t->st.unfinished = t->outstanding + (t->due_idx - t->sent_idx);
    else
        t->st.unfinished = t->outstanding;
    thread_teardown(t);
    t->done = true;
    return NULL;
}

/* ---- command line ---- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: nxload [options] http://127.0.0.1:PORT/path\n"
            "  -c N            connections (default 64)\n"
            "  -d DURATION     run time, e.g. 10s, 500ms, 2m (default 10s unless -n)\n"
            "  -n COUNT        total requests (with -d: whichever comes first; alone: 60 s cap)\n"
            "  -R RATE         open loop at RATE req/s, latency from the intended send time\n"
            "                  (default: closed loop)\n"
            "  -p DEPTH        pipelined requests per connection (default 1)\n"
            "  -t THREADS      threads, each with its own ring and share of connections "
            "(default 1)\n"
            "  -m METHOD       request method (default GET, POST with a body)\n"
            "  -H 'Name: v'    extra request header (repeatable)\n"
            "  -b BODY         request body\n"
            "  --body-file F   request body from file F\n"
            "  --conn-headers F  one more header per connection, round-robin over the lines\n"
            "                  of F (e.g. a distinct Mcp-Session-Id for each connection)\n"
            "  --alt-path P    alternate every request with one to path P (same host), its\n"
            "                  latencies reported apart (\"alt\" in --json); closed loop, -p 1\n"
            "  --alt-body-file F  the alternate request's body (default: the same body)\n"
            "  --gap DUR       closed loop: wait DUR after each answer before the next request\n"
            "                  (no request meets work the server does after the last answer)\n"
            "  --warmup DUR    load for DUR before recording\n"
            "  --timeout MS    per-request and connect timeout (default 2000)\n"
            "  --json          print one JSON object with the results on stdout\n"
            "  -q              print a one-line summary only\n"
            "exit: 0 ok, 1 no 2xx/3xx response, 2 usage error\n");
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nxload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(nxload -h for usage)\n", stderr);
    va_end(ap);
    exit(2);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        die_usage("%s: expected an integer in [%" PRIu64 ", %" PRIu64 "], got '%s'", opt, min, max,
                  s);
    return v;
}

/* "10s", "500ms", "250us", "2m", "1h" or plain seconds; fractions allowed. */
static uint64_t parse_duration(const char *opt, const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0)) die_usage("%s: bad duration '%s'", opt, s);
    double mult;
    if (*end == 0 || strcmp(end, "s") == 0)
        mult = 1e9;
    else if (strcmp(end, "ms") == 0)
        mult = 1e6;
    else if (strcmp(end, "us") == 0)
        mult = 1e3;
    else if (strcmp(end, "m") == 0)
        mult = 60e9;
    else if (strcmp(end, "h") == 0)
        mult = 3600e9;
    else
        die_usage("%s: bad duration unit in '%s' (use ms, s, m, h)", opt, s);
    double ns = v * mult;
    if (ns > 30.0 * 24 * 3600 * 1e9) die_usage("%s: duration '%s' is too long", opt, s);
    return (uint64_t)ns;
}

static void parse_url(nxl_config_t *cfg, const char *url) {
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        if (strncmp(p, "https://", 8) == 0) die_usage("TLS is not supported: '%s'", url);
        die_usage("URL must start with http://, got '%s'", url);
    }
    p += 7;
    const char *slash = strchr(p, '/');
    size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
    if (hlen == 0 || hlen >= sizeof(cfg->host)) die_usage("bad host in URL '%s'", url);
    memcpy(cfg->host, p, hlen);
    cfg->host[hlen] = 0;
    cfg->path = slash ? slash : "/";
    char name[256];
    unsigned port = 80;
    const char *colon = strrchr(cfg->host, ':');
    size_t nlen = colon ? (size_t)(colon - cfg->host) : hlen;
    memcpy(name, cfg->host, nlen);
    name[nlen] = 0;
    if (colon) port = (unsigned)parse_u64("URL port", colon + 1, 1, 65535);
    memset(&cfg->addr, 0, sizeof(cfg->addr));
    cfg->addr.sin_family = AF_INET;
    cfg->addr.sin_port = htons((uint16_t)port);
    if (strcmp(name, "localhost") == 0) strcpy(name, "127.0.0.1");
    if (inet_pton(AF_INET, name, &cfg->addr.sin_addr) != 1)
        die_usage("host must be an IPv4 address such as 127.0.0.1, got '%s'", name);
    for (const char *q = cfg->path; *q; q++)
        if (*q <= ' ' || *q == 0x7f) die_usage("URL path contains a space or control byte");
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) die_usage("--body-file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) < 0 || !S_ISREG(sb.st_mode))
        die_usage("--body-file %s: not a regular file", path);
    char *data = malloc((size_t)sb.st_size + 1);
    if (data == NULL) die_usage("--body-file %s: out of memory", path);
    size_t n = fread(data, 1, (size_t)sb.st_size, f);
    fclose(f);
    if (n != (size_t)sb.st_size) die_usage("--body-file %s: short read", path);
    data[n] = '\0'; /* for the line-oriented readers */
    *len = n;
    return data;
}

/* Builds <depth> copies of the request with <hdrs> plus <extra> (NULL or one header line);
 * returns them, one copy's length in <*len>. */
static char *build_request(nxl_config_t *cfg, const char **hdrs, unsigned nhdrs, const char *extra,
                           const char *body, size_t body_len, bool have_body, size_t *len) {
    size_t cap = strlen(cfg->method) + strlen(cfg->path) + strlen(cfg->host) + 64 + body_len +
                 (extra ? strlen(extra) + 2 : 0);
    for (unsigned i = 0; i < nhdrs; i++)
        cap += strlen(hdrs[i]) + 2;
    char *one = malloc(cap);
    if (one == NULL) die_usage("out of memory");
    size_t n = (size_t)snprintf(one, cap, "%s %s HTTP/1.1\r\n", cfg->method, cfg->path);
    bool user_host = false, user_len = false;
    for (unsigned i = 0; i < nhdrs; i++) {
        if (strncasecmp(hdrs[i], "host:", 5) == 0) user_host = true;
        if (strncasecmp(hdrs[i], "content-length:", 15) == 0) user_len = true;
    }
    if (!user_host) n += (size_t)snprintf(one + n, cap - n, "Host: %s\r\n", cfg->host);
    for (unsigned i = 0; i < nhdrs; i++)
        n += (size_t)snprintf(one + n, cap - n, "%s\r\n", hdrs[i]);
    if (extra != NULL) n += (size_t)snprintf(one + n, cap - n, "%s\r\n", extra);
    if (have_body && !user_len)
        n += (size_t)snprintf(one + n, cap - n, "Content-Length: %zu\r\n", body_len);
    n += (size_t)snprintf(one + n, cap - n, "\r\n");
    if (body_len) memcpy(one + n, body, body_len);
    n += body_len;
    char *all = malloc(n * cfg->depth);
    if (all == NULL) die_usage("out of memory for %u request copies", cfg->depth);
    for (unsigned i = 0; i < cfg->depth; i++)
        memcpy(all + (size_t)i * n, one, n);
    free(one);
    *len = n;
    return all;
}

/* --conn-headers FILE: a request set per non-empty line ("Name: value"). */
static void build_variants(nxl_config_t *cfg, const char *file, const char **hdrs, unsigned nhdrs,
                           const char *body, size_t body_len, bool have_body) {
    size_t flen = 0;
    char *text = read_file(file, &flen);
    unsigned cap = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        size_t l = strlen(line);
        if (l > 0 && line[l - 1] == '\r') line[--l] = '\0';
        if (l == 0) continue;
        if (strchr(line, ':') == NULL)
            die_usage("--conn-headers: expected 'Name: value', got '%s'", line);
        if (cfg->nvariants == cap) {
            cap = cap ? cap * 2 : 16;
            cfg->variants = realloc(cfg->variants, cap * sizeof(char *));
            cfg->variant_len = realloc(cfg->variant_len, cap * sizeof(size_t));
            if (cfg->variants == NULL || cfg->variant_len == NULL) die_usage("out of memory");
        }
        cfg->variants[cfg->nvariants] = build_request(cfg, hdrs, nhdrs, line, body, body_len,
                                                      have_body, &cfg->variant_len[cfg->nvariants]);
        cfg->nvariants++;
    }
    free(text);
    if (cfg->nvariants == 0) die_usage("--conn-headers %s: no header lines", file);
}

enum {
    OPT_BODY_FILE = 256,
    OPT_WARMUP,
    OPT_TIMEOUT,
    OPT_JSON,
    OPT_CONN_HEADERS,
    OPT_ALT_PATH,
    OPT_ALT_BODY_FILE,
    OPT_GAP
};

static void parse_args(nxl_config_t *cfg, int argc, char **argv) {
    static const struct option longopts[] = {
        {"body-file", required_argument, NULL, OPT_BODY_FILE},
        {"conn-headers", required_argument, NULL, OPT_CONN_HEADERS},
        {"alt-path", required_argument, NULL, OPT_ALT_PATH},
        {"alt-body-file", required_argument, NULL, OPT_ALT_BODY_FILE},
        {"gap", required_argument, NULL, OPT_GAP},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {"connections", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'R'},
        {"pipeline", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},
        {"method", required_argument, NULL, 'm'},
        {"header", required_argument, NULL, 'H'},
        {"body", required_argument, NULL, 'b'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    const char **hdrs = calloc((size_t)argc, sizeof(char *));
    unsigned nhdrs = 0;
    const char *body = NULL, *body_file = NULL, *conn_headers = NULL;
    const char *alt_path = NULL, *alt_body_file = NULL;
    cfg->conns = 64;
    cfg->threads = 1;
    cfg->depth = 1;
    cfg->timeout_ms = 2000;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":c:d:n:R:p:t:m:H:b:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cfg->conns = (unsigned)parse_u64("-c", optarg, 1, 100000);
            break;
        case 'd':
            cfg->duration_ns = parse_duration("-d", optarg);
            break;
        case 'n':
            cfg->count = parse_u64("-n", optarg, 1, UINT64_MAX / 2);
            break;
        case 'R': {
            char *end;
            cfg->rate = strtod(optarg, &end);
            if (end == optarg || *end || !(cfg->rate > 0) || cfg->rate > 1e8)
                die_usage("-R: expected a rate in req/s in (0, 1e8], got '%s'", optarg);
            break;
        }
        case 'p':
            cfg->depth = (unsigned)parse_u64("-p", optarg, 1, 1024);
            break;
        case 't':
            cfg->threads = (unsigned)parse_u64("-t", optarg, 1, 256);
            break;
        case 'm':
            for (const char *q = optarg; *q; q++)
                if (*q <= ' ' || *q >= 0x7f) die_usage("-m: bad method '%s'", optarg);
            if (!*optarg) die_usage("-m: empty method");
            cfg->method = optarg;
            break;
        case 'H':
            if (strchr(optarg, ':') == NULL || strpbrk(optarg, "\r\n"))
                die_usage("-H: expected 'Name: value', got '%s'", optarg);
            hdrs[nhdrs++] = optarg;
            break;
        case 'b':
            body = optarg;
            break;
        case OPT_BODY_FILE:
            body_file = optarg;
            break;
        case OPT_CONN_HEADERS:
            conn_headers = optarg;
            break;
        case OPT_ALT_PATH:
            if (optarg[0] != '/' || strpbrk(optarg, " \r\n\t") != NULL)
                die_usage("--alt-path: expected a path starting with /, got '%s'", optarg);
            alt_path = optarg;
            break;
        case OPT_ALT_BODY_FILE:
            alt_body_file = optarg;
            break;
        case OPT_GAP:
            cfg->gap_ns = parse_duration("--gap", optarg);
            break;
        case OPT_WARMUP:
            cfg->warmup_ns = parse_duration("--warmup", optarg);
            break;
        case OPT_TIMEOUT:
            cfg->timeout_ms = (uint32_t)parse_u64("--timeout", optarg, 1, 3600000);
            break;
        case OPT_JSON:
            cfg->json = true;
            break;
        case 'q':
            cfg->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case ':':
            die_usage("option %s needs a value", argv[optind - 1]);
        default:
            die_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) die_usage(optind >= argc ? "missing URL" : "exactly one URL expected");
    if (body && body_file) die_usage("-b and --body-file are exclusive");
    cfg->url = argv[optind];
    parse_url(cfg, cfg->url);
    if (cfg->threads > cfg->conns) die_usage("-t %u exceeds -c %u", cfg->threads, cfg->conns);
    if (cfg->duration_ns == 0 && cfg->count == 0) cfg->duration_ns = 10 * NS_PER_S;
    if (cfg->duration_ns == 0) cfg->duration_ns = NXL_COUNT_ONLY_CAP_NS;
    size_t body_len = 0;
    char *body_data = NULL;
    if (body_file)
        body_data = read_file(body_file, &body_len);
    else if (body)
        body_len = strlen(body);
    bool have_body = body || body_file;
    if (cfg->method == NULL) cfg->method = have_body ? "POST" : "GET";
    cfg->head = strcmp(cfg->method, "HEAD") == 0;
    const char *b = body_file ? body_data : body;
    cfg->req = build_request(cfg, hdrs, nhdrs, NULL, b, body_len, have_body, &cfg->req_len);
    if (conn_headers != NULL)
        build_variants(cfg, conn_headers, hdrs, nhdrs, b, body_len, have_body);
    if (cfg->gap_ns > 0 && cfg->rate > 0) die_usage("--gap is for the closed loop (no -R)");
    if (alt_path != NULL || alt_body_file != NULL) {
        if (cfg->rate > 0 || cfg->depth != 1 || conn_headers != NULL)
            die_usage("--alt-path/--alt-body-file need a closed loop (no -R), -p 1 and no "
                      "--conn-headers");
        size_t alt_len = body_len;
        char *alt_data = alt_body_file ? read_file(alt_body_file, &alt_len) : NULL;
        const char *main_path = cfg->path;
        if (alt_path != NULL) cfg->path = alt_path;
        cfg->alt_req = build_request(cfg, hdrs, nhdrs, NULL, alt_data ? alt_data : b, alt_len,
                                     have_body || alt_data != NULL, &cfg->alt_req_len);
        cfg->path = main_path;
        free(alt_data);
    }
    free(body_data);
    free(hdrs);
    /* receive buffers: big enough for long header lines, bounded in total */
    size_t per = (size_t)(64u << 20) / cfg->conns;
    if (per > (64u << 10)) per = 64u << 10;
    if (per < (8u << 10)) per = 8u << 10;
    cfg->rbuf_size = per;
}

/* ---- report ---- */

static void fmt_ns(char *out, size_t n, double ns) {
    if (ns < 1e3)
        snprintf(out, n, "%.0fns", ns);
    else if (ns < 1e6)
        snprintf(out, n, "%.1fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(out, n, "%.2fms", ns / 1e6);
    else
        snprintf(out, n, "%.2fs", ns / 1e9);
}

typedef struct nxl_result {
    nxl_stats_t st;
    double elapsed_s;
    uint64_t classes[6];
    uint64_t ok;
} nxl_result_t;

static void print_human(const nxl_config_t *cfg, const nxl_result_t *r) {
    const nxl_stats_t *st = &r->st;
    const nxl_hist_t *h = &st->hist;
    double mean = h->total ? h->sum / (double)h->total : 0;
    double var = h->total ? h->sumsq / (double)h->total - mean * mean : 0;
    double sd = var > 0 ? sqrt(var) : 0;
    double rps = r->elapsed_s > 0 ? (double)st->completed / r->elapsed_s : 0;
    double mbs = r->elapsed_s > 0 ? (double)st->bytes_in / r->elapsed_s / 1e6 : 0;
    static const double pcts[] = {50, 90, 99, 99.9, 99.99};
    static const char *const names[] = {"p50", "p90", "p99", "p99.9", "p99.99"};
    char b[5][32], bm[32], bs[32], bx[32];
    for (int i = 0; i < 5; i++)
        fmt_ns(b[i], sizeof(b[i]), (double)hist_percentile(h, pcts[i]));
    fmt_ns(bm, sizeof(bm), mean);
    fmt_ns(bs, sizeof(bs), sd);
    fmt_ns(bx, sizeof(bx), (double)(h->total ? h->max : 0));
    uint64_t errs = 0;
    for (int i = 0; i < NXL_ERR_COUNT; i++)
        errs += st->errors[i];
    if (cfg->quiet) {
        printf("%" PRIu64 " requests in %.2fs, %.1f req/s, p50 %s, p99 %s, errors %" PRIu64 "\n",
               st->completed, r->elapsed_s, rps, b[0], b[2], errs);
        return;
    }
    printf("nxload %s: %u connections, %u thread%s, depth %u, ", cfg->url, cfg->conns, cfg->threads,
           cfg->threads == 1 ? "" : "s", cfg->depth);
    if (cfg->rate > 0)
        printf("open loop at %.0f req/s", cfg->rate);
    else
        printf("closed loop");
    printf(", ring %s\n", g_ring_mode);
    printf("  requests    %" PRIu64 " in %.2fs: %.1f req/s, %.2f MB/s in\n", st->completed,
           r->elapsed_s, rps, mbs);
    printf("  latency     mean %s  stdev %s  max %s%s\n", bm, bs, bx,
           cfg->rate > 0 ? "  (from intended send time)" : "");
    printf("             ");
    for (int i = 0; i < 5; i++)
        printf(" %s %s", names[i], b[i]);
    printf("\n  status      2xx %" PRIu64 "  3xx %" PRIu64 "  4xx %" PRIu64 "  5xx %" PRIu64,
           r->classes[2], r->classes[3], r->classes[4], r->classes[5]);
    bool first = true;
    for (int code = 100; code < 600; code++) {
        if (!st->status[code]) continue;
        printf("%s%d: %" PRIu64, first ? "  [" : ", ", code, st->status[code]);
        first = false;
    }
    printf("%s\n", first ? "" : "]");
    printf("  errors     ");
    for (int i = 0; i < NXL_ERR_COUNT; i++) {
        printf(" %s %" PRIu64, nxl_err_names[i], st->errors[i]);
        if (st->errors[i] && st->last_errno[i]) printf(" (%s)", strerror(st->last_errno[i]));
    }
    printf("\n  connections %" PRIu64 " opened, %" PRIu64 " reconnects; %" PRIu64
           " requests unfinished at the end\n",
           st->connects, st->reconnects, st->unfinished);
}

static void print_json(const nxl_config_t *cfg, const nxl_result_t *r) {
    const nxl_stats_t *st = &r->st;
    const nxl_hist_t *h = &st->hist;
    double mean = h->total ? h->sum / (double)h->total : 0;
    double var = h->total ? h->sumsq / (double)h->total - mean * mean : 0;
    double sd = var > 0 ? sqrt(var) : 0;
    double rps = r->elapsed_s > 0 ? (double)st->completed / r->elapsed_s : 0;
    double mbs = r->elapsed_s > 0 ? (double)st->bytes_in / r->elapsed_s / 1e6 : 0;
    printf("{\"url\":\"");
    for (const char *q = cfg->url; *q; q++) {
        if (*q == '"' || *q == '\\') putchar('\\');
        putchar(*q);
    }
    printf("\",\"connections\":%u,\"threads\":%u,\"depth\":%u,\"mode\":\"%s\",\"rate\":%.3f,"
           "\"ring_mode\":\"%s\",",
           cfg->conns, cfg->threads, cfg->depth, cfg->rate > 0 ? "open" : "closed", cfg->rate,
           g_ring_mode);
    printf("\"duration_s\":%.6f,\"requests\":%" PRIu64 ",\"req_per_s\":%.2f,\"bytes_in\":%" PRIu64
           ",\"bytes_out\":%" PRIu64 ",\"mb_per_s\":%.3f,",
           r->elapsed_s, st->completed, rps, st->bytes_in, st->bytes_out, mbs);
    printf("\"latency_us\":{\"mean\":%.2f,\"stdev\":%.2f,\"min\":%.2f,\"p50\":%.2f,\"p90\":%.2f,"
           "\"p99\":%.2f,\"p99_9\":%.2f,\"p99_99\":%.2f,\"max\":%.2f},",
           mean / 1e3, sd / 1e3, h->total ? (double)h->min / 1e3 : 0,
           (double)hist_percentile(h, 50) / 1e3, (double)hist_percentile(h, 90) / 1e3,
           (double)hist_percentile(h, 99) / 1e3, (double)hist_percentile(h, 99.9) / 1e3,
           (double)hist_percentile(h, 99.99) / 1e3, h->total ? (double)h->max / 1e3 : 0);
    printf("\"status\":{\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64 ",\"3xx\":%" PRIu64
           ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64 ",\"codes\":{",
           r->classes[1], r->classes[2], r->classes[3], r->classes[4], r->classes[5]);
    bool first = true;
    for (int code = 100; code < 600; code++) {
        if (!st->status[code]) continue;
        printf("%s\"%d\":%" PRIu64, first ? "" : ",", code, st->status[code]);
        first = false;
    }
    printf("}},\"errors\":{");
    for (int i = 0; i < NXL_ERR_COUNT; i++)
        printf("%s\"%s\":%" PRIu64, i ? "," : "", nxl_err_names[i], st->errors[i]);
    printf("},\"connects\":%" PRIu64 ",\"reconnects\":%" PRIu64 ",\"unfinished\":%" PRIu64,
           st->connects, st->reconnects, st->unfinished);
    if (cfg->alt_req != NULL) {
        const nxl_hist_t *a = &st->alt_hist;
        printf(",\"alt\":{\"requests\":%" PRIu64 ",\"req_per_s\":%.2f,\"mean\":%.2f,\"p50\":%.2f,"
               "\"p90\":%.2f,\"p99\":%.2f}",
               st->alt_completed, r->elapsed_s > 0 ? (double)st->alt_completed / r->elapsed_s : 0,
               a->total ? a->sum / (double)a->total / 1e3 : 0, (double)hist_percentile(a, 50) / 1e3,
               (double)hist_percentile(a, 90) / 1e3, (double)hist_percentile(a, 99) / 1e3);
    }
    printf("}\n");
}

static void merge(nxl_result_t *r, const nxl_thread_t *ts, unsigned n) {
    memset(r, 0, sizeof(*r));
    hist_reset(&r->st.hist);
    hist_reset(&r->st.alt_hist);
    uint64_t span = 0;
    for (unsigned i = 0; i < n; i++) {
        const nxl_stats_t *s = &ts[i].st;
        r->st.completed += s->completed;
        r->st.bytes_in += s->bytes_in;
        r->st.bytes_out += s->bytes_out;
        for (int c = 0; c < 600; c++)
            r->st.status[c] += s->status[c];
        for (int k = 0; k < NXL_ERR_COUNT; k++) {
            r->st.errors[k] += s->errors[k];
            if (s->last_errno[k]) r->st.last_errno[k] = s->last_errno[k];
        }
        r->st.connects += s->connects;
        r->st.reconnects += s->reconnects;
        r->st.unfinished += s->unfinished;
        hist_merge(&r->st.hist, &s->hist);
        hist_merge(&r->st.alt_hist, &s->alt_hist);
        r->st.alt_completed += s->alt_completed;
        uint64_t d = ts[i].t_finish > ts[i].t_measure ? ts[i].t_finish - ts[i].t_measure : 0;
        if (d > span) span = d;
    }
    r->elapsed_s = (double)span / 1e9;
    for (int c = 100; c < 600; c++)
        r->classes[c / 100] += r->st.status[c];
    r->ok = r->classes[2] + r->classes[3];
}

int main(int argc, char **argv) {
    nxl_config_t cfg = {0};
    parse_args(&cfg, argc, argv);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    nxl_thread_t *ts = calloc(cfg.threads, sizeof(*ts));
    if (ts == NULL) return 1;
    pthread_barrier_init(&g_barrier, NULL, cfg.threads + 1);
    unsigned first = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        ts[i].id = (int)i;
        ts[i].cfg = &cfg;
        ts[i].nconns = cfg.conns / cfg.threads + (i < cfg.conns % cfg.threads ? 1 : 0);
        ts[i].first_conn = first;
        first += ts[i].nconns;
        int rc = pthread_create(&ts[i].tid, NULL, thread_main, &ts[i]);
        if (rc != 0) {
            fprintf(stderr, "nxload: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    g_t0 = now_ns();
    pthread_barrier_wait(&g_barrier);

    /* hard cap: threads stop at the deadline by themselves; this is the net under them */
    uint64_t cap = g_t0 + cfg.warmup_ns + cfg.duration_ns + (uint64_t)cfg.timeout_ms * NS_PER_MS +
                   NXL_HARD_CAP_SLACK_NS;
    for (unsigned i = 0; i < cfg.threads; i++) {
        struct timespec ts_cap;
        clock_gettime(CLOCK_REALTIME, &ts_cap);
        uint64_t left = cap > now_ns() ? cap - now_ns() : 0;
        uint64_t abs_ns = (uint64_t)ts_cap.tv_sec * NS_PER_S + (uint64_t)ts_cap.tv_nsec + left;
        ts_cap.tv_sec = (time_t)(abs_ns / NS_PER_S);
        ts_cap.tv_nsec = (long)(abs_ns % NS_PER_S);
        if (pthread_timedjoin_np(ts[i].tid, NULL, &ts_cap) != 0) {
            fprintf(stderr, "nxload: thread %u did not stop by the hard cap; giving up\n", i);
            _exit(1);
        }
    }
    for (unsigned i = 0; i < cfg.threads; i++) {
        if (ts[i].fatal < 0) {
            fprintf(stderr, "nxload: thread %u: %s\n", i, strerror(-ts[i].fatal));
            return 1;
        }
    }
    nxl_result_t *r = calloc(1, sizeof(*r));
    if (r == NULL) return 1;
    merge(r, ts, cfg.threads);
    if (cfg.json)
        print_json(&cfg, r);
    else
        print_human(&cfg, r);
    fflush(stdout);
    int code = r->ok > 0 ? 0 : 1;
    if (code && !cfg.quiet) fprintf(stderr, "nxload: no request succeeded (no 2xx/3xx response)\n");
    free(r);
    free(ts);
    free(cfg.req);
    free(cfg.alt_req);
    return code;
}
