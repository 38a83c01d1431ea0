/* Tests for pg_pbjson_encode: proto3 JSON of canonical updates and of every field
 * type (pbjson_check.py holds the same samples against Google's implementation). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbjson_samples.h"
#include "pbjson_types.pb-c.h"
#include "polegate/error.h"
#include "polegate/pbjson.h"

static pg_arena *s_arena;
static pg_sample s_samples[PG_SAMPLES_MAX];
static size_t s_nsamples;
static pg_buf s_out;

static void s_setup(void)
{
    s_arena = pg_arena_new(0);
    ck_assert_ptr_nonnull(s_arena);
    s_nsamples = pg_samples_build(s_arena, s_samples);
    ck_assert_uint_gt(s_nsamples, 0);
    s_out = (pg_buf)PG_BUF_INIT;
}

static void s_teardown(void)
{
    pg_buf_free(&s_out);
    pg_arena_destroy(&s_arena);
}

/* The JSON of the named sample, in s_out. */
static const char *s_json(const char *name)
{
    const ProtobufCMessage *m = pg_sample_find(s_samples, s_nsamples, name);
    ck_assert_msg(m != NULL, "no sample %s", name);
    pg_buf_reset(&s_out);
    ck_assert_int_eq(pg_pbjson_encode(m, &s_out), 0);
    ck_assert_uint_eq(strlen((const char *)s_out.data), s_out.len);
    return (const char *)s_out.data;
}

static void s_has(const char *json, const char *needle)
{
    ck_assert_msg(strstr(json, needle) != NULL, "expected %s in %s", needle, json);
}

static void s_lacks(const char *json, const char *needle)
{
    ck_assert_msg(strstr(json, needle) == NULL, "did not expect %s in %s", needle, json);
}

/* ---------------------------------------------------------------- canonical model */

START_TEST(test_person_exact)
{
    ck_assert_str_eq(
        s_json("person"),
        "{\"id\":\"6f1c2d3e-4b5a-5c6d-8e7f-0123456789ab\",\"operation\":\"OPERATION_UPSERT\","
        "\"version\":\"3\",\"origin\":{\"force\":\"ESX\",\"system\":\"ATHENA\","
        "\"nativeType\":\"PERSON\",\"nativeId\":\"P0000123456\","
        "\"messageId\":\"8f0b7a6e-3c1d-4b2a-9e5f-0a1b2c3d4e5f\",\"orgUnit\":\"ESX-CID-CHELMSFORD\"}"
        ","
        "\"modifiedAt\":\"2024-11-02T14:35:00.123Z\","
        "\"marking\":{\"classification\":\"CLASSIFICATION_OFFICIAL_SENSITIVE\",\"handling\":"
        "\"HANDLING_P\"},"
        "\"retention\":{\"mopiGroup\":2,\"reviewDate\":{\"year\":2031,\"month\":11,\"day\":2}},"
        "\"kind\":\"ENTITY_KIND_PERSON\",\"person\":{\"name\":{\"surname\":\"O'Brien-Ní Bhriain\","
        "\"forenames\":[\"Zoë\",\"Siân\"]},\"title\":\"Ms\",\"dateOfBirth\":{\"year\":1985,"
        "\"month\":7},"
        "\"placeOfBirth\":\"Cork\",\"sex\":\"SEX_FEMALE\",\"selfDefinedEthnicity\":\"SELF_DEFINED_"
        "ETHNICITY_W2\","
        "\"officerDefinedEthnicity\":\"OFFICER_DEFINED_ETHNICITY_IC1\",\"nationality\":\"IRL\","
        "\"pncId\":\"2003/0123456X\",\"croNumber\":\"012345/"
        "03L\",\"aliases\":[{\"name\":{\"surname\":\"Brien\","
        "\"forenames\":[\"Zoe\"]},\"dateOfBirth\":{\"year\":1985}}],"
        "\"warningMarkers\":[\"WARNING_MARKER_VI\",\"WARNING_MARKER_DR\"],\"occupation\":\"Café "
        "manager\"}}");
}
END_TEST

