/* The partner id map: canonical UUID <-> local RMS id, revisions sent, in LMDB. */
#include "idstore.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"

#define S_ID_MAX 32 /* longest local id: ATX 11, NX5 16 */
#define S_ATX_DIGITS 10
#define S_GID_DIGITS 16

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
    int atx;
    char prefix[5];
};

static const char s_atx_letters[] = "PLVIWTOCN"; /* EntityKind 1..9 */

char pg_idstore_atx_letter(int kind)
{
    return kind >= 1 && kind <= 9 ? s_atx_letters[kind - 1] : 0;
}

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
    size_t n = strlen(id);
    if (self->atx) {
        if (n != 1 + S_ATX_DIGITS || !strchr(s_atx_letters, id[0]) || !id[0])
            return 0;
        if (kind && id[0] != pg_idstore_atx_letter(kind))
            return 0;
        for (size_t i = 1; i < n; i++)
            if (id[i] < '0' || id[i] > '9')
                return 0;
        return 1;
    }
    if (n != S_GID_DIGITS)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
            return 0;
    return 1;
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
        *rc = pg_errf(PG_EINVALID, errstr, errstr_size, "idmap: '%s' is not a lower-case UUID",
                      uuid ? uuid : "(null)");
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

static int s_assign_atx(pg_idstore *self, pg_store_txn *txn, const char *uuid, int kind, char *id,
                        char *errstr, size_t errstr_size)
{
    char letter = pg_idstore_atx_letter(kind);
    if (!letter)
        return pg_errf(PG_EUNSUPPORTED, errstr, errstr_size,
                       "idmap: %s: an ATX record id needs the record type, and the kind of "
                       "this entity is not known",
                       uuid);
    uint64_t last = 0;
    const void *val;
    size_t vlen;
    int rc = pg_store_get(txn, self->db_counter, &letter, 1, &val, &vlen, errstr, errstr_size);
    if (rc == 0 && vlen == sizeof last)
        memcpy(&last, val, sizeof last);
    else if (rc != PG_ENOTFOUND && rc < 0)
        return rc;
    int width = S_ATX_DIGITS - (int)strlen(self->prefix);
    uint64_t max = 1;
    for (int i = 0; i < width; i++)
        max *= 10;
    for (;;) {
        if (++last >= max)
            return pg_errf(PG_ESTORE, errstr, errstr_size, "idmap: every ATX id %c%s... is taken",
                           letter, self->prefix);
        char digits[24];
        snprintf(digits, sizeof digits, "%020llu", (unsigned long long)last);
        snprintf(id, S_ID_MAX + 1, "%c%s%s", letter, self->prefix, digits + 20 - width);
        rc = s_taken(self, txn, id, NULL, errstr, errstr_size);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
    }
    return pg_store_put(txn, self->db_counter, &letter, 1, &last, sizeof last, errstr, errstr_size);
}

/* Candidate n for uuid's GID: its first 16 hex digits, its last 16, then SHA-1. */
static void s_gid_candidate(const char *uuid, unsigned n, char gid[S_GID_DIGITS + 1])
{
    char hex[33];
    size_t k = 0;
    for (const char *p = uuid; *p; p++)
        if (*p != '-')
            hex[k++] = *p;
    hex[k] = '\0';
    const char *src = hex;
    char *sum = NULL;
    if (n == 1) {
        src = hex + 16;
    } else if (n >= 2) {
        char name[64];
        snprintf(name, sizeof name, "%s/%u", uuid, n - 1);
        sum = g_compute_checksum_for_string(G_CHECKSUM_SHA1, name, -1);
        src = sum;
    }
    for (int i = 0; i < S_GID_DIGITS; i++)
        gid[i] = (char)g_ascii_toupper(src[i]);
    gid[S_GID_DIGITS] = '\0';
    g_free(sum);
}

static int s_assign_nx5(pg_idstore *self, pg_store_txn *txn, const char *uuid, char *id,
                        char *errstr, size_t errstr_size)
{
    for (unsigned n = 0; n < 1000; n++) {
        s_gid_candidate(uuid, n, id);
        int rc = s_taken(self, txn, id, NULL, errstr, errstr_size);
        if (rc <= 0)
            return rc;
    }
    return pg_errf(PG_ESTORE, errstr, errstr_size, "idmap: %s: no free GID", uuid);
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
        if (self->atx && kind && rec.id[0] != pg_idstore_atx_letter(kind))
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "idmap: %s is %s in the RMS, whose letter is not that of kind %d", uuid,
                           rec.id, kind);
    } else {
        char id[S_ID_MAX + 1];
        rc = self->atx ? s_assign_atx(self, txn, uuid, kind, id, errstr, errstr_size)
                       : s_assign_nx5(self, txn, uuid, id, errstr, errstr_size);
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
    int atx;
    if (!strcmp(format, "atx") || !strcmp(format, "athena"))
        atx = 1;
    else if (!strcmp(format, "nx5") || !strcmp(format, "niche"))
        atx = 0;
    else {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "idmap.format: '%s' is not one of atx, nx5",
                format);
        return NULL;
    }
    const char *prefix = cfg->atx_prefix ? cfg->atx_prefix : "9";
    size_t plen = strlen(prefix);
    int digits = plen >= 1 && plen <= 4;
    for (size_t i = 0; i < plen; i++)
        digits = digits && prefix[i] >= '0' && prefix[i] <= '9';
    if (!digits) {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "idmap.atx_prefix: '%s' is not 1-4 digits",
                prefix);
        return NULL;
    }
    pg_idstore *self = calloc(1, sizeof(*self));
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "idmap: out of memory");
        return NULL;
    }
    self->iface.resolve = s_iface_resolve;
    self->store = store;
    self->atx = atx;
    memcpy(self->prefix, prefix, plen + 1);
    const char *ns = atx ? "atx" : "nx5";
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
                       self->atx ? (kind ? "an ATX id of this kind's letter"
                                         : "an ATX id (type letter and 10 digits)")
                                 : "an NX5 GID (16 upper-case hex digits)");
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
