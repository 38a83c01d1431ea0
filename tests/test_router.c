/* Unit tests for gateway/outbound/router: per-destination records under the policy through the
 * ledger, withholding and its audit, links following their ends, withdrawal (marking,
 * MoPI, delete, policy change at restart), publication of what a new policy allows,
 * provenance headers, atomicity. */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger.h"
#include "outrec.h"
#include "polegate/error.h"
#include "polegate/wire.h"
#include "policy.h"
#include "publisher.h"
#include "router.h"
#include "spool.h"
#include "store.h"

enum { O = 1, OS = 2, S = 3, TS = 4 }; /* classifications */
enum { P = 1, C = 2 };                 /* handling */
enum { UPSERT = 1, DELETE = 2 };       /* operations */
enum { PERSON = 1, LOCATION, VEHICLE, ITEM, WEAPON, TELEPHONE, OCCURRENCE, CUSTODY, INTEL };
#define NO_MARKING (-1)
#define UNKNOWN_CLASS 9 /* a classification this build does not know */

#define T_NAT "polegate.esx.national.pole.v1"
#define T_MER "polegate.esx.mer.pole.v1"

#define NAT_DEST                                                                                   \
    "    - name: national\n"                                                                       \
    "      kind: national\n"                                                                       \
    "      topic: " T_NAT "\n"                                                                     \
    "      agreement: ISA-NAT\n"                                                                   \
    "      max_classification: OFFICIAL-SENSITIVE\n"                                               \
    "      kinds: all\n"

/* National: everything up to OFFICIAL-SENSITIVE except handling C. Merseyside: no
 * intelligence, no ethnicity, MoPI groups 1, 2 and ungrouped, handling C under its own
 * agreement. */
#define POLICY_RK(version, mer_max, mer_topic, mer_redact, mer_kinds)                              \
    "policy:\n"                                                                                    \
    "  version: " version "\n"                                                                     \
    "  agreements:\n"                                                                              \
    "    - {name: ISA-NAT, description: national}\n"                                               \
    "    - {name: ISA-MER, description: merseyside}\n"                                             \
    "    - {name: ISA-MER-C, description: merseyside handling C}\n"                                \
    "  destinations:\n" NAT_DEST "    - name: mer\n"                                               \
    "      kind: force\n"                                                                          \
    "      force: MER\n"                                                                           \
    "      topic: " mer_topic "\n"                                                                 \
    "      agreement: ISA-MER\n"                                                                   \
    "      max_classification: " mer_max "\n"                                                      \
    "      allow_handling_c: true\n"                                                               \
    "      handling_c_agreement: ISA-MER-C\n"                                                      \
    "      kinds: [" mer_kinds "]\n"                                                               \
    "      redact: [" mer_redact "]\n"                                                             \
    "      mopi_groups: [1, 2, ungrouped]\n"

#define MER_KINDS "person, location, vehicle, item, weapon, telephone, occurrence, custody"
#define POLICY_R(version, mer_max, mer_topic, mer_redact)                                          \
    POLICY_RK(version, mer_max, mer_topic, mer_redact, MER_KINDS)
/* Merseyside now receives intelligence too, without its text. */
#define POLICY_INTEL(version)                                                                      \
    POLICY_RK(version, "OFFICIAL-SENSITIVE", T_MER, "person.ethnicity, intelligence.text",         \
              MER_KINDS ", intelligence")

#define POLICY(version, mer_max, mer_topic)                                                        \
    POLICY_R(version, mer_max, mer_topic, "person.ethnicity")

static const char *s_policy_v1 = POLICY("ESX-1", "OFFICIAL-SENSITIVE", T_MER);

static char s_dir[256];
static char e[PG_ERRSTR_SIZE];
static pg_store *st;
static pg_ledger *lg;
static pg_policy *pol;
static pg_router *rt;
static pg_changeset *in, *pub;
static pg_outbatch *ob;

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static pg_policy *s_policy(const char *yaml)
{
    pg_policy *p = pg_policy_load_string(yaml, strlen(yaml), "ESX", e, sizeof e);
    ck_assert_msg(p != NULL, "policy: %s", e);
    return p;
}

static void s_open(const char *policy_yaml)
{
    st = pg_store_new(s_dir, 0, e, sizeof e);
    ck_assert_msg(st != NULL, "%s", e);
    ck_assert_int_eq(pg_store_set_durable(st, 0), 0);
    lg = pg_ledger_new(st, e, sizeof e);
    ck_assert_msg(lg != NULL, "%s", e);
    pol = s_policy(policy_yaml);
    rt = pg_router_new(pol, st, "ESX", e, sizeof e);
    ck_assert_msg(rt != NULL, "%s", e);
}

static void s_close(void)
{
    pg_router_destroy(&rt);
    ck_assert_ptr_null(rt);
    pg_router_destroy(&rt);
    pg_policy_destroy(&pol);
    pg_ledger_destroy(&lg);
    pg_store_destroy(&st);
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-test-router-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    s_open(s_policy_v1);
    in = pg_changeset_new();
    pub = pg_changeset_new();
    ob = pg_outbatch_new();
    ck_assert(in && pub && ob);
}

static void s_teardown(void)
{
    s_close();
    pg_changeset_destroy(&in);
    pg_changeset_destroy(&pub);
    pg_outbatch_destroy(&ob);
    nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------ builders */

static int s_msg_no;

static void s_begin(void)
{
    pg_changeset_reset(in);
    char id[32];
    snprintf(id, sizeof id, "msg-%d", ++s_msg_no);
    in->message_id = pg_arena_strdup(in->arena, id);
}

/* An entity of kind with the fields the test policy redacts filled in. classification
 * NO_MARKING: no marking at all. */
static pg_entity_update *s_entity(const char *id, int kind, uint64_t version, int classification,
                                  int handling, int mopi, int op)
{
    pg_arena *a = in->arena;
    pg_entity_update *x = PG_PB_NEW(a, pg_entity_update, polegate__pole__v1__entity_update);
    x->id = pg_arena_strdup(a, id);
    x->operation = op;
    x->version = version;
    x->kind = kind;
    x->origin = PG_PB_NEW(a, pg_origin, polegate__pole__v1__origin);
    x->origin->force = "ESX";
    x->origin->system = "ATHENA";
    x->origin->native_type = "REC";
    x->origin->native_id = pg_arena_sprintf(a, "N-%s", id);
    if (classification != NO_MARKING) {
        x->marking = PG_PB_NEW(a, pg_marking, polegate__pole__v1__marking);
        x->marking->classification = classification;
        x->marking->handling = handling;
    }
    if (mopi) {
        x->retention = PG_PB_NEW(a, pg_retention, polegate__pole__v1__retention);
        x->retention->mopi_group = mopi;
    }
    if (op == DELETE)
        return x;
    x->body_case = 19 + kind;
    switch (kind) {
    case PERSON:
        x->person = PG_PB_NEW(a, Polegate__Pole__V1__Person, polegate__pole__v1__person);
        x->person->self_defined_ethnicity =
            POLEGATE__POLE__V1__SELF_DEFINED_ETHNICITY__SELF_DEFINED_ETHNICITY_W2;
        x->person->officer_defined_ethnicity =
            POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC1;
        x->person->occupation = "plumber";
        break;
    case LOCATION:
        x->location = PG_PB_NEW(a, Polegate__Pole__V1__Location, polegate__pole__v1__location);
        x->location->street = "High Street";
        break;
    case VEHICLE:
        x->vehicle = PG_PB_NEW(a, Polegate__Pole__V1__Vehicle, polegate__pole__v1__vehicle);
        x->vehicle->vrm = "AB12CDE";
        break;
    case INTEL:
        x->intelligence =
            PG_PB_NEW(a, Polegate__Pole__V1__Intelligence, polegate__pole__v1__intelligence);
        x->intelligence->text = "subject seen at the address";
        break;
    case OCCURRENCE:
        x->occurrence =
            PG_PB_NEW(a, Polegate__Pole__V1__Occurrence, polegate__pole__v1__occurrence);
        x->occurrence->summary = "burglary";
        break;
    default:
        ck_abort_msg("kind %d not built by this test", kind);
    }
    return x;
}

static void s_add_entity(pg_entity_update *x)
{
    ck_assert_int_eq(pg_changeset_add_entity(in, x, 0), 0);
}

static pg_entity_ref *s_ref(const char *id, int kind)
{
    pg_entity_ref *r = PG_PB_NEW(in->arena, pg_entity_ref, polegate__pole__v1__entity_ref);
    r->id = pg_arena_strdup(in->arena, id);
    r->kind = kind;
    return r;
}

/* A single link (NX5 style) from -> to with its own marking. */
static pg_link_update *s_link(const char *id, const char *from, int from_kind, const char *to,
                              int to_kind, int classification, int op)
{
    pg_arena *a = in->arena;
    pg_link_update *l = PG_PB_NEW(a, pg_link_update, polegate__pole__v1__link_update);
    l->id = pg_arena_strdup(a, id);
    l->operation = op;
    l->version = 1;
    l->from = s_ref(from, from_kind);
    l->to = s_ref(to, to_kind);
    l->role = POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS;
    l->origin = PG_PB_NEW(a, pg_origin, polegate__pole__v1__origin);
    l->origin->force = "ESX";
    l->origin->system = "ATHENA";
    l->marking = PG_PB_NEW(a, pg_marking, polegate__pole__v1__marking);
    l->marking->classification = classification;
    l->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_P;
    ck_assert_int_eq(pg_changeset_add_link(in, l), 0);
    return l;
}

/* Apply `in` to the ledger and route what it published, in one transaction that
 * commits. The batch is reset first. */
static void s_route(void)
{
    pg_outbatch_reset(ob);
    pg_changeset_reset(pub);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_msg(txn != NULL, "%s", e);
    pg_ledger_result res;
    ck_assert_msg(pg_ledger_apply(lg, txn, in, pub, &res, e, sizeof e) == 0, "ledger: %s", e);
    ck_assert_msg(pg_router_route(rt, txn, pub, ob, e, sizeof e) == 0, "router: %s", e);
    ck_assert_msg(pg_store_commit(&txn, e, sizeof e) == 0, "%s", e);
}

/* ------------------------------------------------------------ finding records */

static const char *s_hdr(const pg_outrec *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++)
        if (!strcmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

/* The index of the n-th (0-based) record for topic and key; -1 when none. */
static int s_find_nth(const char *topic, const char *key, int n)
{
    for (size_t i = 0; i < ob->count; i++)
        if (!strcmp(ob->recs[i].topic, topic) && !strcmp(ob->recs[i].key, key) && !n--)
            return (int)i;
    return -1;
}

static int s_count(const char *topic, const char *key)
{
    int n = 0;
    while (s_find_nth(topic, key, n) >= 0)
        n++;
    return n;
}

static const pg_outrec *s_rec(const char *topic, const char *key)
{
    int i = s_find_nth(topic, key, 0);
    ck_assert_msg(i >= 0, "no record of %s on %s", key, topic);
    return &ob->recs[i];
}

static pg_entity_update *s_unpack_entity(const pg_outrec *r)
{
    ck_assert_ptr_nonnull(r->value);
    ck_assert_str_eq(s_hdr(r, PG_HDR_TYPE), PG_TYPE_ENTITY);
    pg_entity_update *x = polegate__pole__v1__entity_update__unpack(NULL, r->value_len, r->value);
    ck_assert_ptr_nonnull(x);
    return x;
}

static pg_link_update *s_unpack_link(const pg_outrec *r)
{
    ck_assert_ptr_nonnull(r->value);
    ck_assert_str_eq(s_hdr(r, PG_HDR_TYPE), PG_TYPE_LINK);
    pg_link_update *x = polegate__pole__v1__link_update__unpack(NULL, r->value_len, r->value);
    ck_assert_ptr_nonnull(x);
    return x;
}

/* The entity record of key on topic has origin.org_unit want (and its native id). */
static void s_assert_org_unit(const char *topic, const char *key, const char *want)
{
    pg_entity_update *u = s_unpack_entity(s_rec(topic, key));
    ck_assert_str_eq(u->origin->org_unit, want);
    ck_assert_str_eq(u->origin->native_id + 2, key);
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);
}

/* The pending audit event of action for id (and destination, when not NULL). */
static const pg_audit_event *s_audit_find(pg_audit_action action, const char *id, const char *dest)
{
    for (size_t i = 0; i < ob->audit_count; i++) {
        const pg_audit_event *ev = &ob->audit[i];
        if (ev->action == action && !strcmp(ev->entity_id, id) &&
            (!dest || (ev->destination && !strcmp(ev->destination, dest))))
            return ev;
    }
    return NULL;
}

static size_t s_audit_count(pg_audit_action action)
{
    size_t n = 0;
    for (size_t i = 0; i < ob->audit_count; i++)
        n += ob->audit[i].action == action;
    return n;
}

static int s_held(const char *dest, const char *id)
{
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    int h = pg_router_held(rt, txn, dest, id);
    pg_store_abort(&txn);
    ck_assert_int_ge(h, 0);
    return h;
}

/* Assert the record of key on topic is a DELETE then its tombstone: bare (marking NULL:
 * nothing but ids) or the source's DELETE with that pg-marking. */
static void s_assert_delete(const char *topic, const char *key, uint64_t version,
                            const char *reason, const char *marking)
{
    int i = s_find_nth(topic, key, 0);
    ck_assert_msg(i >= 0, "no withdrawal of %s on %s", key, topic);
    const pg_outrec *r = &ob->recs[i];
    ck_assert_str_eq(s_hdr(r, PG_HDR_OPERATION), "DELETE");
    ck_assert_str_eq(s_hdr(r, PG_HDR_MARKING), marking ? marking : "UNSPECIFIED;UNSPECIFIED");
    ck_assert_int_eq(r->audit_action, PG_AUDIT_WITHDRAW);
    ck_assert_str_eq(r->outcome, reason);
    ck_assert_uint_eq(r->version, version);
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)version);
    ck_assert_str_eq(s_hdr(r, PG_HDR_VERSION), v);
    if (!strcmp(s_hdr(r, PG_HDR_TYPE), PG_TYPE_ENTITY)) {
        pg_entity_update *x = s_unpack_entity(r);
        ck_assert_int_eq(x->operation, DELETE);
        ck_assert_uint_eq(x->version, version);
        ck_assert_int_eq(x->marking == NULL, marking == NULL);
        ck_assert_int_eq(x->body_case, 0);
        polegate__pole__v1__entity_update__free_unpacked(x, NULL);
    } else {
        pg_link_update *x = s_unpack_link(r);
        ck_assert_int_eq(x->operation, DELETE);
        ck_assert_uint_eq(x->version, version);
        ck_assert_int_eq(x->marking == NULL, marking == NULL);
        ck_assert_ptr_nonnull(x->from);
        ck_assert_ptr_nonnull(x->to);
        polegate__pole__v1__link_update__free_unpacked(x, NULL);
    }
    ck_assert_int_lt((size_t)i + 1, ob->count);
    const pg_outrec *t = &ob->recs[i + 1];
    ck_assert_str_eq(t->key, key);
    ck_assert_str_eq(t->topic, topic);
    ck_assert_ptr_null(t->value);
    ck_assert_int_eq(t->audit_action, PG_AUDIT_NONE);
    ck_assert_str_eq(s_hdr(t, PG_HDR_OPERATION), "DELETE");
}

