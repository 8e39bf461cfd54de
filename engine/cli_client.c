/* `nexus client`: the gateway's MCP client on the command line. It runs a minimal nexus in this
 * process (one shard, no listeners, the usual engine start and drain) whose only backend is the
 * target server, and acts as that nexus's own front-end client: once the backend has listed its
 * catalog, initialize and then tools/list or tools/call go to the MCP server core on the shard
 * under a peer of ours, so a request takes the gateway's real path (catalog, routing, retries,
 * the Streamable HTTP or stdio link), and what the server asks back (elicitation, sampling,
 * roots) reaches us through that peer and is answered here, without a human. */
#include "cli_client.h"

#include "backends.h"
#include "config.h"
#include "engine.h"
#include "jsonrpc.h"
#include "log.h"
#include "mcp_server.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKEND_NAME "target"
#define DEFAULT_TIMEOUT_MS 30000u
#define POLL_MS 10u
#define MAX_LIST_PAGES 10000u /* tools/list pages followed at most */
#define MAX_RETRIES 9u        /* servers[].retry.attempts is at most 10 */

static const char usage[] =
    "Usage:\n"
    "  nexus client [options] URL list\n"
    "  nexus client [options] URL call TOOL [--args JSON]\n"
    "  nexus client [options] list|call TOOL... -- COMMAND [ARG...]     (stdio)\n"
    "\n"
    "Connects to the MCP server at URL (over HTTP) or to the one COMMAND starts (stdio)\n"
    "through an in-process nexus, then prints the names of its tools, one per line, or calls\n"
    "TOOL and prints the CallToolResult as JSON. Before \"--\", words may come in any order.\n"
    "\n"
    "Options:\n"
    "  -t, --transport T     http (Streamable HTTP, falling back to legacy HTTP+SSE; the\n"
    "                        default for http:// URLs), sse (legacy HTTP+SSE: URL is the\n"
    "                        event stream, e.g. http://host/sse) or stdio (the default\n"
    "                        after --)\n"
    "      --args JSON       the tool's arguments, a JSON object (default {})\n"
    "      --json            list: print {\"tools\": [...]} with every field, not only names\n"
    "      --timeout T       bound on connecting and on the call (default 30s; 500ms, 2m...)\n"
    "      --retries N       retry a call the server could not answer N times (default 0)\n"
    "  -H, --header H        http, sse: send \"Name: value\" with every request (repeatable)\n"
    "      --elicit JSON     values for elicitation requests, over the schema's defaults\n"
    "      --elicit-action A accept (default), decline or cancel elicitation requests\n"
    "      --sample TEXT     answer sampling requests with TEXT (default: refuse them)\n"
    "  -v, --verbose         log more: -v info (the server's stderr too), -vv debug\n"
    "  -h, --help\n"
    "\n"
    "Requests from the server: an elicitation is accepted with each field's default from the\n"
    "requested schema (SEP-1034) overlaid with --elicit, or declined when a required field has\n"
    "no value (URL-mode elicitation is declined); sampling is refused unless --sample is given;\n"
    "roots/list answers the working directory. Progress and log messages go to stderr.\n"
    "\n"
    "Exit status: 0 ok; 1 a JSON-RPC error, a tool error (isError), an unreachable server or a\n"
    "timeout; 2 usage error.\n";

typedef enum cli_action { ACTION_NONE, ACTION_LIST, ACTION_CALL } cli_action_t;

/* One run of the command. Options are set by main; the rest belongs to the shard thread while
 * the engine runs, and to main again once it has stopped. */
typedef struct cli {
    cli_action_t action;
    nx_server_transport_t transport;
    bool transport_given;
    const char *url;  /* http */
    char **command;   /* stdio: the words after "--" (borrowed from argv) */
    const char *tool; /* call */
    json_t *args;     /* call: the arguments object */
    json_t *elicit;   /* values for elicitations, or NULL */
    const char *elicit_action;
    const char *sample;   /* the sampling reply, or NULL */
    const char **headers; /* NULL-terminated */
    size_t header_count;
    bool json;
    uint32_t timeout_ms, retries;
    int verbose;
    char target[512];                     /* the URL or the command line, for messages */
    char prefix[NX_SERVER_NAME_MAX + 16]; /* "target__": our tools' public names start so */

    nx_engine_t *e;
    nx_engine_shard_t *es;
    nx_mcp_peer_t peer;
    bool peer_live;
    nx_timer_t poll_timer;   /* waits for the backend; then watches for a signal */
    nx_timer_t answer_timer; /* sends our answers to the server's requests */
    uint64_t deadline_ms;
    json_t *answers;        /* responses waiting for answer_timer */
    nx_mcp_call_t *pending; /* the tools/call in flight, ours to cancel */
    bool done;
    int status;
} cli_t;

