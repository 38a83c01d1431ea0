/* polegate: the command-line tool; dispatches to one function per command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "polegate/version.h"

typedef struct s_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} s_command;

static const s_command s_commands[] = {
    {"translate", pg_cli_translate, "translate native messages offline (atx, nx5, json)"},
    {"send", pg_cli_send, "send native messages to a running polegated and print each ack"},
    {"load", pg_cli_load,
     "the initial load: files into a running polegated, pipelined and resumable"},
    {"consume", pg_cli_consume, "read canonical updates from Kafka and print them as JSON lines"},
    {"receive", pg_cli_receive,
     "stand in for the local RMS import endpoint: validate, store and ack"},
    {"keygen", pg_cli_keygen, "write a ZeroMQ CURVE key pair (Z85 files) for the RMS side"},
    {"audit", pg_cli_audit, "check the audit log's hash chain (verify) or find events (query)"},
    {"dlq", pg_cli_dlq, "list, show, replay or purge the dead letters of a gateway's store"},
    {"store", pg_cli_store,
     "verify a gateway's store offline (check), confirm a large policy withdrawal (confirm)"},
    {"status", pg_cli_status,
     "a running polegated's state from its metrics endpoint (ready, rates, spool, lag)"},
};

static void s_usage(FILE *f)
{
    fprintf(f, "usage: polegate COMMAND [ARGS]...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(f, "  %-10s %s\n", s_commands[i].name, s_commands[i].help);
    fprintf(f, "\n'polegate COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        s_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("polegate %s\n", pg_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (!strcmp(argv[1], s_commands[i].name))
            return s_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "polegate: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return 2;
}
