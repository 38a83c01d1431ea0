/* pg_publisher: the spool's batches to Kafka in transactions; a batch leaves the spool
 * only once the broker has stored it. */
#ifndef POLEGATE_GATEWAY_PUBLISHER_H
#define POLEGATE_GATEWAY_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

typedef struct pg_audit pg_audit;
typedef struct pg_spool pg_spool;
typedef struct pg_outbatch pg_outbatch;
typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;

typedef struct pg_config_kv pg_config_kv;

/*
 * The producer publishes what the spool holds, oldest batch first, and nothing else:
 * each pg_outrec exactly as given (topic, key, value or tombstone, headers).
 *
 * One Kafka transaction carries a window of batches (up to window_batches and
 * window_bytes): begin, produce every record, wait until the broker stored them, write
 * the disclose/withdraw audit events of its records (fdatasync), commit. Only when the
 * commit succeeded are the batches removed from the spool. Removals are grouped: while
 * more batches wait behind them, committed windows are removed together (one store
 * transaction) at most every 500 ms, at once when nothing waits; the next window is
 * read after them meanwhile. So:
 *
 * - the records of one native message (an entity and its links) become visible to
 *   read_committed consumers together or not at all;
 * - a crash anywhere before the removal leaves the batches in the spool, and the next
 *   start publishes them again: a duplicate a consumer can see carries the same key
 *   and version as the first copy (docs/topics.md says to drop it);
 * - an abortable error (a record that timed out while the broker was away, a
 *   refused produce) aborts the transaction and the same window is sent again;
 * - a fatal error (fenced by a newer instance, an unrecoverable idempotence state)
 *   destroys the librdkafka handle and makes a new one, which resumes from the spool;
 * - every record produced again is counted (pg_publisher_stats.resent), after a restart
 *   too: the highest spool sequence ever produced is kept in the store's directory
 *   (sentmark.h) and raised, with an fdatasync, before each window is produced;
 * - a removal that fails after the commit (store or disk full) stops publishing: the
 *   round only retries the removal, logging an error, until it succeeds; the window is
 *   never read and sent again meanwhile (stats: remove_failures, stalled).
 *
 * librdkafka's transactions require message.timeout.ms <= transaction.timeout.ms, so
 * a record cannot wait for ever inside librdkafka; it need not: when it times out the
 * transaction aborts and the spool, which still holds it, sends it again. Memory is
 * bounded by the window, whatever the backlog in the spool.
 *
 * transactional.id: given by the caller (the daemon derives it from the force and
 * the store, docs/reliability.md). Two producers with the same id fence each other:
 * one active instance per force's intake.
 */

typedef struct pg_publisher pg_publisher;

typedef struct pg_publisher_opts {
    const char *brokers;          /* bootstrap.servers */
    const char *transactional_id; /* required */
    /* Passed to librdkafka after polegate's defaults, so they override them; each must
     * pass pg_kafka_check_property. Not retained. */
    const pg_config_kv *properties;
    size_t property_count;
    /* Borrowed; must outlive the producer. */
    pg_store *store;
    pg_spool *spool;
    pg_audit *audit;            /* NULL: no audit events written */
    size_t window_batches;      /* batches per transaction; 0: 2048 */
    size_t window_bytes;        /* serialised bytes per transaction; 0: 16 MiB */
    int transaction_timeout_ms; /* 0: 60000 (also message.timeout.ms) */
    int call_timeout_ms;        /* longest single wait on the broker; 0: 1000 */
    /* Called on the producer's thread after each commit of the batches first_seq..
     * last_seq (spool sequences; their removal may follow later), with the window's
     * records (borrowed for the call). NULL: none. The metrics use it. */
    void (*on_commit)(void *ud, const pg_outbatch *win, uint64_t first_seq, uint64_t last_seq);
    void *on_commit_ud;
} pg_publisher_opts;

/* Counters since the producer was made (thread-safe snapshot). */
typedef struct pg_publisher_stats {
    uint64_t produced;        /* records handed to librdkafka, re-sends included */
    uint64_t delivered;       /* records in committed transactions */
    uint64_t failed;          /* delivery reports with an error (the window is sent again) */
    uint64_t batches;         /* batches committed and removed from the spool */
    uint64_t removals;        /* store transactions that removed committed batches */
    uint64_t transactions;    /* committed */
    uint64_t aborts;          /* transactions aborted (their batches sent again) */
    uint64_t restarts;        /* librdkafka handles remade after a fatal error */
    uint64_t audit_errors;    /* audit events that could not be written */
    uint64_t audit_failing;   /* 1 while the audit log refuses a window's events (nothing is
                               * published: not ready); 0 once it takes them */
    uint64_t resent;          /* records produced again (their window aborted, a new handle,
                               * or produced by an earlier process: sentmark.h) */
    uint64_t remove_failures; /* removals of a committed window that failed */
    uint64_t stalled;         /* 1 while publishing is stopped on such a removal, or on a
                               * mark of what was sent that cannot be written */
    int ready;                /* the handle holds its producer id (init_transactions done) */
} pg_publisher_stats;

/* A producer (not yet running). Makes the librdkafka handle, so that a bad property
 * fails here; connecting happens in the background. NULL with errstr on failure. */
pg_publisher *pg_publisher_new(const pg_publisher_opts *opts, char *errstr, size_t errstr_size);
/* Stops the thread if running (pg_publisher_stop), frees everything; an open Kafka
 * transaction is abandoned (the broker aborts it) and its batches stay in the spool.
 * Sets *p to NULL; NULL-safe. */
void pg_publisher_destroy(pg_publisher **p);

/* One round in the calling thread: make sure transactions are initialised, then
 * publish one window of the spool in one transaction, or finish (commit or abort) the
 * one left open by an earlier round that timed out. Returns the number of batches
 * committed, or removed by a round that only removes (0 when the spool was empty and
 * nothing was left to remove), PG_ERETRY (broker not ready or
 * a transaction aborted: call again), or PG_EKAFKA / PG_ESTORE / PG_EINTERNAL with
 * errstr. Not while the thread runs. */
int pg_publisher_step(pg_publisher *self, char *errstr, size_t errstr_size);

/* Run pg_publisher_step in a thread of the producer's own until pg_publisher_stop,
 * woken by pg_spool_notify. 0 or PG_EINTERNAL. */
int pg_publisher_start(pg_publisher *self, char *errstr, size_t errstr_size);
/* Ask the thread to stop and join it (within about call_timeout_ms). NULL-safe when
 * not started. */
void pg_publisher_stop(pg_publisher *self);
/* Wait up to timeout_ms for the spool to be empty (the thread publishing). 0 when it
 * is, PG_ETIMEOUT with how much is left otherwise. */
int pg_publisher_drain(pg_publisher *self, int timeout_ms, char *errstr, size_t errstr_size);

void pg_publisher_get_stats(const pg_publisher *self, pg_publisher_stats *out);
/* The last error a round met (empty when the last round succeeded), for logs and
 * tests; copied into out. */
void pg_publisher_last_error(const pg_publisher *self, char *out, size_t size);
const char *pg_publisher_transactional_id(const pg_publisher *self);

/* Tests: raise a fatal error in the current librdkafka handle, as librdkafka would. */
int pg_publisher_test_fatal(pg_publisher *self);
/* Tests: make the mark of what was sent (sentmark.h) sync with fn instead of
 * fdatasync. */
void pg_publisher_test_mark_sync(pg_publisher *self, int (*fn)(int fd));

#endif
