/* pg_idstore: the ids the local RMS knows partner records by, kept in the store. */
#ifndef POLEGATE_GATEWAY_IDSTORE_H
#define POLEGATE_GATEWAY_IDSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/adapter.h"

typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;

/*
 * Every canonical entity (UUID) that is sent to the local RMS gets, once, an id of the
 * RMS's own shape (the "Import" sections of docs/formats/athena-atx2.md and
 * niche-nx5.md), and keeps it for ever, across restarts. The shapes are the adapter's
 * (pg_adapter_ops.ids): this module keeps them, and the counter of an RMS that
 * numbers its ids per series. Today:
 *
 * - ATX: the record type letter (P L V I W T O C N, from the entity kind) and exactly
 *   10 digits: the configured prefix (default "9") then a per-letter counter from 1,
 *   zero-padded: P9000000001, P9000000002, L9000000001. Choose a prefix the RMS's own
 *   ids never start with, so that the two id spaces cannot meet. An ATX id cannot be
 *   assigned to an entity whose kind is not known (an NX5 link target never seen):
 *   PG_EUNSUPPORTED.
 * - NX5: a GID of 16 upper-case hex digits derived from the UUID: its first 16 hex
 *   digits ("19d2bfc8-4ff4-5442-..." -> 19D2BFC84FF45442), so that an operator can
 *   find one from the other. Should that GID be taken already, its last 16 hex
 *   digits, then the first 16 hex digits of SHA-1("<uuid>/<n>") for n = 1, 2, ...
 *
 * A reverse index (local id -> UUID) makes every id unique: an id already bound to
 * another entity is never handed out again (pg_idstore_put included).
 *
 * Per entity the map also keeps the last revision sent to the RMS and how many times
 * it was sent, because both import specs require the revision to increase with every
 * change sent (a link-only change re-sends a record with a higher revision), and NX5
 * distinguishes the first send (Add) from later ones (Modify).
 *
 * Sending one entity: rev = pg_idstore_next_revision(...) (writes the send), set the
 * update's version to rev, encode with pg_idstore_iface(...) (whose resolve reports
 * *created = 1 for an entity sent at most once, i.e. this is its first send: NX5
 * "Add"), deliver. All in the caller's write transaction, which also records what was
 * delivered: an aborted transaction forgets the ids and revisions with it.
 *
 * Transactions: every function takes a write transaction of the store (txn), or NULL
 * to run in a transaction of its own (for the CLI, `polegate translate --state DIR`;
 * never while this thread holds a write transaction: LMDB would wait for ever).
 * pg_idstore_use binds the transaction the adapter interface (which has no txn
 * argument) works in.
 *
 * Databases: "idmap.<format>.uuid" (uuid -> local id, last revision, sends),
 * "idmap.<format>.local" (local id -> uuid), "idmap.<format>.counter" (ATX letter ->
 * last counter). Maps for atx and nx5 may live side by side in one store.
 */

typedef struct pg_idstore pg_idstore;

typedef struct pg_idstore_config {
    const char *format; /* an adapter's format or name: "atx", "nx5" (or "athena", "niche") */
    /* The adapter's setting values (pg_adapter_ops.settings; NULL: the defaults), e.g.
     * ATX's id_prefix, the 1-4 digits every assigned id starts with ("9"). Borrowed:
     * they must outlive the map. */
    const char *const *settings;
} pg_idstore_config;

/* Open (creating) the map's databases in store, in a transaction of its own. NULL on
 * failure with errstr (PG_ECONFIG-style reasons for a bad config). The store must
 * outlive the map. */
pg_idstore *pg_idstore_new(pg_store *store, const pg_idstore_config *cfg, char *errstr,
                           size_t errstr_size);
void pg_idstore_destroy(pg_idstore **p);

/* The adapter interface over this map (borrowed; lives as long as the map). Its
 * resolve works in the transaction bound by pg_idstore_use, or in its own when none. */
