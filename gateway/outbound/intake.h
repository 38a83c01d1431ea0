/* pg_intake: native messages in over ZeroMQ; each acknowledged once it is durably
 * recorded (ledger, spool or dead letters, fsync'd), many per fsync. */
#ifndef POLEGATE_GATEWAY_INTAKE_H
#define POLEGATE_GATEWAY_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/adapter.h"
#include "polegate/buf.h"
#include "polegate/error.h"

typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;
typedef struct pg_ledger pg_ledger;
typedef struct pg_router pg_router;
typedef struct pg_spool pg_spool;
typedef struct pg_dlq pg_dlq;
typedef struct pg_audit pg_audit;
typedef struct pg_echo pg_echo;
typedef struct pg_wal pg_wal;

/*
 * The wire protocol (docs/intake.md): a client (REQ, or DEALER sending an empty
 * delimiter frame first) sends one request per native message:
 *
 *     [correlation id]  optional, 1-128 printable ASCII bytes, echoed in the ack
 *     message           one ATX message or NX5 document, as bytes
 *
 * and gets back exactly one frame, a JSON object:
 *
 *     {"status":"accepted","ids":["<uuid>",...],"stale":0,"duplicate":false}
 *     {"status":"rejected","reason":"<member path>: <rule>","dead_letter":17}
 *     {"status":"retry","reason":"spool full: ...","backpressure":true}
 *
 * with "correlation":"<id>" first when the request carried one.
 *
 * One message: size check, adapter decode, then, inside a nested transaction of the
 * group's write transaction, the ledger applies it, routing turns what it published
 * into outbound records (pg_outbatch) and the spool appends them. An invalid message
 * becomes a dead letter instead (pg_dlq, plus a record for the dead-letter topic in
 * the spool). A failure anywhere aborts the nested transaction: a message is never
 * half applied.
 *
 * Group commit: pg_intake_poll takes every request already waiting (up to
 * group_max requests and group_max_bytes) and applies them all in ONE write
 * transaction. Without a write-ahead log (opts.wal NULL) it commits it (one fsync of
 * the store) and only then sends their acks; when the commit fails every message of
 * the group is answered "retry".
 *
 * With a write-ahead log (gateway/core/wal.h, docs/reliability.md) the group is a
 * child of one write transaction kept open across many groups: each message the group
 * stored is logged (its bytes, sender, time of receipt, policy version and outcome),
 * the log is synced (one fdatasync), and only then are the acks sent. The open
 * transaction is committed (a checkpoint: fully synced, with the last LSN it includes)
 * when it is checkpoint_ms old, after S_IDLE_MS without a request, when another thread
 * waits for the store's write transaction, when it holds 32 MiB of messages, before a
 * caller-driven group, and when the intake is destroyed; only then does the publisher
 * see its spool batches. After a crash, pg_intake_new replays what the log holds past
 * the last checkpoint through the same path before it takes anything.
 *
 * Either way "accepted" means: on disk, and the spool will publish it until the
 * broker has stored it.
 */

#define PG_INTAKE_MAX_CORRELATION 128

typedef enum pg_intake_status {
    PG_INTAKE_ACCEPTED = 0, /* applied (or a duplicate) and in the spool, on disk */
    PG_INTAKE_REJECTED = 1, /* invalid: sending it again will not help */
    PG_INTAKE_RETRY = 2,    /* not applied for a passing reason: send it again later */
} pg_intake_status;

/* The outcome of one message. ids are the canonical UUIDs published, in order;
 * they point into the intake's changesets and live until the next message. */
typedef struct pg_intake_ack {
    pg_intake_status status;
    char reason[PG_ERRSTR_SIZE]; /* rejected, retry */
    const char **ids;
    size_t id_count;
    size_t stale;
    int duplicate;
    uint64_t dead_letter; /* rejected: the dead letter's id, 0 when none was kept */
    int backpressure;     /* retry: because the spool is full */
} pg_intake_ack;

