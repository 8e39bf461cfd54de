/* `nexus run` and `nexus workflows` (see cli_run.h): a small blocking HTTP/1.1 client over one
 * TCP connection per request (nexus's own response parser and SSE parser do the framing), the
 * run command's state (start, follow, cancel) and the output for humans and scripts.
 *
 * Following an execution: the command subscribes to GET /events?execution=ID, then reads the
 * record once, because a fast workflow may have finished before the subscription existed;
 * events then drive the progress lines and the end, and a record fetched every few seconds
 * covers an event the stream lost. A server without /events (404), or a stream that breaks,
 * is followed by polling the record every 200 ms instead.
 *
 * Every wait is bounded (connect, each request, --timeout) and waits in ppoll() with SIGINT
 * unblocked, so Ctrl-C interrupts a follow at once: the handler only sets a flag, the loop then
 * cancels the execution with DELETE /api/executions/ID and exits 130. */
#include "cli_run.h"

#include "config.h"
#include "http_response.h"
#include "nexus/errors.h"
#include "sse_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_URL "http://127.0.0.1:8000"
#define CONNECT_TIMEOUT_MS 5000u
#define REQUEST_TIMEOUT_MS 30000u /* one request, unless --timeout leaves less */
#define CANCEL_TIMEOUT_MS 5000u   /* the DELETE after Ctrl-C or --timeout */
#define HEAD_TIMEOUT_MS 3000u     /* the event stream's response head */
#define RECHECK_MS 2000u          /* while following events, read the record this often */
#define POLL_MS 200u              /* without events, read the record this often */
#define SETTLE_MS 2000u           /* after a cancel, wait this long for the final record */
#define RECV_BUF 65536u           /* holds a head (16 KiB at most) and one read */
#define MAX_BODY (16u << 20)      /* one JSON response */
#define MAX_TIMEOUT_MS (24ull * 3600 * 1000)

static const char run_usage[] =
    "Usage:\n"
    "  nexus run WORKFLOW [--parameters JSON | --parameters @FILE] [options]\n"
    "\n"
    "Starts WORKFLOW on a running nexus (POST /api/executions), follows it step by step and\n"
    "prints its result as JSON on stdout. On a terminal, stderr shows a line per step as it\n"
    "finishes (\xe2\x9c\x93 done, \xe2\x86\xba from the cache, \xe2\x9c\x97 failed). Ctrl-C "
    "cancels the execution.\n"
    "\n"
    "Options:\n"
    "      --parameters P  the workflow's inputs: a JSON object, @FILE to read one from a\n"
    "                      file, or @- from stdin (default {})\n"
    "      --server URL    the nexus to talk to (default $NEXUS_URL, else " DEFAULT_URL ")\n"
    "      --no-wait       print the execution id (--json: the whole answer) and exit\n"
    "      --json          print the execution record (steps, status, result) instead of the\n"
    "                      result alone\n"
    "      --timeout T     give up after T (500ms, 30s, 2m...): cancel the execution, exit 5\n"
    "  -v, --verbose       progress lines on stderr even when it is not a terminal\n"
    "  -h, --help\n"
    "\n"
    "Exit status: 0 the workflow succeeded; 1 it failed (the failing step and its error on\n"
    "stderr) or was cancelled; 2 usage error or parameters that are not a JSON object or do not\n"
    "fit the workflow's input schema; 3 no such workflow, or it may not be started from the\n"
    "CLI; 4 the server could not be reached or answered an HTTP error; 5 --timeout passed;\n"
    "130 interrupted (Ctrl-C).\n";

static const char workflows_usage[] =
    "Usage:\n"
    "  nexus workflows [--server URL] [--json]\n"
    "\n"
    "Lists the workflows of a running nexus (GET /api/workflows): name, channels, number of\n"
    "steps and description; --json prints the server's answer as it is.\n"
    "\n"
    "Options:\n"
    "      --server URL    the nexus to talk to (default $NEXUS_URL, else " DEFAULT_URL ")\n"
    "      --json          print {workflows: [...], count} as JSON\n"
    "  -h, --help\n"
    "\n"
    "Exit status: 0 ok; 2 usage error; 4 the server could not be reached or answered an HTTP\n"
    "error.\n";

/* Ctrl-C: set by the handler, read by every interruptible wait. */
static volatile sig_atomic_t interrupted;
/* The signal mask during ppoll(): SIGINT deliverable. Outside ppoll SIGINT stays blocked, so
 * it cannot arrive between a check of <interrupted> and the wait. */
static sigset_t wait_mask;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t min_u64(uint64_t a, uint64_t b) {
    return a < b ? a : b;
}

/* One command line run; lives on the stack of the command's main. */
typedef struct cli {
    const char *cmd; /* "run" or "workflows", for messages */
    const char *url;
    nx_server_endpoint_t ep;
    char base[2048]; /* the URL's path without its trailing '/', prefixed to API paths */
    bool json, verbose;
    /* run */
    const char *workflow;
    json_t *params;
    bool no_wait, progress;
    uint64_t timeout_ms, deadline; /* deadline: monotonic, UINT64_MAX without --timeout */
    char id[64];
    json_t *shown; /* keys of the step lines already printed */
    int width;     /* step ids are padded to this */
    char err[600]; /* why the last request failed */
} cli_t;

