/* Deterministic corpus of realistic ATX/2 messages for the benchmarks. */
#ifndef PG_BENCH_CORPUS_H
#define PG_BENCH_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/buf.h"

/* How many messages of each record type the last pg_corpus_atx call wrote. */
typedef struct pg_corpus_stats {
    size_t by_type[9]; /* PERSON, LOCATION, VEHICLE, ITEM, WEAPON, TELEPHONE,
                          OCCURRENCE, CUSTODY, INTELLIGENCE */
    size_t deletes, merges, links;
} pg_corpus_stats;

/* Append n ATX/2 messages to out as NDJSON (one message a line), the same bytes for
 * the same n and seed on every machine: every record type in the proportions of a
 * force's daily feed, names with accents, valid PNC/CRO check letters, postcodes,
 * links between the records, updates with rising revisions, some deletes and merges.
 * Force ESX. 0 or PG_ENOMEM. */
int pg_corpus_atx(size_t n, uint64_t seed, pg_buf *out, pg_corpus_stats *stats);

/* The names of the record types, in pg_corpus_stats.by_type order. */
extern const char *const pg_corpus_types[9];

#endif
