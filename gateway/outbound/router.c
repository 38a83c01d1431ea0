/* pg_router: policy per destination over the ledger's updates, held state in the store. */
#include "router_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "log.h"
#include "polegate/error.h"
#include "polegate/wire.h"

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

void pg_router__decode_state(const void *val, size_t vlen, pg_router_state *st)
{
    const unsigned char *v = val;
    memset(st, 0, sizeof *st);
    if (vlen < PG_ROUTER_VAL_FIXED)
        return;
    st->found = 1;
    st->type = v[0];
    st->held = v[1];
    memcpy(&st->src_version, v + 2, 8);
    memcpy(&st->sent_version, v + 10, 8);
    const unsigned char *ag = v + PG_ROUTER_VAL_FIXED,
                        *nul = memchr(ag, 0, vlen - PG_ROUTER_VAL_FIXED);
    size_t an = vlen - PG_ROUTER_VAL_FIXED;
    st->redacted = PG_ROUTER_REDACTED_UNKNOWN;
    if (nul && v + vlen - (nul + 1) == 4) {
        memcpy(&st->redacted, nul + 1, 4);
        an = (size_t)(nul - ag);
    }
    if (an > PG_ROUTER_AGREEMENT_MAX)
        an = PG_ROUTER_AGREEMENT_MAX;
    memcpy(st->agreement, ag, an);
    st->agreement[an] = 0;
}

struct pg_router_cached {
    size_t klen;
    char key[PG_STORE_MAX_KEY];
    pg_router_state st;
};

/* The cached state of key, or NULL. */
static pg_router_cached *s_cached(pg_router *r, const char *key, size_t klen)
{
    if (!r->cache_on)
        return NULL;
    for (size_t i = 0; i < r->cache_n; i++)
        if (r->cache[i].klen == klen && !memcmp(r->cache[i].key, key, klen))
            return &r->cache[i];
    return NULL;
}

/* Remember st as the state of key (when there is room). */
static void s_cache(pg_router *r, const char *key, size_t klen, const pg_router_state *st)
{
    pg_router_cached *c = s_cached(r, key, klen);
    if (!c && r->cache_on && r->cache_n < PG_ROUTER_CACHE) {
        c = &r->cache[r->cache_n++];
        c->klen = klen;
        memcpy(c->key, key, klen);
    }
    if (c)
        c->st = *st;
}

int pg_router__get(pg_router_ctx *ctx, const char *dest, const char *id, pg_router_state *st)
{
    char key[PG_STORE_MAX_KEY];
    size_t klen;
    memset(st, 0, sizeof *st);
    if (s_key(key, sizeof key, dest, id, &klen))
        return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size, "id: longer than 64 bytes");
    const pg_router_cached *c = s_cached(ctx->r, key, klen);
    if (c) {
        *st = c->st;
        return 0;
    }
    const void *val;
    size_t vlen;
    int rc =
        pg_store_get(ctx->txn, ctx->r->held, key, klen, &val, &vlen, ctx->errstr, ctx->errstr_size);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    if (!rc)
        pg_router__decode_state(val, vlen, st);
    s_cache(ctx->r, key, klen, st);
    return 0;
}

static int s_put(pg_router_ctx *ctx, const char *dest, const char *id, const pg_router_state *st)
{
    char key[PG_STORE_MAX_KEY];
    unsigned char val[PG_ROUTER_VAL_FIXED + PG_ROUTER_AGREEMENT_MAX + 5];
    size_t klen;
    if (s_key(key, sizeof key, dest, id, &klen))
        return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size, "id: longer than 64 bytes");
    size_t an = strlen(st->agreement), at = PG_ROUTER_VAL_FIXED;
    val[0] = (unsigned char)st->type;
    val[1] = (unsigned char)st->held;
    memcpy(val + 2, &st->src_version, 8);
    memcpy(val + 10, &st->sent_version, 8);
    memcpy(val + at, st->agreement, an);
    at += an;
    val[at++] = 0; /* the release before reads the agreement up to here */
    memcpy(val + at, &st->redacted, 4);
    at += 4;
    int rc =
        pg_store_put(ctx->txn, ctx->r->held, key, klen, val, at, ctx->errstr, ctx->errstr_size);
    if (!rc) { /* as a get would read it back */
        pg_router_state back;
        pg_router__decode_state(val, at, &back);
        s_cache(ctx->r, key, klen, &back);
    }
    return rc;
}

