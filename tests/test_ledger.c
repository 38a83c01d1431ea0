/* Unit tests for gateway/core/ledger: duplicates, stale revisions, link diffs, versions,
 * deletes, merges and fill-in, on changesets built by hand. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger.h"
#include "polegate/adapter.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "store.h"

#define K(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x
#define R(x) POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_##x
#define C(x) POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_##x
#define UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT
#define DELETE POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE

static char s_dir[256];
static char e[PG_ERRSTR_SIZE];
static pg_store *st;
static pg_ledger *lg;
static pg_changeset *in, *out;
static pg_arena *ids; /* ids and query results that outlive one message */
static pg_ledger_result res;

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void s_open(size_t map_size)
{
    st = pg_store_new(s_dir, map_size, e, sizeof e);
    ck_assert_msg(st != NULL, "%s", e);
    ck_assert_int_eq(pg_store_set_durable(st, 0), 0);
    lg = pg_ledger_new(st, e, sizeof e);
    ck_assert_msg(lg != NULL, "%s", e);
}

static void s_close(void)
{
    pg_ledger_destroy(&lg);
    ck_assert_ptr_null(lg);
    pg_ledger_destroy(&lg);
    pg_store_destroy(&st);
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-test-ledger-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    s_open(0);
    in = pg_changeset_new();
    out = pg_changeset_new();
    ids = pg_arena_new(0);
    ck_assert(in && out && ids);
}

