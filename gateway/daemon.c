/* pg_daemon: wires store, ledger, router, spool, dead letters, intake and publisher. */
#include "daemon.h"

#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "audit.h"
#include "audit_anchor.h"
#include "curve.h"
#include "dlq.h"
#include "dropdir.h"
#include "echo.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "partner_service.h"
#include "polegate/error.h"
#include "polegate/version.h"
#include "policy.h"
#include "router.h"
#include "spool.h"
#include "store.h"
#include "wal.h"

/* How long one wait for requests lasts: the bound on noticing a stop request. */
#define S_POLL_MS 100
/* Seconds between two periodic counter lines at info level. */
#define S_STATS_EVERY 60
/* Milliseconds between two hand-overs of the counters to the metrics endpoint while
 * idle (after every intake group otherwise). */
#define S_METRICS_EVERY_MS 250
/* Signal numbers pg_daemon_signal keeps (Linux: 1..64). */
#define S_NSIG 65
/* How long a reload gives the RMS to acknowledge partner records in flight before the
 * partner service restarts under the new policy (the rest is sent again from the
 * import queue). */
#define S_RELOAD_DRAIN_MS 1000
/* The start reads the audit checkpoints for at most this long without progress (half
 * of it for the brokers' first answer), as `polegate audit verify --topic` does. */
#define S_AUDIT_CHECK_MS 20000
#define S_AUDIT_CUT_HINT                                                                           \
    ". Not continued: its lost events would stay unseen. Keep it as it is, restore the "           \
    "events from a copy (`polegate audit verify --topic` checks it); to begin a new chain on "     \
    "purpose, move the log, its rotated files and its .keyid aside and set a new audit.topic"
#define S_AUDIT_UNREAD_HINT                                                                        \
    ": the log cannot be checked against its signed checkpoints, so the start is refused "         \
    "(fail closed); start again once the brokers answer"

struct pg_daemon {
    const pg_config *cfg; /* as started: every setting but the policy and the log level */
    pg_config live;       /* cfg with the running policy: what the partner service reads */
    pg_config *reloaded;  /* owns live.policy after a reload changed it; else NULL */
    pg_store *store;
    pg_ledger *ledger;
    pg_router *router;
    pg_spool *spool;
    pg_dlq *dlq;
    pg_audit *audit;
    pg_audit_anchor *anchor;     /* signed checkpoints (NULL: no audit.signing_key_file) */
    pg_curve_allow *curve_allow; /* the RMS keys the intake accepts (NULL: plain text) */
    pg_publisher *publisher;
    pg_intake *intake;
    pg_dropdir *dropdir;             /* NULL: no intake.directory */
    pg_partner_service *partner;     /* partner records in (NULL: no delivery configured) */
    pg_echo *echo;                   /* drops the RMS's echoes of partner records */
    pg_wal *wal;                     /* the intake's write-ahead log (store.path/wal) */
    pg_metrics *metrics;             /* NULL: no metrics.listen */
    pg_partner_stats partner_before; /* of the partner services reloads stopped */
    double store_used, store_limit;  /* pg_store_space as ratios, taken once a second */
    time_t store_space_at;
    char tid[64];
    pg_intake_stats last_intake;           /* the intake's counters when it closed */
    pg_dropdir_stats last_dropdir;         /* the drop directory's, when it closed */
    volatile sig_atomic_t stop;            /* the signal that asked for it, or -1 */
    volatile sig_atomic_t pending[S_NSIG]; /* signals not yet acted on */
};

void pg_daemon_transactional_id(const char *force, const char *store_path, char out[64])
{
    /* The store is what a producer instance publishes from: the id must fence an
     * older process on the same store and nobody else (FNV-1a of its real path). */
    char real[PATH_MAX];
    const char *path = realpath(store_path, real) ? real : store_path;
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        h = (h ^ *p) * 16777619u;
    char lower[8] = "";
    size_t i = 0;
    for (; force[i] && i < sizeof lower - 1; i++)
        lower[i] = (char)(force[i] >= 'A' && force[i] <= 'Z' ? force[i] - 'A' + 'a' : force[i]);
    lower[i] = 0;
    snprintf(out, 64, "polegated.%s.%08" PRIx32, lower, h);
}

/* A withdrawal still spooled, as the policy now forms it (pg_spool_set_reform). */
static int s_reform(void *router, const pg_outrec *rec, pg_outbatch *out, char *errstr,
                    size_t errstr_size)
{
    return pg_router_reform_withdrawal(router, rec, out, errstr, errstr_size);
}

/* The policy's start-up reconcile (withdrawals after a policy change), spooled in a
 * transaction of its own before the intake opens. */
