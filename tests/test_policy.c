/* Unit tests for the sharing policy: config checks, decisions per destination,
 * redaction, links, withdrawal, provenance headers, inbound origin checks. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"
#include "polegate/pole.h"
#include "policy.h"

#define EXAMPLE PG_FIXTURES "/../../config/policy-esx.yaml"

typedef Polegate__Pole__V1__Person t_person;
typedef Polegate__Pole__V1__Alias t_alias;
typedef Polegate__Pole__V1__Date t_date;
typedef Polegate__Pole__V1__Name t_name;

enum { O = 1, OS = 2, S = 3, TS = 4 }; /* classifications */
enum { P = 1, C = 2 };                 /* handling */
enum { UPSERT = 1, DELETE = 2 };       /* operations */
enum { PERSON = 1, LOCATION, VEHICLE, ITEM, WEAPON, TELEPHONE, OCCURRENCE, CUSTODY, INTEL };
#define NO_MARKING (-1)

static pg_policy *s_example(void)
{
    char err[PG_ERRSTR_SIZE] = "";
    pg_policy *p = pg_policy_load(EXAMPLE, "ESX", err, sizeof err);
    ck_assert_msg(p != NULL, "example policy: %s", err);
    return p;
}

/* The example policy and an arena, fresh for each test that uses them. */
static pg_policy *s_p;
static pg_arena *s_a;

static void s_setup(void)
{
    s_p = s_example();
    s_a = pg_arena_new(0);
}

static void s_teardown(void)
{
    pg_arena_destroy(&s_a);
    pg_policy_destroy(&s_p);
}

static pg_policy *s_policy(const char *yaml)
{
    char err[PG_ERRSTR_SIZE] = "";
    pg_policy *p = pg_policy_load_string(yaml, strlen(yaml), "ESX", err, sizeof err);
    ck_assert_msg(p != NULL, "policy: %s", err);
    return p;
}

static t_date *s_date(pg_arena *a, int y, int m, int d)
{
    t_date *date = PG_PB_NEW(a, t_date, polegate__pole__v1__date);
    date->year = y;
    date->month = m;
    date->day = d;
    return date;
}

/* An entity of kind with every field the policy can redact filled in. */
static pg_entity_update *s_entity(pg_arena *a, int kind, int classification, int handling, int mopi,
                                  int op)
{
    pg_entity_update *e = PG_PB_NEW(a, pg_entity_update, polegate__pole__v1__entity_update);
    e->id = "6f1c2b0e-0d5b-5a3e-9c1f-2f7f3b8e9a01";
    e->operation = op;
    e->version = 7;
    e->kind = kind;
    e->origin = PG_PB_NEW(a, pg_origin, polegate__pole__v1__origin);
    e->origin->force = "ESX";
    e->origin->system = "ATHENA";
    e->origin->native_type = "PERSON";
    e->origin->native_id = "P0000123456";
    e->origin->message_id = "m-1";
    e->origin->org_unit = "ESX/SOUTH/CID";
    if (classification != NO_MARKING) {
        e->marking = PG_PB_NEW(a, pg_marking, polegate__pole__v1__marking);
        e->marking->classification = classification;
        e->marking->handling = handling;
        e->marking->caveat = handling == C ? "joint operation only" : "";
    }
    e->retention = PG_PB_NEW(a, pg_retention, polegate__pole__v1__retention);
    e->retention->mopi_group = mopi;
    if (op == DELETE)
        return e;
    e->body_case = 19 + kind;
    switch (kind) {
    case PERSON: {
        t_person *p = PG_PB_NEW(a, t_person, polegate__pole__v1__person);
        p->name = PG_PB_NEW(a, t_name, polegate__pole__v1__name);
        p->name->surname = "O'Brien";
        p->date_of_birth = s_date(a, 1985, 7, 14);
        p->place_of_birth = "Liverpool";
        p->self_defined_ethnicity =
            POLEGATE__POLE__V1__SELF_DEFINED_ETHNICITY__SELF_DEFINED_ETHNICITY_W2;
        p->officer_defined_ethnicity =
            POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC1;
        p->nationality = "IRL";
        p->pnc_id = "2001/0012345L";
        p->cro_number = "012345/01A";
        p->occupation = "plumber";
        p->n_warning_markers = 2;
        p->warning_markers = pg_arena_alloc(a, 2 * sizeof *p->warning_markers);
        p->warning_markers[0] = POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_VI;
        p->warning_markers[1] = POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_WE;
        p->n_aliases = 1;
        p->aliases = pg_arena_alloc(a, sizeof *p->aliases);
        p->aliases[0] = PG_PB_NEW(a, t_alias, polegate__pole__v1__alias);
        p->aliases[0]->name = PG_PB_NEW(a, t_name, polegate__pole__v1__name);
        p->aliases[0]->name->surname = "Bryan";
        p->aliases[0]->date_of_birth = s_date(a, 1985, 7, 15);
        e->person = p;
        break;
    }
    case LOCATION:
        e->location = PG_PB_NEW(a, Polegate__Pole__V1__Location, polegate__pole__v1__location);
        e->location->street = "High Street";
        e->location->description = "rear door of the flat above the shop";
        e->location->geo =
            PG_PB_NEW(a, Polegate__Pole__V1__GeoPoint, polegate__pole__v1__geo_point);
        e->location->geo->lat = 51.7;
        e->location->grid =
            PG_PB_NEW(a, Polegate__Pole__V1__GridReference, polegate__pole__v1__grid_reference);
        e->location->grid->easting = 571234;
        break;
    case VEHICLE:
        e->vehicle = PG_PB_NEW(a, Polegate__Pole__V1__Vehicle, polegate__pole__v1__vehicle);
        e->vehicle->vrm = "AB12CDE";
        e->vehicle->vin = "WVWZZZ1JZXW000001";
        break;
    case ITEM:
        e->item = PG_PB_NEW(a, Polegate__Pole__V1__Item, polegate__pole__v1__item);
        e->item->description = "laptop";
        e->item->value = PG_PB_NEW(a, Polegate__Pole__V1__Money, polegate__pole__v1__money);
        e->item->value->currency = "GBP";
        e->item->value->minor_units = 125000;
        break;
    case WEAPON:
        e->weapon = PG_PB_NEW(a, Polegate__Pole__V1__Weapon, polegate__pole__v1__weapon);
        e->weapon->description = "kitchen knife";
        break;
    case TELEPHONE:
        e->telephone = PG_PB_NEW(a, Polegate__Pole__V1__Telephone, polegate__pole__v1__telephone);
        e->telephone->number = "+447700900123";
        e->telephone->imei = "490154203237518";
        break;
    case OCCURRENCE:
        e->occurrence =
            PG_PB_NEW(a, Polegate__Pole__V1__Occurrence, polegate__pole__v1__occurrence);
        e->occurrence->reference = "42/12345/26";
        e->occurrence->summary = "entry forced through the rear door";
        break;
    case CUSTODY:
        e->custody = PG_PB_NEW(a, Polegate__Pole__V1__Custody, polegate__pole__v1__custody);
        e->custody->reference = "CU/1/26";
        break;
    case INTEL:
        e->intelligence =
            PG_PB_NEW(a, Polegate__Pole__V1__Intelligence, polegate__pole__v1__intelligence);
        e->intelligence->reference = "INT/9/26";
        e->intelligence->text = "subject is said to store stolen goods at the lock-up";
        e->intelligence->grading =
            PG_PB_NEW(a, Polegate__Pole__V1__Grading, polegate__pole__v1__grading);
        e->intelligence->grading->source = 1;
        break;
    default:
        e->body_case = 0;
    }
    return e;
}

static pg_link_update *s_link(pg_arena *a, int classification, int handling, int op)
{
    pg_link_update *l = PG_PB_NEW(a, pg_link_update, polegate__pole__v1__link_update);
    l->id = "0d9e8f7a-6b5c-5d4e-8f3a-2b1c0d9e8f7a";
    l->operation = op;
    l->version = 3;
    l->origin = PG_PB_NEW(a, pg_origin, polegate__pole__v1__origin);
    l->origin->force = "ESX";
    l->origin->native_id = "O0000000001";
    l->origin->org_unit = "ESX/SOUTH/CID";
    if (classification != NO_MARKING) {
        l->marking = PG_PB_NEW(a, pg_marking, polegate__pole__v1__marking);
        l->marking->classification = classification;
        l->marking->handling = handling;
    }
    l->from = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
    l->from->id = "aaaaaaaa-0000-5000-8000-000000000001";
    l->from->kind = (int)OCCURRENCE;
    l->role = POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_SUSPECT;
    l->to = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
    l->to->id = "aaaaaaaa-0000-5000-8000-000000000002";
    l->to->kind = (int)PERSON;
    return l;
}

