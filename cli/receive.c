/* polegate receive: a local RMS import endpoint for tests and the demo: takes native
 * messages over ZeroMQ, validates them as the RMS would, stores them and acks. */
#include <errno.h>
#include <glib.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "cli.h"
#include "curve.h"
#include "polegate/adapter.h"
#include "polegate/error.h"
#include "polegate/pole.h"
#include "rms_delivery.h"

static const char s_usage_text[] =
    "usage: polegate receive --bind ENDPOINT --out DIR|FILE [OPTION]...\n"
    "\n"
    "Stand in for the local RMS's import endpoint (docs/delivery.md): bind a ZeroMQ\n"
    "ROUTER, validate every message received with the adapter of --format (an invalid\n"
    "one is acked \"rejected\" with the reason), store it, and ack \"stored\" once it is on\n"
    "disk. A message whose correlation id was stored before is acked again, not stored\n"
    "twice.\n"
    "\n"
    "  --bind ENDPOINT     where to listen, e.g. tcp://127.0.0.1:5601 or ipc:///tmp/rms\n"
    "  --out DIR|FILE      a directory: one file per message (pg-<sequence>.ndjson|.xml,\n"
    "                      written atomically); a file (atx only): one NDJSON line per\n"
    "                      message, appended\n"
    "  --format atx|nx5    the RMS's format (default atx)\n"
    "  --secret-key FILE   CURVE: our secret key (polegate keygen); the gateway pins\n"
    "                      its public key (curve.rms_import_key_file)\n"
    "  --client-keys FILE  CURVE: the gateway keys allowed to deliver (\"<key> [name]\"\n"
    "                      a line); others are refused and logged\n"
    "  --reject-every N    reject every N-th new message (to test the sender's handling)\n"
    "  --max N             exit after storing N messages\n"
    "  -q, --quiet         no line per message on stderr\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "On SIGTERM or SIGINT it prints a summary to stdout and exits 0. Exit status 1 when\n"
    "the output cannot be written, 2 usage error.\n";

/* Correlation ids remembered to recognise a message sent again. */
#define S_SEEN_MAX 65536

typedef struct s_opts {
    const char *bind, *out, *format;
    const char *secret_key, *client_keys; /* CURVE */
    long reject_every, max;
    int quiet;
} s_opts;

typedef struct s_rx {
    s_opts o;
    const pg_adapter_ops *adapter;
    pg_changeset *cs;
    pg_rms_delivery *dir; /* --out DIR */
    FILE *file;           /* --out FILE */
    pg_buf line, ack;
    GHashTable *seen; /* correlation id -> 1, oldest first in seen_order */
    GQueue *seen_order;
    unsigned long received, stored, rejected, repeats;
} s_rx;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int s_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("polegate receive: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(polegate receive --help describes the options)\n", stderr);
    va_end(ap);
    return 2;
}

static int s_long(const char *opt, const char *v, long *out)
{
    char *end;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || n < 1)
        return s_usage_error("%s: expected a whole number of 1 or more", opt);
    *out = n;
    return 0;
}

/* 0, 2 usage error, 3 --help. */
static int s_parse(int argc, char **argv, s_opts *o)
{
    o->format = "atx";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return 3;
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        const char **str = !strcmp(a, "--bind")          ? &o->bind
                           : !strcmp(a, "--out")         ? &o->out
                           : !strcmp(a, "--format")      ? &o->format
                           : !strcmp(a, "--secret-key")  ? &o->secret_key
                           : !strcmp(a, "--client-keys") ? &o->client_keys
                                                         : NULL;
        long *num = !strcmp(a, "--reject-every") ? &o->reject_every
                    : !strcmp(a, "--max")        ? &o->max
                                                 : NULL;
        if (!str && !num)
            return s_usage_error("unknown option '%s'", a);
        if (!v)
            return s_usage_error("%s needs a value", a);
        if (str)
            *str = v;
        else if (s_long(a, v, num))
            return 2;
        i++;
    }
    if (!o->bind)
        return s_usage_error("--bind is required");
    if (!o->out)
        return s_usage_error("--out is required");
    if (!o->secret_key != !o->client_keys)
        return s_usage_error("--secret-key and --client-keys go together (CURVE)");
    return 0;
}

/* ---------------------------------------------------------------- storing */

static int s_seen(s_rx *rx, const char *id)
{
    return g_hash_table_contains(rx->seen, id);
}

