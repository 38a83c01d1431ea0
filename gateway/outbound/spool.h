/* pg_spool: the durable queue of outbound record batches between intake and Kafka. */
#ifndef POLEGATE_GATEWAY_SPOOL_H
#define POLEGATE_GATEWAY_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/buf.h"

typedef struct pg_outbatch pg_outbatch;
typedef struct pg_outrec pg_outrec;
typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;

/*
 * The spool keeps pg_outbatch records (one batch per native message: an entity and
 * its links, or one dead letter) in two named databases of the gateway's store:
 *
 *     spool.batch   key: 8-byte big-endian sequence number -> the serialised batch
 *     spool.meta    "state" -> next sequence, batches, records, bytes (one value)
 *
 * Batches are appended inside the caller's write transaction, the same one in which
 * the ledger applied the message, so that ledger state and the records to publish
 * commit together or not at all (one fsync for a whole group of messages). The
 * producer reads them back in sequence order, publishes them in a Kafka transaction,
 * and removes them only once that transaction has committed: a batch leaves the spool
 * when the broker has stored it, never before.
 *
 * Each batch keeps its party (pg_outbatch.party, and a record's own when it differs),
 * so that the producer's disclose/withdraw events name who caused them. Batches
 * spooled before parties were recorded (value format PGB1) are still read; their
 * records have no party.
 *
 * The spool is bounded by bytes (of serialised batches) and records (pg_outrecs);
 * pg_spool_append answers PG_ERETRY ("spool full: ...") instead of growing past either
 * bound, except that an empty spool always takes one batch, however large, so that no
 * message is refused for ever.
 *
 * Threads: the object is shared by the intake (append) and the producer (read,
 * remove); store transactions serialise the writes. pg_spool_notify/_wait carry the
 * "there is something new" signal between them without polling.
 */

typedef struct pg_spool pg_spool;

typedef struct pg_spool_limits {
    size_t max_bytes;   /* 0: no bound */
    size_t max_records; /* 0: no bound */
} pg_spool_limits;

typedef struct pg_spool_stats {
    uint64_t batches;   /* waiting */
    uint64_t records;   /* waiting, pg_outrecs */
    uint64_t bytes;     /* waiting, serialised */
    uint64_t next_seq;  /* the sequence the next append gets */
    uint64_t first_seq; /* of the oldest batch waiting; 0 when empty */
} pg_spool_stats;

/* The spool of store, opening (creating) its databases in a transaction of its own:
 * call it while this thread has no transaction open. limits may be NULL (no bounds).
 * NULL on failure with errstr. The store must outlive the spool. */
pg_spool *pg_spool_new(pg_store *store, const pg_spool_limits *limits, char *errstr,
                       size_t errstr_size);
void pg_spool_destroy(pg_spool **p);
void pg_spool_set_limits(pg_spool *self, const pg_spool_limits *limits);
/* 1: appends pass the bounds (a replay of the write-ahead log stores what was accepted
 * under the bounds of its time, whatever they are now); 0: the bounds apply again. */
void pg_spool_set_unbounded(pg_spool *self, int unbounded);

/* Append batch inside the write transaction txn; *seq (may be NULL) gets its sequence
 * number. A batch with no records is not stored (0, *seq = 0). 0; PG_ERETRY with
 * "spool full: ..." when a bound would be passed (nothing written); PG_EINVALID for a
 * record without topic or key, or more than PG_OUTREC_MAX_HEADERS headers; PG_ESTORE
 * (txn then unusable when the reason contains MDB_MAP_FULL). */
int pg_spool_append(pg_spool *self, pg_store_txn *txn, const pg_outbatch *batch, uint64_t *seq,
                    char *errstr, size_t errstr_size);

/* Append to out the records of the oldest batch whose sequence is greater than after
 * (every string and value copied into out's arena, so out outlives txn; out is not
 * reset first, so that one pg_outbatch can hold a window of batches; each record's
 * party is its own or its batch's, out->party is not set); *seq gets
 * its sequence and *bytes (may be NULL) its serialised size. Any transaction. 0,
 * PG_ENOTFOUND (none), PG_ESTORE, PG_ENOMEM, PG_EINTERNAL (a batch that does not
 * parse: the store is damaged). Audit events are not kept (see pg_spool_append). */
int pg_spool_next(pg_spool *self, pg_store_txn *txn, uint64_t after, uint64_t *seq, size_t *bytes,
                  pg_outbatch *out, char *errstr, size_t errstr_size);

