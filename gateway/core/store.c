/* pg_store: LMDB environment, transactions, named databases and cursors. */
#include "store.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "polegate/error.h"

struct pg_store {
    MDB_env *env;
    char *dir;
};

struct pg_store_txn {
    pg_store *store;
    MDB_txn *txn;
    pg_store_txn *parent;
    pg_store_txn *child;
    int write;
    /* A write failed: LMDB has poisoned the txn, so commit must refuse. */
    int failed;
};

struct pg_store_cursor {
    pg_store_txn *txn;
    MDB_cursor *cur;
    char *errstr; /* the caller's, given at open, for the reasons of later calls */
    size_t errstr_size;
};

/* Map an LMDB return code to a pg error and reason. MDB_MAP_FULL gets a reason an
 * operator can act on. */
static int s_err(int rc, const char *what, MDB_env *env, char *errstr, size_t errstr_size)
{
    if (rc == MDB_NOTFOUND)
        return pg_errf(PG_ENOTFOUND, errstr, errstr_size, "%s: not found", what);
    if (rc == ENOMEM)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "%s: out of memory", what);
    if (rc == MDB_MAP_FULL) {
        MDB_envinfo info = {0};
        if (env)
            mdb_env_info(env, &info);
        return pg_errf(PG_ESTORE, errstr, errstr_size,
                       "%s: store full (MDB_MAP_FULL): the %zu-byte map is used up; raise the "
                       "store map size",
                       what, info.me_mapsize);
    }
    if (rc == MDB_BAD_VALSIZE)
        return pg_errf(PG_ESTORE, errstr, errstr_size,
                       "%s: key or value size out of range (MDB_BAD_VALSIZE, keys are 1-%d "
                       "bytes)",
                       what, PG_STORE_MAX_KEY);
    return pg_errf(PG_ESTORE, errstr, errstr_size, "%s: %s", what, mdb_strerror(rc));
}

static int s_mkdirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

pg_store *pg_store_new(const char *dir, size_t map_size, char *errstr, size_t errstr_size)
{
    if (!dir || !*dir) {
        pg_errf(PG_EUSAGE, errstr, errstr_size, "store: no directory given");
        return NULL;
    }
    pg_store *self = calloc(1, sizeof(*self));
    if (!self || !(self->dir = strdup(dir))) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "store: out of memory");
        goto err;
    }
    int rc = s_mkdirs(dir);
    if (rc != 0) {
        pg_errf(PG_ESTORE, errstr, errstr_size, "store: cannot create directory %s: %s", dir,
                strerror(rc));
        goto err;
    }
    if ((rc = mdb_env_create(&self->env)) != 0) {
        s_err(rc, "store: mdb_env_create", NULL, errstr, errstr_size);
        goto err;
    }
    if ((rc = mdb_env_set_maxdbs(self->env, PG_STORE_MAX_DBS)) != 0 ||
        (rc = mdb_env_set_mapsize(self->env, map_size ? map_size : PG_STORE_DEFAULT_MAP_SIZE)) !=
            0) {
        s_err(rc, "store: configure", NULL, errstr, errstr_size);
        goto err;
    }
    if ((rc = mdb_env_open(self->env, dir, 0, 0600)) != 0) {
        pg_errf(PG_ESTORE, errstr, errstr_size, "store: open %s: %s", dir, mdb_strerror(rc));
        goto err;
    }
    /* A reader slot of a process that crashed inside a read txn would pin old pages
     * forever and grow the file. */
    int dead = 0;
    mdb_reader_check(self->env, &dead);
    return self;
err:
    pg_store_destroy(&self);
    return NULL;
}

void pg_store_destroy(pg_store **p)
{
    if (!p || !*p)
        return;
    pg_store *self = *p;
    if (self->env)
        mdb_env_close(self->env);
    free(self->dir);
    free(self);
    *p = NULL;
}

int pg_store_set_durable(pg_store *self, int durable)
{
    int rc = mdb_env_set_flags(self->env, MDB_NOSYNC, durable ? 0 : 1);
    return rc ? PG_ESTORE : 0;
}

int pg_store_set_map_size(pg_store *self, size_t map_size, char *errstr, size_t errstr_size)
{
    int rc = mdb_env_set_mapsize(self->env, map_size);
    return rc ? s_err(rc, "store: set map size", NULL, errstr, errstr_size) : 0;
}

size_t pg_store_map_size(pg_store *self)
{
    MDB_envinfo info = {0};
    mdb_env_info(self->env, &info);
    return info.me_mapsize;
}

const char *pg_store_dir(const pg_store *self)
{
    return self->dir;
}

