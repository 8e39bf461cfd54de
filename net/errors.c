/* Descriptions of nexus's own error codes (see include/nexus/errors.h). */
#include "nexus/errors.h"

#include <string.h>

const char *nx_strerror(int err) {
    switch (err) {
    case NX_AGAIN:
        return "more input needed";
    case NX_EPROTO:
        return "protocol violation by the peer";
    case NX_ELIMIT:
        return "a configured limit was reached";
    case NX_ECONFIG:
        return "invalid configuration";
    case NX_ECLOSED:
        return "closed";
    case NX_ETIMEOUT:
        return "timed out";
    case NX_ENOTFOUND:
        return "not found";
    case NX_EFULL:
        return "queue full";
    case NX_ENOMETHOD:
        return "method not allowed";
    default:
        return err < 0 ? strerror(-err) : "success";
    }
}
