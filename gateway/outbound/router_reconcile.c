/* pg_router at a policy change: what every destination holds re-decided under the new
 * policy, withdrawn where no longer allowed, published where newly allowed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "log.h"
#include "polegate/error.h"
#include "router_int.h"

/* ---------------------------------------------------------------- policy version */

/* "version\0name=topic\0name=topic\0#rules=<digest>\0": what a policy change is
 * detected by. The last entry (pg_policy_digest) came later: a stored signature without
 * it is the same policy when everything before it matches (s_same_legacy). */
#define S_RULES "#rules="
static char *s_signature(pg_router *self, const char *digest, size_t *len)
{
    const pg_policy *p = self->policy;
    size_t n = strlen(pg_policy_version(p)) + 1;
    for (size_t i = 0; i < pg_policy_destination_count(p); i++) {
        const pg_policy_destination *d = pg_policy_destination_at(p, i);
        n += strlen(d->name) + 1 + strlen(d->topic) + 1;
    }
    n += strlen(S_RULES) + strlen(digest) + 1;
    char *s = pg_arena_alloc(self->scratch, n), *w = s;
    if (!s)
        return NULL;
    w += sprintf(w, "%s", pg_policy_version(p)) + 1;
    for (size_t i = 0; i < pg_policy_destination_count(p); i++) {
        const pg_policy_destination *d = pg_policy_destination_at(p, i);
        w += sprintf(w, "%s=%s", d->name, d->topic) + 1;
    }
    sprintf(w, "%s%s", S_RULES, digest); /* the last entry */
    *len = n;
    return s;
}

/* The bytes of sig before its rules entry (all of it when it has none). */
static size_t s_without_rules(const char *sig, size_t len)
{
    for (const char *p = sig, *end = sig + len; p < end; p += strnlen(p, (size_t)(end - p)) + 1)
        if (!strncmp(p, S_RULES, strlen(S_RULES)))
            return (size_t)(p - sig);
    return len;
}

/* The destinations of a signature, "name=topic, name=topic", for a reason. */
static void s_signature_text(const char *sig, size_t len, char *out, size_t size)
{
    const char *end = sig + len, *p = memchr(sig, 0, len);
    size_t w = 0;
    out[0] = 0;
    for (p = p ? p + 1 : end; p < end && w < size; p += strnlen(p, (size_t)(end - p)) + 1)
        if (*p != '#')
            w += (size_t)snprintf(out + w, size - w, "%s%.*s", w ? ", " : "",
                                  (int)strnlen(p, (size_t)(end - p)), p);
}

/* The topic dest had under the stored signature sig; NULL when it had none. */
static const char *s_old_topic(const char *sig, size_t len, const char *dest)
{
    size_t dn = strlen(dest);
    const char *end = sig + len, *p = memchr(sig, 0, len);
    for (p = p ? p + 1 : end; p < end; p += strlen(p) + 1)
        if (*p != '#' && !strncmp(p, dest, dn) && p[dn] == '=')
            return p + dn + 1;
    return NULL;
}

/* Is rv (PG_ROUTER_META_RULES) the digest of rules ("<digest>:<digest v1>"), and was it
 * written beside the stored signature sig (whose rules entry is that digest v1)? */
static int s_rules_beside(const char *sig, size_t len, const char *rv, size_t rvlen,
                          const char *rules)
{
    size_t n = strlen(rules), at = s_without_rules(sig, len), v1 = at + strlen(S_RULES);
    const char *colon = strchr(rules, ':');
    if (rvlen != n || memcmp(rv, rules, (size_t)(colon - rules) + 1) || at == len)
        return 0;
    size_t v1_len = n - (size_t)(colon - rules) - 1;
    return v1 + v1_len < len && !memcmp(sig + v1, rv + (colon - rules) + 1, v1_len) &&
           sig[v1 + v1_len] == '\0';
}

typedef struct s_held {
    const char *dest;
    const char *id;
    pg_router_state st;
} s_held;

/* Every held-state entry, copied (the loop below writes to the database). */
static int s_held_all(pg_router_ctx *ctx, s_held **out, size_t *count)
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
        pg_router__decode_state(v, vl, &h->st);
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

/* Does a destination that may hold e under redactions `now` hold nothing they clear?
 * It was sent e's record at st's version with st's redactions (the state keeps them):
 * *same when clearing the fields of `now` from what it was sent changes nothing (a
 * field newly allowed is not sent before the record's next revision). */
