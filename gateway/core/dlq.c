/* pg_dlq: dead letters in LMDB, bounded, oldest evicted first (see dlq.h). */
#include "dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "outrec.h"
#include "polegate/adapter.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/wire.h"
#include "policy.h"
#include "rms_delivery.h"
#include "store.h"

static const char s_state_key[] = "state";
/* The partner entries' own count ({entries, bytes}), kept apart because they have a
 * bound of their own: a partner's records, which it may send by the thousand, never
 * evict our RMS's dead letters (intake, import) and theirs never evict a partner's. */
static const char s_partner_key[] = "state.partner";

/* dlq.meta "state", host byte order. */
typedef struct s_state {
    uint64_t next_id;
    uint64_t entries;
    uint64_t bytes;
    uint64_t evicted;
} s_state;

struct pg_dlq {
    pg_store *store;
    pg_store_db entry_db;
    pg_store_db meta_db;
    pg_store_db replay_db;   /* replays asked of the daemon: id -> "?" or the answer */
    pg_store_db ref_db;      /* partner entries: "<topic> [<partition>] @<offset>" -> id */
    pg_store_db class_db[2]; /* each class's ids (be64 -> ""), oldest first: ours, partner */
    pg_store_db lastop_db;   /* partner.lastop: id -> the last operation composed of it */
    pg_dlq_limits limits;
    pg_buf value; /* reused */
};

static int s_index_check(pg_dlq *self, pg_store_txn *txn, char *errstr, size_t errstr_size);

pg_dlq *pg_dlq_new(pg_store *store, const pg_dlq_limits *limits, char *errstr, size_t errstr_size)
{
    pg_dlq *self = calloc(1, sizeof *self);
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "dlq: out of memory");
        return NULL;
    }
    self->store = store;
    if (limits)
        self->limits = *limits;
    if (!self->limits.max_entries)
        self->limits.max_entries = PG_DLQ_DEFAULT_MAX_ENTRIES;
    if (!self->limits.max_bytes)
        self->limits.max_bytes = PG_DLQ_DEFAULT_MAX_BYTES;
    if (!self->limits.max_message)
        self->limits.max_message = PG_DLQ_DEFAULT_MAX_MESSAGE;
    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(store, 1, why, sizeof why);
    if (!txn || pg_store_db_open(txn, "dlq.entry", 0, &self->entry_db, why, sizeof why) ||
        pg_store_db_open(txn, "dlq.meta", 0, &self->meta_db, why, sizeof why) ||
        pg_store_db_open(txn, "dlq.replay", 0, &self->replay_db, why, sizeof why) ||
        pg_store_db_open(txn, "dlq.ref", 0, &self->ref_db, why, sizeof why) ||
        pg_store_db_open(txn, "dlq.own", 0, &self->class_db[0], why, sizeof why) ||
        pg_store_db_open(txn, "dlq.partner", 0, &self->class_db[1], why, sizeof why) ||
        pg_store_db_open(txn, "partner.lastop", 0, &self->lastop_db, why, sizeof why) ||
        s_index_check(self, txn, why, sizeof why) || pg_store_commit(&txn, why, sizeof why)) {
        pg_store_abort(&txn);
        pg_errf(PG_ESTORE, errstr, errstr_size, "dlq: %s", why);
        pg_dlq_destroy(&self);
        return NULL;
    }
    return self;
}

void pg_dlq_destroy(pg_dlq **p)
{
    if (!p || !*p)
        return;
    pg_buf_free(&(*p)->value);
    free(*p);
    *p = NULL;
}

/* ---------------------------------------------------------------- the value format */

/* u64 received_ms, u64 original_len, then reason, origin, format as NUL-terminated
 * strings, then the bytes (to the end of the value). Host byte order. An import entry
 * (PG_DLQ_IMPORT) has S_IMPORT_BIT set in original_len and three more strings after
 * format: kind ("import"), ref, ids; intake entries keep the first layout, so stores
 * written before import entries existed read as they did. A partner entry keeps its
 * record's headers: kind "partner.h" and three more strings (key, pg-origin-force,
 * pg-agreement), each "=" and the value, or "" when the header was absent. An import
 * entry that knows its place in the partner side's order (seq, ops) has kind "import.o"
 * and two more strings: seq in decimal, ops; a build before them reads it as damaged,
 * and so never replays it unchecked. */
#define S_IMPORT_BIT ((uint64_t)1 << 63)
static const char s_import_ops[] = "import.o";

const char *pg_dlq_kind_name(pg_dlq_kind kind)
{
    return kind == PG_DLQ_INTAKE    ? "intake"
           : kind == PG_DLQ_IMPORT  ? "import"
           : kind == PG_DLQ_PARTNER ? "partner"
                                    : "?";
}

