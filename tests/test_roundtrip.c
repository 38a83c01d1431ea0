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
#include "pole_gen.h"
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
/* Rounds; PG_ROUNDTRIP_ROUNDS overrides (a longer soak). */
#define S_ROUNDS 200

static char e[PG_ERRSTR_SIZE];

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
        n->forenames[keep - 1] = pg_gen_str(rest->str);
        n->n_forenames = keep;
        g_string_free(rest, TRUE);
    }
}

static void s_upper(char **s)
{
    if (*s && **s) {
        gchar *u = g_utf8_strup(*s, -1);
        *s = pg_gen_str(u);
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
             * rule (in UK time, whose year is UTC's: London keeps GMT at New Year), so
             * one that would come back as another ID is left out */
            char shortf[12], longf[14];
            struct tm tm;
            time_t secs = (time_t)u->modified_at->seconds;
            gmtime_r(&secs, &tm);
            ck_assert_int_eq(pg_pnc_long_to_short(p->pnc_id, shortf, e, sizeof e), 0);
            ck_assert_int_eq(pg_pnc_short_to_long(shortf, tm.tm_year + 1900, longf, e, sizeof e),
                             0);
            p->pnc_id = pg_gen_str(strcmp(longf, p->pnc_id) ? "" : longf);
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
    pg_gen_seed(seed);
    pg_changeset_reset(t->orig);
    pg_changeset_reset(t->c1);
    pg_changeset_reset(t->c2);
    pg_buf_reset(&t->atx);
    pg_buf_reset(&t->nx5);
    pg_gen_changeset(t->orig);

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
        pg_pb_arena_allocator(t->orig->arena, &alloc);
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
    pg_gen_seed(42);
    pg_gen_changeset(a);
    pg_gen_seed(42);
    pg_gen_changeset(b);
    ck_assert_int_eq(pg_adapter_athena.encode(&ctx, a, &x, e, sizeof e), 0);
    ck_assert_int_eq(pg_adapter_athena.encode(&ctx, b, &y, e, sizeof e), 0);
    ck_assert_uint_eq(x.len, y.len);
    ck_assert_int_eq(memcmp(x.data, y.data, x.len), 0);
    ck_assert_uint_gt(a->count, PG_GEN_ENTITIES);
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
    pg_gen_seed(7);
    pg_gen_arena(cs->arena);
    pg_entity_update *p = pg_gen_entity(K(PERSON), 1);
    pg_entity_update *q = pg_gen_entity(K(PERSON), 1);
    GString *diff = g_string_new(NULL);
    s_compare(&p->base, &p->base, "same", diff);
    ck_assert_uint_eq(diff->len, 0);
    q->person->name = p->person->name;
    q->person->sex = p->person->sex == 2 ? 3 : 2;
    s_compare(&p->person->base, &q->person->base, "p", diff);
    ck_assert_ptr_nonnull(strstr(diff->str, "p.sex: "));
    pg_entity_update *l1 = pg_gen_entity(K(LOCATION), 2), *l2 = pg_gen_entity(K(LOCATION), 2);
    if (!l1->location->geo)
        l1->location->geo =
            PG_PB_NEW(cs->arena, Polegate__Pole__V1__GeoPoint, polegate__pole__v1__geo_point);
    l2->location->geo =
        PG_PB_NEW(cs->arena, Polegate__Pole__V1__GeoPoint, polegate__pole__v1__geo_point);
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
