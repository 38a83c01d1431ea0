/* pg_partner: the partner direction: checks, partner ledger, compose, outbox, delivery,
 * offsets; the daemon's thread around it; echoes at intake. */
#include "partner.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/identity.h"

#define S_UPSERT POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT
#define S_DELETE POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE
#define S_TYPE_ENTITY "polegate.pole.v1.EntityUpdate"
#define S_TYPE_LINK "polegate.pole.v1.LinkUpdate"
#define S_ID_MAX 128

/* A composed message: in the outbox, and in memory until submitted. */
typedef struct s_msg {
    uint64_t seq;
    char id[S_ID_MAX + 1]; /* correlation id */
    uint8_t *data;
    size_t len;
} s_msg;

/* The next offset of one (topic, partition) in one batch. */
typedef struct s_off {
    char *topic;
    int32_t partition;
    int64_t next;
} s_off;

/* A batch taken: committable once every message up to last_seq has its result. */
typedef struct s_batch {
    uint64_t last_seq;
    s_off *offs;
    size_t n_offs;
} s_batch;

/* A message the RMS rejected, until its dead letter is kept. */
typedef struct s_reject {
    uint64_t seq;
    char id[S_ID_MAX + 1];
    char *reason;
    int64_t at_ms; /* when the RMS rejected it */
    int audited;
} s_reject;

/* An audit event to write once the batch has committed. */
typedef struct s_audit_ev {
    pg_audit_action action;
    const char *id, *native_id, *origin, *partner, *agreement, *outcome;
    uint64_t version;
} s_audit_ev;

struct pg_partner {
    char force[8];
    const pg_adapter_ops *adapter;
    const pg_policy *policy;
    pg_store *store;
    pg_audit *audit;
    pg_ledger *ledger;
    pg_idstore *idmap;
    pg_compose *compose;
    pg_rms_delivery *delivery;
    pg_store_db seen, outbox, meta;
    pg_store_db outids; /* seq -> "<forces>\0<canonical ids>" of an outbox message */
    pg_dlq *dlq;        /* rejected messages: import dead letters */
    char instance[37];
    uint64_t next_seq; /* the next outbox sequence number */
    uint64_t resolved; /* every message up to this sequence is settled */
    uint64_t answered; /* every message up to this sequence has its result */
    s_reject *rejects; /* rejected, dead letter not yet kept: oldest first */
    size_t n_rejects, cap_rejects;
    uint64_t hold; /* a rejected message that could not be noted: nothing settles past it */
    pg_buf scratch;
    s_msg *queue; /* composed, not yet submitted: a FIFO */
    size_t q_head, q_len, q_cap;
    s_msg *staged; /* composed by the take in progress */
    size_t n_staged, cap_staged;
    uint64_t *done; /* results to remove from the outbox */
    size_t n_done, cap_done;
    s_batch *batches; /* taken, offsets not yet committable, oldest first */
    size_t b_len, b_cap;
    pg_changeset *acc; /* the accepted updates of a take */
    pg_changeset *out; /* what the ledger published for them */
    s_audit_ev *events;
    size_t n_events, cap_events;
    s_off *offs; /* the take's offsets */
    size_t n_offs, cap_offs;
    pg_partner_stats stats;
    pg_partner_stats delta; /* of the take in progress */
    int64_t removed_at;     /* when acknowledged messages were last removed */
};

static int s_nomem(char *errstr, size_t errstr_size)
{
    return pg_errf(PG_ENOMEM, errstr, errstr_size, "partner: out of memory");
}

/* ------------------------------------------------------------ outbox and meta */