static int s_parse(const uint8_t *key, size_t klen, const uint8_t *v, size_t vlen, pg_dlq_entry *e,
                   char *errstr, size_t errstr_size)
{
    memset(e, 0, sizeof *e);
    if (klen != 8 || vlen < 16)
        goto bad;
    e->id = pg_store_be64_get(key);
    uint64_t orig;
    memcpy(&e->received_ms, v, 8);
    memcpy(&orig, v + 8, 8);
    int import = (orig & S_IMPORT_BIT) != 0;
    e->original_len = (size_t)(orig & ~S_IMPORT_BIT);
    const uint8_t *p = v + 16, *end = v + vlen;
    const char *kind = "";
    const char *hdr[3] = {NULL, NULL, NULL};
    const char **strs[9] = {&e->reason, &e->origin, &e->format, &kind,  &e->ref,
                            &e->ids,    &hdr[0],    &hdr[1],    &hdr[2]};
    e->ref = e->ids = e->ops = "";
    int n = import ? 6 : 3;
    for (int i = 0; i < n; i++) {
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        if (!nul)
            goto bad;
        *strs[i] = (const char *)p;
        p = nul + 1;
        if (i == 3) /* the kind says what follows ids */
            n += !strcmp(kind, "partner.h") ? 3 : !strcmp(kind, s_import_ops) ? 2 : 0;
    }
    int ops = import && !strcmp(kind, s_import_ops);
    if (import && strcmp(kind, "import") && !ops && strcmp(kind, "partner") &&
        strcmp(kind, "partner.h"))
        goto bad;
    e->kind = !import                          ? PG_DLQ_INTAKE
              : !strcmp(kind, "import") || ops ? PG_DLQ_IMPORT
                                               : PG_DLQ_PARTNER;
    if (ops) { /* seq (decimal, from 1) and ops, where partner.h keeps headers */
        char *stop = NULL;
        e->seq = *hdr[0] >= '0' && *hdr[0] <= '9' ? strtoull(hdr[0], &stop, 10) : 0;
        if (!e->seq || !stop || *stop)
            goto bad;
        e->ops = hdr[1];
        hdr[0] = NULL;
    }
    if (hdr[0]) {
        for (int i = 0; i < 3; i++)
            if (*hdr[i] && *hdr[i] != '=')
                goto bad;
        e->headers_kept = 1;
        e->key = *hdr[0] ? hdr[0] + 1 : NULL;
        e->hdr_force = *hdr[1] ? hdr[1] + 1 : NULL;
        e->hdr_agreement = *hdr[2] ? hdr[2] + 1 : NULL;
    }
    e->data = p;
    e->len = (size_t)(end - p);
    return 0;
bad:
    return pg_errf(PG_EINTERNAL, errstr, errstr_size, "dlq: damaged entry");
}

static int s_state_get(pg_dlq *self, pg_store_txn *txn, s_state *st, char *errstr,
                       size_t errstr_size)
{
    const void *v;
    size_t vlen;
    memset(st, 0, sizeof *st);
    st->next_id = 1;
    int rc = pg_store_get(txn, self->meta_db, s_state_key, sizeof s_state_key - 1, &v, &vlen,
                          errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (vlen != sizeof *st)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "dlq: damaged state");
    memcpy(st, v, sizeof *st);
    return 0;
}

static int s_state_put(pg_dlq *self, pg_store_txn *txn, const s_state *st, char *errstr,
                       size_t errstr_size)
{
    return pg_store_put(txn, self->meta_db, s_state_key, sizeof s_state_key - 1, st, sizeof *st,
                        errstr, errstr_size);
}

/* The partner class's count ("state.partner": entries, bytes, the layout the builds
 * before read), and the state's next_id when a release that keeps the classes last
 * wrote them ("state.classes"): one that does not keep them moves next_id alone, which
 * tells that the indexes no longer say what the entries are. */
static const char s_classes_key[] = "state.classes";
typedef struct s_count {
    uint64_t entries, bytes, next_id;
} s_count;

/* The partner class's count; 0 when absent: *found (may be NULL) says whether both
 * keys were there in their layout. */
static int s_partner_get(pg_dlq *self, pg_store_txn *txn, s_count *c, int *found, char *errstr,
                         size_t errstr_size)
{
    const void *v, *w;
    size_t vlen, wlen;
    memset(c, 0, sizeof *c);
    int rc = pg_store_get(txn, self->meta_db, s_partner_key, sizeof s_partner_key - 1, &v, &vlen,
                          errstr, errstr_size);
    int rc2 = rc ? rc
                 : pg_store_get(txn, self->meta_db, s_classes_key, sizeof s_classes_key - 1, &w,
                                &wlen, errstr, errstr_size);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    if (rc2 && rc2 != PG_ENOTFOUND)
        return rc2;
    int ok = !rc && !rc2 && vlen == 2 * sizeof(uint64_t) && wlen == sizeof(uint64_t);
    if (found)
        *found = ok;
    if (ok) {
        memcpy(c, v, 2 * sizeof(uint64_t));
        memcpy(&c->next_id, w, sizeof c->next_id);
    }
    return 0;
}

static int s_partner_put(pg_dlq *self, pg_store_txn *txn, const s_count *c, char *errstr,
                         size_t errstr_size)
{
    int rc = pg_store_put(txn, self->meta_db, s_partner_key, sizeof s_partner_key - 1, c,
                          2 * sizeof(uint64_t), errstr, errstr_size);
    return rc ? rc
              : pg_store_put(txn, self->meta_db, s_classes_key, sizeof s_classes_key - 1,
                             &c->next_id, sizeof c->next_id, errstr, errstr_size);
}

/* The classes' indexes and counts made again from the entries when they do not add up
 * to the entries the state counts: a store written before the classes, or by a release
 * that did not keep them (an older daemon still running beside a newer `polegate dlq`).
 * Every entry is read (a store holds at most the bounds of them); one that cannot be
 * read counts as ours. The state's totals are made from them too. */