/* ---- output ---- */

static void print_json(FILE *f, const json_t *j) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (text != NULL) fprintf(f, "%s\n", text);
    free(text);
    fflush(f);
}

/* <j> as text for a message: strings as they are, the rest as compact JSON (caller frees). */
static char *json_text(const json_t *j) {
    if (json_is_string(j)) return strdup(json_string_value(j));
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Prints the JSON-RPC <error> object, with our public tool name put back to the server's. */
static void print_rpc_error(cli_t *cli, const json_t *error) {
    const char *msg = json_string_value(json_object_get(error, "message"));
    json_int_t code = json_integer_value(json_object_get(error, "code"));
    size_t plen = strlen(cli->prefix);
    const char *at = msg && cli->tool ? strstr(msg, cli->prefix) : NULL;
    while (at != NULL && strncmp(at + plen, cli->tool, strlen(cli->tool)) != 0)
        at = strstr(at + 1, cli->prefix);
    if (at != NULL)
        fprintf(stderr, "nexus client: %.*s%s (JSON-RPC error %lld)\n", (int)(at - msg), msg,
                at + strlen(cli->prefix), (long long)code);
    else
        fprintf(stderr, "nexus client: %s (JSON-RPC error %lld)\n", msg ? msg : "error",
                (long long)code);
}

/* ---- the end ---- */

/* Records the outcome and stops nexus the way `kill -TERM` does: the control thread drains the
 * shard, which ends the backend's session or process. Runs once, on the shard thread. */
static void finish(cli_t *cli, int status) {
    if (cli->done) return;
    cli->done = true;
    cli->status = status;
    nx_timer_stop(&cli->poll_timer);
    nx_timer_stop(&cli->answer_timer);
    if (cli->peer_live) {
        cli->peer_live = false;
        nx_mcp_peer_dispose(&cli->peer);
    }
    kill(getpid(), SIGTERM);
}

static void fail(cli_t *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(cli_t *cli, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nexus client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    finish(cli, 1);
}

/* ---- what the server asks of us (relayed by nexus through our peer) ---- */

/* The answer to elicitation/create <params>: the schema's defaults overlaid with --elicit. */
static json_t *answer_elicitation(cli_t *cli, const json_t *params) {
    const char *message = json_string_value(json_object_get(params, "message"));
    const char *mode = json_string_value(json_object_get(params, "mode"));
    fprintf(stderr, "elicitation: %s\n", message ? message : "(no message)");
    if (strcmp(cli->elicit_action, "accept") != 0) {
        fprintf(stderr, "elicitation: %s (--elicit-action)\n", cli->elicit_action);
        return json_pack("{s:s}", "action", cli->elicit_action);
    }
    if (mode != NULL && strcmp(mode, "form") != 0) {
        const char *url = json_string_value(json_object_get(params, "url"));
        fprintf(stderr, "elicitation: declined: %s mode is not supported here%s%s\n", mode,
                url ? "; the server wanted " : "", url ? url : "");
        return json_pack("{s:s}", "action", "decline");
    }
    const json_t *schema = json_object_get(params, "requestedSchema");
    const json_t *props = json_object_get(schema, "properties");
    json_t *content = json_object();
    const char *key;
    json_t *prop;
    json_object_foreach((json_t *)props, key, prop) {
        json_t *def = json_object_get(prop, "default");
        if (def != NULL) json_object_set(content, key, def);
    }
    if (cli->elicit != NULL) json_object_update(content, cli->elicit);
    size_t i;
    json_t *req;
    json_array_foreach(json_object_get(schema, "required"), i, req) {
        const char *name = json_string_value(req);
        if (name != NULL && json_object_get(content, name) == NULL) {
            fprintf(stderr,
                    "elicitation: declined: required field \"%s\" has no default (give it with "
                    "--elicit)\n",
                    name);
            json_decref(content);
            return json_pack("{s:s}", "action", "decline");
        }
    }
    char *text = json_dumps(content, JSON_COMPACT);
    fprintf(stderr, "elicitation: accept %s\n", text ? text : "{}");
    free(text);
    return json_pack("{s:s, s:o}", "action", "accept", "content", content);
}

/* The working directory as a root: {"uri": "file://<path, percent-encoded>", "name": its last
 * component}; NULL when it cannot be read. */
static json_t *cwd_root(void) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) return NULL;
    size_t n = strlen(cwd);
    char *uri = malloc(7 + n * 3 + 1);
    if (uri == NULL) return NULL;
    char *w = uri + sprintf(uri, "file://");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)cwd[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     strchr("/-._~", c) != NULL;
        w += plain ? sprintf(w, "%c", c) : sprintf(w, "%%%02X", c);
    }
    const char *slash = strrchr(cwd, '/');
    json_t *root = json_pack("{s:s, s:s}", "uri", uri, "name",
                             slash != NULL && slash[1] != '\0' ? slash + 1 : "/");
    free(uri);
    return root;
}

