/* Backend MCP servers over stdio (see backends.h).
 *
 * Threads: a backend's process, MCP client, calls in flight and timers belong to its owner
 * shard. Other shards see only its catalog snapshot (an immutable JSON array read through a
 * per-shard hazard slot, so a snapshot replaced by a refresh is freed only once no reader can
 * be about to take a reference) and atomically updated counters. A call starts on the shard of
 * the client (the origin), which keeps a proxy record; the request, its answer, its progress
 * and its cancellation cross between origin and owner as mailbox messages that name the call
 * by (origin, seq), never by pointer, so either side may go away first. */
#include "backends.h"

#include "bulkhead.h"
#include "child.h"
#include "jsonrpc.h"
#include "log.h"
#include "mcp_client.h"
#include "nexus/errors.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHARDS 256
#define READY_STABLE_MS 10000u /* a process that stayed up this long resets the backoff */

typedef enum backend_state { B_STARTING, B_READY, B_RESTARTING, B_STOPPED } backend_state_t;
static const char *const state_names[] = {"starting", "ready", "restarting", "stopped"};

typedef struct backend backend_t;

/* A call in flight on the owner: the client request and where its answer goes. */
typedef struct owner_call {
    nx_list_t link; /* in b->calls */
    backend_t *b;
    uint32_t origin;
    uint64_t seq;
    json_int_t request_id;
    json_int_t progress_token; /* names the call in the backend's progress notifications */
    nx_timer_t timeout;
} owner_call_t;

struct backend {
    nx_backends_t *all;
    uint32_t index, owner;
    char *name, *cwd;
    char **argv, **env;
    bool prefix;
    uint32_t call_timeout_ms, restart_base_ms, restart_cap_ms, term_after_ms, kill_after_ms;
    /* read by every shard */
    _Atomic(json_t *) catalog; /* [{Tool with the public name, "x-nexus-tool": original}] */
    _Atomic(json_t *) hazard[MAX_SHARDS];
    _Atomic int state;
    _Atomic uint64_t restarts, calls_total, failures_total;
    _Atomic int pid;
    bool breaker_enabled;
    nx_backoff_config_t backoff;
    nx_retry_budget_t budget; /* engine-wide: retries in flight against calls in flight */
    uint32_t deadline_ms;
    _Atomic uint64_t retries_total;
    nx_breaker_t breaker;   /* engine-wide: every origin shard asks and reports */
    nx_bulkhead_t bulkhead; /* engine-wide bound on calls in flight */
    uint32_t max_concurrent;
    /* owner only */
    nx_engine_shard_t *es;
    nx_child_t *child;
    nx_mcp_client_t client;
    bool client_live, draining;
    nx_timer_t restart_timer, retire_timer;
    uint32_t failures;
    uint64_t ready_at;
    json_int_t next_progress_token;
    json_t *retired; /* replaced snapshots waiting for their readers */
    json_t *pages;   /* tools collected by the refresh in progress */
    nx_list_t calls;
};

/* On the origin: a call waiting for its backend. */
typedef struct proxy {
    nx_list_t link; /* in all->proxies[origin] */
    uint64_t seq;
    nx_mcp_call_t *call;
    backend_t *b;
    nx_backends_t *all;
    uint32_t origin;
    nx_breaker_permit_t permit;
    bool permitted; /* the breaker admitted the current try: its outcome must be recorded */
    char *tool;     /* the backend's name for the tool */
    json_t *args;   /* kept for retries */
    bool want_progress;
    uint32_t attempts;    /* tries sent so far */
    uint64_t deadline_ms; /* monotonic; 0 = none */
    bool retry_held;      /* a retry slot of the budget is ours */
    nx_timer_t retry_timer;
} proxy_t;

struct nx_backends {
    nx_engine_t *e;
    backend_t *items;
    size_t count;
    char sep[9];
    nx_list_t proxies[MAX_SHARDS]; /* per origin shard, touched only by it */
    uint64_t next_seq[MAX_SHARDS];
};

/* ---- messages between origin and owner ---- */

typedef enum { M_CALL, M_CANCEL, M_ANSWER, M_NOTIFY } msg_kind_t;

typedef struct bmsg {
    nx_msg_t msg;
    msg_kind_t kind;
    nx_backends_t *all;
    uint32_t backend, origin;
    uint64_t seq;
    char *method;    /* M_CALL: the backend's tool name; M_NOTIFY: the notification */
    json_t *payload; /* M_CALL: arguments; M_ANSWER: result or error; M_NOTIFY: params */
    bool is_error;
    bool want_progress;
} bmsg_t;

