/* pg_consumer: librdkafka consumer group over the partners' topics, manual commits. */
#include "consumer.h"

#include <errno.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/wire.h"

/* Properties this module sets itself, and producer-only ones the consumer would only
 * warn about. */
static const char *const s_fixed[] = {
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
    "group.id",
    "bootstrap.servers",
    "acks",
    "enable.idempotence",
    "partitioner",
    "linger.ms",
    "queue.buffering.max.ms",
    "transactional.id",
    "compression.type",
    "compression.codec",
    "batch.num.messages",
    "batch.size",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "retries",
    "message.send.max.retries",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "request.required.acks",
};

/* A (topic, partition) done up to next_offset, not yet committed. */
typedef struct s_mark {
    char *topic;
    int32_t partition;
    int64_t next;
    int dirty;
} s_mark;

/* Header and key copies of one polled record, kept with it. */
typedef struct s_strings {
    char type[64], force[16], key[64], agreement[128], version[24];
} s_strings;

/* The lag of one topic, summed over the partitions assigned here. */
typedef struct s_lag {
    char *topic;
    int64_t lag; /* -1: not known */
} s_lag;

struct pg_consumer {
    rd_kafka_t *rk;
    rd_kafka_message_t **held; /* the last poll's records */
    s_strings *strings;        /* and their header copies */
    size_t n_held, cap_held;
    s_mark *marks;
    size_t n_marks, cap_marks;
    int paused;
    s_lag *lags; /* per topic, from librdkafka's last statistics */
    size_t n_lags, cap_lags;
};

static int s_fixed_key(const char *key)
{
    for (size_t i = 0; i < sizeof s_fixed / sizeof s_fixed[0]; i++)
        if (!strcmp(key, s_fixed[i]))
            return 1;
    return 0;
}

static void s_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    pg_log(level <= 3   ? PG_LOG_ERROR
           : level <= 4 ? PG_LOG_WARN
                        : PG_LOG_DEBUG,
           "kafka consumer: %s: %s", fac, buf);
}

/* Commit what is marked for the partitions of parts (all when NULL), synchronously. */
static void s_commit_marked(pg_consumer *self, const rd_kafka_topic_partition_list_t *parts,
                            int sync)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)self->n_marks);
    for (size_t i = 0; i < self->n_marks; i++) {
        s_mark *m = &self->marks[i];
        if (!m->dirty ||
            (parts && !rd_kafka_topic_partition_list_find(parts, m->topic, m->partition)))
            continue;
        rd_kafka_topic_partition_list_add(list, m->topic, m->partition)->offset = m->next;
        m->dirty = 0;
    }
    if (list->cnt) {
        rd_kafka_resp_err_t err = rd_kafka_commit(self->rk, list, !sync);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            pg_log(PG_LOG_WARN, "kafka consumer: commit: %s", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* Forget marks of revoked partitions: another instance owns them now. */
static void s_forget(pg_consumer *self, const rd_kafka_topic_partition_list_t *parts)
{
    size_t k = 0;
    for (size_t i = 0; i < self->n_marks; i++) {
        s_mark *m = &self->marks[i];
        if (rd_kafka_topic_partition_list_find(parts, m->topic, m->partition)) {
            free(m->topic);
            continue;
        }
        self->marks[k++] = *m;
    }
    self->n_marks = k;
}

static void s_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    pg_consumer *c = opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        pg_log(PG_LOG_INFO, "kafka consumer: %d partition(s) assigned", parts->cnt);
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        /* a paused consumer stays paused for what it is given now */
        if (c->paused)
            rd_kafka_pause_partitions(rk, parts);
        return;
    }
    /* Revoked (or lost): commit what is done for them while they are still ours. */
    pg_log(PG_LOG_INFO, "kafka consumer: %d partition(s) revoked", parts->cnt);
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && !rd_kafka_assignment_lost(rk))
        s_commit_marked(c, parts, 1);
    s_forget(c, parts);
    if (cooperative)
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
    else
        rd_kafka_assign(rk, NULL);
}

