/* pg_metrics: /metrics, /healthz and /readyz over libmicrohttpd, from the counters the
 * daemon hands over (metrics.h). */
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "polegate/error.h"
#include "polegate/version.h"

/* Upper bounds of the publish latency histogram, seconds: group commit and a Kafka
 * transaction take milliseconds; a broker outage takes minutes. */
static const double s_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                   1,     2.5,  5,     10,   30,  60,   300};
#define S_NBUCKETS (sizeof s_buckets / sizeof s_buckets[0])

/* Spool sequence -> when the intake acknowledged it: one entry per intake group. */
#define S_RING 4096

/* A counter with up to two label values, kept in a small table: destinations,
 * reasons, partners and actions are few. */
typedef enum s_family {
    S_PUBLISHED, /* destination */
    S_WITHHELD,  /* destination, reason */
    S_WITHDRAWN, /* destination, reason */
    S_AUDIT,     /* action */
    S_AUDIT_FAIL,
    S_PARTNER, /* partner, outcome */
} s_family;

typedef struct s_counter {
    s_family family;
    char a[64], b[64];
    uint64_t value;
} s_counter;

#define S_MAX_COUNTERS 1024

struct pg_metrics {
    pthread_mutex_t lock;
    struct MHD_Daemon *httpd;
    int port;
    char force[8];
    time_t started;
    pg_metrics_state st;
    int has_state;
    s_counter counters[S_MAX_COUNTERS];
    size_t ncounters;
    uint64_t dlq_published; /* dead-letter topic records committed */
    /* publish latency */
    struct {
        uint64_t seq;
        struct timespec at;
    } ring[S_RING];
    size_t ring_head, ring_len;
    uint64_t buckets[S_NBUCKETS];
    uint64_t lat_count;
    double lat_sum;
    double last_commit; /* Unix seconds; 0: none yet */
};

static double s_since(const struct timespec *then, const struct timespec *now)
{
    return (double)(now->tv_sec - then->tv_sec) + (double)(now->tv_nsec - then->tv_nsec) / 1e9;
}

/* The counter (family, a, b), made when new; NULL when the table is full. Locked. */
static s_counter *s_counter_at(pg_metrics *m, s_family family, const char *a, const char *b)
{
    a = a ? a : "";
    b = b ? b : "";
    for (size_t i = 0; i < m->ncounters; i++) {
        s_counter *c = &m->counters[i];
        if (c->family == family && !strcmp(c->a, a) && !strcmp(c->b, b))
            return c;
    }
    if (m->ncounters == S_MAX_COUNTERS)
        return NULL;
    s_counter *c = &m->counters[m->ncounters++];
    c->family = family;
    snprintf(c->a, sizeof c->a, "%s", a);
    snprintf(c->b, sizeof c->b, "%s", b);
    c->value = 0;
    return c;
}

static void s_add(pg_metrics *m, s_family family, const char *a, const char *b, uint64_t n)
{
    s_counter *c = s_counter_at(m, family, a, b);
    if (c)
        c->value += n;
}

void pg_metrics_spooled(pg_metrics *m, uint64_t next_seq)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&m->lock);
    size_t last = (m->ring_head + m->ring_len + S_RING - 1) % S_RING;
    if (!m->ring_len || m->ring[last].seq < next_seq) {
        if (m->ring_len == S_RING) { /* the producer is far behind: forget the oldest */
            m->ring_head = (m->ring_head + 1) % S_RING;
            m->ring_len--;
        }
        size_t at = (m->ring_head + m->ring_len) % S_RING;
        m->ring[at].seq = next_seq;
        m->ring[at].at = now;
        m->ring_len++;
    }
    pthread_mutex_unlock(&m->lock);
}

static void s_observe(pg_metrics *m, double seconds)
{
    for (size_t i = 0; i < S_NBUCKETS; i++)
        if (seconds <= s_buckets[i])
            m->buckets[i]++;
    m->lat_count++;
    m->lat_sum += seconds;
}

