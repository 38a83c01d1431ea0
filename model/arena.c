/* Bump allocator: a chain of blocks; reset keeps the first block. */
#include "polegate/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ALIGN 16
#define S_DEFAULT_BLOCK 16384

typedef struct s_block {
    struct s_block *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    max_align_t data[]; /* payload */
} s_block;

struct pg_arena {
    s_block *head;  /* current block (newest) */
    s_block *first; /* the block kept across resets */
    size_t block_size;
    size_t used;
};

static s_block *s_block_new(size_t size)
{
    s_block *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

pg_arena *pg_arena_new(size_t block_size)
{
    pg_arena *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->block_size = block_size ? block_size : S_DEFAULT_BLOCK;
    self->first = s_block_new(self->block_size);
    if (!self->first) {
        free(self);
        return NULL;
    }
    self->head = self->first;
    return self;
}

static void s_free_chain(s_block *b, s_block *stop)
{
    while (b && b != stop) {
        s_block *next = b->next;
        free(b);
        b = next;
    }
}

void pg_arena_destroy(pg_arena **p)
{
    if (!p || !*p)
        return;
    pg_arena *self = *p;
    s_free_chain(self->head, NULL);
    free(self);
    *p = NULL;
}

void pg_arena_reset(pg_arena *self)
{
    /* Blocks are linked newest first; the first block is the tail. */
    s_free_chain(self->head, self->first);
    self->head = self->first;
    self->first->used = 0;
    self->first->next = NULL;
    self->used = 0;
}

void *pg_arena_alloc(pg_arena *self, size_t size)
{
    size_t need = (size + S_ALIGN - 1) & ~(size_t)(S_ALIGN - 1);
    if (need < size)
        return NULL;
    s_block *b = self->head;
    if (b->size - b->used < need) {
        size_t bsize = need > self->block_size ? need : self->block_size;
        s_block *nb = s_block_new(bsize);
        if (!nb)
            return NULL;
        nb->next = self->head;
        self->head = nb;
        b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += need;
    self->used += need;
    memset(p, 0, size);
    return p;
}

char *pg_arena_strndup(pg_arena *self, const char *s, size_t n)
{
    char *p = pg_arena_alloc(self, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *pg_arena_strdup(pg_arena *self, const char *s)
{
    return pg_arena_strndup(self, s, strlen(s));
}

char *pg_arena_sprintf(pg_arena *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = pg_arena_alloc(self, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

size_t pg_arena_used(const pg_arena *self)
{
    return self->used;
}
