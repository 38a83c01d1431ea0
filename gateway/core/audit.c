/* Audit log: JSON lines, each event hashed (HMAC-SHA-256 with the chain's key, or
 * SHA-256 without one; OpenSSL's libcrypto) with the previous event's hash so that editing,
 * deleting or reordering lines shows; rotation carries the chain into the next file;
 * Ed25519-signed checkpoints anchor the head outside the file. */
#include "audit_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyfile.h"
#include "log.h"
#include "polegate/buf.h"
#include "polegate/error.h"
#include "polegate/json.h"
#include "polegate/timeutil.h"

/* What follows the canonical event on its line: ,"hash":"<64 hex>"} */
#define S_HASH_KEY ",\"hash\":\""
#define S_SUFFIX_LEN (sizeof S_HASH_KEY - 1 + PG_AUDIT_HASH_LEN + 2)
#define S_FIELD_MAX PG_AUDIT_FIELD_MAX
/* Far more than any event (a dozen fields of at most S_FIELD_MAX bytes). */
#define S_TAIL_MAX 65536

static const char *const s_action_names[] = {NULL,
#define S_ACTION_NAME(id, name) name,
                                             PG_AUDIT_ACTION_TABLE(S_ACTION_NAME)
#undef S_ACTION_NAME
};

/* The keys of an event in the order they are written; "hash" comes last. */
static const char *const s_keys[] = {
    "seq",         "time",    "action",    "party",          "entity_id", "native_id", "origin",
    "destination", "partner", "agreement", "policy_version", "version",   "outcome",
};
#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])

const char *pg_audit_action_name(pg_audit_action action)
{
    return action > PG_AUDIT_NONE && action < PG_AUDIT_ACTION_COUNT ? s_action_names[action] : NULL;
}

pg_audit_action pg_audit_action_parse(const char *name)
{
    for (int a = PG_AUDIT_NONE + 1; name && a < PG_AUDIT_ACTION_COUNT; a++)
        if (!strcmp(s_action_names[a], name))
            return (pg_audit_action)a;
    return PG_AUDIT_NONE;
}

static void s_event_from(pg_audit_event *ev, pg_audit_action action, const char *id,
                         const pg_origin *origin, uint64_t version)
{
    memset(ev, 0, sizeof *ev);
    ev->action = action;
    ev->entity_id = id && *id ? id : NULL;
    if (origin) {
        ev->native_id = origin->native_id && *origin->native_id ? origin->native_id : NULL;
        ev->origin = origin->force && *origin->force ? origin->force : NULL;
    }
    ev->version = version;
}

void pg_audit_event_from_entity(pg_audit_event *ev, pg_audit_action action,
                                const pg_entity_update *entity)
{
    s_event_from(ev, action, entity->id, entity->origin, entity->version);
}

void pg_audit_event_from_link(pg_audit_event *ev, pg_audit_action action,
                              const pg_link_update *link)
{
    s_event_from(ev, action, link->id, link->origin, link->version);
}

struct pg_audit {
    pthread_mutex_t lock;
    int fd;
    char *path;
    uint64_t seq;                     /* of the last event written */
    char prev[PG_AUDIT_HASH_LEN + 1]; /* its hash */
    off_t size;                       /* bytes of complete events in the file */
    uint64_t first_seq;               /* of the file's first event (0: the file is empty) */
    int dirty;                        /* bytes past size may be in the file: cut them first */
    int dir_unsynced; /* a rotation's directory entries may not last yet: sync them first */
    unsigned sync_every;
    uint64_t rotate_bytes;
    int64_t rotate_ms, opened_ms;
    long (*write_fn)(int fd, const void *buf, size_t len);
    int (*sync_fn)(int fd);
    uint64_t failures;
    int64_t (*clock_ms)(void *ud);
    void *clock_ud;
    void (*on_event)(void *ud, const pg_audit_event *ev, int rc);
    void *on_event_ud;
    pg_audit__hasher *hasher; /* used under lock */
    int keyed;                /* HMAC with audit.key_file, else plain SHA-256 */
    int key_checked;          /* at open: the last event verified under the key */
    pg_buf line;              /* reused for every event */
    /* At open, of the file whose last line was read: that line's canonical bytes and
     * the hash of the line before it, when the tail read holds it (have_before). */
    pg_buf last_canon;
    char before[PG_AUDIT_HASH_LEN + 1];
    int have_before;
};

/* ------------------------------------------------------------------ shared */

struct pg_audit__hasher {
    EVP_MD_CTX *md;   /* SHA-256, without a key */
    EVP_MAC_CTX *mac; /* HMAC-SHA-256 holding the key, with one */
};

/* libcrypto's implementations, fetched once: fetching per hash costs more than the
 * hash of an event. */
static EVP_MD *s_sha256;
static EVP_MAC *s_hmac;
static pthread_once_t s_fetch_once = PTHREAD_ONCE_INIT;

static void s_fetch(void)
{
    s_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    s_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

pg_audit__hasher *pg_audit__hasher_new(const pg_audit_key *key, char *errstr, size_t errstr_size)
{
    pthread_once(&s_fetch_once, s_fetch);
    pg_audit__hasher *h = calloc(1, sizeof *h);
    if (!h) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    int ok;
    if (key) {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
            OSSL_PARAM_construct_end()};
        ok = s_hmac && (h->mac = EVP_MAC_CTX_new(s_hmac)) &&
             EVP_MAC_init(h->mac, key->bytes, sizeof key->bytes, params);
    } else {
        ok = s_sha256 && (h->md = EVP_MD_CTX_new());
    }
    if (!ok) {
        pg_errf(PG_EINTERNAL, errstr, errstr_size,
                "libcrypto cannot make a %s (the audit log's chain)",
                key ? "HMAC-SHA-256" : "SHA-256");
        pg_audit__hasher_destroy(&h);
    }
    return h;
}

void pg_audit__hasher_destroy(pg_audit__hasher **p)
{
    if (!p || !*p)
        return;
    EVP_MD_CTX_free((*p)->md);
    EVP_MAC_CTX_free((*p)->mac); /* cleanses the key */
    free(*p);
    *p = NULL;
}

/* HMAC-SHA-256(key, prev hex || canonical event) with a key; SHA-256 of the same
 * without one. */
