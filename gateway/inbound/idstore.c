/* The partner id map: canonical UUID <-> local RMS id, revisions sent, in LMDB. */
#include "idstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"
#include "store.h"

#define S_ID_MAX 32 /* longest local id: ATX 11, NX5 16 */
#define S_SERIES_MAX 16

/* The value under a UUID: the revision and send count first (fixed width), then the
 * local id (empty until one is assigned: a revision may be taken first). */
typedef struct s_rec {
    uint64_t last_rev;
    uint32_t sends;
    char id[S_ID_MAX + 1];
} s_rec;
#define S_REC_HEAD (sizeof(uint64_t) + sizeof(uint32_t))

struct pg_idstore {
    pg_idmap iface; /* first: the adapters call back with a pointer to it */
    pg_store *store;
    pg_store_txn *txn; /* bound for iface calls; NULL: own transactions */
    pg_store_db db_uuid, db_local, db_counter;
    const pg_adapter_ops *adapter; /* whose ids these are */
    const pg_adapter_ids *ids;
    const char *settings[PG_ADAPTER_MAX_SETTINGS]; /* the adapter's, copied */
};

static int s_uuid_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int pg_idstore_id_valid(const pg_idstore *self, int kind, const char *id)
{
    return self->ids->valid(kind, id);
}

int pg_idstore_kind_of(const pg_idstore *self, const char *id)
{
    return self->ids->kind_of(id);
}

/* ------------------------------------------------------------ transactions */

/* The transaction to work in: the caller's, or a new one of our own in *own. */
static pg_store_txn *s_begin(pg_idstore *self, pg_store_txn *txn, int write, pg_store_txn **own,
                             char *errstr, size_t errstr_size)
{
    *own = NULL;
    if (txn)
        return txn;
    *own = pg_store_begin(self->store, write, errstr, errstr_size);
    return *own;
}

/* Check uuid and begin: NULL with *rc set on failure. */
static pg_store_txn *s_enter(pg_idstore *self, pg_store_txn *txn, int write, const char *uuid,
                             pg_store_txn **own, int *rc, char *errstr, size_t errstr_size)
{
    *own = NULL;
    if (!s_uuid_valid(uuid)) {
        *rc = pg_errf(PG_EINVALID, errstr, errstr_size,
                      "idmap: an entity id that is not a lower-case UUID");
        return NULL;
    }
    *rc = PG_ESTORE;
    return s_begin(self, txn, write, own, errstr, errstr_size);
}

/* End our own transaction (commit when rc is 0) and pass rc on. */
static int s_end(pg_store_txn **own, int rc, char *errstr, size_t errstr_size)
{
    if (!*own)
        return rc;
    if (rc < 0) {
        pg_store_abort(own);
        return rc;
    }
    return pg_store_commit(own, errstr, errstr_size);
}

/* ------------------------------------------------------------ records */

static int s_rec_get(pg_idstore *self, pg_store_txn *txn, const char *uuid, s_rec *rec,
                     char *errstr, size_t errstr_size)
{
    const void *val;
    size_t vlen;
    memset(rec, 0, sizeof(*rec));
    int rc = pg_store_get(txn, self->db_uuid, uuid, 36, &val, &vlen, errstr, errstr_size);
    if (rc < 0)
        return rc;
    if (vlen < S_REC_HEAD || vlen > S_REC_HEAD + S_ID_MAX)
        return pg_errf(PG_ESTORE, errstr, errstr_size, "idmap: %s: damaged record", uuid);
    memcpy(&rec->last_rev, val, sizeof rec->last_rev);
    memcpy(&rec->sends, (const char *)val + sizeof rec->last_rev, sizeof rec->sends);
    memcpy(rec->id, (const char *)val + S_REC_HEAD, vlen - S_REC_HEAD);
    return 0;
}

static int s_rec_put(pg_idstore *self, pg_store_txn *txn, const char *uuid, const s_rec *rec,
                     char *errstr, size_t errstr_size)
{
    char val[S_REC_HEAD + S_ID_MAX];
    size_t idlen = strlen(rec->id);
    memcpy(val, &rec->last_rev, sizeof rec->last_rev);
    memcpy(val + sizeof rec->last_rev, &rec->sends, sizeof rec->sends);
    memcpy(val + S_REC_HEAD, rec->id, idlen);
    return pg_store_put(txn, self->db_uuid, uuid, 36, val, S_REC_HEAD + idlen, errstr, errstr_size);
}

