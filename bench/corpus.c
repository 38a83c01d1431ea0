/* Deterministic corpus of realistic ATX/2 messages (see corpus.h). */
#include "corpus.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/timeutil.h"

const char *const pg_corpus_types[9] = {"PERSON",     "LOCATION", "VEHICLE",
                                        "ITEM",       "WEAPON",   "TELEPHONE",
                                        "OCCURRENCE", "CUSTODY",  "INTELLIGENCE"};
static const char s_letters[9] = {'P', 'L', 'V', 'I', 'W', 'T', 'O', 'C', 'N'};
enum {
    T_PERSON,
    T_LOCATION,
    T_VEHICLE,
    T_ITEM,
    T_WEAPON,
    T_TELEPHONE,
    T_OCCURRENCE,
    T_CUSTODY,
    T_INTELLIGENCE
};

/* Share of each type per 1000 messages, from the mix of a force's daily change feed:
 * people and places dominate, weapons are rare. */
static const unsigned s_mix[9] = {330, 200, 80, 90, 15, 60, 150, 40, 35};

#define N_(a) (sizeof(a) / sizeof((a)[0]))
#define PICK(r, a) ((a)[s_below((r), N_(a))])

static const char *const s_surnames[] = {
    "Smith",          "Jones",   "Taylor",  "Brown",    "Williams",   "Wilson",      "Johnson",
    "Davies",         "Patel",   "Khan",    "O'Brien",  "Ní Bhriain", "Łukaszewska", "Nowak",
    "Kowalski",       "Müller",  "Schäfer", "García",   "Pérez",      "Fernández",   "Gonçalves",
    "Nguyễn",         "Popescu", "Văduva",  "Öztürk",   "Çelik",      "MacDonald",   "McAllister",
    "Ó Súilleabháin", "Ahmed",   "Begum",   "Okafor",   "Adébáyọ̀",    "Jankauskas",  "Dvořák",
    "Søgaard",        "Björk",   "Lefèvre", "D'Angelo", "Hughes",     "Evans",       "Thomas",
    "Roberts",        "Walker",  "Wright",
};
static const char *const s_forenames[] = {
    "James",  "Oliver", "Jack",   "Harry",   "Mohammed",   "Muhammad", "Seán",     "Siobhán",
    "Zoë",    "Chloé",  "Anaïs",  "Łukasz",  "Małgorzata", "Jürgen",   "José",     "María",
    "João",   "Björn",  "Ólafur", "Ngọc",    "Aoife",      "Niamh",    "Emily",    "Amelia",
    "Olivia", "Isla",   "Ava",    "Grace",   "Priya",      "Aarav",    "Chidi",    "Oluwaseun",
    "Ştefan", "Renée",  "Noël",   "Gráinne", "Dáithí",     "Eilidh",   "Rhiannon", "Dafydd",
    "Thomas", "George", "Sophie",
};
static const char *const s_titles[] = {"Mr", "Mrs", "Ms", "Miss", "Dr", "Mx"};
static const char *const s_places[] = {"Colchester", "Chelmsford", "Southend-on-Sea", "Basildon",
                                       "Cork",       "Kraków",     "Bucureşti",       "Lisboa",
                                       "Lagos",      "Karachi",    "Hà Nội",          "London"};
static const char *const s_nationalities[] = {"GBR", "GBR", "GBR", "GBR", "GBR", "GBR", "IRL",
                                              "POL", "ROU", "PRT", "LTU", "DEU", "FRA", "ESP",
                                              "ITA", "IND", "PAK", "NGA", "VNM", "TUR"};
static const char *const s_sde[] = {"W1", "W1", "W1", "W2", "W3", "W9", "M1", "M2",
                                    "M3", "M9", "A1", "A2", "A3", "A4", "A9", "B1",
                                    "B2", "B9", "O1", "O2", "O9", "NS"};
static const char *const s_ic[] = {"IC1", "IC2", "IC3", "IC4", "IC5", "IC6", "IC9"};
static const char *const s_sex[] = {"MALE", "MALE", "FEMALE", "FEMALE", "UNKNOWN", "NOT_SPECIFIED"};
static const char *const s_markers[] = {"AG", "AT", "CO", "DR", "ES", "EX", "FI",
                                        "IM", "IF", "MH", "SH", "SU", "VI", "WE"};
