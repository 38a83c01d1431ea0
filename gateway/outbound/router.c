/* pg_router: policy per destination over the ledger's updates, held state in the store. */
#include "router.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "log.h"
#include "polegate/error.h"
#include "polegate/wire.h"

#define S_DB_HELD "router.held"
#define S_DB_META "router.meta"
#define S_META_POLICY "policy"
/* The policy version whose large withdrawal the operator confirmed (pg_router_confirm). */
#define S_META_CONFIRM "confirm-withdrawal"
/* The ledger's database of latest entity records (gateway/core/ledger.c: "<name>.entity",
 * keyed by entity id, opened by pg_ledger_new as "ledger"). The router only walks its
 * keys, and reads each record through pg_ledger_get_entity. */
#define S_DB_LEDGER_ENTITY "ledger.entity"

#define S_TYPE_ENTITY 1
#define S_TYPE_LINK 2

/* The value of a held-state key: type, held, ledger version sent, topic version sent,
 * then the agreement's bytes. */
#define S_VAL_FIXED 18
#define S_AGREEMENT_MAX 64

#define S_OP_UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT
#define S_OP_DELETE POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE

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
    int withdraw_limit; /* percent of a destination a policy change may withdraw unconfirmed */
};

/* What one destination holds of one id. found 0: no state at all. */
typedef struct s_state {
    int found;
    int type;
    int held;
    uint64_t src_version;  /* the ledger's version of what was last sent */
    uint64_t sent_version; /* the version last written on the destination's topic */
    char agreement[S_AGREEMENT_MAX + 1];
} s_state;

/* Where a record goes: a configured destination, or a former one (policy change). */
typedef struct s_dest {
    const char *name;
    const char *topic;
    const pg_policy_destination *pd; /* NULL for a former destination */
} s_dest;

typedef struct s_ctx {
    pg_router *r;
    pg_store_txn *txn;
    pg_outbatch *out;
    char *errstr;
    size_t errstr_size;
} s_ctx;

/* The live links of one entity, fetched once for every destination. */
typedef struct s_links {
    int fetched;
    pg_link_update **from, **to;
    size_t n_from, n_to;
} s_links;

/* ---------------------------------------------------------------- held state */

static int s_key(char *buf, size_t size, const char *dest, const char *id, size_t *klen)
{
    size_t dn = strlen(dest), in = strlen(id);
    if (dn + 1 + in > size)
        return PG_EINVALID;
    memcpy(buf, dest, dn);
    buf[dn] = 0;
    memcpy(buf + dn + 1, id, in);
    *klen = dn + 1 + in;
    return 0;
}

static void s_decode_state(const void *val, size_t vlen, s_state *st)
{
    const unsigned char *v = val;
    memset(st, 0, sizeof *st);
    if (vlen < S_VAL_FIXED)
        return;
    st->found = 1;
    st->type = v[0];
    st->held = v[1];
    memcpy(&st->src_version, v + 2, 8);
    memcpy(&st->sent_version, v + 10, 8);
    size_t an = vlen - S_VAL_FIXED;
    if (an > S_AGREEMENT_MAX)
        an = S_AGREEMENT_MAX;
    memcpy(st->agreement, v + S_VAL_FIXED, an);
    st->agreement[an] = 0;
}

static int s_get(s_ctx *ctx, const char *dest, const char *id, s_state *st)
{
    char key[PG_STORE_MAX_KEY];
    size_t klen;
    memset(st, 0, sizeof *st);
    if (s_key(key, sizeof key, dest, id, &klen))
        return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size, "id '%.64s...': too long", id);
    const void *val;
    size_t vlen;
    int rc =
        pg_store_get(ctx->txn, ctx->r->held, key, klen, &val, &vlen, ctx->errstr, ctx->errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    s_decode_state(val, vlen, st);
    return 0;
}

static int s_put(s_ctx *ctx, const char *dest, const char *id, const s_state *st)
{
    char key[PG_STORE_MAX_KEY];
    unsigned char val[S_VAL_FIXED + S_AGREEMENT_MAX];
    size_t klen;
    if (s_key(key, sizeof key, dest, id, &klen))
        return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size, "id '%.64s...': too long", id);
    size_t an = strlen(st->agreement);
    val[0] = (unsigned char)st->type;
    val[1] = (unsigned char)st->held;
    memcpy(val + 2, &st->src_version, 8);
    memcpy(val + 10, &st->sent_version, 8);
    memcpy(val + S_VAL_FIXED, st->agreement, an);
    return pg_store_put(ctx->txn, ctx->r->held, key, klen, val, S_VAL_FIXED + an, ctx->errstr,
                        ctx->errstr_size);
}

static int s_del(s_ctx *ctx, const char *dest, const char *id)
{
    char key[PG_STORE_MAX_KEY];
    size_t klen;
    if (s_key(key, sizeof key, dest, id, &klen))
        return 0;
    int rc =
        pg_store_del(ctx->txn, ctx->r->held, key, klen, NULL, 0, ctx->errstr, ctx->errstr_size);
    return rc == PG_ENOTFOUND ? 0 : rc;
}

static void s_set_agreement(s_state *st, const char *agreement)
{
    snprintf(st->agreement, sizeof st->agreement, "%s", agreement ? agreement : "");
}

/* ---------------------------------------------------------------- records */

/* What the Kafka record of one update needs besides its packed value. */
typedef struct s_rec {
    const char *type;
    const char *id;
    int operation;
    uint64_t version;
    const pg_origin *origin;
    const pg_marking *marking;
    const ProtobufCMessage *msg;
    const char *agreement;
    const char *redactions;
    pg_audit_action action;
    const char *outcome;
} s_rec;

/* "OFFICIAL-SENSITIVE;P": the pg-marking header, the ATX spelling. */
static void s_marking_text(const pg_marking *m, char *out, size_t size)
{
    const char *c = pg_enum_short(&polegate__pole__v1__classification__descriptor,
                                  m ? (int)m->classification : 0);
    const char *h =
        pg_enum_short(&polegate__pole__v1__handling__descriptor, m ? (int)m->handling : 0);
    snprintf(out, size, "%s;%s", c ? c : "UNSPECIFIED", h ? h : "UNSPECIFIED");
    for (char *s = out; *s; s++)
        if (*s == '_')
            *s = '-';
}

