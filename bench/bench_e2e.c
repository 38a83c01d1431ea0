/* bench_e2e: polegated's end-to-end throughput and the raw librdkafka producer rate on
 * the same broker with the same records, for bench/bench_e2e.sh to compare. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench_util.h"

#define S_ERRSTR 512

static void s_usage(void)
{
    fprintf(stderr,
            "usage: bench_e2e send --endpoint E --brokers B --topic T [--window N] FILE\n"
            "       bench_e2e raw --brokers B --from T --to T2\n"
            "       bench_e2e create --brokers B --topic T [--partitions N]\n"
            "\n"
            "send: every line of FILE (one ATX message) to polegated over a ZeroMQ DEALER,\n"
            "      at most N (256) unacknowledged, while reading topic T; stops the clock\n"
            "      when every record the acks announced (their ids, plus --tombstones N)\n"
            "      can be read there.\n"
            "raw:  reads every record of T (untimed), then produces them to T2 with\n"
            "      polegated's producer settings and times it to the last delivery report.\n"
            "create: a topic of N (3) partitions, so that no run times topic creation.\n");
    exit(2);
}

static const char *s_arg(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    if (!dflt) {
        fprintf(stderr, "bench_e2e: %s is required\n", name);
        s_usage();
    }
    return dflt;
}

/* polegated's producer settings (gateway/outbound/publisher.c: fixed ones and defaults). */
static const char *const s_producer_conf[][2] = {
    {"acks", "all"},
    {"enable.idempotence", "true"},
    {"partitioner", "murmur2_random"},
    {"linger.ms", "5"},
    {NULL, NULL},
};
static const char *const s_consumer_conf[][2] = {
    {"group.id", "bench_e2e"}, /* required; nothing is committed */
    {"enable.auto.commit", "false"},
    {"enable.partition.eof", "true"},
    {NULL, NULL},
};

static rd_kafka_t *s_kafka(rd_kafka_type_t type, const char *brokers,
                           void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *))
{
    char errstr[S_ERRSTR];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *const(*settings)[2] = type == RD_KAFKA_PRODUCER ? s_producer_conf : s_consumer_conf;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr))
        goto err;
    for (size_t i = 0; settings[i][0]; i++)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof errstr))
            goto err;
    if (dr)
        rd_kafka_conf_set_dr_msg_cb(conf, dr);
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (rk)
        return rk;
err:
    fprintf(stderr, "bench_e2e: %s\n", errstr);
    exit(1);
}

/* Create topic with n partitions (replication 1: the local broker); an existing
 * topic is an error, so each run starts empty. */
static void s_create_topic(rd_kafka_t *rk, const char *topic, int n)
{
    char errstr[S_ERRSTR];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, n, 1, errstr, sizeof errstr);
    if (!nt) {
        fprintf(stderr, "bench_e2e: %s: %s\n", topic, errstr);
        exit(1);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    size_t cnt = 0;
    const rd_kafka_topic_result_t **tr =
        res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
    if (!res || cnt != 1 || rd_kafka_topic_result_error(tr[0])) {
        fprintf(stderr, "bench_e2e: cannot create %s: %s\n", topic,
                !ev        ? "timed out"
                : cnt == 1 ? rd_kafka_topic_result_error_string(tr[0])
                           : rd_kafka_event_error_string(ev));
        exit(1);
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
}

/* Partitions of topic, or 0 while the broker does not know it. */
static int s_partitions(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (md->topic_cnt == 1 && !md->topics[0].err)
            n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return n;
}

/* A consumer on every partition of topic from the beginning (read_committed, the
 * librdkafka default: what a partner sees once polegated's transaction commits). */
static rd_kafka_t *s_reader(const char *brokers, const char *topic)
{
    rd_kafka_t *rk = s_kafka(RD_KAFKA_CONSUMER, brokers, NULL);
    int n = s_partitions(rk, topic);
    if (n == 0) {
        fprintf(stderr, "bench_e2e: topic %s not found\n", topic);
        exit(1);
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return rk;
}

/* Records the reader got within timeout_ms (tombstones count; end-of-partition
 * events do not). */
static int64_t s_count(rd_kafka_t *rk, int timeout_ms)
{
    int64_t n = 0;
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(rk, timeout_ms))) {
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "bench_e2e: %s\n", rd_kafka_message_errstr(m));
            exit(1);
        }
        n += m->err ? 0 : 1;
        rd_kafka_message_destroy(m);
        timeout_ms = 0;
    }
    return n;
}

/* ---------------------------------------------------------------- send */

typedef struct s_lines {
    char *data;
    size_t size;
    size_t *start; /* offsets of the lines in data */
    size_t count;
} s_lines;