int pg_router__move(pg_router_ctx *ctx, const char *from, const char *to, const char *id,
                    unsigned flags)
{
    pg_router_state st, there;
    int rc = pg_router__get(ctx, from, id, &st);
    if (rc || !st.found)
        return rc;
    if ((rc = pg_router__get(ctx, to, id, &there)))
        return rc;
    if (!(flags & PG_ROUTER_MOVE_HELD))
        st.held = 0;
    if (((flags & PG_ROUTER_MOVE_REPLACE) || !there.found) && (rc = s_put(ctx, to, id, &st)))
        return rc;
    return pg_router__del(ctx, from, id);
}

int pg_router__del(pg_router_ctx *ctx, const char *dest, const char *id)
{
    char key[PG_STORE_MAX_KEY];
    size_t klen;
    if (s_key(key, sizeof key, dest, id, &klen))
        return 0;
    int rc =
        pg_store_del(ctx->txn, ctx->r->held, key, klen, NULL, 0, ctx->errstr, ctx->errstr_size);
    if (!rc || rc == PG_ENOTFOUND)
        s_cache(ctx->r, key, klen, &(pg_router_state){0});
    return rc == PG_ENOTFOUND ? 0 : rc;
}

static void s_set_agreement(pg_router_state *st, const char *agreement)
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

static int s_headers(pg_router_ctx *ctx, pg_outrec *rec, const s_rec *r)
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
static int s_emit(pg_router_ctx *ctx, const pg_router_dest *dest, const s_rec *r)
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
    if (r->operation != PG_ROUTER_OP_DELETE)
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

int pg_router__audit(pg_router_ctx *ctx, pg_audit_event *ev, const char *dest, const char *outcome)
{
    ev->destination = dest;
    ev->policy_version = pg_policy_version(ctx->r->policy);
    ev->outcome = outcome;
    if (pg_outbatch_audit_add(ctx->out, ev))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    return 0;
}

static const char *s_disclose_outcome(pg_router_ctx *ctx, const pg_policy_decision *d)
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
static int s_withhold(pg_router_ctx *ctx, const char *dest, pg_audit_event *ev,
                      pg_policy_reason reason)
{
    ctx->r->stats.withheld++;
    s_count(ctx->r, reason);
    return pg_router__audit(ctx, ev, dest, pg_policy_reason_name(reason));
}

/* ---------------------------------------------------------------- links */

/* What dest knows of entity id: held, known to the ledger but not held, or unknown. */
static int s_end(pg_router_ctx *ctx, const pg_router_dest *dest, const char *id, pg_policy_end *end)
{
    pg_router_state st;
    int rc = pg_router__get(ctx, dest->name, id, &st);
    if (rc)
        return rc;
    if (st.held) {
        *end = PG_POLICY_END_SHARED;
        return 0;
    }
    rc = pg_ledger_entity_known(ctx->r->ledger, ctx->txn, id, ctx->errstr, ctx->errstr_size);
    if (rc < 0)
        return rc;
    *end = rc ? PG_POLICY_END_WITHHELD : PG_POLICY_END_UNKNOWN;
    return 0;
}

/* The copy of l to send with version v. */
static pg_link_update *s_link_at(pg_router_ctx *ctx, const pg_link_update *l, uint64_t v)
{
    pg_link_update *c = pg_arena_alloc(ctx->r->scratch, sizeof *c);
    if (c) {
        *c = *l;
        c->version = v;
    }
    return c;
}

static uint64_t s_next_version(uint64_t src, const pg_router_state *st)
{
    return st->found && st->sent_version >= src ? st->sent_version + 1 : src;
}

/* A source DELETE of a link dest holds, as the ledger made it (ends, role, validity,
 * marking, and the deletion's origin), when its marking is one dest may see: *out is
 * a copy at version v with dest's redactions. Otherwise *out stays NULL and the bare
 * DELETE of pg_policy_withdrawal_link goes: it never says more than dest knew. */
static int s_link_delete_as_is(pg_router_ctx *ctx, const pg_router_dest *dest,
                               const pg_link_update *l, uint64_t v, pg_link_update **out,
                               const char **redactions)
{
    if (!dest->pd || l->operation != PG_ROUTER_OP_DELETE)
        return 0;
    pg_link_update up = *l;
    up.operation = PG_ROUTER_OP_UPSERT;
    pg_policy_decision d;
    if (pg_policy_decide_link(ctx->r->policy, dest->pd, &up, PG_POLICY_END_SHARED,
                              PG_POLICY_END_SHARED, ctx->r->scratch, &d))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    if (d.verdict != PG_POLICY_SHARE)
        return 0;
    if (!(*out = s_link_at(ctx, d.link, v)))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    (*out)->operation = PG_ROUTER_OP_DELETE;
    *redactions = d.redactions;
    return 0;
}

