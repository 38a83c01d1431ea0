/* polegate audit: check the audit log's chain against its signed checkpoints, find
 * the events of an entity or a destination, make the audit keys. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "audit_anchor.h"
#include "cli.h"
#include "kafka_opts.h"
#include "polegate/error.h"

static const char s_usage_text[] =
    "usage: polegate audit verify FILE [--key FILE] [--public-key FILE\n"
    "                              (--checkpoints FILE | --topic TOPIC [--brokers B]\n"
    "                               [--config FILE] [-X key=value]...)]\n"
    "       polegate audit keygen DIR\n"
    "       polegate audit query FILE [--entity UUID] [--native-id ID]\n"
    "                                 [--destination NAME] [--action ACTION]\n"
    "                                 [--party PARTY]\n"
    "                                 [--since TIME] [--until TIME]\n"
    "\n"
    "verify  checks every line of the audit log FILE and of the files rotated from it\n"
    "        (FILE.<20 digits>): each is an event, in sequence, whose hash (HMAC-SHA-256\n"
    "        with --key, the daemon's audit.key_file) covers the previous one; then that\n"
    "        every checkpoint signed with the --public-key (audit-sign.pub) is in the log:\n"
    "        a rewritten log, or one cut short, fails. The checkpoints are read from\n"
    "        --checkpoints FILE (one JSON object a line) or from the audit topic (the\n"
    "        daemon's audit.topic) with the Kafka settings of --config and -X. Records\n"
    "        on the topic not signed by the key are counted and ignored.\n"
    "        Exit 0 valid; 1 with the first bad line and why.\n"
    "keygen  writes DIR/audit-hmac.key (the chain's key), DIR/audit-sign.key (the\n"
    "        daemon's signing key; both 0600) and DIR/audit-sign.pub (for verifiers).\n"
    "query   prints the events (JSON lines) that match every option given:\n"
    "  --entity UUID        entity or link id\n"
    "  --native-id ID       id in the origin system\n"
    "  --destination NAME   destination name (as in the policy)\n"
    "  --action ACTION      collect, disclose, withhold, withdraw, receive, reject, erase\n"
    "  --party PARTY        who caused it: rms:NAME, rms:local, partner:TOPIC,\n"
    "                       policy:VERSION, ...; PREFIX* for every party starting so\n"
    "  --since TIME         at or after TIME: RFC 3339 with offset, or YYYY-MM-DD (UTC)\n"
    "  --until TIME         before TIME\n"
    "\n"
    "The format of the log is in docs/policy.md (\"Audit log\").\n";

static int s_usage_error(const char *what)
{
    fprintf(stderr, "polegate audit: %s\n(polegate audit --help describes the commands)\n", what);
    return 2;
}

static int s_cps_from_file(const char *path, const pg_audit_public_key *pk, pg_audit_checkpoints *c)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "polegate audit: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, f)) > 0)
        if (n > 1 && pg_audit_checkpoints_add(c, line, (size_t)n, pk))
            rc = -1;
    free(line);
    fclose(f);
    return rc;
}

/* Every record of topic, from the beginning to the end of each partition (the
 * daemon's start reads them the same way). */
static int s_cps_from_topic(const pg_cli_kafka *k, const char *topic, const pg_audit_public_key *pk,
                            pg_audit_checkpoints *c)
{
    rd_kafka_conf_t *conf = pg_cli_kafka_conf(k, "audit");
    if (!conf)
        return -1;
    char err[PG_ERRSTR_SIZE];
    if (pg_audit_checkpoints_read(conf, topic, pk, 0, 20000, c, err, sizeof err)) {
        fprintf(stderr, "polegate audit: %s\n", err);
        return -1;
    }
    return 0;
}

