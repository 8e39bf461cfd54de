/* The tool cache: tools/call results of backend tools with a TTL (servers[].cache) are served
 * from the shard's cache (L1, then Redis) under the key "tool:<name>" + the canonical
 * arguments. It wraps the backends' provider: a call whose tool has a TTL looks the key up;
 * a hit answers at once; the one miss that leads (single-flight) calls the backend through an
 * in-process request that skips this cache, stores a successful, non-isError result and hands
 * it to the calls that waited; a failed call may be answered from an entry that expired less
 * than the stale grace ago (stale-if-error), marked in _meta. Everything else passes through. */
#include "tool_cache.h"
#include "json_write.h"

#include "cache.h"
#include "engine.h"
#include "invoke.h"
#include "jsonrpc.h"
#include "mcp_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The wrapped provider and the TTLs; immutable while serving. */
struct nx_tool_cache {
    nx_mcp_provider_t inner;
    void *inner_arg;
    json_t *ttls;            /* {"tool name": ttl_ms} */
    json_t *prefixes;        /* {"server<sep>": ttl_ms}: every tool of a prefixed server */
    uint64_t default_ttl_ms; /* every other backend tool */
    bool cache_errors;       /* isError results are cached too */
    bool stale_if_error;
};

/* One cached call in flight (a hit answers inline and needs none). */
typedef struct cached_call {
    nx_tool_cache_t *tc;
    nx_mcp_call_t *call;
    nx_cache_t *cache;
    nx_cache_key_t key;
    uint64_t ttl_ms;
    nx_cache_wait_t *wait;
    nx_invoke_t *inv;
    bool leading;
    uint32_t relooks; /* lookups repeated after a cancelled leader */
} cached_call_t;

static uint64_t ttl_of(const nx_tool_cache_t *tc, const char *tool) {
    json_t *v = json_object_get(tc->ttls, tool);
    if (json_is_integer(v)) return (uint64_t)json_integer_value(v);
    const char *prefix;
    json_object_foreach(tc->prefixes, prefix, v) {
        if (strncmp(tool, prefix, strlen(prefix)) == 0) return (uint64_t)json_integer_value(v);
    }
    return tc->default_ttl_ms;
}

/* Answers <call> with the cached bytes of a CallToolResult, flagged in _meta. */
static void answer_cached(nx_mcp_call_t *call, const char *value, size_t len, const char *how) {
    json_t *r = json_loadb(value, len, 0, NULL);
    if (r == NULL || !json_is_object(r)) {
        json_decref(r);
        nx_mcp_call_error(call, NX_RPC_INTERNAL_ERROR, "a cached result could not be read", NULL);
        return;
    }
    json_t *meta = json_object_get(r, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(r, "_meta", meta);
    }
    json_object_set_new(meta, "io.nexus/cache", json_string(how));
    nx_mcp_call_return(call, r);
}

/* Answers <call> with a JSON-RPC error object given as bytes. */
static void answer_error_bytes(nx_mcp_call_t *call, const char *value, size_t len) {
    json_t *e = json_loadb(value, len, 0, NULL);
    const char *m = json_string_value(json_object_get(e, "message"));
    json_int_t code = json_integer_value(json_object_get(e, "code"));
    nx_mcp_call_error(call, code ? (int)code : NX_RPC_INTERNAL_ERROR, m ? m : "the call failed",
                      json_incref(json_object_get(e, "data")));
    json_decref(e);
}

static void cc_free(cached_call_t *cc) {
    free(cc);
}

static void on_lead_note(void *arg, const char *method, const json_t *params) {
    cached_call_t *cc = arg;
    nx_mcp_call_forward(cc->call, method, params);
}

