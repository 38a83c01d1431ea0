/* Audit log: JSON lines, each event hashed (SHA-256, GLib) with the previous event's
 * hash so that editing, deleting or reordering lines shows. */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "polegate/buf.h"
#include "polegate/error.h"

#define S_HASH_LEN 64
#define S_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
/* What follows the canonical event on its line: ,"hash":"<64 hex>"} */
#define S_HASH_KEY ",\"hash\":\""
#define S_SUFFIX_LEN (sizeof S_HASH_KEY - 1 + S_HASH_LEN + 2)
#define S_FIELD_MAX 256
/* Far more than any event (a dozen fields of at most S_FIELD_MAX bytes). */
#define S_TAIL_MAX 65536

static const char *const s_action_names[] = {NULL,
#define S_ACTION_NAME(id, name) name,
                                             PG_AUDIT_ACTION_TABLE(S_ACTION_NAME)
#undef S_ACTION_NAME
};

/* The keys of an event in the order they are written; "hash" comes last. */
static const char *const s_keys[] = {
    "seq",         "time",    "action",    "entity_id",      "native_id", "origin",
    "destination", "partner", "agreement", "policy_version", "version",   "outcome",
};
#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])

const char *pg_audit_action_name(pg_audit_action action)
{
    return action > PG_AUDIT_NONE && action < PG_AUDIT_ACTION_COUNT ? s_action_names[action] : NULL;
}

pg_audit_action pg_audit_action_parse(const char *name)
{
    for (int a = PG_AUDIT_NONE + 1; name && a < PG_AUDIT_ACTION_COUNT; a++)
        if (!strcmp(s_action_names[a], name))
            return (pg_audit_action)a;
    return PG_AUDIT_NONE;
}

static void s_event_from(pg_audit_event *ev, pg_audit_action action, const char *id,
                         const pg_origin *origin, uint64_t version)
{
    memset(ev, 0, sizeof *ev);
    ev->action = action;
    ev->entity_id = id && *id ? id : NULL;
    if (origin) {
        ev->native_id = origin->native_id && *origin->native_id ? origin->native_id : NULL;
        ev->origin = origin->force && *origin->force ? origin->force : NULL;
    }
    ev->version = version;
}

void pg_audit_event_from_entity(pg_audit_event *ev, pg_audit_action action,
                                const pg_entity_update *entity)
{
    s_event_from(ev, action, entity->id, entity->origin, entity->version);
}

void pg_audit_event_from_link(pg_audit_event *ev, pg_audit_action action,
                              const pg_link_update *link)
{
    s_event_from(ev, action, link->id, link->origin, link->version);
}

struct pg_audit {
    pthread_mutex_t lock;
    int fd;
    char *path;
    uint64_t seq;              /* of the last event written */
    char prev[S_HASH_LEN + 1]; /* its hash */
    off_t size;                /* bytes of complete events in the file */
    unsigned pending;          /* events written since the last fdatasync */
    unsigned sync_every;
    int failed; /* a write or sync failed: the log can no longer be trusted */
    int64_t (*clock_ms)(void *ud);
    void *clock_ud;
    void (*on_event)(void *ud, const pg_audit_event *ev, int rc);
    void *on_event_ud;
    pg_buf line; /* reused for every event */
};

/* ------------------------------------------------------------------ shared */

static void s_hash(const char *prev, const char *canon, size_t len, char out[S_HASH_LEN + 1])
{
    GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
    g_checksum_update(sum, (const guchar *)prev, S_HASH_LEN);
    g_checksum_update(sum, (const guchar *)canon, (gssize)len);
    memcpy(out, g_checksum_get_string(sum), S_HASH_LEN);
    out[S_HASH_LEN] = '\0';
    g_checksum_free(sum);
}

/* "2026-03-29T01:30:00.123Z": fixed width, so times compare as strings. */
static void s_format_time(int64_t ms, char out[32])
{
    int64_t secs = ms / 1000, milli = ms % 1000;
    if (milli < 0) {
        milli += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)milli);
}

