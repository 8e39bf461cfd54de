/* The workflow executor (see workflow_exec.h). An execution is a tree of frames: the root runs
 * the workflow's steps in order; each running step has a frame; groups, switch cases and map
 * iterations run their step lists in child frames. A frame ends by queueing its outcome on the
 * execution's ready list; one pump per execution delivers outcomes to parents in a loop, so a
 * step that finishes inline (a cache hit, a skipped step, a native tool) never deepens the
 * stack, whatever the number of map items. Cancelling a frame cancels its subtree: calls in
 * flight hear notifications/cancelled, REST requests are aborted, timers stop.
 *
 * Life of a step frame: start_step (condition, events, timer) -> kind-specific start ->
 * outcome (call answered, children joined, timeout) -> finish (on_error, record, step.finished)
 * -> queued -> delivered to the parent -> freed. */
#include "workflow_exec.h"

#include "backends.h"
#include "cache.h"
#include "invoke.h"
#include "json_write.h"
#include "jsonrpc.h"
#include "log.h"
#include "nexus/errors.h"
#include "nexus/list.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest map input accepted (items, before batching). */
#define MAX_MAP_ITEMS 100000u

typedef struct frame frame_t;

/* What a step did, for the execution record (the latest run of steps inside a map). */
typedef struct step_record {
    const char *status; /* NULL = not run */
    uint32_t attempts, runs;
    bool cached, stale;
    uint64_t duration_ms;
    json_t *error;
} step_record_t;

struct nx_exec {
    nx_engine_shard_t *es;
    nx_workflows_t *wfs; /* referenced while the execution lives */
    const nx_workflow_t *wf;
    char id[64];
    nx_exec_status_t status;
    nx_exec_hooks_t hooks;
    void *hooks_arg;
    json_t *inputs;
    json_t *result, *error;
    uint64_t started_ms, ended_ms; /* monotonic */
    int64_t started_wall_ms, ended_wall_ms;
    uint64_t deadline_at; /* monotonic ms */
    frame_t *root;
    nx_list_t ready; /* frames whose outcome awaits delivery */
    bool pumping, ended, freed_when_done, done_told;
    nx_timer_t start_timer, deadline_timer;
    step_record_t *records; /* wf->step_count */
    uint32_t finished_steps;
    uint64_t event_seq;
    uint32_t depth;      /* workflows this one runs inside */
    bool cancel_pending; /* nx_exec_cancel while the executor was busy */
    /* The id and the workflow's name as JSON strings, shared by every event (made once). */
    json_t *id_json, *name_json;
    /* The start events (execution.started, step.started) of this loop turn: numbered and
     * timed when they happen, their data built and told to the hooks once the turn's I/O is
     * submitted (or before any later event), not on the way to the steps' first calls. */
    struct start_event *starts;
    size_t nstarts, starts_cap;
    nx_later_t starts_later;
};

/* A start event waiting to be told: the step (NULL: execution.started), its map iteration. */
struct start_event {
    const nx_step_t *step;
    bool iterated;
    uint32_t iteration;
    uint64_t seq;
    int64_t wall_ms;
};

typedef enum frame_op {
    OP_NONE,
    OP_INVOKE, /* an MCP call in flight */
    OP_HTTP,   /* a REST request in flight */
    OP_CACHE,  /* waiting for the cache (Redis or another caller's flight) */
} frame_op_t;

struct frame {
    nx_exec_t *x;
    frame_t *parent;
    nx_list_t link;        /* in the parent's kids until delivered */
    nx_list_t ready_link;  /* in x->ready once finished, until delivered */
    nx_list_t kids;        /* running child frames */
    const nx_step_t *step; /* NULL for step lists that are not steps (root, iteration) */
    json_t *scope;         /* {input, steps, item?, index?, session} (owned reference) */
    uint64_t deadline_at;
    uint64_t started_ns;
    /* step lists (root, group, switch case, map iteration) */
    const nx_step_list_t *seq;
    uint32_t seq_pos;
    json_t *last; /* the result of the list's last finished step */
    /* parallel, map, fallback */
    uint32_t next, running, succeeded, failed, total;
    json_t *acc;   /* parallel: {id: result}; map: [result per iteration] */
    json_t *items; /* map: the items or batches */
    json_t *first_error;
    /* calls */
    frame_op_t op;
    nx_invoke_t *inv;
    nx_backends_http_call_t *http;
    nx_cache_wait_t *wait;
    bool cacheable, leading;
    nx_cache_key_t key;
    uint32_t attempts;
    bool cached, stale;
    nx_timer_t timeout;
    /* outcome, once finished */
    bool finished, ok;
    const char *status;
    json_t *out, *err;
    uint32_t iteration; /* map iterations: the position in the parent's results */
    uint32_t relooks;   /* cache lookups repeated after a cancelled leader */
    bool dying;         /* a cancel of this frame's subtree is under way */
};

static void pump(nx_exec_t *x);
static void start_list_next(frame_t *f);

/* Every way into the executor from outside (a timer, a call's answer, the cache, a cancel)
 * holds deliveries while it works and delivers when it is done: so nothing it touches can be
 * delivered and freed under it, whatever callbacks run inline meanwhile (a cache completion
 * wakes followers inline; cancelling a call may answer another). Nested holds deliver once,
 * at the outermost release, which must be the entry point's last access to <x>. */
static bool hold(nx_exec_t *x) {
    bool held = x->pumping;
    x->pumping = true;
    return held;
}

static void release(nx_exec_t *x, bool held) {
    x->pumping = held;
    if (!held) pump(x);
}
static void on_step_timeout(nx_timer_t *t);
static void deliver(frame_t *f);

/* ---- small helpers ---- */

static uint64_t now_ms(const nx_exec_t *x) {
    return nx_shard_now_ms(x->es->shard);
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A JSON string of <s>, which is known to be UTF-8: step ids, workflow and tool names (checked
 * at load to be ASCII), execution ids, status and kind names. Skips jansson's validation. */
static json_t *ascii_json(const char *s) {
    return json_stringn_nocheck(s, strlen(s));
}

/* Sets <key> of <o> to <v> (stolen); <key> is one of ours (ASCII, no NUL). */
static void put_new(json_t *o, const char *key, json_t *v) {
    json_object_set_new_nocheck(o, key, v);
}

/* "2026-11-23T20:07:24.779Z". Every event carries one: the text up to the seconds is kept per
 * thread and reused while the second lasts, so only the milliseconds are written. */
static const char *iso_time_text(int64_t ms) {
    static _Thread_local int64_t cached_s = -1;
    static _Thread_local char buf[64];
    int64_t sec = ms / 1000;
    if (sec != cached_s) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.000Z", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_s = sec;
    }
    int milli = (int)(ms % 1000);
    size_t at = strlen(buf) - 4; /* the three digits before the Z */
    buf[at] = (char)('0' + milli / 100);
    buf[at + 1] = (char)('0' + milli / 10 % 10);
    buf[at + 2] = (char)('0' + milli % 10);
    return buf;
}

static json_t *iso_time(int64_t ms) {
    return ascii_json(iso_time_text(ms));
}

static json_t *error_new(const char *message, const nx_step_t *step) {
    json_t *e = json_pack("{s:s}", "message", message);
    if (e != NULL && step != NULL) json_object_set_new(e, "step", json_string(step->id));
    return e;
}

