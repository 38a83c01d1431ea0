/* pg_arena: per-record bump allocator; everything is freed at once by reset. */
#ifndef POLEGATE_ARENA_H
#define POLEGATE_ARENA_H

#include <stddef.h>

typedef struct pg_arena pg_arena;

/* A new arena whose first block holds block_size bytes (0: a default). NULL on
 * failure. */
pg_arena *pg_arena_new(size_t block_size);
/* Frees the arena and everything allocated from it; sets *p to NULL. */
void pg_arena_destroy(pg_arena **p);
/* Forget every allocation but keep the first block for reuse. */
void pg_arena_reset(pg_arena *self);
/* size bytes aligned for any type, zeroed. NULL when out of memory. Owned by the
 * arena. */
void *pg_arena_alloc(pg_arena *self, size_t size);
/* A NUL-terminated copy of s[0..n). Owned by the arena. */
char *pg_arena_strndup(pg_arena *self, const char *s, size_t n);
char *pg_arena_strdup(pg_arena *self, const char *s);
char *pg_arena_sprintf(pg_arena *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Bytes handed out since the last reset (for benchmarks and limits). */
size_t pg_arena_used(const pg_arena *self);

#endif
