/* pg_partner's inside, shared by partner.c (new, take) and partner_imports.c (the
 * import queue, the RMS's results, offsets); no other file includes it. */
#ifndef POLEGATE_GATEWAY_PARTNER_INT_H
#define POLEGATE_GATEWAY_PARTNER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "partner.h"
#include "polegate/buf.h"
#include "store.h"

typedef struct pg_ledger pg_ledger;
typedef struct pg_idstore pg_idstore;
typedef struct pg_compose pg_compose;

#define PG_PARTNER_ID_MAX 128

/* A composed message: in the import queue, and in memory until submitted. */
typedef struct pg_partner_msg {
    uint64_t seq;
    char id[PG_PARTNER_ID_MAX + 1]; /* correlation id */
    uint8_t *data;
    size_t len;
} pg_partner_msg;

/* The next offset of one (topic, partition) in one batch. */
typedef struct pg_partner_off {
    char *topic;
    int32_t partition;
    int64_t next;
} pg_partner_off;

/* A batch taken: committable once every message up to last_seq has its result. */
typedef struct pg_partner_batch {
    uint64_t last_seq;
    pg_partner_off *offs;
    size_t n_offs;
} pg_partner_batch;

/* A message the RMS rejected, until its dead letter is kept. */
typedef struct pg_partner_reject {
    uint64_t seq;
    char id[PG_PARTNER_ID_MAX + 1];
    char *reason;
    int64_t at_ms; /* when the RMS rejected it */
    int audited;
} pg_partner_reject;

/* An audit event of the batch, written before its commit (fail closed). */
typedef struct pg_partner_event {
    pg_audit_action action;
    const char *id, *native_id, *origin, *partner, *agreement, *outcome;
    const char *party; /* "partner:<topic>" */
    uint64_t version;
} pg_partner_event;

struct pg_partner {
    char force[8];
    const pg_adapter_ops *adapter;
    const pg_policy *policy;
    pg_store *store;
    pg_audit *audit;
    pg_ledger *ledger;
    pg_idstore *idmap;
    pg_compose *compose;
    pg_rms_delivery *delivery;
    pg_store_db seen, imports, meta;
    pg_store_db import_ids; /* seq -> "<forces>\0<canonical ids>" of an import queue message */
    pg_dlq *dlq;            /* rejected messages: import dead letters */
    char instance[37];
    uint64_t next_seq;          /* the next import queue sequence number */
    uint64_t resolved;          /* every message up to this sequence is settled */
    uint64_t answered;          /* every message up to this sequence has its result */
    pg_partner_reject *rejects; /* rejected, dead letter not yet kept: oldest first */
    size_t n_rejects, cap_rejects;
    uint64_t hold; /* a rejected message that could not be noted: nothing settles past it */
    pg_buf scratch;
    pg_partner_msg *queue; /* composed, not yet submitted: a FIFO */
    size_t q_head, q_len, q_cap;
    pg_partner_msg *staged; /* composed by the take in progress */
    size_t n_staged, cap_staged;
    uint64_t *done; /* results to remove from the import queue */
    size_t n_done, cap_done;
    pg_partner_batch *batches; /* taken, offsets not yet committable, oldest first */
    size_t b_len, b_cap;
    pg_changeset *acc; /* the accepted updates of a take */
    pg_changeset *out; /* what the ledger published for them */
    pg_partner_event *events;
    size_t n_events, cap_events;
    pg_partner_off *offs; /* the take's offsets */
    size_t n_offs, cap_offs;
    pg_partner_stats stats;
    pg_partner_stats delta;  /* of the take in progress */
    uint64_t replaying;      /* the partner dead letter the take replays (0: a live take) */
    char replay_reason[256]; /* why the replayed record was refused again */
    int64_t removed_at;      /* when acknowledged messages were last removed */
};

/* Opens the pipeline's databases (partner.seen, .outbox (the import queue), .meta, .outids) and
 * reads the instance id and the next sequence number. */
int pg_partner__open_dbs(pg_partner *self, char *errstr, size_t errstr_size);
/* Queues what an earlier run composed and the RMS did not acknowledge (sent first). */
int pg_partner__load_imports(pg_partner *self, char *errstr, size_t errstr_size);
/* Appends m to the in-memory queue of messages to submit; PG_ENOMEM. */
int pg_partner__queue_push(pg_partner *self, const pg_partner_msg *m);
/* pg_rms_delivery's result callback; arg is the pg_partner. */
void pg_partner__on_result(void *arg, const pg_rms_delivery_result *r);
/* Forgets acknowledged messages from the import queue, in txn. */
int pg_partner__delete_done(pg_partner *self, pg_store_txn *txn, char *errstr, size_t errstr_size);
/* Keeps every message the RMS rejected as an import dead letter (one transaction). */
int pg_partner__settle_rejects(pg_partner *self, char *errstr, size_t errstr_size);
/* Removes acknowledged messages in a transaction of their own: now, or at most every
 * few hundred milliseconds. */
int pg_partner__remove_done(pg_partner *self, int now, char *errstr, size_t errstr_size);
void pg_partner__free_batch(pg_partner_batch *b);

#endif
