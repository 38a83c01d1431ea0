/* ATX/2 encoder: canonical changes -> NDJSON lines an Athena-like RMS imports. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "atx.h"
#include "polegate/arena.h"
#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/json.h"
#include "polegate/timeutil.h"

#define OP(x) POLEGATE__POLE__V1__OPERATION__OPERATION_##x
#define S_MAX_DEPTH 16

/* A small JSON writer straight into the output buffer: no DOM on this path. Errors
 * are sticky so that the writing code reads as the message it writes. */
typedef struct s_jw {
    pg_buf *out;
    int err;
    int depth;
    unsigned char first[S_MAX_DEPTH];
} s_jw;

/* Encoding state for one changeset. */
typedef struct s_enc {
    const pg_adapter_ctx *ctx;
    const pg_changeset *cs;
    s_jw w;
    pg_arena *scratch; /* trimmed copies of strings (s_val); made when first needed */
    char *errstr;
    size_t errstr_size;
} s_enc;

__attribute__((format(printf, 3, 4))) static int s_bad(s_enc *e, const char *path, const char *fmt,
                                                       ...)
{
    char rule[PG_ERRSTR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    return pg_errf(PG_EUNSUPPORTED, e->errstr, e->errstr_size, "%s: %s", path, rule);
}

static void s_put(s_jw *w, const void *p, size_t n)
{
    if (!w->err && pg_buf_append(w->out, p, n))
        w->err = PG_ENOMEM;
}

/* str as a JSON string; a string that is not UTF-8 cannot be carried (ATX is JSON). */
static void s_escaped(s_jw *w, const char *str)
{
    if (w->err)
        return;
    int rc = pg_json_string(w->out, str, strlen(str), PG_JSON_STRICT);
    if (rc)
        w->err = rc == PG_EINVALID ? PG_EUNSUPPORTED : rc;
}

static void s_key(s_jw *w, const char *key)
{
    if (!w->first[w->depth])
        s_put(w, ",", 1);
    w->first[w->depth] = 0;
    if (key) {
        s_escaped(w, key);
        s_put(w, ":", 1);
    }
}

static void s_open(s_jw *w, const char *key, char c)
{
    s_key(w, key);
    s_put(w, &c, 1);
    if (w->depth + 1 >= S_MAX_DEPTH) {
        w->err = PG_EINTERNAL;
        return;
    }
    w->first[++w->depth] = 1;
}

static void s_close(s_jw *w, char c)
{
    s_put(w, &c, 1);
    if (w->depth > 0)
        w->depth--;
}

static void s_str(s_jw *w, const char *key, const char *v)
{
    s_key(w, key);
    s_escaped(w, v);
}

/* v as ATX imports it: trimmed, and NULL when nothing is left (athena-atx2.md, Bodies:
 * an empty string means absent), so that every test of a value's presence or shape
 * sees what the RMS will see. The caveat is read the same way. */
static const char *s_val(s_enc *e, const char *v)
{
    size_t n = v ? strlen(v) : 0, len = n;
    const char *t = v ? pg_atx_trim(v, &len) : NULL;
    if (len == 0)
        return NULL;
    if (len == n)
        return v;
    if (!e->scratch)
        e->scratch = pg_arena_new(0);
    char *copy = e->scratch ? pg_arena_strndup(e->scratch, t, len) : NULL;
    if (!copy)
        e->w.err = PG_ENOMEM; /* sticky: the change fails with it */
    return copy ? copy : v;
}

/* A proto3 string is absent when empty, and so is one of white space only. */
static void s_opt_str(s_enc *e, const char *key, const char *v)
{
    if ((v = s_val(e, v)))
        s_str(&e->w, key, v);
}

static void s_raw(s_jw *w, const char *key, const char *raw)
{
    s_key(w, key);
    s_put(w, raw, strlen(raw));
}

static void s_int(s_jw *w, const char *key, long long v)
{
    char n[24];
    snprintf(n, sizeof n, "%lld", v);
    s_raw(w, key, n);
}

/* At least 6 decimals, more when needed to give back exactly the same double. */
static void s_degrees(s_jw *w, const char *key, double v)
{
    char n[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(n, sizeof n, "%.*f", prec, v);
        if (strtod(n, NULL) == v)
            break;
    }
    s_raw(w, key, n);
}

static void s_code(s_jw *w, const char *key, const pg_atx_table *t, int value)
{
    const char *name = value ? pg_atx_code_name(t, value) : NULL;
    if (name) /* no ATX equivalent: omitted, never guessed */
        s_str(w, key, name);
}

/* A time as RFC 3339 in London time. RFC 3339 years have 4 digits, and ATX dates are
 * 0001-9999 (pg_date_valid), so an instant whose UTC year is outside 0001-9999 cannot be
 * written: it is refused here rather than bounded in the decoder, because the spec
 * lets a sender use any offset (athena-atx2.md, Time), so 9999-12-31T23:59:59-01:00 is
 * a valid message whose instant lies in year 10000 UTC. London keeps GMT around the
 * turn of a year, so the year written is the UTC year. */
static int s_time(s_enc *e, const char *key, const char *path, const pg_timestamp *ts)
{
    if (!ts)
        return 0;
    if (ts->seconds < pg_days_from_civil(1, 1, 1) * 86400 ||
        ts->seconds >= pg_days_from_civil(10000, 1, 1) * 86400)
        return s_bad(e, path, "the year is outside 0001-9999, which ATX cannot write");
    char out[40];
    pg_rfc3339_format_london((pg_instant){ts->seconds, ts->nanos}, out);
    s_str(&e->w, key, out);
    return 0;
}

/* "YYYY", "YYYY-MM" or "YYYY-MM-DD" as far as the date is known; 0 or -1. */
static int s_date_text(const pg_date *dt, char out[11])
{
    if (dt->year < 1 || dt->year > 9999)
        return -1;
    if (dt->month == 0) {
        snprintf(out, 11, "%04d", dt->year);
        return 0;
    }
    if (dt->month < 1 || dt->month > 12)
        return -1;
    if (dt->day == 0) {
        snprintf(out, 11, "%04d-%02d", dt->year, dt->month);
        return 0;
    }
    if (!pg_date_valid(dt->year, dt->month, dt->day))
        return -1;
    snprintf(out, 11, "%04d-%02d-%02d", dt->year, dt->month, dt->day);
    return 0;
}

static int s_partial_date(s_enc *e, const char *key, const char *path, const pg_date *dt)
{
    char t[11];
    if (!dt)
        return 0;
    if (s_date_text(dt, t))
        return s_bad(e, path, "is not a date");
    s_str(&e->w, key, t);
    return 0;
}

/* A link's validity: a full date, or null (a partial date cannot be expressed here and
 * is not padded). */
static void s_link_date(s_jw *w, const char *key, const pg_date *dt)
{
    char t[11];
    if (dt && dt->day && s_date_text(dt, t) == 0)
        s_str(w, key, t);
    else
        s_raw(w, key, "null");
}

static int s_chars_ok(const char *s, size_t min, size_t max)
{
    size_t n = s ? pg_atx_utf8_chars(s, strlen(s)) : 0;
    return n >= min && n <= max;
}

static int s_digits_ok(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    return n >= min && n <= max && strspn(s, "0123456789") == n;
}

/* A code-rule normaliser of codes.h: postcode, VRM, telephone. */
typedef int (*s_norm_fn)(const char *s, char *out, char *errstr, size_t errstr_size);

/* Write v (when given) as fn normalises it; a value the rule refuses cannot be sent. */
static int s_normalised(s_enc *e, const char *key, const char *path, const char *v, s_norm_fn fn)
{
    char norm[32], why[PG_ERRSTR_SIZE];
    if (!(v = s_val(e, v)))
        return 0;
    if (fn(v, norm, why, sizeof why))
        return s_bad(e, path, "%s", why);
    s_str(&e->w, key, norm);
    return 0;
}

/* ------------------------------------------------------------------ bodies */

static int s_name(s_enc *e, const Polegate__Pole__V1__Name *nm, const char *path)
{
    s_jw *w = &e->w;
    const char *surname = nm ? s_val(e, nm->surname) : NULL;
    if (!nm || !s_chars_ok(surname, 1, 60))
        return s_bad(e, path, "surname must be 1-60 characters");
    s_str(w, "surname", surname);
    /* ATX holds 5 forenames: those after the 4th join the 5th, space-separated; a blank
     * forename is none */
    pg_buf rest = PG_BUF_INIT;
    size_t k = 0;
    for (size_t i = 0; i < nm->n_forenames; i++) {
        const char *f = s_val(e, nm->forenames[i]);
        if (!f)
            continue;
        if (k == 0)
            s_open(w, "forenames", '[');
        if (k < 4)
            s_str(w, NULL, f);
        else if ((k > 4 && pg_buf_putc(&rest, ' ')) || pg_buf_puts(&rest, f))
            w->err = PG_ENOMEM;
        k++;
    }
    if (k > 4)
        s_str(w, NULL, rest.data ? (char *)rest.data : "");
    if (k)
        s_close(w, ']');
    pg_buf_free(&rest);
    return 0;
}

static int s_person(s_enc *e, const Polegate__Pole__V1__Person *p)
{
    s_jw *w = &e->w;
    char why[PG_ERRSTR_SIZE];
    int rc = s_name(e, p->name, "record.body");
    if (rc)
        return rc;
    s_opt_str(e, "title", p->title);
    if ((rc = s_partial_date(e, "dateOfBirth", "record.body.dateOfBirth", p->date_of_birth)))
        return rc;
    s_opt_str(e, "placeOfBirth", p->place_of_birth);
    s_code(w, "sex", &pg_atx_sex, p->sex);
    const char *sde = pg_atx_code_name(&pg_atx_sde, p->self_defined_ethnicity);
    const char *ic = pg_atx_code_name(&pg_atx_ic, p->officer_defined_ethnicity);
    if (sde || ic) {
        s_open(w, "ethnicity", '{');
        s_code(w, "selfDefined", &pg_atx_sde, p->self_defined_ethnicity);
        s_code(w, "officerDefined", &pg_atx_ic, p->officer_defined_ethnicity);
        s_close(w, '}');
    }
    const char *nat = s_val(e, p->nationality);
    if (nat && pg_country_alpha3_to_alpha2(nat))
        s_str(w, "nationality", nat);
    const char *pnc = s_val(e, p->pnc_id), *cro = s_val(e, p->cro_number);
    if (pnc && pg_pnc_validate_long(pnc, why, sizeof why))
        return s_bad(e, "record.body.identifiers.pncId", "%s", why);
    if (cro && pg_cro_validate(cro, why, sizeof why))
        return s_bad(e, "record.body.identifiers.croNumber", "%s", why);
    if (pnc || cro) {
        s_open(w, "identifiers", '{');
        s_opt_str(e, "pncId", pnc);
        s_opt_str(e, "croNumber", cro);
        s_close(w, '}');
    }
    if (p->n_aliases) {
        s_open(w, "aliases", '[');
        for (size_t i = 0; i < p->n_aliases; i++) {
            char ap[48];
            snprintf(ap, sizeof ap, "record.body.aliases[%zu]", i);
            s_open(w, NULL, '{');
            if ((rc = s_name(e, p->aliases[i]->name, ap)) ||
                (rc = s_partial_date(e, "dateOfBirth", ap, p->aliases[i]->date_of_birth)))
                return rc;
            s_close(w, '}');
        }
        s_close(w, ']');
    }
    size_t nwm = 0;
    for (size_t i = 0; i < p->n_warning_markers; i++)
        nwm += pg_atx_code_name(&pg_atx_wm, p->warning_markers[i]) != NULL;
    if (nwm) {
        s_open(w, "warningMarkers", '[');
        for (size_t i = 0; i < p->n_warning_markers; i++)
            s_code(w, NULL, &pg_atx_wm, p->warning_markers[i]);
        s_close(w, ']');
    }
    s_opt_str(e, "occupation", p->occupation);
    return 0;
}

static int s_location(s_enc *e, const Polegate__Pole__V1__Location *l)
{
    s_jw *w = &e->w;
    s_opt_str(e, "premises", l->premises);
    s_opt_str(e, "street", l->street);
    s_opt_str(e, "locality", l->locality);
    s_opt_str(e, "town", l->town);
    int rc =
        s_normalised(e, "postcode", "record.body.postcode", l->postcode, pg_postcode_normalise);
    if (rc)
        return rc;
    const char *uprn = s_val(e, l->uprn);
    if (uprn) {
        if (!s_digits_ok(uprn, 1, 12) || uprn[0] == '0')
            return s_bad(e, "record.body.uprn", "must be 1-12 digits without leading zeros");
        s_str(w, "uprn", uprn);
    }
    if (l->geo) {
        if (!(fabs(l->geo->lat) <= 90 && fabs(l->geo->lon) <= 180))
            return s_bad(e, "record.body.geo", "not a WGS 84 position");
        s_open(w, "geo", '{');
        s_degrees(w, "lat", l->geo->lat);
        s_degrees(w, "lon", l->geo->lon);
        s_close(w, '}');
    }
    s_opt_str(e, "description", l->description);
    return 0;
}

static int s_vehicle(s_enc *e, const Polegate__Pole__V1__Vehicle *v)
{
    s_jw *w = &e->w;
    int rc = s_normalised(e, "vrm", "record.body.vrm", v->vrm, pg_vrm_normalise);
    if (rc)
        return rc;
    s_opt_str(e, "make", v->make);
    s_opt_str(e, "model", v->model);
    s_code(w, "colour", &pg_atx_colour, v->colour);
    const char *vin = s_val(e, v->vin);
    if (vin) {
        if (strlen(vin) != 17 || strspn(vin, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 17)
            return s_bad(e, "record.body.vin", "must be 17 characters A-Z 0-9");
        s_str(w, "vin", vin);
    }
    if (v->year > 0 && v->year <= 9999)
        s_int(w, "year", v->year);
    return 0;
}

static int s_item(s_enc *e, const Polegate__Pole__V1__Item *it)
{
    s_jw *w = &e->w;
    s_code(w, "category", &pg_atx_item, it->category);
    const char *desc = s_val(e, it->description);
    if (!desc)
        return s_bad(e, "record.body.description", "is required for an ITEM");
    s_str(w, "description", desc);
    s_opt_str(e, "serialNumber", it->serial_number);
    if (it->value) {
        const char *cur = s_val(e, it->value->currency);
        if (!cur || strlen(cur) != 3 || strspn(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
            return s_bad(e, "record.body.value.currency", "must be an ISO 4217 code");
        if (it->value->minor_units < 0)
            return s_bad(e, "record.body.value.amount", "must not be negative");
        char amount[24];
        pg_money_format(it->value->minor_units, amount);
        s_open(w, "value", '{');
        s_str(w, "amount", amount);
        s_str(w, "currency", cur);
        s_close(w, '}');
    }
    return 0;
}

static int s_weapon(s_enc *e, const Polegate__Pole__V1__Weapon *wp)
{
    s_code(&e->w, "category", &pg_atx_weapon, wp->category);
    s_opt_str(e, "description", wp->description);
    s_opt_str(e, "serialNumber", wp->serial_number);
    return 0;
}

static int s_telephone(s_enc *e, const Polegate__Pole__V1__Telephone *t)
{
    s_jw *w = &e->w;
    int rc = s_normalised(e, "number", "record.body.number", t->number, pg_phone_to_e164);
    if (rc)
        return rc;
    s_code(w, "kind", &pg_atx_telkind, t->kind);
    const char *imei = s_val(e, t->imei);
    if (imei) {
        if (!s_digits_ok(imei, 15, 15))
            return s_bad(e, "record.body.imei", "must be 15 digits");
        s_str(w, "imei", imei);
    }
    return 0;
}

static int s_reference(s_enc *e, const char *ref, const char *type)
{
    if (!(ref = s_val(e, ref)))
        return s_bad(e, "record.body.reference", "is required for %s", type);
    s_str(&e->w, "reference", ref);
    return 0;
}

static int s_text(s_enc *e, const char *key, const char *path, const char *v)
{
    if (!(v = s_val(e, v)))
        return 0;
    if (!s_chars_ok(v, 0, 4000))
        return s_bad(e, path, "longer than 4000 characters");
    s_str(&e->w, key, v);
    return 0;
}

static int s_occurrence(s_enc *e, const Polegate__Pole__V1__Occurrence *o)
{
    s_jw *w = &e->w;
    int rc = s_reference(e, o->reference, "an OCCURRENCE");
    if (rc)
        return rc;
    s_code(w, "kind", &pg_atx_occkind, o->kind);
    if (o->kind == POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_CRIME && o->n_offences == 0)
        return s_bad(e, "record.body.offences", "a CRIME needs at least one offence");
    if (o->n_offences) {
        s_open(w, "offences", '[');
        for (size_t i = 0; i < o->n_offences; i++) {
            const Polegate__Pole__V1__Offence *of = o->offences[i];
            if (of->ho_class < 1 || of->ho_class > 999 || of->ho_subclass < 0 ||
                of->ho_subclass > 99)
                return s_bad(e, "record.body.offences",
                             "a Home Office code out of range (class 1-999, subclass 0-99)");
            s_open(w, NULL, '{');
            s_int(w, "hoClass", of->ho_class);
            s_int(w, "hoSubclass", of->ho_subclass);
            s_opt_str(e, "description", of->description);
            s_close(w, '}');
        }
        s_close(w, ']');
    }
    /* The decoder refuses a range that ends before it starts: never write one. */
    const pg_timestamp *from = o->occurred_from, *to = o->occurred_to;
    if (from && to &&
        (to->seconds < from->seconds || (to->seconds == from->seconds && to->nanos < from->nanos)))
        return s_bad(e, "record.body.occurredTo", "is before occurredFrom");
    if ((rc = s_time(e, "occurredFrom", "record.body.occurredFrom", from)) ||
        (rc = s_time(e, "occurredTo", "record.body.occurredTo", from ? to : NULL)) ||
        (rc = s_time(e, "reportedAt", "record.body.reportedAt", o->reported_at)))
        return rc;
    s_code(w, "status", &pg_atx_occstatus, o->status);
    return s_text(e, "summary", "record.body.summary", o->summary);
}

static int s_custody(s_enc *e, const Polegate__Pole__V1__Custody *c)
{
    s_jw *w = &e->w;
    int rc = s_reference(e, c->reference, "a CUSTODY");
    if (rc)
        return rc;
    if ((rc = s_time(e, "arrestedAt", "record.body.arrestedAt", c->arrested_at)) ||
        (rc = s_time(e, "arrivedAt", "record.body.arrivedAt", c->arrived_at)) ||
        (rc = s_time(e, "releasedAt", "record.body.releasedAt", c->released_at)))
        return rc;
    s_opt_str(e, "station", c->station);
    s_code(w, "outcome", &pg_atx_outcome, c->outcome);
    return 0;
}

static int s_intelligence(s_enc *e, const Polegate__Pole__V1__Intelligence *n)
{
    s_jw *w = &e->w;
    int rc = s_reference(e, n->reference, "an INTELLIGENCE");
    if (rc)
        return rc;
    if ((rc = s_time(e, "reportedAt", "record.body.reportedAt", n->reported_at)) ||
        (rc = s_text(e, "text", "record.body.text", n->text)))
        return rc;
    const Polegate__Pole__V1__Grading *g = n->grading;
    /* ATX grades all three parts or none */
    if (g && g->source >= 1 && g->source <= 3 &&
        pg_atx_code_name(&pg_atx_assessment, g->intelligence) &&
        pg_atx_code_name(&pg_atx_handling, g->handling)) {
        s_open(w, "grading", '{');
        s_int(w, "source", g->source);
        s_code(w, "intelligence", &pg_atx_assessment, g->intelligence);
        s_code(w, "handling", &pg_atx_handling, g->handling);
        s_close(w, '}');
    }
    return 0;
}

static int s_body(s_enc *e, const pg_entity_update *eu)
{
    if ((int)eu->body_case != (int)eu->kind + 19) /* body fields are numbered kind + 19 */
        return s_bad(e, "record.body", "the body does not match kind %s",
                     pg_atx_code_name(&pg_atx_type, eu->kind));
    switch (eu->body_case) {
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON:
        return s_person(e, eu->person);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION:
        return s_location(e, eu->location);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE:
        return s_vehicle(e, eu->vehicle);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM:
        return s_item(e, eu->item);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_WEAPON:
        return s_weapon(e, eu->weapon);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE:
        return s_telephone(e, eu->telephone);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE:
        return s_occurrence(e, eu->occurrence);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_CUSTODY:
        return s_custody(e, eu->custody);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE:
        return s_intelligence(e, eu->intelligence);
    default:
        return s_bad(e, "record.body", "missing");
    }
}

/* ------------------------------------------------------------------ envelope */

/* The id the RMS knows entity uuid by: through the idmap, or the origin's native id
 * when there is none (round trip). *kind may be 0 on entry (a link target whose kind
 * is not known): the id's type letter then says it. */
static int s_resolve(s_enc *e, const char *path, const char *uuid, int *kind, const char *system,
                     const char *native_id, char out[32])
{
    if (e->ctx->idmap) {
        int rc = e->ctx->idmap->resolve(e->ctx->idmap, uuid, *kind, system, native_id, out, 32,
                                        NULL, e->errstr, e->errstr_size);
        if (rc)
            return rc;
    } else {
        snprintf(out, 32, "%s", native_id ? native_id : "");
    }
    int k = *kind ? *kind : pg_atx_id_kind(out);
    if (k && !pg_atx_code_name(&pg_atx_type, k))
        return s_bad(e, path, "entity kind %d has no ATX record type", k);
    if (!pg_atx_id_valid(out, k))
        return s_bad(e, path, "'%.40s' is not an ATX id%s%s", out, k ? " of type " : "",
                     k ? pg_atx_code_name(&pg_atx_type, k) : "");
    *kind = k;
    return 0;
}

static void s_message_id(const pg_adapter_ctx *ctx, const pg_entity_update *eu, char out[37])
{
    if (!ctx->idmap && pg_atx_uuid_valid(eu->origin->message_id)) {
        memcpy(out, eu->origin->message_id, 37);
        return;
    }
    /* Deterministic, so that a re-send of the same change is seen as a duplicate. */
    char name[96];
    int n = snprintf(name, sizeof name, "atx-msg/%s/%llu", eu->id, (unsigned long long)eu->version);
    uuid_t ns, u;
    uuid_parse(PG_IDENTITY_NAMESPACE, ns);
    uuid_generate_sha1(u, ns, name, (size_t)n);
    uuid_unparse_lower(u, out);
}

static int s_header(s_enc *e, const pg_entity_update *eu)
{
    s_jw *w = &e->w;
    const pg_origin *o = eu->origin;
    if (!o->force || !*o->force || strchr(o->force, '/'))
        return s_bad(e, "header.orgUnit", "the change has no origin force");
    size_t fl = strlen(o->force);
    const char *ou = o->org_unit && strncmp(o->org_unit, o->force, fl) == 0 &&
                             (o->org_unit[fl] == 0 || o->org_unit[fl] == '/')
                         ? o->org_unit
                         : o->force;
    if (!s_chars_ok(ou, 1, 64))
        return s_bad(e, "header.orgUnit", "is longer than 64 characters");
    char mid[37], sent[40];
    s_message_id(e->ctx, eu, mid);
    pg_instant now;
    if (e->ctx->now_ms) {
        now.seconds = e->ctx->now_ms / 1000;
        now.nanos = (int32_t)(e->ctx->now_ms % 1000) * 1000000;
        if (now.nanos < 0) {
            now.seconds--;
            now.nanos += 1000000000;
        }
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now.seconds = ts.tv_sec;
        now.nanos = (int32_t)ts.tv_nsec;
    }
    pg_rfc3339_format_london(now, sent);
    s_open(w, "header", '{');
    s_str(w, "schema", PG_ATX_SCHEMA);
    s_str(w, "messageId", mid);
    s_str(w, "sentAt", sent);
    s_str(w, "system", PG_ATX_SYSTEM);
    s_str(w, "orgUnit", ou);
    s_close(w, '}');
    return 0;
}

static int s_marking(s_enc *e, const pg_marking *m)
{
    s_jw *w = &e->w;
    const char *cl = m ? pg_atx_code_name(&pg_atx_classification, m->classification) : NULL;
    const char *h = m ? pg_atx_code_name(&pg_atx_handling, m->handling) : NULL;
    if (!cl)
        return s_bad(e, "record.marking.classification", "not given");
    if (!h)
        return s_bad(e, "record.marking.handling", "not given");
    const char *caveat = s_val(e, m->caveat);
    int has_caveat = caveat != NULL;
    if (!has_caveat && m->handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C)
        return s_bad(e, "record.marking.caveat", "is required when handling is 'C'");
    if (has_caveat && !s_chars_ok(caveat, 0, 500))
        return s_bad(e, "record.marking.caveat", "longer than 500 characters");
    s_open(w, "marking", '{');
    s_str(w, "classification", cl);
    s_str(w, "handling", h);
    if (has_caveat)
        s_str(w, "caveat", caveat);
    else
        s_raw(w, "caveat", "null");
    s_close(w, '}');
    return 0;
}

static int s_retention(s_enc *e, const pg_entity_update *eu)
{
    const pg_retention *r = eu->retention;
    char date[11];
    if (!r && eu->operation == OP(DELETE))
        return 0;
    if (!r || r->mopi_group < 1 || r->mopi_group > 4)
        return s_bad(e, "record.retention.mopiGroup", "an UPSERT needs a MoPI group 1-4");
    if (!r->review_date || !r->review_date->day || s_date_text(r->review_date, date))
        return s_bad(e, "record.retention.reviewDate", "an UPSERT needs a review date");
    s_open(&e->w, "retention", '{');
    s_int(&e->w, "mopiGroup", r->mopi_group);
    s_str(&e->w, "reviewDate", date);
    s_close(&e->w, '}');
    return 0;
}

static int s_link(s_enc *e, const pg_entity_update *eu, const pg_link_update *lu, size_t i)
{
    s_jw *w = &e->w;
    char path[48], id[32];
    snprintf(path, sizeof path, "links[%zu].target", i);
    const char *role = pg_atx_code_name(&pg_atx_role, lu->role);
    if (!role)
        return s_bad(e, path, "link role %d has no ATX equivalent", lu->role);
    int kind = lu->to->kind ? (int)lu->to->kind : pg_role_only_target(lu->role);
    int rc = s_resolve(e, path, lu->to->id, &kind, lu->origin ? lu->origin->system : "",
                       lu->to->native_id, id);
    if (rc)
        return rc;
    if (!pg_role_allows(lu->role, eu->kind, kind))
        return s_bad(e, path, "%s does not link %s to %s (ROLE table: %s)", role,
                     pg_atx_code_name(&pg_atx_type, eu->kind), pg_atx_code_name(&pg_atx_type, kind),
                     pg_role_shape(lu->role));
    s_open(w, NULL, '{');
    s_open(w, "target", '{');
    s_str(w, "type", pg_atx_code_name(&pg_atx_type, kind));
    s_str(w, "id", id);
    s_close(w, '}');
    s_str(w, "role", role);
    s_link_date(w, "validFrom", lu->valid_from);
    s_link_date(w, "validTo", lu->valid_to);
    s_close(w, '}');
    return 0;
}

static int s_entity(s_enc *e, const pg_entity_update *eu)
{
    s_jw *w = &e->w;
    const char *type = pg_atx_code_name(&pg_atx_type, eu->kind);
    const char *action = pg_atx_code_name(&pg_atx_action, eu->operation);
    if (!type)
        return s_bad(e, "record.type", "entity kind %d has no ATX record type", eu->kind);
    if (!action)
        return s_bad(e, "record.action", "operation %d has no ATX action", eu->operation);
    if (!eu->origin || !eu->id)
        return s_bad(e, "record", "the change has no origin");
    if (eu->version < 1 || eu->version > (uint64_t)INT64_MAX) /* not wrapped to a negative */
        return s_bad(e, "record.revision", "must be 1 to %" PRId64 " (2^63-1), not %" PRIu64,
                     INT64_MAX, eu->version);
    if (!eu->modified_at)
        return s_bad(e, "record.modifiedAt", "the change has no modification time");
    int kind = eu->kind, rc;
    char id[32];
    if ((rc = s_resolve(e, "record.id", eu->id, &kind, eu->origin->system, eu->origin->native_id,
                        id)))
        return rc;

    s_open(w, NULL, '{');
    if ((rc = s_header(e, eu)))
        return rc;
    s_open(w, "record", '{');
    s_str(w, "type", type);
    s_str(w, "id", id);
    s_int(w, "revision", (long long)eu->version);
    s_str(w, "action", action);
    if ((rc = s_time(e, "modifiedAt", "record.modifiedAt", eu->modified_at)) ||
        (rc = s_marking(e, eu->marking)) || (rc = s_retention(e, eu)))
        return rc;
    if (eu->operation == OP(DELETE)) {
        s_close(w, '}');
        s_close(w, '}');
        return 0;
    }
    s_open(w, "body", '{');
    if ((rc = s_body(e, eu)))
        return rc;
    s_close(w, '}');
    if (eu->n_merged_from) {
        /* the ids as the RMS will read them: none the record's own, none twice */
        size_t n = eu->n_merged_from;
        if (!e->scratch)
            e->scratch = pg_arena_new(0);
        pg_entity_ref *got = e->scratch ? pg_arena_alloc(e->scratch, n * sizeof *got) : NULL;
        pg_entity_ref **refs = e->scratch ? pg_arena_alloc(e->scratch, n * sizeof *refs) : NULL;
        if (!got || !refs)
            return pg_errf(PG_ENOMEM, e->errstr, e->errstr_size, "out of memory");
        s_open(w, "mergedFrom", '[');
        for (size_t i = 0; i < n; i++) {
            const pg_entity_ref *m = eu->merged_from[i];
            char mp[48], mid[32];
            int mk = eu->kind;
            snprintf(mp, sizeof mp, "record.mergedFrom[%zu]", i);
            if ((rc = s_resolve(e, mp, m->id, &mk, eu->origin->system, m->native_id, mid)))
                return rc;
            if (!strcmp(mid, id))
                return s_bad(e, mp, "is the record's own id (%s)", mid);
            got[i] = (pg_entity_ref)POLEGATE__POLE__V1__ENTITY_REF__INIT;
            if (!(got[i].native_id = pg_arena_strdup(e->scratch, mid)))
                return pg_errf(PG_ENOMEM, e->errstr, e->errstr_size, "out of memory");
            refs[i] = &got[i];
            s_str(w, NULL, mid);
        }
        size_t twice;
        char mp[48];
        if (pg_refs_first_repeat(refs, n, 0, e->scratch, &twice))
            return pg_errf(PG_ENOMEM, e->errstr, e->errstr_size, "out of memory");
        if (twice != SIZE_MAX) {
            snprintf(mp, sizeof mp, "record.mergedFrom[%zu]", twice);
            return s_bad(e, mp, "%s is named twice", refs[twice]->native_id);
        }
        s_close(w, ']');
    }
    s_close(w, '}');
    /* every link upsert of the changeset from this entity; ATX replaces the rest */
    s_open(w, "links", '[');
    size_t n = 0;
    for (size_t i = 0; i < e->cs->count; i++) {
        const pg_change *c = &e->cs->changes[i];
        if (c->type == PG_CHANGE_LINK && c->link->operation == OP(UPSERT) && c->link->from &&
            c->link->to && strcmp(c->link->from->id, eu->id) == 0 &&
            (rc = s_link(e, eu, c->link, n++)))
            return rc;
    }
    s_close(w, ']');
    s_close(w, '}');
    return 0;
}

/* Is there an entity change in cs whose id is from_id? */
static int s_has_entity(const pg_changeset *cs, const char *from_id)
{
    for (size_t i = 0; i < cs->count; i++)
        if (cs->changes[i].type == PG_CHANGE_ENTITY && cs->changes[i].entity->id &&
            strcmp(cs->changes[i].entity->id, from_id) == 0)
            return 1;
    return 0;
}

int pg_atx_encode(const pg_adapter_ctx *ctx, const pg_changeset *cs, pg_buf *out, char *errstr,
                  size_t errstr_size)
{
    static const pg_adapter_ctx none = {0};
    s_enc e = {.ctx = ctx ? ctx : &none, .cs = cs, .errstr = errstr, .errstr_size = errstr_size};
    for (size_t i = 0; i < cs->count; i++) {
        const pg_link_update *lu = cs->changes[i].link;
        if (cs->changes[i].type != PG_CHANGE_LINK)
            continue;
        if (!lu->to) /* else s_entity would leave it out without a word */
            return pg_errf(PG_EINVALID, errstr, errstr_size, "links: a link change has no target");
        if (!lu->from || !lu->from->id || !s_has_entity(cs, lu->from->id))
            return pg_errf(PG_EUNSUPPORTED, errstr, errstr_size,
                           "links: a link change from %s without its source record cannot be "
                           "expressed in ATX (a record carries all its links)",
                           lu->from && lu->from->native_id ? lu->from->native_id : "?");
    }
    size_t len0 = out->len;
    for (size_t i = 0; i < cs->count; i++) {
        if (cs->changes[i].type != PG_CHANGE_ENTITY)
            continue;
        e.w = (s_jw){.out = out, .first = {1}};
        int rc = s_entity(&e, cs->changes[i].entity);
        s_put(&e.w, "\n", 1);
        if (!rc && e.w.err == PG_EUNSUPPORTED)
            rc = s_bad(&e, "record", "a string is not valid UTF-8");
        else if (!rc && e.w.err)
            rc = pg_errf(e.w.err, errstr, errstr_size, "%s", pg_strerror(e.w.err));
        if (rc) {
            out->len = len0;
            if (out->data)
                out->data[len0] = 0;
            pg_arena_destroy(&e.scratch);
            return rc;
        }
    }
    pg_arena_destroy(&e.scratch);
    return 0;
}