static json_t *error_fmt(const nx_step_t *step, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static json_t *error_fmt(const nx_step_t *step, const char *fmt, ...) {
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    return error_new(m, step);
}

/* Adds the members every event carries and tells the hooks. */
static void tell(nx_exec_t *x, const char *type, json_t *data, uint64_t seq, int64_t ms) {
    if (data == NULL) return;
    put_new(data, "execution", json_incref(x->id_json));
    put_new(data, "workflow", json_incref(x->name_json));
    put_new(data, "seq", json_integer((json_int_t)seq));
    put_new(data, "time", iso_time(ms));
    if (x->hooks.event != NULL) x->hooks.event(x->hooks_arg, x, type, data);
    json_decref(data);
}

/* Tells the start events waiting, in order. */
static void tell_starts(nx_exec_t *x) {
    nx_later_cancel(&x->starts_later);
    /* Taken as a batch: a hook may cancel the run, whose own events then follow these. */
    size_t n = x->nstarts;
    x->nstarts = 0;
    for (size_t i = 0; i < n; i++) {
        const struct start_event *se = &x->starts[i];
        if (x->hooks.event == NULL) continue; /* detached: nobody to tell */
        json_t *data = json_object();
        if (data == NULL) continue;
        if (se->step == NULL) {
            put_new(data, "inputs", json_incref(x->inputs));
            put_new(data, "steps", json_integer((json_int_t)x->wf->step_count));
            tell(x, "execution.started", data, se->seq, se->wall_ms);
            continue;
        }
        put_new(data, "step", ascii_json(se->step->id));
        put_new(data, "kind", ascii_json(nx_step_kind_name(se->step->kind)));
        if (se->iterated) put_new(data, "iteration", json_integer(se->iteration));
        tell(x, "step.started", data, se->seq, se->wall_ms);
    }
}

static void on_starts_later(nx_later_t *l) {
    nx_exec_t *x = nx_container_of(l, nx_exec_t, starts_later);
    bool held = hold(x);
    tell_starts(x);
    release(x, held);
}

/* Notes a start event (<step> NULL: the execution's) to be told after the turn's I/O. */
static void emit_start(nx_exec_t *x, const nx_step_t *step, bool iterated, uint32_t iteration) {
    if (x->nstarts == x->starts_cap) {
        size_t cap = x->starts_cap ? x->starts_cap * 2 : 16;
        struct start_event *grown = realloc(x->starts, cap * sizeof(*grown));
        if (grown == NULL) {
            tell_starts(x); /* out of memory: tell what waits, and drop this one */
            return;
        }
        x->starts = grown;
        x->starts_cap = cap;
    }
    x->starts[x->nstarts++] =
        (struct start_event){step, iterated, iteration, ++x->event_seq, wall_ms()};
    if (x->es != NULL && x->es->shard != NULL)
        nx_shard_after_submit(x->es->shard, &x->starts_later);
}

static void emit(nx_exec_t *x, const char *type, json_t *data) {
    if (data == NULL) return;
    if (x->nstarts > 0) tell_starts(x); /* every event in the order it happened */
    tell(x, type, data, ++x->event_seq, wall_ms());
}

static uint64_t remaining_ms(const frame_t *f) {
    uint64_t now = now_ms(f->x);
    return f->deadline_at > now ? f->deadline_at - now : 0;
}

/* ---- frames ---- */

static frame_t *frame_new(nx_exec_t *x, frame_t *parent, const nx_step_t *step, json_t *scope) {
    frame_t *f = calloc(1, sizeof(*f));
    if (f == NULL) return NULL;
    f->x = x;
    f->parent = parent;
    f->step = step;
    f->scope = json_incref(scope);
    nx_list_init(&f->kids);
    nx_list_init(&f->link);
    nx_list_init(&f->ready_link);
    nx_timer_init(&f->timeout, on_step_timeout);
    f->started_ns = nx_loop_clock_ns();
    f->deadline_at = parent ? parent->deadline_at : x->deadline_at;
    if (step != NULL && step->timeout_ms != 0) {
        uint64_t mine = now_ms(x) + step->timeout_ms;
        if (mine < f->deadline_at) f->deadline_at = mine;
    }
    if (parent != NULL) nx_list_insert_tail(&parent->kids, &f->link);
    return f;
}

static void frame_free(frame_t *f) {
    nx_timer_stop(&f->timeout);
    json_decref(f->scope);
    json_decref(f->last);
    json_decref(f->acc);
    json_decref(f->items);
    json_decref(f->first_error);
    json_decref(f->out);
    json_decref(f->err);
    free(f);
}

static json_t *steps_of(const frame_t *f) {
    return json_object_get(f->scope, "steps");
}

/* Stops what <f> has in flight (not its children). */
static void frame_stop_op(frame_t *f) {
    /* Forget what is in flight before calling out: a cancel may call back into us. */
    frame_op_t op = f->op;
    nx_invoke_t *inv = f->inv;
    nx_backends_http_call_t *http = f->http;
    nx_cache_wait_t *wait = f->wait;
    bool leading = f->leading;
    f->op = OP_NONE;
    f->inv = NULL;
    f->http = NULL;
    f->wait = NULL;
    f->leading = false;
    nx_timer_stop(&f->timeout);
    switch (op) {
    case OP_INVOKE:
        nx_invoke_cancel(inv);
        break;
    case OP_HTTP:
        nx_backends_http_cancel(http);
        break;
    case OP_CACHE:
        nx_cache_lookup_cancel(wait);
        break;
    case OP_NONE:
        break;
    }
    /* A leader that goes away still ends its flight; its followers look the key up again
     * (one of them leads) rather than fail with it. */
    if (leading && f->x->es->cache != NULL)
        nx_cache_complete(f->x->es->cache, &f->key, NX_CACHE_LEADER_GONE,
                          sizeof(NX_CACHE_LEADER_GONE) - 1, false, 0);
}

static void record_step(frame_t *f, const char *status);
static void frame_cancel(frame_t *f);

/* Marks <f>'s subtree as being cancelled, before any of it is: a cache follower in it that
 * hears its leader went away then waits for its own cancel instead of calling the backend. */
static void mark_dying(frame_t *f) {
    f->dying = true;
    for (nx_list_t *it = f->kids.next; it != &f->kids; it = it->next)
        mark_dying(nx_container_of(it, frame_t, link));
}

static bool is_dying(const frame_t *f) {
    for (; f != NULL; f = f->parent)
        if (f->dying) return true;
    return false;
}

/* Cancels the children of <f> still running (a join was decided, or <f> fails). */
static void cancel_kids(frame_t *f) {
    for (nx_list_t *it = f->kids.next; it != &f->kids; it = it->next)
        mark_dying(nx_container_of(it, frame_t, link));
    while (!nx_list_empty(&f->kids))
        frame_cancel(nx_container_of(f->kids.next, frame_t, link));
}

/* Cancels <f> and its subtree (depth first); records cancelled steps; frees them. */
static void frame_cancel(frame_t *f) {
    if (!f->dying) mark_dying(f);
    while (!nx_list_empty(&f->kids)) {
        frame_t *k = nx_container_of(f->kids.next, frame_t, link);
        frame_cancel(k);
    }
    frame_stop_op(f);
    nx_list_remove(&f->link);       /* from the parent's kids */
    nx_list_remove(&f->ready_link); /* an outcome not yet delivered is dropped */
    if (f->step != NULL && !f->finished) record_step(f, "cancelled");
    frame_free(f);
}

/* Writes steps.<id> in the frame's scope and the execution's record, and tells the listeners. */
static void record_step(frame_t *f, const char *status) {
    nx_exec_t *x = f->x;
    const nx_step_t *s = f->step;
    uint64_t ms = (nx_loop_clock_ns() - f->started_ns) / 1000000u;
    step_record_t *r = &x->records[s->index];
    r->status = status;
    r->attempts = f->attempts;
    r->cached = f->cached;
    r->stale = f->stale;
    r->duration_ms = ms;
    r->runs++;
    json_decref(r->error);
    r->error = json_incref(f->err);
    x->finished_steps++;
    /* Built member by member (no json_pack: its format parsing and UTF-8 checks were a tenth
     * of a fan-out's CPU between them); the names and statuses are ours, ASCII. */
    json_t *status_json = ascii_json(status);
    json_t *rec = json_object();
    if (rec != NULL) {
        put_new(rec, "status", json_incref(status_json));
        put_new(rec, "result", json_incref(f->out ? f->out : json_null()));
        put_new(rec, "error", json_incref(f->err ? f->err : json_null()));
        put_new(rec, "cached", json_boolean(f->cached));
        put_new(rec, "attempts", json_integer((json_int_t)f->attempts));
        put_new(rec, "duration_ms", json_integer((json_int_t)ms));
        if (f->stale) put_new(rec, "stale", json_true());
    }
    json_t *steps = steps_of(f);
    if (rec != NULL && steps != NULL)
        json_object_set_new_nocheck(steps, s->id, rec);
    else
        json_decref(rec);
    json_t *ev = json_object();
    if (ev != NULL) {
        put_new(ev, "step", ascii_json(s->id));
        put_new(ev, "kind", ascii_json(nx_step_kind_name(s->kind)));
        put_new(ev, "status", json_incref(status_json));
        put_new(ev, "duration_ms", json_integer((json_int_t)ms));
        put_new(ev, "cached", json_boolean(f->cached));
        put_new(ev, "attempts", json_integer((json_int_t)f->attempts));
        if (f->stale) put_new(ev, "stale", json_true());
        if (f->err != NULL) put_new(ev, "error", json_incref(f->err));
        if (f->parent != NULL && f->parent->step == NULL && f->parent->parent != NULL)
            put_new(ev, "iteration", json_integer(f->parent->iteration));
    }
    json_decref(status_json);
    emit(x, "step.finished", ev);
}

/* Ends frame <f> with an outcome (<out> and <err> stolen) and queues it for its parent. Steps
 * apply on_error here and record themselves. */
static void finish(frame_t *f, bool ok, json_t *out, json_t *err) {
    cancel_kids(f); /* none, except when a composite step fails early (out of memory) */
    frame_stop_op(f);
    json_decref(f->out);
    json_decref(f->err);
    f->out = out;
    f->err = err;
    const nx_step_t *s = f->step;
    const char *status = ok ? "succeeded" : "failed";
    if (f->status != NULL) status = f->status; /* skipped */
    if (s != NULL && !ok) {
        if (s->on_error == NX_ON_ERROR_CONTINUE) {
            ok = true; /* recorded as failed; the workflow goes on with null */
        } else if (s->on_error == NX_ON_ERROR_VALUE) {
            char msg[200] = "";
            json_t *v = nx_jtemplate_eval(s->on_error_value, f->scope, msg, sizeof(msg));
            if (v != NULL) {
                ok = true;
                status = "succeeded";
                json_decref(f->out);
                f->out = v; /* the error it recovered from stays in the record */
            }
        }
    }
    f->ok = ok;
    f->finished = true;
    if (s != NULL) record_step(f, status);
    if (ok && strcmp(status, "failed") == 0) { /* on_error: continue goes on with null */
        json_decref(f->out);
        f->out = json_null();
    }
    nx_list_insert_tail(&f->x->ready, &f->ready_link);
    pump(f->x);
}

/* ---- calls ---- */

/* The useful value of a CallToolResult: structuredContent, else the text (parsed when it is
 * JSON as a whole), else the content array. */
static json_t *tool_value(const json_t *result) {
    json_t *sc = json_object_get(result, "structuredContent");
    if (sc != NULL) return json_incref(sc);
    json_t *content = json_object_get(result, "content");
    size_t texts = 0;
    const char *only = NULL;
    size_t i;
    json_t *item;
    json_array_foreach(content, i, item) {
        if (json_is_string(json_object_get(item, "text"))) {
            texts++;
            only = json_string_value(json_object_get(item, "text"));
        }
    }
    if (texts == 1 && json_array_size(content) == 1) {
        json_t *parsed = json_loads(only, JSON_DECODE_ANY, NULL);
        return parsed ? parsed : json_string(only);
    }
    if (texts > 0 && texts == json_array_size(content)) {
        json_t *joined = json_string("");
        json_array_foreach(content, i, item) {
            const char *t = json_string_value(json_object_get(item, "text"));
            json_t *n = json_sprintf("%s%s%s", json_string_value(joined), i ? "\n" : "", t);
            json_decref(joined);
            joined = n;
        }
        return joined;
    }
    return content ? json_incref(content) : json_null();
}

/* The text of an isError result, for the step's error message. */
static const char *tool_error_text(const json_t *result) {
    json_t *content = json_object_get(result, "content");
    size_t i;
    json_t *item;
    json_array_foreach(content, i, item) {
        const char *t = json_string_value(json_object_get(item, "text"));
        if (t != NULL) return t;
    }
    return "the tool reported an error";
}

/* A call's outcome: fills the cache flight it leads, or answers from a stale entry when it
 * failed and one is there. */
static void call_outcome(frame_t *f, bool ok, json_t *value, json_t *err) {
    nx_cache_t *c = f->x->es->cache;
    if (f->leading && c != NULL) {
        f->leading = false;
        const char *stale = NULL;
        size_t stale_len = 0;
        if (!ok && nx_cache_stale(c, &f->key, &stale, &stale_len)) {
            json_t *v = json_loadb(stale, stale_len, JSON_DECODE_ANY, NULL);
            if (v != NULL) {
                nx_cache_note_stale(c);
                nx_cache_complete(c, &f->key, stale, stale_len, true, 0);
                json_decref(err);
                json_decref(value);
                f->cached = f->stale = true;
                finish(f, true, v, NULL);
                return;
            }
        }
        char *text = json_dumps(ok ? value : err, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text != NULL) {
            nx_cache_complete(c, &f->key, text, strlen(text), ok, ok ? f->step->cache_ttl_ms : 0);
            free(text);
        } else {
            static const char oom[] = "{\"message\":\"out of memory\"}";
            nx_cache_complete(c, &f->key, oom, sizeof(oom) - 1, false, 0);
        }
    }
    finish(f, ok, value, err);
}

static void invoke_done(frame_t *f, const json_t *result, const json_t *error, uint32_t attempts) {
    f->inv = NULL;
    f->op = OP_NONE;
    f->attempts = attempts;
    if (error != NULL) {
        const char *m = json_string_value(json_object_get(error, "message"));
        json_t *e = error_new(m ? m : "the call failed", f->step);
        json_object_set(e, "code", json_object_get(error, "code"));
        if (json_object_get(error, "data") != NULL)
            json_object_set(e, "data", json_object_get(error, "data"));
        call_outcome(f, false, NULL, e);
        return;
    }
    if (json_is_true(json_object_get(result, "isError"))) {
        json_t *e = error_new(tool_error_text(result), f->step);
        json_object_set_new(e, "isError", json_true());
        call_outcome(f, false, NULL, e);
        return;
    }
    call_outcome(f, true, tool_value(result), NULL);
}

static void on_invoke_done(void *arg, const json_t *result, const json_t *error,
                           uint32_t attempts) {
    frame_t *f = arg;
    nx_exec_t *x = f->x;
    bool held = hold(x);
    invoke_done(f, result, error, attempts);
    release(x, held);
}

static void http_done(frame_t *f, const json_t *response, const json_t *error, uint32_t attempts) {
    f->http = NULL;
    f->op = OP_NONE;
    f->attempts = attempts;
    if (error != NULL) {
        const char *m = json_string_value(json_object_get(error, "message"));
        json_t *e = error_new(m ? m : "the request failed", f->step);
        if (json_object_get(error, "data") != NULL)
            json_object_set(e, "data", json_object_get(error, "data"));
        call_outcome(f, false, NULL, e);
        return;
    }
    json_int_t status = json_integer_value(json_object_get(response, "status"));
    json_t *body = json_object_get(response, "body");
    if (status >= 400) {
        json_t *e = error_fmt(f->step, "%s answered HTTP %d", f->step->server, (int)status);
        json_object_set_new(e, "status", json_integer(status));
        if (body != NULL) json_object_set(e, "body", body);
        call_outcome(f, false, NULL, e);
        return;
    }
    call_outcome(f, true, body ? json_incref(body) : json_null(), NULL);
}

static void on_http_done(void *arg, const json_t *response, const json_t *error,
                         uint32_t attempts) {
    frame_t *f = arg;
    nx_exec_t *x = f->x;
    bool held = hold(x);
    http_done(f, response, error, attempts);
    release(x, held);
}

/* The _meta of a call: what is left of the deadline, and the step's retry policy. */
static json_t *call_meta(const frame_t *f) {
    json_t *meta = json_object();
    put_new(meta, NX_EXEC_META_DEPTH, json_integer((json_int_t)f->x->depth + 1));
    uint64_t left = remaining_ms(f);
    put_new(meta, NX_BACKENDS_META_TIMEOUT, json_integer((json_int_t)(left ? left : 1)));
    const nx_step_t *s = f->step;
    if (s->has_retry)
        json_object_set_new(meta, NX_BACKENDS_META_RETRY,
                            json_pack("{s:i, s:I, s:I}", "attempts", (int)s->retry.max_attempts,
                                      "base", (json_int_t)s->retry.base_ms, "cap",
                                      (json_int_t)s->retry.cap_ms));
    return meta;
}

static void append_query(nx_buf_t *b, const json_t *query);

/* Sends the call of <f> (after the cache said to). <req> holds the evaluated request: for a tool
 * its arguments, for REST {method, path, query, headers, body}. */
static void send_call(frame_t *f, json_t *req) {
    const nx_step_t *s = f->step;
    nx_exec_t *x = f->x;
    if (remaining_ms(f) == 0) {
        call_outcome(f, false, NULL, error_fmt(s, "no time left for step %s", s->id));
        return;
    }
    if (s->kind == NX_STEP_CALL) {
        json_t *params = json_object();
        if (params != NULL) {
            put_new(params, "name", ascii_json(s->tool));
            put_new(params, "arguments", json_incref(req));
            put_new(params, "_meta", call_meta(f));
        }
        nx_invoke_opts_t opts = {0};
        nx_invoke_t *inv = NULL;
        f->op = OP_INVOKE;
        int rc = params ? nx_invoke(x->es->engine->mcp, "tools/call", params, &opts, on_invoke_done,
                                    f, &inv)
                        : -ENOMEM;
        json_decref(params);
        if (rc < 0) {
            f->op = OP_NONE;
            call_outcome(f, false, NULL, error_new("out of memory", s));
            return;
        }
        if (inv != NULL) f->inv = inv; /* else answered inline: <f> is queued */
        return;
    }
    /* REST */
    nx_buf_t path;
    nx_buf_init(&path);
    const char *p = json_string_value(json_object_get(req, "path"));
    nx_buf_append(&path, p, strlen(p));
    append_query(&path, json_object_get(req, "query"));
    nx_buf_append(&path, "", 1);
    json_t *hdrs = json_object_get(req, "headers");
    size_t nh = json_object_size(hdrs), i = 0;
    nx_http_header_t *fields = nh ? calloc(nh, sizeof(*fields)) : NULL;
    char **values = nh ? calloc(nh, sizeof(char *)) : NULL;
    const char *k;
    json_t *v;
    json_object_foreach(hdrs, k, v) {
        if (fields == NULL || values == NULL) break;
        values[i] = json_is_string(v) ? strdup(json_string_value(v))
                                      : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fields[i].name = (nx_str_t){k, strlen(k)};
        fields[i].value = (nx_str_t){values[i] ? values[i] : "", values[i] ? strlen(values[i]) : 0};
        i++;
    }
    json_t *body = json_object_get(req, "body");
    char *body_text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    nx_backoff_config_t retry = s->retry;
    nx_backends_http_request_t hr = {
        .method = s->method,
        .path = (const char *)path.data,
        .headers = fields,
        .header_count = i,
        .body = body_text,
        .body_len = body_text ? strlen(body_text) : 0,
        .content_type = body_text ? "application/json" : NULL,
        .timeout_ms = (uint32_t)(remaining_ms(f) > UINT32_MAX ? UINT32_MAX : remaining_ms(f)),
        .retry = s->has_retry ? &retry : NULL,
    };
    int rc = 0;
    f->op = OP_HTTP;
    nx_backends_http_call_t *call =
        x->es->engine->backends
            ? nx_backends_http(x->es->engine->backends, s->server, &hr, on_http_done, f, &rc)
            : NULL;
    for (size_t j = 0; j < i; j++)
        free(values[j]);
    free(values);
    free(fields);
    free(body_text);
    nx_buf_dispose(&path);
    if (call == NULL) {
        f->op = OP_NONE;
        call_outcome(f, false, NULL,
                     rc == -EINVAL   ? error_fmt(s,
                                                 "step %s: the request to %s has a CR, LF or NUL in "
                                                   "its method, path or a header",
                                                 s->id, s->server)
                     : rc == -ENOMEM ? error_new("out of memory", s)
                                     : error_fmt(s, "no rest backend %s", s->server));
        return;
    }
    f->http = call;
}

static bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void append_encoded(nx_buf_t *b, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (unreserved(c)) {
            nx_buf_append(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            nx_buf_append(b, e, 3);
        }
    }
}

/* Adds ?k=v&... for the members of <query> (strings as they are, others as JSON). */
static void append_query(nx_buf_t *b, const json_t *query) {
    const char *k;
    json_t *v;
    bool first = b->len == 0 || memchr(b->data, '?', b->len) == NULL;
    json_object_foreach((json_t *)query, k, v) {
        if (json_is_null(v)) continue;
        nx_buf_append(b, first ? "?" : "&", 1);
        first = false;
        append_encoded(b, k);
        nx_buf_append(b, "=", 1);
        char *text = json_is_string(v) ? strdup(json_string_value(v))
                                       : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text != NULL) append_encoded(b, text);
        free(text);
    }
}

