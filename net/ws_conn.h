/* The server side of a WebSocket connection (RFC 6455) after the HTTP upgrade: a codec on
 * nx_conn_t that reassembles frames across reads, answers pings, keeps a quiet peer honest with
 * pings of its own (close 1001 when no pong comes), runs the close handshake (echoing the peer's
 * code; a linger, and an optional deadline for a peer that stops reading) and hands whole
 * messages to its user. Bytes and frames only: nothing here knows what MCP or an event is. */
#ifndef NX_NET_WS_CONN_H
#define NX_NET_WS_CONN_H

#include "conn.h"
#include "http_server.h"
#include "ws.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NX_WS_CONN_LINGER_MS 2000u /* after our close frame: wait this long for the peer's EOF */

typedef struct nx_ws_conn nx_ws_conn_t;

/* What the connection calls on its user, always on the shard's thread. */
typedef struct nx_ws_conn_ops {
    /* One complete text message (valid UTF-8), valid during the call only. */
    void (*on_text)(nx_ws_conn_t *ws, const char *data, size_t len);
    /* One complete binary message, valid during the call only. */
    void (*on_binary)(nx_ws_conn_t *ws, const char *data, size_t len);
    /* The keep-alive timing, asked at every arm so that a config reload reaches open
     * connections: a ping after <*interval_ms> without input (0 = never), then close 1001 when
     * nothing comes back within <*timeout_ms>. */
    void (*keepalive)(nx_ws_conn_t *ws, uint32_t *interval_ms, uint32_t *timeout_ms);
    /* Our close frame is about to be queued: nothing more will be sent. Optional. */
    void (*on_closing)(nx_ws_conn_t *ws);
    /* The connection is being freed: release the object that embeds <ws>. */
    void (*on_free)(nx_ws_conn_t *ws);
} nx_ws_conn_ops_t;

/* Embedded in its user's object, which the nx_conn_t owns once the connection is started:
 * ops->on_free runs exactly once, when the connection goes. */
struct nx_ws_conn {
    nx_conn_t *conn;
    const nx_ws_conn_ops_t *ops;
    nx_ws_parser_t parser;
    nx_buf_t in; /* bytes of a frame not yet complete, kept as the parser left them */
    nx_timer_t keepalive;
    nx_timer_t close_deadline;
    uint32_t close_deadline_ms; /* 0 = the linger alone ends a close */
    bool ping_outstanding;
    bool close_sent; /* our close frame is queued: nothing more goes out */
};

/* What a valid opening handshake chose, from nx_ws_conn_handshake to nx_ws_conn_accept. */
typedef struct nx_ws_upgrade {
    char accept[NX_WS_ACCEPT_LEN + 1]; /* the Sec-WebSocket-Accept value */
    nx_str_t protocol; /* the subprotocol, pointing into the caller's list; {NULL, 0} if none */
} nx_ws_upgrade_t;

/* The codec to give nx_conn_t (nx_conn_new, nx_http_upgrade) with the nx_ws_conn_t as codec. */
extern const nx_conn_ops_t nx_ws_conn_codec;

/** Prepares <ws> to serve with <ops> (borrowed, usually static): messages above <max_message>
 *  bytes are refused with 1009 (0 = NX_WS_DEFAULT_MAX_MESSAGE), and <close_deadline_ms> (0 =
 *  none) bounds a close the peer does not read. Nothing is owned until nx_ws_conn_start. */
void nx_ws_conn_init(nx_ws_conn_t *ws, const nx_ws_conn_ops_t *ops, uint64_t max_message,
                     uint32_t close_deadline_ms);
/** Runs <ws> on <c>, whose codec it is (nx_ws_conn_codec): from now on <c> owns <ws> and frees
 *  it through ops->on_free. Starts the keep-alive. */
void nx_ws_conn_start(nx_ws_conn_t *ws, nx_conn_t *c);

/** From a route handler: validates the upgrade request <req> and chooses the first subprotocol
 *  of the client's offer in the NULL-terminated list <protocols> (NULL = none), filling <up>.
 *  On failure answers <hc> (400, 405 or 426 saying what was wrong; 503 when out of memory or
 *  libcrypto fails) and returns NX_EPROTO, -ENOMEM or -EIO. */
int nx_ws_conn_handshake(nx_http_conn_t *hc, const nx_http_request_t *req,
                         const char *const *protocols, nx_ws_upgrade_t *up);
/** From the same handler, after nx_ws_conn_handshake and nx_ws_conn_init: answers 101 with <up>
 *  and hands the connection of <hc> to <ws> (nx_ws_conn_start). */
void nx_ws_conn_accept(nx_ws_conn_t *ws, nx_http_conn_t *hc, const nx_ws_upgrade_t *up);

/** Sends the <n> bytes of <p> as one text message. Returns 0, NX_ECLOSED once the close
 *  handshake has started or the connection is going, or -ENOMEM. */
int nx_ws_conn_send_text(nx_ws_conn_t *ws, const void *p, size_t n);
/** Starts the close handshake with <code> and <reason> (NUL-terminated or NULL, cut to fit a
 *  control frame): ops->on_closing runs, the close frame goes out, and the connection ends at
 *  the peer's EOF, after NX_WS_CONN_LINGER_MS, or at the close deadline. A no-op once closing. */
void nx_ws_conn_close(nx_ws_conn_t *ws, uint16_t code, const char *reason);

#endif
