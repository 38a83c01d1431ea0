/* pg_ledger: state that turns decoded native messages into the updates to publish. */
#ifndef POLEGATE_LEDGER_H
#define POLEGATE_LEDGER_H

#include <stddef.h>

#include "polegate/arena.h"
#include "polegate/pole.h"

typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;

/*
 * The ledger keeps, in the store, what has been published: the latest EntityUpdate of
 * every entity and the latest LinkUpdate of every link (packed protobuf, with version
 * and deleted flag), an index entity -> live links from and to it, and the recent
 * message ids. pg_ledger_apply reads one decoded changeset against that state and
 * appends to `out` what consumers must be told. Every rule below is applied inside the
 * caller's write transaction, so the state moves exactly with the commit that also
 * records (spool, acknowledgement) that the message was handled.
 *
 * Rules, in the order they apply to one changeset:
 *
 * 1. Duplicates. A changeset whose message_id (when not NULL) is among the last
 *    `seen limit` ids applied, with the same changes, is a duplicate: res->duplicate
 *    = 1, nothing emitted or changed. The same id with other changes (a fingerprint
 *    of them is kept with the id) is refused, PG_EINVALID: the sender reused an id,
 *    and its second message would otherwise be dropped unseen. Otherwise its id is
 *    remembered; the oldest ids are forgotten first.
 *
 * 2. Entity revisions. An entity UPSERT or DELETE whose version is not greater than
 *    the stored version of that entity is stale: dropped and counted in res->stale.
 *    So are the links of the same changeset owned by it (rule 4). A deleted entity
 *    keeps its version, so a late, older UPSERT cannot bring it back; a newer one
 *    re-creates it. An entity merged away (rule 6) no longer exists, for good: a newer
 *    UPSERT of it is refused (PG_EINVALID, the changeset applies nothing) and a newer
 *    DELETE is counted unchanged.
 *
 * 3. Entity UPSERT: emitted as given (the output points at the input's message), then
 *    its links (rule 4 for replaces_links, else none here), then its merges (rule 6);
 *    one of another kind than the stored record's is refused (PG_EINVALID: a record
 *    never changes kind; an item and a weapon, both an NX5 Property, excepted).
 *    Entity DELETE: emitted with what the gateway knows of the record filled in from
 *    the stored record, so that no destination refuses a delete for want of a field: the
 *    stored kind (a record never changes kind; an NX5 Property Delete cannot say item
 *    or weapon), the marking when unset, the stored caveat when the marking says
 *    handling C without one (an NX5 Delete has no children), origin, retention and
 *    modified_at when unset (an ATX DELETE has no retention; a withdrawal no time);
 *    then a DELETE of every live link from or to the entity (rule 7). Nothing is
 *    ordered or dropped by time: only versions decide (rule 2).
 *
 * 4. replaces_links (ATX): the link changes in the changeset from that entity are all
 *    its links now. Each one new or changed is emitted as UPSERT; each one unchanged
 *    is not emitted (res->unchanged); each stored live link from the entity that is
 *    not in the set is emitted as DELETE. "Changed" means: deleted before, other
 *    validity dates, or another marking (a record that becomes SECRET must take its
 *    links with it). For an entity DELETE the links are ignored (ATX says so).
 *
 * 5. Single links (NX5, replaces_links 0): an UPSERT is emitted when new or changed as
 *    above, else counted unchanged. A DELETE is emitted when the link is live or was
 *    never seen (a consumer may hold it from before this ledger existed; version 1),
 *    and counted unchanged when it is already deleted.
 *
 * 6. Merge (UPSERT with merged_from): each merged-away entity is stored merged away
 *    (rule 2); one not already deleted gets
 *    an emitted DELETE EntityUpdate: version = its stored version + 1 (1 when never
 *    seen); origin, kind, marking and retention from its stored record when known,
 *    else origin = the survivor's origin with the ref's native_id, kind = the ref's
 *    kind (or the survivor's), marking = the survivor's. Then each of its live links is emitted as
 *    DELETE and re-created with the merged-away end replaced by the survivor (new id by
 *    pg_identity_link, UPSERT; a link from the merged-away record takes the survivor's
 *    marking, as the survivor now states it), unless that link is already live, would link the
 *    survivor to itself, or leaves the survivor and the survivor has replaces_links
 *    (its complete link list, already applied, decides its outbound links). The
 *    survivor is kept: a link change that names a merged-away record later (a late
 *    message) is applied to the survivor's end instead (through later merges of the
 *    survivor), and dropped (counted unchanged) when it would link the survivor to
 *    itself. A record merges only into one of its kind (an item and a weapon are both
 *    an NX5 Property): another kind is refused, PG_EINVALID.
 *
 * 7. Link versions belong to the ledger: every link update emitted carries the stored
 *    version + 1 (first emission: 1), whatever the adapter wrote. A DELETE of a link
 *    the ledger knows carries the stored link (ends, role, validity, and marking, so
 *    that policy routes the delete to whoever was sent the link) with the modified_at
 *    of the change that caused it, when that change has one. Its origin is the stored
 *    link's (what its destinations were sent), except for a link DELETE the source
 *    stated (rule 5, its own origin): the change that ended it (a merge into a SECRET
 *    survivor, a record that became SECRET) may be a record they were never given.
 *
 * 8. Filled in from state, for what the adapter could not know: a link end of kind
 *    UNSPECIFIED gets the stored kind of that entity when known; a link without
 *    marking or modified_at gets those of its From entity's latest record when known.
 *    The input is never modified: emitted links are copies in out->arena.
 *
 * 9. A record whose links change one at a time (replaces_links 0) and whose marking
 *    changes takes along its live links that carried its old marking (rule 8 gave
 *    them the record's): each is emitted again (UPSERT, version + 1) with the new one,
 *    so that policy shares, withholds or withdraws a link as its record now is.
 *
 * 10. A ledger set explicit (pg_ledger_set_explicit) applies no rule 3 link deletes,
 *    no rule 6 and no rule 9; instead, an entity UPSERT of an entity stored deleted
 *    emits every live link from and to it again (UPSERT, version + 1): the RMS dropped
 *    them with the record, and they are still live.
 *
 * Output: changes appended to out in order (an entity, then its links), all with
 * replaces_links = 0. Emitted entities are the input's messages and emitted links may
 * point at the input's strings, so out is valid as long as both in and out->arena are.
 * out->message_id/force/system are set from in when NULL. On error nothing changes:
 * out loses what this call appended (its arena may keep some bytes), the store is as
 * before the call, and the reason names the change ("changes[2].link.from.id: ...").
 *
 * The same ledger type serves the partner direction (updates consumed from partners,
 * before they are encoded for the local RMS): open it under another name, and use
 * pg_ledger_get_entity and pg_ledger_links_from for what an encoder needs (the latest
 * record of X, the current outbound links of X).
 *
 * The ledger object holds only database handles and settings, no per-call state:
 * writers are serialised by the store's single write transaction, and readers
 * (pg_ledger_get_*, _links_*) may run in read transactions of other threads.
 */

