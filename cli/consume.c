/* polegate consume: read a polegate topic and print each record as one JSON line. */
#include <getopt.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "kafka_opts.h"
#include "polegate/buf.h"
#include "polegate/pbjson.h"
#include "polegate/pole.h"
#include "polegate/wire.h"

static const char s_usage_text[] =
    "usage: polegate consume (--brokers B | --config FILE) --topic T [OPTION]...\n"
    "\n"
    "Print each record of a polegate topic (docs/topics.md) as one JSON line:\n"
    "  {\"key\":\"<uuid>\",\"headers\":{\"pg-type\":...},\"value\":{<update as JSON>}}\n"
    "with \"value\":null for a tombstone. The value is decoded by its pg-type header.\n"
    "\n"
    "  --brokers B         bootstrap brokers, host:port[,host:port...]\n"
    "  --config FILE       the daemon's config: its kafka.brokers and kafka.properties\n"
    "                      (TLS, SASL; secrets from <property>_file/_env)\n"
    "  -X key=value        a librdkafka property (after --config: it wins)\n"
    "  --topic T           the topic, e.g. polegate.esx.national.pole.v1\n"
    "  --from-beginning    start at the oldest record (default: only new ones)\n"
    "  --timeout-ms N      stop when no record came for N ms (default: run until\n"
    "                      interrupted); also how long to wait for the brokers\n"
    "  --max N             stop after N records\n"
    "  --group G           consume as member of group G, committing offsets (default:\n"
    "                      read every partition without a group, committing nothing)\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "Exit status: 0 done; 1 some record could not be decoded (reason on stderr); 2 usage\n"
    "error, or the brokers or the topic could not be reached.\n";

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_usage_error(const char *what)
{
    fprintf(stderr, "polegate consume: %s\n(polegate consume --help describes the options)\n",
            what);
    return 2;
}

typedef struct s_opts {
    pg_cli_kafka kafka; /* --brokers, --config, -X */
    const char *topic, *group;
    int from_beginning;
    long timeout_ms, max;
} s_opts;

static int s_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char why[256];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof why) == RD_KAFKA_CONF_OK)
        return 0;
    fprintf(stderr, "polegate consume: %s: %s\n", k, why);
    return -1;
}

/* Without a group: every partition of the topic, from the start or the end. */
static int s_assign_all(rd_kafka_t *rk, const s_opts *o)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(rk, 0, rkt, &md, o->timeout_ms ? (int)o->timeout_ms : 10000);
    rd_kafka_topic_destroy(rkt);
    if (err) {
        char first[512];
        fprintf(stderr, "polegate consume: cannot reach the brokers: %s (%s)\n",
                rd_kafka_err2str(err), pg_cli_kafka_first_failure(first, sizeof first));
        return -1;
    }
    int rc = 0;
    if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
        fprintf(stderr, "polegate consume: topic %s: %s\n", o->topic,
                md->topic_cnt == 1 && md->topics[0].err ? rd_kafka_err2str(md->topics[0].err)
                                                        : "no partitions");
        rc = -1;
    } else {
        rd_kafka_topic_partition_list_t *parts =
            rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            rd_kafka_topic_partition_list_add(parts, o->topic, md->topics[0].partitions[i].id)
                ->offset = o->from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
        err = rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err) {
            fprintf(stderr, "polegate consume: assign: %s\n", rd_kafka_err2str(err));
            rc = -1;
        }
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

static json_t *s_text(const void *data, size_t len)
{
    json_t *s = json_stringn(data, len);
    /* Not UTF-8: keep what can be shown rather than drop the record. */
    return s ? s : json_stringn_nocheck(data, len);
}

