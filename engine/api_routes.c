/* The REST routes of the foundation: health, readiness, status, statistics, Prometheus metrics,
 * the OpenAPI document generated from the route table, the docs page, a plaintext route for
 * benchmarks, and test-only /debug routes. */
#include "engine.h"
#include "json_write.h"

#include "backends.h"
#include "cache_view.h"
#include "connections.h"
#include "events.h"
#include "executions.h"
#include "log.h"
#include "mcp_admin.h"
#include "mcp_http.h"
#include "mcp_ws.h"
#include "nexus/errors.h"
#include "rest_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void nx_respond_json(nx_http_conn_t *hc, int status, json_t *j) {
    size_t len = 0;
    char *body = nx_json_write(j, 10, &len);
    json_decref(j);
    if (body == NULL) {
        nx_http_respond_error(hc, 500, "could not encode the response", NULL);
        return;
    }
    nx_http_respond(hc, status, "application/json", body, len, NULL);
    free(body);
}

static json_t *channels_json(nx_engine_shard_t *es) {
    nx_engine_t *e = es->engine;
    const nx_config_t *c = &es->config->config;
    /* The listeners of the shard answering: off when disabled, failed to start, or draining. */
    json_t *rest = json_pack("{s:b, s:s, s:i}", "listening", es->rest.listening && !e->draining,
                             "host", c->rest.host, "port", (int)e->rest_port);
    json_t *mcp = json_pack("{s:b, s:s, s:i, s:s}", "listening", es->mcp.listening && !e->draining,
                            "host", c->mcp.host, "port", (int)e->mcp_port, "state",
                            c->mcp.enabled ? "serving" : "disabled");
    return json_pack("{s:o, s:o}", "rest", rest, "mcp", mcp);
}

static void route_health(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                         const nx_route_match_t *m) {
    nx_engine_t *e = es->engine;
    bool draining = es->draining || e->draining;
    json_t *j =
        json_pack("{s:s, s:s, s:f, s:i, s:s, s:o, s:o, s:o, s:o}", "status",
                  draining ? "draining" : "ok", "version", NX_VERSION, "uptime_seconds",
                  nx_engine_uptime_seconds(e), "shards", (int)e->shard_count, "ring_mode",
                  e->ring_mode, "channels", channels_json(es), "backends",
                  nx_backends_health(e->backends), "workflows", nx_executions_health(e), "cache",
                  nx_cache_health(e));
    if (j != NULL) json_object_set_new(j, "events", nx_events_health(e));
    nx_respond_json(hc, draining ? 503 : 200, j);
}

static void route_ready(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                        const nx_route_match_t *m) {
    bool draining = es->draining || es->engine->draining;
    if (draining) {
        nx_http_respond_error(hc, 503, "draining: not accepting new work", "Retry-After: 1\r\n");
        return;
    }
    nx_respond_json(hc, 200, json_pack("{s:b}", "ready", 1));
}

/* The /stats document, built from every shard's counters. */
static json_t *stats_json(nx_engine_t *e) {
    const nx_shard_metrics_t *sm[e->shard_count];
    const nx_net_stats_t *ns[e->shard_count];
    nx_metrics_view_t v;
    nx_engine_metrics_view(e, &v, sm, ns);
    return nx_metrics_to_json(&v);
}

