/* The adapter conformance suite: the properties every pg_adapter_ops must have, written
 * once and run against each registered adapter (pg_adapter_at). */
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_run.h"
#include "idstore.h"
#include "pole_gen.h"
#include "polegate/adapter.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/pole.h"
#include "store.h"

#define S_NOW_MS 1793534400000LL
#define S_KINDS 9 /* EntityKind PERSON .. INTELLIGENCE */

static char e[PG_ERRSTR_SIZE];

/* One adapter under test, with a store and id map as the partner direction has them. */
typedef struct s_fix {
    const pg_adapter_ops *a;
    char dir[64];
    pg_store *store;
    pg_idstore *ids;
    pg_adapter_ctx ctx;
} s_fix;

static void s_open(s_fix *f, const pg_adapter_ops *a)
{
    *f = (s_fix){.a = a, .dir = "/tmp/pg-test-conformance-XXXXXX"};
    e[0] = '\0';
    ck_assert_msg(mkdtemp(f->dir) && (f->store = pg_store_new(f->dir, 0, e, sizeof e)),
                  "a store in %s: %s", f->dir, e);
    pg_store_set_durable(f->store, 0);
    pg_idstore_config icfg = {.format = a->format};
    f->ids = pg_idstore_new(f->store, &icfg, e, sizeof e);
    ck_assert_msg(f->ids != NULL, "%s: %s", a->name, e);
    pg_idstore_use(f->ids, NULL);
    f->ctx = (pg_adapter_ctx){.idmap = pg_idstore_iface(f->ids), .now_ms = S_NOW_MS};
    if (a->batches)
        f->ctx.batch = "conformance";
}

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void s_close(s_fix *f)
{
    pg_idstore_destroy(&f->ids);
    pg_store_destroy(&f->store);
    nftw(f->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Every message of a file, decoded into one changeset. */
typedef struct s_split {
    const pg_adapter_ops *a;
    pg_changeset *cs;
    size_t messages;
} s_split;

static int s_decode_one(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_split *s = arg;
    s->messages++;
    int rc = s->a->decode(NULL, msg, len, s->cs, e, sizeof e);
    ck_assert_msg(rc == 0, "%s: message %zu: %s\n%.*s", s->a->name, pos, e, (int)len,
                  (const char *)msg);
    return 0;
}

/* ------------------------------------------------------------ the declaration */

START_TEST(test_declares_itself)
{
    const pg_adapter_ops *a = pg_adapter_at((size_t)_i);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(a->name);
    ck_assert_ptr_nonnull(a->format);
    ck_assert_ptr_nonnull(a->system);
    ck_assert_uint_gt(a->max_message_size, 0);
    ck_assert_ptr_nonnull(a->decode);
    ck_assert_ptr_nonnull(a->encode);
    ck_assert_ptr_nonnull(a->split);
    ck_assert_ptr_nonnull(a->extensions);
    ck_assert_ptr_nonnull(a->extensions[0]);
    ck_assert_ptr_nonnull(a->messages);
    ck_assert_ptr_nonnull(a->force_path);
    ck_assert_ptr_nonnull(a->settings);
    ck_assert_ptr_nonnull(a->native_type);
    ck_assert_ptr_eq(pg_adapter_find(a->name), a);
    ck_assert_ptr_eq(pg_adapter_for_system(a->system), a);
    ck_assert_ptr_eq(pg_adapter_find(a->format), a);
    char file[64];
    for (const char *const *x = a->extensions; *x; x++) {
        snprintf(file, sizeof file, "records.%s", *x);
        ck_assert_ptr_eq(pg_adapter_for_file(file), a);
    }
    /* every setting has a default its own check accepts */
    for (const pg_adapter_setting *s = a->settings; s->key; s++) {
        ck_assert_ptr_nonnull(s->def);
        ck_assert_ptr_nonnull(s->help);
        ck_assert_msg(!s->check || s->check(s->def, e, sizeof e) == 0, "%s.%s: %s", a->name, s->key,
                      e);
    }
}
END_TEST

/* ------------------------------------------------------------ ids */

START_TEST(test_ids_have_their_shape)
{
    const pg_adapter_ops *a = pg_adapter_at((size_t)_i);
    ck_assert_ptr_nonnull(a->ids);
    ck_assert_ptr_nonnull(a->ids->shape);
    const char *uuid = "19d2bfc8-4ff4-5442-8c3e-7d1c3f4a9b01";
    for (int kind = 1; kind <= S_KINDS; kind++) {
        char series[16] = "", id[64];
        uint64_t n = 0;
        if (a->ids->series) {
            ck_assert_msg(a->ids->series(kind, series, sizeof series, e, sizeof e) == 0, "%s: %s",
                          a->name, e);
            n = 1;
        }
        ck_assert_msg(a->ids->candidate(NULL, uuid, kind, n, id, sizeof id, e, sizeof e) == 0,
                      "%s: %s", a->name, e);
        ck_assert_msg(a->ids->valid(kind, id), "%s: '%s' is not %s", a->name, id, a->ids->shape);
        ck_assert_int_eq(a->ids->valid(0, id), 1);
        /* an id that says its kind says the right one */
        if (a->ids->kind_of(id))
            ck_assert_int_eq(a->ids->kind_of(id), kind);
        /* the next candidate is another id */
        char next[64];
        ck_assert_int_eq(a->ids->candidate(NULL, uuid, kind, n + 1, next, sizeof next, e, sizeof e),
                         0);
        ck_assert_str_ne(id, next);
    }
    ck_assert_int_eq(a->ids->valid(0, ""), 0);
    ck_assert_int_eq(a->ids->valid(0, "not an id of any records system"), 0);
}
END_TEST

/* ------------------------------------------------------------ round trip */

/* canonical -> native -> canonical for one entity of every kind: the same entity comes
 * back, named by the id the map gave it. */
START_TEST(test_round_trip_every_kind)
{
    s_fix f;
    s_open(&f, pg_adapter_at((size_t)_i));
    for (int kind = 1; kind <= S_KINDS; kind++) {
        pg_changeset *in = pg_changeset_new(), *back = pg_changeset_new();
        pg_buf out = PG_BUF_INIT;
        pg_gen_seed((uint64_t)kind);
        pg_gen_arena(in->arena);
        pg_entity_update *u = pg_gen_entity(kind, 1000 + kind);
        ck_assert_int_eq(pg_changeset_add_entity(in, u, 1), 0);
        int rc = f.a->encode(&f.ctx, in, &out, e, sizeof e);
        ck_assert_msg(rc == 0, "%s: kind %d: encode: %s", f.a->name, kind, e);
        s_split sp = {.a = f.a, .cs = back};
        ck_assert_int_eq(f.a->split(out.data, out.len, s_decode_one, &sp), 0);
        ck_assert_uint_eq(sp.messages, 1);
        ck_assert_uint_eq(back->count, 1);
        const pg_change *ch = &back->changes[0];
        ck_assert_int_eq(ch->type, PG_CHANGE_ENTITY);
        const pg_entity_update *got = ch->entity;
        ck_assert_int_eq(got->kind, kind);
        ck_assert_int_eq(got->operation, u->operation);
        ck_assert_ptr_nonnull(got->origin);
        ck_assert_str_eq(got->origin->force, u->origin->force);
        ck_assert_str_eq(got->origin->system, f.a->system);
        char local[64];
        ck_assert_int_eq(pg_idstore_lookup(f.ids, NULL, u->id, local, sizeof local, e, sizeof e),
                         0);
        ck_assert_str_eq(got->origin->native_id, local);
        ck_assert_int_eq(f.a->ids->valid(kind, local), 1);
        ck_assert_ptr_nonnull(got->marking);
        ck_assert_int_eq(got->marking->classification, u->marking->classification);
        ck_assert_int_eq(got->marking->handling, u->marking->handling);
        pg_buf_free(&out);
        pg_changeset_destroy(&in);
        pg_changeset_destroy(&back);
    }
    s_close(&f);
}
END_TEST

/* ------------------------------------------------------------ ids from native ids */

/* Whose entity a link end is, recomputed as a receiver does (gateway/inbound/partner.c:
 * a partner states links between entities of its own origin only): every entity's id
 * is the UUIDv5 of its origin with the id space native_type gives its kind, and so is
 * each end of every link, from the link's origin force and system and the end's native
 * id. Over every fixture of the adapter's format. */
static void s_assert_recomputes(const pg_adapter_ops *a, const char *force, const char *system,
                                int kind, const char *native_id, const char *id)
{
    const char *type = a->native_type(kind);
    char again[PG_UUID_STR_SIZE];
    ck_assert_msg(type && native_id &&
                      pg_identity_entity(force, system, type, native_id, again) == 0 &&
                      !strcmp(again, id),
                  "%s: %s (kind %d, %s) is not the entity id of %s/%s/%s/%s", a->name, id, kind,
                  native_id ? native_id : "no native id", force, system, type ? type : "-",
                  native_id ? native_id : "-");
}

START_TEST(test_ids_recompute_from_native)
{
    const pg_adapter_ops *a = pg_adapter_at((size_t)_i);
    DIR *dir = opendir(PG_FIXTURES);
    ck_assert_ptr_nonnull(dir);
    size_t entities = 0, links = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (pg_adapter_for_file(de->d_name) != a)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", PG_FIXTURES, de->d_name);
        FILE *fp = fopen(path, "rb");
        ck_assert_ptr_nonnull(fp);
        static uint8_t data[1 << 20];
        size_t len = fread(data, 1, sizeof data, fp);
        fclose(fp);
        pg_changeset *cs = pg_changeset_new();
        s_split sp = {.a = a, .cs = cs};
        ck_assert_int_eq(a->split(data, len, s_decode_one, &sp), 0);
        for (size_t i = 0; i < cs->count; i++) {
            const pg_change *ch = &cs->changes[i];
            if (ch->type == PG_CHANGE_ENTITY) {
                const pg_entity_update *u = ch->entity;
                ck_assert_str_eq(u->origin->native_type, a->native_type((int)u->kind));
                s_assert_recomputes(a, u->origin->force, u->origin->system, (int)u->kind,
                                    u->origin->native_id, u->id);
                entities++;
                continue;
            }
            const pg_link_update *l = ch->link;
            s_assert_recomputes(a, l->origin->force, l->origin->system, (int)l->from->kind,
                                l->from->native_id, l->from->id);
            s_assert_recomputes(a, l->origin->force, l->origin->system, (int)l->to->kind,
                                l->to->native_id, l->to->id);
            links++;
        }
        pg_changeset_destroy(&cs);
    }
    closedir(dir);
    ck_assert_msg(entities > 0 && links > 0, "%s: no fixture with entities and links", a->name);
}
END_TEST

/* ------------------------------------------------------------ reasons carry no content */

/* A partner's record can hold anything the model can: each string, number and position
 * of a generated entity of every kind is replaced, one at a time, by a distinctive
 * value, and the entity encoded. When encode refuses it, its reason (a partner dead
 * letter's, a log line's) names the member and the rule, never the value, and breaks
 * no line. The decode side: tests/test_reasons.py. */
#define S_POISON "QZXa\nQZXb forged: line"

/* Poison leaf number *left of m (counting down), depth first; 1 when done. */
static int s_poison(ProtobufCMessage *m, int *left)
{
    const ProtobufCMessageDescriptor *md = m->descriptor;
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        char *at = (char *)m + f->offset;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(uint32_t *)((char *)m + f->quantifier_offset) != f->id)
            continue;
        size_t n = f->label == PROTOBUF_C_LABEL_REPEATED
                       ? *(size_t *)((char *)m + f->quantifier_offset)
                       : 1;
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            at = n ? *(char **)at : NULL;
        for (size_t k = 0; at && k < n; k++) {
            switch (f->type) {
            case PROTOBUF_C_TYPE_MESSAGE: {
                ProtobufCMessage *sub = ((ProtobufCMessage **)at)[k];
                if (sub && s_poison(sub, left))
                    return 1;
                continue;
            }
            case PROTOBUF_C_TYPE_STRING:
                if ((*left)-- == 0) {
                    ((char **)at)[k] = S_POISON;
                    return 1;
                }
                continue;
            case PROTOBUF_C_TYPE_INT32:
            case PROTOBUF_C_TYPE_SINT32:
                if ((*left)-- == 0) {
                    ((int32_t *)at)[k] = 987654;
                    return 1;
                }
                continue;
            case PROTOBUF_C_TYPE_INT64:
            case PROTOBUF_C_TYPE_SINT64:
                if ((*left)-- == 0) {
                    ((int64_t *)at)[k] = 98765432109LL;
                    return 1;
                }
                continue;
            case PROTOBUF_C_TYPE_DOUBLE:
                if ((*left)-- == 0) {
                    ((double *)at)[k] = -91.123456;
                    return 1;
                }
                continue;
            default:
                continue;
            }
        }
    }
    return 0;
}

