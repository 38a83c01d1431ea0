/* pg_audit_anchor: signed checkpoints of the audit log's head, published to Kafka. */
#include "audit_anchor.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/timeutil.h"

struct pg_audit_anchor {
    rd_kafka_t *rk;
    pg_audit *audit;
    pg_audit_signing_key key;
    char *topic;
    int interval_ms;
    int64_t last_ms;
    uint64_t last_seq;
    int published_once;
    pg_buf msg;
    atomic_uint_fast64_t published; /* checkpoints the broker stored: _publish waits on it */
};

static void s_dr(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    pg_audit_anchor *a = opaque;
    if (!rkm->err) {
        atomic_fetch_add(&a->published, 1);
        return;
    }
    pg_log(PG_LOG_ERROR, "audit: checkpoint not stored in %s: %s", rd_kafka_topic_name(rkm->rkt),
           rd_kafka_err2str(rkm->err));
}

static void s_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3)
        pg_log(PG_LOG_WARN, "librdkafka (audit checkpoints) %s: %s", fac, buf);
}

static int s_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                 size_t errstr_size)
{
    char why[256];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK)
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "audit checkpoints: kafka property %s: %s",
                       key, why);
    return 0;
}

/* A configuration with cfg's brokers and kafka.properties (TLS, SASL); NULL with a
 * reason. */
static rd_kafka_conf_t *s_conf(const pg_config *cfg, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    int bad = s_set(conf, "bootstrap.servers", cfg->kafka_brokers, errstr, errstr_size);
    for (size_t i = 0; !bad && i < cfg->kafka_property_count; i++)
        bad = s_set(conf, cfg->kafka_properties[i].key, cfg->kafka_properties[i].value, errstr,
                    errstr_size);
    if (bad) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

pg_audit_anchor *pg_audit_anchor_new(const pg_config *cfg, pg_audit *audit,
                                     const pg_audit_signing_key *key, const char *topic,
                                     int interval_ms, char *errstr, size_t errstr_size)
{
    pg_audit_anchor *a = calloc(1, sizeof *a);
    rd_kafka_conf_t *conf = NULL;
    if (!a || !(a->topic = strdup(topic))) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    a->audit = audit;
    a->key = *key;
    a->interval_ms = interval_ms > 0 ? interval_ms : 60000;
    a->last_ms = pg_time_mono_ms();
    if (!(conf = s_conf(cfg, errstr, errstr_size)))
        goto err;
    /* After the user's properties: a checkpoint counts once every replica has it. */
    if (s_set(conf, "acks", "all", errstr, errstr_size) ||
        s_set(conf, "enable.idempotence", "true", errstr, errstr_size))
        goto err;
    rd_kafka_conf_set_opaque(conf, a);
    rd_kafka_conf_set_dr_msg_cb(conf, s_dr);
    rd_kafka_conf_set_log_cb(conf, s_log_cb);
    char why[512];
    if (!(a->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why))) {
        pg_errf(PG_EKAFKA, errstr, errstr_size, "audit checkpoints: %s", why);
        goto err;
    }
    return a;
err:
    if (conf && !(a && a->rk))
        rd_kafka_conf_destroy(conf);
    pg_audit_anchor_destroy(&a);
    return NULL;
}

static int s_produce(pg_audit_anchor *a, char *errstr, size_t errstr_size)
{
    pg_audit_checkpoint cp;
    int rc = pg_audit_checkpoint_make(a->audit, &a->key, &a->msg, &cp, errstr, errstr_size);
    if (rc)
        return rc;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        a->rk, RD_KAFKA_V_TOPIC(a->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY("checkpoint", 10), RD_KAFKA_V_VALUE(a->msg.data, a->msg.len),
        RD_KAFKA_V_END);
    if (err)
        return pg_errf(PG_EKAFKA, errstr, errstr_size, "audit checkpoint not queued: %s",
                       rd_kafka_err2str(err));
    a->last_seq = cp.seq;
    a->published_once = 1;
    return 0;
}

void pg_audit_anchor_tick(pg_audit_anchor *a)
{
    rd_kafka_poll(a->rk, 0);
    int64_t now = pg_time_mono_ms();
    if (now - a->last_ms < a->interval_ms)
        return;
    a->last_ms = now;
    if (a->published_once && pg_audit_seq(a->audit) == a->last_seq)
        return;
    char why[PG_ERRSTR_SIZE];
    if (s_produce(a, why, sizeof why))
        pg_log(PG_LOG_ERROR, "%s", why);
}

