/* Tests for gateway/inbound/rms_delivery: ZeroMQ delivery against an in-process RMS stand-in, the
 * ack protocol, and the drop directory. */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "rms_delivery.h"
#include "zmtp_probe.h"

/* ------------------------------------------------------------ RMS stand-in thread */

#define S_MAX 256

typedef struct s_rms {
    void *ctx;
    char endpoint[128];
    pthread_t thread;
    pthread_mutex_t mu;
    volatile int stop;
    volatile int hold;   /* 1: read nothing (a slow RMS) */
    const char *lose_id; /* lose this id and all after it until it comes again */
    int losing;
    int lost_done;
    /* what it stored, in order ("persistent" across restarts of the thread) */
    char stored[S_MAX][130];
    char payload[S_MAX][64];
    int nstored;
    int received; /* frames sets read, repeats included */
    int ready;
    const char *curve_secret; /* NULL: plain text; else a CURVE server with this key */
} s_rms;

static int s_rms_has(s_rms *r, const char *id)
{
    for (int i = 0; i < r->nstored; i++)
        if (!strcmp(r->stored[i], id))
            return 1;
    return 0;
}

static void s_rms_ack(void *sock, zmq_msg_t *ident, const char *id, int status, const char *reason)
{
    pg_buf b = PG_BUF_INIT;
    pg_rms_delivery_ack_format(status, reason, &b);
    zmq_send(sock, zmq_msg_data(ident), zmq_msg_size(ident), ZMQ_SNDMORE);
    zmq_send(sock, id, strlen(id), ZMQ_SNDMORE);
    zmq_send(sock, b.data, b.len, 0);
    pg_buf_free(&b);
}

static void *s_rms_main(void *arg)
{
    s_rms *r = arg;
    void *sock = zmq_socket(r->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    char e[PG_ERRSTR_SIZE];
    if (r->curve_secret)
        ck_assert_int_eq(pg_curve_server(sock, r->curve_secret, e, sizeof e), 0);
    ck_assert_int_eq(zmq_bind(sock, r->endpoint), 0);
    __atomic_store_n(&r->ready, 1, __ATOMIC_SEQ_CST);
    while (!r->stop) {
        if (r->hold) {
            usleep(5000);
            continue;
        }
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t ident, idm, body;
        zmq_msg_init(&ident);
        zmq_msg_init(&idm);
        zmq_msg_init(&body);
        zmq_msg_recv(&ident, sock, 0);
        zmq_msg_recv(&idm, sock, 0);
        zmq_msg_recv(&body, sock, 0);
        char id[130] = {0}, text[64] = {0};
        memcpy(id, zmq_msg_data(&idm), zmq_msg_size(&idm) < 129 ? zmq_msg_size(&idm) : 129);
        size_t bl = zmq_msg_size(&body) < 63 ? zmq_msg_size(&body) : 63;
        memcpy(text, zmq_msg_data(&body), bl);
        pthread_mutex_lock(&r->mu);
        r->received++;
        int lose = 0;
        if (r->lose_id && !r->lost_done) {
            if (!strcmp(id, r->lose_id) && r->losing) {
                r->losing = 0;
                r->lost_done = 1;
            } else if (!strcmp(id, r->lose_id) || r->losing) {
                r->losing = 1; /* as if the RMS crashed and lost its queue */
                lose = 1;
            }
        }
        if (lose) {
            /* nothing stored, nothing acked */
        } else if (s_rms_has(r, id)) {
            s_rms_ack(sock, &ident, id, 0, NULL);
        } else if (strstr(text, "BAD")) {
            s_rms_ack(sock, &ident, id, PG_EINVALID, "record.id: 'BAD' is not a record id");
        } else if (r->nstored < S_MAX) {
            snprintf(r->stored[r->nstored], sizeof r->stored[0], "%s", id);
            snprintf(r->payload[r->nstored], 64, "%s", text);
            r->nstored++;
            s_rms_ack(sock, &ident, id, 0, NULL);
        }
        pthread_mutex_unlock(&r->mu);
        zmq_msg_close(&ident);
        zmq_msg_close(&idm);
        zmq_msg_close(&body);
    }
    zmq_close(sock);
    return NULL;
}

static void s_rms_start(s_rms *r)
{
    r->stop = 0;
    r->ready = 0;
    ck_assert_int_eq(pthread_create(&r->thread, NULL, s_rms_main, r), 0);
    while (!__atomic_load_n(&r->ready, __ATOMIC_SEQ_CST))
        usleep(1000);
}

static void s_rms_stop(s_rms *r)
{
    r->stop = 1;
    pthread_join(r->thread, NULL);
}

static s_rms *s_rms_new(void)
{
    s_rms *r = calloc(1, sizeof(*r));
    r->ctx = zmq_ctx_new();
    pthread_mutex_init(&r->mu, NULL);
    snprintf(r->endpoint, sizeof r->endpoint, "ipc:///tmp/pg-test-delivery-%d-%ld.ipc",
             (int)getpid(), (long)random());
    return r;
}

static void s_rms_free(s_rms *r)
{
    zmq_ctx_term(r->ctx);
    unlink(r->endpoint + strlen("ipc://"));
    free(r);
}

/* ------------------------------------------------------------ results collector */

typedef struct s_results {
    int n;
    uint64_t seq[S_MAX];
    int status[S_MAX];
    char reason[S_MAX][PG_ERRSTR_SIZE];
    char id[S_MAX][130];
    unsigned attempts[S_MAX];
    void *tag[S_MAX];
} s_results;

static void s_on_result(void *arg, const pg_rms_delivery_result *res)
{
    s_results *r = arg;
    ck_assert_int_lt(r->n, S_MAX);
    r->seq[r->n] = res->seq;
    r->status[r->n] = res->status;
    snprintf(r->reason[r->n], PG_ERRSTR_SIZE, "%s", res->reason ? res->reason : "");
    snprintf(r->id[r->n], 130, "%s", res->id);
    r->attempts[r->n] = res->attempts;
    r->tag[r->n] = res->tag;
    r->n++;
}

static pg_rms_delivery *s_zmq_new(s_rms *rms, s_results *res, size_t window, int ack_timeout)
{
    char e[PG_ERRSTR_SIZE];
    pg_rms_delivery_config cfg = {
        .transport = "zmq",
        .endpoint = rms->endpoint,
        .window = window,
        .ack_timeout_ms = ack_timeout,
        .retry_max_ms = ack_timeout * 4,
        .on_result = s_on_result,
        .on_result_arg = res,
    };
    pg_rms_delivery *d = pg_rms_delivery_new(&cfg, e, sizeof e);
    ck_assert_msg(d != NULL, "%s", e);
    return d;
}

static void s_submit(pg_rms_delivery *d, const char *id, const char *text)
{
    char e[PG_ERRSTR_SIZE];
    int rc = pg_rms_delivery_submit(d, id, (const uint8_t *)text, strlen(text), (void *)text, NULL,
                                    e, sizeof e);
    ck_assert_msg(rc == 0, "%s", e);
}

/* Submit "m<from>".."m<to - 1>" (id = payload), waiting while the window is full. */
static void s_submit_range(pg_rms_delivery *d, int from, int to)
{
    char e[PG_ERRSTR_SIZE], id[32];
    for (int i = from; i < to; i++) {
        snprintf(id, sizeof id, "m%d", i);
        int rc;
        while ((rc = pg_rms_delivery_submit(d, id, (uint8_t *)id, strlen(id), NULL, NULL, e,
                                            sizeof e)) == PG_ERETRY)
            ck_assert_int_ge(pg_rms_delivery_poll(d, 1000, e, sizeof e), 0);
        ck_assert_msg(rc == 0, "%s", e);
    }
}

/* The RMS stored m0..m<n - 1> once each, in order, and each was reported stored. */
static void s_assert_in_order(const s_rms *rms, const s_results *res, int n)
{
    char id[32];
    ck_assert_int_eq(res->n, n);
    ck_assert_int_eq(rms->nstored, n);
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "m%d", i);
        ck_assert_uint_eq(res->seq[i], (uint64_t)i + 1);
        ck_assert_str_eq(res->id[i], id);
        ck_assert_int_eq(res->status[i], 0);
        ck_assert_str_eq(rms->stored[i], id);
        ck_assert_str_eq(rms->payload[i], id);
    }
}

