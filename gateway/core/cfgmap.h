/* pg_cfgmap: the one walker of config maps (a table of keys per YAML mapping), used by
 * the configuration (config.c) and the sharing policy (policy_parse.c). */
#ifndef POLEGATE_GATEWAY_CFGMAP_H
#define POLEGATE_GATEWAY_CFGMAP_H

#include <stddef.h>
#include <stdint.h>

struct fy_node;

/*
 * A config map is a table of entries, each naming a key (the Fluent Bit way: one
 * table parses a section, documents it and rejects what it does not know). The
 * entries are the caller's own structs, stride bytes apart, each holding its key name
 * at key_offset; the table ends at n entries or at an entry whose key is NULL.
 *
 * pg_cfgmap_walk visits the pairs of a mapping in order: a key the table has goes to
 * value(), any other key (or one that is not a plain scalar: name NULL) to unknown();
 * then every entry not given goes to absent() (a required key is missing, or a
 * default applies). Each callback returns 0 to go on, or an error: the walk keeps the
 * first one and goes on so that every problem is reported, except after PG_ENOMEM,
 * which stops it.
 */
typedef struct pg_cfgmap {
    const void *table;
    size_t stride;     /* sizeof the caller's entry */
    size_t key_offset; /* offsetof its `const char *key` */
    size_t n;          /* 0: up to the entry whose key is NULL */
    void *ud;
    int (*value)(void *ud, size_t i, struct fy_node *key, struct fy_node *value);
    int (*unknown)(void *ud, const char *name, struct fy_node *key, struct fy_node *value);
    int (*absent)(void *ud, size_t i); /* NULL: nothing to do */
} pg_cfgmap;

/* Walk mapping (a mapping node) with map. *seen (may be NULL) gets bit i for each entry
 * i given (at most 64 entries). 0 or the first callback error. */
int pg_cfgmap_walk(const pg_cfgmap *map, struct fy_node *mapping, uint64_t *seen);

/* Entry count and the key of entry i. */
size_t pg_cfgmap_count(const pg_cfgmap *map);
const char *pg_cfgmap_key(const pg_cfgmap *map, size_t i);
/* The table's keys as "a, b, c" into out, for messages. */
void pg_cfgmap_known(const pg_cfgmap *map, char *out, size_t size);

#endif
