/* Backend MCP servers (see backends.h).
 *
 * A backend has instances (backend_link.h): the processes of a stdio backend, or one MCP
 * session per shard per replica of an HTTP backend. Each instance, with its link, MCP client,
 * calls in flight and timers, belongs to its owner shard. Other shards see only the backend's
 * catalog snapshot (an immutable JSON object read through a per-shard hazard slot, so a
 * snapshot replaced by a refresh is freed only once no reader can be about to take a
 * reference) and atomically updated counters. A call starts on the shard of the client (the
 * origin), which keeps a proxy record and picks an instance (for sessions, its own shard's;
 * then by round robin or least outstanding calls, skipping ejected and unhealthy ones); the
 * request, its answer, its progress, the backend's requests to the client and the cancellation
 * cross between origin and owner as mailbox messages that name the call by (origin, seq), never by
 * pointer, so either side may go away first. When origin and owner are the same shard the messages
 * still go through the mailbox: one path, and no re-entrance.
 *
 * A rest backend (backend_rest.c) has instances too — one pool per shard per replica, no MCP
 * session and no catalog — and shares the policy objects, replica choice and counters here. */
#include "backends.h"

#include "backend_link.h"
#include "backends_internal.h"
#include "bulkhead.h"
#include "child.h"
#include "jsonrpc.h"
#include "log.h"
#include "mcp_client.h"
#include "nexus/errors.h"
#include "resolver.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHARDS NX__BACKENDS_MAX_SHARDS
#define MAX_INSTANCES 4096
#define READY_STABLE_MS 10000u  /* a link that stayed up this long resets the backoff */
#define RESOLVE_EVERY_MS 30000u /* backend names are looked up again this often */

typedef enum backend_state { B_STARTING, B_READY, B_RESTARTING, B_STOPPED } backend_state_t;
static const char *const state_names[] = {"starting", "ready", "restarting", "stopped"};

typedef nx_backend_instance_t instance_t;
typedef nx_backend_t backend_t;

/* A call in flight on the owner: the client request and where its answer goes. */
typedef struct owner_call {
    nx_list_t link; /* in in->calls */
    instance_t *in;
    uint32_t origin;
    uint64_t seq;
    json_int_t request_id;     /* 0 while queued for the handshake */
    json_int_t progress_token; /* names the call in the backend's progress notifications */
    nx_timer_t timeout;
    char *method; /* while queued: the request to send once the instance is ready */
    json_t *params;
} owner_call_t;

static void owner_send_queued(nx_backend_instance_t *in);
static void stop_link(nx_backend_instance_t *in);
static void owner_fail_queued(nx_backend_instance_t *in, const char *why);

/* The catalogs a backend announces, in snapshot order (see publish_kind). */
static const char *const kind_keys[] = {"tools", "resources", "resourceTemplates", "prompts"};
/* Beside the tools and the prompts, the snapshot keeps them by name too ({name: entry}): every
 * call is routed by name, and a scan of the list was the largest part of routing one. */
static const char *const name_index_keys[] = {"tools by name", NULL, NULL, "prompts by name"};
static const char *const kind_methods[] = {"tools/list", "resources/list",
                                           "resources/templates/list", "prompts/list"};
static const char *const kind_capability[] = {"tools", "resources", "resources", "prompts"};
#define KINDS NX__BACKEND_KINDS

/* On the origin: a call waiting for its backend. */
typedef struct proxy {
    nx_list_t link; /* in all->proxies[origin] */
    uint64_t seq;
    nx_mcp_call_t *call;
    backend_t *b;
    nx_backends_t *all;
    uint32_t origin;
    uint32_t instance; /* of the current try */
    uint64_t started_ns;
    nx_breaker_permit_t permit;
    bool permitted; /* the breaker admitted the current try: its outcome must be recorded */
    char *method;   /* tools/call, resources/read, prompts/get, completion/complete */
    json_t *params; /* in the backend's names, kept for retries */
    bool want_progress;
    uint32_t attempts;           /* tries sent so far */
    nx_backoff_config_t backoff; /* the backend's, or the call's own (NX_BACKENDS_META_RETRY) */
    uint64_t deadline_ms;        /* monotonic; 0 = none */
    uint64_t budget_ms;          /* deadline_ms - the start, for messages */
    bool retry_held;             /* a retry slot of the budget is ours */
    nx_timer_t retry_timer;
    nx_timer_t deadline_timer; /* ends the call at its deadline, whatever try is under way */
    nx_list_t relays;          /* the backend's requests waiting for this call's client */
} proxy_t;

/* Where the client's answer to a relayed request goes. */
typedef struct relay {
    nx_list_t link; /* in proxy->relays */
    nx_backends_t *all;
    uint32_t backend, instance, origin, generation;
    uint64_t seq;
    json_t *request_id;
} relay_t;

static backend_t *backend_of(const instance_t *in) {
    return in->backend;
}

static uint64_t mono_ms(void) {
    return nx_loop_clock_ns() / 1000000u;
}

static uint32_t current_shard(void) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    return es ? (uint32_t)es->shard->id : 0;
}

/* ---- messages between origin and owner ---- */

typedef enum {
    M_CALL,      /* origin -> owner: a try of a call */
    M_CANCEL,    /* origin -> owner: the client cancelled */
    M_ANSWER,    /* owner -> origin: the try's answer */
    M_NOTIFY,    /* owner -> origin: progress or a log message of the call */
    M_REQUEST,   /* owner -> origin: the backend asks the call's client (sampling...) */
    M_RESPONSE,  /* origin -> owner: the client's answer to M_REQUEST */
    M_SUBSCRIBE, /* origin -> catalog shard: a front-end (un)subscription to a resource */
    M_BROADCAST, /* owner -> every shard: a notification for all clients */
    M_TEST,      /* origin -> owner: ping the instance now (connection test) */
    M_TESTED,    /* owner -> origin: the outcome of M_TEST */
} msg_kind_t;

typedef struct bmsg {
    nx_msg_t msg;
    msg_kind_t kind;
    nx_backends_t *all;
    uint32_t backend, instance, origin;
    uint64_t seq;
    char *method;       /* M_CALL, M_NOTIFY, M_REQUEST, M_BROADCAST: the method; M_SUBSCRIBE: uri */
    json_t *payload;    /* params; M_ANSWER and M_RESPONSE: result or error */
    json_t *request_id; /* M_REQUEST, M_RESPONSE: the backend's id of its request */
    uint32_t generation; /* M_REQUEST, M_RESPONSE: the link that asked */
    bool is_error;
    bool flag; /* M_CALL: progress wanted; M_SUBSCRIBE: subscribe (else unsubscribe) */
    nx_backends_test_cb test_cb; /* M_TEST, M_TESTED: where the outcome goes (on the origin) */
    void *test_arg;
} bmsg_t;

static void dispose_bmsg(nx_msg_t *m) {
    bmsg_t *bm = (bmsg_t *)m;
    free(bm->method);
    json_decref(bm->payload);
    json_decref(bm->request_id);
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

static bmsg_t *bmsg_new(msg_kind_t kind, nx_backends_t *all, uint32_t backend, uint32_t instance,
                        uint32_t origin, uint64_t seq) {
    bmsg_t *bm = calloc(1, sizeof(*bm));
    if (bm == NULL) return NULL;
    bm->kind = kind;
    bm->all = all;
    bm->backend = backend;
    bm->instance = instance;
    bm->origin = origin;
    bm->seq = seq;
    return bm;
}

static json_t *retryable_error(const backend_t *b, const char *message) {
    return json_pack("{s:i, s:s, s:{s:s, s:b}}", "code", -32603, "message", message, "data",
                     "backend", b->name, "retryable", 1);
}

/* ---- catalog snapshots (the catalog shard publishes, every shard reads) ---- */

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
    if (json_array_size(b->retired) > 0)
        nx_shard_timer_start(b->catalog_es->shard, &b->retire_timer, 1);
}

static void publish(backend_t *b, json_t *snapshot) {
    json_t *old = atomic_exchange(&b->catalog, snapshot);
    if (old == NULL) return;
    json_array_append_new(b->retired, old);
    nx_shard_timer_start(b->catalog_es->shard, &b->retire_timer, 1);
}

/* Replaces catalog <kind> of the snapshot with <items> (stolen): a new snapshot object sharing
 * the other catalogs, which nobody ever modifies once published. */
static void publish_kind(backend_t *b, int kind, json_t *items) {
    json_t *cur = atomic_load(&b->catalog); /* only this shard replaces it */
    json_t *next = cur ? json_copy(cur) : json_object();
    for (int k = 0; k < KINDS; k++)
        if (json_object_get(next, kind_keys[k]) == NULL)
            json_object_set_new(next, kind_keys[k], json_array());
    if (name_index_keys[kind] != NULL) {
        json_t *by_name = json_object();
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item) {
            const char *name = json_string_value(json_object_get(item, "name"));
            if (name != NULL && json_object_get(by_name, name) == NULL)
                json_object_set(by_name, name, item);
        }
        json_object_set_new(next, name_index_keys[kind], by_name);
    }
    json_object_set_new(next, kind_keys[kind], items);
    publish(b, next);
}

static bool instance_ready(const instance_t *in) {
    /* A rest instance has no MCP client: its pool is all there is. */
    return atomic_load(&in->state) == B_READY &&
           (in->client_live || in->spec->transport == NX_BACKEND_REST);
}

/* A ready instance of the catalog shard other than <not>, or NULL. */
static instance_t *catalog_instance(backend_t *b, const instance_t * not ) {
    for (uint32_t i = 0; i < b->instance_count; i++) {
        instance_t *in = &b->instances[i];
        if (in != not &&in->owner == b->catalog_shard && instance_ready(in)) return in;
    }
    return NULL;
}

typedef struct page_req {
    instance_t *in;
    int kind;
    uint32_t generation;
} page_req_t;

static void on_list_page(nx_mcp_client_t *cl, const json_t *result, const json_t *error, void *arg);

static void request_page(instance_t *in, int kind, const char *cursor) {
    page_req_t *pr = malloc(sizeof(*pr));
    if (pr == NULL) return;
    *pr = (page_req_t){in, kind, in->generation};
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : NULL;
    nx_mcp_client_request(&in->client, kind_methods[kind], params, on_list_page, pr);
}

static void refresh_kind(instance_t *in, int kind) {
    backend_t *b = backend_of(in);
    if (b->pages[kind] != NULL) {
        b->refresh_again[kind] = true; /* after the refresh under way */
        return;
    }
    b->pages[kind] = json_array();
    b->pages_in[kind] = in;
    request_page(in, kind, NULL);
}

static void end_refresh(backend_t *b, int kind) {
    json_decref(b->pages[kind]);
    b->pages[kind] = NULL;
    b->pages_in[kind] = NULL;
}

/* No list is under way: each catalog the server offers has been listed (or failed to be). */
static void note_listed(backend_t *b) {
    for (int k = 0; k < KINDS; k++)
        if (b->pages[k] != NULL) return;
    atomic_store(&b->listed, true);
}

/* An unprefixed name that nexus itself or a backend listed before <b> already serves: the
 * first one wins (calls could reach only it), and the clash is logged. */
