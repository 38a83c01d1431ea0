/* The partner id map: canonical UUID <-> local RMS id, revisions sent, in LMDB. */
#include "idstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/buf.h"
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
#define S_VAL_MAX (S_REC_HEAD + S_ID_MAX) /* the longest value of the three databases */
#define S_KEY_MAX 40                      /* a UUID, a local id or a series */

/* A record as the run knows it (see "the run" below): found 0 when the uuid has none. */
typedef struct s_known {
    char uuid[36];
    int found;
    s_rec rec;
} s_known;

/* What one write of the run replaced, for pg_idstore_rollback. */
typedef struct s_undo {
    pg_store_db db;
    unsigned char klen, vlen;
    int had; /* 0: the key was absent (undone by deleting it) */
    char key[S_KEY_MAX];
    char val[S_VAL_MAX];
} s_undo;

struct pg_idstore {
    pg_idmap iface; /* first: the adapters call back with a pointer to it */
    pg_store *store;
    pg_store_txn *txn; /* bound for iface calls; NULL: own transactions */
    pg_store_db db_uuid, db_local, db_counter;
    const pg_adapter_ops *adapter; /* whose ids these are */
    const pg_adapter_ids *ids;
    const char *settings[PG_ADAPTER_MAX_SETTINGS]; /* the adapter's, copied */
    /* the run (pg_idstore_run_begin): its transaction, the records read or written in
     * it (open addressing: slot = index + 1, 0 free), and while a savepoint is open
     * what each write replaced */
    pg_store_txn *run;
    s_known *known;
    size_t n_known, cap_known;
    uint32_t *slots;
    size_t n_slots; /* a power of two, twice cap_known */
    int saving;
    s_undo *undo;
    size_t n_undo, cap_undo;
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

/* ------------------------------------------------------------ the run */

/* FNV-1a of a UUID's 36 characters. */
static uint32_t s_hash(const char *uuid)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 36; i++)
        h = (h ^ (unsigned char)uuid[i]) * 16777619u;
    return h;
}

/* The slot of uuid: its record's, or the free one where it would go. */
static uint32_t *s_slot(pg_idstore *self, const char *uuid)
{
    size_t mask = self->n_slots - 1;
    for (size_t i = s_hash(uuid) & mask;; i = (i + 1) & mask)
        if (!self->slots[i] || !memcmp(self->known[self->slots[i] - 1].uuid, uuid, 36))
            return &self->slots[i];
}

/* What the run knows of uuid, or NULL (also outside a run, or in another txn). */
static s_known *s_recall(pg_idstore *self, pg_store_txn *txn, const char *uuid)
{
    if (!self->run || txn != self->run || !self->n_known)
        return NULL;
    uint32_t *slot = s_slot(self, uuid);
    return *slot ? &self->known[*slot - 1] : NULL;
}

/* Note what the store now holds for uuid in the run's txn. Out of memory: the run
 * just forgets (the store is read again). */
static void s_note(pg_idstore *self, pg_store_txn *txn, const char *uuid, int found,
                   const s_rec *rec)
{
    if (!self->run || txn != self->run)
        return;
    s_known *k = s_recall(self, txn, uuid);
    if (!k) {
        if (!self->known || self->n_known == self->cap_known) {
            size_t cap = self->cap_known ? self->cap_known * 2 : 256;
            s_known *nk = realloc(self->known, cap * sizeof *nk);
            uint32_t *slots = calloc(cap * 2, sizeof *slots);
            if (nk)
                self->known = nk;
            if (!nk || !slots) {
                free(slots);
                return;
            }
            self->cap_known = cap;
            free(self->slots);
            self->slots = slots;
            self->n_slots = cap * 2;
            for (size_t i = 0; i < self->n_known; i++)
                *s_slot(self, self->known[i].uuid) = (uint32_t)i + 1;
        }
        k = &self->known[self->n_known++];
        memcpy(k->uuid, uuid, 36);
        *s_slot(self, uuid) = (uint32_t)self->n_known;
    }
    k->found = found;
    if (found)
        k->rec = *rec;
    else
        memset(&k->rec, 0, sizeof k->rec);
}

static void s_forget(pg_idstore *self)
{
    self->n_known = 0;
    if (self->n_slots)
        memset(self->slots, 0, self->n_slots * sizeof *self->slots);
}

/* ------------------------------------------------------------ records */

/* The bytes of rec as stored under its uuid; their length. */
static size_t s_rec_bytes(const s_rec *rec, char val[S_VAL_MAX])
{
    size_t idlen = strlen(rec->id);
    memcpy(val, &rec->last_rev, sizeof rec->last_rev);
    memcpy(val + sizeof rec->last_rev, &rec->sends, sizeof rec->sends);
    memcpy(val + S_REC_HEAD, rec->id, idlen);
    return S_REC_HEAD + idlen;
}

