/* In-memory ATX and NX5 records systems for equivalence tests, and the comparison of
 * two final states ids aside. */
#include "rms_model.h"

#include <glib.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"

typedef struct s_rec {
    int kind;
    uint64_t rev;
    int deleted;
    pg_entity_update *entity; /* NULL when deleted; owned by the model's arena */
} s_rec;

typedef struct s_day {
    int y, m, d; /* y 0: open */
} s_day;

typedef struct s_link {
    char *from, *to; /* owned by the model's arena */
    int role;
    s_day valid_from, valid_to;
} s_link;

struct pg_rms_model {
    const pg_adapter_ops *adapter;
    int atx;
    pg_arena *arena;   /* records, links and ids: kept until destroy */
    GHashTable *recs;  /* native id -> s_rec */
    GHashTable *links; /* "from|role|to" -> s_link */
    GHashTable *seen;  /* ATX messageIds applied */
    pg_changeset *cs;  /* decode scratch */
    size_t duplicates, stale;
};

pg_rms_model *pg_rms_model_new(const pg_adapter_ops *adapter)
{
    pg_rms_model *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->adapter = adapter;
    self->atx = strcmp(adapter->format, "atx") == 0;
    self->arena = pg_arena_new(0);
    self->recs = g_hash_table_new(g_str_hash, g_str_equal);
    self->links = g_hash_table_new(g_str_hash, g_str_equal);
    self->seen = g_hash_table_new(g_str_hash, g_str_equal);
    self->cs = pg_changeset_new();
    if (!self->arena || !self->cs) {
        pg_rms_model_destroy(&self);
        return NULL;
    }
    return self;
}

void pg_rms_model_destroy(pg_rms_model **p)
{
    if (!p || !*p)
        return;
    pg_rms_model *self = *p;
    g_hash_table_destroy(self->recs);
    g_hash_table_destroy(self->links);
    g_hash_table_destroy(self->seen);
    pg_changeset_destroy(&self->cs);
    pg_arena_destroy(&self->arena);
    free(self);
    *p = NULL;
}

const char *pg_rms_model_format(const pg_rms_model *self)
{
    return self->adapter->format;
}

/* ------------------------------------------------------------ state changes */

/* A copy of the message in the model's arena. */
static void *s_copy(pg_rms_model *self, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = g_malloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    ProtobufCAllocator alloc;
    pg_pb_arena_allocator(self->arena, &alloc);
    void *copy = protobuf_c_message_unpack(m->descriptor, &alloc, n, buf);
    g_free(buf);
    return copy;
}

static char *s_link_key(pg_rms_model *self, const char *from, int role, const char *to)
{
    return pg_arena_sprintf(self->arena, "%s|%d|%s", from, role, to);
}

static s_rec *s_rec_of(pg_rms_model *self, const char *id)
{
    s_rec *r = g_hash_table_lookup(self->recs, id);
    if (!r) {
        r = pg_arena_alloc(self->arena, sizeof(*r));
        g_hash_table_insert(self->recs, pg_arena_strdup(self->arena, id), r);
    }
    return r;
}

static s_day s_day_of(const pg_date *d)
{
    return d ? (s_day){d->year, d->month, d->day} : (s_day){0, 0, 0};
}

static void s_link_put(pg_rms_model *self, const char *from, int role, const char *to, s_day vf,
                       s_day vt)
{
    s_link *l = g_hash_table_lookup(self->links, s_link_key(self, from, role, to));
    if (!l) {
        l = pg_arena_alloc(self->arena, sizeof(*l));
        l->from = pg_arena_strdup(self->arena, from);
        l->to = pg_arena_strdup(self->arena, to);
        l->role = role;
        g_hash_table_insert(self->links, s_link_key(self, from, role, to), l);
    }
    l->valid_from = vf;
    l->valid_to = vt;
}

typedef struct s_match {
    const char *id;
    int from, to; /* which ends to test */
} s_match;

