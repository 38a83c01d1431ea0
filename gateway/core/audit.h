/* pg_audit: the append-only, hash-chained (HMAC-SHA-256 when keyed) audit log of what
 * the gateway collected, disclosed, withheld, withdrew, received, rejected and erased
 * (Data Protection Act 2018 Part 3, s.62), its rotation, and the Ed25519-signed
 * checkpoints that anchor its head outside the file. One JSON object per line;
 * metadata only, never record content. Format and verification: docs/policy.md
 * "Audit log", docs/security.md. */
#ifndef POLEGATE_GATEWAY_AUDIT_H
#define POLEGATE_GATEWAY_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/buf.h"
#include "polegate/pole.h"

typedef struct pg_audit pg_audit;

/* X(ID, name): the action of an event. */
#define PG_AUDIT_ACTION_TABLE(X)                                                                   \
    X(COLLECT, "collect")   /* a record taken in from our RMS */                                   \
    X(DISCLOSE, "disclose") /* a record published to a destination */                              \
    X(WITHHOLD, "withhold") /* a record not published to a destination, by policy */               \
    X(WITHDRAW, "withdraw") /* a destination sent a delete for what it may no longer hold */       \
    X(RECEIVE, "receive")   /* a record accepted from a partner */                                 \
    X(REJECT, "reject")     /* a record refused (from a partner, or invalid) */                    \
    X(ERASE, "erase")       /* a record erased (deleted at source, MoPI disposal) */

typedef enum pg_audit_action {
    PG_AUDIT_NONE = 0,
#define PG__AUDIT_ACTION_ENUM(id, name) PG_AUDIT_##id,
    PG_AUDIT_ACTION_TABLE(PG__AUDIT_ACTION_ENUM)
#undef PG__AUDIT_ACTION_ENUM
        PG_AUDIT_ACTION_COUNT
} pg_audit_action;

/* The longest field of an event (bytes). */
#define PG_AUDIT_FIELD_MAX 256

/* "disclose"...; NULL when unknown. */
const char *pg_audit_action_name(pg_audit_action action);
/* An untrusted value (a partner's ids) as an event field may hold it: a copy of value
 * when it keeps the rules (at most PG_AUDIT_FIELD_MAX bytes of UTF-8 without a control
 * character), else a rendering that does: each byte that breaks them as \xHH, cut
 * with "..." to fit. From arena; NULL for NULL or when out of memory. */
char *pg_audit_field(pg_arena *arena, const char *value);
/* PG_AUDIT_NONE when name is not an action. */
pg_audit_action pg_audit_action_parse(const char *name);

/* One event. Every string is optional (NULL is written as null) and borrowed for the
 * call only. There is deliberately no field for record content: who, what and why,
 * never the record itself. */
typedef struct pg_audit_event {
    pg_audit_action action;
    /* The authenticated party that caused the event: "rms:<its name on the CURVE
     * allow-list>" for what the RMS sent (and the disclose/withdraw events of it),
     * "rms:insecure" when the intake runs without CURVE, "rms:local" for files
     * (intake.directory, an in-process caller), "partner:<topic>" for a partner
     * record, "dlq-replay:<topic>" for a replayed partner dead letter, "rms-import" for
     * what the RMS import endpoint refused, "policy:<version>" for what a policy
     * change decided (withhold, withdraw, newly allowed disclose). NULL (null) only in
     * events of spool batches written before parties were recorded. */
    const char *party;
    const char *entity_id;      /* entity or link UUID */
    const char *native_id;      /* the id in the origin system */
    const char *origin;         /* origin force code */
    const char *destination;    /* destination name: disclose, withhold, withdraw */
    const char *partner;        /* partner force code: receive, reject of inbound */
    const char *agreement;      /* the agreement it was shared or received under */
    const char *policy_version; /* the policy that decided */
    uint64_t version;           /* the record's or link's version; 0 when unknown */
    /* A code, never free text: "shared", a policy reason name ("classification"), an
     * error name ("PG_EINVALID"), "redacted:person.ethnicity,intelligence.text".
     * Letters, digits and . _ - : , / [ ] only. */
    const char *outcome;
} pg_audit_event;

/* Start an event for an update: clears ev, then takes the id, the origin's native id
 * and force, and the version. Nothing else of the record is read. The strings stay
 * the update's. */
void pg_audit_event_from_entity(pg_audit_event *ev, pg_audit_action action,
                                const pg_entity_update *entity);
void pg_audit_event_from_link(pg_audit_event *ev, pg_audit_action action,
                              const pg_link_update *link);

