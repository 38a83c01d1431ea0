/* Unit tests for the niche adapter: NX5 XML <-> canonical, both directions. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polegate/adapter.h"
#include "polegate/error.h"
#include "polegate/identity.h"
#include "polegate/pole.h"

#define EK(x) POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_##x
#define OP(x) POLEGATE__POLE__V1__OPERATION__OPERATION_##x
#define ROLE(x) POLEGATE__POLE__V1__LINK_ROLE__LINK_ROLE_##x
#define BODY(x) POLEGATE__POLE__V1__ENTITY_UPDATE__BODY_##x

/* ------------------------------------------------------------ helpers */

static char *s_read(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", PG_FIXTURES, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void s_expect_has(const char *text, const char *want);
static void s_expect_lacks(const char *text, const char *unwanted);

static int s_decode(const char *doc, size_t len, pg_changeset *cs, char *err)
{
    err[0] = 0;
    return pg_adapter_niche.decode(NULL, (const uint8_t *)doc, len, cs, err, PG_ERRSTR_SIZE);
}

static pg_changeset *s_decode_ok(const char *doc, size_t len)
{
    pg_changeset *cs = pg_changeset_new();
    char err[PG_ERRSTR_SIZE];
    int rc = s_decode(doc, len, cs, err);
    ck_assert_msg(rc == 0, "decode: %s", err);
    return cs;
}

static pg_changeset *s_decode_fixture(const char *name)
{
    size_t len;
    char *doc = s_read(name, &len);
    pg_changeset *cs = s_decode_ok(doc, len);
    free(doc);
    return cs;
}

static const pg_entity_update *s_ent(const pg_changeset *cs, size_t i)
{
    ck_assert_uint_lt(i, cs->count);
    ck_assert_int_eq(cs->changes[i].type, PG_CHANGE_ENTITY);
    ck_assert_int_eq(cs->changes[i].replaces_links, 0);
    return cs->changes[i].entity;
}

static const pg_link_update *s_lnk(const pg_changeset *cs, size_t i)
{
    ck_assert_uint_lt(i, cs->count);
    ck_assert_int_eq(cs->changes[i].type, PG_CHANGE_LINK);
    return cs->changes[i].link;
}

static const char *s_uuid(const char *force, const char *gid)
{
    static char out[8][PG_UUID_STR_SIZE];
    static int next;
    char *o = out[next++ % 8];
    ck_assert_int_eq(pg_identity_entity(force, "NICHE", "GID", gid, o), 0);
    return o;
}

/* Unix seconds of a UTC civil time. */
static int64_t s_utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm);
}

static void s_expect_time(const pg_timestamp *ts, int64_t secs)
{
    ck_assert_ptr_nonnull(ts);
    ck_assert_int_eq(ts->seconds, secs);
    ck_assert_int_eq(ts->nanos, 0);
}

static void s_expect_date(const pg_date *d, int y, int m, int day)
{
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(d->year, y);
    ck_assert_int_eq(d->month, m);
    ck_assert_int_eq(d->day, day);
}

static void s_expect_head(const pg_entity_update *eu, const char *force, const char *gid, int kind,
                          int op, uint64_t version, const char *message_id)
{
    ck_assert_str_eq(eu->id, s_uuid(force, gid));
    ck_assert_int_eq(eu->kind, kind);
    ck_assert_int_eq(eu->operation, op);
    ck_assert_uint_eq(eu->version, version);
    ck_assert_str_eq(eu->origin->force, force);
    ck_assert_str_eq(eu->origin->system, "NICHE");
    ck_assert_str_eq(eu->origin->native_type, "GID");
    ck_assert_str_eq(eu->origin->native_id, gid);
    ck_assert_str_eq(eu->origin->message_id, message_id);
}

static void s_expect_marking(const pg_marking *m, int classification, int handling,
                             const char *caveat)
{
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->classification, classification);
    ck_assert_int_eq(m->handling, handling);
    ck_assert_str_eq(m->caveat, caveat);
}

#define CL(x) POLEGATE__POLE__V1__CLASSIFICATION__CLASSIFICATION_##x
#define HD(x) POLEGATE__POLE__V1__HANDLING__HANDLING_##x

static void s_expect_link(const pg_changeset *cs, size_t i, const char *force, const char *from,
                          int from_kind, int role, const char *to, int to_kind, int op,
                          const pg_entity_update *marking_from)
{
    const pg_link_update *lu = s_lnk(cs, i);
    char id[PG_UUID_STR_SIZE];
    ck_assert_int_eq(pg_identity_link(s_uuid(force, from), role, s_uuid(force, to), id), 0);
    ck_assert_str_eq(lu->id, id);
    ck_assert_int_eq(lu->operation, op);
    ck_assert_uint_eq(lu->version, 0);
    ck_assert_int_eq(lu->role, role);
    ck_assert_str_eq(lu->from->id, s_uuid(force, from));
    ck_assert_str_eq(lu->from->native_id, from);
    ck_assert_int_eq(lu->from->kind, from_kind);
    ck_assert_str_eq(lu->to->id, s_uuid(force, to));
    ck_assert_str_eq(lu->to->native_id, to);
    ck_assert_int_eq(lu->to->kind, to_kind);
    ck_assert_str_eq(lu->origin->force, force);
    ck_assert_str_eq(lu->origin->system, "NICHE");
    if (marking_from) {
        ck_assert_ptr_eq(lu->marking, marking_from->marking);
        ck_assert_ptr_eq(lu->modified_at, marking_from->modified_at);
    }
}

/* Packed protobuf of every change, in order, for byte-for-byte comparison. */
static size_t s_pack(const pg_change *ch, uint8_t **out)
{
    const ProtobufCMessage *m = ch->type == PG_CHANGE_ENTITY ? &ch->entity->base : &ch->link->base;
    size_t n = protobuf_c_message_get_packed_size(m);
    *out = malloc(n ? n : 1);
    ck_assert_uint_eq(protobuf_c_message_pack(m, *out), n);
    return n;
}

static void s_expect_same_changes(const pg_changeset *a, const pg_changeset *b)
{
    ck_assert_uint_eq(a->count, b->count);
    for (size_t i = 0; i < a->count; i++) {
        uint8_t *pa, *pb;
        ck_assert_int_eq(a->changes[i].type, b->changes[i].type);
        size_t na = s_pack(&a->changes[i], &pa), nb = s_pack(&b->changes[i], &pb);
        ck_assert_msg(na == nb && memcmp(pa, pb, na) == 0, "change %zu differs", i);
        free(pa);
        free(pb);
    }
}

static char *s_replace_all(const char *s, const char *find, const char *rep, int *count)
{
    size_t fl = strlen(find), rl = strlen(rep), n = 0;
    for (const char *p = strstr(s, find); p; p = strstr(p + fl, find))
        n++;
    char *out = malloc(strlen(s) + n * (rl + 1) + 1), *o = out;
    const char *p = s;
    for (const char *q = strstr(p, find); q; q = strstr(p, find)) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, rep, rl);
        o += rl;
        p = q + fl;
    }
    strcpy(o, p);
    *count = (int)n;
    return out;
}

/* ------------------------------------------------------------ adapter */

START_TEST(test_ops)
{
    ck_assert_str_eq(pg_adapter_niche.name, "niche");
    ck_assert_str_eq(pg_adapter_niche.format, "nx5");
    ck_assert_str_eq(pg_adapter_niche.system, "NICHE");
    ck_assert_uint_eq(pg_adapter_niche.max_message_size, 8u << 20);
    ck_assert_ptr_eq(pg_adapter_find("nx5"), &pg_adapter_niche);
    ck_assert_ptr_eq(pg_adapter_find("niche"), &pg_adapter_niche);
}
END_TEST

typedef struct s_split_seen {
    size_t calls, len, pos;
    const uint8_t *msg;
} s_split_seen;

static int s_split_cb(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_split_seen *s = arg;
    s->calls++;
    s->msg = msg, s->len = len, s->pos = pos;
    return 0;
}

START_TEST(test_split)
{
    size_t len;
    char *doc = s_read("nx5-burglary-import.xml", &len);
    s_split_seen seen = {0};
    ck_assert_int_eq(pg_adapter_niche.split((const uint8_t *)doc, len, s_split_cb, &seen), 0);
    ck_assert_uint_eq(seen.calls, 1);
    ck_assert_uint_eq(seen.len, len);
    ck_assert_uint_eq(seen.pos, 1);
    ck_assert_ptr_eq(seen.msg, (const uint8_t *)doc);

    /* Several documents one after another (an initial load): each one whole, numbered,
     * blank text between them skipped; each decodes on its own. */
    pg_buf three = PG_BUF_INIT;
    pg_buf_append(&three, doc, len);
    pg_buf_puts(&three, "\n\n");
    pg_buf_append(&three, doc, len);
    pg_buf_append(&three, doc, len);
    pg_buf_puts(&three, "\n");
    seen = (s_split_seen){0};
    ck_assert_int_eq(pg_adapter_niche.split(three.data, three.len, s_split_cb, &seen), 0);
    ck_assert_uint_eq(seen.calls, 3);
    ck_assert_uint_eq(seen.pos, 3);
    ck_assert_ptr_eq(seen.msg, three.data + 2 * len + 2);
    ck_assert_uint_eq(seen.len, len + 1);
    pg_changeset *cs = pg_changeset_new();
    char err[PG_ERRSTR_SIZE];
    pg_adapter_ctx ctx = {0};
    ck_assert_msg(pg_adapter_niche.decode(&ctx, seen.msg, seen.len, cs, err, sizeof err) == 0, "%s",
                  err);
    pg_changeset_destroy(&cs);
    pg_buf_free(&three);

    /* A line that starts like a declaration inside a document (CDATA, a comment), or
     * a processing instruction named xml-something, does not split it: only one after
     * the root's end tag does (a prefixed root too). */
    static const char *const inside[] = {
        "<X><![CDATA[a\n<?xml version=\"1.0\"?>\nb]]></X></Entity>",
        "</Entity><!--\n<?xml version=\"1.0\"?>\n-->",
        "</Entity>\n<?xml-stylesheet href=\"a.xsl\"?>\n",
    };
    for (size_t k = 0; k < sizeof inside / sizeof inside[0]; k++) {
        int n;
        char *w = s_replace_all(doc, "</Entity>", inside[k], &n);
        ck_assert_int_gt(n, 0);
        size_t wl = strlen(w);
        seen = (s_split_seen){0};
        ck_assert_int_eq(pg_adapter_niche.split((const uint8_t *)w, wl, s_split_cb, &seen), 0);
        ck_assert_uint_eq(seen.calls, 1);
        ck_assert_uint_eq(seen.len, wl);
        free(w);
    }
    int n;
    char *pre = s_replace_all(doc, "NX5Exchange", "nx:NX5Exchange", &n);
    /* after the root's end tag a comment or a processing instruction may follow */
    static const char *const misc[] = {"", "<!-- end -->\n", "<?pi x?>\n<!-- a -->  \n"};
    for (size_t k = 0; k < sizeof misc / sizeof misc[0]; k++) {
        pg_buf two = PG_BUF_INIT;
        pg_buf_puts(&two, pre);
        pg_buf_puts(&two, misc[k]);
        pg_buf_puts(&two, pre);
        seen = (s_split_seen){0};
        ck_assert_int_eq(pg_adapter_niche.split(two.data, two.len, s_split_cb, &seen), 0);
        ck_assert_msg(seen.calls == 2, "%zu: %zu", k, seen.calls);
        pg_buf_free(&two);
    }
    free(pre);
    free(doc);
}
END_TEST

/* Where one document ends and the next starts is read forward through the markup:
 * the root's end tag may have white space before its '>', a processing instruction
 * after it may hold "<?", and what a comment or CDATA section holds (an end tag, a
 * declaration line) is not markup. */
