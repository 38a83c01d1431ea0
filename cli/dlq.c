/* polegate dlq: list, show, replay and purge the dead letters of a gateway's store. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include "audit.h"

#include "cli.h"
#include "config.h"
#include "curve.h"
#include "dlq.h"
#include "log.h"
#include "partner.h"
#include "partner_service.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "rms_delivery.h"
#include "store.h"

static const char s_usage_text[] =
    "usage: polegate dlq list    (--store DIR | --config FILE) [--json]\n"
    "       polegate dlq show    (--store DIR | --config FILE) [--raw] ID\n"
    "       polegate dlq replay  (--store DIR | --config FILE) [--to ENDPOINT]\n"
    "                            [--rms ENDPOINT] [ID]...\n"
    "       polegate dlq purge   (--store DIR | --config FILE) (--all | ID...)\n"
    "\n"
    "The dead letters polegated kept: native messages of our RMS it rejected as invalid\n"
    "(intake), and partner records' native messages our RMS rejected (import), with the\n"
    "reason, the force, the format, the time and the original bytes (docs/reliability.md).\n"
    "The store may belong to a running daemon (LMDB allows readers and one writer at a\n"
    "time across processes).\n"
    "\n"
    "  list                one line per dead letter: ID TIME FORMAT BYTES REASON\n"
    "                      (an import one's REASON starts \"[import FORCES]\")\n"
    "                      (--json: one JSON object per line)\n"
    "  show ID             its details, then the original bytes (--raw: the bytes only)\n"
    "  replay [ID]...      send each (all when no ID is given) again to the daemon's\n"
    "                      intake, after a fix, and print ID <ack json>. Accepted: the\n"
    "                      dead letter is removed. Rejected again: removed too, the daemon\n"
    "                      kept a new one with today's reason. No answer or retry: kept.\n"
    "                      An import dead letter goes to the RMS import endpoint instead\n"
    "                      (the config's delivery.transport and delivery.endpoint, or\n"
    "                      --rms), never to our intake: stored -> removed; rejected\n"
    "                      again -> kept, with the RMS's reason printed; superseded (a\n"
    "                      record of it deleted, merged away or changed by the partner\n"
    "                      since) or kept by an earlier release -> refused, kept. A\n"
    "                      partner dead letter is taken again through the partner\n"
    "                      pipeline (needs --config): by polegated while it runs (asked\n"
    "                      through the store; the command waits for its answers), else\n"
    "                      in this process\n"
    "  purge               remove the given dead letters, or --all\n"
    "\n"
    "  --store DIR         the gateway's store.path\n"
    "  --config FILE       read store.path (and intake.endpoint for replay) from FILE\n"
    "  --to ENDPOINT       where replay sends (default: the config's intake.endpoint)\n"
    "  --rms ENDPOINT      where replay sends import dead letters (default: the config's\n"
    "                      delivery.endpoint): a ZeroMQ endpoint (\"tcp://...\") or the\n"
    "                      RMS's drop directory\n"
    "  --timeout-ms N      replay: how long to wait for each ack (default 10000)\n"
    "  --secret-key FILE   replay to an intake under CURVE: our secret key (its public\n"
    "                      key on the daemon's curve.intake_clients_file), with\n"
    "  --server-key FILE   the daemon's public key (pinned)\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "Exit status: 0 done (replay: every message accepted); 1 a dead letter not found,\n"
    "or a replay rejected; 2 usage error, no daemon answering, or the store cannot be\n"
    "opened.\n";

typedef struct s_dlq_cli {
    pg_store *store;
    pg_dlq *dlq;
    int json;
    int raw;
    const char *to;
    pg_rms_delivery_config rms; /* import dead letters: transport and endpoint */
    int timeout_ms;
    const pg_config *cfg;    /* partner dead letters: the pipeline's configuration */
    const char *secret_file; /* intake replays under CURVE: our key, the daemon's */
    char secret[PG_CURVE_KEY_LEN], server[PG_CURVE_KEY_LEN];
} s_dlq_cli;

