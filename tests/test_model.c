/* Unit tests for the model library: errors, arena, buffers, identity, changesets. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/arena.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/pole.h"
#include "polegate/roles.h"

START_TEST(test_error_table)
{
    ck_assert_str_eq(pg_strerror(0), "success");
    ck_assert_str_eq(pg_strerror(PG_EINVALID), "invalid message");
    ck_assert_str_eq(pg_err_name(PG_ERETRY), "PG_ERETRY");
    ck_assert_str_eq(pg_strerror(-9999), "unknown error");
    ck_assert_int_lt(PG_ENOMEM, 0);
    ck_assert_int_ne(PG_ENOMEM, PG_EINVALID);
    char e[PG_ERRSTR_SIZE];
    ck_assert_int_eq(pg_errf(PG_EINVALID, e, sizeof e, "a.b: %s", "bad"), PG_EINVALID);
    ck_assert_str_eq(e, "a.b: bad");
}
END_TEST

START_TEST(test_arena)
{
    pg_arena *a = pg_arena_new(64);
    ck_assert_ptr_nonnull(a);
    char *s = pg_arena_strdup(a, "hello");
    ck_assert_str_eq(s, "hello");
    /* larger than a block: still served */
    char *big = pg_arena_alloc(a, 1000);
    ck_assert_ptr_nonnull(big);
    big[999] = 'x';
    ck_assert_str_eq(pg_arena_sprintf(a, "%d-%s", 42, "x"), "42-x");
    ck_assert_uint_ge(pg_arena_used(a), 1000);
    pg_arena_reset(a);
    ck_assert_uint_eq(pg_arena_used(a), 0);
    ck_assert_ptr_nonnull(pg_arena_alloc(a, 10));
    pg_arena_destroy(&a);
    ck_assert_ptr_null(a);
    pg_arena_destroy(&a); /* twice is fine */
}
END_TEST

START_TEST(test_buf)
{
    pg_buf b = PG_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(pg_buf_printf(&b, "%d,", i), 0);
    ck_assert_uint_eq(strlen((char *)b.data), b.len);
    ck_assert(strncmp((char *)b.data, "0,1,2,", 6) == 0);
    pg_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    pg_buf_puts(&b, "x");
    ck_assert_str_eq((char *)b.data, "x");
    pg_buf_free(&b);
}
END_TEST

START_TEST(test_identity_entity)
{
    char a[PG_UUID_STR_SIZE], b[PG_UUID_STR_SIZE], c[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_identity_entity("ESX", "ATHENA", "PERSON", "P0000123456", a), 0);
    ck_assert_int_eq(pg_identity_entity("ESX", "ATHENA", "PERSON", "P0000123456", b), 0);
    ck_assert_str_eq(a, b);
    /* uuid5(uuid5(URL, "urn:polegate:pole:v1"), "ESX/ATHENA/PERSON/P0000123456"),
     * computed independently with Python's uuid module. */
    ck_assert_str_eq(a, "b98392fb-ca65-5c48-b2b3-35ba8d210d50");
    ck_assert_int_eq(pg_identity_entity("MER", "ATHENA", "PERSON", "P0000123456", c), 0);
    ck_assert_str_ne(a, c);
    ck_assert_int_eq(pg_identity_entity("ESX", "ATHENA", "PERSON", "", c), PG_EINVALID);
    ck_assert_int_eq(pg_identity_entity("ESX", "ATH/ENA", "PERSON", "P1", c), PG_EINVALID);
    ck_assert_int_eq(pg_identity_entity(NULL, "ATHENA", "PERSON", "P1", c), PG_EINVALID);
}
END_TEST

START_TEST(test_identity_link)
{
    char p[PG_UUID_STR_SIZE], l[PG_UUID_STR_SIZE], l2[PG_UUID_STR_SIZE];
    pg_identity_entity("ESX", "ATHENA", "PERSON", "P0000123456", p);
    char loc[PG_UUID_STR_SIZE];
    pg_identity_entity("ESX", "ATHENA", "LOCATION", "L0000000045", loc);
    ck_assert_int_eq(
        pg_identity_link(p, POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS, loc, l), 0);
    ck_assert_int_eq(
        pg_identity_link(p, POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_OTHER_ADDRESS, loc, l2), 0);
    ck_assert_str_ne(l, l2);
    ck_assert_int_eq(pg_identity_link(p, 0, loc, l2), PG_EINVALID);
    ck_assert_int_eq(pg_identity_link(p, 999, loc, l2), PG_EINVALID);
}
END_TEST

