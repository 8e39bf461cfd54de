/* Child processes on the shard loop (see child.h). The pipes are read and written with io_uring
 * operations like sockets; the exit is a pidfd becoming readable, so no SIGCHLD handler and no
 * thread is involved. */
#include "child.h"

#include "nexus/errors.h"
#include "uring.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_MAX_LINE (16u << 20)
#define DEFAULT_MAX_QUEUED (64u << 20)
#define EOF_GRACE_MS 1000u

static void arm_read(nx_child_t *c);
static void arm_err(nx_child_t *c);
static void start_write(nx_child_t *c);

/* The environment of the child: ours, with <extra> entries added or replacing ours. */
static char **build_env(const char *const *extra) {
    size_t n = 0, k = 0;
    while (environ[n] != NULL)
        n++;
    while (extra != NULL && extra[k] != NULL)
        k++;
    char **env = calloc(n + k + 1, sizeof(char *));
    if (env == NULL) return NULL;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t name = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool replaced = false;
        for (size_t j = 0; j < k && !replaced; j++)
            replaced = strncmp(extra[j], environ[i], name) == 0 && extra[j][name] == '=';
        if (!replaced) env[out++] = environ[i];
    }
    for (size_t j = 0; j < k; j++)
        env[out++] = (char *)extra[j];
    return env;
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Frees <c> once it is being freed and nothing is in flight any more. */
static bool busy(const nx_child_t *c) {
    return c->read_busy || c->err_busy || c->write_busy || c->exit_busy;
}

static void maybe_release(nx_child_t *c) {
    if (!c->freeing || busy(c)) return;
    close_fd(&c->in_fd);
    close_fd(&c->out_fd);
    close_fd(&c->err_fd);
    close_fd(&c->pid_fd);
    nx_buf_dispose(&c->line);
    nx_buf_dispose(&c->queued);
    nx_buf_dispose(&c->writing);
    free(c);
}

static void maybe_report(nx_child_t *c) {
    if (c->reported || !c->exited || c->freeing) return;
    if (!c->out_eof && nx_timer_active(&c->eof_timer)) return;
    c->reported = true;
    nx_timer_stop(&c->eof_timer);
    nx_timer_stop(&c->stop_timer);
    c->cb.on_exit(c, c->status, c->arg);
}

/* ---- stdout: lines ---- */

static void take_bytes(nx_child_t *c, const char *p, size_t n) {
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t chunk = nl ? (size_t)(nl - p) : n;
        if (!c->skipping) {
            if (c->line.len + chunk > c->max_line) {
                c->skipping = true; /* the line is too long: drop it whole */
                nx_buf_clear(&c->line);
            } else if (nx_buf_append(&c->line, p, chunk) < 0) {
                c->skipping = true;
                nx_buf_clear(&c->line);
            }
        }
        if (nl == NULL) return;
        if (c->skipping) {
            c->lines_dropped++;
        } else {
            size_t len = c->line.len;
            if (len > 0 && c->line.data[len - 1] == '\r') len--;
            c->lines++;
            if (!c->freeing) c->cb.on_line(c, c->line.data, len, c->arg);
        }
        nx_buf_clear(&c->line);
        c->skipping = false;
        p = nl + 1;
        n -= chunk + 1;
    }
}

static void on_read(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_child_t *c = nx_container_of(op, nx_child_t, read_op);
    c->read_busy = false;
    if (c->freeing) {
        maybe_release(c);
        return;
    }
    if (res > 0) {
        c->bytes_in += (uint64_t)res;
        take_bytes(c, c->read_buf, (size_t)res);
        if (c->freeing) { /* on_line freed it */
            maybe_release(c);
            return;
        }
        arm_read(c);
        return;
    }
    c->out_eof = true; /* EOF, or an error that ends the stream all the same */
    maybe_report(c);
}

static void arm_read(nx_child_t *c) {
    if (nx_loop_read(c->shard->loop, &c->read_op, c->out_fd, c->read_buf, sizeof(c->read_buf)) <
        0) {
        c->out_eof = true;
        return;
    }
    c->read_busy = true;
}

/* ---- stderr ---- */