static void s_teardown(void)
{
    s_close();
    pg_changeset_destroy(&in);
    pg_changeset_destroy(&out);
    pg_arena_destroy(&ids);
    nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------ builders */

/* The entity id of native record `native` ("P1"): the same for every message. */
static const char *s_eid(const char *native)
{
    char id[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_identity_entity("ESX", "ATHENA", "REC", native, id), 0);
    return pg_arena_strdup(ids, id);
}

static const char *s_lid(const char *from, int role, const char *to)
{
    char id[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_identity_link(s_eid(from), role, s_eid(to), id), 0);
    return pg_arena_strdup(ids, id);
}

/* Start a new input message (mid may be NULL) and an empty output. */
static void s_msg(const char *mid)
{
    pg_changeset_reset(in);
    pg_changeset_reset(out);
    in->message_id = mid ? pg_arena_strdup(in->arena, mid) : NULL;
    in->force = "ESX";
    in->system = "ATHENA";
}

static pg_marking *s_marking(int classification)
{
    pg_marking *m = PG_PB_NEW(in->arena, pg_marking, polegate__pole__v1__marking);
    m->classification = classification;
    m->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_P;
    return m;
}

static pg_timestamp *s_time(int64_t seconds)
{
    pg_timestamp *t = PG_PB_NEW(in->arena, pg_timestamp, google__protobuf__timestamp);
    t->seconds = seconds;
    return t;
}

/* An entity change as an adapter makes it: id, origin, kind, marking, modified_at. */
static pg_entity_update *s_entity(const char *native, int kind, uint64_t version, int op,
                                  int replaces_links)
{
    pg_entity_update *u = PG_PB_NEW(in->arena, pg_entity_update, polegate__pole__v1__entity_update);
    u->id = (char *)s_eid(native);
    u->operation = op;
    u->version = version;
    u->kind = kind;
    u->origin = PG_PB_NEW(in->arena, pg_origin, polegate__pole__v1__origin);
    u->origin->force = "ESX";
    u->origin->system = "ATHENA";
    u->origin->native_type = "REC";
    u->origin->native_id = pg_arena_strdup(in->arena, native);
    u->marking = s_marking(C(OFFICIAL));
    u->modified_at = s_time((int64_t)version * 1000);
    if (op == UPSERT && kind == K(PERSON))
        u->person = PG_PB_NEW(in->arena, Polegate__Pole__V1__Person, polegate__pole__v1__person);
    if (u->person)
        u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
    ck_assert_int_eq(pg_changeset_add_entity(in, u, replaces_links), 0);
    return u;
}

static pg_entity_ref *s_ref(const char *native, int kind)
{
    pg_entity_ref *r = PG_PB_NEW(in->arena, pg_entity_ref, polegate__pole__v1__entity_ref);
    r->id = (char *)s_eid(native);
    r->kind = kind;
    r->native_id = pg_arena_strdup(in->arena, native);
    return r;
}

static void s_merged_from(pg_entity_update *u, const char *native, int kind)
{
    pg_entity_ref **v = pg_arena_alloc(in->arena, (u->n_merged_from + 1) * sizeof(*v));
    if (u->n_merged_from)
        memcpy(v, u->merged_from, u->n_merged_from * sizeof(*v));
    v[u->n_merged_from++] = s_ref(native, kind);
    u->merged_from = v;
}

/* A link change as an NX5 adapter makes it: no marking or time, version 0, and end
 * kinds as given (often UNSPECIFIED). */
static pg_link_update *s_link(const char *from, int from_kind, int role, const char *to,
                              int to_kind, int op)
{
    pg_link_update *l = PG_PB_NEW(in->arena, pg_link_update, polegate__pole__v1__link_update);
    l->id = (char *)s_lid(from, role, to);
    l->operation = op;
    l->from = s_ref(from, from_kind);
    l->to = s_ref(to, to_kind);
    l->role = role;
    ck_assert_int_eq(pg_changeset_add_link(in, l), 0);
    return l;
}

static pg_date *s_date(int y, int m, int d)
{
    pg_date *dt = PG_PB_NEW(in->arena, pg_date, polegate__pole__v1__date);
    dt->year = y, dt->month = m, dt->day = d;
    return dt;
}

/* Apply `in` in a transaction of its own and commit. */
static int s_apply(void)
{
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    int rc = pg_ledger_apply(lg, txn, in, out, &res, e, sizeof e);
    if (rc == 0)
        ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    else
        pg_store_abort(&txn);
    return rc;
}

static void s_apply_ok(void)
{
    int rc = s_apply();
    ck_assert_msg(rc == 0, "apply: %d %s", rc, e);
    ck_assert_uint_eq(res.published, out->count);
}

/* ------------------------------------------------------------ output checks */

static const pg_entity_update *s_out_entity(size_t i, const char *native, int op, uint64_t version)
{
    ck_assert_uint_lt(i, out->count);
    ck_assert_int_eq(out->changes[i].type, PG_CHANGE_ENTITY);
    ck_assert_int_eq(out->changes[i].replaces_links, 0);
    const pg_entity_update *u = out->changes[i].entity;
    ck_assert_str_eq(u->id, s_eid(native));
    ck_assert_int_eq(u->operation, op);
    ck_assert_uint_eq(u->version, version);
    return u;
}

static const pg_link_update *s_out_link(size_t i, const char *lid, int op, uint64_t version)
{
    ck_assert_uint_lt(i, out->count);
    ck_assert_int_eq(out->changes[i].type, PG_CHANGE_LINK);
    const pg_link_update *l = out->changes[i].link;
    ck_assert_str_eq(l->id, lid);
    ck_assert_int_eq(l->operation, op);
    ck_assert_uint_eq(l->version, version);
    return l;
}

/* The output link with id lid, wherever it is, checked for op and version. */
static const pg_link_update *s_find_link(const char *lid, int op, uint64_t version)
{
    for (size_t i = 0; i < out->count; i++)
        if (out->changes[i].type == PG_CHANGE_LINK && strcmp(out->changes[i].link->id, lid) == 0 &&
            (int)out->changes[i].link->operation == op)
            return s_out_link(i, lid, op, version);
    ck_abort_msg("link %s op %d not in output", lid, op);
    return NULL;
}

static size_t s_links_from(const char *native)
{
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_link_update **v;
    size_t n;
    ck_assert_int_eq(pg_ledger_links_from(lg, txn, s_eid(native), ids, &v, &n, e, sizeof e), 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(v[i]->from->id, s_eid(native));
        ck_assert_int_eq(v[i]->operation, UPSERT);
    }
    pg_store_abort(&txn);
    return n;
}

static size_t s_links_to(const char *native)
{
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_link_update **v;
    size_t n;
    ck_assert_int_eq(pg_ledger_links_to(lg, txn, s_eid(native), ids, &v, &n, e, sizeof e), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(v[i]->to->id, s_eid(native));
    pg_store_abort(&txn);
    return n;
}

/* The stored entity: its version, or 0 when never seen; *deleted. */
static uint64_t s_stored(const char *native, int *deleted)
{
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_entity_update *u = NULL;
    int rc = pg_ledger_get_entity(lg, txn, s_eid(native), ids, &u, deleted, e, sizeof e);
    pg_store_abort(&txn);
    if (rc == PG_ENOTFOUND)
        return 0;
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(u->operation, *deleted ? DELETE : UPSERT);
    return u->version;
}

/* P1 (person, revision 7) with its links to T1 (USES) and V1 (KEEPER), as ATX sends it. */
static pg_entity_update *s_person_p1(const char *mid, uint64_t version)
{
    s_msg(mid);
    pg_entity_update *p = s_entity("P1", K(PERSON), version, UPSERT, 1);
    pg_link_update *l = s_link("P1", K(PERSON), R(USES), "T1", K(TELEPHONE), UPSERT);
    l->version = 42; /* whatever the adapter wrote: the ledger numbers links */
    s_link("P1", K(PERSON), R(KEEPER), "V1", K(VEHICLE), UPSERT);
    return p;
}

/* ------------------------------------------------------------ tests */

START_TEST(test_first_upsert_emits_entity_then_links)
{
    pg_entity_update *p = s_person_p1("m1", 7);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 3);
    ck_assert_uint_eq(res.stale + res.unchanged + (size_t)res.duplicate, 0);
    ck_assert_ptr_eq(s_out_entity(0, "P1", UPSERT, 7), p); /* the input's message */
    const pg_link_update *l = s_out_link(1, s_lid("P1", R(USES), "T1"), UPSERT, 1);
    s_out_link(2, s_lid("P1", R(KEEPER), "V1"), UPSERT, 1);
    /* marking and time of the record that carried the link */
    ck_assert_ptr_nonnull(l->marking);
    ck_assert_int_eq(l->marking->classification, C(OFFICIAL));
    ck_assert_int_eq(l->modified_at->seconds, 7000);
    /* the input is not modified */
    ck_assert_uint_eq(in->changes[1].link->version, 42);
    ck_assert_ptr_null(in->changes[1].link->marking);
    ck_assert_str_eq(out->message_id, "m1");
    ck_assert_str_eq(out->force, "ESX");

    ck_assert_uint_eq(s_links_from("P1"), 2);
    ck_assert_uint_eq(s_links_to("T1"), 1);
    ck_assert_uint_eq(s_links_to("P1"), 0);
    int deleted = -1;
    ck_assert_uint_eq(s_stored("P1", &deleted), 7);
    ck_assert_int_eq(deleted, 0);
    ck_assert_uint_eq(s_stored("T1", &deleted), 0);

    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_link_update *sl;
    ck_assert_int_eq(
        pg_ledger_get_link(lg, txn, s_lid("P1", R(USES), "T1"), ids, &sl, &deleted, e, sizeof e),
        0);
    ck_assert_uint_eq(sl->version, 1);
    ck_assert_int_eq(deleted, 0);
    ck_assert_int_eq(pg_ledger_get_link(lg, txn, "no-such-link", ids, &sl, NULL, e, sizeof e),
                     PG_ENOTFOUND);
    pg_store_abort(&txn);
}
END_TEST

START_TEST(test_stale_entity_and_its_links_dropped)
{
    s_person_p1("m1", 7);
    s_apply_ok();
    /* same revision, other links: stale, links too */
    s_msg("m2");
    s_entity("P1", K(PERSON), 7, UPSERT, 1);
    s_link("P1", K(PERSON), R(OWNER), "I1", K(ITEM), UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 0);
    ck_assert_uint_eq(res.stale, 2);
    ck_assert_int_eq(res.duplicate, 0);
    ck_assert_uint_eq(s_links_from("P1"), 2);
    /* an older DELETE is stale too and deletes nothing */
    s_msg("m3");
    s_entity("P1", K(PERSON), 6, DELETE, 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 0);
    ck_assert_uint_eq(res.stale, 1);
    int deleted;
    ck_assert_uint_eq(s_stored("P1", &deleted), 7);
    ck_assert_int_eq(deleted, 0);
    ck_assert_uint_eq(s_links_from("P1"), 2);
}
END_TEST

START_TEST(test_stale_after_restart)
{
    s_person_p1("m1", 7);
    s_apply_ok();
    s_close();
    s_open(0);
    s_msg("m2");
    s_entity("P1", K(PERSON), 5, UPSERT, 0);
    s_apply_ok();
    ck_assert_uint_eq(res.stale, 1);
    ck_assert_uint_eq(out->count, 0);
    /* the message ids survive the restart too */
    s_person_p1("m1", 7);
    s_apply_ok();
    ck_assert_int_eq(res.duplicate, 1);
    s_msg("m3");
    s_entity("P1", K(PERSON), 8, UPSERT, 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
    s_out_entity(0, "P1", UPSERT, 8);
}
END_TEST

START_TEST(test_duplicate_message)
{
    s_person_p1("m1", 7);
    s_apply_ok();
    /* a redelivery does nothing */
    s_person_p1("m1", 7);
    s_apply_ok();
    ck_assert_int_eq(res.duplicate, 1);
    ck_assert_uint_eq(out->count + res.stale + res.unchanged, 0);
    /* the same id on a message with other changes was a duplicate too, dropped unseen
     * (found by attack): it is refused, and applies nothing */
    s_person_p1("m1", 8);
    ck_assert_int_eq(s_apply(), PG_EINVALID);
    ck_assert_str_eq(e, "message id m1 was taken before for a message with other changes: give "
                        "each message an id of its own (this one is not applied)");
    int deleted;
    ck_assert_uint_eq(s_stored("P1", &deleted), 7);
    /* without a message id there is no duplicate check */
    s_person_p1(NULL, 7);
    s_apply_ok();
    ck_assert_int_eq(res.duplicate, 0);
    ck_assert_uint_eq(res.stale, 3);
    ck_assert_ptr_null(out->message_id);
}
END_TEST

START_TEST(test_replace_links_diff)
{
    s_msg("m1");
    s_entity("P1", K(PERSON), 1, UPSERT, 1);
    s_link("P1", K(PERSON), R(HOME_ADDRESS), "L1", K(LOCATION), UPSERT)->valid_from =
        s_date(2020, 1, 1);
    s_link("P1", K(PERSON), R(USES), "T1", K(TELEPHONE), UPSERT);
    s_link("P1", K(PERSON), R(KEEPER), "V1", K(VEHICLE), UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 4);

    /* L1: validity changed; T1: same; V1: gone; I1: new */
    s_msg("m2");
    s_entity("P1", K(PERSON), 2, UPSERT, 1);
    pg_link_update *home = s_link("P1", K(PERSON), R(HOME_ADDRESS), "L1", K(LOCATION), UPSERT);
    home->valid_from = s_date(2020, 1, 1);
    home->valid_to = s_date(2025, 12, 31);
    s_link("P1", K(PERSON), R(USES), "T1", K(TELEPHONE), UPSERT);
    s_link("P1", K(PERSON), R(OWNER), "I1", K(ITEM), UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 4);
    ck_assert_uint_eq(res.unchanged, 1);
    s_out_entity(0, "P1", UPSERT, 2);
    const pg_link_update *l = s_out_link(1, s_lid("P1", R(HOME_ADDRESS), "L1"), UPSERT, 2);
    ck_assert_int_eq(l->valid_to->year, 2025);
    s_out_link(2, s_lid("P1", R(OWNER), "I1"), UPSERT, 1);
    l = s_out_link(3, s_lid("P1", R(KEEPER), "V1"), DELETE, 2);
    /* a derived delete carries the stored link and the time of the record that ended it */
    ck_assert_int_eq(l->to->kind, K(VEHICLE));
    ck_assert_int_eq(l->modified_at->seconds, 2000);
    ck_assert_uint_eq(s_links_from("P1"), 3);

    /* no links at all: every link goes */
    s_msg("m3");
    s_entity("P1", K(PERSON), 3, UPSERT, 1);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 4);
    s_find_link(s_lid("P1", R(HOME_ADDRESS), "L1"), DELETE, 3);
    s_find_link(s_lid("P1", R(USES), "T1"), DELETE, 2);
    s_find_link(s_lid("P1", R(OWNER), "I1"), DELETE, 2);
    ck_assert_uint_eq(s_links_from("P1"), 0);
    ck_assert_uint_eq(s_links_to("L1"), 0);

    /* links from the entity that were never in its list are kept by others' lists:
     * an inbound link is not touched by the entity's own list */
    s_msg("m4");
    s_entity("O1", K(OCCURRENCE), 1, UPSERT, 1);
    s_link("O1", K(OCCURRENCE), R(SUSPECT), "P1", K(PERSON), UPSERT);
    s_apply_ok();
    s_msg("m5");
    s_entity("P1", K(PERSON), 4, UPSERT, 1);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
    ck_assert_uint_eq(s_links_to("P1"), 1);
}
END_TEST

START_TEST(test_marking_change_reemits_links)
{
    s_person_p1("m1", 1);
    s_apply_ok();
    pg_entity_update *p = s_person_p1("m2", 2);
    p->marking = s_marking(C(SECRET));
    s_apply_ok();
    ck_assert_uint_eq(out->count, 3);
    const pg_link_update *l = s_out_link(1, s_lid("P1", R(USES), "T1"), UPSERT, 2);
    ck_assert_int_eq(l->marking->classification, C(SECRET));
    /* a new revision with nothing changed in the links re-emits none */
    s_person_p1("m3", 3)->marking = s_marking(C(SECRET));
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
    ck_assert_uint_eq(res.unchanged, 2);
}
END_TEST

START_TEST(test_link_version_sequence)
{
    const char *lid = s_lid("P1", R(ASSOCIATE), "P2");
    struct {
        int op;
        int valid_year; /* 0: open */
        uint64_t want;  /* 0: not emitted */
    } steps[] = {{UPSERT, 0, 1}, {UPSERT, 0, 0},    {UPSERT, 2021, 2}, {DELETE, 0, 3},
                 {DELETE, 0, 0}, {UPSERT, 2021, 4}, {UPSERT, 2022, 5}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char mid[16];
        snprintf(mid, sizeof mid, "m%zu", i);
        s_msg(mid);
        pg_link_update *l = s_link("P1", 0, R(ASSOCIATE), "P2", 0, steps[i].op);
        l->version = 99;
        if (steps[i].valid_year)
            l->valid_from = s_date(steps[i].valid_year, 0, 0);
        s_apply_ok();
        if (steps[i].want) {
            ck_assert_msg(out->count == 1, "step %zu", i);
            s_out_link(0, lid, steps[i].op, steps[i].want);
        } else {
            ck_assert_msg(out->count == 0, "step %zu", i);
            ck_assert_uint_eq(res.unchanged, 1);
        }
    }
}
END_TEST

START_TEST(test_nx5_delete_of_unknown_link)
{
    s_msg("m1");
    s_link("P1", 0, R(HOME_ADDRESS), "L1", 0, DELETE);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
    const pg_link_update *l = s_out_link(0, s_lid("P1", R(HOME_ADDRESS), "L1"), DELETE, 1);
    ck_assert_str_eq(l->from->id, s_eid("P1"));
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_link_update *sl;
    int deleted = 0;
    ck_assert_int_eq(pg_ledger_get_link(lg, txn, l->id, ids, &sl, &deleted, e, sizeof e), 0);
    ck_assert_int_eq(deleted, 1);
    ck_assert_uint_eq(sl->version, 1);
    pg_store_abort(&txn);
    ck_assert_uint_eq(s_links_from("P1"), 0);
    s_msg("m2");
    s_link("P1", 0, R(HOME_ADDRESS), "L1", 0, UPSERT);
    s_apply_ok();
    s_out_link(0, s_lid("P1", R(HOME_ADDRESS), "L1"), UPSERT, 2);
    ck_assert_uint_eq(s_links_from("P1"), 1);
}
END_TEST

START_TEST(test_entity_delete_cascades)
{
    s_msg("m1");
    s_entity("P1", K(PERSON), 7, UPSERT, 1);
    s_link("P1", K(PERSON), R(HOME_ADDRESS), "L1", K(LOCATION), UPSERT);
    s_apply_ok();
    s_msg("m2");
    s_entity("O1", K(OCCURRENCE), 1, UPSERT, 1);
    s_link("O1", K(OCCURRENCE), R(SUSPECT), "P1", K(PERSON), UPSERT);
    s_link("O1", K(OCCURRENCE), R(OCCURRED_AT), "L1", K(LOCATION), UPSERT);
    s_apply_ok();

    /* a DELETE as NX5 gives it: no kind, marking or origin */
    s_msg("m3");
    pg_entity_update *d = s_entity("P1", 0, 8, DELETE, 0);
    d->marking = NULL;
    d->origin = NULL;
    s_apply_ok();
    ck_assert_uint_eq(out->count, 3);
    const pg_entity_update *u = s_out_entity(0, "P1", DELETE, 8);
    ck_assert_int_eq(u->kind, K(PERSON));
    ck_assert_int_eq(u->marking->classification, C(OFFICIAL));
    ck_assert_str_eq(u->origin->native_id, "P1");
    ck_assert_ptr_null(d->marking); /* input untouched */
    s_find_link(s_lid("P1", R(HOME_ADDRESS), "L1"), DELETE, 2);
    s_find_link(s_lid("O1", R(SUSPECT), "P1"), DELETE, 2);
    ck_assert_uint_eq(s_links_from("O1"), 1); /* OCCURRED_AT stays */
    ck_assert_uint_eq(s_links_to("P1"), 0);
    int deleted;
    ck_assert_uint_eq(s_stored("P1", &deleted), 8);
    ck_assert_int_eq(deleted, 1);

    /* the deleted entity keeps its version: an older upsert cannot resurrect it */
    s_msg("m4");
    s_entity("P1", K(PERSON), 8, UPSERT, 0);
    s_apply_ok();
    ck_assert_uint_eq(res.stale, 1);
    ck_assert_uint_eq(out->count, 0);
    /* a newer one re-creates it */
    s_msg("m5");
    s_entity("P1", K(PERSON), 9, UPSERT, 0);
    s_apply_ok();
    s_out_entity(0, "P1", UPSERT, 9);
    ck_assert_uint_eq(s_stored("P1", &deleted), 9);
    ck_assert_int_eq(deleted, 0);
}
END_TEST

/* An ATX DELETE has no retention; NX5 needs it on a Delete: filled from the stored
 * record, for a plain delete and for a merged-away record alike. */
START_TEST(test_delete_fills_retention)
{
    s_msg("m1");
    pg_entity_update *p = s_entity("P1", K(PERSON), 1, UPSERT, 1);
    p->retention = PG_PB_NEW(in->arena, pg_retention, polegate__pole__v1__retention);
    p->retention->mopi_group = 2;
    p->retention->review_date = s_date(2031, 5, 6);
    pg_entity_update *q = s_entity("P2", K(PERSON), 4, UPSERT, 1);
    q->retention = PG_PB_NEW(in->arena, pg_retention, polegate__pole__v1__retention);
    q->retention->mopi_group = 3;
    s_apply_ok();

    s_msg("m2");
    pg_entity_update *d = s_entity("P1", K(PERSON), 2, DELETE, 0);
    ck_assert_ptr_null(d->retention);
    s_apply_ok();
    const pg_entity_update *u = s_out_entity(0, "P1", DELETE, 2);
    ck_assert_ptr_nonnull(u->retention);
    ck_assert_int_eq(u->retention->mopi_group, 2);
    ck_assert_int_eq(u->retention->review_date->year, 2031);
    ck_assert_ptr_null(d->retention); /* input untouched */

    /* a DELETE that states its own retention keeps it */
    s_msg("m3");
    s_entity("P3", K(PERSON), 1, UPSERT, 1)->retention =
        PG_PB_NEW(in->arena, pg_retention, polegate__pole__v1__retention);
    s_apply_ok();
    s_msg("m4");
    d = s_entity("P3", K(PERSON), 2, DELETE, 0);
    d->retention = PG_PB_NEW(in->arena, pg_retention, polegate__pole__v1__retention);
    d->retention->mopi_group = 4;
    s_apply_ok();
    ck_assert_int_eq(s_out_entity(0, "P3", DELETE, 2)->retention->mopi_group, 4);

    /* merged away: the derived DELETE carries P2's retention */
    s_msg("m5");
    s_merged_from(s_entity("P1", K(PERSON), 3, UPSERT, 0), "P2", K(PERSON));
    s_apply_ok();
    u = s_out_entity(1, "P2", DELETE, 5);
    ck_assert_ptr_nonnull(u->retention);
    ck_assert_int_eq(u->retention->mopi_group, 3);
}
END_TEST

/* Issue 11: a DELETE takes what the gateway knows of the record, so that no
 * destination refuses it for want of a field: the stored kind (an NX5 Property Delete
 * says item, the record was a weapon), the caveat a handling-C marking needs (an NX5
 * Delete has no children), and a time (a withdrawal has none). */
START_TEST(test_delete_takes_kind_caveat_and_time)
{
    s_msg("m1");
    pg_entity_update *w = s_entity("W1", K(WEAPON), 3, UPSERT, 0);
    w->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    w->marking->caveat = "Not to be disclosed to the subject.";
    s_apply_ok();

    s_msg("m2");
    pg_entity_update *d = s_entity("W1", K(ITEM), 4, DELETE, 0);
    d->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    d->modified_at = NULL;
    s_apply_ok();
    const pg_entity_update *u = s_out_entity(0, "W1", DELETE, 4);
    ck_assert_int_eq(u->kind, K(WEAPON));
    ck_assert_str_eq(u->marking->caveat, "Not to be disclosed to the subject.");
    ck_assert_int_eq(u->marking->handling, POLEGATE__POLE__V1__HANDLING__HANDLING_C);
    ck_assert_ptr_nonnull(u->modified_at);
    ck_assert_int_eq(u->modified_at->seconds, 3000);
    ck_assert(!d->marking->caveat || !*d->marking->caveat); /* input untouched */
    ck_assert_ptr_null(d->modified_at);

    /* a DELETE that states its own caveat and time keeps them */
    s_msg("m3");
    s_entity("W2", K(WEAPON), 1, UPSERT, 0)->marking->caveat = "old";
    s_apply_ok();
    s_msg("m4");
    d = s_entity("W2", K(WEAPON), 2, DELETE, 0);
    d->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    d->marking->caveat = "new";
    s_apply_ok();
    u = s_out_entity(0, "W2", DELETE, 2);
    ck_assert_str_eq(u->marking->caveat, "new");
    ck_assert_int_eq(u->modified_at->seconds, 2000);
}
END_TEST

/* Issue 11: an NX5 record's links carry the marking it had when they were stated;
 * when its marking changes they go again with the new one, so a link stated while
 * its record was handling C is shared once the record is P (and one stated at
 * OFFICIAL is withdrawn when it becomes SECRET). */
START_TEST(test_nx5_links_follow_their_record_marking)
{
    s_msg(NULL);
    pg_entity_update *n = s_entity("N1", K(INTELLIGENCE), 1, UPSERT, 0);
    n->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    n->marking->caveat = "conditions";
    s_link("N1", 0, R(SUBJECT), "P1", 0, UPSERT);
    s_apply_ok();
    const pg_link_update *l = s_find_link(s_lid("N1", R(SUBJECT), "P1"), UPSERT, 1);
    ck_assert_int_eq(l->marking->handling, POLEGATE__POLE__V1__HANDLING__HANDLING_C);

    s_msg(NULL);
    s_entity("N1", K(INTELLIGENCE), 2, UPSERT, 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 2);
    l = s_find_link(s_lid("N1", R(SUBJECT), "P1"), UPSERT, 2);
    ck_assert_int_eq(l->marking->handling, POLEGATE__POLE__V1__HANDLING__HANDLING_P);

    /* the same marking again: nothing but the record */
    s_msg(NULL);
    s_entity("N1", K(INTELLIGENCE), 3, UPSERT, 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);

    s_msg(NULL);
    s_entity("N1", K(INTELLIGENCE), 4, UPSERT, 0)->marking->classification = C(SECRET);
    s_apply_ok();
    l = s_find_link(s_lid("N1", R(SUBJECT), "P1"), UPSERT, 3);
    ck_assert_int_eq(l->marking->classification, C(SECRET));

    /* merged into an OFFICIAL report, the SECRET one's link is the survivor's now */
    s_msg(NULL);
    s_merged_from(s_entity("N2", K(INTELLIGENCE), 1, UPSERT, 0), "N1", K(INTELLIGENCE));
    s_apply_ok();
    l = s_find_link(s_lid("N2", R(SUBJECT), "P1"), UPSERT, 1);
    ck_assert_int_eq(l->marking->classification, C(OFFICIAL));
}
END_TEST

/* Issue 11: a partner's ledger published a merge's consequences on their own keys; a
 * ledger of what partners published applies them as they come and does not derive
 * them again (it would re-create links the partner's ledger chose not to). */
START_TEST(test_explicit_merges)
{
    pg_ledger_set_explicit(lg, 1);
    s_msg(NULL);
    s_entity("P1", K(PERSON), 1, UPSERT, 0);
    s_entity("P2", K(PERSON), 1, UPSERT, 0);
    s_link("P2", K(PERSON), R(HOME_ADDRESS), "L1", K(LOCATION), UPSERT);
    s_apply_ok();
    s_msg(NULL);
    s_merged_from(s_entity("P1", K(PERSON), 2, UPSERT, 0), "P2", K(PERSON));
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
    ck_assert_uint_eq(out->changes[0].entity->n_merged_from, 1);
    int deleted;
    ck_assert_uint_eq(s_stored("P2", &deleted), 1);
    ck_assert_int_eq(deleted, 0);
    ck_assert_uint_eq(s_links_from("P2"), 1);
    ck_assert_uint_eq(s_links_from("P1"), 0);

    /* a DELETE takes no link with it (each link's DELETE comes on its own key); the
     * record re-created takes its live links back to whoever dropped them with it */
    s_msg(NULL);
    s_entity("P2", K(PERSON), 2, DELETE, 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
    ck_assert_uint_eq(s_links_from("P2"), 1);
    s_msg(NULL);
    s_entity("P2", K(PERSON), 3, UPSERT, 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 2);
    s_find_link(s_lid("P2", R(HOME_ADDRESS), "L1"), UPSERT, 2);
}
END_TEST

/* A partner ledger takes a DELETE at the version it holds (a withdrawal); a plain one
 * drops it as stale, and neither takes a repeated DELETE. */
START_TEST(test_delete_wins_ties)
{
    for (int on = 0; on < 2; on++) {
        char native[8];
        snprintf(native, sizeof native, "P%d", 50 + on);
        pg_ledger_set_delete_wins_ties(lg, on);
        s_msg(NULL);
        s_entity(native, K(PERSON), 7, UPSERT, 0);
        s_link(native, K(PERSON), R(HOME_ADDRESS), "L1", K(LOCATION), UPSERT);
        s_apply_ok();
        s_msg(NULL);
        pg_entity_update *d = s_entity(native, 0, 7, DELETE, 0);
        d->marking = NULL;
        s_apply_ok();
        if (!on) {
            ck_assert_uint_eq(res.stale, 1);
            ck_assert_uint_eq(out->count, 0);
            continue;
        }
        ck_assert_uint_eq(res.stale, 0);
        ck_assert_uint_eq(out->count, 2);
        ck_assert_int_eq(s_out_entity(0, native, DELETE, 7)->marking->classification, C(OFFICIAL));
        s_find_link(s_lid(native, R(HOME_ADDRESS), "L1"), DELETE, 2);
        /* the same DELETE again changes nothing */
        s_msg(NULL);
        s_entity(native, 0, 7, DELETE, 0);
        s_apply_ok();
        ck_assert_uint_eq(res.stale, 1);
        ck_assert_uint_eq(out->count, 0);
    }
}
END_TEST

/* NX5 merge: links from and to the merged-away record move to the survivor. */
START_TEST(test_merge_repoints_both_directions)
{
    s_msg("m1");
    s_entity("P1", K(PERSON), 1, UPSERT, 0);
    s_entity("P2", K(PERSON), 3, UPSERT, 0);
    s_entity("L1", K(LOCATION), 1, UPSERT, 0);
    s_entity("O1", K(OCCURRENCE), 1, UPSERT, 0);
    s_link("P2", 0, R(HOME_ADDRESS), "L1", 0, UPSERT);
    s_link("O1", 0, R(SUSPECT), "P2", 0, UPSERT);
    s_link("P2", 0, R(ASSOCIATE), "P1", 0, UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 7);

    s_msg("m2");
    pg_entity_update *p1 = s_entity("P1", K(PERSON), 2, UPSERT, 0);
    s_merged_from(p1, "P2", K(PERSON));
    s_apply_ok();
    ck_assert_uint_eq(out->count, 7);
    s_out_entity(0, "P1", UPSERT, 2);
    const pg_entity_update *gone = s_out_entity(1, "P2", DELETE, 4);
    ck_assert_str_eq(gone->origin->native_id, "P2");
    ck_assert_int_eq(gone->kind, K(PERSON));
    s_find_link(s_lid("P2", R(HOME_ADDRESS), "L1"), DELETE, 2);
    const pg_link_update *l = s_find_link(s_lid("P1", R(HOME_ADDRESS), "L1"), UPSERT, 1);
    ck_assert_str_eq(l->from->id, s_eid("P1"));
    ck_assert_str_eq(l->from->native_id, "P1");
    ck_assert_int_eq(l->from->kind, K(PERSON));
    ck_assert_int_eq(l->to->kind, K(LOCATION));
    s_find_link(s_lid("O1", R(SUSPECT), "P2"), DELETE, 2);
    l = s_find_link(s_lid("O1", R(SUSPECT), "P1"), UPSERT, 1);
    ck_assert_str_eq(l->to->id, s_eid("P1"));
    ck_assert_str_eq(l->from->id, s_eid("O1"));
    /* P2 ASSOCIATE P1 would become P1 ASSOCIATE P1: deleted, not moved */
    s_find_link(s_lid("P2", R(ASSOCIATE), "P1"), DELETE, 2);
    ck_assert_uint_eq(s_links_from("P1"), 1);
    ck_assert_uint_eq(s_links_to("P1"), 1);
    ck_assert_uint_eq(s_links_from("P2") + s_links_to("P2"), 0);
    ck_assert_uint_eq(s_links_to("L1"), 1);
    int deleted;
    ck_assert_uint_eq(s_stored("P2", &deleted), 4);
    ck_assert_int_eq(deleted, 1);

    /* merging an entity already gone again emits only the survivor */
    s_msg("m3");
    s_merged_from(s_entity("P1", K(PERSON), 3, UPSERT, 0), "P2", K(PERSON));
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
}
END_TEST

START_TEST(test_merge_of_unknown_entity)
{
    s_msg("m1");
    pg_entity_update *p1 = s_entity("P1", K(PERSON), 1, UPSERT, 0);
    p1->marking = s_marking(C(OFFICIAL_SENSITIVE));
    s_merged_from(p1, "P9", 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 2);
    const pg_entity_update *gone = s_out_entity(1, "P9", DELETE, 1);
    ck_assert_str_eq(gone->origin->native_id, "P9");
    ck_assert_str_eq(gone->origin->force, "ESX");
    ck_assert_str_eq(gone->origin->native_type, "REC");
    ck_assert_int_eq(gone->kind, K(PERSON)); /* the survivor's: merges are same-kind */
    ck_assert_int_eq(gone->marking->classification, C(OFFICIAL_SENSITIVE));
    ck_assert_str_eq(p1->origin->native_id, "P1"); /* the survivor's origin untouched */
    /* a late revision 1 of the merged-away record is stale; a revision 2 is refused: the
     * record no longer exists, and re-creating it would leave at every partner what the
     * source merged away */
    s_msg("m2");
    s_entity("P9", K(PERSON), 1, UPSERT, 0);
    s_apply_ok();
    ck_assert_uint_eq(res.stale, 1);
    s_msg("m3");
    s_entity("P9", K(PERSON), 2, UPSERT, 0);
    ck_assert_int_eq(s_apply(), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "changes[0].entity"));
    ck_assert_ptr_nonnull(strstr(e, "(P9) was merged into another"));
    ck_assert_uint_eq(out->count, 0);
}
END_TEST

/* A revision of a merged-away record that the source sent before the merge but that
 * arrives after it, with or without other records in its message, is refused whole,
 * and nothing of that message is applied; a later DELETE of it changes nothing. */
START_TEST(test_merged_away_stays_away)
{
    s_msg("m1");
    s_entity("P1", K(PERSON), 1, UPSERT, 0);
    s_entity("P2", K(PERSON), 4, UPSERT, 0);
    s_apply_ok();
    s_msg("m2");
    s_merged_from(s_entity("P1", K(PERSON), 2, UPSERT, 0), "P2", K(PERSON));
    s_apply_ok();
    s_out_entity(1, "P2", DELETE, 5);
    s_msg("m3");
    s_entity("P3", K(PERSON), 1, UPSERT, 0);
    s_entity("P2", K(PERSON), 6, UPSERT, 0);
    ck_assert_int_eq(s_apply(), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "changes[1].entity"));
    ck_assert_uint_eq(out->count, 0);
    int deleted;
    ck_assert_uint_eq(s_stored("P3", &deleted), 0); /* the message applied nothing */
    s_msg("m4");
    s_entity("P2", K(PERSON), 9, DELETE, 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 0);
    ck_assert_uint_eq(res.unchanged, 1);
    s_msg("m5");
    s_entity("P2", K(PERSON), 10, UPSERT, 0);
    ck_assert_int_eq(s_apply(), PG_EINVALID);
}
END_TEST