static int64_t s_real_clock(void *ud)
{
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One parsed line: the event object, its seq and hash, and the length of the
 * canonical bytes the hash covers (the line up to the hash key, plus "}"). */
typedef struct s_line {
    json_t *obj;
    uint64_t seq;
    char hash[S_HASH_LEN + 1];
} s_line;

/* Split and check one line (without its newline). canon gets the hashed bytes. */
static int s_parse_line(const char *line, size_t len, pg_buf *canon, s_line *out, char *errstr,
                        size_t errstr_size)
{
    out->obj = NULL;
    if (!len)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "empty line");
    if (memchr(line, '\0', len))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "holds a NUL byte");
    if (len < S_SUFFIX_LEN + 2 || line[len - 1] != '}' || line[len - 2] != '"' ||
        memcmp(line + len - S_SUFFIX_LEN, S_HASH_KEY, sizeof S_HASH_KEY - 1))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "does not end with the event's \"hash\" (cut short or not an event)");
    const char *hex = line + len - 2 - S_HASH_LEN;
    for (int i = 0; i < S_HASH_LEN; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "hash is not 64 lower-case hex digits");
    memcpy(out->hash, hex, S_HASH_LEN);
    out->hash[S_HASH_LEN] = '\0';
    pg_buf_reset(canon);
    if (pg_buf_append(canon, line, len - S_SUFFIX_LEN) || pg_buf_putc(canon, '}'))
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    json_error_t jerr;
    out->obj = json_loadb((const char *)canon->data, canon->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!out->obj || !json_is_object(out->obj)) {
        json_decref(out->obj);
        out->obj = NULL;
        return pg_errf(PG_EINVALID, errstr, errstr_size, "not a JSON object: %s", jerr.text);
    }
    const char *key;
    json_t *value;
    json_object_foreach(out->obj, key, value)
    {
        size_t k = 0;
        while (k < S_NKEYS && strcmp(s_keys[k], key))
            k++;
        if (k == S_NKEYS)
            return pg_errf(PG_EINVALID, errstr, errstr_size, "unknown field \"%.40s\"", key);
    }
    json_t *seq = json_object_get(out->obj, "seq");
    json_t *when = json_object_get(out->obj, "time");
    if (!json_is_integer(seq) || json_integer_value(seq) < 1)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "seq is not a positive integer");
    out->seq = (uint64_t)json_integer_value(seq);
    if (!json_is_string(when))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "time is missing");
    if (pg_audit_action_parse(json_string_value(json_object_get(out->obj, "action"))) ==
        PG_AUDIT_NONE)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "action is missing or unknown");
    return 0;
}

/* ------------------------------------------------------------------ writing */

/* The last line of the file must be a complete event: the chain continues from it. */
static int s_read_tail(pg_audit *self, char *errstr, size_t errstr_size)
{
    struct stat st;
    if (fstat(self->fd, &st))
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", self->path, strerror(errno));
    self->size = st.st_size;
    memcpy(self->prev, S_GENESIS, sizeof self->prev);
    self->seq = 0;
    if (!st.st_size)
        return 0;
    size_t want = st.st_size < S_TAIL_MAX ? (size_t)st.st_size : S_TAIL_MAX;
    char *tail = malloc(want);
    if (!tail)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    int rc = 0;
    ssize_t got = pread(self->fd, tail, want, st.st_size - (off_t)want);
    if (got != (ssize_t)want) {
        rc = pg_errf(PG_EIO, errstr, errstr_size, "%s: cannot read its last line", self->path);
        goto out;
    }
    if (tail[want - 1] != '\n') {
        const char *nl = memrchr(tail, '\n', want);
        size_t partial = nl ? (size_t)(tail + want - nl - 1) : want;
        rc = pg_errf(PG_EIO, errstr, errstr_size,
                     "%s: ends with %zu bytes that are not a complete event (a crash while "
                     "writing?): check it with `polegate audit verify`, then cut them with "
                     "`truncate -s %jd %s`",
                     self->path, partial, (intmax_t)(st.st_size - (off_t)partial), self->path);
        goto out;
    }
    const char *end = tail + want - 1;
    const char *nl = memrchr(tail, '\n', want - 1);
    if (!nl && want < (size_t)st.st_size) {
        rc = pg_errf(PG_EIO, errstr, errstr_size, "%s: its last line is longer than %d bytes",
                     self->path, S_TAIL_MAX);
        goto out;
    }
    const char *start = nl ? nl + 1 : tail;
    pg_buf canon = PG_BUF_INIT;
    s_line last;
    char why[PG_ERRSTR_SIZE];
    rc = s_parse_line(start, (size_t)(end - start), &canon, &last, why, sizeof why);
    json_decref(last.obj);
    pg_buf_free(&canon);
    if (rc) {
        rc = pg_errf(PG_EIO, errstr, errstr_size,
                     "%s: its last line is not an audit event (%s): check it with `polegate "
                     "audit verify`",
                     self->path, why);
        goto out;
    }
    self->seq = last.seq;
    memcpy(self->prev, last.hash, sizeof self->prev);
out:
    free(tail);
    return rc;
}