static void s_remember(s_rx *rx, const char *id)
{
    char *copy = g_strdup(id);
    g_hash_table_add(rx->seen, copy);
    g_queue_push_tail(rx->seen_order, copy);
    if (g_queue_get_length(rx->seen_order) > S_SEEN_MAX)
        g_hash_table_remove(rx->seen, g_queue_pop_head(rx->seen_order));
}

/* Store one valid message durably. 0 or PG_EIO with errstr. */
static int s_store(s_rx *rx, const char *id, const uint8_t *msg, size_t len, char *errstr,
                   size_t errstr_size)
{
    if (rx->dir) {
        int rc = pg_rms_delivery_submit(rx->dir, id, msg, len, NULL, NULL, errstr, errstr_size);
        if (rc == 0)
            pg_rms_delivery_poll(rx->dir, 0, errstr, errstr_size); /* stored: report, free */
        return rc;
    }
    /* One NDJSON line: JSON cannot hold a raw line break inside a string, so any in
     * the message is white space between tokens and may become a space. */
    pg_buf_reset(&rx->line);
    if (pg_buf_append(&rx->line, msg, len) < 0 || pg_buf_putc(&rx->line, '\n') < 0)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    for (size_t i = 0; i + 1 < rx->line.len; i++)
        if (rx->line.data[i] == '\n' || rx->line.data[i] == '\r')
            rx->line.data[i] = ' ';
    if (fwrite(rx->line.data, 1, rx->line.len, rx->file) != rx->line.len || fflush(rx->file) != 0 ||
        fsync(fileno(rx->file)) != 0)
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", rx->o.out, strerror(errno));
    return 0;
}

/* Validate and store one message; *status/reason say what to ack. <0 only when the
 * output failed (the message is then not acked: the sender will send it again). */
static int s_handle(s_rx *rx, const char *id, const uint8_t *msg, size_t len, int *status,
                    char *reason, size_t reason_size)
{
    rx->received++;
    *status = 0;
    if (s_seen(rx, id)) {
        rx->repeats++;
        return 0;
    }
    pg_adapter_ctx ctx = {0};
    pg_changeset_reset(rx->cs);
    unsigned long nth = rx->stored + rx->rejected + 1;
    if (rx->o.reject_every && nth % (unsigned long)rx->o.reject_every == 0) {
        *status = PG_EINVALID;
        snprintf(reason, reason_size, "receive: every %ld-th message is rejected (--reject-every)",
                 rx->o.reject_every);
    } else if (rx->adapter->decode(&ctx, msg, len, rx->cs, reason, reason_size) < 0) {
        *status = PG_EINVALID;
    }
    if (*status < 0) {
        rx->rejected++;
        return 0;
    }
    char err[PG_ERRSTR_SIZE];
    if (s_store(rx, id, msg, len, err, sizeof err) < 0) {
        fprintf(stderr, "polegate receive: %s\n", err);
        return PG_EIO;
    }
    s_remember(rx, id);
    rx->stored++;
    return 0;
}

/* ---------------------------------------------------------------- the loop */

static int s_open_out(s_rx *rx)
{
    struct stat st;
    char e[PG_ERRSTR_SIZE];
    /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): s_parse requires --out */
    if (stat(rx->o.out, &st) == 0 && S_ISDIR(st.st_mode)) {
        pg_rms_delivery_config cfg = {
            .transport = "dir",
            .endpoint = rx->o.out,
            .extension = rx->adapter->extensions[0],
            .window = 1,
        };
        rx->dir = pg_rms_delivery_new(&cfg, e, sizeof e);
        if (!rx->dir) {
            fprintf(stderr, "polegate receive: %s\n", e);
            return 1;
        }
        return 0;
    }
    if (rx->adapter->one_per_file)
        return s_usage_error("--out %s: %s are stored one per file: give a directory", rx->o.out,
                             rx->adapter->messages);
    rx->file = fopen(rx->o.out, "a");
    if (!rx->file) {
        fprintf(stderr, "polegate receive: --out %s: %s\n", rx->o.out, strerror(errno));
        return 1;
    }
    return 0;
}

/* Read one [identity][correlation id][message] from the ROUTER and ack it. 0, or 1
 * when the output failed. */