static bool name_taken(backend_t *b, int kind, const char *name) {
    nx_mcp_catalog_kind_t k = kind == 0 ? NX_MCP_CATALOG_TOOLS : NX_MCP_CATALOG_PROMPTS;
    const char *by = nx_mcp_server_has(b->all->e->mcp, k, name) ? "nexus itself" : NULL;
    for (uint32_t i = 0; by == NULL && i < b->index; i++) {
        backend_t *other = &b->all->items[i];
        json_t *snap = catalog_acquire(other, current_shard());
        json_t *t;
        size_t j;
        json_array_foreach(json_object_get(snap, kind_keys[kind]), j, t) {
            const char *n = json_string_value(json_object_get(t, "name"));
            if (n != NULL && strcmp(n, name) == 0) by = other->name;
        }
        json_decref(snap);
    }
    if (by != NULL)
        nx_log_warn("backend %s: %s %s is hidden: %s serves one by that name (set prefix: true)",
                    b->name, kind == 0 ? "tool" : "prompt", name, by);
    return by != NULL;
}

static void on_list_page(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                         void *arg) {
    page_req_t pr = *(page_req_t *)arg;
    free(arg);
    instance_t *in = pr.in;
    backend_t *b = backend_of(in);
    int kind = pr.kind;
    if (pr.generation != in->generation || b->pages_in[kind] != in) return; /* an older link */
    if (error != NULL) {
        nx_log_warn("backend %s: %s failed: %s", b->name, kind_methods[kind],
                    json_string_value(json_object_get(error, "message")));
        end_refresh(b, kind);
        note_listed(b);
        return;
    }
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(result, kind_keys[kind]), i, item) {
        if (!json_is_object(item)) continue;
        /* The client sees the public name; everything else (schemas above all) verbatim. */
        json_t *pub = json_copy(item);
        const char *name = json_string_value(json_object_get(item, "name"));
        if (b->prefix && name != NULL && (kind == 0 || kind == 3)) {
            char full[512];
            snprintf(full, sizeof(full), "%s%s%s", b->name, b->all->sep, name);
            json_object_set_new(pub, "name", json_string(full));
        } else if (name != NULL && (kind == 0 || kind == 3) && name_taken(b, kind, name)) {
            json_decref(pub);
            continue;
        }
        json_array_append_new(b->pages[kind], pub);
    }
    const char *next = json_string_value(json_object_get(result, "nextCursor"));
    if (next != NULL && next[0] != '\0' && json_array_size(b->pages[kind]) < 100000) {
        request_page(in, kind, next);
        return;
    }
    json_t *items = b->pages[kind];
    b->pages[kind] = NULL;
    b->pages_in[kind] = NULL;
    nx_log_info("backend %s: %zu %s", b->name, json_array_size(items), kind_keys[kind]);
    publish_kind(b, kind, items);
    if (b->refresh_again[kind]) {
        b->refresh_again[kind] = false;
        refresh_kind(in, kind);
    }
    note_listed(b);
}

static void refresh_catalog(instance_t *in) {
    for (int k = 0; k < KINDS; k++) {
        /* Only what the server offers: asking for the rest would only earn -32601. */
        if (json_object_get(in->client.server_capabilities, kind_capability[k]) != NULL)
            refresh_kind(in, k);
    }
    note_listed(backend_of(in)); /* at once when it offers none */
}

/* ---- subscriptions (the catalog shard) ---- */

static void ignore_answer(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                          void *arg) {
    (void)cl, (void)result, (void)error, (void)arg;
}

static void send_subscription(instance_t *in, const char *uri, bool on) {
    nx_mcp_client_request(&in->client, on ? "resources/subscribe" : "resources/unsubscribe",
                          json_pack("{s:s}", "uri", uri), ignore_answer, NULL);
}

/* The instance the backend knows our subscriptions through; when the last one went away,
 * another ready one is told all of them. NULL when none is ready. */
static instance_t *subscriptions_instance(backend_t *b) {
    instance_t *in = b->subs_in;
    if (in != NULL && in->generation == b->subs_generation && instance_ready(in)) return in;
    in = catalog_instance(b, NULL);
    b->subs_in = in;
    if (in == NULL) return NULL;
    b->subs_generation = in->generation;
    const char *uri;
    json_t *n;
    json_object_foreach(b->subscriptions, uri, n) {
        send_subscription(in, uri, true);
    }
    return in;
}

/* Front-end subscriptions to the backend's resources, counted so the backend is told once. */
static void subscription_changed(backend_t *b, const char *uri, bool on) {
    json_int_t n = json_integer_value(json_object_get(b->subscriptions, uri));
    n += on ? 1 : -1;
    if (n <= 0)
        json_object_del(b->subscriptions, uri);
    else
        json_object_set_new(b->subscriptions, uri, json_integer(n));
    if ((on && n != 1) || (!on && n != 0)) return;
    instance_t *held = b->subs_in;
    instance_t *in = subscriptions_instance(b);
    /* A new holder was told every subscription already, this one included. */
    if (in != NULL && in == held) send_subscription(in, uri, on);
}

/* ---- the link and the client (owner) ---- */

static void post_broadcast(instance_t *in, const char *method, const json_t *params) {
    backend_t *b = backend_of(in);
    for (uint32_t k = 0; k < b->all->e->shard_count; k++) {
        bmsg_t *bm = bmsg_new(M_BROADCAST, b->all, b->index, in->index, k, 0);
        if (bm == NULL) return;
        bm->method = strdup(method);
        bm->payload = params ? json_deep_copy(params) : NULL;
        post(b->all, k, bm);
    }
}

static void start_link(instance_t *in);

static void schedule_restart(instance_t *in, bool now) {
    backend_t *b = backend_of(in);
    if (in->draining) {
        atomic_store(&in->state, B_STOPPED);
        nx_engine_shard_maybe_stop(in->es);
        return;
    }
    atomic_store(&in->state, B_RESTARTING);
    uint64_t delay = b->spec.restart_base_ms;
    for (uint32_t i = 0; i < in->failures && delay < b->spec.restart_cap_ms; i++)
        delay *= 2;
    if (delay > b->spec.restart_cap_ms) delay = b->spec.restart_cap_ms;
    if (now) delay = 0;
    in->failures++;
    if (!now) nx_log_warn("backend %s: restarting in %llu ms", b->name, (unsigned long long)delay);
    nx_shard_timer_start(in->es->shard, &in->restart_timer, delay);
}

static void on_restart_timer(nx_timer_t *t) {
    start_link(nx_container_of(t, instance_t, restart_timer));
}

static void start_link(instance_t *in) {
    backend_t *b = backend_of(in);
    atomic_store(&in->state, B_STARTING);
    in->link_stopping = false;
    int rc = b->link->start(in);
    if (rc < 0) {
        nx_log_error("backend %s: cannot start: %s", b->name, strerror(-rc));
        schedule_restart(in, false);
    }
}

static int client_send(nx_mcp_client_t *cl, const char *text, size_t len, void *arg) {
    instance_t *in = arg;
    return backend_of(in)->link->send(in, text, len, cl->sending_id);
}

/* ---- active health checks (owner) ---- */

static void on_check_timer(nx_timer_t *t);
#define PROBE_IN_FLIGHT (-1) /* check_request while the link probes */

static void schedule_check(instance_t *in) {
    const nx_backend_spec_t *sp = in->spec;
    if (!sp->health_checks || in->draining || in->check_request != 0) return;
    nx_shard_timer_start(in->es->shard, &in->check_timer,
                         sp->check_interval_ms ? sp->check_interval_ms : 10000);
}

/* Counts a check; the verdict is what the origins route by. */
static void check_done(instance_t *in, bool ok) {
    uint64_t now = mono_ms();
    bool was = atomic_load(&in->check_unhealthy);
    nx_health_check_result(&in->checks, now, ok);
    bool unhealthy = nx_health_status(&in->checks, now) == NX_HEALTH_UNHEALTHY;
    atomic_store(&in->check_unhealthy, unhealthy);
    if (ok)
        atomic_store(&in->last_check_us,
                     (uint32_t)((nx_loop_clock_ns() - in->check_sent_ns) / 1000u));
    if (was != unhealthy)
        nx_log_warn("backend %s: instance %u is %s by its health checks", in->name, in->index,
                    unhealthy ? "unhealthy" : "healthy again");
}

static void on_check_answer(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                            void *arg) {
    instance_t *in = arg;
    in->check_request = 0;
    nx_timer_stop(&in->check_timer);
    check_done(in, error == NULL);
    schedule_check(in);
}

void nx_backend_link_probed(nx_backend_instance_t *in, bool ok) {
    if (in->check_request != PROBE_IN_FLIGHT) return;
    in->check_request = 0;
    check_done(in, ok);
    schedule_check(in);
}

static void on_check_timer(nx_timer_t *t) {
    instance_t *in = nx_container_of(t, instance_t, check_timer);
    if (in->check_request > 0) { /* the ping timed out */
        nx_mcp_client_abandon(&in->client, in->check_request, NULL);
        in->check_request = 0;
        check_done(in, false);
        schedule_check(in);
        return;
    }
    if (!instance_ready(in)) {
        check_done(in, false); /* down, or still starting: not healthy */
        schedule_check(in);
        return;
    }
    in->check_sent_ns = nx_loop_clock_ns();
    const nx_backend_spec_t *spec = in->spec;
    const nx_backend_link_ops_t *link = backend_of(in)->link;
    if (spec->health_path != NULL && link->probe != NULL) {
        /* The link answers within the timeout itself (nx_backend_link_probed). */
        in->check_request = PROBE_IN_FLIGHT;
        link->probe(in, spec->check_timeout_ms ? spec->check_timeout_ms : 2000);
        return;
    }
    json_int_t id = nx_mcp_client_request(&in->client, "ping", NULL, on_check_answer, in);
    if (id == 0) return; /* failed at once: on_check_answer ran */
    in->check_request = id;
    const nx_backend_spec_t *sp = in->spec;
    nx_shard_timer_start(in->es->shard, &in->check_timer,
                         sp->check_timeout_ms ? sp->check_timeout_ms : 2000);
}

static void on_client_ready(nx_mcp_client_t *cl, void *arg) {
    instance_t *in = arg;
    backend_t *b = backend_of(in);
    atomic_store(&in->state, B_READY);
    in->ready_at = nx_shard_now_ms(in->es->shard);
    nx_log_info("backend %s: ready (protocol %s)", b->name, cl->protocol_version);
    if (b->link->ready != NULL) b->link->ready(in);
    owner_send_queued(in);
    schedule_check(in);
    if (in->owner != b->catalog_shard) return;
    refresh_catalog(in);
    subscriptions_instance(b);
}

static owner_call_t *find_call_by_token(instance_t *in, json_int_t token) {
    if (token <= 0) return NULL; /* 0: calls that asked for no progress */
    nx_list_t *pos;
    nx_list_foreach(pos, &in->calls) {
        owner_call_t *oc = nx_container_of(pos, owner_call_t, link);
        if (oc->progress_token == token) return oc;
    }
    return NULL;
}

/* The call a message from the backend is about: the request whose response stream carried it
 * when the link knows (Streamable HTTP), else the most recent call in flight (stdio carries no
 * relation between a request and what the server sends while serving it), which is exact
 * whenever calls do not overlap. */
