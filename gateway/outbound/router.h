/* pg_router: canonical updates -> per-destination Kafka records under the sharing policy. */
#ifndef POLEGATE_GATEWAY_ROUTER_H
#define POLEGATE_GATEWAY_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/pole.h"
#include "policy.h"

typedef struct pg_outbatch pg_outbatch;
typedef struct pg_outrec pg_outrec;
typedef struct pg_store pg_store;
typedef struct pg_store_txn pg_store_txn;

/*
 * The router sits between the ledger and the spool. For each canonical update the
 * ledger emitted for one native message, and for each destination of the policy, it
 * decides (pg_policy_decide_entity / _link) and appends to an outbatch the Kafka
 * records that destination must get: the (possibly redacted) update, or a DELETE and
 * a tombstone when the destination held a record it may no longer hold. Every record
 * carries the headers of docs/topics.md with the provenance headers (pg-agreement,
 * pg-policy-version, pg-redactions) and the audit metadata (disclose / withdraw) the
 * producer writes once the broker has stored it. The batch's pending audit events
 * (collect, withhold, erase) are written by the caller after its commit.
 *
 * State, kept in the store (databases "router.held" and "router.meta") and changed in
 * the caller's transaction, so it moves exactly with the ledger and the spool:
 *
 *  - per (destination name, entity or link id): whether the destination holds it now
 *    (the last record sent there was an UPSERT), the ledger version last sent, the
 *    version last written on its topic and the agreement it went under; kept, not held,
 *    after a withdrawal (links; entities unless deleted at source);
 *  - the policy version and each destination's topic at the last routing.
 *
 * Rules (docs/policy.md "Routing"):
 *
 *  1. Entities of the changeset first, in order, then its links. An entity UPSERT is
 *     audited `collect` once, a DELETE `erase` once. Per destination: SHARE ->
 *     publish (`disclose`); WITHHOLD and held -> withdraw (DELETE + tombstone,
 *     `withdraw`); WITHHOLD and not held -> nothing sent, `withhold` with the reason
 *     (an UPSERT only: a DELETE of what a destination never had is not news to it).
 *  2. Links follow their ends. An end is SHARED when the destination holds that
 *     entity, WITHHELD when the ledger knows it (or it is deleted) but the
 *     destination does not hold it, UNKNOWN when the ledger has never seen it. When an
 *     entity's held state for a destination changes, its live links are re-decided
 *     for that destination: a link withheld because an end was missing is published
 *     when the second end arrives, and a held link is withdrawn with its end. A link of
 *     the changeset already sent at its ledger version in this batch is not sent again.
 *  3. Versions on a destination's topic only ever go up per key. An entity carries its
 *     source revision; its withdrawal carries the triggering update's version, or at a
 *     policy change the version the destination holds (a DELETE wins at an equal
 *     version: docs/topics.md). A link carries the ledger's version, or one more than
 *     the last version sent to that destination when that is higher (a link withdrawn
 *     with its end and published again unchanged).
 *  4. A deletion at source (delete, MoPI disposal, merge) that a destination holds is
 *     sent as the ledger made it (marking, origin, the deletion's message id and time;
 *     origin.org_unit cleared where the destination redacts it) when its kind, marking
 *     and MoPI group are ones that destination may see. Every other withdrawal (marking
 *     up, MoPI re-grade, policy change, or a DELETE marked above what it may see) is
 *     the bare DELETE of pg_policy_withdrawal_entity/_link: ids, kind, ends; never the
 *     new marking or the reason (pg-marking: UNSPECIFIED;UNSPECIFIED).
 *  5. Policy change: when the stored policy version differs from the policy's,
 *     everything held is re-decided from the ledger's latest records and withdrawn
 *     where no longer allowed; a destination that is gone, or whose topic changed, gets
 *     a DELETE for everything it held on its old topic. Then every live entity of the
 *     ledger (its database of latest records walked in id order) that a destination
 *     does not hold and may now receive is published to it as routing publishes a
 *     first share: its latest record at its ledger version, redacted for it,
 *     `disclose`, marked held, then its live links whose other end it holds (rule 2).
 *     Nothing is audited `withhold` and nothing already held is sent again. A link
 *     newly allowed between two entities the destination already held goes at its
 *     next change or the next change of an end's held state.
 *
 * Threads: one routing at a time (the store's single write transaction); the router
 * keeps per-call scratch memory.
 */

typedef struct pg_router pg_router;