static int s_open_dbs(pg_partner *p, char *errstr, size_t errstr_size)
{
    pg_store_txn *txn = pg_store_begin(p->store, 1, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    int rc = pg_store_db_open(txn, "partner.seen", 0, &p->seen, errstr, errstr_size);
    if (!rc)
        rc = pg_store_db_open(txn, "partner.outbox", 0, &p->outbox, errstr, errstr_size);
    if (!rc)
        rc = pg_store_db_open(txn, "partner.meta", 0, &p->meta, errstr, errstr_size);
    if (!rc)
        rc = pg_store_db_open(txn, "partner.outids", 0, &p->outids, errstr, errstr_size);
    const void *v;
    size_t vlen;
    if (!rc) {
        /* The instance id makes correlation ids unique to this store for ever. */
        rc = pg_store_get(txn, p->meta, "instance", 8, &v, &vlen, errstr, errstr_size);
        if (rc == 0 && vlen == 36) {
            memcpy(p->instance, v, 36);
            p->instance[36] = 0;
        } else if (rc == 0 || rc == PG_ENOTFOUND) {
            uuid_t u;
            uuid_generate_random(u);
            uuid_unparse_lower(u, p->instance);
            rc = pg_store_put(txn, p->meta, "instance", 8, p->instance, 36, errstr, errstr_size);
        }
    }
    if (!rc) {
        rc = pg_store_get(txn, p->meta, "seq", 3, &v, &vlen, errstr, errstr_size);
        p->next_seq = 1;
        if (rc == 0 && vlen == 8)
            p->next_seq = pg_store_be64_get(v) + 1;
        if (rc == PG_ENOTFOUND)
            rc = 0;
    }
    if (rc) {
        pg_store_abort(&txn);
        return rc;
    }
    return pg_store_commit(&txn, errstr, errstr_size);
}

static int s_queue_push(pg_partner *p, const s_msg *m)
{
    if (p->q_len == p->q_cap) {
        size_t cap = p->q_cap ? p->q_cap * 2 : 64;
        s_msg *q = malloc(cap * sizeof *q);
        if (!q)
            return PG_ENOMEM;
        for (size_t i = 0; i < p->q_len; i++)
            q[i] = p->queue[(p->q_head + i) % p->q_cap];
        free(p->queue);
        p->queue = q;
        p->q_cap = cap;
        p->q_head = 0;
    }
    p->queue[(p->q_head + p->q_len++) % p->q_cap] = *m;
    return 0;
}

/* What an earlier run composed and the RMS did not acknowledge: sent first. */
static int s_load_outbox(pg_partner *p, char *errstr, size_t errstr_size)
{
    pg_store_txn *txn = pg_store_begin(p->store, 0, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    pg_store_cursor *cur = pg_store_cursor_open(txn, p->outbox, errstr, errstr_size);
    int rc = cur ? 0 : PG_ESTORE;
    const void *k, *v;
    size_t klen, vlen;
    uint64_t first = 0;
    for (int r = cur ? pg_store_cursor_first(cur, &k, &klen, &v, &vlen) : PG_ENOTFOUND;
         rc == 0 && r == 0; r = pg_store_cursor_next(cur, &k, &klen, &v, &vlen)) {
        const uint8_t *b = v;
        if (klen != 8 || vlen < 1 || vlen < 1u + b[0]) {
            rc = pg_errf(PG_ESTORE, errstr, errstr_size, "partner: outbox entry is corrupt");
            break;
        }
        s_msg m = {.seq = pg_store_be64_get(k), .len = vlen - 1 - b[0]};
        memcpy(m.id, b + 1, b[0]);
        m.id[b[0]] = 0;
        m.data = malloc(m.len ? m.len : 1);
        if (!m.data || s_queue_push(p, &m)) {
            free(m.data);
            rc = s_nomem(errstr, errstr_size);
            break;
        }
        memcpy(m.data, b + 1 + b[0], m.len);
        if (!first)
            first = m.seq;
    }
    pg_store_cursor_close(&cur);
    pg_store_abort(&txn);
    p->resolved = p->answered = (first ? first : p->next_seq) - 1;
    if (!rc && p->q_len)
        pg_log(PG_LOG_INFO,
               "partner: %zu message(s) from the last run not yet stored by the RMS: "
               "sending them again first",
               p->q_len);
    return rc;
}

/* ------------------------------------------------------------ delivery results */

static int64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Settled up to the first rejected message whose dead letter is not kept yet: the
 * offsets behind it wait for that. */
static void s_update_resolved(pg_partner *p)
{
    uint64_t r = p->n_rejects ? p->rejects[0].seq - 1 : p->answered;
    if (p->hold && r > p->hold - 1)
        r = p->hold - 1;
    if (r > p->resolved)
        p->resolved = r;
}

static void s_on_result(void *arg, const pg_rms_delivery_result *r)
{
    pg_partner *p = arg;
    uint64_t seq = (uint64_t)(uintptr_t)r->tag;
    if (seq > p->answered)
        p->answered = seq;
    if (r->status != 0) {
        p->stats.rms_rejected++;
        const char *reason = r->reason && *r->reason ? r->reason : "no reason given";
        pg_log(PG_LOG_ERROR,
               "partner: the RMS rejected message %s: %s (not sent again; kept as a dead "
               "letter)",
               r->id, reason);
        char *dup = strdup(reason);
        if (dup && pg_grow((void **)&p->rejects, &p->cap_rejects, p->n_rejects + 1,
                           sizeof *p->rejects) == 0) {
            s_reject *x = &p->rejects[p->n_rejects++];
            *x = (s_reject){.seq = seq, .reason = dup, .at_ms = s_wall_ms()};
            snprintf(x->id, sizeof x->id, "%s", r->id ? r->id : "");
        } else {
            /* left in the outbox, and nothing settled past it in this run: sent again
             * (and rejected again, then kept) after a restart */
            free(dup);
            pg_log(PG_LOG_WARN, "partner: out of memory; message %s stays in the outbox", r->id);
            if (!p->hold)
                p->hold = seq;
        }
        s_update_resolved(p);
        return;
    }
    p->stats.stored++;
    s_update_resolved(p);
    if (pg_grow((void **)&p->done, &p->cap_done, p->n_done + 1, sizeof *p->done) == 0)
        p->done[p->n_done++] = seq;
    else /* left in the outbox: sent again (and recognised) after a restart */
        pg_log(PG_LOG_WARN, "partner: out of memory; message %s stays in the outbox", r->id);
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
    pg_idstore_config icfg = {.format = opts->adapter->format, .atx_prefix = opts->atx_id_prefix};
    if (!(p->ledger = pg_ledger_new_named(p->store, "partner", errstr, errstr_size)) ||
        !(p->idmap = pg_idstore_new(p->store, &icfg, errstr, errstr_size)))
        goto err;
    pg_ledger_set_delete_wins_ties(p->ledger, 1);
    pg_compose_opts copts = {
        .adapter = p->adapter, .ledger = p->ledger, .idmap = p->idmap, .now_ms = opts->now_ms};
    if (!(p->compose = pg_compose_new(&copts, errstr, errstr_size)))
        goto err;
    if (!(p->acc = pg_changeset_new()) || !(p->out = pg_changeset_new())) {
        s_nomem(errstr, errstr_size);
        goto err;
    }
    if (s_open_dbs(p, errstr, errstr_size) || s_load_outbox(p, errstr, errstr_size))
        goto err;
    if (!(p->dlq = pg_dlq_new(p->store, &opts->dlq_limits, errstr, errstr_size)))
        goto err;
    pg_rms_delivery_config dcfg = opts->delivery;
    dcfg.on_result = s_on_result;
    dcfg.on_result_arg = p;
    if (!dcfg.extension)
        dcfg.extension = opts->adapter->format[0] == 'a' ? "ndjson" : "xml";
    if (!(p->delivery = pg_rms_delivery_new(&dcfg, errstr, errstr_size)))
        goto err;
    return p;
err:
    pg_partner_destroy(&p);
    return NULL;
}

/* Forget acknowledged messages from the outbox, in txn. */
static int s_delete_done(pg_partner *p, pg_store_txn *txn, char *errstr, size_t errstr_size)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->n_done; i++) {
        uint8_t key[8];
        pg_store_be64_put(key, p->done[i]);
        rc = pg_store_del(txn, p->outbox, key, 8, NULL, 0, errstr, errstr_size);
        if (rc == PG_ENOTFOUND)
            rc = 0;
        if (rc == 0)
            rc = pg_store_del(txn, p->outids, key, 8, NULL, 0, errstr, errstr_size);
        if (rc == PG_ENOTFOUND)
            rc = 0;
    }
    return rc;
}

/* The audit "reject" events of one rejected message: one per canonical id it carried
 * (one without an id when they are not known), metadata only. */
