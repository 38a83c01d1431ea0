/* pg_intake: native messages in over ZeroMQ, one acknowledgement out per message. */
#ifndef POLEGATE_GATEWAY_INTAKE_H
#define POLEGATE_GATEWAY_INTAKE_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "polegate/adapter.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "producer.h"
#include "store.h"

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
 *     {"status":"rejected","reason":"<member path>: <rule>"}
 *     {"status":"retry","reason":"..."}
 *
 * with "correlation":"<id>" first when the request carried one.
 *
 * Each message goes through pg_intake_handle: size check, adapter decode, then one
 * write transaction of the store in which the ledger applies it and its updates are
 * handed to the producer; the commit comes last, then the ack. A message is never
 * half applied: a failure anywhere aborts the transaction.
 */

#define PG_INTAKE_MAX_CORRELATION 128

typedef enum pg_intake_status {
    PG_INTAKE_ACCEPTED = 0, /* applied (or a duplicate) and handed to the producer */
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
} pg_intake_ack;

typedef struct pg_intake_stats {
    uint64_t received; /* requests, well-formed or not */
    uint64_t accepted; /* including duplicates */
    uint64_t duplicates;
    uint64_t rejected;
    uint64_t retried;
    uint64_t published; /* canonical updates handed to the producer */
} pg_intake_stats;

typedef struct pg_intake_opts {
    /* Bound by pg_intake_new; NULL for an intake driven only by pg_intake_handle. */
    const char *endpoint;
    /* A ZeroMQ context to use (inproc:// endpoints need the client's); NULL: own. */
    void *zmq_ctx;
    size_t max_message_size; /* 0: the adapter's */
    const pg_adapter_ops *adapter;
    const char *force; /* decode rejects messages naming another force */
    /* Borrowed; must outlive the intake. */
    pg_store *store;
    pg_ledger *ledger;
    pg_producer *producer;
} pg_intake_opts;

typedef struct pg_intake pg_intake;

/* A new intake bound to opts->endpoint. NULL on failure with errstr (the endpoint
 * in use, say). */
pg_intake *pg_intake_new(const pg_intake_opts *opts, char *errstr, size_t errstr_size);
/* Closes the socket (without waiting: acks not yet sent are dropped) and frees the
 * intake; sets *p to NULL; NULL-safe. */
void pg_intake_destroy(pg_intake **p);

/* Handle one native message: data[0..size) need not stay valid after the call.
 * Fills ack; never fails otherwise. */
void pg_intake_handle(pg_intake *self, const uint8_t *data, size_t size, pg_intake_ack *ack);

/* Wait up to timeout_ms for requests, then handle and acknowledge every request that
 * is waiting, at most max (0: no limit). Returns how many were handled (0 on timeout
 * or when interrupted by a signal), or PG_EIO with errstr when the socket fails. */
int pg_intake_poll(pg_intake *self, int timeout_ms, size_t max, char *errstr, size_t errstr_size);

/* Write ack as the one-line JSON of the protocol (no newline), with correlation
 * first when not NULL. 0 or PG_ENOMEM. */
int pg_intake_ack_json(const pg_intake_ack *ack, const char *correlation, pg_buf *out);
/* "accepted", "rejected", "retry". */
const char *pg_intake_status_name(pg_intake_status status);

void pg_intake_get_stats(const pg_intake *self, pg_intake_stats *out);
/* The endpoint actually bound (a tcp://...:* endpoint gets its port); borrowed. */
const char *pg_intake_endpoint(const pg_intake *self);

#endif
