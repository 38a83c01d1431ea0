/* NX5 document -> canonical changes: every rule of docs/formats/niche-nx5.md checked. */
#include <math.h>
#include <stdarg.h>
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

/* "<path>: <rule>" */
int pg_nx5__fail(pg_nx5_dec *d, const char *path, const char *fmt, ...)
{
    char msg[PG_ERRSTR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pg_errf(PG_EINVALID, d->errstr, d->errstr_size, "%s: %s", path, msg);
}

int pg_nx5__nomem(pg_nx5_dec *d)
{
    return pg_errf(PG_ENOMEM, d->errstr, d->errstr_size, "NX5: out of memory");
}

/* ------------------------------------------------------------ small value rules */

int pg_nx5__digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int pg_nx5__num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* A decimal integer without sign or leading zeros, at most max_digits digits. */
int pg_nx5__plain_uint(const char *s, size_t max_digits, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > max_digits || !pg_nx5__digits(s, n) || (n > 1 && s[0] == '0'))
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

/* 1 when s is NULL or white space only (XML's: space, tab, CR, LF). */
int pg_nx5__blank(const char *s)
{
    for (; s && *s; s++)
        if (!strchr(" \t\r\n", *s))
            return 0;
    return 1;
}

/* 1 when an element holds text other than white space (the layout between elements),
 * whether it also holds elements or not. */
static int s_has_text(const pg_nx5_node *n)
{
    return n->stray_text || !pg_nx5__blank(n->text);
}

/* "dd/mm/yyyy" shape only; parts may be 00. */
int pg_nx5__date_shape(const char *s, int *y, int *m, int *dd)
{
    if (strlen(s) != 10 || !pg_nx5__digits(s, 2) || s[2] != '/' || !pg_nx5__digits(s + 3, 2) ||
        s[5] != '/' || !pg_nx5__digits(s + 6, 4))
        return -1;
    *dd = pg_nx5__num(s, 2);
    *m = pg_nx5__num(s + 3, 2);
    *y = pg_nx5__num(s + 6, 4);
    return 0;
}

static int s_date(pg_nx5_dec *d, const char *path, const char *s, pg_date **out)
{
    int y, m, dd;
    if (pg_nx5__date_shape(s, &y, &m, &dd) != 0 || !pg_date_valid(y, m, dd))
        return pg_nx5__fail(d, path, "is not a valid date dd/mm/yyyy");
    pg_date *date = PB(Date, date);
    if (!date)
        return pg_nx5__nomem(d);
    date->year = y, date->month = m, date->day = dd;
    *out = date;
    return 0;
}

/* UK local "dd/mm/yyyy HH:MM:SS" -> instant. *year (may be NULL) gets the local year. */
int pg_nx5__local_time(pg_nx5_dec *d, const char *path, const char *s, pg_timestamp **out,
                       int *year)
{
    int y, m, dd;
    char date[11] = "";
    if (strlen(s) == 19)
        memcpy(date, s, 10);
    if (strlen(s) != 19 || pg_nx5__date_shape(date, &y, &m, &dd) != 0 || s[10] != ' ' ||
        !pg_nx5__digits(s + 11, 2) || s[13] != ':' || !pg_nx5__digits(s + 14, 2) || s[16] != ':' ||
        !pg_nx5__digits(s + 17, 2))
        return pg_nx5__fail(d, path, "is not a local time dd/mm/yyyy HH:MM:SS");
    pg_instant t;
    char why[PG_ERRSTR_SIZE];
    if (pg_london_to_instant(y, m, dd, pg_nx5__num(s + 11, 2), pg_nx5__num(s + 14, 2),
                             pg_nx5__num(s + 17, 2), &t, why, sizeof why) != 0)
        return pg_nx5__fail(d, path, "%s", why);
    pg_timestamp *ts = PG_PB_NEW(d->a, pg_timestamp, google__protobuf__timestamp);
    if (!ts)
        return pg_nx5__nomem(d);
    ts->seconds = t.seconds;
    ts->nanos = t.nanos;
    *out = ts;
    if (year)
        *year = y;
    return 0;
}

int pg_nx5__code(pg_nx5_dec *d, const char *path, const pg_nx5_table *t, const char *s, int *out)
{
    int v = pg_nx5_code_value(t, s);
    if (v < 0)
        return pg_nx5__fail(d, path, "is not a valid %s", t->what);
    *out = v;
    return 0;
}

/* ------------------------------------------------------------ element structure */

/* More than any kind's children plus the common ones. */
#define S_MAX_CHILDREN 24

static const pg_nx5_child s_person[] = {{"Surname", 1, PG_NX5_TEXT, {0}},
                                        {"Given", 3, PG_NX5_TEXT, {0}},
                                        {"Title", 1, PG_NX5_TEXT, {0}},
                                        {"BirthDate", 1, PG_NX5_TEXT, {"Precision"}},
                                        {"BirthPlace", 1, PG_NX5_TEXT, {0}},
                                        {"Gender", 1, PG_NX5_TEXT, {0}},
                                        {"EthnicityOD", 1, PG_NX5_TEXT, {0}},
                                        {"EthnicitySD", 1, PG_NX5_TEXT, {0}},
                                        {"Nationality", 1, PG_NX5_TEXT, {0}},
                                        {"PNCID", 1, PG_NX5_TEXT, {0}},
                                        {"CRO", 1, PG_NX5_TEXT, {0}},
                                        {"Alias", 0, PG_NX5_GROUP, {0}},
                                        {"Warning", 0, PG_NX5_TEXT, {0}},
                                        {"Occupation", 1, PG_NX5_TEXT, {0}},
                                        {NULL, 0, 0, {0}}};
const pg_nx5_child pg_nx5__alias[] = {{"Surname", 1, PG_NX5_TEXT, {0}},
                                      {"Given", 3, PG_NX5_TEXT, {0}},
                                      {"BirthDate", 1, PG_NX5_TEXT, {"Precision"}},
                                      {NULL, 0, 0, {0}}};
static const pg_nx5_child s_address[] = {{"Line", 4, PG_NX5_LINE, {0}},
                                         {"Postcode", 1, PG_NX5_TEXT, {0}},
                                         {"UPRN", 1, PG_NX5_TEXT, {0}},
                                         {"Easting", 1, PG_NX5_TEXT, {0}},
                                         {"Northing", 1, PG_NX5_TEXT, {0}},
                                         {"Description", 1, PG_NX5_TEXT, {0}},
                                         {NULL, 0, 0, {0}}};
static const pg_nx5_child s_vehicle[] = {{"VRM", 1, PG_NX5_TEXT, {0}},
                                         {"Make", 1, PG_NX5_TEXT, {0}},
                                         {"Model", 1, PG_NX5_TEXT, {0}},
                                         {"Colour", 1, PG_NX5_TEXT, {0}},
                                         {"VIN", 1, PG_NX5_TEXT, {0}},
                                         {"Year", 1, PG_NX5_TEXT, {0}},
                                         {NULL, 0, 0, {0}}};
static const pg_nx5_child s_property[] = {{"Category", 1, PG_NX5_TEXT, {0}},
                                          {"Description", 1, PG_NX5_TEXT, {0}},
                                          {"Serial", 1, PG_NX5_TEXT, {0}},
                                          {"Value", 1, PG_NX5_TEXT, {0}},
                                          {NULL, 0, 0, {0}}};
static const pg_nx5_child s_telephone[] = {{"Number", 1, PG_NX5_TEXT, {0}},
                                           {"Type", 1, PG_NX5_TEXT, {0}},
                                           {"IMEI", 1, PG_NX5_TEXT, {0}},
                                           {NULL, 0, 0, {0}}};
static const pg_nx5_child s_occurrence[] = {{"Reference", 1, PG_NX5_TEXT, {0}},
                                            {"Type", 1, PG_NX5_TEXT, {0}},
                                            {"Offence", 0, PG_NX5_LINE, {"Code"}},
                                            {"From", 1, PG_NX5_TEXT, {0}},
                                            {"To", 1, PG_NX5_TEXT, {0}},
                                            {"Reported", 1, PG_NX5_TEXT, {0}},
                                            {"Status", 1, PG_NX5_TEXT, {0}},
                                            {"Summary", 1, PG_NX5_TEXT, {0}},
                                            {NULL, 0, 0, {0}}};
static const pg_nx5_child s_custody[] = {{"Reference", 1, PG_NX5_TEXT, {0}},
                                         {"Arrested", 1, PG_NX5_TEXT, {0}},
                                         {"Arrived", 1, PG_NX5_TEXT, {0}},
                                         {"Released", 1, PG_NX5_TEXT, {0}},
                                         {"Station", 1, PG_NX5_TEXT, {0}},
                                         {"Outcome", 1, PG_NX5_TEXT, {0}},
                                         {NULL, 0, 0, {0}}};
static const pg_nx5_child s_intel[] = {
    {"Reference", 1, PG_NX5_TEXT, {0}},
    {"Reported", 1, PG_NX5_TEXT, {0}},
    {"Text", 1, PG_NX5_TEXT, {0}},
    {"Grading", 1, PG_NX5_EMPTY, {"Source", "Intel", "Handling"}},
    {NULL, 0, 0, {0}}};
/* Children of any Entity, whatever its Kind. */
static const pg_nx5_child s_common[] = {
    {"Caveat", 1, PG_NX5_TEXT, {0}}, {"MergedFrom", 0, PG_NX5_EMPTY, {"GID"}}, {NULL, 0, 0, {0}}};

typedef struct s_kind {
    const char *nx5;
    int kind; /* Property: ITEM until its Category says WEAPON */
    const pg_nx5_child *children;
} s_kind;

static const s_kind s_kinds[] = {
    {"Person", EK(PERSON), s_person},          {"Address", EK(LOCATION), s_address},
    {"Vehicle", EK(VEHICLE), s_vehicle},       {"Property", EK(ITEM), s_property},
    {"Telephone", EK(TELEPHONE), s_telephone}, {"Occurrence", EK(OCCURRENCE), s_occurrence},
    {"Custody", EK(CUSTODY), s_custody},       {"IntelReport", EK(INTELLIGENCE), s_intel},
};

static const pg_nx5_child *s_spec(const pg_nx5_child *spec, const char *name)
{
    for (; spec && spec->name; spec++)
        if (strcmp(spec->name, name) == 0)
            return spec;
    return NULL;
}

static int s_check_attrs(pg_nx5_dec *d, const char *path, const pg_nx5_node *n,
                         const char *const *allowed, size_t n_allowed)
{
    for (size_t i = 0; i < n->n_attrs; i++) {
        size_t k = 0;
        while (k < n_allowed && allowed[k] && strcmp(allowed[k], n->attrs[i].name) != 0)
            k++;
        if (k == n_allowed || !allowed[k])
            return pg_nx5__fail(d, path, "unknown attribute '%s'", n->attrs[i].name);
    }
    return 0;
}

/* The label of the i-th (1-based) child called name: "Given[2]", or "Surname" for
 * an element that cannot repeat. */
static void s_label(char *out, size_t size, const char *prefix, const pg_nx5_child *spec, size_t i)
{
    if (spec->max == 1)
        snprintf(out, size, "%s%s", prefix, spec->name);
    else
        snprintf(out, size, "%s%s[%zu]", prefix, spec->name, i);
}

/* Structure of an element's children against spec (and also_spec): known names,
 * how many, text or attributes only, which attributes. prefix is prepended to child
 * labels ("Alias[1] "). */
int pg_nx5__check_children(pg_nx5_dec *d, const pg_nx5_node *parent, const char *what,
                           const pg_nx5_child *spec, const pg_nx5_child *also_spec,
                           const char *prefix)
{
    char path[128];
    if (parent->stray_text) {
        snprintf(path, sizeof path, "%s%s%s", d->where, prefix[0] ? " " : "", prefix);
        size_t len = strlen(path);
        if (len && path[len - 1] == ' ')
            path[len - 1] = 0;
        return pg_nx5__fail(d, path, "text is not allowed between elements");
    }
    if (!parent->first && s_has_text(parent))
        return pg_nx5__fail(d, d->where, "text is not allowed (elements only)");
    /* How many of each name so far, by position in spec then also_spec: one pass,
     * however many children (a document may hold hundreds of thousands). */
    size_t seen[S_MAX_CHILDREN] = {0};
    size_t n_spec = 0;
    while (spec[n_spec].name)
        n_spec++;
    for (const pg_nx5_node *c = parent->first; c; c = c->next) {
        const pg_nx5_child *sp = s_spec(spec, c->name);
        size_t slot = sp ? (size_t)(sp - spec) : 0;
        if (!sp && (sp = s_spec(also_spec, c->name)))
            slot = n_spec + (size_t)(sp - also_spec);
        if (!sp) {
            snprintf(path, sizeof path, "%s %s%s", d->where, prefix, c->name);
            return pg_nx5__fail(d, path, "unknown element in %s", what);
        }
        size_t i = ++seen[slot];
        char label[64];
        s_label(label, sizeof label, prefix, sp, i);
        snprintf(path, sizeof path, "%s %s", d->where, label);
        if (sp->max && i > (size_t)sp->max) {
            if (sp->max == 1)
                return pg_nx5__fail(d, path, "given more than once");
            return pg_nx5__fail(d, path, "at most %d %s elements", sp->max, sp->name);
        }
        int rc = s_check_attrs(d, path, c, sp->attrs, sizeof sp->attrs / sizeof sp->attrs[0]);
        if (rc)
            return rc;
        /* A group without elements is checked for what it lacks by its own decoder
         * (<Alias/>: its Surname); an element that holds nothing holds no elements
         * either. */
        if (sp->content == PG_NX5_GROUP) {
            if (!c->first && !pg_nx5__blank(c->text))
                return pg_nx5__fail(d, path, "must hold elements, not text");
        } else if (sp->content == PG_NX5_EMPTY && (c->first || c->text_len)) {
            return pg_nx5__fail(d, path, "must be empty");
        } else if (!c->text) {
            return pg_nx5__fail(d, path, "must hold text, not elements");
        } else if (sp->content == PG_NX5_TEXT && c->text_len == 0) {
            return pg_nx5__fail(d, path, "must not be empty");
        }
    }
    return 0;
}

const pg_nx5_node *pg_nx5__child_named(const pg_nx5_node *n, const char *name)
{
    for (const pg_nx5_node *c = n->first; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* Text of the only child called name, or NULL when absent. */
const char *pg_nx5__text(const pg_nx5_node *n, const char *name)
{
    const pg_nx5_node *c = pg_nx5__child_named(n, name);
    return c ? c->text : NULL;
}

size_t pg_nx5__count(const pg_nx5_node *n, const char *name)
{
    size_t k = 0;
    for (const pg_nx5_node *c = n->first; c; c = c->next)
        k += strcmp(c->name, name) == 0;
    return k;
}

char *pg_nx5__str(const char *s)
{
    return (char *)(s ? s : "");
}

void pg_nx5__path(pg_nx5_dec *d, char *out, size_t size, const char *label)
{
    snprintf(out, size, "%s %s", d->where, label);
}

/* ------------------------------------------------------------ Entity */

static pg_origin *s_origin(pg_nx5_dec *d, const char *gid, size_t pos)
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

static int s_entity_ref(pg_nx5_dec *d, const char *gid, int kind, pg_entity_ref **out)
{
    pg_entity_ref *r = PB(EntityRef, entity_ref);
    char *id = pg_arena_alloc(d->a, PG_UUID_STR_SIZE);
    if (!r || !id)
        return pg_nx5__nomem(d);
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
static int s_entity_head(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu,
                         const s_kind **kind, int *op)
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
            return pg_nx5__fail(d, path, "required");
    }
    snprintf(path, sizeof path, "%s@Kind", d->elem);
    *kind = NULL;
    for (size_t i = 0; i < sizeof s_kinds / sizeof s_kinds[0]; i++)
        if (strcmp(s_kinds[i].nx5, v[0]) == 0)
            *kind = &s_kinds[i];
    if (!*kind)
        return pg_nx5__fail(d, path,
                            "unknown kind (Person, Address, Vehicle, Property, "
                            "Telephone, Occurrence, Custody or IntelReport)");
    snprintf(path, sizeof path, "%s@GID", d->elem);
    if (!s_is_gid(v[1]))
        return pg_nx5__fail(d, path, "must be exactly 16 upper-case hex digits");
    snprintf(d->where, sizeof d->where, "%s GID=%s", d->elem, v[1]);
    uint64_t rev;
    snprintf(path, sizeof path, "%s@Rev", d->elem);
    if (pg_nx5__plain_uint(v[2], 19, &rev) != 0 || rev == 0) /* <= PG_NX5_MAX_REV */
        return pg_nx5__fail(
            d, path,
            "must be an integer 1-9999999999999999999 (at most 19 digits, no leading zeros)");
    snprintf(path, sizeof path, "%s@Op", d->elem);
    static const char *const ops[] = {"Add", "Modify", "Delete", "Merge"};
    *op = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(ops[i], v[3]) == 0)
            *op = i;
    if (*op < 0)
        return pg_nx5__fail(d, path, "must be Add, Modify, Delete or Merge");
    snprintf(path, sizeof path, "%s@Modified", d->elem);
    if ((rc = pg_nx5__local_time(d, path, v[4], &eu->modified_at, &d->ref_year)))
        return rc;
    pg_marking *mk = PB(Marking, marking);
    pg_retention *rt = PB(Retention, retention);
    if (!mk || !rt)
        return pg_nx5__nomem(d);
    int code = 0;
    snprintf(path, sizeof path, "%s@GPMS", d->elem);
    if ((rc = pg_nx5__code(d, path, &pg_nx5_gpms, v[5], &code)))
        return rc;
    mk->classification = code;
    snprintf(path, sizeof path, "%s@Handling", d->elem);
    if ((rc = pg_nx5__code(d, path, &pg_nx5_handling, v[6], &code)))
        return rc;
    mk->handling = code;
    snprintf(path, sizeof path, "%s@MoPI", d->elem);
    if (strlen(v[7]) != 1 || v[7][0] < '1' || v[7][0] > '4')
        return pg_nx5__fail(d, path, "must be a MoPI group 1-4");
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
        return pg_nx5__nomem(d);
    if (pg_identity_entity(d->force, "NICHE", "GID", v[1], eu->id) != 0)
        return pg_errf(PG_EINTERNAL, d->errstr, d->errstr_size, "NX5: no identity for %s", v[1]);
    return 0;
}

/* A GID named twice in MergedFrom: the first repeat in document order. */
static int s_merged_twice(pg_nx5_dec *d, const pg_entity_update *eu)
{
    size_t first_repeat;
    if (pg_refs_first_repeat(eu->merged_from, eu->n_merged_from, 0, d->a, &first_repeat))
        return pg_nx5__nomem(d);
    if (first_repeat == SIZE_MAX)
        return 0;
    char path[128], label[40];
    snprintf(label, sizeof label, "MergedFrom[%zu]@GID", first_repeat + 1);
    pg_nx5__path(d, path, sizeof path, label);
    return pg_nx5__fail(d, path, "%s is named twice", eu->merged_from[first_repeat]->native_id);
}

/* Caveat (Handling C) and MergedFrom (Op Merge). */
static int s_entity_extras(pg_nx5_dec *d, const pg_nx5_node *e, pg_entity_update *eu, int op,
                           const char *gid)
{
    char path[128];
    const char *caveat = pg_nx5__text(e, "Caveat");
    int is_c = eu->marking->handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    if (caveat && !is_c) {
        pg_nx5__path(d, path, sizeof path, "Caveat");
        return pg_nx5__fail(d, path, "only with Handling C");
    }
    /* a Caveat of white space only says no conditions: as if there were none */
    if (is_c && pg_nx5__blank(caveat) && op != 2) {
        pg_nx5__path(d, path, sizeof path, "Caveat");
        return pg_nx5__fail(d, path, "required with Handling C");
    }
    if (caveat) {
        size_t chars = 0;
        for (const char *p = caveat; *p; p++)
            chars += ((unsigned char)*p & 0xC0) != 0x80;
        if (chars > PG_CAVEAT_MAX_CHARS) {
            pg_nx5__path(d, path, sizeof path, "Caveat");
            return pg_nx5__fail(d, path,
                                "%zu characters; the canonical model allows at most %d (NX5 sets "
                                "no limit)",
                                chars, PG_CAVEAT_MAX_CHARS);
        }
        eu->marking->caveat = (char *)caveat;
    }
    size_t nm = pg_nx5__count(e, "MergedFrom");
    if (nm && op != 3) {
        pg_nx5__path(d, path, sizeof path, "MergedFrom[1]");
        return pg_nx5__fail(d, path, "only with Op Merge");
    }
    if (op == 3 && !nm) {
        pg_nx5__path(d, path, sizeof path, "MergedFrom");
        return pg_nx5__fail(d, path, "Op Merge needs at least one MergedFrom");
    }
    if (!nm)
        return 0;
    eu->merged_from = pg_arena_alloc(d->a, nm * sizeof(*eu->merged_from));
    if (!eu->merged_from)
        return pg_nx5__nomem(d);
    for (const pg_nx5_node *c = e->first; c; c = c->next) {
        if (strcmp(c->name, "MergedFrom") != 0)
            continue;
        char label[40];
        snprintf(label, sizeof label, "MergedFrom[%zu]@GID", eu->n_merged_from + 1);
        pg_nx5__path(d, path, sizeof path, label);
        const char *mg = pg_nx5_attr_get(c, "GID");
        if (!mg)
            return pg_nx5__fail(d, path, "required");
        if (!s_is_gid(mg))
            return pg_nx5__fail(d, path, "must be exactly 16 upper-case hex digits");
        if (strcmp(mg, gid) == 0)
            return pg_nx5__fail(d, path, "a record cannot be merged into itself");
        int rc = s_entity_ref(d, mg, eu->kind, &eu->merged_from[eu->n_merged_from]);
        if (rc)
            return rc;
        eu->n_merged_from++;
    }
    return s_merged_twice(d, eu);
}

static int s_entity(pg_nx5_dec *d, const pg_nx5_node *e, size_t entity_no, size_t pos,
                    pg_changeset *cs, pg_nx5_known *known)
{
    snprintf(d->elem, sizeof d->elem, "Entity[%zu]", entity_no);
    snprintf(d->where, sizeof d->where, "%s", d->elem);
    pg_entity_update *eu = PB(EntityUpdate, entity_update);
    if (!eu)
        return pg_nx5__nomem(d);
    const s_kind *kind = NULL;
    int op = 0, rc;
    if ((rc = s_entity_head(d, e, eu, &kind, &op)))
        return rc;
    const char *gid = pg_nx5_attr_get(e, "GID");
    if (!(eu->origin = s_origin(d, gid, pos)))
        return pg_nx5__nomem(d);
    char what[32];
    /* s_entity_head sets kind whenever it returns 0: every other way out is
     * pg_nx5__fail (PG_EINVALID), which the analyzer does not follow, being variadic
     * (test_niche: "Entity[3]@Review: required" takes that way).
     * NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
    snprintf(what, sizeof what, "a %s", kind->nx5);
    if (op == 2) {
        /* Delete carries no children: not even a Caveat. */
        if (e->first) {
            char path[128];
            pg_nx5__path(d, path, sizeof path, e->first->name);
            return pg_nx5__fail(d, path, "Op Delete carries no children");
        }
        if (s_has_text(e))
            return pg_nx5__fail(d, d->where, "text is not allowed (Op Delete carries no children)");
    } else {
        if ((rc = pg_nx5__check_children(d, e, what, kind->children, s_common, "")))
            return rc;
    }
    if ((rc = s_entity_extras(d, e, eu, op, gid)))
        return rc;
    if (op != 2 && (rc = pg_nx5__body((size_t)(kind - s_kinds))(d, e, eu)))
        return rc;
    /* merged_from refs carry the survivor's kind, decided by its body. */
    for (size_t k = 0; k < eu->n_merged_from; k++)
        eu->merged_from[k]->kind = eu->kind;
    *known = (pg_nx5_known){.gid = gid,
                            .kind = eu->kind,
                            .kind_certain = !(op == 2 && kind->kind == EK(ITEM)),
                            .pos = pos,
                            .entity_no = entity_no,
                            .nx5_kind = kind->nx5,
                            .eu = eu};
    return pg_changeset_add_entity(cs, eu, 0) ? pg_nx5__nomem(d) : 0;
}

