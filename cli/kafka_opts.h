/* Kafka client settings shared by the CLI commands that talk to Kafka: --brokers, the
 * daemon's --config file (its kafka.brokers and kafka.properties: TLS, SASL) and
 * -X key=value, applied in that order so that the command line wins. */
#ifndef POLEGATE_CLI_KAFKA_OPTS_H
#define POLEGATE_CLI_KAFKA_OPTS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#define PG_CLI_KAFKA_MAX_X 64

typedef struct pg_cli_kafka {
    const char *brokers; /* --brokers */
    const char *config;  /* --config: the daemon's YAML */
    const char *x[PG_CLI_KAFKA_MAX_X];
    size_t nx;
} pg_cli_kafka;

/* Take one -X key=value. 0, or -1 with a message on stderr (cmd names the command). */
int pg_cli_kafka_add_x(pg_cli_kafka *k, const char *kv, const char *cmd);
/* A librdkafka configuration from k; NULL with a message on stderr. The caller owns
 * it. */
rd_kafka_conf_t *pg_cli_kafka_conf(const pg_cli_kafka *k, const char *cmd);
/* The first error librdkafka logged for a configuration of pg_cli_kafka_conf (e.g. "SASL
 * authentication error: ..." or "SSL handshake failed: ..."), which librdkafka does not
 * print: for the message of a command that cannot reach the brokers. Returns buf. */
const char *pg_cli_kafka_first_failure(char *buf, size_t size);

#endif
