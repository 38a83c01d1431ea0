/* Unit tests for gateway/core/store: LMDB environment, transactions, databases, cursors. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "polegate/error.h"
#include "store.h"

static char s_dir[256];
static char e[PG_ERRSTR_SIZE];

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-test-store-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static pg_store *s_open(size_t map_size)
{
    pg_store *st = pg_store_new(s_dir, map_size, e, sizeof e);
    ck_assert_msg(st != NULL, "%s", e);
    return st;
}

static pg_store_db s_db(pg_store *st, const char *name, unsigned flags)
{
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    pg_store_db db;
    ck_assert_int_eq(pg_store_db_open(txn, name, flags, &db, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    ck_assert_ptr_null(txn);
    return db;
}

static void s_put(pg_store_txn *txn, pg_store_db db, const char *k, const char *v)
{
    ck_assert_int_eq(pg_store_put(txn, db, k, strlen(k), v, strlen(v), e, sizeof e), 0);
}

/* The value of k as a string ("" when absent), for comparisons. */
static const char *s_get(pg_store_txn *txn, pg_store_db db, const char *k)
{
    static char buf[256];
    const void *v;
    size_t n;
    buf[0] = '\0';
    if (pg_store_get(txn, db, k, strlen(k), &v, &n, e, sizeof e) == 0) {
        ck_assert_uint_lt(n, sizeof buf);
        memcpy(buf, v, n);
        buf[n] = '\0';
    }
    return buf;
}

START_TEST(test_put_get_persists_across_reopen)
{
    /* a directory two levels below the temporary one, created on open */
    char sub[300];
    snprintf(sub, sizeof sub, "%s/a/b", s_dir);
    pg_store *st = pg_store_new(sub, 0, e, sizeof e);
    ck_assert_msg(st != NULL, "%s", e);
    ck_assert_str_eq(pg_store_dir(st), sub);
    ck_assert_uint_eq(pg_store_map_size(st), PG_STORE_DEFAULT_MAP_SIZE);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    s_put(txn, db, "k1", "v1");
    s_put(txn, db, "k1", "v1b"); /* replaces */
    s_put(txn, db, "k2", "v2");
    ck_assert_str_eq(s_get(txn, db, "k1"), "v1b");
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_store_destroy(&st);
    ck_assert_ptr_null(st);
    pg_store_destroy(&st); /* twice is fine */

    st = pg_store_new(sub, 0, e, sizeof e);
    ck_assert_ptr_nonnull(st);
    db = s_db(st, "t.kv", 0);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_int_eq(pg_store_txn_writable(txn), 0);
    ck_assert_ptr_eq(pg_store_txn_store(txn), st);
    ck_assert_ptr_nonnull(pg_store_txn_lmdb(txn));
    ck_assert_str_eq(s_get(txn, db, "k1"), "v1b");
    ck_assert_str_eq(s_get(txn, db, "k2"), "v2");
    size_t n = 0;
    ck_assert_int_eq(pg_store_count(txn, db, &n, e, sizeof e), 0);
    ck_assert_uint_eq(n, 2);
    pg_store_abort(&txn);
    ck_assert_ptr_null(txn);
    pg_store_abort(&txn); /* NULL-safe */
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_get_missing_and_delete)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    const void *v;
    size_t n;
    ck_assert_int_eq(pg_store_get(txn, db, "nope", 4, &v, &n, e, sizeof e), PG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e, "not found"));
    s_put(txn, db, "k", "v");
    ck_assert_int_eq(pg_store_del(txn, db, "k", 1, NULL, 0, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_del(txn, db, "k", 1, NULL, 0, e, sizeof e), PG_ENOTFOUND);
    ck_assert_str_eq(s_get(txn, db, "k"), "");
    /* the txn is still usable after a not-found delete */
    s_put(txn, db, "k2", "v");
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_abort_discards)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    s_put(txn, db, "k", "v");
    pg_store_abort(&txn);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_str_eq(s_get(txn, db, "k"), "");
    pg_store_abort(&txn);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_child_commit_and_abort)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    s_put(txn, db, "parent", "1");
    pg_store_txn *child = pg_store_begin_child(txn, e, sizeof e);
    ck_assert_ptr_nonnull(child);
    /* one child at a time */
    ck_assert_ptr_null(pg_store_begin_child(txn, e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "child"));
    s_put(child, db, "aborted", "1");
    ck_assert_str_eq(s_get(child, db, "parent"), "1"); /* sees the parent's writes */
    pg_store_abort(&child);
    child = pg_store_begin_child(txn, e, sizeof e);
    s_put(child, db, "kept", "1");
    ck_assert_int_eq(pg_store_commit(&child, e, sizeof e), 0);
    ck_assert_str_eq(s_get(txn, db, "aborted"), "");
    ck_assert_str_eq(s_get(txn, db, "kept"), "1");
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_str_eq(s_get(txn, db, "parent"), "1");
    ck_assert_str_eq(s_get(txn, db, "kept"), "1");
    ck_assert_str_eq(s_get(txn, db, "aborted"), "");
    /* a read txn cannot have a child */
    ck_assert_ptr_null(pg_store_begin_child(txn, e, sizeof e));
    pg_store_abort(&txn);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_commit_with_open_child_refused)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    pg_store_txn *child = pg_store_begin_child(txn, e, sizeof e);
    s_put(child, db, "k", "v");
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), PG_ESTORE);
    ck_assert_ptr_nonnull(strstr(e, "child transaction is still open"));
    ck_assert_ptr_null(txn);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_str_eq(s_get(txn, db, "k"), "");
    pg_store_abort(&txn);
    pg_store_destroy(&st);
}
END_TEST

