/* The engine: process lifecycle, shards, config snapshots, signals.
 *
 * One request, end to end (the names are the real functions):
 *   nx_shard_run (net/shard.c)          waits on the ring, dispatches completions
 *   -> on_recv (net/conn.c)             multishot receive into a provided buffer
 *   -> on_data -> process (net/http_server.c)
 *        nx_http_parse_request (net/http1.c) parses in place, pipelined requests in a loop
 *   -> handle_request (this file)       nx_router_match, then the route's nx_route_fn
 *        e.g. route_health (engine/api_routes.c)
 *   -> nx_http_respond (net/http_server.c) appends the response to the connection's out buffer
 *   -> on_request_done (this file)      nx_metrics_record_request, access log
 *   -> nx_conn_flush (net/conn.c)       one send for everything the batch produced
 *
 * Control: main() -> nx_engine_run: binds the listeners, starts one shard per core, then the
 * control thread waits on a signalfd: SIGTERM/SIGINT post a drain message to every shard,
 * SIGHUP reloads the configuration and posts the new snapshot. */
#include "engine.h"

#include "events.h"
#include "cache.h"
#include "cache_view.h"
#include "executions.h"
#include "tool_cache.h"

#include "log.h"
#include "backends.h"
#include "mcp_http.h"
#include "mcp_rules.h"
#include "mcp_stdio.h"
#include "mcp_ws.h"
#include "nexus/errors.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---- configuration snapshots ---- */

/* The snapshot owns a deep copy of <c> (the servers list is on the heap); the caller still
 * disposes its own <c>. */