static int s_reconcile(pg_daemon *self, char *errstr, size_t errstr_size)
{
    pg_router_stats before;
    pg_router_get_stats(self->router, &before);
    pg_outbatch *batch = pg_outbatch_new();
    if (!batch)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    /* The producer commits no window it read before this transaction commits. */
    pg_spool_rewrite_begin(self->spool);
    pg_store_txn *txn = pg_store_begin(self->store, 1, errstr, errstr_size);
    int rc = txn ? 0 : PG_ESTORE;
    int n = rc ? rc : pg_router_reconcile(self->router, txn, batch, errstr, errstr_size);
    if (n < 0)
        rc = n;
    char party[PG_ERRSTR_SIZE];
    snprintf(party, sizeof party, "policy:%s", pg_policy_version(self->live.policy));
    batch->party = party; /* as the router named its records: kept once per batch */
    /* What it withdraws and is still spooled is not published first. */
    size_t withheld = 0, reformed = 0;
    pg_router_stats mid;
    pg_router_get_stats(self->router, &mid);
    if (!rc)
        rc = pg_spool_withhold(self->spool, txn, batch, mid.reconciles > before.reconciles,
                               &withheld, &reformed, errstr, errstr_size);
    if (!rc)
        rc = pg_spool_append(self->spool, txn, batch, NULL, errstr, errstr_size);
    /* Fail closed: no withdrawal is spooled that is not logged. The router made the
     * policy ("policy:<version>") the party of its records and events. */
    if (!rc && self->audit && batch->audit_count)
        rc = pg_audit_append_batch(self->audit, batch->audit, batch->audit_count, errstr,
                                   errstr_size);
    if (!rc)
        rc = pg_store_commit(&txn, errstr, errstr_size);
    pg_store_abort(&txn);
    pg_spool_rewrite_end(self->spool);
    if (!rc && withheld)
        pg_log(PG_LOG_INFO,
               "policy %s: %zu spooled records not yet published withheld (they are withdrawn)",
               pg_policy_version(self->live.policy), withheld);
    if (!rc && reformed)
        pg_log(PG_LOG_INFO,
               "policy %s: %zu spooled withdrawals not yet published re-formed as it gives them",
               pg_policy_version(self->live.policy), reformed);
    if (!rc) {
        pg_router_stats after;
        pg_router_get_stats(self->router, &after);
        uint64_t published = after.reconcile_published - before.reconcile_published;
        if (n > 0 || published)
            pg_log(PG_LOG_INFO,
                   "policy %s: %d records withdrawn from destinations, %" PRIu64
                   " newly allowed published",
                   pg_policy_version(self->live.policy), n, published);
    }
    pg_outbatch_destroy(&batch);
    return rc;
}

/* Wait up to ms for SIGTERM or SIGINT, which polegated blocks while the daemon starts:
 * 1 when one came. */
static int s_stop_requested(int ms)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    return sigtimedwait(&stop, NULL, &ts) > 0;
}

/* The start-up reconcile. A policy change that would withdraw more than the
 * configured share of a destination waits here, before anything is published or
 * taken in, until the operator confirms it (the reason names the command) or stops
 * the daemon. */
static int s_reconcile_at_start(pg_daemon *d, char *errstr, size_t errstr_size)
{
    char why[PG_ERRSTR_SIZE];
    time_t warned = 0;
    int rc;
    while ((rc = s_reconcile(d, why, sizeof why)) == PG_ECONFIRM) {
        time_t now = time(NULL);
        if (now - warned >= S_STATS_EVERY) {
            pg_log(PG_LOG_ERROR, "waiting for the operator: %s", why);
            warned = now;
        }
        if (s_stop_requested(1000))
            return pg_errf(PG_ECONFIRM, errstr, errstr_size,
                           "stopped while waiting for the operator: %s", why);
    }
    return rc ? pg_errf(rc, errstr, errstr_size, "policy reconcile: %s", why) : 0;
}

/* Every destination of policy on /metrics from the start. */
static void s_metrics_destinations(pg_metrics *m, const pg_policy *policy)
{
    for (size_t i = 0; policy && i < pg_policy_destination_count(policy); i++)
        pg_metrics_destination(m, pg_policy_destination_at(policy, i)->name);
}

