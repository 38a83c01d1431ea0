/* Unit tests for gateway/inbound/partner (below the consumer: records taken by hand; the RMS a
 * drop directory or a ZeroMQ ROUTER in this thread), the echo filter, and the daemon's
 * partner thread against librdkafka's mock cluster. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <glib.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "audit.h"
#include "compose.h"
#include "config.h"
#include "disk_fault.h"
#include "dlq.h"
#include "echo.h"
#include "idstore.h"
#include "ledger.h"
#include "partner.h"
#include "partner_service.h"
#include "polegate/adapter.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/wire.h"
#include "policy.h"
#include "rms_model.h"
#include "store.h"

#define FIX(name) PG_FIXTURES "/" name
#define S_NOW_MS 1793534400000LL
#define ESX_TO_MER "polegate.esx.mer.pole.v1"
#define MER_TO_ESX "polegate.mer.esx.pole.v1"

static char e[PG_ERRSTR_SIZE];
static char s_dir[128];   /* store */
static char s_drop[160];  /* drop directory */
static char s_audit[160]; /* audit log */

static int s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-test-partner-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    snprintf(s_drop, sizeof s_drop, "%s/drop", s_dir);
    ck_assert_int_eq(mkdir(s_drop, 0700), 0);
    snprintf(s_audit, sizeof s_audit, "%s/audit.log", s_dir);
}

static void s_teardown(void)
{
    nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------ policies */

static const char s_policy_mer[] = "policy:\n"
                                   "  version: MER-TEST-1\n"
                                   "  agreements:\n"
                                   "    - name: ISA-TEST\n"
                                   "      description: test\n"
                                   "  destinations:\n"
                                   "    - name: esx\n"
                                   "      kind: force\n"
                                   "      force: ESX\n"
                                   "      topic: " MER_TO_ESX "\n"
                                   "      agreement: ISA-TEST\n"
                                   "      max_classification: OFFICIAL-SENSITIVE\n"
                                   "      kinds: all\n"
                                   "  partners:\n"
                                   "    - force: ESX\n"
                                   "      topic: " ESX_TO_MER "\n"
                                   "      agreement: ISA-TEST\n";

static const char s_policy_esx[] = "policy:\n"
                                   "  version: ESX-TEST-1\n"
                                   "  agreements:\n"
                                   "    - name: ISA-TEST\n"
                                   "      description: test\n"
                                   "  destinations:\n"
                                   "    - name: mer\n"
                                   "      kind: force\n"
                                   "      force: MER\n"
                                   "      topic: " ESX_TO_MER "\n"
                                   "      agreement: ISA-TEST\n"
                                   "      max_classification: OFFICIAL-SENSITIVE\n"
                                   "      kinds: all\n"
                                   "  partners:\n"
                                   "    - force: MER\n"
                                   "      topic: " MER_TO_ESX "\n"
                                   "      agreement: ISA-TEST\n";

static pg_policy *s_policy(const char *yaml, const char *force)
{
    pg_policy *p = pg_policy_load_string(yaml, strlen(yaml), force, e, sizeof e);
    ck_assert_msg(p != NULL, "%s", e);
    return p;
}

/* ------------------------------------------------------------ what a partner publishes */

/* The canonical updates a sender's ledger publishes for a native file: one Kafka
 * record each (packed value, pg-type, pg-origin-force), on topic, partition 0. */
typedef struct s_feed {
    pg_consumer_record *recs;
    size_t n, cap;
    GPtrArray *owned; /* values and strings */
} s_feed;

static void s_feed_add(s_feed *f, const char *topic, const ProtobufCMessage *m, const char *type,
                       const char *force)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->recs = realloc(f->recs, f->cap * sizeof *f->recs);
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *v = g_malloc(len ? len : 1);
    protobuf_c_message_pack(m, v);
    g_ptr_array_add(f->owned, v);
    if (force) { /* the sender's changeset goes before the feed does */
        force = g_strdup(force);
        g_ptr_array_add(f->owned, (void *)force);
    }
    /* keyed by its id, as the gateway publishes it (docs/topics.md) */
    const char *id = m->descriptor == &polegate__pole__v1__entity_update__descriptor
                         ? ((const pg_entity_update *)m)->id
                     : m->descriptor == &polegate__pole__v1__link_update__descriptor
                         ? ((const pg_link_update *)m)->id
                         : NULL;
    char *key = id ? g_strdup(id) : NULL;
    if (key)
        g_ptr_array_add(f->owned, key);
    pg_consumer_record *r = &f->recs[f->n];
    *r = (pg_consumer_record){.topic = topic,
                              .partition = 0,
                              .offset = (int64_t)f->n,
                              .key = key,
                              .value = v,
                              .len = len,
                              .type = type,
                              .force = force};
    f->n++;
}

/* The first vehicle f carries, unpacked (the caller frees it). */
static pg_entity_update *s_vehicle_of(const s_feed *f)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->recs[i].type, "polegate.pole.v1.EntityUpdate"))
            continue;
        pg_entity_update *v =
            polegate__pole__v1__entity_update__unpack(NULL, f->recs[i].len, f->recs[i].value);
        if (v->kind == POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_VEHICLE)
            return v;
        polegate__pole__v1__entity_update__free_unpacked(v, NULL);
    }
    ck_abort_msg("the feed carries no vehicle");
    return NULL;
}

/* The bare DELETE a partner sends to withdraw u, at u's version (its strings u's). */
static pg_entity_update s_withdrawal_of(const pg_entity_update *u)
{
    pg_entity_update w = POLEGATE__POLE__V1__ENTITY_UPDATE__INIT;
    w.id = u->id;
    w.operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    w.version = u->version;
    w.kind = u->kind;
    w.origin = u->origin;
    w.modified_at = u->modified_at;
    return w;
}

typedef struct s_sender {
    const pg_adapter_ops *adapter;
    const char *topic;
    pg_store *store;
    pg_ledger *ledger;
    char dir[64];
    s_feed *feed;
    size_t limit; /* messages of the file to use (0: all) */
    size_t seen;
} s_sender;

static int s_send_one(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_sender *s = arg;
    (void)pos;
    if (s->limit && s->seen++ >= s->limit)
        return 0;
    pg_changeset *in = pg_changeset_new(), *out = pg_changeset_new();
    ck_assert_int_eq(s->adapter->decode(NULL, msg, len, in, e, sizeof e), 0);
    pg_store_txn *txn = pg_store_begin(s->store, 1, e, sizeof e);
    pg_ledger_result res;
    ck_assert_int_eq(pg_ledger_apply(s->ledger, txn, in, out, &res, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    for (size_t i = 0; i < out->count; i++) {
        const pg_change *c = &out->changes[i];
        if (c->type == PG_CHANGE_ENTITY)
            s_feed_add(s->feed, s->topic, &c->entity->base, "polegate.pole.v1.EntityUpdate",
                       c->entity->origin->force);
        else
            s_feed_add(s->feed, s->topic, &c->link->base, "polegate.pole.v1.LinkUpdate",
                       c->link->origin ? c->link->origin->force : NULL);
    }
    pg_changeset_destroy(&in);
    pg_changeset_destroy(&out);
    return 0;
}

/* The feed of the first `limit` messages of fixture path (0: all). */
static s_feed *s_feed_of(const pg_adapter_ops *adapter, const char *path, size_t limit,
                         const char *topic)
{
    s_feed *f = calloc(1, sizeof *f);
    f->owned = g_ptr_array_new_with_free_func(g_free);
    s_sender s = {.adapter = adapter, .topic = topic, .feed = f, .limit = limit};
    snprintf(s.dir, sizeof s.dir, "/tmp/pg-test-sender-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s.dir));
    s.store = pg_store_new(s.dir, 0, e, sizeof e);
    pg_store_set_durable(s.store, 0);
    s.ledger = pg_ledger_new(s.store, e, sizeof e);
    gchar *data;
    gsize len;
    ck_assert(g_file_get_contents(path, &data, &len, NULL));
    ck_assert_int_eq(adapter->split((const uint8_t *)data, len, s_send_one, &s), 0);
    g_free(data);
    pg_ledger_destroy(&s.ledger);
    pg_store_destroy(&s.store);
    nftw(s.dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return f;
}

static void s_feed_free(s_feed **p)
{
    g_ptr_array_free((*p)->owned, TRUE);
    free((*p)->recs);
    free(*p);
    *p = NULL;
}

/* ------------------------------------------------------------ the partner under test */

static pg_store *s_store_open(void)
{
    pg_store *st = pg_store_new(s_dir, 0, e, sizeof e);
    ck_assert_msg(st != NULL, "%s", e);
    pg_store_set_durable(st, 0);
    return st;
}

static pg_partner *s_partner_dir(pg_store *st, const pg_policy *pol, const char *force,
                                 const pg_adapter_ops *adapter, pg_audit *audit)
{
    pg_partner_opts o = {.force = force,
                         .adapter = adapter,
                         .policy = pol,
                         .store = st,
                         .audit = audit,
                         .now_ms = S_NOW_MS,
                         .delivery = {.transport = "dir", .endpoint = s_drop}};
    pg_partner *p = pg_partner_new(&o, e, sizeof e);
    ck_assert_msg(p != NULL, "%s", e);
    return p;
}

/* The usual set-up: ESX's first `limit` burglary messages (0: all) as MER's partner
 * feed, and MER's partner pipeline into the drop directory. */
typedef struct s_env {
    s_feed *f;
    pg_policy *pol;
    pg_store *st;
    pg_partner *p;
} s_env;

static s_env s_env_mer(size_t limit, pg_audit *audit)
{
    s_env v;
    v.f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), limit, ESX_TO_MER);
    v.pol = s_policy(s_policy_mer, "MER");
    v.st = s_store_open();
    v.p = s_partner_dir(v.st, v.pol, "MER", &pg_adapter_niche, audit);
    return v;
}

static void s_env_close(s_env *v)
{
    pg_partner_destroy(&v->p);
    pg_store_destroy(&v->st);
    pg_policy_destroy(&v->pol);
    s_feed_free(&v->f);
}

static void s_drain(pg_partner *p)
{
    for (int i = 0; i < 200 && pg_partner_pending(p); i++)
        ck_assert_int_ge(pg_partner_poll(p, 50, e, sizeof e), 0);
    ck_assert_uint_eq(pg_partner_pending(p), 0);
}

/* The drop directory's files, in name order, applied to a fresh model of adapter. */
static pg_rms_model *s_model_of_drop(const pg_adapter_ops *adapter, size_t *files)
{
    pg_rms_model *m = pg_rms_model_new(adapter);
    struct dirent **names;
    int n = scandir(s_drop, &names, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    *files = 0;
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", s_drop, names[i]->d_name);
            ck_assert_msg(pg_rms_model_apply_file(m, path, e, sizeof e) == 0, "%s: %s", path, e);
            (*files)++;
        }
        free(names[i]);
    }
    free(names);
    return m;
}

static void s_assert_equivalent(const pg_rms_model *a, const pg_rms_model *b)
{
    pg_buf diff = PG_BUF_INIT;
    size_t n = pg_rms_model_compare(a, b, NULL, &diff);
    ck_assert_msg(n == 0, "%zu differences:\n%s", n, diff.data ? (char *)diff.data : "");
    pg_buf_free(&diff);
}

/* Collects committable offsets. */
typedef struct s_offsets {
    int calls;
    int64_t next;
} s_offsets;

static int s_offset_cb(void *arg, const char *topic, int32_t partition, int64_t next)
{
    s_offsets *o = arg;
    ck_assert_int_eq(partition, 0);
    ck_assert_ptr_nonnull(topic);
    o->calls++;
    ck_assert_int_gt(next, o->next);
    o->next = next;
    return 0;
}

/* ------------------------------------------------------------ tests */

START_TEST(test_burglary_to_nx5_drop_dir)
{
    /* ESX's 7 UPSERTs, as ESX's ledger publishes them, reach MER's NX5 RMS in the
     * state nx5-burglary-import.xml describes. */
    s_env v = s_env_mer(7, NULL);
    s_feed *f = v.f;
    pg_partner *p = v.p;
    ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
    s_offsets off = {0};
    ck_assert_int_eq(pg_partner_committable(p, s_offset_cb, &off), 0);
    ck_assert_int_eq(off.calls, 0); /* nothing stored yet */
    s_drain(p);
    ck_assert_int_eq(pg_partner_committable(p, s_offset_cb, &off), 0);
    ck_assert_int_eq(off.calls, 1);
    ck_assert_int_eq(off.next, (int64_t)f->n);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.records, f->n);
    ck_assert_uint_eq(ps.accepted, f->n);
    ck_assert_uint_eq(ps.composed, 1); /* one NX5 document for the batch */
    ck_assert_uint_eq(ps.stored, 1);
    size_t files;
    pg_rms_model *got = s_model_of_drop(&pg_adapter_niche, &files);
    ck_assert_uint_eq(files, 1);
    pg_rms_model *want = pg_rms_model_new(&pg_adapter_niche);
    ck_assert_int_eq(pg_rms_model_apply_file(want, FIX("nx5-burglary-import.xml"), e, sizeof e), 0);
    s_assert_equivalent(got, want);
    pg_rms_model_destroy(&got);
    pg_rms_model_destroy(&want);
    s_env_close(&v);
}
END_TEST