pg_audit *pg_audit_new(const char *path, const pg_audit_options *opts, char *errstr,
                       size_t errstr_size)
{
    pg_audit *a = calloc(1, sizeof *a);
    if (!a) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    a->fd = -1;
    pthread_mutex_init(&a->lock, NULL);
    a->sync_every = opts && opts->sync_every > 1 ? opts->sync_every : 1;
    a->clock_ms = opts && opts->clock_ms ? opts->clock_ms : s_real_clock;
    a->clock_ud = opts ? opts->clock_ud : NULL;
    a->on_event = opts ? opts->on_event : NULL;
    a->on_event_ud = opts ? opts->on_event_ud : NULL;
    if (!(a->path = strdup(path ? path : ""))) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    a->fd = open(a->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (a->fd < 0) {
        pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", a->path, strerror(errno));
        goto err;
    }
    /* Two writers would fork the chain. */
    if (flock(a->fd, LOCK_EX | LOCK_NB)) {
        pg_errf(PG_EIO, errstr, errstr_size, "%s: another process is writing this audit log",
                a->path);
        goto err;
    }
    if (s_read_tail(a, errstr, errstr_size))
        goto err;
    return a;
err:
    pg_audit_destroy(&a);
    return NULL;
}

static int s_sync_locked(pg_audit *self, char *errstr, size_t errstr_size)
{
    if (!self->pending)
        return 0;
    if (fdatasync(self->fd)) {
        self->failed = 1;
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: fdatasync: %s", self->path,
                       strerror(errno));
    }
    self->pending = 0;
    return 0;
}

void pg_audit_destroy(pg_audit **p)
{
    if (!p || !*p)
        return;
    pg_audit *a = *p;
    if (a->fd >= 0) {
        if (!a->failed)
            s_sync_locked(a, NULL, 0);
        close(a->fd);
    }
    pthread_mutex_destroy(&a->lock);
    pg_buf_free(&a->line);
    free(a->path);
    free(a);
    *p = NULL;
}

/* A field value may be metadata only: short, no control characters; the outcome a
 * code with no spaces, so that no free text (which could quote content) gets in. */
static int s_check_field(const char *key, const char *value, int is_code, char *errstr,
                         size_t errstr_size)
{
    if (!value)
        return 0;
    if (strlen(value) > S_FIELD_MAX)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "audit: %s is longer than %d bytes", key,
                       S_FIELD_MAX);
    for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
        if (*c < 0x20 || *c == 0x7f)
            return pg_errf(PG_EINVALID, errstr, errstr_size, "audit: %s holds a control character",
                           key);
        if (is_code && !((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                         (*c >= '0' && *c <= '9') || strchr("._-:,/[]", *c)))
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "audit: %s must be a code (letters, digits, . _ - : , / [ ]), not "
                           "free text",
                           key);
    }
    return 0;
}

static int s_set(json_t *obj, const char *key, json_t *value)
{
    return value ? json_object_set_new(obj, key, value) : -1;
}

