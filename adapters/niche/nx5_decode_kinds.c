/* NX5 decoder: the children of each Kind of Entity -> its canonical entity. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nx5_dec.h"
#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/geo.h"
#include "polegate/identity.h"
#include "polegate/roles.h"
#include "polegate/timeutil.h"

/* ------------------------------------------------------------ kinds */

/* BirthDate with Precision Day|Month|Year: unknown parts are 00, known parts not. */
static int s_birth_date(pg_nx5_dec *d, const pg_nx5_node *n, const char *label, pg_date **out)
{
    char path[128];
    pg_nx5__path(d, path, sizeof path, label);
    const char *prec = pg_nx5_attr_get(n, "Precision");
    int y, m, dd;
    if (!prec) {
        char p2[140];
        snprintf(p2, sizeof p2, "%s@Precision", path);
        return pg_nx5__fail(d, p2, "required (Day, Month or Year)");
    }
    int want = strcmp(prec, "Day") == 0     ? 3
               : strcmp(prec, "Month") == 0 ? 2
               : strcmp(prec, "Year") == 0  ? 1
                                            : 0;
    if (!want) {
        char p2[140];
        snprintf(p2, sizeof p2, "%s@Precision", path);
        return pg_nx5__fail(d, p2, "is not Day, Month or Year");
    }
    if (pg_nx5__date_shape(n->text, &y, &m, &dd) != 0 || y == 0)
        return pg_nx5__fail(d, path, "is not a date dd/mm/yyyy");
    int ok = want == 3   ? pg_date_valid(y, m, dd)
             : want == 2 ? dd == 0 && m >= 1 && m <= 12
                         : dd == 0 && m == 0;
    if (!ok)
        return pg_nx5__fail(d, path, "does not match Precision %s (%s)", prec,
                            want == 3   ? "a real date"
                            : want == 2 ? "00/mm/yyyy"
                                        : "00/00/yyyy");
    pg_date *date = PB(Date, date);
    if (!date)
        return pg_nx5__nomem(d);
    date->year = y, date->month = m, date->day = dd;
    *out = date;
    return 0;
}

/* Surname and up to 3 Given of a Person or an Alias. */
static int s_name(pg_nx5_dec *d, const pg_nx5_node *n, const char *prefix,
                  Polegate__Pole__V1__Name **out)
{
    Polegate__Pole__V1__Name *name = PB(Name, name);
    if (!name)
        return pg_nx5__nomem(d);
    const char *surname = pg_nx5__text(n, "Surname");
    if (pg_nx5__blank(surname)) { /* white space only is no surname: as if none */
        char path[128];
        snprintf(path, sizeof path, "%s %sSurname", d->where, prefix);
        return pg_nx5__fail(d, path, "required");
    }
    name->surname = pg_nx5__str(surname);
    name->n_forenames = pg_nx5__count(n, "Given");
    if (name->n_forenames) {
        name->forenames = pg_arena_alloc(d->a, name->n_forenames * sizeof(char *));
        if (!name->forenames)
            return pg_nx5__nomem(d);
        size_t k = 0;
        for (const pg_nx5_node *c = n->first; c; c = c->next)
            if (strcmp(c->name, "Given") == 0)
                name->forenames[k++] = pg_nx5__str(c->text);
    }
    *out = name;
    return 0;
}