static void route_status(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                         const nx_route_match_t *m) {
    nx_engine_t *e = es->engine;
    const nx_config_t *c = &es->config->config;
    json_t *stats = stats_json(e);
    json_t *connections = json_object();
    static const char *const keys[] = {"connections_open", "connections_accepted",
                                       "connections_rejected", "bytes_in", "bytes_out"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        json_object_set(connections, keys[i], json_object_get(stats, keys[i]));
    json_t *j =
        json_pack("{s:s, s:s, s:i, s:f, s:I, s:i, s:s, s:s, s:o, s:o, s:O, s:o}", "status",
                  es->draining ? "draining" : "ok", "version", NX_VERSION, "pid", (int)getpid(),
                  "uptime_seconds", nx_engine_uptime_seconds(e), "started_at",
                  (json_int_t)e->started_at, "shards", (int)e->shard_count, "ring_mode",
                  e->ring_mode, "config_source", c->source[0] ? c->source : "defaults", "channels",
                  channels_json(es), "connections", connections, "per_shard",
                  json_object_get(stats, "per_shard"), "config", nx_config_to_json(c));
    json_decref(stats);
    nx_respond_json(hc, 200, j);
}

static void route_stats(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                        const nx_route_match_t *m) {
    nx_respond_json(hc, 200, stats_json(es->engine));
}

static void route_metrics(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                          const nx_route_match_t *m) {
    nx_engine_t *e = es->engine;
    const nx_shard_metrics_t *sm[e->shard_count];
    const nx_net_stats_t *ns[e->shard_count];
    nx_metrics_view_t v;
    nx_engine_metrics_view(e, &v, sm, ns);
    nx_buf_t out;
    nx_buf_init(&out);
    if (nx_metrics_format_prometheus(&v, &out) < 0 || nx_backends_metrics(e->backends, &out) < 0 ||
        nx_cache_metrics(e, &out) < 0) {
        nx_buf_dispose(&out);
        nx_http_respond_error(hc, 500, "could not format metrics", NULL);
        return;
    }
    nx_http_respond(hc, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len, NULL);
    nx_buf_dispose(&out);
}

static void route_openapi(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                          const nx_route_match_t *m) {
    const char *doc = es->engine->openapi_json;
    nx_http_respond(hc, 200, "application/json", doc, strlen(doc), NULL);
}

/* A self-contained page (no CDN: nexus often runs where there is no internet) that renders
 * /openapi.json and lets a reader try the GET routes. */
static const char docs_html[] =
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>nexus API</title>"
    "<meta name=viewport content='width=device-width,initial-scale=1'><style>"
    "body{font:15px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}"
    "header{background:#1d2330;color:#fff;padding:16px 32px}h1{margin:0;font-size:22px}"
    "main{max-width:960px;margin:24px auto;padding:0 16px}"
    ".op{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:10px 0;padding:12px "
    "16px}"
    ".m{display:inline-block;min-width:64px;text-align:center;border-radius:4px;color:#fff;"
    "font-weight:600;font-size:12px;padding:2px 6px;margin-right:8px}"
    ".get{background:#2f7d32}.post{background:#1565c0}.delete{background:#c62828}"
    ".put{background:#ef6c00}.patch{background:#6a1b9a}code{font-size:14px}"
    ".tag{color:#667;font-size:12px;margin-left:8px}button{margin-top:8px}"
    "pre{background:#1d2330;color:#d7e0ee;padding:10px;border-radius:6px;overflow:auto;"
    "max-height:320px;white-space:pre-wrap}</style></head><body><header><h1 id=t>nexus API</h1>"
    "<div id=d></div></header><main id=ops>Loading /openapi.json…</main><script>"
    "fetch('/openapi.json').then(r=>r.json()).then(doc=>{"
    "document.getElementById('t').textContent=doc.info.title+' '+doc.info.version;"
    "document.getElementById('d').textContent=doc.info.description||'';"
    "const ops=document.getElementById('ops');ops.textContent='';"
    "for(const [path,item] of Object.entries(doc.paths)){for(const [method,op] of "
    "Object.entries(item)){const div=document.createElement('div');div.className='op';"
    "const head=document.createElement('div');const m=document.createElement('span');"
    "m.className='m '+method;m.textContent=method.toUpperCase();const c="
    "document.createElement('code');c.textContent=path;const tag=document.createElement('span');"
    "tag.className='tag';tag.textContent=(op.tags||[]).join(', ');head.append(m,c,tag);"
    "const s=document.createElement('div');s.textContent=op.summary||'';div.append(head,s);"
    "if(method==='get'&&!path.includes('{')){const b=document.createElement('button');"
    "b.textContent='Try it';const pre=document.createElement('pre');pre.hidden=true;"
    "b.onclick=()=>fetch(path).then(async r=>{pre.hidden=false;pre.textContent=r.status+' '+"
    "r.statusText+'\\n\\n'+await r.text()});div.append(b,pre)}ops.append(div)}}})"
    ".catch(e=>{document.getElementById('ops').textContent='Could not load /openapi.json: '+e})"
    "</script></body></html>\n";

static void route_docs(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                       const nx_route_match_t *m) {
    nx_http_respond(hc, 200, "text/html; charset=utf-8", docs_html, sizeof(docs_html) - 1, NULL);
}

static void route_index(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                        const nx_route_match_t *m) {
    nx_respond_json(hc, 200,
                    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", "nexus", "version",
                              NX_VERSION, "docs", "/docs", "openapi", "/openapi.json", "health",
                              "/health", "metrics", "/metrics"));
}

