/* bench_router: the cost of routing (policy per destination, held state, audit events,
 * packed records) on top of the ledger, per message, in one LMDB store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "ledger.h"
#include "outrec.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "policy.h"
#include "router.h"
#include "store.h"

/* People revised in turn; each has a home address, a telephone and a vehicle, created
 * before the clock starts, so that its links go out to the destinations. */
#define S_PEOPLE 10000
#define S_BATCH 100 /* messages per transaction, as the intake's group commit does */

#define K(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x
#define S_UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT

static const char s_policy_yaml[] =
    "policy:\n"
    "  version: BENCH-1\n"
    "  agreements: [{name: A, description: a}, {name: B, description: b}]\n"
    "  destinations:\n"
    "    - {name: national, kind: national, topic: t.national, agreement: A,\n"
    "       max_classification: OFFICIAL-SENSITIVE, kinds: all}\n"
    "    - {name: mer, kind: force, force: MER, topic: t.mer, agreement: B,\n"
    "       max_classification: OFFICIAL-SENSITIVE, kinds: [person, location, vehicle, "
    "telephone],\n"
    "       redact: [person.ethnicity, person.date_of_birth.day, origin.org_unit]}\n";

/* An entity of kind `type` number n at version v, OFFICIAL P; added to cs when add. */
static pg_entity_update *s_entity(pg_changeset *cs, const char *type, int kind, long n, uint64_t v,
                                  int add)
{
    pg_arena *a = cs->arena;
    char native[32], id[PG_UUID_STR_SIZE];
    snprintf(native, sizeof native, "%c%010ld", type[0], n);
    pg_identity_entity("ESX", "ATHENA", type, native, id);
    pg_entity_update *u = PG_PB_NEW(a, pg_entity_update, polegate__pole__v1__entity_update);
    u->id = pg_arena_strdup(a, id);
    u->operation = S_UPSERT;
    u->version = v;
    u->kind = kind;
    u->origin = PG_PB_NEW(a, pg_origin, polegate__pole__v1__origin);
    u->origin->force = "ESX";
    u->origin->system = "ATHENA";
    u->origin->native_type = (char *)type;
    u->origin->native_id = pg_arena_strdup(a, native);
    u->origin->org_unit = "ESX/CID";
    u->marking = PG_PB_NEW(a, pg_marking, polegate__pole__v1__marking);
    u->marking->classification = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL;
    u->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_P;
    u->body_case = 19 + kind;
    switch (kind) {
    case K(PERSON):
        u->person = PG_PB_NEW(a, Polegate__Pole__V1__Person, polegate__pole__v1__person);
        u->person->name = PG_PB_NEW(a, Polegate__Pole__V1__Name, polegate__pole__v1__name);
        u->person->name->surname = pg_arena_sprintf(a, "Surname%ld", n);
        u->person->self_defined_ethnicity =
            POLEGATE__POLE__V1__SELF_DEFINED_ETHNICITY__SELF_DEFINED_ETHNICITY_W1;
        break;
    case K(LOCATION):
        u->location = PG_PB_NEW(a, Polegate__Pole__V1__Location, polegate__pole__v1__location);
        u->location->street = "High Street";
        break;
    case K(TELEPHONE):
        u->telephone = PG_PB_NEW(a, Polegate__Pole__V1__Telephone, polegate__pole__v1__telephone);
        u->telephone->number = "+447700900123";
        break;
    default:
        u->vehicle = PG_PB_NEW(a, Polegate__Pole__V1__Vehicle, polegate__pole__v1__vehicle);
        u->vehicle->vrm = pg_arena_sprintf(a, "AB%02ldCDE", n % 100);
        break;
    }
    if (add)
        pg_changeset_add_entity(cs, u, kind == K(PERSON));
    return u;
}

static void s_link(pg_changeset *cs, const pg_entity_update *from, int role,
                   const pg_entity_update *to, int valid_year)
{
    pg_arena *a = cs->arena;
    char id[PG_UUID_STR_SIZE];
    pg_link_update *l = PG_PB_NEW(a, pg_link_update, polegate__pole__v1__link_update);
    pg_identity_link(from->id, role, to->id, id);
    l->id = pg_arena_strdup(a, id);
    l->operation = S_UPSERT;
    l->from = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
    l->from->id = from->id;
    l->from->kind = from->kind;
    l->to = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
    l->to->id = to->id;
    l->to->kind = to->kind;
    l->role = role;
    if (valid_year) {
        l->valid_from = PG_PB_NEW(a, pg_date, polegate__pole__v1__date);
        l->valid_from->year = valid_year;
    }
    pg_changeset_add_link(cs, l);
}

/* Message i: person i % S_PEOPLE at revision i / S_PEOPLE + 2 with its three links (the
 * home address's validity changes every round). Before: the ends, at revision 1. */
