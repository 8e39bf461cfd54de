/* The outbound HTTP/1.1 client pool (see http_client.h). The life of a pooled connection:
 *   NX_HPC_NEW --connect submitted--> NX_HPC_CONNECTING --connected--> NX_HPC_BUSY | NX_HPC_IDLE
 *   NX_HPC_IDLE --request--> NX_HPC_BUSY --reusable response--> NX_HPC_IDLE | NX_HPC_BUSY (next)
 *   any --failure, not reusable, idle timeout, pool freed--> NX_HPC_CLOSING --last completion-->
 * freed. And of an exchange:
 *   NX_HX_NEW --> NX_HX_QUEUED (pool full) --> NX_HX_CONNECTING (a connect is opened for it)
 *   --> NX_HX_SENT (on a connection) --head--> NX_HX_BODY --> NX_HX_DONE
 * A stale reused connection sends an exchange from NX_HX_SENT back to NX_HX_CONNECTING once.
 *
 * Callbacks may cancel, submit or free the pool, so every object is kept alive across them:
 * an exchange by <depth> (its report waits until its callbacks have returned), the pool by
 * <depth> (entry points from the loop) and <conns> (connections not yet freed). */
#include "http_client.h"

#include "http_lex.h"

#include "conn.h"
#include "nexus/errors.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MAX_CONNECTIONS 64
#define DEFAULT_MAX_IDLE 16
#define DEFAULT_IDLE_TIMEOUT_MS 60000
#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_MAX_PENDING 1024

typedef enum nx_hpc_state {
    NX_HPC_NEW,        /* allocated, in no list */
    NX_HPC_CONNECTING, /* the connect is in the kernel */
    NX_HPC_IDLE,       /* open, waiting for a request (pool->idle, most recent first) */
    NX_HPC_BUSY,       /* carrying <x> */
    NX_HPC_CLOSING,    /* on its way out; counted nowhere; freed by its last completion */
} nx_hpc_state_t;

/* One pooled connection, owned by its pool; freed by its last completion (the connect's when it
 * never connected, else its nx_conn_t's on_free). */
typedef struct pool_conn {
    nx_list_t link; /* in the pool list of its state */
    nx_http_pool_t *pool;
    nx_hpc_state_t state;
    int fd;          /* while connecting; then the nx_conn_t owns it */
    nx_conn_t *conn; /* once connected, until freed */
    nx_op_t connect_op;
    nx_http_exchange_t *x; /* BUSY: its exchange; CONNECTING: the one it is opened for, if any */
    uint32_t gen;          /* the pool's address generation it was opened with */
    uint32_t requests;     /* requests sent on it */
    nx_timer_t idle_timer;
    nx_buf_t in;                  /* bytes the response parser holds back (a partial head) */
    struct sockaddr_storage addr; /* the connect reads it until it completes */
    socklen_t addrlen;
} pool_conn_t;

typedef enum nx_hx_state {
    NX_HX_NEW,
    NX_HX_QUEUED,     /* in pool->queue, waiting for a connection to free up */
    NX_HX_CONNECTING, /* <pc> is being opened for it */
    NX_HX_SENT,       /* on <pc>, waiting for the final head */
    NX_HX_BODY,       /* head reported, body streaming */
    NX_HX_DONE,       /* finished; on_done pending or running */
} nx_hx_state_t;

/* One request and its response; owned by the pool until on_done returns (or cancel). */
struct nx_http_exchange {
    nx_list_t link; /* QUEUED: pool->queue; DONE inside nx_http_request: pool->deferred */
    nx_http_pool_t *pool;
    nx_hx_state_t state;
    pool_conn_t *pc;
    nx_http_client_ops_t ops;
    void *arg;
    nx_buf_t req; /* the request bytes, kept for a stale retry until the first response byte */
    bool head_request, stream;
    bool got_bytes, retried, cancelled;
    uint32_t depth; /* its callbacks on the stack: its report waits until they return */
    int err;
    const char *error;
    nx_timer_t timer; /* timeout_ms, until the final head */
    nx_http_response_parser_t parser;
};

