/* Audit log, reading: verify the chain (and the checkpoints that anchor its head) over
 * the rotated files, query events by id, action and time. */
#include <errno.h>
#include <glib.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_int.h"
#include "polegate/error.h"
#include "polegate/timeutil.h"

/* The rotated files of path, then path itself: the whole log, oldest first. */
static int s_log_set(const char *path, char ***files, size_t *n, char *errstr, size_t errstr_size)
{
    int rc = pg_audit__rotated(path, files, n, errstr, errstr_size);
    size_t cap = *n;
    if (!rc &&
        (pg_grow((void **)files, &cap, *n + 1, sizeof **files) || !((*files)[*n] = strdup(path))))
        rc = pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    if (!rc)
        (*n)++;
    return rc;
}

/* Call fn for each line of path (without newline); complete = it ended in '\n'. */
static int s_each_line(const char *path, int (*fn)(void *ud, char *line, size_t len, int complete),
                       void *ud, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, f)) > 0) {
        int complete = line[n - 1] == '\n';
        rc = fn(ud, line, (size_t)n - (size_t)complete, complete);
    }
    if (!rc && ferror(f))
        rc = pg_errf(PG_EIO, errstr, errstr_size, "%s: read error", path);
    free(line);
    fclose(f);
    return rc;
}

/* Each line of every file of the log at path, oldest first. */
static int s_each_line_of_set(const char *path, int (*file_fn)(void *ud, const char *file),
                              int (*fn)(void *ud, char *line, size_t len, int complete), void *ud,
                              char *errstr, size_t errstr_size)
{
    char **files = NULL;
    size_t n = 0;
    int rc = s_log_set(path, &files, &n, errstr, errstr_size);
    for (size_t i = 0; !rc && i < n; i++) {
        if (file_fn && (rc = file_fn(ud, files[i])))
            break;
        rc = s_each_line(files[i], fn, ud, errstr, errstr_size);
    }
    pg_audit__free_list(files, n);
    return rc;
}

typedef struct s_verify {
    pg_audit_verify_result *res;
    const pg_audit_key *key;
    pg_audit__hasher *hasher;
    pg_audit_checkpoint *cps; /* sorted by seq */
    size_t n_cps, next_cp;
    const char *file;
    size_t line_no;
    pg_buf canon;
    char *errstr;
    size_t errstr_size;
} s_verify;

static int s_verify_file(void *ud, const char *file)
{
    s_verify *v = ud;
    v->file = file;
    v->line_no = 0;
    v->res->files++;
    return 0;
}

static int s_verify_line(void *ud, char *line, size_t len, int complete)
{
    s_verify *v = ud;
    v->line_no++;
    char why[PG_ERRSTR_SIZE] = "";
    pg_audit_line ln = {0};
    int rc = 0;
    if (!complete) {
        rc = pg_errf(PG_EINVALID, why, sizeof why, "cut short: no newline at the end of the file");
    } else if (!(rc = pg_audit__parse_line(line, len, &v->canon, &ln, why, sizeof why))) {
        char expect[PG_AUDIT_HASH_LEN + 1];
        if (pg_audit__hash(v->hasher, v->res->head, (const char *)v->canon.data, v->canon.len,
                           expect))
            rc = pg_errf(PG_EINTERNAL, why, sizeof why, "libcrypto cannot hash the event");
        else if (ln.seq != v->res->events + 1)
            rc = pg_errf(PG_EINVALID, why, sizeof why,
                         "seq %" PRIu64 " where %" PRIu64
                         " was expected: a line was deleted, inserted or moved",
                         ln.seq, v->res->events + 1);
        else if (strcmp(expect, ln.hash))
            rc = pg_errf(PG_EINVALID, why, sizeof why,
                         "hash does not match: this line was changed, or the one before it%s",
                         ln.seq == 1 ? (v->key ? " (or the log is not keyed with this key)"
                                               : " (or the log is keyed: give its key)")
                                     : "");
    }
    json_decref(ln.obj);
    if (!rc) {
        v->res->events++;
        memcpy(v->res->head, ln.hash, sizeof v->res->head);
        for (; !rc && v->next_cp < v->n_cps && v->cps[v->next_cp].seq <= ln.seq; v->next_cp++) {
            const pg_audit_checkpoint *cp = &v->cps[v->next_cp];
            if (cp->seq == ln.seq && strcmp(cp->head, ln.hash)) {
                char when[32];
                pg_audit__format_time(cp->time_ms, when);
                rc = pg_errf(PG_EINVALID, why, sizeof why,
                             "event %" PRIu64 " is not the one the checkpoint signed at %s "
                             "holds: the log was rewritten",
                             ln.seq, when);
            } else if (cp->seq == ln.seq) {
                v->res->checkpoints++;
            }
        }
    }
    if (rc) {
        v->res->bad_line = v->line_no;
        return pg_errf(PG_EINVALID, v->errstr, v->errstr_size, "%s: line %zu: %s", v->file,
                       v->line_no, why);
    }
    return 0;
}