static void s_audit_reject(pg_partner *p, const char *forces, const char *ids)
{
    if (!p->audit)
        return;
    char why[PG_ERRSTR_SIZE];
    const char *f = forces, *i = ids;
    do {
        char id[S_ID_MAX + 1] = "", force[16] = "";
        size_t il = strcspn(i, ","), fl = strcspn(f, ",");
        snprintf(id, sizeof id, "%.*s", (int)il, i);
        snprintf(force, sizeof force, "%.*s", (int)fl, f);
        pg_audit_event ev = {.action = PG_AUDIT_REJECT,
                             .entity_id = *id && strcmp(id, "-") ? id : NULL,
                             .origin = *force && strcmp(force, "-") ? force : NULL,
                             .policy_version = pg_policy_version(p->policy),
                             .outcome = "rms-rejected"};
        if (pg_audit_append(p->audit, &ev, why, sizeof why))
            pg_log(PG_LOG_ERROR, "partner: audit: %s", why);
        i += il + (i[il] == ',');
        f += fl + (f[fl] == ',');
    } while (*i);
    if (pg_audit_sync(p->audit, why, sizeof why))
        pg_log(PG_LOG_ERROR, "partner: audit: %s", why);
}

/* The distinct forces of "<force>,<force>..." into out, comma-separated. */
static void s_distinct_forces(const char *forces, char *out, size_t size)
{
    out[0] = 0;
    for (const char *f = forces; *f;) {
        size_t fl = strcspn(f, ",");
        char one[16];
        snprintf(one, sizeof one, "%.*s", (int)fl, f);
        int seen = 0;
        for (const char *o = out; *o && !seen;) {
            size_t ol = strcspn(o, ",");
            seen = ol == strlen(one) && !strncmp(o, one, ol);
            o += ol + (o[ol] == ',');
        }
        size_t n = strlen(out);
        if (!seen && strcmp(one, "-") && n + fl + 2 < size)
            snprintf(out + n, size - n, "%s%s", n ? "," : "", one);
        f += fl + (*(f + fl) == ',');
    }
}

/* Keep every rejected message as an import dead letter: in ONE write transaction, the
 * dead letter (the outbox's bytes, the RMS's reason, forces, ids, format, time) is
 * added and the outbox entry removed, so a crash leaves either the outbox entry (sent
 * again at the next start, rejected again, kept then) or the dead letter, never both
 * and never neither. The audit "reject" events go first (a crash in between logs one
 * twice, never not at all). Then the offsets behind them may be committed. */
static int s_settle_rejects(pg_partner *p, char *errstr, size_t errstr_size)
{
    if (!p->n_rejects)
        return 0;
    pg_store_txn *txn = pg_store_begin(p->store, 1, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < p->n_rejects; i++) {
        s_reject *x = &p->rejects[i];
        uint8_t key[8];
        pg_store_be64_put(key, x->seq);
        const void *v, *w;
        size_t vlen, wlen;
        rc = pg_store_get(txn, p->outbox, key, 8, &v, &vlen, errstr, errstr_size);
        if (rc == PG_ENOTFOUND) { /* already settled */
            rc = 0;
            continue;
        }
        const uint8_t *b = v;
        if (rc == 0 && (vlen < 1 || vlen < 1u + b[0]))
            rc = pg_errf(PG_ESTORE, errstr, errstr_size, "partner: outbox entry is corrupt");
        if (rc)
            break;
        const char *forces = "", *ids = "";
        int r = pg_store_get(txn, p->outids, key, 8, &w, &wlen, errstr, errstr_size);
        if (r == 0 && wlen > 0 && ((const char *)w)[wlen - 1] == 0 && memchr(w, 0, wlen - 1)) {
            forces = w;
            ids = forces + strlen(forces) + 1;
        } else if (r && r != PG_ENOTFOUND) {
            rc = r;
            break;
        }
        char origin[256];
        s_distinct_forces(forces, origin, sizeof origin);
        if (!x->audited) {
            s_audit_reject(p, forces, ids);
            x->audited = 1;
        }
        /* pointers into the store stay valid until this transaction writes: copy */
        size_t mlen = vlen - 1 - b[0];
        char *idcopy = strdup(ids);
        uint8_t *data = malloc(mlen ? mlen : 1);
        if (!idcopy || !data) {
            free(idcopy);
            free(data);
            rc = s_nomem(errstr, errstr_size);
            break;
        }
        memcpy(data, b + 1 + b[0], mlen);
        pg_dlq_entry de = {.received_ms = x->at_ms,
                           .reason = x->reason,
                           .origin = origin,
                           .format = p->adapter->format,
                           .data = data,
                           .len = mlen,
                           .kind = PG_DLQ_IMPORT,
                           .ref = x->id,
                           .ids = idcopy};
        size_t evicted = 0;
        rc = pg_dlq_add(p->dlq, txn, &de, &evicted, errstr, errstr_size);
        free(data);
        free(idcopy);
        if (rc == 0)
            rc = pg_store_del(txn, p->outbox, key, 8, NULL, 0, errstr, errstr_size);
        if (rc == 0)
            rc = pg_store_del(txn, p->outids, key, 8, NULL, 0, errstr, errstr_size);
        if (rc == PG_ENOTFOUND)
            rc = 0;
        if (rc == 0)
            pg_log(PG_LOG_WARN,
                   "partner: message %s kept as dead letter %" PRIu64 " (polegate dlq show %" PRIu64
                   ")%s",
                   x->id, de.id, de.id, evicted ? "; the oldest dead letters were evicted" : "");
    }
    if (rc == 0)
        rc = pg_store_commit(&txn, errstr, errstr_size);
    pg_store_abort(&txn);
    if (rc)
        return rc;
    for (size_t i = 0; i < p->n_rejects; i++)
        free(p->rejects[i].reason);
    p->n_rejects = 0;
    s_update_resolved(p);
    return 0;
}

static int64_t s_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Removals ride on the next take's commit; on their own, at most every
 * S_REMOVE_EVERY_MS: a removal lost in a crash only makes the message go again with
 * its correlation id, which the RMS acknowledges without storing it twice. */
#define S_REMOVE_EVERY_MS 500