static int s_decode_person(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Person *p = PB(Person, person);
    if (!p)
        return pg_nx5__nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
    eu->person = p;
    int rc = s_name(d, e, "", &p->name);
    if (rc)
        return rc;
    p->title = pg_nx5__str(pg_nx5__text(e, "Title"));
    p->place_of_birth = pg_nx5__str(pg_nx5__text(e, "BirthPlace"));
    p->occupation = pg_nx5__str(pg_nx5__text(e, "Occupation"));
    char path[128];
    const pg_nx5_node *c;
    const char *s;
    int v = 0;
    if ((c = pg_nx5__child_named(e, "BirthDate")) &&
        (rc = s_birth_date(d, c, "BirthDate", &p->date_of_birth)))
        return rc;
    if ((s = pg_nx5__text(e, "Gender"))) {
        pg_nx5__path(d, path, sizeof path, "Gender");
        if ((rc = pg_nx5__code(d, path, &pg_nx5_gender, s, &v)))
            return rc;
        p->sex = v;
    }
    if ((s = pg_nx5__text(e, "EthnicityOD"))) {
        pg_nx5__path(d, path, sizeof path, "EthnicityOD");
        if ((rc = pg_nx5__code(d, path, &pg_nx5_ethnicity_od, s, &v)))
            return rc;
        p->officer_defined_ethnicity = v;
    }
    if ((s = pg_nx5__text(e, "EthnicitySD"))) {
        v = pg_nx5_enum_value(&polegate__pole__v1__self_defined_ethnicity__descriptor, s);
        pg_nx5__path(d, path, sizeof path, "EthnicitySD");
        if (v < 0)
            return pg_nx5__fail(d, path, "is not a self-defined ethnicity code (16+1)");
        p->self_defined_ethnicity = v;
    }
    if ((s = pg_nx5__text(e, "Nationality"))) {
        const char *a3 = strlen(s) == 2 ? pg_country_alpha2_to_alpha3(s) : NULL;
        pg_nx5__path(d, path, sizeof path, "Nationality");
        if (!a3)
            return pg_nx5__fail(d, path, "is not an ISO 3166-1 alpha-2 country code");
        p->nationality = (char *)a3;
    }
    if ((s = pg_nx5__text(e, "PNCID"))) {
        char long_form[14], why[PG_ERRSTR_SIZE];
        pg_nx5__path(d, path, sizeof path, "PNCID");
        if (pg_pnc_short_to_long(s, d->ref_year, long_form, why, sizeof why) != 0)
            return pg_nx5__fail(d, path, "%s", why);
        if (!(p->pnc_id = pg_arena_strdup(d->a, long_form)))
            return pg_nx5__nomem(d);
    }
    if ((s = pg_nx5__text(e, "CRO"))) {
        char why[PG_ERRSTR_SIZE];
        pg_nx5__path(d, path, sizeof path, "CRO");
        if (pg_cro_validate(s, why, sizeof why) != 0)
            return pg_nx5__fail(d, path, "%s", why);
        p->cro_number = (char *)s;
    }
    if ((p->n_aliases = pg_nx5__count(e, "Alias"))) {
        p->aliases = pg_arena_alloc(d->a, p->n_aliases * sizeof(*p->aliases));
        if (!p->aliases)
            return pg_nx5__nomem(d);
    }
    if ((p->n_warning_markers = pg_nx5__count(e, "Warning"))) {
        p->warning_markers =
            pg_arena_alloc(d->a, p->n_warning_markers * sizeof(*p->warning_markers));
        if (!p->warning_markers)
            return pg_nx5__nomem(d);
    }
    size_t na = 0, nw = 0;
    for (c = e->first; c; c = c->next) {
        if (strcmp(c->name, "Warning") == 0) {
            v = pg_nx5_enum_value(&polegate__pole__v1__warning_marker__descriptor, c->text);
            char label[32];
            snprintf(label, sizeof label, "Warning[%zu]", nw + 1);
            pg_nx5__path(d, path, sizeof path, label);
            if (v < 0)
                return pg_nx5__fail(d, path, "is not a warning marker (table WM)");
            p->warning_markers[nw++] = v;
        } else if (strcmp(c->name, "Alias") == 0) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "Alias[%zu] ", na + 1);
            if ((rc = pg_nx5__check_children(d, c, "an Alias", pg_nx5__alias, NULL, prefix)))
                return rc;
            Polegate__Pole__V1__Alias *al = PB(Alias, alias);
            if (!al)
                return pg_nx5__nomem(d);
            if ((rc = s_name(d, c, prefix, &al->name)))
                return rc;
            const pg_nx5_node *bd = pg_nx5__child_named(c, "BirthDate");
            char label[48];
            snprintf(label, sizeof label, "%sBirthDate", prefix);
            if (bd && (rc = s_birth_date(d, bd, label, &al->date_of_birth)))
                return rc;
            p->aliases[na++] = al;
        }
    }
    return 0;
}

