/* Delivery to the local RMS: a bounded window, results in submission order and
 * retries with backoff, over ZeroMQ (per-message acks) or a drop directory. */
#include "rms_delivery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>
#include <zmq.h>

#include "curve.h"
#include "polegate/error.h"
#include "polegate/json.h"
#include "polegate/timeutil.h"

#define S_ID_MAX 128
#define S_DEFAULT_WINDOW 64
#define S_DEFAULT_ACK_TIMEOUT_MS 5000
#define S_DEFAULT_RETRY_MAX_MS 60000
/* While no RMS is connected, try to send again after this long, doubling up to
 * S_SEND_RETRY_MAX_MS: a returning RMS is noticed within a second. */
#define S_SEND_RETRY_MIN_MS 10
#define S_SEND_RETRY_MAX_MS 1000

typedef enum s_state {
    S_WAITING = 0, /* to be sent (first time, or again after a timeout) */
    S_SENT,        /* handed to the transport, no ack yet */
    S_DONE,        /* acked (stored or rejected); waiting to be reported in order */
} s_state;

typedef struct s_entry {
    uint64_t seq;
    char id[S_ID_MAX + 1];
    uint8_t *msg;
    size_t len;
    void *tag;
    s_state state;
    int status;
    char *reason;
    unsigned attempts;
    int64_t deadline; /* S_SENT: monotonic ms after which it is sent again */
    int timeout;      /* ms to wait for this message's next ack */
} s_entry;

struct pg_rms_delivery {
    pg_rms_delivery_config cfg;
    char *transport, *endpoint, *prefix, *extension; /* owned copies behind cfg */
    const pg_rms_delivery_ops *ops;
    void *state;
    s_entry *ring;
    size_t cap, head, count;
    uint64_t next_seq;
    char instance[37];
    int64_t send_retry_at;
    int send_retry_wait;
};

static const pg_rms_delivery_ops *const s_transports[] = {&pg_rms_delivery_zmq,
                                                          &pg_rms_delivery_dir};

static s_entry *s_at(pg_rms_delivery *self, size_t i)
{
    return &self->ring[(self->head + i) % self->cap];
}

/* ------------------------------------------------------------ generic layer */

const pg_rms_delivery_config *pg_rms_delivery_config_of(const pg_rms_delivery *self)
{
    return &self->cfg;
}

static char *s_strdup_or(const char *s, const char *dflt, int *failed)
{
    const char *v = s ? s : dflt;
    if (!v)
        return NULL;
    char *copy = strdup(v);
    if (!copy)
        *failed = 1;
    return copy;
}

pg_rms_delivery *pg_rms_delivery_new(const pg_rms_delivery_config *cfg, char *errstr,
                                     size_t errstr_size)
{
    if (!cfg || !cfg->transport || !cfg->endpoint) {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "delivery: transport and endpoint are required");
        return NULL;
    }
    const pg_rms_delivery_ops *ops = NULL;
    for (size_t i = 0; i < sizeof s_transports / sizeof s_transports[0]; i++)
        if (!strcmp(s_transports[i]->name, cfg->transport))
            ops = s_transports[i];
    if (!ops) {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "delivery.transport: '%s' is not one of zmq, dir",
                cfg->transport);
        return NULL;
    }
    if (cfg->ack_timeout_ms < 0 || cfg->retry_max_ms < 0) {
        pg_errf(PG_ECONFIG, errstr, errstr_size, "delivery: timeouts must not be negative");
        return NULL;
    }
    pg_rms_delivery *self = calloc(1, sizeof(*self));
    if (!self)
        goto nomem;
    self->cfg = *cfg;
    self->ops = ops;
    int failed = 0;
    self->transport = s_strdup_or(cfg->transport, NULL, &failed);
    self->endpoint = s_strdup_or(cfg->endpoint, NULL, &failed);
    self->prefix = s_strdup_or(cfg->prefix, "pg", &failed);
    self->extension = s_strdup_or(cfg->extension, "msg", &failed);
    if (failed)
        goto nomem;
    self->cfg.transport = self->transport;
    self->cfg.endpoint = self->endpoint;
    self->cfg.prefix = self->prefix;
    self->cfg.extension = self->extension;
    if (!self->cfg.window)
        self->cfg.window = S_DEFAULT_WINDOW;
    if (!self->cfg.ack_timeout_ms)
        self->cfg.ack_timeout_ms = S_DEFAULT_ACK_TIMEOUT_MS;
    if (!self->cfg.retry_max_ms)
        self->cfg.retry_max_ms = S_DEFAULT_RETRY_MAX_MS;
    if (self->cfg.retry_max_ms < self->cfg.ack_timeout_ms)
        self->cfg.retry_max_ms = self->cfg.ack_timeout_ms;
    self->cap = self->cfg.window;
    self->ring = calloc(self->cap, sizeof(*self->ring));
    if (!self->ring)
        goto nomem;
    self->next_seq = 1;
    self->send_retry_wait = S_SEND_RETRY_MIN_MS;
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, self->instance);
    if (ops->open(self, &self->state, errstr, errstr_size) < 0) {
        self->state = NULL;
        pg_rms_delivery_destroy(&self);
        return NULL;
    }
    return self;
