/* polegate load: the initial load; native files pipelined into a running polegated,
 * with progress, a rejects file and a state file to resume from. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "cli.h"
#include "curve.h"
#include "polegate/adapter.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/timeutil.h"

static const char s_usage_text[] =
    "usage: polegate load --to ENDPOINT [--format atx|nx5] [OPTION]... FILE...\n"
    "\n"
    "Load every native message of each FILE into a running polegated (the initial load\n"
    "of a force joining the exchange; docs/intake.md): many messages in flight, the\n"
    "daemon's retry answers respected, progress as it goes, a summary at the end.\n"
    "\n"
    "  --to ENDPOINT       the daemon's intake, e.g. tcp://127.0.0.1:5555\n"
    "  --format atx|nx5    format of the files; default: from the name (.ndjson, .jsonl,\n"
    "                      .json: atx; .xml: nx5). ATX: NDJSON, one message a line;\n"
    "                      NX5: one or more documents, each starting with <?xml\n"
    "  --window N          messages in flight (default 256)\n"
    "  --state FILE        where to keep the position acknowledged so far (default:\n"
    "                      FILE.load-state beside the input; needed for -)\n"
    "  --rejects FILE      where to write the rejected messages' positions and reasons\n"
    "                      (default: FILE.rejects beside the input, or STATE.rejects)\n"
    "  --timeout-ms N      send a message again when its ack has not come within N ms;\n"
    "                      with no ack at all for 6 times as long, give up (default\n"
    "                      10000)\n"
    "  --secret-key FILE   CURVE: our secret key (polegate keygen; its public key on\n"
    "                      the daemon's curve.intake_clients_file)\n"
    "  --server-key FILE   CURVE: the daemon's public key (pinned)\n"
    "  --progress          a progress line even when standard error is not a terminal\n"
    "  --no-progress       a plain log line every 5 s even on a terminal\n"
    "  -h, --help          print this help and exit\n"
    "\n"
    "A FILE of - is standard input (needs --format and --state). Killed or interrupted,\n"
    "run it again with the same arguments: it continues after the last position every\n"
    "message before which was acknowledged (the few sent again are answered duplicate\n"
    "or stale and not published twice). A file loaded to its end is not sent again.\n"
    "\n"
    "Exit status: 0 every message accepted; 1 some message rejected (see the rejects\n"
    "file), or interrupted; 2 usage error, a file that cannot be read or changed since\n"
    "its state was written, or no daemon answered.\n";

#define S_STATE_MAGIC "polegate-load 1"
#define S_BACKOFF_FIRST_MS 200
#define S_BACKOFF_MAX_MS 5000
#define S_LOG_EVERY_MS 5000
#define S_TTY_EVERY_MS 200
#define S_SAVE_EVERY_MS 1000

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    s_stop = sig;
}

/* ---------------------------------------------------------------- the state file */

/* What is known of one input, kept in its state file: every message before `offset`
 * was answered accepted or rejected. */
typedef struct s_state {
    uint64_t size, mtime_ns; /* the input's identity (0 for a stream) */
    uint64_t offset, pos;    /* the next message starts at offset; pos: the last one's */
    uint64_t accepted, duplicates, stale, rejected;
    uint64_t rejects_len; /* bytes of the rejects file that belong to what is acked */
    int complete;
} s_state;

static int s_state_read(const char *path, s_state *st)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    char magic[32];
    int complete = 0;
    int n =
        fscanf(f,
               "%31[^\n]\nsize %" SCNu64 "\nmtime_ns %" SCNu64 "\noffset %" SCNu64
               "\nposition %" SCNu64 "\naccepted %" SCNu64 "\nduplicates %" SCNu64
               "\nstale %" SCNu64 "\nrejected %" SCNu64 "\nrejects_len %" SCNu64 "\ncomplete %d",
               magic, &st->size, &st->mtime_ns, &st->offset, &st->pos, &st->accepted,
               &st->duplicates, &st->stale, &st->rejected, &st->rejects_len, &complete);
    fclose(f);
    st->complete = complete;
    if (n != 11 || strcmp(magic, S_STATE_MAGIC)) {
        errno = EINVAL;
        return -1;
    }
    return 1;
}

