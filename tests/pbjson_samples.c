/* Sample messages for the pbjson tests (see pbjson_samples.h). */
#include "pbjson_samples.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pbjson_legacy.pb-c.h"
#include "pbjson_types.pb-c.h"

#define S_NEW(T, t) PG_PB_NEW(a, Polegate__Pole__V1__##T, polegate__pole__v1__##t)
#define S_TNEW(T, t) PG_PB_NEW(a, Polegate__Test__V1__##T, polegate__test__v1__##t)
#define S_ARRAY(type, n) ((type *)pg_arena_alloc(a, sizeof(type) * (n)))

static pg_timestamp *s_ts(pg_arena *a, int64_t seconds, int32_t nanos)
{
    pg_timestamp *t = PG_PB_NEW(a, Google__Protobuf__Timestamp, google__protobuf__timestamp);
    if (t) {
        t->seconds = seconds;
        t->nanos = nanos;
    }
    return t;
}

static pg_date *s_date(pg_arena *a, int y, int m, int d)
{
    pg_date *dt = S_NEW(Date, date);
    if (dt) {
        dt->year = y;
        dt->month = m;
        dt->day = d;
    }
    return dt;
}

static pg_entity_ref *s_ref(pg_arena *a, const char *id, int kind, const char *native_id)
{
    pg_entity_ref *r = S_NEW(EntityRef, entity_ref);
    if (r) {
        r->id = (char *)id;
        r->kind = kind;
        r->native_id = (char *)native_id;
    }
    return r;
}

/* The envelope every ATX-sourced upsert carries. */
static pg_entity_update *s_entity(pg_arena *a, const char *id, int kind, const char *native_type,
                                  const char *native_id)
{
    pg_entity_update *e = S_NEW(EntityUpdate, entity_update);
    pg_origin *o = S_NEW(Origin, origin);
    pg_marking *mk = S_NEW(Marking, marking);
    pg_retention *rt = S_NEW(Retention, retention);
    if (!e || !o || !mk || !rt)
        return NULL;
    e->id = (char *)id;
    e->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
    e->version = 3;
    o->force = "ESX";
    o->system = "ATHENA";
    o->native_type = (char *)native_type;
    o->native_id = (char *)native_id;
    o->message_id = "8f0b7a6e-3c1d-4b2a-9e5f-0a1b2c3d4e5f";
    o->org_unit = "ESX-CID-CHELMSFORD";
    e->origin = o;
    e->modified_at = s_ts(a, 1730558100, 123000000);
    mk->classification = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL_SENSITIVE;
    mk->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_P;
    e->marking = mk;
    rt->mopi_group = 2;
    rt->review_date = s_date(a, 2031, 11, 2);
    e->retention = rt;
    e->kind = kind;
    return e;
}

static const ProtobufCMessage *s_person(pg_arena *a)
{
    pg_entity_update *e =
        s_entity(a, "6f1c2d3e-4b5a-5c6d-8e7f-0123456789ab",
                 POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON, "PERSON", "P0000123456");
    Polegate__Pole__V1__Person *p = S_NEW(Person, person);
    Polegate__Pole__V1__Name *n = S_NEW(Name, name), *an = S_NEW(Name, name);
    Polegate__Pole__V1__Alias *al = S_NEW(Alias, alias);
    char **fn = S_ARRAY(char *, 2), **afn = S_ARRAY(char *, 1);
    Polegate__Pole__V1__Alias **als = S_ARRAY(Polegate__Pole__V1__Alias *, 1);
    Polegate__Pole__V1__WarningMarker *wm = S_ARRAY(Polegate__Pole__V1__WarningMarker, 2);
    if (!e || !p || !n || !an || !al || !fn || !afn || !als || !wm)
        return NULL;
    n->surname = "O'Brien-Ní Bhriain";
    fn[0] = "Zoë";
    fn[1] = "Siân";
    n->forenames = fn;
    n->n_forenames = 2;
    p->name = n;
    p->title = "Ms";
    p->date_of_birth = s_date(a, 1985, 7, 0);
    p->place_of_birth = "Cork";
    p->sex = POLEGATE__POLE__V1__SEX__SEX_FEMALE;
    p->self_defined_ethnicity =
        POLEGATE__POLE__V1__SELF_DEFINED_ETHNICITY__SELF_DEFINED_ETHNICITY_W2;
    p->officer_defined_ethnicity =
        POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC1;
    p->nationality = "IRL";
    p->pnc_id = "2003/0123456X";
    p->cro_number = "012345/03L";
    an->surname = "Brien";
    afn[0] = "Zoe";
    an->forenames = afn;
    an->n_forenames = 1;
    al->name = an;
    al->date_of_birth = s_date(a, 1985, 0, 0);
    als[0] = al;
    p->aliases = als;
    p->n_aliases = 1;
    wm[0] = POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_VI;
    wm[1] = POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_DR;
    p->warning_markers = wm;
    p->n_warning_markers = 2;
    p->occupation = "Café manager";
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
    e->person = p;
    return &e->base;
}

