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

/* One setting of an adapter's own: a key of the `adapter:` section of polegated's
 * configuration, beside `name` (its config map, documented by --config-reference). */
typedef struct pg_adapter_setting {
    const char *key;  /* "id_prefix" */
    const char *def;  /* the default value */
    const char *help; /* one sentence for the configuration reference */
    /* 0 when value is allowed; PG_ECONFIG with the reason ("'9a' is not 1-4 digits"). */
    int (*check)(const char *value, char *errstr, size_t errstr_size);
} pg_adapter_setting;

/* The most settings an adapter has. Their values travel as an array of this many
 * strings in the order of the adapter's table; a NULL value (or a NULL array) is the
 * default (pg_adapter_value). */
#define PG_ADAPTER_MAX_SETTINGS 4

/* How the RMS's own ids of the records a gateway creates in it look and are assigned
 * (the "Import" section of its specification); gateway/inbound/idstore.h keeps them. */
typedef struct pg_adapter_ids {
    /* The series ids of kind are counted in, into out (ATX: the record type letter),
     * when the RMS numbers its ids: candidate n is then the n-th id of the series
     * (n from 1). PG_EUNSUPPORTED with the reason when no id can be made for kind
     * (not known). NULL when ids are derived from the UUID: candidate n is then the
     * n-th try (n from 0). */
    int (*series)(int kind, char *out, size_t size, char *errstr, size_t errstr_size);
    /* Candidate n (above) of the id of entity uuid of kind, into out. PG_ENOTFOUND
     * with the reason when there is no candidate n (the series or the tries are used
     * up). settings: the adapter's setting values. */
    int (*candidate)(const char *const *settings, const char *uuid, int kind, uint64_t n, char *out,
                     size_t outsize, char *errstr, size_t errstr_size);
    /* 1 when id has the shape of an id of kind (0: of any kind). */
    int (*valid)(int kind, const char *id);
    /* The entity kind an id names (ATX: its letter); 0 when the id does not say. */
    int (*kind_of)(const char *id);
    const char *shape;      /* a valid id, for reasons: "an NX5 GID (16 upper-case hex digits)" */
    const char *kind_shape; /* an id of a given kind, for reasons (NULL: shape) */
    const char *kind_mark;  /* what in an id says its kind ("letter"; NULL: nothing) */
} pg_adapter_ids;

typedef struct pg_adapter_ops {
    const char *name;   /* "athena", "niche" */
    const char *format; /* "atx", "nx5" */
    const char *system; /* origin system name: "ATHENA", "NICHE" */
    size_t max_message_size;
    /* File name extensions of its messages, the first the one written ("ndjson"). */
    const char *const *extensions;
    /* What its messages are called, for reasons: "ATX messages", "NX5 documents". */
    const char *messages;
    /* What split's pos counts, for positions in acks and reasons: "line", "document". */
    const char *position;
    /* The byte every message opens with, after blank space and a UTF-8 byte order mark
     * ('{' for ATX JSON, '<' for NX5 XML): a file that opens otherwise holds none. */
    char opens;
    /* 1 when a file holds one message (NX5: a document), 0 when it holds many. */
    int one_per_file;
    /* 1 when a record carries all its current links in every change (ATX: compose
     * sends the record again when a link changes); 0 when links change one at a time
     * (NX5). */
    int whole_links;
    /* 1 when encode names a batch (pg_adapter_ctx.batch; NX5). */
    int batches;
    /* Where a message names its force, for reasons ("header.orgUnit"). */
    const char *force_path;
    const pg_adapter_ids *ids;
    /* The id space (origin.native_type, docs/canonical-model.md) of an entity of kind
     * in this system: ATX its record type ("PERSON"), NX5 "GID" whatever the kind.
     * With an EntityRef's native_id it gives the entity id again, so that a receiver
     * can tell whose entity a link end is. NULL when kind has none. */
    const char *(*native_type)(int kind);
    /* Its own settings, ended by an entry with key NULL. */
    const pg_adapter_setting *settings;
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
/* The i-th registered adapter; NULL past the last. */
const pg_adapter_ops *pg_adapter_at(size_t i);
/* The adapter of the records system named system (an origin.system: "ATHENA");
 * NULL when none. */
const pg_adapter_ops *pg_adapter_for_system(const char *system);
/* The adapter whose messages a file of this name holds, by its extension; NULL when
 * none. */
const pg_adapter_ops *pg_adapter_for_file(const char *path);

/* The index of adapter's setting key; -1 when it has none of that name. */
int pg_adapter_setting_index(const pg_adapter_ops *adapter, const char *key);
/* Setting i's value in values (NULL: every default), or its default. */
const char *pg_adapter_value(const pg_adapter_ops *adapter, const char *const *values, int i);
/* Check every value given in values: 0, or PG_ECONFIG with "<key>: <reason>". */
int pg_adapter_check_values(const pg_adapter_ops *adapter, const char *const *values, char *errstr,
                            size_t errstr_size);

#endif