static void s_teardown(pg_rms_delivery **d, s_rms *rms, int running)
{
    pg_rms_delivery_destroy(d);
    ck_assert_ptr_null(*d);
    if (running)
        s_rms_stop(rms);
    s_rms_free(rms);
}

/* ------------------------------------------------------------ ZeroMQ */

START_TEST(test_zmq_delivers_in_order)
{
    s_rms *rms = s_rms_new();
    s_rms_start(rms);
    s_results res = {0};
    pg_rms_delivery *d = s_zmq_new(rms, &res, 8, 5000);
    char e[PG_ERRSTR_SIZE];
    s_submit_range(d, 0, 20);
    ck_assert_int_eq(pg_rms_delivery_flush(d, 5000, e, sizeof e), 0);
    s_assert_in_order(rms, &res, 20);
    ck_assert_uint_eq(pg_rms_delivery_in_flight(d), 0);
    s_teardown(&d, rms, 1);
}
END_TEST

START_TEST(test_zmq_default_ids_and_tags)
{
    s_rms *rms = s_rms_new();
    s_rms_start(rms);
    s_results res = {0};
    pg_rms_delivery *d = s_zmq_new(rms, &res, 4, 5000);
    char e[PG_ERRSTR_SIZE];
    uint64_t seq = 0;
    int tag = 7;
    ck_assert_int_eq(pg_rms_delivery_submit(d, NULL, (uint8_t *)"a", 1, &tag, &seq, e, sizeof e),
                     0);
    ck_assert_uint_eq(seq, 1);
    ck_assert_int_eq(pg_rms_delivery_submit(d, NULL, (uint8_t *)"b", 1, NULL, &seq, e, sizeof e),
                     0);
    ck_assert_uint_eq(seq, 2);
    ck_assert_int_eq(pg_rms_delivery_flush(d, 5000, e, sizeof e), 0);
    ck_assert_int_eq(res.n, 2);
    ck_assert_ptr_eq(res.tag[0], &tag);
    /* "<instance uuid>-<seq>": unique per message, same instance prefix */
    ck_assert_uint_eq(strlen(res.id[0]), 38);
    ck_assert_str_eq(res.id[0] + 36, "-1");
    ck_assert_str_eq(res.id[1] + 36, "-2");
    ck_assert(strncmp(res.id[0], res.id[1], 36) == 0);
    s_teardown(&d, rms, 1);
}
END_TEST

START_TEST(test_zmq_rms_absent_then_appears)
{
    s_rms *rms = s_rms_new();
    s_results res = {0};
    pg_rms_delivery *d = s_zmq_new(rms, &res, 16, 200);
    char e[PG_ERRSTR_SIZE];
    s_submit_range(d, 0, 10);
    /* No RMS: nothing is reported, nothing is dropped, however long we wait. */
    ck_assert_int_eq(pg_rms_delivery_poll(d, 600, e, sizeof e), 0);
    ck_assert_int_eq(res.n, 0);
    ck_assert_uint_eq(pg_rms_delivery_in_flight(d), 10);
    s_rms_start(rms);
    ck_assert_msg(pg_rms_delivery_flush(d, 10000, e, sizeof e) == 0, "%s", e);
    s_assert_in_order(rms, &res, 10);
    s_teardown(&d, rms, 1);
}
END_TEST

