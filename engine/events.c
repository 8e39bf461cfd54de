/* The event bus (see events.h).
 *
 * Publishing appends the event to one global ring under a mutex (id assignment and the append;
 * large or nested JSON is serialized before the lock, small flat JSON only when a subscriber
 * first needs it, see event_ring.h) and rings a doorbell on every shard that has
 * subscribers: an embedded message posted through the shard's mailbox only when none is
 * pending, so a burst costs one message per shard. The woken shard takes every event after its
 * cursor from the ring (the same mutex, once per batch, never per subscriber or per byte) and
 * hands them to its subscribers in id order. Because every shard reads the one ring in id
 * order, no shard can see events out of order, whichever shards published them. A doorbell the
 * mailbox refused is caught by a one-second poll while the shard has subscribers.
 *
 * Subscribing registers on the shard first and then, under the mutex, notes the newest id L and
 * picks the retained events to replay: events up to L come from the replay, later ones from the
 * doorbells, so nothing is missed or sent twice. */
#include "events.h"

#include "backends.h"
#include "events_internal.h"
#include "executions.h"
#include "log.h"
#include "nexus/errors.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PULL_BATCH 64u

struct nx_events {
    nx_engine_t *e;
    pthread_mutex_t mu;   /* guards ring; taken by publish, subscribe and a shard's pull */
    nx_event_ring_t ring; /* under mu */
    uint64_t last_id;     /* atomic mirror of ring.last_id, for the poll */
    uint64_t oldest;      /* atomic mirror of the oldest retained id, for paused subscribers */
    uint32_t shard_count;
    nx_events_shard_t *shards;
    nx_timer_t health_watch; /* shard 0 only: backend status changes */
    json_t *health_last;     /* shard 0 only: {backend: status} as last published */
};

nx_events_shard_t *nx__events_shard(nx_engine_shard_t *es) {
    return &es->engine->events->shards[es->shard->id];
}

/* ---- lifecycle ---- */

static void on_wake(nx_shard_t *s, nx_msg_t *m);
static void on_poll(nx_timer_t *t);
static void on_health_watch(nx_timer_t *t);
static void flush_soon(nx_later_t *l);

/* The doorbell is part of the shard state: nothing to free when a stopped shard drops it. */
static void dispose_wake(nx_msg_t *m) {
    (void)m;
}

int nx_events_new(nx_engine_t *e) {
    nx_events_t *b = calloc(1, sizeof(*b));
    if (b == NULL) return -ENOMEM;
    b->e = e;
    b->shard_count = e->shard_count;
    b->shards = calloc(e->shard_count, sizeof(*b->shards));
    /* Ids continue across restarts (microseconds since the epoch at start): a client resuming
     * with an id from before a restart gets "events lost" instead of silently skipping the new
     * process's first events. Below 2^53 until the year 2255, so JavaScript reads them exactly. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t first = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    if (b->shards == NULL ||
        nx_event_ring_init(&b->ring, NX_EVENTS_RING, NX_EVENTS_RING_BYTES, first) < 0) {
        free(b->shards);
        free(b);
        return -ENOMEM;
    }
    b->last_id = b->ring.last_id;
    b->oldest = nx_event_ring_oldest(&b->ring);
    pthread_mutex_init(&b->mu, NULL);
    b->health_last = json_object();
    nx_timer_init(&b->health_watch, on_health_watch);
    for (uint32_t i = 0; i < b->shard_count; i++) {
        nx_events_shard_t *sh = &b->shards[i];
        sh->wake.fn = on_wake;
        sh->wake.dispose = dispose_wake;
        sh->bus = b;
        nx_list_init(&sh->subs);
        nx_list_init(&sh->ws_conns);
        nx_timer_init(&sh->poll, on_poll);
        nx_buf_init(&sh->out);
        nx_later_init(&sh->flush, flush_soon);
    }
    e->events = b;
    return 0;
}

void nx_events_free(nx_engine_t *e) {
    nx_events_t *b = e->events;
    if (b == NULL) return;
    for (uint32_t i = 0; i < b->shard_count; i++)
        nx_buf_dispose(&b->shards[i].out);
    nx_event_ring_dispose(&b->ring);
    json_decref(b->health_last);
    pthread_mutex_destroy(&b->mu);
    free(b->shards);
    free(b);
    e->events = NULL;
}

void nx_events_shard_start(nx_engine_shard_t *es) {
    nx_events_shard_t *sh = nx__events_shard(es);
    sh->es = es;
    sh->started = true;
    if (es->shard->id == 0 && es->engine->backends != NULL)
        nx_shard_timer_start(es->shard, &sh->bus->health_watch, NX_EVENTS_HEALTH_MS);
}

/* ---- backend.health ----
 *
 * A backend's status (connected / degraded / disconnected / unknown, as /api/v1/connections
 * reports it) is derived on demand from its instances, health checks and breaker; no single
 * place changes it (a breaker opens on a call, half-opens with time). So shard 0 looks at the
 * derived status twice a second and publishes each change; every backend starts "unknown". */

static void iso_now(char out[32]) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000L) % 1000);
}

