/* Unit tests for WGS 84 <-> British National Grid (model/geo.c). */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"
#include "polegate/geo.h"

/* Ground distance in metres between two nearby WGS 84 points (equirectangular is
 * plenty over a few metres). */
static double s_metres(double lat1, double lon1, double lat2, double lon2)
{
    const double r = 6371000.0, rad = M_PI / 180.0;
    double x = (lon2 - lon1) * rad * cos((lat1 + lat2) / 2 * rad);
    double y = (lat2 - lat1) * rad;
    return r * sqrt(x * x + y * y);
}

/* The paired samples: atx-burglary (WGS 84) and nx5-burglary-import (grid); the
 * Merseyside export (grid) and its ATX import (WGS 84). */
START_TEST(test_samples_to_grid)
{
    double e, n;
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_int_eq(pg_geo_wgs84_to_bng(51.8891, 0.9042, &e, &n, err, sizeof err), 0);
    ck_assert_msg(hypot(e - 599949.6, n - 225157.6) < 5.0, "E %.2f N %.2f", e, n);
    /* What the default pipeline gives today (OSGB36 to WGS 84 (6), Helmert): within
     * 0.1 m of the sample, which was made the same way. */
    ck_assert_msg(hypot(e - 599949.6, n - 225157.6) < 0.1, "E %.2f N %.2f", e, n);
}
END_TEST

START_TEST(test_samples_to_wgs84)
{
    double lat, lon;
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_int_eq(pg_geo_bng_to_wgs84(334900, 390300, &lat, &lon, err, sizeof err), 0);
    ck_assert_msg(s_metres(lat, lon, 53.405485, -2.980693) < 5.0, "%.6f %.6f", lat, lon);
    ck_assert_msg(s_metres(lat, lon, 53.405485, -2.980693) < 0.2, "%.6f %.6f", lat, lon);
    ck_assert_int_eq(pg_geo_bng_to_wgs84(599949.6, 225157.6, &lat, &lon, err, sizeof err), 0);
    ck_assert_msg(s_metres(lat, lon, 51.8891, 0.9042) < 5.0, "%.6f %.6f", lat, lon);
}
END_TEST

START_TEST(test_round_trip)
{
    /* Across the grid: grid -> WGS 84 -> grid within a centimetre, on land and at
     * sea alike; corners beyond the area of use are refused both ways. */
    int done = 0;
    for (double e = 0; e <= 700000; e += 50000)
        for (double n = 0; n <= 1300000; n += 100000) {
            double lat, lon, e2, n2;
            char err[PG_ERRSTR_SIZE] = "";
            int rc = pg_geo_bng_to_wgs84(e, n, &lat, &lon, err, sizeof err);
            if (rc) {
                ck_assert_int_eq(rc, PG_EINVALID);
                ck_assert_msg(strstr(err, "outside the British National Grid's area"), "%s", err);
                continue;
            }
            done++;
            ck_assert_msg(pg_geo_wgs84_to_bng(lat, lon, &e2, &n2, err, sizeof err) == 0, "%s", err);
            ck_assert_msg(hypot(e2 - e, n2 - n) < 0.01, "%.0f %.0f -> %.4f %.4f", e, n, e2, n2);
        }
    ck_assert_int_gt(done, 150);
}
END_TEST

START_TEST(test_bad_wgs84)
{
    double e = -1, n = -1;
    char err[PG_ERRSTR_SIZE];
    ck_assert_int_eq(pg_geo_wgs84_to_bng(NAN, 0.9, &e, &n, err, sizeof err), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(err, "not a WGS 84 position"));
    ck_assert_int_eq(pg_geo_wgs84_to_bng(51.0, INFINITY, &e, &n, err, sizeof err), PG_EINVALID);
    ck_assert_int_eq(pg_geo_wgs84_to_bng(91.0, 0.0, &e, &n, err, sizeof err), PG_EINVALID);
    ck_assert_int_eq(pg_geo_wgs84_to_bng(51.0, -181.0, &e, &n, err, sizeof err), PG_EINVALID);
    /* Paris and New York are real places, but not on the British grid. */
    ck_assert_int_eq(pg_geo_wgs84_to_bng(48.8566, 2.3522, &e, &n, err, sizeof err), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(err, "outside the British National Grid's area"));
    ck_assert_int_eq(pg_geo_wgs84_to_bng(40.7, -74.0, &e, &n, err, sizeof err), PG_EINVALID);
    /* In the CRS's area of use (the sea west of Cornwall) but west of the false
     * origin: no grid reference can say it. */
    ck_assert_int_eq(pg_geo_wgs84_to_bng(50.0, -8.0, &e, &n, err, sizeof err), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(err, "outside the British National Grid"));
    ck_assert(e == -1 && n == -1); /* outputs untouched on error */
    ck_assert_int_eq(pg_geo_wgs84_to_bng(51.0, 0.0, &e, &n, NULL, 0), 0);
}
END_TEST

START_TEST(test_bad_grid)
{
    double lat = -1, lon = -1;
    char err[PG_ERRSTR_SIZE];
    ck_assert_int_eq(pg_geo_bng_to_wgs84(NAN, 390300, &lat, &lon, err, sizeof err), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(err, "outside the British National Grid"));
    ck_assert_int_eq(pg_geo_bng_to_wgs84(-1, 390300, &lat, &lon, err, sizeof err), PG_EINVALID);
    ck_assert_int_eq(pg_geo_bng_to_wgs84(334900, 1300001, &lat, &lon, err, sizeof err),
                     PG_EINVALID);
    ck_assert_int_eq(pg_geo_bng_to_wgs84(700001, 390300, &lat, &lon, err, sizeof err), PG_EINVALID);
    ck_assert_int_eq(pg_geo_bng_to_wgs84(334900, -INFINITY, &lat, &lon, err, sizeof err),
                     PG_EINVALID);
    ck_assert(lat == -1 && lon == -1);
}
END_TEST

static void *s_worker(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < 2000; i++) {
        double e, n, lat, lon;
        if (pg_geo_wgs84_to_bng(51.8891, 0.9042, &e, &n, NULL, 0) != 0 ||
            hypot(e - 599949.6, n - 225157.6) > 0.1)
            (*bad)++;
        if (pg_geo_bng_to_wgs84(334900, 390300, &lat, &lon, NULL, 0) != 0 ||
            s_metres(lat, lon, 53.405485, -2.980693) > 0.2)
            (*bad)++;
    }
    return NULL;
}

START_TEST(test_threads)
{
    pthread_t th[6];
    int bad[6] = {0};
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, s_worker, &bad[i]), 0);
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(bad[i], 0);
    }
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("geo");
    TCase *tc = tcase_create("bng");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_samples_to_grid);
    tcase_add_test(tc, test_samples_to_wgs84);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_bad_wgs84);
    tcase_add_test(tc, test_bad_grid);
    tcase_add_test(tc, test_threads);
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
