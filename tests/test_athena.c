/* Unit tests for the Athena-like adapter: ATX/2 decode, encode, split, round trips, and
 * one case per validation rule. */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/adapter.h"
#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/pole.h"
#include "polegate/timeutil.h"

#define KIND(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x
#define ROLE(x) POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_##x
#define OP(x) POLEGATE__POLE__V1__OPERATION__OPERATION_##x
#define BODY(x) POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_##x

/* 2026-11-28T11:00:00.123Z: a fixed sending time so that output is reproducible. */
static const int64_t s_now_ms = 1795863600123LL;

static const pg_adapter_ops *A = &pg_adapter_athena;
static char e[PG_ERRSTR_SIZE];

/* ------------------------------------------------------------------ fixtures */

typedef struct s_lines {
    char *text[64];
    size_t pos[64];
    size_t n;
} s_lines;

static int s_collect(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_lines *l = arg;
    if (l->n == 64)
        return -1;
    l->text[l->n] = strndup((const char *)msg, len);
    l->pos[l->n++] = pos;
    return 0;
}

static void s_load(const char *name, s_lines *l)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", PG_FIXTURES, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    memset(l, 0, sizeof *l);
    ck_assert_int_eq(A->split((const uint8_t *)buf, n, s_collect, l), 0);
}

static void s_free_lines(s_lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->text[i]);
}

static int s_decode(pg_changeset *cs, const char *msg)
{
    pg_adapter_ctx ctx = {0};
    e[0] = 0;
    return A->decode(&ctx, (const uint8_t *)msg, strlen(msg), cs, e, sizeof e);
}

static const char *s_uuid(const char *force, const char *type, const char *id)
{
    static char out[8][PG_UUID_STR_SIZE];
    static int next;
    char *u = out[next++ % 8];
    ck_assert_int_eq(pg_identity_entity(force, "ATHENA", type, id, u), 0);
    return u;
}

static int64_t s_seconds(const char *rfc3339)
{
    pg_instant t;
    ck_assert_int_eq(pg_rfc3339_parse(rfc3339, &t, e, sizeof e), 0);
    return t.seconds;
}

static void s_date_is(const pg_date *d, int y, int m, int day)
{
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->year, y);
    ck_assert_int_eq(d->month, m);
    ck_assert_int_eq(d->day, day);
}

/* The entity change that carries native id `id` in cs. */
static const pg_change *s_entity_change(const pg_changeset *cs, const char *id, size_t *index)
{
    for (size_t i = 0; i < cs->count; i++)
        if (cs->changes[i].type == PG_CHANGE_ENTITY &&
            strcmp(cs->changes[i].entity->origin->native_id, id) == 0) {
            if (index)
                *index = i;
            return &cs->changes[i];
        }
    ck_abort_msg("no entity %s", id);
    return NULL;
}

/* ------------------------------------------------------------------ decode */

START_TEST(test_split)
{
    const char *text = "{\"a\":1}\r\n\n   \r\n{\"b\":2}\n{\"c\":3}";
    s_lines l;
    memset(&l, 0, sizeof l);
    ck_assert_int_eq(A->split((const uint8_t *)text, strlen(text), s_collect, &l), 0);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.text[0], "{\"a\":1}");
    ck_assert_uint_eq(l.pos[0], 1);
    ck_assert_str_eq(l.text[1], "{\"b\":2}");
    ck_assert_uint_eq(l.pos[1], 4);
    ck_assert_str_eq(l.text[2], "{\"c\":3}");
    ck_assert_uint_eq(l.pos[2], 5);
    s_free_lines(&l);
    /* a callback's non-zero return stops the split and is returned */
    memset(&l, 0, sizeof l);
    l.n = 64;
    ck_assert_int_eq(A->split((const uint8_t *)text, strlen(text), s_collect, &l), -1);
    ck_assert_int_eq(A->split((const uint8_t *)"", 0, s_collect, &l), 0);

    s_load("atx-burglary.ndjson", &l);
    ck_assert_uint_eq(l.n, 8);
    ck_assert_uint_eq(l.pos[7], 8);
    s_free_lines(&l);
}
END_TEST

START_TEST(test_ops)
{
    ck_assert_str_eq(A->name, "athena");
    ck_assert_str_eq(A->format, "atx");
    ck_assert_str_eq(A->system, "ATHENA");
    ck_assert_uint_eq(A->max_message_size, 1048576);
}
END_TEST

START_TEST(test_decode_burglary)
{
    s_lines l;
    s_load("atx-burglary.ndjson", &l);
    pg_changeset *cs = pg_changeset_new();
    for (size_t i = 0; i < l.n; i++)
        ck_assert_msg(s_decode(cs, l.text[i]) == 0, "line %zu: %s", l.pos[i], e);
    /* 8 entities; links: 2 + 2 + 5 */
    size_t entities = 0, links = 0;
    for (size_t i = 0; i < cs->count; i++)
        cs->changes[i].type == PG_CHANGE_ENTITY ? entities++ : links++;
    ck_assert_uint_eq(entities, 8);
    ck_assert_uint_eq(links, 9);
    ck_assert_str_eq(cs->force, "ESX");
    ck_assert_str_eq(cs->system, "ATHENA");
    ck_assert_str_eq(cs->message_id, "0b7c7a52-6a83-4d71-9a55-5a3f7d0c2e63");

    /* LOCATION */
    const pg_change *c = s_entity_change(cs, "L0000000045", NULL);
    const pg_entity_update *eu = c->entity;
    ck_assert_int_eq(c->replaces_links, 1);
    ck_assert_str_eq(eu->id, s_uuid("ESX", "LOCATION", "L0000000045"));
    ck_assert_int_eq(eu->operation, OP(UPSERT));
    ck_assert_uint_eq(eu->version, 3);
    ck_assert_int_eq(eu->kind, KIND(LOCATION));
    ck_assert_str_eq(eu->origin->force, "ESX");
    ck_assert_str_eq(eu->origin->system, "ATHENA");
    ck_assert_str_eq(eu->origin->native_type, "LOCATION");
    ck_assert_str_eq(eu->origin->native_id, "L0000000045");
    ck_assert_str_eq(eu->origin->message_id, "0b7c7a52-6a83-4d71-9a55-5a3f7d0c2e00");
    ck_assert_str_eq(eu->origin->org_unit, "ESX/CID/COLCHESTER");
    ck_assert_int_eq(eu->modified_at->seconds, s_seconds("2026-03-29T06:12:00Z"));
    ck_assert_int_eq(eu->modified_at->nanos, 0);
    ck_assert_int_eq(eu->marking->classification,
                     POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL_SENSITIVE);
    ck_assert_int_eq(eu->marking->handling, POLEGATE__POLE__V1__HANDLING__HANDLING_P);
    ck_assert_str_eq(eu->marking->caveat, "");
    ck_assert_int_eq(eu->retention->mopi_group, 2);
    s_date_is(eu->retention->review_date, 2036, 3, 29);
    ck_assert_int_eq(eu->body_case, BODY(LOCATION));
    ck_assert_str_eq(eu->location->premises, "Flat 2");
    ck_assert_str_eq(eu->location->street, "14 Crouch Street");
    ck_assert_str_eq(eu->location->locality, "");
    ck_assert_str_eq(eu->location->town, "Colchester");
    ck_assert_str_eq(eu->location->postcode, "CO3 3ES"); /* from "co3 3es" */
    ck_assert_str_eq(eu->location->uprn, "100091234567");
    ck_assert_double_eq(eu->location->geo->lat, 51.8891);
    ck_assert_double_eq(eu->location->geo->lon, 0.9042);
    ck_assert_ptr_null(eu->location->grid);

    /* PERSON with accents, partial alias date, PNC, CRO and two links */
    size_t pi;
    c = s_entity_change(cs, "P0000123456", &pi);
    eu = c->entity;
    const Polegate__Pole__V1__Person *p = eu->person;
    ck_assert_int_eq(eu->body_case, BODY(PERSON));
    ck_assert_str_eq(p->name->surname, "O'Brien");
    ck_assert_uint_eq(p->name->n_forenames, 2);
    ck_assert_str_eq(p->name->forenames[0], "Seán");
    ck_assert_str_eq(p->name->forenames[1], "Patrick");
    ck_assert_str_eq(p->title, "Mr");
    s_date_is(p->date_of_birth, 1985, 7, 14);
    ck_assert_str_eq(p->place_of_birth, "Cork");
    ck_assert_int_eq(p->sex, POLEGATE__POLE__V1__SEX__SEX_MALE);
    ck_assert_int_eq(p->self_defined_ethnicity,
                     POLEGATE__POLE__V1__SELF_DEFINED_ETHNICITY__SELF_DEFINED_ETHNICITY_W2);
    ck_assert_int_eq(p->officer_defined_ethnicity,
                     POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC1);
    ck_assert_str_eq(p->nationality, "IRL");
    ck_assert_str_eq(p->pnc_id, "1985/0123456J");
    ck_assert_str_eq(p->cro_number, "123456/99L");
    ck_assert_uint_eq(p->n_aliases, 1);
    ck_assert_str_eq(p->aliases[0]->name->surname, "Bryan");
    ck_assert_str_eq(p->aliases[0]->name->forenames[0], "Sean");
    s_date_is(p->aliases[0]->date_of_birth, 1985, 7, 0); /* stays partial */
    ck_assert_uint_eq(p->n_warning_markers, 1);
    ck_assert_int_eq(p->warning_markers[0], POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_VI);
    ck_assert_str_eq(p->occupation, "");
    /* its links follow it */
    const pg_link_update *lu = cs->changes[pi + 1].link;
    ck_assert_int_eq(cs->changes[pi + 1].type, PG_CHANGE_LINK);
    char lid[PG_UUID_STR_SIZE];
    ck_assert_int_eq(
        pg_identity_link(eu->id, ROLE(USES), s_uuid("ESX", "TELEPHONE", "T0000000042"), lid), 0);
    ck_assert_str_eq(lu->id, lid);
    ck_assert_int_eq(lu->operation, OP(UPSERT));
    ck_assert_uint_eq(lu->version, 7);
    ck_assert_int_eq(lu->role, ROLE(USES));
    ck_assert_str_eq(lu->from->id, eu->id);
    ck_assert_int_eq(lu->from->kind, KIND(PERSON));
    ck_assert_str_eq(lu->from->native_id, "P0000123456");
    ck_assert_str_eq(lu->to->id, s_uuid("ESX", "TELEPHONE", "T0000000042"));
    ck_assert_int_eq(lu->to->kind, KIND(TELEPHONE));
    ck_assert_str_eq(lu->to->native_id, "T0000000042");
    s_date_is(lu->valid_from, 2025, 11, 1);
    ck_assert_ptr_null(lu->valid_to);
    ck_assert_str_eq(lu->origin->native_id, "P0000123456");
    ck_assert_str_eq(lu->origin->message_id, "0b7c7a52-6a83-4d71-9a55-5a3f7d0c2e01");
    ck_assert_int_eq(lu->modified_at->seconds, eu->modified_at->seconds);
    ck_assert_int_eq(lu->marking->classification, eu->marking->classification);
    lu = cs->changes[pi + 2].link;
    ck_assert_int_eq(lu->role, ROLE(KEEPER));
    ck_assert_int_eq(lu->to->kind, KIND(VEHICLE));
    ck_assert_ptr_null(lu->valid_from);

    /* PERSON whose date of birth is year and month only */
    p = s_entity_change(cs, "P0000123999", NULL)->entity->person;
    ck_assert_str_eq(p->name->surname, "Łukaszewska");
    ck_assert_str_eq(p->name->forenames[0], "Zoë");
    s_date_is(p->date_of_birth, 1990, 2, 0);
    ck_assert_int_eq(p->sex, POLEGATE__POLE__V1__SEX__SEX_FEMALE);
    ck_assert_int_eq(p->officer_defined_ethnicity, 0);
    ck_assert_str_eq(p->title, "");

    const Polegate__Pole__V1__Vehicle *v =
        s_entity_change(cs, "V0000000301", NULL)->entity->vehicle;
    ck_assert_str_eq(v->vrm, "AB12CDE"); /* from "ab12 cde" */
    ck_assert_str_eq(v->make, "FORD");
    ck_assert_int_eq(v->colour, POLEGATE__POLE__V1__COLOUR__COLOUR_SILVER);
    ck_assert_int_eq(v->year, 2012);

    const Polegate__Pole__V1__Item *it = s_entity_change(cs, "I0000000777", NULL)->entity->item;
    ck_assert_int_eq(it->category, POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_ELECTRONICS);
    ck_assert_str_eq(it->description, "Dell XPS 13 laptop, grey");
    ck_assert_str_eq(it->serial_number, "CN0X1234");
    ck_assert_int_eq(it->value->minor_units, 125000);
    ck_assert_str_eq(it->value->currency, "GBP");

    const pg_change *tc = s_entity_change(cs, "T0000000042", NULL); /* the first: UPSERT */
    ck_assert_str_eq(tc->entity->telephone->number, "+447700900123");
    ck_assert_int_eq(tc->entity->telephone->kind,
                     POLEGATE__POLE__V1__TELEPHONE_KIND__TELEPHONE_KIND_MOBILE);

    size_t oi;
    const Polegate__Pole__V1__Occurrence *o =
        s_entity_change(cs, "O0000004711", &oi)->entity->occurrence;
    ck_assert_str_eq(o->reference, "42/12345/26");
    ck_assert_int_eq(o->kind, POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_CRIME);
    ck_assert_uint_eq(o->n_offences, 1);
    ck_assert_int_eq(o->offences[0]->ho_class, 28);
    ck_assert_int_eq(o->offences[0]->ho_subclass, 1);
    ck_assert_str_eq(o->offences[0]->description, "Burglary - dwelling");
    ck_assert_int_eq(o->occurred_from->seconds, s_seconds("2026-03-28T23:30:00Z"));
    ck_assert_int_eq(o->occurred_to->seconds, s_seconds("2026-03-29T00:45:00Z"));
    ck_assert_int_eq(o->reported_at->seconds, s_seconds("2026-03-29T06:10:00Z"));
    ck_assert_int_eq(o->status,
                     POLEGATE__POLE__V1__OCCURRENCE_STATUS__OCCURRENCE_STATUS_UNDER_INVESTIGATION);
    static const int roles[] = {ROLE(SUSPECT), ROLE(VICTIM), ROLE(OCCURRED_AT), ROLE(STOLEN),
                                ROLE(VEHICLE_INVOLVED)};
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(cs->changes[oi + 1 + i].link->role, roles[i]);

    /* the DELETE: no body, no links, no retention */
    const pg_change *del = &cs->changes[cs->count - 1];
    ck_assert_int_eq(del->type, PG_CHANGE_ENTITY);
    ck_assert_int_eq(del->replaces_links, 0);
    ck_assert_int_eq(del->entity->operation, OP(DELETE));
    ck_assert_uint_eq(del->entity->version, 2);
    ck_assert_str_eq(del->entity->id, s_uuid("ESX", "TELEPHONE", "T0000000042"));
    ck_assert_int_eq(del->entity->body_case, POLEGATE__POLE__V1__ENTITY_UPDATE__BODY__NOT_SET);
    ck_assert_ptr_null(del->entity->retention);
    ck_assert_int_eq(del->entity->modified_at->seconds, s_seconds("2026-10-25T01:29:00Z"));

    pg_changeset_destroy(&cs);
    s_free_lines(&l);
}
END_TEST

