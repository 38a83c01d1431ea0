/* Unit tests for gateway/core/wal: framing, torn tails, damage, segments, disk full. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "polegate/error.h"
#include "store.h"
#include "wal.h"

static char s_dir[256];
static char e[PG_ERRSTR_SIZE];

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-test-wal-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static pg_wal *s_open(size_t seg)
{
    pg_wal_opts o = {.segment_size = seg};
    pg_wal *w = pg_wal_open(s_dir, &o, NULL, e, sizeof e);
    ck_assert_msg(w != NULL, "%s", e);
    return w;
}

/* Record i's payload: "rec <i>" and i bytes of filler, so sizes differ. */
static size_t s_payload(uint64_t i, char *out, size_t size)
{
    int n = snprintf(out, size, "rec %" PRIu64 ":", i);
    size_t len = (size_t)n + (size_t)(i % 97);
    ck_assert_uint_lt(len, size);
    memset(out + n, 'a' + (int)(i % 26), len - (size_t)n);
    return len;
}

static void s_append(pg_wal *w, uint64_t want)
{
    char buf[256];
    size_t len = s_payload(want, buf, sizeof buf);
    uint64_t lsn = 0;
    ck_assert_int_eq(pg_wal_append(w, 7, buf, len, &lsn, e, sizeof e), 0);
    ck_assert_uint_eq(lsn, want);
}

typedef struct s_seen {
    uint64_t next; /* the LSN expected next */
    uint64_t count;
} s_seen;

static int s_check_rec(void *arg, uint64_t lsn, uint32_t type, const uint8_t *data, size_t len)
{
    s_seen *s = arg;
    char buf[256];
    size_t want = s_payload(lsn, buf, sizeof buf);
    ck_assert_uint_eq(lsn, s->next);
    ck_assert_uint_eq(type, 7);
    ck_assert_uint_eq(len, want);
    ck_assert(!memcmp(data, buf, len));
    s->next++, s->count++;
    return 0;
}

/* Replay from after and check every record up to last. */
static void s_replay(pg_wal *w, uint64_t after, uint64_t last)
{
    s_seen s = {.next = after + 1};
    ck_assert_msg(pg_wal_replay(w, after, s_check_rec, &s, e, sizeof e) == 0, "%s", e);
    ck_assert_uint_eq(s.next, last + 1);
}

static void s_seg_file(uint64_t first, char *out, size_t size)
{
    snprintf(out, size, "%s/%016" PRIx64 ".seg", s_dir, first);
}

static off_t s_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

