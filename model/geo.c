/* WGS 84 <-> British National Grid through PROJ, one context and transformation per thread. */
#include "polegate/geo.h"

#include <math.h>
#include <proj.h>
#include <pthread.h>
#include <stdlib.h>

#include "polegate/error.h"

/* PROJ contexts and the PJ objects made in them must not be shared between threads,
 * and building the transformation reads proj.db, which is far too slow to do per
 * call: so each thread builds its own once, and frees it when it exits. */
typedef struct s_geo {
    PJ_CONTEXT *ctx;
    PJ *pj; /* EPSG:4326 -> EPSG:27700, lon/lat order in and out */
    /* The area of use of EPSG:27700 (the UK and its continental shelf), degrees. */
    double west, south, east, north;
} s_geo;

static pthread_key_t s_key;
static pthread_once_t s_key_once = PTHREAD_ONCE_INIT;

static void s_geo_free(void *p)
{
    s_geo *g = p;
    if (!g)
        return;
    if (g->pj)
        proj_destroy(g->pj);
    if (g->ctx)
        proj_context_destroy(g->ctx);
    free(g);
}

static void s_make_key(void)
{
    (void)pthread_key_create(&s_key, s_geo_free);
}

/* One operation for every point and both directions. proj_create_crs_to_crs would
 * choose per point among several (the Helmert fits, and a "ballpark" with no datum
 * shift at all off the coast), so a grid reference at sea could come back 100 m away
 * from where it went in. The best operation whose grids are installed wins: with
 * Debian's proj-data that is "OSGB36 to WGS 84 (6)" (Helmert, 2 m); with OSTN15
 * installed (uk_os_OSTN15_NTv2_OSGBtoETRS.tif) it is OSTN15. Ballparks never. */
static PJ *s_pick_operation(PJ_CONTEXT *ctx)
{
    PJ *op = NULL;
    PJ *src = proj_create(ctx, "EPSG:4326");
    PJ *dst = proj_create(ctx, "EPSG:27700");
    PJ_OPERATION_FACTORY_CONTEXT *fc = proj_create_operation_factory_context(ctx, NULL);
    PJ_OBJ_LIST *ops = NULL;
    if (!src || !dst || !fc)
        goto done;
    proj_operation_factory_context_set_spatial_criterion(
        ctx, fc, PROJ_SPATIAL_CRITERION_PARTIAL_INTERSECTION);
    proj_operation_factory_context_set_grid_availability_use(
        ctx, fc, PROJ_GRID_AVAILABILITY_DISCARD_OPERATION_IF_MISSING_GRID);
    proj_operation_factory_context_set_allow_ballpark_transformations(ctx, fc, 0);
    ops = proj_create_operations(ctx, src, dst, fc);
    int n = ops ? proj_list_get_count(ops) : 0;
    for (int i = 0; i < n && !op; i++) {
        PJ *cand = proj_list_get(ctx, ops, i);
        if (cand && !proj_coordoperation_has_ballpark_transformation(ctx, cand))
            op = cand;
        else if (cand)
            proj_destroy(cand);
    }
done:
    if (ops)
        proj_list_destroy(ops);
    if (fc)
        proj_operation_factory_context_destroy(fc);
    if (src)
        proj_destroy(src);
    if (dst)
        proj_destroy(dst);
    return op;
}

static int s_build(s_geo **out, char *errstr, size_t errstr_size)
{
    s_geo *g = calloc(1, sizeof(*g));
    if (!g)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "geo: out of memory");
    g->ctx = proj_context_create();
    if (!g->ctx)
        goto err;
    /* Results must not depend on what a host can download. */
    proj_context_set_enable_network(g->ctx, 0);
    proj_log_level(g->ctx, PJ_LOG_NONE);
    PJ *op = s_pick_operation(g->ctx);
    if (!op)
        goto err;
    g->pj = proj_normalize_for_visualization(g->ctx, op);
    proj_destroy(op);
    if (!g->pj)
        goto err;
    PJ *bng = proj_create(g->ctx, "EPSG:27700");
    int have_area =
        bng && proj_get_area_of_use(g->ctx, bng, &g->west, &g->south, &g->east, &g->north, NULL);
    if (bng)
        proj_destroy(bng);
    if (!have_area)
        goto err;
    *out = g;
    return 0;
