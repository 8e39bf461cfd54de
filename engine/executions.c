/* Workflow executions on the channels (see executions.h).
 *
 * The store is one table for the process, behind a mutex: it is touched when an execution
 * starts and ends and when a client asks about one — never per call or per byte. A running
 * execution belongs to its shard (only that thread touches it); other shards see the
 * snapshot it last published (asynchronous runs publish at every step; runs whose starter
 * waits publish at the start only). Once ended an execution is immutable, and any shard may
 * read it under the lock; the store frees it when the record expires or room is needed.
 * Cancelling from another shard posts a message to the owner. */
#include "executions.h"
#include "json_write.h"

#include "backends.h"
#include "events.h"
#include "jsonrpc.h"
#include "log.h"
#include "rest_tools.h"
#include "nexus/errors.h"
#include "nexus/list.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKETS 16384u
/* Running asynchronous executions publish their record for other shards at most this often. */
#define SNAPSHOT_EVERY_MS 100u
/* Expired records are looked for at most this often (or when the store is full). */
#define SWEEP_EVERY_MS 1000u
/* Workflows calling workflows (through their MCP tools) nest at most this deep. */
#define MAX_NESTING 8u

/* One execution in the store; owned by the store. */
typedef struct entry {
    nx_list_t order; /* store->order: oldest first */
    struct entry *next_in_bucket;
    char id[40];
    uint32_t shard;
    nx_exec_t *x; /* running: only its shard touches it; ended: immutable */
    bool ended;
    bool publish_steps;        /* asynchronous: snapshot as steps finish */
    uint64_t published_ms;     /* when the last snapshot was taken (monotonic) */
    uint64_t ended_ms;         /* monotonic */
    char *snapshot;            /* the last published record while running (JSON text) */
    nx_later_t snapshot_later; /* the first snapshot, taken once the start's I/O is out */
    nx_engine_t *e;
    nx_run_hooks_t hooks; /* the channel's; cleared when it goes away */
    void *hooks_arg;
} entry_t;

typedef struct nx_exec_store {
    pthread_mutex_t mu;
    entry_t *buckets[BUCKETS];
    nx_list_t order;
    size_t count, running;
    size_t max;        /* executions.max_stored */
    uint64_t swept_ms; /* when expired records were last looked for */
    uint64_t keep_ms;  /* executions.keep */
    /* Shard 0 checks the call steps against the backends' catalogs once they are listed. */
    nx_timer_t catalog_check;
    nx_engine_shard_t *checker;
    uint32_t catalog_polls;
} nx_exec_store_t;

/* How often and how long shard 0 waits for the backends to list their tools (2 minutes). */
#define CATALOG_POLL_MS 200u
#define CATALOG_POLLS 600u

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint32_t bucket_of(const char *id) {
    uint32_t h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % BUCKETS;
}

static entry_t *find_locked(nx_exec_store_t *st, const char *id) {
    for (entry_t *en = st->buckets[bucket_of(id)]; en != NULL; en = en->next_in_bucket)
        if (strcmp(en->id, id) == 0) return en;
    return NULL;
}

static void unlink_locked(nx_exec_store_t *st, entry_t *en) {
    entry_t **pp = &st->buckets[bucket_of(en->id)];
    while (*pp != en)
        pp = &(*pp)->next_in_bucket;
    *pp = en->next_in_bucket;
    nx_list_remove(&en->order);
    st->count--;
}

static void entry_free(entry_t *en) {
    nx_later_cancel(&en->snapshot_later);
    nx_exec_free(en->x);
    free(en->snapshot);
    free(en);
}

/* Drops expired records, and when <need_room> the oldest ended one if the store is full.
 * Returns the entries to free outside the lock (linked through next_in_bucket). */
static entry_t *sweep_locked(nx_exec_store_t *st, bool expire, bool need_room) {
    entry_t *gone = NULL;
    uint64_t now = mono_ms();
    nx_list_t *it = st->order.next;
    while (it != &st->order) {
        /* Making room alone stops at the first free slot: the oldest ended records go first,
         * and a start with a full store does not walk all of it. */
        if (!expire && (!need_room || st->count < st->max)) break;
        entry_t *en = nx_container_of(it, entry_t, order);
        it = it->next;
        bool expired = expire && en->ended && now - en->ended_ms >= st->keep_ms;
        bool evict = need_room && en->ended && st->count >= st->max;
        if (!expired && !evict) continue;
        unlink_locked(st, en);
        en->next_in_bucket = gone;
        gone = en;
    }
    return gone;
}

static void free_list(entry_t *gone) {
    while (gone != NULL) {
        entry_t *next = gone->next_in_bucket;
        entry_free(gone);
        gone = next;
    }
}

