/* pg_partner: the inbound pipeline: take (checks, partner ledger, compose, into the
 * import queue); the import queue and the RMS's results are partner_imports.c, the thread
 * partner_service.c, the intake's echo filter echo.c. */
#include "log.h"
#include "partner_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "compose.h"
#include "dlq.h"
#include "idstore.h"
#include "ledger.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/timeutil.h"
#include "polegate/wire.h"
#include "policy.h"
#include "store.h"

#define S_UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT
#define S_DELETE POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE

static int s_nomem(char *errstr, size_t errstr_size)
{
    return pg_errf(PG_ENOMEM, errstr, errstr_size, "partner: out of memory");
}

/* ------------------------------------------------------------ new / destroy */

pg_partner *pg_partner_new(const pg_partner_opts *opts, char *errstr, size_t errstr_size)
{
    if (!opts || !opts->force || !opts->adapter || !opts->policy || !opts->store) {
        pg_errf(PG_EUSAGE, errstr, errstr_size, "partner: force, adapter, policy and store needed");
        return NULL;
    }
    pg_partner *p = calloc(1, sizeof *p);
    if (!p) {
        s_nomem(errstr, errstr_size);
        return NULL;
    }
    snprintf(p->force, sizeof p->force, "%s", opts->force);
    p->adapter = opts->adapter;
    p->policy = opts->policy;
    p->store = opts->store;
    p->audit = opts->audit;
    pg_idstore_config icfg = {.format = opts->adapter->format, .settings = opts->adapter_settings};
    if (!(p->ledger = pg_ledger_new_named(p->store, "partner", errstr, errstr_size)) ||
        !(p->idmap = pg_idstore_new(p->store, &icfg, errstr, errstr_size)))
        goto err;
    pg_ledger_set_delete_wins_ties(p->ledger, 1);
    pg_ledger_set_explicit(p->ledger, 1);
    pg_compose_opts copts = {
        .adapter = p->adapter, .ledger = p->ledger, .idmap = p->idmap, .now_ms = opts->now_ms};
    if (!(p->compose = pg_compose_new(&copts, errstr, errstr_size)))
        goto err;
    if (!(p->acc = pg_changeset_new()) || !(p->out = pg_changeset_new())) {
        s_nomem(errstr, errstr_size);
        goto err;
    }
    if (pg_partner__open_dbs(p, errstr, errstr_size) ||
        pg_partner__load_imports(p, errstr, errstr_size))
        goto err;
    if (!(p->dlq = pg_dlq_new(p->store, &opts->dlq_limits, errstr, errstr_size)))
        goto err;
    pg_rms_delivery_config dcfg = opts->delivery;
    dcfg.on_result = pg_partner__on_result;
    dcfg.on_result_arg = p;
    if (!dcfg.extension)
        dcfg.extension = opts->adapter->extensions[0];
    if (!(p->delivery = pg_rms_delivery_new(&dcfg, errstr, errstr_size)))
        goto err;
    return p;
err:
    pg_partner_destroy(&p);
    return NULL;
}

static void s_drop_staged(pg_partner *self)
{
    for (size_t i = 0; i < self->n_staged; i++)
        free(self->staged[i].data);
    self->n_staged = 0;
}

static void s_drop_offs(pg_partner *self)
{
    for (size_t i = 0; i < self->n_offs; i++)
        free(self->offs[i].topic);
    self->n_offs = 0;
}

void pg_partner_destroy(pg_partner **pp)
{
    if (!pp || !*pp)
        return;
    pg_partner *p = *pp;
    char why[PG_ERRSTR_SIZE];
    if (p->store && p->dlq && pg_partner__settle_rejects(p, why, sizeof why))
        pg_log(PG_LOG_WARN, "partner: %s (rejected messages go again at the next start)", why);
    if (p->store && p->imports && pg_partner__remove_done(p, 1, why, sizeof why))
        pg_log(PG_LOG_WARN, "partner: %s (those messages go again at the next start)", why);
    for (size_t i = 0; i < p->n_rejects; i++)
        free(p->rejects[i].reason);
    free(p->rejects);
    pg_buf_free(&p->scratch);
    pg_dlq_destroy(&p->dlq);
    pg_rms_delivery_destroy(&p->delivery);
    for (size_t i = 0; i < p->q_len; i++)
        free(p->queue[(p->q_head + i) % p->q_cap].data);
    free(p->queue);
    s_drop_staged(p);
    free(p->staged);
    free(p->done);
    for (size_t i = 0; i < p->b_len; i++)
        pg_partner__free_batch(&p->batches[i]);
    free(p->batches);
    s_drop_offs(p);
    free(p->offs);
    free(p->events);
    pg_changeset_destroy(&p->acc);
    pg_changeset_destroy(&p->out);
    pg_compose_destroy(&p->compose);
    pg_idstore_destroy(&p->idmap);
    pg_ledger_destroy(&p->ledger);
    free(p);
    *pp = NULL;
}

/* ------------------------------------------------------------ take */

/* A change of a take that cannot be kept: the partner ledger or the local adapter
 * refused it. The take is undone, and the record it came from is kept as a dead letter
 * (pg_partner_take), audited with outcome. */
typedef struct s_refusal {
    char reason[PG_ERRSTR_SIZE]; /* "" when none */
    const char *outcome;         /* s_unencodable, s_ledger_refused */
} s_refusal;

static const char s_unencodable[] = "PG_EUNSUPPORTED";
static const char s_ledger_refused[] = "PG_EINVALID:ledger";

/* One take's context. */
typedef struct s_take {
    pg_partner *p;
    pg_store_txn *txn;
    /* A take of one record whose change cannot be kept (an undone take found it): the
     * record is a dead letter, and nothing of it is applied. NULL: a take as usual. */
    const s_refusal *refuse;
    s_refusal refused; /* the first change of the take that cannot be kept */
    char *errstr;
    size_t errstr_size;
} s_take;