static void dispose_bmsg(nx_msg_t *m) {
    bmsg_t *bm = (bmsg_t *)m;
    free(bm->method);
    json_decref(bm->payload);
    free(bm);
}

static void on_bmsg(nx_shard_t *s, nx_msg_t *m);

/* Posts <bm> to shard <to>; on a full mailbox it is dropped and false returned (the caller
 * decides what that means). */
static bool post(nx_backends_t *all, uint32_t to, bmsg_t *bm) {
    nx_engine_shard_t *from = nx_engine_current_shard();
    bm->msg.fn = on_bmsg;
    bm->msg.dispose = dispose_bmsg;
    if (nx_shard_post(all->e->shards[to]->shard, from->shard->loop, &bm->msg) == 0) return true;
    dispose_bmsg(&bm->msg);
    return false;
}

static bmsg_t *bmsg_new(msg_kind_t kind, nx_backends_t *all, uint32_t backend, uint32_t origin,
                        uint64_t seq) {
    bmsg_t *bm = calloc(1, sizeof(*bm));
    if (bm == NULL) return NULL;
    bm->kind = kind;
    bm->all = all;
    bm->backend = backend;
    bm->origin = origin;
    bm->seq = seq;
    return bm;
}

/* ---- catalog snapshots ---- */

static json_t *catalog_acquire(backend_t *b, uint32_t shard) {
    json_t *p;
    do {
        p = atomic_load(&b->catalog);
        atomic_store(&b->hazard[shard], p);
    } while (p != atomic_load(&b->catalog));
    if (p != NULL) json_incref(p);
    atomic_store(&b->hazard[shard], NULL);
    return p;
}

static void on_retire(nx_timer_t *t) {
    backend_t *b = nx_container_of(t, backend_t, retire_timer);
    size_t i = 0;
    while (i < json_array_size(b->retired)) {
        json_t *old = json_array_get(b->retired, i);
        bool held = false;
        for (uint32_t k = 0; k < b->all->e->shard_count && !held; k++)
            held = atomic_load(&b->hazard[k]) == old;
        if (held) {
            i++;
            continue;
        }
        json_array_remove(b->retired, i); /* drops the catalog's own reference */
    }
    if (json_array_size(b->retired) > 0) nx_shard_timer_start(b->es->shard, &b->retire_timer, 1);
}

static void publish(backend_t *b, json_t *tools) {
    json_t *old = atomic_exchange(&b->catalog, tools);
    if (old == NULL) return;
    json_array_append_new(b->retired, old);
    nx_shard_timer_start(b->es->shard, &b->retire_timer, 1);
}

/* ---- the process and its client (owner) ---- */

static void start_process(backend_t *b);

static void schedule_restart(backend_t *b) {
    if (b->draining) {
        atomic_store(&b->state, B_STOPPED);
        nx_engine_shard_maybe_stop(b->es);
        return;
    }
    atomic_store(&b->state, B_RESTARTING);
    uint64_t delay = b->restart_base_ms;
    for (uint32_t i = 0; i < b->failures && delay < b->restart_cap_ms; i++)
        delay *= 2;
    if (delay > b->restart_cap_ms) delay = b->restart_cap_ms;
    b->failures++;
    nx_log_warn("backend %s: restarting in %llu ms", b->name, (unsigned long long)delay);
    nx_shard_timer_start(b->es->shard, &b->restart_timer, delay);
}

static void on_restart_timer(nx_timer_t *t) {
    start_process(nx_container_of(t, backend_t, restart_timer));
}

static int client_send(nx_mcp_client_t *cl, const char *text, size_t len, void *arg) {
    backend_t *b = arg;
    if (b->child == NULL) return -EPIPE;
    if (nx_child_write(b->child, text, len) < 0 || nx_child_write(b->child, "\n", 1) < 0)
        return -EPIPE;
    return 0;
}

static void on_tools_page(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                          void *arg);

static void request_tools_page(backend_t *b, const char *cursor) {
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : NULL;
    nx_mcp_client_request(&b->client, "tools/list", params, on_tools_page, b);
}

static void on_tools_page(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                          void *arg) {
    backend_t *b = arg;
    if (error != NULL) {
        nx_log_warn("backend %s: tools/list failed: %s", b->name,
                    json_string_value(json_object_get(error, "message")));
        json_decref(b->pages);
        b->pages = NULL;
        return;
    }
    size_t i;
    json_t *tool;
    json_array_foreach(json_object_get(result, "tools"), i, tool) {
        const char *name = json_string_value(json_object_get(tool, "name"));
        if (name == NULL) continue;
        /* The client sees the public name; everything else (schemas above all) verbatim. */
        json_t *pub = json_copy(tool);
        char full[512];
        if (b->prefix) {
            snprintf(full, sizeof(full), "%s%s%s", b->name, b->all->sep, name);
            json_object_set_new(pub, "name", json_string(full));
        }
        json_array_append_new(b->pages, pub);
    }
    const char *next = json_string_value(json_object_get(result, "nextCursor"));
    if (next != NULL && next[0] != '\0' && json_array_size(b->pages) < 100000) {
        request_tools_page(b, next);
        return;
    }
    json_t *tools = b->pages;
    b->pages = NULL;
    nx_log_info("backend %s: %zu tools", b->name, json_array_size(tools));
    publish(b, tools);
}

