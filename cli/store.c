/* polegate store: operator commands on a gateway's store (verify it offline, confirm a
 * large withdrawal). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "polegate/error.h"
#include "router.h"
#include "store.h"
#include "wal.h"

static const char s_usage_text[] =
    "usage: polegate store check DIR\n"
    "       polegate store confirm DIR POLICY_VERSION\n"
    "\n"
    "check   reads every value of every database of the store in DIR (store.path) and\n"
    "        verifies its checksum. Prints one line per damaged value (store, database,\n"
    "        key), then a summary; then the checksum of every record of its\n"
    "        write-ahead log (DIR/wal). Read-only: a running polegated may keep using it.\n"
    "        Exit 0 sound; 1 damaged or unreadable; 2 usage error.\n"
    "confirm lets the policy version POLICY_VERSION withdraw more than\n"
    "        store.max_withdraw_percent of what a destination holds: a polegated waiting\n"
    "        at start-up for this goes ahead within a second (a running one applies it\n"
    "        at the next SIGHUP). Used up by that one policy change.\n";

static void s_report(void *arg, const char *line)
{
    (void)arg;
    printf("%s\n", line);
}

/* The write-ahead log next to the store: every record's checksum and LSN. 1 when
 * damaged or unreadable. */
static int s_check_wal(const char *dir)
{
    char path[1024], err[PG_ERRSTR_SIZE] = "";
    snprintf(path, sizeof path, "%s/%s", dir, PG_WAL_SUBDIR);
    pg_wal_check_result res;
    int rc = pg_wal_check(path, &res, err, sizeof err);
    if (rc == PG_ENOTFOUND) {
        printf("%s: no write-ahead log\n", path);
        return 0;
    }
    if (rc) {
        printf("%s: DAMAGED: %s\n", path, err);
        return 1;
    }
    printf("%s: ok, %llu segments, %llu records (LSN %llu-%llu)%s%s\n", path, res.segments,
           res.records, (unsigned long long)res.first_lsn, (unsigned long long)res.last_lsn,
           res.torn_tail ? "; " : "", res.torn_tail ? err : "");
    return 0;
}

static int s_check_here(const char *dir)
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
    return s_check_wal(dir) || rc ? 1 : 0;
}

/* The check runs in a child process: LMDB follows page pointers it does not check, so
 * a damaged page can crash the reader (a byte flipped in a page header did), and the
 * command for damage must say DAMAGED, not die. */
static int s_check(const char *dir)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "polegate store: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        setvbuf(stdout, NULL, _IOLBF, 0); /* what it found stays if it dies */
        int rc = s_check_here(dir);
        fflush(stdout);
        _exit(rc);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "polegate store: waitpid: %s\n", strerror(errno));
            return 1;
        }
    if (WIFSIGNALED(st)) {
        printf("%s: DAMAGED: the store's page structure could not be read (the check died of "
               "signal %d, %s)\n",
               dir, WTERMSIG(st), strsignal(WTERMSIG(st)));
        s_check_wal(dir); /* what a recovery would start from: no LMDB in it */
        return 1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int s_confirm(const char *dir, const char *version)
{
    char err[PG_ERRSTR_SIZE] = "";
    pg_store_check_result res;
    /* Never create a store here: only confirm on one that exists (and is sound). */
    int rc = pg_store_check(dir, &res, NULL, NULL, err, sizeof err);
    pg_store *store = rc ? NULL : pg_store_new(dir, 0, err, sizeof err);
    pg_store_txn *txn = store ? pg_store_begin(store, 1, err, sizeof err) : NULL;
    rc = txn ? pg_router_confirm(txn, version, err, sizeof err) : PG_ESTORE;
    if (!rc)
        rc = pg_store_commit(&txn, err, sizeof err);
    pg_store_abort(&txn);
    pg_store_destroy(&store);
    if (rc) {
        fprintf(stderr, "polegate store: %s\n", err);
        return 1;
    }
    printf("%s: withdrawals of policy %s confirmed\n", dir, version);
    return 0;
}

int pg_cli_store(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(s_usage_text, stdout);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "check"))
        return s_check(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "confirm"))
        return s_confirm(argv[2], argv[3]);
    fprintf(stderr, "polegate store: expected: check DIR, or confirm DIR POLICY_VERSION\n"
                    "(polegate store --help describes the commands)\n");
    return 2;
}