static int s_index_check(pg_dlq *self, pg_store_txn *txn, char *errstr, size_t errstr_size)
{
    s_state st;
    s_count pc;
    size_t n[2] = {0, 0};
    int found, rc = s_state_get(self, txn, &st, errstr, errstr_size);
    rc = rc ? rc : s_partner_get(self, txn, &pc, &found, errstr, errstr_size);
    for (int c = 0; !rc && c < 2; c++)
        rc = pg_store_count(txn, self->class_db[c], &n[c], errstr, errstr_size);
    if (rc || (found && n[0] + n[1] == st.entries && pc.next_id == st.next_id))
        return rc;
    for (int c = 0; !rc && c < 2; c++) {
        pg_store_cursor *cur = pg_store_cursor_open(txn, self->class_db[c], errstr, errstr_size);
        if (!cur)
            return PG_ESTORE;
        while (!(rc = pg_store_cursor_first(cur, NULL, NULL, NULL, NULL)) &&
               !(rc = pg_store_cursor_del(cur)))
            ;
        pg_store_cursor_close(&cur);
        rc = rc == PG_ENOTFOUND ? 0 : rc;
    }
    if (rc)
        return rc;
    pg_store_cursor *cur = pg_store_cursor_open(txn, self->entry_db, errstr, errstr_size);
    if (!cur)
        return PG_ESTORE;
    const void *k, *v;
    size_t klen, vlen;
    char why[PG_ERRSTR_SIZE];
    memset(&pc, 0, sizeof pc);
    st.entries = st.bytes = 0;
    for (rc = pg_store_cursor_first(cur, &k, &klen, &v, &vlen); !rc;
         rc = pg_store_cursor_next(cur, &k, &klen, &v, &vlen)) {
        pg_dlq_entry e;
        int partner = !s_parse(k, klen, v, vlen, &e, why, sizeof why) && e.kind == PG_DLQ_PARTNER;
        if ((rc = pg_store_put(txn, self->class_db[partner], k, klen, "", 0, errstr, errstr_size)))
            break;
        st.entries++;
        st.bytes += vlen;
        pc.entries += partner ? 1 : 0;
        pc.bytes += partner ? vlen : 0;
    }
    pg_store_cursor_close(&cur);
    if (rc != PG_ENOTFOUND)
        return rc;
    pc.next_id = st.next_id;
    rc = s_partner_put(self, txn, &pc, errstr, errstr_size);
    return rc ? rc : s_state_put(self, txn, &st, errstr, errstr_size);
}

/* Evict the oldest entry of a class (partner 1: the partner entries; 0: ours): *vlen its
 * value's length. An id whose entry is gone is dropped from the index on the way.
 * PG_ENOTFOUND when the class has none. */
static int s_evict_oldest(pg_dlq *self, pg_store_txn *txn, int partner, size_t *vlen, char *errstr,
                          size_t errstr_size)
{
    for (;;) {
        pg_store_cursor *cur =
            pg_store_cursor_open(txn, self->class_db[partner], errstr, errstr_size);
        if (!cur)
            return PG_ESTORE;
        const void *k, *v;
        size_t klen, len;
        uint8_t key[8];
        int rc = pg_store_cursor_first(cur, &k, &klen, NULL, NULL);
        if (!rc && klen != sizeof key)
            rc = pg_errf(PG_EINTERNAL, errstr, errstr_size, "dlq: damaged index");
        if (!rc) {
            memcpy(key, k, sizeof key);
            rc = pg_store_cursor_del(cur);
        }
        pg_store_cursor_close(&cur);
        if (rc)
            return rc;
        rc = pg_store_get(txn, self->entry_db, key, sizeof key, &v, &len, errstr, errstr_size);
        if (rc == PG_ENOTFOUND)
            continue; /* stale: the entry went another way */
        if (rc)
            return rc;
        *vlen = len;
        return pg_store_del(txn, self->entry_db, key, sizeof key, NULL, 0, errstr, errstr_size);
    }
}

/* The partner dead letter kept for the Kafka record ref ("<topic> [<partition>]
 * @<offset>"): its id, 0 when none (never kept, or deleted, replayed or evicted since:
 * the index is only trusted when the entry it names has that ref). Or an error. */