static void route_plaintext(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                            const nx_route_match_t *m) {
    static const char body[] = "Hello, World!";
    nx_http_respond(hc, 200, "text/plain", body, sizeof(body) - 1, NULL);
}

/* ---- test-only routes (debug_routes: true) ---- */

/* Reads the first path parameter as a decimal integer in [0, max]; false when it is not one. */
static bool param_uint(const nx_route_match_t *m, unsigned long long max, unsigned long long *out) {
    char num[24];
    nx_str_t v = m->params[0];
    if (m->param_count == 0 || v.n == 0 || v.n >= sizeof(num)) return false;
    memcpy(num, v.p, v.n);
    num[v.n] = '\0';
    char *end = NULL;
    *out = strtoull(num, &end, 10);
    return num[0] >= '0' && num[0] <= '9' && *end == '\0' && *out <= max;
}

/* A response delayed on the shard's timer wheel: a stand-in for a slow backend in the drain
 * and timeout tests. Owned by itself; freed when it fires or when the client goes away. */
typedef struct delayed_reply {
    nx_timer_t timer;
    nx_http_conn_t *hc;
    uint64_t ms;
} delayed_reply_t;

static void on_delay_done(nx_timer_t *t) {
    delayed_reply_t *d = nx_container_of(t, delayed_reply_t, timer);
    nx_http_conn_t *hc = d->hc;
    uint64_t ms = d->ms;
    free(d);
    nx_respond_json(hc, 200, json_pack("{s:I}", "delayed_ms", (json_int_t)ms));
}

static void on_delay_abort(nx_http_conn_t *hc, void *arg) {
    delayed_reply_t *d = arg;
    nx_timer_stop(&d->timer);
    free(d);
}

static void route_debug_delay(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                              const nx_route_match_t *m) {
    unsigned long long ms;
    if (!param_uint(m, 600000, &ms)) {
        nx_http_respond_error(hc, 400, "ms must be an integer between 0 and 600000", NULL);
        return;
    }
    delayed_reply_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    d->hc = hc;
    d->ms = ms;
    nx_timer_init(&d->timer, on_delay_done);
    nx_http_defer(hc, on_delay_abort, d);
    nx_shard_timer_start(es->shard, &d->timer, ms);
}

/* A streamed text/event-stream response of {n} events 20 ms apart: exercises chunked streaming,
 * which the SSE and MCP channels build on. Freed when it ends or the client goes away. */
typedef struct debug_stream {
    nx_timer_t timer;
    nx_http_conn_t *hc;
    nx_shard_t *shard;
    uint32_t sent, total;
} debug_stream_t;

static void on_stream_tick(nx_timer_t *t) {
    debug_stream_t *d = nx_container_of(t, debug_stream_t, timer);
    if (d->sent == d->total) {
        nx_http_stream_end(d->hc);
        free(d);
        return;
    }
    char event[96];
    int n = snprintf(event, sizeof(event), "id: %u\nevent: tick\ndata: {\"n\":%u}\n\n", d->sent,
                     d->sent);
    d->sent++;
    nx_http_stream_write(d->hc, event, (size_t)n);
    nx_shard_timer_start(d->shard, &d->timer, 20);
}

static void on_stream_abort(nx_http_conn_t *hc, void *arg) {
    debug_stream_t *d = arg;
    nx_timer_stop(&d->timer);
    free(d);
}

static void route_debug_stream(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                               const nx_route_match_t *m) {
    unsigned long long n;
    if (!param_uint(m, 10000, &n)) {
        nx_http_respond_error(hc, 400, "n must be an integer between 0 and 10000", NULL);
        return;
    }
    debug_stream_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        nx_http_respond_error(hc, 503, "out of memory", "Retry-After: 1\r\n");
        return;
    }
    d->hc = hc;
    d->shard = es->shard;
    d->total = (uint32_t)n;
    nx_timer_init(&d->timer, on_stream_tick);
    nx_http_stream_begin(hc, 200, "text/event-stream", "Cache-Control: no-cache\r\n",
                         on_stream_abort, d);
    nx_shard_timer_start(es->shard, &d->timer, 0);
}

/* A raw echo protocol behind "Upgrade: echo": tests the HTTP -> other-protocol hand-off that
 * WebSocket uses, including bytes the client sent right behind the upgrade request. */
