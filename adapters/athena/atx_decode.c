/* ATX/2 decoder: one JSON message -> validated, normalised canonical changes. */
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atx_dec.h"
#include "polegate/arena.h"
#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/timeutil.h"

/* Every failure names "<path>.<key>" (or just one of them) and the rule. */
__attribute__((format(printf, 4, 5))) int pg_atx__fail(pg_atx_dec *d, const char *path,
                                                       const char *key, const char *fmt, ...)
{
    char rule[PG_ERRSTR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    const char *dot = path && *path && key ? "." : "";
    return pg_errf(PG_EINVALID, d->errstr, d->errstr_size, "%s%s%s: %s", path ? path : "", dot,
                   key ? key : "", rule);
}

const char *pg_atx__type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number written with a decimal point or exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Member key of obj when it is of type `type`; NULL (and 0) when absent or null. */
int pg_atx__get(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, json_type type,
                int flags, json_t **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (flags & PG_ATX_REQUIRED)
            return pg_atx__fail(d, path, key, "is required");
        return 0;
    }
    int ok = json_typeof(v) == type || (type == JSON_REAL && json_is_integer(v));
    if (!ok) {
        static const char *const want[] = {[JSON_OBJECT] = "an object",
                                           [JSON_ARRAY] = "an array",
                                           [JSON_STRING] = "a string",
                                           [JSON_INTEGER] = "an integer",
                                           [JSON_REAL] = "a number"};
        return pg_atx__fail(d, path, key, "must be %s, not %s", want[type], pg_atx__type_name(v));
    }
    *out = v;
    return 0;
}

/* The string value v of member key (trimmed unless PG_ATX_NOTRIM), copied into the arena;
 * NULL when empty. min/max bound its length in Unicode characters (max 0: none). */
static int s_string_value(pg_atx_dec *d, const json_t *v, const char *path, const char *key,
                          int flags, size_t min, size_t max, char **out)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    *out = NULL;
    if (!(flags & PG_ATX_NOTRIM))
        s = pg_atx_trim(s, &len);
    if (len == 0) {
        if (flags & PG_ATX_REQUIRED)
            return pg_atx__fail(d, path, key, "is required");
        /* an exact member is a value, null or absent: "" is none of them (only a body
         * string's empty means absent) */
        if (flags & PG_ATX_NOTRIM)
            return pg_atx__fail(d, path, key, "must not be an empty string (null means none)");
        return 0;
    }
    size_t chars = pg_atx_utf8_chars(s, len);
    if (chars < min || (max && chars > max))
        return pg_atx__fail(d, path, key, "must be %zu-%zu characters, not %zu", min, max, chars);
    *out = pg_arena_strndup(d->arena, s, len);
    return *out ? 0 : PG_ATX_NOMEM(d);
}

/* A string member; NULL when absent, null or empty. */
int pg_atx__string(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                   size_t min, size_t max, char **out)
{
    json_t *v;
    int rc = pg_atx__get(d, obj, path, key, JSON_STRING, flags, &v);
    *out = NULL;
    if (rc || !v)
        return rc;
    return s_string_value(d, v, path, key, flags, min, max, out);
}

/* A code from table t: *out is its canonical value, or 0 when absent. */
int pg_atx__code(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                 const pg_atx_table *t, int *out)
{
    char *s;
    int rc = pg_atx__string(d, obj, path, key, flags, 0, 0, &s);
    *out = 0;
    if (rc || !s)
        return rc;
    int v = pg_atx_code_value(t, s);
    if (v < 0)
        return pg_atx__fail(d, path, key, "is not one of %s", t->list);
    *out = v;
    return 0;
}

/* An integer member in [min, max]; *present says whether it was given. */
int pg_atx__int(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                json_int_t min, json_int_t max, json_int_t *out, int *present)
{
    json_t *v;
    int rc = pg_atx__get(d, obj, path, key, JSON_INTEGER, flags, &v);
    *present = v != NULL;
    if (rc || !v)
        return rc;
    json_int_t n = json_integer_value(v);
    if (n < min || n > max) {
        if (max == LLONG_MAX)
            return pg_atx__fail(d, path, key, "must be %lld or more", (long long)min);
        return pg_atx__fail(d, path, key, "must be %lld-%lld", (long long)min, (long long)max);
    }
    *out = n;
    return 0;
}