#define PG_AUDIT_KEY_LEN 32
/* The HMAC-SHA-256 key of the chain: 32 bytes, kept in a file as 64 hex digits. */
typedef struct pg_audit_key {
    uint8_t bytes[PG_AUDIT_KEY_LEN];
} pg_audit_key;
/* An Ed25519 key pair that signs checkpoints (file: the 32-byte seed in hex). */
typedef struct pg_audit_signing_key {
    uint8_t secret[64];
    uint8_t public_key[32];
} pg_audit_signing_key;
/* The public half, for verifiers (file: 64 hex digits). */
typedef struct pg_audit_public_key {
    uint8_t bytes[32];
} pg_audit_public_key;

/* Read a key file of 64 hex digits (whitespace around is ignored). The secret ones
 * (HMAC key, signing seed) are refused when group or others may read the file. 0,
 * PG_EIO (cannot read) or PG_EINVALID (not a key, or readable by others). */
int pg_audit_key_load(const char *path, pg_audit_key *key, char *errstr, size_t errstr_size);
int pg_audit_signing_key_load(const char *path, pg_audit_signing_key *key, char *errstr,
                              size_t errstr_size);
int pg_audit_public_key_load(const char *path, pg_audit_public_key *key, char *errstr,
                             size_t errstr_size);
/* Write a new HMAC key (dir/audit-hmac.key, 0600) and signing pair
 * (dir/audit-sign.key, 0600; dir/audit-sign.pub, 0644); existing files are not
 * overwritten. 0 or PG_EIO. */
int pg_audit_keygen(const char *dir, char *errstr, size_t errstr_size);

typedef struct pg_audit_options {
    /* fdatasync after this many events of one pg_audit_append_batch(), and always at
     * its end: an append returns only when its events are on disk. */
    unsigned sync_every;
    /* The chain's HMAC key (copied); NULL: plain SHA-256, which anyone who can write
     * the file can recompute. */
    const pg_audit_key *key;
    /* Rotate the file before an append once it holds this many bytes (0: never), or
     * once it has been open this long (0: never). The old file is renamed
     * "<path>.<first seq, 20 digits>"; the chain continues in the new one. */
    uint64_t rotate_bytes;
    int64_t rotate_ms;
    /* write(2) for tests that make the disk fail; NULL: write. */
    long (*write_fn)(int fd, const void *buf, size_t len);
    /* fdatasync(2) of the log and fsync(2) of its directory at a rotation, for tests
     * that make them fail; NULL: the real ones. */
    int (*sync_fn)(int fd);
    /* Called after each append with each event and the batch's result (0: written),
     * on the appending thread, outside the log's lock. NULL: none. The metrics count
     * events and failures with it. */
    void (*on_event)(void *ud, const pg_audit_event *ev, int rc);
    void *on_event_ud;
    /* Milliseconds since the Unix epoch for the event's time; NULL: the real clock.
     * For tests and replays. */
    int64_t (*clock_ms)(void *ud);
    void *clock_ud;
} pg_audit_options;

/* Open (creating it, mode 0640) the log at path for appending, continuing the chain
 * from its last line. Takes an exclusive lock: one writer per file. opts may be NULL.
 * NULL with a reason when the file cannot be opened or locked, or its last line is
 * not a complete event (a crash mid-write: the reason says how many bytes to cut). */
pg_audit *pg_audit_new(const char *path, const pg_audit_options *opts, char *errstr,
                       size_t errstr_size);
/* 1 when another process holds the log at path open for appending (a running daemon),
 * 0 when not or when the file does not exist. */
int pg_audit_in_use(const char *path);
/* Syncs, unlocks, closes; sets *p to NULL; NULL-safe. */
void pg_audit_destroy(pg_audit **p);

/* Append events, all or none, and fdatasync them (thread-safe). Their seq and time
 * are assigned here. 0 when every one is on disk; PG_EINVALID when a field is not
 * acceptable (nothing is written); PG_EIO when a write, sync or rotation failed (the
 * disk is full): nothing of the batch stays in the file, and the caller must not do
 * the step the events record (fail closed). The next call tries again: the log
 * resumes by itself when the disk has room. */
int pg_audit_append_batch(pg_audit *audit, const pg_audit_event *evs, size_t n, char *errstr,
                          size_t errstr_size);
/* pg_audit_append_batch of one event. */
int pg_audit_append(pg_audit *audit, const pg_audit_event *ev, char *errstr, size_t errstr_size);
/* The seq of the last event written (0 for an empty log). */
uint64_t pg_audit_seq(pg_audit *audit);
/* Appends that failed since the log was opened (for the counters). */
uint64_t pg_audit_failures(pg_audit *audit);

