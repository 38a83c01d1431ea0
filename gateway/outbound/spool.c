/* pg_spool: outbound batches kept in LMDB until Kafka has stored them (see spool.h). */
#include "spool.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "outrec.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "sentmark.h"
#include "store.h"

/* The value format's marker: PGB2 records the party of each batch; PGB1 (before it)
 * is still read, its records with no party. */
#define S_MAGIC "PGB2"
#define S_MAGIC_V1 "PGB1"
#define S_NULL_LEN UINT32_MAX
static const char s_state_key[] = "state";

/* spool.meta "state", stored in host byte order (the store never leaves the host). */
typedef struct s_state {
    uint64_t next_seq;
    uint64_t batches;
    uint64_t records;
    uint64_t bytes;
} s_state;

struct pg_spool {
    pg_store *store;
    pg_store_db batch_db;
    pg_store_db meta_db;
    pg_spool_limits limits;
    int unbounded; /* pg_spool_set_unbounded */
    pg_buf value;  /* the batch being appended, reused */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t gen;              /* notifications so far */
    uint64_t rewrites;         /* odd while a rewrite (pg_spool_withhold) is under way */
    pg_spool_reform_fn reform; /* pg_spool_set_reform */
    void *reform_ud;
};

static int s_state_put(pg_spool *self, pg_store_txn *txn, const s_state *st, char *errstr,
                       size_t errstr_size);

pg_spool *pg_spool_new(pg_store *store, const pg_spool_limits *limits, char *errstr,
                       size_t errstr_size)
{
    pg_spool *self = calloc(1, sizeof *self);
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "spool: out of memory");
        return NULL;
    }
    self->store = store;
    if (limits)
        self->limits = *limits;
    pthread_mutex_init(&self->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &ca);
    pthread_condattr_destroy(&ca);

    char why[PG_ERRSTR_SIZE];
    pg_store_txn *txn = pg_store_begin(store, 1, why, sizeof why);
    if (!txn) {
        pg_errf(PG_ESTORE, errstr, errstr_size, "spool: %s", why);
        goto err;
    }
    int rc = pg_store_db_open(txn, "spool.batch", 0, &self->batch_db, why, sizeof why);
    rc = rc ? rc : pg_store_db_open(txn, "spool.meta", 0, &self->meta_db, why, sizeof why);
    const void *v;
    size_t vlen;
    int fresh = !rc && pg_store_get(txn, self->meta_db, s_state_key, sizeof s_state_key - 1, &v,
                                    &vlen, why, sizeof why) == PG_ENOTFOUND;
    if (fresh) {
        /* A new spool: the publisher's mark of what was sent (sentmark.h) starts here
         * at 0, before the spool's state exists, so that a spool with a state and no
         * mark is one whose mark was lost or never made (a release before it). */
        uint64_t seq;
        pg_sentmark_state state;
        pg_sentmark *mark = pg_sentmark_open(pg_store_dir(store), &seq, &state, why, sizeof why);
        rc = mark ? 0 : PG_EIO;
        if (mark && state != PG_SENTMARK_OK)
            rc = pg_sentmark_set(mark, 0, why, sizeof why);
        pg_sentmark_close(&mark);
        s_state st;
        memset(&st, 0, sizeof st);
        st.next_seq = 1;
        rc = rc ? rc : s_state_put(self, txn, &st, why, sizeof why);
    }
    rc = rc ? rc : pg_store_commit(&txn, why, sizeof why);
    if (rc) {
        pg_store_abort(&txn);
        pg_errf(rc == PG_EIO || rc == PG_EDISKFULL ? rc : PG_ESTORE, errstr, errstr_size,
                "spool: %s", why);
        goto err;
    }
    return self;
err:
    pg_spool_destroy(&self);
    return NULL;
}

void pg_spool_destroy(pg_spool **p)
{
    if (!p || !*p)
        return;
    pg_spool *self = *p;
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->cond);
    pg_buf_free(&self->value);
    free(self);
    *p = NULL;
}

void pg_spool_set_unbounded(pg_spool *self, int unbounded)
{
    self->unbounded = unbounded;
}

void pg_spool_set_limits(pg_spool *self, const pg_spool_limits *limits)
{
    self->limits = *limits;
}

/* ---------------------------------------------------------------- the value format */