/* Records a start evicted, freed once this loop turn's I/O is submitted: a start on a full store
 * drops the oldest record, and freeing it (the run's inputs, result and errors) must not delay
 * the new run's first calls. Per thread: only this shard's loop touches it. */
static _Thread_local struct {
    nx_later_t later;
    entry_t *gone;
} evicted;

static void on_evicted(nx_later_t *l) {
    (void)l;
    entry_t *gone = evicted.gone;
    evicted.gone = NULL;
    free_list(gone);
}

static void free_after_submit(nx_engine_shard_t *es, entry_t *gone) {
    if (gone == NULL) return;
    if (es == NULL || es->shard == NULL) {
        free_list(gone);
        return;
    }
    entry_t *last = gone;
    while (last->next_in_bucket != NULL)
        last = last->next_in_bucket;
    last->next_in_bucket = evicted.gone;
    evicted.gone = gone;
    if (evicted.later.fn == NULL) nx_later_init(&evicted.later, on_evicted);
    nx_shard_after_submit(es->shard, &evicted.later);
}

/* ---- hooks between the executor, the store and the channel ---- */

static void publish_snapshot(entry_t *en, nx_exec_t *x) {
    nx_buf_t b;
    nx_buf_init(&b);
    if (nx_exec_record_write(x, &b) < 0 || nx_buf_append(&b, "", 1) < 0) {
        nx_buf_dispose(&b);
        return;
    }
    char *text = b.data;
    nx_exec_store_t *st = en->e->executions;
    pthread_mutex_lock(&st->mu);
    char *old = en->snapshot;
    en->snapshot = text;
    pthread_mutex_unlock(&st->mu);
    free(old);
}

static void on_exec_event(void *arg, nx_exec_t *x, const char *type, const json_t *data) {
    entry_t *en = arg;
    /* After the step's calls (or the channel's answer) are on their way: events are
     * bookkeeping, and on a fan-out they were a third of the time to the last branch's send.
     * The executor never changes an event's data once emitted. */
    nx_events_publish_soon(en->e, type, (json_t *)data);
    /* At most one snapshot per SNAPSHOT_EVERY_MS: a record is O(steps), and a map may finish
     * thousands of steps at once. */
    if (en->publish_steps && en->e->shard_count > 1 && strcmp(type, "step.finished") == 0) {
        uint64_t now = mono_ms();
        if (now - en->published_ms >= SNAPSHOT_EVERY_MS) {
            en->published_ms = now;
            publish_snapshot(en, x);
        }
    }
    if (en->hooks.event != NULL) en->hooks.event(en->hooks_arg, x, type, data);
}

static void on_exec_done(void *arg, nx_exec_t *x) {
    entry_t *en = arg;
    nx_later_cancel(&en->snapshot_later); /* the execution answers for itself from now on */
    nx_exec_store_t *st = en->e->executions;
    /* The channel first: once the entry is marked ended, any shard may evict and free it. */
    nx_run_hooks_t hooks = en->hooks;
    memset(&en->hooks, 0, sizeof(en->hooks));
    if (hooks.done != NULL) hooks.done(en->hooks_arg, x);
    pthread_mutex_lock(&st->mu);
    en->ended = true;
    en->ended_ms = mono_ms();
    st->running--;
    char *old = en->snapshot;
    en->snapshot = NULL; /* the execution itself answers from now on */
    pthread_mutex_unlock(&st->mu);
    free(old); /* the last access to <en> and <x> on this path */
}

/* Execution ids are capabilities (whoever knows one may read or cancel the run), so they come
 * from the CSPRNG, drawn for many ids at once per thread: one RAND_bytes per id was 5% of the
 * CPU of a short workflow. */
static int random_id_bytes(unsigned char *out, size_t n) {
    static _Thread_local unsigned char pool[384];
    static _Thread_local size_t left;
    if (left < n) {
        if (RAND_bytes(pool, sizeof(pool)) != 1) return 0;
        left = sizeof(pool);
    }
    memcpy(out, pool + sizeof(pool) - left, n);
    /* Bytes once handed out are not left in memory for a later reader of the pool. */
    memset(pool + sizeof(pool) - left, 0, n);
    left -= n;
    return 1;
}

static void on_snapshot_later(nx_later_t *l) {
    entry_t *en = nx_container_of(l, entry_t, snapshot_later);
    publish_snapshot(en, en->x);
}

static void make_id(char out[40]) {
    unsigned char rnd[12];
    if (random_id_bytes(rnd, sizeof(rnd)) != 1) {
        uint64_t t = (uint64_t)nx_loop_clock_ns();
        memcpy(rnd, &t, 8);
        memset(rnd + 8, 0x5a, 4);
    }
    static const char hex[] = "0123456789abcdef";
    out[0] = 'x';
    out[1] = '-';
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 + 2 * i] = hex[rnd[i] >> 4];
        out[3 + 2 * i] = hex[rnd[i] & 15];
    }
    out[2 + 2 * sizeof(rnd)] = '\0';
}

