/* pg_log: the process log: one line per event on stderr, "TIME polegated LEVEL: message"
 * or a JSON object, prefixed with its syslog priority ("<3>") when stderr is the
 * journal. */
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
typedef enum pg_log_format {
    PG_LOG_TEXT = 0, /* "TIME polegated LEVEL: message" */
    PG_LOG_JSON = 1, /* {"time":"...Z","level":"info","program":"polegated","msg":"..."} */
} pg_log_format;

/* "text", "json" -> format; -1 for anything else. */
int pg_log_format_parse(const char *name);
void pg_log_set_format(int format);
/* 1: every line starts with its syslog priority (<3> error, <4> warn, <6> info, <7>
 * debug), which journald takes as the entry's priority (`journalctl -p err`); text
 * lines then leave the time to the journal. */
void pg_log_set_journal(int journal);
/* 1 when stderr is the stream systemd connected to the journal (JOURNAL_STREAM). */
int pg_log_stderr_is_journal(void);
/* Where the log goes (default stderr; tests use a memory stream). */
void pg_log_set_stream(FILE *f);
void pg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* in[0..len) into out as the log writes it: control characters (C0, DEL, C1 as UTF-8)
 * and every byte not part of well-formed UTF-8 (a lone C1 byte among them) become \n,
 * \r, \t or \xHH, so that no input can forge a line or drive a terminal. lines:
 * newlines and tabs are kept as they are (a record's own lines). Cut at size (never
 * inside an escape), NUL-terminated; returns the length written. 4 bytes of out a byte
 * of in, and one, always suffice. */
size_t pg_log_escape(const char *in, size_t len, int lines, char *out, size_t size);

#endif