/* Send dest the link withdrawal of l, past the last version it was sent. The state
 * stays (not held) so that the link's versions on this topic keep going up if it is
 * published again. */
int pg_router__withdraw_link(pg_router_ctx *ctx, const pg_router_dest *dest,
                             const pg_link_update *l, pg_router_state *st, pg_policy_reason reason)
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

/* Send dest what it must get of link l (the latest state of the link). */
int pg_router__route_link(pg_router_ctx *ctx, const pg_router_dest *dest, const pg_link_update *l,
                          int flags)
{
    pg_router *r = ctx->r;
    pg_router_state st;
    int rc = pg_router__get(ctx, dest->name, l->id, &st);
    if (rc)
        return rc;
    if (l->operation == PG_ROUTER_OP_DELETE && !st.held)
        return 0; /* it never had it, or it was withdrawn already */

    pg_policy_end from = PG_POLICY_END_UNKNOWN, to = PG_POLICY_END_UNKNOWN;
    if (l->operation == PG_ROUTER_OP_UPSERT &&
        ((rc = s_end(ctx, dest, l->from ? l->from->id : "", &from)) ||
         (rc = s_end(ctx, dest, l->to ? l->to->id : "", &to))))
        return rc;
    pg_policy_decision d;
    if (pg_policy_decide_link(r->policy, dest->pd, l, from, to, r->scratch, &d))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");

    pg_policy_action action = pg_policy_transition(st.held, &d);
    /* A policy change that makes dest redact a field the link it holds was sent with
     * (origin.org_unit, the one a link has): sent again, redacted, at the next version
     * on its topic (link versions are the gateway's). */
    int redo = (flags & PG_ROUTER_RECHECK) && st.held && d.verdict == PG_POLICY_SHARE &&
               st.redacted != PG_ROUTER_REDACTED_UNKNOWN && (d.redacted & ~st.redacted) &&
               d.link != l && l->origin && l->origin->org_unit && *l->origin->org_unit;
    if (redo)
        action = PG_POLICY_PUBLISH;
    else if (action == PG_POLICY_PUBLISH && st.held && st.src_version >= l->version)
        return 0; /* it has this version (sent earlier in this batch, say) */
    if ((flags & PG_ROUTER_RECHECK) && action != PG_POLICY_WITHDRAW && !redo)
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
        st = (pg_router_state){.found = 1,
                               .type = PG_ROUTER_TYPE_LINK,
                               .held = 1,
                               .src_version = l->version,
                               .sent_version = v,
                               .redacted = d.redacted};
        s_set_agreement(&st, d.agreement);
        r->stats.disclosed++;
        return s_put(ctx, dest->name, l->id, &st);
    }
    case PG_POLICY_WITHDRAW:
        return pg_router__withdraw_link(ctx, dest, l, &st, d.reason);
    case PG_POLICY_NOTHING:
        if ((flags & PG_ROUTER_QUIET) || l->operation != PG_ROUTER_OP_UPSERT)
            return 0;
        pg_audit_event ev;
        pg_audit_event_from_link(&ev, PG_AUDIT_WITHHOLD, l);
        return s_withhold(ctx, dest->name, &ev, d.reason);
    }
    return 0;
}

/* 1 when l is among the updates links->later routes after the entities. */
static int s_routed_later(const pg_router_links *links, const pg_link_update *l)
{
    const pg_changeset *cs = links->later;
    for (size_t i = 0; cs && i < cs->count; i++)
        if (cs->changes[i].type == PG_CHANGE_LINK && !strcmp(cs->changes[i].link->id, l->id))
            return 1;
    return 0;
}

/* The held state of entity id changed for dest: re-decide its live links there. */
static int s_relink(pg_router_ctx *ctx, const pg_router_dest *dest, const char *id,
                    pg_router_links *links)
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
        if (!s_routed_later(links, links->from[i]) &&
            (rc = pg_router__route_link(ctx, dest, links->from[i], PG_ROUTER_QUIET)))
            return rc;
    for (size_t i = 0; i < links->n_to; i++)
        if (!s_routed_later(links, links->to[i]) &&
            (rc = pg_router__route_link(ctx, dest, links->to[i], PG_ROUTER_QUIET)))
            return rc;
    return 0;
}

