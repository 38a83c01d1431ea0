/* bench_partner: the partner direction's throughput: canonical updates consumed from a
 * partner topic -> native messages acknowledged by an RMS stand-in, through the daemon's
 * partner thread (consumer group, version checks, partner ledger, compose, encode,
 * import queue with a durable commit per batch, the audit log, ZeroMQ delivery), next
 * to a baseline measured in the same run: a plain librdkafka consumer reading the same
 * records and nothing else. Kafka is librdkafka's mock cluster (in process), so that
 * the figures are the gateway's, not a broker's.
 *
 * usage: bench_partner [MESSAGES] [SEED]   (ATX corpus messages, default 10000; the
 * mock cluster keeps a bounded log per partition, so much larger runs lose records) */
#include <dirent.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "audit.h"
#include "bench_util.h"
#include "config.h"
#include "corpus.h"
#include "ledger.h"
#include "log.h"
#include "partner.h"
#include "partner_service.h"
#include "polegate/adapter.h"
#include "polegate/error.h"
#include "polegate/wire.h"
#include "rms_delivery.h"
#include "store.h"

#define S_TOPIC "polegate.esx.mer.pole.v1"

static char e[PG_ERRSTR_SIZE];

static void s_die(const char *what)
{
    fprintf(stderr, "bench_partner: %s: %s\n", what, e);
    exit(1);
}

/* ------------------------------------------------------------ the partner's feed */

typedef struct s_feed {
    rd_kafka_t *prod;
    size_t failed; /* delivery reports with an error */
    pg_store *store;
    pg_ledger *ledger;
    size_t records;
} s_feed;

static void s_produce(s_feed *f, const ProtobufCMessage *m, const char *type, const char *key)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *v = malloc(len ? len : 1);
    protobuf_c_message_pack(m, v);
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, PG_HDR_TYPE, -1, type, -1);
    rd_kafka_header_add(h, PG_HDR_ORIGIN_FORCE, -1, "ESX", -1);
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(f->prod, RD_KAFKA_V_TOPIC(S_TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE(v, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                              RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(f->prod, 10);
            continue;
        }
        if (err) {
            snprintf(e, sizeof e, "%s", rd_kafka_err2str(err));
            s_die("produce");
        }
        break;
    }
    f->records++;
}

static void s_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    s_feed *f = opaque;
    if (m->err && !f->failed++)
        fprintf(stderr, "bench_partner: produce: %s\n", rd_kafka_err2str(m->err));
}

/* Each corpus message through ESX's ledger, and what it publishes onto the topic. */
static int s_one(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_feed *f = arg;
    (void)pos;
    pg_changeset *in = pg_changeset_new(), *out = pg_changeset_new();
    if (pg_adapter_athena.decode(NULL, msg, len, in, e, sizeof e))
        s_die("corpus decode");
    pg_store_txn *txn = pg_store_begin(f->store, 1, e, sizeof e);
    pg_ledger_result res;
    if (!txn || pg_ledger_apply(f->ledger, txn, in, out, &res, e, sizeof e) ||
        pg_store_commit(&txn, e, sizeof e))
        s_die("sender ledger");
    for (size_t i = 0; i < out->count; i++) {
        const pg_change *c = &out->changes[i];
        if (c->type == PG_CHANGE_ENTITY)
            s_produce(f, &c->entity->base, PG_TYPE_ENTITY, c->entity->id);
        else
            s_produce(f, &c->link->base, PG_TYPE_LINK, c->link->id);
    }
    pg_changeset_destroy(&in);
    pg_changeset_destroy(&out);
    return 0;
}

/* ------------------------------------------------------------ the RMS stand-in */

typedef struct s_rms {
    void *ctx;
    char endpoint[128];
    pthread_t thread;
    atomic_int stop;
    atomic_size_t messages, bytes;
} s_rms;

