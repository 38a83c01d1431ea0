/* pg_curve: CURVE keys, the client allow-list and the ZAP handler (RFC 27). */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "keyfile.h"
#include "log.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/timeutil.h"

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"

static int s_is_z85_key(const char *s)
{
    uint8_t bin[32];
    return strlen(s) == 40 && zmq_z85_decode(bin, s) != NULL;
}

int pg_curve_key_load(const char *path, int secret, char key[PG_CURVE_KEY_LEN], char *errstr,
                      size_t errstr_size)
{
    char text[128];
    int rc = pg_keyfile_read(path, secret, text, sizeof text, errstr, errstr_size);
    if (rc) {
        memset(text, 0, sizeof text);
        return rc;
    }
    char *t = text + strspn(text, " \t\r\n");
    size_t n = strcspn(t, " \t\r\n");
    int ok = n == 40 && strspn(t + n, " \t\r\n") == strlen(t + n);
    if (ok) {
        t[n] = '\0';
        ok = s_is_z85_key(t);
    }
    if (!ok) {
        memset(text, 0, sizeof text);
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "key file %s: expected one 40-character Z85 CURVE key (`polegate "
                       "keygen` makes them)",
                       path);
    }
    memcpy(key, t, PG_CURVE_KEY_LEN);
    memset(text, 0, sizeof text);
    return 0;
}

int pg_curve_public_of(const char *secret, char public_key[PG_CURVE_KEY_LEN])
{
    return zmq_curve_public(public_key, secret) ? PG_EINVALID : 0;
}

static int s_write_key(const char *path, const char *key, mode_t mode, char *errstr,
                       size_t errstr_size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", path, strerror(errno));
    char line[PG_CURVE_KEY_LEN + 1];
    snprintf(line, sizeof line, "%s\n", key);
    int bad = write(fd, line, strlen(line)) != (ssize_t)strlen(line) || fsync(fd);
    int err = errno;
    close(fd);
    memset(line, 0, sizeof line);
    return bad ? pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", path, strerror(err)) : 0;
}

int pg_curve_keygen(const char *base, char *errstr, size_t errstr_size)
{
    char pub[PG_CURVE_KEY_LEN], sec[PG_CURVE_KEY_LEN];
    if (zmq_curve_keypair(pub, sec))
        return pg_errf(PG_EIO, errstr, errstr_size, "zmq_curve_keypair: %s", zmq_strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s.key", base);
    int rc = s_write_key(path, sec, 0600, errstr, errstr_size);
    memset(sec, 0, sizeof sec);
    snprintf(path, sizeof path, "%s.pub", base);
    return rc ? rc : s_write_key(path, pub, 0644, errstr, errstr_size);
}

int pg_curve_server(void *sock, const char *secret, char *errstr, size_t errstr_size)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 40) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "polegate", 8))
        return pg_errf(PG_EIO, errstr, errstr_size, "CURVE server: %s", zmq_strerror(errno));
    return 0;
}

int pg_curve_client(void *sock, const char *secret, const char *server_public, char *errstr,
                    size_t errstr_size)
{
    char pub[PG_CURVE_KEY_LEN];
    if (pg_curve_public_of(secret, pub))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "CURVE: not a secret key");
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_public, 40) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 40))
        return pg_errf(PG_EIO, errstr, errstr_size, "CURVE client: %s", zmq_strerror(errno));
    return 0;
}

int pg_curve_endpoint_is_local(const char *endpoint)
{
    if (!endpoint)
        return 1;
    if (!strncmp(endpoint, "ipc://", 6) || !strncmp(endpoint, "inproc://", 9))
        return 1;
    if (strncmp(endpoint, "tcp://", 6))
        return 0;
    const char *h = endpoint + 6;
    return !strncmp(h, "127.", 4) || !strncmp(h, "localhost:", 10) || !strncmp(h, "[::1]:", 6);
}

/* ------------------------------------------------------------------ allow-list */

typedef struct s_allowed {
    char key[PG_CURVE_KEY_LEN];
    char *name;
} s_allowed;

struct pg_curve_allow {
    s_allowed *v;
    size_t n, cap;
};

void pg_curve_allow_destroy(pg_curve_allow **p)
{
    if (!p || !*p)
        return;
    for (size_t i = 0; i < (*p)->n; i++)
        free((*p)->v[i].name);
    free((*p)->v);
    free(*p);
    *p = NULL;
}

