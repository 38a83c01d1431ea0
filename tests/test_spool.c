/* Unit tests for gateway/outbound/spool: the value format, append/next/remove in store
 * transactions, bounds, persistence across reopen, and the notify/wait signal. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outrec.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "spool.h"
#include "store.h"

static char s_err[PG_ERRSTR_SIZE];
static char s_dir[64];
static pg_store *s_store;
static pg_spool *s_spool;

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-test-spool-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    s_store = pg_store_new(s_dir, 64u << 20, s_err, sizeof s_err);
    ck_assert_msg(s_store != NULL, "%s", s_err);
    pg_store_set_durable(s_store, 0);
    s_spool = pg_spool_new(s_store, NULL, s_err, sizeof s_err);
    ck_assert_msg(s_spool != NULL, "%s", s_err);
}

static void s_teardown(void)
{
    pg_spool_destroy(&s_spool);
    ck_assert_ptr_null(s_spool);
    pg_store_destroy(&s_store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A batch of n records "k<tag>.<i>" on topic t, value "v<i>" (the last a tombstone
 * when tomb), two headers each, and an audit disclose on the first. */
static pg_outbatch *s_batch(const char *tag, size_t n, int tomb)
{
    pg_outbatch *b = pg_outbatch_new();
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++) {
        pg_outrec *r = pg_outbatch_add(b);
        ck_assert_ptr_nonnull(r);
        char key[64], val[64];
        snprintf(key, sizeof key, "k%s.%zu", tag, i);
        snprintf(val, sizeof val, "v%zu", i);
        r->topic = pg_arena_strdup(b->arena, "t");
        r->key = pg_arena_strdup(b->arena, key);
        if (!(tomb && i == n - 1)) {
            r->value = (const uint8_t *)pg_arena_strdup(b->arena, val);
            r->value_len = strlen(val);
        }
        ck_assert_int_eq(pg_outrec_header_add(b, r, "pg-type", "x"), 0);
        ck_assert_int_eq(pg_outrec_header_add(b, r, "pg-version", "7"), 0);
        if (i == 0) {
            r->audit_action = PG_AUDIT_DISCLOSE;
            r->destination = "partner-a";
            r->entity_id = r->key;
            r->version = 7;
            r->outcome = "shared";
        }
    }
    return b;
}

static int s_append(const pg_outbatch *b, uint64_t *seq)
{
    pg_store_txn *txn = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    ck_assert_ptr_nonnull(txn);
    int rc = pg_spool_append(s_spool, txn, b, seq, s_err, sizeof s_err);
    if (rc)
        pg_store_abort(&txn);
    else
        ck_assert_int_eq(pg_store_commit(&txn, s_err, sizeof s_err), 0);
    return rc;
}

static pg_spool_stats s_stats(void)
{
    pg_spool_stats st;
    ck_assert_int_eq(pg_spool_stat_now(s_spool, &st, s_err, sizeof s_err), 0);
    return st;
}