nomem:
    pg_errf(PG_ENOMEM, errstr, errstr_size, "delivery: out of memory");
    pg_rms_delivery_destroy(&self);
    return NULL;
}

static void s_entry_clear(s_entry *e)
{
    free(e->msg);
    free(e->reason);
    memset(e, 0, sizeof(*e));
}

void pg_rms_delivery_destroy(pg_rms_delivery **p)
{
    if (!p || !*p)
        return;
    pg_rms_delivery *self = *p;
    if (self->state)
        self->ops->close(self->state);
    if (self->ring)
        for (size_t i = 0; i < self->count; i++)
            s_entry_clear(s_at(self, i));
    free(self->ring);
    free(self->transport);
    free(self->endpoint);
    free(self->prefix);
    free(self->extension);
    free(self);
    *p = NULL;
}

size_t pg_rms_delivery_in_flight(const pg_rms_delivery *self)
{
    return self->count;
}

static int s_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n < 1 || n > S_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7e)
            return 0;
    return 1;
}

/* Send every waiting message in order, stopping at the first the transport cannot
 * take now: a later message never overtakes an earlier one. */
static int s_pump(pg_rms_delivery *self, char *errstr, size_t errstr_size)
{
    int64_t now = pg_time_mono_ms();
    if (now < self->send_retry_at)
        return 0;
    for (size_t i = 0; i < self->count; i++) {
        s_entry *e = s_at(self, i);
        if (e->state != S_WAITING)
            continue;
        int rc = self->ops->send(self->state, e->id, e->msg, e->len, errstr, errstr_size);
        if (rc == PG_ERETRY) {
            self->send_retry_at = now + self->send_retry_wait;
            self->send_retry_wait = self->send_retry_wait * 2 > S_SEND_RETRY_MAX_MS
                                        ? S_SEND_RETRY_MAX_MS
                                        : self->send_retry_wait * 2;
            return 0;
        }
        if (rc < 0)
            return rc;
        e->state = S_SENT;
        e->attempts++;
        e->deadline = now + e->timeout;
        self->send_retry_wait = S_SEND_RETRY_MIN_MS;
    }
    return 0;
}

/* When the oldest unacked message has waited too long, the RMS (or the connection)
 * may have lost it and anything sent after it: send every unacked message again,
 * in order, and wait twice as long for each. The RMS recognises repeats by their
 * correlation id. */