/* "YYYY-MM-DD", or with PG_ATX_PARTIAL also "YYYY-MM" and "YYYY"; the date must exist.
 * Trimmed unless PG_ATX_NOTRIM (a body date is a body string). */
int pg_atx__date(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                 pg_date **out)
{
    char *s;
    int allow_partial = flags & PG_ATX_PARTIAL;
    int rc = pg_atx__string(d, obj, path, key, flags, 0, 0, &s);
    *out = NULL;
    if (rc || !s)
        return rc;
    size_t len = strlen(s);
    int parts[3] = {0, 0, 0}, ok = len == 4 || len == 7 || len == 10;
    for (size_t i = 0; ok && i < len; i++) {
        int sep = i == 4 || i == 7;
        ok = sep ? s[i] == '-' : s[i] >= '0' && s[i] <= '9';
        if (ok && !sep) {
            int *p = &parts[i < 4 ? 0 : i < 7 ? 1 : 2];
            *p = *p * 10 + (s[i] - '0');
        }
    }
    if (!ok || (!allow_partial && len != 10))
        return pg_atx__fail(d, path, key,
                            allow_partial ? "must be YYYY-MM-DD, YYYY-MM or YYYY"
                                          : "must be YYYY-MM-DD");
    if (!pg_date_valid(parts[0], parts[1] ? parts[1] : 1, parts[2] ? parts[2] : 1) ||
        (len >= 7 && parts[1] == 0) || (len == 10 && parts[2] == 0))
        return pg_atx__fail(d, path, key, "is not a calendar date");
    pg_date *dt = PG_PB_NEW(d->arena, pg_date, polegate__pole__v1__date);
    if (!dt)
        return PG_ATX_NOMEM(d);
    dt->year = parts[0];
    dt->month = parts[1];
    dt->day = parts[2];
    *out = dt;
    return 0;
}

static int s_date_cmp(const pg_date *a, const pg_date *b)
{
    long x = (long)a->year * 10000 + a->month * 100 + a->day;
    long y = (long)b->year * 10000 + b->month * 100 + b->day;
    return (x > y) - (x < y);
}

/* An RFC 3339 timestamp with offset; trimmed unless PG_ATX_NOTRIM (a body timestamp is a
 * body string). */
int pg_atx__time(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                 pg_timestamp **out)
{
    char *s;
    int rc = pg_atx__string(d, obj, path, key, flags, 0, 0, &s);
    *out = NULL;
    if (rc || !s)
        return rc;
    pg_instant t;
    char why[PG_ERRSTR_SIZE];
    if (pg_rfc3339_parse(s, &t, why, sizeof why))
        return pg_atx__fail(d, path, key, "%s", why);
    pg_timestamp *ts = PG_PB_NEW(d->arena, pg_timestamp, google__protobuf__timestamp);
    if (!ts)
        return PG_ATX_NOMEM(d);
    ts->seconds = t.seconds;
    ts->nanos = t.nanos;
    *out = ts;
    return 0;
}

/* Path of element i of array `key` under path: "record.body.aliases[2]". */
void pg_atx__elem_path(char *buf, size_t size, const char *path, const char *key, size_t i)
{
    snprintf(buf, size, "%s%s%s[%zu]", path, *path ? "." : "", key, i);
}

/* An array of trimmed strings, empty ones dropped; at most max (0: any); with a table t,
 * each one a code of t (a reason names the element's position as sent). */