/* Remove every batch with first <= sequence <= last (write txn), keeping the counters
 * right. *removed (may be NULL) gets how many. 0 or PG_ESTORE. */
int pg_spool_remove(pg_spool *self, pg_store_txn *txn, uint64_t first, uint64_t last,
                    size_t *removed, char *errstr, size_t errstr_size);

/* A policy change withholds what it withdraws before it is published. Inside the
 * write transaction txn of the reconcile that made withdrawals: every disclose record
 * still spooled whose topic and key a withdraw record of withdrawals has (whatever the
 * destination's name: a renamed one keeps its topic) is dropped from its batch (the batch removed
 * when nothing is left of it), and each becomes a withhold event appended to withdrawals' audit
 * events (party withdrawals->party, the withdrawal's policy version and reason). The withdrawals
 * themselves are sent: a disclosure published before still has to be withdrawn.
 * superseded (the policy changed): so is every disclose record still spooled that a
 * withdrawal or disclosure of its topic and key spooled after it supersedes (decided
 * under the policy before, consumers keep the later one, and the new policy may forbid
 * the earlier); its withhold event has that record's destination and policy version,
 * and the withdrawal's reason or "superseded".
 * *dropped gets the number of records dropped. Call it between pg_spool_rewrite_begin
 * and pg_spool_rewrite_end, so that the producer does not commit a window it read
 * from the spool before the rewrite committed. 0, PG_ESTORE, PG_ENOMEM, PG_EINTERNAL. */
int pg_spool_withhold(pg_spool *self, pg_store_txn *txn, pg_outbatch *withdrawals, int superseded,
                      size_t *dropped, size_t *reformed, char *errstr, size_t errstr_size);
/* How a policy change re-forms a withdrawal still spooled (pg_router_reform_withdrawal
 * has this shape): rec as the policy now forms it appended to out (1), or 0 when rec
 * stays as it is, or a negative error. With one set, pg_spool_withhold with superseded
 * also replaces each spooled withdrawal it re-forms (its tombstone with it), counted in
 * *reformed: a withdrawal decided under the policy before goes in the form the new one
 * gives it (it may no longer let the destination see the deletion's marking, kind or
 * origin.org_unit). */
typedef int (*pg_spool_reform_fn)(void *ud, const pg_outrec *rec, pg_outbatch *out, char *errstr,
                                  size_t errstr_size);
void pg_spool_set_reform(pg_spool *self, pg_spool_reform_fn fn, void *ud);
/* Mark a rewrite of the spool under way (before its write transaction begins), and
 * over (after it committed or aborted; it also notifies waiters). */
void pg_spool_rewrite_begin(pg_spool *self);
void pg_spool_rewrite_end(pg_spool *self);
/* Rewrites begun so far, times two, plus one while one is under way: a window read
 * while it is odd, or when it differs by the commit, may hold records a rewrite
 * dropped. */
uint64_t pg_spool_rewrites(pg_spool *self);

/* The counters as txn sees them. 0 or PG_ESTORE. */
int pg_spool_stat(pg_spool *self, pg_store_txn *txn, pg_spool_stats *out, char *errstr,
                  size_t errstr_size);
/* The same in a read transaction of its own (the calling thread must have none open). */
int pg_spool_stat_now(pg_spool *self, pg_spool_stats *out, char *errstr, size_t errstr_size);

/* Tell waiters that batches were committed. */
void pg_spool_notify(pg_spool *self);
/* Wait up to timeout_ms for a notify after the one numbered *gen was seen; updates *gen.
 * 1 when notified, 0 on timeout. */
int pg_spool_wait(pg_spool *self, uint64_t *gen, int timeout_ms);
/* The number of notifies so far: a reader that sees it change knows a writer is busy. */
uint64_t pg_spool_generation(pg_spool *self);

/* Serialise batch's party and records (audit events are not part of it) into out (appended):
 * the spool's value format, also what pg_spool_decode reads. 0, PG_ENOMEM, PG_EINVALID. */
int pg_spool_encode(const pg_outbatch *batch, pg_buf *out, char *errstr, size_t errstr_size);
/* Parse data into out (appending records; strings copied into out's arena). 0,
 * PG_ENOMEM, PG_EINTERNAL with the offset of the damage. */
int pg_spool_decode(const uint8_t *data, size_t len, pg_outbatch *out, char *errstr,
                    size_t errstr_size);

#endif