int nx_run_start(nx_engine_shard_t *es, const char *name, unsigned channel, const json_t *inputs,
                 uint32_t depth, const nx_run_hooks_t *hooks, void *arg, nx_exec_t **out,
                 json_t **errors, const char **why) {
    nx_engine_t *e = es->engine;
    *out = NULL;
    if (errors != NULL) *errors = NULL;
    const nx_workflow_t *wf = e->workflows ? nx_workflows_find(e->workflows, name) : NULL;
    if (wf == NULL) {
        if (why) *why = "no such workflow";
        return NX_ENOTFOUND;
    }
    if (!(wf->channels & channel)) {
        if (why) *why = "the workflow may not be started from this channel";
        return NX_ENOTFOUND;
    }
    if (depth >= MAX_NESTING) {
        if (why) *why = "workflows call each other too deeply (a workflow calling itself?)";
        return NX_ELIMIT;
    }
    nx_exec_store_t *st = e->executions;
    entry_t *en = calloc(1, sizeof(*en));
    if (en == NULL) return -ENOMEM;
    make_id(en->id);
    nx_later_init(&en->snapshot_later, on_snapshot_later);
    en->shard = (uint32_t)es->shard->id;
    en->e = e;
    if (hooks != NULL) en->hooks = *hooks;
    en->hooks_arg = arg;
    en->publish_steps = hooks == NULL || hooks->done == NULL;
    /* The slot is taken under the same lock as the check, so shards cannot overshoot. */
    pthread_mutex_lock(&st->mu);
    entry_t *gone = NULL;
    uint64_t now = mono_ms();
    bool expire = now - st->swept_ms >= SWEEP_EVERY_MS;
    if (expire) st->swept_ms = now;
    if (expire || st->count >= st->max) gone = sweep_locked(st, expire, true);
    bool full = st->count >= st->max;
    if (!full) {
        st->count++;
        st->running++;
    }
    pthread_mutex_unlock(&st->mu);
    free_after_submit(es, gone);
    if (full) {
        free(en);
        return NX_EFULL;
    }
    nx_exec_hooks_t xh = {.event = on_exec_event, .done = on_exec_done};
    nx_exec_t *x = NULL;
    int rc = nx_exec_start(es, e->workflows, wf, en->id, inputs, depth, &xh, en, &x, errors);
    if (rc < 0) {
        pthread_mutex_lock(&st->mu);
        st->count--;
        st->running--;
        pthread_mutex_unlock(&st->mu);
        free(en);
        return rc;
    }
    en->x = x;
    pthread_mutex_lock(&st->mu);
    uint32_t b = bucket_of(en->id);
    en->next_in_bucket = st->buckets[b];
    st->buckets[b] = en;
    nx_list_insert_tail(&st->order, &en->order);
    pthread_mutex_unlock(&st->mu);
    /* Snapshots are how other shards read a running execution (its own shard reads it live):
     * none with one shard, and the first one after the start's calls have gone out. */
    if (e->shard_count > 1) nx_shard_after_submit(es->shard, &en->snapshot_later);
    *out = x;
    return 0;
}

/* The entry of a running execution of this shard (hooks arg is the entry). */
static entry_t *entry_of_local(nx_engine_t *e, nx_exec_t *x) {
    nx_exec_store_t *st = e->executions;
    pthread_mutex_lock(&st->mu);
    entry_t *en = find_locked(st, nx_exec_id(x));
    pthread_mutex_unlock(&st->mu);
    return en;
}

void nx_run_abandon(nx_exec_t *x, bool cancel) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    entry_t *en = es ? entry_of_local(es->engine, x) : NULL;
    if (en != NULL) memset(&en->hooks, 0, sizeof(en->hooks));
    if (en != NULL) en->publish_steps = true;
    if (cancel) nx_exec_cancel(x);
}

/* ---- cancel across shards ---- */

typedef struct cancel_msg {
    nx_msg_t msg;
    nx_engine_t *e;
    char id[40];
} cancel_msg_t;

static void cancel_here(nx_engine_t *e, const char *id) {
    nx_exec_store_t *st = e->executions;
    pthread_mutex_lock(&st->mu);
    entry_t *en = find_locked(st, id);
    nx_exec_t *x = en && !en->ended ? en->x : NULL;
    pthread_mutex_unlock(&st->mu);
    /* Only this shard ends its executions, so <x> cannot end between the lock and here. */
    if (x != NULL) nx_exec_cancel(x);
}

