/* pg_daemon: polegated's wiring: config -> store, ledger, spool, dead letters ->
 * intake (group commit) -> publisher thread (Kafka transactions). */
#ifndef POLEGATE_GATEWAY_DAEMON_H
#define POLEGATE_GATEWAY_DAEMON_H

#include <stddef.h>

typedef struct pg_config pg_config;
typedef struct pg_intake pg_intake;
typedef struct pg_publisher pg_publisher;

typedef struct pg_daemon pg_daemon;

/* Open the store, ledger, spool and dead-letter store, make the publisher and bind
 * the intake, as cfg says (cfg is borrowed and must outlive the daemon). Nothing is
 * sent yet. NULL on failure with errstr. */
pg_daemon *pg_daemon_new(const pg_config *cfg, char *errstr, size_t errstr_size);
/* Stops the publisher thread if running and frees everything; what is in the spool
 * stays there for the next start. Sets *p to NULL; NULL-safe. */
void pg_daemon_destroy(pg_daemon **p);

/* Start the publisher thread (it first publishes whatever the spool kept from an
 * earlier run), then serve the intake until pg_daemon_stop. Then stop taking messages
 * (the socket closes: requests not yet answered are sent again by their senders),
 * keep publishing for up to spool drain timeout, and stop the publisher: what is
 * still in the spool stays there for the next start. 0 on a clean stop (even with
 * batches left in the spool); PG_EIO / PG_EKAFKA / PG_ESTORE with errstr when a
 * failure ended the loop. */
int pg_daemon_run(pg_daemon *self, char *errstr, size_t errstr_size);
/* Ask pg_daemon_run to return. Async-signal-safe: only sets a flag, seen within
 * 100 ms. */
void pg_daemon_stop(pg_daemon *self);
/* A signal arrived (async-signal-safe: only sets a flag; pg_daemon_run acts on it
 * within 100 ms). SIGTERM and SIGINT stop as pg_daemon_stop; SIGHUP reloads the
 * configuration file (docs/operations.md "Reload"); SIGUSR1 logs the counters; any
 * other is logged as ignored. */
void pg_daemon_signal(pg_daemon *self, int sig);

/* The one-line startup summary (no newline) into out. */
void pg_daemon_summary(const pg_daemon *self, char *out, size_t size);
/* The parts, for tests and operator commands; borrowed. */
pg_intake *pg_daemon_intake(pg_daemon *self);
pg_publisher *pg_daemon_publisher(pg_daemon *self);

/* "polegated.<force lower>.<8 hex digits of the store's absolute path>": one active
 * producer per force's intake and store (docs/reliability.md). out holds 64 bytes. */
void pg_daemon_transactional_id(const char *force, const char *store_path, char out[64]);

#endif