static void refresh_catalog(backend_t *b) {
    if (b->pages != NULL) return; /* a refresh is under way; it will see the new list */
    b->pages = json_array();
    request_tools_page(b, NULL);
}

static void on_client_ready(nx_mcp_client_t *cl, void *arg) {
    backend_t *b = arg;
    atomic_store(&b->state, B_READY);
    b->ready_at = nx_shard_now_ms(b->es->shard);
    nx_log_info("backend %s: ready (protocol %s)", b->name, cl->protocol_version);
    refresh_catalog(b);
}

static owner_call_t *find_owner_call_by_token(backend_t *b, json_int_t token) {
    if (token <= 0) return NULL; /* 0: calls that asked for no progress */
    nx_list_t *pos;
    nx_list_foreach(pos, &b->calls) {
        owner_call_t *oc = nx_container_of(pos, owner_call_t, link);
        if (oc->progress_token == token) return oc;
    }
    return NULL;
}

static void owner_call_free(owner_call_t *oc) {
    nx_timer_stop(&oc->timeout);
    nx_list_remove(&oc->link);
    free(oc);
}

static void on_client_notification(nx_mcp_client_t *cl, const char *method, const json_t *params,
                                   void *arg) {
    backend_t *b = arg;
    if (strcmp(method, "notifications/tools/list_changed") == 0) {
        refresh_catalog(b);
        return;
    }
    if (strcmp(method, "notifications/progress") == 0) {
        /* Our progress token names the call. */
        json_t *token = json_object_get(params, "progressToken");
        owner_call_t *oc =
            json_is_integer(token) ? find_owner_call_by_token(b, json_integer_value(token)) : NULL;
        if (oc == NULL) return;
        bmsg_t *bm = bmsg_new(M_NOTIFY, b->all, b->index, oc->origin, oc->seq);
        if (bm == NULL) return;
        bm->method = strdup(method);
        bm->payload = json_deep_copy(params);
        post(b->all, oc->origin, bm); /* progress lost to a full mailbox is only progress */
    }
}

static void on_child_line(nx_child_t *c, const char *line, size_t len, void *arg) {
    backend_t *b = arg;
    if (b->client_live) nx_mcp_client_receive(&b->client, line, len);
}

static void on_child_stderr(nx_child_t *c, const char *p, size_t n, void *arg) {
    backend_t *b = arg;
    /* What a stdio server says on stderr is its log: keep it, trimmed, under its name. */
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
        n--;
    if (n > 0) nx_log_info("backend %s: %.*s", b->name, (int)(n > 1000 ? 1000 : n), p);
}

static void on_child_exit(nx_child_t *c, int status, void *arg) {
    backend_t *b = arg;
    b->child = NULL;
    atomic_store(&b->pid, 0);
    nx_child_free(c);
    if (b->client_live) {
        b->client_live = false;
        nx_mcp_client_dispose(&b->client); /* waiting calls fail: their answers go back */
    }
    json_decref(b->pages);
    b->pages = NULL;
    if (nx_shard_now_ms(b->es->shard) - b->ready_at > READY_STABLE_MS && b->ready_at != 0)
        b->failures = 0;
    if (!b->draining) {
        atomic_fetch_add(&b->restarts, 1);
        nx_log_warn("backend %s: process exited (status %d)", b->name, status);
    }
    schedule_restart(b);
}

static void start_process(backend_t *b) {
    atomic_store(&b->state, B_STARTING);
    nx_child_opts_t o = {
        .argv = (const char *const *)b->argv, .env = (const char *const *)b->env, .cwd = b->cwd};
    nx_child_ops_t ops = {
        .on_line = on_child_line, .on_stderr = on_child_stderr, .on_exit = on_child_exit};
    int rc = nx_child_spawn(b->es->shard, &o, &ops, b, &b->child);
    if (rc < 0) {
        b->child = NULL;
        nx_log_error("backend %s: cannot start %s: %s", b->name, b->argv[0], strerror(-rc));
        schedule_restart(b);
        return;
    }
    atomic_store(&b->pid, (int)b->child->pid);
    nx_mcp_client_ops_t cops = {.send = client_send,
                                .on_ready = on_client_ready,
                                .on_notification = on_client_notification};
    nx_mcp_client_init(&b->client, &cops, b, "nexus", NULL);
    b->client_live = true;
    nx_mcp_client_start(&b->client);
}

