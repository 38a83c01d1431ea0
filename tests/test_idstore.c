/* Tests for gateway/inbound/idstore: local RMS ids for partner records, kept across restarts. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "idstore.h"
#include "polegate/error.h"
#include "polegate/pole.h"
#include "store.h"

#define A "0b7c7a52-6a83-4d71-9a55-5a3f7d0c2e10"
#define B "19d2bfc8-4ff4-5442-bc13-c99cd15d5dc1"
#define C "7f3a9c2e-4b1d-0a66-8000-000000000001"

enum {
    K_NONE = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_UNSPECIFIED,
    K_PERSON = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON,
    K_LOCATION = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_LOCATION,
};

static char s_dir[64];
static pg_store *s_store;
static char e[PG_ERRSTR_SIZE];

static void s_open_store(void)
{
    s_store = pg_store_new(s_dir, 0, e, sizeof e);
    ck_assert_msg(s_store != NULL, "%s", e);
    pg_store_set_durable(s_store, 0);
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-test-idmap-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    s_open_store();
}

static void s_teardown(void)
{
    pg_store_destroy(&s_store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static pg_idstore *s_map(const char *format, const char *prefix)
{
    const char *settings[PG_ADAPTER_MAX_SETTINGS] = {prefix}; /* the ATX id_prefix */
    pg_idstore_config cfg = {.format = format, .settings = settings};
    pg_idstore *m = pg_idstore_new(s_store, &cfg, e, sizeof e);
    ck_assert_msg(m != NULL, "%s", e);
    return m;
}

/* resolve without a transaction; returns the id (static buffer) */
static const char *s_id(pg_idstore *m, const char *uuid, int kind, int *created)
{
    static char out[4][32];
    static int k;
    char *o = out[k++ % 4];
    int rc = pg_idstore_resolve(m, NULL, uuid, kind, o, 32, created, e, sizeof e);
    ck_assert_msg(rc == 0, "%s", e);
    return o;
}

static void s_random_uuid(char out[37])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

