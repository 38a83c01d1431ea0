/* pg_store: the gateway's persistent state, a thin wrapper over one LMDB environment. */
#ifndef POLEGATE_STORE_H
#define POLEGATE_STORE_H

#include <stddef.h>
#include <stdint.h>

/*
 * One pg_store is one LMDB environment in a directory (data.mdb + lock.mdb). Every
 * module that keeps state (the ledger, the spool, the partner id map) opens its own
 * named databases in it, so one transaction can change all of them atomically: a
 * message is taken from the spool, applied to the ledger and acknowledged in one
 * commit, or not at all.
 *
 * Durability: commits are synchronous (fdatasync before pg_store_commit returns) unless
 * pg_store_set_durable(store, 0) is called, which tests and benchmarks may do. A
 * non-durable store can lose the last commits on a power cut but is never corrupted.
 *
 * Size: LMDB maps the whole database into memory at a fixed size (the map size). When
 * a write needs more, it fails with PG_EFULL and a reason containing "MDB_MAP_FULL";
 * the transaction is then unusable and must be aborted. pg_store_set_map_size can raise
 * the limit while no transaction is open. Removing what was published must always be
 * possible, so writers that add (the intake) stop at pg_store_headroom bytes short of
 * the map (pg_store_space); only removals and bookkeeping use the headroom.
 *
 * Disk: a write the filesystem has no room for fails with PG_EDISKFULL and one reason,
 * "disk full: ...", whether the kernel said ENOSPC or (a short write) EIO. Nothing of
 * the transaction is kept, and the next one works once space is freed.
 *
 * Integrity: every value is stored with a CRC-32 of its key and bytes after it, and
 * verified whenever it is read (get and cursors). A mismatch returns PG_ECORRUPT with
 * the store's path, the database and the key; the store is then marked damaged
 * (pg_store_damaged) and refuses every later write transaction: nothing is decided on
 * state that cannot be trusted. pg_store_check verifies a whole store offline.
 *
 * Threads: a transaction belongs to the thread that began it; one write transaction
 * at a time per environment (a second pg_store_begin(write=1) blocks until the first
 * ends). Read transactions do not block writers.
 *
 * Data: keys and values are byte strings (pointer + length). A key is 1 to
 * PG_STORE_MAX_KEY bytes; a value of a PG_STORE_DUPSORT database 1 to
 * PG_STORE_MAX_DUP_VALUE. A value
 * returned by a get or a cursor points into the map: it is valid until the
 * transaction ends or the next write to that database in that transaction, and must
 * not be written to. Values are only 2-byte aligned: copy (memcpy) before reading a
 * multi-byte integer from them.
 */

/* The largest key (and DUPSORT value) LMDB accepts in its default build. */
#define PG_STORE_MAX_KEY 511
/* The largest value of a PG_STORE_DUPSORT database (its checksum takes the rest). */
#define PG_STORE_MAX_DUP_VALUE (PG_STORE_MAX_KEY - 4)

/* Map size used when pg_store_new is given 0. */
#define PG_STORE_DEFAULT_MAP_SIZE ((size_t)1 << 30)

/* Named databases an environment can hold (all modules together). */
#define PG_STORE_MAX_DBS 64
/* The store's own database (its format); not for modules. */
#define PG_STORE_DB_META "store.meta"

typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;
typedef struct pg_store_cursor pg_store_cursor;
/* A named database handle (an LMDB dbi): valid for the life of the store once the
 * transaction that opened it has committed. */
typedef unsigned int pg_store_db;

/* Open (creating when missing, with mode 0700) the directory dir and the LMDB
 * environment in it, with a map of map_size bytes (0: PG_STORE_DEFAULT_MAP_SIZE; an
 * existing, larger database keeps its size). Clears reader slots left by crashed
 * processes. NULL on failure, with the reason in errstr. */
pg_store *pg_store_new(const char *dir, size_t map_size, char *errstr, size_t errstr_size);
/* Close the environment; sets *p to NULL; NULL-safe. Every transaction must have
 * ended. */
void pg_store_destroy(pg_store **p);
/* 1 (the default): every commit is flushed to disk before it returns. 0: commits are
 * left to the OS to flush (MDB_NOSYNC), for tests and benchmarks. 0 or PG_ESTORE. */
int pg_store_set_durable(pg_store *self, int durable);
/* Change the map size. Only while this process has no transaction open. 0 or
 * PG_ESTORE with errstr. */
int pg_store_set_map_size(pg_store *self, size_t map_size, char *errstr, size_t errstr_size);
/* The current map size in bytes. */
size_t pg_store_map_size(pg_store *self);
/* The directory the store lives in (borrowed). */
const char *pg_store_dir(const pg_store *self);

