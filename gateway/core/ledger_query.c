/* pg_ledger, queries: the latest record of an entity or link, and the live links from or
 * to an entity, read back from the ledger's databases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"
#include "polegate/error.h"

/* ------------------------------------------------------------ queries */

static int s_get_record(pg_store_txn *txn, pg_store_db db, const ProtobufCMessageDescriptor *desc,
                        const char *id, pg_arena *arena, void **msg, int *deleted, char *errstr,
                        size_t errstr_size)
{
    pg_ledger_rec rec;
    int rc = pg_ledger__rec_get(txn, db, id, &rec, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (!rec.found)
        return pg_errf(PG_ENOTFOUND, errstr, errstr_size, "ledger: %s: not known", id);
    if (!(*msg = pg_ledger__unpack(desc, &rec, arena, id, errstr, errstr_size)))
        return PG_ESTORE;
    if (deleted)
        *deleted = rec.hdr.deleted != 0;
    return 0;
}

int pg_ledger_get_entity(pg_ledger *self, pg_store_txn *txn, const char *id, pg_arena *arena,
                         pg_entity_update **entity, int *deleted, char *errstr, size_t errstr_size)
{
    return s_get_record(txn, self->entity, &polegate__pole__v1__entity_update__descriptor, id,
                        arena, (void **)entity, deleted, errstr, errstr_size);
}

int pg_ledger_entity_known(pg_ledger *self, pg_store_txn *txn, const char *id, char *errstr,
                           size_t errstr_size)
{
    pg_ledger_rec rec;
    int rc = pg_ledger__rec_get(txn, self->entity, id, &rec, errstr, errstr_size);
    return rc ? rc : rec.found;
}

int pg_ledger_get_link(pg_ledger *self, pg_store_txn *txn, const char *id, pg_arena *arena,
                       pg_link_update **link, int *deleted, char *errstr, size_t errstr_size)
{
    return s_get_record(txn, self->link, &polegate__pole__v1__link_update__descriptor, id, arena,
                        (void **)link, deleted, errstr, errstr_size);
}

static int s_links(pg_ledger *self, pg_store_txn *txn, const char *id, char dir, pg_arena *arena,
                   pg_link_update ***links, size_t *count, char *errstr, size_t errstr_size)
{
    char **ids;
    size_t n;
    *links = NULL;
    *count = 0;
    int rc = pg_ledger__index_ids(txn, self, id, dir, arena, &ids, &n, errstr, errstr_size);
    if (rc != 0 || n == 0)
        return rc;
    pg_link_update **v = pg_arena_alloc(arena, n * sizeof(*v));
    if (!v)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "ledger: out of memory");
    for (size_t i = 0; i < n; i++) {
        rc = pg_ledger_get_link(self, txn, ids[i], arena, &v[i], NULL, errstr, errstr_size);
        if (rc != 0)
            return rc == PG_ENOTFOUND ? pg_errf(PG_ESTORE, errstr, errstr_size,
                                                "ledger: index names unknown link %s", ids[i])
                                      : rc;
    }
    *links = v;
    *count = n;
    return 0;
}

int pg_ledger_links_from(pg_ledger *self, pg_store_txn *txn, const char *id, pg_arena *arena,
                         pg_link_update ***links, size_t *count, char *errstr, size_t errstr_size)
{
    return s_links(self, txn, id, PG_LEDGER_FROM, arena, links, count, errstr, errstr_size);
}

int pg_ledger_links_to(pg_ledger *self, pg_store_txn *txn, const char *id, pg_arena *arena,
                       pg_link_update ***links, size_t *count, char *errstr, size_t errstr_size)
{
    return s_links(self, txn, id, PG_LEDGER_TO, arena, links, count, errstr, errstr_size);
}
