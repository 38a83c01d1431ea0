/* pg_publisher: spool -> Kafka transactions (librdkafka, idempotent, acks=all). */
#include "publisher.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "kafka.h"
#include "log.h"
#include "outrec.h"
#include "polegate/error.h"
#include "sentmark.h"
#include "spool.h"
#include "store.h"

/* Each Kafka transaction costs the broker and librdkafka a fixed amount of work
 * (AddPartitionsToTxn, EndTxn, a marker per partition, the transaction log): about
 * 6 ms of broker CPU and 2 ms of librdkafka's main thread on the 2-core machine of
 * docs/performance.md, more than the records themselves. So a window takes all the
 * spool holds up to these bounds; in steady state that is what one checkpoint of the
 * intake made visible. */
#define S_DEFAULT_WINDOW_BATCHES 2048
#define S_DEFAULT_WINDOW_BYTES ((size_t)16 << 20)
#define S_DEFAULT_TXN_TIMEOUT_MS 60000
#define S_DEFAULT_CALL_TIMEOUT_MS 1000
/* Seconds between two warnings while the broker stays unreachable. */
#define S_WARN_EVERY 30
/* Windows aborted in a row after which the handle is remade: librdkafka keeps some
 * errors (a topic's) cached in the handle, and a new one starts clean. */
#define S_ABORTS_BEFORE_RESTART 3
/* Committed windows are removed from the spool together: each removal is a store write
 * transaction, which waits for the store's one writer lock, makes the intake commit
 * (checkpoint) early to hand it over, and costs an fdatasync. While the intake is
 * adding batches they are removed every S_REMOVE_EVERY_MS or S_REMOVE_EVERY_BATCHES;
 * at once when no write transaction is open and none was committed (pg_spool_notify)
 * while the window was published, and nothing waits behind it (the removal then
 * delays no one); or when the spool has stayed empty for S_REMOVE_IDLE_MS. A crash in between sends
 * them again at the next start, as a crash between commit and removal always did (the same keys and
 * versions, which consumers drop). */
#define S_REMOVE_EVERY_MS 500
#define S_REMOVE_IDLE_MS 200
#define S_REMOVE_EVERY_BATCHES 4096

struct pg_publisher {
    rd_kafka_conf_t *conf; /* the template every handle is made from */
    rd_kafka_t *rk;
    char *tid;
    pg_store *store;
    pg_spool *spool;
    pg_audit *audit;
    void (*on_commit)(void *ud, const pg_outbatch *win, uint64_t first_seq, uint64_t last_seq);
    void *on_commit_ud;
    size_t window_batches;
    size_t window_bytes;
    int call_timeout_ms;

    /* Where the current handle is in its transaction cycle. */
    int inited;             /* init_transactions done */
    int delivering;         /* a window produced: wait until the broker stored all of it */
    uint64_t failed_before; /* stats.failed when the window was produced */
    int committing;         /* a window stored and audited: commit it (again, after a timeout) */
    int aborting;           /* the open transaction must be aborted first */
    int aborts_in_row;      /* windows aborted since the last commit */
    pg_outbatch *win;       /* the window's records */
    uint64_t win_first, win_last;
    size_t win_batches;
    size_t win_resent;     /* records of the window this process had produced before */
    uint64_t win_gen;      /* pg_spool_generation when the window was read */
    uint64_t win_rewrites; /* pg_spool_rewrites when the window was read */
    /* The highest batch sequence produced so far, by this process or (from the mark,
     * sentmark.h) an earlier one: the mark is raised to a window's last before it is
     * produced, so that what a restart publishes again is counted. */
    uint64_t max_seq;
    pg_sentmark *mark;
    int mark_failed; /* the last try to raise it failed: publishing stopped */
    /* Batches committed in Kafka, not yet removed from the spool (done_last 0: none);
     * windows are read after done_last. */
    uint64_t done_first, done_last;
    size_t done_batches, done_records;
    struct timespec done_since; /* when the oldest of them was committed */
    /* Their removal failed: nothing more is published until it succeeds (sending them
     * again would duplicate them). */
    int unremoved;
    time_t unremoved_warn;

    pthread_t thread;
    int running;
    atomic_int stop;

    pthread_mutex_t lock; /* stats, last_error */
    pg_publisher_stats stats;
    char last_error[PG_ERRSTR_SIZE];
    time_t last_warn;
};