static void on_cache(void *arg, nx_cache_outcome_t outcome, const char *value, size_t len,
                     unsigned flags);

/* Evaluates a call step's request and sends it, through the cache when the step has a TTL. */
static void start_call(frame_t *f) {
    const nx_step_t *s = f->step;
    char msg[300] = "";
    json_t *req = NULL;
    if (s->kind == NX_STEP_CALL) {
        req = s->with ? nx_jtemplate_eval(s->with, f->scope, msg, sizeof(msg)) : json_object();
    } else {
        json_t *path = s->rest_path ? nx_expr_eval(s->rest_path, f->scope, msg, sizeof(msg))
                                    : json_string("/");
        json_t *query = path && s->query ? nx_jtemplate_eval(s->query, f->scope, msg, sizeof(msg))
                                         : json_object();
        json_t *headers = path && query && s->headers
                              ? nx_jtemplate_eval(s->headers, f->scope, msg, sizeof(msg))
                              : json_object();
        json_t *body = path && query && headers && s->with
                           ? nx_jtemplate_eval(s->with, f->scope, msg, sizeof(msg))
                           : NULL;
        if (path && query && headers && (s->with == NULL || body != NULL)) {
            if (!json_is_string(path)) {
                char *t = json_dumps(path, JSON_COMPACT | JSON_ENCODE_ANY);
                json_decref(path);
                path = json_string(t ? t : "/");
                free(t);
            }
            req = json_pack("{s:s, s:o, s:o, s:o}", "method", s->method, "path", path, "query",
                            query, "headers", headers);
            if (req != NULL && body != NULL) json_object_set_new(req, "body", body);
        } else {
            json_decref(path);
            json_decref(query);
            json_decref(headers);
            json_decref(body);
        }
    }
    if (req == NULL) {
        finish(f, false, NULL, error_fmt(s, "step %s: %s", s->id, msg[0] ? msg : "out of memory"));
        return;
    }
    if (s->kind == NX_STEP_CALL && !json_is_object(req)) {
        json_decref(req);
        finish(f, false, NULL, error_fmt(s, "step %s: with: must evaluate to an object", s->id));
        return;
    }
    nx_cache_t *c = f->x->es->cache;
    if (s->cache_ttl_ms == 0 || c == NULL) {
        send_call(f, req);
        json_decref(req);
        return;
    }
    char target[256];
    snprintf(target, sizeof(target), "step:%s.%s", f->x->wf->name, s->id);
    if (nx_cache_key_make(target, req, &f->key) < 0) {
        send_call(f, req);
        json_decref(req);
        return;
    }
    /* The request waits in the frame's accumulator while the cache answers. */
    json_decref(f->acc);
    f->acc = req;
    f->op = OP_CACHE;
    f->cacheable = true;
    nx_cache_wait_t *w = nx_cache_lookup(c, &f->key, on_cache, f);
    if (w != NULL) f->wait = w;
}