static void on_lead_done(void *arg, const json_t *result, const json_t *error, uint32_t attempts) {
    cached_call_t *cc = arg;
    nx_mcp_call_t *call = cc->call;
    cc->inv = NULL;
    cc->leading = false;
    nx_mcp_call_on_cancel(call, NULL, NULL);
    nx_mcp_call_note_attempts(call, attempts);
    bool is_error = json_is_true(json_object_get(result, "isError"));
    bool ok = result != NULL && !is_error;
    if (!ok && cc->tc->stale_if_error) {
        const char *stale;
        size_t len;
        if (nx_cache_stale(cc->cache, &cc->key, &stale, &len)) {
            /* Copy: the pointer is valid until the next cache call only. */
            char *copy = malloc(len ? len : 1);
            if (copy != NULL) {
                memcpy(copy, stale, len);
                nx_cache_note_stale(cc->cache);
                nx_cache_complete(cc->cache, &cc->key, copy, len, true, 0);
                answer_cached(call, copy, len, "stale");
                free(copy);
                cc_free(cc);
                return;
            }
        }
    }
    const json_t *what = result ? result : error;
    size_t len = 0;
    char *text = nx_json_write(what, 17, &len);
    /* An isError result is shared with the waiting calls as the result it is. */
    bool shared_ok = result != NULL;
    bool store = ok || (result != NULL && cc->tc->cache_errors);
    if (text != NULL)
        nx_cache_complete(cc->cache, &cc->key, text, len, shared_ok, store ? cc->ttl_ms : 0);
    else
        nx_cache_complete(cc->cache, &cc->key, "{}", 2, false, 0);
    free(text);
    if (result != NULL) {
        nx_mcp_call_return(call, json_deep_copy(result));
    } else {
        const char *m = json_string_value(json_object_get(error, "message"));
        json_int_t code = json_integer_value(json_object_get(error, "code"));
        nx_mcp_call_error(call, code ? (int)code : NX_RPC_INTERNAL_ERROR, m ? m : "the call failed",
                          json_deep_copy(json_object_get(error, "data")));
    }
    cc_free(cc);
}

static void on_cc_cancelled(nx_mcp_call_t *call, void *arg) {
    cached_call_t *cc = arg;
    (void)call;
    /* Forget what is in flight before calling out: cancelling may call back. */
    nx_cache_wait_t *wait = cc->wait;
    nx_invoke_t *inv = cc->inv;
    bool leading = cc->leading;
    cc->wait = NULL;
    cc->inv = NULL;
    cc->leading = false;
    if (wait != NULL) nx_cache_lookup_cancel(wait);
    if (inv != NULL) nx_invoke_cancel(inv);
    if (leading) {
        /* Its followers look the key up again (one of them leads) rather than fail. */
        nx_cache_complete(cc->cache, &cc->key, NX_CACHE_LEADER_GONE,
                          sizeof(NX_CACHE_LEADER_GONE) - 1, false, 0);
    }
    cc_free(cc);
}

static void on_lookup(void *arg, nx_cache_outcome_t outcome, const char *value, size_t len,
                      unsigned flags) {
    cached_call_t *cc = arg;
    nx_mcp_call_t *call = cc->call;
    cc->wait = NULL;
    if (outcome == NX_CACHE_SHARED && !(flags & NX_CACHE_OK) &&
        len == sizeof(NX_CACHE_LEADER_GONE) - 1 && memcmp(value, NX_CACHE_LEADER_GONE, len) == 0 &&
        cc->relooks < 3) {
        /* The call this one waited for was cancelled: look again (this one may lead now). */
        cc->relooks++;
        nx_cache_wait_t *w = nx_cache_lookup(cc->cache, &cc->key, on_lookup, cc);
        if (w != NULL) cc->wait = w;
        return;
    }
    if (outcome == NX_CACHE_LEAD) {
        cc->leading = true;
        nx_invoke_opts_t opts = {.note = on_lead_note, .no_cache = true};
        nx_invoke_t *inv = NULL;
        /* The in-process request comes back through this provider with no_cache set. */
        int rc = nx_invoke(nx_engine_current_shard()->engine->mcp, "tools/call",
                           nx_mcp_call_params(call), &opts, on_lead_done, cc, &inv);
        if (rc < 0) {
            cc->leading = false;
            nx_cache_complete(cc->cache, &cc->key, "{}", 2, false, 0);
            nx_mcp_call_on_cancel(call, NULL, NULL);
            cc_free(cc);
            nx_mcp_call_error(call, NX_RPC_INTERNAL_ERROR, "out of memory", NULL);
            return;
        }
        if (inv != NULL) cc->inv = inv;
        return;
    }
    nx_mcp_call_on_cancel(call, NULL, NULL);
    cc_free(cc);
    if (outcome == NX_CACHE_HIT) {
        answer_cached(call, value, len, flags & NX_CACHE_FROM_L2 ? "hit-l2" : "hit");
    } else if (flags & NX_CACHE_OK) {
        answer_cached(call, value, len, "shared");
    } else {
        answer_error_bytes(call, value, len);
    }
}