err:;
    const char *why =
        g->ctx ? proj_context_errno_string(g->ctx, proj_context_errno(g->ctx)) : "no context";
    int rc = pg_errf(PG_EINTERNAL, errstr, errstr_size,
                     "geo: PROJ cannot set up EPSG:4326 -> EPSG:27700: %s", why);
    s_geo_free(g);
    return rc;
}

static int s_get(s_geo **out, char *errstr, size_t errstr_size)
{
    if (pthread_once(&s_key_once, s_make_key) != 0)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "geo: pthread_once failed");
    s_geo *g = pthread_getspecific(s_key);
    if (!g) {
        int rc = s_build(&g, errstr, errstr_size);
        if (rc)
            return rc;
        if (pthread_setspecific(s_key, g) != 0) {
            s_geo_free(g);
            return pg_errf(PG_EINTERNAL, errstr, errstr_size, "geo: pthread_setspecific failed");
        }
    }
    *out = g;
    return 0;
}

/* The grid's false origin puts all of Great Britain in 0..700 km east, 0..1300 km
 * north; the CRS's area of use reaches a little beyond, into the sea. */
#define S_MAX_EASTING 700000.0
#define S_MAX_NORTHING 1300000.0

/* slack: how far outside still counts (a converted point on the edge lands a
 * nanometre either side). */
static int s_on_grid(double easting, double northing, double slack)
{
    return isfinite(easting) && isfinite(northing) && easting >= -slack &&
           easting <= S_MAX_EASTING + slack && northing >= -slack &&
           northing <= S_MAX_NORTHING + slack;
}

static int s_in_area(const s_geo *g, double lat, double lon)
{
    return lat >= g->south && lat <= g->north && lon >= g->west && lon <= g->east;
}

/* PROJ reports failure per coordinate as HUGE_VAL, not through a return code. */
static int s_trans(s_geo *g, PJ_DIRECTION dir, double a, double b, double *x, double *y,
                   char *errstr, size_t errstr_size)
{
    proj_errno_reset(g->pj);
    PJ_COORD r = proj_trans(g->pj, dir, proj_coord(a, b, 0, 0));
    if (!isfinite(r.xy.x) || !isfinite(r.xy.y) || r.xy.x == HUGE_VAL || r.xy.y == HUGE_VAL) {
        int e = proj_errno(g->pj);
        return pg_errf(PG_EINVALID, errstr, errstr_size, "cannot convert the position: %s",
                       e ? proj_context_errno_string(g->ctx, e) : "no result");
    }
    *x = r.xy.x;
    *y = r.xy.y;
    return 0;
}

int pg_geo_wgs84_to_bng(double lat, double lon, double *easting, double *northing, char *errstr,
                        size_t errstr_size)
{
    if (!isfinite(lat) || !isfinite(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "not a WGS 84 position");
    s_geo *g = NULL;
    int rc = s_get(&g, errstr, errstr_size);
    if (rc || !g) /* s_get sets g when it returns 0 */
        return rc ? rc : PG_EINTERNAL;
    if (!s_in_area(g, lat, lon))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "outside the British National Grid's area "
                       "(lat %.2f..%.2f, lon %.2f..%.2f)",
                       g->south, g->north, g->west, g->east);
    double e, n;
    rc = s_trans(g, PJ_FWD, lon, lat, &e, &n, errstr, errstr_size);
    if (rc)
        return rc;
    if (!s_on_grid(e, n, 0.001))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "outside the British National Grid");
    *easting = fmax(e, 0);
    *northing = fmax(n, 0);
    return 0;
}

int pg_geo_bng_to_wgs84(double easting, double northing, double *lat, double *lon, char *errstr,
                        size_t errstr_size)
{
    if (!s_on_grid(easting, northing, 0))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "outside the British National Grid (0..%.0f, 0..%.0f)", S_MAX_EASTING,
                       S_MAX_NORTHING);
    s_geo *g = NULL;
    int rc = s_get(&g, errstr, errstr_size);
    if (rc || !g) /* s_get sets g when it returns 0 */
        return rc ? rc : PG_EINTERNAL;
    double x, y;
    rc = s_trans(g, PJ_INV, easting, northing, &x, &y, errstr, errstr_size);
    if (rc)
        return rc;
    /* The grid's rectangle reaches past the area its datum shift is defined for. */
    if (!s_in_area(g, y, x))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "outside the British National Grid's area");
    *lon = x;
    *lat = y;
    return 0;
}