/* A link that names a merged-away record after its merge (a late message) belongs to
 * the survivor, as the links the merge moved do (NX5: "its From or To is the
 * survivor"), through later merges of the survivor too; one that would link the
 * survivor to itself is dropped. An ATX record whose complete list still names the
 * merged-away record keeps the moved link (found by attack). */
START_TEST(test_late_link_to_merged_away_moves)
{
    s_msg("m1");
    s_entity("P1", K(PERSON), 1, UPSERT, 0);
    s_entity("P2", K(PERSON), 1, UPSERT, 0);
    s_entity("L1", K(LOCATION), 1, UPSERT, 0);
    s_apply_ok();
    s_msg("m2");
    s_merged_from(s_entity("P1", K(PERSON), 2, UPSERT, 0), "P2", K(PERSON));
    s_apply_ok();
    /* NX5: single links to and from P2 */
    s_msg(NULL);
    s_link("P2", 0, R(HOME_ADDRESS), "L1", 0, UPSERT);
    s_link("P3", 0, R(ASSOCIATE), "P2", 0, UPSERT);
    s_link("P1", 0, R(ASSOCIATE), "P2", 0, UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 2);
    const pg_link_update *l = s_out_link(0, s_lid("P1", R(HOME_ADDRESS), "L1"), UPSERT, 1);
    ck_assert_str_eq(l->from->id, s_eid("P1"));
    ck_assert_str_eq(l->from->native_id, "P1");
    ck_assert_int_eq(l->from->kind, K(PERSON));
    ck_assert_int_eq(l->marking->classification, C(OFFICIAL)); /* the survivor's (rule 8) */
    s_out_link(1, s_lid("P3", R(ASSOCIATE), "P1"), UPSERT, 1);
    ck_assert_uint_eq(res.unchanged, 1); /* P1 -> P2 would be P1 -> P1 */
    ck_assert_uint_eq(s_links_from("P2") + s_links_to("P2"), 0);
    /* a late delete of a link of P2 ends the moved link */
    s_msg(NULL);
    s_link("P2", 0, R(HOME_ADDRESS), "L1", 0, DELETE);
    s_apply_ok();
    s_out_link(0, s_lid("P1", R(HOME_ADDRESS), "L1"), DELETE, 2);
    /* ATX: P4's complete list names P2; again unchanged, not withdrawn */
    s_msg("m5");
    s_entity("P4", K(PERSON), 1, UPSERT, 1);
    s_link("P4", K(PERSON), R(ASSOCIATE), "P2", K(PERSON), UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 2);
    s_out_link(1, s_lid("P4", R(ASSOCIATE), "P1"), UPSERT, 1);
    s_msg("m6");
    s_entity("P4", K(PERSON), 2, UPSERT, 1);
    s_link("P4", K(PERSON), R(ASSOCIATE), "P2", K(PERSON), UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
    ck_assert_uint_eq(s_links_from("P4"), 1);
    /* P1 merged into P0 later: a link to P2 goes to P0 */
    s_msg("m7");
    s_merged_from(s_entity("P0", K(PERSON), 1, UPSERT, 0), "P1", K(PERSON));
    s_apply_ok();
    s_msg(NULL);
    s_link("P5", 0, R(ASSOCIATE), "P2", 0, UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
    s_out_link(0, s_lid("P5", R(ASSOCIATE), "P0"), UPSERT, 1);
}
END_TEST

/* A late link to the start of a chain of more merges than the ledger follows is
 * refused (PG_EINVALID: the sender is told, not asked to retry for ever), found by
 * attack; one within the bound moves to the chain's end. */
START_TEST(test_merge_chain_bound)
{
    char a[16], b[16];
    for (int i = 0; i <= 1025; i++) {
        snprintf(a, sizeof a, "C%04d", i + 1);
        snprintf(b, sizeof b, "C%04d", i);
        s_msg(NULL);
        s_merged_from(s_entity(a, K(PERSON), 1, UPSERT, 0), b, K(PERSON));
        s_apply_ok();
    }
    s_msg(NULL);
    s_link("L1", 0, R(HOME_ADDRESS), "C1000", 0, UPSERT);
    s_apply_ok();
    s_out_link(0, s_lid("L1", R(HOME_ADDRESS), "C1026"), UPSERT, 1);
    s_msg(NULL);
    s_link("L1", 0, R(HOME_ADDRESS), "C0000", 0, UPSERT);
    ck_assert_int_eq(s_apply(), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "a chain of more than 1024 merges"));
}
END_TEST

/* A merge joins records of one kind: a vehicle named in a person's merge is refused, not
 * deleted (found by attack); an item and a weapon are both an NX5 Property. */
START_TEST(test_merge_of_another_kind_refused)
{
    s_msg("m1");
    s_entity("V1", K(VEHICLE), 1, UPSERT, 0);
    s_entity("I1", K(ITEM), 1, UPSERT, 0);
    s_apply_ok();
    s_msg("m2");
    s_merged_from(s_entity("P1", K(PERSON), 1, UPSERT, 0), "V1", K(PERSON));
    ck_assert_int_eq(s_apply(), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "changes[0].entity.merged_from[0]: record "));
    ck_assert_ptr_nonnull(strstr(e, "(V1) is a VEHICLE, the survivor a PERSON"));
    int deleted;
    ck_assert_uint_eq(s_stored("V1", &deleted), 1);
    ck_assert_int_eq(deleted, 0);
    /* never seen: the kind the merge states for it */
    s_msg("m2b");
    s_merged_from(s_entity("P1", K(PERSON), 1, UPSERT, 0), "L9", K(LOCATION));
    ck_assert_int_eq(s_apply(), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "(L9) is a LOCATION, the survivor a PERSON"));
    s_msg("m3");
    s_merged_from(s_entity("W1", K(WEAPON), 1, UPSERT, 0), "I1", K(WEAPON));
    s_apply_ok();
    ck_assert_uint_eq(s_stored("I1", &deleted), 2);
    ck_assert_int_eq(deleted, 1);
}
END_TEST

