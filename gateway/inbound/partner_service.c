/* pg_partner_service: the daemon's thread of the inbound direction: consume partner
 * topics, take into the pipeline, poll the RMS, commit offsets. */
#include "partner_service.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compose.h"
#include "config.h"
#include "consumer.h"
#include "log.h"
#include "partner.h"
#include "polegate/error.h"
#include "polegate/timeutil.h"
#include "policy.h"
#include "store.h"

static int s_nomem(char *errstr, size_t errstr_size)
{
    return pg_errf(PG_ENOMEM, errstr, errstr_size, "partner: out of memory");
}

/* Records taken per write transaction: the most one poll returns. A durable commit
 * costs two fsyncs and a rewrite of every page the batch touched, so a backlog goes
 * faster in large batches (docs/performance.md: 500 -> 2000 halved the commit time);
 * the write lock is held for the whole take (tens of ms at 2000), which the intake
 * waits out, so not larger. */
#define S_BATCH 2000
/* Milliseconds between two offset commits (asynchronous). */
#define S_COMMIT_EVERY_MS 200
/* Milliseconds of a full window after which consumption is paused. */
#define S_PAUSE_AFTER_MS 1000
/* Seconds between two counter lines in the log. */
#define S_STATS_EVERY 60
/* Milliseconds between two looks for replays the operator asked for. */
#define S_REPLAYS_EVERY_MS 250

struct pg_partner_service {
    pg_partner *p;
    pg_consumer *c;
    pg_store *store;    /* the gateway's: its headroom is kept for removals */
    time_t full_warned; /* the last "store nearly full" warning */
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_int drain_ms;
    atomic_uint_fast64_t polled; /* records polled (pg_partner_service_polled) */
    pthread_mutex_t lock;
    pg_partner_stats snap;
    int joined;                             /* snapshot of pg_consumer_lag */
    pg_partner_lag lag[PG_PARTNER_MAX_LAG]; /* and of each topic's lag */
    size_t n_lag;
    char **topics;
    size_t n_topics;
};

/* Partner records add to the store (outbox, ledger, id map) like the intake does:
 * they too stop short of the headroom kept so that published records can always be
 * removed (store.h). How many of the n records, from the first, may be taken now: a
 * batch too large for the room left is taken a part at a time, never held whole for
 * room that a store of a small map may never get. */
static size_t s_room_for(pg_partner_service *s, const pg_consumer_record *recs, size_t n)
{
    pg_store_space_info sp;
    char why[PG_ERRSTR_SIZE];
    size_t fit = 0;
    if (pg_store_space(s->store, &sp, why, sizeof why) == 0) {
        size_t room = sp.map > sp.used + sp.headroom ? sp.map - sp.used - sp.headroom : 0;
        for (size_t need = 0; fit < n; fit++) {
            need += PG_STORE_GROWTH(recs[fit].len);
            if (need > room)
                break;
        }
    }
    if (fit)
        return fit;
    time_t now = time(NULL);
    if (now - s->full_warned >= 30) {
        pg_log(PG_LOG_WARN,
               "partner: store nearly full (%zu of its %zu-byte map in use, %zu kept free for "
               "removals): taking no partner records until the spool drains (or raise "
               "store.map_size)",
               sp.used, sp.map, sp.headroom);
        s->full_warned = now;
    }
    return 0;
}

/* pg_consumer_lag's callback: into the service's snapshot (locked by the caller). */
static void s_lag(void *ud, const char *topic, int64_t lag)
{
    pg_partner_service *s = ud;
    if (s->n_lag == PG_PARTNER_MAX_LAG)
        return;
    snprintf(s->lag[s->n_lag].topic, sizeof s->lag[s->n_lag].topic, "%s", topic);
    s->lag[s->n_lag++].lag = lag;
}

static int s_mark(void *arg, const char *topic, int32_t partition, int64_t next)
{
    return pg_consumer_mark(arg, topic, partition, next);
}

