/* polegated: the gateway daemon (command line, signals, config -> pg_daemon). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "polegate/error.h"
#include "polegate/version.h"
#include "policy.h"

static pg_daemon *s_daemon;

static void s_on_signal(int sig)
{
    if (s_daemon)
        pg_daemon_signal(s_daemon, sig);
}

/* Every signal whose default action would end the process without a word (SIGQUIT,
 * SIGABRT and SIGSEGV & co. keep theirs: a core dump is what they are for). SIGPIPE is
 * ignored outright: a peer closing a socket is reported by the write that failed. */
static void s_signal_set(sigset_t *set)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1,   SIGUSR2, SIGALRM, SIGVTALRM,
                               SIGPROF, SIGIO,  SIGPWR, SIGSTKFLT, SIGXCPU, SIGXFSZ};
    sigemptyset(set);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(set, sigs[i]);
    for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
        sigaddset(set, sig);
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: polegated --config FILE [--check-config]\n"
               "       polegated --config-reference | --help | --version\n"
               "\n"
               "  --config FILE       run the gateway as FILE (YAML) says\n"
               "  --check-config      validate FILE and its policy, print every problem\n"
               "                      (FILE:LINE), exit 0 (valid) or 1\n"
               "  --config-reference  print every configuration key (Markdown)\n"
               "  --help              this text\n"
               "  --version           the version\n"
               "\n"
               "SIGTERM or SIGINT stops taking messages, keeps publishing the spool for up to\n"
               "spool.drain_timeout_ms and leaves the rest for the next start. SIGHUP reads\n"
               "FILE again and applies a new policy version and log level (a FILE that fails\n"
               "--check-config is refused and logged); SIGUSR1 logs the counters; other\n"
               "signals are logged and ignored. Exit status:\n"
               "0 clean stop, 1 invalid config or a failure while running, 2 usage error.\n"
               "See docs/operations.md.\n");
}

static void s_print_warning(void *ud, const char *warning)
{
    fprintf(stderr, "%s: warning: %s\n", (const char *)ud, warning);
}

static void s_log_warning(void *ud, const char *warning)
{
    (void)ud;
    pg_log(PG_LOG_WARN, "config: %s", warning);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},     {"check-config", no_argument, NULL, 'k'},
        {"config-reference", no_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},          {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int check = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'r':
            pg_config_reference(stdout);
            return 0;
        case 'h':
            s_usage(stdout);
            return 0;
        case 'V':
            printf("polegated %s\n", pg_version());
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        fprintf(stderr, "polegated: %s\n",
                path ? "unexpected argument" : "--config FILE is required");
        s_usage(stderr);
        return 2;
    }

    char errs[16384];
    pg_config *cfg = pg_config_load(path, errs, sizeof errs);
    if (!cfg) {
        fprintf(stderr, "%s\n", errs);
        if (check)
            fprintf(stderr, "%s: invalid\n", path);
        return 1;
    }
    if (check) {
        const pg_policy *p = cfg->policy;
        printf("%s: valid (force %s, adapter %s, intake %s%s%s, policy %s, audit %s)\n", path,
               cfg->force, cfg->adapter->name,
               cfg->intake_endpoint ? cfg->intake_endpoint : "(no endpoint)",
               cfg->intake_directory ? ", drop directory " : "",
               cfg->intake_directory ? cfg->intake_directory : "", pg_policy_version(p),
               cfg->audit_path);
        for (size_t i = 0; i < pg_policy_destination_count(p); i++) {
            const pg_policy_destination *d = pg_policy_destination_at(p, i);
            printf("  destination %s -> %s (agreement %s)\n", d->name, d->topic, d->agreement);
        }
        for (size_t i = 0; i < pg_policy_partner_count(p); i++) {
            const pg_policy_partner *pt = pg_policy_partner_at(p, i);
            printf("  partner %s <- %s (agreement %s)\n", pt->force, pt->topic, pt->agreement);
        }
        /* Every topic the gateway writes, so that an operator creates them all. */
        printf("  dead letters -> %s (the force's own operators only)\n", cfg->dlq_topic);
        if (cfg->audit_signing_key_file)
            printf("  audit checkpoints -> %s\n", cfg->audit_topic);
        pg_config_warnings(cfg, s_print_warning, (void *)path);
        pg_config_destroy(&cfg);
        return 0;
    }
    /* Nothing the daemon writes (store, audit log, dead letters, delivered files) is
     * for others: files 0640 at most, directories 0750. */
    umask(027);
    pg_log_set_level(cfg->log_level);
    pg_log_set_format(cfg->log_format);
    pg_log_set_journal(pg_log_stderr_is_journal());

    /* Blocked while the daemon starts its threads (librdkafka's, ZeroMQ's, the
     * producer's, the partner service's), which keep the mask: the signals then only
     * reach this thread, whose wait for requests they interrupt. One that arrives
     * during start-up waits until the handlers are in place. */
    sigset_t handled;
    s_signal_set(&handled);
    pthread_sigmask(SIG_BLOCK, &handled, NULL);
    signal(SIGPIPE, SIG_IGN);

    pg_config_warnings(cfg, s_log_warning, NULL);
    char why[PG_ERRSTR_SIZE];
    s_daemon = pg_daemon_new(cfg, why, sizeof why);
    if (!s_daemon) {
        pg_log(PG_LOG_ERROR, "cannot start: %s", why);
        pg_config_destroy(&cfg);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigfillset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&handled, sig) == 1)
            sigaction(sig, &sa, NULL);
    pthread_sigmask(SIG_UNBLOCK, &handled, NULL);

    char summary[1024];
    pg_daemon_summary(s_daemon, summary, sizeof summary);
    pg_log(PG_LOG_INFO, "%s", summary);
    int rc = pg_daemon_run(s_daemon, why, sizeof why);
    if (rc)
        pg_log(PG_LOG_ERROR, "exiting with an error: %s", why);
    pg_daemon *d = s_daemon;
    s_daemon = NULL;
    pg_daemon_destroy(&d);
    pg_config_destroy(&cfg);
    return rc ? 1 : 0;
}
