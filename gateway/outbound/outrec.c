/* Outbound record batches (see outrec.h). */
#include "outrec.h"

#include <stdlib.h>
#include <string.h>

#include "polegate/buf.h"
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
    free(self->audit);
    free(self);
    *p = NULL;
}

void pg_outbatch_reset(pg_outbatch *self)
{
    pg_arena_reset(self->arena);
    self->party = NULL;
    self->count = 0;
    self->audit_count = 0;
}

pg_outrec *pg_outbatch_add(pg_outbatch *self)
{
    if (pg_grow((void **)&self->recs, &self->cap, self->count + 1, sizeof *self->recs))
        return NULL;
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

static const char *s_dup(pg_arena *arena, const char *s, int *fail)
{
    if (!s)
        return NULL;
    char *d = pg_arena_strdup(arena, s);
    if (!d)
        *fail = 1;
    return d;
}

int pg_outbatch_audit_add(pg_outbatch *self, const pg_audit_event *ev)
{
    if (pg_grow((void **)&self->audit, &self->audit_cap, self->audit_count + 1,
                sizeof *self->audit))
        return PG_ENOMEM;
    int fail = 0;
    pg_audit_event copy = *ev;
    copy.party = s_dup(self->arena, ev->party, &fail);
    copy.entity_id = s_dup(self->arena, ev->entity_id, &fail);
    copy.native_id = s_dup(self->arena, ev->native_id, &fail);
    copy.origin = s_dup(self->arena, ev->origin, &fail);
    copy.destination = s_dup(self->arena, ev->destination, &fail);
    copy.partner = s_dup(self->arena, ev->partner, &fail);
    copy.agreement = s_dup(self->arena, ev->agreement, &fail);
    copy.policy_version = s_dup(self->arena, ev->policy_version, &fail);
    copy.outcome = s_dup(self->arena, ev->outcome, &fail);
    if (fail)
        return PG_ENOMEM;
    self->audit[self->audit_count++] = copy;
    return 0;
}