static void s_log_stats(pg_partner_service *self, const char *when)
{
    pg_partner_stats st;
    pg_compose_stats cs;
    pg_partner_get_stats(self->p, &st);
    pg_partner_get_compose_stats(self->p, &cs);
    pg_log(PG_LOG_INFO,
           "partner %s: records %" PRIu64 " consumed, %" PRIu64 " accepted, %" PRIu64
           " duplicate, %" PRIu64 " stale, %" PRIu64 " own, %" PRIu64 " rejected, %" PRIu64
           " skipped; RMS messages %" PRIu64 " composed, %" PRIu64 " stored, %" PRIu64
           " rejected, %zu pending; compose %" PRIu64 " resent, %" PRIu64
           " unknown to the RMS, %" PRIu64 " links deferred, %" PRIu64 " refused by the adapter",
           when, st.records, st.accepted, st.duplicates, st.stale, st.own, st.rejected, st.skipped,
           st.composed, st.stored, st.rms_rejected, pg_partner_pending(self->p), cs.resent,
           cs.unknown, cs.deferred, cs.refused);
}

static void *s_main(void *arg)
{
    pg_partner_service *s = arg;
    pthread_setname_np(pthread_self(), "pg-partner"); /* for top -H and perf */
    pg_consumer_record *recs = calloc(S_BATCH, sizeof *recs);
    char why[PG_ERRSTR_SIZE];
    int held = 0; /* records polled and not yet taken */
    int64_t last_commit = pg_time_mono_ms(), last_stats = last_commit, last_lag = 0,
            last_replays = 0;
    uint64_t last_records = 0;
    int64_t busy_since = 0;
    while (recs && !atomic_load(&s->stop)) {
        int busy = pg_partner_busy(s->p);
        int64_t t = pg_time_mono_ms();
        busy_since = busy ? (busy_since ? busy_since : t) : 0;
        /* Busy for a moment (a window's worth in flight): just take no records. Busy
         * for long (a slow or absent RMS): pause fetching, and keep polling so that the
         * group keeps us. Resuming costs a fetch round, so it is not done per batch. */
        int long_busy = busy && t - busy_since >= S_PAUSE_AFTER_MS;
        if (long_busy != pg_consumer_paused(s->c) && (long_busy || !busy))
            pg_consumer_pause(s->c, long_busy);
        if (!held && (!busy || long_busy)) {
            int in_flight = pg_partner_pending(s->p) > 0;
            int n =
                pg_consumer_poll(s->c, recs, S_BATCH, busy || in_flight ? 0 : 100, why, sizeof why);
            if (n < 0) {
                pg_log(PG_LOG_ERROR, "partner: %s", why);
                struct timespec ts = {1, 0};
                nanosleep(&ts, NULL);
                continue;
            }
            held = n;
            atomic_fetch_add(&s->polled, (uint_fast64_t)n);
        }
        size_t fit = held ? s_room_for(s, recs, (size_t)held) : 0;
        int no_room = held && !fit;
        if (fit) {
            if (pg_partner_take(s->p, recs, fit, why, sizeof why) == 0) {
                /* the rest stays held (the consumer keeps their bytes until the next
                 * poll) and goes next; a partition's records are in order in recs, so
                 * the offsets of a part taken cover only records taken */
                held -= (int)fit;
                memmove(recs, recs + fit, (size_t)held * sizeof *recs);
                if (!held)
                    pg_consumer_release(s->c);
            } else {
                /* nothing of them happened: the same records are taken again */
                pg_log(PG_LOG_ERROR, "partner: %s (trying again in 1 s)", why);
                struct timespec ts = {1, 0};
                nanosleep(&ts, NULL);
            }
        }
        if (no_room) {
            /* Kept, and taken once the publisher has removed enough; meanwhile the
             * delivery below goes on, without spinning. */
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
        }
        int wait = !held && pg_partner_pending(s->p) ? (busy ? 100 : 20) : 0;
        if (pg_partner_poll(s->p, wait, why, sizeof why) < 0)
            pg_log(PG_LOG_ERROR, "partner: delivery: %s", why);
        pg_partner_committable(s->p, s_mark, s->c);
        int64_t now = pg_time_mono_ms();
        if (now - last_commit >= S_COMMIT_EVERY_MS) {
            pg_consumer_commit(s->c, 0, why, sizeof why);
            last_commit = now;
        }
        /* `polegate dlq replay` of partner dead letters while we run: this thread owns
         * the pipeline, so it replays them (pg_dlq_replay_ask). */
        if (now - last_replays >= S_REPLAYS_EVERY_MS) {
            int rc = pg_partner_replay_asked(s->p, why, sizeof why);
            if (rc < 0)
                pg_log(PG_LOG_ERROR, "partner: replay: %s (tried again in 5 s)", why);
            last_replays = now + (rc < 0 ? 5000 : 0);
        }
        if (now - last_stats >= S_STATS_EVERY * 1000) {
            pg_partner_stats st;
            pg_partner_get_stats(s->p, &st);
            if (st.records != last_records)
                s_log_stats(s, "running");
            last_records = st.records;
            last_stats = now;
        }
        pthread_mutex_lock(&s->lock);
        pg_partner_get_stats(s->p, &s->snap);
        if (now - last_lag >= 1000) {
            s->n_lag = 0;
            s->joined = pg_consumer_lag(s->c, s_lag, s);
            last_lag = now;
        }
        pthread_mutex_unlock(&s->lock);
    }
    /* Records polled but not taken come again (their offsets are not committed). */
    pg_consumer_release(s->c);
    free(recs);
    int64_t until = pg_time_mono_ms() + atomic_load(&s->drain_ms);
    while (pg_partner_pending(s->p) && pg_time_mono_ms() < until)
        if (pg_partner_poll(s->p, 50, why, sizeof why) < 0)
            break;
    if (pg_partner_pending(s->p))
        pg_log(PG_LOG_INFO,
               "partner: stopping with %zu message(s) not yet stored by the RMS: they are in "
               "the import queue and go first at the next start",
               pg_partner_pending(s->p));
    pg_partner_committable(s->p, s_mark, s->c);
    pg_consumer_commit(s->c, 1, why, sizeof why);
    s_log_stats(s, "stopped");
    pthread_mutex_lock(&s->lock);
    pg_partner_get_stats(s->p, &s->snap);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void s_service_free(pg_partner_service *self)
{
    pg_consumer_destroy(&self->c);
    pg_partner_destroy(&self->p);
    for (size_t i = 0; i < self->n_topics; i++)
        free(self->topics[i]);
    free(self->topics);
    pthread_mutex_destroy(&self->lock);
    free(self);
}

void pg_partner_service_opts(const pg_config *cfg, pg_store *store, pg_audit *audit,
                             pg_partner_opts *out)
{
    *out = (pg_partner_opts){
        .force = cfg->force,
        .adapter = cfg->adapter,
        .policy = cfg->policy,
        .store = store,
        .audit = audit,
        .adapter_settings = (const char *const *)cfg->adapter_settings,
        .delivery = {.transport = cfg->delivery_transport,
                     .endpoint = cfg->delivery_endpoint,
                     .window = (size_t)cfg->delivery_window,
                     .ack_timeout_ms = cfg->delivery_ack_timeout_ms,
                     .retry_max_ms = cfg->delivery_retry_max_ms,
                     .file_mode = cfg->delivery_file_mode},
        .dlq_limits = {.max_entries = cfg->dlq_max_records, .max_bytes = cfg->dlq_max_bytes},
    };
    /* CURVE: our key, and the RMS import endpoint's key pinned (docs/security.md). */
    memcpy(out->delivery.curve_secret, cfg->curve_secret, sizeof out->delivery.curve_secret);
    memcpy(out->delivery.curve_server_key, cfg->curve_rms_import_key,
           sizeof out->delivery.curve_server_key);
}

int pg_partner_service_start(const pg_config *cfg, pg_store *store, pg_audit *audit,
                             pg_partner_service **out, char *errstr, size_t errstr_size)
{
    *out = NULL;
    size_t n = cfg->policy ? pg_policy_partner_count(cfg->policy) : 0;
    if (!cfg->delivery_endpoint || !n) {
        if (cfg->delivery_endpoint)
            pg_log(PG_LOG_WARN, "partner: delivery.endpoint is set but the policy names no "
                                "partners: nothing to consume");
        return 0;
    }
    pg_partner_service *s = calloc(1, sizeof *s);
    if (!s || !(s->topics = calloc(n, sizeof *s->topics))) {
        free(s);
        return s_nomem(errstr, errstr_size);
    }
    pthread_mutex_init(&s->lock, NULL);
    s->store = store;
    for (size_t i = 0; i < n; i++) {
        if (!(s->topics[i] = strdup(pg_policy_partner_at(cfg->policy, i)->topic))) {
            s_service_free(s);
            return s_nomem(errstr, errstr_size);
        }
        s->n_topics++;
    }
    pg_partner_opts popts;
    pg_partner_service_opts(cfg, store, audit, &popts);
    /* The store is the instance: a restart on it rejoins the group as the same member
     * (FNV-1a of its real path). */
    char real[PATH_MAX], instance[96];
    const char *path = realpath(cfg->store_path, real) ? real : cfg->store_path;
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        h = (h ^ *c) * 16777619u;
    snprintf(instance, sizeof instance, "%s.%08" PRIx32, cfg->delivery_group_id, h);
    pg_consumer_opts copts = {
        .brokers = cfg->kafka_brokers,
        .group_id = cfg->delivery_group_id,
        .instance_id = instance,
        .topics = (const char *const *)s->topics,
        .topic_count = s->n_topics,
        .properties = cfg->kafka_properties,
        .property_count = cfg->kafka_property_count,
    };
    if (!(s->p = pg_partner_new(&popts, errstr, errstr_size)) ||
        !(s->c = pg_consumer_new(&copts, errstr, errstr_size))) {
        s_service_free(s);
        return PG_ECONFIG;
    }
    if (pthread_create(&s->thread, NULL, s_main, s)) {
        s_service_free(s);
        return pg_errf(PG_EIO, errstr, errstr_size, "partner: cannot start a thread");
    }
    s->started = 1;
    pg_log(PG_LOG_INFO, "partner: consuming %zu partner topic(s) as group %s, delivering to %s %s",
           s->n_topics, cfg->delivery_group_id, cfg->delivery_transport, cfg->delivery_endpoint);
    *out = s;
    return 0;
}

void pg_partner_service_halt(pg_partner_service *self, int drain_ms)
{
    if (!self || !self->started)
        return;
    atomic_store(&self->drain_ms, drain_ms < 0 ? 0 : drain_ms);
    atomic_store(&self->stop, 1);
    pthread_join(self->thread, NULL);
    self->started = 0;
}

void pg_partner_service_stop(pg_partner_service **p, int drain_ms)
{
    if (!p || !*p)
        return;
    pg_partner_service_halt(*p, drain_ms);
    s_service_free(*p);
    *p = NULL;
}

size_t pg_partner_service_lag(pg_partner_service *self, int *joined, pg_partner_lag *out,
                              size_t max)
{
    pthread_mutex_lock(&self->lock);
    *joined = self->joined;
    size_t n = self->n_lag < max ? self->n_lag : max;
    memcpy(out, self->lag, n * sizeof *out);
    pthread_mutex_unlock(&self->lock);
    return n;
}

uint64_t pg_partner_service_polled(pg_partner_service *self)
{
    return atomic_load(&self->polled);
}

void pg_partner_service_stats(pg_partner_service *self, pg_partner_stats *out)
{
    pthread_mutex_lock(&self->lock);
    *out = self->snap;
    pthread_mutex_unlock(&self->lock);
}
