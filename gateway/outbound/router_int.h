/* pg_router's inside, shared by router.c (routing) and router_reconcile.c (a policy
 * change); no other file includes it. */
#ifndef POLEGATE_GATEWAY_ROUTER_INT_H
#define POLEGATE_GATEWAY_ROUTER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "outrec.h"
#include "policy.h"
#include "router.h"
#include "store.h"

typedef struct pg_ledger pg_ledger;

#define PG_ROUTER_DB_HELD "router.held"
/* The first byte of the name under which the state of what a topic was last sent is
 * kept once no destination writes that topic: "@<topic>" (no destination name has it). */
#define PG_ROUTER_TOPIC_MARK '@'
#define PG_ROUTER_DB_META "router.meta"
#define PG_ROUTER_META_POLICY "policy"
/* The digest of the rules as the parser reads them (pg_policy_digest), beside the
 * signature, which keeps the digest releases before 2026-12-07 read. */
#define PG_ROUTER_META_RULES "policy.rules"
/* The policy version whose large withdrawal the operator confirmed (pg_router_confirm). */
#define PG_ROUTER_META_CONFIRM "confirm-withdrawal"
/* The ledger's database of latest entity records (gateway/core/ledger.c: "<name>.entity",
 * keyed by entity id, opened by pg_ledger_new as "ledger"). The router only walks its
 * keys, and reads each record through pg_ledger_get_entity. */
#define PG_ROUTER_DB_LEDGER_ENTITY "ledger.entity"

#define PG_ROUTER_TYPE_ENTITY 1
#define PG_ROUTER_TYPE_LINK 2

/* The value of a held-state key: type, held, ledger version sent, topic version sent,
 * the agreement's bytes, then a NUL and 4 bytes of the fields redacted (a release
 * before them reads the agreement up to the NUL, so a roll-back reads this state). */
#define PG_ROUTER_VAL_FIXED 18
/* What a state stored before the redactions were kept was sent with: not known. Taken
 * as what the destination's policy redacted then (an upgrade must not withdraw every
 * redacted record at its first policy change); its next revision is sent as decided. */
#define PG_ROUTER_REDACTED_UNKNOWN UINT32_MAX
#define PG_ROUTER_AGREEMENT_MAX 64

#define PG_ROUTER_OP_UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT
#define PG_ROUTER_OP_DELETE POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE

/* Held state read or written during one routing call, so that what a message touches
 * (its records, the ends of its links, on every destination) is read from the store
 * once: every write of the call goes through it (its puts and pg_router__del), and
 * it is emptied when the call ends, whether its transaction commits or aborts. A call
 * that touches more keys reads the rest from the store. */
#define PG_ROUTER_CACHE 32
typedef struct pg_router_cached pg_router_cached;

struct pg_router {
    const pg_policy *policy;
    pg_store *store;
    pg_ledger *ledger;
    char *force;
    pg_store_db held;
    pg_store_db meta;
    pg_store_db entities; /* the ledger's "ledger.entity", walked at a policy change */
    pg_arena *scratch;    /* decisions, unpacked ledger records: reset per call */
    pg_router_stats stats;
    int withdraw_limit;      /* percent of a destination a policy change may withdraw unconfirmed */
    pg_router_cached *cache; /* PG_ROUTER_CACHE entries, used by a routing call only */
    size_t cache_n;
    int cache_on; /* 1 inside a routing call (s_atomic) */
};

/* What one destination holds of one id. found 0: no state at all. */
typedef struct pg_router_state {
    int found;
    int type;
    int held;
    uint64_t src_version;  /* the ledger's version of what was last sent */
    uint64_t sent_version; /* the version last written on the destination's topic */
    /* the fields redacted (bits of pg_policy_field) in what was last sent;
     * PG_ROUTER_REDACTED_UNKNOWN for a state stored before they were kept */
    uint32_t redacted;
    char agreement[PG_ROUTER_AGREEMENT_MAX + 1];
} pg_router_state;

/* Where a record goes: a configured destination, or a former one (policy change). */
typedef struct pg_router_dest {
    const char *name;
    const char *topic;
    const pg_policy_destination *pd; /* NULL for a former destination */
} pg_router_dest;

typedef struct pg_router_ctx {
    pg_router *r;
    pg_store_txn *txn;
    pg_outbatch *out;
    char *errstr;
    size_t errstr_size;
} pg_router_ctx;

/* The live links of one entity, fetched once for every destination. */
typedef struct pg_router_links {
    /* The updates routed after the entities (a message's links; may be NULL): a link
     * among them is decided there, with every end as the message leaves it, and not
     * here as well. */
    const pg_changeset *later;
    int fetched;
    pg_link_update **from, **to;
    size_t n_from, n_to;
} pg_router_links;

/* Flags of pg_router__route_link. */
enum {
    /* A re-decision because an end changed, not the link's own update: a withheld link
     * is not audited again. */
    PG_ROUTER_QUIET = 1,
    /* A policy change: only a withdrawal is sent (what stays shareable keeps the form
     * it was sent in until its next change). */
    PG_ROUTER_RECHECK = 2,
    /* A policy change: only a first publication is sent, to a destination that does
     * not hold the record; nothing withheld is audited, nothing withdrawn. */
    PG_ROUTER_ADD = 4,
};

/* Held state: read, remove (pg_router__decode_state reads a stored value). */
void pg_router__decode_state(const void *val, size_t vlen, pg_router_state *st);
int pg_router__get(pg_router_ctx *ctx, const char *dest, const char *id, pg_router_state *st);
int pg_router__del(pg_router_ctx *ctx, const char *dest, const char *id);
/* Move the state of (from, id) to (to, id), as not held (PG_ROUTER_MOVE_HELD: held
 * as it was), unless to has one of id (PG_ROUTER_MOVE_REPLACE: replacing it); nothing
 * when from has none. */
#define PG_ROUTER_MOVE_HELD 0x1
#define PG_ROUTER_MOVE_REPLACE 0x2
int pg_router__move(pg_router_ctx *ctx, const char *from, const char *to, const char *id,
                    unsigned flags);
int pg_router__audit(pg_router_ctx *ctx, pg_audit_event *ev, const char *dest, const char *outcome);
int pg_router__route_entity(pg_router_ctx *ctx, const pg_router_dest *dest,
                            const pg_entity_update *e, pg_router_links *links, int flags);
int pg_router__route_link(pg_router_ctx *ctx, const pg_router_dest *dest, const pg_link_update *l,
                          int flags);
int pg_router__withdraw_entity(pg_router_ctx *ctx, const pg_router_dest *dest,
                               const pg_entity_update *e, uint64_t v, const pg_router_state *st,
                               pg_policy_reason reason);
int pg_router__withdraw_link(pg_router_ctx *ctx, const pg_router_dest *dest,
                             const pg_link_update *l, pg_router_state *st, pg_policy_reason reason);
int pg_router__reconcile(pg_router_ctx *ctx, const pg_changeset *routing);

#endif
