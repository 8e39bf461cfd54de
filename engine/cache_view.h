/* The cache as operators see it: the cache section of /health and the nexus_cache_* series of
 * /metrics, summed over the shards' caches. */
#ifndef NX_ENGINE_CACHE_VIEW_H
#define NX_ENGINE_CACHE_VIEW_H

#include "engine.h"
#include "buf.h"

#include <jansson.h>

/** /health's cache: {status: ok | degraded | disabled, redis: up | down | none, entries, bytes,
 *  hits, misses, ...}; degraded while a configured Redis is down. */
json_t *nx_cache_health(const nx_engine_t *e);
/** Frees the calling shard's cache (shard stop), so that no other shard sums it any more. */
void nx_cache_view_detach(nx_engine_shard_t *es);
/** Appends the nexus_cache_* metrics to <out> in Prometheus text format. */
int nx_cache_metrics(const nx_engine_t *e, nx_buf_t *out);

#endif