/* An integer member of a statistics object; -1 when absent. */
static int64_t s_stat(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* librdkafka's statistics (statistics.interval.ms), served on the thread that polls:
 * keep each topic's lag over the partitions assigned to this member. A partition's lag
 * runs from the group's committed offset (what the RMS has stored) to the last stable
 * offset; with no commit yet, from where it reads now, or from the start of the
 * partition (auto.offset.reset=earliest). */
static int s_stats_cb(rd_kafka_t *rk, char *text, size_t len, void *opaque)
{
    (void)rk;
    pg_consumer *self = opaque;
    json_t *root = json_loadb(text, len, 0, NULL), *topics = json_object_get(root, "topics");
    for (size_t i = 0; i < self->n_lags; i++)
        free(self->lags[i].topic);
    self->n_lags = 0;
    const char *name;
    json_t *topic;
    json_object_foreach(topics, name, topic)
    {
        int64_t lag = 0;
        int assigned = 0;
        const char *pid;
        json_t *part;
        json_object_foreach(json_object_get(topic, "partitions"), pid, part)
        {
            const char *state = json_string_value(json_object_get(part, "fetch_state"));
            if (!strcmp(pid, "-1") || !state || !strcmp(state, "none"))
                continue; /* not assigned to this member */
            assigned = 1;
            int64_t end = s_stat(part, "ls_offset"), from = s_stat(part, "committed_offset");
            if (from < 0)
                from = s_stat(part, "app_offset");
            if (from < 0)
                from = s_stat(part, "lo_offset");
            if (lag >= 0 && end >= 0 && from >= 0)
                lag += end > from ? end - from : 0;
            else
                lag = -1;
        }
        if (!assigned ||
            pg_grow((void **)&self->lags, &self->cap_lags, self->n_lags + 1, sizeof *self->lags))
            continue;
        self->lags[self->n_lags].topic = strdup(name);
        self->lags[self->n_lags].lag = lag;
        if (self->lags[self->n_lags].topic)
            self->n_lags++;
    }
    json_decref(root);
    return 0; /* librdkafka frees text */
}

static int s_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errstr,
                 size_t errstr_size)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK)
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "kafka consumer: %s: %s", key, why);
    return 0;
}

pg_consumer *pg_consumer_new(const pg_consumer_opts *opts, char *errstr, size_t errstr_size)
{
    pg_consumer *c = calloc(1, sizeof *c);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!c || !conf) {
        free(c);
        if (conf)
            rd_kafka_conf_destroy(conf);
        pg_errf(PG_ENOMEM, errstr, errstr_size, "kafka consumer: out of memory");
        return NULL;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < opts->property_count; i++)
        if (!s_fixed_key(opts->properties[i].key))
            rc = s_set(conf, opts->properties[i].key, opts->properties[i].value, errstr,
                       errstr_size);
    if (rc || s_set(conf, "bootstrap.servers", opts->brokers, errstr, errstr_size) ||
        s_set(conf, "group.id", opts->group_id, errstr, errstr_size) ||
        s_set(conf, "enable.auto.commit", "false", errstr, errstr_size) ||
        s_set(conf, "enable.auto.offset.store", "false", errstr, errstr_size) ||
        s_set(conf, "isolation.level", "read_committed", errstr, errstr_size) ||
        s_set(conf, "auto.offset.reset", "earliest", errstr, errstr_size) ||
        s_set(conf, "statistics.interval.ms", "1000", errstr, errstr_size) ||
        (opts->instance_id &&
         s_set(conf, "group.instance.id", opts->instance_id, errstr, errstr_size))) {
        rd_kafka_conf_destroy(conf);
        free(c);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, s_log_cb);
    rd_kafka_conf_set_rebalance_cb(conf, s_rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, s_stats_cb);
    rd_kafka_conf_set_opaque(conf, c);
    char why[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        free(c);
        pg_errf(PG_EKAFKA, errstr, errstr_size, "kafka consumer: %s", why);
        return NULL;
    }
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new((int)opts->topic_count);
    for (size_t i = 0; i < opts->topic_count; i++)
        rd_kafka_topic_partition_list_add(topics, opts->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        pg_errf(PG_EKAFKA, errstr, errstr_size, "kafka consumer: subscribe: %s",
                rd_kafka_err2str(err));
        pg_consumer_destroy(&c);
        return NULL;
    }
    return c;
}

void pg_consumer_release(pg_consumer *self)
{
    for (size_t i = 0; i < self->n_held; i++)
        rd_kafka_message_destroy(self->held[i]);
    self->n_held = 0;
}

void pg_consumer_destroy(pg_consumer **p)
{
    if (!p || !*p)
        return;
    pg_consumer *c = *p;
    if (c->rk) {
        pg_consumer_release(c);
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    for (size_t i = 0; i < c->n_marks; i++)
        free(c->marks[i].topic);
    free(c->marks);
    for (size_t i = 0; i < c->n_lags; i++)
        free(c->lags[i].topic);
    free(c->lags);
    free(c->held);
    free(c->strings);
    free(c);
    *p = NULL;
}

/* The value of header name as a NUL-terminated string in the message's own memory is
 * not guaranteed: copy it into buf. NULL when absent; NULL with *overlong set to name
 * (the first such) when there but too long for buf, so that no check of the header is
 * skipped as if it were absent. */
static const char *s_header(rd_kafka_message_t *m, const char *name, char *buf, size_t size,
                            const char **overlong)
{
    rd_kafka_headers_t *hdrs;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &hdrs) || rd_kafka_header_get_last(hdrs, name, &v, &n) || !v)
        return NULL;
    if (n >= size) {
        if (!*overlong)
            *overlong = name;
        return NULL;
    }
    memcpy(buf, v, n);
    buf[n] = 0;
    return buf;
}

