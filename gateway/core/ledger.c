/* pg_ledger: stale and duplicate filtering, link versions and diffs, deletes and merges. */
#include "ledger_int.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"
#include "polegate/identity.h"

#define S_UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT
#define S_DELETE POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE

/* Entity and link ids, message ids: LMDB keys, and index values with a 1-byte prefix. */
#define S_MAX_ID 255
#define S_MAX_MERGE_CHAIN 1024 /* survivors followed for a link to a merged-away record */
#define S_FORMAT "1"

/* One apply call. */
typedef struct s_ctx {
    pg_ledger *ledger;
    pg_store_txn *txn;
    const pg_changeset *in;
    pg_changeset *out;
    pg_arena *arena; /* out->arena */
    ProtobufCAllocator alloc;
    pg_ledger_result *res;
    char *errstr;
    size_t errstr_size;
} s_ctx;

/* ------------------------------------------------------------ records */

int pg_ledger__rec_get(pg_store_txn *txn, pg_store_db db, const char *id, pg_ledger_rec *rec,
                       char *errstr, size_t errstr_size)
{
    const void *v;
    size_t vlen;
    memset(rec, 0, sizeof(*rec));
    int rc = pg_store_get(txn, db, id, strlen(id), &v, &vlen, errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (vlen < sizeof(pg_ledger_hdr))
        return pg_errf(PG_ESTORE, errstr, errstr_size, "ledger: stored record %s is corrupt", id);
    memcpy(&rec->hdr, v, sizeof(pg_ledger_hdr));
    rec->found = 1;
    rec->pb = (const uint8_t *)v + sizeof(pg_ledger_hdr);
    rec->pblen = vlen - sizeof(pg_ledger_hdr);
    return 0;
}

static int s_rec_put(pg_store_txn *txn, pg_store_db db, const char *id, uint64_t version, int kind,
                     int deleted, const ProtobufCMessage *msg, char *errstr, size_t errstr_size)
{
    pg_ledger_hdr hdr = {.version = version, .kind = (uint32_t)kind, .deleted = (uint8_t)deleted};
    size_t len = protobuf_c_message_get_packed_size(msg);
    void *p;
    int rc =
        pg_store_put_reserve(txn, db, id, strlen(id), sizeof hdr + len, &p, errstr, errstr_size);
    if (rc != 0)
        return rc;
    memcpy(p, &hdr, sizeof hdr);
    protobuf_c_message_pack(msg, (uint8_t *)p + sizeof hdr);
    return 0;
}

void *pg_ledger__unpack(const ProtobufCMessageDescriptor *desc, const pg_ledger_rec *rec,
                        pg_arena *arena, const char *id, char *errstr, size_t errstr_size)
{
    ProtobufCAllocator alloc;
    pg_pb_arena_allocator(arena, &alloc);
    void *m = protobuf_c_message_unpack(desc, &alloc, rec->pblen, rec->pb);
    if (!m)
        pg_errf(PG_ESTORE, errstr, errstr_size,
                "ledger: stored record %s cannot be read (corrupt, or out of memory)", id);
    return m;
}

static pg_entity_update *s_entity_unpack(s_ctx *ctx, const pg_ledger_rec *rec, const char *id)
{
    return pg_ledger__unpack(&polegate__pole__v1__entity_update__descriptor, rec, ctx->arena, id,
                             ctx->errstr, ctx->errstr_size);
}

static pg_link_update *s_link_unpack(s_ctx *ctx, const pg_ledger_rec *rec, const char *id)
{
    return pg_ledger__unpack(&polegate__pole__v1__link_update__descriptor, rec, ctx->arena, id,
                             ctx->errstr, ctx->errstr_size);
}

static int s_entity_get(s_ctx *ctx, const char *id, pg_ledger_rec *rec)
{
    return pg_ledger__rec_get(ctx->txn, ctx->ledger->entity, id, rec, ctx->errstr,
                              ctx->errstr_size);
}

static int s_link_get(s_ctx *ctx, const char *id, pg_ledger_rec *rec)
{
    return pg_ledger__rec_get(ctx->txn, ctx->ledger->link, id, rec, ctx->errstr, ctx->errstr_size);
}

static int s_nomem(s_ctx *ctx)
{
    return pg_errf(PG_ENOMEM, ctx->errstr, ctx->errstr_size, "ledger: out of memory");
}

/* ------------------------------------------------------------ output */

/* gone: the stored state of a DELETE, PG_LEDGER_DELETED or PG_LEDGER_MERGED_AWAY */
static int s_emit_entity(s_ctx *ctx, pg_entity_update *e, int gone)
{
    int deleted = e->operation == S_DELETE ? gone : 0;
    int rc = s_rec_put(ctx->txn, ctx->ledger->entity, e->id, e->version, e->kind, deleted, &e->base,
                       ctx->errstr, ctx->errstr_size);
    if (rc != 0)
        return rc;
    if (pg_changeset_add_entity(ctx->out, e, 0) != 0)
        return s_nomem(ctx);
    ctx->res->published++;
    return 0;
}

static int s_index(s_ctx *ctx, const char *entity_id, char dir, const char *link_id, int add)
{
    char v[1 + S_MAX_ID];
    size_t n = strlen(link_id);
    v[0] = dir;
    memcpy(v + 1, link_id, n);
    int rc;
    if (add)
        rc = pg_store_put(ctx->txn, ctx->ledger->index, entity_id, strlen(entity_id), v, n + 1,
                          ctx->errstr, ctx->errstr_size);
    else
        rc = pg_store_del(ctx->txn, ctx->ledger->index, entity_id, strlen(entity_id), v, n + 1,
                          ctx->errstr, ctx->errstr_size);
    return rc == PG_ENOTFOUND ? 0 : rc;
}

/* Store l (whose version and operation are final), keep the index of live links, and
 * append it to out. */
static int s_emit_link(s_ctx *ctx, pg_link_update *l)
{
    int live = l->operation == S_UPSERT;
    int rc = s_rec_put(ctx->txn, ctx->ledger->link, l->id, l->version, 0,
                       live ? 0 : PG_LEDGER_DELETED, &l->base, ctx->errstr, ctx->errstr_size);
    if (rc == 0)
        rc = s_index(ctx, l->from->id, PG_LEDGER_FROM, l->id, live);
    if (rc == 0)
        rc = s_index(ctx, l->to->id, PG_LEDGER_TO, l->id, live);
    if (rc != 0)
        return rc;
    if (pg_changeset_add_link(ctx->out, l) != 0)
        return s_nomem(ctx);
    ctx->res->published++;
    return 0;
}

/* The ids of the live links from (dir 'F'), to ('T') or both (0) entity id, copied into
 * the arena because the index changes while they are processed. */
int pg_ledger__index_ids(pg_store_txn *txn, pg_ledger *ledger, const char *id, char dir,
                         pg_arena *arena, char ***ids, size_t *count, char *errstr,
                         size_t errstr_size)
{
    *ids = NULL;
    *count = 0;
    pg_store_cursor *cur = pg_store_cursor_open(txn, ledger->index, errstr, errstr_size);
    if (!cur)
        return PG_ESTORE;
    size_t cap = 0;
    const void *v;
    size_t vlen;
    int rc = pg_store_cursor_find(cur, id, strlen(id), &v, &vlen);
    for (; rc == 0; rc = pg_store_cursor_next_dup(cur, &v, &vlen)) {
        const char *s = v;
        if (vlen < 2 || (dir && s[0] != dir))
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 8;
            char **grown = pg_arena_alloc(arena, cap * sizeof(*grown));
            if (!grown) {
                rc = PG_ENOMEM;
                break;
            }
            if (*count)
                memcpy(grown, *ids, *count * sizeof(*grown));
            *ids = grown;
        }
        if (!((*ids)[*count] = pg_arena_strndup(arena, s + 1, vlen - 1))) {
            rc = PG_ENOMEM;
            break;
        }
        (*count)++;
    }
    pg_store_cursor_close(&cur);
    if (rc == PG_ENOMEM)
        return pg_errf(rc, errstr, errstr_size, "ledger: out of memory");
    return rc == PG_ENOTFOUND ? 0 : rc;
}