static int s_remove_done(pg_partner *p, int now, char *errstr, size_t errstr_size)
{
    if (!p->n_done || (!now && s_clock_ms() - p->removed_at < S_REMOVE_EVERY_MS))
        return 0;
    pg_store_txn *txn = pg_store_begin(p->store, 1, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    int rc = s_delete_done(p, txn, errstr, errstr_size);
    if (rc == 0)
        rc = pg_store_commit(&txn, errstr, errstr_size);
    pg_store_abort(&txn);
    if (rc == 0) {
        p->n_done = 0;
        p->removed_at = s_clock_ms();
    }
    return rc;
}

static void s_free_batch(s_batch *b)
{
    for (size_t i = 0; i < b->n_offs; i++)
        free(b->offs[i].topic);
    free(b->offs);
}

static void s_drop_staged(pg_partner *p)
{
    for (size_t i = 0; i < p->n_staged; i++)
        free(p->staged[i].data);
    p->n_staged = 0;
}

static void s_drop_offs(pg_partner *p)
{
    for (size_t i = 0; i < p->n_offs; i++)
        free(p->offs[i].topic);
    p->n_offs = 0;
}

void pg_partner_destroy(pg_partner **pp)
{
    if (!pp || !*pp)
        return;
    pg_partner *p = *pp;
    char why[PG_ERRSTR_SIZE];
    if (p->store && p->dlq && s_settle_rejects(p, why, sizeof why))
        pg_log(PG_LOG_WARN, "partner: %s (rejected messages go again at the next start)", why);
    if (p->store && p->outbox && s_remove_done(p, 1, why, sizeof why))
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
        s_free_batch(&p->batches[i]);
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

/* One take's context. */
typedef struct s_take {
    pg_partner *p;
    pg_store_txn *txn;
    char *errstr;
    size_t errstr_size;
} s_take;

static int s_note_event(pg_partner *p, pg_audit_action action, const char *id,
                        const char *native_id, const char *origin, const pg_policy_partner *partner,
                        uint64_t version, const char *outcome)
{
    if (!p->audit)
        return 0;
    if (pg_grow((void **)&p->events, &p->cap_events, p->n_events + 1, sizeof *p->events))
        return PG_ENOMEM;
    pg_arena *a = p->acc->arena;
    s_audit_ev *e = &p->events[p->n_events++];
    *e = (s_audit_ev){.action = action, .version = version, .outcome = outcome};
    e->id = id && *id ? pg_arena_strdup(a, id) : NULL;
    e->native_id = native_id && *native_id ? pg_arena_strdup(a, native_id) : NULL;
    e->origin = origin && *origin ? pg_arena_strdup(a, origin) : NULL;
    e->partner = partner ? partner->force : NULL;
    e->agreement = partner ? partner->agreement : NULL;
    return 0;
}

static int s_note_offset(pg_partner *p, const pg_partner_record *r)
{
    for (size_t i = 0; i < p->n_offs; i++)
        if (p->offs[i].partition == r->partition && !strcmp(p->offs[i].topic, r->topic)) {
            if (r->offset + 1 > p->offs[i].next)
                p->offs[i].next = r->offset + 1;
            return 0;
        }
    if (pg_grow((void **)&p->offs, &p->cap_offs, p->n_offs + 1, sizeof *p->offs))
        return PG_ENOMEM;
    char *t = strdup(r->topic);
    if (!t)
        return PG_ENOMEM;
    p->offs[p->n_offs++] = (s_off){.topic = t, .partition = r->partition, .next = r->offset + 1};
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

/* One record: checks, then into p->acc. */
static int s_record(s_take *t, const pg_partner_record *r)
{
    pg_partner *p = t->p;
    int rc = s_note_offset(p, r);
    if (rc)
        return s_nomem(t->errstr, t->errstr_size);
    int entity = r->type && !strcmp(r->type, S_TYPE_ENTITY);
    if (!r->value || !r->type || (!entity && strcmp(r->type, S_TYPE_LINK))) {
        /* a tombstone is compaction's business; anything else skipped gets a reason */
        if (r->value)
            pg_log(PG_LOG_WARN, "partner: %s [%d] offset %" PRId64 ": skipped: pg-type %s",
                   r->topic, (int)r->partition, r->offset,
                   r->type ? r->type : "missing (or longer than the consumer keeps)");
        p->delta.skipped++;
        return 0;
    }
    ProtobufCAllocator alloc;
    pg_pb_arena_allocator(p->acc->arena, &alloc);
    pg_change ch = {.type = entity ? PG_CHANGE_ENTITY : PG_CHANGE_LINK};
    if (entity)
        ch.entity = polegate__pole__v1__entity_update__unpack(&alloc, r->len, r->value);
    else
        ch.link = polegate__pole__v1__link_update__unpack(&alloc, r->len, r->value);
    const char *bad =
        !ch.entity && !ch.link ? "not a valid protobuf of its pg-type" : s_invalid(&ch);
    const pg_origin *o =
        entity ? (ch.entity ? ch.entity->origin : NULL) : (ch.link ? ch.link->origin : NULL);
    const char *id =
        entity ? (ch.entity ? ch.entity->id : r->key) : (ch.link ? ch.link->id : r->key);
    const char *native = o ? o->native_id : NULL;
    uint64_t version =
        entity ? (ch.entity ? ch.entity->version : 0) : (ch.link ? ch.link->version : 0);
    const char *force = o && o->force && *o->force ? o->force : r->force;
    if (bad) {
        pg_log(PG_LOG_WARN, "partner: %s [%d] offset %" PRId64 ": rejected: %s", r->topic,
               (int)r->partition, r->offset, bad);
        p->delta.rejected++;
        return s_note_event(p, PG_AUDIT_REJECT, id, native, force, NULL, version, "PG_EINVALID")
                   ? s_nomem(t->errstr, t->errstr_size)
                   : 0;
    }
    if (force && !strcmp(force, p->force)) {
        p->delta.own++; /* our own record: never delivered back */
        return 0;
    }
    const pg_policy_partner *partner = NULL;
    char why[PG_ERRSTR_SIZE];
    if (pg_policy_inbound_allowed(p->policy, r->topic, force, &partner, why, sizeof why)) {
        pg_log(PG_LOG_WARN, "partner: %s [%d] offset %" PRId64 ": rejected: %s", r->topic,
               (int)r->partition, r->offset, why);
        p->delta.rejected++;
        if (s_note_event(p, PG_AUDIT_REJECT, id, native, force, partner, version, "PG_EPOLICY"))
            return s_nomem(t->errstr, t->errstr_size);
        return 0;
    }
    /* The topic contract (docs/topics.md): the highest version per key, and at an
     * equal version a DELETE wins (a withdrawal carries the version we hold). */
    uint64_t last;
    int last_deleted;
    int del = entity ? ch.entity->operation == S_DELETE : ch.link->operation == S_DELETE;
    if ((rc = s_seen_get(t, id, &last, &last_deleted)))
        return rc;
    if (last && (version < last || (version == last && (!del || last_deleted)))) {
        if (version == last)
            p->delta.duplicates++;
        else
            p->delta.stale++;
        return 0;
    }
    if ((rc = s_seen_put(t, id, version, del)))
        return rc;
    rc = entity ? pg_changeset_add_entity(p->acc, ch.entity, 0)
                : pg_changeset_add_link(p->acc, ch.link);
    if (rc)
        return s_nomem(t->errstr, t->errstr_size);
    p->delta.accepted++;
    pg_audit_action action =
        entity && ch.entity->operation == S_DELETE ? PG_AUDIT_ERASE : PG_AUDIT_RECEIVE;
    if (s_note_event(p, action, id, native, force, partner, version, "ok"))
        return s_nomem(t->errstr, t->errstr_size);
    return 0;
}

/* What a message carries, for its dead letter should the RMS reject it: under seq in
 * partner.outids, "<force>,<force>...\0<id>,<id>..." (one force per id). */
static int s_put_outids(pg_partner *p, pg_store_txn *txn, uint64_t seq, const pg_changeset *cs,
                        char *errstr, size_t errstr_size)
{
    pg_buf *b = &p->scratch;
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
    uint8_t key[8];
    pg_store_be64_put(key, seq);
    return pg_store_put(txn, p->outids, key, 8, b->data, b->len, errstr, errstr_size);
}

/* The sink of compose: each message into the outbox, and staged for the queue. */
static int s_emit(void *arg, const uint8_t *msg, size_t len, const pg_changeset *cs)
{
    s_take *t = arg;
    pg_partner *p = t->p;
    if (pg_grow((void **)&p->staged, &p->cap_staged, p->n_staged + 1, sizeof *p->staged))
        return s_nomem(t->errstr, t->errstr_size);
    s_msg m = {.seq = p->next_seq + p->n_staged, .len = len};
    int idlen = snprintf(m.id, sizeof m.id, "pg-%s-%020" PRIu64, p->instance, m.seq);
    uint8_t key[8];
    pg_store_be64_put(key, m.seq);
    void *v;
    int rc = pg_store_put_reserve(t->txn, p->outbox, key, 8, 1 + (size_t)idlen + len, &v, t->errstr,
                                  t->errstr_size);
    if (rc)
        return rc;
    uint8_t *b = v;
    b[0] = (uint8_t)idlen;
    memcpy(b + 1, m.id, (size_t)idlen);
    memcpy(b + 1 + idlen, msg, len);
    if ((rc = s_put_outids(p, t->txn, m.seq, cs, t->errstr, t->errstr_size)))
        return rc;
    if (!(m.data = malloc(len ? len : 1)))
        return s_nomem(t->errstr, t->errstr_size);
    memcpy(m.data, msg, len);
    p->staged[p->n_staged++] = m;
    p->delta.composed++;
    return 0;
}

static void s_refused(void *arg, const pg_change *ch, const char *reason)
{
    s_take *t = arg; /* counted once, by compose (pg_compose_stats.refused) */
    const char *id = ch->type == PG_CHANGE_ENTITY ? ch->entity->id : ch->link->id;
    pg_log(PG_LOG_ERROR, "partner: %s %s cannot be sent to the %s RMS: %s",
           ch->type == PG_CHANGE_ENTITY ? "entity" : "link", id ? id : "?", t->p->adapter->format,
           reason);
}

/* Apply p->acc to the partner ledger into p->out. A change the ledger refuses as
 * invalid is dropped alone (applied one at a time), never the whole batch. */
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
    pg_changeset *one = pg_changeset_new();
    if (!one)
        return s_nomem(t->errstr, t->errstr_size);
    pg_changeset_reset(p->out);
    for (size_t i = 0; rc != PG_ENOMEM && i < p->acc->count; i++) {
        pg_changeset_reset(one);
        pg_change *ch = &p->acc->changes[i];
        rc = ch->type == PG_CHANGE_ENTITY ? pg_changeset_add_entity(one, ch->entity, 0)
                                          : pg_changeset_add_link(one, ch->link);
        if (rc || !(child = pg_store_begin_child(t->txn, t->errstr, t->errstr_size))) {
            rc = rc ? rc : PG_ESTORE;
            break;
        }
        rc = pg_ledger_apply(p->ledger, child, one, p->out, &res, t->errstr, t->errstr_size);
        if (rc == 0) {
            rc = pg_store_commit(&child, t->errstr, t->errstr_size);
        } else {
            pg_store_abort(&child);
            if (rc == PG_EINVALID) {
                pg_log(PG_LOG_WARN, "partner: update %s rejected by the ledger: %s",
                       ch->type == PG_CHANGE_ENTITY ? ch->entity->id : ch->link->id, t->errstr);
                p->delta.rejected++;
                p->delta.accepted--;
                rc = 0;
            }
        }
        if (rc)
            break;
    }
    pg_changeset_destroy(&one); /* the updates themselves live in p->acc's arena */
    return rc;
}

int pg_partner_take(pg_partner *p, const pg_partner_record *records, size_t n, char *errstr,
                    size_t errstr_size)
{
    pg_changeset_reset(p->acc);
    pg_changeset_reset(p->out);
    memset(&p->delta, 0, sizeof p->delta);
    p->n_events = 0;
    s_drop_offs(p);
    s_drop_staged(p);
    s_take t = {.p = p, .errstr = errstr, .errstr_size = errstr_size};
    if (!(t.txn = pg_store_begin(p->store, 1, errstr, errstr_size)))
        return PG_ESTORE;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = s_record(&t, &records[i]);
    if (rc == 0 && p->acc->count)
        rc = s_apply(&t);
    char batch[40];
    snprintf(batch, sizeof batch, "pg-%.8s-%" PRIu64, p->instance, p->next_seq);
    pg_compose_sink sink = {.emit = s_emit, .refused = s_refused, .arg = &t};
    if (rc == 0 && p->out->count)
        rc = pg_compose_run(p->compose, t.txn, p->out, batch, &sink, errstr, errstr_size);
    if (rc == 0 && p->n_staged) {
        uint8_t v[8];
        pg_store_be64_put(v, p->next_seq + p->n_staged - 1);
        rc = pg_store_put(t.txn, p->meta, "seq", 3, v, 8, errstr, errstr_size);
    }
    s_batch b = {0};
    if (rc == 0 && p->n_offs &&
        (pg_grow((void **)&p->batches, &p->b_cap, p->b_len + 1, sizeof *p->batches) ||
         !(b.offs = malloc(p->n_offs * sizeof *b.offs))))
        rc = s_nomem(errstr, errstr_size);
    size_t removing = p->n_done;
    if (rc == 0)
        rc = s_delete_done(p, t.txn, errstr, errstr_size);
    if (rc == 0)
        rc = pg_store_commit(&t.txn, errstr, errstr_size);
    if (rc == 0 && removing) {
        /* acks that came during the take stay for the next removal */
        memmove(p->done, p->done + removing, (p->n_done - removing) * sizeof *p->done);
        p->n_done -= removing;
        p->removed_at = s_clock_ms();
    }
    if (rc) {
        pg_store_abort(&t.txn);
        free(b.offs);
        s_drop_staged(p);
        s_drop_offs(p);
        return rc;
    }
    /* Committed: the messages are in the outbox; queue them, and the batch's offsets
     * behind them. */
    for (size_t i = 0; i < p->n_staged; i++) {
        if (s_queue_push(p, &p->staged[i])) {
            /* stays in the outbox: sent after a restart */
            pg_log(PG_LOG_ERROR, "partner: out of memory queueing message %s", p->staged[i].id);
            free(p->staged[i].data);
        }
    }
    p->next_seq += p->n_staged;
    p->n_staged = 0;
    if (p->n_offs) {
        memcpy(b.offs, p->offs, p->n_offs * sizeof *b.offs);
        b.n_offs = p->n_offs;
        b.last_seq = p->next_seq - 1;
        p->n_offs = 0; /* the topics now belong to the batch */
        p->batches[p->b_len++] = b;
    }
    p->delta.records = n;
    p->delta.batches = 1;
    uint64_t *s = (uint64_t *)&p->stats, *d = (uint64_t *)&p->delta;
    for (size_t i = 0; i < sizeof p->stats / sizeof(uint64_t); i++)
        s[i] += d[i];
    for (size_t i = 0; i < p->n_events; i++) {
        const s_audit_ev *e = &p->events[i];
        pg_audit_event ev = {.action = e->action,
                             .entity_id = e->id,
                             .native_id = e->native_id,
                             .origin = e->origin,
                             .partner = e->partner,
                             .agreement = e->agreement,
                             .policy_version = pg_policy_version(p->policy),
                             .version = e->version,
                             .outcome = e->outcome};
        char why[PG_ERRSTR_SIZE];
        if (pg_audit_append(p->audit, &ev, why, sizeof why))
            pg_log(PG_LOG_ERROR, "partner: audit: %s", why);
    }
    if (p->n_events && p->audit) {
        char why[PG_ERRSTR_SIZE];
        if (pg_audit_sync(p->audit, why, sizeof why))
            pg_log(PG_LOG_ERROR, "partner: audit: %s", why);
    }
    return 0;
}

/* ------------------------------------------------------------ delivery */

int pg_partner_poll(pg_partner *p, int timeout_ms, char *errstr, size_t errstr_size)
{
    while (p->q_len) {
        s_msg *m = &p->queue[p->q_head];
        char why[PG_ERRSTR_SIZE];
        int rc = pg_rms_delivery_submit(p->delivery, m->id, m->data, m->len, (void *)(uintptr_t)m->seq,
                                    NULL, why, sizeof why);
        if (rc == PG_ERETRY)
            break;
        if (rc) {
            /* the drop directory could not be written: the message stays first in
             * line and is submitted again by the next poll */
            pg_log(PG_LOG_ERROR, "partner: delivery of %s: %s (retrying)", m->id, why);
            break;
        }
        free(m->data);
        p->q_head = (p->q_head + 1) % p->q_cap;
        p->q_len--;
        p->stats.submitted++;
    }
    int n = pg_rms_delivery_poll(p->delivery, timeout_ms, errstr, errstr_size);
    int rc = s_settle_rejects(p, errstr, errstr_size);
    if (rc == 0)
        rc = s_remove_done(p, 0, errstr, errstr_size);
    if (rc)
        return rc;
    return n;
}

int pg_partner_busy(const pg_partner *p)
{
    return p->q_len > 0 ||
           pg_rms_delivery_in_flight(p->delivery) >= pg_rms_delivery_config_of(p->delivery)->window;
}

size_t pg_partner_pending(const pg_partner *p)
{
    return p->q_len + pg_rms_delivery_in_flight(p->delivery);
}

int pg_partner_committable(pg_partner *p, pg_partner_offset_fn fn, void *arg)
{
    int rc = 0;
    size_t k = 0;
    for (; k < p->b_len && rc == 0; k++) {
        s_batch *b = &p->batches[k];
        if (b->last_seq > p->resolved)
            break;
        for (size_t i = 0; rc == 0 && i < b->n_offs; i++)
            rc = fn(arg, b->offs[i].topic, b->offs[i].partition, b->offs[i].next);
        s_free_batch(b);
    }
    if (k) {
        memmove(p->batches, p->batches + k, (p->b_len - k) * sizeof *p->batches);
        p->b_len -= k;
    }
    return rc;
}

void pg_partner_get_stats(const pg_partner *p, pg_partner_stats *out)
{
    *out = p->stats;
}

void pg_partner_get_compose_stats(const pg_partner *p, pg_compose_stats *out)
{
    pg_compose_get_stats(p->compose, out);
}

/* ------------------------------------------------------------ the daemon's thread */

/* Records taken per write transaction. */
#define S_BATCH 500
/* Milliseconds between two offset commits (asynchronous). */
#define S_COMMIT_EVERY_MS 200
/* Milliseconds of a full window after which consumption is paused. */
#define S_PAUSE_AFTER_MS 1000
/* Seconds between two counter lines in the log. */
#define S_STATS_EVERY 60

struct pg_partner_service {
    pg_partner *p;
    pg_consumer *c;
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_int drain_ms;
    pthread_mutex_t lock;
    pg_partner_stats snap;
    char **topics;
    size_t n_topics;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_mark(void *arg, const char *topic, int32_t partition, int64_t next)
{
    return pg_consumer_mark(arg, topic, partition, next);
}

static void s_log_stats(pg_partner_service *s, const char *when)
{
    pg_partner_stats st;
    pg_compose_stats cs;
    pg_partner_get_stats(s->p, &st);
    pg_partner_get_compose_stats(s->p, &cs);
    pg_log(PG_LOG_INFO,
           "partner %s: records %" PRIu64 " consumed, %" PRIu64 " accepted, %" PRIu64
           " duplicate, %" PRIu64 " stale, %" PRIu64 " own, %" PRIu64 " rejected, %" PRIu64
           " skipped; RMS messages %" PRIu64 " composed, %" PRIu64 " stored, %" PRIu64
           " rejected, %zu pending; compose %" PRIu64 " resent, %" PRIu64
           " merge deletes folded, %" PRIu64 " unknown to the RMS, %" PRIu64
           " links deferred, %" PRIu64 " refused by the adapter",
           when, st.records, st.accepted, st.duplicates, st.stale, st.own, st.rejected, st.skipped,
           st.composed, st.stored, st.rms_rejected, pg_partner_pending(s->p), cs.resent,
           cs.merge_deletes, cs.unknown, cs.deferred, cs.refused);
}

static void *s_main(void *arg)
{
    pg_partner_service *s = arg;
    pg_consumer_record *recs = calloc(S_BATCH, sizeof *recs);
    char why[PG_ERRSTR_SIZE];
    int held = 0; /* records polled and not yet taken */
    int64_t last_commit = s_now_ms(), last_stats = last_commit;
    uint64_t last_records = 0;
    int64_t busy_since = 0;
    while (recs && !atomic_load(&s->stop)) {
        int busy = pg_partner_busy(s->p);
        int64_t t = s_now_ms();
        busy_since = busy ? (busy_since ? busy_since : t) : 0;
        /* Busy for a moment (a window's worth in flight): just take no records. Busy
         * for long (a slow or absent RMS): pause fetching, and keep polling so that the
         * group keeps us. Resuming costs a fetch round, so it is not done per batch. */
        int long_busy = busy && t - busy_since >= S_PAUSE_AFTER_MS;
        if (long_busy != pg_consumer_paused(s->c) && (long_busy || !busy))
            pg_consumer_pause(s->c, long_busy);
        if (!held && (!busy || long_busy)) {
            int in_flight = pg_partner_pending(s->p) > 0;
            int n =
                pg_consumer_poll(s->c, recs, S_BATCH, busy || in_flight ? 0 : 100, why, sizeof why);
            if (n < 0) {
                pg_log(PG_LOG_ERROR, "partner: %s", why);
                struct timespec ts = {1, 0};
                nanosleep(&ts, NULL);
                continue;
            }
            held = n;
        }
        if (held) {
            if (pg_partner_take(s->p, recs, (size_t)held, why, sizeof why) == 0) {
                pg_consumer_release(s->c);
                held = 0;
            } else {
                /* nothing of them happened: the same records are taken again */
                pg_log(PG_LOG_ERROR, "partner: %s (trying again in 1 s)", why);
                struct timespec ts = {1, 0};
                nanosleep(&ts, NULL);
            }
        }
        int wait = !held && pg_partner_pending(s->p) ? (busy ? 100 : 20) : 0;
        if (pg_partner_poll(s->p, wait, why, sizeof why) < 0)
            pg_log(PG_LOG_ERROR, "partner: delivery: %s", why);
        pg_partner_committable(s->p, s_mark, s->c);
        int64_t now = s_now_ms();
        if (now - last_commit >= S_COMMIT_EVERY_MS) {
            pg_consumer_commit(s->c, 0, why, sizeof why);
            last_commit = now;
        }
        if (now - last_stats >= S_STATS_EVERY * 1000) {
            pg_partner_stats st;
            pg_partner_get_stats(s->p, &st);
            if (st.records != last_records)
                s_log_stats(s, "running");
            last_records = st.records;
            last_stats = now;
        }
        pthread_mutex_lock(&s->lock);
        pg_partner_get_stats(s->p, &s->snap);
        pthread_mutex_unlock(&s->lock);
    }
    /* Records polled but not taken come again (their offsets are not committed). */
    pg_consumer_release(s->c);
    free(recs);
    int64_t until = s_now_ms() + atomic_load(&s->drain_ms);
    while (pg_partner_pending(s->p) && s_now_ms() < until)
        if (pg_partner_poll(s->p, 50, why, sizeof why) < 0)
            break;
    if (pg_partner_pending(s->p))
        pg_log(PG_LOG_INFO,
               "partner: stopping with %zu message(s) not yet stored by the RMS: they are in "
               "the outbox and go first at the next start",
               pg_partner_pending(s->p));
    pg_partner_committable(s->p, s_mark, s->c);
    pg_consumer_commit(s->c, 1, why, sizeof why);
    s_log_stats(s, "stopped");
    pthread_mutex_lock(&s->lock);
    pg_partner_get_stats(s->p, &s->snap);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void s_service_free(pg_partner_service *s)
{
    pg_consumer_destroy(&s->c);
    pg_partner_destroy(&s->p);
    for (size_t i = 0; i < s->n_topics; i++)
        free(s->topics[i]);
    free(s->topics);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int pg_partner_service_start(const pg_config *cfg, pg_store *store, pg_audit *audit,
                             pg_partner_service **out, char *errstr, size_t errstr_size)
{
    *out = NULL;
    size_t n = cfg->policy ? pg_policy_partner_count(cfg->policy) : 0;
    if (!cfg->delivery_endpoint || !n) {
        if (cfg->delivery_endpoint)
            pg_log(PG_LOG_WARN, "partner: delivery.endpoint is set but the policy names no "
                                "partners: nothing to consume");
        return 0;
    }
    pg_partner_service *s = calloc(1, sizeof *s);
    if (!s || !(s->topics = calloc(n, sizeof *s->topics))) {
        free(s);
        return s_nomem(errstr, errstr_size);
    }
    pthread_mutex_init(&s->lock, NULL);
    for (size_t i = 0; i < n; i++) {
        if (!(s->topics[i] = strdup(pg_policy_partner_at(cfg->policy, i)->topic))) {
            s_service_free(s);
            return s_nomem(errstr, errstr_size);
        }
        s->n_topics++;
    }
    pg_partner_opts popts = {
        .force = cfg->force,
        .adapter = cfg->adapter,
        .policy = cfg->policy,
        .store = store,
        .audit = audit,
        .atx_id_prefix = cfg->delivery_atx_id_prefix,
        .delivery = {.transport = cfg->delivery_transport,
                     .endpoint = cfg->delivery_endpoint,
                     .window = (size_t)cfg->delivery_window,
                     .ack_timeout_ms = cfg->delivery_ack_timeout_ms,
                     .retry_max_ms = cfg->delivery_retry_max_ms},
        .dlq_limits = {.max_entries = cfg->dlq_max_records, .max_bytes = cfg->dlq_max_bytes},
    };
    /* The store is the instance: a restart on it rejoins the group as the same member
     * (FNV-1a of its real path). */
    char real[PATH_MAX], instance[96];
    const char *path = realpath(cfg->store_path, real) ? real : cfg->store_path;
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)path; *c; c++)
        h = (h ^ *c) * 16777619u;
    snprintf(instance, sizeof instance, "%s.%08" PRIx32, cfg->delivery_group_id, h);
    pg_consumer_opts copts = {
        .brokers = cfg->kafka_brokers,
        .group_id = cfg->delivery_group_id,
        .instance_id = instance,
        .topics = (const char *const *)s->topics,
        .topic_count = s->n_topics,
        .properties = cfg->kafka_properties,
        .property_count = cfg->kafka_property_count,
    };
    if (!(s->p = pg_partner_new(&popts, errstr, errstr_size)) ||
        !(s->c = pg_consumer_new(&copts, errstr, errstr_size))) {
        s_service_free(s);
        return PG_ECONFIG;
    }
    if (pthread_create(&s->thread, NULL, s_main, s)) {
        s_service_free(s);
        return pg_errf(PG_EIO, errstr, errstr_size, "partner: cannot start a thread");
    }
    s->started = 1;
    pg_log(PG_LOG_INFO, "partner: consuming %zu partner topic(s) as group %s, delivering to %s %s",
           s->n_topics, cfg->delivery_group_id, cfg->delivery_transport, cfg->delivery_endpoint);
    *out = s;
    return 0;
}

void pg_partner_service_stop(pg_partner_service **p, int drain_ms)
{
    if (!p || !*p)
        return;
    pg_partner_service *s = *p;
    if (s->started) {
        atomic_store(&s->drain_ms, drain_ms < 0 ? 0 : drain_ms);
        atomic_store(&s->stop, 1);
        pthread_join(s->thread, NULL);
    }
    s_service_free(s);
    *p = NULL;
}

void pg_partner_service_stats(pg_partner_service *s, pg_partner_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->snap;
    pthread_mutex_unlock(&s->lock);
}

/* ------------------------------------------------------------ echoes at intake */

struct pg_partner_echo {
    pg_idstore *idmap;
    const pg_adapter_ops *adapter;
    char force[8];
};

pg_partner_echo *pg_partner_echo_new(pg_store *store, const pg_adapter_ops *adapter,
                                     const char *force, char *errstr, size_t errstr_size)
{
    pg_partner_echo *e = calloc(1, sizeof *e);
    if (!e) {
        s_nomem(errstr, errstr_size);
        return NULL;
    }
    e->adapter = adapter;
    snprintf(e->force, sizeof e->force, "%s", force);
    pg_idstore_config cfg = {.format = adapter->format};
    if (!(e->idmap = pg_idstore_new(store, &cfg, errstr, errstr_size))) {
        free(e);
        return NULL;
    }
    return e;
}

void pg_partner_echo_destroy(pg_partner_echo **p)
{
    if (!p || !*p)
        return;
    pg_idstore_destroy(&(*p)->idmap);
    free(*p);
    *p = NULL;
}

/* The partner entity that local id native was given to: 1 (uuid filled), 0 none. */
static int s_partner_of(pg_partner_echo *e, pg_store_txn *txn, const char *native, char uuid[37],
                        int *rc, char *errstr, size_t errstr_size)
{
    *rc = 0;
    if (!native || !*native)
        return 0;
    int r = pg_idstore_uuid_of(e->idmap, txn, native, uuid, errstr, errstr_size);
    if (r == 0)
        return 1;
    if (r != PG_ENOTFOUND)
        *rc = r;
    return 0;
}

int pg_partner_echo_filter(pg_partner_echo *e, pg_store_txn *txn, pg_changeset *cs, size_t *dropped,
                           char *errstr, size_t errstr_size)
{
    *dropped = 0;
    char uuid[37];
    int rc = 0;
    size_t keep = 0;
    for (size_t i = 0; i < cs->count; i++) {
        pg_change *ch = &cs->changes[i];
        int echo;
        if (ch->type == PG_CHANGE_ENTITY) {
            const pg_origin *o = ch->entity->origin;
            echo = s_partner_of(e, txn, o ? o->native_id : NULL, uuid, &rc, errstr, errstr_size);
        } else {
            pg_link_update *l = ch->link;
            echo = s_partner_of(e, txn, l->from ? l->from->native_id : NULL, uuid, &rc, errstr,
                                errstr_size);
            if (!rc && !echo && l->to &&
                s_partner_of(e, txn, l->to->native_id, uuid, &rc, errstr, errstr_size)) {
                /* ours -> a partner's record: the target is the partner's entity */
                pg_entity_ref *to = pg_arena_alloc(cs->arena, sizeof *to);
                char *tid = pg_arena_strdup(cs->arena, uuid);
                char lid[PG_UUID_STR_SIZE];
                if (!to || !tid)
                    return s_nomem(errstr, errstr_size);
                *to = *l->to;
                to->id = tid;
                if (l->from && l->from->id &&
                    pg_identity_link(l->from->id, l->role, tid, lid) == 0) {
                    l->to = to;
                    if (!(l->id = pg_arena_strdup(cs->arena, lid)))
                        return s_nomem(errstr, errstr_size);
                }
            }
        }
        if (rc)
            return rc;
        if (echo)
            (*dropped)++;
        else
            cs->changes[keep++] = *ch;
    }
    int other = cs->force && *cs->force && strcmp(cs->force, e->force) != 0;
    if (other && keep) {
        /* not all of it ours to drop: a message of another force, as the decoder
         * would have refused it */
        const char *path =
            !strcmp(e->adapter->format, "atx") ? "header.orgUnit" : "NX5Exchange@Force";
        *dropped = 0;
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "%s: force '%s' is not this gateway's force '%s'", path, cs->force,
                       e->force);
    }
    cs->count = keep;
    return 0;
}
