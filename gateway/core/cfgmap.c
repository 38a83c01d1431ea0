/* pg_cfgmap: walks a YAML mapping against a table of keys (see cfgmap.h). */
#include "cfgmap.h"

#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

#include "polegate/error.h"

const char *pg_cfgmap_key(const pg_cfgmap *map, size_t i)
{
    const char *entry = (const char *)map->table + i * map->stride;
    return *(const char *const *)(entry + map->key_offset);
}

size_t pg_cfgmap_count(const pg_cfgmap *map)
{
    size_t n = 0;
    while ((!map->n || n < map->n) && pg_cfgmap_key(map, n))
        n++;
    return n;
}

void pg_cfgmap_known(const pg_cfgmap *map, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0, n = pg_cfgmap_count(map); i < n; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? ", " : "",
                 pg_cfgmap_key(map, i));
}

/* Keep the first error; 1 when the walk must stop (out of memory). */
static int s_first(int *first, int rc)
{
    if (rc && !*first)
        *first = rc;
    return rc == PG_ENOMEM;
}

int pg_cfgmap_walk(const pg_cfgmap *map, struct fy_node *mapping, uint64_t *seen)
{
    size_t n = pg_cfgmap_count(map);
    uint64_t given = 0;
    int first = 0;
    void *it = NULL;
    struct fy_node_pair *pair;
    while (mapping && (pair = fy_node_mapping_iterate(mapping, &it))) {
        struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
        const char *name = k && fy_node_get_type(k) == FYNT_SCALAR && !fy_node_is_alias(k)
                               ? fy_node_get_scalar0(k)
                               : NULL;
        size_t i = 0;
        while (name && i < n && strcmp(pg_cfgmap_key(map, i), name))
            i++;
        int rc;
        if (!name || i == n) {
            rc = map->unknown(map->ud, name, k, v);
        } else {
            given |= (uint64_t)1 << i; /* given, even if wrong: not also "missing" */
            rc = map->value(map->ud, i, k, v);
        }
        if (s_first(&first, rc))
            return rc;
    }
    for (size_t i = 0; map->absent && i < n; i++)
        if (!(given & ((uint64_t)1 << i)) && s_first(&first, map->absent(map->ud, i)))
            return PG_ENOMEM;
    if (seen)
        *seen = given;
    return first;
}
