/* Unit tests for gateway/outbound/publisher against librdkafka's mock cluster, read back with a
 * librdkafka consumer: the spool's records as given (keys, headers, values,
 * tombstones, partitions), one transaction per window, broker outages, aborted
 * transactions, fatal errors, audit events once the broker stored the window (before the
 * commit), the thread and drain. */
#include <check.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "disk_fault.h"
#include "kafka.h"
#include "log.h"
#include "outrec.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/pole.h"
#include "polegate/wire.h"
#include "publisher.h"
#include "sentmark.h"
#include "spool.h"
#include "store.h"

#define TOPIC "polegate.esx.pole.v1"
#define PARTITIONS 4
#define RD_KAFKAP_PRODUCE 0 /* the Produce API key (not in librdkafka's public headers) */

static rd_kafka_t *s_mock_rk;
static rd_kafka_mock_cluster_t *s_mcluster;
static char s_brokers[256];
static char s_err[PG_ERRSTR_SIZE];
static char s_topic[64];
static int s_topic_seq;
static char s_dir[64];
static pg_store *s_store;
static pg_spool *s_spool;

/* A fresh mock cluster of 3 brokers and a topic of PARTITIONS partitions per test
 * (tests run in forked processes, so nothing carries over), and an empty spool. */
static void s_setup(void)
{
    char why[256];
    pg_log_set_level(PG_LOG_ERROR);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    s_mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    ck_assert_ptr_nonnull(s_mock_rk);
    s_mcluster = rd_kafka_mock_cluster_new(s_mock_rk, 3);
    ck_assert_ptr_nonnull(s_mcluster);
    snprintf(s_brokers, sizeof s_brokers, "%s", rd_kafka_mock_cluster_bootstraps(s_mcluster));
    snprintf(s_topic, sizeof s_topic, "%s.%d", TOPIC, ++s_topic_seq);
    ck_assert_int_eq(rd_kafka_mock_topic_create(s_mcluster, s_topic, PARTITIONS, 3), 0);
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-test-producer-XXXXXX");
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
    pg_store_destroy(&s_store);
    rd_kafka_mock_cluster_destroy(s_mcluster);
    rd_kafka_destroy(s_mock_rk);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static pg_publisher *s_producer_w(const pg_config_kv *props, size_t n, size_t window,
                                  pg_audit *audit)
{
    pg_publisher_opts opts = {.brokers = s_brokers,
                              .transactional_id = "polegated.test",
                              .properties = props,
                              .property_count = n,
                              .store = s_store,
                              .spool = s_spool,
                              .audit = audit,
                              .window_batches = window,
                              .transaction_timeout_ms = 10000,
                              .call_timeout_ms = 500};
    pg_publisher *p = pg_publisher_new(&opts, s_err, sizeof s_err);
    ck_assert_msg(p != NULL, "%s", s_err);
    return p;
}

static pg_publisher *s_producer(const pg_config_kv *props, size_t n)
{
    return s_producer_w(props, n, 0, NULL);
}

/* ---------------------------------------------------------------- canonical updates */

static pg_entity_update *s_person(pg_arena *a, const char *native_id, uint64_t version, int op)
{
    pg_entity_update *u = PG_PB_NEW(a, pg_entity_update, polegate__pole__v1__entity_update);
    char id[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_identity_entity("ESX", "ATHENA", "PERSON", native_id, id), 0);
    u->id = pg_arena_strdup(a, id);
    u->operation = op;
    u->version = version;
    u->kind = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON;
    u->origin = PG_PB_NEW(a, pg_origin, polegate__pole__v1__origin);
    u->origin->force = "ESX";
    u->origin->system = "ATHENA";
    u->origin->native_type = "PERSON";
    u->origin->native_id = pg_arena_strdup(a, native_id);
    u->marking = PG_PB_NEW(a, pg_marking, polegate__pole__v1__marking);
    u->marking->classification =
        POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL_SENSITIVE;
    u->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_P;
    if (op == POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT) {
        Polegate__Pole__V1__Person *p =
            PG_PB_NEW(a, Polegate__Pole__V1__Person, polegate__pole__v1__person);
        p->name = PG_PB_NEW(a, Polegate__Pole__V1__Name, polegate__pole__v1__name);
        p->name->surname = "O'Brien";
        u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
        u->person = p;
    }
    return u;
}

static pg_link_update *s_link(pg_arena *a, const pg_entity_update *from, const char *to_id,
                              uint64_t version, int op)
{
    pg_link_update *l = PG_PB_NEW(a, pg_link_update, polegate__pole__v1__link_update);
    l->from = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
    l->to = PG_PB_NEW(a, pg_entity_ref, polegate__pole__v1__entity_ref);
    l->from->id = from->id;
    l->to->id = (char *)to_id;
    l->role = POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS;
    char id[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_identity_link(from->id, (int)l->role, to_id, id), 0);
    l->id = pg_arena_strdup(a, id);
    l->operation = op;
    l->version = version;
    l->origin = from->origin;
    l->marking = PG_PB_NEW(a, pg_marking, polegate__pole__v1__marking);
    l->marking->classification = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_TOP_SECRET;
    l->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    return l;
}

/* ---------------------------------------------------------------- reading back */

typedef struct s_rec {
    char key[64];
    int partition;
    int64_t offset;
    int null_value;
    uint8_t value[4096];
    size_t value_len;
    char hdr[6][2][64]; /* name, value */
    size_t nhdr;
} s_rec;

static const char *s_hdr(const s_rec *r, const char *name)
{
    for (size_t i = 0; i < r->nhdr; i++)
        if (!strcmp(r->hdr[i][0], name))
            return r->hdr[i][1];
    return NULL;
}

/* Read the records of s_topic from the beginning until every partition is at its
 * end (the producer flushed before), up to max records or timeout_ms. A simple
 * consumer (no group, no coordinator): librdkafka 2.0.2 can abort in
 * rd_kafka_broker_destroy_final while a group consumer is torn down (its issue #3608),
 * which is the reader's teardown, not the publisher under test. */
static size_t s_consume(s_rec *recs, size_t max, int timeout_ms)
{
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", s_brokers, why, sizeof why);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof why);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    ck_assert_ptr_nonnull(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, s_topic, NULL);
    ck_assert_ptr_nonnull(rkt);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    for (int p = 0; p < PARTITIONS; p++)
        ck_assert_int_eq(rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, q), 0);

    size_t n = 0;
    unsigned at_end = 0;
    for (int waited = 0; n < max && waited < timeout_ms && at_end != (1u << PARTITIONS) - 1;
         waited += 100) {
        rd_kafka_message_t *m = rd_kafka_consume_queue(q, 100);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            at_end |= 1u << m->partition;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        at_end &= ~(1u << m->partition);
        s_rec *r = &recs[n++];
        memset(r, 0, sizeof *r);
        snprintf(r->key, sizeof r->key, "%.*s", (int)m->key_len, (const char *)m->key);
        r->partition = m->partition;
        r->offset = m->offset;
        r->null_value = m->payload == NULL;
        ck_assert_uint_le(m->len, sizeof r->value);
        if (m->payload)
            memcpy(r->value, m->payload, m->len);
        r->value_len = m->len;
        rd_kafka_headers_t *hdrs;
        if (!rd_kafka_message_headers(m, &hdrs)) {
            const char *name;
            const void *val;
            size_t len;
            for (size_t i = 0; i < 6 && !rd_kafka_header_get_all(hdrs, i, &name, &val, &len); i++) {
                snprintf(r->hdr[i][0], sizeof r->hdr[i][0], "%s", name);
                snprintf(r->hdr[i][1], sizeof r->hdr[i][1], "%.*s", (int)len, (const char *)val);
                r->nhdr++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_consume_stop(rkt, p);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return n;
}

/* ---------------------------------------------------------------- the spool */

/* Add the record of one canonical update (value NULL: its tombstone) with the six
 * headers of docs/topics.md, as the router makes them. */
static void s_add(pg_outbatch *b, const char *key, const ProtobufCMessage *msg, const char *type,
                  const char *op, const char *version, const char *marking)
{
    pg_outrec *r = pg_outbatch_add(b);
    ck_assert_ptr_nonnull(r);
    r->topic = s_topic;
    r->key = pg_arena_strdup(b->arena, key);
    if (msg) {
        size_t len = protobuf_c_message_get_packed_size(msg);
        uint8_t *v = pg_arena_alloc(b->arena, len + 1);
        protobuf_c_message_pack(msg, v);
        r->value = v;
        r->value_len = len;
    }
    const char *h[][2] = {{PG_HDR_TYPE, type},          {PG_HDR_SCHEMA, PG_SCHEMA_VERSION},
                          {PG_HDR_ORIGIN_FORCE, "ESX"}, {PG_HDR_MARKING, marking},
                          {PG_HDR_OPERATION, op},       {PG_HDR_VERSION, version}};
    for (size_t i = 0; i < 6; i++)
        ck_assert_int_eq(pg_outrec_header_add(b, r, h[i][0], h[i][1]), 0);
}

static void s_spool_batch(pg_outbatch **b)
{
    pg_store_txn *txn = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    ck_assert_int_eq(pg_spool_append(s_spool, txn, *b, NULL, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&txn, s_err, sizeof s_err), 0);
    pg_outbatch_destroy(b);
}

static void s_spool_entity(pg_entity_update *u, const char *version)
{
    pg_outbatch *b = pg_outbatch_new();
    s_add(b, u->id, &u->base, PG_TYPE_ENTITY, "UPSERT", version, "OFFICIAL-SENSITIVE;P");
    s_spool_batch(&b);
}

/* Spool a batch of hand-made records (n, on s_topic, keys "<tag>.<i>"), the first
 * audited as a disclosure to "partner-a". */
static void s_spool_raw(const char *tag, size_t n)
{
    pg_outbatch *b = pg_outbatch_new();
    for (size_t i = 0; i < n; i++) {
        pg_outrec *r = pg_outbatch_add(b);
        char key[64];
        snprintf(key, sizeof key, "%s.%zu", tag, i);
        r->topic = s_topic;
        r->key = pg_arena_strdup(b->arena, key);
        r->value = (const uint8_t *)"v";
        r->value_len = 1;
        pg_outrec_header_add(b, r, "pg-version", "1");
        if (!i) {
            r->audit_action = PG_AUDIT_DISCLOSE;
            r->destination = "partner-a";
            r->agreement = "isa-1";
            r->policy_version = "p1";
            r->entity_id = "00000000-0000-5000-8000-00000000000a";
            r->native_id = "P1";
            r->origin = "ESX";
            r->version = 3;
            r->outcome = "shared";
        }
    }
    pg_store_txn *txn = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    ck_assert_int_eq(pg_spool_append(s_spool, txn, b, NULL, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&txn, s_err, sizeof s_err), 0);
    pg_outbatch_destroy(&b);
}

static pg_spool_stats s_spooled(void)
{
    pg_spool_stats st;
    ck_assert_int_eq(pg_spool_stat_now(s_spool, &st, s_err, sizeof s_err), 0);
    return st;
}

/* Rounds while the answer is retry (the broker not ready yet), at most 20: the last
 * answer. */
static int s_step_until_ready(pg_publisher *p)
{
    int rc = PG_ERETRY;
    for (int i = 0; i < 20 && rc == PG_ERETRY; i++)
        rc = pg_publisher_step(p, s_err, sizeof s_err);
    return rc;
}

/* Run rounds until the spool is empty (at most rounds of them); returns the batches
 * committed. A round with nothing to do while committed batches wait for their removal
 * (done when the spool is idle) waits 20 ms. */
static int s_publish_all(pg_publisher *p, int rounds)
{
    int total = 0;
    for (int i = 0; i < rounds && s_spooled().batches; i++) {
        int rc = pg_publisher_step(p, s_err, sizeof s_err);
        if (rc > 0)
            total += rc;
        else if (rc == 0)
            usleep(20000);
    }
    ck_assert_msg(s_spooled().batches == 0, "spool not empty: %s", s_err);
    return total;
}

/* A producer cannot be made on this store: the reason says why. */
static void s_expect_new_refused(const char *why)
{
    pg_publisher_opts opts = {.brokers = s_brokers,
                              .transactional_id = "polegated.test",
                              .store = s_store,
                              .spool = s_spool};
    ck_assert_ptr_null(pg_publisher_new(&opts, s_err, sizeof s_err));
    ck_assert_msg(strstr(s_err, why), "%s", s_err);
}

/* A new producer (a restart) publishes the whole spool: its counters. */
static pg_publisher_stats s_publish_new(void)
{
    pg_publisher *p = s_producer(NULL, 0);
    s_publish_all(p, 40);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    pg_publisher_destroy(&p);
    return st;
}

/* Remove spool batches first..last as a policy rewrite withholding them does. */
static void s_spool_drop(uint64_t first, uint64_t last)
{
    size_t removed = 0;
    pg_store_txn *txn = pg_store_begin(s_store, 1, s_err, sizeof s_err);
    ck_assert_int_eq(pg_spool_remove(s_spool, txn, first, last, &removed, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_store_commit(&txn, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(removed, last - first + 1);
}

/* Kafka's Java murmur2 (org.apache.kafka.common.utils.Utils.murmur2). */
static int32_t s_murmur2(const uint8_t *data, size_t len)
{
    const uint32_t m = 0x5bd1e995, seed = 0x9747b28c;
    const int r = 24;
    uint32_t h = seed ^ (uint32_t)len;
    size_t len4 = len / 4;
    for (size_t i = 0; i < len4; i++) {
        size_t i4 = i * 4;
        uint32_t k = (uint32_t)data[i4] | (uint32_t)data[i4 + 1] << 8 |
                     (uint32_t)data[i4 + 2] << 16 | (uint32_t)data[i4 + 3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len % 4) {
    case 3:
        h ^= (uint32_t)data[(len & ~3u) + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)data[(len & ~3u) + 1] << 8;
        /* fall through */
    case 1:
        h ^= data[len & ~3u];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_entity_upsert)
{
    pg_arena *a = pg_arena_new(0);
    pg_entity_update *u =
        s_person(a, "P0000123456", 7, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT);
    s_spool_entity(u, "7");
    pg_publisher *p = s_producer(NULL, 0);
    ck_assert_str_eq(pg_publisher_transactional_id(p), "polegated.test");
    ck_assert_int_eq(s_publish_all(p, 20), 1);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.produced, 1);
    ck_assert_uint_eq(st.delivered, 1);
    ck_assert_uint_eq(st.batches, 1);
    ck_assert_uint_eq(st.transactions, 1);
    ck_assert_uint_eq(st.failed, 0);
    /* nothing left: a round finds nothing to do */
    ck_assert_int_eq(pg_publisher_step(p, s_err, sizeof s_err), 0);

    s_rec recs[2];
    ck_assert_uint_eq(s_consume(recs, 2, 3000), 1);
    s_rec *r = &recs[0];
    ck_assert_str_eq(r->key, u->id);
    ck_assert_uint_eq(r->nhdr, 6);
    ck_assert_str_eq(s_hdr(r, "pg-type"), "polegate.pole.v1.EntityUpdate");
    ck_assert_str_eq(s_hdr(r, "pg-schema"), "polegate.pole.v1");
    ck_assert_str_eq(s_hdr(r, "pg-origin-force"), "ESX");
    ck_assert_str_eq(s_hdr(r, "pg-marking"), "OFFICIAL-SENSITIVE;P");
    ck_assert_str_eq(s_hdr(r, "pg-operation"), "UPSERT");
    ck_assert_str_eq(s_hdr(r, "pg-version"), "7");
    ck_assert_int_eq(r->null_value, 0);
    pg_entity_update *back =
        polegate__pole__v1__entity_update__unpack(NULL, r->value_len, r->value);
    ck_assert_ptr_nonnull(back);
    ck_assert_str_eq(back->id, u->id);
    ck_assert_uint_eq(back->version, 7);
    ck_assert_int_eq(back->body_case, POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON);
    ck_assert_str_eq(back->person->name->surname, "O'Brien");
    ck_assert_str_eq(back->origin->native_id, "P0000123456");
    polegate__pole__v1__entity_update__free_unpacked(back, NULL);
    pg_publisher_destroy(&p);
    ck_assert_ptr_null(p);
    pg_publisher_destroy(&p);
    pg_arena_destroy(&a);
}
END_TEST

START_TEST(test_link_and_delete_tombstone)
{
    pg_arena *a = pg_arena_new(0);
    pg_entity_update *person =
        s_person(a, "P0000000001", 3, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT);
    pg_entity_update *gone =
        s_person(a, "P0000000001", 4, POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE);
    pg_link_update *link = s_link(a, person, "9d0b6f0e-6f3c-5a47-9b3a-2f1e2d3c4b5a", 2,
                                  POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE);
    /* each DELETE is two records: the update, then the tombstone */
    pg_outbatch *b = pg_outbatch_new();
    s_add(b, link->id, &link->base, PG_TYPE_LINK, "DELETE", "2", "TOP-SECRET;C");
    s_add(b, link->id, NULL, PG_TYPE_LINK, "DELETE", "2", "TOP-SECRET;C");
    s_add(b, gone->id, &gone->base, PG_TYPE_ENTITY, "DELETE", "4", "OFFICIAL-SENSITIVE;P");
    s_add(b, gone->id, NULL, PG_TYPE_ENTITY, "DELETE", "4", "OFFICIAL-SENSITIVE;P");
    s_spool_batch(&b);
    ck_assert_uint_eq(s_spooled().records, 4);
    pg_publisher *p = s_producer(NULL, 0);
    s_publish_all(p, 20);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.produced, 4);
    ck_assert_uint_eq(st.delivered, 4);

    s_rec recs[8];
    size_t n = s_consume(recs, 8, 3000);
    ck_assert_uint_eq(n, 4);
    s_rec *del = NULL, *tomb = NULL, *ldel = NULL, *ltomb = NULL;
    for (size_t i = 0; i < n; i++) {
        s_rec *r = &recs[i];
        int is_entity = !strcmp(r->key, gone->id);
        ck_assert(is_entity || !strcmp(r->key, link->id));
        if (is_entity)
            *(r->null_value ? &tomb : &del) = r;
        else
            *(r->null_value ? &ltomb : &ldel) = r;
    }
    ck_assert_ptr_nonnull(del);
    ck_assert_ptr_nonnull(tomb);
    ck_assert_ptr_nonnull(ldel);
    ck_assert_ptr_nonnull(ltomb);
    /* same key, same partition, tombstone after the delete */
    ck_assert_int_eq(del->partition, tomb->partition);
    ck_assert_int_lt(del->offset, tomb->offset);
    ck_assert_int_lt(ldel->offset, ltomb->offset);
    ck_assert_uint_eq(tomb->value_len, 0);
    ck_assert_str_eq(s_hdr(del, "pg-operation"), "DELETE");
    ck_assert_str_eq(s_hdr(tomb, "pg-operation"), "DELETE");
    ck_assert_str_eq(s_hdr(tomb, "pg-version"), "4");
    ck_assert_str_eq(s_hdr(tomb, "pg-type"), "polegate.pole.v1.EntityUpdate");
    ck_assert_str_eq(s_hdr(ldel, "pg-type"), "polegate.pole.v1.LinkUpdate");
    ck_assert_str_eq(s_hdr(ldel, "pg-marking"), "TOP-SECRET;C");
    ck_assert_str_eq(s_hdr(ldel, "pg-version"), "2");
    pg_link_update *back =
        polegate__pole__v1__link_update__unpack(NULL, ldel->value_len, ldel->value);
    ck_assert_ptr_nonnull(back);
    ck_assert_str_eq(back->id, link->id);
    ck_assert_str_eq(back->from->id, person->id);
    ck_assert_int_eq(back->operation, POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE);
    polegate__pole__v1__link_update__free_unpacked(back, NULL);
    pg_entity_update *eback =
        polegate__pole__v1__entity_update__unpack(NULL, del->value_len, del->value);
    ck_assert_ptr_nonnull(eback);
    ck_assert_int_eq(eback->body_case, POLEGATE__POLE__V1__ENTITY_UPDATE__BODY__NOT_SET);
    polegate__pole__v1__entity_update__free_unpacked(eback, NULL);
    pg_publisher_destroy(&p);
    pg_arena_destroy(&a);
}
END_TEST

START_TEST(test_partitions_match_java)
{
    pg_arena *a = pg_arena_new(0);
    for (int i = 0; i < 12; i++) {
        char native[16];
        snprintf(native, sizeof native, "P%010d", i + 1);
        s_spool_entity(s_person(a, native, 1, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT),
                       "1");
    }
    pg_publisher *p = s_producer(NULL, 0);
    s_publish_all(p, 20);
    s_rec recs[12];
    ck_assert_uint_eq(s_consume(recs, 12, 3000), 12);
    int partitions_seen = 0;
    for (int i = 0; i < 12; i++) {
        const s_rec *r = &recs[i];
        int32_t h = s_murmur2((const uint8_t *)r->key, strlen(r->key));
        int want = (int)((uint32_t)h & 0x7fffffff) % PARTITIONS;
        ck_assert_msg(r->partition == want, "key %s: partition %d, Java would pick %d", r->key,
                      r->partition, want);
        partitions_seen |= 1 << r->partition;
    }
    ck_assert_int_gt(__builtin_popcount((unsigned)partitions_seen), 1);
    pg_publisher_destroy(&p);
    pg_arena_destroy(&a);
}
END_TEST

START_TEST(test_window_per_transaction)
{
    for (int i = 0; i < 5; i++) {
        char tag[8];
        snprintf(tag, sizeof tag, "b%d", i);
        s_spool_raw(tag, 3);
    }
    pg_publisher *p = s_producer_w(NULL, 0, 2, NULL);
    int got[8], n = 0;
    while (n < 8 && s_spooled().batches) {
        int rc = pg_publisher_step(p, s_err, sizeof s_err);
        ck_assert_msg(rc >= 0 || rc == PG_ERETRY, "%s", s_err);
        if (rc > 0)
            got[n++] = rc;
    }
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(got[0], 2);
    ck_assert_int_eq(got[1], 2);
    ck_assert_int_eq(got[2], 1);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.transactions, 3);
    ck_assert_uint_eq(st.batches, 5);
    ck_assert_uint_eq(st.delivered, 15);
    s_rec recs[16];
    ck_assert_uint_eq(s_consume(recs, 16, 3000), 15);
    pg_publisher_destroy(&p);
}
END_TEST

/* Committed windows are removed from the spool together, not one store write
 * transaction each (each takes the intake's writer lock and an fdatasync): while more
 * waits behind them they stay, the next window is read after them (never sent again),
 * and when the spool is read to its end they go in one removal. */
START_TEST(test_removals_grouped)
{
    for (int i = 0; i < 3; i++) {
        char tag[8];
        snprintf(tag, sizeof tag, "g%d", i);
        s_spool_raw(tag, 2);
    }
    pg_publisher *p = s_producer_w(NULL, 0, 1, NULL);
    int rc = s_step_until_ready(p);
    ck_assert_msg(rc == 1, "%d %s", rc, s_err);
    ck_assert_uint_eq(s_spooled().batches, 3); /* committed, not yet removed */
    ck_assert_int_eq(pg_publisher_step(p, s_err, sizeof s_err), 1);
    ck_assert_uint_eq(s_spooled().batches, 3);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.transactions, 2);
    ck_assert_uint_eq(st.produced, 4); /* the second window is the second batch */
    ck_assert_uint_eq(st.removals, 0);
    ck_assert_int_eq(pg_publisher_step(p, s_err, sizeof s_err), 1);
    ck_assert_uint_eq(s_spooled().batches, 0); /* the end of the spool: all three go */
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.removals, 1);
    ck_assert_uint_eq(st.batches, 3);
    ck_assert_uint_eq(st.delivered, 6);
    ck_assert_uint_eq(st.resent, 0);
    /* Stopping removes what was committed: the next start does not send it again. */
    s_spool_raw("h0", 1);
    s_spool_raw("h1", 1);
    ck_assert_int_eq(pg_publisher_step(p, s_err, sizeof s_err), 1);
    ck_assert_uint_eq(s_spooled().batches, 2);
    pg_publisher_destroy(&p);
    pg_spool_stats sp = s_spooled();
    ck_assert_uint_eq(sp.batches, 1);
    ck_assert_uint_eq(sp.first_seq, 5);
    s_rec recs[16];
    ck_assert_uint_eq(s_consume(recs, 16, 3000), 7); /* each record once */
}
END_TEST

START_TEST(test_broker_down_keeps_spool)
{
    s_spool_raw("a", 4);
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_down(s_mcluster, b);
    pg_publisher *p = s_producer(NULL, 0);
    for (int i = 0; i < 4; i++) {
        int rc = pg_publisher_step(p, s_err, sizeof s_err);
        ck_assert_msg(rc == PG_ERETRY, "round %d: %d %s", i, rc, s_err);
    }
    char last[PG_ERRSTR_SIZE];
    pg_publisher_last_error(p, last, sizeof last);
    ck_assert_str_ne(last, "");
    /* nothing left the spool while the broker was away */
    pg_spool_stats st = s_spooled();
    ck_assert_uint_eq(st.batches, 1);
    ck_assert_uint_eq(st.records, 4);
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_up(s_mcluster, b);
    s_publish_all(p, 60);
    pg_publisher_last_error(p, last, sizeof last);
    ck_assert_str_eq(last, "");
    s_rec recs[8];
    ck_assert_uint_eq(s_consume(recs, 8, 3000), 4);
    pg_publisher_destroy(&p);
}
END_TEST

START_TEST(test_refused_records_abort_and_resend)
{
    s_spool_raw("warm", 1);
    pg_publisher *p = s_producer(NULL, 0);
    s_publish_all(p, 20);
    /* A permanent error for the next Produce requests: the transaction must abort and
     * the spool send the batch again, never count it delivered. */
    rd_kafka_mock_push_request_errors(
        s_mcluster, RD_KAFKAP_PRODUCE, 3, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    s_spool_raw("x", 2);
    int rc = pg_publisher_step(p, s_err, sizeof s_err);
    ck_assert_msg(rc == PG_ERETRY, "%d %s", rc, s_err);
    ck_assert_uint_eq(s_spooled().batches, 1);
    s_publish_all(p, 40);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_ge(st.aborts, 1);
    ck_assert_uint_ge(st.failed, 1);
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_uint_eq(st.delivered, 3);
    ck_assert_uint_gt(st.produced, 3);             /* the aborted window was produced twice */
    ck_assert_uint_eq(st.resent, st.produced - 3); /* and every re-send is counted */
    /* every key is there (the mock broker keeps aborted records too, so duplicates of
     * the refused window may show; a real broker hides them from read_committed) */
    s_rec recs[16];
    size_t n = s_consume(recs, 16, 3000);
    int seen = 0;
    for (size_t i = 0; i < n; i++)
        seen |= !strcmp(recs[i].key, "warm.0") ? 1
                : !strcmp(recs[i].key, "x.0")  ? 2
                : !strcmp(recs[i].key, "x.1")  ? 4
                                               : 0;
    ck_assert_int_eq(seen, 7);
    pg_publisher_destroy(&p);
}
END_TEST

/* A policy change rewriting the spool (pg_spool_withhold): no window is read while it
 * is under way, and a window read before it is aborted, not committed, and read again
 * after it (what it held may have been withheld since). */
START_TEST(test_rewrite_aborts_window_in_flight)
{
    s_spool_raw("warm", 1);
    pg_publisher *p = s_producer(NULL, 0);
    s_publish_all(p, 20);
    s_spool_raw("x", 2);
    pg_spool_rewrite_begin(s_spool);
    ck_assert_int_eq(pg_publisher_step(p, s_err, sizeof s_err), 0);
    ck_assert_uint_eq(s_spooled().batches, 1);
    pg_spool_rewrite_end(s_spool);

    /* The broker slow to store the window: the round returns with it in flight. */
    for (int32_t b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(s_mcluster, b, 1500);
    int rc = pg_publisher_step(p, s_err, sizeof s_err);
    ck_assert_msg(rc == PG_ERETRY && strstr(s_err, "not yet stored"), "%d %s", rc, s_err);
    for (int32_t b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(s_mcluster, b, 0);
    pg_spool_rewrite_begin(s_spool);
    pg_spool_rewrite_end(s_spool);
    rc = pg_publisher_step(p, s_err, sizeof s_err);
    ck_assert_msg(rc == PG_ERETRY && strstr(s_err, "rewrote the spool"), "%d %s", rc, s_err);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.batches, 1); /* only the warm-up batch committed so far */
    s_publish_all(p, 40);
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_ge(st.aborts, 1);
    ck_assert_uint_eq(st.batches, 2);
    ck_assert_uint_eq(st.delivered, 3);
    pg_publisher_destroy(&p);
}
END_TEST

/* Failure mode 1 of issue 13: the transaction committed, then removing its batches
 * from the spool failed (the map full). Publishing stops, loudly and counted; the
 * window is never read and sent again (that was ~885 duplicates every 30 s); each
 * round retries the removal only, and publishing resumes once it succeeds. */
START_TEST(test_removal_failure_stops_publishing)
{
    s_spool_raw("a", 3);
    s_spool_raw("b", 2);
    pg_publisher *p = s_producer(NULL, 0);
    pg_store_test_inject(s_store, MDB_MAP_FULL, 4);
    int rc = s_step_until_ready(p);
    ck_assert_msg(rc == PG_EFULL, "%d %s", rc, s_err);
    ck_assert_msg(strstr(s_err, "MDB_MAP_FULL"), "%s", s_err);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    uint64_t produced = st.produced;
    ck_assert_uint_eq(produced, 5);
    for (int i = 0; i < 3; i++) {
        rc = pg_publisher_step(p, s_err, sizeof s_err);
        ck_assert_msg(rc == PG_EFULL, "%d %s", rc, s_err);
        pg_publisher_get_stats(p, &st);
        ck_assert_uint_eq(st.produced, produced); /* nothing sent again */
        ck_assert_uint_eq(st.stalled, 1);
        char last[PG_ERRSTR_SIZE];
        pg_publisher_last_error(p, last, sizeof last);
        ck_assert_msg(strstr(last, "publishing stopped: spool batches 1-2 are committed"), "%s",
                      last);
    }
    ck_assert_uint_eq(st.remove_failures, 4);
    ck_assert_uint_eq(s_spooled().batches, 2);
    rc = pg_publisher_step(p, s_err, sizeof s_err);
    ck_assert_msg(rc == 2, "%d %s", rc, s_err);
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.stalled, 0);
    ck_assert_uint_eq(st.resent, 0);
    ck_assert_uint_eq(st.produced, 5);
    ck_assert_uint_eq(st.delivered, 5);
    ck_assert_uint_eq(s_spooled().batches, 0);
    s_rec recs[16];
    ck_assert_uint_eq(s_consume(recs, 16, 3000), 5); /* each record once */
    pg_publisher_destroy(&p);
}
END_TEST

/* Commit the spool's batches in one window and leave them there, as a crash between
 * commit and removal does; returns the records produced. */
static uint64_t s_commit_unremoved(void)
{
    pg_publisher *p = s_producer(NULL, 0);
    pg_store_test_inject(s_store, MDB_MAP_FULL, 1000);
    int rc = s_step_until_ready(p);
    ck_assert_msg(rc == PG_EFULL, "%d %s", rc, s_err);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    pg_publisher_destroy(&p);
    pg_store_test_inject(s_store, 0, 0);
    return st.produced;
}

/* A crash between a window's commit and its removal from the spool (here: the
 * removal fails, then the process goes away) leaves committed batches in the spool;
 * the next process publishes them again and counts every one of those records as sent
 * again, from the mark the first left (sentmark.h). */
START_TEST(test_restart_counts_what_was_sent_before)
{
    s_spool_raw("a", 3);
    s_spool_raw("b", 2);
    ck_assert_uint_eq(s_commit_unremoved(), 5);
    ck_assert_uint_eq(s_spooled().batches, 2);

    s_spool_raw("c", 1);
    pg_publisher_stats st = s_publish_new();
    ck_assert_uint_eq(st.batches, 3);
    ck_assert_uint_eq(st.produced, 6);
    ck_assert_uint_eq(st.resent, 5); /* a and b again; c for the first time */
    s_rec recs[16];
    ck_assert_uint_eq(s_consume(recs, 16, 3000), 11); /* the mock keeps both copies */

    /* and nothing is counted once they are gone */
    s_spool_raw("d", 2);
    st = s_publish_new();
    ck_assert_uint_eq(st.produced, 2);
    ck_assert_uint_eq(st.resent, 0);
}
END_TEST

/* A mark that is not one (damaged, or from a store put back from an older copy) counts
 * every batch the spool holds at the start: more counted than sent again, never less;
 * and it is written right at the next window. */
START_TEST(test_damaged_mark_counts_every_spooled_batch)
{
    static const char *const bad[] = {"PGSENT01garbage-garbage", "x"};
    for (size_t k = 0; k < 3; k++) {
        s_spool_raw(k == 0 ? "a" : k == 1 ? "b" : "c", 3);
        char path[128];
        snprintf(path, sizeof path, "%s/%s", s_dir, PG_SENTMARK_FILE);
        pg_sentmark_state state;
        uint64_t seq;
        if (k < 2) {
            FILE *f = fopen(path, "w");
            ck_assert_ptr_nonnull(f);
            fputs(bad[k], f);
            fclose(f);
        } else { /* a valid mark ahead of the spool */
            pg_sentmark *m = pg_sentmark_open(s_dir, &seq, &state, s_err, sizeof s_err);
            ck_assert_msg(m != NULL, "%s", s_err);
            ck_assert_int_eq(pg_sentmark_set(m, 1000, s_err, sizeof s_err), 0);
            pg_sentmark_close(&m);
        }
        pg_publisher_stats st = s_publish_new();
        ck_assert_uint_eq(st.produced, 3);
        ck_assert_uint_eq(st.resent, 3);
        pg_sentmark *m = pg_sentmark_open(s_dir, &seq, &state, s_err, sizeof s_err);
        ck_assert_msg(m != NULL, "%s", s_err);
        ck_assert_int_eq(state, PG_SENTMARK_OK);
        ck_assert_uint_eq(seq, k + 1); /* the spool's batch of this round */
        pg_sentmark_close(&m);
    }
}
END_TEST

static int s_sync_fails(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

/* Fail closed: when the mark cannot be made durable nothing of the window reaches the
 * broker; once it can, the window goes out once, uncounted. A mark that is a symbolic
 * link is refused at the start. */
START_TEST(test_mark_not_written_nothing_published)
{
    s_spool_raw("a", 2);
    pg_publisher *p = s_producer(NULL, 0);
    pg_publisher_test_mark_sync(p, s_sync_fails);
    for (int i = 0; i < 5; i++) {
        int rc = pg_publisher_step(p, s_err, sizeof s_err);
        ck_assert_int_eq(rc, PG_ERETRY);
    }
    ck_assert_msg(strstr(s_err, PG_SENTMARK_FILE ": write: Input/output error; nothing is "
                                                 "published until the mark"),
                  "%s", s_err);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.produced, 0);
    ck_assert_uint_eq(st.stalled, 1); /* not ready, PolegatePublishingStopped */
    char last[PG_ERRSTR_SIZE];
    pg_publisher_last_error(p, last, sizeof last);
    ck_assert_msg(!strncmp(last, "publishing stopped: ", 20), "%s", last);
    pg_publisher_test_mark_sync(p, NULL);
    s_publish_all(p, 20);
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.produced, 2);
    ck_assert_uint_eq(st.resent, 0);
    ck_assert_uint_eq(st.stalled, 0);
    /* stopped again, and then what waited for the mark leaves the spool another way (a
     * policy rewrite withholding it): nothing waits, so publishing is not stopped */
    s_spool_raw("b", 1);
    pg_publisher_test_mark_sync(p, s_sync_fails);
    ck_assert_int_eq(pg_publisher_step(p, s_err, sizeof s_err), PG_ERETRY);
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.stalled, 1);
    pg_spool_stats sp = s_spooled();
    s_spool_drop(sp.first_seq, sp.next_seq - 1);
    ck_assert_int_eq(pg_publisher_step(p, s_err, sizeof s_err), 0);
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.stalled, 0);
    pg_publisher_destroy(&p);
    s_rec recs[8];
    ck_assert_uint_eq(s_consume(recs, 8, 3000), 2);

    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, PG_SENTMARK_FILE);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(symlink("/tmp/elsewhere", path), 0);
    s_expect_new_refused("a symbolic link, not the publisher's mark");
}
END_TEST

