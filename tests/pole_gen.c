/* Random valid canonical entities and links for tests: seeded, so that the same seed
 * gives the same records on every machine (a failure names a seed that reproduces it). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pole_gen.h"
#include "polegate/codes.h"
#include "polegate/identity.h"

#define K(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x
#define R(x) POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_##x
#define UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT

static uint64_t s_state;

void pg_gen_seed(uint64_t seed)
{
    s_state = seed;
}

static uint64_t s_next(void)
{
    /* splitmix64: the same sequence for a seed on every machine */
    uint64_t z = (s_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int pg_gen_int(int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(s_next() % (uint64_t)(hi - lo + 1));
}

int pg_gen_chance(int percent)
{
    return pg_gen_int(1, 100) <= percent;
}

#define S_PICK(arr) (arr)[pg_gen_int(0, (int)(sizeof(arr) / sizeof((arr)[0])) - 1)]

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

static pg_arena *A; /* where what is generated is allocated */

void pg_gen_arena(pg_arena *arena)
{
    A = arena;
}

char *pg_gen_str(const char *s)
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
    return pg_gen_str(buf);
}

static pg_date *s_date(int y, int m, int d)
{
    pg_date *dt = PG_PB_NEW(A, pg_date, polegate__pole__v1__date);
    dt->year = y, dt->month = m, dt->day = d;
    return dt;
}

static pg_date *s_full_date(int y0, int y1)
{
    return s_date(pg_gen_int(y0, y1), pg_gen_int(1, 12), pg_gen_int(1, 28));
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
        u->seconds = t->seconds + pg_gen_int(0, 4 * 86400);
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
        buf[i] = (char)('0' + pg_gen_int(i == 0 ? 1 : 0, 9));
    buf[n] = 0;
    return pg_gen_str(buf);
}

static char *s_pnc(void)
{
    int yy = pg_gen_int(90, 125) % 100, year = yy >= 90 ? 1900 + yy : 2000 + yy;
    unsigned serial = (unsigned)pg_gen_int(1, 9999999);
    return s_fmt("%04d/%07u%c", year, serial,
                 pg_codes_check_letter((uint64_t)yy * 10000000u + serial));
}

static char *s_cro(void)
{
    unsigned n = (unsigned)pg_gen_int(1, 999999), yy = (unsigned)pg_gen_int(0, 99);
    return s_fmt("%06u/%02u%c", n, yy, pg_codes_check_letter((uint64_t)yy * 1000000u + n));
}

static char *s_imei(void)
{
    char d[16];
    int sum = 0;
    for (int i = 0; i < 14; i++) {
        d[i] = (char)('0' + pg_gen_int(0, 9));
        int v = d[i] - '0';
        if (i % 2 == 1)
            v = v * 2 > 9 ? v * 2 - 9 : v * 2;
        sum += v;
    }
    d[14] = (char)('0' + (10 - sum % 10) % 10);
    d[15] = 0;
    return pg_gen_str(d);
}

static char *s_vin(void)
{
    static const char ok[] = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
    char v[18];
    for (int i = 0; i < 17; i++)
        v[i] = ok[pg_gen_int(0, (int)sizeof ok - 2)];
    v[17] = 0;
    return pg_gen_str(v);
}

static Polegate__Pole__V1__Name *s_name(int max_forenames)
{
    Polegate__Pole__V1__Name *n = PG_PB_NEW(A, Polegate__Pole__V1__Name, polegate__pole__v1__name);
    n->surname = pg_gen_str(S_PICK(s_surnames));
    n->n_forenames = (size_t)pg_gen_int(0, max_forenames);
    n->forenames = pg_arena_alloc(A, (n->n_forenames + 1) * sizeof(char *));
    for (size_t i = 0; i < n->n_forenames; i++)
        n->forenames[i] = pg_gen_str(S_PICK(s_given));
    return n;
}

/* ------------------------------------------------------------ entities */

