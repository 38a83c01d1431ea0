/* NX5 document -> canonical changes: every rule of docs/formats/niche-nx5.md checked. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nx5.h"
#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/geo.h"
#include "polegate/identity.h"
#include "polegate/roles.h"
#include "polegate/timeutil.h"

#define PB(type, lower) PG_PB_NEW(d->a, Polegate__Pole__V1__##type, polegate__pole__v1__##lower)
#define EK(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x

/* One Entity element, remembered for the links: what kind its GID is and the
 * marking a link from it carries. */
typedef struct s_known {
    const char *gid;
    int kind;
    int kind_certain; /* 0: a Property Delete, which does not say item or weapon */
    size_t pos;       /* element position in the document */
    size_t entity_no; /* Entity[n] */
    const char *nx5_kind;
    pg_entity_update *eu;
} s_known;

typedef struct s_dec {
    pg_arena *a;
    char *errstr;
    size_t errstr_size;
    const char *force;
    const char *batch;
    char elem[32];  /* "Entity[3]": for the element's own attributes */
    char where[64]; /* "Entity[3] GID=7F3A9C2E4B1D0A66": for its children */
    int ref_year;   /* year of Modified: the PNC century rule */
    s_known *known;
    size_t n_known;
    size_t *pos_of; /* element position of each change this call added */
} s_dec;

