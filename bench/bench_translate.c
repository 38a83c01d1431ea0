/* bench_translate: native decode + protobuf pack of every canonical update on one
 * core, next to a baseline measured in the same run: jansson's json_loadb of the same
 * ATX bytes alone, and libxml2's parse of the same NX5 documents alone. */
#include <ctype.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "corpus.h"
#include "polegate/adapter.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/pbjson.h"

typedef struct s_msg {
    const uint8_t *data;
    size_t len;
} s_msg;

typedef struct s_corpus {
    s_msg *msgs;
    size_t n, cap, bytes;
} s_corpus;

typedef struct s_result {
    double seconds;
    size_t bytes_out, updates;
} s_result;

/* CPU time of this thread (pg_bench_cpu_now). */
static double s_now(void)
{
    return pg_bench_cpu_now();
}

static int s_collect(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    (void)pos;
    s_corpus *c = arg;
    if (pg_grow((void **)&c->msgs, &c->cap, c->n + 1, sizeof *c->msgs))
        return PG_ENOMEM;
    c->msgs[c->n++] = (s_msg){msg, len};
    c->bytes += len;
    return 0;
}

/* ---------------------------------------------------------------- the NX5 corpus */

/* GIDs for the NX5 corpus: the first 16 hex digits of the canonical UUID, upper case
 * (unique in any corpus this size, and stable). */
static int s_gid(pg_idmap *self, const char *uuid, int kind, const char *origin_system,
                 const char *native_id, char *out, size_t outsize, int *created, char *errstr,
                 size_t errstr_size)
{
    (void)self, (void)kind, (void)origin_system, (void)native_id;
    size_t n = 0;
    for (const char *c = uuid; *c && n < 16 && n + 1 < outsize; c++)
        if (*c != '-')
            out[n++] = (char)toupper((unsigned char)*c);
    out[n] = '\0';
    if (created)
        *created = 0;
    return n == 16 ? 0 : pg_errf(PG_EINVALID, errstr, errstr_size, "uuid '%s' too short", uuid);
}

/* How many ATX messages the NX5 corpus left out, and why. */
typedef struct s_skips {
    size_t invalid, unencodable, undecodable;
    char first_invalid[PG_ERRSTR_SIZE], first_unencodable[PG_ERRSTR_SIZE],
        first_undecodable[PG_ERRSTR_SIZE];
} s_skips;

static void s_skip(size_t *count, char *first, const char *err)
{
    if (!(*count)++)
        snprintf(first, PG_ERRSTR_SIZE, "%s", err);
}

/* The same records as NX5: each ATX message decoded and encoded again as one NX5
 * document, as the gateway would send it to a Niche-like RMS. A document the NX5
 * decoder would reject is left out: it would measure an error path. */
static int s_make_nx5(const s_corpus *atx, pg_buf *docs, s_corpus *nx5, s_skips *skips)
{
    pg_idmap idmap = {.resolve = s_gid};
    pg_adapter_ctx dec = {0}, enc = {.idmap = &idmap, .now_ms = 1767600000000LL};
    pg_changeset *cs = pg_changeset_new();
    size_t *ends = calloc(atx->n + 1, sizeof *ends);
    char err[PG_ERRSTR_SIZE];
    int rc = cs && ends ? 0 : PG_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < atx->n && !rc; i++) {
        pg_changeset_reset(cs);
        size_t mark = docs->len;
        rc = pg_adapter_athena.decode(&dec, atx->msgs[i].data, atx->msgs[i].len, cs, err,
                                      sizeof err);
        if (rc == PG_EINVALID) {
            s_skip(&skips->invalid, skips->first_invalid, err);
            rc = 0;
            continue;
        }
        if (rc)
            break;
        rc = pg_adapter_niche.encode(&enc, cs, docs, err, sizeof err);
        if (rc == PG_EUNSUPPORTED || rc == PG_EINVALID) {
            docs->len = mark;
            s_skip(&skips->unencodable, skips->first_unencodable, err);
            rc = 0;
            continue;
        }
        if (rc)
            break;
        pg_changeset_reset(cs);
        if (pg_adapter_niche.decode(&dec, docs->data + mark, docs->len - mark, cs, err,
                                    sizeof err)) {
            docs->len = mark;
            s_skip(&skips->undecodable, skips->first_undecodable, err);
            continue;
        }
        ends[n++] = docs->len;
    }
    if (rc)
        fprintf(stderr, "bench_translate: making the NX5 corpus: %s\n", err);
    for (size_t i = 0; i < n && !rc; i++) {
        size_t start = i ? ends[i - 1] : 0;
        rc = s_collect(nx5, docs->data + start, ends[i] - start, i + 1);
    }
    free(ends);
    pg_changeset_destroy(&cs);
    return rc;
}

/* ---------------------------------------------------------------- the measured steps */

