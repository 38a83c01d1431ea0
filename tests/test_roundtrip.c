/* Property test: random valid canonical entities and links, seeded and reproducible,
 * go canonical -> ATX -> canonical -> NX5 -> canonical and come back equal to the
 * original except for the lossy fields of docs/canonical-model.md. */
#include <check.h>
#include <ftw.h>
#include <glib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "idstore.h"
#include "polegate/adapter.h"
#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/geo.h"
#include "polegate/identity.h"
#include "polegate/pole.h"
#include "store.h"

#define K(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x
#define R(x) POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_##x
#define UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT
#define S_NOW_MS 1793534400000LL
/* Rounds and entities per round; PG_ROUNDTRIP_ROUNDS overrides (a longer soak). */
#define S_ROUNDS 200
#define S_ENTITIES 12

static char e[PG_ERRSTR_SIZE];

/* ------------------------------------------------------------ random, reproducible */

static uint64_t s_state;

static uint64_t s_next(void)
{
    /* splitmix64: the same sequence for a seed on every machine */
    uint64_t z = (s_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int s_int(int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(s_next() % (uint64_t)(hi - lo + 1));
}

static int s_chance(int percent)
{
    return s_int(1, 100) <= percent;
}

#define S_PICK(arr) (arr)[s_int(0, (int)(sizeof(arr) / sizeof((arr)[0])) - 1)]

static const char *const s_surnames[] = {"O'Brien", "Łukaszewska", "García-López",
                                         "Smith",   "Nguyễn",      "MacLeod",
                                         "Zoë",     "Øverby",      "Ahmed"};
static const char *const s_given[] = {"Seán",  "Patrick", "José", "María", "Anna", "Jo",
                                      "Kwame", "Zoë",     "Li",   "Émile", "Ruth"};
static const char *const s_towns[] = {"Colchester", "Liverpool", "Chelmsford", "Southport"};
static const char *const s_streets[] = {"14 Crouch Street", "27 Bold Street", "1 High Street"};
static const char *const s_postcodes[] = {"CO3 3ES", "L1 4DS", "CM1 1AA", "PR8 1RH", "SS1 2AB"};
static const char *const s_countries[] = {"GBR", "IRL", "ESP", "POL", "FRA", "NGA"};
static const char *const s_makes[][2] = {{"Ford", "Focus"}, {"Vauxhall", "Corsa"}, {"BMW", "320d"}};

static pg_arena *A; /* the original's arena */

static char *s_str(const char *s)
{
    return pg_arena_strdup(A, s);
}

static char *s_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_fmt(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return s_str(buf);
}

static pg_date *s_date(int y, int m, int d)
{
    pg_date *dt = PG_PB_NEW(A, pg_date, polegate__pole__v1__date);
    dt->year = y, dt->month = m, dt->day = d;
    return dt;
}

static pg_date *s_full_date(int y0, int y1)
{
    return s_date(s_int(y0, y1), s_int(1, 12), s_int(1, 28));
}

/* Whole seconds in 2019-2026, never in the hour that repeats when BST ends (NX5
 * local times without offset read that hour as BST). */
static pg_timestamp *s_time(void)
{
    pg_timestamp *t = PG_PB_NEW(A, pg_timestamp, google__protobuf__timestamp);
    for (;;) {
        t->seconds = 1546300800 + (int64_t)(s_next() % (7ULL * 365 * 86400));
        struct tm tm;
        time_t secs = (time_t)t->seconds;
        gmtime_r(&secs, &tm);
        int last_sunday_oct = tm.tm_mon == 9 && tm.tm_wday == 0 && tm.tm_mday > 24;
        if (!(last_sunday_oct && tm.tm_hour == 1))
            return t;
    }
}

/* A time at or after t, within a few days. */
static pg_timestamp *s_after(const pg_timestamp *t)
{
    pg_timestamp *u = PG_PB_NEW(A, pg_timestamp, google__protobuf__timestamp);
    for (;;) {
        u->seconds = t->seconds + s_int(0, 4 * 86400);
        struct tm tm;
        time_t secs = (time_t)u->seconds;
        gmtime_r(&secs, &tm);
        if (!(tm.tm_mon == 9 && tm.tm_wday == 0 && tm.tm_mday > 24 && tm.tm_hour == 1))
            return u;
    }
}

static char *s_digits(int n)
{
    char buf[32];
    for (int i = 0; i < n; i++)
        buf[i] = (char)('0' + s_int(i == 0 ? 1 : 0, 9));
    buf[n] = 0;
    return s_str(buf);
}

static char *s_pnc(void)
{
    int yy = s_int(90, 125) % 100, year = yy >= 90 ? 1900 + yy : 2000 + yy;
    unsigned serial = (unsigned)s_int(1, 9999999);
    return s_fmt("%04d/%07u%c", year, serial,
                 pg_codes_check_letter((uint64_t)yy * 10000000u + serial));
}

static char *s_cro(void)
{
    unsigned n = (unsigned)s_int(1, 999999), yy = (unsigned)s_int(0, 99);
    return s_fmt("%06u/%02u%c", n, yy, pg_codes_check_letter((uint64_t)yy * 1000000u + n));
}

static char *s_imei(void)
{
    char d[16];
    int sum = 0;
    for (int i = 0; i < 14; i++) {
        d[i] = (char)('0' + s_int(0, 9));
        int v = d[i] - '0';
        if (i % 2 == 1)
            v = v * 2 > 9 ? v * 2 - 9 : v * 2;
        sum += v;
    }
    d[14] = (char)('0' + (10 - sum % 10) % 10);
    d[15] = 0;
    return s_str(d);
}

static char *s_vin(void)
{
    static const char ok[] = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
    char v[18];
    for (int i = 0; i < 17; i++)
        v[i] = ok[s_int(0, (int)sizeof ok - 2)];
    v[17] = 0;
    return s_str(v);
}

static Polegate__Pole__V1__Name *s_name(int max_forenames)
{
    Polegate__Pole__V1__Name *n = PG_PB_NEW(A, Polegate__Pole__V1__Name, polegate__pole__v1__name);
    n->surname = s_str(S_PICK(s_surnames));
    n->n_forenames = (size_t)s_int(0, max_forenames);
    n->forenames = pg_arena_alloc(A, (n->n_forenames + 1) * sizeof(char *));
    for (size_t i = 0; i < n->n_forenames; i++)
        n->forenames[i] = s_str(S_PICK(s_given));
    return n;
}

/* ------------------------------------------------------------ entities */

static void s_person(pg_entity_update *u)
{
    Polegate__Pole__V1__Person *p =
        PG_PB_NEW(A, Polegate__Pole__V1__Person, polegate__pole__v1__person);
    p->name = s_name(s_chance(20) ? 7 : 3);
    if (s_chance(50))
        p->title = s_str(s_chance(50) ? "Mr" : "Dr");
    int precision = s_int(0, 3); /* none, year, month, day */
    if (precision)
        p->date_of_birth = s_date(s_int(1940, 2008), precision >= 2 ? s_int(1, 12) : 0,
                                  precision == 3 ? s_int(1, 28) : 0);
    if (s_chance(40))
        p->place_of_birth = s_str(S_PICK(s_towns));
    p->sex = s_int(0, 4);
    p->self_defined_ethnicity = s_int(0, 20);
    static const int od[] = {0, 1, 2, 3, 4, 5, 6, 9};
    p->officer_defined_ethnicity = S_PICK(od);
    if (s_chance(60))
        p->nationality = s_str(S_PICK(s_countries));
    if (s_chance(50))
        p->pnc_id = s_pnc();
    if (s_chance(30))
        p->cro_number = s_cro();
    p->n_aliases = (size_t)s_int(0, 2);
    p->aliases = pg_arena_alloc(A, (p->n_aliases + 1) * sizeof(*p->aliases));
    for (size_t i = 0; i < p->n_aliases; i++) {
        Polegate__Pole__V1__Alias *a =
            PG_PB_NEW(A, Polegate__Pole__V1__Alias, polegate__pole__v1__alias);
        a->name = s_name(2);
        if (s_chance(50))
            a->date_of_birth = s_date(s_int(1940, 2008), s_chance(50) ? s_int(1, 12) : 0, 0);
        p->aliases[i] = a;
    }
    p->n_warning_markers = (size_t)s_int(0, 3);
    p->warning_markers = pg_arena_alloc(A, (p->n_warning_markers + 1) * sizeof(int));
    for (size_t i = 0; i < p->n_warning_markers; i++)
        p->warning_markers[i] = (int)(1 + (i * 5 + (size_t)s_int(0, 4)) % 14);
    if (s_chance(30))
        p->occupation = s_str("Driver");
    u->person = p;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
}

static void s_location(pg_entity_update *u)
{
    Polegate__Pole__V1__Location *l =
        PG_PB_NEW(A, Polegate__Pole__V1__Location, polegate__pole__v1__location);
    if (s_chance(30))
        l->premises = s_str("Flat 2");
    l->street = s_str(S_PICK(s_streets));
    if (s_chance(30))
        l->locality = s_str("Lexden");
    l->town = s_str(S_PICK(s_towns));
    l->postcode = s_str(S_PICK(s_postcodes));
    if (s_chance(50))
        l->uprn = s_digits(s_int(6, 12));
    if (s_chance(80)) {
        l->geo = PG_PB_NEW(A, Polegate__Pole__V1__GeoPoint, polegate__pole__v1__geo_point);
        l->geo->lat = 51.0 + (double)s_int(0, 3000000) / 1e6;
        l->geo->lon = -2.5 + (double)s_int(0, 3500000) / 1e6;
    }
    if (s_chance(30))
        l->description = s_str("Rear garden, side gate");
    u->location = l;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION;
}

static void s_vehicle(pg_entity_update *u)
{
    Polegate__Pole__V1__Vehicle *v =
        PG_PB_NEW(A, Polegate__Pole__V1__Vehicle, polegate__pole__v1__vehicle);
    v->vrm = s_fmt("%c%c%02d%c%c%c", 'A' + s_int(0, 25), 'A' + s_int(0, 25), s_int(10, 99),
                   'A' + s_int(0, 25), 'A' + s_int(0, 25), 'A' + s_int(0, 25));
    int m = s_int(0, 2);
    v->make = s_str(s_makes[m][0]);
    v->model = s_str(s_makes[m][1]);
    v->colour = s_int(0, 10);
    if (s_chance(40))
        v->vin = s_vin();
    if (s_chance(60))
        v->year = s_int(1990, 2026);
    u->vehicle = v;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE;
}

static void s_item(pg_entity_update *u)
{
    Polegate__Pole__V1__Item *it = PG_PB_NEW(A, Polegate__Pole__V1__Item, polegate__pole__v1__item);
    it->category = s_int(1, 8);
    it->description = s_str("Laptop, silver, 13 inch");
    if (s_chance(40))
        it->serial_number = s_fmt("SN%s", s_digits(8));
    if (s_chance(60)) {
        it->value = PG_PB_NEW(A, Polegate__Pole__V1__Money, polegate__pole__v1__money);
        it->value->currency = s_str(s_chance(80) ? "GBP" : "EUR");
        it->value->minor_units = s_int(1, 5000000);
    }
    u->item = it;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM;
}

static void s_weapon(pg_entity_update *u)
{
    Polegate__Pole__V1__Weapon *w =
        PG_PB_NEW(A, Polegate__Pole__V1__Weapon, polegate__pole__v1__weapon);
    w->category = s_int(1, 4);
    w->description = s_str("Lock knife, 9cm blade");
    if (s_chance(30))
        w->serial_number = s_fmt("W%s", s_digits(6));
    u->weapon = w;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_WEAPON;
}

static void s_telephone(pg_entity_update *u)
{
    Polegate__Pole__V1__Telephone *t =
        PG_PB_NEW(A, Polegate__Pole__V1__Telephone, polegate__pole__v1__telephone);
    t->number = s_fmt("+447700900%03d", s_int(0, 999));
    t->kind = s_int(0, 3);
    if (s_chance(40))
        t->imei = s_imei();
    u->telephone = t;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE;
}

static void s_occurrence(pg_entity_update *u)
{
    Polegate__Pole__V1__Occurrence *o =
        PG_PB_NEW(A, Polegate__Pole__V1__Occurrence, polegate__pole__v1__occurrence);
    o->reference = s_fmt("ESX/26/%s", s_digits(5));
    o->kind = s_chance(70) ? 1 : 2;
    if (o->kind == 1) {
        o->n_offences = (size_t)s_int(1, 2);
        o->offences = pg_arena_alloc(A, o->n_offences * sizeof(*o->offences));
        for (size_t i = 0; i < o->n_offences; i++) {
            Polegate__Pole__V1__Offence *f =
                PG_PB_NEW(A, Polegate__Pole__V1__Offence, polegate__pole__v1__offence);
            f->ho_class = s_int(1, 999);
            f->ho_subclass = s_int(0, 99);
            if (s_chance(70))
                f->description = s_str("Burglary - residential");
            o->offences[i] = f;
        }
    }
    o->occurred_from = s_time();
    if (s_chance(60))
        o->occurred_to = s_after(o->occurred_from);
    if (s_chance(70))
        o->reported_at = s_after(o->occurred_to ? o->occurred_to : o->occurred_from);
    o->status = s_int(0, 4);
    if (s_chance(60))
        o->summary = s_str("Entry forced via the rear door; jewellery taken.");
    u->occurrence = o;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE;
}

static void s_custody(pg_entity_update *u)
{
    Polegate__Pole__V1__Custody *c =
        PG_PB_NEW(A, Polegate__Pole__V1__Custody, polegate__pole__v1__custody);
    c->reference = s_fmt("ESX/CU/26/%s", s_digits(5));
    c->arrested_at = s_time();
    if (s_chance(70))
        c->arrived_at = s_after(c->arrested_at);
    if (s_chance(50))
        c->released_at = s_after(c->arrived_at ? c->arrived_at : c->arrested_at);
    if (s_chance(70))
        c->station = s_str("Colchester");
    c->outcome = s_int(0, 5);
    u->custody = c;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_CUSTODY;
}

static void s_intelligence(pg_entity_update *u)
{
    Polegate__Pole__V1__Intelligence *n =
        PG_PB_NEW(A, Polegate__Pole__V1__Intelligence, polegate__pole__v1__intelligence);
    n->reference = s_fmt("ESX/INT/26/%s", s_digits(6));
    n->reported_at = s_time();
    n->text = s_str("Subject seen with a knife in the town centre at weekends.");
    if (s_chance(70)) {
        n->grading = PG_PB_NEW(A, Polegate__Pole__V1__Grading, polegate__pole__v1__grading);
        n->grading->source = s_int(1, 3);
        n->grading->intelligence = s_int(1, 5);
        n->grading->handling = s_int(1, 2);
    }
    u->intelligence = n;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE;
}

static pg_entity_update *s_entity(int kind, int serial)
{
    static const char letters[] = "PLVIWTOCN";
    static const char *const types[] = {"PERSON",     "LOCATION", "VEHICLE",
                                        "ITEM",       "WEAPON",   "TELEPHONE",
                                        "OCCURRENCE", "CUSTODY",  "INTELLIGENCE"};
    pg_entity_update *u = PG_PB_NEW(A, pg_entity_update, polegate__pole__v1__entity_update);
    u->kind = kind;
    u->operation = UPSERT;
    u->version = (uint64_t)s_int(1, 50);
    u->origin = PG_PB_NEW(A, pg_origin, polegate__pole__v1__origin);
    u->origin->force = s_str("ESX");
    u->origin->system = s_str("ATHENA");
    u->origin->native_type = s_str(types[kind - 1]);
    u->origin->native_id = s_fmt("%c%010d", letters[kind - 1], serial);
    char id[PG_UUID_STR_SIZE];
    pg_identity_entity("ESX", "ATHENA", types[kind - 1], u->origin->native_id, id);
    u->id = s_str(id);
    u->modified_at = s_time();
    u->marking = PG_PB_NEW(A, pg_marking, polegate__pole__v1__marking);
    u->marking->classification = s_int(1, 2);
    u->marking->handling = s_chance(80) ? 1 : 2;
    if (u->marking->handling == 2)
        u->marking->caveat = s_str("Not to be disclosed without reference to the originator.");
    u->retention = PG_PB_NEW(A, pg_retention, polegate__pole__v1__retention);
    u->retention->mopi_group = s_int(1, 4);
    u->retention->review_date = s_full_date(2027, 2040);
    switch (kind) {
    case K(PERSON):
        s_person(u);
        break;
    case K(LOCATION):
        s_location(u);
        break;
    case K(VEHICLE):
        s_vehicle(u);
        break;
    case K(ITEM):
        s_item(u);
        break;
    case K(WEAPON):
        s_weapon(u);
        break;
    case K(TELEPHONE):
        s_telephone(u);
        break;
    case K(OCCURRENCE):
        s_occurrence(u);
        break;
    case K(CUSTODY):
        s_custody(u);
        break;
    default:
        s_intelligence(u);
        break;
    }
    return u;
}

/* Roles and the kinds they link (docs/formats/codes.md ROLE table). */
static const struct {
    int role, from, to;
} s_roles[] = {
    {R(HOME_ADDRESS), K(PERSON), K(LOCATION)},
    {R(OTHER_ADDRESS), K(PERSON), K(LOCATION)},
    {R(SUSPECT), K(OCCURRENCE), K(PERSON)},
    {R(VICTIM), K(OCCURRENCE), K(PERSON)},
    {R(WITNESS), K(OCCURRENCE), K(PERSON)},
    {R(OFFENDER), K(OCCURRENCE), K(PERSON)},
    {R(REPORTER), K(OCCURRENCE), K(PERSON)},
    {R(OCCURRED_AT), K(OCCURRENCE), K(LOCATION)},
    {R(OCCURRED_AT), K(CUSTODY), K(LOCATION)},
    {R(OCCURRED_AT), K(INTELLIGENCE), K(LOCATION)},
    {R(STOLEN), K(OCCURRENCE), K(ITEM)},
    {R(USED), K(OCCURRENCE), K(WEAPON)},
    {R(USED), K(OCCURRENCE), K(ITEM)},
    {R(VEHICLE_INVOLVED), K(OCCURRENCE), K(VEHICLE)},
    {R(KEEPER), K(PERSON), K(VEHICLE)},
    {R(OWNER), K(PERSON), K(ITEM)},
    {R(OWNER), K(PERSON), K(WEAPON)},
    {R(OWNER), K(PERSON), K(VEHICLE)},
    {R(USES), K(PERSON), K(TELEPHONE)},
    {R(DETAINED), K(CUSTODY), K(PERSON)},
    {R(SUBJECT), K(INTELLIGENCE), K(PERSON)},
    {R(SUBJECT), K(INTELLIGENCE), K(VEHICLE)},
    {R(SUBJECT), K(INTELLIGENCE), K(TELEPHONE)},
    {R(SUBJECT), K(INTELLIGENCE), K(LOCATION)},
    {R(ASSOCIATE), K(PERSON), K(PERSON)},
};

static pg_entity_ref *s_ref(const pg_entity_update *u)
{
    pg_entity_ref *r = PG_PB_NEW(A, pg_entity_ref, polegate__pole__v1__entity_ref);
    r->id = u->id;
    r->kind = u->kind;
    r->native_id = u->origin->native_id;
    return r;
}

/* The original: S_ENTITIES entities (every kind at least once over the rounds) and
 * the links between them, as an ATX-like changeset (each entity, then its links). */
static void s_original(pg_changeset *cs)
{
    pg_entity_update *ents[S_ENTITIES];
    for (int i = 0; i < S_ENTITIES; i++)
        ents[i] = s_entity(i < 9 ? i + 1 : s_int(1, 9), s_int(1, 999999999));
    for (int i = 0; i < S_ENTITIES; i++) {
        pg_changeset_add_entity(cs, ents[i], 1);
        for (int j = 0; j < S_ENTITIES; j++) {
            if (j == i || !s_chance(25))
                continue;
            for (size_t r = 0; r < sizeof s_roles / sizeof s_roles[0]; r++) {
                if (s_roles[r].from != (int)ents[i]->kind || s_roles[r].to != (int)ents[j]->kind)
                    continue;
                pg_link_update *l = PG_PB_NEW(A, pg_link_update, polegate__pole__v1__link_update);
                l->operation = UPSERT;
                l->version = 1;
                l->from = s_ref(ents[i]);
                l->to = s_ref(ents[j]);
                l->role = s_roles[r].role;
                char id[PG_UUID_STR_SIZE];
                pg_identity_link(l->from->id, l->role, l->to->id, id);
                l->id = s_str(id);
                l->origin = ents[i]->origin;
                l->marking = ents[i]->marking;
                l->modified_at = ents[i]->modified_at;
                if (s_chance(40))
                    l->valid_from = s_full_date(2015, 2024);
                if (s_chance(20))
                    l->valid_to = s_full_date(2025, 2026);
                pg_changeset_add_link(cs, l);
                break;
            }
        }
    }
}

/* ------------------------------------------------------------ what may differ */

/* docs/canonical-model.md "Lossy fields": forenames into ATX (more than 5: the first
 * 4, the rest joined as the 5th) and into NX5 (more than 3: the first 2, the rest
 * joined as the 3rd), names upper-cased by NX5. */
static void s_fold(Polegate__Pole__V1__Name *n, size_t keep)
{
    if (n->n_forenames > keep) {
        GString *rest = g_string_new(NULL);
        for (size_t i = keep - 1; i < n->n_forenames; i++)
            g_string_append_printf(rest, "%s%s", i > keep - 1 ? " " : "", n->forenames[i]);
        n->forenames[keep - 1] = s_str(rest->str);
        n->n_forenames = keep;
        g_string_free(rest, TRUE);
    }
}

static void s_upper(char **s)
{
    if (*s && **s) {
        gchar *u = g_utf8_strup(*s, -1);
        *s = s_str(u);
        g_free(u);
    }
}

static void s_name_expected(Polegate__Pole__V1__Name *n)
{
    if (!n)
        return;
    s_fold(n, 5);
    s_fold(n, 3);
    s_upper(&n->surname);
    for (size_t i = 0; i < n->n_forenames; i++)
        s_upper(&n->forenames[i]);
}

/* The original entity as the NX5 RMS must hold it after both legs. */
static void s_expected(pg_entity_update *u)
{
    if (u->body_case == POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON) {
        Polegate__Pole__V1__Person *p = u->person;
        s_name_expected(p->name);
        for (size_t i = 0; i < p->n_aliases; i++)
            s_name_expected(p->aliases[i]->name);
        if (p->pnc_id && *p->pnc_id) {
            /* NX5 writes the short form; the century comes back by the Modified-year
             * rule (in UK time; the year is the same in every generated instant's
             * UTC and London but at New Year, which the rule tolerates) */
            char shortf[12], longf[14];
            struct tm tm;
            time_t secs = (time_t)u->modified_at->seconds;
            gmtime_r(&secs, &tm);
            ck_assert_int_eq(pg_pnc_long_to_short(p->pnc_id, shortf, e, sizeof e), 0);
            ck_assert_int_eq(pg_pnc_short_to_long(shortf, tm.tm_year + 1900, longf, e, sizeof e),
                             0);
            p->pnc_id = s_str(longf);
        }
    }
    if (u->body_case == POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM && u->item->value &&
        strcmp(u->item->value->currency, "GBP"))
        u->item->value = NULL; /* NX5 holds pence only */
}

/* Compare two messages field by field (path names the place for the message). Grid
 * references come from NX5 itself and positions must agree within 5 m. */
static void s_compare(const ProtobufCMessage *a, const ProtobufCMessage *b, const char *path,
                      GString *diff);

static void s_compare_value(const ProtobufCFieldDescriptor *f, const void *va, const void *vb,
                            const char *path, GString *diff)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *sa = *(char *const *)va, *sb = *(char *const *)vb;
        if (strcmp(sa ? sa : "", sb ? sb : ""))
            g_string_append_printf(diff, "%s: '%s' != '%s'\n", path, sa ? sa : "", sb ? sb : "");
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        s_compare(*(ProtobufCMessage *const *)va, *(ProtobufCMessage *const *)vb, path, diff);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (*(const double *)va != *(const double *)vb)
            g_string_append_printf(diff, "%s: %.9g != %.9g\n", path, *(const double *)va,
                                   *(const double *)vb);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
        if (*(const uint64_t *)va != *(const uint64_t *)vb)
            g_string_append_printf(diff, "%s: %llu != %llu\n", path,
                                   (unsigned long long)*(const uint64_t *)va,
                                   (unsigned long long)*(const uint64_t *)vb);
        break;
    default: /* int32, enum, bool */
        if (*(const int32_t *)va != *(const int32_t *)vb)
            g_string_append_printf(diff, "%s: %d != %d\n", path, *(const int32_t *)va,
                                   *(const int32_t *)vb);
        break;
    }
}