static int s_ctx_index_ids(s_ctx *ctx, const char *id, char dir, char ***ids, size_t *count)
{
    return pg_ledger__index_ids(ctx->txn, ctx->ledger, id, dir, ctx->arena, ids, count, ctx->errstr,
                                ctx->errstr_size);
}

/* ------------------------------------------------------------ links */

static int s_str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static int s_date_eq(const pg_date *a, const pg_date *b)
{
    if (!a || !b)
        return a == b;
    return a->year == b->year && a->month == b->month && a->day == b->day;
}

/* An absent marking and an all-unspecified one say the same: never shared. */
static int s_marking_eq(const pg_marking *a, const pg_marking *b)
{
    pg_marking none = POLEGATE__POLE__V1__MARKING__INIT;
    a = a ? a : &none;
    b = b ? b : &none;
    return a->classification == b->classification && a->handling == b->handling &&
           s_str_eq(a->caveat, b->caveat);
}

static int s_link_same(const pg_link_update *a, const pg_link_update *b)
{
    return s_date_eq(a->valid_from, b->valid_from) && s_date_eq(a->valid_to, b->valid_to) &&
           s_marking_eq(a->marking, b->marking);
}

static pg_link_update *s_link_copy(s_ctx *ctx, const pg_link_update *l)
{
    pg_link_update *c = pg_arena_alloc(ctx->arena, sizeof(*c));
    if (c)
        *c = *l;
    return c;
}

/* A copy of *ref with kind from the entity store when ref says UNSPECIFIED. */
static int s_fill_ref(s_ctx *ctx, pg_entity_ref **ref)
{
    if ((*ref)->kind != POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_UNSPECIFIED)
        return 0;
    pg_ledger_rec rec;
    int rc = s_entity_get(ctx, (*ref)->id, &rec);
    if (rc != 0 || !rec.found || rec.hdr.kind == 0)
        return rc;
    pg_entity_ref *c = pg_arena_alloc(ctx->arena, sizeof(*c));
    if (!c)
        return s_nomem(ctx);
    *c = **ref;
    c->kind = (Polegate__Pole__V1__EntityKind)rec.hdr.kind;
    *ref = c;
    return 0;
}

/* Fill in a link copy from state (rule 8). from_entity: the From entity's latest
 * record when the caller has it at hand, else NULL to look it up. */
static int s_fill_link(s_ctx *ctx, pg_link_update *l, const pg_entity_update *from_entity)
{
    int rc = s_fill_ref(ctx, &l->from);
    if (rc == 0)
        rc = s_fill_ref(ctx, &l->to);
    if (rc != 0 || (l->marking && l->modified_at))
        return rc;
    if (!from_entity) {
        pg_ledger_rec rec;
        if ((rc = s_entity_get(ctx, l->from->id, &rec)) != 0 || !rec.found)
            return rc;
        if (!(from_entity = s_entity_unpack(ctx, &rec, l->from->id)))
            return PG_ESTORE;
    }
    if (!l->marking)
        l->marking = from_entity->marking;
    if (!l->modified_at)
        l->modified_at = from_entity->modified_at;
    return 0;
}

/* Rules 4 and 5: an UPSERT of link l, emitted when new or changed. */
static int s_link_upsert(s_ctx *ctx, const pg_link_update *l, const pg_entity_update *from_entity)
{
    pg_ledger_rec rec;
    pg_link_update *c = s_link_copy(ctx, l);
    if (!c)
        return s_nomem(ctx);
    int rc = s_fill_link(ctx, c, from_entity);
    if (rc == 0)
        rc = s_link_get(ctx, c->id, &rec);
    if (rc != 0)
        return rc;
    if (rec.found && !rec.hdr.deleted) {
        pg_link_update *old = s_link_unpack(ctx, &rec, c->id);
        if (!old)
            return PG_ESTORE;
        if (s_link_same(old, c)) {
            ctx->res->unchanged++;
            return 0;
        }
    }
    c->operation = S_UPSERT;
    c->version = rec.found ? rec.hdr.version + 1 : 1;
    return s_emit_link(ctx, c);
}