static void on_cancel_msg(nx_shard_t *s, nx_msg_t *m) {
    cancel_msg_t *cm = (cancel_msg_t *)m;
    (void)s;
    cancel_here(cm->e, cm->id);
    free(cm);
}

/* ---- MCP: one tool per workflow ---- */

typedef struct tool_run {
    nx_mcp_call_t *call;
    nx_exec_t *x;
    uint32_t progress;
} tool_run_t;

static void tool_event(void *arg, nx_exec_t *x, const char *type, const json_t *data) {
    tool_run_t *tr = arg;
    if (strcmp(type, "step.finished") != 0) return;
    uint32_t finished, total;
    nx_exec_progress(x, &finished, &total);
    char msg[160];
    snprintf(msg, sizeof(msg), "step %s %s", json_string_value(json_object_get(data, "step")),
             json_string_value(json_object_get(data, "status")));
    tr->progress++;
    nx_mcp_call_progress(tr->call, tr->progress, tr->progress <= total ? (double)total : -1.0, msg);
}

static void tool_done(void *arg, nx_exec_t *x) {
    tool_run_t *tr = arg;
    nx_mcp_call_t *call = tr->call;
    free(tr);
    nx_mcp_call_on_cancel(call, NULL, NULL);
    if (nx_exec_status(x) == NX_EXEC_SUCCEEDED) {
        const json_t *r = nx_exec_result(x);
        if (json_is_object(r)) {
            nx_mcp_call_return_json(call, json_deep_copy(r), false);
        } else {
            char *text = json_dumps(r, JSON_ENCODE_ANY | JSON_INDENT(2));
            nx_mcp_call_return_text(call, text ? text : "null", false);
            free(text);
        }
        return;
    }
    const json_t *err = nx_exec_error(x);
    const char *m = json_string_value(json_object_get(err, "message"));
    json_t *sc = json_pack("{s:s, s:s, s:O}", "execution", nx_exec_id(x), "status",
                           nx_exec_status_name(nx_exec_status(x)), "error",
                           err ? (json_t *)err : json_null());
    json_t *r = json_pack("{s:[{s:s, s:s}], s:o, s:b}", "content", "type", "text", "text",
                          m ? m : "the workflow failed", "structuredContent", sc, "isError", 1);
    nx_mcp_call_return(call, r);
}

static void tool_cancelled(nx_mcp_call_t *call, void *arg) {
    tool_run_t *tr = arg;
    (void)call;
    nx_exec_t *x = tr->x;
    free(tr);
    nx_run_abandon(x, true);
}

static void workflow_tool(nx_mcp_call_t *call, json_t *args, void *data) {
    const nx_workflow_t *wf = data;
    nx_engine_shard_t *es = nx_engine_current_shard();
    tool_run_t *tr = calloc(1, sizeof(*tr));
    if (tr == NULL || es == NULL) {
        free(tr);
        nx_mcp_call_error(call, NX_RPC_INTERNAL_ERROR, "out of memory", NULL);
        return;
    }
    tr->call = call;
    nx_run_hooks_t hooks = {.event = tool_event, .done = tool_done};
    json_t *errors = NULL;
    const char *why = NULL;
    json_t *depth =
        json_object_get(json_object_get(nx_mcp_call_params(call), "_meta"), NX_EXEC_META_DEPTH);
    json_int_t d = json_is_integer(depth) ? json_integer_value(depth) : 0;
    uint32_t nesting = d <= 0 ? 0u : d > 1000 ? 1000u : (uint32_t)d;
    int rc = nx_run_start(es, wf->name, NX_WF_CHANNEL_MCP, args, nesting, &hooks, tr, &tr->x,
                          &errors, &why);
    if (rc < 0) {
        free(tr);
        if (rc == -EINVAL)
            nx_mcp_call_error(call, NX_RPC_INVALID_PARAMS, "the arguments do not fit the workflow",
                              json_pack("{s:o}", "errors", errors ? errors : json_array()));
        else if (rc == NX_EFULL)
            nx_mcp_call_error(call, NX_RPC_INTERNAL_ERROR,
                              "too many executions are running; retry later",
                              json_pack("{s:i}", "retryAfterMs", 1000));
        else
            nx_mcp_call_error(call, NX_RPC_INTERNAL_ERROR, why ? why : "could not start", NULL);
        return;
    }
    nx_mcp_call_on_cancel(call, tool_cancelled, tr);
}