int pg_atx__strings(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, size_t max,
                    const pg_atx_table *t, char ***out, size_t *n)
{
    json_t *arr;
    int rc = pg_atx__get(d, obj, path, key, JSON_ARRAY, PG_ATX_OPTIONAL, &arr);
    *out = NULL;
    *n = 0;
    if (rc || !arr || json_array_size(arr) == 0)
        return rc;
    char **v = pg_arena_alloc(d->arena, json_array_size(arr) * sizeof(char *));
    if (!v)
        return PG_ATX_NOMEM(d);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *e = json_array_get(arr, i);
        char p[128];
        pg_atx__elem_path(p, sizeof p, path, key, i);
        if (!json_is_string(e))
            return pg_atx__fail(d, p, NULL, "must be a string, not %s", pg_atx__type_name(e));
        if ((rc = s_string_value(d, e, p, NULL, PG_ATX_OPTIONAL, 0, 0, &v[*n])))
            return rc;
        if (v[*n] && t && pg_atx_code_value(t, v[*n]) < 0)
            return pg_atx__fail(d, p, NULL, "is not one of %s", t->list);
        if (v[*n])
            (*n)++;
    }
    if (max && *n > max)
        return pg_atx__fail(d, path, key, "at most %zu names, not %zu", max, *n);
    *out = v;
    return 0;
}

/* An array of objects: *arr and *n (0 when absent), *vec room for n pointers. */
int pg_atx__objects(pg_atx_dec *d, const json_t *obj, const char *path, const char *key,
                    json_t **arr, size_t *n, void *vec)
{
    int rc = pg_atx__get(d, obj, path, key, JSON_ARRAY, PG_ATX_OPTIONAL, arr);
    *n = *arr ? json_array_size(*arr) : 0;
    if (rc || *n == 0)
        return rc;
    for (size_t i = 0; i < *n; i++) {
        json_t *e = json_array_get(*arr, i);
        if (!json_is_object(e)) {
            char p[64];
            pg_atx__elem_path(p, sizeof p, path, key, i);
            return pg_atx__fail(d, p, NULL, "must be an object, not %s", pg_atx__type_name(e));
        }
    }
    void **v = pg_arena_alloc(d->arena, *n * sizeof(void *));
    if (!v)
        return PG_ATX_NOMEM(d);
    memcpy(vec, &v, sizeof v);
    return 0;
}

/* A code-rule normaliser of codes.h: postcode, VRM, telephone. */

/* A string member normalised by fn into an arena copy; NULL when absent. */
int pg_atx__normalised(pg_atx_dec *d, const json_t *obj, const char *path, const char *key,
                       pg_atx_norm_fn fn, char **out)
{
    char *s, norm[32], why[PG_ERRSTR_SIZE];
    int rc = pg_atx__string(d, obj, path, key, PG_ATX_OPTIONAL, 0, 0, &s);
    if (rc || !s)
        return rc;
    if (fn(s, norm, why, sizeof why))
        return pg_atx__fail(d, path, key, "%s", why);
    *out = pg_arena_strdup(d->arena, norm);
    return *out ? 0 : PG_ATX_NOMEM(d);
}

/* ------------------------------------------------------------------ envelope */

static int s_marking(pg_atx_dec *d, const json_t *rec, pg_marking **out)
{
    static const char *const M = "record.marking";
    json_t *m;
    int rc = pg_atx__get(d, rec, "record", "marking", JSON_OBJECT, PG_ATX_REQUIRED, &m);
    if (rc)
        return rc;
    pg_marking *mk = PG_PB_NEW(d->arena, pg_marking, polegate__pole__v1__marking);
    if (!mk)
        return PG_ATX_NOMEM(d);
    /* the marking is envelope, exact like record.type; only the caveat is free text */
    PG_ATX_CODE(m, M, "classification", PG_ATX_REQUIRED | PG_ATX_NOTRIM, pg_atx_classification,
                mk->classification);
    PG_ATX_CODE(m, M, "handling", PG_ATX_REQUIRED | PG_ATX_NOTRIM, pg_atx_handling, mk->handling);
    char *caveat;
    if ((rc = pg_atx__string(d, m, M, "caveat", PG_ATX_OPTIONAL, 0, 500, &caveat)))
        return rc;
    if (!caveat && mk->handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C)
        return pg_atx__fail(d, M, "caveat", "is required when handling is 'C'");
    PG_ATX_SET(mk->caveat, caveat);
    *out = mk;
    return 0;
}