/* Defaults an operator may override through kafka.properties. */
static const char *const s_defaults[][2] = {
    {"client.id", "polegated"},
    {"linger.ms", "5"},
};

/* ---------------------------------------------------------------- counters, errors */

#define S_COUNT(self, field, n)                                                                    \
    do {                                                                                           \
        pthread_mutex_lock(&(self)->lock);                                                         \
        (self)->stats.field += (n);                                                                \
        pthread_mutex_unlock(&(self)->lock);                                                       \
    } while (0)

/* Record why a round failed and return err. Broker trouble repeats every round while
 * the broker is away: it is logged once per S_WARN_EVERY seconds. */
__attribute__((format(printf, 5, 6))) static int s_fail(pg_publisher *self, int err, char *errstr,
                                                        size_t errstr_size, const char *fmt, ...)
{
    char msg[PG_ERRSTR_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    time_t now = time(NULL);
    pthread_mutex_lock(&self->lock);
    int quiet =
        err == PG_ERETRY && !strcmp(msg, self->last_error) && now - self->last_warn < S_WARN_EVERY;
    snprintf(self->last_error, sizeof self->last_error, "%s", msg);
    if (!quiet)
        self->last_warn = now;
    pthread_mutex_unlock(&self->lock);
    if (!quiet)
        pg_log(err == PG_ERETRY ? PG_LOG_WARN : PG_LOG_ERROR, "kafka: %s", msg);
    return pg_errf(err, errstr, errstr_size, "%s", msg);
}

static void s_ok(pg_publisher *self)
{
    pthread_mutex_lock(&self->lock);
    self->last_error[0] = 0;
    pthread_mutex_unlock(&self->lock);
}

/* ---------------------------------------------------------------- librdkafka */

static void s_dr(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    pg_publisher *self = opaque;
    if (!rkm->err)
        return; /* counted delivered when its transaction commits */
    S_COUNT(self, failed, 1);
    /* Not lost: the transaction aborts and the spool sends the record again. */
    pg_log(PG_LOG_DEBUG, "kafka: record key %.*s not delivered to %s (will be sent again): %s",
           (int)rkm->key_len, rkm->key ? (const char *)rkm->key : "", rd_kafka_topic_name(rkm->rkt),
           rd_kafka_err2str(rkm->err));
}

static void s_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* librdkafka logs a refused connection at LOG_ERR although it retries it: only
     * what it rates worse than that is an error of ours. */
    int lvl = level <= 2   ? PG_LOG_ERROR
              : level <= 4 ? PG_LOG_WARN
              : level <= 6 ? PG_LOG_INFO
                           : PG_LOG_DEBUG;
    pg_log(lvl, "librdkafka %s: %s", fac, buf);
}

static void s_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk, (void)opaque;
    /* Broker-down and similar errors are retried by librdkafka: worth a debug line; the
     * rounds report what they do to the spool. Fatal ones remake the handle. */
    pg_log(err == RD_KAFKA_RESP_ERR__FATAL ? PG_LOG_ERROR : PG_LOG_DEBUG, "kafka: %s: %s",
           rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static int s_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                 size_t errstr_size)
{
    char why[256];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK)
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "kafka property %s: %s", key, why);
    return 0;
}

static int s_make_rk(pg_publisher *self, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(self->conf);
    if (!conf)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    char why[512];
    self->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!self->rk) {
        rd_kafka_conf_destroy(conf);
        return pg_errf(PG_EKAFKA, errstr, errstr_size, "kafka: %s", why);
    }
    self->inited = self->delivering = self->committing = self->aborting = 0;
    return 0;
}

