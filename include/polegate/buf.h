/* pg_buf: a growable byte buffer, reused across records on hot paths. */
#ifndef POLEGATE_BUF_H
#define POLEGATE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct pg_buf {
    uint8_t *data; /* always NUL-terminated after any append (not counted in len) */
    size_t len;
    size_t cap;
} pg_buf;

#define PG_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Make room for extra more bytes. 0 or PG_ENOMEM. */
int pg_buf_reserve(pg_buf *self, size_t extra);
int pg_buf_append(pg_buf *self, const void *data, size_t len);
int pg_buf_puts(pg_buf *self, const char *s);
int pg_buf_putc(pg_buf *self, char c);
int pg_buf_printf(pg_buf *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empty the buffer, keeping its memory. */
void pg_buf_reset(pg_buf *self);
/* Free the memory; the buffer is empty and reusable afterwards. */
void pg_buf_free(pg_buf *self);

/* Make room for need items of item_size bytes in a heap array and its capacity (in
   items): the capacity doubles, from 16, until it holds need. 0 or PG_ENOMEM; on
   failure the array and capacity are unchanged and still the caller's. */
int pg_grow(void **items, size_t *cap, size_t need, size_t item_size);

#endif