pg_daemon *pg_daemon_new(const pg_config *cfg, char *errstr, size_t errstr_size)
{
    pg_daemon *d = calloc(1, sizeof *d);
    if (!d) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    d->cfg = cfg;
    d->live = *cfg;
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
    pg_spool_limits sl = {.max_bytes = cfg->spool_max_bytes, .max_records = cfg->spool_max_records};
    d->spool = pg_spool_new(d->store, &sl, why, sizeof why);
    pg_dlq_limits dl = {.max_entries = cfg->dlq_max_records, .max_bytes = cfg->dlq_max_bytes};
    d->dlq = d->spool ? pg_dlq_new(d->store, &dl, why, sizeof why) : NULL;
    if (!d->spool || !d->dlq) {
        pg_errf(PG_ESTORE, errstr, errstr_size, "%s", why);
        goto err;
    }
    if (cfg->policy) {
        d->router = pg_router_new(cfg->policy, d->store, cfg->force, why, sizeof why);
        if (!d->router) {
            pg_errf(PG_ESTORE, errstr, errstr_size, "router: %s", why);
            goto err;
        }
        pg_router_set_withdraw_limit(d->router, cfg->store_max_withdraw_percent);
        pg_spool_set_reform(d->spool, s_reform, d->router);
    }
    if (cfg->metrics_listen) {
        d->metrics = pg_metrics_new(cfg->metrics_listen, cfg->force, why, sizeof why);
        if (!d->metrics) {
            pg_errf(PG_EIO, errstr, errstr_size, "%s", why);
            goto err;
        }
        s_metrics_destinations(d->metrics, cfg->policy);
    }
    if (cfg->audit_path) {
        pg_audit_key key;
        pg_audit_signing_key sk;
        if (cfg->audit_key_file && pg_audit_key_load(cfg->audit_key_file, &key, why, sizeof why)) {
            pg_errf(PG_ECONFIG, errstr, errstr_size, "audit.key_file: %s", why);
            goto err;
        }
        if (cfg->audit_signing_key_file &&
            pg_audit_signing_key_load(cfg->audit_signing_key_file, &sk, why, sizeof why)) {
            pg_errf(PG_ECONFIG, errstr, errstr_size, "audit.signing_key_file: %s", why);
            goto err;
        }
        pg_audit_options ao = {.sync_every = cfg->audit_sync_every,
                               .key = cfg->audit_key_file ? &key : NULL,
                               .rotate_bytes = cfg->audit_rotate_bytes,
                               .rotate_ms = (int64_t)cfg->audit_rotate_seconds * 1000,
                               .on_event = d->metrics ? pg_metrics_on_audit : NULL,
                               .on_event_ud = d->metrics};
        d->audit = pg_audit_new(cfg->audit_path, &ao, why, sizeof why);
        sodium_memzero(&key, sizeof key);
        if (!d->audit) {
            pg_errf(PG_EIO, errstr, errstr_size, "audit %s: %s", cfg->audit_path, why);
            goto err;
        }
        /* Before anything is appended or published: a log that no longer holds its
         * latest checkpoint lost events (disclosures among them) that continuing it
         * would hide. */
        int rc = cfg->audit_signing_key_file
                     ? pg_audit_anchor_check(cfg, d->audit, &sk, cfg->audit_topic, S_AUDIT_CHECK_MS,
                                             why, sizeof why)
                     : 0;
        if (rc) {
            sodium_memzero(&sk, sizeof sk);
            pg_errf(rc, errstr, errstr_size, "audit: %s%s", why,
                    rc == PG_ECORRUPT                      ? S_AUDIT_CUT_HINT
                    : rc == PG_EKAFKA || rc == PG_ETIMEOUT ? S_AUDIT_UNREAD_HINT
                                                           : "");
            goto err;
        }
        if (cfg->audit_signing_key_file)
            d->anchor = pg_audit_anchor_new(cfg, d->audit, &sk, cfg->audit_topic,
                                            cfg->audit_checkpoint_interval_ms, errstr, errstr_size);
        sodium_memzero(&sk, sizeof sk);
        if (cfg->audit_signing_key_file && !d->anchor)
            goto err;
    }
    /* The intake's write-ahead log first: what it acknowledged since the store's last
     * checkpoint is applied again before anything else writes to the store. */
    char wal_dir[4096];
    snprintf(wal_dir, sizeof wal_dir, "%s/%s", cfg->store_path, PG_WAL_SUBDIR);
    d->wal = pg_wal_open(wal_dir, NULL, NULL, why, sizeof why);
    if (!d->wal) {
        pg_errf(PG_ECORRUPT, errstr, errstr_size, "%s", why);
        goto err;
    }
    if (cfg->delivery_endpoint &&
        !(d->echo = pg_echo_new(d->store, cfg->adapter, cfg->force, errstr, errstr_size)))
        goto err;
    pg_intake_opts iopts = {
        .endpoint = cfg->intake_endpoint,
        .max_message_size = cfg->intake_max_message_size,
        .adapter = cfg->adapter,
        .force = cfg->force,
        .router = d->router,
        .dlq_topic = cfg->dlq_topic,
        .group_max = cfg->spool_group_commit > 0 ? (size_t)cfg->spool_group_commit : 0,
        .store = d->store,
        .ledger = d->ledger,
        .spool = d->spool,
        .dlq = d->dlq,
        .audit = d->audit,
        .echo = d->echo,
        .curve_secret = cfg->curve_secret[0] ? cfg->curve_secret : NULL,
        .wal = d->wal,
        .checkpoint_ms = cfg->intake_checkpoint_ms,
    };
    if (d->router && pg_intake_recover(&iopts, why, sizeof why)) {
        pg_errf(PG_ECORRUPT, errstr, errstr_size, "intake: %s", why);
        goto err;
    }
    if (d->router && s_reconcile_at_start(d, errstr, errstr_size))
        goto err;
    pg_daemon_transactional_id(cfg->force, cfg->store_path, d->tid);
    pg_publisher_opts popts = {
        .brokers = cfg->kafka_brokers,
        .transactional_id = d->tid,
        .properties = cfg->kafka_properties,
        .property_count = cfg->kafka_property_count,
        .store = d->store,
        .spool = d->spool,
        .audit = d->audit,
        .on_commit = d->metrics ? pg_metrics_on_commit : NULL,
        .on_commit_ud = d->metrics,
    };
    d->publisher = pg_publisher_new(&popts, errstr, errstr_size);
    if (!d->publisher)
        goto err;
    if (cfg->intake_endpoint && cfg->curve_intake_clients_file &&
        !(d->curve_allow =
              pg_curve_allow_load(cfg->curve_intake_clients_file, errstr, errstr_size)))
        goto err;
    iopts.curve_allow = d->curve_allow;
    d->intake = pg_intake_new(&iopts, errstr, errstr_size);
    if (!d->intake)
        goto err;
    if (cfg->intake_directory) {
        pg_dropdir_opts dopts = {
            .dir = cfg->intake_directory,
            .max_file_size = cfg->intake_max_file_size,
            .adapter = cfg->adapter,
            .group_max = iopts.group_max,
            .intake = d->intake,
            .store = d->store,
        };
        d->dropdir = pg_dropdir_new(&dopts, errstr, errstr_size);
        if (!d->dropdir)
            goto err;
    }
    if (pg_partner_service_start(&d->live, d->store, d->audit, &d->partner, errstr, errstr_size))
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
    pg_partner_service_stop(&d->partner, 0);
    pg_dropdir_destroy(&d->dropdir);
    pg_intake_destroy(&d->intake);
    pg_wal_destroy(&d->wal);
    pg_echo_destroy(&d->echo);
    pg_publisher_destroy(&d->publisher);
    pg_audit_anchor_destroy(&d->anchor);
    pg_curve_allow_destroy(&d->curve_allow); /* after the intake (its ZAP handler) */
    pg_audit_destroy(&d->audit);
    pg_router_destroy(&d->router);
    pg_dlq_destroy(&d->dlq);
    pg_spool_destroy(&d->spool);
    pg_ledger_destroy(&d->ledger);
    pg_store_destroy(&d->store);
    pg_config_destroy(&d->reloaded);
    pg_metrics_destroy(&d->metrics); /* last: the audit log and the publisher call it */
    free(d);
    *p = NULL;
}