static pg_store_txn *s_begin(pg_store *store, pg_store_txn *parent, int write, char *errstr,
                             size_t errstr_size)
{
    pg_store_txn *self = calloc(1, sizeof(*self));
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "store: out of memory");
        return NULL;
    }
    int rc =
        mdb_txn_begin(store->env, parent ? parent->txn : NULL, write ? 0 : MDB_RDONLY, &self->txn);
    if (rc != 0) {
        s_err(rc, "store: begin transaction", store->env, errstr, errstr_size);
        free(self);
        return NULL;
    }
    self->store = store;
    self->write = write;
    self->parent = parent;
    if (parent)
        parent->child = self;
    return self;
}

pg_store_txn *pg_store_begin(pg_store *store, int write, char *errstr, size_t errstr_size)
{
    return s_begin(store, NULL, write, errstr, errstr_size);
}

pg_store_txn *pg_store_begin_child(pg_store_txn *parent, char *errstr, size_t errstr_size)
{
    if (!parent->write || parent->child || parent->failed) {
        pg_errf(PG_EUSAGE, errstr, errstr_size,
                "store: a child needs a usable write transaction without another child");
        return NULL;
    }
    return s_begin(parent->store, parent, 1, errstr, errstr_size);
}

static void s_end(pg_store_txn *self)
{
    if (self->parent)
        self->parent->child = NULL;
    free(self);
}

void pg_store_abort(pg_store_txn **p)
{
    if (!p || !*p)
        return;
    pg_store_txn *self = *p;
    /* LMDB aborts open children with the parent; our wrappers must go too. */
    if (self->child)
        pg_store_abort(&self->child);
    mdb_txn_abort(self->txn);
    s_end(self);
    *p = NULL;
}

int pg_store_commit(pg_store_txn **p, char *errstr, size_t errstr_size)
{
    pg_store_txn *self = *p;
    if (self->child || self->failed) {
        const char *why = self->child ? "a child transaction is still open"
                                      : "a write in it failed earlier; it was aborted";
        pg_store_abort(p);
        return pg_errf(PG_ESTORE, errstr, errstr_size, "store: cannot commit: %s", why);
    }
    MDB_env *env = self->store->env;
    int rc = mdb_txn_commit(self->txn);
    if (rc != 0 && self->parent)
        self->parent->failed = 1; /* LMDB marks the parent broken too */
    s_end(self);
    *p = NULL;
    return rc ? s_err(rc, "store: commit", env, errstr, errstr_size) : 0;
}

int pg_store_txn_writable(const pg_store_txn *self)
{
    return self->write;
}

pg_store *pg_store_txn_store(const pg_store_txn *self)
{
    return self->store;
}

struct MDB_txn *pg_store_txn_lmdb(pg_store_txn *self)
{
    return self->txn;
}

int pg_store_db_open(pg_store_txn *txn, const char *name, unsigned flags, pg_store_db *db,
                     char *errstr, size_t errstr_size)
{
    unsigned f = (flags & PG_STORE_DUPSORT ? MDB_DUPSORT : 0) | (txn->write ? MDB_CREATE : 0);
    MDB_dbi dbi;
    int rc = mdb_dbi_open(txn->txn, name, f, &dbi);
    if (rc != 0) {
        char what[300];
        snprintf(what, sizeof what, "store: open database %.200s", name);
        return s_err(rc, what, txn->store->env, errstr, errstr_size);
    }
    *db = dbi;
    return 0;
}

/* A write error leaves the LMDB txn unusable, except for MDB_NOTFOUND and the argument
 * checks LMDB makes before touching anything. */
static int s_write_err(pg_store_txn *txn, int rc, const char *what, char *errstr,
                       size_t errstr_size)
{
    if (rc != MDB_NOTFOUND && rc != MDB_BAD_VALSIZE && rc != EINVAL && rc != EACCES)
        txn->failed = 1;
    return s_err(rc, what, txn->store->env, errstr, errstr_size);
}

int pg_store_get(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen, const void **val,
                 size_t *vlen, char *errstr, size_t errstr_size)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn->txn, db, &k, &v);
    if (rc != 0)
        return s_err(rc, "store: get", txn->store->env, errstr, errstr_size);
    *val = v.mv_data;
    *vlen = v.mv_size;
    return 0;
}

int pg_store_put(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen, const void *val,
                 size_t vlen, char *errstr, size_t errstr_size)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = mdb_put(txn->txn, db, &k, &v, 0);
    if (rc == MDB_KEYEXIST) /* DUPSORT: the value is already in the set */
        return 0;
    return rc ? s_write_err(txn, rc, "store: put", errstr, errstr_size) : 0;
}