/*
 * "PGB2", u32 record count, str party (the batch's), then per record (integers
 * little-endian):
 *   str topic, str key, u8 has_value, [u32 len, bytes], u8 header count,
 *   (str name, str value)..., u8 audit action, str destination, str agreement,
 *   str policy_version, str entity_id, str native_id, str origin, u64 version, str outcome,
 *   str party (NULL: the batch's)
 * where str is u32 length (UINT32_MAX for NULL) and the bytes. "PGB1", written before
 * parties were recorded, is the same without the two party strings. The record count
 * stays right after the magic: pg_spool_remove reads it there.
 */

static int s_u8(pg_buf *b, unsigned v)
{
    return pg_buf_putc(b, (char)(uint8_t)v);
}

static int s_u32(pg_buf *b, uint32_t v)
{
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return pg_buf_append(b, le, 4);
}

static int s_u64(pg_buf *b, uint64_t v)
{
    return s_u32(b, (uint32_t)v) || s_u32(b, (uint32_t)(v >> 32)) ? PG_ENOMEM : 0;
}

static int s_bytes(pg_buf *b, const void *p, size_t n)
{
    if (n >= S_NULL_LEN)
        return PG_EINVALID;
    int rc = s_u32(b, (uint32_t)n);
    return rc ? rc : pg_buf_append(b, p, n);
}

static int s_str(pg_buf *b, const char *s)
{
    return s ? s_bytes(b, s, strlen(s)) : s_u32(b, S_NULL_LEN);
}

int pg_spool_encode(const pg_outbatch *batch, pg_buf *out, char *errstr, size_t errstr_size)
{
    if (batch->count > UINT32_MAX)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "spool: too many records");
    int rc = pg_buf_append(out, S_MAGIC, 4);
    rc = rc ? rc : s_u32(out, (uint32_t)batch->count);
    rc = rc ? rc : s_str(out, batch->party);
    for (size_t i = 0; !rc && i < batch->count; i++) {
        const pg_outrec *r = &batch->recs[i];
        if (!r->topic || !*r->topic || !r->key || !*r->key)
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "spool: records[%zu]: a record needs a topic and a key", i);
        if (r->header_count > PG_OUTREC_MAX_HEADERS)
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "spool: records[%zu]: more than %d headers", i, PG_OUTREC_MAX_HEADERS);
        rc = s_str(out, r->topic);
        rc = rc ? rc : s_str(out, r->key);
        rc = rc ? rc : s_u8(out, r->value != NULL);
        if (!rc && r->value)
            rc = s_bytes(out, r->value, r->value_len);
        rc = rc ? rc : s_u8(out, (unsigned)r->header_count);
        for (size_t h = 0; !rc && h < r->header_count; h++) {
            rc = s_str(out, r->headers[h].name);
            rc = rc ? rc : s_str(out, r->headers[h].value);
        }
        rc = rc ? rc : s_u8(out, (unsigned)r->audit_action);
        rc = rc ? rc : s_str(out, r->destination);
        rc = rc ? rc : s_str(out, r->agreement);
        rc = rc ? rc : s_str(out, r->policy_version);
        rc = rc ? rc : s_str(out, r->entity_id);
        rc = rc ? rc : s_str(out, r->native_id);
        rc = rc ? rc : s_str(out, r->origin);
        rc = rc ? rc : s_u64(out, r->version);
        rc = rc ? rc : s_str(out, r->outcome);
        int own = r->party && (!batch->party || strcmp(r->party, batch->party));
        rc = rc ? rc : s_str(out, own ? r->party : NULL);
    }
    if (rc == PG_EINVALID)
        return pg_errf(rc, errstr, errstr_size, "spool: a value of 4 GiB or more");
    if (rc)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "spool: out of memory");
    return 0;
}

typedef struct s_reader {
    const uint8_t *p, *end, *start;
    pg_arena *arena;
    int bad;
    int nomem;
} s_reader;

static uint32_t s_get32(s_reader *r)
{
    if (r->end - r->p < 4) {
        r->bad = 1;
        return 0;
    }
    uint32_t v =
        r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    return v;
}