static const ProtobufCMessage *s_location(pg_arena *a)
{
    pg_entity_update *e =
        s_entity(a, "0a1b2c3d-4e5f-5a6b-9c7d-8e9fa0b1c2d3",
                 POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_LOCATION, "LOCATION", "L0000004711");
    Polegate__Pole__V1__Location *l = S_NEW(Location, location);
    Polegate__Pole__V1__GeoPoint *g = S_NEW(GeoPoint, geo_point);
    Polegate__Pole__V1__GridReference *gr = S_NEW(GridReference, grid_reference);
    if (!e || !l || !g || !gr)
        return NULL;
    l->premises = "Flat 2, 14";
    l->street = "Moulsham Street";
    l->locality = "Moulsham";
    l->town = "Chelmsford";
    l->postcode = "CM2 0HU";
    l->uprn = "100091234567";
    g->lat = 51.72795;
    g->lon = 0.4723;
    l->geo = g;
    gr->easting = 570812.5;
    gr->northing = 206123;
    l->grid = gr;
    l->description = "Rear door forced; \"no CCTV\"\nback alley\tunlit";
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION;
    e->location = l;
    return &e->base;
}

static const ProtobufCMessage *s_vehicle(pg_arena *a)
{
    pg_entity_update *e =
        s_entity(a, "11111111-2222-5333-8444-555555555555",
                 POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_VEHICLE, "VEHICLE", "V0000000099");
    Polegate__Pole__V1__Vehicle *v = S_NEW(Vehicle, vehicle);
    if (!e || !v)
        return NULL;
    v->vrm = "AB12CDE";
    v->make = "Škoda";
    v->model = "Octavia";
    v->colour = POLEGATE__POLE__V1__COLOUR__COLOUR_SILVER;
    v->vin = "TMBJJ7NE0J0123456";
    v->year = 2018;
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE;
    e->vehicle = v;
    return &e->base;
}

static const ProtobufCMessage *s_item(pg_arena *a)
{
    pg_entity_update *e =
        s_entity(a, "22222222-3333-5444-8555-666666666666",
                 POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_ITEM, "ITEM", "I0000000007");
    Polegate__Pole__V1__Item *it = S_NEW(Item, item);
    Polegate__Pole__V1__Money *m = S_NEW(Money, money);
    if (!e || !it || !m)
        return NULL;
    it->category = POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_JEWELLERY;
    it->description = "Gold ring, engraved “J & M 1999”";
    it->serial_number = "";
    m->currency = "GBP";
    m->minor_units = 125000;
    it->value = m;
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM;
    e->item = it;
    return &e->base;
}

