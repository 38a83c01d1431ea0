/* pg_partner: partner records in: consumed canonical updates -> inbound checks ->
 * partner ledger -> native messages -> the local RMS; offsets committed once stored. */
#ifndef POLEGATE_GATEWAY_PARTNER_H
#define POLEGATE_GATEWAY_PARTNER_H

#include <stddef.h>
#include <stdint.h>

#include "consumer.h"
#include "dlq.h"
#include "polegate/adapter.h"
#include "rms_delivery.h"

typedef struct pg_store pg_store;
typedef struct pg_audit pg_audit;
typedef struct pg_policy pg_policy;
typedef struct pg_compose_stats pg_compose_stats;

/*
 * pg_partner is the partner direction below the Kafka consumer (docs/delivery.md):
 *
 * 1. pg_partner_take(records): in ONE write transaction of the store, for each record
 *    consumed from a partner topic, in order:
 *    - a tombstone: skipped (counted);
 *    - no pg-type, or one this version does not know, a value that is not the
 *      protobuf its pg-type says, or an update without an id, an operation or link
 *      ends: rejected (audit "reject", outcome "PG_EINVALID:..."), a partner dead letter;
 *    - a record of our own force: dropped, never delivered back (counted "own");
 *    - pg_policy_inbound_allowed: a record from a topic of no configured partner, or
 *      of an origin that partner may not speak for: rejected (audit "reject",
 *      outcome "inbound-policy");
 *    - its version against the last version received of the same id (entity or
 *      link): not greater -> dropped, counted as duplicate (equal) or stale (lower);
 *      accepted records are audited "receive" after the commit;
 *    then the partner ledger applies the accepted updates, gateway/compose makes the
 *    native messages (ids and revisions from the id map), and each message is
 *    appended to the IMPORT QUEUE (partner.import queue in the same store) with a correlation id
 *    that stays the same across restarts. One commit (one fsync) for the batch.
 *    When the partner ledger refuses a change as invalid, or the local adapter cannot
 *    encode one, the take is undone and its records taken again in halves (a
 *    transaction each, halved again while refused); the record whose change is
 *    refused is then a partner dead
 *    letter (audit "reject", outcome "PG_EINVALID:ledger" or "PG_EUNSUPPORTED"), with
 *    nothing of it applied: neither its version nor the partner ledger moves, so that
 *    its next version, or its replay, is taken.
 * 2. pg_partner_poll: submits import queue messages to the RMS (gateway/inbound/rms_delivery.h,
 * window bounded), reads the acks, and removes acknowledged messages from the import queue. A
 * message the RMS rejects is logged, counted and never sent again: it is kept as an import dead
 * letter (gateway/core/dlq.h, kind PG_DLQ_IMPORT: the RMS's reason, the origin forces, the
 * canonical ids, the format, the time, the bytes) and audited "reject" (outcome "rms-rejected", one
 * event per canonical id), and the import queue entry removed in the same transaction that keeps
 * the dead letter; its offsets become committable only after that commit. Everything else is sent
 * until stored, across restarts.
 * 3. Offsets: a batch's offsets (next offset per topic and partition) become
 *    committable when every message composed up to the end of that batch has been
 *    acknowledged by the RMS (acks come in order); pg_partner_committable hands them
 *    to the caller, who commits them to Kafka.
 *
 * A crash anywhere loses nothing and applies nothing twice: before the commit of a
 * batch nothing of it happened (Kafka delivers it again); after it, the import queue holds
 * its messages (sent again with the same correlation ids: an RMS that stored one acks
 * it again without storing it twice), and Kafka's redelivery of its records, whose
 * offsets were not committed, finds their versions already received.
 *
 * Backpressure: pg_partner_busy is 1 while the delivery window is full or composed
 * messages wait to be submitted; the caller stops taking records (and pauses the
 * consumer) until it is 0. An RMS that is down holds everything in the import queue and the
 * partner topic, never in memory without bound.
 *
 * Threads: a pg_partner is used by one thread (pg_partner_service, in
 * partner_service.h, runs one).
 */

typedef struct pg_partner pg_partner;

typedef struct pg_partner_opts {
    const char *force;                   /* this gateway's force */
    const pg_adapter_ops *adapter;       /* the local RMS's format */
    const pg_policy *policy;             /* partners and what they may speak for; borrowed */
    pg_store *store;                     /* borrowed */
    pg_audit *audit;                     /* NULL: no audit events; borrowed */
    const char *const *adapter_settings; /* the adapter's setting values (NULL: defaults) */
    pg_rms_delivery_config delivery;     /* transport, endpoint, window...; on_result is ours */
    int64_t now_ms;                      /* sending time written (0: the clock); for tests */
    pg_dlq_limits dlq_limits;            /* bounds of the dead letters (0s: dlq.h's defaults) */
} pg_partner_opts;