/* ---------------------------------------------------------------- entities */

typedef struct s_shared_ud {
    pg_router_ctx *ctx;
    const char *dest;
} s_shared_ud;

static int s_shared(void *ud, const char *id)
{
    s_shared_ud *u = ud;
    pg_router_state st;
    char why[PG_ERRSTR_SIZE];
    pg_router_ctx c = *u->ctx;
    c.errstr = why; /* a failed lookup drops the ref: the safe side */
    c.errstr_size = sizeof why;
    return !pg_router__get(&c, u->dest, id, &st) && st.held;
}

/* A source DELETE (deleted, disposed of, merged away) of an entity dest holds, as the
 * ledger made it (kind, marking, origin, the deletion's message id and time), when its
 * marking, kind and MoPI group are ones dest may see, with origin.org_unit cleared when
 * dest redacts it. NULL otherwise (or out of memory): the bare DELETE of
 * pg_policy_withdrawal_entity goes, which never says more than dest knew. */
static const pg_entity_update *s_entity_delete_as_is(pg_router_ctx *ctx, const pg_router_dest *dest,
                                                     const pg_entity_update *e,
                                                     const char **redactions)
{
    if (!dest->pd || e->operation != PG_ROUTER_OP_DELETE)
        return NULL;
    pg_policy_facts f;
    pg_policy_facts_of(e, &f);
    f.operation = PG_ROUTER_OP_UPSERT;
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
int pg_router__withdraw_entity(pg_router_ctx *ctx, const pg_router_dest *dest,
                               const pg_entity_update *e, uint64_t v, const pg_router_state *st,
                               pg_policy_reason reason)
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
    if (e->operation != PG_ROUTER_OP_UPSERT)
        return pg_router__del(ctx, dest->name, e->id);
    pg_router_state gone = {
        .found = 1, .type = PG_ROUTER_TYPE_ENTITY, .src_version = e->version, .sent_version = v};
    s_set_agreement(&gone, st->agreement);
    return s_put(ctx, dest->name, e->id, &gone);
}

/* The value of header name of rec, or NULL. */
static const char *s_header(const pg_outrec *rec, const char *name)
{
    for (size_t i = 0; i < rec->header_count; i++)
        if (!strcmp(rec->headers[i].name, name))
            return rec->headers[i].value;
    return NULL;
}

/* The withdrawal rec (spooled under an earlier policy) as the router now forms it, for
 * the destination that now writes its topic (none: the bare form). */
