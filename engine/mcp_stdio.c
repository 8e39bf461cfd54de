/* `nexus mcp`: the MCP catalog over stdio, for desktop clients that spawn their servers.
 * Newline-delimited JSON-RPC on stdin/stdout (one message per line, never an embedded newline),
 * logs on stderr. Runs on one shard: stdin is read and stdout written through the shard's
 * io_uring loop, so asynchronous tools answer in whatever order they finish. End of input
 * cancels what is still running, flushes the answers already given, and exits. */
#include "mcp_stdio.h"

#include "jsonrpc.h"
#include "mcp_stream.h"
#include "log.h"
#include "mcp_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STDIO_READ_CHUNK 65536

/* Owned by the shard running stdio mode. */
struct nx_mcp_stdio {
    nx_engine_shard_t *es;
    int in_fd, out_fd;
    nx_op_t read_op, write_op;
    char *chunk;   /* read buffer handed to the kernel */
    nx_buf_t line; /* bytes of a line not yet complete */
    bool skipping; /* discarding the rest of an over-long line */
    bool eof;
    bool reading, writing;
    nx_buf_t out, sending; /* like nx_conn_t: collect while one write is in flight */
    size_t sent;
    nx_mcp_stream_t stream; /* the requests read so far */
    void (*on_done)(nx_mcp_stdio_t *io);
};

static void flush(nx_mcp_stdio_t *io);

static void maybe_done(nx_mcp_stdio_t *io) {
    if (io->eof && !io->reading && !io->writing && io->out.len == 0 &&
        !nx_mcp_stream_busy(&io->stream) && io->on_done != NULL) {
        void (*done)(nx_mcp_stdio_t *) = io->on_done;
        io->on_done = NULL;
        done(io);
    }
}

static void on_write(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_mcp_stdio_t *io = nx_container_of(op, nx_mcp_stdio_t, write_op);
    io->writing = false;
    if (res < 0) {
        /* The client closed our stdout: nobody can hear us any more. */
        nx_log_warn("stdout closed (%s): stopping", strerror(-res));
        io->out.len = 0;
        io->sending.len = 0;
        io->eof = true;
        maybe_done(io);
        return;
    }
    io->sent += (size_t)res;
    if (io->sent < io->sending.len) {
        if (nx_loop_write(io->es->shard->loop, &io->write_op, io->out_fd,
                          io->sending.data + io->sent, io->sending.len - io->sent) == 0)
            io->writing = true;
        return;
    }
    io->sending.len = 0;
    flush(io);
    maybe_done(io);
}

static void flush(nx_mcp_stdio_t *io) {
    if (io->writing || io->out.len == 0) return;
    nx_buf_t tmp = io->sending;
    io->sending = io->out;
    io->out = tmp;
    io->out.len = 0;
    io->sent = 0;
    if (nx_loop_write(io->es->shard->loop, &io->write_op, io->out_fd, io->sending.data,
                      io->sending.len) == 0)
        io->writing = true;
}

static void send_line(nx_mcp_stdio_t *io, json_t *msg) {
    size_t len = 0;
    char *text = msg ? nx_rpc_encode(msg, &len) : NULL; /* one line: no raw newline inside */
    json_decref(msg);
    if (text == NULL) return;
    nx_buf_append(&io->out, text, len);
    nx_buf_append(&io->out, "\n", 1);
    free(text);
    flush(io);
}

static void stdio_send(nx_mcp_stream_t *st, json_t *msg) {
    nx_mcp_stdio_t *io = nx_container_of(st, nx_mcp_stdio_t, stream);
    send_line(io, msg);
    maybe_done(io);
}

static void handle_line(nx_mcp_stdio_t *io, const char *p, size_t n) {
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0) return; /* blank lines are not messages */
    nx_mcp_stream_handle(&io->stream, p, n);
}

/* Splits received bytes into lines; a line longer than mcp.max_message is refused with one
 * error and skipped up to its newline, so a runaway writer cannot make us buffer without end. */
static void consume(nx_mcp_stdio_t *io, const char *p, size_t n) {
    uint64_t max = io->es->config->config.mcp_limits.max_message;
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!io->skipping) {
            if (io->line.len + take > max) {
                send_line(io, nx_rpc_error_new(NULL, NX_RPC_INVALID_REQUEST,
                                               "message larger than mcp.max_message", NULL));
                io->line.len = 0;
                io->skipping = true;
            } else if (io->line.len > 0 || nl == NULL) {
                nx_buf_append(&io->line, p, take);
            }
        }
        if (nl == NULL) break;
        if (!io->skipping) {
            if (io->line.len > 0) {
                handle_line(io, io->line.data, io->line.len);
                io->line.len = 0;
            } else {
                handle_line(io, p, take); /* the whole line is in this chunk: no copy */
            }
        }
        io->skipping = false;
        p += take + 1;
        n -= take + 1;
    }
}

static void arm_read(nx_mcp_stdio_t *io) {
    if (nx_loop_read(io->es->shard->loop, &io->read_op, io->in_fd, io->chunk, STDIO_READ_CHUNK) ==
        0)
        io->reading = true;
}

static void on_read(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_mcp_stdio_t *io = nx_container_of(op, nx_mcp_stdio_t, read_op);
    io->reading = false;
    if (io->on_done == NULL && res == -ECANCELED) return; /* nx_mcp_stdio_stop */
    if (res > 0) {
        consume(io, io->chunk, (size_t)res);
        if (!io->eof) arm_read(io);
        return;
    }
    if (res == -EINTR || res == -EAGAIN) {
        arm_read(io);
        return;
    }
    /* End of input: the client is done. A last line without a newline still counts. */
    if (io->line.len > 0 && !io->skipping) handle_line(io, io->line.data, io->line.len);
    io->line.len = 0;
    io->eof = true;
    nx_mcp_stream_cancel_all(&io->stream);
    maybe_done(io);
}

nx_mcp_stdio_t *nx_mcp_stdio_start(nx_engine_shard_t *es, int in_fd, int out_fd,
                                   void (*on_done)(nx_mcp_stdio_t *io)) {
    nx_mcp_stdio_t *io = calloc(1, sizeof(*io));
    if (io == NULL || (io->chunk = malloc(STDIO_READ_CHUNK)) == NULL) {
        free(io);
        return NULL;
    }
    io->es = es;
    io->in_fd = in_fd;
    io->out_fd = out_fd;
    io->read_op.cb = on_read;
    io->write_op.cb = on_write;
    io->on_done = on_done;
    nx_mcp_stream_init(&io->stream, es->engine->mcp, stdio_send);
    arm_read(io);
    return io;
}

void nx_mcp_stdio_stop(nx_mcp_stdio_t *io) {
    if (io == NULL) return;
    io->on_done = NULL;
    if (io->reading) nx_loop_cancel(io->es->shard->loop, &io->read_op);
    for (int i = 0; i < 200 && (io->reading || io->writing); i++)
        nx_loop_run_once(io->es->shard->loop, 10);
}

void nx_mcp_stdio_free(nx_mcp_stdio_t *io) {
    if (io == NULL) return;
    nx_mcp_stream_dispose(&io->stream);
    nx_buf_dispose(&io->line);
    nx_buf_dispose(&io->out);
    nx_buf_dispose(&io->sending);
    free(io->chunk);
    free(io);
}
