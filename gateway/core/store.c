/* pg_store: LMDB environment, transactions, named databases and cursors. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "polegate/error.h"

/* The database holding the store's own facts (its format). */
#define S_DB_META PG_STORE_DB_META
#define S_FORMAT "2" /* 2: every value ends in a CRC-32 of its key and value */
/* Bytes of the checksum after every value. */
#define S_CRC 4
/* Below this many free bytes an EIO from a write is taken for a full disk: LMDB
 * reports a short write (the filesystem ran out in the middle) as EIO. */
#define S_DISK_LOW ((unsigned long long)64 << 20)

struct pg_store {
    MDB_env *env;
    char *dir;
    /* Names of the databases opened, by handle, for the reasons of damaged values. */
    char *names[PG_STORE_MAX_DBS + 2];
    pthread_mutex_t lock; /* names, damage */
    atomic_int damaged;   /* a checksum failed: no write transaction begins again */
    char damage[PG_ERRSTR_SIZE];
    /* Tests: the next inject_count commits fail with inject_rc (an LMDB or errno code). */
    int inject_rc;
    atomic_int inject_count;
    /* Threads blocked in pg_store_begin(write) for the writer lock, and how long the
     * waits took (µs): the longest and in all. */
    atomic_int writers_waiting;
    atomic_ullong wait_max_us, wait_total_us, waits;
    atomic_int writing; /* 1 while a thread holds the write transaction */
    /* pg_store_hold_writers: while held, write transactions of other threads wait
     * (under lock, on held_cond) and, after S_HOLD_WAIT_MS, fail PG_ERETRY. */
    int held;
    pthread_t holder;
    pthread_cond_t held_cond;
};

/* How long a write transaction waits for the store's holder before it fails. */
#define S_HOLD_WAIT_MS 1000

struct pg_store_txn {
    pg_store *store;
    MDB_txn *txn;
    pg_store_txn *parent;
    pg_store_txn *child;
    int write;
    /* A write failed: LMDB has poisoned the txn, so commit must refuse. */
    int failed;
    /* A value reserved by pg_store_put_reserve whose checksum is written once the
     * caller has filled it: before the next call on this transaction. */
    unsigned char *pend;
    size_t pend_len;
    uint32_t pend_crc; /* the CRC of its key so far */
};

struct pg_store_cursor {
    pg_store_txn *txn;
    MDB_cursor *cur;
    char *errstr; /* the caller's, given at open, for the reasons of later calls */
    size_t errstr_size;
};

/* Free bytes of the filesystem dir is on; ~0 when unknown. */
static unsigned long long s_disk_free(const char *dir)
{
    struct statvfs sv;
    if (!dir || statvfs(dir, &sv) != 0)
        return ~0ULL;
    return (unsigned long long)sv.f_bavail * sv.f_frsize;
}

int pg_store_disk_err(int err, const char *kind, const char *dir, const char *what, char *errstr,
                      size_t errstr_size)
{
    if (err != ENOSPC && err != EDQUOT && err != EIO)
        return 0;
    unsigned long long free = s_disk_free(dir);
    if (err == EIO && free >= S_DISK_LOW)
        return 0;
    return pg_errf(PG_EDISKFULL, errstr, errstr_size,
                   "disk full: the filesystem of %s %s has %llu bytes free (%s: %s); "
                   "nothing was written; send again when space is freed",
                   kind, dir ? dir : "?", free, what, strerror(err));
}

/* Map an LMDB return code to a pg error and reason. A full map and a full disk get
 * one reason each, the same whichever call met them, that an operator can act on. */
