/* pg_keyfile: a small key file read whole, with the secret-file mode check, and the
 * check that nobody but this user or root may change a file the daemon trusts. */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "polegate/error.h"

int pg_keyfile_read(const char *path, int secret, char *text, size_t size, char *errstr,
                    size_t errstr_size)
{
    int fd = open(path ? path : "", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pg_errf(PG_EIO, errstr, errstr_size, "key file %s: %s", path ? path : "(none)",
                       strerror(errno));
    struct stat st;
    ssize_t got = fstat(fd, &st) ? -1 : read(fd, text, size - 1);
    int err = errno;
    close(fd);
    if (got < 0)
        return pg_errf(PG_EIO, errstr, errstr_size, "key file %s: %s", path, strerror(err));
    text[got] = '\0';
    if (secret && (st.st_mode & 077))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "key file %s: a secret key readable or writable by group or others "
                       "(mode %03o): chmod 600 it",
                       path, (unsigned)(st.st_mode & 0777));
    return 0;
}

int pg_keyfile_check_writers(const char *path, const struct stat *st, char *errstr,
                             size_t errstr_size)
{
    const char *kind = S_ISDIR(st->st_mode) ? "a directory" : "a file";
    if (st->st_mode & 022)
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "%s: %s writable by group or others (mode %03o): whoever can write it "
                       "is trusted as the gateway; chmod go-w it",
                       path, kind, (unsigned)(st->st_mode & 0777));
    if (st->st_uid != geteuid() && st->st_uid != 0)
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "%s: %s owned by uid %u, neither this user (uid %u) nor root: its owner "
                       "is trusted as the gateway; chown it",
                       path, kind, (unsigned)st->st_uid, (unsigned)geteuid());
    return 0;
}