/* Easting/Northing: integers or one decimal place. */
static int s_metres(pg_nx5_dec *d, const char *label, const char *s, double *out)
{
    size_t n = strlen(s), dot = strcspn(s, ".");
    int ok = dot > 0 && dot <= 7 && pg_nx5__digits(s, dot) &&
             (dot == n || (n == dot + 2 && pg_nx5__digits(s + dot + 1, 1)));
    if (!ok) {
        char path[128];
        pg_nx5__path(d, path, sizeof path, label);
        return pg_nx5__fail(d, path, "must be metres as an integer or with one decimal place");
    }
    *out = strtod(s, NULL);
    return 0;
}

static int s_decode_address(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Location *l = PB(Location, location);
    if (!l)
        return pg_nx5__nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION;
    eu->location = l;
    char **parts[4] = {&l->premises, &l->street, &l->locality, &l->town};
    size_t nl = 0;
    const pg_nx5_node *last_line = NULL;
    for (const pg_nx5_node *c = e->first; c; c = c->next)
        if (strcmp(c->name, "Line") == 0) {
            *parts[nl++] = pg_nx5__str(c->text);
            last_line = c;
        }
    char path[128];
    if (last_line && last_line->text_len == 0) {
        char label[16];
        snprintf(label, sizeof label, "Line[%zu]", nl);
        pg_nx5__path(d, path, sizeof path, label);
        return pg_nx5__fail(d, path,
                            "a trailing address part that is not given must be left out, "
                            "not written as an empty Line");
    }
    const char *s;
    if ((s = pg_nx5__text(e, "Postcode"))) {
        char pc[9], why[PG_ERRSTR_SIZE];
        pg_nx5__path(d, path, sizeof path, "Postcode");
        if (pg_postcode_normalise(s, pc, why, sizeof why) != 0)
            return pg_nx5__fail(d, path, "%s", why);
        if (!(l->postcode = pg_arena_strdup(d->a, pc)))
            return pg_nx5__nomem(d);
    }
    if ((s = pg_nx5__text(e, "UPRN"))) {
        uint64_t u;
        pg_nx5__path(d, path, sizeof path, "UPRN");
        if (pg_nx5__plain_uint(s, 12, &u) != 0 || u == 0)
            return pg_nx5__fail(d, path, "must be 1-12 digits without leading zeros");
        l->uprn = (char *)s;
    }
    const char *es = pg_nx5__text(e, "Easting"), *ns = pg_nx5__text(e, "Northing");
    if (!es != !ns) {
        pg_nx5__path(d, path, sizeof path, es ? "Northing" : "Easting");
        return pg_nx5__fail(d, path, "required with %s", es ? "Easting" : "Northing");
    }
    if (es) {
        double east, north, lat, lon;
        int rc;
        if ((rc = s_metres(d, "Easting", es, &east)) || (rc = s_metres(d, "Northing", ns, &north)))
            return rc;
        char why[PG_ERRSTR_SIZE];
        /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): s_metres set both or failed */
        rc = pg_geo_bng_to_wgs84(east, north, &lat, &lon, why, sizeof why);
        if (rc == PG_EINVALID) {
            pg_nx5__path(d, path, sizeof path, "Easting/Northing");
            return pg_nx5__fail(d, path, "%s", why);
        }
        if (rc)
            return pg_errf(rc, d->errstr, d->errstr_size, "%s", why);
        Polegate__Pole__V1__GridReference *g = PB(GridReference, grid_reference);
        Polegate__Pole__V1__GeoPoint *gp = PB(GeoPoint, geo_point);
        if (!g || !gp)
            return pg_nx5__nomem(d);
        g->easting = east, g->northing = north;
        /* 1e-7 degrees is about a centimetre: more digits would only be noise. */
        gp->lat = round(lat * 1e7) / 1e7;
        gp->lon = round(lon * 1e7) / 1e7;
        l->grid = g, l->geo = gp;
    }
    l->description = pg_nx5__str(pg_nx5__text(e, "Description"));
    return 0;
}