START_TEST(test_batches_agree_with_one_at_a_time)
{
    /* MER's export into an ATX RMS: taken in one batch, or one record per batch, the
     * RMS ends in the same state (ATX records carry all their links either way). */
    s_feed *f = s_feed_of(&pg_adapter_niche, FIX("nx5-merseyside-export.xml"), 0, MER_TO_ESX);
    pg_policy *pol = s_policy(s_policy_esx, "ESX");
    pg_rms_model *models[2];
    size_t composed[2];
    for (int round = 0; round < 2; round++) {
        s_teardown();
        s_setup();
        pg_store *st = s_store_open();
        pg_partner *p = s_partner_dir(st, pol, "ESX", &pg_adapter_athena, NULL);
        if (round == 0) {
            ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
        } else {
            for (size_t i = 0; i < f->n; i++)
                ck_assert_msg(pg_partner_take(p, &f->recs[i], 1, e, sizeof e) == 0, "%s", e);
        }
        s_drain(p);
        pg_partner_stats ps;
        pg_partner_get_stats(p, &ps);
        composed[round] = ps.composed;
        ck_assert_uint_eq(ps.stored, ps.composed);
        size_t files;
        models[round] = s_model_of_drop(&pg_adapter_athena, &files);
        ck_assert_uint_eq(files, ps.composed);
        pg_partner_destroy(&p);
        pg_store_destroy(&st);
    }
    ck_assert_uint_eq(pg_rms_model_records(models[0]), 5);
    s_assert_equivalent(models[0], models[1]);
    /* one at a time, a record is sent again for each link that comes after it */
    ck_assert_uint_gt(composed[1], composed[0]);
    ck_assert_uint_eq(pg_rms_model_stale(models[1]), 0);
    pg_rms_model_destroy(&models[0]);
    pg_rms_model_destroy(&models[1]);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

/* ------------------------------------------------------------ issue 11: what a partner holds */

/* The feed a sender's ledger publishes for the native messages msgs (NULL-ended), one
 * message at a time, as s_feed_of does for a file. */
static s_feed *s_feed_msgs(const pg_adapter_ops *adapter, const char *const *msgs,
                           const char *topic)
{
    s_feed *f = calloc(1, sizeof *f);
    f->owned = g_ptr_array_new_with_free_func(g_free);
    s_sender s = {.adapter = adapter, .topic = topic, .feed = f};
    snprintf(s.dir, sizeof s.dir, "/tmp/pg-test-sender-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s.dir));
    s.store = pg_store_new(s.dir, 0, e, sizeof e);
    pg_store_set_durable(s.store, 0);
    s.ledger = pg_ledger_new(s.store, e, sizeof e);
    for (size_t i = 0; msgs[i]; i++)
        s_send_one(&s, (const uint8_t *)msgs[i], strlen(msgs[i]), i);
    pg_ledger_destroy(&s.ledger);
    pg_store_destroy(&s.store);
    nftw(s.dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    return f;
}

#define S_ATX_HEAD(mid)                                                                            \
    "{\"header\":{\"schema\":\"atx/2\",\"messageId\":\"" mid "\",\"sentAt\":"                      \
    "\"2026-01-05T10:00:00+00:00\",\"system\":\"ATHENA\",\"orgUnit\":\"ESX/CID\"},"
#define S_ATX_MARK                                                                                 \
    "\"marking\":{\"classification\":\"OFFICIAL\",\"handling\":\"P\",\"caveat\":null}"
#define S_ATX_RET ",\"retention\":{\"mopiGroup\":2,\"reviewDate\":\"2032-01-05\"}"

static const char s_atx_loc[] = S_ATX_HEAD(
    "5e1d0000-0000-4000-8000-000000000b01") "\"record\":{\"type\":\"LOCATION\",\"id\":"
                                            "\"L0000000901\",\"revision\":1,\"action\":\"UPSERT\","
                                            "\"modifiedAt\":\"2026-01-05T09:00:00+00:"
                                            "00\"," S_ATX_MARK S_ATX_RET
                                            ",\"body\":{\"street\":\"1 Test "
                                            "Street\"}},\"links\":[]}";

/* The UUID of ESX's ATX record type/id. */
static void s_atx_uuid(const char *type, const char *id, char out[PG_UUID_STR_SIZE])
{
    ck_assert_int_eq(pg_identity_entity("ESX", "ATHENA", type, id, out), 0);
}

/* MER's RMS holds, after the feed in one batch and again one record per batch, the
 * records and links counted; a record of uuid gone is none of them. */
static void s_mer_holds(s_feed *f, size_t records, size_t links, const char *gone)
{
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    for (int round = 0; round < 2; round++) {
        s_teardown();
        s_setup();
        pg_store *st = s_store_open();
        pg_partner *p = s_partner_dir(st, pol, "MER", &pg_adapter_niche, NULL);
        if (round == 0)
            ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
        for (size_t i = 0; round == 1 && i < f->n; i++)
            ck_assert_msg(pg_partner_take(p, &f->recs[i], 1, e, sizeof e) == 0, "%s", e);
        s_drain(p);
        size_t files;
        pg_rms_model *got = s_model_of_drop(&pg_adapter_niche, &files);
        char gid[17]; /* the NX5 GID: the UUID's first 16 hex digits (docs/delivery.md) */
        size_t k = 0;
        for (const char *c = gone; *c && k < 16; c++)
            if (*c != '-')
                gid[k++] = (char)g_ascii_toupper(*c);
        gid[k] = 0;
        ck_assert_msg(pg_rms_model_records(got) == records && pg_rms_model_links(got) == links &&
                          !pg_rms_model_get(got, gid),
                      "round %d: %zu records, %zu links, %s %s", round, pg_rms_model_records(got),
                      pg_rms_model_links(got), gid, pg_rms_model_get(got, gid) ? "held" : "gone");
        pg_rms_model_destroy(&got);
        pg_partner_destroy(&p);
        pg_store_destroy(&st);
    }
    pg_policy_destroy(&pol);
}

START_TEST(test_atx_take_of_many_records)
{
    /* An ATX RMS is sent one message per record a take touches, each found again by
     * hash: two revisions of 300 persons in one take, then a third in another, are 600
     * messages for 300 records, none lost, none sent twice in a take, none stale. */
    enum { N = 300 };
    char(*json)[640] = calloc(3 * N, sizeof *json);
    const char **msgs = calloc(3 * N + 1, sizeof *msgs);
    static const char fmt[] = S_ATX_HEAD(
        "5e1d0000-0000-4000-8000-%012d") "\"record\":{\"type\":\"PERSON\","
                                         "\"id\":\"P%010d\",\"revision\":%d,\"action\":\"UPSERT\","
                                         "\"modifiedAt\":\"2026-01-05T09:%02d:00+00:"
                                         "00\"," S_ATX_MARK S_ATX_RET
                                         ",\"body\":{\"surname\":\"Many%d\"}},\"links\":[]}";
    for (int i = 0; i < 3 * N; i++) {
        snprintf(json[i], sizeof json[i], fmt, i, 2000 + i % N, 1 + i / N, i / N, i);
        msgs[i] = json[i];
    }
    s_feed *f = s_feed_msgs(&pg_adapter_athena, msgs, ESX_TO_MER);
    ck_assert_uint_eq(f->n, 3 * N);
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    pg_store *st = s_store_open();
    pg_partner *p = s_partner_dir(st, pol, "MER", &pg_adapter_athena, NULL);
    ck_assert_msg(pg_partner_take(p, f->recs, 2 * N, e, sizeof e) == 0, "%s", e);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.composed, N);
    ck_assert_msg(pg_partner_take(p, f->recs + 2 * N, N, e, sizeof e) == 0, "%s", e);
    s_drain(p);
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.accepted, 3 * N);
    ck_assert_uint_eq(ps.composed, 2 * N);
    ck_assert_uint_eq(ps.stored, 2 * N);
    size_t files;
    pg_rms_model *got = s_model_of_drop(&pg_adapter_athena, &files);
    ck_assert_uint_eq(files, 2 * N);
    ck_assert_uint_eq(pg_rms_model_records(got), N);
    ck_assert_uint_eq(pg_rms_model_stale(got), 0);
    pg_rms_model_destroy(&got);
    pg_partner_destroy(&p);
    pg_store_destroy(&st);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
    free(msgs);
    free(json);
}
END_TEST

START_TEST(test_created_then_deleted_in_one_batch)
{
    /* Issue 11, 1 and 5: a person with a link, deleted a moment later with an earlier
     * modifiedAt (another application server's clock). Taken in one batch, the NX5 RMS
     * is sent the person's Add and then its Delete (not the Add alone), and the link
     * goes with it. */
    static const char *const msgs[] = {
        s_atx_loc,
        S_ATX_HEAD(
            "5e1d0000-0000-4000-8000-000000000b02") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                    "\"P0000000901\",\"revision\":1,\"action\":"
                                                    "\"UPSERT\","
                                                    "\"modifiedAt\":\"2026-01-05T10:00:00+00:"
                                                    "00\"," S_ATX_MARK S_ATX_RET
                                                    ",\"body\":{\"surname\":\"Short\"}},\"links\":["
                                                    "{\"target\":{\"type\":\"LOCATION\","
                                                    "\"id\":\"L0000000901\"},\"role\":\"HOME_"
                                                    "ADDRESS\",\"validFrom\":null,\"validTo\":null}"
                                                    "]}",
        S_ATX_HEAD("5e1d0000-0000-4000-8000-000000000b03") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                           "\"P0000000901\",\"revision\":2,"
                                                           "\"action\":\"DELETE\","
                                                           "\"modifiedAt\":\"2026-01-05T08:59:00+"
                                                           "00:00\"," S_ATX_MARK "}}",
        NULL};
    s_feed *f = s_feed_msgs(&pg_adapter_athena, msgs, ESX_TO_MER);
    char person[PG_UUID_STR_SIZE];
    s_atx_uuid("PERSON", "P0000000901", person);
    s_mer_holds(f, 1, 0, person);
    s_feed_free(&f);
}
END_TEST

START_TEST(test_merged_away_withdrawn_whatever_the_order)
{
    /* Issue 11, 2: B absorbs A. The survivor's merge comes on its own partition, and can
     * be read before A's last update, which its partition still holds before A's
     * DELETE. A must be gone from the RMS in every order: its DELETE always goes,
     * never folded into the survivor's merge. */
    static const char *const msgs[] = {
        S_ATX_HEAD("5e1d0000-0000-4000-8000-000000000c01") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                           "\"P0000000911\",\"revision\":1,"
                                                           "\"action\":\"UPSERT\","
                                                           "\"modifiedAt\":\"2026-01-05T09:00:00+"
                                                           "00:00\"," S_ATX_MARK S_ATX_RET
                                                           ",\"body\":{\"surname\":\"Away\"}},"
                                                           "\"links\":[]}",
        S_ATX_HEAD("5e1d0000-0000-4000-8000-000000000c02") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                           "\"P0000000912\",\"revision\":1,"
                                                           "\"action\":\"UPSERT\","
                                                           "\"modifiedAt\":\"2026-01-05T09:01:00+"
                                                           "00:00\"," S_ATX_MARK S_ATX_RET
                                                           ",\"body\":{\"surname\":\"Survivor\"}},"
                                                           "\"links\":[]}",
        S_ATX_HEAD(
            "5e1d0000-0000-4000-8000-000000000c03") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                    "\"P0000000911\",\"revision\":2,\"action\":"
                                                    "\"UPSERT\","
                                                    "\"modifiedAt\":\"2026-01-05T09:02:00+00:"
                                                    "00\"," S_ATX_MARK S_ATX_RET
                                                    ",\"body\":{\"surname\":\"Away\","
                                                    "\"occupation\":\"late\"}},\"links\":[]}",
        S_ATX_HEAD("5e1d0000-0000-4000-8000-000000000c04") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                           "\"P0000000912\",\"revision\":2,"
                                                           "\"action\":\"UPSERT\","
                                                           "\"modifiedAt\":\"2026-01-05T09:03:00+"
                                                           "00:00\"," S_ATX_MARK S_ATX_RET
                                                           ",\"body\":{\"surname\":\"Survivor\"},"
                                                           "\"mergedFrom\":[\"P0000000911\"]},"
                                                           "\"links\":[]}",
        NULL};
    s_feed *f = s_feed_msgs(&pg_adapter_athena, msgs, ESX_TO_MER);
    ck_assert_uint_eq(f->n, 5); /* A1, B1, A2, B2 (merge), A's DELETE */
    /* the survivor's merge read before A's last update */
    pg_consumer_record b2 = f->recs[3];
    f->recs[3] = f->recs[2];
    f->recs[2] = b2;
    char away[PG_UUID_STR_SIZE];
    s_atx_uuid("PERSON", "P0000000911", away);
    s_mer_holds(f, 1, 0, away);
    s_feed_free(&f);
}
END_TEST

START_TEST(test_link_survives_an_older_withdrawal_read_later)
{
    /* Issue 11: partitions are read in any order. ESX withdrew the person (SECRET for a
     * while), shared it again, then stated its link to a vehicle: MER reads the vehicle
     * and the link first, then the person's partition with the old withdrawal. The
     * withdrawal must not take the later link with it, and the RMS, which dropped the
     * person's links with its Delete, gets the link again when the person comes back. */
    static const char *const msgs[] = {
        S_ATX_HEAD("5e1d0000-0000-4000-8000-000000000d01") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                           "\"P0000000921\",\"revision\":1,"
                                                           "\"action\":\"UPSERT\","
                                                           "\"modifiedAt\":\"2026-01-05T09:00:00+"
                                                           "00:00\"," S_ATX_MARK S_ATX_RET
                                                           ",\"body\":{\"surname\":\"Keeper\"}},"
                                                           "\"links\":[]}",
        S_ATX_HEAD(
            "5e1d0000-0000-4000-8000-000000000d02") "\"record\":{\"type\":\"VEHICLE\",\"id\":"
                                                    "\"V0000000921\",\"revision\":1,\"action\":"
                                                    "\"UPSERT\","
                                                    "\"modifiedAt\":\"2026-01-05T09:01:00+00:"
                                                    "00\"," S_ATX_MARK S_ATX_RET
                                                    ",\"body\":{\"make\":\"FORD\"}},\"links\":[]}",
        S_ATX_HEAD(
            "5e1d0000-0000-4000-8000-000000000d03") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                    "\"P0000000921\",\"revision\":3,\"action\":"
                                                    "\"UPSERT\","
                                                    "\"modifiedAt\":\"2026-01-05T09:03:00+00:"
                                                    "00\"," S_ATX_MARK S_ATX_RET
                                                    ",\"body\":{\"surname\":\"Keeper\"}},\"links\":"
                                                    "[{\"target\":{\"type\":\"VEHICLE\","
                                                    "\"id\":\"V0000000921\"},\"role\":\"KEEPER\","
                                                    "\"validFrom\":null,\"validTo\":null}]}",
        NULL};
    s_feed *f = s_feed_msgs(&pg_adapter_athena, msgs, ESX_TO_MER);
    ck_assert_uint_eq(f->n, 4); /* P1, V1, P3, the link */
    pg_entity_update *p1 =
        polegate__pole__v1__entity_update__unpack(NULL, f->recs[0].len, f->recs[0].value);
    pg_arena *a = pg_arena_new(0);
    s_feed_add(f, ESX_TO_MER, &pg_policy_withdrawal_entity(a, p1, 2)->base,
               "polegate.pole.v1.EntityUpdate", "ESX");
    /* read as: V1, the link, P1, P's withdrawal, P3 */
    pg_consumer_record r[5] = {f->recs[1], f->recs[3], f->recs[0], f->recs[4], f->recs[2]};
    memcpy(f->recs, r, sizeof r);
    s_mer_holds(f, 2, 1, "00000000-0000-0000-0000-000000000000");
    pg_arena_destroy(&a);
    polegate__pole__v1__entity_update__free_unpacked(p1, NULL);
    s_feed_free(&f);
}
END_TEST

START_TEST(test_nx5_delete_of_handling_c_reaches_atx)
{
    /* Issue 11, 4: an NX5 Delete has no children, so no Caveat, and a Property Delete
     * cannot say weapon or item. The ATX RMS gets each DELETE with the caveat and type
     * the gateway last held; and a bare withdrawal (no marking, no time) goes too. */
    static const char *const msgs[] = {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<NX5Exchange xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"MER\" Batch=\"T-1\" "
        "Created=\"05/01/2026 10:00:00\">"
        "<Entity Kind=\"IntelReport\" GID=\"1C0000000000C001\" Rev=\"1\" Op=\"Add\" "
        "Modified=\"05/01/2026 09:00:00\" GPMS=\"O\" Handling=\"C\" MoPI=\"2\" "
        "Review=\"05/01/2032\">"
        "<Caveat>Not to be disclosed to the subject.</Caveat><Reference>MER/INT/1</Reference>"
        "</Entity>"
        "<Entity Kind=\"Property\" GID=\"1C0000000000C002\" Rev=\"1\" Op=\"Add\" "
        "Modified=\"05/01/2026 09:00:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"2\" "
        "Review=\"05/01/2032\">"
        "<Category>WPN-KN</Category><Description>Lock knife</Description></Entity>"
        "<Entity Kind=\"Vehicle\" GID=\"1C0000000000C003\" Rev=\"1\" Op=\"Add\" "
        "Modified=\"05/01/2026 09:00:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"2\" "
        "Review=\"05/01/2032\">"
        "<Make>FORD</Make></Entity></NX5Exchange>\n",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<NX5Exchange xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"MER\" Batch=\"T-2\" "
        "Created=\"05/01/2026 10:00:00\">"
        "<Entity Kind=\"IntelReport\" GID=\"1C0000000000C001\" Rev=\"2\" Op=\"Delete\" "
        "Modified=\"05/01/2026 08:00:00\" GPMS=\"O\" Handling=\"C\" MoPI=\"2\" "
        "Review=\"05/01/2032\"/>"
        "<Entity Kind=\"Property\" GID=\"1C0000000000C002\" Rev=\"2\" Op=\"Delete\" "
        "Modified=\"05/01/2026 10:00:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"2\" "
        "Review=\"05/01/2032\"/>"
        "</NX5Exchange>\n",
        NULL};
    s_feed *f = s_feed_msgs(&pg_adapter_niche, msgs, MER_TO_ESX);
    ck_assert_uint_eq(f->n, 5);
    /* MER's router withdraws the vehicle (a policy change): the bare DELETE it makes */
    pg_entity_update *v =
        polegate__pole__v1__entity_update__unpack(NULL, f->recs[2].len, f->recs[2].value);
    ck_assert_int_eq(v->kind, POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_VEHICLE);
    pg_arena *a = pg_arena_new(0);
    pg_entity_update *w = pg_policy_withdrawal_entity(a, v, v->version + 1);
    ck_assert_ptr_null(w->marking);
    ck_assert_ptr_null(w->modified_at);
    s_feed_add(f, MER_TO_ESX, &w->base, "polegate.pole.v1.EntityUpdate", "MER");
    pg_policy *pol = s_policy(s_policy_esx, "ESX");
    pg_store *st = s_store_open();
    pg_partner *p = s_partner_dir(st, pol, "ESX", &pg_adapter_athena, NULL);
    for (size_t i = 0; i < f->n; i++)
        ck_assert_msg(pg_partner_take(p, &f->recs[i], 1, e, sizeof e) == 0, "%s", e);
    s_drain(p);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    pg_compose_stats cs;
    pg_partner_get_compose_stats(p, &cs);
    ck_assert_uint_eq(cs.refused, 0);
    ck_assert_uint_eq(ps.rms_rejected, 0);
    ck_assert_uint_eq(ps.composed, 6); /* three records, three DELETEs */
    size_t files;
    pg_rms_model *got = s_model_of_drop(&pg_adapter_athena, &files);
    ck_assert_uint_eq(pg_rms_model_records(got), 0);
    pg_rms_model_destroy(&got);
    pg_partner_destroy(&p);
    pg_store_destroy(&st);
    pg_policy_destroy(&pol);
    pg_arena_destroy(&a);
    polegate__pole__v1__entity_update__free_unpacked(v, NULL);
    s_feed_free(&f);
}
END_TEST

START_TEST(test_duplicates_and_stale_dropped)
{
    s_env v = s_env_mer(0, NULL);
    s_feed *f = v.f;
    pg_partner *p = v.p;
    ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
    s_drain(p);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    uint64_t composed = ps.composed;
    /* Kafka delivers the same records again (a crash before the offset commit) */
    ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
    s_drain(p);
    pg_partner_get_stats(p, &ps);
    /* the telephone and its USES link, deleted later in the feed: their first
     * versions are now stale, every other record a duplicate */
    ck_assert_uint_eq(ps.duplicates, f->n - 2);
    ck_assert_uint_eq(ps.stale, 2);
    ck_assert_uint_eq(ps.composed, composed);
    /* an older version of the person than the one delivered */
    pg_changeset *cs = pg_changeset_new();
    size_t person = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->recs[i].type, "polegate.pole.v1.EntityUpdate"))
            continue;
        pg_entity_update *u =
            polegate__pole__v1__entity_update__unpack(NULL, f->recs[i].len, f->recs[i].value);
        if (u->kind == POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON && !person) {
            person = i + 1;
            u->version--;
            s_feed_add(f, ESX_TO_MER, &u->base, "polegate.pole.v1.EntityUpdate", "ESX");
        }
        polegate__pole__v1__entity_update__free_unpacked(u, NULL);
    }
    ck_assert_uint_gt(person, 0);
    ck_assert_int_eq(pg_partner_take(p, &f->recs[f->n - 1], 1, e, sizeof e), 0);
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.stale, 3);
    ck_assert_uint_eq(ps.composed, composed);
    pg_changeset_destroy(&cs);
    s_env_close(&v);
}
END_TEST

/* The NX5 GID the id map in st gave canonical record uuid. */
static void s_nx5_gid_of(pg_store *st, const char *uuid, char *gid, size_t size)
{
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_idstore_config icfg = {.format = "nx5"};
    pg_idstore *idmap = pg_idstore_new(st, &icfg, e, sizeof e);
    ck_assert_msg(txn && idmap, "%s", e);
    ck_assert_int_eq(pg_idstore_lookup(idmap, txn, uuid, gid, size, e, sizeof e), 0);
    pg_store_abort(&txn);
    pg_idstore_destroy(&idmap);
}