/* Our response to the server's request <method> (<params>): {"result": ...} or {"error": ...}. */
static json_t *answer_request(cli_t *cli, const char *method, const json_t *params) {
    if (strcmp(method, "elicitation/create") == 0)
        return json_pack("{s:o}", "result", answer_elicitation(cli, params));
    if (strcmp(method, "sampling/createMessage") == 0) {
        if (cli->sample == NULL) {
            fprintf(stderr, "sampling: refused (no --sample reply given)\n");
            return json_pack("{s:{s:i, s:s}}", "error", "code", -1, "message",
                             "nexus client has no language model to sample with (it replies "
                             "only with --sample TEXT)");
        }
        fprintf(stderr, "sampling: replying \"%s\"\n", cli->sample);
        return json_pack("{s:{s:s, s:{s:s, s:s}, s:s, s:s}}", "result", "role", "assistant",
                         "content", "type", "text", "text", cli->sample, "model", "nexus-client",
                         "stopReason", "endTurn");
    }
    if (strcmp(method, "roots/list") == 0) {
        json_t *root = cwd_root();
        if (root != NULL) return json_pack("{s:{s:[o]}}", "result", "roots", root);
        return json_pack("{s:{s:i, s:s}}", "error", "code", NX_RPC_INTERNAL_ERROR, "message",
                         "cannot read the working directory");
    }
    if (strcmp(method, "ping") == 0) return json_pack("{s:{}}", "result");
    char m[200];
    snprintf(m, sizeof(m), "Method not found: %.128s", method);
    return json_pack("{s:{s:i, s:s}}", "error", "code", NX_RPC_METHOD_NOT_FOUND, "message", m);
}

static void ignore_reply(void *transport, json_t *msg) {
    (void)transport;
    json_decref(msg);
}

/* Hands our answers to the core, as a transport does with a client's responses (later than
 * the request: a handler never sees its question answered from inside itself). */
static void on_answer_timer(nx_timer_t *t) {
    cli_t *cli = nx_container_of(t, cli_t, answer_timer);
    json_t *answers = cli->answers;
    cli->answers = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(answers, i, a) {
        json_t *result = json_object_get(a, "result");
        nx_rpc_msg_t msg = {.kind = result ? NX_RPC_RESPONSE : NX_RPC_ERROR_RESPONSE,
                            .root = a,
                            .id = json_object_get(a, "id"),
                            .result = result,
                            .error = json_object_get(a, "error")};
        nx_mcp_request_ctx_t ctx = {.reply = ignore_reply, .transport = cli, .peer = &cli->peer};
        if (cli->peer_live) nx_mcp_server_dispatch(cli->e->mcp, &msg, &ctx, NULL);
    }
    json_decref(answers);
}

static void print_notification(cli_t *cli, const char *method, const json_t *params) {
    if (strcmp(method, "notifications/progress") == 0) {
        const json_t *total = json_object_get(params, "total");
        const char *message = json_string_value(json_object_get(params, "message"));
        fprintf(stderr, "progress: %g", json_number_value(json_object_get(params, "progress")));
        if (json_is_number(total)) fprintf(stderr, "/%g", json_number_value(total));
        fprintf(stderr, "%s%s\n", message ? " " : "", message ? message : "");
    } else if (strcmp(method, "notifications/message") == 0) {
        const char *level = json_string_value(json_object_get(params, "level"));
        const char *logger = json_string_value(json_object_get(params, "logger"));
        char *data = json_text(json_object_get(params, "data"));
        fprintf(stderr, "log [%s]%s%s: %s\n", level ? level : "?", logger ? " " : "",
                logger ? logger : "", data ? data : "");
        free(data);
    } else if (cli->verbose > 0) {
        fprintf(stderr, "notification: %s\n", method);
    }
}