static int s_decode_vehicle(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Vehicle *v = PB(Vehicle, vehicle);
    if (!v)
        return pg_nx5__nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE;
    eu->vehicle = v;
    char path[128];
    const char *s;
    int rc, code = 0;
    if ((s = pg_nx5__text(e, "VRM"))) {
        char vrm[16], why[PG_ERRSTR_SIZE];
        pg_nx5__path(d, path, sizeof path, "VRM");
        if (pg_vrm_normalise(s, vrm, why, sizeof why) != 0)
            return pg_nx5__fail(d, path, "%s", why);
        if (!(v->vrm = pg_arena_strdup(d->a, vrm)))
            return pg_nx5__nomem(d);
    }
    v->make = pg_nx5__str(pg_nx5__text(e, "Make"));
    v->model = pg_nx5__str(pg_nx5__text(e, "Model"));
    v->vin = pg_nx5__str(pg_nx5__text(e, "VIN"));
    if ((s = pg_nx5__text(e, "Colour"))) {
        pg_nx5__path(d, path, sizeof path, "Colour");
        if ((rc = pg_nx5__code(d, path, &pg_nx5_colour, s, &code)))
            return rc;
        v->colour = code;
    }
    if ((s = pg_nx5__text(e, "Year"))) {
        pg_nx5__path(d, path, sizeof path, "Year");
        if (strlen(s) != 4 || !pg_nx5__digits(s, 4) || s[0] == '0')
            return pg_nx5__fail(d, path, "must be a four-digit year");
        v->year = pg_nx5__num(s, 4);
    }
    return 0;
}

/* Value: pence, a whole number; *given is 0 when there is none. */
static int s_pence(pg_nx5_dec *d, const pg_nx5_node *e, uint64_t *pence, int *given)
{
    const char *s = pg_nx5__text(e, "Value");
    *given = s != NULL;
    if (s && pg_nx5__plain_uint(s, 18, pence) != 0) {
        char path[128];
        pg_nx5__path(d, path, sizeof path, "Value");
        return pg_nx5__fail(d, path, "must be a whole number of pence");
    }
    return 0;
}

static int s_decode_property(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    char path[128];
    const char *cat = pg_nx5__text(e, "Category");
    int rc, code = 0, given;
    uint64_t pence = 0;
    pg_nx5__path(d, path, sizeof path, "Category");
    if (cat && strncmp(cat, "WPN-", 4) == 0) {
        if ((rc = pg_nx5__code(d, path, &pg_nx5_weapon_category, cat, &code)) ||
            (rc = s_pence(d, e, &pence, &given)))
            return rc;
        Polegate__Pole__V1__Weapon *w = PB(Weapon, weapon);
        if (!w)
            return pg_nx5__nomem(d);
        eu->kind = EK(WEAPON);
        eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_WEAPON;
        eu->weapon = w;
        w->category = code;
        w->description = pg_nx5__str(pg_nx5__text(e, "Description"));
        w->serial_number = pg_nx5__str(pg_nx5__text(e, "Serial"));
        /* A weapon has no value in the canonical model: Value is checked like an item's,
         * then dropped (mapping-nx5.md). */
    } else {
        if ((cat && (rc = pg_nx5__code(d, path, &pg_nx5_item_category, cat, &code))) ||
            (rc = s_pence(d, e, &pence, &given)))
            return rc;
        Polegate__Pole__V1__Item *it = PB(Item, item);
        if (!it)
            return pg_nx5__nomem(d);
        eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM;
        eu->item = it;
        it->category = code;
        it->description = pg_nx5__str(pg_nx5__text(e, "Description"));
        it->serial_number = pg_nx5__str(pg_nx5__text(e, "Serial"));
        if (given) {
            Polegate__Pole__V1__Money *m = PB(Money, money);
            if (!m)
                return pg_nx5__nomem(d);
            m->currency = "GBP";
            m->minor_units = (int64_t)pence;
            it->value = m;
        }
    }
    return 0;
}