static int s_usage_error(const char *what)
{
    fprintf(stderr, "polegate dlq: %s\n(polegate dlq --help describes the commands)\n", what);
    return 2;
}

static int s_parse_id(const char *s, uint64_t *id)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || !*s || v == 0 || *s == '-')
        return -1;
    *id = v;
    return 0;
}

/* ---------------------------------------------------------------- list, show */

/* data[0..len) to stdout with its control characters escaped as in the log
 * (pg_log_escape): what a dead letter holds is the sender's, and raw it could drive the
 * operator's terminal or forge lines. lines: a record's own newlines and tabs stay. */
static void s_put_escaped(const void *data, size_t len, int lines)
{
    const char *p = data;
    char out[4 * 1024 + 1];
    while (len) {
        size_t n = len < 1024 ? len : 1024;
        if (n < len && (unsigned char)p[n - 1] == 0xc2)
            n--; /* a C1 control is two bytes: never cut between them */
        pg_log_escape(p, n, lines, out, sizeof out);
        fputs(out, stdout);
        p += n;
        len -= n;
    }
}

/* s, one line of a dead letter's details, escaped (s_put_escaped); before is printed
 * first as it is. */
static void s_put_field(const char *before, const char *s)
{
    fputs(before, stdout);
    s_put_escaped(s ? s : "", s ? strlen(s) : 0, 0);
}

static int s_print_line(void *ud, const pg_dlq_entry *e)
{
    const s_dlq_cli *c = ud;
    char when[32];
    pg_dlq_format_time(e->received_ms, when);
    if (c->json) {
        json_t *j = json_pack("{s:I,s:s,s:s,s:s,s:I,s:s}", "id", (json_int_t)e->id, "received_at",
                              when, "origin", e->origin, "format", e->format, "bytes",
                              (json_int_t)e->original_len, "reason", e->reason);
        if (j && e->kind != PG_DLQ_INTAKE) {
            json_object_set_new(j, "kind", json_string(pg_dlq_kind_name(e->kind)));
            json_object_set_new(j, "ref", json_string(e->ref));
            json_object_set_new(j, "ids", json_string(e->ids));
        }
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(j);
    } else {
        int other = e->kind != PG_DLQ_INTAKE;
        printf("%" PRIu64 " %s ", e->id, when);
        s_put_field("", e->format);
        printf(" %zu %s%s%s", e->original_len, other ? "[" : "",
               other ? pg_dlq_kind_name(e->kind) : "", other ? " " : "");
        if (other)
            s_put_field("", *e->origin ? e->origin : "-");
        s_put_field(other ? "] " : "", e->reason);
        putchar('\n');
    }
    return 0;
}

static int s_list(s_dlq_cli *c)
{
    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(c->store, 0, why, sizeof why);
    int rc = txn ? pg_dlq_each(c->dlq, txn, s_print_line, c, why, sizeof why) : PG_ESTORE;
    pg_store_abort(&txn);
    if (rc) {
        fprintf(stderr, "polegate dlq: %s\n", why);
        return 2;
    }
    return 0;
}