static void echo_on_data(nx_conn_t *c, char *data, size_t len) {
    nx_buf_append(nx_conn_out(c), data, len);
    nx_conn_flush(c);
}
static void echo_on_eof(nx_conn_t *c, int err) {
    nx_conn_close_graceful(c, 0);
}
static const nx_conn_ops_t echo_ops = {.on_data = echo_on_data, .on_eof = echo_on_eof};

static void route_debug_upgrade(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                                const nx_route_match_t *m) {
    if (!req->upgrade || !nx_str_eq_lit_nocase(nx_http_request_header(req, "Upgrade"), "echo")) {
        nx_http_respond_error(hc, 426, "this route needs Connection: upgrade, Upgrade: echo",
                              "Upgrade: echo\r\n");
        return;
    }
    nx_http_respond(hc, 101, NULL, NULL, 0, "Upgrade: echo\r\nConnection: Upgrade\r\n");
    nx_http_upgrade(hc, &echo_ops, NULL);
}

static void route_debug_echo(nx_engine_shard_t *es, nx_http_conn_t *hc, nx_http_request_t *req,
                             const nx_route_match_t *m) {
    nx_str_t ct = nx_http_request_header(req, "Content-Type");
    char type[128] = "application/octet-stream";
    if (ct.p != NULL && ct.n < sizeof(type)) {
        memcpy(type, ct.p, ct.n);
        type[ct.n] = '\0';
    }
    nx_http_respond(hc, 200, type, req->body.p, req->body.n, NULL);
}