static const ProtobufCMessage *s_weapon(pg_arena *a)
{
    pg_entity_update *e =
        s_entity(a, "33333333-4444-5555-8666-777777777777",
                 POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_WEAPON, "WEAPON", "W0000000001");
    Polegate__Pole__V1__Weapon *w = S_NEW(Weapon, weapon);
    if (!e || !w)
        return NULL;
    w->category = POLEGATE__POLE__V1__WEAPON_CATEGORY__WEAPON_CATEGORY_KNIFE;
    w->description = "Kitchen knife, 20 cm blade";
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_WEAPON;
    e->weapon = w;
    return &e->base;
}

static const ProtobufCMessage *s_telephone(pg_arena *a)
{
    pg_entity_update *e = s_entity(a, "44444444-5555-5666-8777-888888888888",
                                   POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_TELEPHONE,
                                   "TELEPHONE", "T0000000031");
    Polegate__Pole__V1__Telephone *t = S_NEW(Telephone, telephone);
    if (!e || !t)
        return NULL;
    t->number = "+447700900123";
    t->kind = POLEGATE__POLE__V1__TELEPHONE_KIND__TELEPHONE_KIND_MOBILE;
    t->imei = "356938035643809";
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE;
    e->telephone = t;
    return &e->base;
}

static const ProtobufCMessage *s_occurrence(pg_arena *a)
{
    pg_entity_update *e = s_entity(a, "55555555-6666-5777-8888-999999999999",
                                   POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_OCCURRENCE,
                                   "OCCURRENCE", "O0000042001");
    Polegate__Pole__V1__Occurrence *o = S_NEW(Occurrence, occurrence);
    Polegate__Pole__V1__Offence **offs = S_ARRAY(Polegate__Pole__V1__Offence *, 2);
    Polegate__Pole__V1__Offence *o1 = S_NEW(Offence, offence), *o2 = S_NEW(Offence, offence);
    if (!e || !o || !offs || !o1 || !o2)
        return NULL;
    o->reference = "42/123456/24";
    o->kind = POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_CRIME;
    o1->ho_class = 28;
    o1->ho_subclass = 1;
    o1->description = "Burglary in a dwelling";
    o2->ho_class = 58;
    o2->ho_subclass = 0; /* proto3: omitted */
    o2->description = "Criminal damage to a dwelling";
    offs[0] = o1;
    offs[1] = o2;
    o->offences = offs;
    o->n_offences = 2;
    o->occurred_from = s_ts(a, 1730499000, 0);
    o->occurred_to = s_ts(a, 1730529600, 0);
    o->reported_at = s_ts(a, 1730535330, 500000);
    o->status = POLEGATE__POLE__V1__OCCURRENCE_STATUS__OCCURRENCE_STATUS_UNDER_INVESTIGATION;
    o->summary = "Entry via rear door\u2028while occupants away; \\ tools left \x01";
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE;
    e->occurrence = o;
    return &e->base;
}

static const ProtobufCMessage *s_custody(pg_arena *a)
{
    pg_entity_update *e =
        s_entity(a, "66666666-7777-5888-8999-aaaaaaaaaaaa",
                 POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_CUSTODY, "CUSTODY", "C0000000555");
    Polegate__Pole__V1__Custody *c = S_NEW(Custody, custody);
    if (!e || !c)
        return NULL;
    c->reference = "MER/CUS/2025/000555";
    c->arrested_at = s_ts(a, 1742029200, 0);
    c->arrived_at = s_ts(a, 1742038920, 0);
    c->released_at = s_ts(a, 1742119500, 999999999);
    c->station = "St Anne Street";
    c->outcome = POLEGATE__POLE__V1__CUSTODY_OUTCOME__CUSTODY_OUTCOME_RELEASED_UNDER_INVESTIGATION;
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_CUSTODY;
    e->custody = c;
    return &e->base;
}