static void print_json(FILE *f, const json_t *j) {
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (text != NULL) fprintf(f, "%s\n", text);
    free(text);
    fflush(f);
}

static int usage_error(const cli_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const cli_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nexus %s: ", c->cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see nexus %s --help)\n", c->cmd);
    va_end(ap);
    return NX_CLI_EXIT_USAGE;
}

/* ---- waiting ---- */

/* Waits until <fd> is ready for <events> (fd < 0: only sleeps) or monotonic <deadline> passes.
 * Returns 0 when ready, -ETIMEDOUT, or -EINTR once Ctrl-C was pressed if <intr>; a wait that
 * is not <intr> notes the signal and goes on. */
static int wait_fd(int fd, short events, uint64_t deadline, bool intr) {
    for (;;) {
        if (intr && interrupted) return -EINTR;
        uint64_t now = mono_ms();
        if (now >= deadline) return -ETIMEDOUT;
        uint64_t left = deadline - now;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000u),
                              .tv_nsec = (long)(left % 1000u) * 1000000L};
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = ppoll(fd >= 0 ? &pfd : NULL, fd >= 0 ? 1 : 0, &ts, &wait_mask);
        if (n > 0) return 0; /* POLLERR and POLLHUP too: the next read or write says more */
        if (n < 0 && errno != EINTR) return -errno;
    }
}

/* ---- HTTP ---- */

/* One request on its own connection (Connection: close), read with nexus's response parser.
 * Owned by the function that opened it. */
typedef struct hconn {
    int fd;
    char *buf;                /* RECV_BUF bytes: buf[off..len) is received and not yet consumed */
    size_t off, len, pending; /* pending: bytes of the last event, dropped on the next call */
    bool eof;
    nx_http_response_limits_t limits;
    nx_http_response_parser_t parser;
} hconn_t;

static void hconn_close(hconn_t *h) {
    if (h->fd >= 0) close(h->fd);
    h->fd = -1;
    free(h->buf);
    h->buf = NULL;
}

/* Connects to the server within <deadline>; 0 with the socket in *<out>, or -errno with c->err
 * set (-EINTR without a message). */
static int tcp_connect(cli_t *c, uint64_t deadline, bool intr, int *out) {
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)c->ep.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(c->ep.host, port, &hints, &ai);
    if (g != 0) {
        snprintf(c->err, sizeof(c->err), "cannot reach the server at %s: cannot resolve %s: %s",
                 c->url, c->ep.host, gai_strerror(g));
        return -EHOSTUNREACH;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : -errno;
        if (rc == -EINPROGRESS) {
            rc = wait_fd(fd, POLLOUT, min_u64(deadline, mono_ms() + CONNECT_TIMEOUT_MS), intr);
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0) rc = -soerr;
        }
        if (rc == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            *out = fd;
            break;
        }
        close(fd);
        if (rc == -EINTR) break;
    }
    freeaddrinfo(ai);
    if (rc < 0 && rc != -EINTR)
        snprintf(c->err, sizeof(c->err), "cannot reach the server at %s: %s", c->url,
                 rc == -ETIMEDOUT ? "connect timed out" : strerror(-rc));
    return rc;
}

static int send_all(int fd, const char *p, size_t n, uint64_t deadline, bool intr) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN) return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline, intr);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Opens a connection and sends <method> <c->base><path> with <body> (JSON, may be NULL);
 * <accept> is the Accept header. 0, or a negative code with c->err set (not for -EINTR). */