const nx_route_def_t nx_rest_routes[] = {
    {"GET", "/", route_index, "Entry point: links to docs, OpenAPI, health and metrics", "meta",
     "application/json", NULL, false},
    {"GET", "/health", route_health,
     "Liveness: status, version, uptime, shards and per-channel listening state", "operations",
     "application/json", NULL, false},
    {"GET", "/ready", route_ready, "Readiness: 200 while accepting work, 503 while draining",
     "operations", "application/json", NULL, false},
    {"GET", "/status", route_status,
     "Process status: pid, ring mode, connections per shard, effective configuration", "operations",
     "application/json", NULL, false},
    {"GET", "/stats", route_stats,
     "Counters as JSON: requests by route and status, latency, "
     "connections and bytes, totals and per shard",
     "operations", "application/json", NULL, false},
    {"GET", "/metrics", route_metrics, "Prometheus text exposition of every metric", "operations",
     "text/plain", NULL, false},
    {"GET", "/openapi.json", route_openapi, "This OpenAPI 3.1 document", "meta", "application/json",
     NULL, false},
    {"GET", "/docs", route_docs, "An HTML page rendering the OpenAPI document", "meta", "text/html",
     NULL, false},
    {"GET", "/plaintext", route_plaintext, "A fixed 'Hello, World!' for load tests", "meta",
     "text/plain", NULL, false},
    {"POST", "/mcp", nx_mcp_route_post,
     "MCP Streamable HTTP: one JSON-RPC message in; a JSON response, an event stream ending "
     "with the response, or 202",
     "mcp", "application/json", "application/json", false},
    {"GET", "/mcp", nx_mcp_route_get,
     "MCP Streamable HTTP: the session's standalone event stream, resumption with "
     "Last-Event-ID, or a WebSocket upgrade",
     "mcp", "text/event-stream", NULL, false},
    {"GET", "/sse", nx_mcp_route_sse,
     "Legacy MCP HTTP+SSE transport: an event stream announcing its /messages endpoint", "mcp",
     "text/event-stream", NULL, false},
    {"POST", "/messages", nx_mcp_route_messages,
     "Legacy MCP HTTP+SSE transport: one JSON-RPC message for session ?sessionId=; 202, the "
     "reply arrives on the stream",
     "mcp", "application/json", "application/json", false},
    {"GET", "/api/v1/mcp/clients", nx_mcp_route_clients,
     "Connected MCP clients: WebSocket connections and live sessions, over all shards", "mcp",
     "application/json", NULL, false},
    {"POST", "/api/v1/mcp/broadcast", nx_mcp_route_broadcast,
     "Sends a notification {method, params} to every connected MCP client; answers how many "
     "received it",
     "mcp", "application/json", "application/json", false},
    {"GET", "/tools", nx_rest_route_tools_list,
     "Every tool of the MCP catalog (native and from backends): {tools: [Tool], count}", "tools",
     "application/json", NULL, false},
    {"POST", "/tools/{name}", nx_rest_route_tools_call,
     "Calls tool {name} with the JSON object body as its arguments: 200 with the CallToolResult "
     "(isError results too), 400 bad body, 404 unknown tool, 503 + Retry-After when the backend "
     "is failing or full, 502 for other errors",
     "tools", "application/json", "application/json", false},
    {"GET", "/api/v1/connections", nx_route_connections,
     "The backends as connections: {connections: [{id, transport, status, latency_ms, "
     "success_rate, breaker, instances}], count}",
     "connections", "application/json", NULL, false},
    {"GET", "/api/v1/connections/{id}/metrics", nx_route_connection_metrics,
     "One connection's status, latency (min/avg/max), success rate, breaker and instances; 404 "
     "for an unknown id",
     "connections", "application/json", NULL, false},
    {"POST", "/api/v1/connections/{id}/test", nx_route_connection_test,
     "Pings the backend now through one instance: {id, ok, latency_ms | error}; 404 for an "
     "unknown id",
     "connections", "application/json", NULL, false},
    {"GET", "/api/workflows", nx_route_workflows_list,
     "The workflows: {workflows: [{name, description, input_schema, channels, deadline_ms, tool, "
     "steps}], count}",
     "workflows", "application/json", NULL, false},
    {"POST", "/api/workflows/{name}", nx_route_workflow_run,
     "Runs workflow {name} with the JSON object body as its inputs and answers when it ends: "
     "the execution record; 200 succeeded, 400 invalid inputs, 404 unknown workflow, 502 "
     "failed, 504 deadline, 409 cancelled, 503 + Retry-After when too many run",
     "workflows", "application/json", "application/json", false},
    {"GET", "/api/executions", nx_route_executions_list,
     "The newest executions: {executions: [{id, workflow, status}], count, running}",
     "workflows", "application/json", NULL, false},
    {"POST", "/api/executions", nx_route_executions_start,
     "Starts {workflow, inputs, wait}: 202 {id, links} at once, or with wait: true the record "
     "when it ends (status codes as POST /api/workflows/{name})",
     "workflows", "application/json", "application/json", false},
    {"GET", "/api/executions/{id}", nx_route_execution_get,
     "An execution's record: status, per-step status, attempts, timing and cache use, result "
     "or error; 404 once expired",
     "workflows", "application/json", NULL, false},
    {"DELETE", "/api/executions/{id}", nx_route_execution_cancel,
     "Cancels a running execution: 202; 409 when it already ended; 404 unknown",
     "workflows", "application/json", NULL, false},
    {"GET", "/events", nx_route_events,
     "Server-sent events (id, event, data): execution and backend.health events; ?execution=ID "
     "for one execution (replayed from its start, the stream ends after its terminal event "
     "unless ?follow=1); resume with Last-Event-ID or ?last_event_id=N; 404 unknown execution, "
     "503 + Retry-After when full",
     "events", "text/event-stream", NULL, false},
    {"GET", "/ws", nx_mcp_route_ws,
     "WebSocket: MCP (subprotocol mcp), one JSON-RPC message per text frame; or the Events "
     "channel (subprotocol nexus.events, or ?events=1): subscribe/unsubscribe messages, event "
     "frames",
     "mcp", "application/json", NULL, false},
    {"DELETE", "/mcp", nx_mcp_route_delete, "Ends the MCP session named by Mcp-Session-Id", "mcp",
     "application/json", NULL, false},
    {"GET", "/debug/delay/{ms}", route_debug_delay, "Test only: answers after {ms} milliseconds",
     "debug", "application/json", NULL, true},
    {"GET", "/debug/stream/{n}", route_debug_stream,
     "Test only: streams {n} server-sent events 20 ms apart", "debug", "text/event-stream", NULL,
     true},
    {"GET", "/debug/upgrade", route_debug_upgrade,
     "Test only: switches to a raw echo protocol (Upgrade: echo)", "debug", "text/plain", NULL,
     true},
    {"POST", "/debug/echo", route_debug_echo, "Test only: echoes the request body", "debug",
     "application/octet-stream", "application/octet-stream", true},
    {"POST", "/debug/rest/{backend}", nx_backends_route_debug_rest,
     "Test only: sends {method, path, headers, body, timeout_ms, retry} to rest backend "
     "{backend}; answers {response, error, attempts}",
     "debug", "application/json", "application/json", true},
    {"POST", "/debug/events", nx_route_debug_events,
     "Test only: publishes {type, data, count} synthetic events on the Events channel", "debug",
     "application/json", "application/json", true},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, false},
};