/* 1 when local id is taken, 0 when free, negative on error; the owner into owner. */
static int s_taken(pg_idstore *self, pg_store_txn *txn, const char *id, char owner[37],
                   char *errstr, size_t errstr_size)
{
    const void *val;
    size_t vlen;
    int rc = pg_store_get(txn, self->db_local, id, strlen(id), &val, &vlen, errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    if (owner) {
        size_t n = vlen < 36 ? vlen : 36;
        memcpy(owner, val, n);
        owner[n] = '\0';
    }
    return 1;
}

/* ------------------------------------------------------------ assignment */

/* A new id for uuid: the next of its series when the RMS numbers its ids (the last
 * number per series kept in db_counter), else the first free try. */
static int s_assign(pg_idstore *self, pg_store_txn *txn, const char *uuid, int kind, char *id,
                    char *errstr, size_t errstr_size)
{
    char series[S_SERIES_MAX] = "", why[PG_ERRSTR_SIZE];
    uint64_t n = 0;
    int rc;
    if (self->ids->series) {
        if ((rc = self->ids->series(kind, series, sizeof series, why, sizeof why)))
            return pg_errf(rc, errstr, errstr_size, "idmap: %s: %s", uuid, why);
        const void *val;
        size_t vlen;
        rc = pg_store_get(txn, self->db_counter, series, strlen(series), &val, &vlen, errstr,
                          errstr_size);
        if (rc == 0 && vlen == sizeof n)
            memcpy(&n, val, sizeof n);
        else if (rc != PG_ENOTFOUND && rc < 0)
            return rc;
        n++;
    }
    for (;; n++) {
        rc = self->ids->candidate(self->settings, uuid, kind, n, id, S_ID_MAX + 1, why, sizeof why);
        if (rc == PG_ENOTFOUND)
            return pg_errf(PG_ESTORE, errstr, errstr_size, "idmap: %s", why);
        if (rc)
            return pg_errf(rc, errstr, errstr_size, "idmap: %s", why);
        rc = s_taken(self, txn, id, NULL, errstr, errstr_size);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
    }
    if (!*series)
        return 0;
    return pg_store_put(txn, self->db_counter, series, strlen(series), &n, sizeof n, errstr,
                        errstr_size);
}

static int s_bind(pg_idstore *self, pg_store_txn *txn, const char *uuid, s_rec *rec, const char *id,
                  char *errstr, size_t errstr_size)
{
    snprintf(rec->id, sizeof rec->id, "%s", id);
    int rc = s_rec_put(self, txn, uuid, rec, errstr, errstr_size);
    if (rc == 0)
        rc = pg_store_put(txn, self->db_local, id, strlen(id), uuid, 36, errstr, errstr_size);
    return rc;
}

static int s_resolve(pg_idstore *self, pg_store_txn *txn, const char *uuid, int kind, char *out,
                     size_t outsize, int *created, char *errstr, size_t errstr_size)
{
    s_rec rec;
    int rc = s_rec_get(self, txn, uuid, &rec, errstr, errstr_size);
    if (rc < 0 && rc != PG_ENOTFOUND)
        return rc;
    if (rec.id[0]) {
        if (self->ids->kind_mark && kind && !self->ids->valid(kind, rec.id))
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "idmap: %s is %s in the RMS, whose %s is not that of kind %d", uuid,
                           rec.id, self->ids->kind_mark, kind);
    } else {
        char id[S_ID_MAX + 1];
        rc = s_assign(self, txn, uuid, kind, id, errstr, errstr_size);
        if (rc == 0)
            rc = s_bind(self, txn, uuid, &rec, id, errstr, errstr_size);
        if (rc < 0)
            return rc;
    }
    if (strlen(rec.id) >= outsize)
        return pg_errf(PG_EUSAGE, errstr, errstr_size, "idmap: output buffer too small");
    memcpy(out, rec.id, strlen(rec.id) + 1);
    if (created)
        *created = rec.sends <= 1;
    return 0;
}

/* ------------------------------------------------------------ public */

