/* ATX/2 internals shared by the decoder and the encoder: code tables and checks. */
#ifndef POLEGATE_ATX_H
#define POLEGATE_ATX_H

#include <stddef.h>

#include "polegate/adapter.h"
#include "polegate/pole.h"
#include "polegate/roles.h"

#define PG_ATX_SCHEMA "atx/2"
#define PG_ATX_SYSTEM "ATHENA"
#define PG_ATX_MAX_MESSAGE 1048576u
#define PG_ATX_ID_LEN 11 /* type letter + 10 digits */

/* One row of a code table: the ATX spelling and the canonical enum value. */
typedef struct pg_atx_code {
    const char *atx;
    int value;
} pg_atx_code;

typedef struct pg_atx_table {
    const pg_atx_code *codes;
    size_t n;
    const char *list; /* "MALE, FEMALE, ..." for reasons */
} pg_atx_table;

/* The canonical value of an ATX code, or -1 when the table does not have it. */
int pg_atx_code_value(const pg_atx_table *t, const char *atx);
/* The ATX code of a canonical value, or NULL when ATX has no equivalent. */
const char *pg_atx_code_name(const pg_atx_table *t, int value);

extern const pg_atx_table pg_atx_sex, pg_atx_sde, pg_atx_ic, pg_atx_wm, pg_atx_colour, pg_atx_item,
    pg_atx_weapon, pg_atx_telkind, pg_atx_occkind, pg_atx_occstatus, pg_atx_outcome,
    pg_atx_classification, pg_atx_handling, pg_atx_assessment, pg_atx_role, pg_atx_action;

/* Record types: ATX record.type <-> EntityKind, with the id's type letter. */
extern const pg_atx_table pg_atx_type;
/* The type letter of an EntityKind ('P' for PERSON), 0 when none. */
char pg_atx_type_letter(int kind);

/* Is id the ATX id of a record of kind: its type letter and exactly 10 digits? */
int pg_atx_id_valid(const char *id, int kind);
/* The kind an ATX id's letter names, 0 when it is not an ATX id. */
int pg_atx_id_kind(const char *id);

/* Is s a lower-case RFC 4122 UUID (version 1-8, variant 10xx)? */
int pg_atx_uuid_valid(const char *s);

/* Unicode characters in the UTF-8 string s[0..len). */
size_t pg_atx_utf8_chars(const char *s, size_t len);

/* Is c white space that ATX trims around a body string (space, tab, CR, LF)? */
int pg_atx_space(char c);
/* s[0..*len) without surrounding white space: its start, with *len its length. Body
 * strings are trimmed on import and an empty one means absent (athena-atx2.md,
 * Bodies): the decoder reads them so, the encoder writes them so. */
const char *pg_atx_trim(const char *s, size_t *len);

int pg_atx_decode(const pg_adapter_ctx *ctx, const uint8_t *data, size_t size, pg_changeset *cs,
                  char *errstr, size_t errstr_size);
int pg_atx_encode(const pg_adapter_ctx *ctx, const pg_changeset *cs, pg_buf *out, char *errstr,
                  size_t errstr_size);

#endif