static void s_person(pg_entity_update *u)
{
    Polegate__Pole__V1__Person *p =
        PG_PB_NEW(A, Polegate__Pole__V1__Person, polegate__pole__v1__person);
    p->name = s_name(pg_gen_chance(20) ? 7 : 3);
    if (pg_gen_chance(50))
        p->title = pg_gen_str(pg_gen_chance(50) ? "Mr" : "Dr");
    int precision = pg_gen_int(0, 3); /* none, year, month, day */
    if (precision)
        p->date_of_birth = s_date(pg_gen_int(1940, 2008), precision >= 2 ? pg_gen_int(1, 12) : 0,
                                  precision == 3 ? pg_gen_int(1, 28) : 0);
    if (pg_gen_chance(40))
        p->place_of_birth = pg_gen_str(S_PICK(s_towns));
    p->sex = pg_gen_int(0, 4);
    p->self_defined_ethnicity = pg_gen_int(0, 20);
    static const int od[] = {0, 1, 2, 3, 4, 5, 6, 9};
    p->officer_defined_ethnicity = S_PICK(od);
    if (pg_gen_chance(60))
        p->nationality = pg_gen_str(S_PICK(s_countries));
    if (pg_gen_chance(50))
        p->pnc_id = s_pnc();
    if (pg_gen_chance(30))
        p->cro_number = s_cro();
    p->n_aliases = (size_t)pg_gen_int(0, 2);
    p->aliases = pg_arena_alloc(A, (p->n_aliases + 1) * sizeof(*p->aliases));
    for (size_t i = 0; i < p->n_aliases; i++) {
        Polegate__Pole__V1__Alias *a =
            PG_PB_NEW(A, Polegate__Pole__V1__Alias, polegate__pole__v1__alias);
        a->name = s_name(2);
        if (pg_gen_chance(50))
            a->date_of_birth =
                s_date(pg_gen_int(1940, 2008), pg_gen_chance(50) ? pg_gen_int(1, 12) : 0, 0);
        p->aliases[i] = a;
    }
    p->n_warning_markers = (size_t)pg_gen_int(0, 3);
    p->warning_markers = pg_arena_alloc(A, (p->n_warning_markers + 1) * sizeof(int));
    for (size_t i = 0; i < p->n_warning_markers; i++)
        p->warning_markers[i] = (int)(1 + (i * 5 + (size_t)pg_gen_int(0, 4)) % 14);
    if (pg_gen_chance(30))
        p->occupation = pg_gen_str("Driver");
    u->person = p;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
}

static void s_location(pg_entity_update *u)
{
    Polegate__Pole__V1__Location *l =
        PG_PB_NEW(A, Polegate__Pole__V1__Location, polegate__pole__v1__location);
    if (pg_gen_chance(30))
        l->premises = pg_gen_str("Flat 2");
    l->street = pg_gen_str(S_PICK(s_streets));
    if (pg_gen_chance(30))
        l->locality = pg_gen_str("Lexden");
    l->town = pg_gen_str(S_PICK(s_towns));
    l->postcode = pg_gen_str(S_PICK(s_postcodes));
    if (pg_gen_chance(50))
        l->uprn = s_digits(pg_gen_int(6, 12));
    if (pg_gen_chance(80)) {
        l->geo = PG_PB_NEW(A, Polegate__Pole__V1__GeoPoint, polegate__pole__v1__geo_point);
        l->geo->lat = 51.0 + (double)pg_gen_int(0, 3000000) / 1e6;
        l->geo->lon = -2.5 + (double)pg_gen_int(0, 3500000) / 1e6;
    }
    if (pg_gen_chance(30))
        l->description = pg_gen_str("Rear garden, side gate");
    u->location = l;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION;
}

static void s_vehicle(pg_entity_update *u)
{
    Polegate__Pole__V1__Vehicle *v =
        PG_PB_NEW(A, Polegate__Pole__V1__Vehicle, polegate__pole__v1__vehicle);
    v->vrm = s_fmt("%c%c%02d%c%c%c", 'A' + pg_gen_int(0, 25), 'A' + pg_gen_int(0, 25),
                   pg_gen_int(10, 99), 'A' + pg_gen_int(0, 25), 'A' + pg_gen_int(0, 25),
                   'A' + pg_gen_int(0, 25));
    int m = pg_gen_int(0, 2);
    v->make = pg_gen_str(s_makes[m][0]);
    v->model = pg_gen_str(s_makes[m][1]);
    v->colour = pg_gen_int(0, 10);
    if (pg_gen_chance(40))
        v->vin = s_vin();
    if (pg_gen_chance(60))
        v->year = pg_gen_int(1990, 2026);
    u->vehicle = v;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE;
}