/* A mark missing while the spool holds batches (the first start after an upgrade, or
 * removed after a store was restored) counts the whole spool: a consumer never sees
 * more duplicates than were counted. */
START_TEST(test_missing_mark_counts_every_spooled_batch)
{
    s_spool_raw("a", 3);
    s_spool_raw("b", 2);
    ck_assert_uint_eq(s_commit_unremoved(), 5);
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, PG_SENTMARK_FILE);
    ck_assert_int_eq(unlink(path), 0);
    pg_publisher_stats st = s_publish_new();
    s_rec recs[16];
    ck_assert_uint_eq(s_consume(recs, 16, 3000), 10); /* 5 records, each twice */
    ck_assert_uint_eq(st.resent, 5);
}
END_TEST

static void s_copy_dir(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s && cp -a %s/. %s/", to, to, from, to);
    ck_assert_int_eq(system(cmd), 0);
}

static void s_reopen_store(void)
{
    pg_spool_destroy(&s_spool);
    pg_store_destroy(&s_store);
    s_store = pg_store_new(s_dir, 64u << 20, s_err, sizeof s_err);
    ck_assert_msg(s_store != NULL, "%s", s_err);
    s_spool = pg_spool_new(s_store, NULL, s_err, sizeof s_err);
    ck_assert_msg(s_spool != NULL, "%s", s_err);
}