static gboolean s_link_matches(gpointer key, gpointer value, gpointer arg)
{
    (void)key;
    const s_link *l = value;
    const s_match *m = arg;
    return (m->from && !strcmp(l->from, m->id)) || (m->to && !strcmp(l->to, m->id));
}

/* Drop the links from (from=1) and/or to (to=1) id. */
static void s_links_drop(pg_rms_model *self, const char *id, int from, int to)
{
    s_match m = {id, from, to};
    g_hash_table_foreach_remove(self->links, s_link_matches, &m);
}

/* Move the links from (from=1) and/or to (to=1) the merged-away id to the survivor,
 * dropping those that would link the survivor to itself. */
static void s_links_repoint(pg_rms_model *self, const char *merged, const char *survivor, int from,
                            int to)
{
    s_match m = {merged, from, to};
    GPtrArray *moved = g_ptr_array_new();
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, self->links);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (s_link_matches(k, v, &m))
            g_ptr_array_add(moved, v);
    s_links_drop(self, merged, from, to);
    for (guint i = 0; i < moved->len; i++) {
        s_link *l = moved->pdata[i];
        const char *f = !strcmp(l->from, merged) ? survivor : l->from;
        const char *t = !strcmp(l->to, merged) ? survivor : l->to;
        if (strcmp(f, t) != 0 &&
            !g_hash_table_contains(self->links, s_link_key(self, f, l->role, t)))
            s_link_put(self, f, l->role, t, l->valid_from, l->valid_to);
    }
    g_ptr_array_free(moved, TRUE);
}

static void s_apply_entity(pg_rms_model *self, const pg_change *c, GHashTable *stale_ids)
{
    const pg_entity_update *e = c->entity;
    const char *id = e->origin ? e->origin->native_id : NULL;
    if (!id || !*id)
        return;
    s_rec *r = s_rec_of(self, id);
    if (r->rev && e->version <= r->rev) {
        self->stale++;
        g_hash_table_add(stale_ids, (gpointer)id);
        return;
    }
    r->rev = e->version;
    r->kind = e->kind;
    if (e->operation == POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE) {
        r->deleted = 1;
        r->entity = NULL;
        s_links_drop(self, id, 1, 1);
        return;
    }
    r->deleted = 0;
    r->entity = s_copy(self, &e->base);
    if (self->atx && c->replaces_links)
        s_links_drop(self, id, 1, 0);
    for (size_t i = 0; i < e->n_merged_from; i++) {
        const char *m = e->merged_from[i]->native_id;
        if (!m || !strcmp(m, id))
            continue;
        s_rec *mr = s_rec_of(self, m);
        mr->deleted = 1;
        mr->entity = NULL;
        if (!mr->kind)
            mr->kind = e->kind;
        /* ATX: the survivor's links are its complete list; NX5: they all move. */
        if (self->atx)
            s_links_drop(self, m, 1, 0);
        s_links_repoint(self, m, id, !self->atx, 1);
    }
}

static void s_apply_link(pg_rms_model *self, const pg_link_update *l, GHashTable *stale_ids)
{
    const char *from = l->from ? l->from->native_id : NULL;
    const char *to = l->to ? l->to->native_id : NULL;
    /* An ATX record's links are part of it: a stale record brings stale links. */
    if (!from || !to || (self->atx && g_hash_table_contains(stale_ids, from)))
        return;
    if (l->operation == POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE) {
        g_hash_table_remove(self->links, s_link_key(self, from, l->role, to));
        return;
    }
    s_link_put(self, from, l->role, to, s_day_of(l->valid_from), s_day_of(l->valid_to));
}

int pg_rms_model_apply_changeset(pg_rms_model *self, const pg_changeset *cs, char *errstr,
                                 size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    if (self->atx && cs->message_id) {
        if (g_hash_table_contains(self->seen, cs->message_id)) {
            self->duplicates++;
            return 0;
        }
        g_hash_table_add(self->seen, pg_arena_strdup(self->arena, cs->message_id));
    }
    GHashTable *stale_ids = g_hash_table_new(g_str_hash, g_str_equal);
    for (size_t i = 0; i < cs->count; i++) {
        const pg_change *c = &cs->changes[i];
        if (c->type == PG_CHANGE_ENTITY)
            s_apply_entity(self, c, stale_ids);
        else
            s_apply_link(self, c->link, stale_ids);
    }
    g_hash_table_destroy(stale_ids);
    return 0;
}

