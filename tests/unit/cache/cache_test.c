/* The cache front (cache/cache.c): the lookup protocol (HIT / LEAD / SHARED), the callback
 * contract (exactly once; inline or later as cache.h says; re-entrant calls from inside a
 * callback), cancellation, TTL and stale-if-error, teardown, stats; and the L2 protocol against
 * a scripted Redis client: the GET as part of the flight, hits shared by every waiter, misses,
 * stale, corrupt and failed replies, Redis down, handing over a cancelled pending leader, and
 * the values written for other replicas.
 *
 * The scripted client replaces cache/redis.c in this binary (the nx_redis_* functions below):
 * GETs stay pending until the test answers them, SETs land in a store that every client in
 * the test shares, like replicas sharing one Redis. cache_redis_test.c runs a real one. */
#include <criterion/criterion.h>

#include "cache/cache.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the scripted Redis client ---- */

struct nx_redis {
    nx_redis_state_fn state;
    void *state_arg;
    bool up;
};

struct nx_redis_req {
    nx_redis_t *r;
    nx_redis_get_fn fn; /* NULL once cancelled */
    void *arg;
    char key[512];
    size_t klen;
    nx_redis_req_t *next;
};

typedef struct stored {
    char key[512];
    size_t klen;
    char *val;
    size_t vlen;
    uint64_t ttl;
} stored_t;

static struct {
    bool start_up;        /* clients report UP right after creation (via fake_set_up) */
    int get_rc;           /* non-zero: nx_redis_get refuses at once with it */
    nx_redis_req_t *head; /* pending GETs, oldest first */
    int get_calls, gets, sets, dels, cancels, frees; /* get_calls: refused ones too */
    stored_t store[16];
    int nstore;
    char last_set_key[512];
    uint64_t last_set_ttl;
    char last_del_key[512];
} F;

static stored_t *store_find(const char *key, size_t klen) {
    for (int i = 0; i < F.nstore; i++)
        if (F.store[i].klen == klen && memcmp(F.store[i].key, key, klen) == 0) return &F.store[i];
    return NULL;
}

static void store_put(const char *key, size_t klen, const void *v, size_t vlen, uint64_t ttl) {
    stored_t *s = store_find(key, klen);
    if (s == NULL) {
        cr_assert_lt(F.nstore, 16);
        s = &F.store[F.nstore++];
        memcpy(s->key, key, klen);
        s->klen = klen;
    }
    free(s->val);
    s->val = malloc(vlen + 1);
    memcpy(s->val, v, vlen);
    s->vlen = vlen;
    s->ttl = ttl;
}

int nx_redis_new(nx_shard_t *s, const nx_redis_config_t *cfg, nx_redis_state_fn state,
                 void *state_arg, nx_redis_t **out) {
    nx_redis_t *r = calloc(1, sizeof(*r));
    r->state = state;
    r->state_arg = state_arg;
    *out = r;
    return 0;
}

static int pending_gets(void) {
    int n = 0;
    for (nx_redis_req_t *q = F.head; q != NULL; q = q->next)
        n += q->fn != NULL;
    return n;
}

void nx_redis_free(nx_redis_t *r) {
    if (r == NULL) return;
    F.frees++;
    /* Like the real client: pending GETs of <r> complete with -ECANCELED first. */
    nx_redis_req_t **pp = &F.head;
    while (*pp != NULL) {
        nx_redis_req_t *q = *pp;
        if (q->r != r) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        if (q->fn != NULL) q->fn(q->arg, -ECANCELED, NULL, 0);
        free(q);
    }
    free(r);
}

bool nx_redis_up(const nx_redis_t *r) {
    return r->up;
}

int nx_redis_get(nx_redis_t *r, const char *key, size_t klen, nx_redis_get_fn fn, void *arg,
                 nx_redis_req_t **req) {
    F.get_calls++;
    if (!r->up) return NX_ECLOSED;
    if (F.get_rc != 0) return F.get_rc;
    nx_redis_req_t *q = calloc(1, sizeof(*q));
    q->r = r;
    q->fn = fn;
    q->arg = arg;
    memcpy(q->key, key, klen);
    q->klen = klen;
    nx_redis_req_t **pp = &F.head;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = q;
    F.gets++;
    if (req != NULL) *req = q;
    return 0;
}

int nx_redis_set(nx_redis_t *r, const char *key, size_t klen, const void *value, size_t vlen,
                 uint64_t ttl_ms) {
    if (!r->up) return NX_ECLOSED;
    F.sets++;
    store_put(key, klen, value, vlen, ttl_ms);
    snprintf(F.last_set_key, sizeof(F.last_set_key), "%.*s", (int)klen, key);
    F.last_set_ttl = ttl_ms;
    return 0;
}

int nx_redis_del(nx_redis_t *r, const char *key, size_t klen) {
    if (!r->up) return NX_ECLOSED;
    F.dels++;
    snprintf(F.last_del_key, sizeof(F.last_del_key), "%.*s", (int)klen, key);
    stored_t *s = store_find(key, klen);
    if (s != NULL) s->vlen = (size_t)-1; /* gone */
    return 0;
}

void nx_redis_cancel(nx_redis_req_t *req) {
    F.cancels++;
    req->fn = NULL;
}

