/* The cache front with a real Redis (cache/cache.c over cache/redis.c and a real
 * redis-server): two caches on one shard play two replicas. The first one's miss goes through
 * the GET (a follower joins it), leads, and its completion is compressed into Redis; the second
 * one gets it as an L2 hit and then from its own L1; the bytes in Redis carry our header. Then
 * Redis dies (lookups lead at once, L1 keeps answering, the loss is counted), and in a second
 * test Redis stops answering (SIGSTOP): waiting lookups lead after the command timeout.
 *
 * Each test starts its own redis-server on a free port and kills it by PID in .fini (the child
 * also has PR_SET_PDEATHSIG). The scenario runs on the shard as a step function polled every
 * 5 ms; callbacks only record, and the test asserts after the shard has ended. */
#include <criterion/criterion.h>

#include "cache/cache.h"
#include "nexus/errors.h"

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

#define GUARD_MS 8000

/* ---- redis-server, one per test ---- */

static pid_t g_pid = -1;
static int g_port;

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

static int connect_redis(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)g_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
}

static void redis_start(void) {
    g_port = free_port();
    cr_assert_gt(g_port, 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", g_port);
    const char *argv[] = {"redis-server", "--port", port,           "--bind", "127.0.0.1",
                          "--save",       "",       "--appendonly", "no",     NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
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
    g_pid = pid;
    for (int i = 0; i < 500; i++) {
        int fd = connect_redis();
        if (fd >= 0) {
            close(fd);
            return;
        }
        cr_assert_neq(waitpid(pid, NULL, WNOHANG), pid, "redis-server exited");
        sleep_ms(10);
    }
    cr_assert_fail("redis-server did not start");
}

static void redis_kill(void) {
    if (g_pid <= 0) return;
    kill(g_pid, SIGCONT); /* in case a test stopped it */
    kill(g_pid, SIGKILL);
    waitpid(g_pid, NULL, 0);
    g_pid = -1;
}

/* GET <key> over a plain blocking socket: the first byte of the value and its length, or
 * length -1 when absent. */
static void raw_get(const char *key, char *first, long *len) {
    *len = -1;
    int fd = connect_redis();
    if (fd < 0) return;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[512];
    int n = snprintf(req, sizeof(req), "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", strlen(key), key);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
        char buf[64];
        ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0);
        if (got > 0 && buf[0] == '$') {
            buf[got] = '\0';
            *len = strtol(buf + 1, NULL, 10);
            char *crlf = strstr(buf, "\r\n");
            if (*len > 0 && crlf != NULL && crlf + 2 < buf + got) *first = crlf[2];
        }
    }
    close(fd);
}

TestSuite(cache_l2, .init = redis_start, .fini = redis_kill);

/* ---- the scenario ---- */

typedef struct tc tc_t;

typedef struct rec {
    tc_t *t;
    int calls;
    nx_cache_outcome_t outcome;
    unsigned flags;
    size_t len;
    bool same; /* the value matched what the scenario expected */
    bool returned;
    bool inline_call;
    nx_cache_wait_t *w;
} rec_t;

struct tc {
    nx_shard_t *s;
    nx_cache_t *a, *b;
    nx_cache_config_t cfg;
    nx_redis_config_t rcfg;
    int step;
    uint64_t step_at;
    nx_timer_t step_timer, guard_timer;
    bool guard_fired, finished;
    void (*run)(tc_t *t);
    char *big;
    size_t big_len;
    nx_cache_key_t k, k2;
    rec_t a1, a2, b1, b2, a3, a4, s1, s2;
    int b_tries;
    uint64_t elapsed_ms;
    char raw_first;
    long raw_len;
    nx_cache_stats_t sa, sb;
    char fail[128];
};

static void end_scenario(tc_t *t) {
    if (t->finished) return;
    t->finished = true;
    nx_timer_stop(&t->step_timer);
    nx_timer_stop(&t->guard_timer);
    nx_cache_stats_add(t->a, &t->sa);
    nx_cache_stats_add(t->b, &t->sb);
    nx_cache_free(t->a);
    nx_cache_free(t->b);
    t->a = t->b = NULL;
    nx_shard_stop(t->s);
}

static void fail(tc_t *t, const char *why) {
    snprintf(t->fail, sizeof(t->fail), "step %d: %s", t->step, why);
    end_scenario(t);
}

static void next(tc_t *t) {
    t->step++;
    t->step_at = nx_shard_now_ms(t->s);
}

static bool waited(tc_t *t, uint64_t ms) {
    return nx_shard_now_ms(t->s) - t->step_at >= ms;
}

static void on_result(void *arg, nx_cache_outcome_t o, const char *v, size_t n, unsigned flags) {
    rec_t *r = arg;
    tc_t *t = r->t;
    r->calls++;
    r->outcome = o;
    r->flags = flags;
    r->len = n;
    r->inline_call = !r->returned;
    r->same = v != NULL && n == t->big_len && memcmp(v, t->big, n) == 0;
    /* A leader answers from inside its callback: the completion goes to Redis compressed. */
    if (o == NX_CACHE_LEAD && r == &t->a1)
        nx_cache_complete(t->a, &t->k, t->big, t->big_len, true, 60000);
}