START_TEST(test_withdrawal_at_equal_version)
{
    /* ESX withdraws the vehicle (a policy change): a bare DELETE at the version MER
     * holds. At an equal version a DELETE wins; the NX5 Delete states the retention
     * of the record last received. */
    s_env env = s_env_mer(7, NULL);
    s_feed *f = env.f;
    pg_partner *p = env.p;
    pg_store *st = env.st;
    ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
    pg_entity_update *v = s_vehicle_of(f);
    pg_entity_update w = s_withdrawal_of(v);
    s_feed_add(f, ESX_TO_MER, &w.base, "polegate.pole.v1.EntityUpdate", "ESX");
    s_feed_add(f, ESX_TO_MER, &w.base, "polegate.pole.v1.EntityUpdate", "ESX");
    ck_assert_int_eq(pg_partner_take(p, &f->recs[f->n - 2], 2, e, sizeof e), 0);
    s_drain(p);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.duplicates, 1); /* the second one */
    ck_assert_uint_eq(ps.composed, 2);
    size_t files;
    pg_rms_model *got = s_model_of_drop(&pg_adapter_niche, &files);
    ck_assert_uint_eq(pg_rms_model_records(got), 6);
    char gid[32];
    s_nx5_gid_of(st, v->id, gid, sizeof gid);
    ck_assert_ptr_null(pg_rms_model_get(got, gid));
    ck_assert_uint_eq(pg_rms_model_revision(got, gid), v->version + 1);
    pg_rms_model_destroy(&got);
    polegate__pole__v1__entity_update__free_unpacked(v, NULL);
    s_env_close(&env);
}
END_TEST

/* Counts audit events by action. */
typedef struct s_counts {
    int receive, reject, erase, with_partner;
} s_counts;

static int s_count_line(void *ud, const char *line, size_t len)
{
    s_counts *c = ud;
    char *l = g_strndup(line, len);
    if (strstr(l, "\"action\":\"receive\""))
        c->receive++;
    if (strstr(l, "\"action\":\"reject\""))
        c->reject++;
    if (strstr(l, "\"action\":\"erase\""))
        c->erase++;
    if (strstr(l, "\"partner\":\"ESX\",\"agreement\":\"ISA-TEST\""))
        c->with_partner++;
    g_free(l);
    return 0;
}

/* Attack: fill the audit log's disk so that partner records reach our RMS unlogged.
 * Fail closed: the take fails (nothing composed, nothing in the outbox, no offsets to
 * commit) and the same records are taken once the log has room; every receive event
 * names the topic the record came from. */
START_TEST(test_audit_fails_closed)
{
    pg_audit_options ao = {.write_fn = s_disk_fault_write};
    pg_audit *audit = pg_audit_new(s_audit, &ao, e, sizeof e);
    ck_assert_msg(audit != NULL, "%s", e);
    s_env v = s_env_mer(3, audit);
    s_disk_fault = 1;
    ck_assert_int_eq(pg_partner_take(v.p, v.f->recs, v.f->n, e, sizeof e), PG_EIO);
    ck_assert_msg(strstr(e, "No space left on device"), "%s", e);
    pg_partner_stats ps;
    pg_partner_get_stats(v.p, &ps);
    ck_assert_uint_eq(ps.composed, 0);
    ck_assert_uint_eq(ps.audit_failures, 1);
    ck_assert_uint_eq(pg_partner_pending(v.p), 0);
    ck_assert_uint_eq(pg_audit_seq(audit), 0);
    s_disk_fault = 0;
    ck_assert_msg(pg_partner_take(v.p, v.f->recs, v.f->n, e, sizeof e) == 0, "%s", e);
    pg_partner_get_stats(v.p, &ps);
    ck_assert_uint_gt(ps.composed, 0);
    ck_assert_uint_eq(ps.duplicates, 0); /* the failed take left no state behind */
    ck_assert_uint_gt(pg_audit_seq(audit), 0);
    s_env_close(&v);
    pg_audit_destroy(&audit);
    s_counts c = {0};
    ck_assert_int_eq(pg_audit_query(s_audit, NULL, s_count_line, &c, e, sizeof e), 0);
    ck_assert_int_gt(c.receive, 0);
    gchar *text = NULL;
    ck_assert(g_file_get_contents(s_audit, &text, NULL, NULL));
    ck_assert_msg(strstr(text, "\"party\":\"partner:" ESX_TO_MER "\""), "%s", text);
    g_free(text);
}
END_TEST

START_TEST(test_inbound_checks_and_audit)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    size_t good = f->n;
    /* the same person on a topic of no partner, and on the partner's topic claiming
     * another force (KNT) and our own force (MER) */
    pg_entity_update *u =
        polegate__pole__v1__entity_update__unpack(NULL, f->recs[1].len, f->recs[1].value);
    ck_assert_ptr_nonnull(u);
    s_feed_add(f, "polegate.knt.mer.pole.v1", &u->base, "polegate.pole.v1.EntityUpdate", "ESX");
    char *unpacked_force = u->origin->force; /* protobuf-c's, freed with u */
    u->origin->force = "KNT";
    s_feed_add(f, ESX_TO_MER, &u->base, "polegate.pole.v1.EntityUpdate", "KNT");
    u->origin->force = "MER";
    char *esx_id = u->id, mer_id[PG_UUID_STR_SIZE]; /* a real MER id: our own record */
    ck_assert_int_eq(pg_identity_entity("MER", u->origin->system, u->origin->native_type,
                                        u->origin->native_id, mer_id),
                     0);
    u->id = mer_id;
    s_feed_add(f, ESX_TO_MER, &u->base, "polegate.pole.v1.EntityUpdate", "MER");
    u->id = esx_id;
    u->origin->force = "ESX";
    /* not what its pg-type says; a tombstone; a type from the future */
    s_feed_add(f, ESX_TO_MER, &u->base, "polegate.pole.v1.LinkUpdate", "ESX");
    u->origin->force = unpacked_force;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);
    f->recs[f->n - 1].value = (const uint8_t *)"\xff\xff\xff";
    f->recs[f->n - 1].len = 3;
    Polegate__Pole__V1__Date d = POLEGATE__POLE__V1__DATE__INIT;
    s_feed_add(f, ESX_TO_MER, &d.base, "polegate.pole.v1.EntityUpdate", "ESX");
    f->recs[f->n - 1].value = NULL; /* tombstone */
    f->recs[f->n - 1].len = 0;
    s_feed_add(f, ESX_TO_MER, &d.base, "polegate.pole.v2.Thing", "ESX");

    pg_policy *pol = s_policy(s_policy_mer, "MER");
    pg_store *st = s_store_open();
    pg_audit *audit = pg_audit_new(s_audit, NULL, e, sizeof e);
    ck_assert_msg(audit != NULL, "%s", e);
    pg_partner *p = s_partner_dir(st, pol, "MER", &pg_adapter_niche, audit);
    ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
    s_drain(p);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.records, f->n);
    ck_assert_uint_eq(ps.accepted, good);
    /* unknown topic, KNT's id, not a LinkUpdate, a type from the future */
    ck_assert_uint_eq(ps.rejected, 4);
    ck_assert_uint_eq(ps.own, 1);
    ck_assert_uint_eq(ps.skipped, 1);
    pg_partner_destroy(&p);
    pg_audit_destroy(&audit);
    s_counts c = {0};
    ck_assert_int_eq(pg_audit_query(s_audit, NULL, s_count_line, &c, e, sizeof e), 0);
    ck_assert_int_eq(c.reject, 5); /* and our own, audited, not dropped silently */
    ck_assert_int_eq(c.erase, 1);  /* the telephone's DELETE */
    ck_assert_int_eq(c.receive, (int)good - 1);
    ck_assert_int_eq(c.with_partner, (int)good);
    pg_audit_verify_result vr;
    ck_assert_int_eq(pg_audit_verify(s_audit, NULL, &vr, e, sizeof e), 0);
    pg_store_destroy(&st);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

/* One ESX person, as ESX's gateway publishes it (id from its origin), changed by f. */
static pg_entity_update *s_person_of(s_feed *f, size_t i)
{
    pg_entity_update *u =
        polegate__pole__v1__entity_update__unpack(NULL, f->recs[i].len, f->recs[i].value);
    ck_assert_ptr_nonnull(u);
    return u;
}

typedef struct s_partner_dls {
    int n, with_ref;
    char reason[512]; /* the last one's */
} s_partner_dls;

static int s_count_partner_dl(void *ud, const pg_dlq_entry *de)
{
    s_partner_dls *c = ud;
    if (de->kind != PG_DLQ_PARTNER)
        return 0;
    c->n++;
    snprintf(c->reason, sizeof c->reason, "%s", de->reason);
    c->with_ref += strstr(de->ref, ESX_TO_MER " [0] @") && !strcmp(de->origin, "ESX") &&
                   de->len > 0 && *de->reason;
    return 0;
}

/* MER's partner pipeline (Niche drop directory, an audit log at s_audit) and what it
 * uses, after it took f; its stats then. */
typedef struct s_took {
    pg_policy *pol;
    pg_store *st;
    pg_audit *audit;
    pg_partner *p;
    pg_partner_stats ps;
} s_took;

static s_took s_mer_took(s_feed *f)
{
    s_took t = {.pol = s_policy(s_policy_mer, "MER"), .st = s_store_open()};
    t.audit = pg_audit_new(s_audit, NULL, e, sizeof e);
    ck_assert_msg(t.audit != NULL, "%s", e);
    t.p = s_partner_dir(t.st, t.pol, "MER", &pg_adapter_niche, t.audit);
    ck_assert_msg(pg_partner_take(t.p, f->recs, f->n, e, sizeof e) == 0, "%s", e);
    s_drain(t.p);
    pg_partner_get_stats(t.p, &t.ps);
    return t;
}

/* What is still open of t, closed (the pipeline first: it settles into the others). */
static void s_took_close(s_took *t)
{
    pg_partner_destroy(&t->p);
    pg_audit_destroy(&t->audit);
    pg_store_destroy(&t->st);
    pg_policy_destroy(&t->pol);
}

/* f taken by MER's partner (s_mer_took): its stats, and its partner dead letters
 * counted into dls. */
static pg_partner_stats s_take_audited(s_feed *f, s_partner_dls *dls)
{
    s_took t = s_mer_took(f);
    pg_partner_destroy(&t.p);
    pg_dlq *dlq = pg_dlq_new(t.st, NULL, e, sizeof e);
    ck_assert_msg(dlq != NULL, "%s", e);
    pg_store_txn *txn = pg_store_begin(t.st, 0, e, sizeof e);
    ck_assert_int_eq(pg_dlq_each(dlq, txn, s_count_partner_dl, dls, e, sizeof e), 0);
    pg_store_abort(&txn);
    pg_dlq_destroy(&dlq);
    s_took_close(&t);
    return t.ps;
}

static int s_audit_count(const char *outcome);

/* Attacks by a partner on records that are not its own: an update carrying another
 * force's entity id under its own origin, the same as a DELETE at version 1000, a
 * header naming one force and a value another, a version of 2^64-1, an agreement that
 * is not the partner's, a classification above the ceiling or none known (negative),
 * a record keyed as another's (found by attack: the key was never compared).
 * Each is refused, audited as rejected with the rule, and
 * changes nothing: the real record's next version is still taken. */
START_TEST(test_partner_cannot_touch_another_partners_record)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    size_t good = f->n;
    pg_entity_update *u = s_person_of(f, 1);
    char *real_id = u->id, *real_force = u->origin->force;
    uint64_t real_version = u->version;
    /* KNT's record, reached by its id from ESX's topic, origin ESX */
    char knt_id[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_identity_entity("KNT", "ATHENA", "PERSON", "P0000000042", knt_id), 0);
    u->id = knt_id;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_DELETE;
    u->version = 1000;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->id = real_id;
    u->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
    /* the header says KNT, the value ESX */
    u->version = real_version + 1;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "KNT");
    /* a version no RMS can hold */
    u->version = UINT64_MAX;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    /* another agreement than the partner's */
    u->version = real_version + 2;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    f->recs[f->n - 1].agreement = "ISA-SOMETHING-ELSE";
    /* above the ceiling we accept from this partner (OFFICIAL-SENSITIVE by default) */
    pg_marking *real_marking = u->marking, secret = *u->marking;
    secret.classification = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_SECRET;
    u->marking = &secret;
    u->version = real_version + 3;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    /* a classification no enum value names, below every ceiling as an int (protobuf-c
     * keeps unknown enum values as they came) */
    secret.classification = -1;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    secret.classification = INT32_MIN;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->marking = real_marking;
    /* an id that is not a UUID (once: the id map failed on it, retried for ever, and
     * stopped all partner delivery) */
    u->id = "not-a-uuid";
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->id = real_id;
    /* its own record keyed as KNT's (compaction keeps the latest per key: it would drop
     * KNT's record for ever) */
    u->version = real_version + 3;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    f->recs[f->n - 1].key = knt_id;
    size_t attacks = 10;
    /* then the real next version, properly */
    u->version = real_version + 4;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    f->recs[f->n - 1].agreement = "ISA-TEST";
    u->origin->force = real_force;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);

    s_partner_dls c = {0};
    pg_partner_stats ps = s_take_audited(f, &c);
    ck_assert_uint_eq(ps.rejected, attacks);
    ck_assert_uint_eq(ps.accepted, good + 1); /* the feed and the real next version */
    ck_assert_uint_eq(ps.stale, 0);
    /* each refused record is a partner dead letter: topic, partition, offset, origin,
     * rule, bytes; the consumer moved on past them */
    ck_assert_int_eq(c.n, (int)attacks);
    ck_assert_int_eq(c.with_ref, (int)attacks);
    gchar *text = NULL;
    ck_assert(g_file_get_contents(s_audit, &text, NULL, NULL));
    const char *outcomes[] = {"PG_EINVALID:identity", "PG_EINVALID:header", "PG_EINVALID:version",
                              "PG_EPOLICY:agreement", "PG_EINVALID:key"};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
        ck_assert_msg(strstr(text, outcomes[i]), "no %s in the audit log", outcomes[i]);
    ck_assert_ptr_null(strstr(text, "\"version\":1000,\"outcome\":\"ok\""));
    g_free(text);
    ck_assert_int_eq(s_audit_count("PG_EPOLICY:classification"), 3);
    s_feed_free(&f);
}
END_TEST

/* How many events of the audit log at s_audit have this outcome. */
static int s_audit_count(const char *outcome)
{
    gchar *text = NULL;
    ck_assert(g_file_get_contents(s_audit, &text, NULL, NULL));
    int n = 0;
    for (const char *at = text; (at = strstr(at, outcome)); at++)
        n++;
    g_free(text);
    return n;
}

/* Headers the checks cannot read. A header too long for the consumer to keep comes as
 * absent plus its name in overlong: a pg-agreement of 128 bytes or more naming no
 * agreement of ours was once taken for no header at all, and its check skipped. A
 * record whose pg-type is missing, too long to keep, or none this gateway knows cannot
 * be checked: it was once skipped with a log line only, out of sight of `dlq` and of
 * the audit log. Each is refused as a bad header, a partner dead letter (topic,
 * partition, offset, origin, the rule), audited; the consumer moves on and the real
 * next version is still taken. */
START_TEST(test_bad_headers_are_dead_letters)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    size_t good = f->n;
    pg_entity_update *u = s_person_of(f, 1);
    uint64_t real_version = u->version;
    u->version = real_version + 1;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    f->recs[f->n - 1].agreement = NULL;
    f->recs[f->n - 1].overlong = PG_HDR_AGREEMENT;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    f->recs[f->n - 1].type = NULL; /* no pg-type */
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    f->recs[f->n - 1].type = NULL; /* one longer than the consumer keeps */
    f->recs[f->n - 1].overlong = PG_HDR_TYPE;
    s_feed_add(f, ESX_TO_MER, &u->base, "polegate.pole.v9.EntityUpdate", "ESX");
    size_t attacks = 4;
    u->version = real_version + 2;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);

    s_partner_dls c = {0};
    pg_partner_stats ps = s_take_audited(f, &c);
    ck_assert_uint_eq(ps.rejected, attacks);
    ck_assert_uint_eq(ps.skipped, 0);
    ck_assert_uint_eq(ps.accepted, good + 1);
    ck_assert_int_eq(c.n, (int)attacks);
    ck_assert_int_eq(c.with_ref, (int)attacks);
    ck_assert_int_eq(s_audit_count("PG_EINVALID:header"), (int)attacks);
    s_feed_free(&f);
}
END_TEST

/* A tombstone keyed key on topic (no value), its pg-origin-force header force. */
static void s_feed_tombstone(s_feed *f, const char *topic, const char *key, const char *force)
{
    Polegate__Pole__V1__Date d = POLEGATE__POLE__V1__DATE__INIT;
    s_feed_add(f, topic, &d.base, PG_TYPE_ENTITY, force);
    f->recs[f->n - 1].value = NULL;
    f->recs[f->n - 1].len = 0;
    f->recs[f->n - 1].key = g_strdup(key);
    g_ptr_array_add(f->owned, (void *)f->recs[f->n - 1].key);
}

/* A reader that starts late, or that compaction overtook, may see only the tombstone
 * of a record its partner deleted (docs/topics.md: "All mean the same: forget the
 * entity or link"); the tombstones were skipped, and the NX5 RMS kept the person and
 * its link for ever (found by attack). A tombstone is now the DELETE, at the version
 * taken, of what the partner ledger holds under its key, checked as any record: one
 * on the topic of a partner that may not speak for the record's force (KNT, keying
 * ESX's location), or whose pg-origin-force names another force, is refused, a partner
 * dead letter, audited; one of a key held deleted or never held is skipped. */