static void on_health_watch(nx_timer_t *t) {
    nx_events_t *b = nx_container_of(t, nx_events_t, health_watch);
    json_t *list = nx_backends_connections(b->e->backends, NULL);
    size_t i;
    json_t *c;
    json_array_foreach(list, i, c) {
        const char *id = json_string_value(json_object_get(c, "id"));
        const char *status = json_string_value(json_object_get(c, "status"));
        if (id == NULL || status == NULL) continue;
        const char *prev = json_string_value(json_object_get(b->health_last, id));
        if (prev == NULL) prev = "unknown";
        if (strcmp(prev, status) == 0) continue;
        char now[32];
        iso_now(now);
        json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "backend", id, "status", status,
                                 "previous", prev, "time", now);
        json_t *transport = json_object_get(c, "transport");
        if (data != NULL && transport != NULL) json_object_set(data, "transport", transport);
        nx_events_publish(b->e, "backend.health", data);
        json_decref(data);
        json_object_set_new(b->health_last, id, json_string(status));
    }
    json_decref(list);
    nx_shard_timer_start(b->e->shards[0]->shard, &b->health_watch, NX_EVENTS_HEALTH_MS);
}

/* ---- publish ---- */

static void unref_list(nx_event_t *ev) {
    while (ev != NULL) {
        nx_event_t *next = ev->next;
        nx_event_unref(ev);
        ev = next;
    }
}

/* Rings the doorbell of every shard with subscribers, from the publishing shard's loop. */
static void ring_doorbells(nx_events_t *b) {
    nx_engine_shard_t *self = nx_engine_current_shard();
    /* Off the shards (no loop to send a wake-up from) the subscribers' poll delivers. */
    if (self == NULL || self->engine != b->e) return;
    for (uint32_t i = 0; i < b->shard_count; i++) {
        nx_events_shard_t *sh = &b->shards[i];
        if (__atomic_load_n(&sh->subscribers, __ATOMIC_ACQUIRE) == 0) continue;
        nx_engine_shard_t *to = b->e->shards[i];
        if (to == NULL || __atomic_exchange_n(&sh->pending, 1, __ATOMIC_ACQ_REL) != 0) continue;
        /* On failure pending stays set: the shard's poll takes the events and clears it. */
        if (nx_shard_post(to->shard, self->shard->loop, &sh->wake) < 0)
            nx_log_debug("events: shard %u mailbox full; its poll will deliver", i);
    }
}

void nx_events_publish(nx_engine_t *e, const char *type, const json_t *data) {
    nx_events_t *b = e ? e->events : NULL;
    if (b == NULL || type == NULL) return;
    const char *exec =
        json_is_object(data) ? json_string_value(json_object_get(data, "execution")) : NULL;
    /* Small flat data (most events) is written out by the first shard that delivers it, if
     * any: not here, right after the publishing shard has sent its I/O. */
    nx_event_t *ev = nx_event_from_json(type, exec, data, NX_EVENTS_MAX_DATA);
    if (ev == NULL) {
        nx_log_warn("events: dropped a %s event (bad type or out of memory)", type);
        return;
    }
    nx_event_t *evicted = NULL;
    pthread_mutex_lock(&b->mu);
    uint64_t id = nx_event_ring_push(&b->ring, ev, &evicted);
    __atomic_store_n(&b->last_id, id, __ATOMIC_RELEASE);
    __atomic_store_n(&b->oldest, nx_event_ring_oldest(&b->ring), __ATOMIC_RELAXED);
    pthread_mutex_unlock(&b->mu);
    unref_list(evicted);
    /* Read after the unlock: a subscriber that registered before our append sees the count;
     * one that registers later finds the event in its replay. */
    ring_doorbells(b);
}