void pg_daemon_stop(pg_daemon *self)
{
    self->stop = -1;
}

void pg_daemon_signal(pg_daemon *self, int sig)
{
    if (sig == SIGTERM || sig == SIGINT)
        self->stop = sig;
    else if (sig > 0 && sig < S_NSIG)
        self->pending[sig] = 1;
}

pg_intake *pg_daemon_intake(pg_daemon *self)
{
    return self->intake;
}

pg_publisher *pg_daemon_publisher(pg_daemon *self)
{
    return self->publisher;
}

void pg_daemon_summary(const pg_daemon *self, char *out, size_t size)
{
    const pg_config *cfg = self->cfg;
    int n =
        snprintf(out, size,
                 "polegated %s: force %s, adapter %s (%s, max %zu bytes), intake %s%s%s, store "
                 "%s (map %zu MiB), spool max %zu records / %zu MiB, kafka %s "
                 "transactional.id %s, dead letters %s, log %s",
                 pg_version(), cfg->force, cfg->adapter->name, cfg->adapter->format,
                 cfg->intake_max_message_size,
                 self->intake && pg_intake_endpoint(self->intake) ? pg_intake_endpoint(self->intake)
                 : cfg->intake_endpoint                           ? cfg->intake_endpoint
                                                                  : "(no endpoint)",
                 cfg->intake_directory ? " and drop directory " : "",
                 cfg->intake_directory ? cfg->intake_directory : "", cfg->store_path,
                 cfg->store_map_size >> 20, cfg->spool_max_records, cfg->spool_max_bytes >> 20,
                 cfg->kafka_brokers, self->tid, cfg->dlq_topic ? cfg->dlq_topic : "(local only)",
                 cfg->log_level_name);
    for (size_t i = 0; cfg->policy && i < pg_policy_destination_count(cfg->policy); i++) {
        if (n < 0 || (size_t)n >= size)
            return;
        const pg_policy_destination *dest = pg_policy_destination_at(cfg->policy, i);
        n += snprintf(out + n, size - (size_t)n, "%s%s -> %s", i ? ", " : ", destinations ",
                      dest->name, dest->topic);
    }
}