static int s_reform(pg_router_ctx *ctx, const pg_outrec *rec, int link)
{
    pg_router *r = ctx->r;
    const pg_policy_destination *pd = NULL;
    for (size_t i = 0; !pd && i < pg_policy_destination_count(r->policy); i++)
        if (!strcmp(pg_policy_destination_at(r->policy, i)->topic, rec->topic))
            pd = pg_policy_destination_at(r->policy, i);
    pg_router_dest dest = {pd ? pd->name : rec->destination, rec->topic, pd};
    const char *redactions = "none";
    s_rec out = {link ? PG_TYPE_LINK : PG_TYPE_ENTITY,
                 NULL,
                 PG_ROUTER_OP_DELETE,
                 rec->version,
                 NULL,
                 NULL,
                 NULL,
                 rec->agreement,
                 NULL,
                 PG_AUDIT_WITHDRAW,
                 rec->outcome};
    ProtobufCMessage *m =
        protobuf_c_message_unpack(link ? &polegate__pole__v1__link_update__descriptor
                                       : &polegate__pole__v1__entity_update__descriptor,
                                  NULL, rec->value_len, rec->value);
    int rc = 0;
    if (!m) {
        rc = pg_errf(PG_EINTERNAL, ctx->errstr, ctx->errstr_size,
                     "spool: the withdrawal of %s to %s does not unpack", rec->key, rec->topic);
    } else if (link) {
        pg_link_update *l = (pg_link_update *)m, *w = NULL;
        if (l->operation == PG_ROUTER_OP_DELETE &&
            !(rc = s_link_delete_as_is(ctx, &dest, l, rec->version, &w, &redactions)) && !w &&
            !(w = pg_policy_withdrawal_link(r->scratch, l, rec->version)))
            rc = pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
        if (w)
            out.id = w->id, out.origin = w->origin, out.marking = w->marking, out.msg = &w->base;
    } else {
        const pg_entity_update *e = (pg_entity_update *)m, *w = NULL;
        if (e->operation == PG_ROUTER_OP_DELETE &&
            !(w = s_entity_delete_as_is(ctx, &dest, e, &redactions)) &&
            !(w = pg_policy_withdrawal_entity(r->scratch, e, rec->version)))
            rc = pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
        if (w)
            out.id = w->id, out.origin = w->origin, out.marking = w->marking, out.msg = &w->base;
    }
    out.redactions = redactions;
    if (!rc && out.msg)
        rc = s_emit(ctx, &dest, &out);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int pg_router_reform_withdrawal(pg_router *self, const pg_outrec *rec, pg_outbatch *out,
                                char *errstr, size_t errstr_size)
{
    const char *type = s_header(rec, PG_HDR_TYPE);
    if (rec->audit_action != PG_AUDIT_WITHDRAW || !rec->value || !type ||
        (strcmp(type, PG_TYPE_ENTITY) && strcmp(type, PG_TYPE_LINK)) ||
        (rec->policy_version && !strcmp(rec->policy_version, pg_policy_version(self->policy))))
        return 0;
    size_t count = out->count;
    pg_router_ctx ctx = {self, NULL, out, errstr, errstr_size};
    pg_arena_reset(self->scratch);
    int rc = s_reform(&ctx, rec, !strcmp(type, PG_TYPE_LINK));
    pg_arena_reset(self->scratch);
    if (rc || out->count == count)
        return rc < 0 ? rc : 0;
    /* The same value (so the same marking): it stays as it was spooled, headers and
     * all. A value that only no longer needs a redaction it had (an emptied
     * origin.org_unit) is the same value: its pg-redactions still says what it lacks. */
    const pg_outrec *now = &out->recs[count];
    int same = now->value_len == rec->value_len && !memcmp(now->value, rec->value, rec->value_len);
    if (!same)
        return 1;
    out->count = count;
    return 0;
}

/* Send dest what it must get of entity update e (flags: PG_ROUTER_ADD or 0). */
int pg_router__route_entity(pg_router_ctx *ctx, const pg_router_dest *dest,
                            const pg_entity_update *e, pg_router_links *links, int flags)
{
    pg_router *r = ctx->r;
    pg_router_state st;
    int rc = pg_router__get(ctx, dest->name, e->id, &st);
    if (rc)
        return rc;
    if ((flags & PG_ROUTER_ADD) && (st.held || (st.found && st.sent_version >= e->version)))
        return 0; /* it has it, or a withdrawal at this version that would win */
    s_shared_ud ud = {ctx, dest->name};
    pg_policy_decision d;
    if (pg_policy_decide_entity(r->policy, dest->pd, e, r->scratch, s_shared, &ud, &d))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");

    pg_policy_action action = pg_policy_transition(st.held, &d);
    if ((flags & PG_ROUTER_ADD) && action != PG_POLICY_PUBLISH)
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
        st = (pg_router_state){.found = 1,
                               .type = PG_ROUTER_TYPE_ENTITY,
                               .held = 1,
                               .src_version = e->version,
                               .sent_version = e->version,
                               .redacted = d.redacted};
        s_set_agreement(&st, d.agreement);
        r->stats.disclosed++;
        if ((rc = s_put(ctx, dest->name, e->id, &st)))
            return rc;
        return was ? 0 : s_relink(ctx, dest, e->id, links);
    }
    case PG_POLICY_WITHDRAW:
        if ((rc = pg_router__withdraw_entity(ctx, dest, e, e->version, &st, d.reason)))
            return rc;
        return s_relink(ctx, dest, e->id, links);
    case PG_POLICY_NOTHING:
        if (e->operation == PG_ROUTER_OP_DELETE)
            return 0;
        pg_audit_event ev;
        pg_audit_event_from_entity(&ev, PG_AUDIT_WITHHOLD, e);
        return s_withhold(ctx, dest->name, &ev, d.reason);
    }
    return 0;
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
    r->cache = malloc(PG_ROUTER_CACHE * sizeof *r->cache);
    if (!r->force || !r->scratch || !r->cache) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    r->ledger = pg_ledger_new(store, errstr, errstr_size);
    if (!r->ledger)
        goto err;
    pg_store_txn *txn = pg_store_begin(store, 1, errstr, errstr_size);
    if (!txn)
        goto err;
    if (pg_store_db_open(txn, PG_ROUTER_DB_HELD, 0, &r->held, errstr, errstr_size) ||
        pg_store_db_open(txn, PG_ROUTER_DB_META, 0, &r->meta, errstr, errstr_size) ||
        pg_store_db_open(txn, PG_ROUTER_DB_LEDGER_ENTITY, 0, &r->entities, errstr, errstr_size)) {
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
    free(r->cache);
    free(r->force);
    free(r);
    *p = NULL;
}

