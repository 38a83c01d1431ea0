/* pg_producer: canonical updates to Kafka with librdkafka (idempotent, acks=all). */
#include "producer.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polegate/buf.h"
#include "polegate/error.h"

struct pg_producer {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    char *topic;
    char *force;
    pg_buf value; /* reused for every packed update */
    pg_producer_stats stats;
};

/* Settings without which a record could be reordered, duplicated, lost on a leader
 * change, or land on another partition than a Java client would pick. */
static const struct {
    const char *key;
    const char *value;
    const char *also; /* another spelling of the same value, or NULL */
    const char *why;
} s_fixed[] = {
    {"acks", "all", "-1", "a record counts as delivered only once every in-sync replica has it"},
    {"request.required.acks", "all", "-1",
     "a record counts as delivered only once every in-sync replica has it"},
    {"enable.idempotence", "true", NULL,
     "retries must neither duplicate nor reorder the updates of a key"},
    {"partitioner", "murmur2_random", NULL, "keys must map to the partitions Java clients compute"},
};
#define S_NFIXED (sizeof s_fixed / sizeof s_fixed[0])

/* Defaults an operator may override through kafka.properties. */
static const char *const s_defaults[][2] = {
    {"client.id", "polegated"},
    {"linger.ms", "5"},
};

int pg_producer_check_property(const char *key, const char *value, char *errstr, size_t errstr_size)
{
    if (!strcmp(key, "bootstrap.servers") || !strcmp(key, "metadata.broker.list"))
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "set the brokers with kafka.brokers, not '%s'", key);
    for (size_t i = 0; i < S_NFIXED; i++) {
        if (strcmp(key, s_fixed[i].key))
            continue;
        if (!strcmp(value, s_fixed[i].value) ||
            (s_fixed[i].also && !strcmp(value, s_fixed[i].also)))
            return 0;
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "'%s' is fixed to '%s' by polegate (%s) and cannot be '%s'; remove "
                       "it",
                       key, s_fixed[i].value, s_fixed[i].why, value);
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256];
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, key, value, why, sizeof why);
    rd_kafka_conf_destroy(conf);
    if (res != RD_KAFKA_CONF_OK)
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "librdkafka: %s", why);
    return 0;
}

static void s_dr(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    pg_producer *self = opaque;
    if (!rkm->err) {
        self->stats.delivered++;
        return;
    }
    self->stats.failed++;
    pg_log(PG_LOG_ERROR, "kafka: record key %.*s (%s) not delivered to %s: %s", (int)rkm->key_len,
           rkm->key ? (const char *)rkm->key : "", rkm->payload ? "update" : "tombstone",
           self->topic, rd_kafka_err2str(rkm->err));
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
    /* Broker-down and similar errors are retried by librdkafka: they are worth a
     * warning, and only fatal ones stop the producer. */
    pg_log(err == RD_KAFKA_RESP_ERR__FATAL ? PG_LOG_ERROR : PG_LOG_WARN, "kafka: %s: %s",
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

pg_producer *pg_producer_new(const pg_producer_opts *opts, char *errstr, size_t errstr_size)
{
    pg_producer *self = calloc(1, sizeof *self);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!self || !conf) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    self->topic = strdup(opts->topic);
    self->force = strdup(opts->force ? opts->force : "");
    if (!self->topic || !self->force) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    for (size_t i = 0; i < sizeof s_defaults / sizeof s_defaults[0]; i++)
        if (s_set(conf, s_defaults[i][0], s_defaults[i][1], errstr, errstr_size))
            goto err;
    if (s_set(conf, "bootstrap.servers", opts->brokers, errstr, errstr_size))
        goto err;
    for (size_t i = 0; i < opts->property_count; i++) {
        const pg_config_kv *kv = &opts->properties[i];
        if (pg_producer_check_property(kv->key, kv->value, errstr, errstr_size) ||
            s_set(conf, kv->key, kv->value, errstr, errstr_size))
            goto err;
    }
    /* Last, so that nothing above can weaken them. */
    for (size_t i = 0; i < S_NFIXED; i++)
        if (strcmp(s_fixed[i].key, "request.required.acks") &&
            s_set(conf, s_fixed[i].key, s_fixed[i].value, errstr, errstr_size))
            goto err;
    rd_kafka_conf_set_opaque(conf, self);
    rd_kafka_conf_set_dr_msg_cb(conf, s_dr);
    rd_kafka_conf_set_log_cb(conf, s_log_cb);
    rd_kafka_conf_set_error_cb(conf, s_error_cb);

    char why[512];
    self->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!self->rk) {
        pg_errf(PG_EKAFKA, errstr, errstr_size, "kafka: %s", why);
        goto err;
    }
    conf = NULL; /* rd_kafka_new owns it now */
    self->rkt = rd_kafka_topic_new(self->rk, self->topic, NULL);
    if (!self->rkt) {
        pg_errf(PG_EKAFKA, errstr, errstr_size, "kafka: topic %s: %s", self->topic,
                rd_kafka_err2str(rd_kafka_last_error()));
        goto err;
    }
    return self;
err:
    if (conf)
        rd_kafka_conf_destroy(conf);
    pg_producer_destroy(&self);
    return NULL;
}

