/* The cache in /health and /metrics (see cache_view.h). Each shard's cache keeps its counters
 * as relaxed atomics, so any shard may sum them; the pointers are set at shard start. */
#include "cache_view.h"

#include "cache.h"

#include <pthread.h>

/* Shards stop one by one while others still answer /health: a shard's cache is detached and
 * freed under this lock, and the sums read under it. Neither is on a request's path. */
static pthread_mutex_t view_mu = PTHREAD_MUTEX_INITIALIZER;

static void sum_stats(const nx_engine_t *e, nx_cache_stats_t *st) {
    *st = (nx_cache_stats_t){0};
    st->redis_up = true;
    pthread_mutex_lock(&view_mu);
    for (uint32_t i = 0; i < e->shard_count; i++) {
        const nx_engine_shard_t *es = e->shards ? e->shards[i] : NULL;
        if (es != NULL && es->cache != NULL) nx_cache_stats_add(es->cache, st);
    }
    pthread_mutex_unlock(&view_mu);
}

void nx_cache_view_detach(nx_engine_shard_t *es) {
    pthread_mutex_lock(&view_mu);
    struct nx_cache *c = es->cache;
    es->cache = NULL;
    nx_cache_free(c);
    pthread_mutex_unlock(&view_mu);
}

json_t *nx_cache_health(const nx_engine_t *e) {
    const nx_cache_settings_t *cs = &e->config->config.cache;
    if (!cs->enabled) return json_pack("{s:s, s:s}", "status", "disabled", "redis", "none");
    nx_cache_stats_t st;
    sum_stats(e, &st);
    const char *redis = !st.redis_configured ? "none" : st.redis_up ? "up" : "down";
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "status",
                     st.redis_configured && !st.redis_up ? "degraded" : "ok", "redis", redis,
                     "entries", (json_int_t)st.l1_entries, "bytes", (json_int_t)st.l1_bytes,
                     "l1_hits", (json_int_t)st.l1_hits, "l1_misses", (json_int_t)st.l1_misses,
                     "l2_hits", (json_int_t)st.l2_hits, "l2_errors", (json_int_t)st.l2_errors,
                     "stale_served", (json_int_t)st.stale_served, "redis_down_events",
                     (json_int_t)st.redis_down_events);
}

int nx_cache_metrics(const nx_engine_t *e, nx_buf_t *out) {
    if (!e->config->config.cache.enabled) return 0;
    nx_cache_stats_t st;
    sum_stats(e, &st);
    const struct {
        const char *name, *type, *help;
        uint64_t value;
    } rows[] = {
        {"nexus_cache_l1_hits_total", "counter", "Lookups answered by the in-process cache",
         st.l1_hits},
        {"nexus_cache_l1_misses_total", "counter", "Lookups the in-process cache could not answer",
         st.l1_misses},
        {"nexus_cache_l1_evictions_total", "counter", "Entries evicted to stay within max_bytes",
         st.l1_evictions},
        {"nexus_cache_l1_expired_total", "counter", "Entries dropped after their TTL and grace",
         st.l1_expired},
        {"nexus_cache_l1_entries", "gauge", "Entries in the in-process cache", st.l1_entries},
        {"nexus_cache_l1_bytes", "gauge", "Bytes held by the in-process cache", st.l1_bytes},
        {"nexus_cache_l2_hits_total", "counter", "Lookups answered by Redis", st.l2_hits},
        {"nexus_cache_l2_misses_total", "counter", "Redis lookups that found nothing fresh",
         st.l2_misses},
        {"nexus_cache_l2_errors_total", "counter",
         "Redis lookups that failed (timeout, disconnected, bad value)", st.l2_errors},
        {"nexus_cache_flights_total", "counter", "Misses that led a call (single-flight)",
         st.flights},
        {"nexus_cache_shared_total", "counter", "Lookups that waited for another's call",
         st.shared},
        {"nexus_cache_stale_served_total", "counter",
         "Failed calls answered from an expired entry (stale-if-error)", st.stale_served},
        {"nexus_cache_redis_down_total", "counter", "Times the Redis connection was lost",
         st.redis_down_events},
        {"nexus_cache_redis_up", "gauge", "1 while every shard's Redis connection is up",
         st.redis_configured && st.redis_up ? 1u : 0u},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (nx_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", rows[i].name, rows[i].help,
                           rows[i].name, rows[i].type, rows[i].name,
                           (unsigned long long)rows[i].value) < 0)
            return -1;
    }
    return 0;
}