typedef struct pg_ledger pg_ledger;

typedef struct pg_ledger_result {
    size_t published; /* changes appended to out */
    size_t stale;     /* entity changes dropped as stale, with the links they owned */
    size_t unchanged; /* link changes that changed nothing */
    int duplicate;    /* 1: the message was applied before; nothing done */
} pg_ledger_result;

/* Seen message ids kept when no limit is set. */
#define PG_LEDGER_DEFAULT_SEEN_LIMIT 100000

/* The ledger named "ledger" in store. Opens (creating) its databases in a transaction
 * of its own, so call it while this thread has no transaction open. NULL on failure,
 * with errstr. The store must outlive the ledger. */
pg_ledger *pg_ledger_new(pg_store *store, char *errstr, size_t errstr_size);
/* A ledger whose databases are "<name>.entity", "<name>.link", ... ("partner"), for a
 * second, independent ledger in the same store. name: 1-32 of [a-z0-9_-]. */
pg_ledger *pg_ledger_new_named(pg_store *store, const char *name, char *errstr, size_t errstr_size);
void pg_ledger_destroy(pg_ledger **p);
/* How many message ids to remember for duplicate detection (>= 1). Takes effect at the
 * next apply, which forgets the oldest ids beyond it. 0 or PG_EUSAGE. */