static void s_log_counters(pg_daemon *self, int level, const char *when)
{
    pg_intake_stats is = self->last_intake;
    pg_publisher_stats ps;
    pg_spool_stats ss = {0};
    char why[PG_ERRSTR_SIZE];
    if (self->intake)
        pg_intake_get_stats(self->intake, &is);
    pg_dropdir_stats ds = self->last_dropdir;
    if (self->dropdir)
        pg_dropdir_get_stats(self->dropdir, &ds);
    pg_publisher_get_stats(self->publisher, &ps);
    pg_spool_stat_now(self->spool, &ss, why, sizeof why);
    pg_store_wait_stats ws;
    pg_store_writer_waits(self->store, &ws);
    pg_log(level,
           "%s: messages %" PRIu64 " received, %" PRIu64 " accepted (%" PRIu64
           " duplicate), %" PRIu64 " rejected (%" PRIu64 " dead letters), %" PRIu64
           " retry (%" PRIu64 " spool full, %" PRIu64 " store full, %" PRIu64
           " disk full), %" PRIu64 " commits, %" PRIu64 " log syncs (%" PRIu64 " failed), %" PRIu64
           " replayed from the log, %" PRIu64 " partner echoes dropped, %" PRIu64
           " connections refused (CURVE); drop directory %" PRIu64 " files done, %" PRIu64
           " failed; kafka %" PRIu64 " records in %" PRIu64 " transactions (%" PRIu64
           " spool removals), %" PRIu64 " aborted, %" PRIu64 " records sent again, %" PRIu64
           " producer restarts, %" PRIu64 " failed removals%s; spool %" PRIu64 " batches, %" PRIu64
           " records, %" PRIu64 " bytes waiting; store write transactions %llu, waited for "
           "%.1f ms at most (%.2f ms on average)",
           when, is.received, is.accepted, is.duplicates, is.rejected, is.dead_letters, is.retried,
           is.backpressure, is.store_full, is.disk_full, is.commits, is.wal_syncs, is.wal_failures,
           is.replayed, is.echoes, is.curve_refused, ds.files_done, ds.files_failed, ps.delivered,
           ps.transactions, ps.removals, ps.aborts, ps.resent, ps.restarts, ps.remove_failures,
           ps.stalled ? " (PUBLISHING STOPPED)" : "", ss.batches, ss.records, ss.bytes, ws.count,
           (double)ws.max_us / 1000.0,
           ws.count ? (double)ws.total_us / 1000.0 / (double)ws.count : 0.0);
}

/* Hand the parts' counters to the metrics endpoint (this thread is the one that may
 * read the intake's). spooled: an intake group was just acknowledged. stopping: the
 * reason /readyz gives from now on, or NULL. */