static double s_metres(const Polegate__Pole__V1__GeoPoint *a, const Polegate__Pole__V1__GeoPoint *b)
{
    double dlat = (a->lat - b->lat) * 111320.0;
    double dlon = (a->lon - b->lon) * 111320.0 * cos(a->lat * M_PI / 180.0);
    return sqrt(dlat * dlat + dlon * dlon);
}

static void s_compare(const ProtobufCMessage *a, const ProtobufCMessage *b, const char *path,
                      GString *diff)
{
    if (!a || !b) {
        if (a != b)
            g_string_append_printf(diff, "%s: %s != %s\n", path, a ? "set" : "absent",
                                   b ? "set" : "absent");
        return;
    }
    const ProtobufCMessageDescriptor *d = a->descriptor;
    if (d == &polegate__pole__v1__geo_point__descriptor) {
        double m = s_metres((const void *)a, (const void *)b);
        if (m > 5.0)
            g_string_append_printf(diff, "%s: %.1f m apart\n", path, m);
        return;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char sub[256];
        snprintf(sub, sizeof sub, "%s.%s", path, f->name);
        if (d == &polegate__pole__v1__location__descriptor && !strcmp(f->name, "grid"))
            continue; /* ATX does not carry it; NX5 has it from the position */
        const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t na = *(const size_t *)((const char *)a + f->quantifier_offset);
            size_t nb = *(const size_t *)((const char *)b + f->quantifier_offset);
            if (na != nb) {
                g_string_append_printf(diff, "%s: %zu != %zu values\n", sub, na, nb);
                continue;
            }
            size_t sz = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE
                            ? sizeof(void *)
                        : f->type == PROTOBUF_C_TYPE_DOUBLE || f->type == PROTOBUF_C_TYPE_INT64 ||
                                f->type == PROTOBUF_C_TYPE_UINT64
                            ? 8
                            : 4;
            for (size_t k = 0; k < na; k++) {
                char item[300];
                snprintf(item, sizeof item, "%s[%zu]", sub, k);
                s_compare_value(f, *(char *const *)pa + k * sz, *(char *const *)pb + k * sz, item,
                                diff);
            }
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t ca = *(const uint32_t *)((const char *)a + f->quantifier_offset);
            uint32_t cb = *(const uint32_t *)((const char *)b + f->quantifier_offset);
            if (ca != f->id && cb != f->id)
                continue;
            if (ca != cb) {
                g_string_append_printf(diff, "%s: body %u != %u\n", sub, ca, cb);
                continue;
            }
        }
        s_compare_value(f, pa, pb, sub, diff);
    }
}