/* Each body kind is written under its own oneof member name, and no other. */
START_TEST(test_every_body_kind)
{
    static const char *const kinds[] = {"person",     "location", "vehicle",
                                        "item",       "weapon",   "telephone",
                                        "occurrence", "custody",  "intelligence"};
    static const char *const upper[] = {"PERSON",     "LOCATION", "VEHICLE",
                                        "ITEM",       "WEAPON",   "TELEPHONE",
                                        "OCCURRENCE", "CUSTODY",  "INTELLIGENCE"};
    size_t n = sizeof kinds / sizeof kinds[0];
    for (size_t i = 0; i < n; i++) {
        const char *json = s_json(kinds[i]);
        char want[64];
        snprintf(want, sizeof want, "\"kind\":\"ENTITY_KIND_%s\",\"%s\":{", upper[i], kinds[i]);
        s_has(json, want);
        for (size_t k = 0; k < n; k++) {
            snprintf(want, sizeof want, "\"%s\":{", kinds[k]);
            if (k != i)
                s_lacks(json, want);
        }
        ck_assert_int_eq(json[s_out.len - 1], '}');
    }
}
END_TEST

START_TEST(test_location_doubles_and_escapes)
{
    const char *json = s_json("location");
    s_has(json, "\"geo\":{\"lat\":51.72795,\"lon\":0.4723}");
    s_has(json, "\"grid\":{\"easting\":570812.5,\"northing\":206123}");
    s_has(json, "\"description\":\"Rear door forced; \\\"no CCTV\\\"\\nback alley\\tunlit\"");
    s_has(json, "\"uprn\":\"100091234567\"");
}
END_TEST

START_TEST(test_vehicle_item_weapon_telephone)
{
    s_has(s_json("vehicle"),
          "\"vehicle\":{\"vrm\":\"AB12CDE\",\"make\":\"Škoda\",\"model\":\"Octavia\","
          "\"colour\":\"COLOUR_SILVER\",\"vin\":\"TMBJJ7NE0J0123456\",\"year\":2018}}");
    /* an empty string is the proto3 default: omitted */
    s_has(s_json("item"), "\"item\":{\"category\":\"ITEM_CATEGORY_JEWELLERY\","
                          "\"description\":\"Gold ring, engraved “J & M 1999”\","
                          "\"value\":{\"currency\":\"GBP\",\"minorUnits\":\"125000\"}}}");
    s_has(s_json("weapon"), "\"weapon\":{\"category\":\"WEAPON_CATEGORY_KNIFE\","
                            "\"description\":\"Kitchen knife, 20 cm blade\"}}");
    s_has(s_json("telephone"), "\"telephone\":{\"number\":\"+447700900123\","
                               "\"kind\":\"TELEPHONE_KIND_MOBILE\",\"imei\":\"356938035643809\"}}");
}
END_TEST

START_TEST(test_occurrence)
{
    const char *json = s_json("occurrence");
    s_has(json, "\"offences\":[{\"hoClass\":28,\"hoSubclass\":1,\"description\":\"Burglary in a "
                "dwelling\"},"
                "{\"hoClass\":58,\"description\":\"Criminal damage to a dwelling\"}]");
    s_has(json, "\"occurredFrom\":\"2024-11-01T22:10:00Z\",\"occurredTo\":\"2024-11-02T06:40:00Z\","
                "\"reportedAt\":\"2024-11-02T08:15:30.000500Z\"");
    s_has(json, "\"status\":\"OCCURRENCE_STATUS_UNDER_INVESTIGATION\"");
    /* U+2028 is valid JSON text and is kept; controls are \u-escaped */
    s_has(json,
          "\"summary\":\"Entry via rear door\u2028while occupants away; \\\\ tools left \\u0001\"");
}
END_TEST

