/* pg_dropdir: the intake's drop directory; each file's messages through pg_intake, a
 * result file beside it, then done/ or failed/. */
#include "dropdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "intake.h"
#include "log.h"
#include "polegate/json.h"
#include "polegate/timeutil.h"
#include "store.h"

#define S_DEFAULT_MAX_FILE ((size_t)1 << 30)
#define S_DEFAULT_GROUP_MAX 256
#define S_DEFAULT_GROUP_BYTES ((size_t)16 << 20)
/* The longest name taken: its result is .<name>.result, or <name>.<inode>.result in
 * done/ or failed/ (28 bytes more, with a 20-digit inode number). */
#define S_MAX_NAME (NAME_MAX - 28)
/* How long to wait before trying again after the store failed or the spool was full. */
#define S_BACKOFF_MS 500

/* A file's progress, kept under its name in the store (big-endian u64s). The
 * identity (inode, size, mtime) tells a resumed file from a new one of the same name. */
typedef struct s_progress {
    uint64_t ino, size, mtime_ns;
    uint64_t offset;     /* where the next message starts */
    uint64_t pos;        /* the position (line, document) of the last message taken */
    uint64_t result_len; /* bytes of the result file that belong to what was taken */
    uint64_t accepted, rejected;
    uint64_t finished; /* every message taken: only the moves are left */
    /* the file's birth time (statx), 0 when the filesystem keeps none: an inode number
     * used again by a new file of the same name (the old one removed while part
     * taken) is told apart by it. Progress written before it has 9 fields. */
    uint64_t btime_ns;
} s_progress;
#define S_PROGRESS_FIELDS 10
#define S_PROGRESS_FIELDS_V1 9

/* One message of the group being taken. */
typedef struct s_msg {
    const uint8_t *data;
    size_t len, pos;
} s_msg;

struct pg_dropdir {
    char *dir;
    int dfd, done_fd, failed_fd;
    size_t max_file_size, group_max, group_max_bytes;
    const pg_adapter_ops *adapter;
    pg_intake *intake;
    pg_store *store;
    pg_store_db db;
    /* The listing being worked through, in name order. */
    char **names;
    size_t count, next;
    /* The file being taken (fd >= 0). */
    char name[NAME_MAX + 1];
    char result[NAME_MAX + 16];
    char refused[NAME_MAX + 1]; /* the file whose result was last refused (logged once) */
    int fd, rfd;
    const uint8_t *data;
    size_t size;
    s_progress p;
    /* The group being collected. */
    s_msg *msgs;
    size_t nmsgs, bytes;
    pg_buf lines, json;
    int64_t backoff_until;
    pg_dropdir_stats stats;
    /* hashes of the names too long to take, of this listing and the one before */
    uint64_t *long_now, *long_before;
    size_t n_long, cap_long, n_long_before, cap_long_before;
};

static void s_progress_encode(const s_progress *p, uint8_t out[S_PROGRESS_FIELDS * 8])
{
    const uint64_t *v = &p->ino;
    for (size_t i = 0; i < S_PROGRESS_FIELDS; i++)
        pg_store_be64_put(out + 8 * i, v[i]);
}

/* The stored progress of name into *p: 1 found, 0 none, negative on a store error. */
static int s_progress_get(pg_dropdir *self, const char *name, s_progress *p)
{
    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(self->store, 0, why, sizeof why);
    if (!txn) {
        pg_log(PG_LOG_ERROR, "dropdir: store: %s", why);
        return PG_ESTORE;
    }
    const void *val;
    size_t vlen;
    int rc = pg_store_get(txn, self->db, name, strlen(name), &val, &vlen, why, sizeof why);
    int found = 0;
    if (!rc && (vlen == S_PROGRESS_FIELDS * 8 || vlen == S_PROGRESS_FIELDS_V1 * 8)) {
        uint64_t *v = &p->ino;
        p->btime_ns = 0;
        for (size_t i = 0; i < vlen / 8; i++)
            v[i] = pg_store_be64_get((const uint8_t *)val + 8 * i);
        found = 1;
    } else if (rc && rc != PG_ENOTFOUND) {
        pg_log(PG_LOG_ERROR, "dropdir: store: %s", why);
        found = PG_ESTORE;
    }
    pg_store_abort(&txn);
    return found;
}