static void s_flip(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char c;
    ck_assert_int_eq(pread(fd, &c, 1, off), 1);
    c ^= 0x20;
    ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

/* One writer per log: a second open (a second polegated on the same store directory)
 * is refused while the first holds it, and allowed once it is closed. */
START_TEST(test_one_writer)
{
    pg_wal *w = s_open(0);
    int err = 0;
    ck_assert_ptr_null(pg_wal_open(s_dir, NULL, &err, e, sizeof e));
    ck_assert_int_eq(err, PG_ESTORE);
    ck_assert_msg(strstr(e, "another process is writing it"), "%s", e);
    pg_wal_destroy(&w);
    w = s_open(0);
    pg_wal_destroy(&w);
}
END_TEST

START_TEST(test_round_trip)
{
    pg_wal *w = s_open(0);
    ck_assert(pg_wal_empty(w));
    ck_assert_uint_eq(pg_wal_last_lsn(w), 0);
    for (uint64_t i = 1; i <= 300; i++) {
        s_append(w, i);
        if (i % 7 == 0)
            ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    }
    /* Appended, not synced: not in the log. */
    ck_assert_uint_eq(pg_wal_last_lsn(w), 294);
    s_replay(w, 0, 294);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    ck_assert_uint_eq(pg_wal_last_lsn(w), 300);
    /* Rolled back appends give their LSNs out again. */
    s_append(w, 301);
    pg_wal_rollback(w);
    s_append(w, 301);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    pg_wal_destroy(&w);
    ck_assert_ptr_null(w);

    w = s_open(0);
    ck_assert(!pg_wal_empty(w));
    ck_assert_uint_eq(pg_wal_last_lsn(w), 301);
    s_replay(w, 0, 301);
    s_replay(w, 150, 301);
    s_replay(w, 301, 301);
    s_append(w, 302);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    pg_wal_destroy(&w);

    pg_wal_check_result res;
    ck_assert_msg(pg_wal_check(s_dir, &res, e, sizeof e) == 0, "%s", e);
    ck_assert_uint_eq(res.records, 302);
    ck_assert_uint_eq(res.first_lsn, 1);
    ck_assert_uint_eq(res.last_lsn, 302);
    ck_assert_int_eq(res.torn_tail, 0);
    ck_assert_uint_eq(res.segments, 1);
}
END_TEST

static int s_stop_at_3(void *arg, uint64_t lsn, uint32_t type, const uint8_t *data, size_t len)
{
    (void)arg, (void)type, (void)data, (void)len;
    return lsn == 3 ? 42 : 0;
}

START_TEST(test_replay_stops)
{
    pg_wal *w = s_open(0);
    for (uint64_t i = 1; i <= 5; i++)
        s_append(w, i);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    ck_assert_int_eq(pg_wal_replay(w, 0, s_stop_at_3, NULL, e, sizeof e), 42);
    pg_wal_destroy(&w);
}
END_TEST

/* A crash's tail: the last record cut at every byte, or garbled, is cut off at open;
 * nothing before it is lost, and the log goes on from there. */
START_TEST(test_torn_tail_every_offset)
{
    pg_wal *w = s_open(0);
    for (uint64_t i = 1; i <= 9; i++)
        s_append(w, i);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    char path[512];
    s_seg_file(1, path, sizeof path);
    off_t start = s_size(path);
    s_append(w, 10);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    pg_wal_destroy(&w);
    off_t end = s_size(path);
    ck_assert_int_gt(end, start + 24);
    FILE *f = fopen(path, "rb");
    char *whole = malloc((size_t)end);
    ck_assert_uint_eq(fread(whole, 1, (size_t)end, f), (size_t)end);
    fclose(f);

    for (off_t cut = start; cut <= end; cut++) {
        for (int garble = 0; garble < 2; garble++) {
            if (cut == end && !garble)
                continue; /* whole: not torn */
            f = fopen(path, "wb");
            ck_assert_uint_eq(fwrite(whole, 1, (size_t)end, f), (size_t)end);
            fclose(f);
            if (garble) /* a byte of the last record changed (a torn page), nothing cut */
                s_flip(path, cut == end ? end - 1 : cut);
            else
                ck_assert_int_eq(truncate(path, cut), 0);
            pg_wal_check_result res;
            ck_assert_msg(pg_wal_check(s_dir, &res, e, sizeof e) == 0, "cut %lld: %s",
                          (long long)cut, e);
            ck_assert_int_eq(res.torn_tail, cut != start || garble);
            w = s_open(0);
            ck_assert_uint_eq(pg_wal_last_lsn(w), 9);
            ck_assert_int_eq(s_size(path), start);
            s_replay(w, 0, 9);
            s_append(w, 10);
            ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
            pg_wal_destroy(&w);
            w = s_open(0);
            s_replay(w, 0, 10);
            pg_wal_destroy(&w);
        }
    }
    free(whole);
}
END_TEST

/* A changed byte in the middle of the log is damage: the open fails with the path,
 * the offset and what is wrong, and the check says the same. A bad record followed
 * only by records of the same (last) sync may be a write a power cut tore out of
 * order: refused too, with the command that cuts it off; after it the log opens. */
START_TEST(test_flipped_byte_refused)
{
    pg_wal *w = s_open(0);
    for (uint64_t i = 1; i <= 20; i++) {
        s_append(w, i);
        if (i == 10 || i == 20)
            ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    }
    pg_wal_destroy(&w);
    char path[512];
    s_seg_file(1, path, sizeof path);
    s_flip(path, 16 + 24 + 3); /* the payload of record 1 */
    int err = 0;
    w = pg_wal_open(s_dir, NULL, &err, e, sizeof e);
    ck_assert_ptr_null(w);
    ck_assert_int_eq(err, PG_ECORRUPT);
    ck_assert_msg(strstr(e, path) && strstr(e, "offset 16: checksum mismatch") &&
                      strstr(e, "followed by a valid record (LSN 11) of a later sync at offset"),
                  "%s", e);
    pg_wal_check_result res;
    ck_assert_int_eq(pg_wal_check(s_dir, &res, e, sizeof e), PG_ECORRUPT);
    ck_assert_msg(strstr(e, "offset 16: checksum mismatch"), "%s", e);
    /* Nothing was cut off: the damage is still there to be looked at. */
    ck_assert_int_eq(pg_wal_open(s_dir, NULL, &err, e, sizeof e) == NULL, 1);

    /* Record 12, in the last sync, damaged instead. */
    s_flip(path, 16 + 24 + 3);
    off_t off = 16;
    for (uint64_t i = 1; i < 12; i++) {
        char buf[256];
        off += 24 + (off_t)s_payload(i, buf, sizeof buf);
    }
    s_flip(path, off + 24 + 2);
    ck_assert_ptr_null(pg_wal_open(s_dir, NULL, &err, e, sizeof e));
    char want[1400];
    snprintf(want, sizeof want,
             "followed by a valid record (LSN 13) of the same sync at offset %lld: the last "
             "sync (from LSN 11) is torn or damaged. If the machine lost power, it was most "
             "likely never acknowledged (its senders send it again): cut it off with "
             "`truncate -s %lld %s` and start again",
             (long long)(off + 24 + (off_t)s_payload(12, (char[256]){0}, 256)), (long long)off,
             path);
    ck_assert_msg(strstr(e, want), "%s\nwanted: %s", e, want);
    ck_assert_int_eq(truncate(path, off), 0);
    w = s_open(0);
    ck_assert_uint_eq(pg_wal_last_lsn(w), 11);
    s_replay(w, 0, 11);
    pg_wal_destroy(&w);
}
END_TEST

/* Segments roll over, continue across reopening, are released whole (never the one
 * being written), and a missing one is a gap. */
START_TEST(test_segments_release_and_gap)
{
    pg_wal *w = s_open(400);
    for (uint64_t i = 1; i <= 60; i++) {
        s_append(w, i);
        if (i % 3 == 0)
            ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    }
    pg_wal_destroy(&w);
    pg_wal_check_result res;
    ck_assert_int_eq(pg_wal_check(s_dir, &res, e, sizeof e), 0);
    ck_assert_uint_gt(res.segments, 5);
    ck_assert_uint_eq(res.records, 60);
    unsigned long long segs = res.segments;

    w = s_open(400);
    s_replay(w, 0, 60);
    s_replay(w, 31, 60);
    /* Release up to 30: every segment whose records are all <= 30 goes. */
    ck_assert_int_eq(pg_wal_release(w, 30, e, sizeof e), 0);
    ck_assert_int_eq(pg_wal_check(s_dir, &res, e, sizeof e), 0);
    ck_assert_uint_lt(res.segments, segs);
    ck_assert_uint_le(res.first_lsn, 31);
    ck_assert_uint_gt(res.first_lsn, 20);
    s_replay(w, 30, 60);
    /* Everything released: the segment being written stays, and so the last LSN. */
    ck_assert_int_eq(pg_wal_release(w, 60, e, sizeof e), 0);
    ck_assert_int_eq(pg_wal_check(s_dir, &res, e, sizeof e), 0);
    ck_assert_uint_eq(res.segments, 1);
    ck_assert_uint_eq(res.last_lsn, 60);
    pg_wal_destroy(&w);
    w = s_open(400);
    ck_assert_uint_eq(pg_wal_last_lsn(w), 60);
    for (uint64_t i = 61; i <= 90; i++) {
        s_append(w, i);
        ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    }
    pg_wal_destroy(&w);
    w = s_open(400);
    s_replay(w, 60, 90);
    pg_wal_destroy(&w);

    /* A segment in the middle removed: a gap, refused. */
    ck_assert_int_eq(pg_wal_check(s_dir, &res, e, sizeof e), 0);
    ck_assert_uint_gt(res.segments, 3);
    w = s_open(400);
    uint64_t victim = 0;
    for (uint64_t l = 70; l < 90 && !victim; l++) {
        char p[512];
        s_seg_file(l, p, sizeof p);
        if (!access(p, F_OK) && l > res.first_lsn)
            victim = l;
    }
    pg_wal_destroy(&w);
    ck_assert_uint_gt(victim, 0);
    char p[512];
    s_seg_file(victim, p, sizeof p);
    ck_assert_int_eq(unlink(p), 0);
    int err = 0;
    ck_assert_ptr_null(pg_wal_open(s_dir, NULL, &err, e, sizeof e));
    ck_assert_int_eq(err, PG_ECORRUPT);
    ck_assert_msg(strstr(e, "where LSN") && strstr(e, "a gap"), "%s", e);
}
END_TEST

START_TEST(test_start_after)
{
    pg_wal *w = s_open(0);
    ck_assert_int_eq(pg_wal_start_after(w, 1000, e, sizeof e), 0);
    ck_assert_uint_eq(pg_wal_last_lsn(w), 1000);
    s_append(w, 1001);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    ck_assert_int_eq(pg_wal_start_after(w, 5, e, sizeof e), PG_EUSAGE);
    pg_wal_destroy(&w);
    w = s_open(0);
    ck_assert_uint_eq(pg_wal_last_lsn(w), 1001);
    s_replay(w, 1000, 1001);
    pg_wal_destroy(&w);
}
END_TEST

/* A full disk: one reason, nothing of the failed sync stays (the file is cut back,
 * the LSNs given out again), and the next sync works. Also for a new segment. */
START_TEST(test_disk_full)
{
    pg_wal *w = s_open(600);
    for (uint64_t i = 1; i <= 3; i++)
        s_append(w, i);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    char path[512];
    s_seg_file(1, path, sizeof path);
    off_t size = s_size(path);
    s_append(w, 4);
    pg_wal_test_inject(w, ENOSPC, 1);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), PG_EDISKFULL);
    ck_assert_msg(strstr(e, "disk full: the filesystem of write-ahead log ") &&
                      strstr(e, "nothing was written"),
                  "%s", e);
    ck_assert_int_eq(s_size(path), size);
    ck_assert_uint_eq(pg_wal_last_lsn(w), 3);
    s_append(w, 4);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    /* A plain I/O error is not called a full disk. */
    s_append(w, 5);
    pg_wal_test_inject(w, EBADF, 1);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), PG_EIO);
    ck_assert_ptr_null(strstr(e, "disk full"));
    /* The sync that would begin a new segment fails: no segment is left behind. */
    for (uint64_t i = 5; i <= 30; i++)
        s_append(w, i);
    pg_wal_test_inject(w, ENOSPC, 1);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), PG_EDISKFULL);
    char p5[512];
    s_seg_file(5, p5, sizeof p5);
    ck_assert_int_ne(access(p5, F_OK), 0);
    for (uint64_t i = 5; i <= 30; i++)
        s_append(w, i);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    ck_assert_int_eq(access(p5, F_OK), 0);
    pg_wal_destroy(&w);
    w = s_open(600);
    s_replay(w, 0, 30);
    pg_wal_destroy(&w);
}
END_TEST

