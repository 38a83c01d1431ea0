/* pg_sentmark: the highest spool sequence handed to Kafka, durable in the store's
 * directory (sentmark.h says why). */
#include "sentmark.h"

#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "polegate/error.h"
#include "store.h"

#define S_MAGIC "PGSENT01"
#define S_SIZE 20

struct pg_sentmark {
    int fd;
    int sized; /* the file is S_SIZE bytes long */
    char *path;
    int (*sync_fn)(int fd);
};

static uint32_t s_crc(const uint8_t *p)
{
    return libdeflate_crc32(0, p, S_SIZE - 4);
}

pg_sentmark *pg_sentmark_open(const char *dir, uint64_t *seq, pg_sentmark_state *state,
                              char *errstr, size_t errstr_size)
{
    *seq = 0;
    *state = PG_SENTMARK_NEW;
    pg_sentmark *self = calloc(1, sizeof *self);
    size_t n = strlen(dir) + sizeof PG_SENTMARK_FILE + 1;
    if (!self || !(self->path = malloc(n))) {
        free(self);
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    snprintf(self->path, n, "%s/%s", dir, PG_SENTMARK_FILE);
    self->fd = open(self->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat st;
    /* Only the daemon's own file with one name: anything else in its place (a link
     * planted in the store's directory) would have its content cut and overwritten. */
    if (self->fd < 0 || fstat(self->fd, &st) || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        st.st_uid != geteuid()) {
        pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", self->path,
                self->fd < 0 && errno == ELOOP ? "a symbolic link, not the publisher's mark"
                : self->fd < 0                 ? strerror(errno)
                : !S_ISREG(st.st_mode)         ? "not a regular file"
                : st.st_nlink != 1
                    ? "has more than one name (a hard link), not the publisher's mark"
                    : "owned by another user, not the publisher's mark");
        pg_sentmark_close(&self);
        return NULL;
    }
    /* A file this open made must keep its name after a power cut. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd)) {
        pg_errf(PG_EIO, errstr, errstr_size, "%s: fsync: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        pg_sentmark_close(&self);
        return NULL;
    }
    close(dfd);
    uint8_t b[S_SIZE + 1];
    ssize_t got = pread(self->fd, b, sizeof b, 0);
    if (got < 0) {
        pg_errf(PG_EIO, errstr, errstr_size, "%s: read: %s", self->path, strerror(errno));
        pg_sentmark_close(&self);
        return NULL;
    }
    if (got == 0)
        return self;
    uint32_t crc = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    if (got != S_SIZE || memcmp(b, S_MAGIC, 8) || crc != s_crc(b)) {
        *state = PG_SENTMARK_DAMAGED;
        return self;
    }
    *seq = pg_store_be64_get(b + 8);
    *state = PG_SENTMARK_OK;
    self->sized = 1;
    return self;
}

int pg_sentmark_set(pg_sentmark *self, uint64_t seq, char *errstr, size_t errstr_size)
{
    uint8_t b[S_SIZE];
    memcpy(b, S_MAGIC, 8);
    pg_store_be64_put(b + 8, seq);
    uint32_t crc = s_crc(b);
    b[16] = (uint8_t)(crc >> 24);
    b[17] = (uint8_t)(crc >> 16);
    b[18] = (uint8_t)(crc >> 8);
    b[19] = (uint8_t)crc;
    ssize_t put = pwrite(self->fd, b, sizeof b, 0);
    int err = put < 0 ? errno : put != S_SIZE ? EIO : 0;
    if (!err && !self->sized) /* a damaged mark may be longer */
        err = ftruncate(self->fd, S_SIZE) ? errno : 0;
    self->sized = !err;
    if (!err && (self->sync_fn ? self->sync_fn(self->fd) : fdatasync(self->fd)))
        err = errno ? errno : EIO;
    if (!err)
        return 0;
    return pg_errf(err == ENOSPC || err == EDQUOT ? PG_EDISKFULL : PG_EIO, errstr, errstr_size,
                   "%s: write: %s", self->path, strerror(err));
}

const char *pg_sentmark_path(const pg_sentmark *self)
{
    return self->path;
}

void pg_sentmark_close(pg_sentmark **p)
{
    if (!p || !*p)
        return;
    if ((*p)->fd >= 0)
        close((*p)->fd);
    free((*p)->path);
    free(*p);
    *p = NULL;
}

void pg_sentmark_test_sync(pg_sentmark *self, int (*fn)(int fd))
{
    self->sync_fn = fn;
}