pg_curve_allow *pg_curve_allow_load(const char *path, char *errstr, size_t errstr_size)
{
    pg_curve_allow *a = calloc(1, sizeof *a);
    FILE *f = a ? fopen(path ? path : "", "re") : NULL;
    if (!f) {
        pg_errf(a ? PG_EIO : PG_ENOMEM, errstr, errstr_size, "client keys %s: %s",
                path ? path : "(none)", a ? strerror(errno) : "out of memory");
        free(a);
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0, no = 0;
    int bad = 0;
    /* Whoever can write the list chooses who speaks as the RMS. */
    struct stat st;
    char why[PG_ERRSTR_SIZE];
    if (fstat(fileno(f), &st))
        bad = pg_errf(PG_EIO, errstr, errstr_size, "client keys %s: %s", path, strerror(errno));
    else if (pg_keyfile_check_writers(path, &st, why, sizeof why))
        bad = pg_errf(PG_EINVALID, errstr, errstr_size, "client keys %s", why);
    while (!bad && getline(&line, &cap, f) > 0) {
        no++;
        /* '#' is a Z85 digit: only a line that starts with it is a comment */
        char *save = NULL, *key = strtok_r(line, " \t\r\n", &save);
        if (!key || *key == '#')
            continue;
        char *name = strtok_r(NULL, " \t\r\n", &save);
        if (!s_is_z85_key(key)) {
            bad = pg_errf(PG_EINVALID, errstr, errstr_size,
                          "client keys %s:%zu: not a 40-character Z85 public key", path, no);
            break;
        }
        /* The name is the party of every audit event of what that key sends: one key
         * per name, and a name the audit log takes as it is. */
        const char *who = name ? name : key;
        size_t len = strlen(who);
        for (const unsigned char *c = (const unsigned char *)who; !bad && *c; c++)
            if (*c < 0x20 || *c == 0x7f)
                bad = pg_errf(PG_EINVALID, errstr, errstr_size,
                              "client keys %s:%zu: a name holds a control character", path, no);
        if (!bad && len > PG_CURVE_NAME_MAX)
            bad = pg_errf(PG_EINVALID, errstr, errstr_size,
                          "client keys %s:%zu: a name of more than %d bytes", path, no,
                          PG_CURVE_NAME_MAX);
        for (size_t i = 0; !bad && i < a->n; i++)
            if (!strcmp(a->v[i].key, key) || !strcmp(a->v[i].name, who))
                bad = pg_errf(PG_EINVALID, errstr, errstr_size,
                              "client keys %s:%zu: %s is already on the list: each key is "
                              "listed once, with a name of its own (the party of its audit "
                              "events)",
                              path, no, !strcmp(a->v[i].key, key) ? "the key" : "the name");
        if (bad)
            break;
        if (pg_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v) ||
            !(a->v[a->n].name = strdup(name ? name : key))) {
            bad = pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
            break;
        }
        memcpy(a->v[a->n++].key, key, PG_CURVE_KEY_LEN);
    }
    free(line);
    fclose(f);
    if (!bad && !a->n)
        bad = pg_errf(PG_EINVALID, errstr, errstr_size,
                      "client keys %s: no key (nobody could connect)", path);
    if (bad)
        pg_curve_allow_destroy(&a);
    return a;
}

size_t pg_curve_allow_count(const pg_curve_allow *allow)
{
    return allow ? allow->n : 0;
}

const char *pg_curve_allow_find(const pg_curve_allow *allow, const char *key)
{
    for (size_t i = 0; allow && i < allow->n; i++)
        if (!strcmp(allow->v[i].key, key))
            return allow->v[i].name;
    return NULL;
}

/* ------------------------------------------------------------------ ZAP */

struct pg_zap {
    void *sock;
    pthread_mutex_t mu; /* guards allow */
    const pg_curve_allow *allow;
    char *what;
    pthread_t thread;
    atomic_int stop;
    atomic_uint_fast64_t accepted, refused;
    /* Refusals logged in the current minute (the ZAP thread's alone): anyone who has
     * the server's public key can make one, so one line each would let them fill the
     * log; every refusal is counted all the same. */
    int64_t window_ms;
    unsigned logged;
    uint64_t unlogged;
};

#define S_REFUSALS_LOGGED_PER_MINUTE 10

/* The refusals not logged one by one, once their minute is over (or at stop: force). */
static void s_refusals_summary(pg_zap *z, int force)
{
    int64_t now = pg_time_mono_ms();
    if (!force && now - z->window_ms < 60000)
        return;
    if (z->unlogged)
        pg_log(PG_LOG_WARN,
               "%s: %" PRIu64 " more connections refused in the last %.0f s, not logged one "
               "by one (all counted)",
               z->what, z->unlogged, (double)(now - z->window_ms) / 1000.0);
    z->window_ms = now;
    z->logged = 0;
    z->unlogged = 0;
}

/* May this refusal be logged? */
static int s_refusal_logged(pg_zap *z)
{
    s_refusals_summary(z, 0);
    if (z->logged < S_REFUSALS_LOGGED_PER_MINUTE) {
        z->logged++;
        return 1;
    }
    z->unlogged++;
    return 0;
}

/* One frame of a request into out (NUL-terminated, cut at size - 1). */
static int s_frame(void *sock, char *out, size_t size, size_t *len)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    size_t n = zmq_msg_size(&m);
    *len = n;
    n = n < size - 1 ? n : size - 1;
    memcpy(out, zmq_msg_data(&m), n);
    out[n] = '\0';
    int more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    return more;
}

/* A ZAP reply; key (Z85, may be "") goes in the metadata as property PG_CURVE_KEY_PROPERTY,
 * so that the server sees which key a connection was let in with (its name is not
 * enough: a key replaced under the same name). */
