/* MCP over stdio (`nexus mcp`); see mcp_stdio.c. */
#ifndef NX_ENGINE_MCP_STDIO_H
#define NX_ENGINE_MCP_STDIO_H

#include "engine.h"

typedef struct nx_mcp_stdio nx_mcp_stdio_t;

/** Starts serving MCP on <in_fd>/<out_fd> from shard <es>; <on_done> runs once input has ended
 *  and every answer has been written. NULL on ENOMEM. */
nx_mcp_stdio_t *nx_mcp_stdio_start(nx_engine_shard_t *es, int in_fd, int out_fd,
                                   void (*on_done)(nx_mcp_stdio_t *io));
/** Cancels the read in flight and waits (on the shard's loop) until the kernel let go of the
 *  buffer; call on the shard thread before nx_mcp_stdio_free. */
void nx_mcp_stdio_stop(nx_mcp_stdio_t *io);
/** Frees <io>, cancelling calls still running. NULL-safe. */
void nx_mcp_stdio_free(nx_mcp_stdio_t *io);

#endif