static int s_partner_ref(pg_dlq *self, pg_store_txn *txn, const char *ref, uint64_t *id,
                         char *errstr, size_t errstr_size)
{
    *id = 0;
    const void *v;
    size_t vlen;
    int rc = pg_store_get(txn, self->ref_db, ref, strlen(ref), &v, &vlen, errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (vlen != 8)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "dlq: damaged reference index");
    uint64_t was = pg_store_be64_get(v);
    pg_dlq_entry e = {0};
    rc = pg_dlq_get(self, txn, was, &e, errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (e.kind == PG_DLQ_PARTNER && !strcmp(e.ref, ref))
        *id = was;
    return 0;
}

int pg_dlq_add(pg_dlq *self, pg_store_txn *txn, pg_dlq_entry *e, size_t *evicted, char *errstr,
               size_t errstr_size)
{
    if (evicted)
        *evicted = 0;
    /* A partner record Kafka delivers again (a restart before its offset was
     * committed) is the dead letter it already is, not a second one. */
    int partner_ref =
        e->kind == PG_DLQ_PARTNER && e->ref && *e->ref && strlen(e->ref) <= PG_STORE_MAX_KEY;
    if (partner_ref) {
        uint64_t id;
        int rc = s_partner_ref(self, txn, e->ref, &id, errstr, errstr_size);
        if (rc)
            return rc;
        if (id) {
            e->id = id;
            return PG_EDUPLICATE;
        }
    }
    size_t len = e->len < self->limits.max_message ? e->len : self->limits.max_message;
    uint64_t orig = e->original_len ? e->original_len : e->len;
    /* import and partner entries share the longer layout, told apart by kind */
    int import = e->kind == PG_DLQ_IMPORT || e->kind == PG_DLQ_PARTNER;
    if (import)
        orig |= S_IMPORT_BIT;
    pg_buf *b = &self->value;
    pg_buf_reset(b);
    int partner = e->kind == PG_DLQ_PARTNER;
    int ops = e->kind == PG_DLQ_IMPORT && e->seq;
    const char *strs[6] = {e->reason ? e->reason : "",
                           e->origin ? e->origin : "",
                           e->format ? e->format : "",
                           partner ? "partner.h" : ops ? s_import_ops : pg_dlq_kind_name(e->kind),
                           e->ref ? e->ref : "",
                           e->ids ? e->ids : ""};
    const char *hdr[3] = {e->key, e->hdr_force, e->hdr_agreement};
    int rc = pg_buf_append(b, &e->received_ms, 8);
    rc = rc ? rc : pg_buf_append(b, &orig, 8);
    for (int i = 0; !rc && i < (import ? 6 : 3); i++)
        rc = pg_buf_append(b, strs[i], strlen(strs[i]) + 1);
    if (!rc && ops) {
        char seq[24];
        snprintf(seq, sizeof seq, "%" PRIu64, e->seq);
        rc = pg_buf_append(b, seq, strlen(seq) + 1);
        rc = rc ? rc : pg_buf_append(b, e->ops ? e->ops : "", (e->ops ? strlen(e->ops) : 0) + 1);
    }
    for (int i = 0; !rc && partner && i < 3; i++) {
        if (hdr[i])
            rc = pg_buf_append(b, "=", 1);
        rc = rc ? rc : pg_buf_append(b, hdr[i] ? hdr[i] : "", (hdr[i] ? strlen(hdr[i]) : 0) + 1);
    }
    rc = rc ? rc : pg_buf_append(b, e->data, len);
    if (rc)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "dlq: out of memory");

    s_state st;
    s_count pc;
    if ((rc = s_state_get(self, txn, &st, errstr, errstr_size)) ||
        (rc = s_partner_get(self, txn, &pc, NULL, errstr, errstr_size)))
        return rc;
    /* Evict the oldest of the new entry's class (partner entries, or the others) until
     * it fits both bounds of its class. */
    size_t gone = 0;
    for (;;) {
        uint64_t n =
            partner ? pc.entries : st.entries - (pc.entries <= st.entries ? pc.entries : 0);
        uint64_t bytes = partner ? pc.bytes : st.bytes - (pc.bytes <= st.bytes ? pc.bytes : 0);
        if (!n || (n + 1 <= self->limits.max_entries && bytes + b->len <= self->limits.max_bytes))
            break;
        size_t vlen = 0;
        rc = s_evict_oldest(self, txn, partner, &vlen, errstr, errstr_size);
        if (rc == PG_ENOTFOUND) { /* the count said more than there is: it says none now */
            if (partner) {
                st.entries -= pc.entries <= st.entries ? pc.entries : st.entries;
                st.bytes -= pc.bytes <= st.bytes ? pc.bytes : st.bytes;
                memset(&pc, 0, sizeof pc);
            } else {
                st.entries = pc.entries;
                st.bytes = pc.bytes;
            }
            break;
        }
        if (rc)
            return rc;
        st.entries -= st.entries ? 1 : 0;
        st.bytes -= st.bytes >= vlen ? vlen : st.bytes;
        if (partner) {
            pc.entries -= pc.entries ? 1 : 0;
            pc.bytes -= pc.bytes >= vlen ? vlen : pc.bytes;
        }
        st.evicted++;
        gone++;
    }
    uint8_t key[8];
    pg_store_be64_put(key, st.next_id);
    if ((rc = pg_store_put(txn, self->entry_db, key, sizeof key, b->data, b->len, errstr,
                           errstr_size)))
        return rc;
    e->id = st.next_id++;
    st.entries++;
    st.bytes += b->len;
    if (evicted)
        *evicted = gone;
    if (partner_ref && (rc = pg_store_put(txn, self->ref_db, e->ref, strlen(e->ref), key,
                                          sizeof key, errstr, errstr_size)))
        return rc;
    if ((rc = pg_store_put(txn, self->class_db[partner], key, sizeof key, "", 0, errstr,
                           errstr_size)))
        return rc;
    pc.entries += partner ? 1 : 0;
    pc.bytes += partner ? b->len : 0;
    pc.next_id = st.next_id;
    if ((rc = s_partner_put(self, txn, &pc, errstr, errstr_size)))
        return rc;
    return s_state_put(self, txn, &st, errstr, errstr_size);
}