/* A store restored from a backup, as operations.md says (the directory as it was, then
 * publisher.sent removed): what was published after the backup goes out again, and is
 * counted. */
START_TEST(test_restored_store_counts_what_it_sends_again)
{
    char bak[128];
    snprintf(bak, sizeof bak, "%s.bak", s_dir);
    s_spool_raw("a", 3);
    pg_publisher *p = s_producer(NULL, 0); /* makes the mark */
    pg_publisher_destroy(&p);
    pg_spool_destroy(&s_spool);
    pg_store_destroy(&s_store);
    s_copy_dir(s_dir, bak); /* the backup */
    s_reopen_store();
    s_publish_new(); /* published and removed after the backup */
    pg_spool_destroy(&s_spool);
    pg_store_destroy(&s_store);
    s_copy_dir(bak, s_dir); /* restored */
    char path[128], cmd[300];
    snprintf(path, sizeof path, "%s/%s", s_dir, PG_SENTMARK_FILE);
    ck_assert_int_eq(unlink(path), 0);
    s_reopen_store();
    pg_publisher_stats st = s_publish_new();
    s_rec recs[16];
    ck_assert_uint_eq(s_consume(recs, 16, 3000), 6);
    ck_assert_uint_eq(st.resent, 3);
    snprintf(cmd, sizeof cmd, "rm -rf %s", bak);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Publishing stopped on a mark that could not be raised ends as soon as a window goes
 * out, also one that needs no raise (what waited for the raise left the spool). */
START_TEST(test_stop_on_mark_ends_with_any_window)
{
    s_spool_raw("a", 1);
    s_spool_raw("b", 1);
    s_spool_raw("c", 1);
    ck_assert_uint_eq(s_commit_unremoved(), 3); /* mark 3, batches 1-3 still spooled */
    s_spool_raw("d", 1);
    pg_publisher *p = s_producer(NULL, 0);
    pg_publisher_test_mark_sync(p, s_sync_fails);
    int rc = PG_ERETRY;
    for (int i = 0; i < 5; i++) /* the broker ready, then the raise to 4 fails */
        rc = pg_publisher_step(p, s_err, sizeof s_err);
    ck_assert_int_eq(rc, PG_ERETRY);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.stalled, 1);
    s_spool_drop(4, 4);
    pg_publisher_test_mark_sync(p, NULL);
    pg_publisher_step(p, s_err, sizeof s_err); /* 1-3 produced: no raise needed */
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.produced, 3);
    ck_assert_uint_eq(st.stalled, 0);
    s_publish_all(p, 100);
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.stalled, 0);
    ck_assert_uint_eq(st.resent, 3);
    pg_publisher_destroy(&p);
}
END_TEST