START_TEST(test_tombstone_forgets_what_it_keys)
{
    static const char *const msgs[] = {
        s_atx_loc,
        S_ATX_HEAD(
            "5e1d0000-0000-4000-8000-000000000b02") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                    "\"P0000000901\",\"revision\":1,\"action\":"
                                                    "\"UPSERT\","
                                                    "\"modifiedAt\":\"2026-01-05T10:00:00+00:"
                                                    "00\"," S_ATX_MARK S_ATX_RET
                                                    ",\"body\":{\"surname\":\"Short\"}},\"links\":["
                                                    "{\"target\":{\"type\":\"LOCATION\","
                                                    "\"id\":\"L0000000901\"},\"role\":\"HOME_"
                                                    "ADDRESS\",\"validFrom\":null,\"validTo\":null}"
                                                    "]}",
        NULL};
    static const char s_knt_topic[] = "polegate.knt.mer.pole.v1";
    static const char s_policy_two[] = "policy:\n"
                                       "  version: MER-TEST-1\n"
                                       "  agreements:\n"
                                       "    - name: ISA-TEST\n"
                                       "      description: test\n"
                                       "  destinations:\n"
                                       "    - name: esx\n"
                                       "      kind: force\n"
                                       "      force: ESX\n"
                                       "      topic: " MER_TO_ESX "\n"
                                       "      agreement: ISA-TEST\n"
                                       "      max_classification: OFFICIAL-SENSITIVE\n"
                                       "      kinds: all\n"
                                       "  partners:\n"
                                       "    - force: ESX\n"
                                       "      topic: " ESX_TO_MER "\n"
                                       "      agreement: ISA-TEST\n"
                                       "    - force: KNT\n"
                                       "      topic: polegate.knt.mer.pole.v1\n"
                                       "      agreement: ISA-TEST\n";
    s_feed *f = s_feed_msgs(&pg_adapter_athena, msgs, ESX_TO_MER);
    ck_assert_uint_eq(f->n, 3); /* the location, the person, its link */
    char loc[PG_UUID_STR_SIZE], person[PG_UUID_STR_SIZE];
    s_atx_uuid("LOCATION", "L0000000901", loc);
    s_atx_uuid("PERSON", "P0000000901", person);
    const char *link = f->recs[2].key;
    /* attacks on ESX's location: from KNT's topic; a header naming another force */
    s_feed_tombstone(f, s_knt_topic, loc, "ESX");
    s_feed_tombstone(f, ESX_TO_MER, loc, "KNT");
    /* ESX's DELETEs compacted away: the tombstones alone, the link's and the person's,
     * then again (held deleted now), and one of a key never held */
    s_feed_tombstone(f, ESX_TO_MER, link, "ESX");
    s_feed_tombstone(f, ESX_TO_MER, person, "ESX");
    s_feed_tombstone(f, ESX_TO_MER, person, "ESX");
    s_feed_tombstone(f, ESX_TO_MER, "00000000-0000-0000-0000-000000000000", "ESX");

    pg_policy *pol = s_policy(s_policy_two, "MER");
    pg_store *st = s_store_open();
    pg_audit *audit = pg_audit_new(s_audit, NULL, e, sizeof e);
    ck_assert_msg(audit != NULL, "%s", e);
    pg_partner *p = s_partner_dir(st, pol, "MER", &pg_adapter_niche, audit);
    ck_assert_msg(pg_partner_take(p, f->recs, 3, e, sizeof e) == 0, "%s", e);
    s_drain(p);
    ck_assert_msg(pg_partner_take(p, f->recs + 3, f->n - 3, e, sizeof e) == 0, "%s", e);
    s_drain(p);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.accepted, 5);
    ck_assert_uint_eq(ps.rejected, 2);
    ck_assert_uint_eq(ps.skipped, 2);
    size_t files;
    pg_rms_model *got = s_model_of_drop(&pg_adapter_niche, &files);
    ck_assert_uint_eq(pg_rms_model_records(got), 1);
    ck_assert_uint_eq(pg_rms_model_links(got), 0);
    pg_rms_model_destroy(&got);
    pg_partner_destroy(&p);
    pg_audit_destroy(&audit);
    s_partner_dls dls = {0};
    pg_dlq *dlq = pg_dlq_new(st, NULL, e, sizeof e);
    ck_assert_msg(dlq != NULL, "%s", e);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_int_eq(pg_dlq_each(dlq, txn, s_count_partner_dl, &dls, e, sizeof e), 0);
    pg_store_abort(&txn);
    pg_dlq_destroy(&dlq);
    ck_assert_int_eq(dls.n, 2);
    ck_assert_int_eq(s_audit_count("\"outcome\":\"PG_EPOLICY\""), 1);
    ck_assert_int_eq(s_audit_count("PG_EINVALID:header"), 1);
    ck_assert_int_eq(s_audit_count("\"action\":\"erase\""), 1); /* the person */
    pg_store_destroy(&st);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

/* A tombstone read again after the record's next UPSERT was taken (found by
 * model_e2e --policy-change, seed 12: MER killed and restarted re-read from its
 * committed offset ESX's withdrawal at v, its tombstone and the UPSERT at v+1 it had
 * taken): the tombstone was made the DELETE at the version taken last, v+1, which
 * beat the UPSERT at v+1, and the RMS lost for ever a record its partner holds. A
 * tombstone is the DELETE at its pg-version (docs/topics.md: same headers as the
 * DELETE); one older than what was taken forgets nothing. */
START_TEST(test_tombstone_read_again_after_a_later_upsert)
{
    s_env env = s_env_mer(7, NULL);
    s_feed *f = env.f;
    pg_partner *p = env.p;
    pg_store *st = env.st;
    ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
    pg_entity_update *v = s_vehicle_of(f);
    /* ESX withdraws the vehicle at v (DELETE, tombstone), then shares it again at v+1 */
    size_t first = f->n;
    pg_entity_update w = s_withdrawal_of(v);
    s_feed_add(f, ESX_TO_MER, &w.base, "polegate.pole.v1.EntityUpdate", "ESX");
    s_feed_tombstone(f, ESX_TO_MER, v->id, "ESX");
    f->recs[f->n - 1].version = v->version;
    v->version++;
    s_feed_add(f, ESX_TO_MER, &v->base, "polegate.pole.v1.EntityUpdate", "ESX");
    ck_assert_int_eq(pg_partner_take(p, &f->recs[first], 3, e, sizeof e), 0);
    s_drain(p);
    /* read again from an older offset: the three once more */
    ck_assert_int_eq(pg_partner_take(p, &f->recs[first], 3, e, sizeof e), 0);
    s_drain(p);
    size_t files;
    pg_rms_model *got = s_model_of_drop(&pg_adapter_niche, &files);
    char gid[32];
    s_nx5_gid_of(st, v->id, gid, sizeof gid);
    ck_assert_ptr_nonnull(pg_rms_model_get(got, gid)); /* held */
    ck_assert_uint_eq(pg_rms_model_records(got), 7);
    pg_rms_model_destroy(&got);
    polegate__pole__v1__entity_update__free_unpacked(v, NULL);
    s_env_close(&env);
}
END_TEST

/* f's first link, unpacked (the caller frees it). */
static pg_link_update *s_link_of(s_feed *f)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->recs[i].type && !strcmp(f->recs[i].type, PG_TYPE_LINK)) {
            pg_link_update *l =
                polegate__pole__v1__link_update__unpack(NULL, f->recs[i].len, f->recs[i].value);
            ck_assert_ptr_nonnull(l);
            return l;
        }
    ck_abort_msg("no link in the feed");
    return NULL;
}

/* l with ends from and to (id and native id), its id theirs, its version v; fed. */
static void s_feed_link(s_feed *f, pg_link_update *l, pg_entity_ref *from, pg_entity_ref *to,
                        uint64_t v)
{
    pg_entity_ref *rf = l->from, *rt = l->to;
    char *id = l->id, link_id[PG_UUID_STR_SIZE];
    l->from = from, l->to = to;
    ck_assert_int_eq(pg_identity_link(from->id, (int)l->role, to->id, link_id), 0);
    l->id = link_id;
    l->version = v;
    s_feed_add(f, ESX_TO_MER, &l->base, PG_TYPE_LINK, "ESX");
    l->from = rf, l->to = rt, l->id = id;
}

/* An end: the entity of force's record native_id (ATX, kind of ref). */
static void s_end_of(pg_entity_ref *out, const pg_entity_ref *ref, const char *force,
                     const char *native_id, char id[PG_UUID_STR_SIZE])
{
    *out = *ref;
    ck_assert_int_eq(pg_identity_entity(force, "ATHENA",
                                        pg_adapter_athena.native_type((int)ref->kind), native_id,
                                        id),
                     0);
    out->id = id;
    out->native_id = (char *)native_id;
}

/* Attack: a partner (ESX) states links, under its own origin and with link ids bound to
 * their ends, between another force's records: two of KNT's, one of KNT's and one of
 * ours (MER), one of its own and one of KNT's (an ATX record carries its links: KNT's
 * record would change in our RMS), or an end whose native id names ESX's record while
 * its id is KNT's. Each is refused (PG_EINVALID:link-end), a partner dead letter,
 * audited; a new link between two of ESX's own records is taken, also when ESX's
 * system is one this build does not know (its ends then known from what ESX sent). */
START_TEST(test_partner_cannot_link_another_forces_records)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    size_t good = f->n;
    pg_link_update *l = s_link_of(f);
    ck_assert_str_eq(l->origin->force, "ESX");
    pg_entity_ref knt_a, knt_b, mer_c, esx_from, esx_to, forged;
    char ida[PG_UUID_STR_SIZE], idb[PG_UUID_STR_SIZE], idc[PG_UUID_STR_SIZE], idf[PG_UUID_STR_SIZE],
        idt[PG_UUID_STR_SIZE], idx[PG_UUID_STR_SIZE];
    s_end_of(&knt_a, l->from, "KNT", "P0000000042", ida);
    s_end_of(&knt_b, l->to, "KNT", "P0000000043", idb);
    s_end_of(&mer_c, l->to, "MER", "P0000000044", idc);
    s_end_of(&esx_from, l->from, "ESX", l->from->native_id, idf);
    s_end_of(&esx_to, l->to, "ESX", l->to->native_id, idt);
    ck_assert_str_eq(esx_from.id, l->from->id); /* the feed's own ends recompute */
    s_end_of(&forged, l->to, "KNT", l->to->native_id, idx);
    forged.native_id = l->to->native_id; /* ESX's native id, KNT's entity id */
    s_feed_link(f, l, &knt_a, &knt_b, 1);
    s_feed_link(f, l, &knt_a, &mer_c, 1);
    s_feed_link(f, l, &esx_from, &knt_b, 1);
    s_feed_link(f, l, &forged, &esx_to, 1);
    char *system = l->origin->system;
    l->origin->system = "SOMEOTHER"; /* no adapter of ours: ends known from state only */
    s_feed_link(f, l, &esx_from, &knt_b, 2);
    size_t attacks = 5;
    /* ESX's link between its own records, changed: once by a system we do not know,
     * once as ATHENA (a role the RMS's format can carry between those ends: a link it
     * cannot carry would be a dead letter too) */
    uint64_t v = l->version;
    s_feed_link(f, l, &esx_from, &esx_to, v + 1);
    l->origin->system = system;
    s_feed_link(f, l, &esx_from, &esx_to, v + 2);
    polegate__pole__v1__link_update__free_unpacked(l, NULL);

    s_partner_dls c = {0};
    pg_partner_stats ps = s_take_audited(f, &c);
    ck_assert_uint_eq(ps.rejected, attacks);
    ck_assert_uint_eq(ps.accepted, good + 2);
    ck_assert_int_eq(c.n, (int)attacks);
    ck_assert_int_eq(c.with_ref, (int)attacks);
    ck_assert_int_eq(s_audit_count("PG_EINVALID:link-end"), (int)attacks);
    s_feed_free(&f);
}
END_TEST

/* Attack: a partner (ESX) revises its own person, naming in merged_from another force's
 * record (KNT's), or a ref whose native id is ESX's while its id is KNT's. An ATX RMS
 * deletes what a record's mergedFrom names and moves its links to the survivor, so
 * either would let ESX delete KNT's record in our RMS: each is refused
 * (PG_EINVALID:merged-from), a partner dead letter, audited, and so is a merge naming
 * ESX's own record twice, or the record itself. A merge of ESX's own record, even one never sent to
 * us (its native id recomputes its id), is taken. */
START_TEST(test_partner_cannot_merge_another_forces_record)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    size_t good = f->n;
    pg_entity_update *u = s_person_of(f, 1);
    ck_assert_int_eq(u->kind, POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON);
    pg_entity_ref base = POLEGATE__POLE__V1__ENTITY_REF__INIT, knt, forged, own;
    base.kind = u->kind;
    char idk[PG_UUID_STR_SIZE], idf[PG_UUID_STR_SIZE], ido[PG_UUID_STR_SIZE];
    s_end_of(&knt, &base, "KNT", "P0000000042", idk);
    s_end_of(&forged, &base, "KNT", "P0000000077", idf);
    forged.native_id = "P0000000078"; /* ESX's native id beside KNT's entity id */
    s_end_of(&own, &base, "ESX", "P0000000099", ido);
    pg_entity_ref *refs[] = {&knt, &forged, &own};
    for (size_t i = 0; i < 3; i++) {
        u->version++;
        u->merged_from = &refs[i];
        u->n_merged_from = 1;
        s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    }
    /* its own record named twice, or the record itself: no RMS reads such a merge */
    pg_entity_ref self = base;
    self.id = u->id;
    self.native_id = u->origin->native_id;
    pg_entity_ref *twice[] = {&own, &own}, *itself[] = {&self};
    u->version++;
    u->merged_from = twice;
    u->n_merged_from = 2;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->version++;
    u->merged_from = itself;
    u->n_merged_from = 1;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->merged_from = NULL;
    u->n_merged_from = 0;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);

    s_partner_dls c = {0};
    pg_partner_stats ps = s_take_audited(f, &c);
    ck_assert_uint_eq(ps.rejected, 4);
    ck_assert_uint_eq(ps.accepted, good + 1);
    ck_assert_int_eq(c.n, 4);
    ck_assert_int_eq(s_audit_count("PG_EINVALID:merged-from"), 4);
    s_feed_free(&f);
}
END_TEST

/* Attack: a partner's ids that the audit log's field rules refuse (over 256 bytes, a
 * control character, not UTF-8) made every take fail ("the records are not taken
 * until the log takes events"), the honest records with it, for ever: one record
 * stopped every partner's intake. The events now hold a rendering of such values
 * (\xHH, cut with "..."): the refused ones are dead letters and audited, and a record
 * whose id is the UUIDv5 of a native id with a line break in it is taken. */
START_TEST(test_partner_ids_cannot_poison_the_audit_log)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    size_t good = f->n;
    pg_entity_update *u = s_person_of(f, 1);
    char *real_id = u->id, *real_native = u->origin->native_id, *real_force = u->origin->force;
    char longid[301], idbuf[PG_UUID_STR_SIZE];
    memset(longid, 'P', 300);
    longid[300] = 0;
    char *natives[] = {longid, "P\nX", "P\xff\xfe"};
    for (size_t i = 0; i < 3; i++) {
        u->version++;
        u->origin->native_id = natives[i];
        s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    }
    u->origin->native_id = real_native;
    u->origin->force = longid;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->origin->force = real_force;
    u->id = longid;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    /* taken: its id is the UUIDv5 of its origin */
    u->origin->native_id = "P0000123456\nforged line";
    ck_assert_int_eq(pg_identity_entity("ESX", u->origin->system, u->origin->native_type,
                                        u->origin->native_id, idbuf),
                     0);
    u->id = idbuf;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->id = real_id;
    u->origin->native_id = real_native;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);

    s_partner_dls c = {0};
    pg_partner_stats ps = s_take_audited(f, &c);
    ck_assert_uint_eq(ps.rejected, 5);
    ck_assert_uint_eq(ps.accepted, good + 1);
    ck_assert_int_eq(c.n, 5);
    gchar *text = NULL;
    ck_assert(g_file_get_contents(s_audit, &text, NULL, NULL));
    ck_assert_ptr_nonnull(strstr(text, "\"native_id\":\"P\\\\x0AX\""));
    ck_assert_ptr_nonnull(strstr(text, "\"native_id\":\"P\\\\xFF\\\\xFE\""));
    ck_assert_ptr_nonnull(strstr(text, "\"native_id\":\"P0000123456\\\\x0Aforged line\""));
    ck_assert_ptr_nonnull(strstr(text, "PPP...\""));
    g_free(text);
    s_feed_free(&f);
}
END_TEST

/* Attack: a partner's person with 200,000 aliases (3.6 MB of protobuf; it compresses
 * under the broker's limit) was composed into a 10 MB NX5 document and delivered,
 * though NX5 documents are at most 8 MiB and the RMS refuses it. What the format
 * cannot carry for its size is refused like what it cannot carry at all: the batch's
 * other changes are delivered each in a document of its own, the large one is a
 * partner dead letter, and every file in the drop directory is one the RMS takes. */
START_TEST(test_partner_record_too_large_for_the_rms)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    size_t good = f->n, n = 200000;
    pg_entity_update *u = s_person_of(f, 1);
    ck_assert_ptr_nonnull(u->person);
    Polegate__Pole__V1__Alias *al = calloc(n, sizeof *al), **alp = calloc(n, sizeof *alp);
    ck_assert(al && alp);
    Polegate__Pole__V1__Name nm = POLEGATE__POLE__V1__NAME__INIT;
    nm.surname = "ALIASSURNAME";
    for (size_t i = 0; i < n; i++) {
        polegate__pole__v1__alias__init(&al[i]);
        al[i].name = &nm;
        alp[i] = &al[i];
    }
    Polegate__Pole__V1__Alias **had = u->person->aliases;
    size_t had_n = u->person->n_aliases;
    u->person->aliases = alp;
    u->person->n_aliases = n;
    u->version++;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->person->aliases = had;
    u->person->n_aliases = had_n;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);
    free(al);
    free(alp);

    s_partner_dls c = {0};
    pg_partner_stats ps = s_take_audited(f, &c);
    ck_assert_uint_eq(ps.accepted, good); /* refused for our RMS's format: */
    ck_assert_uint_eq(ps.rejected, 1);    /* a partner dead letter */
    ck_assert_int_eq(c.n, 1);
    size_t files;
    pg_rms_model *m = s_model_of_drop(&pg_adapter_niche, &files);
    ck_assert_uint_ge(files, 1);
    pg_rms_model_destroy(&m);
    s_feed_free(&f);
}
END_TEST