void nx_redis_stats(const nx_redis_t *r, nx_redis_stats_t *out) {
    memset(out, 0, sizeof(*out));
    out->up = r->up;
}

static void fake_set_up(nx_redis_t *r, bool up) {
    r->up = up;
    if (r->state != NULL) r->state(r->state_arg, up);
}

enum { FROM_STORE = 1 };

/* Answers the oldest pending GET: FROM_STORE (the stored value, or NX_ENOTFOUND), or <status>.
 * A cancelled GET is answered to nobody. */
static void fake_answer(int status) {
    nx_redis_req_t *q = F.head;
    cr_assert_not_null(q, "no GET pending");
    F.head = q->next;
    if (q->fn != NULL) {
        if (status == FROM_STORE) {
            stored_t *s = store_find(q->key, q->klen);
            if (s != NULL && s->vlen != (size_t)-1)
                q->fn(q->arg, 0, s->val, s->vlen);
            else
                q->fn(q->arg, NX_ENOTFOUND, NULL, 0);
        } else {
            q->fn(q->arg, status, NULL, 0);
        }
    }
    free(q);
}

static void fake_answer_bytes(const char *v, size_t n) {
    nx_redis_req_t *q = F.head;
    cr_assert_not_null(q, "no GET pending");
    F.head = q->next;
    if (q->fn != NULL) q->fn(q->arg, 0, v, n);
    free(q);
}

/* ---- fixtures ---- */

static nx_loop_t *loop;
static nx_shard_t shard;
static nx_cache_t *cache, *cache2;
static nx_redis_config_t redis_cfg = {.host = "127.0.0.1", .port = 6379};

static void setup(void) {
    memset(&F, 0, sizeof(F));
    nx_loop_opts_t o = {.entries = 8};
    cr_assert_eq(nx_loop_new(&o, &loop), 0);
    memset(&shard, 0, sizeof(shard));
    shard.loop = loop;
    cache = cache2 = NULL;
}

static void teardown(void) {
    nx_cache_free(cache);
    nx_cache_free(cache2);
    while (F.head != NULL) {
        nx_redis_req_t *q = F.head;
        F.head = q->next;
        free(q);
    }
    for (int i = 0; i < F.nstore; i++)
        free(F.store[i].val);
    nx_loop_free(loop);
}

TestSuite(cache, .init = setup, .fini = teardown);

static nx_cache_t *make(nx_cache_config_t cfg) {
    nx_cache_t *c = NULL;
    cr_assert_eq(nx_cache_new(&shard, &cfg, &c), 0);
    return c;
}

/* A cache with the scripted Redis, up. */
static nx_cache_t *make_l2(nx_cache_config_t cfg) {
    cfg.redis = &redis_cfg;
    nx_cache_t *c = make(cfg);
    fake_set_up(c->redis, true);
    return c;
}

static nx_cache_key_t key(const char *target, const char *args) {
    json_error_t err;
    json_t *v = json_loads(args, JSON_DECODE_ANY, &err);
    cr_assert_not_null(v);
    nx_cache_key_t k;
    cr_assert_eq(nx_cache_key_make(target, v, &k), 0);
    json_decref(v);
    return k;
}

/* Lets the loop's cached clock move on by at least <ms>. */
static void advance(uint64_t ms) {
    uint64_t t0 = nx_loop_now_ms(loop);
    while (nx_loop_now_ms(loop) < t0 + ms)
        nx_loop_run_once(loop, (int64_t)ms);
}

/* ---- what a lookup's callback saw ---- */

typedef struct rec rec_t;
struct rec {
    int calls;
    int seq; /* order among all callbacks of the test */
    nx_cache_outcome_t outcome;
    char value[4096];
    size_t len;
    bool value_null;
    unsigned flags;
    nx_cache_wait_t *w;
    bool returned;    /* nx_cache_lookup has returned (else the callback is inline) */
    bool inline_call; /* the callback ran before nx_cache_lookup returned */
    void (*then)(rec_t *r, const char *v, size_t n); /* an action inside the callback */
    nx_cache_t *c;
    const nx_cache_key_t *key;
    rec_t *other;
};

static int seq;

static void on_result(void *arg, nx_cache_outcome_t o, const char *v, size_t n, unsigned flags) {
    rec_t *r = arg;
    r->calls++;
    r->seq = ++seq;
    r->outcome = o;
    r->flags = flags;
    r->len = n;
    r->value_null = v == NULL;
    r->inline_call = !r->returned;
    if (v != NULL && n <= sizeof(r->value)) memcpy(r->value, v, n);
    if (r->then != NULL) r->then(r, v, n);
}

static void look(nx_cache_t *c, const nx_cache_key_t *k, rec_t *r) {
    r->c = c;
    r->key = k;
    r->returned = false;
    r->w = nx_cache_lookup(c, k, on_result, r);
    r->returned = true;
    /* The contract: NULL exactly when the callback already ran. */
    cr_assert_eq(r->w == NULL, r->calls > 0, "handle %p after %d calls", (void *)r->w, r->calls);
}