/* A record deleted first and named by a merge later is merged away too. */
START_TEST(test_deleted_then_merged_stays_away)
{
    s_msg("m1");
    s_entity("P2", K(PERSON), 1, UPSERT, 0);
    s_apply_ok();
    s_msg("m2");
    s_entity("P2", K(PERSON), 2, DELETE, 0);
    s_apply_ok();
    s_msg("m3");
    s_merged_from(s_entity("P1", K(PERSON), 1, UPSERT, 0), "P2", K(PERSON));
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1); /* already deleted: no second DELETE */
    s_msg("m4");
    s_entity("P2", K(PERSON), 3, UPSERT, 0);
    ck_assert_int_eq(s_apply(), PG_EINVALID);
    /* without the merge a newer revision re-creates a deleted record (rule 2) */
    s_msg("m5");
    s_entity("P4", K(PERSON), 1, UPSERT, 0);
    s_apply_ok();
    s_msg("m6");
    s_entity("P4", K(PERSON), 2, DELETE, 0);
    s_apply_ok();
    s_msg("m7");
    s_entity("P4", K(PERSON), 3, UPSERT, 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 1);
}
END_TEST

START_TEST(test_merge_keeps_existing_live_link)
{
    s_msg("m1");
    s_link("P1", 0, R(HOME_ADDRESS), "L1", 0, UPSERT);
    s_link("P2", 0, R(HOME_ADDRESS), "L1", 0, UPSERT);
    s_apply_ok();
    s_msg("m2");
    s_merged_from(s_entity("P1", K(PERSON), 5, UPSERT, 0), "P2", K(PERSON));
    s_apply_ok();
    ck_assert_uint_eq(out->count, 3);
    s_out_entity(1, "P2", DELETE, 1);
    s_out_link(2, s_lid("P2", R(HOME_ADDRESS), "L1"), DELETE, 2);
    ck_assert_uint_eq(s_links_to("L1"), 1);
}
END_TEST

