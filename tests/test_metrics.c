/* Tests of pg_metrics: the text a scrape gets from the state and the hooks, and the
 * HTTP endpoint's answers. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"
#include "polegate/buf.h"

static char *s_render(pg_metrics *m)
{
    pg_buf out = PG_BUF_INIT;
    ck_assert_int_eq(pg_metrics_render(m, &out), 0);
    pg_buf_putc(&out, 0);
    return (char *)out.data;
}

static void s_has(const char *text, const char *line)
{
    ck_assert_msg(strstr(text, line) != NULL, "no \"%s\" in:\n%s", line, text);
}

START_TEST(test_state_and_hooks)
{
    char why[256];
    pg_metrics *m = pg_metrics_new(NULL, "ESX", why, sizeof why);
    ck_assert_ptr_nonnull(m);
    pg_metrics_state st;
    memset(&st, 0, sizeof st);
    st.intake.received = 12;
    st.intake.accepted = 10;
    st.intake.duplicates = 3;
    st.intake.rejected = 2;
    st.intake.curve_refused = 6;
    st.spool.records = 5;
    st.spool.bytes = 640;
    st.dead_letters = 2;
    st.publisher.transactions = 4;
    st.publisher.aborts = 1;
    st.store_used_ratio = 0.25;
    pg_metrics_set_state(m, &st);

    /* Two intake groups acknowledged (batches 1-2, then 3), then one commit of 1-3. */
    pg_metrics_spooled(m, 3);
    pg_metrics_spooled(m, 4);
    pg_outbatch *win = pg_outbatch_new();
    pg_outrec *r = pg_outbatch_add(win);
    r->destination = "national";
    r = pg_outbatch_add(win);
    r->destination = "national"; /* a tombstone counts too */
    r = pg_outbatch_add(win);
    r->destination = "mer \"x\"";
    pg_outbatch_add(win); /* a dead letter: no destination */
    pg_metrics_destination(m, "national");
    pg_metrics_destination(m, "idle");
    pg_metrics_on_commit(m, win, 1, 3);
    pg_outbatch_destroy(&win);

    pg_audit_event ev = {.action = PG_AUDIT_WITHHOLD, .destination = "mer", .outcome = "kind"};
    pg_metrics_on_audit(m, &ev, 0);
    pg_metrics_on_audit(m, &ev, 0);
    ev.action = PG_AUDIT_DISCLOSE;
    pg_metrics_on_audit(m, &ev, 0);
    pg_metrics_on_audit(m, &ev, -5); /* PG_EIO: failed */
    ev = (pg_audit_event){.action = PG_AUDIT_RECEIVE, .partner = "MER"};
    pg_metrics_on_audit(m, &ev, 0);

    char *text = s_render(m);
    s_has(text, "polegate_build_info{version=\"");
    s_has(text, "\",force=\"ESX\"} 1\n");
    s_has(text, "polegate_intake_messages_total{outcome=\"accepted\"} 7\n");
    s_has(text, "polegate_intake_messages_total{outcome=\"duplicate\"} 3\n");
    s_has(text, "polegate_intake_messages_total{outcome=\"rejected\"} 2\n");
    s_has(text, "polegate_intake_connections_refused_total 6\n");
    s_has(text, "polegate_published_records_total{destination=\"national\"} 2\n");
    s_has(text, "polegate_published_records_total{destination=\"idle\"} 0\n");
    s_has(text, "polegate_published_records_total{destination=\"mer \\\"x\\\"\"} 1\n");
    s_has(text, "polegate_dead_letter_records_published_total 1\n");
    s_has(text, "polegate_withheld_records_total{destination=\"mer\",reason=\"kind\"} 2\n");
    s_has(text, "polegate_audit_events_total{action=\"withhold\"} 2\n");
    s_has(text, "polegate_audit_events_total{action=\"disclose\"} 1\n");
    s_has(text, "polegate_audit_failures_total{action=\"disclose\"} 1\n");
    s_has(text, "polegate_kafka_transactions_total{result=\"committed\"} 4\n");
    s_has(text, "polegate_kafka_transactions_total{result=\"aborted\"} 1\n");
    s_has(text, "polegate_spool_records 5\n");
    s_has(text, "polegate_spool_bytes 640\n");
    s_has(text, "polegate_dead_letters 2\n");
    s_has(text, "polegate_store_used_ratio 0.250000\n");
    /* One observation per batch, each under the bucket of its wait. */
    s_has(text, "polegate_publish_latency_seconds_count 3\n");
    s_has(text, "polegate_publish_latency_seconds_bucket{le=\"+Inf\"} 3\n");
    s_has(text, "polegate_publish_latency_seconds_bucket{le=\"300\"} 3\n");
    s_has(text, "# TYPE polegate_publish_latency_seconds histogram\n");
    s_has(text, "polegate_ready 1\n");
    /* The partner families only when the partner service runs. */
    ck_assert_ptr_null(strstr(text, "polegate_partner_records_total"));
    free(text);

    st.partner_running = 1;
    st.partner.stored = 9;
    st.lag_count = 1;
    snprintf(st.lag[0].topic, sizeof st.lag[0].topic, "polegate.mer.esx.pole.v1");
    st.lag[0].lag = 42;
    snprintf(st.not_ready, sizeof st.not_ready, "stopping");
    pg_metrics_set_state(m, &st);
    text = s_render(m);
    s_has(text, "polegate_partner_records_total{partner=\"MER\",outcome=\"received\"} 1\n");
    s_has(text, "polegate_rms_deliveries_total{outcome=\"stored\"} 9\n");
    s_has(text, "polegate_partner_consumer_lag{topic=\"polegate.mer.esx.pole.v1\"} 42\n");
    s_has(text, "polegate_ready 0\n");
    free(text);
    pg_metrics_destroy(&m);
    pg_metrics_destroy(&m);
}
END_TEST