static void s_metrics_update(pg_daemon *self, int spooled, const char *stopping)
{
    pg_metrics_state st;
    memset(&st, 0, sizeof st);
    st.store_used_ratio = -1;
    char why[PG_ERRSTR_SIZE];
    if (self->intake)
        pg_intake_get_stats(self->intake, &st.intake);
    else
        st.intake = self->last_intake;
    pg_publisher_get_stats(self->publisher, &st.publisher);
    pg_store_txn *txn = pg_store_begin(self->store, 0, why, sizeof why);
    pg_dlq_stats ds = {0};
    if (txn) {
        pg_spool_stat(self->spool, txn, &st.spool, why, sizeof why);
        pg_dlq_stat(self->dlq, txn, &ds, why, sizeof why);
        pg_store_abort(&txn);
    }
    st.dead_letters = ds.entries;
    pg_store_space_info space;
    time_t now = time(NULL);
    if (now != self->store_space_at && !pg_store_space(self->store, &space, why, sizeof why) &&
        space.map) {
        self->store_used = (double)space.used / (double)space.map;
        self->store_limit = (double)(space.map - space.headroom) / (double)space.map;
        self->store_space_at = now;
    }
    st.store_used_ratio = self->store_space_at ? self->store_used : -1;
    st.store_limit_ratio = self->store_limit;
    /* The intake's own sequence: what it acknowledged may not be committed in the
     * store yet (the write-ahead log holds it until the next checkpoint). */
    if (spooled)
        pg_metrics_spooled(self->metrics,
                           st.intake.spool_next ? st.intake.spool_next : st.spool.next_seq);
    int joined = 1;
    if (self->partner) {
        st.partner_running = 1;
        pg_partner_service_stats(self->partner, &st.partner);
        /* counters since start, not since the last reload restarted the service */
        pg_partner_stats_add(&st.partner, &self->partner_before);
        st.lag_count = pg_partner_service_lag(self->partner, &joined, st.lag, PG_PARTNER_MAX_LAG);
    }
    if (stopping) {
        snprintf(st.not_ready, sizeof st.not_ready, "%s", stopping);
    } else if (st.publisher.stalled) {
        pg_publisher_last_error(self->publisher, why, sizeof why);
        snprintf(st.not_ready, sizeof st.not_ready, "%.290s (see the log)",
                 why[0] ? why : "publishing stopped");
    } else if (st.publisher.audit_failing) {
        snprintf(st.not_ready, sizeof st.not_ready,
                 "audit: the log %.200s takes no events: nothing is published (see the log)",
                 self->cfg->audit_path ? self->cfg->audit_path : "");
    } else if (!st.publisher.ready) {
        pg_publisher_last_error(self->publisher, why, sizeof why);
        snprintf(st.not_ready, sizeof st.not_ready,
                 "kafka: the producer has no producer id yet (transactional.id %s)%s%.100s",
                 self->tid, *why ? ": " : "", why);
    } else if (!joined) {
        snprintf(st.not_ready, sizeof st.not_ready,
                 "partner consumer: not yet a member of group %s", self->cfg->delivery_group_id);
    }
    pg_metrics_set_state(self->metrics, &st);
}

/* A key of the new configuration that differs from the running one: the log level
 * applies now, the policy by its version, anything else at the next start. */
static void s_changed_key(void *arg, const char *section, const char *key)
{
    (void)arg;
    if (strcmp(section, "log"))
        pg_log(PG_LOG_WARN, "reload: %s.%s changed: it takes effect at the next start", section,
               key);
}

/* SIGHUP, under CURVE: the intake's allow-list file (the one the daemon started with)
 * read again, so that a key taken off it is refused from now on (new connections, and
 * what open ones send). A list that does not load changes nothing. */
static void s_reload_allow_list(pg_daemon *self)
{
    if (!self->curve_allow)
        return;
    char why[PG_ERRSTR_SIZE];
    const char *path = self->cfg->curve_intake_clients_file;
    pg_curve_allow *next = pg_curve_allow_load(path, why, sizeof why);
    if (!next) {
        pg_log(PG_LOG_ERROR, "reload: curve.intake_clients_file: %s; the running list stays", why);
        return;
    }
    size_t was = pg_curve_allow_count(self->curve_allow);
    pg_intake_set_allow(self->intake, next);
    pg_curve_allow_destroy(&self->curve_allow);
    self->curve_allow = next;
    pg_log(PG_LOG_INFO, "reload: intake allow-list %s read again: %zu keys (was %zu)", path,
           pg_curve_allow_count(next), was);
}

/* SIGHUP: read the configuration file again. One that does not pass --check-config,
 * or that does not fit what stays in force (pg_config_check_reload), changes nothing.
 * A new policy version goes through the start-up reconcile (and the partner service
 * restarts under it); if that fails the running policy stays. Returns 0, or negative
 * with errstr when the daemon cannot go on (the partner service could not be
 * restarted). */