/* Attack: a hard link planted as the mark, to have the publisher cut and overwrite the
 * file it names (the audit log, say). Refused at the start; the file is untouched. */
START_TEST(test_planted_hard_link_mark_refused)
{
    char victim[128], path[128];
    snprintf(victim, sizeof victim, "%s/victim", s_dir);
    snprintf(path, sizeof path, "%s/%s", s_dir, PG_SENTMARK_FILE);
    FILE *f = fopen(victim, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 100; i++)
        fputs("a line of another file\n", f);
    fclose(f);
    ck_assert_int_eq(unlink(path), 0); /* the spool's own, made with it */
    ck_assert_int_eq(link(victim, path), 0);
    s_expect_new_refused("more than one name (a hard link)");
    struct stat sb;
    ck_assert_int_eq(stat(victim, &sb), 0);
    ck_assert_int_eq(sb.st_size, 2300);
}
END_TEST

START_TEST(test_fatal_error_restarts_from_spool)
{
    s_spool_raw("a", 2);
    pg_publisher *p = s_producer(NULL, 0);
    s_publish_all(p, 20);
    ck_assert_int_eq(pg_publisher_test_fatal(p), 0);
    s_spool_raw("b", 2);
    int rc = pg_publisher_step(p, s_err, sizeof s_err);
    ck_assert_int_eq(rc, PG_ERETRY);
    ck_assert_msg(strstr(s_err, "making a new producer") != NULL, "%s", s_err);
    ck_assert_uint_eq(s_spooled().batches, 1);
    s_publish_all(p, 40);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.restarts, 1);
    ck_assert_uint_eq(st.batches, 2);
    s_rec recs[8];
    ck_assert_uint_ge(s_consume(recs, 8, 3000), 4);
    pg_publisher_destroy(&p);
}
END_TEST

