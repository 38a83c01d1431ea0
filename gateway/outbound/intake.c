/* pg_intake: ZeroMQ ROUTER intake; decode, ledger, routing and spool under group commit. */
#include "intake.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "audit.h"
#include "curve.h"
#include "dlq.h"
#include "echo.h"
#include "ledger.h"
#include "log.h"
#include "outrec.h"
#include "polegate/json.h"
#include "polegate/timeutil.h"
#include "router.h"
#include "spool.h"
#include "store.h"
#include "wal.h"

/* Frames of one request kept: identity, delimiter, correlation id, message. Any more
 * are counted and dropped. */
#define S_MAX_PARTS 4
#define S_DEFAULT_GROUP_MAX 256
#define S_DEFAULT_GROUP_BYTES ((size_t)16 << 20)
/* Seconds between two warnings that the spool is full. */
#define S_FULL_WARN_EVERY 10
/* With a write-ahead log: the longest the store's write transaction stays open by
 * default, how long without a request counts as idle, and the message bytes after
 * which it is committed whatever its age (its dirty pages are held in memory). */
#define S_DEFAULT_CHECKPOINT_MS 100
#define S_IDLE_MS 2
#define S_CHECKPOINT_BYTES ((size_t)32 << 20)
/* The longest the intake waits, after a checkpoint, for a waiting writer to take the
 * store's write transaction. */
#define S_HANDOVER_US 20000
/* The log's record of one message the intake stored (accepted or a dead letter). */
#define S_REC_MESSAGE 1
/* A checkpoint's mark: u64, the LSN the store's commit included. Appended after each
 * checkpoint and synced with the next group, so that a store older than a checkpoint
 * its log has seen (restored from a backup) is told at the start, not replayed over. */
#define S_REC_CHECKPOINT 2
#define S_REC_VERSION 1
/* The key of the last LSN a checkpoint includes, in S_DB_META. */
#define S_DB_META "intake.meta"
#define S_KEY_LSN "wal_lsn"

/* A group of at least this many requests is decoded by the decode thread, ahead of
 * the thread that applies it; a smaller one is decoded in line (the hand-over would
 * cost more than it saves). */
#define S_DECODE_AHEAD_MIN 4
/* Checks of the decode thread's progress before the applying thread sleeps on it. */
#define S_DECODE_SPINS 2000

/* One request of a group, from its receipt to its ack. */
typedef struct s_slot {
    zmq_msg_t parts[S_MAX_PARTS];
    size_t nparts, total;
    pg_intake_status status;
    int stored;  /* its outcome is in the group's transaction (accepted, dead letter) */
    pg_buf json; /* the ack, reused */
    /* Made by the decode thread: the adapter's changeset of the message and its
     * result (decode_rc S_NOT_DECODED: a request s_apply refuses before decoding). */
    pg_changeset *in;
    int decode_rc;
    char decode_why[PG_ERRSTR_SIZE];
} s_slot;
#define S_NOT_DECODED 1

/* The decode thread: decodes a group's requests in order while the intake's thread
 * applies them (ledger, routing, spool), each as soon as it is decoded. Decoding is
 * pure (the adapter reads the bytes and the force), so the two overlap safely; the
 * slots' frames are only read by both. */
typedef struct s_decoder {
    pthread_t thread;
    int running;
    int unstartable; /* pthread_create failed once: every group is decoded in line */
    pthread_mutex_t lock;
    pthread_cond_t work;     /* a group was posted, or stop */
    pthread_cond_t progress; /* a request was decoded, and the applier sleeps */
    uint64_t posted, taken;  /* groups posted, taken by the thread */
    size_t n;                /* requests of the posted group */
    int stop;
    atomic_size_t done;           /* requests of the group decoded */
    atomic_int waiting;           /* the applier sleeps on progress */
    atomic_uint_least64_t cpu_ns; /* the thread's CPU time after its last group */
} s_decoder;

struct pg_intake {
    void *ctx;
    int own_ctx;
    void *sock;
    char *endpoint;
    size_t max_message_size;
    const pg_adapter_ops *adapter;
    pg_adapter_ctx actx;
    char *force;
    char *dlq_topic;
    pg_router *router;
    pg_store *store;
    pg_ledger *ledger;
    pg_spool *spool;
    pg_dlq *dlq;
    pg_audit *audit;
    pg_echo *echo;
    size_t group_max, group_max_bytes;
    pg_changeset *in;     /* what the adapter decoded */
    pg_changeset *out;    /* what the ledger says to publish */
    pg_outbatch *batch;   /* one message's outbound records */
    pg_outbatch *pending; /* the group's audit events, written before its commit */
    /* The authenticated sender of the message being applied, for its audit events:
     * "rms:<Z85 public key>" under CURVE, "rms:insecure" without it, "rms:local" for
     * pg_intake_handle. */
    const char *party;
    char party_buf[128];
    pg_zap *zap;                        /* CURVE: the allow-list's handler (NULL: plain text) */
    const struct pg_curve_allow *allow; /* CURVE: the allow-list now (pg_intake_set_allow) */
    const char **ids;                   /* the ack's ids, reused */
    size_t ids_cap;
    s_slot *slots;
    s_decoder dec;
    s_slot *predecoded; /* the slot s_apply takes its decode from (NULL: decode in line) */
    pg_buf json;        /* pg_intake_handle's ack, reused */
    pg_intake_stats stats;
    /* What the caller-driven group so far stored, to uncount if its commit fails. */
    struct {
        uint64_t stored, accepted, duplicates, dead_letters;
    } group;
    time_t full_warned;
    uint64_t full_since_warn;
    /* The write-ahead log (NULL: each group commits). Groups are applied in a child of
     * one write transaction held open across groups (open) and acknowledged once
     * their records are synced to the log; the transaction is committed (a
     * checkpoint, recording the last LSN it includes) now and then. */
    pg_wal *wal;
    int checkpoint_ms;
    pg_store_db meta;
    pg_store_txn *open;
    struct timespec open_since;
    size_t open_bytes;
    uint64_t open_lsn; /* the last LSN applied in open */
    uint64_t ckpt_lsn; /* the last LSN the store holds */
    /* A checkpoint failed: the store is behind the log, which is replayed before
     * anything else is taken. */
    int recover;
    char recover_why[PG_ERRSTR_SIZE];
    /* Replaying the log: no headroom estimate, no audit events, the logged time. */
    int replaying;
    uint64_t replayed;
    char replay_why[PG_ERRSTR_SIZE];
    int64_t received_ms; /* the message's time of receipt, for its dead letter */
    pg_buf rec;          /* a log record being built */
    int group_fail;      /* a record of the group could not be logged */
    char group_why[PG_ERRSTR_SIZE];
    /* Bytes the current group may still add to the store before reaching the headroom
     * kept for removals (an estimate per message, PG_STORE_GROWTH), and the reason when 0. */
    size_t room;
    char room_why[PG_ERRSTR_SIZE];
};

static int s_wal_start(pg_intake *self, char *errstr, size_t errstr_size);
static int s_checkpoint(pg_intake *self, char *errstr, size_t errstr_size);
static int s_recover(pg_intake *self, char *errstr, size_t errstr_size);

/* Measure the room left in the store before a group (no transaction open). */
static void s_measure_room(pg_intake *self)
{
    pg_store_space_info sp;
    char why[PG_ERRSTR_SIZE];
    self->room_why[0] = 0;
    if (pg_store_space(self->store, &sp, why, sizeof why)) {
        self->room = 0;
        snprintf(self->room_why, sizeof self->room_why, "%s", why);
        return;
    }
    size_t limit = sp.map > sp.headroom ? sp.map - sp.headroom : 0;
    self->room = sp.used < limit ? limit - sp.used : 0;
    snprintf(self->room_why, sizeof self->room_why,
             "store nearly full: %zu of its %zu-byte map in use, %zu kept free so that "
             "published records can always be removed; send again once the spool drains "
             "(or raise store.map_size)",
             sp.used, sp.map, sp.headroom);
}