/* ---- calls: owner side ---- */

static void answer_origin(owner_call_t *oc, const json_t *result, const json_t *error) {
    bmsg_t *bm = bmsg_new(M_ANSWER, oc->b->all, oc->b->index, oc->origin, oc->seq);
    if (bm != NULL) {
        bm->payload = json_deep_copy(result ? result : error);
        bm->is_error = result == NULL;
        post(oc->b->all, oc->origin, bm);
    }
}

static void on_backend_answer(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                              void *arg) {
    owner_call_t *oc = arg;
    backend_t *b = oc->b;
    if (error != NULL && (!b->client_live || cl->state == NX_MCP_CLIENT_FAILED)) {
        /* Not the backend's answer: its process went away under the call. */
        json_t *e = json_pack("{s:i, s:s, s:{s:s, s:b}}", "code", -32603, "message",
                              json_string_value(json_object_get(error, "message")), "data",
                              "backend", b->name, "retryable", 1);
        answer_origin(oc, NULL, e);
        json_decref(e);
    } else {
        answer_origin(oc, result, error);
    }
    owner_call_free(oc);
}

static void on_call_timeout(nx_timer_t *t) {
    owner_call_t *oc = nx_container_of(t, owner_call_t, timeout);
    backend_t *b = oc->b;
    nx_mcp_client_abandon(&b->client, oc->request_id, "timed out");
    char m[200];
    snprintf(m, sizeof(m), "backend %s did not answer within %u ms", b->name, b->call_timeout_ms);
    json_t *e = json_pack("{s:i, s:s, s:{s:s, s:b}}", "code", -32603, "message", m, "data",
                          "backend", b->name, "retryable", 1);
    answer_origin(oc, NULL, e);
    json_decref(e);
    owner_call_free(oc);
}

static void owner_start_call(backend_t *b, bmsg_t *bm) {
    if (atomic_load(&b->state) != B_READY || !b->client_live) {
        char m[200];
        snprintf(m, sizeof(m), "backend %s is %s; retry later", b->name,
                 state_names[atomic_load(&b->state)]);
        bmsg_t *ans = bmsg_new(M_ANSWER, b->all, b->index, bm->origin, bm->seq);
        if (ans != NULL) {
            ans->payload = json_pack("{s:i, s:s, s:{s:s, s:b}}", "code", -32603, "message", m,
                                     "data", "backend", b->name, "retryable", 1);
            ans->is_error = true;
            post(b->all, bm->origin, ans);
        }
        return;
    }
    owner_call_t *oc = calloc(1, sizeof(*oc));
    if (oc == NULL) return;
    oc->b = b;
    oc->origin = bm->origin;
    oc->seq = bm->seq;
    nx_timer_init(&oc->timeout, on_call_timeout);
    nx_list_insert_tail(&b->calls, &oc->link);
    atomic_fetch_add(&b->calls_total, 1);
    json_t *params = json_pack("{s:s, s:O}", "name", bm->method, "arguments", bm->payload);
    if (bm->want_progress) {
        oc->progress_token = ++b->next_progress_token;
        json_object_set_new(params, "_meta",
                            json_pack("{s:I}", "progressToken", oc->progress_token));
    }
    oc->request_id = nx_mcp_client_request(&b->client, "tools/call", params, on_backend_answer, oc);
    if (oc->request_id == 0) return; /* answered (with the error) and freed already */
    if (b->call_timeout_ms > 0)
        nx_shard_timer_start(b->es->shard, &oc->timeout, b->call_timeout_ms);
}

static void owner_cancel_call(backend_t *b, uint32_t origin, uint64_t seq) {
    nx_list_t *pos;
    nx_list_foreach(pos, &b->calls) {
        owner_call_t *oc = nx_container_of(pos, owner_call_t, link);
        if (oc->origin == origin && oc->seq == seq) {
            nx_mcp_client_abandon(&b->client, oc->request_id, "cancelled by the client");
            owner_call_free(oc);
            return;
        }
    }
}

/* ---- calls: origin side ---- */

static proxy_t *find_proxy(nx_backends_t *all, uint32_t origin, uint64_t seq) {
    nx_list_t *pos;
    nx_list_foreach(pos, &all->proxies[origin]) {
        proxy_t *p = nx_container_of(pos, proxy_t, link);
        if (p->seq == seq) return p;
    }
    return NULL;
}