START_TEST(test_encode_reasons_carry_no_content)
{
    s_fix f;
    s_open(&f, pg_adapter_at((size_t)_i));
    size_t refused = 0;
    for (int kind = 1; kind <= S_KINDS; kind++) {
        for (int leaf = 0;; leaf++) {
            pg_changeset *in = pg_changeset_new();
            pg_buf out = PG_BUF_INIT;
            pg_gen_seed((uint64_t)kind);
            pg_gen_arena(in->arena);
            pg_entity_update *u = pg_gen_entity(kind, 2000 + kind);
            int left = leaf;
            int poisoned = s_poison(&u->base, &left);
            if (poisoned) {
                ck_assert_int_eq(pg_changeset_add_entity(in, u, 1), 0);
                e[0] = '\0';
                if (f.a->encode(&f.ctx, in, &out, e, sizeof e) < 0) {
                    refused++;
                    ck_assert_msg(!strstr(e, "QZX") && !strstr(e, "98765") && !strstr(e, "91.12") &&
                                      !strchr(e, '\n'),
                                  "%s: kind %d, leaf %d: a reason with content: %s", f.a->name,
                                  kind, leaf, e);
                }
            }
            pg_buf_free(&out);
            pg_changeset_destroy(&in);
            if (!poisoned)
                break;
        }
    }
    ck_assert_msg(refused > 0, "%s: no poisoned value was refused", f.a->name);
    s_close(&f);
}
END_TEST

