/* pg_compose: a partner ledger's published updates -> the native messages the local RMS
 * must be sent, each right on its own. */
#ifndef POLEGATE_GATEWAY_COMPOSE_H
#define POLEGATE_GATEWAY_COMPOSE_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/adapter.h"
#include "polegate/pole.h"

typedef struct pg_idstore pg_idstore;
typedef struct pg_ledger pg_ledger;
typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;

/*
 * The partner ledger (pg_ledger_new_named(store, "partner")) turns the canonical updates
 * consumed from partners into a stream of entity and link changes; compose turns that
 * stream into what the local RMS imports, in its own format, with the ids and revisions
 * it knows (gateway/inbound/idstore.h). Call it after pg_ledger_apply, in the same write
 * transaction: it reads the ledger's state as it is after the apply.
 *
 * ATX (a record carries ALL its links, and an UPSERT replaces them):
 * - every record the published changes touch (an entity change, or a link change from
 *   it) is sent once per call, as it is now: its latest UPSERT with every live link
 *   from it in the ledger, or its DELETE. A record touched only by link changes is
 *   sent again as it was last received (its re-send), so that the RMS learns a link
 *   added or deleted one at a time by a Niche-like partner;
 * - a link whose target's kind is unknown (an NX5 link to a record never received) and
 *   not implied by its role is left out of its record until the target is first sent
 *   as a record (even when another link named it before); then the record is sent
 *   again with it;
 * - a link change from a record never received is not sent: when the record comes, it
 *   comes with all its links.
 * NX5 (links change one at a time): the changes as they are, in order, in documents of
 * one originating force each (NX5 names one). A document ends before a change of a
 * record or link it already changes, and before a DELETE of a record (or of a link
 * to one) that it gives an id to: a record created and deleted in one batch is sent,
 * then deleted, and its first change in a document is its Add. A survivor goes
 * without MergedFrom: an NX5 RMS would move the merged-away records' links itself,
 * and the link deletes the partner made of the merge, which may come in a later batch
 * (another partition), could not find them there. The merge reaches the RMS as its
 * effects, one key at a time.
 * Both:
 * - every DELETE of a record the RMS was sent goes, merged-away records' too (the
 *   partner's ledger made them explicit; ATX mergedFrom is sent as well: a DELETE
 *   of a record the RMS already removed by mergedFrom changes nothing there);
 * - a DELETE of a record (or link) the RMS was never sent is not sent, and a
 *   merged_from ref the RMS was never sent is dropped from the survivor (nothing to
 *   merge there). "Sent" is decided after what goes before it in the run was
 *   encoded;
 * - every entity sent gets its revision from pg_idstore_next_revision (the partner's
 *   version while it increases, else one more than the last sent), under an id map
 *   savepoint with its encoding (pg_idstore_savepoint): an entity the adapter cannot
 *   encode (NX5 cannot carry a value, say) is reported refused, and leaves no trace in
 *   the id map (pg_partner then undoes the take and keeps the record it came from as a dead
 *   letter). An NX5 document that fails is sent again one change per document, so that one
 *   bad change does not hold back the others.
 *
 * The composed messages are handed to sink->emit in order; the caller delivers them.
 */

typedef struct pg_compose pg_compose;

typedef struct pg_compose_opts {
    const pg_adapter_ops *adapter; /* the local RMS's format */
    pg_ledger *ledger;             /* the partner ledger; borrowed */
    pg_idstore *idmap;             /* ids in the local RMS; borrowed */
    int64_t now_ms;                /* the sending time written (0: the clock); for tests */
} pg_compose_opts;

typedef struct pg_compose_stats {
    uint64_t messages;     /* native messages composed */
    uint64_t entities;     /* entity changes in them */
    uint64_t links;        /* link changes (NX5) or links carried by records (ATX) */
    uint64_t resent;       /* ATX: records sent again for a link-only change */
    uint64_t unknown;      /* DELETEs and merges of what the RMS was never sent */
    uint64_t orphan_links; /* ATX: link changes from a record never received */
    uint64_t deferred;     /* ATX: links held back until their target's kind is known */
    uint64_t refused;      /* changes the adapter could not encode */
} pg_compose_stats;

typedef struct pg_compose_sink {
    /* One native message (msg[0..len), valid for the call); cs holds the changes it
     * carries (entity versions are the revisions sent). Non-zero stops the run and is
     * returned by it. */
    int (*emit)(void *arg, const uint8_t *msg, size_t len, const pg_changeset *cs);
    /* A change the adapter refused (may be NULL): reason is the adapter's. */
    void (*refused)(void *arg, const pg_change *change, const char *reason);
    void *arg;
} pg_compose_sink;

/* A composer for one RMS. NULL with errstr when opts lacks a part. */
pg_compose *pg_compose_new(const pg_compose_opts *opts, char *errstr, size_t errstr_size);
void pg_compose_destroy(pg_compose **p);

/* Compose the native messages for published (what pg_ledger_apply of the partner
 * ledger appended, for one or many consumed updates) in the write transaction txn,
 * and hand them to sink. batch names the NX5 document(s) ("pg-000017"; a fallback
 * document gets "-<n>" appended); NULL: derived from the time. 0, the sink's
 * non-zero return, or PG_ESTORE / PG_ENOMEM with errstr (txn is then to be aborted). */
int pg_compose_run(pg_compose *self, pg_store_txn *txn, const pg_changeset *published,
                   const char *batch, const pg_compose_sink *sink, char *errstr,
                   size_t errstr_size);

/* Counters since pg_compose_new. */
void pg_compose_get_stats(const pg_compose *self, pg_compose_stats *out);
/* Set the counters back to what pg_compose_get_stats gave before a run whose messages
 * were not kept after all (the caller aborted its transaction). */
void pg_compose_set_stats(pg_compose *self, const pg_compose_stats *stats);

#endif