static void s_check_timeouts(pg_rms_delivery *self)
{
    int64_t now = pg_time_mono_ms();
    int expired = 0;
    for (size_t i = 0; i < self->count && !expired; i++) {
        s_entry *e = s_at(self, i);
        if (e->state == S_SENT && e->deadline <= now)
            expired = 1;
    }
    if (!expired)
        return;
    for (size_t i = 0; i < self->count; i++) {
        s_entry *e = s_at(self, i);
        if (e->state != S_SENT)
            continue;
        e->state = S_WAITING;
        e->timeout =
            e->timeout > self->cfg.retry_max_ms / 2 ? self->cfg.retry_max_ms : e->timeout * 2;
    }
}

static void s_on_ack(pg_rms_delivery *self, const char *id, int status, const char *reason)
{
    for (size_t i = 0; i < self->count; i++) {
        s_entry *e = s_at(self, i);
        if (e->state == S_DONE || strcmp(e->id, id) != 0)
            continue;
        e->state = S_DONE;
        e->status = status;
        if (status < 0)
            e->reason = strdup(reason && *reason ? reason : "rejected by the RMS");
        return;
    }
    /* An ack for a message already reported (a repeat was acked twice): nothing
     * to do. */
}

static int s_report(pg_rms_delivery *self)
{
    int n = 0;
    while (self->count > 0) {
        s_entry *e = s_at(self, 0);
        if (e->state != S_DONE)
            break;
        pg_rms_delivery_result r = {
            .seq = e->seq,
            .id = e->id,
            .tag = e->tag,
            .status = e->status,
            .reason = e->status < 0 ? (e->reason ? e->reason : "rejected by the RMS") : NULL,
            .attempts = e->attempts,
        };
        if (self->cfg.on_result)
            self->cfg.on_result(self->cfg.on_result_arg, &r);
        s_entry_clear(e);
        self->head = (self->head + 1) % self->cap;
        self->count--;
        n++;
    }
    return n;
}

int pg_rms_delivery_submit(pg_rms_delivery *self, const char *id, const uint8_t *msg, size_t len,
                           void *tag, uint64_t *seq, char *errstr, size_t errstr_size)
{
    if (self->count == self->cap)
        return pg_errf(PG_ERETRY, errstr, errstr_size,
                       "delivery: window full (%zu messages await the RMS)", self->count);
    if (id && !s_id_valid(id))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "delivery: correlation id must be 1-%d printable ASCII characters",
                       S_ID_MAX);
    s_entry *e = &self->ring[(self->head + self->count) % self->cap];
    memset(e, 0, sizeof(*e));
    e->seq = self->next_seq;
    if (id)
        snprintf(e->id, sizeof e->id, "%s", id);
    else
        snprintf(e->id, sizeof e->id, "%s-%llu", self->instance, (unsigned long long)e->seq);
    e->tag = tag;
    e->timeout = self->cfg.ack_timeout_ms;
    if (!self->ops->recv_ack) {
        /* Stored synchronously (drop directory): done once send returns. */
        int rc = self->ops->send(self->state, e->id, msg, len, errstr, errstr_size);
        if (rc < 0) {
            memset(e, 0, sizeof(*e));
            return rc;
        }
        e->state = S_DONE;
        e->attempts = 1;
    } else {
        e->msg = malloc(len ? len : 1);
        if (!e->msg)
            return pg_errf(PG_ENOMEM, errstr, errstr_size, "delivery: out of memory");
        if (len)
            memcpy(e->msg, msg, len);
        e->len = len;
        e->state = S_WAITING;
    }
    self->count++;
    self->next_seq++;
    if (seq)
        *seq = e->seq;
    /* Errors of the transport surface in poll; the message is accepted. */
    char ignored[PG_ERRSTR_SIZE];
    (void)s_pump(self, ignored, sizeof ignored);
    return 0;
}

/* How long poll may sleep waiting for an ack before it has work again. */
static int s_wait_ms(pg_rms_delivery *self, int64_t now, int64_t end)
{
    int64_t wait = end < 0 ? INT_MAX : end - now;
    for (size_t i = 0; i < self->count; i++) {
        s_entry *e = s_at(self, i);
        if (e->state == S_SENT && e->deadline - now < wait)
            wait = e->deadline - now;
        if (e->state == S_WAITING && self->send_retry_at - now < wait)
            wait = self->send_retry_at - now;
    }
    if (wait < 0)
        wait = 0;
    return wait > INT_MAX ? INT_MAX : (int)wait;
}

