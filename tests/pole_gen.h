/* Random valid canonical entities and links for tests (tests/pole_gen.c). */
#ifndef POLEGATE_TESTS_POLE_GEN_H
#define POLEGATE_TESTS_POLE_GEN_H

#include <stdint.h>

#include "polegate/pole.h"

/* Entities of one generated changeset (every kind at least once). */
#define PG_GEN_ENTITIES 12

/* Start the sequence at seed. */
void pg_gen_seed(uint64_t seed);
/* Where pg_gen_entity allocates (pg_gen_changeset uses its changeset's arena). */
void pg_gen_arena(pg_arena *arena);
/* [lo, hi]; 1 with percent chance. */
int pg_gen_int(int lo, int hi);
int pg_gen_chance(int percent);
/* A copy of s in the arena. */
char *pg_gen_str(const char *s);
/* A valid UPSERT of kind (1-9) with every field its kind has, from Athena (native id
 * "<letter><serial, 10 digits>"), origin force ESX. */
pg_entity_update *pg_gen_entity(int kind, int serial);
/* PG_GEN_ENTITIES entities and links between them, as an ATX-like changeset (each
 * entity, then its links). */
void pg_gen_changeset(pg_changeset *cs);

#endif