/* Everything the core sends us besides replies: notifications about the call and the server's
 * requests (each answered from answer_timer). */
static bool on_push(nx_mcp_peer_t *peer, json_t *msg) {
    cli_t *cli = peer->owner;
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    if (method != NULL && id != NULL) {
        json_t *answer = answer_request(cli, method, params);
        if (answer != NULL && json_object_set(answer, "id", id) == 0 &&
            json_array_append_new(cli->answers, answer) == 0) {
            if (!nx_timer_active(&cli->answer_timer))
                nx_shard_timer_start(cli->es->shard, &cli->answer_timer, 0);
        } else {
            json_decref(answer);
        }
    } else if (method != NULL) {
        print_notification(cli, method, params);
    }
    json_decref(msg);
    fflush(stderr);
    return true;
}

/* ---- the requests ---- */

/* The reply function of requests answered at once: keeps the response for the caller. */
static void keep_reply(void *transport, json_t *response) {
    json_t **out = transport;
    json_decref(*out);
    *out = response;
}

/* Dispatches request <method> with <params> (borrowed) and returns the response it got at once
 * (NULL if it did not answer at once; then it was cancelled). */
static json_t *request_now(cli_t *cli, const char *method, json_t *params) {
    json_t *id = json_integer(1), *response = NULL;
    nx_rpc_msg_t msg = {.kind = NX_RPC_REQUEST, .id = id, .method = method, .params = params};
    nx_mcp_request_ctx_t ctx = {.reply = keep_reply, .transport = &response, .peer = &cli->peer};
    nx_mcp_call_t *pending = NULL;
    if (nx_mcp_server_dispatch(cli->e->mcp, &msg, &ctx, &pending) == NX_MCP_PENDING &&
        pending != NULL)
        nx_mcp_call_cancel(pending);
    json_decref(id);
    return response;
}

/* tools/list to the end; prints the target's tools under their own names. */
static void run_list(cli_t *cli) {
    json_t *tools = json_array(), *cursor = NULL;
    size_t plen = strlen(cli->prefix);
    for (uint32_t page = 0; page < MAX_LIST_PAGES; page++) {
        json_t *params = cursor ? json_pack("{s:O}", "cursor", cursor) : json_object();
        json_t *response = request_now(cli, "tools/list", params);
        json_decref(params);
        json_t *result = json_object_get(response, "result");
        if (result == NULL) {
            json_t *error = json_object_get(response, "error");
            if (error != NULL) print_rpc_error(cli, error);
            json_decref(response);
            json_decref(cursor);
            json_decref(tools);
            if (error == NULL)
                fail(cli, "tools/list failed");
            else
                finish(cli, 1);
            return;
        }
        size_t i;
        json_t *tool;
        json_array_foreach(json_object_get(result, "tools"), i, tool) {
            const char *name = json_string_value(json_object_get(tool, "name"));
            if (name == NULL || strncmp(name, cli->prefix, plen) != 0) continue; /* nexus's own */
            json_t *own = json_copy(tool);
            json_object_set_new(own, "name", json_string(name + plen));
            json_array_append_new(tools, own);
        }
        json_t *next = json_object_get(result, "nextCursor");
        json_decref(cursor);
        cursor = json_is_string(next) ? json_incref(next) : NULL;
        json_decref(response);
        if (cursor == NULL) break;
    }
    json_decref(cursor);
    if (cli->json) {
        json_t *out = json_pack("{s:O}", "tools", tools);
        print_json(stdout, out);
        json_decref(out);
    } else {
        size_t i;
        json_t *tool;
        json_array_foreach(tools, i, tool) {
            printf("%s\n", json_string_value(json_object_get(tool, "name")));
        }
        fflush(stdout);
    }
    json_decref(tools);
    finish(cli, 0);
}

static void on_call_reply(void *transport, json_t *response) {
    cli_t *cli = transport;
    cli->pending = NULL;
    json_t *result = json_object_get(response, "result");
    json_t *error = json_object_get(response, "error");
    int status = 1;
    if (result != NULL) {
        print_json(stdout, result);
        status = json_is_true(json_object_get(result, "isError")) ? 1 : 0;
        if (status != 0) {
            json_t *first = json_array_get(json_object_get(result, "content"), 0);
            const char *text = json_string_value(json_object_get(first, "text"));
            fprintf(stderr, "nexus client: the tool reported an error%s%s\n", text ? ": " : "",
                    text ? text : "");
        }
    } else {
        print_rpc_error(cli, error);
    }
    json_decref(response);
    finish(cli, status);
}

