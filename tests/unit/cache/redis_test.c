/* The Redis client on a real shard against a real redis-server: the handshake (PING, AUTH,
 * SELECT), binary-safe values up to 1 MiB, expiry, deep pipelines, a server killed and restarted,
 * a server that stops answering (SIGSTOP: command and connect timeouts), a peer that never
 * completes the connect, cancel, the pending bound, and freeing with commands and polls in flight
 * (ASan, through run_unit.sh, fails the test on any leak).
 *
 * Each test starts its own redis-server on a free port in a fixture (.init) and kills it by PID
 * in .fini; the child also gets PR_SET_PDEATHSIG so a crashed or timed-out test cannot leave it
 * behind. A scenario runs on the shard as a step function polled every 5 ms; callbacks only
 * record, and the test asserts on the records after the shard has ended. */
#include <criterion/criterion.h>

#include "nexus/errors.h"
#include "redis.h"
#include "shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUARD_MS 8000 /* a scenario that has not ended by then failed */

/* ---- redis-server, one per test ---- */

static pid_t g_pid = -1; /* the running redis-server (restarts replace it) */
static int g_port;
static const char *g_requirepass; /* NULL = none */

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_accepts(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* Starts redis-server on g_port and waits until it accepts connections; its PID or -1. The
 * child dies with the thread that forked it (PDEATHSIG), whatever happens to the test. */
static pid_t redis_start(void) {
    char port[16];
    snprintf(port, sizeof(port), "%d", g_port);
    const char *argv[16] = {"redis-server", "--port",      port, "--bind",
                            "127.0.0.1",    "--save",      "",   "--appendonly",
                            "no",           "--daemonize", "no", NULL};
    if (g_requirepass != NULL) {
        argv[11] = "--requirepass";
        argv[12] = g_requirepass;
        argv[13] = NULL;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(126);
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        if (port_accepts(g_port)) return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid) return -1;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* Sends one raw command on a connection of its own and returns the first bytes of the reply
 * (blocking, bounded: for a scenario's side actions, not the client under test). */
static void redis_raw(const char *cmd, char *reply, size_t cap) {
    reply[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)g_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) == (ssize_t)strlen(cmd)) {
        ssize_t n = recv(fd, reply, cap - 1, 0);
        if (n > 0) reply[n] = '\0';
    }
    close(fd);
}

static void redis_kill(void) {
    if (g_pid <= 0) return;
    kill(g_pid, SIGKILL);
    waitpid(g_pid, NULL, 0);
    g_pid = -1;
}

static void redis_up(void) {
    g_port = free_port();
    cr_assert_gt(g_port, 0);
    g_pid = redis_start();
    cr_assert_gt(g_pid, 0, "redis-server did not start");
}

static void redis_up_with_password(void) {
    g_requirepass = "s3cret pass";
    redis_up();
}

static void redis_down(void) {
    redis_kill();
    g_requirepass = NULL;
}

/* ---- the scenario on the shard ---- */

typedef struct tc tc_t;

/* One client and what its state callback saw. */
typedef struct cl {
    tc_t *t;
    nx_redis_t *r;
    nx_redis_config_t cfg;
    int new_rc;
    int ups, downs;
    bool free_when_up;   /* nx_redis_free from inside the first "up" callback */
    nx_redis_stats_t st; /* taken just before the end */
} cl_t;

/* One GET and what its callback saw. */
typedef struct got {
    tc_t *t;
    cl_t *cl;
    int rc; /* of nx_redis_get */
    nx_redis_req_t *req;
    int calls, calls_at_submit;
    int status;
    size_t len;
    char head[64];      /* the first bytes of the value */
    const char *expect; /* compared in full inside the callback when set */
    size_t elen;
    bool match;
    int seq;              /* order among all callbacks of the scenario */
    uint64_t at_ms;       /* since the scenario started */
    bool free_in_cb;      /* nx_redis_free(cl->r) from inside this callback */
    int calls_seen_in_cb; /* calls of <other> when this callback ran */
    struct got *other;
} got_t;

struct tc {
    nx_shard_t *s;
    cl_t cl[3];
    int nclients; /* 0 = 1; -1 = none */
    void (*step)(tc_t *t);
    int phase;
    uint64_t t0, mark; /* mark: a time a phase noted, since t0 */
    nx_timer_t step_timer, guard_timer;
    bool guard_fired, finished;
    int seq;
    int rcs[16]; /* return codes a scenario notes */
    uint64_t times[8];
    nx_redis_stats_t mid;
    got_t g[8];
};

static uint64_t now_ms(tc_t *t) {
    return nx_shard_now_ms(t->s) - t->t0;
}

static void on_state(void *arg, bool up) {
    cl_t *c = arg;
    if (up) {
        c->ups++;
        if (c->free_when_up && c->r != NULL) {
            nx_redis_t *r = c->r;
            c->r = NULL;
            nx_redis_free(r);
        }
    } else {
        c->downs++;
    }
}

static void on_got(void *arg, int status, const char *v, size_t len) {
    got_t *g = arg;
    g->calls++;
    g->status = status;
    g->len = len;
    g->head[0] = '\0';
    if (v != NULL) memcpy(g->head, v, len < sizeof(g->head) - 1 ? len : sizeof(g->head) - 1);
    if (v != NULL && len < sizeof(g->head)) g->head[len] = '\0';
    g->match = g->expect != NULL && v != NULL && len == g->elen && memcmp(v, g->expect, len) == 0;
    g->seq = g->t->seq++;
    g->at_ms = now_ms(g->t);
    if (g->other != NULL) g->calls_seen_in_cb = g->other->calls;
    if (g->free_in_cb && g->cl->r != NULL) {
        nx_redis_t *r = g->cl->r;
        g->cl->r = NULL;
        nx_redis_free(r);
    }
}

static int get(tc_t *t, cl_t *c, got_t *g, const char *key, size_t klen) {
    g->t = t;
    g->cl = c;
    g->rc = nx_redis_get(c->r, key, klen, on_got, g, &g->req);
    g->calls_at_submit = g->calls;
    return g->rc;
}

static void end_scenario(tc_t *t) {
    if (t->finished) return;
    t->finished = true;
    nx_timer_stop(&t->step_timer);
    nx_timer_stop(&t->guard_timer);
    for (int i = 0; i < t->nclients; i++) {
        cl_t *c = &t->cl[i];
        if (c->r == NULL) continue;
        nx_redis_stats(c->r, &c->st);
        nx_redis_t *r = c->r;
        c->r = NULL;
        nx_redis_free(r);
    }
    nx_shard_stop(t->s);
}

static void next(tc_t *t) {
    t->phase++;
    t->mark = now_ms(t);
}

static void on_step(nx_timer_t *tm) {
    tc_t *t = nx_container_of(tm, tc_t, step_timer);
    t->step(t);
    if (!t->finished) nx_shard_timer_start(t->s, &t->step_timer, 5);
}

static void on_guard(nx_timer_t *tm) {
    tc_t *t = nx_container_of(tm, tc_t, guard_timer);
    t->guard_fired = true;
    end_scenario(t);
}

static int scenario_start(nx_shard_t *s) {
    tc_t *t = s->user;
    t->s = s;
    t->t0 = nx_shard_now_ms(s);
    nx_timer_init(&t->step_timer, on_step);
    nx_timer_init(&t->guard_timer, on_guard);
    nx_shard_timer_start(s, &t->guard_timer, GUARD_MS);
    nx_shard_timer_start(s, &t->step_timer, 0);
    for (int i = 0; i < t->nclients; i++) {
        cl_t *c = &t->cl[i];
        c->t = t;
        if (c->cfg.host == NULL) c->cfg.host = "127.0.0.1";
        if (c->cfg.port == 0) c->cfg.port = (uint16_t)g_port;
        c->new_rc = nx_redis_new(s, &c->cfg, on_state, c, &c->r);
        if (c->new_rc < 0) c->r = NULL;
    }
    return 0;
}

/* After the loop stopped: let cancelled polls complete so detached connections are freed. */
static void scenario_stop(nx_shard_t *s) {
    for (int i = 0; i < 20; i++)
        nx_loop_run_once(s->loop, 2);
}

static void run(tc_t *t) {
    if (t->nclients == 0) t->nclients = 1; /* -1: none */
    nx_shard_opts_t o = {.ring_entries = 256,
                         .mailbox_capacity = 16,
                         .on_start = scenario_start,
                         .on_stop = scenario_stop,
                         .user = t};
    nx_shard_t *s = NULL;
    cr_assert_eq(nx_shard_start(0, &o, &s), 0);
    nx_shard_join_free(s);
    cr_assert_not(t->guard_fired, "the scenario did not finish (stuck in phase %d)", t->phase);
}

/* Sensible test timings: short timeouts, quick reconnects. */
static nx_redis_config_t fast_cfg(void) {
    return (nx_redis_config_t){.connect_timeout_ms = 500,
                               .command_timeout_ms = 1000,
                               .reconnect_base_ms = 20,
                               .reconnect_cap_ms = 100};
}

/* ---- connecting ---- */

static void step_up(tc_t *t) {
    cl_t *c = &t->cl[0];
    if (c->ups == 0) return;
    t->rcs[0] = nx_redis_up(c->r);
    end_scenario(t);
}

Test(redis, connects_and_reports_up, .init = redis_up, .fini = redis_down, .timeout = 20) {
    static tc_t t = {.step = step_up};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    cr_assert_eq(t.cl[0].new_rc, 0);
    cr_assert_eq(t.cl[0].ups, 1);
    cr_assert_eq(t.cl[0].downs, 0);
    cr_assert_eq(t.rcs[0], 1, "nx_redis_up inside the scenario");
    cr_assert(t.cl[0].st.up);
    cr_assert_eq(t.cl[0].st.connects, 1);
    cr_assert_eq(t.cl[0].st.connect_failures, 0);
}

static void step_bad_config(tc_t *t) {
    nx_redis_t *r = NULL;
    nx_redis_config_t cfg = fast_cfg();
    cfg.host = "localhost"; /* a name: the caller must resolve it (no DNS on a shard) */
    cfg.port = 6379;
    t->rcs[0] = nx_redis_new(t->s, &cfg, NULL, NULL, &r);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    t->rcs[1] = nx_redis_new(t->s, &cfg, NULL, NULL, &r);
    cfg.host = "::1";
    cfg.port = 1; /* nothing listens there: refused, DOWN, retrying; freed right away */
    t->rcs[2] = nx_redis_new(t->s, &cfg, NULL, NULL, &r);
    if (t->rcs[2] == 0) {
        t->g[0].t = t;
        t->rcs[3] = nx_redis_get(r, "k", 1, on_got, &t->g[0], NULL);
        nx_redis_free(r);
    }
    end_scenario(t);
}

Test(redis, rejects_names_and_port_zero, .timeout = 20) {
    static tc_t t = {.step = step_bad_config, .nclients = -1}; /* it makes its own */
    run(&t);
    cr_assert_eq(t.rcs[0], -EINVAL);
    cr_assert_eq(t.rcs[1], -EINVAL);
    cr_assert_eq(t.rcs[2], 0);
    cr_assert_eq(t.rcs[3], NX_ECLOSED, "not up yet: commands fail at once");
    cr_assert_eq(t.g[0].calls, 0);
}

/* ---- values ---- */

static char big[1 << 20];

static void step_roundtrip(tc_t *t) {
    cl_t *c = &t->cl[0];
    static const char bkey[] = {'b', 'i', 'n', 0, 'k', 0, 'y'};
    static const char bval[] = {'a', 0, 'b', 0, (char)0xff, '\r', '\n', 0};
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        for (size_t i = 0; i < sizeof(big); i++)
            big[i] = (char)((i * 7) ^ (i >> 9)); /* zeros, CR, LF and all the rest */
        t->rcs[0] = nx_redis_set(c->r, bkey, sizeof(bkey), bval, sizeof(bval), 0);
        t->rcs[1] = nx_redis_set(c->r, "big", 3, big, sizeof(big), 0);
        t->rcs[2] = nx_redis_set(c->r, "empty", 5, "", 0, 0);
        t->g[0].expect = bval;
        t->g[0].elen = sizeof(bval);
        get(t, c, &t->g[0], bkey, sizeof(bkey));
        t->g[1].expect = big;
        t->g[1].elen = sizeof(big);
        get(t, c, &t->g[1], "big", 3);
        get(t, c, &t->g[2], bkey, 3); /* "bin": the key is not cut at its NUL */
        t->g[3].expect = "";
        t->g[3].elen = 0;
        get(t, c, &t->g[3], "empty", 5);
        next(t);
        return;
    case 1:
        for (int i = 0; i < 4; i++)
            if (t->g[i].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, set_then_get_binary_and_1mib_values, .init = redis_up, .fini = redis_down,
     .timeout = 20) {
    static tc_t t = {.step = step_roundtrip};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(t.rcs[i], 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(t.g[i].rc, 0);
        cr_assert_eq(t.g[i].calls, 1, "GET %d answered once", i);
        cr_assert_eq(t.g[i].calls_at_submit, 0, "never inline");
    }
    cr_assert_eq(t.g[0].status, 0);
    cr_assert(t.g[0].match, "binary value with NULs, CR and LF comes back byte for byte");
    cr_assert_eq(t.g[1].status, 0);
    cr_assert_eq(t.g[1].len, sizeof(big));
    cr_assert(t.g[1].match, "the 1 MiB value comes back intact");
    cr_assert_eq(t.g[2].status, NX_ENOTFOUND, "a key with a NUL is not its prefix");
    cr_assert_eq(t.g[3].status, 0);
    cr_assert(t.g[3].match, "an empty value is a hit, not a miss");
    cr_assert_eq(t.cl[0].st.commands, 7);
    cr_assert_eq(t.cl[0].st.replies, 7);
    cr_assert_eq(t.cl[0].st.errors, 0);
}

static void step_missing(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        get(t, c, &t->g[0], "never-set", 9);
        nx_redis_set(c->r, "gone", 4, "v", 1, 0);
        t->rcs[0] = nx_redis_del(c->r, "gone", 4);
        get(t, c, &t->g[1], "gone", 4);
        nx_redis_set(c->r, "kept", 4, "v", 1, 0);
        t->g[2].expect = "v";
        t->g[2].elen = 1;
        get(t, c, &t->g[2], "kept", 4);
        next(t);
        return;
    case 1:
        if (t->g[0].calls == 0 || t->g[1].calls == 0 || t->g[2].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, missing_and_deleted_keys_are_not_found, .init = redis_up, .fini = redis_down,
     .timeout = 20) {
    static tc_t t = {.step = step_missing};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    cr_assert_eq(t.rcs[0], 0);
    cr_assert_eq(t.g[0].status, NX_ENOTFOUND);
    cr_assert_eq(t.g[1].status, NX_ENOTFOUND, "DEL removed it");
    cr_assert_eq(t.g[2].status, 0);
    cr_assert(t.g[2].match);
    cr_assert_eq(t.cl[0].st.errors, 0, "nil is not an error");
}

static void step_expiry(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        nx_redis_set(c->r, "short", 5, "v", 1, 50);
        nx_redis_set(c->r, "forever", 7, "w", 1, 0);
        nx_redis_set(c->r, "long", 4, "x", 1, 60000);
        get(t, c, &t->g[0], "short", 5);
        next(t);
        return;
    case 1:
        if (now_ms(t) - t->mark < 150) return;
        get(t, c, &t->g[1], "short", 5);
        get(t, c, &t->g[2], "forever", 7);
        get(t, c, &t->g[3], "long", 4);
        next(t);
        return;
    case 2:
        if (t->g[1].calls == 0 || t->g[2].calls == 0 || t->g[3].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, set_with_px_expires, .init = redis_up, .fini = redis_down, .timeout = 20) {
    static tc_t t = {.step = step_expiry};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    cr_assert_eq(t.g[0].status, 0, "found before its 50 ms are up");
    cr_assert_str_eq(t.g[0].head, "v");
    cr_assert_eq(t.g[1].status, NX_ENOTFOUND, "gone 150 ms later");
    cr_assert_eq(t.g[2].status, 0, "ttl 0 means no expiry");
    cr_assert_str_eq(t.g[2].head, "w");
    cr_assert_eq(t.g[3].status, 0);
}

/* ---- pipelining ---- */

#define PIPE_N 1000
static got_t pipe_g[PIPE_N];
static char pipe_val[PIPE_N][16];

static void step_pipeline(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        for (int i = 0; i < PIPE_N; i++) {
            char key[16];
            int kn = snprintf(key, sizeof(key), "k%d", i);
            int vn = snprintf(pipe_val[i], sizeof(pipe_val[i]), "value-%d", i);
            t->rcs[0] |= nx_redis_set(c->r, key, (size_t)kn, pipe_val[i], (size_t)vn, 0);
        }
        for (int i = 0; i < PIPE_N; i++) {
            char key[16];
            int kn = snprintf(key, sizeof(key), "k%d", i);
            pipe_g[i].expect = pipe_val[i];
            pipe_g[i].elen = strlen(pipe_val[i]);
            t->rcs[1] |= get(t, c, &pipe_g[i], key, (size_t)kn);
        }
        nx_redis_stats(c->r, &t->mid);
        next(t);
        return;
    case 1:
        if (pipe_g[PIPE_N - 1].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, a_thousand_pipelined_gets_answer_in_order, .init = redis_up, .fini = redis_down,
     .timeout = 20) {
    static tc_t t = {.step = step_pipeline};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    cr_assert_eq(t.rcs[0], 0);
    cr_assert_eq(t.rcs[1], 0);
    cr_assert_eq(t.mid.commands, 2 * PIPE_N, "all issued back to back before any reply");
    cr_assert_eq(t.mid.replies, 0);
    for (int i = 0; i < PIPE_N; i++) {
        cr_assert_eq(pipe_g[i].calls, 1, "GET %d answered once", i);
        cr_assert_eq(pipe_g[i].status, 0);
        cr_assert(pipe_g[i].match, "GET %d got its own value (%s)", i, pipe_g[i].head);
        cr_assert_eq(pipe_g[i].seq, i, "answers in the order asked");
    }
    cr_assert_eq(t.cl[0].st.replies, 2 * PIPE_N);
}

/* ---- handshake ---- */

static void step_auth(tc_t *t) {
    cl_t *good = &t->cl[0], *bad = &t->cl[1], *none = &t->cl[2];
    switch (t->phase) {
    case 0: {
        nx_redis_stats_t sb, sn;
        nx_redis_stats(bad->r, &sb);
        nx_redis_stats(none->r, &sn);
        if (good->ups == 0 || sb.connect_failures < 2 || sn.connect_failures < 2) return;
        t->rcs[0] = nx_redis_set(good->r, "k", 1, "authed", 6, 0);
        get(t, good, &t->g[0], "k", 1);
        t->rcs[1] = get(t, bad, &t->g[1], "k", 1);
        t->rcs[2] = nx_redis_set(none->r, "k", 1, "x", 1, 0);
        next(t);
        return;
    }
    case 1:
        if (t->g[0].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, auth_with_requirepass, .init = redis_up_with_password, .fini = redis_down,
     .timeout = 20) {
    static tc_t t = {.step = step_auth, .nclients = 3};
    for (int i = 0; i < 3; i++)
        t.cl[i].cfg = fast_cfg();
    t.cl[0].cfg.password = "s3cret pass"; /* a space: sent as one argument */
    t.cl[1].cfg.password = "wrong";
    run(&t);
    cr_assert_eq(t.cl[0].ups, 1);
    cr_assert_eq(t.rcs[0], 0);
    cr_assert_eq(t.g[0].status, 0);
    cr_assert_str_eq(t.g[0].head, "authed");
    cr_assert_eq(t.cl[1].ups, 0, "a wrong password never comes up");
    cr_assert_eq(t.cl[2].ups, 0, "no password: PING gets NOAUTH, never up");
    cr_assert_geq(t.cl[1].st.connect_failures, 2, "and keeps retrying");
    cr_assert_eq(t.rcs[1], NX_ECLOSED);
    cr_assert_eq(t.rcs[2], NX_ECLOSED);
    cr_assert_eq(t.g[1].calls, 0);
}

static void step_select(tc_t *t) {
    cl_t *a = &t->cl[0], *b = &t->cl[1];
    switch (t->phase) {
    case 0:
        if (a->ups == 0 || b->ups == 0) return;
        nx_redis_set(a->r, "k", 1, "zero", 4, 0);
        get(t, a, &t->g[0], "k", 1); /* answered after the SET: the SET is done */
        next(t);
        return;
    case 1:
        if (t->g[0].calls == 0) return;
        get(t, b, &t->g[1], "k", 1);
        nx_redis_set(b->r, "k", 1, "five", 4, 0);
        get(t, b, &t->g[2], "k", 1);
        next(t);
        return;
    case 2:
        if (t->g[2].calls == 0) return;
        get(t, a, &t->g[3], "k", 1);
        next(t);
        return;
    case 3:
        if (t->g[3].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, select_db, .init = redis_up, .fini = redis_down, .timeout = 20) {
    static tc_t t = {.step = step_select, .nclients = 2};
    t.cl[0].cfg = fast_cfg();
    t.cl[1].cfg = fast_cfg();
    t.cl[1].cfg.db = 5;
    run(&t);
    cr_assert_str_eq(t.g[0].head, "zero");
    cr_assert_eq(t.g[1].status, NX_ENOTFOUND, "db 5 does not see db 0's key");
    cr_assert_str_eq(t.g[2].head, "five");
    cr_assert_str_eq(t.g[3].head, "zero", "db 0 kept its own value");
}

/* ---- failures ---- */

static void step_kill_restart(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        for (int i = 0; i < 5; i++)
            get(t, c, &t->g[i], "k", 1); /* pending when the server dies */
        redis_kill();
        next(t);
        return;
    case 1:
        if (c->downs == 0) return;
        t->times[0] = now_ms(t) - t->mark;
        t->rcs[0] = nx_redis_up(c->r);
        t->rcs[1] = get(t, c, &t->g[5], "k", 1);
        t->rcs[2] = nx_redis_set(c->r, "k", 1, "v", 1, 0);
        t->rcs[3] = nx_redis_del(c->r, "k", 1);
        next(t);
        return;
    case 2:
        if (now_ms(t) - t->mark < 150) return; /* a few refused reconnects */
        nx_redis_stats(c->r, &t->mid);
        g_pid = redis_start(); /* same port */
        next(t);
        return;
    case 3:
        if (c->ups < 2) return;
        t->times[1] = now_ms(t) - t->mark;
        t->rcs[4] = nx_redis_set(c->r, "k", 1, "again", 5, 0);
        get(t, c, &t->g[6], "k", 1);
        next(t);
        return;
    case 4:
        if (t->g[6].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, server_killed_then_restarted, .init = redis_up, .fini = redis_down, .timeout = 20) {
    static tc_t t = {.step = step_kill_restart};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(t.g[i].calls, 1);
        cr_assert_eq(t.g[i].status, NX_ECLOSED, "pending GET %d fails with the connection", i);
    }
    cr_assert_eq(t.cl[0].downs, 1, "down reported once");
    cr_assert_eq(t.rcs[0], 0, "not up while down");
    cr_assert_eq(t.rcs[1], NX_ECLOSED, "GET fails at once while down");
    cr_assert_eq(t.g[5].calls, 0, "and its callback never runs");
    cr_assert_eq(t.rcs[2], NX_ECLOSED);
    cr_assert_eq(t.rcs[3], NX_ECLOSED);
    cr_assert_geq(t.mid.connect_failures, 1, "reconnects were refused while the server was gone");
    cr_assert_eq(t.mid.disconnects, 1);
    cr_assert_eq(t.cl[0].ups, 2, "came back up by itself");
    cr_assert_lt(t.times[1], 2000);
    cr_assert_eq(t.rcs[4], 0);
    cr_assert_eq(t.g[6].status, 0);
    cr_assert_str_eq(t.g[6].head, "again");
    cr_assert_eq(t.cl[0].st.connects, 2);
}

static char kill_reply[64];

static void step_idle_close(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        /* The server drops our idle connection (nothing pending): hiredis sees EOF. */
        redis_raw("CLIENT KILL TYPE normal SKIPME yes\r\n", kill_reply, sizeof(kill_reply));
        next(t);
        return;
    case 1:
        if (c->downs == 0 || c->ups < 2) return;
        nx_redis_set(c->r, "k", 1, "back", 4, 0);
        get(t, c, &t->g[0], "k", 1);
        next(t);
        return;
    case 2:
        if (t->g[0].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, server_closes_an_idle_connection, .init = redis_up, .fini = redis_down, .timeout = 20) {
    static tc_t t = {.step = step_idle_close};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    cr_assert_str_eq(kill_reply, ":1\r\n", "our connection was the one killed");
    cr_assert_eq(t.cl[0].downs, 1);
    cr_assert_eq(t.cl[0].ups, 2, "reconnected by itself");
    cr_assert_eq(t.cl[0].st.disconnects, 1);
    cr_assert_eq(t.g[0].status, 0);
    cr_assert_str_eq(t.g[0].head, "back");
}

static void step_cmd_timeout(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        nx_redis_set(c->r, "k", 1, "v", 1, 0);
        get(t, c, &t->g[0], "k", 1);
        next(t);
        return;
    case 1:
        if (t->g[0].calls == 0) return;
        kill(g_pid, SIGSTOP);
        t->times[0] = now_ms(t);
        for (int i = 1; i <= 3; i++)
            get(t, c, &t->g[i], "k", 1);
        next(t);
        return;
    case 2:
        if (now_ms(t) - t->mark < 50) return;
        get(t, c, &t->g[4], "k", 1); /* behind the others, its own deadline not yet passed */
        next(t);
        return;
    case 3:
        if (t->g[4].calls == 0) return;
        nx_redis_stats(c->r, &t->mid);
        t->rcs[0] = get(t, c, &t->g[5], "k", 1);
        next(t);
        return;
    case 4: {
        /* Still stopped: reconnects get a TCP connection but no PONG, and time out. */
        nx_redis_stats_t st;
        nx_redis_stats(c->r, &st);
        if (c->ups > 1) {
            t->rcs[1] = 1; /* up while the server cannot answer: wrong */
        } else if (st.connect_failures < 1) {
            return;
        }
        kill(g_pid, SIGCONT);
        next(t);
        return;
    }
    case 5:
        if (c->ups < 2) return;
        get(t, c, &t->g[6], "k", 1);
        next(t);
        return;
    case 6:
        if (t->g[6].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, command_timeout_drops_the_connection_and_recovers, .init = redis_up, .fini = redis_down,
     .timeout = 20) {
    static tc_t t = {.step = step_cmd_timeout};
    t.cl[0].cfg = fast_cfg();
    t.cl[0].cfg.command_timeout_ms = 100;
    t.cl[0].cfg.connect_timeout_ms = 100;
    t.cl[0].cfg.reconnect_base_ms = 10;
    t.cl[0].cfg.reconnect_cap_ms = 20;
    run(&t);
    cr_assert_eq(t.g[0].status, 0);
    for (int i = 1; i <= 3; i++) {
        uint64_t waited = t.g[i].at_ms - t.times[0];
        cr_assert_eq(t.g[i].status, NX_ETIMEOUT, "GET %d timed out", i);
        cr_assert_geq(waited, 95, "not before its timeout (%llu ms)", (unsigned long long)waited);
        cr_assert_leq(waited, 400, "about its timeout (%llu ms)", (unsigned long long)waited);
    }
    cr_assert_eq(t.g[4].status, NX_ECLOSED, "younger commands fail with the dropped connection");
    cr_assert_eq(t.g[4].at_ms, t.g[1].at_ms);
    cr_assert_eq(t.mid.timeouts, 3);
    cr_assert_eq(t.mid.disconnects, 1);
    cr_assert_eq(t.cl[0].downs, 1);
    cr_assert_eq(t.rcs[0], NX_ECLOSED, "down: GET fails at once");
    cr_assert_eq(t.rcs[1], 0, "never up while Redis could not answer PING");
    cr_assert_eq(t.cl[0].ups, 2, "recovered after SIGCONT");
    cr_assert_eq(t.g[6].status, 0);
    cr_assert_str_eq(t.g[6].head, "v");
    cr_assert_geq(t.cl[0].st.connect_failures, 1, "handshakes timed out while stopped");
}

/* A listener whose accept queue is full: the kernel drops our SYN, so connect hangs. */
static int full_listener(uint16_t *port, int fillers[2]) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 0) < 0) return -1;
    getsockname(lfd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    for (int i = 0; i < 2; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&a, sizeof(a));
    }
    sleep_ms(50); /* let the handshakes settle into the queue */
    return lfd;
}

static void step_connect_timeout(tc_t *t) {
    cl_t *c = &t->cl[0];
    nx_redis_stats_t st;
    nx_redis_stats(c->r, &st);
    switch (t->phase) {
    case 0:
        if (st.connect_failures == 0) {
            if (now_ms(t) > 3000) end_scenario(t);
            return;
        }
        t->times[0] = now_ms(t);
        t->rcs[0] = get(t, c, &t->g[0], "k", 1);
        next(t);
        return;
    case 1:
        if (now_ms(t) - t->mark < 300) return;
        end_scenario(t);
        return;
    }
}

Test(redis, connect_timeout_on_a_peer_that_never_answers, .timeout = 20) {
    int fillers[2];
    uint16_t port;
    int lfd = full_listener(&port, fillers);
    cr_assert_geq(lfd, 0);
    static tc_t t = {.step = step_connect_timeout};
    t.cl[0].cfg = fast_cfg();
    t.cl[0].cfg.port = port;
    t.cl[0].cfg.connect_timeout_ms = 100;
    t.cl[0].cfg.reconnect_base_ms = 50;
    t.cl[0].cfg.reconnect_cap_ms = 50;
    run(&t);
    close(fillers[0]);
    close(fillers[1]);
    close(lfd);
    cr_assert_gt(t.times[0], 0, "the first attempt failed");
    cr_assert_geq(t.times[0], 95, "after the connect timeout, not before (%llu ms)",
                  (unsigned long long)t.times[0]);
    cr_assert_leq(t.times[0], 400, "about the connect timeout (%llu ms)",
                  (unsigned long long)t.times[0]);
    cr_assert_eq(t.rcs[0], NX_ECLOSED);
    cr_assert_eq(t.cl[0].ups, 0);
    cr_assert_geq(t.cl[0].st.connect_failures, 2, "and it keeps trying with backoff");
    cr_assert_leq(t.cl[0].st.connect_failures, 6, "but backs off between attempts");
}

/* ---- cancel, bounds, free ---- */

static void step_cancel(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        nx_redis_set(c->r, "k", 1, "v", 1, 0);
        get(t, c, &t->g[0], "k", 1);
        get(t, c, &t->g[1], "k", 1);
        get(t, c, &t->g[2], "k", 1);
        nx_redis_cancel(t->g[0].req);
        next(t);
        return;
    case 1:
        if (t->g[2].calls == 0) return;
        next(t);
        return;
    case 2:
        if (now_ms(t) - t->mark < 30) return;
        end_scenario(t);
        return;
    }
}

Test(redis, cancel_keeps_the_callback_from_running, .init = redis_up, .fini = redis_down,
     .timeout = 20) {
    static tc_t t = {.step = step_cancel};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    cr_assert_eq(t.g[0].rc, 0);
    cr_assert_eq(t.g[0].calls, 0, "cancelled: never called");
    cr_assert_eq(t.g[1].calls, 1);
    cr_assert_str_eq(t.g[1].head, "v", "the next GET gets its own reply, not the cancelled one's");
    cr_assert_eq(t.g[2].calls, 1);
    cr_assert_eq(t.cl[0].st.replies, 4);
    cr_assert(t.cl[0].st.up, "a cancel does not disturb the connection");
}

static void step_full(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        for (int i = 0; i < 4; i++)
            get(t, c, &t->g[i], "k", 1);
        t->rcs[0] = get(t, c, &t->g[4], "k", 1);
        t->rcs[1] = nx_redis_set(c->r, "k", 1, "v", 1, 0);
        next(t);
        return;
    case 1:
        if (t->g[3].calls == 0) return;
        t->rcs[2] = get(t, c, &t->g[5], "k", 1);
        next(t);
        return;
    case 2:
        if (t->g[5].calls == 0) return;
        end_scenario(t);
        return;
    }
}

Test(redis, max_pending_bounds_the_queue, .init = redis_up, .fini = redis_down, .timeout = 20) {
    static tc_t t = {.step = step_full};
    t.cl[0].cfg = fast_cfg();
    t.cl[0].cfg.max_pending = 4;
    run(&t);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(t.g[i].rc, 0);
    cr_assert_eq(t.rcs[0], NX_EFULL);
    cr_assert_eq(t.g[4].calls, 0);
    cr_assert_eq(t.rcs[1], NX_EFULL);
    cr_assert_eq(t.rcs[2], 0, "room again once replies came");
    cr_assert_eq(t.g[5].status, NX_ENOTFOUND);
}

static void step_free_pending(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        kill(g_pid, SIGSTOP); /* no reply will come: the read poll stays in the kernel */
        for (int i = 0; i < 5; i++)
            get(t, c, &t->g[i], "k", 1);
        nx_redis_set(c->r, "big", 3, big, sizeof(big), 0); /* a write poll in flight too */
        next(t);
        return;
    case 1:
        if (now_ms(t) - t->mark < 30) return;
        for (int i = 0; i < 5; i++)
            t->rcs[i] = t->g[i].calls;
        nx_redis_t *r = c->r;
        c->r = NULL;
        nx_redis_free(r);
        for (int i = 0; i < 5; i++)
            t->rcs[5 + i] = t->g[i].calls;
        next(t);
        return;
    case 2:
        if (now_ms(t) - t->mark < 30) return; /* the loop runs on after the free */
        kill(g_pid, SIGCONT);
        end_scenario(t);
        return;
    }
}

Test(redis, free_with_pending_commands_cancels_them, .init = redis_up, .fini = redis_down,
     .timeout = 20) {
    static tc_t t = {.step = step_free_pending};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(t.rcs[i], 0, "GET %d still pending before the free", i);
        cr_assert_eq(t.rcs[5 + i], 1, "GET %d completed by the free", i);
        cr_assert_eq(t.g[i].calls, 1, "exactly once");
        cr_assert_eq(t.g[i].status, -ECANCELED);
    }
}

static void step_free_in_callback(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        nx_redis_set(c->r, "k", 1, "v", 1, 0);
        t->g[0].free_in_cb = true;
        t->g[0].other = &t->g[1];
        for (int i = 0; i < 3; i++)
            get(t, c, &t->g[i], "k", 1);
        next(t);
        return;
    case 1:
        if (t->g[0].calls == 0) return;
        next(t);
        return;
    case 2:
        if (now_ms(t) - t->mark < 30) return;
        end_scenario(t);
        return;
    }
}

Test(redis, free_inside_a_callback, .init = redis_up, .fini = redis_down, .timeout = 20) {
    static tc_t t = {.step = step_free_in_callback};
    t.cl[0].cfg = fast_cfg();
    run(&t);
    cr_assert_eq(t.g[0].calls, 1);
    cr_assert_eq(t.g[0].status, 0);
    cr_assert_eq(t.g[0].calls_seen_in_cb, 0);
    for (int i = 1; i < 3; i++) {
        cr_assert_eq(t.g[i].calls, 1, "GET %d completed once", i);
        cr_assert_eq(t.g[i].status, -ECANCELED, "its reply (already read) is not delivered");
    }
}

static void step_free_when_up(tc_t *t) {
    cl_t *c = &t->cl[0];
    switch (t->phase) {
    case 0:
        if (c->ups == 0) return;
        next(t);
        return;
    case 1:
        if (now_ms(t) - t->mark < 30) return;
        end_scenario(t);
        return;
    }
}

Test(redis, free_inside_the_up_callback, .init = redis_up, .fini = redis_down, .timeout = 20) {
    static tc_t t = {.step = step_free_when_up};
    t.cl[0].cfg = fast_cfg();
    t.cl[0].free_when_up = true;
    run(&t);
    cr_assert_eq(t.cl[0].ups, 1);
    cr_assert_eq(t.cl[0].downs, 0, "a free reports nothing");
    cr_assert_null(t.cl[0].r);
}