/* One consumed record (the consumer's shape). */
typedef pg_consumer_record pg_partner_record;

typedef struct pg_partner_stats {
    uint64_t records;    /* records taken */
    uint64_t accepted;   /* updates that passed every check and reached the ledger */
    uint64_t duplicates; /* version equal to the last received */
    uint64_t stale;      /* version lower than the last received */
    uint64_t own;        /* records of our own force, dropped */
    uint64_t rejected;   /* invalid, or refused by the inbound policy */
    uint64_t skipped;    /* tombstones */
    uint64_t composed;   /* native messages put in the import queue */
    uint64_t submitted;  /* messages handed to the transport (re-sends not counted) */
    uint64_t stored;     /* acknowledged stored by the RMS */
    uint64_t rms_rejected;
    uint64_t batches;        /* write transactions committed by take */
    uint64_t audit_failures; /* takes and settlements held back: the audit log took no
                              * events (fail closed) */
} pg_partner_stats;

/* A partner pipeline over opts (copied; strings must outlive it, except delivery's,
 * which pg_rms_delivery copies). Opens the partner ledger, the id map and the import queue in
 * store and loads the import queue left by an earlier run (sent first). NULL with errstr. */
pg_partner *pg_partner_new(const pg_partner_opts *opts, char *errstr, size_t errstr_size);
/* Removes what the RMS acknowledged from the import queue, then frees it; messages not
 * acknowledged stay in the import queue for the next run. NULL-safe. */
void pg_partner_destroy(pg_partner **p);

/* Take records[0..n) as described above. 0; or negative with errstr when the
 * transaction failed (PG_ESTORE, PG_ENOMEM): nothing of the batch happened, and the
 * caller takes the same records again later. */
int pg_partner_take(pg_partner *self, const pg_partner_record *records, size_t n, char *errstr,
                    size_t errstr_size);
/* Replay partner dead letter id: its record (bytes and headers as they came) taken
 * again by pg_partner_take, through every check a live record passes, after a fix (a
 * partner configured, a ceiling raised). In the take's transaction the dead letter is
 * removed; a record refused again becomes a new dead letter with today's reason. Its
 * offset is not committed again (the consumer is past it). The audit events are the
 * take's, with party "dlq-replay:<topic>". 0 taken (outcome: "accepted", "duplicate",
 * "stale"); PG_EINVALID refused again (outcome "refused", errstr its reason);
 * PG_EUSAGE not a partner dead letter or kept without its headers; PG_ETOOBIG only part
 * of it kept (both kept as they are); PG_ENOTFOUND, or the take's error. outcome holds
 * 16 bytes. Only the process that owns the partner pipeline may call it: the daemon's
 * partner thread, or `polegate dlq replay` while the daemon is stopped. */
int pg_partner_replay(pg_partner *self, uint64_t id, char outcome[16], char *errstr,
                      size_t errstr_size);
/* Replay every partner dead letter asked for with pg_dlq_replay_ask (`polegate dlq
 * replay` while the daemon runs), lowest id first, and answer each request with
 * pg_partner_replay's outcome ("not-found" for PG_ENOTFOUND) and reason. The number
 * answered, or negative with errstr when a replay failed on the store or the audit log
 * (that request waits for the next call) or an answer could not be written. */
int pg_partner_replay_asked(pg_partner *self, char *errstr, size_t errstr_size);
/* Submit what waits, wait up to timeout_ms for acks, and forget stored messages from
 * the import queue. The number of results, or negative with errstr (a store failure: the
 * results stay pending and are retried by the next call). */
int pg_partner_poll(pg_partner *self, int timeout_ms, char *errstr, size_t errstr_size);
/* 1 while no more records should be taken (see "Backpressure"). */
int pg_partner_busy(const pg_partner *self);
/* Messages composed and not yet acknowledged (import queue entries). */
size_t pg_partner_pending(const pg_partner *self);

/* Hand each (topic, partition, next offset) that became committable since the last
 * call to fn, in order. */
typedef int (*pg_partner_offset_fn)(void *arg, const char *topic, int32_t partition,
                                    int64_t next_offset);
int pg_partner_committable(pg_partner *self, pg_partner_offset_fn fn, void *arg);

void pg_partner_get_stats(const pg_partner *self, pg_partner_stats *out);
/* to += d, field by field (a field added to pg_partner_stats is added there). */
void pg_partner_stats_add(pg_partner_stats *to, const pg_partner_stats *d);
void pg_partner_get_compose_stats(const pg_partner *self, pg_compose_stats *out);

#endif