/* A withdrawal: the bare DELETE. */
static void s_assert_withdrawal(const char *topic, const char *key, uint64_t version,
                                const char *reason)
{
    s_assert_delete(topic, key, version, reason, NULL);
}

/* ------------------------------------------------------------ decisions */

/* One entity UPSERT, what each destination gets. NULL reason: shared. */
typedef struct t_decision {
    const char *name;
    int kind, classification, handling, mopi;
    const char *national; /* NULL: shared; else the withhold reason */
    const char *mer;
    const char *mer_agreement;
    const char *mer_redactions;
} t_decision;

static const t_decision s_decisions[] = {
    {"person OS P", PERSON, OS, P, 1, NULL, NULL, "ISA-MER", "person.ethnicity"},
    {"person O P ungrouped", PERSON, O, P, 0, NULL, NULL, "ISA-MER", "person.ethnicity"},
    {"person OS C", PERSON, OS, C, 1, "handling", NULL, "ISA-MER-C", "person.ethnicity"},
    {"person SECRET", PERSON, S, P, 1, "secret", "secret", NULL, NULL},
    {"person TOP SECRET", PERSON, TS, P, 1, "secret", "secret", NULL, NULL},
    {"person no marking", PERSON, NO_MARKING, P, 1, "marking-missing", "marking-missing", NULL,
     NULL},
    {"person unknown class", PERSON, UNKNOWN_CLASS, P, 1, "marking-missing", "marking-missing",
     NULL, NULL},
    {"person handling unset", PERSON, OS, 0, 1, "marking-missing", "marking-missing", NULL, NULL},
    {"intelligence OS P", INTEL, OS, P, 1, NULL, "kind", NULL, NULL},
    {"person MoPI 3", PERSON, OS, P, 3, NULL, "mopi", NULL, NULL},
    {"vehicle O P", VEHICLE, O, P, 2, NULL, NULL, "ISA-MER", "none"},
    {"location OS C ungrouped", LOCATION, OS, C, 0, "handling", NULL, "ISA-MER-C", "none"},
};

START_TEST(test_decision_table)
{
    const t_decision *t = &s_decisions[_i];
    char id[64];
    snprintf(id, sizeof id, "e-%d", _i);
    s_begin();
    s_add_entity(s_entity(id, t->kind, 3, t->classification, t->handling, t->mopi, UPSERT));
    s_route();

    /* collected once, whatever the destinations get */
    ck_assert_uint_eq(s_audit_count(PG_AUDIT_COLLECT), 1);
    const pg_audit_event *col = s_audit_find(PG_AUDIT_COLLECT, id, NULL);
    ck_assert_ptr_nonnull(col);
    ck_assert_str_eq(col->origin, "ESX");
    ck_assert_str_eq(col->policy_version, "ESX-1");

    const char *topics[2] = {T_NAT, T_MER}, *dests[2] = {"national", "mer"};
    const char *expect[2] = {t->national, t->mer};
    for (int d = 0; d < 2; d++) {
        if (expect[d]) {
            ck_assert_msg(s_count(topics[d], id) == 0, "%s: %s got a record", t->name, dests[d]);
            const pg_audit_event *ev = s_audit_find(PG_AUDIT_WITHHOLD, id, dests[d]);
            ck_assert_msg(ev != NULL, "%s: no withhold for %s", t->name, dests[d]);
            ck_assert_str_eq(ev->outcome, expect[d]);
            ck_assert_str_eq(ev->policy_version, "ESX-1");
            ck_assert_uint_eq(ev->version, 3);
            ck_assert_int_eq(s_held(dests[d], id), 0);
            continue;
        }
        ck_assert_msg(s_count(topics[d], id) == 1, "%s: %s got %d records", t->name, dests[d],
                      s_count(topics[d], id));
        ck_assert_ptr_null(s_audit_find(PG_AUDIT_WITHHOLD, id, dests[d]));
        const pg_outrec *r = s_rec(topics[d], id);
        ck_assert_int_eq(r->audit_action, PG_AUDIT_DISCLOSE);
        ck_assert_str_eq(r->destination, dests[d]);
        ck_assert_str_eq(r->policy_version, "ESX-1");
        ck_assert_str_eq(s_hdr(r, "pg-policy-version"), "ESX-1");
        ck_assert_str_eq(s_hdr(r, PG_HDR_OPERATION), "UPSERT");
        ck_assert_str_eq(s_hdr(r, PG_HDR_VERSION), "3");
        ck_assert_str_eq(s_hdr(r, PG_HDR_ORIGIN_FORCE), "ESX");
        ck_assert_str_eq(s_hdr(r, PG_HDR_SCHEMA), PG_SCHEMA_VERSION);
        ck_assert_int_eq(s_held(dests[d], id), 1);
        pg_entity_update *x = s_unpack_entity(r);
        ck_assert_str_eq(x->id, id);
        if (d == 0) {
            ck_assert_str_eq(s_hdr(r, "pg-agreement"), "ISA-NAT");
            ck_assert_str_eq(s_hdr(r, "pg-redactions"), "none");
            ck_assert_str_eq(r->outcome, "shared");
            if (t->kind == PERSON)
                ck_assert_int_ne(x->person->self_defined_ethnicity, 0);
        } else {
            ck_assert_str_eq(s_hdr(r, "pg-agreement"), t->mer_agreement);
            ck_assert_str_eq(r->agreement, t->mer_agreement);
            ck_assert_str_eq(s_hdr(r, "pg-redactions"), t->mer_redactions);
            if (t->kind == PERSON) {
                /* the same record, another form: ethnicity gone, the rest kept */
                ck_assert_str_eq(r->outcome, "redacted:person.ethnicity");
                ck_assert_int_eq(x->person->self_defined_ethnicity, 0);
                ck_assert_int_eq(x->person->officer_defined_ethnicity, 0);
                ck_assert_str_eq(x->person->occupation, "plumber");
            } else {
                ck_assert_str_eq(r->outcome, "shared");
            }
        }
        polegate__pole__v1__entity_update__free_unpacked(x, NULL);
    }
    /* The source record the ledger holds is never the redacted copy. */
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_arena *a = pg_arena_new(0);
    pg_entity_update *stored;
    ck_assert_int_eq(pg_ledger_get_entity(lg, txn, id, a, &stored, NULL, e, sizeof e), 0);
    if (t->kind == PERSON)
        ck_assert_int_ne(stored->person->self_defined_ethnicity, 0);
    pg_arena_destroy(&a);
    pg_store_abort(&txn);
}
END_TEST

START_TEST(test_secret_counted)
{
    s_begin();
    s_add_entity(s_entity("s1", PERSON, 1, S, P, 1, UPSERT));
    s_add_entity(s_entity("s2", PERSON, 1, TS, P, 1, UPSERT));
    s_route();
    pg_router_stats stats;
    pg_router_get_stats(rt, &stats);
    ck_assert_uint_eq(stats.reasons[PG_POLICY_R_SECRET], 4); /* 2 records x 2 destinations */
    ck_assert_uint_eq(stats.withheld, 4);
    ck_assert_uint_eq(stats.disclosed, 0);
    ck_assert_uint_eq(ob->count, 0);
    ck_assert_uint_eq(s_audit_count(PG_AUDIT_WITHHOLD), 4);
}
END_TEST

