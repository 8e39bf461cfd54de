/* Health of one backend replica: the verdict of active health checks (consecutive results past
 * a threshold flip it) and outlier ejection from real traffic (N consecutive failed calls take
 * the replica out of rotation for base_ejection_ms times the number of ejections so far, up to
 * max_ejection_ms). Owned by one thread, plain fields, clock passed in as now_ms. */
#ifndef NX_RESILIENCE_HEALTH_H
#define NX_RESILIENCE_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

typedef enum nx_health_status {
    NX_HEALTH_UNKNOWN = 0, /* no verdict from health checks yet; available */
    NX_HEALTH_HEALTHY,     /* checks pass and no failure is pending */
    NX_HEALTH_DEGRADED,    /* available, but the last check or call failed */
    NX_HEALTH_UNHEALTHY,   /* unhealthy_threshold checks in a row failed; not available */
    NX_HEALTH_EJECTED,     /* taken out by outlier ejection until ejected_until_ms */
} nx_health_status_t;

/* Plain data. A threshold of 0 counts as 1. */
typedef struct nx_health_config {
    uint32_t healthy_threshold;    /* consecutive passing checks that make it healthy */
    uint32_t unhealthy_threshold;  /* consecutive failing checks that make it unhealthy */
    uint32_t consecutive_failures; /* consecutive failed calls that eject it; 0 = never */
    uint64_t base_ejection_ms;     /* first ejection; the n-th lasts n times this */
    uint64_t max_ejection_ms;      /* longest ejection; also the clean stretch that forgives
                                      one past ejection */
} nx_health_config_t;

/* One per replica, owned by the thread that routes to it (not thread-safe). Embedded, no heap:
 * nothing to dispose. */
typedef struct nx_health {
    nx_health_config_t cfg;
    bool checked_healthy;      /* verdict of active checks; meaningful once <checked> */
    bool checked;              /* some threshold was reached at least once */
    uint32_t check_successes;  /* consecutive passing checks */
    uint32_t check_failures;   /* consecutive failing checks */
    uint32_t call_failures;    /* consecutive failed calls */
    uint32_t ejections;        /* ejections counted for the next ejection's length */
    uint64_t ejections_total;  /* cumulative, for metrics */
    uint64_t ejected_until_ms; /* 0 = never ejected */
} nx_health_t;

/** Fills <cfg> with the defaults: 2 passing / 3 failing checks, ejection after 5 failed calls
 *  for 30 000 ms times the ejection count, at most 300 000 ms. */
void nx_health_config_default(nx_health_config_t *cfg);
/** Makes <h> a replica with no verdict (UNKNOWN, available), copying <cfg>. */
void nx_health_init(nx_health_t *h, const nx_health_config_t *cfg);
/** Records an active health check result at <now_ms>: <ok> false for a failed check. */
void nx_health_check_result(nx_health_t *h, uint64_t now_ms, bool ok);
/** Records the outcome of a real call at <now_ms>; the consecutive_failures-th failure in a row
 *  ejects the replica. Returns true when this call ejected it. */
bool nx_health_call_result(nx_health_t *h, uint64_t now_ms, bool ok);
/** True when calls may be routed to <h> at <now_ms>: not ejected and not unhealthy. */
bool nx_health_available(const nx_health_t *h, uint64_t now_ms);
/** The status of <h> at <now_ms>; EJECTED wins over the check verdict. */
nx_health_status_t nx_health_status(const nx_health_t *h, uint64_t now_ms);
/** Milliseconds from <now_ms> until an ejection of <h> ends; 0 when not ejected. */
uint64_t nx_health_ejected_for_ms(const nx_health_t *h, uint64_t now_ms);
/** "healthy", "degraded", "unhealthy", "ejected" or "unknown" for <s>; "invalid" otherwise.
 *  Static storage. */
const char *nx_health_status_name(nx_health_status_t s);

#endif
