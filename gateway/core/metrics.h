/* pg_metrics: polegated's HTTP endpoint (libmicrohttpd): /metrics in the Prometheus
 * text format, /healthz and /readyz, over counters the daemon hands it. */
#ifndef POLEGATE_GATEWAY_METRICS_H
#define POLEGATE_GATEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "intake.h"
#include "outrec.h"
#include "partner.h"
#include "partner_service.h"
#include "publisher.h"
#include "spool.h"

/*
 * No part of the daemon knows about HTTP. The parts keep their counters as they
 * always did; the daemon's loop reads them through their stats getters (on the one
 * thread that may read them) and hands the whole set over with pg_metrics_set_state.
 * What only the producer's or the audit log's thread sees (records committed per
 * destination, the publish latency, audit events by action) comes through the two
 * hooks pg_metrics_on_commit and pg_metrics_on_audit. The HTTP thread formats the
 * latest of all that under one lock: a scrape never touches a part.
 *
 * The metric names and what each means: docs/operations.md "Metrics".
 */

typedef struct pg_metrics pg_metrics;

/* The parts' counters, as the daemon's loop read them. */
typedef struct pg_metrics_state {
    pg_intake_stats intake;
    pg_publisher_stats publisher;
    pg_spool_stats spool;
    uint64_t dead_letters; /* kept in the store */
    int partner_running;   /* the partner service runs: partner and lag mean something */
    pg_partner_stats partner;
    pg_partner_lag lag[PG_PARTNER_MAX_LAG];
    size_t lag_count;
    double store_used_ratio;  /* of the map; < 0: unknown */
    double store_limit_ratio; /* where the intake stops: (map - headroom) / map */
    char not_ready[320];      /* "": ready; else why not (for /readyz) */
} pg_metrics_state;

/* Counters for force, served on listen ("HOST:PORT", "[IPV6]:PORT"; port 0: any) by a
 * thread of libmicrohttpd's, or not served at all when listen is NULL (tests render
 * the text themselves). NULL with errstr when the address cannot be bound. */
pg_metrics *pg_metrics_new(const char *listen, const char *force, char *errstr, size_t errstr_size);
/* Stops serving and frees; sets *p to NULL; NULL-safe. */
void pg_metrics_destroy(pg_metrics **p);
/* The port actually bound (0 when not serving). */
int pg_metrics_port(const pg_metrics *m);

/* Show destination's published counter from the start, at 0 (a rate over a series
 * that appears only at the first record would miss the stall before it). */
void pg_metrics_destination(pg_metrics *m, const char *destination);
/* The latest state (copied). */
void pg_metrics_set_state(pg_metrics *m, const pg_metrics_state *st);
/* The intake committed a group: every spool batch below next_seq was acknowledged by
 * now. The publish latency of a batch runs from here to its broker commit. */
void pg_metrics_spooled(pg_metrics *m, uint64_t next_seq);
/* pg_publisher_opts.on_commit: ud is the pg_metrics. */
void pg_metrics_on_commit(void *ud, const pg_outbatch *win, uint64_t first_seq, uint64_t last_seq);
/* pg_audit_options.on_event: ud is the pg_metrics. */
void pg_metrics_on_audit(void *ud, const pg_audit_event *ev, int rc);

/* The /metrics text into out (appended). 0 or PG_ENOMEM. */
int pg_metrics_render(pg_metrics *m, pg_buf *out);

#endif