static void expect(const rec_t *r, nx_cache_outcome_t o, const char *value) {
    cr_assert_eq(r->calls, 1, "callback ran %d times", r->calls);
    cr_assert_eq(r->outcome, o, "outcome %d, want %d", r->outcome, o);
    if (value == NULL) {
        cr_assert(r->value_null, "LEAD carries no value");
    } else {
        cr_assert_eq(r->len, strlen(value), "length %zu, want %zu", r->len, strlen(value));
        cr_assert_eq(memcmp(r->value, value, r->len), 0, "value %.*s, want %s", (int)r->len,
                     r->value, value);
    }
}

static void complete(nx_cache_t *c, const nx_cache_key_t *k, const char *v, bool ok, uint64_t ttl) {
    nx_cache_complete(c, k, v, v ? strlen(v) : 0, ok, ttl);
}

static nx_cache_stats_t stats(const nx_cache_t *c) {
    nx_cache_stats_t s;
    memset(&s, 0, sizeof(s));
    nx_cache_stats_add(c, &s);
    return s;
}

/* ================= L1 only ================= */

Test(cache, a_miss_leads_inline_and_the_completion_makes_hits) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{\"a\":1}");
    rec_t a = {0}, b = {0};
    look(cache, &k, &a);
    expect(&a, NX_CACHE_LEAD, NULL);
    cr_assert(a.inline_call, "without Redis a lead is inline");
    complete(cache, &k, "result", true, 60000);
    look(cache, &k, &b);
    expect(&b, NX_CACHE_HIT, "result");
    cr_assert(b.inline_call);
    cr_assert_eq(b.flags, 0, "an L1 hit is not FROM_L2");
    nx_cache_key_t same = key("tool:t", "{ \"a\" : 1 }");
    rec_t c = {0};
    look(cache, &same, &c);
    expect(&c, NX_CACHE_HIT, "result");
    nx_cache_stats_t s = stats(cache);
    cr_assert_eq(s.l1_hits, 2);
    cr_assert_eq(s.l1_misses, 1);
    cr_assert_eq(s.flights, 1);
    cr_assert_eq(s.l1_entries, 1);
    cr_assert_eq(s.l1_bytes, nx__l1_cost(k.len, 6));
    cr_assert_not(s.redis_configured);
}

Test(cache, followers_get_the_leaders_value_in_arrival_order) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, f[3] = {{0}};
    look(cache, &k, &lead);
    expect(&lead, NX_CACHE_LEAD, NULL);
    for (int i = 0; i < 3; i++) {
        look(cache, &k, &f[i]);
        cr_assert_not_null(f[i].w, "a follower waits");
        cr_assert_eq(f[i].calls, 0);
    }
    /* Another key is not in this flight. */
    nx_cache_key_t other = key("tool:t", "{\"x\":1}");
    rec_t o = {0};
    look(cache, &other, &o);
    expect(&o, NX_CACHE_LEAD, NULL);
    complete(cache, &k, "shared!", true, 60000);
    for (int i = 0; i < 3; i++) {
        expect(&f[i], NX_CACHE_SHARED, "shared!");
        cr_assert_eq(f[i].flags, NX_CACHE_OK);
        cr_assert_not(f[i].inline_call);
        if (i > 0) cr_assert_gt(f[i].seq, f[i - 1].seq, "arrival order");
    }
    nx_cache_stats_t s = stats(cache);
    cr_assert_eq(s.flights, 2);
    cr_assert_eq(s.shared, 3);
    /* A second completion of an ended flight changes nothing for anyone. */
    complete(cache, &k, "again", true, 60000);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(f[i].calls, 1);
    complete(cache, &other, "o", false, 0);
}

Test(cache, a_failed_leader_shares_its_failure_and_stores_nothing) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, f = {0}, next = {0};
    look(cache, &k, &lead);
    look(cache, &k, &f);
    complete(cache, &k, "{\"error\":\"boom\"}", false, 60000);
    expect(&f, NX_CACHE_SHARED, "{\"error\":\"boom\"}");
    cr_assert_eq(f.flags & NX_CACHE_OK, 0, "the failure is not OK");
    look(cache, &k, &next);
    expect(&next, NX_CACHE_LEAD, NULL);
    cr_assert_eq(stats(cache).l1_entries, 0);
    complete(cache, &k, NULL, false, 0);
}

Test(cache, ttl_zero_or_an_oversized_value_is_shared_but_not_kept) {
    cache = make((nx_cache_config_t){.max_entry_bytes = 8});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, f = {0}, again = {0};
    look(cache, &k, &lead);
    look(cache, &k, &f);
    complete(cache, &k, "v", true, 0);
    expect(&f, NX_CACHE_SHARED, "v");
    cr_assert_eq(f.flags, NX_CACHE_OK);
    look(cache, &k, &again);
    expect(&again, NX_CACHE_LEAD, NULL);
    rec_t f2 = {0}, last = {0};
    look(cache, &k, &f2);
    complete(cache, &k, "123456789", true, 60000);
    expect(&f2, NX_CACHE_SHARED, "123456789");
    look(cache, &k, &last);
    expect(&last, NX_CACHE_LEAD, NULL);
    complete(cache, &k, "12345678", true, 60000); /* exactly the bound: kept */
    rec_t hit = {0};
    look(cache, &k, &hit);
    expect(&hit, NX_CACHE_HIT, "12345678");
}

