/* nxmock: the mock MCP backend of nexus's fault tests and benchmarks, a program on the embedding
 * API serving Streamable HTTP, WebSocket and stdio like nexus itself. Its tools (echo, add,
 * progress, sleep, fail, stats) misbehave on cue: flags set the latency distribution and the
 * rates of JSON-RPC errors, isError results, connection resets and hangs of echo, add and
 * progress, drawn per call from a per-shard PRNG so that a seeded run with one shard repeats. */
#include "nexus/app.h"

#include "engine.h"
#include "log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MS 600000.0 /* the longest latency or sleep: ten minutes */
#define MAX_STEPS 100000
#define INJECTED_ERROR (-32603)
#define SLOTS 64 /* counter blocks, one per shard (ids beyond share, atomically) */

/* How long a call waits before its answer. */
typedef enum latency_kind {
    LATENCY_NONE, /* answer inline */
    LATENCY_FIXED,
    LATENCY_UNIFORM,
    LATENCY_EXP,
    LATENCY_LOGNORMAL,
} latency_kind_t;

/* What one call does, drawn once when it starts. */
typedef enum outcome {
    OUTCOME_OK,
    OUTCOME_ERROR,    /* JSON-RPC error -32603 */
    OUTCOME_IS_ERROR, /* a CallToolResult with isError */
    OUTCOME_RESET,    /* the connection is reset (on stdio: the process exits with status 3) */
    OUTCOME_HANG,     /* never answered until cancelled */
    OUTCOME_COUNT,
} outcome_t;

static const char *const outcome_names[OUTCOME_COUNT] = {"ok", "error", "isError", "reset", "hang"};

typedef enum tool_id {
    TOOL_ECHO,
    TOOL_ADD,
    TOOL_PROGRESS,
    TOOL_SLEEP,
    TOOL_FAIL,
    TOOL_STATS,
    TOOL_COUNT
} tool_id_t;

static const char *const tool_names[TOOL_COUNT] = {"echo",  "add",  "progress",
                                                   "sleep", "fail", "stats"};

/* The flags as parsed: written by the flag parsers on the main thread before any shard runs,
 * read-only afterwards. */
typedef struct mock_opts {
    latency_kind_t latency;
    double lat_a, lat_b;        /* fixed: a; uniform: a..b; exp: mean a; lognormal: mu a, sigma b */
    double rate[OUTCOME_COUNT]; /* by outcome; OUTCOME_OK unused (it is what is left) */
    bool faults;                /* some rate is above 0 */
    uint64_t seed;
    bool seeded;
    long long crash_after; /* -1: never */
    const char *name;
} mock_opts_t;

static mock_opts_t mock = {.crash_after = -1, .name = "nxmock"};

/* ---- counters: a block per shard, each written by its own shard, summed by stats ---- */

/* Owned by the process (static); slot <shard id % SLOTS> is written by that shard, with atomic
 * adds in case two shards share a slot. */
typedef struct counters {
    _Alignas(64) uint64_t calls;
    uint64_t outcomes[OUTCOME_COUNT];
    uint64_t cancelled; /* unanswered calls whose client left, cancelled, or met a shutdown */
    uint64_t tools[TOOL_COUNT];
} counters_t;

static counters_t counters[SLOTS];
static uint64_t calls_total; /* for --crash-after only: the one counter all shards share */

static int shard_id(void) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    return es != NULL ? es->shard->id : 0;
}

static counters_t *my_counters(void) {
    return &counters[(unsigned)shard_id() % SLOTS];
}