START_TEST(test_atx_ids_stable_across_reopen)
{
    pg_idstore *m = s_map("atx", NULL);
    int created = 0;
    ck_assert_str_eq(s_id(m, A, K_PERSON, &created), "P9000000001");
    ck_assert_int_eq(created, 1);
    ck_assert_str_eq(s_id(m, B, K_PERSON, NULL), "P9000000002");
    ck_assert_str_eq(s_id(m, C, K_LOCATION, NULL), "L9000000001");
    ck_assert_str_eq(s_id(m, A, K_PERSON, NULL), "P9000000001");
    pg_idstore_destroy(&m);
    ck_assert_ptr_null(m);
    pg_store_destroy(&s_store);

    s_open_store();
    m = s_map("atx", NULL);
    ck_assert_str_eq(s_id(m, A, K_PERSON, NULL), "P9000000001");
    ck_assert_str_eq(s_id(m, C, K_LOCATION, NULL), "L9000000001");
    /* the counter survived too */
    char d[37];
    s_random_uuid(d);
    ck_assert_str_eq(s_id(m, d, K_PERSON, NULL), "P9000000003");
    /* a known entity needs no kind */
    ck_assert_str_eq(s_id(m, B, K_NONE, NULL), "P9000000002");
    char uuid[37];
    ck_assert_int_eq(pg_idstore_uuid_of(m, NULL, "P9000000002", uuid, e, sizeof e), 0);
    ck_assert_str_eq(uuid, B);
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_atx_shape_per_kind)
{
    pg_idstore *m = s_map("atx", NULL);
    const char *letters = "PLVIWTOCN";
    for (int kind = 1; kind <= 9; kind++) {
        char u[37], want[16];
        s_random_uuid(u);
        snprintf(want, sizeof want, "%c9000000001", letters[kind - 1]);
        const char *id = s_id(m, u, kind, NULL);
        ck_assert_str_eq(id, want);
        ck_assert_int_eq(pg_idstore_id_valid(m, kind, id), 1);
        ck_assert_int_eq(pg_idstore_id_valid(m, kind % 9 + 1, id), 0);
        ck_assert_int_eq(pg_idstore_kind_of(m, id), kind); /* the letter says the kind */
    }
    ck_assert_int_eq(pg_idstore_kind_of(m, "X9000000001"), 0);
    ck_assert_int_eq(pg_idstore_kind_of(m, ""), 0);
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_atx_kind_unknown)
{
    pg_idstore *m = s_map("atx", NULL);
    char out[32];
    ck_assert_int_eq(pg_idstore_resolve(m, NULL, A, K_NONE, out, sizeof out, NULL, e, sizeof e),
                     PG_EUNSUPPORTED);
    ck_assert_str_eq(e, "idmap: " A ": an ATX record id needs the record type, and the kind "
                        "of this entity is not known");
    ck_assert_int_eq(pg_idstore_resolve(m, NULL, A, 42, out, sizeof out, NULL, e, sizeof e),
                     PG_EUNSUPPORTED);
    /* nothing was assigned */
    ck_assert_int_eq(pg_idstore_lookup(m, NULL, A, out, sizeof out, e, sizeof e), PG_ENOTFOUND);
    ck_assert_str_eq(e, "idmap: " A " has no local id");
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_atx_kind_mismatch)
{
    pg_idstore *m = s_map("atx", NULL);
    char out[32];
    s_id(m, A, K_PERSON, NULL);
    ck_assert_int_eq(pg_idstore_resolve(m, NULL, A, K_LOCATION, out, sizeof out, NULL, e, sizeof e),
                     PG_EINVALID);
    ck_assert_str_eq(e, "idmap: " A " is P9000000001 in the RMS, whose letter is not that of "
                        "kind 2");
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_atx_prefix)
{
    pg_idstore *m = s_map("athena", "42");
    ck_assert_str_eq(s_id(m, A, K_PERSON, NULL), "P4200000001");
    pg_idstore_destroy(&m);
    const char *bad[] = {"", "9a", "12345", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *settings[PG_ADAPTER_MAX_SETTINGS] = {bad[i]};
        pg_idstore_config cfg = {.format = "atx", .settings = settings};
        ck_assert_ptr_null(pg_idstore_new(s_store, &cfg, e, sizeof e));
        char want[64];
        snprintf(want, sizeof want, "idmap.id_prefix: '%s' is not 1-4 digits", bad[i]);
        ck_assert_str_eq(e, want);
    }
    pg_idstore_config cfg = {.format = "xml"};
    ck_assert_ptr_null(pg_idstore_new(s_store, &cfg, e, sizeof e));
    ck_assert_str_eq(e, "idmap.format: 'xml' is not one of atx, nx5");
    ck_assert_ptr_null(pg_idstore_new(s_store, NULL, e, sizeof e));
    ck_assert_str_eq(e, "idmap.format: '' is not one of atx, nx5");
}
END_TEST

