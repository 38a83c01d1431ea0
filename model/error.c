/* Error names and messages from the one table in polegate/error.h. */
#include "polegate/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const s_messages[] = {"success",
#define X(name, msg) msg,
                                         PG_ERROR_TABLE(X)
#undef X
};

static const char *const s_names[] = {"PG_OK",
#define X(name, msg) "PG_E" #name,
                                      PG_ERROR_TABLE(X)
#undef X
};

const char *pg_strerror(int err)
{
    int pos = -err;
    if (pos < 0 || pos >= PG__POS_END_)
        return "unknown error";
    return s_messages[pos];
}

const char *pg_err_name(int err)
{
    int pos = -err;
    if (pos < 0 || pos >= PG__POS_END_)
        return "PG_EUNKNOWN";
    return s_names[pos];
}

int pg_errf(int err, char *errstr, size_t errstr_size, const char *fmt, ...)
{
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

void pg_errstr_unquote(char *s)
{
    char *w = s;
    for (const char *r = s; r && *r; r++) {
        const char *close = (*r == '\'' || *r == '"') ? strchr(r + 1, *r) : NULL;
        /* jansson's near '<token>' ends its text, and the token may hold quotes: the
         * last quote closes it */
        if (close && w - s >= 5 && memcmp(w - 5, "near ", 5) == 0)
            close = strrchr(r + 1, *r);
        if (close) {
            /* "..." is no longer than a quoted text of one character and its quotes */
            size_t room = (size_t)(close - r) + 1;
            const char *dots = room >= 5 ? "'...'" : room >= 3 ? "'.'" : "''";
            size_t n = strlen(dots);
            memcpy(w, dots, n);
            w += n;
            r = close;
            continue;
        }
        *w++ = (unsigned char)*r < 0x20 || *r == 0x7f ? ' ' : *r;
    }
    if (w)
        *w = 0;
}