const char *pg_intake_status_name(pg_intake_status status)
{
    switch (status) {
    case PG_INTAKE_ACCEPTED:
        return "accepted";
    case PG_INTAKE_REJECTED:
        return "rejected";
    case PG_INTAKE_RETRY:
        return "retry";
    }
    return "retry";
}

/* ---------------------------------------------------------------- decoding ahead */

typedef struct s_layout s_layout;
static void s_layout_of(s_slot *slot, s_layout *l);
static zmq_msg_t *s_message(s_slot *slot, const s_layout *l);

/* Decode one request into its slot, or mark it S_NOT_DECODED when s_apply refuses it
 * before decoding (frames, size). */
static void s_decode_slot(pg_intake *self, s_slot *slot);

static void *s_decoder_run(void *arg)
{
    pg_intake *self = arg;
    s_decoder *d = &self->dec;
    pthread_setname_np(pthread_self(), "pg-decode"); /* for top -H and perf */
    for (;;) {
        pthread_mutex_lock(&d->lock);
        while (!d->stop && d->taken == d->posted)
            pthread_cond_wait(&d->work, &d->lock);
        if (d->stop) {
            pthread_mutex_unlock(&d->lock);
            return NULL;
        }
        d->taken = d->posted;
        size_t n = d->n;
        pthread_mutex_unlock(&d->lock);
        for (size_t i = 0; i < n; i++) {
            s_decode_slot(self, &self->slots[i]);
            if (i + 1 == n) { /* before the last is released: the stats see it */
                struct timespec ts;
                clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
                atomic_store(&d->cpu_ns, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
            }
            atomic_store(&d->done, i + 1);
            if (atomic_load(&d->waiting)) {
                pthread_mutex_lock(&d->lock);
                pthread_cond_broadcast(&d->progress);
                pthread_mutex_unlock(&d->lock);
            }
        }
    }
}

/* Start the decode thread (once). 0, or the group is decoded in line. */
static int s_decoder_start(pg_intake *self)
{
    s_decoder *d = &self->dec;
    if (d->running)
        return 0;
    if (d->unstartable)
        return PG_EINTERNAL;
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->work, NULL);
    pthread_cond_init(&d->progress, NULL);
    atomic_store(&d->done, 0);
    atomic_store(&d->waiting, 0);
    d->posted = d->taken = 0;
    d->stop = 0;
    int err = pthread_create(&d->thread, NULL, s_decoder_run, self);
    if (err) {
        pthread_cond_destroy(&d->progress);
        pthread_cond_destroy(&d->work);
        pthread_mutex_destroy(&d->lock);
        d->unstartable = 1; /* said once, not for every group */
        pg_log(PG_LOG_WARN, "intake: no decode thread (%s): decoding in line", strerror(err));
        return PG_EINTERNAL;
    }
    d->running = 1;
    return 0;
}

static void s_decoder_stop(pg_intake *self)
{
    s_decoder *d = &self->dec;
    if (!d->running)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = 1;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->progress);
    pthread_cond_destroy(&d->work);
    pthread_mutex_destroy(&d->lock);
    d->running = 0;
}

/* Hand the first n slots to the decode thread. */
static void s_decoder_post(pg_intake *self, size_t n)
{
    s_decoder *d = &self->dec;
    atomic_store(&d->done, 0);
    pthread_mutex_lock(&d->lock);
    d->n = n;
    d->posted++;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->lock);
}

/* Wait until the decode thread has decoded the first n slots of the posted group. */
static void s_decoder_wait(pg_intake *self, size_t n)
{
    s_decoder *d = &self->dec;
    for (int spin = 0; spin < S_DECODE_SPINS; spin++)
        if (atomic_load(&d->done) >= n)
            return;
    pthread_mutex_lock(&d->lock);
    atomic_store(&d->waiting, 1);
    while (atomic_load(&d->done) < n)
        pthread_cond_wait(&d->progress, &d->lock);
    atomic_store(&d->waiting, 0);
    pthread_mutex_unlock(&d->lock);
}

static char *s_strdup_opt(const char *s, int *fail)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *fail = 1;
    return d;
}

pg_intake *pg_intake_new(const pg_intake_opts *opts, char *errstr, size_t errstr_size)
{
    pg_intake *self = calloc(1, sizeof *self);
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    int fail = 0;
    self->adapter = opts->adapter;
    self->max_message_size =
        opts->max_message_size ? opts->max_message_size : opts->adapter->max_message_size;
    self->force = s_strdup_opt(opts->force, &fail);
    self->dlq_topic = s_strdup_opt(opts->dlq_topic, &fail);
    self->echo = opts->echo;
    /* With an echo filter the force check is the filter's: an echo names the partner. */
    self->actx.force = self->echo ? NULL : self->force;
    self->router = opts->router;
    self->store = opts->store;
    self->ledger = opts->ledger;
    self->spool = opts->spool;
    self->dlq = opts->dlq;
    self->audit = opts->audit;
    self->group_max = opts->group_max ? opts->group_max : S_DEFAULT_GROUP_MAX;
    self->group_max_bytes = opts->group_max_bytes ? opts->group_max_bytes : S_DEFAULT_GROUP_BYTES;
    self->wal = opts->wal;
    self->checkpoint_ms = opts->checkpoint_ms > 0 ? opts->checkpoint_ms : S_DEFAULT_CHECKPOINT_MS;
    self->in = pg_changeset_new();
    self->out = pg_changeset_new();
    self->batch = pg_outbatch_new();
    self->pending = pg_outbatch_new();
    self->slots = calloc(self->group_max, sizeof *self->slots);
    for (size_t i = 0; self->slots && i < self->group_max && !fail; i++)
        fail = !(self->slots[i].in = pg_changeset_new());
    if (fail || !self->in || !self->out || !self->batch || !self->pending || !self->slots) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    if (!self->spool || !self->router || !self->store || !self->ledger) {
        pg_errf(PG_EUSAGE, errstr, errstr_size,
                "intake: a store, ledger, router and spool are needed");
        goto err;
    }
    if (self->wal && s_wal_start(self, errstr, errstr_size))
        goto err;
    if (!opts->endpoint)
        return self;

    self->ctx = opts->zmq_ctx;
    if (!self->ctx) {
        self->ctx = zmq_ctx_new();
        self->own_ctx = 1;
    }
    self->sock = self->ctx ? zmq_socket(self->ctx, ZMQ_ROUTER) : NULL;
    if (!self->sock) {
        pg_errf(PG_EIO, errstr, errstr_size, "intake: zmq socket: %s", zmq_strerror(errno));
        goto err;
    }
    int linger = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    /* What a peer can make the daemon hold, before it is authenticated or after: a
     * frame more than twice the message limit closes its connection as its header
     * arrives (one up to twice the limit is read and answered rejected), and a
     * handshake not done in 10 s is dropped. */
    int64_t max_frame = self->max_message_size > INT64_MAX / 2 - 65536
                            ? INT64_MAX
                            : (int64_t)self->max_message_size * 2 + 65536;
    int handshake_ms = 10000;
    zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame);
    zmq_setsockopt(self->sock, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof handshake_ms);
    if (opts->curve_secret) {
        /* Only the RMS keys on the allow-list may speak (docs/security.md). */
        if (!opts->curve_allow) {
            pg_errf(PG_EUSAGE, errstr, errstr_size, "intake: CURVE without an allow-list");
            goto err;
        }
        self->allow = opts->curve_allow;
        if (!(self->zap =
                  pg_zap_start(self->ctx, opts->curve_allow, "intake", errstr, errstr_size)) ||
            pg_curve_server(self->sock, opts->curve_secret, errstr, errstr_size))
            goto err;
    } else if (!pg_curve_endpoint_is_local(opts->endpoint)) {
        pg_errf(PG_ECONFIG, errstr, errstr_size,
                "intake: %s is reachable from other hosts: it needs CURVE (a key pair and "
                "an allow-list of RMS keys), plain text is for loopback only",
                opts->endpoint);
        goto err;
    }
    if (zmq_bind(self->sock, opts->endpoint)) {
        pg_errf(PG_EIO, errstr, errstr_size, "intake: cannot bind %s: %s", opts->endpoint,
                zmq_strerror(errno));
        goto err;
    }
    char bound[256];
    size_t blen = sizeof bound;
    if (zmq_getsockopt(self->sock, ZMQ_LAST_ENDPOINT, bound, &blen))
        snprintf(bound, sizeof bound, "%s", opts->endpoint);
    self->endpoint = strdup(bound);
    if (!self->endpoint) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    return self;