static int s_retention(pg_atx_dec *d, const json_t *rec, int required, pg_retention **out)
{
    json_t *r;
    *out = NULL;
    int rc = pg_atx__get(d, rec, "record", "retention", JSON_OBJECT, required, &r);
    if (rc || !r)
        return rc;
    pg_retention *rt = PG_PB_NEW(d->arena, pg_retention, polegate__pole__v1__retention);
    if (!rt)
        return PG_ATX_NOMEM(d);
    json_int_t g;
    int present;
    if ((rc = pg_atx__int(d, r, "record.retention", "mopiGroup", PG_ATX_REQUIRED, 1, 4, &g,
                          &present)) ||
        (rc = pg_atx__date(d, r, "record.retention", "reviewDate", PG_ATX_NOTRIM | PG_ATX_REQUIRED,
                           &rt->review_date)))
        return rc;
    if (!rt->review_date)
        return pg_atx__fail(d, "record.retention", "reviewDate", "is required");
    /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): REQUIRED, so set or failed */
    rt->mopi_group = (int32_t)g;
    *out = rt;
    return 0;
}

/* What the header says, kept for the canonical origin. */
typedef struct s_header {
    char *message_id;
    char *org_unit;
    char *force;
} s_header;

static int s_header_of(pg_atx_dec *d, const pg_adapter_ctx *ctx, const json_t *root, s_header *h)
{
    static const char *const H = "header";
    json_t *hd;
    int rc = pg_atx__get(d, root, NULL, "header", JSON_OBJECT, PG_ATX_REQUIRED, &hd);
    if (rc)
        return rc;
    char *s;
    if ((rc = pg_atx__string(d, hd, H, "schema", PG_ATX_REQUIRED | PG_ATX_NOTRIM, 0, 0, &s)))
        return rc;
    /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): REQUIRED, so set or failed */
    if (strcmp(s, PG_ATX_SCHEMA) != 0)
        return pg_atx__fail(d, H, "schema", "must be '" PG_ATX_SCHEMA "'");
    if ((rc = pg_atx__string(d, hd, H, "messageId", PG_ATX_REQUIRED | PG_ATX_NOTRIM, 0, 0,
                             &h->message_id)))
        return rc;
    if (!pg_atx_uuid_valid(h->message_id))
        return pg_atx__fail(d, H, "messageId", "must be a lower-case RFC 4122 UUID");
    pg_timestamp *sent;
    if ((rc = pg_atx__time(d, hd, H, "sentAt", PG_ATX_REQUIRED | PG_ATX_NOTRIM, &sent)))
        return rc;
    if ((rc = pg_atx__string(d, hd, H, "system", PG_ATX_REQUIRED | PG_ATX_NOTRIM, 0, 0, &s)))
        return rc;
    /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): REQUIRED, so set or failed */
    if (strcmp(s, PG_ATX_SYSTEM) != 0)
        return pg_atx__fail(d, H, "system", "must be 'ATHENA'");
    if ((rc = pg_atx__string(d, hd, H, "orgUnit", PG_ATX_REQUIRED | PG_ATX_NOTRIM, 1, 64,
                             &h->org_unit)))
        return rc;
    const char *ou = h->org_unit;
    /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): REQUIRED, so set or failed */
    for (const char *p = ou; *p; p++) {
        if (*p == '/' && (p == ou || p[1] == '/' || p[1] == 0))
            return pg_atx__fail(d, H, "orgUnit", "has an empty segment");
        /* a unit's name may hold spaces ("ESX/CID/North Colchester"), but not at a
         * segment's ends (envelope members are exact, never trimmed) */
        if (*p == ' ' && (p == ou || p[-1] == '/' || p[1] == '/' || p[1] == 0))
            return pg_atx__fail(d, H, "orgUnit", "a segment starts or ends with a space");
        if (pg_atx_space(*p) && *p != ' ')
            return pg_atx__fail(d, H, "orgUnit", "holds a tab or line break");
    }
    h->force = pg_arena_strndup(d->arena, ou, strcspn(ou, "/"));
    if (!h->force)
        return PG_ATX_NOMEM(d);
    if (ctx && ctx->force && strcmp(ctx->force, h->force) != 0)
        return pg_atx__fail(d, H, "orgUnit", "names another force than this gateway's, %s",
                            ctx->force);
    return 0;
}