void pg_producer_destroy(pg_producer **p)
{
    if (!p || !*p)
        return;
    pg_producer *self = *p;
    if (self->rk) {
        /* Records that never reached a broker are reported failed, with their keys,
         * rather than vanishing with the handle. */
        rd_kafka_purge(self->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(self->rk, 0);
        if (self->rkt)
            rd_kafka_topic_destroy(self->rkt);
        rd_kafka_destroy(self->rk);
    }
    pg_buf_free(&self->value);
    free(self->topic);
    free(self->force);
    free(self);
    *p = NULL;
}

/* The pg-marking header: "OFFICIAL-SENSITIVE;P", the ATX spelling of the marking. */
static void s_marking(const pg_marking *m, char *out, size_t size)
{
    const char *c = pg_enum_short(&polegate__pole__v1__classification__descriptor,
                                  m ? (int)m->classification : 0);
    const char *h =
        pg_enum_short(&polegate__pole__v1__handling__descriptor, m ? (int)m->handling : 0);
    snprintf(out, size, "%s;%s", c ? c : "UNSPECIFIED", h ? h : "UNSPECIFIED");
    for (char *s = out; *s; s++)
        if (*s == '_')
            *s = '-';
}

typedef struct s_record {
    const char *type;
    const char *id;
    int operation;
    uint64_t version;
    const pg_origin *origin;
    const pg_marking *marking;
    const ProtobufCMessage *msg;
} s_record;

static rd_kafka_headers_t *s_headers(pg_producer *self, const s_record *r)
{
    char marking[64], version[24];
    const char *op = pg_enum_short(&polegate__pole__v1__operation__descriptor, r->operation);
    const char *force =
        r->origin && r->origin->force && *r->origin->force ? r->origin->force : self->force;
    s_marking(r->marking, marking, sizeof marking);
    snprintf(version, sizeof version, "%" PRIu64, r->version);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(6);
    rd_kafka_header_add(hdrs, PG_HDR_TYPE, -1, r->type, -1);
    rd_kafka_header_add(hdrs, PG_HDR_SCHEMA, -1, PG_SCHEMA_VERSION, -1);
    rd_kafka_header_add(hdrs, PG_HDR_ORIGIN_FORCE, -1, force, -1);
    rd_kafka_header_add(hdrs, PG_HDR_MARKING, -1, marking, -1);
    rd_kafka_header_add(hdrs, PG_HDR_OPERATION, -1, op ? op : "UNSPECIFIED", -1);
    rd_kafka_header_add(hdrs, PG_HDR_VERSION, -1, version, -1);
    return hdrs;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Queue one record; headers become librdkafka's on success. */
static int s_send(pg_producer *self, const char *key, const void *value, size_t len,
                  rd_kafka_headers_t *hdrs, char *errstr, size_t errstr_size)
{
    double deadline = s_now() + 1.0;
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            self->rk, RD_KAFKA_V_RKT(self->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!err) {
            self->stats.produced++;
            return 0;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && s_now() < deadline) {
            rd_kafka_poll(self->rk, 50);
            continue;
        }
        rd_kafka_headers_destroy(hdrs);
        return pg_errf(err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? PG_ERETRY : PG_EKAFKA, errstr,
                       errstr_size, "kafka: record key %s not queued: %s", key,
                       rd_kafka_err2str(err));
    }
}

static int s_produce(pg_producer *self, const s_record *r, char *errstr, size_t errstr_size)
{
    if (!r->id || !*r->id)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "id: an update without an id");
    char why[PG_ERRSTR_SIZE];
    if (pg_producer_fatal(self, why, sizeof why))
        return pg_errf(PG_EKAFKA, errstr, errstr_size, "kafka: %s", why);

    size_t len = protobuf_c_message_get_packed_size(r->msg);
    pg_buf_reset(&self->value);
    if (pg_buf_reserve(&self->value, len + 1))
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    protobuf_c_message_pack(r->msg, self->value.data);
    self->value.len = len;

    rd_kafka_headers_t *hdrs = s_headers(self, r);
    rd_kafka_headers_t *tomb_hdrs = NULL;
    if (r->operation == POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE)
        tomb_hdrs = rd_kafka_headers_copy(hdrs);
    int rc = s_send(self, r->id, self->value.data, len, hdrs, errstr, errstr_size);
    if (rc) {
        if (tomb_hdrs)
            rd_kafka_headers_destroy(tomb_hdrs);
        return rc;
    }
    /* Same key, so the same partition, after the delete: a consumer reading the whole
     * log sees the delete, and compaction later drops the key altogether. */
    if (tomb_hdrs)
        return s_send(self, r->id, NULL, 0, tomb_hdrs, errstr, errstr_size);
    return 0;
}