int pg_consumer_poll(pg_consumer *self, pg_consumer_record *out, size_t max, int timeout_ms,
                     char *errstr, size_t errstr_size)
{
    pg_consumer_release(self);
    if (self->cap_held < max) {
        rd_kafka_message_t **h = realloc(self->held, max * sizeof *h);
        if (h)
            self->held = h;
        s_strings *st = h ? realloc(self->strings, max * sizeof *st) : NULL;
        if (!st)
            return pg_errf(PG_ENOMEM, errstr, errstr_size, "kafka consumer: out of memory");
        self->strings = st;
        self->cap_held = max;
    }
    size_t n = 0;
    int wait = timeout_ms;
    while (n < max) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(self->rk, wait);
        wait = 0;
        if (!m)
            break;
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                char why[512];
                rd_kafka_fatal_error(self->rk, why, sizeof why);
                rd_kafka_message_destroy(m);
                return pg_errf(PG_EKAFKA, errstr, errstr_size, "kafka consumer: %s", why);
            }
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                pg_log(PG_LOG_WARN, "kafka consumer: %s [%d]: %s",
                       m->rkt ? rd_kafka_topic_name(m->rkt) : "-", (int)m->partition,
                       rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        self->held[n] = m;
        s_strings *s = &self->strings[n];
        pg_consumer_record *r = &out[n++];
        self->n_held = n;
        r->topic = rd_kafka_topic_name(m->rkt);
        r->partition = m->partition;
        r->offset = m->offset;
        r->value = m->payload;
        r->len = m->payload ? m->len : 0;
        r->overlong = NULL;
        r->type = s_header(m, PG_HDR_TYPE, s->type, sizeof s->type, &r->overlong);
        r->force = s_header(m, PG_HDR_ORIGIN_FORCE, s->force, sizeof s->force, &r->overlong);
        r->agreement =
            s_header(m, PG_HDR_AGREEMENT, s->agreement, sizeof s->agreement, &r->overlong);
        const char *too_long = NULL; /* a version that does not fit is none */
        const char *v = s_header(m, PG_HDR_VERSION, s->version, sizeof s->version, &too_long);
        r->version = 0;
        if (v && *v && strspn(v, "0123456789") == strlen(v)) {
            errno = 0;
            unsigned long long x = strtoull(v, NULL, 10);
            r->version = errno ? 0 : (uint64_t)x;
        }
        r->key = NULL;
        if (m->key && m->key_len < sizeof s->key) {
            memcpy(s->key, m->key, m->key_len);
            s->key[m->key_len] = 0;
            r->key = s->key;
        }
    }
    self->n_held = n;
    return (int)n;
}

int pg_consumer_pause(pg_consumer *self, int pause)
{
    if (self->paused == !!pause)
        return 0;
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(self->rk, &parts);
    if (!err)
        err = pause ? rd_kafka_pause_partitions(self->rk, parts)
                    : rd_kafka_resume_partitions(self->rk, parts);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        pg_log(PG_LOG_WARN, "kafka consumer: %s: %s", pause ? "pause" : "resume",
               rd_kafka_err2str(err));
        return PG_EKAFKA;
    }
    self->paused = !!pause;
    return 0;
}

int pg_consumer_paused(const pg_consumer *self)
{
    return self->paused;
}

int pg_consumer_mark(pg_consumer *self, const char *topic, int32_t partition, int64_t next_offset)
{
    for (size_t i = 0; i < self->n_marks; i++) {
        s_mark *m = &self->marks[i];
        if (m->partition == partition && !strcmp(m->topic, topic)) {
            if (next_offset > m->next) {
                m->next = next_offset;
                m->dirty = 1;
            }
            return 0;
        }
    }
    if (pg_grow((void **)&self->marks, &self->cap_marks, self->n_marks + 1, sizeof *self->marks))
        return PG_ENOMEM;
    char *t = strdup(topic);
    if (!t)
        return PG_ENOMEM;
    self->marks[self->n_marks++] =
        (s_mark){.topic = t, .partition = partition, .next = next_offset, .dirty = 1};
    return 0;
}

int pg_consumer_commit(pg_consumer *self, int sync, char *errstr, size_t errstr_size)
{
    (void)errstr, (void)errstr_size;
    s_commit_marked(self, NULL, sync);
    return 0;
}

int pg_consumer_lag(pg_consumer *self, void (*fn)(void *ud, const char *topic, int64_t lag),
                    void *ud)
{
    char *member = rd_kafka_memberid(self->rk);
    int joined = member && *member;
    if (member)
        rd_kafka_mem_free(self->rk, member);
    for (size_t i = 0; i < self->n_lags; i++)
        fn(ud, self->lags[i].topic, self->lags[i].lag);
    return joined;
}
