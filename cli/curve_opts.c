/* The CURVE client options of the commands that talk to the intake (send, load):
 * --secret-key and --server-key, read once for both. */
#include <stdio.h>

#include "cli.h"
#include "curve.h"
#include "polegate/error.h"

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