/* ATX merge: the survivor's complete list decides its outbound links; inbound links
 * of the merged-away record still move. */
START_TEST(test_merge_with_replaced_links)
{
    s_msg("m1");
    s_entity("P2", K(PERSON), 1, UPSERT, 1);
    s_link("P2", K(PERSON), R(KEEPER), "V1", K(VEHICLE), UPSERT);
    s_apply_ok();
    s_msg("m2");
    s_entity("O1", K(OCCURRENCE), 1, UPSERT, 1);
    s_link("O1", K(OCCURRENCE), R(VICTIM), "P2", K(PERSON), UPSERT);
    s_apply_ok();
    s_msg("m3");
    pg_entity_update *p1 = s_entity("P1", K(PERSON), 2, UPSERT, 1);
    s_merged_from(p1, "P2", K(PERSON));
    s_link("P1", K(PERSON), R(USES), "T1", K(TELEPHONE), UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 6);
    s_out_entity(0, "P1", UPSERT, 2);
    s_out_link(1, s_lid("P1", R(USES), "T1"), UPSERT, 1);
    s_out_entity(2, "P2", DELETE, 2);
    s_find_link(s_lid("P2", R(KEEPER), "V1"), DELETE, 2);
    s_find_link(s_lid("O1", R(VICTIM), "P2"), DELETE, 2);
    s_find_link(s_lid("O1", R(VICTIM), "P1"), UPSERT, 1);
    ck_assert_uint_eq(s_links_from("P1"), 1);
    ck_assert_uint_eq(s_links_to("P1"), 1);
    ck_assert_uint_eq(s_links_to("V1"), 0);
}
END_TEST