/* Attack: a partner's new location whose kind says person (its body a location's, a
 * field the kind does not name). The NX5 encoder wrote its body under Kind="Person",
 * a document the RMS refuses, the batch's good location in it (found by attack; an
 * ATX RMS was safe: its encoder checks the body against the kind). It is refused like
 * what the format cannot carry: a partner dead letter, the location delivered, every
 * file in the drop directory one the RMS takes. */
START_TEST(test_partner_body_must_match_kind)
{
    static const char *const msgs[] = {s_atx_loc, NULL};
    s_feed *f = s_feed_msgs(&pg_adapter_athena, msgs, ESX_TO_MER);
    pg_entity_update *u = s_person_of(f, 0);
    char *real_id = u->id, *real_native = u->origin->native_id, id[PG_UUID_STR_SIZE];
    u->origin->native_id = "L0000000902";
    ck_assert_int_eq(pg_identity_entity("ESX", u->origin->system, u->origin->native_type,
                                        u->origin->native_id, id),
                     0);
    u->id = id;
    u->kind = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->id = real_id;
    u->origin->native_id = real_native;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);

    s_partner_dls c = {0};
    pg_partner_stats ps = s_take_audited(f, &c);
    ck_assert_uint_eq(ps.accepted, 1);
    ck_assert_uint_eq(ps.rejected, 1);
    ck_assert_int_eq(c.n, 1);
    ck_assert_msg(strstr(c.reason, "body: does not match Kind Person"), "%s", c.reason);
    size_t files;
    pg_rms_model *m = s_model_of_drop(&pg_adapter_niche, &files);
    ck_assert_uint_eq(pg_rms_model_records(m), 1);
    pg_rms_model_destroy(&m);
    s_feed_free(&f);
}
END_TEST

/* Attack: a partner's location revised as a person (kind and body a person's). The
 * NX5 RMS was sent a Modify of the location's GID as a Person (an ATX RMS was safe: its
 * record ids say their type). A record never changes kind: the revision is refused by
 * the partner ledger, a partner dead letter, in one batch with the location or after
 * it; the RMS holds the location. */
START_TEST(test_partner_record_never_changes_kind)
{
    static const char *const msgs[] = {s_atx_loc, NULL};
    s_feed *f = s_feed_msgs(&pg_adapter_athena, msgs, ESX_TO_MER);
    pg_entity_update *u = s_person_of(f, 0);
    Polegate__Pole__V1__Person per = POLEGATE__POLE__V1__PERSON__INIT;
    Polegate__Pole__V1__Name nm = POLEGATE__POLE__V1__NAME__INIT;
    nm.surname = "KINDCHANGE";
    per.name = &nm;
    Polegate__Pole__V1__Location *loc = u->location;
    u->version++;
    u->kind = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON;
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
    u->person = &per;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_LOCATION;
    u->location = loc;
    char gid[17]; /* the NX5 GID: the UUID's first 16 hex digits (docs/delivery.md) */
    size_t k = 0;
    for (const char *c = u->id; *c && k < 16; c++)
        if (*c != '-')
            gid[k++] = (char)g_ascii_toupper(*c);
    gid[k] = 0;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);

    pg_policy *pol = s_policy(s_policy_mer, "MER");
    for (int round = 0; round < 2; round++) {
        s_teardown();
        s_setup();
        pg_store *st = s_store_open();
        pg_partner *p = s_partner_dir(st, pol, "MER", &pg_adapter_niche, NULL);
        for (size_t i = 0; i < f->n; i += round ? 1 : f->n)
            ck_assert_msg(pg_partner_take(p, &f->recs[i], round ? 1 : f->n, e, sizeof e) == 0, "%s",
                          e);
        s_drain(p);
        pg_partner_stats ps;
        pg_partner_get_stats(p, &ps);
        ck_assert_uint_eq(ps.accepted, 1);
        ck_assert_uint_eq(ps.rejected, 1);
        size_t files;
        pg_rms_model *m = s_model_of_drop(&pg_adapter_niche, &files);
        const pg_entity_update *held = pg_rms_model_get(m, gid);
        ck_assert_ptr_nonnull(held);
        ck_assert_msg(held->kind == POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_LOCATION,
                      "round %d: the RMS holds the location as kind %d", round, held->kind);
        pg_rms_model_destroy(&m);
        pg_partner_destroy(&p);
        pg_store_destroy(&st);
    }
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

typedef struct s_dl_ids {
    uint64_t ids[512];
    int n;
} s_dl_ids;

static int s_collect_partner_dl(void *ud, const pg_dlq_entry *de)
{
    s_dl_ids *c = ud;
    if (de->kind == PG_DLQ_PARTNER && c->n < 512)
        c->ids[c->n++] = de->id;
    return 0;
}

static s_dl_ids s_partner_dl_ids(pg_store *st)
{
    s_dl_ids c = {.n = 0};
    pg_dlq *dlq = pg_dlq_new(st, NULL, e, sizeof e);
    ck_assert_msg(dlq != NULL, "%s", e);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_int_eq(pg_dlq_each(dlq, txn, s_collect_partner_dl, &c, e, sizeof e), 0);
    pg_store_abort(&txn);
    pg_dlq_destroy(&dlq);
    return c;
}

/* ESX's feed and one forged record (a KNT id under origin ESX) after it. */
static s_feed *s_feed_and_forged(void)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    ck_assert_uint_lt(f->n, 500);
    pg_entity_update *u = s_person_of(f, 1);
    char knt_id[PG_UUID_STR_SIZE], *real_id = u->id;
    ck_assert_int_eq(pg_identity_entity("KNT", "ATHENA", "PERSON", "P0000000042", knt_id), 0);
    u->id = knt_id;
    u->version += 1;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->id = real_id;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);
    return f;
}

/* MER takes f while ESX is not yet its partner: every record is a partner dead letter,
 * nothing reaches the RMS. The policy it used and the audit log it opened (*audit_out),
 * both the caller's. */
static pg_policy *s_take_unconfigured(pg_store *st, pg_audit **audit_out, const s_feed *f)
{
    pg_audit *audit = *audit_out = pg_audit_new(s_audit, NULL, e, sizeof e);
    ck_assert_msg(audit != NULL, "%s", e);
    char *before = g_strdup(s_policy_mer);
    char *cut = strstr(before, "  partners:\n");
    ck_assert_ptr_nonnull(cut);
    *cut = 0;
    pg_policy *pol0 = s_policy(before, "MER");
    g_free(before);
    pg_partner *p = s_partner_dir(st, pol0, "MER", &pg_adapter_niche, audit);
    ck_assert_msg(pg_partner_take(p, f->recs, f->n, e, sizeof e) == 0, "%s", e);
    s_drain(p);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.rejected, f->n);
    ck_assert_uint_eq(ps.accepted, 0);
    pg_partner_destroy(&p);
    /* Kafka delivers them again (a restart before the offsets were committed): refused
     * again, each still one dead letter. */
    p = s_partner_dir(st, pol0, "MER", &pg_adapter_niche, audit);
    ck_assert_msg(pg_partner_take(p, f->recs, f->n, e, sizeof e) == 0, "%s", e);
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.rejected, f->n);
    pg_partner_destroy(&p);
    s_dl_ids once = s_partner_dl_ids(st);
    ck_assert_int_eq(once.n, (int)f->n);
    size_t files = 0;
    pg_rms_model *m = s_model_of_drop(&pg_adapter_niche, &files);
    ck_assert_uint_eq(files, 0);
    pg_rms_model_destroy(&m);
    return pol0;
}

/* Replay of partner dead letters: ESX's records, refused while ESX was not yet a
 * partner of MER, are replayed once the policy names it and reach the RMS; a forged
 * record (an id that is not its origin's) replayed passes the same checks and stays
 * refused, as a new dead letter. Both are audited as replays. */
START_TEST(test_partner_dead_letter_replay)
{
    s_feed *f = s_feed_and_forged();
    size_t good = f->n - 1;
    pg_store *st = s_store_open();
    pg_audit *audit = NULL;
    pg_policy *pol0 = s_take_unconfigured(st, &audit, f);
    pg_partner *p;
    size_t files = 0;
    pg_rms_model *m;
    pg_partner_stats ps;
    s_dl_ids dls = s_partner_dl_ids(st);
    ck_assert_int_eq(dls.n, (int)good + 1);

    /* the fix: ESX is configured; every dead letter replayed through the pipeline */
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    p = s_partner_dir(st, pol, "MER", &pg_adapter_niche, audit);
    int accepted = 0, refused = 0;
    char outcome[16];
    for (int i = 0; i < dls.n; i++) {
        int rc = pg_partner_replay(p, dls.ids[i], outcome, e, sizeof e);
        if (rc == 0) {
            ck_assert_str_eq(outcome, "accepted");
            accepted++;
        } else {
            ck_assert_int_eq(rc, PG_EINVALID);
            ck_assert_str_eq(outcome, "refused");
            ck_assert_msg(strstr(e, "not the UUIDv5 of its origin"), "%s", e);
            refused++;
        }
    }
    ck_assert_int_eq(accepted, (int)good);
    ck_assert_int_eq(refused, 1);
    /* a dead letter replayed is gone: a second replay finds nothing */
    ck_assert_int_eq(pg_partner_replay(p, dls.ids[0], outcome, e, sizeof e), PG_ENOTFOUND);
    s_drain(p);
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_ge(ps.stored, 1);
    pg_partner_destroy(&p);
    m = s_model_of_drop(&pg_adapter_niche, &files);
    ck_assert_uint_ge(files, 1);
    pg_rms_model_destroy(&m);
    /* only the forged one is left, as a new dead letter */
    s_dl_ids left = s_partner_dl_ids(st);
    ck_assert_int_eq(left.n, 1);
    ck_assert_uint_gt(left.ids[0], dls.ids[dls.n - 1]);
    pg_audit_destroy(&audit);
    gchar *text = NULL;
    ck_assert(g_file_get_contents(s_audit, &text, NULL, NULL));
    ck_assert_msg(strstr(text, "\"party\":\"dlq-replay:" ESX_TO_MER "\""), "%s", text);
    ck_assert_ptr_nonnull(strstr(text, "PG_EINVALID:identity"));
    g_free(text);
    pg_store_destroy(&st);
    pg_policy_destroy(&pol);
    pg_policy_destroy(&pol0);
    s_feed_free(&f);
}
END_TEST

/* st's one partner dead letter, from ESX, of canonical id id, at ref (NULL: not
 * checked), its reason holding why1 and why2: its dead letter id. */
static uint64_t s_one_dead_letter(pg_store *st, const char *id, const char *ref, const char *why1,
                                  const char *why2)
{
    s_dl_ids dls = s_partner_dl_ids(st);
    ck_assert_int_eq(dls.n, 1);
    pg_dlq *dlq = pg_dlq_new(st, NULL, e, sizeof e);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_dlq_entry de;
    ck_assert_int_eq(pg_dlq_get(dlq, txn, dls.ids[0], &de, e, sizeof e), 0);
    if (ref)
        ck_assert_str_eq(de.ref, ref);
    ck_assert_str_eq(de.origin, "ESX");
    ck_assert_str_eq(de.ids, id);
    ck_assert_msg(strstr(de.reason, why1) && strstr(de.reason, why2), "%s", de.reason);
    pg_store_abort(&txn);
    pg_dlq_destroy(&dlq);
    return dls.ids[0];
}

/* A partner record the partner ledger refuses (a merged_from ref without an id): it
 * is a partner dead letter audited as rejected (PG_EINVALID:ledger), never audited as
 * received, and nothing of it is applied; the rest of its batch is taken. (It was
 * dropped alone, after its "receive" event and its version were noted.) */
START_TEST(test_ledger_refusal_is_a_dead_letter)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    size_t good = f->n;
    pg_entity_update *u = s_person_of(f, 1);
    pg_entity_ref ref = POLEGATE__POLE__V1__ENTITY_REF__INIT, *refs[1] = {&ref};
    ref.id = "";
    ref.kind = u->kind;
    u->n_merged_from = 1;
    u->merged_from = refs;
    u->version += 1;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    u->n_merged_from = 0;
    u->merged_from = NULL;
    char id[PG_UUID_STR_SIZE];
    snprintf(id, sizeof id, "%s", u->id);
    uint64_t bad_version = u->version;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);

    s_took t = s_mer_took(f);
    ck_assert_uint_eq(t.ps.rejected, 1);
    ck_assert_uint_eq(t.ps.accepted, good);
    pg_partner_destroy(&t.p);
    pg_audit_destroy(&t.audit);
    s_one_dead_letter(t.st, id, NULL, "ledger: ", "merged_from[0].id");
    gchar *text = NULL;
    ck_assert(g_file_get_contents(s_audit, &text, NULL, NULL));
    char want[256];
    snprintf(want, sizeof want, "\"entity_id\":\"%s\"", id);
    size_t receive = 0, reject = 0;
    gchar **lines = g_strsplit(text, "\n", -1);
    char version[40];
    snprintf(version, sizeof version, "\"version\":%llu,", (unsigned long long)bad_version);
    for (gchar **l = lines; *l; l++) {
        if (!strstr(*l, want) || !strstr(*l, version))
            continue;
        receive += strstr(*l, "\"action\":\"receive\"") != NULL;
        reject += strstr(*l, "\"action\":\"reject\"") && strstr(*l, "PG_EINVALID:ledger");
    }
    g_strfreev(lines);
    g_free(text);
    ck_assert_uint_eq(receive, 0);
    ck_assert_uint_eq(reject, 1);
    s_took_close(&t);
    s_feed_free(&f);
}
END_TEST

/* A partner record the local format cannot carry (a person without a surname: NX5
 * requires one), in a batch of good ones: it is a partner dead letter (topic,
 * partition, offset, origin, the adapter's reason), audited as rejected
 * (PG_EUNSUPPORTED), and nothing of it is applied: the good records reach the RMS, a
 * replay of it is refused again (not a duplicate: its version was not noted), and its
 * next version, with a surname, is taken and delivered. */
START_TEST(test_unencodable_change_is_a_dead_letter)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    size_t good = f->n;
    pg_entity_update *u = s_person_of(f, 1);
    ck_assert_ptr_nonnull(u->person);
    ck_assert_ptr_nonnull(u->person->name);
    char *surname = u->person->name->surname;
    u->person->name->surname = "";
    u->version += 1;
    s_feed_add(f, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    int64_t bad_offset = (int64_t)f->n - 1;
    s_feed *next = calloc(1, sizeof *next);
    next->owned = g_ptr_array_new_with_free_func(g_free);
    u->person->name->surname = surname;
    u->version += 1;
    s_feed_add(next, ESX_TO_MER, &u->base, PG_TYPE_ENTITY, "ESX");
    char id[PG_UUID_STR_SIZE];
    snprintf(id, sizeof id, "%s", u->id);
    uint64_t bad_version = u->version - 1;
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);

    s_took t = s_mer_took(f);
    ck_assert_uint_eq(t.ps.rejected, 1);
    ck_assert_uint_eq(t.ps.accepted, good);
    pg_compose_stats cs;
    pg_partner_get_compose_stats(t.p, &cs);
    ck_assert_uint_eq(cs.refused, 1); /* once, though its batch was taken twice */
    ck_assert_uint_eq(t.ps.composed, t.ps.stored);
    /* found by halving the batch: at most two takes per halving (2 log2 n, n = 19),
     * not one per record */
    ck_assert_uint_eq(f->n, 19);
    ck_assert_msg(t.ps.batches <= 2 * 5, "%" PRIu64 " takes for %zu records", t.ps.batches, f->n);

    /* the dead letter: where it came from and why */
    char ref[128];
    snprintf(ref, sizeof ref, "%s [0] @%lld", ESX_TO_MER, (long long)bad_offset);
    uint64_t dl =
        s_one_dead_letter(t.st, id, ref, "the nx5 RMS cannot carry it: ", "person.name.surname");

    /* replayed unchanged: refused again for the same reason, not taken for a duplicate */
    char outcome[16];
    ck_assert_int_eq(pg_partner_replay(t.p, dl, outcome, e, sizeof e), PG_EINVALID);
    ck_assert_str_eq(outcome, "refused");
    ck_assert_msg(strstr(e, "person.name.surname"), "%s", e);
    ck_assert_int_eq(s_partner_dl_ids(t.st).n, 1);

    /* its next version is taken and reaches the RMS */
    ck_assert_msg(pg_partner_take(t.p, next->recs, next->n, e, sizeof e) == 0, "%s", e);
    s_drain(t.p);
    pg_partner_stats after;
    pg_partner_get_stats(t.p, &after);
    ck_assert_uint_eq(after.accepted, t.ps.accepted + 1);
    ck_assert_uint_eq(after.stored, t.ps.stored + 1);
    pg_partner_destroy(&t.p);
    pg_audit_destroy(&t.audit);

    gchar *text = NULL;
    ck_assert(g_file_get_contents(s_audit, &text, NULL, NULL));
    char want[256];
    snprintf(want, sizeof want,
             "\"action\":\"reject\",\"party\":\"partner:" ESX_TO_MER "\",\"entity_id\":\"%s\"", id);
    ck_assert_msg(strstr(text, want), "%s", text);
    snprintf(want, sizeof want, "\"version\":%llu,\"outcome\":\"PG_EUNSUPPORTED\"",
             (unsigned long long)bad_version);
    ck_assert_msg(strstr(text, want), "%s", text);
    snprintf(want, sizeof want,
             "\"action\":\"receive\",\"party\":\"partner:" ESX_TO_MER "\",\"entity_id\":\"%s\"",
             id);
    ck_assert_msg(strstr(text, want), "%s", text);
    g_free(text);
    s_took_close(&t);
    s_feed_free(&next);
    s_feed_free(&f);
}
END_TEST

