/* The Niche-like RMS adapter: NX5 XML documents <-> canonical changes. */
#include <ctype.h>
#include <glib.h>
#include <stdio.h>
#include <string.h>

#include "nx5.h"
#include "polegate/adapter.h"
#include "polegate/error.h"

#define S_GID_DIGITS 16
#define S_GID_TRIES 1000

/* ------------------------------------------------------------ ids of partner records */

/* Try n for uuid's GID (docs/formats/niche-nx5.md, "Import"): its first 16 hex digits,
 * so that an operator can find one from the other; its last 16; then the first 16 hex
 * digits of SHA-1("<uuid>/<n - 1>"). */
static int s_id_candidate(const char *const *settings, const char *uuid, int kind, uint64_t n,
                          char *out, size_t outsize, char *errstr, size_t errstr_size)
{
    (void)settings;
    (void)kind;
    if (n >= S_GID_TRIES)
        return pg_errf(PG_ENOTFOUND, errstr, errstr_size, "%s: no free GID", uuid);
    if (outsize < S_GID_DIGITS + 1)
        return pg_errf(PG_EUSAGE, errstr, errstr_size, "output buffer too small");
    char hex[33];
    size_t k = 0;
    const char *p = uuid;
    for (; *p && k < 32; p++)
        if (*p != '-')
            hex[k++] = *p;
    hex[k] = '\0';
    /* The candidates read 16 of the 32 digits: a shorter id would read past them. */
    int ok = k == 32 && !*p;
    for (size_t i = 0; ok && i < k; i++)
        ok = g_ascii_isxdigit(hex[i]);
    if (!ok)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "an entity id that is not a UUID");
    const char *src = hex;
    char *sum = NULL;
    if (n == 1) {
        src = hex + 16;
    } else if (n >= 2) {
        char name[64];
        snprintf(name, sizeof name, "%s/%llu", uuid, (unsigned long long)(n - 1));
        sum = g_compute_checksum_for_string(G_CHECKSUM_SHA1, name, -1);
        src = sum;
    }
    for (int i = 0; i < S_GID_DIGITS; i++)
        out[i] = (char)g_ascii_toupper(src[i]);
    out[S_GID_DIGITS] = '\0';
    g_free(sum);
    return 0;
}

static int s_id_valid(int kind, const char *id)
{
    (void)kind;
    size_t n = strlen(id);
    if (n != S_GID_DIGITS)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F')))
            return 0;
    return 1;
}

static int s_id_kind_of(const char *id)
{
    (void)id;
    return 0; /* a GID says nothing of its record's kind */
}

static const pg_adapter_ids s_ids = {
    .series = NULL,
    .candidate = s_id_candidate,
    .valid = s_id_valid,
    .kind_of = s_id_kind_of,
    .shape = "an NX5 GID (16 upper-case hex digits)",
};

static const pg_adapter_setting s_settings[] = {{NULL, NULL, NULL, NULL}};

static const char *const s_extensions[] = {"xml", NULL};

/* ------------------------------------------------------------ messages in files */

/* 1 when the text before a line that starts another XML declaration ends a document:
 * its root's end tag (</NX5Exchange>, or with a namespace prefix), then white space
 * only. A declaration-like line inside a document (in CDATA or a comment) is not
 * preceded by that, so it stays in its document. */
static int s_ends_document(const uint8_t *start, const uint8_t *nl)
{
    static const char root[] = "NX5Exchange>";
    const size_t rn = sizeof root - 1;
    const uint8_t *e = nl;
    /* after the end tag XML allows comments, processing instructions and white space
     * (Misc, [27]): skipped back over */
    for (;;) {
        while (e > start && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
            e--;
        const char *open = NULL;
        if (e - start >= 3 && !memcmp(e - 3, "-->", 3))
            open = "<!--";
        else if (e - start >= 2 && !memcmp(e - 2, "?>", 2))
            open = "<?";
        if (!open)
            break;
        size_t ol = strlen(open), i = (size_t)(e - start);
        while (i > 0 &&
               !(i - 1 + ol <= (size_t)(e - start) - 2 && !memcmp(start + i - 1, open, ol)))
            i--;
        if (!i)
            return 0;
        e = start + i - 1;
    }
    if ((size_t)(e - start) < rn + 2 || memcmp(e - rn, root, rn) != 0)
        return 0;
    const uint8_t *p = e - rn;
    if (p[-1] == ':') /* a prefix: name characters back to "</" */
        for (p--; p > start + 1 && p[-1] != '/';)
            if (!(isalnum(*--p) || *p == '_' || *p == '-' || *p == '.' || *p == ':'))
                return 0;
    return p - start >= 2 && p[-1] == '/' && p[-2] == '<';
}

/* A file holds one NX5 document, or several one after another (an export run, or an
 * initial load): a document ends after its root's end tag, and the next starts with
 * its XML declaration at the start of a line; pos is the 1-based document number.
 * Only blank text between them is skipped: anything else travels with a document,
 * whose decode then says what is wrong with it. */
static int s_split(const uint8_t *data, size_t size, pg_split_fn fn, void *arg)
{
    const uint8_t *start = data, *end = data + size;
    size_t doc = 0;
    while (start < end) {
        const uint8_t *hit = NULL, *from = start;
        while ((hit = memmem(from, (size_t)(end - from), "\n<?xml", 6)) != NULL) {
            const uint8_t *after = hit + 6;
            if (after < end && strchr(" \t\r\n", *after) && *after && s_ends_document(start, hit))
                break;
            from = hit + 1;
        }
        const uint8_t *stop = hit ? hit + 1 : end;
        const uint8_t *p = start;
        while (p < stop && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (p < stop) {
            int rc = fn(arg, start, (size_t)(stop - start), ++doc);
            if (rc)
                return rc;
        }
        start = stop;
    }
    return 0;
}

/* An NX5 GID is unique across kinds (and a link does not say its target's kind). */
static const char *s_native_type(int kind)
{
    (void)kind;
    return "GID";
}

const pg_adapter_ops pg_adapter_niche = {
    .name = "niche",
    .format = "nx5",
    .system = "NICHE",
    .max_message_size = PG_NX5_MAX_SIZE,
    .decode = pg_nx5_decode,
    .encode = pg_nx5_encode,
    .split = s_split,
    .extensions = s_extensions,
    .messages = "NX5 documents",
    .position = "document",
    .opens = '<',
    .one_per_file = 1,
    .whole_links = 0,
    .batches = 1,
    .force_path = "NX5Exchange@Force",
    .ids = &s_ids,
    .native_type = s_native_type,
    .settings = s_settings,
};