START_TEST(test_decode_merseyside)
{
    s_lines l;
    s_load("atx-merseyside-import.ndjson", &l);
    ck_assert_uint_eq(l.n, 6);
    pg_changeset *cs = pg_changeset_new();
    for (size_t i = 0; i < l.n; i++)
        ck_assert_msg(s_decode(cs, l.text[i]) == 0, "line %zu: %s", l.pos[i], e);
    ck_assert_str_eq(cs->force, "MER");

    const pg_entity_update *eu = s_entity_change(cs, "P9000000001", NULL)->entity;
    ck_assert_str_eq(eu->origin->org_unit, "MER");
    ck_assert_str_eq(eu->person->name->surname, "GARCÍA-LÓPEZ"); /* case kept */
    ck_assert_str_eq(eu->person->name->forenames[1], "MARÍA");
    s_date_is(eu->person->date_of_birth, 1979, 0, 0);
    ck_assert_str_eq(eu->person->pnc_id, "1999/0054321A");
    ck_assert_str_eq(eu->person->aliases[0]->name->surname, "WIŚNIEWSKI");
    ck_assert_ptr_null(eu->person->aliases[0]->date_of_birth);
    ck_assert_uint_eq(eu->person->n_warning_markers, 2);
    ck_assert_int_eq(eu->person->warning_markers[1],
                     POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_DR);
    /* merged-away record */
    ck_assert_uint_eq(eu->n_merged_from, 1);
    ck_assert_str_eq(eu->merged_from[0]->id, s_uuid("MER", "PERSON", "P9000000002"));
    ck_assert_int_eq(eu->merged_from[0]->kind, KIND(PERSON));
    ck_assert_str_eq(eu->merged_from[0]->native_id, "P9000000002");
    /* "2026-10-25T00:30:00+01:00" is 23:30 UTC the day before */
    ck_assert_int_eq(eu->modified_at->seconds, s_seconds("2026-10-24T23:30:00Z"));

    eu = s_entity_change(cs, "C9000000001", NULL)->entity;
    ck_assert_str_eq(eu->custody->reference, "MER/CU/26/88812");
    ck_assert_int_eq(eu->custody->arrived_at->seconds, s_seconds("2026-10-25T00:30:00Z"));
    ck_assert_ptr_null(eu->custody->released_at);
    ck_assert_str_eq(eu->custody->station, "St Anne Street");
    ck_assert_int_eq(
        eu->custody->outcome,
        POLEGATE__POLE__V1__CUSTODY_OUTCOME__CUSTODY_OUTCOME_RELEASED_UNDER_INVESTIGATION);

    eu = s_entity_change(cs, "N9000000001", NULL)->entity;
    ck_assert_int_eq(eu->marking->handling, POLEGATE__POLE__V1__HANDLING__HANDLING_C);
    ck_assert_str_eq(eu->marking->caveat, "Not to be disclosed to the subject or used in "
                                          "evidence without reference to the originator.");
    ck_assert_int_eq(eu->intelligence->grading->source,
                     POLEGATE__POLE__V1__SOURCE_EVALUATION__SOURCE_EVALUATION_2_UNTESTED);
    ck_assert_int_eq(eu->intelligence->grading->intelligence,
                     POLEGATE__POLE__V1__INTELLIGENCE_ASSESSMENT__INTELLIGENCE_ASSESSMENT_B);
    ck_assert_int_eq(eu->intelligence->grading->handling, POLEGATE__POLE__V1__HANDLING__HANDLING_C);

    eu = s_entity_change(cs, "W9000000001", NULL)->entity;
    ck_assert_int_eq(eu->weapon->category,
                     POLEGATE__POLE__V1__WEAPON_CATEGORY__WEAPON_CATEGORY_KNIFE);
    eu = s_entity_change(cs, "L9000000001", NULL)->entity;
    ck_assert_double_eq(eu->location->geo->lat, 53.405485);
    ck_assert_double_eq(eu->location->geo->lon, -2.980693);

    eu = s_entity_change(cs, "T9000000031", NULL)->entity;
    ck_assert_int_eq(eu->operation, OP(DELETE));
    ck_assert_int_eq(eu->marking->classification,
                     POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL);
    pg_changeset_destroy(&cs);
    s_free_lines(&l);
}
END_TEST

/* ------------------------------------------------------------------ round trips */

static const char *const s_time_keys[] = {"modifiedAt", "occurredFrom", "occurredTo", "reportedAt",
                                          "arrestedAt", "arrivedAt",    "releasedAt"};

/* Apply to an original ATX message exactly the normalisations the spec documents:
 * timestamps in Europe/London with milliseconds, sentAt is the sending time,
 * postcode / VRM / telephone normalised. */
static void s_normalise(json_t *v, const char *key)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m) s_normalise(m, k);
        return;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) s_normalise(m, NULL);
        return;
    }
    if (!json_is_string(v) || !key)
        return;
    const char *s = json_string_value(v);
    char out[40];
    for (size_t i = 0; i < sizeof s_time_keys / sizeof s_time_keys[0]; i++)
        if (strcmp(key, s_time_keys[i]) == 0) {
            pg_instant t;
            ck_assert_int_eq(pg_rfc3339_parse(s, &t, e, sizeof e), 0);
            pg_rfc3339_format_london(t, out);
            json_string_set(v, out);
        }
    if (strcmp(key, "sentAt") == 0) {
        pg_rfc3339_format_london((pg_instant){s_now_ms / 1000, (s_now_ms % 1000) * 1000000}, out);
        json_string_set(v, out);
    } else if (strcmp(key, "postcode") == 0) {
        ck_assert_int_eq(pg_postcode_normalise(s, out, e, sizeof e), 0);
        json_string_set(v, out);
    } else if (strcmp(key, "vrm") == 0) {
        ck_assert_int_eq(pg_vrm_normalise(s, out, e, sizeof e), 0);
        json_string_set(v, out);
    } else if (strcmp(key, "number") == 0) {
        ck_assert_int_eq(pg_phone_to_e164(s, out, e, sizeof e), 0);
        json_string_set(v, out);
    }
}

static void s_pack_eq(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t na = protobuf_c_message_get_packed_size(a), nb = protobuf_c_message_get_packed_size(b);
    ck_assert_uint_eq(na, nb);
    uint8_t *pa = malloc(na + 1), *pb = malloc(nb + 1);
    protobuf_c_message_pack(a, pa);
    protobuf_c_message_pack(b, pb);
    ck_assert_msg(memcmp(pa, pb, na) == 0, "packed messages differ");
    free(pa);
    free(pb);
}

static void s_round_trip_file(const char *name)
{
    s_lines l;
    s_load(name, &l);
    pg_adapter_ctx ctx = {.now_ms = s_now_ms};
    pg_buf out = PG_BUF_INIT;
    for (size_t i = 0; i < l.n; i++) {
        pg_changeset *cs = pg_changeset_new(), *back = pg_changeset_new();
        ck_assert_msg(s_decode(cs, l.text[i]) == 0, "%s:%zu: %s", name, l.pos[i], e);
        pg_buf_reset(&out);
        ck_assert_msg(A->encode(&ctx, cs, &out, e, sizeof e) == 0, "%s:%zu: %s", name, l.pos[i], e);
        /* exactly one NDJSON line */
        ck_assert_uint_gt(out.len, 0);
        ck_assert_int_eq(out.data[out.len - 1], '\n');
        ck_assert_ptr_eq(memchr(out.data, '\n', out.len), out.data + out.len - 1);

        /* ATX -> canonical -> ATX gives back the normalised original */
        json_error_t jerr;
        json_t *orig = json_loads(l.text[i], 0, &jerr);
        json_t *got = json_loadb((const char *)out.data, out.len, 0, &jerr);
        ck_assert_msg(got != NULL, "encoder output is not JSON: %s", jerr.text);
        s_normalise(orig, NULL);
        char *a = json_dumps(orig, JSON_SORT_KEYS), *b = json_dumps(got, JSON_SORT_KEYS);
        ck_assert_msg(json_equal(orig, got), "%s:%zu\nwant %s\ngot  %s", name, l.pos[i], a, b);
        free(a);
        free(b);
        json_decref(orig);
        json_decref(got);

        /* canonical -> ATX -> canonical is identical */
        ck_assert_int_eq(A->decode(&ctx, out.data, out.len - 1, back, e, sizeof e), 0);
        ck_assert_uint_eq(back->count, cs->count);
        for (size_t j = 0; j < cs->count; j++) {
            ck_assert_int_eq(back->changes[j].type, cs->changes[j].type);
            ck_assert_int_eq(back->changes[j].replaces_links, cs->changes[j].replaces_links);
            if (cs->changes[j].type == PG_CHANGE_ENTITY)
                s_pack_eq(&cs->changes[j].entity->base, &back->changes[j].entity->base);
            else
                s_pack_eq(&cs->changes[j].link->base, &back->changes[j].link->base);
        }
        pg_changeset_destroy(&cs);
        pg_changeset_destroy(&back);
    }
    pg_buf_free(&out);
    s_free_lines(&l);
}

