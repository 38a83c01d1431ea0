/* tests/disk_fault.h: a disk that fails when a test says so, for the audit log's
 * pg_audit_options.write_fn (fail-closed tests of the audit log and its callers). */
#ifndef POLEGATE_TESTS_DISK_FAULT_H
#define POLEGATE_TESTS_DISK_FAULT_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

/* 0 fine; 1 full (ENOSPC); 2 full after half of the next write. */
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

#endif