static const ProtobufCMessage *s_intelligence(pg_arena *a)
{
    pg_entity_update *e = s_entity(a, "77777777-8888-5999-8aaa-bbbbbbbbbbbb",
                                   POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_INTELLIGENCE,
                                   "INTELLIGENCE", "N0000000009");
    Polegate__Pole__V1__Intelligence *in = S_NEW(Intelligence, intelligence);
    Polegate__Pole__V1__Grading *g = S_NEW(Grading, grading);
    pg_entity_ref **mf = S_ARRAY(pg_entity_ref *, 1);
    if (!e || !in || !g || !mf)
        return NULL;
    in->reference = "INT/2025/0009";
    in->reported_at = s_ts(a, 1761442200, 0);
    in->text = "Subject seen near the docks — drives a silver Škoda";
    g->source = POLEGATE__POLE__V1__SOURCE_EVALUATION__SOURCE_EVALUATION_2_UNTESTED;
    g->intelligence = POLEGATE__POLE__V1__INTELLIGENCE_ASSESSMENT__INTELLIGENCE_ASSESSMENT_B;
    g->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    in->grading = g;
    e->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    e->marking->caveat = "Not to be shared outside MER without DI approval";
    /* Only to exercise a repeated message field on the envelope. */
    mf[0] = s_ref(a, "88888888-9999-5aaa-8bbb-cccccccccccc",
                  POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_INTELLIGENCE, "N0000000008");
    e->merged_from = mf;
    e->n_merged_from = 1;
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE;
    e->intelligence = in;
    return &e->base;
}

static const ProtobufCMessage *s_delete(pg_arena *a)
{
    pg_entity_update *e = S_NEW(EntityUpdate, entity_update);
    if (!e)
        return NULL;
    e->id = "6f1c2d3e-4b5a-5c6d-8e7f-0123456789ab";
    e->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    e->version = UINT64_MAX;
    e->kind = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON;
    e->modified_at = s_ts(a, 1730558100, 0);
    return &e->base;
}

static const ProtobufCMessage *s_link(pg_arena *a)
{
    pg_link_update *l = S_NEW(LinkUpdate, link_update);
    pg_origin *o = S_NEW(Origin, origin);
    pg_marking *mk = S_NEW(Marking, marking);
    if (!l || !o || !mk)
        return NULL;
    l->id = "9d8c7b6a-5f4e-5d3c-8b2a-190817161514";
    l->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
    l->version = 1;
    o->force = "ESX";
    o->system = "ATHENA";
    o->native_type = "PERSON";
    o->native_id = "P0000123456";
    l->origin = o;
    l->modified_at = s_ts(a, 1730558100, 123000000);
    mk->classification = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL;
    l->marking = mk;
    l->from = s_ref(a, "6f1c2d3e-4b5a-5c6d-8e7f-0123456789ab",
                    POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON, "P0000123456");
    l->role = POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS;
    l->to = s_ref(a, "0a1b2c3d-4e5f-5a6b-9c7d-8e9fa0b1c2d3",
                  POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_UNSPECIFIED, "L0000004711");
    l->valid_from = s_date(a, 2019, 4, 1);
    return &l->base;
}

static const ProtobufCMessage *s_link_delete(pg_arena *a)
{
    pg_link_update *l = S_NEW(LinkUpdate, link_update);
    if (!l)
        return NULL;
    l->id = "9d8c7b6a-5f4e-5d3c-8b2a-190817161514";
    l->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    l->version = 2;
    l->from = s_ref(a, "6f1c2d3e-4b5a-5c6d-8e7f-0123456789ab", 1, "");
    l->role = POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS;
    l->to = s_ref(a, "0a1b2c3d-4e5f-5a6b-9c7d-8e9fa0b1c2d3", 2, NULL);
    l->valid_from = s_date(a, 2019, 4, 1);
    l->valid_to = s_date(a, 2024, 11, 2);
    return &l->base;
}

/* ---------------------------------------------------------------- test schema */

