/* polegate send: split native files into messages, send each to polegated, print acks. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "cli.h"
#include "curve.h"
#include "polegate/adapter.h"
#include "polegate/buf.h"
#include "polegate/error.h"

static const char s_usage_text[] =
    "usage: polegate send --to ENDPOINT [--format atx|nx5] [OPTION]... FILE...\n"
    "\n"
    "Send each native message of each FILE to a running polegated (docs/intake.md) and\n"
    "print its acknowledgement as one line: FILE:LINE <ack json>.\n"
    "\n"
    "  --to ENDPOINT       the daemon's intake, e.g. tcp://127.0.0.1:5555\n"
    "  --secret-key FILE   CURVE: our secret key (polegate keygen; its public key on\n"
    "                      the daemon's curve.intake_clients_file)\n"
    "  --server-key FILE   CURVE: the daemon's public key (pinned)\n"
    "  --format atx|nx5    format of the files; default: from the name (.ndjson, .jsonl,\n"
    "                      .json: atx; .xml: nx5)\n"
    "  --timeout-ms N      how long to wait for each ack (default 10000)\n"
    "  --retries N         how often to send a message again that was answered\n"
    "                      \"retry\", waiting 200 ms, then twice as long each time\n"
    "                      (default 3)\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "A FILE of - is standard input (needs --format). Messages are sent one at a time,\n"
    "in file order, each after the previous one was acknowledged.\n"
    "\n"
    "Exit status: 0 every message accepted; 1 some message rejected (or still \"retry\"\n"
    "after the retries), or a file could not be read; 2 usage error, or no daemon\n"
    "answered.\n";

typedef struct s_send {
    void *ctx, *sock;
    const char *endpoint;
    const char *file;
    int timeout_ms, retries;
    size_t accepted, rejected;
    int dead; /* no answer: stop everything */
} s_send;

static int s_usage_error(const char *what)
{
    fprintf(stderr, "polegate send: %s\n(polegate send --help describes the options)\n", what);
    return 2;
}

static int s_read_file(const char *path, pg_buf *out)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return -1;
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = pg_buf_append(out, chunk, n);
    if (ferror(f))
        rc = -1;
    if (f != stdin)
        fclose(f);
    return rc;
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* Send one message and wait for its ack into ack. 0, or -1 when none came in time. */
static int s_exchange(s_send *s, const uint8_t *msg, size_t len, pg_buf *ack)
{
    if (zmq_send(s->sock, msg, len, 0) < 0)
        return -1;
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = zmq_msg_recv(&m, s->sock, 0);
    if (rc >= 0) {
        pg_buf_reset(ack);
        rc = pg_buf_append(ack, zmq_msg_data(&m), zmq_msg_size(&m));
    }
    zmq_msg_close(&m);
    return rc < 0 ? -1 : 0;
}

static int s_each(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_send *s = arg;
    pg_buf ack = PG_BUF_INIT;
    const char *status = NULL;
    long wait_ms = 200;
    json_t *j = NULL;
    for (int attempt = 0;; attempt++) {
        if (s_exchange(s, msg, len, &ack)) {
            fprintf(stderr,
                    "polegate send: %s:%zu: no answer from %s within %d ms (is polegated "
                    "running and bound there?)\n",
                    s->file, pos, s->endpoint, s->timeout_ms);
            s->dead = 1;
            pg_buf_free(&ack);
            return 1;
        }
        json_decref(j);
        j = json_loadb((const char *)ack.data, ack.len, 0, NULL);
        status = json_string_value(json_object_get(j, "status"));
        if (!status || strcmp(status, "retry") || attempt >= s->retries)
            break;
        s_sleep_ms(wait_ms);
        wait_ms *= 2;
    }
    printf("%s:%zu %.*s\n", s->file, pos, (int)ack.len, (const char *)ack.data);
    fflush(stdout);
    if (status && !strcmp(status, "accepted"))
        s->accepted++;
    else
        s->rejected++;
    json_decref(j);
    pg_buf_free(&ack);
    return 0;
}

int pg_cli_send(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"to", required_argument, NULL, 't'},
        {"secret-key", required_argument, NULL, 'k'},
        {"server-key", required_argument, NULL, 'K'},
        {"format", required_argument, NULL, 'f'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"retries", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    s_send s = {.timeout_ms = 10000, .retries = 3};
    const pg_adapter_ops *format = NULL;
    const char *secret_file = NULL, *server_file = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        long n;
        switch (opt) {
        case 'k':
            secret_file = optarg;
            break;
        case 'K':
            server_file = optarg;
            break;
        case 't':
            s.endpoint = optarg;
            break;
        case 'f':
            format = pg_adapter_find(optarg);
            if (!format)
                return s_usage_error("--format must be atx or nx5");
            break;
        case 'T':
            if (pg_cli_parse_long(optarg, 1, INT_MAX, &n))
                return s_usage_error("--timeout-ms must be a positive number");
            s.timeout_ms = (int)n;
            break;
        case 'r':
            if (pg_cli_parse_long(optarg, 0, 20, &n))
                return s_usage_error("--retries must be from 0 to 20");
            s.retries = (int)n;
            break;
        case 'h':
            fputs(s_usage_text, stdout);
            return 0;
        default:
            return s_usage_error("unknown option");
        }
    }
    char secret[PG_CURVE_KEY_LEN], server[PG_CURVE_KEY_LEN], kerr[PG_ERRSTR_SIZE];
    if (pg_cli_intake_args("send", s.endpoint, secret_file, server_file, secret, server,
                           argc - optind))
        return 2;
    for (int i = optind; i < argc; i++)
        if (pg_cli_file_format("send", format, argv[i]))
            return 2;

    s.ctx = zmq_ctx_new();
    s.sock = s.ctx ? zmq_socket(s.ctx, ZMQ_REQ) : NULL;
    int linger = 0;
    if (!s.sock || zmq_setsockopt(s.sock, ZMQ_LINGER, &linger, sizeof linger) ||
        (secret_file && pg_curve_client(s.sock, secret, server, kerr, sizeof kerr)) ||
        zmq_setsockopt(s.sock, ZMQ_RCVTIMEO, &s.timeout_ms, sizeof s.timeout_ms) ||
        zmq_setsockopt(s.sock, ZMQ_SNDTIMEO, &s.timeout_ms, sizeof s.timeout_ms) ||
        zmq_connect(s.sock, s.endpoint)) {
        fprintf(stderr, "polegate send: cannot connect to %s: %s\n", s.endpoint,
                zmq_strerror(errno));
        if (s.sock)
            zmq_close(s.sock);
        if (s.ctx)
            zmq_ctx_term(s.ctx);
        return 2;
    }

    int unreadable = 0;
    pg_buf data = PG_BUF_INIT;
    for (int i = optind; i < argc && !s.dead; i++) {
        const pg_adapter_ops *a = format ? format : pg_adapter_for_file(argv[i]);
        s.file = strcmp(argv[i], "-") ? argv[i] : "<stdin>";
        pg_buf_reset(&data);
        if (s_read_file(argv[i], &data)) {
            fprintf(stderr, "polegate send: %s: %s\n", argv[i], strerror(errno));
            unreadable = 1;
            continue;
        }
        a->split(data.data, data.len, s_each, &s);
    }
    pg_buf_free(&data);
    zmq_close(s.sock);
    zmq_ctx_term(s.ctx);
    if (s.dead)
        return 2;
    return s.rejected || unreadable ? 1 : 0;
}