pg_dropdir *pg_dropdir_new(const pg_dropdir_opts *opts, char *errstr, size_t errstr_size)
{
    pg_dropdir *self = calloc(1, sizeof *self);
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    self->dfd = self->done_fd = self->failed_fd = self->fd = self->rfd = -1;
    self->adapter = opts->adapter;
    self->intake = opts->intake;
    self->store = opts->store;
    self->max_file_size = opts->max_file_size ? opts->max_file_size : S_DEFAULT_MAX_FILE;
    self->group_max = opts->group_max ? opts->group_max : S_DEFAULT_GROUP_MAX;
    self->group_max_bytes = opts->group_max_bytes ? opts->group_max_bytes : S_DEFAULT_GROUP_BYTES;
    self->dir = strdup(opts->dir);
    self->msgs = calloc(self->group_max, sizeof *self->msgs);
    if (!self->dir || !self->msgs) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    self->dfd = open(opts->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dfd < 0 || faccessat(self->dfd, ".", W_OK, 0)) {
        pg_errf(PG_ECONFIG, errstr, errstr_size,
                "intake.directory: '%s' is not a writable directory: %s", opts->dir,
                strerror(errno));
        goto err;
    }
    /* Whoever can write the directory speaks as the RMS (party rms:local). */
    struct stat dst;
    if (fstat(self->dfd, &dst) || (dst.st_mode & S_IWOTH)) {
        pg_errf(PG_ECONFIG, errstr, errstr_size,
                "intake.directory: '%s' is writable by every user (mode %03o): whoever can "
                "write it speaks as the RMS; let only the RMS's user or group write it",
                opts->dir, (unsigned)(dst.st_mode & 07777));
        goto err;
    }
    static const char *const subs[] = {"done", "failed"};
    int *fds[] = {&self->done_fd, &self->failed_fd};
    for (size_t i = 0; i < 2; i++) {
        if (mkdirat(self->dfd, subs[i], 0755) && errno != EEXIST) {
            pg_errf(PG_EIO, errstr, errstr_size, "intake.directory: cannot make %s/%s: %s",
                    opts->dir, subs[i], strerror(errno));
            goto err;
        }
        *fds[i] = openat(self->dfd, subs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (*fds[i] < 0) {
            pg_errf(PG_EIO, errstr, errstr_size, "intake.directory: cannot open %s/%s: %s",
                    opts->dir, subs[i], strerror(errno));
            goto err;
        }
    }
    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(self->store, 1, why, sizeof why);
    int rc =
        txn ? pg_store_db_open(txn, "dropdir.progress", 0, &self->db, why, sizeof why) : PG_ESTORE;
    rc = rc ? rc : pg_store_commit(&txn, why, sizeof why);
    pg_store_abort(&txn);
    if (rc) {
        pg_errf(PG_ESTORE, errstr, errstr_size, "dropdir: %s", why);
        goto err;
    }
    return self;
err:
    pg_dropdir_destroy(&self);
    return NULL;
}

static void s_names_free(pg_dropdir *self)
{
    for (size_t i = 0; i < self->count; i++)
        free(self->names[i]);
    free(self->names);
    self->names = NULL;
    self->count = self->next = 0;
}

/* Log an error about the result of the file being taken once for that file (it is
 * tried again every S_BACKOFF_MS). */
__attribute__((format(printf, 2, 3))) static void s_result_error(pg_dropdir *self, const char *fmt,
                                                                 ...)
{
    if (!strcmp(self->refused, self->name))
        return;
    snprintf(self->refused, sizeof self->refused, "%s", self->name);
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    pg_log(PG_LOG_ERROR, "dropdir: %s/%s: %s", self->dir, self->result, what);
}

/* The result file of the file being taken, opened for writing, never through a name
 * whoever writes the directory planted (a symbolic link to the audit log, a second name
 * of the store): for a file not yet taken from, whatever holds the result's name is
 * removed (the name is the gateway's) and the result made anew (O_EXCL); for one taken
 * up again, it must be the regular file of the daemon's user with one name that the
 * name still holds. A result shorter than the progress (removed meanwhile) starts over
 * (self->p.result_len 0). A file whose messages were all taken whose result is gone
 * (moved before a crash) gets none: -1 with errno ENOENT. Otherwise -1 with errno set,
 * the reason logged once per file (errno EPERM: logged already). */
static int s_open_result(pg_dropdir *self)
{
    const int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW;
    char why[200] = "";
    int fd = -1;
    struct stat st = {0}, at = {0};
    if ((self->p.result_len || self->p.finished) &&
        (fd = openat(self->dfd, self->result, flags)) < 0) {
        if (errno == ENOENT && self->p.finished)
            return -1;
        if (errno != ENOENT)
            snprintf(why, sizeof why, "%s",
                     errno == ELOOP ? "it is a symbolic link" : strerror(errno));
    }
    if (fd >= 0 && (fstat(fd, &st) || fstatat(self->dfd, self->result, &at, AT_SYMLINK_NOFOLLOW) ||
                    st.st_dev != at.st_dev || st.st_ino != at.st_ino))
        snprintf(why, sizeof why, "its name moved while it was opened");
    else if (fd >= 0 && !S_ISREG(st.st_mode))
        snprintf(why, sizeof why, "not a regular file");
    else if (fd >= 0 && st.st_uid != geteuid())
        snprintf(why, sizeof why, "owned by uid %u, not the gateway's (%u)", (unsigned)st.st_uid,
                 (unsigned)geteuid());
    else if (fd >= 0 && st.st_nlink != 1)
        snprintf(why, sizeof why, "it has %u names", (unsigned)st.st_nlink);
    if (*why) {
        if (fd >= 0)
            close(fd);
        s_result_error(self,
                       "refused (%s): the result of a file taken up again must be the file the "
                       "gateway made; remove it (the acks so far are in the audit log) and the "
                       "file is taken up where it was, with a result that starts over",
                       why);
        errno = EPERM;
        return -1;
    }
    if (fd >= 0 && st.st_size < (off_t)self->p.result_len) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        if (self->p.result_len)
            pg_log(PG_LOG_WARN,
                   "dropdir: %s/%s: shorter than the %" PRIu64 " bytes written for the first "
                   "%" PRIu64 " messages (removed?): it starts over after position %" PRIu64,
                   self->dir, self->result, self->p.result_len, self->p.accepted + self->p.rejected,
                   self->p.pos);
        self->p.result_len = 0;
        if (unlinkat(self->dfd, self->result, 0) && errno != ENOENT &&
            (errno != EISDIR || unlinkat(self->dfd, self->result, AT_REMOVEDIR))) {
            s_result_error(self, "cannot remove what holds the result's name: %s", strerror(errno));
            errno = EPERM;
            return -1;
        }
        fd = openat(self->dfd, self->result, flags | O_CREAT | O_EXCL, 0644);
    }
    if (fd >= 0)
        self->refused[0] = 0;
    return fd;
}