/* topic: where the record came from, its party (partners authenticate to the broker,
 * and the broker's ACLs say who may write which topic). */
static int s_note_event(pg_partner *self, const char *topic, pg_audit_action action, const char *id,
                        const char *native_id, const char *origin, const pg_policy_partner *partner,
                        uint64_t version, const char *outcome)
{
    if (!self->audit)
        return 0;
    if (pg_grow((void **)&self->events, &self->cap_events, self->n_events + 1,
                sizeof *self->events))
        return PG_ENOMEM;
    pg_arena *a = self->acc->arena;
    pg_partner_event *e = &self->events[self->n_events++];
    *e = (pg_partner_event){.action = action, .version = version};
    e->outcome = outcome ? pg_arena_strdup(a, outcome) : NULL;
    /* the partner's values, as the audit log may hold them (a control character or an
     * id of 300 bytes refused the whole take, and every take after it, for ever) */
    e->id = id && *id ? pg_audit_field(a, id) : NULL;
    e->native_id = native_id && *native_id ? pg_audit_field(a, native_id) : NULL;
    e->origin = origin && *origin ? pg_audit_field(a, origin) : NULL;
    e->partner = partner ? partner->force : NULL;
    e->agreement = partner ? partner->agreement : NULL;
    size_t tl = strlen(topic ? topic : "");
    char *party;
    {
        /* a replayed dead letter's events say so (the operator's act, not the partner's) */
        const char *who = self->replaying ? "dlq-replay:" : "partner:";
        size_t n = tl + sizeof "dlq-replay:";
        party = pg_arena_alloc(a, n);
        if (party)
            snprintf(party, n, "%s%s", who, topic ? topic : "");
    }
    e->party = party;
    return party ? 0 : PG_ENOMEM;
}

static int s_note_offset(pg_partner *self, const pg_partner_record *r)
{
    for (size_t i = 0; i < self->n_offs; i++)
        if (self->offs[i].partition == r->partition && !strcmp(self->offs[i].topic, r->topic)) {
            if (r->offset + 1 > self->offs[i].next)
                self->offs[i].next = r->offset + 1;
            return 0;
        }
    if (pg_grow((void **)&self->offs, &self->cap_offs, self->n_offs + 1, sizeof *self->offs))
        return PG_ENOMEM;
    char *t = strdup(r->topic);
    if (!t)
        return PG_ENOMEM;
    self->offs[self->n_offs++] =
        (pg_partner_off){.topic = t, .partition = r->partition, .next = r->offset + 1};
    return 0;
}

/* Is the decoded update complete enough for the ledger? */
static const char *s_invalid(const pg_change *ch)
{
    if (ch->type == PG_CHANGE_ENTITY) {
        const pg_entity_update *e = ch->entity;
        if (!e->id || !*e->id || strlen(e->id) > 64)
            return "entity without an id";
        if (e->operation != S_UPSERT && e->operation != S_DELETE)
            return "entity operation is neither UPSERT nor DELETE";
        return NULL;
    }
    const pg_link_update *l = ch->link;
    if (!l->id || !*l->id || strlen(l->id) > 64)
        return "link without an id";
    if (l->operation != S_UPSERT && l->operation != S_DELETE)
        return "link operation is neither UPSERT nor DELETE";
    if (!l->from || !l->to || !l->from->id || !*l->from->id || !l->to->id || !*l->to->id)
        return "link without both ends";
    if (!l->role)
        return "link without a role";
    return NULL;
}

/* The version last received of id (0 when never) and whether it was a DELETE. */
static int s_seen_get(s_take *t, const char *id, uint64_t *version, int *deleted)
{
    const void *v;
    size_t vlen;
    *version = 0;
    *deleted = 0;
    int rc = pg_store_get(t->txn, t->p->seen, id, strlen(id), &v, &vlen, t->errstr, t->errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc == 0 && vlen == 9) {
        *version = pg_store_be64_get(v);
        *deleted = ((const uint8_t *)v)[8];
    }
    return rc;
}

static int s_seen_put(s_take *t, const char *id, uint64_t version, int deleted)
{
    uint8_t v[9];
    pg_store_be64_put(v, version);
    v[8] = (uint8_t)deleted;
    return pg_store_put(t->txn, t->p->seen, id, strlen(id), v, 9, t->errstr, t->errstr_size);
}

/* 1 when ref is an entity of origin o: its id is the UUIDv5 of o's force and system,
 * the id space the system gives its kind and its native id; or (a system this build
 * does not know) an entity already taken from o, whose id was checked against o then.
 * 0 when not, or an error of the store. */
static int s_end_of_origin(s_take *t, const pg_origin *o, const pg_entity_ref *ref)
{
    const pg_adapter_ops *sys = pg_adapter_for_system(o->system);
    const char *type = sys && sys->native_type ? sys->native_type((int)ref->kind) : NULL;
    char idbuf[PG_UUID_STR_SIZE];
    if (type && ref->native_id && *ref->native_id)
        return !pg_identity_entity(o->force, o->system, type, ref->native_id, idbuf) &&
               !strcmp(idbuf, ref->id);
    char key[PG_UUID_STR_SIZE + 80];
    if ((size_t)snprintf(key, sizeof key, "%s/%s", o->force, ref->id) >= sizeof key)
        return 0;
    uint64_t version;
    int deleted;
    int rc = s_seen_get(t, key, &version, &deleted);
    return rc ? rc : version > 0;
}

/* A tombstone (docs/topics.md: "forget the entity or link"): a reader that starts late,
 * or that compaction overtook, sees only it where the partner sent a DELETE. It is the
 * DELETE, at its pg-version (without one: the version taken last), of what the partner
 * ledger holds under its key,
 * into *ch, to be checked as any record (a tombstone keyed as the record of a force
 * this partner may not speak for is refused). 1 when made; 0 when there is nothing to
 * forget (never held, or held deleted); an error of the store. */