static void run_call(cli_t *cli) {
    /* The progress token makes nexus pass the server's progress notifications on to us. */
    json_t *name = json_sprintf("%s%s", cli->prefix, cli->tool);
    json_t *params = name ? json_pack("{s:o, s:O, s:{s:s}}", "name", name, "arguments", cli->args,
                                      "_meta", "progressToken", "nexus-client")
                          : NULL;
    json_t *id = json_integer(1);
    if (params == NULL || id == NULL) {
        json_decref(params);
        json_decref(id);
        fail(cli, "out of memory");
        return;
    }
    nx_rpc_msg_t msg = {.kind = NX_RPC_REQUEST, .id = id, .method = "tools/call", .params = params};
    nx_mcp_request_ctx_t ctx = {.reply = on_call_reply, .transport = cli, .peer = &cli->peer};
    /* on_call_reply runs now (an unknown tool), or later on this thread unless we cancel. */
    nx_mcp_call_t *pending = NULL;
    if (nx_mcp_server_dispatch(cli->e->mcp, &msg, &ctx, &pending) == NX_MCP_PENDING &&
        pending != NULL) {
        cli->pending = pending;
        nx_shard_timer_start(cli->es->shard, &cli->poll_timer, POLL_MS);
    }
    json_decref(params);
    json_decref(id);
}

/* The backend has listed its catalog: we introduce ourselves to the core, then ask. */
static void start_session(cli_t *cli) {
    nx_mcp_peer_init(&cli->peer, on_push, cli);
    cli->peer_live = true;
    json_t *init =
        json_pack("{s:s, s:{s:{}, s:{s:{}}, s:{s:b}}, s:{s:s, s:s}}", "protocolVersion",
                  "2025-11-25", "capabilities", "sampling", "elicitation", "form", "roots",
                  "listChanged", 0, "clientInfo", "name", "nexus-client", "version", NX_VERSION);
    json_t *response = init ? request_now(cli, "initialize", init) : NULL;
    json_decref(init);
    json_t *error = json_object_get(response, "error");
    if (response == NULL || error != NULL) {
        if (error != NULL) print_rpc_error(cli, error);
        json_decref(response);
        fail(cli, "nexus refused our initialize");
        return;
    }
    json_decref(response);
    nx_rpc_msg_t note = {.kind = NX_RPC_NOTIFICATION, .method = "notifications/initialized"};
    nx_mcp_request_ctx_t ctx = {.reply = ignore_reply, .transport = cli, .peer = &cli->peer};
    nx_mcp_server_dispatch(cli->e->mcp, &note, &ctx, NULL);
    if (cli->action == ACTION_LIST)
        run_list(cli);
    else
        run_call(cli);
}

/* Before the session: waits until the backend has listed its catalog, has failed to start, or
 * the time is up. During the call: watches for a signal draining nexus. */
static void on_poll(nx_timer_t *t) {
    cli_t *cli = nx_container_of(t, cli_t, poll_timer);
    nx_engine_shard_t *es = cli->es;
    if (es->draining) {
        /* SIGINT or SIGTERM: a call in flight is cancelled (the server hears
         * notifications/cancelled), so nexus stops now rather than at the end of its grace. */
        nx_mcp_call_t *call = cli->pending;
        cli->pending = NULL;
        if (call != NULL) nx_mcp_call_cancel(call);
        fail(cli, call != NULL ? "interrupted: the call was cancelled" : "interrupted");
        return;
    }
    if (cli->pending != NULL) { /* the call's own timeouts bound it */
        nx_shard_timer_start(es->shard, &cli->poll_timer, POLL_MS);
        return;
    }
    if (nx_backends_listed(cli->e->backends)) {
        start_session(cli);
        return;
    }
    json_t *health = nx_backends_health(cli->e->backends);
    json_t *h = json_object_get(health, BACKEND_NAME);
    const char *state = json_string_value(json_object_get(h, "state"));
    bool failed = json_integer_value(json_object_get(h, "restarts")) > 0 ||
                  (state != NULL && strcmp(state, "restarting") == 0);
    json_decref(health);
    /* Like curl, a client gives up on the first failed connection (the log says why). */
    if (failed) {
        fail(cli, "cannot connect to %s: the %s failed (see the log above)", cli->target,
             cli->transport == NX_SERVER_STDIO ? "server process or its MCP handshake"
                                               : "connection or the MCP handshake");
        return;
    }
    if (nx_shard_now_ms(es->shard) >= cli->deadline_ms) {
        fail(cli, "no answer from %s within %u ms", cli->target, cli->timeout_ms);
        return;
    }
    nx_shard_timer_start(es->shard, &cli->poll_timer, POLL_MS);
}

