/* Structured logging: one JSON object per line on stderr with level, time, shard and request
 * id. The level is process-wide and may change at run time (SIGHUP reload). */
#ifndef NX_ENGINE_LOG_H
#define NX_ENGINE_LOG_H

#include <stdint.h>

typedef enum nx_log_level {
    NX_LOG_DEBUG = 0,
    NX_LOG_INFO = 1,
    NX_LOG_WARN = 2,
    NX_LOG_ERROR = 3,
    NX_LOG_OFF = 4,
} nx_log_level_t;

/** Parses "debug", "info", "warn"/"warning", "error", "off" (any case); -1 when unknown. */
int nx_log_level_parse(const char *s);
/** The lowercase name of <lvl>. */
const char *nx_log_level_name(nx_log_level_t lvl);
/** Sets the process-wide minimum level. */
void nx_log_set_level(nx_log_level_t lvl);
nx_log_level_t nx_log_get_level(void);
/** Sets the shard id (-1 = not a shard) reported by log lines from the calling thread. */
void nx_log_set_shard(int shard);
/** Sets the request id reported by log lines from the calling thread (NULL clears it). */
void nx_log_set_request_id(const char *id);

/** Writes one log line: <msg> plus optional extra JSON members <fields_json> (a fragment like
 *  "\"path\":\"/x\"" or NULL) when <lvl> is at or above the current level. */
void nx_log_write(nx_log_level_t lvl, const char *fields_json, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define nx_log_enabled(lvl) ((lvl) >= nx_log_get_level())
#define nx_log_debug(...) nx_log_write(NX_LOG_DEBUG, NULL, __VA_ARGS__)
#define nx_log_info(...) nx_log_write(NX_LOG_INFO, NULL, __VA_ARGS__)
#define nx_log_warn(...) nx_log_write(NX_LOG_WARN, NULL, __VA_ARGS__)
#define nx_log_error(...) nx_log_write(NX_LOG_ERROR, NULL, __VA_ARGS__)

#endif
