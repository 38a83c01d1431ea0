/* polegate status: a running polegated's state for a human, from its metrics endpoint
 * (/readyz and two scrapes of /metrics, for the rates). */
#include <curl/curl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "polegate/buf.h"
#include "polegate/error.h"

/* One sample of the exposition text: name, its labels as written, value. */
typedef struct s_sample {
    char *name;
    char *labels; /* "" when none: `destination="national",reason="kind"` */
    double value;
} s_sample;

typedef struct s_scrape {
    s_sample *s;
    size_t n, cap;
} s_scrape;

static size_t s_write(char *data, size_t size, size_t nmemb, void *ud)
{
    return pg_buf_append(ud, data, size * nmemb) ? 0 : size * nmemb;
}

/* GET url into body; the HTTP status, or -1 with errstr when nothing answered. */
static long s_get(const char *url, pg_buf *body, char *errstr, size_t errstr_size)
{
    CURL *c = curl_easy_init();
    if (!c)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory"), -1;
    char err[CURL_ERROR_SIZE] = "";
    pg_buf_reset(body);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", url, *err ? err : curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    pg_buf_putc(body, 0);
    return status;
}

static void s_scrape_free(s_scrape *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        free(sc->s[i].name), free(sc->s[i].labels);
    free(sc->s);
    memset(sc, 0, sizeof *sc);
}

/* The sample lines of text (`name{labels} value` or `name value`). */
static int s_parse(char *text, s_scrape *sc)
{
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (*line == '#' || !*line)
            continue;
        char *sp = strrchr(line, ' ');
        if (!sp)
            continue;
        *sp = 0;
        char *brace = strchr(line, '{'), *labels = "";
        if (brace) {
            char *end = strrchr(brace, '}');
            if (!end)
                continue;
            *brace = 0, *end = 0;
            labels = brace + 1;
        }
        if (pg_grow((void **)&sc->s, &sc->cap, sc->n + 1, sizeof *sc->s))
            return PG_ENOMEM;
        s_sample *s = &sc->s[sc->n];
        s->name = strdup(line);
        s->labels = strdup(labels);
        s->value = strtod(sp + 1, NULL);
        if (!s->name || !s->labels)
            return PG_ENOMEM;
        sc->n++;
    }
    return 0;
}

/* The value of name whose labels hold want (NULL: any), summed; NAN when none. */
static double s_val(const s_scrape *sc, const char *name, const char *want)
{
    double sum = NAN;
    for (size_t i = 0; i < sc->n; i++)
        if (!strcmp(sc->s[i].name, name) && (!want || strstr(sc->s[i].labels, want)))
            sum = isnan(sum) ? sc->s[i].value : sum + sc->s[i].value;
    return sum;
}

/* The value of label key in labels into out ("" when absent). */
static void s_label(const char *labels, const char *key, char *out, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof pat, "%s=\"", key);
    const char *p = strstr(labels, pat);
    out[0] = 0;
    if (!p)
        return;
    p += strlen(pat);
    size_t n = 0;
    while (p[n] && p[n] != '"' && n + 1 < size)
        n++;
    memcpy(out, p, n);
    out[n] = 0;
}

/* Per second between a and b (seconds apart); 0 when unknown. */
static double s_rate(const s_scrape *a, const s_scrape *b, double seconds, const char *name,
                     const char *want)
{
    double va = s_val(a, name, want), vb = s_val(b, name, want);
    if (isnan(va) || isnan(vb) || seconds <= 0 || vb < va)
        return 0;
    return (vb - va) / seconds;
}

/* The q-quantile of the histogram name since start, as Prometheus estimates it
 * (linear within a bucket); NAN without observations. */
