/* A child process on a shard's loop, for stdio backends: spawned with its stdin, stdout and
 * stderr on pipes; stdout delivered line by line, stderr in chunks (for the log); writes to
 * stdin queued and sent in order; the exit noticed through a pidfd, and reported once its
 * output has been read. Stopping escalates as MCP's stdio transport asks: close stdin, then
 * SIGTERM, then SIGKILL. Restart policy is the caller's (see resilience/): one nx_child_t is
 * one run of the process. Owned by one shard thread. */
#ifndef NX_NET_CHILD_H
#define NX_NET_CHILD_H

#include "buf.h"
#include "shard.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct nx_child nx_child_t;

typedef struct nx_child_ops {
    /* One line of stdout, without its end of line ("\n" or "\r\n"); <line> is valid during the
     * call only. Lines over max_line are dropped whole and counted in lines_dropped. */
    void (*on_line)(nx_child_t *c, const char *line, size_t len, void *arg);
    /* Bytes of stderr as they come (may be NULL: stderr is then discarded). */
    void (*on_stderr)(nx_child_t *c, const char *p, size_t n, void *arg);
    /* The process ended (<status> as from waitpid) and its stdout has been read to the end or
     * for a second after the exit. Runs once; the child may be freed from here. */
    void (*on_exit)(nx_child_t *c, int status, void *arg);
} nx_child_ops_t;

typedef struct nx_child_opts {
    const char *const *argv; /* argv[0] is looked up in PATH; NULL-terminated */
    const char *const *env;  /* "NAME=value" added to (or replacing in) nexus's environment;
                                NULL-terminated, may be NULL */
    const char *cwd;         /* may be NULL */
    size_t max_line;         /* longest stdout line kept (default 16 MiB) */
    size_t max_queued;       /* stdin bytes queued at most; writes beyond fail (default 64 MiB) */
} nx_child_opts_t;

/* Owned by the caller's shard; freed with nx_child_free. */
struct nx_child {
    nx_shard_t *shard;
    pid_t pid;
    int in_fd, out_fd, err_fd, pid_fd;
    nx_child_ops_t cb;
    void *arg;
    size_t max_line, max_queued;
    nx_buf_t line;            /* stdout bytes of the current, unfinished line */
    bool skipping;            /* dropping the rest of an over-long line */
    nx_buf_t queued, writing; /* stdin: waiting, and in the write in flight */
    size_t written;           /* bytes of <writing> already accepted */
    nx_op_t read_op, err_op, write_op, exit_op;
    nx_later_t flush; /* queued writes start at the end of the loop turn, as one write */
    bool read_busy, err_busy, write_busy, exit_busy; /* operations in flight */
    char read_buf[16384], err_buf[4096];
    bool out_eof, err_eof, exited, reported, stdin_closed, freeing;
    int status;
    nx_timer_t stop_timer; /* SIGTERM, then SIGKILL */
    nx_timer_t eof_timer;  /* reports the exit when stdout stays open after it */
    uint32_t kill_after_ms;
    bool term_sent;
    uint64_t lines, lines_dropped, bytes_in, bytes_out;
};

/** Starts <o>->argv on <s> and returns it in <out>: 0, or -errno (the command was not found or
 *  could not run: the error comes from posix_spawn). */
int nx_child_spawn(nx_shard_t *s, const nx_child_opts_t *o, const nx_child_ops_t *ops, void *arg,
                   nx_child_t **out);
/** Queues <n> bytes for stdin: 0, NX_ECLOSED after stdin was closed or the process ended, or
 *  NX_EFULL over max_queued. */
int nx_child_write(nx_child_t *c, const void *p, size_t n);
/** Closes stdin once what is queued has been written (MCP's "close stdin" shutdown step). */
void nx_child_close_stdin(nx_child_t *c);
/** Sends <sig> to the process (no effect once it has been reaped). */
void nx_child_signal(nx_child_t *c, int sig);
/** Stops the process: closes stdin, SIGTERM after <term_after_ms> if it is still running,
 *  SIGKILL <kill_after_ms> later. on_exit reports the end. */
void nx_child_stop(nx_child_t *c, uint32_t term_after_ms, uint32_t kill_after_ms);
/** True while the process has not been reaped. */
static inline bool nx_child_running(const nx_child_t *c) {
    return !c->exited;
}
/** Frees <c>: a process still running is killed (SIGKILL) and reaped first; operations in flight
 *  are cancelled and the memory goes with the last one. No callback runs after this. */
void nx_child_free(nx_child_t *c);

#endif
