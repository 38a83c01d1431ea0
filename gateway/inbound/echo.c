/* pg_echo: drops the RMS's echoes of partner records from what the intake decoded,
 * and points our links to partner records at the partner's entity. */
#include "echo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idstore.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "store.h"

struct pg_echo {
    pg_idstore *idmap;
    const pg_adapter_ops *adapter;
    char force[8];
};

pg_echo *pg_echo_new(pg_store *store, const pg_adapter_ops *adapter, const char *force,
                     char *errstr, size_t errstr_size)
{
    pg_echo *self = calloc(1, sizeof *self);
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "echo: out of memory");
        return NULL;
    }
    self->adapter = adapter;
    snprintf(self->force, sizeof self->force, "%s", force);
    pg_idstore_config cfg = {.format = adapter->format};
    if (!(self->idmap = pg_idstore_new(store, &cfg, errstr, errstr_size))) {
        free(self);
        return NULL;
    }
    return self;
}

void pg_echo_destroy(pg_echo **p)
{
    if (!p || !*p)
        return;
    pg_idstore_destroy(&(*p)->idmap);
    free(*p);
    *p = NULL;
}

/* The partner entity that local id native was given to: 1 (uuid filled), 0 none. */
static int s_partner_of(pg_echo *self, pg_store_txn *txn, const char *native, char uuid[37],
                        int *rc, char *errstr, size_t errstr_size)
{
    *rc = 0;
    if (!native || !*native)
        return 0;
    int r = pg_idstore_uuid_of(self->idmap, txn, native, uuid, errstr, errstr_size);
    if (r == 0)
        return 1;
    if (r != PG_ENOTFOUND)
        *rc = r;
    return 0;
}

int pg_echo_filter(pg_echo *self, pg_store_txn *txn, pg_changeset *cs, size_t *dropped,
                   char *errstr, size_t errstr_size)
{
    *dropped = 0;
    char uuid[37];
    int rc = 0;
    size_t keep = 0;
    for (size_t i = 0; i < cs->count; i++) {
        pg_change *ch = &cs->changes[i];
        int echo;
        if (ch->type == PG_CHANGE_ENTITY) {
            const pg_origin *o = ch->entity->origin;
            echo = s_partner_of(self, txn, o ? o->native_id : NULL, uuid, &rc, errstr, errstr_size);
        } else {
            pg_link_update *l = ch->link;
            echo = s_partner_of(self, txn, l->from ? l->from->native_id : NULL, uuid, &rc, errstr,
                                errstr_size);
            if (!rc && !echo && l->to &&
                s_partner_of(self, txn, l->to->native_id, uuid, &rc, errstr, errstr_size)) {
                /* ours -> a partner's record: the target is the partner's entity */
                pg_entity_ref *to = pg_arena_alloc(cs->arena, sizeof *to);
                char *tid = pg_arena_strdup(cs->arena, uuid);
                char lid[PG_UUID_STR_SIZE];
                if (!to || !tid)
                    return pg_errf(PG_ENOMEM, errstr, errstr_size, "echo: out of memory");
                *to = *l->to;
                to->id = tid;
                if (l->from && l->from->id &&
                    pg_identity_link(l->from->id, l->role, tid, lid) == 0) {
                    l->to = to;
                    if (!(l->id = pg_arena_strdup(cs->arena, lid)))
                        return pg_errf(PG_ENOMEM, errstr, errstr_size, "echo: out of memory");
                }
            }
        }
        if (rc)
            return rc;
        if (echo)
            (*dropped)++;
        else
            cs->changes[keep++] = *ch;
    }
    int other = cs->force && *cs->force && strcmp(cs->force, self->force) != 0;
    if (other && keep) {
        /* not all of it ours to drop: a message of another force, as the decoder
         * would have refused it */
        const char *path = self->adapter->force_path;
        *dropped = 0;
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "%s: names another force than this gateway's, %s", path, self->force);
    }
    cs->count = keep;
    return 0;
}
