/* Unit tests for the shared code rules (model/codes.c) and RFC 3339 (model/rfc3339.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/codes.h"
#include "polegate/error.h"
#include "polegate/timeutil.h"

static char e[PG_ERRSTR_SIZE];

/* Assert that rc is PG_EINVALID and the reason contains want. */
#define ck_invalid(rc, want)                                                                       \
    do {                                                                                           \
        e[0] = 0;                                                                                  \
        ck_assert_int_eq((rc), PG_EINVALID);                                                       \
        ck_assert_msg(strstr(e, (want)) != NULL, "reason '%s' lacks '%s'", e, (want));             \
    } while (0)

START_TEST(test_check_letter)
{
    ck_assert_int_eq(pg_codes_check_letter(0), 'Z');
    ck_assert_int_eq(pg_codes_check_letter(1), 'A');
    ck_assert_int_eq(pg_codes_check_letter(22), 'Y');
    ck_assert_int_eq(pg_codes_check_letter(23), 'Z');
    ck_assert_int_eq(pg_codes_check_letter(10123456), 'F'); /* codes.md example */
}
END_TEST

START_TEST(test_pnc_long)
{
    ck_assert_int_eq(pg_pnc_validate_long("2001/0123456F", e, sizeof e), 0);
    ck_assert_int_eq(pg_pnc_validate_long("1985/0123456J", e, sizeof e), 0);
    ck_assert_int_eq(pg_pnc_validate_long("1999/0054321A", e, sizeof e), 0);
    ck_invalid(pg_pnc_validate_long("1985/0123456K", e, sizeof e),
               "check letter does not match the number");
    ck_invalid(pg_pnc_validate_long("85/0123456J", e, sizeof e), "long form YYYY/NNNNNNNC");
    ck_invalid(pg_pnc_validate_long("1985/123456J", e, sizeof e), "long form");
    ck_invalid(pg_pnc_validate_long("1985-0123456J", e, sizeof e), "long form");
    ck_invalid(pg_pnc_validate_long("1985/0123456j", e, sizeof e), "long form");
    ck_invalid(pg_pnc_validate_long("1985/0123456J ", e, sizeof e), "long form");
    ck_invalid(pg_pnc_validate_long("", e, sizeof e), "long form");
    ck_invalid(pg_pnc_validate_long(NULL, e, sizeof e), "long form");
}
END_TEST

START_TEST(test_pnc_short)
{
    char out[14];
    ck_assert_int_eq(pg_pnc_short_to_long("01/123456F", 2026, out, e, sizeof e), 0);
    ck_assert_str_eq(out, "2001/0123456F");
    /* century rule: 99 is after 26, so 1999 */
    ck_assert_int_eq(pg_pnc_short_to_long("99/54321A", 2026, out, e, sizeof e), 0);
    ck_assert_str_eq(out, "1999/0054321A");
    /* 26 is not after 26: 2026; 27 is: 1927 */
    ck_assert_int_eq(pg_pnc_short_to_long("26/1W", 2026, out, e, sizeof e), 0);
    ck_assert_str_eq(out, "2026/0000001W");
    char in[8], want[14];
    char letter = pg_codes_check_letter(270000001);
    snprintf(in, sizeof in, "27/1%c", letter);
    snprintf(want, sizeof want, "1927/0000001%c", letter);
    ck_assert_int_eq(pg_pnc_short_to_long(in, 2026, out, e, sizeof e), 0);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(pg_pnc_short_to_long("12/77Q", 2000, out, e, sizeof e), 0);
    ck_assert_str_eq(out, "1912/0000077Q");
    ck_invalid(pg_pnc_short_to_long("01/123456G", 2026, out, e, sizeof e),
               "check letter does not match the number");
    ck_invalid(pg_pnc_short_to_long("01/0123456F", 2026, out, e, sizeof e), "leading zeros");
    ck_invalid(pg_pnc_short_to_long("2001/0123456F", 2026, out, e, sizeof e), "short form");
    ck_invalid(pg_pnc_short_to_long("01/12345678F", 2026, out, e, sizeof e), "short form");
    ck_invalid(pg_pnc_short_to_long("01/F", 2026, out, e, sizeof e), "short form");
    ck_invalid(pg_pnc_short_to_long("0A/123F", 2026, out, e, sizeof e), "short form");
    ck_invalid(pg_pnc_short_to_long("01/123456", 2026, out, e, sizeof e), "short form");

    char sh[12];
    ck_assert_int_eq(pg_pnc_long_to_short("2001/0123456F", sh, e, sizeof e), 0);
    ck_assert_str_eq(sh, "01/123456F");
    ck_assert_int_eq(pg_pnc_long_to_short("1999/0054321A", sh, e, sizeof e), 0);
    ck_assert_str_eq(sh, "99/54321A");
    /* a 7-digit serial fills the short form: 11 characters */
    ck_assert_int_eq(pg_pnc_long_to_short("2001/1234567K", sh, e, sizeof e), 0);
    ck_assert_str_eq(sh, "01/1234567K");
    ck_invalid(pg_pnc_long_to_short("2001/0123456G", sh, e, sizeof e),
               "check letter does not match");
}
END_TEST