static void s_drop_rk(pg_publisher *self)
{
    if (!self->rk)
        return;
    /* What never reached a broker is purged rather than waited for: it is in the
     * spool. The broker aborts an open transaction when the next handle initialises. */
    rd_kafka_purge(self->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(self->rk, 0);
    rd_kafka_destroy(self->rk);
    self->rk = NULL;
    self->inited = self->delivering = self->committing = self->aborting = 0;
    pthread_mutex_lock(&self->lock);
    self->stats.ready = 0;
    pthread_mutex_unlock(&self->lock);
}

/* What earlier processes produced, from the mark they left: a batch at or below it
 * may have been committed without being removed (a crash between the two), so
 * publishing it again is counted as sent again. A mark that is missing while the spool
 * has had batches (a release before this one; removed by the operator after restoring
 * the store from a backup), that cannot be read, or that is ahead of the spool makes
 * every batch the spool holds now count: more counted than sent again, never less. */
static int s_mark_open(pg_publisher *self, char *errstr, size_t errstr_size)
{
    uint64_t seq;
    pg_sentmark_state state;
    self->mark = pg_sentmark_open(pg_store_dir(self->store), &seq, &state, errstr, errstr_size);
    if (!self->mark)
        return PG_EIO;
    pg_spool_stats st;
    char why[PG_ERRSTR_SIZE];
    if (pg_spool_stat_now(self->spool, &st, why, sizeof why))
        return pg_errf(PG_ESTORE, errstr, errstr_size, "spool: %s", why);
    uint64_t last = st.next_seq ? st.next_seq - 1 : 0;
    if (state != PG_SENTMARK_OK || seq > last) {
        if (last && st.batches)
            pg_log(PG_LOG_WARN,
                   "kafka: %s %s: every batch the spool holds now (up to %" PRIu64
                   ") is counted as sent again when it is published",
                   pg_sentmark_path(self->mark),
                   state == PG_SENTMARK_DAMAGED ? "is damaged"
                   : state == PG_SENTMARK_NEW   ? "is missing"
                                                : "is ahead of the spool (was the store replaced?)",
                   last);
        seq = last;
        if (pg_sentmark_set(self->mark, seq, errstr, errstr_size))
            return PG_EIO;
    }
    self->max_seq = seq;
    return 0;
}

pg_publisher *pg_publisher_new(const pg_publisher_opts *opts, char *errstr, size_t errstr_size)
{
    pg_publisher *self = calloc(1, sizeof *self);
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->store = opts->store;
    self->spool = opts->spool;
    self->audit = opts->audit;
    self->on_commit = opts->on_commit;
    self->on_commit_ud = opts->on_commit_ud;
    self->window_batches = opts->window_batches ? opts->window_batches : S_DEFAULT_WINDOW_BATCHES;
    self->window_bytes = opts->window_bytes ? opts->window_bytes : S_DEFAULT_WINDOW_BYTES;
    self->call_timeout_ms =
        opts->call_timeout_ms ? opts->call_timeout_ms : S_DEFAULT_CALL_TIMEOUT_MS;
    int txn_ms =
        opts->transaction_timeout_ms ? opts->transaction_timeout_ms : S_DEFAULT_TXN_TIMEOUT_MS;
    self->conf = rd_kafka_conf_new();
    self->win = pg_outbatch_new();
    if (!self->conf || !self->win || !opts->transactional_id ||
        !(self->tid = strdup(opts->transactional_id))) {
        pg_errf(opts->transactional_id ? PG_ENOMEM : PG_EUSAGE, errstr, errstr_size, "%s",
                opts->transactional_id ? "out of memory" : "producer: no transactional id");
        goto err;
    }
    rd_kafka_conf_t *conf = self->conf;
    for (size_t i = 0; i < sizeof s_defaults / sizeof s_defaults[0]; i++)
        if (s_set(conf, s_defaults[i][0], s_defaults[i][1], errstr, errstr_size))
            goto err;
    char ms[24];
    snprintf(ms, sizeof ms, "%d", txn_ms);
    /* A record that waits longer than the transaction may is failed by librdkafka;
     * the transaction then aborts and the spool sends the record again. */
    if (s_set(conf, "bootstrap.servers", opts->brokers, errstr, errstr_size) ||
        s_set(conf, "transaction.timeout.ms", ms, errstr, errstr_size) ||
        s_set(conf, "message.timeout.ms", ms, errstr, errstr_size))
        goto err;
    for (size_t i = 0; i < opts->property_count; i++) {
        const pg_config_kv *kv = &opts->properties[i];
        if (pg_kafka_check_property(kv->key, kv->value, errstr, errstr_size) ||
            s_set(conf, kv->key, kv->value, errstr, errstr_size))
            goto err;
    }
    /* Last, so that nothing above can weaken them. */
    for (const pg_kafka_fixed *f = pg_kafka_fixed_properties(); f->key; f++)
        if (strcmp(f->key, "request.required.acks") &&
            s_set(conf, f->key, f->value, errstr, errstr_size))
            goto err;
    if (s_set(conf, "transactional.id", self->tid, errstr, errstr_size))
        goto err;
    rd_kafka_conf_set_opaque(conf, self);
    rd_kafka_conf_set_dr_msg_cb(conf, s_dr);
    rd_kafka_conf_set_log_cb(conf, s_log_cb);
    rd_kafka_conf_set_error_cb(conf, s_error_cb);
    if ((self->store && s_mark_open(self, errstr, errstr_size)) ||
        s_make_rk(self, errstr, errstr_size))
        goto err;
    return self;
err:
    pg_publisher_destroy(&self);
    return NULL;
}

static int s_remove_done(pg_publisher *self, char *errstr, size_t errstr_size);

void pg_publisher_destroy(pg_publisher **p)
{
    if (!p || !*p)
        return;
    pg_publisher *self = *p;
    pg_publisher_stop(self);
    char why[PG_ERRSTR_SIZE];
    s_remove_done(self, why, sizeof why); /* rounds run without the thread (tests) */
    s_drop_rk(self);
    if (self->conf)
        rd_kafka_conf_destroy(self->conf);
    pg_outbatch_destroy(&self->win);
    pg_sentmark_close(&self->mark);
    pthread_mutex_destroy(&self->lock);
    free(self->tid);
    free(self);
    *p = NULL;
}

/* ---------------------------------------------------------------- one round */

/* What to do about a transactional error: remake the handle (fatal), abort first, or
 * simply try the same call again. Takes the error. */
static int s_txn_error(pg_publisher *self, rd_kafka_error_t *error, const char *what, char *errstr,
                       size_t errstr_size)
{
    char msg[PG_ERRSTR_SIZE];
    snprintf(msg, sizeof msg, "%s: %s", what, rd_kafka_error_string(error));
    int fatal = rd_kafka_error_is_fatal(error);
    int abort = rd_kafka_error_txn_requires_abort(error);
    int retriable = rd_kafka_error_is_retriable(error);
    rd_kafka_error_destroy(error);
    if (fatal || (!abort && !retriable)) {
        /* Fenced, or a state librdkafka cannot leave: a new handle resumes from the
         * spool (its init fences whatever the old one left open). */
        s_drop_rk(self);
        S_COUNT(self, restarts, 1);
        int rc = s_fail(self, PG_ERETRY, errstr, errstr_size, "%s; making a new producer", msg);
        char why[PG_ERRSTR_SIZE];
        if (s_make_rk(self, why, sizeof why))
            return s_fail(self, PG_EKAFKA, errstr, errstr_size, "%s", why);
        return rc;
    }
    if (abort) {
        self->delivering = self->committing = 0;
        self->aborting = 1;
        return s_fail(self, PG_ERETRY, errstr, errstr_size,
                      "%s; aborting the transaction and sending it again", msg);
    }
    return s_fail(self, PG_ERETRY, errstr, errstr_size, "%s", msg);
}

/* Read the oldest batches of the spool into the window. The number of batches, 0
 * when the spool is empty, or a negative error. */
static int s_read_window(pg_publisher *self, char *errstr, size_t errstr_size)
{
    pg_outbatch_reset(self->win);
    self->win_batches = self->win_resent = 0;
    self->win_gen = pg_spool_generation(self->spool);
    /* A policy change is rewriting the spool: read after it committed. */
    self->win_rewrites = pg_spool_rewrites(self->spool);
    if (self->win_rewrites & 1)
        return 0;
    pg_store_txn *txn = pg_store_begin(self->store, 0, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    size_t records_before = 0;
    uint64_t after = self->done_last, seq = 0;
    size_t bytes = 0, total = 0;
    int rc = 0;
    while (self->win_batches < self->window_batches && total < self->window_bytes) {
        rc = pg_spool_next(self->spool, txn, after, &seq, &bytes, self->win, errstr, errstr_size);
        if (rc)
            break;
        if (!self->win_batches)
            self->win_first = seq;
        if (seq <= self->max_seq)
            self->win_resent += self->win->count - records_before;
        records_before = self->win->count;
        self->win_last = after = seq;
        self->win_batches++;
        total += bytes;
    }
    pg_store_abort(&txn);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    return (int)self->win_batches;
}

static int s_produce_window(pg_publisher *self, char *errstr, size_t errstr_size)
{
    /* An aborted window, a new handle: what this process produced before is sent
     * again (the first win_resent records: windows start at the oldest batch), and
     * counted, never hidden. */
    if (self->win_resent)
        pg_log(PG_LOG_WARN,
               "kafka: sending %zu records again (spool batches %" PRIu64 "-%" PRIu64 ")",
               self->win_resent, self->win_first, self->win_last);
    if (self->win_last > self->max_seq)
        self->max_seq = self->win_last;
    for (size_t i = 0; i < self->win->count; i++) {
        const pg_outrec *r = &self->win->recs[i];
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(r->header_count ? r->header_count : 1);
        for (size_t h = 0; h < r->header_count; h++)
            rd_kafka_header_add(hdrs, r->headers[h].name, -1, r->headers[h].value, -1);
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                self->rk, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(r->key, strlen(r->key)),
                RD_KAFKA_V_VALUE((void *)r->value, r->value ? r->value_len : 0),
                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
            if (!err) {
                pthread_mutex_lock(&self->lock);
                self->stats.produced++;
                self->stats.resent += i < self->win_resent;
                pthread_mutex_unlock(&self->lock);
                break;
            }
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !atomic_load(&self->stop)) {
                rd_kafka_poll(self->rk, 50);
                continue;
            }
            rd_kafka_headers_destroy(hdrs);
            self->aborting = 1;
            rd_kafka_error_t *fatal = NULL;
            if (err == RD_KAFKA_RESP_ERR__FATAL || err == RD_KAFKA_RESP_ERR__STATE)
                fatal = rd_kafka_error_new(err, "%s", rd_kafka_err2str(err));
            if (fatal)
                return s_txn_error(self, fatal, "produce", errstr, errstr_size);
            return s_fail(self, PG_ERETRY, errstr, errstr_size,
                          "record key %s not queued for %s: %s; aborting the transaction", r->key,
                          r->topic, rd_kafka_err2str(err));
        }
    }
    return 0;
}