START_TEST(test_zmq_rms_restarts)
{
    /* The RMS goes away with messages in flight and comes back: every message is
     * stored exactly once, in order. */
    s_rms *rms = s_rms_new();
    s_rms_start(rms);
    s_results res = {0};
    pg_rms_delivery *d = s_zmq_new(rms, &res, 32, 150);
    char e[PG_ERRSTR_SIZE];
    s_submit_range(d, 0, 5);
    ck_assert_int_eq(pg_rms_delivery_flush(d, 5000, e, sizeof e), 0);
    s_rms_stop(rms);
    s_submit_range(d, 5, 15);
    ck_assert_int_eq(pg_rms_delivery_poll(d, 400, e, sizeof e), 0);
    s_rms_start(rms);
    ck_assert_msg(pg_rms_delivery_flush(d, 10000, e, sizeof e) == 0, "%s", e);
    s_assert_in_order(rms, &res, 15);
    s_teardown(&d, rms, 1);
}
END_TEST

START_TEST(test_zmq_lost_message_resent_in_order)
{
    /* The RMS loses m2 and everything after it (a crash losing its queue): the
     * timeout sends m2.. again, in order, and nothing overtakes m2. */
    s_rms *rms = s_rms_new();
    rms->lose_id = "m2";
    s_rms_start(rms);
    s_results res = {0};
    pg_rms_delivery *d = s_zmq_new(rms, &res, 8, 100);
    char e[PG_ERRSTR_SIZE];
    s_submit_range(d, 0, 6);
    ck_assert_msg(pg_rms_delivery_flush(d, 10000, e, sizeof e) == 0, "%s", e);
    s_assert_in_order(rms, &res, 6);
    ck_assert_uint_eq(res.attempts[0], 1);
    ck_assert_uint_ge(res.attempts[2], 2);
    ck_assert(rms->received > 6);
    s_teardown(&d, rms, 1);
}
END_TEST

START_TEST(test_zmq_rejected)
{
    s_rms *rms = s_rms_new();
    s_rms_start(rms);
    s_results res = {0};
    pg_rms_delivery *d = s_zmq_new(rms, &res, 8, 5000);
    char e[PG_ERRSTR_SIZE];
    s_submit(d, "a", "fine 1");
    s_submit(d, "b", "BAD record");
    s_submit(d, "c", "fine 2");
    ck_assert_int_eq(pg_rms_delivery_flush(d, 5000, e, sizeof e), 0);
    ck_assert_int_eq(res.n, 3);
    ck_assert_int_eq(res.status[0], 0);
    ck_assert_int_eq(res.status[1], PG_EINVALID);
    ck_assert_str_eq(res.reason[1], "record.id: 'BAD' is not a record id");
    ck_assert_uint_eq(res.attempts[1], 1); /* a rejection is final: never resent */
    ck_assert_int_eq(res.status[2], 0);
    ck_assert_str_eq(res.reason[2], "");
    ck_assert_int_eq(rms->nstored, 2);
    ck_assert_str_eq(rms->stored[1], "c");
    s_teardown(&d, rms, 1);
}
END_TEST

START_TEST(test_zmq_slow_rms_backpressure)
{
    s_rms *rms = s_rms_new();
    rms->hold = 1;
    s_rms_start(rms);
    s_results res = {0};
    pg_rms_delivery *d = s_zmq_new(rms, &res, 4, 100);
    char e[PG_ERRSTR_SIZE];
    s_submit_range(d, 0, 4);
    /* The window is full: the fifth is refused until the RMS has stored some. */
    ck_assert_int_eq(pg_rms_delivery_submit(d, "m4", (uint8_t *)"m4", 2, NULL, NULL, e, sizeof e),
                     PG_ERETRY);
    ck_assert_ptr_nonnull(strstr(e, "window full (4 messages"));
    ck_assert_int_eq(pg_rms_delivery_poll(d, 500, e, sizeof e), 0); /* timeouts resend */
    ck_assert_int_eq(pg_rms_delivery_submit(d, "m4", (uint8_t *)"m4", 2, NULL, NULL, e, sizeof e),
                     PG_ERETRY);
    ck_assert_int_eq(res.n, 0);
    rms->hold = 0;
    s_submit_range(d, 4, 5);
    ck_assert_int_eq(pg_rms_delivery_flush(d, 5000, e, sizeof e), 0);
    /* resent while the RMS was slow, stored once each */
    ck_assert_uint_ge(res.attempts[0], 2);
    s_assert_in_order(rms, &res, 5);
    s_teardown(&d, rms, 1);
}
END_TEST

START_TEST(test_zmq_flush_times_out)
{
    s_rms *rms = s_rms_new();
    s_results res = {0};
    pg_rms_delivery *d = s_zmq_new(rms, &res, 4, 100);
    char e[PG_ERRSTR_SIZE];
    s_submit(d, "x", "x");
    ck_assert_int_eq(pg_rms_delivery_flush(d, 200, e, sizeof e), PG_ETIMEOUT);
    ck_assert_str_eq(e, "delivery: 1 messages still await the RMS");
    s_teardown(&d, rms, 0);
}
END_TEST

static void s_delivery_tick(void *d)
{
    char e[PG_ERRSTR_SIZE];
    pg_rms_delivery_poll(d, 0, e, sizeof e);
}

/* Attack: something else listens on the RMS import endpoint and answers the gateway's
 * connection with the start of a 600 MB frame, sent slowly: libzmq buffered all of it
 * (611 MB of the daemon's memory; found by a review). A frame over 1 MiB (an ack's
 * most) closes the connection as its header arrives. */