int pg_audit_anchor_publish(pg_audit_anchor *a, int timeout_ms, char *errstr, size_t errstr_size)
{
    uint64_t before = atomic_load(&a->published);
    int rc = s_produce(a, errstr, errstr_size);
    if (rc)
        return rc;
    if (rd_kafka_flush(a->rk, timeout_ms))
        return pg_errf(PG_ETIMEOUT, errstr, errstr_size,
                       "audit checkpoint not stored in %s within %d ms", a->topic, timeout_ms);
    if (atomic_load(&a->published) == before)
        return pg_errf(PG_EKAFKA, errstr, errstr_size, "audit checkpoint not stored in %s",
                       a->topic);
    return 0;
}

void pg_audit_anchor_destroy(pg_audit_anchor **p)
{
    if (!p || !*p)
        return;
    pg_audit_anchor *a = *p;
    if (a->rk) {
        rd_kafka_purge(a->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(a->rk, 0);
        rd_kafka_destroy(a->rk);
    }
    sodium_memzero(&a->key, sizeof a->key);
    pg_buf_free(&a->msg);
    free(a->topic);
    free(a);
    *p = NULL;
}

/* ------------------------------------------------------------------ reading back */

/* The start reads the last this many records of each partition of the audit topic (and
 * further back only where none of them is one of its checkpoints): its start time does
 * not grow with the topic, which keeps every checkpoint ever published. */
#define S_START_TAIL 1024

/* What the reading's log callback keeps: the first error librdkafka logged (a refused
 * TLS handshake, a SASL failure, a broker that cannot be reached), which it does not
 * return. */
typedef struct s_reading {
    pthread_mutex_t lock;
    char first[256];
} s_reading;

static void s_reading_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)fac;
    s_reading *r = rd_kafka_opaque(rk);
    if (level > 3) /* LOG_ERR and worse */
        return;
    pthread_mutex_lock(&r->lock);
    if (!r->first[0])
        snprintf(r->first, sizeof r->first, "%s", buf);
    pthread_mutex_unlock(&r->lock);
}

int pg_audit_checkpoints_add(pg_audit_checkpoints *c, const void *data, size_t len,
                             const pg_audit_public_key *key)
{
    pg_audit_checkpoint cp;
    if (pg_audit_checkpoint_parse(data, len, key, &cp, NULL, 0)) {
        c->foreign++;
        return 0;
    }
    if (pg_grow((void **)&c->v, &c->cap, c->n + 1, sizeof *c->v))
        return PG_ENOMEM;
    c->v[c->n++] = cp;
    return 0;
}

/* The records of topic's partition part at offsets [from, end), read through rk; those
 * signed by key added to out. */
static int s_read_range(rd_kafka_t *rk, const char *topic, int32_t part, int64_t from, int64_t end,
                        const pg_audit_public_key *key, int timeout_ms, pg_audit_checkpoints *out,
                        char *errstr, size_t errstr_size)
{
    if (from >= end)
        return 0;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, part)->offset = from;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err)
        return pg_errf(PG_EKAFKA, errstr, errstr_size, "checkpoints topic %s: assign: %s", topic,
                       rd_kafka_err2str(err));
    int64_t idle_since = pg_time_mono_ms();
    int rc = 0, done = 0;
    while (!rc && !done) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (pg_time_mono_ms() - idle_since >= timeout_ms)
                rc = pg_errf(PG_ETIMEOUT, errstr, errstr_size,
                             "checkpoints topic %s: no end reached in %d s", topic,
                             timeout_ms / 1000);
            continue;
        }
        idle_since = pg_time_mono_ms();
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            done = 1;
        else if (m->err)
            rc = pg_errf(PG_EKAFKA, errstr, errstr_size, "checkpoints topic %s: %s", topic,
                         rd_kafka_message_errstr(m));
        else if (m->offset >= end)
            done = 1;
        else if (m->payload && pg_audit_checkpoints_add(out, m->payload, m->len, key))
            rc = pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        done |= !rc && !m->err && m->offset >= end - 1;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    return rc;
}