int pg_rms_delivery_poll(pg_rms_delivery *self, int timeout_ms, char *errstr, size_t errstr_size)
{
    int64_t end = timeout_ms < 0 ? -1 : pg_time_mono_ms() + timeout_ms;
    char reason[PG_ERRSTR_SIZE];
    char id[S_ID_MAX + 1];
    for (;;) {
        s_check_timeouts(self);
        int rc = s_pump(self, errstr, errstr_size);
        if (rc < 0)
            return rc;
        int reported = s_report(self);
        if (reported || self->count == 0 || !self->ops->recv_ack)
            return reported;
        int64_t now = pg_time_mono_ms();
        if (end >= 0 && now >= end)
            return 0;
        int wait = s_wait_ms(self, now, end);
        int status = 0;
        rc = self->ops->recv_ack(self->state, wait, id, sizeof id, &status, reason, sizeof reason);
        while (rc == 1) {
            s_on_ack(self, id, status, reason);
            rc = self->ops->recv_ack(self->state, 0, id, sizeof id, &status, reason, sizeof reason);
        }
        if (rc < 0)
            return pg_errf(rc, errstr, errstr_size, "delivery: %s", reason);
    }
}

int pg_rms_delivery_flush(pg_rms_delivery *self, int timeout_ms, char *errstr, size_t errstr_size)
{
    int64_t end = timeout_ms < 0 ? -1 : pg_time_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = end < 0 ? -1 : end - pg_time_mono_ms();
        if (end >= 0 && left < 0)
            left = 0;
        int rc =
            pg_rms_delivery_poll(self, left > INT_MAX ? INT_MAX : (int)left, errstr, errstr_size);
        if (rc < 0)
            return rc;
        if (self->count == 0)
            return 0;
        if (end >= 0 && pg_time_mono_ms() >= end)
            return pg_errf(PG_ETIMEOUT, errstr, errstr_size,
                           "delivery: %zu messages still await the RMS", self->count);
    }
}

/* ------------------------------------------------------------ the ack */

int pg_rms_delivery_ack_parse(const uint8_t *data, size_t len, int *status, char *reason,
                              size_t reason_size, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        pg_errstr_unquote(jerr.text);
        return pg_errf(PG_EINVALID, errstr, errstr_size, "ack: not JSON: %s", jerr.text);
    }
    int rc = 0;
    json_t *st = json_object_get(root, "status");
    json_t *why = json_object_get(root, "reason");
    if (!json_is_object(root)) {
        rc = pg_errf(PG_EINVALID, errstr, errstr_size, "ack: not a JSON object");
    } else if (!json_is_string(st)) {
        rc = pg_errf(PG_EINVALID, errstr, errstr_size, "ack.status: required string");
    } else if (!strcmp(json_string_value(st), "stored")) {
        *status = 0;
        if (reason && reason_size)
            reason[0] = '\0';
    } else if (!strcmp(json_string_value(st), "rejected")) {
        *status = PG_EINVALID;
        if (why && !json_is_string(why) && !json_is_null(why))
            rc = pg_errf(PG_EINVALID, errstr, errstr_size, "ack.reason: must be a string");
        else if (reason && reason_size)
            snprintf(reason, reason_size, "%s",
                     json_is_string(why) && *json_string_value(why)
                         ? json_string_value(why)
                         : "rejected by the RMS (no reason given)");
    } else {
        rc =
            pg_errf(PG_EINVALID, errstr, errstr_size, "ack.status: is not one of stored, rejected");
    }
    json_decref(root);
    return rc;
}

/* Written the way the intake writes its acks (pg_json_string): a reason that is not
 * UTF-8 still makes valid JSON. */