/* A second write transaction on the thread that holds one would wait for itself
 * forever (LMDB's writer lock is not recursive): refused instead. */
START_TEST(test_second_write_txn_on_thread_refused)
{
    pg_store *st = s_open(0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    ck_assert_ptr_null(pg_store_begin(st, 1, e, sizeof e));
    ck_assert_msg(strstr(e, "holds the store's write transaction already"), "%s", e);
    pg_store_txn *rd = pg_store_begin(st, 0, e, sizeof e); /* reading is fine */
    ck_assert_ptr_nonnull(rd);
    pg_store_abort(&rd);
    pg_store_abort(&txn);
    txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    pg_store_abort(&txn);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_read_txn_cannot_write)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_int_eq(pg_store_put(txn, db, "k", 1, "v", 1, e, sizeof e), PG_ESTORE);
    ck_assert_ptr_nonnull(strstr(e, "store: put"));
    pg_store_abort(&txn);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_db_open_missing_in_read_txn)
{
    pg_store *st = s_open(0);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_store_db db;
    ck_assert_int_eq(pg_store_db_open(txn, "never.created", 0, &db, e, sizeof e), PG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(e, "never.created"));
    pg_store_abort(&txn);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_key_size_limits)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    char big[PG_STORE_MAX_KEY + 1];
    memset(big, 'k', sizeof big);
    ck_assert_int_eq(pg_store_put(txn, db, big, PG_STORE_MAX_KEY, "v", 1, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_put(txn, db, big, sizeof big, "v", 1, e, sizeof e), PG_ESTORE);
    ck_assert_ptr_nonnull(strstr(e, "MDB_BAD_VALSIZE"));
    ck_assert_int_eq(pg_store_put(txn, db, "", 0, "v", 1, e, sizeof e), PG_ESTORE);
    /* a size refusal changes nothing: the txn still commits */
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_put_reserve)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    void *p;
    ck_assert_int_eq(pg_store_put_reserve(txn, db, "k", 1, 5, &p, e, sizeof e), 0);
    memcpy(p, "hello", 5);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_str_eq(s_get(txn, db, "k"), "hello");
    pg_store_abort(&txn);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_dupsort_and_cursor)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.dup", PG_STORE_DUPSORT);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    s_put(txn, db, "b", "T2");
    s_put(txn, db, "b", "F1");
    s_put(txn, db, "b", "F1"); /* already there: not an error, not added twice */
    s_put(txn, db, "a", "x");
    s_put(txn, db, "c", "y");
    size_t n;
    ck_assert_int_eq(pg_store_count(txn, db, &n, e, sizeof e), 0);
    ck_assert_uint_eq(n, 4);

    pg_store_cursor *cur = pg_store_cursor_open(txn, db, e, sizeof e);
    ck_assert_ptr_nonnull(cur);
    const void *k, *v;
    size_t kl, vl;
    ck_assert_int_eq(pg_store_cursor_find(cur, "b", 1, &v, &vl), 0);
    ck_assert_int_eq(memcmp(v, "F1", vl), 0); /* values in order */
    ck_assert_int_eq(pg_store_cursor_next_dup(cur, &v, &vl), 0);
    ck_assert_int_eq(memcmp(v, "T2", vl), 0);
    ck_assert_int_eq(pg_store_cursor_next_dup(cur, &v, &vl), PG_ENOTFOUND);
    ck_assert_int_eq(pg_store_cursor_find(cur, "bb", 2, &v, &vl), PG_ENOTFOUND);

    ck_assert_int_eq(pg_store_cursor_first(cur, &k, &kl, &v, &vl), 0);
    ck_assert_int_eq(memcmp(k, "a", kl), 0);
    ck_assert_int_eq(pg_store_cursor_last(cur, &k, &kl, NULL, NULL), 0);
    ck_assert_int_eq(memcmp(k, "c", kl), 0);
    ck_assert_int_eq(pg_store_cursor_seek(cur, "bz", 2, &k, &kl, &v, &vl), 0);
    ck_assert_int_eq(memcmp(k, "c", kl), 0);
    ck_assert_int_eq(pg_store_cursor_next(cur, &k, &kl, &v, &vl), PG_ENOTFOUND);

    /* delete one value of "b", then the cursor goes on with what followed it */
    ck_assert_int_eq(pg_store_cursor_find(cur, "b", 1, &v, &vl), 0);
    ck_assert_int_eq(pg_store_cursor_del(cur), 0);
    ck_assert_int_eq(pg_store_cursor_next(cur, &k, &kl, &v, &vl), 0);
    ck_assert_int_eq(memcmp(v, "T2", vl), 0);
    pg_store_cursor_close(&cur);
    ck_assert_ptr_null(cur);
    pg_store_cursor_close(&cur);

    /* delete one value by name */
    ck_assert_int_eq(pg_store_del(txn, db, "b", 1, "T2", 2, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_del(txn, db, "b", 1, "T2", 2, e, sizeof e), PG_ENOTFOUND);
    ck_assert_int_eq(pg_store_count(txn, db, &n, e, sizeof e), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_store_destroy(&st);
}
END_TEST

/* Put up to `max` 2 kB values under key-000000, key-000001, ... and return the first
 * failure (0: all fit); *done is how many were stored. */
static int s_fill(pg_store_txn *txn, pg_store_db db, int max, int *done)
{
    char val[2000];
    memset(val, 'v', sizeof val);
    int rc = 0, i = 0;
    for (; i < max && rc == 0; i++) {
        char k[32];
        snprintf(k, sizeof k, "key-%06d", i);
        rc = pg_store_put(txn, db, k, strlen(k), val, sizeof val, e, sizeof e);
    }
    *done = rc ? i - 1 : i;
    return rc;
}

/* Fill a small map until it is full: the reason says so, the txn can only abort, and
 * a larger map takes the same writes. */
START_TEST(test_map_full)
{
    pg_store *st = s_open(256 * 1024);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    int n, again;
    ck_assert_int_eq(s_fill(txn, db, 10000, &n), PG_EFULL);
    ck_assert_msg(strstr(e, "MDB_MAP_FULL") != NULL, "%s", e);
    ck_assert_msg(strstr(e, "262144-byte map") != NULL, "%s", e);
    ck_assert_int_lt(n, 10000);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), PG_ESTORE);
    ck_assert_ptr_nonnull(strstr(e, "failed earlier"));
    ck_assert_ptr_null(txn);

    ck_assert_int_eq(pg_store_set_map_size(st, 64 * 1024 * 1024, e, sizeof e), 0);
    ck_assert_uint_eq(pg_store_map_size(st), 64 * 1024 * 1024);
    txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(s_fill(txn, db, n + 1, &again), 0);
    ck_assert_int_eq(again, n + 1);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_store_destroy(&st);
}
END_TEST

