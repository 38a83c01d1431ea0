/* The adapter interface: one records system's native format <-> canonical changes. */
#ifndef POLEGATE_ADAPTER_H
#define POLEGATE_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/buf.h"
#include "polegate/pole.h"

/* Maps canonical entities to the ids the target records system knows them by. The
 * encoders call it for every entity they name (the record itself, link targets,
 * merged-away records). */
typedef struct pg_idmap pg_idmap;
struct pg_idmap {
    /* Write into out (outsize bytes) the target-system id of entity `uuid` of kind
     * `kind` (a Polegate__Pole__V1__EntityKind; may be UNSPECIFIED for an NX5 link
     * target), whose origin is `origin_system`/`native_id`. Assign a new id the first
     * time and return the same one ever after. *created (may be NULL) is set to 1
     * when the id was assigned by this call. 0, or a negative pg error with errstr. */
    int (*resolve)(pg_idmap *self, const char *uuid, int kind, const char *origin_system,
                   const char *native_id, char *out, size_t outsize, int *created, char *errstr,
                   size_t errstr_size);
};

typedef struct pg_adapter_ctx {
    /* decode: the force this gateway serves, or NULL to accept any. A message naming
     * another force is rejected. */
    const char *force;
    /* encode: target ids; NULL encodes each origin native id as it is (round trip
     * into the same system, e.g. `translate --from atx --to atx`). */
    pg_idmap *idmap;
    /* encode: the time written as the message's sending/creation time, in ms since
     * the epoch (0: now). Fixed in tests so that output is reproducible. */
    int64_t now_ms;
    /* encode: batch id for NX5 documents ("gw-000001"); NULL: derived from now_ms. */
    const char *batch;
} pg_adapter_ctx;

/* Called by split for each native message in a file: msg[0..len) is the message,
 * `pos` says where it was (1-based line for NDJSON, 1 for a whole document). A
 * non-zero return stops the split and is returned by it. */
typedef int (*pg_split_fn)(void *arg, const uint8_t *msg, size_t len, size_t pos);

typedef struct pg_adapter_ops {
    const char *name;   /* "athena", "niche" */
    const char *format; /* "atx", "nx5" */
    const char *system; /* origin system name: "ATHENA", "NICHE" */
    size_t max_message_size;
    /* Decode one native message into canonical changes appended to cs (whose arena
     * owns them). All or nothing: on error the changes appended by this call are
     * dropped, errstr holds the reason ("<member path>: <rule>"), and the return is
     * negative (PG_EINVALID, PG_ETOOBIG, PG_ENOMEM). */
    int (*decode)(const pg_adapter_ctx *ctx, const uint8_t *data, size_t size, pg_changeset *cs,
                  char *errstr, size_t errstr_size);
    /* Encode the changes of cs as native messages appended to out: ATX one NDJSON line
     * per entity change (carrying the cs links from that entity), NX5 one document.
     * PG_EUNSUPPORTED when cs holds what the format cannot carry alone (an ATX link
     * change without its source record). */
    int (*encode)(const pg_adapter_ctx *ctx, const pg_changeset *cs, pg_buf *out, char *errstr,
                  size_t errstr_size);
    /* Split the bytes of a file into native messages. */
    int (*split)(const uint8_t *data, size_t size, pg_split_fn fn, void *arg);
} pg_adapter_ops;

extern const pg_adapter_ops pg_adapter_athena;
extern const pg_adapter_ops pg_adapter_niche;

/* The adapter named by name or format ("athena" or "atx"); NULL when none. */
const pg_adapter_ops *pg_adapter_find(const char *name);

#endif