int pg_audit__hash(pg_audit__hasher *h, const char *prev, const char *canon, size_t len,
                   char out[PG_AUDIT_HASH_LEN + 1])
{
    unsigned char mac[32];
    size_t n = 0;
    unsigned int un = 0;
    int ok;
    out[0] = '\0';
    if (h->mac) /* a NULL key: the one the context holds */
        ok = EVP_MAC_init(h->mac, NULL, 0, NULL) &&
             EVP_MAC_update(h->mac, (const unsigned char *)prev, PG_AUDIT_HASH_LEN) &&
             EVP_MAC_update(h->mac, (const unsigned char *)canon, len) &&
             EVP_MAC_final(h->mac, mac, &n, sizeof mac) && n == sizeof mac;
    else
        ok = EVP_DigestInit_ex(h->md, s_sha256, NULL) &&
             EVP_DigestUpdate(h->md, prev, PG_AUDIT_HASH_LEN) &&
             EVP_DigestUpdate(h->md, canon, len) && EVP_DigestFinal_ex(h->md, mac, &un) &&
             un == sizeof mac;
    if (ok)
        sodium_bin2hex(out, PG_AUDIT_HASH_LEN + 1, mac, sizeof mac);
    OPENSSL_cleanse(mac, sizeof mac);
    return ok ? 0 : -1;
}

/* "2026-03-29T01:30:00.123Z": fixed width, so times compare as strings. */
void pg_audit__format_time(int64_t ms, char out[32])
{
    int64_t secs = ms / 1000, milli = ms % 1000;
    if (milli < 0) {
        milli += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)milli);
}

static int64_t s_real_clock(void *ud)
{
    (void)ud;
    return pg_time_wall_ms();
}

/* Split and check one line (without its newline). canon gets the hashed bytes. */
int pg_audit__parse_line(const char *line, size_t len, pg_buf *canon, pg_audit_line *out,
                         char *errstr, size_t errstr_size)
{
    out->obj = NULL;
    if (!len)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "empty line");
    if (memchr(line, '\0', len))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "holds a NUL byte");
    if (len < S_SUFFIX_LEN + 2 || line[len - 1] != '}' || line[len - 2] != '"' ||
        memcmp(line + len - S_SUFFIX_LEN, S_HASH_KEY, sizeof S_HASH_KEY - 1))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "does not end with the event's \"hash\" (cut short or not an event)");
    const char *hex = line + len - 2 - PG_AUDIT_HASH_LEN;
    for (int i = 0; i < PG_AUDIT_HASH_LEN; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "hash is not 64 lower-case hex digits");
    memcpy(out->hash, hex, PG_AUDIT_HASH_LEN);
    out->hash[PG_AUDIT_HASH_LEN] = '\0';
    pg_buf_reset(canon);
    if (pg_buf_append(canon, line, len - S_SUFFIX_LEN) || pg_buf_putc(canon, '}'))
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    json_error_t jerr;
    out->obj = json_loadb((const char *)canon->data, canon->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!out->obj || !json_is_object(out->obj)) {
        json_decref(out->obj);
        out->obj = NULL;
        return pg_errf(PG_EINVALID, errstr, errstr_size, "not a JSON object: %s", jerr.text);
    }
    const char *key;
    json_t *value;
    json_object_foreach(out->obj, key, value)
    {
        size_t k = 0;
        while (k < S_NKEYS && strcmp(s_keys[k], key))
            k++;
        if (k == S_NKEYS)
            return pg_errf(PG_EINVALID, errstr, errstr_size, "unknown field \"%.40s\"", key);
    }
    json_t *seq = json_object_get(out->obj, "seq");
    json_t *when = json_object_get(out->obj, "time");
    if (!json_is_integer(seq) || json_integer_value(seq) < 1)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "seq is not a positive integer");
    out->seq = (uint64_t)json_integer_value(seq);
    if (!json_is_string(when))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "time is missing");
    if (pg_audit_action_parse(json_string_value(json_object_get(out->obj, "action"))) ==
        PG_AUDIT_NONE)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "action is missing or unknown");
    return 0;
}

/* ------------------------------------------------------------------ keys */

/* Read exactly n bytes as 2n hex digits from path; secret: refuse a file that group
 * or others may read or write. */
static int s_read_hex_file(const char *path, uint8_t *out, size_t n, int secret, char *errstr,
                           size_t errstr_size)
{
    char text[256];
    int rc = pg_keyfile_read(path, secret, text, sizeof text, errstr, errstr_size);
    if (rc) {
        sodium_memzero(text, sizeof text);
        return rc;
    }
    size_t bin_len = 0;
    const char *end = NULL;
    char *t = text;
    while (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r')
        t++;
    if (sodium_hex2bin(out, n, t, strlen(t), NULL, &bin_len, &end) || bin_len != n ||
        strspn(end, " \t\r\n") != strlen(end)) {
        sodium_memzero(text, sizeof text);
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "key file %s: expected %zu hex digits (`polegate audit keygen` makes "
                       "one)",
                       path, 2 * n);
    }
    sodium_memzero(text, sizeof text);
    return 0;
}

int pg_audit_key_load(const char *path, pg_audit_key *key, char *errstr, size_t errstr_size)
{
    if (sodium_init() < 0)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "libsodium cannot start");
    return s_read_hex_file(path, key->bytes, sizeof key->bytes, 1, errstr, errstr_size);
}

int pg_audit_signing_key_load(const char *path, pg_audit_signing_key *key, char *errstr,
                              size_t errstr_size)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    if (sodium_init() < 0)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "libsodium cannot start");
    int rc = s_read_hex_file(path, seed, sizeof seed, 1, errstr, errstr_size);
    if (!rc)
        crypto_sign_seed_keypair(key->public_key, key->secret, seed);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

int pg_audit_public_key_load(const char *path, pg_audit_public_key *key, char *errstr,
                             size_t errstr_size)
{
    if (sodium_init() < 0)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "libsodium cannot start");
    return s_read_hex_file(path, key->bytes, sizeof key->bytes, 0, errstr, errstr_size);
}

static int s_write_hex_file(const char *dir, const char *name, const uint8_t *bytes, size_t n,
                            mode_t mode, char *errstr, size_t errstr_size)
{
    char path[4096], hex[2 * 64 + 2];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sodium_bin2hex(hex, sizeof hex - 1, bytes, n); /* at most 128 digits and '\0' */
    size_t hn = strlen(hex);
    hex[hn] = '\n';
    hex[hn + 1] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", path, strerror(errno));
    ssize_t w = write(fd, hex, strlen(hex));
    int bad = w != (ssize_t)strlen(hex) || fsync(fd);
    int err = errno;
    close(fd);
    sodium_memzero(hex, sizeof hex);
    return bad ? pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", path, strerror(err)) : 0;
}

int pg_audit_keygen(const char *dir, char *errstr, size_t errstr_size)
{
    if (sodium_init() < 0)
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "libsodium cannot start");
    uint8_t hmac[PG_AUDIT_KEY_LEN], seed[crypto_sign_SEEDBYTES];
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    randombytes_buf(hmac, sizeof hmac);
    randombytes_buf(seed, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    int rc = s_write_hex_file(dir, "audit-hmac.key", hmac, sizeof hmac, 0600, errstr, errstr_size);
    if (!rc)
        rc = s_write_hex_file(dir, "audit-sign.key", seed, sizeof seed, 0600, errstr, errstr_size);
    if (!rc)
        rc = s_write_hex_file(dir, "audit-sign.pub", pk, sizeof pk, 0644, errstr, errstr_size);
    sodium_memzero(hmac, sizeof hmac);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(sk, sizeof sk);
    return rc;
}

