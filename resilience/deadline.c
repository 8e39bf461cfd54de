/* Deadline arithmetic: saturating, so no budget or clock value can wrap a deadline into the
 * past. */
#include "deadline.h"

nx_deadline_t nx_deadline_none(void) {
    return (nx_deadline_t){NX_DEADLINE_NONE_MS};
}

nx_deadline_t nx_deadline_in(uint64_t now_ms, uint64_t budget_ms) {
    if (budget_ms >= NX_DEADLINE_NONE_MS - now_ms) return nx_deadline_none();
    return (nx_deadline_t){now_ms + budget_ms};
}

nx_deadline_t nx_deadline_shorten(nx_deadline_t d, nx_deadline_t other) {
    return other.at_ms < d.at_ms ? other : d;
}

nx_deadline_t nx_deadline_shorten_in(nx_deadline_t d, uint64_t now_ms, uint64_t remaining_ms) {
    return nx_deadline_shorten(d, nx_deadline_in(now_ms, remaining_ms));
}

bool nx_deadline_is_none(nx_deadline_t d) {
    return d.at_ms == NX_DEADLINE_NONE_MS;
}

bool nx_deadline_expired(nx_deadline_t d, uint64_t now_ms) {
    return !nx_deadline_is_none(d) && now_ms >= d.at_ms;
}

uint64_t nx_deadline_remaining_ms(nx_deadline_t d, uint64_t now_ms) {
    if (nx_deadline_is_none(d)) return NX_DEADLINE_NONE_MS;
    return d.at_ms > now_ms ? d.at_ms - now_ms : 0;
}

uint64_t nx_deadline_try_timeout_ms(nx_deadline_t d, uint64_t now_ms, uint64_t per_try_ms) {
    uint64_t remaining = nx_deadline_remaining_ms(d, now_ms);
    return per_try_ms > 0 && per_try_ms < remaining ? per_try_ms : remaining;
}