static owner_call_t *attributed_call(instance_t *in) {
    nx_list_t *pos;
    if (in->related > 0) {
        nx_list_foreach(pos, &in->calls) {
            owner_call_t *oc = nx_container_of(pos, owner_call_t, link);
            if (oc->request_id == in->related) return oc;
        }
    }
    for (pos = in->calls.prev; pos != &in->calls; pos = pos->prev) {
        owner_call_t *oc = nx_container_of(pos, owner_call_t, link);
        if (oc->request_id != 0) return oc;
    }
    return NULL;
}

static void on_client_notification(nx_mcp_client_t *cl, const char *method, const json_t *params,
                                   void *arg) {
    instance_t *in = arg;
    backend_t *b = backend_of(in);
    for (int k = 0; k < KINDS; k++) {
        char changed[64];
        snprintf(changed, sizeof(changed), "notifications/%s/list_changed",
                 k == 2 ? "resources" : kind_keys[k]);
        if (strcmp(method, changed) != 0) continue;
        if (in->owner != b->catalog_shard) return; /* the catalog shard hears it too */
        refresh_kind(in, k);
        if (k == 1) refresh_kind(in, 2); /* one notification covers resources and templates */
        post_broadcast(in, method, NULL);
        return;
    }
    if (strcmp(method, "notifications/resources/updated") == 0) {
        post_broadcast(in, method, params);
        return;
    }
    owner_call_t *oc = NULL;
    if (strcmp(method, "notifications/progress") == 0) {
        /* Our progress token names the call. */
        json_t *token = json_object_get(params, "progressToken");
        oc = json_is_integer(token) ? find_call_by_token(in, json_integer_value(token)) : NULL;
    } else if (strcmp(method, "notifications/message") == 0) {
        oc = attributed_call(in);
        if (oc == NULL) {
            /* Said outside any call: nexus's log keeps it. */
            char *text = json_dumps(json_object_get(params, "data"), JSON_COMPACT);
            nx_log_info("backend %s: [%s] %s", b->name,
                        json_string_value(json_object_get(params, "level")), text ? text : "");
            free(text);
            return;
        }
    }
    if (oc == NULL) return;
    bmsg_t *bm = bmsg_new(M_NOTIFY, b->all, b->index, in->index, oc->origin, oc->seq);
    if (bm == NULL) return;
    bm->method = strdup(method);
    bm->payload = json_deep_copy(params);
    post(b->all, oc->origin, bm); /* a notification lost to a full mailbox is only that */
}

/* The backend asks something of a client (sampling, elicitation, roots): the client of the
 * call it is serving is asked in its name, and the answer travels back. */
static void on_client_request(nx_mcp_client_t *cl, const json_t *id, const char *method,
                              const json_t *params, void *arg) {
    instance_t *in = arg;
    backend_t *b = backend_of(in);
    owner_call_t *oc = attributed_call(in);
    if (oc == NULL && strcmp(method, "roots/list") == 0) {
        /* Asked outside any call (servers often ask right after initialize): nexus itself
         * offers no roots. */
        nx_mcp_client_respond(cl, id, json_pack("{s:[]}", "roots"), NULL);
        return;
    }
    bmsg_t *bm = oc ? bmsg_new(M_REQUEST, b->all, b->index, in->index, oc->origin, oc->seq) : NULL;
    if (bm == NULL) {
        nx_mcp_client_respond(
            cl, id, NULL,
            json_pack("{s:i, s:s}", "code", -32603, "message",
                      oc ? "out of memory" : "nexus has no client to ask: no call is in flight"));
        return;
    }
    bm->method = strdup(method);
    bm->payload = params ? json_deep_copy(params) : json_object();
    bm->request_id = json_deep_copy(id);
    bm->generation = in->generation;
    if (!post(b->all, oc->origin, bm))
        nx_mcp_client_respond(cl, id, NULL,
                              json_pack("{s:i, s:s}", "code", -32603, "message",
                                        "nexus is overloaded: the client could not be asked"));
}

/* The handshake failed (the server refused initialize, or spoke no version we know): the link
 * ends and is tried again after backoff. */
static void on_client_failed(nx_mcp_client_t *cl, void *arg) {
    instance_t *in = arg;
    if (!in->client_live) return; /* the link went down first: that is what failed it */
    nx_log_warn("backend %s: %s", in->name, cl->error);
    stop_link(in);
}

const nx_resolved_t *nx_backend_instance_address(const nx_backend_instance_t *in) {
    const backend_t *b = in->backend;
    return nx_resolver_get(b->all->resolver, b->url_slots[in->replica]);
}

void nx_backend_link_up(nx_backend_instance_t *in) {
    in->generation++;
    nx_mcp_client_ops_t cops = {.send = client_send,
                                .on_ready = on_client_ready,
                                .on_failed = on_client_failed,
                                .on_notification = on_client_notification,
                                .on_request = on_client_request};
    /* nexus asks its own clients in the backend's name, so it offers what they may offer. */
    json_t *caps = json_pack("{s:{}, s:{s:{}, s:{}}, s:{s:b}}", "sampling", "elicitation", "form",
                             "url", "roots", "listChanged", 0);
    nx_mcp_client_init(&in->client, &cops, in, "nexus", caps);
    in->client_live = true;
    nx_mcp_client_start(&in->client);
}

void nx_backend_link_serving(nx_backend_instance_t *in) {
    in->generation++;
    atomic_store(&in->state, B_READY);
    in->ready_at = nx_shard_now_ms(in->es->shard);
    schedule_check(in);
}

void nx_backend_link_receive(nx_backend_instance_t *in, const char *text, size_t len,
                             json_int_t related) {
    if (!in->client_live) return;
    in->related = related;
    nx_mcp_client_receive(&in->client, text, len);
    in->related = 0;
}

void nx_backend_link_down(nx_backend_instance_t *in, const char *why, bool restart_now) {
    backend_t *b = backend_of(in);
    atomic_store(&in->pid, 0);
    if (in->client_live) {
        in->client_live = false;
        nx_mcp_client_dispose(&in->client); /* waiting calls fail: their answers go back */
    }
    owner_fail_queued(in, why);
    if (in->check_request == PROBE_IN_FLIGHT) nx_backend_link_probed(in, false);
    for (int k = 0; k < KINDS; k++) {
        if (b->pages_in[k] == in) {
            end_refresh(b, k);
            b->refresh_again[k] = false;
        }
    }
    if (in->ready_at != 0 && nx_shard_now_ms(in->es->shard) - in->ready_at > READY_STABLE_MS)
        in->failures = 0;
    in->ready_at = 0;
    if (!in->draining) {
        atomic_fetch_add(&b->restarts, 1);
        nx_log_warn("backend %s: %s", b->name, why);
    }
    schedule_restart(in, restart_now);
}

/* ---- the stdio link: one supervised process ---- */

static void on_child_line(nx_child_t *c, const char *line, size_t len, void *arg) {
    nx_backend_link_receive(arg, line, len, 0);
}

static void on_child_stderr(nx_child_t *c, const char *p, size_t n, void *arg) {
    instance_t *in = arg;
    /* What a stdio server says on stderr is its log: keep it, trimmed, under its name. */
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
        n--;
    if (n > 0) nx_log_info("backend %s: %.*s", in->name, (int)(n > 1000 ? 1000 : n), p);
}

static void on_child_exit(nx_child_t *c, int status, void *arg) {
    instance_t *in = arg;
    in->link = NULL;
    nx_child_free(c);
    char why[64];
    snprintf(why, sizeof(why), "process exited (status %d)", status);
    nx_backend_link_down(in, why, false);
}

static int stdio_start(instance_t *in) {
    const nx_backend_spec_t *sp = in->spec;
    nx_child_opts_t o = {.argv = sp->argv, .env = sp->env, .cwd = sp->cwd};
    nx_child_ops_t ops = {
        .on_line = on_child_line, .on_stderr = on_child_stderr, .on_exit = on_child_exit};
    nx_child_t *child = NULL;
    int rc = nx_child_spawn(in->es->shard, &o, &ops, in, &child);
    if (rc < 0) return rc;
    in->link = child;
    atomic_store(&in->pid, (int)child->pid);
    nx_backend_link_up(in);
    return 0;
}

static int stdio_send(instance_t *in, const char *text, size_t len, json_int_t request_id) {
    nx_child_t *child = in->link;
    if (child == NULL) return -EPIPE;
    if (nx_child_write(child, text, len) < 0 || nx_child_write(child, "\n", 1) < 0) return -EPIPE;
    return 0;
}

static void stdio_drain(instance_t *in) {
    if (in->link != NULL) nx_child_stop(in->link, in->spec->term_after_ms, in->spec->kill_after_ms);
}

static void stdio_destroy(instance_t *in) {
    if (in->link != NULL) nx_child_free(in->link);
    in->link = NULL;
}

const nx_backend_link_ops_t nx_backend_stdio_link = {
    .name = "stdio",
    .start = stdio_start,
    .send = stdio_send,
    .drain = stdio_drain,
    .destroy = stdio_destroy,
};

/* ---- calls: owner side ---- */

static void answer_origin(owner_call_t *oc, const json_t *result, const json_t *error) {
    backend_t *b = backend_of(oc->in);
    bmsg_t *bm = bmsg_new(M_ANSWER, b->all, b->index, oc->in->index, oc->origin, oc->seq);
    if (bm != NULL) {
        /* Shared, not copied: nothing on this side reads the answer once it is posted (the
         * client drops its message, whose release of it is an atomic decrement), so the origin
         * owns it from here, to pass on or change as it likes. */
        bm->payload = json_incref((json_t *)(result ? result : error));
        bm->is_error = result == NULL;
        post(b->all, oc->origin, bm);
    }
}

/* Ends <in>'s link once (shutdown, a failed handshake). */
static void stop_link(instance_t *in) {
    if (in->link == NULL || in->link_stopping) return;
    in->link_stopping = true;
    backend_of(in)->link->drain(in);
}

static void owner_call_free(owner_call_t *oc) {
    instance_t *in = oc->in;
    free(oc->method);
    json_decref(oc->params);
    nx_timer_stop(&oc->timeout);
    nx_list_remove(&oc->link);
    atomic_fetch_sub(&in->outstanding, 1);
    free(oc);
    /* Shutting down: the link goes once its last call is answered. */
    if (in->draining && nx_list_empty(&in->calls)) stop_link(in);
}

static void on_backend_answer(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                              void *arg) {
    owner_call_t *oc = arg;
    instance_t *in = oc->in;
    if (error != NULL && (!in->client_live || cl->state == NX_MCP_CLIENT_FAILED)) {
        /* Not the backend's answer: its link went away under the call. */
        json_t *e =
            retryable_error(backend_of(in), json_string_value(json_object_get(error, "message")));
        answer_origin(oc, NULL, e);
        json_decref(e);
    } else {
        answer_origin(oc, result, error);
    }
    owner_call_free(oc);
}

static void on_call_timeout(nx_timer_t *t) {
    owner_call_t *oc = nx_container_of(t, owner_call_t, timeout);
    backend_t *b = backend_of(oc->in);
    if (oc->request_id != 0) {
        nx_mcp_client_abandon(&oc->in->client, oc->request_id, "timed out");
        if (b->link->forget != NULL) b->link->forget(oc->in, oc->request_id);
    }
    char m[200];
    snprintf(m, sizeof(m), "backend %s did not answer within %u ms", b->name, b->call_timeout_ms);
    json_t *e = retryable_error(b, m);
    answer_origin(oc, NULL, e);
    json_decref(e);
    owner_call_free(oc);
}