static int s_err(int rc, const char *what, MDB_env *env, char *errstr, size_t errstr_size)
{
    if (rc == MDB_NOTFOUND) {
        /* The common answer of a lookup, several a message: the same text as pg_errf
         * would write, without formatting it. */
        static const char nf[] = ": not found";
        size_t n = strlen(what), m = sizeof nf;
        if (errstr && errstr_size) {
            n = n < errstr_size - 1 ? n : errstr_size - 1;
            memcpy(errstr, what, n);
            m = m < errstr_size - n ? m : errstr_size - n;
            memcpy(errstr + n, nf, m);
            errstr[n + m - 1] = 0;
        }
        return PG_ENOTFOUND;
    }
    const char *dir = NULL;
    if (env)
        mdb_env_get_path(env, &dir);
    int full = pg_store_disk_err(rc, "store", dir, what, errstr, errstr_size);
    if (full)
        return full;
    if (rc == ENOMEM)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "%s: out of memory", what);
    if (rc == MDB_MAP_FULL) {
        MDB_envinfo info = {0};
        if (env)
            mdb_env_info(env, &info);
        return pg_errf(PG_EFULL, errstr, errstr_size,
                       "%s: store full (MDB_MAP_FULL): the %zu-byte map is used up; raise "
                       "store.map_size",
                       what, info.me_mapsize);
    }
    if (rc == MDB_BAD_VALSIZE)
        return pg_errf(PG_ESTORE, errstr, errstr_size,
                       "%s: key or value size out of range (MDB_BAD_VALSIZE, keys are 1-%d "
                       "bytes)",
                       what, PG_STORE_MAX_KEY);
    return pg_errf(PG_ESTORE, errstr, errstr_size, "%s: %s", what, mdb_strerror(rc));
}

/* ---------------------------------------------------------------- checksums */

/* The checksum of a stored value: CRC-32 of its key and its bytes, so that a value
 * moved under another key, or a key changed, is caught too. */
static uint32_t s_crc(const void *key, size_t klen, const void *val, size_t vlen)
{
    /* libdeflate's CRC-32 is zlib's (same polynomial, same values: stores written with
     * zlib's read the same), 5-10x faster on the short values a store holds. */
    return libdeflate_crc32(libdeflate_crc32(0, key, klen), val, vlen);
}

static void s_crc_put(unsigned char *out, uint32_t crc)
{
    for (int i = 0; i < S_CRC; i++)
        out[i] = (unsigned char)(crc >> (8 * i));
}

static uint32_t s_crc_get(const unsigned char *in)
{
    uint32_t crc = 0;
    for (int i = 0; i < S_CRC; i++)
        crc |= (uint32_t)in[i] << (8 * i);
    return crc;
}

/* key for a reason: as text when printable, else in hex (cut at 64 bytes). */
static void s_key_text(const void *key, size_t klen, char *out, size_t size)
{
    const unsigned char *k = key;
    size_t n = klen > 64 ? 64 : klen, w = 0;
    int text = 1;
    for (size_t i = 0; i < n; i++)
        text &= k[i] >= 0x20 && k[i] < 0x7f;
    out[0] = 0;
    for (size_t i = 0; i < n && w + 4 < size; i++)
        w += (size_t)snprintf(out + w, size - w, text ? "%c" : "%02x", k[i]);
    if (n < klen && w + 4 < size)
        snprintf(out + w, size - w, "...");
}

/* A value failed its checksum: the store is damaged. Every later write transaction
 * is refused (nothing is decided on state that cannot be trusted), and the reason
 * names the store, the database and the key. PG_ECORRUPT. */
static int s_damaged(pg_store *self, MDB_dbi dbi, const void *key, size_t klen, const char *what,
                     char *errstr, size_t errstr_size)
{
    char k[200], why[PG_ERRSTR_SIZE];
    s_key_text(key, klen, k, sizeof k);
    pthread_mutex_lock(&self->lock);
    const char *name = dbi < PG_STORE_MAX_DBS + 2 && self->names[dbi] ? self->names[dbi] : "?";
    snprintf(why, sizeof why, "store %s damaged: database %s, key %s: %s", self->dir, name, k,
             what);
    if (!atomic_load(&self->damaged)) {
        snprintf(self->damage, sizeof self->damage, "%s", why);
        atomic_store(&self->damaged, 1);
    }
    pthread_mutex_unlock(&self->lock);
    return pg_errf(PG_ECORRUPT, errstr, errstr_size, "%s", why);
}