/* Begin a transaction: read-only when write is 0. NULL on failure, with errstr. */
pg_store_txn *pg_store_begin(pg_store *self, int write, char *errstr, size_t errstr_size);
/* Begin a transaction nested in the write transaction parent: its changes become part
 * of parent when it commits and vanish when it aborts, leaving parent as it was.
 * While a child is open, parent must not be used. NULL on failure, with errstr. */
pg_store_txn *pg_store_begin_child(pg_store_txn *parent, char *errstr, size_t errstr_size);
/* Commit and end the transaction; *p is set to NULL whether or not the commit
 * succeeds (on failure nothing of it was written). A transaction in which a write
 * failed cannot commit: it is aborted and PG_ESTORE returned. 0 or PG_ESTORE (reason
 * contains "MDB_MAP_FULL" when the map is full). */
int pg_store_commit(pg_store_txn **p, char *errstr, size_t errstr_size);
/* Abort and end the transaction; sets *p to NULL; NULL-safe. Every change made in
 * it (and in its children) is discarded. */
void pg_store_abort(pg_store_txn **p);
/* 1 for a write transaction. */
int pg_store_txn_writable(const pg_store_txn *self);
pg_store *pg_store_txn_store(const pg_store_txn *self);
/* The LMDB transaction, for a module that needs an LMDB call this wrapper does not
 * offer (include <lmdb.h> and use MDB_txn *). Do not commit or abort it directly. */
struct MDB_txn *pg_store_txn_lmdb(pg_store_txn *self);

/* Flags of pg_store_db_open. */
#define PG_STORE_DUPSORT 0x1 /* a key holds a sorted set of distinct values */

/* Open the named database name (created when missing, which needs a write txn) and
 * write its handle to *db. Open each database once, at start-up, in a transaction
 * that commits: a handle opened in a transaction that aborts is invalid. Prefix names
 * with the module ("ledger.entity", "spool.queue"). 0, PG_ENOTFOUND (read txn and the
 * database does not exist) or PG_ESTORE. */
int pg_store_db_open(pg_store_txn *txn, const char *name, unsigned flags, pg_store_db *db,
                     char *errstr, size_t errstr_size);

/* Read the value of key into *val / *vlen (see "Data" above for its lifetime); for a
 * DUPSORT database, the first value. 0, PG_ENOTFOUND or PG_ESTORE. */
int pg_store_get(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen, const void **val,
                 size_t *vlen, char *errstr, size_t errstr_size);
/* Store val under key, replacing the value (DUPSORT: adding val to the key's set;
 * adding a value already there is not an error). 0 or PG_ESTORE. */
int pg_store_put(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen, const void *val,
                 size_t vlen, char *errstr, size_t errstr_size);
/* Reserve vlen bytes as the value of key and write their address to *out, for the
 * caller to fill before the next write in this transaction (not for DUPSORT). Saves a
 * copy when a value is encoded straight into the store. 0 or PG_ESTORE. */
int pg_store_put_reserve(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen,
                         size_t vlen, void **out, char *errstr, size_t errstr_size);
/* Delete key (val NULL: with all its values; DUPSORT with val: that value only).
 * 0, PG_ENOTFOUND or PG_ESTORE. */
int pg_store_del(pg_store_txn *txn, pg_store_db db, const void *key, size_t klen, const void *val,
                 size_t vlen, char *errstr, size_t errstr_size);
/* The number of entries (DUPSORT: of key/value pairs) in db. 0 or PG_ESTORE. */
int pg_store_count(pg_store_txn *txn, pg_store_db db, size_t *count, char *errstr,
                   size_t errstr_size);

/* Cursors walk a database in key order (DUPSORT: then value order). Each positioning
 * call writes the entry it lands on to key/klen/val/vlen (any may be NULL) and returns
 * 0, or PG_ENOTFOUND when there is no such entry, or PG_ESTORE (or PG_ENOMEM) with the
 * reason written to the errstr given to _open, which must outlive the cursor. A cursor
 * must be closed before its transaction ends. */
pg_store_cursor *pg_store_cursor_open(pg_store_txn *txn, pg_store_db db, char *errstr,
                                      size_t errstr_size);
void pg_store_cursor_close(pg_store_cursor **p);
int pg_store_cursor_first(pg_store_cursor *self, const void **key, size_t *klen, const void **val,
                          size_t *vlen);
int pg_store_cursor_last(pg_store_cursor *self, const void **key, size_t *klen, const void **val,
                         size_t *vlen);
/* The first entry whose key is >= key. */
int pg_store_cursor_seek(pg_store_cursor *self, const void *key, size_t klen, const void **okey,
                         size_t *oklen, const void **val, size_t *vlen);
