/* pg_intake: ZeroMQ ROUTER intake; decode, ledger and producer in one transaction. */
#include "intake.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "config.h"

/* Frames of one request kept: identity, delimiter, correlation id, message. Any more
 * are counted and dropped. */
#define S_MAX_PARTS 4

struct pg_intake {
    void *ctx;
    int own_ctx;
    void *sock;
    char *endpoint;
    size_t max_message_size;
    const pg_adapter_ops *adapter;
    pg_adapter_ctx actx;
    pg_store *store;
    pg_ledger *ledger;
    pg_producer *producer;
    pg_changeset *in;  /* what the adapter decoded */
    pg_changeset *out; /* what the ledger says to publish */
    const char **ids;  /* the ack's ids, reused */
    size_t ids_cap;
    pg_buf json; /* the ack, reused */
    pg_intake_stats stats;
};

const char *pg_intake_status_name(pg_intake_status status)
{
    switch (status) {
    case PG_INTAKE_ACCEPTED:
        return "accepted";
    case PG_INTAKE_REJECTED:
        return "rejected";
    case PG_INTAKE_RETRY:
        return "retry";
    }
    return "retry";
}

pg_intake *pg_intake_new(const pg_intake_opts *opts, char *errstr, size_t errstr_size)
{
    pg_intake *self = calloc(1, sizeof *self);
    if (!self) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    self->adapter = opts->adapter;
    self->max_message_size =
        opts->max_message_size ? opts->max_message_size : opts->adapter->max_message_size;
    self->actx.force = opts->force;
    self->store = opts->store;
    self->ledger = opts->ledger;
    self->producer = opts->producer;
    self->in = pg_changeset_new();
    self->out = pg_changeset_new();
    if (!self->in || !self->out) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    if (!opts->endpoint)
        return self;

    self->ctx = opts->zmq_ctx;
    if (!self->ctx) {
        self->ctx = zmq_ctx_new();
        self->own_ctx = 1;
    }
    self->sock = self->ctx ? zmq_socket(self->ctx, ZMQ_ROUTER) : NULL;
    if (!self->sock) {
        pg_errf(PG_EIO, errstr, errstr_size, "intake: zmq socket: %s", zmq_strerror(errno));
        goto err;
    }
    int linger = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(self->sock, opts->endpoint)) {
        pg_errf(PG_EIO, errstr, errstr_size, "intake: cannot bind %s: %s", opts->endpoint,
                zmq_strerror(errno));
        goto err;
    }
    char bound[256];
    size_t blen = sizeof bound;
    if (zmq_getsockopt(self->sock, ZMQ_LAST_ENDPOINT, bound, &blen))
        snprintf(bound, sizeof bound, "%s", opts->endpoint);
    self->endpoint = strdup(bound);
    if (!self->endpoint) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    return self;
err:
    pg_intake_destroy(&self);
    return NULL;
}

void pg_intake_destroy(pg_intake **p)
{
    if (!p || !*p)
        return;
    pg_intake *self = *p;
    if (self->sock)
        zmq_close(self->sock);
    if (self->own_ctx)
        zmq_ctx_term(self->ctx);
    pg_changeset_destroy(&self->in);
    pg_changeset_destroy(&self->out);
    free(self->ids);
    pg_buf_free(&self->json);
    free(self->endpoint);
    free(self);
    *p = NULL;
}

__attribute__((format(printf, 4, 5))) static void
s_fail(pg_intake *self, pg_intake_ack *ack, pg_intake_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ack->reason, sizeof ack->reason, fmt, ap);
    va_end(ap);
    ack->status = status;
    if (status == PG_INTAKE_REJECTED) {
        self->stats.rejected++;
        pg_log(PG_LOG_WARN, "intake: rejected: %s", ack->reason);
    } else {
        self->stats.retried++;
        pg_log(PG_LOG_WARN, "intake: asked the sender to retry: %s", ack->reason);
    }
}

