/* Sample messages for the pbjson tests: canonical updates of every kind and test-only
 * messages with every proto field type, shared by test_pbjson and pbjson_dump. */
#ifndef PG_TESTS_PBJSON_SAMPLES_H
#define PG_TESTS_PBJSON_SAMPLES_H

#include <stddef.h>

#include "polegate/arena.h"
#include "polegate/pole.h"

typedef struct pg_sample {
    const char *name;
    const ProtobufCMessage *msg;
} pg_sample;

#define PG_SAMPLES_MAX 64

/* Build every sample in arena a into out (room for PG_SAMPLES_MAX). Returns how many,
 * 0 when out of memory. */
size_t pg_samples_build(pg_arena *a, pg_sample *out);

/* The sample called name, or NULL. */
const ProtobufCMessage *pg_sample_find(const pg_sample *s, size_t n, const char *name);

#endif