START_TEST(test_round_trip_burglary)
{
    s_round_trip_file("atx-burglary.ndjson");
}
END_TEST

START_TEST(test_round_trip_merseyside)
{
    s_round_trip_file("atx-merseyside-import.ndjson");
}
END_TEST

START_TEST(test_encode_format)
{
    /* a whole file as one changeset: one line per entity, in order, each with its links */
    s_lines l;
    s_load("atx-burglary.ndjson", &l);
    pg_changeset *cs = pg_changeset_new();
    for (size_t i = 0; i < l.n; i++)
        ck_assert_int_eq(s_decode(cs, l.text[i]), 0);
    pg_adapter_ctx ctx = {.now_ms = s_now_ms};
    pg_buf out = PG_BUF_INIT;
    ck_assert_int_eq(A->encode(&ctx, cs, &out, e, sizeof e), 0);
    s_lines got;
    memset(&got, 0, sizeof got);
    ck_assert_int_eq(A->split(out.data, out.len, s_collect, &got), 0);
    ck_assert_uint_eq(got.n, 8);
    /* header first, keys in the samples' order, milliseconds and London offsets */
    static const char want0[] =
        "{\"header\":{\"schema\":\"atx/2\",\"messageId\":\"0b7c7a52-6a83-4d71-9a55-"
        "5a3f7d0c2e00\",\"sentAt\":\"2026-11-28T11:00:00.123+00:00\",\"system\":\"ATHENA\","
        "\"orgUnit\":\"ESX/CID/COLCHESTER\"},\"record\":{\"type\":\"LOCATION\",\"id\":"
        "\"L0000000045\",\"revision\":3,\"action\":\"UPSERT\",\"modifiedAt\":"
        "\"2026-03-29T07:12:00.000+01:00\",\"marking\":{\"classification\":"
        "\"OFFICIAL-SENSITIVE\",\"handling\":\"P\",\"caveat\":null},\"retention\":"
        "{\"mopiGroup\":2,\"reviewDate\":\"2036-03-29\"},\"body\":{\"premises\":";
    ck_assert_msg(strncmp(got.text[0], want0, strlen(want0)) == 0, "%s", got.text[0]);
    ck_assert_ptr_nonnull(strstr(got.text[0], "\"geo\":{\"lat\":51.889100,\"lon\":0.904200}"));
    ck_assert_ptr_nonnull(strstr(got.text[1], "\"surname\":\"O'Brien\",\"forenames\":[\"Seán\""));
    ck_assert_ptr_nonnull(strstr(got.text[1], "\"dateOfBirth\":\"1985-07\"}"));
    ck_assert_ptr_nonnull(strstr(got.text[6], "\"occurredTo\":\"2026-03-29T00:45:00.000+00:00\""));
    ck_assert_ptr_nonnull(strstr(got.text[6], "\"reportedAt\":\"2026-03-29T07:10:00.000+01:00\""));
    ck_assert_ptr_null(strstr(got.text[7], "\"links\""));
    ck_assert_ptr_null(strstr(got.text[7], "\"body\""));
    s_free_lines(&got);

    /* the same changeset, encoded again, gives the same bytes */
    pg_buf again = PG_BUF_INIT;
    ck_assert_int_eq(A->encode(&ctx, cs, &again, e, sizeof e), 0);
    ck_assert_uint_eq(again.len, out.len);
    ck_assert_int_eq(memcmp(again.data, out.data, out.len), 0);
    pg_buf_free(&again);
    pg_buf_free(&out);
    pg_changeset_destroy(&cs);
    s_free_lines(&l);
}
END_TEST

/* ------------------------------------------------------------------ encode from canonical */

/* An idmap as an RMS import would keep: new ids 9000000001, 9000000002, ... per type
 * letter, the same id ever after. */
typedef struct s_idmap {
    pg_idmap base;
    char uuid[32][PG_UUID_STR_SIZE];
    char id[32][16];
    int kind[32];
    size_t n;
    int next[10];
    int calls;
} s_idmap;

static const char s_letters[] = "?PLVIWTOCN";

static int s_resolve(pg_idmap *self, const char *uuid, int kind, const char *origin_system,
                     const char *native_id, char *out, size_t outsize, int *created, char *errstr,
                     size_t errstr_size)
{
    s_idmap *m = (s_idmap *)self;
    (void)origin_system, (void)native_id;
    m->calls++;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->uuid[i], uuid) == 0) {
            snprintf(out, outsize, "%s", m->id[i]);
            if (created)
                *created = 0;
            return 0;
        }
    if (kind < 1 || kind > 9)
        return pg_errf(PG_ENOTFOUND, errstr, errstr_size, "no kind for %s", uuid);
    snprintf(m->uuid[m->n], PG_UUID_STR_SIZE, "%s", uuid);
    snprintf(m->id[m->n], 16, "%c%010lld", s_letters[kind], 9000000000LL + ++m->next[kind]);
    m->kind[m->n] = kind;
    snprintf(out, outsize, "%s", m->id[m->n++]);
    if (created)
        *created = 1;
    return 0;
}

/* A canonical person from another force and system, built by hand. */
static pg_entity_update *s_person_update(pg_arena *a, const char *uuid, uint64_t version)
{
    pg_entity_update *eu = PG_PB_NEW(a, pg_entity_update, polegate__pole__v1__entity_update);
    eu->id = pg_arena_strdup(a, uuid);
    eu->operation = OP(UPSERT);
    eu->version = version;
    eu->kind = KIND(PERSON);
    eu->origin = PG_PB_NEW(a, pg_origin, polegate__pole__v1__origin);
    eu->origin->force = "MER";
    eu->origin->system = "NICHE";
    eu->origin->native_type = "GID";
    eu->origin->native_id = "7F3A9C2E4B1D0A66";
    eu->origin->message_id = "B#3";
    eu->origin->org_unit = "";
    eu->modified_at = PG_PB_NEW(a, pg_timestamp, google__protobuf__timestamp);
    eu->modified_at->seconds = s_seconds("2026-07-01T11:00:00Z");
    eu->modified_at->nanos = 5000000;
    eu->marking = PG_PB_NEW(a, pg_marking, polegate__pole__v1__marking);
    eu->marking->classification = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL;
    eu->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_P;
    eu->retention = PG_PB_NEW(a, pg_retention, polegate__pole__v1__retention);
    eu->retention->mopi_group = 3;
    eu->retention->review_date = PG_PB_NEW(a, pg_date, polegate__pole__v1__date);
    eu->retention->review_date->year = 2033;
    eu->retention->review_date->month = 1;
    eu->retention->review_date->day = 31;
    Polegate__Pole__V1__Person *p =
        PG_PB_NEW(a, Polegate__Pole__V1__Person, polegate__pole__v1__person);
    p->name = PG_PB_NEW(a, Polegate__Pole__V1__Name, polegate__pole__v1__name);
    p->name->surname = "Nguyễn";
    static char *forenames[] = {"A", "B", "C", "D", "E", "F", "G"};
    p->name->forenames = forenames;
    p->name->n_forenames = 7;
    p->date_of_birth = PG_PB_NEW(a, pg_date, polegate__pole__v1__date);
    p->date_of_birth->year = 1979;
    p->nationality = "XXX"; /* not a country: omitted */
    p->sex = 99;            /* no ATX equivalent: omitted */
    p->occupation = "Chef \"sous\"\n\\ line";
    eu->body_case = BODY(PERSON);
    eu->person = p;
    return eu;
}

static pg_link_update *s_link_update(pg_arena *a, const pg_entity_update *from, int role,
                                     const char *to_uuid, int to_kind, const char *to_native)
{
    pg_link_update *lu = PG_PB_NEW(a, pg_link_update, polegate__pole__v1__link_update);
    lu->operation = OP(UPSERT);
    lu->version = 1;
    lu->origin = from->origin;
    lu->marking = from->marking;
    lu->modified_at = from->modified_at;
    lu->from = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
    lu->from->id = from->id;
    lu->from->kind = from->kind;
    lu->from->native_id = from->origin->native_id;
    lu->to = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
    lu->to->id = pg_arena_strdup(a, to_uuid);
    lu->to->kind = to_kind;
    lu->to->native_id = pg_arena_strdup(a, to_native);
    lu->role = role;
    lu->id = pg_arena_alloc(a, PG_UUID_STR_SIZE);
    pg_identity_link(from->id, role, to_uuid, lu->id);
    return lu;
}