static int s_serve_one(s_rx *rx, void *sock)
{
    zmq_msg_t part[3];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 3) {
            part[n++] = m;
        } else {
            zmq_msg_close(&m);
            n = 4; /* too many frames: not ours */
        }
    }
    int rc = 0;
    if (n != 3 || zmq_msg_size(&part[1]) < 1 || zmq_msg_size(&part[1]) > 128) {
        fprintf(stderr, "polegate receive: ignored a message that is not [correlation id, "
                        "native message]\n");
        goto done;
    }
    char id[129];
    memcpy(id, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]));
    id[zmq_msg_size(&part[1])] = '\0';
    int status;
    char reason[PG_ERRSTR_SIZE] = "";
    unsigned long repeats = rx->repeats;
    if (s_handle(rx, id, zmq_msg_data(&part[2]), zmq_msg_size(&part[2]), &status, reason,
                 sizeof reason) < 0) {
        rc = 1;
        goto done;
    }
    if (!rx->o.quiet)
        fprintf(stderr, "%s %s%s%s\n",
                status < 0              ? "rejected"
                : rx->repeats > repeats ? "repeat"
                                        : "stored",
                id, status < 0 ? ": " : "", reason);
    pg_buf_reset(&rx->ack);
    pg_rms_delivery_ack_format(status, reason, &rx->ack);
    zmq_send(sock, zmq_msg_data(&part[0]), zmq_msg_size(&part[0]), ZMQ_SNDMORE);
    zmq_send(sock, id, strlen(id), ZMQ_SNDMORE);
    zmq_send(sock, rx->ack.data, rx->ack.len, 0);
done:
    for (int i = 0; i < n && i < 3; i++)
        zmq_msg_close(&part[i]);
    return rc;
}

static int s_serve(s_rx *rx)
{
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_ROUTER) : NULL;
    int rc = 1;
    char secret[PG_CURVE_KEY_LEN], err[PG_ERRSTR_SIZE];
    pg_curve_allow *allow = NULL;
    pg_zap *zap = NULL;
    if (sock && rx->o.secret_key) {
        /* CURVE: only the gateways whose keys are on --client-keys may deliver. */
        if (pg_curve_key_load(rx->o.secret_key, 1, secret, err, sizeof err) ||
            !(allow = pg_curve_allow_load(rx->o.client_keys, err, sizeof err)) ||
            !(zap = pg_zap_start(ctx, allow, "polegate receive", err, sizeof err)) ||
            pg_curve_server(sock, secret, err, sizeof err)) {
            fprintf(stderr, "polegate receive: %s\n", err);
            goto out;
        }
    }
    if (!sock || zmq_bind(sock, rx->o.bind) != 0) {
        fprintf(stderr, "polegate receive: --bind %s: %s\n", rx->o.bind, zmq_strerror(zmq_errno()));
        goto out;
    }
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    fprintf(stderr, "polegate receive: listening on %s (%s), storing to %s\n", rx->o.bind,
            rx->adapter->format, rx->o.out);
    rc = 0;
    while (!s_stop && !rc && !(rx->o.max && rx->stored >= (unsigned long)rx->o.max)) {
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        int n = zmq_poll(&it, 1, 200);
        if (n < 0 && zmq_errno() != EINTR) {
            fprintf(stderr, "polegate receive: %s\n", zmq_strerror(zmq_errno()));
            rc = 1;
        } else if (n > 0) {
            rc = s_serve_one(rx, sock);
        }
    }
out:
    if (sock)
        zmq_close(sock);
    pg_zap_stop(&zap);
    pg_curve_allow_destroy(&allow);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}

int pg_cli_receive(int argc, char **argv)
{
    s_rx rx = {.line = PG_BUF_INIT, .ack = PG_BUF_INIT};
    int rc = s_parse(argc, argv, &rx.o);
    if (rc == 3) {
        fputs(s_usage_text, stdout);
        return 0;
    }
    if (rc)
        return rc;
    rx.adapter = pg_adapter_find(rx.o.format);
    if (!rx.adapter)
        return s_usage_error("--format %s: expected atx or nx5", rx.o.format);
    if ((rc = s_open_out(&rx)) != 0)
        return rc;
    rx.cs = pg_changeset_new();
    rx.seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    rx.seen_order = g_queue_new();
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    rc = rx.cs ? s_serve(&rx) : 1;
    printf("polegate receive: %lu received, %lu stored, %lu rejected, %lu repeats\n", rx.received,
           rx.stored, rx.rejected, rx.repeats);
    fflush(stdout);
    if (rx.file && fclose(rx.file) != 0)
        rc = 1;
    pg_rms_delivery_destroy(&rx.dir);
    pg_changeset_destroy(&rx.cs);
    g_queue_free(rx.seen_order);
    g_hash_table_destroy(rx.seen);
    pg_buf_free(&rx.line);
    pg_buf_free(&rx.ack);
    return rc;
}