static int s_fail(s_dec *d, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "<path>: <rule>" */
static int s_fail(s_dec *d, const char *path, const char *fmt, ...)
{
    char msg[PG_ERRSTR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pg_errf(PG_EINVALID, d->errstr, d->errstr_size, "%s: %s", path, msg);
}

static int s_nomem(s_dec *d)
{
    return pg_errf(PG_ENOMEM, d->errstr, d->errstr_size, "NX5: out of memory");
}

/* ------------------------------------------------------------ small value rules */

static int s_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int s_num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* A decimal integer without sign or leading zeros, at most max_digits digits. */
static int s_plain_uint(const char *s, size_t max_digits, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > max_digits || !s_digits(s, n) || (n > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    *out = v;
    return 0;
}

static int s_is_gid(const char *s)
{
    if (strlen(s) != 16)
        return 0;
    for (int i = 0; i < 16; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return 0;
    return 1;
}

/* "dd/mm/yyyy" shape only; parts may be 00. */
static int s_date_shape(const char *s, int *y, int *m, int *dd)
{
    if (strlen(s) != 10 || !s_digits(s, 2) || s[2] != '/' || !s_digits(s + 3, 2) || s[5] != '/' ||
        !s_digits(s + 6, 4))
        return -1;
    *dd = s_num(s, 2);
    *m = s_num(s + 3, 2);
    *y = s_num(s + 6, 4);
    return 0;
}

static int s_date(s_dec *d, const char *path, const char *s, pg_date **out)
{
    int y, m, dd;
    if (s_date_shape(s, &y, &m, &dd) != 0 || !pg_date_valid(y, m, dd))
        return s_fail(d, path, "'%s' is not a valid date dd/mm/yyyy", s);
    pg_date *date = PB(Date, date);
    if (!date)
        return s_nomem(d);
    date->year = y, date->month = m, date->day = dd;
    *out = date;
    return 0;
}

/* UK local "dd/mm/yyyy HH:MM:SS" -> instant. *year (may be NULL) gets the local year. */
static int s_local_time(s_dec *d, const char *path, const char *s, pg_timestamp **out, int *year)
{
    int y, m, dd;
    char date[11] = "";
    if (strlen(s) == 19)
        memcpy(date, s, 10);
    if (strlen(s) != 19 || s_date_shape(date, &y, &m, &dd) != 0 || s[10] != ' ' ||
        !s_digits(s + 11, 2) || s[13] != ':' || !s_digits(s + 14, 2) || s[16] != ':' ||
        !s_digits(s + 17, 2))
        return s_fail(d, path, "'%s' is not a local time dd/mm/yyyy HH:MM:SS", s);
    pg_instant t;
    char why[PG_ERRSTR_SIZE];
    if (pg_london_to_instant(y, m, dd, s_num(s + 11, 2), s_num(s + 14, 2), s_num(s + 17, 2), &t,
                             why, sizeof why) != 0)
        return s_fail(d, path, "%s", why);
    pg_timestamp *ts = PG_PB_NEW(d->a, pg_timestamp, google__protobuf__timestamp);
    if (!ts)
        return s_nomem(d);
    ts->seconds = t.seconds;
    ts->nanos = t.nanos;
    *out = ts;
    if (year)
        *year = y;
    return 0;
}

static int s_code(s_dec *d, const char *path, const pg_nx5_table *t, const char *s, int *out)
{
    int v = pg_nx5_code_value(t, s);
    if (v < 0)
        return s_fail(d, path, "'%s' is not a valid %s", s, t->what);
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ element structure */

enum { S_TEXT, S_LINE, S_EMPTY, S_GROUP };

/* More than any kind's children plus the common ones. */
#define S_MAX_CHILDREN 24

typedef struct s_child {
    const char *name;
    int max;              /* 0: any number */
    int content;          /* S_TEXT: non-empty text; S_LINE: text, may be empty;
                             S_EMPTY: attributes only; S_GROUP: child elements */
    const char *attrs[3]; /* the attributes it may have */
} s_child;

static const s_child s_person[] = {{"Surname", 1, S_TEXT, {0}},
                                   {"Given", 3, S_TEXT, {0}},
                                   {"Title", 1, S_TEXT, {0}},
                                   {"BirthDate", 1, S_TEXT, {"Precision"}},
                                   {"BirthPlace", 1, S_TEXT, {0}},
                                   {"Gender", 1, S_TEXT, {0}},
                                   {"EthnicityOD", 1, S_TEXT, {0}},
                                   {"EthnicitySD", 1, S_TEXT, {0}},
                                   {"Nationality", 1, S_TEXT, {0}},
                                   {"PNCID", 1, S_TEXT, {0}},
                                   {"CRO", 1, S_TEXT, {0}},
                                   {"Alias", 0, S_GROUP, {0}},
                                   {"Warning", 0, S_TEXT, {0}},
                                   {"Occupation", 1, S_TEXT, {0}},
                                   {NULL, 0, 0, {0}}};
static const s_child s_alias[] = {{"Surname", 1, S_TEXT, {0}},
                                  {"Given", 3, S_TEXT, {0}},
                                  {"BirthDate", 1, S_TEXT, {"Precision"}},
                                  {NULL, 0, 0, {0}}};
static const s_child s_address[] = {{"Line", 4, S_LINE, {0}},
                                    {"Postcode", 1, S_TEXT, {0}},
                                    {"UPRN", 1, S_TEXT, {0}},
                                    {"Easting", 1, S_TEXT, {0}},
                                    {"Northing", 1, S_TEXT, {0}},
                                    {"Description", 1, S_TEXT, {0}},
                                    {NULL, 0, 0, {0}}};
static const s_child s_vehicle[] = {{"VRM", 1, S_TEXT, {0}},   {"Make", 1, S_TEXT, {0}},
                                    {"Model", 1, S_TEXT, {0}}, {"Colour", 1, S_TEXT, {0}},
                                    {"VIN", 1, S_TEXT, {0}},   {"Year", 1, S_TEXT, {0}},
                                    {NULL, 0, 0, {0}}};
static const s_child s_property[] = {{"Category", 1, S_TEXT, {0}},
                                     {"Description", 1, S_TEXT, {0}},
                                     {"Serial", 1, S_TEXT, {0}},
                                     {"Value", 1, S_TEXT, {0}},
                                     {NULL, 0, 0, {0}}};
static const s_child s_telephone[] = {{"Number", 1, S_TEXT, {0}},
                                      {"Type", 1, S_TEXT, {0}},
                                      {"IMEI", 1, S_TEXT, {0}},
                                      {NULL, 0, 0, {0}}};
static const s_child s_occurrence[] = {
    {"Reference", 1, S_TEXT, {0}}, {"Type", 1, S_TEXT, {0}},    {"Offence", 0, S_LINE, {"Code"}},
    {"From", 1, S_TEXT, {0}},      {"To", 1, S_TEXT, {0}},      {"Reported", 1, S_TEXT, {0}},
    {"Status", 1, S_TEXT, {0}},    {"Summary", 1, S_TEXT, {0}}, {NULL, 0, 0, {0}}};
static const s_child s_custody[] = {{"Reference", 1, S_TEXT, {0}},
                                    {"Arrested", 1, S_TEXT, {0}},
                                    {"Arrived", 1, S_TEXT, {0}},
                                    {"Released", 1, S_TEXT, {0}},
                                    {"Station", 1, S_TEXT, {0}},
                                    {"Outcome", 1, S_TEXT, {0}},
                                    {NULL, 0, 0, {0}}};
static const s_child s_intel[] = {{"Reference", 1, S_TEXT, {0}},
                                  {"Reported", 1, S_TEXT, {0}},
                                  {"Text", 1, S_TEXT, {0}},
                                  {"Grading", 1, S_EMPTY, {"Source", "Intel", "Handling"}},
                                  {NULL, 0, 0, {0}}};
/* Children of any Entity, whatever its Kind. */
static const s_child s_common[] = {
    {"Caveat", 1, S_TEXT, {0}}, {"MergedFrom", 0, S_EMPTY, {"GID"}}, {NULL, 0, 0, {0}}};

typedef struct s_kind {
    const char *nx5;
    int kind; /* Property: ITEM until its Category says WEAPON */
    const s_child *children;
} s_kind;

static const s_kind s_kinds[] = {
    {"Person", EK(PERSON), s_person},          {"Address", EK(LOCATION), s_address},
    {"Vehicle", EK(VEHICLE), s_vehicle},       {"Property", EK(ITEM), s_property},
    {"Telephone", EK(TELEPHONE), s_telephone}, {"Occurrence", EK(OCCURRENCE), s_occurrence},
    {"Custody", EK(CUSTODY), s_custody},       {"IntelReport", EK(INTELLIGENCE), s_intel},
};

static const s_child *s_spec(const s_child *spec, const char *name)
{
    for (; spec && spec->name; spec++)
        if (strcmp(spec->name, name) == 0)
            return spec;
    return NULL;
}

static int s_check_attrs(s_dec *d, const char *path, const pg_nx5_node *n,
                         const char *const *allowed, size_t n_allowed)
{
    for (size_t i = 0; i < n->n_attrs; i++) {
        size_t k = 0;
        while (k < n_allowed && allowed[k] && strcmp(allowed[k], n->attrs[i].name) != 0)
            k++;
        if (k == n_allowed || !allowed[k])
            return s_fail(d, path, "unknown attribute '%s'", n->attrs[i].name);
    }
    return 0;
}

/* The label of the i-th (1-based) child called name: "Given[2]", or "Surname" for
 * an element that cannot repeat. */
static void s_label(char *out, size_t size, const char *prefix, const s_child *spec, size_t i)
{
    if (spec->max == 1)
        snprintf(out, size, "%s%s", prefix, spec->name);
    else
        snprintf(out, size, "%s%s[%zu]", prefix, spec->name, i);
}

/* Structure of an element's children against spec (and also_spec): known names,
 * how many, text or attributes only, which attributes. prefix is prepended to child
 * labels ("Alias[1] "). */
static int s_check_children(s_dec *d, const pg_nx5_node *parent, const char *what,
                            const s_child *spec, const s_child *also_spec, const char *prefix)
{
    char path[128];
    if (parent->stray_text) {
        snprintf(path, sizeof path, "%s%s%s", d->where, prefix[0] ? " " : "", prefix);
        size_t len = strlen(path);
        if (len && path[len - 1] == ' ')
            path[len - 1] = 0;
        return s_fail(d, path, "text is not allowed between elements");
    }
    /* How many of each name so far, by position in spec then also_spec: one pass,
     * however many children (a document may hold hundreds of thousands). */
    size_t seen[S_MAX_CHILDREN] = {0};
    size_t n_spec = 0;
    while (spec[n_spec].name)
        n_spec++;
    for (const pg_nx5_node *c = parent->first; c; c = c->next) {
        const s_child *sp = s_spec(spec, c->name);
        size_t slot = sp ? (size_t)(sp - spec) : 0;
        if (!sp && (sp = s_spec(also_spec, c->name)))
            slot = n_spec + (size_t)(sp - also_spec);
        if (!sp) {
            snprintf(path, sizeof path, "%s %s%s", d->where, prefix, c->name);
            return s_fail(d, path, "unknown element in %s", what);
        }
        size_t i = ++seen[slot];
        char label[64];
        s_label(label, sizeof label, prefix, sp, i);
        snprintf(path, sizeof path, "%s %s", d->where, label);
        if (sp->max && i > (size_t)sp->max) {
            if (sp->max == 1)
                return s_fail(d, path, "given more than once");
            return s_fail(d, path, "at most %d %s elements", sp->max, sp->name);
        }
        int rc = s_check_attrs(d, path, c, sp->attrs, sizeof sp->attrs / sizeof sp->attrs[0]);
        if (rc)
            return rc;
        if (sp->content == S_GROUP) {
            if (c->text)
                return s_fail(d, path, "must hold elements, not text");
        } else if (!c->text) {
            return s_fail(d, path, "must hold text, not elements");
        } else if (sp->content == S_EMPTY && c->text_len) {
            return s_fail(d, path, "must be empty");
        } else if (sp->content == S_TEXT && c->text_len == 0) {
            return s_fail(d, path, "must not be empty");
        }
    }
    return 0;
}

static const pg_nx5_node *s_child_named(const pg_nx5_node *n, const char *name)
{
    for (const pg_nx5_node *c = n->first; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* Text of the only child called name, or NULL when absent. */
static const char *s_text(const pg_nx5_node *n, const char *name)
{
    const pg_nx5_node *c = s_child_named(n, name);
    return c ? c->text : NULL;
}

static size_t s_count(const pg_nx5_node *n, const char *name)
{
    size_t k = 0;
    for (const pg_nx5_node *c = n->first; c; c = c->next)
        k += strcmp(c->name, name) == 0;
    return k;
}

static char *s_str(const char *s)
{
    return (char *)(s ? s : "");
}

static void s_path(s_dec *d, char *out, size_t size, const char *label)
{
    snprintf(out, size, "%s %s", d->where, label);
}

/* ------------------------------------------------------------ kinds */

/* BirthDate with Precision Day|Month|Year: unknown parts are 00, known parts not. */
static int s_birth_date(s_dec *d, const pg_nx5_node *n, const char *label, pg_date **out)
{
    char path[128];
    s_path(d, path, sizeof path, label);
    const char *prec = pg_nx5_attr_get(n, "Precision");
    int y, m, dd;
    if (!prec) {
        char p2[140];
        snprintf(p2, sizeof p2, "%s@Precision", path);
        return s_fail(d, p2, "required (Day, Month or Year)");
    }
    int want = strcmp(prec, "Day") == 0     ? 3
               : strcmp(prec, "Month") == 0 ? 2
               : strcmp(prec, "Year") == 0  ? 1
                                            : 0;
    if (!want) {
        char p2[140];
        snprintf(p2, sizeof p2, "%s@Precision", path);
        return s_fail(d, p2, "'%s' is not Day, Month or Year", prec);
    }
    if (s_date_shape(n->text, &y, &m, &dd) != 0 || y == 0)
        return s_fail(d, path, "'%s' is not a date dd/mm/yyyy", n->text);
    int ok = want == 3   ? pg_date_valid(y, m, dd)
             : want == 2 ? dd == 0 && m >= 1 && m <= 12
                         : dd == 0 && m == 0;
    if (!ok)
        return s_fail(d, path, "'%s' does not match Precision %s (%s)", n->text, prec,
                      want == 3   ? "a real date"
                      : want == 2 ? "00/mm/yyyy"
                                  : "00/00/yyyy");
    pg_date *date = PB(Date, date);
    if (!date)
        return s_nomem(d);
    date->year = y, date->month = m, date->day = dd;
    *out = date;
    return 0;
}

/* Surname and up to 3 Given of a Person or an Alias. */
static int s_name(s_dec *d, const pg_nx5_node *n, const char *prefix,
                  Polegate__Pole__V1__Name **out)
{
    Polegate__Pole__V1__Name *name = PB(Name, name);
    if (!name)
        return s_nomem(d);
    const char *surname = s_text(n, "Surname");
    if (!surname) {
        char path[128];
        snprintf(path, sizeof path, "%s %sSurname", d->where, prefix);
        return s_fail(d, path, "required");
    }
    name->surname = s_str(surname);
    name->n_forenames = s_count(n, "Given");
    if (name->n_forenames) {
        name->forenames = pg_arena_alloc(d->a, name->n_forenames * sizeof(char *));
        if (!name->forenames)
            return s_nomem(d);
        size_t k = 0;
        for (const pg_nx5_node *c = n->first; c; c = c->next)
            if (strcmp(c->name, "Given") == 0)
                name->forenames[k++] = s_str(c->text);
    }
    *out = name;
    return 0;
}

static int s_decode_person(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Person *p = PB(Person, person);
    if (!p)
        return s_nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
    eu->person = p;
    int rc = s_name(d, e, "", &p->name);
    if (rc)
        return rc;
    p->title = s_str(s_text(e, "Title"));
    p->place_of_birth = s_str(s_text(e, "BirthPlace"));
    p->occupation = s_str(s_text(e, "Occupation"));
    char path[128];
    const pg_nx5_node *c;
    const char *s;
    int v = 0;
    if ((c = s_child_named(e, "BirthDate")) &&
        (rc = s_birth_date(d, c, "BirthDate", &p->date_of_birth)))
        return rc;
    if ((s = s_text(e, "Gender"))) {
        s_path(d, path, sizeof path, "Gender");
        if ((rc = s_code(d, path, &pg_nx5_gender, s, &v)))
            return rc;
        p->sex = v;
    }
    if ((s = s_text(e, "EthnicityOD"))) {
        s_path(d, path, sizeof path, "EthnicityOD");
        if ((rc = s_code(d, path, &pg_nx5_ethnicity_od, s, &v)))
            return rc;
        p->officer_defined_ethnicity = v;
    }
    if ((s = s_text(e, "EthnicitySD"))) {
        v = pg_nx5_enum_value(&polegate__pole__v1__self_defined_ethnicity__descriptor, s);
        s_path(d, path, sizeof path, "EthnicitySD");
        if (v < 0)
            return s_fail(d, path, "'%s' is not a self-defined ethnicity code (16+1)", s);
        p->self_defined_ethnicity = v;
    }
    if ((s = s_text(e, "Nationality"))) {
        const char *a3 = strlen(s) == 2 ? pg_country_alpha2_to_alpha3(s) : NULL;
        s_path(d, path, sizeof path, "Nationality");
        if (!a3)
            return s_fail(d, path, "'%s' is not an ISO 3166-1 alpha-2 country code", s);
        p->nationality = (char *)a3;
    }
    if ((s = s_text(e, "PNCID"))) {
        char long_form[14], why[PG_ERRSTR_SIZE];
        s_path(d, path, sizeof path, "PNCID");
        if (pg_pnc_short_to_long(s, d->ref_year, long_form, why, sizeof why) != 0)
            return s_fail(d, path, "%s", why);
        if (!(p->pnc_id = pg_arena_strdup(d->a, long_form)))
            return s_nomem(d);
    }
    if ((s = s_text(e, "CRO"))) {
        char why[PG_ERRSTR_SIZE];
        s_path(d, path, sizeof path, "CRO");
        if (pg_cro_validate(s, why, sizeof why) != 0)
            return s_fail(d, path, "%s", why);
        p->cro_number = (char *)s;
    }
    if ((p->n_aliases = s_count(e, "Alias"))) {
        p->aliases = pg_arena_alloc(d->a, p->n_aliases * sizeof(*p->aliases));
        if (!p->aliases)
            return s_nomem(d);
    }
    if ((p->n_warning_markers = s_count(e, "Warning"))) {
        p->warning_markers =
            pg_arena_alloc(d->a, p->n_warning_markers * sizeof(*p->warning_markers));
        if (!p->warning_markers)
            return s_nomem(d);
    }
    size_t na = 0, nw = 0;
    for (c = e->first; c; c = c->next) {
        if (strcmp(c->name, "Warning") == 0) {
            v = pg_nx5_enum_value(&polegate__pole__v1__warning_marker__descriptor, c->text);
            char label[32];
            snprintf(label, sizeof label, "Warning[%zu]", nw + 1);
            s_path(d, path, sizeof path, label);
            if (v < 0)
                return s_fail(d, path, "'%s' is not a warning marker (table WM)", c->text);
            p->warning_markers[nw++] = v;
        } else if (strcmp(c->name, "Alias") == 0) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "Alias[%zu] ", na + 1);
            if ((rc = s_check_children(d, c, "an Alias", s_alias, NULL, prefix)))
                return rc;
            Polegate__Pole__V1__Alias *al = PB(Alias, alias);
            if (!al)
                return s_nomem(d);
            if ((rc = s_name(d, c, prefix, &al->name)))
                return rc;
            const pg_nx5_node *bd = s_child_named(c, "BirthDate");
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
static int s_metres(s_dec *d, const char *label, const char *s, double *out)
{
    size_t n = strlen(s), dot = strcspn(s, ".");
    int ok = dot > 0 && dot <= 7 && s_digits(s, dot) &&
             (dot == n || (n == dot + 2 && s_digits(s + dot + 1, 1)));
    if (!ok) {
        char path[128];
        s_path(d, path, sizeof path, label);
        return s_fail(d, path, "'%s' must be metres as an integer or with one decimal place", s);
    }
    *out = strtod(s, NULL);
    return 0;
}

static int s_decode_address(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Location *l = PB(Location, location);
    if (!l)
        return s_nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION;
    eu->location = l;
    char **parts[4] = {&l->premises, &l->street, &l->locality, &l->town};
    size_t nl = 0;
    const pg_nx5_node *last_line = NULL;
    for (const pg_nx5_node *c = e->first; c; c = c->next)
        if (strcmp(c->name, "Line") == 0) {
            *parts[nl++] = s_str(c->text);
            last_line = c;
        }
    char path[128];
    if (last_line && last_line->text_len == 0) {
        char label[16];
        snprintf(label, sizeof label, "Line[%zu]", nl);
        s_path(d, path, sizeof path, label);
        return s_fail(d, path,
                      "a trailing address part that is not given must be left out, "
                      "not written as an empty Line");
    }
    const char *s;
    if ((s = s_text(e, "Postcode"))) {
        char pc[9], why[PG_ERRSTR_SIZE];
        s_path(d, path, sizeof path, "Postcode");
        if (pg_postcode_normalise(s, pc, why, sizeof why) != 0)
            return s_fail(d, path, "'%s': %s", s, why);
        if (!(l->postcode = pg_arena_strdup(d->a, pc)))
            return s_nomem(d);
    }
    if ((s = s_text(e, "UPRN"))) {
        uint64_t u;
        s_path(d, path, sizeof path, "UPRN");
        if (s_plain_uint(s, 12, &u) != 0 || u == 0)
            return s_fail(d, path, "'%s' must be 1-12 digits without leading zeros", s);
        l->uprn = (char *)s;
    }
    const char *es = s_text(e, "Easting"), *ns = s_text(e, "Northing");
    if (!es != !ns) {
        s_path(d, path, sizeof path, es ? "Northing" : "Easting");
        return s_fail(d, path, "required with %s", es ? "Easting" : "Northing");
    }
    if (es) {
        double east, north, lat, lon;
        int rc;
        if ((rc = s_metres(d, "Easting", es, &east)) || (rc = s_metres(d, "Northing", ns, &north)))
            return rc;
        char why[PG_ERRSTR_SIZE];
        rc = pg_geo_bng_to_wgs84(east, north, &lat, &lon, why, sizeof why);
        if (rc == PG_EINVALID) {
            s_path(d, path, sizeof path, "Easting/Northing");
            return s_fail(d, path, "%s", why);
        }
        if (rc)
            return pg_errf(rc, d->errstr, d->errstr_size, "%s", why);
        Polegate__Pole__V1__GridReference *g = PB(GridReference, grid_reference);
        Polegate__Pole__V1__GeoPoint *gp = PB(GeoPoint, geo_point);
        if (!g || !gp)
            return s_nomem(d);
        g->easting = east, g->northing = north;
        /* 1e-7 degrees is about a centimetre: more digits would only be noise. */
        gp->lat = round(lat * 1e7) / 1e7;
        gp->lon = round(lon * 1e7) / 1e7;
        l->grid = g, l->geo = gp;
    }
    l->description = s_str(s_text(e, "Description"));
    return 0;
}

static int s_decode_vehicle(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Vehicle *v = PB(Vehicle, vehicle);
    if (!v)
        return s_nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE;
    eu->vehicle = v;
    char path[128];
    const char *s;
    int rc, code = 0;
    if ((s = s_text(e, "VRM"))) {
        char vrm[16], why[PG_ERRSTR_SIZE];
        s_path(d, path, sizeof path, "VRM");
        if (pg_vrm_normalise(s, vrm, why, sizeof why) != 0)
            return s_fail(d, path, "'%s': %s", s, why);
        if (!(v->vrm = pg_arena_strdup(d->a, vrm)))
            return s_nomem(d);
    }
    v->make = s_str(s_text(e, "Make"));
    v->model = s_str(s_text(e, "Model"));
    v->vin = s_str(s_text(e, "VIN"));
    if ((s = s_text(e, "Colour"))) {
        s_path(d, path, sizeof path, "Colour");
        if ((rc = s_code(d, path, &pg_nx5_colour, s, &code)))
            return rc;
        v->colour = code;
    }
    if ((s = s_text(e, "Year"))) {
        s_path(d, path, sizeof path, "Year");
        if (strlen(s) != 4 || !s_digits(s, 4) || s[0] == '0')
            return s_fail(d, path, "'%s' must be a four-digit year", s);
        v->year = s_num(s, 4);
    }
    return 0;
}

static int s_decode_property(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    char path[128];
    const char *cat = s_text(e, "Category");
    int rc, code = 0;
    s_path(d, path, sizeof path, "Category");
    if (cat && strncmp(cat, "WPN-", 4) == 0) {
        if ((rc = s_code(d, path, &pg_nx5_weapon_category, cat, &code)))
            return rc;
        Polegate__Pole__V1__Weapon *w = PB(Weapon, weapon);
        if (!w)
            return s_nomem(d);
        eu->kind = EK(WEAPON);
        eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_WEAPON;
        eu->weapon = w;
        w->category = code;
        w->description = s_str(s_text(e, "Description"));
        w->serial_number = s_str(s_text(e, "Serial"));
        /* A weapon has no value in the canonical model: Value is dropped (mapping-nx5.md). */
    } else {
        if (cat && (rc = s_code(d, path, &pg_nx5_item_category, cat, &code)))
            return rc;
        Polegate__Pole__V1__Item *it = PB(Item, item);
        if (!it)
            return s_nomem(d);
        eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM;
        eu->item = it;
        it->category = code;
        it->description = s_str(s_text(e, "Description"));
        it->serial_number = s_str(s_text(e, "Serial"));
        const char *s = s_text(e, "Value");
        if (s) {
            uint64_t pence;
            s_path(d, path, sizeof path, "Value");
            if (s_plain_uint(s, 18, &pence) != 0)
                return s_fail(d, path, "'%s' must be a whole number of pence", s);
            Polegate__Pole__V1__Money *m = PB(Money, money);
            if (!m)
                return s_nomem(d);
            m->currency = "GBP";
            m->minor_units = (int64_t)pence;
            it->value = m;
        }
    }
    return 0;
}

static int s_decode_telephone(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Telephone *t = PB(Telephone, telephone);
    if (!t)
        return s_nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE;
    eu->telephone = t;
    const char *s = s_text(e, "Number");
    if (s) {
        char e164[17];
        /* A number that is not a recognisable UK or international one stays as entered. */
        if (pg_phone_to_e164(s, e164, NULL, 0) == 0) {
            if (!(t->number = pg_arena_strdup(d->a, e164)))
                return s_nomem(d);
        } else {
            t->number = (char *)s;
        }
    }
    t->imei = s_str(s_text(e, "IMEI"));
    if ((s = s_text(e, "Type"))) {
        char path[128];
        int code = 0, rc;
        s_path(d, path, sizeof path, "Type");
        if ((rc = s_code(d, path, &pg_nx5_phone_type, s, &code)))
            return rc;
        t->kind = code;
    }
    return 0;
}

/* Offence Code "class.subclass": class 1-999, subclass 0-99, no padding. */
static int s_offence(s_dec *d, const pg_nx5_node *c, size_t i, Polegate__Pole__V1__Offence **out)
{
    char path[128], label[32];
    snprintf(label, sizeof label, "Offence[%zu]@Code", i);
    s_path(d, path, sizeof path, label);
    const char *code = pg_nx5_attr_get(c, "Code");
    if (!code)
        return s_fail(d, path, "required (Home Office class.subclass, e.g. 28.1)");
    const char *dot = strchr(code, '.');
    uint64_t cls, sub;
    if (!dot || (size_t)(dot - code) > 3 || !dot[1])
        return s_fail(d, path, "'%s' is not a Home Office class.subclass", code);
    char cls_s[4];
    memcpy(cls_s, code, (size_t)(dot - code));
    cls_s[dot - code] = 0;
    if (s_plain_uint(cls_s, 3, &cls) != 0 || s_plain_uint(dot + 1, 2, &sub) != 0 || cls == 0)
        return s_fail(d, path,
                      "'%s' is not a Home Office class.subclass (class 1-999, subclass 0-99, "
                      "no padding)",
                      code);
    Polegate__Pole__V1__Offence *o = PB(Offence, offence);
    if (!o)
        return s_nomem(d);
    o->ho_class = (int32_t)cls;
    o->ho_subclass = (int32_t)sub;
    o->description = s_str(c->text);
    *out = o;
    return 0;
}

/* The local-time child name, or nothing when absent. */
static int s_time_child(s_dec *d, const pg_nx5_node *e, const char *name, pg_timestamp **out)
{
    const char *s = s_text(e, name);
    if (!s)
        return 0;
    char path[128];
    s_path(d, path, sizeof path, name);
    return s_local_time(d, path, s, out, NULL);
}

static int s_not_before(s_dec *d, const char *later, const pg_timestamp *a, const char *earlier,
                        const pg_timestamp *b)
{
    if (!a || !b || a->seconds >= b->seconds)
        return 0;
    char path[128];
    s_path(d, path, sizeof path, later);
    return s_fail(d, path, "is before %s", earlier);
}

static int s_decode_occurrence(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Occurrence *o = PB(Occurrence, occurrence);
    if (!o)
        return s_nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE;
    eu->occurrence = o;
    char path[128];
    const char *s;
    int rc, code = 0;
    if (!(s = s_text(e, "Reference"))) {
        s_path(d, path, sizeof path, "Reference");
        return s_fail(d, path, "required");
    }
    o->reference = (char *)s;
    if ((s = s_text(e, "Type"))) {
        s_path(d, path, sizeof path, "Type");
        if ((rc = s_code(d, path, &pg_nx5_occurrence_type, s, &code)))
            return rc;
        o->kind = code;
    }
    if ((o->n_offences = s_count(e, "Offence"))) {
        if (o->kind == POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_INCIDENT) {
            s_path(d, path, sizeof path, "Offence[1]");
            return s_fail(d, path, "offences are for Type Crime, not Incident");
        }
        o->offences = pg_arena_alloc(d->a, o->n_offences * sizeof(*o->offences));
        if (!o->offences)
            return s_nomem(d);
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
    if ((s = s_text(e, "Status"))) {
        s_path(d, path, sizeof path, "Status");
        if ((rc = s_code(d, path, &pg_nx5_status, s, &code)))
            return rc;
        o->status = code;
    }
    o->summary = s_str(s_text(e, "Summary"));
    return 0;
}

static int s_decode_custody(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Custody *c = PB(Custody, custody);
    if (!c)
        return s_nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_CUSTODY;
    eu->custody = c;
    int rc, code = 0;
    c->reference = s_str(s_text(e, "Reference"));
    c->station = s_str(s_text(e, "Station"));
    if ((rc = s_time_child(d, e, "Arrested", &c->arrested_at)) ||
        (rc = s_time_child(d, e, "Arrived", &c->arrived_at)) ||
        (rc = s_time_child(d, e, "Released", &c->released_at)) ||
        (rc = s_not_before(d, "Released", c->released_at, "Arrived", c->arrived_at)))
        return rc;
    const char *s = s_text(e, "Outcome");
    if (s) {
        char path[128];
        s_path(d, path, sizeof path, "Outcome");
        if ((rc = s_code(d, path, &pg_nx5_outcome, s, &code)))
            return rc;
        c->outcome = code;
    }
    return 0;
}

static int s_decode_intel(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu)
{
    Polegate__Pole__V1__Intelligence *in = PB(Intelligence, intelligence);
    if (!in)
        return s_nomem(d);
    eu->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE;
    eu->intelligence = in;
    in->reference = s_str(s_text(e, "Reference"));
    in->text = s_str(s_text(e, "Text"));
    int rc = s_time_child(d, e, "Reported", &in->reported_at);
    if (rc)
        return rc;
    const pg_nx5_node *g = s_child_named(e, "Grading");
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
            s_path(d, path, sizeof path, label);
            const char *s = pg_nx5_attr_get(g, parts[i].attr);
            if (!s)
                return s_fail(d, path, "required (3x5x2 grading)");
            if ((rc = s_code(d, path, parts[i].table, s, &v[i])))
                return rc;
        }
        Polegate__Pole__V1__Grading *gr = PB(Grading, grading);
        if (!gr)
            return s_nomem(d);
        gr->source = v[0], gr->intelligence = v[1], gr->handling = v[2];
        in->grading = gr;
    }
    return 0;
}

typedef int (*s_body_fn)(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu);
static const s_body_fn s_bodies[] = {s_decode_person,   s_decode_address,   s_decode_vehicle,
                                     s_decode_property, s_decode_telephone, s_decode_occurrence,
                                     s_decode_custody,  s_decode_intel};

/* ------------------------------------------------------------ Entity */

static pg_origin *s_origin(s_dec *d, const char *gid, size_t pos)
{
    pg_origin *o = PB(Origin, origin);
    if (!o)
        return NULL;
    o->force = (char *)d->force;
    o->system = "NICHE";
    if (gid) {
        o->native_type = "GID";
        o->native_id = (char *)gid;
    }
    o->message_id = pg_arena_sprintf(d->a, "%s#%zu", d->batch, pos);
    return o->message_id ? o : NULL;
}

static int s_entity_ref(s_dec *d, const char *gid, int kind, pg_entity_ref **out)
{
    pg_entity_ref *r = PB(EntityRef, entity_ref);
    char *id = pg_arena_alloc(d->a, PG_UUID_STR_SIZE);
    if (!r || !id)
        return s_nomem(d);
    if (pg_identity_entity(d->force, "NICHE", "GID", gid, id) != 0)
        return pg_errf(PG_EINTERNAL, d->errstr, d->errstr_size, "NX5: no identity for %s", gid);
    r->id = id;
    r->kind = kind;
    r->native_id = (char *)gid;
    *out = r;
    return 0;
}

static const char *const s_entity_attrs[] = {"Kind", "GID",      "Rev",  "Op",    "Modified",
                                             "GPMS", "Handling", "MoPI", "Review"};

/* The entity's own attributes, in a fixed order so the first problem reported is
 * predictable. */
static int s_entity_head(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu, const s_kind **kind,
                         int *op)
{
    char path[64];
    int rc = s_check_attrs(d, d->elem, e, s_entity_attrs,
                           sizeof s_entity_attrs / sizeof s_entity_attrs[0]);
    if (rc)
        return rc;
    const char *v[9];
    for (int i = 0; i < 9; i++) {
        v[i] = pg_nx5_attr_get(e, s_entity_attrs[i]);
        snprintf(path, sizeof path, "%s@%s", d->elem, s_entity_attrs[i]);
        if (!v[i])
            return s_fail(d, path, "required");
    }
    snprintf(path, sizeof path, "%s@Kind", d->elem);
    *kind = NULL;
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds[0]; i++)
        if (strcmp(s_kinds[i].nx5, v[0]) == 0)
            *kind = &s_kinds[i];
    if (!*kind)
        return s_fail(d, path,
                      "unknown kind '%s' (Person, Address, Vehicle, Property, "
                      "Telephone, Occurrence, Custody or IntelReport)",
                      v[0]);
    snprintf(path, sizeof path, "%s@GID", d->elem);
    if (!s_is_gid(v[1]))
        return s_fail(d, path, "'%s' must be exactly 16 upper-case hex digits", v[1]);
    snprintf(d->where, sizeof d->where, "%s GID=%s", d->elem, v[1]);
    uint64_t rev;
    snprintf(path, sizeof path, "%s@Rev", d->elem);
    if (s_plain_uint(v[2], 19, &rev) != 0 || rev == 0)
        return s_fail(d, path, "'%s' must be an integer >= 1", v[2]);
    snprintf(path, sizeof path, "%s@Op", d->elem);
    static const char *const ops[] = {"Add", "Modify", "Delete", "Merge"};
    *op = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(ops[i], v[3]) == 0)
            *op = i;
    if (*op < 0)
        return s_fail(d, path, "'%s' must be Add, Modify, Delete or Merge", v[3]);
    snprintf(path, sizeof path, "%s@Modified", d->elem);
    if ((rc = s_local_time(d, path, v[4], &eu->modified_at, &d->ref_year)))
        return rc;
    pg_marking *mk = PB(Marking, marking);
    pg_retention *rt = PB(Retention, retention);
    if (!mk || !rt)
        return s_nomem(d);
    int code = 0;
    snprintf(path, sizeof path, "%s@GPMS", d->elem);
    if ((rc = s_code(d, path, &pg_nx5_gpms, v[5], &code)))
        return rc;
    mk->classification = code;
    snprintf(path, sizeof path, "%s@Handling", d->elem);
    if ((rc = s_code(d, path, &pg_nx5_handling, v[6], &code)))
        return rc;
    mk->handling = code;
    snprintf(path, sizeof path, "%s@MoPI", d->elem);
    if (strlen(v[7]) != 1 || v[7][0] < '1' || v[7][0] > '4')
        return s_fail(d, path, "'%s' must be a MoPI group 1-4", v[7]);
    rt->mopi_group = v[7][0] - '0';
    snprintf(path, sizeof path, "%s@Review", d->elem);
    if ((rc = s_date(d, path, v[8], &rt->review_date)))
        return rc;
    eu->marking = mk;
    eu->retention = rt;
    eu->version = rev;
    eu->kind = (*kind)->kind;
    eu->operation = *op == 2 ? POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE
                             : POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
    if (!(eu->id = pg_arena_alloc(d->a, PG_UUID_STR_SIZE)))
        return s_nomem(d);
    if (pg_identity_entity(d->force, "NICHE", "GID", v[1], eu->id) != 0)
        return pg_errf(PG_EINTERNAL, d->errstr, d->errstr_size, "NX5: no identity for %s", v[1]);
    return 0;
}

static int s_ref_cmp(const void *a, const void *b, void *arg)
{
    pg_entity_ref *const *refs = arg;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(refs[x]->native_id, refs[y]->native_id);
    return c ? c : (x > y) - (x < y);
}

/* A GID named twice in MergedFrom: the first repeat in document order, found by
 * sorting positions rather than comparing every pair. */
static int s_merged_twice(s_dec *d, const pg_entity_update *eu)
{
    size_t n = eu->n_merged_from;
    if (n < 2)
        return 0;
    size_t *pos = pg_arena_alloc(d->a, n * sizeof(*pos));
    if (!pos)
        return s_nomem(d);
    for (size_t i = 0; i < n; i++)
        pos[i] = i;
    qsort_r(pos, n, sizeof(*pos), s_ref_cmp, eu->merged_from);
    size_t first_repeat = SIZE_MAX;
    for (size_t i = 1; i < n; i++)
        if (strcmp(eu->merged_from[pos[i]]->native_id, eu->merged_from[pos[i - 1]]->native_id) ==
                0 &&
            pos[i] < first_repeat)
            first_repeat = pos[i];
    if (first_repeat == SIZE_MAX)
        return 0;
    char path[128], label[40];
    snprintf(label, sizeof label, "MergedFrom[%zu]@GID", first_repeat + 1);
    s_path(d, path, sizeof path, label);
    return s_fail(d, path, "%s is named twice", eu->merged_from[first_repeat]->native_id);
}

/* Caveat (Handling C) and MergedFrom (Op Merge). */
static int s_entity_extras(s_dec *d, const pg_nx5_node *e, pg_entity_update *eu, int op,
                           const char *gid)
{
    char path[128];
    const char *caveat = s_text(e, "Caveat");
    int is_c = eu->marking->handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    if (caveat && !is_c) {
        s_path(d, path, sizeof path, "Caveat");
        return s_fail(d, path, "only with Handling C");
    }
    if (is_c && !caveat && op != 2) {
        s_path(d, path, sizeof path, "Caveat");
        return s_fail(d, path, "required with Handling C");
    }
    if (caveat) {
        size_t chars = 0;
        for (const char *p = caveat; *p; p++)
            chars += ((unsigned char)*p & 0xC0) != 0x80;
        if (chars > 500) {
            s_path(d, path, sizeof path, "Caveat");
            return s_fail(d, path, "%zu characters, at most 500", chars);
        }
        eu->marking->caveat = (char *)caveat;
    }
    size_t nm = s_count(e, "MergedFrom");
    if (nm && op != 3) {
        s_path(d, path, sizeof path, "MergedFrom[1]");
        return s_fail(d, path, "only with Op Merge");
    }
    if (op == 3 && !nm) {
        s_path(d, path, sizeof path, "MergedFrom");
        return s_fail(d, path, "Op Merge needs at least one MergedFrom");
    }
    if (!nm)
        return 0;
    eu->merged_from = pg_arena_alloc(d->a, nm * sizeof(*eu->merged_from));
    if (!eu->merged_from)
        return s_nomem(d);
    for (const pg_nx5_node *c = e->first; c; c = c->next) {
        if (strcmp(c->name, "MergedFrom") != 0)
            continue;
        char label[40];
        snprintf(label, sizeof label, "MergedFrom[%zu]@GID", eu->n_merged_from + 1);
        s_path(d, path, sizeof path, label);
        const char *mg = pg_nx5_attr_get(c, "GID");
        if (!mg)
            return s_fail(d, path, "required");
        if (!s_is_gid(mg))
            return s_fail(d, path, "'%s' must be exactly 16 upper-case hex digits", mg);
        if (strcmp(mg, gid) == 0)
            return s_fail(d, path, "a record cannot be merged into itself");
        int rc = s_entity_ref(d, mg, eu->kind, &eu->merged_from[eu->n_merged_from]);
        if (rc)
            return rc;
        eu->n_merged_from++;
    }
    return s_merged_twice(d, eu);
}

static int s_entity(s_dec *d, const pg_nx5_node *e, size_t entity_no, size_t pos, pg_changeset *cs,
                    s_known *known)
{
    snprintf(d->elem, sizeof d->elem, "Entity[%zu]", entity_no);
    snprintf(d->where, sizeof d->where, "%s", d->elem);
    pg_entity_update *eu = PB(EntityUpdate, entity_update);
    if (!eu)
        return s_nomem(d);
    const s_kind *kind = NULL;
    int op = 0, rc;
    if ((rc = s_entity_head(d, e, eu, &kind, &op)))
        return rc;
    const char *gid = pg_nx5_attr_get(e, "GID");
    if (!(eu->origin = s_origin(d, gid, pos)))
        return s_nomem(d);
    char what[32];
    snprintf(what, sizeof what, "a %s", kind->nx5);
    if (op == 2) {
        /* Delete carries no children: not even a Caveat. */
        if (e->first || e->stray_text) {
            char path[128];
            s_path(d, path, sizeof path, e->first ? e->first->name : "text");
            return s_fail(d, path, "Op Delete carries no children");
        }
    } else {
        if ((rc = s_check_children(d, e, what, kind->children, s_common, "")))
            return rc;
    }
    if ((rc = s_entity_extras(d, e, eu, op, gid)))
        return rc;
    if (op != 2 && (rc = s_bodies[kind - s_kinds](d, e, eu)))
        return rc;
    /* merged_from refs carry the survivor's kind, decided by its body. */
    for (size_t k = 0; k < eu->n_merged_from; k++)
        eu->merged_from[k]->kind = eu->kind;
    *known = (s_known){.gid = gid,
                       .kind = eu->kind,
                       .kind_certain = !(op == 2 && kind->kind == EK(ITEM)),
                       .pos = pos,
                       .entity_no = entity_no,
                       .nx5_kind = kind->nx5,
                       .eu = eu};
    return pg_changeset_add_entity(cs, eu, 0) ? s_nomem(d) : 0;
}

/* ------------------------------------------------------------ Link */

static int s_known_cmp(const void *a, const void *b)
{
    const s_known *x = a, *y = b;
    int c = strcmp(x->gid, y->gid);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The entities of the document with this GID: [*first, *first + *n). */
static const s_known *s_find(const s_dec *d, const char *gid, size_t *n)
{
    size_t lo = 0, hi = d->n_known;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(d->known[mid].gid, gid) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t k = lo;
    while (k < d->n_known && strcmp(d->known[k].gid, gid) == 0)
        k++;
    *n = k - lo;
    return *n ? &d->known[lo] : NULL;
}

/* After all entities: one kind per GID. A GID is one record of one Kind; a Property
 * Delete takes item or weapon from another element with that GID, else item. */
static int s_settle_kinds(s_dec *d)
{
    if (d->n_known) /* a document of Links only: qsort(NULL, 0) is undefined */
        qsort(d->known, d->n_known, sizeof(*d->known), s_known_cmp);
    for (size_t i = 0; i < d->n_known;) {
        size_t j = i, certain = SIZE_MAX;
        for (; j < d->n_known && strcmp(d->known[j].gid, d->known[i].gid) == 0; j++) {
            if (strcmp(d->known[j].nx5_kind, d->known[i].nx5_kind) != 0) {
                char path[64];
                snprintf(path, sizeof path, "Entity[%zu]@Kind", d->known[j].entity_no);
                return s_fail(d, path, "GID %s is a %s in Entity[%zu]", d->known[i].gid,
                              d->known[i].nx5_kind, d->known[i].entity_no);
            }
            if (certain == SIZE_MAX && d->known[j].kind_certain)
                certain = j;
        }
        for (size_t k = i; k < j; k++)
            if (!d->known[k].kind_certain && certain != SIZE_MAX)
                d->known[k].kind = d->known[k].eu->kind = d->known[certain].kind;
        i = j;
    }
    return 0;
}

static const char *const s_link_attrs[] = {"Role", "From", "To", "Start", "End", "Op"};

/* The end of a link: a GID, with its kind when the document has that entity. */
static int s_link_end(s_dec *d, const char *attr, const char *gid, unsigned allowed,
                      const char *allowed_words, const char *role, const s_known **ent,
                      pg_entity_ref **out)
{
    char path[64];
    snprintf(path, sizeof path, "%s@%s", d->elem, attr);
    if (!gid)
        return s_fail(d, path, "required");
    if (!s_is_gid(gid))
        return s_fail(d, path, "'%s' must be exactly 16 upper-case hex digits", gid);
    size_t n;
    const s_known *k = s_find(d, gid, &n);
    int kind = k ? k->kind : EK(UNSPECIFIED);
    if (k) {
        unsigned have = 1u << kind;
        if (!k->kind_certain) /* a deleted Property: item or weapon */
            have = (1u << EK(ITEM)) | (1u << EK(WEAPON));
        if (!(have & allowed))
            return s_fail(d, path, "a %s link %s %s; %s is a %s (Entity[%zu])", role,
                          strcmp(attr, "From") == 0 ? "starts at" : "ends at", allowed_words, gid,
                          k->nx5_kind, k->entity_no);
    }
    *ent = k;
    return s_entity_ref(d, gid, kind, out);
}

static int s_link(s_dec *d, const pg_nx5_node *l, size_t link_no, size_t pos, pg_changeset *cs)
{
    snprintf(d->elem, sizeof d->elem, "Link[%zu]", link_no);
    char path[64];
    int rc =
        s_check_attrs(d, d->elem, l, s_link_attrs, sizeof s_link_attrs / sizeof s_link_attrs[0]);
    if (rc)
        return rc;
    if (l->first || l->stray_text) {
        snprintf(path, sizeof path, "%s %s", d->elem, l->first ? l->first->name : "text");
        return s_fail(d, path, "a Link carries no children");
    }
    pg_link_update *lu = PB(LinkUpdate, link_update);
    if (!lu)
        return s_nomem(d);
    const char *role_s = pg_nx5_attr_get(l, "Role");
    snprintf(path, sizeof path, "%s@Role", d->elem);
    if (!role_s)
        return s_fail(d, path, "required");
    const pg_nx5_role *role = pg_nx5_role_by_name(role_s);
    if (!role)
        return s_fail(d, path, "unknown role '%s'", role_s);
    const s_known *from_ent, *to_ent;
    if ((rc = s_link_end(d, "From", pg_nx5_attr_get(l, "From"), pg_role_from_kinds(role->role),
                         role->from_words, role->nx5, &from_ent, &lu->from)) ||
        (rc = s_link_end(d, "To", pg_nx5_attr_get(l, "To"), pg_role_to_kinds(role->role),
                         role->to_words, role->nx5, &to_ent, &lu->to)))
        return rc;
    const char *s;
    if ((s = pg_nx5_attr_get(l, "Start"))) {
        snprintf(path, sizeof path, "%s@Start", d->elem);
        if ((rc = s_date(d, path, s, &lu->valid_from)))
            return rc;
    }
    if ((s = pg_nx5_attr_get(l, "End"))) {
        snprintf(path, sizeof path, "%s@End", d->elem);
        if ((rc = s_date(d, path, s, &lu->valid_to)))
            return rc;
        const pg_date *a = lu->valid_from, *b = lu->valid_to;
        if (a && (b->year * 10000 + b->month * 100 + b->day) <
                     (a->year * 10000 + a->month * 100 + a->day))
            return s_fail(d, path, "'%s' is before Start", s);
    }
    lu->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
    if ((s = pg_nx5_attr_get(l, "Op"))) {
        snprintf(path, sizeof path, "%s@Op", d->elem);
        if (strcmp(s, "Delete") != 0)
            return s_fail(d, path, "'%s': a Link's Op is Delete or absent", s);
        lu->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    }
    lu->role = role->role;
    if (!(lu->id = pg_arena_alloc(d->a, PG_UUID_STR_SIZE)))
        return s_nomem(d);
    if (pg_identity_link(lu->from->id, lu->role, lu->to->id, lu->id) != 0)
        return pg_errf(PG_EINTERNAL, d->errstr, d->errstr_size, "%s: no link identity", d->elem);
    if (!(lu->origin = s_origin(d, NULL, pos)))
        return s_nomem(d);
    /* The marking and time of the From record as the document last stated it before
     * this link, else as it states it later. */
    if (from_ent) {
        size_t n;
        const s_known *k = s_find(d, from_ent->gid, &n), *use = &k[0];
        for (size_t i = 0; i < n && k[i].pos < pos; i++)
            use = &k[i];
        lu->marking = use->eu->marking;
        lu->modified_at = use->eu->modified_at;
    }
    return pg_changeset_add_link(cs, lu) ? s_nomem(d) : 0;
}

/* ------------------------------------------------------------ the document */

static const char *const s_root_attrs[] = {"Source", "Force", "Batch", "Created"};

static int s_root(s_dec *d, const pg_nx5_node *root, const pg_adapter_ctx *ctx)
{
    if (strcmp(root->name, "NX5Exchange") != 0)
        return s_fail(d, root->name, "the root element must be NX5Exchange");
    int rc = s_check_attrs(d, "NX5Exchange", root, s_root_attrs, 4);
    if (rc)
        return rc;
    const char *v[4];
    for (int i = 0; i < 4; i++) {
        char path[40];
        snprintf(path, sizeof path, "NX5Exchange@%s", s_root_attrs[i]);
        if (!(v[i] = pg_nx5_attr_get(root, s_root_attrs[i])))
            return s_fail(d, path, "required");
    }
    if (strcmp(v[0], "NICHE") != 0)
        return s_fail(d, "NX5Exchange@Source", "'%s' must be NICHE", v[0]);
    size_t fl = strlen(v[1]);
    int upper = fl >= 2 && fl <= 4;
    for (size_t i = 0; upper && i < fl; i++)
        upper = v[1][i] >= 'A' && v[1][i] <= 'Z';
    if (!upper)
        return s_fail(d, "NX5Exchange@Force", "must be 2-4 upper-case letters");
    if (ctx && ctx->force && strcmp(ctx->force, v[1]) != 0)
        return s_fail(d, "NX5Exchange@Force", "'%s' is not this gateway's force '%s'", v[1],
                      ctx->force);
    size_t chars = 0;
    for (const char *p = v[2]; *p; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    if (chars < 1 || chars > 40)
        return s_fail(d, "NX5Exchange@Batch", "must be 1-40 characters");
    pg_timestamp *created;
    if ((rc = s_local_time(d, "NX5Exchange@Created", v[3], &created, NULL)))
        return rc;
    if (root->stray_text)
        return s_fail(d, "NX5Exchange", "text is not allowed between elements");
    d->force = v[1];
    d->batch = v[2];
    return 0;
}

int pg_nx5_decode(const pg_adapter_ctx *ctx, const uint8_t *data, size_t size, pg_changeset *cs,
                  char *errstr, size_t errstr_size)
{
    size_t start = cs->count;
    s_dec dd = {.a = cs->arena, .errstr = errstr, .errstr_size = errstr_size};
    s_dec *d = &dd;
    pg_nx5_node *root = NULL;
    int rc = pg_nx5_parse(cs->arena, data, size, &root, errstr, errstr_size);
    if (rc == 0)
        rc = s_root(d, root, ctx);
    size_t n_entities = 0;
    for (const pg_nx5_node *c = rc == 0 ? root->first : NULL; c && rc == 0; c = c->next) {
        if (strcmp(c->name, "Entity") == 0)
            n_entities++;
        else if (strcmp(c->name, "Link") != 0)
            rc = s_fail(d, c->name, "unknown element in NX5Exchange (Entity or Link)");
    }
    if (rc == 0 && n_entities && !(d->known = pg_arena_alloc(d->a, n_entities * sizeof(s_known))))
        rc = s_nomem(d);
    if (rc == 0 && root->n_children &&
        !(d->pos_of = pg_arena_alloc(d->a, root->n_children * sizeof(size_t))))
        rc = s_nomem(d);
    /* Entities first, so that every link can know the kinds of the entities named in
     * the same document; then the changes are put back into document order. */
    size_t pos = 0;
    for (const pg_nx5_node *c = rc == 0 ? root->first : NULL; c && rc == 0; c = c->next) {
        pos++;
        if (strcmp(c->name, "Entity") == 0) {
            rc = s_entity(d, c, d->n_known + 1, pos, cs, &d->known[d->n_known]);
            if (rc == 0)
                d->pos_of[d->n_known++] = pos;
        }
    }
    if (rc == 0)
        rc = s_settle_kinds(d);
    size_t n_links = 0;
    pos = 0;
    for (const pg_nx5_node *c = rc == 0 ? root->first : NULL; c && rc == 0; c = c->next) {
        pos++;
        if (strcmp(c->name, "Link") == 0 && (rc = s_link(d, c, ++n_links, pos, cs)) == 0)
            d->pos_of[cs->count - start - 1] = pos;
    }
    if (rc == 0 && n_links && n_entities) {
        /* Merge the two runs back into document order by message position. */
        size_t n = cs->count - start;
        pg_change *tmp = pg_arena_alloc(d->a, n * sizeof(*tmp));
        if (!tmp) {
            rc = s_nomem(d);
        } else {
            pg_change *ch = cs->changes + start;
            size_t i = 0, j = n_entities, k = 0;
            while (k < n) {
                size_t pi = i < n_entities ? d->pos_of[i] : SIZE_MAX;
                size_t pj = j < n ? d->pos_of[j] : SIZE_MAX;
                tmp[k++] = pi < pj ? ch[i++] : ch[j++];
            }
            memcpy(ch, tmp, n * sizeof(*tmp));
        }
    }
    if (rc) {
        cs->count = start;
        return rc;
    }
    cs->force = d->force;
    cs->system = "NICHE";
    cs->message_id = NULL;
    return 0;
}
