/* pg_log: the process log: one line per event on stderr, "TIME polegated LEVEL: message". */
#ifndef POLEGATE_GATEWAY_LOG_H
#define POLEGATE_GATEWAY_LOG_H

#include <stdio.h>

typedef enum pg_log_level {
    PG_LOG_ERROR = 0,
    PG_LOG_WARN = 1,
    PG_LOG_INFO = 2,
    PG_LOG_DEBUG = 3,
} pg_log_level;

/* "error", "warn", "info", "debug" -> level; -1 for anything else. */
int pg_log_level_parse(const char *name);
/* Events above level are dropped. Default PG_LOG_INFO. */
void pg_log_set_level(int level);
/* Where the log goes (default stderr; tests use a memory stream). */
void pg_log_set_stream(FILE *f);
void pg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