/* ------------------------------------------------------------ the round trip */

typedef struct s_trip {
    pg_changeset *orig, *c1, *c2;
    pg_buf atx, nx5;
    char dir[64];
    pg_store *store;
    pg_idstore *idmap;
    uint64_t seed;
} s_trip;

static int s_decode_atx_line(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_trip *t = arg;
    int rc = pg_adapter_athena.decode(NULL, msg, len, t->c1, e, sizeof e);
    ck_assert_msg(rc == 0, "seed %llu: line %zu: ATX decode: %s\n%.*s", (unsigned long long)t->seed,
                  pos, e, (int)len, (const char *)msg);
    return 0;
}

/* The entity of c2 that came from original entity id (through the GID it was given). */
static const pg_entity_update *s_find(s_trip *t, const char *id, char *gid_out)
{
    char gid[32], u[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_idstore_lookup(t->idmap, NULL, id, gid, sizeof gid, e, sizeof e), 0);
    pg_identity_entity("ESX", "NICHE", "GID", gid, u);
    if (gid_out)
        strcpy(gid_out, gid);
    for (size_t i = 0; i < t->c2->count; i++)
        if (t->c2->changes[i].type == PG_CHANGE_ENTITY && !strcmp(t->c2->changes[i].entity->id, u))
            return t->c2->changes[i].entity;
    return NULL;
}

