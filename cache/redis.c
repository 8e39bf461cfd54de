/* The Redis client of one shard (see redis.h): hiredis's async API on the shard's io_uring loop
 * through a custom event adapter (hiredis's level-triggered "watch this fd" registrations become
 * one-shot polls re-armed after each event), our own FIFO of commands with a reply deadline,
 * the connect/handshake timeout, and reconnection with backoff. The life of a client:
 *   NX_REDIS_CONNECTING --handshake answered--> NX_REDIS_UP --lost, timeout--> NX_REDIS_DOWN
 *   NX_REDIS_CONNECTING --refused, timeout, error reply--> NX_REDIS_DOWN --backoff--> CONNECTING
 *   any --nx_redis_free--> NX_REDIS_CLOSED --last frame of ours returns--> freed
 *
 * Two lifetimes, kept apart on purpose. The client (nx_redis_t) is the caller's: nx_redis_free
 * ends it (after callbacks on the stack have returned). A connection (redis_conn_t) holds the
 * hiredis context and the two poll operations; once the client drops it (reconnect, timeout,
 * free) it is detached and on its own: hiredis's context is freed as soon as no hiredis frame is
 * on the stack, its polls are cancelled, and the struct goes with the last of those completions.
 * So every op in the kernel points at live memory even after nx_redis_free, as long as the loop
 * keeps running; a loop freed with such a poll in flight leaks that small struct, nothing worse. */
#include "redis.h"

#include "backoff.h"
#include "nexus/errors.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 1000
#define DEFAULT_COMMAND_TIMEOUT_MS 250
#define DEFAULT_RECONNECT_BASE_MS 100
#define DEFAULT_RECONNECT_CAP_MS 5000
#define DEFAULT_MAX_PENDING 4096

typedef enum nx_redis_state {
    NX_REDIS_CONNECTING, /* connect + handshake in flight; state_timer = the connect timeout */
    NX_REDIS_UP,         /* answering; cmd_timer = the oldest command's reply deadline */
    NX_REDIS_DOWN,       /* no connection; state_timer = the reconnect delay */
    NX_REDIS_CLOSED,     /* nx_redis_free ran; the memory goes when <depth> drops to 0 */
} nx_redis_state_t;

typedef enum req_kind {
    REQ_HANDSHAKE, /* AUTH, SELECT or PING sent on connect; internal */
    REQ_GET,
    REQ_WRITE, /* SET or DEL: fire and forget */
} req_kind_t;

/* One command awaiting its reply; owned by the client's FIFO (r->pending), which frees it when
 * the reply comes or the connection goes. A cancelled request stays in the FIFO without a
 * callback, since its reply still has to be matched. */
struct nx_redis_req {
    nx_list_t link;
    nx_redis_get_fn fn; /* NULL: fire and forget, internal or cancelled */
    void *arg;
    uint64_t deadline_ms;
    req_kind_t kind;
};

/* One hiredis connection and the adapter state around it. Owned by its client while attached
 * (r->conn, c->r); once detached it owns itself and is freed by the last of: hiredis's cleanup
 * hook (the context is gone), the read poll's completion, the write poll's completion. */
typedef struct redis_conn {
    nx_redis_t *r; /* NULL once detached */
    nx_loop_t *loop;
    redisAsyncContext *ac; /* NULL once hiredis has run our cleanup hook (it frees ac next) */
    nx_op_t read_op, write_op;
    bool want_read, want_write;   /* hiredis's registrations, level-triggered in its model */
    bool read_armed, write_armed; /* a poll is in the kernel: the struct must outlive it */
    bool closing;                 /* detached: free the context once <depth> is 0 */
    bool arm_failed;              /* a poll could not be queued: the client drops us soon */
    bool guard_sigpipe;           /* SIGPIPE is not ignored: hiredis write()s, so block it */
    uint32_t depth;               /* hiredis frames of ours on the stack: never free ac then */
} redis_conn_t;

/* Owned by the caller of nx_redis_new; freed by nx_redis_free once no frame of ours that uses
 * it is on the stack (<depth>). */