/* Baseline: parse each document into a libxml2 tree and free it; nothing else. */
static int s_libxml2(const s_corpus *c, s_result *res)
{
    double t0 = s_now();
    for (size_t i = 0; i < c->n; i++) {
        xmlDocPtr doc = xmlReadMemory((const char *)c->msgs[i].data, (int)c->msgs[i].len, NULL,
                                      NULL, XML_PARSE_NONET);
        if (!doc) {
            fprintf(stderr, "bench_translate: libxml2: document %zu does not parse\n", i + 1);
            return PG_EINVALID;
        }
        xmlFreeDoc(doc);
    }
    res->seconds = s_now() - t0;
    return 0;
}

/* Baseline: parse each message into a jansson tree and free it; nothing else. */
static int s_jansson(const s_corpus *c, s_result *res)
{
    double t0 = s_now();
    for (size_t i = 0; i < c->n; i++) {
        json_error_t err;
        json_t *j = json_loadb((const char *)c->msgs[i].data, c->msgs[i].len, 0, &err);
        if (!j) {
            fprintf(stderr, "bench_translate: jansson: message %zu: %s\n", i + 1, err.text);
            return PG_EINVALID;
        }
        json_decref(j);
    }
    res->seconds = s_now() - t0;
    return 0;
}

/* What the daemon does for each message before the ledger: decode to canonical
 * changes, then pack every update as protobuf into one reused buffer. With json set,
 * pbjson writes each update as a JSON line instead (what `translate --to json`
 * prints). */
static int s_decode_pack(const pg_adapter_ops *ad, const s_corpus *c, int json, s_result *res)
{
    pg_changeset *cs = pg_changeset_new();
    pg_buf out = PG_BUF_INIT;
    pg_adapter_ctx ctx = {0};
    char err[PG_ERRSTR_SIZE];
    int rc = cs ? 0 : PG_ENOMEM;
    res->bytes_out = res->updates = 0;
    double t0 = s_now();
    for (size_t i = 0; i < c->n && !rc; i++) {
        pg_changeset_reset(cs);
        rc = ad->decode(&ctx, c->msgs[i].data, c->msgs[i].len, cs, err, sizeof err);
        if (rc) {
            fprintf(stderr, "bench_translate: %s message %zu: %s\n", ad->format, i + 1, err);
            break;
        }
        for (size_t k = 0; k < cs->count && !rc; k++) {
            const pg_change *ch = &cs->changes[k];
            const ProtobufCMessage *m =
                ch->type == PG_CHANGE_ENTITY ? &ch->entity->base : &ch->link->base;
            pg_buf_reset(&out);
            if (json) {
                rc = pg_pbjson_encode(m, &out);
            } else {
                size_t size = protobuf_c_message_get_packed_size(m);
                if (!(rc = pg_buf_reserve(&out, size)))
                    out.len = protobuf_c_message_pack(m, out.data);
            }
            res->bytes_out += out.len;
            res->updates++;
        }
    }
    res->seconds = s_now() - t0;
    pg_buf_free(&out);
    pg_changeset_destroy(&cs);
    return rc;
}

/* ---------------------------------------------------------------- the table */

/* Best of rounds of one step; the step returns non-zero on failure. */
typedef int (*s_step)(const pg_adapter_ops *ad, const s_corpus *c, int arg, s_result *res);

static int s_step_decode(const pg_adapter_ops *ad, const s_corpus *c, int json, s_result *res)
{
    return s_decode_pack(ad, c, json, res);
}

static int s_step_jansson(const pg_adapter_ops *ad, const s_corpus *c, int arg, s_result *res)
{
    (void)ad, (void)arg;
    return s_jansson(c, res);
}

static int s_step_libxml2(const pg_adapter_ops *ad, const s_corpus *c, int arg, s_result *res)
{
    (void)ad, (void)arg;
    return s_libxml2(c, res);
}

static int s_best(s_step step, const pg_adapter_ops *ad, const s_corpus *c, int arg, size_t rounds,
                  s_result *best)
{
    for (size_t r = 0; r < rounds; r++) {
        s_result res = {0};
        if (step(ad, c, arg, &res))
            return 1;
        if (!r || res.seconds < best->seconds)
            *best = res;
    }
    return 0;
}

static void s_row(const char *step, const s_corpus *c, const s_result *r)
{
    printf("| %-44s | %8.3f | %10.0f | %8.1f | %12zu |\n", step, r->seconds,
           (double)c->n / r->seconds, (double)c->bytes / 1e6 / r->seconds, r->bytes_out);
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: bench_translate [--records N] [--seed S] [--rounds R] "
               "[--write-corpus FILE] [--write-nx5 FILE]\n"
               "  --records N         messages in the generated ATX corpus (default 100000)\n"
               "  --seed S            corpus seed (default 1)\n"
               "  --rounds R          timed rounds; the best is reported (default 3)\n"
               "  --write-corpus FILE also write the corpus as NDJSON (for polegate "
               "translate)\n"
               "  --write-nx5 FILE    also write the NX5 corpus, one document after another "
               "(for polegate load)\n");
}