static int s_cp_cmp(const void *x, const void *y)
{
    const pg_audit_checkpoint *a = x, *b = y;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int pg_audit_verify(const char *path, const pg_audit_verify_opts *opts, pg_audit_verify_result *res,
                    char *errstr, size_t errstr_size)
{
    memset(res, 0, sizeof *res);
    memcpy(res->head, PG_AUDIT_GENESIS, sizeof res->head);
    if (sodium_init() < 0)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "libsodium cannot start");
    s_verify v = {.res = res,
                  .key = opts ? opts->key : NULL,
                  .canon = PG_BUF_INIT,
                  .errstr = errstr,
                  .errstr_size = errstr_size};
    if (!(v.hasher = pg_audit__hasher_new(v.key, errstr, errstr_size)))
        return PG_EINTERNAL;
    if (opts && opts->checkpoint_count) {
        v.cps = malloc(opts->checkpoint_count * sizeof *v.cps);
        if (!v.cps) {
            pg_audit__hasher_destroy(&v.hasher);
            return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        }
        memcpy(v.cps, opts->checkpoints, opts->checkpoint_count * sizeof *v.cps);
        v.n_cps = opts->checkpoint_count;
        qsort(v.cps, v.n_cps, sizeof *v.cps, s_cp_cmp);
        /* the empty log's checkpoint: seq 0 with the genesis head */
        while (v.next_cp < v.n_cps && v.cps[v.next_cp].seq == 0)
            v.next_cp++;
    }
    int rc = s_each_line_of_set(path, s_verify_file, s_verify_line, &v, errstr, errstr_size);
    if (!rc && v.next_cp < v.n_cps) {
        const pg_audit_checkpoint *last = &v.cps[v.n_cps - 1];
        char when[32];
        pg_audit__format_time(last->time_ms, when);
        rc = pg_errf(PG_EINVALID, errstr, errstr_size,
                     "the log ends at event %" PRIu64 " but the checkpoint signed at %s "
                     "holds event %" PRIu64 ": events were cut off its end",
                     res->events, when, last->seq);
    }
    free(v.cps);
    pg_audit__hasher_destroy(&v.hasher);
    pg_buf_free(&v.canon);
    return rc;
}

typedef struct s_find {
    uint64_t seq;                /* the event wanted */
    uint64_t first, last, after; /* the first and last seq seen, the first past seq (0: none) */
    int found;
    char *hash;
    const char *file;
    size_t line_no;
    pg_buf canon;
    char *errstr;
    size_t errstr_size;
} s_find;

/* Each line's seq read from its start, where the log writes it ({"seq":N,...): the
 * one wanted is parsed whole, the others are not (verify checks them). */