/* Attack: fill the audit log's disk so that disclosures go unlogged. Fail closed: the
 * transaction is aborted (nothing visible to partners, the spool keeps the window)
 * until the log takes events again; then it goes out, logged once. */
START_TEST(test_audit_fails_closed)
{
    char path[128];
    snprintf(path, sizeof path, "%s/audit.log", s_dir);
    pg_audit_options ao = {.write_fn = s_disk_fault_write};
    pg_audit *audit = pg_audit_new(path, &ao, s_err, sizeof s_err);
    ck_assert_msg(audit != NULL, "%s", s_err);
    s_spool_raw("f", 2);
    pg_publisher *p = s_producer_w(NULL, 0, 0, audit);
    s_disk_fault = 1;
    for (int i = 0; i < 3; i++) {
        int rc = pg_publisher_step(p, s_err, sizeof s_err);
        ck_assert_msg(rc < 0, "step %d published with the audit log failing", i);
    }
    ck_assert_msg(strstr(s_err, "audit: ") || strstr(s_err, "aborted"), "%s", s_err);
    ck_assert_uint_eq(pg_audit_seq(audit), 0);
    ck_assert_uint_eq(s_spooled().batches, 1);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_ge(st.audit_errors, 1);
    ck_assert_uint_eq(st.delivered, 0);
    /* and says so, for /readyz (found by attack: it answered ready meanwhile) */
    ck_assert_uint_eq(st.audit_failing, 1);
    s_disk_fault = 0;
    s_publish_all(p, 60);
    ck_assert_uint_eq(s_spooled().batches, 0);
    ck_assert_uint_eq(pg_audit_seq(audit), 1);
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.delivered, 2);
    ck_assert_uint_eq(st.audit_failing, 0);
    pg_publisher_destroy(&p);
    pg_audit_destroy(&audit);
}
END_TEST

