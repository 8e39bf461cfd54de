/* Child processes on a real shard loop: stdout lines and stderr chunks, stdin writes in order,
 * exit status, the stop escalation (close stdin, SIGTERM, SIGKILL), over-long lines, extra
 * environment, spawn errors, and freeing a child that still runs. Each test starts a shard whose
 * start hook runs the scenario; the child's exit stops the shard. */
#include <criterion/criterion.h>

#include "child.h"
#include "nexus/errors.h"
#include "shard.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

typedef struct scenario {
    const char *const *argv;
    const char *const *env;
    const char *stdin_text; /* written at start, then stdin is closed */
    size_t max_line;
    bool stop;          /* nx_child_stop(50, 100) right away */
    bool free_at_start; /* nx_child_free right after the spawn */
    /* results */
    int spawn_rc;
    char out[4096];
    char err[4096];
    int status;
    bool exited;
    uint64_t dropped;
} scenario_t;

static scenario_t *g;

/* Stops the shard a little later: cancelled operations complete in the next loop iterations. */
static nx_timer_t g_stop_timer;
static nx_shard_t *g_shard;
static void stop_later(nx_timer_t *t) {
    nx_shard_stop(g_shard);
}

static void on_line(nx_child_t *c, const char *line, size_t len, void *arg) {
    scenario_t *sc = arg;
    size_t n = strlen(sc->out);
    snprintf(sc->out + n, sizeof(sc->out) - n, "%.*s|", (int)len, line);
}

static void on_stderr(nx_child_t *c, const char *p, size_t len, void *arg) {
    scenario_t *sc = arg;
    size_t n = strlen(sc->err);
    snprintf(sc->err + n, sizeof(sc->err) - n, "%.*s", (int)len, p);
}

static void on_exit_cb(nx_child_t *c, int status, void *arg) {
    scenario_t *sc = arg;
    sc->status = status;
    sc->exited = true;
    sc->dropped = c->lines_dropped;
    nx_shard_t *s = c->shard;
    nx_child_free(c);
    g_shard = s;
    nx_timer_init(&g_stop_timer, stop_later);
    nx_shard_timer_start(s, &g_stop_timer, 50);
}

static int start(nx_shard_t *s) {
    scenario_t *sc = g;
    nx_child_opts_t o = {.argv = sc->argv, .env = sc->env, .max_line = sc->max_line};
    nx_child_ops_t ops = {.on_line = on_line, .on_stderr = on_stderr, .on_exit = on_exit_cb};
    nx_child_t *c = NULL;
    sc->spawn_rc = nx_child_spawn(s, &o, &ops, sc, &c);
    if (sc->spawn_rc < 0) {
        nx_shard_stop(s);
        return 0;
    }
    if (sc->free_at_start) {
        nx_child_free(c);
        g_shard = s;
        nx_timer_init(&g_stop_timer, stop_later);
        nx_shard_timer_start(s, &g_stop_timer, 100);
        return 0;
    }
    if (sc->stdin_text != NULL) {
        cr_assert_eq(nx_child_write(c, sc->stdin_text, strlen(sc->stdin_text)), 0);
        nx_child_close_stdin(c);
        cr_assert_eq(nx_child_write(c, "x", 1), NX_ECLOSED, "no writes after close");
    }
    if (sc->stop) nx_child_stop(c, 50, 100);
    return 0;
}

static void run(scenario_t *sc) {
    g = sc;
    nx_shard_opts_t o = {.ring_entries = 64, .mailbox_capacity = 16, .on_start = start};
    nx_shard_t *s = NULL;
    cr_assert_eq(nx_shard_start(0, &o, &s), 0);
    nx_shard_join_free(s);
}

Test(child, lines_stderr_stdin_and_exit_status) {
    static const char *const argv[] = {
        "sh", "-c", "echo hello; echo oops >&2; while read x; do echo got:$x; done; exit 3", NULL};
    scenario_t sc = {.argv = argv, .stdin_text = "a\nb b\r\nc\n"};
    run(&sc);
    cr_assert_eq(sc.spawn_rc, 0);
    cr_assert(sc.exited);
    cr_assert_str_eq(sc.out, "hello|got:a|got:b b|got:c|", "CRLF and LF both end lines");
    cr_assert_str_eq(sc.err, "oops\n");
    cr_assert(WIFEXITED(sc.status));
    cr_assert_eq(WEXITSTATUS(sc.status), 3);
}

Test(child, extra_environment_and_a_last_line_without_newline) {
    static const char *const argv[] = {"sh", "-c", "printf '%s-%s' \"$NX_A\" \"$HOME_X\"", NULL};
    static const char *const env[] = {"NX_A=42", "HOME_X=y", NULL};
    scenario_t sc = {.argv = argv, .env = env};
    run(&sc);
    /* An unterminated last line is not a line: stdio MCP messages end with a newline. */
    cr_assert_str_eq(sc.out, "");
    cr_assert_eq(WEXITSTATUS(sc.status), 0);
    static const char *const argv2[] = {"sh", "-c", "echo \"$NX_A\"", NULL};
    scenario_t sc2 = {.argv = argv2, .env = env};
    run(&sc2);
    cr_assert_str_eq(sc2.out, "42|");
}

Test(child, over_long_lines_are_dropped_whole) {
    static const char *const argv[] = {"sh", "-c", "echo 0123456789ABCDEF; echo short", NULL};
    scenario_t sc = {.argv = argv, .max_line = 10};
    run(&sc);
    cr_assert_str_eq(sc.out, "short|");
    cr_assert_eq(sc.dropped, 1);
}

Test(child, stop_closes_stdin_first) {
    static const char *const argv[] = {"cat", NULL};
    scenario_t sc = {.argv = argv, .stop = true};
    run(&sc);
    cr_assert(WIFEXITED(sc.status), "cat ends at EOF, before any signal");
    cr_assert_eq(WEXITSTATUS(sc.status), 0);
}

Test(child, stop_escalates_to_sigkill) {
    /* Ignores SIGTERM and its stdin: only SIGKILL ends it, and its child (sleep, which holds
     * the pipes) goes with it: signals go to the process group. */
    static const char *const argv[] = {"sh", "-c", "trap '' TERM; exec 0<&-; sleep 30", NULL};
    scenario_t sc = {.argv = argv, .stop = true};
    run(&sc);
    cr_assert(WIFSIGNALED(sc.status));
    cr_assert_eq(WTERMSIG(sc.status), SIGKILL);
}

Test(child, sigterm_ends_a_child_that_ignores_stdin) {
    static const char *const argv[] = {"sleep", "30", NULL};
    scenario_t sc = {.argv = argv, .stop = true};
    run(&sc);
    cr_assert(WIFSIGNALED(sc.status));
    cr_assert_eq(WTERMSIG(sc.status), SIGTERM, "signals are not blocked in the child");
}

Test(child, unknown_command_fails_to_spawn) {
    static const char *const argv[] = {"/nonexistent/nx-no-such-binary", NULL};
    scenario_t sc = {.argv = argv};
    run(&sc);
    cr_assert_eq(sc.spawn_rc, -ENOENT);
}

Test(child, freeing_a_running_child_kills_and_reaps_it) {
    static const char *const argv[] = {"sleep", "30", NULL};
    scenario_t sc = {.argv = argv, .free_at_start = true};
    run(&sc);
    cr_assert_eq(sc.spawn_rc, 0);
    cr_assert(!sc.exited, "no callback after free");
    cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1, "no child left to reap (no zombie)");
}