/* A signed statement of the log's head: "event seq has this hash", made at time_ms. */
typedef struct pg_audit_checkpoint {
    uint64_t seq;
    char head[65];
    int64_t time_ms;
} pg_audit_checkpoint;

/* The current head signed with key, as one JSON object
 * {"seq":N,"head":"<hex>","time":"<RFC 3339>","sig":"<128 hex>"} into out (reset
 * first); cp (may be NULL) gets what it says. 0 or PG_ENOMEM. */
int pg_audit_checkpoint_make(pg_audit *audit, const pg_audit_signing_key *key, pg_buf *out,
                             pg_audit_checkpoint *cp, char *errstr, size_t errstr_size);
/* Parse and check one checkpoint's signature against key. 0 or PG_EINVALID (not a
 * checkpoint, or the signature does not hold: forged or changed). */
int pg_audit_checkpoint_parse(const void *data, size_t len, const pg_audit_public_key *key,
                              pg_audit_checkpoint *cp, char *errstr, size_t errstr_size);

/* Whether the open log still holds the event cp signs, with cp's hash: its head, or an
 * earlier event of its file or of the files rotated from it. 0 when it does; 1 when
 * the event is before the first one kept here (those files archived elsewhere: a log
 * past the checkpoint, which `polegate audit verify` checks where they are);
 * PG_ECORRUPT with a reason naming the log, the checkpoint's event and time and what
 * the log has, when the log ends before that event (events were cut off its end) or
 * holds another event there (rewritten, or cut short and written on), or skips it;
 * PG_EIO. */
int pg_audit_holds(pg_audit *audit, const pg_audit_checkpoint *cp, char *errstr,
                   size_t errstr_size);

#define PG_AUDIT_HASH_HEX 65 /* SHA-256 in lower-case hex and a NUL */

typedef struct pg_audit_verify_result {
    uint64_t events;              /* valid events read */
    size_t files;                 /* files of the rotated set read */
    size_t bad_line;              /* 1-based line (in its file) of the first problem */
    size_t checkpoints;           /* checkpoints matched */
    char head[PG_AUDIT_HASH_HEX]; /* hash of the last valid event */
} pg_audit_verify_result;

typedef struct pg_audit_verify_opts {
    const pg_audit_key *key; /* the chain's HMAC key; NULL: an unkeyed chain */
    /* Signed checkpoints (any order): each one's seq must be in the log with its
     * head, so that rewriting the log or cutting events off its end shows. */
    const pg_audit_checkpoint *checkpoints;
    size_t checkpoint_count;
} pg_audit_verify_opts;

/* Check the whole chain of the log at path and the files rotated from it
 * ("<path>.<20 digits>", oldest first; the first starts at seq 1). 0 when every line
 * is a valid event in sequence with its hash and every checkpoint matches;
 * PG_EINVALID with res->bad_line and the reason ("<file>: line 7: ..."); PG_EIO when
 * a file cannot be read. opts may be NULL. */
int pg_audit_verify(const char *path, const pg_audit_verify_opts *opts, pg_audit_verify_result *res,
                    char *errstr, size_t errstr_size);

/* What pg_audit_query selects; NULL / 0 members match everything. */
typedef struct pg_audit_filter {
    const char *entity_id;
    const char *native_id;
    const char *destination;
    /* The party, exactly; ending in '*': every party starting with what precedes it
     * ("rms:*", "policy:*"). */
    const char *party;
    pg_audit_action action;
    int has_since;
    int64_t since_ms; /* events at or after */
    int has_until;
    int64_t until_ms; /* events before */
} pg_audit_filter;

/* Called with each matching line (without its newline). Non-zero stops the query and
 * is returned. */
typedef int (*pg_audit_line_fn)(void *ud, const char *line, size_t len);

/* The events of the log at path (and the files rotated from it) matching filter, in
 * order. Lines that are not events
 * are skipped (pg_audit_verify reports them). 0, the callback's non-zero value, or
 * PG_EIO. */
int pg_audit_query(const char *path, const pg_audit_filter *filter, pg_audit_line_fn fn, void *ud,
                   char *errstr, size_t errstr_size);

/* RFC 3339 ("2026-03-29T02:30:00+01:00", "...Z") or a date ("2026-03-29", UTC
 * midnight) -> milliseconds since the epoch. 0 or PG_EINVALID. */
int pg_audit_parse_time(const char *s, int64_t *ms, char *errstr, size_t errstr_size);

#endif
