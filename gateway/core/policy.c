/* Sharing policy: the `policy:` config section, per-destination decisions, redaction,
 * withdrawal, provenance headers and inbound origin checks. */
#include "policy.h"

#include <libfyaml.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"

typedef Polegate__Pole__V1__Person s_person;
typedef Polegate__Pole__V1__Alias s_alias;
typedef Polegate__Pole__V1__Date s_date;
typedef Polegate__Pole__V1__Location s_location;
typedef Polegate__Pole__V1__Vehicle s_vehicle;
typedef Polegate__Pole__V1__Item s_item;
typedef Polegate__Pole__V1__Telephone s_telephone;
typedef Polegate__Pole__V1__Occurrence s_occurrence;
typedef Polegate__Pole__V1__Intelligence s_intelligence;

#define S_BIT(field) (1u << PG_POLICY_FIELD_##field)
#define S_KIND_MAX POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_INTELLIGENCE
/* Redaction masks and header texts are kept per entity kind (1..S_KIND_MAX) and for
 * links, in this slot. */
#define S_SLOT_LINK (S_KIND_MAX + 1)
#define S_SLOTS (S_SLOT_LINK + 1)
#define S_ALL_KINDS (((1u << (S_KIND_MAX + 1)) - 1) & ~1u)
#define S_ALL_MOPI 0x1fu /* groups 1-4 and records without a group */
#define S_EMPTY ((char *)protobuf_c_empty_string)

static const char *const s_field_names[] = {
#define S_FIELD_NAME(id, name) name,
    PG_POLICY_FIELD_TABLE(S_FIELD_NAME)
#undef S_FIELD_NAME
};

