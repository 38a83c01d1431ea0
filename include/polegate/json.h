/* JSON text: the one string writer every JSON producer of polegate uses (pbjson, the
 * ATX encoder, the intake and delivery acks). */
#ifndef POLEGATE_JSON_H
#define POLEGATE_JSON_H

#include <stddef.h>

#include "polegate/buf.h"

/* What becomes of bytes that are not UTF-8 (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), which JSON text cannot carry. */
typedef enum pg_json_mode {
    PG_JSON_STRICT = 0,  /* refused: PG_EINVALID, out as it was (records: never altered) */
    PG_JSON_REPLACE = 1, /* each bad byte written as U+FFFD (reasons in acks: always valid) */
} pg_json_mode;

/* Append s[0..n) as a quoted JSON string: '"' and '\\' escaped, control characters as
 * \b \f \n \r \t or \u00XX, everything else as it is. 0, PG_ENOMEM, or PG_EINVALID
 * (PG_JSON_STRICT). */
int pg_json_string(pg_buf *out, const void *s, size_t n, pg_json_mode mode);

#endif