static int s_show(s_dlq_cli *c, uint64_t id)
{
    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(c->store, 0, why, sizeof why);
    pg_dlq_entry e;
    int rc = txn ? pg_dlq_get(c->dlq, txn, id, &e, why, sizeof why) : PG_ESTORE;
    if (!rc) {
        if (!c->raw) {
            char when[32];
            pg_dlq_format_time(e.received_ms, when);
            printf("id: %" PRIu64 "\nreceived_at: %s", e.id, when);
            s_put_field("\norigin: ", e.origin);
            s_put_field("\nformat: ", e.format);
            printf("\nbytes: %zu%s", e.original_len,
                   e.original_len > e.len ? " (only the first part was kept)" : "");
            s_put_field("\nreason: ", e.reason);
            printf("\n\n");
            if (e.kind == PG_DLQ_IMPORT) {
                s_put_field("kind: import (rejected by our RMS; replay sends it to the RMS)\n"
                            "correlation: ",
                            e.ref);
                s_put_field("\nids: ", e.ids);
                if (e.seq) {
                    printf("\nsequence: %" PRIu64, e.seq);
                    s_put_field("\noperations: ", e.ops);
                } else {
                    printf("\noperations: not kept (kept by an earlier release: replay refuses "
                           "it)");
                }
                printf("\n\n");
            }
            if (e.kind == PG_DLQ_PARTNER) {
                s_put_field("kind: partner (a partner's record we refused; replay takes it "
                            "through the partner pipeline again)\nrecord: ",
                            e.ref);
                s_put_field("\nids: ", e.ids);
                printf("\nheaders:");
                if (!e.headers_kept)
                    printf(" not kept (not replayable)");
                if (e.hdr_force)
                    s_put_field(" pg-origin-force=", e.hdr_force);
                if (e.hdr_agreement)
                    s_put_field(" pg-agreement=", e.hdr_agreement);
                printf("\n\n");
            }
            /* --raw gives the bytes as they are */
            s_put_escaped(e.data, e.len, 1);
            putchar('\n');
        } else {
            fwrite(e.data, 1, e.len, stdout);
        }
    }
    pg_store_abort(&txn);
    if (rc) {
        fprintf(stderr, "polegate dlq: %s\n", why);
        return rc == PG_ENOTFOUND ? 1 : 2;
    }
    return 0;
}

/* ---------------------------------------------------------------- purge, replay */

static int s_delete(s_dlq_cli *c, uint64_t id)
{
    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(c->store, 1, why, sizeof why);
    int rc = txn ? pg_dlq_delete(c->dlq, txn, id, why, sizeof why) : PG_ESTORE;
    if (!rc)
        rc = pg_store_commit(&txn, why, sizeof why);
    pg_store_abort(&txn);
    if (rc)
        fprintf(stderr, "polegate dlq: %s\n", why);
    return rc;
}

typedef struct s_ids {
    uint64_t *ids;
    size_t count, cap;
} s_ids;

static int s_collect(void *ud, const pg_dlq_entry *e)
{
    s_ids *ids = ud;
    if (pg_grow((void **)&ids->ids, &ids->cap, ids->count + 1, sizeof *ids->ids))
        return PG_ENOMEM;
    ids->ids[ids->count++] = e->id;
    return 0;
}

/* Every id in the store (purge --all, replay without ids). */
static int s_all_ids(s_dlq_cli *c, s_ids *ids)
{
    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(c->store, 0, why, sizeof why);
    int rc = txn ? pg_dlq_each(c->dlq, txn, s_collect, ids, why, sizeof why) : PG_ESTORE;
    pg_store_abort(&txn);
    if (rc)
        fprintf(stderr, "polegate dlq: %s\n", rc == PG_ENOMEM ? "out of memory" : why);
    return rc;
}

static int s_replay_intake(s_dlq_cli *c, const uint64_t *ids, size_t n);

/* Send one dead letter to the intake and print the ack. 0 accepted, 1 rejected or
 * kept, 2 no answer. */