/* Owned by the engine's per-shard backend state; freed by nx_http_pool_free + completions. */
struct nx_http_pool {
    nx_shard_t *shard;
    nx_http_pool_opts_t opts;
    nx_http_response_limits_t stream_limits; /* opts.limits without a body bound */
    char *authority;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t gen;                     /* bumped by set_addr: older connections are not reused */
    nx_list_t connecting, idle, busy; /* pool_conn_t.link */
    nx_list_t queue;                  /* nx_http_exchange_t.link, oldest first */
    nx_list_t deferred;               /* finished inside nx_http_request; reported by defer_timer */
    nx_timer_t defer_timer;           /* 0 ms: deferred reports, and pumping after a cancel */
    uint32_t open, idle_count, busy_count, connecting_count, queued, owners;
    uint32_t conns;  /* pool_conn_t not yet freed: the pool's memory outlives them */
    uint32_t depth;  /* entry points on the stack: the pool is freed only at 0 */
    bool submitting; /* inside nx_http_request, where no callback may run */
    bool freeing;
    nx_http_pool_stats_t st; /* the counters; the counts are computed */
};

static void on_connect(nx_op_t *op, int res, unsigned flags, unsigned buf_id);
static void on_idle_timeout(nx_timer_t *t);
static void conn_on_data(nx_conn_t *c, char *data, size_t len);
static void conn_on_eof(nx_conn_t *c, int err);
static void conn_on_free(nx_conn_t *c);

static const nx_conn_ops_t pool_conn_ops = {
    .on_data = conn_on_data, .on_eof = conn_on_eof, .on_free = conn_on_free};

/* ---- pool lifetime ---- */

static void pump(nx_http_pool_t *p);

static void pool_release(nx_http_pool_t *p) {
    nx_timer_stop(&p->defer_timer);
    free(p->authority);
    free(p);
}

static void pool_enter(nx_http_pool_t *p) {
    p->depth++;
}

/* Leaves an entry point: serves waiting requests, or frees a pool that has nothing left. */
static void pool_leave(nx_http_pool_t *p) {
    if (p->depth == 1 && !p->freeing) pump(p);
    if (--p->depth == 0 && p->freeing && p->conns == 0) pool_release(p);
}

/* ---- connections ---- */

/* The one transition function of a pooled connection: moves <pc> to the list of <to>. */
static void pc_enter(pool_conn_t *pc, nx_hpc_state_t to) {
    nx_http_pool_t *p = pc->pool;
    switch (pc->state) {
    case NX_HPC_NEW:
        p->open++;
        break;
    case NX_HPC_CONNECTING:
        p->connecting_count--;
        nx_list_remove(&pc->link);
        break;
    case NX_HPC_IDLE:
        p->idle_count--;
        nx_timer_stop(&pc->idle_timer);
        nx_list_remove(&pc->link);
        break;
    case NX_HPC_BUSY:
        p->busy_count--;
        nx_list_remove(&pc->link);
        break;
    case NX_HPC_CLOSING:
        return; /* final */
    }
    pc->state = to;
    switch (to) {
    case NX_HPC_CONNECTING:
        p->connecting_count++;
        nx_list_insert_tail(&p->connecting, &pc->link);
        break;
    case NX_HPC_IDLE:
        p->idle_count++;
        nx_list_insert_head(&p->idle, &pc->link); /* LIFO: the warmest connection goes first */
        nx_shard_timer_start(p->shard, &pc->idle_timer, p->opts.idle_timeout_ms);
        break;
    case NX_HPC_BUSY:
        p->busy_count++;
        nx_list_insert_tail(&p->busy, &pc->link);
        break;
    case NX_HPC_CLOSING:
        p->open--;
        break;
    case NX_HPC_NEW:
        break;
    }
}

static void pc_free(pool_conn_t *pc) {
    pc->pool->conns--;
    nx_buf_dispose(&pc->in);
    free(pc);
}

/* Closes <pc> (its exchange, if any, must already be detached). Touch <pc> no more afterwards:
 * a jammed ring closes synchronously and frees it. */