/* The daemon's partner thread, as far as replays go: answers what the operator asks. */
typedef struct s_replayer {
    pg_partner *p;
    atomic_int stop;
    int answered;
} s_replayer;

static void *s_replayer_run(void *arg)
{
    s_replayer *r = arg;
    char why[PG_ERRSTR_SIZE];
    while (!atomic_load(&r->stop)) {
        int n = pg_partner_replay_asked(r->p, why, sizeof why);
        ck_assert_msg(n >= 0, "%s", why);
        r->answered += n;
        ck_assert_int_ge(pg_partner_poll(r->p, 50, why, sizeof why), 0);
    }
    return NULL;
}

/* `polegate dlq replay --config` on partner dead letters. While the daemon runs (here:
 * this test holds the audit log and the partner pipeline) the command asks it, through
 * the store, and waits for its answers: with no partner thread answering it gives up
 * (exit 2) and says why; with one, each is taken again through the daemon's pipeline:
 * the records refused only because ESX was not yet a partner reach the RMS's drop
 * directory, the forged one stays refused. Once the daemon is stopped the command
 * replays in its own process. */
START_TEST(test_cli_replays_partner_dead_letters)
{
    s_feed *f = s_feed_and_forged();
    size_t good = f->n - 1;
    pg_store *st = s_store_open();
    pg_audit *audit = NULL;
    pg_policy *pol0 = s_take_unconfigured(st, &audit, f);
    char cfg[200], out[256], cmd[1024], quick[1024];
    snprintf(cfg, sizeof cfg, "%s.yaml", s_dir);
    snprintf(out, sizeof out, "%s/replay.out", s_dir);
    FILE *fp = fopen(cfg, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp,
            "force:\n  code: MER\nadapter:\n  name: niche\n"
            "intake:\n  endpoint: tcp://127.0.0.1:5556\ncurve: {insecure: true}\n"
            "store:\n  path: %s\nkafka:\n  brokers: 127.0.0.1:1\n"
            "delivery:\n  transport: dir\n  endpoint: %s\n  group_id: test-partner\n"
            "audit:\n  path: %s\n%s",
            s_dir, s_drop, s_audit, s_policy_mer);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s dlq replay --config %s >%s 2>&1", PG_POLEGATE, cfg, out);
    snprintf(quick, sizeof quick, "%s dlq replay --config %s --timeout-ms 300 >%s 2>&1",
             PG_POLEGATE, cfg, out);

    /* the daemon holds the audit log, and no partner thread answers */
    int st_code = system(quick);
    ck_assert(WIFEXITED(st_code));
    ck_assert_int_eq(WEXITSTATUS(st_code), 2);
    gchar *text = NULL;
    ck_assert(g_file_get_contents(out, &text, NULL, NULL));
    ck_assert_msg(strstr(text, "polegated is running (it holds the audit log) but answered no "
                               "replay for 300 ms"),
                  "%s", text);
    g_free(text);
    ck_assert_int_eq(s_partner_dl_ids(st).n, (int)good + 1); /* nothing replayed */

    /* its partner thread answers */
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    s_replayer r = {.p = s_partner_dir(st, pol, "MER", &pg_adapter_niche, audit)};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, s_replayer_run, &r), 0);
    st_code = system(cmd);
    atomic_store(&r.stop, 1);
    pthread_join(th, NULL);
    ck_assert(WIFEXITED(st_code));
    ck_assert_int_eq(WEXITSTATUS(st_code), 1); /* the forged one refused again */
    ck_assert(g_file_get_contents(out, &text, NULL, NULL));
    size_t acc = 0;
    for (const char *q = text; (q = strstr(q, "{\"status\":\"accepted\"}")); q++)
        acc++;
    ck_assert_msg(acc == good, "%s", text);
    ck_assert_msg(strstr(text, "{\"status\":\"refused\",\"reason\":\"id: not the UUIDv5 of its "
                               "origin"),
                  "%s", text);
    g_free(text);
    ck_assert_int_eq(r.answered, (int)good + 1);
    s_drain(r.p);
    pg_partner_destroy(&r.p);
    size_t files = 0;
    pg_rms_model *m = s_model_of_drop(&pg_adapter_niche, &files);
    ck_assert_uint_ge(files, 1);
    pg_rms_model_destroy(&m);
    s_dl_ids left = s_partner_dl_ids(st);
    ck_assert_int_eq(left.n, 1);
    pg_audit_destroy(&audit);
    ck_assert(g_file_get_contents(s_audit, &text, NULL, NULL));
    ck_assert_msg(strstr(text, "\"party\":\"dlq-replay:" ESX_TO_MER "\""), "%s", text);
    g_free(text);
    pg_store_destroy(&st);

    /* stopped: the command replays in its own process */
    st_code = system(cmd);
    ck_assert(WIFEXITED(st_code));
    ck_assert_int_eq(WEXITSTATUS(st_code), 1);
    ck_assert(g_file_get_contents(out, &text, NULL, NULL));
    ck_assert_msg(strstr(text, "{\"status\":\"refused\",\"reason\":\"id: not the UUIDv5 of its "
                               "origin"),
                  "%s", text);
    g_free(text);
    st = s_store_open();
    s_dl_ids last = s_partner_dl_ids(st);
    ck_assert_int_eq(last.n, 1);
    ck_assert_uint_gt(last.ids[0], left.ids[0]);
    pg_store_destroy(&st);
    unlink(cfg);
    pg_policy_destroy(&pol);
    pg_policy_destroy(&pol0);
    s_feed_free(&f);
}
END_TEST

/* ------------------------------------------------------------ ZeroMQ, acks, restarts */

typedef struct s_router {
    void *ctx, *sock;
    char endpoint[64];
} s_router;

static void s_router_open(s_router *r)
{
    r->ctx = zmq_ctx_new();
    snprintf(r->endpoint, sizeof r->endpoint, "inproc://rms-%d", rand());
    r->sock = zmq_socket(r->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &zero, sizeof zero);
    ck_assert_int_eq(zmq_bind(r->sock, r->endpoint), 0);
}

static void s_router_close(s_router *r)
{
    zmq_close(r->sock);
    zmq_ctx_term(r->ctx);
}

static char s_body[65536]; /* the last message s_router_read read */
static size_t s_body_len;

/* Read one message (driving p meanwhile); its correlation id into id and the peer's
 * routing id into peer, its bytes into s_body. 0 when none came. */
static int s_router_read(s_router *r, pg_partner *p, char id[160], char peer[64], size_t *peer_len)
{
    for (int i = 0; i < 100; i++) {
        ck_assert_int_ge(pg_partner_poll(p, 0, e, sizeof e), 0);
        zmq_pollitem_t it = {.socket = r->sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        int n = zmq_recv(r->sock, peer, 64, 0);
        ck_assert_int_gt(n, 0);
        *peer_len = (size_t)n;
        n = zmq_recv(r->sock, id, 159, 0);
        ck_assert_int_gt(n, 0);
        id[n] = 0;
        n = zmq_recv(r->sock, s_body, sizeof s_body, 0);
        ck_assert_int_ge(n, 0);
        s_body_len = (size_t)n;
        return 1;
    }
    return 0;
}

static void s_router_ack(s_router *r, const char *peer, size_t peer_len, const char *id, int status)
{
    pg_buf b = PG_BUF_INIT;
    pg_rms_delivery_ack_format(status, status ? "record.id: no" : NULL, &b);
    zmq_send(r->sock, peer, peer_len, ZMQ_SNDMORE);
    zmq_send(r->sock, id, strlen(id), ZMQ_SNDMORE);
    zmq_send(r->sock, b.data, b.len, 0);
    pg_buf_free(&b);
}

static pg_partner *s_partner_zmq_audit(pg_store *st, const pg_policy *pol, s_router *r,
                                       size_t window, pg_audit *audit)
{
    pg_partner_opts o = {.force = "MER",
                         .audit = audit,
                         .adapter = &pg_adapter_niche,
                         .policy = pol,
                         .store = st,
                         .now_ms = S_NOW_MS,
                         .delivery = {.transport = "zmq",
                                      .endpoint = r->endpoint,
                                      .zmq_ctx = r->ctx,
                                      .window = window,
                                      .ack_timeout_ms = 60000}};
    pg_partner *p = pg_partner_new(&o, e, sizeof e);
    ck_assert_msg(p != NULL, "%s", e);
    return p;
}

static pg_partner *s_partner_zmq(pg_store *st, const pg_policy *pol, s_router *r, size_t window)
{
    return s_partner_zmq_audit(st, pol, r, window, NULL);
}

START_TEST(test_offsets_wait_for_acks_and_window)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 3, ESX_TO_MER);
    ck_assert_uint_ge(f->n, 3);
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    pg_store *st = s_store_open();
    s_router r;
    s_router_open(&r);
    pg_partner *p = s_partner_zmq(st, pol, &r, 2);
    /* three entity records, one batch each: three NX5 documents */
    size_t taken = 0;
    for (size_t i = 0; i < f->n && taken < 3; i++) {
        if (strcmp(f->recs[i].type, "polegate.pole.v1.EntityUpdate"))
            continue;
        ck_assert_int_eq(pg_partner_take(p, &f->recs[i], 1, e, sizeof e), 0);
        taken++;
    }
    ck_assert_int_eq(pg_partner_poll(p, 0, e, sizeof e), 0);
    ck_assert_uint_eq(pg_partner_pending(p), 3);
    ck_assert_int_eq(pg_partner_busy(p), 1); /* window of 2 full, one waiting */
    char id[3][160], peer[64];
    size_t peer_len;
    ck_assert(s_router_read(&r, p, id[0], peer, &peer_len));
    ck_assert(s_router_read(&r, p, id[1], peer, &peer_len));
    ck_assert(strstr(id[0], "pg-") == id[0]);
    ck_assert_str_ne(id[0], id[1]);
    s_offsets off = {0};
    pg_partner_committable(p, s_offset_cb, &off);
    ck_assert_int_eq(off.calls, 0); /* sent, not stored */
    /* the RMS stores the first and rejects the second: both are done with */
    s_router_ack(&r, peer, peer_len, id[0], 0);
    for (int i = 0; i < 50 && !off.calls; i++) {
        pg_partner_poll(p, 20, e, sizeof e);
        pg_partner_committable(p, s_offset_cb, &off);
    }
    ck_assert_int_eq(off.calls, 1);
    int64_t first = off.next;
    s_router_ack(&r, peer, peer_len, id[1], PG_EINVALID);
    ck_assert(s_router_read(&r, p, id[2], peer, &peer_len)); /* the window opened */
    s_router_ack(&r, peer, peer_len, id[2], 0);
    for (int i = 0; i < 50 && pg_partner_pending(p); i++)
        pg_partner_poll(p, 20, e, sizeof e);
    pg_partner_committable(p, s_offset_cb, &off);
    ck_assert_int_gt(off.next, first);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.stored, 2);
    ck_assert_uint_eq(ps.rms_rejected, 1);
    ck_assert_int_eq(pg_partner_busy(p), 0);
    /* the rejected one is a dead letter; the stored ones are not */
    pg_dlq *dlq = pg_dlq_new(st, NULL, e, sizeof e);
    ck_assert_msg(dlq != NULL, "%s", e);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_dlq_stats ds;
    ck_assert_int_eq(pg_dlq_stat(dlq, txn, &ds, e, sizeof e), 0);
    ck_assert_uint_eq(ds.entries, 1);
    pg_dlq_entry de;
    ck_assert_int_eq(pg_dlq_get(dlq, txn, 1, &de, e, sizeof e), 0);
    ck_assert_str_eq(de.ref, id[1]);
    pg_store_abort(&txn);
    pg_dlq_destroy(&dlq);
    pg_partner_destroy(&p);
    s_router_close(&r);
    pg_store_destroy(&st);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

/* The RMS stand-in of a resend, in a thread: reads one message, answers status. */
typedef struct s_rms_once {
    s_router *r;
    int status;
    char body[65536];
    size_t len;
} s_rms_once;

static void *s_rms_once_run(void *arg)
{
    s_rms_once *o = arg;
    char peer[64], id[160];
    zmq_pollitem_t it = {.socket = o->r->sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 5000) <= 0)
        return NULL;
    int pl = zmq_recv(o->r->sock, peer, sizeof peer, 0);
    int il = zmq_recv(o->r->sock, id, sizeof id - 1, 0);
    int bl = zmq_recv(o->r->sock, o->body, sizeof o->body, 0);
    if (pl <= 0 || il <= 0 || bl < 0)
        return NULL;
    id[il] = 0;
    o->len = (size_t)bl;
    s_router_ack(o->r, peer, (size_t)pl, id, o->status);
    return NULL;
}

static int s_count_files(const char *dir, char *path, size_t size)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') {
            n++;
            snprintf(path, size, "%s/%s", dir, de->d_name);
        }
    closedir(d);
    return n;
}

START_TEST(test_rms_rejection_is_a_dead_letter)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 3, ESX_TO_MER);
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    pg_store *st = s_store_open();
    pg_audit *audit = pg_audit_new(s_audit, NULL, e, sizeof e);
    ck_assert_msg(audit != NULL, "%s", e);
    s_router r;
    s_router_open(&r);
    pg_partner *p = s_partner_zmq_audit(st, pol, &r, 4, audit);
    size_t i = 0;
    while (i < f->n && strcmp(f->recs[i].type, "polegate.pole.v1.EntityUpdate"))
        i++;
    ck_assert_uint_lt(i, f->n);
    ck_assert_int_eq(pg_partner_take(p, &f->recs[i], 1, e, sizeof e), 0);
    const pg_partner_record *rec = &f->recs[i];
    Polegate__Pole__V1__EntityUpdate *u =
        polegate__pole__v1__entity_update__unpack(NULL, rec->len, rec->value);
    ck_assert_ptr_nonnull(u);
    char canon[80];
    snprintf(canon, sizeof canon, "%s", u->id);
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);
    uint64_t audited = pg_audit_seq(audit);
    char id[160], peer[64];
    size_t peer_len;
    ck_assert(s_router_read(&r, p, id, peer, &peer_len));
    uint8_t sent[65536];
    size_t sent_len = s_body_len;
    memcpy(sent, s_body, sent_len);
    s_offsets off = {0};
    pg_partner_committable(p, s_offset_cb, &off);
    ck_assert_int_eq(off.calls, 0);
    s_router_ack(&r, peer, peer_len, id, PG_EINVALID);
    for (int k = 0; k < 50 && pg_partner_pending(p); k++)
        pg_partner_poll(p, 20, e, sizeof e);
    ck_assert_uint_eq(pg_partner_pending(p), 0);
    /* the dead letter is durable: the offsets move past it */
    pg_partner_committable(p, s_offset_cb, &off);
    ck_assert_int_eq(off.calls, 1);
    ck_assert_int_eq(off.next, rec->offset + 1);
    /* one audit "reject" per canonical id the message carried */
    ck_assert_uint_gt(pg_audit_seq(audit), audited);
    pg_partner_destroy(&p);
    pg_audit_destroy(&audit);
    pg_store_destroy(&st);
    s_counts c = {0};
    ck_assert_int_eq(pg_audit_query(s_audit, NULL, s_count_line, &c, e, sizeof e), 0);
    ck_assert_int_ge(c.reject, 1);
    pg_audit_filter af = {.action = PG_AUDIT_REJECT, .entity_id = canon};
    s_counts c1 = {0};
    ck_assert_int_eq(pg_audit_query(s_audit, &af, s_count_line, &c1, e, sizeof e), 0);
    ck_assert_int_eq(c1.reject, 1);
    pg_audit_verify_result vr;
    ck_assert_int_eq(pg_audit_verify(s_audit, NULL, &vr, e, sizeof e), 0);

    /* after a restart: the dead letter is there, the message is not sent again */
    st = s_store_open();
    p = s_partner_zmq(st, pol, &r, 4);
    ck_assert_uint_eq(pg_partner_pending(p), 0);
    pg_partner_destroy(&p);
    pg_dlq *dlq = pg_dlq_new(st, NULL, e, sizeof e);
    ck_assert_msg(dlq != NULL, "%s", e);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_dlq_entry de;
    ck_assert_int_eq(pg_dlq_get(dlq, txn, 1, &de, e, sizeof e), 0);
    ck_assert_int_eq(de.kind, PG_DLQ_IMPORT);
    ck_assert_str_eq(de.reason, "record.id: no");
    ck_assert_str_eq(de.origin, "ESX");
    ck_assert_str_eq(de.format, "nx5");
    ck_assert_str_eq(de.ref, id);
    ck_assert_msg(strstr(de.ids, canon) != NULL, "%s lacks %s", de.ids, canon);
    ck_assert_uint_eq(de.len, sent_len);
    ck_assert_uint_eq(de.original_len, sent_len);
    ck_assert_mem_eq(de.data, sent, sent_len);
    ck_assert_int_gt(de.received_ms, 0);
    pg_store_abort(&txn);

    /* replay: to the RMS import endpoint, never our intake. Rejected again: kept. */
    pg_store_set_durable(st, 1);
    s_rms_once once = {.r = &r, .status = PG_EINVALID};
    pthread_t th;
    pthread_create(&th, NULL, s_rms_once_run, &once);
    pg_rms_delivery_config zc = {.transport = "zmq", .endpoint = r.endpoint, .zmq_ctx = r.ctx};
    ck_assert_int_eq(pg_dlq_resend(dlq, 1, &zc, NULL, 5000, e, sizeof e), PG_EINVALID);
    pthread_join(th, NULL);
    ck_assert_str_eq(e, "record.id: no");
    ck_assert_uint_eq(once.len, sent_len);
    ck_assert_mem_eq(once.body, sent, sent_len);
    /* no RMS answering: kept */
    pg_rms_delivery_config down = {.transport = "zmq", .endpoint = "tcp://127.0.0.1:1"};
    ck_assert_int_eq(pg_dlq_resend(dlq, 1, &down, NULL, 300, e, sizeof e), PG_ETIMEOUT);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_int_eq(pg_dlq_get(dlq, txn, 1, &de, e, sizeof e), 0);
    pg_store_abort(&txn);
    /* stored (a drop directory, the RMS's importer's): removed */
    pg_rms_delivery_config dc = {.transport = "dir", .endpoint = s_drop};
    ck_assert_msg(pg_dlq_resend(dlq, 1, &dc, NULL, 5000, e, sizeof e) == 0, "%s", e);
    char path[512];
    ck_assert_int_eq(s_count_files(s_drop, path, sizeof path), 1);
    ck_assert_ptr_nonnull(strstr(path, ".xml"));
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    uint8_t back[65536];
    size_t got = fread(back, 1, sizeof back, fp);
    fclose(fp);
    ck_assert_uint_eq(got, sent_len);
    ck_assert_mem_eq(back, sent, sent_len);
    txn = pg_store_begin(st, 0, e, sizeof e);
    ck_assert_int_eq(pg_dlq_get(dlq, txn, 1, &de, e, sizeof e), PG_ENOTFOUND);
    pg_store_abort(&txn);
    ck_assert_int_eq(pg_dlq_resend(dlq, 1, &dc, NULL, 5000, e, sizeof e), PG_ENOTFOUND);
    pg_dlq_destroy(&dlq);
    pg_store_destroy(&st);
    s_router_close(&r);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