START_TEST(test_check_missing_dir)
{
    pg_wal_check_result res;
    char p[512];
    snprintf(p, sizeof p, "%s/none", s_dir);
    ck_assert_int_eq(pg_wal_check(p, &res, e, sizeof e), PG_ENOTFOUND);
}
END_TEST

/* `polegate store check DIR` verifies the log in DIR/wal beside the store. */
START_TEST(test_store_check_cli)
{
    pg_store *st = pg_store_new(s_dir, 0, e, sizeof e);
    ck_assert_msg(st != NULL, "%s", e);
    pg_store_destroy(&st);
    char wal[300];
    snprintf(wal, sizeof wal, "%s/" PG_WAL_SUBDIR, s_dir);
    pg_wal *w = pg_wal_open(wal, NULL, NULL, e, sizeof e);
    ck_assert_ptr_nonnull(w);
    for (uint64_t i = 1; i <= 3; i++)
        s_append(w, i);
    ck_assert_int_eq(pg_wal_sync(w, e, sizeof e), 0);
    pg_wal_destroy(&w);
    char cmd[600], out[4096];
    snprintf(cmd, sizeof cmd, "%s store check %s 2>&1", PG_POLEGATE, s_dir);
    for (int damaged = 0; damaged < 2; damaged++) {
        FILE *p = popen(cmd, "r");
        ck_assert_ptr_nonnull(p);
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = 0;
        int status = pclose(p);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), damaged);
        if (!damaged) {
            ck_assert_msg(strstr(out, "/wal: ok, 1 segments, 3 records (LSN 1-3)"), "%s", out);
            char seg[512];
            snprintf(seg, sizeof seg, "%s/%016x.seg", wal, 1);
            s_flip(seg, 16 + 24 + 1);
        } else {
            ck_assert_msg(strstr(out, "/wal: DAMAGED: write-ahead log damaged: ") &&
                              strstr(out, "offset 16: checksum mismatch"),
                          "%s", out);
        }
    }
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("wal");
    TCase *tc = tcase_create("wal");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_one_writer);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_replay_stops);
    tcase_add_test(tc, test_torn_tail_every_offset);
    tcase_add_test(tc, test_flipped_byte_refused);
    tcase_add_test(tc, test_segments_release_and_gap);
    tcase_add_test(tc, test_start_after);
    tcase_add_test(tc, test_disk_full);
    tcase_add_test(tc, test_check_missing_dir);
    tcase_add_test(tc, test_store_check_cli);
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