static void pc_close(pool_conn_t *pc) {
    nx_hpc_state_t was = pc->state;
    if (was == NX_HPC_CLOSING) return;
    pc_enter(pc, NX_HPC_CLOSING);
    nx_buf_dispose(&pc->in);
    if (was == NX_HPC_CONNECTING) {
        nx_loop_cancel(pc->pool->shard->loop, &pc->connect_op); /* on_connect frees it */
    } else if (pc->conn != NULL) {
        nx_conn_close(pc->conn); /* conn_on_free frees it */
    }
}

static void unlink_pc(nx_http_exchange_t *x) {
    if (x->pc != NULL) x->pc->x = NULL;
    x->pc = NULL;
}

/* ---- exchanges ---- */

static void exchange_free(nx_http_exchange_t *x) {
    nx_timer_stop(&x->timer);
    nx_buf_dispose(&x->req);
    free(x);
}

/* Runs on_done (unless cancelled) and frees <x>; inside nx_http_request it waits for the pool's
 * defer timer, since no callback may run there. */
static void report(nx_http_exchange_t *x) {
    nx_http_pool_t *p = x->pool;
    if (p->submitting && !x->cancelled) {
        nx_list_insert_tail(&p->deferred, &x->link);
        nx_shard_timer_start(p->shard, &p->defer_timer, 0);
        return;
    }
    if (!x->cancelled) {
        x->depth++; /* never dropped: cancel inside on_done is a no-op, x goes right after */
        x->ops.on_done(x, x->err, x->arg);
    }
    exchange_free(x);
}

/* Takes <x> out of the queue or off its connection; the connection stays as it is. */
static void detach(nx_http_exchange_t *x) {
    nx_http_pool_t *p = x->pool;
    switch (x->state) {
    case NX_HX_QUEUED:
        nx_list_remove(&x->link);
        p->queued--;
        break;
    case NX_HX_CONNECTING:
        p->owners--;
        unlink_pc(x); /* the connect goes on; the connection joins the pool */
        break;
    case NX_HX_SENT:
    case NX_HX_BODY:
        unlink_pc(x);
        break;
    case NX_HX_NEW:
    case NX_HX_DONE:
        break;
    }
}

/* Ends <x> with <err>: reported now, or when its callback on the stack returns. */
static void finish(nx_http_exchange_t *x, int err) {
    if (x->state == NX_HX_DONE) return;
    detach(x);
    x->state = NX_HX_DONE;
    x->err = err;
    nx_timer_stop(&x->timer);
    if (err < 0 && err != -ECANCELED) x->pool->st.failures++;
    if (x->depth == 0) report(x);
}

/* After one of <x>'s callbacks: false when it ended inside it (then it is reported or freed). */
static bool still_wanted(nx_http_exchange_t *x) {
    if (x->state != NX_HX_DONE) return true;
    if (x->depth == 0) report(x);
    return false;
}

static bool deliver_head(nx_http_exchange_t *x, const nx_http_response_t *head) {
    if (x->ops.on_head == NULL) return true;
    x->depth++;
    x->ops.on_head(x, head, x->arg);
    x->depth--;
    return still_wanted(x);
}

static bool deliver_data(nx_http_exchange_t *x, const char *data, size_t len) {
    if (x->ops.on_data == NULL) return true;
    x->depth++;
    x->ops.on_data(x, data, len, x->arg);
    x->depth--;
    return still_wanted(x);
}

/* ---- sending ---- */

/* Puts <x> on connection <pc> (new, idle or just released) and sends its request. */
static void assign(pool_conn_t *pc, nx_http_exchange_t *x) {
    nx_http_pool_t *p = pc->pool;
    pc_enter(pc, NX_HPC_BUSY);
    pc->x = x;
    x->pc = pc;
    x->state = NX_HX_SENT;
    nx_http_response_parser_init(&x->parser, x->stream ? &p->stream_limits : &p->opts.limits,
                                 x->head_request);
    pc->requests++;
    nx_buf_t *out = nx_conn_out(pc->conn);
    if (pc->requests > 1) {
        p->st.reuses++;
        if (nx_buf_append(out, x->req.data, x->req.len) < 0) {
            unlink_pc(x);
            pc_close(pc);
            x->error = "out of memory";
            finish(x, -ENOMEM);
            return;
        }
    } else if (out->len == 0) {
        /* A fresh connection is never retried: hand the request bytes over instead of copying. */
        nx_buf_t t = *out;
        *out = x->req;
        x->req = t;
    } else if (nx_buf_append(out, x->req.data, x->req.len) < 0) {
        unlink_pc(x);
        pc_close(pc);
        x->error = "out of memory";
        finish(x, -ENOMEM);
        return;
    }
    nx_conn_flush(pc->conn); /* last: a failed send may free pc through conn_on_free */
}