static pg_entity_ref *s_ref(pg_atx_dec *d, const char *force, int kind, const char *native_id)
{
    pg_entity_ref *r = PG_PB_NEW(d->arena, pg_entity_ref, polegate__pole__v1__entity_ref);
    char *id = pg_arena_alloc(d->arena, PG_UUID_STR_SIZE);
    if (!r || !id)
        return NULL;
    if (pg_identity_entity(force, PG_ATX_SYSTEM, pg_atx_code_name(&pg_atx_type, kind), native_id,
                           id) != 0)
        return NULL; /* every part was validated: cannot happen */
    r->id = id;
    r->kind = kind;
    r->native_id = (char *)native_id;
    return r;
}

static int s_merged_from(pg_atx_dec *d, const json_t *rec, pg_entity_update *eu, const char *force)
{
    json_t *arr;
    int rc = pg_atx__get(d, rec, "record", "mergedFrom", JSON_ARRAY, PG_ATX_OPTIONAL, &arr);
    size_t n = arr ? json_array_size(arr) : 0;
    if (rc || n == 0)
        return rc;
    if (eu->operation != OP(UPSERT))
        return pg_atx__fail(d, "record", "mergedFrom", "is allowed only with action UPSERT");
    eu->merged_from = pg_arena_alloc(d->arena, n * sizeof(*eu->merged_from));
    if (!eu->merged_from)
        return PG_ATX_NOMEM(d);
    for (size_t i = 0; i < n; i++) {
        char mp[48];
        pg_atx__elem_path(mp, sizeof mp, "record", "mergedFrom", i);
        json_t *e = json_array_get(arr, i);
        const char *id = json_string_value(e);
        if (!id)
            return pg_atx__fail(d, mp, NULL, "must be a string, not %s", pg_atx__type_name(e));
        if (!pg_atx_id_valid(id, eu->kind))
            return pg_atx__fail(d, mp, NULL, "must be '%c' followed by 10 digits for type %s",
                                pg_atx_type_letter(eu->kind), eu->origin->native_type);
        if (strcmp(id, eu->origin->native_id) == 0)
            return pg_atx__fail(d, mp, NULL, "is the record's own id");
        char *copy = pg_arena_strdup(d->arena, id);
        pg_entity_ref *r = copy ? s_ref(d, force, eu->kind, copy) : NULL;
        if (!r)
            return PG_ATX_NOMEM(d);
        eu->merged_from[eu->n_merged_from++] = r;
    }
    size_t twice; /* a set: named twice is refused, as NX5 refuses it */
    if (pg_refs_first_repeat(eu->merged_from, n, 0, d->arena, &twice))
        return PG_ATX_NOMEM(d);
    if (twice == SIZE_MAX)
        return 0;
    char mp[48];
    pg_atx__elem_path(mp, sizeof mp, "record", "mergedFrom", twice);
    return pg_atx__fail(d, mp, NULL, "%s is named twice", eu->merged_from[twice]->native_id);
}