static int s_read_lines(const char *path, s_lines *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    out->data = malloc((size_t)size + 1);
    if (!out->data || fread(out->data, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        return -1;
    }
    fclose(f);
    out->size = (size_t)size;
    out->data[size] = '\n';
    size_t cap = 1024;
    out->start = malloc(cap * sizeof *out->start);
    out->count = 0;
    for (size_t at = 0; at < out->size;) {
        char *nl = memchr(out->data + at, '\n', out->size + 1 - at);
        size_t end = (size_t)(nl - out->data);
        if (end > at) {
            if (out->count + 1 >= cap)
                out->start = realloc(out->start, (cap *= 2) * sizeof *out->start);
            out->start[out->count++] = at;
        }
        at = end + 1;
    }
    out->start[out->count] = out->size; /* one past the last line */
    return 0;
}

static size_t s_line_len(const s_lines *l, size_t i)
{
    const char *p = l->data + l->start[i];
    return (size_t)((char *)memchr(p, '\n', l->size + 1 - l->start[i]) - p);
}

/* The records one ack announces (its ids), or -1 with why when not accepted. */
static long s_ack_records(const char *json, size_t len, char *why, size_t why_size)
{
    json_error_t jerr;
    json_t *ack = json_loadb(json, len, 0, &jerr);
    const char *status = ack ? json_string_value(json_object_get(ack, "status")) : NULL;
    long n = -1;
    if (status && !strcmp(status, "accepted")) {
        n = (long)json_array_size(json_object_get(ack, "ids"));
    } else {
        const char *reason = ack ? json_string_value(json_object_get(ack, "reason")) : NULL;
        snprintf(why, why_size, "%s: %s", status ? status : "unreadable ack", reason ? reason : "");
    }
    json_decref(ack);
    return n;
}

static int s_send(int argc, char **argv)
{
    const char *endpoint = s_arg(argc, argv, "--endpoint", NULL);
    const char *brokers = s_arg(argc, argv, "--brokers", NULL);
    const char *topic = s_arg(argc, argv, "--topic", NULL);
    long window = atol(s_arg(argc, argv, "--window", "256"));
    const char *path = argv[argc - 1];
    s_lines lines = {0};
    if (window < 1 || s_read_lines(path, &lines)) {
        fprintf(stderr, "bench_e2e: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, endpoint)) {
        fprintf(stderr, "bench_e2e: %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        return 1;
    }
    rd_kafka_t *rk = s_reader(brokers, topic);
    s_count(rk, 1000); /* connected and at the start before the clock starts */

    size_t sent = 0, acked = 0, rejected = 0;
    int64_t records = 0, seen = 0;
    char why[S_ERRSTR] = "";
    double t0 = pg_bench_now();
    while (acked < lines.count) {
        while (sent < lines.count && (long)(sent - acked) < window) {
            zmq_send(sock, "", 0, ZMQ_SNDMORE);
            if (zmq_send(sock, lines.data + lines.start[sent], s_line_len(&lines, sent), 0) < 0) {
                fprintf(stderr, "bench_e2e: send: %s\n", zmq_strerror(zmq_errno()));
                return 1;
            }
            sent++;
        }
        seen += s_count(rk, 0);
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 30000) <= 0) {
            fprintf(stderr, "bench_e2e: no ack for 30 s (%zu of %zu acked)\n", acked, lines.count);
            return 1;
        }
        zmq_msg_t part;
        zmq_msg_init(&part);
        int more;
        do { /* the empty delimiter, then the ack */
            zmq_msg_recv(&part, sock, 0);
            more = zmq_msg_more(&part);
        } while (more && zmq_msg_size(&part) == 0);
        long n = s_ack_records(zmq_msg_data(&part), zmq_msg_size(&part), why, sizeof why);
        zmq_msg_close(&part);
        if (n < 0)
            rejected++;
        else
            records += n;
        acked++;
    }
    double t_acked = pg_bench_now();
    /* Tombstones: one more record per DELETE; the generated corpus has none, and the
     * ack does not say which ids were deletes, so the script passes --tombstones. */
    records += atol(s_arg(argc, argv, "--tombstones", "0"));
    while ((seen += s_count(rk, 100)) < records) {
        if (pg_bench_now() - t_acked > 120) {
            fprintf(stderr, "bench_e2e: %" PRId64 " of %" PRId64 " records readable after 120 s\n",
                    seen, records);
            return 1;
        }
    }
    double t_readable = pg_bench_now();
    double secs = t_readable - t0;
    printf("e2e messages=%zu rejected=%zu records=%" PRId64 " acked_s=%.3f readable_s=%.3f "
           "msg_per_s=%.0f records_per_s=%.0f\n",
           lines.count, rejected, records, t_acked - t0, secs, (double)lines.count / secs,
           (double)records / secs);
    if (rejected)
        fprintf(stderr, "bench_e2e: %zu messages not accepted (last: %s)\n", rejected, why);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(lines.data);
    free(lines.start);
    return rejected ? 1 : 0;
}

/* ---------------------------------------------------------------- raw */

static uint64_t s_delivered, s_failed;

static void s_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        s_failed++;
    else
        s_delivered++;
}