/* Opens a connection for <x> (or for the pool when NULL); nothing is called on failure. */
static int start_connect(nx_http_pool_t *p, nx_http_exchange_t *x) {
    int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (p->addr.ss_family != AF_UNIX) {
        int one = 1; /* requests are written whole: waiting for more only adds latency */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    pool_conn_t *pc = calloc(1, sizeof(*pc));
    if (pc == NULL) {
        close(fd);
        return -ENOMEM;
    }
    pc->pool = p;
    pc->fd = fd;
    pc->gen = p->gen;
    memcpy(&pc->addr, &p->addr, p->addrlen);
    pc->addrlen = p->addrlen;
    pc->connect_op.cb = on_connect;
    nx_timer_init(&pc->idle_timer, on_idle_timeout);
    int rc = nx_loop_connect(p->shard->loop, &pc->connect_op, fd, (struct sockaddr *)&pc->addr,
                             pc->addrlen, p->opts.connect_timeout_ms);
    if (rc < 0) {
        close(fd);
        free(pc);
        return rc;
    }
    p->conns++;
    p->st.connects++;
    pc_enter(pc, NX_HPC_CONNECTING);
    if (x != NULL) {
        x->state = NX_HX_CONNECTING;
        x->pc = pc;
        pc->x = x;
        p->owners++;
    }
    return 0;
}

/* Serves the queue from idle connections, then opens connections while the pool has room. */
static void pump(nx_http_pool_t *p) {
    while (!p->freeing && !nx_list_empty(&p->queue)) {
        nx_http_exchange_t *x = nx_container_of(p->queue.next, nx_http_exchange_t, link);
        if (!nx_list_empty(&p->idle)) {
            detach(x);
            assign(nx_container_of(p->idle.next, pool_conn_t, link), x);
            continue;
        }
        if (p->open >= p->opts.max_connections) return;
        detach(x);
        int rc = start_connect(p, x);
        if (rc < 0) {
            x->error = "cannot open a connection";
            finish(x, rc);
        }
    }
}

/* <pc> finished an exchange (or just connected) and may carry another one. */
static void make_available(pool_conn_t *pc) {
    nx_http_pool_t *p = pc->pool;
    if (p->freeing || pc->gen != p->gen) {
        pc_close(pc);
        return;
    }
    if (!nx_list_empty(&p->queue)) {
        nx_http_exchange_t *x = nx_container_of(p->queue.next, nx_http_exchange_t, link);
        detach(x);
        assign(pc, x);
        return;
    }
    if (p->idle_count >= p->opts.max_idle) {
        pc_close(pc);
        return;
    }
    pc_enter(pc, NX_HPC_IDLE);
}

/* ---- receiving ---- */

/* The response on <pc> is complete: the connection goes back to the pool (so that on_done may
 * reuse it at once) or is closed, then the exchange reports success. */
static void complete(pool_conn_t *pc, bool reusable) {
    nx_http_exchange_t *x = pc->x;
    unlink_pc(x);
    if (reusable) {
        make_available(pc);
    } else {
        pc_close(pc);
    }
    finish(x, 0);
}

/* The connection carrying an exchange failed with <err> before its response was complete. A
 * reused connection that fails before any response byte was most likely closed by the server
 * while idle, with our request crossing its FIN: the request is sent again once, on a new
 * connection. */
static void conn_failed(pool_conn_t *pc, int err, const char *why) {
    nx_http_pool_t *p = pc->pool;
    nx_http_exchange_t *x = pc->x;
    bool stale = x != NULL && !x->got_bytes && pc->requests > 1 && !x->retried && !p->freeing &&
                 err != -ENOMEM;
    if (x != NULL) unlink_pc(x);
    pc_close(pc);
    if (x == NULL) return;
    if (stale) {
        x->retried = true;
        p->st.stale_retries++;
        int rc = start_connect(p, x);
        if (rc == 0) return;
        err = rc;
        why = "cannot open a connection";
    }
    x->error = why;
    finish(x, err);
}

/* Feeds <buf>[0..<n>) to the parser of <pc>'s exchange; <from_in> says it is pc->in. */
static void process(pool_conn_t *pc, const char *buf, size_t n, bool from_in) {
    nx_http_exchange_t *x = pc->x;
    nx_http_pool_t *p = pc->pool;
    size_t off = 0;
    for (;;) {
        nx_http_response_event_t ev;
        int rc = nx_http_response_parse(&x->parser, buf + off, n - off, &ev);
        if (rc == NX_AGAIN) break;
        if (rc < 0) {
            conn_failed(pc, NX_EPROTO, x->parser.error_message);
            return;
        }
        off += (size_t)rc;
        switch (ev.kind) {
        case NX_HTTP_RESP_INFO:
            break;
        case NX_HTTP_RESP_HEAD:
            x->state = NX_HX_BODY;
            nx_timer_stop(&x->timer);
            if (!deliver_head(x, ev.head)) return; /* pc is closed or closing: leave it */
            break;
        case NX_HTTP_RESP_DATA:
            if (!deliver_data(x, ev.data.p, ev.data.n)) return;
            break;
        case NX_HTTP_RESP_DONE: {
            /* Bytes nobody asked for would be read as the next response: never reuse then. */
            bool reusable = ev.head->keep_alive && off == n && nx_conn_unsent(pc->conn) == 0 &&
                            (p->opts.max_requests_per_conn == 0 ||
                             pc->requests < p->opts.max_requests_per_conn);
            nx_buf_clear(&pc->in);
            complete(pc, reusable);
            return;
        }
        }
    }
    if (from_in) {
        nx_buf_consume(&pc->in, off);
    } else if (off < n && nx_buf_append(&pc->in, buf + off, n - off) < 0) {
        conn_failed(pc, -ENOMEM, "out of memory");
    }
}

static void conn_on_data(nx_conn_t *c, char *data, size_t len) {
    pool_conn_t *pc = c->codec;
    nx_http_pool_t *p = pc->pool;
    pool_enter(p);
    if (pc->state != NX_HPC_BUSY) {
        pc_close(pc); /* bytes on an idle connection: the server is confused */
    } else {
        nx_http_exchange_t *x = pc->x;
        if (!x->got_bytes) {
            x->got_bytes = true;
            nx_buf_dispose(&x->req); /* no retry any more */
        }
        if (pc->in.len == 0) {
            process(pc, data, len, false);
        } else if (nx_buf_append(&pc->in, data, len) < 0) {
            conn_failed(pc, -ENOMEM, "out of memory");
        } else {
            process(pc, pc->in.data, pc->in.len, true);
        }
    }
    pool_leave(p);
}

static void conn_on_eof(nx_conn_t *c, int err) {
    pool_conn_t *pc = c->codec;
    nx_http_pool_t *p = pc->pool;
    pool_enter(p);
    if (pc->state != NX_HPC_BUSY) {
        pc_close(pc); /* the server closed an idle connection: drop it now */
    } else if (err < 0) {
        conn_failed(pc, err,
                    err == -ECONNRESET ? "connection reset by the server"
                                       : "receiving from the server failed");
    } else {
        nx_http_response_event_t ev;
        if (nx_http_response_eof(&pc->x->parser, &ev) == 0) {
            complete(pc, false); /* a close-delimited body ends here */
        } else {
            conn_failed(pc, -ECONNRESET, pc->x->parser.error_message);
        }
    }
    pool_leave(p);
}

static void conn_on_free(nx_conn_t *c) {
    pool_conn_t *pc = c->codec;
    nx_http_pool_t *p = pc->pool;
    pool_enter(p);
    pc->conn = NULL;
    if (pc->state != NX_HPC_CLOSING) {
        /* Closed under us: a send failed. */
        int err = c->error < 0 ? c->error : -ECONNRESET;
        if (pc->x != NULL) {
            conn_failed(pc, err, "sending to the server failed");
        } else {
            pc_close(pc);
        }
    }
    pc_free(pc);
    pool_leave(p);
}

/* ---- completions and timers ---- */

static void on_connect(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    pool_conn_t *pc = nx_container_of(op, pool_conn_t, connect_op);
    nx_http_pool_t *p = pc->pool;
    pool_enter(p);
    if (pc->state == NX_HPC_CLOSING) { /* the pool was freed meanwhile */
        close(pc->fd);
        pc_free(pc);
        pool_leave(p);
        return;
    }
    nx_http_exchange_t *x = pc->x;
    if (res >= 0) {
        pc->conn = nx_conn_new_outbound(p->shard, pc->fd, &pool_conn_ops, pc);
        pc->fd = -1; /* nx_conn_new owns it now, closed even on failure */
        if (pc->conn == NULL) res = -ENOMEM;
    } else {
        close(pc->fd);
        pc->fd = -1;
    }
    if (res < 0) {
        p->st.connect_failures++;
        pc_enter(pc, NX_HPC_CLOSING);
        if (x != NULL) {
            /* The linked timeout cancels the connect. */
            x->error = res == -ECANCELED ? "connect timed out" : "connect failed";
            finish(x, res == -ECANCELED ? -ETIMEDOUT : res);
        }
        pc_free(pc);
    } else if (x != NULL) {
        detach(x);
        assign(pc, x);
    } else {
        make_available(pc);
    }
    pool_leave(p);
}

static void on_idle_timeout(nx_timer_t *t) {
    pool_conn_t *pc = nx_container_of(t, pool_conn_t, idle_timer);
    nx_http_pool_t *p = pc->pool;
    pool_enter(p);
    pc_close(pc);
    pool_leave(p);
}

static void on_exchange_timeout(nx_timer_t *t) {
    nx_http_exchange_t *x = nx_container_of(t, nx_http_exchange_t, timer);
    nx_http_pool_t *p = x->pool;
    pool_enter(p);
    switch (x->state) {
    case NX_HX_QUEUED:
        x->error = "no connection became free in time";
        break;
    case NX_HX_CONNECTING:
        x->error = "connect timed out";
        break;
    case NX_HX_SENT:
    case NX_HX_BODY: {
        /* The connection is mid-response: it can never carry another request. */
        pool_conn_t *pc = x->pc;
        unlink_pc(x);
        pc_close(pc);
        x->error = "no response head in time";
        break;
    }
    default:
        break;
    }
    finish(x, -ETIMEDOUT);
    pool_leave(p);
}

static void on_defer(nx_timer_t *t) {
    nx_http_pool_t *p = nx_container_of(t, nx_http_pool_t, defer_timer);
    pool_enter(p);
    nx_list_t *n;
    while ((n = nx_list_pop_head(&p->deferred)) != NULL)
        report(nx_container_of(n, nx_http_exchange_t, link));
    pool_leave(p); /* and pumps */
}

/* ---- API ---- */

static bool addr_ok(const struct sockaddr *addr, socklen_t addrlen) {
    if (addr == NULL || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage)) return false;
    return addr->sa_family == AF_INET || addr->sa_family == AF_INET6 || addr->sa_family == AF_UNIX;
}

