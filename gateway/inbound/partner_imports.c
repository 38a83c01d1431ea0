/* pg_partner's import queue: the composed messages on their way to the RMS (kept in the
 * store until stored), the RMS's results, import dead letters, committable offsets. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "audit.h"
#include "dlq.h"
#include "log.h"
#include "partner_int.h"
#include "polegate/error.h"
#include "polegate/timeutil.h"
#include "policy.h"
#include "store.h"

static int s_nomem(char *errstr, size_t errstr_size)
{
    return pg_errf(PG_ENOMEM, errstr, errstr_size, "partner: out of memory");
}

/* ------------------------------------------------------------ import queue and meta */

int pg_partner__open_dbs(pg_partner *self, char *errstr, size_t errstr_size)
{
    pg_store_txn *txn = pg_store_begin(self->store, 1, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    int rc = pg_store_db_open(txn, "partner.seen", 0, &self->seen, errstr, errstr_size);
    if (!rc)
        rc = pg_store_db_open(txn, "partner.outbox", 0, &self->imports, errstr, errstr_size);
    if (!rc)
        rc = pg_store_db_open(txn, "partner.meta", 0, &self->meta, errstr, errstr_size);
    if (!rc)
        rc = pg_store_db_open(txn, "partner.outids", 0, &self->import_ids, errstr, errstr_size);
    const void *v;
    size_t vlen;
    if (!rc) {
        /* The instance id makes correlation ids unique to this store for ever. */
        rc = pg_store_get(txn, self->meta, "instance", 8, &v, &vlen, errstr, errstr_size);
        if (rc == 0 && vlen == 36) {
            memcpy(self->instance, v, 36);
            self->instance[36] = 0;
        } else if (rc == 0 || rc == PG_ENOTFOUND) {
            uuid_t u;
            uuid_generate_random(u);
            uuid_unparse_lower(u, self->instance);
            rc = pg_store_put(txn, self->meta, "instance", 8, self->instance, 36, errstr,
                              errstr_size);
        }
    }
    if (!rc) {
        rc = pg_store_get(txn, self->meta, "seq", 3, &v, &vlen, errstr, errstr_size);
        self->next_seq = 1;
        if (rc == 0 && vlen == 8)
            self->next_seq = pg_store_be64_get(v) + 1;
        if (rc == PG_ENOTFOUND)
            rc = 0;
    }
    if (rc) {
        pg_store_abort(&txn);
        return rc;
    }
    return pg_store_commit(&txn, errstr, errstr_size);
}

int pg_partner__queue_push(pg_partner *self, const pg_partner_msg *m)
{
    if (self->q_len == self->q_cap) {
        size_t cap = self->q_cap ? self->q_cap * 2 : 64;
        pg_partner_msg *q = malloc(cap * sizeof *q);
        if (!q)
            return PG_ENOMEM;
        for (size_t i = 0; i < self->q_len; i++)
            q[i] = self->queue[(self->q_head + i) % self->q_cap];
        free(self->queue);
        self->queue = q;
        self->q_cap = cap;
        self->q_head = 0;
    }
    self->queue[(self->q_head + self->q_len++) % self->q_cap] = *m;
    return 0;
}

/* What an earlier run composed and the RMS did not acknowledge: sent first. */
int pg_partner__load_imports(pg_partner *self, char *errstr, size_t errstr_size)
{
    pg_store_txn *txn = pg_store_begin(self->store, 0, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    pg_store_cursor *cur = pg_store_cursor_open(txn, self->imports, errstr, errstr_size);
    int rc = cur ? 0 : PG_ESTORE;
    const void *k, *v;
    size_t klen, vlen;
    uint64_t first = 0;
    for (int r = cur ? pg_store_cursor_first(cur, &k, &klen, &v, &vlen) : PG_ENOTFOUND;
         rc == 0 && r == 0; r = pg_store_cursor_next(cur, &k, &klen, &v, &vlen)) {
        const uint8_t *b = v;
        if (klen != 8 || vlen < 1 || vlen < 1u + b[0]) {
            rc = pg_errf(PG_ESTORE, errstr, errstr_size, "partner: import queue entry is corrupt");
            break;
        }
        pg_partner_msg m = {.seq = pg_store_be64_get(k), .len = vlen - 1 - b[0]};
        memcpy(m.id, b + 1, b[0]);
        m.id[b[0]] = 0;
        m.data = malloc(m.len ? m.len : 1);
        if (!m.data || pg_partner__queue_push(self, &m)) {
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
    self->resolved = self->answered = (first ? first : self->next_seq) - 1;
    if (!rc && self->q_len)
        pg_log(PG_LOG_INFO,
               "partner: %zu message(s) from the last run not yet stored by the RMS: "
               "sending them again first",
               self->q_len);
    return rc;
}

/* ------------------------------------------------------------ delivery results */

/* Settled up to the first rejected message whose dead letter is not kept yet: the
 * offsets behind it wait for that. */
static void s_update_resolved(pg_partner *self)
{
    uint64_t r = self->n_rejects ? self->rejects[0].seq - 1 : self->answered;
    if (self->hold && r > self->hold - 1)
        r = self->hold - 1;
    if (r > self->resolved)
        self->resolved = r;
}

void pg_partner__on_result(void *arg, const pg_rms_delivery_result *r)
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
            pg_partner_reject *x = &p->rejects[p->n_rejects++];
            *x = (pg_partner_reject){.seq = seq, .reason = dup, .at_ms = pg_time_wall_ms()};
            snprintf(x->id, sizeof x->id, "%s", r->id ? r->id : "");
        } else {
            /* left in the import queue, and nothing settled past it in this run: sent again
             * (and rejected again, then kept) after a restart */
            free(dup);
            pg_log(PG_LOG_WARN, "partner: out of memory; message %s stays in the import queue",
                   r->id);
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
    else /* left in the import queue: sent again (and recognised) after a restart */
        pg_log(PG_LOG_WARN, "partner: out of memory; message %s stays in the import queue", r->id);
}

/* Forget acknowledged messages from the import queue, in txn. */
int pg_partner__delete_done(pg_partner *self, pg_store_txn *txn, char *errstr, size_t errstr_size)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < self->n_done; i++) {
        uint8_t key[8];
        pg_store_be64_put(key, self->done[i]);
        rc = pg_store_del(txn, self->imports, key, 8, NULL, 0, errstr, errstr_size);
        if (rc == PG_ENOTFOUND)
            rc = 0;
        if (rc == 0)
            rc = pg_store_del(txn, self->import_ids, key, 8, NULL, 0, errstr, errstr_size);
        if (rc == PG_ENOTFOUND)
            rc = 0;
    }
    return rc;
}

/* The audit "reject" events of one rejected message: one per canonical id it carried
 * (one without an id when they are not known), metadata only, written together. 0 or
 * the audit log's error: the message is then not settled (fail closed) and the next
 * poll tries again. */
static int s_audit_reject(pg_partner *self, const char *forces, const char *ids, char *errstr,
                          size_t errstr_size)
{
    if (!self->audit)
        return 0;
    size_t n = 1;
    for (const char *c = ids; *c; c++)
        n += *c == ',';
    pg_audit_event *evs = calloc(n, sizeof *evs);
    char(*id)[PG_PARTNER_ID_MAX + 1] = calloc(n, sizeof *id);
    char(*force)[16] = calloc(n, sizeof *force);
    int rc = 0;
    if (!evs || !id || !force) {
        rc = pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    const char *f = forces, *i = ids;
    size_t k = 0;
    do {
        size_t il = strcspn(i, ","), fl = strcspn(f, ",");
        snprintf(id[k], sizeof id[k], "%.*s", (int)il, i);
        snprintf(force[k], sizeof force[k], "%.*s", (int)fl, f);
        evs[k] = (pg_audit_event){.action = PG_AUDIT_REJECT,
                                  .party = "rms-import",
                                  .entity_id = *id[k] && strcmp(id[k], "-") ? id[k] : NULL,
                                  .origin = *force[k] && strcmp(force[k], "-") ? force[k] : NULL,
                                  .policy_version = pg_policy_version(self->policy),
                                  .outcome = "rms-rejected"};
        k++;
        i += il + (i[il] == ',');
        f += fl + (f[fl] == ',');
    } while (*i && k < n);
    char why[PG_ERRSTR_SIZE];
    if ((rc = pg_audit_append_batch(self->audit, evs, k, why, sizeof why))) {
        self->stats.audit_failures++;
        pg_errf(rc, errstr, errstr_size, "partner: audit: %s", why);
    }
out:
    free(evs);
    free(id);
    free(force);
    return rc;
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
 * dead letter (the import queue's bytes, the RMS's reason, forces, ids, format, time) is
 * added and the import queue entry removed, so a crash leaves either the import queue entry (sent
 * again at the next start, rejected again, kept then) or the dead letter, never both
 * and never neither. The audit "reject" events go first (a crash in between logs one
 * twice, never not at all). Then the offsets behind them may be committed. */
int pg_partner__settle_rejects(pg_partner *self, char *errstr, size_t errstr_size)
{
    if (!self->n_rejects)
        return 0;
    pg_store_txn *txn = pg_store_begin(self->store, 1, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < self->n_rejects; i++) {
        pg_partner_reject *x = &self->rejects[i];
        uint8_t key[8];
        pg_store_be64_put(key, x->seq);
        const void *v, *w;
        size_t vlen, wlen;
        rc = pg_store_get(txn, self->imports, key, 8, &v, &vlen, errstr, errstr_size);
        if (rc == PG_ENOTFOUND) { /* already settled */
            rc = 0;
            continue;
        }
        const uint8_t *b = v;
        if (rc == 0 && (vlen < 1 || vlen < 1u + b[0]))
            rc = pg_errf(PG_ESTORE, errstr, errstr_size, "partner: import queue entry is corrupt");
        if (rc)
            break;
        const char *forces = "", *ids = "", *ops = NULL;
        int r = pg_store_get(txn, self->import_ids, key, 8, &w, &wlen, errstr, errstr_size);
        if (r == 0 && wlen > 0 && ((const char *)w)[wlen - 1] == 0 && memchr(w, 0, wlen - 1)) {
            forces = w;
            ids = forces + strlen(forces) + 1;
            /* what the message was in the order of operations (absent when an earlier
             * build queued it: its dead letter is then not replayed) */
            if (ids + strlen(ids) + 1 < forces + wlen)
                ops = ids + strlen(ids) + 1;
        } else if (r && r != PG_ENOTFOUND) {
            rc = r;
            break;
        }
        char origin[256];
        s_distinct_forces(forces, origin, sizeof origin);
        if (!x->audited) {
            if ((rc = s_audit_reject(self, forces, ids, errstr, errstr_size)))
                break;
            x->audited = 1;
        }
        /* pointers into the store stay valid until this transaction writes: copy */
        size_t mlen = vlen - 1 - b[0];
        char *idcopy = strdup(ids), *opscopy = ops ? strdup(ops) : NULL;
        uint8_t *data = malloc(mlen ? mlen : 1);
        if (!idcopy || !data || (ops && !opscopy)) {
            free(idcopy);
            free(opscopy);
            free(data);
            rc = s_nomem(errstr, errstr_size);
            break;
        }
        memcpy(data, b + 1 + b[0], mlen);
        pg_dlq_entry de = {.received_ms = x->at_ms,
                           .reason = x->reason,
                           .origin = origin,
                           .format = self->adapter->format,
                           .data = data,
                           .len = mlen,
                           .kind = PG_DLQ_IMPORT,
                           .ref = x->id,
                           .ids = idcopy,
                           .seq = opscopy && *opscopy ? x->seq : 0,
                           .ops = opscopy};
        size_t evicted = 0;
        rc = pg_dlq_add(self->dlq, txn, &de, &evicted, errstr, errstr_size);
        free(data);
        free(idcopy);
        free(opscopy);
        if (rc == 0)
            rc = pg_store_del(txn, self->imports, key, 8, NULL, 0, errstr, errstr_size);
        if (rc == 0)
            rc = pg_store_del(txn, self->import_ids, key, 8, NULL, 0, errstr, errstr_size);
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
    for (size_t i = 0; i < self->n_rejects; i++)
        free(self->rejects[i].reason);
    self->n_rejects = 0;
    s_update_resolved(self);
    return 0;
}

/* Removals ride on the next take's commit; on their own, at most every
 * S_REMOVE_EVERY_MS: a removal lost in a crash only makes the message go again with
 * its correlation id, which the RMS acknowledges without storing it twice. */
#define S_REMOVE_EVERY_MS 500

int pg_partner__remove_done(pg_partner *self, int now, char *errstr, size_t errstr_size)
{
    if (!self->n_done || (!now && pg_time_mono_ms() - self->removed_at < S_REMOVE_EVERY_MS))
        return 0;
    pg_store_txn *txn = pg_store_begin(self->store, 1, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    int rc = pg_partner__delete_done(self, txn, errstr, errstr_size);
    if (rc == 0)
        rc = pg_store_commit(&txn, errstr, errstr_size);
    pg_store_abort(&txn);
    if (rc == 0) {
        self->n_done = 0;
        self->removed_at = pg_time_mono_ms();
    }
    return rc;
}

void pg_partner__free_batch(pg_partner_batch *b)
{
    for (size_t i = 0; i < b->n_offs; i++)
        free(b->offs[i].topic);
    free(b->offs);
}

/* ------------------------------------------------------------ delivery */

int pg_partner_poll(pg_partner *self, int timeout_ms, char *errstr, size_t errstr_size)
{
    while (self->q_len) {
        pg_partner_msg *m = &self->queue[self->q_head];
        char why[PG_ERRSTR_SIZE];
        int rc = pg_rms_delivery_submit(self->delivery, m->id, m->data, m->len,
                                        (void *)(uintptr_t)m->seq, NULL, why, sizeof why);
        if (rc == PG_ERETRY)
            break;
        if (rc) {
            /* the drop directory could not be written: the message stays first in
             * line and is submitted again by the next poll */
            pg_log(PG_LOG_ERROR, "partner: delivery of %s: %s (retrying)", m->id, why);
            break;
        }
        free(m->data);
        self->q_head = (self->q_head + 1) % self->q_cap;
        self->q_len--;
        self->stats.submitted++;
    }
    int n = pg_rms_delivery_poll(self->delivery, timeout_ms, errstr, errstr_size);
    int rc = pg_partner__settle_rejects(self, errstr, errstr_size);
    if (rc == 0)
        rc = pg_partner__remove_done(self, 0, errstr, errstr_size);
    if (rc)
        return rc;
    return n;
}

int pg_partner_busy(const pg_partner *self)
{
    return self->q_len > 0 || pg_rms_delivery_in_flight(self->delivery) >=
                                  pg_rms_delivery_config_of(self->delivery)->window;
}

size_t pg_partner_pending(const pg_partner *self)
{
    return self->q_len + pg_rms_delivery_in_flight(self->delivery);
}

int pg_partner_committable(pg_partner *self, pg_partner_offset_fn fn, void *arg)
{
    int rc = 0;
    size_t k = 0;
    for (; k < self->b_len && rc == 0; k++) {
        pg_partner_batch *b = &self->batches[k];
        if (b->last_seq > self->resolved)
            break;
        for (size_t i = 0; rc == 0 && i < b->n_offs; i++)
            rc = fn(arg, b->offs[i].topic, b->offs[i].partition, b->offs[i].next);
        pg_partner__free_batch(b);
    }
    if (k) {
        memmove(self->batches, self->batches + k, (self->b_len - k) * sizeof *self->batches);
        self->b_len -= k;
    }
    return rc;
}