static void s_round(s_trip *t, uint64_t seed)
{
    t->seed = seed;
    s_state = seed;
    pg_changeset_reset(t->orig);
    pg_changeset_reset(t->c1);
    pg_changeset_reset(t->c2);
    pg_buf_reset(&t->atx);
    pg_buf_reset(&t->nx5);
    A = t->orig->arena;
    s_original(t->orig);

    /* canonical -> ATX (ids as they are: an Athena-origin record) -> canonical */
    pg_adapter_ctx actx = {.now_ms = S_NOW_MS};
    int rc = pg_adapter_athena.encode(&actx, t->orig, &t->atx, e, sizeof e);
    ck_assert_msg(rc == 0, "seed %llu: ATX encode: %s", (unsigned long long)seed, e);
    ck_assert_int_eq(pg_adapter_athena.split(t->atx.data, t->atx.len, s_decode_atx_line, t), 0);

    /* -> NX5 (GIDs from an id map, as the partner direction gives them) -> canonical */
    pg_idstore_use(t->idmap, NULL);
    pg_adapter_ctx nctx = {.idmap = pg_idstore_iface(t->idmap), .now_ms = S_NOW_MS, .batch = "rt"};
    rc = pg_adapter_niche.encode(&nctx, t->c1, &t->nx5, e, sizeof e);
    ck_assert_msg(rc == 0, "seed %llu: NX5 encode: %s", (unsigned long long)seed, e);
    rc = pg_adapter_niche.decode(NULL, t->nx5.data, t->nx5.len, t->c2, e, sizeof e);
    ck_assert_msg(rc == 0, "seed %llu: NX5 decode: %s\n%.*s", (unsigned long long)seed, e,
                  (int)t->nx5.len, (const char *)t->nx5.data);

    /* compare, ids aside */
    GString *diff = g_string_new(NULL);
    size_t links = 0, links2 = 0;
    for (size_t i = 0; i < t->orig->count; i++) {
        const pg_change *c = &t->orig->changes[i];
        if (c->type == PG_CHANGE_LINK) {
            links++;
            continue;
        }
        char gid[32];
        const pg_entity_update *got = s_find(t, c->entity->id, gid);
        if (!got) {
            g_string_append_printf(diff, "%s (%s): not in the NX5 output\n", c->entity->id, gid);
            continue;
        }
        /* the expected: a copy of the original with the lossy fields as documented */
        size_t len = protobuf_c_message_get_packed_size(&c->entity->base);
        uint8_t *buf = g_malloc(len + 1);
        protobuf_c_message_pack(&c->entity->base, buf);
        ProtobufCAllocator alloc;
        pg_pb_arena_allocator(A, &alloc);
        pg_entity_update *want = polegate__pole__v1__entity_update__unpack(&alloc, len, buf);
        g_free(buf);
        s_expected(want);
        /* what the RMS assigns: ids, origin system and native id (Import sections) */
        want->id = got->id;
        want->origin = got->origin;
        ck_assert_str_eq(got->origin->force, "ESX");
        char where[64];
        snprintf(where, sizeof where, "%s %s", c->entity->origin->native_id, gid);
        s_compare(&want->base, &got->base, where, diff);
    }
    /* links by their ends (mapped) and role, with their validity */
    for (size_t i = 0; i < t->c2->count; i++)
        links2 += t->c2->changes[i].type == PG_CHANGE_LINK;
    if (links != links2)
        g_string_append_printf(diff, "%zu links != %zu\n", links, links2);
    for (size_t i = 0; i < t->orig->count; i++) {
        const pg_link_update *l = t->orig->changes[i].link;
        if (t->orig->changes[i].type != PG_CHANGE_LINK)
            continue;
        const pg_entity_update *from = s_find(t, l->from->id, NULL),
                               *to = s_find(t, l->to->id, NULL);
        const pg_link_update *m = NULL;
        for (size_t k = 0; from && to && k < t->c2->count && !m; k++) {
            const pg_link_update *x = t->c2->changes[k].link;
            if (t->c2->changes[k].type == PG_CHANGE_LINK && x->role == l->role &&
                !strcmp(x->from->id, from->id) && !strcmp(x->to->id, to->id))
                m = x;
        }
        char where[96];
        snprintf(where, sizeof where, "link %s -%d-> %s", l->from->native_id, l->role,
                 l->to->native_id);
        if (!m) {
            g_string_append_printf(diff, "%s: not in the NX5 output\n", where);
            continue;
        }
        char vf[128], vt[128];
        snprintf(vf, sizeof vf, "%s.valid_from", where);
        snprintf(vt, sizeof vt, "%s.valid_to", where);
        s_compare(l->valid_from ? &l->valid_from->base : NULL,
                  m->valid_from ? &m->valid_from->base : NULL, vf, diff);
        s_compare(l->valid_to ? &l->valid_to->base : NULL, m->valid_to ? &m->valid_to->base : NULL,
                  vt, diff);
    }
    ck_assert_msg(diff->len == 0, "seed %llu: the round trip differs:\n%s",
                  (unsigned long long)seed, diff->str);
    g_string_free(diff, TRUE);
}

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