nx_http_pool_t *nx_http_pool_new(nx_shard_t *s, const struct sockaddr *addr, socklen_t addrlen,
                                 const char *authority, const nx_http_pool_opts_t *opts) {
    if (!addr_ok(addr, addrlen) || authority == NULL) return NULL;
    nx_http_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL) return NULL;
    p->authority = strdup(authority);
    if (p->authority == NULL) goto fail;
    p->shard = s;
    if (opts != NULL) p->opts = *opts;
    nx_http_pool_opts_t *o = &p->opts;
    if (o->max_connections == 0) o->max_connections = DEFAULT_MAX_CONNECTIONS;
    if (o->max_idle == 0) o->max_idle = DEFAULT_MAX_IDLE;
    if (o->idle_timeout_ms == 0) o->idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    if (o->connect_timeout_ms == 0) o->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (o->max_pending == 0) o->max_pending = DEFAULT_MAX_PENDING;
    const nx_http_response_limits_t *d = &nx_http_response_default_limits;
    if (o->limits.max_header_bytes == 0) o->limits.max_header_bytes = d->max_header_bytes;
    if (o->limits.max_headers == 0) o->limits.max_headers = d->max_headers;
    if (o->limits.max_body == 0) o->limits.max_body = d->max_body;
    p->stream_limits = o->limits;
    p->stream_limits.max_body = UINT64_MAX;
    memcpy(&p->addr, addr, addrlen);
    p->addrlen = addrlen;
    nx_list_init(&p->connecting);
    nx_list_init(&p->idle);
    nx_list_init(&p->busy);
    nx_list_init(&p->queue);
    nx_list_init(&p->deferred);
    nx_timer_init(&p->defer_timer, on_defer);
    return p;