struct nx_redis {
    nx_shard_t *shard;
    nx_redis_config_t cfg; /* host and password point at our copies */
    char *host, *password;
    nx_redis_state_fn state_fn;
    void *state_arg;
    nx_redis_state_t state;
    redis_conn_t *conn;      /* CONNECTING and UP */
    nx_list_t pending;       /* nx_redis_req_t, in the order of the replies to come */
    uint32_t npending;       /* entries of <pending>, cancelled ones included */
    uint32_t handshake_left; /* CONNECTING: replies still due before UP */
    uint32_t retry;          /* reconnects since the last UP, for the backoff */
    nx_backoff_config_t backoff;
    nx_backoff_rng_t rng;
    nx_timer_t state_timer; /* CONNECTING: connect timeout; DOWN: reconnect */
    nx_timer_t cmd_timer;   /* UP: the deadline of the head of <pending> */
    nx_timer_t kick_timer;  /* 0 ms: drop a connection whose poll could not be queued */
    uint32_t depth;         /* entry points on the stack: freed only at 0 */
    nx_redis_stats_t st;
};

static void enter(nx_redis_t *r, nx_redis_state_t to, int err);

/* ---- the client's lifetime ---- */

static void r_release(nx_redis_t *r) {
    nx_timer_stop(&r->state_timer);
    nx_timer_stop(&r->cmd_timer);
    nx_timer_stop(&r->kick_timer);
    free(r->host);
    free(r->password);
    free(r);
}

/* Every entry point from the loop holds the client with r_hold/r_leave, so a callback may call
 * nx_redis_free without pulling the memory from under the frames below it. */
static void r_hold(nx_redis_t *r) {
    r->depth++;
}

static void r_leave(nx_redis_t *r) {
    if (--r->depth == 0 && r->state == NX_REDIS_CLOSED) r_release(r);
}

/* ---- the command FIFO ---- */

/* Points cmd_timer at the deadline of the oldest command (replies come back in order, and every
 * command gets the same timeout, so the head always expires first). */
static void arm_cmd_timer(nx_redis_t *r) {
    if (r->state != NX_REDIS_UP || nx_list_empty(&r->pending)) {
        nx_timer_stop(&r->cmd_timer);
        return;
    }
    nx_redis_req_t *head = nx_container_of(r->pending.next, nx_redis_req_t, link);
    uint64_t now = nx_shard_now_ms(r->shard);
    nx_shard_timer_start(r->shard, &r->cmd_timer,
                         head->deadline_ms > now ? head->deadline_ms - now : 0);
}

/* Ends every queued command with <err>; NX_ETIMEOUT goes only to those whose deadline has
 * passed (the rest were merely behind them on a connection we drop: NX_ECLOSED). Callbacks may
 * call anything, nx_redis_free included: requests are popped one at a time. */