/* Rule 7: the DELETE of stored link id if it is live, with origin when set (a link
 * DELETE the source stated), else the stored link's own (what destinations were sent:
 * the change that ends the link may be a record they were never given), and the
 * modified_at of the change when set. *killed (may be NULL) receives the stored link
 * (NULL when it was not live). */
static int s_link_kill(s_ctx *ctx, const char *id, const pg_origin *origin,
                       const pg_timestamp *modified_at, pg_link_update **killed)
{
    pg_ledger_rec rec;
    if (killed)
        *killed = NULL;
    int rc = s_link_get(ctx, id, &rec);
    if (rc != 0 || !rec.found || rec.hdr.deleted)
        return rc;
    pg_link_update *old = s_link_unpack(ctx, &rec, id);
    pg_link_update *c = old ? s_link_copy(ctx, old) : NULL;
    if (!c)
        return old ? s_nomem(ctx) : PG_ESTORE;
    c->operation = S_DELETE;
    c->version = rec.hdr.version + 1;
    if (origin)
        c->origin = (pg_origin *)origin;
    if (modified_at)
        c->modified_at = (pg_timestamp *)modified_at;
    if (killed)
        *killed = old;
    return s_emit_link(ctx, c);
}

/* Rule 5: a link DELETE from the adapter. */
static int s_link_delete(s_ctx *ctx, const pg_link_update *l)
{
    pg_ledger_rec rec;
    int rc = s_link_get(ctx, l->id, &rec);
    if (rc != 0)
        return rc;
    if (rec.found && rec.hdr.deleted) {
        ctx->res->unchanged++;
        return 0;
    }
    if (rec.found)
        return s_link_kill(ctx, l->id, l->origin, l->modified_at, NULL);
    pg_link_update *c = s_link_copy(ctx, l);
    if (!c)
        return s_nomem(ctx);
    if ((rc = s_fill_link(ctx, c, NULL)) != 0)
        return rc;
    c->operation = S_DELETE;
    c->version = 1;
    return s_emit_link(ctx, c);
}

static int s_link_do(s_ctx *ctx, const pg_link_update *l, const pg_entity_update *from_entity)
{
    return l->operation == S_DELETE ? s_link_delete(ctx, l) : s_link_upsert(ctx, l, from_entity);
}

/* The survivor a merge recorded for entity id (rule 6), followed through later merges of
 * that survivor; *out NULL when id was never merged away. */
static int s_survivor_of(s_ctx *ctx, const char *id, pg_entity_ref **out)
{
    *out = NULL;
    for (int hops = 0; hops < S_MAX_MERGE_CHAIN; hops++) {
        const void *v;
        size_t vlen;
        int rc = pg_store_get(ctx->txn, ctx->ledger->merged, id, strlen(id), &v, &vlen, ctx->errstr,
                              ctx->errstr_size);
        if (rc == PG_ENOTFOUND)
            return 0;
        if (rc != 0)
            return rc;
        ProtobufCAllocator alloc;
        pg_pb_arena_allocator(ctx->arena, &alloc);
        pg_entity_ref *r = (pg_entity_ref *)protobuf_c_message_unpack(
            &polegate__pole__v1__entity_ref__descriptor, &alloc, vlen, v);
        if (!r || !r->id || !*r->id)
            return pg_errf(PG_ESTORE, ctx->errstr, ctx->errstr_size,
                           "ledger: the survivor stored for merged-away record %s cannot be "
                           "read (corrupt, or out of memory)",
                           id);
        *out = r;
        id = r->id;
    }
    /* a refusal, not a store failure: the sender is not asked to try again for ever */
    return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size,
                   "ledger: merged-away record %s: a chain of more than %d merges leads from "
                   "it; the link cannot be moved to its survivor",
                   id, S_MAX_MERGE_CHAIN);
}

/* Rule 6 for a link that names a merged-away record after its merge (a late message):
 * it belongs to the survivor, as the merge's links do. *out is l when neither end was
 * merged away, else a copy with the survivor's end(s) and id, or NULL (counted
 * unchanged) when it would link the survivor to itself. */
static int s_link_redirect(s_ctx *ctx, const pg_link_update *l, const pg_link_update **out)
{
    *out = l;
    pg_entity_ref *from, *to = NULL;
    int rc = s_survivor_of(ctx, l->from->id, &from);
    if (rc == 0)
        rc = s_survivor_of(ctx, l->to->id, &to);
    if (rc != 0 || (!from && !to))
        return rc;
    pg_link_update *c = s_link_copy(ctx, l);
    char *id = pg_arena_alloc(ctx->arena, PG_UUID_STR_SIZE);
    if (!c || !id)
        return s_nomem(ctx);
    if (from)
        c->from = from;
    if (to)
        c->to = to;
    if (strcmp(c->from->id, c->to->id) == 0) {
        *out = NULL;
        ctx->res->unchanged++;
        return 0;
    }
    if (pg_identity_link(c->from->id, c->role, c->to->id, id) != 0)
        return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size,
                       "ledger: link %s cannot be moved to the survivor of a merge: no link id "
                       "for its ends and role",
                       l->id);
    c->id = id;
    *out = c;
    return 0;
}

static int s_link_apply(s_ctx *ctx, const pg_link_update *l, const pg_entity_update *from_entity)
{
    int rc = s_link_redirect(ctx, l, &l);
    return rc != 0 || !l ? rc : s_link_do(ctx, l, from_entity);
}