/* ------------------------------------------------------------ links */

START_TEST(test_links_follow_ends)
{
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 1, OS, P, 1, UPSERT));
    s_add_entity(s_entity("l1", LOCATION, 1, O, P, 1, UPSERT));
    s_add_entity(s_entity("i1", INTEL, 1, OS, P, 1, UPSERT));
    s_link("k-pl", "p1", PERSON, "l1", LOCATION, O, UPSERT);
    s_link("k-ip", "i1", INTEL, "p1", PERSON, O, UPSERT);
    s_link("k-secret", "p1", PERSON, "l1", LOCATION, S, UPSERT);
    s_route();

    /* both ends shared: the link goes, once, after its ends */
    ck_assert_int_eq(s_count(T_NAT, "k-pl"), 1);
    ck_assert_int_eq(s_count(T_MER, "k-pl"), 1);
    ck_assert_int_lt(s_find_nth(T_MER, "p1", 0), s_find_nth(T_MER, "k-pl", 0));
    ck_assert_int_lt(s_find_nth(T_MER, "l1", 0), s_find_nth(T_MER, "k-pl", 0));
    const pg_outrec *r = s_rec(T_MER, "k-pl");
    ck_assert_int_eq(r->audit_action, PG_AUDIT_DISCLOSE);
    ck_assert_str_eq(s_hdr(r, "pg-agreement"), "ISA-MER");
    ck_assert_str_eq(s_hdr(r, PG_HDR_MARKING), "OFFICIAL;P");
    pg_link_update *l = s_unpack_link(r);
    ck_assert_str_eq(l->from->id, "p1");
    ck_assert_str_eq(l->to->id, "l1");
    ck_assert_uint_eq(l->version, 1);
    polegate__pole__v1__link_update__free_unpacked(l, NULL);

    /* an end Merseyside may not have (intelligence) keeps the link from it */
    ck_assert_int_eq(s_count(T_NAT, "k-ip"), 1);
    ck_assert_int_eq(s_count(T_MER, "k-ip"), 0);
    const pg_audit_event *ev = s_audit_find(PG_AUDIT_WITHHOLD, "k-ip", "mer");
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(ev->outcome, "link-end");
    /* the link's own marking counts as much as its ends' */
    ck_assert_int_eq(s_count(T_NAT, "k-secret"), 0);
    ck_assert_str_eq(s_audit_find(PG_AUDIT_WITHHOLD, "k-secret", "national")->outcome, "secret");
    ck_assert_int_eq(s_held("mer", "k-pl"), 1);
    ck_assert_int_eq(s_held("mer", "k-ip"), 0);
}
END_TEST

/* A link whose far end the gateway has not seen waits; it goes when that end arrives
 * (in a message that does not mention the link). */
START_TEST(test_link_waits_for_unknown_end)
{
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 1, OS, P, 1, UPSERT));
    s_link("k1", "p1", PERSON, "l9", LOCATION, O, UPSERT);
    s_route();
    ck_assert_int_eq(s_count(T_NAT, "p1"), 1);
    ck_assert_int_eq(s_count(T_NAT, "k1"), 0);
    ck_assert_str_eq(s_audit_find(PG_AUDIT_WITHHOLD, "k1", "national")->outcome,
                     "link-end-unknown");
    ck_assert_str_eq(s_audit_find(PG_AUDIT_WITHHOLD, "k1", "mer")->outcome, "link-end-unknown");

    s_begin();
    s_add_entity(s_entity("l9", LOCATION, 1, O, P, 1, UPSERT));
    s_route();
    ck_assert_int_eq(s_count(T_NAT, "l9"), 1);
    ck_assert_int_eq(s_count(T_NAT, "k1"), 1);
    ck_assert_int_eq(s_count(T_MER, "k1"), 1);
    ck_assert_int_lt(s_find_nth(T_NAT, "l9", 0), s_find_nth(T_NAT, "k1", 0));
    const pg_outrec *r = s_rec(T_NAT, "k1");
    ck_assert_int_eq(r->audit_action, PG_AUDIT_DISCLOSE);
    ck_assert_str_eq(s_hdr(r, PG_HDR_VERSION), "1");
    ck_assert_int_eq(s_held("national", "k1"), 1);
}
END_TEST

/* An end that is known but withheld holds the link until the end becomes shareable. */
START_TEST(test_link_waits_for_withheld_end)
{
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 1, OS, P, 1, UPSERT));
    s_add_entity(s_entity("l1", LOCATION, 1, S, P, 1, UPSERT));
    s_link("k1", "p1", PERSON, "l1", LOCATION, O, UPSERT);
    s_route();
    ck_assert_int_eq(s_count(T_NAT, "k1"), 0);
    ck_assert_str_eq(s_audit_find(PG_AUDIT_WITHHOLD, "k1", "national")->outcome, "link-end");

    /* re-graded down: the location, then the link, go out */
    s_begin();
    s_add_entity(s_entity("l1", LOCATION, 2, O, P, 1, UPSERT));
    s_route();
    ck_assert_int_eq(s_count(T_NAT, "l1"), 1);
    ck_assert_int_eq(s_count(T_NAT, "k1"), 1);
    ck_assert_int_eq(s_count(T_MER, "k1"), 1);
    /* and an update of an end that stays shared does not resend its links */
    s_begin();
    s_add_entity(s_entity("l1", LOCATION, 3, O, P, 1, UPSERT));
    s_route();
    ck_assert_int_eq(s_count(T_NAT, "l1"), 1);
    ck_assert_int_eq(s_count(T_NAT, "k1"), 0);
}
END_TEST

/* ------------------------------------------------------------ withdrawal */

static int s_reconcile(void)
{
    pg_outbatch_reset(ob);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    int n = pg_router_reconcile(rt, txn, ob, e, sizeof e);
    ck_assert_msg(n >= 0, "reconcile: %s", e);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    return n;
}

static void s_restart(const char *policy_yaml)
{
    s_close();
    s_open(policy_yaml);
}

/* p1 and l1 shared with both destinations, linked by k1 (one message). */
static void s_shared_pair(void)
{
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 1, OS, P, 1, UPSERT));
    s_add_entity(s_entity("l1", LOCATION, 1, O, P, 1, UPSERT));
    s_link("k1", "p1", PERSON, "l1", LOCATION, O, UPSERT);
    s_route();
    ck_assert_int_eq(s_held("national", "k1"), 1);
    ck_assert_int_eq(s_held("mer", "k1"), 1);
}

/* A consumer's copy of every topic: per (topic, key) the highest version seen, a
 * DELETE winning at an equal version (docs/topics.md). */
typedef struct s_copy {
    char topic[64], key[16];
    uint64_t version;
    int deleted;
} s_copy;
static s_copy s_copies[64];
static size_t s_ncopies;

static s_copy *s_copy_of(const char *topic, const char *key)
{
    for (size_t i = 0; i < s_ncopies; i++)
        if (!strcmp(s_copies[i].topic, topic) && !strcmp(s_copies[i].key, key))
            return &s_copies[i];
    return NULL;
}

/* ob's records, consumed (tombstones follow their DELETE: compaction's business). */
static void s_consume(void)
{
    for (size_t i = 0; i < ob->count; i++) {
        const pg_outrec *r = &ob->recs[i];
        if (!r->value)
            continue;
        uint64_t v = strtoull(s_hdr(r, PG_HDR_VERSION), NULL, 10);
        int del = !strcmp(s_hdr(r, PG_HDR_OPERATION), "DELETE");
        s_copy *c = s_copy_of(r->topic, r->key);
        if (!c) {
            ck_assert_uint_lt(s_ncopies, sizeof s_copies / sizeof s_copies[0]);
            c = &s_copies[s_ncopies++];
            snprintf(c->topic, sizeof c->topic, "%s", r->topic);
            snprintf(c->key, sizeof c->key, "%s", r->key);
        } else if (v < c->version || (v == c->version && !del)) {
            continue;
        }
        c->version = v;
        c->deleted = del;
    }
}

/* What the router says dest holds of p1, l1 and k1 is what its topic's consumer holds. */
static void s_assert_topic_agrees(const char *dest, const char *topic)
{
    static const char *const ids[] = {"p1", "l1", "k1"};
    for (size_t i = 0; i < 3; i++) {
        const s_copy *c = s_copy_of(topic, ids[i]);
        int holds = c && !c->deleted;
        ck_assert_msg(s_held(dest, ids[i]) == holds, "%s: the router says %s %s; %s %s", ids[i],
                      dest, s_held(dest, ids[i]) ? "holds it" : "does not", topic,
                      holds ? "holds it" : "does not");
    }
}

#define T_MER2 "polegate.esx.mer2.pole.v1"
#define POLICY_NAT_ONLY(version)                                                                   \
    "policy:\n"                                                                                    \
    "  version: " version "\n"                                                                     \
    "  agreements:\n"                                                                              \
    "    - {name: ISA-NAT, description: national}\n"                                               \
    "  destinations:\n" NAT_DEST

/* Found by attack: a topic written again by a destination that did not write it
 * before (one removed and added back, one renamed, one whose topic moved and moved
 * back) was sent what its consumers had seen withdrawn, at the versions of the
 * withdrawals' DELETEs, which win: the consumers dropped them while the router marked
 * them held, so nothing was sent again. What a topic's consumers were last sent of a
 * record now stays with the topic: the router and each topic's consumer agree after
 * every change, a record withdrawn comes back with its next revision, and a rename
 * (a new name on a topic a former destination wrote) withdraws nothing. */
START_TEST(test_topic_written_again_agrees_with_its_consumers)
{
    s_ncopies = 0;
    s_shared_pair();
    s_consume();
    s_assert_topic_agrees("mer", T_MER);
    /* removed (its agreement lapsed), then added back */
    s_restart(POLICY_NAT_ONLY("ESX-2"));
    s_reconcile();
    s_consume();
    s_restart(POLICY("ESX-3", "OFFICIAL-SENSITIVE", T_MER));
    s_reconcile();
    s_consume();
    s_assert_topic_agrees("mer", T_MER);
    /* renamed, the same topic */
    char renamed[4096];
    const char *yaml = POLICY("ESX-4", "OFFICIAL-SENSITIVE", T_MER),
               *at = strstr(yaml, "name: mer\n");
    ck_assert_ptr_nonnull(at);
    snprintf(renamed, sizeof renamed, "%.*sname: merseyside\n%s", (int)(at - yaml), yaml,
             at + strlen("name: mer\n"));
    s_restart(renamed);
    s_reconcile();
    s_consume();
    s_assert_topic_agrees("merseyside", T_MER);
    /* the next revisions come back */
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 2, OS, P, 1, UPSERT));
    s_add_entity(s_entity("l1", LOCATION, 2, O, P, 1, UPSERT));
    s_route();
    s_consume();
    s_assert_topic_agrees("merseyside", T_MER);
    ck_assert_int_eq(s_held("merseyside", "p1"), 1);
    /* renamed back while it holds them: nothing withdrawn, nothing sent again */
    s_restart(POLICY("ESX-5", "OFFICIAL-SENSITIVE", T_MER));
    s_reconcile();
    ck_assert_int_eq(s_count(T_MER, "p1") + s_count(T_MER, "l1") + s_count(T_MER, "k1"), 0);
    ck_assert_int_eq(s_held("mer", "p1"), 1);
    s_assert_topic_agrees("mer", T_MER);
    /* a topic moved, then moved back */
    s_restart(POLICY("ESX-6", "OFFICIAL-SENSITIVE", T_MER2));
    s_reconcile();
    s_consume();
    s_assert_topic_agrees("mer", T_MER2);
    s_restart(POLICY("ESX-7", "OFFICIAL-SENSITIVE", T_MER));
    s_reconcile();
    s_consume();
    s_assert_topic_agrees("mer", T_MER);
    s_assert_topic_agrees("national", T_NAT);
}
END_TEST

