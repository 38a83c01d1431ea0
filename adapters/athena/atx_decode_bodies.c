/* ATX/2 decoder: the body of each record type -> its canonical entity. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atx_dec.h"
#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/timeutil.h"

/* ------------------------------------------------------------------ bodies */

typedef Polegate__Pole__V1__Name s_name;

static int s_name_of(pg_atx_dec *d, const json_t *obj, const char *path, s_name **out)
{
    s_name *nm = PG_PB_NEW(d->arena, s_name, polegate__pole__v1__name);
    if (!nm)
        return PG_ATX_NOMEM(d);
    int rc = pg_atx__string(d, obj, path, "surname", PG_ATX_REQUIRED, 1, 60, &nm->surname);
    if (!rc)
        rc = pg_atx__strings(d, obj, path, "forenames", 5, NULL, &nm->forenames, &nm->n_forenames);
    *out = nm;
    return rc;
}

/* Set a proto3 string field only when given, keeping protobuf-c's "" default. */
static int s_person(pg_atx_dec *d, const json_t *b, pg_entity_update *eu)
{
    static const char *const P = "record.body";
    Polegate__Pole__V1__Person *p =
        PG_PB_NEW(d->arena, Polegate__Pole__V1__Person, polegate__pole__v1__person);
    if (!p)
        return PG_ATX_NOMEM(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
    eu->person = p;
    int rc = s_name_of(d, b, P, &p->name);
    if (rc)
        return rc;
    PG_ATX_OPT_STR(b, P, "title", p->title);
    if ((rc = pg_atx__date(d, b, P, "dateOfBirth", PG_ATX_PARTIAL, &p->date_of_birth)))
        return rc;
    PG_ATX_OPT_STR(b, P, "placeOfBirth", p->place_of_birth);
    PG_ATX_CODE(b, P, "sex", PG_ATX_OPTIONAL, pg_atx_sex, p->sex);

    json_t *o;
    if ((rc = pg_atx__get(d, b, P, "ethnicity", JSON_OBJECT, PG_ATX_OPTIONAL, &o)))
        return rc;
    if (o) {
        PG_ATX_CODE(o, "record.body.ethnicity", "selfDefined", PG_ATX_OPTIONAL, pg_atx_sde,
                    p->self_defined_ethnicity);
        PG_ATX_CODE(o, "record.body.ethnicity", "officerDefined", PG_ATX_OPTIONAL, pg_atx_ic,
                    p->officer_defined_ethnicity);
    }

    char *nat;
    if ((rc = pg_atx__string(d, b, P, "nationality", PG_ATX_OPTIONAL, 0, 0, &nat)))
        return rc;
    if (nat && !pg_country_alpha3_to_alpha2(nat))
        return pg_atx__fail(d, P, "nationality", "is not an ISO 3166-1 alpha-3 country code");
    PG_ATX_SET(p->nationality, nat);

    if ((rc = pg_atx__get(d, b, P, "identifiers", JSON_OBJECT, PG_ATX_OPTIONAL, &o)))
        return rc;
    if (o) {
        static const char *const I = "record.body.identifiers";
        char why[PG_ERRSTR_SIZE], *s;
        if ((rc = pg_atx__string(d, o, I, "pncId", PG_ATX_OPTIONAL, 0, 0, &s)))
            return rc;
        if (s && pg_pnc_validate_long(s, why, sizeof why))
            return pg_atx__fail(d, I, "pncId", "%s", why);
        PG_ATX_SET(p->pnc_id, s);
        if ((rc = pg_atx__string(d, o, I, "croNumber", PG_ATX_OPTIONAL, 0, 0, &s)))
            return rc;
        if (s && pg_cro_validate(s, why, sizeof why))
            return pg_atx__fail(d, I, "croNumber", "%s", why);
        PG_ATX_SET(p->cro_number, s);
    }

    json_t *arr;
    size_t na;
    if ((rc = pg_atx__objects(d, b, P, "aliases", &arr, &na, &p->aliases)))
        return rc;
    for (size_t i = 0; i < na; i++) {
        char ap[64];
        pg_atx__elem_path(ap, sizeof ap, P, "aliases", i);
        json_t *a = json_array_get(arr, i);
        Polegate__Pole__V1__Alias *al =
            PG_PB_NEW(d->arena, Polegate__Pole__V1__Alias, polegate__pole__v1__alias);
        if (!al)
            return PG_ATX_NOMEM(d);
        if ((rc = s_name_of(d, a, ap, &al->name)) ||
            (rc = pg_atx__date(d, a, ap, "dateOfBirth", PG_ATX_PARTIAL, &al->date_of_birth)))
            return rc;
        p->aliases[p->n_aliases++] = al;
    }

    char **wm;
    size_t nw;
    if ((rc = pg_atx__strings(d, b, P, "warningMarkers", 0, &pg_atx_wm, &wm, &nw)))
        return rc;
    if (nw) {
        p->warning_markers = pg_arena_alloc(d->arena, nw * sizeof(*p->warning_markers));
        if (!p->warning_markers)
            return PG_ATX_NOMEM(d);
    }
    for (size_t i = 0; i < nw; i++)
        p->warning_markers[p->n_warning_markers++] = pg_atx_code_value(&pg_atx_wm, wm[i]);
    PG_ATX_OPT_STR(b, P, "occupation", p->occupation);
    return 0;
}

static int s_location(pg_atx_dec *d, const json_t *b, pg_entity_update *eu)
{
    static const char *const P = "record.body";
    Polegate__Pole__V1__Location *l =
        PG_PB_NEW(d->arena, Polegate__Pole__V1__Location, polegate__pole__v1__location);
    if (!l)
        return PG_ATX_NOMEM(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION;
    eu->location = l;
    int rc;
    PG_ATX_OPT_STR(b, P, "premises", l->premises);
    PG_ATX_OPT_STR(b, P, "street", l->street);
    PG_ATX_OPT_STR(b, P, "locality", l->locality);
    PG_ATX_OPT_STR(b, P, "town", l->town);
    char *s;
    if ((rc = pg_atx__normalised(d, b, P, "postcode", pg_postcode_normalise, &l->postcode)))
        return rc;
    if ((rc = pg_atx__string(d, b, P, "uprn", PG_ATX_OPTIONAL, 0, 0, &s)))
        return rc;
    if (s) {
        size_t n = strlen(s), i = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i != n || n > 12 || s[0] == '0')
            return pg_atx__fail(d, P, "uprn", "must be 1-12 digits without leading zeros");
        l->uprn = s;
    }
    json_t *g;
    if ((rc = pg_atx__get(d, b, P, "geo", JSON_OBJECT, PG_ATX_OPTIONAL, &g)))
        return rc;
    if (g) {
        json_t *lat, *lon;
        if ((rc = pg_atx__get(d, g, "record.body.geo", "lat", JSON_REAL, PG_ATX_REQUIRED, &lat)) ||
            (rc = pg_atx__get(d, g, "record.body.geo", "lon", JSON_REAL, PG_ATX_REQUIRED, &lon)))
            return rc;
        double la = json_number_value(lat), lo = json_number_value(lon);
        if (!(la >= -90 && la <= 90))
            return pg_atx__fail(d, "record.body.geo", "lat", "must be -90 to 90 degrees");
        if (!(lo >= -180 && lo <= 180))
            return pg_atx__fail(d, "record.body.geo", "lon", "must be -180 to 180 degrees");
        l->geo = PG_PB_NEW(d->arena, Polegate__Pole__V1__GeoPoint, polegate__pole__v1__geo_point);
        if (!l->geo)
            return PG_ATX_NOMEM(d);
        l->geo->lat = la;
        l->geo->lon = lo;
    }
    PG_ATX_OPT_STR(b, P, "description", l->description);
    return 0;
}

static int s_vehicle(pg_atx_dec *d, const json_t *b, pg_entity_update *eu)
{
    static const char *const P = "record.body";
    Polegate__Pole__V1__Vehicle *v =
        PG_PB_NEW(d->arena, Polegate__Pole__V1__Vehicle, polegate__pole__v1__vehicle);
    if (!v)
        return PG_ATX_NOMEM(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE;
    eu->vehicle = v;
    int rc;
    char *s;
    if ((rc = pg_atx__normalised(d, b, P, "vrm", pg_vrm_normalise, &v->vrm)))
        return rc;
    PG_ATX_OPT_STR(b, P, "make", v->make);
    PG_ATX_OPT_STR(b, P, "model", v->model);
    PG_ATX_CODE(b, P, "colour", PG_ATX_OPTIONAL, pg_atx_colour, v->colour);
    if ((rc = pg_atx__string(d, b, P, "vin", PG_ATX_OPTIONAL, 0, 0, &s)))
        return rc;
    if (s) {
        size_t n = strlen(s), i = 0;
        while (i < n && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
            i++;
        if (n != 17 || i != n)
            return pg_atx__fail(d, P, "vin", "must be 17 characters A-Z 0-9");
        v->vin = s;
    }
    json_int_t year;
    int present;
    if ((rc = pg_atx__int(d, b, P, "year", PG_ATX_OPTIONAL, 1, 9999, &year, &present)))
        return rc;
    if (present)
        v->year = (int32_t)year;
    return 0;
}

static int s_item(pg_atx_dec *d, const json_t *b, pg_entity_update *eu)
{
    static const char *const P = "record.body";
    Polegate__Pole__V1__Item *it =
        PG_PB_NEW(d->arena, Polegate__Pole__V1__Item, polegate__pole__v1__item);
    if (!it)
        return PG_ATX_NOMEM(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM;
    eu->item = it;
    int rc;
    PG_ATX_CODE(b, P, "category", PG_ATX_OPTIONAL, pg_atx_item, it->category);
    if ((rc = pg_atx__string(d, b, P, "description", PG_ATX_REQUIRED, 0, 0, &it->description)))
        return rc;
    PG_ATX_OPT_STR(b, P, "serialNumber", it->serial_number);
    json_t *val;
    if ((rc = pg_atx__get(d, b, P, "value", JSON_OBJECT, PG_ATX_OPTIONAL, &val)))
        return rc;
    if (val) {
        static const char *const V = "record.body.value";
        char *amount, *cur, why[PG_ERRSTR_SIZE];
        if ((rc = pg_atx__string(d, val, V, "amount", PG_ATX_REQUIRED, 0, 0, &amount)) ||
            (rc = pg_atx__string(d, val, V, "currency", PG_ATX_REQUIRED, 0, 0, &cur)))
            return rc;
        Polegate__Pole__V1__Money *m =
            PG_PB_NEW(d->arena, Polegate__Pole__V1__Money, polegate__pole__v1__money);
        if (!m)
            return PG_ATX_NOMEM(d);
        if (pg_money_parse(amount, &m->minor_units, why, sizeof why))
            return pg_atx__fail(d, V, "amount", "%s", why);
        if (strlen(cur) != 3 || cur[0] < 'A' || cur[0] > 'Z' || cur[1] < 'A' || cur[1] > 'Z' ||
            cur[2] < 'A' || cur[2] > 'Z')
            return pg_atx__fail(d, V, "currency", "must be an ISO 4217 code of 3 capital letters");
        m->currency = cur;
        it->value = m;
    }
    return 0;
}

static int s_weapon(pg_atx_dec *d, const json_t *b, pg_entity_update *eu)
{
    static const char *const P = "record.body";
    Polegate__Pole__V1__Weapon *w =
        PG_PB_NEW(d->arena, Polegate__Pole__V1__Weapon, polegate__pole__v1__weapon);
    if (!w)
        return PG_ATX_NOMEM(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_WEAPON;
    eu->weapon = w;
    int rc;
    PG_ATX_CODE(b, P, "category", PG_ATX_OPTIONAL, pg_atx_weapon, w->category);
    PG_ATX_OPT_STR(b, P, "description", w->description);
    PG_ATX_OPT_STR(b, P, "serialNumber", w->serial_number);
    return 0;
}

static int s_telephone(pg_atx_dec *d, const json_t *b, pg_entity_update *eu)
{
    static const char *const P = "record.body";
    Polegate__Pole__V1__Telephone *t =
        PG_PB_NEW(d->arena, Polegate__Pole__V1__Telephone, polegate__pole__v1__telephone);
    if (!t)
        return PG_ATX_NOMEM(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE;
    eu->telephone = t;
    int rc;
    char *s;
    if ((rc = pg_atx__normalised(d, b, P, "number", pg_phone_to_e164, &t->number)))
        return rc;
    PG_ATX_CODE(b, P, "kind", PG_ATX_OPTIONAL, pg_atx_telkind, t->kind);
    if ((rc = pg_atx__string(d, b, P, "imei", PG_ATX_OPTIONAL, 0, 0, &s)))
        return rc;
    if (s) {
        size_t n = strlen(s), i = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (n != 15 || i != n)
            return pg_atx__fail(d, P, "imei", "must be 15 digits");
        t->imei = s;
    }
    return 0;
}

static int s_occurrence(pg_atx_dec *d, const json_t *b, pg_entity_update *eu)
{
    static const char *const P = "record.body";
    Polegate__Pole__V1__Occurrence *o =
        PG_PB_NEW(d->arena, Polegate__Pole__V1__Occurrence, polegate__pole__v1__occurrence);
    if (!o)
        return PG_ATX_NOMEM(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE;
    eu->occurrence = o;
    int rc;
    if ((rc = pg_atx__string(d, b, P, "reference", PG_ATX_REQUIRED, 0, 0, &o->reference)))
        return rc;
    PG_ATX_CODE(b, P, "kind", PG_ATX_OPTIONAL, pg_atx_occkind, o->kind);
    json_t *arr;
    size_t n;
    if ((rc = pg_atx__objects(d, b, P, "offences", &arr, &n, &o->offences)))
        return rc;
    if (n == 0 && o->kind == POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_CRIME)
        return pg_atx__fail(d, P, "offences", "a CRIME needs at least one offence");
    for (size_t i = 0; i < n; i++) {
        char op[64];
        pg_atx__elem_path(op, sizeof op, P, "offences", i);
        json_t *e = json_array_get(arr, i);
        Polegate__Pole__V1__Offence *of =
            PG_PB_NEW(d->arena, Polegate__Pole__V1__Offence, polegate__pole__v1__offence);
        if (!of)
            return PG_ATX_NOMEM(d);
        json_int_t cls = 0, sub = 0;
        int present;
        if ((rc = pg_atx__int(d, e, op, "hoClass", PG_ATX_REQUIRED, 1, 999, &cls, &present)) ||
            (rc = pg_atx__int(d, e, op, "hoSubclass", PG_ATX_REQUIRED, 0, 99, &sub, &present)))
            return rc;
        of->ho_class = (int32_t)cls;
        of->ho_subclass = (int32_t)sub;
        PG_ATX_OPT_STR(e, op, "description", of->description);
        o->offences[o->n_offences++] = of;
    }
    if ((rc = pg_atx__time(d, b, P, "occurredFrom", PG_ATX_OPTIONAL, &o->occurred_from)) ||
        (rc = pg_atx__time(d, b, P, "occurredTo", PG_ATX_OPTIONAL, &o->occurred_to)) ||
        (rc = pg_atx__time(d, b, P, "reportedAt", PG_ATX_OPTIONAL, &o->reported_at)))
        return rc;
    if (o->occurred_to && !o->occurred_from)
        return pg_atx__fail(d, P, "occurredTo", "given without occurredFrom");
    if (o->occurred_to && (o->occurred_to->seconds < o->occurred_from->seconds ||
                           (o->occurred_to->seconds == o->occurred_from->seconds &&
                            o->occurred_to->nanos < o->occurred_from->nanos)))
        return pg_atx__fail(d, P, "occurredTo", "is before occurredFrom");
    PG_ATX_CODE(b, P, "status", PG_ATX_OPTIONAL, pg_atx_occstatus, o->status);
    char *s;
    if ((rc = pg_atx__string(d, b, P, "summary", PG_ATX_OPTIONAL, 0, 4000, &s)))
        return rc;
    PG_ATX_SET(o->summary, s);
    return 0;
}

static int s_custody(pg_atx_dec *d, const json_t *b, pg_entity_update *eu)
{
    static const char *const P = "record.body";
    Polegate__Pole__V1__Custody *c =
        PG_PB_NEW(d->arena, Polegate__Pole__V1__Custody, polegate__pole__v1__custody);
    if (!c)
        return PG_ATX_NOMEM(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_CUSTODY;
    eu->custody = c;
    int rc;
    if ((rc = pg_atx__string(d, b, P, "reference", PG_ATX_REQUIRED, 0, 0, &c->reference)) ||
        (rc = pg_atx__time(d, b, P, "arrestedAt", PG_ATX_OPTIONAL, &c->arrested_at)) ||
        (rc = pg_atx__time(d, b, P, "arrivedAt", PG_ATX_OPTIONAL, &c->arrived_at)) ||
        (rc = pg_atx__time(d, b, P, "releasedAt", PG_ATX_OPTIONAL, &c->released_at)))
        return rc;
    PG_ATX_OPT_STR(b, P, "station", c->station);
    PG_ATX_CODE(b, P, "outcome", PG_ATX_OPTIONAL, pg_atx_outcome, c->outcome);
    return 0;
}

static int s_intelligence(pg_atx_dec *d, const json_t *b, pg_entity_update *eu)
{
    static const char *const P = "record.body";
    Polegate__Pole__V1__Intelligence *n =
        PG_PB_NEW(d->arena, Polegate__Pole__V1__Intelligence, polegate__pole__v1__intelligence);
    if (!n)
        return PG_ATX_NOMEM(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE;
    eu->intelligence = n;
    int rc;
    char *s;
    if ((rc = pg_atx__string(d, b, P, "reference", PG_ATX_REQUIRED, 0, 0, &n->reference)) ||
        (rc = pg_atx__time(d, b, P, "reportedAt", PG_ATX_OPTIONAL, &n->reported_at)) ||
        (rc = pg_atx__string(d, b, P, "text", PG_ATX_OPTIONAL, 0, 4000, &s)))
        return rc;
    PG_ATX_SET(n->text, s);
    json_t *g;
    if ((rc = pg_atx__get(d, b, P, "grading", JSON_OBJECT, PG_ATX_OPTIONAL, &g)))
        return rc;
    if (g) {
        static const char *const G = "record.body.grading";
        Polegate__Pole__V1__Grading *gr =
            PG_PB_NEW(d->arena, Polegate__Pole__V1__Grading, polegate__pole__v1__grading);
        if (!gr)
            return PG_ATX_NOMEM(d);
        json_int_t src;
        int present;
        if ((rc = pg_atx__int(d, g, G, "source", PG_ATX_REQUIRED, 1, 3, &src, &present)))
            return rc;
        gr->source = (int)src;
        PG_ATX_CODE(g, G, "intelligence", PG_ATX_REQUIRED, pg_atx_assessment, gr->intelligence);
        PG_ATX_CODE(g, G, "handling", PG_ATX_REQUIRED, pg_atx_handling, gr->handling);
        n->grading = gr;
    }
    return 0;
}

/* Indexed by EntityKind. */
static const pg_atx_body_fn s_bodies[] = {
    NULL,     s_person,    s_location,   s_vehicle, s_item,
    s_weapon, s_telephone, s_occurrence, s_custody, s_intelligence,
};

pg_atx_body_fn pg_atx__body(int kind)
{
    return kind > 0 && (size_t)kind < sizeof s_bodies / sizeof s_bodies[0] ? s_bodies[kind] : NULL;
}