int pg_audit_checkpoints_read(rd_kafka_conf_t *conf, const char *topic,
                              const pg_audit_public_key *key, size_t tail, int timeout_ms,
                              pg_audit_checkpoints *out, char *errstr, size_t errstr_size)
{
    s_reading reading = {.lock = PTHREAD_MUTEX_INITIALIZER};
    char why[512], group[64];
    snprintf(group, sizeof group, "polegate-audit-checkpoints-%ld", (long)getpid());
    if (rd_kafka_conf_set(conf, "group.id", group, why, sizeof why) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof why) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof why)) {
        rd_kafka_conf_destroy(conf);
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "checkpoints topic %s: %s", topic, why);
    }
    rd_kafka_conf_set_opaque(conf, &reading);
    rd_kafka_conf_set_log_cb(conf, s_reading_log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return pg_errf(PG_EKAFKA, errstr, errstr_size, "checkpoints topic %s: %s", topic, why);
    }
    rd_kafka_poll_set_consumer(rk);
    int rc;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms / 2);
    rd_kafka_topic_destroy(rkt);
    if (err) {
        pthread_mutex_lock(&reading.lock);
        rc = pg_errf(PG_EKAFKA, errstr, errstr_size, "checkpoints topic %s: %s (%s)", topic,
                     rd_kafka_err2str(err),
                     reading.first[0] ? reading.first : "no broker error logged");
        pthread_mutex_unlock(&reading.lock);
        goto out;
    }
    if (md->topic_cnt != 1 || md->topics[0].err) {
        err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        rc = pg_errf(err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                             err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC
                         ? PG_ENOTFOUND
                         : PG_EKAFKA,
                     errstr, errstr_size, "checkpoints topic %s: %s", topic, rd_kafka_err2str(err));
        goto out;
    }
    rc = 0;
    for (int i = 0; !rc && i < md->topics[0].partition_cnt; i++) {
        int32_t part = md->topics[0].partitions[i].id;
        int64_t low = 0, high = 0;
        err = rd_kafka_query_watermark_offsets(rk, topic, part, &low, &high, timeout_ms / 2);
        if (err) {
            rc = pg_errf(PG_EKAFKA, errstr, errstr_size,
                         "checkpoints topic %s [%" PRId32 "]: its offsets: %s", topic, part,
                         rd_kafka_err2str(err));
            break;
        }
        /* The last tail records, then further back, until one of key's is among them. */
        int64_t end = high, window = tail ? (int64_t)tail : INT64_MAX;
        for (;;) {
            int64_t from = end - low > window ? end - window : low;
            size_t had = out->n;
            rc =
                s_read_range(rk, topic, part, from, end, key, timeout_ms, out, errstr, errstr_size);
            if (rc || out->n > had || from == low)
                break;
            end = from;
            window = window > INT64_MAX / 8 ? INT64_MAX : window * 8;
        }
    }
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    pthread_mutex_destroy(&reading.lock);
    return rc;
}

void pg_audit_checkpoints_free(pg_audit_checkpoints *c)
{
    free(c->v);
    memset(c, 0, sizeof *c);
}

int pg_audit_anchor_check(const pg_config *cfg, pg_audit *audit, const pg_audit_signing_key *key,
                          const char *topic, int timeout_ms, char *errstr, size_t errstr_size)
{
    pg_audit_public_key pk;
    memcpy(pk.bytes, key->public_key, sizeof pk.bytes);
    rd_kafka_conf_t *conf = s_conf(cfg, errstr, errstr_size);
    if (!conf)
        return PG_ECONFIG;
    pg_audit_checkpoints cps = {0};
    int rc = pg_audit_checkpoints_read(conf, topic, &pk, S_START_TAIL, timeout_ms, &cps, errstr,
                                       errstr_size);
    if (rc == PG_ENOTFOUND) {
        pg_log(PG_LOG_INFO,
               "audit: checkpoints topic %s does not exist yet: nothing to check "
               "the log against",
               topic);
        rc = 0;
    } else if (!rc && !cps.n) {
        pg_log(PG_LOG_INFO,
               "audit: no checkpoint of this signing key on %s yet (%zu other records): nothing "
               "to check the log against",
               topic, cps.foreign);
    } else if (!rc) {
        /* One log's checkpoints only go up: the latest is the highest. */
        const pg_audit_checkpoint *last = &cps.v[0];
        for (size_t i = 1; i < cps.n; i++)
            if (cps.v[i].seq > last->seq)
                last = &cps.v[i];
        rc = pg_audit_holds(audit, last, errstr, errstr_size);
        if (rc == 1)
            pg_log(PG_LOG_WARN,
                   "audit: the latest checkpoint on %s holds event %" PRIu64
                   ", before the first one kept here (its file archived elsewhere): not "
                   "checked at start",
                   topic, last->seq);
        else if (!rc)
            pg_log(PG_LOG_INFO,
                   "audit: the log holds the latest checkpoint on %s (event %" PRIu64 " of %" PRIu64
                   ")",
                   topic, last->seq, pg_audit_seq(audit));
        rc = rc > 0 ? 0 : rc;
    }
    pg_audit_checkpoints_free(&cps);
    return rc;
}