START_TEST(test_audit_after_commit)
{
    char path[128];
    snprintf(path, sizeof path, "%s/audit.log", s_dir);
    pg_audit *audit = pg_audit_new(path, NULL, s_err, sizeof s_err);
    ck_assert_msg(audit != NULL, "%s", s_err);
    s_spool_raw("a", 3);
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_down(s_mcluster, b);
    pg_publisher *p = s_producer_w(NULL, 0, 0, audit);
    ck_assert_int_eq(pg_publisher_step(p, s_err, sizeof s_err), PG_ERETRY);
    /* not stored by the broker: not disclosed */
    ck_assert_uint_eq(pg_audit_seq(audit), 0);
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_up(s_mcluster, b);
    s_publish_all(p, 60);
    ck_assert_uint_eq(pg_audit_seq(audit), 1); /* only the audited record */
    pg_publisher_destroy(&p);
    pg_audit_destroy(&audit);
    FILE *f = fopen(path, "r");
    char line[2048] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_msg(strstr(line, "\"action\":\"disclose\"") != NULL, "%s", line);
    ck_assert_msg(strstr(line, "\"destination\":\"partner-a\"") != NULL, "%s", line);
    ck_assert_msg(strstr(line, "\"policy_version\":\"p1\"") != NULL, "%s", line);
    ck_assert_msg(strstr(line, "\"version\":3") != NULL, "%s", line);
}
END_TEST

