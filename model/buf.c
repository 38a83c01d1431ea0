/* Growable byte buffer. */
#include "polegate/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"

int pg_buf_reserve(pg_buf *buf, size_t extra)
{
    size_t need = buf->len + extra + 1; /* room for the terminating NUL */
    if (need <= buf->cap)
        return 0;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(buf->data, cap);
    if (!p)
        return PG_ENOMEM;
    buf->data = p;
    buf->cap = cap;
    return 0;
}

int pg_grow(void **items, size_t *cap, size_t need, size_t item_size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return PG_ENOMEM;
        n *= 2;
    }
    if (n > SIZE_MAX / item_size)
        return PG_ENOMEM;
    void *p = realloc(*items, n * item_size);
    if (!p)
        return PG_ENOMEM;
    *items = p;
    *cap = n;
    return 0;
}

int pg_buf_append(pg_buf *buf, const void *data, size_t len)
{
    if (pg_buf_reserve(buf, len))
        return PG_ENOMEM;
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return 0;
}

int pg_buf_puts(pg_buf *buf, const char *s)
{
    return pg_buf_append(buf, s, strlen(s));
}

int pg_buf_putc(pg_buf *buf, char c)
{
    return pg_buf_append(buf, &c, 1);
}

int pg_buf_printf(pg_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PG_EINTERNAL;
    if (pg_buf_reserve(buf, (size_t)n))
        return PG_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return 0;
}

void pg_buf_reset(pg_buf *buf)
{
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

void pg_buf_free(pg_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}