static void on_shard_started(nx_engine_shard_t *es, void *arg) {
    cli_t *cli = arg;
    if (es->shard->id != 0) return;
    cli->es = es;
    cli->deadline_ms = nx_shard_now_ms(es->shard) + cli->timeout_ms;
    nx_timer_init(&cli->poll_timer, on_poll);
    nx_timer_init(&cli->answer_timer, on_answer_timer);
    nx_shard_timer_start(es->shard, &cli->poll_timer, 1);
}

/* ---- the command line ---- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("nexus client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see nexus client --help)\n", stderr);
    va_end(ap);
    return 2;
}

/* Parses <text> as JSON of which <what> must be an object; NULL after printing why. */
static json_t *parse_object(const char *text, const char *what) {
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        usage_error("%s is not valid JSON: %s (column %d)", what, je.text, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        usage_error("%s must be a JSON object", what);
        return NULL;
    }
    return j;
}

static bool parse_uint(const char *s, uint32_t max, uint32_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v > max) return false;
    *out = (uint32_t)v;
    return true;
}

/* Reads the options and words of <argv> into <cli>; 0, or 2 after printing a usage error. */
static int parse_args(cli_t *cli, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            cli->command = argv + i + 1;
            if (cli->command[0] == NULL) return usage_error("no command after --");
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (strstr(a, "://") != NULL) {
                if (cli->url != NULL) return usage_error("two URLs: %s and %s", cli->url, a);
                cli->url = a;
            } else if (strchr(a, ':') != NULL || strchr(a, '/') != NULL) {
                /* Never a command or a tool name ([A-Za-z0-9_.-]): a URL gone wrong. */
                return usage_error("'%s' is not a URL; expected http://host[:port][/path]", a);
            } else if (cli->action == ACTION_NONE) {
                if (strcmp(a, "list") == 0)
                    cli->action = ACTION_LIST;
                else if (strcmp(a, "call") == 0)
                    cli->action = ACTION_CALL;
                else
                    return usage_error("unknown command '%s'; expected list or call", a);
            } else if (cli->action == ACTION_CALL && cli->tool == NULL) {
                cli->tool = a;
            } else {
                return usage_error("unexpected argument '%s'", a);
            }
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return -1;
        }
        if (strcmp(a, "--json") == 0) {
            cli->json = true;
            continue;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            cli->verbose++;
            continue;
        }
        if (strcmp(a, "-vv") == 0) {
            cli->verbose += 2;
            continue;
        }
        static const char *const valued[] = {
            "-t", "--transport", "--args",   "--timeout",       "--retries",
            "-H", "--header",    "--elicit", "--elicit-action", "--sample"};
        bool known = false;
        for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]) && !known; k++)
            known = strcmp(a, valued[k]) == 0;
        if (!known) return usage_error("unknown option '%s'", a);
        if (i + 1 >= argc) return usage_error("option %s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "-t") == 0 || strcmp(a, "--transport") == 0) {
            static const struct {
                const char *name;
                nx_server_transport_t t;
            } names[] = {{"http", NX_SERVER_HTTP},
                         {"stdio", NX_SERVER_STDIO},
                         {"sse", NX_SERVER_SSE},
                         {"ws", NX_SERVER_WS}};
            cli->transport_given = false;
            for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
                if (strcmp(v, names[k].name) != 0) continue;
                cli->transport = names[k].t;
                cli->transport_given = true;
            }
            if (!cli->transport_given)
                return usage_error("unknown transport '%s'; expected http, stdio, sse or ws", v);
        } else if (strcmp(a, "--args") == 0) {
            json_decref(cli->args);
            if ((cli->args = parse_object(v, "--args")) == NULL) return 2;
        } else if (strcmp(a, "--elicit") == 0) {
            json_decref(cli->elicit);
            if ((cli->elicit = parse_object(v, "--elicit")) == NULL) return 2;
        } else if (strcmp(a, "--elicit-action") == 0) {
            if (strcmp(v, "accept") != 0 && strcmp(v, "decline") != 0 && strcmp(v, "cancel") != 0)
                return usage_error("--elicit-action must be accept, decline or cancel");
            cli->elicit_action = v;
        } else if (strcmp(a, "--sample") == 0) {
            cli->sample = v;
        } else if (strcmp(a, "--timeout") == 0) {
            uint64_t ms = 0;
            char msg[128];
            if (nx_config_parse_duration(v, strlen(v), &ms, msg, sizeof(msg)) != 0)
                return usage_error("--timeout: %s", msg);
            if (ms == 0 || ms > 24u * 3600u * 1000u)
                return usage_error("--timeout must be between 1ms and 24h");
            cli->timeout_ms = (uint32_t)ms;
        } else if (strcmp(a, "--retries") == 0) {
            if (!parse_uint(v, MAX_RETRIES, &cli->retries))
                return usage_error("--retries must be a whole number from 0 to %u", MAX_RETRIES);
        } else { /* --header */
            const char *colon = strchr(v, ':');
            if (colon == NULL || colon == v || strpbrk(v, "\r\n") != NULL)
                return usage_error("--header needs \"Name: value\", got '%s'", v);
            for (const char *p = v; p < colon; p++)
                if (*p <= ' ' || *p >= 127 || strchr("()<>@,;:\\\"/[]?={}", *p) != NULL)
                    return usage_error("--header: '%.*s' is not a header name", (int)(colon - v),
                                       v);
            cli->headers[cli->header_count++] = v;
        }
    }
    if (cli->action == ACTION_NONE) return usage_error("no command; expected list or call");
    if (cli->action == ACTION_CALL && cli->tool == NULL) return usage_error("call needs a TOOL");
    if (cli->action == ACTION_LIST && cli->args != NULL)
        return usage_error("--args goes with call, not list");
    if (!cli->transport_given)
        cli->transport = cli->command != NULL                                  ? NX_SERVER_STDIO
                         : cli->url != NULL && strncmp(cli->url, "ws", 2) == 0 ? NX_SERVER_WS
                                                                               : NX_SERVER_HTTP;
    if (cli->transport == NX_SERVER_STDIO) {
        if (cli->command == NULL)
            return usage_error("--transport stdio needs the server's command after --");
        if (cli->url != NULL)
            return usage_error("a stdio server takes a command, not %s", cli->url);
        if (cli->header_count > 0) return usage_error("--header goes with http, not stdio");
    } else {
        if (cli->command != NULL)
            return usage_error("a command after -- goes with --transport stdio, not %s",
                               nx_server_transport_name(cli->transport));
        if (cli->url == NULL) return usage_error("no server URL");
    }
    return 0;
}

