/* Unit tests for UK civil time (Europe/London) in model/london.c. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polegate/error.h"
#include "polegate/timeutil.h"

/* Unix seconds of a UTC civil time, computed by the C library so the test does not
 * share london.c's calendar arithmetic. */
static int64_t s_utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm);
}

static int64_t s_local(int y, int mo, int d, int h, int mi, int s)
{
    pg_instant t = {0, -1};
    char e[PG_ERRSTR_SIZE] = "";
    int rc = pg_london_to_instant(y, mo, d, h, mi, s, &t, e, sizeof e);
    ck_assert_msg(rc == 0, "%04d-%02d-%02d %02d:%02d:%02d: %s", y, mo, d, h, mi, s, e);
    ck_assert_int_eq(t.nanos, 0);
    return t.seconds;
}

static void s_expect_skipped(int y, int mo, int d, int h, int mi, int s, const char *reason)
{
    pg_instant t = {0, 0};
    char e[PG_ERRSTR_SIZE] = "";
    ck_assert_int_eq(pg_london_to_instant(y, mo, d, h, mi, s, &t, e, sizeof e), PG_EINVALID);
    ck_assert_str_eq(e, reason);
}

static void s_expect_fields(int64_t u, int y, int mo, int d, int h, int mi, int s)
{
    int fy, fmo, fd, fh, fmi, fs;
    pg_instant_to_london((pg_instant){u, 0}, &fy, &fmo, &fd, &fh, &fmi, &fs);
    ck_assert_int_eq(fy, y);
    ck_assert_int_eq(fmo, mo);
    ck_assert_int_eq(fd, d);
    ck_assert_int_eq(fh, h);
    ck_assert_int_eq(fmi, mi);
    ck_assert_int_eq(fs, s);
}

static void s_setup(void)
{
    /* The process's own zone must make no difference. */
    setenv("TZ", "America/New_York", 1);
    tzset();
}

START_TEST(test_spring_2026)
{
    ck_assert_int_eq(s_local(2026, 3, 29, 0, 59, 59), s_utc(2026, 3, 29, 0, 59, 59));
    ck_assert_int_eq(s_local(2026, 3, 29, 2, 0, 0), s_utc(2026, 3, 29, 1, 0, 0));
    ck_assert_int_eq(s_local(2026, 3, 29, 12, 0, 0), s_utc(2026, 3, 29, 11, 0, 0));
    s_expect_skipped(2026, 3, 29, 1, 30, 0, "does not exist in UK time (clocks go forward)");
    s_expect_skipped(2026, 3, 29, 1, 0, 0, "does not exist in UK time (clocks go forward)");
    s_expect_skipped(2026, 3, 29, 1, 59, 59, "does not exist in UK time (clocks go forward)");
    ck_assert_int_eq(pg_london_offset((pg_instant){s_utc(2026, 3, 29, 0, 59, 59), 0}), 0);
    ck_assert_int_eq(pg_london_offset((pg_instant){s_utc(2026, 3, 29, 1, 0, 0), 0}), 60);
    s_expect_fields(s_utc(2026, 3, 29, 0, 59, 59), 2026, 3, 29, 0, 59, 59);
    s_expect_fields(s_utc(2026, 3, 29, 1, 0, 0), 2026, 3, 29, 2, 0, 0);
}
END_TEST

START_TEST(test_autumn_2026)
{
    /* The repeated hour reads as BST, the first occurrence. */
    ck_assert_int_eq(s_local(2026, 10, 25, 0, 59, 59), s_utc(2026, 10, 24, 23, 59, 59));
    ck_assert_int_eq(s_local(2026, 10, 25, 1, 0, 0), s_utc(2026, 10, 25, 0, 0, 0));
    ck_assert_int_eq(s_local(2026, 10, 25, 1, 30, 0), s_utc(2026, 10, 25, 0, 30, 0));
    ck_assert_int_eq(s_local(2026, 10, 25, 1, 59, 59), s_utc(2026, 10, 25, 0, 59, 59));
    ck_assert_int_eq(s_local(2026, 10, 25, 2, 0, 0), s_utc(2026, 10, 25, 2, 0, 0));
    ck_assert_int_eq(pg_london_offset((pg_instant){s_utc(2026, 10, 25, 0, 59, 59), 0}), 60);
    ck_assert_int_eq(pg_london_offset((pg_instant){s_utc(2026, 10, 25, 1, 0, 0), 0}), 0);
    /* Both occurrences show 01:30 on the clock. */
    s_expect_fields(s_utc(2026, 10, 25, 0, 30, 0), 2026, 10, 25, 1, 30, 0);
    s_expect_fields(s_utc(2026, 10, 25, 1, 30, 0), 2026, 10, 25, 1, 30, 0);
}
END_TEST