/* The packed bytes of a message, to show an input was not changed. */
static char *s_pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    char *buf = malloc(*len + 1);
    protobuf_c_message_pack(m, (uint8_t *)buf);
    return buf;
}

static const pg_policy_destination *s_dest(const pg_policy *p, const char *name)
{
    const pg_policy_destination *d = pg_policy_destination_find(p, name);
    ck_assert_msg(d != NULL, "destination %s", name);
    return d;
}

/* ------------------------------------------------------------------ the example */

START_TEST(test_example_model)
{
    pg_policy *p = s_example();
    ck_assert_str_eq(pg_policy_version(p), "ESX-ISP-2026.1");
    ck_assert_str_eq(pg_policy_force(p), "ESX");
    ck_assert_uint_eq(pg_policy_destination_count(p), 3);
    ck_assert_uint_eq(pg_policy_partner_count(p), 2);
    const pg_policy_destination *n = pg_policy_destination_at(p, 0);
    ck_assert_str_eq(n->name, "national");
    ck_assert_int_eq(n->kind, PG_POLICY_DEST_NATIONAL);
    ck_assert_ptr_null(n->force);
    ck_assert_str_eq(n->topic, "polegate.esx.national.pole.v1");
    ck_assert_int_eq(n->max_classification, OS);
    ck_assert_int_eq(n->allow_handling_c, 0);
    ck_assert_uint_eq(n->redact, 0);
    ck_assert_uint_eq(n->mopi_groups, 0x1f);
    const pg_policy_destination *k = s_dest(p, "kent");
    ck_assert_str_eq(k->force, "KNT");
    ck_assert_uint_eq(k->kinds & (1u << INTEL), 0);
    ck_assert_uint_ne(k->kinds & (1u << CUSTODY), 0);
    ck_assert_uint_eq(k->redact, 1u << PG_POLICY_FIELD_PERSON_ETHNICITY);
    const pg_policy_destination *m = s_dest(p, "merseyside");
    ck_assert_int_eq(m->allow_handling_c, 1);
    ck_assert_str_eq(m->handling_c_agreement, "ISA-ESX-MER-OPCONDOR");
    ck_assert_uint_eq(m->mopi_groups, (1u << 1) | (1u << 2));
    ck_assert_ptr_null(pg_policy_destination_at(p, 3));
    ck_assert_ptr_null(pg_policy_destination_find(p, "nowhere"));
    const pg_policy_partner *mer = pg_policy_partner_by_topic(p, "polegate.mer.esx.pole.v1");
    ck_assert_ptr_nonnull(mer);
    ck_assert_str_eq(mer->force, "MER");
    ck_assert_uint_eq(mer->n_speaks_for, 1);
    ck_assert_str_eq(mer->speaks_for[0], "MER");
    ck_assert_ptr_eq(pg_policy_partner_at(p, 1), mer);
    ck_assert_ptr_null(pg_policy_partner_by_topic(p, "polegate.esx.national.pole.v1"));
    ck_assert_str_eq(pg_policy_agreement_description(p, "ISA-ESX-KNT-2025"),
                     "Essex Police and Kent Police, neighbouring forces (routine sharing)");
    ck_assert_ptr_null(pg_policy_agreement_description(p, "ISA-NONE"));
    pg_policy_destroy(&p);
    ck_assert_ptr_null(p);
    pg_policy_destroy(&p); /* twice is harmless */
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(pg_policy_reason_name(PG_POLICY_R_MARKING), "marking-missing");
    ck_assert_str_eq(pg_policy_reason_name(PG_POLICY_R_CLASSIFICATION), "classification");
    ck_assert_str_eq(pg_policy_reason_name(PG_POLICY_R_LINK_END_UNKNOWN), "link-end-unknown");
    ck_assert_ptr_null(pg_policy_reason_name(PG_POLICY_REASON_COUNT));
    ck_assert_str_eq(pg_policy_reason_text((pg_policy_reason)99), "unknown reason");
    ck_assert_str_eq(pg_policy_field_name(PG_POLICY_FIELD_INTELLIGENCE_TEXT), "intelligence.text");
    ck_assert_ptr_null(pg_policy_field_name(PG_POLICY_FIELD_COUNT));
}
END_TEST

/* ------------------------------------------------------------------ entity decisions */

typedef struct t_entity_row {
    const char *dest;
    int kind, classification, handling, mopi, op;
    pg_policy_verdict verdict;
    pg_policy_reason reason;
    const char *agreement; /* when shared */
} t_entity_row;

#define SHARE(ag) PG_POLICY_SHARE, PG_POLICY_R_OK, ag
#define NOPE(r) PG_POLICY_WITHHOLD, PG_POLICY_R_##r, NULL
#define NAT "ISA-NATIONAL-2026"
#define KNT "ISA-ESX-KNT-2025"
#define MER "ISA-ESX-MER-2026"
#define MERC "ISA-ESX-MER-OPCONDOR"

static const t_entity_row s_entity_rows[] = {
    /* worked example 1: national, everything up to OFFICIAL-SENSITIVE except C */
    {"national", PERSON, O, P, 2, UPSERT, SHARE(NAT)},
    {"national", PERSON, OS, P, 3, UPSERT, SHARE(NAT)},
    {"national", INTEL, OS, P, 1, UPSERT, SHARE(NAT)},
    {"national", CUSTODY, O, P, 4, UPSERT, SHARE(NAT)},
    {"national", LOCATION, O, P, 0, UPSERT, SHARE(NAT)}, /* no MoPI group: `all` takes it */
    {"national", PERSON, OS, C, 2, UPSERT, NOPE(HANDLING)},
    {"national", PERSON, S, P, 2, UPSERT, NOPE(SECRET)},
    {"national", PERSON, TS, P, 2, UPSERT, NOPE(SECRET)},
    {"national", PERSON, 0, P, 2, UPSERT, NOPE(MARKING)},
    {"national", PERSON, 7, P, 2, UPSERT, NOPE(MARKING)}, /* a value this build lacks */
    {"national", PERSON, NO_MARKING, 0, 2, UPSERT, NOPE(MARKING)},
    {"national", PERSON, O, 0, 2, UPSERT, NOPE(MARKING)},
    {"national", PERSON, O, 5, 2, UPSERT, NOPE(MARKING)},
    {"national", PERSON, O, P, 2, DELETE, NOPE(DELETED)},
    {"national", PERSON, O, P, 2, 0, NOPE(INVALID)},
    {"national", 0, O, P, 2, UPSERT, NOPE(KIND)},
    {"national", 12, O, P, 2, UPSERT, NOPE(KIND)},
    {"national", PERSON, O, P, 5, UPSERT, NOPE(MOPI)},
    /* worked example 2: kent, no intelligence (and no ethnicity: test_worked_kent) */
    {"kent", PERSON, OS, P, 2, UPSERT, SHARE(KNT)},
    {"kent", CUSTODY, O, P, 2, UPSERT, SHARE(KNT)},
    {"kent", INTEL, O, P, 2, UPSERT, NOPE(KIND)},
    {"kent", PERSON, O, C, 2, UPSERT, NOPE(HANDLING)},
    {"kent", PERSON, S, P, 2, UPSERT, NOPE(SECRET)},
    /* merseyside: OFFICIAL, MoPI 1-2, four kinds, C under the operation's agreement */
    {"merseyside", PERSON, O, P, 1, UPSERT, SHARE(MER)},
    {"merseyside", PERSON, O, C, 2, UPSERT, SHARE(MERC)},
    {"merseyside", LOCATION, O, C, 1, UPSERT, SHARE(MERC)},
    {"merseyside", PERSON, OS, P, 1, UPSERT, NOPE(CLASSIFICATION)},
    {"merseyside", PERSON, OS, C, 1, UPSERT, NOPE(CLASSIFICATION)},
    {"merseyside", PERSON, O, P, 3, UPSERT, NOPE(MOPI)},
    {"merseyside", PERSON, O, P, 0, UPSERT, NOPE(MOPI)}, /* ungrouped not listed */
    {"merseyside", ITEM, O, P, 1, UPSERT, NOPE(KIND)},
    {"merseyside", INTEL, O, P, 1, UPSERT, NOPE(KIND)},
    {"merseyside", PERSON, S, C, 1, UPSERT, NOPE(SECRET)}, /* secret before anything else */
    {"merseyside", ITEM, TS, P, 9, UPSERT, NOPE(SECRET)},
    {"merseyside", ITEM, O, P, 9, DELETE, NOPE(DELETED)},
};
#define N_ENTITY_ROWS (int)(sizeof s_entity_rows / sizeof s_entity_rows[0])