START_TEST(test_withdraw_marking_up)
{
    s_shared_pair();
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 2, S, P, 1, UPSERT));
    s_route();
    /* each destination: DELETE + tombstone of the person at the new version, and of
     * its link, whose version goes past the one it had */
    s_assert_withdrawal(T_NAT, "p1", 2, "secret");
    s_assert_withdrawal(T_MER, "p1", 2, "secret");
    s_assert_withdrawal(T_NAT, "k1", 2, "link-end");
    s_assert_withdrawal(T_MER, "k1", 2, "link-end");
    ck_assert_int_eq(s_count(T_NAT, "p1"), 2);
    ck_assert_int_eq(s_count(T_NAT, "l1"), 0);
    const pg_outrec *r = s_rec(T_NAT, "p1");
    ck_assert_str_eq(r->agreement, "ISA-NAT");
    ck_assert_str_eq(s_hdr(r, "pg-agreement"), "ISA-NAT");
    ck_assert_str_eq(s_hdr(r, "pg-policy-version"), "ESX-1");
    ck_assert_str_eq(s_hdr(r, "pg-redactions"), "none");
    ck_assert_int_eq(s_held("national", "p1"), 0);
    ck_assert_int_eq(s_held("mer", "k1"), 0);
    ck_assert_ptr_null(s_audit_find(PG_AUDIT_WITHHOLD, "p1", "national"));
    pg_router_stats stats;
    pg_router_get_stats(rt, &stats);
    ck_assert_uint_eq(stats.withdrawn, 4);
    ck_assert_uint_eq(stats.reasons[PG_POLICY_R_SECRET], 2);
    ck_assert_uint_eq(stats.reasons[PG_POLICY_R_LINK_END], 2);

    /* down again: the person at its new version, the unchanged link past its DELETE */
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 3, OS, P, 1, UPSERT));
    s_route();
    ck_assert_str_eq(s_hdr(s_rec(T_NAT, "p1"), PG_HDR_VERSION), "3");
    const pg_outrec *k = s_rec(T_NAT, "k1");
    ck_assert_str_eq(s_hdr(k, PG_HDR_OPERATION), "UPSERT");
    ck_assert_str_eq(s_hdr(k, PG_HDR_VERSION), "3");
    pg_link_update *l = s_unpack_link(k);
    ck_assert_uint_eq(l->version, 3);
    polegate__pole__v1__link_update__free_unpacked(l, NULL);
    ck_assert_int_eq(s_held("national", "k1"), 1);
}
END_TEST

START_TEST(test_withdraw_mopi)
{
    s_shared_pair();
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 2, OS, P, 3, UPSERT));
    s_route();
    s_assert_withdrawal(T_MER, "p1", 2, "mopi");
    s_assert_withdrawal(T_MER, "k1", 2, "link-end");
    /* national takes every group: the new version, its link untouched */
    ck_assert_int_eq(s_count(T_NAT, "p1"), 1);
    ck_assert_str_eq(s_hdr(s_rec(T_NAT, "p1"), PG_HDR_OPERATION), "UPSERT");
    ck_assert_int_eq(s_count(T_NAT, "k1"), 0);
    ck_assert_int_eq(s_held("national", "k1"), 1);
}
END_TEST

START_TEST(test_withdraw_delete)
{
    s_shared_pair();
    s_begin();
    s_add_entity(s_entity("s1", PERSON, 1, S, P, 1, UPSERT));
    s_route();

    s_begin();
    s_add_entity(s_entity("p1", PERSON, 5, OS, P, 1, DELETE));
    s_add_entity(s_entity("s1", PERSON, 2, S, P, 1, DELETE));
    s_route();
    /* a deletion at source goes as the ledger made it (its marking is one they saw) */
    s_assert_delete(T_NAT, "p1", 5, "deleted", "OFFICIAL-SENSITIVE;P");
    s_assert_delete(T_MER, "p1", 5, "deleted", "OFFICIAL-SENSITIVE;P");
    /* its link: the ledger deletes it, and whoever had it is told */
    s_assert_delete(T_NAT, "k1", 2, "deleted", "OFFICIAL;P");
    s_assert_delete(T_MER, "k1", 2, "deleted", "OFFICIAL;P");
    ck_assert_str_eq(s_hdr(s_rec(T_MER, "k1"), "pg-agreement"), "ISA-MER");
    ck_assert_int_eq(s_count(T_NAT, "k1"), 2);
    /* a record nobody had: erased, and nothing sent */
    ck_assert_int_eq(s_count(T_NAT, "s1"), 0);
    ck_assert_int_eq(s_count(T_MER, "s1"), 0);
    ck_assert_ptr_null(s_audit_find(PG_AUDIT_WITHHOLD, "s1", NULL));
    ck_assert_uint_eq(s_audit_count(PG_AUDIT_ERASE), 2);
    ck_assert_uint_eq(s_audit_count(PG_AUDIT_COLLECT), 0);
    const pg_audit_event *ev = s_audit_find(PG_AUDIT_ERASE, "p1", NULL);
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(ev->native_id, "N-p1");
    ck_assert_uint_eq(ev->version, 5);
    ck_assert_int_eq(s_held("national", "p1"), 0);
    ck_assert_int_eq(s_held("mer", "k1"), 0);

    /* A DELETE whose marking went up with it says no more than they knew: bare. */
    s_begin();
    s_add_entity(s_entity("p2", PERSON, 1, OS, P, 1, UPSERT));
    s_route();
    s_begin();
    s_add_entity(s_entity("p2", PERSON, 2, S, P, 1, DELETE));
    s_route();
    s_assert_withdrawal(T_NAT, "p2", 2, "deleted");
    s_assert_withdrawal(T_MER, "p2", 2, "deleted");
}
END_TEST

/* Person p1 (OFFICIAL-SENSITIVE, P, MoPI 1) of org unit ESX/CID at version, routed. */
static void s_route_p1_of_unit(uint64_t version, int op)
{
    s_begin();
    pg_entity_update *x = s_entity("p1", PERSON, version, OS, P, 1, op);
    x->origin->org_unit = "ESX/CID";
    s_add_entity(x);
    s_route();
}

/* A forwarded DELETE loses origin.org_unit where the destination redacts it. */
START_TEST(test_delete_redacted)
{
    s_restart(POLICY_R("ESX-1", "OFFICIAL-SENSITIVE", T_MER, "person.ethnicity, origin.org_unit"));
    s_route_p1_of_unit(1, UPSERT);
    ck_assert_str_eq(s_hdr(s_rec(T_MER, "p1"), "pg-redactions"),
                     "origin.org_unit,person.ethnicity");
    s_route_p1_of_unit(2, DELETE);
    s_assert_delete(T_MER, "p1", 2, "deleted", "OFFICIAL-SENSITIVE;P");
    const pg_outrec *r = s_rec(T_MER, "p1");
    ck_assert_str_eq(s_hdr(r, "pg-redactions"), "origin.org_unit");
    s_assert_org_unit(T_MER, "p1", "");
    ck_assert_str_eq(s_hdr(s_rec(T_NAT, "p1"), "pg-redactions"), "none");
    s_assert_org_unit(T_NAT, "p1", "ESX/CID");
}
END_TEST

/* A policy change that makes a destination redact a field withdraws each record it
 * holds with that field (at the version it holds; outcome "redaction"): the contract
 * lets no record be sent again at that version, so it comes back, redacted, with its
 * next revision. A record without the field, or sent without it already, stays (found
 * by attack: the field stayed at the destination). */
START_TEST(test_policy_change_redacting_withdraws)
{
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 3, OS, P, 1, UPSERT));
    pg_entity_update *bare = s_entity("p2", PERSON, 1, OS, P, 1, UPSERT);
    bare->person->occupation = "";
    s_add_entity(bare);
    s_route();
    ck_assert_int_eq(s_held("mer", "p1"), 1);
    s_restart(
        POLICY_R("ESX-2", "OFFICIAL-SENSITIVE", T_MER, "person.ethnicity, person.occupation"));
    ck_assert_int_eq(s_reconcile(), 1);
    s_assert_withdrawal(T_MER, "p1", 3, "redaction");
    ck_assert_int_eq(s_held("mer", "p1"), 0);
    ck_assert_int_eq(s_held("mer", "p2"), 1);
    ck_assert_int_eq(s_held("national", "p1"), 1);
    /* its next revision goes, redacted */
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 4, OS, P, 1, UPSERT));
    s_route();
    ck_assert_str_eq(s_hdr(s_rec(T_MER, "p1"), "pg-redactions"),
                     "person.ethnicity,person.occupation");
    pg_entity_update *u = s_unpack_entity(s_rec(T_MER, "p1"));
    ck_assert_str_eq(u->person->occupation, "");
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);
    /* sent without the field: a rule change elsewhere withdraws nothing more */
    s_restart(POLICY_R("ESX-3", "OFFICIAL", T_MER, "person.ethnicity, person.occupation"));
    ck_assert_int_eq(s_reconcile(), 2); /* OFFICIAL-SENSITIVE: both by classification */
    s_assert_withdrawal(T_MER, "p1", 4, "classification");
    s_restart(
        POLICY_R("ESX-4", "OFFICIAL-SENSITIVE", T_MER, "person.ethnicity, person.occupation"));
    s_reconcile();
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 5, OS, P, 1, UPSERT));
    s_route();
    ck_assert_int_eq(s_held("mer", "p1"), 1);
    s_restart(POLICY_R("ESX-5", "OFFICIAL-SENSITIVE", T_MER, "person.occupation"));
    ck_assert_int_eq(s_reconcile(), 0); /* ethnicity allowed again: not sent before p1 changes */
    ck_assert_int_eq(s_held("mer", "p1"), 1);
}
END_TEST

/* The daemon's policy change (gateway/daemon.c s_reconcile) on a spool over the same
 * store: reconcile, then the spool's withhold with the router's re-forming hook. */
static int s_reform_hook(void *router, const pg_outrec *rec, pg_outbatch *out, char *errstr,
                         size_t errstr_size)
{
    return pg_router_reform_withdrawal(router, rec, out, errstr, errstr_size);
}