/* Before the commit: audit what the window discloses or withdraws. Fail closed: when
 * the events cannot be written the transaction is aborted, so nothing is disclosed
 * that is not logged; the window is sent again once the log takes events. A commit
 * that fails after this logs the events twice (the window is sent again), never not
 * at all. */
static int s_audit_window(pg_publisher *self, char *errstr, size_t errstr_size)
{
    if (!self->audit)
        return 0;
    pg_audit_event *evs = self->win->count ? calloc(self->win->count, sizeof *evs) : NULL;
    if (self->win->count && !evs)
        return s_fail(self, PG_ENOMEM, errstr, errstr_size, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < self->win->count; i++) {
        const pg_outrec *r = &self->win->recs[i];
        if (r->audit_action == PG_AUDIT_NONE)
            continue;
        evs[n++] = (pg_audit_event){.action = r->audit_action,
                                    .party = r->party,
                                    .entity_id = r->entity_id,
                                    .native_id = r->native_id,
                                    .origin = r->origin,
                                    .destination = r->destination,
                                    .agreement = r->agreement,
                                    .policy_version = r->policy_version,
                                    .version = r->version,
                                    .outcome = r->outcome};
    }
    char why[PG_ERRSTR_SIZE];
    int rc = pg_audit_append_batch(self->audit, evs, n, why, sizeof why);
    free(evs);
    pthread_mutex_lock(&self->lock);
    self->stats.audit_failing = rc != 0;
    self->stats.audit_errors += rc != 0;
    pthread_mutex_unlock(&self->lock);
    if (rc) {
        self->aborting = 1;
        return s_fail(self, PG_ERETRY, errstr, errstr_size,
                      "audit: %s; the transaction is aborted and sent again when the log takes "
                      "events",
                      why);
    }
    return 0;
}

