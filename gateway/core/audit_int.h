/* The audit log's inside, shared by audit.c (keys, writing, checkpoints) and
 * audit_read.c (verify, query); no other file includes it. */
#ifndef POLEGATE_GATEWAY_AUDIT_INT_H
#define POLEGATE_GATEWAY_AUDIT_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "polegate/buf.h"

#define PG_AUDIT_HASH_LEN 64
#define PG_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
/* One parsed line: the event object, its seq and hash, and the length of the
 * canonical bytes the hash covers (the line up to the hash key, plus "}"). */
typedef struct pg_audit_line {
    json_t *obj;
    uint64_t seq;
    char hash[PG_AUDIT_HASH_LEN + 1];
} pg_audit_line;

/* What hashes the chain: HMAC-SHA-256 with key (copied), or SHA-256 when key is NULL,
 * through OpenSSL's libcrypto, which uses the CPU's SHA extensions where it has them
 * (about 4x libsodium's portable SHA-256, the same values). One per thread at a time.
 * NULL with a reason. */
typedef struct pg_audit__hasher pg_audit__hasher;
pg_audit__hasher *pg_audit__hasher_new(const pg_audit_key *key, char *errstr, size_t errstr_size);
void pg_audit__hasher_destroy(pg_audit__hasher **p);
/* The hash of prev (PG_AUDIT_HASH_LEN hex digits) followed by canon, in lower-case hex.
 * 0, or -1 when libcrypto fails (out is then empty). */
int pg_audit__hash(pg_audit__hasher *h, const char *prev, const char *canon, size_t len,
                   char out[PG_AUDIT_HASH_LEN + 1]);
void pg_audit__format_time(int64_t ms, char out[32]);
int pg_audit__parse_line(const char *line, size_t len, pg_buf *canon, pg_audit_line *out,
                         char *errstr, size_t errstr_size);
int pg_audit__rotated(const char *path, char ***out, size_t *n, char *errstr, size_t errstr_size);
void pg_audit__free_list(char **files, size_t n);
/* The hash of event seq of the log at path (its rotated files, then itself) into out,
 * reading from the file that holds it on. 0; 1 when seq is before the first event
 * kept here; PG_ECORRUPT when the files here skip it or hold it damaged; PG_EIO. */
int pg_audit__event_hash(const char *path, uint64_t seq, char out[PG_AUDIT_HASH_LEN + 1],
                         char *errstr, size_t errstr_size);

#endif
