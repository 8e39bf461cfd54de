/* The outbound WebSocket client (RFC 6455, client role) on a shard loop: connects, performs the
 * opening handshake (Sec-WebSocket-Accept checked, the subprotocol checked when one was asked),
 * then carries messages — text frames out, masked with a fresh random key each; messages in,
 * fragments reassembled and bounded, text validated as UTF-8 — answers pings, and ends with the
 * close handshake. Bytes and frames only: nothing here knows what MCP or JSON is.
 *
 * Callbacks never run inside a call of this API. on_close runs exactly once per client (unless it
 * was aborted) and the client is freed when it returns. Everything runs on the owning shard's
 * thread; the shard must have a provided-buffer ring (connections are nx_conn_t). */
#ifndef NX_NET_WS_CLIENT_H
#define NX_NET_WS_CLIENT_H

#include "http1.h"
#include "http_response.h"
#include "shard.h"
#include "ws.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct nx_ws_client nx_ws_client_t;

/* What a client reports; <arg> is the one given to nx_ws_client_connect. */
typedef struct nx_ws_client_ops {
    /* The server accepted the upgrade: messages may be sent. */
    void (*on_open)(nx_ws_client_t *c, void *arg);
    /* One complete message (fragments reassembled; text is valid UTF-8), valid during the call
     * only. Messages still arrive after nx_ws_client_close until the server's close frame. */
    void (*on_message)(nx_ws_client_t *c, const char *data, size_t len, bool binary, void *arg);
    /* The connection is over: <code> is the close code of the server's close frame (1005 when it
     * had none), the code we sent after a protocol error (1002, 1007, 1009, 1011), or 1006 when
     * no close handshake happened (connect refused or timed out, handshake refused, EOF);
     * <reason> says why (valid during the call only). nx_ws_client_error tells the cause. <c> is
     * freed when this returns. */
    void (*on_close)(nx_ws_client_t *c, int code, const char *reason, void *arg);
} nx_ws_client_ops_t;

/* One connection's request and bounds; copied by nx_ws_client_connect (may be on the stack). */
typedef struct nx_ws_client_opts {
    const char *host;                /* the Host header: "name:port" (required) */
    const char *path;                /* the request target: "/ws?x=1" (required) */
    const char *subprotocol;         /* Sec-WebSocket-Protocol to ask for, or NULL for none */
    const nx_http_header_t *headers; /* extra request headers (Authorization, ...); the client
                                      * writes Host, Upgrade, Connection and the Sec-WebSocket-*
                                      * ones itself */
    size_t header_count;
    uint32_t connect_timeout_ms; /* TCP connect and opening handshake together; default 2000 */
    uint32_t close_timeout_ms;   /* wait for the server's close frame, then for its TCP close;
                                  * default 1000 */
    uint64_t max_message;        /* a bigger message is refused with 1009; 0 = 10 MiB */
} nx_ws_client_opts_t;

/** Connects to <addr> (copied; AF_INET, AF_INET6 or AF_UNIX) on shard <s> and starts the opening
 *  handshake described by <opts>; <ops>/<arg> receive what happens. Returns 0 with the client in
 *  <out> (valid until on_close returns or nx_ws_client_abort), or <0 with nothing called: -EINVAL
 *  (a missing host or path, a bad address, a CR, LF or NUL in the request, a header the client
 *  writes itself), -ENOMEM, -EIO (no randomness), or the -errno of opening a socket. */
int nx_ws_client_connect(nx_shard_t *s, const struct sockaddr *addr, socklen_t addrlen,
                         const nx_ws_client_opts_t *opts, const nx_ws_client_ops_t *ops, void *arg,
                         nx_ws_client_t **out);
/** Sends the <len> bytes of <data> as one text message (a single masked frame). Returns 0, or
 *  NX_ECLOSED unless <c> is open (not yet, or closing), -ENOMEM or -EIO. */
int nx_ws_client_send_text(nx_ws_client_t *c, const char *data, size_t len);
/** Starts the close handshake with <code> and <reason> (NUL-terminated or NULL, cut to fit a
 *  control frame): on_close follows once the server answers, or after close_timeout_ms. Before
 *  the connection is open it gives up at once (on_close follows with 1006). Returns 0 (also when
 *  already closing), or -EINVAL for a code that may not be sent. */
int nx_ws_client_close(nx_ws_client_t *c, uint16_t code, const char *reason);
/** Drops <c> at once: the TCP connection is closed without a close frame and no callback of <c>
 *  runs any more; its memory goes with the last completion. A no-op inside on_close. */
void nx_ws_client_abort(nx_ws_client_t *c);
/** Why <c> ended, for on_close: 0 after a close handshake (either side started it), NX_EPROTO
 *  (the server broke the protocol, or refused or botched the handshake), -ECONNREFUSED,
 *  -ETIMEDOUT (connect, handshake or close wait), -ECONNRESET (closed without a close frame),
 *  -ECANCELED (closed by us before it opened), -ENOMEM or another -errno. */
int nx_ws_client_error(const nx_ws_client_t *c);
/** True once the opening handshake succeeded (on_open ran). */
bool nx_ws_client_opened(const nx_ws_client_t *c);

/** Checks the server's answer <head> to an opening handshake whose Sec-WebSocket-Key gives
 *  <accept> (nx_ws_accept_key) and which asked for <subprotocol> (NULL = none): 101, Upgrade:
 *  websocket, Connection: upgrade, the accept value, the subprotocol exactly as asked (absent
 *  when none was), no extension. Returns 0, or NX_EPROTO with a static message in *<why>. */
int nx_ws_client_check_handshake(const nx_http_response_t *head, const char *accept,
                                 const char *subprotocol, const char **why);

#endif