pg_idmap *pg_idstore_iface(pg_idstore *self);
/* Bind txn (NULL: none) for the calls made through pg_idstore_iface. */
void pg_idstore_use(pg_idstore *self, pg_store_txn *txn);

/* A run: a series of calls in one write transaction txn (a compose run), between
 * pg_idstore_run_begin and pg_idstore_run_end. The map remembers what it read and wrote
 * in txn during the run, so that an entity named again (a link's ends, a record's
 * revision then its id) is not read from the store again. Nothing else may write the
 * map's databases in txn during the run, and txn must not be used after an abort of a
 * child of it (a run has none). */
void pg_idstore_run_begin(pg_idstore *self, pg_store_txn *txn);
void pg_idstore_run_end(pg_idstore *self);
/* Within a run: from here, note what each write in the run's transaction replaces, so
 * that pg_idstore_rollback can undo them (a refused message's ids and revisions) as an
 * aborted child transaction would, without the cost of one. _release keeps the
 * writes. One savepoint at a time. */
void pg_idstore_savepoint(pg_idstore *self);
void pg_idstore_release(pg_idstore *self);
/* Undo every write since the savepoint (0), or PG_ESTORE when the store failed: the
 * run's transaction must then be aborted. */
int pg_idstore_rollback(pg_idstore *self, char *errstr, size_t errstr_size);

/* The local id of entity uuid, assigned the first time (kind: an EntityKind value,
 * needed for ATX). *created (may be NULL): 1 when the entity has been sent at most
 * once (see above). 0; PG_EUNSUPPORTED (ATX, kind unknown), PG_EINVALID (uuid not a
 * UUID, or the entity's ATX id has another kind's letter), PG_EUSAGE (outsize too
 * small), PG_ESTORE. */
int pg_idstore_resolve(pg_idstore *self, pg_store_txn *txn, const char *uuid, int kind, char *out,
                       size_t outsize, int *created, char *errstr, size_t errstr_size);
/* The local id of uuid if it has one: 0 or PG_ENOTFOUND (or PG_ESTORE). txn may be
 * read-only. */
int pg_idstore_lookup(pg_idstore *self, pg_store_txn *txn, const char *uuid, char *out,
                      size_t outsize, char *errstr, size_t errstr_size);
/* The entity a local id belongs to: 0 or PG_ENOTFOUND. txn may be read-only. */
int pg_idstore_uuid_of(pg_idstore *self, pg_store_txn *txn, const char *local_id, char uuid[37],
                       char *errstr, size_t errstr_size);
/* Bind uuid to local_id (the entity was sent to the RMS before this map existed).
 * 0 (also when exactly this binding exists); PG_EINVALID when local_id is not an id of
 * this format (ATX: of kind's letter when kind is given), or is bound to another
 * entity, or uuid has another id already. */
int pg_idstore_put(pg_idstore *self, pg_store_txn *txn, const char *uuid, int kind,
                   const char *local_id, char *errstr, size_t errstr_size);

/* Record one more send of entity uuid and return in *rev its revision: the greater of
 * (last revision sent + 1) and canonical_version (the partner's version, so that the
 * RMS sees the source's revisions while they increase). *first (may be NULL): 1 when
 * this is the entity's first send. 0 or PG_EINVALID / PG_ESTORE. */
int pg_idstore_next_revision(pg_idstore *self, pg_store_txn *txn, const char *uuid,
                             uint64_t canonical_version, uint64_t *rev, int *first, char *errstr,
                             size_t errstr_size);
/* The last revision sent for uuid (0 when never sent), without changing it. */
int pg_idstore_last_revision(pg_idstore *self, pg_store_txn *txn, const char *uuid, uint64_t *rev,
                             char *errstr, size_t errstr_size);

/* Is local_id an id of this map's RMS (of kind, when not 0)? 1 or 0. */
int pg_idstore_id_valid(const pg_idstore *self, int kind, const char *local_id);
/* The entity kind local_id names (ATX: by its letter); 0 when its shape does not say. */
int pg_idstore_kind_of(const pg_idstore *self, const char *local_id);

#endif
