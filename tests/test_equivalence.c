/* Equivalence of the paired samples through the canonical model: each source stream,
 * translated by the partner path (adapter decode -> ledger -> idmap -> adapter encode),
 * leaves the target RMS in the state of the sample written for it. */
#include <check.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"
#include "idstore.h"
#include "ledger.h"
#include "polegate/adapter.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/pole.h"
#include "rms_model.h"
#include "store.h"

#define FIX(name) PG_FIXTURES "/" name

/* 2026-11-01T12:00:00Z: the sending time written into translated messages. */
#define S_NOW_MS 1793534400000LL

static char e[PG_ERRSTR_SIZE];

/* ------------------------------------------------------------ models of the samples */

static pg_rms_model *s_model(const pg_adapter_ops *adapter)
{
    pg_rms_model *m = pg_rms_model_new(adapter);
    ck_assert_ptr_nonnull(m);
    return m;
}

static void s_apply_file(pg_rms_model *m, const char *path)
{
    ck_assert_msg(pg_rms_model_apply_file(m, path, e, sizeof e) == 0, "%s: %s", path, e);
}

static void s_apply_text(pg_rms_model *m, const char *text)
{
    ck_assert_msg(pg_rms_model_apply_bytes(m, (const uint8_t *)text, strlen(text), e, sizeof e) ==
                      0,
                  "%s", e);
}

/* The first n messages of a file, as one string (NDJSON lines). */
static char *s_first_lines(const char *path, int n)
{
    gchar *data;
    ck_assert(g_file_get_contents(path, &data, NULL, NULL));
    char *p = data;
    for (int i = 0; i < n && p; i++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (p)
        *p = '\0';
    return data;
}

static char *s_read(const char *path)
{
    gchar *data;
    ck_assert(g_file_get_contents(path, &data, NULL, NULL));
    return data;
}

/* Replace the one occurrence of from in text with to (the text must hold it once). */
static char *s_replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "'%s' not in the sample", from);
    ck_assert_msg(strstr(at + 1, from) == NULL, "'%s' more than once", from);
    return g_strdup_printf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* Compare; on a difference, fail with every line and both models. */
static size_t s_compare(const pg_rms_model *a, const pg_rms_model *b, pg_buf *diff)
{
    pg_buf_reset(diff);
    size_t n = pg_rms_model_compare(a, b, NULL, diff);
    return n;
}

static void s_assert_equivalent(const pg_rms_model *a, const pg_rms_model *b)
{
    pg_buf diff = PG_BUF_INIT;
    size_t n = s_compare(a, b, &diff);
    if (n) {
        fprintf(stderr, "---- a\n");
        pg_rms_model_dump(a, stderr);
        fprintf(stderr, "---- b\n");
        pg_rms_model_dump(b, stderr);
    }
    ck_assert_msg(n == 0, "%zu differences:\n%s", n, diff.data ? (char *)diff.data : "");
    pg_buf_free(&diff);
}

/* ------------------------------------------------------------ the partner path */

/* What the daemon does with the canonical updates of a partner: a partner ledger
 * (duplicates, stale revisions, link state), then gateway/compose (the native messages
 * each right on its own, ids and revisions from the idmap), delivered to the RMS
 * model. */
typedef struct s_pipe {
    const pg_adapter_ops *src, *dst;
    char dir[64];
    pg_store *store;
    pg_ledger *ledger;
    pg_idstore *idmap;
    pg_compose *compose;
    pg_rms_model *rms;
    pg_changeset *in, *out;
    int batches;
    size_t sent; /* native messages delivered */
} s_pipe;