static const char *s_dup(pg_arena *arena, const char *s, int *fail)
{
    if (!s)
        return NULL;
    char *d = pg_arena_strdup(arena, s);
    if (!d)
        *fail = 1;
    return d;
}

static int s_headers(s_ctx *ctx, pg_outrec *rec, const s_rec *r)
{
    pg_outbatch *out = ctx->out;
    char marking[64], version[24];
    const char *op = pg_enum_short(&polegate__pole__v1__operation__descriptor, r->operation);
    const char *force =
        r->origin && r->origin->force && *r->origin->force ? r->origin->force : ctx->r->force;
    s_marking_text(r->marking, marking, sizeof marking);
    snprintf(version, sizeof version, "%" PRIu64, r->version);
    const char *h[][2] = {
        {PG_HDR_TYPE, r->type},
        {PG_HDR_SCHEMA, PG_SCHEMA_VERSION},
        {PG_HDR_ORIGIN_FORCE, force},
        {PG_HDR_MARKING, marking},
        {PG_HDR_OPERATION, op ? op : "UNSPECIFIED"},
        {PG_HDR_VERSION, version},
        {PG_HDR_AGREEMENT, r->agreement ? r->agreement : ""},
        {PG_HDR_POLICY_VERSION, pg_policy_version(ctx->r->policy)},
        {PG_HDR_REDACTIONS, r->redactions ? r->redactions : "none"},
    };
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        int rc = pg_outrec_header_add(out, rec, h[i][0], h[i][1]);
        if (rc)
            return rc;
    }
    return 0;
}

/* Append the record of r for dest (and, for a DELETE, its tombstone). */
static int s_emit(s_ctx *ctx, const s_dest *dest, const s_rec *r)
{
    pg_outbatch *out = ctx->out;
    pg_arena *a = out->arena;
    pg_outrec *rec = pg_outbatch_add(out);
    if (!rec)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    int fail = 0;
    rec->topic = s_dup(a, dest->topic, &fail);
    rec->key = s_dup(a, r->id, &fail);
    size_t len = protobuf_c_message_get_packed_size(r->msg);
    uint8_t *value = pg_arena_alloc(a, len ? len : 1);
    if (value)
        protobuf_c_message_pack(r->msg, value);
    else
        fail = 1;
    rec->value = value;
    rec->value_len = len;
    rec->audit_action = r->action;
    rec->destination = s_dup(a, dest->name, &fail);
    rec->agreement = s_dup(a, r->agreement, &fail);
    rec->policy_version = s_dup(a, pg_policy_version(ctx->r->policy), &fail);
    rec->entity_id = rec->key;
    rec->native_id = s_dup(a, r->origin ? r->origin->native_id : NULL, &fail);
    rec->origin = s_dup(a, r->origin ? r->origin->force : NULL, &fail);
    rec->version = r->version;
    rec->outcome = s_dup(a, r->outcome, &fail);
    if (fail || s_headers(ctx, rec, r))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    if (r->operation != S_OP_DELETE)
        return 0;
    /* Same key, so the same partition, after the delete: compaction then forgets the
     * key. The audit event belongs to the DELETE only. */
    pg_outrec *tomb = pg_outbatch_add(out);
    if (!tomb)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    rec = &out->recs[out->count - 2]; /* the add may have moved the array */
    *tomb = *rec;
    tomb->value = NULL;
    tomb->value_len = 0;
    tomb->audit_action = PG_AUDIT_NONE;
    return 0;
}

static int s_audit(s_ctx *ctx, pg_audit_event *ev, const char *dest, const char *outcome)
{
    ev->destination = dest;
    ev->policy_version = pg_policy_version(ctx->r->policy);
    ev->outcome = outcome;
    if (pg_outbatch_audit_add(ctx->out, ev))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    return 0;
}

static const char *s_disclose_outcome(s_ctx *ctx, const pg_policy_decision *d)
{
    if (!d->redacted)
        return "shared";
    char *s = pg_arena_sprintf(ctx->r->scratch, "redacted:%s", d->redactions);
    return s ? s : "redacted";
}

static void s_count(pg_router *self, pg_policy_reason reason)
{
    if ((int)reason >= 0 && reason < PG_POLICY_REASON_COUNT)
        self->stats.reasons[reason]++;
}

/* Nothing sent to dest: counted, and audited with the reason. */
static int s_withhold(s_ctx *ctx, const char *dest, pg_audit_event *ev, pg_policy_reason reason)
{
    ctx->r->stats.withheld++;
    s_count(ctx->r, reason);
    return s_audit(ctx, ev, dest, pg_policy_reason_name(reason));
}

/* ---------------------------------------------------------------- links */

/* What dest knows of entity id: held, known to the ledger but not held, or unknown. */
static int s_end(s_ctx *ctx, const s_dest *dest, const char *id, pg_policy_end *end)
{
    s_state st;
    int rc = s_get(ctx, dest->name, id, &st);
    if (rc)
        return rc;
    if (st.held) {
        *end = PG_POLICY_END_SHARED;
        return 0;
    }
    pg_entity_update *e;
    rc = pg_ledger_get_entity(ctx->r->ledger, ctx->txn, id, ctx->r->scratch, &e, NULL, ctx->errstr,
                              ctx->errstr_size);
    if (rc == PG_ENOTFOUND) {
        *end = PG_POLICY_END_UNKNOWN;
        return 0;
    }
    *end = PG_POLICY_END_WITHHELD;
    return rc;
}

/* The copy of l to send with version v. */
static pg_link_update *s_link_at(s_ctx *ctx, const pg_link_update *l, uint64_t v)
{
    pg_link_update *c = pg_arena_alloc(ctx->r->scratch, sizeof *c);
    if (c) {
        *c = *l;
        c->version = v;
    }
    return c;
}

static uint64_t s_next_version(uint64_t src, const s_state *st)
{
    return st->found && st->sent_version >= src ? st->sent_version + 1 : src;
}

