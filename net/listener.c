/* Listening sockets and the per-shard multishot accept (see listener.h). */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int nx_listen_tcp(const char *host, uint16_t port, int backlog, uint16_t *bound_port) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int gai = getaddrinfo(host && host[0] ? host : NULL, portstr, &hints, &res);
    if (gai != 0) return gai == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
    int fd = -1, rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) {
            rc = 0;
            break;
        }
        rc = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (rc < 0) return rc;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    if (bound_port != NULL) {
        *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                               : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}

static void arm(nx_listener_t *ls) {
    if (nx_loop_accept_multishot(ls->shard->loop, &ls->accept_op, ls->fd) == 0) ls->armed = true;
}

static void on_retry(nx_timer_t *t) {
    nx_listener_t *ls = nx_container_of(t, nx_listener_t, retry_timer);
    if (!ls->stopped && !ls->armed) arm(ls);
}

static void on_accept(nx_op_t *op, int res, unsigned flags, unsigned buf_id) {
    nx_listener_t *ls = nx_container_of(op, nx_listener_t, accept_op);
    if (!(flags & NX_OP_MORE)) ls->armed = false;
    if (res >= 0) {
        if (ls->stopped) {
            close(res);
            return;
        }
        ls->on_accept(ls, res);
    }
    if (ls->stopped || ls->armed) return;
    if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        /* Out of descriptors: back off instead of spinning on the same error. */
        nx_shard_timer_start(ls->shard, &ls->retry_timer, 100);
        return;
    }
    arm(ls);
}

int nx_listener_start(nx_listener_t *ls, nx_shard_t *s, int fd, nx_accept_cb cb, void *data) {
    ls->shard = s;
    ls->fd = fd;
    ls->on_accept = cb;
    ls->data = data;
    ls->stopped = false;
    ls->accept_op.cb = on_accept;
    nx_timer_init(&ls->retry_timer, on_retry);
    arm(ls);
    return ls->armed ? 0 : -EBUSY;
}

void nx_listener_stop(nx_listener_t *ls) {
    if (ls->stopped || ls->shard == NULL) return;
    ls->stopped = true;
    nx_timer_stop(&ls->retry_timer);
    if (ls->armed) nx_loop_cancel(ls->shard->loop, &ls->accept_op);
    /* The in-flight accept holds a reference to the socket, so close() alone would leave it
     * listening until the ring goes away; shutdown stops it now and new connections are
     * refused (or go to another shard's SO_REUSEPORT socket). */
    shutdown(ls->fd, SHUT_RDWR);
    close(ls->fd);
    ls->fd = -1;
}
