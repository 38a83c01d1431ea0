/* polegate error codes: one table, negative values, with names and messages. */
#ifndef POLEGATE_ERROR_H
#define POLEGATE_ERROR_H

#include <stddef.h>

/* X(NAME, message). 0 is success; every error is the negative of its position. */
#define PG_ERROR_TABLE(X)                                                                          \
    X(NOMEM, "out of memory")                                                                      \
    X(INVALID, "invalid message")                                                                  \
    X(TOOBIG, "message too large")                                                                 \
    X(STALE, "stale revision")                                                                     \
    X(DUPLICATE, "duplicate delivery")                                                             \
    X(RETRY, "retry later")                                                                        \
    X(IO, "input/output error")                                                                    \
    X(STORE, "store error")                                                                        \
    X(KAFKA, "kafka error")                                                                        \
    X(CONFIG, "configuration error")                                                               \
    X(USAGE, "usage error")                                                                        \
    X(NOTFOUND, "not found")                                                                       \
    X(UNSUPPORTED, "cannot be expressed in the target format")                                     \
    X(POLICY, "withheld by policy")                                                                \
    X(TIMEOUT, "timed out")                                                                        \
    X(INTERNAL, "internal error")                                                                  \
    X(FULL, "store full")                                                                          \
    X(DISKFULL, "disk full")                                                                       \
    X(CORRUPT, "stored data damaged")                                                              \
    X(CONFIRM, "waits for the operator's confirmation")

enum {
    PG_OK = 0,
#define PG__ERR_ENUM(name, msg) PG__POS_##name,
    PG__POS_FIRST_ = 0,
    PG_ERROR_TABLE(PG__ERR_ENUM)
#undef PG__ERR_ENUM
        PG__POS_END_
};

#define PG__ERR_NEG(name, msg) PG_E##name = -PG__POS_##name,
enum { PG_ERROR_TABLE(PG__ERR_NEG) PG__ERR_DUMMY_ = 0 };
#undef PG__ERR_NEG

/* The message of an error code; "success" for 0, "unknown error" otherwise. */
const char *pg_strerror(int err);
/* The name of an error code ("PG_EINVALID"). */
const char *pg_err_name(int err);

/* Size every errstr buffer in this project is given. A reason names the member
 * path and the rule that failed: "record.body.identifiers.pncId: check letter ...". */
#define PG_ERRSTR_SIZE 512

/* Format a reason into errstr (which may be NULL) and return err. */
int pg_errf(int err, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A parser library's message, made fit for a reason: the text between each pair of
 * quotes (' or ") becomes "..." (after "near ", up to the last such quote: jansson's
 * token may hold quotes), control characters become spaces. Libraries quote
 * the input they stopped at (jansson: "invalid token near 'Smith'"), and a reason
 * carries no record content. In place. */
void pg_errstr_unquote(char *s);

#endif