/* A source DELETE of a link dest holds, as the ledger made it (ends, role, validity,
 * marking, and the deletion's origin), when its marking is one dest may see: *out is
 * a copy at version v with dest's redactions. Otherwise *out stays NULL and the bare
 * DELETE of pg_policy_withdrawal_link goes: it never says more than dest knew. */
static int s_link_delete_as_is(s_ctx *ctx, const s_dest *dest, const pg_link_update *l, uint64_t v,
                               pg_link_update **out, const char **redactions)
{
    if (!dest->pd || l->operation != S_OP_DELETE)
        return 0;
    pg_link_update up = *l;
    up.operation = S_OP_UPSERT;
    pg_policy_decision d;
    if (pg_policy_decide_link(ctx->r->policy, dest->pd, &up, PG_POLICY_END_SHARED,
                              PG_POLICY_END_SHARED, ctx->r->scratch, &d))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    if (d.verdict != PG_POLICY_SHARE)
        return 0;
    if (!(*out = s_link_at(ctx, d.link, v)))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    (*out)->operation = S_OP_DELETE;
    *redactions = d.redactions;
    return 0;
}

/* Send dest the link withdrawal of l, past the last version it was sent. The state
 * stays (not held) so that the link's versions on this topic keep going up if it is
 * published again. */
static int s_withdraw_link(s_ctx *ctx, const s_dest *dest, const pg_link_update *l, s_state *st,
                           pg_policy_reason reason)
{
    pg_router *r = ctx->r;
    uint64_t v = s_next_version(l->version, st);
    const char *redactions = "none";
    pg_link_update *w = NULL;
    int rc = s_link_delete_as_is(ctx, dest, l, v, &w, &redactions);
    if (rc)
        return rc;
    if (!w && !(w = pg_policy_withdrawal_link(r->scratch, l, v)))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    s_rec rec = {PG_TYPE_LINK,
                 w->id,
                 w->operation,
                 v,
                 w->origin,
                 w->marking,
                 &w->base,
                 st->agreement,
                 redactions,
                 PG_AUDIT_WITHDRAW,
                 pg_policy_reason_name(reason)};
    rc = s_emit(ctx, dest, &rec);
    if (rc)
        return rc;
    st->held = 0;
    st->src_version = l->version;
    st->sent_version = v;
    r->stats.withdrawn++;
    s_count(r, reason);
    return s_put(ctx, dest->name, l->id, st);
}

/* Flags of s_route_link. */
enum {
    /* A re-decision because an end changed, not the link's own update: a withheld link
     * is not audited again. */
    S_QUIET = 1,
    /* A policy change: only a withdrawal is sent (what stays shareable keeps the form
     * it was sent in until its next change). */
    S_RECHECK = 2,
    /* A policy change: only a first publication is sent, to a destination that does
     * not hold the record; nothing withheld is audited, nothing withdrawn. */
    S_ADD = 4,
};

/* Send dest what it must get of link l (the latest state of the link). */
static int s_route_link(s_ctx *ctx, const s_dest *dest, const pg_link_update *l, int flags)
{
    pg_router *r = ctx->r;
    s_state st;
    int rc = s_get(ctx, dest->name, l->id, &st);
    if (rc)
        return rc;
    if (l->operation == S_OP_DELETE && !st.held)
        return 0; /* it never had it, or it was withdrawn already */

    pg_policy_end from = PG_POLICY_END_UNKNOWN, to = PG_POLICY_END_UNKNOWN;
    if (l->operation == S_OP_UPSERT &&
        ((rc = s_end(ctx, dest, l->from ? l->from->id : "", &from)) ||
         (rc = s_end(ctx, dest, l->to ? l->to->id : "", &to))))
        return rc;
    pg_policy_decision d;
    if (pg_policy_decide_link(r->policy, dest->pd, l, from, to, r->scratch, &d))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");

    pg_policy_action action = pg_policy_transition(st.held, &d);
    if (action == PG_POLICY_PUBLISH && st.held && st.src_version >= l->version)
        return 0; /* it has this version (sent earlier in this batch, say) */
    if ((flags & S_RECHECK) && action != PG_POLICY_WITHDRAW)
        return 0;
    switch (action) {
    case PG_POLICY_PUBLISH: {
        uint64_t v = s_next_version(l->version, &st);
        pg_link_update *c = s_link_at(ctx, d.link, v);
        if (!c)
            return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
        s_rec rec = {PG_TYPE_LINK,
                     c->id,
                     c->operation,
                     v,
                     c->origin,
                     c->marking,
                     &c->base,
                     d.agreement,
                     d.redactions,
                     PG_AUDIT_DISCLOSE,
                     s_disclose_outcome(ctx, &d)};
        if ((rc = s_emit(ctx, dest, &rec)))
            return rc;
        st = (s_state){.found = 1,
                       .type = S_TYPE_LINK,
                       .held = 1,
                       .src_version = l->version,
                       .sent_version = v};
        s_set_agreement(&st, d.agreement);
        r->stats.disclosed++;
        return s_put(ctx, dest->name, l->id, &st);
    }
    case PG_POLICY_WITHDRAW:
        return s_withdraw_link(ctx, dest, l, &st, d.reason);
    case PG_POLICY_NOTHING:
        if ((flags & S_QUIET) || l->operation != S_OP_UPSERT)
            return 0;
        pg_audit_event ev;
        pg_audit_event_from_link(&ev, PG_AUDIT_WITHHOLD, l);
        return s_withhold(ctx, dest->name, &ev, d.reason);
    }
    return 0;
}

/* The held state of entity id changed for dest: re-decide its live links there. */
static int s_relink(s_ctx *ctx, const s_dest *dest, const char *id, s_links *links)
{
    pg_router *r = ctx->r;
    int rc;
    if (!links->fetched) {
        if ((rc = pg_ledger_links_from(r->ledger, ctx->txn, id, r->scratch, &links->from,
                                       &links->n_from, ctx->errstr, ctx->errstr_size)) ||
            (rc = pg_ledger_links_to(r->ledger, ctx->txn, id, r->scratch, &links->to, &links->n_to,
                                     ctx->errstr, ctx->errstr_size)))
            return rc;
        links->fetched = 1;
    }
    for (size_t i = 0; i < links->n_from; i++)
        if ((rc = s_route_link(ctx, dest, links->from[i], S_QUIET)))
            return rc;
    for (size_t i = 0; i < links->n_to; i++)
        if ((rc = s_route_link(ctx, dest, links->to[i], S_QUIET)))
            return rc;
    return 0;
}

