/* Error codes shared by every module: functions return 0 / a count, or a negative errno
 * or one of these NX_E* codes (chosen far below the errno range so they never collide). */
#ifndef NEXUS_ERRORS_H
#define NEXUS_ERRORS_H

enum {
    NX_AGAIN = -10000,   /* partial input: call again with more bytes */
    NX_EPROTO = -10001,  /* the peer sent bytes that break the protocol */
    NX_ELIMIT = -10002,  /* a configured bound was hit */
    NX_ECONFIG = -10003, /* configuration is invalid */
    NX_ECLOSED = -10004, /* the object is closing or closed */
    NX_ETIMEOUT = -10005,
    NX_ENOTFOUND = -10006,
    NX_EFULL = -10007,     /* a bounded queue is full */
    NX_ENOMETHOD = -10008, /* the path exists but not for this method (HTTP 405) */
};

/** Returns a static, human-readable description of <err> (negative errno or NX_E*). */
const char *nx_strerror(int err);

#endif