void pg_metrics_on_commit(void *ud, const pg_outbatch *win, uint64_t first_seq, uint64_t last_seq)
{
    pg_metrics *m = ud;
    struct timespec now, wall;
    clock_gettime(CLOCK_MONOTONIC, &now);
    clock_gettime(CLOCK_REALTIME, &wall);
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < win->count; i++) {
        const pg_outrec *r = &win->recs[i];
        if (r->destination)
            s_add(m, S_PUBLISHED, r->destination, NULL, 1);
        else
            m->dlq_published++;
    }
    /* Each batch first_seq..last_seq was acknowledged at the time of the first ring
     * entry above its sequence; entries all of whose batches are now committed go.
     * Batches no intake group announced (a reconcile's, an earlier run's) are not
     * observed. */
    for (uint64_t seq = first_seq; seq && seq <= last_seq; seq++) {
        while (m->ring_len && m->ring[m->ring_head].seq <= seq) {
            m->ring_head = (m->ring_head + 1) % S_RING;
            m->ring_len--;
        }
        if (!m->ring_len)
            break;
        s_observe(m, s_since(&m->ring[m->ring_head].at, &now));
    }
    m->last_commit = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
    pthread_mutex_unlock(&m->lock);
}

void pg_metrics_on_audit(void *ud, const pg_audit_event *ev, int rc)
{
    pg_metrics *m = ud;
    const char *action = pg_audit_action_name(ev->action);
    pthread_mutex_lock(&m->lock);
    if (rc) {
        s_add(m, S_AUDIT_FAIL, action, NULL, 1);
    } else {
        s_add(m, S_AUDIT, action, NULL, 1);
        if (ev->action == PG_AUDIT_WITHHOLD && ev->destination)
            s_add(m, S_WITHHELD, ev->destination, ev->outcome, 1);
        else if (ev->action == PG_AUDIT_WITHDRAW && ev->destination)
            s_add(m, S_WITHDRAWN, ev->destination, ev->outcome, 1);
        else if ((ev->action == PG_AUDIT_RECEIVE || ev->action == PG_AUDIT_REJECT) && ev->partner)
            s_add(m, S_PARTNER, ev->partner,
                  ev->action == PG_AUDIT_RECEIVE ? "received" : "rejected", 1);
    }
    pthread_mutex_unlock(&m->lock);
}

void pg_metrics_destination(pg_metrics *m, const char *destination)
{
    pthread_mutex_lock(&m->lock);
    s_add(m, S_PUBLISHED, destination, NULL, 0);
    pthread_mutex_unlock(&m->lock);
}

