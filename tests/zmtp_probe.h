/* zmtp_probe: a peer that speaks just enough ZMTP 3.0 (RFC 23) to announce a frame far
 * larger than any a polegate socket takes, for the tests of that bound. Header only:
 * each test program that includes it gets its own copy. */
#ifndef POLEGATE_TESTS_ZMTP_PROBE_H
#define POLEGATE_TESTS_ZMTP_PROBE_H

#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

/* On connected fd: a NULL-mechanism greeting (as_server 0 or 1), the header of a
 * command frame of size bytes, then 1 MiB of it as far as the peer takes it. 0, or -1
 * when the greeting or header could not be written. */
static int zmtp_announce_frame(int fd, int as_server, uint64_t size)
{
    uint8_t greeting[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    greeting[32] = (uint8_t)as_server;
    uint8_t header[9] = {0x06}; /* a command frame, 8-byte size */
    for (int i = 0; i < 8; i++)
        header[1 + i] = (uint8_t)(size >> (56 - 8 * i));
    if (write(fd, greeting, sizeof greeting) != (ssize_t)sizeof greeting ||
        write(fd, header, sizeof header) != (ssize_t)sizeof header)
        return -1;
    static uint8_t chunk[65536];
    for (int i = 0; i < 16; i++)
        if (send(fd, chunk, sizeof chunk, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            break;
    return 0;
}

/* Did the peer close fd within ms (its greeting read and dropped on the way)? tick (may
 * be NULL) runs every 50 ms, for a peer served by the caller's thread. */
static int zmtp_closed_within(int fd, int ms, void (*tick)(void *), void *arg)
{
    for (int waited = 0; waited < ms; waited += 50) {
        if (tick)
            tick(arg);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            uint8_t buf[256];
            if (read(fd, buf, sizeof buf) <= 0)
                return 1;
        }
    }
    return 0;
}

#endif