static int hconn_open(cli_t *c, hconn_t *h, const char *method, const char *path, const char *body,
                      const char *accept, uint64_t deadline, bool intr, uint64_t max_body) {
    memset(h, 0, sizeof(*h));
    h->fd = -1;
    h->limits = nx_http_response_default_limits;
    h->limits.max_body = max_body;
    nx_http_response_parser_init(&h->parser, &h->limits, false);
    h->buf = malloc(RECV_BUF);
    if (h->buf == NULL) {
        snprintf(c->err, sizeof(c->err), "out of memory");
        return -ENOMEM;
    }
    int rc = tcp_connect(c, deadline, intr, &h->fd);
    if (rc < 0) return rc;
    bool v6 = strchr(c->ep.host, ':') != NULL;
    size_t blen = body ? strlen(body) : 0;
    char clen[96] = "";
    if (body != NULL)
        snprintf(clen, sizeof(clen), "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                 blen);
    char *head = NULL;
    int hl = asprintf(&head,
                      "%s %s%s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUser-Agent: nexus-cli/" NX_VERSION
                      "\r\nAccept: %s\r\nX-Nexus-Channel: cli\r\n%sConnection: close\r\n\r\n",
                      method, c->base, path, v6 ? "[" : "", c->ep.host, v6 ? "]" : "",
                      (unsigned)c->ep.port, accept, clen);
    if (hl < 0) {
        snprintf(c->err, sizeof(c->err), "out of memory");
        return -ENOMEM;
    }
    rc = send_all(h->fd, head, (size_t)hl, deadline, intr);
    free(head);
    if (rc == 0 && body != NULL) rc = send_all(h->fd, body, blen, deadline, intr);
    if (rc < 0 && rc != -EINTR)
        snprintf(c->err, sizeof(c->err), "%s %s at %s: %s", method, path, c->url,
                 rc == -ETIMEDOUT ? "timed out sending the request" : strerror(-rc));
    return rc;
}

/* The next event of the response (HEAD, DATA, DONE; 1xx heads are skipped). Pointers in <ev>
 * are valid until the next call. 0, or -ETIMEDOUT, -EINTR, -errno, NX_EPROTO with c->err set
 * (not for -ETIMEDOUT and -EINTR, which the caller may retry). */
static int hconn_next(cli_t *c, hconn_t *h, uint64_t deadline, bool intr,
                      nx_http_response_event_t *ev) {
    h->off += h->pending;
    h->pending = 0;
    for (;;) {
        int rc = nx_http_response_parse(&h->parser, h->buf + h->off, h->len - h->off, ev);
        if (rc >= 0 && ev->kind == NX_HTTP_RESP_INFO) {
            h->off += (size_t)rc;
            continue;
        }
        if (rc >= 0) {
            h->pending = (size_t)rc;
            return 0;
        }
        if (rc != NX_AGAIN) {
            snprintf(c->err, sizeof(c->err), "bad HTTP response from %s: %s", c->url,
                     h->parser.error_message ? h->parser.error_message : "malformed");
            return NX_EPROTO;
        }
        if (h->eof) {
            if (nx_http_response_eof(&h->parser, ev) == 0) return 0;
            snprintf(c->err, sizeof(c->err), "%s closed the connection %s", c->url,
                     h->parser.error == NX_HTTP_RESP_ENO_RESPONSE ? "without answering"
                                                                  : "in the middle of the answer");
            return NX_EPROTO;
        }
        /* The parser keeps at most a head's worth of bytes: make room at the end. */
        if (h->off > 0) {
            memmove(h->buf, h->buf + h->off, h->len - h->off);
            h->len -= h->off;
            h->off = 0;
        }
        if (h->len == RECV_BUF) {
            snprintf(c->err, sizeof(c->err), "bad HTTP response from %s: head too large", c->url);
            return NX_EPROTO;
        }
        ssize_t n = recv(h->fd, h->buf + h->len, RECV_BUF - h->len, 0);
        if (n > 0) {
            h->len += (size_t)n;
        } else if (n == 0) {
            h->eof = true;
        } else if (errno == EAGAIN || errno == EINTR) {
            rc = wait_fd(h->fd, POLLIN, deadline, intr);
            if (rc < 0) return rc;
        } else {
            rc = -errno;
            snprintf(c->err, sizeof(c->err), "reading from %s: %s", c->url, strerror(-rc));
            return rc;
        }
    }
}

/* A complete answer: status and body (NUL-terminated; owned by the caller). */
typedef struct http_answer {
    int status;
    char *body;
    size_t len;
    json_t *json; /* the body parsed, when it is JSON; else NULL */
} http_answer_t;

static void answer_dispose(http_answer_t *a) {
    free(a->body);
    json_decref(a->json);
    memset(a, 0, sizeof(*a));
}

/* One request and its whole answer within <deadline>. 0 with <a> filled (any status), or a
 * negative code: -EINTR (Ctrl-C, when <intr>), -ETIMEDOUT, else c->err says why. */
static int http_call(cli_t *c, const char *method, const char *path, const char *body,
                     uint64_t deadline, bool intr, http_answer_t *a) {
    memset(a, 0, sizeof(*a));
    hconn_t h;
    int rc = hconn_open(c, &h, method, path, body, "application/json", deadline, intr, MAX_BODY);
    size_t cap = 0;
    while (rc == 0) {
        nx_http_response_event_t ev;
        rc = hconn_next(c, &h, deadline, intr, &ev);
        if (rc < 0) break;
        if (ev.kind == NX_HTTP_RESP_HEAD) a->status = ev.head->status;
        if (ev.kind == NX_HTTP_RESP_DONE) break;
        if (ev.kind != NX_HTTP_RESP_DATA) continue;
        if (a->len + ev.data.n + 1 > cap) {
            size_t ncap = cap ? cap : 4096;
            while (ncap < a->len + ev.data.n + 1)
                ncap *= 2;
            char *nb = realloc(a->body, ncap);
            if (nb == NULL) {
                snprintf(c->err, sizeof(c->err), "out of memory");
                rc = -ENOMEM;
                break;
            }
            a->body = nb;
            cap = ncap;
        }
        memcpy(a->body + a->len, ev.data.p, ev.data.n);
        a->len += ev.data.n;
    }
    hconn_close(&h);
    if (rc == -ETIMEDOUT)
        snprintf(c->err, sizeof(c->err), "%s %s at %s: no answer in time", method, path, c->url);
    if (rc < 0) {
        answer_dispose(a);
        return rc;
    }
    if (a->body == NULL) a->body = strdup("");
    if (a->body == NULL) return -ENOMEM;
    a->body[a->len] = '\0';
    a->json = json_loadb(a->body, a->len, JSON_DECODE_ANY, NULL);
    return 0;
}

/* The error message of a nexus JSON error answer, else its text (for messages). */
static const char *answer_message(const http_answer_t *a) {
    const char *m =
        json_string_value(json_object_get(json_object_get(a->json, "error"), "message"));
    if (m != NULL) return m;
    return a->len > 0 && a->len < 300 ? a->body : "no details";
}

/* ---- the server URL ---- */

static int setup_server(cli_t *c, const char *flag) {
    c->url = flag ? flag : getenv("NEXUS_URL");
    if (c->url == NULL || c->url[0] == '\0') c->url = DEFAULT_URL;
    char msg[300];
    if (nx_config_parse_url(c->url, strlen(c->url), NX_SERVER_HTTP, &c->ep, msg, sizeof(msg)) != 0)
        return usage_error(c, "server URL %s: %s", c->url, msg);
    if (strchr(c->ep.path, '?') != NULL)
        return usage_error(c, "server URL %s: a query is not allowed", c->url);
    size_t n = strlen(c->ep.path);
    while (n > 0 && c->ep.path[n - 1] == '/')
        n--;
    memcpy(c->base, c->ep.path, n);
    c->base[n] = '\0';
    return 0;
}

/* ---- `nexus workflows` ---- */

static int print_table(json_t *list) {
    size_t wn = 4, wc = 8, i;
    json_t *w;
    json_array_foreach(list, i, w) {
        const char *name = json_string_value(json_object_get(w, "name"));
        size_t chl = 0, k;
        json_t *ch;
        json_array_foreach(json_object_get(w, "channels"), k, ch) {
            const char *s = json_string_value(ch);
            chl += (s ? strlen(s) : 1) + (k ? 1 : 0);
        }
        if (name != NULL && strlen(name) > wn) wn = strlen(name);
        if (chl > wc) wc = chl;
    }
    printf("%-*s  %-*s  %5s  %s\n", (int)wn, "NAME", (int)wc, "CHANNELS", "STEPS", "DESCRIPTION");
    json_array_foreach(list, i, w) {
        const char *name = json_string_value(json_object_get(w, "name"));
        const char *desc = json_string_value(json_object_get(w, "description"));
        char chans[64] = "";
        size_t k, off = 0;
        json_t *ch;
        json_array_foreach(json_object_get(w, "channels"), k, ch) {
            if (off < sizeof(chans))
                off += (size_t)snprintf(chans + off, sizeof(chans) - off, "%s%s", k ? "," : "",
                                        json_string_value(ch) ? json_string_value(ch) : "?");
        }
        printf("%-*s  %-*s  %5zu  %s\n", (int)wn, name ? name : "?", (int)wc, chans,
               json_array_size(json_object_get(w, "steps")), desc ? desc : "");
    }
    fflush(stdout);
    return NX_CLI_EXIT_OK;
}

int nx_cli_workflows_main(int argc, char **argv) {
    cli_t c = {.cmd = "workflows"};
    const char *server = NULL;
    sigprocmask(SIG_BLOCK, NULL, &wait_mask);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(workflows_usage, stdout);
            return NX_CLI_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            c.json = true;
        } else if (strcmp(a, "--server") == 0) {
            if (i + 1 >= argc) return usage_error(&c, "--server needs a URL");
            server = argv[++i];
        } else if (strncmp(a, "--server=", 9) == 0) {
            server = a + 9;
        } else {
            return usage_error(&c, "unknown argument '%s'", a);
        }
    }
    int rc = setup_server(&c, server);
    if (rc != 0) return rc;
    http_answer_t ans;
    rc = http_call(&c, "GET", "/api/workflows", NULL, mono_ms() + REQUEST_TIMEOUT_MS, false, &ans);
    if (rc < 0) {
        fprintf(stderr, "nexus workflows: %s\n", c.err);
        return NX_CLI_EXIT_SERVER;
    }
    json_t *list = json_object_get(ans.json, "workflows");
    if (ans.status != 200 || !json_is_array(list)) {
        fprintf(stderr, "nexus workflows: GET /api/workflows at %s answered HTTP %d: %s\n", c.url,
                ans.status, ans.status == 200 ? "not a workflow list" : answer_message(&ans));
        answer_dispose(&ans);
        return NX_CLI_EXIT_SERVER;
    }
    if (c.json)
        print_json(stdout, ans.json);
    else if (json_array_size(list) == 0)
        fprintf(stderr, "nexus workflows: %s defines no workflows\n", c.url);
    else
        print_table(list);
    answer_dispose(&ans);
    return NX_CLI_EXIT_OK;
}

