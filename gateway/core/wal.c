/* pg_wal: segment files of CRC-framed records; open scans and cuts a crash's tail. */
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "polegate/error.h"
#include "store.h"

#define S_MAGIC "PGWAL01\n"
#define S_SEG_HDR 16 /* the magic and the first LSN */
#define S_REC_HDR 24 /* crc, len, lsn, type, zero */

typedef struct s_seg {
    uint64_t first; /* the LSN of its first record (its name) */
} s_seg;

struct pg_wal {
    char *dir;
    size_t seg_size;
    s_seg *segs; /* oldest first; the last is the one written */
    size_t nsegs, segs_cap;
    int lock_fd;       /* <dir>/LOCK, held (flock) while open: one writer per log */
    int fd;            /* the last segment, -1 when none */
    uint64_t end;      /* its durable length */
    uint64_t last_lsn; /* the last durable record */
    uint64_t next_lsn; /* the next to give out */
    uint8_t *buf;      /* frames appended and not yet synced */
    size_t len, cap;
    int broken; /* a failed sync could not be cut back: every later sync fails */
    char broken_why[PG_ERRSTR_SIZE];
    int inject_err, inject_count;
};

/* ---------------------------------------------------------------- encoding */

static void s_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static uint32_t s_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t s_crc(const uint8_t *frame, size_t len)
{
    return libdeflate_crc32(0, frame + 4, S_REC_HDR - 4 + len);
}

static void s_seg_path(const char *dir, uint64_t first, char *out, size_t size)
{
    snprintf(out, size, "%s/%016" PRIx64 ".seg", dir, first);
}

static int s_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) ? errno : 0;
    close(fd);
    return rc;
}

/* An errno of a write or sync as the log's error: a full disk has one reason. */
static int s_io_err(const pg_wal *self, int err, const char *what, char *errstr, size_t errstr_size)
{
    int rc = pg_store_disk_err(err, "write-ahead log", self->dir, what, errstr, errstr_size);
    return rc ? rc
              : pg_errf(PG_EIO, errstr, errstr_size, "write-ahead log %s: %s: %s", self->dir, what,
                        strerror(err));
}

/* ---------------------------------------------------------------- scanning */

/* One segment mapped for reading. */
typedef struct s_map {
    char path[1024];
    const uint8_t *data;
    size_t size;
} s_map;

static int s_map_open(s_map *m, const char *dir, uint64_t first, char *errstr, size_t errstr_size)
{
    memset(m, 0, sizeof *m);
    s_seg_path(dir, first, m->path, sizeof m->path);
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return pg_errf(PG_EIO, errstr, errstr_size, "write-ahead log %s: %s", m->path, strerror(e));
    }
    m->size = (size_t)st.st_size;
    if (m->size) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return pg_errf(PG_EIO, errstr, errstr_size, "write-ahead log %s: mmap: %s", m->path,
                           strerror(e));
        }
        m->data = p;
    }
    close(fd);
    return 0;
}

static void s_map_close(s_map *m)
{
    if (m->data)
        munmap((void *)m->data, m->size);
    m->data = NULL;
}

/* Is there a whole record with a good checksum at off (any LSN)? Its LSN in *lsn and
 * its index in the sync that wrote it in *index. */
static int s_valid_at(const s_map *m, size_t off, size_t limit, uint64_t *lsn, uint32_t *index)
{
    if (limit < off || limit - off < S_REC_HDR)
        return 0;
    const uint8_t *p = m->data + off;
    uint32_t len = s_get32(p + 4);
    if (len > PG_WAL_MAX_RECORD || len > limit - off - S_REC_HDR)
        return 0;
    if (s_get32(p) != s_crc(p, len))
        return 0;
    *lsn = pg_store_be64_get(p + 8);
    *index = s_get32(p + 20);
    return 1;
}

/* What a scan of one segment found. */
typedef struct s_scan {
    uint64_t expect;  /* the next LSN, updated as records are read */
    size_t off;       /* the end of the last good record */
    uint64_t records; /* good records */
    int torn;         /* a crash's tail from off on */
    char torn_why[2048];
} s_scan;