int pg_rms_delivery_ack_format(int status, const char *reason, pg_buf *out)
{
    if (status == 0)
        return pg_buf_puts(out, "{\"status\":\"stored\"}");
    const char *r = reason ? reason : "";
    int rc = pg_buf_puts(out, "{\"status\":\"rejected\",\"reason\":");
    rc = rc ? rc : pg_json_string(out, r, strlen(r), PG_JSON_REPLACE);
    return rc ? rc : pg_buf_putc(out, '}');
}

/* ------------------------------------------------------------ ZeroMQ transport */

typedef struct s_zmq {
    void *ctx;
    int own_ctx;
    void *sock;
} s_zmq;

static void s_zmq_close(void *state)
{
    s_zmq *z = state;
    if (!z)
        return;
    if (z->sock)
        zmq_close(z->sock);
    if (z->own_ctx && z->ctx)
        zmq_ctx_term(z->ctx);
    free(z);
}

static int s_zmq_open(pg_rms_delivery *self, void **state, char *errstr, size_t errstr_size)
{
    const pg_rms_delivery_config *cfg = pg_rms_delivery_config_of(self);
    s_zmq *z = calloc(1, sizeof(*z));
    if (!z)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "delivery: out of memory");
    z->ctx = cfg->zmq_ctx;
    if (!z->ctx) {
        z->ctx = zmq_ctx_new();
        z->own_ctx = 1;
    }
    if (z->ctx)
        z->sock = zmq_socket(z->ctx, ZMQ_DEALER);
    if (!z->sock) {
        s_zmq_close(z);
        return pg_errf(PG_EIO, errstr, errstr_size, "delivery: zmq socket: %s",
                       zmq_strerror(zmq_errno()));
    }
    /* Immediate: queue only to a connected RMS, and drop what was queued when the
     * connection goes, so that nothing queued behind a lost message can overtake
     * it; the window keeps every message until it is acked and sends it again. */
    int one = 1, zero = 0, ivl = 100, ivl_max = 5000;
    int hwm = cfg->window > INT_MAX / 2 ? INT_MAX : (int)cfg->window * 2;
    zmq_setsockopt(z->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(z->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(z->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(z->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    /* An ack is a JSON object (its reason may quote the record): a frame over 1 MiB
     * (from an impostor at the endpoint during the handshake, or a broken RMS) closes
     * the connection as its header arrives instead of being held. */
    int64_t max_frame = 1 << 20;
    int handshake_ms = 10000;
    zmq_setsockopt(z->sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame);
    zmq_setsockopt(z->sock, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof handshake_ms);
    char why[PG_ERRSTR_SIZE];
    if (cfg->curve_secret[0]) {
        if (pg_curve_client(z->sock, cfg->curve_secret, cfg->curve_server_key, why, sizeof why)) {
            s_zmq_close(z);
            return pg_errf(PG_ECONFIG, errstr, errstr_size, "delivery: %s", why);
        }
    } else if (!pg_curve_endpoint_is_local(cfg->endpoint)) {
        s_zmq_close(z);
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "delivery.endpoint: %s is reachable from other hosts: it needs CURVE "
                       "(our key pair and the RMS import endpoint's public key)",
                       cfg->endpoint);
    }
    if (zmq_connect(z->sock, cfg->endpoint) != 0) {
        int err = zmq_errno();
        s_zmq_close(z);
        return pg_errf(PG_ECONFIG, errstr, errstr_size, "delivery.endpoint: '%s': %s",
                       cfg->endpoint, zmq_strerror(err));
    }
    *state = z;
    return 0;
}

static int s_zmq_send(void *state, const char *id, const uint8_t *msg, size_t len, char *errstr,
                      size_t errstr_size)
{
    s_zmq *z = state;
    if (zmq_send(z->sock, id, strlen(id), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        int err = zmq_errno();
        if (err == EAGAIN || err == EINTR)
            return PG_ERETRY;
        return pg_errf(PG_EIO, errstr, errstr_size, "delivery: zmq send: %s", zmq_strerror(err));
    }
    /* The rest of a multipart message is never refused once its first frame was
     * taken; should the connection drop now, the message is lost and the ack
     * timeout sends it again. */
    if (zmq_send(z->sock, msg, len, ZMQ_DONTWAIT) < 0 && zmq_errno() != EAGAIN)
        return pg_errf(PG_EIO, errstr, errstr_size, "delivery: zmq send: %s",
                       zmq_strerror(zmq_errno()));
    return 0;
}

static int s_zmq_recv_ack(void *state, int timeout_ms, char *id, size_t idsize, int *status,
                          char *reason, size_t reason_size)
{
    s_zmq *z = state;
    zmq_pollitem_t item = {.socket = z->sock, .events = ZMQ_POLLIN};
    int n = zmq_poll(&item, 1, timeout_ms);
    if (n < 0) {
        if (zmq_errno() == EINTR)
            return 0;
        snprintf(reason, reason_size, "zmq poll: %s", zmq_strerror(zmq_errno()));
        return PG_EIO;
    }
    if (n == 0)
        return 0;
    /* Frames: correlation id, ack JSON. Anything else is not an ack of ours and
     * is skipped: the message it meant to ack is sent again after its timeout. */
    zmq_msg_t part[2];
    int got = 0, more = 1, valid = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, z->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            valid = 0;
            break;
        }
        more = zmq_msg_more(&m);
        if (got < 2)
            part[got++] = m;
        else {
            valid = 0;
            zmq_msg_close(&m);
        }
    }
    int rc = 1;
    char errstr[PG_ERRSTR_SIZE];
    if (!valid || got != 2 || zmq_msg_size(&part[0]) >= idsize ||
        pg_rms_delivery_ack_parse(zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), status, reason,
                                  reason_size, errstr, sizeof errstr) < 0) {
        rc = 0;
    } else {
        memcpy(id, zmq_msg_data(&part[0]), zmq_msg_size(&part[0]));
        id[zmq_msg_size(&part[0])] = '\0';
    }
    for (int i = 0; i < got; i++)
        zmq_msg_close(&part[i]);
    return rc;
}