static int s_replay_one(s_dlq_cli *c, void *sock, uint64_t id)
{
    char why[PG_ERRSTR_SIZE], corr[32];
    pg_store_txn *txn = pg_store_begin(c->store, 0, why, sizeof why);
    pg_dlq_entry e;
    int rc = txn ? pg_dlq_get(c->dlq, txn, id, &e, why, sizeof why) : PG_ESTORE;
    if (!rc && e.original_len > e.len) {
        snprintf(why, sizeof why, "dead letter %" PRIu64 ": only %zu of its %zu bytes were kept",
                 id, e.len, e.original_len);
        rc = PG_ETOOBIG;
    }
    snprintf(corr, sizeof corr, "dlq-%" PRIu64, id);
    if (!rc && (zmq_send(sock, corr, strlen(corr), ZMQ_SNDMORE) < 0 ||
                zmq_send(sock, e.data, e.len, 0) < 0)) {
        snprintf(why, sizeof why, "cannot send to %s: %s", c->to, zmq_strerror(errno));
        rc = PG_EIO;
    }
    pg_store_abort(&txn);
    if (rc) {
        fprintf(stderr, "polegate dlq: %s\n", why);
        return rc == PG_EIO ? 2 : 1;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        fprintf(stderr, "polegate dlq: no answer from %s within %d ms (is polegated running?)\n",
                c->to, c->timeout_ms);
        return 2;
    }
    printf("%" PRIu64 " %.*s\n", id, (int)zmq_msg_size(&m), (const char *)zmq_msg_data(&m));
    json_t *j = json_loadb(zmq_msg_data(&m), zmq_msg_size(&m), 0, NULL);
    zmq_msg_close(&m);
    const char *status = json_string_value(json_object_get(j, "status"));
    int accepted = status && !strcmp(status, "accepted");
    int settled = accepted || (status && !strcmp(status, "rejected"));
    json_decref(j);
    if (settled && s_delete(c, id))
        return 1;
    return accepted ? 0 : 1;
}

/* The kind of dead letter id: 0 intake, 1 import, 2 partner, -1 not read (said why). */
static int s_is_import(s_dlq_cli *c, uint64_t id)
{
    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(c->store, 0, why, sizeof why);
    pg_dlq_entry e = {0};
    int rc = txn ? pg_dlq_get(c->dlq, txn, id, &e, why, sizeof why) : PG_ESTORE;
    int import = rc ? 0 : e.kind == PG_DLQ_IMPORT ? 1 : e.kind == PG_DLQ_PARTNER ? 2 : 0;
    pg_store_abort(&txn);
    if (rc) {
        fprintf(stderr, "polegate dlq: %s\n", why);
        return -1;
    }
    return import;
}

/* Deliver an import dead letter to the RMS again. 0 stored (removed), 1 rejected or
 * kept, 2 no answer. */
static int s_resend_one(s_dlq_cli *c, uint64_t id)
{
    if (!c->rms.endpoint) {
        fprintf(stderr,
                "polegate dlq: %" PRIu64 " is an import dead letter: it goes to the RMS, "
                "give --rms ENDPOINT or a --config with delivery.endpoint\n",
                id);
        return 2;
    }
    char why[PG_ERRSTR_SIZE];
    int rc = pg_dlq_resend(c->dlq, id, &c->rms, c->cfg ? c->cfg->policy : NULL, c->timeout_ms, why,
                           sizeof why);
    if (rc == PG_EPOLICY) {
        const char *status = "refused";
        json_t *j = json_pack("{s:s,s:s}", "status", status, "reason", why);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("%" PRIu64 " %s\n", id, text ? text : status);
        free(text);
        json_decref(j);
        return 1;
    }
    if (rc == 0) {
        printf("%" PRIu64 " {\"status\":\"stored\"}\n", id);
        return 0;
    }
    if (rc == PG_EINVALID) {
        json_t *j = json_pack("{s:s,s:s}", "status", "rejected", "reason", why);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("%" PRIu64 " %s\n", id, text ? text : "{\"status\":\"rejected\"}");
        free(text);
        json_decref(j);
        return 1;
    }
    fprintf(stderr, "polegate dlq: %s\n", why);
    return rc == PG_ETIMEOUT || rc == PG_EIO ? 2 : 1;
}

/* Print the outcome of a partner dead letter's replay (pg_partner_replay's rc, outcome
 * and reason) as "ID <json>", or the error; its exit status. */
