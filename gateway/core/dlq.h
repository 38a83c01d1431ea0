/* pg_dlq: dead letters, the native messages that can never be translated, kept with
 * their reason for an operator to inspect and replay after a fix. */
#ifndef POLEGATE_GATEWAY_DLQ_H
#define POLEGATE_GATEWAY_DLQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct pg_buf pg_buf;
typedef struct pg_changeset pg_changeset;
typedef struct pg_outbatch pg_outbatch;
typedef struct pg_rms_delivery_config pg_rms_delivery_config;
typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;
struct pg_policy;

/*
 * A message the adapter (or the ledger) rejects as invalid is a dead letter. It is
 * kept twice, in the same store transaction that acknowledges it "rejected":
 *
 * - locally, in the named databases "dlq.entry" (8-byte big-endian id -> entry) and
 *   "dlq.meta" of the gateway's store, bounded by entries and bytes: the oldest are
 *   evicted first and counted (pg_dlq_stats.evicted); partner entries have bounds of
 *   the same size of their own and evict only each other, so that a partner cannot
 *   evict our RMS's dead letters (each class's ids in "dlq.own" and "dlq.partner",
 *   made again from the entries at open when they do not add up);
 * - as one record for the dead-letter topic (polegate.<force>.dlq.v1), added to the
 *   spool like any other outbound batch (pg_dlq_outrec): value = the original bytes,
 *   headers pg-reason, pg-origin-force, pg-received-at, pg-format, pg-dlq-id.
 *
 * Operators list, show, replay and purge the local entries with `polegate dlq`
 * (docs/reliability.md). LMDB lets that command open the store of a running daemon,
 * and ask it for replays ("dlq.replay", below).
 */

typedef struct pg_dlq pg_dlq;

typedef struct pg_dlq_limits {
    size_t max_entries; /* 0: PG_DLQ_DEFAULT_MAX_ENTRIES */
    size_t max_bytes;   /* of kept original bytes; 0: PG_DLQ_DEFAULT_MAX_BYTES */
    size_t max_message; /* original bytes kept per entry; 0: PG_DLQ_DEFAULT_MAX_MESSAGE */
} pg_dlq_limits;

#define PG_DLQ_DEFAULT_MAX_ENTRIES 10000
#define PG_DLQ_DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define PG_DLQ_DEFAULT_MAX_MESSAGE ((size_t)8 << 20)
/* The most of the original bytes put in the topic's record: Kafka's default largest
 * record is 1 MB; more would block the spool on a record the broker always refuses. */
#define PG_DLQ_MAX_RECORD_VALUE ((size_t)900 << 10)

/* Where a dead letter came from. */
typedef enum pg_dlq_kind {
    PG_DLQ_INTAKE = 0, /* a message of our RMS that could not be translated (intake) */
    PG_DLQ_IMPORT = 1, /* a partner record's native message our RMS rejected (partner) */
    PG_DLQ_PARTNER = 2 /* a partner's Kafka record we refused (its checks, the policy) */
} pg_dlq_kind;

/* "intake", "import", "partner"; "?" when unknown. */
const char *pg_dlq_kind_name(pg_dlq_kind kind);

/* One dead letter. In results of _get and _each the pointers are valid as the call
 * says. */