START_TEST(test_encode_idmap)
{
    pg_changeset *cs = pg_changeset_new();
    pg_arena *a = cs->arena;
    const char *person = "11111111-1111-5111-8111-111111111111";
    const char *home = "22222222-2222-5222-8222-222222222222";
    const char *phone = "33333333-3333-5333-8333-333333333333";
    pg_entity_update *eu = s_person_update(a, person, 4);
    ck_assert_int_eq(pg_changeset_add_entity(cs, eu, 0), 0);
    pg_link_update *lu = s_link_update(a, eu, ROLE(HOME_ADDRESS), home, 0, "A1B2C3");
    lu->valid_from = PG_PB_NEW(a, pg_date, polegate__pole__v1__date);
    lu->valid_from->year = 2020;
    lu->valid_from->month = 6; /* partial: ATX cannot say it, so null, never padded */
    ck_assert_int_eq(pg_changeset_add_link(cs, lu), 0);
    lu = s_link_update(a, eu, ROLE(USES), phone, KIND(TELEPHONE), "D4E5F6");
    lu->valid_to = PG_PB_NEW(a, pg_date, polegate__pole__v1__date);
    lu->valid_to->year = 2026;
    lu->valid_to->month = 2;
    lu->valid_to->day = 28;
    ck_assert_int_eq(pg_changeset_add_link(cs, lu), 0);
    /* a delete of a link from this person: implied by its absence */
    lu = s_link_update(a, eu, ROLE(ASSOCIATE), "44444444-4444-5444-8444-444444444444", KIND(PERSON),
                       "X");
    lu->operation = OP(DELETE);
    ck_assert_int_eq(pg_changeset_add_link(cs, lu), 0);

    s_idmap m = {.base.resolve = s_resolve};
    pg_adapter_ctx ctx = {.idmap = &m.base, .now_ms = s_now_ms};
    pg_buf out = PG_BUF_INIT;
    ck_assert_msg(A->encode(&ctx, cs, &out, e, sizeof e) == 0, "%s", e);
    json_error_t jerr;
    json_t *j = json_loadb((const char *)out.data, out.len, 0, &jerr);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "record"), "id")),
                     "P9000000001");
    char mid[64];
    snprintf(mid, sizeof mid, "%s",
             json_string_value(json_object_get(json_object_get(j, "header"), "messageId")));
    ck_assert_int_eq(strlen(mid), 36);
    ck_assert_int_eq(mid[14], '5'); /* UUIDv5 */
    ck_assert_str_ne(mid, "B#3");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "header"), "orgUnit")),
                     "MER");
    json_t *body = json_object_get(json_object_get(j, "record"), "body");
    json_t *fn = json_object_get(body, "forenames");
    ck_assert_uint_eq(json_array_size(fn), 5);
    ck_assert_str_eq(json_string_value(json_array_get(fn, 4)), "E F G");
    ck_assert_str_eq(json_string_value(json_object_get(body, "surname")), "Nguyễn");
    ck_assert_str_eq(json_string_value(json_object_get(body, "dateOfBirth")), "1979");
    ck_assert_str_eq(json_string_value(json_object_get(body, "occupation")),
                     "Chef \"sous\"\n\\ line");
    ck_assert_ptr_null(json_object_get(body, "nationality"));
    ck_assert_ptr_null(json_object_get(body, "sex"));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "record"), "modifiedAt")),
                     "2026-07-01T12:00:00.005+01:00");
    json_t *links = json_object_get(j, "links");
    ck_assert_uint_eq(json_array_size(links), 2);
    json_t *l0 = json_array_get(links, 0), *l1 = json_array_get(links, 1);
    /* HOME_ADDRESS can only point at a LOCATION: the kind is inferred */
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(l0, "target"), "type")),
                     "LOCATION");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(l0, "target"), "id")),
                     "L9000000001");
    ck_assert(json_is_null(json_object_get(l0, "validFrom")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(l1, "target"), "id")),
                     "T9000000001");
    ck_assert_str_eq(json_string_value(json_object_get(l1, "validTo")), "2026-02-28");
    json_decref(j);

    /* what it wrote is a valid ATX message, and the same entity keeps its id */
    pg_changeset *back = pg_changeset_new();
    ck_assert_msg(A->decode(&ctx, out.data, out.len - 1, back, e, sizeof e) == 0, "%s", e);
    ck_assert_uint_eq(back->count, 3);
    pg_buf again = PG_BUF_INIT;
    ck_assert_int_eq(A->encode(&ctx, cs, &again, e, sizeof e), 0);
    ck_assert_uint_eq(m.n, 3);
    ck_assert_str_eq((char *)again.data, (char *)out.data); /* same ids, same messageId */

    /* a new version: a new messageId */
    eu->version = 5;
    pg_buf_reset(&again);
    ck_assert_int_eq(A->encode(&ctx, cs, &again, e, sizeof e), 0);
    j = json_loadb((const char *)again.data, again.len, 0, &jerr);
    ck_assert_str_ne(json_string_value(json_object_get(json_object_get(j, "header"), "messageId")),
                     mid);
    json_decref(j);

    pg_buf_free(&again);
    pg_buf_free(&out);
    pg_changeset_destroy(&back);
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_encode_unsupported)
{
    pg_changeset *cs = pg_changeset_new();
    pg_arena *a = cs->arena;
    pg_entity_update *eu = s_person_update(a, "11111111-1111-5111-8111-111111111111", 1);
    pg_buf out = PG_BUF_INIT;
    pg_adapter_ctx rt = {.now_ms = s_now_ms}; /* round trip: native ids as they are */

    /* a NICHE GID is not an ATX id */
    ck_assert_int_eq(pg_changeset_add_entity(cs, eu, 1), 0);
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(
        strstr(e, "record.id: '7F3A9C2E4B1D0A66' is not an ATX id of type PERSON"));
    ck_assert_uint_eq(out.len, 0);

    eu->origin->native_id = "P9000000001";
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), 0);
    pg_buf_reset(&out);

    /* OWNER may point at an ITEM, WEAPON or VEHICLE: the target's id must say which */
    pg_link_update *lu =
        s_link_update(a, eu, ROLE(OWNER), "55555555-5555-5555-8555-555555555555", 0, "W9000000001");
    ck_assert_int_eq(pg_changeset_add_link(cs, lu), 0);
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), 0);
    ck_assert_ptr_nonnull(strstr((char *)out.data, "{\"type\":\"WEAPON\",\"id\":\"W9000000001\"}"));
    pg_buf_reset(&out);
    lu->to->native_id = "GID0001";
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "links[0].target: 'GID0001' is not an ATX id"));
    /* a kind the role does not allow */
    lu->to->native_id = "L9000000001";
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "OWNER does not link PERSON to LOCATION"));
    ck_assert_uint_eq(out.len, 0);
    lu->to->native_id = "W9000000001";

    /* a link whose source record is not in the changeset */
    pg_entity_update *other = s_person_update(a, "66666666-6666-5666-8666-666666666666", 1);
    ck_assert_int_eq(pg_changeset_add_link(cs, s_link_update(a, other, ROLE(USES),
                                                             "77777777-7777-5777-8777-777777777777",
                                                             KIND(TELEPHONE), "T9000000001")),
                     0);
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "without its source record"));
    cs->count--;

    /* a link with no target is refused, not left out of the record */
    pg_entity_ref *to = lu->to;
    lu->to = NULL;
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EINVALID);
    ck_assert_str_eq(e, "links: a link change has no target");
    ck_assert_uint_eq(out.len, 0);
    lu->to = to;
    /* a target kind ATX has no record type for (it once went into the reason as NULL) */
    lu->to->kind = 99;
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "entity kind 99 has no ATX record type"));
    ck_assert_uint_eq(out.len, 0);
    lu->to->kind = 0;

    /* what ATX requires and the change lacks */
    eu->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "record.marking.caveat: is required when handling is 'C'"));
    /* ATX takes 0-500 characters (the canonical model's limit too): a longer caveat is
     * refused, not cut */
    char caveat[520];
    memset(caveat, 'c', 501);
    caveat[501] = 0;
    char *no_caveat = eu->marking->caveat;
    eu->marking->caveat = caveat;
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "record.marking.caveat: longer than 500 characters"));
    ck_assert_uint_eq(out.len, 0);
    eu->marking->caveat = no_caveat;
    eu->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_P;
    eu->marking->classification = 0;
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "record.marking.classification: not given"));
    eu->marking->classification = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_SECRET;
    pg_retention *r = eu->retention;
    eu->retention = NULL;
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "record.retention.mopiGroup"));
    eu->retention = r;
    eu->person->name->surname = "";
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "record.body: surname must be 1-60 characters"));
    eu->person->name->surname = "Bad\xff";
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "not valid UTF-8"));
    eu->person->name->surname = "Smith";
    eu->person->pnc_id = "1985/0123456K";
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(
        strstr(e, "record.body.identifiers.pncId: check letter does not match the number"));
    eu->person->pnc_id = "";
    eu->kind = KIND(LOCATION); /* a body that does not match the kind */
    eu->origin->native_id = "L9000000001";
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "record.body: the body does not match kind LOCATION"));
    eu->kind = 0;
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "record.type"));
    ck_assert_uint_eq(out.len, 0);

    pg_buf_free(&out);
    pg_changeset_destroy(&cs);
}
END_TEST

/* ------------------------------------------------------------------ invalid input */

/* A message of each record type from the fixtures. */
enum { LOC, PER, VEH, ITM, TEL, OCC, DEL, WPN, CUS, INT, MRG };

static char *s_base(int which)
{
    static const struct {
        const char *file;
        int line;
    } src[] = {
        [LOC] = {"atx-burglary.ndjson", 0},          [PER] = {"atx-burglary.ndjson", 1},
        [VEH] = {"atx-burglary.ndjson", 3},          [ITM] = {"atx-burglary.ndjson", 4},
        [TEL] = {"atx-burglary.ndjson", 5},          [OCC] = {"atx-burglary.ndjson", 6},
        [DEL] = {"atx-burglary.ndjson", 7},          [WPN] = {"atx-merseyside-import.ndjson", 2},
        [CUS] = {"atx-merseyside-import.ndjson", 3}, [INT] = {"atx-merseyside-import.ndjson", 4},
        [MRG] = {"atx-merseyside-import.ndjson", 1},
    };
    s_lines l;
    s_load(src[which].file, &l);
    char *s = strdup(l.text[src[which].line]);
    s_free_lines(&l);
    return s;
}

/* Set (or with value NULL remove) the member at path "a.b[2].c" of root. */
static void s_set(json_t *root, const char *path, json_t *value)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = root;
    char *save, *seg = strtok_r(buf, ".", &save);
    while (seg) {
        char *next = strtok_r(NULL, ".", &save);
        char *br = strchr(seg, '[');
        long idx = -1;
        if (br) {
            idx = strtol(br + 1, NULL, 10);
            *br = 0;
        }
        json_t *child = json_object_get(cur, seg);
        if (idx >= 0) {
            ck_assert_msg(json_is_array(child), "%s: no array %s", path, seg);
            if (!next) {
                if (!value)
                    json_array_remove(child, (size_t)idx);
                else if ((size_t)idx == json_array_size(child))
                    json_array_append_new(child, value);
                else
                    json_array_set_new(child, (size_t)idx, value);
                return;
            }
            cur = json_array_get(child, (size_t)idx);
        } else if (!next) {
            if (value)
                json_object_set_new(cur, seg, value);
            else
                json_object_del(cur, seg);
            return;
        } else {
            if (!child) {
                child = json_object();
                json_object_set_new(cur, seg, child);
            }
            cur = child;
        }
        ck_assert_msg(cur != NULL, "%s: no member %s", path, seg);
        seg = next;
    }
}

/* The value of a case: JSON text, NULL to remove the member, or "@rep N X" for a JSON
 * string of N copies of the UTF-8 character X. */
static json_t *s_value(const char *text)
{
    if (!text)
        return NULL;
    if (strncmp(text, "@rep ", 5) == 0) {
        char *end;
        long n = strtol(text + 5, &end, 10);
        const char *ch = end + 1;
        size_t cl = strlen(ch);
        char *s = malloc((size_t)n * cl + 1);
        for (long i = 0; i < n; i++)
            memcpy(s + (size_t)i * cl, ch, cl);
        s[(size_t)n * cl] = 0;
        json_t *v = json_string(s);
        free(s);
        return v;
    }
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    ck_assert_msg(v != NULL, "bad case value %s", text);
    return v;
}