err:
    pg_intake_destroy(&self);
    return NULL;
}

int pg_intake_recover(const pg_intake_opts *opts, char *errstr, size_t errstr_size)
{
    pg_intake_opts o = *opts;
    o.endpoint = NULL;
    pg_intake *self = pg_intake_new(&o, errstr, errstr_size);
    if (!self)
        return PG_ESTORE;
    pg_intake_destroy(&self);
    return 0;
}

void pg_intake_destroy(pg_intake **p)
{
    if (!p || !*p)
        return;
    pg_intake *self = *p;
    char why[PG_ERRSTR_SIZE];
    if (self->open && s_checkpoint(self, why, sizeof why))
        pg_log(PG_LOG_ERROR,
               "intake: the last checkpoint failed: %s; the write-ahead log holds "
               "what was acknowledged since the one before, replayed at the next start",
               why);
    pg_store_abort(&self->open);
    pg_buf_free(&self->rec);
    if (self->sock)
        zmq_close(self->sock);
    pg_zap_stop(&self->zap); /* before the context ends */
    if (self->own_ctx)
        zmq_ctx_term(self->ctx);
    pg_changeset_destroy(&self->in);
    pg_changeset_destroy(&self->out);
    pg_outbatch_destroy(&self->batch);
    pg_outbatch_destroy(&self->pending);
    s_decoder_stop(self);
    if (self->slots)
        for (size_t i = 0; i < self->group_max; i++) {
            pg_buf_free(&self->slots[i].json);
            pg_changeset_destroy(&self->slots[i].in);
        }
    free(self->slots);
    free(self->ids);
    pg_buf_free(&self->json);
    free(self->endpoint);
    free(self->force);
    free(self->dlq_topic);
    free(self);
    *p = NULL;
}

__attribute__((format(printf, 4, 5))) static void
s_fail(pg_intake *self, pg_intake_ack *ack, pg_intake_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ack->reason, sizeof ack->reason, fmt, ap);
    va_end(ap);
    ack->status = status;
    if (status == PG_INTAKE_REJECTED) {
        pg_log(PG_LOG_WARN, "intake: rejected: %s", ack->reason);
        return;
    }
    if (!ack->backpressure) {
        pg_log(PG_LOG_WARN, "intake: asked the sender to retry: %s", ack->reason);
        return;
    }
    /* A full spool answers every message while the broker is away: one line now and
     * then, with how many were turned back. */
    time_t now = time(NULL);
    self->full_since_warn++;
    if (now - self->full_warned >= S_FULL_WARN_EVERY) {
        pg_log(PG_LOG_WARN, "intake: %" PRIu64 " messages answered retry: %s",
               self->full_since_warn, ack->reason);
        self->full_warned = now;
        self->full_since_warn = 0;
    }
}

/* The ids of what the ledger said to publish, for the ack. */
static int s_collect_ids(pg_intake *self, pg_intake_ack *ack)
{
    const pg_changeset *out = self->out;
    if (out->count > self->ids_cap) {
        const char **ids = realloc(self->ids, out->count * sizeof *ids);
        if (!ids)
            return PG_ENOMEM;
        self->ids = ids;
        self->ids_cap = out->count;
    }
    for (size_t i = 0; i < out->count; i++) {
        const pg_change *c = &out->changes[i];
        self->ids[i] = c->type == PG_CHANGE_ENTITY ? c->entity->id : c->link->id;
    }
    ack->ids = self->ids;
    ack->id_count = out->count;
    return 0;
}

/* ---------------------------------------------------------------- one message */

/* Keep an invalid message as a dead letter (local store and the dead-letter topic's
 * record in the spool) inside txn; ack says rejected with its reason. When it cannot
 * be kept the ack says retry: an invalid message the gateway could not record is not
 * answered as if it had been. */
static void s_dead_letter(pg_intake *self, pg_store_txn *txn, const uint8_t *data, size_t size,
                          pg_intake_ack *ack)
{
    char why[PG_ERRSTR_SIZE];
    if (!self->replaying) /* a replay keeps the logged time: the same entry again */
        self->received_ms = pg_time_wall_ms();
    pg_dlq_entry e = {.received_ms = self->received_ms,
                      .reason = ack->reason,
                      .origin = self->force,
                      .format = self->adapter->format,
                      .data = data,
                      .len = size};
    pg_store_txn *child = pg_store_begin_child(txn, why, sizeof why);
    int rc = child ? 0 : PG_ESTORE;
    size_t evicted = 0;
    uint64_t dseq = 0;
    rc = rc ? rc : pg_dlq_add(self->dlq, child, &e, &evicted, why, sizeof why);
    pg_outbatch_reset(self->batch);
    if (!rc && self->dlq_topic)
        rc = pg_dlq_outrec(self->batch, self->dlq_topic, &e, why, sizeof why);
    self->batch->party = self->party;
    if (!rc && self->dlq_topic)
        rc = pg_spool_append(self->spool, child, self->batch, &dseq, why, sizeof why);
    if (!rc)
        rc = pg_store_commit(&child, why, sizeof why);
    pg_store_abort(&child);
    if (rc) {
        char reason[PG_ERRSTR_SIZE];
        snprintf(reason, sizeof reason, "%s", ack->reason);
        ack->backpressure = rc == PG_ERETRY;
        s_fail(self, ack, PG_INTAKE_RETRY, "dead letter not kept (%s); the message was: %s", why,
               reason);
        return;
    }
    if (evicted)
        pg_log(PG_LOG_WARN, "dlq: %zu oldest dead letters evicted to keep the bound", evicted);
    ack->dead_letter = e.id;
    if (dseq)
        self->stats.spool_next = dseq + 1;
    pg_log(PG_LOG_WARN, "intake: rejected, dead letter %" PRIu64 ": %s", e.id, ack->reason);
}

/* Reject the message, as a dead letter when there is a dead-letter store. */
static void s_reject(pg_intake *self, pg_store_txn *txn, const uint8_t *data, size_t size,
                     pg_intake_ack *ack, const char *why)
{
    snprintf(ack->reason, sizeof ack->reason, "%s", why);
    ack->status = PG_INTAKE_REJECTED;
    if (self->dlq && txn)
        s_dead_letter(self, txn, data, size, ack);
    else
        pg_log(PG_LOG_WARN, "intake: rejected: %s", ack->reason);
}

/* Apply one message inside the group's write transaction txn: ledger, routing and
 * spool in a nested transaction of its own, so that a failure undoes exactly this
 * message. Fills ack (its ids valid until the next message). */