static int s_links(pg_atx_dec *d, const json_t *root, pg_entity_update *eu, const char *force,
                   pg_changeset *cs)
{
    json_t *arr;
    int rc = pg_atx__get(d, root, NULL, "links", JSON_ARRAY, PG_ATX_OPTIONAL, &arr);
    size_t n = arr ? json_array_size(arr) : 0;
    if (rc || n == 0)
        return rc;
    pg_entity_ref *from = s_ref(d, force, eu->kind, eu->origin->native_id);
    if (!from)
        return PG_ATX_NOMEM(d);
    size_t first = cs->count;
    for (size_t i = 0; i < n; i++) {
        char lp[32], tp[48];
        pg_atx__elem_path(lp, sizeof lp, "", "links", i);
        snprintf(tp, sizeof tp, "%s.target", lp);
        json_t *e = json_array_get(arr, i), *tg;
        if (!json_is_object(e))
            return pg_atx__fail(d, lp, NULL, "must be an object, not %s", pg_atx__type_name(e));
        if ((rc = pg_atx__get(d, e, lp, "target", JSON_OBJECT, PG_ATX_REQUIRED, &tg)))
            return rc;
        int kind, role;
        char *tid;
        if ((rc = pg_atx__code(d, tg, tp, "type", PG_ATX_REQUIRED | PG_ATX_NOTRIM, &pg_atx_type,
                               &kind)) ||
            (rc = pg_atx__string(d, tg, tp, "id", PG_ATX_REQUIRED | PG_ATX_NOTRIM, 0, 0, &tid)))
            return rc;
        if (!pg_atx_id_valid(tid, kind))
            return pg_atx__fail(d, tp, "id", "must be '%c' followed by 10 digits for type %s",
                                pg_atx_type_letter(kind), pg_atx_code_name(&pg_atx_type, kind));
        if ((rc = pg_atx__code(d, e, lp, "role", PG_ATX_REQUIRED | PG_ATX_NOTRIM, &pg_atx_role,
                               &role)))
            return rc;
        if (!pg_role_allows(role, eu->kind, kind))
            return pg_atx__fail(d, lp, "role", "%s does not link %s to %s (ROLE table: %s)",
                                pg_atx_code_name(&pg_atx_role, role), eu->origin->native_type,
                                pg_atx_code_name(&pg_atx_type, kind), pg_role_shape(role));
        pg_link_update *lu = PG_PB_NEW(d->arena, pg_link_update, polegate__pole__v1__link_update);
        if (!lu)
            return PG_ATX_NOMEM(d);
        if ((rc = pg_atx__date(d, e, lp, "validFrom", PG_ATX_NOTRIM, &lu->valid_from)) ||
            (rc = pg_atx__date(d, e, lp, "validTo", PG_ATX_NOTRIM, &lu->valid_to)))
            return rc;
        if (lu->valid_from && lu->valid_to && s_date_cmp(lu->valid_to, lu->valid_from) < 0)
            return pg_atx__fail(d, lp, "validTo", "is before validFrom");
        lu->to = s_ref(d, force, kind, tid);
        lu->id = pg_arena_alloc(d->arena, PG_UUID_STR_SIZE);
        if (!lu->to || !lu->id)
            return PG_ATX_NOMEM(d);
        if (pg_identity_link(from->id, role, lu->to->id, lu->id) != 0)
            return pg_errf(PG_EINTERNAL, d->errstr, d->errstr_size, "%s: no link id", lp);
        for (size_t j = first; j < cs->count; j++)
            if (strcmp(cs->changes[j].link->id, lu->id) == 0)
                return pg_atx__fail(d, lp, NULL, "repeats links[%zu] (same role and target)",
                                    j - first);
        lu->operation = OP(UPSERT);
        lu->version = eu->version;
        lu->origin = eu->origin;
        lu->modified_at = eu->modified_at;
        lu->marking = eu->marking;
        lu->from = from;
        lu->role = role;
        if (pg_changeset_add_link(cs, lu))
            return PG_ATX_NOMEM(d);
    }
    return 0;
}

