/* Growable byte buffer. */
#include "polegate/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"

int pg_buf_reserve(pg_buf *self, size_t extra)
{
    size_t need = self->len + extra + 1; /* room for the terminating NUL */
    if (need <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(self->data, cap);
    if (!p)
        return PG_ENOMEM;
    self->data = p;
    self->cap = cap;
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

int pg_buf_append(pg_buf *self, const void *data, size_t len)
{
    if (pg_buf_reserve(self, len))
        return PG_ENOMEM;
    if (len)
        memcpy(self->data + self->len, data, len);
    self->len += len;
    self->data[self->len] = '\0';
    return 0;
}

int pg_buf_puts(pg_buf *self, const char *s)
{
    return pg_buf_append(self, s, strlen(s));
}

int pg_buf_putc(pg_buf *self, char c)
{
    return pg_buf_append(self, &c, 1);
}

int pg_buf_printf(pg_buf *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return PG_EINTERNAL;
    if (pg_buf_reserve(self, (size_t)n))
        return PG_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)self->data + self->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    self->len += (size_t)n;
    return 0;
}

void pg_buf_reset(pg_buf *self)
{
    self->len = 0;
    if (self->data)
        self->data[0] = '\0';
}

void pg_buf_free(pg_buf *self)
{
    free(self->data);
    self->data = NULL;
    self->len = self->cap = 0;
}
