/* tests/disk_fault.h: a disk that fails when a test says so, for the audit log's
 * pg_audit_options.write_fn and sync_fn (fail-closed tests of the audit log and its
 * callers). */
#ifndef POLEGATE_TESTS_DISK_FAULT_H
#define POLEGATE_TESTS_DISK_FAULT_H

#include <errno.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>

/* 0 fine; 1 full (ENOSPC); 2 full after half of the next write; 3 a directory cannot
 * be synced (EIO), files can. */
static int s_disk_fault;

static inline long s_disk_fault_write(int fd, const void *buf, size_t len)
{
    if (s_disk_fault == 1) {
        errno = ENOSPC;
        return -1;
    }
    if (s_disk_fault == 2) {
        s_disk_fault = 1;
        return (long)write(fd, buf, len / 2);
    }
    return (long)write(fd, buf, len);
}

static inline int s_disk_fault_sync(int fd)
{
    struct stat st;
    int dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    if (s_disk_fault == 3 && dir) {
        errno = EIO;
        return -1;
    }
    return dir ? fsync(fd) : fdatasync(fd);
}

#endif