static void cache_answer(frame_t *f, nx_cache_outcome_t outcome, const char *value, size_t len,
                         unsigned flags) {
    f->wait = NULL;
    f->op = OP_NONE;
    bool leader_gone = outcome == NX_CACHE_SHARED && !(flags & NX_CACHE_OK) &&
                       len == sizeof(NX_CACHE_LEADER_GONE) - 1 &&
                       memcmp(value, NX_CACHE_LEADER_GONE, len) == 0;
    if (leader_gone && is_dying(f)) return; /* its own cancel is on the way */
    if (leader_gone && f->relooks < 3) {
        /* The call this one waited for was cancelled: look again (this one may lead now). */
        f->relooks++;
        f->op = OP_CACHE;
        nx_cache_wait_t *w = nx_cache_lookup(f->x->es->cache, &f->key, on_cache, f);
        if (w != NULL) f->wait = w;
        return;
    }
    if (outcome == NX_CACHE_LEAD) {
        f->leading = true;
        json_t *req = f->acc;
        f->acc = NULL;
        send_call(f, req);
        json_decref(req);
        return;
    }
    json_t *v = json_loadb(value, len, JSON_DECODE_ANY, NULL);
    if (v == NULL) {
        finish(f, false, NULL, error_new("a cached value could not be read", f->step));
        return;
    }
    if (outcome == NX_CACHE_SHARED && !(flags & NX_CACHE_OK)) {
        /* The leader's call failed: so does this one, with its error (not from the cache). */
        if (!json_is_object(v)) {
            json_decref(v);
            v = error_new("the call failed", f->step);
        }
        finish(f, false, NULL, v);
        return;
    }
    f->cached = true;
    finish(f, true, v, NULL);
}

