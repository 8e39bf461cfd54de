/* Retry budget for one backend, shared by every shard: retries in flight may not exceed a
 * ratio of the requests in flight, with a small minimum always allowed, so that retries cannot
 * multiply the load on a backend that is already failing. Lock-free atomics, no clock. */
#ifndef NX_RESILIENCE_RETRY_BUDGET_H
#define NX_RESILIENCE_RETRY_BUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define NX_RETRY_BUDGET_DEFAULT_RATIO_PERCENT 20
#define NX_RETRY_BUDGET_DEFAULT_MINIMUM 3

/* Plain data. */
typedef struct nx_retry_budget_config {
    uint32_t ratio_percent; /* retries in flight allowed per 100 requests in flight */
    uint32_t minimum;       /* retries in flight always allowed, whatever the ratio says */
} nx_retry_budget_config_t;

/* One per backend, engine-wide, shared by pointer; any thread may call anything but init.
 * Embedded, no heap: nothing to dispose. */
typedef struct nx_retry_budget {
    nx_retry_budget_config_t cfg; /* immutable after init */
    _Atomic int64_t active;       /* requests in flight (first tries; retries not included) */
    _Atomic int64_t retries;      /* retries in flight */
    _Atomic uint64_t granted, denied;
} nx_retry_budget_t;

/** Fills <cfg> with the defaults: 20 percent, minimum 3. */
void nx_retry_budget_config_default(nx_retry_budget_config_t *cfg);
/** Makes <rb> an idle budget with a copy of <cfg>. Not thread-safe: before sharing <rb>. */
void nx_retry_budget_init(nx_retry_budget_t *rb, const nx_retry_budget_config_t *cfg);
/** Counts a request to the backend as in flight; call once per request, not per try. */
void nx_retry_budget_request_started(nx_retry_budget_t *rb);
/** Ends a request counted by nx_retry_budget_request_started. */
void nx_retry_budget_request_finished(nx_retry_budget_t *rb);
/** Takes a retry slot if retries in flight < max(minimum, active * ratio_percent / 100);
 *  true: the retry may go and must be matched by nx_retry_budget_release; false: denied. */
bool nx_retry_budget_try_acquire(nx_retry_budget_t *rb);
/** Gives back a slot taken by nx_retry_budget_try_acquire once that retry has finished. */
void nx_retry_budget_release(nx_retry_budget_t *rb);
/** Retries in flight that <rb> would allow right now. */
uint64_t nx_retry_budget_limit(nx_retry_budget_t *rb);
/** Requests in flight. */
uint64_t nx_retry_budget_active(nx_retry_budget_t *rb);
/** Retries in flight. */
uint64_t nx_retry_budget_in_flight(nx_retry_budget_t *rb);
/** Retries granted so far (cumulative, for metrics). */
uint64_t nx_retry_budget_granted(nx_retry_budget_t *rb);
/** Retries denied so far (cumulative, for metrics). */
uint64_t nx_retry_budget_denied(nx_retry_budget_t *rb);

#endif
