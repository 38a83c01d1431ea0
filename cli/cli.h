/* polegate CLI commands: each is int pg_cli_<name>(argc, argv) with argv[0] the
 * command name; exit status 0 ok, 1 some input rejected / failed, 2 usage error. */
#ifndef POLEGATE_CLI_H
#define POLEGATE_CLI_H

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

int pg_cli_translate(int argc, char **argv);
int pg_cli_send(int argc, char **argv);
int pg_cli_load(int argc, char **argv);
int pg_cli_consume(int argc, char **argv);
int pg_cli_receive(int argc, char **argv);
int pg_cli_audit(int argc, char **argv);
int pg_cli_keygen(int argc, char **argv);
int pg_cli_dlq(int argc, char **argv);
int pg_cli_store(int argc, char **argv);
int pg_cli_status(int argc, char **argv);

/* --secret-key and --server-key of send and load (either both or neither): the keys
 * into secret and server (PG_CURVE_KEY_LEN bytes each, gateway/core/curve.h) when
 * given. 0, or 2 (the exit status) after saying why on stderr. */
int pg_cli_curve_keys(const char *cmd, const char *secret_file, const char *server_file,
                      char *secret, char *server);

/* What send and load check after their options, in this order: --to given (endpoint
 * not NULL), the CURVE keys (pg_cli_curve_keys), at least one FILE (files > 0).
 * 0, or 2 (the exit status) after saying why on stderr. */
int pg_cli_intake_args(const char *cmd, const char *endpoint, const char *secret_file,
                       const char *server_file, char *secret, char *server, int files);

/* A format for path: --format (format, when not NULL) or the file's name. 0, or 2
 * after saying on stderr to give --format. */
struct pg_adapter_ops;
int pg_cli_file_format(const char *cmd, const struct pg_adapter_ops *format, const char *path);

/* Parse s, a whole decimal number from min to max, into *out. -1 when it is not one
 * (empty, trailing text, out of range): an option such as --timeout-ms 4294967297 is
 * refused instead of wrapping to 1 on the cast to int. */
static inline int pg_cli_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

#endif