static int s_replayed(uint64_t id, int rc, const char *outcome, const char *why)
{
    if (rc == 0 || rc == PG_EINVALID) {
        json_t *j = rc ? json_pack("{s:s,s:s}", "status", outcome, "reason", why)
                       : json_pack("{s:s}", "status", outcome);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("%" PRIu64 " %s\n", id, text ? text : outcome);
        free(text);
        json_decref(j);
    } else {
        fprintf(stderr, "polegate dlq: %s\n", why);
    }
    return rc == 0 ? 0 : rc == PG_ESTORE || rc == PG_ENOMEM ? 2 : 1;
}

/* The answers polegated wrote to the replays asked of it, printed and forgotten; ids
 * answered get answered[i] = 1. How many were answered now, or -1 (said why). */
static int s_daemon_answers(s_dlq_cli *c, const uint64_t *ids, size_t n, unsigned char *answered,
                            int *worst)
{
    char why[PG_ERRSTR_SIZE], outcome[16], reason[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(c->store, 1, why, sizeof why);
    int rc = txn ? 0 : PG_ESTORE, now = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        if (answered[i])
            continue;
        rc = pg_dlq_replay_result(c->dlq, txn, ids[i], outcome, reason, sizeof reason, why,
                                  sizeof why);
        if (rc == PG_ERETRY) {
            rc = 0;
            continue;
        }
        if (rc == PG_ENOTFOUND)
            snprintf(why, sizeof why, "dead letter %" PRIu64 ": its replay was no longer asked for",
                     ids[i]);
        else if (rc == 0 && !strcmp(outcome, "not-found"))
            snprintf(why, sizeof why, "dlq: no dead letter %" PRIu64, ids[i]);
        else if (rc == 0)
            snprintf(why, sizeof why, "%s", reason);
        else
            break;
        int status = rc                                                          ? PG_ENOTFOUND
                     : !strcmp(outcome, "refused")                               ? PG_EINVALID
                     : !strcmp(outcome, "kept") || !strcmp(outcome, "not-found") ? PG_EUSAGE
                                                                                 : 0;
        int r = s_replayed(ids[i], status, outcome, why);
        *worst = r > *worst ? r : *worst;
        answered[i] = 1;
        now++;
        rc = pg_dlq_replay_forget(c->dlq, txn, ids[i], why, sizeof why);
    }
    if (!rc)
        rc = pg_store_commit(&txn, why, sizeof why);
    pg_store_abort(&txn);
    if (rc) {
        fprintf(stderr, "polegate dlq: %s\n", why);
        return -1;
    }
    return now;
}

/* fn (pg_dlq_replay_ask, _forget) for each of ids not marked in skip (may be NULL), in
 * one write transaction. 0, or the error with why. */
static int s_requests(s_dlq_cli *c, int (*fn)(pg_dlq *, pg_store_txn *, uint64_t, char *, size_t),
                      const uint64_t *ids, size_t n, const unsigned char *skip, char *why,
                      size_t why_size)
{
    pg_store_txn *txn = pg_store_begin(c->store, 1, why, why_size);
    int rc = txn ? 0 : PG_ESTORE;
    for (size_t i = 0; !rc && i < n; i++)
        if (!skip || !skip[i])
            rc = fn(c->dlq, txn, ids[i], why, why_size);
    if (!rc)
        rc = pg_store_commit(&txn, why, why_size);
    pg_store_abort(&txn);
    return rc;
}

/* Partner dead letters while polegated runs: its partner thread owns the pipeline, so
 * it is asked (pg_dlq_replay_ask, in the store) and its answers are awaited, up to
 * timeout_ms without one. */