/* Ends <p>'s hold on its backend's limits; <outcome> 0 = success, 1 = failure reported to the
 * breaker, -1 = nothing to report (a cancelled call: the client, not the backend, ended it). */
static uint64_t mono_ms(void) {
    return nx_loop_clock_ns() / 1000000u;
}

/* Reports the current try's outcome (0 success, 1 failure) to the breaker, once. */
static void record_try(proxy_t *p, int outcome) {
    backend_t *b = p->b;
    if (p->permitted && b->breaker_enabled && outcome >= 0)
        nx_breaker_record(&b->breaker, &p->permit, mono_ms(), outcome == 0);
    p->permitted = false;
    if (outcome > 0) atomic_fetch_add(&b->failures_total, 1);
}

static void proxy_release(proxy_t *p, int outcome) {
    backend_t *b = p->b;
    record_try(p, outcome);
    nx_timer_stop(&p->retry_timer);
    if (p->retry_held) nx_retry_budget_release(&b->budget);
    p->retry_held = false;
    nx_retry_budget_request_finished(&b->budget);
    nx_bulkhead_leave(&b->bulkhead);
    free(p->tool);
    json_decref(p->args);
    p->tool = NULL;
    p->args = NULL;
}

static void on_proxy_cancelled(nx_mcp_call_t *call, void *arg) {
    proxy_t *p = arg;
    proxy_release(p, -1);
    bmsg_t *bm = bmsg_new(M_CANCEL, p->all, p->b->index, p->origin, p->seq);
    if (bm != NULL) post(p->all, p->b->owner, bm);
    nx_list_remove(&p->link);
    free(p);
}

/* Sends the current try of <p> to the backend's owner. */
static bool send_try(proxy_t *p) {
    bmsg_t *bm = bmsg_new(M_CALL, p->all, p->b->index, p->origin, p->seq);
    if (bm == NULL || (bm->method = strdup(p->tool)) == NULL) {
        if (bm) dispose_bmsg(&bm->msg);
        return false;
    }
    bm->payload = json_incref(p->args);
    bm->want_progress = p->want_progress;
    p->attempts++;
    return post(p->all, p->b->owner, bm);
}

static __thread nx_backoff_rng_t retry_rng;
static __thread bool retry_rng_seeded;

static void final_error(proxy_t *p, const char *message, json_t *data);

static void on_retry_timer(nx_timer_t *t) {
    proxy_t *p = nx_container_of(t, proxy_t, retry_timer);
    backend_t *b = p->b;
    uint64_t now = mono_ms();
    if (b->breaker_enabled && !nx_breaker_allow(&b->breaker, now, &p->permit)) {
        char m[200];
        snprintf(m, sizeof(m), "backend %s is failing (circuit open); retry after %llu ms", b->name,
                 (unsigned long long)nx_breaker_retry_after_ms(&b->breaker, now));
        final_error(p, m, json_pack("{s:s, s:s}", "backend", b->name, "reason", "circuit_open"));
        return;
    }
    p->permitted = b->breaker_enabled;
    if (!send_try(p)) {
        char m[200];
        snprintf(m, sizeof(m), "backend %s is overloaded; retry later", b->name);
        final_error(p, m, json_pack("{s:s}", "backend", b->name));
    }
}

/* After a retryable failure: schedules the next try when attempts, the deadline and the
 * retry budget allow it; false when the failure is final. */
static bool try_retry(proxy_t *p) {
    backend_t *b = p->b;
    if (p->retry_held) nx_retry_budget_release(&b->budget); /* that retry is over */
    p->retry_held = false;
    if (!retry_rng_seeded) {
        nx_backoff_rng_seed(&retry_rng, nx_loop_clock_ns() ^ ((uint64_t)p->origin << 32));
        retry_rng_seeded = true;
    }
    uint64_t delay = nx_backoff_delay_ms(&b->backoff, p->attempts, nx_backoff_rng_next(&retry_rng));
    uint64_t now = mono_ms();
    uint64_t remaining = p->deadline_ms == 0    ? UINT64_MAX
                         : p->deadline_ms > now ? p->deadline_ms - now
                                                : 0;
    if (!nx_backoff_should_retry(&b->backoff, p->attempts, delay, remaining)) return false;
    if (!nx_retry_budget_try_acquire(&b->budget)) return false;
    record_try(p, 1); /* this try failed; the next one asks the breaker again */
    p->retry_held = true;
    atomic_fetch_add(&b->retries_total, 1);
    nx_shard_timer_start(nx_engine_current_shard()->shard, &p->retry_timer, delay);
    return true;
}