const pg_rms_delivery_ops pg_rms_delivery_zmq = {
    .name = "zmq",
    .open = s_zmq_open,
    .close = s_zmq_close,
    .send = s_zmq_send,
    .recv_ack = s_zmq_recv_ack,
};

/* ------------------------------------------------------------ drop directory */

typedef struct s_dir {
    int dfd;
    char *path;
    const char *prefix, *extension; /* borrowed from the delivery's config */
    mode_t mode;
    uint64_t next;
} s_dir;

static void s_dir_close(void *state)
{
    s_dir *d = state;
    if (!d)
        return;
    if (d->dfd >= 0)
        close(d->dfd);
    free(d->path);
    free(d);
}

/* "<prefix>-<20 digits>.<ext>" -> the number; 0 when name is not one of ours. */
static int s_dir_parse(const s_dir *d, const char *name, const char *suffix, uint64_t *n)
{
    size_t plen = strlen(d->prefix);
    if (strncmp(name, d->prefix, plen) != 0 || name[plen] != '-')
        return 0;
    const char *p = name + plen + 1;
    for (int i = 0; i < 20; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    if (strcmp(p + 20, suffix) != 0)
        return 0;
    *n = strtoull(p, NULL, 10);
    return 1;
}

static int s_dir_open(pg_rms_delivery *self, void **state, char *errstr, size_t errstr_size)
{
    const pg_rms_delivery_config *cfg = pg_rms_delivery_config_of(self);
    s_dir *d = calloc(1, sizeof(*d));
    if (!d || !(d->path = strdup(cfg->endpoint))) {
        free(d);
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "delivery: out of memory");
    }
    d->prefix = cfg->prefix;
    d->extension = cfg->extension;
    d->mode = cfg->file_mode ? (mode_t)(cfg->file_mode & 0777) : 0640;
    d->dfd = open(cfg->endpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->dfd < 0 || faccessat(d->dfd, ".", W_OK, 0) != 0) {
        int err = errno;
        s_dir_close(d);
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "delivery.endpoint: '%s' is not a writable directory: %s", cfg->endpoint,
                       strerror(err));
    }
    /* Continue after the highest name present, and after the clock in
     * microseconds, so that names keep increasing across restarts even when the
     * importer has taken every file away (unless one run wrote more than a
     * million files a second). Temporary files left by a crash are ours to
     * remove. */
    char suffix[64], tmp_suffix[16] = ".tmp";
    snprintf(suffix, sizeof suffix, ".%s", d->extension);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t next = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    int dfd2 = dup(d->dfd);
    DIR *dir = dfd2 >= 0 ? fdopendir(dfd2) : NULL;
    if (!dir) {
        if (dfd2 >= 0)
            close(dfd2);
        int err = errno;
        s_dir_close(d);
        return pg_errf(PG_EIO, errstr, errstr_size, "delivery: '%s': %s", cfg->endpoint,
                       strerror(err));
    }
    struct dirent *de;
    uint64_t n;
    while ((de = readdir(dir)) != NULL) {
        if (s_dir_parse(d, de->d_name, suffix, &n) && n >= next)
            next = n + 1;
        else if (de->d_name[0] == '.' && s_dir_parse(d, de->d_name + 1, tmp_suffix, &n))
            unlinkat(d->dfd, de->d_name, 0);
    }
    closedir(dir);
    d->next = next;
    *state = d;
    return 0;
}