static int s_message(pg_atx_dec *d, const pg_adapter_ctx *ctx, const json_t *root, pg_changeset *cs)
{
    if (!json_is_object(root))
        return pg_atx__fail(d, "message", NULL, "must be a JSON object, not %s",
                            pg_atx__type_name(root));
    s_header h;
    int rc = s_header_of(d, ctx, root, &h);
    if (rc)
        return rc;

    static const char *const R = "record";
    json_t *rec;
    if ((rc = pg_atx__get(d, root, NULL, "record", JSON_OBJECT, PG_ATX_REQUIRED, &rec)))
        return rc;
    pg_entity_update *eu = PG_PB_NEW(d->arena, pg_entity_update, polegate__pole__v1__entity_update);
    pg_origin *o = PG_PB_NEW(d->arena, pg_origin, polegate__pole__v1__origin);
    if (!eu || !o)
        return PG_ATX_NOMEM(d);
    int kind, op;
    char *id;
    if ((rc = pg_atx__code(d, rec, R, "type", PG_ATX_REQUIRED | PG_ATX_NOTRIM, &pg_atx_type,
                           &kind)) ||
        (rc = pg_atx__string(d, rec, R, "id", PG_ATX_REQUIRED | PG_ATX_NOTRIM, 0, 0, &id)))
        return rc;
    const char *type = pg_atx_code_name(&pg_atx_type, kind);
    if (!pg_atx_id_valid(id, kind))
        return pg_atx__fail(d, R, "id", "must be '%c' followed by 10 digits for type %s",
                            pg_atx_type_letter(kind), type);
    json_int_t rev;
    int present;
    if ((rc = pg_atx__int(d, rec, R, "revision", PG_ATX_REQUIRED, 1, LLONG_MAX, &rev, &present)) ||
        (rc = pg_atx__code(d, rec, R, "action", PG_ATX_REQUIRED | PG_ATX_NOTRIM, &pg_atx_action,
                           &op)) ||
        (rc = pg_atx__time(d, rec, R, "modifiedAt", PG_ATX_REQUIRED | PG_ATX_NOTRIM,
                           &eu->modified_at)) ||
        (rc = s_marking(d, rec, &eu->marking)) ||
        (rc = s_retention(d, rec, op == OP(UPSERT), &eu->retention)))
        return rc;

    /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): s_header_of set it */
    o->force = h.force;
    o->system = (char *)PG_ATX_SYSTEM;
    o->native_type = (char *)type;
    o->native_id = id;
    o->message_id = h.message_id;
    o->org_unit = h.org_unit;
    eu->origin = o;
    eu->operation = op;
    eu->version = (uint64_t)rev;
    eu->kind = kind;
    eu->id = pg_arena_alloc(d->arena, PG_UUID_STR_SIZE);
    if (!eu->id)
        return PG_ATX_NOMEM(d);
    if (pg_identity_entity(h.force, PG_ATX_SYSTEM, type, id, eu->id) != 0)
        return pg_atx__fail(d, "header", "orgUnit", "its force cannot name records");

    if ((rc = s_merged_from(d, rec, eu, h.force)))
        return rc;
    if (op == OP(UPSERT)) {
        json_t *body;
        if ((rc = pg_atx__get(d, rec, R, "body", JSON_OBJECT, PG_ATX_REQUIRED, &body)) ||
            (rc = pg_atx__body(kind)(d, body, eu)))
            return rc;
    }
    if (pg_changeset_add_entity(cs, eu, op == OP(UPSERT)))
        return PG_ATX_NOMEM(d);
    if (op == OP(UPSERT) && (rc = s_links(d, root, eu, h.force, cs)))
        return rc;
    cs->message_id = h.message_id;
    cs->force = h.force;
    cs->system = PG_ATX_SYSTEM;
    return 0;
}

/* ------------------------------------------------------------------ jansson scratch */

/* jansson mallocs and frees every node of a tree; the tree of a message lives only
 * for its decode, so the parse allocates from a per-thread region instead (carved
 * once out of a pg_arena) and the free of such a block does nothing: the next decode
 * on the thread starts the region over. json_set_alloc_funcs is process-global, and
 * jansson is used elsewhere in the process (CLI tools, the audit and delivery code,
 * tests) whose callers free json_dumps() strings with plain free(): so outside a
 * parse the functions are exactly malloc and free, with no header, and a free tells
 * a region block from a malloc block by its address (the region is owned memory, so
 * malloc can never return an address inside it). A block of either kind is released
 * correctly in any state; blocks that jansson got before the functions were
 * installed are malloc blocks. What does not fit the region comes from malloc. The
 * region is only in use inside json_loadb: the tree is decref'd before the decode
 * returns and every string the changes keep is copied into cs->arena, so no region
 * block outlives its decode. */