/* One publication waiting for its shard's I/O to be submitted. */
struct nx_events_soon {
    char type[NX_EVENT_TYPE_MAX];
    json_t *data;
};

static void flush_soon(nx_later_t *l) {
    nx_events_shard_t *sh = nx_container_of(l, nx_events_shard_t, flush);
    /* Publishing only appends to the ring: nothing is queued here while this runs. */
    for (size_t i = 0; i < sh->soon_count; i++) {
        nx_events_publish(sh->bus->e, sh->soon[i].type, sh->soon[i].data);
        json_decref(sh->soon[i].data);
    }
    sh->soon_count = 0;
    if (sh->soon_cap > 64) {
        free(sh->soon); /* a burst (a map of thousands) does not keep its peak */
        sh->soon = NULL;
        sh->soon_cap = 0;
    }
}

void nx_events_publish_soon(nx_engine_t *e, const char *type, json_t *data) {
    nx_events_t *b = e ? e->events : NULL;
    nx_engine_shard_t *es = nx_engine_current_shard();
    if (b == NULL || type == NULL) return;
    nx_events_shard_t *sh = es != NULL && es->engine == e ? nx__events_shard(es) : NULL;
    if (sh == NULL || !sh->started || sh->stopped || strlen(type) >= NX_EVENT_TYPE_MAX) {
        nx_events_publish(e, type, data);
        return;
    }
    if (sh->soon_count == sh->soon_cap) {
        size_t cap = sh->soon_cap ? sh->soon_cap * 2 : 16;
        struct nx_events_soon *grown = realloc(sh->soon, cap * sizeof(*grown));
        if (grown == NULL) {
            nx_events_publish(e, type, data);
            return;
        }
        sh->soon = grown;
        sh->soon_cap = cap;
    }
    struct nx_events_soon *p = &sh->soon[sh->soon_count++];
    memcpy(p->type, type, strlen(type) + 1);
    p->data = json_incref(data);
    nx_shard_after_submit(es->shard, &sh->flush);
}

json_t *nx_events_health(const nx_engine_t *e) {
    nx_events_t *b = e->events;
    if (b == NULL) return json_object();
    uint64_t subs = 0;
    for (uint32_t i = 0; i < b->shard_count; i++)
        subs += __atomic_load_n(&b->shards[i].subscribers, __ATOMIC_RELAXED);
    pthread_mutex_lock(&b->mu);
    uint64_t retained = b->ring.count, last = b->ring.last_id, evicted = b->ring.evicted;
    pthread_mutex_unlock(&b->mu);
    return json_pack("{s:I, s:I, s:I, s:I}", "subscribers", (json_int_t)subs, "retained",
                     (json_int_t)retained, "last_event_id", (json_int_t)last, "evicted",
                     (json_int_t)evicted);
}

/* ---- filters ---- */

bool nx__events_sub_has_exec(const nx_event_sub_t *s, const char *id) {
    for (uint32_t i = 0; i < s->exec_count; i++)
        if (strcmp(s->execs[i], id) == 0) return true;
    return false;
}

bool nx__events_sub_matches(const nx_event_sub_t *s, const nx_event_t *ev) {
    if (s->all) return true;
    return ev->execution[0] != '\0' && nx__events_sub_has_exec(s, ev->execution);
}

static bool match_sub(const nx_event_t *ev, const void *filter) {
    return nx__events_sub_matches(filter, ev);
}

static bool match_exec(const nx_event_t *ev, const void *filter) {
    return strcmp(ev->execution, filter) == 0;
}

static bool match_all(const nx_event_t *ev, const void *filter) {
    (void)ev;
    (void)filter;
    return true;
}

/* ---- flow control (see events_internal.h) ---- */

#define RESUME_CHECK_MS 20u
#define RESUME_LOW_BYTES (NX_EVENTS_MAX_QUEUE_BYTES / 4) /* catch up once below this */

static void pause_sub(nx_event_sub_t *s) {
    if (!s->paused) s->paused_at_ms = nx_shard_now_ms(s->es->shard);
    s->paused = true;
    nx_shard_timer_start(s->es->shard, &s->resume, RESUME_CHECK_MS);
}

static void cut(nx_event_sub_t *s) {
    uint64_t next = s->cursor + 1;
    nx__events_detach(s);
    s->ops->overflow(s, next);
}