static int s_rec_get(pg_idstore *self, pg_store_txn *txn, const char *uuid, s_rec *rec,
                     char *errstr, size_t errstr_size)
{
    const s_known *k = s_recall(self, txn, uuid);
    if (k) {
        *rec = k->rec;
        if (k->found)
            return 0;
        if (errstr_size)
            snprintf(errstr, errstr_size, "idmap: %.36s: not found", uuid);
        return PG_ENOTFOUND;
    }
    const void *val;
    size_t vlen;
    memset(rec, 0, sizeof(*rec));
    int rc = pg_store_get(txn, self->db_uuid, uuid, 36, &val, &vlen, errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        s_note(self, txn, uuid, 0, NULL);
    if (rc < 0)
        return rc;
    if (vlen < S_REC_HEAD || vlen > S_REC_HEAD + S_ID_MAX)
        return pg_errf(PG_ESTORE, errstr, errstr_size, "idmap: %s: damaged record", uuid);
    memcpy(&rec->last_rev, val, sizeof rec->last_rev);
    memcpy(&rec->sends, (const char *)val + sizeof rec->last_rev, sizeof rec->sends);
    memcpy(rec->id, (const char *)val + S_REC_HEAD, vlen - S_REC_HEAD);
    s_note(self, txn, uuid, 1, rec);
    return 0;
}

/* Put key -> val in db; under a savepoint of the run, first note what it replaces.
 * old/old_len: the value replaced when the caller knows it (had: whether there was
 * one); had -1: read it here. */
static int s_put(pg_idstore *self, pg_store_txn *txn, pg_store_db db, const void *key, size_t klen,
                 const void *val, size_t vlen, int had, const void *old, size_t old_len,
                 char *errstr, size_t errstr_size)
{
    if (self->saving && txn == self->run) {
        if (klen > S_KEY_MAX)
            return pg_errf(PG_EINTERNAL, errstr, errstr_size, "idmap: key too long to undo");
        if (had < 0) {
            int rc = pg_store_get(txn, db, key, klen, &old, &old_len, errstr, errstr_size);
            if (rc < 0 && rc != PG_ENOTFOUND)
                return rc;
            had = rc == 0;
        }
        if (had && old_len > S_VAL_MAX)
            return pg_errf(PG_ESTORE, errstr, errstr_size, "idmap: damaged value");
        if (pg_grow((void **)&self->undo, &self->cap_undo, self->n_undo + 1, sizeof *self->undo))
            return pg_errf(PG_ENOMEM, errstr, errstr_size, "idmap: out of memory");
        s_undo *u = &self->undo[self->n_undo++];
        u->db = db;
        u->klen = (unsigned char)klen;
        memcpy(u->key, key, klen);
        u->had = had;
        u->vlen = (unsigned char)(had ? old_len : 0);
        if (had)
            memcpy(u->val, old, old_len);
    }
    return pg_store_put(txn, db, key, klen, val, vlen, errstr, errstr_size);
}

static int s_rec_put(pg_idstore *self, pg_store_txn *txn, const char *uuid, const s_rec *rec,
                     char *errstr, size_t errstr_size)
{
    char val[S_VAL_MAX], old[S_VAL_MAX];
    size_t len = s_rec_bytes(rec, val), old_len = 0;
    const s_known *k = s_recall(self, txn, uuid);
    int had = k ? k->found : -1;
    if (k && k->found)
        old_len = s_rec_bytes(&k->rec, old);
    int rc =
        s_put(self, txn, self->db_uuid, uuid, 36, val, len, had, old, old_len, errstr, errstr_size);
    if (rc == 0)
        s_note(self, txn, uuid, 1, rec);
    return rc;
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
    return s_put(self, txn, self->db_counter, series, strlen(series), &n, sizeof n, -1, NULL, 0,
                 errstr, errstr_size);
}

static int s_bind(pg_idstore *self, pg_store_txn *txn, const char *uuid, s_rec *rec, const char *id,
                  char *errstr, size_t errstr_size)
{
    snprintf(rec->id, sizeof rec->id, "%s", id);
    int rc = s_rec_put(self, txn, uuid, rec, errstr, errstr_size);
    if (rc == 0)
        rc = s_put(self, txn, self->db_local, id, strlen(id), uuid, 36, -1, NULL, 0, errstr,
                   errstr_size);
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
    free((*p)->known);
    free((*p)->slots);
    free((*p)->undo);
    free(*p);
    *p = NULL;
}

void pg_idstore_run_begin(pg_idstore *self, pg_store_txn *txn)
{
    s_forget(self);
    self->run = txn;
    self->saving = 0;
    self->n_undo = 0;
}

void pg_idstore_run_end(pg_idstore *self)
{
    s_forget(self);
    self->run = NULL;
    self->saving = 0;
    self->n_undo = 0;
}

void pg_idstore_savepoint(pg_idstore *self)
{
    self->saving = self->run != NULL;
    self->n_undo = 0;
}

void pg_idstore_release(pg_idstore *self)
{
    self->saving = 0;
    self->n_undo = 0;
}

int pg_idstore_rollback(pg_idstore *self, char *errstr, size_t errstr_size)
{
    int rc = 0;
    /* newest first: a key written twice gets its first old value back last */
    while (rc == 0 && self->n_undo) {
        const s_undo *u = &self->undo[--self->n_undo];
        if (u->had)
            rc = pg_store_put(self->run, u->db, u->key, u->klen, u->val, u->vlen, errstr,
                              errstr_size);
        else if ((rc = pg_store_del(self->run, u->db, u->key, u->klen, NULL, 0, errstr,
                                    errstr_size)) == PG_ENOTFOUND)
            rc = 0;
    }
    self->saving = 0;
    self->n_undo = 0;
    s_forget(self); /* what it knew may be what was undone */
    return rc;
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