static const struct s_case {
    int base;
    const char *path;
    const char *value;
    const char *reason;
} s_cases[] = {
    /* header */
    {PER, "header.schema", "\"atx/3\"", "header.schema: must be 'atx/2'"},
    {PER, "header.schema", NULL, "header.schema: is required"},
    {PER, "header.messageId", "\"0B7C7A52-6A83-4D71-9A55-5A3F7D0C2E01\"",
     "header.messageId: must be a lower-case RFC 4122 UUID"},
    {PER, "header.messageId", "\"0b7c7a52-6a83-4d71-7a55-5a3f7d0c2e01\"",
     "header.messageId: must be a lower-case RFC 4122 UUID"},
    {PER, "header.messageId", "42", "header.messageId: must be a string, not an integer"},
    {PER, "header.sentAt", "\"2026-03-29T06:30:00\"", "header.sentAt: must carry a UTC offset"},
    {PER, "header.system", "\"NICHE\"", "header.system: must be 'ATHENA'"},
    {PER, "header.orgUnit", "\"\"", "header.orgUnit: is required"},
    {PER, "header.orgUnit", "@rep 65 X", "header.orgUnit: must be 1-64 characters, not 65"},
    {PER, "header.orgUnit", "\"ESX//CID\"", "header.orgUnit: has an empty segment"},
    {PER, "header.orgUnit", "\"/ESX\"", "header.orgUnit: has an empty segment"},
    {PER, "header.orgUnit", "\"ESX/ CID\"",
     "header.orgUnit: a segment starts or ends with a space"},
    {PER, "header.orgUnit", "\"ESX/CID \"",
     "header.orgUnit: a segment starts or ends with a space"},
    {PER, "header.orgUnit", "\"ESX/CID\\tNORTH\"", "header.orgUnit: holds a tab or line break"},
    {PER, "header", NULL, "header: is required"},
    {PER, "header", "[]", "header: must be an object, not an array"},
    /* record envelope */
    {PER, "record", NULL, "record: is required"},
    {PER, "record.type", "\"SUSPECT\"",
     "record.type: is not one of PERSON, LOCATION, VEHICLE, ITEM, WEAPON, TELEPHONE, OCCURRENCE, "
     "CUSTODY, INTELLIGENCE"},
    {PER, "record.type", "\"person\"",
     "record.type: is not one of PERSON, LOCATION, VEHICLE, ITEM, WEAPON, TELEPHONE, OCCURRENCE, "
     "CUSTODY, INTELLIGENCE"},
    {PER, "record.id", "\"L0000123456\"",
     "record.id: must be 'P' followed by 10 digits for type PERSON"},
    {PER, "record.id", "\"P000012345\"",
     "record.id: must be 'P' followed by 10 digits for type PERSON"},
    {LOC, "record.id", "\"L00000000450\"",
     "record.id: must be 'L' followed by 10 digits for type LOCATION"},
    {PER, "record.revision", "0", "record.revision: must be 1 or more"},
    {PER, "record.revision", "-3", "record.revision: must be 1 or more"},
    {PER, "record.revision", "7.0",
     "record.revision: must be an integer, not a number written with a decimal point or exponent"},
    {PER, "record.revision", "\"7\"", "record.revision: must be an integer, not a string"},
    {PER, "record.revision", "true", "record.revision: must be an integer, not a boolean"},
    {PER, "record.revision", NULL, "record.revision: is required"},
    {PER, "record.action", "\"MERGE\"", "record.action: is not one of UPSERT, DELETE"},
    {PER, "record.modifiedAt", "\"2026-02-30T07:13:00+01:00\"",
     "record.modifiedAt: date is not a calendar date"},
    {PER, "record.modifiedAt", "\"2026-03-29T25:13:00+01:00\"",
     "record.modifiedAt: time is not a time of day"},
    {PER, "record.modifiedAt", "\"29/03/2026 07:13\"", "record.modifiedAt: must be an RFC 3339"},
    {PER, "record.marking", NULL, "record.marking: is required"},
    {PER, "record.marking.classification", "\"RESTRICTED\"",
     "record.marking.classification: is not one of OFFICIAL, OFFICIAL-SENSITIVE, SECRET, "
     "TOP-SECRET"},
    {PER, "record.marking.classification", NULL, "record.marking.classification: is required"},
    {PER, "record.marking.handling", "\"X\"", "record.marking.handling: is not one of P, C"},
    /* the marking is envelope: exact, not trimmed like a body string */
    {PER, "record.marking.classification", "\" OFFICIAL\\t\"",
     "record.marking.classification: is not one of OFFICIAL, OFFICIAL-SENSITIVE, SECRET, "
     "TOP-SECRET"},
    {PER, "record.marking.handling", "\"P \"", "record.marking.handling: is not one of P, C"},
    {PER, "record.marking.handling", "\"C\"",
     "record.marking.caveat: is required when handling is 'C'"},
    {INT, "record.marking.caveat", "\"  \"",
     "record.marking.caveat: is required when handling is 'C'"},
    {PER, "record.marking.caveat", "@rep 501 é",
     "record.marking.caveat: must be 0-500 characters, not 501"},
    {PER, "record.retention", NULL, "record.retention: is required"},
    {PER, "record.retention.mopiGroup", "5", "record.retention.mopiGroup: must be 1-4"},
    {PER, "record.retention.mopiGroup", "\"2\"",
     "record.retention.mopiGroup: must be an integer, not a string"},
    {PER, "record.retention.reviewDate", "\"2036-03\"",
     "record.retention.reviewDate: must be YYYY-MM-DD"},
    {PER, "record.retention.reviewDate", "\"2036-02-30\"",
     "record.retention.reviewDate: is not a calendar date"},
    {PER, "record.retention.reviewDate", NULL, "record.retention.reviewDate: is required"},
    {PER, "record.retention.reviewDate", "\"2036-03-29 \"",
     "record.retention.reviewDate: must be YYYY-MM-DD"},
    {PER, "record.modifiedAt", "\" 2026-03-29T07:13:00.000+01:00\"",
     "record.modifiedAt: must be an RFC 3339"},
    {PER, "record.body", NULL, "record.body: is required"},
    {PER, "record.body", "\"x\"", "record.body: must be an object, not a string"},
    {PER, "record.mergedFrom", "[\"L0000000001\"]",
     "record.mergedFrom[0]: must be 'P' followed by 10 digits for type PERSON"},
    {PER, "record.mergedFrom", "[\"P0000123456\"]", "record.mergedFrom[0]: is the record's own id"},
    {PER, "record.mergedFrom", "[\"P0000000001\", \"P0000000002\", \"P0000000001\"]",
     "record.mergedFrom[2]: P0000000001 is named twice"},
    {PER, "record.mergedFrom", "[7]", "record.mergedFrom[0]: must be a string, not an integer"},
    {PER, "record.mergedFrom", "\"P0000000001\"",
     "record.mergedFrom: must be an array, not a string"},
    {DEL, "record.mergedFrom", "[\"T0000000041\"]",
     "record.mergedFrom: is allowed only with action UPSERT"},
    {DEL, "record.marking", NULL, "record.marking: is required"},
    {DEL, "record.modifiedAt", NULL, "record.modifiedAt: is required"},
    {DEL, "record.revision", "1.5", "record.revision: must be an integer"},
    {DEL, "record.retention", "{\"mopiGroup\": 0, \"reviewDate\": \"2030-01-01\"}",
     "record.retention.mopiGroup: must be 1-4"},
    /* PERSON */
    {PER, "record.body.surname", NULL, "record.body.surname: is required"},
    {PER, "record.body.surname", "\"   \"", "record.body.surname: is required"},
    {PER, "record.body.surname", "@rep 61 é",
     "record.body.surname: must be 1-60 characters, not 61"},
    {PER, "record.body.forenames", "[\"A\",\"B\",\"C\",\"D\",\"E\",\"F\"]",
     "record.body.forenames: at most 5 names, not 6"},
    {PER, "record.body.forenames[0]", "3",
     "record.body.forenames[0]: must be a string, not an integer"},
    {PER, "record.body.forenames", "\"Seán\"", "record.body.forenames: must be an array"},
    {PER, "record.body.dateOfBirth", "\"1985-13\"",
     "record.body.dateOfBirth: is not a calendar date"},
    {PER, "record.body.dateOfBirth", "\"1985-02-29\"",
     "record.body.dateOfBirth: is not a calendar date"},
    {PER, "record.body.dateOfBirth", "\"14/07/1985\"",
     "record.body.dateOfBirth: must be YYYY-MM-DD, YYYY-MM or YYYY"},
    {PER, "record.body.dateOfBirth", "\"0000\"", "record.body.dateOfBirth: is not a calendar date"},
    {PER, "record.body.sex", "\"M\"",
     "record.body.sex: is not one of MALE, FEMALE, UNKNOWN, NOT_SPECIFIED"},
    {PER, "record.body.ethnicity.selfDefined", "\"W4\"",
     "record.body.ethnicity.selfDefined: is not one of W1, W2, W3, W9, M1, M2, M3, M9, A1, A2, A3, "
     "A4, A9, B1, B2, B9, O1, O2, O9, NS"},
    {PER, "record.body.ethnicity.officerDefined", "\"IC7\"",
     "record.body.ethnicity.officerDefined: is not one of IC1, IC2, IC3, IC4, IC5, IC6, IC9"},
    {PER, "record.body.ethnicity", "\"W1\"", "record.body.ethnicity: must be an object"},
    {PER, "record.body.nationality", "\"UK\"",
     "record.body.nationality: is not an ISO 3166-1 alpha-3 country code"},
    {PER, "record.body.nationality", "\"irl\"",
     "record.body.nationality: is not an ISO 3166-1 alpha-3 country code"},
    {PER, "record.body.identifiers.pncId", "\"1985/0123456K\"",
     "record.body.identifiers.pncId: check letter does not match the number"},
    {PER, "record.body.identifiers.pncId", "\"85/123456J\"",
     "record.body.identifiers.pncId: must be a PNC ID in long form YYYY/NNNNNNNC"},
    {PER, "record.body.identifiers.croNumber", "\"123456/99M\"",
     "record.body.identifiers.croNumber: check letter does not match the number"},
    {PER, "record.body.identifiers.croNumber", "\"12345/99L\"",
     "record.body.identifiers.croNumber: must be a CRO number NNNNNN/YYC"},
    {PER, "record.body.aliases", "\"Bryan\"",
     "record.body.aliases: must be an array, not a string"},
    {PER, "record.body.aliases[0]", "\"Bryan\"",
     "record.body.aliases[0]: must be an object, not a string"},
    {PER, "record.body.aliases[0].surname", NULL, "record.body.aliases[0].surname: is required"},
    {PER, "record.body.aliases[0].dateOfBirth", "\"1985-00\"",
     "record.body.aliases[0].dateOfBirth: is not a calendar date"},
    {PER, "record.body.aliases[0].forenames", "[\"A\",\"B\",\"C\",\"D\",\"E\",\"F\"]",
     "record.body.aliases[0].forenames: at most 5 names, not 6"},
    {PER, "record.body.warningMarkers[0]", "\"XX\"",
     "record.body.warningMarkers[0]: is not one of AG, AT, CO, DR, ES, EX, FI, IM, IF, MH, SH, SU, "
     "VI, WE"},
    {PER, "record.body.warningMarkers[1]", "1",
     "record.body.warningMarkers[1]: must be a string, not an integer"},
    /* body strings are trimmed, dates and array elements too; empty means absent */
    {PER, "record.body.warningMarkers", "[\" VI\"]", NULL},
    {PER, "record.body.warningMarkers", "[\"\"]", NULL},
    {PER, "record.body.warningMarkers", "[\" \", \"XX\"]",
     "record.body.warningMarkers[1]: is not one of AG,"},
    {PER, "record.body.dateOfBirth", "\"1985-07-14 \"", NULL},
    {PER, "record.body.dateOfBirth", "\" \"", NULL},
    {PER, "record.body.aliases[0].dateOfBirth", "\"\\t1985-07\"", NULL},
    {OCC, "record.body.occurredFrom", "\" 2026-03-29T00:00:00Z \"", NULL},
    {CUS, "record.body.arrestedAt", "\"2026-10-25T00:20:00+01:00\\n\"", NULL},
    /* links */
    {PER, "links", "\"none\"", "links: must be an array, not a string"},
    {PER, "links[0]", "\"T0000000042\"", "links[0]: must be an object, not a string"},
    {PER, "links[0].target", NULL, "links[0].target: is required"},
    {PER, "links[0].target.type", "\"PHONE\"",
     "links[0].target.type: is not one of PERSON, LOCATION, VEHICLE, ITEM, WEAPON, TELEPHONE, "
     "OCCURRENCE, CUSTODY, INTELLIGENCE"},
    {PER, "links[0].target.id", "\"V0000000042\"",
     "links[0].target.id: must be 'T' followed by 10 digits for type TELEPHONE"},
    {PER, "links[0].target.id", NULL, "links[0].target.id: is required"},
    {PER, "links[0].role", "\"FRIEND\"",
     "links[0].role: is not one of HOME_ADDRESS, OTHER_ADDRESS, SUSPECT, VICTIM, WITNESS, "
     "OFFENDER, REPORTER, OCCURRED_AT, STOLEN, USED, VEHICLE_INVOLVED, KEEPER, OWNER, USES, "
     "DETAINED, SUBJECT, ASSOCIATE"},
    {PER, "links[0].role", NULL, "links[0].role: is required"},
    {PER, "links[0].role", "\"HOME_ADDRESS\"",
     "links[0].role: HOME_ADDRESS does not link PERSON to TELEPHONE (ROLE table: PERSON -> "
     "LOCATION)"},
    {PER, "links[1].role", "\"OWNER\"", NULL}, /* OWNER may point at a VEHICLE: valid */
    {OCC, "links[2].role", "\"SUSPECT\"",
     "links[2].role: SUSPECT does not link OCCURRENCE to LOCATION (ROLE table: OCCURRENCE -> "
     "PERSON)"},
    {CUS, "links[0].role", "\"SUSPECT\"", "links[0].role: SUSPECT does not link CUSTODY to PERSON"},
    {PER, "links[0].validFrom", "\"2025-11\"", "links[0].validFrom: must be YYYY-MM-DD"},
    {PER, "links[0].validFrom", "\"2025-11-31\"", "links[0].validFrom: is not a calendar date"},
    {PER, "links[0].validTo", "\"2025-10-31\"", "links[0].validTo: is before validFrom"},
    /* "YYYY-MM-DD or null": an empty string is neither (only a body string's empty is
     * absent) */
    {PER, "links[0].validFrom", "\"\"",
     "links[0].validFrom: must not be an empty string (null means none)"},
    {PER, "links[0].validTo", "\"\"",
     "links[0].validTo: must not be an empty string (null means none)"},
    {PER, "record.retention.reviewDate", "\"\"", "record.retention.reviewDate: is required"},
    {PER, "links[0].validTo", "20251201", "links[0].validTo: must be a string, not an integer"},
    {PER, "links[2]",
     "{\"target\": {\"type\": \"TELEPHONE\", \"id\": \"T0000000042\"}, \"role\": \"USES\"}",
     "links[2]: repeats links[0] (same role and target)"},
    /* LOCATION */
    {LOC, "record.body.postcode", "\"CO3 3E\"", "record.body.postcode: must be a UK postcode"},
    {LOC, "record.body.uprn", "\"0123\"",
     "record.body.uprn: must be 1-12 digits without leading zeros"},
    {LOC, "record.body.uprn", "\"1234567890123\"",
     "record.body.uprn: must be 1-12 digits without leading zeros"},
    {LOC, "record.body.uprn", "100091234567", "record.body.uprn: must be a string, not an integer"},
    {LOC, "record.body.geo.lat", "91", "record.body.geo.lat: must be -90 to 90 degrees"},
    {LOC, "record.body.geo.lon", "-180.5", "record.body.geo.lon: must be -180 to 180 degrees"},
    {LOC, "record.body.geo.lat", "\"51.8\"", "record.body.geo.lat: must be a number, not a string"},
    {LOC, "record.body.geo.lon", NULL, "record.body.geo.lon: is required"},
    /* VEHICLE */
    {VEH, "record.body.vrm", "\"AB12-CDE\"",
     "record.body.vrm: registration mark may hold only letters A-Z and digits"},
    {VEH, "record.body.colour", "\"PURPLE\"",
     "record.body.colour: is not one of BLACK, BLUE, BROWN, GREEN, GREY, RED, SILVER, WHITE, "
     "YELLOW, OTHER"},
    {VEH, "record.body.vin", "\"WF0AXXGCDA1234\"",
     "record.body.vin: must be 17 characters A-Z 0-9"},
    {VEH, "record.body.year", "\"2012\"", "record.body.year: must be an integer, not a string"},
    {VEH, "record.body.year", "0", "record.body.year: must be 1-9999"},
    /* ITEM */
    {ITM, "record.body.description", NULL, "record.body.description: is required"},
    {ITM, "record.body.category", "\"LAPTOP\"",
     "record.body.category: is not one of CASH, JEWELLERY, ELECTRONICS, BICYCLE, DOCUMENT, DRUGS, "
     "TOOLS, OTHER"},
    {ITM, "record.body.value.amount", "\"1250.005\"",
     "record.body.value.amount: amount must have 1 or 2 decimal places"},
    {ITM, "record.body.value.amount", "\"-5.00\"",
     "record.body.value.amount: amount must be a non-negative decimal"},
    {ITM, "record.body.value.amount", "1250",
     "record.body.value.amount: must be a string, not an integer"},
    {ITM, "record.body.value.currency", "\"£\"",
     "record.body.value.currency: must be an ISO 4217 code of 3 capital letters"},
    {ITM, "record.body.value.currency", NULL, "record.body.value.currency: is required"},
    /* WEAPON */
    {WPN, "record.body.category", "\"GUN\"",
     "record.body.category: is not one of FIREARM, KNIFE, BLUNT, OTHER"},
    /* TELEPHONE */
    {TEL, "record.body.number", "\"7700 900123\"",
     "record.body.number: must be a UK national number (0...) or international (+... or 00...)"},
    {TEL, "record.body.number", "\"call 999\"",
     "record.body.number: not a telephone number (only digits, spaces, '-', '.', brackets and a "
     "leading '+')"},
    {TEL, "record.body.kind", "\"CELL\"",
     "record.body.kind: is not one of MOBILE, LANDLINE, UNKNOWN"},
    {TEL, "record.body.imei", "\"35209900176148\"", "record.body.imei: must be 15 digits"},
    {TEL, "record.body.imei", "\"35209900176148X\"", "record.body.imei: must be 15 digits"},
    /* OCCURRENCE */
    {OCC, "record.body.reference", NULL, "record.body.reference: is required"},
    {OCC, "record.body.offences", "[]", "record.body.offences: a CRIME needs at least one offence"},
    {OCC, "record.body.offences", NULL, "record.body.offences: a CRIME needs at least one offence"},
    {OCC, "record.body.offences[0].hoClass", "1000",
     "record.body.offences[0].hoClass: must be 1-999"},
    {OCC, "record.body.offences[0].hoClass", "0", "record.body.offences[0].hoClass: must be 1-999"},
    {OCC, "record.body.offences[0].hoSubclass", "100",
     "record.body.offences[0].hoSubclass: must be 0-99"},
    {OCC, "record.body.offences[0].hoClass", NULL, "record.body.offences[0].hoClass: is required"},
    {OCC, "record.body.offences[0]", "\"28/1\"",
     "record.body.offences[0]: must be an object, not a string"},
    {OCC, "record.body.kind", "\"ASB\"", "record.body.kind: is not one of CRIME, INCIDENT"},
    {OCC, "record.body.status", "\"DONE\"",
     "record.body.status: is not one of OPEN, UNDER_INVESTIGATION, CLOSED, FILED"},
    {OCC, "record.body.occurredTo", "\"2026-03-28T23:00:00+00:00\"",
     "record.body.occurredTo: is before occurredFrom"},
    {OCC, "record.body.occurredFrom", NULL, "record.body.occurredTo: given without occurredFrom"},
    {OCC, "record.body.reportedAt", "\"2026-03-29\"",
     "record.body.reportedAt: must be an RFC 3339"},
    {OCC, "record.body.summary", "@rep 4001 x",
     "record.body.summary: must be 0-4000 characters, not 4001"},
    /* CUSTODY */
    {CUS, "record.body.reference", NULL, "record.body.reference: is required"},
    {CUS, "record.body.outcome", "\"CHG\"",
     "record.body.outcome: is not one of CHARGED, CAUTIONED, RELEASED_UNDER_INVESTIGATION, BAILED, "
     "NO_FURTHER_ACTION"},
    {CUS, "record.body.arrestedAt", "\"2026-10-25T00:20:00\"",
     "record.body.arrestedAt: must carry a UTC offset"},
    {CUS, "record.body.releasedAt", "\"2026-10-25T00:20:00.+01:00\"",
     "record.body.releasedAt: fraction of a second must have at least 1 digit"},
    /* RFC 3339 puts no limit on the fraction's digits */
    {CUS, "record.body.releasedAt", "\"2026-10-25T01:40:00.12345678901234+01:00\"", NULL},
    /* INTELLIGENCE */
    {INT, "record.body.reference", NULL, "record.body.reference: is required"},
    {INT, "record.body.grading.source", "4", "record.body.grading.source: must be 1-3"},
    {INT, "record.body.grading.intelligence", "\"F\"",
     "record.body.grading.intelligence: is not one of A, B, C, D, E"},
    {INT, "record.body.grading.handling", NULL, "record.body.grading.handling: is required"},
    {INT, "record.body.text", "@rep 4001 ł",
     "record.body.text: must be 0-4000 characters, not 4001"},
    {INT, "links[0].role", "\"VICTIM\"",
     "links[0].role: VICTIM does not link INTELLIGENCE to PERSON"},
    /* merged record */
    {MRG, "record.mergedFrom[1]", "\"W9000000002\"",
     "record.mergedFrom[1]: must be 'P' followed by 10 digits for type PERSON"},
};

