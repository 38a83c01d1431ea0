/* pg_wal: an append-only write-ahead log of CRC-framed records in segment files. */
#ifndef POLEGATE_WAL_H
#define POLEGATE_WAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * A pg_wal is a directory of segment files, <16 hex digits: the LSN of its first
 * record>.seg, each a 16-byte header ("PGWAL01\n" and that LSN, big-endian) followed
 * by records:
 *
 *     u32 crc     CRC-32 (zlib) of the rest of the header and the payload
 *     u32 len     payload bytes
 *     u64 lsn     log sequence number: 1, 2, 3, ... without gaps across segments
 *     u32 type    the caller's record type
 *     u32 index   of the record among those its sync wrote (0 for the first)
 *     payload     len bytes
 *
 * (every integer big-endian). Appends are buffered in memory; pg_wal_sync writes them
 * and makes them durable with one fdatasync (and, for a new segment, an fsync of the
 * directory). A sync that fails leaves the log as it was before the appends it was to
 * write (the file is cut back, the LSNs are given out again).
 *
 * Opening scans every segment and checks every record. What a crash leaves behind is
 * cut off and logged: a bad record (short, a wrong checksum, a torn header) at the end
 * of the last segment, after which no valid record follows. Anything else is damage,
 * and the open fails with the segment's path, the offset and the reason: a bad record
 * followed by a valid one (the reason says whether it was written by the same sync,
 * which a power cut can tear out of order, with the command that cuts it off, or by a
 * later one), a record out of LSN order, a segment whose LSNs do not
 * continue the one before, a segment header that does not match its name. The log
 * never guesses past damage.
 *
 * The records a checkpoint covers are released by pg_wal_release, which deletes whole
 * segments; the segment being written is never deleted, so the last LSN survives.
 *
 * One thread at a time.
 */

/* The log's directory inside the store's (store.path). */
#define PG_WAL_SUBDIR "wal"
#define PG_WAL_DEFAULT_SEGMENT ((size_t)64 << 20)
/* The largest payload of one record. */
#define PG_WAL_MAX_RECORD ((size_t)256 << 20)

typedef struct pg_wal pg_wal;

typedef struct pg_wal_opts {
    size_t segment_size; /* a segment is begun when a sync would take it past this; 0: 64 MiB */
} pg_wal_opts;

/* Open (creating with mode 0700 when missing) the log in dir: scan, cut a crash's
 * tail, find the next LSN. NULL with errstr: PG_ECORRUPT in *err when damaged (the
 * reason names the segment, the offset and what is wrong), else PG_EIO. err may be
 * NULL. */
pg_wal *pg_wal_open(const char *dir, const pg_wal_opts *opts, int *err, char *errstr,
                    size_t errstr_size);
/* Close; unsynced appends are dropped. Sets *p to NULL; NULL-safe. */
void pg_wal_destroy(pg_wal **p);
const char *pg_wal_dir(const pg_wal *self);

/* The LSN of the last durable record; 0 when the log has none. */
uint64_t pg_wal_last_lsn(const pg_wal *self);
/* 1 when the log holds no record (a new log, or every segment released). */
int pg_wal_empty(const pg_wal *self);
/* A log with no record: the next record gets lsn + 1 (a checkpoint's LSN carried over
 * a log that was begun anew). 0, or PG_EUSAGE when the log holds records. */
int pg_wal_start_after(pg_wal *self, uint64_t lsn, char *errstr, size_t errstr_size);

/* Buffer one record; its LSN in *lsn (may be NULL). Not durable until pg_wal_sync.
 * 0, PG_ENOMEM or PG_ETOOBIG. */
int pg_wal_append(pg_wal *self, uint32_t type, const void *data, size_t len, uint64_t *lsn,
                  char *errstr, size_t errstr_size);
/* Drop the records appended since the last sync (their LSNs are given out again). */
void pg_wal_rollback(pg_wal *self);
/* Write and fdatasync what was appended. 0; PG_EDISKFULL ("disk full: ...") when the
 * filesystem has no room; PG_EIO otherwise. On failure nothing of it is in the log. */
int pg_wal_sync(pg_wal *self, char *errstr, size_t errstr_size);

/* Call fn for each durable record with an LSN above after, in order; fn returns 0 to
 * go on, anything else to stop (returned). 0, fn's value, or PG_EIO / PG_ECORRUPT
 * (the log does not reach back to after + 1, or changed on disk under it) with
 * errstr. data is valid during the call. */
int pg_wal_replay(pg_wal *self, uint64_t after,
                  int (*fn)(void *arg, uint64_t lsn, uint32_t type, const uint8_t *data,
                            size_t len),
                  void *arg, char *errstr, size_t errstr_size);

/* Delete every segment all of whose records have an LSN <= lsn, except the segment
 * being written. 0 or PG_EIO. */
int pg_wal_release(pg_wal *self, uint64_t lsn, char *errstr, size_t errstr_size);

typedef struct pg_wal_check_result {
    unsigned long long segments, records, bytes;
    uint64_t first_lsn, last_lsn;
    int torn_tail; /* a crash's tail that the next open will cut off */
} pg_wal_check_result;
/* Verify every record of the log in dir without changing it (a running daemon may
 * keep writing it). 0 when sound (a crash's tail is reported in res, not an error);
 * PG_ENOTFOUND when dir does not exist; PG_ECORRUPT with the reason when damaged;
 * PG_EIO otherwise. */
int pg_wal_check(const char *dir, pg_wal_check_result *res, char *errstr, size_t errstr_size);

/* Tests: the next count syncs fail as if the write had returned err (an errno value
 * such as ENOSPC or EIO), after half of the bytes were written. */
void pg_wal_test_inject(pg_wal *self, int err, int count);

#endif