int nx_routes_register(nx_router_t *r, const nx_route_def_t *defs, const nx_config_t *c) {
    for (const nx_route_def_t *d = defs; d->method != NULL; d++) {
        if (d->debug_only && !c->debug_routes) continue;
        int rc = nx_router_add(r, d->method, d->pattern, (void *)d, NULL);
        if (rc < 0) return rc;
    }
    return 0;
}

static json_t *error_response(const char *description) {
    return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", description, "content",
                     "application/json", "schema", "$ref", "#/components/schemas/Error");
}

json_t *nx_openapi_document(const nx_router_t *r, const nx_config_t *c) {
    json_t *paths = json_object();
    for (uint32_t i = 0; i < nx_router_count(r); i++) {
        const nx_route_t *rt = nx_router_route(r, i);
        const nx_route_def_t *d = rt->handler;
        json_t *item = json_object_get(paths, d->pattern);
        if (item == NULL) {
            item = json_object();
            json_object_set_new(paths, d->pattern, item);
        }
        char lower[16];
        size_t n = strlen(d->method);
        for (size_t k = 0; k <= n && k < sizeof(lower); k++)
            lower[k] = (char)(d->method[k] >= 'A' && d->method[k] <= 'Z' ? d->method[k] + 32
                                                                         : d->method[k]);
        json_t *ok_content = json_object();
        json_object_set_new(
            ok_content, d->produces,
            json_pack("{s:{s:s}}", "schema", "type",
                      strcmp(d->produces, "application/json") == 0 ? "object" : "string"));
        json_t *responses =
            json_pack("{s:{s:s, s:o}}", "200", "description", "Success", "content", ok_content);
        json_object_set_new(responses, "400", error_response("Malformed request"));
        json_object_set_new(responses, "404", error_response("No route for this path"));
        json_object_set_new(responses, "405", error_response("Method not allowed (see Allow)"));
        if (strcmp(d->pattern, "/health") == 0 || strcmp(d->pattern, "/ready") == 0)
            json_object_set_new(responses, "503", error_response("Draining"));
        json_t *op = json_pack("{s:s, s:[s], s:o}", "summary", d->summary, "tags", d->tag,
                               "responses", responses);
        char opid[96];
        snprintf(opid, sizeof(opid), "%s", lower);
        size_t o = strlen(opid);
        bool upper = true;
        for (const char *p = d->pattern; *p && o + 1 < sizeof(opid); p++) {
            if (*p == '/' || *p == '.' || *p == '{' || *p == '}' || *p == '_') {
                upper = true;
                continue;
            }
            opid[o++] = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
            upper = false;
        }
        opid[o] = '\0';
        if (strcmp(d->pattern, "/") == 0) snprintf(opid, sizeof(opid), "%sIndex", lower);
        json_object_set_new(op, "operationId", json_string(opid));
        /* Path parameters: every {name} segment of the pattern. */
        json_t *params = json_array();
        for (const char *p = strchr(d->pattern, '{'); p != NULL; p = strchr(p + 1, '{')) {
            const char *end = strchr(p, '}');
            if (end == NULL) break;
            json_array_append_new(params, json_pack("{s:s%, s:s, s:b, s:{s:s}}", "name", p + 1,
                                                    (size_t)(end - p - 1), "in", "path", "required",
                                                    1, "schema", "type", "string"));
        }
        if (json_array_size(params) > 0)
            json_object_set_new(op, "parameters", params);
        else
            json_decref(params);
        if (d->request_body != NULL) {
            json_object_set_new(op, "requestBody",
                                json_pack("{s:b, s:{s:{s:{s:s}}}}", "required", 1, "content",
                                          d->request_body, "schema", "type", "string"));
        }
        json_object_set_new(item, lower, op);
    }
    char url[300];
    snprintf(url, sizeof(url), "http://%s:%u", c->rest.host, c->rest.port);
    return json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:{s:{s:{s:s, s:{s:{s:s, s:{s:{s:s}, s:{s:s}},"
        " s:[s, s]}}, s:[s]}}}}",
        "openapi", "3.1.0", "info", "title", "nexus", "version", NX_VERSION, "description",
        "REST API of the nexus coordination engine. Errors are JSON: "
        "{\"error\":{\"code\":<HTTP status>,\"message\":<what was wrong>}}.",
        "servers", "url", url, "paths", paths, "components", "schemas", "Error", "type", "object",
        "properties", "error", "type", "object", "properties", "code", "type", "integer", "message",
        "type", "string", "required", "code", "message", "required", "error");
}