START_TEST(test_split_markup)
{
    size_t len;
    char *doc = s_read("nx5-burglary-import.xml", &len);
    int n;
    char *spaced = s_replace_all(doc, "</NX5Exchange>", "</NX5Exchange \n>", &n);
    ck_assert_int_eq(n, 1);
    char *cdata =
        s_replace_all(doc, "</Entity>",
                      "<X><![CDATA[</NX5Exchange>\n<?xml version=\"1.0\"?>\n]]></X></Entity>", &n);
    ck_assert_int_gt(n, 0);
    static const struct {
        const char *between; /* after the first document, before the second */
        int first_is_doc;    /* 1: the first document is doc, else the spaced one */
    } cases[] = {
        {"", 0},
        {"<?pi a <? b?>\n", 1},
        {"<?pi <?xml ?>\n<!-- <?xml -->\n", 1},
        {"<!--\n<?xml version=\"1.0\"?>\n-->\n", 1},
        {"<!--\n</NX5Exchange>\n<?xml version=\"1.0\"?>\n-->\n", 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *first = cases[k].first_is_doc ? doc : spaced;
        pg_buf two = PG_BUF_INIT;
        pg_buf_puts(&two, first);
        pg_buf_puts(&two, cases[k].between);
        pg_buf_puts(&two, doc);
        s_split_seen seen = {0};
        ck_assert_int_eq(pg_adapter_niche.split(two.data, two.len, s_split_cb, &seen), 0);
        ck_assert_msg(seen.calls == 2, "case %zu: %zu documents", k, seen.calls);
        ck_assert_uint_eq(seen.len, len);
        ck_assert_ptr_eq(seen.msg, two.data + two.len - len);
        /* each part decodes on its own */
        pg_changeset *cs = s_decode_ok(first, strlen(first));
        pg_changeset_destroy(&cs);
        pg_buf_free(&two);
    }
    /* an end tag and a declaration line in a CDATA section are text of the document */
    pg_buf two = PG_BUF_INIT;
    pg_buf_puts(&two, cdata);
    s_split_seen seen = {0};
    ck_assert_int_eq(pg_adapter_niche.split(two.data, two.len, s_split_cb, &seen), 0);
    ck_assert_uint_eq(seen.calls, 1);
    ck_assert_uint_eq(seen.len, two.len);
    pg_buf_reset(&two);
    /* A quoted value left open does not run on into the next document: no tag holds
     * a '<'. */
    pg_buf_puts(&two, "<?xml version=\"1.0\"?>\n<NX5Exchange xmlns=\"urn:nx:exchange:5\" "
                      "Source=\"N></NX5Exchange>\n");
    size_t broken = two.len;
    pg_buf_puts(&two, doc);
    seen = (s_split_seen){0};
    ck_assert_int_eq(pg_adapter_niche.split(two.data, two.len, s_split_cb, &seen), 0);
    ck_assert_uint_eq(seen.calls, 2);
    ck_assert_ptr_eq(seen.msg, two.data + broken);
    pg_buf_free(&two);
    /* An unterminated processing instruction runs to the end of the file: lines that
     * look like declarations after it are inside it (the attack's input, which the
     * former backward scan took quadratic time over). */
    pg_buf junk = PG_BUF_INIT;
    pg_buf_puts(&junk, doc);
    for (int i = 0; i < 2000; i++)
        pg_buf_puts(&junk, "-->\n<?xml ");
    seen = (s_split_seen){0};
    ck_assert_int_eq(pg_adapter_niche.split(junk.data, junk.len, s_split_cb, &seen), 0);
    ck_assert_uint_eq(seen.calls, 1);
    ck_assert_uint_eq(seen.len, junk.len);
    pg_buf_free(&junk);
    free(cdata), free(spaced), free(doc);
}
END_TEST

/* ------------------------------------------------------------ the samples */

START_TEST(test_merseyside_decode)
{
    pg_changeset *cs = s_decode_fixture("nx5-merseyside-export.xml");
    ck_assert_uint_eq(cs->count, 12);
    ck_assert_str_eq(cs->force, "MER");
    ck_assert_str_eq(cs->system, "NICHE");
    ck_assert_ptr_null(cs->message_id);

    /* Address: an empty first Line (no premises), grid kept, geo from PROJ. */
    const pg_entity_update *addr = s_ent(cs, 0);
    s_expect_head(addr, "MER", "00A1B2C3D4E5F607", EK(LOCATION), OP(UPSERT), 4,
                  "20261025-000317#1");
    s_expect_time(addr->modified_at, s_utc(2026, 10, 24, 21, 5, 0));
    s_expect_marking(addr->marking, CL(OFFICIAL), HD(P), "");
    ck_assert_int_eq(addr->retention->mopi_group, 3);
    s_expect_date(addr->retention->review_date, 2032, 10, 24);
    ck_assert_int_eq(addr->n_merged_from, 0);
    ck_assert_int_eq(addr->body_case, BODY(LOCATION));
    const Polegate__Pole__V1__Location *l = addr->location;
    ck_assert_str_eq(l->premises, "");
    ck_assert_str_eq(l->street, "27 Bold Street");
    ck_assert_str_eq(l->locality, "");
    ck_assert_str_eq(l->town, "Liverpool");
    ck_assert_str_eq(l->postcode, "L1 4DS");
    ck_assert_str_eq(l->uprn, "");
    ck_assert_double_eq(l->grid->easting, 334900);
    ck_assert_double_eq(l->grid->northing, 390300);
    ck_assert_double_eq_tol(l->geo->lat, 53.405485, 0.000002);
    ck_assert_double_eq_tol(l->geo->lon, -2.980693, 0.000002);

    /* Person: a Merge, in the hour before the repeated one. */
    const pg_entity_update *p = s_ent(cs, 1);
    s_expect_head(p, "MER", "7F3A9C2E4B1D0A66", EK(PERSON), OP(UPSERT), 12, "20261025-000317#2");
    s_expect_time(p->modified_at, s_utc(2026, 10, 24, 23, 30, 0));
    s_expect_marking(p->marking, CL(OFFICIAL_SENSITIVE), HD(P), "");
    ck_assert_int_eq(p->retention->mopi_group, 2);
    s_expect_date(p->retention->review_date, 2036, 10, 25);
    ck_assert_int_eq(p->n_merged_from, 1);
    ck_assert_str_eq(p->merged_from[0]->id, s_uuid("MER", "7F3A9C2E4B1D0B01"));
    ck_assert_str_eq(p->merged_from[0]->native_id, "7F3A9C2E4B1D0B01");
    ck_assert_int_eq(p->merged_from[0]->kind, EK(PERSON));
    const Polegate__Pole__V1__Person *pp = p->person;
    ck_assert_str_eq(pp->name->surname, "GARC\xc3\x8d"
                                        "A-L\xc3\x93PEZ"); /* from windows-1252 */
    ck_assert_uint_eq(pp->name->n_forenames, 2);
    ck_assert_str_eq(pp->name->forenames[0], "JOS\xc3\x89");
    ck_assert_str_eq(pp->name->forenames[1], "MAR\xc3\x8d"
                                             "A");
    s_expect_date(pp->date_of_birth, 1979, 0, 0);
    ck_assert_int_eq(pp->sex, POLEGATE__POLE__V1__SEX__SEX_MALE);
    ck_assert_int_eq(pp->officer_defined_ethnicity,
                     POLEGATE__POLE__V1__OFFICER_DEFINED_ETHNICITY__OFFICER_DEFINED_ETHNICITY_IC2);
    ck_assert_int_eq(pp->self_defined_ethnicity,
                     POLEGATE__POLE__V1__SELF_DEFINED_ETHNICITY__SELF_DEFINED_ETHNICITY_W9);
    ck_assert_str_eq(pp->nationality, "ESP");
    ck_assert_str_eq(pp->pnc_id, "1999/0054321A"); /* 99 is after 26: 1999 */
    ck_assert_str_eq(pp->cro_number, "");
    ck_assert_uint_eq(pp->n_aliases, 1);
    ck_assert_str_eq(pp->aliases[0]->name->surname, "WI\xc5\x9aNIEWSKI"); /* &#346; */
    ck_assert_uint_eq(pp->aliases[0]->name->n_forenames, 1);
    ck_assert_str_eq(pp->aliases[0]->name->forenames[0], "JOZEF");
    ck_assert_ptr_null(pp->aliases[0]->date_of_birth);
    ck_assert_uint_eq(pp->n_warning_markers, 2);
    ck_assert_int_eq(pp->warning_markers[0], POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_WE);
    ck_assert_int_eq(pp->warning_markers[1], POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_DR);

    /* Property with a WPN- category: a weapon. */
    const pg_entity_update *w = s_ent(cs, 2);
    s_expect_head(w, "MER", "1C0FFEE000000001", EK(WEAPON), OP(UPSERT), 1, "20261025-000317#3");
    ck_assert_int_eq(w->body_case, BODY(WEAPON));
    ck_assert_int_eq(w->weapon->category,
                     POLEGATE__POLE__V1__WEAPON_CATEGORY__WEAPON_CATEGORY_KNIFE);
    ck_assert_str_eq(w->weapon->description, "Lock knife, 9cm blade");

    /* Custody: times in the hour that repeats read as BST. */
    const pg_entity_update *c = s_ent(cs, 3);
    s_expect_head(c, "MER", "5EC0000000000009", EK(CUSTODY), OP(UPSERT), 2, "20261025-000317#4");
    s_expect_time(c->modified_at, s_utc(2026, 10, 25, 0, 35, 0));
    ck_assert_str_eq(c->custody->reference, "MER/CU/26/88812");
    s_expect_time(c->custody->arrested_at, s_utc(2026, 10, 24, 23, 20, 0));
    s_expect_time(c->custody->arrived_at, s_utc(2026, 10, 25, 0, 30, 0));
    ck_assert_ptr_null(c->custody->released_at);
    ck_assert_str_eq(c->custody->station, "St Anne Street");
    ck_assert_int_eq(
        c->custody->outcome,
        POLEGATE__POLE__V1__CUSTODY_OUTCOME__CUSTODY_OUTCOME_RELEASED_UNDER_INVESTIGATION);

    /* IntelReport, Handling C with its Caveat. */
    const pg_entity_update *in = s_ent(cs, 4);
    s_expect_head(in, "MER", "11E7000000000777", EK(INTELLIGENCE), OP(UPSERT), 1,
                  "20261025-000317#5");
    s_expect_marking(in->marking, CL(OFFICIAL_SENSITIVE), HD(C),
                     "Not to be disclosed to the subject or used in evidence without reference "
                     "to the originator.");
    s_expect_time(in->intelligence->reported_at, s_utc(2026, 10, 24, 16, 45, 0));
    ck_assert_str_eq(in->intelligence->reference, "MER/INT/26/004121");
    ck_assert_str_eq(in->intelligence->text,
                     "Subject reported to be carrying a knife in the city centre at weekends.");
    ck_assert_int_eq(in->intelligence->grading->source,
                     POLEGATE__POLE__V1__SOURCE_EVALUATION__SOURCE_EVALUATION_2_UNTESTED);
    ck_assert_int_eq(in->intelligence->grading->intelligence,
                     POLEGATE__POLE__V1__INTELLIGENCE_ASSESSMENT__INTELLIGENCE_ASSESSMENT_B);
    ck_assert_int_eq(in->intelligence->grading->handling, HD(C));

    /* Delete: no body, but kind, marking and retention. */
    const pg_entity_update *del = s_ent(cs, 5);
    s_expect_head(del, "MER", "7E1E000000000031", EK(TELEPHONE), OP(DELETE), 5,
                  "20261025-000317#6");
    ck_assert_int_eq(del->body_case, POLEGATE__POLE__V1__ENTITY_UPDATE__BODY__NOT_SET);
    s_expect_time(del->modified_at, s_utc(2026, 10, 25, 0, 10, 0));
    ck_assert_int_eq(del->retention->mopi_group, 3);

    s_expect_link(cs, 6, "MER", "7F3A9C2E4B1D0A66", EK(PERSON), ROLE(HOME_ADDRESS),
                  "00A1B2C3D4E5F607", EK(LOCATION), OP(UPSERT), p);
    s_expect_date(s_lnk(cs, 6)->valid_from, 2024, 9, 1);
    ck_assert_ptr_null(s_lnk(cs, 6)->valid_to);
    ck_assert_str_eq(s_lnk(cs, 6)->origin->message_id, "20261025-000317#7");
    s_expect_link(cs, 7, "MER", "7F3A9C2E4B1D0A66", EK(PERSON), ROLE(OWNER), "1C0FFEE000000001",
                  EK(WEAPON), OP(UPSERT), p);
    s_expect_link(cs, 8, "MER", "5EC0000000000009", EK(CUSTODY), ROLE(DETAINED), "7F3A9C2E4B1D0A66",
                  EK(PERSON), OP(UPSERT), c);
    s_expect_link(cs, 9, "MER", "5EC0000000000009", EK(CUSTODY), ROLE(OCCURRED_AT),
                  "00A1B2C3D4E5F607", EK(LOCATION), OP(UPSERT), c);
    s_expect_link(cs, 10, "MER", "11E7000000000777", EK(INTELLIGENCE), ROLE(SUBJECT),
                  "7F3A9C2E4B1D0A66", EK(PERSON), OP(UPSERT), in);
    ck_assert_int_eq(s_lnk(cs, 10)->marking->handling, HD(C));
    s_expect_link(cs, 11, "MER", "7F3A9C2E4B1D0A66", EK(PERSON), ROLE(USES), "7E1E000000000031",
                  EK(TELEPHONE), OP(DELETE), p);
    ck_assert_str_eq(s_lnk(cs, 11)->origin->message_id, "20261025-000317#12");
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_burglary_decode)
{
    pg_changeset *cs = s_decode_fixture("nx5-burglary-import.xml");
    ck_assert_uint_eq(cs->count, 16);
    ck_assert_str_eq(cs->force, "ESX");

    const pg_entity_update *a = s_ent(cs, 0);
    s_expect_head(a, "ESX", "A100000000000045", EK(LOCATION), OP(UPSERT), 3, "gw-000001#1");
    s_expect_time(a->modified_at, s_utc(2026, 3, 29, 6, 12, 0)); /* 07:12 BST */
    s_expect_marking(a->marking, CL(OFFICIAL_SENSITIVE), HD(P), "");
    const Polegate__Pole__V1__Location *l = a->location;
    ck_assert_str_eq(l->premises, "Flat 2");
    ck_assert_str_eq(l->street, "14 Crouch Street");
    ck_assert_str_eq(l->locality, "");
    ck_assert_str_eq(l->town, "Colchester");
    ck_assert_str_eq(l->postcode, "CO3 3ES");
    ck_assert_str_eq(l->uprn, "100091234567");
    ck_assert_double_eq(l->grid->easting, 599949.6);
    ck_assert_double_eq(l->grid->northing, 225157.6);
    /* The ATX side of the sample has 51.8891, 0.9042: within 5 m (about 5e-5 deg). */
    ck_assert_double_eq_tol(l->geo->lat, 51.8891, 0.00002);
    ck_assert_double_eq_tol(l->geo->lon, 0.9042, 0.00002);

    const pg_entity_update *p = s_ent(cs, 1);
    s_expect_head(p, "ESX", "B100000000123456", EK(PERSON), OP(UPSERT), 7, "gw-000001#2");
    const Polegate__Pole__V1__Person *pp = p->person;
    ck_assert_str_eq(pp->name->surname, "O'BRIEN");
    ck_assert_str_eq(pp->name->forenames[0], "SE\xc3\x81N");
    ck_assert_str_eq(pp->name->forenames[1], "PATRICK");
    ck_assert_str_eq(pp->title, "Mr");
    s_expect_date(pp->date_of_birth, 1985, 7, 14);
    ck_assert_str_eq(pp->place_of_birth, "Cork");
    ck_assert_str_eq(pp->nationality, "IRL");
    ck_assert_str_eq(pp->pnc_id, "1985/0123456J");
    ck_assert_str_eq(pp->cro_number, "123456/99L");
    ck_assert_str_eq(pp->aliases[0]->name->surname, "BRYAN");
    s_expect_date(pp->aliases[0]->date_of_birth, 1985, 7, 0);
    ck_assert_int_eq(pp->warning_markers[0], POLEGATE__POLE__V1__WARNING_MARKER__WARNING_MARKER_VI);

    const Polegate__Pole__V1__Person *p2 = s_ent(cs, 2)->person;
    ck_assert_str_eq(p2->name->surname, "\xc5\x81UKASZEWSKA");
    ck_assert_str_eq(p2->name->forenames[0], "ZO\xc3\x8b");
    s_expect_date(p2->date_of_birth, 1990, 2, 0);
    ck_assert_int_eq(p2->sex, POLEGATE__POLE__V1__SEX__SEX_FEMALE);
    ck_assert_int_eq(p2->officer_defined_ethnicity, 0);
    ck_assert_str_eq(p2->nationality, "POL");
    ck_assert_str_eq(p2->pnc_id, "");

    const Polegate__Pole__V1__Vehicle *v = s_ent(cs, 3)->vehicle;
    ck_assert_str_eq(v->vrm, "AB12CDE");
    ck_assert_str_eq(v->make, "FORD");
    ck_assert_int_eq(v->colour, POLEGATE__POLE__V1__COLOUR__COLOUR_SILVER);
    ck_assert_int_eq(v->year, 2012);

    const pg_entity_update *item = s_ent(cs, 4);
    ck_assert_int_eq(item->kind, EK(ITEM));
    ck_assert_int_eq(item->item->category,
                     POLEGATE__POLE__V1__ITEM_CATEGORY__ITEM_CATEGORY_ELECTRONICS);
    ck_assert_str_eq(item->item->serial_number, "CN0X1234");
    ck_assert_str_eq(item->item->value->currency, "GBP");
    ck_assert_int_eq(item->item->value->minor_units, 125000);

    const Polegate__Pole__V1__Telephone *t = s_ent(cs, 5)->telephone;
    ck_assert_str_eq(t->number, "+447700900123");
    ck_assert_int_eq(t->kind, POLEGATE__POLE__V1__TELEPHONE_KIND__TELEPHONE_KIND_MOBILE);

    const pg_entity_update *occ = s_ent(cs, 6);
    const Polegate__Pole__V1__Occurrence *o = occ->occurrence;
    ck_assert_str_eq(o->reference, "42/12345/26");
    ck_assert_int_eq(o->kind, POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_CRIME);
    ck_assert_uint_eq(o->n_offences, 1);
    ck_assert_int_eq(o->offences[0]->ho_class, 28);
    ck_assert_int_eq(o->offences[0]->ho_subclass, 1);
    ck_assert_str_eq(o->offences[0]->description, "Burglary - dwelling");
    /* Either side of the spring change: 00:45 is GMT, 07:10 BST. */
    s_expect_time(o->occurred_from, s_utc(2026, 3, 28, 23, 30, 0));
    s_expect_time(o->occurred_to, s_utc(2026, 3, 29, 0, 45, 0));
    s_expect_time(o->reported_at, s_utc(2026, 3, 29, 6, 10, 0));
    ck_assert_int_eq(o->status,
                     POLEGATE__POLE__V1__OCCURRENCE_STATUS__OCCURRENCE_STATUS_UNDER_INVESTIGATION);

    s_expect_link(cs, 7, "ESX", "B100000000123456", EK(PERSON), ROLE(USES), "E100000000000042",
                  EK(TELEPHONE), OP(UPSERT), p);
    s_expect_date(s_lnk(cs, 7)->valid_from, 2025, 11, 1);
    s_expect_link(cs, 11, "ESX", "F100000000004711", EK(OCCURRENCE), ROLE(SUSPECT),
                  "B100000000123456", EK(PERSON), OP(UPSERT), occ);
    s_expect_link(cs, 14, "ESX", "F100000000004711", EK(OCCURRENCE), ROLE(STOLEN),
                  "D100000000000777", EK(ITEM), OP(UPSERT), occ);
    s_expect_link(cs, 15, "ESX", "F100000000004711", EK(OCCURRENCE), ROLE(VEHICLE_INVOLVED),
                  "C100000000000301", EK(VEHICLE), OP(UPSERT), occ);
    pg_changeset_destroy(&cs);
}
END_TEST

/* ------------------------------------------------------------ round trips */

/* An idmap that knows GIDs for native ids (a table, else the native id itself) and
 * says "created" the first time it sees each uuid. */
typedef struct s_idmap {
    pg_idmap base;
    const char *const (*table)[2];
    size_t n_table;
    char seen[64][PG_UUID_STR_SIZE];
    size_t n_seen;
    size_t calls;
} s_idmap;

static int s_resolve(pg_idmap *self, const char *uuid, int kind, const char *origin_system,
                     const char *native_id, char *out, size_t outsize, int *created, char *errstr,
                     size_t errstr_size)
{
    s_idmap *m = (s_idmap *)self;
    (void)kind, (void)origin_system;
    m->calls++;
    const char *gid = native_id;
    for (size_t i = 0; i < m->n_table; i++)
        if (strcmp(m->table[i][0], native_id) == 0)
            gid = m->table[i][1];
    if (!gid || !*gid)
        return pg_errf(PG_ENOTFOUND, errstr, errstr_size, "no GID for %s", uuid);
    int fresh = 1;
    for (size_t i = 0; i < m->n_seen; i++)
        if (strcmp(m->seen[i], uuid) == 0)
            fresh = 0;
    if (fresh && m->n_seen < 64)
        snprintf(m->seen[m->n_seen++], PG_UUID_STR_SIZE, "%s", uuid);
    if (created)
        *created = fresh;
    snprintf(out, outsize, "%s", gid);
    return 0;
}

static char *s_encode_ok(const pg_changeset *cs, pg_idmap *idmap, int64_t now_ms, const char *batch)
{
    pg_adapter_ctx ctx = {.idmap = idmap, .now_ms = now_ms, .batch = batch};
    pg_buf out = PG_BUF_INIT;
    char err[PG_ERRSTR_SIZE] = "";
    int rc = pg_adapter_niche.encode(&ctx, cs, &out, err, sizeof err);
    ck_assert_msg(rc == 0, "encode: %s", err);
    return (char *)out.data;
}

/* The original as a conforming exporter writes it from canonical: UTF-8, no comment,
 * attributes in the order the spec lists them, no character references, and Add
 * written as Modify (canonical UPSERT does not keep which). */
static char *s_normalise(const char *doc)
{
    char *s = strdup(doc), *t;
    int n;
    const char *const reps[][2] = {
        {"encoding=\"windows-1252\"", "encoding=\"UTF-8\""},
        {"&#346;", "\xc5\x9a"},
        {"Op=\"Add\"", "Op=\"Modify\""},
        {"Op=\"Delete\" Rev=\"5\"", "Rev=\"5\" Op=\"Delete\""},
    };
    for (size_t i = 0; i < sizeof reps / sizeof reps[0]; i++) {
        t = s_replace_all(s, reps[i][0], reps[i][1], &n);
        free(s);
        s = t;
    }
    char *c = strstr(s, "<!--"), *e = c ? strstr(c, "-->\n") : NULL;
    if (c && e)
        memmove(c, e + 4, strlen(e + 4) + 1);
    return s;
}

/* windows-1252 -> UTF-8 for the bytes the Merseyside sample uses (Latin-1 range). */
static char *s_cp1252_to_utf8(const char *s)
{
    char *out = malloc(strlen(s) * 2 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        ck_assert_msg(*p < 0x80 || *p >= 0xA0, "byte %02x outside Latin-1", *p);
        if (*p < 0x80) {
            *o++ = (char)*p;
        } else {
            *o++ = (char)(0xC0 | (*p >> 6));
            *o++ = (char)(0x80 | (*p & 0x3F));
        }
    }
    *o = 0;
    return out;
}

START_TEST(test_round_trip_merseyside)
{
    size_t len;
    char *orig = s_read("nx5-merseyside-export.xml", &len);
    pg_changeset *a = s_decode_ok(orig, len);
    /* Created 25/10/2026 01:40:00 is in the repeated hour: BST, 00:40 UTC. */
    char *text = s_encode_ok(a, NULL, s_utc(2026, 10, 25, 0, 40, 0) * 1000, "20261025-000317");
    char *utf8 = s_cp1252_to_utf8(orig);
    char *want = s_normalise(utf8);
    ck_assert_str_eq(text, want);
    pg_changeset *b = s_decode_ok(text, strlen(text));
    s_expect_same_changes(a, b);
    free(orig), free(text), free(utf8), free(want);
    pg_changeset_destroy(&a);
    pg_changeset_destroy(&b);
}
END_TEST

START_TEST(test_round_trip_burglary)
{
    size_t len;
    char *orig = s_read("nx5-burglary-import.xml", &len);
    pg_changeset *a = s_decode_ok(orig, len);
    /* With an idmap that has just created every GID, every record is an Add again. */
    s_idmap m = {.base.resolve = s_resolve};
    char *text = s_encode_ok(a, &m.base, s_utc(2026, 3, 29, 6, 30, 0) * 1000, "gw-000001");
    char *want = s_normalise(orig);
    char *want_add = s_replace_all(want, "Op=\"Modify\"", "Op=\"Add\"", &(int){0});
    ck_assert_str_eq(text, want_add);
    ck_assert_uint_eq(m.n_seen, 7);
    ck_assert_uint_eq(m.calls, 7 + 2 * 9);
    pg_changeset *b = s_decode_ok(text, strlen(text));
    s_expect_same_changes(a, b);
    free(orig), free(text), free(want), free(want_add);
    pg_changeset_destroy(&a);
    pg_changeset_destroy(&b);
}
END_TEST

/* The burglary sample in ATX, sent to a Niche-like force, reads back as the NX5 sample
 * does: the same records, links, markings and retention. */
START_TEST(test_cross_format_atx)
{
    size_t len;
    char *atx = s_read("atx-burglary.ndjson", &len);
    pg_changeset *from_atx = pg_changeset_new();
    char *line = atx;
    for (int i = 0; i < 7; i++) {
        char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        char err[PG_ERRSTR_SIZE] = "";
        int rc = pg_adapter_athena.decode(NULL, (const uint8_t *)line, (size_t)(nl - line),
                                          from_atx, err, sizeof err);
        ck_assert_msg(rc == 0, "atx line %d: %s", i + 1, err);
        line = nl + 1;
    }
    static const char *const gids[][2] = {
        {"L0000000045", "A100000000000045"}, {"P0000123456", "B100000000123456"},
        {"P0000123999", "B100000000123999"}, {"V0000000301", "C100000000000301"},
        {"I0000000777", "D100000000000777"}, {"T0000000042", "E100000000000042"},
        {"O0000004711", "F100000000004711"},
    };
    s_idmap m = {.base.resolve = s_resolve, .table = gids, .n_table = 7};
    char *text = s_encode_ok(from_atx, &m.base, s_utc(2026, 3, 29, 6, 30, 0) * 1000, "gw-000001");
    pg_changeset *got = s_decode_ok(text, strlen(text));
    pg_changeset *want = s_decode_fixture("nx5-burglary-import.xml");
    ck_assert_uint_eq(got->count, want->count);
    /* Same changes, compared by id; ATX interleaves each record's links after it, so
     * the order and the message ids (<Batch>#<n>) differ. */
    for (size_t i = 0; i < want->count; i++) {
        const pg_change *w = &want->changes[i];
        const char *id = w->type == PG_CHANGE_ENTITY ? w->entity->id : w->link->id;
        const pg_change *g = NULL;
        for (size_t k = 0; k < got->count && !g; k++) {
            const pg_change *c = &got->changes[k];
            if (c->type == w->type &&
                strcmp(c->type == PG_CHANGE_ENTITY ? c->entity->id : c->link->id, id) == 0)
                g = c;
        }
        ck_assert_msg(g != NULL, "change %zu (%s) missing", i, id);
        pg_origin *wo = w->type == PG_CHANGE_ENTITY ? w->entity->origin : w->link->origin;
        pg_origin *go = g->type == PG_CHANGE_ENTITY ? g->entity->origin : g->link->origin;
        char *wm = wo->message_id, *gm = go->message_id;
        wo->message_id = go->message_id = "";
        uint8_t *pw, *pg;
        size_t nw = s_pack(w, &pw), ng = s_pack(g, &pg);
        ck_assert_msg(nw == ng && memcmp(pw, pg, nw) == 0, "change %zu (%s) differs", i, id);
        free(pw), free(pg);
        wo->message_id = wm, go->message_id = gm;
    }
    free(atx), free(text);
    pg_changeset_destroy(&from_atx);
    pg_changeset_destroy(&got);
    pg_changeset_destroy(&want);
}
END_TEST

/* ------------------------------------------------------------ validation */

/* A valid document with every Kind; each case below changes one thing in it. */
static const char s_base[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<NX5Exchange xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"MER\" Batch=\"T-1\" "
    "Created=\"25/10/2026 01:40:00\">\n"
    " <Entity Kind=\"Person\" GID=\"7F3A9C2E4B1D0A66\" Rev=\"12\" Op=\"Modify\" "
    "Modified=\"25/10/2026 00:30:00\" GPMS=\"OS\" Handling=\"P\" MoPI=\"2\" "
    "Review=\"25/10/2036\">\n"
    "  <Surname>O'BRIEN</Surname><Given>SEAN</Given>\n"
    "  <BirthDate Precision=\"Day\">14/07/1985</BirthDate><Gender>1</Gender>\n"
    "  <EthnicityOD>1</EthnicityOD><EthnicitySD>W2</EthnicitySD><Nationality>IE</Nationality>\n"
    "  <PNCID>85/123456J</PNCID><CRO>123456/99L</CRO>\n"
    "  <Alias><Surname>BRYAN</Surname><BirthDate "
    "Precision=\"Month\">00/07/1985</BirthDate></Alias>\n"
    "  <Warning>VI</Warning>\n"
    " </Entity>\n"
    " <Entity Kind=\"Address\" GID=\"00A1B2C3D4E5F607\" Rev=\"4\" Op=\"Add\" "
    "Modified=\"24/10/2026 22:05:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"3\" Review=\"24/10/2032\">\n"
    "  <Line/><Line>27 Bold Street</Line><Postcode>L1 4DS</Postcode><UPRN>100091234567</UPRN>\n"
    "  <Easting>334900</Easting><Northing>390300</Northing>\n"
    " </Entity>\n"
    " <Entity Kind=\"Vehicle\" GID=\"C100000000000301\" Rev=\"3\" Op=\"Add\" "
    "Modified=\"29/03/2026 07:14:30\" GPMS=\"S\" Handling=\"P\" MoPI=\"1\" Review=\"01/01/2030\">\n"
    "  <VRM>AB12CDE</VRM><Colour>SIL</Colour><Year>2012</Year>\n"
    " </Entity>\n"
    " <Entity Kind=\"Property\" GID=\"D100000000000777\" Rev=\"6\" Op=\"Add\" "
    "Modified=\"29/03/2026 07:15:00\" GPMS=\"TS\" Handling=\"P\" MoPI=\"2\" "
    "Review=\"02/01/2030\">\n"
    "  <Category>ELC</Category><Value>125000</Value>\n"
    " </Entity>\n"
    " <Entity Kind=\"Telephone\" GID=\"E100000000000042\" Rev=\"7\" Op=\"Add\" "
    "Modified=\"29/03/2026 07:15:10\" GPMS=\"O\" Handling=\"P\" MoPI=\"2\" Review=\"03/01/2030\">\n"
    "  <Number>07700 900123</Number><Type>M</Type>\n"
    " </Entity>\n"
    " <Entity Kind=\"Occurrence\" GID=\"F100000000004711\" Rev=\"8\" Op=\"Add\" "
    "Modified=\"29/03/2026 07:20:00\" GPMS=\"OS\" Handling=\"P\" MoPI=\"2\" "
    "Review=\"04/01/2030\">\n"
    "  <Reference>42/12345/26</Reference><Type>Crime</Type>\n"
    "  <Offence Code=\"28.1\">Burglary - dwelling</Offence>\n"
    "  <From>28/03/2026 23:30:00</From><To>29/03/2026 00:45:00</To><Status>U</Status>\n"
    " </Entity>\n"
    " <Entity Kind=\"Custody\" GID=\"5EC0000000000009\" Rev=\"2\" Op=\"Add\" "
    "Modified=\"25/10/2026 01:35:00\" GPMS=\"OS\" Handling=\"P\" MoPI=\"2\" "
    "Review=\"05/01/2030\">\n"
    "  <Reference>MER/CU/1</Reference><Arrived>25/10/2026 "
    "01:30:00</Arrived><Outcome>RUI</Outcome>\n"
    " </Entity>\n"
    " <Entity Kind=\"IntelReport\" GID=\"11E7000000000777\" Rev=\"9\" Op=\"Add\" "
    "Modified=\"24/10/2026 18:00:00\" GPMS=\"OS\" Handling=\"C\" MoPI=\"2\" "
    "Review=\"06/01/2030\">\n"
    "  <Caveat>Not to be disclosed.</Caveat><Reference>INT/1</Reference>\n"
    "  <Grading Source=\"2\" Intel=\"B\" Handling=\"C\"/>\n"
    " </Entity>\n"
    " <Entity Kind=\"Telephone\" GID=\"7E1E000000000031\" Rev=\"5\" Op=\"Delete\" "
    "Modified=\"25/10/2026 01:10:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"3\" "
    "Review=\"25/10/2032\"/>\n"
    " <Link Role=\"HOME\" From=\"7F3A9C2E4B1D0A66\" To=\"00A1B2C3D4E5F607\" "
    "Start=\"01/09/2024\"/>\n"
    " <Link Role=\"USES\" From=\"7F3A9C2E4B1D0A66\" To=\"7E1E000000000031\" Op=\"Delete\"/>\n"
    "</NX5Exchange>\n";

#define P1 "Entity[1] GID=7F3A9C2E4B1D0A66 "
#define A2 "Entity[2] GID=00A1B2C3D4E5F607 "
#define V3 "Entity[3] GID=C100000000000301 "
#define PR4 "Entity[4] GID=D100000000000777 "
#define T5 "Entity[5] GID=E100000000000042 "
#define O6 "Entity[6] GID=F100000000004711 "
#define C7 "Entity[7] GID=5EC0000000000009 "
#define I8 "Entity[8] GID=11E7000000000777 "
#define D9 "Entity[9] GID=7E1E000000000031 "
#define PERSON_HEAD(op)                                                                            \
    "Rev=\"12\" Op=\"" op "\" Modified=\"25/10/2026 00:30:00\" GPMS=\"OS\" Handling=\"P\" "        \
    "MoPI=\"2\" Review=\"25/10/2036\">"

#define REV_RULE "must be an integer 1-9999999999999999999 (at most 19 digits, no leading zeros)"

typedef struct s_bad {
    const char *find;
    const char *replace;
    const char *reason; /* the whole reason, or its start when it ends in '*' */
} s_bad;

static const s_bad s_bads[] = {
    /* root */
    {"Source=\"NICHE\"", "Source=\"ATHENA\"", "NX5Exchange@Source: must be NICHE"},
    {"Force=\"MER\"", "Force=\"mer\"", "NX5Exchange@Force: must be 2-4 upper-case letters"},
    {"Force=\"MER\"", "Force=\"MERSEY\"", "NX5Exchange@Force: must be 2-4 upper-case letters"},
    {"Force=\"MER\"", "Force=\"M\"", "NX5Exchange@Force: must be 2-4 upper-case letters"},
    {" Force=\"MER\"", "", "NX5Exchange@Force: required"},
    {"Batch=\"T-1\"", "Batch=\"\"", "NX5Exchange@Batch: must be 1-40 characters"},
    {"Batch=\"T-1\"", "Batch=\"12345678901234567890123456789012345678901\"",
     "NX5Exchange@Batch: must be 1-40 characters"},
    {"Created=\"25/10/2026 01:40:00\"", "Created=\"2026-10-25T01:40:00\"",
     "NX5Exchange@Created: is not a local time dd/mm/yyyy HH:MM:SS"},
    {"Created=\"25/10/2026 01:40:00\"", "Created=\"29/03/2026 01:30:00\"",
     "NX5Exchange@Created: does not exist in UK time (clocks go forward)"},
    {"Batch=\"T-1\"", "Batch=\"T-1\" Priority=\"high\"",
     "NX5Exchange: unknown attribute 'Priority'"},
    {" <Link Role=\"HOME\"", " <Lnk/><Link Role=\"HOME\"",
     "Lnk: unknown element in NX5Exchange (Entity or Link)"},
    {"NX5Exchange", "NX6Exchange", "NX6Exchange: the root element must be NX5Exchange"},
    {"xmlns=\"urn:nx:exchange:5\"", "xmlns=\"urn:nx:exchange:4\"",
     "NX5Exchange: the root element must be NX5Exchange in namespace urn:nx:exchange:5 (found "
     "'NX5Exchange' in 'urn:nx:exchange:4')"},
    {" <Link Role=\"HOME\"", " stray <Link Role=\"HOME\"",
     "NX5Exchange: text is not allowed between elements"},
    /* entity attributes */
    {"Kind=\"Vehicle\"", "Kind=\"Car\"", "Entity[3]@Kind: unknown kind (*"},
    {"GID=\"C100000000000301\"", "GID=\"c100000000000301\"",
     "Entity[3]@GID: must be exactly 16 upper-case hex digits"},
    {"GID=\"C100000000000301\"", "GID=\"C10000000000030\"",
     "Entity[3]@GID: must be exactly 16 upper-case hex digits"},
    {"Rev=\"3\"", "Rev=\"0\"", "Entity[3]@Rev: " REV_RULE},
    {"Rev=\"3\"", "Rev=\"03\"", "Entity[3]@Rev: " REV_RULE},
    {"Rev=\"3\"", "Rev=\"-3\"", "Entity[3]@Rev: " REV_RULE},
    /* 2^64 - 1 fits the canonical version, but NX5 Revs are read to 19 digits */
    {"Rev=\"3\"", "Rev=\"18446744073709551615\"", "Entity[3]@Rev: " REV_RULE},
    {"Rev=\"3\" Op=\"Add\"", "Rev=\"3\" Op=\"Create\"",
     "Entity[3]@Op: must be Add, Modify, Delete or Merge"},
    {"Modified=\"29/03/2026 07:14:30\"", "Modified=\"31/02/2026 07:14:30\"",
     "Entity[3]@Modified: is not a valid date and time"},
    {"Modified=\"29/03/2026 07:14:30\"", "Modified=\"29/03/2026 01:14:30\"",
     "Entity[3]@Modified: does not exist in UK time (clocks go forward)"},
    {"Modified=\"29/03/2026 07:14:30\"", "Modified=\"29/03/2026 7:14:30\"",
     "Entity[3]@Modified: is not a local time dd/mm/yyyy HH:MM:SS"},
    {"GPMS=\"S\"", "GPMS=\"SECRET\"", "Entity[3]@GPMS: is not a valid marking (O, OS, S or TS)"},
    {"GPMS=\"S\" Handling=\"P\"", "GPMS=\"S\" Handling=\"Q\"",
     "Entity[3]@Handling: is not a valid handling (P or C)"},
    {"GPMS=\"S\" Handling=\"P\"", "GPMS=\"S\" Handling=\"C\"",
     V3 "Caveat: required with Handling C"},
    {"MoPI=\"1\"", "MoPI=\"5\"", "Entity[3]@MoPI: must be a MoPI group 1-4"},
    {"Review=\"01/01/2030\"", "Review=\"31/13/2030\"",
     "Entity[3]@Review: is not a valid date dd/mm/yyyy"},
    {" Review=\"01/01/2030\"", "", "Entity[3]@Review: required"},
    {"Review=\"01/01/2030\"", "Review=\"01/01/2030\" Colour=\"RED\"",
     "Entity[3]: unknown attribute 'Colour'"},
    {"GID=\"C100000000000301\"", "GID=\"7F3A9C2E4B1D0A66\"",
     "Entity[3]@Kind: GID 7F3A9C2E4B1D0A66 is a Person in Entity[1]"},
    /* Caveat and Merge */
    {"Handling=\"C\" MoPI", "Handling=\"P\" MoPI", I8 "Caveat: only with Handling C"},
    {"Rev=\"12\" Op=\"Modify\"", "Rev=\"12\" Op=\"Merge\"",
     P1 "MergedFrom: Op Merge needs at least one MergedFrom"},
    {"<Surname>O'BRIEN</Surname>",
     "<MergedFrom GID=\"7F3A9C2E4B1D0B01\"/><Surname>O'BRIEN</Surname>",
     P1 "MergedFrom[1]: only with Op Merge"},
    {PERSON_HEAD("Modify"), PERSON_HEAD("Merge") "<MergedFrom GID=\"7F3A9C2E4B1D0A66\"/>",
     P1 "MergedFrom[1]@GID: a record cannot be merged into itself"},
    {PERSON_HEAD("Modify"), PERSON_HEAD("Merge") "<MergedFrom GID=\"7f3a\"/>",
     P1 "MergedFrom[1]@GID: must be exactly 16 upper-case hex digits"},
    {PERSON_HEAD("Modify"),
     PERSON_HEAD(
         "Merge") "<MergedFrom GID=\"7F3A9C2E4B1D0B01\"/><MergedFrom GID=\"7F3A9C2E4B1D0B01\"/>",
     P1 "MergedFrom[2]@GID: 7F3A9C2E4B1D0B01 is named twice"},
    {PERSON_HEAD("Modify"), PERSON_HEAD("Merge") "<MergedFrom/>", P1 "MergedFrom[1]@GID: required"},
    /* a merge is of two records of one person or object: the document says what the
     * merged-away GID is */
    {PERSON_HEAD("Modify"), PERSON_HEAD("Merge") "<MergedFrom GID=\"C100000000000301\"/>",
     P1 "MergedFrom[1]@GID: a Person merges only Person records; C100000000000301 is a Vehicle "
        "(Entity[3])"},
    {"Op=\"Add\" Modified=\"24/10/2026 22:05:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"3\" "
     "Review=\"24/10/2032\">",
     "Op=\"Merge\" Modified=\"24/10/2026 22:05:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"3\" "
     "Review=\"24/10/2032\"><MergedFrom GID=\"0A00000000000001\"/><MergedFrom "
     "GID=\"11E7000000000777\"/>",
     A2 "MergedFrom[2]@GID: an Address merges only Address records; 11E7000000000777 is an "
        "IntelReport (Entity[8])"},
    {PERSON_HEAD("Modify"),
     PERSON_HEAD("Merge") "<MergedFrom GID=\"7F3A9C2E4B1D0B01\">x</MergedFrom>",
     P1 "MergedFrom[1]: must be empty"},
    {"Op=\"Delete\" Modified=\"25/10/2026 01:10:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"3\" "
     "Review=\"25/10/2032\"/>",
     "Op=\"Delete\" Modified=\"25/10/2026 01:10:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"3\" "
     "Review=\"25/10/2032\"><Number>1</Number></Entity>",
     D9 "Number: Op Delete carries no children"},
    /* Person */
    {"<Surname>O'BRIEN</Surname>", "", P1 "Surname: required"},
    {"<Surname>O'BRIEN</Surname>", "<Surname/>", P1 "Surname: must not be empty"},
    /* white space only is as if the required element were not there */
    {"<Surname>O'BRIEN</Surname>", "<Surname> \n\t</Surname>", P1 "Surname: required"},
    {"<Alias><Surname>BRYAN</Surname>", "<Alias><Surname> </Surname>",
     P1 "Alias[1] Surname: required"},
    {"<Caveat>Not to be disclosed.</Caveat>", "<Caveat> </Caveat>",
     I8 "Caveat: required with Handling C"},
    {"<Reference>42/12345/26</Reference>", "<Reference>\n </Reference>", O6 "Reference: required"},
    {"<Given>SEAN</Given>", "<Given>A</Given><Given>B</Given><Given>C</Given><Given>D</Given>",
     P1 "Given[4]: at most 3 Given elements"},
    {"<BirthDate Precision=\"Day\">", "<BirthDate>",
     P1 "BirthDate@Precision: required (Day, Month or Year)"},
    {"<BirthDate Precision=\"Day\">", "<BirthDate Precision=\"Decade\">",
     P1 "BirthDate@Precision: is not Day, Month or Year"},
    {"<BirthDate Precision=\"Day\">", "<BirthDate Precision=\"Month\">",
     P1 "BirthDate: does not match Precision Month (00/mm/yyyy)"},
    {"<BirthDate Precision=\"Day\">14/07/1985", "<BirthDate Precision=\"Day\">00/07/1985",
     P1 "BirthDate: does not match Precision Day (a real date)"},
    {"<BirthDate Precision=\"Day\">14/07/1985", "<BirthDate Precision=\"Year\">00/07/1985",
     P1 "BirthDate: does not match Precision Year (00/00/yyyy)"},
    {"<BirthDate Precision=\"Day\">14/07/1985", "<BirthDate Precision=\"Day\">1985-07-14",
     P1 "BirthDate: is not a date dd/mm/yyyy"},
    {"<Gender>1</Gender>", "<Gender>3</Gender>", P1 "Gender: is not a valid gender (0, 1, 2 or 9)"},
    {"<Gender>1</Gender>", "<Gender>M</Gender>", P1 "Gender: is not a valid gender (0, 1, 2 or 9)"},
    {"<Gender>1</Gender>", "<Gender>1</Gender><Gender>1</Gender>",
     P1 "Gender: given more than once"},
    {"<EthnicityOD>1</EthnicityOD>", "<EthnicityOD>7</EthnicityOD>",
     P1 "EthnicityOD: is not a valid officer-defined ethnicity (1-6 or 9)"},
    {"<EthnicityOD>1</EthnicityOD>", "<EthnicityOD>IC1</EthnicityOD>",
     P1 "EthnicityOD: is not a valid officer-defined ethnicity (1-6 or 9)"},
    {"<EthnicitySD>W2</EthnicitySD>", "<EthnicitySD>W4</EthnicitySD>",
     P1 "EthnicitySD: is not a self-defined ethnicity code (16+1)"},
    {"<Nationality>IE</Nationality>", "<Nationality>XX</Nationality>",
     P1 "Nationality: is not an ISO 3166-1 alpha-2 country code"},
    {"<Nationality>IE</Nationality>", "<Nationality>IRL</Nationality>",
     P1 "Nationality: is not an ISO 3166-1 alpha-2 country code"},
    {"<Nationality>IE</Nationality>", "<Nationality>ie</Nationality>",
     P1 "Nationality: is not an ISO 3166-1 alpha-2 country code"},
    {"<PNCID>85/123456J</PNCID>", "<PNCID>85/123456K</PNCID>",
     P1 "PNCID: check letter does not match the number"},
    {"<PNCID>85/123456J</PNCID>", "<PNCID>1985/0123456J</PNCID>",
     P1 "PNCID: must be a PNC ID in short form*"},
    {"<PNCID>85/123456J</PNCID>", "<PNCID>85/0123456J</PNCID>",
     P1 "PNCID: short-form PNC serial must not have leading zeros"},
    {"<CRO>123456/99L</CRO>", "<CRO>123456/99M</CRO>",
     P1 "CRO: check letter does not match the number"},
    {"<CRO>123456/99L</CRO>", "<CRO>12345/99L</CRO>", P1 "CRO: must be a CRO number NNNNNN/YYC"},
    {"<Alias><Surname>BRYAN</Surname>", "<Alias>", P1 "Alias[1] Surname: required"},
    {"<Alias><Surname>BRYAN</Surname>", "<Alias><Title>X</Title><Surname>BRYAN</Surname>",
     P1 "Alias[1] Title: unknown element in an Alias"},
    {"<Alias><Surname>BRYAN</Surname><BirthDate Precision=\"Month\">00/07/1985",
     "<Alias><Surname>BRYAN</Surname><BirthDate Precision=\"Month\">00/13/1985",
     P1 "Alias[1] BirthDate: does not match Precision Month (00/mm/yyyy)"},
    {"<Warning>VI</Warning>", "<Warning>XX</Warning>",
     P1 "Warning[1]: is not a warning marker (table WM)"},
    {"<Warning>VI</Warning>", "<Shoe>9</Shoe>", P1 "Shoe: unknown element in a Person"},
    {"<Warning>VI</Warning>", "<Occupation><b>x</b></Occupation>",
     P1 "Occupation: must hold text, not elements"},
    {"<Warning>VI</Warning>", "<Alias>BRYAN</Alias>", P1 "Alias[2]: must hold elements, not text"},
    /* an Alias holding nothing lacks its Surname; it has no text */
    {"<Warning>VI</Warning>", "<Alias/>", P1 "Alias[2] Surname: required"},
    {"<Warning>VI</Warning>", "<Alias> </Alias>", P1 "Alias[2] Surname: required"},
    {"<Gender>1</Gender>", "<Gender>1</Gender>junk",
     "Entity[1] GID=7F3A9C2E4B1D0A66: text is not allowed between elements"},
    {"<Category>ELC</Category>", "<Category>ELC</Category><Line>x</Line>",
     PR4 "Line: unknown element in a Property"},
    /* Address */
    {"<Line/><Line>27 Bold Street</Line>",
     "<Line/><Line>27 Bold Street</Line><Line>a</Line><Line>b</Line><Line>c</Line>",
     A2 "Line[5]: at most 4 Line elements"},
    {"<Line>27 Bold Street</Line>", "<Line>27 Bold Street</Line><Line/>",
     A2 "Line[3]: a trailing address part that is not given must be left out, not written as an "
        "empty Line"},
    {"<Postcode>L1 4DS</Postcode>", "<Postcode>L1 4D</Postcode>",
     A2 "Postcode: must be a UK postcode"},
    {"<UPRN>100091234567</UPRN>", "<UPRN>0123</UPRN>",
     A2 "UPRN: must be 1-12 digits without leading zeros"},
    {"<UPRN>100091234567</UPRN>", "<UPRN>1000912345678</UPRN>",
     A2 "UPRN: must be 1-12 digits without leading zeros"},
    {"<Easting>334900</Easting>", "<Easting>334900.25</Easting>",
     A2 "Easting: must be metres as an integer or with one decimal place"},
    {"<Easting>334900</Easting>", "<Easting>-5</Easting>",
     A2 "Easting: must be metres as an integer or with one decimal place"},
    {"<Northing>390300</Northing>", "", A2 "Northing: required with Easting"},
    {"<Easting>334900</Easting>", "<Easting>9999999</Easting>",
     A2 "Easting/Northing: outside the British National Grid*"},
    /* Vehicle, Property, Telephone */
    {"<Colour>SIL</Colour>", "<Colour>PINK</Colour>", V3 "Colour: is not a valid colour"},
    {"<Colour>SIL</Colour>", "<Colour>SILVER</Colour>", V3 "Colour: is not a valid colour"},
    {"<Year>2012</Year>", "<Year>12</Year>", V3 "Year: must be a four-digit year"},
    {"<VRM>AB12CDE</VRM>", "<VRM>AB-12</VRM>", V3 "VRM: registration mark may*"},
    {"<Category>ELC</Category>", "<Category>XYZ</Category>",
     PR4 "Category: is not a valid property category"},
    {"<Category>ELC</Category>", "<Category>WPN-XX</Category>",
     PR4 "Category: is not a valid weapon category"},
    {"<Value>125000</Value>", "<Value>1250.00</Value>",
     PR4 "Value: must be a whole number of pence"},
    /* a weapon's Value is dropped, but checked first */
    {"<Category>ELC</Category><Value>125000</Value>",
     "<Category>WPN-KN</Category><Value>not-a-number</Value>",
     PR4 "Value: must be a whole number of pence"},
    {"<Type>M</Type>", "<Type>X</Type>", T5 "Type: is not a valid telephone type (M, L or U)"},
    /* Occurrence, Custody, IntelReport */
    {"<Reference>42/12345/26</Reference>", "", O6 "Reference: required"},
    {"<Type>Crime</Type>", "<Type>Crim</Type>",
     O6 "Type: is not a valid occurrence type (Crime or Incident)"},
    {"<Type>Crime</Type>", "<Type>Incident</Type>",
     O6 "Offence[1]: offences are for Type Crime, not Incident"},
    {"Code=\"28.1\"", "Code=\"028.1\"",
     O6 "Offence[1]@Code: is not a Home Office class.subclass (class 1-999, subclass 0-99, "
        "no padding)"},
    {"Code=\"28.1\"", "Code=\"28.01\"",
     O6 "Offence[1]@Code: is not a Home Office class.subclass (class 1-999, subclass 0-99, "
        "no padding)"},
    {"Code=\"28.1\"", "Code=\"28\"", O6 "Offence[1]@Code: is not a Home Office class.subclass"},
    {"Code=\"28.1\"", "Code=\"0.1\"", O6 "Offence[1]@Code: is not a Home Office class.subclass*"},
    {" Code=\"28.1\"", "", O6 "Offence[1]@Code: required (Home Office class.subclass, e.g. 28.1)"},
    {"<To>29/03/2026 00:45:00</To>", "<To>28/03/2026 22:45:00</To>", O6 "To: is before From"},
    {"<From>28/03/2026 23:30:00</From>", "<From>29/03/2026 01:15:00</From>",
     O6 "From: does not exist in UK time (clocks go forward)"},
    {"<Status>U</Status>", "<Status>X</Status>", O6 "Status: is not a valid status (O, U, C or F)"},
    {"<Outcome>RUI</Outcome>", "<Outcome>JAIL</Outcome>",
     C7 "Outcome: is not a valid custody outcome (CHG, CAU, RUI, BAIL or NFA)"},
    {"<Arrived>25/10/2026 01:30:00</Arrived>", "<Arrived>25/10/2026 1:30</Arrived>",
     C7 "Arrived: is not a local time dd/mm/yyyy HH:MM:SS"},
    {" Intel=\"B\"", "", I8 "Grading@Intel: required (3x5x2 grading)"},
    {"Source=\"2\"", "Source=\"4\"",
     I8 "Grading@Source: is not a valid source evaluation (1, 2 or 3)"},
    {"Intel=\"B\"", "Intel=\"F\"",
     I8 "Grading@Intel: is not a valid intelligence assessment (A-E)"},
    {"Intel=\"B\"", "Intel=\"B\" Score=\"9\"", I8 "Grading: unknown attribute 'Score'"},
    {"<Grading Source=\"2\" Intel=\"B\" Handling=\"C\"/>",
     "<Grading Source=\"2\" Intel=\"B\" Handling=\"C\">x</Grading>", I8 "Grading: must be empty"},
    {"<Grading Source=\"2\" Intel=\"B\" Handling=\"C\"/>",
     "<Grading Source=\"2\" Intel=\"B\" Handling=\"C\"><Text>x</Text></Grading>",
     I8 "Grading: must be empty"},
    /* Link */
    {"Role=\"HOME\"", "Role=\"HOMEX\"", "Link[1]@Role: unknown role"},
    {"From=\"7F3A9C2E4B1D0A66\" To=\"00A1B2C3D4E5F607\"", "From=\"7F3A\" To=\"00A1B2C3D4E5F607\"",
     "Link[1]@From: must be exactly 16 upper-case hex digits"},
    {" To=\"00A1B2C3D4E5F607\"", "", "Link[1]@To: required"},
    {"To=\"00A1B2C3D4E5F607\" Start", "To=\"C100000000000301\" Start",
     "Link[1]@To: a HOME link ends at an Address; C100000000000301 is a Vehicle (Entity[3])"},
    {"Role=\"HOME\"", "Role=\"LOCN\"",
     "Link[1]@From: a LOCN link starts at an Occurrence, Custody or IntelReport; "
     "7F3A9C2E4B1D0A66 is a Person (Entity[1])"},
    {"Start=\"01/09/2024\"", "Start=\"01/09/2024\" Op=\"Add\"",
     "Link[1]@Op: a Link's Op is Delete or absent"},
    {"Start=\"01/09/2024\"", "Start=\"31/02/2024\"",
     "Link[1]@Start: is not a valid date dd/mm/yyyy"},
    {"Start=\"01/09/2024\"", "Start=\"01/09/2024\" End=\"31/08/2024\"",
     "Link[1]@End: is before Start"},
    {"Start=\"01/09/2024\"/>", "Start=\"01/09/2024\"><Note>x</Note></Link>",
     "Link[1] Note: a Link carries no children"},
    {"Start=\"01/09/2024\"", "Start=\"01/09/2024\" Weight=\"1\"",
     "Link[1]: unknown attribute 'Weight'"},
    /* text where no text belongs: in a Link, a Delete, an Entity without elements */
    {"Start=\"01/09/2024\"/>", "Start=\"01/09/2024\">MORE</Link>",
     "Link[1]: text is not allowed (a Link carries no children)"},
    {"MoPI=\"3\" Review=\"25/10/2032\"/>", "MoPI=\"3\" Review=\"25/10/2032\">MORE</Entity>",
     "Entity[9] GID=7E1E000000000031: text is not allowed (Op Delete carries no children)"},
    {"<Category>ELC</Category><Value>125000</Value>", "GARBAGE",
     "Entity[4] GID=D100000000000777: text is not allowed (elements only)"},
    /* XML itself */
    {"<Surname>O'BRIEN</Surname>", "<Surname>O&apos;BRIEN&bogus;</Surname>",
     "NX5: not well-formed XML (line 4: *"},
    {"<Surname>O'BRIEN</Surname>", "<Surname>O'BRIEN</Surnam>",
     "NX5: not well-formed XML (line 4: *"},
    {"encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"",
     "encoding: 'ISO-8859-1' is not allowed (UTF-8 or windows-1252 only)"},
    {"encoding=\"UTF-8\"", "encoding=\"UTF-16\"",
     "encoding: 'UTF-16' is not allowed (UTF-8 or windows-1252 only)"},
    {"encoding=\"UTF-8\"", "encoding=\"cp1252\"",
     "encoding: 'cp1252' is not allowed (UTF-8 or windows-1252 only)"},
    {"encoding=\"UTF-8\"", "encoding=\"US-ASCII\"",
     "encoding: 'US-ASCII' is not allowed (UTF-8 or windows-1252 only)"},
    {"<Surname>O'BRIEN</Surname>", "<Surname>O'BRI\xc3\x28N</Surname>",
     "NX5: not well-formed XML (line 4: *"},
    {"<NX5Exchange ", "<!DOCTYPE NX5Exchange>\n<NX5Exchange ",
     "NX5: DTDs and entity declarations are not allowed"},
    {"version=\"1.0\"", "version=\"1.1\"", "NX5: XML version '1.1' is not allowed (XML 1.0 only)"},
};

START_TEST(test_invalid)
{
    const s_bad *b = &s_bads[_i];
    int n;
    char *bad = s_replace_all(s_base, b->find, b->replace, &n);
    ck_assert_msg(n >= 1, "case %d: '%s' not in the base document", _i, b->find);
    pg_changeset *cs = pg_changeset_new();
    /* Something already in the changeset stays; nothing of the bad document is added. */
    pg_changeset *good = s_decode_ok(s_base, strlen(s_base));
    char err[PG_ERRSTR_SIZE];
    ck_assert_int_eq(s_decode(s_base, strlen(s_base), cs, err), 0);
    size_t before = cs->count;
    int rc = s_decode(bad, strlen(bad), cs, err);
    ck_assert_msg(rc == PG_EINVALID, "case %d: rc %d (%s)", _i, rc, err);
    ck_assert_uint_eq(cs->count, before);
    size_t rl = strlen(b->reason);
    if (b->reason[rl - 1] == '*')
        ck_assert_msg(strncmp(err, b->reason, rl - 1) == 0, "case %d: got \"%s\"", _i, err);
    else
        ck_assert_msg(strcmp(err, b->reason) == 0, "case %d: got \"%s\"\n   want \"%s\"", _i, err,
                      b->reason);
    free(bad);
    pg_changeset_destroy(&cs);
    pg_changeset_destroy(&good);
}
END_TEST

static void s_expect_invalid(const char *doc, size_t len, int code, const char *reason)
{
    pg_changeset *cs = pg_changeset_new();
    char err[PG_ERRSTR_SIZE];
    int rc = s_decode(doc, len, cs, err);
    ck_assert_msg(rc == code, "rc %d (%s)", rc, err);
    ck_assert_msg(strstr(err, reason) != NULL, "got \"%s\", want \"%s\"", err, reason);
    ck_assert_uint_eq(cs->count, 0);
    pg_changeset_destroy(&cs);
}

START_TEST(test_caveat_length)
{
    char caveat[600];
    int n;
    for (int ok = 0; ok < 2; ok++) {
        /* 500 characters are fine (and counted as characters: é is one), 501 not. */
        strcpy(caveat, "<Caveat>\xc3\xa9");
        memset(caveat + 10, 'x', ok ? 499 : 500);
        strcpy(caveat + 10 + (ok ? 499 : 500), "</Caveat>");
        char *doc = s_replace_all(s_base, "<Caveat>Not to be disclosed.</Caveat>", caveat, &n);
        ck_assert_int_eq(n, 1);
        if (ok) {
            pg_changeset *cs = s_decode_ok(doc, strlen(doc));
            ck_assert_uint_eq(strlen(s_ent(cs, 7)->marking->caveat), 501); /* bytes */
            pg_changeset_destroy(&cs);
        } else {
            s_expect_invalid(doc, strlen(doc), PG_EINVALID,
                             I8 "Caveat: 501 characters; the canonical model allows at most 500 "
                                "(NX5 sets no limit)");
        }
        free(doc);
    }
}
END_TEST

START_TEST(test_encodings)
{
    /* windows-1252: 0xC9 is É, 0x80 the euro sign; declared in any case. */
    int n;
    char *w = s_replace_all(s_base, "encoding=\"UTF-8\"", "encoding=\"Windows-1252\"", &n);
    char *w2 = s_replace_all(w, "<Surname>O'BRIEN</Surname>", "<Surname>\xc9\x80</Surname>", &n);
    pg_changeset *cs = s_decode_ok(w2, strlen(w2));
    ck_assert_str_eq(s_ent(cs, 0)->person->name->surname, "\xc3\x89\xe2\x82\xac");
    pg_changeset_destroy(&cs);
    /* 0x81 has no character in windows-1252. */
    char *w3 = s_replace_all(w, "<Surname>O'BRIEN</Surname>", "<Surname>\x81</Surname>", &n);
    s_expect_invalid(w3, strlen(w3), PG_EINVALID, "NX5: not well-formed XML");
    /* What libxml2 quotes of the bytes after it ("bytes 0x81 0x54 ...") is record
     * content: left out of the reason, in whatever case libxml2 writes it. */
    char *w4 =
        s_replace_all(w, "<Surname>O'BRIEN</Surname>", "<Surname>SMI\x81THXYZ</Surname>", &n);
    s_expect_invalid(w4, strlen(w4), PG_EINVALID,
                     "NX5: not well-formed XML (input conversion failed due to input error)");
    pg_changeset *none = pg_changeset_new();
    char err[PG_ERRSTR_SIZE];
    ck_assert_int_eq(s_decode(w4, strlen(w4), none, err), PG_EINVALID);
    s_expect_lacks(err, "0x");
    /* Nor what it quotes of a comment ("Comment not terminated\n<!-- ...", "Double
     * hyphen within comment: <!-- ..."), nor a declared encoding that is no name. */
    static const struct {
        const char *find, *rep, *reason;
    } quoted[] = {
        {"<Surname>O'BRIEN</Surname>", "<!-- Surname>O'BRIEN SEAN 85/123456J</Surname>",
         ": Comment not terminated)"},
        {"<Surname>O'BRIEN</Surname>", "<!-- O'BRIEN -- SEAN --><Surname>X</Surname>",
         ": Double hyphen within comment)"},
        {"encoding=\"UTF-8\"", "encoding=\"O'BRIEN\nSEAN\"",
         "encoding: not an encoding name (UTF-8 or windows-1252 only)"},
        /* libxml2's message whole, not cut at its own quote of '<' */
        {"<Entity ", "<Entity X=\"O'BRIEN<\" ", "' not allowed in attributes values)"},
    };
    for (size_t k = 0; k < sizeof quoted / sizeof quoted[0]; k++) {
        char *q = s_replace_all(s_base, quoted[k].find, quoted[k].rep, &n);
        ck_assert_int_eq(s_decode(q, strlen(q), none, err), PG_EINVALID);
        ck_assert_msg(strstr(err, quoted[k].reason), "%s", err);
        s_expect_lacks(err, "BRIEN");
        free(q);
    }
    pg_changeset_destroy(&none);
    /* windows-1252 "\xc9A" (ÉA) is not UTF-8. */
    char *u = s_replace_all(s_base, "<Surname>O'BRIEN</Surname>",
                            "<Surname>\xc9"
                            "A</Surname>",
                            &n);
    s_expect_invalid(u, strlen(u), PG_EINVALID,
                     "NX5: not well-formed XML (line 4: Input is not proper UTF-8, indicate "
                     "encoding !)");
    /* No declaration: UTF-8; a UTF-8 byte order mark is fine. */
    const char *body = strchr(s_base, '\n') + 1;
    cs = s_decode_ok(body, strlen(body));
    ck_assert_uint_eq(cs->count, 11);
    pg_changeset_destroy(&cs);
    char *bom = malloc(strlen(s_base) + 64);
    memcpy(bom, "\xef\xbb\xbf", 3);
    strcpy(bom + 3, s_base);
    cs = s_decode_ok(bom, strlen(bom));
    pg_changeset_destroy(&cs);
    /* ...but not with a windows-1252 declaration. */
    memcpy(bom + 3, w, strlen(w) + 1);
    s_expect_invalid(bom, strlen(bom), PG_EINVALID,
                     "encoding: declared windows-1252 but starts with a UTF-8 byte order mark");
    /* UTF-16, with a byte order mark or without. */
    static const char utf16[] = "\xff\xfe<\0?\0x\0m\0l\0";
    s_expect_invalid(utf16, sizeof utf16 - 1, PG_EINVALID,
                     "encoding: UTF-16/UTF-32 documents are not NX5");
    static const char utf16be[] = "\0<\0?\0x\0m\0l";
    s_expect_invalid(utf16be, sizeof utf16be - 1, PG_EINVALID, "encoding: UTF-16/UTF-32");
    s_expect_invalid("", 0, PG_EINVALID, "NX5: empty document");
    s_expect_invalid("<?xml version=\"1.0\"?>", 21, PG_EINVALID, "NX5: ");
    free(w), free(w2), free(w3), free(w4), free(u), free(bom);
}
END_TEST

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(test_dtd_refused)
{
    static const char *const docs[] = {
        /* billion laughs */
        "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
        " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
        " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
        " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
        " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n]>\n"
        "<NX5Exchange xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"MER\" Batch=\"&lol9;\" "
        "Created=\"25/10/2026 01:40:00\"/>\n",
        /* external entity (XXE) */
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "
        "\"file:///etc/passwd\">]>\n<NX5Exchange xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" "
        "Force=\"MER\" Batch=\"&xxe;\" Created=\"25/10/2026 01:40:00\"/>\n",
        /* external DTD over the network */
        "<!DOCTYPE NX5Exchange SYSTEM \"http://192.0.2.1/nx5.dtd\"><NX5Exchange/>",
        /* parameter entities, after a comment and a processing instruction */
        "<?xml version=\"1.0\"?><!-- c --><?pi x?>\n<!DOCTYPE x [<!ENTITY % p SYSTEM "
        "\"http://192.0.2.1/p\"> %p;]><NX5Exchange/>",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        double t0 = s_now();
        s_expect_invalid(docs[i], strlen(docs[i]), PG_EINVALID,
                         "NX5: DTDs and entity declarations are not allowed");
        ck_assert_msg(s_now() - t0 < 0.05, "case %zu took %.3f s", i, s_now() - t0);
    }
    /* A DOCTYPE named inside a comment declares nothing. */
    int n;
    char *doc = s_replace_all(s_base, "<NX5Exchange ", "<!-- <!DOCTYPE x> -->\n<NX5Exchange ", &n);
    pg_changeset *cs = s_decode_ok(doc, strlen(doc));
    pg_changeset_destroy(&cs);
    free(doc);
}
END_TEST

START_TEST(test_foreign_namespaces_ignored)
{
    /* Elements of other namespaces, their subtrees (even ones holding NX5-looking or
     * NX5-namespace elements) and their attributes are not NX5's: the document means
     * exactly what the base document means. */
    const char *const reps[][2] = {
        {"<NX5Exchange xmlns=\"urn:nx:exchange:5\"",
         "<NX5Exchange xmlns=\"urn:nx:exchange:5\" xmlns:x=\"urn:example:extra\" x:build=\"7\""},
        {"<Surname>O'BRIEN</Surname>",
         "<x:Audit x:by=\"PC 123\"><Surname>IGNORED</Surname><nx:Given "
         "xmlns:nx=\"urn:nx:exchange:5\">NO</nx:Given>text</x:Audit><Surname>O'BRIEN</Surname>"},
        {"<Given>SEAN</Given>", "<Given x:src=\"pnc\">SE<x:i>ignored</x:i>AN</Given>"},
        {" <Link Role=\"HOME\"", " <x:Link Role=\"BOGUS\"/>\n <Link Role=\"HOME\""},
        {"<Line/>", "<Line><x:note>not a part</x:note></Line>"},
        {"</NX5Exchange>", "<Entity xmlns=\"urn:other\" Kind=\"Nonsense\"/></NX5Exchange>"},
    };
    char *doc = strdup(s_base);
    for (size_t i = 0; i < sizeof reps / sizeof reps[0]; i++) {
        int n;
        char *t = s_replace_all(doc, reps[i][0], reps[i][1], &n);
        ck_assert_int_eq(n, 1);
        free(doc);
        doc = t;
    }
    pg_changeset *a = s_decode_ok(s_base, strlen(s_base));
    pg_changeset *b = s_decode_ok(doc, strlen(doc));
    s_expect_same_changes(a, b);
    /* The NX5 namespace under a prefix is NX5. */
    int n;
    char *pfx = s_replace_all(
        s_base, "<NX5Exchange xmlns=\"urn:nx:exchange:5\"",
        "<nx:NX5Exchange xmlns:nx=\"urn:nx:exchange:5\" xmlns=\"urn:nx:exchange:5\"", &n);
    char *pfx2 = s_replace_all(pfx, "</NX5Exchange>", "</nx:NX5Exchange>", &n);
    pg_changeset *c = s_decode_ok(pfx2, strlen(pfx2));
    s_expect_same_changes(a, c);
    free(doc), free(pfx), free(pfx2);
    pg_changeset_destroy(&a);
    pg_changeset_destroy(&b);
    pg_changeset_destroy(&c);
}
END_TEST

START_TEST(test_too_big)
{
    size_t big = (8u << 20) + 1;
    char *doc = malloc(big);
    memset(doc, ' ', big);
    memcpy(doc, s_base, strlen(s_base));
    s_expect_invalid(doc, big, PG_ETOOBIG, "NX5: document is 8388609 bytes, more than 8 MiB");
    /* Exactly 8 MiB (trailing white space after the root) is fine. */
    pg_changeset *cs = s_decode_ok(doc, big - 1);
    ck_assert_uint_eq(cs->count, 11);
    pg_changeset_destroy(&cs);
    free(doc);
}
END_TEST

/* Work grows with the document, not its square: 7 MiB of one entity's children, or of
 * one survivor's MergedFrom, decode in well under the limit a bus frame allows. */
START_TEST(test_large_documents)
{
    static const char head[] =
        "<NX5Exchange xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"MER\" Batch=\"b\" "
        "Created=\"01/06/2026 12:00:00\"><Entity Kind=\"Person\" GID=\"4444444444444444\" "
        "Rev=\"1\" Op=\"Merge\" Modified=\"01/06/2026 12:00:00\" GPMS=\"O\" Handling=\"P\" "
        "MoPI=\"3\" Review=\"01/06/2032\"><Surname>X</Surname>";
    static const char tail[] = "</Entity></NX5Exchange>";
    size_t cap = 8u << 20;
    char *doc = malloc(cap);
    for (int variant = 0; variant < 2; variant++) {
        size_t len = strlen(head), n = 0;
        memcpy(doc, head, len);
        while (len + 64 < cap - sizeof tail) {
            if (variant == 0 && n == 0)
                len += (size_t)sprintf(doc + len, "<MergedFrom GID=\"0000000000000001\"/>");
            else if (variant == 0)
                len += (size_t)sprintf(doc + len, "<Warning>VI</Warning>");
            else
                len += (size_t)sprintf(doc + len, "<MergedFrom GID=\"%016zX\"/>", n + 1);
            n++;
        }
        memcpy(doc + len, tail, sizeof tail);
        len += sizeof tail - 1;
        double t0 = s_now();
        pg_changeset *cs = s_decode_ok(doc, len);
        double took = s_now() - t0;
        ck_assert_msg(took < 10.0, "variant %d: %zu children took %.1f s", variant, n, took);
        if (variant == 0)
            ck_assert_uint_gt(s_ent(cs, 0)->person->n_warning_markers, 300000);
        else
            ck_assert_uint_gt(s_ent(cs, 0)->n_merged_from, 150000);
        pg_changeset_destroy(&cs);
    }
    free(doc);
}
END_TEST

START_TEST(test_force_and_context)
{
    pg_changeset *cs = pg_changeset_new();
    char err[PG_ERRSTR_SIZE];
    pg_adapter_ctx ctx = {.force = "ESX"};
    ck_assert_int_eq(
        pg_adapter_niche.decode(&ctx, (const uint8_t *)s_base, strlen(s_base), cs, err, sizeof err),
        PG_EINVALID);
    ck_assert_str_eq(err, "NX5Exchange@Force: names another force than this gateway's, ESX");
    ctx.force = "MER";
    ck_assert_int_eq(
        pg_adapter_niche.decode(&ctx, (const uint8_t *)s_base, strlen(s_base), cs, err, sizeof err),
        0);
    ck_assert_uint_eq(cs->count, 11);
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_decode_details)
{
    int n;
    /* A Property Delete does not say item or weapon: another element with its GID
     * does; the link kinds follow. Links to GIDs not in the document keep
     * UNSPECIFIED and no marking. */
    char *doc =
        s_replace_all(s_base, " <Link Role=\"HOME\"",
                      " <Entity Kind=\"Property\" GID=\"1C0FFEE000000001\" Rev=\"2\" Op=\"Delete\" "
                      "Modified=\"25/10/2026 00:40:00\" GPMS=\"O\" Handling=\"C\" MoPI=\"2\" "
                      "Review=\"25/10/2036\"/>\n"
                      " <Entity Kind=\"Property\" GID=\"1C0FFEE000000001\" Rev=\"1\" Op=\"Add\" "
                      "Modified=\"25/10/2026 00:40:00\" GPMS=\"O\" Handling=\"P\" MoPI=\"2\" "
                      "Review=\"25/10/2036\"><Category>WPN-FA</Category><Value>5</Value></Entity>\n"
                      " <Link Role=\"USED\" From=\"F100000000004711\" To=\"1C0FFEE000000001\"/>\n"
                      " <Link Role=\"OWN\" From=\"AAAAAAAAAAAAAAAA\" To=\"BBBBBBBBBBBBBBBB\"/>\n"
                      " <Link Role=\"HOME\"",
                      &n);
    pg_changeset *cs = s_decode_ok(doc, strlen(doc));
    ck_assert_uint_eq(cs->count, 15);
    const pg_entity_update *del = s_ent(cs, 9);
    ck_assert_int_eq(del->operation, OP(DELETE));
    ck_assert_int_eq(del->kind, EK(WEAPON));
    ck_assert_int_eq(del->marking->handling, HD(C)); /* a Delete needs no Caveat */
    const pg_entity_update *w = s_ent(cs, 10);
    ck_assert_int_eq(w->kind, EK(WEAPON));
    ck_assert_int_eq(w->weapon->category,
                     POLEGATE__POLE__V1__WEAPON_CATEGORY__WEAPON_CATEGORY_FIREARM);
    s_expect_link(cs, 11, "MER", "F100000000004711", EK(OCCURRENCE), ROLE(USED), "1C0FFEE000000001",
                  EK(WEAPON), OP(UPSERT), s_ent(cs, 5));
    s_expect_link(cs, 12, "MER", "AAAAAAAAAAAAAAAA", EK(UNSPECIFIED), ROLE(OWNER),
                  "BBBBBBBBBBBBBBBB", EK(UNSPECIFIED), OP(UPSERT), NULL);
    ck_assert_ptr_null(s_lnk(cs, 12)->marking);
    ck_assert_ptr_null(s_lnk(cs, 12)->modified_at);
    /* A link's reason names which kind of Property its end is. */
    char *stln = s_replace_all(doc, "Role=\"USED\"", "Role=\"STLN\"", &n);
    s_expect_invalid(stln, strlen(stln), PG_EINVALID,
                     "Link[1]@To: a STLN link ends at a Property item; 1C0FFEE000000001 is a "
                     "Property weapon (Entity[11])");
    free(stln);
    char *knife = s_replace_all(s_base, "<Category>ELC</Category><Value>125000</Value>",
                                "<Category>WPN-KN</Category>", &n);
    stln = s_replace_all(knife, "Role=\"HOME\" From=\"7F3A9C2E4B1D0A66\" To=\"00A1B2C3D4E5F607\"",
                         "Role=\"STLN\" From=\"F100000000004711\" To=\"D100000000000777\"", &n);
    ck_assert_int_eq(n, 1);
    s_expect_invalid(stln, strlen(stln), PG_EINVALID,
                     "Link[1]@To: a STLN link ends at a Property item; D100000000000777 is a "
                     "Property weapon (Entity[4])");
    free(stln), free(knife);
    /* Telephone numbers to E.164; the PNC century rule uses the year of Modified. */
    const pg_entity_update *t = s_ent(cs, 4);
    ck_assert_str_eq(t->telephone->number, "+447700900123");
    pg_changeset_destroy(&cs);
    free(doc);

    char *p = s_replace_all(s_base, "<PNCID>85/123456J</PNCID>", "<PNCID>26/1W</PNCID>", &n);
    cs = s_decode_ok(p, strlen(p));
    ck_assert_str_eq(s_ent(cs, 0)->person->pnc_id, "2026/0000001W"); /* 26 is not after 26 */
    pg_changeset_destroy(&cs);
    char *p2 = s_replace_all(p, "Modified=\"25/10/2026 00:30:00\"",
                             "Modified=\"25/10/2025 00:30:00\"", &n);
    cs = s_decode_ok(p2, strlen(p2));
    ck_assert_str_eq(s_ent(cs, 0)->person->pnc_id, "1926/0000001W"); /* 26 is after 25 */
    pg_changeset_destroy(&cs);
    free(p), free(p2);

    /* Escaped markup and numeric references in text and attributes. */
    char *e =
        s_replace_all(s_base, "<Reference>INT/1</Reference>",
                      "<Reference>A &amp; B &lt;&#x42;&gt; &#322;<![CDATA[<c>]]></Reference>", &n);
    cs = s_decode_ok(e, strlen(e));
    ck_assert_str_eq(s_ent(cs, 7)->intelligence->reference, "A & B <B> \xc5\x82<c>");
    pg_changeset_destroy(&cs);
    free(e);

    /* A record merged into one of its own Kind that the document also states (here
     * deleted) is fine. */
    char *m = s_replace_all(s_base, "Rev=\"7\" Op=\"Add\" Modified=\"29/03/2026 07:15:10\"",
                            "Rev=\"7\" Op=\"Merge\" Modified=\"29/03/2026 07:15:10\"", &n);
    ck_assert_int_eq(n, 1);
    char *m2 =
        s_replace_all(m, "<Number>07700 900123</Number>",
                      "<MergedFrom GID=\"7E1E000000000031\"/><Number>07700 900123</Number>", &n);
    ck_assert_int_eq(n, 1);
    cs = s_decode_ok(m2, strlen(m2));
    ck_assert_uint_eq(s_ent(cs, 4)->n_merged_from, 1);
    ck_assert_int_eq(s_ent(cs, 4)->merged_from[0]->kind, EK(TELEPHONE));
    pg_changeset_destroy(&cs);
    free(m), free(m2);
}
END_TEST

/* Many Entity elements of one GID (a GID may repeat any number of times in a
 * document): each link end takes its kind from the element that says it, and its
 * marking from the From element last stated before it, however many repeat. */
START_TEST(test_repeated_gids)
{
#define RG_HEAD(kind, gid, op, gpms)                                                               \
    "<Entity Kind=\"" kind "\" GID=\"" gid "\" Rev=\"1\" Op=\"" op                                 \
    "\" Modified=\"29/03/2026 07:12:00\" GPMS=\"" gpms "\" Handling=\"P\" MoPI=\"2\" "             \
    "Review=\"29/03/2036\""
#define RG_P "D100000000000001" /* Property Deletes, then one Add that says weapon */
#define RG_Q "D100000000000002" /* Property Deletes only: an item */
#define RG_A "B100000000000001" /* a Person, stated twice with two markings */
    pg_buf doc = PG_BUF_INIT;
    pg_buf_puts(&doc, "<NX5Exchange xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"ESX\" "
                      "Batch=\"b\" Created=\"29/03/2026 07:30:00\">\n");
    /* 1 link, 200 P Deletes, 1 Person (O), 1 link, 200 P Deletes, 1 weapon Add,
     * 200 P Deletes, 1 Person (S), 1 link to Q, 300 Q Deletes, 1 link */
    pg_buf_puts(&doc, "<Link Role=\"OWN\" From=\"" RG_A "\" To=\"" RG_P "\"/>\n");
    for (int i = 0; i < 200; i++)
        pg_buf_puts(&doc, RG_HEAD("Property", RG_P, "Delete", "O") "/>\n");
    pg_buf_puts(&doc, RG_HEAD("Person", RG_A, "Add", "O") "><Surname>A</Surname></Entity>\n");
    pg_buf_puts(&doc, "<Link Role=\"OWN\" From=\"" RG_A "\" To=\"" RG_P "\"/>\n");
    for (int i = 0; i < 200; i++)
        pg_buf_puts(&doc, RG_HEAD("Property", RG_P, "Delete", "O") "/>\n");
    pg_buf_puts(&doc,
                RG_HEAD("Property", RG_P, "Add", "O") "><Category>WPN-FA</Category></Entity>\n");
    for (int i = 0; i < 200; i++)
        pg_buf_puts(&doc, RG_HEAD("Property", RG_P, "Delete", "O") "/>\n");
    pg_buf_puts(&doc, RG_HEAD("Person", RG_A, "Modify", "S") "><Surname>A</Surname></Entity>\n");
    pg_buf_puts(&doc, "<Link Role=\"OWN\" From=\"" RG_A "\" To=\"" RG_Q "\"/>\n");
    for (int i = 0; i < 300; i++)
        pg_buf_puts(&doc, RG_HEAD("Property", RG_Q, "Delete", "O") "/>\n");
    pg_buf_puts(&doc, "<Link Role=\"OWN\" From=\"" RG_A "\" To=\"" RG_P "\"/>\n");
    pg_buf_puts(&doc, "</NX5Exchange>\n");
    const char *text = (const char *)doc.data;
    pg_changeset *cs = s_decode_ok(text, doc.len);
    ck_assert_uint_eq(cs->count, 1 + 200 + 1 + 1 + 200 + 1 + 200 + 1 + 1 + 300 + 1);
    const pg_entity_update *person_o = s_ent(cs, 201), *person_s = s_ent(cs, 604);
    ck_assert_int_eq(person_o->marking->classification, CL(OFFICIAL));
    ck_assert_int_eq(person_s->marking->classification, CL(SECRET));
    for (size_t i = 0; i < cs->count; i++) {
        if (cs->changes[i].type != PG_CHANGE_ENTITY)
            continue;
        const pg_entity_update *eu = cs->changes[i].entity;
        const char *gid = eu->origin->native_id;
        int want = strcmp(gid, RG_P) == 0   ? EK(WEAPON)
                   : strcmp(gid, RG_Q) == 0 ? EK(ITEM)
                                            : EK(PERSON);
        ck_assert_msg((int)eu->kind == want, "change %zu (%s): kind %d", i, gid, (int)eu->kind);
    }
    /* before any Person: the first stated later; then the last stated before */
    s_expect_link(cs, 0, "ESX", RG_A, EK(PERSON), ROLE(OWNER), RG_P, EK(WEAPON), OP(UPSERT),
                  person_o);
    s_expect_link(cs, 202, "ESX", RG_A, EK(PERSON), ROLE(OWNER), RG_P, EK(WEAPON), OP(UPSERT),
                  person_o);
    s_expect_link(cs, 605, "ESX", RG_A, EK(PERSON), ROLE(OWNER), RG_Q, EK(ITEM), OP(UPSERT),
                  person_s);
    s_expect_link(cs, 906, "ESX", RG_A, EK(PERSON), ROLE(OWNER), RG_P, EK(WEAPON), OP(UPSERT),
                  person_s);
    pg_changeset_destroy(&cs);
    /* The reasons cite the element that says the kind: the weapon's Add (Entity[402]);
     * for Q, which only Deletes name, the first of them (Entity[604]). */
    int n;
    char *bad = s_replace_all(text, "<Link Role=\"OWN\" From=\"" RG_A "\" To=\"" RG_P "\"/>\n</",
                              "<Link Role=\"HOME\" From=\"" RG_A "\" To=\"" RG_P "\"/>\n</", &n);
    ck_assert_int_eq(n, 1);
    s_expect_invalid(bad, strlen(bad), PG_EINVALID,
                     "Link[4]@To: a HOME link ends at an Address; " RG_P
                     " is a Property weapon (Entity[402])");
    free(bad);
    bad = s_replace_all(text, "<Link Role=\"OWN\" From=\"" RG_A "\" To=\"" RG_Q "\"/>",
                        "<Link Role=\"HOME\" From=\"" RG_A "\" To=\"" RG_Q "\"/>", &n);
    ck_assert_int_eq(n, 1);
    s_expect_invalid(bad, strlen(bad), PG_EINVALID,
                     "Link[3]@To: a HOME link ends at an Address; " RG_Q
                     " is a Property (Entity[604])");
    free(bad);
    pg_buf_free(&doc);
#undef RG_HEAD
#undef RG_P
#undef RG_Q
#undef RG_A
}
END_TEST

/* Text in an element that holds none (the root, an Entity, a Link) is refused, as
 * between elements; white space there is layout. */
START_TEST(test_text_where_none)
{
    static const char root[] =
        "<NX5Exchange xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"MER\" Batch=\"b\" "
        "Created=\"29/03/2026 07:30:00\">GARBAGE</NX5Exchange>";
    s_expect_invalid(root, strlen(root), PG_EINVALID,
                     "NX5Exchange: text is not allowed (Entity and Link elements only)");
    /* white space only: a document of no changes, which NX5 does not have */
    int nk;
    char *none = s_replace_all(root, "GARBAGE", "\n ", &nk);
    s_expect_invalid(none, strlen(none), PG_EINVALID,
                     "NX5Exchange: holds no changes (one or more Entity or Link elements)");
    free(none);
    static const struct {
        const char *find, *replace;
    } blank[] = {
        {"Start=\"01/09/2024\"/>", "Start=\"01/09/2024\"> \n\t</Link>"},
        {"MoPI=\"3\" Review=\"25/10/2032\"/>", "MoPI=\"3\" Review=\"25/10/2032\">\r\n </Entity>"},
        {"<Category>ELC</Category><Value>125000</Value>", " "},
    };
    for (size_t k = 0; k < sizeof blank / sizeof blank[0]; k++) {
        int n;
        char *doc = s_replace_all(s_base, blank[k].find, blank[k].replace, &n);
        ck_assert_int_eq(n, 1);
        pg_changeset *cs = s_decode_ok(doc, strlen(doc));
        ck_assert_uint_eq(cs->count, 11);
        pg_changeset_destroy(&cs);
        free(doc);
    }
}
END_TEST

/* ------------------------------------------------------------ encode */

#define REPEATED                                                                                   \
    "is in the hour repeated when UK clocks go back; NX5 reads that local time as the first "      \
    "occurrence, so it cannot be written"

static char *s_encode_rc(const pg_changeset *cs, pg_idmap *idmap, int expect_rc, char *err)
{
    pg_adapter_ctx ctx = {
        .idmap = idmap, .now_ms = s_utc(2026, 10, 25, 0, 40, 0) * 1000, .batch = "B1"};
    pg_buf out = PG_BUF_INIT;
    pg_buf_puts(&out, "kept");
    err[0] = 0;
    int rc = pg_adapter_niche.encode(&ctx, cs, &out, err, PG_ERRSTR_SIZE);
    ck_assert_msg(rc == expect_rc, "rc %d (%s)", rc, err);
    ck_assert(strncmp((char *)out.data, "kept", 4) == 0);
    if (rc) {
        ck_assert_uint_eq(out.len, 4); /* nothing half-written */
        pg_buf_free(&out);
        return NULL;
    }
    char *s = strdup((char *)out.data + 4);
    pg_buf_free(&out);
    return s;
}

static void s_expect_has(const char *text, const char *want)
{
    ck_assert_msg(strstr(text, want) != NULL, "\"%s\" not in:\n%s", want, text);
}

static void s_expect_lacks(const char *text, const char *unwanted)
{
    ck_assert_msg(strstr(text, unwanted) == NULL, "\"%s\" in:\n%s", unwanted, text);
}

START_TEST(test_encode_names)
{
    pg_changeset *cs = s_decode_ok(s_base, strlen(s_base));
    Polegate__Pole__V1__Person *p = cs->changes[0].entity->person;
    static char *forenames[] = {"Se\xc3\xa1n", "Anna", "Maria", "Zo\xc3\xab",
                                "Stra\xc3\x9f"
                                "e"};
    p->name->surname = "\xc5\x82ukaszewska";
    p->name->forenames = forenames;
    p->name->n_forenames = 5;
    p->aliases[0]->name->surname = "o'brien-garc\xc3\xad"
                                   "a";
    char err[PG_ERRSTR_SIZE];
    char *text = s_encode_rc(cs, NULL, 0, err);
    s_expect_has(text, "<Surname>\xc5\x81UKASZEWSKA</Surname>\n    <Given>SE\xc3\x81N</Given>\n"
                       "    <Given>ANNA</Given>\n    <Given>MARIA ZO\xc3\x8b STRASSE</Given>\n");
    s_expect_has(text, "<Alias><Surname>O'BRIEN-GARC\xc3\x8d"
                       "A</Surname>");
    free(text);
    /* A seven-digit PNC serial: the short form is 11 characters, check letter kept. */
    p->pnc_id = "1985/3447876J";
    text = s_encode_rc(cs, NULL, 0, err);
    s_expect_has(text, "<PNCID>85/3447876J</PNCID>");
    pg_changeset *back = s_decode_ok(text, strlen(text));
    ck_assert_uint_eq(back->changes[0].entity->person->name->n_forenames, 3);
    free(text);
    pg_changeset_destroy(&cs);
    pg_changeset_destroy(&back);
}
END_TEST

START_TEST(test_encode_address)
{
    pg_changeset *cs = s_decode_ok(s_base, strlen(s_base));
    Polegate__Pole__V1__Location *l = cs->changes[1].entity->location;
    char err[PG_ERRSTR_SIZE];
    /* The canonical grid as it is: whole metres without a decimal. */
    char *text = s_encode_rc(cs, NULL, 0, err);
    s_expect_has(text, "    <Line/>\n    <Line>27 Bold Street</Line>\n    <Postcode>");
    s_expect_has(text, "<Easting>334900</Easting>\n    <Northing>390300</Northing>");
    free(text);
    /* Only the town: empty Lines before it. Only premises: one Line. */
    l->street = "";
    l->town = "Liverpool";
    text = s_encode_rc(cs, NULL, 0, err);
    s_expect_has(text, "    <Line/>\n    <Line/>\n    <Line/>\n    <Line>Liverpool</Line>\n");
    free(text);
    l->town = "";
    l->premises = "Flat 2";
    text = s_encode_rc(cs, NULL, 0, err);
    s_expect_has(text, "\">\n    <Line>Flat 2</Line>\n    <Postcode>");
    free(text);
    /* No grid: converted from WGS 84, one decimal. */
    l->grid = NULL;
    l->geo->lat = 51.8891;
    l->geo->lon = 0.9042;
    text = s_encode_rc(cs, NULL, 0, err);
    s_expect_has(text, "<Easting>599949.6</Easting>\n    <Northing>225157.6</Northing>");
    free(text);
    /* Off the grid (Paris): no position at all, rather than a wrong one. */
    l->geo->lat = 48.8566;
    l->geo->lon = 2.3522;
    text = s_encode_rc(cs, NULL, 0, err);
    s_expect_lacks(text, "<Easting>");
    s_expect_lacks(text, "<Northing>");
    free(text);
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_encode_lossy)
{
    pg_changeset *cs = s_decode_ok(s_base, strlen(s_base));
    char err[PG_ERRSTR_SIZE];
    Polegate__Pole__V1__Person *p = cs->changes[0].entity->person;
    p->sex = 0;
    p->officer_defined_ethnicity = 0;
    p->self_defined_ethnicity = 0;
    p->nationality = "ZZZ";
    p->date_of_birth->day = 0;
    p->date_of_birth->month = 0;
    p->aliases[0]->name->surname = "";
    cs->changes[3].entity->item->value->currency = "EUR";
    Polegate__Pole__V1__Occurrence *o = cs->changes[5].entity->occurrence;
    o->kind = POLEGATE__POLE__V1__OCCURRENCE_KIND__OCCURRENCE_KIND_INCIDENT;
    char *text = s_encode_rc(cs, NULL, 0, err);
    s_expect_lacks(text, "<Gender>");
    s_expect_lacks(text, "<EthnicityOD>");
    s_expect_lacks(text, "<EthnicitySD>");
    s_expect_lacks(text, "<Nationality>");
    s_expect_lacks(text, "<Alias>");
    s_expect_lacks(text, "<Value>");
    s_expect_lacks(text, "<Offence");
    s_expect_has(text, "<Type>Incident</Type>");
    s_expect_has(text, "<BirthDate Precision=\"Year\">00/00/1985</BirthDate>");
    /* What NX5 can hold still reads back. */
    pg_changeset *back = s_decode_ok(text, strlen(text));
    s_expect_date(back->changes[0].entity->person->date_of_birth, 1985, 0, 0);
    free(text);
    pg_changeset_destroy(&back);
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_encode_link_kinds)
{
    pg_changeset *cs = s_decode_ok(s_base, strlen(s_base));
    pg_link_update *lu = NULL;
    for (size_t i = 0; i < cs->count && !lu; i++)
        if (cs->changes[i].type == PG_CHANGE_LINK && cs->changes[i].link->from->kind &&
            cs->changes[i].link->to->kind)
            lu = cs->changes[i].link;
    ck_assert_ptr_nonnull(lu);
    char err[PG_ERRSTR_SIZE];
    /* A link whose ends the ROLE table does not allow is refused, not written. */
    lu->role = ROLE(STOLEN);
    lu->to->kind = lu->from->kind == POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_OCCURRENCE
                       ? POLEGATE__POLE__V1__ENTITY_KIND__ENTITY_KIND_PERSON
                       : lu->from->kind;
    s_encode_rc(cs, NULL, PG_EINVALID, err);
    ck_assert_msg(strstr(err, "role: STLN does not link ") &&
                      strstr(err, "(ROLE table: OCCURRENCE -> ITEM)"),
                  "%s", err);
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_encode_escaping)
{
    pg_changeset *cs = s_decode_ok(s_base, strlen(s_base));
    char err[PG_ERRSTR_SIZE];
    Polegate__Pole__V1__Intelligence *in = cs->changes[7].entity->intelligence;
    in->text = "A & B <c> \"q\" 'a'\r\nline";
    pg_adapter_ctx ctx = {.now_ms = 1, .batch = "b\"&<1>"};
    pg_buf out = PG_BUF_INIT;
    ck_assert_int_eq(pg_adapter_niche.encode(&ctx, cs, &out, err, sizeof err), 0);
    const char *text = (const char *)out.data;
    s_expect_has(text, "<Text>A &amp; B &lt;c&gt; \"q\" 'a'&#13;\nline</Text>");
    s_expect_has(text, "Batch=\"b&quot;&amp;&lt;1&gt;\"");
    pg_changeset *back = s_decode_ok(text, out.len);
    ck_assert_str_eq(back->changes[7].entity->intelligence->text, in->text);
    ck_assert_str_eq(back->changes[7].entity->origin->message_id, "b\"&<1>#8");
    pg_changeset_destroy(&back);
    pg_buf_free(&out);
    /* What XML 1.0 cannot carry. */
    in->text = "bell\a";
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[7] (entity 11E7000000000777).intelligence.text: control "
                          "character U+0007 cannot be written in XML");
    in->text = "bad \xff utf-8";
    s_encode_rc(cs, NULL, PG_EINVALID, err);
    ck_assert_str_eq(err, "changes[7] (entity 11E7000000000777).intelligence.text: not UTF-8");
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_encode_header)
{
    pg_changeset *cs = s_decode_ok(s_base, strlen(s_base));
    pg_adapter_ctx ctx = {.now_ms = s_utc(2026, 10, 25, 1, 40, 0) * 1000 + 123};
    pg_buf out = PG_BUF_INIT;
    char err[PG_ERRSTR_SIZE];
    ck_assert_int_eq(pg_adapter_niche.encode(&ctx, cs, &out, err, sizeof err), 0);
    /* 01:40 UTC is after the change: GMT, the second 01:40 of the day. A stamp: the
     * wall clock, as an RMS writes its own in that hour (not refused: the document
     * would be held back for an hour). */
    static const char head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<NX5Exchange "
                               "xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"MER\" "
                               "Batch=\"gw-20261025-014000123\" Created=\"25/10/2026 01:40:00\">\n";
    ck_assert_msg(strncmp((char *)out.data, head, sizeof head - 1) == 0, "%s", (char *)out.data);
    pg_buf_free(&out);
    /* No changes: NX5 says a document holds one or more, and decode refuses one that
     * holds none, so none is written (the gateway's compose never asks for one). */
    pg_changeset *empty = pg_changeset_new();
    empty->force = "ESX";
    ck_assert_int_eq(pg_adapter_niche.encode(&ctx, empty, &out, err, sizeof err), PG_EUNSUPPORTED);
    ck_assert_str_eq(err, "NX5Exchange: no changes; an NX5 document holds one or more");
    ck_assert_uint_eq(out.len, 0);
    static const char none[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<NX5Exchange "
                               "xmlns=\"urn:nx:exchange:5\" Source=\"NICHE\" Force=\"ESX\" "
                               "Batch=\"b\" Created=\"25/10/2026 01:40:00\">\n</NX5Exchange>\n";
    s_expect_invalid(none, sizeof none - 1, PG_EINVALID,
                     "NX5Exchange: holds no changes (one or more Entity or Link elements)");
    pg_buf_free(&out);
    empty->force = NULL;
    ck_assert_int_eq(pg_adapter_niche.encode(&ctx, empty, &out, err, sizeof err), PG_EUNSUPPORTED);
    ck_assert_str_eq(err, "NX5Exchange@Force: the force is not 2-4 upper-case letters");
    pg_buf_free(&out);
    ctx.batch = "";
    ck_assert_int_eq(pg_adapter_niche.encode(&ctx, cs, &out, err, sizeof err), PG_EINVALID);
    ck_assert_str_eq(err, "NX5Exchange@Batch: must be 1-40 characters");
    pg_buf_free(&out);
    pg_changeset_destroy(&empty);
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_encode_ops_and_ids)
{
    pg_changeset *cs = s_decode_ok(s_base, strlen(s_base));
    char err[PG_ERRSTR_SIZE];
    s_idmap m = {.base.resolve = s_resolve};
    /* First time: every record the idmap creates is an Add; the Delete stays one. */
    char *text = s_encode_rc(cs, &m.base, 0, err);
    s_expect_has(text, "GID=\"7F3A9C2E4B1D0A66\" Rev=\"12\" Op=\"Add\"");
    s_expect_has(
        text, "GID=\"7E1E000000000031\" Rev=\"5\" Op=\"Delete\" Modified=\"25/10/2026 01:10:00\" "
              "GPMS=\"O\" Handling=\"P\" MoPI=\"3\" Review=\"25/10/2032\"/>\n");
    s_expect_has(text, "<Link Role=\"USES\" From=\"7F3A9C2E4B1D0A66\" To=\"7E1E000000000031\" "
                       "Op=\"Delete\"/>");
    free(text);
    /* Again: Modify. A merged_from makes it a Merge, its GIDs through the idmap. */
    pg_entity_update *p = cs->changes[0].entity;
    pg_entity_ref ref = POLEGATE__POLE__V1__ENTITY_REF__INIT, *refs[] = {&ref};
    ref.id = (char *)s_uuid("MER", "7F3A9C2E4B1D0B01");
    ref.native_id = "7F3A9C2E4B1D0B01";
    ref.kind = EK(PERSON);
    text = s_encode_rc(cs, &m.base, 0, err);
    s_expect_has(text, "GID=\"7F3A9C2E4B1D0A66\" Rev=\"12\" Op=\"Modify\"");
    free(text);
    p->merged_from = refs;
    p->n_merged_from = 1;
    text = s_encode_rc(cs, &m.base, 0, err);
    s_expect_has(text, "GID=\"7F3A9C2E4B1D0A66\" Rev=\"12\" Op=\"Merge\"");
    s_expect_has(
        text, "Review=\"25/10/2036\">\n    <MergedFrom GID=\"7F3A9C2E4B1D0B01\"/>\n    <Surname>");
    free(text);
    p->n_merged_from = 0;
    /* No idmap and an origin id that is not a GID. */
    p->origin->native_id = "P0000123456";
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[0] (entity P0000123456).id: 'P0000123456' is not an NX5 GID "
                          "(16 upper-case hex digits); encoding without an idmap keeps native ids");
    /* The idmap's own failure, passed on. */
    p->origin->native_id = "";
    s_encode_rc(cs, &m.base, PG_ENOTFOUND, err);
    ck_assert_msg(strstr(err, "changes[0] (entity ") && strstr(err, ".id: no NX5 GID: "), "%s",
                  err);
    pg_changeset_destroy(&cs);
}
END_TEST

/* A GID is read from the record's UUID: an id that is not one is refused, not read past. */
START_TEST(test_gid_candidate_needs_a_uuid)
{
    const pg_adapter_ops *a = pg_adapter_find("nx5");
    char gid[17], e[256];
    static const char *const bad[] = {"", "abcd", "19d2bfc8-4ff4-5442", "not a uuid at all"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        for (uint64_t n = 0; n < 2; n++) {
            ck_assert_int_eq(a->ids->candidate(NULL, bad[i], 1, n, gid, sizeof gid, e, sizeof e),
                             PG_EINVALID);
            ck_assert_ptr_nonnull(strstr(e, "is not a UUID"));
        }
    ck_assert_int_eq(a->ids->candidate(NULL, "19d2bfc8-4ff4-5442-8c3e-7d1c3f4a9b01", 1, 1, gid,
                                       sizeof gid, e, sizeof e),
                     0);
    ck_assert_str_eq(gid, "8C3E7D1C3F4A9B01");
}
END_TEST

/* ts (of change i of cs) set to t, in the second occurrence of the hour repeated when
 * BST ends: refused, naming the field. */
static void s_expect_time_refused(pg_changeset *cs, size_t i, pg_timestamp *ts, const char *field,
                                  int64_t t)
{
    char err[PG_ERRSTR_SIZE], want[PG_ERRSTR_SIZE];
    int64_t was = ts->seconds;
    ts->seconds = t;
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    snprintf(want, sizeof want, "changes[%zu] (entity %s).%s: " REPEATED, i,
             s_ent(cs, i)->origin->native_id, field);
    ck_assert_str_eq(err, want);
    ts->seconds = was;
}

/* NX5 reads a local time in the hour repeated when BST ends as BST: an instant in
 * the second occurrence (01:00-01:59 GMT) cannot be written. It is refused rather
 * than written as the instant an hour earlier. */
START_TEST(test_encode_repeated_hour)
{
    char err[PG_ERRSTR_SIZE];
    pg_changeset *cs = s_decode_ok(s_base, strlen(s_base));
    Polegate__Pole__V1__Occurrence *o = cs->changes[5].entity->occurrence;
    /* 00:30 to 01:10 UTC was written From 01:30 To 01:10, read back To 00:10 UTC. */
    o->occurred_from->seconds = s_utc(2026, 10, 25, 0, 30, 0);
    s_expect_time_refused(cs, 5, o->occurred_to, "occurrence.occurred_to",
                          s_utc(2026, 10, 25, 1, 10, 0));
    /* Every minute around the change and the edges of the hour: written as itself, or
     * refused. */
    int64_t ends = s_utc(2026, 10, 25, 1, 0, 0);
    int64_t t0 = s_utc(2026, 10, 24, 23, 0, 0), t1 = s_utc(2026, 10, 25, 3, 0, 0);
    int64_t edges[] = {ends - 1, ends + 3599};
    for (int64_t t = t0; t <= t1 + 2; t += t < t1 ? 60 : 1) {
        int64_t u = t <= t1 ? t : edges[t - t1 - 1];
        o->occurred_from->seconds = o->occurred_to->seconds = u;
        if (u >= ends && u < ends + 3600) {
            s_expect_time_refused(cs, 5, o->occurred_from, "occurrence.occurred_from", u);
            continue;
        }
        char *text = s_encode_rc(cs, NULL, 0, err);
        pg_changeset *back = s_decode_ok(text, strlen(text));
        s_expect_time(s_ent(back, 5)->occurrence->occurred_from, u);
        s_expect_time(s_ent(back, 5)->occurrence->occurred_to, u);
        pg_changeset_destroy(&back);
        free(text);
    }
    o->occurred_from->seconds = o->occurred_to->seconds = ends - 1800;
    /* Every other time NX5 writes goes the same way. */
    pg_entity_update *c = cs->changes[6].entity, *in = cs->changes[7].entity;
    int64_t second = ends + 1800;
    /* Modified is a stamp: written as the wall clock showed it (a DELETE is only a
     * stamp, and must reach the RMS whatever the hour). */
    int64_t was = c->modified_at->seconds;
    c->modified_at->seconds = second;
    char *text = s_encode_rc(cs, NULL, 0, err);
    ck_assert_msg(strstr(text, "Modified=\"25/10/2026 01:30:00\""), "%s", text);
    free(text);
    c->modified_at->seconds = was;
    s_expect_time_refused(cs, 6, c->custody->arrived_at, "custody.arrived_at", second);
    pg_timestamp t = {.seconds = ends - 1800};
    c->custody->released_at = &t;
    s_expect_time_refused(cs, 6, &t, "custody.released_at", second);
    c->custody->released_at = NULL;
    c->custody->arrested_at = &t;
    s_expect_time_refused(cs, 6, &t, "custody.arrested_at", second);
    c->custody->arrested_at = NULL;
    o->reported_at = &t;
    s_expect_time_refused(cs, 5, &t, "occurrence.reported_at", second);
    o->reported_at = NULL;
    in->intelligence->reported_at = &t;
    s_expect_time_refused(cs, 7, &t, "intelligence.reported_at", second);
    /* A year with another last Sunday, and a change before 1996 (23 October 1994). */
    s_expect_time_refused(cs, 7, &t, "intelligence.reported_at", s_utc(2027, 10, 31, 1, 0, 0));
    s_expect_time_refused(cs, 7, &t, "intelligence.reported_at", s_utc(1994, 10, 23, 1, 15, 0));
    t.seconds = s_utc(2027, 10, 31, 0, 59, 59);
    free(s_encode_rc(cs, NULL, 0, err));
    pg_changeset_destroy(&cs);
}
END_TEST

/* A long PNC ID whose short form would read back in another century (the year of
 * Modified decides it) is left out, never written as another person's ID (found by
 * attack: 1926/0000001W was written 26/1W, read back as 2026/0000001W). */
START_TEST(test_encode_pnc_century_kept)
{
    char err[PG_ERRSTR_SIZE];
    pg_changeset *cs = s_decode_fixture("nx5-merseyside-export.xml");
    Polegate__Pole__V1__Person *pp = NULL;
    for (size_t i = 0; i < cs->count && !pp; i++)
        if (cs->changes[i].type == PG_CHANGE_ENTITY &&
            cs->changes[i].entity->body_case == BODY(PERSON) &&
            cs->changes[i].entity->person->pnc_id && *cs->changes[i].entity->person->pnc_id)
            pp = cs->changes[i].entity->person;
    ck_assert_ptr_nonnull(pp);
    ck_assert_str_eq(pp->pnc_id, "1999/0054321A");
    char *doc = s_encode_rc(cs, NULL, 0, err);
    ck_assert_ptr_nonnull(strstr(doc, "<PNCID>99/54321A</PNCID>"));
    free(doc);
    pp->pnc_id = "1926/0000001W";
    doc = s_encode_rc(cs, NULL, 0, err);
    ck_assert_ptr_null(strstr(doc, "PNCID"));
    free(doc);
    pg_changeset_destroy(&cs);
}
END_TEST

/* A weapon without a category: NX5 says a weapon by its WPN- Category alone, so its
 * Property would read back as an item (found by attack). */
START_TEST(test_encode_weapon_needs_category)
{
    char err[PG_ERRSTR_SIZE];
    pg_changeset *cs = s_decode_fixture("nx5-merseyside-export.xml");
    pg_entity_update *w = cs->changes[2].entity;
    ck_assert_int_eq(w->body_case, BODY(WEAPON));
    free(s_encode_rc(cs, NULL, 0, err));
    w->weapon->category = 0;
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[2] (entity 1C0FFEE000000001).weapon.category: not given; NX5 "
                          "says a weapon by its WPN- Category (without one it reads as an item)");
    pg_changeset_destroy(&cs);
}
END_TEST

START_TEST(test_encode_refusals)
{
    char err[PG_ERRSTR_SIZE];
    pg_changeset *cs = s_decode_ok(s_base, strlen(s_base));
    pg_entity_update *v = cs->changes[2].entity;
    v->origin->force = "ESX";
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[2].origin.force: another force than the first change's: one NX5 "
                          "document carries the records of one force");
    v->origin->force = "MER";
    v->marking->classification = 0;
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[2] (entity C100000000000301).marking.classification: not "
                          "given; NX5 requires GPMS");
    v->marking->classification = CL(SECRET);
    v->version = 0;
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[2] (entity C100000000000301).version: 0; NX5 Rev is 1 to "
                          "9999999999999999999 (19 digits)");
    v->version = 9999999999999999999ULL + 1; /* not written as a Rev no RMS reads */
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[2] (entity C100000000000301).version: 10000000000000000000; NX5 "
                          "Rev is 1 to 9999999999999999999 (19 digits)");
    v->version = 9999999999999999999ULL;
    free(s_encode_rc(cs, NULL, 0, err));
    /* what the decoder refuses in MergedFrom is not written (found by review): a GID
     * twice, the record's own */
    pg_entity_ref ref = POLEGATE__POLE__V1__ENTITY_REF__INIT, own, *twice[] = {&ref, &ref},
                  *self[] = {&own};
    ref.native_id = "7F3A9C2E4B1D0B01";
    ref.kind = v->kind;
    own = ref;
    own.native_id = v->origin->native_id;
    v->merged_from = twice;
    v->n_merged_from = 2;
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[2] (entity C100000000000301).merged_from: [1] 7F3A9C2E4B1D0B01 "
                          "is named twice");
    v->merged_from = self;
    v->n_merged_from = 1;
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[2] (entity C100000000000301).merged_from: [0] is the record's "
                          "own GID (C100000000000301)");
    v->merged_from = NULL;
    v->n_merged_from = 0;
    v->version = 3;
    v->retention->mopi_group = 0;
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[2] (entity C100000000000301).retention.mopi_group: not 1-4; "
                          "NX5 requires MoPI");
    v->retention->mopi_group = 1;
    cs->changes[7].entity->marking->caveat = "";
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[7] (entity 11E7000000000777).marking.caveat: Handling C needs "
                          "a caveat");
    cs->changes[7].entity->marking->caveat = "x";
    cs->changes[0].entity->person->name->surname = "";
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_str_eq(err, "changes[0] (entity 7F3A9C2E4B1D0A66).person.name.surname: NX5 requires "
                          "a Surname");
    cs->changes[0].entity->person->name->surname = "X";
    /* Canonical values that break canonical rules are refused, not passed on. */
    Polegate__Pole__V1__Location *l = cs->changes[1].entity->location;
    l->postcode = "XYZ";
    s_encode_rc(cs, NULL, PG_EINVALID, err);
    ck_assert_str_eq(err, "changes[1] (entity 00A1B2C3D4E5F607).location.postcode: must be "
                          "a UK postcode");
    l->postcode = "l1  4ds";
    l->uprn = "0123";
    s_encode_rc(cs, NULL, PG_EINVALID, err);
    ck_assert_str_eq(err, "changes[1] (entity 00A1B2C3D4E5F607).location.uprn: is not 1-12 "
                          "digits");
    l->uprn = "";
    cs->changes[2].entity->vehicle->vrm = "AB-12";
    s_encode_rc(cs, NULL, PG_EINVALID, err);
    ck_assert_msg(
        strstr(err, "changes[2] (entity C100000000000301).vehicle.vrm: registration mark") == err,
        "%s", err);
    cs->changes[2].entity->vehicle->vrm = "ab12 cde";
    cs->changes[0].entity->person->cro_number = "123456/99M";
    s_encode_rc(cs, NULL, PG_EINVALID, err);
    ck_assert_str_eq(err,
                     "changes[0] (entity 7F3A9C2E4B1D0A66).person.cro_number: check letter does "
                     "not match the number");
    cs->changes[0].entity->person->cro_number = "";
    cs->changes[5].entity->occurrence->reported_at = &(pg_timestamp){.seconds = -62135596800LL - 1};
    s_encode_rc(cs, NULL, PG_EINVALID, err);
    ck_assert_str_eq(err, "changes[5] (entity F100000000004711).occurrence.reported_at: "
                          "is outside years 0001-9999 in UK time");
    /* the first and last second NX5 can write, as its decoder reads them */
    static const struct {
        int64_t t;
        const char *text;
    } edge[] = {{-62135596800LL, "<Reported>01/01/0001 00:00:00</Reported>"},
                {253402300799LL, "<Reported>31/12/9999 23:59:59</Reported>"}};
    for (size_t k = 0; k < 2; k++) {
        cs->changes[5].entity->occurrence->reported_at = &(pg_timestamp){.seconds = edge[k].t};
        char *text = s_encode_rc(cs, NULL, 0, err);
        ck_assert_msg(strstr(text, edge[k].text), "%s", text);
        free(text);
    }
    cs->changes[5].entity->occurrence->reported_at = NULL;
    char long_caveat[520];
    memset(long_caveat, 'c', 501);
    long_caveat[501] = 0;
    cs->changes[7].entity->marking->caveat = long_caveat;
    s_encode_rc(cs, NULL, PG_EINVALID, err);
    ck_assert_str_eq(err, "changes[7] (entity 11E7000000000777).marking.caveat: 501 characters; "
                          "the canonical model allows at most 500");
    cs->changes[7].entity->marking->caveat = "x";
    /* A grid reference off the grid gives way to the WGS 84 position. */
    l->grid->easting = -5;
    char *text = s_encode_rc(cs, NULL, 0, err);
    s_expect_has(text, "<Postcode>L1 4DS</Postcode>\n    <Easting>334900.0</Easting>");
    s_expect_has(text, "<VRM>AB12CDE</VRM>");
    free(text);
    s_lnk(cs, 9)->valid_from->day = 0;
    s_encode_rc(cs, NULL, PG_EUNSUPPORTED, err);
    ck_assert_msg(strstr(err, ".valid_from: NX5 needs a full date here") != NULL, "%s", err);
    pg_changeset_destroy(&cs);
}
END_TEST