START_TEST(test_zmq_oversized_frame_closes_connection)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    ck_assert_int_eq(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(listen(ls, 4), 0);
    ck_assert_int_eq(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    char endpoint[64], e[PG_ERRSTR_SIZE];
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", ntohs(sa.sin_port));
    s_results res = {0};
    pg_rms_delivery_config cfg = {.transport = "zmq",
                                  .endpoint = endpoint,
                                  .window = 4,
                                  .ack_timeout_ms = 1000,
                                  .retry_max_ms = 4000,
                                  .on_result = s_on_result,
                                  .on_result_arg = &res};
    pg_rms_delivery *d = pg_rms_delivery_new(&cfg, e, sizeof e);
    ck_assert_msg(d != NULL, "%s", e);
    s_submit(d, "x", "x");
    struct pollfd lp = {.fd = ls, .events = POLLIN};
    ck_assert_int_eq(poll(&lp, 1, 3000), 1);
    int fd = accept(ls, NULL, NULL);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(zmtp_announce_frame(fd, 1, 600000000), 0);
    int closed = zmtp_closed_within(fd, 3000, s_delivery_tick, d);
    close(fd);
    close(ls);
    pg_rms_delivery_destroy(&d);
    ck_assert_msg(closed, "the connection announcing a 600 MB frame is still open after 3 s");
}
END_TEST

/* Attack: something else listens on the RMS import endpoint and takes partner
 * records. Delivery pins the RMS's public key: a server with another key gets
 * nothing (the handshake fails, the message stays in the window); the real RMS then
 * gets it. */
START_TEST(test_zmq_curve_pins_the_rms_key)
{
    char rms_pub[41], rms_sec[41], fake_pub[41], fake_sec[41], our_pub[41], our_sec[41];
    ck_assert_int_eq(zmq_curve_keypair(rms_pub, rms_sec), 0);
    ck_assert_int_eq(zmq_curve_keypair(fake_pub, fake_sec), 0);
    ck_assert_int_eq(zmq_curve_keypair(our_pub, our_sec), 0);
    s_rms *rms = s_rms_new();
    rms->curve_secret = fake_sec; /* an impostor on the endpoint */
    s_rms_start(rms);
    s_results res = {0};
    char e[PG_ERRSTR_SIZE];
    pg_rms_delivery_config cfg = {
        .transport = "zmq",
        .endpoint = rms->endpoint,
        .window = 8,
        .ack_timeout_ms = 200,
        .retry_max_ms = 400,
        .on_result = s_on_result,
        .on_result_arg = &res,
    };
    memcpy(cfg.curve_secret, our_sec, sizeof cfg.curve_secret);
    memcpy(cfg.curve_server_key, rms_pub, sizeof cfg.curve_server_key);
    pg_rms_delivery *d = pg_rms_delivery_new(&cfg, e, sizeof e);
    ck_assert_msg(d != NULL, "%s", e);
    s_submit(d, "p1", "partner record");
    ck_assert_int_ne(pg_rms_delivery_flush(d, 1500, e, sizeof e), 0);
    ck_assert_int_eq(rms->received, 0);
    ck_assert_int_eq(res.n, 0);
    ck_assert_uint_eq(pg_rms_delivery_in_flight(d), 1);
    /* the real RMS comes back on the endpoint */
    s_rms_stop(rms);
    rms->curve_secret = rms_sec;
    s_rms_start(rms);
    ck_assert_msg(pg_rms_delivery_flush(d, 10000, e, sizeof e) == 0, "%s", e);
    ck_assert_int_eq(res.n, 1);
    ck_assert_int_eq(rms->nstored, 1);
    s_teardown(&d, rms, 1);
}
END_TEST

START_TEST(test_bad_config)
{
    char e[PG_ERRSTR_SIZE];
    pg_rms_delivery_config cfg = {.transport = "carrier-pigeon", .endpoint = "x"};
    ck_assert_ptr_null(pg_rms_delivery_new(&cfg, e, sizeof e));
    ck_assert_str_eq(e, "delivery.transport: 'carrier-pigeon' is not one of zmq, dir");
    cfg.transport = NULL;
    ck_assert_ptr_null(pg_rms_delivery_new(&cfg, e, sizeof e));
    ck_assert_str_eq(e, "delivery: transport and endpoint are required");
    cfg.transport = "zmq";
    cfg.endpoint = "nowhere";
    ck_assert_ptr_null(pg_rms_delivery_new(&cfg, e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "delivery.endpoint: nowhere is reachable from other hosts"));
    cfg.endpoint = "ipc://";
    ck_assert_ptr_null(pg_rms_delivery_new(&cfg, e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "delivery.endpoint: 'ipc://': "));
    /* plain text to an RMS import endpoint other hosts can reach: refused */
    cfg.endpoint = "tcp://192.0.2.1:5601";
    ck_assert_ptr_null(pg_rms_delivery_new(&cfg, e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "it needs CURVE"));
    cfg.transport = "dir";
    cfg.endpoint = "/nonexistent/polegate-drop";
    ck_assert_ptr_null(pg_rms_delivery_new(&cfg, e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "'/nonexistent/polegate-drop' is not a writable directory"));
    cfg.endpoint = "/etc/hostname"; /* a file, not a directory */
    ck_assert_ptr_null(pg_rms_delivery_new(&cfg, e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "is not a writable directory"));
    cfg.endpoint = "/tmp";
    cfg.ack_timeout_ms = -1;
    ck_assert_ptr_null(pg_rms_delivery_new(&cfg, e, sizeof e));
    ck_assert_str_eq(e, "delivery: timeouts must not be negative");
}
END_TEST

START_TEST(test_bad_id)
{
    s_rms *rms = s_rms_new();
    s_results res = {0};
    pg_rms_delivery *d = s_zmq_new(rms, &res, 4, 100);
    char e[PG_ERRSTR_SIZE], longid[200];
    memset(longid, 'a', 129);
    longid[129] = '\0';
    const char *bad[] = {"", "has space", "tab\t", longid, "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(
            pg_rms_delivery_submit(d, bad[i], (uint8_t *)"x", 1, NULL, NULL, e, sizeof e),
            PG_EINVALID);
        ck_assert_str_eq(e, "delivery: correlation id must be 1-128 printable ASCII characters");
    }
    ck_assert_uint_eq(pg_rms_delivery_in_flight(d), 0);
    longid[128] = '\0';
    ck_assert_int_eq(pg_rms_delivery_submit(d, longid, (uint8_t *)"x", 1, NULL, NULL, e, sizeof e),
                     0);
    s_teardown(&d, rms, 0);
}
END_TEST