static void on_cache(void *arg, nx_cache_outcome_t outcome, const char *value, size_t len,
                     unsigned flags) {
    frame_t *f = arg;
    nx_exec_t *x = f->x;
    bool held = hold(x);
    cache_answer(f, outcome, value, len, flags);
    release(x, held);
}

/* ---- composite steps ---- */

static frame_t *start_step(frame_t *parent, const nx_step_t *s, json_t *scope);

/* Starts a child frame running <list> in <scope>; returns it (it may already be finished). */
static frame_t *start_list(frame_t *parent, const nx_step_list_t *list, json_t *scope,
                           uint32_t iteration) {
    frame_t *f = frame_new(parent->x, parent, NULL, scope);
    if (f == NULL) return NULL;
    f->seq = list;
    f->iteration = iteration;
    start_list_next(f);
    return f;
}

/* Runs the next step of list frame <f>, or finishes it with its last result. */
static void start_list_next(frame_t *f) {
    if (f->seq_pos >= f->seq->count) {
        json_t *last = f->last ? json_incref(f->last) : json_null();
        finish(f, true, last, NULL);
        return;
    }
    const nx_step_t *s = f->seq->items[f->seq_pos++];
    if (start_step(f, s, f->scope) == NULL) finish(f, false, NULL, error_new("out of memory", s));
}

static void parallel_pump(frame_t *f) {
    const nx_step_t *s = f->step;
    uint32_t max = s->max_concurrency ? s->max_concurrency : f->total;
    while (f->next < f->total && f->running < max) {
        const nx_step_t *b = s->children.items[f->next++];
        f->running++;
        if (start_step(f, b, f->scope) == NULL) {
            f->running--;
            finish(f, false, NULL, error_new("out of memory", s));
            return;
        }
    }
}

static void map_pump(frame_t *f) {
    const nx_step_t *s = f->step;
    uint32_t max = s->max_concurrency ? s->max_concurrency : 1;
    while (f->next < f->total && f->running < max) {
        uint32_t i = f->next++;
        json_t *scope = json_copy(f->scope);
        json_t *steps = json_copy(steps_of(f));
        if (scope == NULL || steps == NULL) {
            json_decref(scope);
            json_decref(steps);
            finish(f, false, NULL, error_new("out of memory", s));
            return;
        }
        json_object_set_new(scope, "steps", steps);
        json_object_set(scope, "item", json_array_get(f->items, i));
        json_object_set_new(scope, "index", json_integer(i));
        f->running++;
        frame_t *it = start_list(f, &s->children, scope, i);
        json_decref(scope);
        if (it == NULL) {
            f->running--;
            finish(f, false, NULL, error_new("out of memory", s));
            return;
        }
    }
}

/* Builds the map's iterations: the items, or batches of batch_size items. */
static json_t *map_items(const nx_step_t *s, json_t *list) {
    if (s->batch_size == 0) return json_incref(list);
    json_t *batches = json_array();
    json_t *cur = NULL;
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        if (cur == NULL || json_array_size(cur) == s->batch_size) {
            cur = json_array();
            json_array_append_new(batches, cur);
        }
        json_array_append(cur, item);
    }
    return batches;
}

static void start_fallback_next(frame_t *f) {
    const nx_step_t *s = f->step;
    if (f->next >= s->children.count) {
        json_t *e = error_fmt(s, "every alternative of step %s failed", s->id);
        if (f->first_error != NULL) json_object_set(e, "last_error", f->first_error);
        finish(f, false, NULL, e);
        return;
    }
    const nx_step_t *alt = s->children.items[f->next++];
    if (start_step(f, alt, f->scope) == NULL) finish(f, false, NULL, error_new("out of memory", s));
}

static void on_step_timeout(nx_timer_t *t) {
    frame_t *f = nx_container_of(t, frame_t, timeout);
    nx_exec_t *x = f->x;
    bool held = hold(x);
    cancel_kids(f);
    json_t *e =
        error_fmt(f->step, "step %s timed out after %u ms", f->step->id, f->step->timeout_ms);
    json_object_set_new(e, "reason", json_string("timeout"));
    /* A call step that leads a cache fill may still answer from a stale entry. */
    call_outcome(f, false, NULL, e);
    release(x, held);
}