/* Check v (as read under k) and cut its checksum off. 0 or PG_ECORRUPT. */
static int s_verify(pg_store *self, MDB_dbi dbi, const MDB_val *k, MDB_val *v, char *errstr,
                    size_t errstr_size)
{
    if (v->mv_size < S_CRC)
        return s_damaged(self, dbi, k->mv_data, k->mv_size, "value shorter than its checksum",
                         errstr, errstr_size);
    size_t n = v->mv_size - S_CRC;
    uint32_t want = s_crc_get((const unsigned char *)v->mv_data + n);
    uint32_t got = s_crc(k->mv_data, k->mv_size, v->mv_data, n);
    if (want != got) {
        char what[96];
        snprintf(what, sizeof what,
                 "checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32 ")", want, got);
        return s_damaged(self, dbi, k->mv_data, k->mv_size, what, errstr, errstr_size);
    }
    v->mv_size = n;
    return 0;
}

/* Write the checksum of the value pg_store_put_reserve handed out, now that the
 * caller has filled it. */
static void s_settle(pg_store_txn *txn)
{
    if (!txn->pend)
        return;
    s_crc_put(txn->pend + txn->pend_len, libdeflate_crc32(txn->pend_crc, txn->pend, txn->pend_len));
    txn->pend = NULL;
}

int pg_store_damaged(pg_store *self, char *out, size_t size)
{
    if (!atomic_load(&self->damaged))
        return 0;
    pthread_mutex_lock(&self->lock);
    if (out && size)
        snprintf(out, size, "%s", self->damage);
    pthread_mutex_unlock(&self->lock);
    return 1;
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

/* A store is written in one format: a new one gets the current format; one written
 * before values carried checksums (databases but no format) is refused, since its
 * values could not be verified. */
static int s_format(pg_store *self, char *errstr, size_t errstr_size)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc)
        return s_err(rc, "store: begin transaction", self->env, errstr, errstr_size);
    MDB_dbi dbi;
    MDB_val k = {6, "format"}, v;
    rc = mdb_dbi_open(txn, S_DB_META, 0, &dbi);
    if (rc == MDB_NOTFOUND) {
        MDB_stat st;
        if ((rc = mdb_stat(txn, 1 /* the main database: one entry per named one */, &st)))
            goto fail;
        if (st.ms_entries) {
            mdb_txn_abort(txn);
            return pg_errf(PG_ESTORE, errstr, errstr_size,
                           "store %s: written by an earlier polegate whose values carry no "
                           "checksums (format 1): publish its spool with that version, then "
                           "start on a new, empty store directory",
                           self->dir);
        }
        if ((rc = mdb_dbi_open(txn, S_DB_META, MDB_CREATE, &dbi)))
            goto fail;
        unsigned char val[sizeof S_FORMAT - 1 + S_CRC];
        memcpy(val, S_FORMAT, sizeof S_FORMAT - 1);
        uint32_t crc = s_crc(k.mv_data, k.mv_size, val, sizeof S_FORMAT - 1);
        for (int i = 0; i < S_CRC; i++)
            val[sizeof S_FORMAT - 1 + i] = (unsigned char)(crc >> (8 * i));
        v.mv_size = sizeof val;
        v.mv_data = val;
        if ((rc = mdb_put(txn, dbi, &k, &v, 0)) || (rc = mdb_txn_commit(txn)))
            return s_err(rc, "store: write its format", self->env, errstr, errstr_size);
        return 0;
    }
    if (rc)
        goto fail;
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc || v.mv_size != sizeof S_FORMAT - 1 + S_CRC || memcmp(v.mv_data, S_FORMAT, 1)) {
        mdb_txn_abort(txn);
        return pg_errf(PG_ESTORE, errstr, errstr_size,
                       "store %s: unknown store format (expected %s); not opened", self->dir,
                       S_FORMAT);
    }
    mdb_txn_abort(txn);
    return 0;