void pg_metrics_set_state(pg_metrics *m, const pg_metrics_state *st)
{
    pthread_mutex_lock(&m->lock);
    m->st = *st;
    m->has_state = 1;
    pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------- the text */

/* A label value: \ " and newline escaped, as the format wants. */
static void s_label(pg_buf *out, const char *v)
{
    for (const char *c = v; *c; c++) {
        if (*c == '\\' || *c == '"')
            pg_buf_putc(out, '\\');
        if (*c == '\n') {
            pg_buf_puts(out, "\\n");
            continue;
        }
        pg_buf_putc(out, *c);
    }
}

static void s_head(pg_buf *out, const char *name, const char *type, const char *help)
{
    pg_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_value(pg_buf *out, const char *name, const char *labels, uint64_t v)
{
    pg_buf_printf(out, "%s%s%s%s %llu\n", name, labels ? "{" : "", labels ? labels : "",
                  labels ? "}" : "", (unsigned long long)v);
}

/* Every counter of family, labelled la (and lb when not NULL). */
static void s_family_out(pg_metrics *m, pg_buf *out, s_family family, const char *name,
                         const char *la, const char *lb)
{
    for (size_t i = 0; i < m->ncounters; i++) {
        const s_counter *c = &m->counters[i];
        if (c->family != family)
            continue;
        pg_buf_printf(out, "%s{%s=\"", name, la);
        s_label(out, c->a);
        if (lb) {
            pg_buf_printf(out, "\",%s=\"", lb);
            s_label(out, c->b);
        }
        pg_buf_printf(out, "\"} %llu\n", (unsigned long long)c->value);
    }
}

int pg_metrics_render(pg_metrics *m, pg_buf *out)
{
    pthread_mutex_lock(&m->lock);
    const pg_metrics_state *st = &m->st;
    const pg_intake_stats *is = &st->intake;
    const pg_publisher_stats *ps = &st->publisher;
    char l[128];

    s_head(out, "polegate_build_info", "gauge", "The running polegated's version and force.");
    pg_buf_printf(out, "polegate_build_info{version=\"%s\",force=\"%s\"} 1\n", pg_version(),
                  m->force);
    s_head(out, "polegate_start_time_seconds", "gauge", "When polegated started (Unix time).");
    pg_buf_printf(out, "polegate_start_time_seconds %lld\n", (long long)m->started);
    s_head(out, "polegate_ready", "gauge",
           "1 when /readyz answers 200 (store open, producer id held, partner group joined).");
    pg_buf_printf(out, "polegate_ready %d\n", m->has_state && !st->not_ready[0]);

    s_head(out, "polegate_intake_messages_total", "counter",
           "Native messages taken by the intake, by outcome (accepted excludes duplicates).");
    s_value(out, "polegate_intake_messages_total", "outcome=\"accepted\"",
            is->accepted - is->duplicates);
    s_value(out, "polegate_intake_messages_total", "outcome=\"duplicate\"", is->duplicates);
    s_value(out, "polegate_intake_messages_total", "outcome=\"rejected\"", is->rejected);
    s_value(out, "polegate_intake_messages_total", "outcome=\"retry\"", is->retried);
    s_head(out, "polegate_intake_retries_total", "counter",
           "Retry answers given for want of room, by what was full.");
    s_value(out, "polegate_intake_retries_total", "reason=\"spool_full\"", is->backpressure);
    s_value(out, "polegate_intake_retries_total", "reason=\"store_full\"", is->store_full);
    s_value(out, "polegate_intake_retries_total", "reason=\"disk_full\"", is->disk_full);
    s_head(out, "polegate_intake_connections_refused_total", "counter",
           "Intake connections refused by the CURVE allow-list (their key not on it).");
    s_value(out, "polegate_intake_connections_refused_total", NULL, is->curve_refused);
    s_head(out, "polegate_intake_commits_total", "counter",
           "Intake write transactions committed (one fsync each).");
    s_value(out, "polegate_intake_commits_total", NULL, is->commits);
    s_head(out, "polegate_intake_dead_letters_total", "counter",
           "Rejected messages kept as dead letters.");
    s_value(out, "polegate_intake_dead_letters_total", NULL, is->dead_letters);

    s_head(out, "polegate_published_records_total", "counter",
           "Records in committed Kafka transactions, by destination (tombstones included).");
    s_family_out(m, out, S_PUBLISHED, "polegate_published_records_total", "destination", NULL);
    s_head(out, "polegate_dead_letter_records_published_total", "counter",
           "Dead-letter topic records in committed Kafka transactions.");
    s_value(out, "polegate_dead_letter_records_published_total", NULL, m->dlq_published);
    s_head(out, "polegate_withheld_records_total", "counter",
           "Updates a destination was not sent, by destination and policy reason.");
    s_family_out(m, out, S_WITHHELD, "polegate_withheld_records_total", "destination", "reason");
    s_head(out, "polegate_withdrawn_records_total", "counter",
           "Records withdrawn from a destination (DELETE sent), by destination and reason.");
    s_family_out(m, out, S_WITHDRAWN, "polegate_withdrawn_records_total", "destination", "reason");

    s_head(out, "polegate_kafka_transactions_total", "counter",
           "Kafka transactions of the producer, by result.");
    s_value(out, "polegate_kafka_transactions_total", "result=\"committed\"", ps->transactions);
    s_value(out, "polegate_kafka_transactions_total", "result=\"aborted\"", ps->aborts);
    s_head(out, "polegate_kafka_producer_restarts_total", "counter",
           "librdkafka producer handles remade after a fatal error.");
    s_value(out, "polegate_kafka_producer_restarts_total", NULL, ps->restarts);
    s_head(out, "polegate_kafka_records_resent_total", "counter",
           "Records produced again (their window aborted, a new handle, or a restart).");
    s_value(out, "polegate_kafka_records_resent_total", NULL, ps->resent);
    s_head(out, "polegate_spool_remove_failures_total", "counter",
           "Removals of a committed window from the spool that failed.");
    s_value(out, "polegate_spool_remove_failures_total", NULL, ps->remove_failures);
    s_head(out, "polegate_publishing_stalled", "gauge",
           "1 while publishing is stopped: a committed window cannot be removed, or the "
           "mark of what was sent cannot be written.");
    s_value(out, "polegate_publishing_stalled", NULL, ps->stalled ? 1 : 0);
    s_head(out, "polegate_kafka_delivery_failures_total", "counter",
           "Delivery reports with an error (the window is sent again).");
    s_value(out, "polegate_kafka_delivery_failures_total", NULL, ps->failed);
    s_head(out, "polegate_last_publish_timestamp_seconds", "gauge",
           "When the producer last committed a Kafka transaction (Unix time; 0: not yet).");
    pg_buf_printf(out, "polegate_last_publish_timestamp_seconds %.3f\n", m->last_commit);

    s_head(out, "polegate_publish_latency_seconds", "histogram",
           "From the intake's acknowledgement to the broker's commit, per spool batch.");
    for (size_t i = 0; i < S_NBUCKETS; i++) {
        snprintf(l, sizeof l, "le=\"%g\"", s_buckets[i]);
        s_value(out, "polegate_publish_latency_seconds_bucket", l, m->buckets[i]);
    }
    s_value(out, "polegate_publish_latency_seconds_bucket", "le=\"+Inf\"", m->lat_count);
    pg_buf_printf(out, "polegate_publish_latency_seconds_sum %.6f\n", m->lat_sum);
    s_value(out, "polegate_publish_latency_seconds_count", NULL, m->lat_count);

    s_head(out, "polegate_spool_records", "gauge", "Records accepted and not yet on the broker.");
    s_value(out, "polegate_spool_records", NULL, st->spool.records);
    s_head(out, "polegate_spool_bytes", "gauge", "Bytes of the records waiting in the spool.");
    s_value(out, "polegate_spool_bytes", NULL, st->spool.bytes);
    s_head(out, "polegate_spool_batches", "gauge", "Batches waiting in the spool.");
    s_value(out, "polegate_spool_batches", NULL, st->spool.batches);
    s_head(out, "polegate_dead_letters", "gauge", "Dead letters kept in the store.");
    s_value(out, "polegate_dead_letters", NULL, st->dead_letters);
    if (st->store_used_ratio >= 0) {
        s_head(out, "polegate_store_used_ratio", "gauge",
               "Share of the store's map (store.map_size) in use.");
        pg_buf_printf(out, "polegate_store_used_ratio %.6f\n", st->store_used_ratio);
        s_head(out, "polegate_store_intake_limit_ratio", "gauge",
               "The used ratio at which the intake answers retry (the rest is headroom).");
        pg_buf_printf(out, "polegate_store_intake_limit_ratio %.6f\n", st->store_limit_ratio);
    }

    s_head(out, "polegate_audit_events_total", "counter", "Audit events written, by action.");
    s_family_out(m, out, S_AUDIT, "polegate_audit_events_total", "action", NULL);
    s_head(out, "polegate_audit_failures_total", "counter",
           "Audit events that could not be written, by action.");
    s_family_out(m, out, S_AUDIT_FAIL, "polegate_audit_failures_total", "action", NULL);
    s_head(out, "polegate_audit_errors_total", "counter",
           "Disclosures and withdrawals whose audit event the producer could not write.");
    s_value(out, "polegate_audit_errors_total", NULL, ps->audit_errors);

    if (st->partner_running) {
        const pg_partner_stats *pt = &st->partner;
        s_head(out, "polegate_partner_records_total", "counter",
               "Partner records audited, by partner force and outcome.");
        s_family_out(m, out, S_PARTNER, "polegate_partner_records_total", "partner", "outcome");
        s_head(out, "polegate_partner_updates_total", "counter",
               "Partner records consumed, by what became of them.");
        s_value(out, "polegate_partner_updates_total", "outcome=\"accepted\"", pt->accepted);
        s_value(out, "polegate_partner_updates_total", "outcome=\"duplicate\"", pt->duplicates);
        s_value(out, "polegate_partner_updates_total", "outcome=\"stale\"", pt->stale);
        s_value(out, "polegate_partner_updates_total", "outcome=\"own\"", pt->own);
        s_value(out, "polegate_partner_updates_total", "outcome=\"rejected\"", pt->rejected);
        s_value(out, "polegate_partner_updates_total", "outcome=\"skipped\"", pt->skipped);
        s_head(out, "polegate_rms_deliveries_total", "counter",
               "Native messages sent to the RMS import, by its answer.");
        s_value(out, "polegate_rms_deliveries_total", "outcome=\"stored\"", pt->stored);
        s_value(out, "polegate_rms_deliveries_total", "outcome=\"rejected\"", pt->rms_rejected);
        s_value(out, "polegate_rms_deliveries_total", "outcome=\"pending\"",
                pt->submitted > pt->stored + pt->rms_rejected
                    ? pt->submitted - pt->stored - pt->rms_rejected
                    : 0);
        s_head(out, "polegate_partner_consumer_lag", "gauge",
               "Messages on a partner topic not yet read by this force's group.");
        for (size_t i = 0; i < st->lag_count; i++) {
            if (st->lag[i].lag < 0)
                continue;
            pg_buf_puts(out, "polegate_partner_consumer_lag{topic=\"");
            s_label(out, st->lag[i].topic);
            pg_buf_printf(out, "\"} %lld\n", (long long)st->lag[i].lag);
        }
    }
    int rc = out->data ? 0 : PG_ENOMEM;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ---------------------------------------------------------------- HTTP */

static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned status, const char *type,
                               const void *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void)version, (void)upload, (void)con_cls;
    pg_metrics *m = cls;
    static const char text[] = "text/plain; charset=utf-8";
    if (*upload_size) /* nothing here takes a body */
        return s_reply(conn, MHD_HTTP_BAD_REQUEST, text, "no body expected\n", 17);
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return s_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "GET only\n", 9);
    if (!strcmp(url, "/metrics")) {
        pg_buf out = PG_BUF_INIT;
        if (pg_metrics_render(m, &out)) {
            pg_buf_free(&out);
            return s_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, text, "out of memory\n", 14);
        }
        enum MHD_Result r = s_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                    out.data, out.len);
        pg_buf_free(&out);
        return r;
    }
    if (!strcmp(url, "/healthz"))
        return s_reply(conn, MHD_HTTP_OK, text, "ok\n", 3);
    if (!strcmp(url, "/readyz")) {
        char body[sizeof m->st.not_ready + 2];
        pthread_mutex_lock(&m->lock);
        const char *why = !m->has_state ? "starting" : m->st.not_ready;
        int n = snprintf(body, sizeof body, "%s\n", *why ? why : "ready");
        pthread_mutex_unlock(&m->lock);
        return s_reply(conn, *why ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK, text, body,
                       (size_t)n < sizeof body ? (size_t)n : sizeof body - 1);
    }
    return s_reply(conn, MHD_HTTP_NOT_FOUND, text, "not found: /metrics, /healthz, /readyz\n", 39);
}