START_TEST(test_invalid_case)
{
    const struct s_case *c = &s_cases[_i];
    char *base = s_base(c->base);
    json_error_t jerr;
    json_t *root = json_loads(base, 0, &jerr);
    ck_assert_ptr_nonnull(root);
    s_set(root, c->path, s_value(c->value));
    char *msg = json_dumps(root, JSON_COMPACT);
    pg_changeset *cs = pg_changeset_new();
    int rc = s_decode(cs, msg);
    if (!c->reason) {
        ck_assert_msg(rc == 0, "case %d (%s): %s", _i, c->path, e);
    } else {
        ck_assert_msg(rc == PG_EINVALID, "case %d (%s): rc %d", _i, c->path, rc);
        ck_assert_msg(strstr(e, c->reason) != NULL, "case %d: reason '%s' lacks '%s'", _i, e,
                      c->reason);
        ck_assert_uint_eq(cs->count, 0);
    }
    pg_changeset_destroy(&cs);
    free(msg);
    json_decref(root);
    free(base);
}
END_TEST

START_TEST(test_invalid_framing)
{
    pg_changeset *cs = pg_changeset_new();
    pg_adapter_ctx ctx = {0};
    ck_assert_int_eq(s_decode(cs, "{\"header\": {\"schema\": \"atx/2\",\n \"messageId\": }"),
                     PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "message: invalid JSON at line 2 column"));
    ck_assert_int_eq(s_decode(cs, ""), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "message: invalid JSON"));
    ck_assert_int_eq(s_decode(cs, "[1, 2]"), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "message: must be a JSON object, not an array"));
    ck_assert_int_eq(s_decode(cs, "{} {}"), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "invalid JSON"));

    char *base = s_base(PER);
    /* a byte-order mark */
    size_t n = strlen(base);
    char *bom = malloc(n + 4);
    memcpy(bom, "\xEF\xBB\xBF", 3);
    memcpy(bom + 3, base, n + 1);
    ck_assert_int_eq(s_decode(cs, bom), PG_EINVALID);
    ck_assert_str_eq(e, "message: must not start with a byte-order mark");
    free(bom);
    /* a repeated member */
    char *dup = malloc(n + 32);
    snprintf(dup, n + 32, "{\"links\": [], %s", base + 1);
    ck_assert_int_eq(s_decode(cs, dup), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "duplicate"));
    free(dup);
    /* more than 1 MiB, even with padding that would be valid JSON */
    size_t big = 1048577;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    memcpy(huge, base, n);
    huge[big] = 0;
    ck_assert_int_eq(A->decode(&ctx, (uint8_t *)huge, big, cs, e, sizeof e), PG_ETOOBIG);
    ck_assert_ptr_nonnull(strstr(e, "1048577 bytes"));
    /* exactly 1 MiB is fine */
    ck_assert_int_eq(A->decode(&ctx, (uint8_t *)huge, big - 1, cs, e, sizeof e), 0);
    free(huge);
    /* an invalid UTF-8 byte */
    char *bad = strdup(base);
    char *o = strstr(bad, "O'Brien");
    o[0] = (char)0xff;
    ck_assert_int_eq(s_decode(cs, bad), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "invalid JSON"));
    free(bad);
    free(base);
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_force_and_forward_compat)
{
    char *base = s_base(PER);
    pg_changeset *cs = pg_changeset_new();
    pg_adapter_ctx mer = {.force = "MER"}, esx = {.force = "ESX"};
    size_t n = strlen(base);
    ck_assert_int_eq(A->decode(&mer, (uint8_t *)base, n, cs, e, sizeof e), PG_EINVALID);
    ck_assert_str_eq(e, "header.orgUnit: names another force than this gateway's, MER");
    ck_assert_int_eq(A->decode(&esx, (uint8_t *)base, n, cs, e, sizeof e), 0);

    /* unknown members anywhere are ignored */
    json_error_t jerr;
    json_t *root = json_loads(base, 0, &jerr);
    s_set(root, "header.priority", json_integer(1));
    s_set(root, "record.shoeSize", json_integer(9));
    s_set(root, "record.body.eyeColour", json_string("green"));
    s_set(root, "links[0].confidence", json_real(0.5));
    s_set(root, "trailer", json_object());
    char *msg = json_dumps(root, 0);
    pg_changeset_reset(cs);
    ck_assert_msg(s_decode(cs, msg) == 0, "%s", e);
    ck_assert_uint_eq(cs->count, 3);
    free(msg);

    /* trimmed strings, empty means absent, accents and case kept */
    s_set(root, "record.body.surname", json_string("  de la Cruz\t"));
    s_set(root, "record.body.title", json_string("   "));
    s_set(root, "record.body.forenames", json_pack("[sss]", " Zoë ", "", "ŁUKASZ"));
    s_set(root, "record.body.occupation", json_null());
    s_set(root, "record.marking.caveat", json_string("  Only for CID  "));
    s_set(root, "record.body.dateOfBirth", json_string("1985"));
    s_set(root, "record.mergedFrom", json_pack("[ss]", "P0000000001", "P0000000002"));
    s_set(root, "links", json_array());
    msg = json_dumps(root, 0);
    pg_changeset_reset(cs);
    ck_assert_msg(s_decode(cs, msg) == 0, "%s", e);
    ck_assert_uint_eq(cs->count, 1);
    const pg_entity_update *eu = cs->changes[0].entity;
    ck_assert_str_eq(eu->person->name->surname, "de la Cruz");
    ck_assert_str_eq(eu->person->title, "");
    ck_assert_uint_eq(eu->person->name->n_forenames, 2);
    ck_assert_str_eq(eu->person->name->forenames[0], "Zoë");
    ck_assert_str_eq(eu->person->name->forenames[1], "ŁUKASZ");
    ck_assert_str_eq(eu->marking->caveat, "Only for CID");
    s_date_is(eu->person->date_of_birth, 1985, 0, 0);
    ck_assert_uint_eq(eu->n_merged_from, 2);
    ck_assert_str_eq(eu->merged_from[1]->native_id, "P0000000002");
    free(msg);
    json_decref(root);

    /* a DELETE needs only the envelope; body and links are ignored */
    const char *del =
        "{\"header\":{\"schema\":\"atx/2\",\"messageId\":"
        "\"0b7c7a52-6a83-4d71-9a55-5a3f7d0c2e99\",\"sentAt\":\"2026-01-01T00:00:00Z\","
        "\"system\":\"ATHENA\",\"orgUnit\":\"ESX\"},\"record\":{\"type\":\"PERSON\","
        "\"id\":\"P0000000001\",\"revision\":3,\"action\":\"DELETE\",\"modifiedAt\":"
        "\"2026-01-01T00:00:00Z\",\"marking\":{\"classification\":\"OFFICIAL\","
        "\"handling\":\"P\"},\"body\":{\"surname\":42}},\"links\":[1]}";
    pg_changeset_reset(cs);
    ck_assert_msg(s_decode(cs, del) == 0, "%s", e);
    ck_assert_uint_eq(cs->count, 1);
    ck_assert_int_eq(cs->changes[0].entity->operation, OP(DELETE));
    ck_assert_str_eq(cs->changes[0].entity->origin->org_unit, "ESX");
    pg_changeset_destroy(&cs);
    free(base);
}
END_TEST