/* The ids of what the ledger said to publish, for the ack. */
static int s_collect_ids(pg_intake *self, pg_intake_ack *ack)
{
    const pg_changeset *out = self->out;
    if (out->count > self->ids_cap) {
        const char **ids = realloc(self->ids, out->count * sizeof *ids);
        if (!ids)
            return PG_ENOMEM;
        self->ids = ids;
        self->ids_cap = out->count;
    }
    for (size_t i = 0; i < out->count; i++) {
        const pg_change *c = &out->changes[i];
        self->ids[i] = c->type == PG_CHANGE_ENTITY ? c->entity->id : c->link->id;
    }
    ack->ids = self->ids;
    ack->id_count = out->count;
    return 0;
}

void pg_intake_handle(pg_intake *self, const uint8_t *data, size_t size, pg_intake_ack *ack)
{
    char why[PG_ERRSTR_SIZE];
    memset(ack, 0, sizeof *ack);
    self->stats.received++;

    /* Checked before anything reads the bytes: an oversize frame is never parsed. */
    if (size == 0) {
        s_fail(self, ack, PG_INTAKE_REJECTED, "message: empty");
        return;
    }
    if (size > self->max_message_size) {
        s_fail(self, ack, PG_INTAKE_REJECTED, "message: %zu bytes is over the limit of %zu bytes",
               size, self->max_message_size);
        return;
    }

    pg_changeset_reset(self->in);
    pg_changeset_reset(self->out);
    int rc = self->adapter->decode(&self->actx, data, size, self->in, why, sizeof why);
    if (rc) {
        s_fail(self, ack, rc == PG_ENOMEM ? PG_INTAKE_RETRY : PG_INTAKE_REJECTED, "%s", why);
        return;
    }

    pg_store_txn *txn = pg_store_begin(self->store, 1, why, sizeof why);
    if (!txn) {
        s_fail(self, ack, PG_INTAKE_RETRY, "store: %s", why);
        return;
    }
    pg_ledger_result res = {0};
    rc = pg_ledger_apply(self->ledger, txn, self->in, self->out, &res, why, sizeof why);
    if (rc) {
        pg_store_abort(&txn);
        s_fail(self, ack, rc == PG_EINVALID ? PG_INTAKE_REJECTED : PG_INTAKE_RETRY, "%s", why);
        return;
    }

    /* The durable spool will write self->out here, inside txn, and the producer will
     * then be fed from the spool after the commit. Until then the updates are queued
     * before the commit: if queueing or the commit fails, the ledger forgets the
     * message, so the sender's retry publishes it again (consumers drop the repeats by
     * version) instead of being taken for a duplicate and lost. */
    for (size_t i = 0; i < self->out->count; i++) {
        rc = pg_producer_change(self->producer, &self->out->changes[i], why, sizeof why);
        if (rc) {
            pg_store_abort(&txn);
            if (i)
                pg_log(PG_LOG_WARN,
                       "intake: %zu of %zu updates were queued before the failure; they "
                       "will be published again when the message is retried",
                       i, self->out->count);
            s_fail(self, ack, PG_INTAKE_RETRY, "%s", why);
            return;
        }
    }
    rc = pg_store_commit(&txn, why, sizeof why);
    if (rc) {
        s_fail(self, ack, PG_INTAKE_RETRY, "store: %s", why);
        return;
    }
    if (s_collect_ids(self, ack)) {
        /* Applied and queued: the ack must still say so, only without the ids. */
        pg_log(PG_LOG_ERROR, "intake: out of memory listing the ids of an accepted message");
    }
    ack->status = PG_INTAKE_ACCEPTED;
    ack->stale = res.stale;
    ack->duplicate = res.duplicate;
    self->stats.accepted++;
    self->stats.duplicates += res.duplicate ? 1 : 0;
    self->stats.published += self->out->count;
    pg_log(PG_LOG_DEBUG, "intake: accepted message %s: %zu published, %zu stale%s",
           self->in->message_id ? self->in->message_id : "(no id)", self->out->count, res.stale,
           res.duplicate ? ", duplicate" : "");
}