static void s_answer(void *sock, const char *version, const char *id, size_t id_len,
                     const char *code, const char *text, const char *user, const char *key)
{
    uint8_t meta[1 + sizeof PG_CURVE_KEY_PROPERTY + 4 + PG_CURVE_KEY_LEN];
    size_t nl = strlen(PG_CURVE_KEY_PROPERTY), kl = strlen(key), m = 0;
    if (kl) {
        meta[m++] = (uint8_t)nl;
        memcpy(meta + m, PG_CURVE_KEY_PROPERTY, nl);
        m += nl;
        meta[m++] = 0, meta[m++] = 0, meta[m++] = 0, meta[m++] = (uint8_t)kl;
        memcpy(meta + m, key, kl);
        m += kl;
    }
    zmq_send(sock, version, strlen(version), ZMQ_SNDMORE);
    zmq_send(sock, id, id_len, ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, meta, m, 0);
}

static void s_handle(pg_zap *z)
{
    /* version, request id, domain, address, routing id, mechanism, credentials... */
    char f[7][256];
    size_t len[7] = {0};
    int n = 0, more = 1;
    while (more > 0 && n < 7) {
        more = s_frame(z->sock, f[n], sizeof f[n], &len[n]);
        if (more < 0)
            return;
        n++;
    }
    while (more > 0) { /* frames beyond the seventh: read and drop */
        char junk[8];
        size_t jl;
        more = s_frame(z->sock, junk, sizeof junk, &jl);
    }
    if (n < 6)
        return; /* not a ZAP request: no answer can be framed */
    char key[PG_CURVE_KEY_LEN] = "", name[PG_CURVE_NAME_MAX + PG_CURVE_KEY_LEN];
    const char *user = NULL;
    if (!strcmp(f[5], "CURVE") && n == 7 && len[6] == 32)
        zmq_z85_encode(key, (const uint8_t *)f[6], 32);
    pthread_mutex_lock(&z->mu);
    if (*key && (user = pg_curve_allow_find(z->allow, key))) {
        snprintf(name, sizeof name, "%s", user);
        user = name;
    }
    pthread_mutex_unlock(&z->mu);
    if (user) {
        atomic_fetch_add(&z->accepted, 1);
        pg_log(PG_LOG_DEBUG, "%s: connection from %s with key %s (%s) accepted", z->what, f[3], key,
               user);
        s_answer(z->sock, "1.0", f[1], len[1], "200", "OK", user, key);
        return;
    }
    atomic_fetch_add(&z->refused, 1);
    if (s_refusal_logged(z))
        pg_log(PG_LOG_WARN, "%s: connection from %s refused: %s%s%s", z->what, f[3],
               *key ? "key not on the allow-list: " : "not CURVE (mechanism ", *key ? key : f[5],
               *key ? "" : ")");
    s_answer(z->sock, "1.0", f[1], len[1], "400", "key not allowed", "", "");
}

static void *s_run(void *arg)
{
    pg_zap *z = arg;
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t item = {z->sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, 100);
        if (rc < 0 && errno == ETERM)
            break;
        if (rc > 0)
            s_handle(z);
        else if (z->unlogged)
            s_refusals_summary(z, 0);
    }
    s_refusals_summary(z, 1);
    return NULL;
}

pg_zap *pg_zap_start(void *ctx, const pg_curve_allow *allow, const char *what, char *errstr,
                     size_t errstr_size)
{
    pg_zap *z = calloc(1, sizeof *z);
    if (!z || !(z->what = strdup(what))) {
        free(z);
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    z->allow = allow;
    z->window_ms = pg_time_mono_ms();
    pthread_mutex_init(&z->mu, NULL);
    int linger = 0;
    z->sock = zmq_socket(ctx, ZMQ_REP);
    if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_bind(z->sock, S_ZAP_ENDPOINT)) {
        pg_errf(PG_EIO, errstr, errstr_size, "%s: ZAP handler: %s", what, zmq_strerror(errno));
        goto err;
    }
    if (pthread_create(&z->thread, NULL, s_run, z)) {
        pg_errf(PG_EINTERNAL, errstr, errstr_size, "%s: ZAP handler: no thread", what);
        goto err;
    }
    return z;
err:
    if (z->sock)
        zmq_close(z->sock);
    pthread_mutex_destroy(&z->mu);
    free(z->what);
    free(z);
    return NULL;
}

void pg_zap_set_allow(pg_zap *z, const pg_curve_allow *allow)
{
    pthread_mutex_lock(&z->mu);
    z->allow = allow;
    pthread_mutex_unlock(&z->mu);
}

void pg_zap_stop(pg_zap **p)
{
    if (!p || !*p)
        return;
    pg_zap *z = *p;
    atomic_store(&z->stop, 1);
    pthread_join(z->thread, NULL);
    zmq_close(z->sock);
    pthread_mutex_destroy(&z->mu);
    free(z->what);
    free(z);
    *p = NULL;
}

void pg_zap_get_stats(pg_zap *zap, pg_zap_stats *out)
{
    out->accepted = atomic_load(&zap->accepted);
    out->refused = atomic_load(&zap->refused);
}