/* Delete every live link from and to entity e (rules 3 and 7). */
static int s_links_kill_all(s_ctx *ctx, const pg_entity_update *cause, const char *id)
{
    char **ids;
    size_t n;
    int rc = s_ctx_index_ids(ctx, id, 0, &ids, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = s_link_kill(ctx, ids[i], NULL, cause->modified_at, NULL);
    return rc;
}

/* Rule 10: every live link from and to entity id emitted again (UPSERT, version + 1):
 * a record re-created after a DELETE, whose RMS dropped its links with it. */
static int s_links_restate(s_ctx *ctx, const char *id)
{
    char **ids;
    size_t n;
    int rc = s_ctx_index_ids(ctx, id, 0, &ids, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        pg_ledger_rec lr;
        if ((rc = s_link_get(ctx, ids[i], &lr)) != 0 || !lr.found || lr.hdr.deleted)
            continue;
        pg_link_update *l = s_link_unpack(ctx, &lr, ids[i]);
        pg_link_update *c = l ? s_link_copy(ctx, l) : NULL;
        if (!c)
            return l ? s_nomem(ctx) : PG_ESTORE;
        c->operation = S_UPSERT;
        c->version = lr.hdr.version + 1;
        rc = s_emit_link(ctx, c);
    }
    return rc;
}

/* ------------------------------------------------------------ entities */

static int s_in_ids(const char *const *ids, size_t n, const char *id)
{
    for (size_t j = 0; j < n; j++)
        if (strcmp(ids[j], id) == 0)
            return 1;
    return 0;
}

/* Rule 4: the links of changeset entry idx (owner[j] == idx + 1 marks them), each to a
 * merged-away record moved to its survivor. */
static int s_replace_links(s_ctx *ctx, const pg_entity_update *e, const size_t *owner, size_t idx)
{
    const pg_changeset *in = ctx->in;
    const char **kept = pg_arena_alloc(ctx->arena, (in->count + 1) * sizeof(*kept));
    if (!kept)
        return s_nomem(ctx);
    size_t n_kept = 0;
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < in->count; j++) {
        const pg_link_update *l = in->changes[j].link;
        if (owner[j] != idx + 1 || (rc = s_link_redirect(ctx, l, &l)) != 0 || !l)
            continue;
        kept[n_kept++] = l->id;
        rc = s_link_do(ctx, l, e);
    }
    char **ids;
    size_t n;
    if (rc == 0)
        rc = s_ctx_index_ids(ctx, e->id, PG_LEDGER_FROM, &ids, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!s_in_ids(kept, n_kept, ids[i]))
            rc = s_link_kill(ctx, ids[i], NULL, e->modified_at, NULL);
    return rc;
}

static int s_merged_away(const pg_entity_update *e, const char *id)
{
    for (size_t i = 0; i < e->n_merged_from; i++)
        if (strcmp(e->merged_from[i]->id, id) == 0)
            return 1;
    return 0;
}

/* Rule 6, one link of a merged-away entity: re-create it on the survivor. */
static int s_link_repoint(s_ctx *ctx, const pg_entity_update *e, pg_entity_ref *survivor,
                          const pg_link_update *old, int replaces_links)
{
    pg_link_update *c = s_link_copy(ctx, old);
    if (!c)
        return s_nomem(ctx);
    if (s_merged_away(e, c->from->id) || strcmp(c->from->id, e->id) == 0) {
        c->from = survivor;
        /* the survivor states it now: its marking, not the merged-away record's */
        if (e->marking)
            c->marking = e->marking;
    }
    if (s_merged_away(e, c->to->id) || strcmp(c->to->id, e->id) == 0)
        c->to = survivor;
    if (c->from == c->to || (c->from == survivor && replaces_links))
        return 0;
    char id[PG_UUID_STR_SIZE];
    if (pg_identity_link(c->from->id, c->role, c->to->id, id) != 0)
        return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size,
                       "ledger: link %s cannot be moved to %s: no link id for its ends and role",
                       old->id, e->id);
    pg_ledger_rec rec;
    int rc = s_link_get(ctx, id, &rec);
    if (rc != 0 || (rec.found && !rec.hdr.deleted))
        return rc;
    if (!(c->id = pg_arena_strdup(ctx->arena, id)))
        return s_nomem(ctx);
    c->operation = S_UPSERT;
    c->version = rec.found ? rec.hdr.version + 1 : 1;
    if (e->modified_at)
        c->modified_at = e->modified_at;
    return s_emit_link(ctx, c);
}

/* Rule 6 for a record already deleted: nothing to emit, but it is merged away now, so
 * that no later revision brings it back (rule 2). */
static int s_mark_merged_away(s_ctx *ctx, const char *id, const pg_ledger_rec *rec)
{
    size_t len = sizeof(pg_ledger_hdr) + rec->pblen;
    uint8_t *v = pg_arena_alloc(ctx->arena, len);
    if (!v)
        return s_nomem(ctx);
    pg_ledger_hdr hdr = rec->hdr;
    hdr.deleted = PG_LEDGER_MERGED_AWAY;
    memcpy(v, &hdr, sizeof hdr);
    memcpy(v + sizeof hdr, rec->pb, rec->pblen);
    return pg_store_put(ctx->txn, ctx->ledger->entity, id, strlen(id), v, len, ctx->errstr,
                        ctx->errstr_size);
}

/* Rule 6: the survivor of merged-away record id, for the links that name id later. */
static int s_put_survivor(s_ctx *ctx, const char *id, const pg_entity_ref *survivor)
{
    size_t len = protobuf_c_message_get_packed_size(&survivor->base);
    uint8_t *v = pg_arena_alloc(ctx->arena, len + 1);
    if (!v)
        return s_nomem(ctx);
    protobuf_c_message_pack(&survivor->base, v);
    return pg_store_put(ctx->txn, ctx->ledger->merged, id, strlen(id), v, len, ctx->errstr,
                        ctx->errstr_size);
}

/* A record merges only into one of its kind (ATX: "same type"; NX5: "the same person
 * or object"), an item and a weapon being both an NX5 Property; an unknown kind (0)
 * does not say. */
static int s_kind_mergeable(int a, int b)
{
    const int item = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_ITEM,
              weapon = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_WEAPON;
    return !a || !b || a == b || ((a == item || a == weapon) && (b == item || b == weapon));
}