START_TEST(test_fill_kind_and_marking)
{
    s_msg("m1");
    pg_entity_update *p = s_entity("P1", K(PERSON), 4, UPSERT, 0);
    p->marking = s_marking(C(SECRET));
    s_entity("L1", K(LOCATION), 1, UPSERT, 0);
    s_apply_ok();

    s_msg("m2");
    pg_link_update *known = s_link("P1", 0, R(HOME_ADDRESS), "L1", 0, UPSERT);
    pg_link_update *unknown = s_link("P1", 0, R(OTHER_ADDRESS), "L9", 0, UPSERT);
    pg_link_update *own = s_link("P1", 0, R(USES), "T1", 0, UPSERT);
    own->marking = s_marking(C(OFFICIAL));
    own->modified_at = s_time(5);
    pg_link_update *orphan = s_link("Q1", 0, R(USES), "T1", 0, UPSERT);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 4);
    const pg_link_update *l = s_out_link(0, known->id, UPSERT, 1);
    ck_assert_int_eq(l->from->kind, K(PERSON));
    ck_assert_int_eq(l->to->kind, K(LOCATION));
    ck_assert_int_eq(l->marking->classification, C(SECRET));
    ck_assert_int_eq(l->modified_at->seconds, 4000);
    l = s_out_link(1, unknown->id, UPSERT, 1);
    ck_assert_int_eq(l->from->kind, K(PERSON));
    ck_assert_int_eq(l->to->kind, K(UNSPECIFIED));
    l = s_out_link(2, own->id, UPSERT, 1);
    ck_assert_int_eq(l->marking->classification, C(OFFICIAL));
    ck_assert_int_eq(l->modified_at->seconds, 5);
    l = s_out_link(3, orphan->id, UPSERT, 1);
    ck_assert_ptr_null(l->marking);
    ck_assert_int_eq(l->from->kind, K(UNSPECIFIED));
    /* the input keeps what the adapter wrote */
    ck_assert_int_eq(known->from->kind, 0);
    ck_assert_ptr_null(known->marking);
    /* the stored link has the filled-in values */
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_link_update *sl;
    ck_assert_int_eq(pg_ledger_get_link(lg, txn, known->id, ids, &sl, NULL, e, sizeof e), 0);
    ck_assert_int_eq(sl->to->kind, K(LOCATION));
    ck_assert_int_eq(sl->marking->classification, C(SECRET));
    pg_store_abort(&txn);
}
END_TEST

START_TEST(test_abort_leaves_no_trace)
{
    s_person_p1("m1", 7);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_ledger_apply(lg, txn, in, out, &res, e, sizeof e), 0);
    ck_assert_uint_eq(out->count, 3);
    pg_store_abort(&txn);
    int deleted;
    ck_assert_uint_eq(s_stored("P1", &deleted), 0);
    ck_assert_uint_eq(s_links_from("P1"), 0);
    s_person_p1("m1", 7);
    s_apply_ok();
    ck_assert_int_eq(res.duplicate, 0);
    ck_assert_uint_eq(out->count, 3);
    s_out_link(1, s_lid("P1", R(USES), "T1"), UPSERT, 1);
}
END_TEST

/* A failing apply undoes only itself: what the caller did before in the same txn stays. */
START_TEST(test_error_undoes_only_the_call)
{
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    s_person_p1("m1", 7);
    ck_assert_int_eq(pg_ledger_apply(lg, txn, in, out, &res, e, sizeof e), 0);
    pg_changeset *out2 = pg_changeset_new();
    pg_changeset *in2 = in;
    in = pg_changeset_new();
    s_msg("m2");
    s_entity("P2", K(PERSON), 1, UPSERT, 0);
    s_link("P2", K(PERSON), R(USES), "T2", K(TELEPHONE), UPSERT)->from = NULL;
    ck_assert_int_eq(pg_changeset_add_link(out2, in2->changes[1].link), 0); /* caller's own */
    res.published = 99;
    ck_assert_int_eq(pg_ledger_apply(lg, txn, in, out2, &res, e, sizeof e), PG_EINVALID);
    ck_assert_msg(strstr(e, "changes[1].link.from.id: required") != NULL, "%s", e);
    ck_assert_uint_eq(out2->count, 1);
    ck_assert_uint_eq(res.published, 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    int deleted;
    ck_assert_uint_eq(s_stored("P1", &deleted), 7);
    ck_assert_uint_eq(s_stored("P2", &deleted), 0);
    /* m2 was not remembered: fixed, it applies */
    in->changes[1].link->from = s_ref("P2", K(PERSON));
    pg_changeset_reset(out2);
    txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_ledger_apply(lg, txn, in, out2, &res, e, sizeof e), 0);
    ck_assert_int_eq(res.duplicate, 0);
    ck_assert_uint_eq(out2->count, 2);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_changeset_destroy(&out2);
    pg_changeset_destroy(&in2);
}
END_TEST