static void *s_rms_main(void *arg)
{
    s_rms *r = arg;
    void *sock = zmq_socket(r->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(sock, r->endpoint))
        return NULL;
    static const char ack[] = "{\"status\":\"stored\"}";
    while (!atomic_load(&r->stop)) {
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t ident, id, body;
        zmq_msg_init(&ident), zmq_msg_init(&id), zmq_msg_init(&body);
        zmq_msg_recv(&ident, sock, 0);
        zmq_msg_recv(&id, sock, 0);
        zmq_msg_recv(&body, sock, 0);
        atomic_fetch_add(&r->bytes, zmq_msg_size(&body));
        atomic_fetch_add(&r->messages, 1);
        zmq_send(sock, zmq_msg_data(&ident), zmq_msg_size(&ident), ZMQ_SNDMORE);
        zmq_send(sock, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
        zmq_send(sock, ack, sizeof ack - 1, 0);
        zmq_msg_close(&ident), zmq_msg_close(&id), zmq_msg_close(&body);
    }
    zmq_close(sock);
    return NULL;
}

/* ------------------------------------------------------------ the runs */

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The baseline: every record of the topic read by a plain consumer group member. */
static double s_raw_consume(const char *brokers, size_t records)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256], group[64];
    static int runs;
    snprintf(group, sizeof group, "bench-raw-%d-%d", getpid(), runs++);
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof why);
    rd_kafka_conf_set(conf, "group.id", group, why, sizeof why);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", why, sizeof why);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof why);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, S_TOPIC, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    size_t n = 0;
    double start = 0, last = pg_bench_now();
    while (n < records) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m && pg_bench_now() - last > 30) {
            snprintf(e, sizeof e, "%zu of %zu records after 30 s without one", n, records);
            s_die("baseline consumer");
        }
        if (!m)
            continue;
        last = pg_bench_now();
        if (!m->err) {
            if (!n)
                start = pg_bench_now(); /* from the first record: group join is not the work */
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    double secs = pg_bench_now() - start;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return secs;
}

/* CPU seconds so far of this process's thread named name (pg_partner_service names
 * its thread "pg-partner"), from /proc's schedstat: on a shared machine the wall time
 * counts the other users' load, this does not. -1 when not found. */
