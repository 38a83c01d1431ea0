/* Unit tests for the audit log: the hash chain across reopen, tampering found at the
 * right line, queries, and no record content in what is written. */
#include <check.h>
#include <errno.h>
#include <glib.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "audit_anchor.h"
#include "disk_fault.h"
#include "polegate/arena.h"
#include "polegate/error.h"
#include "polegate/pole.h"

static char s_dir[64];
static char s_path[128];
static int64_t s_now; /* the fake clock, ms */

static int64_t s_clock(void *ud)
{
    (void)ud;
    return s_now;
}

static const pg_audit_options s_opts = {.sync_every = 1, .clock_ms = s_clock};

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-audit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/audit.log", s_dir);
    s_now = 1774747800000; /* 2026-03-29T01:30:00.000Z */
}

static void s_teardown(void)
{
    GDir *d = g_dir_open(s_dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        char *f = g_build_filename(s_dir, name, NULL);
        unlink(f);
        g_free(f);
    }
    if (d)
        g_dir_close(d);
    rmdir(s_dir);
}

static pg_audit *s_open(void)
{
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit *a = pg_audit_new(s_path, &s_opts, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    return a;
}

#define E1 "6f1c2b0e-0d5b-5a3e-9c1f-2f7f3b8e9a01"
#define E2 "6f1c2b0e-0d5b-5a3e-9c1f-2f7f3b8e9a02"

static void s_append(pg_audit *a, pg_audit_action action, const char *entity, const char *dest,
                     const char *outcome)
{
    pg_audit_event ev = {
        .action = action,
        /* the RMS, a policy change, and files (event 4) */
        .party = action == PG_AUDIT_WITHHOLD     ? "policy:ESX-ISP-2026.1"
                 : entity && !strcmp(entity, E2) ? "rms:local"
                                                 : "rms:athena-prod",
        .entity_id = entity,
        .native_id = "P0000123456",
        .origin = "ESX",
        .destination = dest,
        .agreement = dest ? "ISA-ESX-KNT-2025" : NULL,
        .policy_version = "ESX-ISP-2026.1",
        .version = 7,
        .outcome = outcome,
    };
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_msg(pg_audit_append(a, &ev, err, sizeof err) == 0, "%s", err);
    s_now += 60000; /* a minute between events */
}

/* Four events: collect E1, disclose E1 to kent, withhold E1 from national, collect E2. */
static void s_write_four(void)
{
    pg_audit *a = s_open();
    s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    s_append(a, PG_AUDIT_DISCLOSE, E1, "kent", "shared");
    s_append(a, PG_AUDIT_WITHHOLD, E1, "national", "handling");
    s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok");
    ck_assert_uint_eq(pg_audit_seq(a), 4);
    pg_audit_destroy(&a);
    ck_assert_ptr_null(a);
}

static char *s_read(size_t *len)
{
    gchar *text = NULL;
    gsize n = 0;
    ck_assert(g_file_get_contents(s_path, &text, &n, NULL));
    *len = n;
    return text;
}

static void s_write(const char *text, size_t len)
{
    ck_assert(g_file_set_contents(s_path, text, (gssize)len, NULL));
}

static int s_verify(pg_audit_verify_result *res, char *err, size_t errlen)
{
    return pg_audit_verify(s_path, NULL, res, err, errlen);
}

/* ------------------------------------------------------------------ the chain */

START_TEST(test_chain_format)
{
    s_write_four();
    size_t len;
    char *text = s_read(&len);
    gchar **lines = g_strsplit(text, "\n", -1);
    ck_assert_uint_eq(g_strv_length(lines), 5); /* four lines and the empty tail */
    ck_assert_str_eq(lines[4], "");
    /* Each hash is SHA-256 over the previous hash (64 zeros first) and the event
     * without its hash, as docs/policy.md says: recompute it independently. */
    char prev[65];
    memset(prev, '0', 64);
    prev[64] = '\0';
    for (int i = 0; i < 4; i++) {
        const char *line = lines[i];
        const char *h = strstr(line, ",\"hash\":\"");
        ck_assert_ptr_nonnull(h);
        GString *canon = g_string_new_len(line, h - line);
        g_string_append_c(canon, '}');
        GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
        g_checksum_update(sum, (const guchar *)prev, 64);
        g_checksum_update(sum, (const guchar *)canon->str, (gssize)canon->len);
        ck_assert_int_eq(strncmp(h + 9, g_checksum_get_string(sum), 64), 0);
        ck_assert_str_eq(h + 9 + 64, "\"}");
        memcpy(prev, h + 9, 64);
        g_checksum_free(sum);
        g_string_free(canon, TRUE);
    }
    ck_assert_ptr_nonnull(strstr(lines[0], "\"seq\":1,\"time\":\"2026-03-29T01:30:00.000Z\","
                                           "\"action\":\"collect\""));
    ck_assert_ptr_nonnull(strstr(lines[1], "\"destination\":\"kent\",\"partner\":null,"
                                           "\"agreement\":\"ISA-ESX-KNT-2025\","
                                           "\"policy_version\":\"ESX-ISP-2026.1\",\"version\":7,"
                                           "\"outcome\":\"shared\",\"hash\":\""));
    pg_audit_verify_result res;
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_int_eq(s_verify(&res, err, sizeof err), 0);
    ck_assert_uint_eq(res.events, 4);
    ck_assert_uint_eq(res.bad_line, 0);
    ck_assert_str_eq(res.head, prev);
    g_strfreev(lines);
    g_free(text);
}
END_TEST

START_TEST(test_canonical_is_compact_json)
{
    /* The canonical bytes are written without jansson: they are what jansson's compact
     * dump of the same object gives, quotes, backslashes, slashes and non-ASCII
     * included, for every event of a batch written at once. */
    pg_audit *a = s_open();
    pg_audit_event evs[3] = {
        {.action = PG_AUDIT_RECEIVE,
         .party = "partner:polegate.esx.mer.pole.v1",
         .entity_id = E1,
         .native_id = "O'Brien \"Seán\" \\ 1/2 \xe2\x82\xac\xf0\x9f\x98\x80",
         .origin = "ESX",
         .partner = "ESX",
         .agreement = "ISA/ESX-MER",
         .policy_version = "MER-1",
         .version = 9223372036854775807ull,
         .outcome = "ok"},
        {.action = PG_AUDIT_REJECT, .outcome = "PG_EINVALID:header"},
        {.action = PG_AUDIT_ERASE, .entity_id = E2, .version = 1, .outcome = "ok"},
    };
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_msg(pg_audit_append_batch(a, evs, 3, err, sizeof err) == 0, "%s", err);
    pg_audit_destroy(&a);
    size_t len;
    char *text = s_read(&len);
    gchar **lines = g_strsplit(text, "\n", -1);
    ck_assert_uint_eq(g_strv_length(lines), 4);
    for (int i = 0; i < 3; i++) {
        const char *h = strstr(lines[i], ",\"hash\":\"");
        ck_assert_ptr_nonnull(h);
        GString *canon = g_string_new_len(lines[i], h - lines[i]);
        g_string_append_c(canon, '}');
        json_error_t jerr;
        json_t *o = json_loads(canon->str, 0, &jerr);
        ck_assert_msg(o != NULL, "%s: %s", canon->str, jerr.text);
        char *dump = json_dumps(o, JSON_COMPACT);
        ck_assert_str_eq(dump, canon->str);
        free(dump);
        json_decref(o);
        g_string_free(canon, TRUE);
    }
    ck_assert_ptr_nonnull(strstr(lines[0], "\"version\":9223372036854775807,"));
    ck_assert_ptr_nonnull(strstr(lines[1], "\"entity_id\":null,"));
    g_strfreev(lines);
    g_free(text);
    pg_audit_verify_result res;
    ck_assert_msg(s_verify(&res, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(res.events, 3);
}
END_TEST

START_TEST(test_chain_across_reopen)
{
    s_write_four();
    pg_audit *a = s_open();
    ck_assert_uint_eq(pg_audit_seq(a), 4);
    s_append(a, PG_AUDIT_ERASE, E2, NULL, "deleted");
    ck_assert_uint_eq(pg_audit_seq(a), 5);
    pg_audit_destroy(&a);
    a = s_open();
    s_append(a, PG_AUDIT_WITHDRAW, E2, "kent", "deleted");
    pg_audit_destroy(&a);
    pg_audit_verify_result res;
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_msg(s_verify(&res, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(res.events, 6);
    /* an empty log verifies, with the genesis head */
    ck_assert_int_eq(truncate(s_path, 0), 0);
    ck_assert_int_eq(s_verify(&res, err, sizeof err), 0);
    ck_assert_uint_eq(res.events, 0);
    ck_assert_str_eq(res.head, "0000000000000000000000000000000000000000000000000000000000000000");
    a = s_open();
    ck_assert_uint_eq(pg_audit_seq(a), 0);
    pg_audit_destroy(&a);
}
END_TEST

/* ------------------------------------------------------------------ tampering */

typedef struct t_tamper {
    const char *what;
    void (*apply)(GPtrArray *lines); /* lines without newlines; joined with \n after */
    int trailing_newline;
    size_t bad_line;
    const char *why;
} t_tamper;

static void s_edit_field(GPtrArray *l)
{
    char *line = g_ptr_array_index(l, 1);
    char *at = strstr(line, "\"kent\"");
    memcpy(at, "\"kenx\"", 6);
}

static void s_delete_line(GPtrArray *l)
{
    g_ptr_array_remove_index(l, 1);
}

static void s_reorder(GPtrArray *l)
{
    gpointer t = l->pdata[1];
    l->pdata[1] = l->pdata[2];
    l->pdata[2] = t;
}

static void s_cut_last(GPtrArray *l)
{
    char *line = g_ptr_array_index(l, 3);
    line[strlen(line) / 2] = '\0';
}

static void s_cut_at_line_end(GPtrArray *l)
{
    (void)l;
} /* only the final newline goes */

/* The attacker recomputes the changed line's own hash: the next line still shows it. */
static void s_edit_and_rehash(GPtrArray *l)
{
    char *prev_line = g_ptr_array_index(l, 1);
    char *line = g_ptr_array_index(l, 2);
    char *at = strstr(line, "\"handling\"");
    memcpy(at, "\"shared\"  ", 10);                /* same length; now claims it was shared... */
    memmove(at + 8, at + 10, strlen(at + 10) + 1); /* ...with valid JSON */
    char *h = strstr(line, ",\"hash\":\"");
    GString *canon = g_string_new_len(line, h - line);
    g_string_append_c(canon, '}');
    GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
    g_checksum_update(sum, (const guchar *)strstr(prev_line, ",\"hash\":\"") + 9, 64);
    g_checksum_update(sum, (const guchar *)canon->str, (gssize)canon->len);
    memcpy(h + 9, g_checksum_get_string(sum), 64);
    g_checksum_free(sum);
    g_string_free(canon, TRUE);
}

static void s_add_field(GPtrArray *l)
{
    char *line = g_ptr_array_index(l, 0);
    l->pdata[0] = g_strconcat("{\"surname\":\"O'Brien\",", line + 1, NULL);
    g_free(line);
}

static void s_blank_line(GPtrArray *l)
{
    g_ptr_array_insert(l, 2, g_strdup(""));
}

static void s_not_json(GPtrArray *l)
{
    char *line = g_ptr_array_index(l, 1);
    line[0] = '[';
}

static void s_bad_hash_digits(GPtrArray *l)
{
    char *line = g_ptr_array_index(l, 0);
    char *h = strstr(line, ",\"hash\":\"");
    h[9] = 'G';
}

static const t_tamper s_tampers[] = {
    {"edit a field", s_edit_field, 1, 2, "line 2: hash does not match"},
    {"delete a line", s_delete_line, 1, 2, "line 2: seq 3 where 2 was expected"},
    {"reorder lines", s_reorder, 1, 2, "line 2: seq 3 where 2 was expected"},
    {"truncate mid-line", s_cut_last, 0, 4, "line 4: cut short: no newline at the end"},
    {"drop the last newline", s_cut_at_line_end, 0, 4, "line 4: cut short"},
    {"edit and rehash", s_edit_and_rehash, 1, 4,
     "line 4: hash does not match: this line was changed, or the one before it"},
    {"add a content field", s_add_field, 1, 1, "line 1: unknown field \"surname\""},
    {"insert a blank line", s_blank_line, 1, 3, "line 3: empty line"},
    {"not JSON", s_not_json, 1, 2, "line 2: not a JSON object"},
    {"hash not hex", s_bad_hash_digits, 1, 1, "line 1: hash is not 64 lower-case hex digits"},
};

START_TEST(test_tampering)
{
    const t_tamper *t = &s_tampers[_i];
    s_write_four();
    size_t len;
    char *text = s_read(&len);
    text[len - 1] = '\0'; /* drop the final newline, then split */
    gchar **parts = g_strsplit(text, "\n", -1);
    GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
    for (gchar **p = parts; *p; p++)
        g_ptr_array_add(lines, g_strdup(*p));
    t->apply(lines);
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < lines->len; i++)
        g_string_append_printf(out, "%s%s", i ? "\n" : "", (char *)lines->pdata[i]);
    if (t->trailing_newline)
        g_string_append_c(out, '\n');
    s_write(out->str, out->len);
    pg_audit_verify_result res;
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_msg(s_verify(&res, err, sizeof err) == PG_EINVALID, "%s: not detected", t->what);
    ck_assert_msg(res.bad_line == t->bad_line, "%s: bad line %zu, want %zu (%s)", t->what,
                  res.bad_line, t->bad_line, err);
    ck_assert_msg(strstr(err, t->why) != NULL, "%s: '%s'", t->what, err);
    ck_assert_uint_eq(res.events, t->bad_line - 1);
    g_string_free(out, TRUE);
    g_ptr_array_free(lines, TRUE);
    g_strfreev(parts);
    g_free(text);
}
END_TEST

/* The limit of a bare chain, stated in docs/policy.md: cutting trailing lines leaves a
 * valid shorter chain, which only a recorded head shows. */
START_TEST(test_trailing_cut_needs_anchor)
{
    s_write_four();
    pg_audit_verify_result full, cut;
    char err[PG_ERRSTR_SIZE];
    ck_assert_int_eq(s_verify(&full, err, sizeof err), 0);
    size_t len;
    char *text = s_read(&len);
    char *last = memrchr(text, '\n', len - 1);
    s_write(text, (size_t)(last - text) + 1);
    ck_assert_int_eq(s_verify(&cut, err, sizeof err), 0);
    ck_assert_uint_eq(cut.events, 3);
    ck_assert_str_ne(cut.head, full.head);
    g_free(text);
}
END_TEST

/* A crash mid-write (kill -9 stops a batch's write between pages) leaves a partial
 * line: the writer cuts it off, keeps its bytes in <path>.torn, and the chain goes on
 * from the last whole event. A whole last line that is no event is refused. */
START_TEST(test_partial_tail_cut)
{
    s_write_four();
    struct stat st;
    ck_assert_int_eq(stat(s_path, &st), 0);
    FILE *f = fopen(s_path, "a");
    fputs("{\"seq\":5,\"time\":\"2026-03-", f);
    fclose(f);
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit *torn = pg_audit_new(s_path, &s_opts, err, sizeof err);
    ck_assert_msg(torn != NULL, "%s", err);
    pg_audit_destroy(&torn);
    struct stat st2;
    ck_assert_int_eq(stat(s_path, &st2), 0);
    ck_assert_int_eq(st2.st_size, st.st_size);
    char tpath[600], kept[64] = "";
    snprintf(tpath, sizeof tpath, "%s.torn", s_path);
    f = fopen(tpath, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(kept, sizeof kept, f));
    fclose(f);
    ck_assert_str_eq(kept, "{\"seq\":5,\"time\":\"2026-03-\n");
    ck_assert_int_eq(stat(tpath, &st2), 0);
    ck_assert_int_eq(st2.st_mode & 0007, 0);
    unlink(tpath);
    pg_audit *a = s_open();
    s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    pg_audit_destroy(&a);
    pg_audit_verify_result res;
    ck_assert_int_eq(s_verify(&res, err, sizeof err), 0);
    ck_assert_uint_eq(res.events, 5);
    /* a last line that is no event at all */
    f = fopen(s_path, "a");
    fputs("hello\n", f);
    fclose(f);
    ck_assert_ptr_null(pg_audit_new(s_path, &s_opts, err, sizeof err));
    ck_assert_msg(strstr(err, "its last line is not an audit event"), "%s", err);
}
END_TEST

/* Attack (found by one): a symbolic link planted as <path>.torn beside a log with a
 * partial last line, whose bytes the attacker chose: the start (or an operator's
 * command, run as root) appended them to the link's target. The link is not followed:
 * the start is refused, naming it, and the target and the log keep their bytes. */
START_TEST(test_torn_file_never_through_a_planted_link)
{
    s_write_four();
    char target[600], tpath[600], err[PG_ERRSTR_SIZE] = "";
    snprintf(target, sizeof target, "%s.victim", s_path);
    snprintf(tpath, sizeof tpath, "%s.torn", s_path);
    FILE *f = fopen(target, "w");
    fputs("root-only\n", f);
    fclose(f);
    ck_assert_int_eq(symlink(target, tpath), 0);
    f = fopen(s_path, "a");
    fputs("* * * * * root /tmp/evil.sh", f);
    fclose(f);
    struct stat st;
    ck_assert_int_eq(stat(s_path, &st), 0);
    ck_assert_ptr_null(pg_audit_new(s_path, &s_opts, err, sizeof err));
    ck_assert_msg(strstr(err, "is not a file of the gateway's own"), "%s", err);
    gchar *text = NULL;
    ck_assert(g_file_get_contents(target, &text, NULL, NULL));
    ck_assert_str_eq(text, "root-only\n");
    g_free(text);
    struct stat st2;
    ck_assert_int_eq(stat(s_path, &st2), 0);
    ck_assert_int_eq(st2.st_size, st.st_size);
    /* removed, the start cuts the tail off into a file of its own */
    ck_assert_int_eq(unlink(tpath), 0);
    pg_audit *a = pg_audit_new(s_path, &s_opts, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    pg_audit_destroy(&a);
    ck_assert_int_eq(lstat(tpath, &st2), 0);
    ck_assert(S_ISREG(st2.st_mode));
}
END_TEST

/* Attack (found by one): a symbolic link planted at audit.path was followed, and the
 * events were appended to another user's file. The log is never opened through a
 * link, a second name of another file, or a file of another user's: the start is
 * refused, naming it, and the target keeps its bytes. */
START_TEST(test_log_never_through_a_planted_link)
{
    char target[600], err[PG_ERRSTR_SIZE] = "";
    snprintf(target, sizeof target, "%s/victim", s_dir);
    FILE *f = fopen(target, "w");
    fputs("another user's\n", f);
    fclose(f);
    ck_assert_int_eq(symlink(target, s_path), 0);
    ck_assert_ptr_null(pg_audit_new(s_path, &s_opts, err, sizeof err));
    ck_assert_msg(strstr(err, "audit.log: not a file of the gateway's own"), "%s", err);
    ck_assert_int_eq(unlink(s_path), 0);
    ck_assert_int_eq(link(target, s_path), 0); /* a second name */
    ck_assert_ptr_null(pg_audit_new(s_path, &s_opts, err, sizeof err));
    ck_assert_msg(strstr(err, "not a file of the gateway's own"), "%s", err);
    ck_assert_int_eq(unlink(s_path), 0);
    gchar *text = NULL;
    ck_assert(g_file_get_contents(target, &text, NULL, NULL));
    ck_assert_str_eq(text, "another user's\n");
    g_free(text);
    /* another user's file, in a directory that is not theirs (root included) */
    f = fopen(s_path, "w");
    fclose(f);
    ck_assert_int_eq(chown(s_path, 65534, 65534), 0);
    ck_assert_ptr_null(pg_audit_new(s_path, &s_opts, err, sizeof err));
    ck_assert_msg(strstr(err, "not a file of the gateway's own"), "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(s_path, &st), 0);
    ck_assert_int_eq(st.st_size, 0);
    /* root, running a command on the log of the daemon that owns the directory */
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(s_dir, 65534, 65534), 0);
        pg_audit *a = s_open();
        pg_audit_destroy(&a);
        ck_assert_int_eq(chown(s_dir, 0, 0), 0);
    }
    /* the log and its key id gone: a new chain */
    ck_assert_int_eq(unlink(s_path), 0);
    char keyid[600];
    snprintf(keyid, sizeof keyid, "%s.keyid", s_path);
    unlink(keyid);
    pg_audit *a = s_open();
    pg_audit_destroy(&a);
}
END_TEST

START_TEST(test_one_writer)
{
    pg_audit *a = s_open();
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_ptr_null(pg_audit_new(s_path, &s_opts, err, sizeof err));
    ck_assert_msg(strstr(err, "another process is writing this audit log"), "%s", err);
    pg_audit_destroy(&a);
    a = s_open(); /* the lock went with the first writer */
    pg_audit_destroy(&a);
    ck_assert_ptr_null(pg_audit_new("/nonexistent-dir/audit.log", NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "/nonexistent-dir/audit.log: No such file or directory"), "%s", err);
    pg_audit_verify_result res;
    ck_assert_int_eq(pg_audit_verify("/nonexistent-dir/audit.log", NULL, &res, err, sizeof err),
                     PG_EIO);
}
END_TEST

/* ------------------------------------------------------------------ what is written */

/* A full person goes through the helpers; nothing of its content reaches the file. */
START_TEST(test_no_content)
{
    pg_arena *arena = pg_arena_new(0);
    pg_entity_update *e = PG_PB_NEW(arena, pg_entity_update, polegate__pole__v1__entity_update);
    e->id = E1;
    e->operation = POLEGATE__POLE__V1__OPERATION__OPERATION_UPSERT;
    e->version = 12;
    e->kind = POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON;
    e->origin = PG_PB_NEW(arena, pg_origin, polegate__pole__v1__origin);
    e->origin->force = "ESX";
    e->origin->native_id = "P0000123456";
    e->origin->org_unit = "ESX/SB/UNIT7";
    e->marking = PG_PB_NEW(arena, pg_marking, polegate__pole__v1__marking);
    e->marking->classification = POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_OFFICIAL;
    e->marking->handling = POLEGATE__POLE__V1__HANDLING__HANDLING_C;
    e->marking->caveat = "only for Operation Condor";
    e->body_case = POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_PERSON;
    e->person = PG_PB_NEW(arena, Polegate__Pole__V1__Person, polegate__pole__v1__person);
    e->person->name = PG_PB_NEW(arena, Polegate__Pole__V1__Name, polegate__pole__v1__name);
    e->person->name->surname = "O'Brien";
    e->person->pnc_id = "2001/0012345L";
    pg_link_update *l = PG_PB_NEW(arena, pg_link_update, polegate__pole__v1__link_update);
    l->id = E2;
    l->version = 3;
    l->origin = e->origin;

    pg_audit *a = s_open();
    pg_audit_event ev;
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit_event_from_entity(&ev, PG_AUDIT_ERASE, e);
    ck_assert_str_eq(ev.entity_id, E1);
    ck_assert_str_eq(ev.native_id, "P0000123456");
    ck_assert_str_eq(ev.origin, "ESX");
    ck_assert_uint_eq(ev.version, 12);
    ck_assert_ptr_null(ev.destination);
    ev.outcome = "deleted";
    ck_assert_int_eq(pg_audit_append(a, &ev, err, sizeof err), 0);
    pg_audit_event_from_link(&ev, PG_AUDIT_DISCLOSE, l);
    ev.destination = "kent";
    ev.outcome = "redacted:origin.org_unit,person.ethnicity";
    ck_assert_int_eq(pg_audit_append(a, &ev, err, sizeof err), 0);

    /* free text is refused, and refusing writes nothing */
    struct stat before, after;
    ck_assert_int_eq(stat(s_path, &before), 0);
    ev.outcome = "withheld: O'Brien is SECRET";
    ck_assert_int_eq(pg_audit_append(a, &ev, err, sizeof err), PG_EINVALID);
    ck_assert_str_eq(
        err, "audit: outcome must be a code (letters, digits, . _ - : , / [ ]), not free text");
    ev.outcome = "ok";
    ev.native_id = "P1\nforged";
    ck_assert_int_eq(pg_audit_append(a, &ev, err, sizeof err), PG_EINVALID);
    ck_assert_str_eq(err, "audit: native_id holds a control character");
    ev.native_id = "P\xff";
    ck_assert_int_eq(pg_audit_append(a, &ev, err, sizeof err), PG_EINVALID);
    ck_assert_msg(strstr(err, "not UTF-8"), "%s", err);
    ev.native_id = NULL;
    ev.action = (pg_audit_action)42;
    ck_assert_int_eq(pg_audit_append(a, &ev, err, sizeof err), PG_EINVALID);
    ck_assert_str_eq(err, "audit: unknown action 42");
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ev.action = PG_AUDIT_RECEIVE;
    ev.partner = big;
    ck_assert_int_eq(pg_audit_append(a, &ev, err, sizeof err), PG_EINVALID);
    ck_assert_str_eq(err, "audit: partner is longer than 256 bytes");
    ck_assert_int_eq(stat(s_path, &after), 0);
    ck_assert_int_eq(before.st_size, after.st_size);
    ck_assert_uint_eq(pg_audit_seq(a), 2);
    pg_audit_destroy(&a);

    size_t len;
    char *text = s_read(&len);
    const char *content[] = {"O'Brien", "2001/0012345L", "Operation Condor", "ESX/SB/UNIT7",
                             "PERSON",  "caveat",        "OFFICIAL"};
    for (size_t i = 0; i < sizeof content / sizeof content[0]; i++)
        ck_assert_msg(!strstr(text, content[i]), "'%s' reached the audit log", content[i]);
    /* every line holds exactly the documented fields */
    gchar **lines = g_strsplit(text, "\n", -1);
    const char *keys[] = {
        "seq",         "time",    "action",    "party",          "entity_id", "native_id", "origin",
        "destination", "partner", "agreement", "policy_version", "version",   "outcome",   "hash"};
    for (int i = 0; i < 2; i++) {
        json_t *o = json_loads(lines[i], 0, NULL);
        ck_assert_ptr_nonnull(o);
        ck_assert_uint_eq(json_object_size(o), sizeof keys / sizeof keys[0]);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            ck_assert_msg(json_object_get(o, keys[k]) != NULL, "no %s", keys[k]);
        json_decref(o);
    }
    ck_assert_ptr_nonnull(
        strstr(lines[1], "\"outcome\":\"redacted:origin.org_unit,person.ethnicity\""));
    ck_assert_ptr_nonnull(strstr(lines[0], "\"action\":\"erase\""));
    g_strfreev(lines);
    g_free(text);
    pg_arena_destroy(&arena);
}
END_TEST

/* ------------------------------------------------------------------ query */

typedef struct t_hits {
    int n;
    char seqs[64];
} t_hits;

static int s_collect(void *ud, const char *line, size_t len)
{
    t_hits *h = ud;
    json_t *o = json_loadb(line, len, 0, NULL);
    ck_assert_ptr_nonnull(o);
    size_t used = strlen(h->seqs);
    snprintf(h->seqs + used, sizeof h->seqs - used, "%s%lld", h->n ? "," : "",
             (long long)json_integer_value(json_object_get(o, "seq")));
    json_decref(o);
    h->n++;
    return 0;
}

static int s_stop(void *ud, const char *line, size_t len)
{
    (void)line;
    (void)len;
    return ++*(int *)ud == 2 ? 99 : 0;
}

START_TEST(test_query)
{
    s_write_four(); /* seq 1-4 at 01:30:00, 01:31:00, 01:32:00, 01:33:00 */
    /* a junk line is skipped by queries, which print what matched and then say that it
     * is not from an unbroken chain (they once said nothing: found by a review) */
    FILE *f = fopen(s_path, "a");
    fputs("junk\n", f);
    fclose(f);
    int64_t t2;
    char err[PG_ERRSTR_SIZE] = "";
    ck_assert_int_eq(pg_audit_parse_time("2026-03-29T02:31:00+01:00", &t2, err, sizeof err), 0);
    const struct {
        pg_audit_filter filter;
        const char *want;
    } rows[] = {
        {{0}, "1,2,3,4"},
        {{.entity_id = E1}, "1,2,3"},
        {{.entity_id = E2}, "4"},
        {{.destination = "kent"}, "2"},
        {{.destination = "national"}, "3"},
        {{.action = PG_AUDIT_COLLECT}, "1,4"},
        {{.action = PG_AUDIT_ERASE}, ""},
        {{.entity_id = E1, .action = PG_AUDIT_COLLECT}, "1"},
        {{.native_id = "P0000123456"}, "1,2,3,4"},
        {{.native_id = "P0000000000"}, ""},
        {{.has_since = 1, .since_ms = t2}, "2,3,4"},
        {{.has_until = 1, .until_ms = t2}, "1"},
        {{.has_since = 1, .since_ms = t2, .has_until = 1, .until_ms = t2 + 60000}, "2"},
        {{.has_since = 1, .since_ms = t2 + 1}, "3,4"},
        {{.party = "rms:athena-prod"}, "1,2"},
        {{.party = "rms:*"}, "1,2,4"},
        {{.party = "policy:*"}, "3"},
        {{.party = "rms:"}, ""},
        {{.party = "*"}, "1,2,3,4"},
        {{.party = "rms:local", .action = PG_AUDIT_COLLECT}, "4"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        t_hits h = {0, ""};
        ck_assert_int_eq(pg_audit_query(s_path, &rows[i].filter, s_collect, &h, err, sizeof err),
                         PG_ECORRUPT);
        ck_assert_msg(strstr(err, "1 lines are not events (the first: ") &&
                          strstr(err, "audit.log line 5): what was printed"),
                      "%s", err);
        ck_assert_msg(!strcmp(h.seqs, rows[i].want), "row %zu: got '%s', want '%s'", i, h.seqs,
                      rows[i].want);
    }
    int calls = 0;
    ck_assert_int_eq(pg_audit_query(s_path, NULL, s_stop, &calls, err, sizeof err), 99);
    ck_assert_int_eq(calls, 2);
    ck_assert_int_eq(pg_audit_query("/nonexistent", NULL, s_stop, &calls, err, sizeof err), PG_EIO);
    /* an event taken out: the ones after it do not follow */
    gchar *text = NULL;
    ck_assert(g_file_get_contents(s_path, &text, NULL, NULL));
    char *second = strchr(text, '\n') + 1, *third = strchr(second, '\n') + 1;
    memmove(second, third, strlen(third) + 1);
    *strstr(text, "junk\n") = 0;
    ck_assert(g_file_set_contents(s_path, text, -1, NULL));
    g_free(text);
    t_hits h = {0, ""};
    ck_assert_int_eq(pg_audit_query(s_path, NULL, s_collect, &h, err, sizeof err), PG_ECORRUPT);
    ck_assert_str_eq(h.seqs, "1,3,4");
    ck_assert_msg(strstr(err, "1 events do not follow the one before (the first: ") &&
                      strstr(err, "audit.log line 2): what"),
                  "%s", err);
}
END_TEST

START_TEST(test_parse_time)
{
    const struct {
        const char *in;
        int rc;
        int64_t ms;
    } rows[] = {
        {"2026-03-29T01:30:00Z", 0, 1774747800000},
        {"2026-03-29T02:30:00.250+01:00", 0, 1774747800250},
        {"2026-03-29", 0, 1774742400000},
        {"2026-03-29T01:30:00", PG_EINVALID, 0}, /* no offset: which time? */
        {"29/03/2026", PG_EINVALID, 0},
        {"", PG_EINVALID, 0},
        {NULL, PG_EINVALID, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t ms = -1;
        char err[PG_ERRSTR_SIZE] = "";
        int rc = pg_audit_parse_time(rows[i].in, &ms, err, sizeof err);
        ck_assert_msg(rc == rows[i].rc, "row %zu: %d %s", i, rc, err);
        if (!rc)
            ck_assert_int_eq(ms, rows[i].ms);
        else
            ck_assert_ptr_nonnull(strstr(err, "time"));
    }
}
END_TEST

START_TEST(test_action_names)
{
    const char *names[] = {"collect", "disclose", "withhold", "withdraw",
                           "receive", "reject",   "erase"};
    for (int a = PG_AUDIT_COLLECT; a < PG_AUDIT_ACTION_COUNT; a++) {
        ck_assert_str_eq(pg_audit_action_name((pg_audit_action)a), names[a - 1]);
        ck_assert_int_eq(pg_audit_action_parse(names[a - 1]), a);
    }
    ck_assert_ptr_null(pg_audit_action_name(PG_AUDIT_NONE));
    ck_assert_ptr_null(pg_audit_action_name(PG_AUDIT_ACTION_COUNT));
    ck_assert_int_eq(pg_audit_action_parse("publish"), PG_AUDIT_NONE);
    ck_assert_int_eq(pg_audit_action_parse(NULL), PG_AUDIT_NONE);
}
END_TEST

/* ------------------------------------------------------------------ concurrency, sync */

static void *s_writer(void *arg)
{
    pg_audit *a = arg;
    char id[40];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "thread-%p-%d", (void *)pthread_self(), i);
        pg_audit_event ev = {.action = PG_AUDIT_DISCLOSE,
                             .entity_id = id,
                             .destination = "kent",
                             .outcome = "shared"};
        if (pg_audit_append(a, &ev, NULL, 0))
            return (void *)1;
    }
    return NULL;
}

START_TEST(test_threads_and_batched_sync)
{
    pg_audit_options opts = {.sync_every = 64};
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit *a = pg_audit_new(s_path, &opts, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, s_writer, a), 0);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        ck_assert_ptr_null(rc);
    }
    ck_assert_uint_eq(pg_audit_seq(a), 800);
    pg_audit_destroy(&a);
    pg_audit_verify_result res;
    ck_assert_msg(s_verify(&res, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(res.events, 800);
}
END_TEST

/* ------------------------------------------------------------------ fail closed */

static off_t s_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

/* Attack: fill the disk so that disclosures go unlogged. Each failed append says so
 * (the caller then does not do the step), leaves nothing of its batch in the file, and
 * the log takes events again once the disk has room: no sticky "off" state, no gap. */
START_TEST(test_disk_full_fails_closed_and_resumes)
{
    pg_audit_options o = {.sync_every = 1, .clock_ms = s_clock, .write_fn = s_disk_fault_write};
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit *a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    off_t good = s_size(s_path);
    pg_audit_event evs[3] = {
        {.action = PG_AUDIT_DISCLOSE, .party = "rms:test", .entity_id = E1, .outcome = "shared"},
        {.action = PG_AUDIT_DISCLOSE, .party = "rms:test", .entity_id = E2, .outcome = "shared"},
        {.action = PG_AUDIT_WITHHOLD, .party = "rms:test", .entity_id = E2, .outcome = "handling"},
    };
    s_disk_fault = 1;
    ck_assert_int_eq(pg_audit_append_batch(a, evs, 3, err, sizeof err), PG_EIO);
    ck_assert_msg(strstr(err, "No space left on device"), "%s", err);
    ck_assert_int_eq(s_size(s_path), good);
    ck_assert_uint_eq(pg_audit_seq(a), 1);
    /* a write cut short half way: the half line goes too */
    s_disk_fault = 2;
    ck_assert_int_eq(pg_audit_append_batch(a, evs, 3, err, sizeof err), PG_EIO);
    ck_assert_int_eq(s_size(s_path), good);
    ck_assert_uint_eq(pg_audit_failures(a), 2);
    /* room again: the same log takes the batch, in sequence */
    s_disk_fault = 0;
    ck_assert_msg(pg_audit_append_batch(a, evs, 3, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(pg_audit_seq(a), 4);
    pg_audit_destroy(&a);
    pg_audit_verify_result res;
    ck_assert_msg(s_verify(&res, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(res.events, 4);
}
END_TEST

/* ------------------------------------------------------------------ keyed chain */

static void s_key_file(const char *name, const char *hex, mode_t mode, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", s_dir, name);
    ck_assert(g_file_set_contents(out, hex, -1, NULL));
    ck_assert_int_eq(chmod(out, mode), 0);
}

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
#define KEY_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"

/* Re-hash every line with SHA-256 (what an attacker who can write the file can do to
 * an unkeyed chain), or with HMAC-SHA-256 under key (an attacker who stole it). */
static void s_rehash_all(GPtrArray *l, const pg_audit_key *key)
{
    char prev[65];
    memset(prev, '0', 64);
    prev[64] = 0;
    for (guint i = 0; i < l->len; i++) {
        char *line = l->pdata[i];
        char *h = strstr(line, ",\"hash\":\"");
        GString *canon = g_string_new_len(line, h - line);
        g_string_append_c(canon, '}');
        if (key) {
            GHmac *mac = g_hmac_new(G_CHECKSUM_SHA256, key->bytes, sizeof key->bytes);
            g_hmac_update(mac, (const guchar *)prev, 64);
            g_hmac_update(mac, (const guchar *)canon->str, (gssize)canon->len);
            memcpy(h + 9, g_hmac_get_string(mac), 64);
            g_hmac_unref(mac);
        } else {
            GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
            g_checksum_update(sum, (const guchar *)prev, 64);
            g_checksum_update(sum, (const guchar *)canon->str, (gssize)canon->len);
            memcpy(h + 9, g_checksum_get_string(sum), 64);
            g_checksum_free(sum);
        }
        g_string_free(canon, TRUE);
        memcpy(prev, h + 9, 64);
    }
}

static GPtrArray *s_lines(void)
{
    size_t len;
    char *text = s_read(&len);
    text[len - 1] = '\0';
    gchar **parts = g_strsplit(text, "\n", -1);
    GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
    for (gchar **p = parts; *p; p++)
        g_ptr_array_add(lines, g_strdup(*p));
    g_strfreev(parts);
    g_free(text);
    return lines;
}

static void s_put_lines(GPtrArray *lines, guint n)
{
    GString *out = g_string_new(NULL);
    for (guint i = 0; i < n; i++)
        g_string_append_printf(out, "%s\n", (char *)lines->pdata[i]);
    s_write(out->str, out->len);
    g_string_free(out, TRUE);
}

/* Attack: change "withheld" to "shared" and re-hash the whole chain after it. The
 * unkeyed chain cannot tell; the keyed one can (the attacker has no key). */
START_TEST(test_keyed_chain_resists_rehash)
{
    char kpath[256], kbad[256], kopen[256], err[PG_ERRSTR_SIZE] = "";
    s_key_file("a.key", KEY_A, 0600, kpath, sizeof kpath);
    s_key_file("b.key", KEY_B, 0600, kbad, sizeof kbad);
    s_key_file("open.key", KEY_A, 0644, kopen, sizeof kopen);
    pg_audit_key key, other;
    ck_assert_int_eq(pg_audit_key_load(kopen, &key, err, sizeof err), PG_EINVALID);
    ck_assert_msg(strstr(err, "readable or writable by group or others"), "%s", err);
    ck_assert_msg(pg_audit_key_load(kpath, &key, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pg_audit_key_load(kbad, &other, err, sizeof err) == 0, "%s", err);
    pg_audit_options o = {.sync_every = 1, .clock_ms = s_clock, .key = &key};
    pg_audit *a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    s_append(a, PG_AUDIT_WITHHOLD, E1, "national", "handling");
    s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok");
    pg_audit_destroy(&a);
    /* the chain continues across a reopen with the key */
    a = pg_audit_new(s_path, &o, err, sizeof err);
    s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok");
    pg_audit_destroy(&a);
    pg_audit_verify_opts vk = {.key = &key}, vo = {.key = &other};
    pg_audit_verify_result res;
    ck_assert_msg(pg_audit_verify(s_path, &vk, &res, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(res.events, 4);
    ck_assert_int_eq(pg_audit_verify(s_path, &vo, &res, err, sizeof err), PG_EINVALID);
    ck_assert_msg(strstr(err, "line 1: hash does not match"), "%s", err);
    ck_assert_int_eq(pg_audit_verify(s_path, NULL, &res, err, sizeof err), PG_EINVALID);
    ck_assert_msg(strstr(err, "give its key"), "%s", err);

    GPtrArray *lines = s_lines();
    char *at = strstr(lines->pdata[1], "\"handling\"");
    memcpy(at, "\"shared\"  ", 10);
    memmove(at + 8, at + 10, strlen(at + 10) + 1);
    s_rehash_all(lines, NULL);
    s_put_lines(lines, lines->len);
    /* the unkeyed view is fooled: that is why the chain is keyed */
    ck_assert_int_eq(pg_audit_verify(s_path, NULL, &res, err, sizeof err), 0);
    ck_assert_int_eq(pg_audit_verify(s_path, &vk, &res, err, sizeof err), PG_EINVALID);
    ck_assert_uint_eq(res.bad_line, 1);
    g_ptr_array_free(lines, TRUE);
}
END_TEST

/* ------------------------------------------------------------------ checkpoints */

#define SEED_A "5a5b5c5d5e5f606162636465666768696a6b6c6d6e6f70717273747576777879\n"
#define SEED_B "0a5b5c5d5e5f606162636465666768696a6b6c6d6e6f70717273747576777879\n"

/* Attacks with the chain key but not the signing key: cut events off the end, or
 * rewrite an event and re-key the chain. The signed checkpoints (published to Kafka,
 * outside the file) show both; a checkpoint signed by another key is not taken. */
START_TEST(test_checkpoints_find_cut_and_rewrite)
{
    char kpath[256], spath[256], sother[256], err[PG_ERRSTR_SIZE] = "";
    s_key_file("a.key", KEY_A, 0600, kpath, sizeof kpath);
    s_key_file("sign.key", SEED_A, 0600, spath, sizeof spath);
    s_key_file("other.key", SEED_B, 0600, sother, sizeof sother);
    pg_audit_key key;
    pg_audit_signing_key sk, forger;
    ck_assert_int_eq(pg_audit_key_load(kpath, &key, err, sizeof err), 0);
    ck_assert_msg(pg_audit_signing_key_load(spath, &sk, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(pg_audit_signing_key_load(sother, &forger, err, sizeof err), 0);
    pg_audit_public_key pk;
    memcpy(pk.bytes, sk.public_key, sizeof pk.bytes);

    pg_audit_options o = {.sync_every = 1, .clock_ms = s_clock, .key = &key};
    pg_audit *a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    pg_buf msg = PG_BUF_INIT;
    pg_audit_checkpoint cps[3];
    ck_assert_int_eq(pg_audit_checkpoint_make(a, &sk, &msg, &cps[0], err, sizeof err), 0);
    ck_assert_uint_eq(cps[0].seq, 0);
    s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    s_append(a, PG_AUDIT_DISCLOSE, E1, "kent", "shared");
    ck_assert_int_eq(pg_audit_checkpoint_make(a, &sk, &msg, NULL, err, sizeof err), 0);
    /* what travels is the JSON: parse it back, signature checked */
    ck_assert_msg(pg_audit_checkpoint_parse(msg.data, msg.len, &pk, &cps[1], err, sizeof err) == 0,
                  "%s", err);
    ck_assert_uint_eq(cps[1].seq, 2);
    s_append(a, PG_AUDIT_WITHHOLD, E1, "national", "handling");
    s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok");
    ck_assert_int_eq(pg_audit_checkpoint_make(a, &sk, &msg, NULL, err, sizeof err), 0);
    ck_assert_int_eq(pg_audit_checkpoint_parse(msg.data, msg.len, &pk, &cps[2], err, sizeof err),
                     0);
    /* a tampered checkpoint, or one from another key, does not parse */
    char *forged = g_strdup((char *)msg.data);
    char *seq = strstr(forged, "\"seq\":4");
    seq[6] = '2';
    pg_audit_checkpoint junk;
    ck_assert_int_eq(pg_audit_checkpoint_parse(forged, strlen(forged), &pk, &junk, err, sizeof err),
                     PG_EINVALID);
    ck_assert_msg(strstr(err, "signature does not hold"), "%s", err);
    g_free(forged);
    ck_assert_int_eq(pg_audit_checkpoint_make(a, &forger, &msg, NULL, err, sizeof err), 0);
    ck_assert_int_eq(pg_audit_checkpoint_parse(msg.data, msg.len, &pk, &junk, err, sizeof err),
                     PG_EINVALID);
    pg_audit_destroy(&a);

    pg_audit_verify_opts vo = {.key = &key, .checkpoints = cps, .checkpoint_count = 3};
    pg_audit_verify_result res;
    ck_assert_msg(pg_audit_verify(s_path, &vo, &res, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(res.checkpoints, 2);

    /* cut the last two events: a valid chain, but shorter than what was signed */
    GPtrArray *lines = s_lines();
    s_put_lines(lines, 2);
    ck_assert_int_eq(
        pg_audit_verify(s_path, &(pg_audit_verify_opts){.key = &key}, &res, err, sizeof err), 0);
    ck_assert_int_eq(pg_audit_verify(s_path, &vo, &res, err, sizeof err), PG_EINVALID);
    ck_assert_msg(strstr(err, "ends at event 2 but the checkpoint signed at") &&
                      strstr(err, "holds event 4: events were cut off its end"),
                  "%s", err);

    /* rewrite event 2 (kent -> kenx) and re-key the whole chain with the stolen key */
    char *at = strstr(lines->pdata[1], "\"kent\"");
    memcpy(at, "\"kenx\"", 6);
    s_rehash_all(lines, &key);
    s_put_lines(lines, lines->len);
    ck_assert_int_eq(
        pg_audit_verify(s_path, &(pg_audit_verify_opts){.key = &key}, &res, err, sizeof err), 0);
    ck_assert_int_eq(pg_audit_verify(s_path, &vo, &res, err, sizeof err), PG_EINVALID);
    ck_assert_uint_eq(res.bad_line, 2);
    ck_assert_msg(strstr(err, "line 2: event 2 is not the one the checkpoint signed at") &&
                      strstr(err, "the log was rewritten"),
                  "%s", err);
    g_ptr_array_free(lines, TRUE);
    pg_buf_free(&msg);
}
END_TEST

/* ------------------------------------------------------------------ rotation */

static int s_count(void *ud, const char *line, size_t len)
{
    (void)line;
    (void)len;
    (*(int *)ud)++;
    return 0;
}

/* A chain is continued only under the key it was written with: a key added to a log
 * written without one (an upgrade whose config names the keys the package made), taken
 * away, or changed would leave a log no key verifies. The open is refused, the log
 * untouched; with its own key it goes on. Checked wherever the last event is: the
 * current file's second line or later, its first line (chained to the rotated file
 * before), or the newest rotated file when the current one is empty. */
/* A log removed or moved away while its key id file stays is not started again empty
 * (a new chain would lose its events without a word; found by attack); with the key id
 * moved aside too, a new chain begins. A rotation's new file missing (a crash between
 * its rename and the new file) continues from the rotated one. */
/* The signing key of SEED_A, read from a key file as the daemon reads it. */
static void s_signing_key_a(pg_audit_signing_key *sk)
{
    char spath[256], err[PG_ERRSTR_SIZE] = "";
    s_key_file("sign.key", SEED_A, 0600, spath, sizeof spath);
    ck_assert_msg(pg_audit_signing_key_load(spath, sk, err, sizeof err) == 0, "%s", err);
}

/* Produce n records of one byte and then, when cp is not NULL, cp, to partition 0 of
 * topic on brokers. */
static void s_produce(const char *brokers, const char *topic, int n, const pg_buf *cp, int after)
{
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof why), 0);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < n + after + (cp != NULL); i++) {
        int own = cp && i == n;
        ck_assert_int_eq(
            rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                              RD_KAFKA_V_VALUE(own ? cp->data : (void *)"x", own ? cp->len : 1),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            0);
        if (i % 1000 == 999)
            rd_kafka_flush(p, 10000);
    }
    ck_assert_int_eq(rd_kafka_flush(p, 10000), 0);
    rd_kafka_destroy(p);
}

/* The start reads the tail of the audit topic (pg_audit_checkpoints_read with tail),
 * going further back only while none of its checkpoints is there: its time does not
 * grow with the topic (a review found it read every record ever published, one a
 * minute for ever, at every start); verify reads it all. */
START_TEST(test_checkpoints_read_from_the_tail)
{
    char err[PG_ERRSTR_SIZE] = "", why[256];
    pg_audit_signing_key sk;
    s_signing_key_a(&sk);
    pg_audit_public_key pk;
    memcpy(pk.bytes, sk.public_key, sizeof pk.bytes);
    pg_audit *a = s_open();
    s_append(a, PG_AUDIT_DISCLOSE, E1, "kent", "shared");
    pg_buf msg = PG_BUF_INIT;
    pg_audit_checkpoint cp;
    ck_assert_int_eq(pg_audit_checkpoint_make(a, &sk, &msg, &cp, err, sizeof err), 0);

    rd_kafka_conf_t *mconf = rd_kafka_conf_new();
    rd_kafka_conf_set(mconf, "log_level", "3", why, sizeof why);
    rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, mconf, why, sizeof why);
    ck_assert_ptr_nonnull(mrk);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mrk, 1);
    ck_assert_ptr_nonnull(mc);
    const char *brokers = rd_kafka_mock_cluster_bootstraps(mc);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, "audit.near", 1, 1), 0);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, "audit.far", 1, 1), 0);
    s_produce(brokers, "audit.near", 3000, &msg, 10); /* the checkpoint 11th from the end */
    s_produce(brokers, "audit.far", 100, &msg, 300);  /* 301st from the end */
    struct {
        const char *topic;
        size_t tail, foreign;
    } cases[] = {{"audit.near", 16, 15}, /* the last 16 */
                 {"audit.near", 0, 3010},
                 {"audit.far", 16, 400}, /* 16, 128, then the 256 before them */
                 {"audit.far", 1024, 400}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        ck_assert_int_eq(rd_kafka_conf_set(conf, "bootstrap.servers", brokers, why, sizeof why), 0);
        pg_audit_checkpoints cps = {0};
        ck_assert_msg(pg_audit_checkpoints_read(conf, cases[i].topic, &pk, cases[i].tail, 10000,
                                                &cps, err, sizeof err) == 0,
                      "%s", err);
        ck_assert_uint_eq(cps.n, 1);
        ck_assert_uint_eq(cps.v[0].seq, cp.seq);
        ck_assert_msg(cps.foreign == cases[i].foreign, "%s tail %zu: %zu other records read",
                      cases[i].topic, cases[i].tail, cps.foreign);
        pg_audit_checkpoints_free(&cps);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    pg_buf_free(&msg);
    pg_audit_destroy(&a);
}
END_TEST

/* The start's check against the latest checkpoint (pg_audit_holds; the daemon reads it
 * from audit.topic): a log at or past the checkpoint holds it, one cut short or cut and
 * written on does not, with the log, the event and what the log has in the reason. */
START_TEST(test_holds_latest_checkpoint)
{
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit_signing_key sk;
    s_signing_key_a(&sk);
    pg_buf msg = PG_BUF_INIT;
    pg_audit_checkpoint empty, cp;
    pg_audit *a = s_open();
    ck_assert_int_eq(pg_audit_checkpoint_make(a, &sk, &msg, &empty, err, sizeof err), 0);
    ck_assert_int_eq(pg_audit_holds(a, &empty, err, sizeof err), 0);
    for (int i = 0; i < 4; i++)
        s_append(a, PG_AUDIT_DISCLOSE, E1, "kent", "shared");
    ck_assert_int_eq(pg_audit_checkpoint_make(a, &sk, &msg, &cp, err, sizeof err), 0);
    ck_assert_uint_eq(cp.seq, 4);
    ck_assert_int_eq(pg_audit_holds(a, &cp, err, sizeof err), 0);
    ck_assert_int_eq(pg_audit_holds(a, &empty, err, sizeof err), 0);
    /* ahead of it (a crash before the next checkpoint): event 4 found in the file */
    s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok");
    s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok");
    ck_assert_msg(pg_audit_holds(a, &cp, err, sizeof err) == 0, "%s", err);
    pg_audit_destroy(&a);
    a = s_open();
    ck_assert_msg(pg_audit_holds(a, &cp, err, sizeof err) == 0, "%s", err);
    pg_audit_destroy(&a);

    /* the last three events cut off: what is left is a valid chain */
    GPtrArray *lines = s_lines();
    s_put_lines(lines, 3);
    a = s_open();
    ck_assert_uint_eq(pg_audit_seq(a), 3);
    ck_assert_int_eq(pg_audit_holds(a, &cp, err, sizeof err), PG_ECORRUPT);
    ck_assert_msg(strstr(err, s_path) && strstr(err, "ends at event 3 but the checkpoint signed "
                                                     "at 2026-03-29T01:34:00.000Z holds event 4: "
                                                     "events were cut off its end"),
                  "%s", err);
    /* and written on past the checkpoint: event 4 is another one */
    s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok");
    s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok");
    ck_assert_int_eq(pg_audit_holds(a, &cp, err, sizeof err), PG_ECORRUPT);
    ck_assert_msg(strstr(err, "event 4 (of 5) is not the one the checkpoint signed at") &&
                      strstr(err, "the log was rewritten, or cut short and written on"),
                  "%s", err);
    pg_audit_destroy(&a);
    g_ptr_array_unref(lines);
    pg_buf_free(&msg);
}
END_TEST

/* The same across rotated files: the checkpoint's event found in the file that holds
 * it; a file removed from the middle is a gap; files archived away leave nothing to
 * check (1). */
START_TEST(test_holds_checkpoint_in_rotated_file)
{
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit_signing_key sk;
    s_signing_key_a(&sk);
    pg_audit_options o = {.sync_every = 1, .clock_ms = s_clock, .rotate_bytes = 1};
    pg_audit *a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    pg_buf msg = PG_BUF_INIT;
    pg_audit_checkpoint cp;
    for (int i = 0; i < 3; i++)
        s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    ck_assert_int_eq(pg_audit_checkpoint_make(a, &sk, &msg, &cp, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) /* one event a file: event 3 is in audit.log.<3> */
        s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok");
    ck_assert_msg(pg_audit_holds(a, &cp, err, sizeof err) == 0, "%s", err);
    char name[256];
    snprintf(name, sizeof name, "%s.%020d", s_path, 3);
    ck_assert_int_eq(unlink(name), 0);
    ck_assert_int_eq(pg_audit_holds(a, &cp, err, sizeof err), PG_ECORRUPT);
    ck_assert_msg(strstr(err, "holds no event 3: event 2 is followed by event 4"), "%s", err);
    for (int i = 1; i <= 2; i++) {
        snprintf(name, sizeof name, "%s.%020d", s_path, i);
        ck_assert_int_eq(unlink(name), 0);
    }
    ck_assert_int_eq(pg_audit_holds(a, &cp, err, sizeof err), 1);
    pg_audit_destroy(&a);
    pg_buf_free(&msg);
}
END_TEST

START_TEST(test_log_gone_not_restarted)
{
    char err[PG_ERRSTR_SIZE] = "", keyid[256], moved[256];
    pg_audit_options o = {.sync_every = 1, .clock_ms = s_clock};
    pg_audit *a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    pg_audit_destroy(&a);
    snprintf(moved, sizeof moved, "%s.away", s_path);
    ck_assert_int_eq(rename(s_path, moved), 0);
    ck_assert_ptr_null(pg_audit_new(s_path, &o, err, sizeof err));
    ck_assert_msg(strstr(err, "is gone but") && strstr(err, ".keyid remains"), "%s", err);
    ck_assert_int_eq(access(s_path, F_OK), -1); /* nothing made in its place */
    ck_assert_int_eq(rename(moved, s_path), 0);
    a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    pg_audit_destroy(&a);
    /* rotated: the current file gone, the rotated one there */
    char rotated[256];
    snprintf(rotated, sizeof rotated, "%s.00000000000000000001", s_path);
    ck_assert_int_eq(rename(s_path, rotated), 0);
    a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    pg_audit_destroy(&a);
    /* a new chain on purpose */
    char rm[600];
    snprintf(rm, sizeof rm, "rm -f %s %s", s_path, rotated);
    ck_assert_int_eq(system(rm), 0);
    snprintf(keyid, sizeof keyid, "%s.keyid", s_path);
    ck_assert_ptr_null(pg_audit_new(s_path, &o, err, sizeof err));
    ck_assert_int_eq(rename(keyid, moved), 0);
    a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    pg_audit_destroy(&a);
}
END_TEST

START_TEST(test_chain_continued_only_under_its_key)
{
    char ka[256], kb[256], err[PG_ERRSTR_SIZE] = "";
    s_key_file("a.key", KEY_A, 0600, ka, sizeof ka);
    s_key_file("b.key", KEY_B, 0600, kb, sizeof kb);
    pg_audit_key key_a, key_b;
    ck_assert_msg(pg_audit_key_load(ka, &key_a, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pg_audit_key_load(kb, &key_b, err, sizeof err) == 0, "%s", err);
    pg_audit_options plain = {.sync_every = 1, .clock_ms = s_clock, .rotate_bytes = 700},
                     with_a = plain, with_b = plain;
    with_a.key = &key_a;
    with_b.key = &key_b;
    const pg_audit_options *wrong[][2] = {{&plain, &with_a}, {&with_a, &plain}, {&with_a, &with_b}};
    for (size_t w = 0; w < 3; w++) {
        const pg_audit_options *was = wrong[w][0], *now = wrong[w][1];
        char rm[200];
        snprintf(rm, sizeof rm, "rm -f %s*", s_path);
        ck_assert_int_eq(system(rm), 0);
        /* 1, 2, ... events: rotated at 700 bytes, so the last event is found in every
         * place in turn */
        for (int n = 1; n <= 8; n++) {
            pg_audit *a = pg_audit_new(s_path, was, err, sizeof err);
            ck_assert_msg(a != NULL, "%s", err);
            s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
            pg_audit_destroy(&a);
            size_t len;
            char *before = s_read(&len);
            ck_assert_ptr_null(pg_audit_new(s_path, now, err, sizeof err));
            ck_assert_msg(strstr(err, "does not verify") &&
                              strstr(err, now->key ? "with audit.key_file"
                                                   : "without a key (audit.key_file not set)"),
                          "%zu/%d: %s", w, n, err);
            size_t len2;
            char *after = s_read(&len2);
            ck_assert_uint_eq(len, len2);
            ck_assert_int_eq(memcmp(before, after, len), 0);
            g_free(before);
            g_free(after);
        }
        pg_audit_verify_result res;
        pg_audit_verify_opts v = {.key = was->key};
        ck_assert_msg(pg_audit_verify(s_path, &v, &res, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_eq(res.events, 8);
        ck_assert_uint_ge(res.files, 3);
        /* the files before the last event archived elsewhere: the chain cannot say which
         * key it is under, the key id beside the log (<path>.keyid) does */
        snprintf(rm, sizeof rm, "rm -f %s*", s_path);
        ck_assert_int_eq(system(rm), 0);
        pg_audit_options one = *was; /* one event a file */
        one.rotate_bytes = 1;
        for (int n = 0; n < 3; n++) {
            pg_audit *a = pg_audit_new(s_path, &one, err, sizeof err);
            ck_assert_msg(a != NULL, "%s", err);
            s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
            pg_audit_destroy(&a);
        }
        snprintf(rm, sizeof rm, "rm -f %s.0*", s_path);
        ck_assert_int_eq(system(rm), 0);
        ck_assert_ptr_null(pg_audit_new(s_path, now, err, sizeof err));
        ck_assert_msg(strstr(err, ".keyid: says the log"), "%zu: %s", w, err);
        pg_audit *a = pg_audit_new(s_path, was, err, sizeof err);
        ck_assert_msg(a != NULL, "%s", err);
        pg_audit_destroy(&a);
        /* a key id that is neither form (cut short, emptied) is damage, not a key */
        char keyid[200];
        snprintf(keyid, sizeof keyid, "%s.keyid", s_path);
        for (int k = 0; k < 2; k++) {
            FILE *f = fopen(keyid, "w");
            ck_assert_ptr_nonnull(f);
            fputs(k ? "" : "hmac", f);
            fclose(f);
            ck_assert_ptr_null(pg_audit_new(s_path, was, err, sizeof err));
            ck_assert_msg(strstr(err, ".keyid: damaged"), "%s", err);
        }
    }
}
END_TEST

/* Six collect events in files rotated at 700 bytes; the options used. */
static pg_audit_options s_six_rotated(void)
{
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit_options o = {.sync_every = 1, .clock_ms = s_clock, .rotate_bytes = 700};
    pg_audit *a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    for (int i = 0; i < 6; i++)
        s_append(a, PG_AUDIT_COLLECT, i % 2 ? E2 : E1, NULL, "ok");
    pg_audit_destroy(&a);
    return o;
}

START_TEST(test_rotation_carries_the_chain)
{
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit_options o = s_six_rotated();
    pg_audit *a;
    /* reopened: the chain goes on (from the newest rotated file if the current one is
     * empty) */
    a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq(pg_audit_seq(a), 6);
    for (int i = 0; i < 4; i++)
        s_append(a, PG_AUDIT_DISCLOSE, E1, "kent", "shared");
    pg_audit_destroy(&a);
    pg_audit_verify_result res;
    ck_assert_msg(s_verify(&res, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(res.events, 10);
    ck_assert_uint_ge(res.files, 3);
    int n = 0;
    pg_audit_filter f = {.entity_id = E1};
    ck_assert_int_eq(pg_audit_query(s_path, &f, s_count, &n, err, sizeof err), 0);
    ck_assert_int_eq(n, 7); /* 3 collects and 4 disclosures across the files */
    /* time: a log open longer than rotate_ms starts a new file at the next event */
    pg_audit_options ot = {.sync_every = 1, .clock_ms = s_clock, .rotate_ms = 3600000};
    a = pg_audit_new(s_path, &ot, err, sizeof err);
    size_t files = res.files;
    s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    s_now += 3600000;
    s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    pg_audit_destroy(&a);
    ck_assert_msg(s_verify(&res, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(res.files, files + 1);
    /* a rotated file removed from the middle of the set is a gap */
    char first[256];
    snprintf(first, sizeof first, "%s.%020d", s_path, 1);
    ck_assert_int_eq(access(first, F_OK), 0);
    GDir *d = g_dir_open(s_dir, 0, NULL);
    const char *name;
    char victim[256] = "";
    while ((name = g_dir_read_name(d)))
        if (strstr(name, "audit.log.") && strlen(name) == strlen("audit.log.") + 20 &&
            strcmp(name, "audit.log.00000000000000000001"))
            snprintf(victim, sizeof victim, "%s/%s", s_dir, name);
    g_dir_close(d);
    ck_assert_int_eq(unlink(victim), 0);
    ck_assert_int_eq(s_verify(&res, err, sizeof err), PG_EINVALID);
    ck_assert_msg(strstr(err, "was expected: a line was deleted"), "%s", err);
}
END_TEST

/* Attack: a rotation whose directory cannot be synced (a failing disk) must not go on
 * writing events into a file a crash may take back. The batch that rotates fails (the
 * caller does not do its step); the log writes nothing until the directory syncs, and
 * then goes on in the new file, the chain whole, no rotated file renamed over. */
START_TEST(test_rotation_dir_sync_fails_closed)
{
    pg_audit_options o = {.sync_every = 1,
                          .clock_ms = s_clock,
                          .rotate_bytes = 300,
                          .write_fn = s_disk_fault_write,
                          .sync_fn = s_disk_fault_sync};
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit *a = pg_audit_new(s_path, &o, err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    for (int i = 0; i < 3; i++)
        s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    ck_assert_uint_ge((uint64_t)s_size(s_path), 300);
    pg_audit_event ev = {
        .action = PG_AUDIT_DISCLOSE, .party = "rms:test", .entity_id = E1, .outcome = "shared"};
    s_disk_fault = 3;
    ck_assert_int_eq(pg_audit_append_batch(a, &ev, 1, err, sizeof err), PG_EIO);
    ck_assert_msg(strstr(err, "cannot be synced"), "%s", err);
    ck_assert_uint_eq(pg_audit_seq(a), 3);
    ck_assert_int_eq(s_size(s_path), 0); /* rotated, and nothing written since */
    ck_assert_int_eq(pg_audit_append_batch(a, &ev, 1, err, sizeof err), PG_EIO);
    ck_assert_int_eq(s_size(s_path), 0);
    ck_assert_uint_eq(pg_audit_failures(a), 2);
    s_disk_fault = 0;
    for (int i = 0; i < 6; i++)
        ck_assert_msg(pg_audit_append_batch(a, &ev, 1, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(pg_audit_seq(a), 9);
    pg_audit_destroy(&a);
    pg_audit_verify_result res;
    ck_assert_msg(s_verify(&res, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(res.events, 9);
    ck_assert_uint_ge(res.files, 3);
}
END_TEST

/* Found by attack: an offline `polegate dlq replay` run as root rotated the daemon's
 * log into a new file root owned, and the daemon (not root) could not start again. The
 * new file gets the owner of the one before. */
START_TEST(test_rotation_keeps_the_owner)
{
    if (geteuid() != 0)
        return; /* only root can give a file away */
    char err[PG_ERRSTR_SIZE] = "";
    pg_audit *a = s_open(); /* the daemon's log, in its directory */
    s_append(a, PG_AUDIT_COLLECT, E1, NULL, "ok");
    pg_audit_destroy(&a);
    ck_assert_int_eq(chown(s_dir, 65534, 65534), 0);
    ck_assert_int_eq(chown(s_path, 65534, 65534), 0);
    pg_audit_options o = {.sync_every = 1, .clock_ms = s_clock, .rotate_bytes = 100};
    a = pg_audit_new(s_path, &o, err, sizeof err); /* root, as the command runs */
    ck_assert_msg(a != NULL, "%s", err);
    s_append(a, PG_AUDIT_COLLECT, E2, NULL, "ok"); /* rotates first */
    pg_audit_destroy(&a);
    char first[256];
    snprintf(first, sizeof first, "%s.%020d", s_path, 1);
    struct stat st;
    ck_assert_int_eq(stat(first, &st), 0); /* it did rotate */
    ck_assert_int_eq(stat(s_path, &st), 0);
    ck_assert_int_eq(st.st_uid, 65534);
    ck_assert_int_eq(st.st_gid, 65534);
    ck_assert_int_gt(st.st_size, 0);
    ck_assert_int_eq(chown(s_dir, 0, 0), 0);
}
END_TEST

START_TEST(test_keygen)
{
    char err[PG_ERRSTR_SIZE] = "", path[256];
    ck_assert_msg(pg_audit_keygen(s_dir, err, sizeof err) == 0, "%s", err);
    struct stat st;
    snprintf(path, sizeof path, "%s/audit-sign.key", s_dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    pg_audit_signing_key sk;
    pg_audit_public_key pk;
    ck_assert_int_eq(pg_audit_signing_key_load(path, &sk, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/audit-sign.pub", s_dir);
    ck_assert_int_eq(pg_audit_public_key_load(path, &pk, err, sizeof err), 0);
    ck_assert_int_eq(memcmp(pk.bytes, sk.public_key, 32), 0);
    /* never overwrites */
    ck_assert_int_eq(pg_audit_keygen(s_dir, err, sizeof err), PG_EIO);
}
END_TEST

/* A query over rotated files names a line it found bad by its file and its number
 * there (it once counted across the set: found by a review); with the oldest file
 * archived away, what is left is an unbroken chain. */
START_TEST(test_query_rotated_bad_line_named_in_its_file)
{
    char err[PG_ERRSTR_SIZE] = "";
    s_six_rotated();
    /* the oldest file archived away: what is left is still an unbroken chain */
    char first[256];
    snprintf(first, sizeof first, "%s.%020d", s_path, 1);
    ck_assert_int_eq(unlink(first), 0);
    int n = 0;
    ck_assert_msg(pg_audit_query(s_path, NULL, s_count, &n, err, sizeof err) == 0, "%s", err);
    /* a junk line as the current file's first */
    size_t len = 0;
    char *text = s_read(&len);
    size_t cur_lines = 0;
    for (size_t i = 0; i < len; i++)
        cur_lines += text[i] == '\n';
    g_free(text);
    FILE *f = fopen(s_path, "a");
    fputs("junk\n", f);
    fclose(f);
    char want[600];
    snprintf(want, sizeof want, "(the first: %s line %zu)", s_path, cur_lines + 1);
    ck_assert_int_eq(pg_audit_query(s_path, NULL, s_count, &n, err, sizeof err), PG_ECORRUPT);
    ck_assert_msg(strstr(err, want), "want '%s' (%s holds the line): %s", want, s_path, err);
}
END_TEST

/* pg_audit_field keeps a value that keeps the field rules as it is (found by review:
 * 254-256 valid bytes were cut, so the event named another id than the record's); its
 * rendering of one that does not fits and is UTF-8. */
START_TEST(test_audit_field_keeps_what_keeps_the_rules)
{
    pg_arena *a = pg_arena_new(0);
    char v[320];
    /* a 3-byte character across the cut, invalid bytes: the result fits and is UTF-8 */
    memset(v, 'a', 300 - 1);
    v[299] = 0;
    memcpy(v + 252, "\xe2\x82\xac\xff\x01", 5);
    char *r0 = pg_audit_field(a, v);
    ck_assert_uint_le(strlen(r0), PG_AUDIT_FIELD_MAX);
    ck_assert(g_utf8_validate(r0, -1, NULL));
    for (size_t n = 250; n <= PG_AUDIT_FIELD_MAX; n++) {
        memset(v, 'a', n);
        v[n] = 0;
        char *r = pg_audit_field(a, v);
        ck_assert_msg(!strcmp(r, v), "%zu valid bytes rendered as %zu bytes ending '%s'", n,
                      strlen(r), r + strlen(r) - 5);
    }
    pg_arena_destroy(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("audit");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_add_test(tc, test_chain_format);
    tcase_add_test(tc, test_audit_field_keeps_what_keeps_the_rules);
    tcase_add_test(tc, test_canonical_is_compact_json);
    tcase_add_test(tc, test_chain_across_reopen);
    tcase_add_loop_test(tc, test_tampering, 0, (int)(sizeof s_tampers / sizeof s_tampers[0]));
    tcase_add_test(tc, test_trailing_cut_needs_anchor);
    tcase_add_test(tc, test_partial_tail_cut);
    tcase_add_test(tc, test_torn_file_never_through_a_planted_link);
    tcase_add_test(tc, test_log_never_through_a_planted_link);
    tcase_add_test(tc, test_rotation_keeps_the_owner);
    tcase_add_test(tc, test_one_writer);
    tcase_add_test(tc, test_no_content);
    tcase_add_test(tc, test_query);
    tcase_add_test(tc, test_query_rotated_bad_line_named_in_its_file);
    tcase_add_test(tc, test_parse_time);
    tcase_add_test(tc, test_action_names);
    tcase_add_test(tc, test_threads_and_batched_sync);
    tcase_add_test(tc, test_disk_full_fails_closed_and_resumes);
    tcase_add_test(tc, test_keyed_chain_resists_rehash);
    tcase_add_test(tc, test_checkpoints_find_cut_and_rewrite);
    tcase_add_test(tc, test_checkpoints_read_from_the_tail);
    tcase_add_test(tc, test_rotation_carries_the_chain);
    tcase_add_test(tc, test_holds_latest_checkpoint);
    tcase_add_test(tc, test_holds_checkpoint_in_rotated_file);
    tcase_add_test(tc, test_log_gone_not_restarted);
    tcase_add_test(tc, test_chain_continued_only_under_its_key);
    tcase_add_test(tc, test_rotation_dir_sync_fails_closed);
    tcase_add_test(tc, test_keygen);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