void pg_router_set_policy(pg_router *self, const pg_policy *policy)
{
    self->policy = policy;
}

const pg_policy *pg_router_policy(const pg_router *self)
{
    return self->policy;
}

void pg_router_set_withdraw_limit(pg_router *r, int percent)
{
    r->withdraw_limit = percent < 0 ? 0 : percent > 100 ? 100 : percent;
}

int pg_router_confirm(pg_store_txn *txn, const char *version, char *errstr, size_t errstr_size)
{
    pg_store_db meta;
    int rc = pg_store_db_open(txn, PG_ROUTER_DB_META, 0, &meta, errstr, errstr_size);
    if (!rc)
        rc = pg_store_put(txn, meta, PG_ROUTER_META_CONFIRM, strlen(PG_ROUTER_META_CONFIRM),
                          version, strlen(version), errstr, errstr_size);
    return rc;
}

/* Run fn in a child of txn, leaving txn and out as they were when it fails. */
static int s_atomic(pg_router *self, pg_store_txn *txn, pg_outbatch *out, char *errstr,
                    size_t errstr_size, int (*fn)(pg_router_ctx *ctx, const void *arg),
                    const void *arg)
{
    if (!pg_store_txn_writable(txn))
        return pg_errf(PG_EUSAGE, errstr, errstr_size, "router: needs a write transaction");
    size_t count = out->count, audit_count = out->audit_count;
    pg_router_stats stats = self->stats;
    pg_store_txn *child = pg_store_begin_child(txn, errstr, errstr_size);
    if (!child)
        return PG_ESTORE;
    pg_arena_reset(self->scratch);
    self->cache_n = 0;
    self->cache_on = 1;
    pg_router_ctx ctx = {self, child, out, errstr, errstr_size};
    int rc = fn(&ctx, arg);
    self->cache_on = 0;
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

static int s_route_all(pg_router_ctx *ctx, const void *arg)
{
    const pg_changeset *cs = arg;
    pg_router *r = ctx->r;
    int rc = pg_router__reconcile(ctx, cs);
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
        int del = e->operation == PG_ROUTER_OP_DELETE;
        pg_audit_event_from_entity(&ev, del ? PG_AUDIT_ERASE : PG_AUDIT_COLLECT, e);
        if ((rc = pg_router__audit(ctx, &ev, NULL, del ? "deleted" : "ok")))
            return rc;
        pg_router_links links = {.later = cs};
        for (size_t j = 0; j < ndest; j++) {
            const pg_policy_destination *pd = pg_policy_destination_at(r->policy, j);
            pg_router_dest dest = {pd->name, pd->topic, pd};
            if ((rc = pg_router__route_entity(ctx, &dest, e, &links, 0)))
                return rc;
        }
    }
    for (size_t i = 0; i < cs->count; i++) {
        const pg_change *c = &cs->changes[i];
        if (c->type != PG_CHANGE_LINK)
            continue;
        for (size_t j = 0; j < ndest; j++) {
            const pg_policy_destination *pd = pg_policy_destination_at(r->policy, j);
            pg_router_dest dest = {pd->name, pd->topic, pd};
            if ((rc = pg_router__route_link(ctx, &dest, c->link, 0)))
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

static int s_reconcile_fn(pg_router_ctx *ctx, const void *arg)
{
    (void)arg;
    return pg_router__reconcile(ctx, NULL);
}

int pg_router_reconcile(pg_router *self, pg_store_txn *txn, pg_outbatch *out, char *errstr,
                        size_t errstr_size)
{
    return s_atomic(self, txn, out, errstr, errstr_size, s_reconcile_fn, NULL);
}

int pg_router_held(pg_router *self, pg_store_txn *txn, const char *destination, const char *id)
{
    char why[PG_ERRSTR_SIZE];
    pg_router_ctx ctx = {self, txn, NULL, why, sizeof why};
    pg_router_state st;
    int rc = pg_router__get(&ctx, destination, id, &st);
    return rc ? rc : st.held;
}

void pg_router_get_stats(const pg_router *self, pg_router_stats *out)
{
    *out = self->stats;
}