/* ---------------------------------------------------------------- entities */

typedef struct s_shared_ud {
    s_ctx *ctx;
    const char *dest;
} s_shared_ud;

static int s_shared(void *ud, const char *id)
{
    s_shared_ud *u = ud;
    s_state st;
    char why[PG_ERRSTR_SIZE];
    s_ctx c = *u->ctx;
    c.errstr = why; /* a failed lookup drops the ref: the safe side */
    c.errstr_size = sizeof why;
    return !s_get(&c, u->dest, id, &st) && st.held;
}

/* A source DELETE (deleted, disposed of, merged away) of an entity dest holds, as the
 * ledger made it (kind, marking, origin, the deletion's message id and time), when its
 * marking, kind and MoPI group are ones dest may see, with origin.org_unit cleared when
 * dest redacts it. NULL otherwise (or out of memory): the bare DELETE of
 * pg_policy_withdrawal_entity goes, which never says more than dest knew. */
static const pg_entity_update *s_entity_delete_as_is(s_ctx *ctx, const s_dest *dest,
                                                     const pg_entity_update *e,
                                                     const char **redactions)
{
    if (!dest->pd || e->operation != S_OP_DELETE)
        return NULL;
    pg_policy_facts f;
    pg_policy_facts_of(e, &f);
    f.operation = S_OP_UPSERT;
    if (pg_policy_check_facts(ctx->r->policy, dest->pd, &f) != PG_POLICY_R_OK)
        return NULL;
    if (!e->origin || !(dest->pd->redact & (1u << PG_POLICY_FIELD_ORIGIN_ORG_UNIT)))
        return e;
    pg_entity_update *c = pg_arena_alloc(ctx->r->scratch, sizeof *c);
    pg_origin *o = pg_arena_alloc(ctx->r->scratch, sizeof *o);
    if (!c || !o)
        return NULL;
    *c = *e;
    *o = *e->origin;
    o->org_unit = (char *)protobuf_c_empty_string;
    c->origin = o;
    *redactions = pg_policy_field_name(PG_POLICY_FIELD_ORIGIN_ORG_UNIT);
    return c;
}

/* Send dest the entity withdrawal of e at version v. The state is forgotten after a
 * deletion at source (a re-creation comes at a higher version); otherwise it stays, not
 * held, with v, so that a reconcile does not publish the same version again: the
 * destination keeps the DELETE at an equal version (docs/topics.md). */
static int s_withdraw_entity(s_ctx *ctx, const s_dest *dest, const pg_entity_update *e, uint64_t v,
                             const s_state *st, pg_policy_reason reason)
{
    pg_router *r = ctx->r;
    const char *redactions = "none";
    const pg_entity_update *w = s_entity_delete_as_is(ctx, dest, e, &redactions);
    if (!w)
        w = pg_policy_withdrawal_entity(r->scratch, e, v);
    if (!w)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    s_rec rec = {PG_TYPE_ENTITY,
                 w->id,
                 w->operation,
                 v,
                 w->origin,
                 w->marking,
                 &w->base,
                 st->agreement,
                 redactions,
                 PG_AUDIT_WITHDRAW,
                 pg_policy_reason_name(reason)};
    int rc = s_emit(ctx, dest, &rec);
    if (rc)
        return rc;
    r->stats.withdrawn++;
    s_count(r, reason);
    if (e->operation != S_OP_UPSERT)
        return s_del(ctx, dest->name, e->id);
    s_state gone = {
        .found = 1, .type = S_TYPE_ENTITY, .src_version = e->version, .sent_version = v};
    s_set_agreement(&gone, st->agreement);
    return s_put(ctx, dest->name, e->id, &gone);
}

/* Send dest what it must get of entity update e (flags: S_ADD or 0). */
static int s_route_entity(s_ctx *ctx, const s_dest *dest, const pg_entity_update *e, s_links *links,
                          int flags)
{
    pg_router *r = ctx->r;
    s_state st;
    int rc = s_get(ctx, dest->name, e->id, &st);
    if (rc)
        return rc;
    if ((flags & S_ADD) && (st.held || (st.found && st.sent_version >= e->version)))
        return 0; /* it has it, or a withdrawal at this version that would win */
    s_shared_ud ud = {ctx, dest->name};
    pg_policy_decision d;
    if (pg_policy_decide_entity(r->policy, dest->pd, e, r->scratch, s_shared, &ud, &d))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");

    pg_policy_action action = pg_policy_transition(st.held, &d);
    if ((flags & S_ADD) && action != PG_POLICY_PUBLISH)
        return 0;
    switch (action) {
    case PG_POLICY_PUBLISH: {
        const pg_entity_update *c = d.entity;
        s_rec rec = {PG_TYPE_ENTITY,
                     c->id,
                     c->operation,
                     c->version,
                     c->origin,
                     c->marking,
                     &c->base,
                     d.agreement,
                     d.redactions,
                     PG_AUDIT_DISCLOSE,
                     s_disclose_outcome(ctx, &d)};
        if ((rc = s_emit(ctx, dest, &rec)))
            return rc;
        int was = st.held;
        st = (s_state){.found = 1,
                       .type = S_TYPE_ENTITY,
                       .held = 1,
                       .src_version = e->version,
                       .sent_version = e->version};
        s_set_agreement(&st, d.agreement);
        r->stats.disclosed++;
        if ((rc = s_put(ctx, dest->name, e->id, &st)))
            return rc;
        return was ? 0 : s_relink(ctx, dest, e->id, links);
    }
    case PG_POLICY_WITHDRAW:
        if ((rc = s_withdraw_entity(ctx, dest, e, e->version, &st, d.reason)))
            return rc;
        return s_relink(ctx, dest, e->id, links);
    case PG_POLICY_NOTHING:
        if (e->operation == S_OP_DELETE)
            return 0;
        pg_audit_event ev;
        pg_audit_event_from_entity(&ev, PG_AUDIT_WITHHOLD, e);
        return s_withhold(ctx, dest->name, &ev, d.reason);
    }
    return 0;
}