START_TEST(test_cro)
{
    ck_assert_int_eq(pg_cro_validate("123456/99L", e, sizeof e), 0);
    ck_invalid(pg_cro_validate("123456/99M", e, sizeof e),
               "check letter does not match the number");
    ck_invalid(pg_cro_validate("12345/99L", e, sizeof e), "NNNNNN/YYC");
    ck_invalid(pg_cro_validate("123456-99L", e, sizeof e), "NNNNNN/YYC");
    ck_invalid(pg_cro_validate("123456/9XL", e, sizeof e), "NNNNNN/YYC");
    ck_invalid(pg_cro_validate("123456/99l", e, sizeof e), "NNNNNN/YYC");
}
END_TEST

START_TEST(test_postcode)
{
    static const char *const good[][2] = {
        {"co3 3es", "CO3 3ES"},   {"CO33ES", "CO3 3ES"},  {" L1  4DS ", "L1 4DS"},
        {"m1 1ae", "M1 1AE"},     {"B33 8TH", "B33 8TH"}, {"cr26xh", "CR2 6XH"},
        {"DN55 1PT", "DN55 1PT"}, {"W1A 0AX", "W1A 0AX"}, {"ec1a1bb", "EC1A 1BB"},
        {"gir0aa", "GIR 0AA"},
    };
    char out[9];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_int_eq(pg_postcode_normalise(good[i][0], out, e, sizeof e), 0);
        ck_assert_str_eq(out, good[i][1]);
    }
    static const char *const bad[] = {"",         "CO3",     "CO3 3E",   "CO3 3E5",  "3CO 3ES",
                                      "CO3 3ESX", "C-3 3ES", "ABCD 1AA", "EC1A1BBB", "CO3 ÉES"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_invalid(pg_postcode_normalise(bad[i], out, e, sizeof e), "must be a UK postcode");
}
END_TEST

START_TEST(test_vrm)
{
    char out[16];
    ck_assert_int_eq(pg_vrm_normalise("ab12 cde", out, e, sizeof e), 0);
    ck_assert_str_eq(out, "AB12CDE");
    ck_assert_int_eq(pg_vrm_normalise(" A 1 ", out, e, sizeof e), 0);
    ck_assert_str_eq(out, "A1");
    ck_assert_int_eq(pg_vrm_normalise("ABCDEFGHIJKLMNO", out, e, sizeof e), 0);
    ck_invalid(pg_vrm_normalise("   ", out, e, sizeof e), "empty");
    ck_invalid(pg_vrm_normalise("AB12-CDE", out, e, sizeof e), "only letters");
    ck_invalid(pg_vrm_normalise("ÄB12CDE", out, e, sizeof e), "only letters");
    ck_invalid(pg_vrm_normalise("ABCDEFGHIJKLMNOP", out, e, sizeof e), "longer than 15");
}
END_TEST

