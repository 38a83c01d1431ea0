/* pg_sentmark: the highest spool sequence ever handed to Kafka, kept on disk so that
 * what a restarted daemon publishes again is counted as sent again. */
#ifndef POLEGATE_GATEWAY_SENTMARK_H
#define POLEGATE_GATEWAY_SENTMARK_H

#include <stddef.h>
#include <stdint.h>

/*
 * The publisher removes a window from the spool only after its Kafka transaction
 * committed, and groups removals; a crash in between leaves committed batches in the
 * spool, and the next start publishes them again. Within one process the publisher
 * knows what it produced before; across a restart it knows it from this mark: before
 * a window's records are handed to librdkafka, the mark is raised to the window's last
 * sequence and made durable (fdatasync). At the next start every record of a batch at
 * or below the mark is counted as sent again (pg_publisher_stats.resent).
 *
 * The file is PG_SENTMARK_FILE in the store's directory (it belongs to the spool's
 * sequences, so it is copied and removed with the store): 20 bytes, "PGSENT01", the
 * sequence (big-endian 64 bits), a CRC-32 of both. A write is one pwrite of 20 bytes
 * at offset 0.
 */

#define PG_SENTMARK_FILE "publisher.sent"

typedef struct pg_sentmark pg_sentmark;

/* How the mark was found at open. */
typedef enum pg_sentmark_state {
    PG_SENTMARK_NEW,    /* no file, or an empty one (a new store, a release before this
                         * one, or the file removed after a store was restored) */
    PG_SENTMARK_OK,     /* *seq is the mark */
    PG_SENTMARK_DAMAGED /* not a mark (short, foreign, checksum): *seq is 0 */
} pg_sentmark_state;

/* Open (creating, mode 0600, the directory synced) dir/PG_SENTMARK_FILE and read the
 * mark into *seq. The file must be a regular file of this process's user with one name
 * (a symbolic or hard link is refused). NULL on failure with errstr. */
pg_sentmark *pg_sentmark_open(const char *dir, uint64_t *seq, pg_sentmark_state *state,
                              char *errstr, size_t errstr_size);
/* Make seq the mark, durably (pwrite, fdatasync). 0, PG_EDISKFULL (ENOSPC, EDQUOT) or
 * PG_EIO, with errstr. */
int pg_sentmark_set(pg_sentmark *self, uint64_t seq, char *errstr, size_t errstr_size);
/* The file's path (borrowed). */
const char *pg_sentmark_path(const pg_sentmark *self);
/* Close; sets *p to NULL; NULL-safe. */
void pg_sentmark_close(pg_sentmark **p);

/* Tests: sync with fn instead of fdatasync (NULL: fdatasync again). */
void pg_sentmark_test_sync(pg_sentmark *self, int (*fn)(int fd));

#endif