START_TEST(test_all_or_nothing)
{
    /* a failure after the entity and a link were added leaves the changeset as it was */
    char *ok = s_base(LOC), *base = s_base(OCC);
    pg_changeset *cs = pg_changeset_new();
    ck_assert_int_eq(s_decode(cs, ok), 0);
    ck_assert_uint_eq(cs->count, 1);
    const char *mid = cs->message_id;
    json_error_t jerr;
    json_t *root = json_loads(base, 0, &jerr);
    s_set(root, "links[4].role", json_string("KEEPER"));
    char *msg = json_dumps(root, 0);
    ck_assert_int_eq(s_decode(cs, msg), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "links[4].role: KEEPER does not link OCCURRENCE to VEHICLE"));
    ck_assert_uint_eq(cs->count, 1);
    ck_assert_ptr_eq(cs->message_id, mid);
    free(msg);
    json_decref(root);
    pg_changeset_destroy(&cs);
    free(ok);
    free(base);
}
END_TEST

START_TEST(test_encode_refuses_backward_range)
{
    /* The decoder refuses occurredTo before occurredFrom; the encoder must never write
     * such a message either. */
    s_lines l;
    s_load("atx-burglary.ndjson", &l);
    pg_changeset *cs = pg_changeset_new();
    ck_assert_int_eq(s_decode(cs, l.text[6]), 0); /* the OCCURRENCE */
    Polegate__Pole__V1__Occurrence *o = cs->changes[0].entity->occurrence;
    ck_assert_ptr_nonnull(o);
    ck_assert_ptr_nonnull(o->occurred_to);
    pg_buf out = PG_BUF_INIT;
    pg_adapter_ctx rt = {.now_ms = s_now_ms};
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), 0);
    pg_buf_reset(&out);
    o->occurred_to->seconds = o->occurred_from->seconds - 1;
    ck_assert_int_eq(A->encode(&rt, cs, &out, e, sizeof e), PG_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(e, "record.body.occurredTo: is before occurredFrom"));
    ck_assert_uint_eq(out.len, 0);
    pg_buf_free(&out);
    pg_changeset_destroy(&cs);
    s_free_lines(&l);
}
END_TEST

/* ------------------------------------------------------------------ white space and time */

/* Base message `which` with the members of edits ({path, value}... NULL) set as in
 * s_cases, decoded; the caller destroys the changeset. */
static pg_changeset *s_decoded(int which, const char *const *edits)
{
    char *base = s_base(which);
    json_error_t jerr;
    json_t *root = json_loads(base, 0, &jerr);
    ck_assert_ptr_nonnull(root);
    for (size_t i = 0; edits && edits[i]; i += 2)
        s_set(root, edits[i], s_value(edits[i + 1]));
    char *msg = json_dumps(root, JSON_COMPACT);
    pg_changeset *cs = pg_changeset_new();
    ck_assert_msg(s_decode(cs, msg) == 0, "%s", e);
    free(msg);
    json_decref(root);
    free(base);
    return cs;
}

/* A unit's name may hold spaces: the spec says "/-separated, 1-64 chars" (found by
 * attack: refused as "holds white space"). */
START_TEST(test_org_unit_with_spaces)
{
    const char *edits[] = {"header.orgUnit", "\"ESX/CID/North Colchester\"", NULL};
    pg_changeset *cs = s_decoded(PER, edits);
    ck_assert_str_eq(cs->changes[0].entity->origin->org_unit, "ESX/CID/North Colchester");
    ck_assert_str_eq(cs->changes[0].entity->origin->force, "ESX");
    pg_changeset_destroy(&cs);
}
END_TEST

/* Base `which` decoded with padded and with clean values gives the same entity. */
static void s_same_entity(int which, const char *const *padded, const char *const *clean)
{
    pg_changeset *a = s_decoded(which, padded), *b = s_decoded(which, clean);
    ck_assert_uint_eq(a->count, b->count);
    s_pack_eq(&a->changes[0].entity->base, &b->changes[0].entity->base);
    pg_changeset_destroy(&a);
    pg_changeset_destroy(&b);
}

START_TEST(test_decode_trims_body)
{
    /* athena-atx2.md, Bodies: every body string is trimmed, dates, timestamps and the
     * elements of arrays too; an element empty after trimming is absent */
    s_same_entity(PER,
                  (const char *const[]){"record.body.warningMarkers", "[\" VI\", \"\", \"\\tWE \"]",
                                        "record.body.dateOfBirth", "\" 1985-07-14\\n\"",
                                        "record.body.aliases[0].dateOfBirth", "\"1985-07 \"", NULL},
                  (const char *const[]){"record.body.warningMarkers", "[\"VI\", \"WE\"]", NULL});
    s_same_entity(PER, (const char *const[]){"record.body.dateOfBirth", "\"  \"", NULL},
                  (const char *const[]){"record.body.dateOfBirth", NULL, NULL});
    s_same_entity(OCC,
                  (const char *const[]){"record.body.occurredFrom",
                                        "\" 2026-03-28T23:30:00+00:00 \"", "record.body.reportedAt",
                                        "\"2026-03-29T07:10:00+01:00\\r\\n\"", NULL},
                  NULL);
    s_same_entity(CUS,
                  (const char *const[]){"record.body.arrestedAt",
                                        "\"\\t2026-10-25T00:20:00+01:00\"",
                                        "record.body.releasedAt", "\" \"", NULL},
                  NULL);
    s_same_entity(
        INT,
        (const char *const[]){"record.body.reportedAt", "\" 2026-10-24T23:00:00+01:00 \"", NULL},
        (const char *const[]){"record.body.reportedAt", "\"2026-10-24T23:00:00+01:00\"", NULL});
}
END_TEST

START_TEST(test_decode_long_fraction)
{
    /* RFC 3339 allows any number of fraction digits: kept to the nanosecond, the rest
     * truncated */
    s_same_entity(CUS,
                  (const char *const[]){
                      "record.modifiedAt", "\"2026-10-25T01:35:00.123456789987654321+01:00\"",
                      "record.body.releasedAt", "\"2026-10-25T01:40:00.0000000019+01:00\"", NULL},
                  (const char *const[]){
                      "record.modifiedAt", "\"2026-10-25T01:35:00.123456789+01:00\"",
                      "record.body.releasedAt", "\"2026-10-25T01:40:00.000000001+01:00\"", NULL});
    pg_instant t;
    ck_assert_int_eq(pg_rfc3339_parse("1970-01-01T00:00:00.9999999999Z", &t, e, sizeof e), 0);
    ck_assert_int_eq(t.seconds, 0);
    ck_assert_int_eq(t.nanos, 999999999);
}
END_TEST

/* Encode cs (round trip: native ids), expecting rc: the message written, or the reason. */
static const char *s_encoded(const pg_changeset *cs, int rc, pg_buf *out)
{
    pg_adapter_ctx rt = {.now_ms = s_now_ms};
    pg_buf_reset(out);
    e[0] = 0;
    ck_assert_msg(A->encode(&rt, cs, out, e, sizeof e) == rc, "encode: %s", e);
    if (rc) {
        ck_assert_uint_eq(out->len, 0);
        return e;
    }
    /* what the encoder writes, the decoder takes */
    pg_changeset *back = pg_changeset_new();
    ck_assert_msg(s_decode(back, (const char *)out->data) == 0, "%s", e);
    pg_changeset_destroy(&back);
    return (const char *)out->data;
}

START_TEST(test_encode_blank_is_absent)
{
    /* ATX trims body strings (and the caveat) on import and reads "" as absent: a
     * value that is only white space is no value, so a required one is refused and an
     * optional one left out; a value with white space around it is written trimmed. */
    pg_buf out = PG_BUF_INIT;
    pg_changeset *cs = s_decoded(PER, NULL);
    pg_entity_update *eu = cs->changes[0].entity;
    Polegate__Pole__V1__Person *p = eu->person;
    eu->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    eu->marking->caveat = "   ";
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out),
                     "record.marking.caveat: is required when handling is 'C'");
    eu->marking->caveat = " Only with the SIO's consent\t";
    ck_assert_ptr_nonnull(
        strstr(s_encoded(cs, 0, &out), "\"caveat\":\"Only with the SIO's consent\"}"));
    eu->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_P;
    eu->marking->caveat = "\n";
    ck_assert_ptr_nonnull(strstr(s_encoded(cs, 0, &out), "\"caveat\":null}"));

    p->name->surname = "   ";
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out),
                     "record.body: surname must be 1-60 characters");
    p->name->surname = " O'Brien ";
    p->title = " ";
    p->place_of_birth = "\tCork";
    p->pnc_id = "  ";
    p->cro_number = " 123456/99L ";
    p->aliases[0]->name->surname = "\r\n";
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out),
                     "record.body.aliases[0]: surname must be 1-60 characters");
    p->aliases[0]->name->surname = "Bryan";
    static char *forenames[] = {" ", "Seán ", "", "A", "B", "C", "D"};
    p->name->forenames = forenames;
    p->name->n_forenames = 7;
    const char *o = s_encoded(cs, 0, &out);
    ck_assert_ptr_nonnull(strstr(
        o, "\"body\":{\"surname\":\"O'Brien\",\"forenames\":[\"Seán\",\"A\",\"B\",\"C\",\"D\"],"
           "\"dateOfBirth\":\"1985-07-14\",\"placeOfBirth\":\"Cork\","));
    ck_assert_ptr_null(strstr(o, "title"));
    ck_assert_ptr_nonnull(strstr(o, "\"identifiers\":{\"croNumber\":\"123456/99L\"}"));
    pg_changeset_destroy(&cs);

    cs = s_decoded(OCC, NULL);
    Polegate__Pole__V1__Occurrence *oc = cs->changes[0].entity->occurrence;
    oc->reference = "  ";
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out),
                     "record.body.reference: is required for an OCCURRENCE");
    oc->reference = "42/12345/26";
    oc->summary = " \t ";
    oc->offences[0]->description = " ";
    const char *msg = s_encoded(cs, 0, &out);
    ck_assert_ptr_null(strstr(msg, "summary"));
    ck_assert_ptr_nonnull(strstr(msg, "{\"hoClass\":28,\"hoSubclass\":1}"));
    pg_changeset_destroy(&cs);

    cs = s_decoded(ITM, NULL);
    Polegate__Pole__V1__Item *it = cs->changes[0].entity->item;
    it->description = "\t \n";
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out),
                     "record.body.description: is required for an ITEM");
    it->description = "Laptop";
    it->serial_number = "  ";
    ck_assert_ptr_null(strstr(s_encoded(cs, 0, &out), "serialNumber"));
    pg_changeset_destroy(&cs);

    cs = s_decoded(LOC, NULL);
    Polegate__Pole__V1__Location *l = cs->changes[0].entity->location;
    l->postcode = "  ";
    l->uprn = " ";
    l->street = " ";
    msg = s_encoded(cs, 0, &out);
    ck_assert_ptr_null(strstr(msg, "postcode"));
    ck_assert_ptr_null(strstr(msg, "uprn"));
    ck_assert_ptr_null(strstr(msg, "street"));
    pg_changeset_destroy(&cs);
    pg_buf_free(&out);
}
END_TEST