/* Every call step naming a native tool must name one that exists. */
static int check_native_tools(nx_engine_t *e, const nx_workflow_t *wf, char *err, size_t errlen) {
    for (uint32_t i = 0; i < wf->step_count; i++) {
        const nx_step_t *s = wf->by_index[i];
        if (s->kind != NX_STEP_CALL || s->server != NULL) continue;
        if (nx_mcp_server_has(e->mcp, NX_MCP_CATALOG_TOOLS, s->tool)) continue;
        snprintf(err, errlen,
                 "%s:%d: %s.call: no tool named '%s' (a backend's tool is written "
                 "server.tool)",
                 e->config->config.source[0] ? e->config->config.source : "config", s->line,
                 s->path, s->tool);
        return NX_ECONFIG;
    }
    return 0;
}

int nx_executions_setup(nx_engine_t *e, char *err, size_t errlen) {
    nx_exec_store_t *st = calloc(1, sizeof(*st));
    if (st == NULL) return -ENOMEM;
    pthread_mutex_init(&st->mu, NULL);
    nx_list_init(&st->order);
    st->max = e->config->config.executions_max;
    st->keep_ms = e->config->config.executions_keep_ms;
    e->executions = st;
    e->workflows = nx_workflows_ref(e->config->config.workflows);
    if (e->workflows == NULL) return 0;
    for (size_t i = 0; i < e->workflows->count; i++) {
        const nx_workflow_t *wf = e->workflows->items[i];
        if (!(wf->channels & NX_WF_CHANNEL_MCP)) continue;
        char *schema = json_dumps(wf->input_schema, JSON_COMPACT);
        nx_mcp_tool_def_t def = {.name = wf->tool_name,
                                 .description = wf->description,
                                 .input_schema = schema,
                                 .annotations = "{\"openWorldHint\":true}",
                                 .handler = workflow_tool,
                                 .data = (void *)wf};
        char why[256];
        int rc = schema ? nx_mcp_server_add_tool(e->mcp, &def, why, sizeof(why)) : -ENOMEM;
        free(schema);
        if (rc < 0) {
            snprintf(err, errlen, "%s:%d: workflows: %s: %s", e->config->config.source, wf->line,
                     wf->name, rc == -ENOMEM ? "out of memory" : why);
            return rc == -ENOMEM ? rc : NX_ECONFIG;
        }
    }
    for (size_t i = 0; i < e->workflows->count; i++) {
        int rc = check_native_tools(e, e->workflows->items[i], err, errlen);
        if (rc < 0) return rc;
    }
    return 0;
}

void nx_executions_free(nx_engine_t *e) {
    nx_exec_store_t *st = e->executions;
    if (st != NULL) {
        entry_t *gone = NULL;
        while (!nx_list_empty(&st->order)) {
            entry_t *en = nx_container_of(st->order.next, entry_t, order);
            unlink_locked(st, en);
            en->next_in_bucket = gone;
            gone = en;
        }
        free_list(gone);
        pthread_mutex_destroy(&st->mu);
        free(st);
        e->executions = NULL;
    }
    nx_workflows_unref(e->workflows);
    e->workflows = NULL;
}

/* Once every backend has listed its tools, warns about call steps naming a tool their backend
 * does not offer (a typo the configuration could not see: catalogs are only known at run
 * time). Such a step fails when it runs, with the backend's "unknown tool" error. */
static void on_catalog_check(nx_timer_t *t) {
    nx_exec_store_t *st = nx_container_of(t, nx_exec_store_t, catalog_check);
    nx_engine_t *e = st->checker->engine;
    if (!nx_backends_listed(e->backends)) {
        if (++st->catalog_polls < CATALOG_POLLS)
            nx_shard_timer_start(st->checker->shard, t, CATALOG_POLL_MS);
        else
            nx_log_warn("workflows: the backends did not list their tools within %u s; call "
                        "steps were not checked against their catalogs",
                        CATALOG_POLLS * CATALOG_POLL_MS / 1000u);
        return;
    }
    nx_mcp_provider_t p;
    void *arg;
    nx_mcp_server_get_provider(e->mcp, &p, &arg);
    json_t *items = json_array(), *names = json_object();
    if (p.list != NULL) p.list(arg, NX_MCP_CATALOG_TOOLS, items);
    size_t i;
    json_t *tool;
    json_array_foreach(items, i, tool) {
        const char *n = json_string_value(json_object_get(tool, "name"));
        if (n != NULL) json_object_set_new(names, n, json_true());
    }
    size_t unknown = 0;
    for (size_t w = 0; e->workflows != NULL && w < e->workflows->count; w++) {
        const nx_workflow_t *wf = e->workflows->items[w];
        for (uint32_t k = 0; k < wf->step_count; k++) {
            const nx_step_t *s = wf->by_index[k];
            if (s->kind != NX_STEP_CALL || s->server == NULL) continue;
            if (json_object_get(names, s->tool) != NULL) continue;
            unknown++;
            nx_log_warn("%s:%d: %s.call: backend %s lists no tool '%s' (%s); the step fails "
                        "until it does",
                        e->config->config.source, s->line, s->path, s->server, s->tool,
                        s->target ? s->target : s->tool);
        }
    }
    if (unknown == 0) nx_log_debug("workflows: every call step names a listed tool");
    json_decref(items);
    json_decref(names);
}