Test(cache, cancelling_a_follower_leaves_the_others_alone) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, f[3] = {{0}};
    look(cache, &k, &lead);
    for (int i = 0; i < 3; i++)
        look(cache, &k, &f[i]);
    nx_cache_lookup_cancel(f[1].w);
    nx_cache_lookup_cancel(NULL); /* harmless */
    complete(cache, &k, "v", true, 1000);
    expect(&f[0], NX_CACHE_SHARED, "v");
    cr_assert_eq(f[1].calls, 0, "a cancelled lookup never hears back");
    expect(&f[2], NX_CACHE_SHARED, "v");
    cr_assert_eq(stats(cache).shared, 2);
}

/* Inside a SHARED callback after a failure: look the key up again (a new flight, led inline)
 * and let a later follower of the old flight join that new flight. */
static void relook(rec_t *r, const char *v, size_t n) {
    look(r->c, r->key, r->other);
}

Test(cache, a_lookup_from_inside_a_callback_starts_or_joins_a_new_flight) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, f1 = {0}, f2 = {0}, n1 = {0}, n2 = {0};
    look(cache, &k, &lead);
    look(cache, &k, &f1);
    look(cache, &k, &f2);
    f1.then = relook;
    f1.other = &n1;
    f2.then = relook;
    f2.other = &n2;
    complete(cache, &k, "fail", false, 0);
    expect(&f1, NX_CACHE_SHARED, "fail");
    expect(&f2, NX_CACHE_SHARED, "fail");
    expect(&n1, NX_CACHE_LEAD, NULL);
    cr_assert(n1.inline_call);
    cr_assert_not_null(n2.w, "the second re-lookup follows the new flight");
    cr_assert_eq(n2.calls, 0);
    complete(cache, &k, "second", true, 60000);
    expect(&n2, NX_CACHE_SHARED, "second");
}

Test(cache, a_lookup_from_inside_a_shared_callback_hits_the_stored_value) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, f = {0}, inner = {0};
    look(cache, &k, &lead);
    look(cache, &k, &f);
    f.then = relook;
    f.other = &inner;
    complete(cache, &k, "stored", true, 60000);
    expect(&inner, NX_CACHE_HIT, "stored");
    cr_assert(inner.inline_call);
}

/* Inside a HIT callback: replace and invalidate the very entry being read, then read on. */
static void overwrite_then_read(rec_t *r, const char *v, size_t n) {
    nx_cache_complete(r->c, r->key, "a much longer replacement value", 31, true, 60000);
    nx_cache_invalidate(r->c, r->key);
    cr_assert_eq(memcmp(v, "original", 8), 0, "the borrowed value stays valid (ASan)");
}

Test(cache, completing_from_inside_a_hit_callback_keeps_the_borrowed_value_alive) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, hit = {0}, after = {0};
    look(cache, &k, &lead);
    complete(cache, &k, "original", true, 60000);
    hit.then = overwrite_then_read;
    look(cache, &k, &hit);
    expect(&hit, NX_CACHE_HIT, "original");
    look(cache, &k, &after);
    expect(&after, NX_CACHE_LEAD, NULL);
    cr_assert_eq(stats(cache).l1_entries, 0);
}

static void cancel_other(rec_t *r, const char *v, size_t n) {
    nx_cache_lookup_cancel(r->other->w);
}

static void cancel_self(rec_t *r, const char *v, size_t n) {
    nx_cache_lookup_cancel(r->w); /* a no-op inside the callback */
}

Test(cache, a_callback_may_cancel_a_queued_waiter_or_itself) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, a = {0}, b = {0}, c = {0};
    look(cache, &k, &lead);
    look(cache, &k, &a);
    look(cache, &k, &b);
    look(cache, &k, &c);
    a.then = cancel_other;
    a.other = &b;
    c.then = cancel_self;
    complete(cache, &k, "v", true, 60000);
    expect(&a, NX_CACHE_SHARED, "v");
    cr_assert_eq(b.calls, 0, "cancelled while queued for delivery");
    expect(&c, NX_CACHE_SHARED, "v");
}

Test(cache, entries_expire_then_serve_stale_within_the_grace) {
    cache = make((nx_cache_config_t){.stale_grace_ms = 600000});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, hit = {0}, miss = {0};
    const char *sv;
    size_t sn;
    cr_assert_not(nx_cache_stale(cache, &k, &sv, &sn), "nothing yet");
    look(cache, &k, &lead);
    complete(cache, &k, "old", true, 20);
    look(cache, &k, &hit);
    expect(&hit, NX_CACHE_HIT, "old");
    advance(30);
    look(cache, &k, &miss);
    expect(&miss, NX_CACHE_LEAD, NULL);
    /* The leader's call failed: stale-if-error. */
    cr_assert(nx_cache_stale(cache, &k, &sv, &sn));
    cr_assert_eq(sn, 3);
    cr_assert_eq(memcmp(sv, "old", 3), 0);
    nx_cache_note_stale(cache);
    nx_cache_stats_t s = stats(cache);
    cr_assert_eq(s.stale_served, 1);
    cr_assert_eq(s.l1_misses, 2);
    cr_assert_eq(s.l1_entries, 1, "a stale entry is kept for the grace");
    complete(cache, &k, NULL, false, 0);
}