typedef struct pg_dlq_entry {
    uint64_t id;         /* assigned by pg_dlq_add, from 1, never reused */
    int64_t received_ms; /* since the epoch */
    const char *reason;  /* "<member path>: <rule>" */
    const char *origin;  /* the force whose intake received it */
    const char *format;  /* the adapter's format: "atx", "nx5" */
    const uint8_t *data; /* the original bytes, at most max_message of them */
    size_t len;
    size_t original_len; /* > len when the message was cut */
    /* PG_DLQ_IMPORT and PG_DLQ_PARTNER only ("" in results for intake entries). Import:
     * reason is the RMS's, origin the partner / origin force(s), received_ms when the
     * RMS rejected it. Partner: the packed update as it came, reason the rule it broke,
     * origin the force it claimed, format its pg-type. */
    pg_dlq_kind kind;
    const char *ref; /* import: the correlation id the RMS saw ("pg-<instance>-<seq>");
                      * partner: "<topic> [<partition>] @<offset>" */
    const char *ids; /* the canonical ids the message carried, comma-separated */
    /* PG_DLQ_PARTNER only: the record's headers as they came, for a replay that passes
     * the same checks (NULL: the header was absent). headers_kept is 0 in entries
     * written before they were kept: those are not replayed. */
    int headers_kept;
    const char *key, *hdr_force, *hdr_agreement;
    /* PG_DLQ_IMPORT only: what the message was in the order of the partner side's
     * operations, so that a replay can tell whether a later one of its records came
     * since (pg_dlq_note_composed). seq: its import queue sequence number, 0 in entries
     * kept before it was noted (those are not replayed: pg_dlq_resend). ops: per record
     * and link it carries "<id>:<op>:<version>", comma-separated, op "upsert",
     * "delete" or "merged" (a merged_from ref of a survivor it carries), version the
     * revision (link: version) it was sent at ("" with seq 0). */
    uint64_t seq;
    const char *ops;
} pg_dlq_entry;

typedef struct pg_dlq_stats {
    uint64_t entries;
    uint64_t bytes;
    uint64_t evicted; /* since the store was made */
    uint64_t next_id;
} pg_dlq_stats;

/* The dead-letter store of store (databases opened in a transaction of its own: call
 * it while this thread has none open). limits may be NULL (defaults). NULL with
 * errstr on failure. */
pg_dlq *pg_dlq_new(pg_store *store, const pg_dlq_limits *limits, char *errstr, size_t errstr_size);
void pg_dlq_destroy(pg_dlq **p);

/* Keep entry (id ignored; data cut to max_message bytes, original_len taken from len
 * when 0) in the write transaction txn, evicting the oldest entries as the bounds
 * require; entry->id gets the new id and *evicted (may be NULL) how many went. 0 or
 * PG_ESTORE / PG_ENOMEM. A partner entry whose ref (the Kafka record) is already kept
 * is not kept again: PG_EDUPLICATE, entry->id the kept one's (one deleted, replayed or
 * evicted since does not count). */
int pg_dlq_add(pg_dlq *self, pg_store_txn *txn, pg_dlq_entry *entry, size_t *evicted, char *errstr,
               size_t errstr_size);
/* Entry id, its strings and bytes pointing into the store: valid until txn ends or
 * writes to the dlq. 0, PG_ENOTFOUND, PG_ESTORE, PG_EINTERNAL (damaged). */
int pg_dlq_get(pg_dlq *self, pg_store_txn *txn, uint64_t id, pg_dlq_entry *out, char *errstr,
               size_t errstr_size);
/* Call fn for every entry, oldest first (pointers valid during the call). Non-zero from
 * fn stops and is returned. 0, PG_ESTORE, PG_EINTERNAL. */
int pg_dlq_each(pg_dlq *self, pg_store_txn *txn, int (*fn)(void *ud, const pg_dlq_entry *e),
                void *ud, char *errstr, size_t errstr_size);
/* Delete entry id (write txn). 0, PG_ENOTFOUND, PG_ESTORE. */
int pg_dlq_delete(pg_dlq *self, pg_store_txn *txn, uint64_t id, char *errstr, size_t errstr_size);
int pg_dlq_stat(pg_dlq *self, pg_store_txn *txn, pg_dlq_stats *out, char *errstr,
                size_t errstr_size);

/* Append to batch the dead-letter topic's record of entry: key "<origin>/dlq/<id>",
 * value the original bytes (at most PG_DLQ_MAX_RECORD_VALUE; pg-truncated then says
 * the full length), the headers above and pg-origin-force. 0, PG_ENOMEM. */
int pg_dlq_outrec(pg_outbatch *batch, const char *topic, const pg_dlq_entry *entry, char *errstr,
                  size_t errstr_size);