static unsigned s_get8(s_reader *r)
{
    if (r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static uint64_t s_get64(s_reader *r)
{
    uint64_t lo = s_get32(r);
    return lo | (uint64_t)s_get32(r) << 32;
}

/* A NUL-terminated copy in the arena of the next str (NULL for a NULL str). */
static const char *s_getstr(s_reader *r, size_t *len)
{
    uint32_t n = s_get32(r);
    if (r->bad || n == S_NULL_LEN)
        return NULL;
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    char *s = pg_arena_alloc(r->arena, (size_t)n + 1);
    if (!s) {
        r->nomem = 1;
        return NULL;
    }
    memcpy(s, r->p, n);
    s[n] = 0;
    r->p += n;
    if (len)
        *len = n;
    return s;
}

int pg_spool_decode(const uint8_t *data, size_t len, pg_outbatch *out, char *errstr,
                    size_t errstr_size)
{
    s_reader r = {data, data + len, data, out->arena, 0, 0};
    int v1 = len >= 8 && !memcmp(data, S_MAGIC_V1, 4);
    if (len < 8 || (!v1 && memcmp(data, S_MAGIC, 4)))
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "spool: not a batch (bad magic)");
    r.p += 4;
    uint32_t count = s_get32(&r);
    const char *party = v1 ? NULL : s_getstr(&r, NULL);
    for (uint32_t i = 0; i < count && !r.bad && !r.nomem; i++) {
        pg_outrec *rec = pg_outbatch_add(out);
        if (!rec)
            return pg_errf(PG_ENOMEM, errstr, errstr_size, "spool: out of memory");
        rec->topic = s_getstr(&r, NULL);
        rec->key = s_getstr(&r, NULL);
        if (s_get8(&r)) {
            size_t n = 0;
            rec->value = (const uint8_t *)s_getstr(&r, &n);
            rec->value_len = n;
        }
        unsigned nh = s_get8(&r);
        if (nh > PG_OUTREC_MAX_HEADERS)
            r.bad = 1;
        for (unsigned h = 0; h < nh && !r.bad; h++) {
            rec->headers[h].name = s_getstr(&r, NULL);
            rec->headers[h].value = s_getstr(&r, NULL);
        }
        rec->header_count = r.bad ? 0 : nh;
        unsigned action = s_get8(&r);
        if (action >= PG_AUDIT_ACTION_COUNT)
            r.bad = 1;
        rec->audit_action = (pg_audit_action)action;
        rec->destination = s_getstr(&r, NULL);
        rec->agreement = s_getstr(&r, NULL);
        rec->policy_version = s_getstr(&r, NULL);
        rec->entity_id = s_getstr(&r, NULL);
        rec->native_id = s_getstr(&r, NULL);
        rec->origin = s_getstr(&r, NULL);
        rec->version = s_get64(&r);
        rec->outcome = s_getstr(&r, NULL);
        rec->party = v1 ? NULL : s_getstr(&r, NULL);
        if (!rec->party)
            rec->party = party;
        if (!r.bad && (!rec->topic || !rec->key))
            r.bad = 1;
    }
    if (r.nomem)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "spool: out of memory");
    if (r.bad || r.p != r.end)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size,
                       "spool: damaged batch (at byte %zu of %zu)", (size_t)(r.p - r.start), len);
    return 0;
}

/* ---------------------------------------------------------------- the store */

static int s_state_get(pg_spool *self, pg_store_txn *txn, s_state *st, char *errstr,
                       size_t errstr_size)
{
    const void *v;
    size_t vlen;
    memset(st, 0, sizeof *st);
    st->next_seq = 1;
    int rc = pg_store_get(txn, self->meta_db, s_state_key, sizeof s_state_key - 1, &v, &vlen,
                          errstr, errstr_size);
    if (rc == PG_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (vlen != sizeof *st)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "spool: damaged state (%zu bytes)", vlen);
    memcpy(st, v, sizeof *st);
    return 0;
}

static int s_state_put(pg_spool *self, pg_store_txn *txn, const s_state *st, char *errstr,
                       size_t errstr_size)
{
    return pg_store_put(txn, self->meta_db, s_state_key, sizeof s_state_key - 1, st, sizeof *st,
                        errstr, errstr_size);
}