typedef int (*s_record_fn)(void *arg, uint64_t lsn, uint32_t type, const uint8_t *data, size_t len);

/* Scan the segment m (whose name says it begins at first) up to limit bytes. In the
 * last segment a bad record after which no good one follows is a crash's tail (sc->torn,
 * sc->off where it begins); anything else bad is damage: PG_ECORRUPT with the path,
 * offset and reason. Records with an LSN above after go to fn. */
static int s_scan_seg(const s_map *m, uint64_t first, size_t limit, int last, s_scan *sc,
                      uint64_t after, s_record_fn fn, void *arg, char *errstr, size_t errstr_size)
{
    char why[256];
    size_t off = 0;
    sc->off = 0;
    sc->torn = 0;
    if (limit < S_SEG_HDR || memcmp(m->data, S_MAGIC, 8)) {
        snprintf(why, sizeof why, "%s",
                 limit < S_SEG_HDR ? "the segment header is cut short"
                                   : "the segment header is not a write-ahead log's");
        goto bad;
    }
    if (pg_store_be64_get(m->data + 8) != first)
        return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                       "write-ahead log damaged: %s, offset 0: the header says first LSN %" PRIu64
                       ", the name %" PRIu64,
                       m->path, pg_store_be64_get(m->data + 8), first);
    if (first != sc->expect)
        return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                       "write-ahead log damaged: %s begins at LSN %" PRIu64 " where LSN %" PRIu64
                       " was expected (a gap or an overlap)",
                       m->path, first, sc->expect);
    off = sc->off = S_SEG_HDR;
    while (off < limit) {
        const uint8_t *p = m->data + off;
        if (limit - off < S_REC_HDR) {
            snprintf(why, sizeof why, "a record header cut short (%zu of %d bytes)", limit - off,
                     S_REC_HDR);
            goto bad;
        }
        uint32_t len = s_get32(p + 4);
        if (len > PG_WAL_MAX_RECORD || len > limit - off - S_REC_HDR) {
            snprintf(why, sizeof why, "a record of %" PRIu32 " bytes runs past the end (%zu left)",
                     len, limit - off - S_REC_HDR);
            goto bad;
        }
        uint32_t crc = s_crc(p, len);
        if (s_get32(p) != crc) {
            snprintf(why, sizeof why,
                     "checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32 ")", s_get32(p),
                     crc);
            goto bad;
        }
        uint64_t lsn = pg_store_be64_get(p + 8);
        if (lsn != sc->expect)
            return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                           "write-ahead log damaged: %s, offset %zu: LSN %" PRIu64
                           " where LSN %" PRIu64 " was expected",
                           m->path, off, lsn, sc->expect);
        if (fn && lsn > after) {
            int rc = fn(arg, lsn, s_get32(p + 16), p + S_REC_HDR, len);
            if (rc)
                return rc;
        }
        sc->expect++;
        sc->records++;
        off += S_REC_HDR + len;
        sc->off = off;
    }
    return 0;