/* Rule 6, merged_from[j] of survivor e, changeset entry idx. */
static int s_merge_one(s_ctx *ctx, const pg_entity_update *e, pg_entity_ref *survivor, size_t idx,
                       size_t j, int replaces_links)
{
    const pg_entity_ref *ref = e->merged_from[j];
    pg_ledger_rec rec;
    int rc = s_entity_get(ctx, ref->id, &rec);
    if (rc != 0 || (rec.found && rec.hdr.deleted == PG_LEDGER_MERGED_AWAY))
        return rc;
    /* its kind: the stored one, else the one the merge states (never seen before) */
    int kind = rec.found ? (int)rec.hdr.kind : (int)ref->kind;
    if (!s_kind_mergeable(kind, e->kind)) {
        const ProtobufCEnumDescriptor *kinds = &polegate__pole__v1__entity_kind__descriptor;
        const char *was = pg_enum_short(kinds, kind), *is = pg_enum_short(kinds, e->kind);
        return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size,
                       "changes[%zu].entity.merged_from[%zu]: record %s (%s) is a %s, the "
                       "survivor a %s: a merge joins records of one kind",
                       idx, j, ref->id, ref->native_id ? ref->native_id : "", was ? was : "?",
                       is ? is : "?");
    }
    /* the stored record read again: a write may move what rec points into */
    if ((rc = s_put_survivor(ctx, ref->id, survivor)) != 0 ||
        (rc = s_entity_get(ctx, ref->id, &rec)) != 0)
        return rc;
    if (rec.found && rec.hdr.deleted)
        return s_mark_merged_away(ctx, ref->id, &rec);
    pg_entity_update *d =
        PG_PB_NEW(ctx->arena, pg_entity_update, polegate__pole__v1__entity_update);
    if (!d)
        return s_nomem(ctx);
    d->id = ref->id;
    d->operation = S_DELETE;
    d->modified_at = e->modified_at;
    if (rec.found) {
        pg_entity_update *old = s_entity_unpack(ctx, &rec, ref->id);
        if (!old)
            return PG_ESTORE;
        d->version = rec.hdr.version + 1;
        d->origin = old->origin;
        d->kind = old->kind;
        d->marking = old->marking;
        d->retention = old->retention;
    } else {
        d->version = 1;
        d->kind = ref->kind ? ref->kind : e->kind;
        d->marking = e->marking;
        if (e->origin) {
            pg_origin *o = pg_arena_alloc(ctx->arena, sizeof(*o));
            if (!o)
                return s_nomem(ctx);
            *o = *e->origin;
            o->native_id = ref->native_id ? ref->native_id : "";
            d->origin = o;
        }
    }
    if ((rc = s_emit_entity(ctx, d, PG_LEDGER_MERGED_AWAY)) != 0)
        return rc;
    char **ids;
    size_t n;
    if ((rc = s_ctx_index_ids(ctx, ref->id, 0, &ids, &n)) != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        pg_link_update *old;
        rc = s_link_kill(ctx, ids[i], NULL, e->modified_at, &old);
        if (rc == 0 && old)
            rc = s_link_repoint(ctx, e, survivor, old, replaces_links);
    }
    return rc;
}

static int s_merge(s_ctx *ctx, const pg_entity_update *e, size_t idx, int replaces_links)
{
    pg_entity_ref *survivor = PG_PB_NEW(ctx->arena, pg_entity_ref, polegate__pole__v1__entity_ref);
    if (!survivor)
        return s_nomem(ctx);
    survivor->id = e->id;
    survivor->kind = e->kind;
    if (e->origin && e->origin->native_id)
        survivor->native_id = e->origin->native_id;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < e->n_merged_from; i++)
        if (strcmp(e->merged_from[i]->id, e->id) != 0)
            rc = s_merge_one(ctx, e, survivor, idx, i, replaces_links);
    return rc;
}

/* An entity DELETE with what the adapter could not know filled in from the stored
 * record (rule 3), so that no destination refuses a delete for want of a field: its
 * kind (a record never changes kind, and an NX5 Property Delete cannot say whether it
 * was an item or a weapon), its marking, or the caveat a handling-C marking needs (an
 * NX5 Delete has no children), origin, retention, and the modification time (a
 * withdrawal has none). */
static int s_entity_delete_filled(s_ctx *ctx, pg_entity_update *e, const pg_ledger_rec *rec,
                                  pg_entity_update **out)
{
    *out = e;
    if (!rec->found)
        return 0;
    pg_entity_update *old = s_entity_unpack(ctx, rec, e->id);
    pg_entity_update *c = old ? pg_arena_alloc(ctx->arena, sizeof(*c)) : NULL;
    if (!c)
        return old ? s_nomem(ctx) : PG_ESTORE;
    *c = *e;
    if (old->kind)
        c->kind = old->kind;
    if (!c->marking) {
        c->marking = old->marking;
    } else if (c->marking->handling == POLEGATE__POLE__V1__HANDLING__HANDLING_C &&
               (!c->marking->caveat || !*c->marking->caveat) && old->marking &&
               old->marking->caveat && *old->marking->caveat) {
        pg_marking *m = pg_arena_alloc(ctx->arena, sizeof(*m));
        if (!m)
            return s_nomem(ctx);
        *m = *c->marking;
        m->caveat = old->marking->caveat;
        c->marking = m;
    }
    if (!c->origin)
        c->origin = old->origin;
    /* An ATX DELETE carries no retention; NX5 must state it on a Delete. */
    if (!c->retention)
        c->retention = old->retention;
    if (!c->modified_at)
        c->modified_at = old->modified_at;
    *out = c;
    return 0;
}

/* Rule 9: a record whose links change one at a time (NX5) and whose marking changed
 * takes along the links that carried its old marking (rule 8 gave them the record's):
 * each is emitted again with the new one, so that a link is shared, withheld or
 * withdrawn as the record that states it now is. */