/* ---------------------------------------------------------------- policy version */

/* "version\0name=topic\0name=topic\0": what a policy change is detected by. */
static char *s_signature(pg_router *self, size_t *len)
{
    const pg_policy *p = self->policy;
    size_t n = strlen(pg_policy_version(p)) + 1;
    for (size_t i = 0; i < pg_policy_destination_count(p); i++) {
        const pg_policy_destination *d = pg_policy_destination_at(p, i);
        n += strlen(d->name) + 1 + strlen(d->topic) + 1;
    }
    char *s = pg_arena_alloc(self->scratch, n), *w = s;
    if (!s)
        return NULL;
    w += sprintf(w, "%s", pg_policy_version(p)) + 1;
    for (size_t i = 0; i < pg_policy_destination_count(p); i++) {
        const pg_policy_destination *d = pg_policy_destination_at(p, i);
        w += sprintf(w, "%s=%s", d->name, d->topic) + 1;
    }
    *len = n;
    return s;
}

/* The destinations of a signature, "name=topic, name=topic", for a reason. */
static void s_signature_text(const char *sig, size_t len, char *out, size_t size)
{
    const char *end = sig + len, *p = memchr(sig, 0, len);
    size_t w = 0;
    out[0] = 0;
    for (p = p ? p + 1 : end; p < end && w < size; p += strnlen(p, (size_t)(end - p)) + 1)
        w += (size_t)snprintf(out + w, size - w, "%s%.*s", w ? ", " : "",
                              (int)strnlen(p, (size_t)(end - p)), p);
}

/* The topic dest had under the stored signature sig; NULL when it had none. */
static const char *s_old_topic(const char *sig, size_t len, const char *dest)
{
    size_t dn = strlen(dest);
    const char *end = sig + len, *p = memchr(sig, 0, len);
    for (p = p ? p + 1 : end; p < end; p += strlen(p) + 1)
        if (!strncmp(p, dest, dn) && p[dn] == '=')
            return p + dn + 1;
    return NULL;
}

typedef struct s_held {
    const char *dest;
    const char *id;
    s_state st;
} s_held;

/* Every held-state entry, copied (the loop below writes to the database). */
static int s_held_all(s_ctx *ctx, s_held **out, size_t *count)
{
    pg_router *r = ctx->r;
    size_t n = 0, cap = 0;
    s_held *all = NULL;
    pg_store_cursor *cur = pg_store_cursor_open(ctx->txn, r->held, ctx->errstr, ctx->errstr_size);
    if (!cur)
        return PG_ESTORE;
    const void *k, *v;
    size_t kl, vl;
    int rc = pg_store_cursor_first(cur, &k, &kl, &v, &vl);
    for (; !rc; rc = pg_store_cursor_next(cur, &k, &kl, &v, &vl)) {
        const char *key = k, *nul = memchr(key, 0, kl);
        if (!nul)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            s_held *grown = pg_arena_alloc(r->scratch, cap * sizeof *grown);
            if (!grown) {
                rc = PG_ENOMEM;
                break;
            }
            if (n)
                memcpy(grown, all, n * sizeof *grown);
            all = grown;
        }
        s_held *h = &all[n++];
        h->dest = pg_arena_strndup(r->scratch, key, (size_t)(nul - key));
        h->id = pg_arena_strndup(r->scratch, nul + 1, kl - (size_t)(nul - key) - 1);
        s_decode_state(v, vl, &h->st);
        if (!h->dest || !h->id) {
            rc = PG_ENOMEM;
            break;
        }
    }
    pg_store_cursor_close(&cur);
    if (rc == PG_ENOMEM)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    if (rc != PG_ENOTFOUND)
        return rc;
    *out = all;
    *count = n;
    return 0;
}

/* Re-decide one held entity under the current policy, or withdraw it from a former
 * destination (dest->pd NULL). Returns 1 when withdrawn. */
static int s_reconcile_entity(s_ctx *ctx, const s_dest *dest, const s_held *h)
{
    pg_router *r = ctx->r;
    pg_entity_update *e = NULL;
    int deleted = 0;
    int rc = pg_ledger_get_entity(r->ledger, ctx->txn, h->id, r->scratch, &e, &deleted, ctx->errstr,
                                  ctx->errstr_size);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    pg_policy_reason reason = PG_POLICY_R_DELETED;
    if (!rc && !deleted && dest->pd) {
        pg_policy_decision d;
        if (pg_policy_decide_entity(r->policy, dest->pd, e, r->scratch, NULL, NULL, &d))
            return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
        if (d.verdict == PG_POLICY_SHARE)
            return 0;
        reason = d.reason;
    } else if (!dest->pd) {
        reason = PG_POLICY_R_KIND; /* the destination is gone: it receives nothing */
    }
    if (!e) { /* never in the ledger (state from elsewhere): the id is all we know */
        e = PG_PB_NEW(r->scratch, pg_entity_update, polegate__pole__v1__entity_update);
        if (!e)
            return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
        e->id = (char *)h->id;
    }
    /* No new source revision exists: the version it holds, and a DELETE wins at an
     * equal version (docs/topics.md). */
    rc = s_withdraw_entity(ctx, dest, e, h->st.src_version, &h->st, reason);
    return rc ? rc : 1;
}