START_TEST(test_enum_short)
{
    ck_assert_str_eq(pg_enum_short(&polegate__pole__v1__link_role__descriptor, 1), "HOME_ADDRESS");
    ck_assert_str_eq(pg_enum_short(&polegate__pole__v1__classification__descriptor, 2),
                     "OFFICIAL_SENSITIVE");
    ck_assert_ptr_null(pg_enum_short(&polegate__pole__v1__link_role__descriptor, 999));
}
END_TEST

START_TEST(test_changeset)
{
    pg_changeset *cs = pg_changeset_new();
    ck_assert_ptr_nonnull(cs);
    for (int i = 0; i < 100; i++) {
        pg_entity_update *e =
            PG_PB_NEW(cs->arena, pg_entity_update, polegate__pole__v1__entity_update);
        ck_assert_ptr_nonnull(e);
        e->version = (uint64_t)i;
        ck_assert_int_eq(pg_changeset_add_entity(cs, e, i % 2), 0);
    }
    ck_assert_uint_eq(cs->count, 100);
    ck_assert_uint_eq(cs->changes[99].entity->version, 99);
    ck_assert_int_eq(cs->changes[99].replaces_links, 1);
    pg_changeset_reset(cs);
    ck_assert_uint_eq(cs->count, 0);
    pg_changeset_destroy(&cs);
    ck_assert_ptr_null(cs);
}
END_TEST

START_TEST(test_roles)
{
#define K(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x
#define R(x) POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_##x
    ck_assert(pg_role_allows(R(HOME_ADDRESS), K(PERSON), K(LOCATION)));
    ck_assert(!pg_role_allows(R(HOME_ADDRESS), K(LOCATION), K(PERSON)));
    ck_assert(pg_role_allows(R(OCCURRED_AT), K(CUSTODY), K(LOCATION)));
    ck_assert(!pg_role_allows(R(OCCURRED_AT), K(PERSON), K(LOCATION)));
    ck_assert(!pg_role_allows(R(ASSOCIATE), K(PERSON), 0));
    ck_assert(!pg_role_allows(R(ASSOCIATE), K(PERSON), 99));
    ck_assert(!pg_role_allows(0, K(PERSON), K(PERSON)));
    ck_assert_int_eq(pg_role_only_target(R(STOLEN)), K(ITEM));
    ck_assert_int_eq(pg_role_only_target(R(USED)), 0);
    ck_assert_int_eq(pg_role_only_target(0), 0);
    ck_assert_uint_eq(pg_role_to_kinds(R(USED)), (1u << K(ITEM)) | (1u << K(WEAPON)));
    ck_assert_uint_eq(pg_role_from_kinds(R(DETAINED)), 1u << K(CUSTODY));
    ck_assert_uint_eq(pg_role_from_kinds(0), 0);
    ck_assert_str_eq(pg_role_shape(R(OWNER)), "PERSON -> ITEM, WEAPON, VEHICLE");
    ck_assert_str_eq(pg_role_shape(0), "");
    /* Every role the proto has is in the table. */
    const ProtobufCEnumDescriptor *d = &polegate__pole__v1__link_role__descriptor;
    for (unsigned i = 0; i < d->n_values; i++)
        if (d->values[i].value)
            ck_assert_msg(pg_role_to_kinds(d->values[i].value), "%s", d->values[i].name);
#undef K
#undef R
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_error_table);
    tcase_add_test(tc, test_arena);
    tcase_add_test(tc, test_buf);
    tcase_add_test(tc, test_identity_entity);
    tcase_add_test(tc, test_identity_link);
    tcase_add_test(tc, test_enum_short);
    tcase_add_test(tc, test_changeset);
    tcase_add_test(tc, test_roles);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
