/* pg_producer: canonical updates to one Kafka topic, with honest delivery counters. */
#ifndef POLEGATE_GATEWAY_PRODUCER_H
#define POLEGATE_GATEWAY_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "polegate/pole.h"

/* Kafka record headers (docs/topics.md). */
#define PG_HDR_TYPE "pg-type"
#define PG_HDR_SCHEMA "pg-schema"
#define PG_HDR_ORIGIN_FORCE "pg-origin-force"
#define PG_HDR_MARKING "pg-marking"
#define PG_HDR_OPERATION "pg-operation"
#define PG_HDR_VERSION "pg-version"
#define PG_TYPE_ENTITY "polegate.pole.v1.EntityUpdate"
#define PG_TYPE_LINK "polegate.pole.v1.LinkUpdate"

typedef struct pg_producer pg_producer;

typedef struct pg_producer_opts {
    const char *brokers; /* bootstrap.servers */
    const char *topic;
    const char *force; /* pg-origin-force when an update's origin names none */
    /* Passed to librdkafka after polegate's defaults, so they override them; each must
     * pass pg_producer_check_property. Not retained. */
    const pg_config_kv *properties;
    size_t property_count;
} pg_producer_opts;

/* Counters since the producer was made. `produced` counts records handed to
 * librdkafka (queued: not yet stored anywhere); `delivered` the ones the brokers
 * acknowledged with acks=all; `failed` the ones librdkafka gave up on (each logged
 * with its key). produced - delivered - failed are still in flight. */
typedef struct pg_producer_stats {
    uint64_t produced;
    uint64_t delivered;
    uint64_t failed;
} pg_producer_stats;

/* 0 when key=value may be given in kafka.properties; PG_ECONFIG with the reason
 * otherwise: a setting polegate fixes for safety (acks, enable.idempotence,
 * partitioner) given another value, the brokers under their librdkafka name, or a
 * property librdkafka refuses. */
int pg_producer_check_property(const char *key, const char *value, char *errstr,
                               size_t errstr_size);

/* A producer for opts->topic. NULL on failure with the reason in errstr. Connecting
 * to the brokers happens in the background: an unreachable broker is not an error
 * here (records wait, then fail after message.timeout.ms). */
pg_producer *pg_producer_new(const pg_producer_opts *opts, char *errstr, size_t errstr_size);
/* Frees the producer without waiting: records still in flight are counted failed
 * only if a flush was not done first. Sets *p to NULL; NULL-safe. */
void pg_producer_destroy(pg_producer **p);

/* Queue the records of one canonical update: key = its id, value = the packed
 * protobuf, headers as docs/topics.md says. A DELETE is followed by a tombstone (same
 * key and headers, null value) so that compaction forgets the key. When librdkafka's
 * queue is full, serves delivery reports for up to a second before giving up with
 * PG_ERETRY. 0, or a negative pg error with errstr. */
int pg_producer_entity(pg_producer *self, const pg_entity_update *update, char *errstr,
                       size_t errstr_size);
int pg_producer_link(pg_producer *self, const pg_link_update *update, char *errstr,
                     size_t errstr_size);
/* Either of the above for one change. */
int pg_producer_change(pg_producer *self, const pg_change *change, char *errstr,
                       size_t errstr_size);

/* Serve delivery reports, waiting up to timeout_ms for one. Returns how many were
 * served. */
int pg_producer_poll(pg_producer *self, int timeout_ms);
/* Wait up to timeout_ms for every queued record to be delivered or to fail. 0 when
 * none is left in flight, PG_ETIMEOUT (with how many) otherwise. */
int pg_producer_flush(pg_producer *self, int timeout_ms, char *errstr, size_t errstr_size);
void pg_producer_get_stats(const pg_producer *self, pg_producer_stats *out);
/* Records queued and not yet delivered or failed. */
uint64_t pg_producer_in_flight(const pg_producer *self);
/* Non-zero once librdkafka raised a fatal error (the idempotent producer can no
 * longer guarantee order); errstr then says why. Nothing more can be produced. */
int pg_producer_fatal(pg_producer *self, char *errstr, size_t errstr_size);
const char *pg_producer_topic(const pg_producer *self);

#endif
