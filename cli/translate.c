/* polegate translate: native messages offline, through the adapters and the ledger the
 * daemon uses, to canonical JSON lines, back to native format, or into the other
 * format as the partner direction delivers it. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "compose.h"
#include "idstore.h"
#include "ledger.h"
#include "polegate/adapter.h"
#include "polegate/error.h"
#include "polegate/pbjson.h"
#include "polegate/timeutil.h"
#include "store.h"

static const char s_usage_text[] =
    "usage: polegate translate --from FORMAT --to FORMAT [OPTION]... [FILE|-]...\n"
    "\n"
    "Translate native messages offline, with the adapters and the ledger polegated uses.\n"
    "\n"
    "  --from atx|nx5      format of the input\n"
    "  --to json           every canonical update the ledger publishes, one JSON line\n"
    "                      each (proto3 JSON mapping), as a partner reads it from Kafka\n"
    "  --to atx|nx5        the --from format again: decode, then encode (round trip);\n"
    "                      the other format: what the daemon delivers to a partner-fed\n"
    "                      RMS of that format (ids it assigns, revisions, ATX records\n"
    "                      with all their links)\n"
    "  --state DIR         (json, cross-format) keep the ledger and the id map in DIR, so\n"
    "                      that the next run goes on from this one; default: a temporary\n"
    "                      directory removed at exit\n"
    "  --force CODE        reject messages of any other force (default: accept all)\n"
    "  --now RFC3339       (atx, nx5) the sending time written into the output, for\n"
    "                      reproducible output; default: the current time\n"
    "  --batch ID          (nx5) the Batch of the output documents\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "With no FILE, or when FILE is -, read standard input.\n"
    "\n"
    "Exit status: 0 every message translated; 1 some message rejected (each reason on\n"
    "stderr as FILE:LINE: reason), or a file or the state could not be read or written;\n"
    "2 usage error.\n";

typedef struct s_opts {
    const char *from, *to, *state, *force, *now, *batch;
    char **files;
    int nfiles;
} s_opts;

/* One translation run: what every message of every file goes through. */
typedef struct s_run {
    const pg_adapter_ops *adapter;
    const pg_adapter_ops *target; /* cross-format: the other adapter; else NULL */
    pg_adapter_ctx ctx;
    int to_json;
    const char *file; /* the name reasons are reported under */
    pg_changeset *in, *out;
    pg_store *store;
    pg_ledger *ledger;
    pg_idstore *idmap;   /* cross-format */
    pg_compose *compose; /* cross-format */
    size_t pos;          /* the message being translated */
    pg_buf buf;
    size_t translated, rejected;
} s_run;

static int s_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int s_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("polegate translate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(polegate translate --help describes the options)\n", stderr);
    va_end(ap);
    return 2;
}

/* ---------------------------------------------------------------- options */

/* Options and files may mix; the files are gathered, in order, at the front of argv
 * (argv[0], the command name, is not needed again). 3 for --help. */
static int s_parse(int argc, char **argv, s_opts *o)
{
    static const struct {
        const char *name;
        size_t off;
    } opts[] = {
        {"--from", offsetof(s_opts, from)},   {"--to", offsetof(s_opts, to)},
        {"--state", offsetof(s_opts, state)}, {"--force", offsetof(s_opts, force)},
        {"--now", offsetof(s_opts, now)},     {"--batch", offsetof(s_opts, batch)},
    };
    int only_files = 0;
    o->files = argv;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || !strcmp(a, "-")) {
            argv[o->nfiles++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            only_files = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return 3;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        size_t k;
        for (k = 0; k < sizeof opts / sizeof opts[0]; k++)
            if (strlen(opts[k].name) == nlen && !strncmp(opts[k].name, a, nlen))
                break;
        if (k == sizeof opts / sizeof opts[0])
            return s_usage_error("unknown option '%s'", a);
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val || !*val)
            return s_usage_error("option '%s' needs a value", opts[k].name);
        *(const char **)((char *)o + opts[k].off) = val;
    }
    return 0;
}