/* A heap copy of the NULL-terminated <v> (each string copied), or NULL when <v> is empty. */
static char **strv_copy(char *const *v) {
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    if (n == 0) return NULL;
    char **out = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; out != NULL && i < n; i++) {
        if ((out[i] = strdup(v[i])) == NULL) {
            for (size_t k = 0; k < i; k++)
                free(out[k]);
            free(out);
            return NULL;
        }
    }
    return out;
}

/* The configuration of our nexus: one shard, no listeners, one backend called "target".
 * Returns 0, 2 for a bad URL (printed), or -ENOMEM; <c> is the caller's to dispose. */
static int build_config(cli_t *cli, nx_config_t *c) {
    nx_config_defaults(c);
    snprintf(c->source, sizeof(c->source), "nexus client");
    c->rest.enabled = false;
    c->mcp.enabled = false;
    c->shards = 1;
    c->log_level = cli->verbose >= 2 ? NX_LOG_DEBUG : cli->verbose == 1 ? NX_LOG_INFO : NX_LOG_WARN;
    c->drain_timeout_ms = 2000;
    nx_server_config_t *s = calloc(1, sizeof(*s));
    if (s == NULL) return -ENOMEM;
    nx_server_config_defaults(s, cli->transport);
    c->servers.items = s;
    c->servers.count = 1;
    snprintf(s->name, sizeof(s->name), "%s", BACKEND_NAME);
    /* Prefixed, so the target's tools never meet nexus's own (health_check...) in the catalog. */
    s->prefix = true;
    snprintf(cli->prefix, sizeof(cli->prefix), "%s%s", BACKEND_NAME, c->servers.separator);
    s->restart_base_ms = 100;
    s->restart_cap_ms = 1000;
    s->shutdown_term_ms = 1000;
    s->shutdown_kill_ms = 1000;
    s->timeouts = (nx_server_timeouts_t){
        .connect_ms = cli->timeout_ms, .call_ms = cli->timeout_ms, .deadline_ms = cli->timeout_ms};
    s->retry.attempts = 1 + cli->retries;
    s->breaker.enabled = false; /* one call: nothing to learn from */
    s->health.enabled = false;  /* no pings of our own on the server's wire */
    if (cli->transport == NX_SERVER_STDIO) {
        snprintf(s->command, sizeof(s->command), "%s", cli->command[0]);
        s->args = strv_copy(cli->command + 1);
        if (cli->command[1] != NULL && s->args == NULL) return -ENOMEM;
        return 0;
    }
    char msg[300];
    s->endpoints = calloc(1, sizeof(*s->endpoints));
    s->urls = strv_copy((char *const[]){(char *)cli->url, NULL});
    if (s->endpoints == NULL || s->urls == NULL) return -ENOMEM;
    s->url_count = 1;
    if (nx_config_parse_url(cli->url, strlen(cli->url), cli->transport, &s->endpoints[0], msg,
                            sizeof(msg)) != 0) {
        fprintf(stderr, "nexus client: %s: %s\n", cli->url, msg);
        return 2;
    }
    s->headers = strv_copy((char *const *)cli->headers);
    if (cli->header_count > 0 && s->headers == NULL) return -ENOMEM;
    return 0;
}