fail:
    free(p->authority);
    free(p);
    return NULL;
}

int nx_http_pool_set_addr(nx_http_pool_t *p, const struct sockaddr *addr, socklen_t addrlen) {
    if (!addr_ok(addr, addrlen)) return -EINVAL;
    memcpy(&p->addr, addr, addrlen);
    p->addrlen = addrlen;
    p->gen++;
    while (!nx_list_empty(&p->idle))
        pc_close(nx_container_of(p->idle.next, pool_conn_t, link));
    return 0;
}

void nx_http_pool_free(nx_http_pool_t *p) {
    if (p == NULL || p->freeing) return;
    p->freeing = true;
    pool_enter(p);
    nx_timer_stop(&p->defer_timer);
    /* Pop one at a time: an on_done may cancel any other exchange. */
    while (!nx_list_empty(&p->busy)) {
        pool_conn_t *pc = nx_container_of(p->busy.next, pool_conn_t, link);
        nx_http_exchange_t *x = pc->x;
        if (x != NULL) unlink_pc(x);
        pc_close(pc);
        if (x != NULL) {
            x->error = "the pool was freed";
            finish(x, -ECANCELED);
        }
    }
    while (!nx_list_empty(&p->idle))
        pc_close(nx_container_of(p->idle.next, pool_conn_t, link));
    while (!nx_list_empty(&p->connecting)) {
        pool_conn_t *pc = nx_container_of(p->connecting.next, pool_conn_t, link);
        nx_http_exchange_t *x = pc->x;
        pc_close(pc);
        if (x != NULL) {
            x->error = "the pool was freed";
            finish(x, -ECANCELED);
        }
    }
    while (!nx_list_empty(&p->queue)) {
        nx_http_exchange_t *x = nx_container_of(p->queue.next, nx_http_exchange_t, link);
        x->error = "the pool was freed";
        finish(x, -ECANCELED);
    }
    nx_list_t *n;
    while ((n = nx_list_pop_head(&p->deferred)) != NULL)
        report(nx_container_of(n, nx_http_exchange_t, link));
    pool_leave(p);
}