static void fail_pending(nx_redis_t *r, int err) {
    uint64_t now = nx_shard_now_ms(r->shard);
    nx_list_t *n;
    while ((n = nx_list_pop_head(&r->pending)) != NULL) {
        nx_redis_req_t *req = nx_container_of(n, nx_redis_req_t, link);
        r->npending--;
        int status = err;
        if (err == NX_ETIMEOUT && req->deadline_ms > now) status = NX_ECLOSED;
        if (req->kind != REQ_HANDSHAKE) {
            if (status == NX_ETIMEOUT)
                r->st.timeouts++;
            else if (status != -ECANCELED)
                r->st.errors++;
        }
        nx_redis_get_fn fn = req->fn;
        void *arg = req->arg;
        free(req);
        if (fn != NULL) fn(arg, status, NULL, 0);
    }
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Queues one command on the current connection; the reply will pop the FIFO's head. */
static int submit(nx_redis_t *r, req_kind_t kind, nx_redis_get_fn fn, void *arg, int argc,
                  const char **argv, const size_t *lens, nx_redis_req_t **out) {
    nx_redis_req_t *req = calloc(1, sizeof(*req));
    if (req == NULL) return -ENOMEM;
    /* hiredis formats (copies) the arguments into its output buffer and asks for a write. */
    if (redisAsyncCommandArgv(r->conn->ac, on_reply, r->conn, argc, argv, lens) != REDIS_OK) {
        free(req);
        return -ENOMEM; /* the only failure left on a live, attached context */
    }
    req->kind = kind;
    req->fn = fn;
    req->arg = arg;
    req->deadline_ms = nx_shard_now_ms(r->shard) + r->cfg.command_timeout_ms;
    bool was_empty = nx_list_empty(&r->pending);
    nx_list_insert_tail(&r->pending, &req->link);
    r->npending++;
    if (was_empty) arm_cmd_timer(r);
    if (out != NULL) *out = req;
    return 0;
}

/* ---- the event adapter: hiredis registrations -> one-shot polls ---- */

static void on_read_ready(nx_op_t *op, int res, unsigned flags, unsigned buf_id);
static void on_write_ready(nx_op_t *op, int res, unsigned flags, unsigned buf_id);

/* Arms a poll for every event hiredis is registered for and none is in flight. hiredis expects
 * level-triggered registrations (it does not re-add write while a connect is in progress, for
 * one), so this runs after each event as well as from its add hooks. */
static void conn_arm(redis_conn_t *c) {
    if (c->closing || c->ac == NULL) return;
    int fd = c->ac->c.fd;
    if (c->want_read && !c->read_armed) {
        if (nx_loop_poll(c->loop, &c->read_op, fd, POLLIN) == 0)
            c->read_armed = true;
        else
            c->arm_failed = true;
    }
    if (c->want_write && !c->write_armed) {
        if (nx_loop_poll(c->loop, &c->write_op, fd, POLLOUT) == 0)
            c->write_armed = true;
        else
            c->arm_failed = true;
    }
    /* Without a poll the connection would hang silently: have the client drop it, from a
     * timer, since we may be inside nx_redis_get where no callback may run. */
    if (c->arm_failed && c->r != NULL) nx_shard_timer_start(c->r->shard, &c->r->kick_timer, 0);
}

static void ev_add_read(void *p) {
    redis_conn_t *c = p;
    c->want_read = true;
    conn_arm(c);
}

static void ev_del_read(void *p) {
    redis_conn_t *c = p;
    c->want_read = false; /* a poll in flight stays; its completion is then ignored */
}

static void ev_add_write(void *p) {
    redis_conn_t *c = p;
    c->want_write = true;
    conn_arm(c);
}

static void ev_del_write(void *p) {
    redis_conn_t *c = p;
    c->want_write = false;
}

/* hiredis is about to free the context (our redisAsyncFree, or its own after EOF, a read or
 * write error, a failed connect). Polls still in the kernel are cancelled; their completions,
 * which always come, free the struct. */
static void ev_cleanup(void *p) {
    redis_conn_t *c = p;
    c->ac = NULL;
    c->want_read = c->want_write = false;
    if (c->read_armed) nx_loop_cancel(c->loop, &c->read_op);
    if (c->write_armed) nx_loop_cancel(c->loop, &c->write_op);
    /* Still attached: hiredis dropped the connection on its own. */
    if (c->r != NULL) enter(c->r, NX_REDIS_DOWN, NX_ECLOSED);
}

/* Finishes a detached connection as far as it can now: frees the hiredis context once no hiredis
 * frame is on the stack, and the struct once nothing refers to it. Touch <c> no more after. */
static void conn_settle(redis_conn_t *c) {
    if (c->depth > 0) return;
    if (c->closing && c->ac != NULL) {
        c->depth++;
        redisAsyncFree(c->ac); /* runs on_reply(NULL) (ignored: detached) and ev_cleanup */
        c->depth--;
    }
    if (c->ac == NULL && !c->read_armed && !c->write_armed) free(c);
}

/* Lets go of the client's connection: its replies are no longer ours to match. */
static void conn_detach(nx_redis_t *r) {
    redis_conn_t *c = r->conn;
    if (c == NULL) return;
    r->conn = NULL;
    c->r = NULL;
    c->closing = true;
    conn_settle(c);
}

static bool sigpipe_ignored(void) {
    struct sigaction sa;
    return sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}

/* hiredis writes with write(2), which raises SIGPIPE on a connection the peer has reset. When the
 * process has not ignored SIGPIPE (nexus does; an embedder or a test may not), it is blocked for
 * the call and a SIGPIPE the call raised is consumed before unblocking. */
static void handle_write(redis_conn_t *c) {
    if (!c->guard_sigpipe) {
        redisAsyncHandleWrite(c->ac);
        return;
    }
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    redisAsyncHandleWrite(c->ac);
    if (!was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
            }
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* A poll completed: hand the event to hiredis if it still wants it, then re-arm. */
static void on_ready(redis_conn_t *c, bool readable, int res) {
    nx_redis_t *r = c->r;
    if (r != NULL) r_hold(r);
    bool wanted = readable ? c->want_read : c->want_write;
    if (c->ac != NULL && !c->closing && wanted) {
        if (res < 0) {
            /* Not a cancel (we cancel only after cleanup): the fd is unusable. */
            enter(r, NX_REDIS_DOWN, NX_ECLOSED);
        } else {
            c->depth++;
            if (readable)
                redisAsyncHandleRead(c->ac);
            else
                handle_write(c);
            c->depth--;
        }
    }
    conn_arm(c);
    conn_settle(c);
    if (r != NULL) r_leave(r);
}

static void on_read_ready(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    redis_conn_t *c = nx_container_of(op, redis_conn_t, read_op);
    c->read_armed = false;
    on_ready(c, true, res);
}

static void on_write_ready(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    redis_conn_t *c = nx_container_of(op, redis_conn_t, write_op);
    c->write_armed = false;
    on_ready(c, false, res);
}

/* ---- replies ---- */

/* hiredis's reply callback for every command; runs inside redisAsyncHandleRead, or with a NULL
 * reply inside hiredis's teardown of the context. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    redis_conn_t *c = privdata;
    nx_redis_t *r = c->r;
    if (r == NULL) return; /* detached: its commands have been failed already */
    if (reply == NULL) {
        enter(r, NX_REDIS_DOWN, NX_ECLOSED); /* hiredis is dropping the connection */
        return;
    }
    nx_list_t *n = nx_list_pop_head(&r->pending);
    if (n == NULL) return; /* unreachable: one FIFO entry per command hiredis accepted */
    nx_redis_req_t *req = nx_container_of(n, nx_redis_req_t, link);
    r->npending--;
    const redisReply *rep = reply;
    if (req->kind == REQ_HANDSHAKE) {
        free(req);
        if (rep->type == REDIS_REPLY_ERROR) {
            /* Wrong password, NOAUTH, bad db, LOADING: not usable; retry with backoff. */
            enter(r, NX_REDIS_DOWN, NX_EPROTO);
        } else if (--r->handshake_left == 0) {
            enter(r, NX_REDIS_UP, 0);
        }
        return;
    }
    r->st.replies++;
    int status = 0;
    const char *value = NULL;
    size_t len = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        status = NX_EPROTO;
    } else if (req->kind == REQ_GET) {
        if (rep->type == REDIS_REPLY_STRING) {
            value = rep->str;
            len = rep->len;
        } else if (rep->type == REDIS_REPLY_NIL) {
            status = NX_ENOTFOUND;
        } else {
            status = NX_EPROTO; /* GET answers a string or nil; anything else is not a value */
        }
    }
    if (status == NX_EPROTO) r->st.errors++;
    arm_cmd_timer(r);
    nx_redis_get_fn fn = req->fn;
    void *arg = req->arg;
    free(req);
    if (fn != NULL) fn(arg, status, value, len);
}