START_TEST(test_custody_intelligence)
{
    s_has(s_json("custody"),
          "\"custody\":{\"reference\":\"MER/CUS/2025/000555\","
          "\"arrestedAt\":\"2025-03-15T09:00:00Z\",\"arrivedAt\":\"2025-03-15T11:42:00Z\","
          "\"releasedAt\":\"2025-03-16T10:05:00.999999999Z\",\"station\":\"St Anne Street\","
          "\"outcome\":\"CUSTODY_OUTCOME_RELEASED_UNDER_INVESTIGATION\"}}");
    const char *json = s_json("intelligence");
    s_has(json, "\"marking\":{\"classification\":\"CLASSIFICATION_OFFICIAL_SENSITIVE\","
                "\"handling\":\"HANDLING_C\",\"caveat\":\"Not to be shared outside MER without DI "
                "approval\"}");
    s_has(json, "\"mergedFrom\":[{\"id\":\"88888888-9999-5aaa-8bbb-cccccccccccc\","
                "\"kind\":\"ENTITY_KIND_INTELLIGENCE\",\"nativeId\":\"N0000000008\"}]");
    s_has(
        json,
        "\"intelligence\":{\"reference\":\"INT/2025/0009\",\"reportedAt\":\"2025-10-26T01:30:00Z\","
        "\"text\":\"Subject seen near the docks — drives a silver Škoda\","
        "\"grading\":{\"source\":\"SOURCE_EVALUATION_2_UNTESTED\","
        "\"intelligence\":\"INTELLIGENCE_ASSESSMENT_B\",\"handling\":\"HANDLING_C\"}}}");
}
END_TEST

START_TEST(test_delete_exact)
{
    ck_assert_str_eq(
        s_json("delete"),
        "{\"id\":\"6f1c2d3e-4b5a-5c6d-8e7f-0123456789ab\",\"operation\":\"OPERATION_DELETE\","
        "\"version\":\"18446744073709551615\",\"modifiedAt\":\"2024-11-02T14:35:00Z\","
        "\"kind\":\"ENTITY_KIND_PERSON\"}");
}
END_TEST

START_TEST(test_link_exact)
{
    ck_assert_str_eq(
        s_json("link"),
        "{\"id\":\"9d8c7b6a-5f4e-5d3c-8b2a-190817161514\",\"operation\":\"OPERATION_UPSERT\","
        "\"version\":\"1\",\"origin\":{\"force\":\"ESX\",\"system\":\"ATHENA\",\"nativeType\":"
        "\"PERSON\","
        "\"nativeId\":\"P0000123456\"},\"modifiedAt\":\"2024-11-02T14:35:00.123Z\","
        "\"marking\":{\"classification\":\"CLASSIFICATION_OFFICIAL\"},"
        "\"from\":{\"id\":\"6f1c2d3e-4b5a-5c6d-8e7f-0123456789ab\",\"kind\":\"ENTITY_KIND_PERSON\","
        "\"nativeId\":\"P0000123456\"},\"role\":\"LINK_ROLE_HOME_ADDRESS\","
        "\"to\":{\"id\":\"0a1b2c3d-4e5f-5a6b-9c7d-8e9fa0b1c2d3\",\"nativeId\":\"L0000004711\"},"
        "\"validFrom\":{\"year\":2019,\"month\":4,\"day\":1}}");
}
END_TEST

START_TEST(test_link_delete_exact)
{
    ck_assert_str_eq(
        s_json("link_delete"),
        "{\"id\":\"9d8c7b6a-5f4e-5d3c-8b2a-190817161514\",\"operation\":\"OPERATION_DELETE\","
        "\"version\":\"2\",\"from\":{\"id\":\"6f1c2d3e-4b5a-5c6d-8e7f-0123456789ab\","
        "\"kind\":\"ENTITY_KIND_PERSON\"},\"role\":\"LINK_ROLE_HOME_ADDRESS\","
        "\"to\":{\"id\":\"0a1b2c3d-4e5f-5a6b-9c7d-8e9fa0b1c2d3\",\"kind\":\"ENTITY_KIND_LOCATION\"}"
        ","
        "\"validFrom\":{\"year\":2019,\"month\":4,\"day\":1},"
        "\"validTo\":{\"year\":2024,\"month\":11,\"day\":2}}");
}
END_TEST

/* ---------------------------------------------------------------- every field type */