static int s_links_remark(s_ctx *ctx, const pg_entity_update *e, const pg_entity_update *old)
{
    if (!old || s_marking_eq(old->marking, e->marking))
        return 0;
    char **ids;
    size_t n;
    int rc = s_ctx_index_ids(ctx, e->id, PG_LEDGER_FROM, &ids, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        pg_ledger_rec lr;
        if ((rc = s_link_get(ctx, ids[i], &lr)) != 0 || !lr.found || lr.hdr.deleted)
            continue;
        pg_link_update *l = s_link_unpack(ctx, &lr, ids[i]);
        if (!l)
            return PG_ESTORE;
        if (!s_marking_eq(l->marking, old->marking))
            continue;
        pg_link_update *c = s_link_copy(ctx, l);
        if (!c)
            return s_nomem(ctx);
        c->marking = e->marking;
        if (e->modified_at)
            c->modified_at = e->modified_at;
        rc = s_link_upsert(ctx, c, e);
    }
    return rc;
}

/* Rules 2, 3, 4 and 6 for changeset entry idx. */
static int s_entity_apply(s_ctx *ctx, size_t idx, const size_t *owner)
{
    const pg_change *ch = &ctx->in->changes[idx];
    pg_entity_update *e = ch->entity;
    pg_ledger_rec rec;
    int rc = s_entity_get(ctx, e->id, &rec);
    if (rc != 0)
        return rc;
    int tie_delete = ctx->ledger->delete_wins_ties && e->operation == S_DELETE && rec.found &&
                     !rec.hdr.deleted && e->version == rec.hdr.version;
    if (rec.found && e->version <= rec.hdr.version && !tie_delete) {
        ctx->res->stale++;
        for (size_t j = 0; j < ctx->in->count; j++)
            ctx->res->stale += owner[j] == idx + 1;
        return 0;
    }
    if (rec.found && rec.hdr.deleted == PG_LEDGER_MERGED_AWAY) {
        if (e->operation == S_DELETE) {
            ctx->res->unchanged++;
            return 0;
        }
        return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size,
                       "changes[%zu].entity: record %s (%s) was merged into another and no "
                       "longer exists; revision %" PRIu64 " cannot bring it back",
                       idx, e->id, e->origin && e->origin->native_id ? e->origin->native_id : "",
                       e->version);
    }
    /* A record never changes kind (an item and a weapon both being an NX5 Property
     * excepted): an NX5 RMS would be sent a Modify of one kind's GID as another */
    if (e->operation == S_UPSERT && rec.found && !s_kind_mergeable((int)rec.hdr.kind, e->kind)) {
        const char *was =
            pg_enum_short(&polegate__pole__v1__entity_kind__descriptor, (int)rec.hdr.kind);
        return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size,
                       "changes[%zu].entity.kind: record %s is a %s; a record never changes kind",
                       idx, e->id, was ? was : "?");
    }
    if (e->operation == S_DELETE) {
        pg_entity_update *d;
        if ((rc = s_entity_delete_filled(ctx, e, &rec, &d)) != 0 ||
            (rc = s_emit_entity(ctx, d, PG_LEDGER_DELETED)) != 0)
            return rc;
        return ctx->ledger->explicit_ ? 0 : s_links_kill_all(ctx, d, d->id);
    }
    /* the stored record, read before the emit below overwrites it */
    const pg_entity_update *old = NULL;
    if (!ch->replaces_links && !ctx->ledger->explicit_ && rec.found && !rec.hdr.deleted &&
        !(old = s_entity_unpack(ctx, &rec, e->id)))
        return PG_ESTORE;
    if ((rc = s_emit_entity(ctx, e, 0)) != 0)
        return rc;
    if (ch->replaces_links ? (rc = s_replace_links(ctx, e, owner, idx))
                           : (rc = s_links_remark(ctx, e, old)))
        return rc;
    if (rc == 0 && ctx->ledger->explicit_ && rec.found && rec.hdr.deleted)
        rc = s_links_restate(ctx, e->id);
    if (rc == 0 && e->n_merged_from && !ctx->ledger->explicit_)
        rc = s_merge(ctx, e, idx, ch->replaces_links);
    return rc;
}

/* ------------------------------------------------------------ message ids */

/* A fingerprint of the changes (FNV-1a of each packed, streamed: nothing allocated),
 * kept with the message id: a re-send has the same changes (the ATX header's sentAt
 * is not one), a reused id other ones. */
typedef struct s_fnv {
    ProtobufCBuffer base;
    uint64_t h;
} s_fnv;

static void s_fnv_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    s_fnv *f = (s_fnv *)b;
    for (size_t i = 0; i < len; i++)
        f->h = (f->h ^ data[i]) * 1099511628211u;
}

static void s_fingerprint(const pg_changeset *in, uint8_t out[8])
{
    s_fnv f = {.base = {.append = s_fnv_append}, .h = 1469598103934665603u};
    for (size_t i = 0; i < in->count; i++) {
        const pg_change *c = &in->changes[i];
        uint8_t type = (uint8_t)c->type;
        s_fnv_append(&f.base, 1, &type);
        protobuf_c_message_pack_to_buffer(
            c->type == PG_CHANGE_ENTITY ? &c->entity->base : &c->link->base, &f.base);
    }
    pg_store_be64_put(out, f.h);
}

/* Remember mid with the fingerprint of its changes (rule 1); forget the oldest ids
 * beyond the limit. */