static int s_find_line(void *ud, char *line, size_t len, int complete)
{
    static const char pre[] = "{\"seq\":";
    s_find *f = ud;
    f->line_no++;
    if (len < sizeof pre || memcmp(line, pre, sizeof pre - 1) || line[sizeof pre - 1] < '0' ||
        line[sizeof pre - 1] > '9')
        return 0;
    char *end;
    uint64_t seq = strtoull(line + sizeof pre - 1, &end, 10);
    if (*end != ',')
        return 0;
    if (!f->first)
        f->first = seq;
    if (seq > f->seq) {
        f->after = seq;
        return 1; /* passed it: stops the reading */
    }
    f->last = seq;
    if (seq != f->seq)
        return 0;
    char why[PG_ERRSTR_SIZE] = "cut short: no newline at the end of the file";
    pg_audit_line ln = {0};
    int rc =
        complete ? pg_audit__parse_line(line, len, &f->canon, &ln, why, sizeof why) : PG_EINVALID;
    json_decref(ln.obj);
    if (rc)
        return pg_errf(PG_ECORRUPT, f->errstr, f->errstr_size,
                       "%s: line %zu: event %" PRIu64 ": %s (run polegate audit verify)", f->file,
                       f->line_no, seq, why);
    memcpy(f->hash, ln.hash, PG_AUDIT_HASH_LEN + 1);
    f->found = 1;
    return 1; /* stops the reading */
}

int pg_audit__event_hash(const char *path, uint64_t seq, char out[PG_AUDIT_HASH_LEN + 1],
                         char *errstr, size_t errstr_size)
{
    char **files = NULL;
    size_t n = 0;
    int rc = s_log_set(path, &files, &n, errstr, errstr_size);
    if (rc)
        return rc;
    /* A rotated file is named after its first event: begin at the last one that does
     * not start after seq (the current file, the last of the set, is named by none). */
    size_t from = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const char *digits = files[i] + strlen(files[i]) - 20;
        if (strtoull(digits, NULL, 10) <= seq)
            from = i;
    }
    s_find f = {.seq = seq,
                .hash = out,
                .canon = PG_BUF_INIT,
                .errstr = errstr,
                .errstr_size = errstr_size};
    for (size_t i = from; !rc && !f.found && i < n; i++) {
        f.file = files[i];
        f.line_no = 0;
        rc = s_each_line(files[i], s_find_line, &f, errstr, errstr_size);
    }
    if (rc == 1)
        rc = 0;
    if (!rc && !f.found) {
        if (f.first > seq)
            rc = 1;
        else if (f.after)
            rc = pg_errf(PG_ECORRUPT, errstr, errstr_size,
                         "%s: holds no event %" PRIu64 ": event %" PRIu64
                         " is followed by event %" PRIu64
                         ": events were removed (run polegate audit verify)",
                         path, seq, f.last, f.after);
        else
            rc = pg_errf(PG_ECORRUPT, errstr, errstr_size,
                         "%s: holds no event %" PRIu64 ": it ends at event %" PRIu64, path, seq,
                         f.last);
    }
    pg_buf_free(&f.canon);
    pg_audit__free_list(files, n);
    return rc;
}

typedef struct s_query {
    const pg_audit_filter *filter;
    char since[32], until[32];
    pg_audit_line_fn fn;
    void *ud;
    pg_buf canon;
    /* What says the results are not those of an unbroken chain: lines that are no event,
     * and events whose seq does not follow the one before (the first of each: its file
     * and its line there). */
    const char *file;
    uint64_t line_no, bad, gaps, bad_line, gap_line, last_seq;
    char bad_file[PATH_MAX], gap_file[PATH_MAX];
} s_query;

static int s_query_file(void *ud, const char *file)
{
    s_query *q = ud;
    q->file = file;
    q->line_no = 0;
    return 0;
}

static int s_matches(const json_t *obj, const char *key, const char *want)
{
    return !want || (json_is_string(json_object_get(obj, key)) &&
                     !strcmp(json_string_value(json_object_get(obj, key)), want));
}