static void s_item(pg_entity_update *u)
{
    Polegate__Pole__V1__Item *it = PG_PB_NEW(A, Polegate__Pole__V1__Item, polegate__pole__v1__item);
    it->category = pg_gen_int(1, 8);
    it->description = pg_gen_str("Laptop, silver, 13 inch");
    if (pg_gen_chance(40))
        it->serial_number = s_fmt("SN%s", s_digits(8));
    if (pg_gen_chance(60)) {
        it->value = PG_PB_NEW(A, Polegate__Pole__V1__Money, polegate__pole__v1__money);
        it->value->currency = pg_gen_str(pg_gen_chance(80) ? "GBP" : "EUR");
        it->value->minor_units = pg_gen_int(1, 5000000);
    }
    u->item = it;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM;
}

static void s_weapon(pg_entity_update *u)
{
    Polegate__Pole__V1__Weapon *w =
        PG_PB_NEW(A, Polegate__Pole__V1__Weapon, polegate__pole__v1__weapon);
    w->category = pg_gen_int(1, 4);
    w->description = pg_gen_str("Lock knife, 9cm blade");
    if (pg_gen_chance(30))
        w->serial_number = s_fmt("W%s", s_digits(6));
    u->weapon = w;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_WEAPON;
}

static void s_telephone(pg_entity_update *u)
{
    Polegate__Pole__V1__Telephone *t =
        PG_PB_NEW(A, Polegate__Pole__V1__Telephone, polegate__pole__v1__telephone);
    t->number = s_fmt("+447700900%03d", pg_gen_int(0, 999));
    t->kind = pg_gen_int(0, 3);
    if (pg_gen_chance(40))
        t->imei = s_imei();
    u->telephone = t;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE;
}

static void s_occurrence(pg_entity_update *u)
{
    Polegate__Pole__V1__Occurrence *o =
        PG_PB_NEW(A, Polegate__Pole__V1__Occurrence, polegate__pole__v1__occurrence);
    o->reference = s_fmt("ESX/26/%s", s_digits(5));
    o->kind = pg_gen_chance(70) ? 1 : 2;
    if (o->kind == 1) {
        o->n_offences = (size_t)pg_gen_int(1, 2);
        o->offences = pg_arena_alloc(A, o->n_offences * sizeof(*o->offences));
        for (size_t i = 0; i < o->n_offences; i++) {
            Polegate__Pole__V1__Offence *f =
                PG_PB_NEW(A, Polegate__Pole__V1__Offence, polegate__pole__v1__offence);
            f->ho_class = pg_gen_int(1, 999);
            f->ho_subclass = pg_gen_int(0, 99);
            if (pg_gen_chance(70))
                f->description = pg_gen_str("Burglary - residential");
            o->offences[i] = f;
        }
    }
    o->occurred_from = s_time();
    if (pg_gen_chance(60))
        o->occurred_to = s_after(o->occurred_from);
    if (pg_gen_chance(70))
        o->reported_at = s_after(o->occurred_to ? o->occurred_to : o->occurred_from);
    o->status = pg_gen_int(0, 4);
    if (pg_gen_chance(60))
        o->summary = pg_gen_str("Entry forced via the rear door; jewellery taken.");
    u->occurrence = o;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE;
}

static void s_custody(pg_entity_update *u)
{
    Polegate__Pole__V1__Custody *c =
        PG_PB_NEW(A, Polegate__Pole__V1__Custody, polegate__pole__v1__custody);
    c->reference = s_fmt("ESX/CU/26/%s", s_digits(5));
    c->arrested_at = s_time();
    if (pg_gen_chance(70))
        c->arrived_at = s_after(c->arrested_at);
    if (pg_gen_chance(50))
        c->released_at = s_after(c->arrived_at ? c->arrived_at : c->arrested_at);
    if (pg_gen_chance(70))
        c->station = pg_gen_str("Colchester");
    c->outcome = pg_gen_int(0, 5);
    u->custody = c;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_CUSTODY;
}