static void on_err(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_child_t *c = nx_container_of(op, nx_child_t, err_op);
    c->err_busy = false;
    if (c->freeing) {
        maybe_release(c);
        return;
    }
    if (res <= 0) {
        c->err_eof = true;
        return;
    }
    if (c->cb.on_stderr != NULL) c->cb.on_stderr(c, c->err_buf, (size_t)res, c->arg);
    if (c->freeing) {
        maybe_release(c);
        return;
    }
    arm_err(c);
}

static void arm_err(nx_child_t *c) {
    if (nx_loop_read(c->shard->loop, &c->err_op, c->err_fd, c->err_buf, sizeof(c->err_buf)) < 0) {
        c->err_eof = true;
        return;
    }
    c->err_busy = true;
}

/* ---- stdin ---- */

static void finish_stdin(nx_child_t *c) {
    close_fd(&c->in_fd);
    nx_buf_clear(&c->queued);
    nx_buf_clear(&c->writing);
}

static void on_write(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_child_t *c = nx_container_of(op, nx_child_t, write_op);
    c->write_busy = false;
    if (c->freeing) {
        maybe_release(c);
        return;
    }
    if (res < 0) {
        /* EPIPE: nobody reads any more (the process is ending); what is queued is lost. */
        c->stdin_closed = true;
        finish_stdin(c);
        return;
    }
    c->written += (size_t)res;
    c->bytes_out += (uint64_t)res;
    if (c->written >= c->writing.len) {
        nx_buf_clear(&c->writing);
        c->written = 0;
    }
    start_write(c);
}

static void start_write(nx_child_t *c) {
    if (c->in_fd < 0 || c->write_busy) return;
    if (c->writing.len == 0) {
        if (c->queued.len == 0) {
            if (c->stdin_closed) finish_stdin(c); /* everything written: now close */
            return;
        }
        nx_buf_t t = c->writing; /* swap: queued becomes what is written */
        c->writing = c->queued;
        c->queued = t;
        c->written = 0;
    }
    if (nx_loop_write(c->shard->loop, &c->write_op, c->in_fd, c->writing.data + c->written,
                      c->writing.len - c->written) < 0) {
        finish_stdin(c);
        return;
    }
    c->write_busy = true;
}

int nx_child_write(nx_child_t *c, const void *p, size_t n) {
    if (c->stdin_closed || c->in_fd < 0 || c->exited) return NX_ECLOSED;
    if (c->queued.len + c->writing.len + n > c->max_queued) return NX_EFULL;
    if (nx_buf_append(&c->queued, p, n) < 0) return -ENOMEM;
    /* Not at once: the messages of one turn (a line and its newline, a fan-out's calls) then
     * reach the child in one write, and it wakes once for them. */
    if (!c->write_busy) nx_shard_at_turn_end(c->shard, &c->flush);
    return 0;
}

static void on_flush(nx_later_t *l) {
    start_write(nx_container_of(l, nx_child_t, flush));
}

void nx_child_close_stdin(nx_child_t *c) {
    c->stdin_closed = true;
    nx_later_cancel(&c->flush); /* written now, before the close */
    start_write(c);             /* closes at once when nothing is queued */
}

/* ---- exit and stopping ---- */

static void on_exit_ready(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_child_t *c = nx_container_of(op, nx_child_t, exit_op);
    c->exit_busy = false;
    if (c->freeing) {
        maybe_release(c);
        return;
    }
    int status = 0;
    pid_t r = waitpid(c->pid, &status, WNOHANG);
    if (r == 0) { /* spurious: still running */
        if (nx_loop_poll(c->shard->loop, &c->exit_op, c->pid_fd, POLLIN) == 0) c->exit_busy = true;
        return;
    }
    c->exited = true;
    c->status = r == c->pid ? status : 0;
    nx_timer_stop(&c->stop_timer);
    /* A grandchild may keep stdout open: do not wait for its EOF for ever. */
    if (!c->out_eof) nx_shard_timer_start(c->shard, &c->eof_timer, EOF_GRACE_MS);
    maybe_report(c);
}

static void on_eof_grace(nx_timer_t *t) {
    nx_child_t *c = nx_container_of(t, nx_child_t, eof_timer);
    maybe_report(c);
}

void nx_child_signal(nx_child_t *c, int sig) {
    if (!c->exited) kill(c->pid, sig);
}