static void final_error(proxy_t *p, const char *message, json_t *data) {
    nx_mcp_call_t *call = p->call;
    proxy_release(p, -1);
    nx_list_remove(&p->link);
    free(p);
    nx_mcp_call_error(call, -32603, message, data);
}

static void on_bmsg(nx_shard_t *s, nx_msg_t *m) {
    bmsg_t *bm = (bmsg_t *)m;
    nx_backends_t *all = bm->all;
    backend_t *b = &all->items[bm->backend];
    switch (bm->kind) {
    case M_CALL:
        owner_start_call(b, bm);
        break;
    case M_CANCEL:
        owner_cancel_call(b, bm->origin, bm->seq);
        break;
    case M_NOTIFY:
    case M_ANSWER: {
        proxy_t *p = find_proxy(all, bm->origin, bm->seq);
        if (p == NULL) break; /* the call was cancelled meanwhile */
        if (bm->kind == M_NOTIFY) {
            nx_mcp_call_forward(p->call, bm->method, bm->payload);
            break;
        }
        nx_mcp_call_t *call = p->call;
        /* A try the backend could not answer (it was down, restarting or too slow) goes again
         * with backoff while attempts, deadline and budget allow; its own errors never do. */
        if (bm->is_error &&
            json_is_true(json_object_get(json_object_get(bm->payload, "data"), "retryable")) &&
            try_retry(p))
            break;
        /* Protocol errors count against the backend; a tool's isError result does not. */
        proxy_release(p, bm->is_error ? 1 : 0);
        nx_list_remove(&p->link);
        free(p);
        if (bm->is_error) {
            json_t *e = bm->payload;
            nx_mcp_call_error(call, (int)json_integer_value(json_object_get(e, "code")),
                              json_string_value(json_object_get(e, "message"))
                                  ? json_string_value(json_object_get(e, "message"))
                                  : "backend error",
                              json_incref(json_object_get(e, "data")));
        } else {
            nx_mcp_call_return(call, json_incref(bm->payload));
        }
        nx_engine_shard_maybe_stop(s->user);
        break;
    }
    }
    dispose_bmsg(m);
}

/* ---- the provider ---- */

static uint32_t current_shard(void) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    return es ? (uint32_t)es->shard->id : 0;
}

static void provider_list(void *arg, json_t *tools) {
    nx_backends_t *all = arg;
    uint32_t k = current_shard();
    for (size_t i = 0; i < all->count; i++) {
        json_t *snap = catalog_acquire(&all->items[i], k);
        if (snap == NULL) continue; /* not ready yet: nothing to show */
        json_array_extend(tools, snap);
        json_decref(snap);
    }
}

/* The backend serving public tool <name> and the backend's own name for it, or NULL. */
static backend_t *route(nx_backends_t *all, const char *name, const char **tool) {
    size_t sl = strlen(all->sep);
    uint32_t k = current_shard();
    for (size_t i = 0; i < all->count; i++) {
        backend_t *b = &all->items[i];
        size_t nl = strlen(b->name);
        const char *own = name;
        if (b->prefix) {
            if (strncmp(name, b->name, nl) != 0 || strncmp(name + nl, all->sep, sl) != 0) continue;
            own = name + nl + sl;
        }
        json_t *snap = catalog_acquire(b, k);
        size_t j;
        json_t *t;
        bool found = false;
        json_array_foreach(snap, j, t) {
            if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0) {
                found = true;
                break;
            }
        }
        json_decref(snap);
        if (found) {
            *tool = own;
            return b;
        }
    }
    return NULL;
}

