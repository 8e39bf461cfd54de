/* Name resolution for backend URLs (see resolver.h). getaddrinfo blocks, so it runs only on the
 * thread that creates the backends and on the resolver's own thread, never on a shard. */
#include "resolver.h"

#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SLOTS 4096

typedef struct slot {
    char *host;
    uint16_t port;
    _Atomic(nx_resolved_t *) current;
    nx_resolved_t **history; /* every record ever published, freed with the resolver */
    size_t history_count;
} slot_t;

struct nx_resolver {
    uint32_t interval_ms;
    slot_t *slots;
    size_t count, cap;
    pthread_t thread;
    bool running, stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

/* Resolves <host>:<port> into <out>; 0, or the getaddrinfo error code. */
static int lookup(const char *host, uint16_t port, nx_resolved_t *out) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) return rc;
    if (res == NULL) return EAI_NONAME;
    memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Publishes <r> (stolen) as <s>'s address. */
static int publish(slot_t *s, nx_resolved_t *r) {
    nx_resolved_t **h = realloc(s->history, (s->history_count + 1) * sizeof(*h));
    if (h == NULL) {
        free(r);
        return -ENOMEM;
    }
    s->history = h;
    s->history[s->history_count++] = r;
    nx_resolved_t *old = atomic_load(&s->current);
    r->generation = old ? old->generation + 1 : 1;
    atomic_store(&s->current, r);
    return 0;
}

nx_resolver_t *nx_resolver_new(uint32_t interval_ms) {
    nx_resolver_t *r = calloc(1, sizeof(*r));
    if (r == NULL) return NULL;
    r->interval_ms = interval_ms;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->wake, &ca);
    pthread_condattr_destroy(&ca);
    return r;
}

int nx_resolver_add(nx_resolver_t *r, const char *host, uint16_t port, char *err, size_t errlen) {
    if (r->count == MAX_SLOTS) {
        snprintf(err, errlen, "more than %d backend addresses", MAX_SLOTS);
        return -1;
    }
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        slot_t *s = realloc(r->slots, cap * sizeof(*s));
        if (s == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        r->slots = s;
        r->cap = cap;
    }
    nx_resolved_t *rec = calloc(1, sizeof(*rec));
    int rc = rec ? lookup(host, port, rec) : EAI_MEMORY;
    if (rc != 0) {
        free(rec);
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    slot_t *s = &r->slots[r->count];
    memset(s, 0, sizeof(*s));
    s->host = strdup(host);
    s->port = port;
    atomic_init(&s->current, NULL);
    if (s->host == NULL || publish(s, rec) < 0) {
        free(s->host);
        free(s->history);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return (int)r->count++;
}

const nx_resolved_t *nx_resolver_get(const nx_resolver_t *r, int slot) {
    return atomic_load(&((nx_resolver_t *)r)->slots[slot].current);
}

/* Re-resolves every slot; a name that fails now keeps its last address (DNS hiccups must not
 * take a backend away). */
static void refresh(nx_resolver_t *r) {
    for (size_t i = 0; i < r->count; i++) {
        slot_t *s = &r->slots[i];
        nx_resolved_t fresh = {0};
        int rc = lookup(s->host, s->port, &fresh);
        if (rc != 0) {
            nx_log_warn("resolver: %s: %s (keeping the last address)", s->host, gai_strerror(rc));
            continue;
        }
        const nx_resolved_t *cur = atomic_load(&s->current);
        if (cur->len == fresh.len && memcmp(&cur->addr, &fresh.addr, fresh.len) == 0) continue;
        nx_resolved_t *rec = malloc(sizeof(*rec));
        if (rec == NULL) continue;
        *rec = fresh;
        if (publish(s, rec) == 0) nx_log_info("resolver: %s has a new address", s->host);
    }
}

static void *resolver_main(void *arg) {
    nx_resolver_t *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += r->interval_ms / 1000;
        until.tv_nsec += (long)(r->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
        int rc = 0;
        while (!r->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&r->wake, &r->lock, &until);
        if (r->stopping) break;
        pthread_mutex_unlock(&r->lock);
        refresh(r);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int nx_resolver_start(nx_resolver_t *r) {
    if (r->interval_ms == 0 || r->count == 0) return 0;
    /* The thread takes no signals: nexus handles them on its main thread (signalfd), and a
     * SIGTERM delivered here would kill the process instead of draining it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, resolver_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) return -rc;
    r->running = true;
    return 0;
}

void nx_resolver_free(nx_resolver_t *r) {
    if (r == NULL) return;
    if (r->running) {
        pthread_mutex_lock(&r->lock);
        r->stopping = true;
        pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
    }
    for (size_t i = 0; i < r->count; i++) {
        for (size_t k = 0; k < r->slots[i].history_count; k++)
            free(r->slots[i].history[k]);
        free(r->slots[i].history);
        free(r->slots[i].host);
    }
    free(r->slots);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    free(r);
}