int pg_ledger_set_seen_limit(pg_ledger *self, size_t limit);
/* For a ledger of what partners published (docs/topics.md: consumers keep the highest
 * version per key, and at an EQUAL version a DELETE wins, because a withdrawal carries
 * the version the destination holds): an entity DELETE at the stored version of a live
 * entity is applied instead of dropped as stale (rule 2). Off by default. */
void pg_ledger_set_delete_wins_ties(pg_ledger *self, int on);

/* For a ledger of what partners published (rule 10): their ledger already made every
 * consequence explicit, each on its own key and partition (a merged-away record's
 * DELETE, its links deleted and re-created on the survivor, the DELETE of each link of
 * a deleted record, links re-marked with their record), and partitions are read in any
 * order. So rules 3 (links of a deleted entity), 6 and 9 are not applied again: they
 * would kill or re-create links on the strength of an older change read after a newer
 * one. Off by default. */
void pg_ledger_set_explicit(pg_ledger *self, int on);

/* Apply the changeset in inside the write transaction txn and append to out the
 * canonical updates to publish (rules above). res is overwritten. 0, or PG_EINVALID
 * (a change without id, operation, or link end), PG_ENOMEM, PG_ESTORE (reason contains
 * "MDB_MAP_FULL" when the store is full; txn itself stays usable), PG_EUSAGE (txn
 * read-only). */
int pg_ledger_apply(pg_ledger *self, pg_store_txn *txn, const pg_changeset *in, pg_changeset *out,
                    pg_ledger_result *res, char *errstr, size_t errstr_size);

/* The latest record of entity id, unpacked into arena: the last UPSERT, or the DELETE
 * with its last version when the entity is deleted. *deleted (may be NULL) says which.
 * 0, PG_ENOTFOUND (never seen), PG_ESTORE. Any transaction. */
int pg_ledger_get_entity(pg_ledger *self, pg_store_txn *txn, const char *id, pg_arena *arena,
                         pg_entity_update **entity, int *deleted, char *errstr, size_t errstr_size);
/* 1 when the ledger has a record of entity id (live or deleted), 0 when it has none,
 * else PG_ESTORE: pg_ledger_get_entity without unpacking the record. */
int pg_ledger_entity_known(pg_ledger *self, pg_store_txn *txn, const char *id, char *errstr,
                           size_t errstr_size);
/* The latest record of link id, like pg_ledger_get_entity. */
int pg_ledger_get_link(pg_ledger *self, pg_store_txn *txn, const char *id, pg_arena *arena,
                       pg_link_update **link, int *deleted, char *errstr, size_t errstr_size);
/* The live links from (links_to: to) entity id, as their latest LinkUpdate, unpacked
 * into arena: *links is an arena array of *count pointers, in link id order. 0
 * (*count may be 0), PG_ENOMEM, PG_ESTORE. */
int pg_ledger_links_from(pg_ledger *self, pg_store_txn *txn, const char *id, pg_arena *arena,
                         pg_link_update ***links, size_t *count, char *errstr, size_t errstr_size);
int pg_ledger_links_to(pg_ledger *self, pg_store_txn *txn, const char *id, pg_arena *arena,
                       pg_link_update ***links, size_t *count, char *errstr, size_t errstr_size);

#endif