START_TEST(test_historical)
{
    /* 1995: the UK's own rule, autumn change on the fourth Sunday (22 October). */
    ck_assert_int_eq(s_local(1995, 10, 22, 0, 30, 0), s_utc(1995, 10, 21, 23, 30, 0));
    ck_assert_int_eq(s_local(1995, 10, 29, 0, 30, 0), s_utc(1995, 10, 29, 0, 30, 0));
    /* British Standard Time: +1 all year, 27 Oct 1968 to 31 Oct 1971. */
    ck_assert_int_eq(s_local(1970, 1, 15, 12, 0, 0), s_utc(1970, 1, 15, 11, 0, 0));
    ck_assert_int_eq(pg_london_offset((pg_instant){s_utc(1969, 12, 25, 0, 0, 0), 0}), 60);
    /* British Double Summer Time, +2, summer 1941; its start skipped 02:00-03:00. */
    ck_assert_int_eq(s_local(1941, 6, 1, 12, 0, 0), s_utc(1941, 6, 1, 10, 0, 0));
    ck_assert_int_eq(pg_london_offset((pg_instant){s_utc(1941, 6, 1, 0, 0, 0), 0}), 120);
    s_expect_skipped(1941, 5, 4, 2, 15, 0, "does not exist in UK time (clocks go forward)");
    /* End of BDST, 10 Aug 1941: 02:00-03:00 repeats; the first (BDST) wins. */
    ck_assert_int_eq(s_local(1941, 8, 10, 2, 30, 0), s_utc(1941, 8, 10, 0, 30, 0));
    /* Before GMT was adopted (London mean time in the tz database): read as GMT. */
    ck_assert_int_eq(s_local(1800, 1, 1, 12, 0, 0), s_utc(1800, 1, 1, 12, 0, 0));
    ck_assert_int_eq(pg_london_offset((pg_instant){s_utc(1800, 1, 1, 12, 0, 0), 0}), 0);
    s_expect_fields(s_utc(1800, 1, 1, 12, 0, 0), 1800, 1, 1, 12, 0, 0);
    /* Well past the tz file's explicit transitions: its rule still applies. */
    ck_assert_int_eq(s_local(2100, 7, 1, 12, 0, 0), s_utc(2100, 7, 1, 11, 0, 0));
    ck_assert_int_eq(s_local(2100, 12, 1, 12, 0, 0), s_utc(2100, 12, 1, 12, 0, 0));
    s_expect_skipped(2100, 3, 28, 1, 30, 0, "does not exist in UK time (clocks go forward)");
    /* Winter and leap days. */
    ck_assert_int_eq(s_local(2024, 2, 29, 23, 59, 59), s_utc(2024, 2, 29, 23, 59, 59));
    s_expect_fields(s_utc(1960, 1, 1, 0, 0, 0), 1960, 1, 1, 0, 0, 0);
    s_expect_fields(s_utc(1969, 12, 31, 23, 30, 0), 1970, 1, 1, 0, 30, 0);
}
END_TEST

START_TEST(test_invalid_fields)
{
    pg_instant t;
    char e[PG_ERRSTR_SIZE];
    ck_assert_int_eq(pg_london_to_instant(2025, 2, 29, 12, 0, 0, &t, e, sizeof e), PG_EINVALID);
    ck_assert_str_eq(e, "is not a valid date and time");
    ck_assert_int_eq(pg_london_to_instant(2026, 4, 31, 12, 0, 0, &t, e, sizeof e), PG_EINVALID);
    ck_assert_int_eq(pg_london_to_instant(2026, 13, 1, 12, 0, 0, &t, e, sizeof e), PG_EINVALID);
    ck_assert_int_eq(pg_london_to_instant(2026, 0, 1, 12, 0, 0, &t, e, sizeof e), PG_EINVALID);
    ck_assert_int_eq(pg_london_to_instant(2026, 1, 0, 12, 0, 0, &t, e, sizeof e), PG_EINVALID);
    ck_assert_int_eq(pg_london_to_instant(2026, 1, 1, 24, 0, 0, &t, e, sizeof e), PG_EINVALID);
    ck_assert_int_eq(pg_london_to_instant(2026, 1, 1, 23, 60, 0, &t, e, sizeof e), PG_EINVALID);
    ck_assert_int_eq(pg_london_to_instant(2026, 1, 1, 23, 0, 60, &t, e, sizeof e), PG_EINVALID);
    ck_assert_int_eq(pg_london_to_instant(2026, 1, 1, -1, 0, 0, &t, e, sizeof e), PG_EINVALID);
    /* errstr may be NULL */
    ck_assert_int_eq(pg_london_to_instant(2026, 3, 29, 1, 0, 0, &t, NULL, 0), PG_EINVALID);
    ck_assert_int_eq(pg_london_to_instant(2024, 2, 29, 1, 0, 0, &t, e, sizeof e), 0);
}
END_TEST

