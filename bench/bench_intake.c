/* bench_intake: acknowledged intake over ZeroMQ (decode, ledger, routing, spool, fsync,
 * ack) with one commit per message vs group commit, and without fsync as the ceiling,
 * next to the translate-only rate of the same messages (decode + pack) in the same run;
 * with a broker given, publishing the spool with 1, 16, 256 batches per transaction.
 *
 *   bench_intake [N [STORE_BASE [N_PER_MESSAGE [BROKERS]]]]
 *
 * BENCH_KEEP_STORE=1 keeps the store of each mode under STORE_BASE (for mdb_stat -a). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include <protobuf-c/protobuf-c.h>

#include "bench_util.h"
#include "config.h"
#include "corpus.h"
#include "dlq.h"
#include "intake.h"
#include "ledger.h"
#include "log.h"
#include "polegate/adapter.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "policy.h"
#include "publisher.h"
#include "router.h"
#include "spool.h"
#include "store.h"
#include "wal.h"

/* Requests a client keeps unacknowledged, like an RMS feed with a DEALER socket. */
#define S_WINDOW 256

#define S_POLICY                                                                                   \
    "policy:\n  version: BENCH-1\n  agreements: [{name: ISA-B, description: bench}]\n"             \
    "  destinations:\n    - {name: national, kind: national, topic: bench.pole.v1,\n"              \
    "       agreement: ISA-B, max_classification: OFFICIAL-SENSITIVE, kinds: all}\n"

typedef struct s_mode {
    const char *name;
    int durable;
    size_t group; /* requests per write transaction */
    int wal;      /* groups made durable by the write-ahead log; the store checkpointed */
} s_mode;

typedef struct s_msgs {
    const uint8_t **data;
    size_t *len;
    size_t count, cap;
} s_msgs;

typedef struct s_client {
    const char *endpoint;
    void *ctx;
    const s_msgs *msgs;
    size_t acked, accepted;
} s_client;

static int s_split(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    (void)pos;
    s_msgs *m = arg;
    if (m->count == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->data = realloc(m->data, m->cap * sizeof *m->data);
        m->len = realloc(m->len, m->cap * sizeof *m->len);
        if (!m->data || !m->len)
            return 1;
    }
    m->data[m->count] = msg;
    m->len[m->count++] = len;
    return 0;
}