static json_t *s_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The canonical bytes of an event: compact JSON, keys in s_keys order. Caller frees. */
static char *s_canonical(const pg_audit_event *ev, uint64_t seq, const char *when)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad =
        s_set(o, "seq", json_integer((json_int_t)seq)) || s_set(o, "time", json_string(when)) ||
        s_set(o, "action", json_string(pg_audit_action_name(ev->action))) ||
        s_set(o, "entity_id", s_str(ev->entity_id)) ||
        s_set(o, "native_id", s_str(ev->native_id)) || s_set(o, "origin", s_str(ev->origin)) ||
        s_set(o, "destination", s_str(ev->destination)) ||
        s_set(o, "partner", s_str(ev->partner)) || s_set(o, "agreement", s_str(ev->agreement)) ||
        s_set(o, "policy_version", s_str(ev->policy_version)) ||
        s_set(o, "version", ev->version ? json_integer((json_int_t)ev->version) : json_null()) ||
        s_set(o, "outcome", s_str(ev->outcome));
    char *text = bad ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static int s_check_event(const pg_audit_event *ev, char *errstr, size_t errstr_size)
{
    if (!pg_audit_action_name(ev->action))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "audit: unknown action %d",
                       (int)ev->action);
    if (ev->version > (uint64_t)INT64_MAX)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "audit: version out of range");
    const struct {
        const char *key, *value;
        int is_code;
    } fields[] = {
        {"entity_id", ev->entity_id, 0},
        {"native_id", ev->native_id, 0},
        {"origin", ev->origin, 0},
        {"destination", ev->destination, 0},
        {"partner", ev->partner, 0},
        {"agreement", ev->agreement, 0},
        {"policy_version", ev->policy_version, 0},
        {"outcome", ev->outcome, 1},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        int rc =
            s_check_field(fields[i].key, fields[i].value, fields[i].is_code, errstr, errstr_size);
        if (rc)
            return rc;
    }
    return 0;
}

/* Write all of buf at the end of the file; on failure cut back what got written. */
static int s_write_all(pg_audit *self, const pg_buf *buf, char *errstr, size_t errstr_size)
{
    size_t done = 0;
    while (done < buf->len) {
        ssize_t n = write(self->fd, buf->data + done, buf->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : ENOSPC;
            if (done && ftruncate(self->fd, self->size))
                self->failed = 1;
            return pg_errf(PG_EIO, errstr, errstr_size, "%s: write: %s", self->path, strerror(err));
        }
        done += (size_t)n;
    }
    return 0;
}