/* ------------------------------------------------------------ Link */

static int s_known_cmp(const void *a, const void *b)
{
    const pg_nx5_known *x = a, *y = b;
    int c = strcmp(x->gid, y->gid);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The entities of the document with this GID, NULL when it has none: a binary search
 * over the GIDs, however many elements repeat one. */
static const pg_nx5_gid *s_find(const pg_nx5_dec *d, const char *gid)
{
    size_t lo = 0, hi = d->n_gids;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(d->gids[mid].first->gid, gid) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < d->n_gids && strcmp(d->gids[lo].first->gid, gid) == 0 ? &d->gids[lo] : NULL;
}

/* After all entities: one kind per GID. A GID is one record of one Kind; a Property
 * Delete takes item or weapon from another element with that GID, else item. Each GID
 * gets one summary (d->gids), so that links look it up once. */
static int s_settle_kinds(pg_nx5_dec *d)
{
    if (!d->n_known) /* a document of Links only: qsort(NULL, 0) is undefined */
        return 0;
    qsort(d->known, d->n_known, sizeof(*d->known), s_known_cmp);
    if (!(d->gids = pg_arena_alloc(d->a, d->n_known * sizeof(*d->gids))))
        return pg_nx5__nomem(d);
    for (size_t i = 0; i < d->n_known;) {
        size_t j = i, certain = SIZE_MAX;
        for (; j < d->n_known && strcmp(d->known[j].gid, d->known[i].gid) == 0; j++) {
            if (strcmp(d->known[j].nx5_kind, d->known[i].nx5_kind) != 0) {
                char path[64];
                snprintf(path, sizeof path, "Entity[%zu]@Kind", d->known[j].entity_no);
                return pg_nx5__fail(d, path, "GID %s is a %s in Entity[%zu]", d->known[i].gid,
                                    d->known[i].nx5_kind, d->known[i].entity_no);
            }
            if (certain == SIZE_MAX && d->known[j].kind_certain)
                certain = j;
        }
        for (size_t k = i; k < j; k++)
            if (!d->known[k].kind_certain && certain != SIZE_MAX)
                d->known[k].kind = d->known[k].eu->kind = d->known[certain].kind;
        d->gids[d->n_gids++] = (pg_nx5_gid){.first = &d->known[i],
                                            .n = j - i,
                                            .says = &d->known[certain != SIZE_MAX ? certain : i]};
        i = j;
    }
    return 0;
}

/* The article for a Kind's name: "an Address", "a Person". */
static const char *s_a(const char *kind)
{
    return strchr("AEIOU", kind[0]) ? "an" : "a";
}

/* After the kinds are settled: a merge is of records found to be the same person or
 * object (docs/formats/niche-nx5.md), so a MergedFrom GID that the document states as
 * an Entity of another Kind cannot be merged into this one. Entities in document
 * order: ents[i] is Entity[i + 1]. */
static int s_check_merges(pg_nx5_dec *d, const pg_change *ents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const pg_entity_update *eu = ents[i].entity;
        const pg_nx5_known *self =
            eu->n_merged_from ? s_find(d, eu->origin->native_id)->first : NULL;
        for (size_t m = 0; self && m < eu->n_merged_from; m++) {
            const pg_nx5_gid *g = s_find(d, eu->merged_from[m]->native_id);
            if (!g || strcmp(g->first->nx5_kind, self->nx5_kind) == 0)
                continue;
            char path[128];
            snprintf(path, sizeof path, "Entity[%zu] GID=%s MergedFrom[%zu]@GID", i + 1, self->gid,
                     m + 1);
            const char *ours = self->nx5_kind, *theirs = g->first->nx5_kind;
            return pg_nx5__fail(d, path, "%s %s merges only %s records; %s is %s %s (Entity[%zu])",
                                s_a(ours), ours, ours, g->first->gid, s_a(theirs), theirs,
                                g->first->entity_no);
        }
    }
    return 0;
}