static void on_backend_answer(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                              void *arg);

/* Sends <oc>'s request (its params stolen) now that the instance is ready. */
static void owner_send(owner_call_t *oc, const char *method, json_t *params) {
    instance_t *in = oc->in;
    oc->request_id = nx_mcp_client_request(&in->client, method, params, on_backend_answer, oc);
    /* 0: answered with the error and freed already. */
}

/* Calls queued while the instance was starting go now that it is ready. */
static void owner_send_queued(instance_t *in) {
    nx_list_t *pos, *next;
    for (pos = in->calls.next; pos != &in->calls; pos = next) {
        next = pos->next;
        owner_call_t *oc = nx_container_of(pos, owner_call_t, link);
        if (oc->method == NULL) continue;
        char *method = oc->method;
        json_t *params = oc->params;
        oc->method = NULL;
        oc->params = NULL;
        owner_send(oc, method, params);
        free(method);
    }
}

/* Answers the calls still queued (retryable: the handshake did not happen). */
static void owner_fail_queued(instance_t *in, const char *why) {
    nx_list_t *pos, *next;
    for (pos = in->calls.next; pos != &in->calls; pos = next) {
        next = pos->next;
        owner_call_t *oc = nx_container_of(pos, owner_call_t, link);
        if (oc->method == NULL) continue;
        json_t *e = retryable_error(backend_of(in), why);
        answer_origin(oc, NULL, e);
        json_decref(e);
        owner_call_free(oc);
    }
}

static void owner_start_call(instance_t *in, bmsg_t *bm) {
    backend_t *b = backend_of(in);
    /* A link being set up (a new process, a new session) is worth waiting for within the
     * per-try timeout; one that is down waiting for its restart is not. */
    bool starting = atomic_load(&in->state) == B_STARTING && in->client_live && !in->draining;
    if (in->draining) {
        bmsg_t *ans = bmsg_new(M_ANSWER, b->all, b->index, in->index, bm->origin, bm->seq);
        if (ans != NULL) {
            ans->payload = json_pack("{s:i, s:s, s:{s:s}}", "code", -32603, "message",
                                     "nexus is shutting down", "data", "backend", b->name);
            ans->is_error = true;
            post(b->all, bm->origin, ans);
        }
        return;
    }
    if (!instance_ready(in) && !starting) {
        char m[200];
        snprintf(m, sizeof(m), "backend %s is %s; retry later", b->name,
                 state_names[atomic_load(&in->state)]);
        bmsg_t *ans = bmsg_new(M_ANSWER, b->all, b->index, in->index, bm->origin, bm->seq);
        if (ans != NULL) {
            ans->payload = retryable_error(b, m);
            ans->is_error = true;
            post(b->all, bm->origin, ans);
        }
        return;
    }
    owner_call_t *oc = calloc(1, sizeof(*oc));
    if (oc == NULL) return;
    oc->in = in;
    oc->origin = bm->origin;
    oc->seq = bm->seq;
    nx_timer_init(&oc->timeout, on_call_timeout);
    nx_list_insert_tail(&in->calls, &oc->link);
    atomic_fetch_add(&in->outstanding, 1);
    atomic_fetch_add(&b->calls_total, 1);
    /* The origin's params are never changed once sent (retries send them again), so they are
     * shared read-only; only a call that wants progress needs a copy to carry our token. */
    json_t *params;
    if (bm->flag) {
        oc->progress_token = ++in->next_progress_token;
        params = json_copy(bm->payload);
        json_object_set_new(params, "_meta",
                            json_pack("{s:I}", "progressToken", oc->progress_token));
    } else {
        params = json_incref(bm->payload);
    }
    if (b->call_timeout_ms > 0)
        nx_shard_timer_start(in->es->shard, &oc->timeout, b->call_timeout_ms);
    if (starting) {
        oc->method = strdup(bm->method);
        oc->params = params;
        return;
    }
    owner_send(oc, bm->method, params);
}

static void owner_cancel_call(instance_t *in, uint32_t origin, uint64_t seq) {
    nx_list_t *pos;
    nx_list_foreach(pos, &in->calls) {
        owner_call_t *oc = nx_container_of(pos, owner_call_t, link);
        if (oc->origin == origin && oc->seq == seq) {
            if (oc->request_id != 0) {
                nx_mcp_client_abandon(&in->client, oc->request_id, "cancelled by the client");
                if (backend_of(in)->link->forget != NULL)
                    backend_of(in)->link->forget(in, oc->request_id);
            }
            owner_call_free(oc);
            return;
        }
    }
}

/* The client's answer to the backend's request, if the link that asked still runs. */
static void owner_respond(instance_t *in, bmsg_t *bm) {
    if (!in->client_live || bm->generation != in->generation) return;
    json_t *payload = json_incref(bm->payload);
    nx_mcp_client_respond(&in->client, bm->request_id, bm->is_error ? NULL : payload,
                          bm->is_error ? payload : NULL);
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

static nx_health_t *health_of(backend_t *b, uint32_t origin, uint32_t instance) {
    return &b->health[(size_t)origin * b->instance_count + instance];
}

/* The instance for the next try from <origin>: among the ready ones that are not ejected —
 * those of the origin's own shard first (no mailbox hop) — by round robin or least
 * outstanding calls; when none is ready, any (the owner answers that it is not, and the try is
 * retried with backoff). A rest backend's pools belong to their shard: only the origin's own
 * instances can carry its requests. */
uint32_t nx__backend_pick(backend_t *b, uint32_t origin) {
    uint64_t now = mono_ms();
    uint32_t n = b->instance_count;
    uint32_t start = b->next_pick[origin]++;
    /* Sessions exist on every shard for every replica (http, sse, ws, rest): the origin's own,
     * instances origin * urls ... + urls - 1, cover every replica, so preferring them costs no
     * choice. Processes (stdio) are spread over the shards: all of them are candidates. */
    bool stdio = b->spec.transport == NX_BACKEND_STDIO;
    bool own_only = b->spec.transport == NX_BACKEND_REST;
    uint32_t urls = stdio ? 1 : (uint32_t)b->spec.url_count;
    for (int pass = stdio ? 1 : 0; pass < (own_only ? 1 : 2); pass++) {
        uint32_t best = UINT32_MAX, best_load = UINT32_MAX;
        uint32_t m = pass == 0 ? urls : n;
        for (uint32_t k = 0; k < m; k++) {
            uint32_t i = pass == 0 ? origin * urls + (start + k) % urls : (start + k) % n;
            instance_t *in = &b->instances[i];
            if (pass == 1 && !stdio && in->owner == origin) continue; /* seen in pass 0 */
            if (atomic_load(&in->state) != B_READY || atomic_load(&in->check_unhealthy)) continue;
            if (!nx_health_available(health_of(b, origin, i), now)) continue;
            if (!b->spec.least_outstanding) return i;
            uint32_t load = atomic_load(&in->outstanding);
            if (load < best_load) best = i, best_load = load;
        }
        if (best != UINT32_MAX) return best;
    }
    return own_only ? origin * urls + start % urls : start % n;
}

void nx__backend_record(backend_t *b, uint32_t origin, uint32_t instance,
                        const nx_breaker_permit_t *permit, bool *permitted, int outcome) {
    if (*permitted && b->breaker_enabled && outcome >= 0)
        nx_breaker_record(&b->breaker, permit, mono_ms(), outcome == 0);
    *permitted = false;
    if (outcome > 0) atomic_fetch_add(&b->failures_total, 1);
    if (outcome >= 0 &&
        nx_health_call_result(health_of(b, origin, instance), mono_ms(), outcome == 0)) {
        atomic_fetch_add(&b->ejections_total, 1);
        nx_log_warn("backend %s: instance %u ejected after consecutive failures", b->name,
                    instance);
    }
}

/* Reports the current try's outcome (0 success, 1 failure, -1 none: the client ended it) to
 * the breaker and to the instance's outlier detection, once. */
static void record_try(proxy_t *p, int outcome) {
    nx__backend_record(p->b, p->origin, p->instance, &p->permit, &p->permitted, outcome);
}

static void proxy_release(proxy_t *p, int outcome) {
    backend_t *b = p->b;
    /* Requests relayed to the client die with its call (the server forgets them unanswered). */
    while (!nx_list_empty(&p->relays)) {
        relay_t *r = nx_container_of(p->relays.next, relay_t, link);
        nx_list_remove(&r->link);
        json_decref(r->request_id);
        free(r);
    }
    record_try(p, outcome);
    nx_timer_stop(&p->retry_timer);
    nx_timer_stop(&p->deadline_timer);
    if (p->retry_held) nx_retry_budget_release(&b->budget);
    p->retry_held = false;
    nx_retry_budget_request_finished(&b->budget);
    nx_bulkhead_leave(&b->bulkhead);
    free(p->method);
    json_decref(p->params);
    p->method = NULL;
    p->params = NULL;
}

static void proxy_free(proxy_t *p) {
    nx_list_remove(&p->link);
    free(p);
}

static void on_proxy_cancelled(nx_mcp_call_t *call, void *arg) {
    proxy_t *p = arg;
    proxy_release(p, -1);
    bmsg_t *bm = bmsg_new(M_CANCEL, p->all, p->b->index, p->instance, p->origin, p->seq);
    if (bm != NULL) post(p->all, p->b->instances[p->instance].owner, bm);
    proxy_free(p);
}

/* Sends the current try of <p> to an instance's owner. */
static bool send_try(proxy_t *p) {
    p->instance = nx__backend_pick(p->b, p->origin);
    bmsg_t *bm = bmsg_new(M_CALL, p->all, p->b->index, p->instance, p->origin, p->seq);
    if (bm == NULL || (bm->method = strdup(p->method)) == NULL) {
        if (bm) dispose_bmsg(&bm->msg);
        return false;
    }
    bm->payload = json_incref(p->params);
    bm->flag = p->want_progress;
    p->attempts++;
    return post(p->all, p->b->instances[p->instance].owner, bm);
}

static __thread nx_backoff_rng_t retry_rng;
static __thread bool retry_rng_seeded;

uint64_t nx__backend_retry_delay(const nx_backoff_config_t *cfg, uint32_t attempts) {
    if (!retry_rng_seeded) {
        nx_backoff_rng_seed(&retry_rng, nx_loop_clock_ns() ^ ((uint64_t)current_shard() << 32));
        retry_rng_seeded = true;
    }
    return nx_backoff_delay_ms(cfg, attempts, nx_backoff_rng_next(&retry_rng));
}

bool nx__backend_retry_override(const json_t *v, const nx_backoff_config_t *dflt,
                                nx_backoff_config_t *out) {
    json_t *attempts = json_object_get(v, "attempts");
    json_t *base = json_object_get(v, "base"), *cap = json_object_get(v, "cap");
    if (!json_is_integer(attempts) || json_integer_value(attempts) < 1 ||
        json_integer_value(attempts) > 10)
        return false;
    if ((base != NULL && !json_is_integer(base)) || (cap != NULL && !json_is_integer(cap)))
        return false;
    json_int_t b = base ? json_integer_value(base) : (json_int_t)dflt->base_ms;
    json_int_t c = cap ? json_integer_value(cap) : (json_int_t)dflt->cap_ms;
    /* An hour bounds any sane wait; more is a mistake, not a policy. */
    if (b < 0 || c < 0 || b > c || c > 3600000) return false;
    *out = (nx_backoff_config_t){.base_ms = (uint64_t)b,
                                 .cap_ms = (uint64_t)c,
                                 .max_attempts = (uint32_t)json_integer_value(attempts)};
    return true;
}

static void final_error(proxy_t *p, const char *message, json_t *data) {
    nx_mcp_call_t *call = p->call;
    nx_mcp_call_note_attempts(call, p->attempts);
    proxy_release(p, -1);
    proxy_free(p);
    nx_mcp_call_error(call, -32603, message, data);
}

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
    /* While nexus shuts down the owner shard may stop at any moment: a retry posted to it then
     * would wait for the grace period to end. The failure is final. */
    if (b->all->e->draining) return false;
    if (p->retry_held) nx_retry_budget_release(&b->budget); /* that retry is over */
    p->retry_held = false;
    uint64_t delay = nx__backend_retry_delay(&p->backoff, p->attempts);
    uint64_t now = mono_ms();
    uint64_t remaining = p->deadline_ms == 0    ? UINT64_MAX
                         : p->deadline_ms > now ? p->deadline_ms - now
                                                : 0;
    if (!nx_backoff_should_retry(&p->backoff, p->attempts, delay, remaining)) return false;
    if (!nx_retry_budget_try_acquire(&b->budget)) return false;
    record_try(p, 1); /* this try failed; the next one asks the breaker again */
    p->retry_held = true;
    atomic_fetch_add(&b->retries_total, 1);
    nx_shard_timer_start(nx_engine_current_shard()->shard, &p->retry_timer, delay);
    return true;
}