/* ---- connecting ---- */

/* Opens a connection and queues the handshake. hiredis connects non-blocking to a numeric
 * address (checked by nx_redis_new, so its getaddrinfo never does DNS). The handshake always
 * ends with a reply from Redis (AUTH and/or SELECT, else PING), so UP means Redis answers, not
 * merely that a kernel accepted the connection (a stopped or overloaded Redis does not). */
static int conn_open(nx_redis_t *r) {
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->cfg.port);
    if (ac == NULL) return -ENOMEM;
    if (ac->err) {
        redisAsyncFree(ac); /* no hooks yet: frees at once */
        return NX_ECLOSED;
    }
    redis_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        redisAsyncFree(ac);
        return -ENOMEM;
    }
    c->r = r;
    c->loop = r->shard->loop;
    c->ac = ac;
    c->read_op.cb = on_read_ready;
    c->write_op.cb = on_write_ready;
    c->guard_sigpipe = !sigpipe_ignored();
    ac->data = c;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    r->conn = c;

    r->handshake_left = 0;
    int rc = 0;
    if (r->password != NULL) {
        const char *argv[] = {"AUTH", r->password};
        size_t lens[] = {4, strlen(r->password)};
        rc = submit(r, REQ_HANDSHAKE, NULL, NULL, 2, argv, lens, NULL);
        if (rc < 0) return rc;
        r->handshake_left++;
    }
    if (r->cfg.db != 0) {
        char db[16];
        int n = snprintf(db, sizeof(db), "%u", (unsigned)r->cfg.db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, (size_t)n};
        rc = submit(r, REQ_HANDSHAKE, NULL, NULL, 2, argv, lens, NULL);
        if (rc < 0) return rc;
        r->handshake_left++;
    }
    if (r->handshake_left == 0) {
        const char *argv[] = {"PING"};
        size_t lens[] = {4};
        rc = submit(r, REQ_HANDSHAKE, NULL, NULL, 1, argv, lens, NULL);
        if (rc < 0) return rc;
        r->handshake_left++;
    }
    return 0;
}