/* One HTTP/1.0 GET; the whole answer. */
static char *s_get(int port, const char *req)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char *buf = calloc(1, 65536);
    size_t n = 0;
    ssize_t k;
    while ((k = read(fd, buf + n, 65535 - n)) > 0)
        n += (size_t)k;
    close(fd);
    return buf;
}

START_TEST(test_http)
{
    char why[256];
    pg_metrics *m = pg_metrics_new("127.0.0.1:0", "ESX", why, sizeof why);
    ck_assert_msg(m != NULL, "%s", why);
    int port = pg_metrics_port(m);
    ck_assert_int_gt(port, 0);

    char *r = s_get(port, "GET /readyz HTTP/1.0\r\n\r\n");
    s_has(r, "HTTP/1.1 503"); /* no state handed over yet */
    s_has(r, "\r\n\r\nstarting\n");
    free(r);
    pg_metrics_state st;
    memset(&st, 0, sizeof st);
    pg_metrics_set_state(m, &st);
    r = s_get(port, "GET /readyz HTTP/1.0\r\n\r\n");
    s_has(r, "HTTP/1.1 200");
    s_has(r, "\r\n\r\nready\n");
    free(r);
    r = s_get(port, "GET /metrics HTTP/1.0\r\n\r\n");
    s_has(r, "HTTP/1.1 200");
    s_has(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8");
    s_has(r, "polegate_spool_records 0\n");
    free(r);
    r = s_get(port, "GET /healthz HTTP/1.0\r\n\r\n");
    s_has(r, "HTTP/1.1 200");
    free(r);
    r = s_get(port, "GET /nothing HTTP/1.0\r\n\r\n");
    s_has(r, "HTTP/1.1 404");
    free(r);
    r = s_get(port, "DELETE /metrics HTTP/1.0\r\n\r\n");
    s_has(r, "HTTP/1.1 405");
    free(r);

    /* The same port twice: the second cannot bind, and says so. */
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    pg_metrics *again = pg_metrics_new(listen, "ESX", why, sizeof why);
    ck_assert_ptr_null(again);
    s_has(why, "cannot serve HTTP there");
    ck_assert_ptr_null(pg_metrics_new("127.0.0.1", "ESX", why, sizeof why));
    s_has(why, "is not HOST:PORT");
    pg_metrics_destroy(&m);
}
END_TEST

/* Attack: a client opens 32 connections and sends part of a request on each (all the
 * server serves at once). It once kept /readyz from anyone else for as long as it
 * liked; a client gets 8 now, so a probe from another address is answered. */
START_TEST(test_one_client_cannot_take_every_connection)
{
    char why[256];
    pg_metrics *m = pg_metrics_new("127.0.0.1:0", "ESX", why, sizeof why);
    ck_assert_msg(m != NULL, "%s", why);
    int port = pg_metrics_port(m), fds[32], open_ = 0;
    pg_metrics_state st;
    memset(&st, 0, sizeof st);
    pg_metrics_set_state(m, &st);
    for (int i = 0; i < 32; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in from = {.sin_family = AF_INET};
        from.sin_addr.s_addr = htonl(0x7f000002); /* 127.0.0.2: another client */
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ck_assert_int_eq(bind(fds[i], (struct sockaddr *)&from, sizeof from), 0);
        if (connect(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0 &&
            write(fds[i], "GET /readyz HTTP/1.1\r\n", 22) == 22)
            open_++;
    }
    ck_assert_int_gt(open_, 0);
    usleep(200 * 1000);
    char *r = s_get(port, "GET /readyz HTTP/1.0\r\n\r\n");
    s_has(r, "HTTP/1.1 200");
    free(r);
    for (int i = 0; i < 32; i++)
        close(fds[i]);
    pg_metrics_destroy(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_state_and_hooks);
    tcase_add_test(tc, test_http);
    tcase_add_test(tc, test_one_client_cannot_take_every_connection);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