static void s_apply(pg_intake *self, pg_store_txn *txn, const uint8_t *data, size_t size,
                    pg_intake_ack *ack)
{
    char why[PG_ERRSTR_SIZE];
    memset(ack, 0, sizeof *ack);
    self->stats.received++;

    /* Checked before anything reads the bytes: an oversize frame is never parsed, nor
     * kept. */
    if (size == 0) {
        s_fail(self, ack, PG_INTAKE_REJECTED, "message: empty");
        return;
    }
    if (size > self->max_message_size && !self->replaying) { /* a replay: the limit of then */
        s_fail(self, ack, PG_INTAKE_REJECTED, "message: %zu bytes is over the limit of %zu bytes",
               size, self->max_message_size);
        return;
    }
    if (!txn) {
        s_fail(self, ack, PG_INTAKE_RETRY, "store: %s",
               self->recover ? self->recover_why : "no transaction");
        return;
    }
    /* A replay applies what was accepted: the estimate decided then. */
    if (!self->replaying && self->room < PG_STORE_GROWTH(size)) {
        self->room = 0; /* the rest of the group waits too: order is kept */
        self->stats.store_full++;
        ack->backpressure = 1;
        s_fail(self, ack, PG_INTAKE_RETRY, "%s", self->room_why);
        return;
    }
    if (self->room >= PG_STORE_GROWTH(size))
        self->room -= PG_STORE_GROWTH(size);

    pg_changeset_reset(self->out);
    int rc;
    s_slot *pre = self->replaying ? NULL : self->predecoded; /* a replay decodes its own */
    if (pre) {
        /* Decoded ahead: its changeset becomes the one applied (the slot keeps the
         * other for its next request). */
        s_decoder_wait(self, (size_t)(pre - self->slots) + 1);
        pg_changeset *cs = self->in;
        self->in = pre->in;
        pre->in = cs;
        rc = pre->decode_rc;
        if (rc)
            snprintf(why, sizeof why, "%s", pre->decode_why);
    }
    if (!pre || rc == S_NOT_DECODED) {
        pg_changeset_reset(self->in);
        rc = self->adapter->decode(&self->actx, data, size, self->in, why, sizeof why);
    }
    if (rc == PG_ENOMEM) {
        s_fail(self, ack, PG_INTAKE_RETRY, "%s", why);
        return;
    }
    if (rc) {
        s_reject(self, txn, data, size, ack, why);
        return;
    }

    pg_store_txn *child = pg_store_begin_child(txn, why, sizeof why);
    if (!child) {
        s_fail(self, ack, PG_INTAKE_RETRY, "store: %s", why);
        return;
    }
    if (self->echo) {
        size_t dropped = 0;
        rc = pg_echo_filter(self->echo, child, self->in, &dropped, why, sizeof why);
        if (rc) {
            pg_store_abort(&child);
            if (rc == PG_EINVALID)
                s_reject(self, txn, data, size, ack, why);
            else
                s_fail(self, ack, PG_INTAKE_RETRY, "%s", why);
            return;
        }
        self->stats.echoes += dropped;
    }
    pg_ledger_result res = {0};
    rc = pg_ledger_apply(self->ledger, child, self->in, self->out, &res, why, sizeof why);
    if (rc) {
        pg_store_abort(&child);
        if (rc == PG_EINVALID)
            s_reject(self, txn, data, size, ack, why);
        else
            s_fail(self, ack, PG_INTAKE_RETRY, "%s", why);
        return;
    }
    pg_outbatch_reset(self->batch);
    rc = pg_router_route(self->router, child, self->out, self->batch, why, sizeof why);
    if (rc == PG_EINVALID) {
        pg_store_abort(&child);
        s_reject(self, txn, data, size, ack, why);
        return;
    }
    uint64_t seq = 0;
    size_t audit_mark = self->pending->audit_count;
    /* The sender is the party of what it caused; a policy change routed with its
     * message keeps its own ("policy:<version>"). */
    self->batch->party = self->party;
    if (!rc)
        rc = pg_spool_append(self->spool, child, self->batch, &seq, why, sizeof why);
    for (size_t i = 0; !rc && i < self->batch->audit_count; i++) {
        pg_audit_event ev = self->batch->audit[i];
        if (!ev.party)
            ev.party = self->party;
        rc = pg_outbatch_audit_add(self->pending, &ev);
    }
    if (!rc)
        rc = pg_store_commit(&child, why, sizeof why);
    if (rc) {
        pg_store_abort(&child);
        self->pending->audit_count = audit_mark; /* its events are not to be written */
        ack->backpressure = rc == PG_ERETRY || rc == PG_EFULL;
        self->stats.store_full += rc == PG_EFULL;
        s_fail(self, ack, PG_INTAKE_RETRY, "%s", why);
        return;
    }
    if (s_collect_ids(self, ack)) {
        /* Applied and spooled: the ack must still say so, only without the ids. */
        pg_log(PG_LOG_ERROR, "intake: out of memory listing the ids of an accepted message");
    }
    ack->status = PG_INTAKE_ACCEPTED;
    if (seq)
        self->stats.spool_next = seq + 1;
    ack->stale = res.stale;
    ack->duplicate = res.duplicate;
    self->stats.published += self->out->count;
    self->stats.spooled += self->batch->count;
    pg_log(PG_LOG_DEBUG, "intake: message %s: %zu published, %zu stale%s, spool batch %" PRIu64,
           self->in->message_id ? self->in->message_id : "(no id)", self->out->count, res.stale,
           res.duplicate ? ", duplicate" : "", seq);
}

/* Count an ack whose outcome is final (after the commit). */
static void s_account(pg_intake *self, const pg_intake_ack *ack)
{
    switch (ack->status) {
    case PG_INTAKE_ACCEPTED:
        self->stats.accepted++;
        self->stats.duplicates += ack->duplicate ? 1 : 0;
        break;
    case PG_INTAKE_REJECTED:
        self->stats.rejected++;
        self->stats.dead_letters += ack->dead_letter ? 1 : 0;
        break;
    case PG_INTAKE_RETRY:
        self->stats.retried++;
        self->stats.backpressure += ack->backpressure ? 1 : 0;
        break;
    }
}

/* Did this ack put something in the transaction that its commit must keep? */
static int s_stored(const pg_intake_ack *ack)
{
    return ack->status == PG_INTAKE_ACCEPTED ||
           (ack->status == PG_INTAKE_REJECTED && ack->dead_letter);
}

/* Before a group's commit: write routing's audit events (collect, withhold, ...).
 * Fail closed: an event that cannot be written means the step it records does not
 * happen, so the group is not committed and its senders are told to retry. A commit
 * that fails after this logs the events twice when the sender retries, never not at
 * all. */
static int s_audit_group(pg_intake *self, char *why, size_t why_size)
{
    if (!self->audit || !self->pending->audit_count)
        return 0;
    char err[PG_ERRSTR_SIZE];
    int rc = pg_audit_append_batch(self->audit, self->pending->audit, self->pending->audit_count,
                                   err, sizeof err);
    if (rc) {
        self->stats.audit_failures++;
        pg_errf(rc, why, why_size, "audit: %s", err);
        pg_log(PG_LOG_ERROR, "intake: audit: %s; the messages are not taken (the sender retries)",
               err);
    }
    return rc;
}

/* After a group's commit: wake the producer. */
static void s_after_commit(pg_intake *self)
{
    self->stats.commits++;
    pg_spool_notify(self->spool);
    pg_outbatch_reset(self->pending);
}

/* ---------------------------------------------------------------- caller-driven groups */

pg_store_txn *pg_intake_group_begin(pg_intake *self, char *errstr, size_t errstr_size)
{
    /* The group commits a transaction of its own: what the log holds goes first. */
    if (pg_intake_checkpoint(self, errstr, errstr_size))
        return NULL;
    s_measure_room(self);
    pg_outbatch_reset(self->pending);
    memset(&self->group, 0, sizeof self->group);
    self->party = "rms:local"; /* not through the socket: no key to name */
    return pg_store_begin(self->store, 1, errstr, errstr_size);
}

void pg_intake_group_add(pg_intake *self, pg_store_txn *txn, const uint8_t *data, size_t size,
                         pg_intake_ack *ack)
{
    s_apply(self, txn, data, size, ack);
    s_account(self, ack);
    if (!s_stored(ack))
        return;
    self->group.stored++;
    if (ack->status == PG_INTAKE_ACCEPTED)
        self->group.accepted++, self->group.duplicates += ack->duplicate ? 1 : 0;
    else
        self->group.dead_letters++;
}

int pg_intake_group_end(pg_intake *self, pg_store_txn **txn, int commit, char *errstr,
                        size_t errstr_size)
{
    if (!*txn)
        return 0;
    int rc = 0;
    /* The group's audit events go first: one that cannot be written stops the group
     * (fail closed). */
    if (commit && (rc = s_audit_group(self, errstr, errstr_size)))
        commit = 0;
    if (!commit)
        pg_store_abort(txn);
    else
        rc = pg_store_commit(txn, errstr, errstr_size);
    if (rc || !commit) {
        /* Nothing of the group was kept: its counts move from accepted / rejected to
         * retry, as the callers answer them. */
        self->stats.accepted -= self->group.accepted;
        self->stats.duplicates -= self->group.duplicates;
        self->stats.rejected -= self->group.dead_letters;
        self->stats.dead_letters -= self->group.dead_letters;
        self->stats.retried += self->group.stored;
        self->stats.disk_full += rc == PG_EDISKFULL;
        self->stats.store_full += rc == PG_EFULL;
        pg_outbatch_reset(self->pending);
        return rc;
    }
    s_after_commit(self);
    return 0;
}