fail:
    mdb_txn_abort(txn);
    return s_err(rc, "store: read its format", self->env, errstr, errstr_size);
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
        free(self);
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->held_cond, NULL);
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
    if (s_format(self, errstr, errstr_size))
        goto err;
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
    for (size_t i = 0; i < sizeof self->names / sizeof self->names[0]; i++)
        free(self->names[i]);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->held_cond);
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

/* The store whose write transaction this thread holds: LMDB's writer lock is not
 * recursive, so a second pg_store_begin(write) on this thread would wait forever. */
static _Thread_local const pg_store *s_writing;

/* 1 when another thread holds the store's writes (pg_store_hold_writers), else 0.
 * With wait: wait for it to let go, at most S_HOLD_WAIT_MS; 1 if it still holds. */
static int s_held_for_me(pg_store *store, int wait)
{
    pthread_mutex_lock(&store->lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += S_HOLD_WAIT_MS / 1000;
    int rc = 0;
    while (wait && rc != ETIMEDOUT && store->held && !pthread_equal(store->holder, pthread_self()))
        rc = pthread_cond_timedwait(&store->held_cond, &store->lock, &until);
    int held = store->held && !pthread_equal(store->holder, pthread_self());
    pthread_mutex_unlock(&store->lock);
    return held;
}

void pg_store_hold_writers(pg_store *self, int hold)
{
    pthread_mutex_lock(&self->lock);
    self->held = hold;
    self->holder = pthread_self();
    if (!hold)
        pthread_cond_broadcast(&self->held_cond);
    pthread_mutex_unlock(&self->lock);
}

static pg_store_txn *s_begin(pg_store *store, pg_store_txn *parent, int write, char *errstr,
                             size_t errstr_size)
{
    if (write && atomic_load(&store->damaged)) {
        char why[PG_ERRSTR_SIZE];
        pg_store_damaged(store, why, sizeof why);
        pg_errf(PG_ECORRUPT, errstr, errstr_size, "%s; nothing is written to it", why);
        return NULL;
    }
    if (write && !parent && s_writing == store) {
        pg_errf(PG_EUSAGE, errstr, errstr_size,
                "store: this thread holds the store's write transaction already (it would wait "
                "for itself)");
        return NULL;
    }
    if (parent)
        s_settle(parent);
    pg_store_txn *self = calloc(1, sizeof(*self));
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "store: out of memory");
        return NULL;
    }
    int waits = write && !parent;
    struct timespec t0, t1;
    if (waits) {
        atomic_fetch_add(&store->writers_waiting, 1);
        clock_gettime(CLOCK_MONOTONIC, &t0);
    }
    int rc =
        mdb_txn_begin(store->env, parent ? parent->txn : NULL, write ? 0 : MDB_RDONLY, &self->txn);
    /* Held by another thread (checked with the writer lock taken, so that no commit
     * slips in between the holder's failed commit and its hold): give the lock back
     * and wait for the holder to let go. */
    while (waits && !rc && s_held_for_me(store, 0)) {
        mdb_txn_abort(self->txn);
        if (s_held_for_me(store, 1)) {
            atomic_fetch_sub(&store->writers_waiting, 1);
            free(self);
            pg_errf(PG_ERETRY, errstr, errstr_size,
                    "store: writes are held while the intake brings the store up to its "
                    "write-ahead log; try again");
            return NULL;
        }
        rc = mdb_txn_begin(store->env, NULL, 0, &self->txn);
    }
    if (waits) {
        atomic_fetch_sub(&store->writers_waiting, 1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        unsigned long long us = (unsigned long long)(t1.tv_sec - t0.tv_sec) * 1000000ULL +
                                (unsigned long long)((t1.tv_nsec - t0.tv_nsec) / 1000);
        atomic_fetch_add(&store->wait_total_us, us);
        atomic_fetch_add(&store->waits, 1);
        unsigned long long max = atomic_load(&store->wait_max_us);
        while (us > max && !atomic_compare_exchange_weak(&store->wait_max_us, &max, us))
            ;
    }
    if (rc != 0) {
        s_err(rc, "store: begin transaction", store->env, errstr, errstr_size);
        free(self);
        return NULL;
    }
    self->store = store;
    self->write = write;
    self->parent = parent;
    if (write && !parent) {
        s_writing = store;
        atomic_store(&store->writing, 1);
    }
    if (parent)
        parent->child = self;
    return self;
}

