/* pg_compose: a partner ledger's published updates -> native messages for the local RMS. */
#include "compose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idstore.h"
#include "ledger.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/roles.h"
#include "store.h"

#define S_UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT
#define S_DELETE POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE

/* One record an ATX run sends: its id, the last entity change of it in the published
 * changeset (NULL when only links from it changed), and the merged_from refs of its
 * UPSERTs there. */
typedef struct s_unit {
    const char *id;
    const pg_entity_update *entity;
    pg_entity_ref **merged;
    size_t n_merged, cap_merged;
} s_unit;

struct pg_compose {
    const pg_adapter_ops *adapter;
    int whole_links; /* the adapter's: a record carries all its links */
    pg_ledger *ledger;
    pg_idstore *idmap;
    int64_t now_ms;
    pg_changeset *enc; /* what one encode call is given */
    pg_arena *scratch; /* ledger reads and copies of one run */
    pg_buf native;     /* one encoded message */
    s_unit *units;     /* ATX: the records of one run, in order of first mention */
    size_t n_units, cap_units;
    uint32_t *slots; /* open addressing over units by id: index + 1, 0 free */
    size_t n_slots;  /* a power of two, at least twice cap_units */
    pg_compose_stats stats;
};

/* One run's arguments, so that helpers need one pointer. */
typedef struct s_run {
    pg_compose *c;
    pg_store_txn *txn;
    const pg_changeset *in;
    const char *batch;
    const pg_compose_sink *sink;
    char *errstr;
    size_t errstr_size;
} s_run;

pg_compose *pg_compose_new(const pg_compose_opts *opts, char *errstr, size_t errstr_size)
{
    if (!opts || !opts->adapter || !opts->ledger || !opts->idmap) {
        pg_errf(PG_EUSAGE, errstr, errstr_size, "compose: adapter, ledger and idmap are needed");
        return NULL;
    }
    pg_compose *c = calloc(1, sizeof *c);
    if (!c || !(c->enc = pg_changeset_new()) || !(c->scratch = pg_arena_new(0))) {
        pg_compose_destroy(&c);
        pg_errf(PG_ENOMEM, errstr, errstr_size, "compose: out of memory");
        return NULL;
    }
    c->adapter = opts->adapter;
    c->whole_links = opts->adapter->whole_links;
    c->ledger = opts->ledger;
    c->idmap = opts->idmap;
    c->now_ms = opts->now_ms;
    c->native = (pg_buf)PG_BUF_INIT;
    return c;
}

void pg_compose_destroy(pg_compose **p)
{
    if (!p || !*p)
        return;
    pg_compose *c = *p;
    pg_changeset_destroy(&c->enc);
    pg_arena_destroy(&c->scratch);
    pg_buf_free(&c->native);
    for (size_t i = 0; i < c->cap_units; i++) /* slots of earlier runs keep theirs */
        free(c->units[i].merged);
    free(c->units);
    free(c->slots);
    free(c);
    *p = NULL;
}

void pg_compose_get_stats(const pg_compose *self, pg_compose_stats *out)
{
    *out = self->stats;
}

void pg_compose_set_stats(pg_compose *self, const pg_compose_stats *stats)
{
    self->stats = *stats;
}

static int s_nomem(s_run *r)
{
    return pg_errf(PG_ENOMEM, r->errstr, r->errstr_size, "compose: out of memory");
}

/* ------------------------------------------------------------ what the RMS has */

/* Does the RMS know entity id (an id was given to it: sent, or named in a link)? */
static int s_known(s_run *r, const char *id, int *known)
{
    char local[64];
    int rc =
        pg_idstore_lookup(r->c->idmap, r->txn, id, local, sizeof local, r->errstr, r->errstr_size);
    *known = rc == 0;
    return rc == PG_ENOTFOUND ? 0 : rc;
}

/* A copy of e, in the scratch arena, with only the merged_from refs the RMS knows. */
static int s_known_merges(s_run *r, const pg_entity_update *e, pg_entity_ref **refs, size_t n,
                          pg_entity_update **out)
{
    pg_entity_update *c = pg_arena_alloc(r->c->scratch, sizeof *c);
    pg_entity_ref **keep = n ? pg_arena_alloc(r->c->scratch, n * sizeof *keep) : NULL;
    if (!c || (n && !keep))
        return s_nomem(r);
    *c = *e;
    c->n_merged_from = 0;
    c->merged_from = keep;
    for (size_t i = 0; i < n; i++) {
        int known;
        int rc = s_known(r, refs[i]->id, &known);
        if (rc)
            return rc;
        if (known)
            keep[c->n_merged_from++] = refs[i];
        else
            r->c->stats.unknown++;
    }
    *out = c;
    return 0;
}