static int s_decode_telephone(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Telephone *t = PB(Telephone, telephone);
    if (!t)
        return pg_nx5__nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE;
    eu->telephone = t;
    const char *s = pg_nx5__text(e, "Number");
    if (s) {
        char e164[17];
        /* A number that is not a recognisable UK or international one stays as entered. */
        if (pg_phone_to_e164(s, e164, NULL, 0) == 0) {
            if (!(t->number = pg_arena_strdup(d->a, e164)))
                return pg_nx5__nomem(d);
        } else {
            t->number = (char *)s;
        }
    }
    t->imei = pg_nx5__str(pg_nx5__text(e, "IMEI"));
    if ((s = pg_nx5__text(e, "Type"))) {
        char path[128];
        int code = 0, rc;
        pg_nx5__path(d, path, sizeof path, "Type");
        if ((rc = pg_nx5__code(d, path, &pg_nx5_phone_type, s, &code)))
            return rc;
        t->kind = code;
    }
    return 0;
}

/* Offence Code "class.subclass": class 1-999, subclass 0-99, no padding. */
static int s_offence(pg_nx5_dec *d, const pg_nx5_node *c, size_t i,
                     Polegate__Pole__V1__Offence **out)
{
    char path[128], label[32];
    snprintf(label, sizeof label, "Offence[%zu]@Code", i);
    pg_nx5__path(d, path, sizeof path, label);
    const char *code = pg_nx5_attr_get(c, "Code");
    if (!code)
        return pg_nx5__fail(d, path, "required (Home Office class.subclass, e.g. 28.1)");
    const char *dot = strchr(code, '.');
    uint64_t cls, sub;
    if (!dot || (size_t)(dot - code) > 3 || !dot[1])
        return pg_nx5__fail(d, path, "is not a Home Office class.subclass");
    char cls_s[4];
    memcpy(cls_s, code, (size_t)(dot - code));
    cls_s[dot - code] = 0;
    if (pg_nx5__plain_uint(cls_s, 3, &cls) != 0 || pg_nx5__plain_uint(dot + 1, 2, &sub) != 0 ||
        cls == 0)
        return pg_nx5__fail(d, path,
                            "is not a Home Office class.subclass (class 1-999, subclass 0-99, "
                            "no padding)");
    Polegate__Pole__V1__Offence *o = PB(Offence, offence);
    if (!o)
        return pg_nx5__nomem(d);
    o->ho_class = (int32_t)cls;
    o->ho_subclass = (int32_t)sub;
    o->description = pg_nx5__str(c->text);
    *out = o;
    return 0;
}

/* The local-time child name, or nothing when absent. */
static int s_time_child(pg_nx5_dec *d, const pg_nx5_node *e, const char *name, pg_timestamp **out)
{
    const char *s = pg_nx5__text(e, name);
    if (!s)
        return 0;
    char path[128];
    pg_nx5__path(d, path, sizeof path, name);
    return pg_nx5__local_time(d, path, s, out, NULL);
}

static int s_not_before(pg_nx5_dec *d, const char *later, const pg_timestamp *a,
                        const char *earlier, const pg_timestamp *b)
{
    if (!a || !b || a->seconds >= b->seconds)
        return 0;
    char path[128];
    pg_nx5__path(d, path, sizeof path, later);
    return pg_nx5__fail(d, path, "is before %s", earlier);
}

static int s_decode_occurrence(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Occurrence *o = PB(Occurrence, occurrence);
    if (!o)
        return pg_nx5__nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE;
    eu->occurrence = o;
    char path[128];
    const char *s;
    int rc, code = 0;
    if (pg_nx5__blank(s = pg_nx5__text(e, "Reference"))) {
        pg_nx5__path(d, path, sizeof path, "Reference");
        return pg_nx5__fail(d, path, "required");
    }
    o->reference = (char *)s;
    if ((s = pg_nx5__text(e, "Type"))) {
        pg_nx5__path(d, path, sizeof path, "Type");
        if ((rc = pg_nx5__code(d, path, &pg_nx5_occurrence_type, s, &code)))
            return rc;
        o->kind = code;
    }
    if ((o->n_offences = pg_nx5__count(e, "Offence"))) {
        if (o->kind == POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_INCIDENT) {
            pg_nx5__path(d, path, sizeof path, "Offence[1]");
            return pg_nx5__fail(d, path, "offences are for Type Crime, not Incident");
        }
        o->offences = pg_arena_alloc(d->a, o->n_offences * sizeof(*o->offences));
        if (!o->offences)
            return pg_nx5__nomem(d);
        size_t k = 0;
        for (const pg_nx5_node *c = e->first; c; c = c->next) {
            if (strcmp(c->name, "Offence") != 0)
                continue;
            if ((rc = s_offence(d, c, k + 1, &o->offences[k])))
                return rc;
            k++;
        }
    }
    if ((rc = s_time_child(d, e, "From", &o->occurred_from)) ||
        (rc = s_time_child(d, e, "To", &o->occurred_to)) ||
        (rc = s_time_child(d, e, "Reported", &o->reported_at)) ||
        (rc = s_not_before(d, "To", o->occurred_to, "From", o->occurred_from)))
        return rc;
    if ((s = pg_nx5__text(e, "Status"))) {
        pg_nx5__path(d, path, sizeof path, "Status");
        if ((rc = pg_nx5__code(d, path, &pg_nx5_status, s, &code)))
            return rc;
        o->status = code;
    }
    o->summary = pg_nx5__str(pg_nx5__text(e, "Summary"));
    return 0;
}