static int s_replay_by_daemon(s_dlq_cli *c, const uint64_t *ids, size_t n)
{
    char why[PG_ERRSTR_SIZE];
    int rc = s_requests(c, pg_dlq_replay_ask, ids, n, NULL, why, sizeof why);
    unsigned char *answered = rc ? NULL : calloc(n, 1);
    if (!answered) {
        fprintf(stderr, "polegate dlq: %s\n", rc ? why : "out of memory");
        return 2;
    }
    size_t left = n;
    int worst = 0, quiet_ms = 0;
    while (left && quiet_ms < c->timeout_ms) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
        int now = s_daemon_answers(c, ids, n, answered, &worst);
        if (now < 0) {
            free(answered);
            return 2;
        }
        left -= (size_t)now;
        quiet_ms = now ? 0 : quiet_ms + 100;
    }
    /* Not left asked for: a replay the operator no longer waits for would happen
     * unseen, whenever the daemon's partner thread comes to it. */
    rc = left ? s_requests(c, pg_dlq_replay_forget, ids, n, answered, why, sizeof why) : 0;
    free(answered);
    if (!left)
        return worst;
    fprintf(stderr,
            "polegate dlq: polegated is running (it holds the audit log) but answered no replay "
            "for %d ms: %zu replay(s) withdrawn%s%s%s, unless it was replaying them at that "
            "moment (`polegate dlq list` shows what is left). Its partner thread answers them: "
            "does the policy name a partner, and is the log free of partner errors?\n",
            c->timeout_ms, left, rc ? " (not all: " : "", rc ? why : "", rc ? ")" : "");
    return 2;
}

/* Partner dead letters: the partner pipeline of the config. Only one process may own
 * the pipeline (its import queue sequence, its results in memory), and LMDB would let
 * two write: the audit log's exclusive lock, which the daemon holds while it runs, is
 * what keeps them apart. While the daemon runs it is asked to replay them; while it is
 * stopped they are replayed in this process. */
static int s_replay_partner(s_dlq_cli *c, const uint64_t *ids, size_t n)
{
    const pg_config *cfg = c->cfg;
    if (!cfg) {
        fprintf(stderr, "polegate dlq: partner dead letters are replayed with --config FILE "
                        "(the partner pipeline's policy, adapter, audit log and RMS)\n");
        return 2;
    }
    if (pg_audit_in_use(cfg->audit_path))
        return s_replay_by_daemon(c, ids, n);
    char why[PG_ERRSTR_SIZE];
    pg_audit_key key;
    if (cfg->audit_key_file && pg_audit_key_load(cfg->audit_key_file, &key, why, sizeof why)) {
        fprintf(stderr, "polegate dlq: audit.key_file: %s\n", why);
        return 2;
    }
    pg_audit_options ao = {.sync_every = cfg->audit_sync_every,
                           .key = cfg->audit_key_file ? &key : NULL,
                           .rotate_bytes = cfg->audit_rotate_bytes,
                           .rotate_ms = (int64_t)cfg->audit_rotate_seconds * 1000};
    pg_audit *audit = pg_audit_new(cfg->audit_path, &ao, why, sizeof why);
    sodium_memzero(&key, sizeof key);
    if (!audit) {
        fprintf(stderr, "polegate dlq: audit %s: %s\n", cfg->audit_path, why);
        return 2;
    }
    pg_partner_opts popts;
    pg_partner_service_opts(cfg, c->store, audit, &popts);
    pg_partner *p = cfg->delivery_endpoint ? pg_partner_new(&popts, why, sizeof why) : NULL;
    sodium_memzero(popts.delivery.curve_secret, sizeof popts.delivery.curve_secret);
    if (!p) {
        fprintf(stderr, "polegate dlq: partner pipeline: %s\n",
                cfg->delivery_endpoint ? why : "the config has no delivery.endpoint");
        pg_audit_destroy(&audit);
        return 2;
    }
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        char outcome[16];
        int rc = pg_partner_replay(p, ids[i], outcome, why, sizeof why);
        int r = s_replayed(ids[i], rc, outcome, why);
        worst = r > worst ? r : worst;
        if (r == 2)
            break;
    }
    /* replays asked of a daemon that stopped before it answered are done now */
    if (s_requests(c, pg_dlq_replay_forget, ids, n, NULL, why, sizeof why))
        fprintf(stderr, "polegate dlq: %s\n", why);
    /* what was composed goes to the RMS now; without an ack it stays in the import
     * queue and the daemon sends it at its start */
    int64_t waited = 0;
    while (pg_partner_pending(p) && waited < c->timeout_ms) {
        if (pg_partner_poll(p, 100, why, sizeof why) < 0) {
            fprintf(stderr, "polegate dlq: %s\n", why);
            break;
        }
        waited += 100;
    }
    if (pg_partner_pending(p))
        fprintf(stderr,
                "polegate dlq: %zu message(s) for the RMS not yet acknowledged: kept in the "
                "import queue, sent when polegated starts\n",
                pg_partner_pending(p));
    pg_partner_destroy(&p);
    pg_audit_destroy(&audit);
    return worst;
}