static double s_thread_cpu(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    double secs = -1;
    for (struct dirent *t; d && secs < 0 && (t = readdir(d));) {
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", t->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int got = fgets(comm, sizeof comm, f) != NULL;
        fclose(f);
        comm[strcspn(comm, "\n")] = 0;
        if (!got || strcmp(comm, name))
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", t->d_name);
        unsigned long long ns;
        if ((f = fopen(path, "r")) && fscanf(f, "%llu", &ns) == 1)
            secs = (double)ns / 1e9;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return secs;
}

typedef struct s_run {
    double seconds, cpu;
    pg_partner_stats ps;
    size_t rms_messages, rms_bytes;
} s_run;

static s_run s_partner(const char *brokers, size_t records, const char *adapter, const char *force)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/bench-partner-XXXXXX");
    if (!mkdtemp(dir))
        s_die("mkdtemp");
    s_rms rms = {.ctx = zmq_ctx_new()};
    snprintf(rms.endpoint, sizeof rms.endpoint, "ipc://%s/rms", dir);
    pthread_create(&rms.thread, NULL, s_rms_main, &rms);
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "force: {code: %s}\nadapter: {name: %s}\n"
             "intake: {endpoint: 'tcp://127.0.0.1:1'}\n"
             "curve: {insecure: true}\n"
             "store: {path: '%s/store'}\nkafka: {brokers: '%s'}\n"
             "delivery: {transport: zmq, endpoint: '%s', window: 64, group_id: bench-%s-%d}\n"
             "policy:\n  version: B1\n  agreements: [{name: ISA, description: bench}]\n"
             "  destinations:\n    - {name: esx, kind: force, force: ESX, topic: back, "
             "agreement: ISA, max_classification: OFFICIAL-SENSITIVE, kinds: all}\n"
             "  partners:\n    - {force: ESX, topic: %s, agreement: ISA}\n",
             force, adapter, dir, brokers, rms.endpoint, adapter, getpid(), S_TOPIC);
    pg_config *cfg = pg_config_parse("bench.yaml", yaml, strlen(yaml), e, sizeof e);
    if (!cfg)
        s_die("config");
    pg_store *st = pg_store_new(cfg->store_path, 0, e, sizeof e);
    if (!st)
        s_die("store");
    /* the audit log as polegated keeps it (HMAC chain, fdatasync per batch): every
     * record taken is an event written before its commit */
    char keypath[96];
    snprintf(keypath, sizeof keypath, "%s/audit-hmac.key", dir);
    pg_audit_key key;
    if (pg_audit_keygen(dir, e, sizeof e) || pg_audit_key_load(keypath, &key, e, sizeof e))
        s_die("audit key");
    pg_audit_options ao = {.sync_every = cfg->audit_sync_every, .key = &key};
    pg_audit *audit = pg_audit_new(cfg->audit_path, &ao, e, sizeof e);
    if (!audit)
        s_die("audit log");
    pg_partner_service *svc;
    if (pg_partner_service_start(cfg, st, audit, &svc, e, sizeof e) || !svc)
        s_die("partner service");
    s_run r = {0};
    double start = 0, begun = pg_bench_now();
    for (;;) {
        usleep(start ? 2000 : 200);
        pg_partner_service_stats(svc, &r.ps);
        if (pg_bench_now() - begun > 300) {
            snprintf(e, sizeof e, "%" PRIu64 " of %zu records after 300 s", r.ps.records, records);
            s_die("partner");
        }
        /* from the first record polled: the first take's work is the run's too */
        if (!start && pg_partner_service_polled(svc))
            start = pg_bench_now();
        if (r.ps.records >= records && r.ps.stored + r.ps.rms_rejected >= r.ps.composed)
            break;
    }
    r.seconds = pg_bench_now() - start;
    r.cpu = s_thread_cpu("pg-partner");
    pg_partner_service_stop(&svc, 1000);
    r.rms_messages = atomic_load(&rms.messages);
    r.rms_bytes = atomic_load(&rms.bytes);
    atomic_store(&rms.stop, 1);
    pthread_join(rms.thread, NULL);
    zmq_ctx_term(rms.ctx);
    pg_audit_destroy(&audit);
    pg_store_destroy(&st);
    pg_config_destroy(&cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_partner: could not remove %s\n", dir);
    return r;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    pg_log_set_level(PG_LOG_WARN);

    rd_kafka_conf_t *pconf = rd_kafka_conf_new();
    char why[256];
    rd_kafka_conf_set(pconf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(pconf, "linger.ms", "5", why, sizeof why);
    s_feed f = {0};
    rd_kafka_conf_set_dr_msg_cb(pconf, s_dr);
    rd_kafka_conf_set_opaque(pconf, &f);
    f.prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, why, sizeof why);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(f.prod);
    rd_kafka_mock_topic_create(mc, S_TOPIC, 3, 1);
    const char *brokers = rd_kafka_mock_cluster_bootstraps(mc);

    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/bench-partner-src-XXXXXX");
    if (!mkdtemp(dir))
        s_die("mkdtemp");
    f.store = pg_store_new(dir, 0, e, sizeof e);
    pg_store_set_durable(f.store, 0);
    f.ledger = pg_ledger_new(f.store, e, sizeof e);
    pg_buf corpus = PG_BUF_INIT;
    pg_corpus_stats cs;
    if (pg_corpus_atx(n, seed, &corpus, &cs))
        s_die("corpus");
    if (pg_adapter_athena.split(corpus.data, corpus.len, s_one, &f))
        s_die("split");
    if (rd_kafka_flush(f.prod, 60000) || f.failed) {
        snprintf(e, sizeof e, "%zu records not stored", f.failed);
        s_die("the partner topic");
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("bench_partner: %zu ATX messages (seed %" PRIu64 ") -> %zu canonical updates on a "
           "3-partition topic (librdkafka mock cluster)\n",
           n, seed, f.records);

    /* The baseline reads the topic in ~20 ms, so a busy moment of a shared machine
     * moves it much: three runs, the ratio against their median. */
    double runs[3];
    for (size_t i = 0; i < 3; i++)
        runs[i] = s_raw_consume(brokers, f.records);
    qsort(runs, 3, sizeof *runs, s_cmp_double);
    double raw = runs[1];
    printf("  baseline: plain consumer, records only      %8.0f records/s  (median of %.0f, "
           "%.0f, %.0f)\n",
           (double)f.records / raw, (double)f.records / runs[2], (double)f.records / runs[1],
           (double)f.records / runs[0]);
    static const char *const targets[][2] = {{"niche", "MER"}, {"athena", "KNT"}};
    for (size_t i = 0; i < 2; i++) {
        s_run r = s_partner(brokers, f.records, targets[i][0], targets[i][1]);
        printf("  partner -> %s RMS (durable store)       %8.0f records/s  (%.2f s; %zu native "
               "messages acked, %.0f/s, %.1f MiB; %" PRIu64 " batches; partner thread CPU "
               "%.1f us/record)  ratio %.3f\n",
               i ? "ATX" : "NX5", (double)r.ps.records / r.seconds, r.seconds, r.rms_messages,
               (double)r.rms_messages / r.seconds, (double)r.rms_bytes / (1 << 20), r.ps.batches,
               r.cpu * 1e6 / (double)r.ps.records, raw / r.seconds);
    }
    pg_buf_free(&corpus);
    pg_ledger_destroy(&f.ledger);
    pg_store_destroy(&f.store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_partner: could not remove %s\n", dir);
    rd_kafka_destroy(f.prod);
    return 0;
}