pg_store_txn *pg_store_begin(pg_store *self, int write, char *errstr, size_t errstr_size)
{
    return s_begin(self, NULL, write, errstr, errstr_size);
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
    else if (self->write) {
        s_writing = NULL;
        atomic_store(&self->store->writing, 0);
    }
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
    s_settle(self);
    MDB_env *env = self->store->env;
    pg_store *store = self->store;
    if (!self->parent && atomic_load(&store->inject_count) > 0) {
        atomic_fetch_sub(&store->inject_count, 1);
        int injected = store->inject_rc;
        pg_store_abort(p);
        return s_err(injected, "store: commit", env, errstr, errstr_size);
    }
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
    pg_store *store = txn->store;
    pthread_mutex_lock(&store->lock);
    if (dbi < PG_STORE_MAX_DBS + 2 && !store->names[dbi])
        store->names[dbi] = strdup(name);
    pthread_mutex_unlock(&store->lock);
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
    s_settle(txn);
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn->txn, db, &k, &v);
    if (rc != 0)
        return s_err(rc, "store: get", txn->store->env, errstr, errstr_size);
    if ((rc = s_verify(txn->store, db, &k, &v, errstr, errstr_size)))
        return rc;
    *val = v.mv_data;
    *vlen = v.mv_size;
    return 0;
}

/* 1 when db keeps sorted sets of values (no reserve: values are written whole). */
static int s_dupsort(pg_store_txn *txn, pg_store_db db)
{
    unsigned flags = 0;
    return !mdb_dbi_flags(txn->txn, db, &flags) && (flags & MDB_DUPSORT);
}

int pg_store_put(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen, const void *val,
                 size_t vlen, char *errstr, size_t errstr_size)
{
    s_settle(txn);
    MDB_val k = {klen, (void *)key}, v;
    uint32_t crc = s_crc(key, klen, val, vlen);
    int rc;
    if (s_dupsort(txn, db)) {
        unsigned char buf[PG_STORE_MAX_KEY + 1];
        if (vlen > PG_STORE_MAX_KEY - S_CRC)
            return pg_errf(PG_ESTORE, errstr, errstr_size,
                           "store: put: a value of a sorted set is at most %d bytes, not %zu",
                           PG_STORE_MAX_KEY - S_CRC, vlen);
        memcpy(buf, val, vlen);
        s_crc_put(buf + vlen, crc);
        v.mv_size = vlen + S_CRC;
        v.mv_data = buf;
        rc = mdb_put(txn->txn, db, &k, &v, 0);
    } else {
        v.mv_size = vlen + S_CRC;
        v.mv_data = NULL;
        rc = mdb_put(txn->txn, db, &k, &v, MDB_RESERVE);
        if (!rc) {
            memcpy(v.mv_data, val, vlen);
            s_crc_put((unsigned char *)v.mv_data + vlen, crc);
        }
    }
    if (rc == MDB_KEYEXIST) /* DUPSORT: the value is already in the set */
        return 0;
    return rc ? s_write_err(txn, rc, "store: put", errstr, errstr_size) : 0;
}