static bool provider_call(void *arg, nx_mcp_call_t *call, const char *name, json_t *args) {
    nx_backends_t *all = arg;
    const char *tool = NULL;
    backend_t *b = route(all, name, &tool);
    if (b == NULL) return false;
    uint32_t origin = current_shard();
    /* Fail fast, naming the backend, when it is overloaded or its breaker is open. */
    if (!nx_bulkhead_try_enter(&b->bulkhead)) {
        char m[200];
        snprintf(m, sizeof(m), "backend %s is at its limit of %u calls in flight; retry later",
                 b->name, b->max_concurrent);
        nx_mcp_call_error(call, -32603, m,
                          json_pack("{s:s, s:s, s:i}", "backend", b->name, "reason", "bulkhead",
                                    "retryAfterMs", 100));
        return true;
    }
    nx_breaker_permit_t permit = {0};
    uint64_t now = nx_loop_clock_ns() / 1000000u;
    if (b->breaker_enabled && !nx_breaker_allow(&b->breaker, now, &permit)) {
        nx_bulkhead_leave(&b->bulkhead);
        uint64_t wait = nx_breaker_retry_after_ms(&b->breaker, now);
        char m[200];
        snprintf(m, sizeof(m), "backend %s is failing (circuit open); retry after %llu ms", b->name,
                 (unsigned long long)wait);
        nx_mcp_call_error(call, -32603, m,
                          json_pack("{s:s, s:s, s:I}", "backend", b->name, "reason", "circuit_open",
                                    "retryAfterMs", (json_int_t)wait));
        return true;
    }
    proxy_t *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->tool = strdup(tool)) == NULL) {
        free(p);
        nx_bulkhead_leave(&b->bulkhead);
        nx_mcp_call_error(call, -32603, "out of memory", NULL);
        return true;
    }
    p->seq = ++all->next_seq[origin];
    p->permit = permit;
    p->permitted = b->breaker_enabled;
    p->call = call;
    p->b = b;
    p->all = all;
    p->origin = origin;
    p->args = json_deep_copy(args);
    p->want_progress = json_object_get(json_object_get(nx_mcp_call_params(call), "_meta"),
                                       "progressToken") != NULL;
    p->deadline_ms = b->deadline_ms ? now + b->deadline_ms : 0;
    nx_timer_init(&p->retry_timer, on_retry_timer);
    nx_retry_budget_request_started(&b->budget);
    nx_list_insert_tail(&all->proxies[origin], &p->link);
    nx_mcp_call_on_cancel(call, on_proxy_cancelled, p);
    if (!send_try(p)) {
        char m[200];
        snprintf(m, sizeof(m), "backend %s is overloaded; retry later", b->name);
        nx_mcp_call_on_cancel(call, NULL, NULL);
        final_error(p, m, NULL);
    }
    return true;
}

/* ---- life ---- */

static char **copy_strv(const char *const *v) {
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    char **out = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; out != NULL && i < n; i++)
        out[i] = strdup(v[i]);
    return out;
}