/* ------------------------------------------------------------ invalid input */

/* All or nothing, with a reason: decode of each bad input fails, says why, and leaves
 * the changeset as it was. */
static void s_expect_rejected(const pg_adapter_ops *a, const uint8_t *data, size_t len,
                              const char *what)
{
    pg_changeset *cs = pg_changeset_new();
    pg_gen_seed(1);
    pg_gen_arena(cs->arena);
    ck_assert_int_eq(pg_changeset_add_entity(cs, pg_gen_entity(1, 1), 1), 0);
    e[0] = '\0';
    int rc = a->decode(NULL, data, len, cs, e, sizeof e);
    ck_assert_msg(rc < 0, "%s: %s accepted", a->name, what);
    ck_assert_msg(rc == PG_EINVALID || rc == PG_ETOOBIG, "%s: %s: %s", a->name, what,
                  pg_err_name(rc));
    ck_assert_msg(e[0] != '\0', "%s: %s rejected without a reason", a->name, what);
    ck_assert_uint_eq(cs->count, 1);
    pg_changeset_destroy(&cs);
}

START_TEST(test_invalid_input_rejected_with_a_reason)
{
    s_fix f;
    s_open(&f, pg_adapter_at((size_t)_i));
    const pg_adapter_ops *a = f.a;
    s_expect_rejected(a, (const uint8_t *)"", 0, "an empty message");
    s_expect_rejected(a, (const uint8_t *)"\x01\x02garbage\xff", 10, "garbage");
    /* a valid message cut in half */
    pg_changeset *in = pg_changeset_new();
    pg_buf out = PG_BUF_INIT;
    pg_gen_seed(3);
    pg_gen_arena(in->arena);
    ck_assert_int_eq(pg_changeset_add_entity(in, pg_gen_entity(1, 42), 1), 0);
    ck_assert_msg(a->encode(&f.ctx, in, &out, e, sizeof e) == 0, "%s", e);
    s_expect_rejected(a, out.data, out.len / 2, "half a message");
    /* more than the adapter takes */
    size_t big = a->max_message_size + 1;
    uint8_t *huge = malloc(big);
    ck_assert_ptr_nonnull(huge);
    memset(huge, ' ', big);
    memcpy(huge, out.data, out.len);
    s_expect_rejected(a, huge, big, "a message over the adapter's maximum size");
    free(huge);
    pg_buf_free(&out);
    pg_changeset_destroy(&in);
    s_close(&f);
}
END_TEST