/* Drive p until it has nothing pending, the RMS (r) answering every message it is sent
 * with status; how many there were. */
static int s_answer_all(pg_partner *p, s_router *r, int status)
{
    int n = 0;
    for (int i = 0; i < 250 && pg_partner_pending(p); i++) {
        /* (a poll of 0 ms reads no acks) */
        ck_assert_int_ge(pg_partner_poll(p, 10, e, sizeof e), 0);
        zmq_pollitem_t it = {.socket = r->sock, .events = ZMQ_POLLIN};
        char id[160], peer[64];
        size_t peer_len;
        if (zmq_poll(&it, 1, 10) <= 0 || !s_router_read(r, p, id, peer, &peer_len))
            continue;
        s_router_ack(r, peer, peer_len, id, status);
        n++;
    }
    ck_assert_uint_eq(pg_partner_pending(p), 0);
    return n;
}

/* p takes f's record i; the RMS answers what it composes of it with status. */
static void s_take_answered(pg_partner *p, s_router *r, const s_feed *f, size_t i, int status)
{
    ck_assert_msg(pg_partner_take(p, &f->recs[i], 1, e, sizeof e) == 0, "%s", e);
    ck_assert_int_eq(s_answer_all(p, r, status), 1);
}

/* f's entity record i again, as a DELETE at its version (a withdrawal) or an UPSERT
 * dv versions later: its index in f. */
static size_t s_feed_again(s_feed *f, size_t i, int del, uint64_t dv)
{
    pg_entity_update *u = s_person_of(f, i);
    pg_entity_update w = s_withdrawal_of(u);
    u->version += dv;
    s_feed_add(f, ESX_TO_MER, del ? &w.base : &u->base, "polegate.pole.v1.EntityUpdate", "ESX");
    polegate__pole__v1__entity_update__free_unpacked(u, NULL);
    return f->n - 1;
}

/* Import dead letters replayed after their records changed at the partner (found by
 * attack: a replay re-created at our RMS a record its partner had deleted since). An
 * UPSERT whose record the partner deleted, or updated again, since is refused and
 * kept; a DELETE dead letter goes, and so does the latest state of a record. */
START_TEST(test_import_replay_after_later_operations)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 7, ESX_TO_MER);
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    pg_store *st = s_store_open();
    s_router r;
    s_router_open(&r);
    pg_partner *p = s_partner_zmq(st, pol, &r, 4);
    size_t ent[3], n = 0;
    for (size_t i = 0; i < f->n && n < 3; i++)
        if (!strcmp(f->recs[i].type, "polegate.pole.v1.EntityUpdate"))
            ent[n++] = i;
    ck_assert_uint_eq(n, 3);
    char ids[3][PG_UUID_STR_SIZE];
    uint64_t version[3];
    for (size_t k = 0; k < 3; k++) {
        pg_entity_update *u = s_person_of(f, ent[k]);
        snprintf(ids[k], sizeof ids[k], "%s", u->id);
        version[k] = u->version;
        polegate__pole__v1__entity_update__free_unpacked(u, NULL);
    }
    /* the first: its UPSERT rejected (dead letter 1), then the partner's DELETE stored */
    s_take_answered(p, &r, f, ent[0], PG_EINVALID);
    s_take_answered(p, &r, f, s_feed_again(f, ent[0], 1, 0), 0);
    /* the second: stored, then its DELETE rejected (dead letter 2) */
    s_take_answered(p, &r, f, ent[1], 0);
    s_take_answered(p, &r, f, s_feed_again(f, ent[1], 1, 0), PG_EINVALID);
    /* the third: rejected (3), its next version stored, the one after rejected (4) */
    s_take_answered(p, &r, f, ent[2], PG_EINVALID);
    s_take_answered(p, &r, f, s_feed_again(f, ent[2], 0, 1), 0);
    s_take_answered(p, &r, f, s_feed_again(f, ent[2], 0, 2), PG_EINVALID);
    pg_partner_destroy(&p);

    pg_dlq *dlq = pg_dlq_new(st, NULL, e, sizeof e);
    ck_assert_msg(dlq != NULL, "%s", e);
    pg_rms_delivery_config dc = {.transport = "dir", .endpoint = s_drop};
    char path[512], want[512];
    /* the UPSERT of a record deleted since: not sent, kept */
    ck_assert_int_eq(pg_dlq_resend(dlq, 1, &dc, NULL, 5000, e, sizeof e), PG_EPOLICY);
    snprintf(want, sizeof want,
             "dlq: dead letter 1 is superseded: %s was deleted by the partner at version %" PRIu64
             " after this dead letter; it is not sent (purge it)",
             ids[0], version[0] + 1); /* a withdrawal at the version held: one revision more */
    ck_assert_str_eq(e, want);
    /* an older UPSERT than one stored since: not sent, kept */
    ck_assert_int_eq(pg_dlq_resend(dlq, 3, &dc, NULL, 5000, e, sizeof e), PG_EPOLICY);
    snprintf(want, sizeof want,
             "dlq: dead letter 3 is superseded: %s was updated by the partner at version %" PRIu64
             " after this dead letter; it is not sent (purge it)",
             ids[2], version[2] + 2);
    ck_assert_str_eq(e, want);
    ck_assert_int_eq(s_count_files(s_drop, path, sizeof path), 0);
    /* the partner's DELETE goes; so does the latest state of a record */
    ck_assert_msg(pg_dlq_resend(dlq, 2, &dc, NULL, 5000, e, sizeof e) == 0, "%s", e);
    ck_assert_msg(pg_dlq_resend(dlq, 4, &dc, NULL, 5000, e, sizeof e) == 0, "%s", e);
    ck_assert_int_eq(s_count_files(s_drop, path, sizeof path), 2);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    pg_dlq_stats ds;
    ck_assert_int_eq(pg_dlq_stat(dlq, txn, &ds, e, sizeof e), 0);
    ck_assert_uint_eq(ds.entries, 2); /* 1 and 3 */
    pg_store_abort(&txn);
    pg_dlq_destroy(&dlq);
    pg_store_destroy(&st);
    s_router_close(&r);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

/* A record's UPSERT dead-lettered, then the record merged away by the partner: its
 * replay would bring back a record the partner merged into another. */
START_TEST(test_import_replay_after_merge)
{
    static const char *const msgs[] = {
        S_ATX_HEAD("5e1d0000-0000-4000-8000-000000000d01") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                           "\"P0000000921\",\"revision\":1,"
                                                           "\"action\":\"UPSERT\","
                                                           "\"modifiedAt\":\"2026-01-05T09:00:00+"
                                                           "00:00\"," S_ATX_MARK S_ATX_RET
                                                           ",\"body\":{\"surname\":\"Away\"}},"
                                                           "\"links\":[]}",
        S_ATX_HEAD("5e1d0000-0000-4000-8000-000000000d02") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                           "\"P0000000922\",\"revision\":1,"
                                                           "\"action\":\"UPSERT\","
                                                           "\"modifiedAt\":\"2026-01-05T09:01:00+"
                                                           "00:00\"," S_ATX_MARK S_ATX_RET
                                                           ",\"body\":{\"surname\":\"Survivor\"}},"
                                                           "\"links\":[]}",
        S_ATX_HEAD("5e1d0000-0000-4000-8000-000000000d03") "\"record\":{\"type\":\"PERSON\",\"id\":"
                                                           "\"P0000000922\",\"revision\":2,"
                                                           "\"action\":\"UPSERT\","
                                                           "\"modifiedAt\":\"2026-01-05T09:03:00+"
                                                           "00:00\"," S_ATX_MARK S_ATX_RET
                                                           ",\"body\":{\"surname\":\"Survivor\"},"
                                                           "\"mergedFrom\":[\"P0000000921\"]},"
                                                           "\"links\":[]}",
        NULL};
    s_feed *f = s_feed_msgs(&pg_adapter_athena, msgs, ESX_TO_MER);
    ck_assert_uint_eq(f->n, 4); /* A, B, B2 (merge), A's DELETE */
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    pg_store *st = s_store_open();
    s_router r;
    s_router_open(&r);
    pg_partner *p = s_partner_zmq(st, pol, &r, 4);
    s_take_answered(p, &r, f, 0, PG_EINVALID); /* dead letter 1 */
    s_take_answered(p, &r, f, 1, 0);
    ck_assert_msg(pg_partner_take(p, &f->recs[2], 2, e, sizeof e) == 0, "%s", e);
    ck_assert_int_ge(s_answer_all(p, &r, 0), 1);
    pg_partner_destroy(&p);
    char away[PG_UUID_STR_SIZE], path[512];
    s_atx_uuid("PERSON", "P0000000921", away);
    pg_dlq *dlq = pg_dlq_new(st, NULL, e, sizeof e);
    ck_assert_msg(dlq != NULL, "%s", e);
    pg_rms_delivery_config dc = {.transport = "dir", .endpoint = s_drop};
    ck_assert_int_eq(pg_dlq_resend(dlq, 1, &dc, NULL, 5000, e, sizeof e), PG_EPOLICY);
    ck_assert_msg(strstr(e, "is superseded: ") && strstr(e, away) &&
                      strstr(e, " was deleted by the partner at version "),
                  "%s", e);
    ck_assert_int_eq(s_count_files(s_drop, path, sizeof path), 0);
    pg_dlq_destroy(&dlq);
    pg_store_destroy(&st);
    s_router_close(&r);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

START_TEST(test_restart_sends_the_import_queue_again)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 7, ESX_TO_MER);
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    s_router r;
    s_router_open(&r);
    char id1[160], id2[160], peer[64];
    size_t peer_len;
    /* run 1: composed, sent, the RMS stores it but its ack is lost (a crash) */
    pg_store *st = s_store_open();
    pg_partner *p = s_partner_zmq(st, pol, &r, 8);
    ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
    ck_assert(s_router_read(&r, p, id1, peer, &peer_len));
    pg_partner_destroy(&p);
    pg_store_destroy(&st);
    /* run 2: the same message, with the same correlation id, first */
    st = s_store_open();
    p = s_partner_zmq(st, pol, &r, 8);
    ck_assert_uint_eq(pg_partner_pending(p), 1);
    ck_assert_int_eq(pg_partner_busy(p), 1);
    ck_assert(s_router_read(&r, p, id2, peer, &peer_len));
    ck_assert_str_eq(id1, id2);
    /* and Kafka's redelivery of the uncommitted records composes nothing new */
    ck_assert_int_eq(pg_partner_take(p, f->recs, f->n, e, sizeof e), 0);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(ps.composed, 0);
    ck_assert_uint_eq(ps.duplicates, f->n);
    s_router_ack(&r, peer, peer_len, id2, 0);
    for (int i = 0; i < 50 && pg_partner_pending(p); i++)
        pg_partner_poll(p, 20, e, sizeof e);
    ck_assert_uint_eq(pg_partner_pending(p), 0);
    s_offsets off = {0};
    pg_partner_committable(p, s_offset_cb, &off);
    ck_assert_int_eq(off.next, (int64_t)f->n);
    pg_partner_destroy(&p);
    pg_store_destroy(&st);
    /* run 3: nothing left */
    st = s_store_open();
    p = s_partner_zmq(st, pol, &r, 8);
    ck_assert_uint_eq(pg_partner_pending(p), 0);
    pg_partner_destroy(&p);
    pg_store_destroy(&st);
    s_router_close(&r);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

START_TEST(test_rms_down_is_backpressure)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 0, ESX_TO_MER);
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    pg_store *st = s_store_open();
    void *ctx = zmq_ctx_new();
    pg_partner_opts o = {
        .force = "MER",
        .adapter = &pg_adapter_niche,
        .policy = pol,
        .store = st,
        .delivery = {
            .transport = "zmq", .endpoint = "inproc://nobody-here", .zmq_ctx = ctx, .window = 1}};
    pg_partner *p = pg_partner_new(&o, e, sizeof e);
    ck_assert_msg(p != NULL, "%s", e);
    for (size_t i = 0; i < f->n; i++)
        ck_assert_int_eq(pg_partner_take(p, &f->recs[i], 1, e, sizeof e), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(pg_partner_poll(p, 10, e, sizeof e), 0);
    ck_assert_int_eq(pg_partner_busy(p), 1);
    s_offsets off = {0};
    pg_partner_committable(p, s_offset_cb, &off);
    ck_assert_int_eq(off.calls, 0);
    pg_partner_stats ps;
    pg_partner_get_stats(p, &ps);
    ck_assert_uint_eq(pg_partner_pending(p), ps.composed);
    pg_partner_destroy(&p);
    zmq_ctx_term(ctx);
    pg_store_destroy(&st);
    pg_policy_destroy(&pol);
    s_feed_free(&f);
}
END_TEST

/* ------------------------------------------------------------ echoes */

static const char s_atx_echo[] =
    "{\"header\":{\"schema\":\"atx/2\",\"messageId\":\"5e1d0000-0000-4000-8000-0000000000b1\","
    "\"sentAt\":\"2026-10-20T10:00:00+01:00\",\"system\":\"ATHENA\",\"orgUnit\":\"%s\"},"
    "\"record\":{\"type\":\"PERSON\",\"id\":\"%s\",\"revision\":4,\"action\":\"UPSERT\","
    "\"modifiedAt\":\"2026-10-20T09:00:00+01:00\",\"marking\":{\"classification\":"
    "\"OFFICIAL\",\"handling\":\"P\",\"caveat\":null},\"retention\":{\"mopiGroup\":3,"
    "\"reviewDate\":\"2032-10-20\"},\"body\":{\"surname\":\"GARCIA\"}},"
    "\"links\":[{\"target\":{\"type\":\"LOCATION\",\"id\":\"%s\"},\"role\":\"HOME_ADDRESS\","
    "\"validFrom\":null,\"validTo\":null}]}";

static int s_echo(pg_echo *echo, pg_store *st, const char *org, const char *id, const char *target,
                  pg_changeset *cs, size_t *dropped)
{
    char *msg = g_strdup_printf(s_atx_echo, org, id, target);
    pg_changeset_reset(cs);
    ck_assert_msg(
        pg_adapter_athena.decode(NULL, (const uint8_t *)msg, strlen(msg), cs, e, sizeof e) == 0,
        "%s", e);
    g_free(msg);
    pg_store_txn *txn = pg_store_begin(st, 0, e, sizeof e);
    int rc = pg_echo_filter(echo, txn, cs, dropped, e, sizeof e);
    pg_store_abort(&txn);
    return rc;
}

