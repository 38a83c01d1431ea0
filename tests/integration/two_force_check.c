/* two_force_check: what an RMS stand-in stored (`polegate receive --out DIR`), applied to
 * an in-memory model of that RMS, against the state expected from sample files: ids
 * aside, as tests/rms_model.h compares. Used by two_force.py. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/adapter.h"
#include "polegate/error.h"
#include "rms_model.h"

static const char s_usage[] =
    "usage: two_force_check --format atx|nx5 --dir DIR [--expect-format atx|nx5]\n"
    "                       [--expect FILE]... [--no-repeats] [--quiet]\n"
    "Applies DIR's files in name order to a model of the --format RMS, then compares it\n"
    "with a model of --expect-format (default: --format) to which every --expect file\n"
    "was applied in order. --no-repeats: fail when the RMS model saw a duplicate\n"
    "message or a stale revision (something applied twice). Exit 0 equal, 1 different,\n"
    "2 usage or input error. Prints the counts, then each difference.\n";

static int s_apply_dir(pg_rms_model *m, const char *dir, size_t *files)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        perror(dir);
        return 2;
    }
    int rc = 0;
    char e[PG_ERRSTR_SIZE];
    for (int i = 0; i < n; i++) {
        if (!rc && names[i]->d_name[0] != '.') {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            if (pg_rms_model_apply_file(m, path, e, sizeof e)) {
                fprintf(stderr, "two_force_check: %s: %s\n", path, e);
                rc = 2;
            }
            (*files)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    const char *format = NULL, *expect_format = NULL, *dir = NULL;
    const char *expect[16];
    int n_expect = 0, no_repeats = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-repeats")) {
            no_repeats = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (v && !strcmp(a, "--format")) {
            format = argv[++i];
        } else if (v && !strcmp(a, "--expect-format")) {
            expect_format = argv[++i];
        } else if (v && !strcmp(a, "--dir")) {
            dir = argv[++i];
        } else if (v && !strcmp(a, "--expect") && n_expect < 16) {
            expect[n_expect++] = argv[++i];
        } else {
            fputs(s_usage, stderr);
            return 2;
        }
    }
    const pg_adapter_ops *ad = format ? pg_adapter_find(format) : NULL;
    const pg_adapter_ops *ex = pg_adapter_find(expect_format ? expect_format
                                               : format      ? format
                                                             : "");
    if (!ad || !ex || !dir) {
        fputs(s_usage, stderr);
        return 2;
    }
    pg_rms_model *got = pg_rms_model_new(ad), *want = pg_rms_model_new(ex);
    size_t files = 0;
    int rc = s_apply_dir(got, dir, &files);
    char e[PG_ERRSTR_SIZE];
    for (int i = 0; !rc && i < n_expect; i++)
        if (pg_rms_model_apply_file(want, expect[i], e, sizeof e)) {
            fprintf(stderr, "two_force_check: %s: %s\n", expect[i], e);
            rc = 2;
        }
    if (!rc) {
        pg_buf diff = PG_BUF_INIT;
        pg_rms_compare_opts opts = {.target = ad->format};
        size_t n = pg_rms_model_compare(want, got, &opts, &diff);
        printf("two_force_check: %s RMS: %zu messages, %zu records, %zu links, %zu duplicates, "
               "%zu stale; expected %zu records, %zu links; %zu differences\n",
               ad->format, files, pg_rms_model_records(got), pg_rms_model_links(got),
               pg_rms_model_duplicates(got), pg_rms_model_stale(got), pg_rms_model_records(want),
               pg_rms_model_links(want), n);
        if (n && !quiet)
            fwrite(diff.data, 1, diff.len, stdout);
        rc = n ? 1 : 0;
        if (no_repeats && (pg_rms_model_duplicates(got) || pg_rms_model_stale(got))) {
            printf("two_force_check: something was applied twice\n");
            rc = 1;
        }
        if (!quiet && getenv("TWO_FORCE_DUMP"))
            pg_rms_model_dump(got, stdout);
        pg_buf_free(&diff);
    }
    pg_rms_model_destroy(&got);
    pg_rms_model_destroy(&want);
    return rc;
}