/* Runs nexus with the configuration of <cli> until the request is done; the exit status. */
static int run(cli_t *cli) {
    nx_config_t c;
    int rc = build_config(cli, &c);
    if (rc != 0) {
        nx_config_dispose(&c);
        if (rc < 0) fprintf(stderr, "nexus client: out of memory\n");
        return rc < 0 ? 1 : rc;
    }
    nx_log_set_level(c.log_level);
    /* Re-applied if a SIGHUP reloads the configuration. */
    char *overrides[] = {"log.level", (char *)nx_log_level_name(c.log_level), NULL};
    nx_config_snapshot_t *snap = nx_config_snapshot_new(&c);
    nx_config_dispose(&c);
    nx_engine_t *e = NULL;
    rc = snap != NULL ? nx_engine_new(snap, overrides, &e) : -ENOMEM;
    if (rc < 0) {
        fprintf(stderr, "nexus client: cannot connect to %s (%s)\n", cli->target,
                rc == -ENOMEM ? "out of memory" : "see the log above");
        return 1;
    }
    cli->e = e;
    cli->status = 1;
    e->on_shard_started = on_shard_started;
    e->on_shard_started_arg = cli;
    int engine_status = nx_engine_run(e);
    nx_engine_free(e);
    cli->e = NULL;
    if (!cli->done) {
        /* A signal drained nexus before we finished. */
        fprintf(stderr, "nexus client: %s\n",
                engine_status ? "nexus did not start" : "interrupted");
        return 1;
    }
    return cli->status;
}

int nx_cli_client_main(int argc, char **argv) {
    cli_t *cli = calloc(1, sizeof(*cli));
    if (cli == NULL) return 1;
    cli->elicit_action = "accept";
    cli->timeout_ms = DEFAULT_TIMEOUT_MS;
    cli->headers = calloc((size_t)argc + 1, sizeof(char *));
    cli->answers = json_array();
    int status = cli->headers && cli->answers ? parse_args(cli, argc, argv) : 1;
    if (status == 0) {
        if (cli->args == NULL) cli->args = json_object();
        if (cli->transport == NX_SERVER_STDIO) {
            size_t n = 0;
            for (char **w = cli->command; *w != NULL && n < sizeof(cli->target) - 1; w++)
                n += (size_t)snprintf(cli->target + n, sizeof(cli->target) - n, "%s%s",
                                      n ? " " : "", *w);
        } else {
            snprintf(cli->target, sizeof(cli->target), "%s", cli->url);
        }
        status = cli->args ? run(cli) : 1;
    } else if (status < 0) {
        status = 0; /* --help */
    }
    json_decref(cli->args);
    json_decref(cli->elicit);
    json_decref(cli->answers);
    free(cli->headers);
    free(cli);
    return status;
}