START_TEST(test_roundtrip_random)
{
    s_trip t = {.atx = PG_BUF_INIT, .nx5 = PG_BUF_INIT};
    t.orig = pg_changeset_new();
    t.c1 = pg_changeset_new();
    t.c2 = pg_changeset_new();
    snprintf(t.dir, sizeof t.dir, "/tmp/pg-test-roundtrip-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t.dir));
    t.store = pg_store_new(t.dir, 0, e, sizeof e);
    pg_store_set_durable(t.store, 0);
    pg_idstore_config icfg = {.format = "nx5"};
    t.idmap = pg_idstore_new(t.store, &icfg, e, sizeof e);
    ck_assert_ptr_nonnull(t.idmap);
    const char *env = getenv("PG_ROUNDTRIP_ROUNDS");
    int rounds = env && atoi(env) > 0 ? atoi(env) : S_ROUNDS;
    const char *seed_env = getenv("PG_ROUNDTRIP_SEED");
    uint64_t first = seed_env ? strtoull(seed_env, NULL, 10) : 1;
    for (int r = 0; r < rounds; r++)
        s_round(&t, first + (uint64_t)r);
    pg_idstore_destroy(&t.idmap);
    pg_store_destroy(&t.store);
    nftw(t.dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    pg_changeset_destroy(&t.orig);
    pg_changeset_destroy(&t.c1);
    pg_changeset_destroy(&t.c2);
    pg_buf_free(&t.atx);
    pg_buf_free(&t.nx5);
}
END_TEST

START_TEST(test_generator_is_reproducible)
{
    /* The same seed, the same bytes: a failure names a seed that reproduces it. */
    pg_changeset *a = pg_changeset_new(), *b = pg_changeset_new();
    pg_buf x = PG_BUF_INIT, y = PG_BUF_INIT;
    pg_adapter_ctx ctx = {.now_ms = S_NOW_MS};
    s_state = 42;
    A = a->arena;
    s_original(a);
    s_state = 42;
    A = b->arena;
    s_original(b);
    ck_assert_int_eq(pg_adapter_athena.encode(&ctx, a, &x, e, sizeof e), 0);
    ck_assert_int_eq(pg_adapter_athena.encode(&ctx, b, &y, e, sizeof e), 0);
    ck_assert_uint_eq(x.len, y.len);
    ck_assert_int_eq(memcmp(x.data, y.data, x.len), 0);
    ck_assert_uint_gt(a->count, S_ENTITIES);
    pg_buf_free(&x);
    pg_buf_free(&y);
    pg_changeset_destroy(&a);
    pg_changeset_destroy(&b);
}
END_TEST

START_TEST(test_comparison_catches_a_change)
{
    /* The comparison itself fails on a real difference (and passes on a lossy one). */
    pg_changeset *cs = pg_changeset_new();
    s_state = 7;
    A = cs->arena;
    pg_entity_update *p = s_entity(K(PERSON), 1);
    pg_entity_update *q = s_entity(K(PERSON), 1);
    GString *diff = g_string_new(NULL);
    s_compare(&p->base, &p->base, "same", diff);
    ck_assert_uint_eq(diff->len, 0);
    q->person->name = p->person->name;
    q->person->sex = p->person->sex == 2 ? 3 : 2;
    s_compare(&p->person->base, &q->person->base, "p", diff);
    ck_assert_ptr_nonnull(strstr(diff->str, "p.sex: "));
    pg_entity_update *l1 = s_entity(K(LOCATION), 2), *l2 = s_entity(K(LOCATION), 2);
    if (!l1->location->geo)
        l1->location->geo =
            PG_PB_NEW(A, Polegate__Pole__V1__GeoPoint, polegate__pole__v1__geo_point);
    l2->location->geo = PG_PB_NEW(A, Polegate__Pole__V1__GeoPoint, polegate__pole__v1__geo_point);
    *l2->location->geo = *l1->location->geo;
    l2->location->geo->lat += 3.0 / 111320.0; /* 3 m: the same place */
    g_string_truncate(diff, 0);
    s_compare(&l1->location->geo->base, &l2->location->geo->base, "geo", diff);
    ck_assert_uint_eq(diff->len, 0);
    l2->location->geo->lat += 10.0 / 111320.0;
    s_compare(&l1->location->geo->base, &l2->location->geo->base, "geo", diff);
    ck_assert_ptr_nonnull(strstr(diff->str, "m apart"));
    g_string_free(diff, TRUE);
    pg_changeset_destroy(&cs);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("roundtrip");
    TCase *tc = tcase_create("property");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_generator_is_reproducible);
    tcase_add_test(tc, test_comparison_catches_a_change);
    tcase_add_test(tc, test_roundtrip_random);
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