static int s_seen_add(s_ctx *ctx, const char *mid, const uint8_t fp[8])
{
    pg_ledger *ledger = ctx->ledger;
    pg_store_cursor *cur =
        pg_store_cursor_open(ctx->txn, ledger->msgseq, ctx->errstr, ctx->errstr_size);
    if (!cur)
        return PG_ESTORE;
    const void *k, *v;
    size_t klen, vlen, count = 0, mlen = strlen(mid);
    uint8_t seq[8];
    int rc = pg_store_cursor_last(cur, &k, &klen, NULL, NULL);
    pg_store_be64_put(seq, rc == 0 && klen == 8 ? pg_store_be64_get(k) + 1 : 1);
    if (rc == PG_ENOTFOUND)
        rc = 0;
    uint8_t val[16]; /* sequence, fingerprint (ids kept before fingerprints: 8 bytes) */
    memcpy(val, seq, 8);
    memcpy(val + 8, fp, 8);
    if (rc == 0)
        rc = pg_store_put(ctx->txn, ledger->msgid, mid, mlen, val, sizeof val, ctx->errstr,
                          ctx->errstr_size);
    if (rc == 0)
        rc = pg_store_put(ctx->txn, ledger->msgseq, seq, 8, mid, mlen, ctx->errstr,
                          ctx->errstr_size);
    if (rc == 0)
        rc = pg_store_count(ctx->txn, ledger->msgseq, &count, ctx->errstr, ctx->errstr_size);
    for (; rc == 0 && count > ledger->seen_limit; count--) {
        char old[S_MAX_ID];
        if ((rc = pg_store_cursor_first(cur, NULL, NULL, &v, &vlen)) != 0)
            break;
        vlen = vlen < sizeof old ? vlen : sizeof old;
        memcpy(old, v, vlen);
        if ((rc = pg_store_cursor_del(cur)) != 0)
            break;
        rc = pg_store_del(ctx->txn, ledger->msgid, old, vlen, NULL, 0, ctx->errstr,
                          ctx->errstr_size);
        if (rc == PG_ENOTFOUND)
            rc = 0;
    }
    pg_store_cursor_close(&cur);
    return rc;
}

/* ------------------------------------------------------------ apply */

static int s_id_ok(const char *id)
{
    return id && *id && strlen(id) <= S_MAX_ID;
}

static int s_op_ok(int op)
{
    return op == S_UPSERT || op == S_DELETE;
}

static int s_validate(s_ctx *ctx)
{
    const pg_changeset *in = ctx->in;
    char *es = ctx->errstr;
    size_t esz = ctx->errstr_size;
    if (in->message_id && !s_id_ok(in->message_id))
        return pg_errf(PG_EINVALID, es, esz, "message_id: must be 1-%d bytes", S_MAX_ID);
    for (size_t i = 0; i < in->count; i++) {
        const pg_change *ch = &in->changes[i];
        if (ch->type == PG_CHANGE_ENTITY) {
            const pg_entity_update *e = ch->entity;
            if (!e || !s_id_ok(e->id))
                return pg_errf(PG_EINVALID, es, esz, "changes[%zu].entity.id: required, 1-%d bytes",
                               i, S_MAX_ID);
            if (!s_op_ok(e->operation))
                return pg_errf(PG_EINVALID, es, esz,
                               "changes[%zu].entity.operation: must be UPSERT or DELETE", i);
            for (size_t j = 0; j < e->n_merged_from; j++)
                if (!e->merged_from[j] || !s_id_ok(e->merged_from[j]->id))
                    return pg_errf(PG_EINVALID, es, esz,
                                   "changes[%zu].entity.merged_from[%zu].id: required, 1-%d bytes",
                                   i, j, S_MAX_ID);
        } else if (ch->type == PG_CHANGE_LINK) {
            const pg_link_update *l = ch->link;
            if (!l || !s_id_ok(l->id))
                return pg_errf(PG_EINVALID, es, esz, "changes[%zu].link.id: required, 1-%d bytes",
                               i, S_MAX_ID);
            if (!s_op_ok(l->operation))
                return pg_errf(PG_EINVALID, es, esz,
                               "changes[%zu].link.operation: must be UPSERT or DELETE", i);
            if (!l->from || !s_id_ok(l->from->id))
                return pg_errf(PG_EINVALID, es, esz,
                               "changes[%zu].link.from.id: required, 1-%d bytes", i, S_MAX_ID);
            if (!l->to || !s_id_ok(l->to->id))
                return pg_errf(PG_EINVALID, es, esz,
                               "changes[%zu].link.to.id: required, 1-%d bytes", i, S_MAX_ID);
            if (l->role == POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_UNSPECIFIED)
                return pg_errf(PG_EINVALID, es, esz, "changes[%zu].link.role: required", i);
        } else {
            return pg_errf(PG_EINVALID, es, esz, "changes[%zu]: unknown change type %d", i,
                           (int)ch->type);
        }
    }
    return 0;
}

/* owner[j] = i + 1 when link change j belongs to the replaces_links entity change i. */
static size_t *s_owners(s_ctx *ctx)
{
    const pg_changeset *in = ctx->in;
    size_t *owner = pg_arena_alloc(ctx->arena, (in->count ? in->count : 1) * sizeof(*owner));
    if (!owner)
        return NULL;
    for (size_t i = 0; i < in->count; i++) {
        const pg_change *ch = &in->changes[i];
        if (ch->type != PG_CHANGE_ENTITY || !ch->replaces_links)
            continue;
        for (size_t j = 0; j < in->count; j++) {
            const pg_change *lc = &in->changes[j];
            if (lc->type == PG_CHANGE_LINK && !owner[j] &&
                strcmp(lc->link->from->id, ch->entity->id) == 0)
                owner[j] = i + 1;
        }
    }
    return owner;
}

