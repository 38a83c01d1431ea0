/* Unit tests for gateway/producer against librdkafka's mock cluster, read back with a
 * librdkafka consumer: keys, headers, values, tombstones, partitions, failures. */
#include <check.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/pole.h"
#include "producer.h"

#define TOPIC "polegate.esx.pole.v1"
#define PARTITIONS 4
#define RD_KAFKAP_PRODUCE 0 /* the Produce API key (not in librdkafka's public headers) */

static rd_kafka_t *s_mock_rk;
static rd_kafka_mock_cluster_t *s_mcluster;
static char s_brokers[256];
static char s_err[PG_ERRSTR_SIZE];
static char s_topic[64];
static int s_topic_seq;

/* A fresh mock cluster of 3 brokers and a topic of PARTITIONS partitions per test
 * (tests run in forked processes, so nothing carries over). */
static void s_setup(void)
{
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    s_mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    ck_assert_ptr_nonnull(s_mock_rk);
    s_mcluster = rd_kafka_mock_cluster_new(s_mock_rk, 3);
    ck_assert_ptr_nonnull(s_mcluster);
    snprintf(s_brokers, sizeof s_brokers, "%s", rd_kafka_mock_cluster_bootstraps(s_mcluster));
    snprintf(s_topic, sizeof s_topic, "%s.%d", TOPIC, ++s_topic_seq);
    ck_assert_int_eq(rd_kafka_mock_topic_create(s_mcluster, s_topic, PARTITIONS, 3), 0);
}

static void s_teardown(void)
{
    rd_kafka_mock_cluster_destroy(s_mcluster);
    rd_kafka_destroy(s_mock_rk);
}

