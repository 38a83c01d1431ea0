/* The client options of the commands that talk to the intake (send, load): --to, the
 * FILEs and their formats, and the CURVE --secret-key and --server-key, checked once
 * for both. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "curve.h"
#include "polegate/adapter.h"
#include "polegate/error.h"

static int s_usage_error(const char *cmd, const char *what)
{
    fprintf(stderr, "polegate %s: %s\n(polegate %s --help describes the options)\n", cmd, what,
            cmd);
    return 2;
}

int pg_cli_curve_keys(const char *cmd, const char *secret_file, const char *server_file,
                      char *secret, char *server)
{
    if (!secret_file != !server_file) {
        fprintf(stderr,
                "polegate %s: --secret-key and --server-key go together (CURVE)\n(polegate %s "
                "--help describes the options)\n",
                cmd, cmd);
        return 2;
    }
    char why[PG_ERRSTR_SIZE];
    if (secret_file && (pg_curve_key_load(secret_file, 1, secret, why, sizeof why) ||
                        pg_curve_key_load(server_file, 0, server, why, sizeof why))) {
        fprintf(stderr, "polegate %s: %s\n", cmd, why);
        return 2;
    }
    return 0;
}

int pg_cli_intake_args(const char *cmd, const char *endpoint, const char *secret_file,
                       const char *server_file, char *secret, char *server, int files)
{
    if (!endpoint)
        return s_usage_error(cmd, "--to ENDPOINT is required");
    if (pg_cli_curve_keys(cmd, secret_file, server_file, secret, server))
        return 2;
    if (files < 1) {
        char why[64];
        snprintf(why, sizeof why, "no FILE to %s", cmd);
        return s_usage_error(cmd, why);
    }
    return 0;
}

int pg_cli_file_format(const char *cmd, const pg_adapter_ops *format, const char *path)
{
    if (format || pg_adapter_for_file(path))
        return 0;
    char why[512];
    snprintf(why, sizeof why, "cannot tell the format of %s; give --format", path);
    return s_usage_error(cmd, why);
}