/* The overall deadline passed: the try under way is cancelled at its owner and the client gets
 * an error naming the backend. A slow try counts against the backend. */
static void on_deadline(nx_timer_t *t) {
    proxy_t *p = nx_container_of(t, proxy_t, deadline_timer);
    backend_t *b = p->b;
    nx_mcp_call_t *call = p->call;
    bool in_try = !nx_timer_active(&p->retry_timer);
    bmsg_t *bm = bmsg_new(M_CANCEL, p->all, b->index, p->instance, p->origin, p->seq);
    if (bm != NULL) post(p->all, b->instances[p->instance].owner, bm);
    uint64_t total = p->budget_ms;
    nx_mcp_call_note_attempts(call, p->attempts);
    proxy_release(p, in_try ? 1 : -1);
    proxy_free(p);
    char m[200];
    snprintf(m, sizeof(m), "backend %s did not answer within %llu ms (the call's deadline)",
             b->name, (unsigned long long)total);
    nx_mcp_call_error(call, -32603, m,
                      json_pack("{s:s, s:s}", "backend", b->name, "reason", "deadline"));
}

static void on_relay_answer(nx_mcp_call_t *call, const json_t *result, const json_t *error,
                            void *arg) {
    relay_t *r = arg;
    nx_list_remove(&r->link);
    bmsg_t *bm = bmsg_new(M_RESPONSE, r->all, r->backend, r->instance, r->origin, r->seq);
    if (bm != NULL) {
        bm->payload = json_deep_copy(result ? result : error);
        bm->is_error = result == NULL;
        bm->request_id = r->request_id;
        r->request_id = NULL;
        bm->generation = r->generation;
        post(r->all, r->all->items[r->backend].instances[r->instance].owner, bm);
    }
    json_decref(r->request_id);
    free(r);
}

static void relay_request(proxy_t *p, bmsg_t *bm) {
    relay_t *r = malloc(sizeof(*r));
    if (r == NULL) return;
    *r = (relay_t){{0},       p->all,         bm->backend, bm->instance,
                   p->origin, bm->generation, p->seq,      json_incref(bm->request_id)};
    nx_list_insert_tail(&p->relays, &r->link);
    nx_mcp_call_request(p->call, bm->method, json_incref(bm->payload), on_relay_answer, r);
}

static void atomic_min_u64(_Atomic uint64_t *v, uint64_t x) {
    uint64_t cur = atomic_load(v);
    while (x < cur && !atomic_compare_exchange_weak(v, &cur, x)) {
    }
}

static void atomic_max_u64(_Atomic uint64_t *v, uint64_t x) {
    uint64_t cur = atomic_load(v);
    while (x > cur && !atomic_compare_exchange_weak(v, &cur, x)) {
    }
}

void nx__backend_record_latency(backend_t *b, uint64_t started_ns, bool ok) {
    uint64_t us = (nx_loop_clock_ns() - started_ns) / 1000u;
    atomic_fetch_add(&b->answered, 1);
    if (ok) atomic_fetch_add(&b->succeeded, 1);
    atomic_fetch_add(&b->latency_sum_us, us);
    atomic_min_u64(&b->latency_min_us, us);
    atomic_max_u64(&b->latency_max_us, us);
}
static void origin_answer(nx_shard_t *s, proxy_t *p, bmsg_t *bm) {
    nx_mcp_call_t *call = p->call;
    /* A try the backend could not answer (it was down, restarting or too slow) goes again with
     * backoff while attempts, deadline and budget allow; its own errors never do. */
    if (bm->is_error &&
        json_is_true(json_object_get(json_object_get(bm->payload, "data"), "retryable")) &&
        try_retry(p))
        return;
    /* Errors of the backend count against it; a tool's isError result and errors that blame
     * the request (unknown method, bad params, no such resource) do not. */
    json_int_t code = json_integer_value(json_object_get(bm->payload, "code"));
    bool blames_request = code == -32600 || code == -32601 || code == -32602 || code == -32002;
    nx__backend_record_latency(p->b, p->started_ns, !bm->is_error || blames_request);
    nx_mcp_call_note_attempts(call, p->attempts);
    proxy_release(p, bm->is_error && !blames_request ? 1 : 0);
    proxy_free(p);
    if (bm->is_error) {
        json_t *e = bm->payload;
        const char *message = json_string_value(json_object_get(e, "message"));
        nx_mcp_call_error(call, (int)json_integer_value(json_object_get(e, "code")),
                          message ? message : "backend error",
                          json_incref(json_object_get(e, "data")));
    } else {
        nx_mcp_call_return(call, json_incref(bm->payload));
    }
    nx_engine_shard_maybe_stop(s->user);
}

static void reject_request(nx_backends_t *all, bmsg_t *bm) {
    /* The call ended meanwhile: the backend hears that nobody can answer. */
    bmsg_t *r = bmsg_new(M_RESPONSE, all, bm->backend, bm->instance, bm->origin, bm->seq);
    if (r == NULL) return;
    r->payload = json_pack("{s:i, s:s}", "code", -32603, "message", "the client's request is over");
    r->is_error = true;
    r->request_id = json_incref(bm->request_id);
    r->generation = bm->generation;
    post(all, all->items[bm->backend].instances[bm->instance].owner, r);
}

/* ---- connection tests: a ping through one instance, on demand ---- */

typedef struct test_run {
    instance_t *in;
    uint32_t origin, generation;
    uint64_t sent_ns;
    nx_backends_test_cb cb;
    void *arg;
    json_int_t request_id;
    nx_timer_t timeout;
} test_run_t;

static void test_reply(backend_t *b, uint32_t origin, nx_backends_test_cb cb, void *arg,
                       json_t *outcome) {
    bmsg_t *bm = bmsg_new(M_TESTED, b->all, b->index, 0, origin, 0);
    if (bm == NULL) {
        json_decref(outcome);
        return; /* the origin's caller waits for its client's timeout */
    }
    bm->payload = outcome;
    bm->test_cb = cb;
    bm->test_arg = arg;
    /* The origin waits for this one: a full mailbox is retried by nothing, so say so loudly. */
    if (!post(b->all, origin, bm)) nx_log_error("backend %s: a test outcome was lost", b->name);
}

static void on_test_answer(nx_mcp_client_t *cl, const json_t *result, const json_t *error,
                           void *arg) {
    test_run_t *t = arg;
    backend_t *b = backend_of(t->in);
    nx_timer_stop(&t->timeout);
    json_t *outcome =
        json_pack("{s:s, s:i, s:i, s:b}", "id", b->name, "instance", (int)t->in->index, "replica",
                  (int)t->in->replica, "ok", error == NULL);
    if (error == NULL)
        json_object_set_new(outcome, "latency_ms",
                            json_real((double)(nx_loop_clock_ns() - t->sent_ns) / 1e6));
    else
        json_object_set(outcome, "error", json_object_get(error, "message"));
    test_reply(b, t->origin, t->cb, t->arg, outcome);
    free(t);
}

static void on_test_timeout(nx_timer_t *tm) {
    test_run_t *t = nx_container_of(tm, test_run_t, timeout);
    backend_t *b = backend_of(t->in);
    nx_mcp_client_abandon(&t->in->client, t->request_id, NULL);
    char m[100];
    snprintf(m, sizeof(m), "no answer to ping within %u ms",
             t->in->spec->check_timeout_ms ? t->in->spec->check_timeout_ms : 2000);
    test_reply(b, t->origin, t->cb, t->arg,
               json_pack("{s:s, s:i, s:b, s:s}", "id", b->name, "instance", (int)t->in->index, "ok",
                         0, "error", m));
    free(t);
}

/* A rest backend's test: GET of its health path through the instance's pool. */
static void on_rest_test_done(void *arg, bool ok, uint16_t status, const char *why) {
    test_run_t *t = arg;
    backend_t *b = backend_of(t->in);
    json_t *outcome = json_pack("{s:s, s:i, s:i, s:b}", "id", b->name, "instance",
                                (int)t->in->index, "replica", (int)t->in->replica, "ok", ok);
    if (status != 0) json_object_set_new(outcome, "status", json_integer(status));
    if (ok) {
        json_object_set_new(outcome, "latency_ms",
                            json_real((double)(nx_loop_clock_ns() - t->sent_ns) / 1e6));
    } else {
        char m[300];
        if (status != 0)
            snprintf(m, sizeof(m), "GET %s answered HTTP %u", b->spec.health_path, status);
        else
            snprintf(m, sizeof(m), "GET %s: %s", b->spec.health_path, why ? why : "failed");
        json_object_set_new(outcome, "error", json_string(m));
    }
    test_reply(b, t->origin, t->cb, t->arg, outcome);
    free(t);
}