int main(int argc, char **argv)
{
    size_t records = 100000, rounds = 3;
    uint64_t seed = 1;
    const char *write_corpus = NULL, *write_nx5 = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            s_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            s_usage(stderr);
            return 2;
        }
        if (!strcmp(argv[i], "--records"))
            records = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--write-corpus"))
            write_corpus = argv[++i];
        else if (!strcmp(argv[i], "--write-nx5"))
            write_nx5 = argv[++i];
        else {
            s_usage(stderr);
            return 2;
        }
    }
    if (!records || !rounds) {
        s_usage(stderr);
        return 2;
    }

    /* One core: the figures are per core, and a migrating thread adds noise. */
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    int pinned = sched_setaffinity(0, sizeof one, &one) == 0;

    pg_buf atx = PG_BUF_INIT;
    pg_corpus_stats st;
    s_corpus c = {0};
    if (pg_corpus_atx(records, seed, &atx, &st) ||
        pg_adapter_athena.split(atx.data, atx.len, s_collect, &c)) {
        fprintf(stderr, "bench_translate: out of memory\n");
        return 1;
    }
    if (write_corpus) {
        FILE *f = fopen(write_corpus, "wb");
        if (!f || fwrite(atx.data, 1, atx.len, f) != atx.len || fclose(f)) {
            perror(write_corpus);
            return 1;
        }
    }

    printf("corpus: %zu ATX/2 messages, %.1f MB (seed %llu):", c.n, (double)c.bytes / 1e6,
           (unsigned long long)seed);
    for (int t = 0; t < 9; t++)
        printf(" %s %zu%s", pg_corpus_types[t], st.by_type[t], t < 8 ? "," : "");
    printf("; %zu deletes, %zu merges, %zu links\n", st.deletes, st.merges, st.links);

    pg_buf nx5docs = PG_BUF_INIT;
    s_corpus x = {0};
    s_skips sk = {0};
    if (s_make_nx5(&c, &nx5docs, &x, &sk))
        return 1;
    printf("NX5 corpus: the same records as %zu NX5 documents (one per ATX message), "
           "%.1f MB\n",
           x.n, (double)x.bytes / 1e6);
    if (write_nx5) {
        /* One document after another, each on a line of its own (polegate load). */
        FILE *f = fopen(write_nx5, "wb");
        for (size_t i = 0; f && i < x.n; i++) {
            fwrite(x.msgs[i].data, 1, x.msgs[i].len, f);
            if (x.msgs[i].len && x.msgs[i].data[x.msgs[i].len - 1] != '\n')
                fputc('\n', f);
        }
        if (!f || ferror(f) || fclose(f)) {
            perror(write_nx5);
            return 1;
        }
    }
    if (sk.invalid)
        printf("  left out: %zu ATX messages the ATX decoder rejects, first: %s\n", sk.invalid,
               sk.first_invalid);
    if (sk.unencodable)
        printf("  left out: %zu the NX5 encoder refused, first: %s\n", sk.unencodable,
               sk.first_unencodable);
    if (sk.undecodable)
        printf("  left out: %zu the NX5 decoder rejected after encoding, first: %s\n",
               sk.undecodable, sk.first_undecodable);
    printf("one core (%s), thread CPU time, best of %zu rounds\n\n",
           pinned ? "pinned to CPU 0" : "not pinned", rounds);

    const pg_adapter_ops *atxa = &pg_adapter_athena, *nx5a = &pg_adapter_niche;
    s_result base = {0}, pack = {0}, json = {0}, xbase = {0}, xpack = {0};
    if (s_best(s_step_jansson, atxa, &c, 0, rounds, &base) ||
        s_best(s_step_decode, atxa, &c, 0, rounds, &pack) ||
        s_best(s_step_decode, atxa, &c, 1, rounds, &json) ||
        s_best(s_step_libxml2, nx5a, &x, 0, rounds, &xbase) ||
        s_best(s_step_decode, nx5a, &x, 0, rounds, &xpack))
        return 1;
    printf("| %-44s | %8s | %10s | %8s | %12s |\n", "step", "cpu s", "records/s", "MB/s in",
           "bytes out");
    printf("|%s|%s|%s|%s|%s|\n", "----------------------------------------------", "----------",
           "------------", "----------", "--------------");
    s_row("ATX: jansson json_loadb alone (baseline)", &c, &base);
    s_row("ATX decode + protobuf pack", &c, &pack);
    s_row("ATX decode + canonical JSON (pbjson)", &c, &json);
    s_row("NX5: libxml2 xmlReadMemory alone (baseline)", &x, &xbase);
    s_row("NX5 decode + protobuf pack", &x, &xpack);
    printf("\ncanonical updates: ATX %zu (%.2f per message, protobuf %.0f bytes each), "
           "NX5 %zu\n",
           pack.updates, (double)pack.updates / (double)c.n,
           (double)pack.bytes_out / (double)pack.updates, xpack.updates);
    printf("ratio: ATX decode + protobuf pack takes %.2fx the time of json_loadb alone\n",
           pack.seconds / base.seconds);
    printf("ratio: NX5 decode + protobuf pack takes %.2fx the time of xmlReadMemory alone\n",
           xpack.seconds / xbase.seconds);

    free(x.msgs);
    pg_buf_free(&nx5docs);
    free(c.msgs);
    pg_buf_free(&atx);
    return 0;
}