/* ------------------------------------------------------------ encoding */

/* Encode c->enc in txn, its entities' revisions drawn first; on success (and no larger
 * than the format's max_message_size) the message goes to the sink, else every id and
 * revision drawn for it is undone (an id map
 * savepoint: a child transaction per message cost more than the encoding) and the
 * adapter's reason is in why. *refused: 1 when the adapter said no (rc then 0). */
static int s_encode(s_run *r, const char *batch, int *refused, char *why, size_t why_size)
{
    pg_compose *c = r->c;
    *refused = 0;
    pg_idstore_savepoint(c->idmap);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->enc->count; i++) {
        pg_change *ch = &c->enc->changes[i];
        if (ch->type != PG_CHANGE_ENTITY)
            continue;
        /* a copy: the published message stays as the ledger emitted it */
        pg_entity_update *e = pg_arena_alloc(c->scratch, sizeof *e);
        if (!e) {
            rc = s_nomem(r);
            break;
        }
        *e = *ch->entity;
        rc = pg_idstore_next_revision(c->idmap, r->txn, e->id, e->version, &e->version, NULL,
                                      r->errstr, r->errstr_size);
        ch->entity = e;
    }
    if (rc) {
        /* a store failure: the caller aborts the transaction */
        pg_idstore_release(c->idmap);
        return rc;
    }
    pg_idstore_use(c->idmap, r->txn);
    pg_adapter_ctx ctx = {.idmap = pg_idstore_iface(c->idmap), .now_ms = c->now_ms, .batch = batch};
    pg_buf_reset(&c->native);
    rc = c->adapter->encode(&ctx, c->enc, &c->native, why, why_size);
    pg_idstore_use(c->idmap, NULL);
    /* larger than the RMS's format takes: refused like what the format cannot carry
     * (the caller tries each change alone) */
    if (!rc && c->adapter->max_message_size && c->native.len > c->adapter->max_message_size)
        rc = pg_errf(PG_EUNSUPPORTED, why, why_size,
                     "%s: %zu bytes, more than the %zu a message of the format may have",
                     c->adapter->name, c->native.len, c->adapter->max_message_size);
    if (rc == PG_EINVALID || rc == PG_EUNSUPPORTED) {
        *refused = 1;
        return pg_idstore_rollback(c->idmap, r->errstr, r->errstr_size);
    }
    pg_idstore_release(c->idmap);
    if (rc)
        /* an id map failure inside encode is a store failure: the caller aborts */
        return pg_errf(rc, r->errstr, r->errstr_size, "compose: %s", why);
    c->stats.messages++;
    for (size_t i = 0; i < c->enc->count; i++) {
        if (c->enc->changes[i].type == PG_CHANGE_ENTITY)
            c->stats.entities++;
        else
            c->stats.links++;
    }
    return r->sink->emit(r->sink->arg, c->native.data, c->native.len, c->enc);
}

static void s_refuse(s_run *r, const pg_change *ch, const char *why)
{
    r->c->stats.refused++;
    if (r->sink->refused)
        r->sink->refused(r->sink->arg, ch, why);
}

/* ------------------------------------------------------------ links one at a time (NX5) */

/* The originating force of a change ("" when it names none). */
static const char *s_force_of(const pg_change *ch)
{
    const pg_origin *o = ch->type == PG_CHANGE_ENTITY ? ch->entity->origin : ch->link->origin;
    return o && o->force ? o->force : "";
}

/* Should change i of the published changeset go to an NX5 RMS, and as what? */
static int s_changes_pick(s_run *r, size_t i, pg_change *out, int *take)
{
    const pg_change *ch = &r->in->changes[i];
    int known = 1, rc;
    *take = 0;
    *out = *ch;
    if (ch->type == PG_CHANGE_ENTITY) {
        const pg_entity_update *e = ch->entity;
        if (e->operation == S_DELETE) {
            if ((rc = s_known(r, e->id, &known)))
                return rc;
            if (!known) {
                r->c->stats.unknown++;
                return 0;
            }
        } else if (e->n_merged_from) {
            /* No MergedFrom: an NX5 RMS would move the merged-away records' links to
             * the survivor by itself, and the link deletes the partner's ledger made
             * of the merge, which may come in a later batch (another partition), could
             * not find them there. The merge reaches the RMS as its effects: each
             * merged-away record's Delete and each link change, one key at a time. */
            pg_entity_update *copy;
            if ((rc = s_known_merges(r, e, NULL, 0, &copy)))
                return rc;
            /* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): s_known_merges set it */
            out->entity = copy;
        }
        out->replaces_links = 0;
        *take = 1;
        return 0;
    }
    const pg_link_update *l = ch->link;
    if (l->operation == S_DELETE) {
        int k2 = 1;
        if ((rc = s_known(r, l->from->id, &known)) || (rc = s_known(r, l->to->id, &k2)))
            return rc;
        if (!known || !k2) {
            r->c->stats.unknown++;
            return 0;
        }
    }
    *take = 1;
    return 0;
}