static long s_ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Remove the committed batches done_first..done_last from the spool, in one store
 * transaction. When that fails (the store's map or the disk full, despite the
 * headroom the intake leaves) publishing stops: they are in Kafka, and reading them
 * from the spool again would send them again, for ever. Each round tries the removal
 * only, until it succeeds. The number of batches removed, or a negative error. */
static int s_remove_done(pg_publisher *self, char *errstr, size_t errstr_size)
{
    if (!self->done_last)
        return 0;
    char why[PG_ERRSTR_SIZE];
    size_t removed = 0;
    pg_store_txn *txn = pg_store_begin(self->store, 1, why, sizeof why);
    int rc = txn ? pg_spool_remove(self->spool, txn, self->done_first, self->done_last, &removed,
                                   why, sizeof why)
                 : PG_ESTORE;
    if (!rc)
        rc = pg_store_commit(&txn, why, sizeof why);
    pg_store_abort(&txn);
    if (rc) {
        time_t now = time(NULL);
        pthread_mutex_lock(&self->lock);
        self->stats.remove_failures++;
        self->stats.stalled = 1;
        snprintf(self->last_error, sizeof self->last_error,
                 "publishing stopped: spool batches %" PRIu64 "-%" PRIu64
                 " are committed in Kafka but cannot be removed from the spool: %.300s",
                 self->done_first, self->done_last, why);
        pthread_mutex_unlock(&self->lock);
        if (!self->unremoved || now - self->unremoved_warn >= S_WARN_EVERY) {
            pg_log(PG_LOG_ERROR,
                   "kafka: PUBLISHING STOPPED: spool batches %" PRIu64 "-%" PRIu64
                   " (%zu records) are committed in Kafka but cannot be removed from the "
                   "spool: %s. They are not sent again (that would duplicate them); the "
                   "removal is retried. Free disk space or raise store.map_size and restart.",
                   self->done_first, self->done_last, self->done_records, why);
            self->unremoved_warn = now;
        }
        self->unremoved = 1;
        return pg_errf(rc, errstr, errstr_size, "spool: %s", why);
    }
    if (self->unremoved)
        pg_log(PG_LOG_INFO,
               "kafka: spool batches %" PRIu64 "-%" PRIu64 " removed after all; publishing again",
               self->done_first, self->done_last);
    self->unremoved = 0;
    self->done_first = self->done_last = 0;
    self->done_batches = self->done_records = 0;
    pthread_mutex_lock(&self->lock);
    self->stats.batches += removed;
    self->stats.removals++;
    self->stats.stalled = 0;
    pthread_mutex_unlock(&self->lock);
    return (int)removed;
}

