/* The Athena-like RMS adapter: ATX/2 JSON (docs/formats/athena-atx2.md) behind pg_adapter_ops. */
#include <stdio.h>
#include <string.h>

#include "atx.h"
#include "polegate/adapter.h"
#include "polegate/error.h"

#define S_ID_DIGITS 10 /* after the record type letter */

/* ------------------------------------------------------------ ids of partner records */

/* The record type letter of EntityKind 1..9 (docs/formats/athena-atx2.md, "Import"). */
static const char s_letters[] = "PLVIWTOCN";

static int s_id_series(int kind, char *out, size_t size, char *errstr, size_t errstr_size)
{
    if (kind < 1 || kind > 9)
        return pg_errf(PG_EUNSUPPORTED, errstr, errstr_size,
                       "an ATX record id needs the record type, and the kind of this entity "
                       "is not known");
    snprintf(out, size, "%c", s_letters[kind - 1]);
    return 0;
}

/* The letter, the configured prefix, then n zero-padded to 10 digits in all. */
static int s_id_candidate(const char *const *settings, const char *uuid, int kind, uint64_t n,
                          char *out, size_t outsize, char *errstr, size_t errstr_size)
{
    (void)uuid;
    char letter[2];
    int rc = s_id_series(kind, letter, sizeof letter, errstr, errstr_size);
    if (rc)
        return rc;
    const char *prefix = pg_adapter_value(&pg_adapter_athena, settings, 0);
    int width = S_ID_DIGITS - (int)strlen(prefix);
    uint64_t max = 1;
    for (int i = 0; i < width; i++)
        max *= 10;
    if (n >= max)
        return pg_errf(PG_ENOTFOUND, errstr, errstr_size, "every ATX id %s%s... is taken", letter,
                       prefix);
    char digits[24];
    snprintf(digits, sizeof digits, "%020llu", (unsigned long long)n);
    snprintf(out, outsize, "%s%s%s", letter, prefix, digits + 20 - width);
    return 0;
}

static int s_id_kind_of(const char *id)
{
    const char *l = id && *id ? strchr(s_letters, id[0]) : NULL;
    return l ? (int)(l - s_letters) + 1 : 0;
}

static int s_id_valid(int kind, const char *id)
{
    size_t n = strlen(id);
    int of = s_id_kind_of(id);
    if (n != 1 + S_ID_DIGITS || !of || (kind && of != kind))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (id[i] < '0' || id[i] > '9')
            return 0;
    return 1;
}

static const pg_adapter_ids s_ids = {
    .series = s_id_series,
    .candidate = s_id_candidate,
    .valid = s_id_valid,
    .kind_of = s_id_kind_of,
    .shape = "an ATX id (type letter and 10 digits)",
    .kind_shape = "an ATX id of this kind's letter",
    .kind_mark = "letter",
};

static int s_check_prefix(const char *v, char *errstr, size_t errstr_size)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n <= 4;
    for (size_t i = 0; ok && i < n; i++)
        ok = v[i] >= '0' && v[i] <= '9';
    return ok ? 0 : pg_errf(PG_ECONFIG, errstr, errstr_size, "'%s' is not 1-4 digits", v);
}

static const pg_adapter_setting s_settings[] = {
    {"id_prefix", "9",
     "The 1-4 digits every id given to a partner record starts with (`P9000000001`); "
     "choose digits the RMS's own ids never start with.",
     s_check_prefix},
    {NULL, NULL, NULL, NULL},
};

static const char *const s_extensions[] = {"ndjson", "jsonl", "json", NULL};

/* ------------------------------------------------------------ messages in files */

/* NDJSON: one message a line, "\n" or "\r\n" ends, blank lines skipped; pos is the
 * 1-based line number so a reason can point at the line of the file. */
static int s_split(const uint8_t *data, size_t size, pg_split_fn fn, void *arg)
{
    size_t line = 0, i = 0;
    while (i < size) {
        size_t start = i;
        while (i < size && data[i] != '\n')
            i++;
        size_t end = i;
        line++;
        if (i < size)
            i++; /* past '\n' */
        if (end > start && data[end - 1] == '\r')
            end--;
        size_t s = start;
        while (s < end && (data[s] == ' ' || data[s] == '\t' || data[s] == '\r'))
            s++;
        if (s == end)
            continue; /* blank */
        int rc = fn(arg, data + start, end - start, line);
        if (rc)
            return rc;
    }
    return 0;
}

/* An ATX id names its record type: PERSON, P0000123456. */
static const char *s_native_type(int kind)
{
    return pg_atx_code_name(&pg_atx_type, kind);
}

const pg_adapter_ops pg_adapter_athena = {
    .name = "athena",
    .format = "atx",
    .system = PG_ATX_SYSTEM,
    .max_message_size = PG_ATX_MAX_MESSAGE,
    .decode = pg_atx_decode,
    .encode = pg_atx_encode,
    .split = s_split,
    .extensions = s_extensions,
    .messages = "ATX messages",
    .position = "line",
    .opens = '{',
    .one_per_file = 0,
    .whole_links = 1,
    .batches = 0,
    .force_path = "header.orgUnit",
    .ids = &s_ids,
    .native_type = s_native_type,
    .settings = s_settings,
};