void nx_executions_shard_start(nx_engine_shard_t *es) {
    nx_engine_t *e = es->engine;
    nx_exec_store_t *st = e->executions;
    if (st == NULL || es->shard->id != 0 || e->workflows == NULL || e->backends == NULL) return;
    st->checker = es;
    nx_timer_init(&st->catalog_check, on_catalog_check);
    nx_shard_timer_start(es->shard, &st->catalog_check, CATALOG_POLL_MS);
}

void nx_executions_shard_stop(nx_engine_shard_t *es) {
    nx_exec_store_t *st = es->engine->executions;
    if (st == NULL) return;
    if (st->checker == es) nx_timer_stop(&st->catalog_check);
    /* Cancel this shard's running executions; their records stay (ended, cancelled). */
    for (;;) {
        nx_exec_t *x = NULL;
        pthread_mutex_lock(&st->mu);
        nx_list_t *it;
        for (it = st->order.next; it != &st->order; it = it->next) {
            entry_t *en = nx_container_of(it, entry_t, order);
            if (!en->ended && en->shard == (uint32_t)es->shard->id) {
                x = en->x;
                break;
            }
        }
        pthread_mutex_unlock(&st->mu);
        if (x == NULL) break;
        nx_exec_cancel(x); /* the starters hear "cancelled" through their hooks */
    }
}

json_t *nx_executions_health(const nx_engine_t *e) {
    nx_exec_store_t *st = e->executions;
    size_t count = 0, running = 0;
    if (st != NULL) {
        pthread_mutex_lock(&st->mu);
        count = st->count;
        running = st->running;
        pthread_mutex_unlock(&st->mu);
    }
    return json_pack("{s:I, s:I, s:I}", "defined",
                     (json_int_t)(e->workflows ? e->workflows->count : 0), "running",
                     (json_int_t)running, "stored", (json_int_t)count);
}

int nx_executions_state(nx_engine_t *e, const char *id) {
    nx_exec_store_t *st = e->executions;
    if (st == NULL) return -1;
    pthread_mutex_lock(&st->mu);
    entry_t *en = find_locked(st, id);
    int state = en == NULL ? -1 : en->ended ? 1 : 0;
    pthread_mutex_unlock(&st->mu);
    return state;
}

/* ---- REST ---- */

/* The HTTP status of an ended execution answered synchronously. */
static int status_of(nx_exec_t *x) {
    switch (nx_exec_status(x)) {
    case NX_EXEC_SUCCEEDED:
        return 200;
    case NX_EXEC_CANCELLED:
        return 409;
    default: {
        const char *reason = json_string_value(json_object_get(nx_exec_error(x), "reason"));
        return reason && strcmp(reason, "deadline") == 0 ? 504 : 502;
    }
    }
}

typedef struct sync_run {
    nx_http_conn_t *hc;
    nx_exec_t *x;
} sync_run_t;

static void sync_done(void *arg, nx_exec_t *x) {
    sync_run_t *sr = arg;
    nx_http_conn_t *hc = sr->hc;
    free(sr);
    nx_buf_t body;
    nx_buf_init(&body);
    if (nx_exec_record_write(x, &body) < 0)
        nx_http_respond_error(hc, 500, "could not encode the response", NULL);
    else
        nx_http_respond(hc, status_of(x), "application/json", body.data, body.len, NULL);
    nx_buf_dispose(&body);
}

static void sync_client_gone(nx_http_conn_t *hc, void *arg) {
    sync_run_t *sr = arg;
    (void)hc;
    nx_exec_t *x = sr->x;
    free(sr);
    nx_run_abandon(x, true);
}