START_TEST(test_phone)
{
    static const char *const good[][2] = {
        {"07700 900123", "+447700900123"},        {"07700900123", "+447700900123"},
        {"+44 7700 900123", "+447700900123"},     {"0044 7700 900123", "+447700900123"},
        {"+44 (0)20 7946 0018", "+442079460018"}, {"(01206) 762 222", "+441206762222"},
        {"01632-960-001", "+441632960001"},       {"+33 1 23 45 67 89", "+33123456789"},
        {"00353 1 234 5678", "+35312345678"},     {"0169 77 4321", "+44169774321"},
    };
    char out[17];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_int_eq(pg_phone_to_e164(good[i][0], out, e, sizeof e), 0);
        ck_assert_str_eq(out, good[i][1]);
    }
    ck_invalid(pg_phone_to_e164("7700 900123", out, e, sizeof e), "must be a UK national");
    ck_invalid(pg_phone_to_e164("077009", out, e, sizeof e), "0 followed by 9 or 10 digits");
    ck_invalid(pg_phone_to_e164("077009001234", out, e, sizeof e), "9 or 10 digits");
    ck_invalid(pg_phone_to_e164("00 77009", out, e, sizeof e), "7-15 digits");
    ck_invalid(pg_phone_to_e164("+44 77", out, e, sizeof e), "7-15 digits");
    ck_invalid(pg_phone_to_e164("+44 123456789012", out, e, sizeof e), "+44 followed by");
    ck_invalid(pg_phone_to_e164("+1234567890123456", out, e, sizeof e), "7-15 digits");
    ck_invalid(pg_phone_to_e164("+0 1234 5678", out, e, sizeof e), "country code");
    ck_invalid(pg_phone_to_e164("07700 9OO123", out, e, sizeof e), "not a telephone number");
    ck_invalid(pg_phone_to_e164("", out, e, sizeof e), "must be a UK national");
    ck_invalid(pg_phone_to_e164("0044 07700 900123", out, e, sizeof e), "+44 followed by");
}
END_TEST

START_TEST(test_countries)
{
    ck_assert_str_eq(pg_country_alpha2_to_alpha3("GB"), "GBR");
    ck_assert_str_eq(pg_country_alpha2_to_alpha3("PL"), "POL");
    ck_assert_str_eq(pg_country_alpha2_to_alpha3("AD"), "AND");
    ck_assert_str_eq(pg_country_alpha2_to_alpha3("ZW"), "ZWE");
    ck_assert_str_eq(pg_country_alpha3_to_alpha2("IRL"), "IE");
    ck_assert_str_eq(pg_country_alpha3_to_alpha2("ESP"), "ES");
    ck_assert_str_eq(pg_country_alpha3_to_alpha2("ZWE"), "ZW");
    ck_assert_ptr_null(pg_country_alpha2_to_alpha3("UK")); /* not ISO: GB is */
    ck_assert_ptr_null(pg_country_alpha2_to_alpha3("gb"));
    ck_assert_ptr_null(pg_country_alpha2_to_alpha3("GBR"));
    ck_assert_ptr_null(pg_country_alpha2_to_alpha3(NULL));
    ck_assert_ptr_null(pg_country_alpha3_to_alpha2("UKK"));
    ck_assert_ptr_null(pg_country_alpha3_to_alpha2("gbr"));
    ck_assert_ptr_null(pg_country_alpha3_to_alpha2("GB"));
    ck_assert_ptr_null(pg_country_alpha3_to_alpha2(""));
}
END_TEST