static void s_message(pg_changeset *cs, long i, int ends)
{
    pg_changeset_reset(cs);
    long who = i % S_PEOPLE, round = i / S_PEOPLE;
    cs->message_id = pg_arena_sprintf(cs->arena, "%s-%ld", ends ? "ends" : "msg", i);
    pg_entity_update *me = s_entity(cs, "PERSON", K(PERSON), who, (uint64_t)round + 2, !ends);
    pg_entity_update *home = s_entity(cs, "LOCATION", K(LOCATION), who, 1, ends);
    pg_entity_update *tel = s_entity(cs, "TELEPHONE", K(TELEPHONE), who, 1, ends);
    pg_entity_update *car = s_entity(cs, "VEHICLE", K(VEHICLE), who, 1, ends);
    if (ends)
        return;
    s_link(cs, me, POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS, home, 2000 + (int)round);
    s_link(cs, me, POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_USES, tel, 0);
    s_link(cs, me, POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_KEEPER, car, 0);
}

typedef struct s_result {
    double rate;
    size_t records, audit;
} s_result;

/* n messages through the ledger and (route) the router, non-durable, S_BATCH per txn. */
static int s_run(long n, int route, s_result *res)
{
    char dir[] = "/tmp/pg-bench-router-XXXXXX", e[PG_ERRSTR_SIZE];
    if (!mkdtemp(dir))
        return -1;
    int rc = -1;
    pg_store *st = pg_store_new(dir, (size_t)4 << 30, e, sizeof e);
    pg_ledger *lg = st ? pg_ledger_new(st, e, sizeof e) : NULL;
    pg_policy *pol =
        pg_policy_load_string(s_policy_yaml, sizeof s_policy_yaml - 1, "ESX", e, sizeof e);
    pg_router *rt = lg && pol ? pg_router_new(pol, st, "ESX", e, sizeof e) : NULL;
    pg_changeset *in = pg_changeset_new(), *out = pg_changeset_new();
    pg_outbatch *ob = pg_outbatch_new();
    pg_store_txn *txn = NULL;
    memset(res, 0, sizeof *res);
    if (!rt || !in || !out || !ob)
        goto done;
    pg_store_set_durable(st, 0);
    double busy = 0;
    for (int pass = 0; pass < 2; pass++) {
        long count = pass ? n : S_PEOPLE;
        for (long i = 0; i < count; i++) {
            s_message(in, i, !pass);
            pg_changeset_reset(out);
            pg_outbatch_reset(ob);
            double t0 = pg_bench_now();
            pg_ledger_result lr;
            if ((!txn && !(txn = pg_store_begin(st, 1, e, sizeof e))) ||
                pg_ledger_apply(lg, txn, in, out, &lr, e, sizeof e) ||
                (route && pg_router_route(rt, txn, out, ob, e, sizeof e)) ||
                ((i + 1) % S_BATCH == 0 && pg_store_commit(&txn, e, sizeof e)))
                goto done;
            if (pass) {
                busy += pg_bench_now() - t0;
                res->records += ob->count;
                res->audit += ob->audit_count;
            }
        }
        if (txn && pg_store_commit(&txn, e, sizeof e))
            goto done;
    }
    res->rate = (double)n / busy;
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "bench_router: %s\n", e);
    pg_store_abort(&txn);
    pg_outbatch_destroy(&ob);
    pg_changeset_destroy(&in);
    pg_changeset_destroy(&out);
    pg_router_destroy(&rt);
    pg_policy_destroy(&pol);
    pg_ledger_destroy(&lg);
    pg_store_destroy(&st);
    pg_bench_rmtree(dir);
    return rc;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_router [messages (default 100000)]\n");
        return 2;
    }
    printf("bench_router: %ld messages (1 person revision + 3 links, %d people in turn, ends "
           "known), 2 destinations (one redacting), no sync, %d messages per txn\n",
           n, S_PEOPLE, S_BATCH);
    s_result base, routed;
    if (s_run(n, 0, &base) || s_run(n, 1, &routed))
        return 1;
    printf("  ledger only          %10.0f msg/s  %7.1f us/msg\n", base.rate, 1e6 / base.rate);
    printf("  ledger + router      %10.0f msg/s  %7.1f us/msg  (%.2f records, %.2f audit "
           "events per message)\n",
           routed.rate, 1e6 / routed.rate, (double)routed.records / (double)n,
           (double)routed.audit / (double)n);
    printf("  routing costs %.1f us per message (%.0f%% of the ledger's time)\n",
           1e6 / routed.rate - 1e6 / base.rate,
           100.0 * (1e6 / routed.rate - 1e6 / base.rate) / (1e6 / base.rate));
    return 0;
}