int pg_producer_entity(pg_producer *self, const pg_entity_update *u, char *errstr,
                       size_t errstr_size)
{
    s_record r = {PG_TYPE_ENTITY, u->id,      (int)u->operation, u->version,
                  u->origin,      u->marking, &u->base};
    return s_produce(self, &r, errstr, errstr_size);
}

int pg_producer_link(pg_producer *self, const pg_link_update *u, char *errstr, size_t errstr_size)
{
    s_record r = {PG_TYPE_LINK, u->id,      (int)u->operation, u->version,
                  u->origin,    u->marking, &u->base};
    return s_produce(self, &r, errstr, errstr_size);
}

int pg_producer_change(pg_producer *self, const pg_change *change, char *errstr, size_t errstr_size)
{
    if (change->type == PG_CHANGE_ENTITY && change->entity)
        return pg_producer_entity(self, change->entity, errstr, errstr_size);
    if (change->type == PG_CHANGE_LINK && change->link)
        return pg_producer_link(self, change->link, errstr, errstr_size);
    return pg_errf(PG_EINTERNAL, errstr, errstr_size, "change: neither entity nor link");
}

int pg_producer_poll(pg_producer *self, int timeout_ms)
{
    return rd_kafka_poll(self->rk, timeout_ms);
}

uint64_t pg_producer_in_flight(const pg_producer *self)
{
    return self->stats.produced - self->stats.delivered - self->stats.failed;
}

int pg_producer_flush(pg_producer *self, int timeout_ms, char *errstr, size_t errstr_size)
{
    rd_kafka_flush(self->rk, timeout_ms);
    /* Our own count, not rd_kafka_outq_len(): that one also counts protocol requests. */
    uint64_t left = pg_producer_in_flight(self);
    if (left)
        return pg_errf(PG_ETIMEOUT, errstr, errstr_size,
                       "%" PRIu64 " records still in flight after %d ms", left, timeout_ms);
    return 0;
}

void pg_producer_get_stats(const pg_producer *self, pg_producer_stats *out)
{
    *out = self->stats;
}

int pg_producer_fatal(pg_producer *self, char *errstr, size_t errstr_size)
{
    char why[256];
    rd_kafka_resp_err_t err = rd_kafka_fatal_error(self->rk, why, sizeof why);
    if (!err)
        return 0;
    pg_errf(PG_EKAFKA, errstr, errstr_size, "fatal producer error %s: %s", rd_kafka_err2name(err),
            why);
    return 1;
}

const char *pg_producer_topic(const pg_producer *self)
{
    return self->topic;
}
