/* pg_outrec / pg_outbatch: records bound for Kafka after routing, grouped per native
 * message. The router (policy) makes them, the spool keeps them, the producer sends
 * them: the one shape every outbound record takes. */
#ifndef POLEGATE_GATEWAY_OUTREC_H
#define POLEGATE_GATEWAY_OUTREC_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "polegate/arena.h"

#define PG_OUTREC_MAX_HEADERS 12

typedef struct pg_outrec_header {
    const char *name;
    const char *value; /* text */
} pg_outrec_header;

/* One Kafka record. Strings and bytes belong to the batch's arena. */
typedef struct pg_outrec {
    const char *topic;
    const char *key;      /* entity or link UUID */
    const uint8_t *value; /* packed EntityUpdate or LinkUpdate; NULL: a tombstone */
    size_t value_len;
    pg_outrec_header headers[PG_OUTREC_MAX_HEADERS];
    size_t header_count;
    /* What to write to the audit log once the broker has stored the record
     * (PG_AUDIT_NONE: nothing): disclose or withdraw, with the fields below. Never
     * sent to Kafka. */
    pg_audit_action audit_action;
    const char *destination;
    const char *agreement;
    const char *policy_version; /* the policy that decided (pg-policy-version) */
    const char *entity_id;
    const char *native_id;
    const char *origin;
    uint64_t version;
    const char *outcome;
    /* The authenticated party that caused the record (pg_audit_event.party), when it
     * is not the batch's: a policy change's withdrawals routed with an RMS message
     * ("policy:<version>"). NULL: the batch's party. pg_spool_next sets it on every
     * record it reads (the batch's when the record had none). */
    const char *party;
} pg_outrec;

/* The records of one native message, published together or not at all, and the
 * audit events (collect, withhold, ...) its routing decided, to be written once the
 * store transaction that routed it has committed. */
typedef struct pg_outbatch {
    /* Who caused the batch ("rms:<key name>", "rms:local", "policy:<version>"): kept
     * with it in the spool and written into the disclose/withdraw events of its
     * records. Borrowed (or in the arena); NULL after a reset. */
    const char *party;
    pg_arena *arena;
    pg_outrec *recs;
    size_t count;
    size_t cap;
    pg_audit_event *audit;
    size_t audit_count;
    size_t audit_cap;
} pg_outbatch;

/* NULL when out of memory. */
pg_outbatch *pg_outbatch_new(void);
/* NULL-safe; sets *p to NULL. */
void pg_outbatch_destroy(pg_outbatch **p);
/* Drop every record and the arena's contents, keeping memory. */
void pg_outbatch_reset(pg_outbatch *self);
/* Append a zeroed record and return it (NULL when out of memory). */
pg_outrec *pg_outbatch_add(pg_outbatch *self);
/* Append a copy of ev (strings copied into the arena) to the batch's pending audit
 * events. 0 or PG_ENOMEM. */
int pg_outbatch_audit_add(pg_outbatch *self, const pg_audit_event *ev);
/* Add a header; the strings are copied into the batch's arena. 0, PG_ENOMEM, or
 * PG_EINVALID when the record already has PG_OUTREC_MAX_HEADERS. */
int pg_outrec_header_add(pg_outbatch *self, pg_outrec *rec, const char *name, const char *value);

#endif
