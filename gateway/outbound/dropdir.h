/* pg_dropdir: the intake's drop directory; each file's messages through pg_intake, a
 * result file beside it, then done/ or failed/. */
#ifndef POLEGATE_GATEWAY_DROPDIR_H
#define POLEGATE_GATEWAY_DROPDIR_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/adapter.h"

typedef struct pg_intake pg_intake;
typedef struct pg_store pg_store;

/*
 * An export agent writes a file elsewhere (or under a name starting with '.') and
 * renames it into the directory. Files are taken in name order, one group of
 * messages at a time: each message goes through pg_intake_group_add exactly as a
 * ZeroMQ request does, its ack is written as one line of the hidden result file
 * `.<name>.result`, and the file's progress (byte offset, position, result length,
 * counts) is put in the SAME store transaction as what the messages spooled. A kill
 * at any point therefore takes nothing twice and loses nothing: on restart the
 * result file is cut back to the length the progress names and the file resumes at
 * its offset. Finished, the result moves to `done/<name>.result` (every message
 * accepted) or `failed/<name>.result` (some rejected), then the file beside it.
 *
 * A file that is not a container of the adapter's messages (empty, over
 * max_file_size, binary, the other format) is not taken at all: it goes to failed/
 * with a result file of one line saying why (docs/intake.md).
 */

typedef struct pg_dropdir_opts {
    const char *dir;      /* the drop directory; done/ and failed/ are made in it */
    size_t max_file_size; /* larger files fail whole; 0: 1 GiB */
    const pg_adapter_ops *adapter;
    size_t group_max;       /* messages per store transaction; 0: 256 */
    size_t group_max_bytes; /* message bytes per store transaction; 0: 16 MiB */
    /* Borrowed; must outlive the drop directory. store is the intake's. */
    pg_intake *intake;
    pg_store *store;
} pg_dropdir_opts;

typedef struct pg_dropdir_stats {
    uint64_t files_done;     /* moved to done/ */
    uint64_t files_failed;   /* moved to failed/ (some message rejected, or not a container) */
    uint64_t files_resumed;  /* taken up again where an earlier run stopped */
    uint64_t messages;       /* messages whose ack is in a result file */
    uint64_t names_too_long; /* files left untaken: a name over NAME_MAX - 28 bytes */
} pg_dropdir_stats;

typedef struct pg_dropdir pg_dropdir;

/* Open the drop directory (it must exist and be writable), make done/ and failed/ in
 * it and the progress database in store. NULL with errstr on failure. */
pg_dropdir *pg_dropdir_new(const pg_dropdir_opts *opts, char *errstr, size_t errstr_size);
/* Close files and free; sets *p to NULL; NULL-safe. What is half taken stays so, and
 * the next run resumes it. */
void pg_dropdir_destroy(pg_dropdir **p);

/* Take one group of messages (or finish or fail one file). 1 when work was done and
 * more may be waiting, 0 when idle or backing off (the store failed, or the intake
 * answered retry: the spool is full). Problems are logged; it never fails. */
int pg_dropdir_step(pg_dropdir *self);

void pg_dropdir_get_stats(const pg_dropdir *self, pg_dropdir_stats *out);

#endif
