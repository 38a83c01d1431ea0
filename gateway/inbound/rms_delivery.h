/* pg_rms_delivery: hands native messages to the local RMS (ZeroMQ with a per-message ack,
 * or a drop directory) and reports, in submission order, which ones it has stored. */
#ifndef POLEGATE_GATEWAY_RMS_DELIVERY_H
#define POLEGATE_GATEWAY_RMS_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/buf.h"

/* The outcome of one submitted message. Results are reported in submission order,
 * so a result for seq N means every message before N has its result too: a caller
 * may commit its Kafka offsets up to the record behind N. */
typedef struct pg_rms_delivery_result {
    uint64_t seq;       /* as returned by pg_rms_delivery_submit */
    const char *id;     /* the correlation id the RMS saw; borrowed for the callback */
    void *tag;          /* what the caller gave to submit */
    int status;         /* 0 stored; PG_EINVALID rejected by the RMS (permanent) */
    const char *reason; /* rejected: the RMS's reason; borrowed for the callback */
    unsigned attempts;  /* how many times it was sent (1 unless retried) */
} pg_rms_delivery_result;

typedef void (*pg_rms_delivery_result_fn)(void *arg, const pg_rms_delivery_result *result);

typedef struct pg_rms_delivery_config {
    /* "zmq" (a DEALER connecting to `endpoint`, e.g. "tcp://127.0.0.1:5601") or
     * "dir" (`endpoint` is the drop directory). */
    const char *transport;
    const char *endpoint;
    /* Messages sent and not yet stored, at most (0: 64). A full window makes
     * pg_rms_delivery_submit return PG_ERETRY: that is the backpressure. */
    size_t window;
    /* zmq: wait this long for an ack before sending again (0: 5000 ms); every
     * further timeout of the same message doubles the wait, up to retry_max_ms
     * (0: 60000 ms). A down RMS is retried for ever: nothing is dropped. */
    int ack_timeout_ms;
    int retry_max_ms;
    /* zmq: a context to share (needed for inproc:// endpoints); NULL: own one. */
    void *zmq_ctx;
    /* zmq, CURVE (docs/security.md): our secret key and the RMS import endpoint's
     * public key, both Z85; only a server holding that key is talked to. Empty: plain
     * text, refused unless the endpoint is local. */
    char curve_secret[41];
    char curve_server_key[41];
    /* dir: file names are "<prefix>-<20-digit sequence>.<extension>"
     * (0: "pg", "msg"); see docs/delivery.md. */
    const char *prefix;
    const char *extension;
    /* dir: the mode of every delivered file (0: 0640); they hold person records. */
    unsigned file_mode;
    /* Called from pg_rms_delivery_poll for each result, in submission order. */
    pg_rms_delivery_result_fn on_result;
    void *on_result_arg;
} pg_rms_delivery_config;

typedef struct pg_rms_delivery pg_rms_delivery;

/* One transport behind the pg_rms_delivery interface. `state` is the transport's own
 * object; the generic layer keeps the window, the order of results and the
 * retries' timing. */
typedef struct pg_rms_delivery_ops {
    const char *name; /* "zmq", "dir" */
    /* Create the transport state in *state. 0, or negative with errstr. */
    int (*open)(pg_rms_delivery *self, void **state, char *errstr, size_t errstr_size);
    void (*close)(void *state);
    /* Send (or store) one message: 0 done (dir: stored, zmq: handed to the socket),
     * PG_ERETRY not now (no RMS connected), other negative with errstr: failed,
     * nothing stored. */
    int (*send)(void *state, const char *id, const uint8_t *msg, size_t len, char *errstr,
                size_t errstr_size);
    /* Wait up to timeout_ms for one ack and fill id/status/reason. 1 when an ack
     * was read, 0 when none came, negative on error. Transports that store
     * synchronously (dir) have no acks and set this to NULL. */
    int (*recv_ack)(void *state, int timeout_ms, char *id, size_t idsize, int *status, char *reason,
                    size_t reason_size);
} pg_rms_delivery_ops;

extern const pg_rms_delivery_ops pg_rms_delivery_zmq;
extern const pg_rms_delivery_ops pg_rms_delivery_dir;

/* A new delivery per cfg (copied; strings too). NULL with errstr when the transport
 * is unknown or cannot be opened (dir: not a writable directory). */
pg_rms_delivery *pg_rms_delivery_new(const pg_rms_delivery_config *cfg, char *errstr,
                                     size_t errstr_size);
/* Close the transport and free everything; unreported messages are forgotten (the
 * caller has not committed them, so they come again). Sets *p to NULL. */
void pg_rms_delivery_destroy(pg_rms_delivery **p);
/* The configuration in force, with defaults filled in. Borrowed. */
const pg_rms_delivery_config *pg_rms_delivery_config_of(const pg_rms_delivery *self);

/* Submit msg[0..len) (copied). `id` is the correlation id the RMS sees (1-128
 * printable ASCII bytes, unique per message and the same when the caller submits
 * the same message again after a restart, e.g. "<topic>/<partition>/<offset>");
 * NULL: "<random instance id>-<seq>". `tag` comes back in the result. *seq (may
 * be NULL) gets the message's sequence number.
 * 0 accepted; PG_ERETRY window full (poll, then submit again: nothing was taken);
 * PG_EINVALID bad id; PG_EIO (dir) could not be written, nothing stored. */
int pg_rms_delivery_submit(pg_rms_delivery *self, const char *id, const uint8_t *msg, size_t len,
                           void *tag, uint64_t *seq, char *errstr, size_t errstr_size);
/* Drive the transport for up to timeout_ms: send what waits, read acks, resend what
 * timed out, and report results in order through cfg->on_result. Returns as soon as
 * at least one result was reported (or at once when there is nothing in flight).
 * The number of results reported, or negative with errstr. */
int pg_rms_delivery_poll(pg_rms_delivery *self, int timeout_ms, char *errstr, size_t errstr_size);
/* Messages submitted whose results have not been reported. */
size_t pg_rms_delivery_in_flight(const pg_rms_delivery *self);
/* Poll until nothing is in flight: 0, or PG_ETIMEOUT after timeout_ms (-1: no
 * limit), or another negative error. */
int pg_rms_delivery_flush(pg_rms_delivery *self, int timeout_ms, char *errstr, size_t errstr_size);

/* Parse an RMS ack (`{"status":"stored"}` or `{"status":"rejected","reason":"..."}`)
 * into *status: 0 stored, PG_EINVALID rejected (reason copied). 0, or PG_EINVALID
 * with errstr when the ack is not valid. Used by the RMS stand-in and its tests. */
int pg_rms_delivery_ack_parse(const uint8_t *data, size_t len, int *status, char *reason,
                              size_t reason_size, char *errstr, size_t errstr_size);
/* Append the ack for status 0 (stored) or PG_EINVALID (rejected, with reason) to
 * out. 0 or PG_ENOMEM. */
int pg_rms_delivery_ack_format(int status, const char *reason, pg_buf *out);

#endif