/* Hands <s> the events after its cursor straight from the ring until it is current (then it
 * takes live events again) or its connection backs up (then it waits again). */
static void catch_up(nx_event_sub_t *s) {
    nx_events_t *b = s->es->engine->events;
    for (;;) {
        nx_event_t *batch[PULL_BATCH];
        pthread_mutex_lock(&b->mu);
        uint64_t oldest = nx_event_ring_oldest(&b->ring);
        size_t n = nx_event_ring_since(&b->ring, s->cursor, batch, PULL_BATCH);
        pthread_mutex_unlock(&b->mu);
        size_t i = 0;
        if (s->cursor + 1 < oldest) {
            /* The ring dropped events this subscriber still needed: it is too slow. */
            cut(s);
        } else {
            for (; i < n && s->attached; i++) {
                nx_event_t *ev = batch[i];
                if (nx__events_sub_matches(s, ev)) {
                    if (s->ops->unsent(s) > NX_EVENTS_MAX_QUEUE_BYTES) {
                        s->paused_at_ms = nx_shard_now_ms(s->es->shard); /* it made progress */
                        pause_sub(s);
                        break;
                    }
                    s->cursor = ev->id;
                    s->ops->deliver(s, ev);
                } else {
                    s->cursor = ev->id;
                }
                nx_event_unref(ev);
            }
        }
        for (; i < n; i++)
            nx_event_unref(batch[i]);
        if (!s->attached || nx_timer_active(&s->resume)) return;
        if (n < PULL_BATCH) {
            s->paused = false; /* current: later events come with the shard's deliveries */
            return;
        }
    }
}

static void on_resume(nx_timer_t *t) {
    nx_event_sub_t *s = nx_container_of(t, nx_event_sub_t, resume);
    if (!s->attached || !s->paused) return;
    if (s->ops->unsent(s) > RESUME_LOW_BYTES) {
        /* Cut as soon as it cannot be caught up any more, or after a long stall. */
        nx_events_t *b = s->es->engine->events;
        if (s->cursor + 1 < __atomic_load_n(&b->oldest, __ATOMIC_RELAXED) ||
            nx_shard_now_ms(s->es->shard) - s->paused_at_ms >= NX_EVENTS_STALL_MS)
            cut(s);
        else
            nx_shard_timer_start(s->es->shard, &s->resume, RESUME_CHECK_MS);
        return;
    }
    catch_up(s);
}

/* ---- delivery on a shard ---- */

static void deliver_one(nx_events_shard_t *sh, nx_event_t *ev) {
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &sh->subs) {
        nx_event_sub_t *s = nx_container_of(pos, nx_event_sub_t, link);
        /* Paused: it takes this one from the ring later. At or below the cursor: its replay
         * had it, or it subscribed after it. */
        if (s->paused || ev->id <= s->cursor) continue;
        if (!nx__events_sub_matches(s, ev)) {
            s->cursor = ev->id;
            continue;
        }
        if (s->ops->unsent(s) > NX_EVENTS_MAX_QUEUE_BYTES) {
            pause_sub(s);
            continue;
        }
        s->cursor = ev->id;
        s->ops->deliver(s, ev);
    }
}

/* Takes every event after the shard's cursor from the ring and delivers it, in batches. */
static void pull(nx_events_shard_t *sh) {
    nx_events_t *b = sh->bus;
    for (;;) {
        if (nx_list_empty(&sh->subs)) {
            sh->cursor = __atomic_load_n(&b->last_id, __ATOMIC_ACQUIRE);
            return;
        }
        nx_event_t *batch[PULL_BATCH];
        pthread_mutex_lock(&b->mu);
        uint64_t oldest = nx_event_ring_oldest(&b->ring);
        size_t n = nx_event_ring_since(&b->ring, sh->cursor, batch, PULL_BATCH);
        pthread_mutex_unlock(&b->mu);
        if (sh->cursor + 1 < oldest) {
            /* The ring overtook this shard: its subscribers missed events for good. */
            nx_list_t *pos, *tmp;
            nx_list_foreach_safe(pos, tmp, &sh->subs) {
                nx_event_sub_t *s = nx_container_of(pos, nx_event_sub_t, link);
                if (s->paused || s->cursor + 1 >= oldest) continue; /* catch_up cuts it */
                uint64_t after = s->cursor;
                s->cursor = oldest - 1;
                s->ops->lost(s, after, oldest);
            }
            sh->cursor = oldest - 1;
        }
        for (size_t i = 0; i < n; i++) {
            if (batch[i]->id > sh->cursor) sh->cursor = batch[i]->id;
            deliver_one(sh, batch[i]);
            nx_event_unref(batch[i]);
        }
        if (n < PULL_BATCH) return;
    }
}