int pg_rms_model_apply(pg_rms_model *self, const uint8_t *msg, size_t len, char *errstr,
                       size_t errstr_size)
{
    pg_changeset_reset(self->cs);
    pg_adapter_ctx ctx = {0};
    int rc = self->adapter->decode(&ctx, msg, len, self->cs, errstr, errstr_size);
    if (rc < 0)
        return rc;
    return pg_rms_model_apply_changeset(self, self->cs, errstr, errstr_size);
}

typedef struct s_split_arg {
    pg_rms_model *self;
    char *errstr;
    size_t errstr_size;
} s_split_arg;

static int s_split_one(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_split_arg *a = arg;
    char e[PG_ERRSTR_SIZE];
    int rc = pg_rms_model_apply(a->self, msg, len, e, sizeof e);
    if (rc < 0)
        pg_errf(rc, a->errstr, a->errstr_size, "%s %zu: %s", a->self->atx ? "line" : "document",
                pos, e);
    return rc;
}

int pg_rms_model_apply_bytes(pg_rms_model *self, const uint8_t *data, size_t size, char *errstr,
                             size_t errstr_size)
{
    s_split_arg a = {self, errstr, errstr_size};
    return self->adapter->split(data, size, s_split_one, &a);
}

int pg_rms_model_apply_file(pg_rms_model *self, const char *path, char *errstr, size_t errstr_size)
{
    gchar *data;
    gsize size;
    GError *err = NULL;
    if (!g_file_get_contents(path, &data, &size, &err)) {
        int rc = pg_errf(PG_EIO, errstr, errstr_size, "%s", err->message);
        g_error_free(err);
        return rc;
    }
    int rc = pg_rms_model_apply_bytes(self, (const uint8_t *)data, size, errstr, errstr_size);
    g_free(data);
    return rc;
}

/* ------------------------------------------------------------ queries */

size_t pg_rms_model_records(const pg_rms_model *self)
{
    size_t n = 0;
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, self->recs);
    while (g_hash_table_iter_next(&it, &k, &v))
        n += !((s_rec *)v)->deleted && ((s_rec *)v)->entity;
    return n;
}

size_t pg_rms_model_links(const pg_rms_model *self)
{
    return g_hash_table_size(self->links);
}

size_t pg_rms_model_duplicates(const pg_rms_model *self)
{
    return self->duplicates;
}

size_t pg_rms_model_stale(const pg_rms_model *self)
{
    return self->stale;
}

const pg_entity_update *pg_rms_model_get(const pg_rms_model *self, const char *id)
{
    const s_rec *r = g_hash_table_lookup(self->recs, id);
    return r && !r->deleted ? r->entity : NULL;
}

uint64_t pg_rms_model_revision(const pg_rms_model *self, const char *id)
{
    const s_rec *r = g_hash_table_lookup(self->recs, id);
    return r ? r->rev : 0;
}

int pg_rms_model_has_link(const pg_rms_model *self, const char *from, int role, const char *to)
{
    char *key = g_strdup_printf("%s|%d|%s", from, role, to);
    int has = g_hash_table_contains(self->links, key);
    g_free(key);
    return has;
}

static const char *s_kind_name(int kind)
{
    const char *n = pg_enum_short(&polegate__pole__v1__entity_kind__descriptor, kind);
    return n ? n : "?";
}

static const char *s_role_name(int role)
{
    const char *n = pg_enum_short(&polegate__pole__v1__link_role__descriptor, role);
    return n ? n : "?";
}

