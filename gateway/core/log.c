/* pg_log: the process log, one line per event ("TIME polegated LEVEL: message"). */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static int s_log_level = PG_LOG_INFO;
static FILE *s_log_stream;
static const char *const s_level_names[] = {"error", "warn", "info", "debug"};

int pg_log_level_parse(const char *name)
{
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, s_level_names[i]))
            return i;
    return -1;
}

void pg_log_set_level(int level)
{
    s_log_level = level;
}

void pg_log_set_stream(FILE *f)
{
    s_log_stream = f;
}

void pg_log(int level, const char *fmt, ...)
{
    if (level > s_log_level || level < 0)
        return;
    FILE *f = s_log_stream ? s_log_stream : stderr;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One write per line, so that lines from librdkafka's threads never interleave. */
    char line[2048];
    int n = snprintf(line, sizeof line, "%s.%03ldZ polegated %s: ", when, ts.tv_nsec / 1000000,
                     s_level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n] = '\n';
    fwrite(line, 1, (size_t)n + 1, f);
    fflush(f);
}
