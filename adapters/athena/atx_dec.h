/* The ATX/2 decoder's inside, shared by atx_decode.c (values, the envelope) and
 * atx_decode_bodies.c (the record bodies); no other file includes it. */
#ifndef POLEGATE_ATX_DEC_H
#define POLEGATE_ATX_DEC_H

#include <jansson.h>
#include <stddef.h>

#include "atx.h"
#include "polegate/arena.h"
#include "polegate/error.h"

#define KIND(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x
#define OP(x) POLEGATE__POLE__V1__OPERATION__OPERATION_##x

/* Decoding state for one message: where reasons go and what allocates. */
typedef struct pg_atx_dec {
    pg_arena *arena;
    char *errstr;
    size_t errstr_size;
} pg_atx_dec;

#define PG_ATX_NOMEM(d) pg_errf(PG_ENOMEM, (d)->errstr, (d)->errstr_size, "out of memory")

/* NOTRIM: an envelope member, which must be exact (only body strings are trimmed);
 * PARTIAL: a date that may be YYYY-MM or YYYY. */
enum { PG_ATX_OPTIONAL = 0, PG_ATX_REQUIRED = 1, PG_ATX_NOTRIM = 2, PG_ATX_PARTIAL = 4 };

typedef int (*pg_atx_norm_fn)(const char *s, char *out, char *errstr, size_t errstr_size);

typedef int (*pg_atx_body_fn)(pg_atx_dec *d, const json_t *body, pg_entity_update *eu);

__attribute__((format(printf, 4, 5))) int pg_atx__fail(pg_atx_dec *d, const char *path,
                                                       const char *key, const char *fmt, ...);
const char *pg_atx__type_name(const json_t *v);
int pg_atx__get(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, json_type type,
                int flags, json_t **out);
int pg_atx__string(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                   size_t min, size_t max, char **out);
int pg_atx__code(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                 const pg_atx_table *t, int *out);
int pg_atx__int(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                json_int_t min, json_int_t max, json_int_t *out, int *present);
int pg_atx__date(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                 pg_date **out);
int pg_atx__time(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, int flags,
                 pg_timestamp **out);
void pg_atx__elem_path(char *buf, size_t size, const char *path, const char *key, size_t i);
int pg_atx__strings(pg_atx_dec *d, const json_t *obj, const char *path, const char *key, size_t max,
                    const pg_atx_table *t, char ***out, size_t *n);
int pg_atx__objects(pg_atx_dec *d, const json_t *obj, const char *path, const char *key,
                    json_t **arr, size_t *n, void *vec);
int pg_atx__normalised(pg_atx_dec *d, const json_t *obj, const char *path, const char *key,
                       pg_atx_norm_fn fn, char **out);
/* The decoder of the body of a record of kind; NULL when none. */
pg_atx_body_fn pg_atx__body(int kind);

/* Setters of a body field, returning from the caller on failure. */
#define PG_ATX_SET(field, value)                                                                   \
    do {                                                                                           \
        char *v_ = (value);                                                                        \
        if (v_)                                                                                    \
            (field) = v_;                                                                          \
    } while (0)

/* Shorthands for optional trimmed strings without limits, set only when given. */
#define PG_ATX_OPT_STR(obj, path, key, field)                                                      \
    do {                                                                                           \
        char *s_;                                                                                  \
        if ((rc = pg_atx__string(d, (obj), (path), (key), PG_ATX_OPTIONAL, 0, 0, &s_)))            \
            return rc;                                                                             \
        PG_ATX_SET(field, s_);                                                                     \
    } while (0)

#define PG_ATX_CODE(obj, path, key, flags, table, field)                                           \
    do {                                                                                           \
        int v_;                                                                                    \
        if ((rc = pg_atx__code(d, (obj), (path), (key), (flags), &(table), &v_)))                  \
            return rc;                                                                             \
        (field) = v_;                                                                              \
    } while (0)

#endif