int pg_dlq_get(pg_dlq *self, pg_store_txn *txn, uint64_t id, pg_dlq_entry *out, char *errstr,
               size_t errstr_size)
{
    uint8_t key[8];
    pg_store_be64_put(key, id);
    const void *v;
    size_t vlen;
    int rc = pg_store_get(txn, self->entry_db, key, sizeof key, &v, &vlen, errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        return pg_errf(rc, errstr, errstr_size, "dlq: no dead letter %" PRIu64, id);
    return rc ? rc : s_parse(key, sizeof key, v, vlen, out, errstr, errstr_size);
}

int pg_dlq_each(pg_dlq *self, pg_store_txn *txn, int (*fn)(void *ud, const pg_dlq_entry *e),
                void *ud, char *errstr, size_t errstr_size)
{
    pg_store_cursor *cur = pg_store_cursor_open(txn, self->entry_db, errstr, errstr_size);
    if (!cur)
        return PG_ESTORE;
    const void *k, *v;
    size_t klen, vlen;
    int rc = pg_store_cursor_first(cur, &k, &klen, &v, &vlen);
    while (!rc) {
        pg_dlq_entry e;
        if ((rc = s_parse(k, klen, v, vlen, &e, errstr, errstr_size)) || (rc = fn(ud, &e)))
            break;
        rc = pg_store_cursor_next(cur, &k, &klen, &v, &vlen);
    }
    pg_store_cursor_close(&cur);
    return rc == PG_ENOTFOUND ? 0 : rc;
}

/* ---------------------------------------------------------------- replay requests */

/* dlq.replay: 8-byte big-endian id -> "?" (asked) or "<outcome>\0<reason>" (answered). */
static const char s_asked[] = "?";

int pg_dlq_replay_ask(pg_dlq *self, pg_store_txn *txn, uint64_t id, char *errstr,
                      size_t errstr_size)
{
    uint8_t key[8];
    pg_store_be64_put(key, id);
    return pg_store_put(txn, self->replay_db, key, sizeof key, s_asked, sizeof s_asked, errstr,
                        errstr_size);
}

int pg_dlq_replay_next(pg_dlq *self, pg_store_txn *txn, uint64_t *id, char *errstr,
                       size_t errstr_size)
{
    pg_store_cursor *cur = pg_store_cursor_open(txn, self->replay_db, errstr, errstr_size);
    if (!cur)
        return PG_ESTORE;
    const void *k, *v;
    size_t klen, vlen;
    int rc = pg_store_cursor_first(cur, &k, &klen, &v, &vlen);
    while (rc == 0 && !(klen == 8 && vlen == sizeof s_asked && !memcmp(v, s_asked, vlen)))
        rc = pg_store_cursor_next(cur, &k, &klen, &v, &vlen);
    if (rc == 0)
        *id = pg_store_be64_get(k);
    pg_store_cursor_close(&cur);
    return rc;
}

int pg_dlq_replay_answer(pg_dlq *self, pg_store_txn *txn, uint64_t id, const char *outcome,
                         const char *reason, char *errstr, size_t errstr_size)
{
    pg_buf *b = &self->value;
    pg_buf_reset(b);
    reason = reason ? reason : "";
    if (pg_buf_append(b, outcome, strlen(outcome) + 1) ||
        pg_buf_append(b, reason, strlen(reason) + 1))
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "dlq: out of memory");
    uint8_t key[8];
    pg_store_be64_put(key, id);
    return pg_store_put(txn, self->replay_db, key, sizeof key, b->data, b->len, errstr,
                        errstr_size);
}

int pg_dlq_replay_result(pg_dlq *self, pg_store_txn *txn, uint64_t id, char outcome[16],
                         char *reason, size_t reason_size, char *errstr, size_t errstr_size)
{
    uint8_t key[8];
    pg_store_be64_put(key, id);
    const void *v;
    size_t vlen;
    int rc = pg_store_get(txn, self->replay_db, key, sizeof key, &v, &vlen, errstr, errstr_size);
    if (rc)
        return rc;
    const char *o = v, *end = o + vlen, *nul = memchr(o, 0, vlen);
    if (vlen == sizeof s_asked && !memcmp(v, s_asked, vlen))
        return PG_ERETRY;
    if (!nul || !memchr(nul + 1, 0, (size_t)(end - nul - 1)))
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "dlq: damaged replay answer %" PRIu64,
                       id);
    snprintf(outcome, 16, "%s", o);
    snprintf(reason, reason_size, "%s", nul + 1);
    return 0;
}

int pg_dlq_replay_forget(pg_dlq *self, pg_store_txn *txn, uint64_t id, char *errstr,
                         size_t errstr_size)
{
    uint8_t key[8];
    pg_store_be64_put(key, id);
    int rc = pg_store_del(txn, self->replay_db, key, sizeof key, NULL, 0, errstr, errstr_size);
    return rc == PG_ENOTFOUND ? 0 : rc;
}