static int s_iface_resolve(pg_idmap *iface, const char *uuid, int kind, const char *origin_system,
                           const char *native_id, char *out, size_t outsize, int *created,
                           char *errstr, size_t errstr_size)
{
    (void)origin_system;
    (void)native_id;
    pg_idstore *self = (pg_idstore *)iface;
    return pg_idstore_resolve(self, self->txn, uuid, kind, out, outsize, created, errstr,
                              errstr_size);
}

pg_idstore *pg_idstore_new(pg_store *store, const pg_idstore_config *cfg, char *errstr,
                           size_t errstr_size)
{
    const char *format = cfg && cfg->format ? cfg->format : "";
    const pg_adapter_ops *adapter = cfg ? pg_adapter_find(cfg->format) : NULL;
    if (!adapter || !adapter->ids) {
        char known[64] = "";
        for (size_t i = 0; pg_adapter_at(i); i++)
            if (pg_adapter_at(i)->ids)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         *known ? ", " : "", pg_adapter_at(i)->format);
        pg_errf(PG_ECONFIG, errstr, errstr_size, "idmap.format: '%s' is not one of %s", format,
                known);
        return NULL;
    }
    char why[PG_ERRSTR_SIZE];
    if (pg_adapter_check_values(adapter, cfg->settings, why, sizeof why)) {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "idmap.%s", why);
        return NULL;
    }
    pg_idstore *self = calloc(1, sizeof(*self));
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "idmap: out of memory");
        return NULL;
    }
    self->iface.resolve = s_iface_resolve;
    self->store = store;
    self->adapter = adapter;
    self->ids = adapter->ids;
    for (int i = 0; cfg->settings && i < PG_ADAPTER_MAX_SETTINGS; i++)
        self->settings[i] = cfg->settings[i];
    const char *ns = adapter->format;
    char name[64];
    pg_store_txn *txn = pg_store_begin(store, 1, errstr, errstr_size);
    int rc = txn ? 0 : PG_ESTORE;
    snprintf(name, sizeof name, "idmap.%s.uuid", ns);
    if (rc == 0)
        rc = pg_store_db_open(txn, name, 0, &self->db_uuid, errstr, errstr_size);
    snprintf(name, sizeof name, "idmap.%s.local", ns);
    if (rc == 0)
        rc = pg_store_db_open(txn, name, 0, &self->db_local, errstr, errstr_size);
    snprintf(name, sizeof name, "idmap.%s.counter", ns);
    if (rc == 0)
        rc = pg_store_db_open(txn, name, 0, &self->db_counter, errstr, errstr_size);
    if (rc == 0)
        rc = pg_store_commit(&txn, errstr, errstr_size);
    if (rc < 0) {
        pg_store_abort(&txn);
        free(self);
        return NULL;
    }
    return self;
}

void pg_idstore_destroy(pg_idstore **p)
{
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

pg_idmap *pg_idstore_iface(pg_idstore *self)
{
    return &self->iface;
}

void pg_idstore_use(pg_idstore *self, pg_store_txn *txn)
{
    self->txn = txn;
}

int pg_idstore_resolve(pg_idstore *self, pg_store_txn *txn, const char *uuid, int kind, char *out,
                       size_t outsize, int *created, char *errstr, size_t errstr_size)
{
    pg_store_txn *own;
    int rc;
    pg_store_txn *t = s_enter(self, txn, 1, uuid, &own, &rc, errstr, errstr_size);
    if (!t)
        return rc;
    rc = s_resolve(self, t, uuid, kind, out, outsize, created, errstr, errstr_size);
    return s_end(&own, rc, errstr, errstr_size);
}

int pg_idstore_lookup(pg_idstore *self, pg_store_txn *txn, const char *uuid, char *out,
                      size_t outsize, char *errstr, size_t errstr_size)
{
    pg_store_txn *own;
    int rc;
    pg_store_txn *t = s_enter(self, txn, 0, uuid, &own, &rc, errstr, errstr_size);
    if (!t)
        return rc;
    s_rec rec;
    rc = s_rec_get(self, t, uuid, &rec, errstr, errstr_size);
    if (rc == 0 && !rec.id[0])
        rc = PG_ENOTFOUND;
    if (rc == 0 && strlen(rec.id) >= outsize)
        rc = pg_errf(PG_EUSAGE, errstr, errstr_size, "idmap: output buffer too small");
    if (rc == 0)
        memcpy(out, rec.id, strlen(rec.id) + 1);
    if (rc == PG_ENOTFOUND)
        pg_errf(rc, errstr, errstr_size, "idmap: %s has no local id", uuid);
    return s_end(&own, rc, errstr, errstr_size);
}

int pg_idstore_uuid_of(pg_idstore *self, pg_store_txn *txn, const char *local_id, char uuid[37],
                       char *errstr, size_t errstr_size)
{
    if (!local_id || !*local_id || strlen(local_id) > S_ID_MAX)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "idmap: bad local id");
    pg_store_txn *own;
    pg_store_txn *t = s_begin(self, txn, 0, &own, errstr, errstr_size);
    if (!t)
        return PG_ESTORE;
    int rc = s_taken(self, t, local_id, uuid, errstr, errstr_size);
    if (rc == 0)
        rc = pg_errf(PG_ENOTFOUND, errstr, errstr_size, "idmap: %s is not a partner record",
                     local_id);
    else if (rc == 1)
        rc = 0;
    return s_end(&own, rc, errstr, errstr_size);
}