static int s_apply(s_ctx *ctx)
{
    const pg_changeset *in = ctx->in;
    int rc;
    uint8_t fp[8];
    if (in->message_id) {
        const void *v;
        size_t vlen;
        s_fingerprint(in, fp);
        rc = pg_store_get(ctx->txn, ctx->ledger->msgid, in->message_id, strlen(in->message_id), &v,
                          &vlen, ctx->errstr, ctx->errstr_size);
        if (rc == 0 && vlen >= 16 && memcmp((const uint8_t *)v + 8, fp, 8))
            return pg_errf(PG_EINVALID, ctx->errstr, ctx->errstr_size,
                           "message id %s was taken before for a message with other changes: "
                           "give each message an id of its own (this one is not applied)",
                           in->message_id);
        if (rc == 0) {
            ctx->res->duplicate = 1;
            return 0;
        }
        if (rc != PG_ENOTFOUND)
            return rc;
    }
    if ((rc = s_validate(ctx)) != 0)
        return rc;
    size_t *owner = s_owners(ctx);
    if (!owner)
        return s_nomem(ctx);
    for (size_t i = 0; rc == 0 && i < in->count; i++) {
        const pg_change *ch = &in->changes[i];
        if (ch->type == PG_CHANGE_ENTITY)
            rc = s_entity_apply(ctx, i, owner);
        else if (!owner[i])
            rc = s_link_apply(ctx, ch->link, NULL);
    }
    if (rc == 0 && in->message_id)
        rc = s_seen_add(ctx, in->message_id, fp);
    return rc;
}

int pg_ledger_apply(pg_ledger *self, pg_store_txn *txn, const pg_changeset *in, pg_changeset *out,
                    pg_ledger_result *res, char *errstr, size_t errstr_size)
{
    memset(res, 0, sizeof(*res));
    if (errstr && errstr_size)
        *errstr = '\0';
    if (!pg_store_txn_writable(txn))
        return pg_errf(PG_EUSAGE, errstr, errstr_size, "ledger: apply needs a write transaction");
    /* A child transaction makes the call all or nothing without touching what the
     * caller has already done in txn. */
    pg_store_txn *child = pg_store_begin_child(txn, errstr, errstr_size);
    if (!child)
        return PG_ESTORE;
    s_ctx ctx = {.ledger = self,
                 .txn = child,
                 .in = in,
                 .out = out,
                 .arena = out->arena,
                 .res = res,
                 .errstr = errstr,
                 .errstr_size = errstr_size};
    size_t mark = out->count;
    int rc = s_apply(&ctx);
    if (rc == 0)
        rc = pg_store_commit(&child, errstr, errstr_size);
    else
        pg_store_abort(&child);
    if (rc != 0) {
        out->count = mark;
        memset(res, 0, sizeof(*res));
        return rc;
    }
    if (errstr && errstr_size)
        *errstr = '\0'; /* a lookup that found nothing may have left its note */
    if (!out->message_id)
        out->message_id = in->message_id;
    if (!out->force)
        out->force = in->force;
    if (!out->system)
        out->system = in->system;
    return 0;
}

/* ------------------------------------------------------------ life cycle */

static int s_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 32)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

/* Databases of the ledger, and a format mark so that a later incompatible layout is
 * refused instead of misread. */
static int s_open_dbs(pg_ledger *self, pg_store_txn *txn, const char *name, char *errstr,
                      size_t errstr_size)
{
    struct {
        const char *suffix;
        unsigned flags;
        pg_store_db *db;
    } dbs[] = {{"entity", 0, &self->entity},
               {"link", 0, &self->link},
               {"index", PG_STORE_DUPSORT, &self->index},
               {"msgid", 0, &self->msgid},
               {"msgseq", 0, &self->msgseq},
               {"merged", 0, &self->merged}};
    char dbname[64];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof dbs / sizeof dbs[0]; i++) {
        snprintf(dbname, sizeof dbname, "%s.%s", name, dbs[i].suffix);
        rc = pg_store_db_open(txn, dbname, dbs[i].flags, dbs[i].db, errstr, errstr_size);
    }
    pg_store_db meta;
    snprintf(dbname, sizeof dbname, "%s.meta", name);
    if (rc == 0)
        rc = pg_store_db_open(txn, dbname, 0, &meta, errstr, errstr_size);
    if (rc != 0)
        return rc;
    const void *v;
    size_t vlen;
    rc = pg_store_get(txn, meta, "format", 6, &v, &vlen, errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        return pg_store_put(txn, meta, "format", 6, S_FORMAT, strlen(S_FORMAT), errstr,
                            errstr_size);
    if (rc == 0 && (vlen != strlen(S_FORMAT) || memcmp(v, S_FORMAT, vlen) != 0))
        return pg_errf(PG_ESTORE, errstr, errstr_size,
                       "ledger %s: the store holds format %.*s, this build reads format %s", name,
                       (int)(vlen > 16 ? 16 : vlen), (const char *)v, S_FORMAT);
    return rc;
}

pg_ledger *pg_ledger_new_named(pg_store *store, const char *name, char *errstr, size_t errstr_size)
{
    if (!s_name_ok(name)) {
        pg_errf(PG_EUSAGE, errstr, errstr_size, "ledger: name must be 1-32 of [a-z0-9_-]");
        return NULL;
    }
    pg_ledger *self = calloc(1, sizeof(*self));
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "ledger: out of memory");
        return NULL;
    }
    self->store = store;
    self->seen_limit = PG_LEDGER_DEFAULT_SEEN_LIMIT;
    pg_store_txn *txn = pg_store_begin(store, 1, errstr, errstr_size);
    if (!txn)
        goto err;
    int rc = s_open_dbs(self, txn, name, errstr, errstr_size);
    if (rc != 0) {
        pg_store_abort(&txn);
        goto err;
    }
    if (pg_store_commit(&txn, errstr, errstr_size) != 0)
        goto err;
    return self;
err:
    free(self);
    return NULL;
}

pg_ledger *pg_ledger_new(pg_store *store, char *errstr, size_t errstr_size)
{
    return pg_ledger_new_named(store, "ledger", errstr, errstr_size);
}

void pg_ledger_destroy(pg_ledger **p)
{
    if (!p || !*p)
        return;
    free(*p);
    *p = NULL;
}

void pg_ledger_set_explicit(pg_ledger *self, int on)
{
    self->explicit_ = !!on;
}

void pg_ledger_set_delete_wins_ties(pg_ledger *self, int on)
{
    self->delete_wins_ties = !!on;
}

int pg_ledger_set_seen_limit(pg_ledger *self, size_t limit)
{
    if (limit == 0)
        return PG_EUSAGE;
    self->seen_limit = limit;
    return 0;
}