static gint s_strcmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The keys of h, sorted (a g_ptr_array of borrowed strings). */
static GPtrArray *s_sorted_keys(GHashTable *h)
{
    GPtrArray *keys = g_ptr_array_new();
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, h);
    while (g_hash_table_iter_next(&it, &k, &v))
        g_ptr_array_add(keys, k);
    g_ptr_array_sort(keys, s_strcmp);
    return keys;
}

static void s_date_str(const s_day *d, char out[16])
{
    if (!d->y)
        snprintf(out, 16, "open");
    else
        snprintf(out, 16, "%04d-%02d-%02d", d->y % 10000, d->m % 100, d->d % 100);
}

void pg_rms_model_dump(const pg_rms_model *self, FILE *f)
{
    GPtrArray *keys = s_sorted_keys(self->recs);
    for (guint i = 0; i < keys->len; i++) {
        const s_rec *r = g_hash_table_lookup(self->recs, keys->pdata[i]);
        fprintf(f, "record %s %s rev %llu%s\n", (char *)keys->pdata[i], s_kind_name(r->kind),
                (unsigned long long)r->rev, r->deleted ? " deleted" : "");
    }
    g_ptr_array_free(keys, TRUE);
    keys = s_sorted_keys(self->links);
    for (guint i = 0; i < keys->len; i++) {
        const s_link *l = g_hash_table_lookup(self->links, keys->pdata[i]);
        char vf[16], vt[16];
        s_date_str(&l->valid_from, vf);
        s_date_str(&l->valid_to, vt);
        fprintf(f, "link %s -%s-> %s [%s, %s]\n", l->from, s_role_name(l->role), l->to, vf, vt);
    }
    g_ptr_array_free(keys, TRUE);
}

/* ------------------------------------------------------------ comparison */

typedef struct s_cmp {
    pg_buf *diff;
    size_t n;
    int upper;     /* names as NX5 stores them */
    int max_given; /* 3 (NX5) or 5 (ATX) */
    int seconds;   /* compare instants to the second */
    double max_metres;
    const char *what; /* "PERSON P0000123456 ~ B100000000123456" */
} s_cmp;

