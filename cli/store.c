/* polegate store: operator commands on a gateway's store (verify it offline). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "polegate/error.h"
#include "store.h"

static const char s_usage_text[] =
    "usage: polegate store check DIR\n"
    "\n"
    "check   reads every value of every database of the store in DIR (store.path) and\n"
    "        verifies its checksum. Prints one line per damaged value (store, database,\n"
    "        key), then a summary. Read-only: a running polegated may keep using it.\n"
    "        Exit 0 sound; 1 damaged or unreadable; 2 usage error.\n";

static void s_report(void *arg, const char *line)
{
    (void)arg;
    printf("%s\n", line);
}

static int s_check(const char *dir)
{
    pg_store_check_result res;
    char err[PG_ERRSTR_SIZE] = "";
    int rc = pg_store_check(dir, &res, s_report, NULL, err, sizeof err);
    if (rc && rc != PG_ECORRUPT) {
        fprintf(stderr, "polegate store: %s\n", err);
        return 1;
    }
    printf("%s: %s, %llu databases, %llu values, %llu damaged\n", dir, rc ? "DAMAGED" : "ok",
           res.databases, res.values, res.damaged);
    return rc ? 1 : 0;
}

int pg_cli_store(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(s_usage_text, stdout);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "check"))
        return s_check(argv[2]);
    fprintf(stderr, "polegate store: expected: check DIR\n(polegate store --help describes the "
                    "commands)\n");
    return 2;
}