#define S_SCRATCH_SIZE (256u * 1024u)

typedef struct s_scratch {
    pg_arena *arena; /* owns [lo, hi) */
    uintptr_t lo, hi;
    char *next; /* bump pointer while a parse runs */
    int active;
} s_scratch;

static _Thread_local s_scratch s_tls;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static pthread_key_t s_key; /* destroys a thread's arena when the thread exits */
static int s_key_ok;

static void *s_json_malloc(size_t size)
{
    s_scratch *sc = &s_tls;
    if (sc->active) {
        size_t need = (size + 15) & ~(size_t)15;
        if (need >= size && need <= sc->hi - (uintptr_t)sc->next) {
            void *p = sc->next;
            sc->next += need;
            return p;
        }
    }
    return malloc(size);
}

static void s_json_free(void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (a >= s_tls.lo && a < s_tls.hi)
        return; /* a region block: released by the next parse's restart */
    free(p);
}

static void s_thread_exit(void *arena)
{
    pg_arena *a = arena;
    s_tls.lo = s_tls.hi = 0; /* later frees on this thread are malloc blocks */
    s_tls.active = 0;
    pg_arena_destroy(&a);
}

static void s_install(void)
{
    s_key_ok = pthread_key_create(&s_key, s_thread_exit) == 0;
    json_set_alloc_funcs(s_json_malloc, s_json_free);
}

/* Installed before main when this file is linked, so before any thread can be inside
 * jansson; pg_atx_decode also goes through the once. */
__attribute__((constructor)) static void s_install_early(void)
{
    pthread_once(&s_once, s_install);
}

/* The thread's region, restarted, for one parse; NULL (jansson then uses malloc) when
 * it cannot be had. */
static s_scratch *s_scratch_begin(void)
{
    pthread_once(&s_once, s_install);
    s_scratch *sc = &s_tls;
    if (!sc->lo) {
        if (!s_key_ok)
            return NULL;
        pg_arena *a = pg_arena_new(S_SCRATCH_SIZE);
        char *r = a ? pg_arena_alloc(a, S_SCRATCH_SIZE) : NULL;
        if (!r || pthread_setspecific(s_key, a) != 0) {
            pg_arena_destroy(&a);
            return NULL;
        }
        sc->arena = a;
        sc->lo = (uintptr_t)r;
        sc->hi = sc->lo + S_SCRATCH_SIZE;
    }
    sc->next = (char *)sc->lo;
    sc->active = 1;
    return sc;
}

static void s_scratch_end(s_scratch *sc)
{
    if (sc)
        sc->active = 0;
}

int pg_atx_decode(const pg_adapter_ctx *ctx, const uint8_t *data, size_t size, pg_changeset *cs,
                  char *errstr, size_t errstr_size)
{
    if (size > PG_ATX_MAX_MESSAGE)
        return pg_errf(PG_ETOOBIG, errstr, errstr_size,
                       "message: %zu bytes, more than the %u allowed", size, PG_ATX_MAX_MESSAGE);
    if (size >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF)
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "message: must not start with a byte-order mark");
    json_error_t jerr;
    s_scratch *sc = s_scratch_begin();
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    s_scratch_end(sc);
    if (!root) {
        pg_errstr_unquote(jerr.text); /* jansson quotes the token it stopped at */
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "message: invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                       jerr.text);
    }
    pg_atx_dec d = {.arena = cs->arena, .errstr = errstr, .errstr_size = errstr_size};
    size_t count = cs->count;
    int rc = s_message(&d, ctx, root, cs);
    json_decref(root);
    if (rc)
        cs->count = count; /* all or nothing; the arena keeps the bytes until reset */
    return rc;
}
