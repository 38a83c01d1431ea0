/* pg_daemon: wires the store, ledger, producer and intake and runs the intake loop. */
#include "daemon.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ledger.h"
#include "polegate/error.h"
#include "polegate/version.h"
#include "store.h"

/* How long one wait for requests lasts: the bound on noticing a stop request. */
#define S_POLL_MS 100
/* Requests served between two rounds of delivery reports. */
#define S_BATCH 64
/* Seconds between two periodic counter lines at info level. */
#define S_STATS_EVERY 60

struct pg_daemon {
    const pg_config *cfg;
    pg_store *store;
    pg_ledger *ledger;
    pg_producer *producer;
    pg_intake *intake;
    volatile sig_atomic_t stop;
};

pg_daemon *pg_daemon_new(const pg_config *cfg, char *errstr, size_t errstr_size)
{
    pg_daemon *d = calloc(1, sizeof *d);
    if (!d) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    d->cfg = cfg;
    char why[PG_ERRSTR_SIZE];
    d->store = pg_store_new(cfg->store_path, cfg->store_map_size, why, sizeof why);
    if (!d->store) {
        pg_errf(PG_ESTORE, errstr, errstr_size, "store %s: %s", cfg->store_path, why);
        goto err;
    }
    d->ledger = pg_ledger_new(d->store, why, sizeof why);
    if (!d->ledger) {
        pg_errf(PG_ESTORE, errstr, errstr_size, "ledger: %s", why);
        goto err;
    }
    pg_producer_opts popts = {
        .brokers = cfg->kafka_brokers,
        .topic = cfg->kafka_topic,
        .force = cfg->force,
        .properties = cfg->kafka_properties,
        .property_count = cfg->kafka_property_count,
    };
    d->producer = pg_producer_new(&popts, errstr, errstr_size);
    if (!d->producer)
        goto err;
    pg_intake_opts iopts = {
        .endpoint = cfg->intake_endpoint,
        .max_message_size = cfg->intake_max_message_size,
        .adapter = cfg->adapter,
        .force = cfg->force,
        .store = d->store,
        .ledger = d->ledger,
        .producer = d->producer,
    };
    d->intake = pg_intake_new(&iopts, errstr, errstr_size);
    if (!d->intake)
        goto err;
    return d;
err:
    pg_daemon_destroy(&d);
    return NULL;
}

void pg_daemon_destroy(pg_daemon **p)
{
    if (!p || !*p)
        return;
    pg_daemon *d = *p;
    pg_intake_destroy(&d->intake);
    pg_producer_destroy(&d->producer);
    pg_ledger_destroy(&d->ledger);
    pg_store_destroy(&d->store);
    free(d);
    *p = NULL;
}

void pg_daemon_stop(pg_daemon *d)
{
    d->stop = 1;
}

pg_intake *pg_daemon_intake(pg_daemon *d)
{
    return d->intake;
}

pg_producer *pg_daemon_producer(pg_daemon *d)
{
    return d->producer;
}

void pg_daemon_summary(const pg_daemon *d, char *out, size_t size)
{
    const pg_config *cfg = d->cfg;
    snprintf(out, size,
             "polegated %s: force %s, adapter %s (%s, max %zu bytes), intake %s, store %s "
             "(map %zu MiB), kafka %s topic %s, log %s",
             pg_version(), cfg->force, cfg->adapter->name, cfg->adapter->format,
             cfg->intake_max_message_size,
             d->intake ? pg_intake_endpoint(d->intake) : cfg->intake_endpoint, cfg->store_path,
             cfg->store_map_size >> 20, cfg->kafka_brokers, cfg->kafka_topic, cfg->log_level_name);
}

static void s_log_counters(int level, const char *when, const pg_intake_stats *is,
                           const pg_producer_stats *ps)
{
    pg_log(level,
           "%s: messages %" PRIu64 " received, %" PRIu64 " accepted (%" PRIu64
           " duplicate), %" PRIu64 " rejected, %" PRIu64 " retry; kafka records %" PRIu64
           " produced, %" PRIu64 " delivered, %" PRIu64 " failed, %" PRIu64 " in flight",
           when, is->received, is->accepted, is->duplicates, is->rejected, is->retried,
           ps->produced, ps->delivered, ps->failed, ps->produced - ps->delivered - ps->failed);
}

int pg_daemon_run(pg_daemon *d, char *errstr, size_t errstr_size)
{
    int rc = 0;
    char why[PG_ERRSTR_SIZE];
    time_t last_stats = time(NULL);
    uint64_t last_received = 0;

    while (!d->stop) {
        int n = pg_intake_poll(d->intake, S_POLL_MS, S_BATCH, why, sizeof why);
        if (n < 0) {
            rc = pg_errf(n, errstr, errstr_size, "%s", why);
            pg_log(PG_LOG_ERROR, "%s", why);
            break;
        }
        pg_producer_poll(d->producer, 0);
        if (pg_producer_fatal(d->producer, why, sizeof why)) {
            rc = pg_errf(PG_EKAFKA, errstr, errstr_size, "kafka: %s", why);
            pg_log(PG_LOG_ERROR, "kafka: %s; stopping", why);
            break;
        }
        time_t now = time(NULL);
        if (now - last_stats >= S_STATS_EVERY) {
            pg_intake_stats is;
            pg_producer_stats ps;
            pg_intake_get_stats(d->intake, &is);
            pg_producer_get_stats(d->producer, &ps);
            if (is.received != last_received)
                s_log_counters(PG_LOG_INFO, "running", &is, &ps);
            last_received = is.received;
            last_stats = now;
        }
    }

    /* Stop taking messages first, so that nothing is acked after the flush began:
     * requests still queued in the socket are dropped unanswered and the senders,
     * seeing no ack, send them again to the next run. */
    pg_intake_stats is;
    pg_intake_get_stats(d->intake, &is);
    pg_intake_destroy(&d->intake);
    pg_log(PG_LOG_INFO, "stopping: intake closed; waiting up to %d ms for the broker",
           d->cfg->kafka_flush_timeout_ms);
    int frc = pg_producer_flush(d->producer, d->cfg->kafka_flush_timeout_ms, why, sizeof why);
    pg_producer_stats ps;
    pg_producer_get_stats(d->producer, &ps);
    s_log_counters(PG_LOG_INFO, "stopped", &is, &ps);
    if (frc) {
        pg_log(PG_LOG_ERROR,
               "kafka: %s: they were acknowledged to the sender and are not kept anywhere "
               "else",
               why);
        if (!rc)
            rc = pg_errf(frc, errstr, errstr_size, "kafka: %s", why);
    } else if (ps.failed && !rc) {
        rc =
            pg_errf(PG_EKAFKA, errstr, errstr_size,
                    "kafka: %" PRIu64 " records failed delivery (see the log for keys)", ps.failed);
    }
    return rc;
}
