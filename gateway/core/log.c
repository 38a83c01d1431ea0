/* pg_log: the process log, one line per event: text ("TIME polegated LEVEL: message")
 * or JSON, with the syslog priority prefix journald reads when stderr is the journal. */
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int s_log_level = PG_LOG_INFO;
static int s_log_format = PG_LOG_TEXT;
static int s_log_journal;
static FILE *s_log_stream;
static const char *const s_level_names[] = {"error", "warn", "info", "debug"};
static const char *const s_format_names[] = {"text", "json"};
/* syslog(3) priorities of the levels: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const int s_priorities[] = {3, 4, 6, 7};

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

int pg_log_format_parse(const char *name)
{
    for (int i = 0; name && i < 2; i++)
        if (!strcmp(name, s_format_names[i]))
            return i;
    return -1;
}

void pg_log_set_format(int format)
{
    s_log_format = format == PG_LOG_JSON ? PG_LOG_JSON : PG_LOG_TEXT;
}

void pg_log_set_journal(int journal)
{
    s_log_journal = journal;
}

int pg_log_stderr_is_journal(void)
{
    /* systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connected stderr to;
     * a stderr redirected elsewhere since (a shell's 2>file) is another file. */
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st))
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void pg_log_set_stream(FILE *f)
{
    s_log_stream = f;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t s_utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xE0) == 0xC0 ? 2
                 : (s[0] & 0xF0) == 0xE0 ? 3
                 : (s[0] & 0xF8) == 0xF0 ? 4
                                         : 0;
    if (!len || len > n || (len == 2 && s[0] < 0xC2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/* msg as a JSON string body into out[0..size): quotes, backslashes and control
 * characters escaped, bytes that are not UTF-8 (a library's message) as U+FFFD.
 * Returns the length written; stops short rather than cut an escape. */
static size_t s_json_escape(const char *msg, char *out, size_t size)
{
    size_t w = 0;
    const unsigned char *s = (const unsigned char *)msg;
    size_t n = strlen(msg);
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *put = esc;
        size_t len, adv = 1;
        if (s[i] == '"' || s[i] == '\\') {
            esc[0] = '\\', esc[1] = (char)s[i], len = 2;
        } else if (s[i] < 0x20) {
            len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", s[i]);
        } else if ((adv = s_utf8_len(s + i, n - i))) {
            put = (const char *)s + i, len = adv;
        } else {
            put = "\\ufffd", len = 6, adv = 1;
        }
        if (w + len >= size)
            break;
        memcpy(out + w, put, len);
        w += len;
        i += adv;
    }
    return w;
}

/* The length of the well-formed UTF-8 sequence at c (at most len bytes) and its code
 * point in *cp; 0 when it is not one (a stray continuation byte, an overlong form, a
 * surrogate, beyond U+10FFFF, cut short). */
static size_t s_utf8(const unsigned char *c, size_t len, uint32_t *cp)
{
    size_t n = c[0] >= 0xf0 ? 4 : c[0] >= 0xe0 ? 3 : c[0] >= 0xc0 ? 2 : 0;
    if (!n || n > len || c[0] > 0xf4)
        return 0;
    uint32_t v = c[0] & (0x7f >> n);
    for (size_t k = 1; k < n; k++) {
        if ((c[k] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (c[k] & 0x3f);
    }
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < least[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

size_t pg_log_escape(const char *in, size_t len, int lines, char *out, size_t size)
{
    size_t o = 0;
    const unsigned char *c = (const unsigned char *)in;
    if (!size)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char esc[16];
        size_t n = 1, adv = 0;
        uint32_t cp = 0;
        size_t u = c[i] >= 0x80 ? s_utf8(c + i, len - i, &cp) : 0;
        /* C1 controls (U+0080..U+009F: CSI among them) are escapes to some terminals,
         * as UTF-8 and as single bytes (a terminal that reads 8-bit controls): every
         * byte not part of well-formed UTF-8 is escaped */
        if (u && cp <= 0x9f)
            n = (size_t)snprintf(esc, sizeof esc, "\\xc2\\x%02x", c[i + 1]), adv = 1;
        else if (u)
            memcpy(esc, c + i, u), n = u, adv = u - 1;
        else if ((c[i] >= 0x20 && c[i] < 0x7f) || (lines && (c[i] == '\n' || c[i] == '\t')))
            esc[0] = (char)c[i];
        else if (c[i] == '\n' || c[i] == '\r' || c[i] == '\t')
            n = 2, esc[0] = '\\', esc[1] = c[i] == '\n' ? 'n' : c[i] == '\r' ? 'r' : 't';
        else
            n = (size_t)snprintf(esc, sizeof esc, "\\x%02x", c[i]);
        if (o + n >= size)
            break;
        memcpy(out + o, esc, n);
        o += n;
        i += adv;
    }
    out[o] = '\0';
    return o;
}

/* Control characters in a message (a value with a newline from a record, quoted in a
 * reason) become \n, \r, \t or \xHH, so that no input can forge a log line. In place,
 * cut at size. */
static void s_escape_controls(char *msg, size_t size)
{
    char out[2048];
    pg_log_escape(msg, strlen(msg), 0, out, sizeof out);
    snprintf(msg, size, "%s", out);
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
    char when[40];
    size_t wn = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wn, sizeof when - wn, ".%03ldZ", ts.tv_nsec / 1000000);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s_log_format != PG_LOG_JSON) /* JSON escapes them itself */
        s_escape_controls(msg, sizeof msg);

    /* One write per line, so that lines from librdkafka's threads never interleave. */
    char line[4096];
    int n = 0;
    if (s_log_journal) /* journald keeps the time, and reads the priority from <N> */
        n = snprintf(line, sizeof line, "<%d>", s_priorities[level]);
    if (s_log_format == PG_LOG_JSON) {
        n += snprintf(line + n, sizeof line - (size_t)n,
                      "{\"time\":\"%s\",\"level\":\"%s\",\"program\":\"polegated\",\"msg\":\"",
                      when, s_level_names[level]);
        n += (int)s_json_escape(msg, line + n, sizeof line - (size_t)n - 3);
        n += snprintf(line + n, sizeof line - (size_t)n, "\"}");
    } else if (s_log_journal) {
        n += snprintf(line + n, sizeof line - (size_t)n, "%s: %s", s_level_names[level], msg);
    } else {
        n += snprintf(line + n, sizeof line - (size_t)n, "%s polegated %s: %s", when,
                      s_level_names[level], msg);
    }
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n] = '\n';
    fwrite(line, 1, (size_t)n + 1, f);
    fflush(f);
}