nx_config_snapshot_t *nx_config_snapshot_new(const nx_config_t *c) {
    nx_config_snapshot_t *s = malloc(sizeof(*s));
    if (s == NULL) return NULL;
    s->refs = 1;
    if (nx_config_copy(&s->config, c) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

void nx_config_snapshot_ref(nx_config_snapshot_t *s) {
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void nx_config_snapshot_unref(nx_config_snapshot_t *s) {
    if (s != NULL && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        nx_config_dispose(&s->config);
        free(s);
    }
}

/* On failure <c> is disposed here, so only a successful load leaves the caller something to
 * dispose. */
int nx_engine_load_config(nx_config_t *c, const char *file, char **overrides,
                          nx_config_error_t *err) {
    nx_config_defaults(c);
    int rc = 0;
    if (file != NULL) rc = nx_config_load_file(c, file, err);
    if (rc == 0) rc = nx_config_apply_env(c, environ, err);
    for (char **kv = overrides; rc == 0 && kv != NULL && kv[0] != NULL; kv += 2)
        rc = nx_config_set(c, kv[0], kv[1], "command line", NULL, err);
    if (rc == 0) rc = nx_config_validate(c, err);
    if (rc < 0) nx_config_dispose(c);
    return rc;
}

static nx_http_server_opts_t http_opts_from(const nx_config_t *c) {
    nx_http_server_opts_t o = {
        .limits = {.max_header_bytes = c->http.max_header_bytes,
                   .max_headers = c->http.max_headers,
                   .max_uri = c->http.max_uri,
                   .max_body = c->http.max_body},
        .header_timeout_ms = c->http.header_timeout_ms,
        .body_timeout_ms = c->http.body_timeout_ms,
        .keepalive_timeout_ms = c->http.keepalive_timeout_ms,
        .max_connections = c->http.max_connections,
        .max_pending_output = 1u << 20,
    };
    return o;
}

/* ---- the request path ---- */

static void handle_request(nx_http_server_t *srv, nx_http_conn_t *hc, nx_http_request_t *req) {
    nx_engine_shard_t *es = srv->user;
    nx_front_t *front = srv == &es->rest.http ? &es->rest : &es->mcp;
    nx_route_match_t m;
    int rc = nx_router_match(front->router, req->method_name, req->path, &m);
    if (rc == NX_ENOTFOUND) {
        nx_http_respond_error(hc, 404, "no route for this path", NULL);
        return;
    }
    if (rc == NX_ENOMETHOD) {
        char allow[160];
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", m.allow);
        char msg[192];
        snprintf(msg, sizeof(msg), "method not allowed; allowed: %s", m.allow);
        nx_http_respond_error(hc, 405, msg, allow);
        return;
    }
    const nx_route_def_t *def = m.route->handler;
    hc->tag = (uint32_t)(def - nx_rest_routes);
    def->fn(es, hc, req, &m);
}

static void on_request_done(nx_http_server_t *srv, nx_http_conn_t *hc, int status,
                            uint64_t latency_ns) {
    nx_engine_shard_t *es = srv->user;
    uint32_t route = hc->tag == NX_HTTP_TAG_NONE ? NX_METRICS_ROUTE_UNMATCHED : hc->tag;
    nx_metrics_record_request(&es->metrics, route, status, latency_ns);
    es->request_counter++;
    if (es->config->config.access_log) {
        char rid[32], fields[256];
        snprintf(rid, sizeof(rid), "%d-%llu", es->shard->id,
                 (unsigned long long)es->request_counter);
        const char *name =
            route == NX_METRICS_ROUTE_UNMATCHED ? "unmatched" : es->engine->route_names[route];
        snprintf(fields, sizeof(fields),
                 "\"access\":true,\"route\":\"%s\",\"status\":%d,\"latency_ms\":%.3f", name, status,
                 (double)latency_ns / 1e6);
        nx_log_set_request_id(rid);
        nx_log_write(NX_LOG_INFO, fields, "request");
        nx_log_set_request_id(NULL);
    }
}

/* ---- shard lifecycle ---- */

/* How often idle MCP sessions are swept (their idle timeout itself is configured). */
#define NX_MCP_SESSION_SWEEP_MS 10000u

static __thread nx_engine_shard_t *t_current_shard;

nx_engine_shard_t *nx_engine_current_shard(void) {
    return t_current_shard;
}

static void on_session_sweep(nx_timer_t *t) {
    nx_engine_shard_t *es = nx_container_of(t, nx_engine_shard_t, session_sweep);
    nx_mcp_sessions_expire(&es->sessions, nx_shard_now_ms(es->shard));
    nx_shard_timer_start(es->shard, &es->session_sweep, NX_MCP_SESSION_SWEEP_MS);
}

static void front_start(nx_engine_shard_t *es, nx_front_t *f, nx_router_t *router, int fd) {
    f->router = router;
    nx_http_server_opts_t o = http_opts_from(&es->config->config);
    nx_http_server_init(&f->http, es->shard, &o, handle_request, on_request_done, es);
    if (fd < 0) return;
    if (nx_listener_start(&f->listener, es->shard, fd, nx_http_server_accept, &f->http) == 0)
        f->listening = true;
}

void nx_engine_shard_maybe_stop(nx_engine_shard_t *es) {
    if (es->draining && !nx_backends_shard_busy(es->engine->backends, es) &&
        es->rest.http.conn_count == 0 && es->mcp.http.conn_count == 0 && es->ws_count == 0 &&
        !nx_events_shard_busy(es) && nx_list_empty(&es->mcp_owned) && es->mcp_forwards_out == 0 &&
        nx_list_empty(&es->mcp_outbox)) {
        /* In stdio mode a signal stops the shard here too; on_shard_stop then cancels the
         * read and frees the stdio state. */
        nx_timer_stop(&es->drain_timer);
        nx_shard_stop(es->shard);
    }
}

static void on_front_drained(nx_http_server_t *srv) {
    nx_engine_shard_maybe_stop(srv->user);
}

static void on_drain_deadline(nx_timer_t *t) {
    nx_engine_shard_t *es = nx_container_of(t, nx_engine_shard_t, drain_timer);
    if (es->drain_deadline_passed) {
        /* A second past the grace period something still waits on another shard that will
         * never answer: stop anyway rather than hang the shutdown. */
        nx_log_error("shard still busy 1 s after the grace period: stopping now");
        nx_shard_stop(es->shard);
        return;
    }
    es->drain_deadline_passed = true;
    nx_log_warn("drain grace period over: closing %u connections",
                es->rest.http.conn_count + es->mcp.http.conn_count + es->ws_count);
    nx_mcp_http_cancel_owned(es);
    nx_http_server_close_all(&es->rest.http);
    nx_http_server_close_all(&es->mcp.http);
    nx_mcp_ws_close_all(es);
    nx_events_shard_close_all(es);
    nx_shard_timer_start(es->shard, &es->drain_timer, 1000);
}

/* stdio input ended and every answer is written: stop this shard and tell the control thread. */
static void on_stdio_done(nx_mcp_stdio_t *io) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    es->draining = true;
    nx_shard_stop(es->shard);
    nx_loop_msg_ring(es->shard->loop, nx_loop_ring_fd(es->engine->control),
                     &es->engine->control_wake, 0);
    nx_loop_submit(es->shard->loop); /* now: this loop is about to stop */
}

/* The shard's TTL cache (cache.*), with a Redis client when cache.redis is set. */
static int shard_cache_start(nx_engine_shard_t *es) {
    const nx_engine_t *e = es->engine;
    const nx_cache_settings_t *cs = &e->config->config.cache;
    if (!cs->enabled) return 0;
    nx_redis_config_t rc = {
        .host = e->redis_addr,
        .port = e->redis_port,
        .password = e->redis_password[0] ? e->redis_password : NULL,
        .db = e->redis_db,
        .connect_timeout_ms = cs->redis_connect_timeout_ms,
        .command_timeout_ms = cs->redis_timeout_ms,
        .reconnect_base_ms = 100,
        .reconnect_cap_ms = 5000,
        .max_pending = 4096,
    };
    nx_cache_config_t cc = {
        .max_bytes = cs->max_bytes,
        .max_entry_bytes = cs->max_entry,
        .eviction = cs->eviction == 1 ? NX_CACHE_CLOCK : NX_CACHE_LRU,
        .stale_grace_ms = cs->stale_grace_ms,
        .compression = cs->compression == 2   ? NX_CACHE_COMPRESS_ZSTD
                       : cs->compression == 1 ? NX_CACHE_COMPRESS_LZ4
                                              : NX_CACHE_COMPRESS_NONE,
        .compress_min = cs->compress_min,
        .redis = e->redis_addr[0] ? &rc : NULL,
        .redis_prefix = cs->redis_prefix,
    };
    return nx_cache_new(es->shard, &cc, &es->cache);
}

static int on_shard_start(nx_shard_t *s) {
    nx_engine_t *e = s->user;
    nx_log_set_shard(s->id);
    nx_engine_shard_t *es = calloc(1, sizeof(*es));
    if (es == NULL) return -ENOMEM;
    es->engine = e;
    es->shard = s;
    es->config = e->config;
    nx_config_snapshot_ref(es->config);
    nx_metrics_init(&es->metrics);
    nx_timer_init(&es->drain_timer, on_drain_deadline);
    const nx_mcp_limits_t *ml = &es->config->config.mcp_limits;
    if (nx_mcp_sessions_init(&es->sessions, (uint32_t)s->id, ml->max_sessions,
                             ml->session_idle_timeout_ms, ml->session_evict_idle_ms) < 0) {
        nx_config_snapshot_unref(es->config);
        free(es);
        return -ENOMEM;
    }
    nx_timer_init(&es->session_sweep, on_session_sweep);
    nx_list_init(&es->ws_clients);
    nx_list_init(&es->mcp_owned);
    nx_mcp_http_shard_init(es);
    if (shard_cache_start(es) < 0) return -ENOMEM;
    nx_mcp_tasks_set_shard((uint32_t)s->id);
    nx_shard_timer_start(s, &es->session_sweep, NX_MCP_SESSION_SWEEP_MS);
    t_current_shard = es;
    s->user = es;
    e->shards[s->id] = es;
    nx_events_shard_start(es);
    nx_executions_shard_start(es);
    front_start(es, &es->rest, e->rest_router, e->rest_fds[s->id]);
    front_start(es, &es->mcp, e->mcp_router, e->mcp_fds[s->id]);
    es->rest.http.on_drained = on_front_drained;
    es->mcp.http.on_drained = on_front_drained;
    nx_backends_shard_start(e->backends, es);
    if (e->stdio_mode && s->id == 0) {
        es->stdio = nx_mcp_stdio_start(es, STDIN_FILENO, STDOUT_FILENO, on_stdio_done);
        if (es->stdio == NULL) return -ENOMEM;
    }
    if (e->on_shard_started != NULL) e->on_shard_started(es, e->on_shard_started_arg);
    return 0;
}

static void on_shard_stop(nx_shard_t *s) {
    nx_engine_shard_t *es = s->user;
    if (es->stdio != NULL) {
        nx_mcp_stdio_stop(es->stdio);
        nx_mcp_stdio_free(es->stdio);
        es->stdio = NULL;
    }
    nx_listener_stop(&es->rest.listener);
    nx_listener_stop(&es->mcp.listener);
    nx_executions_shard_stop(es);
    nx_backends_shard_stop(es->engine->backends, es);
    /* Close whatever is left and let the completions free it before the ring goes away. */
    nx_mcp_http_cancel_owned(es);
    nx_http_server_close_all(&es->rest.http);
    nx_http_server_close_all(&es->mcp.http);
    nx_mcp_ws_close_all(es);
    nx_events_shard_close_all(es);
    for (int i = 0; i < 100 && !nx_list_empty(&s->conns); i++)
        nx_loop_run_once(s->loop, 10);
    /* The cache last (calls waiting on it are gone with their connections); its Redis client
     * cancels its polls, whose completions free the connection: let them arrive. */
    bool had_cache = es->cache != NULL;
    nx_cache_view_detach(es);
    for (int i = 0; had_cache && i < 3; i++)
        nx_loop_run_once(s->loop, 2);
    nx_http_server_dispose(&es->rest.http);
    nx_http_server_dispose(&es->mcp.http);
    nx_events_shard_stop(es);
    nx_timer_stop(&es->session_sweep);
    nx_mcp_tasks_dispose();
    nx_mcp_sessions_dispose(&es->sessions);
    nx_mcp_http_free_outbox(es);
    t_current_shard = NULL;
}

/* ---- messages from the control thread ---- */

typedef struct drain_msg {
    nx_msg_t msg;
} drain_msg_t;

static void on_drain_msg(nx_shard_t *s, nx_msg_t *m) {
    free(m);
    nx_engine_shard_t *es = s->user;
    if (es->draining) return;
    es->draining = true;
    nx_listener_stop(&es->rest.listener);
    nx_listener_stop(&es->mcp.listener);
    es->rest.listening = es->mcp.listening = false;
    nx_shard_timer_start(s, &es->drain_timer, es->config->config.drain_timeout_ms);
    nx_http_server_drain(&es->rest.http);
    nx_http_server_drain(&es->mcp.http);
    nx_mcp_ws_drain(es);
    nx_events_shard_drain(es);
    nx_mcp_http_drain(es);
    nx_backends_shard_drain(es->engine->backends, es);
    nx_engine_shard_maybe_stop(es);
}

typedef struct reload_msg {
    nx_msg_t msg;
    nx_config_snapshot_t *snap;
} reload_msg_t;

static void dispose_reload_msg(nx_msg_t *m) {
    nx_config_snapshot_unref(((reload_msg_t *)m)->snap);
    free(m);
}

static void on_reload_msg(nx_shard_t *s, nx_msg_t *m) {
    reload_msg_t *rm = (reload_msg_t *)m;
    nx_engine_shard_t *es = s->user;
    nx_config_snapshot_t *old = es->config;
    es->config = rm->snap;
    nx_http_server_opts_t o = http_opts_from(&es->config->config);
    /* Limits and timeouts apply to the next request; open connections stay open. */
    es->rest.http.opts = o;
    es->mcp.http.opts = o;
    const nx_mcp_limits_t *ml = &es->config->config.mcp_limits;
    es->sessions.idle_ms = ml->session_idle_timeout_ms;
    es->sessions.evict_idle_ms = ml->session_evict_idle_ms;
    es->sessions.max = ml->max_sessions;
    nx_config_snapshot_unref(old);
    free(rm);
}

static int post_to_all(nx_engine_t *e, nx_msg_t *(*make)(nx_engine_t *e)) {
    int failures = 0;
    for (uint32_t i = 0; i < e->shard_count; i++) {
        nx_msg_t *m = make(e);
        if (m == NULL || nx_shard_post(e->shards[i]->shard, e->control, m) < 0) {
            free(m);
            failures++;
        }
    }
    return failures;
}

static nx_msg_t *make_drain(nx_engine_t *e) {
    drain_msg_t *m = calloc(1, sizeof(*m));
    if (m != NULL) m->msg.fn = on_drain_msg;
    return m ? &m->msg : NULL;
}

static nx_msg_t *make_reload(nx_engine_t *e) {
    reload_msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL) return NULL;
    m->msg.fn = on_reload_msg;
    m->msg.dispose = dispose_reload_msg;
    m->snap = e->config;
    nx_config_snapshot_ref(m->snap);
    return &m->msg;
}

static void reload_config(nx_engine_t *e) {
    nx_config_t c;
    nx_config_error_t err;
    /* A copy: the running snapshot may be freed by the shards while we still log its name. */
    char file_buf[sizeof(e->config->config.source)];
    snprintf(file_buf, sizeof(file_buf), "%s", e->config->config.source);
    const char *file = file_buf[0] ? file_buf : NULL;
    if (nx_engine_load_config(&c, file, e->overrides, &err) < 0) {
        char msg[600];
        nx_config_error_format(&err, msg, sizeof(msg));
        nx_log_error("reload failed, keeping the running configuration: %s", msg);
        return;
    }
    const nx_config_t *old = &e->config->config;
    if (strcmp(c.rest.host, old->rest.host) != 0 || c.rest.port != old->rest.port ||
        strcmp(c.mcp.host, old->mcp.host) != 0 || c.mcp.port != old->mcp.port ||
        c.mcp.enabled != old->mcp.enabled || c.rest.enabled != old->rest.enabled ||
        c.shards != old->shards) {
        nx_log_warn("listen addresses and shard count change only on restart; other settings "
                    "reloaded");
        c.rest = old->rest;
        c.mcp = old->mcp;
        c.shards = old->shards;
    }
    nx_config_snapshot_t *snap = nx_config_snapshot_new(&c);
    nx_config_dispose(&c);
    if (snap == NULL) return;
    nx_config_snapshot_unref(e->config);
    e->config = snap;
    nx_log_set_level(c.log_level);
    int failed = post_to_all(e, make_reload);
    nx_log_info("configuration reloaded from %s%s", file ? file : "defaults",
                failed ? " (some shards were busy and keep the old one)" : "");
}

/* ---- control thread ---- */

typedef struct control {
    nx_engine_t *e;
    nx_op_t read_op;
    int sfd;
    struct signalfd_siginfo si;
    bool stop;
} control_t;

static void arm_signal_read(control_t *ctl);

static void on_signal(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    control_t *ctl = nx_container_of(op, control_t, read_op);
    if (res == (int)sizeof(ctl->si)) {
        nx_engine_t *e = ctl->e;
        switch (ctl->si.ssi_signo) {
        case SIGHUP:
            nx_log_info("SIGHUP: reloading configuration");
            reload_config(e);
            break;
        case SIGTERM:
        case SIGINT:
            nx_log_info("%s: draining (grace %u ms)",
                        ctl->si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT",
                        e->config->config.drain_timeout_ms);
            e->draining = true;
            post_to_all(e, make_drain);
            ctl->stop = true;
            return;
        default:
            break;
        }
    }
    arm_signal_read(ctl);
}

static void arm_signal_read(control_t *ctl) {
    ctl->read_op.cb = on_signal;
    nx_loop_read(ctl->e->control, &ctl->read_op, ctl->sfd, &ctl->si, sizeof(ctl->si));
}

/* ---- engine ---- */

static nx_breaker_config_t breaker_config(const nx_server_breaker_t *c) {
    return (nx_breaker_config_t){.window_size = c->window,
                                 .minimum_calls = c->minimum_calls,
                                 .failure_rate_threshold = c->failure_rate,
                                 .slow_call_rate_threshold = c->slow_call_rate,
                                 .slow_call_duration_ms = c->slow_call_ms,
                                 .open_duration_ms = c->open_ms,
                                 .half_open_max_calls = c->half_open_calls,
                                 .probe_timeout_ms = c->probe_timeout_ms};
}

/* The backends of servers: stdio, Streamable HTTP, legacy HTTP+SSE, WebSocket and rest. */
static int start_backends(nx_engine_t *e, const nx_config_t *c) {
    const nx_servers_config_t *sc = &c->servers;
    if (sc->count == 0) return 0;
    nx_backend_spec_t *specs = calloc(sc->count, sizeof(*specs));
    char ***argv_store = calloc(sc->count, sizeof(char **));
    nx_backend_url_t **url_store = calloc(sc->count, sizeof(nx_backend_url_t *));
    size_t n = 0;
    int rc = specs && argv_store && url_store ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < sc->count; i++) {
        const nx_server_config_t *s = &sc->items[i];
        if (!s->enabled) continue;
        size_t argc = 0;
        while (s->args != NULL && s->args[argc] != NULL)
            argc++;
        char **argv = calloc(argc + 2, sizeof(char *));
        nx_backend_url_t *urls = calloc(s->url_count + 1, sizeof(*urls));
        argv_store[n] = argv;
        url_store[n] = urls;
        if (argv == NULL || urls == NULL) {
            rc = -ENOMEM;
            break;
        }
        argv[0] = (char *)s->command;
        for (size_t k = 0; k < argc; k++)
            argv[k + 1] = s->args[k];
        for (size_t u = 0; u < s->url_count; u++)
            urls[u] = (nx_backend_url_t){s->endpoints[u].host, s->endpoints[u].port,
                                         s->endpoints[u].path};
        specs[n++] =
            (nx_backend_spec_t){.name = s->name,
                                .transport = s->transport == NX_SERVER_STDIO  ? NX_BACKEND_STDIO
                                             : s->transport == NX_SERVER_WS   ? NX_BACKEND_WS
                                             : s->transport == NX_SERVER_SSE  ? NX_BACKEND_SSE
                                             : s->transport == NX_SERVER_REST ? NX_BACKEND_REST
                                                                              : NX_BACKEND_HTTP,
                                .instances = s->instances,
                                .least_outstanding = s->balance == NX_BALANCE_LEAST_OUTSTANDING,
                                .argv = (const char *const *)argv,
                                .env = (const char *const *)s->env,
                                .cwd = s->cwd[0] ? s->cwd : NULL,
                                .urls = urls,
                                .url_count = s->url_count,
                                .headers = (const char *const *)s->headers,
                                .connect_timeout_ms = s->timeouts.connect_ms,
                                .pool_max_connections = s->pool.max_connections,
                                .pool_max_idle = s->pool.max_idle,
                                .pool_idle_timeout_ms = s->pool.idle_timeout_ms,
                                .pool_max_requests = s->pool.max_requests,
                                .prefix = s->prefix,
                                .call_timeout_ms = s->timeouts.call_ms,
                                .deadline_ms = s->timeouts.deadline_ms,
                                .retry = {.base_ms = s->retry.base_ms,
                                          .cap_ms = s->retry.cap_ms,
                                          .max_attempts = s->retry.attempts},
                                .retry_budget = {.ratio_percent = s->retry.budget_percent,
                                                 .minimum = s->retry.min_retries},
                                .restart_base_ms = s->restart_base_ms,
                                .restart_cap_ms = s->restart_cap_ms,
                                .term_after_ms = s->shutdown_term_ms,
                                .kill_after_ms = s->shutdown_kill_ms,
                                .breaker_enabled = s->breaker.enabled,
                                .breaker = breaker_config(&s->breaker),
                                .max_concurrent = s->max_concurrent,
                                .health_checks = s->health.enabled,
                                .health_path = s->health.path[0] ? s->health.path : NULL,
                                .check_interval_ms = s->health.interval_ms,
                                .check_timeout_ms = s->health.timeout_ms,
                                .health = {.healthy_threshold = s->health.healthy_after,
                                           .unhealthy_threshold = s->health.unhealthy_after,
                                           .consecutive_failures = s->health.eject_after,
                                           .base_ejection_ms = s->health.base_ejection_ms,
                                           .max_ejection_ms = s->health.max_ejection_ms}};
    }
    if (rc == 0 && n > 0) {
        char err[256];
        rc = nx_backends_new(e, specs, n, sc->separator, &e->backends, err, sizeof(err));
        if (rc < 0) nx_log_error("backends: %s", err);
    }
    for (size_t i = 0; argv_store != NULL && url_store != NULL && i < sc->count; i++) {
        free(argv_store[i]);
        free(url_store[i]);
    }
    free(argv_store);
    free(url_store);
    free(specs);
    return rc;
}