void pg_intake_handle(pg_intake *self, const uint8_t *data, size_t size, pg_intake_ack *ack)
{
    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_intake_group_begin(self, why, sizeof why);
    if (!txn) {
        memset(ack, 0, sizeof *ack);
        self->stats.received++;
        s_fail(self, ack, PG_INTAKE_RETRY, "%s", why);
        s_account(self, ack);
        return;
    }
    pg_intake_group_add(self, txn, data, size, ack);
    int rc;
    if (!s_stored(ack)) {
        pg_store_abort(&txn);
    } else if ((rc = pg_intake_group_end(self, &txn, 1, why, sizeof why))) {
        ack->ids = NULL;
        ack->id_count = 0;
        ack->dead_letter = 0;
        ack->backpressure = rc == PG_EFULL;
        s_fail(self, ack, PG_INTAKE_RETRY, "%s", why);
    }
}
/* ---------------------------------------------------------------- the write-ahead log */

static void s_put16(pg_buf *b, size_t v, int *rc)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    *rc = *rc ? *rc : pg_buf_append(b, x, 2);
}

static void s_put64(pg_buf *b, uint64_t v, int *rc)
{
    uint8_t x[8];
    pg_store_be64_put(x, v);
    *rc = *rc ? *rc : pg_buf_append(b, x, 8);
}

static const char *s_policy_version(const pg_intake *self)
{
    const pg_policy *policy = pg_router_policy(self->router);
    return policy ? pg_policy_version(policy) : "";
}

/* Log a message the group stored, with what a replay needs to decide it again the
 * same way: the bytes, the sender (its audit party), the time of receipt (a dead
 * letter's), the policy version it was routed under, and the outcome to check:
 *
 *     u8 version, u8 outcome (1 accepted, 2 dead letter), u64 received_ms,
 *     u64 dead letter id, u16 + party, u16 + policy version, the message's bytes.
 *
 * A record that cannot be buffered fails the group (self->group_fail). */
static void s_log_message(pg_intake *self, const uint8_t *data, size_t size,
                          const pg_intake_ack *ack)
{
    if (self->group_fail)
        return;
    const char *party = self->party ? self->party : "";
    const char *version = s_policy_version(self);
    size_t plen = strlen(party), vlen = strlen(version);
    pg_buf_reset(&self->rec);
    uint8_t head[2] = {S_REC_VERSION, ack->status == PG_INTAKE_ACCEPTED ? 1 : 2};
    int rc = pg_buf_append(&self->rec, head, 2);
    s_put64(&self->rec, (uint64_t)self->received_ms, &rc);
    s_put64(&self->rec, ack->dead_letter, &rc);
    s_put16(&self->rec, plen, &rc);
    rc = rc ? rc : pg_buf_append(&self->rec, party, plen);
    s_put16(&self->rec, vlen, &rc);
    rc = rc ? rc : pg_buf_append(&self->rec, version, vlen);
    rc = rc ? rc : pg_buf_append(&self->rec, data, size);
    if (rc)
        pg_errf(rc, self->group_why, sizeof self->group_why, "write-ahead log: out of memory");
    else
        rc = pg_wal_append(self->wal, S_REC_MESSAGE, self->rec.data, self->rec.len, NULL,
                           self->group_why, sizeof self->group_why);
    self->group_fail = rc;
}

/* One logged message again, in the open transaction, from s_recover. Its audit events
 * are not written again: they were written before the log's sync that preceded its
 * ack, so they are in the audit log already. The outcome must be the one acked. */
static int s_replay_one(void *arg, uint64_t lsn, uint32_t type, const uint8_t *data, size_t len)
{
    pg_intake *self = arg;
    char *why = self->replay_why;
    size_t wsz = sizeof self->replay_why;
    if (type == S_REC_CHECKPOINT && len == 8) {
        uint64_t was = pg_store_be64_get(data);
        if (was > self->ckpt_lsn)
            return pg_errf(PG_ECORRUPT, why, wsz,
                           "write-ahead log LSN %" PRIu64 ": the store was checkpointed at LSN "
                           "%" PRIu64 ", but it holds LSN %" PRIu64
                           ": the store is older than its log (restored from a backup, or "
                           "copied without its last commits); give it the log of the same "
                           "backup, or its newer copy",
                           lsn, was, self->ckpt_lsn);
        self->open_lsn = lsn;
        return 0;
    }
    if (type != S_REC_MESSAGE || len < 20 || data[0] != S_REC_VERSION || data[1] < 1 || data[1] > 2)
        return pg_errf(PG_ECORRUPT, why, wsz,
                       "write-ahead log LSN %" PRIu64 ": a record of type %" PRIu32
                       " and %zu bytes is not a message this intake logged",
                       lsn, type, len);
    int outcome = data[1];
    int64_t received = (int64_t)pg_store_be64_get(data + 2);
    uint64_t dead = pg_store_be64_get(data + 10);
    size_t off = 18, plen = (size_t)data[off] << 8 | data[off + 1];
    off += 2;
    const uint8_t *party = data + off;
    off += plen;
    size_t vlen = off + 2 <= len ? (size_t)data[off] << 8 | data[off + 1] : len;
    off += 2;
    if (off + vlen > len || plen >= sizeof self->party_buf)
        return pg_errf(PG_ECORRUPT, why, wsz, "write-ahead log LSN %" PRIu64 ": a record cut short",
                       lsn);
    const char *version = s_policy_version(self);
    if (strlen(version) != vlen || memcmp(version, data + off, vlen))
        return pg_errf(PG_ECONFIG, why, wsz,
                       "write-ahead log LSN %" PRIu64 " was routed under policy.version %.*s, the "
                       "configuration has %s: start once with policy.version %.*s so that what "
                       "was acknowledged since the last checkpoint is replayed as it was decided",
                       lsn, (int)vlen, (const char *)(data + off), version, (int)vlen,
                       (const char *)(data + off));
    off += vlen;
    memcpy(self->party_buf, party, plen);
    self->party_buf[plen] = 0;
    self->party = self->party_buf;
    self->received_ms = received;
    pg_intake_ack ack;
    s_apply(self, self->open, data + off, len - off, &ack);
    pg_outbatch_reset(self->pending);
    int same = outcome == 1 ? ack.status == PG_INTAKE_ACCEPTED
                            : ack.status == PG_INTAKE_REJECTED && ack.dead_letter == dead;
    if (!same)
        return pg_errf(PG_ECORRUPT, why, wsz,
                       "write-ahead log LSN %" PRIu64 ": acknowledged as %s, replayed as %s (%s); "
                       "the store does not match the log",
                       lsn, outcome == 1 ? "accepted" : "a dead letter",
                       pg_intake_status_name(ack.status),
                       ack.status == PG_INTAKE_ACCEPTED ? "accepted" : ack.reason);
    self->open_lsn = lsn;
    self->replayed++;
    return 0;
}

/* The store is behind the log (a start after a crash, a failed checkpoint): apply
 * what the log holds after the last checkpoint, in order, then checkpoint. No other
 * writer committed between the original apply and its checkpoint (the intake held
 * the write transaction all that time), so the replay starts from the state the
 * original started from and decides every message the same way. */