Test(cache, without_grace_nothing_is_stale) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, miss = {0};
    look(cache, &k, &lead);
    complete(cache, &k, "old", true, 10);
    advance(20);
    const char *sv;
    size_t sn;
    cr_assert_not(nx_cache_stale(cache, &k, &sv, &sn));
    look(cache, &k, &miss);
    expect(&miss, NX_CACHE_LEAD, NULL);
    cr_assert_eq(stats(cache).l1_expired, 1);
    cr_assert_eq(stats(cache).l1_entries, 0);
    complete(cache, &k, NULL, false, 0);
}

Test(cache, a_stale_value_handed_to_complete_reaches_the_followers) {
    cache = make((nx_cache_config_t){.stale_grace_ms = 600000});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, lead2 = {0}, f = {0}, inner = {0};
    look(cache, &k, &lead);
    complete(cache, &k, "stale value", true, 10);
    advance(20);
    look(cache, &k, &lead2);
    expect(&lead2, NX_CACHE_LEAD, NULL);
    look(cache, &k, &f);
    /* The follower's callback asks for a stale value too, while the first is being shared. */
    const char *sv;
    size_t sn;
    cr_assert(nx_cache_stale(cache, &k, &sv, &sn));
    f.then = relook;
    f.other = &inner;
    nx_cache_complete(cache, &k, sv, sn, false, 0);
    expect(&f, NX_CACHE_SHARED, "stale value");
    expect(&inner, NX_CACHE_LEAD, NULL);
    complete(cache, &k, NULL, false, 0);
}

Test(cache, invalidate_drops_the_entry) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, again = {0};
    look(cache, &k, &lead);
    complete(cache, &k, "v", true, 60000);
    nx_cache_invalidate(cache, &k);
    nx_cache_invalidate(cache, &k); /* absent: harmless */
    look(cache, &k, &again);
    expect(&again, NX_CACHE_LEAD, NULL);
    complete(cache, &k, NULL, false, 0);
}

Test(cache, the_byte_budget_evicts_with_the_configured_policy) {
    nx_cache_key_t k[4];
    for (int i = 0; i < 4; i++) {
        char args[16];
        snprintf(args, sizeof(args), "{\"i\":%d}", i);
        k[i] = key("tool:t", args);
    }
    cache = make(
        (nx_cache_config_t){.max_bytes = 3 * nx__l1_cost(k[0].len, 1), .eviction = NX_CACHE_CLOCK});
    for (int i = 0; i < 4; i++) {
        rec_t r = {0};
        look(cache, &k[i], &r);
        complete(cache, &k[i], "v", true, 60000);
        if (i == 2) {
            rec_t h = {0};
            look(cache, &k[0], &h); /* referenced: CLOCK spares it */
            expect(&h, NX_CACHE_HIT, "v");
        }
    }
    nx_cache_stats_t s = stats(cache);
    cr_assert_eq(s.l1_evictions, 1);
    cr_assert_eq(s.l1_entries, 3);
    rec_t h0 = {0}, h1 = {0};
    look(cache, &k[0], &h0);
    expect(&h0, NX_CACHE_HIT, "v");
    look(cache, &k[1], &h1);
    expect(&h1, NX_CACHE_LEAD, NULL);
    complete(cache, &k[1], NULL, false, 0);
}

/* During teardown: a LEAD callback tries to use the cache again. */
static void use_while_closing(rec_t *r, const char *v, size_t n) {
    rec_t *inner = r->other;
    look(r->c, r->key, inner); /* leads inline, joins nothing */
    nx_cache_complete(r->c, r->key, "x", 1, true, 1000);
    const char *sv;
    size_t sn;
    cr_assert_not(nx_cache_stale(r->c, r->key, &sv, &sn));
}

Test(cache, free_completes_waiters_as_lead_exactly_once) {
    cache = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t lead = {0}, f[2] = {{0}}, inner = {0};
    look(cache, &k, &lead);
    look(cache, &k, &f[0]);
    look(cache, &k, &f[1]);
    f[0].then = use_while_closing;
    f[0].other = &inner;
    nx_cache_free(cache);
    cache = NULL;
    expect(&f[0], NX_CACHE_LEAD, NULL);
    expect(&f[1], NX_CACHE_LEAD, NULL);
    expect(&inner, NX_CACHE_LEAD, NULL);
    cr_assert(inner.inline_call);
    nx_cache_free(NULL);
}