/* ---- `nexus run`: progress lines ---- */

static bool is_terminal_step(const char *status) {
    return status != NULL && (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0 ||
                              strcmp(status, "skipped") == 0 || strcmp(status, "cancelled") == 0);
}

/* Prints the line of a finished step (from an event or a record entry <s>) once per <key>. */
static void show_step(cli_t *c, const char *key, const json_t *s) {
    const char *status = json_string_value(json_object_get(s, "status"));
    if (!c->progress || key == NULL || !is_terminal_step(status)) return;
    if (json_object_get(c->shown, key) != NULL) return;
    json_object_set_new(c->shown, key, json_true());
    json_int_t ms = json_integer_value(json_object_get(s, "duration_ms"));
    json_int_t attempts = json_integer_value(json_object_get(s, "attempts"));
    char extra[48] = "";
    if (attempts > 1) snprintf(extra, sizeof(extra), "  (%lld attempts)", (long long)attempts);
    if (strcmp(status, "succeeded") == 0 && json_is_true(json_object_get(s, "cached"))) {
        fprintf(stderr, "\xe2\x86\xba %-*s  cached%s\n", c->width, key,
                json_is_true(json_object_get(s, "stale")) ? " (stale)" : "");
    } else if (strcmp(status, "succeeded") == 0) {
        fprintf(stderr, "\xe2\x9c\x93 %-*s  %lld ms%s\n", c->width, key, (long long)ms, extra);
    } else if (strcmp(status, "skipped") == 0) {
        fprintf(stderr, "- %-*s  skipped\n", c->width, key);
    } else if (strcmp(status, "cancelled") == 0) {
        fprintf(stderr, "\xe2\x9c\x97 %-*s  cancelled\n", c->width, key);
    } else {
        const char *m = json_string_value(json_object_get(json_object_get(s, "error"), "message"));
        fprintf(stderr, "\xe2\x9c\x97 %-*s  failed: %s%s\n", c->width, key, m ? m : "no details",
                extra);
    }
    fflush(stderr);
}