void nx_http_pool_stats(const nx_http_pool_t *p, nx_http_pool_stats_t *out) {
    *out = p->st;
    out->open = p->open;
    out->idle = p->idle_count;
    out->busy = p->busy_count;
    out->connecting = p->connecting_count;
    out->pending = p->queued + p->owners;
}

static int build_request(nx_http_pool_t *p, const nx_http_client_request_t *r, nx_buf_t *b) {
    int rc = 0;
    rc |= nx_buf_appendf(b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r->method, r->target, p->authority);
    for (size_t i = 0; i < r->header_count; i++) {
        const nx_http_header_t *h = &r->headers[i];
        rc |= nx_buf_append(b, h->name.p, h->name.n);
        rc |= nx_buf_append(b, ": ", 2);
        rc |= nx_buf_append(b, h->value.p, h->value.n);
        rc |= nx_buf_append(b, "\r\n", 2);
    }
    /* POST, PUT and PATCH say "no body" with Content-Length: 0 (RFC 9110 §8.6). */
    bool needs_length = r->body_len > 0 || strcmp(r->method, "POST") == 0 ||
                        strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0;
    if (needs_length) {
        rc |= nx_buf_append_str(b, "Content-Length: ");
        rc |= nx_buf_append_u64(b, r->body_len);
        rc |= nx_buf_append(b, "\r\n", 2);
    }
    rc |= nx_buf_append(b, "\r\n", 2);
    if (r->body_len > 0) rc |= nx_buf_append(b, r->body, r->body_len);
    return rc < 0 ? -ENOMEM : 0;
}