START_TEST(test_all_set_exact)
{
    ck_assert_str_eq(
        s_json("all_set"),
        "{\"fDouble\":0.1,\"fFloat\":0.1,\"fInt32\":-42,\"fInt64\":\"-9007199254740993\","
        "\"fUint32\":4000000000,\"fUint64\":\"18446744073709551615\",\"fSint32\":-7,"
        "\"fSint64\":\"-70000000000\",\"fFixed32\":123456789,\"fFixed64\":\"1234567890123456789\","
        "\"fSfixed32\":-123456789,\"fSfixed64\":\"-1234567890123456789\",\"fBool\":true,"
        "\"fString\":\"plain ascii\",\"fBytes\":\"AP/+cG9sZQ==\",\"fEnum\":\"SHADE_DARK\","
        "\"fInner\":{\"n\":5,\"label\":\"five\"},\"fTime\":\"2024-11-02T14:35:00.000120Z\","
        "\"oString\":\"chosen\",\"field1Name\":1,\"x2y\":2}");
}
END_TEST

START_TEST(test_extremes)
{
    ck_assert_str_eq(
        s_json("all_extreme"),
        "{\"fDouble\":\"NaN\",\"fFloat\":\"-Infinity\",\"fInt32\":-2147483648,"
        "\"fInt64\":\"-9223372036854775808\",\"fUint32\":4294967295,\"fUint64\":\"1\","
        "\"fSint32\":2147483647,\"fSint64\":\"9223372036854775807\",\"fFixed32\":4294967295,"
        "\"fFixed64\":\"18446744073709551615\",\"fSfixed32\":-2147483648,"
        "\"fSfixed64\":\"-9223372036854775808\",\"fEnum\":99,\"fTime\":\"0001-01-01T00:00:00Z\","
        "\"oInt32\":0}");
}
END_TEST

START_TEST(test_reals)
{
    ck_assert_str_eq(
        s_json("reals"),
        "{\"fTime\":\"9999-12-31T23:59:59.999999999Z\","
        "\"rDouble\":[\"Infinity\",\"-Infinity\",1e+300,-2.2250738585072014e-308,4.94065645841247e-"
        "324,"
        "0.3333333333333333,1.2345678901234568e+17,1.5,-0.0,9007199254740992],"
        "\"rFloat\":[3.4028234663852886e+38,1.1754944e-38,1.4013e-45,0.3,16777216,2.5,\"NaN\"]}");
}
END_TEST

START_TEST(test_repeated_exact)
{
    ck_assert_str_eq(
        s_json("all_repeated"),
        "{\"rInt32\":[0,-1,2147483647],\"rInt64\":[\"0\",\"-1\",\"9223372036854775807\"],"
        "\"rUint32\":[0,1,4294967295],\"rUint64\":[\"0\",\"1\",\"18446744073709551615\"],"
        "\"rSint32\":[0,-1,2147483647],\"rSint64\":[\"0\",\"-1\",\"9223372036854775807\"],"
        "\"rFixed32\":[0,1,4294967295],\"rFixed64\":[\"0\",\"1\",\"18446744073709551615\"],"
        "\"rSfixed32\":[0,-1,2147483647],\"rSfixed64\":[\"0\",\"-1\",\"9223372036854775807\"],"
        "\"rBool\":[true,false,true],"
        "\"rString\":[\"\",\"Łódź\",\"tab\\there\",\"😀 emoji\",\"nul\x7f del\"],"
        "\"rBytes\":[\"\",\"+w==\",\"+/8=\"],"
        "\"rEnum\":[\"SHADE_UNSPECIFIED\",\"SHADE_LIGHT\",\"SHADE_DARK\",7],"
        "\"rInner\":[{},{\"n\":-3,\"label\":\"minus three\"}],"
        "\"rTime\":[\"1970-01-01T00:00:00Z\",\"1969-07-20T20:17:40.001Z\","
        "\"1969-12-31T23:59:59.999999Z\",\"2000-02-29T00:00:00.000000001Z\"],"
        "\"oInner\":{}}");
}
END_TEST

START_TEST(test_maps_exact)
{
    ck_assert_str_eq(
        s_json("maps"),
        "{\"oBool\":false,"
        "\"mStringInt32\":{\"a \\\"quoted\\\" key\":1,\"zero\":0},"
        "\"mInt64String\":{\"-5\":\"minus five\",\"9223372036854775807\":\"\"},"
        "\"mBoolInner\":{\"true\":{\"n\":1,\"label\":\"yes\"},\"false\":{\"label\":\"no\"}},"
        "\"mUint32Enum\":{\"4000000000\":\"SHADE_LIGHT\"}}");
}
END_TEST