static void free_strv(char **v) {
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

int nx_backends_new(nx_engine_t *e, const nx_backend_spec_t *specs, size_t count, const char *sep,
                    nx_backends_t **out, char *err, size_t errlen) {
    if (e->shard_count > MAX_SHARDS) {
        snprintf(err, errlen, "backends support at most %d shards", MAX_SHARDS);
        return NX_ECONFIG;
    }
    nx_backends_t *all = calloc(1, sizeof(*all));
    if (all == NULL) return -ENOMEM;
    all->items = calloc(count ? count : 1, sizeof(backend_t));
    if (all->items == NULL) {
        free(all);
        return -ENOMEM;
    }
    all->e = e;
    all->count = count;
    snprintf(all->sep, sizeof(all->sep), "%s", sep && sep[0] ? sep : "__");
    for (uint32_t k = 0; k < MAX_SHARDS; k++)
        nx_list_init(&all->proxies[k]);
    for (size_t i = 0; i < count; i++) {
        const nx_backend_spec_t *sp = &specs[i];
        backend_t *b = &all->items[i];
        b->all = all;
        b->index = (uint32_t)i;
        b->owner = (uint32_t)(i % e->shard_count);
        b->name = strdup(sp->name);
        b->cwd = sp->cwd ? strdup(sp->cwd) : NULL;
        b->argv = copy_strv(sp->argv);
        b->env = copy_strv(sp->env);
        b->prefix = sp->prefix;
        b->call_timeout_ms = sp->call_timeout_ms;
        b->restart_base_ms = sp->restart_base_ms ? sp->restart_base_ms : 1000;
        b->restart_cap_ms = sp->restart_cap_ms ? sp->restart_cap_ms : 30000;
        b->term_after_ms = sp->term_after_ms ? sp->term_after_ms : 2000;
        b->kill_after_ms = sp->kill_after_ms ? sp->kill_after_ms : 2000;
        b->max_concurrent = sp->max_concurrent;
        b->deadline_ms = sp->deadline_ms;
        b->backoff = sp->retry;
        if (b->backoff.max_attempts == 0) nx_backoff_config_default(&b->backoff);
        nx_retry_budget_init(&b->budget, &sp->retry_budget);
        nx_bulkhead_init(&b->bulkhead, sp->max_concurrent);
        b->breaker_enabled = sp->breaker_enabled;
        if (b->breaker_enabled && nx_breaker_init(&b->breaker, &sp->breaker) < 0) {
            snprintf(err, errlen, "backend %s: invalid breaker settings", sp->name);
            nx_backends_free(all);
            return NX_ECONFIG;
        }
        b->retired = json_array();
        nx_list_init(&b->calls);
        nx_timer_init(&b->restart_timer, on_restart_timer);
        nx_timer_init(&b->retire_timer, on_retire);
        atomic_store(&b->state, B_STOPPED);
        if (b->argv == NULL || b->argv[0] == NULL) {
            snprintf(err, errlen, "backend %s has no command", sp->name);
            nx_backends_free(all);
            return NX_ECONFIG;
        }
    }
    nx_mcp_provider_t p = {.list_tools = provider_list, .call_tool = provider_call};
    nx_mcp_server_set_provider(e->mcp, &p, all);
    *out = all;
    return 0;
}

void nx_backends_shard_start(nx_backends_t *all, nx_engine_shard_t *es) {
    for (size_t i = 0; all && i < all->count; i++) {
        backend_t *b = &all->items[i];
        if (b->owner != (uint32_t)es->shard->id) continue;
        b->es = es;
        start_process(b);
    }
}

void nx_backends_shard_drain(nx_backends_t *all, nx_engine_shard_t *es) {
    for (size_t i = 0; all && i < all->count; i++) {
        backend_t *b = &all->items[i];
        if (b->owner != (uint32_t)es->shard->id) continue;
        b->draining = true;
        nx_timer_stop(&b->restart_timer);
        if (b->child != NULL)
            nx_child_stop(b->child, b->term_after_ms, b->kill_after_ms);
        else
            atomic_store(&b->state, B_STOPPED);
    }
}

bool nx_backends_shard_busy(const nx_backends_t *all, const nx_engine_shard_t *es) {
    for (size_t i = 0; all && i < all->count; i++) {
        const backend_t *b = &all->items[i];
        if (b->owner == (uint32_t)es->shard->id && b->child != NULL) return true;
    }
    return all != NULL && !nx_list_empty(&all->proxies[es->shard->id]);
}

void nx_backends_shard_stop(nx_backends_t *all, nx_engine_shard_t *es) {
    for (size_t i = 0; all && i < all->count; i++) {
        backend_t *b = &all->items[i];
        if (b->owner != (uint32_t)es->shard->id) continue;
        b->draining = true;
        nx_timer_stop(&b->restart_timer);
        nx_timer_stop(&b->retire_timer);
        if (b->child != NULL) {
            nx_child_free(b->child);
            b->child = NULL;
        }
        if (b->client_live) {
            b->client_live = false;
            nx_mcp_client_dispose(&b->client);
        }
        while (!nx_list_empty(&b->calls)) {
            owner_call_free(nx_container_of(b->calls.next, owner_call_t, link));
        }
        json_decref(b->pages);
        b->pages = NULL;
    }
    /* Calls this shard still waits for are answered by nobody now. */
    nx_list_t *list = all ? &all->proxies[es->shard->id] : NULL;
    while (list != NULL && !nx_list_empty(list)) {
        proxy_t *p = nx_container_of(list->next, proxy_t, link);
        nx_mcp_call_t *call = p->call;
        proxy_release(p, -1);
        nx_list_remove(&p->link);
        free(p);
        nx_mcp_call_on_cancel(call, NULL, NULL);
        nx_mcp_call_error(call, -32603, "the server is shutting down", NULL);
    }
}

void nx_backends_free(nx_backends_t *all) {
    if (all == NULL) return;
    for (size_t i = 0; i < all->count; i++) {
        backend_t *b = &all->items[i];
        json_decref(atomic_load(&b->catalog));
        json_decref(b->retired);
        free(b->name);
        free(b->cwd);
        free_strv(b->argv);
        free_strv(b->env);
    }
    free(all->items);
    free(all);
}

json_t *nx_backends_health(const nx_backends_t *all) {
    json_t *out = json_object();
    for (size_t i = 0; all && i < all->count; i++) {
        backend_t *b = (backend_t *)&all->items[i];
        json_t *snap = catalog_acquire(b, current_shard());
        json_object_set_new(
            out, b->name,
            json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:i, s:s, s:i, s:I}", "transport", "stdio",
                      "state", state_names[atomic_load(&b->state)], "tools",
                      (int)json_array_size(snap), "restarts", (json_int_t)atomic_load(&b->restarts),
                      "calls", (json_int_t)atomic_load(&b->calls_total), "failures",
                      (json_int_t)atomic_load(&b->failures_total), "pid", atomic_load(&b->pid),
                      "breaker",
                      b->breaker_enabled ? nx_breaker_state_name(nx_breaker_state(&b->breaker))
                                         : "disabled",
                      "in_flight", (int)nx_bulkhead_in_flight(&b->bulkhead), "rejected",
                      (json_int_t)nx_bulkhead_rejected(&b->bulkhead)));
        json_object_set_new(json_object_get(out, b->name), "retries",
                            json_integer((json_int_t)atomic_load(&b->retries_total)));
        json_decref(snap);
    }
    return out;
}