static double s_quantile(const s_scrape *sc, const char *name, double q)
{
    char bucket[128];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    double total = s_val(sc, bucket, "le=\"+Inf\"");
    if (isnan(total) || total <= 0)
        return NAN;
    double rank = q * total, prev_le = 0, prev_count = 0;
    for (size_t i = 0; i < sc->n; i++) {
        if (strcmp(sc->s[i].name, bucket) || strstr(sc->s[i].labels, "+Inf"))
            continue;
        char le[32];
        s_label(sc->s[i].labels, "le", le, sizeof le);
        double upper = strtod(le, NULL), count = sc->s[i].value;
        if (count >= rank) {
            if (count == prev_count)
                return upper;
            return prev_le + (upper - prev_le) * (rank - prev_count) / (count - prev_count);
        }
        prev_le = upper, prev_count = count;
    }
    return prev_le;
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: polegate status [--url URL | --config FILE] [--interval SECONDS]\n"
               "\n"
               "Print a running polegated's state: readiness (and why not), intake and\n"
               "publish rates, spool, last publish, latency, dead letters, audit, store and\n"
               "partner lag, from its metrics endpoint (metrics.listen).\n"
               "\n"
               "  --url URL           the endpoint (default http://127.0.0.1:9464)\n"
               "  --config FILE       the endpoint of the gateway FILE configures\n"
               "  --interval SECONDS  between the two scrapes the rates come from (default 2,\n"
               "                      0: totals only)\n"
               "\n"
               "Exit status: 0 ready, 1 not ready or not reachable, 2 usage error.\n");
}

/* The endpoint of the config at path: http://HOST:PORT, or 1 with a message. */
static int s_url_from_config(const char *path, char *url, size_t size)
{
    char errs[8192];
    pg_config *cfg = pg_config_load(path, errs, sizeof errs);
    if (!cfg) {
        fprintf(stderr, "polegate status: %s\n", errs);
        return 1;
    }
    int rc = 0;
    if (!cfg->metrics_listen) {
        fprintf(stderr, "polegate status: %s has no metrics.listen: the gateway serves no status\n",
                path);
        rc = 1;
    } else {
        /* A wildcard address is reached on loopback. */
        const char *l = cfg->metrics_listen, *colon = strrchr(l, ':');
        int any = !strncmp(l, "0.0.0.0:", 8) || !strncmp(l, "[::]:", 5);
        snprintf(url, size, "http://%.*s%s", any ? 9 : (int)(colon - l), any ? "127.0.0.1" : l,
                 colon);
    }
    pg_config_destroy(&cfg);
    return rc;
}

static void s_print(const char *url, long ready_status, const char *ready_body, const s_scrape *a,
                    const s_scrape *b, double seconds)
{
    char version[64] = "", force[16] = "";
    for (size_t i = 0; i < b->n; i++)
        if (!strcmp(b->s[i].name, "polegate_build_info")) {
            s_label(b->s[i].labels, "version", version, sizeof version);
            s_label(b->s[i].labels, "force", force, sizeof force);
        }
    printf("polegated %s %s at %s: %s%s", force, version, url,
           ready_status == 200 ? "ready" : "NOT READY: ", ready_status == 200 ? "\n" : ready_body);
    time_t now = time(NULL);
    double started = s_val(b, "polegate_start_time_seconds", NULL);
    if (!isnan(started)) {
        long up = (long)difftime(now, (time_t)started);
        printf("  up        %ldd %02ldh %02ldm\n", up / 86400, up / 3600 % 24, up / 60 % 60);
    }
    const char *intake = "polegate_intake_messages_total";
    printf("  intake    %.1f msg/s accepted, %.1f rejected, %.1f retry; since start %.0f "
           "accepted, %.0f duplicate, %.0f rejected, %.0f retry\n",
           s_rate(a, b, seconds, intake, "\"accepted\""),
           s_rate(a, b, seconds, intake, "\"rejected\""),
           s_rate(a, b, seconds, intake, "\"retry\""), s_val(b, intake, "\"accepted\""),
           s_val(b, intake, "\"duplicate\""), s_val(b, intake, "\"rejected\""),
           s_val(b, intake, "\"retry\""));
    int any = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->s[i].name, "polegate_published_records_total"))
            continue;
        char dest[128], want[160];
        s_label(b->s[i].labels, "destination", dest, sizeof dest);
        snprintf(want, sizeof want, "destination=\"%s\"", dest);
        printf("  %s %-10s %.1f records/s, %.0f since start\n", any ? "         " : "published",
               dest, s_rate(a, b, seconds, "polegate_published_records_total", want),
               b->s[i].value);
        any = 1;
    }
    if (!any)
        printf("  published nothing since start\n");
    double last = s_val(b, "polegate_last_publish_timestamp_seconds", NULL);
    if (!isnan(last) && last > 0)
        printf("  last publish %.1f s ago\n", difftime(now, (time_t)last));
    printf("  spool     %.0f records, %.0f bytes waiting%s\n",
           s_val(b, "polegate_spool_records", NULL), s_val(b, "polegate_spool_bytes", NULL),
           s_val(b, "polegate_publishing_stalled", NULL) > 0 ? " (PUBLISHING STOPPED)" : "");
    double p50 = s_quantile(b, "polegate_publish_latency_seconds", 0.5),
           p99 = s_quantile(b, "polegate_publish_latency_seconds", 0.99);
    if (!isnan(p50))
        printf("  latency   intake to broker p50 %.3f s, p99 %.3f s (since start)\n", p50, p99);
    printf("  dead letters %.0f kept, %.0f since start\n", s_val(b, "polegate_dead_letters", NULL),
           s_val(b, "polegate_intake_dead_letters_total", NULL));
    double afail = s_val(b, "polegate_audit_failures_total", NULL),
           aerr = s_val(b, "polegate_audit_errors_total", NULL);
    double events = s_val(b, "polegate_audit_events_total", NULL); /* no action yet: none */
    printf("  audit     %.0f events since start, %.0f NOT WRITTEN\n", isnan(events) ? 0 : events,
           (isnan(afail) ? 0 : afail) + (isnan(aerr) ? 0 : aerr));
    double used = s_val(b, "polegate_store_used_ratio", NULL),
           limit = s_val(b, "polegate_store_intake_limit_ratio", NULL);
    if (!isnan(used))
        printf("  store     %.1f%% used (the intake stops at %.1f%%)\n", used * 100, limit * 100);
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->s[i].name, "polegate_partner_consumer_lag"))
            continue;
        char topic[256];
        s_label(b->s[i].labels, "topic", topic, sizeof topic);
        printf("  partner   %s: %.0f behind\n", topic, b->s[i].value);
    }
    double stored = s_val(b, "polegate_rms_deliveries_total", "\"stored\"");
    if (!isnan(stored))
        printf("  RMS       %.0f stored, %.0f rejected, %.0f pending\n", stored,
               s_val(b, "polegate_rms_deliveries_total", "\"rejected\""),
               s_val(b, "polegate_rms_deliveries_total", "\"pending\""));
}

