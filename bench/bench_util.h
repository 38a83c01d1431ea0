/* bench_util: the clock and the clean-up the benchmarks share (header only, since
 * bench_e2e links none of polegate's libraries). */
#ifndef POLEGATE_BENCH_UTIL_H
#define POLEGATE_BENCH_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <time.h>

/* Wall-clock seconds from an arbitrary start (CLOCK_MONOTONIC). */
static inline double pg_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this thread, not wall time: on a shared machine (CI, a developer's box
 * with builds running) the thread waiting for a core would count as slowness. */
static inline double pg_bench_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int pg_bench__rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Remove dir and everything under it, best effort (a benchmark's scratch store). */
static inline void pg_bench_rmtree(const char *dir)
{
    nftw(dir, pg_bench__rm, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