static int s_recover(pg_intake *self, char *errstr, size_t errstr_size)
{
    pg_store_abort(&self->open);
    self->recover = 1;
    self->open = pg_store_begin(self->store, 1, errstr, errstr_size);
    if (!self->open) {
        pg_errf(PG_ESTORE, self->recover_why, sizeof self->recover_why, "%s", errstr);
        return PG_ESTORE;
    }
    clock_gettime(CLOCK_MONOTONIC, &self->open_since);
    self->open_bytes = 0;
    self->open_lsn = self->ckpt_lsn;
    pg_intake_stats saved = self->stats;
    const char *party = self->party;
    self->replaying = 1;
    self->replayed = 0;
    self->replay_why[0] = 0;
    pg_outbatch_reset(self->pending);
    pg_spool_set_unbounded(self->spool, 1); /* accepted under the bounds of then */
    int rc = pg_wal_replay(self->wal, self->ckpt_lsn, s_replay_one, self, errstr, errstr_size);
    pg_spool_set_unbounded(self->spool, 0);
    self->replaying = 0;
    self->party = party;
    self->stats = saved;
    self->stats.replayed += self->replayed;
    if (rc && self->replay_why[0])
        snprintf(errstr, errstr_size, "%s", self->replay_why);
    if (rc) {
        pg_store_abort(&self->open);
        pg_errf(PG_ESTORE, self->recover_why, sizeof self->recover_why, "replay: %s", errstr);
        return rc;
    }
    if (self->replayed)
        pg_log(PG_LOG_INFO,
               "intake: %" PRIu64 " messages replayed from the write-ahead log (LSN %" PRIu64
               "-%" PRIu64 ")",
               self->replayed, self->ckpt_lsn + 1, self->open_lsn);
    self->recover = 0;
    return s_checkpoint(self, errstr, errstr_size);
}

/* Commit the open transaction with the LSN it includes, then let the publisher see its
 * spool batches and release the log up to it. A checkpoint that fails loses nothing
 * acknowledged (the log holds it) but leaves the store behind the log: the intake
 * replays before it takes anything more. */
static int s_checkpoint(pg_intake *self, char *errstr, size_t errstr_size)
{
    if (!self->open)
        return 0;
    /* Held across the commit (and, when it fails, until the replay): a write of
     * another thread between a failed checkpoint and its replay (a partner dead letter
     * taking the next dead-letter id) would make the replay decide otherwise. */
    pg_store_hold_writers(self->store, 1);
    int rc = 0, moved = self->open_lsn != self->ckpt_lsn;
    if (moved) {
        uint8_t v[8];
        pg_store_be64_put(v, self->open_lsn);
        rc = pg_store_put(self->open, self->meta, S_KEY_LSN, strlen(S_KEY_LSN), v, sizeof v, errstr,
                          errstr_size);
    }
    if (!rc)
        rc = pg_store_commit(&self->open, errstr, errstr_size);
    pg_store_abort(&self->open);
    if (rc) {
        self->stats.disk_full += rc == PG_EDISKFULL;
        self->stats.store_full += rc == PG_EFULL;
        self->recover = 1;
        pg_errf(PG_ESTORE, self->recover_why, sizeof self->recover_why,
                "the store is behind the write-ahead log (checkpoint: %s)", errstr);
        pg_log(PG_LOG_ERROR,
               "intake: checkpoint failed: %s; what was acknowledged is in the write-ahead log "
               "and is replayed before anything more is taken",
               errstr);
        return rc;
    }
    pg_store_hold_writers(self->store, 0);
    self->stats.commits++;
    self->stats.checkpoints++;
    self->ckpt_lsn = self->open_lsn;
    pg_spool_notify(self->spool);
    char why[PG_ERRSTR_SIZE];
    uint8_t mark[8];
    pg_store_be64_put(mark, self->ckpt_lsn);
    if (moved &&
        pg_wal_append(self->wal, S_REC_CHECKPOINT, mark, sizeof mark, NULL, why, sizeof why))
        pg_log(PG_LOG_WARN, "intake: checkpoint mark: %s", why); /* only a check is lost */
    if (pg_wal_release(self->wal, self->ckpt_lsn, why, sizeof why))
        pg_log(PG_LOG_WARN, "intake: %s", why); /* kept segments are only replayed past */
    return 0;
}

/* At the intake's start: the LSN the store holds, the log checked against it, and what
 * the log holds beyond it replayed. */
static int s_wal_start(pg_intake *self, char *errstr, size_t errstr_size)
{
    pg_store_txn *txn = pg_store_begin(self->store, 1, errstr, errstr_size);
    int rc = txn ? 0 : PG_ESTORE;
    rc = rc ? rc : pg_store_db_open(txn, S_DB_META, 0, &self->meta, errstr, errstr_size);
    const void *v;
    size_t vlen;
    int grc = rc ? rc
                 : pg_store_get(txn, self->meta, S_KEY_LSN, strlen(S_KEY_LSN), &v, &vlen, errstr,
                                errstr_size);
    if (!grc && vlen == 8)
        self->ckpt_lsn = pg_store_be64_get(v);
    else if (grc != PG_ENOTFOUND)
        rc = grc ? grc
                 : pg_errf(PG_ECORRUPT, errstr, errstr_size, "intake.meta %s: %zu bytes", S_KEY_LSN,
                           vlen);
    rc = rc ? rc : pg_store_commit(&txn, errstr, errstr_size);
    pg_store_abort(&txn);
    if (rc)
        return rc;
    /* The segment being written is never released, so a log the store has
     * checkpointed into always ends at or after the checkpoint. */
    uint64_t last = pg_wal_last_lsn(self->wal);
    if (last < self->ckpt_lsn)
        return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                       "the store includes write-ahead log LSN %" PRIu64
                       " but the log %s %s%" PRIu64
                       ": it was removed, cut or not copied with the store",
                       self->ckpt_lsn, pg_wal_dir(self->wal),
                       pg_wal_empty(self->wal) ? "holds no record; LSN " : "ends at LSN ", last);
    self->open_lsn = self->ckpt_lsn;
    return last == self->ckpt_lsn ? 0 : s_recover(self, errstr, errstr_size);
}

void pg_intake_set_allow(pg_intake *self, const struct pg_curve_allow *allow)
{
    if (!self->zap || !allow)
        return;
    self->allow = allow;
    pg_zap_set_allow(self->zap, allow);
}

int pg_intake_checkpoint(pg_intake *self, char *errstr, size_t errstr_size)
{
    if (self->recover)
        return s_recover(self, errstr, errstr_size);
    return s_checkpoint(self, errstr, errstr_size);
}

/* After a group: commit when the transaction is old or large enough, or another
 * thread waits for the store's write transaction. */
static void s_maybe_checkpoint(pg_intake *self)
{
    char why[PG_ERRSTR_SIZE];
    if (self->recover) {
        if (s_recover(self, why, sizeof why))
            pg_log(PG_LOG_ERROR, "intake: %s", self->recover_why);
        return;
    }
    if (!self->open)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t age_ms = (int64_t)(now.tv_sec - self->open_since.tv_sec) * 1000 +
                     (now.tv_nsec - self->open_since.tv_nsec) / 1000000;
    int waiting = pg_store_writers_waiting(self->store);
    if (age_ms < self->checkpoint_ms && self->open_bytes < S_CHECKPOINT_BYTES && !waiting)
        return;
    if (s_checkpoint(self, why, sizeof why))
        return;
    /* LMDB's writer lock is not fair: this thread, running, would take it again for
     * its next group before the waiting one wakes. Hand it over: wait (at most
     * S_HANDOVER_US) until a waiter has it. */
    for (int us = 0;
         waiting && us < S_HANDOVER_US && pg_store_writers_waiting(self->store) >= waiting;
         us += 50)
        usleep(50);
}

/* ---------------------------------------------------------------- JSON */

/* s as a JSON string; bytes that are not UTF-8 become U+FFFD, so that an ack is
 * always valid JSON whatever the reason quotes. */
static int s_json_str(pg_buf *out, const char *s)
{
    return pg_json_string(out, s, strlen(s), PG_JSON_REPLACE);
}