/* cache.*: resolves the Redis host once (shards never resolve names) and wraps the backends'
 * provider with the tool cache for servers that set cache.ttl or cache.tools. */
static int setup_cache(nx_engine_t *e, const nx_config_t *c) {
    const nx_cache_settings_t *cs = &c->cache;
    if (!cs->enabled) return 0;
    if (cs->redis[0] != '\0') {
        char host[256], msg[160];
        if (nx_config_parse_redis_url(cs->redis, host, &e->redis_port, e->redis_password,
                                      &e->redis_db, msg, sizeof(msg)) < 0) {
            nx_log_error("cache.redis: %s", msg);
            return NX_ECONFIG;
        }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        int gai = getaddrinfo(host, NULL, &hints, &ai);
        if (gai != 0 || ai == NULL) {
            nx_log_error("cache.redis: cannot resolve %s: %s", host, gai_strerror(gai));
            return NX_ECONFIG;
        }
        const void *addr = ai->ai_family == AF_INET
                               ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                               : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        inet_ntop(ai->ai_family, addr, e->redis_addr, sizeof(e->redis_addr));
        freeaddrinfo(ai);
    }
    json_t *ttls = json_object(), *prefixes = json_object();
    const nx_servers_config_t *sc = &c->servers;
    for (size_t i = 0; i < sc->count; i++) {
        const nx_server_config_t *s = &sc->items[i];
        if (!s->enabled) continue;
        if (s->cache_ttl_ms > 0) {
            if (!s->prefix) {
                nx_log_error("servers[%zu] (%s): cache.ttl needs prefix: true (unprefixed tools "
                             "are cached when listed under cache.tools)",
                             i, s->name);
                json_decref(ttls);
                json_decref(prefixes);
                return NX_ECONFIG;
            }
            char prefix[160];
            snprintf(prefix, sizeof(prefix), "%s%s", s->name, sc->separator);
            json_object_set_new(prefixes, prefix, json_integer(s->cache_ttl_ms));
        }
        for (char **t = s->cache_tools; t != NULL && *t != NULL; t++) {
            char *eq = strrchr(*t, '=');
            if (eq == NULL) continue;
            char name[300];
            snprintf(name, sizeof(name), "%s%s%.*s", s->prefix ? s->name : "",
                     s->prefix ? sc->separator : "", (int)(eq - *t), *t);
            json_object_set_new(ttls, name, json_integer(strtoll(eq + 1, NULL, 10)));
        }
    }
    return nx_tool_cache_install(e->mcp, ttls, prefixes, cs->default_ttl_ms, cs->cache_errors,
                                 cs->stale_grace_ms > 0, &e->tool_cache);
}