static void look(tc_t *t, nx_cache_t *c, const nx_cache_key_t *k, rec_t *r) {
    memset(r, 0, sizeof(*r));
    r->t = t;
    r->w = nx_cache_lookup(c, k, on_result, r);
    r->returned = true;
}

static bool both_up(tc_t *t) {
    nx_cache_stats_t s = {0};
    nx_cache_stats_add(t->a, &s);
    nx_cache_stats_add(t->b, &s);
    return s.redis_configured && s.redis_up;
}

static void on_step(nx_timer_t *tm) {
    tc_t *t = nx_container_of(tm, tc_t, step_timer);
    t->run(t);
    if (!t->finished) nx_shard_timer_start(t->s, &t->step_timer, 5);
}

static void on_guard(nx_timer_t *tm) {
    tc_t *t = nx_container_of(tm, tc_t, guard_timer);
    t->guard_fired = true;
    fail(t, "guard timer");
}

static int scenario_start(nx_shard_t *s) {
    tc_t *t = s->user;
    t->s = s;
    t->rcfg.host = "127.0.0.1";
    t->rcfg.port = (uint16_t)g_port;
    t->cfg.redis = &t->rcfg;
    if (nx_cache_new(s, &t->cfg, &t->a) < 0 || nx_cache_new(s, &t->cfg, &t->b) < 0) return -1;
    nx_timer_init(&t->step_timer, on_step);
    nx_timer_init(&t->guard_timer, on_guard);
    nx_shard_timer_start(s, &t->guard_timer, GUARD_MS);
    nx_shard_timer_start(s, &t->step_timer, 1);
    t->step_at = nx_shard_now_ms(s);
    return 0;
}

static void scenario_stop(nx_shard_t *s) {
    for (int i = 0; i < 50; i++)
        nx_loop_run_once(s->loop, 2);
}

static void run(tc_t *t) {
    nx_shard_opts_t o = {.ring_entries = 256,
                         .buf_count = 64,
                         .buf_size = 4096,
                         .mailbox_capacity = 16,
                         .on_start = scenario_start,
                         .on_stop = scenario_stop,
                         .user = t};
    nx_shard_t *s = NULL;
    cr_assert_eq(nx_shard_start(0, &o, &s), 0);
    nx_shard_join_free(s);
    cr_assert_str_empty(t->fail, "%s", t->fail);
}

static void init_tc(tc_t *t) {
    memset(t, 0, sizeof(*t));
    t->big_len = 6000;
    t->big = malloc(t->big_len);
    for (size_t i = 0; i < t->big_len; i++)
        t->big[i] = "{\"id\":42,\"name\":\"row\",\"ok\":true},"[i % 33];
    json_t *args = json_pack("{s:s}", "path", "/etc/hosts");
    nx_cache_key_make("tool:files__read", args, &t->k);
    json_decref(args);
    args = json_pack("{s:s}", "path", "/etc/other");
    nx_cache_key_make("tool:files__read", args, &t->k2);
    json_decref(args);
}

/* ---- replicas sharing values, then Redis going away ---- */

static void replicas(tc_t *t) {
    switch (t->step) {
    case 0: /* both clients connected */
        if (both_up(t)) next(t);
        break;
    case 1: /* a: the miss waits for the GET; a follower joins that same flight */
        look(t, t->a, &t->k, &t->a1);
        look(t, t->a, &t->k, &t->a2);
        if (t->a1.w == NULL || t->a2.w == NULL) return fail(t, "an L1 miss did not wait for L2");
        next(t);
        break;
    case 2: /* the GET missed, a1 led and completed, a2 shared */
        if (t->a2.calls > 0) next(t);
        break;
    case 3: { /* b: an L2 hit (retried until a's SET has landed, on its own connection) */
        rec_t *r = &t->b1;
        look(t, t->b, &t->k, r);
        t->b_tries++;
        if (r->w != NULL) { /* waiting for the GET: come back */
            t->step = 4;
            break;
        }
        return fail(t, "b's lookup did not wait for the GET");
    }
    case 4:
        if (t->b1.calls == 0) break;
        if (t->b1.outcome == NX_CACHE_LEAD) {
            nx_cache_complete(t->b, &t->k, NULL, 0, false, 0);
            if (t->b_tries >= 50) return fail(t, "b never saw a's value in Redis");
            t->step = 3;
            break;
        }
        look(t, t->b, &t->k, &t->b2); /* now from b's L1 */
        next(t);
        break;
    case 5: { /* the bytes in Redis carry our header and are compressed */
        char rkey[400];
        snprintf(rkey, sizeof(rkey), "nexus:%s", t->k.text);
        raw_get(rkey, &t->raw_first, &t->raw_len);
        kill(g_pid, SIGKILL); /* Redis dies */
        next(t);
        break;
    }
    case 6: { /* a notices; lookups lead at once; L1 keeps answering */
        nx_cache_stats_t s = {0};
        nx_cache_stats_add(t->a, &s);
        if (s.redis_up) {
            if (waited(t, 3000)) fail(t, "the loss of Redis went unnoticed");
            break;
        }
        look(t, t->a, &t->k2, &t->a3);
        look(t, t->a, &t->k, &t->a4);
        if (t->a3.outcome == NX_CACHE_LEAD) nx_cache_complete(t->a, &t->k2, NULL, 0, false, 0);
        end_scenario(t);
        break;
    }
    }
}

