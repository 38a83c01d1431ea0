/* Shared by the fuzz harnesses: a deterministic idmap and changeset comparison. */
#ifndef POLEGATE_FUZZ_COMMON_H
#define POLEGATE_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/adapter.h"
#include "polegate/error.h"

/* A property the harness checks failed: stop loudly so the fuzzer keeps the input. */
#define PG_FUZZ_ASSERT(cond, ...)                                                                  \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz property failed: %s: ", #cond);                                  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* NX5 GIDs from the FNV-1a hash of the entity's uuid: stable, so the same entity
 * always gets the same GID, as a real idmap guarantees. */
static inline int pg_fuzz_gid_resolve(pg_idmap *self, const char *uuid, int kind,
                                      const char *origin_system, const char *native_id, char *out,
                                      size_t outsize, int *created, char *errstr,
                                      size_t errstr_size)
{
    (void)self, (void)kind, (void)origin_system, (void)native_id, (void)errstr, (void)errstr_size;
    unsigned long long h = 1469598103934665603ULL;
    for (const char *p = uuid ? uuid : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    snprintf(out, outsize, "%016llX", h);
    if (created)
        *created = 0;
    return 0;
}

/* Packed bytes of two changesets are the same, change by change. */
static inline int pg_fuzz_same(const pg_changeset *a, const pg_changeset *b)
{
    if (a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++) {
        const pg_change *x = &a->changes[i], *y = &b->changes[i];
        if (x->type != y->type)
            return 0;
        const ProtobufCMessage *mx =
            x->type == PG_CHANGE_ENTITY ? &x->entity->base : &x->link->base;
        const ProtobufCMessage *my =
            y->type == PG_CHANGE_ENTITY ? &y->entity->base : &y->link->base;
        size_t nx = protobuf_c_message_get_packed_size(mx);
        size_t ny = protobuf_c_message_get_packed_size(my);
        if (nx != ny)
            return 0;
        uint8_t *px = malloc(nx + 1), *py = malloc(ny + 1);
        protobuf_c_message_pack(mx, px);
        protobuf_c_message_pack(my, py);
        int same = memcmp(px, py, nx) == 0;
        free(px);
        free(py);
        if (!same)
            return 0;
    }
    return 1;
}

#endif
