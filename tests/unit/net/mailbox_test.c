/* The bounded MPSC mailbox: order, bound, and no loss or duplication with racing producers. */
#include <criterion/criterion.h>

#include "mailbox.h"
#include "nexus/errors.h"

#include <pthread.h>
#include <stdint.h>

Test(mailbox, fifo_and_bounded) {
    nx_mailbox_t mb;
    cr_assert_eq(nx_mailbox_init(&mb, 4), 0);
    for (uintptr_t i = 1; i <= 4; i++)
        cr_assert_eq(nx_mailbox_push(&mb, (void *)i), 0);
    cr_assert_eq(nx_mailbox_push(&mb, (void *)5), NX_EFULL, "a full mailbox must refuse");
    for (uintptr_t i = 1; i <= 4; i++)
        cr_assert_eq((uintptr_t)nx_mailbox_pop(&mb), i);
    cr_assert_null(nx_mailbox_pop(&mb));
    /* Slots are reusable after wrap-around. */
    for (int round = 0; round < 10; round++) {
        cr_assert_eq(nx_mailbox_push(&mb, (void *)7), 0);
        cr_assert_eq((uintptr_t)nx_mailbox_pop(&mb), 7);
    }
    nx_mailbox_dispose(&mb);
}

Test(mailbox, wake_flag_is_given_once_until_done) {
    nx_mailbox_t mb;
    nx_mailbox_init(&mb, 8);
    cr_assert(nx_mailbox_need_wake(&mb));
    cr_assert_not(nx_mailbox_need_wake(&mb), "a second producer must not send another wake-up");
    nx_mailbox_wake_done(&mb);
    cr_assert(nx_mailbox_need_wake(&mb));
    nx_mailbox_dispose(&mb);
}

#define PRODUCERS 4
#define PER_PRODUCER 50000

static nx_mailbox_t g_mb;

static void *producer(void *arg) {
    uintptr_t base = (uintptr_t)arg * PER_PRODUCER;
    for (uintptr_t i = 0; i < PER_PRODUCER; i++) {
        while (nx_mailbox_push(&g_mb, (void *)(base + i + 1)) == NX_EFULL)
            sched_yield();
    }
    return NULL;
}

Test(mailbox, concurrent_producers_lose_nothing) {
    nx_mailbox_init(&g_mb, 256);
    pthread_t t[PRODUCERS];
    for (uintptr_t p = 0; p < PRODUCERS; p++)
        pthread_create(&t[p], NULL, producer, (void *)p);
    static uint8_t seen[PRODUCERS * PER_PRODUCER + 1];
    uintptr_t last[PRODUCERS] = {0};
    size_t got = 0;
    while (got < PRODUCERS * PER_PRODUCER) {
        uintptr_t v = (uintptr_t)nx_mailbox_pop(&g_mb);
        if (v == 0) {
            sched_yield();
            continue;
        }
        cr_assert_eq(seen[v], 0, "message %lu delivered twice", (unsigned long)v);
        seen[v] = 1;
        uintptr_t p = (v - 1) / PER_PRODUCER;
        cr_assert_gt(v, last[p], "messages of one producer must stay in order");
        last[p] = v;
        got++;
    }
    for (int p = 0; p < PRODUCERS; p++)
        pthread_join(t[p], NULL);
    cr_assert_null(nx_mailbox_pop(&g_mb));
    nx_mailbox_dispose(&g_mb);
}