/* libmicrohttpd's own messages (a connection it could not serve, say) into our log. */
static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    pg_log(PG_LOG_WARN, "metrics: %s", msg);
}

/* "HOST:PORT" or "[V6]:PORT" -> an address to bind. 0 or PG_ECONFIG with errstr. */
static int s_resolve(const char *listen, struct sockaddr_storage *sa, socklen_t *len, char *errstr,
                     size_t errstr_size)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    size_t hn = colon ? (size_t)(colon - listen) : 0;
    if (!colon || !hn || hn >= sizeof host || !colon[1])
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "'%s' is not HOST:PORT", listen);
    memcpy(host, listen, hn);
    host[hn] = 0;
    if (host[0] == '[' && host[hn - 1] == ']') {
        memmove(host, host + 1, hn - 2);
        host[hn - 2] = 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc || !res)
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "'%s': %s", listen,
                       rc ? gai_strerror(rc) : "no address");
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

pg_metrics *pg_metrics_new(const char *listen, const char *force, char *errstr, size_t errstr_size)
{
    pg_metrics *m = calloc(1, sizeof *m);
    if (!m) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    snprintf(m->force, sizeof m->force, "%s", force ? force : "");
    m->started = time(NULL);
    m->st.store_used_ratio = -1;
    if (!listen)
        return m;
    struct sockaddr_storage sa = {0}; /* s_resolve fills it or fails (pg_errf's code) */
    socklen_t salen = 0;
    if (s_resolve(listen, &sa, &salen, errstr, errstr_size))
        goto err;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    m->httpd = MHD_start_daemon(
        flags, 0, NULL, NULL, s_handle, m, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_CONNECTION_LIMIT, 32u,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, 8u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->httpd) {
        pg_errf(PG_EIO, errstr, errstr_size,
                "metrics.listen %s: cannot serve HTTP there (address in use, or not this "
                "host's?)",
                listen);
        goto err;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->httpd, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : 0;
    return m;
err:
    pg_metrics_destroy(&m);
    return NULL;
}

void pg_metrics_destroy(pg_metrics **p)
{
    if (!p || !*p)
        return;
    pg_metrics *m = *p;
    if (m->httpd)
        MHD_stop_daemon(m->httpd);
    pthread_mutex_destroy(&m->lock);
    free(m);
    *p = NULL;
}

int pg_metrics_port(const pg_metrics *m)
{
    return m->port;
}