/* ---- the state machine ---- */

/* The one transition function of a client. <err> is what pending commands end with when the
 * connection goes. Callbacks it runs may re-enter (nx_redis_free): it re-checks the state
 * after each. */
static void enter(nx_redis_t *r, nx_redis_state_t to, int err) {
    nx_redis_state_t from = r->state;
    if (from == NX_REDIS_CLOSED) return; /* final */
    switch (from) {
    case NX_REDIS_CONNECTING:
    case NX_REDIS_DOWN:
        nx_timer_stop(&r->state_timer);
        break;
    case NX_REDIS_UP:
        nx_timer_stop(&r->cmd_timer);
        break;
    case NX_REDIS_CLOSED:
        break;
    }
    r->state = to;
    if (to != NX_REDIS_UP) conn_detach(r); /* replies can no longer be matched */
    switch (to) {
    case NX_REDIS_CONNECTING: {
        nx_shard_timer_start(r->shard, &r->state_timer, r->cfg.connect_timeout_ms);
        int rc = conn_open(r);
        if (rc < 0) enter(r, NX_REDIS_DOWN, rc);
        break;
    }
    case NX_REDIS_UP:
        r->retry = 0;
        r->st.connects++;
        if (r->state_fn != NULL) r->state_fn(r->state_arg, true);
        break;
    case NX_REDIS_DOWN: {
        if (from == NX_REDIS_UP)
            r->st.disconnects++;
        else if (from == NX_REDIS_CONNECTING)
            r->st.connect_failures++;
        if (r->retry < UINT32_MAX) r->retry++;
        uint64_t delay = nx_backoff_delay_ms(&r->backoff, r->retry, nx_backoff_rng_next(&r->rng));
        nx_shard_timer_start(r->shard, &r->state_timer, delay);
        fail_pending(r, err);
        if (from == NX_REDIS_UP && r->state == NX_REDIS_DOWN && r->state_fn != NULL)
            r->state_fn(r->state_arg, false);
        break;
    }
    case NX_REDIS_CLOSED:
        nx_timer_stop(&r->kick_timer);
        fail_pending(r, -ECANCELED);
        break;
    }
}

/* ---- timers ---- */

static void on_state_timer(nx_timer_t *t) {
    nx_redis_t *r = nx_container_of(t, nx_redis_t, state_timer);
    r_hold(r);
    if (r->state == NX_REDIS_DOWN)
        enter(r, NX_REDIS_CONNECTING, 0);
    else if (r->state == NX_REDIS_CONNECTING)
        enter(r, NX_REDIS_DOWN, NX_ETIMEOUT); /* connect or handshake took too long */
    r_leave(r);
}

static void on_cmd_timer(nx_timer_t *t) {
    nx_redis_t *r = nx_container_of(t, nx_redis_t, cmd_timer);
    r_hold(r);
    if (r->state == NX_REDIS_UP && !nx_list_empty(&r->pending)) {
        nx_redis_req_t *head = nx_container_of(r->pending.next, nx_redis_req_t, link);
        if (head->deadline_ms <= nx_shard_now_ms(r->shard)) {
            /* The reply may still come, but we could not tell it from the next one's. */
            enter(r, NX_REDIS_DOWN, NX_ETIMEOUT);
        } else {
            arm_cmd_timer(r);
        }
    }
    r_leave(r);
}

static void on_kick(nx_timer_t *t) {
    nx_redis_t *r = nx_container_of(t, nx_redis_t, kick_timer);
    r_hold(r);
    if (r->conn != NULL && r->conn->arm_failed) enter(r, NX_REDIS_DOWN, NX_ECLOSED);
    r_leave(r);
}

/* ---- API ---- */