int pg_spool_append(pg_spool *self, pg_store_txn *txn, const pg_outbatch *batch, uint64_t *seq,
                    char *errstr, size_t errstr_size)
{
    if (seq)
        *seq = 0;
    if (!batch->count)
        return 0;
    pg_buf_reset(&self->value);
    int rc = pg_spool_encode(batch, &self->value, errstr, errstr_size);
    if (rc)
        return rc;
    s_state st;
    if ((rc = s_state_get(self, txn, &st, errstr, errstr_size)))
        return rc;
    const pg_spool_limits *lim = &self->limits;
    if (st.batches && !self->unbounded &&
        ((lim->max_records && st.records + batch->count > lim->max_records) ||
         (lim->max_bytes && st.bytes + self->value.len > lim->max_bytes)))
        return pg_errf(PG_ERETRY, errstr, errstr_size,
                       "spool full: %llu records, %llu bytes waiting for the broker (bounds "
                       "%zu records, %zu bytes); send again later",
                       (unsigned long long)st.records, (unsigned long long)st.bytes,
                       lim->max_records, lim->max_bytes);
    uint8_t key[8];
    pg_store_be64_put(key, st.next_seq);
    if ((rc = pg_store_put(txn, self->batch_db, key, sizeof key, self->value.data, self->value.len,
                           errstr, errstr_size)))
        return rc;
    if (seq)
        *seq = st.next_seq;
    st.next_seq++;
    st.batches++;
    st.records += batch->count;
    st.bytes += self->value.len;
    return s_state_put(self, txn, &st, errstr, errstr_size);
}

int pg_spool_next(pg_spool *self, pg_store_txn *txn, uint64_t after, uint64_t *seq, size_t *bytes,
                  pg_outbatch *out, char *errstr, size_t errstr_size)
{
    pg_store_cursor *cur = pg_store_cursor_open(txn, self->batch_db, errstr, errstr_size);
    if (!cur)
        return PG_ESTORE;
    uint8_t key[8];
    pg_store_be64_put(key, after + 1);
    const void *k, *v;
    size_t klen, vlen;
    int rc = pg_store_cursor_seek(cur, key, sizeof key, &k, &klen, &v, &vlen);
    if (rc == PG_ENOTFOUND)
        pg_errf(rc, errstr, errstr_size, "spool: nothing after %llu", (unsigned long long)after);
    if (!rc && klen != 8)
        rc = pg_errf(PG_EINTERNAL, errstr, errstr_size, "spool: damaged key");
    if (!rc) {
        *seq = pg_store_be64_get(k);
        if (bytes)
            *bytes = vlen;
        rc = pg_spool_decode(v, vlen, out, errstr, errstr_size);
    }
    pg_store_cursor_close(&cur);
    return rc;
}

int pg_spool_remove(pg_spool *self, pg_store_txn *txn, uint64_t first, uint64_t last,
                    size_t *removed, char *errstr, size_t errstr_size)
{
    if (removed)
        *removed = 0;
    s_state st;
    int rc = s_state_get(self, txn, &st, errstr, errstr_size);
    if (rc)
        return rc;
    pg_store_cursor *cur = pg_store_cursor_open(txn, self->batch_db, errstr, errstr_size);
    if (!cur)
        return PG_ESTORE;
    uint8_t key[8];
    pg_store_be64_put(key, first);
    const void *k, *v;
    size_t klen, vlen, n = 0;
    rc = pg_store_cursor_seek(cur, key, sizeof key, &k, &klen, &v, &vlen);
    while (!rc && klen == 8 && pg_store_be64_get(k) <= last) {
        /* The record count is the u32 after the magic. */
        s_reader hdr = {(const uint8_t *)v + 4, (const uint8_t *)v + vlen, v, NULL, 0, 0};
        uint32_t count = vlen >= 8 ? s_get32(&hdr) : 0;
        st.batches -= st.batches ? 1 : 0;
        st.records -= st.records >= count ? count : st.records;
        st.bytes -= st.bytes >= vlen ? vlen : st.bytes;
        if ((rc = pg_store_cursor_del(cur)))
            break;
        n++;
        rc = pg_store_cursor_next(cur, &k, &klen, &v, &vlen);
    }
    pg_store_cursor_close(&cur);
    if (rc && rc != PG_ENOTFOUND)
        return rc;
    if (removed)
        *removed = n;
    if (!n)
        return 0;
    if (!st.batches)
        st.records = st.bytes = 0;
    return s_state_put(self, txn, &st, errstr, errstr_size);
}

/* ---------------------------------------------------------------- withholding */

/* "topic\nkey" of a record, in arena: what a withdrawal and a disclosure are matched
 * by: what the topic's consumers would hold, whatever the destination is called now (a
 * rename keeps the topic; topic names and UUID keys hold no newline). */
