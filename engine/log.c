/* JSON log lines on stderr (see log.h). Each line is built in a local buffer and written with
 * one write(2), so lines from different shards never interleave. */
#include "log.h"

#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int g_level = NX_LOG_INFO;
static __thread int t_shard = -1;
static __thread char t_request_id[40];

int nx_log_level_parse(const char *s) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    if (s == NULL) return -1;
    if (strcasecmp(s, "warning") == 0) return NX_LOG_WARN;
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0) return i;
    return -1;
}

const char *nx_log_level_name(nx_log_level_t lvl) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    return (unsigned)lvl <= NX_LOG_OFF ? names[lvl] : "unknown";
}

void nx_log_set_level(nx_log_level_t lvl) {
    __atomic_store_n(&g_level, (int)lvl, __ATOMIC_RELAXED);
}

nx_log_level_t nx_log_get_level(void) {
    return (nx_log_level_t)__atomic_load_n(&g_level, __ATOMIC_RELAXED);
}

void nx_log_set_shard(int shard) {
    t_shard = shard;
}

void nx_log_set_request_id(const char *id) {
    if (id == NULL) {
        t_request_id[0] = '\0';
        return;
    }
    snprintf(t_request_id, sizeof(t_request_id), "%s", id);
}

void nx_log_write(nx_log_level_t lvl, const char *fields_json, const char *fmt, ...) {
    if (lvl < nx_log_get_level() || lvl >= NX_LOG_OFF) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);

    nx_buf_t b;
    nx_buf_init(&b);
    nx_buf_appendf(&b, "{\"time\":\"%s\",\"level\":\"%s\"", when, nx_log_level_name(lvl));
    if (t_shard >= 0) nx_buf_appendf(&b, ",\"shard\":%d", t_shard);
    if (t_request_id[0] != '\0') {
        nx_buf_append_str(&b, ",\"request_id\":\"");
        nx_buf_append_json_escaped(&b, t_request_id);
        nx_buf_append_str(&b, "\"");
    }
    nx_buf_append_str(&b, ",\"msg\":\"");
    nx_buf_append_json_escaped(&b, msg);
    nx_buf_append_str(&b, "\"");
    if (fields_json != NULL && fields_json[0] != '\0') {
        nx_buf_append_str(&b, ",");
        nx_buf_append_str(&b, fields_json);
    }
    nx_buf_append_str(&b, "}\n");
    if (b.data != NULL) {
        ssize_t rc = write(STDERR_FILENO, b.data, b.len);
        (void)rc; /* nowhere to report a failing stderr */
    }
    nx_buf_dispose(&b);
}