static int s_reconcile_link(s_ctx *ctx, const s_dest *dest, const s_held *h)
{
    pg_router *r = ctx->r;
    s_state st;
    int rc = s_get(ctx, dest->name, h->id, &st);
    if (rc || !st.held)
        return rc;
    pg_link_update *l = NULL;
    int deleted = 0;
    rc = pg_ledger_get_link(r->ledger, ctx->txn, h->id, r->scratch, &l, &deleted, ctx->errstr,
                            ctx->errstr_size);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    if (!l) {
        l = PG_PB_NEW(r->scratch, pg_link_update, polegate__pole__v1__link_update);
        if (!l)
            return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
        l->id = (char *)h->id;
        l->operation = S_OP_DELETE;
        l->version = st.src_version;
    }
    if (!dest->pd) { /* a former destination: withdrawn on its old topic, whatever */
        rc = s_withdraw_link(ctx, dest, l, &st, PG_POLICY_R_KIND);
        return rc ? rc : 1;
    }
    size_t before = ctx->out->count;
    if (deleted)
        l->operation = S_OP_DELETE;
    if ((rc = s_route_link(ctx, dest, l, S_QUIET | S_RECHECK)))
        return rc;
    return ctx->out->count > before;
}

/* Is id an entity of cs? */
static int s_in_changeset(const pg_changeset *cs, const char *id)
{
    for (size_t i = 0; cs && i < cs->count; i++) {
        const pg_change *c = &cs->changes[i];
        if (c->type == PG_CHANGE_ENTITY && c->entity && c->entity->id && !strcmp(c->entity->id, id))
            return 1;
    }
    return 0;
}

/* Rule 5 of router.h, second half: every live entity of the ledger that a destination
 * of the policy does not hold and may now receive is published to it, through the
 * routing path of one update (s_route_entity with S_ADD): its latest record at its
 * ledger version, redacted for that destination, marked held, then its live links
 * whose other end the destination holds. The ledger's entity database is walked in key
 * order with a cursor (nothing is collected first); the scratch arena is reset per
 * entity, so memory stays that of one entity, and the batch grows by what is
 * published. The entities of skip (the message pg_router_route is about to route,
 * already in the ledger; may be NULL) are left to that routing, which would otherwise
 * send them twice. *records gets the number of records appended (entities and links).
 * Returns 0 or an error. */
static int s_publish_allowed(s_ctx *ctx, const pg_changeset *skip, size_t *records)
{
    pg_router *r = ctx->r;
    size_t ndest = pg_policy_destination_count(r->policy);
    size_t before = ctx->out->count;
    pg_store_cursor *cur =
        pg_store_cursor_open(ctx->txn, r->entities, ctx->errstr, ctx->errstr_size);
    if (!cur)
        return PG_ESTORE;
    char id[PG_STORE_MAX_KEY + 1];
    const void *k;
    size_t kl;
    int rc = pg_store_cursor_first(cur, &k, &kl, NULL, NULL);
    for (; !rc; rc = pg_store_cursor_next(cur, &k, &kl, NULL, NULL)) {
        /* The key points into the map: copied before anything is written. */
        if (kl == 0 || kl > PG_STORE_MAX_KEY || memchr(k, 0, kl))
            continue;
        memcpy(id, k, kl);
        id[kl] = 0;
        if (s_in_changeset(skip, id))
            continue;
        pg_arena_reset(r->scratch);
        pg_entity_update *e = NULL;
        int deleted = 0;
        rc = pg_ledger_get_entity(r->ledger, ctx->txn, id, r->scratch, &e, &deleted, ctx->errstr,
                                  ctx->errstr_size);
        if (rc == PG_ENOTFOUND)
            continue;
        if (rc)
            break;
        if (deleted || !e->id || !*e->id)
            continue;
        s_links links = {0};
        for (size_t j = 0; !rc && j < ndest; j++) {
            const pg_policy_destination *pd = pg_policy_destination_at(r->policy, j);
            s_dest dest = {pd->name, pd->topic, pd};
            rc = s_route_entity(ctx, &dest, e, &links, S_ADD);
        }
        if (rc)
            break;
    }
    pg_store_cursor_close(&cur);
    if (rc != PG_ENOTFOUND)
        return rc;
    *records = ctx->out->count - before;
    return 0;
}

/* Records one destination holds before a policy change, and how many it withdraws. */
typedef struct s_tally {
    const char *dest;
    size_t held, withdrawn;
} s_tally;

static s_tally *s_tally_of(s_tally *t, size_t *n, const char *dest)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(t[i].dest, dest))
            return &t[i];
    t[*n] = (s_tally){.dest = dest};
    return &t[(*n)++];
}

/* A policy change that withdraws more than withdraw_limit percent of what a
 * destination holds (a wrong file, a slip in a rule) waits for the operator, unless
 * this very policy version was confirmed (pg_router_confirm); the confirmation is
 * used up. PG_ECONFIRM with the figures and the command, or 0. */
static int s_withdraw_check(s_ctx *ctx, const s_tally *t, size_t n)
{
    pg_router *r = ctx->r;
    const s_tally *over = NULL;
    for (size_t i = 0; i < n && !over; i++)
        if (t[i].withdrawn && t[i].withdrawn * 100 > t[i].held * (size_t)r->withdraw_limit)
            over = &t[i];
    if (!over)
        return 0;
    const char *version = pg_policy_version(r->policy);
    const void *val;
    size_t vlen;
    int rc = pg_store_get(ctx->txn, r->meta, S_META_CONFIRM, strlen(S_META_CONFIRM), &val, &vlen,
                          ctx->errstr, ctx->errstr_size);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    if (!rc && vlen == strlen(version) && !memcmp(val, version, vlen)) {
        pg_log(PG_LOG_WARN,
               "router: policy %s withdraws %zu of the %zu records destination %s holds, as "
               "the operator confirmed",
               version, over->withdrawn, over->held, over->dest);
        return pg_store_del(ctx->txn, r->meta, S_META_CONFIRM, strlen(S_META_CONFIRM), NULL, 0,
                            ctx->errstr, ctx->errstr_size);
    }
    return pg_errf(PG_ECONFIRM, ctx->errstr, ctx->errstr_size,
                   "policy %s would withdraw %zu of the %zu records destination %s holds, more "
                   "than store.max_withdraw_percent (%d%%): nothing is withdrawn until the "
                   "operator confirms it with `polegate store confirm %s %s`",
                   version, over->withdrawn, over->held, over->dest, r->withdraw_limit,
                   pg_store_dir(r->store), version);
}