/* ------------------------------------------------------------ the suite */

static Suite *s_suite(void)
{
    Suite *s = suite_create("niche");
    TCase *tc = tcase_create("nx5");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ops);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_split_markup);
    tcase_add_test(tc, test_merseyside_decode);
    tcase_add_test(tc, test_burglary_decode);
    tcase_add_test(tc, test_round_trip_merseyside);
    tcase_add_test(tc, test_round_trip_burglary);
    tcase_add_test(tc, test_cross_format_atx);
    tcase_add_loop_test(tc, test_invalid, 0, (int)(sizeof s_bads / sizeof s_bads[0]));
    tcase_add_test(tc, test_caveat_length);
    tcase_add_test(tc, test_encodings);
    tcase_add_test(tc, test_dtd_refused);
    tcase_add_test(tc, test_foreign_namespaces_ignored);
    tcase_add_test(tc, test_too_big);
    tcase_add_test(tc, test_large_documents);
    tcase_add_test(tc, test_force_and_context);
    tcase_add_test(tc, test_decode_details);
    tcase_add_test(tc, test_repeated_gids);
    tcase_add_test(tc, test_text_where_none);
    tcase_add_test(tc, test_encode_names);
    tcase_add_test(tc, test_encode_address);
    tcase_add_test(tc, test_encode_lossy);
    tcase_add_test(tc, test_encode_escaping);
    tcase_add_test(tc, test_encode_link_kinds);
    tcase_add_test(tc, test_encode_header);
    tcase_add_test(tc, test_encode_ops_and_ids);
    tcase_add_test(tc, test_encode_refusals);
    tcase_add_test(tc, test_encode_weapon_needs_category);
    tcase_add_test(tc, test_encode_pnc_century_kept);
    tcase_add_test(tc, test_encode_repeated_hour);
    tcase_add_test(tc, test_gid_candidate_needs_a_uuid);
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