bad:; /* (a declaration follows) */
    /* A crash tears at most what was being written: the end of the last segment. A
     * good record after the bad one means the bad one is not a tail. */
    uint64_t same_lsn = 0, same_first = 0;
    size_t same_at = 0;
    for (size_t q = off + 1; last && q + S_REC_HDR <= limit; q++) {
        uint64_t lsn;
        uint32_t index;
        if (!s_valid_at(m, q, limit, &lsn, &index) || lsn < sc->expect)
            continue;
        /* A record of a later sync: the bad one's sync had returned (each sync is
         * written after the one before completed), so it may have been acknowledged. */
        if (lsn - index > sc->expect)
            return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                           "write-ahead log damaged: %s, offset %zu: %s, followed by a valid "
                           "record (LSN %" PRIu64 ") of a later sync at offset %zu",
                           m->path, off, why, lsn, q);
        if (!same_lsn)
            same_lsn = lsn, same_first = lsn - index, same_at = q;
        q += S_REC_HDR + s_get32(m->data + q + 4) - 1; /* on to the next record */
    }
    /* Only records of the same sync follow: a write torn by a crash whose later pages
     * reached the disk before its earlier ones, or damage to the last sync. Not told
     * apart: refused, with what the operator can do. */
    if (same_lsn)
        return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                       "write-ahead log damaged: %s, offset %zu: %s, followed by a valid "
                       "record (LSN %" PRIu64 ") of the same sync at offset %zu: the last sync "
                       "(from LSN %" PRIu64 ") is torn or damaged. If the machine lost power, "
                       "it was most likely never acknowledged (its senders send it again): "
                       "cut it off with `truncate -s %zu %s` and start again",
                       m->path, off, why, same_lsn, same_at, same_first, off, m->path);
    if (!last)
        return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                       "write-ahead log damaged: %s, offset %zu: %s, in a segment that is not the "
                       "last",
                       m->path, off, why);
    sc->torn = 1;
    snprintf(sc->torn_why, sizeof sc->torn_why, "%s, offset %zu: %s (%zu bytes)", m->path, off, why,
             limit - off);
    return 0;
}

static int s_cmp_seg(const void *a, const void *b)
{
    uint64_t x = ((const s_seg *)a)->first, y = ((const s_seg *)b)->first;
    return x < y ? -1 : x > y;
}

/* The segments in dir, oldest first. PG_ENOTFOUND when dir does not exist. */
static int s_list(const char *dir, s_seg **segs, size_t *n, size_t *cap, char *errstr,
                  size_t errstr_size)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return pg_errf(errno == ENOENT ? PG_ENOTFOUND : PG_EIO, errstr, errstr_size,
                       "write-ahead log %s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *s = de->d_name;
        if (strlen(s) != 20 || strcmp(s + 16, ".seg") || strspn(s, "0123456789abcdef") != 16)
            continue;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 8;
            s_seg *g = realloc(*segs, c * sizeof *g);
            if (!g) {
                closedir(d);
                return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
            }
            *segs = g, *cap = c;
        }
        (*segs)[(*n)++].first = strtoull(s, NULL, 16);
    }
    closedir(d);
    if (*n)
        qsort(*segs, *n, sizeof **segs, s_cmp_seg);
    return 0;
}

/* ---------------------------------------------------------------- open */

static int s_mkdir(const char *dir)
{
    if (mkdir(dir, 0700) && errno != EEXIST)
        return errno;
    return 0;
}