START_TEST(test_entity_rows)
{
    const t_entity_row *r = &s_entity_rows[_i];
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    pg_entity_update *e = s_entity(a, r->kind, r->classification, r->handling, r->mopi, r->op);
    pg_policy_decision d;
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, r->dest), e, a, NULL, NULL, &d), 0);
    ck_assert_msg(d.verdict == r->verdict && d.reason == r->reason,
                  "row %d (%s kind %d class %d handling %d mopi %d op %d): got %s, want %s", _i,
                  r->dest, r->kind, r->classification, r->handling, r->mopi, r->op,
                  pg_policy_reason_name(d.reason), pg_policy_reason_name(r->reason));
    ck_assert_str_eq(d.destination->name, r->dest);
    if (r->verdict == PG_POLICY_SHARE) {
        ck_assert_ptr_nonnull(d.entity);
        ck_assert_str_eq(d.agreement, r->agreement);
        ck_assert_str_eq(d.entity->id, e->id);
    } else {
        ck_assert_ptr_null(d.entity);
        ck_assert_ptr_null(d.agreement);
    }
    /* the facts alone give the same answer (what a policy change re-decides with) */
    pg_policy_facts f;
    pg_policy_facts_of(e, &f);
    ck_assert_int_eq(pg_policy_check_facts(p, s_dest(p, r->dest), &f), r->reason);
}
END_TEST

/* SECRET, TOP SECRET and unspecified markings go nowhere, whatever the kind or
 * handling, under any destination's rules. */
START_TEST(test_never_shared_anywhere)
{
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    const int classes[] = {S, TS, 0, NO_MARKING};
    size_t checked = 0;
    for (size_t di = 0; di < pg_policy_destination_count(p); di++)
        for (int kind = PERSON; kind <= INTEL; kind++)
            for (size_t ci = 0; ci < 4; ci++)
                for (int h = P; h <= C; h++) {
                    pg_entity_update *e = s_entity(a, kind, classes[ci], h, 1, UPSERT);
                    pg_policy_decision d;
                    const pg_policy_destination *dest = pg_policy_destination_at(p, di);
                    ck_assert_int_eq(pg_policy_decide_entity(p, dest, e, a, NULL, NULL, &d), 0);
                    ck_assert_int_eq(d.verdict, PG_POLICY_WITHHOLD);
                    ck_assert_int_eq(d.reason, ci < 2 ? PG_POLICY_R_SECRET : PG_POLICY_R_MARKING);
                    pg_link_update *l = s_link(a, classes[ci], h, UPSERT);
                    ck_assert_int_eq(pg_policy_decide_link(p, dest, l, PG_POLICY_END_SHARED,
                                                           PG_POLICY_END_SHARED, a, &d),
                                     0);
                    ck_assert_int_eq(d.verdict, PG_POLICY_WITHHOLD);
                    checked++;
                }
    ck_assert_uint_eq(checked, 3 * 9 * 4 * 2);
}
END_TEST

/* A body that is not the kind's would let a record slip past either the kind rule or
 * the redactions. */
START_TEST(test_body_must_match_kind)
{
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    pg_entity_update *e = s_entity(a, INTEL, O, P, 1, UPSERT);
    e->kind = (int)LOCATION; /* says location, carries intelligence text */
    pg_policy_decision d;
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, "kent"), e, a, NULL, NULL, &d), 0);
    ck_assert_int_eq(d.verdict, PG_POLICY_WITHHOLD);
    ck_assert_int_eq(d.reason, PG_POLICY_R_INVALID);
    e = s_entity(a, PERSON, O, P, 1, UPSERT);
    e->body_case = 0; /* an UPSERT without a body */
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, "national"), e, a, NULL, NULL, &d), 0);
    ck_assert_int_eq(d.reason, PG_POLICY_R_INVALID);
}
END_TEST

/* ------------------------------------------------------------------ redaction */

/* Does e carry a value for field? */
static int s_present(const pg_entity_update *e, pg_policy_field f)
{
    const t_person *p = e->person;
    switch (f) {
    case PG_POLICY_FIELD_ORIGIN_ORG_UNIT:
        return e->origin && *e->origin->org_unit;
    case PG_POLICY_FIELD_PERSON_ETHNICITY:
        return p->self_defined_ethnicity || p->officer_defined_ethnicity;
    case PG_POLICY_FIELD_PERSON_SELF_DEFINED_ETHNICITY:
        return p->self_defined_ethnicity != 0;
    case PG_POLICY_FIELD_PERSON_OFFICER_DEFINED_ETHNICITY:
        return p->officer_defined_ethnicity != 0;
    case PG_POLICY_FIELD_PERSON_WARNING_MARKERS:
        return p->n_warning_markers > 0;
    case PG_POLICY_FIELD_PERSON_DATE_OF_BIRTH:
        return p->date_of_birth && p->n_aliases && p->aliases[0]->date_of_birth;
    case PG_POLICY_FIELD_PERSON_DATE_OF_BIRTH_DAY:
        return p->date_of_birth && p->date_of_birth->day && p->n_aliases &&
               p->aliases[0]->date_of_birth && p->aliases[0]->date_of_birth->day;
    case PG_POLICY_FIELD_PERSON_PLACE_OF_BIRTH:
        return *p->place_of_birth;
    case PG_POLICY_FIELD_PERSON_NATIONALITY:
        return *p->nationality;
    case PG_POLICY_FIELD_PERSON_PNC_ID:
        return *p->pnc_id;
    case PG_POLICY_FIELD_PERSON_CRO_NUMBER:
        return *p->cro_number;
    case PG_POLICY_FIELD_PERSON_ALIASES:
        return p->n_aliases > 0;
    case PG_POLICY_FIELD_PERSON_OCCUPATION:
        return *p->occupation;
    case PG_POLICY_FIELD_LOCATION_POSITION:
        return e->location->geo || e->location->grid;
    case PG_POLICY_FIELD_LOCATION_DESCRIPTION:
        return *e->location->description;
    case PG_POLICY_FIELD_VEHICLE_VIN:
        return *e->vehicle->vin;
    case PG_POLICY_FIELD_ITEM_VALUE:
        return e->item->value != NULL;
    case PG_POLICY_FIELD_TELEPHONE_IMEI:
        return *e->telephone->imei;
    case PG_POLICY_FIELD_OCCURRENCE_SUMMARY:
        return *e->occurrence->summary;
    case PG_POLICY_FIELD_INTELLIGENCE_TEXT:
        return *e->intelligence->text;
    case PG_POLICY_FIELD_INTELLIGENCE_GRADING:
        return e->intelligence->grading != NULL;
    default:
        ck_abort_msg("field %d has no check", (int)f);
        return 0;
    }
}

/* The kind each field belongs to (0: every kind); and fields that overlap (clearing
 * one clears part of the other). */
static int s_field_kind(pg_policy_field f)
{
    const char *n = pg_policy_field_name(f);
    const char *prefixes[] = {NULL,      "person.",    "location.",   "vehicle.", "item.",
                              "weapon.", "telephone.", "occurrence.", "custody.", "intelligence."};
    for (int k = PERSON; k <= INTEL; k++)
        if (!strncmp(n, prefixes[k], strlen(prefixes[k])))
            return k;
    return 0;
}

static int s_overlap(pg_policy_field a, pg_policy_field b)
{
    const pg_policy_field groups[][3] = {
        {PG_POLICY_FIELD_PERSON_ETHNICITY, PG_POLICY_FIELD_PERSON_SELF_DEFINED_ETHNICITY,
         PG_POLICY_FIELD_PERSON_OFFICER_DEFINED_ETHNICITY},
        {PG_POLICY_FIELD_PERSON_DATE_OF_BIRTH, PG_POLICY_FIELD_PERSON_DATE_OF_BIRTH_DAY,
         PG_POLICY_FIELD_PERSON_ALIASES},
    };
    for (size_t g = 0; g < 2; g++) {
        int ha = 0, hb = 0;
        for (int i = 0; i < 3; i++) {
            ha |= groups[g][i] == a;
            hb |= groups[g][i] == b;
        }
        if (ha && hb)
            return 1;
    }
    return 0;
}