Test(cache, stats_sum_across_shards) {
    cache = make((nx_cache_config_t){0});
    cache2 = make((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t r[4] = {{0}};
    look(cache, &k, &r[0]);
    complete(cache, &k, "v", true, 60000);
    look(cache, &k, &r[1]);
    look(cache2, &k, &r[2]);
    complete(cache2, &k, "w", true, 60000);
    look(cache2, &k, &r[3]);
    nx_cache_stats_t s;
    memset(&s, 0, sizeof(s));
    nx_cache_stats_add(cache, &s);
    nx_cache_stats_add(cache2, &s);
    cr_assert_eq(s.l1_hits, 2);
    cr_assert_eq(s.l1_misses, 2);
    cr_assert_eq(s.flights, 2);
    cr_assert_eq(s.l1_entries, 2);
    cr_assert_not(s.redis_configured);
    cr_assert_not(s.redis_up);
}

Test(cache, bad_configurations_are_refused) {
    nx_cache_t *c = (nx_cache_t *)1;
    cr_assert_eq(nx_cache_new(&shard, NULL, &c), -EINVAL);
    cr_assert_null(c);
    cr_assert_eq(nx_cache_new(NULL, &(nx_cache_config_t){0}, &c), -EINVAL);
    cr_assert_eq(nx_cache_new(&shard, &(nx_cache_config_t){.eviction = 7}, &c), -EINVAL);
    cr_assert_eq(nx_cache_new(&shard, &(nx_cache_config_t){.compression = 9}, &c), -EINVAL);
    char prefix[200];
    memset(prefix, 'p', sizeof(prefix) - 1);
    prefix[199] = '\0';
    cr_assert_eq(nx_cache_new(&shard, &(nx_cache_config_t){.redis_prefix = prefix}, &c), -EINVAL);
    nx_redis_config_t no_host = {.port = 1};
    cr_assert_eq(nx_cache_new(&shard, &(nx_cache_config_t){.redis = &no_host}, &c), -EINVAL);
}

/* ================= with the scripted Redis ================= */

Test(cache, the_l2_get_is_part_of_the_flight) {
    cache = make_l2((nx_cache_config_t){.stale_grace_ms = 5000});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t a = {0}, b = {0}, c = {0};
    look(cache, &k, &a);
    cr_assert_not_null(a.w, "an L1 miss with Redis up waits for the GET");
    cr_assert_eq(F.gets, 1);
    char want_key[400];
    snprintf(want_key, sizeof(want_key), "nexus:%s", k.text);
    cr_assert_eq(F.head->klen, strlen(want_key));
    cr_assert_eq(memcmp(F.head->key, want_key, F.head->klen), 0);
    look(cache, &k, &b);
    look(cache, &k, &c);
    cr_assert_eq(F.gets, 1, "followers join the pending GET, they do not issue their own");
    cr_assert_not_null(b.w);
    fake_answer(NX_ENOTFOUND);
    expect(&a, NX_CACHE_LEAD, NULL);
    cr_assert_eq(b.calls + c.calls, 0, "only the first in line leads");
    complete(cache, &k, "from backend", true, 60000);
    expect(&b, NX_CACHE_SHARED, "from backend");
    expect(&c, NX_CACHE_SHARED, "from backend");
    nx_cache_stats_t s = stats(cache);
    cr_assert_eq(s.l2_misses, 1);
    cr_assert_eq(s.flights, 1);
    cr_assert_eq(s.shared, 2);
    cr_assert(s.redis_configured && s.redis_up);
    /* The completion wrote the value for other replicas: PX = ttl + grace, fresh-until in
     * wall-clock time. */
    cr_assert_eq(F.sets, 1);
    cr_assert_str_eq(F.last_set_key, want_key);
    cr_assert_eq(F.last_set_ttl, 65000);
    stored_t *st = store_find(want_key, strlen(want_key));
    nx_l2_value_t v;
    cr_assert_eq(nx__l2_value_decode(st->val, st->vlen, 1 << 20, &v), 0);
    cr_assert_eq(v.len, 12);
    cr_assert_eq(memcmp(v.p, "from backend", 12), 0);
    uint64_t now = wall_ms();
    cr_assert(v.fresh_until_ms > now + 59000 && v.fresh_until_ms <= now + 60000,
              "fresh until ~ now + ttl");
    nx__l2_value_release(&v);
}

Test(cache, an_l2_hit_is_delivered_to_every_waiter_and_copied_into_l1) {
    cache = make_l2((nx_cache_config_t){0});
    cache2 = make_l2((nx_cache_config_t){0}); /* another replica */
    nx_cache_key_t k = key("tool:t", "{\"q\":1}");
    rec_t a = {0};
    look(cache, &k, &a);
    fake_answer(FROM_STORE);
    expect(&a, NX_CACHE_LEAD, NULL);
    complete(cache, &k, "replicated", true, 60000);
    rec_t b1 = {0}, b2 = {0}, inner = {0}, b3 = {0};
    look(cache2, &k, &b1);
    look(cache2, &k, &b2);
    b2.then = relook; /* an L1 hit by then */
    b2.other = &inner;
    fake_answer(FROM_STORE);
    expect(&b1, NX_CACHE_HIT, "replicated");
    expect(&b2, NX_CACHE_HIT, "replicated");
    cr_assert_eq(b1.flags, NX_CACHE_FROM_L2);
    cr_assert_eq(b2.flags, NX_CACHE_FROM_L2);
    expect(&inner, NX_CACHE_HIT, "replicated");
    cr_assert_eq(inner.flags, 0, "copied into L1");
    look(cache2, &k, &b3);
    expect(&b3, NX_CACHE_HIT, "replicated");
    nx_cache_stats_t s = stats(cache2);
    cr_assert_eq(s.l2_hits, 1);
    cr_assert_eq(s.flights, 0, "nobody on this replica called the backend");
    cr_assert_eq(s.l1_hits, 2);
}

Test(cache, compressed_values_reach_the_other_replica) {
    nx_cache_compression_t algos[] = {NX_CACHE_COMPRESS_LZ4, NX_CACHE_COMPRESS_ZSTD};
    char formats[] = {NX_L2_LZ4, NX_L2_ZSTD};
    char big[3000];
    for (size_t i = 0; i < sizeof(big) - 1; i++)
        big[i] = "{\"row\":12345,\"ok\":true},"[i % 24];
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 2; i++) {
        nx_cache_config_t cfg = {.compression = algos[i], .compress_min = 512};
        cache = make_l2(cfg);
        cache2 = make_l2(cfg);
        nx_cache_key_t k = key("tool:t", i == 0 ? "1" : "2");
        rec_t a = {0}, b = {0};
        look(cache, &k, &a);
        fake_answer(NX_ENOTFOUND);
        complete(cache, &k, big, true, 60000);
        char rk[400];
        snprintf(rk, sizeof(rk), "nexus:%s", k.text);
        stored_t *st = store_find(rk, strlen(rk));
        cr_assert_eq(st->val[0], formats[i]);
        cr_assert_lt(st->vlen, strlen(big) / 4, "compressed on the way to Redis");
        look(cache2, &k, &b);
        fake_answer(FROM_STORE);
        expect(&b, NX_CACHE_HIT, big);
        nx_cache_free(cache);
        nx_cache_free(cache2);
        cache = cache2 = NULL;
    }
}

Test(cache, a_stale_l2_value_is_a_miss_but_serves_stale_if_error) {
    cache = make_l2((nx_cache_config_t){.stale_grace_ms = 600000});
    nx_cache_key_t k = key("tool:t", "{}");
    char *enc;
    size_t elen;
    cr_assert_eq(nx__l2_value_encode(NX_CACHE_COMPRESS_NONE, 1024, "yesterday", 9, wall_ms() - 1000,
                                     &enc, &elen),
                 0);
    rec_t a = {0};
    look(cache, &k, &a);
    fake_answer_bytes(enc, elen);
    free(enc);
    expect(&a, NX_CACHE_LEAD, NULL);
    const char *sv;
    size_t sn;
    cr_assert(nx_cache_stale(cache, &k, &sv, &sn), "kept for stale-if-error");
    cr_assert_eq(sn, 9);
    cr_assert_eq(memcmp(sv, "yesterday", 9), 0);
    nx_cache_stats_t s = stats(cache);
    cr_assert_eq(s.l2_misses, 1);
    cr_assert_eq(s.l2_hits, 0);
    complete(cache, &k, NULL, false, 0);
}

Test(cache, corrupt_or_failed_l2_replies_count_as_errors_and_lead) {
    cache = make_l2((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    const char *garbage[] = {"", "R", "plain string from someone else", "Z\x10\0\0\0"};
    size_t glen[] = {0, 1, 30, 5};
    for (int i = 0; i < 4; i++) {
        rec_t a = {0}, b = {0};
        look(cache, &k, &a);
        look(cache, &k, &b);
        fake_answer_bytes(garbage[i], glen[i]);
        expect(&a, NX_CACHE_LEAD, NULL);
        cr_assert_eq(b.calls, 0);
        complete(cache, &k, "fresh", false, 0);
        expect(&b, NX_CACHE_SHARED, "fresh");
    }
    int statuses[] = {NX_ETIMEOUT, NX_ECLOSED, NX_EPROTO, -ECANCELED};
    for (int i = 0; i < 4; i++) {
        rec_t a = {0};
        look(cache, &k, &a);
        fake_answer(statuses[i]);
        expect(&a, NX_CACHE_LEAD, NULL);
        complete(cache, &k, NULL, false, 0);
    }
    nx_cache_stats_t s = stats(cache);
    cr_assert_eq(s.l2_errors, 8);
    cr_assert_eq(s.l2_hits + s.l2_misses, 0);
}

Test(cache, with_redis_down_lookups_lead_at_once_and_l1_keeps_working) {
    cache = make_l2((nx_cache_config_t){0});
    fake_set_up(cache->redis, false);
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t a = {0}, b = {0};
    look(cache, &k, &a);
    expect(&a, NX_CACHE_LEAD, NULL);
    cr_assert(a.inline_call, "no waiting on a Redis that is down");
    cr_assert_eq(F.get_calls, 0, "not even tried");
    complete(cache, &k, "v", true, 60000);
    cr_assert_eq(F.sets, 0);
    look(cache, &k, &b);
    expect(&b, NX_CACHE_HIT, "v");
    nx_cache_stats_t s = stats(cache);
    cr_assert_eq(s.redis_down_events, 1);
    cr_assert(s.redis_configured);
    cr_assert_not(s.redis_up);
    cr_assert_eq(s.l2_errors, 0, "a down Redis is one down event, not an error per lookup");
    fake_set_up(cache->redis, true);
    fake_set_up(cache->redis, false);
    fake_set_up(cache->redis, false); /* repeated down reports are one loss */
    cr_assert_eq(stats(cache).redis_down_events, 2);
}

Test(cache, a_get_refused_at_once_leads_inline) {
    cache = make_l2((nx_cache_config_t){0});
    F.get_rc = NX_EFULL;
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t a = {0}, b = {0};
    look(cache, &k, &a);
    expect(&a, NX_CACHE_LEAD, NULL);
    cr_assert(a.inline_call);
    look(cache, &k, &b);
    cr_assert_not_null(b.w, "the flight exists: the next lookup follows");
    complete(cache, &k, "v", true, 1000);
    expect(&b, NX_CACHE_SHARED, "v");
    cr_assert_eq(stats(cache).l2_errors, 1);
}

Test(cache, cancelling_the_pending_leader_hands_the_lead_to_the_next_waiter) {
    cache = make_l2((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t a = {0}, b = {0}, c = {0};
    look(cache, &k, &a);
    look(cache, &k, &b);
    look(cache, &k, &c);
    nx_cache_lookup_cancel(a.w);
    cr_assert_eq(F.cancels, 0, "the GET still serves b and c");
    fake_answer(NX_ENOTFOUND);
    cr_assert_eq(a.calls, 0);
    expect(&b, NX_CACHE_LEAD, NULL);
    cr_assert_eq(c.calls, 0);
    complete(cache, &k, "by b", true, 1000);
    expect(&c, NX_CACHE_SHARED, "by b");
    cr_assert_eq(stats(cache).flights, 1);
}

Test(cache, cancelling_every_waiter_of_a_pending_get_ends_the_flight) {
    cache = make_l2((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t a = {0}, b = {0}, c = {0};
    look(cache, &k, &a);
    look(cache, &k, &b);
    nx_cache_lookup_cancel(b.w);
    nx_cache_lookup_cancel(a.w);
    cr_assert_eq(F.cancels, 1, "nobody is left for the GET's answer");
    cr_assert_eq(pending_gets(), 0);
    look(cache, &k, &c);
    cr_assert_eq(F.gets, 2, "a new flight with its own GET");
    fake_answer(NX_ENOTFOUND); /* the cancelled one: answered to nobody */
    cr_assert_eq(a.calls + b.calls + c.calls, 0);
    fake_answer(NX_ENOTFOUND);
    expect(&c, NX_CACHE_LEAD, NULL);
    complete(cache, &k, NULL, false, 0);
}

/* The leader completes from inside its own LEAD callback (it had the answer at hand). */
static void complete_at_once(rec_t *r, const char *v, size_t n) {
    nx_cache_complete(r->c, r->key, "quick", 5, true, 60000);
}

Test(cache, a_leader_may_complete_inside_its_lead_callback) {
    cache = make_l2((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}");
    rec_t a = {0}, b = {0}, c = {0};
    look(cache, &k, &a);
    look(cache, &k, &b);
    a.then = complete_at_once;
    fake_answer(NX_ENOTFOUND);
    expect(&a, NX_CACHE_LEAD, NULL);
    expect(&b, NX_CACHE_SHARED, "quick");
    cr_assert_gt(b.seq, a.seq);
    look(cache, &k, &c);
    expect(&c, NX_CACHE_HIT, "quick");
}

Test(cache, free_cancels_pending_gets_and_leads_their_waiters) {
    cache = make_l2((nx_cache_config_t){0});
    nx_cache_key_t k = key("tool:t", "{}"), k2 = key("tool:u", "{}");
    rec_t a = {0}, b = {0}, c = {0};
    look(cache, &k, &a);
    look(cache, &k, &b);
    look(cache, &k2, &c);
    nx_cache_free(cache);
    cache = NULL;
    expect(&a, NX_CACHE_LEAD, NULL);
    expect(&b, NX_CACHE_LEAD, NULL);
    expect(&c, NX_CACHE_LEAD, NULL);
    cr_assert_eq(F.cancels, 2);
    cr_assert_eq(F.frees, 1);
}

Test(cache, invalidate_deletes_in_redis_too_with_the_configured_prefix) {
    cache = make_l2((nx_cache_config_t){.redis_prefix = "app1:"});
    nx_cache_key_t k = key("tool:t", "{}");
    nx_cache_invalidate(cache, &k);
    char want[400];
    snprintf(want, sizeof(want), "app1:%s", k.text);
    cr_assert_eq(F.dels, 1);
    cr_assert_str_eq(F.last_del_key, want);
}

Test(cache, an_l2_value_over_max_entry_bytes_is_refused) {
    cache = make_l2((nx_cache_config_t){.max_entry_bytes = 4});
    nx_cache_key_t k = key("tool:t", "{}");
    char *enc;
    size_t elen;
    cr_assert_eq(nx__l2_value_encode(NX_CACHE_COMPRESS_NONE, 1024, "12345", 5, wall_ms() + 60000,
                                     &enc, &elen),
                 0);
    rec_t a = {0};
    look(cache, &k, &a);
    fake_answer_bytes(enc, elen);
    free(enc);
    expect(&a, NX_CACHE_LEAD, NULL);
    cr_assert_eq(stats(cache).l2_errors, 1);
    complete(cache, &k, NULL, false, 0);
}