START_TEST(test_thread_and_drain)
{
    pg_publisher *p = s_producer(NULL, 0);
    ck_assert_int_eq(pg_publisher_start(p, s_err, sizeof s_err), 0);
    for (int i = 0; i < 20; i++) {
        char tag[8];
        snprintf(tag, sizeof tag, "t%d", i);
        s_spool_raw(tag, 2);
        pg_spool_notify(s_spool);
    }
    ck_assert_msg(pg_publisher_drain(p, 20000, s_err, sizeof s_err) == 0, "%s", s_err);
    pg_publisher_stop(p);
    pg_publisher_stop(p); /* twice is harmless */
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.batches, 20);
    ck_assert_uint_eq(st.delivered, 40);

    /* with the broker away the drain gives up in time and says what is left */
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_down(s_mcluster, b);
    s_spool_raw("late", 3);
    ck_assert_int_eq(pg_publisher_start(p, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_publisher_drain(p, 300, s_err, sizeof s_err), PG_ETIMEOUT);
    ck_assert_str_eq(s_err, "1 batches (3 records) still in the spool after 300 ms");
    pg_publisher_destroy(&p); /* stops the thread; the batch stays */
    ck_assert_uint_eq(s_spooled().batches, 1);
}
END_TEST

START_TEST(test_properties_reach_librdkafka)
{
    /* test.mock.num.brokers makes librdkafka start its own mock cluster: records are
     * delivered although the brokers given do not exist. */
    pg_config_kv props[] = {{"test.mock.num.brokers", "3", 1}, {"linger.ms", "0", 2}};
    snprintf(s_brokers, sizeof s_brokers, "127.0.0.1:1");
    s_spool_raw("m", 1);
    pg_publisher *p = s_producer(props, 2);
    s_publish_all(p, 40);
    pg_publisher_stats st;
    pg_publisher_get_stats(p, &st);
    ck_assert_uint_eq(st.delivered, 1);
    pg_publisher_destroy(&p);
}
END_TEST