static int s_replay(s_dlq_cli *c, const uint64_t *ids, size_t n)
{
    int worst = 0;
    uint64_t *intake = calloc(n ? n : 1, sizeof *intake);
    uint64_t *partner = calloc(n ? n : 1, sizeof *partner);
    size_t n_intake = 0, n_partner = 0;
    if (!intake || !partner) {
        free(intake);
        free(partner);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        int import = s_is_import(c, ids[i]);
        if (import == 2) {
            /* never into our intake: it is not our RMS's record; the partner pipeline */
            partner[n_partner++] = ids[i];
            continue;
        }
        int rc = import < 0 ? 1 : import ? s_resend_one(c, ids[i]) : 0;
        if (import == 0)
            intake[n_intake++] = ids[i];
        worst = rc > worst ? rc : worst;
    }
    if (n_intake) {
        int rc = s_replay_intake(c, intake, n_intake);
        worst = rc > worst ? rc : worst;
    }
    if (n_partner) {
        int rc = s_replay_partner(c, partner, n_partner);
        worst = rc > worst ? rc : worst;
    }
    free(intake);
    free(partner);
    return worst;
}

static int s_replay_intake(s_dlq_cli *c, const uint64_t *ids, size_t n)
{
    if (!c->to)
        return s_usage_error("replay needs --to ENDPOINT or --config FILE");
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_REQ) : NULL;
    int linger = 0;
    char kerr[PG_ERRSTR_SIZE] = "";
    if (!sock || zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) ||
        (c->secret_file && pg_curve_client(sock, c->secret, c->server, kerr, sizeof kerr)) ||
        zmq_setsockopt(sock, ZMQ_RCVTIMEO, &c->timeout_ms, sizeof c->timeout_ms) ||
        zmq_setsockopt(sock, ZMQ_SNDTIMEO, &c->timeout_ms, sizeof c->timeout_ms) ||
        zmq_connect(sock, c->to)) {
        fprintf(stderr, "polegate dlq: cannot connect to %s: %s\n", c->to,
                *kerr ? kerr : zmq_strerror(errno));
        if (sock)
            zmq_close(sock);
        if (ctx)
            zmq_ctx_term(ctx);
        return 2;
    }
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = s_replay_one(c, sock, ids[i]);
        worst = rc > worst ? rc : worst;
        if (rc == 2)
            break; /* a REQ socket without an answer cannot send again */
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return worst;
}

/* ---------------------------------------------------------------- the command */

