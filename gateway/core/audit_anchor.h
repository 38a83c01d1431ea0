/* pg_audit_anchor: publishes signed checkpoints of the audit log's head to the audit
 * topic, at an interval and at shutdown, so that the head is anchored outside the
 * file and `polegate audit verify` finds a rewritten or truncated log. */
#ifndef POLEGATE_GATEWAY_AUDIT_ANCHOR_H
#define POLEGATE_GATEWAY_AUDIT_ANCHOR_H

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

#endif