static const char *const s_link_attrs[] = {"Role", "From", "To", "Start", "End", "Op"};

/* The end of a link: a GID, with its kind when the document has that entity. */
static int s_link_end(pg_nx5_dec *d, const char *attr, const char *gid, unsigned allowed,
                      const char *allowed_words, const char *role, const pg_nx5_gid **ent,
                      pg_entity_ref **out)
{
    char path[64];
    snprintf(path, sizeof path, "%s@%s", d->elem, attr);
    if (!gid)
        return pg_nx5__fail(d, path, "required");
    if (!s_is_gid(gid))
        return pg_nx5__fail(d, path, "must be exactly 16 upper-case hex digits");
    const pg_nx5_gid *g = s_find(d, gid);
    /* The element that says the kind: a Property Delete does not say item or weapon,
     * another element with its GID may. */
    const pg_nx5_known *k = g ? g->says : NULL;
    int kind = k ? k->kind : EK(UNSPECIFIED);
    if (k) {
        unsigned have = 1u << kind;
        const char *what = k->nx5_kind;
        if (!k->kind_certain) /* a deleted Property: item or weapon */
            have = (1u << EK(ITEM)) | (1u << EK(WEAPON));
        else if (kind == EK(ITEM))
            what = "Property item";
        else if (kind == EK(WEAPON))
            what = "Property weapon";
        if (!(have & allowed))
            return pg_nx5__fail(d, path, "a %s link %s %s; %s is a %s (Entity[%zu])", role,
                                strcmp(attr, "From") == 0 ? "starts at" : "ends at", allowed_words,
                                gid, what, k->entity_no);
    }
    *ent = g;
    return s_entity_ref(d, gid, kind, out);
}