pg_wal *pg_wal_open(const char *dir, const pg_wal_opts *opts, int *err, char *errstr,
                    size_t errstr_size)
{
    int dummy;
    err = err ? err : &dummy;
    *err = PG_EIO;
    pg_wal *self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        free(self);
        *err = pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    self->fd = -1;
    self->lock_fd = -1;
    self->seg_size = opts && opts->segment_size ? opts->segment_size : PG_WAL_DEFAULT_SEGMENT;
    int rc = s_mkdir(dir);
    if (rc) {
        pg_errf(PG_EIO, errstr, errstr_size, "write-ahead log %s: %s", dir, strerror(rc));
        goto err;
    }
    /* Two writers would interleave LSNs and each cut the other's "torn" tail: a second
     * polegated on the same store directory stops here, whatever its other paths. */
    char lock[1024];
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    self->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (self->lock_fd < 0) {
        pg_errf(PG_EIO, errstr, errstr_size, "write-ahead log %s: %s", lock, strerror(errno));
        goto err;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB)) {
        *err = errno == EWOULDBLOCK ? PG_ESTORE : PG_EIO;
        pg_errf(*err, errstr, errstr_size,
                errno == EWOULDBLOCK
                    ? "write-ahead log %s: another process is writing it (a second polegated "
                      "on the same store directory?)"
                    : "write-ahead log %s: lock: %s",
                dir, strerror(errno));
        goto err;
    }
    if ((rc = s_list(dir, &self->segs, &self->nsegs, &self->segs_cap, errstr, errstr_size))) {
        *err = rc;
        goto err;
    }
    s_scan sc = {.expect = self->nsegs ? self->segs[0].first : 1};
    for (size_t i = 0; i < self->nsegs; i++) {
        int last = i + 1 == self->nsegs;
        s_map m;
        if ((rc = s_map_open(&m, dir, self->segs[i].first, errstr, errstr_size))) {
            *err = rc;
            goto err;
        }
        rc = s_scan_seg(&m, self->segs[i].first, m.size, last, &sc, 0, NULL, NULL, errstr,
                        errstr_size);
        s_map_close(&m);
        if (rc) {
            *err = rc;
            goto err;
        }
    }
    self->last_lsn = sc.expect - 1;
    self->next_lsn = sc.expect;
    if (!self->nsegs)
        return self;
    char path[1024];
    uint64_t first = self->segs[self->nsegs - 1].first;
    s_seg_path(dir, first, path, sizeof path);
    if (sc.torn) {
        /* Never acknowledged: the sync that was writing it did not return. */
        pg_log(PG_LOG_WARN, "write-ahead log: a crash's tail cut off: %s", sc.torn_why);
        if (sc.off <= S_SEG_HDR) { /* nothing of the segment was whole: it goes */
            int e = unlink(path) ? errno : s_sync_dir(dir);
            if (e) {
                pg_errf(PG_EIO, errstr, errstr_size, "write-ahead log %s: remove: %s", path,
                        strerror(e));
                goto err;
            }
            self->nsegs--;
            if (!self->nsegs) {
                /* The first segment's header was torn: its LSN stays the next. */
                self->last_lsn = first - 1;
                self->next_lsn = first;
                return self;
            }
            first = self->segs[self->nsegs - 1].first;
            s_seg_path(dir, first, path, sizeof path);
            sc.torn = 0;
        }
    }
    self->fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (self->fd < 0 || fstat(self->fd, &st)) {
        pg_errf(PG_EIO, errstr, errstr_size, "write-ahead log %s: %s", path, strerror(errno));
        goto err;
    }
    self->end = sc.torn ? sc.off : (uint64_t)st.st_size;
    if (sc.torn && (ftruncate(self->fd, (off_t)self->end) || fdatasync(self->fd))) {
        pg_errf(PG_EIO, errstr, errstr_size, "write-ahead log %s: cutting the tail: %s", path,
                strerror(errno));
        goto err;
    }
    return self;
err:
    pg_wal_destroy(&self);
    return NULL;
}

void pg_wal_destroy(pg_wal **p)
{
    if (!p || !*p)
        return;
    pg_wal *self = *p;
    if (self->fd >= 0)
        close(self->fd);
    if (self->lock_fd >= 0)
        close(self->lock_fd); /* and with it the lock */
    free(self->segs);
    free(self->buf);
    free(self->dir);
    free(self);
    *p = NULL;
}

const char *pg_wal_dir(const pg_wal *self)
{
    return self->dir;
}

uint64_t pg_wal_last_lsn(const pg_wal *self)
{
    return self->last_lsn;
}

int pg_wal_empty(const pg_wal *self)
{
    return self->nsegs == 0;
}

int pg_wal_start_after(pg_wal *self, uint64_t lsn, char *errstr, size_t errstr_size)
{
    if (self->nsegs || self->len)
        return pg_errf(PG_EUSAGE, errstr, errstr_size,
                       "write-ahead log %s: holds records; it cannot start anew", self->dir);
    self->last_lsn = lsn;
    self->next_lsn = lsn + 1;
    return 0;
}

/* ---------------------------------------------------------------- appending */