static int s_write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Write to ".<prefix>-<n>.tmp", fsync, rename to "<prefix>-<n>.<ext>" (never over an
 * existing file), fsync the directory: an importer sees a whole file or none. */
static int s_dir_send(void *state, const char *id, const uint8_t *msg, size_t len, char *errstr,
                      size_t errstr_size)
{
    (void)id;
    s_dir *d = state;
    char tmp[PATH_MAX], name[PATH_MAX];
    const char *step = "create";
    for (;;) {
        snprintf(tmp, sizeof tmp, ".%s-%020llu.tmp", d->prefix, (unsigned long long)d->next);
        snprintf(name, sizeof name, "%s-%020llu.%s", d->prefix, (unsigned long long)d->next,
                 d->extension);
        int fd = openat(d->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno == EEXIST) {
                d->next++;
                continue;
            }
            goto fail;
        }
        /* exactly the configured mode, whatever the umask: the RMS's group may need to
         * read, others never */
        step = "chmod";
        if (fchmod(fd, d->mode) != 0) {
            int err = errno;
            close(fd);
            unlinkat(d->dfd, tmp, 0);
            errno = err;
            goto fail;
        }
        step = "write";
        if (s_write_all(fd, msg, len) != 0) {
            int err = errno;
            close(fd);
            unlinkat(d->dfd, tmp, 0);
            errno = err;
            goto fail;
        }
        step = "fsync";
        if (fsync(fd) != 0 || close(fd) != 0) {
            int err = errno;
            unlinkat(d->dfd, tmp, 0);
            errno = err;
            goto fail;
        }
        step = "rename";
        if (renameat2(d->dfd, tmp, d->dfd, name, RENAME_NOREPLACE) != 0) {
            int err = errno;
            unlinkat(d->dfd, tmp, 0);
            if (err == EEXIST) {
                d->next++;
                step = "create";
                continue;
            }
            errno = err;
            goto fail;
        }
        d->next++;
        step = "fsync directory";
        if (fsync(d->dfd) != 0)
            goto fail;
        return 0;
    }
fail:
    return pg_errf(PG_EIO, errstr, errstr_size, "delivery: %s/%s: %s: %s", d->path,
                   strcmp(step, "create") == 0 ? tmp : name, step, strerror(errno));
}

const pg_rms_delivery_ops pg_rms_delivery_dir = {
    .name = "dir",
    .open = s_dir_open,
    .close = s_dir_close,
    .send = s_dir_send,
    .recv_ack = NULL,
};