Test(cache_l2, replicas_share_values_through_redis_and_survive_its_loss, .timeout = 20) {
    static tc_t t;
    init_tc(&t);
    t.cfg = (nx_cache_config_t){
        .compression = NX_CACHE_COMPRESS_ZSTD, .compress_min = 512, .stale_grace_ms = 1000};
    t.run = replicas;
    run(&t);
    cr_assert_not(t.guard_fired);
    /* a: led after the GET missed, the follower shared */
    cr_assert_eq(t.a1.calls, 1);
    cr_assert_eq(t.a1.outcome, NX_CACHE_LEAD);
    cr_assert_not(t.a1.inline_call, "the lead came with the GET's reply");
    cr_assert_eq(t.a2.calls, 1);
    cr_assert_eq(t.a2.outcome, NX_CACHE_SHARED);
    cr_assert_eq(t.a2.flags, NX_CACHE_OK);
    cr_assert(t.a2.same);
    /* b: an L2 hit, then an L1 hit */
    cr_assert_eq(t.b1.outcome, NX_CACHE_HIT);
    cr_assert_eq(t.b1.flags, NX_CACHE_FROM_L2);
    cr_assert(t.b1.same, "the value came back whole through compression and Redis");
    cr_assert_eq(t.b2.calls, 1);
    cr_assert_eq(t.b2.outcome, NX_CACHE_HIT);
    cr_assert(t.b2.inline_call);
    cr_assert_eq(t.b2.flags, 0);
    cr_assert(t.b2.same);
    /* in Redis: our header, zstd */
    cr_assert_eq(t.raw_first, 'Z');
    cr_assert_gt(t.raw_len, 17);
    cr_assert_lt(t.raw_len, (long)t.big_len / 4);
    /* Redis gone: a lead at once, and the L1 still hits */
    cr_assert_eq(t.a3.calls, 1);
    cr_assert_eq(t.a3.outcome, NX_CACHE_LEAD);
    cr_assert(t.a3.inline_call, "no waiting on a dead Redis");
    cr_assert_eq(t.a4.outcome, NX_CACHE_HIT);
    cr_assert(t.a4.same);
    cr_assert_eq(t.sa.redis_down_events, 1);
    cr_assert_eq(t.sa.l2_errors, 0, "a dead Redis is a down event, not an error per lookup");
    cr_assert_eq(t.sa.l2_misses, 1);
    cr_assert_eq(t.sa.flights, 2);
    cr_assert_eq(t.sa.shared, 1);
    cr_assert_eq(t.sb.l2_hits, 1);
    cr_assert_eq(t.sb.l1_hits, 1);
    cr_assert(t.sa.redis_configured);
    cr_assert_not(t.sa.redis_up);
    free(t.big);
}

/* ---- Redis stops answering ---- */

static void stalled(tc_t *t) {
    switch (t->step) {
    case 0:
        if (both_up(t)) next(t);
        break;
    case 1:
        kill(g_pid, SIGSTOP);
        look(t, t->a, &t->k, &t->s1);
        look(t, t->a, &t->k, &t->s2);
        if (t->s1.w == NULL) return fail(t, "the lookup did not wait for the GET");
        next(t);
        break;
    case 2: /* the command timeout turns the GET into an error: s1 leads, s2 follows */
        if (t->s1.calls == 0) {
            if (waited(t, 3000)) fail(t, "the GET never timed out");
            break;
        }
        t->elapsed_ms = nx_shard_now_ms(t->s) - t->step_at;
        kill(g_pid, SIGCONT);
        nx_cache_complete(t->a, &t->k, "v", 1, true, 1000);
        end_scenario(t);
        break;
    }
}

Test(cache_l2, a_stalled_redis_costs_one_command_timeout, .timeout = 20) {
    static tc_t t;
    init_tc(&t);
    t.rcfg.command_timeout_ms = 100;
    t.run = stalled;
    run(&t);
    cr_assert_eq(t.s1.calls, 1);
    cr_assert_eq(t.s1.outcome, NX_CACHE_LEAD);
    cr_assert_geq(t.elapsed_ms, 90, "led after the timeout (%llu ms), not before",
                  (unsigned long long)t.elapsed_ms);
    cr_assert_eq(t.s2.calls, 1);
    cr_assert_eq(t.s2.outcome, NX_CACHE_SHARED);
    cr_assert_eq(t.s2.len, 1);
    cr_assert_eq(t.sa.l2_errors, 1);
    free(t.big);
}
