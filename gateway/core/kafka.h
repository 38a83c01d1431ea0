/* pg_kafka: the Kafka producer properties polegate fixes for safety, and the check of
 * what an operator may set in kafka.properties (the config loader and the publisher
 * apply the same rules). */
#ifndef POLEGATE_GATEWAY_KAFKA_H
#define POLEGATE_GATEWAY_KAFKA_H

#include <stddef.h>

typedef struct pg_kafka_fixed {
    const char *key;
    const char *value;
    const char *also; /* another spelling of the same value, or NULL */
    const char *why;
} pg_kafka_fixed;

/* The fixed settings, ended by an entry with key NULL. */
const pg_kafka_fixed *pg_kafka_fixed_properties(void);

/* 0 when key=value may be given in kafka.properties; PG_ECONFIG with the reason
 * otherwise: a setting polegate fixes for safety (acks, enable.idempotence,
 * partitioner) given another value, the brokers under their librdkafka name, or a
 * property librdkafka refuses. */
int pg_kafka_check_property(const char *key, const char *value, char *errstr, size_t errstr_size);

#endif
