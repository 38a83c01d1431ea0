/* fault_load: the record feed of the fault tests: ATX/2 PERSON messages to a polegated
 * intake over a DEALER socket, each sent until it gets a final ack, with every ack
 * logged so that a test can compare what was acknowledged with what reached Kafka.
 *
 *   fault_load --to ENDPOINT --count N [--entities E] [--force ESX] [--invalid-every K]
 *              [--window W] [--resend-ms MS] [--timeout-s S] --ack-log FILE
 *
 * Message i (0-based) is entity i % E ("P" and 10 digits) at revision i / E + 1, so
 * an entity's revisions are E messages apart; with W <= E a revision is only sent once
 * the one before it has its final ack, which keeps each entity's order whatever is
 * resent. Every K-th message (i % K == K - 1) is invalid (revision 0).
 *
 * A message is sent again when no ack came within MS (the daemon was killed, say) and,
 * after a short back-off, when the ack said "retry". The ack log has one line per final
 * ack: "<i> accepted <native id> <revision> <stale>" or "<i> rejected <dead letter id>
 * <message id>". At the end one JSON line of counters goes to stdout. Exit 0 when every
 * message got a final ack, 1 on timeout, 2 on usage errors. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

typedef struct s_msg {
    int64_t sent_ms;  /* last send; 0: not in flight */
    int64_t retry_at; /* "retry" answered: not before then */
    int done;
} s_msg;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_message(char *out, size_t size, long i, long entities, long invalid_every,
                     const char *force, char *mid, size_t midsize)
{
    long entity = i % entities, revision = i / entities + 1;
    if (invalid_every > 0 && i % invalid_every == invalid_every - 1)
        revision = 0;
    snprintf(mid, midsize, "00000000-0000-4000-8000-%012ld", i);
    return snprintf(out, size,
                    "{\"header\":{\"schema\":\"atx/2\",\"messageId\":\"%s\",\"sentAt\":"
                    "\"2026-03-29T06:30:00.000+00:00\",\"system\":\"ATHENA\",\"orgUnit\":\"%s/"
                    "CID/COLCHESTER\"},\"record\":{\"type\":\"PERSON\",\"id\":\"P%010ld\","
                    "\"revision\":%ld,\"action\":\"UPSERT\",\"modifiedAt\":\"2026-03-29T07:13:"
                    "00.000+01:00\",\"marking\":{\"classification\":\"OFFICIAL\",\"handling\":"
                    "\"P\",\"caveat\":null},\"retention\":{\"mopiGroup\":2,\"reviewDate\":"
                    "\"2036-03-29\"},\"body\":{\"surname\":\"Smith-%ld\",\"forenames\":["
                    "\"John\"]}},\"links\":[]}",
                    mid, force, entity + 1, revision, revision);
}