static void s_diff(s_cmp *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_diff(s_cmp *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (c->what)
        pg_buf_printf(c->diff, "%s: %s\n", c->what, line);
    else
        pg_buf_printf(c->diff, "%s\n", line);
    g_free(line);
    c->n++;
}

/* A name as the target stores it: given names capped by its rule, upper-cased for
 * NX5. Returns "SURNAME / GIVEN1 / GIVEN2". */
static char *s_name_norm(const s_cmp *c, const Polegate__Pole__V1__Name *n)
{
    GString *s = g_string_new(n && n->surname ? n->surname : "");
    size_t count = n ? n->n_forenames : 0;
    size_t keep = (size_t)c->max_given;
    for (size_t i = 0; i < count; i++) {
        /* NX5 keeps the first 2 and joins the rest into the 3rd; ATX appends the rest
         * to the 5th: either way every name past keep-1 lands in the last slot. */
        g_string_append(s, i < keep ? " / " : " ");
        g_string_append(s, n->forenames[i]);
    }
    if (c->upper) {
        char *up = g_utf8_strup(s->str, -1);
        g_string_assign(s, up);
        g_free(up);
    }
    return g_string_free(s, FALSE);
}

static double s_metres(double lat1, double lon1, double lat2, double lon2)
{
    const double r = 6371008.8, rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double h = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * r * asin(sqrt(h));
}

static void s_cmp_msg(s_cmp *c, const char *path, const ProtobufCMessage *a,
                      const ProtobufCMessage *b);

static const char *s_str_or_empty(const char *s)
{
    return s ? s : "";
}

/* Compare one value of field f at pa / pb (pointers to the field's storage). */
static void s_cmp_value(s_cmp *c, const char *path, const ProtobufCFieldDescriptor *f,
                        const void *pa, const void *pb)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_ENUM: {
        int va = *(const int *)pa, vb = *(const int *)pb;
        if (va != vb) {
            const ProtobufCEnumValue *ea = protobuf_c_enum_descriptor_get_value(f->descriptor, va);
            const ProtobufCEnumValue *eb = protobuf_c_enum_descriptor_get_value(f->descriptor, vb);
            s_diff(c, "%s: %s != %s", path, ea ? ea->name : "?", eb ? eb->name : "?");
        }
        break;
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (*(const int32_t *)pa != *(const int32_t *)pb)
            s_diff(c, "%s: %d != %d", path, *(const int32_t *)pa, *(const int32_t *)pb);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (*(const int64_t *)pa != *(const int64_t *)pb)
            s_diff(c, "%s: %lld != %lld", path, (long long)*(const int64_t *)pa,
                   (long long)*(const int64_t *)pb);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (!*(const protobuf_c_boolean *)pa != !*(const protobuf_c_boolean *)pb)
            s_diff(c, "%s: differs", path);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        if (*(const float *)pa != *(const float *)pb)
            s_diff(c, "%s: %g != %g", path, *(const float *)pa, *(const float *)pb);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (*(const double *)pa != *(const double *)pb)
            s_diff(c, "%s: %.9g != %.9g", path, *(const double *)pa, *(const double *)pb);
        break;
    case PROTOBUF_C_TYPE_STRING: {
        const char *sa = s_str_or_empty(*(char *const *)pa);
        const char *sb = s_str_or_empty(*(char *const *)pb);
        if (strcmp(sa, sb) != 0)
            s_diff(c, "%s: '%s' != '%s'", path, sa, sb);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *ba = pa, *bb = pb;
        if (ba->len != bb->len || (ba->len && memcmp(ba->data, bb->data, ba->len)))
            s_diff(c, "%s: bytes differ", path);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        s_cmp_msg(c, path, *(ProtobufCMessage *const *)pa, *(ProtobufCMessage *const *)pb);
        break;
    }
}

static size_t s_value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

/* Values the target cannot or need not carry identically, compared their own way. */
static int s_cmp_special(s_cmp *c, const char *path, const ProtobufCMessageDescriptor *d,
                         const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    if (d == &google__protobuf__timestamp__descriptor) {
        const pg_timestamp *ta = (const pg_timestamp *)a, *tb = (const pg_timestamp *)b;
        int64_t sa = ta ? ta->seconds : 0, sb = tb ? tb->seconds : 0;
        int32_t na = ta ? ta->nanos : 0, nb = tb ? tb->nanos : 0;
        if (c->seconds)
            na = nb = 0;
        if (sa != sb || na / 1000000 != nb / 1000000) {
            GDateTime *ga = g_date_time_new_from_unix_utc(sa),
                      *gb = g_date_time_new_from_unix_utc(sb);
            char *fa = ta ? g_date_time_format_iso8601(ga) : g_strdup("absent");
            char *fb = tb ? g_date_time_format_iso8601(gb) : g_strdup("absent");
            s_diff(c, "%s: %s != %s", path, fa, fb);
            g_free(fa);
            g_free(fb);
            g_date_time_unref(ga);
            g_date_time_unref(gb);
        }
        return 1;
    }
    if (d == &polegate__pole__v1__geo_point__descriptor) {
        const Polegate__Pole__V1__GeoPoint *ga = (const void *)a, *gb = (const void *)b;
        if (!ga || !gb) {
            if (ga != gb)
                s_diff(c, "%s: %s != %s", path, ga ? "a position" : "absent",
                       gb ? "a position" : "absent");
            return 1;
        }
        double m = s_metres(ga->lat, ga->lon, gb->lat, gb->lon);
        if (m > c->max_metres)
            s_diff(c, "%s: (%.6f, %.6f) and (%.6f, %.6f) are %.1f m apart", path, ga->lat, ga->lon,
                   gb->lat, gb->lon, m);
        return 1;
    }
    if (d == &polegate__pole__v1__grid_reference__descriptor) {
        /* Where both sides know the WGS 84 position it was compared; a grid
         * reference is then only a source's original form. */
        return 1;
    }
    if (d == &polegate__pole__v1__name__descriptor) {
        char *na = s_name_norm(c, (const void *)a), *nb = s_name_norm(c, (const void *)b);
        if (strcmp(na, nb) != 0)
            s_diff(c, "%s: '%s' != '%s'", path, na, nb);
        g_free(na);
        g_free(nb);
        return 1;
    }
    return 0;
}

static ProtobufCMessage *s_default(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = g_malloc0(d->sizeof_message);
    d->message_init(m);
    return m;
}

/* Fields of EntityUpdate that are ids and bookkeeping, not the record's state. */
static int s_ignored(const char *path)
{
    static const char *const skip[] = {"id",          "operation", "version", "origin",
                                       "merged_from", "kind",      NULL};
    for (int i = 0; skip[i]; i++)
        if (!strcmp(path, skip[i]))
            return 1;
    return 0;
}

static void s_cmp_msg(s_cmp *c, const char *path, const ProtobufCMessage *a,
                      const ProtobufCMessage *b)
{
    if (!a && !b)
        return;
    const ProtobufCMessageDescriptor *d = (a ? a : b)->descriptor;
    if (s_cmp_special(c, path, d, a, b))
        return;
    ProtobufCMessage *da = a ? NULL : s_default(d), *db = b ? NULL : s_default(d);
    const char *ma = (const char *)(a ? a : da), *mb = (const char *)(b ? b : db);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        char *sub = *path ? g_strdup_printf("%s.%s", path, f->name) : g_strdup(f->name);
        if (!*path && s_ignored(sub)) {
            g_free(sub);
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t ca = *(const uint32_t *)(ma + f->quantifier_offset);
            uint32_t cb = *(const uint32_t *)(mb + f->quantifier_offset);
            if (ca == f->id && cb == f->id)
                s_cmp_value(c, sub, f, ma + f->offset, mb + f->offset);
            else if (ca == f->id || cb == f->id)
                s_diff(c, "%s: %s != %s", sub, ca == f->id ? "present" : "absent",
                       cb == f->id ? "present" : "absent");
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t na = *(const size_t *)(ma + f->quantifier_offset);
            size_t nb = *(const size_t *)(mb + f->quantifier_offset);
            const char *aa = *(char *const *)(ma + f->offset);
            const char *ab = *(char *const *)(mb + f->offset);
            size_t sz = s_value_size(f);
            if (na != nb)
                s_diff(c, "%s: %zu values != %zu values", sub, na, nb);
            for (size_t k = 0; k < na && k < nb; k++) {
                char *item = g_strdup_printf("%s[%zu]", sub, k);
                s_cmp_value(c, item, f, aa + k * sz, ab + k * sz);
                g_free(item);
            }
        } else {
            s_cmp_value(c, sub, f, ma + f->offset, mb + f->offset);
        }
        g_free(sub);
    }
    g_free(da);
    g_free(db);
}