static void owner_test(instance_t *in, bmsg_t *bm) {
    backend_t *b = backend_of(in);
    if (instance_ready(in) && b->spec.transport == NX_BACKEND_REST) {
        test_run_t *t = calloc(1, sizeof(*t));
        if (t == NULL) return;
        *t = (test_run_t){.in = in,
                          .origin = bm->origin,
                          .sent_ns = nx_loop_clock_ns(),
                          .cb = bm->test_cb,
                          .arg = bm->test_arg};
        const nx_backend_spec_t *sp = in->spec;
        if (nx__backend_rest_check(in, sp->check_timeout_ms ? sp->check_timeout_ms : 2000,
                                   on_rest_test_done, t) < 0)
            on_rest_test_done(t, false, 0, "cannot send the request");
        return;
    }
    if (!instance_ready(in)) {
        char m[200];
        snprintf(m, sizeof(m), "not connected (%s)", state_names[atomic_load(&in->state)]);
        test_reply(b, bm->origin, bm->test_cb, bm->test_arg,
                   json_pack("{s:s, s:i, s:b, s:s}", "id", b->name, "instance", (int)in->index,
                             "ok", 0, "error", m));
        return;
    }
    test_run_t *t = calloc(1, sizeof(*t));
    if (t == NULL) return;
    *t = (test_run_t){.in = in,
                      .origin = bm->origin,
                      .generation = in->generation,
                      .sent_ns = nx_loop_clock_ns(),
                      .cb = bm->test_cb,
                      .arg = bm->test_arg};
    nx_timer_init(&t->timeout, on_test_timeout);
    t->request_id = nx_mcp_client_request(&in->client, "ping", NULL, on_test_answer, t);
    if (t->request_id == 0) return; /* answered (failed) and freed already */
    const nx_backend_spec_t *sp = in->spec;
    nx_shard_timer_start(in->es->shard, &t->timeout,
                         sp->check_timeout_ms ? sp->check_timeout_ms : 2000);
}

static void on_bmsg(nx_shard_t *s, nx_msg_t *m) {
    bmsg_t *bm = (bmsg_t *)m;
    nx_backends_t *all = bm->all;
    backend_t *b = &all->items[bm->backend];
    instance_t *in = &b->instances[bm->instance];
    switch (bm->kind) {
    case M_CALL:
        owner_start_call(in, bm);
        break;
    case M_CANCEL:
        owner_cancel_call(in, bm->origin, bm->seq);
        break;
    case M_RESPONSE:
        owner_respond(in, bm);
        break;
    case M_SUBSCRIBE:
        subscription_changed(b, bm->method, bm->flag);
        break;
    case M_BROADCAST:
        if (strcmp(bm->method, "notifications/resources/updated") == 0)
            nx_mcp_resource_updated(json_string_value(json_object_get(bm->payload, "uri")));
        else
            nx_mcp_broadcast(bm->method, NULL);
        break;
    case M_TEST:
        owner_test(in, bm);
        break;
    case M_TESTED:
        bm->test_cb(bm->payload, bm->test_arg);
        break;
    case M_REQUEST:
    case M_NOTIFY:
    case M_ANSWER: {
        proxy_t *p = find_proxy(all, bm->origin, bm->seq);
        if (p == NULL) { /* the call was cancelled meanwhile */
            if (bm->kind == M_REQUEST) reject_request(all, bm);
            break;
        }
        if (bm->kind == M_REQUEST)
            relay_request(p, bm);
        else if (bm->kind == M_NOTIFY)
            nx_mcp_call_forward(p->call, bm->method, bm->payload);
        else
            origin_answer(s, p, bm);
        break;
    }
    }
    dispose_bmsg(m);
}

/* ---- the provider ---- */

static void provider_list(void *arg, nx_mcp_catalog_kind_t kind, json_t *items) {
    nx_backends_t *all = arg;
    uint32_t k = current_shard();
    for (size_t i = 0; i < all->count; i++) {
        json_t *snap = catalog_acquire(&all->items[i], k);
        if (snap == NULL) continue; /* not ready yet: nothing to show */
        json_array_extend(items, json_object_get(snap, kind_keys[kind]));
        json_decref(snap);
    }
}

/* Does catalog <kind> of snapshot <snap> have an entry whose <key> is <value>? */
static bool snapshot_has(const json_t *snap, int kind, const char *key, const char *value) {
    if (strcmp(key, "name") == 0 && name_index_keys[kind] != NULL)
        return json_object_get(json_object_get(snap, name_index_keys[kind]), value) != NULL;
    size_t j;
    json_t *t;
    json_array_foreach(json_object_get(snap, kind_keys[kind]), j, t) {
        const char *v = json_string_value(json_object_get(t, key));
        if (v != NULL && strcmp(v, value) == 0) return true;
    }
    return false;
}

/* Does a template of <snap> match <uri>? */
static bool snapshot_template_matches(const json_t *snap, const char *uri) {
    size_t j;
    json_t *t;
    json_array_foreach(json_object_get(snap, "resourceTemplates"), j, t) {
        const char *tmpl = json_string_value(json_object_get(t, "uriTemplate"));
        if (tmpl != NULL && nx_mcp_uri_template_match(tmpl, uri)) return true;
    }
    return false;
}

/* The backend serving tool or prompt <name> (catalog <kind>) and its own name for it. */
static backend_t *route_name(nx_backends_t *all, int kind, const char *name, const char **own) {
    size_t sl = strlen(all->sep);
    uint32_t k = current_shard();
    for (size_t i = 0; i < all->count; i++) {
        backend_t *b = &all->items[i];
        size_t nl = strlen(b->name);
        const char *local = name;
        if (b->prefix) {
            if (strncmp(name, b->name, nl) != 0 || strncmp(name + nl, all->sep, sl) != 0) continue;
            local = name + nl + sl;
        }
        json_t *snap = catalog_acquire(b, k);
        bool found = snapshot_has(snap, kind, "name", name);
        json_decref(snap);
        if (found) {
            *own = local;
            return b;
        }
    }
    return NULL;
}

/* The backend serving resource <uri>: one that lists it, else one with a matching template
 * (URIs are not renamed: they name things outside nexus). */
static backend_t *route_uri(nx_backends_t *all, const char *uri, bool templates_only) {
    uint32_t k = current_shard();
    for (int pass = templates_only ? 1 : 0; pass < 2; pass++) {
        for (size_t i = 0; i < all->count; i++) {
            json_t *snap = catalog_acquire(&all->items[i], k);
            bool found = pass == 0 ? snapshot_has(snap, 1, "uri", uri)
                                   : snapshot_has(snap, 2, "uriTemplate", uri) ||
                                         snapshot_template_matches(snap, uri);
            json_decref(snap);
            if (found) return &all->items[i];
        }
    }
    return NULL;
}

/* Routes request <method> on <target> and writes the params the backend must get (its own
 * names, no _meta of ours) to <*params>; NULL when no backend serves it. */
static backend_t *route(nx_backends_t *all, const char *method, const char *target,
                        const json_t *front, json_t **params) {
    const char *own = target;
    backend_t *b = NULL;
    /* The top level only: the members (the arguments above all, often the bulk of a call) are
     * shared with the client's message, read-only on both sides (jansson's reference counts
     * are atomic, so the owner shard may hold them); what is renamed here is replaced, never
     * changed in place. A deep copy of every call was 4% of the CPU of a fan-out. */
    json_t *out = json_copy((json_t *)front);
    json_object_del(out, "_meta");
    if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0) {
        b = route_name(all, method[0] == 't' ? 0 : 3, target, &own);
        if (b != NULL) json_object_set_new(out, "name", json_string(own));
    } else if (strcmp(method, "resources/read") == 0) {
        b = route_uri(all, target, false);
    } else if (strcmp(method, "completion/complete") == 0) {
        json_t *ref = json_deep_copy(json_object_get(out, "ref")); /* renamed in place below */
        json_object_set_new(out, "ref", ref);
        if (json_object_get(ref, "name") != NULL) {
            b = route_name(all, 3, target, &own);
            if (b != NULL) json_object_set_new(ref, "name", json_string(own));
        } else {
            b = route_uri(all, target, true);
        }
    }
    if (b == NULL) {
        json_decref(out);
        return NULL;
    }
    *params = out;
    return b;
}