/* Check the combination of options; fills run->adapter, to_json and ctx. */
static int s_check(const s_opts *o, s_run *run)
{
    if (!o->from)
        return s_usage_error("%s", "--from is required (atx or nx5)");
    if (!o->to)
        return s_usage_error("%s", "--to is required (json, atx or nx5)");
    run->adapter = pg_adapter_find(o->from);
    if (!run->adapter || strcmp(run->adapter->format, o->from) != 0)
        return s_usage_error("unknown --from format '%s' (atx or nx5)", o->from);
    run->to_json = !strcmp(o->to, "json");
    const pg_adapter_ops *target = run->to_json ? NULL : pg_adapter_find(o->to);
    if (!run->to_json && (!target || strcmp(target->format, o->to) != 0))
        return s_usage_error("unknown --to format '%s' (json, atx or nx5)", o->to);
    if (target && target != run->adapter)
        run->target = target;
    if (o->state && !run->to_json && !run->target)
        return s_usage_error("%s", "--state applies to --to json or the other format only");
    if ((o->now || o->batch) && run->to_json)
        return s_usage_error("%s", "--now and --batch apply to --to atx|nx5 only");
    if (o->batch && !target->batches) {
        char with[64] = "";
        for (size_t i = 0; pg_adapter_at(i); i++)
            if (pg_adapter_at(i)->batches)
                snprintf(with + strlen(with), sizeof with - strlen(with), "%s%s", *with ? "|" : "",
                         pg_adapter_at(i)->format);
        return s_usage_error("--batch applies to --to %s only", with);
    }
    run->ctx.force = o->force;
    run->ctx.batch = o->batch;
    if (o->now) {
        pg_instant t;
        char err[PG_ERRSTR_SIZE];
        if (pg_rfc3339_parse(o->now, &t, err, sizeof err))
            return s_usage_error("--now: %s", err);
        run->ctx.now_ms = t.seconds * 1000 + t.nanos / 1000000;
        /* 0 means "now" to the encoders: the epoch itself is one millisecond off. */
        if (run->ctx.now_ms == 0)
            run->ctx.now_ms = 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- state */

/* A private state directory: removed with what LMDB put in it. */
static void s_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int s_open_state(s_run *run, const char *state, char *tmpdir, size_t tmpsize)
{
    char err[PG_ERRSTR_SIZE];
    const char *dir = state;
    if (!dir) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, tmpsize, "%s/polegate-translate-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            fprintf(stderr, "polegate translate: %s: %s\n", tmpdir, strerror(errno));
            tmpdir[0] = '\0';
            return 1;
        }
        dir = tmpdir;
    }
    run->store = pg_store_new(dir, 0, err, sizeof err);
    if (!run->store) {
        fprintf(stderr, "polegate translate: --state %s: %s\n", dir, err);
        return 1;
    }
    /* A private store dies with the run: flushing each commit would only cost time. */
    if (!state && pg_store_set_durable(run->store, 0))
        return 1;
    /* Cross-format, the ledger is the daemon's partner ledger: what a partner sent. */
    run->ledger = run->target ? pg_ledger_new_named(run->store, "partner", err, sizeof err)
                              : pg_ledger_new(run->store, err, sizeof err);
    if (!run->ledger) {
        fprintf(stderr, "polegate translate: %s: %s\n", dir, err);
        return 1;
    }
    if (!run->target)
        return 0;
    pg_idstore_config icfg = {.format = run->target->format};
    pg_compose_opts copts = {
        .adapter = run->target, .ledger = run->ledger, .now_ms = run->ctx.now_ms};
    if (!(run->idmap = pg_idstore_new(run->store, &icfg, err, sizeof err)) ||
        !(copts.idmap = run->idmap, run->compose = pg_compose_new(&copts, err, sizeof err))) {
        fprintf(stderr, "polegate translate: %s: %s\n", dir, err);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- messages */

static void s_reject(s_run *run, size_t pos, const char *reason)
{
    fprintf(stderr, "%s:%zu: %s\n", run->file, pos, reason);
    run->rejected++;
}

/* Begin a write transaction and apply the decoded message through the ledger, as the
 * daemon does. 0 with *txn open (the caller commits or aborts it); 1 when the message
 * was rejected (reported, no transaction left open); negative on a failure. */
static int s_apply(s_run *run, size_t pos, pg_store_txn **txn, pg_ledger_result *res)
{
    char err[PG_ERRSTR_SIZE];
    int rc;
    for (;;) {
        if (!(*txn = pg_store_begin(run->store, 1, err, sizeof err))) {
            fprintf(stderr, "polegate translate: state: %s\n", err);
            return PG_ESTORE;
        }
        pg_changeset_reset(run->out);
        rc = pg_ledger_apply(run->ledger, *txn, run->in, run->out, res, err, sizeof err);
        if (rc != PG_EFULL)
            break;
        /* A large input outgrew the map: grow it (allowed with no transaction open)
         * and apply the message again. */
        pg_store_abort(txn);
        size_t size = pg_store_map_size(run->store);
        if (size > ((size_t)1 << 40) ||
            pg_store_set_map_size(run->store, size * 2, err, sizeof err)) {
            fprintf(stderr, "polegate translate: state: %s\n", err);
            return PG_ESTORE;
        }
    }
    if (rc == PG_EINVALID) {
        pg_store_abort(txn);
        s_reject(run, pos, err);
        return 1;
    }
    if (rc) {
        pg_store_abort(txn);
        fprintf(stderr, "polegate translate: %s:%zu: %s\n", run->file, pos, err);
        return rc;
    }
    return 0;
}

static void s_note_duplicate(const s_run *run, size_t pos, const pg_ledger_result *res)
{
    if (res->duplicate)
        fprintf(stderr, "%s:%zu: note: message %s was applied before; nothing published\n",
                run->file, pos, run->in->message_id ? run->in->message_id : "(no id)");
}

/* Apply the decoded message through the ledger in one write transaction and write each
 * update it publishes as a JSON line into run->buf. The commit comes after the JSON so
 * that a message whose updates cannot be written leaves the state as it was. */
static int s_to_json(s_run *run, size_t pos)
{
    char err[PG_ERRSTR_SIZE];
    pg_ledger_result res;
    pg_store_txn *txn;
    int rc = s_apply(run, pos, &txn, &res);
    if (rc)
        return rc > 0 ? 0 : rc;
    for (size_t i = 0; i < run->out->count; i++) {
        const pg_change *c = &run->out->changes[i];
        const ProtobufCMessage *m = c->type == PG_CHANGE_ENTITY ? &c->entity->base : &c->link->base;
        rc = pg_pbjson_encode(m, &run->buf);
        if (rc == PG_EINVALID) {
            pg_store_abort(&txn);
            pg_buf_reset(&run->buf);
            snprintf(err, sizeof err,
                     "changes[%zu]: not expressible as JSON (a string "
                     "that is not UTF-8, or a time outside years 1-9999)",
                     i);
            s_reject(run, pos, err);
            return 0;
        }
        if (rc || (rc = pg_buf_putc(&run->buf, '\n'))) {
            pg_store_abort(&txn);
            return rc;
        }
    }
    if ((rc = pg_store_commit(&txn, err, sizeof err))) {
        fprintf(stderr, "polegate translate: state: %s\n", err);
        return rc;
    }
    s_note_duplicate(run, pos, &res);
    return 0;
}

/* Cross-format: each composed native message into run->buf, one per line (ATX) or
 * document (NX5). */
static int s_emit(void *arg, const uint8_t *msg, size_t len, const pg_changeset *cs)
{
    s_run *run = arg;
    (void)cs;
    int rc = pg_buf_append(&run->buf, msg, len);
    if (!rc && len && msg[len - 1] != '\n')
        rc = pg_buf_putc(&run->buf, '\n');
    return rc;
}

static void s_refused(void *arg, const pg_change *change, const char *reason)
{
    s_run *run = arg;
    char why[PG_ERRSTR_SIZE];
    const char *id = change->type == PG_CHANGE_ENTITY ? change->entity->id : change->link->id;
    snprintf(why, sizeof why, "%s %s: not expressible in %s: %s",
             change->type == PG_CHANGE_ENTITY ? "entity" : "link", id ? id : "?",
             run->target->format, reason);
    s_reject(run, run->pos, why);
}

/* Apply the decoded message through the partner ledger and compose what an RMS of the
 * other format is sent, as the daemon's partner direction does. */
static int s_cross(s_run *run, size_t pos)
{
    char err[PG_ERRSTR_SIZE];
    pg_ledger_result res;
    pg_store_txn *txn;
    int rc = s_apply(run, pos, &txn, &res);
    if (rc)
        return rc > 0 ? 0 : rc;
    run->pos = pos;
    pg_compose_sink sink = {.emit = s_emit, .refused = s_refused, .arg = run};
    rc = pg_compose_run(run->compose, txn, run->out, run->ctx.batch, &sink, err, sizeof err);
    if (rc) {
        pg_store_abort(&txn);
        pg_buf_reset(&run->buf);
        fprintf(stderr, "polegate translate: %s:%zu: %s\n", run->file, pos,
                rc == PG_ENOMEM ? pg_strerror(rc) : err);
        return rc;
    }
    if ((rc = pg_store_commit(&txn, err, sizeof err))) {
        fprintf(stderr, "polegate translate: state: %s\n", err);
        return rc;
    }
    s_note_duplicate(run, pos, &res);
    return 0;
}

static int s_message(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_run *run = arg;
    char err[PG_ERRSTR_SIZE];
    pg_changeset_reset(run->in);
    pg_buf_reset(&run->buf);
    int rc = run->adapter->decode(&run->ctx, msg, len, run->in, err, sizeof err);
    if (rc == PG_ENOMEM)
        return rc;
    if (rc) {
        s_reject(run, pos, err);
        return 0;
    }
    if (run->to_json || run->target) {
        if ((rc = run->to_json ? s_to_json(run, pos) : s_cross(run, pos)))
            return rc;
    } else {
        rc = run->adapter->encode(&run->ctx, run->in, &run->buf, err, sizeof err);
        if (rc == PG_ENOMEM)
            return rc;
        if (rc) {
            pg_buf_reset(&run->buf);
            s_reject(run, pos, err);
            return 0;
        }
        if (run->buf.len && run->buf.data[run->buf.len - 1] != '\n' &&
            (rc = pg_buf_putc(&run->buf, '\n')))
            return rc;
    }
    if (run->buf.len && fwrite(run->buf.data, 1, run->buf.len, stdout) != run->buf.len) {
        fprintf(stderr, "polegate translate: standard output: %s\n", strerror(errno));
        return PG_EIO;
    }
    run->translated++;
    return 0;
}

/* The whole of a file (or of standard input for "-") into buf. */
static int s_read(const char *path, pg_buf *buf)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return PG_EIO;
    int rc = 0;
    pg_buf_reset(buf);
    for (;;) {
        if ((rc = pg_buf_reserve(buf, 65536)))
            break;
        size_t n = fread(buf->data + buf->len, 1, buf->cap - buf->len - 1, f);
        buf->len += n;
        buf->data[buf->len] = '\0';
        if (n == 0) {
            if (ferror(f))
                rc = PG_EIO;
            break;
        }
    }
    int saved = errno;
    if (f != stdin)
        fclose(f);
    errno = saved;
    return rc;
}

static int s_file(s_run *run, const char *path, pg_buf *data)
{
    run->file = strcmp(path, "-") ? path : "<stdin>";
    int rc = s_read(path, data);
    if (rc) {
        fprintf(stderr, "polegate translate: %s: %s\n", run->file,
                rc == PG_EIO ? strerror(errno) : pg_strerror(rc));
        run->rejected++;
        return rc == PG_ENOMEM ? rc : 0;
    }
    /* s_check set run->adapter, or returned s_usage_error's 2: the analyzer does not
     * follow the variadic s_usage_error.
     * NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
    rc = run->adapter->split(data->data, data->len, s_message, run);
    if (rc == PG_ENOMEM)
        fprintf(stderr, "polegate translate: %s: %s\n", run->file, pg_strerror(rc));
    return rc;
}

int pg_cli_translate(int argc, char **argv)
{
    s_opts o = {0};
    s_run run = {.buf = PG_BUF_INIT};
    int rc = s_parse(argc, argv, &o);
    if (rc == 3) {
        fputs(s_usage_text, stdout);
        return 0;
    }
    if (rc || (rc = s_check(&o, &run)))
        return rc;

    char tmpdir[4096] = "";
    pg_buf data = PG_BUF_INIT;
    static char *stdin_only[] = {"-"};
    char **files = o.nfiles ? o.files : stdin_only;
    int nfiles = o.nfiles ? o.nfiles : 1;
    int status = 1;
    run.in = pg_changeset_new();
    run.out = pg_changeset_new();
    if (!run.in || !run.out) {
        fprintf(stderr, "polegate translate: %s\n", pg_strerror(PG_ENOMEM));
        goto done;
    }
    if ((run.to_json || run.target) && s_open_state(&run, o.state, tmpdir, sizeof tmpdir))
        goto done;
    rc = 0;
    for (int i = 0; i < nfiles && !rc; i++)
        rc = s_file(&run, files[i], &data);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "polegate translate: standard output: %s\n", strerror(errno));
        rc = PG_EIO;
    }
    status = rc || run.rejected ? 1 : 0;
done:
    pg_compose_destroy(&run.compose);
    pg_idstore_destroy(&run.idmap);
    pg_ledger_destroy(&run.ledger);
    pg_store_destroy(&run.store);
    if (tmpdir[0])
        s_remove_dir(tmpdir);
    pg_changeset_destroy(&run.in);
    pg_changeset_destroy(&run.out);
    pg_buf_free(&run.buf);
    pg_buf_free(&data);
    return status;
}