START_TEST(test_encode_year_bounds)
{
    /* ATX writes a time as RFC 3339 (4-digit years, 0001-9999 here) in London time:
     * an instant outside those years cannot be written and is refused, naming it. */
    pg_buf out = PG_BUF_INIT;
    pg_changeset *cs = s_decoded(OCC, NULL);
    pg_entity_update *eu = cs->changes[0].entity;
    pg_timestamp *m = eu->modified_at;
    m->nanos = 0;
    m->seconds = s_seconds("9999-12-31T23:59:59-01:00"); /* 10000-01-01T00:59:59Z */
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out),
                     "record.modifiedAt: the year is outside 0001-9999, which ATX cannot write");
    m->seconds = s_seconds("0001-01-01T00:00:00+01:00"); /* 0000-12-31T23:00:00Z */
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out),
                     "record.modifiedAt: the year is outside 0001-9999, which ATX cannot write");
    m->seconds = s_seconds("9999-12-31T23:59:59Z");
    m->nanos = 999999999;
    ck_assert_ptr_nonnull(
        strstr(s_encoded(cs, 0, &out), "\"modifiedAt\":\"9999-12-31T23:59:59.999+00:00\""));
    m->seconds = s_seconds("0001-01-01T00:00:00Z");
    m->nanos = 0;
    ck_assert_ptr_nonnull(
        strstr(s_encoded(cs, 0, &out), "\"modifiedAt\":\"0001-01-01T00:00:00.000+00:00\""));
    eu->occurrence->reported_at->seconds = s_seconds("9999-12-31T23:30:00-00:30");
    ck_assert_str_eq(
        s_encoded(cs, PG_EUNSUPPORTED, &out),
        "record.body.reportedAt: the year is outside 0001-9999, which ATX cannot write");
    pg_changeset_destroy(&cs);
    pg_buf_free(&out);
}
END_TEST

/* A revision is a JSON integer that the RMS reads as 1 to 2^63-1 (the canonical
 * version's range): a version above it is refused, not written wrapped to a negative. */
START_TEST(test_encode_revision_bounds)
{
    pg_buf out = PG_BUF_INIT;
    pg_changeset *cs = s_decoded(OCC, NULL);
    pg_entity_update *eu = cs->changes[0].entity;
    eu->version = (uint64_t)INT64_MAX;
    ck_assert_ptr_nonnull(strstr(s_encoded(cs, 0, &out), "\"revision\":9223372036854775807,"));
    eu->version = (uint64_t)INT64_MAX + 1;
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out),
                     "record.revision: must be 1 to 9223372036854775807 (2^63-1), not "
                     "9223372036854775808");
    eu->version = 0;
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out),
                     "record.revision: must be 1 to 9223372036854775807 (2^63-1), not 0");
    pg_changeset_destroy(&cs);
    pg_buf_free(&out);
}
END_TEST

/* What the decoder refuses in mergedFrom the encoder does not write: the record's own
 * id, or an id named twice (a partner's canonical merge, say). */
START_TEST(test_encode_merged_from_refusals)
{
    pg_buf out = PG_BUF_INIT;
    pg_changeset *cs = s_decoded(MRG, NULL);
    pg_entity_update *eu = cs->changes[0].entity;
    ck_assert_uint_eq(eu->n_merged_from, 1);
    pg_entity_ref **had = eu->merged_from, again = *had[0], own = *had[0];
    own.native_id = eu->origin->native_id;
    own.id = NULL;
    again.id = NULL;
    pg_entity_ref *twice[] = {had[0], &again}, *self[] = {had[0], &own};
    ck_assert_ptr_nonnull(strstr(s_encoded(cs, 0, &out), "\"mergedFrom\":["));
    eu->merged_from = twice;
    eu->n_merged_from = 2;
    char want[96];
    snprintf(want, sizeof want, "record.mergedFrom[1]: %s is named twice", again.native_id);
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out), want);
    eu->merged_from = self;
    snprintf(want, sizeof want, "record.mergedFrom[1]: is the record's own id (%s)", own.native_id);
    ck_assert_str_eq(s_encoded(cs, PG_EUNSUPPORTED, &out), want);
    eu->merged_from = had;
    eu->n_merged_from = 1;
    pg_changeset_destroy(&cs);
    pg_buf_free(&out);
}
END_TEST

/* ------------------------------------------------------------------ threads */

/* The decoder parses into a per-thread scratch region behind jansson's process-wide
 * allocation functions. Two threads decode the same messages many times (valid ones,
 * JSON cut off midway, and messages that fail after changes were added) while also
 * using jansson outside the decode, a tree of which lives across decodes; every result
 * must equal the one decoded alone. */

#define S_MT_MAX 48
#define S_MT_ROUNDS 400

typedef struct s_mt_result {
    int rc;
    size_t count;
    uint64_t hash; /* FNV-1a of every change packed as protobuf */
    char why[PG_ERRSTR_SIZE];
} s_mt_result;

typedef struct s_mt {
    char *msg[S_MT_MAX];
    size_t n;
    s_mt_result want[S_MT_MAX];
} s_mt;

typedef struct s_mt_thread {
    const s_mt *mt;
    int reverse;
    int mismatches;
    int ok, failed;
    char first[512];
} s_mt_thread;

static void s_mt_decode(pg_changeset *cs, const char *msg, s_mt_result *r)
{
    pg_adapter_ctx ctx = {0};
    pg_changeset_reset(cs);
    r->why[0] = 0;
    r->rc = A->decode(&ctx, (const uint8_t *)msg, strlen(msg), cs, r->why, sizeof r->why);
    r->count = cs->count;
    r->hash = 1469598103934665603ULL;
    uint8_t buf[1 << 14];
    for (size_t i = 0; i < cs->count; i++) {
        const ProtobufCMessage *m = cs->changes[i].type == PG_CHANGE_ENTITY
                                        ? &cs->changes[i].entity->base
                                        : &cs->changes[i].link->base;
        size_t len = protobuf_c_message_get_packed_size(m);
        if (len > sizeof buf) {
            r->hash = 0;
            return;
        }
        protobuf_c_message_pack(m, buf);
        for (size_t k = 0; k < len; k++)
            r->hash = (r->hash ^ buf[k]) * 1099511628211ULL;
    }
}

static void s_mt_add(s_mt *mt, char *msg)
{
    ck_assert_uint_lt(mt->n, S_MT_MAX);
    mt->msg[mt->n++] = msg;
}

static void *s_mt_run(void *arg)
{
    s_mt_thread *t = arg;
    const s_mt *mt = t->mt;
    pg_changeset *cs = pg_changeset_new();
    json_t *held = NULL; /* a jansson tree made outside any decode, freed rounds later */
    for (int round = 0; round < S_MT_ROUNDS && cs; round++) {
        for (size_t j = 0; j < mt->n; j++) {
            size_t i = t->reverse ? mt->n - 1 - j : j;
            if ((round + j) % 7 == 0) {
                json_decref(held);
                held = json_loads(mt->msg[(i + 1) % mt->n], 0, NULL);
                char *text = held ? json_dumps(held, JSON_COMPACT) : NULL;
                free(text); /* json_dumps output is plain malloc memory */
            }
            s_mt_result got;
            s_mt_decode(cs, mt->msg[i], &got);
            const s_mt_result *w = &mt->want[i];
            if (got.rc != w->rc || got.count != w->count || got.hash != w->hash ||
                strcmp(got.why, w->why) != 0) {
                if (!t->mismatches++)
                    snprintf(t->first, sizeof t->first,
                             "message %zu: rc %d/%d count %zu/%zu '%.200s'", i, got.rc, w->rc,
                             got.count, w->count, got.why);
            }
            if (got.rc == 0)
                t->ok++;
            else
                t->failed++;
        }
    }
    json_decref(held);
    if (!cs)
        t->mismatches = -1;
    pg_changeset_destroy(&cs);
    return NULL;
}

START_TEST(test_decode_threads)
{
    s_mt mt = {0};
    const char *files[] = {"atx-burglary.ndjson", "atx-merseyside-import.ndjson"};
    for (size_t f = 0; f < 2; f++) {
        s_lines l;
        s_load(files[f], &l);
        for (size_t i = 0; i < l.n; i++) {
            size_t len = strlen(l.text[i]);
            s_mt_add(&mt, strdup(l.text[i]));
            s_mt_add(&mt, strndup(l.text[i], len / 2));      /* JSON cut off midway */
            s_mt_add(&mt, strndup(l.text[i], len * 9 / 10)); /* later in the tree */
        }
        s_free_lines(&l);
    }
    /* valid JSON that fails validation after the entity and links were added */
    char *base = s_base(OCC);
    json_t *root = json_loads(base, 0, NULL);
    free(base);
    ck_assert_ptr_nonnull(root);
    s_set(root, "links[4].role", json_string("KEEPER"));
    s_mt_add(&mt, json_dumps(root, 0));
    json_decref(root);
    /* and one that fails in the body */
    base = s_base(PER);
    root = json_loads(base, 0, NULL);
    free(base);
    ck_assert_ptr_nonnull(root);
    s_set(root, "record.body.aliases[0].dateOfBirth", json_string("1985-02-30"));
    s_mt_add(&mt, json_dumps(root, 0));
    json_decref(root);

    pg_changeset *cs = pg_changeset_new();
    int valid = 0, invalid = 0;
    for (size_t i = 0; i < mt.n; i++) {
        s_mt_decode(cs, mt.msg[i], &mt.want[i]);
        ck_assert_msg(mt.want[i].hash != 0, "message %zu: too big to pack", i);
        if (mt.want[i].rc == 0) {
            valid++;
        } else {
            invalid++;
            ck_assert_uint_eq(mt.want[i].count, 0);
        }
    }
    pg_changeset_destroy(&cs);
    ck_assert_int_ge(valid, 12);
    ck_assert_int_ge(invalid, 28);

    s_mt_thread t[2] = {{.mt = &mt, .reverse = 0}, {.mt = &mt, .reverse = 1}};
    pthread_t tid[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&tid[i], NULL, s_mt_run, &t[i]), 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
        ck_assert_msg(t[i].mismatches == 0, "thread %d: %d mismatches, first %s", i,
                      t[i].mismatches, t[i].first);
        ck_assert_int_eq(t[i].ok, valid * S_MT_ROUNDS);
        ck_assert_int_eq(t[i].failed, invalid * S_MT_ROUNDS);
    }
    for (size_t i = 0; i < mt.n; i++)
        free(mt.msg[i]);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("athena");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ops);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_decode_burglary);
    tcase_add_test(tc, test_org_unit_with_spaces);
    tcase_add_test(tc, test_decode_merseyside);
    tcase_add_test(tc, test_round_trip_burglary);
    tcase_add_test(tc, test_round_trip_merseyside);
    tcase_add_test(tc, test_encode_format);
    tcase_add_test(tc, test_encode_idmap);
    tcase_add_test(tc, test_encode_unsupported);
    tcase_add_test(tc, test_encode_refuses_backward_range);
    tcase_add_test(tc, test_encode_blank_is_absent);
    tcase_add_test(tc, test_encode_year_bounds);
    tcase_add_test(tc, test_encode_revision_bounds);
    tcase_add_test(tc, test_encode_merged_from_refusals);
    tcase_add_test(tc, test_decode_trims_body);
    tcase_add_test(tc, test_decode_long_fraction);
    tcase_add_test(tc, test_invalid_framing);
    tcase_add_test(tc, test_force_and_forward_compat);
    tcase_add_test(tc, test_all_or_nothing);
    tcase_add_test(tc, test_decode_threads);
    suite_add_tcase(s, tc);
    TCase *inv = tcase_create("invalid");
    tcase_add_loop_test(inv, test_invalid_case, 0, (int)(sizeof s_cases / sizeof s_cases[0]));
    suite_add_tcase(s, inv);
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