/* Each kind of invalid change, with its reason. */
static const struct {
    const char *what;
    const char *reason;
} s_invalid[] = {
    {"entity id empty", "changes[0].entity.id: required, 1-255 bytes"},
    {"entity id too long", "changes[0].entity.id: required, 1-255 bytes"},
    {"entity operation unspecified", "changes[0].entity.operation: must be UPSERT or DELETE"},
    {"merged_from without id", "changes[0].entity.merged_from[0].id: required"},
    {"link id empty", "changes[1].link.id: required"},
    {"link operation unspecified", "changes[1].link.operation: must be UPSERT or DELETE"},
    {"link without from", "changes[1].link.from.id: required"},
    {"link to without id", "changes[1].link.to.id: required"},
    {"link role unspecified", "changes[1].link.role: required"},
    {"message id too long", "message_id: must be 1-255 bytes"},
    {"unknown change type", "changes[1]: unknown change type 7"},
};

START_TEST(test_invalid_change)
{
    s_msg("m1");
    pg_entity_update *u = s_entity("P1", K(PERSON), 1, UPSERT, 1);
    pg_link_update *l = s_link("P1", K(PERSON), R(USES), "T1", K(TELEPHONE), UPSERT);
    char *long_id = pg_arena_alloc(in->arena, 300);
    memset(long_id, 'x', 299);
    switch (_i) {
    case 0:
        u->id = "";
        break;
    case 1:
        u->id = long_id;
        break;
    case 2:
        u->operation = 0;
        break;
    case 3:
        s_merged_from(u, "P2", 0), u->merged_from[0]->id = "";
        break;
    case 4:
        l->id = "";
        break;
    case 5:
        l->operation = 0;
        break;
    case 6:
        l->from = NULL;
        break;
    case 7:
        l->to->id = "";
        break;
    case 8:
        l->role = 0;
        break;
    case 9:
        in->message_id = long_id;
        break;
    case 10:
        in->changes[1].type = 7;
        break;
    }
    ck_assert_int_eq(s_apply(), PG_EINVALID);
    ck_assert_msg(strstr(e, s_invalid[_i].reason) != NULL, "%s: got \"%s\"", s_invalid[_i].what, e);
    ck_assert_uint_eq(out->count, 0);
    int deleted;
    ck_assert_uint_eq(s_stored("P1", &deleted), 0);
}
END_TEST

START_TEST(test_read_only_txn_refused)
{
    s_person_p1("m1", 7);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_int_eq(pg_ledger_apply(lg, txn, in, out, &res, e, sizeof e), PG_EUSAGE);
    ck_assert_ptr_nonnull(strstr(e, "write transaction"));
    pg_store_abort(&txn);
}
END_TEST

static void s_occurrence(const char *native, const char *summary)
{
    pg_entity_update *u = s_entity(native, K(OCCURRENCE), 1, UPSERT, 0);
    u->occurrence =
        PG_PB_NEW(in->arena, Polegate__Pole__V1__Occurrence, polegate__pole__v1__occurrence);
    u->occurrence->summary = (char *)summary;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE;
}

/* A message that does not fit fails with MDB_MAP_FULL in the reason and leaves no
 * trace; the caller's transaction stays usable; earlier commits are intact. */
START_TEST(test_map_full)
{
    s_close();
    s_open(512 * 1024);
    char *summary = pg_arena_alloc(ids, 4001);
    memset(summary, 's', 4000);
    for (int i = 0; i < 5; i++) {
        char mid[32], native[32];
        snprintf(mid, sizeof mid, "m%d", i);
        snprintf(native, sizeof native, "O%d", i);
        s_msg(mid);
        s_occurrence(native, summary);
        s_apply_ok();
    }
    /* 200 records of 4 kB cannot fit in a 512 kB map */
    s_msg("big");
    for (int i = 0; i < 200; i++) {
        char native[32];
        snprintf(native, sizeof native, "B%d", i);
        s_occurrence(native, summary);
    }
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_ledger_apply(lg, txn, in, out, &res, e, sizeof e), PG_EFULL);
    ck_assert_msg(strstr(e, "MDB_MAP_FULL") != NULL, "%s", e);
    ck_assert_msg(strstr(e, "524288-byte map") != NULL, "%s", e);
    ck_assert_uint_eq(out->count, 0);
    ck_assert_uint_eq(res.published, 0);
    /* the same txn still takes a message that fits */
    pg_changeset *small = pg_changeset_new();
    ck_assert_int_eq(pg_changeset_add_entity(small, in->changes[0].entity, 0), 0);
    ck_assert_int_eq(pg_ledger_apply(lg, txn, small, out, &res, e, sizeof e), 0);
    ck_assert_uint_eq(out->count, 1);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_changeset_destroy(&small);
    int deleted;
    ck_assert_uint_eq(s_stored("O0", &deleted), 1);
    ck_assert_uint_eq(s_stored("O4", &deleted), 1);
    ck_assert_uint_eq(s_stored("B0", &deleted), 1);
    ck_assert_uint_eq(s_stored("B1", &deleted), 0);
    ck_assert_uint_eq(s_stored("B199", &deleted), 0);
}
END_TEST

START_TEST(test_bounded_message_ids)
{
    ck_assert_int_eq(pg_ledger_set_seen_limit(lg, 0), PG_EUSAGE);
    ck_assert_int_eq(pg_ledger_set_seen_limit(lg, 3), 0);
    for (int i = 1; i <= 5; i++) {
        char mid[16];
        snprintf(mid, sizeof mid, "m%d", i);
        s_msg(mid);
        s_entity("P1", K(PERSON), (uint64_t)i, UPSERT, 0);
        s_apply_ok();
    }
    /* the last three are remembered (checking does not record) */
    const char *dup[] = {"m5", "m4", "m3"};
    for (size_t i = 0; i < 3; i++) {
        s_msg(dup[i]);
        s_entity("P1", K(PERSON), 5 - i, UPSERT, 0); /* as it was sent */
        s_apply_ok();
        ck_assert_msg(res.duplicate == 1, "%s", dup[i]);
    }
    /* the oldest were forgotten: m1 is applied again (and is stale) */
    s_msg("m1");
    s_entity("P1", K(PERSON), 1, UPSERT, 0);
    s_apply_ok();
    ck_assert_int_eq(res.duplicate, 0);
    ck_assert_uint_eq(res.stale, 1);
    /* remembering m1 pushed m3 out */
    s_msg("m3");
    s_entity("P1", K(PERSON), 1, UPSERT, 0);
    s_apply_ok();
    ck_assert_int_eq(res.duplicate, 0);
    s_msg("m1");
    s_entity("P1", K(PERSON), 1, UPSERT, 0);
    s_apply_ok();
    ck_assert_int_eq(res.duplicate, 1);
}
END_TEST

START_TEST(test_named_ledgers_are_independent)
{
    s_person_p1("m1", 7);
    s_apply_ok();
    pg_ledger *partner = pg_ledger_new_named(st, "partner", e, sizeof e);
    ck_assert_ptr_nonnull(partner);
    s_person_p1("m1", 7);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_ledger_apply(partner, txn, in, out, &res, e, sizeof e), 0);
    ck_assert_int_eq(res.duplicate, 0);
    ck_assert_uint_eq(out->count, 3);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_ledger_destroy(&partner);
    ck_assert_ptr_null(pg_ledger_new_named(st, "Bad.Name", e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "[a-z0-9_-]"));
}
END_TEST