int pg_dlq_delete(pg_dlq *self, pg_store_txn *txn, uint64_t id, char *errstr, size_t errstr_size)
{
    uint8_t key[8];
    pg_store_be64_put(key, id);
    const void *v;
    size_t vlen;
    int rc = pg_store_get(txn, self->entry_db, key, sizeof key, &v, &vlen, errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        return pg_errf(rc, errstr, errstr_size, "dlq: no dead letter %" PRIu64, id);
    if (rc)
        return rc;
    size_t kept = vlen; /* what the byte bound counts */
    s_state st;
    if ((rc = s_state_get(self, txn, &st, errstr, errstr_size)) ||
        (rc = pg_store_del(txn, self->entry_db, key, sizeof key, NULL, 0, errstr, errstr_size)))
        return rc;
    st.entries -= st.entries ? 1 : 0;
    st.bytes -= st.bytes >= kept ? kept : st.bytes;
    rc = pg_store_del(txn, self->class_db[0], key, sizeof key, NULL, 0, errstr, errstr_size);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    rc = pg_store_del(txn, self->class_db[1], key, sizeof key, NULL, 0, errstr, errstr_size);
    if (rc == 0) { /* a partner entry */
        s_count pc;
        if ((rc = s_partner_get(self, txn, &pc, NULL, errstr, errstr_size)))
            return rc;
        pc.entries -= pc.entries ? 1 : 0;
        pc.bytes -= pc.bytes >= kept ? kept : pc.bytes;
        rc = s_partner_put(self, txn, &pc, errstr, errstr_size);
    }
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    return s_state_put(self, txn, &st, errstr, errstr_size);
}

int pg_dlq_stat(pg_dlq *self, pg_store_txn *txn, pg_dlq_stats *out, char *errstr,
                size_t errstr_size)
{
    s_state st;
    int rc = s_state_get(self, txn, &st, errstr, errstr_size);
    out->entries = st.entries;
    out->bytes = st.bytes;
    out->evicted = st.evicted;
    out->next_id = st.next_id;
    return rc;
}

/* ---------------------------------------------------------------- the topic's record */

void pg_dlq_format_time(int64_t ms, char out[32])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

int pg_dlq_outrec(pg_outbatch *batch, const char *topic, const pg_dlq_entry *e, char *errstr,
                  size_t errstr_size)
{
    pg_outrec *rec = pg_outbatch_add(batch);
    if (!rec)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "dlq: out of memory");
    char key[96], when[32], id[24], full[24];
    snprintf(key, sizeof key, "%s/dlq/%" PRIu64, e->origin && *e->origin ? e->origin : "-", e->id);
    snprintf(id, sizeof id, "%" PRIu64, e->id);
    pg_dlq_format_time(e->received_ms, when);
    size_t len = e->len < PG_DLQ_MAX_RECORD_VALUE ? e->len : PG_DLQ_MAX_RECORD_VALUE;
    size_t orig = e->original_len > e->len ? e->original_len : e->len;
    uint8_t *value = pg_arena_alloc(batch->arena, len ? len : 1);
    rec->topic = pg_arena_strdup(batch->arena, topic);
    rec->key = pg_arena_strdup(batch->arena, key);
    if (!value || !rec->topic || !rec->key)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "dlq: out of memory");
    memcpy(value, e->data, len);
    rec->value = value;
    rec->value_len = len;
    int rc = pg_outrec_header_add(batch, rec, PG_HDR_REASON, e->reason ? e->reason : "");
    rc =
        rc ? rc : pg_outrec_header_add(batch, rec, PG_HDR_ORIGIN_FORCE, e->origin ? e->origin : "");
    rc = rc ? rc : pg_outrec_header_add(batch, rec, PG_HDR_RECEIVED_AT, when);
    rc = rc ? rc : pg_outrec_header_add(batch, rec, PG_HDR_FORMAT, e->format ? e->format : "");
    rc = rc ? rc : pg_outrec_header_add(batch, rec, PG_HDR_DLQ_ID, id);
    if (!rc && orig > len) {
        snprintf(full, sizeof full, "%zu", orig);
        rc = pg_outrec_header_add(batch, rec, PG_HDR_TRUNCATED, full);
    }
    return rc ? pg_errf(rc, errstr, errstr_size, "dlq: out of memory") : 0;
}

/* ---------------------------------------------------------------- the last operations */

/* partner.lastop: id -> be64 seq (the import queue message that last carried the
 * record or link), be64 version (as sent), one byte op (S_OP_*), and for a merged-away
 * record the survivor's id (to the end). Kept for ever, like the id map. */
enum { S_OP_UPSERT = 'u', S_OP_DELETE = 'd', S_OP_MERGED = 'm' };
#define S_LASTOP_FIXED 17

static const char *s_op_name(int op)
{
    return op == S_OP_UPSERT ? "upsert" : op == S_OP_DELETE ? "delete" : "merged";
}

/* id as a key of partner.lastop and an element of ops, or "-" when it cannot be one
 * (empty, too long, or holding the list's comma): a replay then finds no note of it
 * and refuses (fail closed). */
static const char *s_op_key(const char *id)
{
    return id && *id && strlen(id) <= PG_STORE_MAX_KEY && !strchr(id, ',') ? id : "-";
}

/* Note op of id at seq; its element appended to ops, after a comma when ops holds more
 * than its first start bytes. */