/* ------------------------------------------------------------------ writing */

/* Parse the line of len bytes at start into *ln (the caller frees ln->obj). */
static int s_parse_at(const char *start, size_t len, pg_audit_line *ln, char *why, size_t why_size)
{
    pg_buf canon = PG_BUF_INIT;
    int rc = pg_audit__parse_line(start, len, &canon, ln, why, why_size);
    pg_buf_free(&canon);
    return rc;
}

/* The seq of the file's first line (0 when the file is empty). */
static int s_read_first(pg_audit *a, char *errstr, size_t errstr_size)
{
    a->first_seq = 0;
    if (!a->size)
        return 0;
    size_t want = a->size < S_TAIL_MAX ? (size_t)a->size : S_TAIL_MAX;
    char *head = malloc(want);
    if (!head)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    int rc = 0;
    ssize_t got = pread(a->fd, head, want, 0);
    const char *nl = got == (ssize_t)want ? memchr(head, '\n', want) : NULL;
    pg_audit_line first = {0};
    char why[PG_ERRSTR_SIZE];
    if (!nl)
        rc = pg_errf(PG_EIO, errstr, errstr_size, "%s: cannot read its first line", a->path);
    else if (s_parse_at(head, (size_t)(nl - head), &first, why, sizeof why))
        rc = pg_errf(PG_EIO, errstr, errstr_size,
                     "%s: its first line is not an audit event (%s): check it with `polegate "
                     "audit verify`",
                     a->path, why);
    else
        a->first_seq = first.seq;
    json_decref(first.obj);
    free(head);
    return rc;
}

/* Is fd a file of the gateway's own, not one whoever writes its directory planted: a
 * regular file with one name (not a second name of another file), owned by this user
 * or by also. */
static int s_own_file(int fd, uid_t also)
{
    struct stat st;
    return !fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
           (st.st_uid == geteuid() || st.st_uid == also);
}

/* The current file ends with part of an event: a batch's write(2) that a crash (kill
 * -9 stops a write between pages) or a power cut left short. Its sync never returned,
 * so nothing it records happened (every step waits for its events' sync): the bytes
 * are no event of the log. They are moved to <path>.torn (kept for whoever looks into
 * the crash, never read back) and cut off, and the chain goes on from the last whole
 * event. A whole last line that is not an event is damage, and is refused. */
static int s_cut_torn(pg_audit *a, const char *bytes, size_t len, char *errstr, size_t errstr_size)
{
    char torn[PATH_MAX];
    if ((size_t)snprintf(torn, sizeof torn, "%s.torn", a->path) >= sizeof torn)
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: path too long", a->path);
    /* Never through a name whoever writes the directory planted: a symbolic link (the
     * bytes, the attacker's, would be appended to its target), a second name of another
     * file, another user's file. */
    int fd = open(torn, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd >= 0 && !s_own_file(fd, geteuid())) {
        close(fd);
        fd = -1;
        errno = EPERM;
    }
    int bad =
        fd < 0 || write(fd, bytes, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd);
    int err = errno;
    if (fd < 0 && (err == ELOOP || err == EPERM))
        return pg_errf(PG_EIO, errstr, errstr_size,
                       "%s: ends with %zu bytes of an unfinished event, not cut off: %s is not "
                       "a file of the gateway's own (a symbolic link, a second name, another "
                       "user's): remove it",
                       a->path, len, torn);
    if (fd >= 0)
        close(fd);
    if (bad)
        return pg_errf(PG_EIO, errstr, errstr_size,
                       "%s: ends with %zu bytes of an unfinished event, not cut off: %s: %s",
                       a->path, len, torn, strerror(err));
    off_t keep = a->size - (off_t)len;
    if (ftruncate(a->fd, keep) || fsync(a->fd))
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: cutting its unfinished last event: %s",
                       a->path, strerror(errno));
    a->size = keep;
    pg_log(PG_LOG_WARN,
           "audit: %s ended with %zu bytes of an event whose write a crash cut short (never "
           "synced: nothing it records happened); cut off at %jd bytes and kept in %s",
           a->path, len, (intmax_t)keep, torn);
    return 0;
}

/* The last line of the file must be a complete event: the chain continues from it.
 * An empty file continues from the newest rotated file, if any. cut: the file is the
 * writer's current one, whose unfinished last event is cut off (s_cut_torn). */
static int s_read_tail_of(pg_audit *a, int cut, char *errstr, size_t errstr_size)
{
    struct stat st;
    if (fstat(a->fd, &st))
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", a->path, strerror(errno));
    a->size = st.st_size;
    if (!st.st_size)
        return 0;
    size_t want = st.st_size < S_TAIL_MAX ? (size_t)st.st_size : S_TAIL_MAX;
    char *tail = malloc(want);
    if (!tail)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    int rc = 0;
    ssize_t got = pread(a->fd, tail, want, st.st_size - (off_t)want);
    if (got != (ssize_t)want) {
        rc = pg_errf(PG_EIO, errstr, errstr_size, "%s: cannot read its last line", a->path);
        goto out;
    }
    if (tail[want - 1] != '\n') {
        const char *nl = memrchr(tail, '\n', want);
        size_t partial = nl ? (size_t)(tail + want - nl - 1) : want;
        if (cut && (nl || want == (size_t)st.st_size)) {
            rc = s_cut_torn(a, tail + want - partial, partial, errstr, errstr_size);
            free(tail);
            return rc ? rc : s_read_tail_of(a, 0, errstr, errstr_size);
        }
        rc = pg_errf(PG_EIO, errstr, errstr_size,
                     "%s: ends with %zu bytes that are not a complete event (a crash while "
                     "writing?): check it with `polegate audit verify`, then cut them with "
                     "`truncate -s %jd %s`",
                     a->path, partial, (intmax_t)(st.st_size - (off_t)partial), a->path);
        goto out;
    }
    const char *end = tail + want - 1;
    const char *nl = memrchr(tail, '\n', want - 1);
    if (!nl && want < (size_t)st.st_size) {
        rc = pg_errf(PG_EIO, errstr, errstr_size, "%s: its last line is longer than %d bytes",
                     a->path, S_TAIL_MAX);
        goto out;
    }
    const char *start = nl ? nl + 1 : tail;
    pg_audit_line last = {0};
    char why[PG_ERRSTR_SIZE];
    rc = s_parse_at(start, (size_t)(end - start), &last, why, sizeof why);
    json_decref(last.obj);
    if (rc) {
        rc = pg_errf(PG_EIO, errstr, errstr_size,
                     "%s: its last line is not an audit event (%s): check it with `polegate "
                     "audit verify`",
                     a->path, why);
        goto out;
    }
    a->seq = last.seq;
    memcpy(a->prev, last.hash, sizeof a->prev);
    /* For the key check (s_check_key): the last line's canonical bytes, and the hash
     * of the line before it when the tail holds the whole of it. */
    pg_audit_line before = {0};
    if ((rc = pg_audit__parse_line(start, (size_t)(end - start), &a->last_canon, &last, why,
                                   sizeof why)))
        rc = pg_errf(rc, errstr, errstr_size, "%s: %s", a->path, why);
    json_decref(last.obj);
    a->have_before = 0;
    if (!rc && nl) {
        const char *bnl = memrchr(tail, '\n', (size_t)(nl - tail));
        const char *bstart = bnl ? bnl + 1 : tail;
        if ((bnl || want == (size_t)st.st_size) &&
            !s_parse_at(bstart, (size_t)(nl - bstart), &before, why, sizeof why)) {
            memcpy(a->before, before.hash, sizeof a->before);
            a->have_before = 1;
        }
        json_decref(before.obj);
    }
out:
    free(tail);
    return rc;
}