static pg_producer *s_producer(const pg_config_kv *props, size_t n)
{
    pg_producer_opts opts = {.brokers = s_brokers,
                             .topic = s_topic,
                             .force = "ESX",
                             .properties = props,
                             .property_count = n};
    pg_producer *p = pg_producer_new(&opts, s_err, sizeof s_err);
    ck_assert_msg(p != NULL, "%s", s_err);
    return p;
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
 * end (the producer flushed before), up to max records or timeout_ms. */
static size_t s_consume(s_rec *recs, size_t max, int timeout_ms)
{
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", s_brokers, why, sizeof why);
    rd_kafka_conf_set(conf, "group.id", "test", why, sizeof why);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof why);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    ck_assert_ptr_nonnull(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, s_topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ck_assert_int_eq(rd_kafka_assign(rk, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);

    size_t n = 0;
    unsigned at_end = 0;
    for (int waited = 0; n < max && waited < timeout_ms && at_end != (1u << PARTITIONS) - 1;
         waited += 100) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
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
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* The log goes to memory between these two; s_log_end returns it (free it). */
static char *s_log_buf;
static size_t s_log_len;
static FILE *s_log_mem;

static void s_log_begin(void)
{
    s_log_mem = open_memstream(&s_log_buf, &s_log_len);
    pg_log_set_stream(s_log_mem);
}

static char *s_log_end(void)
{
    pg_log_set_stream(NULL);
    fclose(s_log_mem);
    return s_log_buf;
}

static void s_flush_ok(pg_producer *p)
{
    int rc = pg_producer_flush(p, 10000, s_err, sizeof s_err);
    ck_assert_msg(rc == 0, "%s", s_err);
}

/* ---------------------------------------------------------------- tests */

START_TEST(test_entity_upsert)
{
    pg_arena *a = pg_arena_new(0);
    pg_entity_update *u =
        s_person(a, "P0000123456", 7, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT);
    pg_producer *p = s_producer(NULL, 0);
    ck_assert_str_eq(pg_producer_topic(p), s_topic);
    ck_assert_int_eq(pg_producer_entity(p, u, s_err, sizeof s_err), 0);
    pg_producer_stats st;
    pg_producer_get_stats(p, &st);
    ck_assert_uint_eq(st.produced, 1);
    s_flush_ok(p);
    pg_producer_get_stats(p, &st);
    ck_assert_uint_eq(st.delivered, 1);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_uint_eq(pg_producer_in_flight(p), 0);

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
    pg_producer_destroy(&p);
    ck_assert_ptr_null(p);
    pg_producer_destroy(&p);
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
    pg_producer *p = s_producer(NULL, 0);
    pg_change c1 = {.type = PG_CHANGE_LINK, .link = link};
    pg_change c2 = {.type = PG_CHANGE_ENTITY, .entity = gone};
    ck_assert_int_eq(pg_producer_change(p, &c1, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_producer_change(p, &c2, s_err, sizeof s_err), 0);
    s_flush_ok(p);
    pg_producer_stats st;
    pg_producer_get_stats(p, &st);
    /* each DELETE is two records: the update, then the tombstone */
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
    pg_producer_destroy(&p);
    pg_arena_destroy(&a);
}
END_TEST

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

START_TEST(test_partitions_match_java)
{
    pg_arena *a = pg_arena_new(0);
    pg_producer *p = s_producer(NULL, 0);
    char ids[12][PG_UUID_STR_SIZE];
    for (int i = 0; i < 12; i++) {
        char native[16];
        snprintf(native, sizeof native, "P%010d", i + 1);
        pg_entity_update *u =
            s_person(a, native, 1, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT);
        snprintf(ids[i], sizeof ids[i], "%s", u->id);
        ck_assert_int_eq(pg_producer_entity(p, u, s_err, sizeof s_err), 0);
    }
    s_flush_ok(p);
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
    pg_producer_destroy(&p);
    pg_arena_destroy(&a);
}
END_TEST

START_TEST(test_broker_error_is_reported)
{
    s_log_begin();
    pg_arena *a = pg_arena_new(0);
    pg_entity_update *u =
        s_person(a, "P0000000666", 1, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT);
    pg_entity_update *ok =
        s_person(a, "P0000000667", 1, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT);
    pg_producer *p = s_producer(NULL, 0);
    /* Warm up so that the injected errors hit a Produce request, not metadata. */
    ck_assert_int_eq(pg_producer_entity(p, ok, s_err, sizeof s_err), 0);
    s_flush_ok(p);
    /* A permanent error for the next Produce requests: librdkafka must give the
     * record up and say so, not count it delivered. */
    rd_kafka_mock_push_request_errors(
        s_mcluster, RD_KAFKAP_PRODUCE, 3, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    ck_assert_int_eq(pg_producer_entity(p, u, s_err, sizeof s_err), 0);
    pg_producer_flush(p, 10000, s_err, sizeof s_err);
    pg_producer_stats st;
    pg_producer_get_stats(p, &st);
    ck_assert_uint_eq(st.produced, 2);
    ck_assert_uint_eq(st.delivered, 1);
    ck_assert_uint_eq(st.failed, 1);
    ck_assert_uint_eq(pg_producer_in_flight(p), 0);
    pg_producer_destroy(&p);
    char *log = s_log_end();
    char want[128];
    snprintf(want, sizeof want, "record key %s (update) not delivered", u->id);
    ck_assert_msg(strstr(log, want) != NULL, "log: %s", log);
    ck_assert_ptr_nonnull(strstr(log, "uthoriz"));
    free(log);
    pg_arena_destroy(&a);
}
END_TEST

START_TEST(test_flush_timeout_counts_in_flight)
{
    s_log_begin();
    pg_log_set_level(PG_LOG_ERROR);
    pg_arena *a = pg_arena_new(0);
    pg_entity_update *u =
        s_person(a, "P0000000777", 1, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT);
    /* Nothing listens on port 1: the record stays queued. */
    snprintf(s_brokers, sizeof s_brokers, "127.0.0.1:1");
    pg_producer *p = s_producer(NULL, 0);
    ck_assert_int_eq(pg_producer_entity(p, u, s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_producer_flush(p, 300, s_err, sizeof s_err), PG_ETIMEOUT);
    ck_assert_ptr_nonnull(strstr(s_err, "1 records still in flight after 300 ms"));
    pg_producer_stats st;
    pg_producer_get_stats(p, &st);
    ck_assert_uint_eq(st.produced, 1);
    ck_assert_uint_eq(st.delivered, 0);
    ck_assert_uint_eq(pg_producer_in_flight(p), 1);
    /* Destroying it does not make the record vanish silently. */
    pg_producer_destroy(&p);
    pg_log_set_level(PG_LOG_INFO);
    char *log = s_log_end();
    ck_assert_msg(strstr(log, u->id) && strstr(log, "not delivered"), "log: %s", log);
    free(log);
    pg_arena_destroy(&a);
}
END_TEST

START_TEST(test_properties_reach_librdkafka)
{
    /* test.mock.num.brokers makes librdkafka start its own mock cluster: records are
     * delivered although the brokers given do not exist. */
    pg_config_kv props[] = {{"test.mock.num.brokers", "1", 1}, {"linger.ms", "0", 2}};
    snprintf(s_brokers, sizeof s_brokers, "127.0.0.1:1");
    pg_arena *a = pg_arena_new(0);
    pg_entity_update *u =
        s_person(a, "P0000000888", 1, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT);
    pg_producer *p = s_producer(props, 2);
    ck_assert_int_eq(pg_producer_entity(p, u, s_err, sizeof s_err), 0);
    s_flush_ok(p);
    pg_producer_stats st;
    pg_producer_get_stats(p, &st);
    ck_assert_uint_eq(st.delivered, 1);
    pg_producer_destroy(&p);
    pg_arena_destroy(&a);
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
        pg_producer_opts opts = {
            .brokers = s_brokers, .topic = s_topic, .properties = &kv, .property_count = 1};
        pg_producer *p = pg_producer_new(&opts, s_err, sizeof s_err);
        ck_assert_msg(p == NULL, "%s=%s accepted", bad[i][0], bad[i][1]);
        ck_assert_msg(strstr(s_err, bad[i][0]) || strstr(s_err, "No such"), "%s", s_err);
    }
    ck_assert_int_eq(pg_producer_check_property("acks", "all", s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_producer_check_property("acks", "-1", s_err, sizeof s_err), 0);
    ck_assert_int_eq(pg_producer_check_property("acks", "0", s_err, sizeof s_err), PG_ECONFIG);
    ck_assert_ptr_nonnull(strstr(s_err, "'acks' is fixed to 'all'"));
}
END_TEST

START_TEST(test_bad_updates)
{
    pg_arena *a = pg_arena_new(0);
    pg_producer *p = s_producer(NULL, 0);
    pg_entity_update *u =
        s_person(a, "P0000000999", 1, POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT);
    u->id = "";
    ck_assert_int_eq(pg_producer_entity(p, u, s_err, sizeof s_err), PG_EINVALID);
    ck_assert_str_eq(s_err, "id: an update without an id");
    pg_change none = {.type = PG_CHANGE_LINK, .link = NULL};
    ck_assert_int_eq(pg_producer_change(p, &none, s_err, sizeof s_err), PG_EINTERNAL);
    /* an update without marking or origin still gets every header */
    u->id = "00000000-0000-5000-8000-000000000001";
    u->marking = NULL;
    u->origin = NULL;
    ck_assert_int_eq(pg_producer_entity(p, u, s_err, sizeof s_err), 0);
    s_flush_ok(p);
    s_rec recs[2];
    ck_assert_uint_eq(s_consume(recs, 2, 3000), 1);
    ck_assert_str_eq(s_hdr(&recs[0], "pg-marking"), "UNSPECIFIED;UNSPECIFIED");
    ck_assert_str_eq(s_hdr(&recs[0], "pg-origin-force"), "ESX");
    pg_producer_stats st;
    pg_producer_get_stats(p, &st);
    ck_assert_uint_eq(st.produced, 1);
    pg_producer_destroy(&p);
    pg_arena_destroy(&a);
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
    tcase_add_test(tc, test_broker_error_is_reported);
    tcase_add_test(tc, test_flush_timeout_counts_in_flight);
    tcase_add_test(tc, test_properties_reach_librdkafka);
    tcase_add_test(tc, test_safety_properties_refused);
    tcase_add_test(tc, test_bad_updates);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