/* Prints the lines of the steps <rec> shows finished that no line was printed for yet. */
static void show_record_steps(cli_t *c, const json_t *rec) {
    const json_t *steps = json_object_get(rec, "steps");
    size_t i;
    json_t *s;
    if (c->width == 0) {
        json_array_foreach(steps, i, s) {
            const char *id = json_string_value(json_object_get(s, "id"));
            if (id != NULL && (int)strlen(id) > c->width) c->width = (int)strlen(id);
        }
        if (c->width > 32) c->width = 32;
        if (c->width == 0) c->width = 1;
    }
    json_array_foreach(steps, i, s) show_step(c, json_string_value(json_object_get(s, "id")), s);
}

static void show_event_step(cli_t *c, const json_t *data) {
    const char *id = json_string_value(json_object_get(data, "step"));
    if (id == NULL) return;
    const json_t *iter = json_object_get(data, "iteration");
    if (!json_is_integer(iter)) {
        show_step(c, id, data);
        return;
    }
    /* An iteration of a map: a line each, and none later for the step as a whole. */
    char key[96];
    snprintf(key, sizeof(key), "%s[%lld]", id, (long long)json_integer_value(iter));
    show_step(c, key, data);
    json_object_set_new(c->shown, id, json_true());
}

static void verbose(const cli_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void verbose(const cli_t *c, const char *fmt, ...) {
    if (!c->verbose) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nexus run: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- `nexus run`: the execution ---- */

static bool run_expired(const cli_t *c) {
    return mono_ms() >= c->deadline;
}

static const char *record_status(const json_t *rec) {
    const char *s = json_string_value(json_object_get(rec, "status"));
    return s ? s : "unknown";
}

static bool record_ended(const json_t *rec) {
    return strcmp(record_status(rec), "running") != 0;
}

/* GET /api/executions/<id> into *<out>: 0, or a negative code (-EINTR, -ETIMEDOUT when the
 * run's deadline passed, else c->err says why). */
static int get_record(cli_t *c, uint64_t deadline, bool intr, json_t **out) {
    char path[128];
    snprintf(path, sizeof(path), "/api/executions/%s", c->id);
    http_answer_t a;
    int rc = http_call(c, "GET", path, NULL, deadline, intr, &a);
    if (rc < 0) return rc;
    if (a.status != 200 || !json_is_object(a.json)) {
        snprintf(c->err, sizeof(c->err), "GET %s answered HTTP %d: %s", path, a.status,
                 answer_message(&a));
        answer_dispose(&a);
        return NX_EPROTO;
    }
    *out = json_incref(a.json);
    answer_dispose(&a);
    return 0;
}

static uint64_t request_deadline(const cli_t *c) {
    return min_u64(c->deadline, mono_ms() + REQUEST_TIMEOUT_MS);
}

/* Follows by reading the record every POLL_MS until it ended; 0 with it in *<out>. */
static int follow_polling(cli_t *c, json_t **out) {
    for (;;) {
        json_t *rec = NULL;
        int rc = get_record(c, request_deadline(c), true, &rec);
        if (rc < 0) return rc;
        show_record_steps(c, rec);
        if (record_ended(rec)) {
            *out = rec;
            return 0;
        }
        json_decref(rec);
        rc = wait_fd(-1, 0, min_u64(c->deadline, mono_ms() + POLL_MS), true);
        if (rc == -EINTR) return rc;
        if (run_expired(c)) return -ETIMEDOUT;
    }
}

/* What one SSE message means to the follow loop. */
enum { EV_NONE, EV_ENDED };

static int on_event(cli_t *c, const nx_sse_message_t *m) {
    json_t *data = json_loadb(m->data.p, m->data.n, 0, NULL);
    const char *x = json_string_value(json_object_get(data, "execution"));
    int what = EV_NONE;
    if (data != NULL && (x == NULL || strcmp(x, c->id) == 0)) {
        if (nx_str_eq_lit_nocase(m->type, "step.finished")) show_event_step(c, data);
        if (nx_str_eq_lit_nocase(m->type, "execution.finished") ||
            nx_str_eq_lit_nocase(m->type, "execution.failed") ||
            nx_str_eq_lit_nocase(m->type, "execution.cancelled"))
            what = EV_ENDED;
    }
    json_decref(data);
    return what;
}

/* Follows on the event stream <h> (its head read); 0 with the ended record in *<out>. Falls
 * back to polling when the stream ends or breaks. */
static int follow_stream(cli_t *c, hconn_t *h, json_t **out) {
    nx_sse_parser_t sp;
    nx_sse_parser_init(&sp, NULL);
    uint64_t recheck = 0; /* read the record now: the run may have ended before we listened */
    int rc = 0;
    bool ended = false;
    for (;;) {
        if (ended || mono_ms() >= recheck) {
            json_t *rec = NULL;
            rc = get_record(c, request_deadline(c), true, &rec);
            if (rc < 0) break;
            show_record_steps(c, rec);
            if (record_ended(rec)) {
                *out = rec;
                break;
            }
            json_decref(rec);
            /* An ended event with a record still running: the record lags; ask again soon. */
            recheck = mono_ms() + (ended ? POLL_MS : RECHECK_MS);
            ended = false;
        }
        nx_http_response_event_t ev;
        rc = hconn_next(c, h, min_u64(c->deadline, recheck), true, &ev);
        if (rc == -ETIMEDOUT && !run_expired(c)) continue;
        if (rc == -EINTR || rc == -ETIMEDOUT) break;
        if (rc < 0 || ev.kind == NX_HTTP_RESP_DONE) {
            verbose(c, "the event stream ended (%s); polling the execution",
                    rc < 0 ? c->err : "closed by the server");
            hconn_close(h);
            rc = follow_polling(c, out);
            break;
        }
        if (ev.kind != NX_HTTP_RESP_DATA) continue;
        const char *p = ev.data.p;
        size_t n = ev.data.n;
        while (n > 0) {
            nx_sse_message_t m;
            int r = nx_sse_parse(&sp, p, n, &m);
            if (r == NX_AGAIN) break;
            if (r < 0) {
                snprintf(c->err, sizeof(c->err), "%s", sp.error_message ? sp.error_message : "");
                n = 0;
                hconn_close(h); /* the next read reports the stream gone, and we poll */
                break;
            }
            if (on_event(c, &m) == EV_ENDED) ended = true;
            p += r;
            n -= (size_t)r;
        }
        if (h->fd < 0) {
            verbose(c, "bad event stream (%s); polling the execution", c->err);
            rc = follow_polling(c, out);
            break;
        }
    }
    nx_sse_parser_dispose(&sp);
    return rc;
}

/* Follows execution c->id to its end: 0 with the ended record in *<out>, -EINTR (Ctrl-C),
 * -ETIMEDOUT (--timeout), else an error in c->err. */
static int follow(cli_t *c, json_t **out) {
    char path[128];
    snprintf(path, sizeof(path), "/events?execution=%s", c->id);
    hconn_t h;
    uint64_t head_deadline = min_u64(c->deadline, mono_ms() + HEAD_TIMEOUT_MS);
    int rc =
        hconn_open(c, &h, "GET", path, NULL, "text/event-stream", head_deadline, true, UINT64_MAX);
    nx_http_response_event_t ev = {0};
    if (rc == 0) rc = hconn_next(c, &h, head_deadline, true, &ev);
    if (rc == 0 && ev.kind == NX_HTTP_RESP_HEAD && ev.head->status == 200 &&
        nx_str_eq_lit_nocase(ev.head->media_type, "text/event-stream")) {
        verbose(c, "following %s", path);
        rc = follow_stream(c, &h, out);
        hconn_close(&h);
        return rc;
    }
    if (rc == 0)
        verbose(c, "no event stream (GET %s answered HTTP %d); polling the execution", path,
                ev.kind == NX_HTTP_RESP_HEAD || ev.kind == NX_HTTP_RESP_DONE ? ev.head->status : 0);
    else if (rc != -EINTR)
        verbose(c, "no event stream (%s); polling the execution",
                rc == -ETIMEDOUT ? "no answer" : c->err);
    hconn_close(&h);
    if (rc == -EINTR) return rc;
    if (run_expired(c)) return -ETIMEDOUT;
    return follow_polling(c, out);
}

/* Cancels c->id (Ctrl-C, --timeout); with --json, prints the record once it ended. */
static void cancel_run(cli_t *c, const char *why) {
    char path[128];
    snprintf(path, sizeof(path), "/api/executions/%s", c->id);
    http_answer_t a;
    int rc = http_call(c, "DELETE", path, NULL, mono_ms() + CANCEL_TIMEOUT_MS, false, &a);
    if (rc < 0) {
        fprintf(stderr, "nexus run: %s; could not cancel execution %s: %s\n", why, c->id, c->err);
        return;
    }
    if (a.status == 202)
        fprintf(stderr, "nexus run: %s; cancelled execution %s\n", why, c->id);
    else
        fprintf(stderr, "nexus run: %s; execution %s not cancelled: %s\n", why, c->id,
                answer_message(&a));
    answer_dispose(&a);
    if (!c->json) return;
    uint64_t until = mono_ms() + SETTLE_MS;
    json_t *rec = NULL;
    for (;;) {
        json_decref(rec);
        rec = NULL;
        if (get_record(c, until, false, &rec) < 0 || record_ended(rec) || mono_ms() >= until) break;
        wait_fd(-1, 0, min_u64(until, mono_ms() + POLL_MS), false);
    }
    if (rec != NULL) print_json(stdout, rec);
    json_decref(rec);
}

/* The step a failed record failed at: error.step, else the last failed step. */
static const char *failed_step(const json_t *rec) {
    const char *s = json_string_value(json_object_get(json_object_get(rec, "error"), "step"));
    if (s != NULL) return s;
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(rec, "steps"), i, st) {
        const char *status = json_string_value(json_object_get(st, "status"));
        if (status != NULL && strcmp(status, "failed") == 0)
            s = json_string_value(json_object_get(st, "id"));
    }
    return s;
}

/* Prints the outcome of the ended record <rec>; returns the exit status. */
static int report(cli_t *c, const json_t *rec) {
    const char *status = record_status(rec);
    if (c->json) print_json(stdout, rec);
    if (strcmp(status, "succeeded") == 0) {
        if (!c->json) {
            const json_t *result = json_object_get(rec, "result");
            print_json(stdout, result ? result : json_null());
        }
        return NX_CLI_EXIT_OK;
    }
    if (strcmp(status, "cancelled") == 0) {
        fprintf(stderr, "nexus run: workflow %s was cancelled (execution %s)\n", c->workflow,
                c->id);
        return NX_CLI_EXIT_FAILED;
    }
    const char *step = failed_step(rec);
    const char *m = json_string_value(json_object_get(json_object_get(rec, "error"), "message"));
    if (step != NULL)
        fprintf(stderr, "nexus run: workflow %s failed at step %s: %s (execution %s)\n",
                c->workflow, step, m ? m : "no details", c->id);
    else
        fprintf(stderr, "nexus run: workflow %s failed: %s (execution %s)\n", c->workflow,
                m ? m : "no details", c->id);
    return NX_CLI_EXIT_FAILED;
}

/* POST /api/executions; 0 with c->id set (and the 202 answer printed with --no-wait), or the
 * exit status of a refusal (> 0). Not interruptible: a run the server may have started must be
 * known before Ctrl-C can cancel it. */
static int start_run(cli_t *c) {
    json_t *req =
        json_pack("{s:s, s:O, s:b}", "workflow", c->workflow, "inputs", c->params, "wait", 0);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (body == NULL) {
        fprintf(stderr, "nexus run: out of memory\n");
        return NX_CLI_EXIT_SERVER;
    }
    http_answer_t a;
    int rc = http_call(c, "POST", "/api/executions", body, request_deadline(c), false, &a);
    free(body);
    if (rc < 0) {
        if (run_expired(c)) {
            fprintf(stderr, "nexus run: timed out starting workflow %s\n", c->workflow);
            return NX_CLI_EXIT_TIMEOUT;
        }
        fprintf(stderr, "nexus run: %s\n", c->err);
        return NX_CLI_EXIT_SERVER;
    }
    int exit_status = NX_CLI_EXIT_OK;
    const char *id = json_string_value(json_object_get(a.json, "id"));
    if (a.status == 202 && id != NULL && strlen(id) < sizeof(c->id)) {
        snprintf(c->id, sizeof(c->id), "%s", id);
        if (c->no_wait && c->json) print_json(stdout, a.json);
        if (c->no_wait && !c->json) printf("%s\n", c->id);
        fflush(stdout);
    } else if (a.status == 404) {
        fprintf(stderr, "nexus run: %s\n", answer_message(&a));
        exit_status = NX_CLI_EXIT_NOTFOUND;
    } else if (a.status == 400) {
        fprintf(stderr, "nexus run: %s\n", answer_message(&a));
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(json_object_get(a.json, "error"), "errors"), i, e) {
            const char *ptr = json_string_value(json_object_get(e, "path"));
            const char *m = json_string_value(json_object_get(e, "message"));
            char *text = m ? NULL : json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
            fprintf(stderr, "  %s%s%s\n", ptr && *ptr ? ptr : "", ptr && *ptr ? ": " : "",
                    m      ? m
                    : text ? text
                           : "?");
            free(text);
        }
        exit_status = NX_CLI_EXIT_USAGE;
    } else {
        fprintf(stderr, "nexus run: POST /api/executions at %s answered HTTP %d: %s\n", c->url,
                a.status, a.status == 202 ? "no execution id" : answer_message(&a));
        exit_status = NX_CLI_EXIT_SERVER;
    }
    answer_dispose(&a);
    return exit_status;
}