static Polegate__Test__V1__Inner *s_inner(pg_arena *a, int32_t n, const char *label)
{
    Polegate__Test__V1__Inner *in = S_TNEW(Inner, inner);
    if (in) {
        in->n = n;
        in->label = (char *)label;
    }
    return in;
}

/* Every singular field set to an ordinary value. */
static const ProtobufCMessage *s_all_set(pg_arena *a)
{
    Polegate__Test__V1__AllTypes *m = S_TNEW(AllTypes, all_types);
    static uint8_t bytes[] = {0x00, 0xff, 0xfe, 'p', 'o', 'l', 'e'};
    if (!m)
        return NULL;
    m->f_double = 0.1;
    m->f_float = 0.1f;
    m->f_int32 = -42;
    m->f_int64 = -9007199254740993LL; /* not representable as a double */
    m->f_uint32 = 4000000000U;
    m->f_uint64 = 18446744073709551615ULL;
    m->f_sint32 = -7;
    m->f_sint64 = -70000000000LL;
    m->f_fixed32 = 123456789;
    m->f_fixed64 = 1234567890123456789ULL;
    m->f_sfixed32 = -123456789;
    m->f_sfixed64 = -1234567890123456789LL;
    m->f_bool = 1;
    m->f_string = "plain ascii";
    m->f_bytes.data = bytes;
    m->f_bytes.len = sizeof bytes;
    m->f_enum = POLEGATE__TEST__V1__SHADE__SHADE_DARK;
    m->f_inner = s_inner(a, 5, "five");
    m->f_time = s_ts(a, 1730558100, 120000);
    m->field_1_name = 1;
    m->x2y = 2;
    m->choice_case = POLEGATE__TEST__V1__ALL_TYPES__CHOICE_O_STRING;
    m->o_string = "chosen";
    return &m->base;
}

/* The limits of every numeric type, and doubles JSON cannot write as numbers. */
static const ProtobufCMessage *s_all_extreme(pg_arena *a)
{
    Polegate__Test__V1__AllTypes *m = S_TNEW(AllTypes, all_types);
    if (!m)
        return NULL;
    m->f_double = NAN;
    m->f_float = -INFINITY;
    m->f_int32 = INT32_MIN;
    m->f_int64 = INT64_MIN;
    m->f_uint32 = UINT32_MAX;
    m->f_uint64 = 1;
    m->f_sint32 = INT32_MAX;
    m->f_sint64 = INT64_MAX;
    m->f_fixed32 = UINT32_MAX;
    m->f_fixed64 = UINT64_MAX;
    m->f_sfixed32 = INT32_MIN;
    m->f_sfixed64 = INT64_MIN;
    m->f_time = s_ts(a, -62135596800LL, 0);
    m->f_enum = 99; /* unknown to this schema: written as a number */
    m->choice_case = POLEGATE__TEST__V1__ALL_TYPES__CHOICE_O_INT32;
    m->o_int32 = 0; /* a oneof member is present even at its default */
    return &m->base;
}

/* Doubles and floats that need care to round-trip. */
static const ProtobufCMessage *s_reals(pg_arena *a)
{
    Polegate__Test__V1__AllTypes *m = S_TNEW(AllTypes, all_types);
    static double d[] = {INFINITY,
                         -INFINITY,
                         1e300,
                         -2.2250738585072014e-308,
                         5e-324,
                         1.0 / 3,
                         123456789012345680.0,
                         1.5,
                         -0.0,
                         9007199254740993.0};
    static float f[] = {3.4028235e38f, 1.17549435e-38f, 1e-45f, 0.3f, 16777217.0f,
                        2.5f,          (float)NAN};
    if (!m)
        return NULL;
    m->r_double = d;
    m->n_r_double = sizeof d / sizeof d[0];
    m->r_float = f;
    m->n_r_float = sizeof f / sizeof f[0];
    m->f_double = -0.0; /* protobuf-c drops it from the wire as a default: so do we */
    m->f_time = s_ts(a, 253402300799LL, 999999999);
    return &m->base;
}