/* The last event of the file `at` read must verify under this log's key (HMAC-SHA-256
 * with audit.key_file, SHA-256 without one): a chain continued under another key (a
 * key added to a log written without, or changed) leaves a log that no key verifies.
 * prev: the hash that event was chained to. */
static int s_check_key(const pg_audit *a, const pg_audit *at, const char *prev, char *errstr,
                       size_t errstr_size)
{
    char hash[PG_AUDIT_HASH_LEN + 1];
    if (pg_audit__hash(a->hasher, prev, (const char *)at->last_canon.data, at->last_canon.len,
                       hash))
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "audit: libcrypto failed");
    if (!strcmp(hash, at->prev))
        return 0;
    return pg_errf(PG_ECONFIG, errstr, errstr_size,
                   "%s: its last event (seq %" PRIu64 ") does not verify %s: the log was "
                   "written with another key or none, and continuing it would leave a log no "
                   "key verifies. Keep it: move it and its rotated files aside (check them "
                   "with `polegate audit verify`), or configure the key it was written with",
                   at->path, at->seq,
                   a->keyed ? "with audit.key_file" : "without a key (audit.key_file not set)");
}

/* The hash of the last event of the rotated file path into out. */
static int s_last_hash(const char *path, char out[PG_AUDIT_HASH_LEN + 1], char *errstr,
                       size_t errstr_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", path, strerror(errno));
    pg_audit f = {.fd = fd, .path = (char *)path};
    memcpy(f.prev, PG_AUDIT_GENESIS, sizeof f.prev);
    int rc = s_read_tail_of(&f, 0, errstr, errstr_size);
    memcpy(out, f.prev, PG_AUDIT_HASH_LEN + 1);
    pg_buf_free(&f.last_canon);
    close(fd);
    return rc;
}

/* The hash the last event of `at` (files[i] of the n rotated ones, or the current file
 * when i == n) was chained to into out: the line before it, the start of the chain, or
 * the last event of the file rotated before; 1 when no file kept holds it (rotated
 * files archived elsewhere: nothing to check against). */
static int s_prev_of_last(const pg_audit *at, char **files, size_t i,
                          char out[PG_AUDIT_HASH_LEN + 1], char *errstr, size_t errstr_size)
{
    if (at->have_before || at->seq == 1) {
        memcpy(out, at->have_before ? at->before : PG_AUDIT_GENESIS, PG_AUDIT_HASH_LEN + 1);
        return 0;
    }
    if (!i)
        return 1;
    return s_last_hash(files[i - 1], out, errstr, errstr_size);
}

/* The files rotated from path ("<path>.<20 digits>"), oldest first. */
void pg_audit__free_list(char **files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
}

/* Where the chain goes on from: the last event of the current file, or, when it is
 * empty after a rotation, of the newest rotated file; checked against the key. */
static int s_read_tail(pg_audit *a, char *errstr, size_t errstr_size)
{
    memcpy(a->prev, PG_AUDIT_GENESIS, sizeof a->prev);
    a->seq = 0;
    a->key_checked = 0;
    int rc = s_read_tail_of(a, 1, errstr, errstr_size);
    char **files = NULL;
    size_t n = 0;
    if (rc || (a->size && (a->have_before || a->seq == 1)) ||
        (rc = pg_audit__rotated(a->path, &files, &n, errstr, errstr_size)))
        goto check;
    if (!a->size && n) {
        int fd = open(files[n - 1], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", files[n - 1], strerror(errno));
            goto out;
        }
        pg_audit last = {.fd = fd, .path = files[n - 1]};
        memcpy(last.prev, PG_AUDIT_GENESIS, sizeof last.prev);
        rc = s_read_tail_of(&last, 0, errstr, errstr_size);
        a->seq = last.seq;
        memcpy(a->prev, last.prev, sizeof a->prev);
        char prev[PG_AUDIT_HASH_LEN + 1];
        int found = rc ? rc : s_prev_of_last(&last, files, n - 1, prev, errstr, errstr_size);
        rc = found < 0 ? found : found == 0 ? s_check_key(a, &last, prev, errstr, errstr_size) : 0;
        a->key_checked = found == 0;
        pg_buf_free(&last.last_canon);
        close(fd);
        goto out;
    }
check:
    if (!rc && a->size) {
        char prev[PG_AUDIT_HASH_LEN + 1];
        int found = s_prev_of_last(a, files, n, prev, errstr, errstr_size);
        rc = found < 0 ? found : found == 0 ? s_check_key(a, a, prev, errstr, errstr_size) : 0;
        a->key_checked = found == 0;
        rc = rc ? rc : s_read_first(a, errstr, errstr_size);
    }
out:
    pg_audit__free_list(files, n);
    pg_buf_free(&a->last_canon);
    return rc;
}

/* Open path for appending, locked: two writers would fork the chain. Never through a
 * name whoever writes the directory planted (s_own_file): a symbolic link (events would
 * be appended to its target), a second name of another file, another user's file.
 * Root (an operator's command on the daemon's log) also takes a file of the user who
 * owns the directory. */
static int s_open_file(const char *path, int extra_flags, char *errstr, size_t errstr_size)
{
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | extra_flags, 0640);
    int err = errno;
    uid_t also = geteuid();
    if (fd >= 0 && geteuid() == 0) {
        char *dir = g_path_get_dirname(path);
        struct stat dst;
        if (!stat(dir, &dst))
            also = dst.st_uid;
        g_free(dir);
    }
    if ((fd < 0 && err == ELOOP) || (fd >= 0 && !s_own_file(fd, also))) {
        if (fd >= 0)
            close(fd);
        return pg_errf(PG_EIO, errstr, errstr_size,
                       "%s: not a file of the gateway's own (a symbolic link, a second name, "
                       "another user's): not opened; remove it, or set audit.path",
                       path);
    }
    if (fd < 0)
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", path, strerror(err));
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: another process is writing this audit log",
                       path);
    }
    return fd;
}