int nx_engine_new(nx_config_snapshot_t *snap, char **overrides, nx_engine_t **out) {
    nx_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL) return -ENOMEM;
    e->config = snap;
    e->overrides = overrides;
    const nx_config_t *c = &snap->config;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    e->shard_count = c->shards ? c->shards : (uint32_t)(cpus > 0 ? cpus : 1);
    e->shards = calloc(e->shard_count, sizeof(*e->shards));
    e->rest_fds = calloc(e->shard_count, sizeof(int));
    e->mcp_fds = calloc(e->shard_count, sizeof(int));
    e->rest_router = nx_router_new();
    e->mcp_router = nx_router_new();
    int rc = -ENOMEM;
    if (!e->shards || !e->rest_fds || !e->mcp_fds || !e->rest_router || !e->mcp_router) goto fail;
    for (uint32_t i = 0; i < e->shard_count; i++)
        e->rest_fds[i] = e->mcp_fds[i] = -1;
    for (uint32_t i = 0; nx_rest_routes[i].method != NULL && i < NX_METRICS_MAX_ROUTES; i++) {
        snprintf(e->route_name_storage[i], sizeof(e->route_name_storage[i]), "%s %s",
                 nx_rest_routes[i].method, nx_rest_routes[i].pattern);
        e->route_names[i] = e->route_name_storage[i];
    }
    if ((rc = nx_routes_register(e->rest_router, nx_rest_routes, c)) < 0) goto fail;
    /* The MCP port serves the MCP transports (and /health for load balancers). */
    for (uint32_t i = 0; nx_rest_routes[i].method != NULL; i++) {
        const nx_route_def_t *d = &nx_rest_routes[i];
        if (strcmp(d->pattern, "/health") == 0 || strcmp(d->pattern, "/mcp") == 0 ||
            strcmp(d->pattern, "/ws") == 0 || strcmp(d->pattern, "/sse") == 0 ||
            strcmp(d->pattern, "/messages") == 0)
            nx_router_add(e->mcp_router, d->method, d->pattern, (void *)d, NULL);
    }
    /* DNS-rebinding protection: loopback names plus the addresses we were told to bind. */
    size_t nh = 0;
    for (; nx_mcp_loopback_hosts[nh] != NULL; nh++)
        e->mcp_allowed_hosts[nh] = nx_mcp_loopback_hosts[nh];
    const nx_listen_config_t *binds[2] = {&c->mcp, &c->rest};
    for (size_t i = 0; i < 2; i++) {
        const char *h = binds[i]->host;
        if (h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0) continue;
        snprintf(e->mcp_host_storage[i], sizeof(e->mcp_host_storage[i]), "%s", h);
        e->mcp_allowed_hosts[nh++] = e->mcp_host_storage[i];
    }
    /* mcp.allowed_hosts: names a reverse proxy or a DNS name in front of nexus sends. */
    snprintf(e->mcp_hosts_config, sizeof(e->mcp_hosts_config), "%s", c->mcp_limits.allowed_hosts);
    char *save = NULL;
    const size_t max_hosts = sizeof(e->mcp_allowed_hosts) / sizeof(e->mcp_allowed_hosts[0]) - 1;
    for (char *h = strtok_r(e->mcp_hosts_config, ",", &save); h != NULL && nh < max_hosts;
         h = strtok_r(NULL, ",", &save))
        e->mcp_allowed_hosts[nh++] = h;
    e->mcp_allowed_hosts[nh] = NULL;
    e->mcp = nx_mcp_server_new("nexus", NX_VERSION);
    if (e->mcp == NULL || (rc = nx_mcp_register_builtin_tools(e, c->debug_routes)) < 0) {
        rc = rc < 0 ? rc : -ENOMEM;
        goto fail;
    }
    if ((rc = nx_events_new(e)) < 0) goto fail;
    if ((rc = start_backends(e, c)) < 0) goto fail;
    if ((rc = setup_cache(e, c)) < 0) goto fail;
    char wf_err[512];
    if ((rc = nx_executions_setup(e, wf_err, sizeof(wf_err))) < 0) {
        nx_log_error("workflows: %s", wf_err);
        goto fail;
    }
    json_t *doc = nx_openapi_document(e->rest_router, c);
    e->openapi_json = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);
    *out = e;
    return 0;
