/* polegated configuration's inside, shared by config_keys.c (the config maps: every
 * section and key, their checks, the reference) and config.c (loading); no other file
 * includes it. */
#ifndef POLEGATE_GATEWAY_CONFIG_INT_H
#define POLEGATE_GATEWAY_CONFIG_INT_H

#include <stddef.h>

#include "config.h"

typedef enum pg_config_type {
    PG_CONFIG_STR,   /* char *, a scalar */
    PG_CONFIG_INT,   /* int, a decimal scalar within [min, max] */
    PG_CONFIG_SIZE,  /* size_t, bytes with an optional binary suffix, within [min, max] */
    PG_CONFIG_PROPS, /* a mapping of scalars to scalars, kept in order */
    PG_CONFIG_COUNT, /* size_t, a decimal scalar within [min, max] */
} pg_config_type;

enum {
    PG_CONFIG_REQUIRED = 1, /* no default: the file must give it */
    PG_CONFIG_DERIVED = 2,  /* the default is computed from other settings; def describes it */
};

typedef int (*pg_config_check_fn)(pg_config *cfg, const char *value, char *errstr,
                                  size_t errstr_size);

typedef struct pg_config_entry {
    pg_config_type type;
    const char *key;
    const char *def;
    int flags;
    size_t offset;
    long long min, max;
    pg_config_check_fn check;
    const char *help;
} pg_config_entry;

typedef struct pg_config_section {
    const char *name;
    const pg_config_entry *entries;
    const char *help;
} pg_config_section;

const char *pg_config__type_name(pg_config_type t);
int pg_config__check_endpoint(pg_config *cfg, const char *v, char *errstr, size_t errstr_size);

/* Every section, in the order of the reference (at most PG_CONFIG_MAX_SECTIONS). */
#define PG_CONFIG_MAX_SECTIONS 16
extern const pg_config_section pg_config__sections[];
extern const size_t pg_config__nsections;

#endif