int pg_intake_ack_json(const pg_intake_ack *ack, const char *correlation, pg_buf *out)
{
    int rc = pg_buf_putc(out, '{');
    if (!rc && correlation) {
        rc = pg_buf_puts(out, "\"correlation\":");
        rc = rc ? rc : s_json_str(out, correlation);
        rc = rc ? rc : pg_buf_putc(out, ',');
    }
    rc = rc ? rc : pg_buf_printf(out, "\"status\":\"%s\"", pg_intake_status_name(ack->status));
    if (!rc && ack->status == PG_INTAKE_ACCEPTED) {
        rc = pg_buf_puts(out, ",\"ids\":[");
        for (size_t i = 0; !rc && i < ack->id_count; i++) {
            rc = i ? pg_buf_putc(out, ',') : 0;
            rc = rc ? rc : s_json_str(out, ack->ids[i] ? ack->ids[i] : "");
        }
        rc = rc ? rc
                : pg_buf_printf(out, "],\"stale\":%zu,\"duplicate\":%s", ack->stale,
                                ack->duplicate ? "true" : "false");
    } else if (!rc) {
        rc = pg_buf_puts(out, ",\"reason\":");
        rc = rc ? rc : s_json_str(out, ack->reason);
        if (!rc && ack->status == PG_INTAKE_REJECTED && ack->dead_letter)
            rc = pg_buf_printf(out, ",\"dead_letter\":%" PRIu64, ack->dead_letter);
        if (!rc && ack->status == PG_INTAKE_RETRY && ack->backpressure)
            rc = pg_buf_puts(out, ",\"backpressure\":true");
    }
    return rc ? rc : pg_buf_putc(out, '}');
}

/* ---------------------------------------------------------------- the socket */

static int s_valid_correlation(const zmq_msg_t *m)
{
    size_t n = zmq_msg_size((zmq_msg_t *)m);
    const unsigned char *d = zmq_msg_data((zmq_msg_t *)m);
    if (n < 1 || n > PG_INTAKE_MAX_CORRELATION)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (d[i] < 0x21 || d[i] > 0x7e)
            return 0;
    return 1;
}

/* Receive one whole request without waiting. 1 when one was read, 0 when none was
 * waiting, PG_EIO on a socket error. */
static int s_recv(pg_intake *self, s_slot *slot)
{
    slot->nparts = slot->total = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sock, slot->total ? 0 : ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (e == EINTR && slot->total)
                continue; /* the rest of a request that has started is already here */
            if ((e == EAGAIN || e == EINTR) && !slot->total)
                return 0;
            return PG_EIO;
        }
        int more = zmq_msg_more(&m);
        if (slot->nparts < S_MAX_PARTS)
            slot->parts[slot->nparts++] = m;
        else
            zmq_msg_close(&m);
        ++slot->total;
        if (!more)
            return 1;
    }
}

static void s_slot_close(s_slot *slot)
{
    for (size_t i = 0; i < slot->nparts; i++)
        zmq_msg_close(&slot->parts[i]);
    slot->nparts = slot->total = 0;
}

/* Where a request's frames are: parts[0] is the peer's identity (ROUTER); an empty
 * frame after it is the REQ envelope delimiter, which the reply must carry back. */
typedef struct s_layout {
    int delimiter;
    size_t first, body;
    char corr[PG_INTAKE_MAX_CORRELATION + 1];
    const char *correlation;
    int valid; /* 1 or 2 body frames, a valid correlation id */
    const char *problem;
} s_layout;

static void s_layout_of(s_slot *slot, s_layout *l)
{
    memset(l, 0, sizeof *l);
    l->delimiter = slot->nparts > 1 && zmq_msg_size(&slot->parts[1]) == 0 && slot->total > 2;
    l->first = l->delimiter ? 2 : 1;
    l->body = slot->total - l->first;
    if (l->body == 2 && !s_valid_correlation(&slot->parts[l->first])) {
        l->problem = "correlation";
    } else if (l->body == 1 || l->body == 2) {
        l->valid = 1;
        if (l->body == 2) {
            size_t n = zmq_msg_size(&slot->parts[l->first]);
            memcpy(l->corr, zmq_msg_data(&slot->parts[l->first]), n);
            l->corr[n] = 0;
            l->correlation = l->corr;
        }
    } else {
        l->problem = "frames";
    }
}

static zmq_msg_t *s_message(s_slot *slot, const s_layout *l)
{
    return &slot->parts[l->first + l->body - 1];
}

static void s_decode_slot(pg_intake *self, s_slot *slot)
{
    s_layout l;
    s_layout_of(slot, &l);
    slot->decode_rc = S_NOT_DECODED;
    if (!l.valid)
        return;
    zmq_msg_t *msg = s_message(slot, &l);
    size_t size = zmq_msg_size(msg);
    if (size == 0 || size > self->max_message_size)
        return; /* never parsed (s_apply) */
    pg_changeset_reset(slot->in);
    slot->decode_rc = self->adapter->decode(&self->actx, zmq_msg_data(msg), size, slot->in,
                                            slot->decode_why, sizeof slot->decode_why);
}

/* Before a group's n requests are decided: decode them ahead in the decode thread,
 * when there are enough of them. 1 when posted (s_group_decoded must follow). */
static int s_group_decode(pg_intake *self, size_t n)
{
    if (n < S_DECODE_AHEAD_MIN || s_decoder_start(self))
        return 0;
    s_decoder_post(self, n);
    return 1;
}

/* After the group's requests were decided: the decode thread is done with the slots
 * (a request refused before decoding was not waited for). */
static void s_group_decoded(pg_intake *self, size_t n, int posted)
{
    self->predecoded = NULL;
    if (posted)
        s_decoder_wait(self, n);
}

/* Decide one request of a group (inside txn) and write its ack into slot->json. */
static void s_decide(pg_intake *self, pg_store_txn *txn, s_slot *slot, int posted)
{
    self->predecoded = posted ? slot : NULL;
    pg_intake_ack ack;
    s_layout l;
    s_layout_of(slot, &l);
    if (l.valid) {
        zmq_msg_t *msg = s_message(slot, &l);
        /* Under CURVE the ZAP handler's user id: the key's name on the allow-list. */
        const char *user = self->zap ? zmq_msg_gets(msg, "User-Id") : NULL;
        /* The key it was let in with must still be on the list under that name (a
         * reload may have taken it off, or replaced it under the same name). */
        const char *key = user ? zmq_msg_gets(msg, PG_CURVE_KEY_PROPERTY) : NULL;
        const char *now = key ? pg_curve_allow_find(self->allow, key) : NULL;
        int revoked = user && (!now || strcmp(now, user));
        if (revoked) {
            /* A key taken off the allow-list (a reload) whose connection is still open:
             * what it sends now is refused, as its next handshake would be. */
            memset(&ack, 0, sizeof ack);
            self->stats.received++;
            s_fail(self, &ack, PG_INTAKE_REJECTED,
                   "party: rms:%.100s is no longer on curve.intake_clients_file", user);
        } else if (user) {
            snprintf(self->party_buf, sizeof self->party_buf, "rms:%s", user);
            self->party = self->party_buf;
        } else {
            self->party = self->zap ? "rms:unknown" : "rms:insecure";
        }
        if (!revoked)
            s_apply(self, txn, zmq_msg_data(msg), zmq_msg_size(msg), &ack);
    } else {
        memset(&ack, 0, sizeof ack);
        self->stats.received++;
        if (!strcmp(l.problem, "correlation"))
            s_fail(self, &ack, PG_INTAKE_REJECTED,
                   "correlation: must be 1-%d printable ASCII characters (no spaces)",
                   PG_INTAKE_MAX_CORRELATION);
        else
            s_fail(self, &ack, PG_INTAKE_REJECTED,
                   "frames: expected the message, or a correlation id and the message (1 or "
                   "2 frames), got %zu",
                   l.body);
    }
    slot->status = ack.status;
    slot->stored = s_stored(&ack);
    if (slot->stored && self->wal)
        s_log_message(self, zmq_msg_data(s_message(slot, &l)), zmq_msg_size(s_message(slot, &l)),
                      &ack);
    s_account(self, &ack);
    pg_buf_reset(&slot->json);
    if (pg_intake_ack_json(&ack, l.correlation, &slot->json))
        pg_buf_reset(&slot->json); /* sent as an empty frame: the sender retries */
}

/* The group's audit or commit failed (err): what it stored is gone, so its acks say
 * retry (why says which). */