START_TEST(test_echo_filter)
{
    pg_store *st = s_store_open();
    pg_idstore_config icfg = {.format = "atx"};
    pg_idstore *idmap = pg_idstore_new(st, &icfg, e, sizeof e);
    /* a MER person and location we gave ids in ESX's RMS */
    char person[PG_UUID_STR_SIZE], place[PG_UUID_STR_SIZE], pid[32], lid[32];
    pg_identity_entity("MER", "NICHE", "GID", "7F3A9C2E4B1D0A66", person);
    pg_identity_entity("MER", "NICHE", "GID", "00A1B2C3D4E5F607", place);
    ck_assert_int_eq(pg_idstore_resolve(idmap, NULL, person,
                                        POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON, pid,
                                        sizeof pid, NULL, e, sizeof e),
                     0);
    ck_assert_int_eq(pg_idstore_resolve(idmap, NULL, place,
                                        POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_LOCATION, lid,
                                        sizeof lid, NULL, e, sizeof e),
                     0);
    ck_assert_str_eq(pid, "P9000000001");
    pg_echo *echo = pg_echo_new(st, &pg_adapter_athena, "ESX", e, sizeof e);
    ck_assert_ptr_nonnull(echo);
    pg_changeset *cs = pg_changeset_new();
    size_t dropped;

    /* the RMS exports the imported person under MER's orgUnit: all of it an echo */
    ck_assert_int_eq(s_echo(echo, st, "MER", pid, lid, cs, &dropped), 0);
    ck_assert_uint_eq(cs->count, 0);
    ck_assert_uint_eq(dropped, 2);
    /* or under its own orgUnit: still the partner's record */
    ck_assert_int_eq(s_echo(echo, st, "ESX/CID", pid, lid, cs, &dropped), 0);
    ck_assert_uint_eq(cs->count, 0);
    ck_assert_uint_eq(dropped, 2);
    /* our own person living at MER's location: ours, the link's target made MER's */
    ck_assert_int_eq(s_echo(echo, st, "ESX", "P0000000077", lid, cs, &dropped), 0);
    ck_assert_uint_eq(dropped, 0);
    ck_assert_uint_eq(cs->count, 2);
    ck_assert_int_eq(cs->changes[1].type, PG_CHANGE_LINK);
    pg_link_update *l = cs->changes[1].link;
    ck_assert_str_eq(l->to->id, place);
    char want[PG_UUID_STR_SIZE];
    pg_identity_link(l->from->id, l->role, place, want);
    ck_assert_str_eq(l->id, want);
    /* our own records, untouched */
    ck_assert_int_eq(s_echo(echo, st, "ESX", "P0000000077", "L0000000045", cs, &dropped), 0);
    ck_assert_uint_eq(cs->count, 2);
    char other[PG_UUID_STR_SIZE];
    pg_identity_entity("ESX", "ATHENA", "LOCATION", "L0000000045", other);
    ck_assert_str_eq(cs->changes[1].link->to->id, other);
    /* another force's record that is not one we imported: refused as decode would */
    ck_assert_int_eq(s_echo(echo, st, "MER", "P0000000077", lid, cs, &dropped), PG_EINVALID);
    ck_assert_str_eq(e, "header.orgUnit: names another force than this gateway's, ESX");
    pg_changeset_destroy(&cs);
    pg_echo_destroy(&echo);
    ck_assert_ptr_null(echo);
    pg_echo_destroy(&echo);
    pg_idstore_destroy(&idmap);
    pg_store_destroy(&st);
}
END_TEST

START_TEST(test_new_refuses_incomplete_opts)
{
    pg_partner_opts o = {.force = "MER"};
    ck_assert_ptr_null(pg_partner_new(&o, e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "force, adapter, policy and store needed"));
    pg_policy *pol = s_policy(s_policy_mer, "MER");
    pg_store *st = s_store_open();
    o = (pg_partner_opts){.force = "MER",
                          .adapter = &pg_adapter_niche,
                          .policy = pol,
                          .store = st,
                          .delivery = {.transport = "pigeon", .endpoint = "x"}};
    ck_assert_ptr_null(pg_partner_new(&o, e, sizeof e));
    ck_assert_ptr_nonnull(strstr(e, "pigeon"));
    pg_store_destroy(&st);
    pg_policy_destroy(&pol);
}
END_TEST

/* ------------------------------------------------------------ the thread, mock cluster */

static void s_produce(rd_kafka_t *rk, const s_feed *f)
{
    for (size_t i = 0; i < f->n; i++) {
        const pg_consumer_record *r = &f->recs[i];
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "pg-type", -1, r->type, -1);
        if (r->force)
            rd_kafka_header_add(h, "pg-origin-force", -1, r->force, -1);
        ck_assert_int_eq(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_PARTITION(0),
                                           RD_KAFKA_V_KEY(r->key, r->key ? strlen(r->key) : 0),
                                           RD_KAFKA_V_VALUE((void *)r->value, r->len),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                         0);
    }
    ck_assert_int_eq(rd_kafka_flush(rk, 10000), 0);
}

static int64_t s_committed(const char *brokers, const char *group, const char *topic)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof why);
    rd_kafka_conf_set(conf, "group.id", group, why, sizeof why);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0);
    ck_assert_int_eq(rd_kafka_committed(rk, l, 10000), 0);
    int64_t off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return off;
}

START_TEST(test_service_against_mock_cluster)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 7, ESX_TO_MER);
    rd_kafka_conf_t *pconf = rd_kafka_conf_new();
    char why[256];
    rd_kafka_conf_set(pconf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, why, sizeof why);
    ck_assert_ptr_nonnull(prod);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(prod);
    ck_assert_ptr_nonnull(mc);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, ESX_TO_MER, 1, 1), 0);
    const char *brokers = rd_kafka_mock_cluster_bootstraps(mc);
    s_produce(prod, f);

    char *yaml = g_strdup_printf("force:\n  code: MER\nadapter:\n  name: niche\n"
                                 "intake:\n  endpoint: tcp://127.0.0.1:5556\n"
                                 "curve: {insecure: true}\n"
                                 "store:\n  path: %s\nkafka:\n  brokers: %s\n"
                                 "delivery:\n  transport: dir\n  endpoint: %s\n"
                                 "  group_id: test-partner\n%s",
                                 s_dir, brokers, s_drop, s_policy_mer);
    pg_config *cfg = pg_config_parse("test.yaml", yaml, strlen(yaml), e, sizeof e);
    g_free(yaml);
    ck_assert_msg(cfg != NULL, "%s", e);
    pg_store *st = s_store_open();
    pg_partner_service *svc = NULL;
    ck_assert_msg(pg_partner_service_start(cfg, st, NULL, &svc, e, sizeof e) == 0, "%s", e);
    ck_assert_ptr_nonnull(svc);
    pg_partner_stats ps = {0};
    /* Until every record is taken and one message stored: a poll may hand over the
     * records in more than one batch (a statistics event ends a batch). */
    for (int i = 0; i < 300 && (ps.stored < 1 || ps.records < f->n); i++) {
        usleep(50000);
        pg_partner_service_stats(svc, &ps);
    }
    ck_assert_uint_eq(ps.records, f->n);
    ck_assert_uint_ge(ps.stored, 1);
    pg_partner_service_stop(&svc, 5000);
    ck_assert_ptr_null(svc);
    ck_assert_int_eq(s_committed(brokers, "test-partner", ESX_TO_MER), (int64_t)f->n);
    size_t files;
    pg_rms_model *got = s_model_of_drop(&pg_adapter_niche, &files);
    pg_rms_model *want = pg_rms_model_new(&pg_adapter_niche);
    ck_assert_int_eq(pg_rms_model_apply_file(want, FIX("nx5-burglary-import.xml"), e, sizeof e), 0);
    s_assert_equivalent(got, want);
    pg_rms_model_destroy(&got);
    pg_rms_model_destroy(&want);

    /* again, with nothing new: nothing more is delivered */
    ck_assert_int_eq(pg_partner_service_start(cfg, st, NULL, &svc, e, sizeof e), 0);
    usleep(1500000);
    pg_partner_service_stats(svc, &ps);
    ck_assert_uint_eq(ps.records, 0);
    pg_partner_service_stop(&svc, 1000);

    /* no delivery endpoint: nothing to run */
    free(cfg->delivery_endpoint);
    cfg->delivery_endpoint = NULL;
    ck_assert_int_eq(pg_partner_service_start(cfg, st, NULL, &svc, e, sizeof e), 0);
    ck_assert_ptr_null(svc);
    pg_partner_service_stop(&svc, 0);
    pg_config_destroy(&cfg);
    pg_store_destroy(&st);
    rd_kafka_destroy(prod);
    s_feed_free(&f);
}
END_TEST

/* f produced to a one-broker mock cluster (*prod, its *brokers) and MER's config for
 * a partner service on a drop-directory RMS with consumer group group. */
static pg_config *s_small_store_setup(s_feed *f, const char *group, rd_kafka_t **prod,
                                      const char **brokers)
{
    rd_kafka_conf_t *pconf = rd_kafka_conf_new();
    char why[256];
    rd_kafka_conf_set(pconf, "test.mock.num.brokers", "1", why, sizeof why);
    *prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, why, sizeof why);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(*prod);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, ESX_TO_MER, 1, 1), 0);
    *brokers = rd_kafka_mock_cluster_bootstraps(mc);
    s_produce(*prod, f);
    char *yaml = g_strdup_printf("force:\n  code: MER\nadapter:\n  name: niche\n"
                                 "intake:\n  endpoint: tcp://127.0.0.1:5556\n"
                                 "curve: {insecure: true}\n"
                                 "store:\n  path: %s\nkafka:\n  brokers: %s\n"
                                 "delivery:\n  transport: dir\n  endpoint: %s\n"
                                 "  group_id: %s\n%s",
                                 s_dir, *brokers, s_drop, group, s_policy_mer);
    pg_config *cfg = pg_config_parse("test.yaml", yaml, strlen(yaml), e, sizeof e);
    g_free(yaml);
    ck_assert_msg(cfg != NULL, "%s", e);
    return cfg;
}

/* Issue 13, failure mode 1, partner side: partner records add to the store too, so
 * with the map nearly full they are left in Kafka (nothing taken, no offset committed)
 * rather than eat the headroom that removals of published records need; once there
 * is room again they are taken. */
START_TEST(test_service_keeps_store_headroom)
{
    s_feed *f = s_feed_of(&pg_adapter_athena, FIX("atx-burglary.ndjson"), 7, ESX_TO_MER);
    rd_kafka_t *prod;
    const char *brokers;
    pg_config *cfg = s_small_store_setup(f, "test-partner-full", &prod, &brokers);
    pg_store *st = pg_store_new(s_dir, (size_t)8 << 20, e, sizeof e);
    ck_assert_msg(st != NULL, "%s", e);
    pg_store_set_durable(st, 0);
    /* Fill the map up to its headroom with something else, until not even one
     * record's estimate (PG_STORE_GROWTH: 16 KiB and more) fits. */
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    pg_store_db filler;
    ck_assert_int_eq(pg_store_db_open(txn, "test.filler", 0, &filler, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    static char chunk[64 << 10];
    memset(chunk, 'x', sizeof chunk);
    int chunks = 0;
    for (;;) {
        pg_store_space_info sp;
        ck_assert_int_eq(pg_store_space(st, &sp, e, sizeof e), 0);
        size_t room = sp.map > sp.used + sp.headroom ? sp.map - sp.used - sp.headroom : 0;
        if (room < 8192)
            break;
        size_t size = room > (128 << 10) ? sizeof chunk : room / 4;
        txn = pg_store_begin(st, 1, e, sizeof e);
        ck_assert_int_eq(
            pg_store_put(txn, filler, &chunks, sizeof chunks, chunk, size, e, sizeof e), 0);
        ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
        chunks++;
    }
    pg_partner_service *svc = NULL;
    ck_assert_msg(pg_partner_service_start(cfg, st, NULL, &svc, e, sizeof e) == 0, "%s", e);
    /* The records are polled (the group joined) within a few seconds; they stay
     * untaken while the store has no room. */
    pg_partner_stats ps = {0};
    for (int i = 0; i < 160; i++) {
        usleep(50000);
        pg_partner_service_stats(svc, &ps);
        ck_assert_uint_eq(ps.records, 0);
    }
    /* room again: the same records are taken and delivered */
    txn = pg_store_begin(st, 1, e, sizeof e);
    for (int i = 0; i < chunks; i++)
        ck_assert_int_eq(pg_store_del(txn, filler, &i, sizeof i, NULL, 0, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    for (int i = 0; i < 300 && (ps.stored < 1 || ps.records < f->n); i++) {
        usleep(50000);
        pg_partner_service_stats(svc, &ps);
    }
    ck_assert_uint_eq(ps.records, f->n);
    ck_assert_uint_ge(ps.stored, 1);
    pg_partner_service_stop(&svc, 5000);
    ck_assert_int_eq(s_committed(brokers, "test-partner-full", ESX_TO_MER), (int64_t)f->n);
    pg_config_destroy(&cfg);
    pg_store_destroy(&st);
    rd_kafka_destroy(prod);
    s_feed_free(&f);
}
END_TEST

/* A store with room for some records but not for a whole batch of them by the
 * estimate (PG_STORE_GROWTH): the service polls as many as fit and takes them all, a
 * batch at a time, instead of holding one too large to ever fit. */
START_TEST(test_service_takes_what_fits)
{
    enum { N = 400 };
    char(*json)[640] = calloc(N, sizeof *json);
    const char **msgs = calloc(N + 1, sizeof *msgs);
    static const char fmt[] = S_ATX_HEAD(
        "5e1d0000-0000-4000-8000-%012d") "\"record\":{\"type\":\"PERSON\","
                                         "\"id\":\"P%010d\",\"revision\":1,\"action\":\"UPSERT\","
                                         "\"modifiedAt\":\"2026-01-05T09:00:00+00:"
                                         "00\"," S_ATX_MARK S_ATX_RET
                                         ",\"body\":{\"surname\":\"Fits%d\"}},\"links\":[]}";
    for (int i = 0; i < N; i++) {
        snprintf(json[i], sizeof json[i], fmt, i, 3000 + i, i);
        msgs[i] = json[i];
    }
    s_feed *f = s_feed_msgs(&pg_adapter_athena, msgs, ESX_TO_MER);
    ck_assert_uint_eq(f->n, N);
    rd_kafka_t *prod;
    const char *brokers;
    pg_config *cfg = s_small_store_setup(f, "test-partner-fits", &prod, &brokers);
    pg_store *st = pg_store_new(s_dir, (size_t)16 << 20, e, sizeof e);
    ck_assert_msg(st != NULL, "%s", e);
    pg_store_set_durable(st, 0);
    /* Fill the map until about 3 MiB are left: the estimate of 400 records (16 KiB and
     * more each) does not fit, that of 100 does. */
    pg_store_txn *txn = pg_store_begin(st, 1, e, sizeof e);
    pg_store_db filler;
    ck_assert_int_eq(pg_store_db_open(txn, "test.filler", 0, &filler, e, sizeof e), 0);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    static char chunk[64 << 10];
    memset(chunk, 'x', sizeof chunk);
    for (int chunks = 0;; chunks++) {
        pg_store_space_info sp;
        ck_assert_int_eq(pg_store_space(st, &sp, e, sizeof e), 0);
        size_t room = sp.map > sp.used + sp.headroom ? sp.map - sp.used - sp.headroom : 0;
        if (room < ((size_t)3 << 20))
            break;
        txn = pg_store_begin(st, 1, e, sizeof e);
        ck_assert_int_eq(
            pg_store_put(txn, filler, &chunks, sizeof chunks, chunk, sizeof chunk, e, sizeof e), 0);
        ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    }
    pg_partner_service *svc = NULL;
    ck_assert_msg(pg_partner_service_start(cfg, st, NULL, &svc, e, sizeof e) == 0, "%s", e);
    pg_partner_stats ps = {0};
    for (int i = 0; i < 400 && (ps.records < f->n || ps.stored < ps.composed); i++) {
        usleep(50000);
        pg_partner_service_stats(svc, &ps);
    }
    ck_assert_uint_eq(ps.records, f->n);
    ck_assert_uint_gt(ps.batches, 1);
    ck_assert_uint_eq(ps.stored, ps.composed);
    pg_partner_service_stop(&svc, 5000);
    ck_assert_int_eq(s_committed(brokers, "test-partner-fits", ESX_TO_MER), (int64_t)f->n);
    pg_config_destroy(&cfg);
    pg_store_destroy(&st);
    rd_kafka_destroy(prod);
    s_feed_free(&f);
    free(msgs);
    free(json);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("partner");
    TCase *tc = tcase_create("pipeline");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_burglary_to_nx5_drop_dir);
    tcase_add_test(tc, test_batches_agree_with_one_at_a_time);
    tcase_add_test(tc, test_duplicates_and_stale_dropped);
    tcase_add_test(tc, test_created_then_deleted_in_one_batch);
    tcase_add_test(tc, test_atx_take_of_many_records);
    tcase_add_test(tc, test_merged_away_withdrawn_whatever_the_order);
    tcase_add_test(tc, test_nx5_delete_of_handling_c_reaches_atx);
    tcase_add_test(tc, test_link_survives_an_older_withdrawal_read_later);
    tcase_add_test(tc, test_withdrawal_at_equal_version);
    tcase_add_test(tc, test_tombstone_forgets_what_it_keys);
    tcase_add_test(tc, test_tombstone_read_again_after_a_later_upsert);
    tcase_add_test(tc, test_inbound_checks_and_audit);
    tcase_add_test(tc, test_audit_fails_closed);
    tcase_add_test(tc, test_partner_cannot_touch_another_partners_record);
    tcase_add_test(tc, test_bad_headers_are_dead_letters);
    tcase_add_test(tc, test_unencodable_change_is_a_dead_letter);
    tcase_add_test(tc, test_ledger_refusal_is_a_dead_letter);
    tcase_add_test(tc, test_partner_cannot_link_another_forces_records);
    tcase_add_test(tc, test_partner_cannot_merge_another_forces_record);
    tcase_add_test(tc, test_partner_ids_cannot_poison_the_audit_log);
    tcase_add_test(tc, test_partner_record_too_large_for_the_rms);
    tcase_add_test(tc, test_partner_body_must_match_kind);
    tcase_add_test(tc, test_partner_record_never_changes_kind);
    tcase_add_test(tc, test_partner_dead_letter_replay);
    tcase_add_test(tc, test_cli_replays_partner_dead_letters);
    tcase_add_test(tc, test_offsets_wait_for_acks_and_window);
    tcase_add_test(tc, test_rms_rejection_is_a_dead_letter);
    tcase_add_test(tc, test_import_replay_after_later_operations);
    tcase_add_test(tc, test_import_replay_after_merge);
    tcase_add_test(tc, test_restart_sends_the_import_queue_again);
    tcase_add_test(tc, test_rms_down_is_backpressure);
    tcase_add_test(tc, test_echo_filter);
    tcase_add_test(tc, test_new_refuses_incomplete_opts);
    tcase_add_test(tc, test_service_against_mock_cluster);
    tcase_add_test(tc, test_service_keeps_store_headroom);
    tcase_add_test(tc, test_service_takes_what_fits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(s_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
