/* Bulkhead for one backend, shared by every shard: at most max_concurrent calls in flight; one
 * more is rejected at once, never queued, so a slow backend ties up a bounded share of the
 * gateway. Lock-free atomics, no clock. */
#ifndef NX_RESILIENCE_BULKHEAD_H
#define NX_RESILIENCE_BULKHEAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* One per backend, engine-wide, shared by pointer; any thread may call anything but init.
 * Embedded, no heap: nothing to dispose. */
typedef struct nx_bulkhead {
    uint32_t max_concurrent; /* immutable after init; 0 = no limit */
    _Atomic uint32_t in_flight;
    _Atomic uint64_t admitted, rejected;
} nx_bulkhead_t;

/** Makes <bh> an empty bulkhead admitting at most <max_concurrent> calls at once (0 = no
 *  limit, only counting). Not thread-safe: before sharing <bh>. */
void nx_bulkhead_init(nx_bulkhead_t *bh, uint32_t max_concurrent);
/** Takes a place for one call: true, and the call must be matched by nx_bulkhead_leave; false
 *  when max_concurrent calls are already in flight (counted as rejected). */
bool nx_bulkhead_try_enter(nx_bulkhead_t *bh);
/** Gives back the place of a call admitted by nx_bulkhead_try_enter. */
void nx_bulkhead_leave(nx_bulkhead_t *bh);
/** Calls in flight. */
uint32_t nx_bulkhead_in_flight(nx_bulkhead_t *bh);
/** Calls admitted so far (cumulative, for metrics). */
uint64_t nx_bulkhead_admitted(nx_bulkhead_t *bh);
/** Calls rejected so far (cumulative, for metrics). */
uint64_t nx_bulkhead_rejected(nx_bulkhead_t *bh);

#endif