static int s_same_form(pg_router_ctx *ctx, const pg_entity_update *e, const pg_router_state *st,
                       uint32_t now, int *same)
{
    *same = !(now & ~st->redacted);
    if (*same || st->src_version != e->version)
        return 0;
    const pg_entity_update *sent, *cleared;
    if (pg_policy_redact_entity(ctx->r->scratch, e, st->redacted, &sent) ||
        pg_policy_redact_entity(ctx->r->scratch, sent, now, &cleared))
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    size_t n = protobuf_c_message_get_packed_size(&sent->base);
    if (n != protobuf_c_message_get_packed_size(&cleared->base))
        return 0;
    uint8_t *a = pg_arena_alloc(ctx->r->scratch, n + 1),
            *b = pg_arena_alloc(ctx->r->scratch, n + 1);
    if (!a || !b)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    protobuf_c_message_pack(&sent->base, a);
    protobuf_c_message_pack(&cleared->base, b);
    *same = !memcmp(a, b, n);
    return 0;
}

/* Re-decide one held entity under the current policy, or withdraw it from a former
 * destination (dest->pd NULL). Returns 1 when withdrawn. */
static int s_reconcile_entity(pg_router_ctx *ctx, const pg_router_dest *dest, const s_held *h)
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
        int same = 0;
        if (d.verdict == PG_POLICY_SHARE &&
            (rc = s_same_form(ctx, e, &h->st, d.redacted, &same)) != 0)
            return rc;
        if (same)
            return 0;
        reason = d.verdict == PG_POLICY_SHARE ? PG_POLICY_R_REDACTION : d.reason;
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
    rc = pg_router__withdraw_entity(ctx, dest, e, h->st.src_version, &h->st, reason);
    return rc ? rc : 1;
}

static int s_reconcile_link(pg_router_ctx *ctx, const pg_router_dest *dest, const s_held *h)
{
    pg_router *r = ctx->r;
    pg_router_state st;
    int rc = pg_router__get(ctx, dest->name, h->id, &st);
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
        l->operation = PG_ROUTER_OP_DELETE;
        l->version = st.src_version;
    }
    if (!dest->pd) { /* a former destination: withdrawn on its old topic, whatever */
        rc = pg_router__withdraw_link(ctx, dest, l, &st, PG_POLICY_R_KIND);
        return rc ? rc : 1;
    }
    size_t before = ctx->out->count;
    if (deleted)
        l->operation = PG_ROUTER_OP_DELETE;
    if ((rc = pg_router__route_link(ctx, dest, l, PG_ROUTER_QUIET | PG_ROUTER_RECHECK)))
        return rc;
    return ctx->out->count > before;
}

/* "@<topic>": the name the state of what a topic was last sent is kept under once no
 * destination writes that topic. NULL when out of memory. */
static char *s_topic_holder(pg_router *r, const char *topic)
{
    size_t n = strlen(topic) + 2;
    char *name = pg_arena_alloc(r->scratch, n);
    if (name)
        snprintf(name, n, "%c%s", PG_ROUTER_TOPIC_MARK, topic);
    return name;
}

/* dest no longer writes topic (NULL: not known): its state of id goes to the topic's
 * holder, not held, so that a destination that writes the topic again knows the
 * versions its consumers last saw (their DELETEs win at an equal version). */
static int s_retire(pg_router_ctx *ctx, const char *dest, const char *topic, const char *id)
{
    if (!topic)
        return pg_router__del(ctx, dest, id);
    char *holder = s_topic_holder(ctx->r, topic);
    if (!holder)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    return pg_router__move(ctx, dest, holder, id, PG_ROUTER_MOVE_REPLACE); /* the latest sent */
}

/* A destination new to the policy that writes the topic a former one wrote (and no
 * longer does: removed, or moved away): a rename, as the topic's consumers see it.
 * What they hold goes over to the new name, held as it was, and is re-decided under it
 * below like the rest; nothing is withdrawn and sent again. */
static int s_renamed(pg_router_ctx *ctx, const char *old, size_t old_len, s_held *all, size_t n)
{
    pg_router *r = ctx->r;
    for (size_t j = 0; j < pg_policy_destination_count(r->policy); j++) {
        const pg_policy_destination *pd = pg_policy_destination_at(r->policy, j);
        if (s_old_topic(old, old_len, pd->name))
            continue;
        for (size_t i = 0; i < n; i++) {
            if (all[i].dest[0] == PG_ROUTER_TOPIC_MARK)
                continue;
            const char *was = s_old_topic(old, old_len, all[i].dest);
            const pg_policy_destination *still = pg_policy_destination_find(r->policy, all[i].dest);
            if (!was || strcmp(was, pd->topic) || (still && !strcmp(still->topic, was)))
                continue;
            int rc = pg_router__move(ctx, all[i].dest, pd->name, all[i].id, PG_ROUTER_MOVE_HELD);
            if (rc)
                return rc;
            all[i].dest = pd->name;
        }
    }
    return 0;
}