int pg_audit_append(pg_audit *self, const pg_audit_event *ev, char *errstr, size_t errstr_size)
{
    int rc = s_check_event(ev, errstr, errstr_size);
    if (rc)
        return rc;
    pthread_mutex_lock(&self->lock);
    char when[32], hash[S_HASH_LEN + 1];
    char *canon = NULL;
    if (self->failed) {
        rc = pg_errf(PG_EIO, errstr, errstr_size,
                     "%s: an earlier write failed; the audit log takes no more events", self->path);
        goto out;
    }
    s_format_time(self->clock_ms(self->clock_ud), when);
    uint64_t seq = self->seq + 1;
    if (!(canon = s_canonical(ev, seq, when))) {
        rc = pg_errf(PG_EINVALID, errstr, errstr_size,
                     "audit: cannot encode the event (a field is not UTF-8?)");
        goto out;
    }
    size_t len = strlen(canon);
    s_hash(self->prev, canon, len, hash);
    pg_buf_reset(&self->line);
    if (pg_buf_append(&self->line, canon, len - 1) ||
        pg_buf_printf(&self->line, "%s%s\"}\n", S_HASH_KEY, hash)) {
        rc = pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    if ((rc = s_write_all(self, &self->line, errstr, errstr_size))) {
        self->failed = 1;
        goto out;
    }
    self->size += (off_t)self->line.len;
    self->seq = seq;
    memcpy(self->prev, hash, sizeof self->prev);
    if (++self->pending >= self->sync_every)
        rc = s_sync_locked(self, errstr, errstr_size);
out:
    free(canon);
    pthread_mutex_unlock(&self->lock);
    if (self->on_event)
        self->on_event(self->on_event_ud, ev, rc);
    return rc;
}

int pg_audit_sync(pg_audit *self, char *errstr, size_t errstr_size)
{
    pthread_mutex_lock(&self->lock);
    int rc = self->failed
                 ? pg_errf(PG_EIO, errstr, errstr_size, "%s: an earlier write failed", self->path)
                 : s_sync_locked(self, errstr, errstr_size);
    pthread_mutex_unlock(&self->lock);
    return rc;
}

uint64_t pg_audit_seq(pg_audit *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t seq = self->seq;
    pthread_mutex_unlock(&self->lock);
    return seq;
}

/* ------------------------------------------------------------------ reading */

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

typedef struct s_verify {
    pg_audit_verify_result *res;
    size_t line_no;
    pg_buf canon;
    char *errstr;
    size_t errstr_size;
} s_verify;

static int s_verify_line(void *ud, char *line, size_t len, int complete)
{
    s_verify *v = ud;
    v->line_no++;
    char why[PG_ERRSTR_SIZE] = "";
    s_line ln;
    int rc = 0;
    if (!complete) {
        rc = pg_errf(PG_EINVALID, why, sizeof why, "cut short: no newline at the end of the file");
    } else if (!(rc = s_parse_line(line, len, &v->canon, &ln, why, sizeof why))) {
        char expect[S_HASH_LEN + 1];
        s_hash(v->res->head, (const char *)v->canon.data, v->canon.len, expect);
        if (ln.seq != v->res->events + 1)
            rc = pg_errf(PG_EINVALID, why, sizeof why,
                         "seq %" PRIu64 " where %" PRIu64
                         " was expected: a line was deleted, inserted or moved",
                         ln.seq, v->res->events + 1);
        else if (strcmp(expect, ln.hash))
            rc = pg_errf(PG_EINVALID, why, sizeof why,
                         "hash does not match: this line was changed, or the one before it");
    }
    if (complete)
        json_decref(ln.obj);
    if (rc) {
        v->res->bad_line = v->line_no;
        return pg_errf(PG_EINVALID, v->errstr, v->errstr_size, "line %zu: %s", v->line_no, why);
    }
    v->res->events++;
    memcpy(v->res->head, ln.hash, sizeof v->res->head);
    return 0;
}

int pg_audit_verify(const char *path, pg_audit_verify_result *res, char *errstr, size_t errstr_size)
{
    memset(res, 0, sizeof *res);
    memcpy(res->head, S_GENESIS, sizeof res->head);
    s_verify v = {.res = res, .canon = PG_BUF_INIT, .errstr = errstr, .errstr_size = errstr_size};
    int rc = s_each_line(path, s_verify_line, &v, errstr, errstr_size);
    pg_buf_free(&v.canon);
    return rc;
}

typedef struct s_query {
    const pg_audit_filter *filter;
    char since[32], until[32];
    pg_audit_line_fn fn;
    void *ud;
    pg_buf canon;
} s_query;

static int s_matches(const json_t *obj, const char *key, const char *want)
{
    return !want || (json_is_string(json_object_get(obj, key)) &&
                     !strcmp(json_string_value(json_object_get(obj, key)), want));
}

static int s_query_line(void *ud, char *line, size_t len, int complete)
{
    s_query *q = ud;
    const pg_audit_filter *f = q->filter;
    s_line ln;
    if (!complete || s_parse_line(line, len, &q->canon, &ln, NULL, 0)) {
        if (complete)
            json_decref(ln.obj);
        return 0;
    }
    const char *when = json_string_value(json_object_get(ln.obj, "time"));
    int match = s_matches(ln.obj, "entity_id", f->entity_id) &&
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
    s_format_time(q.filter->since_ms, q.since);
    s_format_time(q.filter->until_ms, q.until);
    int rc = s_each_line(path, s_query_line, &q, errstr, errstr_size);
    pg_buf_free(&q.canon);
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