static void on_wake(nx_shard_t *s, nx_msg_t *m) {
    (void)s;
    nx_events_shard_t *sh = nx_container_of(m, nx_events_shard_t, wake);
    /* Clear first: an event published while we pull rings again rather than being missed. */
    __atomic_store_n(&sh->pending, 0, __ATOMIC_RELEASE);
    if (!sh->started || sh->stopped) return;
    pull(sh);
}

static void on_poll(nx_timer_t *t) {
    nx_events_shard_t *sh = nx_container_of(t, nx_events_shard_t, poll);
    if (sh->stopped || nx_list_empty(&sh->subs)) return;
    if (__atomic_load_n(&sh->bus->last_id, __ATOMIC_ACQUIRE) > sh->cursor) {
        __atomic_store_n(&sh->pending, 0, __ATOMIC_RELEASE);
        pull(sh);
    }
    if (!nx_list_empty(&sh->subs))
        nx_shard_timer_start(sh->es->shard, &sh->poll, NX_EVENTS_POLL_MS);
}

/* ---- subscribers ---- */

int nx__events_attach(nx_event_sub_t *s, const nx_event_sub_ops_t *ops, nx_engine_shard_t *es) {
    nx_events_shard_t *sh = nx__events_shard(es);
    if (sh->draining || sh->stopped || es->draining) return NX_ECLOSED;
    if (__atomic_load_n(&sh->subscribers, __ATOMIC_RELAXED) >= NX_EVENTS_MAX_SUBSCRIBERS)
        return NX_EFULL;
    s->ops = ops;
    s->es = es;
    s->paused = false;
    nx_timer_init(&s->resume, on_resume);
    s->all = false;
    s->exec_count = 0;
    s->execs = NULL;
    bool first = nx_list_empty(&sh->subs);
    nx_list_insert_tail(&sh->subs, &s->link);
    s->attached = true;
    /* Counted before the subscriber looks at the ring (see the top of this file). */
    __atomic_add_fetch(&sh->subscribers, 1, __ATOMIC_ACQ_REL);
    s->cursor = __atomic_load_n(&sh->bus->last_id, __ATOMIC_ACQUIRE);
    if (first) {
        /* Nobody here needed the events before: start from now. */
        if (s->cursor > sh->cursor) sh->cursor = s->cursor;
        if (!nx_timer_active(&sh->poll))
            nx_shard_timer_start(es->shard, &sh->poll, NX_EVENTS_POLL_MS);
    }
    return 0;
}

void nx__events_detach(nx_event_sub_t *s) {
    if (s->attached) {
        nx_events_shard_t *sh = nx__events_shard(s->es);
        nx_list_remove(&s->link);
        s->attached = false;
        s->paused = false;
        nx_timer_stop(&s->resume);
        __atomic_sub_fetch(&sh->subscribers, 1, __ATOMIC_ACQ_REL);
        if (nx_list_empty(&sh->subs)) nx_timer_stop(&sh->poll);
    }
    free(s->execs);
    s->execs = NULL;
    s->exec_count = 0;
    s->all = false;
}