/* Deliver import dead letter id (PG_DLQ_IMPORT) to the RMS import endpoint again, as
 * the partner direction does (cfg: transport, endpoint...; on_result is ours), with
 * correlation id "<ref>.dlq-<id>", and wait up to timeout_ms for its result. Stored:
 * the dead letter is deleted, 0. Rejected again: it is kept, PG_EINVALID with the
 * RMS's reason in errstr. No result in time: kept, PG_ETIMEOUT. Records of a force policy (NULL:
 * not checked) no longer takes from any partner: not sent, kept, PG_EPOLICY. Superseded: a
 * record or link it carries had a later operation composed since (pg_dlq_note_composed: the
 * partner updated, deleted or merged it away after this dead letter), or what was last composed
 * of one is not known (an entry kept before seq and ops were, a record with no note): not sent,
 * kept, PG_EPOLICY ("... is superseded: <id> was deleted by the partner at version N after this
 * dead letter ..."). A removal (delete, merged) still goes when the last operation composed of
 * its record is a removal too: it only takes away what the partner took away. Not an import entry:
 * PG_EUSAGE (intake entries go to our intake: `polegate dlq replay`); only part of it
 * kept: PG_ETOOBIG; PG_ENOTFOUND, PG_ESTORE, or the delivery's error. Call it while
 * this thread has no transaction open. */
int pg_dlq_resend(pg_dlq *self, uint64_t id, const pg_rms_delivery_config *cfg,
                  const struct pg_policy *policy, int timeout_ms, char *errstr, size_t errstr_size);

/* The partner side queued message seq for the RMS, carrying cs (its entity versions the
 * revisions sent): note in the write transaction txn (the compose's) that seq is now the
 * last operation of every record and link in cs, and of every merged_from ref of its
 * UPSERTs (merged into the survivor), in "partner.lastop" (id -> seq, version, op), and
 * append the entry's ops list ("<id>:<op>:<version>,...", see pg_dlq_entry; no NUL) to
 * ops for the dead letter the message becomes should the RMS reject it. The import queue's
 * sequence orders every operation the partner side composed: a partner's updates of one
 * record reach it in its topic order, stale ones dropped. 0, PG_ENOMEM, PG_ESTORE. */
int pg_dlq_note_composed(pg_dlq *self, pg_store_txn *txn, uint64_t seq, const pg_changeset *cs,
                         pg_buf *ops, char *errstr, size_t errstr_size);

/*
 * Replays asked of a running daemon. Partner dead letters are replayed through the
 * partner pipeline, which has one owner: the daemon while it runs. `polegate dlq
 * replay` (the operator: whoever may write the store) asks for them in "dlq.replay",
 * the daemon's partner thread takes each request (pg_partner_replay_asked), replays it
 * and writes the answer there, and the command reads and forgets it.
 */
/* Ask for the replay of id (write txn; an earlier answer is dropped). 0, PG_ESTORE. */
int pg_dlq_replay_ask(pg_dlq *self, pg_store_txn *txn, uint64_t id, char *errstr,
                      size_t errstr_size);
/* The lowest id asked for and not yet answered. 0, PG_ENOTFOUND (none), PG_ESTORE. */
int pg_dlq_replay_next(pg_dlq *self, pg_store_txn *txn, uint64_t *id, char *errstr,
                       size_t errstr_size);
/* Answer the request for id (write txn): outcome as pg_partner_replay's ("accepted",
 * "refused", ...), reason "" or why. 0, PG_ENOMEM, PG_ESTORE. */
int pg_dlq_replay_answer(pg_dlq *self, pg_store_txn *txn, uint64_t id, const char *outcome,
                         const char *reason, char *errstr, size_t errstr_size);
/* The answer to the request for id, copied. 0; PG_ERETRY not answered yet;
 * PG_ENOTFOUND not asked (or forgotten); PG_ESTORE; PG_EINTERNAL damaged. */
int pg_dlq_replay_result(pg_dlq *self, pg_store_txn *txn, uint64_t id, char outcome[16],
                         char *reason, size_t reason_size, char *errstr, size_t errstr_size);
/* Forget the request for id, answered or not (write txn). 0 (also when there was none),
 * PG_ESTORE. */
int pg_dlq_replay_forget(pg_dlq *self, pg_store_txn *txn, uint64_t id, char *errstr,
                         size_t errstr_size);

/* "2026-03-29T06:30:00.123Z" for ms since the epoch; out holds 32 bytes. */
void pg_dlq_format_time(int64_t ms, char out[32]);

#endif