START_TEST(test_empty_message)
{
    ck_assert_str_eq(s_json("all_empty"), "{}");
}
END_TEST

/* proto2: required fields always, optional fields by their has_ flag or pointer. */
START_TEST(test_explicit_presence)
{
    ck_assert_str_eq(s_json("legacy_min"), "{\"rInt32\":0}");
    ck_assert_str_eq(s_json("legacy_set"),
                     "{\"rInt32\":9,\"oInt32\":0,\"oString\":\"\",\"oNamed\":\"named\","
                     "\"oInt64\":\"7\",\"oBytes\":\"\",\"oDouble\":0}");
}
END_TEST

START_TEST(test_appends_to_buffer)
{
    const ProtobufCMessage *m = pg_sample_find(s_samples, s_nsamples, "all_empty");
    pg_buf_reset(&s_out);
    ck_assert_int_eq(pg_buf_puts(&s_out, "before\n"), 0);
    ck_assert_int_eq(pg_pbjson_encode(m, &s_out), 0);
    ck_assert_int_eq(pg_pbjson_encode(m, &s_out), 0);
    ck_assert_str_eq((const char *)s_out.data, "before\n{}{}");
}
END_TEST

/* ---------------------------------------------------------------- strings */

static const char *s_string_json(const char *value)
{
    Polegate__Test__V1__AllTypes *m =
        PG_PB_NEW(s_arena, Polegate__Test__V1__AllTypes, polegate__test__v1__all_types);
    ck_assert_ptr_nonnull(m);
    m->f_string = (char *)value;
    pg_buf_reset(&s_out);
    ck_assert_int_eq(pg_pbjson_encode(&m->base, &s_out), 0);
    return (const char *)s_out.data;
}

START_TEST(test_string_escapes)
{
    ck_assert_str_eq(s_string_json("\"\\/\b\f\n\r\t\x01\x1f\x7f"),
                     "{\"fString\":\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"}");
    /* 2-, 3- and 4-byte sequences, including the largest code point, pass through */
    ck_assert_str_eq(s_string_json("é€😀\xf4\x8f\xbf\xbf"), "{\"fString\":\"é€😀\xf4\x8f\xbf\xbf\"}");
}
END_TEST

/* Invalid UTF-8 cannot be written as JSON: refused, and the buffer is left as it
 * was. */
static const char *const s_bad_utf8[] = {
    "\x80",             /* continuation byte first */
    "ab\xc3",           /* truncated 2-byte sequence */
    "\xe2\x82",         /* truncated 3-byte sequence */
    "\xc0\xaf",         /* overlong '/' */
    "\xe0\x80\xaf",     /* overlong 3-byte */
    "\xed\xa0\x80",     /* UTF-16 surrogate */
    "\xf4\x90\x80\x80", /* above U+10FFFF */
    "\xf8\x88\x80\x80", /* 5-byte lead */
    "\xc3\x28",         /* bad continuation */
};

START_TEST(test_invalid_utf8)
{
    Polegate__Test__V1__AllTypes *m =
        PG_PB_NEW(s_arena, Polegate__Test__V1__AllTypes, polegate__test__v1__all_types);
    ck_assert_ptr_nonnull(m);
    m->f_int32 = 1;
    m->f_string = (char *)s_bad_utf8[_i];
    pg_buf_reset(&s_out);
    ck_assert_int_eq(pg_buf_puts(&s_out, "kept"), 0);
    ck_assert_int_eq(pg_pbjson_encode(&m->base, &s_out), PG_EINVALID);
    ck_assert_str_eq((const char *)s_out.data, "kept");
    ck_assert_uint_eq(s_out.len, 4);
}
END_TEST

/* ---------------------------------------------------------------- timestamps */

static int s_ts_json(int64_t seconds, int32_t nanos)
{
    pg_timestamp *t = PG_PB_NEW(s_arena, Google__Protobuf__Timestamp, google__protobuf__timestamp);
    ck_assert_ptr_nonnull(t);
    t->seconds = seconds;
    t->nanos = nanos;
    pg_buf_reset(&s_out);
    return pg_pbjson_encode(&t->base, &s_out);
}