/* One NX5 document for changes [from, to) of the picked list; when the adapter refuses
 * it, one document per change. */
static int s_changes_send(s_run *r, const pg_change *picked, size_t from, size_t to, unsigned *docs)
{
    pg_compose *c = r->c;
    char why[PG_ERRSTR_SIZE], batch[64];
    int refused, rc;
    pg_changeset_reset(c->enc);
    for (size_t i = from; i < to; i++) {
        rc = picked[i].type == PG_CHANGE_ENTITY
                 ? pg_changeset_add_entity(c->enc, picked[i].entity, 0)
                 : pg_changeset_add_link(c->enc, picked[i].link);
        if (rc)
            return s_nomem(r);
    }
    const char *name = NULL;
    if (r->batch) {
        snprintf(batch, sizeof batch, "%s%s%.0u", r->batch, *docs ? "-" : "", *docs);
        name = batch;
    }
    (*docs)++;
    if ((rc = s_encode(r, name, &refused, why, sizeof why)) || !refused)
        return rc;
    if (to - from == 1) {
        s_refuse(r, &picked[from], why);
        return 0;
    }
    for (size_t i = from; i < to; i++)
        if ((rc = s_changes_send(r, picked, i, i + 1, docs)))
            return rc;
    return 0;
}

/* Does change ch give the RMS an id for entity id: an UPSERT of it, or a link UPSERT
 * that names it? */
static int s_gives_id(const pg_change *ch, const char *id)
{
    if (ch->type == PG_CHANGE_LINK)
        return ch->link->operation == S_UPSERT &&
               (!strcmp(ch->link->from->id, id) || !strcmp(ch->link->to->id, id));
    return ch->entity->operation == S_UPSERT && !strcmp(ch->entity->id, id);
}

/* Must the document doc[0..n) go before change ch? When ch is of another force (a
 * document names one), changes the same record or link again (the first change of a
 * record in a document is its Add), or is a DELETE whose check of what the RMS was
 * sent must see what doc gives an id to: a record created and deleted in one batch is
 * sent, then deleted. */
static int s_changes_breaks(const pg_change *doc, size_t n, const pg_change *ch)
{
    if (n && strcmp(s_force_of(&doc[0]), s_force_of(ch)))
        return 1;
    for (size_t i = 0; i < n; i++) {
        const pg_change *d = &doc[i];
        if (ch->type == PG_CHANGE_ENTITY) {
            const pg_entity_update *e = ch->entity;
            if (d->type == PG_CHANGE_ENTITY && !strcmp(d->entity->id, e->id))
                return 1;
            if (e->operation == S_DELETE && s_gives_id(d, e->id))
                return 1;
            continue;
        }
        const pg_link_update *l = ch->link;
        if (d->type == PG_CHANGE_LINK && !strcmp(d->link->id, l->id))
            return 1;
        if (l->operation == S_DELETE && (s_gives_id(d, l->from->id) || s_gives_id(d, l->to->id)))
            return 1;
    }
    return 0;
}

static int s_changes(s_run *r)
{
    pg_change *picked =
        r->in->count ? pg_arena_alloc(r->c->scratch, r->in->count * sizeof *picked) : NULL;
    if (r->in->count && !picked)
        return s_nomem(r);
    /* Each change is picked (checked against what the RMS was sent) only once the
     * document before it that it depends on has been encoded: the id map then knows
     * what that document gave the RMS. */
    size_t start = 0, n = 0;
    unsigned docs = 0;
    int rc, take;
    for (size_t i = 0; i < r->in->count; i++) {
        if (n > start && s_changes_breaks(&picked[start], n - start, &r->in->changes[i])) {
            if ((rc = s_changes_send(r, picked, start, n, &docs)))
                return rc;
            start = n;
        }
        if ((rc = s_changes_pick(r, i, &picked[n], &take)))
            return rc;
        n += take;
    }
    return n > start ? s_changes_send(r, picked, start, n, &docs) : 0;
}