/* Print one record; 0, or -1 when its value could not be decoded (reason on stderr). */
static int s_print(const rd_kafka_message_t *m, pg_buf *line)
{
    json_t *obj = json_object();
    json_object_set_new(obj, "key", m->key ? s_text(m->key, m->key_len) : json_null());
    json_t *hj = json_object();
    char type[128] = "";
    rd_kafka_headers_t *hdrs;
    if (!rd_kafka_message_headers(m, &hdrs)) {
        const char *name;
        const void *val;
        size_t len;
        for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &len); i++) {
            json_object_set_new(hj, name, val ? s_text(val, len) : json_null());
            if (!strcmp(name, PG_HDR_TYPE) && val)
                snprintf(type, sizeof type, "%.*s", (int)len, (const char *)val);
        }
    }
    json_object_set_new(obj, "headers", hj);
    char *head = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (!head)
        return -1;

    pg_buf_reset(line);
    pg_buf_append(line, head, strlen(head) - 1); /* without the closing brace */
    free(head);
    pg_buf_puts(line, ",\"value\":");
    int rc = 0;
    if (!m->payload) {
        pg_buf_puts(line, "null");
    } else {
        const ProtobufCMessageDescriptor *desc =
            !strcmp(type, PG_TYPE_ENTITY) ? &polegate__pole__v1__entity_update__descriptor
            : !strcmp(type, PG_TYPE_LINK) ? &polegate__pole__v1__link_update__descriptor
                                          : NULL;
        ProtobufCMessage *msg =
            desc ? protobuf_c_message_unpack(desc, NULL, m->len, m->payload) : NULL;
        if (!msg || pg_pbjson_encode(msg, line))
            rc = -1;
        if (msg)
            protobuf_c_message_free_unpacked(msg, NULL);
        if (rc) {
            fprintf(stderr, "polegate consume: %s [%d] offset %lld: %s\n",
                    rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
                    !desc  ? "no pg-type header naming an EntityUpdate or LinkUpdate"
                    : !msg ? "the value is not a valid protobuf of its pg-type"
                           : "the value cannot be written as JSON");
            return -1;
        }
    }
    pg_buf_puts(line, "}\n");
    fwrite(line->data, 1, line->len, stdout);
    fflush(stdout);
    return 0;
}

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int s_parse(int argc, char **argv, s_opts *o)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"config", required_argument, NULL, 'C'},
        {"from-beginning", no_argument, NULL, 'B'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"max", required_argument, NULL, 'm'},
        {"group", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            o->kafka.brokers = optarg;
            break;
        case 'C':
            o->kafka.config = optarg;
            break;
        case 'X':
            if (pg_cli_kafka_add_x(&o->kafka, optarg, "consume"))
                return 2;
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'B':
            o->from_beginning = 1;
            break;
        case 'T':
            if (pg_cli_parse_long(optarg, 1, INT_MAX, &o->timeout_ms))
                return s_usage_error("--timeout-ms must be a positive number");
            break;
        case 'm':
            if (pg_cli_parse_long(optarg, 1, LONG_MAX, &o->max))
                return s_usage_error("--max must be a positive number");
            break;
        case 'g':
            o->group = optarg;
            break;
        case 'h':
            fputs(s_usage_text, stdout);
            return 3;
        default:
            return s_usage_error("unknown option");
        }
    }
    if (optind < argc)
        return s_usage_error("unexpected argument");
    if (!o->topic)
        return s_usage_error("--topic is required");
    return 0;
}

int pg_cli_consume(int argc, char **argv)
{
    s_opts o = {0};
    int prc = s_parse(argc, argv, &o);
    if (prc)
        return prc == 3 ? 0 : prc;

    rd_kafka_conf_t *conf = pg_cli_kafka_conf(&o.kafka, "consume");
    if (!conf)
        return 2;
    char group[64];
    snprintf(group, sizeof group, "polegate-consume-%ld", (long)getpid());
    if (s_set(conf, "group.id", o.group ? o.group : group) ||
        s_set(conf, "enable.auto.commit", o.group ? "true" : "false") ||
        s_set(conf, "auto.offset.reset", o.from_beginning ? "earliest" : "latest")) {
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!rk) {
        fprintf(stderr, "polegate consume: %s\n", why);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_poll_set_consumer(rk);
    int rc = 0;
    if (o.group) {
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, o.topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (err) {
            fprintf(stderr, "polegate consume: subscribe: %s\n", rd_kafka_err2str(err));
            rc = 2;
        }
    } else if (s_assign_all(rk, &o)) {
        rc = 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    pg_buf line = PG_BUF_INIT;
    long printed = 0;
    int undecoded = 0;
    double last = s_now_ms();
    while (!rc && !s_stop && (!o.max || printed < o.max)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            if (o.timeout_ms && s_now_ms() - last >= (double)o.timeout_ms)
                break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "polegate consume: %s\n", rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
                rc = 2;
        } else {
            last = s_now_ms();
            printed++;
            /* A record that cannot be decoded is reported and the rest still read. */
            undecoded |= s_print(m, &line) != 0;
        }
        rd_kafka_message_destroy(m);
    }
    pg_buf_free(&line);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc ? rc : undecoded ? 1 : 0;
}
