/* pg_daemon: polegated's wiring: config -> store and ledger -> intake -> producer. */
#ifndef POLEGATE_GATEWAY_DAEMON_H
#define POLEGATE_GATEWAY_DAEMON_H

#include <stddef.h>

#include "config.h"
#include "intake.h"
#include "producer.h"

typedef struct pg_daemon pg_daemon;

/* Open the store and ledger, make the producer and bind the intake, as cfg says
 * (cfg is borrowed and must outlive the daemon). NULL on failure with errstr. */
pg_daemon *pg_daemon_new(const pg_config *cfg, char *errstr, size_t errstr_size);
/* Frees everything; does not flush (pg_daemon_run does that on its way out). Sets *p
 * to NULL; NULL-safe. */
void pg_daemon_destroy(pg_daemon **p);

/* Serve the intake until pg_daemon_stop, then stop taking messages and give the
 * producer up to kafka.flush_timeout_ms to have the broker confirm what is in flight.
 * 0 on a clean stop; PG_ETIMEOUT when records were left undelivered; PG_EKAFKA or
 * PG_EIO with errstr when a fatal error ended the loop. */
int pg_daemon_run(pg_daemon *d, char *errstr, size_t errstr_size);
/* Ask pg_daemon_run to return. Async-signal-safe: only sets a flag, seen within
 * 100 ms. */
void pg_daemon_stop(pg_daemon *d);

/* The one-line startup summary (no newline) into out. */
void pg_daemon_summary(const pg_daemon *d, char *out, size_t size);
/* The parts, for tests and operator commands; borrowed. */
pg_intake *pg_daemon_intake(pg_daemon *d);
pg_producer *pg_daemon_producer(pg_daemon *d);

#endif