int pg_wal_append(pg_wal *self, uint32_t type, const void *data, size_t len, uint64_t *lsn,
                  char *errstr, size_t errstr_size)
{
    if (len > PG_WAL_MAX_RECORD)
        return pg_errf(PG_ETOOBIG, errstr, errstr_size,
                       "write-ahead log: a record of %zu bytes (at most %zu)", len,
                       PG_WAL_MAX_RECORD);
    size_t need = self->len + S_REC_HDR + len;
    if (need > self->cap) {
        size_t c = self->cap ? self->cap : 65536;
        while (c < need)
            c *= 2;
        uint8_t *b = realloc(self->buf, c);
        if (!b)
            return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        self->buf = b, self->cap = c;
    }
    uint8_t *p = self->buf + self->len;
    s_put32(p + 4, (uint32_t)len);
    pg_store_be64_put(p + 8, self->next_lsn);
    s_put32(p + 16, type);
    s_put32(p + 20, (uint32_t)(self->next_lsn - self->last_lsn - 1)); /* index in the sync */
    if (len)
        memcpy(p + S_REC_HDR, data, len);
    s_put32(p, s_crc(p, len));
    self->len = need;
    if (lsn)
        *lsn = self->next_lsn;
    self->next_lsn++;
    return 0;
}

void pg_wal_rollback(pg_wal *self)
{
    self->len = 0;
    self->next_lsn = self->last_lsn + 1;
}

/* Write all of data at off; 0 or an errno. */
static int s_pwrite(pg_wal *self, int fd, const uint8_t *data, size_t len, uint64_t off)
{
    if (self->inject_count > 0) {
        self->inject_count--;
        if (pwrite(fd, data, len / 2, (off_t)off) < 0)
            return errno;
        return self->inject_err;
    }
    while (len) {
        ssize_t n = pwrite(fd, data, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        data += n, len -= (size_t)n, off += (uint64_t)n;
    }
    return 0;
}

/* Write the buffer into a new segment named by its first LSN. 0 or an errno (the
 * segment removed again). */
static int s_sync_new(pg_wal *self, const char **what)
{
    uint64_t first = self->last_lsn + 1;
    char path[1024];
    s_seg_path(self->dir, first, path, sizeof path);
    if (self->nsegs == self->segs_cap) {
        size_t c = self->segs_cap ? self->segs_cap * 2 : 8;
        s_seg *g = realloc(self->segs, c * sizeof *g);
        if (!g)
            return ENOMEM;
        self->segs = g, self->segs_cap = c;
    }
    *what = "create segment";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    uint8_t hdr[S_SEG_HDR];
    memcpy(hdr, S_MAGIC, 8);
    pg_store_be64_put(hdr + 8, first);
    *what = "write";
    int rc = s_pwrite(self, fd, hdr, sizeof hdr, 0);
    if (!rc)
        rc = s_pwrite(self, fd, self->buf, self->len, S_SEG_HDR);
    if (!rc && fdatasync(fd))
        rc = errno, *what = "fdatasync";
    /* The new name must be durable too, or a crash could lose the segment. */
    if (!rc && (rc = s_sync_dir(self->dir)))
        *what = "fsync of the directory";
    if (rc) {
        close(fd);
        unlink(path);
        s_sync_dir(self->dir);
        return rc;
    }
    if (self->fd >= 0)
        close(self->fd);
    self->fd = fd;
    self->end = S_SEG_HDR + self->len;
    self->segs[self->nsegs++].first = first;
    return 0;
}

int pg_wal_sync(pg_wal *self, char *errstr, size_t errstr_size)
{
    if (!self->len)
        return 0;
    if (self->broken) {
        pg_wal_rollback(self);
        return pg_errf(PG_EIO, errstr, errstr_size, "%s", self->broken_why);
    }
    const char *what = "write";
    int rc;
    if (self->fd < 0 || (self->end + self->len > self->seg_size && self->end > S_SEG_HDR)) {
        rc = s_sync_new(self, &what);
    } else {
        rc = s_pwrite(self, self->fd, self->buf, self->len, self->end);
        if (!rc && fdatasync(self->fd))
            rc = errno, what = "fdatasync";
        /* Cut back what was written of it: the next sync writes from end again. */
        if (rc && (ftruncate(self->fd, (off_t)self->end) || fdatasync(self->fd))) {
            self->broken = 1;
            snprintf(self->broken_why, sizeof self->broken_why,
                     "write-ahead log %s: a failed write could not be cut back (%s); restart "
                     "the daemon",
                     self->dir, strerror(errno));
        }
        if (!rc)
            self->end += self->len;
    }
    if (rc) {
        pg_wal_rollback(self);
        return s_io_err(self, rc, what, errstr, errstr_size);
    }
    self->last_lsn = self->next_lsn - 1;
    self->len = 0;
    return 0;
}

/* ---------------------------------------------------------------- reading, releasing */

int pg_wal_replay(pg_wal *self, uint64_t after, s_record_fn fn, void *arg, char *errstr,
                  size_t errstr_size)
{
    /* The records after `after` are only all here when the log reaches back to
     * after + 1: a first segment removed by hand, or a store restored from a backup
     * older than the log, leaves acknowledged records nowhere. */
    if (self->nsegs && self->segs[0].first > after + 1)
        return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                       "write-ahead log %s begins at LSN %" PRIu64
                       " but the records after LSN %" PRIu64 " are to be applied: LSN %" PRIu64
                       "-%" PRIu64
                       " are missing (a segment removed, or a store older than the log, "
                       "restored from a backup?)",
                       self->dir, self->segs[0].first, after, after + 1, self->segs[0].first - 1);
    for (size_t i = 0; i < self->nsegs; i++) {
        if (i + 1 < self->nsegs && self->segs[i + 1].first - 1 <= after)
            continue;
        s_map m;
        int rc = s_map_open(&m, self->dir, self->segs[i].first, errstr, errstr_size);
        if (rc)
            return rc;
        int last = i + 1 == self->nsegs;
        size_t limit = last && self->end < m.size ? (size_t)self->end : m.size;
        s_scan sc = {.expect = self->segs[i].first};
        rc =
            s_scan_seg(&m, self->segs[i].first, limit, 0, &sc, after, fn, arg, errstr, errstr_size);
        s_map_close(&m);
        if (rc)
            return rc;
    }
    return 0;
}