/* Each destination that writes a topic it did not write before (added, renamed, its
 * topic moved) takes up what the topic's holder keeps, not held: what the topic's
 * consumers saw withdrawn is not sent to them again at a version their DELETE beats
 * (it comes back with its next revision). */
static int s_topics_taken_up(pg_router_ctx *ctx, const char *old, size_t old_len)
{
    pg_router *r = ctx->r;
    for (size_t j = 0; j < pg_policy_destination_count(r->policy); j++) {
        const pg_policy_destination *pd = pg_policy_destination_at(r->policy, j);
        const char *was = s_old_topic(old, old_len, pd->name);
        if (was && !strcmp(was, pd->topic))
            continue;
        char *holder = s_topic_holder(r, pd->topic);
        if (!holder)
            return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
        size_t hl = strlen(holder) + 1, n = 0, cap = 0;
        char **ids = NULL;
        pg_store_cursor *cur =
            pg_store_cursor_open(ctx->txn, r->held, ctx->errstr, ctx->errstr_size);
        if (!cur)
            return PG_ESTORE;
        const void *k;
        size_t kl;
        int rc = pg_store_cursor_seek(cur, holder, hl, &k, &kl, NULL, NULL);
        for (; !rc && kl > hl && !memcmp(k, holder, hl);
             rc = pg_store_cursor_next(cur, &k, &kl, NULL, NULL)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                char **grown = pg_arena_alloc(r->scratch, cap * sizeof *grown);
                if (!grown) {
                    rc = PG_ENOMEM;
                    break;
                }
                if (n)
                    memcpy(grown, ids, n * sizeof *grown);
                ids = grown;
            }
            if (!(ids[n++] = pg_arena_strndup(r->scratch, (const char *)k + hl, kl - hl))) {
                rc = PG_ENOMEM;
                break;
            }
        }
        pg_store_cursor_close(&cur);
        if (rc == PG_ENOMEM)
            return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
        if (rc != PG_ENOTFOUND && rc != 0)
            return rc;
        for (size_t i = 0; i < n; i++)
            if ((rc = pg_router__move(ctx, holder, pd->name, ids[i], 0)))
                return rc;
    }
    return 0;
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
 * routing path of one update (pg_router__route_entity with PG_ROUTER_ADD): its latest record at its
 * ledger version, redacted for that destination, marked held, then its live links
 * whose other end the destination holds. The ledger's entity database is walked in key
 * order with a cursor (nothing is collected first); the scratch arena is reset per
 * entity, so memory stays that of one entity, and the batch grows by what is
 * published. The entities of skip (the message pg_router_route is about to route,
 * already in the ledger; may be NULL) are left to that routing, which would otherwise
 * send them twice. *records gets the number of records appended (entities and links).
 * Returns 0 or an error. */
static int s_publish_allowed(pg_router_ctx *ctx, const pg_changeset *skip, size_t *records)
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
        pg_router_links links = {0};
        for (size_t j = 0; !rc && j < ndest; j++) {
            const pg_policy_destination *pd = pg_policy_destination_at(r->policy, j);
            pg_router_dest dest = {pd->name, pd->topic, pd};
            rc = pg_router__route_entity(ctx, &dest, e, &links, PG_ROUTER_ADD);
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
static int s_withdraw_check(pg_router_ctx *ctx, const s_tally *t, size_t n)
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
    int rc = pg_store_get(ctx->txn, r->meta, PG_ROUTER_META_CONFIRM, strlen(PG_ROUTER_META_CONFIRM),
                          &val, &vlen, ctx->errstr, ctx->errstr_size);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    if (!rc && vlen == strlen(version) && !memcmp(val, version, vlen)) {
        pg_log(PG_LOG_WARN,
               "router: policy %s withdraws %zu of the %zu records destination %s holds, as "
               "the operator confirmed",
               version, over->withdrawn, over->held, over->dest);
        return pg_store_del(ctx->txn, r->meta, PG_ROUTER_META_CONFIRM,
                            strlen(PG_ROUTER_META_CONFIRM), NULL, 0, ctx->errstr, ctx->errstr_size);
    }
    return pg_errf(PG_ECONFIRM, ctx->errstr, ctx->errstr_size,
                   "policy %s would withdraw %zu of the %zu records destination %s holds, more "
                   "than store.max_withdraw_percent (%d%%): nothing is withdrawn until the "
                   "operator confirms it with `polegate store confirm %s %s`",
                   version, over->withdrawn, over->held, over->dest, r->withdraw_limit,
                   pg_store_dir(r->store), version);
}