/* The entity kind a field belongs to; 0: every kind and links. */
static int s_field_kind(pg_policy_field f)
{
    const char *name = s_field_names[f];
    static const struct {
        const char *prefix;
        int kind;
    } prefixes[] = {
        {"person.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON},
        {"location.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_LOCATION},
        {"vehicle.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_VEHICLE},
        {"item.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_ITEM},
        {"telephone.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_TELEPHONE},
        {"occurrence.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_OCCURRENCE},
        {"intelligence.", POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_INTELLIGENCE},
    };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (!strncmp(name, prefixes[i].prefix, strlen(prefixes[i].prefix)))
            return prefixes[i].kind;
    return 0;
}

static const struct {
    const char *name;
    const char *text;
} s_reasons[] = {
#define S_REASON(id, name, text) {name, text},
    PG_POLICY_REASON_TABLE(S_REASON)
#undef S_REASON
};

const char *pg_policy_reason_name(pg_policy_reason reason)
{
    return (unsigned)reason < PG_POLICY_REASON_COUNT ? s_reasons[reason].name : NULL;
}

const char *pg_policy_reason_text(pg_policy_reason reason)
{
    return (unsigned)reason < PG_POLICY_REASON_COUNT ? s_reasons[reason].text : "unknown reason";
}

const char *pg_policy_field_name(pg_policy_field field)
{
    return (unsigned)field < PG_POLICY_FIELD_COUNT ? s_field_names[field] : NULL;
}

/* ------------------------------------------------------------------ the model */

typedef struct s_pos {
    int line, col; /* 1-based; 0 when unknown */
} s_pos;

typedef struct s_agreement {
    const char *name;
    const char *description;
    s_pos pos;
} s_agreement;

/* Keys of a destination, in the order of s_dest_keys (positions are kept per key). */
enum {
    S_DK_NAME,
    S_DK_KIND,
    S_DK_FORCE,
    S_DK_TOPIC,
    S_DK_AGREEMENT,
    S_DK_MAX_CLASSIFICATION,
    S_DK_ALLOW_HANDLING_C,
    S_DK_HANDLING_C_AGREEMENT,
    S_DK_KINDS,
    S_DK_REDACT,
    S_DK_MOPI_GROUPS,
    S_DK_COUNT
};

typedef struct s_dest {
    pg_policy_destination pub; /* first: a pub pointer is an s_dest pointer */
    uint32_t slot_redact[S_SLOTS];
    const char *slot_text[S_SLOTS];
    s_pos pos;                 /* the destination's first key */
    s_pos key_pos[S_DK_COUNT]; /* each key's value, when given */
} s_dest;

enum { S_PK_FORCE, S_PK_TOPIC, S_PK_AGREEMENT, S_PK_SPEAKS_FOR, S_PK_COUNT };

typedef struct s_partner {
    pg_policy_partner pub;
    s_pos pos;
    s_pos key_pos[S_PK_COUNT];
} s_partner;

struct pg_policy {
    pg_arena *arena; /* owns everything below */
    const char *version;
    const char *force;
    s_agreement *agreements;
    size_t n_agreements;
    s_dest *dests;
    size_t n_dests;
    s_partner *partners;
    size_t n_partners;
};

/* ------------------------------------------------------------------ parsing */

typedef struct s_parser {
    pg_policy *policy;
    const char *file;
    char path[256];
    s_pos key_pos; /* the key whose value is being parsed: for empty collections */
    char *errstr;  /* the first problem */
    size_t errstr_size;
    pg_policy_report_fn report; /* every problem, when not NULL */
    void *report_ud;
    int nerrors;
} s_parser;

static s_pos s_node_pos(struct fy_node *node)
{
    s_pos pos = {0, 0};
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

static int s_fail_at(s_parser *ps, s_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail_at(s_parser *ps, s_pos pos, const char *fmt, ...)
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

/* Apply table to the mapping node for obj. key_pos (may be NULL) gets the position of
 * each value given; seen gets a bit per key given. */
static int s_walk(s_parser *ps, struct fy_node *node, const s_key *table, size_t n, void *obj,
                  s_pos *key_pos, unsigned *seen)
{
    if (!node || fy_node_get_type(node) != FYNT_MAPPING)
        return s_fail(ps, node, "expected a mapping of keys to values");
    *seen = 0;
    int first = 0;
    void *iter = NULL;
    struct fy_node_pair *pair;
    while ((pair = fy_node_mapping_iterate(node, &iter))) {
        struct fy_node *key = fy_node_pair_key(pair);
        const char *name =
            key && fy_node_get_type(key) == FYNT_SCALAR ? fy_node_get_scalar0(key) : NULL;
        if (!name) {
            s_first(&first, s_fail(ps, key, "keys must be plain names"));
            continue;
        }
        size_t i = 0;
        while (i < n && strcmp(table[i].key, name))
            i++;
        if (i == n) {
            char known[256] = "";
            for (size_t k = 0; k < n; k++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", k ? ", " : "",
                         table[k].key);
            s_first(&first, s_fail(ps, key, "unknown key '%s' (known keys: %s)", name, known));
            continue;
        }
        size_t saved = s_path_push(ps, ".%s", name);
        s_pos saved_pos = ps->key_pos;
        ps->key_pos = s_node_pos(key);
        if (key_pos) {
            s_pos vpos = s_node_pos(fy_node_pair_value(pair));
            key_pos[i] = vpos.line ? vpos : ps->key_pos;
        }
        int rc = s_value(ps, &table[i], fy_node_pair_value(pair), obj);
        ps->key_pos = saved_pos;
        s_path_pop(ps, saved);
        *seen |= 1u << i; /* given, even if wrong: not also "missing" */
        if (s_first(&first, rc))
            return rc;
    }
    for (size_t i = 0; i < n; i++)
        if (table[i].required && !(*seen & (1u << i)))
            s_first(&first, s_fail(ps, node, "missing required key '%s'", table[i].key));
    return first;
}

/* ---- agreements */

#define S_NAME_MAX 64
#define S_TOPIC_MAX 249 /* Kafka's own limit, of the same alphabet */

static const s_key s_agreement_keys[] = {
    {"name", S_TOKEN, offsetof(s_agreement, name), 1, S_NAME_MAX, "agreement name", NULL},
    {"description", S_TEXT, offsetof(s_agreement, description), 1, 0, NULL, NULL},
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
        ((s_dest *)obj)->pub.kind = PG_POLICY_DEST_NATIONAL;
    else if (!strcmp(s, "force"))
        ((s_dest *)obj)->pub.kind = PG_POLICY_DEST_FORCE;
    else
        return s_fail(ps, v, "unknown destination kind '%s' (national or force)", s);
    return 0;
}

static int s_d_max_classification(s_parser *ps, struct fy_node *v, void *obj)
{
    const char *s;
    int rc = s_scalar(ps, v, &s);
    if (rc)
        return rc;
    if (!strcmp(s, "OFFICIAL"))
        ((s_dest *)obj)->pub.max_classification =
            POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL;
    else if (!strcmp(s, "OFFICIAL-SENSITIVE"))
        ((s_dest *)obj)->pub.max_classification =
            POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL_SENSITIVE;
    else if (!strcmp(s, "SECRET") || !strcmp(s, "TOP-SECRET") || !strcmp(s, "TOP SECRET") ||
             !strcmp(s, "TOP_SECRET"))
        return s_fail(ps, v,
                      "%s is never shared by this gateway: the highest is OFFICIAL-SENSITIVE", s);
    else
        return s_fail(ps, v, "unknown classification '%s' (OFFICIAL or OFFICIAL-SENSITIVE)", s);
    return 0;
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
    for (int k = 1; k <= S_KIND_MAX; k++)
        if (!strcmp(s, s_kind_names[k])) {
            ((s_dest *)obj)->pub.kinds |= 1u << k;
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
    s_dest *d = obj;
    if (s_is_all(v)) {
        d->pub.kinds = S_ALL_KINDS;
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
        if (!strcmp(s, s_field_names[f])) {
            ((s_dest *)obj)->pub.redact |= 1u << f;
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
    s_dest *d = obj;
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
    s_dest *d = obj;
    if (s_is_all(v)) {
        d->pub.mopi_groups = S_ALL_MOPI;
        return 0;
    }
    d->pub.mopi_groups = 0;
    int rc = s_each_scalar(ps, v, "MoPI groups (or `all`)", s_mopi_item, obj);
    if (!rc && !(d->pub.mopi_groups & 0x1eu))
        rc = s_fail(ps, v, "receives no MoPI group at all: list at least one of 1-4");
    return rc;
}

/* In the order of S_DK_*. */
#define S_D(member) offsetof(s_dest, pub.member)
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
    pg_policy_partner *p = &((s_partner *)obj)->pub;
    return s_force_code(ps, n, &p->speaks_for[p->n_speaks_for++]);
}

static int s_p_speaks_for(s_parser *ps, struct fy_node *v, void *obj)
{
    pg_policy_partner *p = &((s_partner *)obj)->pub;
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

#define S_P(member) offsetof(s_partner, pub.member)
static const s_key s_partner_keys[] = {
    {"force", S_FORCE, S_P(force), 1, 0, NULL, NULL},
    {"topic", S_TOKEN, S_P(topic), 1, S_TOPIC_MAX, "topic", NULL},
    {"agreement", S_TOKEN, S_P(agreement), 1, S_NAME_MAX, "agreement name", NULL},
    {"speaks_for", S_CUSTOM, 0, 0, 0, NULL, s_p_speaks_for},
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
    s_agreement *a = item;
    a->pos = s_node_pos(n);
    return s_walk(ps, n, s_agreement_keys, sizeof s_agreement_keys / sizeof s_agreement_keys[0], a,
                  NULL, &seen);
}

static int s_one_dest(s_parser *ps, struct fy_node *n, void *item)
{
    unsigned seen;
    s_dest *d = item;
    d->pos = s_node_pos(n);
    d->pub.mopi_groups = S_ALL_MOPI;
    return s_walk(ps, n, s_dest_keys, S_DK_COUNT, d, d->key_pos, &seen);
}

static int s_one_partner(s_parser *ps, struct fy_node *n, void *item)
{
    unsigned seen;
    s_partner *p = item;
    p->pos = s_node_pos(n);
    int rc = s_walk(ps, n, s_partner_keys, S_PK_COUNT, p, p->key_pos, &seen);
    if (!rc && !(seen & (1u << S_PK_SPEAKS_FOR))) {
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
    return s_list(ps, v, "agreements", sizeof(s_agreement), (void **)&ps->policy->agreements,
                  &ps->policy->n_agreements, s_one_agreement);
}

static int s_t_destinations(s_parser *ps, struct fy_node *v, void *obj)
{
    (void)obj;
    return s_list(ps, v, "destinations", sizeof(s_dest), (void **)&ps->policy->dests,
                  &ps->policy->n_dests, s_one_dest);
}

static int s_t_partners(s_parser *ps, struct fy_node *v, void *obj)
{
    (void)obj;
    return s_list(ps, v, "partners", sizeof(s_partner), (void **)&ps->policy->partners,
                  &ps->policy->n_partners, s_one_partner);
}

static const s_key s_policy_keys[] = {
    {"version", S_CUSTOM, 0, 1, 0, NULL, s_t_version},
    {"agreements", S_CUSTOM, 0, 0, 0, NULL, s_t_agreements},
    {"destinations", S_CUSTOM, 0, 0, 0, NULL, s_t_destinations},
    {"partners", S_CUSTOM, 0, 0, 0, NULL, s_t_partners},
};

/* ---- what no single key can say */

static const s_agreement *s_agreement_find(const pg_policy *self, const char *name)
{
    for (size_t i = 0; i < self->n_agreements; i++)
        if (!strcmp(self->agreements[i].name, name))
            return &self->agreements[i];
    return NULL;
}

static int s_check_agreement(s_parser *ps, s_pos pos, const char *name)
{
    if (s_agreement_find(ps->policy, name))
        return 0;
    return s_fail_at(ps, pos, "agreement '%s' is not declared in policy.agreements", name);
}

/* The rules of one destination against the whole policy; the first broken one. */
static int s_dest_rules(s_parser *ps, const s_dest *d, size_t index)
{
    const pg_policy *policy = ps->policy;
    const pg_policy_destination *p = &d->pub;
    const s_pos *kp = d->key_pos;
    if (p->kind == PG_POLICY_DEST_FORCE && !p->force)
        return s_fail_at(ps, d->pos, "a destination of kind force needs `force`: its force code");
    if (p->kind == PG_POLICY_DEST_NATIONAL && p->force)
        return s_fail_at(ps, kp[S_DK_FORCE], "a national destination has no `force`");
    if (p->force && !strcmp(p->force, policy->force))
        return s_fail_at(ps, kp[S_DK_FORCE], "force %s is this gateway's own force", p->force);
    int rc = s_check_agreement(ps, kp[S_DK_AGREEMENT], p->agreement);
    if (rc)
        return rc;
    if (p->allow_handling_c && !p->handling_c_agreement)
        return s_fail_at(ps, kp[S_DK_ALLOW_HANDLING_C],
                         "handling C records may go only under a named agreement: set "
                         "`handling_c_agreement`");
    if (!p->allow_handling_c && p->handling_c_agreement)
        return s_fail_at(ps, kp[S_DK_HANDLING_C_AGREEMENT],
                         "`handling_c_agreement` is set but `allow_handling_c` is not true");
    if (p->handling_c_agreement &&
        (rc = s_check_agreement(ps, kp[S_DK_HANDLING_C_AGREEMENT], p->handling_c_agreement)))
        return rc;
    for (size_t i = 0; i < index; i++) {
        const s_dest *o = &policy->dests[i];
        if (!strcmp(o->pub.name, p->name))
            return s_fail_at(ps, kp[S_DK_NAME], "name '%s' is also destinations[%zu]'s", p->name,
                             i);
        if (!strcmp(o->pub.topic, p->topic))
            return s_fail_at(ps, kp[S_DK_TOPIC], "topic '%s' is also destination %s's", p->topic,
                             o->pub.name);
    }
    for (size_t i = 0; i < policy->n_partners; i++)
        if (!strcmp(policy->partners[i].pub.topic, p->topic))
            return s_fail_at(ps, kp[S_DK_TOPIC],
                             "topic '%s' is partner %s's inbound topic: the gateway would read "
                             "back what it publishes",
                             p->topic, policy->partners[i].pub.force);
    for (int f = 0; f < PG_POLICY_FIELD_COUNT; f++) {
        int kind = s_field_kind((pg_policy_field)f);
        if ((p->redact & (1u << f)) && kind && !(p->kinds & (1u << kind)))
            return s_fail_at(ps, kp[S_DK_REDACT],
                             "redacts %s but does not receive %s records: remove one or the "
                             "other",
                             s_field_names[f], s_kind_names[kind]);
    }
    return 0;
}

static int s_check_dest(s_parser *ps, const s_dest *d, size_t index)
{
    size_t saved = s_path_push(ps, ".destinations[%zu] (%s)", index, d->pub.name);
    int rc = s_dest_rules(ps, d, index);
    s_path_pop(ps, saved);
    return rc;
}

static int s_check_partner(s_parser *ps, s_partner *pt, size_t index)
{
    pg_policy *policy = ps->policy;
    const pg_policy_partner *p = &pt->pub;
    size_t saved = s_path_push(ps, ".partners[%zu] (%s)", index, p->force);
    int rc = 0;
    if (!strcmp(p->force, policy->force))
        rc = s_fail_at(ps, pt->key_pos[S_PK_FORCE], "force %s is this gateway's own force",
                       p->force);
    else
        rc = s_check_agreement(ps, pt->key_pos[S_PK_AGREEMENT], p->agreement);
    for (size_t i = 0; !rc && i < p->n_speaks_for; i++)
        if (!strcmp(p->speaks_for[i], policy->force))
            rc = s_fail_at(ps, pt->key_pos[S_PK_SPEAKS_FOR],
                           "a partner may never speak for this gateway's own force %s",
                           policy->force);
    for (size_t i = 0; !rc && i < index; i++)
        if (!strcmp(policy->partners[i].pub.topic, p->topic))
            rc = s_fail_at(ps, pt->key_pos[S_PK_TOPIC], "topic '%s' is also partner %s's", p->topic,
                           policy->partners[i].pub.force);
    s_path_pop(ps, saved);
    return rc;
}

/* The redaction mask and header text of each kind, computed once so deciding never
 * formats anything. */
static int s_derive(pg_policy *self, s_dest *d)
{
    for (int slot = 1; slot < S_SLOTS; slot++) {
        uint32_t mask = 0;
        char text[1024] = "";
        for (int f = 0; f < PG_POLICY_FIELD_COUNT; f++) {
            int kind = s_field_kind((pg_policy_field)f);
            if (!(d->pub.redact & (1u << f)) || (kind && kind != slot))
                continue;
            mask |= 1u << f;
            snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s", *text ? "," : "",
                     s_field_names[f]);
        }
        d->slot_redact[slot] = mask;
        d->slot_text[slot] = pg_arena_strdup(self->arena, mask ? text : "none");
        if (!d->slot_text[slot])
            return PG_ENOMEM;
    }
    return 0;
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
    const s_agreement *a = name ? s_agreement_find(self, name) : NULL;
    return a ? a->description : NULL;
}

/* ------------------------------------------------------------------ deciding */

void pg_policy_facts_of(const pg_entity_update *entity, pg_policy_facts *out)
{
    memset(out, 0, sizeof *out);
    out->operation = entity->operation;
    out->kind = entity->kind;
    if (entity->marking) {
        out->has_marking = 1;
        out->classification = entity->marking->classification;
        out->handling = entity->marking->handling;
    }
    out->mopi_group = entity->retention ? entity->retention->mopi_group : 0;
}

/* The marking rules, shared by entities and links. */
static pg_policy_reason s_check_marking(const pg_policy_destination *d, int has_marking,
                                        int classification, int handling)
{
    if (!has_marking)
        return PG_POLICY_R_MARKING;
    switch (classification) {
    case POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL:
    case POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL_SENSITIVE:
        break;
    case POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_SECRET:
    case POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_TOP_SECRET:
        return PG_POLICY_R_SECRET;
    default: /* unspecified, or a value this build does not know: never guessed */
        return PG_POLICY_R_MARKING;
    }
    if (handling != POLEGATE__POLE__V1__HANDLING__HANDLING_P &&
        handling != POLEGATE__POLE__V1__HANDLING__HANDLING_C)
        return PG_POLICY_R_MARKING;
    if (classification > d->max_classification)
        return PG_POLICY_R_CLASSIFICATION;
    if (handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C && !d->allow_handling_c)
        return PG_POLICY_R_HANDLING;
    return PG_POLICY_R_OK;
}

static pg_policy_reason s_check_operation(int operation)
{
    if (operation == POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE)
        return PG_POLICY_R_DELETED;
    if (operation != POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT)
        return PG_POLICY_R_INVALID;
    return PG_POLICY_R_OK;
}

pg_policy_reason pg_policy_check_facts(const pg_policy *self,
                                       const pg_policy_destination *destination,
                                       const pg_policy_facts *facts)
{
    (void)self;
    pg_policy_reason r = s_check_operation(facts->operation);
    if (r == PG_POLICY_R_OK)
        r = s_check_marking(destination, facts->has_marking, facts->classification,
                            facts->handling);
    if (r != PG_POLICY_R_OK)
        return r;
    if (facts->kind < 1 || facts->kind > S_KIND_MAX || !(destination->kinds & (1u << facts->kind)))
        return PG_POLICY_R_KIND;
    if (facts->mopi_group < 0 || facts->mopi_group > 4 ||
        !(destination->mopi_groups & (1u << facts->mopi_group)))
        return PG_POLICY_R_MOPI;
    return PG_POLICY_R_OK;
}

static void *s_dup(pg_arena *arena, const void *src, size_t size)
{
    void *p = pg_arena_alloc(arena, size);
    if (p)
        memcpy(p, src, size);
    return p;
}

/* A date with the redactions of mask applied: NULL (no date), the input, or a copy. */
static int s_redact_date(pg_arena *arena, s_date **date, uint32_t mask)
{
    if (!*date)
        return 0;
    if (mask & S_BIT(PERSON_DATE_OF_BIRTH)) {
        *date = NULL;
    } else if (mask & S_BIT(PERSON_DATE_OF_BIRTH_DAY)) {
        s_date *d = s_dup(arena, *date, sizeof *d);
        if (!d)
            return PG_ENOMEM;
        d->day = 0;
        *date = d;
    }
    return 0;
}

static int s_redact_person(pg_arena *arena, pg_entity_update *e, uint32_t mask)
{
    s_person *p = s_dup(arena, e->person, sizeof *p);
    if (!p)
        return PG_ENOMEM;
    e->person = p;
    if (mask & (S_BIT(PERSON_ETHNICITY) | S_BIT(PERSON_SELF_DEFINED_ETHNICITY)))
        p->self_defined_ethnicity = 0;
    if (mask & (S_BIT(PERSON_ETHNICITY) | S_BIT(PERSON_OFFICER_DEFINED_ETHNICITY)))
        p->officer_defined_ethnicity = 0;
    if (mask & S_BIT(PERSON_WARNING_MARKERS)) {
        p->n_warning_markers = 0;
        p->warning_markers = NULL;
    }
    if (mask & S_BIT(PERSON_PLACE_OF_BIRTH))
        p->place_of_birth = S_EMPTY;
    if (mask & S_BIT(PERSON_NATIONALITY))
        p->nationality = S_EMPTY;
    if (mask & S_BIT(PERSON_PNC_ID))
        p->pnc_id = S_EMPTY;
    if (mask & S_BIT(PERSON_CRO_NUMBER))
        p->cro_number = S_EMPTY;
    if (mask & S_BIT(PERSON_OCCUPATION))
        p->occupation = S_EMPTY;
    if (s_redact_date(arena, &p->date_of_birth, mask))
        return PG_ENOMEM;
    if (mask & S_BIT(PERSON_ALIASES)) {
        p->n_aliases = 0;
        p->aliases = NULL;
    } else if (p->n_aliases &&
               (mask & (S_BIT(PERSON_DATE_OF_BIRTH) | S_BIT(PERSON_DATE_OF_BIRTH_DAY)))) {
        /* An alias's date of birth is the same fact as the person's. */
        s_alias **aliases = pg_arena_alloc(arena, p->n_aliases * sizeof *aliases);
        if (!aliases)
            return PG_ENOMEM;
        for (size_t i = 0; i < p->n_aliases; i++) {
            if (!(aliases[i] = s_dup(arena, p->aliases[i], sizeof *aliases[i])) ||
                s_redact_date(arena, &aliases[i]->date_of_birth, mask))
                return PG_ENOMEM;
        }
        p->aliases = aliases;
    }
    return 0;
}

/* Copy the body of e (of type T, member m) and let the statement redact the copy `b`. */
#define S_REDACT_BODY(T, m, stmt)                                                                  \
    do {                                                                                           \
        T *b = s_dup(arena, e->m, sizeof *b);                                                      \
        if (!b)                                                                                    \
            return PG_ENOMEM;                                                                      \
        stmt;                                                                                      \
        e->m = b;                                                                                  \
    } while (0)

/* Apply mask (already restricted to e's kind) to e, a shallow copy of the input. */
static int s_redact_body(pg_arena *arena, pg_entity_update *e, uint32_t mask)
{
    switch (e->body_case) {
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON:
        return s_redact_person(arena, e, mask);
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION:
        S_REDACT_BODY(s_location, location, {
            if (mask & S_BIT(LOCATION_POSITION)) {
                b->geo = NULL;
                b->grid = NULL;
            }
            if (mask & S_BIT(LOCATION_DESCRIPTION))
                b->description = S_EMPTY;
        });
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE:
        S_REDACT_BODY(s_vehicle, vehicle, b->vin = S_EMPTY);
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM:
        S_REDACT_BODY(s_item, item, b->value = NULL);
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE:
        S_REDACT_BODY(s_telephone, telephone, b->imei = S_EMPTY);
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE:
        S_REDACT_BODY(s_occurrence, occurrence, b->summary = S_EMPTY);
        return 0;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE:
        S_REDACT_BODY(s_intelligence, intelligence, {
            if (mask & S_BIT(INTELLIGENCE_TEXT))
                b->text = S_EMPTY;
            if (mask & S_BIT(INTELLIGENCE_GRADING))
                b->grading = NULL;
        });
        return 0;
    default:
        return 0;
    }
}

static int s_redact_origin(pg_arena *arena, pg_origin **origin)
{
    if (!*origin)
        return 0;
    pg_origin *o = s_dup(arena, *origin, sizeof *o);
    if (!o)
        return PG_ENOMEM;
    o->org_unit = S_EMPTY;
    *origin = o;
    return 0;
}

static void s_share(const s_dest *d, int slot, int handling, pg_policy_decision *out)
{
    out->verdict = PG_POLICY_SHARE;
    out->reason = PG_POLICY_R_OK;
    out->agreement = handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C
                         ? d->pub.handling_c_agreement
                         : d->pub.agreement;
    out->redacted = d->slot_redact[slot];
    out->redactions = d->slot_text[slot];
}

int pg_policy_decide_entity(const pg_policy *self, const pg_policy_destination *destination,
                            const pg_entity_update *entity, pg_arena *arena,
                            pg_policy_shared_fn shared, void *ud, pg_policy_decision *out)
{
    const s_dest *d = (const s_dest *)destination;
    memset(out, 0, sizeof *out);
    out->verdict = PG_POLICY_WITHHOLD;
    out->destination = destination;
    pg_policy_facts facts;
    pg_policy_facts_of(entity, &facts);
    out->reason = pg_policy_check_facts(self, destination, &facts);
    /* The body must be the kind's: redaction and the kind rule look at different
     * members, and a mismatch would slip one past the other. */
    if (out->reason == PG_POLICY_R_OK && (int)entity->body_case != 19 + (int)entity->kind)
        out->reason = PG_POLICY_R_INVALID;
    if (out->reason != PG_POLICY_R_OK)
        return 0;
    uint32_t mask = d->slot_redact[entity->kind];
    if (!mask && !entity->n_merged_from) {
        out->entity = entity;
    } else {
        pg_entity_update *e = s_dup(arena, entity, sizeof *e);
        if (!e || (mask & S_BIT(ORIGIN_ORG_UNIT) && s_redact_origin(arena, &e->origin)) ||
            (mask & ~S_BIT(ORIGIN_ORG_UNIT) && s_redact_body(arena, e, mask)))
            return PG_ENOMEM;
        if (e->n_merged_from) {
            pg_entity_ref **kept = NULL;
            size_t n = 0;
            if (shared && !(kept = pg_arena_alloc(arena, e->n_merged_from * sizeof *kept)))
                return PG_ENOMEM;
            for (size_t i = 0; shared && i < e->n_merged_from; i++)
                if (e->merged_from[i] && shared(ud, e->merged_from[i]->id))
                    kept[n++] = e->merged_from[i];
            e->merged_from = n ? kept : NULL;
            e->n_merged_from = n;
        }
        out->entity = e;
    }
    s_share(d, entity->kind, facts.handling, out);
    return 0;
}

int pg_policy_decide_link(const pg_policy *self, const pg_policy_destination *destination,
                          const pg_link_update *link, pg_policy_end from, pg_policy_end to,
                          pg_arena *arena, pg_policy_decision *out)
{
    (void)self;
    const s_dest *d = (const s_dest *)destination;
    memset(out, 0, sizeof *out);
    out->verdict = PG_POLICY_WITHHOLD;
    out->destination = destination;
    const pg_marking *m = link->marking;
    out->reason = s_check_operation(link->operation);
    if (out->reason == PG_POLICY_R_OK)
        out->reason = s_check_marking(destination, m != NULL, m ? (int)m->classification : 0,
                                      m ? (int)m->handling : 0);
    if (out->reason == PG_POLICY_R_OK &&
        (from == PG_POLICY_END_WITHHELD || to == PG_POLICY_END_WITHHELD))
        out->reason = PG_POLICY_R_LINK_END;
    if (out->reason == PG_POLICY_R_OK &&
        (from != PG_POLICY_END_SHARED || to != PG_POLICY_END_SHARED))
        out->reason = PG_POLICY_R_LINK_END_UNKNOWN;
    if (out->reason != PG_POLICY_R_OK)
        return 0;
    if (d->slot_redact[S_SLOT_LINK]) {
        pg_link_update *l = s_dup(arena, link, sizeof *l);
        if (!l || s_redact_origin(arena, &l->origin))
            return PG_ENOMEM;
        out->link = l;
    } else {
        out->link = link;
    }
    s_share(d, S_SLOT_LINK, (int)m->handling, out);
    return 0;
}

pg_policy_action pg_policy_transition(int was_shared, const pg_policy_decision *decision)
{
    if (decision->verdict == PG_POLICY_SHARE)
        return PG_POLICY_PUBLISH;
    return was_shared ? PG_POLICY_WITHDRAW : PG_POLICY_NOTHING;
}

/* Only ids the destination already has: never the new marking or anything else. */
static pg_origin *s_origin_ids(pg_arena *arena, const pg_origin *in)
{
    if (!in)
        return NULL;
    pg_origin *o = PG_PB_NEW(arena, pg_origin, polegate__pole__v1__origin);
    if (!o)
        return NULL;
    o->force = in->force;
    o->system = in->system;
    o->native_type = in->native_type;
    o->native_id = in->native_id;
    return o;
}

pg_entity_update *pg_policy_withdrawal_entity(pg_arena *arena, const pg_entity_update *entity,
                                              uint64_t version)
{
    pg_entity_update *e = PG_PB_NEW(arena, pg_entity_update, polegate__pole__v1__entity_update);
    if (!e)
        return NULL;
    e->id = entity->id;
    e->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    e->version = version;
    e->kind = entity->kind;
    if (entity->origin && !(e->origin = s_origin_ids(arena, entity->origin)))
        return NULL;
    return e;
}

pg_link_update *pg_policy_withdrawal_link(pg_arena *arena, const pg_link_update *link,
                                          uint64_t version)
{
    pg_link_update *l = PG_PB_NEW(arena, pg_link_update, polegate__pole__v1__link_update);
    if (!l)
        return NULL;
    l->id = link->id;
    l->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    l->version = version;
    l->from = link->from;
    l->role = link->role;
    l->to = link->to;
    if (link->origin && !(l->origin = s_origin_ids(arena, link->origin)))
        return NULL;
    return l;
}

/* ------------------------------------------------------------------ inbound */

int pg_policy_inbound_allowed(const pg_policy *self, const char *topic, const char *origin_force,
                              const pg_policy_partner **partner, char *errstr, size_t errstr_size)
{
    const pg_policy_partner *p = pg_policy_partner_by_topic(self, topic);
    if (partner)
        *partner = p;
    if (!p)
        return pg_errf(PG_EPOLICY, errstr, errstr_size,
                       "inbound: topic '%s' is not a configured partner's", topic ? topic : "");
    if (!origin_force || !*origin_force)
        return pg_errf(PG_EPOLICY, errstr, errstr_size,
                       "inbound: a record from partner %s names no origin force", p->force);
    if (!strcmp(origin_force, self->force))
        return pg_errf(PG_EPOLICY, errstr, errstr_size,
                       "inbound: partner %s sent a record claiming to originate from this "
                       "force (%s)",
                       p->force, self->force);
    for (size_t i = 0; i < p->n_speaks_for; i++)
        if (!strcmp(p->speaks_for[i], origin_force))
            return 0;
    return pg_errf(PG_EPOLICY, errstr, errstr_size,
                   "inbound: partner %s may not speak for force '%.8s'", p->force, origin_force);
}