START_TEST(test_format_mismatch_refused)
{
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    pg_store_db meta;
    ck_assert_int_eq(pg_store_db_open(txn, "ledger.meta", 0, &meta, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_put(txn, meta, "format", 6, "9", 1, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    ck_assert_ptr_null(pg_ledger_new(st, e, sizeof e));
    ck_assert_msg(strstr(e, "holds format 9, this build reads format 1") != NULL, "%s", e);
}
END_TEST

static size_t s_read_fixture(const char *name, uint8_t *data, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", PG_FIXTURES, name);
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "%s", path);
    size_t size = fread(data, 1, cap, fp);
    fclose(fp);
    ck_assert_uint_gt(size, 0);
    ck_assert_uint_lt(size, cap);
    return size;
}

/* The Essex burglary sample through the ATX adapter: 7 UPSERTs, then the telephone's
 * DELETE, which takes the person's USES link with it; a redelivery changes nothing. */
typedef struct s_feed {
    size_t published[16];
    size_t messages, duplicates;
    int rc;
} s_feed;

static int s_feed_one(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_feed *f = arg;
    pg_adapter_ctx ctx = {0};
    pg_changeset_reset(in);
    pg_changeset_reset(out);
    f->rc = pg_adapter_athena.decode(&ctx, msg, len, in, e, sizeof e);
    if (f->rc != 0)
        return f->rc;
    if ((f->rc = s_apply()) != 0)
        return f->rc;
    ck_assert_uint_lt(f->messages, 16);
    ck_assert_uint_eq(pos, f->messages + 1);
    f->published[f->messages++] = res.published;
    f->duplicates += (size_t)res.duplicate;
    return 0;
}

START_TEST(test_atx_burglary_fixture)
{
    static uint8_t data[1 << 16];
    size_t size = s_read_fixture("atx-burglary.ndjson", data, sizeof data);
    s_feed f = {0};
    pg_adapter_athena.split(data, size, s_feed_one, &f);
    ck_assert_msg(f.rc == 0, "message %zu: %s", f.messages + 1, e);
    ck_assert_uint_eq(f.messages, 8);
    /* L; P1 + USES + KEEPER; P2 + HOME + OWNER; V; I; T; O + 5 links; T delete + USES */
    const size_t want[] = {1, 3, 3, 1, 1, 1, 6, 2};
    for (size_t i = 0; i < 8; i++)
        ck_assert_msg(f.published[i] == want[i], "message %zu: published %zu, want %zu", i + 1,
                      f.published[i], want[i]);
    ck_assert_uint_eq(out->count, 2);
    ck_assert_int_eq(out->changes[0].entity->operation, DELETE);
    ck_assert_int_eq(out->changes[0].entity->kind, K(TELEPHONE));
    ck_assert_int_eq(out->changes[1].link->operation, DELETE);
    ck_assert_int_eq(out->changes[1].link->role, R(USES));
    ck_assert_uint_eq(out->changes[1].link->version, 2);
    /* the person keeps KEEPER only; nothing links to the deleted telephone */
    char person[PG_UUID_STR_SIZE], phone[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_identity_entity("ESX", "ATHENA", "PERSON", "P0000123456", person), 0);
    ck_assert_int_eq(pg_identity_entity("ESX", "ATHENA", "TELEPHONE", "T0000000042", phone), 0);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_link_update **links;
    size_t n;
    ck_assert_int_eq(pg_ledger_links_from(lg, txn, person, ids, &links, &n, e, sizeof e), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(links[0]->role, R(KEEPER));
    ck_assert_int_eq(pg_ledger_links_to(lg, txn, phone, ids, &links, &n, e, sizeof e), 0);
    ck_assert_uint_eq(n, 0);
    pg_store_abort(&txn);
    s_feed again = {0};
    pg_adapter_athena.split(data, size, s_feed_one, &again);
    ck_assert_int_eq(again.rc, 0);
    ck_assert_uint_eq(again.duplicates, 8);
}
END_TEST

static const pg_link_update *s_out_role(int role)
{
    for (size_t i = 0; i < out->count; i++)
        if (out->changes[i].type == PG_CHANGE_LINK && (int)out->changes[i].link->role == role)
            return out->changes[i].link;
    ck_abort_msg("no link with role %d in output", role);
    return NULL;
}

/* The Merseyside NX5 export through the NX5 adapter: a merge of a record never seen, a
 * delete, links whose target kinds and markings only the ledger knows, and a link
 * delete of a link it never saw. */
START_TEST(test_nx5_merseyside_fixture)
{
    static uint8_t data[1 << 16];
    size_t size = s_read_fixture("nx5-merseyside-export.xml", data, sizeof data);
    pg_adapter_ctx ctx = {0};
    s_msg(NULL);
    int rc = pg_adapter_niche.decode(&ctx, data, size, in, e, sizeof e);
    ck_assert_msg(rc == 0, "%s", e);
    s_apply_ok();
    /* 6 entities + the merged-away person's DELETE + 5 links + the USES delete */
    ck_assert_uint_eq(out->count, 13);
    ck_assert_uint_eq(res.stale + res.unchanged, 0);
    const pg_entity_update *gone = NULL;
    for (size_t i = 0; i < out->count; i++)
        if (out->changes[i].type == PG_CHANGE_ENTITY &&
            strcmp(out->changes[i].entity->origin->native_id, "7F3A9C2E4B1D0B01") == 0)
            gone = out->changes[i].entity;
    ck_assert_ptr_nonnull(gone);
    ck_assert_int_eq(gone->operation, DELETE);
    ck_assert_uint_eq(gone->version, 1);
    ck_assert_int_eq(gone->kind, K(PERSON));
    const pg_link_update *home = s_out_role(R(HOME_ADDRESS));
    ck_assert_int_eq(home->operation, UPSERT);
    ck_assert_uint_eq(home->version, 1);
    ck_assert_int_eq(home->from->kind, K(PERSON));
    ck_assert_int_eq(home->to->kind, K(LOCATION));
    ck_assert_int_eq(home->marking->classification, C(OFFICIAL_SENSITIVE));
    ck_assert_ptr_nonnull(home->modified_at);
    const pg_link_update *detained = s_out_role(R(DETAINED));
    ck_assert_int_eq(detained->from->kind, K(CUSTODY));
    ck_assert_int_eq(detained->to->kind, K(PERSON));
    const pg_link_update *uses = s_out_role(R(USES));
    ck_assert_int_eq(uses->operation, DELETE);
    ck_assert_uint_eq(uses->version, 1);
    ck_assert_int_eq(uses->to->kind, K(TELEPHONE)); /* deleted, but its kind is known */
    /* the same document again (NX5 has no message id here): nothing new */
    s_msg(NULL);
    ck_assert_int_eq(pg_adapter_niche.decode(&ctx, data, size, in, e, sizeof e), 0);
    s_apply_ok();
    ck_assert_uint_eq(out->count, 0);
    ck_assert_uint_eq(res.stale, 6); /* the entities, the merging one with its merge */
    ck_assert_uint_eq(res.unchanged, 6);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("ledger");
    TCase *tc = tcase_create("ledger");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_first_upsert_emits_entity_then_links);
    tcase_add_test(tc, test_stale_entity_and_its_links_dropped);
    tcase_add_test(tc, test_stale_after_restart);
    tcase_add_test(tc, test_duplicate_message);
    tcase_add_test(tc, test_replace_links_diff);
    tcase_add_test(tc, test_marking_change_reemits_links);
    tcase_add_test(tc, test_link_version_sequence);
    tcase_add_test(tc, test_nx5_delete_of_unknown_link);
    tcase_add_test(tc, test_entity_delete_cascades);
    tcase_add_test(tc, test_merge_repoints_both_directions);
    tcase_add_test(tc, test_merge_of_unknown_entity);
    tcase_add_test(tc, test_merged_away_stays_away);
    tcase_add_test(tc, test_deleted_then_merged_stays_away);
    tcase_add_test(tc, test_late_link_to_merged_away_moves);
    tcase_add_test(tc, test_merge_of_another_kind_refused);
    tcase_add_test(tc, test_merge_chain_bound);
    tcase_add_test(tc, test_merge_keeps_existing_live_link);
    tcase_add_test(tc, test_merge_with_replaced_links);
    tcase_add_test(tc, test_fill_kind_and_marking);
    tcase_add_test(tc, test_delete_fills_retention);
    tcase_add_test(tc, test_delete_wins_ties);
    tcase_add_test(tc, test_delete_takes_kind_caveat_and_time);
    tcase_add_test(tc, test_nx5_links_follow_their_record_marking);
    tcase_add_test(tc, test_explicit_merges);
    tcase_add_test(tc, test_abort_leaves_no_trace);
    tcase_add_test(tc, test_error_undoes_only_the_call);
    tcase_add_loop_test(tc, test_invalid_change, 0, (int)(sizeof s_invalid / sizeof s_invalid[0]));
    tcase_add_test(tc, test_read_only_txn_refused);
    tcase_add_test(tc, test_map_full);
    tcase_add_test(tc, test_bounded_message_ids);
    tcase_add_test(tc, test_named_ledgers_are_independent);
    tcase_add_test(tc, test_format_mismatch_refused);
    tcase_add_test(tc, test_atx_burglary_fixture);
    tcase_add_test(tc, test_nx5_merseyside_fixture);
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