static const char *const s_occupations[] = {"Plasterer",       "Café owner",        "Nurse",
                                            "Delivery driver", "Student",           "Unemployed",
                                            "Électricien",     "Software developer"};
static const char *const s_streets[] = {
    "Crouch Street", "High Street", "Moulsham Street",  "London Road",    "Station Road",
    "Church Lane",   "Maldon Road", "Victoria Road",    "Queen's Road",   "St John's Street",
    "Mersea Road",   "Lexden Road", "Springfield Road", "Rainsford Road", "Hamlet Court Road"};
static const char *const s_localities[] = {"Lexden",    "Moulsham",  "Springfield",
                                           "Westcliff", "Old Heath", "Great Baddow"};
static const struct {
    const char *town, *postcodes[4];
    double lat, lon;
} s_towns[] = {
    {"Colchester", {"co3 3es", "CO1 1AA", "CO2 7HG", "co4 9QR"}, 51.889, 0.901},
    {"Chelmsford", {"CM1 1XP", "cm2 0HU", "CM2 6LF", "CM1 3BY"}, 51.735, 0.469},
    {"Southend-on-Sea", {"SS1 1EE", "ss0 7RR", "SS2 6NL", "SS9 1HX"}, 51.538, 0.714},
    {"Basildon", {"SS14 1DL", "ss13 3ay", "SS15 5NE", "SS16 4AB"}, 51.576, 0.488},
    {"Harlow", {"CM20 1HA", "CM18 6YJ", "cm19 4BS", "CM17 0AB"}, 51.772, 0.102},
};
static const char *const s_places_nameless[] = {
    "Lay-by A12 northbound, junction 26", "Car park behind the Co-op",
    "Towpath by the Hythe bridge", "Footpath from Cuckoo Farm to Severalls"};
static const struct {
    const char *make, *model;
} s_vehicles[] = {{"FORD", "FOCUS"},     {"FORD", "FIESTA"},
                  {"VAUXHALL", "CORSA"}, {"VOLKSWAGEN", "GOLF"},
                  {"BMW", "320D"},       {"TOYOTA", "YARIS"},
                  {"ŠKODA", "OCTAVIA"},  {"CITROËN", "C3"},
                  {"NISSAN", "QASHQAI"}, {"MERCEDES-BENZ", "SPRINTER"},
                  {"HONDA", "CIVIC"},    {"KIA", "SPORTAGE"}};
static const char *const s_colours[] = {"BLACK", "BLUE",   "BROWN", "GREEN",  "GREY",
                                        "RED",   "SILVER", "WHITE", "YELLOW", "OTHER"};
static const struct {
    const char *category, *description;
} s_items[] = {{"ELECTRONICS", "Dell XPS 13 laptop, grey"},
               {"ELECTRONICS", "iPhone 14, cracked screen, blue case"},
               {"JEWELLERY", "Gold wedding ring, engraved “S & M 2009”"},
               {"JEWELLERY", "Silver necklace with émeraude pendant"},
               {"CASH", "Cash in a brown envelope"},
               {"BICYCLE", "Carrera Vengeance mountain bike, matt black"},
               {"TOOLS", "DeWalt 18V combi drill and case"},
               {"DOCUMENT", "Passport (Poland) in the name of Łukasz Nowak"},
               {"DRUGS", "Herbal cannabis, 14 deals"},
               {"OTHER", "Louis Vuitton holdall, brown"}};
static const struct {
    const char *category, *description;
    int serial;
} s_weapons[] = {{"KNIFE", "Kitchen knife, 20 cm blade", 0},
                 {"KNIFE", "Lock knife, black handle", 0},
                 {"BLUNT", "Baseball bat, aluminium", 0},
                 {"FIREARM", "Baikal IZH-79 converted pistol", 1},
                 {"OTHER", "CS spray canister", 0}};