static bool provider_call(void *arg, nx_mcp_call_t *call, const char *method, const char *target) {
    nx_backends_t *all = arg;
    json_t *params = NULL;
    backend_t *b = route(all, method, target, nx_mcp_call_params(call), &params);
    if (b == NULL) return false;
    uint32_t origin = current_shard();
    /* Fail fast, naming the backend, when it is overloaded or its breaker is open. */
    if (!nx_bulkhead_try_enter(&b->bulkhead)) {
        json_decref(params);
        char m[200];
        snprintf(m, sizeof(m), "backend %s is at its limit of %u calls in flight; retry later",
                 b->name, b->max_concurrent);
        nx_mcp_call_error(call, -32603, m,
                          json_pack("{s:s, s:s, s:i}", "backend", b->name, "reason", "bulkhead",
                                    "retryAfterMs", 100));
        return true;
    }
    nx_breaker_permit_t permit = {0};
    uint64_t now = mono_ms();
    if (b->breaker_enabled && !nx_breaker_allow(&b->breaker, now, &permit)) {
        json_decref(params);
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
    if (p == NULL || (p->method = strdup(method)) == NULL) {
        free(p);
        json_decref(params);
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
    p->params = params;
    p->want_progress = json_object_get(json_object_get(nx_mcp_call_params(call), "_meta"),
                                       "progressToken") != NULL;
    p->deadline_ms = b->deadline_ms ? now + b->deadline_ms : 0;
    /* The client may want its answer sooner than the backend's deadline, never later. */
    json_t *client_timeout = json_object_get(json_object_get(nx_mcp_call_params(call), "_meta"),
                                             NX_BACKENDS_META_TIMEOUT);
    if (json_is_integer(client_timeout) && json_integer_value(client_timeout) > 0) {
        uint64_t mine = now + (uint64_t)json_integer_value(client_timeout);
        if (p->deadline_ms == 0 || mine < p->deadline_ms) p->deadline_ms = mine;
    }
    /* A caller (a workflow step with retry:) may bring its own retry policy for this call. */
    p->backoff = b->backoff;
    nx__backend_retry_override(
        json_object_get(json_object_get(nx_mcp_call_params(call), "_meta"), NX_BACKENDS_META_RETRY),
        &b->backoff, &p->backoff);
    p->started_ns = nx_loop_clock_ns();
    p->budget_ms = p->deadline_ms ? p->deadline_ms - now : 0;
    nx_timer_init(&p->retry_timer, on_retry_timer);
    nx_timer_init(&p->deadline_timer, on_deadline);
    if (p->deadline_ms != 0)
        nx_shard_timer_start(nx_engine_current_shard()->shard, &p->deadline_timer,
                             p->deadline_ms - now);
    nx_list_init(&p->relays);
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

static void provider_subscribe(void *arg, const char *uri, bool on) {
    nx_backends_t *all = arg;
    backend_t *b = route_uri(all, uri, false);
    if (b == NULL) return; /* nobody serves it (yet): updates will not come */
    bmsg_t *bm = bmsg_new(M_SUBSCRIBE, all, b->index, 0, current_shard(), 0);
    if (bm == NULL || (bm->method = strdup(uri)) == NULL) {
        if (bm != NULL) dispose_bmsg(&bm->msg);
        return;
    }
    bm->flag = on;
    post(all, b->catalog_shard, bm);
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

/* Splits the backend's "Name: value" header lines once, for every link of every instance; the
 * fields point into the lines. */
static int split_headers(backend_t *b) {
    size_t count = 0;
    while (b->headers != NULL && b->headers[count] != NULL)
        count++;
    b->header_fields = calloc(count + 1, sizeof(*b->header_fields));
    if (b->header_fields == NULL) return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        const char *line = b->headers[i], *colon = strchr(line, ':');
        if (colon == NULL) continue; /* the configuration checked the form */
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        b->header_fields[n++] = (nx_http_header_t){{line, (size_t)(colon - line)}, {v, strlen(v)}};
    }
    b->spec.header_fields = b->header_fields;
    b->spec.header_field_count = n;
    return 0;
}

/* Copies <sp> into <b> (strings and lists owned by <b>); NX_ECONFIG with <err> when wrong. */
static int backend_init(nx_backends_t *all, backend_t *b, uint32_t index,
                        const nx_backend_spec_t *sp, char *err, size_t errlen) {
    uint32_t shards = all->e->shard_count;
    b->all = all;
    b->index = index;
    b->spec = *sp;
    b->name = strdup(sp->name);
    b->cwd = sp->cwd ? strdup(sp->cwd) : NULL;
    b->argv = copy_strv(sp->argv);
    b->env = copy_strv(sp->env);
    b->headers = copy_strv(sp->headers);
    b->spec.name = b->name;
    b->spec.cwd = b->cwd;
    b->spec.argv = (const char *const *)b->argv;
    b->spec.env = (const char *const *)b->env;
    b->spec.headers = (const char *const *)b->headers;
    if (split_headers(b) < 0) return -ENOMEM;
    b->health_path = sp->health_path ? strdup(sp->health_path) : NULL;
    b->spec.health_path = b->health_path;
    if (sp->url_count > 0) {
        b->urls = calloc(sp->url_count, sizeof(*b->urls));
        for (size_t u = 0; b->urls != NULL && u < sp->url_count; u++)
            b->urls[u] = (nx_backend_url_t){strdup(sp->urls[u].host), sp->urls[u].port,
                                            strdup(sp->urls[u].path)};
    }
    b->spec.urls = b->urls;
    if (b->spec.restart_base_ms == 0) b->spec.restart_base_ms = 1000;
    if (b->spec.restart_cap_ms == 0) b->spec.restart_cap_ms = 30000;
    if (b->spec.term_after_ms == 0) b->spec.term_after_ms = 2000;
    if (b->spec.kill_after_ms == 0) b->spec.kill_after_ms = 2000;
    b->prefix = sp->prefix;
    b->call_timeout_ms = sp->call_timeout_ms;
    b->deadline_ms = sp->deadline_ms;
    b->max_concurrent = sp->max_concurrent;
    b->backoff = sp->retry;
    if (b->backoff.max_attempts == 0) nx_backoff_config_default(&b->backoff);
    nx_retry_budget_init(&b->budget, &sp->retry_budget);
    nx_bulkhead_init(&b->bulkhead, sp->max_concurrent);
    b->retired = json_array();
    b->subscriptions = json_object();
    nx_timer_init(&b->retire_timer, on_retire);
    atomic_store(&b->latency_min_us, UINT64_MAX);
    b->breaker_enabled = sp->breaker_enabled;
    if (b->name == NULL || b->argv == NULL || b->env == NULL || b->headers == NULL ||
        (sp->url_count > 0 && b->urls == NULL))
        return -ENOMEM;
    if (b->breaker_enabled && nx_breaker_init(&b->breaker, &sp->breaker) < 0) {
        snprintf(err, errlen, "backend %s: invalid breaker settings", sp->name);
        return NX_ECONFIG;
    }
    if (sp->transport == NX_BACKEND_STDIO) {
        b->link = &nx_backend_stdio_link;
        if (b->argv[0] == NULL) {
            snprintf(err, errlen, "backend %s has no command", sp->name);
            return NX_ECONFIG;
        }
        b->instance_count = sp->instances ? sp->instances : 1;
    } else {
        b->link = sp->transport == NX_BACKEND_WS     ? &nx_backend_ws_link
                  : sp->transport == NX_BACKEND_REST ? &nx_backend_rest_link
                                                     : &nx_backend_http_link;
        if (sp->url_count == 0) {
            snprintf(err, errlen, "backend %s has no url", sp->name);
            return NX_ECONFIG;
        }
        b->instance_count = (uint32_t)sp->url_count * shards; /* a session per shard and url */
    }
    b->url_slots = calloc(sp->url_count + 1, sizeof(int));
    if (b->url_slots == NULL) return -ENOMEM;
    for (size_t u = 0; u < sp->url_count; u++) {
        char why[200];
        b->url_slots[u] =
            nx_resolver_add(all->resolver, b->urls[u].host, b->urls[u].port, why, sizeof(why));
        if (b->url_slots[u] < 0) {
            snprintf(err, errlen, "backend %s: %s", sp->name, why);
            return NX_ECONFIG;
        }
    }
    if (b->instance_count > MAX_INSTANCES) {
        snprintf(err, errlen, "backend %s would have %u instances; at most %d", sp->name,
                 b->instance_count, MAX_INSTANCES);
        return NX_ECONFIG;
    }
    b->instances = calloc(b->instance_count, sizeof(instance_t));
    b->next_pick = calloc(shards, sizeof(uint32_t));
    b->health = calloc((size_t)shards * b->instance_count, sizeof(nx_health_t));
    if (b->instances == NULL || b->next_pick == NULL || b->health == NULL) return -ENOMEM;
    nx_health_config_t hc = sp->health;
    if (hc.base_ejection_ms == 0) nx_health_config_default(&hc);
    for (size_t h = 0; h < (size_t)shards * b->instance_count; h++)
        nx_health_init(&b->health[h], &hc);
    for (uint32_t i = 0; i < b->instance_count; i++) {
        instance_t *in = &b->instances[i];
        in->spec = &b->spec;
        in->name = b->name;
        in->backend = b;
        in->index = i;
        if (sp->transport == NX_BACKEND_STDIO) {
            in->owner = (index + i) % shards; /* processes spread over the shards */
        } else {
            in->owner = i / (uint32_t)sp->url_count;
            in->replica = i % (uint32_t)sp->url_count;
        }
        nx_list_init(&in->calls);
        nx_timer_init(&in->restart_timer, on_restart_timer);
        nx_timer_init(&in->check_timer, on_check_timer);
        nx_health_init(&in->checks, &hc);
        atomic_store(&in->state, B_STOPPED);
    }
    b->catalog_shard = b->instances[0].owner;
    if (sp->transport != NX_BACKEND_STDIO) b->catalog_shard = index % shards;
    if (sp->transport == NX_BACKEND_REST) {
        /* No catalog to wait for: its requests can be made as soon as a shard runs. */
        atomic_store(&b->listed, true);
        if (b->health_path == NULL) {
            b->health_path = strdup("/health");
            b->spec.health_path = b->health_path;
            if (b->health_path == NULL) return -ENOMEM;
        }
    }
    return 0;
}

static void backend_dispose(backend_t *b) {
    json_decref(atomic_load(&b->catalog));
    json_decref(b->retired);
    json_decref(b->subscriptions);
    for (int k = 0; k < KINDS; k++)
        json_decref(b->pages[k]);
    free(b->name);
    free(b->cwd);
    free_strv(b->argv);
    free_strv(b->env);
    free_strv(b->headers);
    free(b->header_fields);
    free(b->health_path);
    for (size_t u = 0; b->urls != NULL && u < b->spec.url_count; u++) {
        free((char *)b->urls[u].host);
        free((char *)b->urls[u].path);
    }
    free(b->urls);
    free(b->url_slots);
    free(b->instances);
    free(b->next_pick);
    free(b->health);
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
    all->resolver = nx_resolver_new(RESOLVE_EVERY_MS);
    if (all->resolver == NULL) {
        free(all->items);
        free(all);
        return -ENOMEM;
    }
    snprintf(all->sep, sizeof(all->sep), "%s", sep && sep[0] ? sep : "__");
    for (uint32_t k = 0; k < MAX_SHARDS; k++) {
        nx_list_init(&all->proxies[k]);
        nx_list_init(&all->rest_calls[k]);
    }
    for (size_t i = 0; i < count; i++) {
        all->count = i + 1;
        int rc = backend_init(all, &all->items[i], (uint32_t)i, &specs[i], err, errlen);
        if (rc < 0) {
            if (rc == -ENOMEM) snprintf(err, errlen, "out of memory");
            nx_backends_free(all);
            return rc;
        }
    }
    int rc = nx_resolver_start(all->resolver);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the name resolver: %s", strerror(-rc));
        nx_backends_free(all);
        return rc;
    }
    nx_mcp_provider_t p = {
        .list = provider_list, .call = provider_call, .subscribe = provider_subscribe};
    nx_mcp_server_set_provider(e->mcp, &p, all);
    *out = all;
    return 0;
}

#define FOR_OWNED(all, es, b, in)                                                                  \
    for (size_t bi_ = 0; (all) != NULL && bi_ < (all)->count; bi_++)                               \
        for (uint32_t ii_ = 0; ((b) = &(all)->items[bi_]) && ii_ < (b)->instance_count; ii_++)     \
            if (((in) = &(b)->instances[ii_])->owner == (uint32_t)(es)->shard->id)

void nx_backends_shard_start(nx_backends_t *all, nx_engine_shard_t *es) {
    backend_t *b;
    instance_t *in;
    for (size_t i = 0; all != NULL && i < all->count; i++)
        if (all->items[i].catalog_shard == (uint32_t)es->shard->id) all->items[i].catalog_es = es;
    FOR_OWNED(all, es, b, in) {
        in->es = es;
        start_link(in);
    }
}

void nx_backends_shard_drain(nx_backends_t *all, nx_engine_shard_t *es) {
    backend_t *b;
    instance_t *in;
    FOR_OWNED(all, es, b, in) {
        in->draining = true;
        nx_timer_stop(&in->restart_timer);
        nx_timer_stop(&in->check_timer);
        /* Calls in flight finish first (within the grace period); then the link ends. */
        if (in->link == NULL)
            atomic_store(&in->state, B_STOPPED);
        else if (nx_list_empty(&in->calls))
            stop_link(in);
    }
}

bool nx_backends_shard_busy(const nx_backends_t *all, const nx_engine_shard_t *es) {
    for (size_t i = 0; all != NULL && i < all->count; i++) {
        const backend_t *b = &all->items[i];
        for (uint32_t k = 0; k < b->instance_count; k++)
            if (b->instances[k].owner == (uint32_t)es->shard->id && b->instances[k].link != NULL)
                return true;
    }
    return all != NULL && (!nx_list_empty(&all->proxies[es->shard->id]) ||
                           !nx_list_empty(&all->rest_calls[es->shard->id]));
}

void nx_backends_shard_stop(nx_backends_t *all, nx_engine_shard_t *es) {
    backend_t *b;
    instance_t *in;
    for (size_t i = 0; all != NULL && i < all->count; i++) {
        b = &all->items[i];
        if (b->catalog_shard != (uint32_t)es->shard->id) continue;
        nx_timer_stop(&b->retire_timer);
        for (int k = 0; k < KINDS; k++)
            end_refresh(b, k);
    }
    /* HTTP requests to rest backends end before the pools they use. */
    if (all != NULL) nx__backend_rest_shard_stop(all, (uint32_t)es->shard->id);
    FOR_OWNED(all, es, b, in) {
        in->draining = true;
        nx_timer_stop(&in->restart_timer);
        nx_timer_stop(&in->check_timer);
        b->link->destroy(in);
        if (in->client_live) {
            in->client_live = false;
            nx_mcp_client_dispose(&in->client);
        }
        while (!nx_list_empty(&in->calls))
            owner_call_free(nx_container_of(in->calls.next, owner_call_t, link));
    }
    /* Calls this shard still waits for are answered by nobody now. */
    nx_list_t *list = all ? &all->proxies[es->shard->id] : NULL;
    while (list != NULL && !nx_list_empty(list)) {
        proxy_t *p = nx_container_of(list->next, proxy_t, link);
        nx_mcp_call_t *call = p->call;
        nx_mcp_call_note_attempts(call, p->attempts);
        proxy_release(p, -1);
        proxy_free(p);
        nx_mcp_call_on_cancel(call, NULL, NULL);
        nx_mcp_call_error(call, -32603, "the server is shutting down", NULL);
    }
}

void nx_backends_free(nx_backends_t *all) {
    if (all == NULL) return;
    nx_resolver_free(all->resolver);
    for (size_t i = 0; i < all->count; i++)
        backend_dispose(&all->items[i]);
    free(all->items);
    free(all);
}

/* The state of a backend as a whole: ready when any instance is. */
static backend_state_t backend_state(const backend_t *b) {
    int best = B_STOPPED;
    for (uint32_t i = 0; i < b->instance_count; i++) {
        int s = atomic_load(&b->instances[i].state);
        if (s == B_READY) return B_READY;
        if (s < best) best = s;
    }
    return (backend_state_t)best;
}

bool nx_backends_listed(const nx_backends_t *all) {
    for (size_t i = 0; all != NULL && i < all->count; i++)
        if (!atomic_load(&all->items[i].listed)) return false;
    return true;
}

json_t *nx_backends_health(const nx_backends_t *all) {
    json_t *out = json_object();
    for (size_t i = 0; all && i < all->count; i++) {
        backend_t *b = (backend_t *)&all->items[i];
        json_t *snap = catalog_acquire(b, current_shard());
        json_t *h = json_pack(
            "{s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:s, s:i, s:I, s:I, s:I}", "transport",
            b->link->name, "state", state_names[backend_state(b)], "tools",
            (json_int_t)json_array_size(json_object_get(snap, "tools")), "restarts",
            (json_int_t)atomic_load(&b->restarts), "calls",
            (json_int_t)atomic_load(&b->calls_total), "failures",
            (json_int_t)atomic_load(&b->failures_total), "pid", atomic_load(&b->instances[0].pid),
            "breaker",
            b->breaker_enabled ? nx_breaker_state_name(nx_breaker_state(&b->breaker)) : "disabled",
            "in_flight", (int)nx_bulkhead_in_flight(&b->bulkhead), "rejected",
            (json_int_t)nx_bulkhead_rejected(&b->bulkhead), "retries",
            (json_int_t)atomic_load(&b->retries_total), "ejections",
            (json_int_t)atomic_load(&b->ejections_total));
        json_object_set_new(
            h, "resources",
            json_integer((json_int_t)json_array_size(json_object_get(snap, "resources"))));
        json_object_set_new(
            h, "resource_templates",
            json_integer((json_int_t)json_array_size(json_object_get(snap, "resourceTemplates"))));
        json_object_set_new(
            h, "prompts",
            json_integer((json_int_t)json_array_size(json_object_get(snap, "prompts"))));
        json_t *list = json_array();
        for (uint32_t k = 0; k < b->instance_count; k++) {
            const instance_t *in = &b->instances[k];
            json_t *one = json_pack("{s:i, s:i, s:s, s:i}", "shard", (int)in->owner, "replica",
                                    (int)in->replica, "state", state_names[atomic_load(&in->state)],
                                    "outstanding", (int)atomic_load(&in->outstanding));
            if (atomic_load(&in->pid) != 0)
                json_object_set_new(one, "pid", json_integer(atomic_load(&in->pid)));
            json_array_append_new(list, one);
        }
        json_object_set_new(h, "instances", list);
        json_object_set_new(out, b->name, h);
        json_decref(snap);
    }
    return out;
}

/* ---- the connection manager ---- */

/* The readers below take const views of state that is all atomics. */
backend_t *nx__backends_find(const nx_backends_t *all, const char *name) {
    for (size_t i = 0; all != NULL && i < all->count; i++)
        if (strcmp(all->items[i].name, name) == 0) return &all->items[i];
    return NULL;
}

int nx_backends_test(nx_backends_t *all, const char *name, nx_backends_test_cb cb, void *arg) {
    backend_t *b = nx__backends_find(all, name);
    if (b == NULL) return NX_ENOTFOUND;
    uint32_t origin = current_shard();
    uint32_t i = nx__backend_pick(b, origin);
    bmsg_t *bm = bmsg_new(M_TEST, all, b->index, i, origin, 0);
    if (bm == NULL) return -ENOMEM;
    bm->test_cb = cb;
    bm->test_arg = arg;
    return post(all, b->instances[i].owner, bm) ? 0 : -EBUSY;
}

/* connected: every instance ready and healthy, breaker closed; degraded: some of it;
 * disconnected: no instance ready or the breaker open; unknown: never connected yet. */
static const char *connection_status(backend_t *b, uint32_t *ready_out) {
    uint32_t ready = 0, unhealthy = 0, starting = 0;
    for (uint32_t i = 0; i < b->instance_count; i++) {
        const instance_t *in = &b->instances[i];
        int st = atomic_load(&in->state);
        /* A rest instance is always "ready" (a pool); its health checks say if it serves. */
        bool serves = in->spec->transport != NX_BACKEND_REST || !atomic_load(&in->check_unhealthy);
        if (st == B_READY && serves) ready++;
        if (st == B_STARTING && in->ready_at == 0) starting++;
        if (atomic_load(&in->check_unhealthy)) unhealthy++;
    }
    *ready_out = ready;
    nx_breaker_state_t bs = b->breaker_enabled ? nx_breaker_state(&b->breaker) : NX_BREAKER_CLOSED;
    if (ready == 0)
        return starting == b->instance_count && atomic_load(&b->answered) == 0 ? "unknown"
                                                                               : "disconnected";
    if (bs == NX_BREAKER_OPEN) return "disconnected";
    if (ready < b->instance_count || unhealthy > 0 || bs != NX_BREAKER_CLOSED) return "degraded";
    return "connected";
}

static json_t *connection_json(backend_t *b) {
    uint32_t ready = 0;
    const char *status = connection_status(b, &ready);
    uint64_t answered = atomic_load(&b->answered), ok = atomic_load(&b->succeeded);
    uint64_t min = atomic_load(&b->latency_min_us), max = atomic_load(&b->latency_max_us);
    json_t *latency =
        answered == 0
            ? json_pack("{s:n, s:n, s:n}", "min", "avg", "max")
            : json_pack("{s:f, s:f, s:f}", "min", (double)min / 1000.0, "avg",
                        (double)atomic_load(&b->latency_sum_us) / (double)answered / 1000.0, "max",
                        (double)max / 1000.0);
    json_t *instances = json_array();
    for (uint32_t i = 0; i < b->instance_count; i++) {
        const instance_t *in = &b->instances[i];
        json_t *one = json_pack("{s:i, s:i, s:s, s:s, s:i}", "shard", (int)in->owner, "replica",
                                (int)in->replica, "state", state_names[atomic_load(&in->state)],
                                "health", atomic_load(&in->check_unhealthy) ? "unhealthy" : "ok",
                                "outstanding", (int)atomic_load(&in->outstanding));
        uint32_t rtt = atomic_load(&in->last_check_us);
        if (rtt != 0) json_object_set_new(one, "last_check_ms", json_real(rtt / 1000.0));
        if (b->urls != NULL) {
            char url[2400];
            const nx_backend_url_t *u = &b->urls[in->replica];
            snprintf(url, sizeof(url), "http://%s:%u%s", u->host, u->port, u->path);
            json_object_set_new(one, "url", json_string(url));
        }
        json_array_append_new(instances, one);
    }
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:s, s:{s:i, s:i, s:I}, s:o}", "id", b->name,
        "transport", b->link->name, "status", status, "latency_ms", latency, "success_rate",
        answered ? json_real((double)ok / (double)answered) : json_null(), "calls",
        (json_int_t)answered, "failures", (json_int_t)(answered - ok), "retries",
        (json_int_t)atomic_load(&b->retries_total), "breaker",
        b->breaker_enabled ? nx_breaker_state_name(nx_breaker_state(&b->breaker)) : "disabled",
        "pool", "instances", (int)b->instance_count, "ready", (int)ready, "in_flight",
        (json_int_t)nx_bulkhead_in_flight(&b->bulkhead), "instances", instances);
}