/* Rule 5 of router.h: inside ctx->txn; routing is the changeset pg_router_route is
 * about to route (NULL from pg_router_reconcile). Returns the number of withdrawals. */
static int s_reconcile(s_ctx *ctx, const pg_changeset *routing)
{
    pg_router *r = ctx->r;
    size_t sig_len;
    char *sig = s_signature(r, &sig_len);
    if (!sig)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    const void *val;
    size_t vlen;
    int rc = pg_store_get(ctx->txn, r->meta, S_META_POLICY, strlen(S_META_POLICY), &val, &vlen,
                          ctx->errstr, ctx->errstr_size);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    if (!rc && vlen == sig_len && !memcmp(val, sig, sig_len))
        return 0;
    /* The policy's version is what says it changed: other destinations or topics under
     * the same version are a configuration mistake (or damage), not a withdrawal. */
    if (!rc && strnlen(val, vlen) < vlen && !strcmp(val, pg_policy_version(r->policy))) {
        char was[PG_ERRSTR_SIZE / 2], now[PG_ERRSTR_SIZE / 2];
        s_signature_text(val, vlen, was, sizeof was);
        s_signature_text(sig, sig_len, now, sizeof now);
        return pg_errf(PG_ECONFIG, ctx->errstr, ctx->errstr_size,
                       "policy.version %s did not change but its destinations did (stored: %s; "
                       "now: %s): give a changed policy a new policy.version",
                       pg_policy_version(r->policy), was, now);
    }
    if (!pg_store_txn_writable(ctx->txn))
        return pg_errf(PG_EUSAGE, ctx->errstr, ctx->errstr_size,
                       "router: the policy changed: routing needs a write transaction");
    char *old = NULL;
    size_t old_len = 0;
    if (!rc) {
        old = pg_arena_alloc(r->scratch, vlen + 1);
        if (!old)
            return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
        memcpy(old, val, vlen);
        old[vlen] = 0;
        old_len = vlen;
    }

    s_held *all = NULL;
    size_t n = 0;
    if ((rc = s_held_all(ctx, &all, &n)))
        return rc;
    int withdrawn = 0;
    /* Held and withdrawn per destination, for the limit on unconfirmed withdrawals. */
    s_tally *tally = pg_arena_alloc(r->scratch, (n ? n : 1) * sizeof *tally);
    size_t ntally = 0;
    if (!tally)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (all[i].st.held)
            s_tally_of(tally, &ntally, all[i].dest)->held++;
    /* Entities first: the links pass then sees their ends as they are now. */
    for (int pass = S_TYPE_ENTITY; pass <= S_TYPE_LINK; pass++) {
        for (size_t i = 0; i < n; i++) {
            s_held *h = &all[i];
            if (h->st.type != pass || !h->st.held)
                continue;
            const pg_policy_destination *pd = pg_policy_destination_find(r->policy, h->dest);
            const char *old_topic = old ? s_old_topic(old, old_len, h->dest) : NULL;
            s_dest dest = {h->dest, pd ? pd->topic : old_topic, pd};
            if (pd && old_topic && strcmp(old_topic, pd->topic)) {
                /* Its topic moved: what it held is on the old one. */
                dest.topic = old_topic;
                dest.pd = NULL;
            }
            if (!dest.topic) { /* a former destination whose topic is not known */
                if ((rc = s_del(ctx, h->dest, h->id)))
                    return rc;
                continue;
            }
            rc = pass == S_TYPE_ENTITY ? s_reconcile_entity(ctx, &dest, h)
                                       : s_reconcile_link(ctx, &dest, h);
            if (rc < 0)
                return rc;
            withdrawn += rc;
            s_tally_of(tally, &ntally, h->dest)->withdrawn += (size_t)rc;
            if (!dest.pd && (rc = s_del(ctx, h->dest, h->id)))
                return rc;
        }
    }
    /* Links kept as not held by a former destination only carry versions for a topic
     * nothing will be sent to again. */
    for (size_t i = 0; i < n; i++) {
        const pg_policy_destination *pd = pg_policy_destination_find(r->policy, all[i].dest);
        const char *old_topic = old ? s_old_topic(old, old_len, all[i].dest) : NULL;
        if ((!pd || (old_topic && strcmp(old_topic, pd->topic))) &&
            (rc = s_del(ctx, all[i].dest, all[i].id)))
            return rc;
    }
    if ((rc = s_withdraw_check(ctx, tally, ntally)))
        return rc;
    if ((rc = pg_store_put(ctx->txn, r->meta, S_META_POLICY, strlen(S_META_POLICY), sig, sig_len,
                           ctx->errstr, ctx->errstr_size)))
        return rc;
    if (!old) /* the first routing: nothing was decided under another policy */
        return withdrawn;
    /* The old version is the signature's first string; the publication pass below
     * resets the scratch arena that holds it. */
    char old_version[80];
    snprintf(old_version, sizeof old_version, "%s", old);
    size_t published = 0;
    if ((rc = s_publish_allowed(ctx, routing, &published)))
        return rc;
    r->stats.reconciles++;
    r->stats.reconcile_published += published;
    pg_log(PG_LOG_INFO,
           "router: policy changed from %s to %s: %d records withdrawn from their "
           "destinations, %zu records newly allowed published to them",
           old_version, pg_policy_version(r->policy), withdrawn, published);
    return withdrawn;
}

/* ---------------------------------------------------------------- public */

pg_router *pg_router_new(const pg_policy *policy, pg_store *store, const char *force, char *errstr,
                         size_t errstr_size)
{
    pg_router *r = calloc(1, sizeof *r);
    if (!r) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->policy = policy;
    r->store = store;
    r->withdraw_limit = 100;
    r->force = strdup(force ? force : pg_policy_force(policy));
    r->scratch = pg_arena_new(0);
    if (!r->force || !r->scratch) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    r->ledger = pg_ledger_new(store, errstr, errstr_size);
    if (!r->ledger)
        goto err;
    pg_store_txn *txn = pg_store_begin(store, 1, errstr, errstr_size);
    if (!txn)
        goto err;
    if (pg_store_db_open(txn, S_DB_HELD, 0, &r->held, errstr, errstr_size) ||
        pg_store_db_open(txn, S_DB_META, 0, &r->meta, errstr, errstr_size) ||
        pg_store_db_open(txn, S_DB_LEDGER_ENTITY, 0, &r->entities, errstr, errstr_size)) {
        pg_store_abort(&txn);
        goto err;
    }
    if (pg_store_commit(&txn, errstr, errstr_size))
        goto err;
    return r;
err:
    pg_router_destroy(&r);
    return NULL;
}