typedef struct pg_intake_stats {
    uint64_t received; /* requests, well-formed or not */
    uint64_t accepted; /* including duplicates */
    uint64_t duplicates;
    uint64_t rejected;
    uint64_t dead_letters; /* rejected messages kept as dead letters */
    uint64_t retried;
    uint64_t backpressure;   /* retried because the spool was full */
    uint64_t published;      /* canonical updates the ledger published */
    uint64_t spooled;        /* outbound records appended to the spool */
    uint64_t commits;        /* write transactions committed (fsyncs) */
    uint64_t echoes;         /* changes dropped as the RMS's echo of partner records */
    uint64_t store_full;     /* retried: the store's map nearly full (headroom) or full */
    uint64_t disk_full;      /* retried: the disk full when the group committed */
    uint64_t curve_refused;  /* connections refused by the allow-list (CURVE) */
    uint64_t audit_failures; /* groups answered retry: their audit events could not be
                              * written (fail closed) */
    uint64_t wal_syncs;      /* groups made durable by a sync of the write-ahead log */
    uint64_t wal_failures;   /* groups answered retry: the log could not be written */
    uint64_t checkpoints;    /* commits of the transaction held across logged groups */
    uint64_t replayed;       /* messages applied again from the log (a crash, a failed
                              * checkpoint) */
    uint64_t spool_next;     /* the spool sequence after the last batch appended (an
                              * acknowledged group's batches are below it; 0: none yet) */
    uint64_t decode_cpu_ns;  /* CPU time of the decode thread, which decodes groups ahead
                              * of the intake's thread (0: it has not run) */
} pg_intake_stats;

typedef struct pg_intake_opts {
    /* Bound by pg_intake_new; NULL for an intake driven only by pg_intake_handle. */
    const char *endpoint;
    /* A ZeroMQ context to use (inproc:// endpoints need the client's); NULL: own. */
    void *zmq_ctx;
    size_t max_message_size; /* 0: the adapter's */
    const pg_adapter_ops *adapter;
    const char *force;      /* decode rejects messages naming another force */
    const char *dlq_topic;  /* NULL: dead letters are kept locally only */
    size_t group_max;       /* requests per write transaction; 0: 256 */
    size_t group_max_bytes; /* message bytes per write transaction; 0: 16 MiB */
    /* Borrowed; must outlive the intake. */
    pg_store *store;
    pg_ledger *ledger;
    pg_router *router; /* what the ledger published -> records per destination */
    pg_spool *spool;
    pg_dlq *dlq; /* NULL: invalid messages are only rejected */
    /* NULL: the decoder refuses messages of another force. Else the decoder does not
     * check the force, and this filter drops the RMS's echoes of partner records
     * (gateway/inbound/echo.h) and refuses other foreign messages. */
    pg_echo *echo;
    pg_audit *audit; /* NULL: routing's pending audit events are not written */
    /* CURVE (docs/security.md): the intake's secret key (Z85) and the RMS keys allowed
     * to connect (borrowed). NULL: plain text, refused unless the endpoint is local. */
    const char *curve_secret;
    const struct pg_curve_allow *curve_allow;
    /* The write-ahead log (borrowed; one intake per log). NULL: every group commits the
     * store (one fsync of the store per group). */
    pg_wal *wal;
    int checkpoint_ms; /* with wal: the most a transaction stays open; 0: 100 */
} pg_intake_opts;

typedef struct pg_intake pg_intake;

/* A new intake bound to opts->endpoint. With opts->wal, first replays what the log
 * holds past the store's last checkpoint (and checkpoints). NULL on failure with
 * errstr (the endpoint in use; a damaged log, a replay that does not decide as the
 * original did). */
pg_intake *pg_intake_new(const pg_intake_opts *opts, char *errstr, size_t errstr_size);
/* Only the replay of pg_intake_new (opts->endpoint is not bound): brings the store up
 * to the log before anything else writes to it (the daemon's start-up reconcile). 0
 * or the error with errstr. */