int nx_http_request(nx_http_pool_t *p, const nx_http_client_request_t *req,
                    const nx_http_client_ops_t *ops, void *arg, nx_http_exchange_t **out) {
    if (p->freeing) return NX_ECLOSED;
    if (!nx_http_text_safe(req->method, " \t\r\n") || !nx_http_text_safe(req->target, " \t\r\n") ||
        ops == NULL || ops->on_done == NULL || (req->body_len > 0 && req->body == NULL) ||
        (req->header_count > 0 && req->headers == NULL))
        return -EINVAL;
    for (size_t i = 0; i < req->header_count; i++) {
        const nx_http_header_t *h = &req->headers[i];
        if (!nx_http_field_safe(h->name, h->value)) return -EINVAL;
    }
    bool have_idle = !nx_list_empty(&p->idle);
    bool can_open = p->open < p->opts.max_connections;
    bool wait = !nx_list_empty(&p->queue) || (!have_idle && !can_open); /* FIFO behind others */
    if (wait && p->queued >= p->opts.max_pending) return -EBUSY;

    nx_http_exchange_t *x = calloc(1, sizeof(*x));
    if (x == NULL) return -ENOMEM;
    x->pool = p;
    x->ops = *ops;
    x->arg = arg;
    x->head_request = strcmp(req->method, "HEAD") == 0;
    x->stream = req->stream;
    nx_timer_init(&x->timer, on_exchange_timeout);
    if (build_request(p, req, &x->req) < 0) {
        exchange_free(x);
        return -ENOMEM;
    }
    p->submitting = true;
    if (wait) {
        x->state = NX_HX_QUEUED;
        nx_list_insert_tail(&p->queue, &x->link);
        p->queued++;
        /* Room appeared while others wait (a cancel closed a connection): serve them soon. */
        if (have_idle || can_open) nx_shard_timer_start(p->shard, &p->defer_timer, 0);
    } else if (have_idle) {
        assign(nx_container_of(p->idle.next, pool_conn_t, link), x);
    } else {
        int rc = start_connect(p, x);
        if (rc < 0) {
            p->submitting = false;
            exchange_free(x);
            return rc;
        }
    }
    /* Armed after dispatch; an exchange already finished (deferred report) has no timer. */
    if (req->timeout_ms > 0 && x->state != NX_HX_DONE)
        nx_shard_timer_start(p->shard, &x->timer, req->timeout_ms);
    p->submitting = false;
    p->st.requests++;
    if (out != NULL) *out = x;
    return 0;
}

void nx_http_exchange_cancel(nx_http_exchange_t *x) {
    x->cancelled = true; /* a report still pending (deferred, or after a callback) is dropped */
    if (x->state == NX_HX_DONE) return;
    nx_http_pool_t *p = x->pool;
    if (x->state == NX_HX_SENT || x->state == NX_HX_BODY) {
        pool_conn_t *pc = x->pc;
        unlink_pc(x);
        pc_close(pc);
        /* A connection slot is free: serve the queue soon, outside the caller's stack. */
        if (!nx_list_empty(&p->queue)) nx_shard_timer_start(p->shard, &p->defer_timer, 0);
    }
    finish(x, -ECANCELED);
}

bool nx_http_exchange_got_bytes(const nx_http_exchange_t *x) {
    return x->got_bytes;
}

const char *nx_http_exchange_error(const nx_http_exchange_t *x) {
    return x->error;
}