void pg_router_destroy(pg_router **p)
{
    if (!p || !*p)
        return;
    pg_router *r = *p;
    pg_ledger_destroy(&r->ledger);
    pg_arena_destroy(&r->scratch);
    free(r->force);
    free(r);
    *p = NULL;
}

void pg_router_set_policy(pg_router *self, const pg_policy *policy)
{
    self->policy = policy;
}

void pg_router_set_withdraw_limit(pg_router *r, int percent)
{
    r->withdraw_limit = percent < 0 ? 0 : percent > 100 ? 100 : percent;
}

int pg_router_confirm(pg_store_txn *txn, const char *version, char *errstr, size_t errstr_size)
{
    pg_store_db meta;
    int rc = pg_store_db_open(txn, S_DB_META, 0, &meta, errstr, errstr_size);
    if (!rc)
        rc = pg_store_put(txn, meta, S_META_CONFIRM, strlen(S_META_CONFIRM), version,
                          strlen(version), errstr, errstr_size);
    return rc;
}

/* Run fn in a child of txn, leaving txn and out as they were when it fails. */
static int s_atomic(pg_router *self, pg_store_txn *txn, pg_outbatch *out, char *errstr,
                    size_t errstr_size, int (*fn)(s_ctx *ctx, const void *arg), const void *arg)
{
    if (!pg_store_txn_writable(txn))
        return pg_errf(PG_EUSAGE, errstr, errstr_size, "router: needs a write transaction");
    size_t count = out->count, audit_count = out->audit_count;
    pg_router_stats stats = self->stats;
    pg_store_txn *child = pg_store_begin_child(txn, errstr, errstr_size);
    if (!child)
        return PG_ESTORE;
    pg_arena_reset(self->scratch);
    s_ctx ctx = {self, child, out, errstr, errstr_size};
    int rc = fn(&ctx, arg);
    if (rc >= 0) {
        int crc = pg_store_commit(&child, errstr, errstr_size);
        if (crc)
            rc = crc;
    } else {
        pg_store_abort(&child);
    }
    if (rc < 0) {
        out->count = count;
        out->audit_count = audit_count;
        self->stats = stats;
    }
    pg_arena_reset(self->scratch);
    return rc;
}

static int s_route_all(s_ctx *ctx, const void *arg)
{
    const pg_changeset *cs = arg;
    pg_router *r = ctx->r;
    int rc = s_reconcile(ctx, cs);
    if (rc < 0)
        return rc;
    size_t ndest = pg_policy_destination_count(r->policy);
    for (size_t i = 0; i < cs->count; i++) {
        const pg_change *c = &cs->changes[i];
        const char *id = c->type == PG_CHANGE_ENTITY && c->entity ? c->entity->id
                         : c->type == PG_CHANGE_LINK && c->link   ? c->link->id
                                                                  : NULL;
        if (!id || !*id)
            return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size,
                           "changes[%zu]: an update without an id", i);
        if (c->type == PG_CHANGE_LINK && (!c->link->from || !c->link->to))
            return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size,
                           "changes[%zu].link: an end is missing", i);
    }
    /* Entities first: a link of this message then finds its ends as they now are. */
    for (size_t i = 0; i < cs->count; i++) {
        const pg_change *c = &cs->changes[i];
        if (c->type != PG_CHANGE_ENTITY)
            continue;
        const pg_entity_update *e = c->entity;
        pg_audit_event ev;
        int del = e->operation == S_OP_DELETE;
        pg_audit_event_from_entity(&ev, del ? PG_AUDIT_ERASE : PG_AUDIT_COLLECT, e);
        if ((rc = s_audit(ctx, &ev, NULL, del ? "deleted" : "ok")))
            return rc;
        s_links links = {0};
        for (size_t j = 0; j < ndest; j++) {
            const pg_policy_destination *pd = pg_policy_destination_at(r->policy, j);
            s_dest dest = {pd->name, pd->topic, pd};
            if ((rc = s_route_entity(ctx, &dest, e, &links, 0)))
                return rc;
        }
    }
    for (size_t i = 0; i < cs->count; i++) {
        const pg_change *c = &cs->changes[i];
        if (c->type != PG_CHANGE_LINK)
            continue;
        for (size_t j = 0; j < ndest; j++) {
            const pg_policy_destination *pd = pg_policy_destination_at(r->policy, j);
            s_dest dest = {pd->name, pd->topic, pd};
            if ((rc = s_route_link(ctx, &dest, c->link, 0)))
                return rc;
        }
    }
    r->stats.messages++;
    return 0;
}

int pg_router_route(pg_router *self, pg_store_txn *txn, const pg_changeset *published,
                    pg_outbatch *out, char *errstr, size_t errstr_size)
{
    int rc = s_atomic(self, txn, out, errstr, errstr_size, s_route_all, published);
    return rc < 0 ? rc : 0;
}

static int s_reconcile_fn(s_ctx *ctx, const void *arg)
{
    (void)arg;
    return s_reconcile(ctx, NULL);
}

int pg_router_reconcile(pg_router *self, pg_store_txn *txn, pg_outbatch *out, char *errstr,
                        size_t errstr_size)
{
    return s_atomic(self, txn, out, errstr, errstr_size, s_reconcile_fn, NULL);
}

int pg_router_held(pg_router *self, pg_store_txn *txn, const char *destination, const char *id)
{
    char why[PG_ERRSTR_SIZE];
    s_ctx ctx = {self, txn, NULL, why, sizeof why};
    s_state st;
    int rc = s_get(&ctx, destination, id, &st);
    return rc ? rc : st.held;
}

void pg_router_get_stats(const pg_router *self, pg_router_stats *out)
{
    *out = self->stats;
}