/* Each field of the vocabulary, redacted alone: cleared in the copy, every other field
 * kept, the input untouched, the header naming it for its kind only. */
START_TEST(test_each_redaction)
{
    pg_policy_field f = (pg_policy_field)_i;
    const char *name = pg_policy_field_name(f);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "policy:\n  version: r1\n  agreements: [{name: A, description: a}]\n"
             "  destinations:\n    - {name: d, kind: national, topic: t, agreement: A,\n"
             "       max_classification: OFFICIAL, kinds: all, redact: [%s]}\n",
             name);
    pg_policy *p = s_policy(yaml);
    const pg_policy_destination *dest = s_dest(p, "d");
    pg_arena *a = pg_arena_new(0);
    int fkind = s_field_kind(f);
    for (int kind = PERSON; kind <= INTEL; kind++) {
        pg_entity_update *e = s_entity(a, kind, O, P, 1, UPSERT);
        size_t before_len, after_len;
        char *before = s_pack(&e->base, &before_len);
        pg_policy_decision d;
        ck_assert_int_eq(pg_policy_decide_entity(p, dest, e, a, NULL, NULL, &d), 0);
        ck_assert_int_eq(d.verdict, PG_POLICY_SHARE);
        char *after = s_pack(&e->base, &after_len);
        ck_assert_msg(before_len == after_len && !memcmp(before, after, before_len),
                      "%s changed the input", name);
        free(before);
        free(after);
        if (fkind && fkind != kind) {
            ck_assert_ptr_eq(d.entity, e); /* nothing to redact: the input itself */
            ck_assert_str_eq(d.redactions, "none");
            ck_assert_uint_eq(d.redacted, 0);
            continue;
        }
        ck_assert_ptr_ne(d.entity, e);
        ck_assert_str_eq(d.redactions, name);
        ck_assert_uint_eq(d.redacted, 1u << f);
        ck_assert_msg(s_present(e, f), "%s: the sample lacks it", name);
        ck_assert_msg(!s_present(d.entity, f), "%s: still present in the copy", name);
        for (int g = 0; g < PG_POLICY_FIELD_COUNT; g++) {
            int gkind = s_field_kind((pg_policy_field)g);
            if (g == (int)f || (gkind && gkind != kind) || s_overlap(f, (pg_policy_field)g))
                continue;
            ck_assert_msg(
                s_present(d.entity, (pg_policy_field)g) == s_present(e, (pg_policy_field)g),
                "redacting %s changed %s", name, pg_policy_field_name((pg_policy_field)g));
        }
        /* the copy still says what and whose it is */
        ck_assert_str_eq(d.entity->id, e->id);
        ck_assert_int_eq(d.entity->kind, kind);
        ck_assert_int_eq(d.entity->marking->classification, O);
        ck_assert_str_eq(d.entity->origin->native_id, "P0000123456");
        size_t n = protobuf_c_message_get_packed_size(&d.entity->base);
        ck_assert_uint_gt(n, 0);
    }
    pg_arena_destroy(&a);
    pg_policy_destroy(&p);
}
END_TEST

START_TEST(test_date_of_birth_day)
{
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    pg_entity_update *e = s_entity(a, PERSON, O, P, 1, UPSERT);
    pg_policy_decision d;
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, "merseyside"), e, a, NULL, NULL, &d), 0);
    ck_assert_int_eq(d.verdict, PG_POLICY_SHARE);
    const t_person *out = d.entity->person;
    ck_assert_int_eq(out->date_of_birth->year, 1985);
    ck_assert_int_eq(out->date_of_birth->month, 7);
    ck_assert_int_eq(out->date_of_birth->day, 0); /* July 1985 */
    ck_assert_int_eq(out->aliases[0]->date_of_birth->day, 0);
    ck_assert_str_eq(out->aliases[0]->name->surname, "Bryan");
    ck_assert_int_eq(e->person->date_of_birth->day, 14);
    ck_assert_int_eq(e->person->aliases[0]->date_of_birth->day, 15);
    ck_assert_uint_eq(out->n_warning_markers, 0);
    ck_assert_uint_eq(e->person->n_warning_markers, 2);
    ck_assert_str_eq(d.entity->origin->org_unit, "");
    ck_assert_str_eq(e->origin->org_unit, "ESX/SOUTH/CID");
    ck_assert_str_eq(d.redactions,
                     "origin.org_unit,person.warning_markers,person.date_of_birth.day");
    ck_assert_int_eq(out->self_defined_ethnicity, e->person->self_defined_ethnicity);
}
END_TEST

/* Worked example 2 in full: kent gets people without ethnicity, everything else of
 * them, and no intelligence. */
START_TEST(test_worked_kent)
{
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    const pg_policy_destination *kent = s_dest(p, "kent");
    pg_entity_update *e = s_entity(a, PERSON, OS, P, 2, UPSERT);
    pg_policy_decision d;
    ck_assert_int_eq(pg_policy_decide_entity(p, kent, e, a, NULL, NULL, &d), 0);
    ck_assert_int_eq(d.verdict, PG_POLICY_SHARE);
    ck_assert_int_eq(d.entity->person->self_defined_ethnicity, 0);
    ck_assert_int_eq(d.entity->person->officer_defined_ethnicity, 0);
    ck_assert_uint_eq(d.entity->person->n_warning_markers, 2);
    ck_assert_int_eq(d.entity->person->date_of_birth->day, 14);
    ck_assert_str_eq(d.entity->person->name->surname, "O'Brien");
    ck_assert_str_eq(d.entity->origin->org_unit, "ESX/SOUTH/CID");
    ck_assert_str_eq(d.redactions, "person.ethnicity");
    /* the provenance headers made of this decision: test_router.c */
    ck_assert_str_eq(d.agreement, KNT);
    ck_assert_str_eq(pg_policy_version(p), "ESX-ISP-2026.1");
    /* a vehicle: nothing of its kind is redacted, so the input goes as it is */
    pg_entity_update *v = s_entity(a, VEHICLE, O, P, 2, UPSERT);
    ck_assert_int_eq(pg_policy_decide_entity(p, kent, v, a, NULL, NULL, &d), 0);
    ck_assert_ptr_eq(d.entity, v);
    ck_assert_str_eq(d.redactions, "none");
    /* intelligence: withheld, and no headers for what is withheld */
    pg_entity_update *i = s_entity(a, INTEL, O, P, 2, UPSERT);
    ck_assert_int_eq(pg_policy_decide_entity(p, kent, i, a, NULL, NULL, &d), 0);
    ck_assert_int_eq(d.reason, PG_POLICY_R_KIND);
    ck_assert_int_eq(d.verdict, PG_POLICY_WITHHOLD);
}
END_TEST

/* The same record goes to every destination in its own form, and the input is the
 * same afterwards. */
START_TEST(test_one_record_many_forms)
{
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    pg_entity_update *e = s_entity(a, PERSON, O, C, 1, UPSERT);
    size_t before_len, after_len;
    char *before = s_pack(&e->base, &before_len);
    pg_policy_decision nat, kent, mer;
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, "national"), e, a, NULL, NULL, &nat), 0);
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, "kent"), e, a, NULL, NULL, &kent), 0);
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, "merseyside"), e, a, NULL, NULL, &mer),
                     0);
    ck_assert_int_eq(nat.reason, PG_POLICY_R_HANDLING);
    ck_assert_int_eq(kent.reason, PG_POLICY_R_HANDLING);
    ck_assert_int_eq(mer.verdict, PG_POLICY_SHARE);
    ck_assert_str_eq(mer.agreement, MERC);
    e->marking->handling = (int)P;
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, "national"), e, a, NULL, NULL, &nat), 0);
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, "kent"), e, a, NULL, NULL, &kent), 0);
    ck_assert_ptr_eq(nat.entity, e);
    ck_assert_ptr_ne(kent.entity, e);
    ck_assert_ptr_ne(kent.entity->person, mer.entity->person);
    ck_assert_int_eq(nat.entity->person->officer_defined_ethnicity, 1);
    ck_assert_int_eq(kent.entity->person->officer_defined_ethnicity, 0);
    ck_assert_int_eq(mer.entity->person->officer_defined_ethnicity, 1);
    ck_assert_int_eq(mer.entity->person->date_of_birth->day, 0);
    e->marking->handling = (int)C;
    char *after = s_pack(&e->base, &after_len);
    ck_assert(before_len == after_len && !memcmp(before, after, before_len));
    free(before);
    free(after);
}
END_TEST