/* ------------------------------------------------------------ the ack protocol */

START_TEST(test_ack_parse)
{
    char e[PG_ERRSTR_SIZE], why[PG_ERRSTR_SIZE];
    int st = 99;
#define PARSE(s)                                                                                   \
    pg_rms_delivery_ack_parse((const uint8_t *)(s), strlen(s), &st, why, sizeof why, e, sizeof e)
    ck_assert_int_eq(PARSE("{\"status\":\"stored\"}"), 0);
    ck_assert_int_eq(st, 0);
    ck_assert_int_eq(PARSE("{\"status\":\"stored\",\"extra\":[1]}"), 0); /* unknown ignored */
    ck_assert_int_eq(PARSE("{\"status\":\"rejected\",\"reason\":\"header.schema: must be atx/2\"}"),
                     0);
    ck_assert_int_eq(st, PG_EINVALID);
    ck_assert_str_eq(why, "header.schema: must be atx/2");
    ck_assert_int_eq(PARSE("{\"status\":\"rejected\"}"), 0);
    ck_assert_str_eq(why, "rejected by the RMS (no reason given)");
    ck_assert_int_eq(PARSE("{\"status\":\"rejected\",\"reason\":null}"), 0);
    ck_assert_int_eq(PARSE("stored"), PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "ack: not JSON"));
    ck_assert_int_eq(PARSE("[\"stored\"]"), PG_EINVALID);
    ck_assert_str_eq(e, "ack: not a JSON object");
    ck_assert_int_eq(PARSE("{\"state\":\"stored\"}"), PG_EINVALID);
    ck_assert_str_eq(e, "ack.status: required string");
    ck_assert_int_eq(PARSE("{\"status\":1}"), PG_EINVALID);
    ck_assert_str_eq(e, "ack.status: required string");
    ck_assert_int_eq(PARSE("{\"status\":\"maybe\"}"), PG_EINVALID);
    ck_assert_str_eq(e, "ack.status: is not one of stored, rejected");
    ck_assert_int_eq(PARSE("{\"status\":\"rejected\",\"reason\":42}"), PG_EINVALID);
    ck_assert_str_eq(e, "ack.reason: must be a string");
    ck_assert_int_eq(PARSE("{\"status\":\"stored\",\"status\":\"rejected\"}"), PG_EINVALID);
#undef PARSE
}
END_TEST

START_TEST(test_ack_format)
{
    pg_buf b = PG_BUF_INIT;
    ck_assert_int_eq(pg_rms_delivery_ack_format(0, NULL, &b), 0);
    ck_assert_str_eq((char *)b.data, "{\"status\":\"stored\"}");
    pg_buf_reset(&b);
    ck_assert_int_eq(pg_rms_delivery_ack_format(PG_EINVALID, "x: \"quoted\"", &b), 0);
    ck_assert_str_eq((char *)b.data, "{\"status\":\"rejected\",\"reason\":\"x: \\\"quoted\\\"\"}");
    char e[PG_ERRSTR_SIZE], why[PG_ERRSTR_SIZE];
    int st = 0;
    ck_assert_int_eq(pg_rms_delivery_ack_parse(b.data, b.len, &st, why, sizeof why, e, sizeof e),
                     0);
    ck_assert_int_eq(st, PG_EINVALID);
    ck_assert_str_eq(why, "x: \"quoted\"");
    pg_buf_free(&b);
}
END_TEST

/* ------------------------------------------------------------ drop directory */

static char *s_tmpdir(void)
{
    char *t = strdup("/tmp/pg-test-drop-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t));
    return t;
}

static void s_rmdir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char p[512];
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..")))
            continue;
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir (sorted); dot files only when dots. */
static int s_list(const char *dir, char **names, int max, int dots)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL && n < max) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (de->d_name[0] == '.' && !dots)
            continue;
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(char *), s_cmp);
    return n;
}