static void s_intelligence(pg_entity_update *u)
{
    Polegate__Pole__V1__Intelligence *n =
        PG_PB_NEW(A, Polegate__Pole__V1__Intelligence, polegate__pole__v1__intelligence);
    n->reference = s_fmt("ESX/INT/26/%s", s_digits(6));
    n->reported_at = s_time();
    n->text = pg_gen_str("Subject seen with a knife in the town centre at weekends.");
    if (pg_gen_chance(70)) {
        n->grading = PG_PB_NEW(A, Polegate__Pole__V1__Grading, polegate__pole__v1__grading);
        n->grading->source = pg_gen_int(1, 3);
        n->grading->intelligence = pg_gen_int(1, 5);
        n->grading->handling = pg_gen_int(1, 2);
    }
    u->intelligence = n;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE;
}

pg_entity_update *pg_gen_entity(int kind, int serial)
{
    static const char letters[] = "PLVIWTOCN";
    static const char *const types[] = {"PERSON",     "LOCATION", "VEHICLE",
                                        "ITEM",       "WEAPON",   "TELEPHONE",
                                        "OCCURRENCE", "CUSTODY",  "INTELLIGENCE"};
    pg_entity_update *u = PG_PB_NEW(A, pg_entity_update, polegate__pole__v1__entity_update);
    u->kind = kind;
    u->operation = UPSERT;
    u->version = (uint64_t)pg_gen_int(1, 50);
    u->origin = PG_PB_NEW(A, pg_origin, polegate__pole__v1__origin);
    u->origin->force = pg_gen_str("ESX");
    u->origin->system = pg_gen_str("ATHENA");
    u->origin->native_type = pg_gen_str(types[kind - 1]);
    u->origin->native_id = s_fmt("%c%010d", letters[kind - 1], serial);
    char id[PG_UUID_STR_SIZE];
    pg_identity_entity("ESX", "ATHENA", types[kind - 1], u->origin->native_id, id);
    u->id = pg_gen_str(id);
    u->modified_at = s_time();
    u->marking = PG_PB_NEW(A, pg_marking, polegate__pole__v1__marking);
    u->marking->classification = pg_gen_int(1, 2);
    u->marking->handling = pg_gen_chance(80) ? 1 : 2;
    if (u->marking->handling == 2)
        u->marking->caveat = pg_gen_str("Not to be disclosed without reference to the originator.");
    u->retention = PG_PB_NEW(A, pg_retention, polegate__pole__v1__retention);
    u->retention->mopi_group = pg_gen_int(1, 4);
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

/* The original: PG_GEN_ENTITIES entities (every kind at least once over the rounds) and
 * the links between them, as an ATX-like changeset (each entity, then its links). */
void pg_gen_changeset(pg_changeset *cs)
{
    A = cs->arena;
    pg_entity_update *ents[PG_GEN_ENTITIES];
    for (int i = 0; i < PG_GEN_ENTITIES; i++)
        ents[i] = pg_gen_entity(i < 9 ? i + 1 : pg_gen_int(1, 9), pg_gen_int(1, 999999999));
    for (int i = 0; i < PG_GEN_ENTITIES; i++) {
        pg_changeset_add_entity(cs, ents[i], 1);
        for (int j = 0; j < PG_GEN_ENTITIES; j++) {
            if (j == i || !pg_gen_chance(25))
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
                l->id = pg_gen_str(id);
                l->origin = ents[i]->origin;
                l->marking = ents[i]->marking;
                l->modified_at = ents[i]->modified_at;
                if (pg_gen_chance(40))
                    l->valid_from = s_full_date(2015, 2024);
                if (pg_gen_chance(20))
                    l->valid_to = s_full_date(2025, 2026);
                pg_changeset_add_link(cs, l);
                break;
            }
        }
    }
}