static int s_only_first(void *ud, const char *id)
{
    (*(int *)ud)++;
    return !strcmp(id, "11111111-0000-5000-8000-000000000001");
}

/* merged_from must not reveal the ids of records the destination never had. */
START_TEST(test_merged_from_filtered)
{
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    pg_entity_update *e = s_entity(a, VEHICLE, O, P, 1, UPSERT);
    e->n_merged_from = 2;
    e->merged_from = pg_arena_alloc(a, 2 * sizeof *e->merged_from);
    for (int i = 0; i < 2; i++) {
        e->merged_from[i] = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
        e->merged_from[i]->id =
            i ? "11111111-0000-5000-8000-000000000002" : "11111111-0000-5000-8000-000000000001";
    }
    pg_policy_decision d;
    int calls = 0;
    ck_assert_int_eq(
        pg_policy_decide_entity(p, s_dest(p, "national"), e, a, s_only_first, &calls, &d), 0);
    ck_assert_int_eq(calls, 2);
    ck_assert_uint_eq(d.entity->n_merged_from, 1);
    ck_assert_str_eq(d.entity->merged_from[0]->id, "11111111-0000-5000-8000-000000000001");
    ck_assert_uint_eq(e->n_merged_from, 2);
    ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, "national"), e, a, NULL, NULL, &d), 0);
    ck_assert_uint_eq(d.entity->n_merged_from, 0);
    ck_assert_ptr_null(d.entity->merged_from);
    ck_assert_str_eq(d.redactions, "none"); /* not a policy redaction */
}
END_TEST

/* ------------------------------------------------------------------ links */

typedef struct t_link_row {
    const char *dest;
    int classification, handling, op;
    pg_policy_end from, to;
    pg_policy_verdict verdict;
    pg_policy_reason reason;
    const char *agreement;
} t_link_row;

#define SH PG_POLICY_END_SHARED
#define WH PG_POLICY_END_WITHHELD
#define UN PG_POLICY_END_UNKNOWN

static const t_link_row s_link_rows[] = {
    {"national", O, P, UPSERT, SH, SH, SHARE(NAT)},
    {"national", OS, P, UPSERT, SH, SH, SHARE(NAT)},
    {"national", O, P, UPSERT, SH, WH, NOPE(LINK_END)},
    {"national", O, P, UPSERT, WH, SH, NOPE(LINK_END)},
    {"national", O, P, UPSERT, WH, WH, NOPE(LINK_END)},
    {"national", O, P, UPSERT, SH, UN, NOPE(LINK_END_UNKNOWN)},
    {"national", O, P, UPSERT, UN, SH, NOPE(LINK_END_UNKNOWN)},
    {"national", O, P, UPSERT, UN, UN, NOPE(LINK_END_UNKNOWN)},
    {"national", O, P, UPSERT, UN, WH, NOPE(LINK_END)},
    {"national", S, P, UPSERT, SH, SH, NOPE(SECRET)},
    {"national", TS, P, UPSERT, SH, SH, NOPE(SECRET)},
    {"national", 0, P, UPSERT, SH, SH, NOPE(MARKING)},
    {"national", NO_MARKING, 0, UPSERT, SH, SH, NOPE(MARKING)},
    {"national", O, C, UPSERT, SH, SH, NOPE(HANDLING)},
    {"national", O, P, DELETE, SH, SH, NOPE(DELETED)},
    {"national", O, P, 0, SH, SH, NOPE(INVALID)},
    {"kent", OS, P, UPSERT, SH, SH, SHARE(KNT)},
    {"merseyside", O, C, UPSERT, SH, SH, SHARE(MERC)},
    {"merseyside", OS, P, UPSERT, SH, SH, NOPE(CLASSIFICATION)},
    {"merseyside", O, P, UPSERT, SH, PG_POLICY_END_WITHHELD, NOPE(LINK_END)},
};
#define N_LINK_ROWS (int)(sizeof s_link_rows / sizeof s_link_rows[0])

START_TEST(test_link_rows)
{
    const t_link_row *r = &s_link_rows[_i];
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    pg_link_update *l = s_link(a, r->classification, r->handling, r->op);
    pg_policy_decision d;
    ck_assert_int_eq(pg_policy_decide_link(p, s_dest(p, r->dest), l, r->from, r->to, a, &d), 0);
    ck_assert_msg(d.verdict == r->verdict && d.reason == r->reason, "row %d: got %s, want %s", _i,
                  pg_policy_reason_name(d.reason), pg_policy_reason_name(r->reason));
    if (r->verdict == PG_POLICY_SHARE) {
        ck_assert_str_eq(d.agreement, r->agreement);
        ck_assert_str_eq(d.link->id, l->id);
        ck_assert_ptr_null(d.entity);
    } else {
        ck_assert_ptr_null(d.link);
    }
}
END_TEST

START_TEST(test_link_redacts_org_unit)
{
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    pg_link_update *l = s_link(a, O, P, UPSERT);
    pg_policy_decision d;
    ck_assert_int_eq(pg_policy_decide_link(p, s_dest(p, "merseyside"), l, SH, SH, a, &d), 0);
    ck_assert_ptr_ne(d.link, l);
    ck_assert_str_eq(d.link->origin->org_unit, "");
    ck_assert_str_eq(d.link->origin->native_id, "O0000000001");
    ck_assert_str_eq(l->origin->org_unit, "ESX/SOUTH/CID");
    ck_assert_str_eq(d.redactions, "origin.org_unit");
    ck_assert_int_eq(pg_policy_decide_link(p, s_dest(p, "national"), l, SH, SH, a, &d), 0);
    ck_assert_ptr_eq(d.link, l);
    ck_assert_str_eq(d.redactions, "none");
}
END_TEST

/* ------------------------------------------------------------------ withdrawal */

START_TEST(test_transition_table)
{
    pg_policy_decision share = {.verdict = PG_POLICY_SHARE};
    pg_policy_decision hold = {.verdict = PG_POLICY_WITHHOLD, .reason = PG_POLICY_R_SECRET};
    ck_assert_int_eq(pg_policy_transition(0, &share), PG_POLICY_PUBLISH);
    ck_assert_int_eq(pg_policy_transition(1, &share), PG_POLICY_PUBLISH);
    ck_assert_int_eq(pg_policy_transition(0, &hold), PG_POLICY_NOTHING);
    ck_assert_int_eq(pg_policy_transition(1, &hold), PG_POLICY_WITHDRAW);
}
END_TEST

/* Run one record's revisions past a destination as the pipeline would, keeping the
 * one bit of state, and return the actions. */
static void s_run(const pg_policy *p, const char *dest, pg_entity_update **revs, size_t n,
                  pg_policy_action *actions, pg_arena *a)
{
    int shared = 0;
    for (size_t i = 0; i < n; i++) {
        pg_policy_decision d;
        ck_assert_int_eq(pg_policy_decide_entity(p, s_dest(p, dest), revs[i], a, NULL, NULL, &d),
                         0);
        actions[i] = pg_policy_transition(shared, &d);
        shared = actions[i] == PG_POLICY_PUBLISH;
    }
}

START_TEST(test_withdraw_marking_goes_up)
{
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    pg_entity_update *revs[] = {
        s_entity(a, PERSON, O, P, 2, UPSERT),
        s_entity(a, PERSON, OS, P, 2, UPSERT), /* still fine for national */
        s_entity(a, PERSON, S, P, 2, UPSERT),  /* up to SECRET: withdrawn */
        s_entity(a, PERSON, S, P, 2, UPSERT),  /* still SECRET: nothing more */
        s_entity(a, PERSON, OS, P, 2, UPSERT), /* back down: published again */
        s_entity(a, PERSON, OS, C, 2, UPSERT), /* handling C: withdrawn */
    };
    pg_policy_action got[6];
    s_run(p, "national", revs, 6, got, a);
    const pg_policy_action want[] = {PG_POLICY_PUBLISH, PG_POLICY_PUBLISH, PG_POLICY_WITHDRAW,
                                     PG_POLICY_NOTHING, PG_POLICY_PUBLISH, PG_POLICY_WITHDRAW};
    for (int i = 0; i < 6; i++)
        ck_assert_msg(got[i] == want[i], "revision %d: %d, want %d", i, got[i], want[i]);
    /* merseyside takes OFFICIAL only: OS already withdraws there */
    s_run(p, "merseyside", revs, 2, got, a);
    ck_assert_int_eq(got[0], PG_POLICY_PUBLISH);
    ck_assert_int_eq(got[1], PG_POLICY_WITHDRAW);
}
END_TEST