static void s_undo(pg_intake *self, s_slot *slot, int err, const char *why)
{
    if (!slot->stored)
        return;
    s_layout l;
    s_layout_of(slot, &l);
    pg_intake_ack ack;
    memset(&ack, 0, sizeof ack);
    if (slot->status == PG_INTAKE_ACCEPTED)
        self->stats.accepted--;
    else
        self->stats.rejected--, self->stats.dead_letters--;
    self->stats.disk_full += err == PG_EDISKFULL;
    self->stats.store_full += err == PG_EFULL;
    ack.backpressure = err == PG_EFULL;
    s_fail(self, &ack, PG_INTAKE_RETRY, "%s", why);
    s_account(self, &ack);
    slot->status = ack.status;
    slot->stored = 0;
    pg_buf_reset(&slot->json);
    if (pg_intake_ack_json(&ack, l.correlation, &slot->json))
        pg_buf_reset(&slot->json);
}

static int s_send_frame(void *sock, const void *data, size_t len, int more)
{
    return zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? PG_EIO : 0;
}

static void s_send_ack(pg_intake *self, s_slot *slot)
{
    s_layout l;
    s_layout_of(slot, &l);
    int rc =
        s_send_frame(self->sock, zmq_msg_data(&slot->parts[0]), zmq_msg_size(&slot->parts[0]), 1);
    if (!rc && l.delimiter)
        rc = s_send_frame(self->sock, "", 0, 1);
    if (!rc)
        rc = s_send_frame(self->sock, slot->json.data, slot->json.len, 0);
    /* A peer that went away cannot be acked; that is not the intake failing. */
    if (rc)
        pg_log(PG_LOG_WARN, "intake: ack not sent: %s", zmq_strerror(errno));
}

/* Without a log: apply the group's n requests in one write transaction, commit it
 * (one fsync of the store), and only then answer. */
static void s_group_commit(pg_intake *self, size_t n)
{
    char why[PG_ERRSTR_SIZE];
    s_measure_room(self);
    pg_outbatch_reset(self->pending);
    pg_store_txn *txn = pg_store_begin(self->store, 1, why, sizeof why);
    if (!txn)
        pg_log(PG_LOG_ERROR, "intake: store: %s", why);
    int stored = 0;
    int posted = s_group_decode(self, n);
    for (size_t i = 0; i < n; i++) {
        s_decide(self, txn, &self->slots[i], posted);
        stored |= self->slots[i].stored;
    }
    s_group_decoded(self, n, posted);
    if (txn && stored) {
        int crc = s_audit_group(self, why, sizeof why);
        if (!crc && (crc = pg_store_commit(&txn, why, sizeof why)))
            pg_log(PG_LOG_ERROR, "intake: commit of %zu messages failed: %s", n, why);
        if (crc) {
            for (size_t i = 0; i < n; i++)
                s_undo(self, &self->slots[i], crc, why);
        } else {
            s_after_commit(self);
        }
    }
    pg_store_abort(&txn);
}

/* With the log: apply the group's n requests in a child of the open transaction, write
 * their audit events (fail closed), log every message stored and sync the log (one
 * fdatasync), and only then answer. A group whose audit or log fails is undone alone
 * (its child aborted, its records dropped) and answered retry; the groups before it
 * stay, as the log has them. */
static void s_group_logged(pg_intake *self, size_t n, size_t bytes)
{
    char why[PG_ERRSTR_SIZE];
    if (self->recover && s_recover(self, why, sizeof why))
        pg_log(PG_LOG_ERROR, "intake: %s", self->recover_why);
    if (!self->open && !self->recover) {
        s_measure_room(self);
        self->open = pg_store_begin(self->store, 1, why, sizeof why);
        if (!self->open)
            pg_log(PG_LOG_ERROR, "intake: store: %s", why);
        clock_gettime(CLOCK_MONOTONIC, &self->open_since);
        self->open_bytes = 0;
    }
    pg_store_txn *group = self->open ? pg_store_begin_child(self->open, why, sizeof why) : NULL;
    pg_outbatch_reset(self->pending);
    self->group_fail = 0;
    int stored = 0;
    int posted = s_group_decode(self, n);
    for (size_t i = 0; i < n; i++) {
        s_decide(self, group, &self->slots[i], posted);
        stored |= self->slots[i].stored;
    }
    s_group_decoded(self, n, posted);
    if (group && stored) {
        int crc = self->group_fail;
        if (crc)
            snprintf(why, sizeof why, "%s", self->group_why);
        if (!crc)
            crc = s_audit_group(self, why, sizeof why);
        if (!crc && (crc = pg_wal_sync(self->wal, why, sizeof why))) {
            self->stats.wal_failures++;
            pg_log(PG_LOG_ERROR, "intake: write-ahead log of %zu messages failed: %s", n, why);
        }
        if (crc) {
            pg_wal_rollback(self->wal);
            pg_store_abort(&group);
            for (size_t i = 0; i < n; i++)
                s_undo(self, &self->slots[i], crc, why);
        } else {
            self->stats.wal_syncs++;
            self->open_lsn = pg_wal_last_lsn(self->wal);
            self->open_bytes += bytes;
            if (pg_store_commit(&group, why, sizeof why)) {
                /* Logged, so acknowledged; the store catches up by replaying. */
                pg_store_hold_writers(self->store, 1);
                pg_store_abort(&self->open);
                self->recover = 1;
                pg_errf(PG_ESTORE, self->recover_why, sizeof self->recover_why,
                        "the store is behind the write-ahead log (%s)", why);
            }
        }
    }
    pg_outbatch_reset(self->pending);
    pg_store_abort(&group);
}

int pg_intake_poll(pg_intake *self, int timeout_ms, size_t max, char *errstr, size_t errstr_size)
{
    if (!self->sock) {
        /* No endpoint (a drop directory only): nothing to take, only the wait. */
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return 0;
    }
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    int ready = 0;
    if (self->open) {
        /* A transaction is open: when no request comes for a moment, commit it rather
         * than hold the store's write transaction while idle. */
        int idle = timeout_ms < S_IDLE_MS ? timeout_ms : S_IDLE_MS;
        ready = zmq_poll(&item, 1, idle);
        if (ready == 0) {
            char why[PG_ERRSTR_SIZE];
            if (s_checkpoint(self, why, sizeof why) && s_recover(self, why, sizeof why))
                pg_log(PG_LOG_ERROR, "intake: %s", self->recover_why);
            timeout_ms -= idle;
        }
    }
    if (ready == 0 && timeout_ms > 0)
        ready = zmq_poll(&item, 1, timeout_ms);
    if (ready < 0) {
        if (errno == EINTR)
            return 0;
        return pg_errf(PG_EIO, errstr, errstr_size, "intake: poll: %s", zmq_strerror(errno));
    }
    if (!max || max > self->group_max)
        max = self->group_max;

    /* Take what is waiting, up to the bounds. */
    size_t n = 0, bytes = 0;
    int rc = 0;
    while (n < max && bytes < self->group_max_bytes) {
        s_slot *slot = &self->slots[n];
        rc = s_recv(self, slot);
        if (rc <= 0) {
            s_slot_close(slot);
            break;
        }
        for (size_t i = 1; i < slot->nparts; i++)
            bytes += zmq_msg_size(&slot->parts[i]);
        n++;
    }
    if (rc < 0)
        pg_errf(rc, errstr, errstr_size, "intake: receive: %s", zmq_strerror(errno));
    if (!n)
        return rc;

    if (self->wal)
        s_group_logged(self, n, bytes);
    else
        s_group_commit(self, n);
    for (size_t i = 0; i < n; i++) {
        s_send_ack(self, &self->slots[i]);
        s_slot_close(&self->slots[i]);
    }
    if (self->wal)
        s_maybe_checkpoint(self);
    return rc < 0 ? rc : (int)n;
}

void pg_intake_get_stats(const pg_intake *self, pg_intake_stats *out)
{
    *out = self->stats;
    out->decode_cpu_ns = self->dec.running ? atomic_load(&self->dec.cpu_ns) : 0;
    if (self->zap) {
        pg_zap_stats zs;
        pg_zap_get_stats(self->zap, &zs);
        out->curve_refused = zs.refused;
    }
}

void pg_intake_test_crash(pg_intake *self)
{
    pg_store_abort(&self->open);
}

const char *pg_intake_endpoint(const pg_intake *self)
{
    return self->endpoint;
}