static int s_note(pg_dlq *self, pg_store_txn *txn, uint64_t seq, const char *id, int op,
                  uint64_t version, const char *into, pg_buf *ops, size_t start, char *errstr,
                  size_t errstr_size)
{
    id = s_op_key(id);
    if ((ops->len > start && pg_buf_putc(ops, ',')) ||
        pg_buf_printf(ops, "%s:%s:%" PRIu64, id, s_op_name(op), version))
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "dlq: out of memory");
    if (!strcmp(id, "-"))
        return 0;
    size_t ilen = op == S_OP_MERGED && into ? strlen(into) : 0;
    void *v;
    int rc = pg_store_put_reserve(txn, self->lastop_db, id, strlen(id), S_LASTOP_FIXED + ilen, &v,
                                  errstr, errstr_size);
    if (rc)
        return rc;
    uint8_t *b = v;
    pg_store_be64_put(b, seq);
    pg_store_be64_put(b + 8, version);
    b[16] = (uint8_t)op;
    if (ilen)
        memcpy(b + S_LASTOP_FIXED, into, ilen);
    return 0;
}

int pg_dlq_note_composed(pg_dlq *self, pg_store_txn *txn, uint64_t seq, const pg_changeset *cs,
                         pg_buf *ops, char *errstr, size_t errstr_size)
{
    int rc = 0;
    size_t start = ops->len;
    for (size_t i = 0; !rc && cs && i < cs->count; i++) {
        const pg_change *ch = &cs->changes[i];
        if (ch->type != PG_CHANGE_ENTITY) {
            const pg_link_update *l = ch->link;
            rc = s_note(self, txn, seq, l->id,
                        l->operation == POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT
                            ? S_OP_UPSERT
                            : S_OP_DELETE,
                        l->version, NULL, ops, start, errstr, errstr_size);
            continue;
        }
        const pg_entity_update *e = ch->entity;
        int upsert = e->operation == POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
        rc = s_note(self, txn, seq, e->id, upsert ? S_OP_UPSERT : S_OP_DELETE, e->version, NULL,
                    ops, start, errstr, errstr_size);
        /* a survivor sent with merged_from removes those records at the RMS */
        for (size_t k = 0; !rc && upsert && k < e->n_merged_from; k++)
            rc = s_note(self, txn, seq, e->merged_from[k]->id, S_OP_MERGED, e->version, e->id, ops,
                        start, errstr, errstr_size);
    }
    return rc;
}

/* PG_EPOLICY when import dead letter e is superseded: a record or link it carries had
 * a later operation composed since it was (one still in the import queue, delivered,
 * or a dead letter itself), or what was last composed of one is not known. A removal
 * (delete, merged) goes again while the last operation composed of its record removes
 * it too (only the last is kept: sent again and removed again since counts as removed). */