/* After a commit: the window joins the batches to remove, which are removed now when
 * nothing waits behind them in the spool, or they have waited long enough. The
 * window's batch count, or a negative error (the removal failed: publishing stops). */
static int s_committed(pg_publisher *self, char *errstr, size_t errstr_size)
{
    if (!self->done_last) {
        self->done_first = self->win_first;
        clock_gettime(CLOCK_MONOTONIC, &self->done_since);
    }
    self->done_last = self->win_last;
    self->done_batches += self->win_batches;
    self->done_records += self->win->count;
    pthread_mutex_lock(&self->lock);
    self->stats.delivered += self->win->count;
    self->stats.transactions++;
    pthread_mutex_unlock(&self->lock);
    if (self->on_commit)
        self->on_commit(self->on_commit_ud, self->win, self->win_first, self->win_last);
    int n = (int)self->win_batches;
    pg_outbatch_reset(self->win);
    self->win_batches = 0;
    pg_spool_stats st;
    char why[PG_ERRSTR_SIZE];
    int quiet = !pg_store_writing(self->store) && pg_spool_generation(self->spool) == self->win_gen;
    if (self->done_batches >= S_REMOVE_EVERY_BATCHES ||
        s_ms_since(&self->done_since) >= S_REMOVE_EVERY_MS || atomic_load(&self->stop) ||
        (quiet && (pg_spool_stat_now(self->spool, &st, why, sizeof why) ||
                   st.next_seq <= self->done_last + 1))) {
        int rc = s_remove_done(self, errstr, errstr_size);
        if (rc < 0)
            return rc;
    }
    return n;
}

/* Publishing stopped (stats.stalled: not ready, alerted) while the mark of what was
 * sent cannot be written; cleared once it is, or once nothing waits for it. */
static void s_mark_stalled(pg_publisher *self, int failed)
{
    if (!failed && !self->mark_failed)
        return;
    self->mark_failed = failed;
    pthread_mutex_lock(&self->lock);
    self->stats.stalled = (uint64_t)failed;
    pthread_mutex_unlock(&self->lock);
}

