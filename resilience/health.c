/* Replica health: two independent signals. Active checks flip a verdict only after a run of
 * equal results, so one lost probe does not drain a replica. Outlier ejection reacts to real
 * traffic; each ejection lasts longer than the one before (a replica that keeps failing stays
 * out longer), and a clean stretch of max_ejection_ms forgives one past ejection. */
#include "health.h"

void nx_health_config_default(nx_health_config_t *cfg) {
    *cfg = (nx_health_config_t){
        .healthy_threshold = 2,
        .unhealthy_threshold = 3,
        .consecutive_failures = 5,
        .base_ejection_ms = 30000,
        .max_ejection_ms = 300000,
    };
}

void nx_health_init(nx_health_t *h, const nx_health_config_t *cfg) {
    *h = (nx_health_t){.cfg = *cfg};
    if (h->cfg.healthy_threshold == 0) h->cfg.healthy_threshold = 1;
    if (h->cfg.unhealthy_threshold == 0) h->cfg.unhealthy_threshold = 1;
}

void nx_health_check_result(nx_health_t *h, uint64_t now_ms, bool ok) {
    if (ok) {
        h->check_failures = 0;
        if (h->check_successes < UINT32_MAX) h->check_successes++;
        if (h->check_successes >= h->cfg.healthy_threshold) {
            h->checked = true;
            h->checked_healthy = true;
        }
    } else {
        h->check_successes = 0;
        if (h->check_failures < UINT32_MAX) h->check_failures++;
        if (h->check_failures >= h->cfg.unhealthy_threshold) {
            h->checked = true;
            h->checked_healthy = false;
        }
    }
}

/* min(base * n, max) without overflow. */
static uint64_t ejection_ms(const nx_health_config_t *cfg, uint32_t n) {
    if (cfg->base_ejection_ms > 0 && n > cfg->max_ejection_ms / cfg->base_ejection_ms)
        return cfg->max_ejection_ms;
    return cfg->base_ejection_ms * n;
}

bool nx_health_call_result(nx_health_t *h, uint64_t now_ms, bool ok) {
    if (ok) {
        h->call_failures = 0;
        return false;
    }
    /* Calls that were already in flight when it was ejected keep failing for a while: they do
     * not extend the ejection or count towards the next one. */
    if (now_ms < h->ejected_until_ms) return false;
    if (h->call_failures < UINT32_MAX) h->call_failures++;
    if (h->cfg.consecutive_failures == 0 || h->call_failures < h->cfg.consecutive_failures)
        return false;
    if (h->ejections > 0 && h->cfg.max_ejection_ms > 0 && now_ms > h->ejected_until_ms) {
        uint64_t forgiven = (now_ms - h->ejected_until_ms) / h->cfg.max_ejection_ms;
        h->ejections = forgiven >= h->ejections ? 0 : h->ejections - (uint32_t)forgiven;
    }
    if (h->ejections < UINT32_MAX) h->ejections++;
    h->ejections_total++;
    uint64_t len = ejection_ms(&h->cfg, h->ejections);
    h->ejected_until_ms = len >= UINT64_MAX - now_ms ? UINT64_MAX : now_ms + len;
    h->call_failures = 0;
    return true;
}

bool nx_health_available(const nx_health_t *h, uint64_t now_ms) {
    return now_ms >= h->ejected_until_ms && !(h->checked && !h->checked_healthy);
}

nx_health_status_t nx_health_status(const nx_health_t *h, uint64_t now_ms) {
    if (now_ms < h->ejected_until_ms) return NX_HEALTH_EJECTED;
    if (h->checked && !h->checked_healthy) return NX_HEALTH_UNHEALTHY;
    if (h->check_failures > 0 || h->call_failures > 0) return NX_HEALTH_DEGRADED;
    return h->checked ? NX_HEALTH_HEALTHY : NX_HEALTH_UNKNOWN;
}

uint64_t nx_health_ejected_for_ms(const nx_health_t *h, uint64_t now_ms) {
    return now_ms < h->ejected_until_ms ? h->ejected_until_ms - now_ms : 0;
}

const char *nx_health_status_name(nx_health_status_t s) {
    static const char *const names[] = {
        [NX_HEALTH_UNKNOWN] = "unknown",   [NX_HEALTH_HEALTHY] = "healthy",
        [NX_HEALTH_DEGRADED] = "degraded", [NX_HEALTH_UNHEALTHY] = "unhealthy",
        [NX_HEALTH_EJECTED] = "ejected",
    };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "invalid";
}
