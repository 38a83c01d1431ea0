/* polegate keygen: a ZeroMQ CURVE key pair in Z85 files, for polegated, the RMS side
 * and polegate send / receive (docs/security.md). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "curve.h"
#include "polegate/error.h"

static const char s_usage_text[] =
    "usage: polegate keygen BASE\n"
    "\n"
    "Write a new ZeroMQ CURVE key pair: BASE.key (the secret key, mode 0600) and\n"
    "BASE.pub (the public key), each one 40-character Z85 line as zmq_curve_keypair\n"
    "makes it; print the public key. Existing files are not overwritten.\n"
    "\n"
    "The gateway's pair goes in curve.secret_key_file; an RMS's public key goes on\n"
    "curve.intake_clients_file (\"<key> <name>\"); the RMS import endpoint's public key\n"
    "in curve.rms_import_key_file. Exit status: 0 written; 1 a file could not be\n"
    "written; 2 usage error.\n";

int pg_cli_keygen(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(s_usage_text, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fputs(s_usage_text, stderr);
        return 2;
    }
    char err[PG_ERRSTR_SIZE], path[4096], pub[PG_CURVE_KEY_LEN];
    if (pg_curve_keygen(argv[1], err, sizeof err)) {
        fprintf(stderr, "polegate keygen: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s.pub", argv[1]);
    if (pg_curve_key_load(path, 0, pub, err, sizeof err)) {
        fprintf(stderr, "polegate keygen: %s\n", err);
        return 1;
    }
    printf("%s\n", pub);
    return 0;
}
