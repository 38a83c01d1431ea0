/* pg_ledger's inside, shared by ledger.c (applying changes) and ledger_query.c (what it
 * holds); no other file includes it. */
#ifndef POLEGATE_GATEWAY_LEDGER_INT_H
#define POLEGATE_GATEWAY_LEDGER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "store.h"

/* Index values: 'F' + link id for a link from the key entity, 'T' + link id to it. */
#define PG_LEDGER_FROM 'F'
#define PG_LEDGER_TO 'T'

struct pg_ledger {
    pg_store *store;
    pg_store_db entity; /* entity id -> pg_ledger_hdr + packed EntityUpdate */
    pg_store_db link;   /* link id -> pg_ledger_hdr + packed LinkUpdate */
    pg_store_db index;  /* entity id -> {'F'|'T' + live link id} (DUPSORT) */
    pg_store_db msgid;  /* message id -> 8-byte big-endian sequence */
    pg_store_db msgseq; /* 8-byte big-endian sequence -> message id (oldest first) */
    pg_store_db merged; /* merged-away entity id -> packed EntityRef of its survivor */
    size_t seen_limit;
    int delete_wins_ties; /* a DELETE at the stored version of a live entity applies */
    int explicit_;        /* a partner's ledger's output: rules 3 and 6 are theirs (rule 10) */
};

/* Stored before each packed record so that stale checks and kind fill-in need no
 * unpacking. Copied in and out with memcpy: LMDB values are only 2-byte aligned. */
typedef struct pg_ledger_hdr {
    uint64_t version;
    uint32_t kind;
    uint8_t deleted; /* 0 live, PG_LEDGER_DELETED, or PG_LEDGER_MERGED_AWAY */
    uint8_t pad[3];
} pg_ledger_hdr;

#define PG_LEDGER_DELETED 1
/* Deleted because a merge named it (rule 6): it no longer exists, for good. */
#define PG_LEDGER_MERGED_AWAY 2

/* A stored record as found: the packed bytes point into the map (valid until the next
 * write to its database). */
typedef struct pg_ledger_rec {
    int found;
    pg_ledger_hdr hdr;
    const uint8_t *pb;
    size_t pblen;
} pg_ledger_rec;

int pg_ledger__rec_get(pg_store_txn *txn, pg_store_db db, const char *id, pg_ledger_rec *rec,
                       char *errstr, size_t errstr_size);
void *pg_ledger__unpack(const ProtobufCMessageDescriptor *desc, const pg_ledger_rec *rec,
                        pg_arena *arena, const char *id, char *errstr, size_t errstr_size);
int pg_ledger__index_ids(pg_store_txn *txn, pg_ledger *ledger, const char *id, char dir,
                         pg_arena *arena, char ***ids, size_t *count, char *errstr,
                         size_t errstr_size);

#endif