int pg_audit_in_use(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_EX | LOCK_NB) && errno == EWOULDBLOCK;
    close(fd); /* and with it the lock, if it was taken */
    return busy;
}

/* The key's id, beside the log in <path>.keyid: "hmac-sha256 " and the HMAC of a fixed
 * text under the key (which tells nothing of the key), or "none". It says which key
 * the chain is under when the chain cannot (its last event the first of its file, the
 * file before it archived elsewhere). */
#define S_KEYID_TEXT "polegate audit key id"

static int s_key_id(const pg_audit *a, char *out, size_t size, char *errstr, size_t errstr_size)
{
    if (!a->keyed) {
        snprintf(out, size, "none\n");
        return 0;
    }
    char h[PG_AUDIT_HASH_LEN + 1];
    if (pg_audit__hash(a->hasher, PG_AUDIT_GENESIS, S_KEYID_TEXT, strlen(S_KEYID_TEXT), h))
        return pg_errf(PG_EINTERNAL, errstr, errstr_size, "audit: libcrypto failed");
    snprintf(out, size, "hmac-sha256 %s\n", h);
    return 0;
}

/* The log must be under the key its key id names; a log with none yet gets one (made
 * durable: file and directory synced). */
static int s_check_key_id(pg_audit *a, char *errstr, size_t errstr_size)
{
    char want[PG_AUDIT_HASH_LEN + 32], have[PG_AUDIT_HASH_LEN + 32] = "", path[PATH_MAX],
                                                                tmp[PATH_MAX];
    int rc = s_key_id(a, want, sizeof want, errstr, errstr_size);
    if (rc)
        return rc;
    if ((size_t)snprintf(path, sizeof path, "%s.keyid", a->path) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s.keyid.new", a->path) >= sizeof tmp)
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: path too long", a->path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        ssize_t n = read(fd, have, sizeof have - 1);
        close(fd);
        have[n > 0 ? n : 0] = '\0';
        if (!strcmp(have, want))
            return 0;
        int none = !strcmp(have, "none\n");
        int hmac = strlen(have) == 12 + PG_AUDIT_HASH_LEN + 1 &&
                   !strncmp(have, "hmac-sha256 ", 12) && have[12 + PG_AUDIT_HASH_LEN] == '\n';
        if (!none && !hmac)
            return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                           "%s: damaged (not \"none\" nor \"hmac-sha256 <64 hex digits>\"): "
                           "the key the log %s is under cannot be told; check the log with "
                           "`polegate audit verify`, then remove this file",
                           path, a->path);
        return pg_errf(PG_ECONFIG, errstr, errstr_size,
                       "%s: says the log %s was written %s, not %s: continuing it would leave a "
                       "log no key verifies. Keep it: move it, its rotated files and this file "
                       "aside, or configure the key it was written with",
                       path, a->path, none ? "without a key" : "with another audit.key_file",
                       a->keyed ? "with audit.key_file" : "without a key (audit.key_file not set)");
    }
    if (errno != ENOENT)
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", path, strerror(errno));
    if (a->seq && !a->key_checked)
        pg_log(PG_LOG_WARN,
               "audit: %s: its last event (seq %" PRIu64 ") is the first of its file and the "
               "file before it is not here, so the key it was written with cannot be checked; "
               "%s records this key from now on",
               a->path, a->seq, path);
    /* Whole or not at all: written aside, synced, renamed into place, the directory
     * synced; owned like the log (a root-run command must not leave the daemon a file
     * it cannot read). */
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
    size_t len = strlen(want);
    struct stat st;
    ssize_t put = fd < 0 ? -1 : write(fd, want, len);
    int err = fd < 0 || put < 0 ? errno : (size_t)put != len ? EIO : 0;
    if (!err && !fstat(a->fd, &st) && geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid))
        err = errno;
    if (!err && fsync(fd))
        err = errno;
    if (fd >= 0)
        close(fd);
    if (!err && rename(tmp, path))
        err = errno;
    if (!err) {
        char *dir = g_path_get_dirname(a->path);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        err = dfd < 0 || fsync(dfd) ? errno : 0;
        if (dfd >= 0)
            close(dfd);
        g_free(dir);
    }
    if (err) {
        unlink(tmp);
        return pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", path, strerror(err));
    }
    return 0;
}

/* A log that is gone while its key id (written with its first event's file) and no
 * rotated file of it remain: removed or moved away. Starting a new chain there would
 * lose its events without a word (`audit verify --topic` would find it later). */
static int s_check_not_gone(const char *path, char *errstr, size_t errstr_size)
{
    char keyid[PATH_MAX];
    struct stat st;
    if ((size_t)snprintf(keyid, sizeof keyid, "%s.keyid", path) >= sizeof keyid ||
        !lstat(path, &st) || errno != ENOENT || lstat(keyid, &st))
        return 0;
    char **files = NULL;
    size_t n = 0;
    int rc = pg_audit__rotated(path, &files, &n, errstr, errstr_size);
    pg_audit__free_list(files, n);
    if (rc || n)
        return rc;
    return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                   "%s is gone but %s remains: the log was removed or moved, and a new chain "
                   "here would lose its events unseen. Put it back; or, to begin a new chain "
                   "on purpose, move %s aside too",
                   path, keyid, keyid);
}

pg_audit *pg_audit_new(const char *path, const pg_audit_options *opts, char *errstr,
                       size_t errstr_size)
{
    pg_audit *a = calloc(1, sizeof *a);
    if (!a) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    a->fd = -1;
    pthread_mutex_init(&a->lock, NULL);
    if (sodium_init() < 0) {
        pg_errf(PG_EINTERNAL, errstr, errstr_size, "libsodium cannot start");
        goto err;
    }
    a->sync_every = opts && opts->sync_every > 1 ? opts->sync_every : 1;
    a->clock_ms = opts && opts->clock_ms ? opts->clock_ms : s_real_clock;
    a->clock_ud = opts ? opts->clock_ud : NULL;
    a->write_fn = opts ? opts->write_fn : NULL;
    a->sync_fn = opts ? opts->sync_fn : NULL;
    a->on_event = opts ? opts->on_event : NULL;
    a->on_event_ud = opts ? opts->on_event_ud : NULL;
    a->rotate_bytes = opts ? opts->rotate_bytes : 0;
    a->rotate_ms = opts ? opts->rotate_ms : 0;
    if (!(a->hasher = pg_audit__hasher_new(opts ? opts->key : NULL, errstr, errstr_size)))
        goto err;
    a->keyed = opts && opts->key;
    if (!(a->path = strdup(path ? path : ""))) {
        pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
        goto err;
    }
    if (s_check_not_gone(a->path, errstr, errstr_size) ||
        (a->fd = s_open_file(a->path, 0, errstr, errstr_size)) < 0)
        goto err;
    if (s_read_tail(a, errstr, errstr_size) || s_check_key_id(a, errstr, errstr_size))
        goto err;
    a->opened_ms = a->clock_ms(a->clock_ud);
    return a;
err:
    pg_audit_destroy(&a);
    return NULL;
}