/* MAP_FULL inside a child: the child is lost, the parent's own writes commit. */
START_TEST(test_map_full_in_child_keeps_parent)
{
    pg_store *st = s_open(256 * 1024);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    s_put(txn, db, "parent", "1");
    pg_store_txn *child = pg_store_begin_child(txn, e, sizeof e);
    int n;
    ck_assert_int_eq(s_fill(child, db, 10000, &n), PG_EFULL);
    ck_assert_ptr_nonnull(strstr(e, "MDB_MAP_FULL"));
    pg_store_abort(&child);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_str_eq(s_get(txn, db, "parent"), "1");
    ck_assert_str_eq(s_get(txn, db, "key-000000"), "");
    pg_store_abort(&txn);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_durable_toggle)
{
    pg_store *st = s_open(0);
    ck_assert_int_eq(pg_store_set_durable(st, 0), 0);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    s_put(txn, db, "k", "v");
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_set_durable(st, 1), 0);
    pg_store_destroy(&st);
    st = s_open(0);
    db = s_db(st, "t.kv", 0);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_str_eq(s_get(txn, db, "k"), "v");
    pg_store_abort(&txn);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_new_bad_directory)
{
    char file[300];
    snprintf(file, sizeof file, "%s/plain-file", s_dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    char sub[320];
    snprintf(sub, sizeof sub, "%s/below", file);
    ck_assert_ptr_null(pg_store_new(sub, 0, e, sizeof e));
    ck_assert_msg(strstr(e, "cannot create directory") != NULL, "%s", e);
    ck_assert_ptr_null(pg_store_new("", 0, e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "no directory"));
    ck_assert_ptr_null(pg_store_new(NULL, 0, e, sizeof e));
}
END_TEST

/* Change one byte of every copy of marker in the store's data.mdb (LMDB keeps older
 * page versions too): damage as a disk or a stray write would make it. Returns how
 * many copies were changed. */
static int s_flip(const char *dir, const char *marker)
{
    char path[400];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    char *buf = malloc((size_t)size);
    ck_assert_ptr_nonnull(buf);
    fseek(f, 0, SEEK_SET);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    size_t mlen = strlen(marker);
    int n = 0;
    for (long i = 0; i + (long)mlen <= size; i++) {
        if (memcmp(buf + i, marker, mlen))
            continue;
        buf[i + (long)mlen - 1] ^= 0x01;
        n++;
    }
    fseek(f, 0, SEEK_SET);
    ck_assert_uint_eq(fwrite(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    free(buf);
    return n;
}

static void s_collect(void *arg, const char *line)
{
    snprintf(arg, PG_ERRSTR_SIZE, "%s", line);
}

/* A flipped byte in a stored value is caught when it is read: the reason names the
 * store, database and key; the store then refuses every write; the offline check
 * finds it too. */
START_TEST(test_flipped_byte_is_caught)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "router.meta", 0);
    pg_store_db dup = s_db(st, "t.dup", PG_STORE_DUPSORT);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    s_put(txn, db, "policy", "v1\0DEST=topic-FAULT-1");
    s_put(txn, db, "other", "untouched");
    s_put(txn, dup, "set", "Fmember-MARK");
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_store_destroy(&st);

    pg_store_check_result res;
    char line[PG_ERRSTR_SIZE] = "";
    ck_assert_int_eq(pg_store_check(s_dir, &res, s_collect, line, e, sizeof e), 0);
    ck_assert_uint_eq(res.damaged, 0);
    ck_assert_uint_ge(res.values, 4); /* the three, and the store's format */

    ck_assert_int_ge(s_flip(s_dir, "v1"), 1);
    ck_assert_int_ge(s_flip(s_dir, "member-MARK"), 1);
    st = s_open(0);
    db = s_db(st, "router.meta", 0);
    dup = s_db(st, "t.dup", PG_STORE_DUPSORT);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_str_eq(s_get(txn, db, "other"), "untouched");
    const void *v;
    size_t vl;
    ck_assert_int_eq(pg_store_get(txn, db, "policy", 6, &v, &vl, e, sizeof e), PG_ECORRUPT);
    ck_assert_msg(strstr(e, s_dir) && strstr(e, "database router.meta, key policy") &&
                      strstr(e, "checksum mismatch"),
                  "%s", e);
    pg_store_cursor *cur = pg_store_cursor_open(txn, dup, e, sizeof e);
    ck_assert_int_eq(pg_store_cursor_first(cur, NULL, NULL, &v, &vl), PG_ECORRUPT);
    ck_assert_msg(strstr(e, "database t.dup, key set"), "%s", e);
    pg_store_cursor_close(&cur);
    pg_store_abort(&txn);
    char why[PG_ERRSTR_SIZE];
    ck_assert_int_eq(pg_store_damaged(st, why, sizeof why), 1);
    ck_assert_msg(strstr(why, "router.meta, key policy"), "%s", why);
    ck_assert_ptr_null(pg_store_begin(st, 1, e, sizeof e));
    ck_assert_msg(strstr(e, "damaged") && strstr(e, "nothing is written"), "%s", e);
    pg_store_destroy(&st);

    ck_assert_int_eq(pg_store_check(s_dir, &res, s_collect, line, e, sizeof e), PG_ECORRUPT);
    ck_assert_uint_eq(res.damaged, 2);
    ck_assert_msg(strstr(e, "2 of"), "%s", e);
    ck_assert_msg(strstr(line, "damaged") && strstr(line, s_dir), "%s", line);
}
END_TEST

/* A value reserved and filled afterwards gets its checksum before anything else
 * reads the transaction; sorted-set values carry one too and are deleted by value. */
START_TEST(test_checksums_of_reserve_and_dupsort)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    void *p;
    ck_assert_int_eq(pg_store_put_reserve(txn, db, "r", 1, 3, &p, e, sizeof e), 0);
    memcpy(p, "abc", 3);
    ck_assert_str_eq(s_get(txn, db, "r"), "abc"); /* read in the same txn */
    ck_assert_int_eq(pg_store_put_reserve(txn, db, "s", 1, 3, &p, e, sizeof e), 0);
    memcpy(p, "xyz", 3);
    pg_store_txn *child = pg_store_begin_child(txn, e, sizeof e);
    ck_assert_str_eq(s_get(child, db, "s"), "xyz");
    pg_store_abort(&child);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_store_destroy(&st);
    pg_store_check_result res;
    ck_assert_int_eq(pg_store_check(s_dir, &res, NULL, NULL, e, sizeof e), 0);
    char big[PG_STORE_MAX_KEY];
    memset(big, 'x', sizeof big);
    st = s_open(0);
    pg_store_db dup = s_db(st, "t.dup", PG_STORE_DUPSORT);
    txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_store_put(txn, dup, "k", 1, big, PG_STORE_MAX_DUP_VALUE, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_put(txn, dup, "k", 1, big, PG_STORE_MAX_DUP_VALUE + 1, e, sizeof e),
                     PG_ESTORE);
    ck_assert_int_eq(pg_store_del(txn, dup, "k", 1, big, PG_STORE_MAX_DUP_VALUE, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_store_destroy(&st);
}
END_TEST

/* A store written before values carried checksums is refused, not misread. */
START_TEST(test_store_without_checksums_refused)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    (void)db;
    pg_store_destroy(&st);
    /* Drop the format record as an earlier polegate never wrote it. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ck_assert_int_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    ck_assert_int_eq(mdb_env_open(env, s_dir, 0, 0600), 0);
    ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ck_assert_int_eq(mdb_dbi_open(txn, PG_STORE_DB_META, 0, &dbi), 0);
    ck_assert_int_eq(mdb_drop(txn, dbi, 1), 0);
    ck_assert_int_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    ck_assert_ptr_null(pg_store_new(s_dir, 0, e, sizeof e));
    ck_assert_msg(strstr(e, "no checksums") && strstr(e, s_dir), "%s", e);
}
END_TEST

/* A full disk gives one reason whatever the kernel said (ENOSPC, or EIO for a short
 * write), nothing of the commit is kept, and the next commit works. */
START_TEST(test_disk_full_reason)
{
    pg_store *st = s_open(0);
    pg_store_db db = s_db(st, "t.kv", 0);
    int errs[] = {ENOSPC, EDQUOT};
    for (size_t i = 0; i < 2; i++) {
        pg_store_test_inject(st, errs[i], 1);
        pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
        s_put(txn, db, "k", "lost");
        ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), PG_EDISKFULL);
        ck_assert_msg(!strncmp(e, "disk full: the filesystem of store ", 35), "%s", e);
        ck_assert_ptr_nonnull(strstr(e, s_dir));
    }
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_str_eq(s_get(txn, db, "k"), "");
    s_put(txn, db, "k", "kept");
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    /* EIO with plenty of space is an I/O error, not a full disk */
    pg_store_test_inject(st, EIO, 1);
    txn = pg_store_begin(st, 1, e, sizeof e);
    s_put(txn, db, "k", "x");
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), PG_ESTORE);
    ck_assert_msg(strstr(e, "Input/output error"), "%s", e);
    pg_store_destroy(&st);
}
END_TEST