static const ProtobufCMessage *s_all_repeated(pg_arena *a)
{
    Polegate__Test__V1__AllTypes *m = S_TNEW(AllTypes, all_types);
    static int32_t i32[] = {0, -1, INT32_MAX};
    static int64_t i64[] = {0, -1, INT64_MAX};
    static uint32_t u32[] = {0, 1, UINT32_MAX};
    static uint64_t u64[] = {0, 1, UINT64_MAX};
    static protobuf_c_boolean b[] = {1, 0, 1};
    static char *strs[] = {"", "Łódź", "tab\there", "😀 emoji", "nul\x7f del"};
    static uint8_t raw[] = {0xfb, 0xff};
    static ProtobufCBinaryData bins[] = {{0, NULL}, {1, raw}, {2, raw}};
    static Polegate__Test__V1__Shade shades[] = {0, 1, 2, 7};
    Polegate__Test__V1__Inner **inners = S_ARRAY(Polegate__Test__V1__Inner *, 2);
    pg_timestamp **times = S_ARRAY(pg_timestamp *, 4);
    if (!m || !inners || !times)
        return NULL;
#define S_SET(field, arr)                                                                          \
    do {                                                                                           \
        m->field = (void *)(arr);                                                                  \
        m->n_##field = sizeof(arr) / sizeof((arr)[0]);                                             \
    } while (0)
    S_SET(r_int32, i32);
    S_SET(r_int64, i64);
    S_SET(r_uint32, u32);
    S_SET(r_uint64, u64);
    S_SET(r_sint32, i32);
    S_SET(r_sint64, i64);
    S_SET(r_fixed32, u32);
    S_SET(r_fixed64, u64);
    S_SET(r_sfixed32, i32);
    S_SET(r_sfixed64, i64);
    S_SET(r_bool, b);
    S_SET(r_string, strs);
    S_SET(r_bytes, bins);
    S_SET(r_enum, shades);
#undef S_SET
    inners[0] = s_inner(a, 0, "");
    inners[1] = s_inner(a, -3, "minus three");
    m->r_inner = inners;
    m->n_r_inner = 2;
    times[0] = s_ts(a, 0, 0);
    times[1] = s_ts(a, -14182940, 1000000);
    times[2] = s_ts(a, -1, 999999000);
    times[3] = s_ts(a, 951782400, 1); /* 2000-02-29, leap day */
    m->r_time = times;
    m->n_r_time = 4;
    m->choice_case = POLEGATE__TEST__V1__ALL_TYPES__CHOICE_O_INNER;
    m->o_inner = s_inner(a, 0, ""); /* set but empty: {} */
    return &m->base;
}