static const struct {
    int cls, sub;
    const char *description;
} s_offences[] = {{28, 1, "Burglary - dwelling"},
                  {28, 2, "Attempted burglary - dwelling"},
                  {30, 1, "Burglary - business and community"},
                  {45, 0, "Theft from a vehicle"},
                  {48, 0, "Theft or unauthorised taking of a motor vehicle"},
                  {49, 0, "Other theft"},
                  {58, 1, "Criminal damage to a dwelling"},
                  {105, 1, "Assault without injury"},
                  {8, 1, "Assault with injury"},
                  {34, 1, "Robbery of personal property"},
                  {92, 1, "Trafficking in controlled drugs"}};
static const char *const s_summaries[] = {
    "Rear door forced overnight; laptop taken. Silver car seen leaving.",
    "Victim approached at the bus stop and threatened; phone and wallet taken.",
    "Caller reports \"a group of youths\" damaging cars on the estate.",
    "Neighbour dispute over parking; words exchanged, no injuries.",
    "Shed broken into; tools and a bicycle taken. Entry via the side gate.",
    "Vehicle stopped on the A12; occupants' account inconsistent — search conducted.",
    "Window smashed at the café; nothing taken. CCTV requested from the council.",
};
static const char *const s_occ_status[] = {"OPEN", "UNDER_INVESTIGATION", "UNDER_INVESTIGATION",
                                           "CLOSED", "FILED"};
static const char *const s_stations[] = {"Colchester", "Chelmsford", "Southend", "Basildon",
                                         "Harlow"};
static const char *const s_outcomes[] = {"CHARGED", "CAUTIONED", "RELEASED_UNDER_INVESTIGATION",
                                         "BAILED", "NO_FURTHER_ACTION"};
static const char *const s_intel[] = {
    "Subject is believed to be dealing Class A from the flat above the bookmaker's.",
    "Vehicle seen regularly at the address between 22:00 and 02:00.",
    "Source states the subject carries a knife when travelling to Basildon.",
    "Subject has a new mobile number; uses it to arrange meets near the station.",
};
static const char *const s_units[] = {"ESX/CID/COLCHESTER", "ESX/RESPONSE/CHELMSFORD",
                                      "ESX/PPU/BASILDON", "ESX/CUSTODY/SOUTHEND", "ESX/INTEL/HQ"};