/* Parses the JSON object body (empty = {}); NULL after answering 400. */
static json_t *read_object(nx_http_conn_t *hc, nx_str_t body, const char *what) {
    size_t skip = 0;
    while (skip < body.n && (body.p[skip] == ' ' || body.p[skip] == '\t' || body.p[skip] == '\r' ||
                             body.p[skip] == '\n'))
        skip++;
    if (skip == body.n) return json_object();
    json_error_t je;
    json_t *j = json_loadb(body.p, body.n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (j != NULL && json_is_object(j)) return j;
    char m[300];
    if (j == NULL)
        snprintf(m, sizeof(m), "the body must be a JSON object (%s): %s (line %d, column %d)", what,
                 je.text, je.line, je.column);
    else
        snprintf(m, sizeof(m), "the body must be a JSON object (%s)", what);
    json_decref(j);
    for (char *p = m; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) *p = '?';
    nx_rest_send_error(hc, 400, m, NULL, NULL);
    return NULL;
}

/* The channel a REST request starts a workflow for: `nexus run` reaches the server over REST
 * but is the CLI channel, and says so with "X-Nexus-Channel: cli" (a workflow's channels say
 * where it is offered, not who may run it: that is what auth scopes are for). */
static unsigned channel_of(const nx_http_request_t *req) {
    nx_str_t ch = nx_http_request_header(req, "X-Nexus-Channel");
    return nx_str_eq_lit_nocase(ch, "cli") ? NX_WF_CHANNEL_CLI : NX_WF_CHANNEL_API;
}

/* Starts <name> with <inputs> for <channel> (NX_WF_CHANNEL_API or _CLI); answers now (errors,
 * or 202 when not <wait>) or when it ends. */
static void run_rest(nx_engine_shard_t *es, nx_http_conn_t *hc, const char *name,
                     const json_t *inputs, bool wait, unsigned channel) {
    sync_run_t *sr = wait ? calloc(1, sizeof(*sr)) : NULL;
    if (wait && sr == NULL) {
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    nx_run_hooks_t hooks = {.done = sync_done};
    json_t *errors = NULL;
    const char *why = NULL;
    nx_exec_t *x = NULL;
    int rc =
        nx_run_start(es, name, channel, inputs, 0, wait ? &hooks : NULL, sr, &x, &errors, &why);
    if (rc < 0) {
        free(sr);
        if (rc == NX_ENOTFOUND) {
            char m[200];
            snprintf(m, sizeof(m), "workflow '%s': %s", name, why ? why : "not found");
            nx_rest_send_error(hc, 404, m, json_pack("{s:s}", "workflow", name), NULL);
        } else if (rc == -EINVAL) {
            nx_rest_send_error(hc, 400, "the inputs do not fit the workflow's input schema",
                               json_pack("{s:o}", "errors", errors ? errors : json_array()), NULL);
        } else if (rc == NX_EFULL) {
            nx_rest_send_error(hc, 503, "too many executions are running; retry later", NULL,
                               "Retry-After: 1\r\n");
        } else {
            nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        }
        return;
    }
    if (wait) {
        sr->hc = hc;
        sr->x = x;
        nx_http_defer(hc, sync_client_gone, sr);
        return;
    }
    char headers[128];
    snprintf(headers, sizeof(headers), "Location: /api/executions/%s\r\n", nx_exec_id(x));
    char self[80], events[96];
    snprintf(self, sizeof(self), "/api/executions/%s", nx_exec_id(x));
    snprintf(events, sizeof(events), "/events?execution=%s", nx_exec_id(x));
    nx_rest_send_json(hc, 202,
                      json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "id", nx_exec_id(x), "workflow",
                                name, "status", "running", "links", "self", self, "events", events),
                      headers);
}

static bool copy_param(nx_str_t p, char *out, size_t cap) {
    if (p.n == 0 || p.n >= cap) return false;
    memcpy(out, p.p, p.n);
    out[p.n] = '\0';
    return strlen(out) == p.n;
}

void nx_route_workflows_list(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                             const nx_route_match_t *m) {
    (void)req;
    (void)m;
    nx_workflows_t *w = es->engine->workflows;
    json_t *list = json_array();
    for (size_t i = 0; w != NULL && i < w->count; i++)
        json_array_append_new(list, nx_workflow_describe(w->items[i]));
    nx_rest_send_json(
        hc, 200,
        json_pack("{s:o, s:I}", "workflows", list, "count", (json_int_t)(w ? w->count : 0)), NULL);
}

void nx_route_workflow_run(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                           const nx_route_match_t *m) {
    char name[80];
    if (!copy_param(m->params[0], name, sizeof(name))) {
        nx_rest_send_error(hc, 404, "no such workflow", NULL, NULL);
        return;
    }
    json_t *inputs = read_object(hc, req->body, "the workflow's inputs");
    if (inputs == NULL) return;
    run_rest(es, hc, name, inputs, true, channel_of(req));
    json_decref(inputs);
}

void nx_route_executions_start(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                               const nx_route_match_t *m) {
    (void)m;
    json_t *body = read_object(hc, req->body, "{\"workflow\", \"inputs\", \"wait\"}");
    if (body == NULL) return;
    const char *name = json_string_value(json_object_get(body, "workflow"));
    json_t *inputs = json_object_get(body, "inputs");
    json_t *wait = json_object_get(body, "wait");
    const char *problem = NULL;
    if (name == NULL)
        problem = "\"workflow\" (a string) is required";
    else if (inputs != NULL && !json_is_object(inputs))
        problem = "\"inputs\" must be an object";
    else if (wait != NULL && !json_is_boolean(wait))
        problem = "\"wait\" must be true or false";
    else {
        const char *k;
        json_t *v;
        json_object_foreach(body, k, v) {
            if (strcmp(k, "workflow") && strcmp(k, "inputs") && strcmp(k, "wait")) {
                problem = "unknown member (expected workflow, inputs, wait)";
                break;
            }
        }
    }
    if (problem != NULL) {
        nx_rest_send_error(hc, 400, problem, NULL, NULL);
        json_decref(body);
        return;
    }
    json_t *empty = inputs ? NULL : json_object();
    run_rest(es, hc, name, inputs ? inputs : empty, json_is_true(wait), channel_of(req));
    json_decref(empty);
    json_decref(body);
}

/* The record of execution <id> as JSON text for any shard; NULL when unknown. */
static json_t *record_of(nx_engine_shard_t *es, const char *id) {
    nx_exec_store_t *st = es->engine->executions;
    json_t *rec = NULL;
    pthread_mutex_lock(&st->mu);
    entry_t *en = find_locked(st, id);
    if (en != NULL) {
        if (en->ended || en->shard == (uint32_t)es->shard->id)
            rec = nx_exec_record(en->x);
        else if (en->snapshot != NULL)
            rec = json_loads(en->snapshot, 0, NULL);
        else
            rec = json_pack("{s:s, s:s}", "id", en->id, "status", "running");
    }
    pthread_mutex_unlock(&st->mu);
    return rec;
}

void nx_route_execution_get(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                            const nx_route_match_t *m) {
    (void)req;
    char id[40];
    json_t *rec = copy_param(m->params[0], id, sizeof(id)) ? record_of(es, id) : NULL;
    if (rec == NULL) {
        nx_rest_send_error(hc, 404,
                           "no such execution (records expire executions.keep after the end)", NULL,
                           NULL);
        return;
    }
    nx_rest_send_json(hc, 200, rec, NULL);
}

void nx_route_executions_list(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                              const nx_route_match_t *m) {
    (void)req;
    (void)m;
    nx_exec_store_t *st = es->engine->executions;
    json_t *list = json_array();
    pthread_mutex_lock(&st->mu);
    size_t n = 0;
    /* The newest 100, newest first. */
    for (nx_list_t *it = st->order.prev; it != &st->order && n < 100; it = it->prev, n++) {
        entry_t *en = nx_container_of(it, entry_t, order);
        const char *status = "running";
        if (en->ended) status = nx_exec_status_name(nx_exec_status(en->x));
        json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "id", en->id, "workflow",
                                              nx_exec_workflow(en->x)->name, "status", status));
    }
    size_t total = st->count, running = st->running;
    pthread_mutex_unlock(&st->mu);
    nx_rest_send_json(hc, 200,
                      json_pack("{s:o, s:I, s:I}", "executions", list, "count", (json_int_t)total,
                                "running", (json_int_t)running),
                      NULL);
}