/* ---------------------------------------------------------------- JSON */

/* s as a JSON string; bytes that are not UTF-8 become U+FFFD, so that an ack is
 * always valid JSON whatever the reason quotes. */
static int s_json_str(pg_buf *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    int rc = pg_buf_putc(out, '"');
    while (!rc && *p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = pg_buf_append(out, esc, 2);
            p++;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            char esc[2] = {'\\', c == '\n' ? 'n' : c == '\r' ? 'r' : 't'};
            rc = pg_buf_append(out, esc, 2);
            p++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = pg_buf_append(out, esc, 6);
            p++;
        } else if (c < 0x80) {
            rc = pg_buf_putc(out, (char)c);
            p++;
        } else {
            size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            size_t i = 1;
            for (; n && i < n; i++)
                if ((p[i] & 0xc0) != 0x80)
                    break;
            uint32_t cp = 0;
            if (n && i == n) {
                cp = n == 2 ? (uint32_t)(c & 0x1f) << 6 | (p[1] & 0x3f)
                     : n == 3
                         ? (uint32_t)(c & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f)
                         : (uint32_t)(c & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
                               (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
            }
            int valid = n && i == n &&
                        !(n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) &&
                        !(n == 4 && (cp < 0x10000 || cp > 0x10ffff));
            if (valid) {
                rc = pg_buf_append(out, p, n);
                p += n;
            } else {
                rc = pg_buf_puts(out, "\\ufffd");
                p++;
            }
        }
    }
    return rc ? rc : pg_buf_putc(out, '"');
}

int pg_intake_ack_json(const pg_intake_ack *ack, const char *correlation, pg_buf *out)
{
    int rc = pg_buf_putc(out, '{');
    if (!rc && correlation) {
        rc = pg_buf_puts(out, "\"correlation\":");
        rc = rc ? rc : s_json_str(out, correlation);
        rc = rc ? rc : pg_buf_putc(out, ',');
    }
    rc = rc ? rc : pg_buf_printf(out, "\"status\":\"%s\"", pg_intake_status_name(ack->status));
    if (!rc && ack->status == PG_INTAKE_ACCEPTED) {
        rc = pg_buf_puts(out, ",\"ids\":[");
        for (size_t i = 0; !rc && i < ack->id_count; i++) {
            rc = i ? pg_buf_putc(out, ',') : 0;
            rc = rc ? rc : s_json_str(out, ack->ids[i] ? ack->ids[i] : "");
        }
        rc = rc ? rc
                : pg_buf_printf(out, "],\"stale\":%zu,\"duplicate\":%s", ack->stale,
                                ack->duplicate ? "true" : "false");
    } else if (!rc) {
        rc = pg_buf_puts(out, ",\"reason\":");
        rc = rc ? rc : s_json_str(out, ack->reason);
    }
    return rc ? rc : pg_buf_putc(out, '}');
}

/* ---------------------------------------------------------------- the socket */

static int s_valid_correlation(const zmq_msg_t *m)
{
    size_t n = zmq_msg_size((zmq_msg_t *)m);
    const unsigned char *d = zmq_msg_data((zmq_msg_t *)m);
    if (n < 1 || n > PG_INTAKE_MAX_CORRELATION)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (d[i] < 0x21 || d[i] > 0x7e)
            return 0;
    return 1;
}

/* Receive one whole request without waiting. 1 when one was read, 0 when none was
 * waiting, PG_EIO on a socket error. */
static int s_recv(pg_intake *self, zmq_msg_t *parts, size_t *nparts, size_t *total)
{
    *nparts = *total = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sock, *total ? 0 : ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (e == EINTR && *total)
                continue; /* the rest of a request that has started is already here */
            if ((e == EAGAIN || e == EINTR) && !*total)
                return 0;
            return PG_EIO;
        }
        int more = zmq_msg_more(&m);
        if (*nparts < S_MAX_PARTS)
            parts[(*nparts)++] = m;
        else
            zmq_msg_close(&m);
        ++*total;
        if (!more)
            return 1;
    }
}