/* Written beside, then renamed over: a kill leaves the old state or the new one. */
static int s_state_write(const char *path, const s_state *st)
{
    char tmp[4096 + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f,
            S_STATE_MAGIC "\nsize %" PRIu64 "\nmtime_ns %" PRIu64 "\noffset %" PRIu64
                          "\nposition %" PRIu64 "\naccepted %" PRIu64 "\nduplicates %" PRIu64
                          "\nstale %" PRIu64 "\nrejected %" PRIu64 "\nrejects_len %" PRIu64
                          "\ncomplete %d\n",
            st->size, st->mtime_ns, st->offset, st->pos, st->accepted, st->duplicates, st->stale,
            st->rejected, st->rejects_len, st->complete);
    if (fclose(f) || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the input */

/* One input: a mapped regular file, or a stream read into buf as it goes. */
typedef struct s_input {
    const char *name; /* as shown: the path, or <stdin> */
    int fd;
    const pg_adapter_ops *adapter;
    const uint8_t *map;
    pg_buf buf; /* stream: bytes [base, base + buf.len) of the input */
    uint64_t base;
    int eof;
    uint64_t size; /* for the ETA; 0: unknown */
    uint64_t off, pos;
} s_input;

typedef struct s_found {
    const uint8_t *msg;
    size_t len, pos;
    int need_next; /* a stream before its end: the first counts once a second began */
    int more;      /* a second message began */
} s_found;

static int s_first(void *arg, const uint8_t *msg, size_t len, size_t pos)
{
    s_found *f = arg;
    if (f->msg) {
        f->more = 1;
        return 1;
    }
    f->msg = msg, f->len = len, f->pos = pos;
    return !f->need_next;
}

/* The next message into *out (valid until the next call): 1, 0 at the end, -1 on a
 * read error. Sets *end to where the message after it starts. */
static int s_next(s_input *in, s_found *out, uint64_t *end)
{
    for (;;) {
        const uint8_t *base = in->map ? in->map : in->buf.data;
        uint64_t have = in->map ? in->size : in->base + in->buf.len;
        size_t from = (size_t)(in->off - (in->map ? 0 : in->base));
        size_t n = in->off < have ? (size_t)(have - in->off) : 0;
        /* In a stream the last message split sees may still be cut short: a message is
         * whole once the next one began, or the stream ended. */
        *out = (s_found){.need_next = !in->map && !in->eof};
        if (n)
            in->adapter->split(base + from, n, s_first, out);
        if (out->msg && (!out->need_next || out->more)) {
            size_t e = (size_t)(out->msg - base) + out->len;
            size_t lim = in->map ? (size_t)in->size : in->buf.len;
            if (e < lim && base[e] == '\r' && e + 1 < lim && base[e + 1] == '\n')
                e += 2;
            else if (e < lim && base[e] == '\n')
                e++;
            *end = (in->map ? 0 : in->base) + e;
            out->pos += (size_t)in->pos;
            return 1;
        }
        if (in->map || in->eof)
            return 0;
        /* Keep only what is not yet taken, then read more. */
        if (from) {
            memmove(in->buf.data, in->buf.data + from, in->buf.len - from);
            in->buf.len -= from;
            in->base += from;
        }
        if (pg_buf_reserve(&in->buf, 1 << 20))
            return -1;
        ssize_t r = read(in->fd, in->buf.data + in->buf.len, 1 << 20);
        if (r < 0 && errno == EINTR && !s_stop)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            in->eof = 1;
        in->buf.len += (size_t)r;
    }
}

/* Open path (- is standard input) and move to st's offset. 0, or -1 with errno. */
static int s_input_open(s_input *in, const char *path, const s_state *st)
{
    in->fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (in->fd < 0)
        return -1;
    struct stat sb;
    if (fstat(in->fd, &sb))
        return -1;
    in->off = st->offset;
    in->pos = st->pos;
    if (S_ISREG(sb.st_mode)) {
        in->size = (uint64_t)sb.st_size;
        if (in->size) {
            void *m = mmap(NULL, (size_t)in->size, PROT_READ, MAP_PRIVATE, in->fd, 0);
            if (m == MAP_FAILED)
                return -1;
            in->map = m;
            madvise(m, (size_t)in->size, MADV_SEQUENTIAL);
        } else {
            in->eof = 1;
            in->map = (const uint8_t *)"";
        }
        return 0;
    }
    /* A pipe: skip what an earlier run had acknowledged. */
    uint64_t skip = st->offset;
    char chunk[65536];
    while (skip) {
        ssize_t r = read(in->fd, chunk, skip < sizeof chunk ? (size_t)skip : sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            errno = r ? errno : EINVAL;
            return -1;
        }
        skip -= (uint64_t)r;
    }
    in->base = st->offset;
    return 0;
}

static void s_input_close(s_input *in)
{
    if (in->map && in->size)
        munmap((void *)in->map, (size_t)in->size);
    if (in->fd > 0)
        close(in->fd);
    pg_buf_free(&in->buf);
}

/* ---------------------------------------------------------------- the load */

enum { S_FREE, S_SENT, S_WAIT, S_DONE };

/* One message from its read to its final ack. */
typedef struct s_slot {
    uint64_t seq;
    int state;
    pg_buf msg;
    uint64_t pos, end;
    int64_t sent_ms, resend_ms;
    int backoff_ms;
    int accepted, duplicate, stale, backpressure;
    pg_buf ack; /* rejected: the ack, for the rejects file */
} s_slot;

typedef struct s_load {
    void *ctx, *sock;
    const char *endpoint;
    int timeout_ms, window;
    int tty; /* progress line on standard error */
    s_slot *slots;
    uint64_t next_seq, head_seq; /* next to read; oldest not yet final */
    size_t busy;                 /* slots in use */
    int paused;                  /* a backpressure retry waits: send nothing new */
    int64_t last_ack_ms;
    int answered; /* some ack came from the daemon */
    /* The file being loaded. */
    s_input in;
    s_state st;
    /* Held here, not on s_load_path's stack: they outlive no call but must not dangle. */
    char state_path[4096], rejects_path[4096 + 16];
    FILE *rejects;
    uint64_t start_offset, start_done;
    int64_t t0, last_save, last_report;
    /* All files. */
    uint64_t total_rejected;
} s_load;

static int s_usage_error(const char *what)
{
    fprintf(stderr, "polegate load: %s\n(polegate load --help describes the options)\n", what);
    return 2;
}

static int s_send(s_load *l, s_slot *s)
{
    char corr[32];
    int n = snprintf(corr, sizeof corr, "L%" PRIu64, s->seq);
    if (zmq_send(l->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno != EAGAIN)
            return -1;
        s->state = S_WAIT;
        s->resend_ms = pg_time_mono_ms() + S_BACKOFF_FIRST_MS;
        return 0;
    }
    if (zmq_send(l->sock, corr, (size_t)n, ZMQ_SNDMORE) < 0 ||
        zmq_send(l->sock, s->msg.data, s->msg.len, 0) < 0)
        return -1;
    s->state = S_SENT;
    s->sent_ms = pg_time_mono_ms();
    return 0;
}

static void s_format_duration(char *out, size_t size, double s)
{
    if (s < 0 || s > 360000)
        snprintf(out, size, "--:--:--");
    else
        snprintf(out, size, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
}

static void s_report(s_load *l, int final)
{
    int64_t now = pg_time_mono_ms();
    double secs = (double)(now - l->t0) / 1000.0;
    uint64_t done = l->st.accepted + l->st.rejected;
    double rate = secs > 0 ? (double)(done - l->start_done) / secs : 0;
    char eta[32] = "";
    char pct[16] = "";
    if (l->in.size) {
        double bytes_rate = secs > 0 ? (double)(l->st.offset - l->start_offset) / secs : 0;
        double left = (double)(l->in.size - l->st.offset);
        char d[16];
        s_format_duration(d, sizeof d, bytes_rate > 0 ? left / bytes_rate : -1);
        snprintf(eta, sizeof eta, ", ETA %s", d);
        snprintf(pct, sizeof pct, " (%.1f%%)", 100.0 * (double)l->st.offset / (double)l->in.size);
    }
    if (l->tty) {
        fprintf(stderr, "\r\033[Kload %s: %" PRIu64 " records%s, %.0f/s%s, %" PRIu64 " rejected%s",
                l->in.name, done, pct, rate, final ? "" : eta, l->st.rejected, final ? "\n" : "");
    } else {
        fprintf(stderr, "load %s: %" PRIu64 " records%s, %.0f/s%s, %" PRIu64 " rejected\n",
                l->in.name, done, pct, rate, final ? "" : eta, l->st.rejected);
    }
    fflush(stderr);
    l->last_report = now;
}

static int s_save(s_load *l)
{
    if (l->rejects && fflush(l->rejects)) {
        fprintf(stderr, "polegate load: %s: %s\n", l->rejects_path, strerror(errno));
        return -1;
    }
    if (l->rejects)
        l->st.rejects_len = (uint64_t)ftello(l->rejects);
    if (s_state_write(l->state_path, &l->st)) {
        fprintf(stderr, "polegate load: cannot write the state %s: %s\n", l->state_path,
                strerror(errno));
        return -1;
    }
    l->last_save = pg_time_mono_ms();
    return 0;
}

/* The rejects file, opened at the first reject: cut back to what the state counts. */
static FILE *s_rejects(s_load *l)
{
    if (l->rejects)
        return l->rejects;
    int fd = open(l->rejects_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, (off_t)l->st.rejects_len) ||
        lseek(fd, (off_t)l->st.rejects_len, SEEK_SET) < 0 || !(l->rejects = fdopen(fd, "w"))) {
        fprintf(stderr, "polegate load: %s: %s\n", l->rejects_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    return l->rejects;
}

/* Take the final acks at the head, in order: counts, rejects, the state's offset. */
static int s_advance(s_load *l)
{
    while (l->head_seq < l->next_seq) {
        s_slot *s = &l->slots[l->head_seq % (uint64_t)l->window];
        if (s->state != S_DONE)
            break;
        if (s->accepted) {
            l->st.accepted++;
            l->st.duplicates += (uint64_t)s->duplicate;
            l->st.stale += (uint64_t)s->stale;
        } else {
            FILE *f = s_rejects(l);
            if (!f)
                return -1;
            fprintf(f, "%s:%" PRIu64 " %.*s\n", l->in.name, s->pos, (int)s->ack.len,
                    (const char *)s->ack.data);
            l->st.rejected++;
            l->total_rejected++;
        }
        l->st.offset = s->end;
        l->st.pos = s->pos;
        s->state = S_FREE;
        l->busy--;
        l->head_seq++;
    }
    return 0;
}

/* One ack frame (after the delimiter). */
static void s_on_ack(s_load *l, const char *data, size_t len)
{
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *corr = json_string_value(json_object_get(j, "correlation"));
    const char *status = json_string_value(json_object_get(j, "status"));
    char *endp;
    uint64_t seq = corr && corr[0] == 'L' ? strtoull(corr + 1, &endp, 10) : UINT64_MAX;
    s_slot *s =
        seq < l->next_seq && seq >= l->head_seq ? &l->slots[seq % (uint64_t)l->window] : NULL;
    l->answered = 1;
    l->last_ack_ms = pg_time_mono_ms();
    /* An ack for a message already answered (sent again after a timeout) is dropped. */
    if (!s || s->seq != seq || s->state != S_SENT || !status) {
        json_decref(j);
        return;
    }
    if (!strcmp(status, "accepted")) {
        s->state = S_DONE;
        s->accepted = 1;
        s->duplicate = json_is_true(json_object_get(j, "duplicate"));
        s->stale = (int)json_integer_value(json_object_get(j, "stale"));
    } else if (!strcmp(status, "rejected")) {
        s->state = S_DONE;
        s->accepted = 0;
        pg_buf_reset(&s->ack);
        pg_buf_append(&s->ack, data, len);
    } else {
        /* retry: the same message again after a pause; nothing new while the spool is
         * full, so the daemon is not flooded with what it must turn back. */
        s->state = S_WAIT;
        s->backpressure = json_is_true(json_object_get(j, "backpressure"));
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : S_BACKOFF_FIRST_MS;
        if (s->backoff_ms > S_BACKOFF_MAX_MS)
            s->backoff_ms = S_BACKOFF_MAX_MS;
        s->resend_ms = pg_time_mono_ms() + s->backoff_ms;
    }
    json_decref(j);
}

/* Read what acks are waiting, for up to wait_ms. -1 on a socket error. */
static int s_receive(s_load *l, int wait_ms)
{
    zmq_pollitem_t item = {l->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, wait_ms) < 0)
        return errno == EINTR ? 0 : -1;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, l->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
        /* [empty delimiter][ack]: the delimiter is skipped. */
        if (zmq_msg_size(&m) && !zmq_msg_more(&m))
            s_on_ack(l, zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
    }
}

/* Send again what is due: retries after their pause, and messages whose ack did not
 * come in time (the daemon restarted: they were maybe taken, maybe not). */
static int s_resend(s_load *l)
{
    int64_t now = pg_time_mono_ms();
    int waiting_bp = 0;
    for (uint64_t q = l->head_seq; q < l->next_seq; q++) {
        s_slot *s = &l->slots[q % (uint64_t)l->window];
        if (s->state == S_WAIT && now >= s->resend_ms) {
            if (s_send(l, s))
                return -1;
        } else if (s->state == S_SENT && now - s->sent_ms >= l->timeout_ms) {
            if (s_send(l, s))
                return -1;
        }
        waiting_bp |= s->state == S_WAIT && s->backpressure;
    }
    l->paused = waiting_bp;
    return 0;
}

/* Load one input to its end. 0, 1 interrupted, 2 no daemon, -1 an error (said). */
static int s_load_input(s_load *l)
{
    l->t0 = l->last_save = l->last_report = pg_time_mono_ms();
    l->start_offset = l->st.offset;
    l->start_done = l->st.accepted + l->st.rejected;
    l->head_seq = l->next_seq;
    l->paused = 0;
    int at_end = 0;
    for (;;) {
        if (s_stop)
            return 1;
        /* Fill the window. */
        while (!at_end && !l->paused && l->busy < (size_t)l->window) {
            s_found f;
            uint64_t end;
            int rc = s_next(&l->in, &f, &end);
            if (rc < 0) {
                fprintf(stderr, "polegate load: %s: %s\n", l->in.name, strerror(errno));
                return -1;
            }
            if (rc == 0) {
                at_end = 1;
                break;
            }
            s_slot *s = &l->slots[l->next_seq % (uint64_t)l->window];
            s->seq = l->next_seq++;
            s->pos = f.pos;
            s->end = end;
            s->backoff_ms = 0;
            s->backpressure = 0;
            pg_buf_reset(&s->msg);
            if (pg_buf_append(&s->msg, f.msg, f.len)) {
                fprintf(stderr, "polegate load: out of memory\n");
                return -1;
            }
            l->in.off = end;
            l->in.pos = f.pos;
            l->busy++;
            if (s_send(l, s)) {
                fprintf(stderr, "polegate load: send: %s\n", zmq_strerror(errno));
                return -1;
            }
        }
        if (at_end && !l->busy)
            break;
        if (s_receive(l, 50) || s_resend(l)) {
            fprintf(stderr, "polegate load: %s: %s\n", l->endpoint, zmq_strerror(errno));
            return -1;
        }
        if (s_advance(l))
            return -1;
        int64_t now = pg_time_mono_ms();
        int64_t quiet = now - (l->answered ? l->last_ack_ms : l->t0);
        if (l->busy && quiet > (l->answered ? 6 : 1) * (int64_t)l->timeout_ms) {
            fprintf(stderr,
                    "\npolegate load: no answer from %s for %.1f s (is polegated running and "
                    "bound there?)\n",
                    l->endpoint, (double)quiet / 1000.0);
            return 2;
        }
        if (now - l->last_save >= S_SAVE_EVERY_MS && s_save(l))
            return -1;
        if (now - l->last_report >= (l->tty ? S_TTY_EVERY_MS : S_LOG_EVERY_MS))
            s_report(l, 0);
    }
    return 0;
}

static void s_summary(const s_load *l, double secs, uint64_t sent)
{
    printf("%s: %" PRIu64 " messages: %" PRIu64 " accepted (%" PRIu64 " duplicate, %" PRIu64
           " stale record changes), %" PRIu64 " rejected%s%s%s; this run %" PRIu64
           " in %.1f s, %.0f/s\n",
           l->in.name, l->st.accepted + l->st.rejected, l->st.accepted, l->st.duplicates,
           l->st.stale, l->st.rejected, l->st.rejected ? " (in " : "",
           l->st.rejected ? l->rejects_path : "", l->st.rejected ? ")" : "", sent, secs,
           secs > 0 ? (double)sent / secs : 0);
    fflush(stdout);
}

/* Load the input path: 0 done, 1 interrupted, 2 no daemon / unusable input. */
static int s_load_path(s_load *l, const char *path, const pg_adapter_ops *adapter,
                       const char *state_opt, const char *rejects_opt)
{
    char *state_path = l->state_path, *rejects_path = l->rejects_path;
    snprintf(state_path, sizeof l->state_path, "%s", state_opt ? state_opt : "");
    if (!state_opt)
        snprintf(state_path, sizeof l->state_path, "%s.load-state", path);
    if (rejects_opt)
        snprintf(rejects_path, sizeof l->rejects_path, "%s", rejects_opt);
    else if (strcmp(path, "-"))
        snprintf(rejects_path, sizeof l->rejects_path, "%s.rejects", path);
    else
        snprintf(rejects_path, sizeof l->rejects_path, "%s.rejects", state_path);
    memset(&l->st, 0, sizeof l->st);
    memset(&l->in, 0, sizeof l->in);
    l->in.name = strcmp(path, "-") ? path : "<stdin>";
    l->in.adapter = adapter;
    l->rejects = NULL;

    int have = s_state_read(state_path, &l->st);
    if (have < 0) {
        fprintf(stderr, "polegate load: %s: not a state file of polegate load (%s)\n", state_path,
                strerror(errno));
        return 2;
    }
    if (s_input_open(&l->in, path, &l->st)) {
        fprintf(stderr, "polegate load: %s: %s\n", l->in.name, strerror(errno));
        s_input_close(&l->in);
        return 2;
    }
    struct stat sb;
    uint64_t mtime = 0;
    if (!fstat(l->in.fd, &sb) && S_ISREG(sb.st_mode))
        mtime = (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec;
    if (have && (l->st.size != l->in.size || l->st.mtime_ns != mtime)) {
        fprintf(stderr,
                "polegate load: %s changed since %s was written; remove the state file to "
                "load it again from the start\n",
                l->in.name, state_path);
        s_input_close(&l->in);
        return 2;
    }
    l->st.size = l->in.size;
    l->st.mtime_ns = mtime;
    if (!have)
        unlink(rejects_path); /* a fresh load: an older rejects file is not about it */
    if (l->st.complete) {
        fprintf(stderr, "polegate load: %s: loaded already (%s); remove it to load again\n",
                l->in.name, state_path);
        l->total_rejected += l->st.rejected;
        s_summary(l, 0, 0);
        s_input_close(&l->in);
        return 0;
    }
    if (have && l->st.offset)
        fprintf(stderr,
                "polegate load: %s: resuming after position %" PRIu64 " (byte %" PRIu64 ")\n",
                l->in.name, l->st.pos, l->st.offset);
    l->total_rejected += l->st.rejected;
    uint64_t done_before = l->st.accepted + l->st.rejected;
    int rc = s_load_input(l);
    if (rc == 0)
        l->st.complete = 1;
    int saved = s_save(l);
    if (l->rejects)
        fclose(l->rejects);
    l->rejects = NULL;
    s_report(l, 1);
    s_summary(l, (double)(pg_time_mono_ms() - l->t0) / 1000.0,
              l->st.accepted + l->st.rejected - done_before);
    s_input_close(&l->in);
    if (rc < 0 || saved)
        return 2;
    return rc;
}

int pg_cli_load(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"to", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"window", required_argument, NULL, 'w'},
        {"state", required_argument, NULL, 's'},
        {"rejects", required_argument, NULL, 'r'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {"secret-key", required_argument, NULL, 'k'},
        {"server-key", required_argument, NULL, 'K'},
        {"progress", no_argument, NULL, 'p'},
        {"no-progress", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    s_load l = {.timeout_ms = 10000, .window = 256, .tty = isatty(2)};
    const pg_adapter_ops *format = NULL;
    const char *state = NULL, *rejects = NULL, *secret_file = NULL, *server_file = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        long n;
        switch (opt) {
        case 't':
            l.endpoint = optarg;
            break;
        case 'f':
            format = pg_adapter_find(optarg);
            if (!format)
                return s_usage_error("--format must be atx or nx5");
            break;
        case 'w':
            if (pg_cli_parse_long(optarg, 1, 100000, &n))
                return s_usage_error("--window must be from 1 to 100000");
            l.window = (int)n;
            break;
        case 's':
            state = optarg;
            break;
        case 'r':
            rejects = optarg;
            break;
        case 'T':
            if (pg_cli_parse_long(optarg, 1, INT_MAX / 6, &n))
                return s_usage_error("--timeout-ms must be a positive number");
            l.timeout_ms = (int)n;
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'K':
            server_file = optarg;
            break;
        case 'p':
            l.tty = 1;
            break;
        case 'P':
            l.tty = 0;
            break;
        case 'h':
            fputs(s_usage_text, stdout);
            return 0;
        default:
            return s_usage_error("unknown option");
        }
    }
    char secret[PG_CURVE_KEY_LEN], server[PG_CURVE_KEY_LEN], kerr[PG_ERRSTR_SIZE];
    if (pg_cli_intake_args("load", l.endpoint, secret_file, server_file, secret, server,
                           argc - optind))
        return 2;
    if (state && argc - optind > 1)
        return s_usage_error("--state goes with one FILE");
    for (int i = optind; i < argc; i++) {
        if (!strcmp(argv[i], "-") && (!format || !state))
            return s_usage_error("loading - (standard input) needs --format and --state");
        if (pg_cli_file_format("load", format, argv[i]))
            return 2;
    }

    l.slots = calloc((size_t)l.window, sizeof *l.slots);
    l.ctx = zmq_ctx_new();
    l.sock = l.ctx ? zmq_socket(l.ctx, ZMQ_DEALER) : NULL;
    int linger = 0, hwm = l.window * 2 + 16, immediate = 1;
    if (!l.slots || !l.sock || zmq_setsockopt(l.sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(l.sock, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(l.sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate) ||
        (secret_file && pg_curve_client(l.sock, secret, server, kerr, sizeof kerr)) ||
        zmq_connect(l.sock, l.endpoint)) {
        fprintf(stderr, "polegate load: cannot connect to %s: %s\n", l.endpoint,
                zmq_strerror(errno));
        if (l.sock)
            zmq_close(l.sock);
        if (l.ctx)
            zmq_ctx_term(l.ctx);
        free(l.slots);
        return 2;
    }
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int rc = 0;
    for (int i = optind; i < argc && !rc; i++) {
        const pg_adapter_ops *a = format ? format : pg_adapter_for_file(argv[i]);
        rc = s_load_path(&l, argv[i], a, state, rejects);
    }
    if (rc == 1)
        fprintf(stderr, "polegate load: interrupted; run it again with the same arguments to "
                        "continue\n");
    for (int i = 0; i < l.window; i++) {
        pg_buf_free(&l.slots[i].msg);
        pg_buf_free(&l.slots[i].ack);
    }
    free(l.slots);
    zmq_close(l.sock);
    zmq_ctx_term(l.ctx);
    if (rc)
        return rc;
    return l.total_rejected ? 1 : 0;
}