static int s_link(pg_nx5_dec *d, const pg_nx5_node *l, size_t link_no, size_t pos, pg_changeset *cs)
{
    snprintf(d->elem, sizeof d->elem, "Link[%zu]", link_no);
    char path[64];
    int rc =
        s_check_attrs(d, d->elem, l, s_link_attrs, sizeof s_link_attrs / sizeof s_link_attrs[0]);
    if (rc)
        return rc;
    if (l->first) {
        snprintf(path, sizeof path, "%s %s", d->elem, l->first->name);
        return pg_nx5__fail(d, path, "a Link carries no children");
    }
    if (s_has_text(l))
        return pg_nx5__fail(d, d->elem, "text is not allowed (a Link carries no children)");
    pg_link_update *lu = PB(LinkUpdate, link_update);
    if (!lu)
        return pg_nx5__nomem(d);
    const char *role_s = pg_nx5_attr_get(l, "Role");
    snprintf(path, sizeof path, "%s@Role", d->elem);
    if (!role_s)
        return pg_nx5__fail(d, path, "required");
    const pg_nx5_role *role = pg_nx5_role_by_name(role_s);
    if (!role)
        return pg_nx5__fail(d, path, "unknown role");
    const pg_nx5_gid *from_ent = NULL, *to_ent = NULL;
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
            return pg_nx5__fail(d, path, "is before Start");
    }
    lu->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
    if ((s = pg_nx5_attr_get(l, "Op"))) {
        snprintf(path, sizeof path, "%s@Op", d->elem);
        if (strcmp(s, "Delete") != 0)
            return pg_nx5__fail(d, path, "a Link's Op is Delete or absent");
        lu->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    }
    lu->role = role->role;
    if (!(lu->id = pg_arena_alloc(d->a, PG_UUID_STR_SIZE)))
        return pg_nx5__nomem(d);
    if (pg_identity_link(lu->from->id, lu->role, lu->to->id, lu->id) != 0)
        return pg_errf(PG_EINTERNAL, d->errstr, d->errstr_size, "%s: no link identity", d->elem);
    if (!(lu->origin = s_origin(d, NULL, pos)))
        return pg_nx5__nomem(d);
    /* The marking and time of the From record as the document last stated it before
     * this link, else as it states it later. */
    if (from_ent) {
        const pg_nx5_gid *g = from_ent;
        /* the first of them not before the link (they are in document order) */
        size_t lo = 0, hi = g->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (g->first[mid].pos < pos)
                lo = mid + 1;
            else
                hi = mid;
        }
        const pg_nx5_known *use = &g->first[lo ? lo - 1 : 0];
        lu->marking = use->eu->marking;
        lu->modified_at = use->eu->modified_at;
    }
    return pg_changeset_add_link(cs, lu) ? pg_nx5__nomem(d) : 0;
}