void pg_audit_destroy(pg_audit **p)
{
    if (!p || !*p)
        return;
    pg_audit *a = *p;
    if (a->fd >= 0)
        close(a->fd); /* every append ended with its fdatasync */
    pthread_mutex_destroy(&a->lock);
    pg_buf_free(&a->line);
    pg_buf_free(&a->last_canon);
    pg_audit__hasher_destroy(&a->hasher);
    free(a->path);
    free(a);
    *p = NULL;
}

/* A field value may be metadata only: short, no control characters; the outcome a
 * code with no spaces, so that no free text (which could quote content) gets in. */
static int s_check_field(const char *key, const char *value, int is_code, char *errstr,
                         size_t errstr_size)
{
    if (!value)
        return 0;
    if (strlen(value) > S_FIELD_MAX)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "audit: %s is longer than %d bytes", key,
                       S_FIELD_MAX);
    for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
        if (*c < 0x20 || *c == 0x7f)
            return pg_errf(PG_EINVALID, errstr, errstr_size, "audit: %s holds a control character",
                           key);
        if (is_code && !((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                         (*c >= '0' && *c <= '9') || strchr("._-:,/[]", *c)))
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "audit: %s must be a code (letters, digits, . _ - : , / [ ]), not "
                           "free text",
                           key);
    }
    return 0;
}

char *pg_audit_field(pg_arena *arena, const char *value)
{
    if (!value)
        return NULL;
    char out[S_FIELD_MAX + 1];
    size_t o = 0, n = strlen(value);
    const char *p = value, *end = value + n;
    /* the field rules of an event (s_check_field) and UTF-8 (s_canonical's) */
    if (!s_check_field("", value, 0, NULL, 0) && g_utf8_validate(value, (gssize)n, NULL))
        return pg_arena_strdup(arena, value);
    while (p < end) {
        gunichar c = g_utf8_get_char_validated(p, end - p);
        size_t len = c < 0x110000 ? (size_t)(g_utf8_next_char(p) - p) : 1;
        char esc[8];
        const char *put = p;
        size_t plen = len;
        if (c >= 0x110000 || c < 0x20 || c == 0x7f) {
            plen = (size_t)snprintf(esc, sizeof esc, "\\x%02X", (unsigned char)*p);
            put = esc;
            len = 1;
        }
        if (o + plen > S_FIELD_MAX || (o + plen > S_FIELD_MAX - 3 && p + len < end)) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, put, plen);
        o += plen;
        p += len;
    }
    out[o] = 0;
    return pg_arena_strdup(arena, out);
}

/* n in decimal (what jansson's %lld gives), without printf's cost per field. */
static int s_put_u64(pg_buf *out, uint64_t n)
{
    char d[20];
    size_t i = sizeof d;
    do
        d[--i] = (char)('0' + n % 10);
    while (n /= 10);
    return pg_buf_append(out, d + i, sizeof d - i);
}

/* Append the canonical bytes of an event to out: compact JSON, keys in s_keys order,
 * an absent field null; strings by pg_json_string (UTF-8 or refused). Written
 * directly: building and dumping a jansson tree was half of an append's time. 0,
 * PG_ENOMEM, or PG_EINVALID (a field is not UTF-8; out is then as it was). */
static int s_canonical(const pg_audit_event *ev, uint64_t seq, const char *when, pg_buf *out)
{
    /* the string fields, by their place in s_keys (seq and version are numbers) */
    const char *strs[S_NKEYS] = {NULL,
                                 when,
                                 pg_audit_action_name(ev->action),
                                 ev->party,
                                 ev->entity_id,
                                 ev->native_id,
                                 ev->origin,
                                 ev->destination,
                                 ev->partner,
                                 ev->agreement,
                                 ev->policy_version,
                                 NULL,
                                 ev->outcome};
    size_t start = out->len;
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < S_NKEYS; k++) {
        rc = pg_buf_append(out, k ? ",\"" : "{\"", 2);
        rc = rc ? rc : pg_buf_puts(out, s_keys[k]);
        rc = rc ? rc : pg_buf_append(out, "\":", 2);
        uint64_t num = !k ? seq : !strcmp(s_keys[k], "version") ? ev->version : 0;
        if (rc == 0 && num)
            rc = s_put_u64(out, num);
        else if (rc == 0)
            rc = strs[k] ? pg_json_string(out, strs[k], strlen(strs[k]), PG_JSON_STRICT)
                         : pg_buf_puts(out, "null");
    }
    rc = rc ? rc : pg_buf_putc(out, '}');
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}

static int s_check_event(const pg_audit_event *ev, char *errstr, size_t errstr_size)
{
    if (!pg_audit_action_name(ev->action))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "audit: unknown action %d",
                       (int)ev->action);
    if (ev->version > (uint64_t)INT64_MAX)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "audit: version out of range");
    const struct {
        const char *key, *value;
        int is_code;
    } fields[] = {
        {"party", ev->party, 0},
        {"entity_id", ev->entity_id, 0},
        {"native_id", ev->native_id, 0},
        {"origin", ev->origin, 0},
        {"destination", ev->destination, 0},
        {"partner", ev->partner, 0},
        {"agreement", ev->agreement, 0},
        {"policy_version", ev->policy_version, 0},
        {"outcome", ev->outcome, 1},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        int rc =
            s_check_field(fields[i].key, fields[i].value, fields[i].is_code, errstr, errstr_size);
        if (rc)
            return rc;
    }
    return 0;
}

/* Cut the file back to a->size (what earlier, synced appends wrote). */
static int s_cut(pg_audit *a)
{
    if (ftruncate(a->fd, a->size))
        return -1;
    a->dirty = 0;
    return 0;
}

