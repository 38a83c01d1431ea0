/* Coordinates: WGS 84 (EPSG:4326) <-> British National Grid (OSGB36, EPSG:27700),
 * through PROJ. Thread-safe: each thread gets its own PROJ context. */
#ifndef POLEGATE_GEO_H
#define POLEGATE_GEO_H

#include <stddef.h>

/* 0, or PG_EINVALID (outside the grid's area / not finite) or PG_EINTERNAL (PROJ). */
int pg_geo_wgs84_to_bng(double lat, double lon, double *easting, double *northing, char *errstr,
                        size_t errstr_size);
int pg_geo_bng_to_wgs84(double easting, double northing, double *lat, double *lon, char *errstr,
                        size_t errstr_size);

#endif