typedef struct s_record {
    void *key, *value;
    size_t key_len, value_len;
    rd_kafka_headers_t *headers;
} s_record;

/* Every record of topic, from the beginning to the end of each partition. */
static size_t s_read_all(const char *brokers, const char *topic, s_record **out, size_t *bytes)
{
    rd_kafka_t *rk = s_reader(brokers, topic);
    int n = s_partitions(rk, topic);
    size_t count = 0, cap = 1024;
    s_record *recs = malloc(cap * sizeof *recs);
    int at_eof = 0;
    *bytes = 0;
    while (at_eof < n) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            at_eof++;
        } else if (m->err) {
            fprintf(stderr, "bench_e2e: %s\n", rd_kafka_message_errstr(m));
            exit(1);
        } else {
            if (count == cap)
                recs = realloc(recs, (cap *= 2) * sizeof *recs);
            s_record *r = &recs[count++];
            r->key_len = m->key_len;
            r->key = malloc(m->key_len + 1);
            memcpy(r->key, m->key, m->key_len);
            r->value_len = m->payload ? m->len : 0;
            r->value = m->payload ? malloc(m->len + 1) : NULL;
            if (m->payload)
                memcpy(r->value, m->payload, m->len);
            *bytes += r->value_len;
            rd_kafka_message_detach_headers(m, &r->headers);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    *out = recs;
    return count;
}

static int s_raw(int argc, char **argv)
{
    const char *brokers = s_arg(argc, argv, "--brokers", NULL);
    const char *from = s_arg(argc, argv, "--from", NULL);
    const char *to = s_arg(argc, argv, "--to", NULL);
    s_record *recs;
    size_t bytes;
    size_t count = s_read_all(brokers, from, &recs, &bytes);
    if (!count) {
        fprintf(stderr, "bench_e2e: %s has no records\n", from);
        return 1;
    }
    rd_kafka_t *rk = s_kafka(RD_KAFKA_PRODUCER, brokers, s_dr);
    /* The same partitions as polegated's topic, created before the clock starts, as
     * bench_e2e.sh creates polegated's. */
    s_create_topic(rk, to, s_partitions(rk, from));
    /* polegated's producer is connected and has its idempotent producer id before it
     * is timed; so is this one: one untimed record first (not counted). */
    if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(to), RD_KAFKA_V_KEY(recs[0].key, recs[0].key_len),
                          RD_KAFKA_V_VALUE(recs[0].value, recs[0].value_len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) ||
        rd_kafka_flush(rk, 30000) || s_delivered != 1) {
        fprintf(stderr, "bench_e2e: the warm-up record to %s failed\n", to);
        return 1;
    }
    s_delivered = 0;
    double t0 = pg_bench_now();
    for (size_t i = 0; i < count; i++) {
        s_record *r = &recs[i];
        rd_kafka_headers_t *h = r->headers ? rd_kafka_headers_copy(r->headers) : NULL;
        for (;;) {
            rd_kafka_resp_err_t err =
                rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(to), RD_KAFKA_V_KEY(r->key, r->key_len),
                                  RD_KAFKA_V_VALUE(r->value, r->value_len), RD_KAFKA_V_HEADERS(h),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 10);
                continue;
            }
            if (err) {
                fprintf(stderr, "bench_e2e: produce: %s\n", rd_kafka_err2str(err));
                return 1;
            }
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 120000);
    double secs = pg_bench_now() - t0;
    printf("raw records=%zu delivered=%" PRIu64 " failed=%" PRIu64 " avg_value_bytes=%.0f "
           "s=%.3f records_per_s=%.0f\n",
           count, s_delivered, s_failed, (double)bytes / (double)count, secs, (double)count / secs);
    rd_kafka_destroy(rk);
    for (size_t i = 0; i < count; i++) {
        free(recs[i].key);
        free(recs[i].value);
        if (recs[i].headers)
            rd_kafka_headers_destroy(recs[i].headers);
    }
    free(recs);
    return s_failed || s_delivered != count ? 1 : 0;
}

static int s_create(int argc, char **argv)
{
    rd_kafka_t *rk = s_kafka(RD_KAFKA_PRODUCER, s_arg(argc, argv, "--brokers", NULL), NULL);
    s_create_topic(rk, s_arg(argc, argv, "--topic", NULL),
                   atoi(s_arg(argc, argv, "--partitions", "3")));
    rd_kafka_destroy(rk);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        s_usage();
    if (!strcmp(argv[1], "create"))
        return s_create(argc - 1, argv + 1);
    if (!strcmp(argv[1], "send") && argc >= 3)
        return s_send(argc - 1, argv + 1);
    if (!strcmp(argv[1], "raw"))
        return s_raw(argc - 1, argv + 1);
    s_usage();
}