void nx_route_execution_cancel(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                               const nx_route_match_t *m) {
    (void)req;
    char id[40];
    nx_exec_store_t *st = es->engine->executions;
    if (!copy_param(m->params[0], id, sizeof(id))) {
        nx_rest_send_error(hc, 404, "no such execution", NULL, NULL);
        return;
    }
    pthread_mutex_lock(&st->mu);
    entry_t *en = find_locked(st, id);
    bool found = en != NULL, ended = en && en->ended;
    uint32_t owner = en ? en->shard : 0;
    const char *status = ended ? nx_exec_status_name(nx_exec_status(en->x)) : "running";
    pthread_mutex_unlock(&st->mu);
    if (!found) {
        nx_rest_send_error(hc, 404, "no such execution", NULL, NULL);
        return;
    }
    if (ended) {
        char msg[120];
        snprintf(msg, sizeof(msg), "the execution already ended (%s)", status);
        nx_rest_send_error(hc, 409, msg, json_pack("{s:s}", "status", status), NULL);
        return;
    }
    if (owner == (uint32_t)es->shard->id) {
        cancel_here(es->engine, id);
    } else {
        cancel_msg_t *cm = calloc(1, sizeof(*cm));
        if (cm == NULL) {
            nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
            return;
        }
        cm->msg.fn = on_cancel_msg;
        cm->e = es->engine;
        snprintf(cm->id, sizeof(cm->id), "%s", id);
        if (nx_shard_post(es->engine->shards[owner]->shard, es->shard->loop, &cm->msg) < 0) {
            free(cm);
            nx_http_respond_error(hc, 503, "the execution's shard is busy", "Retry-After: 1\r\n");
            return;
        }
    }
    nx_rest_send_json(hc, 202, json_pack("{s:s, s:s}", "id", id, "status", "cancelling"), NULL);
}