/* ------------------------------------------------------------ the document */

static const char *const s_root_attrs[] = {"Source", "Force", "Batch", "Created"};

static int s_root(pg_nx5_dec *d, const pg_nx5_node *root, const pg_adapter_ctx *ctx)
{
    if (strcmp(root->name, "NX5Exchange") != 0)
        return pg_nx5__fail(d, root->name, "the root element must be NX5Exchange");
    int rc = s_check_attrs(d, "NX5Exchange", root, s_root_attrs, 4);
    if (rc)
        return rc;
    const char *v[4];
    for (int i = 0; i < 4; i++) {
        char path[40];
        snprintf(path, sizeof path, "NX5Exchange@%s", s_root_attrs[i]);
        if (!(v[i] = pg_nx5_attr_get(root, s_root_attrs[i])))
            return pg_nx5__fail(d, path, "required");
    }
    if (strcmp(v[0], "NICHE") != 0)
        return pg_nx5__fail(d, "NX5Exchange@Source", "must be NICHE");
    size_t fl = strlen(v[1]);
    int upper = fl >= 2 && fl <= 4;
    for (size_t i = 0; upper && i < fl; i++)
        upper = v[1][i] >= 'A' && v[1][i] <= 'Z';
    if (!upper)
        return pg_nx5__fail(d, "NX5Exchange@Force", "must be 2-4 upper-case letters");
    if (ctx && ctx->force && strcmp(ctx->force, v[1]) != 0)
        return pg_nx5__fail(d, "NX5Exchange@Force", "names another force than this gateway's, %s",
                            ctx->force);
    size_t chars = 0;
    for (const char *p = v[2]; *p; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    if (chars < 1 || chars > 40)
        return pg_nx5__fail(d, "NX5Exchange@Batch", "must be 1-40 characters");
    pg_timestamp *created;
    if ((rc = pg_nx5__local_time(d, "NX5Exchange@Created", v[3], &created, NULL)))
        return rc;
    if (root->stray_text)
        return pg_nx5__fail(d, "NX5Exchange", "text is not allowed between elements");
    if (s_has_text(root))
        return pg_nx5__fail(d, "NX5Exchange",
                            "text is not allowed (Entity and Link elements only)");
    d->force = v[1];
    d->batch = v[2];
    return 0;
}

int pg_nx5_decode(const pg_adapter_ctx *ctx, const uint8_t *data, size_t size, pg_changeset *cs,
                  char *errstr, size_t errstr_size)
{
    size_t start = cs->count;
    pg_nx5_dec dd = {.a = cs->arena, .errstr = errstr, .errstr_size = errstr_size};
    pg_nx5_dec *d = &dd;
    pg_nx5_node *root = NULL;
    int rc = pg_nx5_parse(cs->arena, data, size, &root, errstr, errstr_size);
    if (rc == 0)
        rc = s_root(d, root, ctx);
    /* "each holds one or more changes" (docs/formats/niche-nx5.md) */
    if (rc == 0 && !root->first)
        rc = pg_nx5__fail(d, "NX5Exchange",
                          "holds no changes (one or more Entity or Link elements)");
    size_t n_entities = 0;
    for (const pg_nx5_node *c = rc == 0 ? root->first : NULL; c && rc == 0; c = c->next) {
        if (strcmp(c->name, "Entity") == 0)
            n_entities++;
        else if (strcmp(c->name, "Link") != 0)
            rc = pg_nx5__fail(d, c->name, "unknown element in NX5Exchange (Entity or Link)");
    }
    if (rc == 0 && n_entities &&
        !(d->known = pg_arena_alloc(d->a, n_entities * sizeof(pg_nx5_known))))
        rc = pg_nx5__nomem(d);
    if (rc == 0 && root->n_children &&
        !(d->pos_of = pg_arena_alloc(d->a, root->n_children * sizeof(size_t))))
        rc = pg_nx5__nomem(d);
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
    if (rc == 0)
        rc = s_check_merges(d, cs->changes + start, n_entities);
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
            rc = pg_nx5__nomem(d);
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