int pg_publisher_step(pg_publisher *self, char *errstr, size_t errstr_size)
{
    rd_kafka_error_t *error;
    if (!self->rk && s_make_rk(self, errstr, errstr_size))
        return PG_EKAFKA;
    rd_kafka_poll(self->rk, 0);
    if (self->unremoved)
        return s_remove_done(self, errstr, errstr_size);
    if (!self->inited) {
        if ((error = rd_kafka_init_transactions(self->rk, self->call_timeout_ms)))
            return s_txn_error(self, error, "init transactions", errstr, errstr_size);
        self->inited = 1;
        pthread_mutex_lock(&self->lock);
        self->stats.ready = 1;
        pthread_mutex_unlock(&self->lock);
        pg_log(PG_LOG_INFO, "kafka: transactions ready (transactional.id %s)", self->tid);
    }
    if (self->aborting) {
        if ((error = rd_kafka_abort_transaction(self->rk, self->call_timeout_ms)))
            return s_txn_error(self, error, "abort transaction", errstr, errstr_size);
        self->aborting = 0;
        S_COUNT(self, aborts, 1);
        if (++self->aborts_in_row >= S_ABORTS_BEFORE_RESTART) {
            self->aborts_in_row = 0;
            s_drop_rk(self);
            S_COUNT(self, restarts, 1);
        }
        /* The window is read again from the spool by the next round. */
        return s_fail(self, PG_ERETRY, errstr, errstr_size,
                      "transaction aborted; its %zu batches are sent again", self->win_batches);
    }
    if (!self->committing && !self->delivering) {
        int n = s_read_window(self, errstr, errstr_size);
        if (n == 0 && self->done_last && s_ms_since(&self->done_since) >= S_REMOVE_IDLE_MS)
            return s_remove_done(self, errstr, errstr_size);
        if (n <= 0) {
            if (n == 0) {
                s_mark_stalled(self, 0); /* nothing left that waits for the mark */
                s_ok(self);
            }
            return n;
        }
        /* Raised before anything of the window can reach the broker. */
        char why[PG_ERRSTR_SIZE];
        int raise_mark = self->mark && self->win_last > self->max_seq;
        int rc = raise_mark ? pg_sentmark_set(self->mark, self->win_last, why, sizeof why) : 0;
        s_mark_stalled(self, rc != 0);
        if (rc)
            return s_fail(self, PG_ERETRY, errstr, errstr_size,
                          "publishing stopped: %s; nothing is published until the mark of what "
                          "was sent is written (a restart would send it again uncounted)",
                          why);
        if ((error = rd_kafka_begin_transaction(self->rk)))
            return s_txn_error(self, error, "begin transaction", errstr, errstr_size);
        pthread_mutex_lock(&self->lock);
        self->failed_before = self->stats.failed;
        pthread_mutex_unlock(&self->lock);
        if ((rc = s_produce_window(self, errstr, errstr_size)))
            return rc;
        self->delivering = 1;
    }
    if (self->delivering) {
        /* Stored by the broker (not yet visible to read_committed consumers) before
         * the events are written, so that a broker that is away leaves no event of a
         * disclosure that did not happen; then the events, then the commit. */
        if (rd_kafka_flush(self->rk, self->call_timeout_ms))
            return s_fail(self, PG_ERETRY, errstr, errstr_size,
                          "%zu records not yet stored by the broker after %d ms; waiting",
                          self->win->count, self->call_timeout_ms);
        pthread_mutex_lock(&self->lock);
        int failed = self->stats.failed != self->failed_before;
        pthread_mutex_unlock(&self->lock);
        self->delivering = 0;
        if (failed) {
            self->aborting = 1;
            return s_fail(self, PG_ERETRY, errstr, errstr_size,
                          "records of the window not delivered; aborting the transaction");
        }
        /* A policy change rewrote the spool since the window was read: some of its
         * records may be no longer allowed. Not committed; read again. */
        if (pg_spool_rewrites(self->spool) != self->win_rewrites) {
            self->aborting = 1;
            return s_fail(self, PG_ERETRY, errstr, errstr_size,
                          "a policy change rewrote the spool while a window was in flight: "
                          "aborting the transaction and reading the window again");
        }
        int rc = s_audit_window(self, errstr, errstr_size);
        if (rc)
            return rc;
        self->committing = 1;
    }
    /* Returns once every record of the transaction is stored by every in-sync replica
     * (acks=all) and the transaction is committed, or with an error saying what next. */
    if ((error = rd_kafka_commit_transaction(self->rk, self->call_timeout_ms)))
        return s_txn_error(self, error, "commit transaction", errstr, errstr_size);
    self->committing = 0;
    self->aborts_in_row = 0;
    s_ok(self);
    return s_committed(self, errstr, errstr_size);
}