static char *s_slurp(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static pg_rms_delivery *s_dir_new(const char *dir, s_results *res, size_t window)
{
    char e[PG_ERRSTR_SIZE];
    pg_rms_delivery_config cfg = {.transport = "dir",
                                  .endpoint = dir,
                                  .extension = "ndjson",
                                  .window = window,
                                  .on_result = s_on_result,
                                  .on_result_arg = res};
    pg_rms_delivery *d = pg_rms_delivery_new(&cfg, e, sizeof e);
    ck_assert_msg(d != NULL, "%s", e);
    return d;
}

/* The number in "pg-<20 digits>.ndjson". */
static unsigned long long s_num(const char *name)
{
    ck_assert(strncmp(name, "pg-", 3) == 0);
    ck_assert_uint_eq(strlen(name), 3 + 20 + 7);
    ck_assert_str_eq(name + 23, ".ndjson");
    return strtoull(name + 3, NULL, 10);
}

START_TEST(test_dir_writes_in_order)
{
    char *dir = s_tmpdir();
    s_results res = {0};
    pg_rms_delivery *d = s_dir_new(dir, &res, 8);
    char e[PG_ERRSTR_SIZE];
    s_submit(d, "a", "{\"n\":1}\n");
    s_submit(d, "b", "{\"n\":2}\n{\"n\":3}\n"); /* a batch is one file */
    s_submit(d, "c", "{\"n\":4}\n");
    ck_assert_uint_eq(pg_rms_delivery_in_flight(d), 3);
    ck_assert_int_eq(pg_rms_delivery_poll(d, 0, e, sizeof e), 3);
    ck_assert_int_eq(res.n, 3);
    ck_assert_int_eq(res.status[2], 0);
    char *names[16];
    ck_assert_int_eq(s_list(dir, names, 16, 1), 3); /* no temp file left */
    ck_assert_uint_lt(s_num(names[0]), s_num(names[1]));
    ck_assert_uint_eq(s_num(names[0]) + 1, s_num(names[1]));
    ck_assert_uint_eq(s_num(names[1]) + 1, s_num(names[2]));
    ck_assert_str_eq(s_slurp(dir, names[0]), "{\"n\":1}\n");
    ck_assert_str_eq(s_slurp(dir, names[1]), "{\"n\":2}\n{\"n\":3}\n");
    ck_assert_str_eq(s_slurp(dir, names[2]), "{\"n\":4}\n");
    /* person records: never readable by others, whatever the umask (was 0644) */
    mode_t old_mask = umask(0);
    s_submit(d, "d", "{\"n\":5}\n");
    ck_assert_int_eq(pg_rms_delivery_poll(d, 0, e, sizeof e), 1);
    umask(old_mask);
    for (int i = 0; i < 3; i++) {
        struct stat st;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0640);
    }
    for (int i = 0; i < 3; i++)
        free(names[i]);
    ck_assert_int_eq(s_list(dir, names, 16, 1), 4);
    for (int i = 0; i < 4; i++) {
        struct stat st;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_mode & 0777, 0640);
        free(names[i]);
    }
    pg_rms_delivery_destroy(&d);
    s_rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_dir_window)
{
    char *dir = s_tmpdir();
    s_results res = {0};
    pg_rms_delivery *d = s_dir_new(dir, &res, 2);
    char e[PG_ERRSTR_SIZE];
    s_submit(d, "a", "1");
    s_submit(d, "b", "2");
    ck_assert_int_eq(pg_rms_delivery_submit(d, "c", (uint8_t *)"3", 1, NULL, NULL, e, sizeof e),
                     PG_ERETRY);
    char *names[4];
    ck_assert_int_eq(s_list(dir, names, 4, 1), 2); /* the refused one was not written */
    free(names[0]);
    free(names[1]);
    ck_assert_int_eq(pg_rms_delivery_poll(d, 0, e, sizeof e), 2);
    s_submit(d, "c", "3");
    ck_assert_int_eq(pg_rms_delivery_flush(d, 0, e, sizeof e), 0);
    ck_assert_int_eq(res.n, 3);
    pg_rms_delivery_destroy(&d);
    s_rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_dir_sequence_survives_restart)
{
    char *dir = s_tmpdir();
    s_results res = {0};
    char *names[8];
    pg_rms_delivery *d = s_dir_new(dir, &res, 8);
    s_submit(d, "a", "1");
    s_submit(d, "b", "2");
    ck_assert_int_eq(s_list(dir, names, 8, 0), 2);
    unsigned long long last = s_num(names[1]);
    char p[512];
    for (int i = 0; i < 2; i++) { /* the importer takes them away */
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
        free(names[i]);
    }
    pg_rms_delivery_destroy(&d);
    d = s_dir_new(dir, &res, 8);
    s_submit(d, "c", "3");
    ck_assert_int_eq(s_list(dir, names, 8, 0), 1);
    ck_assert_uint_gt(s_num(names[0]), last);
    free(names[0]);
    pg_rms_delivery_destroy(&d);

    /* A name above the clock already there: continue after it. */
    snprintf(p, sizeof p, "%s/pg-10000000000000000000.ndjson", dir);
    FILE *f = fopen(p, "w");
    fclose(f);
    d = s_dir_new(dir, &res, 8);
    s_submit(d, "d", "4");
    ck_assert_int_eq(s_list(dir, names, 8, 0), 3);
    ck_assert_str_eq(names[2], "pg-10000000000000000001.ndjson");
    for (int i = 0; i < 3; i++)
        free(names[i]);
    pg_rms_delivery_destroy(&d);
    s_rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_dir_stale_temp_removed)
{
    char *dir = s_tmpdir();
    char p[512];
    /* left by a crash between write and rename */
    snprintf(p, sizeof p, "%s/.pg-00000000000000000007.tmp", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"partial", f);
    fclose(f);
    /* someone else's dot file is not ours to touch */
    snprintf(p, sizeof p, "%s/.keep", dir);
    f = fopen(p, "w");
    fclose(f);
    s_results res = {0};
    pg_rms_delivery *d = s_dir_new(dir, &res, 8);
    char *names[8];
    ck_assert_int_eq(s_list(dir, names, 8, 1), 1);
    ck_assert_str_eq(names[0], ".keep");
    free(names[0]);
    pg_rms_delivery_destroy(&d);
    s_rmdir(dir);
    free(dir);
}
END_TEST

typedef struct s_watch {
    const char *dir;
    volatile int stop;
    size_t expect;
    int seen, partial, foreign;
} s_watch;

/* Watch the directory as an importer would (skipping dot files): every file it can
 * see must already be whole. */