int pg_intake_recover(const pg_intake_opts *opts, char *errstr, size_t errstr_size);
/* Commit the transaction held open across logged groups now (or, after a failed
 * checkpoint, replay the log first), so that this thread may begin another write
 * transaction. 0 without a log or an open transaction. 0 or the error with errstr. */
int pg_intake_checkpoint(pg_intake *self, char *errstr, size_t errstr_size);
/* Under CURVE: the allow-list from now on (borrowed; the one before is no longer read
 * when this returns): new handshakes are answered from it, and what a connection
 * whose key is no longer on it sends is rejected. Nothing without CURVE. */
void pg_intake_set_allow(pg_intake *self, const struct pg_curve_allow *allow);
/* Checkpoints (a failure is logged: the log keeps what was acknowledged), closes the
 * socket (without waiting: acks not yet sent are dropped, and their
 * senders send again) and frees the intake; sets *p to NULL; NULL-safe. */
void pg_intake_destroy(pg_intake **p);

/* Handle one native message in a write transaction of its own (a group of one):
 * data[0..size) need not stay valid after the call. Fills ack; never fails otherwise. */
void pg_intake_handle(pg_intake *self, const uint8_t *data, size_t size, pg_intake_ack *ack);

/* A group of messages that do not come from the socket (the drop directory,
 * gateway/outbound/dropdir.h) takes the same path as a request: begin a group, add
 * each message (decoded, applied, routed, spooled or kept as a dead letter inside the
 * group's transaction, counted in the intake's stats), write the caller's own state
 * into the same transaction, then end it. Only when pg_intake_group_end commits do
 * the acks stand; otherwise nothing of the group was kept and every message of it is
 * to be treated as "retry".
 *
 * pg_intake_group_begin: the group's write transaction, NULL with errstr when the
 * store cannot begin one. pg_intake_group_add: one message; fills ack (its ids valid
 * until the next add). pg_intake_group_end: commits (commit 1) or aborts (0: the
 * caller could not keep its own state) and ends *txn (set to NULL); 0, or the commit's
 * error with errstr (PG_EFULL: the store is nearly full, PG_EDISKFULL, PG_ESTORE). */
pg_store_txn *pg_intake_group_begin(pg_intake *self, char *errstr, size_t errstr_size);
void pg_intake_group_add(pg_intake *self, pg_store_txn *txn, const uint8_t *data, size_t size,
                         pg_intake_ack *ack);
int pg_intake_group_end(pg_intake *self, pg_store_txn **txn, int commit, char *errstr,
                        size_t errstr_size);

/* Wait up to timeout_ms for requests, then handle every request that is waiting, at
 * most max (0: the group bound), in one write transaction, and acknowledge them after
 * its commit. Returns how many were handled (0 on timeout or when interrupted by a
 * signal), or PG_EIO with errstr when the socket fails. Without an endpoint it only
 * waits timeout_ms and returns 0. */
int pg_intake_poll(pg_intake *self, int timeout_ms, size_t max, char *errstr, size_t errstr_size);

/* Write ack as the one-line JSON of the protocol (no newline), with correlation
 * first when not NULL. 0 or PG_ENOMEM. */
int pg_intake_ack_json(const pg_intake_ack *ack, const char *correlation, pg_buf *out);
/* "accepted", "rejected", "retry". */
const char *pg_intake_status_name(pg_intake_status status);

void pg_intake_get_stats(const pg_intake *self, pg_intake_stats *out);
/* Tests: end the transaction held open across logged groups without committing it, as
 * a crash would (what it holds is then only in the write-ahead log). */
void pg_intake_test_crash(pg_intake *self);
/* The endpoint actually bound (a tcp://...:* endpoint gets its port); borrowed. */
const char *pg_intake_endpoint(const pg_intake *self);

#endif