static int s_send_frame(void *sock, const void *data, size_t len, int more)
{
    return zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? PG_EIO : 0;
}

/* Handle and acknowledge one received request. */
static int s_serve(pg_intake *self, zmq_msg_t *parts, size_t nparts, size_t total)
{
    pg_intake_ack ack;
    char corr[PG_INTAKE_MAX_CORRELATION + 1];
    const char *correlation = NULL;
    /* parts[0] is the peer's identity (ROUTER); an empty frame after it is the REQ
     * envelope delimiter, which the reply must carry back. */
    size_t first = 1;
    int delimiter = nparts > 1 && zmq_msg_size(&parts[1]) == 0 && total > 2;
    if (delimiter)
        first = 2;
    size_t body = total - first;

    if (body == 2 && !s_valid_correlation(&parts[first])) {
        memset(&ack, 0, sizeof ack);
        self->stats.received++;
        s_fail(self, &ack, PG_INTAKE_REJECTED,
               "correlation: must be 1-%d printable ASCII characters (no spaces)",
               PG_INTAKE_MAX_CORRELATION);
    } else if (body == 1 || body == 2) {
        if (body == 2) {
            size_t n = zmq_msg_size(&parts[first]);
            memcpy(corr, zmq_msg_data(&parts[first]), n);
            corr[n] = 0;
            correlation = corr;
        }
        zmq_msg_t *msg = &parts[first + body - 1];
        pg_intake_handle(self, zmq_msg_data(msg), zmq_msg_size(msg), &ack);
    } else {
        memset(&ack, 0, sizeof ack);
        self->stats.received++;
        s_fail(self, &ack, PG_INTAKE_REJECTED,
               "frames: expected the message, or a correlation id and the message (1 or 2 "
               "frames), got %zu",
               body);
    }

    pg_buf_reset(&self->json);
    if (pg_intake_ack_json(&ack, correlation, &self->json))
        return PG_ENOMEM;
    int rc = s_send_frame(self->sock, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]), 1);
    if (!rc && delimiter)
        rc = s_send_frame(self->sock, "", 0, 1);
    if (!rc)
        rc = s_send_frame(self->sock, self->json.data, self->json.len, 0);
    /* A peer that went away cannot be acked; that is not the intake failing. */
    if (rc)
        pg_log(PG_LOG_WARN, "intake: ack not sent: %s", zmq_strerror(errno));
    return 0;
}

int pg_intake_poll(pg_intake *self, int timeout_ms, size_t max, char *errstr, size_t errstr_size)
{
    zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, timeout_ms) < 0) {
        if (errno == EINTR)
            return 0;
        return pg_errf(PG_EIO, errstr, errstr_size, "intake: poll: %s", zmq_strerror(errno));
    }
    int handled = 0;
    while (!max || (size_t)handled < max) {
        zmq_msg_t parts[S_MAX_PARTS];
        size_t nparts, total;
        int rc = s_recv(self, parts, &nparts, &total);
        if (rc == 1)
            rc = s_serve(self, parts, nparts, total);
        else if (rc < 0)
            pg_errf(rc, errstr, errstr_size, "intake: receive: %s", zmq_strerror(errno));
        for (size_t i = 0; i < nparts; i++)
            zmq_msg_close(&parts[i]);
        if (rc == PG_ENOMEM)
            pg_errf(rc, errstr, errstr_size, "intake: out of memory");
        if (rc < 0)
            return rc;
        if (!total)
            break; /* nothing more waiting */
        handled++;
    }
    return handled;
}

void pg_intake_get_stats(const pg_intake *self, pg_intake_stats *out)
{
    *out = self->stats;
}

const char *pg_intake_endpoint(const pg_intake *self)
{
    return self->endpoint;
}