/* Starts step <s> under <parent> in <scope>; NULL on ENOMEM (nothing started). */
static frame_t *start_step(frame_t *parent, const nx_step_t *s, json_t *scope) {
    nx_exec_t *x = parent->x;
    frame_t *f = frame_new(x, parent, s, scope);
    if (f == NULL) return NULL;
    if (s->cond != NULL) {
        char msg[200] = "";
        json_t *v = nx_expr_eval(s->cond, scope, msg, sizeof(msg));
        bool run = v != NULL && nx_expr_truthy(v);
        json_decref(v);
        if (v == NULL) {
            finish(f, false, NULL, error_fmt(s, "step %s: if: %s", s->id, msg));
            return f;
        }
        if (!run) {
            f->status = "skipped";
            finish(f, true, json_null(), NULL);
            return f;
        }
    }
    bool iterated = parent->step == NULL && parent->parent != NULL;
    emit_start(x, s, iterated, iterated ? parent->iteration : 0);
    if (s->timeout_ms != 0) nx_shard_timer_start(x->es->shard, &f->timeout, s->timeout_ms);
    switch (s->kind) {
    case NX_STEP_CALL:
    case NX_STEP_REST:
        start_call(f);
        break;
    case NX_STEP_GROUP:
        f->seq = &s->children;
        start_list_next(f);
        break;
    case NX_STEP_SWITCH: {
        for (size_t i = 0; i < s->case_count; i++) {
            const nx_switch_case_t *c = &s->cases[i];
            bool take = c->cond == NULL;
            if (!take) {
                char msg[200] = "";
                json_t *v = nx_expr_eval(c->cond, scope, msg, sizeof(msg));
                if (v == NULL) {
                    finish(f, false, NULL,
                           error_fmt(s, "step %s: case %zu: %s", s->id, i + 1, msg));
                    return f;
                }
                take = nx_expr_truthy(v);
                json_decref(v);
            }
            if (take) {
                f->seq = &c->steps;
                start_list_next(f);
                return f;
            }
        }
        f->status = "skipped";
        finish(f, true, json_null(), NULL);
        break;
    }
    case NX_STEP_PARALLEL:
        f->total = (uint32_t)s->children.count;
        f->acc = json_object();
        if (f->total == 0) {
            finish(f, true, json_incref(f->acc), NULL);
            break;
        }
        parallel_pump(f);
        break;
    case NX_STEP_MAP: {
        char msg[200] = "";
        json_t *list = nx_expr_eval(s->items, scope, msg, sizeof(msg));
        if (list == NULL || !json_is_array(list)) {
            json_t *e = list == NULL ? error_fmt(s, "step %s: items: %s", s->id, msg)
                                     : error_fmt(s, "step %s: items must be an array", s->id);
            json_decref(list);
            finish(f, false, NULL, e);
            break;
        }
        if (json_array_size(list) > MAX_MAP_ITEMS) {
            json_decref(list);
            finish(f, false, NULL,
                   error_fmt(s, "step %s: more than %u items", s->id, MAX_MAP_ITEMS));
            break;
        }
        f->items = map_items(s, list);
        json_decref(list);
        f->total = (uint32_t)json_array_size(f->items);
        f->acc = json_array();
        for (uint32_t i = 0; i < f->total; i++)
            json_array_append_new(f->acc, json_null());
        if (f->total == 0) {
            finish(f, true, json_incref(f->acc), NULL);
            break;
        }
        map_pump(f);
        break;
    }
    case NX_STEP_FALLBACK:
        start_fallback_next(f);
        break;
    }
    return f;
}

/* ---- delivery: a finished child reaches its parent ---- */

static void child_done(frame_t *p, frame_t *c) {
    bool ok = c->ok;
    bool skipped = c->status != NULL; /* the only status set before finishing */
    json_t *out = c->out ? json_incref(c->out) : json_null();
    json_t *err = json_incref(c->err);
    const nx_step_t *cs = c->step;
    uint32_t iteration = c->iteration;
    frame_free(c);
    if (p->finished) { /* cannot happen: a finished frame has no running children */
        json_decref(out);
        json_decref(err);
        return;
    }
    if (p->seq != NULL &&
        (p->step == NULL || p->step->kind == NX_STEP_GROUP || p->step->kind == NX_STEP_SWITCH)) {
        if (!ok) {
            json_decref(out);
            finish(p, false, NULL, err);
            return;
        }
        json_decref(err);
        if (skipped) { /* a list's result is that of its last step that ran */
            json_decref(out);
        } else {
            json_decref(p->last);
            p->last = out;
        }
        start_list_next(p);
        return;
    }
    const nx_step_t *s = p->step;
    switch (s->kind) {
    case NX_STEP_PARALLEL: {
        p->running--;
        if (ok && skipped && s->join != NX_JOIN_ALL) {
            /* A branch whose if: was false did not run: it cannot win any or quorum. */
            p->failed++;
        } else if (ok) {
            p->succeeded++;
            if (!skipped) json_object_set(p->acc, cs->id, out);
        } else {
            p->failed++;
            if (p->first_error == NULL) p->first_error = json_incref(err);
        }
        uint32_t need = s->join == NX_JOIN_ALL ? p->total : s->join == NX_JOIN_ANY ? 1 : s->quorum;
        if (p->succeeded >= need) {
            cancel_kids(p);
            json_t *res = s->join == NX_JOIN_ANY ? json_incref(out) : json_incref(p->acc);
            json_decref(out);
            json_decref(err);
            finish(p, true, res, NULL);
            return;
        }
        json_decref(out);
        json_decref(err);
        if (p->total - p->failed < need) { /* the join can no longer be met */
            cancel_kids(p);
            json_t *e = s->join == NX_JOIN_ALL
                            ? error_fmt(s, "branch of step %s failed", s->id)
                            : error_fmt(s, "step %s: only %u of the %u branches needed succeeded",
                                        s->id, p->succeeded, need);
            if (p->first_error != NULL) json_object_set(e, "cause", p->first_error);
            finish(p, false, NULL, e);
            return;
        }
        parallel_pump(p);
        return;
    }
    case NX_STEP_MAP:
        p->running--;
        if (!ok) {
            json_decref(out);
            cancel_kids(p);
            json_t *e = error_fmt(s, "step %s: iteration %u failed", s->id, iteration);
            if (err != NULL) json_object_set_new(e, "cause", err);
            finish(p, false, NULL, e);
            return;
        }
        json_decref(err);
        json_array_set_new(p->acc, iteration, out);
        p->succeeded++;
        if (p->succeeded == p->total) {
            finish(p, true, json_incref(p->acc), NULL);
            return;
        }
        map_pump(p);
        return;
    case NX_STEP_FALLBACK:
        if (ok) {
            json_decref(err);
            finish(p, true, out, NULL);
            return;
        }
        json_decref(out);
        json_decref(p->first_error);
        p->first_error = err;
        start_fallback_next(p);
        return;
    default:
        json_decref(out);
        json_decref(err);
        return;
    }
}

/* ---- the execution ---- */

static void end_execution(nx_exec_t *x, nx_exec_status_t status, json_t *result, json_t *error) {
    if (x->ended) {
        json_decref(result);
        json_decref(error);
        return;
    }
    x->ended = true;
    x->status = status;
    x->result = result;
    x->error = error;
    x->ended_ms = now_ms(x);
    x->ended_wall_ms = wall_ms();
    nx_timer_stop(&x->deadline_timer);
    nx_timer_stop(&x->start_timer);
    const char *type = status == NX_EXEC_SUCCEEDED ? "execution.finished"
                       : status == NX_EXEC_FAILED  ? "execution.failed"
                                                   : "execution.cancelled";
    json_t *ev = json_object();
    if (ev != NULL) {
        put_new(ev, "status", ascii_json(nx_exec_status_name(status)));
        put_new(ev, "duration_ms", json_integer((json_int_t)(x->ended_ms - x->started_ms)));
        if (result != NULL) put_new(ev, "result", json_incref(result));
        if (error != NULL) put_new(ev, "error", json_incref(error));
    }
    emit(x, type, ev);
}