START_TEST(test_safety_properties_refused)
{
    const char *bad[][2] = {{"acks", "1"},
                            {"enable.idempotence", "false"},
                            {"partitioner", "random"},
                            {"bootstrap.servers", "x:1"},
                            {"no.such.thing", "1"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pg_config_kv kv = {(char *)bad[i][0], (char *)bad[i][1], 1};
        pg_publisher_opts opts = {.brokers = s_brokers,
                                  .transactional_id = "t",
                                  .properties = &kv,
                                  .property_count = 1,
                                  .store = s_store,
                                  .spool = s_spool};
        pg_publisher *p = pg_publisher_new(&opts, s_err, sizeof s_err);
        ck_assert_msg(p == NULL, "%s=%s accepted", bad[i][0], bad[i][1]);
        ck_assert_msg(strstr(s_err, bad[i][0]) || strstr(s_err, "No such"), "%s", s_err);
    }
    ck_assert_int_eq(pg_kafka_check_property("acks", "all", s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_kafka_check_property("acks", "-1", s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_kafka_check_property("acks", "0", s_err, sizeof s_err), PG_ECONFIG);
    ck_assert_ptr_nonnull(strstr(s_err, "'acks' is fixed to 'all'"));
    /* a message timeout longer than the transaction's is refused by librdkafka */
    pg_config_kv mt = {"message.timeout.ms", "600000", 1};
    pg_publisher_opts opts = {.brokers = s_brokers,
                              .transactional_id = "t",
                              .properties = &mt,
                              .property_count = 1,
                              .store = s_store,
                              .spool = s_spool};
    ck_assert_ptr_null(pg_publisher_new(&opts, s_err, sizeof s_err));
    ck_assert_msg(strstr(s_err, "transaction.timeout.ms") != NULL, "%s", s_err);
    /* no transactional id */
    opts.properties = NULL;
    opts.property_count = 0;
    opts.transactional_id = NULL;
    ck_assert_ptr_null(pg_publisher_new(&opts, s_err, sizeof s_err));
    ck_assert_str_eq(s_err, "producer: no transactional id");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("producer");
    TCase *tc = tcase_create("mock");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_entity_upsert);
    tcase_add_test(tc, test_link_and_delete_tombstone);
    tcase_add_test(tc, test_partitions_match_java);
    tcase_add_test(tc, test_window_per_transaction);
    tcase_add_test(tc, test_removals_grouped);
    tcase_add_test(tc, test_broker_down_keeps_spool);
    tcase_add_test(tc, test_refused_records_abort_and_resend);
    tcase_add_test(tc, test_rewrite_aborts_window_in_flight);
    tcase_add_test(tc, test_removal_failure_stops_publishing);
    tcase_add_test(tc, test_fatal_error_restarts_from_spool);
    tcase_add_test(tc, test_restart_counts_what_was_sent_before);
    tcase_add_test(tc, test_damaged_mark_counts_every_spooled_batch);
    tcase_add_test(tc, test_mark_not_written_nothing_published);
    tcase_add_test(tc, test_missing_mark_counts_every_spooled_batch);
    tcase_add_test(tc, test_restored_store_counts_what_it_sends_again);
    tcase_add_test(tc, test_planted_hard_link_mark_refused);
    tcase_add_test(tc, test_stop_on_mark_ends_with_any_window);
    tcase_add_test(tc, test_audit_after_commit);
    tcase_add_test(tc, test_audit_fails_closed);
    tcase_add_test(tc, test_thread_and_drain);
    tcase_add_test(tc, test_properties_reach_librdkafka);
    tcase_add_test(tc, test_safety_properties_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