/* The content key of a record: kind and what identifies it to a person reading it. */
static char *s_key(const pg_entity_update *e)
{
    GString *s = g_string_new(s_kind_name(e->kind));
    g_string_append_c(s, '|');
    switch (e->body_case) {
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON: {
        const Polegate__Pole__V1__Person *p = e->person;
        const pg_date *dob = p->date_of_birth;
        g_string_append_printf(s, "%s|%d-%d-%d", p->name ? s_str_or_empty(p->name->surname) : "",
                               dob ? dob->year : 0, dob ? dob->month : 0, dob ? dob->day : 0);
        break;
    }
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION:
        g_string_append_printf(s, "%s|%s|%s|%s", s_str_or_empty(e->location->postcode),
                               s_str_or_empty(e->location->premises),
                               s_str_or_empty(e->location->street),
                               s_str_or_empty(e->location->description));
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_VEHICLE:
        g_string_append(s, s_str_or_empty(e->vehicle->vrm));
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_ITEM:
        g_string_append_printf(s, "%s|%s", s_str_or_empty(e->item->description),
                               s_str_or_empty(e->item->serial_number));
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_WEAPON:
        g_string_append_printf(s, "%s|%s", s_str_or_empty(e->weapon->description),
                               s_str_or_empty(e->weapon->serial_number));
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_TELEPHONE:
        g_string_append(s, s_str_or_empty(e->telephone->number));
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_OCCURRENCE:
        g_string_append(s, s_str_or_empty(e->occurrence->reference));
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_CUSTODY:
        g_string_append(s, s_str_or_empty(e->custody->reference));
        break;
    case POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_INTELLIGENCE:
        g_string_append(s, s_str_or_empty(e->intelligence->reference));
        break;
    default:
        break;
    }
    char *up = g_utf8_strup(s->str, -1);
    g_string_free(s, TRUE);
    return up;
}