static int s_superseded(pg_dlq *self, pg_store_txn *txn, const pg_dlq_entry *e, char *errstr,
                        size_t errstr_size)
{
    if (!e->seq || !e->ops || !*e->ops)
        return pg_errf(PG_EPOLICY, errstr, errstr_size,
                       "dlq: dead letter %" PRIu64 " was kept before dead letters noted the "
                       "operations they carry: whether its records were changed, deleted or "
                       "merged away by the partner since cannot be told; it is not sent "
                       "(purge it)",
                       e->id);
    for (const char *p = e->ops; *p;) {
        size_t len = strcspn(p, ",");
        const char *c2 = memrchr(p, ':', len);
        const char *c1 = c2 ? memrchr(p, ':', (size_t)(c2 - p)) : NULL;
        char id[PG_STORE_MAX_KEY + 1];
        if (!c1 || (size_t)(c1 - p) > PG_STORE_MAX_KEY)
            return pg_errf(PG_EINTERNAL, errstr, errstr_size,
                           "dlq: dead letter %" PRIu64 ": damaged operations", e->id);
        snprintf(id, sizeof id, "%.*s", (int)(c1 - p), p);
        int removal = strncmp(c1 + 1, "upsert:", 7) != 0;
        const void *v = NULL;
        size_t vlen = 0;
        int rc = strcmp(id, "-") ? pg_store_get(txn, self->lastop_db, id, strlen(id), &v, &vlen,
                                                errstr, errstr_size)
                                 : PG_ENOTFOUND;
        if (rc && rc != PG_ENOTFOUND)
            return rc;
        const uint8_t *b = v;
        uint64_t seq = !rc && b && vlen >= S_LASTOP_FIXED ? pg_store_be64_get(b) : 0;
        if (!b || seq < e->seq)
            return pg_errf(PG_EPOLICY, errstr, errstr_size,
                           "dlq: dead letter %" PRIu64 " is superseded: what was last sent of %s "
                           "is not known; it is not sent (purge it)",
                           e->id, id);
        int op = b[16];
        uint64_t version = pg_store_be64_get(b + 8);
        if (seq > e->seq && !(removal && op != S_OP_UPSERT)) {
            const char *into = (const char *)b + S_LASTOP_FIXED;
            int ilen = (int)(vlen - S_LASTOP_FIXED);
            return pg_errf(PG_EPOLICY, errstr, errstr_size,
                           "dlq: dead letter %" PRIu64 " is superseded: %s was %s%.*s by the "
                           "partner at version %" PRIu64 " after this dead letter; it is not "
                           "sent (purge it)",
                           e->id, id,
                           op == S_OP_UPSERT   ? "updated"
                           : op == S_OP_DELETE ? "deleted"
                           : ilen              ? "merged into "
                                               : "merged away",
                           op == S_OP_MERGED ? ilen : 0, into, version);
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/* ---------------------------------------------------------------- resend to the RMS */

typedef struct s_resend {
    int done;
    int status;
    char reason[PG_ERRSTR_SIZE];
} s_resend;

static void s_resend_result(void *arg, const pg_rms_delivery_result *r)
{
    s_resend *rs = arg;
    rs->done = 1;
    rs->status = r->status;
    snprintf(rs->reason, sizeof rs->reason, "%s",
             r->reason && *r->reason ? r->reason : "no reason given");
}

/* Does policy still take records of origin force `force` from some partner? */
static int s_partner_of(const pg_policy *policy, const char *force, size_t len)
{
    for (size_t i = 0; i < pg_policy_partner_count(policy); i++) {
        const pg_policy_partner *p = pg_policy_partner_at(policy, i);
        if (strlen(p->force) == len && !memcmp(p->force, force, len))
            return 1;
        for (size_t j = 0; j < p->n_speaks_for; j++)
            if (strlen(p->speaks_for[j]) == len && !memcmp(p->speaks_for[j], force, len))
                return 1;
    }
    return 0;
}

/* PG_EPOLICY when policy (may be NULL: not checked) no longer takes records of an
 * origin force of import dead letter e (its origin, "MER" or "MER,KNT"). */
static int s_still_partner(const pg_policy *policy, const pg_dlq_entry *e, char *errstr,
                           size_t errstr_size)
{
    for (const char *f = e->origin; policy && f && *f;) {
        size_t len = strcspn(f, ",");
        if (!s_partner_of(policy, f, len))
            return pg_errf(PG_EPOLICY, errstr, errstr_size,
                           "dlq: dead letter %" PRIu64 " holds records of %.*s, which the "
                           "policy (%s) no longer takes from any partner; it is not sent",
                           e->id, (int)len, f, pg_policy_version(policy));
        f += len + (f[len] == ',');
    }
    return 0;
}

int pg_dlq_resend(pg_dlq *self, uint64_t id, const pg_rms_delivery_config *cfg,
                  const pg_policy *policy, int timeout_ms, char *errstr, size_t errstr_size)
{
    pg_store_txn *txn = pg_store_begin(self->store, 0, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    pg_dlq_entry e = {0};
    int rc = pg_dlq_get(self, txn, id, &e, errstr, errstr_size);
    if (!rc && e.kind == PG_DLQ_IMPORT)
        rc = s_still_partner(policy, &e, errstr, errstr_size);
    if (!rc && e.kind == PG_DLQ_IMPORT)
        rc = s_superseded(self, txn, &e, errstr, errstr_size);
    if (!rc && e.kind != PG_DLQ_IMPORT)
        rc = pg_errf(PG_EUSAGE, errstr, errstr_size,
                     "dlq: dead letter %" PRIu64 " is not an import dead letter", id);
    if (!rc && e.original_len > e.len)
        rc = pg_errf(PG_ETOOBIG, errstr, errstr_size,
                     "dlq: dead letter %" PRIu64 ": only %zu of its %zu bytes were kept", id, e.len,
                     e.original_len);
    char corr[160];
    const char *extension = cfg->extension;
    uint8_t *data = NULL;
    size_t len = 0;
    if (!rc) {
        snprintf(corr, sizeof corr, "%s.dlq-%" PRIu64, e.ref && *e.ref ? e.ref : "pg", id);
        len = e.len;
        const pg_adapter_ops *a = pg_adapter_find(e.format);
        if (!extension) /* as the partner direction names its files */
            extension = a ? a->extensions[0] : "xml";
        if (!(data = malloc(len ? len : 1)))
            rc = pg_errf(PG_ENOMEM, errstr, errstr_size, "dlq: out of memory");
        else if (len)
            memcpy(data, e.data, len);
    }
    pg_store_abort(&txn);
    if (rc)
        return rc;
    s_resend rs = {0};
    pg_rms_delivery_config dcfg = *cfg;
    dcfg.window = 1;
    dcfg.extension = extension;
    dcfg.on_result = s_resend_result;
    dcfg.on_result_arg = &rs;
    if (dcfg.ack_timeout_ms <= 0 || dcfg.ack_timeout_ms > timeout_ms)
        dcfg.ack_timeout_ms = timeout_ms;
    pg_rms_delivery *del = pg_rms_delivery_new(&dcfg, errstr, errstr_size);
    rc = del ? pg_rms_delivery_submit(del, corr, data, len, NULL, NULL, errstr, errstr_size)
             : PG_EIO;
    if (!rc)
        rc = pg_rms_delivery_flush(del, timeout_ms, errstr, errstr_size);
    if (rc == PG_ETIMEOUT || (!rc && !rs.done))
        rc = pg_errf(PG_ETIMEOUT, errstr, errstr_size,
                     "dlq: no answer from the RMS at %s within %d ms", cfg->endpoint, timeout_ms);
    pg_rms_delivery_destroy(&del);
    free(data);
    if (rc)
        return rc;
    if (rs.status)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "%s", rs.reason);
    if (!(txn = pg_store_begin(self->store, 1, errstr, errstr_size)))
        return PG_ESTORE;
    rc = pg_dlq_delete(self, txn, id, errstr, errstr_size);
    if (!rc)
        rc = pg_store_commit(&txn, errstr, errstr_size);
    pg_store_abort(&txn);
    return rc;
}