/* Space in use goes up with what is added and down (free pages reused) after it is
 * removed; the headroom is an eighth of the map, at least 1 MiB. */
START_TEST(test_space)
{
    pg_store *st = s_open((size_t)8 << 20);
    pg_store_db db = s_db(st, "t.kv", 0);
    pg_store_space_info a, b, c;
    ck_assert_int_eq(pg_store_space(st, &a, e, sizeof e), 0);
    ck_assert_uint_eq(a.map, (size_t)8 << 20);
    ck_assert_uint_eq(a.headroom, (size_t)1 << 20);
    ck_assert_uint_eq(pg_store_headroom((size_t)1 << 30), (size_t)128 << 20);
    char v[2000];
    memset(v, 'v', sizeof v);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%06d", i);
        ck_assert_int_eq(pg_store_put(txn, db, k, strlen(k), v, sizeof v, e, sizeof e), 0);
    }
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_space(st, &b, e, sizeof e), 0);
    ck_assert_uint_gt(b.used, a.used + 1000 * sizeof v);
    txn = pg_store_begin(st, 1, e, sizeof e);
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%06d", i);
        ck_assert_int_eq(pg_store_del(txn, db, k, strlen(k), NULL, 0, e, sizeof e), 0);
    }
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_space(st, &c, e, sizeof e), 0);
    ck_assert_uint_lt(c.used, b.used / 2);
    pg_store_destroy(&st);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_put_get_persists_across_reopen);
    tcase_add_test(tc, test_get_missing_and_delete);
    tcase_add_test(tc, test_abort_discards);
    tcase_add_test(tc, test_child_commit_and_abort);
    tcase_add_test(tc, test_commit_with_open_child_refused);
    tcase_add_test(tc, test_read_txn_cannot_write);
    tcase_add_test(tc, test_second_write_txn_on_thread_refused);
    tcase_add_test(tc, test_db_open_missing_in_read_txn);
    tcase_add_test(tc, test_key_size_limits);
    tcase_add_test(tc, test_put_reserve);
    tcase_add_test(tc, test_dupsort_and_cursor);
    tcase_add_test(tc, test_map_full);
    tcase_add_test(tc, test_map_full_in_child_keeps_parent);
    tcase_add_test(tc, test_durable_toggle);
    tcase_add_test(tc, test_new_bad_directory);
    tcase_add_test(tc, test_flipped_byte_is_caught);
    tcase_add_test(tc, test_checksums_of_reserve_and_dupsort);
    tcase_add_test(tc, test_store_without_checksums_refused);
    tcase_add_test(tc, test_disk_full_reason);
    tcase_add_test(tc, test_space);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(s_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
