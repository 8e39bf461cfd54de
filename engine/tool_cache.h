/* The tool cache: TTL caching of backend tools/call results in front of the backends'
 * provider (see tool_cache.c). */
#ifndef NX_ENGINE_TOOL_CACHE_H
#define NX_ENGINE_TOOL_CACHE_H

#include "mcp_server.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct nx_tool_cache nx_tool_cache_t;

/** Wraps <server>'s provider with the cache for the tools named in <ttls> ({"name": ttl_ms},
 *  stolen) and the tools whose names start with a key of <prefixes> ({"files__": ttl_ms},
 *  stolen; a name in <ttls> wins), every other backend tool for <default_ttl_ms> (0 =
 *  not); caches isError results too when <cache_errors>; answers failed calls from stale
 *  entries when <stale_if_error>. With no TTLs it installs nothing and <*out> is NULL. Returns 0 or
 * -ENOMEM. Call before serving; the shards' caches (nx_engine_shard_t.cache) are used when present.
 */
int nx_tool_cache_install(nx_mcp_server_t *server, json_t *ttls, json_t *prefixes,
                          uint64_t default_ttl_ms, bool cache_errors, bool stale_if_error,
                          nx_tool_cache_t **out);
/** Frees the wrapper (after serving ended). NULL-safe. */
void nx_tool_cache_free(nx_tool_cache_t *tc);

#endif