static void on_stop_timer(nx_timer_t *t) {
    nx_child_t *c = nx_container_of(t, nx_child_t, stop_timer);
    if (c->exited) return;
    /* The whole process group: a server started through a shell must not outlive it. */
    if (!c->term_sent) {
        c->term_sent = true;
        kill(-c->pid, SIGTERM);
        nx_shard_timer_start(c->shard, &c->stop_timer, c->kill_after_ms);
        return;
    }
    kill(-c->pid, SIGKILL);
}

void nx_child_stop(nx_child_t *c, uint32_t term_after_ms, uint32_t kill_after_ms) {
    nx_child_close_stdin(c);
    if (c->exited || nx_timer_active(&c->stop_timer)) return;
    c->kill_after_ms = kill_after_ms;
    nx_shard_timer_start(c->shard, &c->stop_timer, term_after_ms);
}

/* ---- life ---- */

int nx_child_spawn(nx_shard_t *s, const nx_child_opts_t *o, const nx_child_ops_t *ops, void *arg,
                   nx_child_t **out) {
    int in[2] = {-1, -1}, outp[2] = {-1, -1}, err[2] = {-1, -1};
    nx_child_t *c = calloc(1, sizeof(*c));
    char **env = c ? build_env(o->env) : NULL;
    int rc = 0;
    if (c == NULL || env == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        rc = -errno;
        goto fail;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* dup2 clears close-on-exec on the copies the child keeps. */
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    if (o->cwd != NULL) posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    /* nexus blocks and handles signals itself: the child starts with none blocked, default
     * dispositions, in its own process group (a terminal's Ctrl-C is nexus's to handle). */
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT, SIGCHLD};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&defaults, sigs[i]);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    pid_t pid = 0;
    int e = posix_spawnp(&pid, o->argv[0], &fa, &attr, (char *const *)o->argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (e != 0) {
        rc = -e;
        goto fail;
    }
    close(in[0]);
    close(outp[1]);
    close(err[1]);
    free(env);
    env = NULL;
    c->pid = pid;
    c->shard = s;
    c->in_fd = in[1];
    c->out_fd = outp[0];
    c->err_fd = err[0];
    c->pid_fd = (int)syscall(SYS_pidfd_open, pid, 0);
    c->cb = *ops;
    c->arg = arg;
    c->max_line = o->max_line ? o->max_line : DEFAULT_MAX_LINE;
    c->max_queued = o->max_queued ? o->max_queued : DEFAULT_MAX_QUEUED;
    nx_buf_init(&c->line);
    nx_buf_init(&c->queued);
    nx_buf_init(&c->writing);
    c->read_op.cb = on_read;
    c->err_op.cb = on_err;
    c->write_op.cb = on_write;
    c->exit_op.cb = on_exit_ready;
    nx_later_init(&c->flush, on_flush);
    nx_timer_init(&c->stop_timer, on_stop_timer);
    nx_timer_init(&c->eof_timer, on_eof_grace);
    arm_read(c);
    arm_err(c);
    if (c->pid_fd < 0 || nx_loop_poll(s->loop, &c->exit_op, c->pid_fd, POLLIN) < 0) {
        /* No pidfd (old kernel) or a jammed ring: nothing would ever report the exit. */
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        c->exited = c->reported = true;
        nx_child_free(c);
        return -ENOSYS;
    }
    c->exit_busy = true;
    *out = c;
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0) close(in[i]);
        if (outp[i] >= 0) close(outp[i]);
        if (err[i] >= 0) close(err[i]);
    }
    free(env);
    free(c);
    return rc;
}

void nx_child_free(nx_child_t *c) {
    if (c == NULL) return;
    c->freeing = true;
    nx_later_cancel(&c->flush);
    nx_timer_stop(&c->stop_timer);
    nx_timer_stop(&c->eof_timer);
    if (!c->exited) {
        kill(-c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0); /* immediate after SIGKILL: no zombie left behind */
        c->exited = true;
    }
    nx_loop_t *l = c->shard->loop;
    nx_op_t *ops[] = {&c->read_op, &c->err_op, &c->write_op, &c->exit_op};
    bool in_flight[] = {c->read_busy, c->err_busy, c->write_busy, c->exit_busy};
    for (size_t i = 0; i < 4; i++)
        if (in_flight[i]) nx_loop_cancel(l, ops[i]);
    maybe_release(c);
}