static int s_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"public-key", required_argument, NULL, 'p'},
        {"checkpoints", required_argument, NULL, 'c'},
        {"topic", required_argument, NULL, 't'},
        {"brokers", required_argument, NULL, 'b'},
        {"config", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    const char *key_file = NULL, *pub_file = NULL, *cp_file = NULL, *topic = NULL;
    pg_cli_kafka kafka = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "X:", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            key_file = optarg;
            break;
        case 'p':
            pub_file = optarg;
            break;
        case 'c':
            cp_file = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'b':
            kafka.brokers = optarg;
            break;
        case 'C':
            kafka.config = optarg;
            break;
        case 'X':
            if (pg_cli_kafka_add_x(&kafka, optarg, "audit"))
                return 2;
            break;
        default:
            return 2;
        }
    }
    if (optind != argc - 1)
        return s_usage_error("verify takes one FILE");
    if (!pub_file != (!cp_file && !topic) || (cp_file && topic))
        return s_usage_error("--public-key goes with one of --checkpoints FILE or --topic TOPIC");
    const char *path = argv[optind];
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit_key key;
    pg_audit_public_key pk;
    pg_audit_checkpoints cps = {0};
    if (key_file && pg_audit_key_load(key_file, &key, err, sizeof err)) {
        fprintf(stderr, "polegate audit: %s\n", err);
        return 2;
    }
    if (pub_file && pg_audit_public_key_load(pub_file, &pk, err, sizeof err)) {
        fprintf(stderr, "polegate audit: %s\n", err);
        return 2;
    }
    if ((cp_file && s_cps_from_file(cp_file, &pk, &cps)) ||
        (topic && s_cps_from_topic(&kafka, topic, &pk, &cps))) {
        pg_audit_checkpoints_free(&cps);
        return 1;
    }
    if (pub_file && !cps.n) {
        fprintf(stderr, "polegate audit: no checkpoint signed by %s found (%zu other records)\n",
                pub_file, cps.foreign);
        return 1;
    }
    pg_audit_verify_opts vo = {
        .key = key_file ? &key : NULL, .checkpoints = cps.v, .checkpoint_count = cps.n};
    pg_audit_verify_result res;
    int rc = pg_audit_verify(path, &vo, &res, err, sizeof err);
    size_t foreign = cps.foreign;
    pg_audit_checkpoints_free(&cps);
    if (rc) {
        /* A reason about one of the rotated files names it already. */
        if (res.bad_line && !strncmp(err, path, strlen(path)))
            fprintf(stderr, "%s\n", err);
        else
            fprintf(stderr, "%s: %s\n", res.bad_line ? path : "polegate audit", err);
        return 1;
    }
    printf("%s: ok, %" PRIu64 " events in %zu file%s, head %s", path, res.events, res.files,
           res.files == 1 ? "" : "s", res.head);
    if (pub_file)
        printf(", %zu signed checkpoints hold%s", res.checkpoints,
               foreign ? " (records not signed by the key ignored)" : "");
    printf("%s\n", key_file ? ", keyed chain" : "");
    return 0;
}

static int s_keygen(int argc, char **argv)
{
    if (argc != 2)
        return s_usage_error("keygen takes one DIR");
    char err[PG_ERRSTR_SIZE] = "";
    if (pg_audit_keygen(argv[1], err, sizeof err)) {
        fprintf(stderr, "polegate audit: %s\n", err);
        return 1;
    }
    printf("%s/audit-hmac.key, %s/audit-sign.key, %s/audit-sign.pub written\n", argv[1], argv[1],
           argv[1]);
    return 0;
}

static int s_print(void *ud, const char *line, size_t len)
{
    (void)ud;
    fwrite(line, 1, len, stdout);
    putchar('\n');
    return 0;
}

static int s_query(int argc, char **argv)
{
    static const struct option opts[] = {
        {"entity", required_argument, NULL, 'e'},      {"native-id", required_argument, NULL, 'n'},
        {"destination", required_argument, NULL, 'd'}, {"action", required_argument, NULL, 'a'},
        {"party", required_argument, NULL, 'p'},       {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},       {NULL, 0, NULL, 0},
    };
    pg_audit_filter filter = {0};
    char err[PG_ERRSTR_SIZE] = "";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            filter.entity_id = optarg;
            break;
        case 'n':
            filter.native_id = optarg;
            break;
        case 'd':
            filter.destination = optarg;
            break;
        case 'p':
            filter.party = optarg;
            break;
        case 'a':
            if (!(filter.action = pg_audit_action_parse(optarg)))
                return s_usage_error("--action: not one of collect, disclose, withhold, "
                                     "withdraw, receive, reject, erase");
            break;
        case 's':
        case 'u':
            if (pg_audit_parse_time(optarg, c == 's' ? &filter.since_ms : &filter.until_ms, err,
                                    sizeof err))
                return s_usage_error(err);
            *(c == 's' ? &filter.has_since : &filter.has_until) = 1;
            break;
        default:
            return 2; /* getopt said why */
        }
    }
    if (optind != argc - 1)
        return s_usage_error("query takes one FILE");
    int rc = pg_audit_query(argv[optind], &filter, s_print, NULL, err, sizeof err);
    if (rc) {
        fprintf(stderr, "polegate audit: %s\n", err);
        return 1;
    }
    return fflush(stdout) ? 1 : 0;
}

int pg_cli_audit(int argc, char **argv)
{
    if (argc < 2)
        return s_usage_error("which command: verify, query or keygen?");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(s_usage_text, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "verify"))
        return s_verify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "query"))
        return s_query(argc - 1, argv + 1);
    if (!strcmp(argv[1], "keygen"))
        return s_keygen(argc - 1, argv + 1);
    return s_usage_error("unknown command (verify, query or keygen)");
}