static void s_close_file(pg_dropdir *self)
{
    if (self->data)
        munmap((void *)self->data, self->size);
    self->data = NULL;
    self->size = 0;
    if (self->fd >= 0)
        close(self->fd);
    if (self->rfd >= 0)
        close(self->rfd);
    self->fd = self->rfd = -1;
}

void pg_dropdir_destroy(pg_dropdir **p)
{
    if (!p || !*p)
        return;
    pg_dropdir *self = *p;
    s_close_file(self);
    s_names_free(self);
    if (self->dfd >= 0)
        close(self->dfd);
    if (self->done_fd >= 0)
        close(self->done_fd);
    if (self->failed_fd >= 0)
        close(self->failed_fd);
    pg_buf_free(&self->lines);
    pg_buf_free(&self->json);
    free(self->long_now);
    free(self->long_before);
    free(self->msgs);
    free(self->dir);
    free(self);
    *p = NULL;
}

void pg_dropdir_get_stats(const pg_dropdir *self, pg_dropdir_stats *out)
{
    *out = self->stats;
}

/* ---------------------------------------------------------------- listing */

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List the regular files whose names do not start with '.', in name order. */
/* A name too long to take (left where it is, logged once while it stays: when the
 * listing before did not have it). */
static void s_too_long(pg_dropdir *self, const char *name)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (const char *c = name; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211u;
    if (self->n_long == self->cap_long) {
        size_t cap = self->cap_long ? self->cap_long * 2 : 16;
        uint64_t *grown = realloc(self->long_now, cap * sizeof *grown);
        if (!grown)
            return;
        self->long_now = grown;
        self->cap_long = cap;
    }
    self->long_now[self->n_long++] = h;
    for (size_t i = 0; i < self->n_long_before; i++)
        if (self->long_before[i] == h)
            return;
    self->stats.names_too_long++;
    pg_log(PG_LOG_ERROR,
           "dropdir: %s: a name of %zu bytes is not taken (at most %d: its result's names add "
           "up to 28 bytes); rename it shorter",
           self->dir, strlen(name), S_MAX_NAME);
}

