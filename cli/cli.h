/* polegate CLI commands: each is int pg_cli_<name>(argc, argv) with argv[0] the
 * command name; exit status 0 ok, 1 some input rejected / failed, 2 usage error. */
#ifndef POLEGATE_CLI_H
#define POLEGATE_CLI_H

int pg_cli_translate(int argc, char **argv);
int pg_cli_send(int argc, char **argv);
int pg_cli_consume(int argc, char **argv);
int pg_cli_receive(int argc, char **argv);
int pg_cli_audit(int argc, char **argv);
int pg_cli_dlq(int argc, char **argv);

#endif