/* The first value of exactly key (DUPSORT: walk the rest with _next_dup). */
int pg_store_cursor_find(pg_store_cursor *self, const void *key, size_t klen, const void **val,
                         size_t *vlen);
int pg_store_cursor_next(pg_store_cursor *self, const void **key, size_t *klen, const void **val,
                         size_t *vlen);
/* DUPSORT: the next value of the current key; PG_ENOTFOUND after the last. */
int pg_store_cursor_next_dup(pg_store_cursor *self, const void **val, size_t *vlen);
/* Delete the entry the cursor is on (a write txn); _next then returns the entry that
 * followed it. 0 or PG_ESTORE. */
int pg_store_cursor_del(pg_store_cursor *self);

/* How many threads are waiting in pg_store_begin(write=1) for the one write
 * transaction: a writer that holds its transaction open across many steps (the
 * intake) commits when another is waiting. */
int pg_store_writers_waiting(pg_store *self);
typedef struct pg_store_wait_stats {
    unsigned long long count, total_us, max_us; /* write transactions begun, the time
                                                 * they waited for the lock */
} pg_store_wait_stats;
void pg_store_writer_waits(pg_store *self, pg_store_wait_stats *out);
/* 1 while a thread holds the write transaction (a reader deciding whether its own write
 * would make the holder commit early), else 0. */
int pg_store_writing(pg_store *self);

/* Hold (1) or let go (0) the write transactions of every other thread of this process:
 * while held, their pg_store_begin(write) waits, at most a second, then fails
 * PG_ERETRY. The intake holds them across each checkpoint's commit and, when it fails,
 * until the write-ahead log is replayed: a replay decides again only from the state
 * the original apply saw. Other processes are not held. */
void pg_store_hold_writers(pg_store *self, int hold);

/* 1 (with the reason in out) once a value failed its checksum, else 0. */
int pg_store_damaged(pg_store *self, char *out, size_t size);

/* The smallest headroom kept free of additions, whatever the map size. */
#define PG_STORE_MIN_HEADROOM ((size_t)1 << 20)
/* Bytes of a map of map_size kept for removals: an eighth, at least 1 MiB. */
size_t pg_store_headroom(size_t map_size);
/* What taking in a message of size bytes may add to the store at most, as writers
 * that add estimate it against the headroom: the ledger's record, a spool batch per
 * destination, a dead letter's two copies, and the B-tree pages they touch. */
#define PG_STORE_GROWTH(size) ((size_t)(size)*4 + 16384)

typedef struct pg_store_space_info {
    size_t map;      /* the map size */
    size_t used;     /* pages in use (the file's high-water mark less free pages) */
    size_t headroom; /* pg_store_headroom(map) */
} pg_store_space_info;
/* How much of the map is in use, as of the last commit. In a read transaction of its
 * own: not while this thread has a transaction open. 0 or PG_ESTORE. */
int pg_store_space(pg_store *self, pg_store_space_info *out, char *errstr, size_t errstr_size);

typedef struct pg_store_check_result {
    unsigned long long databases, values, damaged;
} pg_store_check_result;
/* Verify every value of every database of the store in dir (opened read-only; a
 * running daemon may keep using it). Each damaged value (or database that cannot be
 * opened) is counted and passed to report as one line naming the store, database and
 * key (report may be NULL). 0 when all is sound; PG_ECORRUPT with a summary when
 * something is damaged; PG_ENOTFOUND when dir holds no store; PG_ESTORE otherwise. */
int pg_store_check(const char *dir, pg_store_check_result *res,
                   void (*report)(void *arg, const char *line), void *arg, char *errstr,
                   size_t errstr_size);

/* The one reason for a write the filesystem had no room for: PG_EDISKFULL with "disk
 * full: the filesystem of KIND DIR has N bytes free (WHAT: ...); ..." when err (an
 * errno value) is ENOSPC or EDQUOT, or EIO with little space left (a short write);
 * else 0 and errstr untouched. Shared by the store and the write-ahead log. */
int pg_store_disk_err(int err, const char *kind, const char *dir, const char *what, char *errstr,
                      size_t errstr_size);

/* Tests: the next count top-level commits fail as if LMDB had returned err (an errno
 * value such as ENOSPC or EIO, or an MDB_ code), and are aborted. */
void pg_store_test_inject(pg_store *self, int err, int count);

/* A u64 as an 8-byte big-endian key, so that LMDB's byte order is numeric order
 * (sequence numbers, ids), and back. */
void pg_store_be64_put(uint8_t out[8], uint64_t v);
uint64_t pg_store_be64_get(const uint8_t in[8]);

#endif
