/* pg_partner_service: the inbound direction's thread: partner topics -> pg_partner ->
 * the RMS, offsets committed once stored. */
#ifndef POLEGATE_GATEWAY_PARTNER_SERVICE_H
#define POLEGATE_GATEWAY_PARTNER_SERVICE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pg_config pg_config;
typedef struct pg_store pg_store;
typedef struct pg_audit pg_audit;
typedef struct pg_partner_stats pg_partner_stats;
typedef struct pg_partner_opts pg_partner_opts;

/* The consumer (group delivery.group_id, the policy's partner topics) and a
 * pg_partner, driven by a thread of their own: poll, take, deliver, commit; pause the
 * consumer while the partner is busy. */
typedef struct pg_partner_service pg_partner_service;

/* The partner pipeline's options of cfg (the service's, and `polegate dlq replay`'s for
 * partner dead letters): out holds a copy of the CURVE secret. */
void pg_partner_service_opts(const pg_config *cfg, pg_store *store, pg_audit *audit,
                             pg_partner_opts *out);

/* Start it when cfg has a delivery endpoint and the policy names partners: 0 with
 * *out set; 0 with *out NULL when there is nothing to run; negative with errstr on
 * failure. store and audit (may be NULL) are borrowed and must outlive it. */
int pg_partner_service_start(const pg_config *cfg, pg_store *store, pg_audit *audit,
                             pg_partner_service **out, char *errstr, size_t errstr_size);
/* Stop consuming, give the RMS up to drain_ms to acknowledge what is in flight, commit
 * the offsets of what it stored, leave the group and join the thread. NULL-safe; sets
 * *p NULL. */
void pg_partner_service_stop(pg_partner_service **p, int drain_ms);
/* The same stop without freeing: pg_partner_service_stats then gives the counters it
 * stopped with (pg_partner_service_stop frees it later). NULL-safe. */
void pg_partner_service_halt(pg_partner_service *self, int drain_ms);
/* The counters so far (a copy taken by the thread at most ~100 ms ago). */
void pg_partner_service_stats(pg_partner_service *self, pg_partner_stats *out);

/* Records polled from the partner topics so far (taken or about to be): a benchmark's
 * clock starts at the first, before the take that counts it in the stats. */
uint64_t pg_partner_service_polled(pg_partner_service *self);

/* The consumer lag of one partner topic (pg_consumer_lag). */
typedef struct pg_partner_lag {
    char topic[250];
    int64_t lag; /* -1: not known yet */
} pg_partner_lag;
#define PG_PARTNER_MAX_LAG 32

/* Whether the consumer has joined its group (*joined) and the lag of each partner
 * topic assigned to it, into out[0..max): a copy taken by the thread at most ~1 s
 * ago. Returns how many topics were written. */
size_t pg_partner_service_lag(pg_partner_service *self, int *joined, pg_partner_lag *out,
                              size_t max);

#endif