/* Write all of buf at the end of the file. */
static int s_write_all(pg_audit *a, const pg_buf *buf, char *errstr, size_t errstr_size)
{
    size_t done = 0;
    while (done < buf->len) {
        long n = a->write_fn ? a->write_fn(a->fd, buf->data + done, buf->len - done)
                             : (long)write(a->fd, buf->data + done, buf->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return pg_errf(PG_EIO, errstr, errstr_size, "%s: write: %s", a->path,
                           strerror(n < 0 ? errno : ENOSPC));
        done += (size_t)n;
    }
    return 0;
}

/* Make a rotation's rename and new file last: until they do, no event is written
 * (an event in a file whose name a crash may take back is not on disk). */
static int s_sync_dir(pg_audit *a, char *errstr, size_t errstr_size)
{
    if (!a->dir_unsynced)
        return 0;
    char *dir = g_path_get_dirname(a->path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int bad = dfd < 0 || (a->sync_fn ? a->sync_fn(dfd) : fsync(dfd));
    int err = errno;
    if (dfd >= 0)
        close(dfd);
    int rc = bad ? pg_errf(PG_EIO, errstr, errstr_size,
                           "%s: rotated, but its directory %s cannot be synced: %s", a->path, dir,
                           strerror(err))
                 : 0;
    g_free(dir);
    if (!bad)
        a->dir_unsynced = 0;
    return rc;
}

/* Start a new file when the current one is big or old enough: rename it to
 * "<path>.<first seq>", open a new empty one; the chain (seq, prev) carries on. */
static int s_rotate(pg_audit *a, int64_t now, char *errstr, size_t errstr_size)
{
    if (!a->size || !((a->rotate_bytes && (uint64_t)a->size >= a->rotate_bytes) ||
                      (a->rotate_ms && now - a->opened_ms >= a->rotate_ms)))
        return 0;
    char *old = NULL;
    if (asprintf(&old, "%s.%020" PRIu64, a->path, a->first_seq) < 0)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    int rc = 0;
    if (rename(a->path, old)) {
        rc = pg_errf(PG_EIO, errstr, errstr_size, "rotate %s: %s", a->path, strerror(errno));
        goto out;
    }
    int fd = s_open_file(a->path, O_EXCL, errstr, errstr_size);
    /* Owned like the file before: a root-run command (an offline `polegate dlq replay`)
     * must not leave the daemon a log it cannot open. */
    struct stat st;
    if (fd >= 0 && geteuid() == 0 && (fstat(a->fd, &st) || fchown(fd, st.st_uid, st.st_gid))) {
        rc = pg_errf(PG_EIO, errstr, errstr_size,
                     "rotate %s: giving the new file the owner of the old: %s", a->path,
                     strerror(errno));
        close(fd);
        unlink(a->path);
        fd = -1;
    }
    if (fd < 0) {
        if (rename(old, a->path))
            a->dirty = 1;
        rc = rc ? rc : PG_EIO;
        goto out;
    }
    close(a->fd);
    a->fd = fd;
    a->size = 0;
    a->first_seq = 0;
    a->opened_ms = now;
    a->dir_unsynced = 1;
    rc = s_sync_dir(a, errstr, errstr_size);
out:
    free(old);
    return rc;
}

int pg_audit_append_batch(pg_audit *audit, const pg_audit_event *evs, size_t n, char *errstr,
                          size_t errstr_size)
{
    for (size_t i = 0; i < n; i++) {
        int rc = s_check_event(&evs[i], errstr, errstr_size);
        if (rc)
            return rc;
    }
    if (!n)
        return 0;
    pthread_mutex_lock(&audit->lock);
    char when[32];
    int rc = 0;
    /* The state before the batch, synced: what a failure goes back to. */
    uint64_t seq0 = audit->seq, first0 = audit->first_seq;
    char prev0[PG_AUDIT_HASH_LEN + 1];
    memcpy(prev0, audit->prev, sizeof prev0);
    if (audit->dirty && s_cut(audit)) {
        rc = pg_errf(PG_EIO, errstr, errstr_size,
                     "%s: cannot cut back a failed write: %s; nothing more is logged (or done) "
                     "until it can",
                     audit->path, strerror(errno));
        goto fail;
    }
    int64_t now = audit->clock_ms(audit->clock_ud);
    rc = s_sync_dir(audit, errstr, errstr_size);
    rc = rc ? rc : s_rotate(audit, now, errstr, errstr_size);
    /* a rotation done stays done, even when its directory could not be synced: a
     * failure goes back to the new file's state, never names the old file's first
     * event as the new one's (the next rotation would rename over the old file) */
    first0 = audit->first_seq;
    if (rc)
        goto fail;
    off_t size0 = audit->size;
    pg_audit__format_time(now, when);
    /* The lines go out in one write per sync (not one per event), then are synced. */
    pg_buf_reset(&audit->line);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = audit->seq + 1;
        char hash[PG_AUDIT_HASH_LEN + 1];
        size_t start = audit->line.len;
        if ((rc = s_canonical(&evs[i], seq, when, &audit->line))) {
            rc = rc == PG_ENOMEM ? pg_errf(rc, errstr, errstr_size, "out of memory")
                                 : pg_errf(PG_EINVALID, errstr, errstr_size,
                                           "audit: cannot encode the event (a field is not UTF-8)");
            goto undo;
        }
        if (pg_audit__hash(audit->hasher, audit->prev, (const char *)audit->line.data + start,
                           audit->line.len - start, hash)) {
            rc = pg_errf(PG_EINTERNAL, errstr, errstr_size,
                         "audit: libcrypto cannot hash the event");
            goto undo;
        }
        audit->line.len--; /* the '}': the hash goes in before it */
        if (pg_buf_printf(&audit->line, "%s%s\"}\n", S_HASH_KEY, hash)) {
            rc = pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
            goto undo;
        }
        audit->seq = seq;
        if (!audit->first_seq)
            audit->first_seq = seq;
        memcpy(audit->prev, hash, sizeof audit->prev);
        if ((i + 1) % audit->sync_every && i + 1 < n)
            continue;
        audit->dirty = 1;
        if ((rc = s_write_all(audit, &audit->line, errstr, errstr_size)))
            goto undo;
        audit->size += (off_t)audit->line.len;
        audit->dirty = 0;
        pg_buf_reset(&audit->line);
        if (audit->sync_fn ? audit->sync_fn(audit->fd) : fdatasync(audit->fd)) {
            rc = pg_errf(PG_EIO, errstr, errstr_size, "%s: fdatasync: %s", audit->path,
                         strerror(errno));
            goto undo;
        }
    }
    pthread_mutex_unlock(&audit->lock);
    rc = 0;
    goto told;
undo:
    /* Nothing of the batch may stay: its steps are not done, so it must not claim
     * them. A cut that fails now is retried before the next write. */
    audit->size = size0;
    audit->dirty = 1;
    s_cut(audit);
fail:
    audit->seq = seq0;
    audit->first_seq = first0;
    memcpy(audit->prev, prev0, sizeof prev0);
    audit->failures++;
    pthread_mutex_unlock(&audit->lock);
    rc = rc ? rc : PG_EIO;
told:
    for (size_t i = 0; audit->on_event && i < n; i++)
        audit->on_event(audit->on_event_ud, &evs[i], rc);
    return rc;
}

int pg_audit_append(pg_audit *audit, const pg_audit_event *ev, char *errstr, size_t errstr_size)
{
    return pg_audit_append_batch(audit, ev, 1, errstr, errstr_size);
}

uint64_t pg_audit_seq(pg_audit *audit)
{
    pthread_mutex_lock(&audit->lock);
    uint64_t seq = audit->seq;
    pthread_mutex_unlock(&audit->lock);
    return seq;
}

uint64_t pg_audit_failures(pg_audit *audit)
{
    pthread_mutex_lock(&audit->lock);
    uint64_t n = audit->failures;
    pthread_mutex_unlock(&audit->lock);
    return n;
}

/* ------------------------------------------------------------------ checkpoints */

#define S_CHECKPOINT_DOMAIN "polegate-audit-checkpoint/1"

/* The bytes a checkpoint's signature covers. */
static int s_checkpoint_message(uint64_t seq, const char *head, const char *when, char *out,
                                size_t size)
{
    return snprintf(out, size, S_CHECKPOINT_DOMAIN " seq=%" PRIu64 " head=%s time=%s", seq, head,
                    when);
}

int pg_audit_checkpoint_make(pg_audit *audit, const pg_audit_signing_key *key, pg_buf *out,
                             pg_audit_checkpoint *cp, char *errstr, size_t errstr_size)
{
    pg_audit_checkpoint c = {0};
    pthread_mutex_lock(&audit->lock);
    c.seq = audit->seq;
    memcpy(c.head, audit->prev, sizeof c.head);
    c.time_ms = audit->clock_ms(audit->clock_ud);
    pthread_mutex_unlock(&audit->lock);
    char when[32], msg[256], sighex[2 * crypto_sign_BYTES + 1];
    unsigned char sig[crypto_sign_BYTES];
    pg_audit__format_time(c.time_ms, when);
    int len = s_checkpoint_message(c.seq, c.head, when, msg, sizeof msg);
    crypto_sign_detached(sig, NULL, (const unsigned char *)msg, (unsigned long long)len,
                         key->secret);
    sodium_bin2hex(sighex, sizeof sighex, sig, sizeof sig);
    pg_buf_reset(out);
    if (pg_buf_printf(out, "{\"seq\":%" PRIu64 ",\"head\":\"%s\",\"time\":\"%s\",\"sig\":\"%s\"}",
                      c.seq, c.head, when, sighex))
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
    if (cp)
        *cp = c;
    return 0;
}

int pg_audit_checkpoint_parse(const void *data, size_t len, const pg_audit_public_key *key,
                              pg_audit_checkpoint *cp, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *seq = json_object_get(o, "seq"), *head = json_object_get(o, "head");
    json_t *when = json_object_get(o, "time"), *sig = json_object_get(o, "sig");
    int rc = 0;
    unsigned char bin[crypto_sign_BYTES];
    size_t bin_len = 0;
    int64_t ms = 0;
    if (!json_is_object(o) || !json_is_integer(seq) || json_integer_value(seq) < 0 ||
        !json_is_string(head) || strlen(json_string_value(head)) != PG_AUDIT_HASH_LEN ||
        !json_is_string(when) || !json_is_string(sig) ||
        pg_audit_parse_time(json_string_value(when), &ms, NULL, 0)) {
        rc = pg_errf(PG_EINVALID, errstr, errstr_size, "not an audit checkpoint");
        goto out;
    }
    char msg[256];
    int mlen = s_checkpoint_message((uint64_t)json_integer_value(seq), json_string_value(head),
                                    json_string_value(when), msg, sizeof msg);
    if (mlen <= 0 || (size_t)mlen >= sizeof msg ||
        sodium_hex2bin(bin, sizeof bin, json_string_value(sig), strlen(json_string_value(sig)),
                       NULL, &bin_len, NULL) ||
        bin_len != sizeof bin ||
        crypto_sign_verify_detached(bin, (const unsigned char *)msg, (unsigned long long)mlen,
                                    key->bytes)) {
        rc = pg_errf(PG_EINVALID, errstr, errstr_size,
                     "checkpoint seq %" JSON_INTEGER_FORMAT
                     ": the signature does not hold (forged, changed, or another key)",
                     json_integer_value(seq));
        goto out;
    }
    cp->seq = (uint64_t)json_integer_value(seq);
    memcpy(cp->head, json_string_value(head), PG_AUDIT_HASH_LEN + 1);
    cp->time_ms = ms;
out:
    json_decref(o);
    return rc;
}

int pg_audit_holds(pg_audit *audit, const pg_audit_checkpoint *cp, char *errstr, size_t errstr_size)
{
    pthread_mutex_lock(&audit->lock);
    uint64_t seq = audit->seq;
    char have[PG_AUDIT_HASH_LEN + 1];
    memcpy(have, audit->prev, sizeof have);
    pthread_mutex_unlock(&audit->lock);
    char when[32];
    pg_audit__format_time(cp->time_ms, when);
    if (cp->seq > seq)
        return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                       "%s ends at event %" PRIu64 " but the checkpoint signed at %s holds event "
                       "%" PRIu64 ": events were cut off its end",
                       audit->path, seq, when, cp->seq);
    int rc = 0;
    if (!cp->seq)
        memcpy(have, PG_AUDIT_GENESIS, sizeof have);
    else if (cp->seq < seq)
        rc = pg_audit__event_hash(audit->path, cp->seq, have, errstr, errstr_size);
    if (rc)
        return rc;
    if (strcmp(have, cp->head))
        return pg_errf(PG_ECORRUPT, errstr, errstr_size,
                       "%s: event %" PRIu64 " (of %" PRIu64 ") is not the one the checkpoint "
                       "signed at %s holds (hash %.12s..., the checkpoint's %.12s...): the log "
                       "was rewritten, or cut short and written on",
                       audit->path, cp->seq, seq, when, have, cp->head);
    return 0;
}

/* ------------------------------------------------------------------ reading */

static int s_is_rotated_name(const char *name, const char *base)
{
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) || name[bl] != '.' || strlen(name + bl + 1) != 20)
        return 0;
    return strspn(name + bl + 1, "0123456789") == 20;
}

static int s_strcmp_p(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

int pg_audit__rotated(const char *path, char ***out, size_t *n, char *errstr, size_t errstr_size)
{
    *out = NULL;
    *n = 0;
    char *dir = g_path_get_dirname(path), *base = g_path_get_basename(path);
    int rc = 0;
    size_t cap = 0;
    DIR *d = opendir(dir);
    if (!d) {
        rc = pg_errf(PG_EIO, errstr, errstr_size, "%s: %s", dir, strerror(errno));
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!s_is_rotated_name(de->d_name, base))
            continue;
        if (pg_grow((void **)out, &cap, *n + 1, sizeof **out) ||
            asprintf(&(*out)[*n], "%s/%s", dir, de->d_name) < 0) {
            rc = pg_errf(PG_ENOMEM, errstr, errstr_size, "out of memory");
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (!rc && *n)
        qsort(*out, *n, sizeof **out, s_strcmp_p);
out:
    g_free(dir);
    g_free(base);
    return rc;
}