static int s_decode_custody(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Custody *c = PB(Custody, custody);
    if (!c)
        return pg_nx5__nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_CUSTODY;
    eu->custody = c;
    int rc, code = 0;
    c->reference = pg_nx5__str(pg_nx5__text(e, "Reference"));
    c->station = pg_nx5__str(pg_nx5__text(e, "Station"));
    if ((rc = s_time_child(d, e, "Arrested", &c->arrested_at)) ||
        (rc = s_time_child(d, e, "Arrived", &c->arrived_at)) ||
        (rc = s_time_child(d, e, "Released", &c->released_at)) ||
        (rc = s_not_before(d, "Released", c->released_at, "Arrived", c->arrived_at)))
        return rc;
    const char *s = pg_nx5__text(e, "Outcome");
    if (s) {
        char path[128];
        pg_nx5__path(d, path, sizeof path, "Outcome");
        if ((rc = pg_nx5__code(d, path, &pg_nx5_outcome, s, &code)))
            return rc;
        c->outcome = code;
    }
    return 0;
}

static int s_decode_intel(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Intelligence *in = PB(Intelligence, intelligence);
    if (!in)
        return pg_nx5__nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE;
    eu->intelligence = in;
    in->reference = pg_nx5__str(pg_nx5__text(e, "Reference"));
    in->text = pg_nx5__str(pg_nx5__text(e, "Text"));
    int rc = s_time_child(d, e, "Reported", &in->reported_at);
    if (rc)
        return rc;
    const pg_nx5_node *g = pg_nx5__child_named(e, "Grading");
    if (g) {
        static const struct {
            const char *attr;
            const pg_nx5_table *table;
        } parts[] = {{"Source", &pg_nx5_grading_source},
                     {"Intel", &pg_nx5_grading_intel},
                     {"Handling", &pg_nx5_handling}};
        int v[3] = {0, 0, 0};
        for (int i = 0; i < 3; i++) {
            char path[128], label[32];
            snprintf(label, sizeof label, "Grading@%s", parts[i].attr);
            pg_nx5__path(d, path, sizeof path, label);
            const char *s = pg_nx5_attr_get(g, parts[i].attr);
            if (!s)
                return pg_nx5__fail(d, path, "required (3x5x2 grading)");
            if ((rc = pg_nx5__code(d, path, parts[i].table, s, &v[i])))
                return rc;
        }
        Polegate__Pole__V1__Grading *gr = PB(Grading, grading);
        if (!gr)
            return pg_nx5__nomem(d);
        gr->source = v[0], gr->intelligence = v[1], gr->handling = v[2];
        in->grading = gr;
    }
    return 0;
}

static const pg_nx5_body_fn s_bodies[] = {
    s_decode_person,    s_decode_address,    s_decode_vehicle, s_decode_property,
    s_decode_telephone, s_decode_occurrence, s_decode_custody, s_decode_intel};

pg_nx5_body_fn pg_nx5__body(size_t i)
{
    return i < sizeof s_bodies / sizeof s_bodies[0] ? s_bodies[i] : NULL;
}