START_TEST(test_timestamp_fraction_digits)
{
    static const struct {
        int64_t s;
        int32_t n;
        const char *want;
    } cases[] = {
        {1730558100, 0, "\"2024-11-02T14:35:00Z\""},
        {1730558100, 100000000, "\"2024-11-02T14:35:00.100Z\""},
        {1730558100, 123400000, "\"2024-11-02T14:35:00.123400Z\""},
        {1730558100, 1000, "\"2024-11-02T14:35:00.000001Z\""},
        {1730558100, 10, "\"2024-11-02T14:35:00.000000010Z\""},
        {-1, 0, "\"1969-12-31T23:59:59Z\""},
        {-86400, 0, "\"1969-12-31T00:00:00Z\""},
        {-86401, 0, "\"1969-12-30T23:59:59Z\""},
        {4107542400, 0, "\"2100-03-01T00:00:00Z\""}, /* 2100 is not a leap year */
        {951868800, 0, "\"2000-03-01T00:00:00Z\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(s_ts_json(cases[i].s, cases[i].n), 0);
        ck_assert_str_eq((const char *)s_out.data, cases[i].want);
    }
}
END_TEST

START_TEST(test_timestamp_out_of_range)
{
    ck_assert_int_eq(s_ts_json(-62135596801LL, 0), PG_EINVALID); /* before year 1 */
    ck_assert_int_eq(s_ts_json(253402300800LL, 0), PG_EINVALID); /* year 10000 */
    ck_assert_int_eq(s_ts_json(0, -1), PG_EINVALID);
    ck_assert_int_eq(s_ts_json(0, 1000000000), PG_EINVALID);
    ck_assert_uint_eq(s_out.len, 0);
}
END_TEST

/* A bad value deep inside a message fails the whole message. */
START_TEST(test_nested_error_rolls_back)
{
    Polegate__Test__V1__AllTypes *m =
        PG_PB_NEW(s_arena, Polegate__Test__V1__AllTypes, polegate__test__v1__all_types);
    pg_timestamp *times[2];
    for (int i = 0; i < 2; i++) {
        times[i] = PG_PB_NEW(s_arena, Google__Protobuf__Timestamp, google__protobuf__timestamp);
        ck_assert_ptr_nonnull(times[i]);
    }
    times[1]->nanos = -5;
    m->f_string = "fine";
    m->r_time = times;
    m->n_r_time = 2;
    pg_buf_reset(&s_out);
    ck_assert_int_eq(pg_pbjson_encode(&m->base, &s_out), PG_EINVALID);
    ck_assert_uint_eq(s_out.len, 0);
    ck_assert_str_eq((const char *)s_out.data, "");
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("pbjson");
    TCase *tc = tcase_create("canonical");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_person_exact);
    tcase_add_test(tc, test_every_body_kind);
    tcase_add_test(tc, test_location_doubles_and_escapes);
    tcase_add_test(tc, test_vehicle_item_weapon_telephone);
    tcase_add_test(tc, test_occurrence);
    tcase_add_test(tc, test_custody_intelligence);
    tcase_add_test(tc, test_delete_exact);
    tcase_add_test(tc, test_link_exact);
    tcase_add_test(tc, test_link_delete_exact);
    suite_add_tcase(s, tc);

    tc = tcase_create("types");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_all_set_exact);
    tcase_add_test(tc, test_extremes);
    tcase_add_test(tc, test_reals);
    tcase_add_test(tc, test_repeated_exact);
    tcase_add_test(tc, test_maps_exact);
    tcase_add_test(tc, test_empty_message);
    tcase_add_test(tc, test_explicit_presence);
    tcase_add_test(tc, test_appends_to_buffer);
    tcase_add_test(tc, test_string_escapes);
    tcase_add_loop_test(tc, test_invalid_utf8, 0, (int)(sizeof s_bad_utf8 / sizeof s_bad_utf8[0]));
    tcase_add_test(tc, test_timestamp_fraction_digits);
    tcase_add_test(tc, test_timestamp_out_of_range);
    tcase_add_test(tc, test_nested_error_rolls_back);
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
