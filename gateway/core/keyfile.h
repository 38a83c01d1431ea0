/* pg_keyfile: a small key file read whole, a secret one refused when group or others
 * may read or write it (CURVE keys, the audit log's HMAC and signing keys); and the
 * check of any file or directory the daemon trusts that others must not change. */
#ifndef PG_KEYFILE_H
#define PG_KEYFILE_H

#include <stddef.h>
#include <sys/stat.h>

/* Read path (at most size - 1 bytes) into text, NUL-terminated. secret: refuse a
 * file whose mode lets group or others read or write it. 0, PG_EIO or PG_EINVALID
 * with the reason. The caller wipes text once it has taken the key. */
int pg_keyfile_read(const char *path, int secret, char *text, size_t size, char *errstr,
                    size_t errstr_size);

/* A file or directory the daemon trusts (the configuration, the intake allow-list, the
 * store), st its stat: refused when group or others may write it, or when it is owned
 * by a user other than this process's or root (either could change what the gateway
 * trusts). 0, or PG_EINVALID with the reason ("PATH: ..."). */
int pg_keyfile_check_writers(const char *path, const struct stat *st, char *errstr,
                             size_t errstr_size);

#endif
