/* pg_keyfile: a small key file read whole, with the secret-file mode check. */
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