/* The scopes of runs that ended in this loop turn (every step's result), let go of once the
 * turn's I/O is submitted: freeing a big tree must not delay the answer. Per thread (a shard's
 * own list, never touched from another), so an execution freed by another shard meanwhile
 * (the store evicts from any shard) has nothing here to unlink. */
#define SPENT_MAX 32
static _Thread_local struct {
    nx_later_t later;
    json_t *items[SPENT_MAX];
    size_t count;
} spent;

static void on_spent(nx_later_t *l) {
    (void)l;
    for (size_t i = 0; i < spent.count; i++)
        json_decref(spent.items[i]);
    spent.count = 0;
}

static void let_go_after_submit(nx_exec_t *x, json_t *j) {
    if (spent.count == SPENT_MAX || x->es == NULL || x->es->shard == NULL) return;
    if (spent.later.fn == NULL) nx_later_init(&spent.later, on_spent);
    spent.items[spent.count++] = json_incref(j);
    nx_shard_after_submit(x->es->shard, &spent.later);
}

static void root_done(nx_exec_t *x, frame_t *root) {
    x->root = NULL;
    let_go_after_submit(x, root->scope);
    if (!root->ok) {
        json_t *e = json_incref(root->err);
        frame_free(root);
        end_execution(x, NX_EXEC_FAILED, NULL, e ? e : error_new("the workflow failed", NULL));
        return;
    }
    json_t *result;
    if (x->wf->output != NULL) {
        char msg[300] = "";
        result = nx_jtemplate_eval(x->wf->output, root->scope, msg, sizeof(msg));
        if (result == NULL) {
            frame_free(root);
            char m[400];
            snprintf(m, sizeof(m), "output: %s", msg);
            end_execution(x, NX_EXEC_FAILED, NULL, error_new(m, NULL));
            return;
        }
    } else {
        result = root->last ? json_incref(root->last) : json_null();
    }
    frame_free(root);
    end_execution(x, NX_EXEC_SUCCEEDED, result, NULL);
}

static void deliver(frame_t *f) {
    if (f->parent == NULL)
        root_done(f->x, f);
    else
        child_done(f->parent, f);
}

static void pump(nx_exec_t *x) {
    if (x->pumping) return;
    x->pumping = true;
    while (!nx_list_empty(&x->ready)) {
        frame_t *f = nx_container_of(x->ready.next, frame_t, ready_link);
        nx_list_remove(&f->ready_link);
        nx_list_remove(&f->link);
        deliver(f);
    }
    x->pumping = false;
    if (x->cancel_pending && !x->ended) {
        x->cancel_pending = false;
        nx_exec_cancel(x); /* pumps again, and tells the hooks */
        return;
    }
    if (x->ended && !x->done_told) {
        x->done_told = true;
        if (x->freed_when_done) {
            nx_exec_free(x);
            return;
        }
        /* The last thing: the hook may free <x>. */
        if (x->hooks.done != NULL) x->hooks.done(x->hooks_arg, x);
    }
}

static void on_deadline(nx_timer_t *t) {
    nx_exec_t *x = nx_container_of(t, nx_exec_t, deadline_timer);
    bool held = hold(x);
    if (x->root != NULL) {
        frame_cancel(x->root);
        x->root = NULL;
    }
    json_t *e = error_fmt(NULL, "workflow %s did not finish within its deadline of %u ms",
                          x->wf->name, x->wf->deadline_ms);
    json_object_set_new(e, "reason", json_string("deadline"));
    end_execution(x, NX_EXEC_FAILED, NULL, e);
    release(x, held);
}

static void on_start(nx_timer_t *t) {
    nx_exec_t *x = nx_container_of(t, nx_exec_t, start_timer);
    emit_start(x, NULL, false, 0);
    json_t *scope = json_pack("{s:O, s:{}, s:n}", "input", x->inputs, "steps", "session");
    frame_t *root = scope ? frame_new(x, NULL, NULL, scope) : NULL;
    json_decref(scope);
    if (root == NULL) {
        end_execution(x, NX_EXEC_FAILED, NULL, error_new("out of memory", NULL));
        pump(x);
        return;
    }
    root->seq = &x->wf->steps;
    x->root = root;
    x->pumping = true; /* deliveries wait until the first steps are under way */
    start_list_next(root);
    x->pumping = false;
    pump(x);
}

int nx_exec_start(nx_engine_shard_t *es, nx_workflows_t *wfs, const nx_workflow_t *wf,
                  const char *id, const json_t *inputs, uint32_t depth,
                  const nx_exec_hooks_t *hooks, void *arg, nx_exec_t **out, json_t **errors) {
    *out = NULL;
    if (errors != NULL) *errors = NULL;
    json_t *in = inputs ? json_deep_copy(inputs) : json_object();
    if (in == NULL) return -ENOMEM;
    if (wf->validator != NULL) {
        nx_schema_error_t errs[8];
        size_t n = 0;
        if (nx_schema_validate_all(wf->validator, in, errs, 8, &n) != 0) {
            if (errors != NULL) {
                json_t *list = json_array();
                for (size_t i = 0; i < n && i < 8; i++)
                    json_array_append_new(list, json_pack("{s:s, s:s}", "path", errs[i].path,
                                                          "message", errs[i].message));
                *errors = list;
            }
            json_decref(in);
            return -EINVAL;
        }
    }
    nx_exec_t *x = calloc(1, sizeof(*x));
    if (x == NULL || (x->records = calloc(wf->step_count + 1, sizeof(*x->records))) == NULL) {
        free(x);
        json_decref(in);
        return -ENOMEM;
    }
    x->es = es;
    x->depth = depth;
    x->wfs = nx_workflows_ref(wfs);
    x->wf = wf;
    snprintf(x->id, sizeof(x->id), "%s", id);
    x->inputs = in;
    x->id_json = json_string(x->id); /* the caller's: checked */
    x->name_json = ascii_json(wf->name);
    if (hooks != NULL) x->hooks = *hooks;
    x->hooks_arg = arg;
    x->status = NX_EXEC_RUNNING;
    x->started_ms = now_ms(x);
    x->started_wall_ms = wall_ms();
    x->deadline_at = x->started_ms + wf->deadline_ms;
    nx_list_init(&x->ready);
    nx_later_init(&x->starts_later, on_starts_later);
    nx_timer_init(&x->start_timer, on_start);
    nx_timer_init(&x->deadline_timer, on_deadline);
    nx_shard_timer_start(es->shard, &x->start_timer, 0);
    nx_shard_timer_start(es->shard, &x->deadline_timer, wf->deadline_ms);
    *out = x;
    return 0;
}

void nx_exec_cancel(nx_exec_t *x) {
    if (x == NULL || x->ended) return;
    if (x->pumping) {
        /* Called from inside the executor (an event hook): frames up the stack are in use;
         * the cancel happens when the current work unwinds. */
        x->cancel_pending = true;
        return;
    }
    bool held = hold(x);
    if (x->root != NULL) {
        frame_cancel(x->root);
        x->root = NULL;
    }
    json_t *e = error_new("the execution was cancelled", NULL);
    json_object_set_new(e, "reason", json_string("cancelled"));
    end_execution(x, NX_EXEC_CANCELLED, NULL, e);
    release(x, held);
}