static size_t s_change_policy_with_spool(const char *policy_yaml, const pg_outbatch *spooled)
{
    pg_spool *sp = pg_spool_new(st, NULL, e, sizeof e);
    ck_assert_msg(sp != NULL, "%s", e);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    if (spooled)
        ck_assert_msg(pg_spool_append(sp, txn, spooled, NULL, e, sizeof e) == 0, "%s", e);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_spool_destroy(&sp);
    s_restart(policy_yaml);
    sp = pg_spool_new(st, NULL, e, sizeof e);
    ck_assert_msg(sp != NULL, "%s", e);
    pg_spool_set_reform(sp, s_reform_hook, rt);
    pg_outbatch_reset(ob);
    txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_msg(pg_router_reconcile(rt, txn, ob, e, sizeof e) >= 0, "%s", e);
    size_t dropped = 0, reformed = 0;
    ck_assert_msg(pg_spool_withhold(sp, txn, ob, 1, &dropped, &reformed, e, sizeof e) == 0, "%s",
                  e);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    /* ob: what the spool now holds, oldest first */
    pg_outbatch_reset(ob);
    txn = pg_store_begin(st, 0, e, sizeof e);
    uint64_t seq = 0;
    while (pg_spool_next(sp, txn, seq, &seq, NULL, ob, e, sizeof e) == 0)
        ;
    pg_store_abort(&txn);
    pg_spool_destroy(&sp);
    return reformed;
}

/* A deletion at source spooled under one policy and not yet published when the policy
 * changes goes in the form the new policy gives it: origin.org_unit cleared when the
 * destination now redacts it, bare when it may no longer see its marking; for a
 * destination whose rules did not change it stays as spooled (found by review: it went
 * with the old policy's form). */
START_TEST(test_policy_change_reforms_spooled_withdrawals)
{
    s_route_p1_of_unit(1, UPSERT);
    s_route_p1_of_unit(2, DELETE);
    s_assert_delete(T_MER, "p1", 2, "deleted", "OFFICIAL-SENSITIVE;P");
    pg_outbatch *spooled = pg_outbatch_new();
    ck_assert_ptr_nonnull(spooled);
    for (size_t i = 0; i < ob->count; i++) {
        pg_outrec *c = pg_outbatch_add(spooled);
        ck_assert_ptr_nonnull(c);
        *c = ob->recs[i];
    }
    spooled->party = "rms:test";

    /* mer now redacts origin.org_unit: the deletion keeps its marking, loses the unit */
    ck_assert_uint_eq(s_change_policy_with_spool(POLICY_R("ESX-2", "OFFICIAL-SENSITIVE", T_MER,
                                                          "person.ethnicity, origin.org_unit"),
                                                 spooled),
                      1);
    pg_outbatch_destroy(&spooled);
    ck_assert_int_eq(s_count(T_MER, "p1"), 2);
    s_assert_delete(T_MER, "p1", 2, "deleted", "OFFICIAL-SENSITIVE;P");
    const pg_outrec *r = s_rec(T_MER, "p1");
    ck_assert_str_eq(s_hdr(r, "pg-redactions"), "origin.org_unit");
    ck_assert_str_eq(s_hdr(r, "pg-policy-version"), "ESX-2");
    ck_assert_str_eq(r->policy_version, "ESX-2");
    ck_assert_str_eq(r->party, "rms:test");
    s_assert_org_unit(T_MER, "p1", "");
    /* national's rules did not change: as spooled */
    ck_assert_str_eq(s_hdr(s_rec(T_NAT, "p1"), "pg-policy-version"), "ESX-1");
    s_assert_org_unit(T_NAT, "p1", "ESX/CID");

    /* mer no longer redacts the unit: the value is the same (its unit already cleared),
     * so the record stays as spooled, its pg-redactions still saying what it lacks
     * (a review found it re-formed with pg-redactions: none) */
    ck_assert_uint_eq(
        s_change_policy_with_spool(
            POLICY_R("ESX-2b", "OFFICIAL-SENSITIVE", T_MER, "person.ethnicity"), NULL),
        0);
    r = s_rec(T_MER, "p1");
    ck_assert_str_eq(s_hdr(r, "pg-redactions"), "origin.org_unit");
    ck_assert_str_eq(s_hdr(r, "pg-policy-version"), "ESX-2");
    /* mer may now see OFFICIAL only: the bare DELETE (no marking, no unit) */
    ck_assert_uint_eq(
        s_change_policy_with_spool(
            POLICY_R("ESX-3", "OFFICIAL", T_MER, "person.ethnicity, origin.org_unit"), NULL),
        1);
    ck_assert_int_eq(s_count(T_MER, "p1"), 2);
    s_assert_withdrawal(T_MER, "p1", 2, "deleted");
    ck_assert_str_eq(s_hdr(s_rec(T_MER, "p1"), "pg-policy-version"), "ESX-3");
    ck_assert_int_eq(s_count(T_NAT, "p1"), 2);
    s_assert_delete(T_NAT, "p1", 2, "deleted", "OFFICIAL-SENSITIVE;P");
    /* mer removed from the policy: the bare form on its old topic */
    ck_assert_uint_eq(s_change_policy_with_spool("policy:\n  version: ESX-4\n  agreements:\n"
                                                 "    - {name: ISA-NAT, description: national}\n"
                                                 "  destinations:\n" NAT_DEST,
                                                 NULL),
                      0);
    s_assert_withdrawal(T_MER, "p1", 2, "deleted");
}
END_TEST

/* A link held with origin.org_unit, whose destination's policy now redacts it, is
 * sent again redacted at the next version on its topic (link versions are the
 * gateway's), not left as it was (found by review). */
START_TEST(test_policy_change_redacting_link)
{
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 1, O, P, 1, UPSERT));
    s_add_entity(s_entity("l1", LOCATION, 1, O, P, 1, UPSERT));
    pg_link_update *k = s_link("k1", "p1", PERSON, "l1", LOCATION, O, UPSERT);
    k->origin->org_unit = "ESX/CID";
    s_route();
    ck_assert_int_eq(s_held("mer", "k1"), 1);
    s_restart(POLICY_R("ESX-2", "OFFICIAL-SENSITIVE", T_MER, "person.ethnicity, origin.org_unit"));
    s_reconcile();
    ck_assert_int_eq(s_held("mer", "k1"), 1);
    const pg_outrec *r = s_rec(T_MER, "k1");
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(s_hdr(r, "pg-redactions"), "origin.org_unit");
    ck_assert_str_eq(s_hdr(r, PG_HDR_VERSION), "2");
    pg_link_update *u = polegate__pole__v1__link_update__unpack(NULL, r->value_len, r->value);
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->origin->org_unit, "");
    polegate__pole__v1__link_update__free_unpacked(u, NULL);
    ck_assert_int_eq(s_count(T_NAT, "k1"), 0); /* national redacts nothing new */
    ck_assert_int_eq(s_reconcile(), 0);        /* once */
}
END_TEST

/* A held state stored before the redactions were kept (no redaction bits): what it was
 * sent with is taken as what the destination's policy redacted then, so a policy change
 * that redacts nothing new withdraws nothing (found by review: an upgrade withdrew
 * every redacted record at its first policy change). */
START_TEST(test_policy_change_old_state_keeps)
{
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 3, OS, P, 1, UPSERT));
    s_route();
    ck_assert_int_eq(s_held("mer", "p1"), 1);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    pg_store_db held;
    ck_assert_int_eq(pg_store_db_open(txn, "router.held", 0, &held, e, sizeof e), 0);
    const char key[] = "mer\0p1";
    const void *v;
    size_t vl;
    /* a state sent with no redaction keeps its (empty) bits too, after the agreement
     * and a NUL, where the release before, reading the agreement as a C string, stops */
    const char nat[] = "national\0p1";
    ck_assert_int_eq(pg_store_get(txn, held, nat, sizeof nat - 1, &v, &vl, e, sizeof e), 0);
    const unsigned char *b = v;
    ck_assert_uint_eq(b[0], 1); /* the type as before: an entity */
    ck_assert_uint_eq(strlen((const char *)b + 18), vl - 18 - 5);
    ck_assert_mem_eq(b + vl - 5, "\0\0\0\0\0", 5);
    ck_assert_int_eq(pg_store_get(txn, held, key, sizeof key - 1, &v, &vl, e, sizeof e), 0);
    unsigned char old[128];
    ck_assert_uint_le(vl, sizeof old);
    memcpy(old, v, vl - 5); /* as the code before stored it: no NUL, no bits */
    ck_assert_int_eq(pg_store_put(txn, held, key, sizeof key - 1, old, vl - 5, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    s_restart(POLICY("ESX-2", "OFFICIAL-SENSITIVE", T_MER));
    ck_assert_int_eq(s_reconcile(), 0);
    ck_assert_int_eq(s_held("mer", "p1"), 1);
}
END_TEST

/* merged_from names only what the destination holds. */
START_TEST(test_merge_refs_filtered)
{
    s_begin();
    s_add_entity(s_entity("m1", PERSON, 1, OS, P, 1, UPSERT));
    s_add_entity(s_entity("m2", PERSON, 1, S, P, 1, UPSERT));
    s_route();
    s_begin();
    pg_entity_update *x = s_entity("p1", PERSON, 1, OS, P, 1, UPSERT);
    x->n_merged_from = 2;
    x->merged_from = pg_arena_alloc(in->arena, 2 * sizeof *x->merged_from);
    x->merged_from[0] = s_ref("m1", PERSON);
    x->merged_from[1] = s_ref("m2", PERSON);
    s_add_entity(x);
    s_route();
    pg_entity_update *u = s_unpack_entity(s_rec(T_NAT, "p1"));
    ck_assert_uint_eq(u->n_merged_from, 1);
    ck_assert_str_eq(u->merged_from[0]->id, "m1");
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);
    /* the merged-away record is withdrawn from whoever had it */
    s_assert_delete(T_NAT, "m1", 2, "deleted", "OFFICIAL-SENSITIVE;P");
    ck_assert_int_eq(s_count(T_NAT, "m2"), 0);
}
END_TEST

/* Issue 11, 2 and 3: a survivor raised to SECRET in the change that merges: the
 * survivor is withdrawn, and the merged-away record, which no longer exists, is
 * withdrawn from every destination that holds it, whatever happens to the survivor. */
START_TEST(test_merge_into_withheld_survivor)
{
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 1, OS, P, 1, UPSERT));
    s_add_entity(s_entity("m1", PERSON, 1, O, P, 1, UPSERT));
    s_route();
    ck_assert_int_eq(s_held("mer", "p1"), 1);
    ck_assert_int_eq(s_held("mer", "m1"), 1);
    s_begin();
    pg_entity_update *x = s_entity("p1", PERSON, 2, S, P, 1, UPSERT);
    x->n_merged_from = 1;
    x->merged_from = pg_arena_alloc(in->arena, sizeof *x->merged_from);
    x->merged_from[0] = s_ref("m1", PERSON);
    s_add_entity(x);
    s_route();
    s_assert_withdrawal(T_NAT, "p1", 2, "secret");
    s_assert_withdrawal(T_MER, "p1", 2, "secret");
    s_assert_delete(T_NAT, "m1", 2, "deleted", "OFFICIAL;P");
    s_assert_delete(T_MER, "m1", 2, "deleted", "OFFICIAL;P");
    ck_assert_int_eq(s_held("national", "p1") + s_held("mer", "p1"), 0);
    ck_assert_int_eq(s_held("national", "m1") + s_held("mer", "m1"), 0);

    /* a survivor never shared (SECRET from the start) merging a shared record */
    s_begin();
    s_add_entity(s_entity("p2", PERSON, 1, S, P, 1, UPSERT));
    s_add_entity(s_entity("m2", PERSON, 1, O, P, 1, UPSERT));
    s_route();
    s_begin();
    x = s_entity("p2", PERSON, 2, S, P, 1, UPSERT);
    x->n_merged_from = 1;
    x->merged_from = pg_arena_alloc(in->arena, sizeof *x->merged_from);
    x->merged_from[0] = s_ref("m2", PERSON);
    s_add_entity(x);
    s_route();
    ck_assert_int_eq(s_count(T_MER, "p2"), 0);
    s_assert_delete(T_MER, "m2", 2, "deleted", "OFFICIAL;P");
    ck_assert_int_eq(s_held("mer", "m2"), 0);
}
END_TEST