static bool wrapped_call(void *arg, nx_mcp_call_t *call, const char *method, const char *target) {
    nx_tool_cache_t *tc = arg;
    nx_engine_shard_t *es = nx_engine_current_shard();
    uint64_t ttl = 0;
    if (es != NULL && es->cache != NULL && strcmp(method, "tools/call") == 0 &&
        !nx_mcp_call_no_cache(call))
        ttl = ttl_of(tc, target);
    if (ttl == 0)
        return tc->inner.call ? tc->inner.call(tc->inner_arg, call, method, target) : false;
    cached_call_t *cc = calloc(1, sizeof(*cc));
    char key_target[300];
    snprintf(key_target, sizeof(key_target), "tool:%s", target);
    if (cc == NULL ||
        nx_cache_key_make(key_target, json_object_get(nx_mcp_call_params(call), "arguments"),
                          &cc->key) < 0) {
        free(cc);
        return tc->inner.call(tc->inner_arg, call, method, target);
    }
    cc->tc = tc;
    cc->call = call;
    cc->cache = es->cache;
    cc->ttl_ms = ttl;
    nx_mcp_call_on_cancel(call, on_cc_cancelled, cc);
    nx_cache_wait_t *w = nx_cache_lookup(es->cache, &cc->key, on_lookup, cc);
    if (w != NULL) cc->wait = w;
    return true;
}

static void wrapped_list(void *arg, nx_mcp_catalog_kind_t kind, json_t *items) {
    nx_tool_cache_t *tc = arg;
    if (tc->inner.list != NULL) tc->inner.list(tc->inner_arg, kind, items);
}

static void wrapped_subscribe(void *arg, const char *uri, bool on) {
    nx_tool_cache_t *tc = arg;
    if (tc->inner.subscribe != NULL) tc->inner.subscribe(tc->inner_arg, uri, on);
}

int nx_tool_cache_install(nx_mcp_server_t *server, json_t *ttls, json_t *prefixes,
                          uint64_t default_ttl_ms, bool cache_errors, bool stale_if_error,
                          nx_tool_cache_t **out) {
    *out = NULL;
    if (json_object_size(ttls) == 0 && json_object_size(prefixes) == 0 && default_ttl_ms == 0) {
        json_decref(ttls);
        json_decref(prefixes);
        return 0;
    }
    nx_tool_cache_t *tc = calloc(1, sizeof(*tc));
    if (tc == NULL) {
        json_decref(ttls);
        json_decref(prefixes);
        return -ENOMEM;
    }
    nx_mcp_server_get_provider(server, &tc->inner, &tc->inner_arg);
    tc->ttls = ttls;
    tc->prefixes = prefixes;
    tc->default_ttl_ms = default_ttl_ms;
    tc->cache_errors = cache_errors;
    tc->stale_if_error = stale_if_error;
    nx_mcp_provider_t p = {
        .list = wrapped_list, .call = wrapped_call, .subscribe = wrapped_subscribe};
    nx_mcp_server_set_provider(server, &p, tc);
    *out = tc;
    return 0;
}

void nx_tool_cache_free(nx_tool_cache_t *tc) {
    if (tc == NULL) return;
    json_decref(tc->ttls);
    json_decref(tc->prefixes);
    free(tc);
}