static void *s_watch_main(void *arg)
{
    s_watch *w = arg;
    char p[512];
    while (!w->stop) {
        DIR *d = opendir(w->dir);
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            if (strncmp(de->d_name, "pg-", 3) != 0)
                w->foreign++;
            snprintf(p, sizeof p, "%s/%s", w->dir, de->d_name);
            struct stat st;
            if (stat(p, &st) != 0)
                continue;
            w->seen++;
            if ((size_t)st.st_size != w->expect)
                w->partial++;
        }
        closedir(d);
    }
    return NULL;
}

START_TEST(test_dir_no_partial_file_visible)
{
    char *dir = s_tmpdir();
    s_results res = {0};
    pg_rms_delivery *d = s_dir_new(dir, &res, 4);
    size_t size = 256 * 1024;
    uint8_t *big = malloc(size);
    memset(big, 'x', size);
    s_watch w = {.dir = dir, .expect = size};
    pthread_t t;
    pthread_create(&t, NULL, s_watch_main, &w);
    char e[PG_ERRSTR_SIZE];
    for (int i = 0; i < 40; i++) {
        int rc;
        while ((rc = pg_rms_delivery_submit(d, NULL, big, size, NULL, NULL, e, sizeof e)) ==
               PG_ERETRY)
            pg_rms_delivery_poll(d, 0, e, sizeof e);
        ck_assert_msg(rc == 0, "%s", e);
    }
    w.stop = 1;
    pthread_join(t, NULL);
    ck_assert_int_gt(w.seen, 0);
    ck_assert_int_eq(w.partial, 0);
    ck_assert_int_eq(w.foreign, 0);
    char *names[64];
    ck_assert_int_eq(s_list(dir, names, 64, 1), 40);
    for (int i = 0; i < 40; i++)
        free(names[i]);
    free(big);
    pg_rms_delivery_destroy(&d);
    s_rmdir(dir);
    free(dir);
}
END_TEST

/* ------------------------------------------------------------ polegate receive */

#ifdef PG_POLEGATE
/* Start `polegate receive ARGS...` with stdout and stderr to files in dir. */
static pid_t s_receive_start(const char *dir, char *const args[])
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char path[512];
        snprintf(path, sizeof path, "%s/.stdout", dir);
        freopen(path, "w", stdout);
        snprintf(path, sizeof path, "%s/.stderr", dir);
        freopen(path, "w", stderr);
        execv(PG_POLEGATE, args);
        _exit(127);
    }
    return pid;
}