int nx__events_subscribe(nx_event_sub_t *s, const char *execution, bool has_after, uint64_t after,
                         nx_event_replay_t *r) {
    memset(r, 0, sizeof(*r));
    if (execution != NULL && !nx__events_sub_has_exec(s, execution)) {
        if (s->exec_count >= NX_EVENTS_MAX_FILTERS) return NX_ELIMIT;
        if (s->execs == NULL &&
            (s->execs = calloc(NX_EVENTS_MAX_FILTERS, sizeof(*s->execs))) == NULL)
            return -ENOMEM;
    }
    nx_events_t *b = s->es->engine->events;
    nx_event_t **out = malloc(NX_EVENTS_RING * sizeof(*out));
    if (out == NULL) return -ENOMEM;
    bool had_filter = s->all || s->exec_count > 0;
    nx_event_pick_t p = {.cursor = s->cursor,
                         .old_match = had_filter ? match_sub : NULL,
                         .old_filter = s,
                         .new_match = execution ? match_exec : match_all,
                         .new_filter = execution};
    pthread_mutex_lock(&b->mu);
    uint64_t last = b->ring.last_id, oldest = nx_event_ring_oldest(&b->ring);
    if (has_after && after > last) {
        r->unknown = true; /* not issued by this process: start as if none was given */
        r->lost_after = after;
        has_after = false;
    }
    /* Every event: live from now. One execution: its retained events from the start. */
    p.after = has_after ? after : execution ? 0 : last;
    if (has_after && after + 1 < oldest) {
        r->lost = true;
        r->lost_after = after;
    }
    r->oldest = oldest;
    r->last_id = last;
    r->count = nx_event_ring_pick(&b->ring, &p, out, NX_EVENTS_RING);
    pthread_mutex_unlock(&b->mu);
    r->events = out;
    r->resumable = !had_filter;
    s->cursor = last > s->cursor ? last : s->cursor;
    if (execution == NULL) {
        s->all = true;
    } else if (!nx__events_sub_has_exec(s, execution)) {
        snprintf(s->execs[s->exec_count++], NX_EVENT_EXEC_MAX, "%s", execution);
    }
    for (size_t i = 0; i < r->count; i++)
        if (execution != NULL && r->events[i]->terminal &&
            strcmp(r->events[i]->execution, execution) == 0)
            r->terminal_seen = true;
    return 0;
}

void nx__events_replay_drop(nx_event_replay_t *r) {
    for (size_t i = 0; i < r->count; i++)
        nx_event_unref(r->events[i]);
    free(r->events);
    r->events = NULL;
    r->count = 0;
}

void nx__events_replay_finish(nx_event_sub_t *s, nx_event_replay_t *r) {
    if (r->lost || r->unknown) s->ops->lost(s, r->lost_after, r->oldest);
    for (size_t i = 0; i < r->count && s->attached; i++) {
        if (r->resumable && s->ops->unsent(s) > NX_EVENTS_MAX_QUEUE_BYTES) {
            /* A large backlog: the rest comes from the ring as the client reads. Every event
             * between the last one sent and this one did not match, so the cursor may sit
             * just before it. */
            s->cursor = r->events[i]->id - 1;
            pause_sub(s);
            break;
        }
        s->ops->deliver(s, r->events[i]);
    }
    nx__events_replay_drop(r);
}

uint32_t nx__events_unsubscribe(nx_event_sub_t *s, const char *execution) {
    uint32_t gone = 0;
    if (execution == NULL) {
        gone = s->exec_count + (s->all ? 1 : 0);
        s->exec_count = 0;
        s->all = false;
        return gone;
    }
    for (uint32_t i = 0; i < s->exec_count; i++) {
        if (strcmp(s->execs[i], execution) != 0) continue;
        memmove(s->execs[i], s->execs[s->exec_count - 1], NX_EVENT_EXEC_MAX);
        s->exec_count--;
        return 1;
    }
    return 0;
}

/* ---- shard lifecycle ---- */

void nx_events_shard_drain(nx_engine_shard_t *es) {
    nx_events_shard_t *sh = nx__events_shard(es);
    sh->draining = true;
    if (es->shard->id == 0) nx_timer_stop(&sh->bus->health_watch); /* backends go down now */
    nx_list_t *pos, *tmp;
    nx_list_foreach_safe(pos, tmp, &sh->subs) {
        nx_event_sub_t *s = nx_container_of(pos, nx_event_sub_t, link);
        s->ops->drain(s);
    }
}

void nx_events_shard_close_all(nx_engine_shard_t *es) {
    nx__events_ws_close_all(es);
}

void nx_events_shard_stop(nx_engine_shard_t *es) {
    nx_events_shard_t *sh = nx__events_shard(es);
    nx_later_cancel(&sh->flush);
    flush_soon(&sh->flush); /* what is still waiting goes out before the shard does */
    free(sh->soon);
    sh->soon = NULL;
    sh->soon_cap = 0;
    nx__events_ws_close_all(es);
    sh->stopped = true;
    nx_timer_stop(&sh->poll);
    if (es->shard->id == 0) nx_timer_stop(&sh->bus->health_watch);
}

bool nx_events_shard_busy(nx_engine_shard_t *es) {
    return es->engine->events != NULL && nx__events_shard(es)->ws_count > 0;
}