START_TEST(test_encode_decode)
{
    pg_outbatch *b = s_batch("a", 3, 1);
    b->recs[1].native_id = "N1";
    b->recs[1].origin = "ESX";
    b->recs[1].agreement = "";
    pg_buf buf = PG_BUF_INIT;
    ck_assert_int_eq(pg_spool_encode(b, &buf, s_err, sizeof s_err), 0);
    pg_outbatch *d = pg_outbatch_new();
    ck_assert_int_eq(pg_spool_decode(buf.data, buf.len, d, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(d->count, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(d->recs[i].topic, "t");
        ck_assert_str_eq(d->recs[i].key, b->recs[i].key);
        ck_assert_uint_eq(d->recs[i].value_len, b->recs[i].value_len);
        ck_assert_uint_eq(d->recs[i].header_count, 2);
        ck_assert_str_eq(d->recs[i].headers[1].name, "pg-version");
        ck_assert_str_eq(d->recs[i].headers[1].value, "7");
    }
    ck_assert_int_eq(memcmp(d->recs[0].value, "v0", 2), 0);
    ck_assert_ptr_null(d->recs[2].value); /* the tombstone stays a tombstone */
    ck_assert_int_eq(d->recs[0].audit_action, PG_AUDIT_DISCLOSE);
    ck_assert_str_eq(d->recs[0].destination, "partner-a");
    ck_assert_str_eq(d->recs[0].outcome, "shared");
    ck_assert_uint_eq(d->recs[0].version, 7);
    ck_assert_int_eq(d->recs[1].audit_action, PG_AUDIT_NONE);
    ck_assert_ptr_null(d->recs[1].destination);
    ck_assert_str_eq(d->recs[1].native_id, "N1");
    ck_assert_str_eq(d->recs[1].agreement, ""); /* empty is not NULL */

    /* every truncation of a valid value is refused, never read past its end */
    for (size_t n = 0; n < buf.len; n++) {
        pg_outbatch_reset(d);
        int rc = pg_spool_decode(buf.data, n, d, s_err, sizeof s_err);
        ck_assert_int_eq(rc, PG_EINTERNAL);
    }
    ck_assert_ptr_nonnull(strstr(s_err, "spool: damaged batch (at byte"));
    pg_outbatch_reset(d);
    buf.data[0] = 'X';
    ck_assert_int_eq(pg_spool_decode(buf.data, buf.len, d, s_err, sizeof s_err), PG_EINTERNAL);
    ck_assert_str_eq(s_err, "spool: not a batch (bad magic)");
    pg_buf_free(&buf);
    pg_outbatch_destroy(&d);
    pg_outbatch_destroy(&b);
}
END_TEST

/* Who caused a batch travels with it through the spool, so that the producer's
 * disclose and withdraw events can name it: the batch's party, and a record's own
 * where it differs (a policy change's withdrawals routed with an RMS message). */
START_TEST(test_party_kept)
{
    pg_outbatch *b = s_batch("p", 3, 0);
    b->party = "rms:athena-prod";
    b->recs[1].party = "policy:P-2";
    b->recs[2].party = "rms:athena-prod"; /* the batch's: not kept twice */
    uint64_t seq = 0;
    ck_assert_int_eq(s_append(b, &seq), 0);
    pg_outbatch *d = pg_outbatch_new();
    pg_store_txn *txn = pg_store_begin(s_store, 0, s_err, sizeof s_err);
    ck_assert_int_eq(pg_spool_next(s_spool, txn, 0, &seq, NULL, d, s_err, sizeof s_err), 0);
    pg_store_abort(&txn);
    ck_assert_uint_eq(d->count, 3);
    ck_assert_str_eq(d->recs[0].party, "rms:athena-prod");
    ck_assert_str_eq(d->recs[1].party, "policy:P-2");
    ck_assert_str_eq(d->recs[2].party, "rms:athena-prod");

    /* A batch without a party reads back without one. */
    pg_outbatch_reset(d);
    b->party = NULL;
    b->recs[1].party = b->recs[2].party = NULL;
    pg_buf buf = PG_BUF_INIT;
    ck_assert_int_eq(pg_spool_encode(b, &buf, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_spool_decode(buf.data, buf.len, d, s_err, sizeof s_err), 0);
    ck_assert_ptr_null(d->recs[0].party);
    pg_buf_free(&buf);
    pg_outbatch_destroy(&d);
    pg_outbatch_destroy(&b);
}
END_TEST

/* A batch spooled by the version before parties were recorded (format PGB1) is still
 * published after an upgrade: read, with no party. */
START_TEST(test_format_1_still_read)
{
    static const char v1[] = "PGB1\x01\x00\x00\x00"                /* one record */
                             "\x01\x00\x00\x00t\x02\x00\x00\x00k1" /* topic, key */
                             "\x01\x02\x00\x00\x00v1\x00"          /* a value, no headers */
                             "\x02\x01\x00\x00\x00"
                             "d"                                  /* disclose to "d" */
                             "\xff\xff\xff\xff\xff\xff\xff\xff"   /* agreement, policy_version */
                             "\x02\x00\x00\x00k1\xff\xff\xff\xff" /* entity_id, native_id */
                             "\xff\xff\xff\xff\x07\x00\x00\x00\x00\x00\x00\x00" /* origin, v7 */
                             "\x06\x00\x00\x00shared";                          /* outcome */
    ck_assert_int_eq(PG_AUDIT_DISCLOSE, 2);
    pg_outbatch *d = pg_outbatch_new();
    ck_assert_int_eq(pg_spool_decode((const uint8_t *)v1, sizeof v1 - 1, d, s_err, sizeof s_err),
                     0);
    ck_assert_uint_eq(d->count, 1);
    ck_assert_str_eq(d->recs[0].key, "k1");
    ck_assert_int_eq(d->recs[0].audit_action, PG_AUDIT_DISCLOSE);
    ck_assert_str_eq(d->recs[0].outcome, "shared");
    ck_assert_uint_eq(d->recs[0].version, 7);
    ck_assert_ptr_null(d->recs[0].party);
    pg_outbatch_destroy(&d);
}
END_TEST

START_TEST(test_encode_invalid)
{
    pg_outbatch *b = s_batch("a", 2, 0);
    b->recs[1].key = NULL;
    pg_buf buf = PG_BUF_INIT;
    ck_assert_int_eq(pg_spool_encode(b, &buf, s_err, sizeof s_err), PG_EINVALID);
    ck_assert_str_eq(s_err, "spool: records[1]: a record needs a topic and a key");
    b->recs[1].key = "k";
    b->recs[0].topic = "";
    ck_assert_int_eq(s_append(b, NULL), PG_EINVALID);
    ck_assert_str_eq(s_err, "spool: records[0]: a record needs a topic and a key");
    ck_assert_uint_eq(s_stats().batches, 0);
    pg_buf_free(&buf);
    pg_outbatch_destroy(&b);
}
END_TEST

START_TEST(test_append_next_remove)
{
    pg_outbatch *b1 = s_batch("a", 2, 0), *b2 = s_batch("b", 3, 1), *b3 = s_batch("c", 1, 0);
    uint64_t s1, s2, s3;
    ck_assert_int_eq(s_append(b1, &s1), 0);
    ck_assert_int_eq(s_append(b2, &s2), 0);
    ck_assert_int_eq(s_append(b3, &s3), 0);
    ck_assert_uint_eq(s1, 1);
    ck_assert_uint_eq(s2, 2);
    ck_assert_uint_eq(s3, 3);
    pg_spool_stats st = s_stats();
    ck_assert_uint_eq(st.batches, 3);
    ck_assert_uint_eq(st.records, 6);
    ck_assert_uint_eq(st.first_seq, 1);
    ck_assert_uint_eq(st.next_seq, 4);
    ck_assert_uint_gt(st.bytes, 0);

    /* an empty batch is not stored */
    pg_outbatch *empty = pg_outbatch_new();
    uint64_t s0 = 99;
    ck_assert_int_eq(s_append(empty, &s0), 0);
    ck_assert_uint_eq(s0, 0);
    ck_assert_uint_eq(s_stats().batches, 3);

    /* read in order, each copied out of the transaction */
    pg_outbatch *out = pg_outbatch_new();
    pg_store_txn *rt = pg_store_begin(s_store, 0, s_err, sizeof s_err);
    uint64_t seq = 0;
    size_t bytes = 0, total = 0;
    ck_assert_int_eq(pg_spool_next(s_spool, rt, 0, &seq, &bytes, out, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(seq, 1);
    ck_assert_uint_eq(out->count, 2);
    total += bytes;
    ck_assert_int_eq(pg_spool_next(s_spool, rt, seq, &seq, &bytes, out, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(seq, 2);
    ck_assert_uint_eq(out->count, 5); /* appended: a window of two batches */
    ck_assert_str_eq(out->recs[1].key, "ka.1");
    ck_assert_str_eq(out->recs[4].key, "kb.2");
    pg_outbatch_reset(out);
    total += bytes;
    ck_assert_int_eq(pg_spool_next(s_spool, rt, 2, &seq, &bytes, out, s_err, sizeof s_err), 0);
    total += bytes;
    ck_assert_uint_eq(total, st.bytes);
    ck_assert_int_eq(pg_spool_next(s_spool, rt, 3, &seq, NULL, out, s_err, sizeof s_err),
                     PG_ENOTFOUND);
    pg_store_abort(&rt);
    ck_assert_uint_eq(out->count, 1); /* batch 3, and nothing added after it */

    /* remove the first two: counters follow */
    pg_store_txn *wt = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    size_t removed = 0;
    ck_assert_int_eq(pg_spool_remove(s_spool, wt, 1, 2, &removed, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&wt, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(removed, 2);
    st = s_stats();
    ck_assert_uint_eq(st.batches, 1);
    ck_assert_uint_eq(st.records, 1);
    ck_assert_uint_eq(st.first_seq, 3);
    /* removing what is gone removes nothing */
    wt = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    ck_assert_int_eq(pg_spool_remove(s_spool, wt, 1, 2, &removed, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(removed, 0);
    ck_assert_int_eq(pg_spool_remove(s_spool, wt, 3, 3, &removed, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&wt, s_err, sizeof s_err), 0);
    st = s_stats();
    ck_assert_uint_eq(st.batches, 0);
    ck_assert_uint_eq(st.records, 0);
    ck_assert_uint_eq(st.bytes, 0);
    ck_assert_uint_eq(st.first_seq, 0);
    /* sequence numbers never go back, even once the spool is empty */
    ck_assert_int_eq(s_append(b1, &s1), 0);
    ck_assert_uint_eq(s1, 4);

    pg_outbatch_destroy(&out);
    pg_outbatch_destroy(&empty);
    pg_outbatch_destroy(&b1);
    pg_outbatch_destroy(&b2);
    pg_outbatch_destroy(&b3);
}
END_TEST

START_TEST(test_aborted_append_leaves_nothing)
{
    pg_outbatch *b = s_batch("a", 2, 0);
    pg_store_txn *txn = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    uint64_t seq;
    ck_assert_int_eq(pg_spool_append(s_spool, txn, b, &seq, s_err, sizeof s_err), 0);
    pg_store_abort(&txn);
    pg_spool_stats st = s_stats();
    ck_assert_uint_eq(st.batches, 0);
    ck_assert_uint_eq(st.next_seq, 1);
    ck_assert_int_eq(s_append(b, &seq), 0);
    ck_assert_uint_eq(seq, 1);
    pg_outbatch_destroy(&b);
}
END_TEST

START_TEST(test_bounds)
{
    pg_outbatch *b = s_batch("a", 2, 0);
    pg_buf buf = PG_BUF_INIT;
    ck_assert_int_eq(pg_spool_encode(b, &buf, s_err, sizeof s_err), 0);

    /* records: 5 allowed, batches of 2 -> the third is refused */
    pg_spool_limits lim = {.max_records = 5};
    pg_spool_set_limits(s_spool, &lim);
    ck_assert_int_eq(s_append(b, NULL), 0);
    ck_assert_int_eq(s_append(b, NULL), 0);
    ck_assert_int_eq(s_append(b, NULL), PG_ERETRY);
    ck_assert_msg(strstr(s_err, "spool full: 4 records, ") == s_err, "%s", s_err);
    ck_assert_ptr_nonnull(strstr(s_err, "(bounds 5 records, 0 bytes); send again later"));
    ck_assert_uint_eq(s_stats().records, 4);

    /* bytes: room for exactly two batches */
    pg_store_txn *wt = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    ck_assert_int_eq(pg_spool_remove(s_spool, wt, 0, UINT64_MAX, NULL, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&wt, s_err, sizeof s_err), 0);
    lim = (pg_spool_limits){.max_bytes = 2 * buf.len};
    pg_spool_set_limits(s_spool, &lim);
    ck_assert_int_eq(s_append(b, NULL), 0);
    ck_assert_int_eq(s_append(b, NULL), 0);
    ck_assert_int_eq(s_append(b, NULL), PG_ERETRY);
    ck_assert_uint_eq(s_stats().bytes, 2 * buf.len);

    /* an empty spool takes a batch larger than the bound */
    wt = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    ck_assert_int_eq(pg_spool_remove(s_spool, wt, 0, UINT64_MAX, NULL, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&wt, s_err, sizeof s_err), 0);
    lim = (pg_spool_limits){.max_bytes = 10, .max_records = 1};
    pg_spool_set_limits(s_spool, &lim);
    ck_assert_int_eq(s_append(b, NULL), 0);
    ck_assert_int_eq(s_append(b, NULL), PG_ERETRY);
    pg_buf_free(&buf);
    pg_outbatch_destroy(&b);
}
END_TEST

START_TEST(test_survives_reopen)
{
    pg_outbatch *b = s_batch("a", 3, 1);
    ck_assert_int_eq(s_append(b, NULL), 0);
    ck_assert_int_eq(s_append(b, NULL), 0);
    pg_spool_destroy(&s_spool);
    pg_store_destroy(&s_store);
    s_store = pg_store_new(s_dir, 0, s_err, sizeof s_err);
    ck_assert_ptr_nonnull(s_store);
    s_spool = pg_spool_new(s_store, NULL, s_err, sizeof s_err);
    ck_assert_ptr_nonnull(s_spool);
    pg_spool_stats st = s_stats();
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_uint_eq(st.records, 6);
    ck_assert_uint_eq(st.next_seq, 3);
    pg_outbatch *out = pg_outbatch_new();
    pg_store_txn *rt = pg_store_begin(s_store, 0, s_err, sizeof s_err);
    uint64_t seq;
    ck_assert_int_eq(pg_spool_next(s_spool, rt, 1, &seq, NULL, out, s_err, sizeof s_err), 0);
    pg_store_abort(&rt);
    ck_assert_uint_eq(seq, 2);
    ck_assert_ptr_null(out->recs[2].value);
    pg_outbatch_destroy(&out);
    pg_outbatch_destroy(&b);
}
END_TEST

START_TEST(test_damaged_value_reported)
{
    pg_store_txn *wt = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    pg_store_db db;
    ck_assert_int_eq(pg_store_db_open(wt, "spool.batch", 0, &db, s_err, sizeof s_err), 0);
    uint8_t key[8] = {0, 0, 0, 0, 0, 0, 0, 5};
    ck_assert_int_eq(pg_store_put(wt, db, key, 8, "PGB1\x01\0\0\0\x05", 9, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&wt, s_err, sizeof s_err), 0);
    pg_outbatch *out = pg_outbatch_new();
    pg_store_txn *rt = pg_store_begin(s_store, 0, s_err, sizeof s_err);
    uint64_t seq;
    ck_assert_int_eq(pg_spool_next(s_spool, rt, 0, &seq, NULL, out, s_err, sizeof s_err),
                     PG_EINTERNAL);
    ck_assert_ptr_nonnull(strstr(s_err, "damaged batch"));
    pg_store_abort(&rt);
    pg_outbatch_destroy(&out);
}
END_TEST

/* A disclose record of key for dest (audit fields as the router sets them). */
static void s_disclose(pg_outbatch *b, const char *key, const char *dest, const char *party)
{
    pg_outrec *r = pg_outbatch_add(b);
    ck_assert_ptr_nonnull(r);
    r->topic = pg_arena_sprintf(b->arena, "t.%s", dest);
    r->key = pg_arena_strdup(b->arena, key);
    r->value = (const uint8_t *)"v";
    r->value_len = 1;
    r->audit_action = PG_AUDIT_DISCLOSE;
    r->destination = dest;
    r->entity_id = r->key;
    r->native_id = "N";
    r->origin = "ESX";
    r->version = 3;
    r->outcome = "shared";
    r->party = party;
}

/* A policy change's withdrawals drop the spooled disclosures they withdraw, and
 * nothing else: other destinations, other keys, withdrawals already spooled; each
 * dropped record is a withhold event; a batch left empty is removed; the counters
 * follow. A destination renamed by the change (its topic kept) withdraws what was
 * spooled under its old name (found by attack). */
START_TEST(test_withhold)
{
    pg_outbatch *a = pg_outbatch_new(), *b = pg_outbatch_new(), *c = pg_outbatch_new();
    a->party = "rms:feed";
    s_disclose(a, "e1", "partner-a", NULL);
    s_disclose(a, "e1", "national", NULL);
    s_disclose(a, "l1", "partner-a", NULL);
    b->party = "rms:feed";
    s_disclose(b, "e2", "partner-a", NULL);
    pg_outrec *del = pg_outbatch_add(b); /* a withdrawal spooled before: it stays */
    del->topic = "t.partner-a";
    del->key = "e3";
    del->audit_action = PG_AUDIT_WITHDRAW;
    del->destination = "partner-a";
    c->party = "rms:feed";
    s_disclose(c, "e4", "partner-a", "policy:P1");
    s_disclose(c, "e5", "mer", NULL);
    uint64_t sa, sb, sc;
    ck_assert_int_eq(s_append(a, &sa), 0);
    ck_assert_int_eq(s_append(b, &sb), 0);
    ck_assert_int_eq(s_append(c, &sc), 0);
    pg_spool_stats before = s_stats();
    ck_assert_uint_eq(before.records, 7);

    pg_outbatch *w = pg_outbatch_new();
    w->party = "policy:P2";
    const char *gone[][2] = {{"e1", "partner-a"}, {"l1", "partner-a"}, {"e3", "partner-a"},
                             {"e4", "partner-a"}, {"e2", "national"},  {"e5", "merseyside"}};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) {
        pg_outrec *r = pg_outbatch_add(w);
        r->topic = pg_arena_sprintf(w->arena, "t.%s", gone[i][1]);
        if (!strcmp(gone[i][1], "merseyside")) /* mer renamed, its topic kept */
            r->topic = "t.mer";
        r->key = gone[i][0];
        r->audit_action = PG_AUDIT_WITHDRAW;
        r->destination = gone[i][1];
        r->policy_version = "P2";
        r->outcome = "classification";
    }
    uint64_t r0 = pg_spool_rewrites(s_spool);
    ck_assert_uint_eq(r0 & 1, 0);
    pg_spool_rewrite_begin(s_spool);
    ck_assert_uint_eq(pg_spool_rewrites(s_spool) & 1, 1);
    pg_store_txn *txn = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    size_t dropped = 0, reformed = 0;
    ck_assert_int_eq(
        pg_spool_withhold(s_spool, txn, w, 0, &dropped, &reformed, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&txn, s_err, sizeof s_err), 0);
    pg_spool_rewrite_end(s_spool);
    ck_assert_uint_gt(pg_spool_rewrites(s_spool), r0);
    ck_assert_uint_eq(pg_spool_rewrites(s_spool) & 1, 0);

    ck_assert_uint_eq(dropped, 4); /* e1 and l1 for partner-a, e4, e5 */
    ck_assert_uint_eq(w->audit_count, 4);
    for (size_t i = 0; i < w->audit_count; i++) {
        ck_assert_int_eq(w->audit[i].action, PG_AUDIT_WITHHOLD);
        ck_assert_str_eq(w->audit[i].party, "policy:P2");
        ck_assert_str_eq(w->audit[i].destination, i < 3 ? "partner-a" : "merseyside");
        ck_assert_str_eq(w->audit[i].policy_version, "P2");
        ck_assert_str_eq(w->audit[i].outcome, "classification");
        ck_assert_str_eq(w->audit[i].origin, "ESX");
    }
    ck_assert_str_eq(w->audit[0].entity_id, "e1");
    ck_assert_str_eq(w->audit[1].entity_id, "l1");
    ck_assert_str_eq(w->audit[2].entity_id, "e4");
    ck_assert_str_eq(w->audit[3].entity_id, "e5");

    pg_spool_stats after = s_stats();
    ck_assert_uint_eq(after.batches, 2); /* c is gone */
    ck_assert_uint_eq(after.records, 3);
    pg_outbatch *out = pg_outbatch_new();
    pg_store_txn *rt = pg_store_begin(s_store, 0, s_err, sizeof s_err);
    uint64_t seq, next;
    size_t bytes;
    ck_assert_int_eq(pg_spool_next(s_spool, rt, 0, &seq, &bytes, out, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(seq, sa);
    ck_assert_uint_eq(out->count, 1);
    ck_assert_str_eq(out->recs[0].key, "e1");
    ck_assert_str_eq(out->recs[0].destination, "national");
    ck_assert_str_eq(out->recs[0].party, "rms:feed");
    size_t total = bytes;
    ck_assert_int_eq(pg_spool_next(s_spool, rt, seq, &next, &bytes, out, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(next, sb); /* untouched: e2 goes on to partner-a, e3's withdrawal stays */
    ck_assert_uint_eq(out->count, 3);
    ck_assert_str_eq(out->recs[1].key, "e2");
    ck_assert_str_eq(out->recs[2].key, "e3");
    total += bytes;
    ck_assert_int_eq(pg_spool_next(s_spool, rt, next, &seq, NULL, out, s_err, sizeof s_err),
                     PG_ENOTFOUND);
    pg_store_abort(&rt);
    ck_assert_uint_eq(after.bytes, total);

    /* Nothing to withdraw: nothing read or written. */
    pg_outbatch_reset(w);
    txn = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    ck_assert_int_eq(
        pg_spool_withhold(s_spool, txn, w, 0, &dropped, &reformed, s_err, sizeof s_err), 0);
    pg_store_abort(&txn);
    ck_assert_uint_eq(dropped, 0);
    pg_outbatch_destroy(&out);
    pg_outbatch_destroy(&w);
    pg_outbatch_destroy(&a);
    pg_outbatch_destroy(&b);
    pg_outbatch_destroy(&c);
}
END_TEST

/* A policy change also drops each spooled disclosure that a withdrawal or disclosure
 * spooled after it supersedes (same topic and key): decided under the policy before,
 * consumers keep the later one, and the new policy may forbid it (found by attack: a
 * person went to a destination that no longer takes persons, then its DELETE; an
 * OFFICIAL-SENSITIVE revision, then an OFFICIAL one). Only when the policy changed. */
START_TEST(test_withhold_superseded)
{
    pg_outbatch *a = pg_outbatch_new(), *b = pg_outbatch_new();
    a->party = b->party = "rms:feed";
    s_disclose(a, "e1", "mer", NULL);
    s_disclose(a, "e2", "mer", NULL);
    pg_outrec *del = pg_outbatch_add(b);
    del->topic = "t.mer";
    del->key = "e1";
    del->audit_action = PG_AUDIT_WITHDRAW;
    del->destination = "mer";
    del->policy_version = "P1";
    del->outcome = "classification";
    s_disclose(b, "e1", "national", NULL); /* another topic: stays */
    s_disclose(b, "e2", "mer", NULL);      /* a later e2 for mer: the first one goes */
    uint64_t sa, sb;
    ck_assert_int_eq(s_append(a, &sa), 0);
    ck_assert_int_eq(s_append(b, &sb), 0);
    pg_outbatch *w = pg_outbatch_new();
    w->party = "policy:P2";
    size_t dropped = 9, reformed = 9;
    pg_store_txn *txn = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    ck_assert_int_eq(
        pg_spool_withhold(s_spool, txn, w, 0, &dropped, &reformed, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(dropped, 0);
    ck_assert_int_eq(
        pg_spool_withhold(s_spool, txn, w, 1, &dropped, &reformed, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&txn, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(dropped, 2); /* e1 for mer (withdrawn later), e2 (sent again later) */
    ck_assert_uint_eq(w->audit_count, 2);
    ck_assert_str_eq(w->audit[0].entity_id, "e1");
    ck_assert_str_eq(w->audit[0].destination, "mer");
    ck_assert_str_eq(w->audit[0].outcome, "classification");
    ck_assert_str_eq(w->audit[0].party, "policy:P2");
    ck_assert_str_eq(w->audit[1].entity_id, "e2");
    ck_assert_str_eq(w->audit[1].outcome, "superseded");
    pg_outbatch *out = pg_outbatch_new();
    pg_store_txn *rt = pg_store_begin(s_store, 0, s_err, sizeof s_err);
    uint64_t seq;
    ck_assert_int_eq(pg_spool_next(s_spool, rt, 0, &seq, NULL, out, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(seq, sb);       /* a is gone */
    ck_assert_uint_eq(out->count, 3); /* the withdrawal, e1 national, e2 mer */
    ck_assert_int_eq(out->recs[0].audit_action, PG_AUDIT_WITHDRAW);
    ck_assert_str_eq(out->recs[2].key, "e2");
    pg_store_abort(&rt);
    pg_outbatch_destroy(&out);
    pg_outbatch_destroy(&w);
    pg_outbatch_destroy(&a);
    pg_outbatch_destroy(&b);
}
END_TEST

static void *s_notifier(void *arg)
{
    usleep(50000);
    pg_spool_notify(arg);
    return NULL;
}

START_TEST(test_notify_wait)
{
    uint64_t gen = 0;
    ck_assert_int_eq(pg_spool_wait(s_spool, &gen, 20), 0);
    pthread_t th;
    pthread_create(&th, NULL, s_notifier, s_spool);
    ck_assert_int_eq(pg_spool_wait(s_spool, &gen, 5000), 1);
    ck_assert_uint_eq(gen, 1);
    pthread_join(th, NULL);
    /* a notify before the wait is not missed */
    pg_spool_notify(s_spool);
    ck_assert_int_eq(pg_spool_wait(s_spool, &gen, 0), 1);
    ck_assert_int_eq(pg_spool_wait(s_spool, &gen, 0), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("spool");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_encode_decode);
    tcase_add_test(tc, test_party_kept);
    tcase_add_test(tc, test_format_1_still_read);
    tcase_add_test(tc, test_encode_invalid);
    tcase_add_test(tc, test_append_next_remove);
    tcase_add_test(tc, test_aborted_append_leaves_nothing);
    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_survives_reopen);
    tcase_add_test(tc, test_damaged_value_reported);
    tcase_add_test(tc, test_withhold);
    tcase_add_test(tc, test_withhold_superseded);
    tcase_add_test(tc, test_notify_wait);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