static int s_receive_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Run polegate receive with args and no peer; its exit status and stderr. */
static int s_receive_run(char *const args[], char *err, size_t errsize)
{
    char *dir = s_tmpdir();
    pid_t pid = s_receive_start(dir, args);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    snprintf(err, errsize, "%s", s_slurp(dir, ".stderr"));
    s_rmdir(dir);
    free(dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static pg_rms_delivery *s_to_receive(const char *endpoint, s_results *res)
{
    char e[PG_ERRSTR_SIZE];
    pg_rms_delivery_config cfg = {.transport = "zmq",
                                  .endpoint = endpoint,
                                  .window = 4,
                                  .ack_timeout_ms = 2000,
                                  .on_result = s_on_result,
                                  .on_result_arg = res};
    pg_rms_delivery *d = pg_rms_delivery_new(&cfg, e, sizeof e);
    ck_assert_msg(d != NULL, "%s", e);
    return d;
}

START_TEST(test_receive_atx_file)
{
    char *dir = s_tmpdir();
    char ep[300], out[300];
    snprintf(ep, sizeof ep, "ipc://%s/.rms.ipc", dir);
    snprintf(out, sizeof out, "%s/rms.ndjson", dir);
    char *args[] = {"polegate", "receive", "--bind",         ep,  "--out", out,
                    "--format", "atx",     "--reject-every", "4", "-q",    NULL};
    pid_t pid = s_receive_start(dir, args);
    s_results res = {0};
    pg_rms_delivery *d = s_to_receive(ep, &res);
    char e[PG_ERRSTR_SIZE];
    /* an invalid message, the 8 sample messages, and the first one again */
    s_submit(d, "bad", "{}");
    FILE *f = fopen(PG_FIXTURES "/atx-burglary.ndjson", "r");
    static char lines[8][4096];
    char id[16];
    for (int i = 0; i < 8; i++) {
        ck_assert_ptr_nonnull(fgets(lines[i], sizeof lines[i], f));
        lines[i][strcspn(lines[i], "\n")] = '\0';
        snprintf(id, sizeof id, "line%d", i + 1);
        int rc;
        while ((rc = pg_rms_delivery_submit(d, id, (uint8_t *)lines[i], strlen(lines[i]), NULL,
                                            NULL, e, sizeof e)) == PG_ERETRY)
            pg_rms_delivery_poll(d, 1000, e, sizeof e);
        ck_assert_int_eq(rc, 0);
    }
    fclose(f);
    ck_assert_int_eq(pg_rms_delivery_flush(d, 10000, e, sizeof e), 0);
    s_submit(d, "line1", lines[0]);
    ck_assert_int_eq(pg_rms_delivery_flush(d, 10000, e, sizeof e), 0);
    ck_assert_int_eq(res.n, 10);
    ck_assert_int_eq(res.status[0], PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(res.reason[0], "header"));
    /* the 4th and 8th new messages (lines 3 and 7) rejected on purpose */
    for (int i = 1; i <= 8; i++)
        ck_assert_int_eq(res.status[i], i == 3 || i == 7 ? PG_EINVALID : 0);
    ck_assert_str_eq(res.reason[3], "receive: every 4-th message is rejected (--reject-every)");
    ck_assert_int_eq(res.status[9], 0);
    pg_rms_delivery_destroy(&d);
    ck_assert_int_eq(s_receive_stop(pid), 0);
    /* stored: lines 1 2 4 5 6 8, once each, as NDJSON */
    char *text = s_slurp(dir, "rms.ndjson");
    char want[8 * 4096] = "";
    const int kept[] = {0, 1, 3, 4, 5, 7};
    for (int i = 0; i < 6; i++) {
        strcat(want, lines[kept[i]]);
        strcat(want, "\n");
    }
    ck_assert_str_eq(text, want);
    ck_assert_str_eq(s_slurp(dir, ".stdout"),
                     "polegate receive: 10 received, 6 stored, 3 rejected, 1 repeats\n");
    s_rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_receive_nx5_dir)
{
    char *dir = s_tmpdir();
    char ep[300], out[300];
    snprintf(ep, sizeof ep, "ipc://%s/.rms.ipc", dir);
    snprintf(out, sizeof out, "%s/in", dir);
    mkdir(out, 0700);
    char *args[] = {"polegate", "receive", "--bind", ep, "--out", out, "--format", "nx5", NULL};
    pid_t pid = s_receive_start(dir, args);
    s_results res = {0};
    pg_rms_delivery *d = s_to_receive(ep, &res);
    char e[PG_ERRSTR_SIZE];
    char *doc = strdup(s_slurp(PG_FIXTURES, "nx5-merseyside-export.xml"));
    size_t len = strlen(doc);
    ck_assert_int_eq(
        pg_rms_delivery_submit(d, "doc1", (uint8_t *)doc, len, NULL, NULL, e, sizeof e), 0);
    ck_assert_int_eq(pg_rms_delivery_flush(d, 10000, e, sizeof e), 0);
    ck_assert_int_eq(res.status[0], 0);
    pg_rms_delivery_destroy(&d);
    ck_assert_int_eq(s_receive_stop(pid), 0);
    char *names[4];
    ck_assert_int_eq(s_list(out, names, 4, 1), 1);
    ck_assert(strncmp(names[0], "pg-", 3) == 0);
    ck_assert_ptr_nonnull(strstr(names[0], ".xml"));
    ck_assert_str_eq(s_slurp(out, names[0]), doc); /* windows-1252 bytes kept as sent */
    free(names[0]);
    free(doc);
    s_rmdir(out);
    s_rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_receive_usage)
{
    char err[4096];
    char *no_bind[] = {"polegate", "receive", "--out", "/tmp/x", NULL};
    ck_assert_int_eq(s_receive_run(no_bind, err, sizeof err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--bind is required"));
    char *nx5_file[] = {"polegate", "receive",          "--bind",   "ipc:///tmp/pg-x.ipc",
                        "--out",    "/tmp/pg-x.ndjson", "--format", "nx5",
                        NULL};
    ck_assert_int_eq(s_receive_run(nx5_file, err, sizeof err), 2);
    ck_assert_ptr_nonnull(strstr(err, "NX5 documents are stored one per file: give a directory"));
    char *zero[] = {"polegate", "receive",        "--bind", "x", "--out",
                    "/tmp",     "--reject-every", "0",      NULL};
    ck_assert_int_eq(s_receive_run(zero, err, sizeof err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--reject-every: expected a whole number of 1 or more"));
    char *fmt[] = {"polegate", "receive", "--bind", "x", "--out", "/tmp", "--format", "csv", NULL};
    ck_assert_int_eq(s_receive_run(fmt, err, sizeof err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--format csv: expected atx or nx5"));
    char *bind[] = {"polegate", "receive", "--bind", "nowhere", "--out", "/tmp", NULL};
    ck_assert_int_eq(s_receive_run(bind, err, sizeof err), 1);
    ck_assert_ptr_nonnull(strstr(err, "--bind nowhere: "));
}
END_TEST
#endif

static Suite *s_suite(void)
{
    Suite *s = suite_create("delivery");
    TCase *tz = tcase_create("zmq");
    tcase_set_timeout(tz, 30);
    tcase_add_test(tz, test_zmq_delivers_in_order);
    tcase_add_test(tz, test_zmq_default_ids_and_tags);
    tcase_add_test(tz, test_zmq_rms_absent_then_appears);
    tcase_add_test(tz, test_zmq_rms_restarts);
    tcase_add_test(tz, test_zmq_lost_message_resent_in_order);
    tcase_add_test(tz, test_zmq_rejected);
    tcase_add_test(tz, test_zmq_slow_rms_backpressure);
    tcase_add_test(tz, test_zmq_flush_times_out);
    tcase_add_test(tz, test_zmq_curve_pins_the_rms_key);
    tcase_add_test(tz, test_zmq_oversized_frame_closes_connection);
    tcase_add_test(tz, test_bad_config);
    tcase_add_test(tz, test_bad_id);
    suite_add_tcase(s, tz);
    TCase *ta = tcase_create("ack");
    tcase_add_test(ta, test_ack_parse);
    tcase_add_test(ta, test_ack_format);
    suite_add_tcase(s, ta);
    TCase *td = tcase_create("dir");
    tcase_set_timeout(td, 30);
    tcase_add_test(td, test_dir_writes_in_order);
    tcase_add_test(td, test_dir_window);
    tcase_add_test(td, test_dir_sequence_survives_restart);
    tcase_add_test(td, test_dir_stale_temp_removed);
    tcase_add_test(td, test_dir_no_partial_file_visible);
    suite_add_tcase(s, td);
#ifdef PG_POLEGATE
    TCase *tr = tcase_create("receive");
    tcase_set_timeout(tr, 60);
    tcase_add_test(tr, test_receive_atx_file);
    tcase_add_test(tr, test_receive_nx5_dir);
    tcase_add_test(tr, test_receive_usage);
    suite_add_tcase(s, tr);
#endif
    return s;
}

int main(void)
{
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    SRunner *sr = srunner_create(s_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