fail:
    nx_engine_free(e);
    return rc;
}

void nx_engine_free(nx_engine_t *e) {
    if (e == NULL) return;
    /* Every thread first: a shard still running may post to one that has stopped. */
    for (uint32_t i = 0; e->shards != NULL && i < e->shard_count; i++)
        if (e->shards[i] != NULL) nx_shard_join(e->shards[i]->shard);
    for (uint32_t i = 0; e->shards != NULL && i < e->shard_count; i++) {
        nx_engine_shard_t *es = e->shards[i];
        if (es == NULL) continue;
        nx_shard_join_free(es->shard);
        nx_config_snapshot_unref(es->config);
        free(es);
    }
    for (uint32_t i = 0; e->rest_fds != NULL && i < e->shard_count; i++) {
        /* Sockets never handed to a listener (start failed) are closed here. */
        if (e->rest_fds[i] >= 0 && (e->shards == NULL || e->shards[i] == NULL))
            close(e->rest_fds[i]);
        if (e->mcp_fds[i] >= 0 && (e->shards == NULL || e->shards[i] == NULL)) close(e->mcp_fds[i]);
    }
    free(e->shards);
    free(e->rest_fds);
    free(e->mcp_fds);
    nx_router_free(e->rest_router);
    nx_router_free(e->mcp_router);
    free(e->openapi_json);
    nx_executions_free(e);
    nx_events_free(e);
    nx_tool_cache_free(e->tool_cache);
    nx_backends_free(e->backends);
    nx_mcp_server_free(e->mcp);
    nx_loop_free(e->control);
    nx_config_snapshot_unref(e->config);
    free(e);
}