/* ---------------------------------------------------------------- the thread */

static void *s_run(void *arg)
{
    pg_publisher *self = arg;
    /* Named, so that top -H and perf tell it from the intake (the main thread). */
    pthread_setname_np(pthread_self(), "pg-publisher");
    uint64_t gen = 0;
    int backoff_ms = 0;
    while (!atomic_load(&self->stop)) {
        char why[PG_ERRSTR_SIZE];
        int rc = pg_publisher_step(self, why, sizeof why);
        if (rc > 0) {
            backoff_ms = 0;
            continue;
        }
        if (rc == 0) {
            backoff_ms = 0;
            pg_spool_wait(self->spool, &gen, 200);
            continue;
        }
        /* Calls on the broker already wait up to call_timeout_ms; a short pause keeps
         * a failure that returns at once (a store error) from spinning. */
        backoff_ms = backoff_ms ? backoff_ms * 2 : 10;
        if (backoff_ms > 500)
            backoff_ms = 500;
        for (int t = 0; t < backoff_ms && !atomic_load(&self->stop); t += 10)
            usleep(10000);
    }
    /* Leave no transaction open for read_committed consumers to wait behind: abort it
     * (its batches stay in the spool); a broker that does not answer in time aborts
     * it itself when the next instance initialises. */
    if (self->rk && self->inited && (self->delivering || self->committing || self->aborting)) {
        rd_kafka_error_t *error = rd_kafka_abort_transaction(self->rk, self->call_timeout_ms);
        if (error)
            rd_kafka_error_destroy(error);
        self->delivering = self->committing = self->aborting = 0;
    }
    char why[PG_ERRSTR_SIZE];
    s_remove_done(self, why, sizeof why); /* what is left is sent again at the next start */
    return NULL;
}

int pg_publisher_start(pg_publisher *self, char *errstr, size_t errstr_size)
{
    if (self->running)
        return 0;
    atomic_store(&self->stop, 0);
    if (pthread_create(&self->thread, NULL, s_run, self))
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "producer: cannot start a thread");
    self->running = 1;
    return 0;
}

void pg_publisher_stop(pg_publisher *self)
{
    if (!self || !self->running)
        return;
    atomic_store(&self->stop, 1);
    pg_spool_notify(self->spool);
    pthread_join(self->thread, NULL);
    self->running = 0;
}

int pg_publisher_drain(pg_publisher *self, int timeout_ms, char *errstr, size_t errstr_size)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pg_spool_stats st = {0};
    for (;;) {
        char why[PG_ERRSTR_SIZE];
        if (pg_spool_stat_now(self->spool, &st, why, sizeof why))
            return pg_errf(PG_ESTORE, errstr, errstr_size, "spool: %s", why);
        if (!st.batches)
            return 0;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= timeout_ms)
            break;
        usleep(20000);
    }
    return pg_errf(PG_ETIMEOUT, errstr, errstr_size,
                   "%" PRIu64 " batches (%" PRIu64 " records) still in the spool after %d ms",
                   st.batches, st.records, timeout_ms);
}

void pg_publisher_get_stats(const pg_publisher *self, pg_publisher_stats *out)
{
    pthread_mutex_lock((pthread_mutex_t *)&self->lock);
    *out = self->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&self->lock);
}

void pg_publisher_last_error(const pg_publisher *self, char *out, size_t size)
{
    pthread_mutex_lock((pthread_mutex_t *)&self->lock);
    snprintf(out, size, "%s", self->last_error);
    pthread_mutex_unlock((pthread_mutex_t *)&self->lock);
}

const char *pg_publisher_transactional_id(const pg_publisher *self)
{
    return self->tid;
}

int pg_publisher_test_fatal(pg_publisher *self)
{
    return self->rk ? (int)rd_kafka_test_fatal_error(self->rk, RD_KAFKA_RESP_ERR__FENCED,
                                                     "injected by a test")
                    : -1;
}

void pg_publisher_test_mark_sync(pg_publisher *self, int (*fn)(int fd))
{
    if (self->mark)
        pg_sentmark_test_sync(self->mark, fn);
}