/* ------------------------------------------------------------ records with all their links (ATX)
 */

/* FNV-1a of an id. */
static uint32_t s_hash(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

/* The slot of id in c->slots: its unit's, or the free one where it would go. */
static uint32_t *s_slot(pg_compose *c, const char *id)
{
    size_t mask = c->n_slots - 1;
    for (size_t i = s_hash(id) & mask;; i = (i + 1) & mask)
        if (!c->slots[i] || !strcmp(c->units[c->slots[i] - 1].id, id))
            return &c->slots[i];
}

/* The unit of record id, added when new (a run names thousands: found by hash, not
 * by a scan). NULL when out of memory. */
static s_unit *s_unit_of(s_run *r, const char *id)
{
    pg_compose *c = r->c;
    if (c->n_slots) {
        uint32_t *slot = s_slot(c, id);
        if (*slot)
            return &c->units[*slot - 1];
    }
    if (c->n_units == c->cap_units || !c->n_slots) {
        size_t cap = c->cap_units ? c->cap_units * 2 : 64;
        if (c->n_units == c->cap_units) {
            s_unit *u = realloc(c->units, cap * sizeof *u);
            if (!u)
                return NULL;
            memset(u + c->cap_units, 0, (cap - c->cap_units) * sizeof *u);
            c->units = u;
            c->cap_units = cap;
        }
        size_t n_slots = c->cap_units * 2; /* at least 128: cap_units starts at 64 */
        uint32_t *slots = n_slots ? calloc(n_slots, sizeof *slots) : NULL;
        if (!slots)
            return NULL;
        free(c->slots);
        c->slots = slots;
        c->n_slots = n_slots;
        for (size_t i = 0; i < c->n_units; i++)
            *s_slot(c, c->units[i].id) = (uint32_t)i + 1;
    }
    s_unit *u = &c->units[c->n_units++];
    u->id = id;
    u->entity = NULL;
    u->n_merged = 0;
    *s_slot(c, id) = (uint32_t)c->n_units;
    return u;
}

static int s_unit_merge(s_unit *u, pg_entity_ref *ref)
{
    for (size_t i = 0; i < u->n_merged; i++)
        if (!strcmp(u->merged[i]->id, ref->id))
            return 0;
    if (pg_grow((void **)&u->merged, &u->cap_merged, u->n_merged + 1, sizeof *u->merged))
        return PG_ENOMEM;
    u->merged[u->n_merged++] = ref;
    return 0;
}

/* The kind of a link's target as far as anyone knows: the link's, the role's, the
 * ledger's record of it, or the type letter of the id the RMS has for it. 0: unknown. */
static int s_target_kind(s_run *r, const pg_link_update *l, int *kind)
{
    *kind = l->to->kind ? (int)l->to->kind : pg_role_only_target(l->role);
    if (*kind)
        return 0;
    pg_entity_update *t = NULL;
    int rc = pg_ledger_get_entity(r->c->ledger, r->txn, l->to->id, r->c->scratch, &t, NULL,
                                  r->errstr, r->errstr_size);
    if (rc == 0 && t->kind) {
        *kind = t->kind;
        return 0;
    }
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    char local[64];
    rc = pg_idstore_lookup(r->c->idmap, r->txn, l->to->id, local, sizeof local, r->errstr,
                           r->errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc == 0 && pg_idstore_kind_of(r->c->idmap, local))
        *kind = pg_idstore_kind_of(r->c->idmap, local);
    return rc;
}

/* Mark dirty every record with a live link to entity id that an earlier run had to
 * leave out (its target's kind was unknown then). */
static int s_records_waiting_for(s_run *r, const char *id)
{
    pg_link_update **links;
    size_t n;
    int rc = pg_ledger_links_to(r->c->ledger, r->txn, id, r->c->scratch, &links, &n, r->errstr,
                                r->errstr_size);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!links[i]->to->kind && !pg_role_only_target(links[i]->role) &&
            !s_unit_of(r, links[i]->from->id))
            rc = s_nomem(r);
    return rc;
}

