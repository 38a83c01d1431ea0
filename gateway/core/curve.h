/* pg_curve: ZeroMQ CURVE for the RMS side: key files (Z85, as zmq_curve_keypair makes
 * them), the allow-list of client keys, and the ZAP handler that enforces it on a
 * server socket (RFC 27), logging and counting every connection it refuses. */
#ifndef POLEGATE_GATEWAY_CURVE_H
#define POLEGATE_GATEWAY_CURVE_H

#include <stddef.h>
#include <stdint.h>

#define PG_CURVE_KEY_LEN 41 /* 40 Z85 characters and a NUL */

/* Read a key file: one 40-character Z85 key (whitespace around is ignored). secret:
 * the file must not be readable or writable by group or others. 0, PG_EIO or
 * PG_EINVALID with errstr. */
int pg_curve_key_load(const char *path, int secret, char key[PG_CURVE_KEY_LEN], char *errstr,
                      size_t errstr_size);
/* The public key of a secret key. 0 or PG_EINVALID. */
int pg_curve_public_of(const char *secret, char public_key[PG_CURVE_KEY_LEN]);
/* Write a new key pair: <base>.key (the secret key, 0600) and <base>.pub (0644);
 * existing files are not overwritten. 0 or PG_EIO. */
int pg_curve_keygen(const char *base, char *errstr, size_t errstr_size);

/* Make sock a CURVE server with secret (and ZAP domain "polegate"), or a CURVE client
 * of the server whose public key is server_public (pinned: no other server is
 * talked to). 0 or PG_EIO. */
int pg_curve_server(void *sock, const char *secret, char *errstr, size_t errstr_size);
int pg_curve_client(void *sock, const char *secret, const char *server_public, char *errstr,
                    size_t errstr_size);

/* Is a ZeroMQ endpoint reachable from this host only (ipc://, inproc://, tcp:// on
 * 127.0.0.0/8, ::1 or localhost)? */
int pg_curve_endpoint_is_local(const char *endpoint);

/* The client keys a server accepts: a file of lines "<Z85 public key> [name]"; a line
 * whose first word starts with '#' is a comment ('#' is also a Z85 digit, so there are
 * no comments after a key). */
typedef struct pg_curve_allow pg_curve_allow;
/* The longest name of a key on the allow-list (its audit party is "rms:<name>"). */
#define PG_CURVE_NAME_MAX 100
/* NULL with a reason for a file that cannot be read, a line that is not a key, a key
 * or a name listed twice (the name is the audit party of what the key sends, so it
 * must say which key), a name with a control character or over PG_CURVE_NAME_MAX
 * bytes, or a list without a key. */
pg_curve_allow *pg_curve_allow_load(const char *path, char *errstr, size_t errstr_size);
void pg_curve_allow_destroy(pg_curve_allow **p);
/* The name of key (Z85) on the list (the key itself when it has no name); NULL when
 * it is not on the list. */
const char *pg_curve_allow_find(const pg_curve_allow *allow, const char *key);
/* How many keys the list holds. */
size_t pg_curve_allow_count(const pg_curve_allow *allow);

/* The message property (zmq_msg_gets) that holds the Z85 key a connection was let in
 * with. */
#define PG_CURVE_KEY_PROPERTY "X-Pg-Key"
/* A ZAP handler for the sockets of ctx: a thread answering each CURVE handshake with
 * 200 (user id: the key's name) when the client key is on allow, else 400, logged
 * with the peer address and key and counted. what names the server in the log. One
 * per context; started before the server socket binds; allow is borrowed. */
typedef struct pg_zap pg_zap;
pg_zap *pg_zap_start(void *ctx, const pg_curve_allow *allow, const char *what, char *errstr,
                     size_t errstr_size);
/* Stops the thread and closes its socket (before the context is terminated). */
void pg_zap_stop(pg_zap **p);
/* Handshakes from now on are answered from allow (borrowed; the one before is no
 * longer read when this returns). */
void pg_zap_set_allow(pg_zap *z, const pg_curve_allow *allow);
typedef struct pg_zap_stats {
    uint64_t accepted, refused;
} pg_zap_stats;
void pg_zap_get_stats(pg_zap *zap, pg_zap_stats *out);

#endif