int pg_cli_dlq(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"store", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"to", required_argument, NULL, 't'},
        {"rms", required_argument, NULL, 'R'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"secret-key", required_argument, NULL, 'k'},
        {"server-key", required_argument, NULL, 'K'},
        {"json", no_argument, NULL, 'j'},
        {"raw", no_argument, NULL, 'r'},
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    s_dlq_cli c = {.timeout_ms = 10000};
    const char *store = NULL, *config = NULL, *server_file = NULL;
    int all = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        long n;
        switch (opt) {
        case 's':
            store = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 't':
            c.to = optarg;
            break;
        case 'R':
            c.rms.endpoint = optarg;
            c.rms.transport = strstr(optarg, "://") ? "zmq" : "dir";
            break;
        case 'T':
            if (pg_cli_parse_long(optarg, 1, INT_MAX, &n))
                return s_usage_error("--timeout-ms must be a positive number");
            c.timeout_ms = (int)n;
            break;
        case 'k':
            c.secret_file = optarg;
            break;
        case 'K':
            server_file = optarg;
            break;
        case 'j':
            c.json = 1;
            break;
        case 'r':
            c.raw = 1;
            break;
        case 'a':
            all = 1;
            break;
        case 'h':
            fputs(s_usage_text, stdout);
            return 0;
        default:
            return s_usage_error("unknown option");
        }
    }
    if (optind >= argc)
        return s_usage_error("list, show, replay or purge?");
    const char *cmd = argv[optind++];
    if (strcmp(cmd, "list") && strcmp(cmd, "show") && strcmp(cmd, "replay") && strcmp(cmd, "purge"))
        return s_usage_error("the commands are list, show, replay and purge");
    if (!store == !config)
        return s_usage_error("give either --store DIR or --config FILE");
    if (pg_cli_curve_keys("dlq", c.secret_file, server_file, c.secret, c.server))
        return 2;
    size_t n = (size_t)(argc - optind);
    uint64_t *ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return 2;
    for (size_t i = 0; i < n; i++)
        if (s_parse_id(argv[optind + (int)i], &ids[i])) {
            free(ids);
            return s_usage_error("an ID is a dead letter's number, as `list` shows it");
        }
    if ((!strcmp(cmd, "show") && n != 1) || (!strcmp(cmd, "list") && n) ||
        (!strcmp(cmd, "purge") && !n == !all)) {
        free(ids);
        return s_usage_error(!strcmp(cmd, "show")    ? "show takes one ID"
                             : !strcmp(cmd, "purge") ? "purge takes IDs or --all"
                                                     : "list takes no ID");
    }

    char why[16384];
    pg_config *cfg = NULL;
    if (config) {
        cfg = pg_config_load(config, why, sizeof why);
        if (!cfg) {
            fprintf(stderr, "%s\n", why);
            free(ids);
            return 2;
        }
        store = cfg->store_path;
        c.cfg = cfg;
        if (!c.to)
            c.to = cfg->intake_endpoint;
        if (!c.rms.endpoint && cfg->delivery_endpoint) {
            c.rms.endpoint = cfg->delivery_endpoint;
            c.rms.transport = cfg->delivery_transport;
        }
    }
    int rc = 2;
    /* A store that is not there is a mistyped path, not one without dead letters: it
     * is not made (pg_store_new would). */
    char data[PATH_MAX];
    struct stat st;
    if ((size_t)snprintf(data, sizeof data, "%s/data.mdb", store) >= sizeof data ||
        stat(data, &st)) {
        fprintf(stderr, "polegate dlq: %s: %s\n", store,
                errno == ENOENT ? "no store there (no data.mdb)" : strerror(errno));
        goto out;
    }
    c.store = pg_store_new(store, cfg ? cfg->store_map_size : 0, why, PG_ERRSTR_SIZE);
    c.dlq = c.store ? pg_dlq_new(c.store, NULL, why, PG_ERRSTR_SIZE) : NULL;
    if (!c.dlq) {
        fprintf(stderr, "polegate dlq: %s\n", why);
        goto out;
    }
    if (!strcmp(cmd, "list")) {
        rc = s_list(&c);
    } else if (!strcmp(cmd, "show")) {
        rc = s_show(&c, ids[0]);
    } else {
        s_ids every = {0};
        if (!n && s_all_ids(&c, &every))
            goto out;
        const uint64_t *list = n ? ids : every.ids;
        size_t count = n ? n : every.count;
        if (!strcmp(cmd, "replay")) {
            rc = s_replay(&c, list, count);
        } else {
            rc = 0;
            for (size_t i = 0; i < count; i++)
                if (s_delete(&c, list[i]))
                    rc = 1;
        }
        free(every.ids);
    }
out:
    pg_dlq_destroy(&c.dlq);
    pg_store_destroy(&c.store);
    pg_config_destroy(&cfg);
    free(ids);
    return rc;
}