START_TEST(test_round_trips)
{
    /* Every quarter hour from 2025 to 2027 and every hour of a few historic years:
     * instant -> UK fields -> instant is the identity, except the second pass through
     * the repeated hour, which comes back as the first (an hour earlier). */
    static const int ranges[][2] = {{2025, 2028}, {1940, 1942}, {1968, 1972}, {1995, 1997}};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        int64_t from = s_utc(ranges[r][0], 1, 1, 0, 0, 0);
        int64_t to = s_utc(ranges[r][1], 1, 1, 0, 0, 0);
        int64_t step = ranges[r][0] >= 2025 ? 900 : 3600;
        int repeats = 0;
        for (int64_t u = from; u < to; u += step) {
            int y, mo, d, h, mi, s;
            pg_instant_to_london((pg_instant){u, 0}, &y, &mo, &d, &h, &mi, &s);
            pg_instant back;
            char e[PG_ERRSTR_SIZE];
            ck_assert_int_eq(pg_london_to_instant(y, mo, d, h, mi, s, &back, e, sizeof e), 0);
            if (back.seconds != u) {
                ck_assert_int_eq(back.seconds, u - 3600);
                ck_assert_int_eq(pg_london_offset((pg_instant){u, 0}) + 60, pg_london_offset(back));
                repeats++;
            }
        }
        ck_assert_int_gt(repeats, 0);
    }
}
END_TEST

START_TEST(test_format_london)
{
    char out[40];
    pg_rfc3339_format_london((pg_instant){s_utc(2026, 10, 25, 0, 30, 0), 0}, out);
    ck_assert_str_eq(out, "2026-10-25T01:30:00.000+01:00");
    pg_rfc3339_format_london((pg_instant){s_utc(2026, 10, 25, 1, 30, 0), 250000000}, out);
    /* GMT: how a zero offset is spelt is pg_rfc3339_format's business. */
    ck_assert_msg(strncmp(out, "2026-10-25T01:30:00.250", 23) == 0, "%s", out);
    ck_assert_msg(strcmp(out + 23, "Z") == 0 || strcmp(out + 23, "+00:00") == 0, "%s", out);
}
END_TEST

/* Without tzdata (TZDIR pointing nowhere) the built-in current UK rule applies. Check
 * runs each test in a fresh child, so the zone is first loaded here. */
START_TEST(test_without_tzdata)
{
    setenv("TZDIR", "/nonexistent", 1);
    ck_assert_int_eq(s_local(2026, 10, 25, 1, 30, 0), s_utc(2026, 10, 25, 0, 30, 0));
    ck_assert_int_eq(s_local(2026, 10, 25, 2, 0, 0), s_utc(2026, 10, 25, 2, 0, 0));
    ck_assert_int_eq(s_local(2026, 3, 29, 2, 0, 0), s_utc(2026, 3, 29, 1, 0, 0));
    s_expect_skipped(2026, 3, 29, 1, 30, 0, "does not exist in UK time (clocks go forward)");
    ck_assert_int_eq(s_local(2027, 1, 10, 9, 0, 0), s_utc(2027, 1, 10, 9, 0, 0));
    ck_assert_int_eq(s_local(1999, 7, 10, 9, 0, 0), s_utc(1999, 7, 10, 8, 0, 0));
    unsetenv("TZDIR");
}
END_TEST

static void *s_worker(void *arg)
{
    long *bad = arg;
    int64_t base = s_utc(2026, 10, 25, 0, 0, 0);
    for (int i = 0; i < 20000; i++) {
        pg_instant t;
        if (pg_london_to_instant(2026, 10, 25, 1, i % 60, 0, &t, NULL, 0) != 0 ||
            t.seconds != base + (i % 60) * 60)
            (*bad)++;
        if (pg_london_offset((pg_instant){base + 3600 + i, 0}) != 0)
            (*bad)++;
    }
    return NULL;
}

START_TEST(test_threads)
{
    pthread_t th[8];
    long bad[8] = {0};
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, s_worker, &bad[i]), 0);
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(bad[i], 0);
    }
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("time");
    TCase *tc = tcase_create("london");
    tcase_add_checked_fixture(tc, s_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_spring_2026);
    tcase_add_test(tc, test_autumn_2026);
    tcase_add_test(tc, test_historical);
    tcase_add_test(tc, test_invalid_fields);
    tcase_add_test(tc, test_round_trips);
    tcase_add_test(tc, test_format_london);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_without_tzdata);
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