int pg_wal_release(pg_wal *self, uint64_t lsn, char *errstr, size_t errstr_size)
{
    size_t gone = 0;
    while (gone + 1 < self->nsegs && self->segs[gone + 1].first - 1 <= lsn) {
        char path[1024];
        s_seg_path(self->dir, self->segs[gone].first, path, sizeof path);
        if (unlink(path) && errno != ENOENT)
            break;
        gone++;
    }
    if (!gone)
        return 0;
    memmove(self->segs, self->segs + gone, (self->nsegs - gone) * sizeof *self->segs);
    self->nsegs -= gone;
    int rc = s_sync_dir(self->dir);
    return rc ? pg_errf(PG_EIO, errstr, errstr_size, "write-ahead log %s: release: %s", self->dir,
                        strerror(rc))
              : 0;
}

int pg_wal_check(const char *dir, pg_wal_check_result *res, char *errstr, size_t errstr_size)
{
    memset(res, 0, sizeof *res);
    s_seg *segs = NULL;
    size_t n = 0, cap = 0;
    int rc = s_list(dir, &segs, &n, &cap, errstr, errstr_size);
    s_scan sc = {.expect = n ? segs[0].first : 1};
    for (size_t i = 0; !rc && i < n; i++) {
        s_map m;
        if ((rc = s_map_open(&m, dir, segs[i].first, errstr, errstr_size)))
            break;
        rc = s_scan_seg(&m, segs[i].first, m.size, i + 1 == n, &sc, 0, NULL, NULL, errstr,
                        errstr_size);
        res->bytes += m.size;
        s_map_close(&m);
        res->segments++;
    }
    if (!rc) {
        res->records = sc.records;
        res->first_lsn = n ? segs[0].first : 0;
        res->last_lsn = sc.expect - 1;
        res->torn_tail = sc.torn;
        if (sc.torn)
            snprintf(errstr, errstr_size, "a crash's tail, cut off at the next start: %s",
                     sc.torn_why);
    }
    free(segs);
    return rc;
}

void pg_wal_test_inject(pg_wal *self, int err, int count)
{
    self->inject_err = err;
    self->inject_count = count;
}