START_TEST(test_money)
{
    int64_t m = -1;
    ck_assert_int_eq(pg_money_parse("1250.00", &m, e, sizeof e), 0);
    ck_assert_int_eq(m, 125000);
    ck_assert_int_eq(pg_money_parse("1250", &m, e, sizeof e), 0);
    ck_assert_int_eq(m, 125000);
    ck_assert_int_eq(pg_money_parse("0.5", &m, e, sizeof e), 0);
    ck_assert_int_eq(m, 50);
    ck_assert_int_eq(pg_money_parse("0.05", &m, e, sizeof e), 0);
    ck_assert_int_eq(m, 5);
    ck_assert_int_eq(pg_money_parse("92233720368547757.99", &m, e, sizeof e), 0);
    ck_assert_int_eq(m, INT64_MAX - 8);
    ck_invalid(pg_money_parse("92233720368547758.00", &m, e, sizeof e), "too large");
    ck_invalid(pg_money_parse("1.234", &m, e, sizeof e), "1 or 2 decimal places");
    /* a fraction long enough to overflow if every digit were accumulated */
    ck_invalid(pg_money_parse("10.5200888888888888888888", &m, e, sizeof e),
               "1 or 2 decimal places");
    ck_invalid(pg_money_parse("1.", &m, e, sizeof e), "1 or 2 decimal places");
    ck_invalid(pg_money_parse(".50", &m, e, sizeof e), "non-negative decimal");
    ck_invalid(pg_money_parse("-1.00", &m, e, sizeof e), "non-negative decimal");
    ck_invalid(pg_money_parse("1,250.00", &m, e, sizeof e), "non-negative decimal");
    ck_invalid(pg_money_parse("", &m, e, sizeof e), "non-negative decimal");
    ck_invalid(pg_money_parse("1e3", &m, e, sizeof e), "non-negative decimal");

    char out[24];
    pg_money_format(125000, out);
    ck_assert_str_eq(out, "1250.00");
    pg_money_format(5, out);
    ck_assert_str_eq(out, "0.05");
    pg_money_format(0, out);
    ck_assert_str_eq(out, "0.00");
    pg_money_format(-150, out);
    ck_assert_str_eq(out, "-1.50");
    pg_money_format(INT64_MIN, out);
    ck_assert_str_eq(out, "-92233720368547758.08");
}
END_TEST

START_TEST(test_date_valid)
{
    ck_assert(pg_date_valid(2024, 2, 29));
    ck_assert(!pg_date_valid(2026, 2, 29));
    ck_assert(pg_date_valid(2000, 2, 29));
    ck_assert(!pg_date_valid(1900, 2, 29));
    ck_assert(pg_date_valid(2026, 12, 31));
    ck_assert(!pg_date_valid(2026, 4, 31));
    ck_assert(!pg_date_valid(2026, 13, 1));
    ck_assert(!pg_date_valid(2026, 0, 1));
    ck_assert(!pg_date_valid(2026, 1, 0));
    ck_assert(!pg_date_valid(0, 1, 1));
    ck_assert(!pg_date_valid(10000, 1, 1));
}
END_TEST