/* A survivor never shared (SECRET) merges a shared record with a shared link: the
 * link's DELETE tells its destinations what they were sent (the link's own origin),
 * never the origin of the SECRET survivor that caused it (its native id names the
 * record, its org_unit a unit): it once carried the survivor's. */
START_TEST(test_merge_link_delete_keeps_link_origin)
{
    s_begin();
    s_add_entity(s_entity("p3", PERSON, 1, S, P, 1, UPSERT));
    s_add_entity(s_entity("m3", PERSON, 1, O, P, 1, UPSERT));
    s_add_entity(s_entity("l3", LOCATION, 1, O, P, 1, UPSERT));
    pg_link_update *k = s_link("k-ml", "m3", PERSON, "l3", LOCATION, O, UPSERT);
    k->origin->native_id = "N-m3";
    k->origin->org_unit = "ESX/CID";
    s_route();
    ck_assert_int_eq(s_held("national", "k-ml") + s_held("mer", "k-ml"), 2);
    s_begin();
    pg_entity_update *x = s_entity("p3", PERSON, 2, S, P, 1, UPSERT);
    x->origin->org_unit = "ESX/SECRET-SQUAD";
    x->n_merged_from = 1;
    x->merged_from = pg_arena_alloc(in->arena, sizeof *x->merged_from);
    x->merged_from[0] = s_ref("m3", PERSON);
    s_add_entity(x);
    s_route();
    const char *topics[] = {T_NAT, T_MER};
    for (int t = 0; t < 2; t++) {
        const pg_outrec *r = s_rec(topics[t], "k-ml");
        ck_assert_str_eq(s_hdr(r, PG_HDR_OPERATION), "DELETE");
        pg_link_update *l = s_unpack_link(r);
        ck_assert_ptr_nonnull(l->origin);
        ck_assert_str_eq(l->origin->native_id, "N-m3");
        ck_assert_str_eq(l->origin->org_unit, "ESX/CID");
        polegate__pole__v1__link_update__free_unpacked(l, NULL);
        ck_assert_int_eq(s_count(topics[t], "p3"), 0);
    }
    ck_assert_int_eq(s_held("national", "k-ml") + s_held("mer", "k-ml"), 0);
}
END_TEST

/* ------------------------------------------------------------ policy change */

START_TEST(test_policy_change_at_restart)
{
    s_shared_pair();
    s_begin();
    s_add_entity(s_entity("v1", VEHICLE, 4, O, P, 1, UPSERT));
    s_route();
    ck_assert_int_eq(s_reconcile(), 0); /* same policy: nothing */

    /* Merseyside now takes OFFICIAL only: the OFFICIAL-SENSITIVE person goes, and its
     * link with it; the OFFICIAL location and vehicle stay. */
    s_restart(POLICY("ESX-2", "OFFICIAL", T_MER));
    ck_assert_int_eq(s_reconcile(), 2);
    s_assert_withdrawal(T_MER, "p1", 1, "classification"); /* the version it holds */
    s_assert_withdrawal(T_MER, "k1", 2, "link-end");
    ck_assert_str_eq(s_rec(T_MER, "p1")->policy_version, "ESX-2");
    ck_assert_str_eq(s_hdr(s_rec(T_MER, "p1"), "pg-policy-version"), "ESX-2");
    ck_assert_uint_eq(ob->count, 4);
    ck_assert_int_eq(s_held("mer", "p1"), 0);
    ck_assert_int_eq(s_held("mer", "l1"), 1);
    ck_assert_int_eq(s_held("national", "p1"), 1);
    ck_assert_int_eq(s_reconcile(), 0); /* done once */

    /* A topic that moves: everything held is withdrawn from the old topic, the state
     * forgotten, and what it may receive published on the new one. */
    s_restart(POLICY("ESX-3", "OFFICIAL", "polegate.esx.mer2.pole.v1"));
    ck_assert_int_eq(s_reconcile(), 2);
    s_assert_withdrawal(T_MER, "l1", 1, "kind");
    s_assert_withdrawal(T_MER, "v1", 4, "kind");
    ck_assert_int_eq(s_count("polegate.esx.mer2.pole.v1", "l1"), 1);
    ck_assert_int_eq(s_count("polegate.esx.mer2.pole.v1", "v1"), 1);
    ck_assert_int_eq(s_count("polegate.esx.mer2.pole.v1", "p1"), 0); /* OFFICIAL only */
    ck_assert_int_eq(s_count("polegate.esx.mer2.pole.v1", "k1"), 0); /* its end is not there */
    ck_assert_int_lt(s_find_nth(T_MER, "l1", 0), s_find_nth("polegate.esx.mer2.pole.v1", "l1", 0));
    ck_assert_uint_eq(ob->count, 6);
    ck_assert_int_eq(s_held("mer", "l1"), 1);
    s_begin();
    s_add_entity(s_entity("l1", LOCATION, 2, O, P, 1, UPSERT));
    s_route();
    ck_assert_int_eq(s_count("polegate.esx.mer2.pole.v1", "l1"), 1);
    ck_assert_str_eq(s_hdr(s_rec("polegate.esx.mer2.pole.v1", "l1"), PG_HDR_VERSION), "2");
}
END_TEST

/* Failure mode 3 of issue 13: the stored policy says the same version with other
 * destinations (a byte of the store changed, or a policy edited without a new
 * version): a configuration error, nothing withdrawn. */
START_TEST(test_policy_same_version_other_topic_refused)
{
    s_shared_pair();
    s_restart(POLICY("ESX-1", "OFFICIAL-SENSITIVE", "polegate.esx.other.pole.v1"));
    pg_outbatch_reset(ob);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_router_reconcile(rt, txn, ob, e, sizeof e), PG_ECONFIG);
    pg_store_abort(&txn);
    ck_assert_msg(strstr(e, "policy.version ESX-1 did not change but its destinations did") &&
                      strstr(e, "mer=" T_MER) && strstr(e, "mer=polegate.esx.other.pole.v1"),
                  "%s", e);
    ck_assert_uint_eq(ob->count, 0);
    ck_assert_int_eq(s_held("mer", "p1"), 1);
}
END_TEST

/* The same version with the same destinations but other rules (mer's ceiling lowered
 * without a new policy.version, the gap a reviewer found): a configuration error,
 * nothing withdrawn. A policy only re-laid-out or commented is the same policy. */
START_TEST(test_policy_same_version_other_rules_refused)
{
    s_shared_pair();
    s_restart("# a comment\n" POLICY("ESX-1", "OFFICIAL-SENSITIVE", T_MER));
    ck_assert_int_eq(s_reconcile(), 0);
    s_restart(POLICY("ESX-1", "OFFICIAL", T_MER));
    pg_outbatch_reset(ob);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_router_reconcile(rt, txn, ob, e, sizeof e), PG_ECONFIG);
    pg_store_abort(&txn);
    ck_assert_msg(strstr(e, "policy.version ESX-1 did not change but its rules did"), "%s", e);
    ck_assert_uint_eq(ob->count, 0);
    ck_assert_int_eq(s_held("mer", "p1"), 1);
}
END_TEST