/* ------------------------------------------------------------ what cannot be carried */

/* Encode refuses, with a reason and nothing written, a change the format cannot carry:
 * an entity of no kind. */
START_TEST(test_encode_refuses_what_it_cannot_carry)
{
    s_fix f;
    s_open(&f, pg_adapter_at((size_t)_i));
    pg_changeset *in = pg_changeset_new();
    pg_buf out = PG_BUF_INIT;
    pg_gen_seed(5);
    pg_gen_arena(in->arena);
    pg_entity_update *u = pg_gen_entity(1, 7);
    u->kind = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_UNSPECIFIED;
    ck_assert_int_eq(pg_changeset_add_entity(in, u, 1), 0);
    e[0] = '\0';
    int rc = f.a->encode(&f.ctx, in, &out, e, sizeof e);
    ck_assert_msg(rc < 0, "%s: an entity of no kind encoded", f.a->name);
    ck_assert_msg(e[0] != '\0', "%s: refused without a reason", f.a->name);
    pg_buf_free(&out);
    pg_changeset_destroy(&in);
    s_close(&f);
}
END_TEST

int main(void)
{
    size_t n = 0;
    while (pg_adapter_at(n))
        n++;
    TCase *tc = tcase_create("every adapter");
    tcase_set_timeout(tc, 120);
    /* _i is the index of the adapter under test */
    tcase_add_loop_test(tc, test_declares_itself, 0, (int)n);
    tcase_add_loop_test(tc, test_ids_have_their_shape, 0, (int)n);
    tcase_add_loop_test(tc, test_round_trip_every_kind, 0, (int)n);
    tcase_add_loop_test(tc, test_ids_recompute_from_native, 0, (int)n);
    tcase_add_loop_test(tc, test_encode_reasons_carry_no_content, 0, (int)n);
    tcase_add_loop_test(tc, test_invalid_input_rejected_with_a_reason, 0, (int)n);
    tcase_add_loop_test(tc, test_encode_refuses_what_it_cannot_carry, 0, (int)n);
    Suite *s = suite_create("conformance");
    suite_add_tcase(s, tc);
    return pg_check_run(s);
}