static int s_records_collect(s_run *r)
{
    int rc;
    for (size_t i = 0; i < r->in->count; i++) {
        const pg_change *ch = &r->in->changes[i];
        if (ch->type == PG_CHANGE_LINK) {
            if (!s_unit_of(r, ch->link->from->id))
                return s_nomem(r);
            continue;
        }
        const pg_entity_update *e = ch->entity;
        /* never sent as a record (at most named by a link, whose target's kind may
         * have been unknown): links to it held back so far can go now */
        uint64_t sent = 1;
        if (e->operation == S_UPSERT &&
            (rc = pg_idstore_last_revision(r->c->idmap, r->txn, e->id, &sent, r->errstr,
                                           r->errstr_size)))
            return rc;
        s_unit *u = s_unit_of(r, e->id);
        if (!u)
            return s_nomem(r);
        u->entity = e;
        for (size_t k = 0; e->operation == S_UPSERT && k < e->n_merged_from; k++)
            if (s_unit_merge(u, e->merged_from[k]))
                return s_nomem(r);
        if (!sent && (rc = s_records_waiting_for(r, e->id)))
            return rc;
    }
    return 0;
}

/* The record of unit u as the RMS must have it now, with its links, into c->enc.
 * *send 0: nothing to send. */
static int s_records_unit(s_run *r, const s_unit *u, int *send)
{
    pg_compose *c = r->c;
    *send = 0;
    pg_entity_update *rec = NULL;
    int deleted = 0, rc;
    rc = pg_ledger_get_entity(c->ledger, r->txn, u->id, c->scratch, &rec, &deleted, r->errstr,
                              r->errstr_size);
    if (rc == PG_ENOTFOUND) {
        c->stats.orphan_links++; /* it comes with all its links when it comes */
        return 0;
    }
    if (rc)
        return rc;
    pg_changeset_reset(c->enc);
    if (deleted) {
        /* only a DELETE in this changeset is news; a deleted record's links going
         * with it need nothing more */
        if (!u->entity || u->entity->operation != S_DELETE)
            return 0;
        int known;
        if ((rc = s_known(r, u->id, &known)))
            return rc;
        if (!known) {
            c->stats.unknown++;
            return 0;
        }
        if (pg_changeset_add_entity(c->enc, rec, 1))
            return s_nomem(r);
        *send = 1;
        return 0;
    }
    if (!u->entity)
        c->stats.resent++;
    pg_entity_update *e;
    if ((rc = s_known_merges(r, rec, u->merged, u->n_merged, &e)))
        return rc;
    /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): s_known_merges set e */
    if (pg_changeset_add_entity(c->enc, e, 1))
        return s_nomem(r);
    pg_link_update **links;
    size_t n;
    if ((rc = pg_ledger_links_from(c->ledger, r->txn, u->id, c->scratch, &links, &n, r->errstr,
                                   r->errstr_size)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        int kind;
        if ((rc = s_target_kind(r, links[i], &kind)))
            return rc;
        if (!kind) {
            c->stats.deferred++;
            continue;
        }
        if (kind != (int)links[i]->to->kind) {
            pg_entity_ref *to = pg_arena_alloc(c->scratch, sizeof *to);
            if (!to)
                return s_nomem(r);
            *to = *links[i]->to;
            to->kind = kind;
            links[i]->to = to;
        }
        if (pg_changeset_add_link(c->enc, links[i]))
            return s_nomem(r);
    }
    *send = 1;
    return 0;
}

static int s_records(s_run *r)
{
    pg_compose *c = r->c;
    c->n_units = 0;
    if (c->n_slots)
        memset(c->slots, 0, c->n_slots * sizeof *c->slots);
    int rc = s_records_collect(r);
    for (size_t i = 0; rc == 0 && i < c->n_units; i++) {
        int send, refused;
        char why[PG_ERRSTR_SIZE];
        if ((rc = s_records_unit(r, &c->units[i], &send)) || !send)
            continue;
        rc = s_encode(r, NULL, &refused, why, sizeof why);
        if (rc == 0 && refused)
            s_refuse(r, &c->enc->changes[0], why);
    }
    return rc;
}

/* ------------------------------------------------------------ run */

int pg_compose_run(pg_compose *self, pg_store_txn *txn, const pg_changeset *published,
                   const char *batch, const pg_compose_sink *sink, char *errstr, size_t errstr_size)
{
    pg_arena_reset(self->scratch);
    s_run r = {.c = self,
               .txn = txn,
               .in = published,
               .batch = batch,
               .sink = sink,
               .errstr = errstr,
               .errstr_size = errstr_size};
    if (!published->count)
        return 0;
    pg_idstore_run_begin(self->idmap, txn);
    int rc = self->whole_links ? s_records(&r) : s_changes(&r);
    pg_idstore_run_end(self->idmap);
    return rc;
}
