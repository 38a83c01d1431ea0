/* Sharing policy: the `policy:` section of the configuration read into a pg_policy,
 * every problem reported with its file, line, column and path. */
#include <libfyaml.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgmap.h"
#include "polegate/error.h"
#include "policy_int.h"

/* ------------------------------------------------------------------ parsing */

typedef struct s_parser {
    pg_policy *policy;
    const char *file;
    char path[256];
    pg_policy_pos key_pos; /* the key whose value is being parsed: for empty collections */
    char *errstr;          /* the first problem */
    size_t errstr_size;
    pg_policy_report_fn report; /* every problem, when not NULL */
    void *report_ud;
    int nerrors;
} s_parser;

static pg_policy_pos s_node_pos(struct fy_node *node)
{
    pg_policy_pos pos = {0, 0};
    if (!node)
        return pos;
    void *iter = NULL;
    switch (fy_node_get_type(node)) {
    case FYNT_SCALAR: {
        const struct fy_mark *m = fy_token_start_mark(fy_node_get_scalar_token(node));
        if (m) {
            pos.line = m->line + 1;
            pos.col = m->column + 1;
        }
        return pos;
    }
    case FYNT_MAPPING: {
        struct fy_node_pair *pair = fy_node_mapping_iterate(node, &iter);
        return pair ? s_node_pos(fy_node_pair_key(pair)) : pos;
    }
    case FYNT_SEQUENCE:
        return s_node_pos(fy_node_sequence_iterate(node, &iter));
    }
    return pos;
}