/* Binds one SO_REUSEPORT socket per shard; the first one resolves port 0 for the rest. */
static int bind_front(nx_engine_t *e, const nx_listen_config_t *lc, int *fds, uint16_t *bound,
                      const char *what) {
    if (!lc->enabled) return 0;
    uint16_t port = lc->port;
    for (uint32_t i = 0; i < e->shard_count; i++) {
        int fd = nx_listen_tcp(lc->host, port, 4096, &port);
        if (fd < 0) {
            nx_log_error("cannot listen on %s:%u for %s: %s", lc->host, lc->port, what,
                         strerror(-fd));
            return fd;
        }
        fds[i] = fd;
    }
    *bound = port;
    return 0;
}

uint64_t nx_engine_mcp_sessions(const nx_engine_t *e) {
    uint64_t sessions = 0;
    for (uint32_t i = 0; i < e->shard_count; i++)
        sessions += __atomic_load_n(&e->shards[i]->sessions.count, __ATOMIC_RELAXED);
    return sessions;
}

double nx_engine_uptime_seconds(const nx_engine_t *e) {
    return (double)(nx_loop_clock_ns() / 1000000u - e->start_ms) / 1000.0;
}

void nx_engine_metrics_view(const nx_engine_t *e, nx_metrics_view_t *v,
                            const nx_shard_metrics_t **shard_metrics,
                            const nx_net_stats_t **net_stats) {
    for (uint32_t i = 0; i < e->shard_count; i++) {
        shard_metrics[i] = &e->shards[i]->metrics;
        net_stats[i] = &e->shards[i]->shard->stats;
    }
    memset(v, 0, sizeof(*v));
    v->shards = shard_metrics;
    v->net = net_stats;
    v->shard_count = e->shard_count;
    v->route_names = e->route_names;
    uint32_t n = 0;
    while (n < NX_METRICS_MAX_ROUTES && e->route_names[n] != NULL)
        n++;
    v->route_count = n;
    v->version = NX_VERSION;
    v->uptime_seconds = nx_engine_uptime_seconds(e);
}

