/* The Niche-like RMS adapter: NX5 XML documents <-> canonical changes. */
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

static int s_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The end of the markup construct that starts at p (a '<'), so that what it holds is
 * never read as the start of a document: a comment, a processing instruction (an XML
 * declaration is one) or a CDATA section runs to its terminator, a tag or a
 * declaration to its '>' outside quotes (or to the next '<'). An unterminated
 * comment, PI or CDATA section runs to the end of the input (XML reads the rest as
 * part of it). *kind gets what it was: 'c' comment, 'p' PI, 'd'
 * CDATA, 't' a start tag or declaration, 'e' an end tag. */
static const uint8_t *s_markup_end(const uint8_t *p, const uint8_t *end, int *kind)
{
    static const struct {
        const char *open, *close;
        int kind;
    } spans[] = {{"<!--", "-->", 'c'}, {"<?", "?>", 'p'}, {"<![CDATA[", "]]>", 'd'}};
    size_t left = (size_t)(end - p);
    for (size_t i = 0; i < sizeof spans / sizeof spans[0]; i++) {
        size_t ol = strlen(spans[i].open), cl = strlen(spans[i].close);
        if (left < ol || memcmp(p, spans[i].open, ol) != 0)
            continue;
        const uint8_t *c = memmem(p + ol, left - ol, spans[i].close, cl);
        *kind = spans[i].kind;
        return c ? c + cl : end;
    }
    *kind = left >= 2 && p[1] == '/' ? 'e' : 't';
    uint8_t quote = 0;
    for (p++; p < end; p++) {
        /* '<' is allowed in no tag, not even in a quoted value (XML 1.0 [10]): a tag
         * it is in is broken, and it starts the next markup, so that an unterminated
         * quote does not run on into the documents after it. */
        if (*p == '<')
            return p;
        if (quote)
            quote = *p == quote ? 0 : quote;
        else if (*p == '"' || *p == '\'')
            quote = *p;
        else if (*p == '>')
            return p + 1;
    }
    return end;
}

/* 1 when [p, e) is the root's end tag: </NX5Exchange>, with a namespace prefix or
 * not, with white space before its '>' or not (XML 1.0 [42]). */
static int s_root_end_tag(const uint8_t *p, const uint8_t *e)
{
    static const char root[] = "NX5Exchange";
    const size_t rn = sizeof root - 1;
    if (e - p < 3 || e[-1] != '>')
        return 0;
    for (e--; e > p && s_space(e[-1]);)
        e--;
    const uint8_t *name = p + 2;
    for (const uint8_t *q = name; q < e; q++)
        if (*q == ':')
            name = q + 1;
    if (name != p + 2 && name - 1 == p + 2)
        return 0; /* an empty prefix */
    for (const uint8_t *q = p + 2; q < e; q++)
        if (s_space(*q) || *q == '<' || *q == '/')
            return 0;
    return (size_t)(e - name) == rn && !memcmp(name, root, rn);
}

/* A file holds one NX5 document, or several one after another (an export run, or an
 * initial load): a document ends after its root's end tag, and the next starts with
 * its XML declaration at the start of a line; pos is the 1-based document number.
 * Only blank text between them is skipped: anything else travels with a document,
 * whose decode then says what is wrong with it.
 *
 * One forward pass over the file, never going back: every byte is looked at a fixed
 * number of times, so splitting is linear in the file's size whatever it holds. The
 * pass steps over comments, processing instructions, CDATA sections and tags whole,
 * so a line inside one that starts like a declaration (or like an end tag) is not
 * one; after the root's end tag only white space, comments and processing
 * instructions (XML 1.0 [27] Misc) may come before the next declaration. */
static int s_split(const uint8_t *data, size_t size, pg_split_fn fn, void *arg)
{
    const uint8_t *start = data, *end = data + size, *p = data;
    size_t doc = 0;
    int ended = 0; /* the root's end tag, then Misc only, since the document's start */
    while (start < end) {
        const uint8_t *stop = end;
        while (p < end) {
            const uint8_t *lt = memchr(p, '<', (size_t)(end - p));
            const uint8_t *text_end = lt ? lt : end;
            for (; p < text_end; p++)
                if (!s_space(*p))
                    ended = 0;
            if (!lt)
                break;
            if (ended && lt > start && lt[-1] == '\n' && end - lt > 5 && !memcmp(lt, "<?xml", 5) &&
                s_space(lt[5])) {
                stop = lt;
                break;
            }
            int kind;
            p = s_markup_end(lt, end, &kind);
            if (kind == 'e')
                ended = s_root_end_tag(lt, p);
            else if (kind != 'c' && kind != 'p')
                ended = 0;
        }
        const uint8_t *q = start;
        while (q < stop && s_space(*q))
            q++;
        if (q < stop) {
            int rc = fn(arg, start, (size_t)(stop - start), ++doc);
            if (rc)
                return rc;
        }
        start = p = stop;
        ended = 0;
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
