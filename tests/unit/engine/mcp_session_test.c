/* MCP session table with a fake clock: ids, lookup, idle expiry, LRU eviction under a flood,
 * the bound, and the shard encoded in the id. */
#include <criterion/criterion.h>

#include "mcp_session.h"
#include "nexus/errors.h"

#include <string.h>

static int released;
static void on_release(nx_mcp_session_t *s, void *arg) {
    released++;
}

static nx_str_t sid(const nx_mcp_session_t *s) {
    return (nx_str_t){s->id, strlen(s->id)};
}

Test(mcp_session, ids_are_unique_visible_ascii_and_name_the_shard) {
    nx_mcp_sessions_t t;
    cr_assert_eq(nx_mcp_sessions_init(&t, 0x2a, 1000, 60000, 1000), 0);
    nx_mcp_session_t *a, *b;
    cr_assert_eq(nx_mcp_session_create(&t, 0, &a), 0);
    cr_assert_eq(nx_mcp_session_create(&t, 0, &b), 0);
    cr_assert_eq(strlen(a->id), NX_MCP_SESSION_ID_LEN);
    cr_assert_str_neq(a->id, b->id);
    for (const char *p = a->id; *p; p++)
        cr_assert(*p > 0x20 && *p < 0x7f);
    cr_assert_eq(nx_mcp_session_id_shard(sid(a)), 0x2a);
    cr_assert_eq(nx_mcp_session_id_shard(NX_STR("short")), -1);
    cr_assert_eq(nx_mcp_session_id_shard(NX_STR("zz00000000000000000000000000000000")), -1);
    nx_mcp_sessions_dispose(&t);
}

Test(mcp_session, find_touch_close) {
    nx_mcp_sessions_t t;
    nx_mcp_sessions_init(&t, 0, 10, 1000, 1000);
    t.release = on_release;
    released = 0;
    nx_mcp_session_t *a;
    nx_mcp_session_create(&t, 0, &a);
    cr_assert_eq(nx_mcp_session_find(&t, sid(a), 500), a);
    cr_assert_eq(a->last_used_ms, 500);
    char other[NX_MCP_SESSION_ID_LEN + 1];
    memcpy(other, a->id, sizeof(other));
    other[5] = other[5] == 'a' ? 'b' : 'a';
    cr_assert_null(nx_mcp_session_find(&t, (nx_str_t){other, NX_MCP_SESSION_ID_LEN}, 500),
                   "one changed digit must not match");
    nx_mcp_session_close(&t, a);
    cr_assert_eq(released, 1);
    cr_assert_eq(t.count, 0);
    nx_mcp_sessions_dispose(&t);
}

Test(mcp_session, idle_sessions_expire_used_ones_stay) {
    nx_mcp_sessions_t t;
    nx_mcp_sessions_init(&t, 0, 10, 1000, 1000);
    nx_mcp_session_t *a, *b;
    nx_mcp_session_create(&t, 0, &a);
    nx_mcp_session_create(&t, 0, &b);
    char bid[NX_MCP_SESSION_ID_LEN + 1];
    memcpy(bid, b->id, sizeof(bid));
    nx_mcp_session_find(&t, sid(a), 800); /* a is used, b is not */
    cr_assert_eq(nx_mcp_sessions_expire(&t, 1500), 1);
    cr_assert_eq(t.count, 1);
    cr_assert_null(nx_mcp_session_find(&t, (nx_str_t){bid, NX_MCP_SESSION_ID_LEN}, 1500));
    cr_assert_eq(nx_mcp_session_find(&t, sid(a), 1500), a);
    /* A lookup after the idle time finds nothing even before a sweep. */
    cr_assert_null(nx_mcp_session_find(&t, sid(a), 2501));
    cr_assert_eq(t.count, 0);
    cr_assert_eq(t.expired, 2);
    nx_mcp_sessions_dispose(&t);
}

Test(mcp_session, a_flood_evicts_only_idle_sessions_then_refuses) {
    nx_mcp_sessions_t t;
    nx_mcp_sessions_init(&t, 0, 3, 60000, 5000);
    nx_mcp_session_t *s[3], *x;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(nx_mcp_session_create(&t, 0, &s[i]), 0);
    cr_assert_eq(nx_mcp_session_create(&t, 1000, &x), NX_EFULL,
                 "sessions used 1 s ago must not be evicted");
    nx_mcp_session_find(&t, sid(s[0]), 5000); /* s[0] recently used; s[1] is now the LRU */
    char lru_id[NX_MCP_SESSION_ID_LEN + 1];
    memcpy(lru_id, s[1]->id, sizeof(lru_id));
    cr_assert_eq(nx_mcp_session_create(&t, 6000, &x), 0, "an idle LRU session makes room");
    cr_assert_eq(t.evicted, 1);
    cr_assert_null(nx_mcp_session_find(&t, (nx_str_t){lru_id, NX_MCP_SESSION_ID_LEN}, 6000));
    cr_assert_eq(t.count, 3, "the bound holds");
    nx_mcp_sessions_dispose(&t);
}

Test(mcp_session, many_sessions) {
    nx_mcp_sessions_t t;
    nx_mcp_sessions_init(&t, 1, 5000, 60000, 1000);
    static nx_mcp_session_t *s[5000];
    for (int i = 0; i < 5000; i++)
        cr_assert_eq(nx_mcp_session_create(&t, 0, &s[i]), 0);
    for (int i = 0; i < 5000; i += 7)
        cr_assert_eq(nx_mcp_session_find(&t, sid(s[i]), 1), s[i]);
    nx_mcp_sessions_dispose(&t);
}