START_TEST(test_atx_space_exhausted)
{
    pg_idstore *m = s_map("atx", "9999");
    /* 6 digits left: bind the last one by hand, then run the counter up to it */
    char u[37];
    s_random_uuid(u);
    ck_assert_int_eq(pg_idstore_put(m, NULL, u, K_PERSON, "P9999999999", e, sizeof e), 0);
    pg_store_txn *txn = pg_store_begin(s_store, 1, e, sizeof e);
    pg_store_db counter;
    ck_assert_int_eq(pg_store_db_open(txn, "idmap.atx.counter", 0, &counter, e, sizeof e), 0);
    uint64_t last = 999998;
    ck_assert_int_eq(pg_store_put(txn, counter, "P", 1, &last, sizeof last, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    char out[32];
    ck_assert_int_eq(pg_idstore_resolve(m, NULL, A, K_PERSON, out, sizeof out, NULL, e, sizeof e),
                     PG_ESTORE);
    ck_assert_str_eq(e, "idmap: every ATX id P9999... is taken");
    ck_assert_str_eq(s_id(m, A, K_LOCATION, NULL), "L9999000001");
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_atx_unique)
{
    pg_idstore *m = s_map("atx", NULL);
    enum { N = 500 };
    static char uuids[N][37], ids[N][32];
    pg_store_txn *txn = pg_store_begin(s_store, 1, e, sizeof e);
    for (int i = 0; i < N; i++) {
        s_random_uuid(uuids[i]);
        ck_assert_int_eq(
            pg_idstore_resolve(m, txn, uuids[i], 1 + i % 9, ids[i], 32, NULL, e, sizeof e), 0);
    }
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(ids[i], ids[j]);
        char back[37];
        ck_assert_int_eq(pg_idstore_uuid_of(m, NULL, ids[i], back, e, sizeof e), 0);
        ck_assert_str_eq(back, uuids[i]);
    }
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_nx5_gid)
{
    pg_idstore *m = s_map("nx5", NULL);
    int created = 0;
    ck_assert_str_eq(s_id(m, B, K_NONE, &created), "19D2BFC84FF45442");
    ck_assert_int_eq(created, 1);
    ck_assert_str_eq(s_id(m, B, K_PERSON, NULL), "19D2BFC84FF45442");
    ck_assert_int_eq(pg_idstore_id_valid(m, 0, "19D2BFC84FF45442"), 1);
    ck_assert_int_eq(pg_idstore_id_valid(m, 0, "19d2bfc84ff45442"), 0);
    ck_assert_int_eq(pg_idstore_id_valid(m, 0, "19D2BFC84FF4544"), 0);
    pg_idstore_destroy(&m);
    pg_store_destroy(&s_store);
    s_open_store();
    m = s_map("niche", NULL);
    ck_assert_str_eq(s_id(m, B, K_NONE, NULL), "19D2BFC84FF45442");
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_nx5_gid_collision)
{
    pg_idstore *m = s_map("nx5", NULL);
    /* Another record holds B's first candidate, and then its second. */
    ck_assert_int_eq(pg_idstore_put(m, NULL, A, 0, "19D2BFC84FF45442", e, sizeof e), 0);
    ck_assert_str_eq(s_id(m, B, K_NONE, NULL), "BC13C99CD15D5DC1");
    ck_assert_int_eq(pg_idstore_put(m, NULL, C, 0, "7F3A9C2E4B1D0A66", e, sizeof e), 0);
    char u[37] = "7f3a9c2e-4b1d-0a66-0000-000000000002";
    ck_assert_int_eq(pg_idstore_put(m, NULL, "00000000-0000-4000-8000-000000000002", 0,
                                    "0000000000000002", e, sizeof e),
                     0);
    const char *gid = s_id(m, u, K_NONE, NULL);
    ck_assert_int_eq(pg_idstore_id_valid(m, 0, gid), 1);
    ck_assert_str_ne(gid, "7F3A9C2E4B1D0A66");
    ck_assert_str_ne(gid, "0000000000000002");
    char back[37];
    ck_assert_int_eq(pg_idstore_uuid_of(m, NULL, gid, back, e, sizeof e), 0);
    ck_assert_str_eq(back, u);
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_formats_side_by_side)
{
    pg_idstore *atx = s_map("atx", NULL);
    pg_idstore *nx5 = s_map("nx5", NULL);
    ck_assert_str_eq(s_id(atx, B, K_PERSON, NULL), "P9000000001");
    ck_assert_str_eq(s_id(nx5, B, K_PERSON, NULL), "19D2BFC84FF45442");
    char out[32];
    ck_assert_int_eq(pg_idstore_lookup(atx, NULL, B, out, sizeof out, e, sizeof e), 0);
    ck_assert_str_eq(out, "P9000000001");
    pg_idstore_destroy(&atx);
    pg_idstore_destroy(&nx5);
}
END_TEST

START_TEST(test_revisions)
{
    pg_idstore *m = s_map("nx5", NULL);
    uint64_t rev = 0;
    int first = -1;
    ck_assert_int_eq(pg_idstore_last_revision(m, NULL, A, &rev, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 0);
    ck_assert_int_eq(pg_idstore_next_revision(m, NULL, A, 7, &rev, &first, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 7); /* the partner's own revision while it increases */
    ck_assert_int_eq(first, 1);
    ck_assert_int_eq(pg_idstore_next_revision(m, NULL, A, 7, &rev, &first, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 8); /* the same version again (a link-only change): higher */
    ck_assert_int_eq(first, 0);
    ck_assert_int_eq(pg_idstore_next_revision(m, NULL, A, 3, &rev, NULL, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 9);
    ck_assert_int_eq(pg_idstore_next_revision(m, NULL, A, 20, &rev, NULL, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 20);
    ck_assert_int_eq(pg_idstore_next_revision(m, NULL, A, 0, &rev, NULL, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 21);
    /* a revision taken before the id: the id comes later, the revision stays */
    s_id(m, A, K_NONE, NULL);
    pg_idstore_destroy(&m);
    pg_store_destroy(&s_store);
    s_open_store();
    m = s_map("nx5", NULL);
    ck_assert_int_eq(pg_idstore_last_revision(m, NULL, A, &rev, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 21);
    ck_assert_int_eq(pg_idstore_next_revision(m, NULL, A, 21, &rev, NULL, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 22);
    /* revisions are per entity */
    ck_assert_int_eq(pg_idstore_next_revision(m, NULL, B, 1, &rev, &first, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 1);
    ck_assert_int_eq(first, 1);
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_created_means_first_send)
{
    pg_idstore *m = s_map("nx5", NULL);
    int created = -1;
    uint64_t rev;
    /* named as a link target only: the RMS has not been sent it */
    s_id(m, A, K_NONE, &created);
    ck_assert_int_eq(created, 1);
    s_id(m, A, K_NONE, &created);
    ck_assert_int_eq(created, 1);
    /* its first send: still an Add */
    ck_assert_int_eq(pg_idstore_next_revision(m, NULL, A, 1, &rev, NULL, e, sizeof e), 0);
    s_id(m, A, K_PERSON, &created);
    ck_assert_int_eq(created, 1);
    /* the second send is a Modify */
    ck_assert_int_eq(pg_idstore_next_revision(m, NULL, A, 2, &rev, NULL, e, sizeof e), 0);
    s_id(m, A, K_PERSON, &created);
    ck_assert_int_eq(created, 0);
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_put)
{
    pg_idstore *m = s_map("atx", NULL);
    ck_assert_int_eq(pg_idstore_put(m, NULL, A, K_PERSON, "P9000000001", e, sizeof e), 0);
    ck_assert_int_eq(pg_idstore_put(m, NULL, A, K_PERSON, "P9000000001", e, sizeof e), 0);
    /* an id in our own range, bound by hand, is skipped by the counter */
    ck_assert_str_eq(s_id(m, B, K_PERSON, NULL), "P9000000002");
    ck_assert_int_eq(pg_idstore_put(m, NULL, C, K_PERSON, "P9000000001", e, sizeof e), PG_EINVALID);
    ck_assert_str_eq(e, "idmap: P9000000001 is already the id of " A);
    ck_assert_int_eq(pg_idstore_put(m, NULL, A, K_PERSON, "P0000000005", e, sizeof e), PG_EINVALID);
    ck_assert_str_eq(e, "idmap: " A " already has id P9000000001");
    ck_assert_int_eq(pg_idstore_put(m, NULL, C, K_PERSON, "L0000000005", e, sizeof e), PG_EINVALID);
    ck_assert_str_eq(e, "idmap: 'L0000000005' is not an ATX id of this kind's letter");
    const char *bad[] = {"P000000005", "P00000000050", "X0000000005", "p0000000005", "P00000000a5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(pg_idstore_put(m, NULL, C, 0, bad[i], e, sizeof e), PG_EINVALID);
        ck_assert_ptr_nonnull(strstr(e, "is not an ATX id (type letter and 10 digits)"));
    }
    pg_idstore_destroy(&m);
    m = s_map("nx5", NULL);
    ck_assert_int_eq(pg_idstore_put(m, NULL, C, 0, "7f3a9c2e4b1d0a66", e, sizeof e), PG_EINVALID);
    ck_assert_str_eq(e, "idmap: '7f3a9c2e4b1d0a66' is not an NX5 GID (16 upper-case hex digits)");
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_bad_uuid)
{
    pg_idstore *m = s_map("atx", NULL);
    char out[32], u[37];
    uint64_t rev;
    const char *bad[] = {"0B7C7A52-6A83-4D71-9A55-5A3F7D0C2E10", "0b7c7a52-6a83-4d71-9a55",
                         "0b7c7a52x6a83-4d71-9a55-5a3f7d0c2e10", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(
            pg_idstore_resolve(m, NULL, bad[i], K_PERSON, out, sizeof out, NULL, e, sizeof e),
            PG_EINVALID);
        ck_assert_str_eq(e, "idmap: an entity id that is not a lower-case UUID");
        ck_assert_int_eq(pg_idstore_next_revision(m, NULL, bad[i], 1, &rev, NULL, e, sizeof e),
                         PG_EINVALID);
        ck_assert_str_eq(e, "idmap: an entity id that is not a lower-case UUID");
        ck_assert_int_eq(pg_idstore_put(m, NULL, bad[i], K_PERSON, "P9000000001", e, sizeof e),
                         PG_EINVALID);
        ck_assert_str_eq(e, "idmap: an entity id that is not a lower-case UUID");
    }
    ck_assert_int_eq(
        pg_idstore_resolve(m, NULL, NULL, K_PERSON, out, sizeof out, NULL, e, sizeof e),
        PG_EINVALID);
    ck_assert_int_eq(pg_idstore_uuid_of(m, NULL, "P9000000077", u, e, sizeof e), PG_ENOTFOUND);
    ck_assert_str_eq(e, "idmap: P9000000077 is not a partner record");
    ck_assert_int_eq(pg_idstore_uuid_of(m, NULL, "", u, e, sizeof e), PG_EINVALID);
    /* output too small */
    ck_assert_int_eq(pg_idstore_resolve(m, NULL, A, K_PERSON, out, 11, NULL, e, sizeof e),
                     PG_EUSAGE);
    ck_assert_str_eq(e, "idmap: output buffer too small");
    pg_idstore_destroy(&m);
}
END_TEST

START_TEST(test_transactions)
{
    pg_idstore *m = s_map("atx", NULL);
    pg_idmap *iface = pg_idstore_iface(m);
    char out[32];
    int created = 0;
    uint64_t rev;
    /* through the adapter interface, in the caller's transaction, aborted */
    pg_store_txn *txn = pg_store_begin(s_store, 1, e, sizeof e);
    pg_idstore_use(m, txn);
    ck_assert_int_eq(iface->resolve(iface, A, K_PERSON, "NICHE", "7F3A9C2E4B1D0A66", out,
                                    sizeof out, &created, e, sizeof e),
                     0);
    ck_assert_str_eq(out, "P9000000001");
    ck_assert_int_eq(pg_idstore_next_revision(m, txn, A, 5, &rev, NULL, e, sizeof e), 0);
    pg_store_abort(&txn);
    pg_idstore_use(m, NULL);
    ck_assert_int_eq(pg_idstore_lookup(m, NULL, A, out, sizeof out, e, sizeof e), PG_ENOTFOUND);
    ck_assert_int_eq(pg_idstore_last_revision(m, NULL, A, &rev, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 0);
    /* again, committed */
    txn = pg_store_begin(s_store, 1, e, sizeof e);
    pg_idstore_use(m, txn);
    ck_assert_int_eq(
        iface->resolve(iface, B, K_PERSON, NULL, NULL, out, sizeof out, &created, e, sizeof e), 0);
    ck_assert_str_eq(out, "P9000000001"); /* the aborted assignment left no trace */
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_idstore_use(m, NULL);
    /* unbound: the interface runs in its own transaction */
    ck_assert_int_eq(
        iface->resolve(iface, C, K_PERSON, NULL, NULL, out, sizeof out, NULL, e, sizeof e), 0);
    ck_assert_str_eq(out, "P9000000002");
    /* read-only lookups in a read transaction */
    txn = pg_store_begin(s_store, 0, e, sizeof e);
    ck_assert_int_eq(pg_idstore_lookup(m, txn, B, out, sizeof out, e, sizeof e), 0);
    ck_assert_str_eq(out, "P9000000001");
    pg_store_abort(&txn);
    pg_idstore_destroy(&m);
}
END_TEST

/* resolve a person through the adapter interface, in the transaction bound to m */
static const char *s_via(pg_idstore *m, const char *uuid, int *created)
{
    static char out[32];
    pg_idmap *iface = pg_idstore_iface(m);
    int rc =
        iface->resolve(iface, uuid, K_PERSON, NULL, NULL, out, sizeof out, created, e, sizeof e);
    ck_assert_msg(rc == 0, "%s", e);
    return out;
}

/* A run remembers what it read and wrote; a savepoint's rollback undoes ids, counters
 * and revisions drawn since it (compose's refused message), as an aborted child
 * transaction did, and what was kept before it stays. */
START_TEST(test_run_savepoint_rollback)
{
    pg_idstore *m = s_map("atx", NULL);
    pg_store_txn *txn = pg_store_begin(s_store, 1, e, sizeof e);
    pg_idstore_run_begin(m, txn);
    pg_idstore_use(m, txn);
    char out[32];
    int created = 0;
    uint64_t rev;
    /* kept: A sent once */
    pg_idstore_savepoint(m);
    ck_assert_int_eq(pg_idstore_next_revision(m, txn, A, 5, &rev, NULL, e, sizeof e), 0);
    ck_assert_str_eq(s_via(m, A, &created), "P9000000001");
    ck_assert_int_eq(created, 1);
    pg_idstore_release(m);
    /* undone: A sent again, B new (an id, the counter, a revision) */
    pg_idstore_savepoint(m);
    ck_assert_int_eq(pg_idstore_next_revision(m, txn, A, 5, &rev, NULL, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 6);
    s_via(m, A, &created);
    ck_assert_int_eq(created, 0);
    ck_assert_int_eq(pg_idstore_next_revision(m, txn, B, 3, &rev, NULL, e, sizeof e), 0);
    ck_assert_str_eq(s_via(m, B, &created), "P9000000002");
    ck_assert_int_eq(pg_idstore_rollback(m, e, sizeof e), 0);
    /* in the run, and as the store has it */
    for (int pass = 0; pass < 2; pass++) {
        ck_assert_int_eq(pg_idstore_last_revision(m, txn, A, &rev, e, sizeof e), 0);
        ck_assert_uint_eq(rev, 5);
        ck_assert_int_eq(pg_idstore_last_revision(m, txn, B, &rev, e, sizeof e), 0);
        ck_assert_uint_eq(rev, 0);
        ck_assert_int_eq(pg_idstore_lookup(m, txn, B, out, sizeof out, e, sizeof e), PG_ENOTFOUND);
        ck_assert_int_eq(pg_idstore_lookup(m, txn, A, out, sizeof out, e, sizeof e), 0);
        ck_assert_str_eq(out, "P9000000001");
        if (!pass)
            pg_idstore_run_end(m);
    }
    char owner[37];
    ck_assert_int_eq(pg_idstore_uuid_of(m, txn, "P9000000002", owner, e, sizeof e), PG_ENOTFOUND);
    /* the counter was undone too: C takes the id B had */
    pg_idstore_run_begin(m, txn);
    pg_idstore_savepoint(m);
    ck_assert_str_eq(s_via(m, C, &created), "P9000000002");
    ck_assert_int_eq(created, 1);
    pg_idstore_release(m);
    pg_idstore_run_end(m);
    pg_idstore_use(m, NULL);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    ck_assert_int_eq(pg_idstore_lookup(m, NULL, C, out, sizeof out, e, sizeof e), 0);
    ck_assert_str_eq(out, "P9000000002");
    ck_assert_int_eq(pg_idstore_last_revision(m, NULL, A, &rev, e, sizeof e), 0);
    ck_assert_uint_eq(rev, 5);
    pg_idstore_destroy(&m);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("idmap");
    TCase *tc = tcase_create("idmap");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_atx_ids_stable_across_reopen);
    tcase_add_test(tc, test_atx_shape_per_kind);
    tcase_add_test(tc, test_atx_kind_unknown);
    tcase_add_test(tc, test_atx_kind_mismatch);
    tcase_add_test(tc, test_atx_prefix);
    tcase_add_test(tc, test_atx_space_exhausted);
    tcase_add_test(tc, test_atx_unique);
    tcase_add_test(tc, test_nx5_gid);
    tcase_add_test(tc, test_nx5_gid_collision);
    tcase_add_test(tc, test_formats_side_by_side);
    tcase_add_test(tc, test_revisions);
    tcase_add_test(tc, test_created_means_first_send);
    tcase_add_test(tc, test_put);
    tcase_add_test(tc, test_bad_uuid);
    tcase_add_test(tc, test_transactions);
    tcase_add_test(tc, test_run_savepoint_rollback);
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
