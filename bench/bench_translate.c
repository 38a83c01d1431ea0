/* bench_translate: native decode + protobuf pack of every canonical update on one
 * core, next to a baseline measured in the same run (jansson's json_loadb of the same
 * ATX bytes alone). */
#include <jansson.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corpus.h"
#include "polegate/adapter.h"
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

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int s_collect(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    (void)pos;
    s_corpus *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        s_msg *m = realloc(c->msgs, cap * sizeof *m);
        if (!m)
            return PG_ENOMEM;
        c->msgs = m;
        c->cap = cap;
    }
    c->msgs[c->n++] = (s_msg){msg, len};
    c->bytes += len;
    return 0;
}

/* ---------------------------------------------------------------- the measured steps */

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

static void s_row(const char *step, const s_corpus *c, const s_result *r)
{
    printf("| %-38s | %8.3f | %10.0f | %8.1f | %12zu |\n", step, r->seconds,
           (double)c->n / r->seconds, (double)c->bytes / 1e6 / r->seconds, r->bytes_out);
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: bench_translate [--records N] [--seed S] [--rounds R] "
               "[--write-corpus FILE]\n"
               "  --records N         messages in the generated ATX corpus (default 100000)\n"
               "  --seed S            corpus seed (default 1)\n"
               "  --rounds R          timed rounds; the best is reported (default 3)\n"
               "  --write-corpus FILE also write the corpus as NDJSON (for polegate "
               "translate)\n");
}

int main(int argc, char **argv)
{
    size_t records = 100000, rounds = 3;
    uint64_t seed = 1;
    const char *write_corpus = NULL;
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
    printf("one core (%s), best of %zu rounds\n\n", pinned ? "pinned to CPU 0" : "not pinned",
           rounds);

    s_result base = {0}, pack = {0}, json = {0};
    for (size_t r = 0; r < rounds; r++) {
        s_result b, p, j;
        if (s_jansson(&c, &b) || s_decode_pack(&pg_adapter_athena, &c, 0, &p) ||
            s_decode_pack(&pg_adapter_athena, &c, 1, &j))
            return 1;
        if (!r || b.seconds < base.seconds)
            base = b;
        if (!r || p.seconds < pack.seconds)
            pack = p;
        if (!r || j.seconds < json.seconds)
            json = j;
    }
    printf("| %-38s | %8s | %10s | %8s | %12s |\n", "step", "seconds", "records/s", "MB/s in",
           "bytes out");
    printf("|%s|%s|%s|%s|%s|\n", "----------------------------------------", "----------",
           "------------", "----------", "--------------");
    s_row("jansson json_loadb alone (baseline)", &c, &base);
    s_row("ATX decode + protobuf pack", &c, &pack);
    s_row("ATX decode + canonical JSON (pbjson)", &c, &json);
    printf("\ncanonical updates: %zu (%.2f per message), protobuf %.0f bytes per update\n",
           pack.updates, (double)pack.updates / (double)c.n,
           (double)pack.bytes_out / (double)pack.updates);
    printf("ratio: ATX decode + protobuf pack takes %.2fx the time of json_loadb alone\n",
           pack.seconds / base.seconds);

    free(c.msgs);
    pg_buf_free(&atx);
    return 0;
}