/* key -> id of the live records of m; a key held by two records maps to "" (ambiguous). */
static GHashTable *s_keys(const pg_rms_model *m, GHashTable *skip)
{
    GHashTable *keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, m->recs);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        const s_rec *r = v;
        if (r->deleted || !r->entity || g_hash_table_contains(skip, k))
            continue;
        char *key = s_key(r->entity);
        if (g_hash_table_contains(keys, key))
            g_hash_table_replace(keys, key, (gpointer) "");
        else
            g_hash_table_insert(keys, key, k);
    }
    return keys;
}

static const char *s_label(const pg_rms_model *m, const char *id)
{
    const s_rec *r = g_hash_table_lookup(m->recs, id);
    return s_kind_name(r ? r->kind : 0);
}

/* Match the live records of a and b: given pairs first, then by content key. Fills
 * a2b and b2a (id -> id) and reports the records left over. */
static void s_match_records(s_cmp *c, const pg_rms_model *a, const pg_rms_model *b,
                            const char *const *pairs, GHashTable *a2b, GHashTable *b2a)
{
    for (size_t i = 0; pairs && pairs[i] && pairs[i + 1]; i += 2) {
        g_hash_table_insert(a2b, (gpointer)pairs[i], (gpointer)pairs[i + 1]);
        g_hash_table_insert(b2a, (gpointer)pairs[i + 1], (gpointer)pairs[i]);
    }
    GHashTable *ka = s_keys(a, a2b), *kb = s_keys(b, b2a);
    GPtrArray *sorted = s_sorted_keys(ka);
    for (guint i = 0; i < sorted->len; i++) {
        const char *key = sorted->pdata[i];
        const char *ida = g_hash_table_lookup(ka, key), *idb = g_hash_table_lookup(kb, key);
        if (!*ida || (idb && !*idb))
            s_diff(c, "record key %s: held by more than one record, cannot match", key);
        else if (!idb)
            s_diff(c, "record %s %s (%s): not in b", s_label(a, ida), ida, key);
        else {
            g_hash_table_insert(a2b, (gpointer)ida, (gpointer)idb);
            g_hash_table_insert(b2a, (gpointer)idb, (gpointer)ida);
        }
    }
    g_ptr_array_free(sorted, TRUE);
    sorted = s_sorted_keys(kb);
    for (guint i = 0; i < sorted->len; i++) {
        const char *idb = g_hash_table_lookup(kb, sorted->pdata[i]);
        if (*idb && !g_hash_table_contains(b2a, idb))
            s_diff(c, "record %s %s (%s): not in a", s_label(b, idb), idb,
                   (char *)sorted->pdata[i]);
    }
    g_ptr_array_free(sorted, TRUE);
    g_hash_table_destroy(ka);
    g_hash_table_destroy(kb);
}