static void s_usage(void)
{
    fprintf(stderr, "usage: fault_load --to ENDPOINT --count N [--entities E] [--force ESX] "
                    "[--invalid-every K] [--window W] [--resend-ms MS] [--timeout-s S] "
                    "--ack-log FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"to", required_argument, NULL, 't'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"entities", required_argument, NULL, 'e'},
                                         {"force", required_argument, NULL, 'f'},
                                         {"invalid-every", required_argument, NULL, 'i'},
                                         {"window", required_argument, NULL, 'w'},
                                         {"resend-ms", required_argument, NULL, 'r'},
                                         {"timeout-s", required_argument, NULL, 's'},
                                         {"ack-log", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    const char *to = NULL, *force = "ESX", *ack_path = NULL;
    long count = 0, entities = 0, invalid_every = 0, window = 200, resend_ms = 3000,
         timeout_s = 300;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            to = optarg;
            break;
        case 'n':
            count = atol(optarg);
            break;
        case 'e':
            entities = atol(optarg);
            break;
        case 'f':
            force = optarg;
            break;
        case 'i':
            invalid_every = atol(optarg);
            break;
        case 'w':
            window = atol(optarg);
            break;
        case 'r':
            resend_ms = atol(optarg);
            break;
        case 's':
            timeout_s = atol(optarg);
            break;
        case 'a':
            ack_path = optarg;
            break;
        default:
            s_usage();
        }
    }
    if (!to || count <= 0 || !ack_path || window <= 0)
        s_usage();
    if (entities <= 0)
        entities = count;
    if (window > entities)
        window = entities;
    FILE *log = fopen(ack_path, "w");
    s_msg *msgs = calloc((size_t)count, sizeof *msgs);
    if (!log || !msgs) {
        perror("fault_load");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, hwm = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_connect(sock, to)) {
        fprintf(stderr, "fault_load: connect %s: %s\n", to, zmq_strerror(errno));
        return 2;
    }

    uint64_t sends = 0, resends = 0, accepted = 0, rejected = 0, retries = 0, backpressure = 0,
             duplicates = 0, stale = 0;
    long low = 0, finished = 0;
    int64_t start = s_now_ms(), deadline = start + timeout_s * 1000, first_bp = 0, last_bp = 0;
    char buf[2048], mid[64], corr[32];
    while (finished < count && s_now_ms() < deadline) {
        int64_t now = s_now_ms();
        while (low < count && msgs[low].done)
            low++;
        /* (Re)send what the window allows. */
        for (long i = low; i < count && i < low + window; i++) {
            s_msg *m = &msgs[i];
            if (m->done || now < m->retry_at || (m->sent_ms && now - m->sent_ms < resend_ms))
                continue;
            int len =
                s_message(buf, sizeof buf, i, entities, invalid_every, force, mid, sizeof mid);
            snprintf(corr, sizeof corr, "%ld", i);
            if (zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
                break;
            zmq_send(sock, corr, strlen(corr), ZMQ_SNDMORE);
            zmq_send(sock, buf, (size_t)len, 0);
            resends += m->sent_ms ? 1 : 0;
            m->sent_ms = now;
            m->retry_at = 0;
            sends++;
        }
        /* Take every ack that comes within a short wait. */
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 20) <= 0)
            continue;
        for (;;) {
            char frames[3][1024];
            int n = 0, more = 1, len = 0;
            while (more && n < 3) {
                len = zmq_recv(sock, frames[n], sizeof frames[n] - 1, n ? 0 : ZMQ_DONTWAIT);
                if (len < 0)
                    break;
                frames[n][len < (int)sizeof frames[n] ? len : (int)sizeof frames[n] - 1] = 0;
                n++;
                size_t sz = sizeof more;
                zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
            }
            if (n == 0)
                break;
            json_t *j = json_loads(frames[n - 1], 0, NULL);
            const char *c = json_string_value(json_object_get(j, "correlation"));
            const char *status = json_string_value(json_object_get(j, "status"));
            long i = c ? atol(c) : -1;
            if (i < 0 || i >= count || !status || msgs[i].done) {
                json_decref(j); /* a late ack of a message already settled */
                continue;
            }
            s_msg *m = &msgs[i];
            if (!strcmp(status, "retry")) {
                retries++;
                if (json_is_true(json_object_get(j, "backpressure"))) {
                    backpressure++;
                    last_bp = s_now_ms() - start;
                    if (!first_bp)
                        first_bp = last_bp;
                }
                m->retry_at = s_now_ms() + 200;
                m->sent_ms = 0;
            } else {
                long entity = i % entities, revision = i / entities + 1;
                if (!strcmp(status, "accepted")) {
                    long st = (long)json_integer_value(json_object_get(j, "stale"));
                    int dup = json_is_true(json_object_get(j, "duplicate"));
                    accepted++;
                    duplicates += dup;
                    stale += st > 0;
                    fprintf(log, "%ld accepted P%010ld %ld %ld %d\n", i, entity + 1, revision, st,
                            dup);
                } else {
                    rejected++;
                    snprintf(mid, sizeof mid, "00000000-0000-4000-8000-%012ld", i);
                    fprintf(log, "%ld rejected %" JSON_INTEGER_FORMAT " %s\n", i,
                            json_integer_value(json_object_get(j, "dead_letter")), mid);
                }
                m->done = 1;
                finished++;
            }
            json_decref(j);
        }
    }
    fclose(log);
    printf("{\"count\":%ld,\"finished\":%ld,\"sends\":%" PRIu64 ",\"resends\":%" PRIu64
           ",\"accepted\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"retries\":%" PRIu64
           ",\"backpressure\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"stale\":%" PRIu64
           ",\"first_backpressure_ms\":%" PRId64 ",\"last_backpressure_ms\":%" PRId64
           ",\"elapsed_ms\":%" PRId64 "}\n",
           count, finished, sends, resends, accepted, rejected, retries, backpressure, duplicates,
           stale, first_bp, last_bp, s_now_ms() - start);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(msgs);
    return finished == count ? 0 : 1;
}