static s_pipe *s_pipe_new(const pg_adapter_ops *src, const pg_adapter_ops *dst)
{
    s_pipe *p = calloc(1, sizeof(*p));
    p->src = src;
    p->dst = dst;
    snprintf(p->dir, sizeof p->dir, "/tmp/pg-test-equiv-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(p->dir));
    p->store = pg_store_new(p->dir, 0, e, sizeof e);
    ck_assert_msg(p->store != NULL, "%s", e);
    pg_store_set_durable(p->store, 0);
    p->ledger = pg_ledger_new_named(p->store, "partner", e, sizeof e);
    ck_assert_msg(p->ledger != NULL, "%s", e);
    pg_idstore_config cfg = {.format = dst->format};
    p->idmap = pg_idstore_new(p->store, &cfg, e, sizeof e);
    ck_assert_msg(p->idmap != NULL, "%s", e);
    pg_compose_opts co = {
        .adapter = dst, .ledger = p->ledger, .idmap = p->idmap, .now_ms = S_NOW_MS};
    p->compose = pg_compose_new(&co, e, sizeof e);
    ck_assert_msg(p->compose != NULL, "%s", e);
    p->rms = s_model(dst);
    p->in = pg_changeset_new();
    p->out = pg_changeset_new();
    return p;
}

static void s_pipe_free(s_pipe *p)
{
    pg_changeset_destroy(&p->in);
    pg_changeset_destroy(&p->out);
    pg_rms_model_destroy(&p->rms);
    pg_compose_destroy(&p->compose);
    pg_idstore_destroy(&p->idmap);
    pg_ledger_destroy(&p->ledger);
    pg_store_destroy(&p->store);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", p->dir);
    ck_assert_int_eq(system(cmd), 0);
    free(p);
}

/* The sink: each composed message straight into the RMS model. */
static int s_deliver(void *arg, const uint8_t *msg, size_t len, const pg_changeset *cs)
{
    s_pipe *p = arg;
    (void)cs;
    int rc = pg_rms_model_apply_bytes(p->rms, msg, len, e, sizeof e);
    ck_assert_msg(rc == 0, "the %s RMS rejects what we sent: %s\n%.*s", p->dst->format, e, (int)len,
                  (const char *)msg);
    p->sent++;
    return 0;
}

static void s_refused(void *arg, const pg_change *change, const char *reason)
{
    (void)arg, (void)change;
    ck_abort_msg("the encoder refused a change: %s", reason);
}

/* One native message from the partner's RMS, all the way to ours. */
static int s_pipe_one(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_pipe *p = arg;
    pg_changeset_reset(p->in);
    pg_changeset_reset(p->out);
    pg_adapter_ctx ctx = {0};
    int rc = p->src->decode(&ctx, msg, len, p->in, e, sizeof e);
    ck_assert_msg(rc == 0, "message %zu: %s decode: %s", pos, p->src->format, e);
    pg_store_txn *txn = pg_store_begin(p->store, 1, e, sizeof e);
    ck_assert_ptr_nonnull(txn);
    pg_ledger_result res;
    rc = pg_ledger_apply(p->ledger, txn, p->in, p->out, &res, e, sizeof e);
    ck_assert_msg(rc == 0, "message %zu: ledger: %s", pos, e);
    char batch[32];
    snprintf(batch, sizeof batch, "gw-%06d", ++p->batches);
    pg_compose_sink sink = {.emit = s_deliver, .refused = s_refused, .arg = p};
    rc = pg_compose_run(p->compose, txn, p->out, batch, &sink, e, sizeof e);
    ck_assert_msg(rc == 0, "message %zu: compose: %s", pos, e);
    ck_assert_int_eq(pg_store_commit(&txn, e, sizeof e), 0);
    return 0;
}

static void s_pipe_text(s_pipe *p, const char *text)
{
    ck_assert_int_eq(p->src->split((const uint8_t *)text, strlen(text), s_pipe_one, p), 0);
}

static void s_pipe_file(s_pipe *p, const char *path)
{
    char *text = s_read(path);
    s_pipe_text(p, text);
    g_free(text);
}

/* ------------------------------------------------------------ Merseyside's past */

/* What the README says Merseyside sent before: the telephone (T9000000031) and the
 * person later merged away (P9000000002), who used that telephone. */
static const char s_mer_before[] =
    "{\"header\":{\"schema\":\"atx/2\",\"messageId\":\"5e1d0000-0000-4000-8000-0000000000a1\","
    "\"sentAt\":\"2026-10-20T10:00:00+01:00\",\"system\":\"ATHENA\",\"orgUnit\":\"MER\"},"
    "\"record\":{\"type\":\"TELEPHONE\",\"id\":\"T9000000031\",\"revision\":4,\"action\":"
    "\"UPSERT\",\"modifiedAt\":\"2026-10-20T09:00:00+01:00\",\"marking\":{\"classification\":"
    "\"OFFICIAL\",\"handling\":\"P\",\"caveat\":null},\"retention\":{\"mopiGroup\":3,"
    "\"reviewDate\":\"2032-10-20\"},\"body\":{\"number\":\"07700 900031\",\"kind\":\"MOBILE\"}},"
    "\"links\":[]}\n"
    "{\"header\":{\"schema\":\"atx/2\",\"messageId\":\"5e1d0000-0000-4000-8000-0000000000a2\","
    "\"sentAt\":\"2026-10-20T10:00:00+01:00\",\"system\":\"ATHENA\",\"orgUnit\":\"MER\"},"
    "\"record\":{\"type\":\"PERSON\",\"id\":\"P9000000002\",\"revision\":3,\"action\":"
    "\"UPSERT\",\"modifiedAt\":\"2026-10-20T09:00:00+01:00\",\"marking\":{\"classification\":"
    "\"OFFICIAL-SENSITIVE\",\"handling\":\"P\",\"caveat\":null},\"retention\":{\"mopiGroup\":2,"
    "\"reviewDate\":\"2036-10-20\"},\"body\":{\"surname\":\"GARCIA\",\"forenames\":[\"JOSE\"]}},"
    "\"links\":[{\"target\":{\"type\":\"TELEPHONE\",\"id\":\"T9000000031\"},\"role\":\"USES\","
    "\"validFrom\":null,\"validTo\":null}]}\n";

static void s_mer_seed_idmap(s_pipe *p)
{
    char u[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_identity_entity("MER", "NICHE", "GID", "7E1E000000000031", u), 0);
    ck_assert_int_eq(pg_idstore_put(p->idmap, NULL, u,
                                    POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_TELEPHONE,
                                    "T9000000031", e, sizeof e),
                     0);
    ck_assert_int_eq(pg_identity_entity("MER", "NICHE", "GID", "7F3A9C2E4B1D0B01", u), 0);
    ck_assert_int_eq(pg_idstore_put(p->idmap, NULL, u,
                                    POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON,
                                    "P9000000002", e, sizeof e),
                     0);
}

/* ------------------------------------------------------------ the samples agree */

START_TEST(test_samples_burglary_cross_format)
{
    /* The two burglary samples, each applied to its own RMS, hold the same records. */
    pg_rms_model *atx = s_model(&pg_adapter_athena), *nx5 = s_model(&pg_adapter_niche);
    char *seven = s_first_lines(FIX("atx-burglary.ndjson"), 7);
    s_apply_text(atx, seven);
    g_free(seven);
    s_apply_file(nx5, FIX("nx5-burglary-import.xml"));
    ck_assert_uint_eq(pg_rms_model_records(atx), 7);
    ck_assert_uint_eq(pg_rms_model_links(atx), 9);
    ck_assert_uint_eq(pg_rms_model_records(nx5), 7);
    ck_assert_uint_eq(pg_rms_model_links(nx5), 9);
    s_assert_equivalent(atx, nx5);
    pg_rms_model_destroy(&atx);
    pg_rms_model_destroy(&nx5);
}
END_TEST

START_TEST(test_samples_merseyside_cross_format)
{
    pg_rms_model *nx5 = s_model(&pg_adapter_niche), *atx = s_model(&pg_adapter_athena);
    s_apply_file(nx5, FIX("nx5-merseyside-export.xml"));
    s_apply_file(atx, FIX("atx-merseyside-import.ndjson"));
    ck_assert_uint_eq(pg_rms_model_records(nx5), 5);
    ck_assert_uint_eq(pg_rms_model_links(nx5), 5);
    s_assert_equivalent(nx5, atx);
    pg_rms_model_destroy(&nx5);
    pg_rms_model_destroy(&atx);
}
END_TEST

/* ------------------------------------------------------------ translated equals sample */

START_TEST(test_burglary_atx_to_nx5)
{
    s_pipe *p = s_pipe_new(&pg_adapter_athena, &pg_adapter_niche);
    char *seven = s_first_lines(FIX("atx-burglary.ndjson"), 7);
    s_pipe_text(p, seven);
    g_free(seven);
    pg_rms_model *want = s_model(&pg_adapter_niche);
    s_apply_file(want, FIX("nx5-burglary-import.xml"));
    s_assert_equivalent(p->rms, want);
    ck_assert_uint_eq(pg_rms_model_records(p->rms), 7);
    ck_assert_uint_eq(pg_rms_model_links(p->rms), 9);
    /* revisions as the source's while they increase */
    char gid[32];
    char u[PG_UUID_STR_SIZE];
    pg_identity_entity("ESX", "ATHENA", "PERSON", "P0000123456", u);
    ck_assert_int_eq(pg_idstore_lookup(p->idmap, NULL, u, gid, sizeof gid, e, sizeof e), 0);
    ck_assert_uint_eq(pg_rms_model_revision(p->rms, gid), 7);
    pg_rms_model_destroy(&want);
    s_pipe_free(p);
}
END_TEST

START_TEST(test_burglary_atx_to_nx5_with_delete)
{
    /* All 8 messages: the telephone goes, and with it the USES link, on both sides. */
    s_pipe *p = s_pipe_new(&pg_adapter_athena, &pg_adapter_niche);
    s_pipe_file(p, FIX("atx-burglary.ndjson"));
    pg_rms_model *src = s_model(&pg_adapter_athena);
    s_apply_file(src, FIX("atx-burglary.ndjson"));
    ck_assert_uint_eq(pg_rms_model_records(src), 6);
    ck_assert_uint_eq(pg_rms_model_links(src), 8);
    s_assert_equivalent(src, p->rms);
    /* and a repeat of the whole stream changes nothing */
    size_t sent = p->sent;
    s_pipe_file(p, FIX("atx-burglary.ndjson"));
    ck_assert_uint_eq(p->sent, sent);
    s_assert_equivalent(src, p->rms);
    pg_rms_model_destroy(&src);
    s_pipe_free(p);
}
END_TEST

START_TEST(test_merseyside_nx5_to_atx)
{
    s_pipe *p = s_pipe_new(&pg_adapter_niche, &pg_adapter_athena);
    s_mer_seed_idmap(p);
    s_apply_text(p->rms, s_mer_before);
    s_pipe_file(p, FIX("nx5-merseyside-export.xml"));
    pg_rms_model *want = s_model(&pg_adapter_athena);
    s_apply_text(want, s_mer_before);
    s_apply_file(want, FIX("atx-merseyside-import.ndjson"));
    ck_assert_uint_eq(pg_rms_model_records(want), 5);
    s_assert_equivalent(p->rms, want);
    /* the sample's ids, too: assigned in the same order */
    const char *ids[] = {"L9000000001", "P9000000001", "W9000000001", "C9000000001", "N9000000001"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(pg_rms_model_get(p->rms, ids[i]) != NULL, "%s", ids[i]);
    ck_assert_ptr_null(pg_rms_model_get(p->rms, "T9000000031"));
    ck_assert_ptr_null(pg_rms_model_get(p->rms, "P9000000002"));
    ck_assert(!pg_rms_model_has_link(p->rms, "P9000000002",
                                     POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_USES, "T9000000031"));
    pg_rms_model_destroy(&want);
    s_pipe_free(p);
}
END_TEST

START_TEST(test_link_only_change_resends_source)
{
    /* A later NX5 document that only adds a link: ATX learns it from the source record
     * sent again, with a higher revision and all its links. */
    s_pipe *p = s_pipe_new(&pg_adapter_niche, &pg_adapter_athena);
    s_mer_seed_idmap(p);
    s_pipe_file(p, FIX("nx5-merseyside-export.xml"));
    uint64_t rev = pg_rms_model_revision(p->rms, "P9000000001");
    ck_assert_uint_eq(rev, 12);
    size_t links = pg_rms_model_links(p->rms);
    s_pipe_text(p, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<NX5Exchange xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"MER\" "
                   "Batch=\"20261025-000318\" Created=\"25/10/2026 03:00:00\">\n"
                   "  <Link Role=\"ADDR\" From=\"7F3A9C2E4B1D0A66\" To=\"00A1B2C3D4E5F607\"/>\n"
                   "</NX5Exchange>\n");
    ck_assert_uint_eq(pg_rms_model_revision(p->rms, "P9000000001"), 13);
    ck_assert_uint_eq(pg_rms_model_links(p->rms), links + 1);
    ck_assert(pg_rms_model_has_link(p->rms, "P9000000001",
                                    POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_OTHER_ADDRESS,
                                    "L9000000001"));
    ck_assert(pg_rms_model_has_link(p->rms, "P9000000001",
                                    POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS,
                                    "L9000000001"));
    s_pipe_free(p);
}
END_TEST

/* ------------------------------------------------------------ the comparator fails */

/* The ATX burglary sample's 7 UPSERTs in *atx, and the NX5 burglary sample with `from`
 * replaced by `to` in *nx5. */
static void s_burglary_pair(const char *from, const char *to, pg_rms_model **atx,
                            pg_rms_model **nx5)
{
    *atx = s_model(&pg_adapter_athena);
    *nx5 = s_model(&pg_adapter_niche);
    char *seven = s_first_lines(FIX("atx-burglary.ndjson"), 7);
    s_apply_text(*atx, seven);
    char *xml = s_read(FIX("nx5-burglary-import.xml"));
    char *edited = s_replace(xml, from, to);
    s_apply_text(*nx5, edited);
    g_free(seven);
    g_free(xml);
    g_free(edited);
}

/* Compared with the edited NX5 sample, the difference lines must be exactly these. */
static void s_expect_burglary_diff(const char *from, const char *to, const char *const *lines)
{
    pg_rms_model *atx, *nx5;
    s_burglary_pair(from, to, &atx, &nx5);
    pg_buf diff = PG_BUF_INIT;
    size_t n = s_compare(atx, nx5, &diff);
    ck_assert_uint_gt(n, 0);
    size_t want = 0;
    for (size_t i = 0; lines[i]; i++, want++)
        ck_assert_msg(strstr((char *)diff.data, lines[i]) != NULL, "'%s' not in:\n%s", lines[i],
                      (char *)diff.data);
    ck_assert_msg(n == want, "%zu differences, expected %zu:\n%s", n, want, (char *)diff.data);
    pg_buf_free(&diff);
    pg_rms_model_destroy(&atx);
    pg_rms_model_destroy(&nx5);
}

START_TEST(test_catches_changed_name)
{
    const char *lines[] = {"record PERSON P0000123456 ~ B100000000123456: person.name: "
                           "'O'BRIEN / SEÁN / PATRICK' != 'O'BRIEN / SEÁN / PADRAIG'",
                           NULL};
    s_expect_burglary_diff("<Given>PATRICK</Given>", "<Given>PADRAIG</Given>", lines);
}
END_TEST

START_TEST(test_catches_changed_surname)
{
    /* matched by content, the person is missing on each side, and so are its links */
    const char *lines[] = {"record PERSON P0000123999 (PERSON|ŁUKASZEWSKA|1990-2-0): not in b",
                           "record PERSON B100000000123999 (PERSON|LUKASZEWSKA|1990-2-0): not in a",
                           "link O0000004711 -VICTIM-> P0000123999: an end has no counterpart in b",
                           "link P0000123999 -OWNER-> I0000000777: an end has no counterpart in b",
                           "link P0000123999 -HOME_ADDRESS-> L0000000045: an end has no "
                           "counterpart in b",
                           "link B100000000123999 -OWNER-> D100000000000777: not in a",
                           "link B100000000123999 -HOME_ADDRESS-> A100000000000045: not in a",
                           "link F100000000004711 -VICTIM-> B100000000123999: not in a",
                           NULL};
    s_expect_burglary_diff("<Surname>ŁUKASZEWSKA</Surname>", "<Surname>LUKASZEWSKA</Surname>",
                           lines);
}
END_TEST

START_TEST(test_catches_missing_link)
{
    const char *lines[] = {"link P0000123999 -OWNER-> I0000000777: not in b", NULL};
    s_expect_burglary_diff("<Link Role=\"OWN\" From=\"B100000000123999\" To=\"D100000000000777\"/>",
                           "", lines);
}
END_TEST

START_TEST(test_catches_wrong_role)
{
    const char *lines[] = {"link O0000004711 -SUSPECT-> P0000123456: not in b",
                           "link F100000000004711 -WITNESS-> B100000000123456: not in a", NULL};
    s_expect_burglary_diff("<Link Role=\"SUSP\"", "<Link Role=\"WIT\"", lines);
}
END_TEST

START_TEST(test_catches_changed_link_dates)
{
    const char *lines[] = {"link P0000123999 -HOME_ADDRESS-> L0000000045: valid [2021-06-01, "
                           "open] != [2021-06-02, open]",
                           NULL};
    s_expect_burglary_diff("Start=\"01/06/2021\"", "Start=\"02/06/2021\"", lines);
}
END_TEST

START_TEST(test_catches_position_50m_off)
{
    const char *lines[] = {"record LOCATION L0000000045 ~ A100000000000045: location.geo: ", NULL};
    s_expect_burglary_diff("<Easting>599949.6</Easting>", "<Easting>599999.6</Easting>", lines);
    /* and 3 m off is the same place */
    pg_rms_model *atx, *nx5;
    s_burglary_pair("<Easting>599949.6</Easting>", "<Easting>599952.6</Easting>", &atx, &nx5);
    s_assert_equivalent(atx, nx5);
    pg_rms_model_destroy(&atx);
    pg_rms_model_destroy(&nx5);
}
END_TEST

START_TEST(test_catches_marking_and_retention)
{
    const char *lines[] = {"record VEHICLE V0000000301 ~ C100000000000301: marking.classification: "
                           "CLASSIFICATION_OFFICIAL_SENSITIVE != CLASSIFICATION_SECRET",
                           "record VEHICLE V0000000301 ~ C100000000000301: retention.mopi_group: 2 "
                           "!= 3",
                           NULL};
    s_expect_burglary_diff("GID=\"C100000000000301\" Rev=\"1\" Op=\"Add\" Modified=\"29/03/2026 "
                           "07:14:30\" GPMS=\"OS\" Handling=\"P\" MoPI=\"2\"",
                           "GID=\"C100000000000301\" Rev=\"1\" Op=\"Add\" Modified=\"29/03/2026 "
                           "07:14:30\" GPMS=\"S\" Handling=\"P\" MoPI=\"3\"",
                           lines);
}
END_TEST

START_TEST(test_catches_code)
{
    const char *lines[] = {"record VEHICLE V0000000301 ~ C100000000000301: vehicle.colour: "
                           "COLOUR_SILVER != COLOUR_GREY",
                           NULL};
    s_expect_burglary_diff("<Colour>SIL</Colour>", "<Colour>GRY</Colour>", lines);
}
END_TEST

/* ------------------------------------------------------------ the models themselves */

START_TEST(test_atx_model_rules)
{
    pg_rms_model *m = s_model(&pg_adapter_athena);
    s_apply_file(m, FIX("atx-burglary.ndjson"));
    /* the DELETE took the telephone and the USES link to it */
    ck_assert_ptr_null(pg_rms_model_get(m, "T0000000042"));
    ck_assert_uint_eq(pg_rms_model_revision(m, "T0000000042"), 2);
    ck_assert(!pg_rms_model_has_link(m, "P0000123456",
                                     POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_USES, "T0000000042"));
    ck_assert(pg_rms_model_has_link(
        m, "P0000123456", POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_KEEPER, "V0000000301"));
    /* the same stream again: every message a duplicate */
    s_apply_file(m, FIX("atx-burglary.ndjson"));
    ck_assert_uint_eq(pg_rms_model_duplicates(m), 8);
    /* a stale UPSERT (same revision, new messageId) changes nothing, links included */
    char *lines = s_first_lines(FIX("atx-burglary.ndjson"), 2);
    char *second = strchr(lines, '\n') + 1;
    char *stale = s_replace(second, "5a3f7d0c2e01", "5a3f7d0c2e99");
    char *stale2 = s_replace(stale, "\"role\": \"KEEPER\"", "\"role\": \"OWNER\"");
    s_apply_text(m, stale2);
    ck_assert_uint_eq(pg_rms_model_stale(m), 1);
    ck_assert(!pg_rms_model_has_link(
        m, "P0000123456", POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_OWNER, "V0000000301"));
    /* a newer one replaces the record's links */
    char *newid = s_replace(stale2, "5a3f7d0c2e99", "5a3f7d0c2e98");
    char *newer = s_replace(newid, "\"revision\": 7", "\"revision\": 8");
    s_apply_text(m, newer);
    ck_assert(pg_rms_model_has_link(m, "P0000123456",
                                    POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_OWNER, "V0000000301"));
    ck_assert(!pg_rms_model_has_link(
        m, "P0000123456", POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_KEEPER, "V0000000301"));
    /* a DELETE of the location drops links from others to it */
    ck_assert(pg_rms_model_has_link(
        m, "P0000123999", POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS, "L0000000045"));
    s_apply_text(m, "{\"header\":{\"schema\":\"atx/2\",\"messageId\":"
                    "\"0b7c7a52-6a83-4d71-9a55-5a3f7d0c2e77\",\"sentAt\":"
                    "\"2026-10-25T01:30:00.000+00:00\",\"system\":\"ATHENA\",\"orgUnit\":\"ESX\"},"
                    "\"record\":{\"type\":\"LOCATION\",\"id\":\"L0000000045\",\"revision\":4,"
                    "\"action\":\"DELETE\",\"modifiedAt\":\"2026-10-25T01:29:00.000+00:00\","
                    "\"marking\":{\"classification\":\"OFFICIAL\",\"handling\":\"P\"}}}\n");
    ck_assert(!pg_rms_model_has_link(
        m, "P0000123999", POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_HOME_ADDRESS, "L0000000045"));
    ck_assert(!pg_rms_model_has_link(
        m, "O0000004711", POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_OCCURRED_AT, "L0000000045"));
    g_free(lines);
    g_free(stale);
    g_free(stale2);
    g_free(newid);
    g_free(newer);
    pg_rms_model_destroy(&m);
}
END_TEST

START_TEST(test_nx5_model_rules)
{
    pg_rms_model *m = s_model(&pg_adapter_niche);
    /* links to GIDs never seen are kept; a merge moves links from and to the merged */
    s_apply_text(m, "<?xml version=\"1.0\"?>\n<NX5Exchange xmlns=\"urn:nx:exchange:5\" "
                    "Source=\"NICHE\" Force=\"MER\" Batch=\"b1\" Created=\"25/10/2026 00:00:00\">"
                    "<Link Role=\"USES\" From=\"7F3A9C2E4B1D0B01\" To=\"7E1E000000000031\"/>"
                    "<Link Role=\"DETD\" From=\"5EC0000000000009\" To=\"7F3A9C2E4B1D0B01\"/>"
                    "<Link Role=\"DETD\" From=\"5EC0000000000009\" To=\"7F3A9C2E4B1D0A66\"/>"
                    "</NX5Exchange>");
    ck_assert_uint_eq(pg_rms_model_links(m), 3);
    ck_assert_uint_eq(pg_rms_model_records(m), 0);
    s_apply_file(m, FIX("nx5-merseyside-export.xml"));
    const int uses = POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_USES;
    const int detd = POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_DETAINED;
    /* USES moved to the survivor by the Merge, then deleted by the Link Delete (and the
     * telephone's Delete) */
    ck_assert(!pg_rms_model_has_link(m, "7F3A9C2E4B1D0B01", uses, "7E1E000000000031"));
    ck_assert(!pg_rms_model_has_link(m, "7F3A9C2E4B1D0A66", uses, "7E1E000000000031"));
    /* the two DETD links became one */
    ck_assert(!pg_rms_model_has_link(m, "5EC0000000000009", detd, "7F3A9C2E4B1D0B01"));
    ck_assert(pg_rms_model_has_link(m, "5EC0000000000009", detd, "7F3A9C2E4B1D0A66"));
    ck_assert_uint_eq(pg_rms_model_links(m), 5);
    ck_assert_uint_eq(pg_rms_model_records(m), 5);
    /* a stale Modify changes nothing */
    char *xml = s_read(FIX("nx5-merseyside-export.xml"));
    char *older = s_replace(xml, "<Surname>GARC", "<Surname>XGARC");
    s_apply_text(m, older);
    ck_assert_uint_eq(pg_rms_model_stale(m), 6);
    const pg_entity_update *p = pg_rms_model_get(m, "7F3A9C2E4B1D0A66");
    ck_assert_str_eq(p->person->name->surname, "GARCÍA-LÓPEZ");
    g_free(xml);
    g_free(older);
    pg_rms_model_destroy(&m);
}
END_TEST

START_TEST(test_model_rejects_invalid)
{
    pg_rms_model *m = s_model(&pg_adapter_athena);
    ck_assert_int_eq(pg_rms_model_apply_bytes(m, (const uint8_t *)"{}\n", 3, e, sizeof e),
                     PG_EINVALID);
    ck_assert_ptr_nonnull(strstr(e, "line 1: "));
    ck_assert_int_eq(pg_rms_model_apply_file(m, "/nonexistent/x.ndjson", e, sizeof e), PG_EIO);
    pg_rms_model_destroy(&m);
}
END_TEST

START_TEST(test_compare_with_id_pairs)
{
    /* Records matched by the caller's pairs, not by content: a changed key is then
     * reported as a field difference. */
    pg_rms_model *atx, *nx5;
    s_burglary_pair("<VRM>AB12CDE</VRM>", "<VRM>AB12CDF</VRM>", &atx, &nx5);
    const char *pairs[] = {"V0000000301", "C100000000000301", NULL};
    pg_rms_compare_opts opts = {.id_pairs = pairs};
    pg_buf diff = PG_BUF_INIT;
    ck_assert_uint_eq(pg_rms_model_compare(atx, nx5, &opts, &diff), 1);
    ck_assert_str_eq((char *)diff.data, "record VEHICLE V0000000301 ~ C100000000000301: "
                                        "vehicle.vrm: 'AB12CDE' != 'AB12CDF'\n");
    pg_buf_free(&diff);
    pg_rms_model_destroy(&atx);
    pg_rms_model_destroy(&nx5);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("equivalence");
    TCase *ts = tcase_create("samples");
    tcase_set_timeout(ts, 60);
    tcase_add_test(ts, test_samples_burglary_cross_format);
    tcase_add_test(ts, test_samples_merseyside_cross_format);
    tcase_add_test(ts, test_burglary_atx_to_nx5);
    tcase_add_test(ts, test_burglary_atx_to_nx5_with_delete);
    tcase_add_test(ts, test_merseyside_nx5_to_atx);
    tcase_add_test(ts, test_link_only_change_resends_source);
    suite_add_tcase(s, ts);
    TCase *tn = tcase_create("comparator");
    tcase_add_test(tn, test_catches_changed_name);
    tcase_add_test(tn, test_catches_changed_surname);
    tcase_add_test(tn, test_catches_missing_link);
    tcase_add_test(tn, test_catches_wrong_role);
    tcase_add_test(tn, test_catches_changed_link_dates);
    tcase_add_test(tn, test_catches_position_50m_off);
    tcase_add_test(tn, test_catches_marking_and_retention);
    tcase_add_test(tn, test_catches_code);
    tcase_add_test(tn, test_compare_with_id_pairs);
    suite_add_tcase(s, tn);
    TCase *tm = tcase_create("models");
    tcase_add_test(tm, test_atx_model_rules);
    tcase_add_test(tm, test_nx5_model_rules);
    tcase_add_test(tm, test_model_rejects_invalid);
    suite_add_tcase(s, tm);
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