static const char *s_pair(pg_arena *arena, const pg_outrec *r)
{
    return pg_arena_sprintf(arena, "%s\n%s", r->topic ? r->topic : "", r->key);
}

static int s_cmp_pair(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* What s_withdrawn and s_why give when they cannot tell (out of memory): the caller
 * fails, rather than let the disclosure go. */
static const pg_outrec s_no_memory;

/* The withdrawal of withdrawals that withdraws rec (a disclosure), or NULL. */
static const pg_outrec *s_withdrawn(const pg_outbatch *withdrawals, const char **pairs,
                                    const size_t *index, size_t n, pg_arena *arena,
                                    const pg_outrec *rec)
{
    if (rec->audit_action != PG_AUDIT_DISCLOSE || !n)
        return NULL;
    const char *pair = s_pair(arena, rec);
    if (!pair)
        return &s_no_memory;
    const char **hit = bsearch(&pair, pairs, n, sizeof *pairs, s_cmp_pair);
    return hit ? &withdrawals->recs[index[hit - pairs]] : NULL;
}

/* A withdrawal or disclosure spooled at (seq, i): "topic\nkey\n<seq><i>" sorts by
 * pair, then by position. */
typedef struct s_later {
    const char *k;
    size_t rec; /* its copy in the later batch */
} s_later;

static int s_cmp_later(const void *a, const void *b)
{
    return strcmp(((const s_later *)a)->k, ((const s_later *)b)->k);
}

static const char *s_later_key(pg_arena *arena, const pg_outrec *r, uint64_t seq, size_t i)
{
    const char *pair = s_pair(arena, r);
    return pair ? pg_arena_sprintf(arena, "%s\n%016" PRIx64 "%016zx", pair, seq, i) : NULL;
}

/* Every withdrawal and disclosure still spooled, copied into later (strings in its
 * arena), with their keys sorted into *out (*count). */
static int s_spooled_records(pg_spool *self, pg_store_txn *txn, pg_outbatch *later, s_later **out,
                             size_t *count, char *errstr, size_t errstr_size)
{
    pg_outbatch *batch = pg_outbatch_new();
    pg_store_cursor *cur =
        batch ? pg_store_cursor_open(txn, self->batch_db, errstr, errstr_size) : NULL;
    s_later *v = NULL;
    size_t n = 0, cap = 0;
    const void *k, *val;
    size_t klen, vlen;
    int rc = !batch ? PG_ENOMEM
             : !cur ? PG_ESTORE
                    : pg_store_cursor_first(cur, &k, &klen, &val, &vlen);
    for (; !rc; rc = pg_store_cursor_next(cur, &k, &klen, &val, &vlen)) {
        pg_outbatch_reset(batch);
        if (klen != 8)
            rc = pg_errf(PG_EINTERNAL, errstr, errstr_size, "spool: damaged key");
        else
            rc = pg_spool_decode(val, vlen, batch, errstr, errstr_size);
        for (size_t i = 0; !rc && i < batch->count; i++) {
            const pg_outrec *r = &batch->recs[i];
            if (r->audit_action != PG_AUDIT_WITHDRAW && r->audit_action != PG_AUDIT_DISCLOSE)
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                s_later *grown = realloc(v, cap * sizeof *v);
                if (!grown) {
                    rc = PG_ENOMEM;
                    break;
                }
                v = grown;
            }
            pg_outrec *c = pg_outbatch_add(later);
            if (!c) {
                rc = PG_ENOMEM;
                break;
            }
            pg_arena *a = later->arena;
            /* what a withhold event takes of it; nothing that points into batch */
            *c = (pg_outrec){.audit_action = r->audit_action, .version = r->version};
            c->topic = pg_arena_strdup(a, r->topic ? r->topic : "");
            c->key = pg_arena_strdup(a, r->key);
            c->destination = r->destination ? pg_arena_strdup(a, r->destination) : NULL;
            c->outcome = r->outcome ? pg_arena_strdup(a, r->outcome) : NULL;
            c->policy_version = r->policy_version ? pg_arena_strdup(a, r->policy_version) : NULL;
            v[n].k = s_later_key(a, r, pg_store_be64_get(k), i);
            v[n].rec = later->count - 1;
            if (!c->topic || !c->key || (r->destination && !c->destination) ||
                (r->outcome && !c->outcome) || (r->policy_version && !c->policy_version) ||
                !v[n++].k)
                rc = PG_ENOMEM;
        }
        if (rc)
            break;
    }
    pg_store_cursor_close(&cur);
    pg_outbatch_destroy(&batch);
    if (rc == PG_ENOTFOUND)
        rc = 0;
    if (rc) {
        free(v);
        return rc;
    }
    if (n)
        qsort(v, n, sizeof *v, s_cmp_later);
    *out = v;
    *count = n;
    return 0;
}

