/* bench_ledger: ledger apply rate with a durable commit per message vs one per 100. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "ledger.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "store.h"

/* Distinct people the generated messages revise in turn: each message is a new
 * revision of one of them, with its three links (one of which changes validity every
 * round), so the ledger does real diffs. */
#define S_PEOPLE 10000

typedef struct s_mode {
    const char *name;
    int durable;
    int batch; /* messages per transaction */
} s_mode;

static pg_entity_ref *s_ref(pg_arena *a, const char *type, long n, int kind)
{
    char native[32], id[PG_UUID_STR_SIZE];
    snprintf(native, sizeof native, "%c%010ld", type[0], n);
    pg_identity_entity("ESX", "ATHENA", type, native, id);
    pg_entity_ref *r = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
    r->id = pg_arena_strdup(a, id);
    r->native_id = pg_arena_strdup(a, native);
    r->kind = kind;
    return r;
}

static void s_link(pg_changeset *cs, pg_entity_ref *from, int role, pg_entity_ref *to,
                   int valid_year)
{
    char id[PG_UUID_STR_SIZE];
    pg_link_update *l = PG_PB_NEW(cs->arena, pg_link_update, polegate__pole__v1__link_update);
    pg_identity_link(from->id, role, to->id, id);
    l->id = pg_arena_strdup(cs->arena, id);
    l->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
    l->from = from;
    l->to = to;
    l->role = role;
    if (valid_year) {
        l->valid_from = PG_PB_NEW(cs->arena, pg_date, polegate__pole__v1__date);
        l->valid_from->year = valid_year;
    }
    pg_changeset_add_link(cs, l);
}

/* Message i: person i % S_PEOPLE at revision i / S_PEOPLE + 1, ATX style. */
static void s_message(pg_changeset *cs, long i)
{
    pg_changeset_reset(cs);
    pg_arena *a = cs->arena;
    long who = i % S_PEOPLE, round = i / S_PEOPLE;
    cs->message_id = pg_arena_sprintf(a, "msg-%ld", i);
    pg_entity_ref *me =
        s_ref(a, "PERSON", who, POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON);
    pg_entity_update *u = PG_PB_NEW(a, pg_entity_update, polegate__pole__v1__entity_update);
    u->id = me->id;
    u->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
    u->version = (uint64_t)round + 1;
    u->kind = me->kind;
    u->origin = PG_PB_NEW(a, pg_origin, polegate__pole__v1__origin);
    u->origin->force = "ESX";
    u->origin->system = "ATHENA";
    u->origin->native_type = "PERSON";
    u->origin->native_id = me->native_id;
    u->marking = PG_PB_NEW(a, pg_marking, polegate__pole__v1__marking);
    u->marking->classification = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL;
    u->person = PG_PB_NEW(a, Polegate__Pole__V1__Person, polegate__pole__v1__person);
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
    u->person->name = PG_PB_NEW(a, Polegate__Pole__V1__Name, polegate__pole__v1__name);
    u->person->name->surname = pg_arena_sprintf(a, "Surname%ld", who);
    pg_changeset_add_entity(cs, u, 1);
    s_link(cs, me, POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS,
           s_ref(a, "LOCATION", who / 2, POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_LOCATION),
           2000 + (int)round);
    s_link(cs, me, POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_USES,
           s_ref(a, "TELEPHONE", who, POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_TELEPHONE), 0);
    s_link(cs, me, POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_KEEPER,
           s_ref(a, "VEHICLE", who, POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_VEHICLE), 0);
}

/* Apply n messages in a fresh store; returns messages per second (0 on failure). */
static double s_run(const s_mode *mode, long n, size_t *published)
{
    char dir[] = "/tmp/pg-bench-ledger-XXXXXX", e[PG_ERRSTR_SIZE];
    if (!mkdtemp(dir))
        return 0;
    pg_store *st = pg_store_new(dir, (size_t)4 << 30, e, sizeof e);
    pg_ledger *lg = st ? pg_ledger_new(st, e, sizeof e) : NULL;
    pg_changeset *in = pg_changeset_new(), *out = pg_changeset_new();
    double rate = 0, busy = 0;
    *published = 0;
    if (!lg || !in || !out) {
        fprintf(stderr, "bench_ledger: %s\n", e);
        goto done;
    }
    pg_store_set_durable(st, mode->durable);
    pg_store_txn *txn = NULL;
    for (long i = 0; i < n; i++) {
        s_message(in, i);
        pg_changeset_reset(out);
        double t0 = pg_bench_now();
        pg_ledger_result res;
        if ((!txn && !(txn = pg_store_begin(st, 1, e, sizeof e))) ||
            pg_ledger_apply(lg, txn, in, out, &res, e, sizeof e) != 0 ||
            ((i + 1) % mode->batch == 0 && pg_store_commit(&txn, e, sizeof e) != 0)) {
            fprintf(stderr, "bench_ledger: message %ld: %s\n", i, e);
            pg_store_abort(&txn);
            goto done;
        }
        busy += pg_bench_now() - t0;
        *published += res.published;
    }
    if (txn && pg_store_commit(&txn, e, sizeof e) != 0) {
        fprintf(stderr, "bench_ledger: %s\n", e);
        goto done;
    }
    rate = (double)n / busy;
done:
    pg_changeset_destroy(&in);
    pg_changeset_destroy(&out);
    pg_ledger_destroy(&lg);
    pg_store_destroy(&st);
    pg_bench_rmtree(dir);
    return rate;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_ledger [messages (default 100000)]\n");
        return 2;
    }
    const s_mode modes[] = {
        {"durable, 1 txn per message", 1, 1},
        {"durable, 1 txn per 100 messages", 1, 100},
        {"no sync, 1 txn per message", 0, 1},
    };
    double rates[3];
    printf("bench_ledger: %ld ATX-style messages (1 person + 3 links, %d people revised in "
           "turn), LMDB in /tmp\n",
           n, S_PEOPLE);
    for (size_t m = 0; m < 3; m++) {
        size_t published;
        if ((rates[m] = s_run(&modes[m], n, &published)) == 0)
            return 1;
        printf("  %-34s %10.0f msg/s  %8.1f us/msg  (%zu updates published)\n", modes[m].name,
               rates[m], 1e6 / rates[m], published);
    }
    printf("  ratio batched/per-message (both durable): %.1fx; no sync/durable per message: "
           "%.1fx\n",
           rates[1] / rates[0], rates[2] / rates[0]);
    return 0;
}
