/* pg_audit: the append-only, hash-chained audit log of what the gateway collected,
 * disclosed, withheld, withdrew, received, rejected and erased (Data Protection Act
 * 2018 Part 3, s.62). One JSON object per line; metadata only, never record content.
 * Format and verification: docs/policy.md "Audit log". */
#ifndef POLEGATE_GATEWAY_AUDIT_H
#define POLEGATE_GATEWAY_AUDIT_H

#include <stddef.h>
#include <stdint.h>

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

/* "disclose"...; NULL when unknown. */
const char *pg_audit_action_name(pg_audit_action action);
/* PG_AUDIT_NONE when name is not an action. */
pg_audit_action pg_audit_action_parse(const char *name);

/* One event. Every string is optional (NULL is written as null) and borrowed for the
 * call only. There is deliberately no field for record content: who, what and why,
 * never the record itself. */
typedef struct pg_audit_event {
    pg_audit_action action;
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

typedef struct pg_audit_options {
    /* fdatasync after this many events; 0 or 1: after every event (nothing is
     * acknowledged before it is on disk). With more, pg_audit_sync() flushes the rest. */
    unsigned sync_every;
    /* Milliseconds since the Unix epoch for the event's time; NULL: the real clock.
     * For tests and replays. */
    int64_t (*clock_ms)(void *ud);
    void *clock_ud;
    /* Called after each pg_audit_append with the event and its result (0: written),
     * on the appending thread, outside the log's lock. NULL: none. The metrics count
     * events and failures with it. */
    void (*on_event)(void *ud, const pg_audit_event *ev, int rc);
    void *on_event_ud;
} pg_audit_options;

/* Open (creating it, mode 0640) the log at path for appending, continuing the chain
 * from its last line. Takes an exclusive lock: one writer per file. opts may be NULL.
 * NULL with a reason when the file cannot be opened or locked, or its last line is
 * not a complete event (a crash mid-write: the reason says how many bytes to cut). */
pg_audit *pg_audit_new(const char *path, const pg_audit_options *opts, char *errstr,
                       size_t errstr_size);
/* Syncs, unlocks, closes; sets *p to NULL; NULL-safe. */
void pg_audit_destroy(pg_audit **p);

/* Append one event (thread-safe). Its seq and time are assigned here. 0; PG_EINVALID
 * when a field is not acceptable (nothing is written); PG_EIO when the write or sync
 * failed: nothing of the event stays in the file, and every later call fails too, so
 * the caller stops disclosing what it cannot log. */
int pg_audit_append(pg_audit *self, const pg_audit_event *ev, char *errstr, size_t errstr_size);
/* fdatasync what is pending. 0 or PG_EIO. */
int pg_audit_sync(pg_audit *self, char *errstr, size_t errstr_size);
/* The seq of the last event written (0 for an empty log). */
uint64_t pg_audit_seq(pg_audit *self);

#define PG_AUDIT_HASH_HEX 65 /* SHA-256 in lower-case hex and a NUL */

typedef struct pg_audit_verify_result {
    uint64_t events;              /* valid events read */
    size_t bad_line;              /* 1-based line of the first problem; 0 if none */
    char head[PG_AUDIT_HASH_HEX]; /* hash of the last valid event (record it
                                   * elsewhere: removing trailing lines is only
                                   * detectable against such an anchor) */
} pg_audit_verify_result;

/* Check the whole chain at path. 0 when every line is a valid event in sequence with
 * its hash; PG_EINVALID with res->bad_line and the reason ("line 7: ..."); PG_EIO when
 * the file cannot be read. */
int pg_audit_verify(const char *path, pg_audit_verify_result *res, char *errstr,
                    size_t errstr_size);

/* What pg_audit_query selects; NULL / 0 members match everything. */
typedef struct pg_audit_filter {
    const char *entity_id;
    const char *native_id;
    const char *destination;
    pg_audit_action action;
    int has_since;
    int64_t since_ms; /* events at or after */
    int has_until;
    int64_t until_ms; /* events before */
} pg_audit_filter;

/* Called with each matching line (without its newline). Non-zero stops the query and
 * is returned. */
typedef int (*pg_audit_line_fn)(void *ud, const char *line, size_t len);

/* The events of the log at path matching filter, in order. Lines that are not events
 * are skipped (pg_audit_verify reports them). 0, the callback's non-zero value, or
 * PG_EIO. */
int pg_audit_query(const char *path, const pg_audit_filter *filter, pg_audit_line_fn fn, void *ud,
                   char *errstr, size_t errstr_size);

/* RFC 3339 ("2026-03-29T02:30:00+01:00", "...Z") or a date ("2026-03-29", UTC
 * midnight) -> milliseconds since the epoch. 0 or PG_EINVALID. */
int pg_audit_parse_time(const char *s, int64_t *ms, char *errstr, size_t errstr_size);

#endif