START_TEST(test_rfc3339_parse)
{
    pg_instant t;
    ck_assert_int_eq(pg_rfc3339_parse("1970-01-01T00:00:00Z", &t, e, sizeof e), 0);
    ck_assert_int_eq(t.seconds, 0);
    ck_assert_int_eq(t.nanos, 0);
    ck_assert_int_eq(pg_rfc3339_parse("2026-03-29T02:30:00.000+01:00", &t, e, sizeof e), 0);
    ck_assert_int_eq(t.seconds, 1774747800); /* 2026-03-29T01:30:00Z */
    ck_assert_int_eq(pg_rfc3339_parse("2026-03-29T01:30:00.250+00:00", &t, e, sizeof e), 0);
    ck_assert_int_eq(t.seconds, 1774747800);
    ck_assert_int_eq(t.nanos, 250000000);
    ck_assert_int_eq(pg_rfc3339_parse("2026-03-28T20:30:00.123456789-05:00", &t, e, sizeof e), 0);
    ck_assert_int_eq(t.seconds, 1774747800);
    ck_assert_int_eq(t.nanos, 123456789);
    ck_assert_int_eq(pg_rfc3339_parse("1969-12-31t23:59:59.5z", &t, e, sizeof e), 0);
    ck_assert_int_eq(t.seconds, -1);
    ck_assert_int_eq(t.nanos, 500000000);
    ck_assert_int_eq(pg_rfc3339_parse("2024-02-29T12:00:00+05:30", &t, e, sizeof e), 0);

    ck_invalid(pg_rfc3339_parse("2026-03-29T02:30:00", &t, e, sizeof e), "UTC offset");
    ck_invalid(pg_rfc3339_parse("2026-03-29T02:30:00.000", &t, e, sizeof e), "UTC offset");
    ck_invalid(pg_rfc3339_parse("2026-03-29", &t, e, sizeof e), "RFC 3339");
    ck_invalid(pg_rfc3339_parse("2026-03-29 02:30:00Z", &t, e, sizeof e), "RFC 3339");
    ck_invalid(pg_rfc3339_parse("2026-3-29T02:30:00Z", &t, e, sizeof e), "RFC 3339");
    ck_invalid(pg_rfc3339_parse("2026-03-29T02:30:00+0100", &t, e, sizeof e), "RFC 3339");
    ck_invalid(pg_rfc3339_parse("2026-03-29T02:30:00.Z", &t, e, sizeof e), "at least 1 digit");
    /* RFC 3339 allows any number of fraction digits: truncated to nanoseconds */
    ck_assert_int_eq(pg_rfc3339_parse("2026-03-29T02:30:00.1234567899Z", &t, e, sizeof e), 0);
    ck_assert_int_eq(t.nanos, 123456789);
    ck_invalid(pg_rfc3339_parse("2026-02-29T02:30:00Z", &t, e, sizeof e),
               "date is not a calendar date");
    ck_invalid(pg_rfc3339_parse("2026-13-01T02:30:00Z", &t, e, sizeof e), "calendar date");
    ck_invalid(pg_rfc3339_parse("2026-03-29T24:00:00Z", &t, e, sizeof e),
               "time is not a time of day");
    ck_invalid(pg_rfc3339_parse("2026-03-29T12:60:00Z", &t, e, sizeof e), "time of day");
    ck_invalid(pg_rfc3339_parse("2026-12-31T23:59:60Z", &t, e, sizeof e), "time of day");
    ck_invalid(pg_rfc3339_parse("2026-03-29T02:30:00+24:00", &t, e, sizeof e), "out of range");
    ck_invalid(pg_rfc3339_parse("2026-03-29T02:30:00+01:60", &t, e, sizeof e), "out of range");
    ck_invalid(pg_rfc3339_parse("2026-03-29T02:30:00Zjunk", &t, e, sizeof e), "RFC 3339");
    ck_invalid(pg_rfc3339_parse("", &t, e, sizeof e), "RFC 3339");
}
END_TEST

START_TEST(test_rfc3339_format)
{
    char out[40];
    pg_rfc3339_format((pg_instant){1774747800, 250000000}, 60, out);
    ck_assert_str_eq(out, "2026-03-29T02:30:00.250+01:00");
    pg_rfc3339_format((pg_instant){1774747800, 999999}, 0, out);
    ck_assert_str_eq(out, "2026-03-29T01:30:00.000+00:00");
    pg_rfc3339_format((pg_instant){-1, 500000000}, 0, out);
    ck_assert_str_eq(out, "1969-12-31T23:59:59.500+00:00");
    pg_rfc3339_format((pg_instant){1774747800, 0}, -330, out);
    ck_assert_str_eq(out, "2026-03-28T20:00:00.000-05:30");
    /* parse and format are inverse for any offset */
    pg_instant t;
    ck_assert_int_eq(pg_rfc3339_parse("2024-02-29T23:59:59.999+05:45", &t, e, sizeof e), 0);
    pg_rfc3339_format(t, 345, out);
    ck_assert_str_eq(out, "2024-02-29T23:59:59.999+05:45");
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("codes");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_check_letter);
    tcase_add_test(tc, test_pnc_long);
    tcase_add_test(tc, test_pnc_short);
    tcase_add_test(tc, test_cro);
    tcase_add_test(tc, test_postcode);
    tcase_add_test(tc, test_vrm);
    tcase_add_test(tc, test_phone);
    tcase_add_test(tc, test_countries);
    tcase_add_test(tc, test_money);
    tcase_add_test(tc, test_date_valid);
    tcase_add_test(tc, test_rfc3339_parse);
    tcase_add_test(tc, test_rfc3339_format);
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