static void s_cmp_records(s_cmp *c, const pg_rms_model *a, const pg_rms_model *b, GHashTable *a2b)
{
    GPtrArray *ids = s_sorted_keys(a2b);
    for (guint i = 0; i < ids->len; i++) {
        const char *ida = ids->pdata[i], *idb = g_hash_table_lookup(a2b, ida);
        const pg_entity_update *ea = pg_rms_model_get(a, ida), *eb = pg_rms_model_get(b, idb);
        char *what = g_strdup_printf("record %s %s ~ %s", s_label(a, ida), ida, idb);
        c->what = what;
        if (!ea || !eb)
            s_diff(c, "%s", !ea ? "not a live record in a" : "not a live record in b");
        else if (ea->kind != eb->kind)
            s_diff(c, "kind %s != %s", s_kind_name(ea->kind), s_kind_name(eb->kind));
        else
            s_cmp_msg(c, "", &ea->base, &eb->base);
        c->what = NULL;
        g_free(what);
    }
    g_ptr_array_free(ids, TRUE);
}

/* The link of `from` (another model) in `to` through map, or NULL; *key gets the
 * mapped link's key ("" when an end has no counterpart). */
static const s_link *s_link_mapped(const pg_rms_model *to, const s_link *l, GHashTable *map,
                                   char **key)
{
    const char *f = g_hash_table_lookup(map, l->from), *t = g_hash_table_lookup(map, l->to);
    if (!f || !t) {
        *key = g_strdup("");
        return NULL;
    }
    *key = g_strdup_printf("%s|%d|%s", f, l->role, t);
    return g_hash_table_lookup(to->links, *key);
}

static void s_cmp_links(s_cmp *c, const pg_rms_model *a, const pg_rms_model *b, GHashTable *a2b,
                        GHashTable *b2a)
{
    GPtrArray *keys = s_sorted_keys(a->links);
    for (guint i = 0; i < keys->len; i++) {
        const s_link *la = g_hash_table_lookup(a->links, keys->pdata[i]);
        char *key;
        const s_link *lb = s_link_mapped(b, la, a2b, &key);
        if (!*key)
            s_diff(c, "link %s -%s-> %s: an end has no counterpart in b", la->from,
                   s_role_name(la->role), la->to);
        else if (!lb)
            s_diff(c, "link %s -%s-> %s: not in b", la->from, s_role_name(la->role), la->to);
        else {
            char fa[16], fb[16], ta[16], tb[16];
            s_date_str(&la->valid_from, fa);
            s_date_str(&lb->valid_from, fb);
            s_date_str(&la->valid_to, ta);
            s_date_str(&lb->valid_to, tb);
            if (strcmp(fa, fb) || strcmp(ta, tb))
                s_diff(c, "link %s -%s-> %s: valid [%s, %s] != [%s, %s]", la->from,
                       s_role_name(la->role), la->to, fa, ta, fb, tb);
        }
        g_free(key);
    }
    g_ptr_array_free(keys, TRUE);
    keys = s_sorted_keys(b->links);
    for (guint i = 0; i < keys->len; i++) {
        const s_link *lb = g_hash_table_lookup(b->links, keys->pdata[i]);
        char *key;
        if (!s_link_mapped(a, lb, b2a, &key))
            s_diff(c, "link %s -%s-> %s: not in a", lb->from, s_role_name(lb->role), lb->to);
        g_free(key);
    }
    g_ptr_array_free(keys, TRUE);
}

size_t pg_rms_model_compare(const pg_rms_model *a, const pg_rms_model *b,
                            const pg_rms_compare_opts *opts, pg_buf *diff)
{
    const char *target = opts && opts->target ? opts->target : b->adapter->format;
    s_cmp c = {
        .diff = diff,
        .upper = !strcmp(target, "nx5"),
        .max_given = !strcmp(target, "nx5") ? 3 : 5,
        .seconds = !a->atx || !b->atx,
        .max_metres = opts && opts->max_metres > 0 ? opts->max_metres : 5.0,
    };
    GHashTable *a2b = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTable *b2a = g_hash_table_new(g_str_hash, g_str_equal);
    s_match_records(&c, a, b, opts ? opts->id_pairs : NULL, a2b, b2a);
    s_cmp_records(&c, a, b, a2b);
    s_cmp_links(&c, a, b, a2b, b2a);
    g_hash_table_destroy(a2b);
    g_hash_table_destroy(b2a);
    return c.n;
}