int pg_cli_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"config", required_argument, NULL, 'c'},
        {"interval", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char url[512] = "http://127.0.0.1:9464";
    long interval = 2;
    int opt;
    const char *config = NULL;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            snprintf(url, sizeof url, "%s", optarg);
            break;
        case 'c':
            config = optarg;
            break;
        case 'i':
            if (pg_cli_parse_long(optarg, 0, 3600, &interval)) {
                fprintf(stderr, "polegate status: --interval: '%s' is not 0 to 3600\n", optarg);
                return 2;
            }
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        s_usage(stderr);
        return 2;
    }
    if (config && s_url_from_config(config, url, sizeof url))
        return 1;
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        url[--n] = 0;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    char why[PG_ERRSTR_SIZE], path[600];
    pg_buf ready = PG_BUF_INIT, body = PG_BUF_INIT;
    s_scrape a = {0}, b = {0};
    int rc = 1;
    snprintf(path, sizeof path, "%s/readyz", url);
    long ready_status = s_get(path, &ready, why, sizeof why);
    if (ready_status < 0) {
        fprintf(stderr, "polegate status: cannot reach polegated: %s\n", why);
        goto out;
    }
    snprintf(path, sizeof path, "%s/metrics", url);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long st = s_get(path, &body, why, sizeof why);
    if (st == 200 && !s_parse((char *)body.data, &a) && interval > 0) {
        sleep((unsigned)interval);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        st = s_get(path, &body, why, sizeof why);
    } else {
        t1 = t0;
    }
    if (st != 200) {
        fprintf(stderr, "polegate status: %s: %s\n", path,
                st < 0 ? why : "not a polegated metrics endpoint (HTTP status not 200)");
        goto out;
    }
    if (interval > 0 && s_parse((char *)body.data, &b)) {
        fprintf(stderr, "polegate status: out of memory\n");
        goto out;
    }
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    s_print(url, ready_status, (const char *)ready.data, &a, interval > 0 ? &b : &a, seconds);
    rc = ready_status == 200 ? 0 : 1;
out:
    s_scrape_free(&a);
    s_scrape_free(&b);
    pg_buf_free(&ready);
    pg_buf_free(&body);
    curl_global_cleanup();
    return rc;
}