typedef struct pg_router_stats {
    uint64_t messages;  /* pg_router_route calls that succeeded */
    uint64_t disclosed; /* UPSERT records made */
    uint64_t withdrawn; /* DELETE records made for withdrawals (tombstones not counted) */
    uint64_t withheld;  /* (update, destination) pairs withheld, nothing sent */
    uint64_t reasons[PG_POLICY_REASON_COUNT]; /* withheld and withdrawn, by reason */
    uint64_t reconciles;                      /* policy changes handled */
    uint64_t reconcile_published; /* records (entities, links) published by reconciles */
} pg_router_stats;

/* A router for policy (borrowed, must outlive the router) over store, for force (our
 * force code: pg-origin-force of a record whose origin names none). Opens its
 * databases and a pg_ledger on the store in a transaction of its own: call it while
 * this thread has no transaction open. NULL with errstr on failure. */
pg_router *pg_router_new(const pg_policy *policy, pg_store *store, const char *force, char *errstr,
                         size_t errstr_size);
/* NULL-safe; sets *p to NULL. */
void pg_router_destroy(pg_router **p);

/* Route by policy from now on (borrowed, must outlive the router; the old one may be
 * freed once this returns). A reload calls it, then pg_router_reconcile, between two
 * routings on the routing thread. */
void pg_router_set_policy(pg_router *self, const pg_policy *policy);
/* The policy routed by (borrowed). */
const pg_policy *pg_router_policy(const pg_router *self);

/* Guards on a policy change (rule 5), both fail closed and change nothing:
 * - a stored policy whose version equals the policy's but whose destinations or
 *   topics differ is refused with PG_ECONFIG (a change needs a new policy.version);
 * - one that would withdraw more than percent of what a destination holds (0-100; 100,
 *   the default, never waits) returns PG_ECONFIRM with the figures, until
 *   pg_router_confirm stored that policy version in the store (used up by the
 *   reconcile it allows). */
void pg_router_set_withdraw_limit(pg_router *r, int percent);
/* Confirm, in the write transaction txn of the router's store (a daemon may be
 * running), the withdrawals of policy version. 0 or a store error. */
int pg_router_confirm(pg_store_txn *txn, const char *version, char *errstr, size_t errstr_size);

/* Route the updates in published (what pg_ledger_apply appended, in order) inside the
 * write transaction txn: append the records and pending audit events to out. Does
 * pg_router_reconcile first when the policy version changed. On error (PG_ENOMEM,
 * PG_ESTORE, PG_EUSAGE for a read-only txn, PG_EINVALID for an update without an id)
 * txn and out are as they were before the call. */
int pg_router_route(pg_router *self, pg_store_txn *txn, const pg_changeset *published,
                    pg_outbatch *out, char *errstr, size_t errstr_size);

/* When the policy version stored in txn is not the policy's (and something was routed
 * before), re-decide everything held and append the withdrawals to out, then append
 * the records newly allowed (rule 5); store the policy version and topics. Returns the
 * number of withdrawals (>= 0; the publications are counted in
 * pg_router_stats.reconcile_published and logged) or an error as for pg_router_route.
 * Call at start-up in its own transaction, spooling out with the commit.
 *
 * Size: the whole reconcile is one batch, not bounded by the call: at most two records
 * (DELETE, tombstone) per (held id, destination) withdrawn plus one per (live entity
 * or link, destination) newly allowed, and their pending audit events; the router's
 * own memory stays that of one entity (the ledger is walked with a cursor). A policy
 * that opens a kind to a destination therefore spools, in one batch and one Kafka
 * transaction, every stored record of that kind the destination may receive, and
 * out's arena holds them until it is reset. */
int pg_router_reconcile(pg_router *self, pg_store_txn *txn, pg_outbatch *out, char *errstr,
                        size_t errstr_size);

/* A withdrawal still spooled, decided under another policy (rec: its DELETE; a
 * tombstone, a disclosure or one of this policy is left alone), as this policy forms
 * it for the destination that now writes its topic: a deletion's own form only when
 * that destination may see its kind, marking and MoPI group, origin.org_unit cleared
 * when it redacts it; else the bare form (docs/policy.md, "Withdrawal forms"); none
 * writes the topic any more: the bare form. When its value differs from rec's, appends
 * the new DELETE and its tombstone to out and returns 1; 0 when rec stays as it is
 * (its headers too); PG_ENOMEM, or PG_EINTERNAL when rec's value does not unpack. On
 * the routing thread, between routings (it uses the router's scratch arena). */
int pg_router_reform_withdrawal(pg_router *self, const pg_outrec *rec, pg_outbatch *out,
                                char *errstr, size_t errstr_size);

/* Does destination hold entity or link id (as of txn)? 1, 0, or a negative error. */
int pg_router_held(pg_router *self, pg_store_txn *txn, const char *destination, const char *id);

void pg_router_get_stats(const pg_router *self, pg_router_stats *out);

#endif