/* xorshift64*: fast, and the same sequence everywhere. */
static uint64_t s_next(uint64_t *r)
{
    uint64_t x = *r;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *r = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t s_below(uint64_t *r, size_t n)
{
    return (size_t)((s_next(r) >> 11) % n);
}

/* True with probability pct %. */
static int s_chance(uint64_t *r, unsigned pct)
{
    return s_below(r, 100) < pct;
}

#define S_LIVE 1
#define S_MERGED 2 /* gone for good: no update or delete names it again */

/* The records generated so far of each type, with their last revision; updates,
 * deletes, links and merges pick among them. */
typedef struct s_pool {
    uint32_t *revision; /* last revision, by serial (1-based) */
    uint8_t *live;      /* S_LIVE, 0 once deleted, S_MERGED once merged away */
    size_t count;
} s_pool;

typedef struct s_gen {
    uint64_t rng;
    pg_buf *out;
    s_pool pool[9];
    int64_t now; /* seconds */
    size_t seq;
    int rc;
    pg_corpus_stats *stats;
} s_gen;

static void s_put(s_gen *g, const char *s)
{
    if (!g->rc)
        g->rc = pg_buf_puts(g->out, s);
}

static void s_printf(s_gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_printf(s_gen *g, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    s_put(g, tmp);
}

/* A JSON string member: "key": "value", escaping what JSON needs. */
static void s_str(s_gen *g, const char *key, const char *value)
{
    s_printf(g, "\"%s\": \"", key);
    for (const char *c = value; *c && !g->rc; c++) {
        if (*c == '"' || *c == '\\')
            g->rc = pg_buf_putc(g->out, '\\');
        if (!g->rc)
            g->rc = pg_buf_putc(g->out, *c);
    }
    s_put(g, "\"");
}

static void s_time(s_gen *g, const char *key, int64_t t)
{
    char ts[40];
    pg_instant in = {t, (int32_t)(s_below(&g->rng, 1000) * 1000000)};
    pg_rfc3339_format(in, pg_london_offset(in), ts);
    s_str(g, key, ts);
}

static void s_date(s_gen *g, char *out, size_t size, int y0, int years)
{
    snprintf(out, size, "%04d-%02d-%02d", y0 + (int)s_below(&g->rng, (size_t)years),
             1 + (int)s_below(&g->rng, 12), 1 + (int)s_below(&g->rng, 28));
}

/* An ATX record id: type letter and 10 digits (serials stay below 10^10). */
static void s_id(char out[12], int type, size_t serial)
{
    snprintf(out, 12, "%c%010u", s_letters[type], (unsigned)(serial % 4000000000u));
}

/* A record of type that exists (or, before any does, one that never will: ATX lets a
 * link name a target that never arrives). */
static size_t s_existing(s_gen *g, int type)
{
    s_pool *p = &g->pool[type];
    if (p->count == 0)
        return 9000000000u + s_below(&g->rng, 1000);
    for (int tries = 0; tries < 4; tries++) {
        size_t serial = 1 + s_below(&g->rng, p->count);
        if (p->live[serial] == S_LIVE)
            return serial;
    }
    return 1 + s_below(&g->rng, p->count);
}

static void s_link(s_gen *g, int first, int type, const char *role)
{
    char id[12];
    s_id(id, type, s_existing(g, type));
    s_printf(g, "%s{\"target\": {\"type\": \"%s\", \"id\": \"%s\"}, \"role\": \"%s\", ",
             first ? "" : ", ", pg_corpus_types[type], id, role);
    if (s_chance(&g->rng, 30)) {
        char d[16];
        s_date(g, d, sizeof d, 2015, 11);
        s_printf(g, "\"validFrom\": \"%s\", \"validTo\": null}", d);
    } else {
        s_put(g, "\"validFrom\": null, \"validTo\": null}");
    }
    g->stats->links++;
}

static void s_person(s_gen *g)
{
    uint64_t *r = &g->rng;
    s_str(g, "surname", PICK(r, s_surnames));
    s_put(g, ", \"forenames\": [");
    size_t nf = 1 + s_below(r, 3);
    for (size_t i = 0; i < nf; i++)
        s_printf(g, "%s\"%s\"", i ? ", " : "", PICK(r, s_forenames));
    s_put(g, "]");
    if (s_chance(r, 50)) {
        s_put(g, ", ");
        s_str(g, "title", PICK(r, s_titles));
    }
    int y = 1940 + (int)s_below(r, 66), m = 1 + (int)s_below(r, 12);
    unsigned dob = (unsigned)s_below(r, 10);
    if (dob < 7)
        s_printf(g, ", \"dateOfBirth\": \"%04d-%02d-%02d\"", y, m, 1 + (int)s_below(r, 28));
    else if (dob < 9)
        s_printf(g, ", \"dateOfBirth\": \"%04d-%02d\"", y, m);
    else
        s_printf(g, ", \"dateOfBirth\": \"%04d\"", y);
    if (s_chance(r, 40)) {
        s_put(g, ", ");
        s_str(g, "placeOfBirth", PICK(r, s_places));
    }
    s_printf(g, ", \"sex\": \"%s\", \"ethnicity\": {\"selfDefined\": \"%s\"", PICK(r, s_sex),
             PICK(r, s_sde));
    if (s_chance(r, 70))
        s_printf(g, ", \"officerDefined\": \"%s\"", PICK(r, s_ic));
    s_printf(g, "}, \"nationality\": \"%s\"", PICK(r, s_nationalities));
    int pnc = s_chance(r, 40), cro = s_chance(r, 15);
    if (pnc || cro) {
        s_put(g, ", \"identifiers\": {");
        if (pnc) {
            int py = 1990 + (int)s_below(r, 36);
            unsigned serial = (unsigned)s_below(r, 9999999) + 1;
            char letter = pg_codes_check_letter((uint64_t)(py % 100) * 10000000u + serial);
            s_printf(g, "\"pncId\": \"%04d/%07u%c\"", py, serial, letter);
        }
        if (cro) {
            int cy = (int)s_below(r, 100);
            unsigned serial = (unsigned)s_below(r, 999999) + 1;
            char letter = pg_codes_check_letter((uint64_t)cy * 1000000u + serial);
            s_printf(g, "%s\"croNumber\": \"%06u/%02d%c\"", pnc ? ", " : "", serial, cy, letter);
        }
        s_put(g, "}");
    }
    if (s_chance(r, 10)) {
        s_put(g, ", \"aliases\": [{");
        s_str(g, "surname", PICK(r, s_surnames));
        s_printf(g, ", \"forenames\": [\"%s\"], \"dateOfBirth\": \"%04d\"}]", PICK(r, s_forenames),
                 y);
    }
    if (s_chance(r, 10))
        s_printf(g, ", \"warningMarkers\": [\"%s\", \"%s\"]", PICK(r, s_markers),
                 PICK(r, s_markers));
    if (s_chance(r, 30)) {
        s_put(g, ", ");
        s_str(g, "occupation", PICK(r, s_occupations));
    }
}

static void s_location(s_gen *g)
{
    uint64_t *r = &g->rng;
    size_t t = s_below(r, N_(s_towns));
    if (s_chance(r, 10)) {
        s_str(g, "description", PICK(r, s_places_nameless));
    } else {
        if (s_chance(r, 40))
            s_printf(g, "\"premises\": \"Flat %zu\", ", 1 + s_below(r, 12));
        s_printf(g, "\"street\": \"%zu ", 1 + s_below(r, 240));
        s_put(g, PICK(r, s_streets));
        s_put(g, "\", ");
        if (s_chance(r, 30))
            s_printf(g, "\"locality\": \"%s\", ", PICK(r, s_localities));
        s_printf(g, "\"town\": \"%s\", \"postcode\": \"%s\"", s_towns[t].town,
                 s_towns[t].postcodes[s_below(r, 4)]);
        if (s_chance(r, 60))
            s_printf(g, ", \"uprn\": \"%llu\"",
                     (unsigned long long)(100000000000ULL + s_below(r, 900000000000ULL)));
    }
    if (s_chance(r, 80))
        s_printf(g, "%s\"geo\": {\"lat\": %.6f, \"lon\": %.6f}",
                 g->out->data[g->out->len - 1] == '{' ? "" : ", ",
                 s_towns[t].lat + (double)s_below(r, 40000) / 1e6 - 0.02,
                 s_towns[t].lon + (double)s_below(r, 60000) / 1e6 - 0.03);
}

static void s_vehicle(s_gen *g)
{
    uint64_t *r = &g->rng;
    static const char az[] = "ABCDEFGHJKLMNOPRSTUVWXYZ";
    static const char vin_chars[] = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789";
    size_t v = s_below(r, N_(s_vehicles));
    int year = 2001 + (int)s_below(r, 25);
    char vrm[16];
    snprintf(vrm, sizeof vrm, s_chance(r, 20) ? "%c%c%02d%c%c%c" : "%c%c%02d %c%c%c",
             az[s_below(r, 24)], az[s_below(r, 24)], year % 100 + (s_chance(r, 50) ? 50 : 0),
             az[s_below(r, 24)], az[s_below(r, 24)], az[s_below(r, 24)]);
    s_printf(g, "\"vrm\": \"%s\", \"make\": \"%s\", \"model\": \"%s\", \"colour\": \"%s\"", vrm,
             s_vehicles[v].make, s_vehicles[v].model, PICK(r, s_colours));
    if (s_chance(r, 40)) {
        char vin[18];
        for (int i = 0; i < 17; i++)
            vin[i] = vin_chars[s_below(r, sizeof vin_chars - 1)];
        vin[17] = '\0';
        s_printf(g, ", \"vin\": \"%s\"", vin);
    }
    if (s_chance(r, 60))
        s_printf(g, ", \"year\": %d", year);
}

static void s_item(s_gen *g)
{
    uint64_t *r = &g->rng;
    size_t i = s_below(r, N_(s_items));
    s_printf(g, "\"category\": \"%s\", ", s_items[i].category);
    s_str(g, "description", s_items[i].description);
    if (s_chance(r, 50))
        s_printf(g, ", \"serialNumber\": \"SN%08zu\"", s_below(r, 100000000));
    if (s_chance(r, 60))
        s_printf(g, ", \"value\": {\"amount\": \"%zu.%02zu\", \"currency\": \"GBP\"}",
                 s_below(r, 3000), s_below(r, 100));
}

static void s_weapon(s_gen *g)
{
    size_t w = s_below(&g->rng, N_(s_weapons));
    s_printf(g, "\"category\": \"%s\", \"description\": \"%s\"", s_weapons[w].category,
             s_weapons[w].description);
    if (s_weapons[w].serial)
        s_printf(g, ", \"serialNumber\": \"%zu\"", 100000 + s_below(&g->rng, 900000));
}

/* A 15-digit IMEI with its Luhn check digit. */
static void s_imei(uint64_t *r, char out[16])
{
    int sum = 0;
    for (int i = 0; i < 14; i++) {
        int d = (int)s_below(r, 10);
        out[i] = (char)('0' + d);
        if (i % 2 == 1)
            d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
    }
    out[14] = (char)('0' + (10 - sum % 10) % 10);
    out[15] = '\0';
}

static void s_telephone(s_gen *g)
{
    uint64_t *r = &g->rng;
    unsigned form = (unsigned)s_below(r, 4);
    size_t n = s_below(r, 1000);
    if (form == 0)
        s_printf(g, "\"number\": \"07700 900%03zu\", \"kind\": \"MOBILE\"", n);
    else if (form == 1)
        s_printf(g, "\"number\": \"+44 7700 900%03zu\", \"kind\": \"MOBILE\"", n);
    else if (form == 2)
        s_printf(g, "\"number\": \"01206 496%03zu\", \"kind\": \"LANDLINE\"", n);
    else
        s_printf(g, "\"number\": \"07700900%03zu\", \"kind\": \"UNKNOWN\"", n);
    if (s_chance(r, 30)) {
        char imei[16];
        s_imei(r, imei);
        s_printf(g, ", \"imei\": \"%s\"", imei);
    }
}

static void s_occurrence(s_gen *g, size_t serial)
{
    uint64_t *r = &g->rng;
    int crime = s_chance(r, 80);
    s_printf(g, "\"reference\": \"42/%05zu/26\", \"kind\": \"%s\"", serial % 100000,
             crime ? "CRIME" : "INCIDENT");
    if (crime) {
        s_put(g, ", \"offences\": [");
        size_t no = 1 + (s_chance(r, 20) ? 1 : 0);
        for (size_t i = 0; i < no; i++) {
            size_t o = s_below(r, N_(s_offences));
            s_printf(g, "%s{\"hoClass\": %d, \"hoSubclass\": %d, \"description\": \"%s\"}",
                     i ? ", " : "", s_offences[o].cls, s_offences[o].sub,
                     s_offences[o].description);
        }
        s_put(g, "]");
    }
    int64_t from = g->now - 3600 * (int64_t)(1 + s_below(r, 72));
    s_put(g, ", ");
    s_time(g, "occurredFrom", from);
    if (s_chance(r, 60)) {
        s_put(g, ", ");
        s_time(g, "occurredTo", from + 60 * (int64_t)(5 + s_below(r, 600)));
    }
    s_put(g, ", ");
    s_time(g, "reportedAt", g->now - 60 * (int64_t)s_below(r, 120));
    s_printf(g, ", \"status\": \"%s\", ", PICK(r, s_occ_status));
    s_str(g, "summary", PICK(r, s_summaries));
}

static void s_custody(s_gen *g, size_t serial)
{
    uint64_t *r = &g->rng;
    int64_t arrested = g->now - 60 * (int64_t)(60 + s_below(r, 1440));
    s_printf(g, "\"reference\": \"ESX/CUS/26/%06zu\", ", serial);
    s_time(g, "arrestedAt", arrested);
    s_put(g, ", ");
    s_time(g, "arrivedAt", arrested + 60 * (int64_t)(10 + s_below(r, 50)));
    if (s_chance(r, 70)) {
        s_put(g, ", ");
        s_time(g, "releasedAt", arrested + 3600 * (int64_t)(4 + s_below(r, 20)));
    }
    s_printf(g, ", \"station\": \"%s\", \"outcome\": \"%s\"", PICK(r, s_stations),
             PICK(r, s_outcomes));
}

static void s_intelligence(s_gen *g, size_t serial)
{
    uint64_t *r = &g->rng;
    s_printf(g, "\"reference\": \"INT/26/%05zu\", ", serial);
    s_time(g, "reportedAt", g->now - 3600 * (int64_t)s_below(r, 48));
    s_put(g, ", ");
    s_str(g, "text", PICK(r, s_intel));
    s_printf(g, ", \"grading\": {\"source\": %zu, \"intelligence\": \"%c\", \"handling\": \"%s\"}",
             1 + s_below(r, 3), (char)('A' + s_below(r, 5)), s_chance(r, 80) ? "P" : "C");
}

/* The links a record of type carries, as an RMS would hold them. */
static void s_links(s_gen *g, int type)
{
    uint64_t *r = &g->rng;
    int first = 1;
    s_put(g, ", \"links\": [");
#define L(t, role)                                                                                 \
    do {                                                                                           \
        s_link(g, first, (t), (role));                                                             \
        first = 0;                                                                                 \
    } while (0)
    switch (type) {
    case T_PERSON:
        if (s_chance(r, 80))
            L(T_LOCATION, "HOME_ADDRESS");
        if (s_chance(r, 10))
            L(T_LOCATION, "OTHER_ADDRESS");
        if (s_chance(r, 30))
            L(T_TELEPHONE, "USES");
        if (s_chance(r, 20))
            L(T_VEHICLE, "KEEPER");
        if (s_chance(r, 10))
            L(T_PERSON, "ASSOCIATE");
        if (s_chance(r, 5))
            L(T_ITEM, "OWNER");
        break;
    case T_OCCURRENCE: {
        static const char *const people[] = {"SUSPECT", "VICTIM", "WITNESS", "REPORTER",
                                             "OFFENDER"};
        size_t np = 1 + s_below(r, 3);
        for (size_t i = 0; i < np; i++)
            L(T_PERSON, people[(i + s_below(r, 2)) % N_(people)]);
        L(T_LOCATION, "OCCURRED_AT");
        if (s_chance(r, 30))
            L(T_ITEM, "STOLEN");
        if (s_chance(r, 10))
            L(T_VEHICLE, "VEHICLE_INVOLVED");
        if (s_chance(r, 5))
            L(T_WEAPON, "USED");
        break;
    }
    case T_CUSTODY:
        L(T_PERSON, "DETAINED");
        L(T_LOCATION, "OCCURRED_AT");
        break;
    case T_INTELLIGENCE:
        L(T_PERSON, "SUBJECT");
        if (s_chance(r, 40))
            L(T_VEHICLE, "SUBJECT");
        if (s_chance(r, 30))
            L(T_TELEPHONE, "SUBJECT");
        break;
    default:
        break;
    }
#undef L
    s_put(g, "]");
}

static void s_message(s_gen *g)
{
    uint64_t *r = &g->rng;
    unsigned roll = (unsigned)s_below(r, 1000), acc = 0;
    int type = 0;
    for (; type < 8; type++)
        if (roll < (acc += s_mix[type]))
            break;
    s_pool *p = &g->pool[type];
    /* 3% delete a live record, 20% update one, the rest create one. */
    unsigned what = (unsigned)s_below(r, 100);
    size_t serial;
    int del = 0;
    if (p->count && what < 3) {
        serial = 1 + s_below(r, p->count);
        del = p->live[serial] == S_LIVE;
    } else if (p->count && what < 23) {
        serial = 1 + s_below(r, p->count); /* re-creates it when it was deleted */
    } else {
        serial = ++p->count;
    }
    if (p->live[serial] == S_MERGED) { /* merged away: a new record instead */
        serial = ++p->count;
        del = 0;
    }
    /* Revisions rise by 1 or 2: a record may change in the RMS without a message. */
    uint32_t revision = p->revision[serial] + 1 + (uint32_t)s_below(r, 2);
    p->revision[serial] = revision;
    p->live[serial] = del ? 0 : S_LIVE;

    char id[12], ts[40];
    s_id(id, type, serial);
    g->now += 60 + (int64_t)s_below(r, 120);
    pg_instant sent = {g->now, (int32_t)(s_below(r, 1000) * 1000000)};
    pg_rfc3339_format(sent, 0, ts);
    uint64_t a = s_next(r), b = s_next(r);
    s_printf(g,
             "{\"header\": {\"schema\": \"atx/2\", \"messageId\": "
             "\"%08x-%04x-4%03x-%04x-%012llx\", \"sentAt\": \"%s\", \"system\": \"ATHENA\", "
             "\"orgUnit\": \"%s\"}, ",
             (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)), (unsigned long long)(b & 0xffffffffffffULL),
             ts, PICK(r, s_units));
    unsigned cl = (unsigned)s_below(r, 100);
    int caveat = s_chance(r, 5);
    s_printf(g,
             "\"record\": {\"type\": \"%s\", \"id\": \"%s\", \"revision\": %u, \"action\": "
             "\"%s\", ",
             pg_corpus_types[type], id, revision, del ? "DELETE" : "UPSERT");
    s_time(g, "modifiedAt", g->now - (int64_t)s_below(r, 30));
    s_printf(g, ", \"marking\": {\"classification\": \"%s\", \"handling\": \"%s\", ",
             cl < 25   ? "OFFICIAL"
             : cl < 95 ? "OFFICIAL-SENSITIVE"
                       : "SECRET",
             caveat ? "C" : "P");
    if (caveat)
        s_put(g, "\"caveat\": \"Not to be shared outside Essex without DS approval\"}");
    else
        s_put(g, "\"caveat\": null}");
    g->stats->by_type[type]++;
    if (del) {
        g->stats->deletes++;
        s_put(g, "}}\n");
        return;
    }
    char review[16];
    s_date(g, review, sizeof review, 2030, 10);
    s_printf(g, ", \"retention\": {\"mopiGroup\": %zu, \"reviewDate\": \"%s\"}", 1 + s_below(r, 4),
             review);
    /* A person found to be a duplicate of another: about one update in 200. */
    if (type == T_PERSON && serial > 1 && p->count > 10 && s_chance(r, 1)) {
        size_t gone = 1 + s_below(r, p->count);
        if (gone != serial && p->live[gone] == S_LIVE) {
            char gid[12];
            s_id(gid, type, gone);
            s_printf(g, ", \"mergedFrom\": [\"%s\"]", gid);
            p->live[gone] = S_MERGED;
            g->stats->merges++;
        }
    }
    s_put(g, ", \"body\": {");
    switch (type) {
    case T_PERSON:
        s_person(g);
        break;
    case T_LOCATION:
        s_location(g);
        break;
    case T_VEHICLE:
        s_vehicle(g);
        break;
    case T_ITEM:
        s_item(g);
        break;
    case T_WEAPON:
        s_weapon(g);
        break;
    case T_TELEPHONE:
        s_telephone(g);
        break;
    case T_OCCURRENCE:
        s_occurrence(g, serial);
        break;
    case T_CUSTODY:
        s_custody(g, serial);
        break;
    default:
        s_intelligence(g, serial);
        break;
    }
    s_put(g, "}}");
    s_links(g, type);
    s_put(g, "}\n");
}

int pg_corpus_atx(size_t n, uint64_t seed, pg_buf *out, pg_corpus_stats *stats)
{
    s_gen g = {.rng = seed ? seed : 0x9E3779B97F4A7C15ULL,
               .out = out,
               .now = 1767600000 /* 2026-01-05T08:00:00Z: runs through the BST change */,
               .stats = stats};
    memset(stats, 0, sizeof *stats);
    for (int t = 0; t < 9; t++) {
        g.pool[t].revision = calloc(n + 2, sizeof(uint32_t));
        g.pool[t].live = calloc(n + 2, 1);
        if (!g.pool[t].revision || !g.pool[t].live)
            g.rc = PG_ENOMEM;
    }
    for (size_t i = 0; i < n && !g.rc; i++)
        s_message(&g);
    for (int t = 0; t < 9; t++) {
        free(g.pool[t].revision);
        free(g.pool[t].live);
    }
    return g.rc;
}
