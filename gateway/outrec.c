/* Outbound record batches (see outrec.h). */
#include "outrec.h"

#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"

pg_outbatch *pg_outbatch_new(void)
{
    pg_outbatch *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->arena = pg_arena_new(0);
    if (!self->arena) {
        free(self);
        return NULL;
    }
    return self;
}

void pg_outbatch_destroy(pg_outbatch **p)
{
    if (!p || !*p)
        return;
    pg_outbatch *self = *p;
    pg_arena_destroy(&self->arena);
    free(self->recs);
    free(self);
    *p = NULL;
}

void pg_outbatch_reset(pg_outbatch *self)
{
    pg_arena_reset(self->arena);
    self->count = 0;
}

pg_outrec *pg_outbatch_add(pg_outbatch *self)
{
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        pg_outrec *p = realloc(self->recs, cap * sizeof *p);
        if (!p)
            return NULL;
        self->recs = p;
        self->cap = cap;
    }
    pg_outrec *rec = &self->recs[self->count++];
    memset(rec, 0, sizeof *rec);
    return rec;
}

int pg_outrec_header_add(pg_outbatch *self, pg_outrec *rec, const char *name, const char *value)
{
    if (rec->header_count == PG_OUTREC_MAX_HEADERS)
        return PG_EINVALID;
    char *n = pg_arena_strdup(self->arena, name);
    char *v = pg_arena_strdup(self->arena, value);
    if (!n || !v)
        return PG_ENOMEM;
    rec->headers[rec->header_count++] = (pg_outrec_header){n, v};
    return 0;
}