int pg_store_put_reserve(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen,
                         size_t vlen, void **out, char *errstr, size_t errstr_size)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, NULL};
    int rc = mdb_put(txn->txn, db, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return s_write_err(txn, rc, "store: put", errstr, errstr_size);
    *out = v.mv_data;
    return 0;
}

int pg_store_del(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen, const void *val,
                 size_t vlen, char *errstr, size_t errstr_size)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = mdb_del(txn->txn, db, &k, val ? &v : NULL);
    return rc ? s_write_err(txn, rc, "store: delete", errstr, errstr_size) : 0;
}

int pg_store_count(pg_store_txn *txn, pg_store_db db, size_t *count, char *errstr,
                   size_t errstr_size)
{
    MDB_stat st;
    int rc = mdb_stat(txn->txn, db, &st);
    if (rc != 0)
        return s_err(rc, "store: stat", txn->store->env, errstr, errstr_size);
    *count = st.ms_entries;
    return 0;
}

pg_store_cursor *pg_store_cursor_open(pg_store_txn *txn, pg_store_db db, char *errstr,
                                      size_t errstr_size)
{
    pg_store_cursor *self = calloc(1, sizeof(*self));
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "store: out of memory");
        return NULL;
    }
    int rc = mdb_cursor_open(txn->txn, db, &self->cur);
    if (rc != 0) {
        s_err(rc, "store: open cursor", txn->store->env, errstr, errstr_size);
        free(self);
        return NULL;
    }
    self->txn = txn;
    self->errstr = errstr;
    self->errstr_size = errstr_size;
    return self;
}

void pg_store_cursor_close(pg_store_cursor **p)
{
    if (!p || !*p)
        return;
    mdb_cursor_close((*p)->cur);
    free(*p);
    *p = NULL;
}

static int s_get(pg_store_cursor *self, MDB_cursor_op op, MDB_val *k, const void **key,
                 size_t *klen, const void **val, size_t *vlen)
{
    MDB_val v = {0, NULL};
    int rc = mdb_cursor_get(self->cur, k, &v, op);
    if (rc == MDB_NOTFOUND)
        return PG_ENOTFOUND;
    if (rc != 0)
        return s_err(rc, "store: cursor", self->txn->store->env, self->errstr, self->errstr_size);
    if (key)
        *key = k->mv_data;
    if (klen)
        *klen = k->mv_size;
    if (val)
        *val = v.mv_data;
    if (vlen)
        *vlen = v.mv_size;
    return 0;
}

int pg_store_cursor_first(pg_store_cursor *self, const void **key, size_t *klen, const void **val,
                          size_t *vlen)
{
    MDB_val k = {0, NULL};
    return s_get(self, MDB_FIRST, &k, key, klen, val, vlen);
}

int pg_store_cursor_last(pg_store_cursor *self, const void **key, size_t *klen, const void **val,
                         size_t *vlen)
{
    MDB_val k = {0, NULL};
    return s_get(self, MDB_LAST, &k, key, klen, val, vlen);
}

int pg_store_cursor_seek(pg_store_cursor *self, const void *key, size_t klen, const void **okey,
                         size_t *oklen, const void **val, size_t *vlen)
{
    MDB_val k = {klen, (void *)key};
    return s_get(self, MDB_SET_RANGE, &k, okey, oklen, val, vlen);
}

int pg_store_cursor_find(pg_store_cursor *self, const void *key, size_t klen, const void **val,
                         size_t *vlen)
{
    MDB_val k = {klen, (void *)key};
    return s_get(self, MDB_SET_KEY, &k, NULL, NULL, val, vlen);
}

int pg_store_cursor_next(pg_store_cursor *self, const void **key, size_t *klen, const void **val,
                         size_t *vlen)
{
    MDB_val k = {0, NULL};
    return s_get(self, MDB_NEXT, &k, key, klen, val, vlen);
}

int pg_store_cursor_next_dup(pg_store_cursor *self, const void **val, size_t *vlen)
{
    MDB_val k = {0, NULL};
    return s_get(self, MDB_NEXT_DUP, &k, NULL, NULL, val, vlen);
}

int pg_store_cursor_del(pg_store_cursor *self)
{
    int rc = mdb_cursor_del(self->cur, 0);
    return rc ? s_write_err(self->txn, rc, "store: cursor delete", self->errstr, self->errstr_size)
              : 0;
}

void pg_store_be64_put(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

uint64_t pg_store_be64_get(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}