static int s_reload(pg_daemon *self, char *errstr, size_t errstr_size)
{
    char errs[16384];
    pg_config *next = pg_config_load(self->cfg->path, errs, sizeof errs);
    /* The file alone passes --check-config; it must also fit what stays in force. */
    if (next && pg_config_check_reload(&self->live, next, errs, sizeof errs))
        pg_config_destroy(&next);
    if (!next) {
        for (char *c = errs; *c; c++)
            if (*c == '\n')
                *c = ';';
        pg_log(PG_LOG_ERROR, "reload refused, the running configuration stays: %s", errs);
        return 0;
    }
    pg_config_diff(self->cfg, next, s_changed_key, NULL);
    pg_log_set_level(next->log_level);
    pg_log_set_format(next->log_format);
    s_reload_allow_list(self);
    struct pg_policy *was = self->live.policy;
    if (!strcmp(pg_policy_version(was), pg_policy_version(next->policy))) {
        pg_log(PG_LOG_INFO, "reloaded %s: log level %s, policy %s unchanged", next->path,
               next->log_level_name, pg_policy_version(was));
        pg_config_destroy(&next);
        return 0;
    }
    /* What the intake logged under the old policy is committed before it changes (a
     * replay decides under the policy the log names), and the reconcile's write
     * transaction is this thread's: the intake's must end first. */
    char cwhy[PG_ERRSTR_SIZE];
    if (pg_intake_checkpoint(self->intake, cwhy, sizeof cwhy)) {
        pg_log(PG_LOG_ERROR, "reload: policy %s not applied, %s stays: intake checkpoint: %s",
               pg_policy_version(next->policy), pg_policy_version(was), cwhy);
        pg_config_destroy(&next);
        return 0;
    }
    /* The partner thread reads the policy: stop it before the old one can go. */
    if (self->partner) {
        pg_partner_stats last;
        pg_partner_service_halt(self->partner, S_RELOAD_DRAIN_MS);
        pg_partner_service_stats(self->partner, &last);
        pg_partner_stats_add(&self->partner_before, &last);
    }
    pg_partner_service_stop(&self->partner, 0);
    char why[PG_ERRSTR_SIZE];
    self->live.policy = next->policy;
    if (self->metrics)
        s_metrics_destinations(self->metrics, next->policy);
    pg_router_set_policy(self->router, next->policy);
    if (s_reconcile(self, why, sizeof why)) {
        self->live.policy = was;
        pg_router_set_policy(self->router, was);
        pg_log(PG_LOG_ERROR, "reload: policy %s not applied, %s stays: reconcile: %s",
               pg_policy_version(next->policy), pg_policy_version(was), why);
        pg_config_destroy(&next);
    } else {
        pg_log(PG_LOG_INFO, "reloaded %s: log level %s, policy %s (was %s)", next->path,
               next->log_level_name, pg_policy_version(next->policy), pg_policy_version(was));
        pg_config_destroy(&self->reloaded); /* the policy before, now unused */
        self->reloaded = next;
    }
    if (pg_partner_service_start(&self->live, self->store, self->audit, &self->partner, why,
                                 sizeof why))
        return pg_errf(PG_EINTERNAL, errstr, errstr_size,
                       "reload: the partner service cannot restart: %s", why);
    return 0;
}

/* Act on the signals pg_daemon_signal noted. 0, or negative with errstr when the
 * daemon must stop. */
static int s_signals(pg_daemon *self, char *errstr, size_t errstr_size)
{
    for (int sig = 1; sig < S_NSIG; sig++) {
        if (!self->pending[sig])
            continue;
        self->pending[sig] = 0;
        if (sig == SIGHUP) {
            pg_log(PG_LOG_INFO, "SIGHUP: reloading %s", self->cfg->path);
            /* systemd (Type=notify) holds `systemctl reload` until READY=1 again. */
            struct timespec mono;
            clock_gettime(CLOCK_MONOTONIC, &mono);
            sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                       (unsigned long long)mono.tv_sec * 1000000ULL +
                           (unsigned long long)mono.tv_nsec / 1000ULL);
            int rrc = s_reload(self, errstr, errstr_size);
            sd_notify(0, "READY=1");
            if (rrc)
                return PG_EINTERNAL;
        } else if (sig == SIGUSR1) {
            s_log_counters(self, PG_LOG_INFO, "SIGUSR1");
        } else {
            pg_log(PG_LOG_WARN, "signal %d (%s) ignored: SIGTERM or SIGINT stops, SIGHUP reloads",
                   sig, strsignal(sig));
        }
    }
    return 0;
}

static uint64_t s_elapsed_us(const struct timespec *since, const struct timespec *now)
{
    return (uint64_t)(now->tv_sec - since->tv_sec) * 1000000u +
           (uint64_t)((now->tv_nsec - since->tv_nsec) / 1000);
}