static bool numeric_host(const char *host) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int nx_redis_new(nx_shard_t *s, const nx_redis_config_t *cfg, nx_redis_state_fn state,
                 void *state_arg, nx_redis_t **out) {
    if (s == NULL || cfg == NULL || out == NULL || cfg->host == NULL || cfg->port == 0 ||
        !numeric_host(cfg->host))
        return -EINVAL;
    nx_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL) return -ENOMEM;
    r->shard = s;
    r->cfg = *cfg;
    r->host = strdup(cfg->host);
    r->password = cfg->password != NULL ? strdup(cfg->password) : NULL;
    if (r->host == NULL || (cfg->password != NULL && r->password == NULL)) {
        free(r->host);
        free(r->password);
        free(r);
        return -ENOMEM;
    }
    r->cfg.host = r->host;
    r->cfg.password = r->password;
    nx_redis_config_t *c = &r->cfg;
    if (c->connect_timeout_ms == 0) c->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (c->command_timeout_ms == 0) c->command_timeout_ms = DEFAULT_COMMAND_TIMEOUT_MS;
    if (c->reconnect_base_ms == 0) c->reconnect_base_ms = DEFAULT_RECONNECT_BASE_MS;
    if (c->reconnect_cap_ms == 0) c->reconnect_cap_ms = DEFAULT_RECONNECT_CAP_MS;
    if (c->reconnect_cap_ms < c->reconnect_base_ms) c->reconnect_cap_ms = c->reconnect_base_ms;
    if (c->max_pending == 0) c->max_pending = DEFAULT_MAX_PENDING;
    r->backoff = (nx_backoff_config_t){
        .base_ms = c->reconnect_base_ms, .cap_ms = c->reconnect_cap_ms, .max_attempts = UINT32_MAX};
    /* Clients of different shards and processes must not retry in step. */
    nx_backoff_rng_seed(&r->rng, nx_loop_clock_ns() ^ (uint64_t)(uintptr_t)r);
    r->state_fn = state;
    r->state_arg = state_arg;
    nx_list_init(&r->pending);
    nx_timer_init(&r->state_timer, on_state_timer);
    nx_timer_init(&r->cmd_timer, on_cmd_timer);
    nx_timer_init(&r->kick_timer, on_kick);
    /* A refused connect lands in DOWN at once; the state callback only hears of UP/DOWN changes
     * after an UP, so nothing runs inside this call. */
    r->state = NX_REDIS_DOWN;
    enter(r, NX_REDIS_CONNECTING, 0);
    *out = r;
    return 0;
}

void nx_redis_free(nx_redis_t *r) {
    if (r == NULL || r->state == NX_REDIS_CLOSED) return;
    r_hold(r);
    enter(r, NX_REDIS_CLOSED, -ECANCELED);
    r_leave(r);
}

bool nx_redis_up(const nx_redis_t *r) {
    return r->state == NX_REDIS_UP;
}

/* The checks every command shares: only on a live connection, only within the bound. */
static int can_submit(const nx_redis_t *r) {
    if (r->state != NX_REDIS_UP) return NX_ECLOSED;
    if (r->npending >= r->cfg.max_pending) return NX_EFULL;
    return 0;
}

int nx_redis_get(nx_redis_t *r, const char *key, size_t klen, nx_redis_get_fn fn, void *arg,
                 nx_redis_req_t **req) {
    int rc = can_submit(r);
    if (rc < 0) return rc;
    const char *argv[] = {"GET", klen > 0 ? key : ""};
    size_t lens[] = {3, klen};
    rc = submit(r, REQ_GET, fn, arg, 2, argv, lens, req);
    if (rc == 0) r->st.commands++;
    return rc;
}

int nx_redis_set(nx_redis_t *r, const char *key, size_t klen, const void *value, size_t vlen,
                 uint64_t ttl_ms) {
    int rc = can_submit(r);
    if (rc < 0) return rc;
    char ttl[24];
    int n = snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    const char *argv[] = {"SET", klen > 0 ? key : "", vlen > 0 ? value : "", "PX", ttl};
    size_t lens[] = {3, klen, vlen, 2, (size_t)n};
    rc = submit(r, REQ_WRITE, NULL, NULL, ttl_ms > 0 ? 5 : 3, argv, lens, NULL);
    if (rc == 0) r->st.commands++;
    return rc;
}

int nx_redis_del(nx_redis_t *r, const char *key, size_t klen) {
    int rc = can_submit(r);
    if (rc < 0) return rc;
    const char *argv[] = {"DEL", klen > 0 ? key : ""};
    size_t lens[] = {3, klen};
    rc = submit(r, REQ_WRITE, NULL, NULL, 2, argv, lens, NULL);
    if (rc == 0) r->st.commands++;
    return rc;
}

void nx_redis_cancel(nx_redis_req_t *req) {
    if (req == NULL) return;
    req->fn = NULL; /* the entry stays in the FIFO to match its reply */
    req->arg = NULL;
}

void nx_redis_stats(const nx_redis_t *r, nx_redis_stats_t *out) {
    *out = r->st;
    out->up = r->state == NX_REDIS_UP;
}