static int s_party_matches(const json_t *obj, const char *want)
{
    size_t n = want ? strlen(want) : 0;
    if (!n || want[n - 1] != '*')
        return s_matches(obj, "party", want);
    const char *party = json_string_value(json_object_get(obj, "party"));
    return party && !strncmp(party, want, n - 1);
}

static int s_query_line(void *ud, char *line, size_t len, int complete)
{
    s_query *q = ud;
    const pg_audit_filter *f = q->filter;
    pg_audit_line ln = {0};
    q->line_no++;
    if (!complete || pg_audit__parse_line(line, len, &q->canon, &ln, NULL, 0)) {
        json_decref(ln.obj);
        if (!q->bad++) {
            q->bad_line = q->line_no;
            snprintf(q->bad_file, sizeof q->bad_file, "%s", q->file);
        }
        return 0;
    }
    if (q->last_seq && ln.seq != q->last_seq + 1 && !q->gaps++) {
        q->gap_line = q->line_no;
        snprintf(q->gap_file, sizeof q->gap_file, "%s", q->file);
    }
    q->last_seq = ln.seq;
    const char *when = json_string_value(json_object_get(ln.obj, "time"));
    int match = s_party_matches(ln.obj, f->party) && s_matches(ln.obj, "entity_id", f->entity_id) &&
                s_matches(ln.obj, "native_id", f->native_id) &&
                s_matches(ln.obj, "destination", f->destination) &&
                s_matches(ln.obj, "action", pg_audit_action_name(f->action)) &&
                (!f->has_since || strcmp(when, q->since) >= 0) &&
                (!f->has_until || strcmp(when, q->until) < 0);
    json_decref(ln.obj);
    return match ? q->fn(q->ud, line, len) : 0;
}

int pg_audit_query(const char *path, const pg_audit_filter *filter, pg_audit_line_fn fn, void *ud,
                   char *errstr, size_t errstr_size)
{
    static const pg_audit_filter all;
    s_query q = {.filter = filter ? filter : &all, .fn = fn, .ud = ud, .canon = PG_BUF_INIT};
    pg_audit__format_time(q.filter->since_ms, q.since);
    pg_audit__format_time(q.filter->until_ms, q.until);
    int rc = s_each_line_of_set(path, s_query_file, s_query_line, &q, errstr, errstr_size);
    pg_buf_free(&q.canon);
    if (!rc && (q.bad || q.gaps)) {
        char bad[PATH_MAX + 96] = "", gaps[PATH_MAX + 96] = "";
        if (q.bad)
            snprintf(bad, sizeof bad,
                     "%" PRIu64 " lines are not events (the first: %s line %" PRIu64 ")", q.bad,
                     q.bad_file, q.bad_line);
        if (q.gaps)
            snprintf(gaps, sizeof gaps,
                     "%" PRIu64 " events do not follow the one before (the first: %s line %" PRIu64
                     ")",
                     q.gaps, q.gap_file, q.gap_line);
        rc = pg_errf(PG_ECORRUPT, errstr, errstr_size,
                     "%s%s%s: what was printed is not from an unbroken chain; run polegate audit "
                     "verify",
                     bad, *bad && *gaps ? ", " : "", gaps);
    }
    return rc;
}

int pg_audit_parse_time(const char *s, int64_t *ms, char *errstr, size_t errstr_size)
{
    char buf[64];
    if (!s || strlen(s) >= sizeof buf - 12)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "time: expected RFC 3339 or YYYY-MM-DD");
    snprintf(buf, sizeof buf, strlen(s) == 10 ? "%sT00:00:00Z" : "%s", s);
    GDateTime *dt = g_date_time_new_from_iso8601(buf, NULL);
    if (!dt)
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "time '%s': expected RFC 3339 with an offset (2026-03-29T02:30:00Z) or a "
                       "date (2026-03-29)",
                       s);
    *ms = (int64_t)g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
    g_date_time_unref(dt);
    return 0;
}