int pg_daemon_run(pg_daemon *self, char *errstr, size_t errstr_size)
{
    int rc = 0;
    char why[PG_ERRSTR_SIZE];
    pg_spool_stats ss;
    if (!pg_spool_stat_now(self->spool, &ss, why, sizeof why) && ss.batches)
        pg_log(PG_LOG_INFO,
               "spool: %" PRIu64 " batches (%" PRIu64 " records) kept from an earlier run: "
               "publishing them first",
               ss.batches, ss.records);
    if (pg_publisher_start(self->publisher, errstr, errstr_size))
        return PG_EINTERNAL;
    time_t last_stats = time(NULL);
    uint64_t last_received = 0;
    struct timespec last_metrics = {0, 0}, last_watchdog = {0, 0};
    /* Under systemd (Type=notify): started once the intake is bound, which it is. The
     * watchdog is fed from this loop, so a wedged intake stops feeding it. */
    sd_notifyf(0, "READY=1\nSTATUS=serving %s", pg_intake_endpoint(self->intake));
    uint64_t watchdog_usec = 0;
    if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
        watchdog_usec = 0;
    if (self->metrics)
        pg_log(PG_LOG_INFO, "metrics: serving /metrics, /healthz and /readyz on %s (port %d)",
               self->cfg->metrics_listen, pg_metrics_port(self->metrics));

    int damaged = 0;
    while (!self->stop) {
        if (s_signals(self, errstr, errstr_size)) {
            rc = PG_EINTERNAL;
            pg_log(PG_LOG_ERROR, "%s", errstr);
            break;
        }
        /* One group from the drop directory, then what waits on the socket: while
         * files have work the socket is only looked at, not waited on. */
        int busy = self->dropdir ? pg_dropdir_step(self->dropdir) : 0;
        int n = pg_intake_poll(self->intake, busy ? 0 : S_POLL_MS, 0, why, sizeof why);
        if (n < 0) {
            rc = pg_errf(n, errstr, errstr_size, "%s", why);
            pg_log(PG_LOG_ERROR, "%s", why);
            break;
        }
        /* A value failed its checksum (any thread): nothing more is decided or sent
         * on this store; the operator runs `polegate store check`. */
        if ((damaged = pg_store_damaged(self->store, why, sizeof why))) {
            rc = pg_errf(PG_ECORRUPT, errstr, errstr_size, "%s; stopping", why);
            pg_log(PG_LOG_ERROR, "%s; stopping (polegate store check %s lists what is damaged)",
                   why, self->cfg->store_path);
            break;
        }
        struct timespec mono;
        clock_gettime(CLOCK_MONOTONIC, &mono);
        if (watchdog_usec && s_elapsed_us(&last_watchdog, &mono) >= watchdog_usec / 2) {
            sd_notify(0, "WATCHDOG=1");
            last_watchdog = mono;
        }
        if (self->metrics) {
            /* A group of the drop directory is spooled like one of the socket. */
            int spooled = n > 0 || busy;
            if (spooled || s_elapsed_us(&last_metrics, &mono) >= S_METRICS_EVERY_MS * 1000u) {
                s_metrics_update(self, spooled, NULL);
                last_metrics = mono;
            }
        }
        if (self->anchor)
            pg_audit_anchor_tick(self->anchor);
        time_t now = time(NULL);
        if (now - last_stats >= S_STATS_EVERY) {
            pg_intake_stats is;
            pg_intake_get_stats(self->intake, &is);
            if (is.received != last_received)
                s_log_counters(self, PG_LOG_INFO, "running");
            last_received = is.received;
            last_stats = now;
        }
    }

    /* Stop taking messages first: requests still queued in the socket are dropped
     * unanswered and their senders send them again to the next run. Everything
     * acknowledged is in the spool; publish what the drain bound allows, and leave
     * the rest there. */
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: publishing the spool");
    pg_intake_get_stats(self->intake, &self->last_intake);
    if (self->dropdir)
        pg_dropdir_get_stats(self->dropdir, &self->last_dropdir);
    pg_dropdir_destroy(&self->dropdir);
    pg_intake_destroy(&self->intake);
    if (self->metrics)
        s_metrics_update(self, 0, "stopping");
    int drain_ms = damaged ? 0 : self->cfg->spool_drain_timeout_ms;
    pg_partner_service_stop(&self->partner, drain_ms);
    pg_log(PG_LOG_INFO, "stopping (%s): intake closed; publishing the spool for up to %d ms",
           self->stop > 0 ? strsignal(self->stop)
           : rc           ? "error"
                          : "asked",
           drain_ms);
    int drc = pg_publisher_drain(self->publisher, drain_ms, why, sizeof why);
    pg_publisher_stop(self->publisher);
    /* Last: the checkpoint covers every event of this run. */
    if (self->anchor) {
        if (pg_audit_anchor_publish(self->anchor, drain_ms > 1000 ? drain_ms : 1000, why,
                                    sizeof why))
            pg_log(PG_LOG_ERROR, "%s", why);
        else
            pg_log(PG_LOG_INFO, "audit: checkpoint of event %" PRIu64 " published to %s",
                   pg_audit_seq(self->audit), self->cfg->audit_topic);
    }
    s_log_counters(self, PG_LOG_INFO, "stopped");
    if (self->metrics)
        s_metrics_update(self, 0, "stopped");
    if (drc == PG_ETIMEOUT)
        pg_log(PG_LOG_WARN, "spool: %s; kept for the next start", why);
    else if (drc)
        pg_log(PG_LOG_ERROR, "%s", why);
    return rc;
}
