/* pg_audit_anchor: publishes signed checkpoints of the audit log's head to the audit
 * topic, at an interval and at shutdown, so that the head is anchored outside the
 * file; reads them back, for `polegate audit verify --topic` and for the daemon's
 * start, which refuses a log that no longer holds its latest checkpoint. */
#ifndef POLEGATE_GATEWAY_AUDIT_ANCHOR_H
#define POLEGATE_GATEWAY_AUDIT_ANCHOR_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"

typedef struct pg_audit_anchor pg_audit_anchor;

/* A producer for cfg's brokers and kafka.properties (TLS, SASL) that publishes
 * checkpoints of audit, signed with key (copied), to topic, every interval_ms. audit
 * is borrowed. NULL with errstr. */
pg_audit_anchor *pg_audit_anchor_new(const pg_config *cfg, pg_audit *audit,
                                     const pg_audit_signing_key *key, const char *topic,
                                     int interval_ms, char *errstr, size_t errstr_size);
/* Publish a checkpoint when interval_ms has passed and the log moved on since the
 * last; serve delivery reports. Never blocks. */
void pg_audit_anchor_tick(pg_audit_anchor *anchor);
/* Publish a checkpoint now and wait up to timeout_ms for the broker to store it. 0,
 * or PG_EKAFKA / PG_ETIMEOUT with errstr. */
int pg_audit_anchor_publish(pg_audit_anchor *anchor, int timeout_ms, char *errstr,
                            size_t errstr_size);
/* NULL-safe; sets *p to NULL. Waits for nothing: call _publish first at shutdown. */
void pg_audit_anchor_destroy(pg_audit_anchor **p);

/* The checkpoints read from a topic. */
typedef struct pg_audit_checkpoints {
    pg_audit_checkpoint *v; /* those signed by the key, in the order read */
    size_t n, cap;
    size_t foreign; /* records whose signature did not hold: another key's, forged, none */
} pg_audit_checkpoints;

/* Add the record data to c when it is a checkpoint signed by key; count it foreign
 * when not. 0 or PG_ENOMEM. */
int pg_audit_checkpoints_add(pg_audit_checkpoints *c, const void *data, size_t len,
                             const pg_audit_public_key *key);
/* The records of topic, through a consumer made of conf (taken in every case; its log
 * callback and opaque are this function's: the first error librdkafka logs goes into
 * the reason); those signed by key are added to out (pg_audit_checkpoints_add). tail
 * 0: every record, from the beginning to the end of each partition; N: of each
 * partition the last N records, then the N * 8 before them, and so on, until one signed
 * by key is among them or the partition's beginning is reached (the latest checkpoint
 * of one log is the last of its records in its partition). Fails closed, since
 * checkpoints that cannot all be read prove nothing: PG_EKAFKA when the brokers do not
 * answer within timeout_ms / 2 or a record cannot be read, PG_ETIMEOUT when an end is
 * not reached with timeout_ms without a record, PG_ENOTFOUND when the topic does not
 * exist, PG_ENOMEM; each with the topic in the reason. out is the caller's to free
 * (pg_audit_checkpoints_free) either way. */
int pg_audit_checkpoints_read(rd_kafka_conf_t *conf, const char *topic,
                              const pg_audit_public_key *key, size_t tail, int timeout_ms,
                              pg_audit_checkpoints *out, char *errstr, size_t errstr_size);
void pg_audit_checkpoints_free(pg_audit_checkpoints *c);

/* The start's check of the open log against the latest checkpoint (the highest seq)
 * on topic signed by key's public half, read with cfg's brokers and kafka.properties
 * within timeout_ms (pg_audit_checkpoints_read): the log must hold that event with
 * that hash (pg_audit_holds). 0 when it does, or when the topic holds no checkpoint
 * of the key or does not exist (a first start); PG_ECORRUPT when the log was cut
 * short or rewritten, PG_EKAFKA / PG_ETIMEOUT when the topic cannot be read (the
 * caller refuses to start: fail closed), PG_EIO; each with a reason naming the log
 * or the topic. */
int pg_audit_anchor_check(const pg_config *cfg, pg_audit *audit, const pg_audit_signing_key *key,
                          const char *topic, int timeout_ms, char *errstr, size_t errstr_size);

#endif