void nx_exec_detach(nx_exec_t *x) {
    if (x == NULL) return;
    memset(&x->hooks, 0, sizeof(x->hooks));
}

void nx_exec_free(nx_exec_t *x) {
    if (x == NULL) return;
    if (!x->ended) {
        nx_exec_detach(x);
        x->freed_when_done = true;
        nx_exec_cancel(x); /* frees it from the pump */
        return;
    }
    if (x->pumping) { /* inside our own delivery loop: free when it ends */
        x->freed_when_done = true;
        return;
    }
    nx_timer_stop(&x->deadline_timer);
    nx_timer_stop(&x->start_timer);
    for (uint32_t i = 0; i < x->wf->step_count; i++)
        json_decref(x->records[i].error);
    free(x->records);
    json_decref(x->inputs);
    json_decref(x->result);
    json_decref(x->error);
    json_decref(x->id_json);
    json_decref(x->name_json);
    nx_later_cancel(&x->starts_later);
    free(x->starts);
    nx_workflows_unref(x->wfs);
    free(x);
}

nx_exec_status_t nx_exec_status(const nx_exec_t *x) {
    return x->status;
}

const char *nx_exec_status_name(nx_exec_status_t s) {
    switch (s) {
    case NX_EXEC_RUNNING:
        return "running";
    case NX_EXEC_SUCCEEDED:
        return "succeeded";
    case NX_EXEC_FAILED:
        return "failed";
    case NX_EXEC_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

const char *nx_exec_id(const nx_exec_t *x) {
    return x->id;
}

const nx_workflow_t *nx_exec_workflow(const nx_exec_t *x) {
    return x->wf;
}

const json_t *nx_exec_result(const nx_exec_t *x) {
    return x->result;
}

const json_t *nx_exec_error(const nx_exec_t *x) {
    return x->error;
}

void nx_exec_progress(const nx_exec_t *x, uint32_t *finished, uint32_t *total) {
    /* Steps inside a map run once per item: progress never passes the total. */
    *finished = x->finished_steps < x->wf->step_count ? x->finished_steps : x->wf->step_count;
    *total = x->wf->step_count;
}

json_t *nx_exec_record(const nx_exec_t *x) {
    json_t *steps = json_array();
    for (uint32_t i = 0; i < x->wf->step_count; i++) {
        const nx_step_t *s = x->wf->by_index[i];
        const step_record_t *r = &x->records[i];
        json_t *e = json_object();
        if (e == NULL) continue;
        put_new(e, "id", ascii_json(s->id));
        put_new(e, "kind", ascii_json(nx_step_kind_name(s->kind)));
        put_new(e, "status", ascii_json(r->status ? r->status : "pending"));
        put_new(e, "attempts", json_integer((json_int_t)r->attempts));
        put_new(e, "cached", json_boolean(r->cached));
        put_new(e, "duration_ms", json_integer((json_int_t)r->duration_ms));
        put_new(e, "runs", json_integer((json_int_t)r->runs));
        if (r->stale) put_new(e, "stale", json_true());
        if (r->error != NULL) put_new(e, "error", json_incref(r->error));
        json_array_append_new(steps, e);
    }
    uint64_t end = x->ended ? x->ended_ms : now_ms(x);
    json_t *rec = json_object();
    if (rec == NULL) {
        json_decref(steps);
        return NULL;
    }
    put_new(rec, "id", json_incref(x->id_json));
    put_new(rec, "workflow", json_incref(x->name_json));
    put_new(rec, "status", ascii_json(nx_exec_status_name(x->status)));
    put_new(rec, "started_at", iso_time(x->started_wall_ms));
    put_new(rec, "duration_ms", json_integer((json_int_t)(end - x->started_ms)));
    put_new(rec, "inputs", json_incref(x->inputs));
    put_new(rec, "steps", steps);
    if (x->ended) put_new(rec, "ended_at", iso_time(x->ended_wall_ms));
    if (x->result != NULL) put_new(rec, "result", json_incref(x->result));
    if (x->error != NULL) put_new(rec, "error", json_incref(x->error));
    return rec;
}

/* The record's text as it is written: the first failed append (ENOMEM) is kept and ends the
 * writing, so a record is either whole or not written at all. */
typedef struct rec_out {
    nx_buf_t *b;
    int rc;
} rec_out_t;

static void rec_raw(rec_out_t *o, const char *text) {
    if (o->rc == 0) o->rc = nx_buf_append_str(o->b, text);
}

/* Appends ,"<key>": (no comma when <key> opens the object: <first>). */
static void rec_key(rec_out_t *o, const char *key, bool first) {
    rec_raw(o, first ? "{\"" : ",\"");
    rec_raw(o, key);
    rec_raw(o, "\":");
}

static void rec_u64(rec_out_t *o, const char *key, uint64_t v) {
    rec_key(o, key, false);
    if (o->rc == 0) o->rc = nx_buf_append_u64(o->b, v);
}

static void rec_string(rec_out_t *o, const char *key, const char *v, bool first) {
    rec_key(o, key, first);
    if (o->rc == 0) o->rc = nx_json_write_string(o->b, v, strlen(v));
}

static void rec_json(rec_out_t *o, const char *key, const json_t *v) {
    rec_key(o, key, false);
    if (o->rc == 0) o->rc = nx_json_write_append(o->b, v, 17);
}

int nx_exec_record_write(const nx_exec_t *x, nx_buf_t *b) {
    /* The members of nx_exec_record, in its order, written out directly: on a synchronous
     * run the record is the answer, and building it as jansson values only to walk them again
     * was most of the time from the last step's end to the response. The unit tests hold the
     * two to the same bytes. */
    rec_out_t o = {b, 0};
    size_t old_len = b->len;
    uint64_t end = x->ended ? x->ended_ms : now_ms(x);
    rec_string(&o, "id", x->id, true);
    rec_string(&o, "workflow", x->wf->name, false);
    rec_string(&o, "status", nx_exec_status_name(x->status), false);
    rec_string(&o, "started_at", iso_time_text(x->started_wall_ms), false);
    rec_u64(&o, "duration_ms", end - x->started_ms);
    rec_json(&o, "inputs", x->inputs);
    rec_key(&o, "steps", false);
    rec_raw(&o, "[");
    for (uint32_t i = 0; i < x->wf->step_count; i++) {
        const nx_step_t *s = x->wf->by_index[i];
        const step_record_t *r = &x->records[i];
        if (i > 0) rec_raw(&o, ",");
        rec_string(&o, "id", s->id, true);
        rec_string(&o, "kind", nx_step_kind_name(s->kind), false);
        rec_string(&o, "status", r->status ? r->status : "pending", false);
        rec_u64(&o, "attempts", r->attempts);
        rec_key(&o, "cached", false);
        rec_raw(&o, r->cached ? "true" : "false");
        rec_u64(&o, "duration_ms", r->duration_ms);
        rec_u64(&o, "runs", r->runs);
        if (r->stale) rec_raw(&o, ",\"stale\":true");
        if (r->error != NULL) rec_json(&o, "error", r->error);
        rec_raw(&o, "}");
    }
    rec_raw(&o, "]");
    if (x->ended) rec_string(&o, "ended_at", iso_time_text(x->ended_wall_ms), false);
    if (x->result != NULL) rec_json(&o, "result", x->result);
    if (x->error != NULL) rec_json(&o, "error", x->error);
    rec_raw(&o, "}");
    if (o.rc < 0) b->len = old_len;
    return o.rc < 0 ? -ENOMEM : 0;
}