static int s_fail_at(s_parser *ps, pg_policy_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail_at(s_parser *ps, pg_policy_pos pos, const char *fmt, ...)
{
    char msg[PG_ERRSTR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *file = ps->file ? ps->file : "<policy>";
    char full[PG_ERRSTR_SIZE + 512];
    if (pos.line > 0)
        snprintf(full, sizeof full, "%s:%d:%d: %s: %s", file, pos.line, pos.col, ps->path, msg);
    else
        snprintf(full, sizeof full, "%s: %s: %s", file, ps->path, msg);
    if (!ps->nerrors++)
        pg_errf(PG_ECONFIG, ps->errstr, ps->errstr_size, "%s", full);
    if (ps->report)
        ps->report(ps->report_ud, full);
    return PG_ECONFIG;
}

/* Keep the first error of a run of checks that go on after a failure (so that every
 * problem is reported); out of memory stops everything. */
static int s_first(int *first, int rc)
{
    if (rc && !*first)
        *first = rc;
    return rc == PG_ENOMEM;
}

#define s_fail(ps, node, ...)                                                                      \
    s_fail_at((ps), s_node_pos(node).line ? s_node_pos(node) : (ps)->key_pos, __VA_ARGS__)

/* Extend the path by fmt; returns the old length to restore with s_path_pop. */
static size_t s_path_push(s_parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t s_path_push(s_parser *ps, const char *fmt, ...)
{
    size_t len = strlen(ps->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->path + len, sizeof ps->path - len, fmt, ap);
    va_end(ap);
    return len;
}

static void s_path_pop(s_parser *ps, size_t len)
{
    ps->path[len] = '\0';
}

static int s_is_null(struct fy_node *node)
{
    if (!node)
        return 1;
    if (fy_node_get_type(node) != FYNT_SCALAR || fy_node_get_style(node) != FYNS_PLAIN)
        return 0;
    const char *s = fy_node_get_scalar0(node);
    return !s || !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* A non-empty scalar, copied into the policy. */
static int s_scalar(s_parser *ps, struct fy_node *node, const char **out)
{
    if (s_is_null(node))
        return s_fail(ps, node, "a value is required");
    if (fy_node_get_type(node) != FYNT_SCALAR)
        return s_fail(ps, node, "expected a single value, not a %s",
                      fy_node_get_type(node) == FYNT_MAPPING ? "mapping" : "list");
    size_t len = 0;
    const char *s = fy_node_get_scalar(node, &len);
    if (!s || !len || memchr(s, '\0', len))
        return s_fail(ps, node, "a value is required");
    *out = pg_arena_strndup(ps->policy->arena, s, len);
    return *out ? 0 : pg_errf(PG_ENOMEM, ps->errstr, ps->errstr_size, "out of memory");
}

/* Names used in headers, audit events and topic names: letters, digits, '.', '_', '-'. */
static int s_token(s_parser *ps, struct fy_node *node, const char **out, size_t max,
                   const char *what)
{
    int rc = s_scalar(ps, node, out);
    if (rc)
        return rc;
    size_t len = strlen(*out);
    if (len > max)
        return s_fail(ps, node, "%s '%s' is longer than %zu characters", what, *out, max);
    for (const char *c = *out; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return s_fail(ps, node, "%s '%s' may hold only letters, digits, '.', '_' and '-'", what,
                          *out);
    return 0;
}

static int s_is_force_code(const char *s)
{
    size_t len = strlen(s);
    int ok = len >= 2 && len <= 4;
    for (const char *c = s; ok && *c; c++)
        ok = *c >= 'A' && *c <= 'Z';
    return ok;
}

static int s_force_code(s_parser *ps, struct fy_node *node, const char **out)
{
    int rc = s_scalar(ps, node, out);
    if (rc)
        return rc;
    return s_is_force_code(*out)
               ? 0
               : s_fail(ps, node, "force code '%s' must be 2-4 upper-case letters (e.g. ESX)",
                        *out);
}

static int s_sequence(s_parser *ps, struct fy_node *node, const char *what)
{
    if (!node || fy_node_get_type(node) != FYNT_SEQUENCE)
        return s_fail(ps, node, "expected a list of %s", what);
    return 0;
}

/* ---- config map: a table per section parses and documents its keys and rejects the
 * ones it does not know. */

typedef int (*s_parse_fn)(s_parser *ps, struct fy_node *value, void *obj);

typedef enum s_type {
    S_TEXT,   /* any non-empty string */
    S_TOKEN,  /* a name: letters, digits, . _ - ; at most max characters */
    S_FORCE,  /* a force code */
    S_BOOL,   /* true / false, into an int */
    S_CUSTOM, /* parse() reads the value into the section's object */
} s_type;

typedef struct s_key {
    const char *key;
    s_type type;
    size_t offset; /* of the member in the section's object (not S_CUSTOM) */
    int required;
    size_t max;       /* S_TOKEN */
    const char *what; /* S_TOKEN: what the value is, for messages */
    s_parse_fn parse; /* S_CUSTOM */
} s_key;

static int s_bool(s_parser *ps, struct fy_node *v, int *out);

static int s_value(s_parser *ps, const s_key *k, struct fy_node *v, void *obj)
{
    void *member = (char *)obj + k->offset;
    switch (k->type) {
    case S_TEXT:
        return s_scalar(ps, v, member);
    case S_TOKEN:
        return s_token(ps, v, member, k->max, k->what);
    case S_FORCE:
        return s_force_code(ps, v, member);
    case S_BOOL:
        return s_bool(ps, v, member);
    case S_CUSTOM:
        break;
    }
    return k->parse(ps, v, obj);
}

/* One mapping being walked (pg_cfgmap callbacks). */
typedef struct s_walk_ctx {
    s_parser *ps;
    const s_key *table;
    const pg_cfgmap *map;
    struct fy_node *node;
    void *obj;
    pg_policy_pos *key_pos;
} s_walk_ctx;

static int s_walk_value(void *ud, size_t i, struct fy_node *key, struct fy_node *value)
{
    s_walk_ctx *w = ud;
    s_parser *ps = w->ps;
    size_t saved = s_path_push(ps, ".%s", w->table[i].key);
    pg_policy_pos saved_pos = ps->key_pos;
    ps->key_pos = s_node_pos(key);
    if (w->key_pos) {
        pg_policy_pos vpos = s_node_pos(value);
        w->key_pos[i] = vpos.line ? vpos : ps->key_pos;
    }
    int rc = s_value(ps, &w->table[i], value, w->obj);
    ps->key_pos = saved_pos;
    s_path_pop(ps, saved);
    return rc;
}

static int s_walk_unknown(void *ud, const char *name, struct fy_node *key, struct fy_node *value)
{
    (void)value;
    s_walk_ctx *w = ud;
    if (!name)
        return s_fail(w->ps, key, "keys must be plain names");
    char known[256];
    pg_cfgmap_known(w->map, known, sizeof known);
    return s_fail(w->ps, key, "unknown key '%s' (known keys: %s)", name, known);
}

static int s_walk_absent(void *ud, size_t i)
{
    s_walk_ctx *w = ud;
    if (!w->table[i].required)
        return 0;
    return s_fail(w->ps, w->node, "missing required key '%s'", w->table[i].key);
}

/* Apply table to the mapping node for obj (the one config-map walker, cfgmap.h).
 * key_pos (may be NULL) gets the position of each value given; seen gets a bit per key
 * given. */
static int s_walk(s_parser *ps, struct fy_node *node, const s_key *table, size_t n, void *obj,
                  pg_policy_pos *key_pos, unsigned *seen)
{
    *seen = 0;
    if (!node || fy_node_get_type(node) != FYNT_MAPPING)
        return s_fail(ps, node, "expected a mapping of keys to values");
    s_walk_ctx w = {.ps = ps, .table = table, .node = node, .obj = obj, .key_pos = key_pos};
    pg_cfgmap map = {.table = table,
                     .stride = sizeof *table,
                     .key_offset = offsetof(s_key, key),
                     .n = n,
                     .ud = &w,
                     .value = s_walk_value,
                     .unknown = s_walk_unknown,
                     .absent = s_walk_absent};
    w.map = &map;
    uint64_t given = 0;
    int rc = pg_cfgmap_walk(&map, node, &given);
    *seen = (unsigned)given;
    return rc;
}

/* ---- agreements */

#define S_NAME_MAX 64
#define S_TOPIC_MAX 249 /* Kafka's own limit, of the same alphabet */

static const s_key s_agreement_keys[] = {
    {"name", S_TOKEN, offsetof(pg_policy_agreement_def, name), 1, S_NAME_MAX, "agreement name",
     NULL},
    {"description", S_TEXT, offsetof(pg_policy_agreement_def, description), 1, 0, NULL, NULL},
};

/* ---- destinations */

static const char *const s_kind_names[] = {
    NULL,     "person",    "location",   "vehicle", "item",
    "weapon", "telephone", "occurrence", "custody", "intelligence",
};

static int s_d_kind(s_parser *ps, struct fy_node *v, void *obj)
{
    const char *s;
    int rc = s_scalar(ps, v, &s);
    if (rc)
        return rc;
    if (!strcmp(s, "national"))
        ((pg_policy_dest_def *)obj)->pub.kind = PG_POLICY_DEST_NATIONAL;
    else if (!strcmp(s, "force"))
        ((pg_policy_dest_def *)obj)->pub.kind = PG_POLICY_DEST_FORCE;
    else
        return s_fail(ps, v, "unknown destination kind '%s' (national or force)", s);
    return 0;
}

/* OFFICIAL or OFFICIAL-SENSITIVE into *out; anything higher is never exchanged. */
static int s_classification(s_parser *ps, struct fy_node *v, int *out)
{
    const char *s;
    int rc = s_scalar(ps, v, &s);
    if (rc)
        return rc;
    /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): s_scalar set s or failed */
    if (!strcmp(s, "OFFICIAL"))
        *out = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL;
    else if (!strcmp(s, "OFFICIAL-SENSITIVE"))
        *out = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL_SENSITIVE;
    else if (!strcmp(s, "SECRET") || !strcmp(s, "TOP-SECRET") || !strcmp(s, "TOP SECRET") ||
             !strcmp(s, "TOP_SECRET"))
        return s_fail(ps, v,
                      "%s is never shared by this gateway: the highest is OFFICIAL-SENSITIVE", s);
    else
        return s_fail(ps, v, "unknown classification '%s' (OFFICIAL or OFFICIAL-SENSITIVE)", s);
    return 0;
}

static int s_d_max_classification(s_parser *ps, struct fy_node *v, void *obj)
{
    int c = 0;
    int rc = s_classification(ps, v, &c);
    if (!rc)
        ((pg_policy_dest_def *)obj)->pub.max_classification = c;
    return rc;
}

static int s_bool(s_parser *ps, struct fy_node *v, int *out)
{
    const char *s;
    int rc = s_scalar(ps, v, &s);
    if (rc)
        return rc;
    if (fy_node_get_style(v) == FYNS_PLAIN && !strcmp(s, "true"))
        *out = 1;
    else if (fy_node_get_style(v) == FYNS_PLAIN && !strcmp(s, "false"))
        *out = 0;
    else
        return s_fail(ps, v, "expected true or false, not '%s'", s);
    return 0;
}

/* Walk a list of scalars, giving each to item(); rejects repeated entries. */
static int s_each_scalar(s_parser *ps, struct fy_node *v, const char *what,
                         int (*item)(s_parser *ps, struct fy_node *n, const char *s, void *obj),
                         void *obj)
{
    int rc = s_sequence(ps, v, what);
    if (rc)
        return rc;
    void *iter = NULL;
    struct fy_node *n;
    for (int i = 0; (n = fy_node_sequence_iterate(v, &iter)); i++) {
        size_t saved = s_path_push(ps, "[%d]", i);
        const char *s = NULL;
        rc = s_scalar(ps, n, &s);
        void *jter = NULL;
        struct fy_node *m;
        while (!rc && (m = fy_node_sequence_iterate(v, &jter)) != n)
            /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): s_scalar set s or failed */
            if (fy_node_get_type(m) == FYNT_SCALAR && !strcmp(fy_node_get_scalar0(m), s))
                rc = s_fail(ps, n, "'%s' is listed twice", s);
        if (!rc)
            rc = item(ps, n, s, obj);
        s_path_pop(ps, saved);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_kind_item(s_parser *ps, struct fy_node *n, const char *s, void *obj)
{
    for (int k = 1; k <= PG_POLICY_KIND_MAX; k++)
        if (!strcmp(s, s_kind_names[k])) {
            ((pg_policy_dest_def *)obj)->pub.kinds |= 1u << k;
            return 0;
        }
    return s_fail(ps, n,
                  "unknown kind '%s' (person, location, vehicle, item, weapon, telephone, "
                  "occurrence, custody, intelligence, or `all` instead of a list)",
                  s);
}

/* `all` instead of a list. */
static int s_is_all(struct fy_node *v)
{
    return v && fy_node_get_type(v) == FYNT_SCALAR && !s_is_null(v) &&
           !strcmp(fy_node_get_scalar0(v), "all");
}

static int s_d_kinds(s_parser *ps, struct fy_node *v, void *obj)
{
    pg_policy_dest_def *d = obj;
    if (s_is_all(v)) {
        d->pub.kinds = PG_POLICY_ALL_KINDS;
        return 0;
    }
    int rc = s_each_scalar(ps, v, "kinds (or `all`)", s_kind_item, obj);
    if (!rc && !d->pub.kinds)
        rc = s_fail(ps, v, "receives no kind at all: list at least one, or remove the destination");
    return rc;
}

static int s_redact_item(s_parser *ps, struct fy_node *n, const char *s, void *obj)
{
    for (int f = 0; f < PG_POLICY_FIELD_COUNT; f++)
        if (!strcmp(s, pg_policy_field_name((pg_policy_field)f))) {
            ((pg_policy_dest_def *)obj)->pub.redact |= 1u << f;
            return 0;
        }
    return s_fail(ps, n,
                  "unknown field '%s' (docs/policy.md lists the fields that can be redacted)", s);
}

static int s_d_redact(s_parser *ps, struct fy_node *v, void *obj)
{
    return s_each_scalar(ps, v, "fields", s_redact_item, obj);
}

static int s_mopi_item(s_parser *ps, struct fy_node *n, const char *s, void *obj)
{
    pg_policy_dest_def *d = obj;
    if (!strcmp(s, "ungrouped"))
        d->pub.mopi_groups |= 1u;
    else if (s[0] >= '1' && s[0] <= '4' && !s[1])
        d->pub.mopi_groups |= 1u << (s[0] - '0');
    else
        return s_fail(ps, n, "unknown MoPI group '%s' (1, 2, 3, 4 or ungrouped)", s);
    return 0;
}

static int s_d_mopi_groups(s_parser *ps, struct fy_node *v, void *obj)
{
    pg_policy_dest_def *d = obj;
    if (s_is_all(v)) {
        d->pub.mopi_groups = PG_POLICY_ALL_MOPI;
        return 0;
    }
    d->pub.mopi_groups = 0;
    int rc = s_each_scalar(ps, v, "MoPI groups (or `all`)", s_mopi_item, obj);
    if (!rc && !(d->pub.mopi_groups & 0x1eu))
        rc = s_fail(ps, v, "receives no MoPI group at all: list at least one of 1-4");
    return rc;
}

/* In the order of S_DK_*. */
#define S_D(member) offsetof(pg_policy_dest_def, pub.member)
static const s_key s_dest_keys[] = {
    {"name", S_TOKEN, S_D(name), 1, S_NAME_MAX, "destination name", NULL},
    {"kind", S_CUSTOM, 0, 1, 0, NULL, s_d_kind},
    {"force", S_FORCE, S_D(force), 0, 0, NULL, NULL},
    {"topic", S_TOKEN, S_D(topic), 1, S_TOPIC_MAX, "topic", NULL},
    {"agreement", S_TOKEN, S_D(agreement), 1, S_NAME_MAX, "agreement name", NULL},
    {"max_classification", S_CUSTOM, 0, 1, 0, NULL, s_d_max_classification},
    {"allow_handling_c", S_BOOL, S_D(allow_handling_c), 0, 0, NULL, NULL},
    {"handling_c_agreement", S_TOKEN, S_D(handling_c_agreement), 0, S_NAME_MAX, "agreement name",
     NULL},
    {"kinds", S_CUSTOM, 0, 1, 0, NULL, s_d_kinds},
    {"redact", S_CUSTOM, 0, 0, 0, NULL, s_d_redact},
    {"mopi_groups", S_CUSTOM, 0, 0, 0, NULL, s_d_mopi_groups},
};

/* ---- partners */

static int s_speaks_item(s_parser *ps, struct fy_node *n, const char *s, void *obj)
{
    (void)s;
    pg_policy_partner *p = &((pg_policy_partner_def *)obj)->pub;
    return s_force_code(ps, n, &p->speaks_for[p->n_speaks_for++]);
}

static int s_p_speaks_for(s_parser *ps, struct fy_node *v, void *obj)
{
    pg_policy_partner *p = &((pg_policy_partner_def *)obj)->pub;
    int rc = s_sequence(ps, v, "force codes");
    if (rc)
        return rc;
    int n = fy_node_sequence_item_count(v);
    if (n <= 0)
        return s_fail(ps, v, "speaks for no force: list at least the partner itself");
    p->speaks_for = pg_arena_alloc(ps->policy->arena, (size_t)n * sizeof *p->speaks_for);
    if (!p->speaks_for)
        return pg_errf(PG_ENOMEM, ps->errstr, ps->errstr_size, "out of memory");
    p->n_speaks_for = 0;
    return s_each_scalar(ps, v, "force codes", s_speaks_item, obj);
}

static int s_p_max_classification(s_parser *ps, struct fy_node *v, void *obj)
{
    return s_classification(ps, v, &((pg_policy_partner_def *)obj)->pub.max_classification);
}

#define S_P(member) offsetof(pg_policy_partner_def, pub.member)
static const s_key s_partner_keys[] = {
    {"force", S_FORCE, S_P(force), 1, 0, NULL, NULL},
    {"topic", S_TOKEN, S_P(topic), 1, S_TOPIC_MAX, "topic", NULL},
    {"agreement", S_TOKEN, S_P(agreement), 1, S_NAME_MAX, "agreement name", NULL},
    {"speaks_for", S_CUSTOM, 0, 0, 0, NULL, s_p_speaks_for},
    {"max_classification", S_CUSTOM, 0, 0, 0, NULL, s_p_max_classification},
};

/* ---- the section */

/* Parse each mapping of a list into an array of elem_size objects. */
static int s_list(s_parser *ps, struct fy_node *v, const char *what, size_t elem_size, void **items,
                  size_t *count, int (*one)(s_parser *ps, struct fy_node *n, void *item))
{
    if (s_is_null(v)) {
        *count = 0;
        return 0;
    }
    int rc = s_sequence(ps, v, what);
    if (rc)
        return rc;
    int n = fy_node_sequence_item_count(v);
    *items = pg_arena_alloc(ps->policy->arena, (size_t)(n > 0 ? n : 1) * elem_size);
    if (!*items)
        return pg_errf(PG_ENOMEM, ps->errstr, ps->errstr_size, "out of memory");
    void *iter = NULL;
    struct fy_node *item;
    int first = 0;
    for (*count = 0; (item = fy_node_sequence_iterate(v, &iter)); (*count)++) {
        size_t saved = s_path_push(ps, "[%zu]", *count);
        rc = one(ps, item, (char *)*items + *count * elem_size);
        s_path_pop(ps, saved);
        if (s_first(&first, rc))
            return rc;
    }
    return first;
}

static int s_one_agreement(s_parser *ps, struct fy_node *n, void *item)
{
    unsigned seen;
    pg_policy_agreement_def *a = item;
    a->pos = s_node_pos(n);
    return s_walk(ps, n, s_agreement_keys, sizeof s_agreement_keys / sizeof s_agreement_keys[0], a,
                  NULL, &seen);
}

static int s_one_dest(s_parser *ps, struct fy_node *n, void *item)
{
    unsigned seen;
    pg_policy_dest_def *d = item;
    d->pos = s_node_pos(n);
    d->pub.mopi_groups = PG_POLICY_ALL_MOPI;
    return s_walk(ps, n, s_dest_keys, PG_POLICY_DK_COUNT, d, d->key_pos, &seen);
}

static int s_one_partner(s_parser *ps, struct fy_node *n, void *item)
{
    unsigned seen;
    pg_policy_partner_def *p = item;
    p->pos = s_node_pos(n);
    p->pub.max_classification =
        POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL_SENSITIVE;
    int rc = s_walk(ps, n, s_partner_keys, PG_POLICY_PK_COUNT, p, p->key_pos, &seen);
    if (!rc && !(seen & (1u << PG_POLICY_PK_SPEAKS_FOR))) {
        /* A partner speaks for itself only unless the config says otherwise. */
        p->pub.speaks_for = pg_arena_alloc(ps->policy->arena, sizeof *p->pub.speaks_for);
        if (!p->pub.speaks_for)
            return pg_errf(PG_ENOMEM, ps->errstr, ps->errstr_size, "out of memory");
        p->pub.speaks_for[0] = p->pub.force;
        p->pub.n_speaks_for = 1;
    }
    return rc;
}

static int s_t_version(s_parser *ps, struct fy_node *v, void *obj)
{
    (void)obj;
    int rc = s_scalar(ps, v, &ps->policy->version);
    if (rc)
        return rc;
    for (const char *c = ps->policy->version; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            return s_fail(ps, v, "the version goes into a header: printable ASCII only");
    if (strlen(ps->policy->version) > 64)
        return s_fail(ps, v, "the version is longer than 64 characters");
    return 0;
}

static int s_t_agreements(s_parser *ps, struct fy_node *v, void *obj)
{
    (void)obj;
    return s_list(ps, v, "agreements", sizeof(pg_policy_agreement_def),
                  (void **)&ps->policy->agreements, &ps->policy->n_agreements, s_one_agreement);
}

static int s_t_destinations(s_parser *ps, struct fy_node *v, void *obj)
{
    (void)obj;
    return s_list(ps, v, "destinations", sizeof(pg_policy_dest_def), (void **)&ps->policy->dests,
                  &ps->policy->n_dests, s_one_dest);
}

static int s_t_partners(s_parser *ps, struct fy_node *v, void *obj)
{
    (void)obj;
    return s_list(ps, v, "partners", sizeof(pg_policy_partner_def), (void **)&ps->policy->partners,
                  &ps->policy->n_partners, s_one_partner);
}

static const s_key s_policy_keys[] = {
    {"version", S_CUSTOM, 0, 1, 0, NULL, s_t_version},
    {"agreements", S_CUSTOM, 0, 0, 0, NULL, s_t_agreements},
    {"destinations", S_CUSTOM, 0, 0, 0, NULL, s_t_destinations},
    {"partners", S_CUSTOM, 0, 0, 0, NULL, s_t_partners},
};

/* ---- what no single key can say */

static const pg_policy_agreement_def *s_agreement_find(const pg_policy *self, const char *name)
{
    for (size_t i = 0; i < self->n_agreements; i++)
        if (!strcmp(self->agreements[i].name, name))
            return &self->agreements[i];
    return NULL;
}

static int s_check_agreement(s_parser *ps, pg_policy_pos pos, const char *name)
{
    if (s_agreement_find(ps->policy, name))
        return 0;
    return s_fail_at(ps, pos, "agreement '%s' is not declared in policy.agreements", name);
}

/* The rules of one destination against the whole policy; the first broken one. */
static int s_dest_rules(s_parser *ps, const pg_policy_dest_def *d, size_t index)
{
    const pg_policy *policy = ps->policy;
    const pg_policy_destination *p = &d->pub;
    const pg_policy_pos *kp = d->key_pos;
    if (p->kind == PG_POLICY_DEST_FORCE && !p->force)
        return s_fail_at(ps, d->pos, "a destination of kind force needs `force`: its force code");
    if (p->kind == PG_POLICY_DEST_NATIONAL && p->force)
        return s_fail_at(ps, kp[PG_POLICY_DK_FORCE], "a national destination has no `force`");
    if (p->force && !strcmp(p->force, policy->force))
        return s_fail_at(ps, kp[PG_POLICY_DK_FORCE], "force %s is this gateway's own force",
                         p->force);
    int rc = s_check_agreement(ps, kp[PG_POLICY_DK_AGREEMENT], p->agreement);
    if (rc)
        return rc;
    if (p->allow_handling_c && !p->handling_c_agreement)
        return s_fail_at(ps, kp[PG_POLICY_DK_ALLOW_HANDLING_C],
                         "handling C records may go only under a named agreement: set "
                         "`handling_c_agreement`");
    if (!p->allow_handling_c && p->handling_c_agreement)
        return s_fail_at(ps, kp[PG_POLICY_DK_HANDLING_C_AGREEMENT],
                         "`handling_c_agreement` is set but `allow_handling_c` is not true");
    if (p->handling_c_agreement &&
        (rc =
             s_check_agreement(ps, kp[PG_POLICY_DK_HANDLING_C_AGREEMENT], p->handling_c_agreement)))
        return rc;
    for (size_t i = 0; i < index; i++) {
        const pg_policy_dest_def *o = &policy->dests[i];
        if (!strcmp(o->pub.name, p->name))
            return s_fail_at(ps, kp[PG_POLICY_DK_NAME], "name '%s' is also destinations[%zu]'s",
                             p->name, i);
        if (!strcmp(o->pub.topic, p->topic))
            return s_fail_at(ps, kp[PG_POLICY_DK_TOPIC], "topic '%s' is also destination %s's",
                             p->topic, o->pub.name);
    }
    for (size_t i = 0; i < policy->n_partners; i++)
        if (!strcmp(policy->partners[i].pub.topic, p->topic))
            return s_fail_at(ps, kp[PG_POLICY_DK_TOPIC],
                             "topic '%s' is partner %s's inbound topic: the gateway would read "
                             "back what it publishes",
                             p->topic, policy->partners[i].pub.force);
    for (int f = 0; f < PG_POLICY_FIELD_COUNT; f++) {
        int kind = pg_policy__field_kind((pg_policy_field)f);
        if ((p->redact & (1u << f)) && kind && !(p->kinds & (1u << kind)))
            return s_fail_at(ps, kp[PG_POLICY_DK_REDACT],
                             "redacts %s but does not receive %s records: remove one or the "
                             "other",
                             pg_policy_field_name((pg_policy_field)f), s_kind_names[kind]);
    }
    return 0;
}

static int s_check_dest(s_parser *ps, const pg_policy_dest_def *d, size_t index)
{
    size_t saved = s_path_push(ps, ".destinations[%zu] (%s)", index, d->pub.name);
    int rc = s_dest_rules(ps, d, index);
    s_path_pop(ps, saved);
    return rc;
}

static int s_check_partner(s_parser *ps, pg_policy_partner_def *pt, size_t index)
{
    pg_policy *policy = ps->policy;
    const pg_policy_partner *p = &pt->pub;
    size_t saved = s_path_push(ps, ".partners[%zu] (%s)", index, p->force);
    int rc = 0;
    if (!strcmp(p->force, policy->force))
        rc = s_fail_at(ps, pt->key_pos[PG_POLICY_PK_FORCE], "force %s is this gateway's own force",
                       p->force);
    else
        rc = s_check_agreement(ps, pt->key_pos[PG_POLICY_PK_AGREEMENT], p->agreement);
    for (size_t i = 0; !rc && i < p->n_speaks_for; i++)
        if (!strcmp(p->speaks_for[i], policy->force))
            rc = s_fail_at(ps, pt->key_pos[PG_POLICY_PK_SPEAKS_FOR],
                           "a partner may never speak for this gateway's own force %s",
                           policy->force);
    for (size_t i = 0; !rc && i < index; i++)
        if (!strcmp(policy->partners[i].pub.topic, p->topic))
            rc = s_fail_at(ps, pt->key_pos[PG_POLICY_PK_TOPIC], "topic '%s' is also partner %s's",
                           p->topic, policy->partners[i].pub.force);
    s_path_pop(ps, saved);
    return rc;
}

/* The redaction mask and header text of each kind, computed once so deciding never
 * formats anything. */
static int s_derive(pg_policy *self, pg_policy_dest_def *d)
{
    for (int slot = 1; slot < PG_POLICY_SLOTS; slot++) {
        uint32_t mask = 0;
        char text[1024] = "";
        for (int f = 0; f < PG_POLICY_FIELD_COUNT; f++) {
            int kind = pg_policy__field_kind((pg_policy_field)f);
            if (!(d->pub.redact & (1u << f)) || (kind && kind != slot))
                continue;
            mask |= 1u << f;
            snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s", *text ? "," : "",
                     pg_policy_field_name((pg_policy_field)f));
        }
        d->slot_redact[slot] = mask;
        d->slot_text[slot] = pg_arena_strdup(self->arena, mask ? text : "none");
        if (!d->slot_text[slot])
            return PG_ENOMEM;
    }
    return 0;
}

/* The digest of releases before 2026-12-07: the section as one line of flow YAML, which
 * keeps each scalar's quoting. Kept so that a signature they stored still matches. */
static int s_digest_v1(struct fy_node *section, char out[65])
{
    char *text = fy_emit_node_to_string(section, FYECF_MODE_FLOW_ONELINE | FYECF_WIDTH_INF);
    if (!text)
        return PG_ENOMEM;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
    free(text);
    sodium_bin2hex(out, 65, h, sizeof h);
    return 0;
}

/* One node of the section into the hash, as the parser reads it: structure, keys in
 * their written order, each scalar's text with its length; a scalar's quoting only
 * where the parser reads it (plain null and booleans: s_is_null, s_bool). */
static void s_digest_node(crypto_hash_sha256_state *h, struct fy_node *n)
{
    if (!n) {
        crypto_hash_sha256_update(h, (const unsigned char *)"~", 1);
        return;
    }
    char tag[32];
    switch (fy_node_get_type(n)) {
    case FYNT_SCALAR: {
        size_t len = 0;
        const char *s = fy_node_get_scalar(n, &len);
        s = s ? s : "";
        int plain = fy_node_get_style(n) == FYNS_PLAIN;
        int word =
            plain &&
            (!len || !strcmp(fy_node_get_scalar0(n), "~") ||
             !strcmp(fy_node_get_scalar0(n), "null") || !strcmp(fy_node_get_scalar0(n), "Null") ||
             !strcmp(fy_node_get_scalar0(n), "NULL") || !strcmp(fy_node_get_scalar0(n), "true") ||
             !strcmp(fy_node_get_scalar0(n), "false"));
        snprintf(tag, sizeof tag, "%c%zu:", fy_node_is_alias(n) ? 'a' : word ? 'k' : 's', len);
        crypto_hash_sha256_update(h, (const unsigned char *)tag, strlen(tag));
        crypto_hash_sha256_update(h, (const unsigned char *)s, len);
        return;
    }
    case FYNT_SEQUENCE: {
        crypto_hash_sha256_update(h, (const unsigned char *)"[", 1);
        void *it = NULL;
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(n, &it)))
            s_digest_node(h, item);
        crypto_hash_sha256_update(h, (const unsigned char *)"]", 1);
        return;
    }
    case FYNT_MAPPING: {
        crypto_hash_sha256_update(h, (const unsigned char *)"{", 1);
        void *it = NULL;
        struct fy_node_pair *pair;
        while ((pair = fy_node_mapping_iterate(n, &it))) {
            s_digest_node(h, fy_node_pair_key(pair));
            s_digest_node(h, fy_node_pair_value(pair));
        }
        crypto_hash_sha256_update(h, (const unsigned char *)"}", 1);
        return;
    }
    }
}

/* The section's rules hashed as the parser reads them (s_digest_node): what tells a
 * change of rules under the same policy.version (a configuration mistake) from a file
 * only re-indented, commented or quoted otherwise. */
static int s_digest(struct fy_node *section, char out[65], char out_v1[65])
{
    crypto_hash_sha256_state h;
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&h);
    s_digest_node(&h, section);
    crypto_hash_sha256_final(&h, d);
    sodium_bin2hex(out, 65, d, sizeof d);
    return s_digest_v1(section, out_v1);
}

pg_policy *pg_policy_parse(struct fy_node *section, const char *file, const char *our_force,
                           char *errstr, size_t errstr_size)
{
    return pg_policy_parse_each(section, file, our_force, NULL, NULL, errstr, errstr_size);
}

pg_policy *pg_policy_parse_each(struct fy_node *section, const char *file, const char *our_force,
                                pg_policy_report_fn report, void *ud, char *errstr,
                                size_t errstr_size)
{
    pg_policy *policy = calloc(1, sizeof *policy);
    s_parser ps = {.policy = policy,
                   .file = file,
                   .path = "policy",
                   .errstr = errstr,
                   .errstr_size = errstr_size,
                   .report = report,
                   .report_ud = ud};
    if (!policy || !(policy->arena = pg_arena_new(0))) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    if (!our_force || !s_is_force_code(our_force)) {
        pg_errf(PG_ECONFIG, errstr, errstr_size,
                "policy: this gateway's force code '%s' is not 2-4 upper-case letters",
                our_force ? our_force : "");
        goto err;
    }
    if (!(policy->force = pg_arena_strdup(policy->arena, our_force))) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    unsigned seen;
    /* The rules across keys need every key parsed: they run only when all were. */
    if (s_walk(&ps, section, s_policy_keys, sizeof s_policy_keys / sizeof s_policy_keys[0], NULL,
               NULL, &seen))
        goto err;
    for (size_t i = 0; i < policy->n_agreements; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(policy->agreements[i].name, policy->agreements[j].name)) {
                size_t saved = s_path_push(&ps, ".agreements[%zu]", i);
                s_fail_at(&ps, policy->agreements[i].pos, "agreement '%s' is declared twice",
                          policy->agreements[i].name);
                s_path_pop(&ps, saved);
                break;
            }
    for (size_t i = 0; i < policy->n_partners; i++)
        s_check_partner(&ps, &policy->partners[i], i);
    for (size_t i = 0; i < policy->n_dests; i++) {
        s_check_dest(&ps, &policy->dests[i], i);
        if (s_derive(policy, &policy->dests[i])) {
            pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
            goto err;
        }
    }
    if (ps.nerrors)
        goto err;
    if (s_digest(section, policy->digest, policy->digest_v1)) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    return policy;
err:
    pg_policy_destroy(&policy);
    return NULL;
}

/* The first diagnostic libfyaml reports, for errstr. */
typedef struct s_diag_capture {
    char msg[PG_ERRSTR_SIZE];
} s_diag_capture;

static void s_diag_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag;
    s_diag_capture *cap = user;
    if (cap->msg[0])
        return;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        len--;
    snprintf(cap->msg, sizeof cap->msg, "%.*s", (int)len, buf);
}

static pg_policy *s_load(const char *path, const char *yaml, size_t len, const char *our_force,
                         char *errstr, size_t errstr_size)
{
    s_diag_capture cap = {{0}};
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = s_diag_output;
    dcfg.user = &cap;
    dcfg.colorize = false;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET, .diag = diag};
    struct fy_document *doc = path ? fy_document_build_from_file(&cfg, path)
                                   : fy_document_build_from_string(&cfg, yaml, len);
    const char *name = path ? path : "<string>";
    pg_policy *policy = NULL;
    if (!doc) {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "%s: %s", name,
                cap.msg[0] ? cap.msg : "cannot read or parse the YAML");
        goto out;
    }
    struct fy_node *root = fy_document_root(doc);
    struct fy_node *section = root && fy_node_get_type(root) == FYNT_MAPPING
                                  ? fy_node_mapping_lookup_by_string(root, "policy", 6)
                                  : NULL;
    if (!section) {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "%s: no top-level `policy:` section", name);
        goto out;
    }
    policy = pg_policy_parse(section, name, our_force, errstr, errstr_size);