json_t *nx_backends_connections(const nx_backends_t *all, const char *name) {
    if (name != NULL) {
        backend_t *b = nx__backends_find(all, name);
        return b ? connection_json(b) : NULL;
    }
    json_t *list = json_array();
    for (size_t i = 0; all != NULL && i < all->count; i++)
        json_array_append_new(list, connection_json(&all->items[i]));
    return list;
}

int nx_backends_metrics(const nx_backends_t *all, nx_buf_t *out) {
    if (all == NULL || all->count == 0) return 0;
    static const struct {
        const char *name, *type, *help;
    } families[] = {
        {"nexus_backend_up", "gauge", "1 when at least one instance of the backend is ready"},
        {"nexus_backend_instances_ready", "gauge", "Instances ready to take calls"},
        {"nexus_backend_calls_total", "counter", "Calls answered (retries included)"},
        {"nexus_backend_failures_total", "counter", "Calls answered with a backend error"},
        {"nexus_backend_retries_total", "counter", "Retries sent after retryable failures"},
        {"nexus_backend_restarts_total", "counter", "Links restarted (process or session)"},
        {"nexus_backend_ejections_total", "counter", "Instances ejected by outlier detection"},
        {"nexus_backend_rejected_total", "counter", "Calls rejected by the bulkhead"},
        {"nexus_backend_in_flight", "gauge", "Calls in flight"},
        {"nexus_backend_breaker_open", "gauge", "1 when the circuit breaker is open"},
        {"nexus_backend_latency_seconds_sum", "counter", "Total latency of answered calls"},
    };
    int rc = 0;
    for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
        rc |= nx_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", families[f].name,
                             families[f].help, families[f].name, families[f].type);
        for (size_t i = 0; i < all->count; i++) {
            backend_t *b = &all->items[i];
            uint32_t ready = 0;
            connection_status(b, &ready);
            double v = 0;
            switch (f) {
            case 0:
                v = ready > 0;
                break;
            case 1:
                v = ready;
                break;
            case 2:
                v = (double)atomic_load(&b->answered);
                break;
            case 3:
                v = (double)(atomic_load(&b->answered) - atomic_load(&b->succeeded));
                break;
            case 4:
                v = (double)atomic_load(&b->retries_total);
                break;
            case 5:
                v = (double)atomic_load(&b->restarts);
                break;
            case 6:
                v = (double)atomic_load(&b->ejections_total);
                break;
            case 7:
                v = (double)nx_bulkhead_rejected(&b->bulkhead);
                break;
            case 8:
                v = (double)nx_bulkhead_in_flight(&b->bulkhead);
                break;
            case 9:
                v = b->breaker_enabled && nx_breaker_state(&b->breaker) == NX_BREAKER_OPEN;
                break;
            default:
                v = (double)atomic_load(&b->latency_sum_us) / 1e6;
                break;
            }
            rc |= nx_buf_appendf(out, "%s{backend=\"%s\",transport=\"%s\"} %.17g\n",
                                 families[f].name, b->name, b->link->name, v);
        }
    }
    return rc < 0 ? -ENOMEM : 0;
}