/* Send every message with at most S_WINDOW unacknowledged; count the acks. */
static void *s_client_run(void *arg)
{
    s_client *c = arg;
    void *sock = zmq_socket(c->ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(sock, c->endpoint);
    size_t sent = 0;
    char buf[4096];
    while (c->acked < c->msgs->count) {
        while (sent < c->msgs->count && sent - c->acked < S_WINDOW) {
            zmq_send(sock, "", 0, ZMQ_SNDMORE);
            zmq_send(sock, c->msgs->data[sent], c->msgs->len[sent], 0);
            sent++;
        }
        int more = 1;
        while (more) {
            int len = zmq_recv(sock, buf, sizeof buf - 1, 0);
            if (len < 0)
                goto out;
            buf[len < (int)sizeof buf - 1 ? len : (int)sizeof buf - 1] = 0;
            size_t sz = sizeof more;
            zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
        }
        c->acked++;
        if (strstr(buf, "\"status\":\"accepted\""))
            c->accepted++;
        else if (c->acked == 1 || getenv("BENCH_SHOW_REJECTED"))
            fprintf(stderr, "bench_intake: %s\n", buf);
    }
out:
    zmq_close(sock);
    return NULL;
}

/* Publish the whole spool with window batches per Kafka transaction; print the rate. */
static void s_publish(pg_store *store, pg_spool *spool, const char *brokers, size_t window)
{
    char why[PG_ERRSTR_SIZE], tid[64];
    pg_spool_stats before;
    pg_spool_stat_now(spool, &before, why, sizeof why);
    snprintf(tid, sizeof tid, "bench-intake-%d-%zu", (int)getpid(), window);
    pg_publisher_opts po = {.brokers = brokers,
                            .transactional_id = tid,
                            .store = store,
                            .spool = spool,
                            .window_batches = window,
                            .window_bytes = (size_t)64 << 20};
    pg_publisher *p = pg_publisher_new(&po, why, sizeof why);
    if (!p) {
        fprintf(stderr, "bench_intake: %s\n", why);
        return;
    }
    double t0 = pg_bench_now();
    pg_spool_stats st = before;
    while (st.batches && pg_bench_now() - t0 < 300) {
        pg_publisher_step(p, why, sizeof why);
        pg_spool_stat_now(spool, &st, why, sizeof why);
    }
    double secs = pg_bench_now() - t0;
    pg_publisher_stats ps;
    pg_publisher_get_stats(p, &ps);
    printf("| %zu | %llu | %llu | %.0f | %.2f s | %llu |\n", window,
           (unsigned long long)before.batches, (unsigned long long)ps.delivered,
           (double)ps.delivered / secs, secs, (unsigned long long)ps.transactions);
    fflush(stdout);
    pg_publisher_destroy(&p);
}

static const char *s_brokers;
static size_t s_window;

/* msg/s of the last s_run, and the CPU time of the intake's thread per message (µs),
 * for the ratios. The CPU figures do not count waiting for the disk or for a core: on
 * a loaded machine they are the steadier comparison of work done. */
static double s_rate, s_cpu_us;
static double s_translate_cpu_us;
/* The write-ahead log mode's recovery after a crash at the end of the run: messages
 * replayed (those acknowledged since the last checkpoint) and the start's time (ms). */
static uint64_t s_replayed;
static double s_replay_ms;

/* The baseline of the same run: what the daemon does for each message before the
 * store (decode to canonical updates, protobuf-pack each into a reused buffer), on
 * this thread, best of three passes over the same messages. msg/s. */
static double s_translate_only(const s_msgs *msgs)
{
    const pg_adapter_ops *ad = pg_adapter_find("atx");
    pg_changeset *cs = pg_changeset_new();
    pg_buf out = PG_BUF_INIT;
    pg_adapter_ctx actx = {0};
    char err[PG_ERRSTR_SIZE];
    double best = 0;
    s_translate_cpu_us = 0;
    for (int round = 0; round < 3 && cs; round++) {
        double t0 = pg_bench_now(), c0 = pg_bench_cpu_now();
        for (size_t i = 0; i < msgs->count; i++) {
            pg_changeset_reset(cs);
            if (ad->decode(&actx, msgs->data[i], msgs->len[i], cs, err, sizeof err))
                continue; /* a dead letter: its cost is the decode's */
            for (size_t k = 0; k < cs->count; k++) {
                const pg_change *ch = &cs->changes[k];
                const ProtobufCMessage *m =
                    ch->type == PG_CHANGE_ENTITY ? &ch->entity->base : &ch->link->base;
                pg_buf_reset(&out);
                if (!pg_buf_reserve(&out, protobuf_c_message_get_packed_size(m)))
                    out.len = protobuf_c_message_pack(m, out.data);
            }
        }
        double rate = (double)msgs->count / (pg_bench_now() - t0);
        double cpu = (pg_bench_cpu_now() - c0) * 1e6 / (double)msgs->count;
        best = rate > best ? rate : best;
        s_translate_cpu_us =
            !s_translate_cpu_us || cpu < s_translate_cpu_us ? cpu : s_translate_cpu_us;
    }
    pg_buf_free(&out);
    pg_changeset_destroy(&cs);
    return best;
}

static void s_print_recovery(void)
{
    printf("recovery (write-ahead log mode, a crash at the end of the run): %llu messages "
           "replayed, the start took %.0f ms\n",
           (unsigned long long)s_replayed, s_replay_ms);
}

static int s_run(const s_mode *mode, const s_msgs *msgs, const char *base)
{
    char dir[512], why[PG_ERRSTR_SIZE];
    snprintf(dir, sizeof dir, "%s/pg-bench-intake-%d", base, (int)getpid());
    pg_bench_rmtree(dir);
    pg_store *store = pg_store_new(dir, (size_t)4 << 30, why, sizeof why);
    if (!store) {
        fprintf(stderr, "bench_intake: %s\n", why);
        return 1;
    }
    pg_store_set_durable(store, mode->durable);
    pg_ledger *ledger = pg_ledger_new(store, why, sizeof why);
    pg_spool *spool = pg_spool_new(store, NULL, why, sizeof why);
    pg_dlq *dlq = pg_dlq_new(store, NULL, why, sizeof why);
    pg_policy *policy = pg_policy_load_string(S_POLICY, strlen(S_POLICY), "ESX", why, sizeof why);
    pg_router *router = policy ? pg_router_new(policy, store, "ESX", why, sizeof why) : NULL;
    char wal_dir[600];
    snprintf(wal_dir, sizeof wal_dir, "%s/%s", dir, PG_WAL_SUBDIR);
    pg_wal *wal = mode->wal ? pg_wal_open(wal_dir, NULL, NULL, why, sizeof why) : NULL;
    if (mode->wal && !wal) {
        fprintf(stderr, "bench_intake: %s\n", why);
        return 1;
    }
    void *ctx = zmq_ctx_new();
    pg_intake_opts o = {.wal = wal,
                        .checkpoint_ms =
                            getenv("BENCH_CHECKPOINT_MS") ? atoi(getenv("BENCH_CHECKPOINT_MS")) : 0,
                        .endpoint = "tcp://127.0.0.1:*",
                        .zmq_ctx = ctx,
                        .adapter = pg_adapter_find("atx"),
                        .force = "ESX",
                        .dlq_topic = "bench.dlq.v1",
                        .group_max = mode->group,
                        .store = store,
                        .ledger = ledger,
                        .router = router,
                        .spool = spool,
                        .dlq = dlq};
    pg_intake *intake =
        router && dlq && spool && ledger ? pg_intake_new(&o, why, sizeof why) : NULL;
    if (!intake) {
        fprintf(stderr, "bench_intake: %s\n", why);
        return 1;
    }
    s_client c = {.endpoint = pg_intake_endpoint(intake), .ctx = ctx, .msgs = msgs};
    pthread_t th;
    double t0 = pg_bench_now(), c0 = pg_bench_cpu_now();
    pthread_create(&th, NULL, s_client_run, &c);
    size_t handled = 0;
    while (handled < msgs->count) {
        int n = pg_intake_poll(intake, 1000, 0, why, sizeof why);
        if (n < 0) {
            fprintf(stderr, "bench_intake: %s\n", why);
            break;
        }
        handled += (size_t)n;
    }
    pthread_join(th, NULL);
    double secs = pg_bench_now() - t0;
    pg_intake_stats st;
    pg_intake_get_stats(intake, &st);
    /* The intake's thread and its decode thread. */
    s_cpu_us =
        ((pg_bench_cpu_now() - c0) * 1e6 + (double)st.decode_cpu_ns / 1e3) / (double)msgs->count;
    if (wal) {
        /* A crash now, and the start after it: what recovery costs is the replay of what
         * was acknowledged since the last checkpoint, at most a checkpoint interval's
         * worth of messages. */
        pg_intake_test_crash(intake);
        pg_intake_destroy(&intake);
        pg_wal_destroy(&wal);
        double r0 = pg_bench_now();
        o.wal = wal = pg_wal_open(wal_dir, NULL, NULL, why, sizeof why);
        intake = wal ? pg_intake_new(&o, why, sizeof why) : NULL;
        if (!intake) {
            fprintf(stderr, "bench_intake: recovery: %s\n", why);
            return 1;
        }
        pg_intake_stats rs;
        pg_intake_get_stats(intake, &rs);
        s_replayed = rs.replayed;
        s_replay_ms = (pg_bench_now() - r0) * 1e3;
    }
    /* The last checkpoint (not timed: every ack was durable before it). */
    if (pg_intake_checkpoint(intake, why, sizeof why))
        fprintf(stderr, "bench_intake: %s\n", why);
    pg_spool_stats ss;
    pg_spool_stat_now(spool, &ss, why, sizeof why);
    s_rate = (double)msgs->count / secs;
    uint64_t syncs = st.commits + st.wal_syncs;
    if (!s_brokers)
        printf("| %s | %zu | %.0f | %.2f s | %.1f | %llu | %llu | %.1f | %llu |\n", mode->name,
               msgs->count, (double)msgs->count / secs, secs, s_cpu_us,
               (unsigned long long)st.commits, (unsigned long long)st.wal_syncs,
               syncs ? (double)msgs->count / (double)syncs : 0.0, (unsigned long long)ss.records);
    fflush(stdout);
    if (s_brokers)
        s_publish(store, spool, s_brokers, s_window);
    else if (c.accepted != msgs->count)
        fprintf(stderr,
                "bench_intake: %zu of %zu accepted (the corpus has invalid ones: dead letters)\n",
                c.accepted, msgs->count);
    pg_intake_destroy(&intake);
    pg_wal_destroy(&wal);
    zmq_ctx_term(ctx);
    pg_router_destroy(&router);
    pg_policy_destroy(&policy);
    pg_dlq_destroy(&dlq);
    pg_spool_destroy(&spool);
    pg_ledger_destroy(&ledger);
    pg_store_destroy(&store);
    if (!getenv("BENCH_KEEP_STORE"))
        pg_bench_rmtree(dir);
    return 0;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 20000;
    const char *base = argc > 2 ? argv[2] : "/tmp";
    size_t per_message = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 2000;
    pg_log_set_level(PG_LOG_ERROR);
    pg_buf corpus = PG_BUF_INIT;
    pg_corpus_stats cst;
    if (pg_corpus_atx(n, 42, &corpus, &cst))
        return 1;
    s_msgs msgs = {0};
    pg_adapter_find("atx")->split(corpus.data, corpus.len, s_split, &msgs);
    s_msgs few = msgs;
    few.count = per_message < msgs.count ? per_message : msgs.count;
    printf("bench_intake: ATX corpus over ZeroMQ (DEALER, %d in flight) through decode, "
           "ledger, routing (1 destination) and the spool; store under %s\n\n",
           S_WINDOW, base);

    const s_mode modes[] = {
        /* with a broker: fill the spool (not timed), then publish it timed */
        {"durable, one store commit per message", 1, 1, 0},
        {"durable, group commit (256), one store commit per group", 1, 256, 0},
        {"no fsync (MDB_NOSYNC), group commit (256), one store commit per group", 0, 256, 0},
        {"durable, group commit (256), write-ahead log, store checkpoints (polegated)", 1, 256, 1},
    };
    int rc = 0;
    if (argc > 4) {
        s_brokers = argv[4];
        printf("\npublishing the spool to %s: batches per Kafka transaction\n\n"
               "| batches per transaction | batches | records | records/s | time | "
               "transactions |\n| --- | --- | --- | --- | --- | --- |\n",
               s_brokers);
        const size_t windows[] = {1, 16, 256};
        for (size_t i = 0; i < 3; i++) {
            s_window = windows[i];
            s_msgs part = msgs;
            part.count = windows[i] == 1 ? few.count : msgs.count;
            rc |= s_run(&modes[2], &part, base);
        }
        return rc;
    }
    printf("| mode | messages | msg/s | time | cpu µs/msg (intake and decode threads) | store "
           "commits | log "
           "syncs | messages per fsync | records spooled |\n| --- | --- | --- | --- | --- | --- "
           "| --- | --- | --- |\n");
    double translate = s_translate_only(&msgs);
    printf("| translate only (decode + protobuf pack, this thread, best of 3) | %zu | %.0f | "
           "| %.1f | | | | |\n",
           msgs.count, translate, s_translate_cpu_us);
    /* For a profile of polegated's mode alone (perf record). */
    if (getenv("BENCH_INTAKE_WAL_ONLY")) {
        rc = s_run(&modes[3], &msgs, base);
        printf("\nratio (this run): durable with the write-ahead log / translate only %.3f "
               "(cpu: %.3f)\n",
               s_rate / translate, s_translate_cpu_us / s_cpu_us);
        s_print_recovery();
        return rc;
    }
    /* A commit per message is slow on a real disk: it gets fewer messages. */
    rc |= s_run(&modes[0], &few, base);
    double one = s_rate;
    rc |= s_run(&modes[1], &msgs, base);
    double group = s_rate, group_cpu = s_cpu_us;
    rc |= s_run(&modes[2], &msgs, base);
    double nosync = s_rate;
    rc |= s_run(&modes[3], &msgs, base);
    double wal = s_rate, wal_cpu = s_cpu_us;
    printf("\nratios (this run): durable with the write-ahead log / translate only %.3f (target "
           ">= 0.5); a store commit per group / translate only %.3f; no fsync / translate only "
           "%.3f; write-ahead log / a store commit per group %.2f; group commit / one commit "
           "per message %.1f\ncpu per message (this run): translate only / write-ahead log %.3f; "
           "translate only / a store commit per group %.3f\n",
           wal / translate, group / translate, nosync / translate, wal / group, group / one,
           s_translate_cpu_us / wal_cpu, s_translate_cpu_us / group_cpu);
    s_print_recovery();
    free(msgs.data);
    free(msgs.len);
    pg_buf_free(&corpus);
    return rc;
}
