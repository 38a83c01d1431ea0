/* pg_keyfile: a small key file read whole, a secret one refused when group or others
 * may read or write it (CURVE keys, the audit log's HMAC and signing keys). */
#ifndef PG_KEYFILE_H
#define PG_KEYFILE_H

#include <stddef.h>

/* Read path (at most size - 1 bytes) into text, NUL-terminated. secret: refuse a
 * file whose mode lets group or others read or write it. 0, PG_EIO or PG_EINVALID
 * with the reason. The caller wipes text once it has taken the key. */
int pg_keyfile_read(const char *path, int secret, char *text, size_t size, char *errstr,
                    size_t errstr_size);

#endif