/* The policy is the party of what a reconcile appended to out (records from rec,
 * audit events from ev): "policy:<version>", whatever message it was routed with.
 * 0 or PG_ENOMEM. */
static int s_policy_party(pg_router_ctx *ctx, size_t rec, size_t ev)
{
    pg_outbatch *out = ctx->out;
    if (rec == out->count && ev == out->audit_count)
        return 0;
    const char *party =
        pg_arena_sprintf(out->arena, "policy:%s", pg_policy_version(ctx->r->policy));
    if (!party)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    for (size_t i = rec; i < out->count; i++)
        out->recs[i].party = party;
    for (size_t i = ev; i < out->audit_count; i++)
        out->audit[i].party = party;
    return 0;
}

/* Rule 5 of router.h: inside ctx->txn; routing is the changeset pg_router_route is
 * about to route (NULL from pg_router_reconcile). Returns the number of withdrawals. */
int pg_router__reconcile(pg_router_ctx *ctx, const pg_changeset *routing)
{
    pg_router *r = ctx->r;
    /* The signature keeps the form releases before read (the digest that counts
     * quoting), so that one rolled back to starts on this store; the digest of the
     * rules as the parser reads them is kept beside it (PG_ROUTER_META_RULES). */
    size_t sig_len, v2_len;
    char *sig = s_signature(r, pg_policy_digest_v1(r->policy), &sig_len);
    char *v2 = s_signature(r, pg_policy_digest(r->policy), &v2_len);
    if (!sig || !v2)
        return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "out of memory");
    /* "<digest>:<digest v1>": the v1 digest of the signature it was written beside, so
     * that one left behind when a release before rewrote the signature is not believed. */
    char rules[2 * 64 + 2];
    snprintf(rules, sizeof rules, "%s:%s", pg_policy_digest(r->policy),
             pg_policy_digest_v1(r->policy));
    const void *val, *rv;
    size_t vlen, rvlen;
    int rc = pg_store_get(ctx->txn, r->meta, PG_ROUTER_META_POLICY, strlen(PG_ROUTER_META_POLICY),
                          &val, &vlen, ctx->errstr, ctx->errstr_size);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    int rrc = pg_store_get(ctx->txn, r->meta, PG_ROUTER_META_RULES, strlen(PG_ROUTER_META_RULES),
                           &rv, &rvlen, ctx->errstr, ctx->errstr_size);
    if (rrc && rrc != PG_ENOTFOUND)
        return rrc;
    size_t base = s_without_rules(sig, sig_len);
    int rules_same = !rc && !rrc && s_rules_beside(val, vlen, rv, rvlen, rules);
    int same = !rc && vlen == sig_len && !memcmp(val, sig, sig_len);
    /* Stored before signatures had the rules; with a digest of the rules as the parser
     * reads them (a build of 2026-12-07); or quoted otherwise since (the same rules as
     * the parser reads them): the same policy. */
    int same_rules =
        !rc && !same &&
        ((s_without_rules(val, vlen) == vlen && vlen == base && !memcmp(val, sig, base)) ||
         (vlen == v2_len && !memcmp(val, v2, v2_len)) ||
         (rules_same && s_without_rules(val, vlen) == base && !memcmp(val, sig, base)));
    if (same || same_rules) {
        /* Brought up to date when a write transaction has it. */
        if (!pg_store_txn_writable(ctx->txn) || (same && rules_same))
            return 0;
        if (same_rules && (rc = pg_store_put(ctx->txn, r->meta, PG_ROUTER_META_POLICY,
                                             strlen(PG_ROUTER_META_POLICY), sig, sig_len,
                                             ctx->errstr, ctx->errstr_size)))
            return rc;
        return pg_store_put(ctx->txn, r->meta, PG_ROUTER_META_RULES, strlen(PG_ROUTER_META_RULES),
                            rules, strlen(rules), ctx->errstr, ctx->errstr_size);
    }
    /* The policy's version is what says it changed: other destinations, topics or rules
     * under the same version are a configuration mistake (or damage), not a withdrawal. */
    if (!rc && strnlen(val, vlen) < vlen && !strcmp(val, pg_policy_version(r->policy))) {
        char was[PG_ERRSTR_SIZE / 2], now[PG_ERRSTR_SIZE / 2];
        s_signature_text(val, vlen, was, sizeof was);
        s_signature_text(sig, sig_len, now, sizeof now);
        if (!strcmp(was, now))
            return pg_errf(PG_ECONFIG, ctx->errstr, ctx->errstr_size,
                           "policy.version %s did not change but its rules did (its destinations "
                           "are the same: %s): give a changed policy a new policy.version",
                           pg_policy_version(r->policy), now);
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

    size_t rec_from = ctx->out->count, ev_from = ctx->out->audit_count;
    s_held *all = NULL;
    size_t n = 0;
    if ((rc = s_held_all(ctx, &all, &n)))
        return rc;
    if (old && (rc = s_renamed(ctx, old, old_len, all, n)))
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
    for (int pass = PG_ROUTER_TYPE_ENTITY; pass <= PG_ROUTER_TYPE_LINK; pass++) {
        for (size_t i = 0; i < n; i++) {
            s_held *h = &all[i];
            if (h->st.type != pass || !h->st.held)
                continue;
            const pg_policy_destination *pd = pg_policy_destination_find(r->policy, h->dest);
            const char *old_topic = old ? s_old_topic(old, old_len, h->dest) : NULL;
            pg_router_dest dest = {h->dest, pd ? pd->topic : old_topic, pd};
            if (pd && old_topic && strcmp(old_topic, pd->topic)) {
                /* Its topic moved: what it held is on the old one. */
                dest.topic = old_topic;
                dest.pd = NULL;
            }
            if (!dest.topic) { /* a former destination whose topic is not known */
                if ((rc = pg_router__del(ctx, h->dest, h->id)))
                    return rc;
                continue;
            }
            rc = pass == PG_ROUTER_TYPE_ENTITY ? s_reconcile_entity(ctx, &dest, h)
                                               : s_reconcile_link(ctx, &dest, h);
            if (rc < 0)
                return rc;
            withdrawn += rc;
            s_tally_of(tally, &ntally, h->dest)->withdrawn += (size_t)rc;
            if (!dest.pd && (rc = s_retire(ctx, h->dest, dest.topic, h->id)))
                return rc;
        }
    }
    /* What a former destination (or one whose topic moved) was last sent stays with the
     * topic it was sent on, not held. */
    for (size_t i = 0; i < n; i++) {
        if (all[i].dest[0] == PG_ROUTER_TOPIC_MARK)
            continue;
        const pg_policy_destination *pd = pg_policy_destination_find(r->policy, all[i].dest);
        const char *old_topic = old ? s_old_topic(old, old_len, all[i].dest) : NULL;
        if ((!pd || (old_topic && strcmp(old_topic, pd->topic))) &&
            (rc = s_retire(ctx, all[i].dest, old_topic, all[i].id)))
            return rc;
    }
    if ((rc = s_withdraw_check(ctx, tally, ntally)))
        return rc;
    if ((rc = pg_store_put(ctx->txn, r->meta, PG_ROUTER_META_POLICY, strlen(PG_ROUTER_META_POLICY),
                           sig, sig_len, ctx->errstr, ctx->errstr_size)) ||
        (rc = pg_store_put(ctx->txn, r->meta, PG_ROUTER_META_RULES, strlen(PG_ROUTER_META_RULES),
                           rules, strlen(rules), ctx->errstr, ctx->errstr_size)))
        return rc;
    if (!old) /* the first routing: nothing was decided under another policy */
        return (rc = s_policy_party(ctx, rec_from, ev_from)) ? rc : withdrawn;
    /* The old version is the signature's first string; the publication pass below
     * resets the scratch arena that holds it. */
    char old_version[80];
    snprintf(old_version, sizeof old_version, "%s", old);
    if ((rc = s_topics_taken_up(ctx, old, old_len)))
        return rc;
    size_t published = 0;
    if ((rc = s_publish_allowed(ctx, routing, &published)) ||
        (rc = s_policy_party(ctx, rec_from, ev_from)))
        return rc;
    r->stats.reconciles++;
    r->stats.reconcile_published += published;
    pg_log(PG_LOG_INFO,
           "router: policy changed from %s to %s: %d records withdrawn from their "
           "destinations, %zu records newly allowed published to them",
           old_version, pg_policy_version(r->policy), withdrawn, published);
    return withdrawn;
}
