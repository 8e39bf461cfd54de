/* Deadline arithmetic with a fake clock: budget, remaining, expiry at the exact ms, shortening
 * by a front end (never lengthening), per-try timeouts, no deadline, and saturation. */
#include <criterion/criterion.h>

#include "deadline.h"

Test(deadline, a_budget_gives_a_deadline_that_expires_at_its_exact_ms) {
    nx_deadline_t d = nx_deadline_in(1000, 500);
    cr_assert_eq(d.at_ms, 1500);
    cr_assert_not(nx_deadline_is_none(d));
    cr_assert_eq(nx_deadline_remaining_ms(d, 1000), 500);
    cr_assert_eq(nx_deadline_remaining_ms(d, 1499), 1);
    cr_assert_not(nx_deadline_expired(d, 1499));
    cr_assert(nx_deadline_expired(d, 1500));
    cr_assert_eq(nx_deadline_remaining_ms(d, 1500), 0);
    cr_assert_eq(nx_deadline_remaining_ms(d, 9999), 0);
    cr_assert(nx_deadline_expired(nx_deadline_in(7, 0), 7), "a zero budget is already over");
}

Test(deadline, a_front_end_deadline_only_shortens) {
    nx_deadline_t d = nx_deadline_in(1000, 500);
    nx_deadline_t shorter = nx_deadline_shorten_in(d, 1000, 200);
    cr_assert_eq(shorter.at_ms, 1200);
    nx_deadline_t longer = nx_deadline_shorten_in(d, 1000, 2000);
    cr_assert_eq(longer.at_ms, 1500, "a longer front-end deadline does not extend ours");
    cr_assert_eq(nx_deadline_shorten(d, nx_deadline_none()).at_ms, 1500);
    cr_assert_eq(nx_deadline_shorten(nx_deadline_none(), d).at_ms, 1500);
    cr_assert_eq(nx_deadline_shorten(d, (nx_deadline_t){1500}).at_ms, 1500);
    cr_assert_eq(nx_deadline_shorten(d, (nx_deadline_t){1499}).at_ms, 1499);
}

Test(deadline, a_try_gets_the_smaller_of_its_timeout_and_what_remains) {
    nx_deadline_t d = nx_deadline_in(1000, 500);
    cr_assert_eq(nx_deadline_try_timeout_ms(d, 1000, 300), 300);
    cr_assert_eq(nx_deadline_try_timeout_ms(d, 1300, 300), 200, "the last try is cut short");
    cr_assert_eq(nx_deadline_try_timeout_ms(d, 1200, 300), 300);
    cr_assert_eq(nx_deadline_try_timeout_ms(d, 1000, 0), 500, "no per-try limit");
    cr_assert_eq(nx_deadline_try_timeout_ms(d, 1600, 300), 0, "expired: no time for a try");
    nx_deadline_t none = nx_deadline_none();
    cr_assert_eq(nx_deadline_try_timeout_ms(none, 1000, 300), 300);
    cr_assert_eq(nx_deadline_try_timeout_ms(none, 1000, 0), NX_DEADLINE_NONE_MS);
}

Test(deadline, none_never_expires) {
    nx_deadline_t d = nx_deadline_none();
    cr_assert(nx_deadline_is_none(d));
    cr_assert_not(nx_deadline_expired(d, UINT64_MAX));
    cr_assert_eq(nx_deadline_remaining_ms(d, 0), NX_DEADLINE_NONE_MS);
}

Test(deadline, huge_budgets_saturate_instead_of_wrapping) {
    cr_assert(nx_deadline_is_none(nx_deadline_in(UINT64_MAX - 5, 10)));
    cr_assert(nx_deadline_is_none(nx_deadline_in(5, UINT64_MAX)));
    cr_assert(nx_deadline_is_none(nx_deadline_in(UINT64_MAX - 5, 5)));
    cr_assert_eq(nx_deadline_in(UINT64_MAX - 5, 4).at_ms, UINT64_MAX - 1);
    nx_deadline_t d = nx_deadline_in(1000, 500);
    cr_assert_eq(nx_deadline_shorten_in(d, UINT64_MAX - 1, UINT64_MAX).at_ms, 1500);
}