int pg_idstore_put(pg_idstore *self, pg_store_txn *txn, const char *uuid, int kind,
                   const char *local_id, char *errstr, size_t errstr_size)
{
    if (!local_id || !pg_idstore_id_valid(self, kind, local_id))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "idmap: '%s' is not %s", local_id,
                       kind && self->ids->kind_shape ? self->ids->kind_shape : self->ids->shape);
    pg_store_txn *own;
    int rc;
    pg_store_txn *t = s_enter(self, txn, 1, uuid, &own, &rc, errstr, errstr_size);
    if (!t)
        return rc;
    char owner[37];
    s_rec rec;
    rc = s_taken(self, t, local_id, owner, errstr, errstr_size);
    if (rc == 1 && strcmp(owner, uuid) != 0)
        rc = pg_errf(PG_EINVALID, errstr, errstr_size, "idmap: %s is already the id of %s",
                     local_id, owner);
    else if (rc >= 0) {
        rc = s_rec_get(self, t, uuid, &rec, errstr, errstr_size);
        if (rc == 0 && rec.id[0] && strcmp(rec.id, local_id) != 0)
            rc = pg_errf(PG_EINVALID, errstr, errstr_size, "idmap: %s already has id %s", uuid,
                         rec.id);
        else if (rc == 0 || rc == PG_ENOTFOUND)
            rc = s_bind(self, t, uuid, &rec, local_id, errstr, errstr_size);
    }
    return s_end(&own, rc, errstr, errstr_size);
}

int pg_idstore_next_revision(pg_idstore *self, pg_store_txn *txn, const char *uuid,
                             uint64_t canonical_version, uint64_t *rev, int *first, char *errstr,
                             size_t errstr_size)
{
    pg_store_txn *own;
    int rc;
    pg_store_txn *t = s_enter(self, txn, 1, uuid, &own, &rc, errstr, errstr_size);
    if (!t)
        return rc;
    s_rec rec;
    rc = s_rec_get(self, t, uuid, &rec, errstr, errstr_size);
    if (rc == 0 || rc == PG_ENOTFOUND) {
        uint64_t next = rec.last_rev + 1;
        rec.last_rev = canonical_version > next ? canonical_version : next;
        rec.sends++;
        rc = s_rec_put(self, t, uuid, &rec, errstr, errstr_size);
    }
    if (rc == 0) {
        *rev = rec.last_rev;
        if (first)
            *first = rec.sends == 1;
    }
    return s_end(&own, rc, errstr, errstr_size);
}

int pg_idstore_last_revision(pg_idstore *self, pg_store_txn *txn, const char *uuid, uint64_t *rev,
                             char *errstr, size_t errstr_size)
{
    pg_store_txn *own;
    int rc;
    pg_store_txn *t = s_enter(self, txn, 0, uuid, &own, &rc, errstr, errstr_size);
    if (!t)
        return rc;
    s_rec rec;
    rc = s_rec_get(self, t, uuid, &rec, errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        rc = 0;
    if (rc == 0)
        *rev = rec.last_rev;
    return s_end(&own, rc, errstr, errstr_size);
}