static int s_tombstone(s_take *t, const pg_partner_record *r, pg_change *ch)
{
    pg_partner *p = t->p;
    if (!r->key || !*r->key || strlen(r->key) > 64) /* ids are UUIDs */
        return 0;
    pg_arena *a = p->acc->arena;
    pg_entity_update *en = NULL;
    pg_link_update *l = NULL;
    int deleted = 0;
    int rc = pg_ledger_get_entity(p->ledger, t->txn, r->key, a, &en, &deleted, t->errstr,
                                  t->errstr_size);
    if (rc == PG_ENOTFOUND)
        rc = pg_ledger_get_link(p->ledger, t->txn, r->key, a, &l, &deleted, t->errstr,
                                t->errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    const pg_origin *o = en ? en->origin : l ? l->origin : NULL;
    if (deleted || !o || !o->force || !*o->force)
        return 0;
    /* the partner's version (a link's in the ledger counts changes of our own) */
    char seen_key[PG_UUID_STR_SIZE + 80];
    if ((size_t)snprintf(seen_key, sizeof seen_key, "%s/%s", o->force, r->key) >= sizeof seen_key)
        return 0;
    uint64_t last;
    int last_deleted;
    if ((rc = s_seen_get(t, seen_key, &last, &last_deleted)))
        return rc;
    if (!last || last_deleted)
        return 0;
    /* Its pg-version names the DELETE it follows: one older than what was taken since
     * (read again after a restart, behind the record's next UPSERT) forgets nothing. */
    if (r->version && r->version < last)
        return 0;
    if (r->version)
        last = r->version;
    if (en) {
        en->operation = S_DELETE;
        en->version = last;
        en->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY__NOT_SET;
        en->n_merged_from = 0;
        en->merged_from = NULL;
        *ch = (pg_change){.type = PG_CHANGE_ENTITY, .entity = en};
    } else if (l) {
        l->operation = S_DELETE;
        l->version = last;
        *ch = (pg_change){.type = PG_CHANGE_LINK, .link = l};
    } else {
        return 0;
    }
    return 1;
}

/* A refused record is kept as a partner dead letter in the take's transaction (topic,
 * partition, offset, the origin it claimed, the rule it broke, its bytes), so that the
 * consumer moves on and nothing is lost from sight: `polegate dlq` lists it. */
static int s_dead_letter(s_take *t, const pg_partner_record *r, const char *force, const char *id,
                         const char *reason)
{
    pg_partner *p = t->p;
    if (!p->dlq)
        return 0;
    if (p->replaying)
        snprintf(p->replay_reason, sizeof p->replay_reason, "%s", reason);
    char ref[320];
    snprintf(ref, sizeof ref, "%s [%d] @%" PRId64, r->topic, (int)r->partition, r->offset);
    pg_dlq_entry de = {.received_ms = pg_time_wall_ms(),
                       .reason = reason,
                       .origin = force ? force : "",
                       .format = r->type ? r->type : "",
                       .data = r->value,
                       .len = r->len,
                       .kind = PG_DLQ_PARTNER,
                       .ref = ref,
                       .ids = id ? id : "",
                       .key = r->key,
                       .hdr_force = r->force,
                       .hdr_agreement = r->agreement};
    size_t evicted = 0;
    int rc = pg_dlq_add(p->dlq, t->txn, &de, &evicted, t->errstr, t->errstr_size);
    return rc == PG_EDUPLICATE ? 0 : rc; /* delivered again: kept once */
}

/* One record: checks, then into p->acc. */
static int s_record(s_take *t, const pg_partner_record *r)
{
    pg_partner *p = t->p;
    /* a replay's offset is long committed: noting it would move the group back */
    int rc = p->replaying ? 0 : s_note_offset(p, r);
    if (rc)
        return s_nomem(t->errstr, t->errstr_size);
    int entity = r->type && !strcmp(r->type, PG_TYPE_ENTITY);
    int link = r->type && !strcmp(r->type, PG_TYPE_LINK);
    ProtobufCAllocator alloc;
    pg_pb_arena_allocator(p->acc->arena, &alloc);
    pg_change ch = {.type = entity ? PG_CHANGE_ENTITY : PG_CHANGE_LINK};
    if (!r->value) { /* a tombstone: the DELETE of what its key names, or nothing */
        if ((rc = s_tombstone(t, r, &ch)) <= 0) {
            p->delta.skipped += rc == 0;
            return rc;
        }
        entity = ch.type == PG_CHANGE_ENTITY, link = !entity;
    } else if (entity)
        ch.entity = polegate__pole__v1__entity_update__unpack(&alloc, r->len, r->value);
    else if (link)
        ch.link = polegate__pole__v1__link_update__unpack(&alloc, r->len, r->value);
    /* A value no type of ours names cannot be checked, so it is not taken: kept as a
     * dead letter like any other record that cannot be processed (a replay after an
     * upgrade that knows its type takes it). */
    const char *bad = !r->value ? NULL /* made of what the ledger holds */
                      : !r->type && r->overlong && !strcmp(r->overlong, PG_HDR_TYPE)
                          ? "header pg-type: longer than the gateway keeps"
                      : !r->type               ? "header pg-type: missing"
                      : !entity && !link       ? "header pg-type: not a type this gateway knows"
                      : !ch.entity && !ch.link ? "not a valid protobuf of its pg-type"
                                               : s_invalid(&ch);
    const pg_origin *o =
        entity ? (ch.entity ? ch.entity->origin : NULL) : (ch.link ? ch.link->origin : NULL);
    const char *id =
        entity ? (ch.entity ? ch.entity->id : r->key) : (ch.link ? ch.link->id : r->key);
    const char *native = o ? o->native_id : NULL;
    uint64_t version =
        entity ? (ch.entity ? ch.entity->version : 0) : (ch.link ? ch.link->version : 0);
    const char *force = o && o->force && *o->force ? o->force : r->force;
    char idbuf[PG_UUID_STR_SIZE];
    const char *rule = bad && !entity && !link ? "header" : NULL;
    /* A header too long to keep is not an absent one: its check (pg-agreement's, say)
     * would pass unseen. */
    char overlong[96];
    if (!bad && r->overlong) {
        snprintf(overlong, sizeof overlong, "header %.40s: longer than the gateway keeps",
                 r->overlong);
        bad = overlong, rule = "header";
    }
    /* Identity is bound to origin (docs/security.md): the id must be the UUIDv5 of
     * what the record says it is, so that no partner can reach another's record by
     * naming its id; the headers must say what the value says. */
    if (!bad && (!o || !o->force || !*o->force))
        bad = "origin.force: missing", rule = "origin";
    if (!bad && r->force && strcmp(r->force, o->force))
        bad = "header pg-origin-force: names another force than origin.force", rule = "header";
    if (!bad && (version < 1 || version > (uint64_t)INT64_MAX))
        bad = "version: out of range (1 to 2^63-1)", rule = "version";
    if (!bad && entity &&
        (pg_identity_entity(o->force, o->system, o->native_type, o->native_id, idbuf) ||
         strcmp(idbuf, id)))
        bad = "id: not the UUIDv5 of its origin (force/system/native_type/native_id)",
        rule = "identity";
    if (!bad && !entity &&
        (!ch.link->from || !ch.link->to || !ch.link->from->id || !ch.link->to->id ||
         pg_identity_link(ch.link->from->id, (int)ch.link->role, ch.link->to->id, idbuf) ||
         strcmp(idbuf, id)))
        bad = "id: not the UUIDv5 of its ends and role", rule = "identity";
    /* and the record's key is its id (docs/topics.md): on a compacted topic the key
     * decides what is kept, so a record keyed as another would let a partner have
     * compaction drop that one's latest state. */
    if (!bad && (!r->key || strcmp(r->key, id)))
        bad = "key: not the record's id", rule = "key";
    /* A link binds both its ends: a partner states links between records of its own
     * origin only, never between another force's records (nor one of theirs and one
     * of ours), which would change those records in our RMS (an ATX record carries
     * its links). */
    for (int end = 0; !bad && !entity && end < 2; end++) {
        const pg_entity_ref *ref = end ? ch.link->to : ch.link->from;
        if ((rc = s_end_of_origin(t, o, ref)) < 0)
            return rc;
        if (!rc)
            bad = end ? "to: not an entity of origin.force" : "from: not an entity of origin.force",
            rule = "link-end";
    }
    /* So does a merge: the records merged away stop existing in our RMS and their links
     * move to the survivor (ATX mergedFrom), so a partner merges only records of its own
     * origin, never another force's. (A ref without an id is the ledger's to refuse.) */
    char merged[96];
    for (size_t i = 0; !bad && entity && i < ch.entity->n_merged_from; i++) {
        const pg_entity_ref *ref = ch.entity->merged_from[i];
        if (!ref || !ref->id || !*ref->id)
            continue;
        if (!strcmp(ref->id, id)) { /* a record is not merged into itself */
            snprintf(merged, sizeof merged, "merged_from[%zu]: the record's own id", i);
            bad = merged, rule = "merged-from";
        } else if ((rc = s_end_of_origin(t, o, ref)) == 0) {
            snprintf(merged, sizeof merged, "merged_from[%zu]: not an entity of origin.force", i);
            bad = merged, rule = "merged-from";
        } else if (rc < 0)
            return rc;
    }
    size_t twice = SIZE_MAX; /* and names each record once: no RMS reads it otherwise */
    if (!bad && entity &&
        pg_refs_first_repeat(ch.entity->merged_from, ch.entity->n_merged_from, 1, p->acc->arena,
                             &twice))
        return s_nomem(t->errstr, t->errstr_size);
    if (twice != SIZE_MAX) {
        snprintf(merged, sizeof merged, "merged_from[%zu]: names a record named before it", twice);
        bad = merged, rule = "merged-from";
    }
    if (bad) {
        pg_log(PG_LOG_WARN, "partner: %s [%d] offset %" PRId64 ": rejected: %s", r->topic,
               (int)r->partition, r->offset, bad);
        p->delta.rejected++;
        if ((rc = s_dead_letter(t, r, force, id, bad)))
            return rc;
        char outcome[48];
        snprintf(outcome, sizeof outcome, "PG_EINVALID:%s", rule ? rule : "value");
        return s_note_event(p, r->topic, PG_AUDIT_REJECT, id, native, force, NULL,
                            version <= (uint64_t)INT64_MAX ? version : 0, outcome)
                   ? s_nomem(t->errstr, t->errstr_size)
                   : 0;
    }
    if (!strcmp(force, p->force)) {
        /* A record claiming to be ours, from a partner's topic: never delivered back,
         * and not silently either. */
        pg_log(PG_LOG_WARN,
               "partner: %s [%d] offset %" PRId64 ": rejected: origin.force is our own", r->topic,
               (int)r->partition, r->offset);
        p->delta.own++;
        if ((rc = s_dead_letter(t, r, force, id, "origin.force: our own force")))
            return rc;
        return s_note_event(p, r->topic, PG_AUDIT_REJECT, id, native, force, NULL, version,
                            "own-force")
                   ? s_nomem(t->errstr, t->errstr_size)
                   : 0;
    }
    const pg_policy_partner *partner = NULL;
    char why[PG_ERRSTR_SIZE];
    if (pg_policy_inbound_allowed(p->policy, r->topic, force, &partner, why, sizeof why)) {
        pg_log(PG_LOG_WARN, "partner: %s [%d] offset %" PRId64 ": rejected: %s", r->topic,
               (int)r->partition, r->offset, why);
        p->delta.rejected++;
        if ((rc = s_dead_letter(t, r, force, id, why)))
            return rc;
        if (s_note_event(p, r->topic, PG_AUDIT_REJECT, id, native, force, partner, version,
                         "PG_EPOLICY"))
            return s_nomem(t->errstr, t->errstr_size);
        return 0;
    }
    /* The receiving force decides what it takes: no record above the partner's
     * ceiling, and none without a marking to hold against it (a DELETE brings nothing
     * in: a withdrawal carries no marking). */
    const pg_marking *mk = entity ? ch.entity->marking : ch.link->marking;
    int upsert = entity ? ch.entity->operation == S_UPSERT : ch.link->operation == S_UPSERT;
    /* protobuf-c keeps an enum value it does not know (a negative one too): only 1 to
     * the ceiling passes */
    int cls = mk ? (int)mk->classification : 0;
    const char *cls_bad = !cls      ? "marking.classification: missing"
                          : cls < 0 ? "marking.classification: not a classification"
                          : partner && cls > partner->max_classification
                              ? "marking.classification: above the partner's ceiling"
                              : NULL;
    if (partner && upsert && cls_bad) {
        pg_log(PG_LOG_WARN, "partner: %s [%d] offset %" PRId64 ": rejected: %s", r->topic,
               (int)r->partition, r->offset, cls_bad);
        p->delta.rejected++;
        if ((rc = s_dead_letter(t, r, force, id, cls_bad)))
            return rc;
        return s_note_event(p, r->topic, PG_AUDIT_REJECT, id, native, force, partner, version,
                            "PG_EPOLICY:classification")
                   ? s_nomem(t->errstr, t->errstr_size)
                   : 0;
    }
    /* The record must come under the partner's agreement, or another agreement this
     * policy declares (a sender's handling-C agreement, say); never one we did not
     * sign. */
    if (r->agreement && partner && partner->agreement && strcmp(r->agreement, partner->agreement) &&
        !pg_policy_agreement_description(p->policy, r->agreement)) {
        pg_log(PG_LOG_WARN,
               "partner: %s [%d] offset %" PRId64 ": rejected: header pg-agreement is not an "
               "agreement of the policy",
               r->topic, (int)r->partition, r->offset);
        p->delta.rejected++;
        if ((rc = s_dead_letter(t, r, force, id, "header pg-agreement: not an agreement of ours")))
            return rc;
        return s_note_event(p, r->topic, PG_AUDIT_REJECT, id, native, force, partner, version,
                            "PG_EPOLICY:agreement")
                   ? s_nomem(t->errstr, t->errstr_size)
                   : 0;
    }
    /* The topic contract (docs/topics.md): the highest version per key, and at an
     * equal version a DELETE wins (a withdrawal carries the version we hold). */
    uint64_t last;
    int last_deleted;
    int del = entity ? ch.entity->operation == S_DELETE : ch.link->operation == S_DELETE;
    /* Version state per origin: one partner's versions never make another's stale. */
    char seen_key[PG_UUID_STR_SIZE + 16];
    snprintf(seen_key, sizeof seen_key, "%s/%s", force, id);
    if ((rc = s_seen_get(t, seen_key, &last, &last_deleted)))
        return rc;
    if (last && (version < last || (version == last && (!del || last_deleted)))) {
        if (version == last)
            p->delta.duplicates++;
        else
            p->delta.stale++;
        return 0;
    }
    if (t->refuse) {
        /* Its version is not noted, nor is it applied to the partner ledger: its next
         * version is taken as if this one never came, and so is this one replayed
         * after a fix (an adapter that can carry it). */
        pg_log(PG_LOG_WARN, "partner: %s [%d] offset %" PRId64 ": rejected: %s", r->topic,
               (int)r->partition, r->offset, t->refuse->reason);
        p->delta.rejected++;
        if ((rc = s_dead_letter(t, r, force, id, t->refuse->reason)))
            return rc;
        return s_note_event(p, r->topic, PG_AUDIT_REJECT, id, native, force, partner, version,
                            t->refuse->outcome)
                   ? s_nomem(t->errstr, t->errstr_size)
                   : 0;
    }
    if ((rc = s_seen_put(t, seen_key, version, del)))
        return rc;
    rc = entity ? pg_changeset_add_entity(p->acc, ch.entity, 0)
                : pg_changeset_add_link(p->acc, ch.link);
    if (rc)
        return s_nomem(t->errstr, t->errstr_size);
    p->delta.accepted++;
    pg_audit_action action =
        entity && ch.entity->operation == S_DELETE ? PG_AUDIT_ERASE : PG_AUDIT_RECEIVE;
    if (s_note_event(p, r->topic, action, id, native, force, partner, version, "ok"))
        return s_nomem(t->errstr, t->errstr_size);
    return 0;
}

/* What a message carries, for its dead letter should the RMS reject it: under seq in
 * partner.outids, "<force>,<force>...\0<id>,<id>...\0<ops>" (one force per id; ops as
 * pg_dlq_note_composed makes them, which notes seq as the last operation of each
 * record and link in it). */
static int s_put_import_ids(pg_partner *self, pg_store_txn *txn, uint64_t seq,
                            const pg_changeset *cs, char *errstr, size_t errstr_size)
{
    pg_buf *b = &self->scratch;
    pg_buf_reset(b);
    int rc = 0;
    for (int part = 0; rc == 0 && part < 2; part++) {
        for (size_t i = 0; rc == 0 && cs && i < cs->count; i++) {
            const pg_change *ch = &cs->changes[i];
            const pg_origin *o =
                ch->type == PG_CHANGE_ENTITY ? ch->entity->origin : ch->link->origin;
            const char *id = ch->type == PG_CHANGE_ENTITY ? ch->entity->id : ch->link->id;
            const char *v = part ? id : (o ? o->force : NULL);
            if (!v || !*v)
                v = "-";
            if (i)
                rc = pg_buf_append(b, ",", 1);
            rc = rc ? rc : pg_buf_append(b, v, strlen(v));
        }
        rc = rc ? rc : pg_buf_append(b, "", 1);
    }
    if (rc)
        return s_nomem(errstr, errstr_size);
    if ((rc = pg_dlq_note_composed(self->dlq, txn, seq, cs, b, errstr, errstr_size)))
        return rc;
    if (pg_buf_append(b, "", 1))
        return s_nomem(errstr, errstr_size);
    uint8_t key[8];
    pg_store_be64_put(key, seq);
    return pg_store_put(txn, self->import_ids, key, 8, b->data, b->len, errstr, errstr_size);
}

/* The sink of compose: each message into the import queue, and staged for the queue. */
static int s_emit(void *arg, const uint8_t *msg, size_t len, const pg_changeset *cs)
{
    s_take *t = arg;
    pg_partner *p = t->p;
    if (pg_grow((void **)&p->staged, &p->cap_staged, p->n_staged + 1, sizeof *p->staged))
        return s_nomem(t->errstr, t->errstr_size);
    pg_partner_msg m = {.seq = p->next_seq + p->n_staged, .len = len};
    int idlen = snprintf(m.id, sizeof m.id, "pg-%s-%020" PRIu64, p->instance, m.seq);
    uint8_t key[8];
    pg_store_be64_put(key, m.seq);
    void *v;
    int rc = pg_store_put_reserve(t->txn, p->imports, key, 8, 1 + (size_t)idlen + len, &v,
                                  t->errstr, t->errstr_size);
    if (rc)
        return rc;
    uint8_t *b = v;
    b[0] = (uint8_t)idlen;
    memcpy(b + 1, m.id, (size_t)idlen);
    memcpy(b + 1 + idlen, msg, len);
    if ((rc = s_put_import_ids(p, t->txn, m.seq, cs, t->errstr, t->errstr_size)))
        return rc;
    if (!(m.data = malloc(len ? len : 1)))
        return s_nomem(t->errstr, t->errstr_size);
    memcpy(m.data, msg, len);
    p->staged[p->n_staged++] = m;
    p->delta.composed++;
    return 0;
}

/* A change the adapter refused (compose's sink): the first one undoes the take. */
static void s_refused(void *arg, const pg_change *ch, const char *reason)
{
    s_take *t = arg;
    if (t->refused.reason[0])
        return;
    const char *id = ch->type == PG_CHANGE_ENTITY ? ch->entity->id : ch->link->id;
    snprintf(t->refused.reason, sizeof t->refused.reason, "%s %s: the %s RMS cannot carry it: %s",
             ch->type == PG_CHANGE_ENTITY ? "entity" : "link", id ? id : "?", t->p->adapter->format,
             reason);
    t->refused.outcome = s_unencodable;
}

/* Apply p->acc to the partner ledger into p->out. A change the ledger refuses as
 * invalid undoes the take (t->refused), as one the adapter refuses does: its record is
 * kept as a dead letter, the others taken. */
static int s_apply(s_take *t)
{
    pg_partner *p = t->p;
    pg_ledger_result res;
    pg_store_txn *child = pg_store_begin_child(t->txn, t->errstr, t->errstr_size);
    if (!child)
        return PG_ESTORE;
    int rc = pg_ledger_apply(p->ledger, child, p->acc, p->out, &res, t->errstr, t->errstr_size);
    if (rc == 0)
        return pg_store_commit(&child, t->errstr, t->errstr_size);
    pg_store_abort(&child);
    if (rc != PG_EINVALID)
        return rc;
    snprintf(t->refused.reason, sizeof t->refused.reason, "ledger: %s", t->errstr);
    t->refused.outcome = s_ledger_refused;
    return 0;
}

/* The batch's audit events (receive, reject), before its commit: when they cannot be
 * written nothing of the batch happens (fail closed) and the same records are taken
 * again. A commit that fails after this logs them twice, never not at all. */
static int s_audit_take(pg_partner *self, char *errstr, size_t errstr_size)
{
    if (!self->audit || !self->n_events)
        return 0;
    pg_audit_event *evs = calloc(self->n_events, sizeof *evs);
    if (!evs)
        return s_nomem(errstr, errstr_size);
    for (size_t i = 0; i < self->n_events; i++) {
        const pg_partner_event *e = &self->events[i];
        evs[i] = (pg_audit_event){.action = e->action,
                                  .party = e->party,
                                  .entity_id = e->id,
                                  .native_id = e->native_id,
                                  .origin = e->origin,
                                  .partner = e->partner,
                                  .agreement = e->agreement,
                                  .policy_version = pg_policy_version(self->policy),
                                  .version = e->version,
                                  .outcome = e->outcome};
    }
    char why[PG_ERRSTR_SIZE];
    int rc = pg_audit_append_batch(self->audit, evs, self->n_events, why, sizeof why);
    free(evs);
    if (rc) {
        self->stats.audit_failures++;
        return pg_errf(rc, errstr, errstr_size,
                       "audit: %s; the records are not taken until the log takes events", why);
    }
    return 0;
}

void pg_partner_stats_add(pg_partner_stats *to, const pg_partner_stats *d)
{
    to->records += d->records;
    to->accepted += d->accepted;
    to->duplicates += d->duplicates;
    to->stale += d->stale;
    to->own += d->own;
    to->rejected += d->rejected;
    to->skipped += d->skipped;
    to->composed += d->composed;
    to->submitted += d->submitted;
    to->stored += d->stored;
    to->rms_rejected += d->rms_rejected;
    to->batches += d->batches;
    to->audit_failures += d->audit_failures;
}

/* What s_take_once returns when a change cannot be kept (*refused says which and
 * why): nothing of the take happened. */
#define S_REFUSED 1

/* pg_partner_take in one write transaction; refuse: see s_take. S_REFUSED when a
 * change cannot be kept and the take was undone; compose's counters are then as they
 * were, but for the adapter's refusal itself when the take was of one record (counted
 * once, where it is decided). */
static int s_take_once(pg_partner *self, const pg_partner_record *records, size_t n,
                       const s_refusal *refuse, s_refusal *refused, char *errstr,
                       size_t errstr_size)
{
    pg_compose_stats cstats;
    pg_compose_get_stats(self->compose, &cstats);
    pg_changeset_reset(self->acc);
    pg_changeset_reset(self->out);
    memset(&self->delta, 0, sizeof self->delta);
    self->n_events = 0;
    s_drop_offs(self);
    s_drop_staged(self);
    s_take t = {.p = self, .refuse = refuse, .errstr = errstr, .errstr_size = errstr_size};
    if (!(t.txn = pg_store_begin(self->store, 1, errstr, errstr_size)))
        return PG_ESTORE;
    int rc = 0;
    /* the dead letter replayed goes in the same transaction as what replaces it */
    if (self->replaying)
        rc = pg_dlq_delete(self->dlq, t.txn, self->replaying, errstr, errstr_size);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = s_record(&t, &records[i]);
    if (rc == 0 && self->acc->count)
        rc = s_apply(&t);
    char batch[40];
    snprintf(batch, sizeof batch, "pg-%.8s-%" PRIu64, self->instance, self->next_seq);
    pg_compose_sink sink = {.emit = s_emit, .refused = s_refused, .arg = &t};
    if (rc == 0 && self->out->count && !t.refused.reason[0])
        rc = pg_compose_run(self->compose, t.txn, self->out, batch, &sink, errstr, errstr_size);
    if (rc == 0 && t.refused.reason[0]) {
        *refused = t.refused;
        cstats.refused += n == 1 && t.refused.outcome == s_unencodable;
        pg_compose_set_stats(self->compose, &cstats); /* nothing was composed after all */
        rc = S_REFUSED;
    }
    if (rc == 0 && self->n_staged) {
        uint8_t v[8];
        pg_store_be64_put(v, self->next_seq + self->n_staged - 1);
        rc = pg_store_put(t.txn, self->meta, "seq", 3, v, 8, errstr, errstr_size);
    }
    pg_partner_batch b = {0};
    if (rc == 0 && self->n_offs &&
        (pg_grow((void **)&self->batches, &self->b_cap, self->b_len + 1, sizeof *self->batches) ||
         !(b.offs = malloc(self->n_offs * sizeof *b.offs))))
        rc = s_nomem(errstr, errstr_size);
    size_t removing = self->n_done;
    if (rc == 0)
        rc = pg_partner__delete_done(self, t.txn, errstr, errstr_size);
    if (rc == 0)
        rc = s_audit_take(self, errstr, errstr_size);
    if (rc == 0)
        rc = pg_store_commit(&t.txn, errstr, errstr_size);
    if (rc == 0 && removing) {
        /* acks that came during the take stay for the next removal */
        memmove(self->done, self->done + removing, (self->n_done - removing) * sizeof *self->done);
        self->n_done -= removing;
        self->removed_at = pg_time_mono_ms();
    }
    if (rc) {
        pg_store_abort(&t.txn);
        free(b.offs);
        s_drop_staged(self);
        s_drop_offs(self);
        return rc;
    }
    /* Committed: the messages are in the import queue; queue them, and the batch's offsets
     * behind them. */
    for (size_t i = 0; i < self->n_staged; i++) {
        if (pg_partner__queue_push(self, &self->staged[i])) {
            /* stays in the import queue: sent after a restart */
            pg_log(PG_LOG_ERROR, "partner: out of memory queueing message %s", self->staged[i].id);
            free(self->staged[i].data);
        }
    }
    self->next_seq += self->n_staged;
    self->n_staged = 0;
    if (b.offs) { /* allocated above exactly when the take had offsets */
        memcpy(b.offs, self->offs, self->n_offs * sizeof *b.offs);
        b.n_offs = self->n_offs;
        b.last_seq = self->next_seq - 1;
        self->n_offs = 0; /* the topics now belong to the batch */
        self->batches[self->b_len++] = b;
    }
    self->delta.records = n;
    self->delta.batches = 1;
    pg_partner_stats_add(&self->stats, &self->delta);
    return 0;
}

/* records[0..n), whose take together was refused: in halves, each taken whole when it
 * can be and halved again when not, down to the record whose change is refused, which
 * is taken as a partner dead letter. One refused record in a batch of n costs about
 * 2 log2(n) takes (each a durable commit), not n. */
static int s_take_halves(pg_partner *self, const pg_partner_record *records, size_t n,
                         const s_refusal *refused, char *errstr, size_t errstr_size)
{
    s_refusal why;
    if (n == 1) /* its record is not applied: nothing of it can be refused again */
        return s_take_once(self, records, 1, refused, &why, errstr, errstr_size);
    size_t half = n / 2;
    const pg_partner_record *part[2] = {records, records + half};
    size_t len[2] = {half, n - half};
    for (int i = 0; i < 2; i++) {
        int rc = s_take_once(self, part[i], len[i], NULL, &why, errstr, errstr_size);
        if (rc == S_REFUSED)
            rc = s_take_halves(self, part[i], len[i], &why, errstr, errstr_size);
        if (rc)
            return rc;
    }
    return 0;
}

int pg_partner_take(pg_partner *self, const pg_partner_record *records, size_t n, char *errstr,
                    size_t errstr_size)
{
    s_refusal refused;
    int rc = s_take_once(self, records, n, NULL, &refused, errstr, errstr_size);
    if (rc != S_REFUSED)
        return rc;
    /* A change of the take cannot be kept (the partner ledger or the local adapter
     * refused it). The ledger's and compose's changes need not map one to one to the
     * records (an ATX record is sent again for a link of it), so the record it came
     * from is found by taking the batch again in halves, each in a transaction of its
     * own; the one whose change is refused is taken again as a dead letter, with
     * nothing of it applied. */
    if (n > 1)
        pg_log(PG_LOG_WARN,
               "partner: %s; the %zu records of its batch are taken again in halves to find "
               "its record",
               refused.reason, n);
    return s_take_halves(self, records, n, &refused, errstr, errstr_size);
}

int pg_partner_replay(pg_partner *self, uint64_t id, char outcome[16], char *errstr,
                      size_t errstr_size)
{
    snprintf(outcome, 16, "kept");
    pg_store_txn *txn = pg_store_begin(self->store, 0, errstr, errstr_size);
    pg_dlq_entry e;
    int rc = txn ? pg_dlq_get(self->dlq, txn, id, &e, errstr, errstr_size) : PG_ESTORE;
    if (!rc && e.kind != PG_DLQ_PARTNER)
        rc = pg_errf(PG_EUSAGE, errstr, errstr_size,
                     "dead letter %" PRIu64 ": not a partner record", id);
    if (!rc && !e.headers_kept)
        rc = pg_errf(PG_EUSAGE, errstr, errstr_size,
                     "dead letter %" PRIu64 ": kept without its headers (before replay existed): "
                     "the partner sends it again",
                     id);
    if (!rc && e.original_len > e.len)
        rc = pg_errf(PG_ETOOBIG, errstr, errstr_size,
                     "dead letter %" PRIu64 ": only %zu of its %zu bytes were kept", id, e.len,
                     e.original_len);
    /* ref is "<topic> [<partition>] @<offset>" (s_dead_letter) */
    char topic[256] = "";
    int partition = 0;
    long long offset = 0;
    if (!rc && sscanf(e.ref, "%255s [%d] @%lld", topic, &partition, &offset) != 3)
        rc = pg_errf(PG_EINTERNAL, errstr, errstr_size, "dead letter %" PRIu64 ": damaged record",
                     id);
    /* copies: the take writes the store the entry points into */
    char *key = NULL, *force = NULL, *agreement = NULL, *type = NULL;
    uint8_t *value = NULL;
    if (!rc &&
        ((e.key && !(key = strdup(e.key))) || (e.hdr_force && !(force = strdup(e.hdr_force))) ||
         (e.hdr_agreement && !(agreement = strdup(e.hdr_agreement))) ||
         !(type = strdup(e.format)) || !(value = malloc(e.len ? e.len : 1))))
        rc = s_nomem(errstr, errstr_size);
    if (value) /* allocated exactly when all went well */
        memcpy(value, e.data, e.len);
    pg_partner_record r = {.topic = topic,
                           .partition = partition,
                           .offset = offset,
                           .key = key,
                           .value = value,
                           .len = rc ? 0 : e.len,
                           .type = type && *type ? type : NULL,
                           .force = force,
                           .agreement = agreement};
    pg_store_abort(&txn);
    if (!rc) {
        self->replaying = id;
        self->replay_reason[0] = 0;
        rc = pg_partner_take(self, &r, 1, errstr, errstr_size);
        self->replaying = 0;
    }
    if (!rc) {
        const pg_partner_stats *d = &self->delta;
        if (d->accepted)
            snprintf(outcome, 16, "accepted");
        else if (d->duplicates)
            snprintf(outcome, 16, "duplicate");
        else if (d->stale)
            snprintf(outcome, 16, "stale");
        else if (d->skipped)
            snprintf(outcome, 16, "skipped");
        else {
            snprintf(outcome, 16, "refused");
            rc = pg_errf(PG_EINVALID, errstr, errstr_size, "%s",
                         self->replay_reason[0] ? self->replay_reason : "refused by the ledger");
        }
    }
    free(key);
    free(force);
    free(agreement);
    free(type);
    free(value);
    return rc;
}

int pg_partner_replay_asked(pg_partner *self, char *errstr, size_t errstr_size)
{
    int done = 0;
    for (;;) {
        uint64_t id;
        pg_store_txn *txn = pg_store_begin(self->store, 0, errstr, errstr_size);
        int rc = txn ? pg_dlq_replay_next(self->dlq, txn, &id, errstr, errstr_size) : PG_ESTORE;
        pg_store_abort(&txn);
        if (rc == PG_ENOTFOUND)
            return done;
        if (rc)
            return rc;
        char outcome[16], why[PG_ERRSTR_SIZE] = "";
        rc = pg_partner_replay(self, id, outcome, why, sizeof why);
        /* The take's own failure (the store, the audit log): the request waits, and is
         * taken again with the next call. */
        if (rc && rc != PG_EINVALID && rc != PG_EUSAGE && rc != PG_ETOOBIG && rc != PG_ENOTFOUND)
            return pg_errf(rc, errstr, errstr_size, "dead letter %" PRIu64 " not replayed: %s", id,
                           why);
        if (rc == PG_ENOTFOUND)
            snprintf(outcome, sizeof outcome, "not-found");
        pg_log(rc ? PG_LOG_WARN : PG_LOG_INFO,
               "partner: dead letter %" PRIu64 " replayed as the operator asked: %s%s%s", id,
               outcome, rc ? ": " : "", rc ? why : "");
        if (!(txn = pg_store_begin(self->store, 1, errstr, errstr_size)))
            return PG_ESTORE;
        rc = pg_dlq_replay_answer(self->dlq, txn, id, outcome, rc ? why : "", errstr, errstr_size);
        if (!rc)
            rc = pg_store_commit(&txn, errstr, errstr_size);
        pg_store_abort(&txn);
        if (rc)
            return rc;
        done++;
    }
}

void pg_partner_get_stats(const pg_partner *self, pg_partner_stats *out)
{
    *out = self->stats;
}

void pg_partner_get_compose_stats(const pg_partner *self, pg_compose_stats *out)
{
    pg_compose_get_stats(self->compose, out);
}