static void count(uint64_t *c) {
    __atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static uint64_t load(const uint64_t *c) {
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Exits at once with status 3, as a crashing server would: no answer, no cleanup (and so no
 * leak report from LeakSanitizer for the state in flight). */
static _Noreturn void crash(const char *why) {
    fprintf(stderr, "nxmock: %s: exiting with status 3 to simulate a crash\n", why);
    _exit(3);
}

/* Counts a call of <tool>, and crashes when it is one more than --crash-after allows. */
static void begin_call(tool_id_t tool) {
    counters_t *c = my_counters();
    count(&c->calls);
    count(&c->tools[tool]);
    if (mock.crash_after >= 0 &&
        __atomic_add_fetch(&calls_total, 1, __ATOMIC_RELAXED) > (uint64_t)mock.crash_after)
        crash("--crash-after reached");
}

/* ---- randomness: splitmix64 per thread, seeded from --seed and the shard id ---- */

static _Thread_local uint64_t rng_state;
static _Thread_local bool rng_ready;

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_uniform(void) {
    if (!rng_ready) {
        uint64_t s = mock.seed ^ ((uint64_t)shard_id() * 0xd1b54a32d192ed03ull);
        rng_state = splitmix64(&s);
        rng_ready = true;
    }
    return (double)(splitmix64(&rng_state) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller; the second value is thrown away for simplicity). */
static double rng_normal(void) {
    double u1 = 1.0 - rng_uniform(); /* (0, 1]: log stays finite */
    double u2 = rng_uniform();
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static outcome_t draw_outcome(void) {
    if (!mock.faults) return OUTCOME_OK;
    double u = rng_uniform(), edge = 0;
    for (int o = OUTCOME_ERROR; o < OUTCOME_COUNT; o++) {
        edge += mock.rate[o];
        if (u < edge) return (outcome_t)o;
    }
    return OUTCOME_OK;
}

/* Nanoseconds of a wait of <ms> (0 for none or a non-positive one), at most MAX_MS. */
static uint64_t to_ns(double ms) {
    if (!(ms > 0)) return 0;
    if (ms > MAX_MS) ms = MAX_MS;
    return (uint64_t)(ms * 1e6);
}

/* The wait before answering a call with <args>: its latency_ms when given, else a draw. */
static uint64_t call_latency_ns(const json_t *args) {
    const json_t *own = json_object_get(args, "latency_ms");
    if (json_is_number(own)) return to_ns(json_number_value(own));
    switch (mock.latency) {
    case LATENCY_NONE:
        return 0;
    case LATENCY_FIXED:
        return to_ns(mock.lat_a);
    case LATENCY_UNIFORM:
        return to_ns(mock.lat_a + (mock.lat_b - mock.lat_a) * rng_uniform());
    case LATENCY_EXP:
        return to_ns(-mock.lat_a * log(1.0 - rng_uniform()));
    case LATENCY_LOGNORMAL:
        return to_ns(exp(mock.lat_a + mock.lat_b * rng_normal()));
    }
    return 0;
}

/* ---- answering ---- */

/* A CallToolResult of one text item <text>/<len>. */
static json_t *text_result(const char *text, size_t len) {
    return json_pack("{s:[{s:s, s:s%}]}", "content", "type", "text", "text", text, len);
}

static json_t *textf_result(const char *fmt, long long n) {
    char text[96];
    int len = snprintf(text, sizeof(text), fmt, n);
    return text_result(text, (size_t)len);
}

/* Answers <call> as <outcome> says (OK, ERROR or IS_ERROR); <result> (stolen, may be NULL when
 * it is not needed) is the answer of a success. */
static void answer(nx_mcp_call_t *call, outcome_t outcome, json_t *result) {
    if (outcome == OUTCOME_OK && result != NULL) {
        nx_mcp_call_return(call, result);
        return;
    }
    json_decref(result);
    if (outcome == OUTCOME_IS_ERROR)
        nx_mcp_call_return_text(call, "nxmock: injected isError result", true);
    else if (outcome == OUTCOME_ERROR)
        nx_mcp_call_error(call, INJECTED_ERROR, "nxmock: injected error", NULL);
    else
        nx_mcp_call_error(call, INJECTED_ERROR, "nxmock: out of memory", NULL);
}

/* A call answered later: <steps> progress steps <step_ms> apart on the shard's timer wheel,
 * then a precise wait of <delay_ns> (see the waits below), then the answer. Owned by the call
 * until it is answered or cancelled. */
typedef struct pending {
    nx_timer_t timer;
    nx_list_t wait_link; /* in the shard's waits while the final wait runs */
    uint64_t due_ns;
    nx_mcp_call_t *call;
    outcome_t outcome;
    json_t *result; /* the answer of a success, or NULL */
    uint32_t step, steps;
    uint64_t step_ms, delay_ns;
} pending_t;

/* ---- precise waits ----
 * The latency of a benchmark backend is the baseline that nexus's overheads (tens of
 * microseconds) are measured against, so it must not carry the timer wheel's whole-millisecond
 * ticks, which fire up to a tick early or late depending on where in a tick the call came.
 * Each shard keeps its waiting answers in order of deadline and one io_uring timeout armed at
 * the earliest: the answers leave within microseconds of their deadline. */
typedef struct waits {
    nx_list_t queue; /* pending_t by due_ns, earliest first */
    nx_op_t op;      /* the timeout, while armed */
    bool ready, armed, cancelling;
    uint64_t armed_ns; /* the deadline the armed timeout was set for */
} waits_t;

/* Per shard thread: its op is only ever completed on the loop of the thread that armed it. */
static _Thread_local waits_t waits;

static void pending_next(pending_t *p);
static void waits_arm(void);

/* Answers every wait that is due, then arms the timeout for the next one. */
static void on_waits_timeout(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    waits.armed = waits.cancelling = false;
    uint64_t now = nx_loop_clock_ns();
    while (!nx_list_empty(&waits.queue)) {
        pending_t *p = nx_container_of(waits.queue.next, pending_t, wait_link);
        if (p->due_ns > now) break;
        nx_list_remove(&p->wait_link);
        pending_next(p);
    }
    waits_arm();
}

/* Arms the timeout for the earliest wait; an armed one set for later is cancelled, and its
 * completion re-arms. */
static void waits_arm(void) {
    if (nx_list_empty(&waits.queue)) return;
    nx_loop_t *loop = nx_engine_current_shard()->shard->loop;
    uint64_t first = nx_container_of(waits.queue.next, pending_t, wait_link)->due_ns;
    if (waits.armed) {
        if (first < waits.armed_ns && !waits.cancelling && nx_loop_cancel(loop, &waits.op) == 0)
            waits.cancelling = true;
        return;
    }
    if (nx_loop_timeout_at(loop, &waits.op, first) == 0) {
        waits.armed = true;
        waits.armed_ns = first;
        return;
    }
    /* No SQE to be had (the ring could not submit): answer the due ones late rather than never. */
    nx_log_warn("nxmock: cannot arm a timeout: answering waits now");
    uint64_t now = nx_loop_clock_ns();
    for (nx_list_t *n = waits.queue.next; n != &waits.queue; n = n->next)
        nx_container_of(n, pending_t, wait_link)->due_ns = now;
    on_waits_timeout(&waits.op, 0, 0, 0);
}

/* Queues <p> to go on at <p->due_ns>, in order of deadline (searched from the end: waits of one
 * latency arrive in order). */
static void waits_add(pending_t *p) {
    if (!waits.ready) {
        nx_list_init(&waits.queue);
        waits.op.cb = on_waits_timeout;
        waits.ready = true;
    }
    nx_list_t *after = waits.queue.prev;
    while (after != &waits.queue &&
           nx_container_of(after, pending_t, wait_link)->due_ns > p->due_ns)
        after = after->prev;
    nx_list_insert_head(after, &p->wait_link);
    waits_arm();
}

static void pending_free(pending_t *p) {
    nx_timer_stop(&p->timer);
    if (nx_list_linked(&p->wait_link)) nx_list_remove(&p->wait_link);
    json_decref(p->result);
    free(p);
}

/* Arms the next wait of <p>, or answers when none is left. */
static void pending_next(pending_t *p) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    if (p->step < p->steps) {
        nx_shard_timer_start(es->shard, &p->timer, p->step_ms);
        return;
    }
    if (p->delay_ns > 0) {
        p->due_ns = nx_loop_clock_ns() + p->delay_ns;
        p->delay_ns = 0;
        waits_add(p);
        return;
    }
    json_t *result = p->result;
    p->result = NULL;
    answer(p->call, p->outcome, result);
    pending_free(p);
}

static void on_pending_timer(nx_timer_t *t) {
    pending_t *p = nx_container_of(t, pending_t, timer);
    if (p->step < p->steps) {
        p->step++;
        char msg[64];
        snprintf(msg, sizeof(msg), "step %u of %u", p->step, p->steps);
        nx_mcp_call_progress(p->call, p->step, p->steps, msg);
    }
    pending_next(p);
}

static void on_pending_cancelled(nx_mcp_call_t *call, void *arg) {
    count(&my_counters()->cancelled);
    pending_free(arg);
}

/* Answers <call> with <outcome> and <result> (stolen) after the steps and the delay: inline
 * when there is nothing to wait for, the benchmark's path. */
static void serve(nx_mcp_call_t *call, outcome_t outcome, json_t *result, uint64_t delay_ns,
                  uint32_t steps, uint64_t step_ms) {
    if (delay_ns == 0 && steps == 0) {
        answer(call, outcome, result);
        return;
    }
    pending_t *p = nx_engine_current_shard() != NULL ? calloc(1, sizeof(*p)) : NULL;
    if (p == NULL) {
        json_decref(result);
        answer(call, OUTCOME_COUNT, NULL);
        return;
    }
    p->call = call;
    p->outcome = outcome;
    p->result = result;
    p->steps = steps;
    p->step_ms = step_ms;
    p->delay_ns = delay_ns;
    nx_timer_init(&p->timer, on_pending_timer);
    nx_mcp_call_on_cancel(call, on_pending_cancelled, p);
    pending_next(p);
}

/* A hung or reset call keeps no state, but its hook tells the core to free it when cancelled. */
static void on_abandoned_cancelled(nx_mcp_call_t *call, void *arg) {
    count(&my_counters()->cancelled);
}

/* Carries out a reset or a hang; the call is not to be touched afterwards. */
static void abandon(nx_mcp_call_t *call, outcome_t outcome) {
    nx_engine_shard_t *es = nx_engine_current_shard();
    if (outcome == OUTCOME_RESET && es != NULL && es->engine->stdio_mode)
        crash("connection reset on stdio"); /* no connection to reset: the process goes */
    nx_mcp_call_on_cancel(call, on_abandoned_cancelled, NULL);
    /* Where the transport cannot reset (a session's stream), a reset hangs instead. */
    if (outcome == OUTCOME_RESET) nx_mcp_call_drop_connection(call);
}

/* Draws and counts the outcome of a call of a faulty tool; true when the call was reset or
 * hung and so is already taken care of. */
static bool take_fault(nx_mcp_call_t *call, outcome_t *out) {
    *out = draw_outcome();
    count(&my_counters()->outcomes[*out]);
    if (*out != OUTCOME_RESET && *out != OUTCOME_HANG) return false;
    abandon(call, *out);
    return true;
}

/* ---- tools ---- */

static void tool_echo(nx_mcp_call_t *call, json_t *args, void *data) {
    begin_call(TOOL_ECHO);
    outcome_t o;
    if (take_fault(call, &o)) return;
    const json_t *m = json_object_get(args, "message");
    json_t *result =
        o == OUTCOME_OK ? text_result(json_string_value(m), json_string_length(m)) : NULL;
    serve(call, o, result, call_latency_ns(args), 0, 0);
}

/* The shortest of %.15g..%.17g that reads back as <v>, as JavaScript prints numbers. */
static void format_number(double v, char *out, size_t n) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void tool_add(nx_mcp_call_t *call, json_t *args, void *data) {
    begin_call(TOOL_ADD);
    outcome_t o;
    if (take_fault(call, &o)) return;
    const json_t *a = json_object_get(args, "a"), *b = json_object_get(args, "b");
    json_t *sum;
    json_int_t isum;
    if (json_is_integer(a) && json_is_integer(b) &&
        !__builtin_add_overflow(json_integer_value(a), json_integer_value(b), &isum)) {
        sum = json_integer(isum);
    } else {
        double d = json_number_value(a) + json_number_value(b);
        if (!isfinite(d)) {
            nx_mcp_call_return_text(call, "add: the sum is not a finite number", true);
            return;
        }
        sum = json_real(d);
    }
    char text[64];
    if (json_is_integer(sum))
        snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(sum));
    else
        format_number(json_real_value(sum), text, sizeof(text));
    json_t *result = json_pack("{s:[{s:s, s:s}], s:{s:o}}", "content", "type", "text", "text", text,
                               "structuredContent", "sum", sum);
    serve(call, o, result, call_latency_ns(args), 0, 0);
}

static void tool_progress(nx_mcp_call_t *call, json_t *args, void *data) {
    begin_call(TOOL_PROGRESS);
    outcome_t o;
    if (take_fault(call, &o)) return;
    json_int_t steps = json_integer_value(json_object_get(args, "steps"));
    json_int_t ms = json_integer_value(json_object_get(args, "ms"));
    serve(call, o, textf_result("done after %lld steps", (long long)steps), call_latency_ns(args),
          (uint32_t)steps, (uint64_t)ms);
}

static void tool_sleep(nx_mcp_call_t *call, json_t *args, void *data) {
    begin_call(TOOL_SLEEP);
    count(&my_counters()->outcomes[OUTCOME_OK]);
    json_int_t ms = json_integer_value(json_object_get(args, "ms"));
    serve(call, OUTCOME_OK, textf_result("slept %lld ms", (long long)ms), to_ns((double)ms), 0, 0);
}

static void tool_fail(nx_mcp_call_t *call, json_t *args, void *data) {
    begin_call(TOOL_FAIL);
    const char *mode = json_string_value(json_object_get(args, "mode"));
    outcome_t o = OUTCOME_ERROR;
    for (int i = OUTCOME_ERROR; i < OUTCOME_COUNT; i++)
        if (strcmp(mode, outcome_names[i]) == 0) o = (outcome_t)i;
    count(&my_counters()->outcomes[o]);
    if (o == OUTCOME_RESET || o == OUTCOME_HANG)
        abandon(call, o);
    else
        answer(call, o, NULL);
}

static void tool_stats(nx_mcp_call_t *call, json_t *args, void *data) {
    begin_call(TOOL_STATS);
    count(&my_counters()->outcomes[OUTCOME_OK]);
    nx_engine_shard_t *es = nx_engine_current_shard();
    uint32_t shards = es != NULL ? es->engine->shard_count : 1;
    if (shards > SLOTS) shards = SLOTS;
    uint64_t calls = 0, cancelled = 0, outcomes[OUTCOME_COUNT] = {0}, tools[TOOL_COUNT] = {0};
    json_t *per_shard = json_array();
    for (uint32_t s = 0; s < SLOTS; s++) {
        const counters_t *c = &counters[s];
        calls += load(&c->calls);
        cancelled += load(&c->cancelled);
        for (int i = 0; i < OUTCOME_COUNT; i++)
            outcomes[i] += load(&c->outcomes[i]);
        for (int i = 0; i < TOOL_COUNT; i++)
            tools[i] += load(&c->tools[i]);
        if (s < shards) json_array_append_new(per_shard, json_integer((json_int_t)load(&c->calls)));
    }
    json_t *by_outcome = json_object(), *by_tool = json_object();
    for (int i = 0; i < OUTCOME_COUNT; i++)
        json_object_set_new(by_outcome, outcome_names[i], json_integer((json_int_t)outcomes[i]));
    for (int i = 0; i < TOOL_COUNT; i++)
        json_object_set_new(by_tool, tool_names[i], json_integer((json_int_t)tools[i]));
    json_t *stats =
        json_pack("{s:I, s:o, s:I, s:o, s:o}", "calls", (json_int_t)calls, "outcomes", by_outcome,
                  "cancelled", (json_int_t)cancelled, "tools", by_tool, "shards", per_shard);
    char *text = json_dumps(stats, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *result = json_pack("{s:[{s:s, s:s}], s:o}", "content", "type", "text", "text",
                               text ? text : "{}", "structuredContent", stats);
    free(text);
    nx_mcp_call_return(call, result);
}

#define LATENCY_MS_PROP "\"latency_ms\":{\"type\":\"number\",\"minimum\":0,\"maximum\":600000}"

static const nx_mcp_tool_def_t tools[] = {
    {.name = "echo",
     .title = "Echo",
     .description = "Answers with the message it was given (the benchmark tool). Subject to "
                    "--latency and the fault rates; latency_ms overrides the latency.",
     .input_schema =
         "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\"}," LATENCY_MS_PROP
         "},\"required\":[\"message\"]}",
     .handler = tool_echo},
    {.name = "add",
     .title = "Add",
     .description = "Adds two numbers: the sum as text and as structuredContent {sum}. Subject to "
                    "--latency and the fault rates; latency_ms overrides the latency.",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"},"
                     "\"b\":{\"type\":\"number\"}," LATENCY_MS_PROP "},\"required\":[\"a\",\"b\"]}",
     .output_schema = "{\"type\":\"object\",\"properties\":{\"sum\":{\"type\":\"number\"}},"
                      "\"required\":[\"sum\"]}",
     .handler = tool_add},
    {.name = "progress",
     .title = "Progress",
     .description = "Sends a progress notification every ms milliseconds for steps steps, then "
                    "answers \"done after <steps> steps\". Subject to --latency (after the "
                    "steps) and the fault rates.",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"steps\":{\"type\":\"integer\","
                     "\"minimum\":0,\"maximum\":100000},\"ms\":{\"type\":\"integer\",\"minimum\":0,"
                     "\"maximum\":600000}," LATENCY_MS_PROP "},\"required\":[\"steps\",\"ms\"]}",
     .handler = tool_progress},
    {.name = "sleep",
     .title = "Sleep",
     .description = "Answers \"slept <ms> ms\" after ms milliseconds; no latency, no faults.",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\","
                     "\"minimum\":0,\"maximum\":600000}},\"required\":[\"ms\"]}",
     .handler = tool_sleep},
    {.name = "fail",
     .title = "Fail",
     .description = "Fails as mode says: a JSON-RPC error, an isError result, a connection "
                    "reset (on stdio the process exits with status 3) or no answer at all.",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"mode\":{\"type\":\"string\","
                     "\"enum\":[\"error\",\"isError\",\"reset\",\"hang\"]}},"
                     "\"required\":[\"mode\"]}",
     .handler = tool_fail},
    {.name = "stats",
     .title = "Statistics",
     .description = "Counters of this process: calls, calls by outcome and by tool, cancelled "
                    "calls, calls per shard.",
     .input_schema = "{\"type\":\"object\",\"properties\":{}}",
     .handler = tool_stats},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- flags ---- */

/* Reads all of <s> as a finite number into <out>. */
static bool read_number(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v)) return false;
    *out = v;
    return true;
}

static int parse_latency(const char *value, void *arg) {
    static const char expected[] = "0, fixed:MS, uniform:MIN:MAX, exp:MEAN or lognormal:P50:P99 "
                                   "(milliseconds, at most 600000)";
    char buf[128];
    double v[2] = {0, 0};
    int n = 0;
    const char *why = NULL;
    if (strcmp(value, "0") == 0) {
        mock.latency = LATENCY_NONE;
        return 0;
    }
    size_t len = strlen(value);
    /* strtok_r would let empty fields through ("uniform::5", "fixed:5:") */
    if (len == 0 || len >= sizeof(buf) || strstr(value, "::") != NULL || value[0] == ':' ||
        value[len - 1] == ':')
        goto bad;
    memcpy(buf, value, len + 1);
    char *save = NULL, *kind = strtok_r(buf, ":", &save), *tok;
    while ((tok = strtok_r(NULL, ":", &save)) != NULL) {
        if (n == 2 || !read_number(tok, &v[n])) goto bad;
        if (v[n] < 0 || v[n] > MAX_MS) {
            why = "values must be from 0 to 600000";
            goto bad;
        }
        n++;
    }
    if (kind == NULL) goto bad;
    if (strcmp(kind, "fixed") == 0 && n == 1) {
        mock.latency = v[0] > 0 ? LATENCY_FIXED : LATENCY_NONE;
        mock.lat_a = v[0];
    } else if (strcmp(kind, "uniform") == 0 && n == 2) {
        if (v[0] > v[1]) {
            why = "MIN is above MAX";
            goto bad;
        }
        mock.latency = LATENCY_UNIFORM;
        mock.lat_a = v[0];
        mock.lat_b = v[1];
    } else if (strcmp(kind, "exp") == 0 && n == 1) {
        if (v[0] <= 0) {
            why = "MEAN must be above 0";
            goto bad;
        }
        mock.latency = LATENCY_EXP;
        mock.lat_a = v[0];
    } else if (strcmp(kind, "lognormal") == 0 && n == 2) {
        if (v[0] <= 0 || v[1] < v[0]) {
            why = "P50 must be above 0 and P99 at least P50";
            goto bad;
        }
        /* ln X ~ N(mu, sigma): mu = ln P50, and P99 = exp(mu + z99 sigma). */
        mock.latency = LATENCY_LOGNORMAL;
        mock.lat_a = log(v[0]);
        mock.lat_b = (log(v[1]) - log(v[0])) / 2.3263478740408408;
    } else {
        goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "nxmock: --latency: %s%sexpected %s, got '%s'\n", why ? why : "",
            why ? "; " : "", expected, value);
    return -1;
}

static int parse_rate(const char *value, const char *flag, outcome_t outcome) {
    double p;
    if (!read_number(value, &p) || p < 0 || p > 1) {
        fprintf(stderr, "nxmock: %s: expected a probability from 0 to 1, got '%s'\n", flag, value);
        return -1;
    }
    mock.rate[outcome] = p;
    mock.faults = false;
    for (int o = OUTCOME_ERROR; o < OUTCOME_COUNT; o++)
        mock.faults = mock.faults || mock.rate[o] > 0;
    return 0;
}

static int parse_error_rate(const char *value, void *arg) {
    return parse_rate(value, "--error-rate", OUTCOME_ERROR);
}

static int parse_is_error_rate(const char *value, void *arg) {
    return parse_rate(value, "--is-error-rate", OUTCOME_IS_ERROR);
}

static int parse_reset_rate(const char *value, void *arg) {
    return parse_rate(value, "--reset-rate", OUTCOME_RESET);
}

static int parse_hang_rate(const char *value, void *arg) {
    return parse_rate(value, "--hang-rate", OUTCOME_HANG);
}

/* Reads all of <s> as a decimal integer from 0 to <max>. */
static bool read_count(const char *s, unsigned long long max, unsigned long long *out) {
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9') return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > max) return false;
    *out = v;
    return true;
}

static int parse_seed(const char *value, void *arg) {
    unsigned long long v;
    if (!read_count(value, UINT64_MAX, &v)) {
        fprintf(stderr, "nxmock: --seed: expected an integer from 0 to %llu, got '%s'\n",
                (unsigned long long)UINT64_MAX, value);
        return -1;
    }
    mock.seed = v;
    mock.seeded = true;
    return 0;
}

static int parse_crash_after(const char *value, void *arg) {
    unsigned long long v;
    if (!read_count(value, 1000000000000ull, &v)) {
        fprintf(stderr, "nxmock: --crash-after: expected a number of calls (0 or more), got '%s'\n",
                value);
        return -1;
    }
    mock.crash_after = (long long)v;
    return 0;
}

static int parse_name(const char *value, void *arg) {
    size_t n = strlen(value);
    bool printable = n > 0 && n <= 128;
    for (size_t i = 0; printable && i < n; i++)
        printable = (unsigned char)value[i] >= 0x20 && value[i] != 0x7f;
    if (!printable) {
        fprintf(stderr, "nxmock: --name: expected 1 to 128 printable characters, got '%s'\n",
                value);
        return -1;
    }
    mock.name = value;
    return 0;
}

static const nx_app_flag_t flags[] = {
    {"--latency", true,
     "latency of echo, add and progress: 0 (inline, the default), fixed:MS, uniform:MIN:MAX, "
     "exp:MEAN or lognormal:P50:P99 (ms, fractions allowed; argument latency_ms wins)",
     parse_latency},
    {"--error-rate", true, "fraction of calls answered with JSON-RPC error -32603 (0..1)",
     parse_error_rate},
    {"--is-error-rate", true, "fraction of calls answered with an isError result (0..1)",
     parse_is_error_rate},
    {"--reset-rate", true,
     "fraction of calls whose connection is reset; on stdio the process exits with status 3",
     parse_reset_rate},
    {"--hang-rate", true, "fraction of calls never answered, until cancelled (0..1)",
     parse_hang_rate},
    {"--seed", true, "seed of the per-shard PRNG (default: from the clock; logged at start)",
     parse_seed},
    {"--crash-after", true,
     "answer N tool calls, then exit with status 3 when the next one arrives", parse_crash_after},
    {"--name", true, "server name announced by initialize (default nxmock)", parse_name},
};

static const char about[] =
    "nxmock: a mock MCP backend for fault tests and benchmarks (Streamable HTTP, WebSocket, "
    "stdio).\n"
    "Tools: echo {message}, add {a, b}, progress {steps, ms}, sleep {ms}, fail {mode}, stats {}.\n"
    "Each call of echo, add or progress draws one outcome: a JSON-RPC error, an isError result,\n"
    "a connection reset, a hang, else success - in that order of the cumulative rates. Latency\n"
    "applies to the answered ones, to the microsecond (progress steps: 1 ms timer ticks).\n"
    "On stdio there is no connection to reset: a reset exits the process with status 3, as a\n"
    "crash would, and so does the call after the last one --crash-after allows.";

static int setup(nx_mcp_server_t *server, void *arg, char *err, size_t errlen) {
    if (!mock.seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        mock.seed =
            ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 32);
    }
    int rc = nx_mcp_server_set_info(server, mock.name, NX_VERSION);
    if (rc < 0) {
        snprintf(err, errlen, "cannot set the server name");
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < COUNT(tools); i++)
        rc = nx_mcp_server_add_tool(server, &tools[i], err, errlen);
    if (rc == 0)
        nx_log_info("nxmock: seed %llu, error %g, isError %g, reset %g, hang %g, crash after %lld",
                    (unsigned long long)mock.seed, mock.rate[OUTCOME_ERROR],
                    mock.rate[OUTCOME_IS_ERROR], mock.rate[OUTCOME_RESET], mock.rate[OUTCOME_HANG],
                    mock.crash_after);
    return rc;
}

int main(int argc, char **argv) {
    static const nx_app_t app = {
        .about = about,
        .setup = setup,
        .flags = flags,
        .flag_count = COUNT(flags),
    };
    return nx_app_main(argc, argv, &app);
}