START_TEST(test_withdraw_delete_and_mopi)
{
    pg_policy *p = s_p;
    pg_arena *a = s_a;
    pg_entity_update *disposal[] = {
        s_entity(a, PERSON, O, P, 1, UPSERT),
        s_entity(a, PERSON, O, P, 1, DELETE), /* MoPI disposal / created in error */
    };
    pg_policy_action got[3];
    s_run(p, "merseyside", disposal, 2, got, a);
    ck_assert_int_eq(got[0], PG_POLICY_PUBLISH);
    ck_assert_int_eq(got[1], PG_POLICY_WITHDRAW);
    /* a delete of what the destination never had says nothing to it */
    pg_entity_update *never[] = {
        s_entity(a, INTEL, O, P, 1, UPSERT),
        s_entity(a, INTEL, O, P, 1, DELETE),
    };
    s_run(p, "kent", never, 2, got, a);
    ck_assert_int_eq(got[0], PG_POLICY_NOTHING);
    ck_assert_int_eq(got[1], PG_POLICY_NOTHING);
    /* re-graded into a MoPI group the destination does not take */
    pg_entity_update *regraded[] = {
        s_entity(a, PERSON, O, P, 2, UPSERT),
        s_entity(a, PERSON, O, P, 3, UPSERT),
        s_entity(a, PERSON, O, P, 1, UPSERT),
    };
    s_run(p, "merseyside", regraded, 3, got, a);
    ck_assert_int_eq(got[0], PG_POLICY_PUBLISH);
    ck_assert_int_eq(got[1], PG_POLICY_WITHDRAW);
    ck_assert_int_eq(got[2], PG_POLICY_PUBLISH);
}
END_TEST

/* A policy change: the caller re-decides what each destination holds from the facts
 * it kept, under the new policy. */
START_TEST(test_withdraw_policy_change)
{
    pg_policy *old = s_example();
    pg_policy *tighter =
        s_policy("policy:\n  version: ESX-ISP-2026.2\n"
                 "  agreements: [{name: ISA-NATIONAL-2026, description: n},"
                 " {name: ISA-ESX-KNT-2025, description: k}]\n"
                 "  destinations:\n"
                 "    - {name: national, kind: national, topic: polegate.esx.national.pole.v1,\n"
                 "       agreement: ISA-NATIONAL-2026, max_classification: OFFICIAL, kinds: all}\n"
                 "    - {name: kent, kind: force, force: KNT, topic: polegate.esx.knt.pole.v1,\n"
                 "       agreement: ISA-ESX-KNT-2025, max_classification: OFFICIAL-SENSITIVE,\n"
                 "       kinds: [location, vehicle], mopi_groups: [1, 2, 3, 4]}\n");
    pg_arena *a = pg_arena_new(0);
    const struct {
        int kind, classification, mopi;
        const char *dest;
        pg_policy_reason before, after;
    } rows[] = {
        {PERSON, OS, 2, "national", PG_POLICY_R_OK, PG_POLICY_R_CLASSIFICATION},
        {PERSON, O, 2, "national", PG_POLICY_R_OK, PG_POLICY_R_OK},
        {PERSON, O, 2, "kent", PG_POLICY_R_OK, PG_POLICY_R_KIND},
        {VEHICLE, O, 2, "kent", PG_POLICY_R_OK, PG_POLICY_R_OK},
        {VEHICLE, O, 0, "kent", PG_POLICY_R_OK, PG_POLICY_R_MOPI},    /* ungrouped no longer */
        {PERSON, O, 2, "merseyside", PG_POLICY_R_OK, PG_POLICY_R_OK}, /* see below */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        pg_policy_facts f;
        pg_policy_facts_of(
            s_entity(a, rows[i].kind, rows[i].classification, P, rows[i].mopi, UPSERT), &f);
        ck_assert_int_eq(pg_policy_check_facts(old, s_dest(old, rows[i].dest), &f), rows[i].before);
        const pg_policy_destination *now = pg_policy_destination_find(tighter, rows[i].dest);
        if (!now) /* the destination is gone: everything it holds is withdrawn */
            continue;
        pg_policy_reason r = pg_policy_check_facts(tighter, now, &f);
        ck_assert_msg(r == rows[i].after, "row %zu: %s", i, pg_policy_reason_name(r));
        pg_policy_decision d = {
            .verdict = r == PG_POLICY_R_OK ? PG_POLICY_SHARE : PG_POLICY_WITHHOLD, .reason = r};
        ck_assert_int_eq(pg_policy_transition(1, &d),
                         r == PG_POLICY_R_OK ? PG_POLICY_PUBLISH : PG_POLICY_WITHDRAW);
    }
    ck_assert_ptr_null(pg_policy_destination_find(tighter, "merseyside"));
    pg_arena_destroy(&a);
    pg_policy_destroy(&old);
    pg_policy_destroy(&tighter);
}
END_TEST

START_TEST(test_withdrawal_messages)
{
    pg_arena *a = pg_arena_new(0);
    pg_entity_update *e = s_entity(a, PERSON, S, C, 1, UPSERT);
    pg_entity_update *w = pg_policy_withdrawal_entity(a, e, 8);
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(w->id, e->id);
    ck_assert_int_eq(w->operation, DELETE);
    ck_assert_uint_eq(w->version, 8);
    ck_assert_int_eq(w->kind, PERSON);
    ck_assert_int_eq(w->body_case, 0);
    ck_assert_ptr_null(w->marking); /* never tell it the record is now SECRET */
    ck_assert_ptr_null(w->retention);
    ck_assert_str_eq(w->origin->native_id, "P0000123456");
    ck_assert_str_eq(w->origin->force, "ESX");
    ck_assert_str_eq(w->origin->org_unit, "");
    ck_assert_str_eq(w->origin->message_id, "");
    size_t len;
    char *bytes = s_pack(&w->base, &len);
    Polegate__Pole__V1__EntityUpdate *back =
        polegate__pole__v1__entity_update__unpack(NULL, len, (uint8_t *)bytes);
    ck_assert_ptr_nonnull(back);
    ck_assert_str_eq(back->id, e->id);
    polegate__pole__v1__entity_update__free_unpacked(back, NULL);
    free(bytes);
    pg_link_update *l = s_link(a, S, P, UPSERT);
    pg_link_update *lw = pg_policy_withdrawal_link(a, l, 4);
    ck_assert_int_eq(lw->operation, DELETE);
    ck_assert_uint_eq(lw->version, 4);
    ck_assert_str_eq(lw->from->id, l->from->id);
    ck_assert_str_eq(lw->to->id, l->to->id);
    ck_assert_int_eq(lw->role, l->role);
    ck_assert_ptr_null(lw->marking);
    ck_assert_str_eq(lw->origin->org_unit, "");
    pg_arena_destroy(&a);
}
END_TEST

/* ------------------------------------------------------------------ inbound */