out:
    fy_document_destroy(doc);
    if (diag)
        fy_diag_destroy(diag);
    return policy;
}

pg_policy *pg_policy_load(const char *path, const char *our_force, char *errstr, size_t errstr_size)
{
    return s_load(path, NULL, 0, our_force, errstr, errstr_size);
}

pg_policy *pg_policy_load_string(const char *yaml, size_t len, const char *our_force, char *errstr,
                                 size_t errstr_size)
{
    return s_load(NULL, yaml, len, our_force, errstr, errstr_size);
}

void pg_policy_destroy(pg_policy **p)
{
    if (!p || !*p)
        return;
    pg_arena_destroy(&(*p)->arena);
    free(*p);
    *p = NULL;
}

const char *pg_policy_version(const pg_policy *self)
{
    return self->version;
}

const char *pg_policy_digest(const pg_policy *self)
{
    return self->digest;
}

const char *pg_policy_digest_v1(const pg_policy *self)
{
    return self->digest_v1;
}
const char *pg_policy_force(const pg_policy *self)
{
    return self->force;
}
size_t pg_policy_destination_count(const pg_policy *self)
{
    return self->n_dests;
}
size_t pg_policy_partner_count(const pg_policy *self)
{
    return self->n_partners;
}

const pg_policy_destination *pg_policy_destination_at(const pg_policy *self, size_t i)
{
    return i < self->n_dests ? &self->dests[i].pub : NULL;
}

const pg_policy_destination *pg_policy_destination_find(const pg_policy *self, const char *name)
{
    for (size_t i = 0; name && i < self->n_dests; i++)
        if (!strcmp(self->dests[i].pub.name, name))
            return &self->dests[i].pub;
    return NULL;
}

const pg_policy_partner *pg_policy_partner_at(const pg_policy *self, size_t i)
{
    return i < self->n_partners ? &self->partners[i].pub : NULL;
}

const pg_policy_partner *pg_policy_partner_by_topic(const pg_policy *self, const char *topic)
{
    for (size_t i = 0; topic && i < self->n_partners; i++)
        if (!strcmp(self->partners[i].pub.topic, topic))
            return &self->partners[i].pub;
    return NULL;
}

const char *pg_policy_agreement_description(const pg_policy *self, const char *name)
{
    const pg_policy_agreement_def *a = name ? s_agreement_find(self, name) : NULL;
    return a ? a->description : NULL;
}
