/* NX5 adapter internals: the parsed document tree, code tables, decode and encode. */
#ifndef POLEGATE_NX5_H
#define POLEGATE_NX5_H

#include <stddef.h>
#include <stdint.h>

#include "polegate/adapter.h"
#include "polegate/arena.h"
#include "polegate/buf.h"
#include "polegate/pole.h"

#define PG_NX5_NAMESPACE "urn:nx:exchange:5"
#define PG_NX5_MAX_SIZE ((size_t)8 << 20)
/* The largest Rev read or written: 19 digits, so that every Rev fits the canonical
 * version (a uint64). */
#define PG_NX5_MAX_REV 9999999999999999999ULL

typedef struct pg_nx5_attr {
    const char *name;
    const char *value;
} pg_nx5_attr;

/* One element of the NX5 namespace. Elements of other namespaces are not in the
 * tree at all. Everything is owned by the arena the document was parsed into. */
typedef struct pg_nx5_node {
    const char *name; /* local name */
    pg_nx5_attr *attrs;
    size_t n_attrs;
    /* The text of an element without child elements ("" when empty); NULL for an
     * element with children. */
    const char *text;
    size_t text_len;
    int stray_text; /* an element with children also holds non-blank text */
    int line;
    struct pg_nx5_node *parent, *first, *last, *next;
    size_t n_children;
} pg_nx5_node;

/* Parse an NX5 document (UTF-8 or windows-1252, no DTD, at most PG_NX5_MAX_SIZE
 * bytes) into a tree of its NX5-namespace elements allocated from arena, all text
 * as UTF-8. 0, or PG_EINVALID / PG_ETOOBIG / PG_ENOMEM with a reason. */
int pg_nx5_parse(pg_arena *arena, const uint8_t *data, size_t size, pg_nx5_node **root,
                 char *errstr, size_t errstr_size);

/* The attribute's value, or NULL. */
const char *pg_nx5_attr_get(const pg_nx5_node *node, const char *name);

/* ------------------------------------------------------------ code tables */

/* One NX5 code and the canonical enum value it stands for. */
typedef struct pg_nx5_code {
    const char *nx5;
    int value;
} pg_nx5_code;

typedef struct pg_nx5_table {
    const char *what; /* for reasons: "gender", "colour" */
    const pg_nx5_code *codes;
    size_t n;
} pg_nx5_table;

extern const pg_nx5_table pg_nx5_gender, pg_nx5_ethnicity_od, pg_nx5_colour, pg_nx5_item_category,
    pg_nx5_weapon_category, pg_nx5_outcome, pg_nx5_gpms, pg_nx5_handling, pg_nx5_phone_type,
    pg_nx5_occurrence_type, pg_nx5_status, pg_nx5_grading_source, pg_nx5_grading_intel;

/* The canonical value of an NX5 code; -1 when the table does not have it. */
int pg_nx5_code_value(const pg_nx5_table *t, const char *nx5);
/* The NX5 code of a canonical value; NULL when NX5 has none. */
const char *pg_nx5_code_name(const pg_nx5_table *t, int value);

/* A canonical enum's value from its short name ("W2" in SelfDefinedEthnicity), or
 * -1. Only names a proto value actually has, never the UNSPECIFIED one. */
int pg_nx5_enum_value(const ProtobufCEnumDescriptor *desc, const char *short_name);

/* Link roles: NX5 name, canonical role, and how reasons name the kinds each end may
 * be (the kinds themselves: pg_role_from_kinds/_to_kinds, polegate/roles.h). */
typedef struct pg_nx5_role {
    const char *nx5;
    int role;
    const char *from_words, *to_words; /* for reasons: "a person" */
} pg_nx5_role;

const pg_nx5_role *pg_nx5_role_by_name(const char *nx5);
const pg_nx5_role *pg_nx5_role_by_value(int role);

/* NX5 Kind attribute <-> EntityKind (Property is ITEM or WEAPON). */
const char *pg_nx5_kind_name(int kind);

/* ------------------------------------------------------------ the two directions */

int pg_nx5_decode(const pg_adapter_ctx *ctx, const uint8_t *data, size_t size, pg_changeset *cs,
                  char *errstr, size_t errstr_size);
int pg_nx5_encode(const pg_adapter_ctx *ctx, const pg_changeset *cs, pg_buf *out, char *errstr,
                  size_t errstr_size);

#endif