/* Reads --parameters: inline JSON, @FILE or @-; a JSON object, else a usage error. */
static int read_params(cli_t *c, const char *arg) {
    json_error_t je;
    const char *what = "--parameters";
    if (arg[0] == '@' && strcmp(arg, "@-") == 0) {
        c->params = json_loadf(stdin, JSON_REJECT_DUPLICATES, &je);
        what = "--parameters @- (stdin)";
    } else if (arg[0] == '@') {
        c->params = json_load_file(arg + 1, JSON_REJECT_DUPLICATES, &je);
        what = arg;
    } else {
        c->params = json_loads(arg, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    }
    if (c->params == NULL) {
        if (arg[0] == '@' && je.line <= 0) return usage_error(c, "%s: %s", what, je.text);
        return usage_error(c, "%s is not valid JSON: %s (line %d, column %d)", what, je.text,
                           je.line, je.column);
    }
    if (!json_is_object(c->params)) {
        json_decref(c->params);
        c->params = NULL;
        return usage_error(c, "%s must be a JSON object, like '{\"name\": \"value\"}'", what);
    }
    return 0;
}

static int run(cli_t *c) {
    verbose(c, "starting workflow %s on %s", c->workflow, c->url);
    int rc = start_run(c);
    if (rc != 0 || c->no_wait) return rc;
    verbose(c, "execution %s", c->id);
    if (interrupted) {
        cancel_run(c, "interrupted");
        return NX_CLI_EXIT_INTERRUPTED;
    }
    json_t *rec = NULL;
    rc = follow(c, &rec);
    if (rc == -EINTR) {
        cancel_run(c, "interrupted");
        return NX_CLI_EXIT_INTERRUPTED;
    }
    if (rc < 0 && run_expired(c)) {
        char why[64];
        snprintf(why, sizeof(why), "timed out after %llu ms", (unsigned long long)c->timeout_ms);
        cancel_run(c, why);
        return NX_CLI_EXIT_TIMEOUT;
    }
    if (rc < 0) {
        fprintf(stderr, "nexus run: following execution %s: %s\n", c->id, c->err);
        return NX_CLI_EXIT_SERVER;
    }
    rc = report(c, rec);
    json_decref(rec);
    return rc;
}

int nx_cli_run_main(int argc, char **argv) {
    cli_t c = {.cmd = "run", .deadline = UINT64_MAX};
    const char *server = NULL, *params = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        char flag[32] = "";
        if (eq != NULL && (size_t)(eq - a) < sizeof(flag)) {
            memcpy(flag, a, (size_t)(eq - a));
            flag[eq - a] = '\0';
            a = flag;
        }
        bool takes = strcmp(a, "--parameters") == 0 || strcmp(a, "--server") == 0 ||
                     strcmp(a, "--timeout") == 0;
        const char *v = NULL;
        if (takes) {
            if (eq != NULL)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else
                return usage_error(&c, "%s needs a value", a);
        } else if (eq != NULL) {
            return usage_error(&c, "%s takes no value", a);
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(run_usage, stdout);
            json_decref(c.params);
            return NX_CLI_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            c.json = true;
        } else if (strcmp(a, "--no-wait") == 0) {
            c.no_wait = true;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            c.verbose = true;
        } else if (strcmp(a, "--server") == 0) {
            server = v;
        } else if (strcmp(a, "--parameters") == 0) {
            params = v;
        } else if (strcmp(a, "--timeout") == 0) {
            char msg[200];
            if (nx_config_parse_duration(v, strlen(v), &c.timeout_ms, msg, sizeof(msg)) != 0)
                return usage_error(&c, "--timeout: %s", msg);
            if (c.timeout_ms == 0 || c.timeout_ms > MAX_TIMEOUT_MS)
                return usage_error(&c, "--timeout must be between 1ms and 24h");
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error(&c, "unknown option '%s'", a);
        } else if (c.workflow == NULL) {
            c.workflow = a;
        } else {
            return usage_error(&c, "one workflow at a time ('%s' and '%s')", c.workflow, a);
        }
    }
    if (c.workflow == NULL) return usage_error(&c, "which workflow? nexus run WORKFLOW");
    int rc = setup_server(&c, server);
    if (rc != 0) return rc;
    if (params != NULL && (rc = read_params(&c, params)) != 0) return rc;
    if (c.params == NULL) c.params = json_object();
    c.shown = json_object();
    if (c.params == NULL || c.shown == NULL) {
        json_decref(c.params);
        json_decref(c.shown);
        fprintf(stderr, "nexus run: out of memory\n");
        return NX_CLI_EXIT_SERVER;
    }
    c.progress = c.verbose || isatty(STDERR_FILENO);
    if (c.timeout_ms > 0) c.deadline = mono_ms() + c.timeout_ms;

    /* SIGINT stays blocked but in ppoll(), so the flag cannot be missed. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    wait_mask = old;
    sigdelset(&wait_mask, SIGINT);
    struct sigaction sa = {.sa_handler = on_sigint}, old_sa;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);

    rc = run(&c);

    sigaction(SIGINT, &old_sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    json_decref(c.params);
    json_decref(c.shown);
    return rc;
}