int pg_store_put_reserve(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen,
                         size_t vlen, void **out, char *errstr, size_t errstr_size)
{
    s_settle(txn);
    MDB_val k = {klen, (void *)key}, v = {vlen + S_CRC, NULL};
    int rc = mdb_put(txn->txn, db, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return s_write_err(txn, rc, "store: put", errstr, errstr_size);
    txn->pend = v.mv_data;
    txn->pend_len = vlen;
    txn->pend_crc = libdeflate_crc32(0, key, klen);
    *out = v.mv_data;
    return 0;
}

int pg_store_del(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen, const void *val,
                 size_t vlen, char *errstr, size_t errstr_size)
{
    s_settle(txn);
    unsigned char buf[PG_STORE_MAX_KEY + 1];
    MDB_val k = {klen, (void *)key}, v = {vlen + S_CRC, buf};
    if (val && vlen > PG_STORE_MAX_KEY - S_CRC)
        return s_err(MDB_NOTFOUND, "store: delete", txn->store->env, errstr, errstr_size);
    if (val) {
        memcpy(buf, val, vlen);
        s_crc_put(buf + vlen, s_crc(key, klen, val, vlen));
    }
    int rc = mdb_del(txn->txn, db, &k, val ? &v : NULL);
    return rc ? s_write_err(txn, rc, "store: delete", errstr, errstr_size) : 0;
}

int pg_store_count(pg_store_txn *txn, pg_store_db db, size_t *count, char *errstr,
                   size_t errstr_size)
{
    s_settle(txn);
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
    s_settle(txn);
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
    s_settle(self->txn);
    MDB_val v = {0, NULL};
    int rc = mdb_cursor_get(self->cur, k, &v, op);
    if (rc == MDB_NOTFOUND)
        return PG_ENOTFOUND;
    if (rc != 0)
        return s_err(rc, "store: cursor", self->txn->store->env, self->errstr, self->errstr_size);
    if (op == MDB_NEXT_DUP && !k->mv_data) /* the key the cursor is on, for the checksum */
        mdb_cursor_get(self->cur, k, &(MDB_val){0, NULL}, MDB_GET_CURRENT);
    if ((rc = s_verify(self->txn->store, mdb_cursor_dbi(self->cur), k, &v, self->errstr,
                       self->errstr_size)))
        return rc;
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
    s_settle(self->txn);
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

/* ---------------------------------------------------------------- space */

int pg_store_space(pg_store *self, pg_store_space_info *out, char *errstr, size_t errstr_size)
{
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_env_info(self->env, &info);
    if (!rc)
        rc = mdb_env_stat(self->env, &st);
    if (!rc)
        rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return s_err(rc, "store: space", self->env, errstr, errstr_size);
    /* Pages freed by earlier commits are used again before the file grows: what is in
     * use is the high-water mark less the free list (each of its values: a count,
     * then that many page numbers). */
    size_t free_pages = 0;
    if (!(rc = mdb_cursor_open(txn, 0 /* FREE_DBI */, &cur))) {
        MDB_val k, v;
        while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
            size_t n;
            if (v.mv_size < sizeof n)
                continue;
            memcpy(&n, v.mv_data, sizeof n);
            free_pages += n;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    if (rc && rc != MDB_NOTFOUND)
        return s_err(rc, "store: space", self->env, errstr, errstr_size);
    size_t pages = info.me_last_pgno + 1;
    out->map = info.me_mapsize;
    out->used = (pages > free_pages ? pages - free_pages : 0) * st.ms_psize;
    out->headroom = pg_store_headroom(info.me_mapsize);
    return 0;
}

size_t pg_store_headroom(size_t map_size)
{
    size_t h = map_size / 8;
    return h < PG_STORE_MIN_HEADROOM ? PG_STORE_MIN_HEADROOM : h;
}

int pg_store_writing(pg_store *self)
{
    return atomic_load(&self->writing);
}

int pg_store_writers_waiting(pg_store *self)
{
    return atomic_load(&self->writers_waiting);
}

void pg_store_writer_waits(pg_store *self, pg_store_wait_stats *out)
{
    out->count = atomic_load(&self->waits);
    out->total_us = atomic_load(&self->wait_total_us);
    out->max_us = atomic_load(&self->wait_max_us);
}

void pg_store_test_inject(pg_store *self, int err, int count)
{
    self->inject_rc = err;
    atomic_store(&self->inject_count, count);
}

/* ---------------------------------------------------------------- offline check */

/* One damaged value: counted and reported. */
static void s_check_report(pg_store_check_result *res, void (*report)(void *, const char *),
                           void *arg, const char *line)
{
    res->damaged++;
    if (report)
        report(arg, line);
}

int pg_store_check(const char *dir, pg_store_check_result *res,
                   void (*report)(void *arg, const char *line), void *arg, char *errstr,
                   size_t errstr_size)
{
    memset(res, 0, sizeof *res);
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &sb) != 0)
        return pg_errf(PG_ENOTFOUND, errstr, errstr_size, "store %s: no data.mdb there: %s", dir,
                       strerror(errno));
    pg_store *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        free(self);
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->held_cond, NULL);
    int rc = mdb_env_create(&self->env);
    if (!rc)
        rc = mdb_env_set_maxdbs(self->env, PG_STORE_MAX_DBS);
    /* The map must hold the whole file; a read-only open never grows it. */
    if (!rc)
        rc = mdb_env_set_mapsize(self->env, (size_t)sb.st_size + ((size_t)1 << 20));
    if (!rc && (rc = mdb_env_open(self->env, dir, MDB_RDONLY, 0600))) {
        pg_store_destroy(&self);
        return pg_errf(PG_ESTORE, errstr, errstr_size, "store %s: open: %s", dir, mdb_strerror(rc));
    }
    MDB_txn *txn = NULL;
    MDB_cursor *names = NULL;
    if (!rc)
        rc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
    if (!rc)
        rc = mdb_cursor_open(txn, 1 /* MAIN_DBI: one key per named database */, &names);
    char line[PG_ERRSTR_SIZE];
    MDB_val nk, nv;
    int format = 0;
    while (!rc && !(rc = mdb_cursor_get(names, &nk, &nv, MDB_NEXT))) {
        char name[PG_STORE_MAX_KEY + 1];
        size_t n = nk.mv_size < sizeof name - 1 ? nk.mv_size : sizeof name - 1;
        memcpy(name, nk.mv_data, n);
        name[n] = 0;
        MDB_dbi dbi;
        int orc =
            memchr(nk.mv_data, 0, nk.mv_size) ? MDB_INCOMPATIBLE : mdb_dbi_open(txn, name, 0, &dbi);
        if (orc) {
            char k[200];
            s_key_text(nk.mv_data, nk.mv_size, k, sizeof k);
            snprintf(line, sizeof line, "store %s damaged: database %s cannot be opened: %s", dir,
                     k, mdb_strerror(orc));
            s_check_report(res, report, arg, line);
            continue;
        }
        if (dbi < PG_STORE_MAX_DBS + 2 && !self->names[dbi])
            self->names[dbi] = strdup(name);
        res->databases++;
        format |= !strcmp(name, S_DB_META);
        MDB_cursor *cur;
        if ((rc = mdb_cursor_open(txn, dbi, &cur)))
            break;
        MDB_val k, v;
        int crc;
        while (!(crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))) {
            res->values++;
            if (s_verify(self, dbi, &k, &v, line, sizeof line))
                s_check_report(res, report, arg, line);
        }
        mdb_cursor_close(cur);
        if (crc != MDB_NOTFOUND) {
            rc = crc;
            break;
        }
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (names)
        mdb_cursor_close(names);
    if (txn)
        mdb_txn_abort(txn);
    if (!rc && !format && res->databases) {
        snprintf(line, sizeof line,
                 "store %s: no %s database: written before values carried checksums", dir,
                 S_DB_META);
        s_check_report(res, report, arg, line);
    }
    int out = rc ? s_err(rc, "store: check", self->env, errstr, errstr_size) : 0;
    pg_store_destroy(&self);
    if (!out && res->damaged)
        out = pg_errf(PG_ECORRUPT, errstr, errstr_size, "store %s: %llu of %llu values damaged",
                      dir, (unsigned long long)res->damaged, (unsigned long long)res->values);
    return out;
}