static const ProtobufCMessage *s_maps(pg_arena *a)
{
    Polegate__Test__V1__AllTypes *m = S_TNEW(AllTypes, all_types);
    Polegate__Test__V1__AllTypes__MStringInt32Entry **si =
        S_ARRAY(Polegate__Test__V1__AllTypes__MStringInt32Entry *, 2);
    Polegate__Test__V1__AllTypes__MInt64StringEntry **is =
        S_ARRAY(Polegate__Test__V1__AllTypes__MInt64StringEntry *, 2);
    Polegate__Test__V1__AllTypes__MBoolInnerEntry **bi =
        S_ARRAY(Polegate__Test__V1__AllTypes__MBoolInnerEntry *, 2);
    Polegate__Test__V1__AllTypes__MUint32EnumEntry **ue =
        S_ARRAY(Polegate__Test__V1__AllTypes__MUint32EnumEntry *, 1);
    if (!m || !si || !is || !bi || !ue)
        return NULL;
    for (int i = 0; i < 2; i++) {
        si[i] = S_TNEW(AllTypes__MStringInt32Entry, all_types__mstring_int32_entry);
        is[i] = S_TNEW(AllTypes__MInt64StringEntry, all_types__mint64_string_entry);
        bi[i] = S_TNEW(AllTypes__MBoolInnerEntry, all_types__mbool_inner_entry);
        if (!si[i] || !is[i] || !bi[i])
            return NULL;
    }
    ue[0] = S_TNEW(AllTypes__MUint32EnumEntry, all_types__muint32_enum_entry);
    if (!ue[0])
        return NULL;
    si[0]->key = "a \"quoted\" key";
    si[0]->value = 1;
    si[1]->key = "zero";
    si[1]->value = 0;
    is[0]->key = -5;
    is[0]->value = "minus five";
    is[1]->key = INT64_MAX;
    is[1]->value = "";
    bi[0]->key = 1;
    bi[0]->value = s_inner(a, 1, "yes");
    bi[1]->key = 0;
    bi[1]->value = s_inner(a, 0, "no");
    ue[0]->key = 4000000000U;
    ue[0]->value = POLEGATE__TEST__V1__SHADE__SHADE_LIGHT;
    m->m_string_int32 = si;
    m->n_m_string_int32 = 2;
    m->m_int64_string = is;
    m->n_m_int64_string = 2;
    m->m_bool_inner = bi;
    m->n_m_bool_inner = 2;
    m->m_uint32_enum = ue;
    m->n_m_uint32_enum = 1;
    m->choice_case = POLEGATE__TEST__V1__ALL_TYPES__CHOICE_O_BOOL;
    m->o_bool = 0;
    return &m->base;
}

static const ProtobufCMessage *s_all_empty(pg_arena *a)
{
    Polegate__Test__V1__AllTypes *m = S_TNEW(AllTypes, all_types);
    return m ? &m->base : NULL;
}

static const ProtobufCMessage *s_legacy_min(pg_arena *a)
{
    Polegate__Test__V1__Legacy *m = S_TNEW(Legacy, legacy);
    return m ? &m->base : NULL; /* r_int32 is required: written even at 0 */
}

static const ProtobufCMessage *s_legacy_set(pg_arena *a)
{
    Polegate__Test__V1__Legacy *m = S_TNEW(Legacy, legacy);
    if (!m)
        return NULL;
    m->r_int32 = 9;
    m->has_o_int32 = 1;
    m->o_int32 = 0; /* explicitly present at 0 */
    m->o_string = "";
    m->o_named = "named";
    m->has_o_int64 = 1;
    m->o_int64 = 7;
    m->has_o_bytes = 1;
    m->has_o_double = 1;
    m->o_double = 0;
    return &m->base;
}

typedef const ProtobufCMessage *(*s_builder)(pg_arena *a);

static const struct {
    const char *name;
    s_builder build;
} s_builders[] = {
    {"person", s_person},
    {"location", s_location},
    {"vehicle", s_vehicle},
    {"item", s_item},
    {"weapon", s_weapon},
    {"telephone", s_telephone},
    {"occurrence", s_occurrence},
    {"custody", s_custody},
    {"intelligence", s_intelligence},
    {"delete", s_delete},
    {"link", s_link},
    {"link_delete", s_link_delete},
    {"all_set", s_all_set},
    {"all_extreme", s_all_extreme},
    {"reals", s_reals},
    {"all_repeated", s_all_repeated},
    {"maps", s_maps},
    {"all_empty", s_all_empty},
    {"legacy_min", s_legacy_min},
    {"legacy_set", s_legacy_set},
};

size_t pg_samples_build(pg_arena *a, pg_sample *out)
{
    size_t n = sizeof s_builders / sizeof s_builders[0];
    for (size_t i = 0; i < n && i < PG_SAMPLES_MAX; i++) {
        out[i].name = s_builders[i].name;
        out[i].msg = s_builders[i].build(a);
        if (!out[i].msg)
            return 0;
    }
    return n;
}

const ProtobufCMessage *pg_sample_find(const pg_sample *s, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0)
            return s[i].msg;
    return NULL;
}
