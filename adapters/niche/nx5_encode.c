/* Canonical changes -> one NX5 document (UTF-8), as a conforming exporter writes it. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unicase.h>
#include <unistr.h>

#include "nx5.h"
#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/geo.h"
#include "polegate/roles.h"
#include "polegate/timeutil.h"

#define EK(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x

typedef struct s_enc {
    const pg_adapter_ctx *ctx;
    pg_buf *out;
    char *errstr;
    size_t errstr_size;
    char where[80]; /* "changes[3] (PERSON P0000123456)" */
    int rc;         /* first failure of a pg_buf append */
    int mod_year;   /* the year of the entity's Modified, as written (the PNC century) */
} s_enc;

static int s_fail(s_enc *e, int err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "<where>.<field>: <why>" */
static int s_fail(s_enc *e, int err, const char *field, const char *fmt, ...)
{
    char msg[PG_ERRSTR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pg_errf(err, e->errstr, e->errstr_size, "%s%s%s: %s", e->where, field[0] ? "." : "",
                   field, msg);
}

static void s_puts(s_enc *e, const char *s)
{
    if (!e->rc)
        e->rc = pg_buf_puts(e->out, s);
}

static void s_printf(s_enc *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_printf(s_enc *e, const char *fmt, ...)
{
    if (e->rc)
        return;
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    /* Only short markup goes through here; text goes through s_escaped. */
    e->rc = n >= 0 && (size_t)n < sizeof tmp ? pg_buf_append(e->out, tmp, (size_t)n) : PG_EINTERNAL;
}

/* XML 1.0 allows tab, LF, CR and U+0020 upwards except U+FFFE and U+FFFF; the text
 * must be UTF-8. Attribute values also escape the quote and the white space that an
 * XML parser would otherwise normalise to spaces. */
static int s_escaped(s_enc *e, const char *field, const char *s, size_t n, int attr)
{
    if (u8_check((const uint8_t *)s, n) != NULL)
        return s_fail(e, PG_EINVALID, field, "not UTF-8");
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        char num[8];
        if (c == '&')
            rep = "&amp;";
        else if (c == '<')
            rep = "&lt;";
        else if (c == '>')
            rep = "&gt;";
        else if (c == '"' && attr)
            rep = "&quot;";
        else if (c == '\r' || (attr && (c == '\t' || c == '\n'))) {
            snprintf(num, sizeof num, "&#%d;", c);
            rep = num;
        } else if (c < 0x20 && c != '\t' && c != '\n')
            return s_fail(e, PG_EUNSUPPORTED, field,
                          "control character U+%04X cannot be "
                          "written in XML",
                          c);
        else if (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBF &&
                 ((unsigned char)s[i + 2] == 0xBE || (unsigned char)s[i + 2] == 0xBF))
            return s_fail(e, PG_EUNSUPPORTED, field, "U+FFFE/U+FFFF cannot be written in XML");
        if (!rep)
            continue;
        if (!e->rc && i > from)
            e->rc = pg_buf_append(e->out, s + from, i - from);
        s_puts(e, rep);
        from = i + 1;
    }
    if (!e->rc && n > from)
        e->rc = pg_buf_append(e->out, s + from, n - from);
    return 0;
}

/* <Name>text</Name> on its own line; nothing when s is empty. */
static int s_elem(s_enc *e, const char *field, const char *name, const char *s)
{
    if (!s || !*s)
        return 0;
    s_printf(e, "    <%s>", name);
    int rc = s_escaped(e, field, s, strlen(s), 0);
    s_printf(e, "</%s>\n", name);
    return rc;
}

/* Names are stored upper case; Unicode's full mapping keeps accents and knows no
 * locale ("Seán" -> "SEÁN", "ß" -> "SS"). */
static int s_upper_into(s_enc *e, const char *field, const char *s, size_t n)
{
    uint8_t small[256];
    size_t len = sizeof small;
    uint8_t *up = u8_toupper((const uint8_t *)s, n, NULL, NULL, small, &len);
    if (!up)
        return s_fail(e, PG_EINVALID, field, "not UTF-8");
    int rc = s_escaped(e, field, (const char *)up, len, 0);
    if (up != small)
        free(up);
    return rc;
}

static int s_upper_elem(s_enc *e, const char *field, const char *name, const char *s, size_t n)
{
    s_printf(e, "<%s>", name);
    int rc = s_upper_into(e, field, s, n);
    s_printf(e, "</%s>", name);
    return rc;
}

/* ------------------------------------------------------------ values */

/* Why s_time refuses an instant. */
#define S_REPEATED                                                                                 \
    "is in the hour repeated when UK clocks go back; NX5 reads that local time as the first "      \
    "occurrence, so it cannot be written"

/* t as NX5 local time into out (32 bytes, 20 used); -1 when that local time reads
 * back as another instant: the second occurrence of the hour repeated when BST ends,
 * which NX5 reads as BST. NX5 writes whole seconds: a fraction is dropped. out holds
 * the wall-clock time either way. */
static int s_local(pg_instant t, char out[32])
{
    int y, mo, d, h, mi, s;
    pg_instant_to_london(t, &y, &mo, &d, &h, &mi, &s);
    snprintf(out, 32, "%02d/%02d/%04d %02d:%02d:%02d", d % 100, mo % 100, y % 10000, h % 100,
             mi % 100, s % 100);
    pg_instant back;
    char why[PG_ERRSTR_SIZE];
    if (pg_london_to_instant(y, mo, d, h, mi, s, &back, why, sizeof why) != 0 ||
        back.seconds != t.seconds)
        return -1;
    return 0;
}

/* NX5 writes four-digit years of UK time: 0001-01-01 to 9999-12-31 there. Instants
 * more than a day outside those years in UTC are refused before any conversion. */
#define S_MIN_SECONDS (-62135596800LL - 86400)
#define S_MAX_SECONDS (253402300799LL + 86400)

/* A time of the record (when something happened: From, To, Arrived, ...): exact, or
 * refused. A stamp (Modified, and the document's Created) is written as the wall clock
 * showed it, as an RMS writing its own stamps in that hour does: read back it is up to
 * an hour early, which orders nothing (NX5 orders changes by Rev), and refusing it
 * would hold back every change, deletes included, for that hour. */
enum { S_FACT, S_STAMP };

static int s_time(s_enc *e, const char *field, const pg_timestamp *ts, int kind, char out[32])
{
    if (ts->seconds < S_MIN_SECONDS || ts->seconds > S_MAX_SECONDS)
        return s_fail(e, PG_EINVALID, field, "is outside years 0001-9999");
    pg_instant t = {ts->seconds, ts->nanos};
    int y, mo, d, h, mi, sec;
    pg_instant_to_london(t, &y, &mo, &d, &h, &mi, &sec);
    if (y < 1 || y > 9999)
        return s_fail(e, PG_EINVALID, field, "is outside years 0001-9999 in UK time");
    if (s_local(t, out) != 0 && kind == S_FACT)
        return s_fail(e, PG_EUNSUPPORTED, field, S_REPEATED);
    return 0;
}

static int s_time_elem(s_enc *e, const char *field, const char *name, const pg_timestamp *ts)
{
    if (!ts)
        return 0;
    char buf[32] = "";
    int rc = s_time(e, field, ts, S_FACT, buf);
    return rc ? rc : s_elem(e, field, name, buf);
}

/* out: 16 bytes (11 used). */
static int s_full_date(s_enc *e, const char *field, const pg_date *d, char out[16])
{
    if (!d || !pg_date_valid(d->year, d->month, d->day))
        return s_fail(e, PG_EUNSUPPORTED, field, "NX5 needs a full date here");
    snprintf(out, 16, "%02d/%02d/%04d", d->day % 100, d->month % 100, d->year % 10000);
    return 0;
}

/* A partial date as NX5 writes a BirthDate: 00 for the parts not known. */
static int s_birth_date(s_enc *e, const char *field, const pg_date *d)
{
    const char *prec;
    int ok;
    if (d->day) {
        prec = "Day";
        ok = pg_date_valid(d->year, d->month, d->day);
    } else if (d->month) {
        prec = "Month";
        ok = d->month >= 1 && d->month <= 12;
    } else {
        prec = "Year";
        ok = 1;
    }
    if (!ok || d->year < 1 || d->year > 9999)
        return s_fail(e, PG_EINVALID, field, "is not a date");
    s_printf(e, "<BirthDate Precision=\"%s\">%02d/%02d/%04d</BirthDate>", prec, d->day, d->month,
             d->year);
    return 0;
}

/* Grid metres: as the canonical grid has them, to 0.1 m; whole metres without the
 * decimal (what an NX5 exporter writes for a surveyed point). */
static void s_metres(double v, int always_decimal, char out[24])
{
    double r = round(v * 10) / 10;
    if (!always_decimal && r == floor(r))
        snprintf(out, 24, "%.0f", r);
    else
        snprintf(out, 24, "%.1f", r);
}

/* The GID of an entity in the target RMS: from the idmap, or the origin's own id in
 * round-trip mode (no idmap). */
static int s_gid(s_enc *e, const char *field, const char *uuid, int kind, const char *system,
                 const char *native_id, char out[17], int *created)
{
    char buf[64] = "";
    char why[PG_ERRSTR_SIZE] = "";
    *created = 0;
    if (e->ctx && e->ctx->idmap) {
        int rc = e->ctx->idmap->resolve(e->ctx->idmap, uuid, kind, system, native_id, buf,
                                        sizeof buf, created, why, sizeof why);
        if (rc)
            return s_fail(e, rc, field, "no NX5 GID: %s", why);
    } else {
        snprintf(buf, sizeof buf, "%s", native_id ? native_id : "");
    }
    int ok = strlen(buf) == 16;
    for (int i = 0; ok && i < 16; i++)
        ok = (buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'A' && buf[i] <= 'F');
    if (!ok)
        return s_fail(
            e, PG_EUNSUPPORTED, field, "'%s' is not an NX5 GID (16 upper-case hex digits)%s", buf,
            e->ctx && e->ctx->idmap ? "" : "; encoding without an idmap keeps native ids");
    memcpy(out, buf, 17);
    return 0;
}

static const char *s_enum(const ProtobufCEnumDescriptor *desc, int v)
{
    return v ? pg_enum_short(desc, v) : NULL;
}

/* ------------------------------------------------------------ kinds */

/* Given names, upper case, at most 3: keep two and join the rest into the third. */
static int s_givens(s_enc *e, const char *field, const Polegate__Pole__V1__Name *nm,
                    const char *indent, const char *eol)
{
    for (size_t i = 0; i < nm->n_forenames && i < 3; i++) {
        s_puts(e, indent);
        s_puts(e, "<Given>");
        size_t last = i == 2 ? nm->n_forenames : i + 1;
        for (size_t k = i; k < last; k++) {
            if (k > i)
                s_puts(e, " ");
            int rc = s_upper_into(e, field, nm->forenames[k], strlen(nm->forenames[k]));
            if (rc)
                return rc;
        }
        s_puts(e, "</Given>");
        s_puts(e, eol);
    }
    return 0;
}

static int s_person(s_enc *e, const Polegate__Pole__V1__Person *p)
{
    const Polegate__Pole__V1__Name *nm = p->name;
    if (!nm || !nm->surname || !*nm->surname)
        return s_fail(e, PG_EUNSUPPORTED, "person.name.surname", "NX5 requires a Surname");
    int rc;
    s_puts(e, "    ");
    if ((rc = s_upper_elem(e, "person.name.surname", "Surname", nm->surname, strlen(nm->surname))))
        return rc;
    s_puts(e, "\n");
    if ((rc = s_givens(e, "person.name.forenames", nm, "    ", "\n")))
        return rc;
    if ((rc = s_elem(e, "person.title", "Title", p->title)))
        return rc;
    if (p->date_of_birth) {
        s_puts(e, "    ");
        if ((rc = s_birth_date(e, "person.date_of_birth", p->date_of_birth)))
            return rc;
        s_puts(e, "\n");
    }
    if ((rc = s_elem(e, "person.place_of_birth", "BirthPlace", p->place_of_birth)) ||
        (rc = s_elem(e, "person.sex", "Gender", pg_nx5_code_name(&pg_nx5_gender, p->sex))) ||
        (rc = s_elem(e, "person.officer_defined_ethnicity", "EthnicityOD",
                     pg_nx5_code_name(&pg_nx5_ethnicity_od, p->officer_defined_ethnicity))) ||
        (rc = s_elem(e, "person.self_defined_ethnicity", "EthnicitySD",
                     s_enum(&polegate__pole__v1__self_defined_ethnicity__descriptor,
                            p->self_defined_ethnicity))))
        return rc;
    if (p->nationality && *p->nationality &&
        (rc = s_elem(e, "person.nationality", "Nationality",
                     pg_country_alpha3_to_alpha2(p->nationality))))
        return rc;
    if (p->pnc_id && *p->pnc_id) {
        char short_form[12], why[PG_ERRSTR_SIZE];
        char back[14];
        if (pg_pnc_long_to_short(p->pnc_id, short_form, why, sizeof why) != 0)
            return s_fail(e, PG_EINVALID, "person.pnc_id", "%s", why);
        /* The short form's year reads in the century of Modified's year: a PNC ID it
         * would read as another one is left out, never written wrong. */
        if (pg_pnc_short_to_long(short_form, e->mod_year, back, why, sizeof why) == 0 &&
            strcmp(back, p->pnc_id) == 0 && (rc = s_elem(e, "person.pnc_id", "PNCID", short_form)))
            return rc;
    }
    if (p->cro_number && *p->cro_number) {
        char why[PG_ERRSTR_SIZE];
        if (pg_cro_validate(p->cro_number, why, sizeof why) != 0)
            return s_fail(e, PG_EINVALID, "person.cro_number", "%s", why);
        if ((rc = s_elem(e, "person.cro_number", "CRO", p->cro_number)))
            return rc;
    }
    for (size_t i = 0; i < p->n_aliases; i++) {
        const Polegate__Pole__V1__Alias *al = p->aliases[i];
        /* An alias without a surname has nothing NX5 can hold. */
        if (!al->name || !al->name->surname || !*al->name->surname)
            continue;
        s_puts(e, "    <Alias>");
        if ((rc = s_upper_elem(e, "person.aliases.name.surname", "Surname", al->name->surname,
                               strlen(al->name->surname))))
            return rc;
        if ((rc = s_givens(e, "person.aliases.name.forenames", al->name, "", "")))
            return rc;
        if (al->date_of_birth &&
            (rc = s_birth_date(e, "person.aliases.date_of_birth", al->date_of_birth)))
            return rc;
        s_puts(e, "</Alias>\n");
    }
    for (size_t i = 0; i < p->n_warning_markers; i++)
        if ((rc = s_elem(
                 e, "person.warning_markers", "Warning",
                 s_enum(&polegate__pole__v1__warning_marker__descriptor, p->warning_markers[i]))))
            return rc;
    return s_elem(e, "person.occupation", "Occupation", p->occupation);
}

static int s_location(s_enc *e, const Polegate__Pole__V1__Location *l)
{
    const char *parts[4] = {l->premises, l->street, l->locality, l->town};
    int last = -1, rc;
    for (int i = 0; i < 4; i++)
        if (parts[i] && *parts[i])
            last = i;
    for (int i = 0; i <= last; i++) {
        if (!parts[i] || !*parts[i])
            s_puts(e, "    <Line/>\n");
        else if ((rc = s_elem(e, "location", "Line", parts[i])))
            return rc;
    }
    /* Canonical values break no NX5 rule unless the canonical data is itself wrong:
     * that is refused here rather than sent to an RMS that would refuse it. */
    if (l->postcode && *l->postcode) {
        char pc[9], why[PG_ERRSTR_SIZE];
        if (pg_postcode_normalise(l->postcode, pc, why, sizeof why) != 0)
            return s_fail(e, PG_EINVALID, "location.postcode", "%s", why);
        if ((rc = s_elem(e, "location.postcode", "Postcode", pc)))
            return rc;
    }
    if (l->uprn && *l->uprn) {
        size_t n = strlen(l->uprn);
        int ok = n <= 12 && l->uprn[0] != '0';
        for (size_t i = 0; ok && i < n; i++)
            ok = l->uprn[i] >= '0' && l->uprn[i] <= '9';
        if (!ok)
            return s_fail(e, PG_EINVALID, "location.uprn", "is not 1-12 digits");
        if ((rc = s_elem(e, "location.uprn", "UPRN", l->uprn)))
            return rc;
    }
    char east[24], north[24];
    int have = 0;
    double lat, lon;
    /* A grid reference off the grid is not one: fall back to the WGS 84 position. */
    if (l->grid &&
        pg_geo_bng_to_wgs84(l->grid->easting, l->grid->northing, &lat, &lon, NULL, 0) == 0) {
        s_metres(l->grid->easting, 0, east);
        s_metres(l->grid->northing, 0, north);
        have = 1;
    } else if (l->geo) {
        double ge, gn;
        /* A position off the British grid has no NX5 form: it is left out. */
        if (pg_geo_wgs84_to_bng(l->geo->lat, l->geo->lon, &ge, &gn, NULL, 0) == 0) {
            s_metres(ge, 1, east);
            s_metres(gn, 1, north);
            have = 1;
        }
    }
    if (have && ((rc = s_elem(e, "location.grid", "Easting", east)) ||
                 (rc = s_elem(e, "location.grid", "Northing", north))))
        return rc;
    return s_elem(e, "location.description", "Description", l->description);
}

static int s_vehicle(s_enc *e, const Polegate__Pole__V1__Vehicle *v)
{
    int rc;
    if (v->vrm && *v->vrm) {
        char vrm[16], why[PG_ERRSTR_SIZE];
        if (pg_vrm_normalise(v->vrm, vrm, why, sizeof why) != 0)
            return s_fail(e, PG_EINVALID, "vehicle.vrm", "%s", why);
        if ((rc = s_elem(e, "vehicle.vrm", "VRM", vrm)))
            return rc;
    }
    if ((rc = s_elem(e, "vehicle.make", "Make", v->make)) ||
        (rc = s_elem(e, "vehicle.model", "Model", v->model)) ||
        (rc = s_elem(e, "vehicle.colour", "Colour", pg_nx5_code_name(&pg_nx5_colour, v->colour))) ||
        (rc = s_elem(e, "vehicle.vin", "VIN", v->vin)))
        return rc;
    if (v->year >= 1000 && v->year <= 9999)
        s_printf(e, "    <Year>%d</Year>\n", v->year);
    return 0;
}

static int s_item(s_enc *e, const Polegate__Pole__V1__Item *it)
{
    int rc;
    if ((rc = s_elem(e, "item.category", "Category",
                     pg_nx5_code_name(&pg_nx5_item_category, it->category))) ||
        (rc = s_elem(e, "item.description", "Description", it->description)) ||
        (rc = s_elem(e, "item.serial_number", "Serial", it->serial_number)))
        return rc;
    /* NX5 holds pence: another currency is left out, never converted. */
    if (it->value && it->value->currency && strcmp(it->value->currency, "GBP") == 0 &&
        it->value->minor_units >= 0 && it->value->minor_units <= 999999999999999999LL)
        s_printf(e, "    <Value>%lld</Value>\n", (long long)it->value->minor_units);
    return 0;
}

static int s_weapon(s_enc *e, const Polegate__Pole__V1__Weapon *w)
{
    int rc;
    /* NX5 tells a weapon from an item by its WPN- Category alone */
    if (!pg_nx5_code_name(&pg_nx5_weapon_category, w->category))
        return s_fail(e, PG_EUNSUPPORTED, "weapon.category",
                      "not given; NX5 says a weapon by its WPN- Category (without one it "
                      "reads as an item)");
    if ((rc = s_elem(e, "weapon.category", "Category",
                     pg_nx5_code_name(&pg_nx5_weapon_category, w->category))) ||
        (rc = s_elem(e, "weapon.description", "Description", w->description)))
        return rc;
    return s_elem(e, "weapon.serial_number", "Serial", w->serial_number);
}

static int s_telephone(s_enc *e, const Polegate__Pole__V1__Telephone *t)
{
    int rc;
    if ((rc = s_elem(e, "telephone.number", "Number", t->number)) ||
        (rc = s_elem(e, "telephone.kind", "Type", pg_nx5_code_name(&pg_nx5_phone_type, t->kind))))
        return rc;
    return s_elem(e, "telephone.imei", "IMEI", t->imei);
}

static int s_occurrence(s_enc *e, const Polegate__Pole__V1__Occurrence *o)
{
    int rc;
    if (!o->reference || !*o->reference)
        return s_fail(e, PG_EUNSUPPORTED, "occurrence.reference", "NX5 requires a Reference");
    if ((rc = s_elem(e, "occurrence.reference", "Reference", o->reference)) ||
        (rc = s_elem(e, "occurrence.kind", "Type",
                     pg_nx5_code_name(&pg_nx5_occurrence_type, o->kind))))
        return rc;
    /* NX5 gives offences to crimes only. */
    int incident = o->kind == POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_INCIDENT;
    for (size_t i = 0; i < o->n_offences && !incident; i++) {
        const Polegate__Pole__V1__Offence *of = o->offences[i];
        if (of->ho_class < 1 || of->ho_class > 999 || of->ho_subclass < 0 || of->ho_subclass > 99)
            return s_fail(e, PG_EINVALID, "occurrence.offences",
                          "not a Home Office class 1-999 and subclass 0-99");
        s_printf(e, "    <Offence Code=\"%d.%d\"", of->ho_class, of->ho_subclass);
        if (!of->description || !*of->description) {
            s_puts(e, "/>\n");
            continue;
        }
        s_puts(e, ">");
        if ((rc = s_escaped(e, "occurrence.offences.description", of->description,
                            strlen(of->description), 0)))
            return rc;
        s_puts(e, "</Offence>\n");
    }
    if ((rc = s_time_elem(e, "occurrence.occurred_from", "From", o->occurred_from)) ||
        (rc = s_time_elem(e, "occurrence.occurred_to", "To", o->occurred_to)) ||
        (rc = s_time_elem(e, "occurrence.reported_at", "Reported", o->reported_at)) ||
        (rc =
             s_elem(e, "occurrence.status", "Status", pg_nx5_code_name(&pg_nx5_status, o->status))))
        return rc;
    return s_elem(e, "occurrence.summary", "Summary", o->summary);
}

static int s_custody(s_enc *e, const Polegate__Pole__V1__Custody *c)
{
    int rc;
    if ((rc = s_elem(e, "custody.reference", "Reference", c->reference)) ||
        (rc = s_time_elem(e, "custody.arrested_at", "Arrested", c->arrested_at)) ||
        (rc = s_time_elem(e, "custody.arrived_at", "Arrived", c->arrived_at)) ||
        (rc = s_time_elem(e, "custody.released_at", "Released", c->released_at)) ||
        (rc = s_elem(e, "custody.station", "Station", c->station)))
        return rc;
    return s_elem(e, "custody.outcome", "Outcome", pg_nx5_code_name(&pg_nx5_outcome, c->outcome));
}

static int s_intelligence(s_enc *e, const Polegate__Pole__V1__Intelligence *in)
{
    int rc;
    if ((rc = s_elem(e, "intelligence.reference", "Reference", in->reference)) ||
        (rc = s_time_elem(e, "intelligence.reported_at", "Reported", in->reported_at)) ||
        (rc = s_elem(e, "intelligence.text", "Text", in->text)))
        return rc;
    const Polegate__Pole__V1__Grading *g = in->grading;
    const char *src = g ? pg_nx5_code_name(&pg_nx5_grading_source, g->source) : NULL;
    const char *intel = g ? pg_nx5_code_name(&pg_nx5_grading_intel, g->intelligence) : NULL;
    const char *hand = g ? pg_nx5_code_name(&pg_nx5_handling, g->handling) : NULL;
    /* NX5's Grading has all three parts or is not written. */
    if (src && intel && hand)
        s_printf(e, "    <Grading Source=\"%s\" Intel=\"%s\" Handling=\"%s\"/>\n", src, intel,
                 hand);
    return 0;
}

/* ------------------------------------------------------------ Entity and Link */

static int s_entity(s_enc *e, const pg_entity_update *eu)
{
    const char *kind = pg_nx5_kind_name(eu->kind);
    if (!kind)
        return s_fail(e, PG_EUNSUPPORTED, "kind", "no NX5 Kind for %d", eu->kind);
    const pg_origin *o = eu->origin;
    char gid[17];
    int created, rc;
    if ((rc = s_gid(e, "id", eu->id, eu->kind, o ? o->system : NULL, o ? o->native_id : NULL, gid,
                    &created)))
        return rc;
    int del = eu->operation == POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    if (!del && eu->operation != POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT)
        return s_fail(e, PG_EINVALID, "operation", "neither UPSERT nor DELETE");
    if (!del && eu->body_case == POLEGATE__POLE__V1__ENTITY_UPDATE__BODY__NOT_SET)
        return s_fail(e, PG_EINVALID, "body", "an UPSERT without a body");
    /* body fields are numbered kind + 19: a body of another kind would be written under
     * this Kind, a document the RMS refuses */
    if (!del && (int)eu->body_case != (int)eu->kind + 19)
        return s_fail(e, PG_EINVALID, "body", "does not match Kind %s", kind);
    const char *op = del ? "Delete" : eu->n_merged_from ? "Merge" : created ? "Add" : "Modify";
    if (eu->version < 1 || eu->version > PG_NX5_MAX_REV) /* as the decoder reads it */
        return s_fail(e, PG_EUNSUPPORTED, "version",
                      "%" PRIu64 "; NX5 Rev is 1 to %llu (19 digits)", eu->version, PG_NX5_MAX_REV);
    if (!eu->modified_at)
        return s_fail(e, PG_EUNSUPPORTED, "modified_at", "not given; NX5 requires Modified");
    const pg_marking *mk = eu->marking;
    const char *gpms = mk ? pg_nx5_code_name(&pg_nx5_gpms, mk->classification) : NULL;
    const char *hand = mk ? pg_nx5_code_name(&pg_nx5_handling, mk->handling) : NULL;
    if (!gpms)
        return s_fail(e, PG_EUNSUPPORTED, "marking.classification", "not given; NX5 requires GPMS");
    if (!hand)
        return s_fail(e, PG_EUNSUPPORTED, "marking.handling", "not given; NX5 requires Handling");
    const pg_retention *rt = eu->retention;
    if (!rt || rt->mopi_group < 1 || rt->mopi_group > 4)
        return s_fail(e, PG_EUNSUPPORTED, "retention.mopi_group", "not 1-4; NX5 requires MoPI");
    char review[16], modified[32];
    if ((rc = s_full_date(e, "retention.review_date", rt->review_date, review)))
        return rc;
    if ((rc = s_time(e, "modified_at", eu->modified_at, S_STAMP, modified)))
        return rc;
    e->mod_year = atoi(modified + 6); /* dd/mm/yyyy ... */
    s_printf(e,
             "  <Entity Kind=\"%s\" GID=\"%s\" Rev=\"%llu\" Op=\"%s\" Modified=\"%s\" "
             "GPMS=\"%s\" Handling=\"%s\" MoPI=\"%d\" Review=\"%s\"",
             kind, gid, (unsigned long long)eu->version, op, modified, gpms, hand, rt->mopi_group,
             review);
    if (del) {
        s_puts(e, "/>\n");
        return 0;
    }
    s_puts(e, ">\n");
    if (mk->handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C) {
        if (!mk->caveat || !*mk->caveat)
            return s_fail(e, PG_EUNSUPPORTED, "marking.caveat", "Handling C needs a caveat");
        size_t chars = 0;
        for (const char *p = mk->caveat; *p; p++)
            chars += ((unsigned char)*p & 0xC0) != 0x80;
        if (chars > PG_CAVEAT_MAX_CHARS)
            return s_fail(e, PG_EINVALID, "marking.caveat",
                          "%zu characters; the canonical model allows at most %d", chars,
                          PG_CAVEAT_MAX_CHARS);
        if ((rc = s_elem(e, "marking.caveat", "Caveat", mk->caveat)))
            return rc;
    }
    /* the GIDs as the RMS will read them: none the record's own, none twice (the
     * decoder refuses both) */
    size_t nm = eu->n_merged_from;
    pg_arena *ma = nm ? pg_arena_new(0) : NULL;
    pg_entity_ref *got = ma ? pg_arena_alloc(ma, nm * sizeof *got) : NULL;
    pg_entity_ref **refs = ma ? pg_arena_alloc(ma, nm * sizeof *refs) : NULL;
    if (nm && (!got || !refs)) {
        pg_arena_destroy(&ma);
        return pg_errf(PG_ENOMEM, e->errstr, e->errstr_size, "out of memory");
    }
    for (size_t i = 0; i < nm; i++) {
        const pg_entity_ref *r = eu->merged_from[i];
        char mg[17];
        int mg_created;
        if ((rc = s_gid(e, "merged_from", r->id, r->kind ? (int)r->kind : (int)eu->kind,
                        o ? o->system : NULL, r->native_id, mg, &mg_created)))
            break;
        if (!strcmp(mg, gid)) {
            rc = s_fail(e, PG_EUNSUPPORTED, "merged_from", "[%zu] is the record's own GID (%s)", i,
                        mg);
            break;
        }
        got[i] = (pg_entity_ref)POLEGATE__POLE__V1__ENTITY_REF__INIT;
        if (!(got[i].native_id = pg_arena_strdup(ma, mg))) {
            rc = pg_errf(PG_ENOMEM, e->errstr, e->errstr_size, "out of memory");
            break;
        }
        refs[i] = &got[i];
        s_printf(e, "    <MergedFrom GID=\"%s\"/>\n", mg);
    }
    size_t twice = SIZE_MAX;
    if (!rc && nm && pg_refs_first_repeat(refs, nm, 0, ma, &twice))
        rc = pg_errf(PG_ENOMEM, e->errstr, e->errstr_size, "out of memory");
    if (!rc && twice != SIZE_MAX)
        rc = s_fail(e, PG_EUNSUPPORTED, "merged_from", "[%zu] %s is named twice", twice,
                    refs[twice]->native_id);
    pg_arena_destroy(&ma);
    if (rc)
        return rc;
    switch (eu->body_case) {
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON:
        rc = s_person(e, eu->person);
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION:
        rc = s_location(e, eu->location);
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE:
        rc = s_vehicle(e, eu->vehicle);
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM:
        rc = s_item(e, eu->item);
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_WEAPON:
        rc = s_weapon(e, eu->weapon);
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE:
        rc = s_telephone(e, eu->telephone);
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE:
        rc = s_occurrence(e, eu->occurrence);
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_CUSTODY:
        rc = s_custody(e, eu->custody);
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE:
        rc = s_intelligence(e, eu->intelligence);
        break;
    default:
        rc = s_fail(e, PG_EINVALID, "body", "unknown body %d", eu->body_case);
    }
    if (rc)
        return rc;
    s_puts(e, "  </Entity>\n");
    return 0;
}

/* A canonical kind's name for reasons, "?" for one the proto does not have. */
static const char *s_kind(int kind)
{
    const char *s = pg_enum_short(&polegate__pole__v1__entity_kind__descriptor, kind);
    return s ? s : "?";
}

static int s_link(s_enc *e, const pg_link_update *lu)
{
    const pg_nx5_role *role = pg_nx5_role_by_value(lu->role);
    if (!role)
        return s_fail(e, PG_EUNSUPPORTED, "role", "no NX5 Role for %d", lu->role);
    if (!lu->from || !lu->to)
        return s_fail(e, PG_EINVALID, lu->from ? "to" : "from", "missing");
    /* Ends of unknown kind are the RMS's to check; a known mismatch would be refused. */
    if (lu->from->kind && lu->to->kind && !pg_role_allows(lu->role, lu->from->kind, lu->to->kind))
        return s_fail(e, PG_EINVALID, "role", "%s does not link %s to %s (ROLE table: %s)",
                      role->nx5, s_kind(lu->from->kind), s_kind(lu->to->kind),
                      pg_role_shape(lu->role));
    const char *system = lu->origin ? lu->origin->system : NULL;
    char from[17], to[17];
    int created, rc;
    if ((rc = s_gid(e, "from", lu->from->id, lu->from->kind, system, lu->from->native_id, from,
                    &created)) ||
        (rc = s_gid(e, "to", lu->to->id, lu->to->kind, system, lu->to->native_id, to, &created)))
        return rc;
    s_printf(e, "  <Link Role=\"%s\" From=\"%s\" To=\"%s\"", role->nx5, from, to);
    char date[16];
    if (lu->valid_from) {
        if ((rc = s_full_date(e, "valid_from", lu->valid_from, date)))
            return rc;
        s_printf(e, " Start=\"%s\"", date);
    }
    if (lu->valid_to) {
        if ((rc = s_full_date(e, "valid_to", lu->valid_to, date)))
            return rc;
        s_printf(e, " End=\"%s\"", date);
    }
    if (lu->operation == POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE)
        s_puts(e, " Op=\"Delete\"");
    s_puts(e, "/>\n");
    return 0;
}

/* ------------------------------------------------------------ the document */

/* The one originating force every change names. */
static int s_force(s_enc *e, const pg_changeset *cs, const char **force)
{
    *force = NULL;
    for (size_t i = 0; i < cs->count; i++) {
        const pg_change *ch = &cs->changes[i];
        const pg_origin *o = ch->type == PG_CHANGE_ENTITY ? ch->entity->origin : ch->link->origin;
        const char *f = o && o->force && *o->force ? o->force : NULL;
        snprintf(e->where, sizeof e->where, "changes[%zu]", i);
        if (!f)
            return s_fail(e, PG_EUNSUPPORTED, "origin.force", "not given; NX5 names the force");
        if (*force && strcmp(*force, f) != 0)
            return s_fail(e, PG_EUNSUPPORTED, "origin.force",
                          "another force than the first change's: one NX5 document carries "
                          "the records of one force");
        *force = f;
    }
    e->where[0] = 0;
    if (!*force)
        *force = cs->force ? cs->force : e->ctx ? e->ctx->force : NULL;
    size_t n = *force ? strlen(*force) : 0;
    int ok = n >= 2 && n <= 4;
    for (size_t i = 0; ok && i < n; i++)
        ok = (*force)[i] >= 'A' && (*force)[i] <= 'Z';
    if (!ok)
        return pg_errf(PG_EUNSUPPORTED, e->errstr, e->errstr_size,
                       "NX5Exchange@Force: the force is not 2-4 upper-case letters");
    return 0;
}

int pg_nx5_encode(const pg_adapter_ctx *ctx, const pg_changeset *cs, pg_buf *out, char *errstr,
                  size_t errstr_size)
{
    s_enc enc = {.ctx = ctx, .out = out, .errstr = errstr, .errstr_size = errstr_size};
    s_enc *e = &enc;
    size_t start = out->len;
    const char *force;
    int rc = s_force(e, cs, &force);
    if (rc)
        return rc;
    if (!cs->count) /* what the decoder refuses is not written */
        return pg_errf(PG_EUNSUPPORTED, errstr, errstr_size,
                       "NX5Exchange: no changes; an NX5 document holds one or more");
    int64_t now_ms = ctx ? ctx->now_ms : 0;
    if (now_ms == 0)
        now_ms = pg_time_wall_ms();
    int64_t secs = now_ms >= 0 ? now_ms / 1000 : -((-now_ms + 999) / 1000);
    pg_instant now = {secs, (int32_t)((now_ms - secs * 1000) * 1000000)};
    char created[32], batch[48];
    s_local(now, created); /* a stamp (s_time) */
    if (ctx && ctx->batch) {
        size_t chars = 0;
        for (const char *p = ctx->batch; *p; p++)
            chars += ((unsigned char)*p & 0xC0) != 0x80;
        if (chars < 1 || chars > 40)
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "NX5Exchange@Batch: must be 1-40 characters");
        snprintf(batch, sizeof batch, "%s", ctx->batch);
    } else {
        int y, mo, d, h, mi, s;
        pg_instant_to_london(now, &y, &mo, &d, &h, &mi, &s);
        snprintf(batch, sizeof batch, "gw-%04d%02d%02d-%02d%02d%02d%03d", y % 10000, mo % 100,
                 d % 100, h % 100, mi % 100, s % 100, (int)(now.nanos / 1000000));
    }
    s_puts(e, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<NX5Exchange xmlns=\"" PG_NX5_NAMESPACE
              "\" Source=\"NICHE\" Force=\"");
    s_puts(e, force);
    s_puts(e, "\" Batch=\"");
    if ((rc = s_escaped(e, "batch", batch, strlen(batch), 1)))
        goto err;
    s_printf(e, "\" Created=\"%s\">\n", created);
    for (size_t i = 0; i < cs->count && rc == 0; i++) {
        const pg_change *ch = &cs->changes[i];
        const pg_origin *o = ch->type == PG_CHANGE_ENTITY ? ch->entity->origin : ch->link->origin;
        const char *id = o && o->native_id && *o->native_id ? o->native_id
                         : ch->type == PG_CHANGE_ENTITY     ? ch->entity->id
                                                            : ch->link->id;
        /* an id names the record in a reason; anything else in its place is content */
        int plain = id && strlen(id) <= 40;
        for (const char *p = id; plain && *p; p++)
            plain = isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.';
        snprintf(e->where, sizeof e->where, "changes[%zu] (%s %s)", i,
                 ch->type == PG_CHANGE_ENTITY ? "entity" : "link", plain ? id : "-");
        rc = ch->type == PG_CHANGE_ENTITY ? s_entity(e, ch->entity) : s_link(e, ch->link);
    }
    if (rc)
        goto err;
    s_puts(e, "</NX5Exchange>\n");
    if (e->rc) {
        rc = pg_errf(e->rc, errstr, errstr_size, "NX5: %s while writing", pg_strerror(e->rc));
        goto err;
    }
    return 0;
err:
    out->len = start;
    if (out->data)
        out->data[start] = 0;
    return rc;
}