/* The record that withholds rec, a disclosure spooled at (seq, i): a withdrawal of the
 * policy change's, or a withdrawal or disclosure of its topic and key spooled after it
 * (consumers keep the later one: what was decided under the policy before need not
 * go, and the new one may forbid it). NULL when none. */
typedef struct s_why_ctx {
    const pg_outbatch *withdrawals;
    const char **pairs;
    const size_t *index;
    size_t n;
    const pg_outbatch *later;
    const s_later *lkeys;
    size_t ln;
} s_why_ctx;

static const pg_outrec *s_why(const s_why_ctx *w, pg_arena *arena, const pg_outrec *rec,
                              uint64_t seq, size_t i)
{
    const pg_outrec *hit = s_withdrawn(w->withdrawals, w->pairs, w->index, w->n, arena, rec);
    if (hit || !w->ln || rec->audit_action != PG_AUDIT_DISCLOSE)
        return hit;
    s_later probe = {s_later_key(arena, rec, seq, i), 0};
    if (!probe.k)
        return &s_no_memory;
    size_t plen = strlen(probe.k) - 32, lo = 0, hi = w->ln;
    while (lo < hi) { /* the first key after the probe's */
        size_t mid = lo + (hi - lo) / 2;
        if (s_cmp_later(&w->lkeys[mid], &probe) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < w->ln && !strncmp(w->lkeys[lo].k, probe.k, plen))
        return &w->later->recs[w->lkeys[lo].rec];
    return NULL;
}

void pg_spool_set_reform(pg_spool *self, pg_spool_reform_fn fn, void *ud)
{
    self->reform = fn;
    self->reform_ud = ud;
}

int pg_spool_withhold(pg_spool *self, pg_store_txn *txn, pg_outbatch *withdrawals, int superseded,
                      size_t *dropped, size_t *reformed, char *errstr, size_t errstr_size)
{
    *dropped = 0;
    *reformed = 0;
    size_t n = 0;
    for (size_t i = 0; i < withdrawals->count; i++)
        n += withdrawals->recs[i].audit_action == PG_AUDIT_WITHDRAW;
    if (!n && !superseded)
        return 0;
    pg_arena *arena = pg_arena_new(0);
    pg_outbatch *batch = pg_outbatch_new(), *keep = pg_outbatch_new(), *later = pg_outbatch_new();
    const char **pairs = arena ? pg_arena_alloc(arena, (n + 1) * sizeof *pairs) : NULL;
    size_t *index = arena ? pg_arena_alloc(arena, (n + 1) * sizeof *index) : NULL;
    uint64_t *seqs = NULL;
    size_t nseq = 0, cap = 0;
    pg_store_cursor *cur = NULL;
    s_why_ctx why = {withdrawals, pairs, index, n, later, NULL, 0};
    int rc = batch && keep && later && pairs && index ? 0 : PG_ENOMEM;
    s_later *lkeys = NULL;
    if (!rc && superseded &&
        !(rc = s_spooled_records(self, txn, later, &lkeys, &why.ln, errstr, errstr_size)))
        why.lkeys = lkeys;
    /* The withdrawals, sorted by pair: index[] maps a sorted pair to its record. */
    size_t m = 0;
    for (size_t i = 0; !rc && i < withdrawals->count; i++)
        if (withdrawals->recs[i].audit_action == PG_AUDIT_WITHDRAW) {
            pairs[m] = s_pair(arena, &withdrawals->recs[i]);
            rc = pairs[m++] ? 0 : PG_ENOMEM;
        }
    if (!rc) {
        if (n)
            qsort(pairs, n, sizeof *pairs, s_cmp_pair);
        for (size_t i = 0; !rc && i < withdrawals->count; i++) {
            const pg_outrec *w = &withdrawals->recs[i];
            const char *pair = w->audit_action == PG_AUDIT_WITHDRAW ? s_pair(arena, w) : NULL;
            const char **hit = pair ? bsearch(&pair, pairs, n, sizeof *pairs, s_cmp_pair) : NULL;
            if (hit)
                index[hit - pairs] = i;
            else if (w->audit_action == PG_AUDIT_WITHDRAW)
                rc = PG_ENOMEM;
        }
    }
    /* First the batches that hold a disclosure withdrawn (read, nothing written). */
    if (!rc && !(cur = pg_store_cursor_open(txn, self->batch_db, errstr, errstr_size)))
        rc = PG_ESTORE;
    const void *k, *v;
    size_t klen, vlen;
    int crc = rc ? rc : pg_store_cursor_first(cur, &k, &klen, &v, &vlen);
    for (; !crc; crc = pg_store_cursor_next(cur, &k, &klen, &v, &vlen)) {
        if (klen != 8) {
            crc = pg_errf(PG_EINTERNAL, errstr, errstr_size, "spool: damaged key");
            break;
        }
        pg_outbatch_reset(batch);
        if ((crc = pg_spool_decode(v, vlen, batch, errstr, errstr_size)))
            break;
        size_t hits = 0;
        for (size_t i = 0; i < batch->count && !crc; i++) {
            const pg_outrec *w =
                s_why(&why, batch->arena, &batch->recs[i], pg_store_be64_get(k), i);
            crc = w == &s_no_memory ? PG_ENOMEM : 0;
            hits += w != NULL;
            if (!crc && !w && superseded && self->reform) {
                pg_outbatch_reset(keep);
                int f = self->reform(self->reform_ud, &batch->recs[i], keep, errstr, errstr_size);
                crc = f < 0 ? f : 0;
                hits += f > 0;
            }
        }
        if (crc)
            break;
        if (!hits)
            continue;
        if (nseq == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *grown = realloc(seqs, cap * sizeof *seqs);
            if (!grown) {
                crc = PG_ENOMEM;
                break;
            }
            seqs = grown;
        }
        seqs[nseq++] = pg_store_be64_get(k);
    }
    pg_store_cursor_close(&cur);
    if (!rc)
        rc = crc == PG_ENOTFOUND ? 0 : crc;
    /* Then each of them rewritten without those records (removed when none is left),
     * each dropped record a withhold event of withdrawals. */
    s_state st;
    if (!rc && nseq)
        rc = s_state_get(self, txn, &st, errstr, errstr_size);
    for (size_t s = 0; !rc && s < nseq; s++) {
        uint8_t key[8];
        pg_store_be64_put(key, seqs[s]);
        if ((rc = pg_store_get(txn, self->batch_db, key, sizeof key, &v, &vlen, errstr,
                               errstr_size)))
            break;
        size_t was = vlen;
        pg_outbatch_reset(batch);
        pg_outbatch_reset(keep);
        if ((rc = pg_spool_decode(v, vlen, batch, errstr, errstr_size)))
            break;
        for (size_t i = 0; !rc && i < batch->count; i++) {
            const pg_outrec *r = &batch->recs[i];
            const pg_outrec *w = s_why(&why, batch->arena, r, seqs[s], i);
            if (w == &s_no_memory) {
                rc = PG_ENOMEM;
                break;
            }
            /* A withdrawal decided under the policy before, in the form this one gives
             * it (its tombstone, next to it, made anew with it). */
            size_t had = keep->count;
            int f = !w && superseded && self->reform
                        ? self->reform(self->reform_ud, r, keep, errstr, errstr_size)
                        : 0;
            if (f < 0) {
                rc = f;
                break;
            }
            if (f > 0) {
                for (size_t j = had; j < keep->count; j++)
                    keep->recs[j].party = r->party;
                const pg_outrec *t = i + 1 < batch->count ? &batch->recs[i + 1] : NULL;
                if (t && !t->value && t->audit_action == PG_AUDIT_NONE && !strcmp(t->key, r->key) &&
                    t->topic && r->topic && !strcmp(t->topic, r->topic))
                    i++;
                (*reformed)++;
                continue;
            }
            if (!w) {
                pg_outrec *copy = pg_outbatch_add(keep);
                if (!copy)
                    rc = PG_ENOMEM;
                else
                    *copy = *r; /* its strings stay in batch's arena until it is written */
                continue;
            }
            /* superseded by a later disclosure: the policy change's party says why */
            const char *outcome = w->audit_action == PG_AUDIT_WITHDRAW ? w->outcome : "superseded";
            pg_audit_event ev = {.action = PG_AUDIT_WITHHOLD,
                                 .party = withdrawals->party,
                                 .entity_id = r->entity_id ? r->entity_id : r->key,
                                 .native_id = r->native_id,
                                 .origin = r->origin,
                                 .destination = w->destination ? w->destination : r->destination,
                                 .agreement = r->agreement,
                                 .policy_version = w->policy_version,
                                 .version = r->version,
                                 .outcome = outcome};
            rc = pg_outbatch_audit_add(withdrawals, &ev);
            (*dropped)++;
        }
        if (rc)
            break;
        st.records -=
            st.records >= batch->count - keep->count ? batch->count - keep->count : st.records;
        st.bytes -= st.bytes >= was ? was : st.bytes;
        if (!keep->count) {
            st.batches -= st.batches ? 1 : 0;
            rc = pg_store_del(txn, self->batch_db, key, sizeof key, NULL, 0, errstr, errstr_size);
            continue;
        }
        keep->party = keep->recs[0].party;
        pg_buf_reset(&self->value);
        rc = pg_spool_encode(keep, &self->value, errstr, errstr_size);
        rc = rc ? rc
                : pg_store_put(txn, self->batch_db, key, sizeof key, self->value.data,
                               self->value.len, errstr, errstr_size);
        st.bytes += self->value.len;
    }
    if (!rc && nseq) {
        if (!st.batches)
            st.records = st.bytes = 0;
        rc = s_state_put(self, txn, &st, errstr, errstr_size);
    }
    if (rc == PG_ENOMEM)
        pg_errf(rc, errstr, errstr_size, "spool: out of memory");
    free(seqs);
    free(lkeys);
    pg_outbatch_destroy(&later);
    pg_outbatch_destroy(&keep);
    pg_outbatch_destroy(&batch);
    pg_arena_destroy(&arena);
    return rc;
}

void pg_spool_rewrite_begin(pg_spool *self)
{
    pthread_mutex_lock(&self->lock);
    self->rewrites |= 1;
    pthread_mutex_unlock(&self->lock);
}

void pg_spool_rewrite_end(pg_spool *self)
{
    pthread_mutex_lock(&self->lock);
    if (self->rewrites & 1)
        self->rewrites++;
    self->gen++;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

uint64_t pg_spool_rewrites(pg_spool *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t r = self->rewrites;
    pthread_mutex_unlock(&self->lock);
    return r;
}

int pg_spool_stat(pg_spool *self, pg_store_txn *txn, pg_spool_stats *out, char *errstr,
                  size_t errstr_size)
{
    s_state st;
    memset(out, 0, sizeof *out);
    int rc = s_state_get(self, txn, &st, errstr, errstr_size);
    if (rc)
        return rc;
    out->batches = st.batches;
    out->records = st.records;
    out->bytes = st.bytes;
    out->next_seq = st.next_seq;
    if (!st.batches)
        return 0;
    pg_store_cursor *cur = pg_store_cursor_open(txn, self->batch_db, errstr, errstr_size);
    if (!cur)
        return PG_ESTORE;
    const void *k;
    size_t klen;
    rc = pg_store_cursor_first(cur, &k, &klen, NULL, NULL);
    if (!rc && klen == 8)
        out->first_seq = pg_store_be64_get(k);
    pg_store_cursor_close(&cur);
    return rc == PG_ENOTFOUND ? 0 : rc;
}

int pg_spool_stat_now(pg_spool *self, pg_spool_stats *out, char *errstr, size_t errstr_size)
{
    pg_store_txn *txn = pg_store_begin(self->store, 0, errstr, errstr_size);
    if (!txn)
        return PG_ESTORE;
    int rc = pg_spool_stat(self, txn, out, errstr, errstr_size);
    pg_store_abort(&txn);
    return rc;
}

/* ---------------------------------------------------------------- signalling */

void pg_spool_notify(pg_spool *self)
{
    pthread_mutex_lock(&self->lock);
    self->gen++;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

uint64_t pg_spool_generation(pg_spool *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t gen = self->gen;
    pthread_mutex_unlock(&self->lock);
    return gen;
}

int pg_spool_wait(pg_spool *self, uint64_t *gen, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&self->lock);
    int rc = 0;
    while (self->gen == *gen && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&self->cond, &self->lock, &ts);
    int notified = self->gen != *gen;
    *gen = self->gen;
    pthread_mutex_unlock(&self->lock);
    return notified;
}