static void s_scan(pg_dropdir *self)
{
    s_names_free(self);
    uint64_t *t = self->long_before; /* this listing's long names become the one before's */
    size_t tc = self->cap_long_before;
    self->long_before = self->long_now;
    self->n_long_before = self->n_long;
    self->cap_long_before = self->cap_long;
    self->long_now = t;
    self->cap_long = tc;
    self->n_long = 0;
    int fd = openat(self->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        pg_log(PG_LOG_ERROR, "dropdir: cannot list %s: %s", self->dir, strerror(errno));
        return;
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        if (strlen(de->d_name) > S_MAX_NAME) { /* its result's names would not fit */
            s_too_long(self, de->d_name);
            continue;
        }
        struct stat st;
        if (fstatat(self->dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
            continue;
        if (self->count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **names = realloc(self->names, ncap * sizeof *names);
            if (!names)
                break;
            self->names = names;
            cap = ncap;
        }
        char *name = strdup(de->d_name);
        if (!name)
            break;
        self->names[self->count++] = name;
    }
    closedir(dir);
    if (self->count)
        qsort(self->names, self->count, sizeof *self->names, s_cmp_names);
}

/* ---------------------------------------------------------------- results and moves */

static int s_sync_dirs(pg_dropdir *self, int target)
{
    return fsync(self->dfd) || fsync(target) ? -1 : 0;
}

/* done/ or failed/ as it is now (recreated when it was removed or moved away since the
 * start: a move into a directory no longer under the name would finish nothing). */
static int s_subdir(pg_dropdir *self, int failed)
{
    const char *sub = failed ? "failed" : "done";
    int *fd = failed ? &self->failed_fd : &self->done_fd;
    struct stat have, now;
    if (*fd >= 0 && !fstat(*fd, &have) && !fstatat(self->dfd, sub, &now, AT_SYMLINK_NOFOLLOW) &&
        have.st_dev == now.st_dev && have.st_ino == now.st_ino)
        return *fd;
    if (*fd >= 0)
        close(*fd);
    if (mkdirat(self->dfd, sub, 0755) && errno != EEXIST)
        return *fd = -1;
    *fd = openat(self->dfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (*fd >= 0)
        pg_log(PG_LOG_WARN, "dropdir: %s/%s was removed or replaced: made again", self->dir, sub);
    return *fd;
}

/* Write the result's last line (from the file's progress on) and move the result
 * and then the file into done/ or failed/. Repeating it after a crash part-way is
 * harmless: the line is written again at the same place, a result already moved stays.
 * A file whose name now holds another file (renamed in over it while it was taken) or
 * none is not moved by that name: its result goes alone, as <name>.<inode>.result, and
 * the file under the name is a new one, taken next. */
static int s_move(pg_dropdir *self, int failed, const char *last_line)
{
    const char *step = "write";
    size_t n = strlen(last_line);
    if (self->rfd >= 0) {
        if (ftruncate(self->rfd, (off_t)self->p.result_len) ||
            pwrite(self->rfd, last_line, n, (off_t)self->p.result_len) != (ssize_t)n ||
            fdatasync(self->rfd))
            goto err;
    }
    step = "open done/ or failed/";
    int target = s_subdir(self, failed);
    if (target < 0)
        goto err;
    struct stat st;
    /* (a file that could not be opened has no inode of its own here: moved by name) */
    int replaced = self->p.ino && (fstatat(self->dfd, self->name, &st, AT_SYMLINK_NOFOLLOW) ||
                                   st.st_ino != (ino_t)self->p.ino);
    /* Another file of this name already there keeps its place: this one gets its
     * inode number added (the same choice after a restart: the inode stays). */
    char dest[NAME_MAX + 64], dest_result[NAME_MAX + 80];
    if (replaced ||
        (!fstatat(target, self->name, &st, AT_SYMLINK_NOFOLLOW) && st.st_ino != self->p.ino))
        snprintf(dest, sizeof dest, "%s.%" PRIu64, self->name, self->p.ino);
    else
        snprintf(dest, sizeof dest, "%s", self->name);
    snprintf(dest_result, sizeof dest_result, "%s.result", dest);
    step = "move the result";
    if (renameat(self->dfd, self->result, target, dest_result) && errno != ENOENT)
        goto err;
    if (replaced)
        pg_log(PG_LOG_WARN,
               "dropdir: %s/%s: replaced under its name while it was taken (write files "
               "elsewhere and rename them in once): the result of what was taken is %s/%s; "
               "the file now under the name is taken as a new one",
               self->dir, self->name, failed ? "failed" : "done", dest_result);
    step = "move the file";
    if (!replaced && renameat(self->dfd, self->name, target, dest))
        goto err;
    step = "sync the directories";
    if (s_sync_dirs(self, target))
        goto err;
    return 0;
err:
    pg_log(PG_LOG_ERROR, "dropdir: %s/%s: cannot %s: %s", self->dir, self->name, step,
           strerror(errno));
    return -1;
}

static void s_forget(pg_dropdir *self)
{
    char why[PG_ERRSTR_SIZE];
    /* The intake may hold the store's write transaction on this thread. */
    if (pg_intake_checkpoint(self->intake, why, sizeof why))
        pg_log(PG_LOG_ERROR, "dropdir: %s", why);
    pg_store_txn *txn = pg_store_begin(self->store, 1, why, sizeof why);
    int rc =
        txn ? pg_store_del(txn, self->db, self->name, strlen(self->name), NULL, 0, why, sizeof why)
            : PG_ESTORE;
    if (rc == PG_ENOTFOUND)
        rc = 0;
    rc = rc ? rc : pg_store_commit(&txn, why, sizeof why);
    pg_store_abort(&txn);
    /* A record left behind names an inode that is gone: a new file of the name is
     * told apart by it. */
    if (rc)
        pg_log(PG_LOG_WARN, "dropdir: progress of %s not removed: %s", self->name, why);
}

/* s as a JSON string (file names and reasons are not trusted to be plain UTF-8). */
static void s_put_str(pg_buf *out, const char *s)
{
    pg_json_string(out, s, strlen(s), PG_JSON_REPLACE);
}

/* The file is not taken (or not any further): failed/ with the reason. */
static int s_fail_file(pg_dropdir *self, const char *reason)
{
    pg_log(PG_LOG_WARN, "dropdir: %s/%s -> failed/: %s", self->dir, self->name, reason);
    pg_buf_reset(&self->json);
    pg_buf_puts(&self->json, "{\"file\":");
    s_put_str(&self->json, self->name);
    pg_buf_puts(&self->json, ",\"status\":\"rejected\",\"reason\":");
    s_put_str(&self->json, reason);
    pg_buf_puts(&self->json, "}\n");
    if (self->rfd < 0)
        self->rfd = s_open_result(self);
    if (self->rfd < 0 || s_move(self, 1, (const char *)self->json.data)) {
        if (self->rfd < 0 && errno != EPERM)
            s_result_error(self, "%s", strerror(errno));
        self->backoff_until = pg_time_mono_ms() + S_BACKOFF_MS;
        s_close_file(self);
        return 0;
    }
    self->stats.files_failed++;
    s_forget(self);
    s_close_file(self);
    return 1;
}

static int s_finish(pg_dropdir *self)
{
    const char *status = self->p.rejected ? "failed" : "done";
    pg_buf_reset(&self->json);
    pg_buf_puts(&self->json, "{\"file\":");
    s_put_str(&self->json, self->name);
    pg_buf_printf(&self->json,
                  ",\"status\":\"%s\",\"accepted\":%" PRIu64 ",\"rejected\":%" PRIu64 "}\n", status,
                  self->p.accepted, self->p.rejected);
    if (!self->json.data || s_move(self, self->p.rejected != 0, (const char *)self->json.data)) {
        self->backoff_until = pg_time_mono_ms() + S_BACKOFF_MS;
        s_close_file(self);
        return 0;
    }
    pg_log(PG_LOG_INFO, "dropdir: %s/%s -> %s/: %" PRIu64 " accepted, %" PRIu64 " rejected",
           self->dir, self->name, status, self->p.accepted, self->p.rejected);
    if (self->p.rejected)
        self->stats.files_failed++;
    else
        self->stats.files_done++;
    s_forget(self);
    s_close_file(self);
    return 1;
}

/* ---------------------------------------------------------------- opening a file */

/* The progress under the name is of a file removed while part taken, whose inode
 * number a new file has: the new file starts afresh, and the old file's result (the
 * acks of what was taken of it) goes to failed/ as <name>.<its inode>.result. */
static void s_progress_of_gone(pg_dropdir *self, const s_progress *old)
{
    char dest[NAME_MAX + 80];
    snprintf(dest, sizeof dest, "%s.%" PRIu64 ".result", self->name, old->ino);
    int target = s_subdir(self, 1);
    if (target < 0 || (renameat(self->dfd, self->result, target, dest) && errno != ENOENT))
        pg_log(PG_LOG_ERROR, "dropdir: %s/%s: cannot move aside: %s", self->dir, self->result,
               strerror(errno));
    pg_log(PG_LOG_WARN,
           "dropdir: %s/%s is a new file (born after the one of that name removed after %" PRIu64
           " of its messages were taken): it is taken from the start; the removed file's "
           "result is failed/%s",
           self->dir, self->name, old->accepted + old->rejected, dest);
}

/* The file being taken was written to (or cut) after it was renamed in: what is left of
 * it is not taken. */
static int s_fail_changed(pg_dropdir *self)
{
    char why[PG_ERRSTR_SIZE];
    snprintf(why, sizeof why,
             "file: changed after %" PRIu64 " of its messages were taken (up to "
             "position %" PRIu64 "); write files elsewhere and rename them in",
             self->p.accepted + self->p.rejected, self->p.pos);
    return s_fail_file(self, why);
}

/* Why data is not a container of the adapter's messages, or NULL when it is one.
 * Only the shape is checked here; each message is checked by the decoder. */
static const char *s_not_container(const pg_dropdir *self, const uint8_t *data, size_t size,
                                   char *why, size_t whysize)
{
    const uint8_t *nul = size ? memchr(data, 0, size) : NULL;
    if (nul) {
        snprintf(why, whysize, "file: binary, not %s (a NUL byte at offset %zu)",
                 self->adapter->messages, (size_t)(nul - data));
        return why;
    }
    size_t i = 0;
    if (size >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf)
        i = 3; /* a UTF-8 byte order mark */
    while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    if (i == size) {
        snprintf(why, whysize, "file: no message in it (empty or blank)");
        return why;
    }
    if (data[i] == self->adapter->opens)
        return NULL;
    const pg_adapter_ops *other = NULL;
    for (size_t k = 0; pg_adapter_at(k) && !other; k++)
        if (pg_adapter_at(k)->opens == (char)data[i])
            other = pg_adapter_at(k);
    if (other)
        snprintf(why, whysize, "file: holds %s, not %s (this gateway's adapter is %s)",
                 other->messages, self->adapter->messages, self->adapter->name);
    else
        snprintf(why, whysize, "file: holds no %s (it opens with byte 0x%02x at offset %zu)",
                 self->adapter->messages, data[i], i);
    return why;
}

/* Open name for taking: 1 when it is open (or was dealt with: gone, failed), 0 when
 * it is to be tried again later. */
static int s_open(pg_dropdir *self, const char *name)
{
    snprintf(self->name, sizeof self->name, "%s", name);
    snprintf(self->result, sizeof self->result, ".%s.result", name);
    /* O_NONBLOCK: a FIFO renamed in since the listing must not block the intake's
     * thread in open (it is refused below: not a regular file) */
    self->fd = openat(self->dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (self->fd < 0) {
        if (errno == ENOENT)
            return 1; /* taken away since the listing */
        char why[PG_ERRSTR_SIZE];
        snprintf(why, sizeof why, "file: cannot open: %s", strerror(errno));
        memset(&self->p, 0, sizeof self->p);
        return s_fail_file(self, why);
    }
    struct stat st;
    if (fstat(self->fd, &st) || !S_ISREG(st.st_mode) ||
        fcntl(self->fd, F_SETFL, fcntl(self->fd, F_GETFL) & ~O_NONBLOCK)) {
        s_close_file(self);
        return 1;
    }
    struct statx sx;
    s_progress id = {.ino = (uint64_t)st.st_ino,
                     .size = (uint64_t)st.st_size,
                     .mtime_ns =
                         (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec};
    if (!statx(self->fd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) && (sx.stx_mask & STATX_BTIME))
        id.btime_ns = (uint64_t)sx.stx_btime.tv_sec * 1000000000u + sx.stx_btime.tv_nsec;
    s_progress old;
    int found = s_progress_get(self, name, &old);
    if (found < 0) {
        s_close_file(self);
        self->backoff_until = pg_time_mono_ms() + S_BACKOFF_MS;
        return 0;
    }
    if (found && old.ino == id.ino && old.btime_ns && id.btime_ns && old.btime_ns != id.btime_ns) {
        s_progress_of_gone(self, &old);
        self->p = id;
    } else if (found && old.ino == id.ino) {
        self->p = old;
        if (old.size != id.size || old.mtime_ns != id.mtime_ns)
            return s_fail_changed(self);
        self->stats.files_resumed += old.offset > 0 ? 1 : 0;
        if (old.offset)
            pg_log(PG_LOG_INFO,
                   "dropdir: %s/%s: resuming after position %" PRIu64 " (byte %" PRIu64 ", %" PRIu64
                   " messages taken before)",
                   self->dir, name, old.pos, old.offset, old.accepted + old.rejected);
    } else {
        self->p = id;
    }
    char why[PG_ERRSTR_SIZE];
    if (self->p.size > self->max_file_size) {
        snprintf(why, sizeof why, "file: %" PRIu64 " bytes is over intake.max_file_size (%zu)",
                 self->p.size, self->max_file_size);
        return s_fail_file(self, why);
    }
    self->size = (size_t)self->p.size;
    if (self->size) {
        void *map = mmap(NULL, self->size, PROT_READ, MAP_PRIVATE, self->fd, 0);
        if (map == MAP_FAILED) {
            snprintf(why, sizeof why, "file: cannot map: %s", strerror(errno));
            self->size = 0;
            return s_fail_file(self, why);
        }
        self->data = map;
        madvise(map, self->size, MADV_SEQUENTIAL);
    }
    if (!self->p.offset && s_not_container(self, self->data, self->size, why, sizeof why))
        return s_fail_file(self, why);
    self->rfd = s_open_result(self);
    if (self->rfd < 0 && errno == ENOENT && self->p.finished)
        return 1; /* its result moved before a crash: only the file's move is left */
    if (self->rfd < 0 || ftruncate(self->rfd, (off_t)self->p.result_len)) {
        if (self->rfd >= 0 || errno != EPERM)
            s_result_error(self, "%s", strerror(errno));
        s_close_file(self);
        self->backoff_until = pg_time_mono_ms() + S_BACKOFF_MS;
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- taking a group */

static int s_collect(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    pg_dropdir *self = arg;
    self->msgs[self->nmsgs++] = (s_msg){msg, len, pos};
    self->bytes += len;
    return self->nmsgs >= self->group_max || self->bytes >= self->group_max_bytes;
}

/* Where the message that ends at byte end is followed by the next: past its line end. */
static size_t s_after(const pg_dropdir *self, size_t end)
{
    if (end < self->size && self->data[end] == '\r' && end + 1 < self->size &&
        self->data[end + 1] == '\n')
        return end + 2;
    if (end < self->size && self->data[end] == '\n')
        return end + 1;
    return end;
}

static int s_take(pg_dropdir *self)
{
    if (self->p.finished)
        return s_finish(self);
    /* Checked before each group as at the open: a file written to or cut while it is
     * taken fails from here on (a cut that lands while a group is read still kills
     * the daemon, SIGBUS on the mapping; at the restart the file fails the same way). */
    struct stat st;
    if (fstat(self->fd, &st) || (uint64_t)st.st_size != self->p.size ||
        (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec !=
            self->p.mtime_ns)
        return s_fail_changed(self);
    self->nmsgs = self->bytes = 0;
    size_t off = (size_t)self->p.offset;
    int to_end = off >= self->size ||
                 !self->adapter->split(self->data + off, self->size - off, s_collect, self);

    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_intake_group_begin(self->intake, why, sizeof why);
    if (!txn) {
        pg_log(PG_LOG_ERROR, "dropdir: store: %s", why);
        self->backoff_until = pg_time_mono_ms() + S_BACKOFF_MS;
        return 0;
    }
    s_progress np = self->p;
    pg_buf_reset(&self->lines);
    size_t taken = 0;
    for (; taken < self->nmsgs; taken++) {
        const s_msg *m = &self->msgs[taken];
        pg_intake_ack ack;
        pg_intake_group_add(self->intake, txn, m->data, m->len, &ack);
        if (ack.status == PG_INTAKE_RETRY) {
            /* Not taken: it and what follows are taken again after a pause. */
            pg_log(PG_LOG_WARN, "dropdir: %s/%s: message at %s %zu: retry later: %s", self->dir,
                   self->name, self->adapter->position, np.pos + m->pos, ack.reason);
            to_end = 0;
            break;
        }
        pg_buf_reset(&self->json);
        if (pg_intake_ack_json(&ack, NULL, &self->json) ||
            pg_buf_printf(&self->lines, "{\"%s\":%" PRIu64 ",%.*s\n", self->adapter->position,
                          self->p.pos + m->pos, (int)self->json.len - 1,
                          (const char *)self->json.data + 1)) {
            pg_intake_group_end(self->intake, &txn, 0, why, sizeof why);
            pg_log(PG_LOG_ERROR, "dropdir: out of memory writing a result");
            self->backoff_until = pg_time_mono_ms() + S_BACKOFF_MS;
            return 0;
        }
        if (ack.status == PG_INTAKE_ACCEPTED)
            np.accepted++;
        else
            np.rejected++;
    }
    if (taken) {
        const s_msg *last = &self->msgs[taken - 1];
        np.offset = s_after(self, (size_t)(last->data - self->data) + last->len);
        np.pos = self->p.pos + last->pos;
    }
    if (to_end)
        np.offset = self->size, np.finished = 1;
    if (!taken && !to_end) {
        pg_intake_group_end(self->intake, &txn, 0, why, sizeof why);
        self->backoff_until = pg_time_mono_ms() + S_BACKOFF_MS;
        return 0;
    }

    /* The acks on disk first, then the progress that counts them, in the transaction
     * of what the messages stored: a crash between the two leaves result lines past
     * the progress's length, which the next run cuts off. */
    np.result_len += self->lines.len;
    const char *step = "write the result";
    if (pwrite(self->rfd, self->lines.data, self->lines.len, (off_t)self->p.result_len) !=
            (ssize_t)self->lines.len ||
        fdatasync(self->rfd)) {
        pg_intake_group_end(self->intake, &txn, 0, why, sizeof why);
        goto err;
    }
    uint8_t val[S_PROGRESS_FIELDS * 8];
    s_progress_encode(&np, val);
    int rc = pg_store_put(txn, self->db, self->name, strlen(self->name), val, sizeof val, why,
                          sizeof why);
    rc = pg_intake_group_end(self->intake, &txn, !rc, why, sizeof why) || rc;
    if (rc) {
        pg_log(PG_LOG_ERROR, "dropdir: %s/%s: progress not kept, taken again: %s", self->dir,
               self->name, why);
        if (ftruncate(self->rfd, (off_t)self->p.result_len))
            pg_log(PG_LOG_ERROR, "dropdir: %s: %s", self->result, strerror(errno));
        self->backoff_until = pg_time_mono_ms() + S_BACKOFF_MS;
        return 0;
    }
    self->p = np;
    self->stats.messages += taken;
    return np.finished ? s_finish(self) : 1;
err:
    pg_log(PG_LOG_ERROR, "dropdir: %s/%s: cannot %s: %s", self->dir, self->result, step,
           strerror(errno));
    self->backoff_until = pg_time_mono_ms() + S_BACKOFF_MS;
    return 0;
}

int pg_dropdir_step(pg_dropdir *self)
{
    if (self->backoff_until && pg_time_mono_ms() < self->backoff_until)
        return 0;
    self->backoff_until = 0;
    if (self->fd < 0) {
        if (self->next >= self->count)
            s_scan(self);
        if (self->next >= self->count)
            return 0;
        /* A file that cannot be opened for now is tried again before any later one. */
        if (!s_open(self, self->names[self->next]))
            return 0;
        self->next++;
        if (self->fd < 0)
            return 1;
    }
    return s_take(self);
}