/* The router's meta value key into out (at most size bytes): its length. */
static size_t s_meta(const char *key, char *out, size_t size)
{
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_store_db meta;
    const void *v;
    size_t vlen;
    ck_assert_int_eq(pg_store_db_open(txn, "router.meta", 0, &meta, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_get(txn, meta, key, strlen(key), &v, &vlen, e, sizeof e), 0);
    ck_assert_uint_le(vlen, size);
    memcpy(out, v, vlen);
    pg_store_abort(&txn);
    return vlen;
}

/* Set (v) or remove (v NULL) the router's meta value key. */
static void s_set_meta(const char *key, const void *v, size_t len)
{
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    pg_store_db meta;
    ck_assert_int_eq(pg_store_db_open(txn, "router.meta", 0, &meta, e, sizeof e), 0);
    if (v)
        ck_assert_int_eq(pg_store_put(txn, meta, key, strlen(key), v, len, e, sizeof e), 0);
    else
        ck_assert_int_eq(pg_store_del(txn, meta, key, strlen(key), NULL, 0, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
}

/* A policy whose scalars are only quoted otherwise is the same policy (the digest once
 * counted quoting, and refused such a file at start). The stored signature keeps the
 * form the release before reads (its digest of this very file), so that a roll-back
 * starts; the digest of the rules as the parser reads them is kept beside it, and a
 * store of the release before (no such digest) gets it. A real change under the same
 * version is still refused. */
START_TEST(test_policy_requoted_is_the_same_policy)
{
    s_shared_pair();
    s_restart(POLICY("ESX-1", "\"OFFICIAL-SENSITIVE\"", "'" T_MER "'"));
    pg_outbatch_reset(ob);
    ck_assert_int_eq(s_reconcile(), 0);
    ck_assert_uint_eq(ob->count, 0);
    ck_assert_str_ne(pg_policy_digest_v1(pol), pg_policy_digest(pol));

    char before[512];
    size_t n = (size_t)snprintf(before, sizeof before,
                                "ESX-1%cnational=" T_NAT "%cmer=" T_MER "%c#rules=%s", 0, 0, 0,
                                pg_policy_digest_v1(pol)) +
               1;
    char v[512];
    size_t vlen = s_meta("policy", v, sizeof v);
    ck_assert_msg(vlen == n && !memcmp(v, before, n), "%.*s", (int)vlen, v);
    char rules[160];
    snprintf(rules, sizeof rules, "%s:%s", pg_policy_digest(pol), pg_policy_digest_v1(pol));
    vlen = s_meta("policy.rules", v, sizeof v);
    ck_assert_msg(vlen == strlen(rules) && !memcmp(v, rules, vlen), "%.*s", (int)vlen, v);
    /* the release before's store: its signature of this file, no digest beside it */
    s_set_meta("policy.rules", NULL, 0);
    pg_outbatch_reset(ob);
    ck_assert_int_eq(s_reconcile(), 0);
    ck_assert_uint_eq(ob->count, 0);
    vlen = s_meta("policy.rules", v, sizeof v);
    ck_assert(vlen == strlen(rules) && !memcmp(v, rules, vlen));

    s_restart(POLICY("ESX-1", "\"OFFICIAL\"", T_MER));
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_router_reconcile(rt, txn, ob, e, sizeof e), PG_ECONFIG);
    pg_store_abort(&txn);
    ck_assert_msg(strstr(e, "did not change but its rules did"), "%s", e);
}
END_TEST

/* The digest beside the signature is believed only beside the signature it was written
 * with. A release before (which does not know it) moved ESX-1 (OFFICIAL-SENSITIVE) to
 * ESX-2 (OFFICIAL) and back to ESX-1 with the OFFICIAL rules, leaving the digest of the
 * first ESX-1 beside its own signature; this release, started with the first ESX-1
 * file, must refuse the same version with other rules (it once took it for the same
 * policy: found by a review). */
START_TEST(test_policy_stale_rules_digest_not_believed)
{
    s_shared_pair();
    ck_assert_int_eq(s_reconcile(), 0);
    char first[160];
    size_t vlen = s_meta("policy.rules", first, sizeof first);

    s_restart(POLICY("ESX-2", "OFFICIAL", T_MER));
    ck_assert_int_eq(s_reconcile(), 2);
    s_set_meta("policy.rules", first, vlen); /* what the release before leaves */
    s_restart(POLICY("ESX-1", "OFFICIAL", T_MER));
    ck_assert_int_eq(s_reconcile(), 0);
    s_set_meta("policy.rules", first, vlen);

    s_restart(s_policy_v1);
    pg_outbatch_reset(ob);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    int rc = pg_router_reconcile(rt, txn, ob, e, sizeof e);
    pg_store_abort(&txn);
    ck_assert_msg(rc == PG_ECONFIG && strstr(e, "did not change but its rules did"), "rc %d: %s",
                  rc, rc ? e : "taken as the same policy");
}
END_TEST

/* A signature stored before it carried the rules (version and destinations only) is
 * the same policy: nothing withdrawn, and the signature completed. */
START_TEST(test_policy_signature_without_rules_accepted)
{
    s_shared_pair();
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    pg_store_db meta;
    ck_assert_int_eq(pg_store_db_open(txn, "router.meta", 0, &meta, e, sizeof e), 0);
    const char old[] = "ESX-1\0national=" T_NAT "\0mer=" T_MER;
    const void *v;
    size_t vlen;
    ck_assert_int_eq(pg_store_get(txn, meta, "policy", 6, &v, &vlen, e, sizeof e), 0);
    ck_assert_msg(vlen > sizeof old && !memcmp(v, old, sizeof old), "%.*s", (int)vlen,
                  (const char *)v);
    ck_assert_int_eq(pg_store_put(txn, meta, "policy", 6, old, sizeof old, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    pg_outbatch_reset(ob);
    ck_assert_int_eq(s_reconcile(), 0);
    ck_assert_uint_eq(ob->count, 0);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_int_eq(pg_store_get(txn, meta, "policy", 6, &v, &vlen, e, sizeof e), 0);
    ck_assert_uint_gt(vlen, sizeof old);
    ck_assert_ptr_nonnull(memmem(v, vlen, "#rules=", 7));
    pg_store_abort(&txn);
}
END_TEST

/* A policy change that withdraws more than the limit of what a destination holds
 * waits for the operator's confirmation of that very version; the confirmation is
 * used up. */
START_TEST(test_withdraw_limit_waits_for_confirmation)
{
    s_shared_pair();                               /* mer holds p1, l1, k1 */
    s_restart(POLICY("ESX-2", "OFFICIAL", T_MER)); /* p1 and k1 go: 2 of 3 */
    pg_router_set_withdraw_limit(rt, 25);
    for (int round = 0; round < 2; round++) {
        pg_outbatch_reset(ob);
        pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
        ck_assert_int_eq(pg_router_reconcile(rt, txn, ob, e, sizeof e), PG_ECONFIRM);
        pg_store_abort(&txn);
        ck_assert_msg(strstr(e, "policy ESX-2 would withdraw 2 of the 3 records destination mer "
                                "holds") &&
                          strstr(e, "polegate store confirm ") && strstr(e, s_dir),
                      "%s", e);
        ck_assert_int_eq(s_held("mer", "p1"), 1);
        txn = pg_store_begin(st, 1, e, sizeof e);
        /* another version's confirmation does not count */
        ck_assert_int_eq(pg_router_confirm(txn, "ESX-1", e, sizeof e), 0);
        ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    }
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_router_confirm(txn, "ESX-2", e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    ck_assert_int_eq(s_reconcile(), 2);
    ck_assert_int_eq(s_held("mer", "p1"), 0);
    /* used up: the next large withdrawal waits again */
    s_restart(POLICY("ESX-3", "OFFICIAL", "polegate.esx.mer3.pole.v1"));
    pg_router_set_withdraw_limit(rt, 25);
    txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_router_reconcile(rt, txn, ob, e, sizeof e), PG_ECONFIRM);
    pg_store_abort(&txn);
    /* a limit of 100 never waits */
    pg_router_set_withdraw_limit(rt, 100);
    ck_assert_int_eq(s_reconcile(), 1);
}
END_TEST

/* pg_router_route does the reconcile itself when nobody called it. */
START_TEST(test_policy_change_on_first_route)
{
    s_shared_pair();
    s_restart(POLICY("ESX-2", "OFFICIAL", T_MER));
    s_begin();
    s_add_entity(s_entity("v1", VEHICLE, 1, O, P, 1, UPSERT));
    s_route();
    s_assert_withdrawal(T_MER, "p1", 1, "classification");
    ck_assert_int_eq(s_count(T_MER, "v1"), 1);
    ck_assert_int_lt(s_find_nth(T_MER, "p1", 0), s_find_nth(T_MER, "v1", 0));
}
END_TEST

/* A destination dropped from the policy is told to delete what it held. */
START_TEST(test_destination_removed)
{
    s_shared_pair();
    s_restart("policy:\n"
              "  version: ESX-9\n"
              "  agreements: [{name: ISA-NAT, description: national}]\n"
              "  destinations:\n"
              "    - {name: national, kind: national, topic: " T_NAT ", agreement: ISA-NAT,\n"
              "       max_classification: OFFICIAL-SENSITIVE, kinds: all}\n");
    ck_assert_int_eq(s_reconcile(), 3);
    s_assert_withdrawal(T_MER, "p1", 1, "kind");
    s_assert_withdrawal(T_MER, "l1", 1, "kind");
    s_assert_withdrawal(T_MER, "k1", 2, "kind");
    ck_assert_str_eq(s_rec(T_MER, "p1")->agreement, "ISA-MER");
    ck_assert_int_eq(s_count(T_NAT, "p1"), 0);
    ck_assert_int_eq(s_held("mer", "p1"), 0);
    ck_assert_int_eq(s_held("mer", "k1"), 0);
    ck_assert_int_eq(s_held("national", "p1"), 1);
}
END_TEST

/* Intelligence Merseyside may not receive under ESX-1: i1 (linked to p1 and l1, which
 * it holds), i2 (deleted since), i3 (SECRET, linked to p1), i4 (MoPI group 3). */
static void s_intel_setup(void)
{
    s_shared_pair();
    s_begin();
    s_add_entity(s_entity("i1", INTEL, 3, OS, P, 1, UPSERT));
    s_add_entity(s_entity("i2", INTEL, 1, OS, P, 1, UPSERT));
    s_add_entity(s_entity("i3", INTEL, 1, S, P, 1, UPSERT));
    s_add_entity(s_entity("i4", INTEL, 1, OS, P, 3, UPSERT));
    s_link("k-ip", "i1", INTEL, "p1", PERSON, O, UPSERT);
    s_link("k-il", "i1", INTEL, "l1", LOCATION, O, UPSERT);
    s_link("k-i2", "i2", INTEL, "p1", PERSON, O, UPSERT);
    s_link("k-i3", "i3", INTEL, "p1", PERSON, O, UPSERT);
    s_route();
    s_begin();
    s_add_entity(s_entity("i2", INTEL, 2, OS, P, 1, DELETE));
    s_route();
    const char *ids[] = {"i1", "i2", "i3", "i4", "k-ip", "k-il", "k-i2", "k-i3"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        ck_assert_int_eq(s_held("mer", ids[i]), 0);
    ck_assert_int_eq(s_held("national", "i1"), 1);
    ck_assert_int_eq(s_held("national", "k-ip"), 1);
}

/* A policy that opens a kind to a destination publishes the stored records of that kind
 * it may now receive, with their links, at the reconcile. */
START_TEST(test_policy_change_publishes_allowed)
{
    s_intel_setup();
    s_restart(POLICY_INTEL("ESX-2"));
    ck_assert_int_eq(s_reconcile(), 0); /* nothing withdrawn */

    /* i1, redacted for Merseyside, at the ledger's version */
    ck_assert_int_eq(s_count(T_MER, "i1"), 1);
    const pg_outrec *r = s_rec(T_MER, "i1");
    ck_assert_int_eq(r->audit_action, PG_AUDIT_DISCLOSE);
    ck_assert_str_eq(r->destination, "mer");
    ck_assert_str_eq(r->agreement, "ISA-MER");
    ck_assert_str_eq(r->policy_version, "ESX-2");
    ck_assert_str_eq(r->outcome, "redacted:intelligence.text");
    ck_assert_str_eq(r->native_id, "N-i1");
    ck_assert_uint_eq(r->version, 3);
    ck_assert_str_eq(s_hdr(r, PG_HDR_OPERATION), "UPSERT");
    ck_assert_str_eq(s_hdr(r, PG_HDR_VERSION), "3");
    ck_assert_str_eq(s_hdr(r, PG_HDR_MARKING), "OFFICIAL-SENSITIVE;P");
    ck_assert_str_eq(s_hdr(r, PG_HDR_ORIGIN_FORCE), "ESX");
    ck_assert_str_eq(s_hdr(r, "pg-agreement"), "ISA-MER");
    ck_assert_str_eq(s_hdr(r, "pg-policy-version"), "ESX-2");
    ck_assert_str_eq(s_hdr(r, "pg-redactions"), "intelligence.text");
    pg_entity_update *x = s_unpack_entity(r);
    ck_assert_str_eq(x->id, "i1");
    ck_assert_uint_eq(x->version, 3);
    ck_assert_ptr_nonnull(x->intelligence);
    ck_assert_str_eq(x->intelligence->text, "");
    polegate__pole__v1__entity_update__free_unpacked(x, NULL);
    ck_assert_int_eq(s_held("mer", "i1"), 1);

    /* its links, whose other ends Merseyside holds, after it */
    const char *links[] = {"k-ip", "k-il"};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(s_count(T_MER, links[i]), 1);
        ck_assert_int_lt(s_find_nth(T_MER, "i1", 0), s_find_nth(T_MER, links[i], 0));
        r = s_rec(T_MER, links[i]);
        ck_assert_int_eq(r->audit_action, PG_AUDIT_DISCLOSE);
        ck_assert_str_eq(s_hdr(r, PG_HDR_OPERATION), "UPSERT");
        ck_assert_str_eq(s_hdr(r, "pg-policy-version"), "ESX-2");
        pg_link_update *l = s_unpack_link(r);
        ck_assert_str_eq(l->from->id, "i1");
        ck_assert_uint_eq(l->version, 1);
        polegate__pole__v1__link_update__free_unpacked(l, NULL);
        ck_assert_int_eq(s_held("mer", links[i]), 1);
    }

    /* not the deleted one, not the SECRET one, not MoPI 3, nor their links; nothing
     * Merseyside held again; nothing to national, which had it all */
    const char *never[] = {"i2", "i3", "i4", "k-i2", "k-i3"};
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
        ck_assert_msg(s_count(T_MER, never[i]) == 0, "%s sent to mer", never[i]);
        ck_assert_int_eq(s_held("mer", never[i]), 0);
    }
    ck_assert_int_eq(s_count(T_MER, "p1") + s_count(T_MER, "l1") + s_count(T_MER, "k1"), 0);
    for (size_t i = 0; i < ob->count; i++)
        ck_assert_str_eq(ob->recs[i].topic, T_MER);
    ck_assert_uint_eq(ob->count, 3);
    ck_assert_uint_eq(ob->audit_count, 0); /* no collect, no withhold: disclose is the producer's */
    pg_router_stats stats;
    pg_router_get_stats(rt, &stats);
    ck_assert_uint_eq(stats.disclosed, 3);
    ck_assert_uint_eq(stats.reconcile_published, 3);
    ck_assert_uint_eq(stats.withheld, 0);
    ck_assert_uint_eq(stats.reconciles, 1);

    /* the same policy again: nothing */
    ck_assert_int_eq(s_reconcile(), 0);
    ck_assert_uint_eq(ob->count, 0);
    s_restart(POLICY_INTEL("ESX-2"));
    ck_assert_int_eq(s_reconcile(), 0);
    ck_assert_uint_eq(ob->count, 0);
    ck_assert_uint_eq(ob->audit_count, 0);

    /* i1's next change goes as any change of a held record */
    s_begin();
    s_add_entity(s_entity("i1", INTEL, 4, OS, P, 1, UPSERT));
    s_route();
    ck_assert_int_eq(s_count(T_MER, "i1"), 1);
    ck_assert_str_eq(s_hdr(s_rec(T_MER, "i1"), PG_HDR_VERSION), "4");
    ck_assert_int_eq(s_count(T_MER, "k-ip"), 0);
}
END_TEST

/* Routing a message right after the policy changed: the records of that message go
 * once, by its routing, and the others newly allowed by the reconcile it runs. */
START_TEST(test_policy_change_publishes_once_on_route)
{
    s_intel_setup();
    s_restart(POLICY_INTEL("ESX-2"));
    s_begin();
    s_add_entity(s_entity("i4", INTEL, 2, OS, P, 2, UPSERT)); /* re-graded into group 2 */
    s_route();
    ck_assert_int_eq(s_count(T_MER, "i1"), 1);
    ck_assert_int_eq(s_count(T_MER, "i4"), 1);
    ck_assert_int_eq(s_count(T_NAT, "i4"), 1);
    ck_assert_str_eq(s_hdr(s_rec(T_MER, "i4"), PG_HDR_VERSION), "2");
    ck_assert_ptr_nonnull(s_audit_find(PG_AUDIT_COLLECT, "i4", NULL));
    ck_assert_int_eq(s_count(T_MER, "k-ip"), 1);
}
END_TEST

/* A record withdrawn by one policy and allowed again by the next is not sent again at
 * the version of its withdrawal (the consumer keeps the DELETE at an equal version): it
 * goes at its next revision. */
START_TEST(test_policy_change_reallowed_waits)
{
    s_shared_pair();
    s_restart(POLICY("ESX-2", "OFFICIAL", T_MER));
    ck_assert_int_eq(s_reconcile(), 2);
    s_assert_withdrawal(T_MER, "p1", 1, "classification");
    s_restart(POLICY("ESX-3", "OFFICIAL-SENSITIVE", T_MER));
    ck_assert_int_eq(s_reconcile(), 0);
    ck_assert_uint_eq(ob->count, 0);
    ck_assert_int_eq(s_held("mer", "p1"), 0);
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 2, OS, P, 1, UPSERT));
    s_route();
    ck_assert_str_eq(s_hdr(s_rec(T_MER, "p1"), PG_HDR_VERSION), "2");
    ck_assert_str_eq(s_hdr(s_rec(T_MER, "k1"), PG_HDR_VERSION), "3"); /* past its DELETE */
    ck_assert_int_eq(s_held("mer", "p1"), 1);
    ck_assert_int_eq(s_held("mer", "k1"), 1);
}
END_TEST

/* A reconcile whose transaction aborts leaves no trace: the next one does it all. */
START_TEST(test_policy_change_publish_aborted)
{
    s_intel_setup();
    s_restart(POLICY_INTEL("ESX-2"));
    pg_outbatch_reset(ob);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    ck_assert_int_eq(pg_router_reconcile(rt, txn, ob, e, sizeof e), 0);
    ck_assert_uint_eq(ob->count, 3);
    ck_assert_int_eq(pg_router_held(rt, txn, "mer", "i1"), 1);
    ck_assert_int_eq(pg_router_held(rt, txn, "mer", "k-ip"), 1);
    pg_store_abort(&txn);
    ck_assert_int_eq(s_held("mer", "i1"), 0);
    ck_assert_int_eq(s_held("mer", "k-ip"), 0);
    ck_assert_int_eq(s_held("mer", "k-il"), 0);

    ck_assert_int_eq(s_reconcile(), 0);
    ck_assert_uint_eq(ob->count, 3);
    ck_assert_int_eq(s_count(T_MER, "i1"), 1);
    ck_assert_int_eq(s_count(T_MER, "k-ip"), 1);
    ck_assert_int_eq(s_count(T_MER, "k-il"), 1);
    ck_assert_int_eq(s_held("mer", "i1"), 1);
    ck_assert_int_eq(s_reconcile(), 0);
    ck_assert_uint_eq(ob->count, 0);
}
END_TEST

/* ------------------------------------------------------------ atomicity */

START_TEST(test_abort_changes_nothing)
{
    s_begin();
    s_add_entity(s_entity("p1", PERSON, 1, OS, P, 1, UPSERT));
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    pg_ledger_result res;
    ck_assert_int_eq(pg_ledger_apply(lg, txn, in, pub, &res, e, sizeof e), 0);
    ck_assert_int_eq(pg_router_route(rt, txn, pub, ob, e, sizeof e), 0);
    ck_assert_int_eq(pg_router_held(rt, txn, "national", "p1"), 1);
    pg_store_abort(&txn);
    ck_assert_int_eq(s_held("national", "p1"), 0);
    /* the same message again: the same records, as if it were the first time */
    pg_changeset_reset(pub);
    s_route();
    ck_assert_int_eq(s_count(T_NAT, "p1"), 1);
    ck_assert_int_eq(s_held("national", "p1"), 1);
}
END_TEST

/* A failure part way through leaves the transaction and the batch as they were. */
START_TEST(test_error_midway_leaves_nothing)
{
    s_begin();
    s_add_entity(s_entity("p0", PERSON, 1, OS, P, 1, UPSERT));
    s_route();
    size_t before = ob->count, audit_before = ob->audit_count;
    ck_assert_uint_gt(before, 0);

    pg_changeset *cs = pg_changeset_new();
    char *long_id = pg_arena_alloc(cs->arena, 600);
    memset(long_id, 'x', 599);
    long_id[599] = 0;
    s_begin();
    pg_entity_update *good = s_entity("p1", PERSON, 1, OS, P, 1, UPSERT);
    pg_entity_update *bad = s_entity("p2", PERSON, 1, OS, P, 1, UPSERT);
    bad->id = long_id;
    ck_assert_int_eq(pg_changeset_add_entity(cs, good, 0), 0);
    ck_assert_int_eq(pg_changeset_add_entity(cs, bad, 0), 0);
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    ck_assert_int_eq(pg_router_route(rt, txn, cs, ob, e, sizeof e), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "longer than 64 bytes"));
    ck_assert_uint_eq(ob->count, before);
    ck_assert_uint_eq(ob->audit_count, audit_before);
    ck_assert_int_eq(pg_router_held(rt, txn, "national", "p1"), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    ck_assert_int_eq(s_held("national", "p1"), 0);
    pg_router_stats stats;
    pg_router_get_stats(rt, &stats);
    ck_assert_uint_eq(stats.messages, 1);

    /* an update without an id, a link without an end */
    txn = pg_store_begin(st, 1, e, sizeof e);
    pg_changeset_reset(cs);
    good->id = "";
    ck_assert_int_eq(pg_changeset_add_entity(cs, good, 0), 0);
    ck_assert_int_eq(pg_router_route(rt, txn, cs, ob, e, sizeof e), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "changes[0]: an update without an id"));
    pg_changeset_reset(cs);
    pg_link_update *l = s_link("k1", "p0", PERSON, "l1", LOCATION, O, UPSERT);
    l->to = NULL;
    ck_assert_int_eq(pg_changeset_add_link(cs, l), 0);
    ck_assert_int_eq(pg_router_route(rt, txn, cs, ob, e, sizeof e), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "changes[0].link: an end is missing"));
    pg_store_abort(&txn);
    ck_assert_uint_eq(ob->count, before);
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_read_only_txn_refused)
{
    s_begin();
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_int_eq(pg_router_route(rt, txn, pub, ob, e, sizeof e), PG_EUSAGE);
    ck_assert_ptr_nonnull(strstr(e, "write transaction"));
    ck_assert_int_eq(pg_router_reconcile(rt, txn, ob, e, sizeof e), PG_EUSAGE);
    pg_store_abort(&txn);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *s_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("decide");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_loop_test(tc, test_decision_table, 0,
                        (int)(sizeof s_decisions / sizeof s_decisions[0]));
    tcase_add_test(tc, test_secret_counted);
    suite_add_tcase(s, tc);

    tc = tcase_create("links");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_links_follow_ends);
    tcase_add_test(tc, test_link_waits_for_unknown_end);
    tcase_add_test(tc, test_link_waits_for_withheld_end);
    suite_add_tcase(s, tc);

    tc = tcase_create("withdraw");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_withdraw_marking_up);
    tcase_add_test(tc, test_topic_written_again_agrees_with_its_consumers);
    tcase_add_test(tc, test_withdraw_mopi);
    tcase_add_test(tc, test_withdraw_delete);
    tcase_add_test(tc, test_delete_redacted);
    tcase_add_test(tc, test_policy_change_redacting_withdraws);
    tcase_add_test(tc, test_policy_change_reforms_spooled_withdrawals);
    tcase_add_test(tc, test_policy_change_old_state_keeps);
    tcase_add_test(tc, test_policy_change_redacting_link);
    tcase_add_test(tc, test_merge_refs_filtered);
    tcase_add_test(tc, test_merge_into_withheld_survivor);
    tcase_add_test(tc, test_merge_link_delete_keeps_link_origin);
    suite_add_tcase(s, tc);

    tc = tcase_create("policy_change");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_policy_change_at_restart);
    tcase_add_test(tc, test_policy_same_version_other_topic_refused);
    tcase_add_test(tc, test_policy_same_version_other_rules_refused);
    tcase_add_test(tc, test_policy_signature_without_rules_accepted);
    tcase_add_test(tc, test_policy_requoted_is_the_same_policy);
    tcase_add_test(tc, test_policy_stale_rules_digest_not_believed);
    tcase_add_test(tc, test_withdraw_limit_waits_for_confirmation);
    tcase_add_test(tc, test_policy_change_on_first_route);
    tcase_add_test(tc, test_destination_removed);
    tcase_add_test(tc, test_policy_change_publishes_allowed);
    tcase_add_test(tc, test_policy_change_publishes_once_on_route);
    tcase_add_test(tc, test_policy_change_publish_aborted);
    tcase_add_test(tc, test_policy_change_reallowed_waits);
    suite_add_tcase(s, tc);

    tc = tcase_create("atomic");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_abort_changes_nothing);
    tcase_add_test(tc, test_error_midway_leaves_nothing);
    tcase_add_test(tc, test_read_only_txn_refused);
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