START_TEST(test_inbound)
{
    pg_policy *p =
        s_policy("policy:\n  version: v\n  agreements: [{name: A, description: a}]\n"
                 "  partners:\n"
                 "    - {force: MER, topic: polegate.mer.esx.pole.v1, agreement: A}\n"
                 "    - {force: NAT, topic: polegate.national.esx.pole.v1, agreement: A,\n"
                 "       speaks_for: [KNT, MER]}\n");
    const struct {
        const char *topic, *origin;
        int rc;
        const char *why;
    } rows[] = {
        {"polegate.mer.esx.pole.v1", "MER", 0, NULL},
        {"polegate.mer.esx.pole.v1", "ESX", PG_EPOLICY,
         "partner MER sent a record claiming to originate from this force (ESX)"},
        {"polegate.mer.esx.pole.v1", "KNT", PG_EPOLICY,
         "origin.force: partner MER may not speak for that force"},
        {"polegate.mer.esx.pole.v1", "", PG_EPOLICY,
         "a record from partner MER names no origin force"},
        {"polegate.mer.esx.pole.v1", NULL, PG_EPOLICY, "names no origin force"},
        {"polegate.national.esx.pole.v1", "KNT", 0, NULL},
        {"polegate.national.esx.pole.v1", "MER", 0, NULL},
        {"polegate.national.esx.pole.v1", "NAT", PG_EPOLICY,
         "origin.force: partner NAT may not speak for that force"},
        {"polegate.national.esx.pole.v1", "ESX", PG_EPOLICY, "originate from this force"},
        {"polegate.knt.esx.pole.v1", "KNT", PG_EPOLICY,
         "topic 'polegate.knt.esx.pole.v1' is not a configured partner's"},
        {NULL, "KNT", PG_EPOLICY, "is not a configured partner's"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char err[PG_ERRSTR_SIZE] = "";
        const pg_policy_partner *partner = (const pg_policy_partner *)1;
        int rc =
            pg_policy_inbound_allowed(p, rows[i].topic, rows[i].origin, &partner, err, sizeof err);
        ck_assert_msg(rc == rows[i].rc, "row %zu: rc %d (%s)", i, rc, err);
        if (rows[i].why)
            ck_assert_msg(strstr(err, rows[i].why), "row %zu: '%s'", i, err);
        if (!rc)
            ck_assert_str_eq(partner->topic, rows[i].topic);
        if (rows[i].topic && strstr(rows[i].topic, "knt"))
            ck_assert_ptr_null(partner);
    }
    pg_policy_destroy(&p);
}
END_TEST

/* ------------------------------------------------------------------ config errors */

#define HEAD                                                                                       \
    "policy:\n  version: v1\n  agreements:\n    - {name: A, description: a}\n    - {name: B, "     \
    "description: b}\n"
/* A valid destination, lines 6-8 after HEAD, for rows that break something else. */
#define DEST(extra)                                                                                \
    "  destinations:\n    - {name: d, kind: national, topic: t.d, agreement: A,\n"                 \
    "       max_classification: OFFICIAL, kinds: all" extra "}\n"

typedef struct t_error_row {
    const char *yaml;
    const char *want; /* a substring of the message, with its position */
} t_error_row;

#define D1                                                                                         \
    "  destinations:\n    - {name: d, kind: national, topic: t.d, agreement: A,\n       "          \
    "max_classification: OFFICIAL, kinds: all}\n"
#define ONE(fields) HEAD "  destinations:\n    - {" fields "}\n"
#define BASE                                                                                       \
    "name: d, kind: national, topic: t.d, agreement: A, max_classification: OFFICIAL, kinds: all"
#define PARTNERS(items) HEAD "  partners:\n" items

static const t_error_row s_error_rows[] = {
    {"policy:\n  version: v1\n  colour: red\n",
     "<string>:3:3: policy: unknown key 'colour' (known keys: version, agreements, "
     "destinations, partners)"},
    {"policy:\n  agreements: []\n", "<string>:2:3: policy: missing required key 'version'"},
    {"policy:\n  version: \"\"\n", "<string>:2:13: policy.version: a value is required"},
    {"policy:\n  version: [a]\n",
     "<string>:2:13: policy.version: expected a single value, not a list"},
    {"policy:\n  version: \"a\\tb\"\n",
     "policy.version: the version goes into a header: printable ASCII only"},
    {"policy: [1]\n", "<string>:1:10: policy: expected a mapping of keys to values"},
    {HEAD DEST(", colour: red"), "<string>:8:50: policy.destinations[0]: unknown key 'colour' "
                                 "(known keys: name, kind, force, topic"},
    {HEAD "  destinations:\n    - {name: d, kind: national, topic: t, agreement: A, kinds: all}\n",
     "<string>:7:8: policy.destinations[0]: missing required key 'max_classification'"},
    {HEAD "  destinations: foo\n",
     "<string>:6:17: policy.destinations: expected a list of destinations"},
    {HEAD "  destinations:\n    - just-a-name\n",
     "<string>:7:7: policy.destinations[0]: expected a mapping"},
    {"policy:\n  version: v\n  agreements: [{name: A}]\n",
     "<string>:3:17: policy.agreements[0]: missing required key 'description'"},
    {"policy:\n  version: v\n  agreements: [{name: A, description: a}, {name: A, description: "
     "b}]\n",
     "<string>:3:44: policy.agreements[1]: agreement 'A' is declared twice"},
    {"policy:\n  version: v\n  agreements: [{name: \"A B\", description: a}]\n",
     "policy.agreements[0].name: agreement name 'A B' may hold only letters, digits, '.', '_' and "
     "'-'"},
    /* kinds */
    {HEAD DEST(", kinds: [person]"), "duplicate key"}, /* libfyaml rejects a repeated key */
    {ONE("name: d, kind: national, topic: t.d, agreement: A, max_classification: OFFICIAL, kinds: "
         "[person, spaceship]"),
     "<string>:7:105: policy.destinations[0].kinds[1]: unknown kind 'spaceship' (person, location"},
    {ONE("name: d, kind: national, topic: t.d, agreement: A, max_classification: OFFICIAL, kinds: "
         "[person, person]"),
     "policy.destinations[0].kinds[1]: 'person' is listed twice"},
    {ONE("name: d, kind: national, topic: t.d, agreement: A, max_classification: OFFICIAL, kinds: "
         "[]"),
     "policy.destinations[0].kinds: receives no kind at all"},
    {ONE("name: d, kind: national, topic: t.d, agreement: A, max_classification: OFFICIAL, kinds: "
         "everything"),
     "policy.destinations[0].kinds: expected a list of kinds (or `all`)"},
    /* classification */
    {ONE("name: d, kind: national, topic: t.d, agreement: A, max_classification: SECRET, kinds: "
         "all"),
     "<string>:7:79: policy.destinations[0].max_classification: SECRET is never shared by this "
     "gateway: the highest is OFFICIAL-SENSITIVE"},
    {ONE("name: d, kind: national, topic: t.d, agreement: A, max_classification: TOP-SECRET, "
         "kinds: all"),
     "TOP-SECRET is never shared"},
    {ONE("name: d, kind: national, topic: t.d, agreement: A, max_classification: RESTRICTED, "
         "kinds: all"),
     "unknown classification 'RESTRICTED' (OFFICIAL or OFFICIAL-SENSITIVE)"},
    /* handling C and agreements */
    {ONE(BASE ", allow_handling_c: true"),
     "<string>:7:119: policy.destinations[0] (d): handling C records may go only under a named "
     "agreement: set `handling_c_agreement`"},
    {ONE(BASE ", handling_c_agreement: B"), "policy.destinations[0] (d): `handling_c_agreement` is "
                                            "set but `allow_handling_c` is not true"},
    {ONE(BASE ", allow_handling_c: true, handling_c_agreement: Q"),
     "policy.destinations[0] (d): agreement 'Q' is not declared in policy.agreements"},
    {ONE("name: d, kind: national, topic: t.d, agreement: Z, max_classification: OFFICIAL, kinds: "
         "all"),
     "<string>:7:56: policy.destinations[0] (d): agreement 'Z' is not declared in "
     "policy.agreements"},
    {ONE(BASE ", allow_handling_c: yes"),
     "policy.destinations[0].allow_handling_c: expected true or false, not 'yes'"},
    {ONE(BASE ", allow_handling_c: \"true\""), "expected true or false, not 'true'"},
    /* redaction */
    {ONE(BASE ", redact: [person.shoe_size]"),
     "policy.destinations[0].redact[0]: unknown field 'person.shoe_size'"},
    {ONE("name: d, kind: national, topic: t.d, agreement: A, max_classification: OFFICIAL, kinds: "
         "[person], redact: [intelligence.text]"),
     "policy.destinations[0] (d): redacts intelligence.text but does not receive intelligence "
     "records"},
    /* MoPI */
    {ONE(BASE ", mopi_groups: [1, 5]"),
     "policy.destinations[0].mopi_groups[1]: unknown MoPI group '5' (1, 2, 3, 4 or ungrouped)"},
    {ONE(BASE ", mopi_groups: [ungrouped]"),
     "policy.destinations[0].mopi_groups: receives no MoPI group at all"},
    /* kinds of destination and forces */
    {ONE("name: d, kind: regional, topic: t.d, agreement: A, max_classification: OFFICIAL, kinds: "
         "all"),
     "policy.destinations[0].kind: unknown destination kind 'regional' (national or force)"},
    {ONE("name: d, kind: force, topic: t.d, agreement: A, max_classification: OFFICIAL, kinds: "
         "all"),
     "<string>:7:8: policy.destinations[0] (d): a destination of kind force needs `force`: its "
     "force code"},
    {ONE(BASE ", force: KNT"), "policy.destinations[0] (d): a national destination has no `force`"},
    {ONE("name: d, kind: force, force: ESX, topic: t.d, agreement: A, max_classification: "
         "OFFICIAL, kinds: all"),
     "policy.destinations[0] (d): force ESX is this gateway's own force"},
    {ONE("name: d, kind: force, force: kent, topic: t.d, agreement: A, max_classification: "
         "OFFICIAL, kinds: all"),
     "policy.destinations[0].force: force code 'kent' must be 2-4 upper-case letters (e.g. ESX)"},
    {ONE("name: d, kind: national, topic: \"a topic\", agreement: A, max_classification: OFFICIAL, "
         "kinds: all"),
     "policy.destinations[0].topic: topic 'a topic' may hold only letters, digits, '.', '_' and "
     "'-'"},
    /* duplicates */
    {HEAD "  destinations:\n    - {" BASE
          "}\n    - {name: d, kind: national, topic: t.e, agreement: A, max_classification: "
          "OFFICIAL, kinds: all}\n",
     "<string>:8:14: policy.destinations[1] (d): name 'd' is also destinations[0]'s"},
    {HEAD "  destinations:\n    - {" BASE
          "}\n    - {name: e, kind: national, topic: t.d, agreement: A, max_classification: "
          "OFFICIAL, kinds: all}\n",
     "<string>:8:40: policy.destinations[1] (e): topic 't.d' is also destination d's"},
    /* partners */
    {HEAD "  destinations:\n    - {" BASE
          "}\n  partners:\n    - {force: MER, topic: t.d, agreement: A}\n",
     "policy.destinations[0] (d): topic 't.d' is partner MER's inbound topic: the gateway would "
     "read back what it publishes"},
    {PARTNERS("    - {force: ESX, topic: p, agreement: A}\n"),
     "<string>:7:15: policy.partners[0] (ESX): force ESX is this gateway's own force"},
    {PARTNERS("    - {force: MER, topic: p, agreement: A, speaks_for: [MER, ESX]}\n"),
     "policy.partners[0] (MER): a partner may never speak for this gateway's own force ESX"},
    {PARTNERS("    - {force: MER, topic: p, agreement: A, speaks_for: []}\n"),
     "policy.partners[0].speaks_for: speaks for no force: list at least the partner itself"},
    {PARTNERS("    - {force: MER, topic: p, agreement: A, speaks_for: [MER, mer]}\n"),
     "policy.partners[0].speaks_for[1]: force code 'mer' must be 2-4 upper-case letters"},
    {PARTNERS("    - {force: MER, topic: p, agreement: A}\n    - {force: KNT, topic: p, agreement: "
              "B}\n"),
     "<string>:8:27: policy.partners[1] (KNT): topic 'p' is also partner MER's"},
    {PARTNERS("    - {force: MER, topic: p, agreement: Z}\n"),
     "policy.partners[0] (MER): agreement 'Z' is not declared in policy.agreements"},
    {PARTNERS("    - {force: MER, topic: p}\n"),
     "policy.partners[0]: missing required key 'agreement'"},
    {PARTNERS("    - {force: MER, topic: p, agreement: A, max_classification: SECRET}\n"),
     "policy.partners[0].max_classification: SECRET is never shared by this gateway"},
    {PARTNERS("    - {force: MER, topic: p, agreement: A, trusted: true}\n"),
     "policy.partners[0]: unknown key 'trusted' (known keys: force, topic, agreement, speaks_for, "
     "max_classification)"},
};
#define N_ERROR_ROWS (int)(sizeof s_error_rows / sizeof s_error_rows[0])

START_TEST(test_config_errors)
{
    const t_error_row *r = &s_error_rows[_i];
    char err[PG_ERRSTR_SIZE] = "";
    pg_policy *p = pg_policy_load_string(r->yaml, strlen(r->yaml), "ESX", err, sizeof err);
    ck_assert_msg(p == NULL, "row %d was accepted:\n%s", _i, r->yaml);
    ck_assert_msg(strstr(err, r->want) != NULL, "row %d:\n got: %s\nwant: %s", _i, err, r->want);
}
END_TEST

START_TEST(test_load_errors)
{
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_ptr_null(pg_policy_load("/nonexistent/policy.yaml", "ESX", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/policy.yaml"));
    const char *broken = "policy:\n  version: [1\n";
    ck_assert_ptr_null(pg_policy_load_string(broken, strlen(broken), "ESX", err, sizeof err));
    ck_assert_msg(strstr(err, "<string>: ") && strstr(err, "error"), "%s", err);
    const char *none = "force:\n  code: ESX\n";
    ck_assert_ptr_null(pg_policy_load_string(none, strlen(none), "ESX", err, sizeof err));
    ck_assert_str_eq(err, "<string>: no top-level `policy:` section");
    const char *ok = "policy:\n  version: v\n";
    ck_assert_ptr_null(pg_policy_load_string(ok, strlen(ok), "essex", err, sizeof err));
    ck_assert_str_eq(err,
                     "policy: this gateway's force code 'essex' is not 2-4 upper-case letters");
    ck_assert_ptr_null(pg_policy_load_string(ok, strlen(ok), NULL, err, sizeof err));
    /* the smallest valid policy shares nothing and accepts nothing */
    pg_policy *p = pg_policy_load_string(ok, strlen(ok), "ESX", err, sizeof err);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(pg_policy_destination_count(p), 0);
    ck_assert_int_eq(pg_policy_inbound_allowed(p, "t", "MER", NULL, err, sizeof err), PG_EPOLICY);
    pg_policy_destroy(&p);
    /* a whole force config: the other sections are the config's business */
    const char *whole = "force:\n  code: ESX\nkafka:\n  brokers: x\npolicy:\n  version: v\n";
    p = pg_policy_load_string(whole, strlen(whole), "ESX", err, sizeof err);
    ck_assert_ptr_nonnull(p);
    pg_policy_destroy(&p);
}
END_TEST

/* The defaults: mopi_groups all (with ungrouped), no redaction, no handling C, a
 * partner speaks for itself. */
START_TEST(test_defaults)
{
    pg_policy *p = s_policy(HEAD D1 "  partners:\n    - {force: MER, topic: p, agreement: B}\n");
    const pg_policy_destination *d = s_dest(p, "d");
    ck_assert_uint_eq(d->mopi_groups, 0x1f);
    ck_assert_uint_eq(d->redact, 0);
    ck_assert_int_eq(d->allow_handling_c, 0);
    ck_assert_ptr_null(d->handling_c_agreement);
    ck_assert_uint_eq(d->kinds, 0x3fe);
    const pg_policy_partner *m = pg_policy_partner_at(p, 0);
    ck_assert_uint_eq(m->n_speaks_for, 1);
    ck_assert_str_eq(m->speaks_for[0], "MER");
    ck_assert_str_eq(m->agreement, "B");
    pg_policy_destroy(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("policy");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_example_model);
    tcase_add_test(tc, test_names);
    tcase_add_loop_test(tc, test_entity_rows, 0, N_ENTITY_ROWS);
    tcase_add_test(tc, test_never_shared_anywhere);
    tcase_add_test(tc, test_body_must_match_kind);
    tcase_add_loop_test(tc, test_each_redaction, 0, PG_POLICY_FIELD_COUNT);
    tcase_add_test(tc, test_date_of_birth_day);
    tcase_add_test(tc, test_worked_kent);
    tcase_add_test(tc, test_one_record_many_forms);
    tcase_add_test(tc, test_merged_from_filtered);
    tcase_add_loop_test(tc, test_link_rows, 0, N_LINK_ROWS);
    tcase_add_test(tc, test_link_redacts_org_unit);
    tcase_add_test(tc, test_transition_table);
    tcase_add_test(tc, test_withdraw_marking_goes_up);
    tcase_add_test(tc, test_withdraw_delete_and_mopi);
    tcase_add_test(tc, test_withdraw_policy_change);
    tcase_add_test(tc, test_withdrawal_messages);
    tcase_add_test(tc, test_inbound);
    tcase_add_loop_test(tc, test_config_errors, 0, N_ERROR_ROWS);
    tcase_add_test(tc, test_load_errors);
    tcase_add_test(tc, test_defaults);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
