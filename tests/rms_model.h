/* In-memory models of an ATX and an NX5 records system, for equivalence tests: apply a
 * stream of native messages as the vendor spec says, then compare two final states. */
#ifndef POLEGATE_TESTS_RMS_MODEL_H
#define POLEGATE_TESTS_RMS_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "polegate/adapter.h"
#include "polegate/buf.h"
#include "polegate/pole.h"

/*
 * A model holds what the RMS holds: records by their native id (ATX record.id, NX5
 * GID), each with its kind, the last revision applied and its content (the canonical
 * form its adapter decodes it to), and links (from, role, to) with their validity
 * dates. Messages are decoded by the format's adapter (an invalid one is an error
 * here, as the RMS would reject it) and applied:
 *
 * ATX (docs/formats/athena-atx2.md):
 * - a repeated header.messageId is ignored (duplicate delivery);
 * - a record whose revision is not greater than the last applied for that id is
 *   ignored, links included (stale); a deleted record keeps its revision;
 * - UPSERT replaces the record and ALL links from it with the message's links;
 *   mergedFrom records are removed, their links to others dropped (the survivor's
 *   list is complete), and links from others to them re-pointed to the survivor;
 * - DELETE removes the record and every link from and to it.
 * NX5 (docs/formats/niche-nx5.md):
 * - Add/Modify replace the record (stale Rev ignored); Delete removes it and every
 *   link from and to it; Merge replaces the survivor, removes each MergedFrom record
 *   and re-points every link from or to it to the survivor;
 * - Link elements add (or replace the dates of) and remove links one at a time by
 *   (From, To, Role); links to unknown GIDs are kept.
 * Both: links to records never seen are kept; a link that a merge would turn into a
 * link from a record to itself is dropped, and re-pointing never duplicates a link.
 */

typedef struct pg_rms_model pg_rms_model;

/* A model of the RMS whose format is the adapter's ("atx" or "nx5"). NULL on
 * failure. */
pg_rms_model *pg_rms_model_new(const pg_adapter_ops *adapter);
void pg_rms_model_destroy(pg_rms_model **p);
const char *pg_rms_model_format(const pg_rms_model *model);

/* Decode one native message with the model's adapter and apply it. 0, or the
 * decoder's error with its reason. */
int pg_rms_model_apply(pg_rms_model *model, const uint8_t *msg, size_t len, char *errstr,
                       size_t errstr_size);
/* Apply every message of a buffer holding a file's bytes (split by the adapter);
 * stops at the first error, naming its position ("line 3: ..."). */
int pg_rms_model_apply_bytes(pg_rms_model *model, const uint8_t *data, size_t size, char *errstr,
                             size_t errstr_size);
int pg_rms_model_apply_file(pg_rms_model *model, const char *path, char *errstr,
                            size_t errstr_size);
/* Apply changes already decoded (by the model's format's adapter). */
int pg_rms_model_apply_changeset(pg_rms_model *model, const pg_changeset *cs, char *errstr,
                                 size_t errstr_size);

/* Live records and links. */
size_t pg_rms_model_records(const pg_rms_model *model);
size_t pg_rms_model_links(const pg_rms_model *model);
/* Messages (ATX) ignored as duplicates, and record changes ignored as stale. */
size_t pg_rms_model_duplicates(const pg_rms_model *model);
size_t pg_rms_model_stale(const pg_rms_model *model);
/* The live record id, or NULL (borrowed; valid until the model changes). */
const pg_entity_update *pg_rms_model_get(const pg_rms_model *model, const char *id);
/* The last revision applied for id (a deleted record keeps it); 0 when never seen. */
uint64_t pg_rms_model_revision(const pg_rms_model *model, const char *id);
/* 1 when the link (from, role, to) is live. */
int pg_rms_model_has_link(const pg_rms_model *model, const char *from, int role, const char *to);
/* Print records and links, sorted, one per line (for failure messages). */
void pg_rms_model_dump(const pg_rms_model *model, FILE *f);

typedef struct pg_rms_compare_opts {
    /* Compare as the target format stores values: "nx5" upper-cases names and keeps
     * at most 3 given names, "atx" at most 5 forenames. NULL: b's format. */
    const char *target;
    /* Greatest distance between two positions that still counts as the same place
     * (0: 5 m). */
    double max_metres;
    /* Pairs of ids {a0, b0, a1, b1, ..., NULL}: records known to correspond; the
     * others are matched by content (kind and a key per kind: surname and date of
     * birth, postcode and address, VRM, description and serial, number, reference). */
    const char *const *id_pairs;
} pg_rms_compare_opts;

/* Compare the final states of a and b, ids aside: records matched as above must
 * agree in kind, content (codes as canonical values, names as the target stores
 * them, coordinates within max_metres, times to the second when either side is NX5),
 * marking and retention; links must agree by matched ends, role and validity dates.
 * Each difference is appended to diff as one line. Returns the number of
 * differences (0: equivalent). */
size_t pg_rms_model_compare(const pg_rms_model *a, const pg_rms_model *b,
                            const pg_rms_compare_opts *opts, pg_buf *diff);

#endif
