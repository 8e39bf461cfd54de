/* Deadline arithmetic on the monotonic clock: a request's overall deadline (its own budget,
 * shortened, never lengthened, by any deadline the front end brought), what remains of it, and
 * the timeout of one try. Pure values, no clock of its own: every function takes now_ms. */
#ifndef NX_RESILIENCE_DEADLINE_H
#define NX_RESILIENCE_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#define NX_DEADLINE_NONE_MS UINT64_MAX

/* A point on the monotonic clock, in ms; at_ms == NX_DEADLINE_NONE_MS means no deadline.
 * Plain value, copied freely. */
typedef struct nx_deadline {
    uint64_t at_ms;
} nx_deadline_t;

/** No deadline at all: never expires, NX_DEADLINE_NONE_MS remaining. */
nx_deadline_t nx_deadline_none(void);
/** The deadline <budget_ms> after <now_ms>, saturating: a budget too large to add is none. */
nx_deadline_t nx_deadline_in(uint64_t now_ms, uint64_t budget_ms);
/** The earlier of <d> and <other>: a deadline can only be shortened this way. */
nx_deadline_t nx_deadline_shorten(nx_deadline_t d, nx_deadline_t other);
/** <d> shortened by a front end's "<remaining_ms> left" hint received at <now_ms>. */
nx_deadline_t nx_deadline_shorten_in(nx_deadline_t d, uint64_t now_ms, uint64_t remaining_ms);
/** True when <d> is no deadline. */
bool nx_deadline_is_none(nx_deadline_t d);
/** True when <d> has passed at <now_ms> (at <now_ms> == at_ms it has). */
bool nx_deadline_expired(nx_deadline_t d, uint64_t now_ms);
/** Milliseconds left before <d> at <now_ms>: 0 once expired, NX_DEADLINE_NONE_MS for none. */
uint64_t nx_deadline_remaining_ms(nx_deadline_t d, uint64_t now_ms);
/** Timeout in ms for one try starting at <now_ms>: min(<per_try_ms>, remaining of <d>);
 *  <per_try_ms> 0 means no per-try limit (the remaining time, NX_DEADLINE_NONE_MS if none). */
uint64_t nx_deadline_try_timeout_ms(nx_deadline_t d, uint64_t now_ms, uint64_t per_try_ms);

#endif
