/* polegate audit: check the audit log's hash chain, and find the events of an entity
 * or a destination. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "cli.h"
#include "polegate/error.h"

static const char s_usage_text[] =
    "usage: polegate audit verify FILE\n"
    "       polegate audit query FILE [--entity UUID] [--native-id ID]\n"
    "                                 [--destination NAME] [--action ACTION]\n"
    "                                 [--since TIME] [--until TIME]\n"
    "\n"
    "verify  checks every line of the audit log FILE: each is an event, in sequence,\n"
    "        whose hash covers the previous one. Prints the number of events and the\n"
    "        last hash (record it elsewhere: only that shows lines cut from the end).\n"
    "        Exit 0 valid; 1 with the first bad line and why.\n"
    "query   prints the events (JSON lines) that match every option given:\n"
    "  --entity UUID        entity or link id\n"
    "  --native-id ID       id in the origin system\n"
    "  --destination NAME   destination name (as in the policy)\n"
    "  --action ACTION      collect, disclose, withhold, withdraw, receive, reject, erase\n"
    "  --since TIME         at or after TIME: RFC 3339 with offset, or YYYY-MM-DD (UTC)\n"
    "  --until TIME         before TIME\n"
    "\n"
    "The format of the log is in docs/policy.md (\"Audit log\").\n";

static int s_usage_error(const char *what)
{
    fprintf(stderr, "polegate audit: %s\n(polegate audit --help describes the commands)\n", what);
    return 2;
}

static int s_verify(int argc, char **argv)
{
    if (argc != 2)
        return s_usage_error("verify takes one FILE");
    pg_audit_verify_result res;
    char err[PG_ERRSTR_SIZE] = "";
    if (pg_audit_verify(argv[1], &res, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", res.bad_line ? argv[1] : "polegate audit", err);
        return 1;
    }
    printf("%s: ok, %llu events, head %s\n", argv[1], (unsigned long long)res.events, res.head);
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
        {"entity", required_argument, NULL, 'e'},
        {"native-id", required_argument, NULL, 'n'},
        {"destination", required_argument, NULL, 'd'},
        {"action", required_argument, NULL, 'a'},
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},
        {NULL, 0, NULL, 0},
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
        return s_usage_error("which command: verify or query?");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(s_usage_text, stdout);
        return 0;
    }
    if (!strcmp(argv[1], "verify"))
        return s_verify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "query"))
        return s_query(argc - 1, argv + 1);
    return s_usage_error("unknown command (verify or query)");
}