static void on_control_wake(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_engine_t *e = nx_container_of(op, nx_engine_t, control_wake);
    e->stop_requested = true;
}

int nx_engine_run_stdio(nx_engine_t *e) {
    e->stdio_mode = true;
    return nx_engine_run(e);
}

int nx_engine_run(nx_engine_t *e) {
    const nx_config_t *c = &e->config->config;
    e->control_wake.cb = on_control_wake;
    e->start_ms = nx_loop_clock_ns() / 1000000u;
    e->started_at = (int64_t)time(NULL);

    /* Signals are read from a signalfd by the control thread only: block them everywhere
     * before any shard thread exists (threads inherit the mask). */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 0;
    if (!e->stdio_mode) {
        rc = bind_front(e, &c->rest, e->rest_fds, &e->rest_port, "REST");
        if (rc == 0) rc = bind_front(e, &c->mcp, e->mcp_fds, &e->mcp_port, "MCP");
    }
    if (rc < 0) return 1;

    nx_loop_opts_t lo = {.entries = 64};
    if ((rc = nx_loop_new(&lo, &e->control)) < 0) {
        nx_log_error("cannot create the control ring: %s", strerror(-rc));
        return 1;
    }
    e->ring_mode = nx_loop_mode(e->control);
    for (uint32_t i = 0; i < e->shard_count; i++) {
        nx_shard_opts_t so = {.ring_entries = 1024,
                              .buf_count = 1024,
                              .buf_size = 8192,
                              .mailbox_capacity = 1024,
                              .on_start = on_shard_start,
                              .on_stop = on_shard_stop,
                              .user = e};
        nx_shard_t *s;
        if ((rc = nx_shard_start((int)i, &so, &s)) < 0) {
            nx_log_error("cannot start shard %u: %s", i, strerror(-rc));
            /* Stop the shards already running before giving up. */
            e->draining = true;
            for (uint32_t j = 0; j < i; j++) {
                nx_msg_t *m = make_drain(e);
                if (m && nx_shard_post(e->shards[j]->shard, e->control, m) < 0) free(m);
            }
            return 1;
        }
    }
    if (e->stdio_mode)
        nx_log_info("nexus %s serving MCP on stdio; ring %s", NX_VERSION, e->ring_mode);
    else
        nx_log_info("nexus %s listening: rest %s:%u, mcp %s (%s:%u); %u shards, ring %s",
                    NX_VERSION, c->rest.host, e->rest_port, c->mcp.enabled ? "serving" : "off",
                    c->mcp.host, e->mcp_port, e->shard_count, e->ring_mode);

    control_t ctl = {.e = e};
    ctl.sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (ctl.sfd < 0) {
        nx_log_error("signalfd: %s", strerror(errno));
        post_to_all(e, make_drain);
        return 1;
    }
    arm_signal_read(&ctl);
    while (!ctl.stop && !e->stop_requested) {
        if (nx_loop_run_once(e->control, -1) < 0) break;
    }
    /* Joining waits for every shard to finish its drain (bounded by shutdown.grace). */
    for (uint32_t i = 0; i < e->shard_count; i++) {
        pthread_join(e->shards[i]->shard->thread, NULL);
        e->shards[i]->shard->thread = 0;
    }
    close(ctl.sfd);
    nx_log_info("stopped");
    return 0;
}
