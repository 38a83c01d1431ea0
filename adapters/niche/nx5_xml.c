/* NX5 document reading: encoding checks, DTD refusal, and a tree of NX5-namespace elements. */
#include <libxml/parser.h>
#include <libxml/xmlreader.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "nx5.h"
#include "polegate/error.h"

static pthread_once_t s_init_once = PTHREAD_ONCE_INIT;

static void s_init(void)
{
    /* libxml2 must be initialised once before threads use it. */
    xmlInitParser();
}

const char *pg_nx5_attr_get(const pg_nx5_node *node, const char *name)
{
    for (size_t i = 0; i < node->n_attrs; i++)
        if (strcmp(node->attrs[i].name, name) == 0)
            return node->attrs[i].value;
    return NULL;
}

static int s_is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The encoding the document declares, decided before libxml2 sees it so that no
 * other encoding is ever decoded: "UTF-8" or "windows-1252" into *enc. A byte order
 * mark is allowed for UTF-8 only. */
static int s_encoding(const uint8_t *p, size_t n, const char **enc, char *errstr,
                      size_t errstr_size)
{
    int bom = n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF;
    if (bom)
        p += 3, n -= 3;
    else if (n >= 2 && ((p[0] == 0xFE && p[1] == 0xFF) || (p[0] == 0xFF && p[1] == 0xFE) ||
                        p[0] == 0 || p[1] == 0))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "encoding: UTF-16/UTF-32 documents are not NX5 (UTF-8 or "
                       "windows-1252 only)");
    *enc = "UTF-8";
    if (n < 6 || memcmp(p, "<?xml", 5) != 0 || !s_is_space(p[5]))
        return 0; /* no declaration: UTF-8 */
    size_t end = 5;
    while (end + 1 < n && !(p[end] == '?' && p[end + 1] == '>'))
        end++;
    if (end + 1 >= n)
        return 0; /* malformed; libxml2 will say so */
    /* pseudo-attributes: name = "value" | 'value' */
    size_t i = 5;
    while (i < end) {
        while (i < end && s_is_space(p[i]))
            i++;
        size_t name = i;
        while (i < end && p[i] != '=' && !s_is_space(p[i]))
            i++;
        size_t name_len = i - name;
        while (i < end && s_is_space(p[i]))
            i++;
        if (i >= end || p[i] != '=')
            break;
        i++;
        while (i < end && s_is_space(p[i]))
            i++;
        if (i >= end || (p[i] != '"' && p[i] != '\''))
            break;
        uint8_t q = p[i++];
        size_t val = i;
        while (i < end && p[i] != q)
            i++;
        size_t val_len = i - val;
        i++;
        if (name_len != 8 || memcmp(p + name, "encoding", 8) != 0)
            continue;
        /* XML encoding names are matched without regard to case. */
        if (val_len == 5 && strncasecmp((const char *)p + val, "UTF-8", 5) == 0)
            return 0;
        if (val_len == 12 && strncasecmp((const char *)p + val, "windows-1252", 12) == 0) {
            if (bom)
                return pg_errf(PG_EINVALID, errstr, errstr_size,
                               "encoding: declared windows-1252 but starts with a UTF-8 "
                               "byte order mark");
            *enc = "windows-1252";
            return 0;
        }
        /* Named only when it is a name (XML 1.0 [81] EncName): anything else there may
         * be record content, and is never quoted. */
        int name_ok = val_len >= 1 && val_len <= 40;
        for (size_t k = 0; name_ok && k < val_len; k++) {
            unsigned char c = p[val + k];
            name_ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                      (k && ((c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'));
        }
        if (!name_ok)
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "encoding: not an encoding name (UTF-8 or windows-1252 only)");
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "encoding: '%.*s' is not allowed (UTF-8 or windows-1252 only)", (int)val_len,
                       (const char *)p + val);
    }
    return 0;
}

typedef struct s_reader {
    pg_arena *arena;
    xmlTextReaderPtr r;
    char xml_error[256];
    int xml_error_line;
    pg_buf text; /* text of the innermost open element so far */
    pg_nx5_node *root, *cur;
} s_reader;

/* Where libxml2 starts quoting input bytes in msg ("Bytes: 0xC3 0x28",
 * "..., bytes 0x81 0x54"), in whatever case; NULL when it does not. */
static char *s_quoted_bytes(char *msg)
{
    for (char *p = strcasestr(msg, "bytes"); p; p = strcasestr(p + 5, "bytes")) {
        char *q = p + 5;
        if (*q == ':')
            q++;
        while (*q == ' ')
            q++;
        if (strncasecmp(q, "0x", 2) == 0)
            return p;
    }
    return NULL;
}

/* The first error is the reason; libxml2 ends its messages with a newline. What it
 * quotes of the document (an entity's name, the bytes it could not read) is content,
 * not a reason: left out. The line, when libxml2 gives one, stays. */
static void s_keep_error(s_reader *rd, const char *msg, int line)
{
    if (rd->xml_error[0])
        return;
    snprintf(rd->xml_error, sizeof rd->xml_error, "%s", msg);
    /* What libxml2 quotes of the input after its message, on a line of its own or
     * from a " <" on ("Comment not terminated\n<!-- ...", "Double hyphen within
     * comment: <!-- ..."), is record content: left out ("Unescaped '<' not allowed"
     * keeps its '<'). */
    rd->xml_error[strcspn(rd->xml_error, "\n")] = 0;
    char *quoted = strstr(rd->xml_error, " <");
    if (quoted)
        *quoted = 0;
    char *bytes = s_quoted_bytes(rd->xml_error);
    if (bytes)
        *bytes = 0;
    pg_errstr_unquote(rd->xml_error);
    size_t len = strlen(rd->xml_error);
    while (len && strchr("\n ,:", rd->xml_error[len - 1]))
        rd->xml_error[--len] = 0;
    rd->xml_error_line = line;
}

static void s_on_error(void *arg, xmlErrorPtr err)
{
    if (err && err->level >= XML_ERR_ERROR)
        s_keep_error(arg, err->message ? err->message : "?", err->line);
}

/* A DTD can only stand in the prolog, before the root element, among comments,
 * processing instructions and white space (XML 1.0 [22]). Finding it there on the raw
 * bytes (every markup character is ASCII in both encodings) refuses it before libxml2
 * reads a single declaration: nothing is fetched, declared or expanded. */
static int s_has_doctype(const uint8_t *p, size_t n)
{
    size_t i = (n >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) ? 3 : 0;
    for (;;) {
        while (i < n && s_is_space(p[i]))
            i++;
        if (n - i >= 2 && p[i] == '<' && p[i + 1] == '?') {
            const uint8_t *e = memmem(p + i + 2, n - i - 2, "?>", 2);
            if (!e)
                return 0;
            i = (size_t)(e - p) + 2;
        } else if (n - i >= 4 && memcmp(p + i, "<!--", 4) == 0) {
            const uint8_t *e = memmem(p + i + 4, n - i - 4, "-->", 3);
            if (!e)
                return 0;
            i = (size_t)(e - p) + 3;
        } else {
            return n - i >= 9 && memcmp(p + i, "<!DOCTYPE", 9) == 0;
        }
    }
}

/* libxml2 reports encoding failures through its generic (per-thread) handler rather
 * than the reader's: keep the first as the reason, print nothing. */
static void s_on_generic(void *arg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_on_generic(void *arg, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s_keep_error(arg, msg, 0);
}

static int s_blank(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!s_is_space(s[i]))
            return 0;
    return 1;
}

/* Text seen so far belongs to the current element: a leaf keeps it; an element that
 * turns out to have children only remembers that it had non-blank text. */
static void s_flush_text(s_reader *rd)
{
    if (rd->cur && rd->text.len && !s_blank(rd->text.data, rd->text.len))
        rd->cur->stray_text = 1;
    pg_buf_reset(&rd->text);
}

static int s_open(s_reader *rd, char *errstr, size_t errstr_size)
{
    pg_nx5_node *n = pg_arena_alloc(rd->arena, sizeof(*n));
    if (!n)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "NX5: out of memory");
    n->name = pg_arena_strdup(rd->arena, (const char *)xmlTextReaderConstLocalName(rd->r));
    n->line = xmlTextReaderGetParserLineNumber(rd->r);
    int n_attrs = xmlTextReaderAttributeCount(rd->r);
    if (n_attrs > 0) {
        n->attrs = pg_arena_alloc(rd->arena, (size_t)n_attrs * sizeof(*n->attrs));
        if (!n->attrs)
            return pg_errf(PG_ENOMEM, errstr, errstr_size, "NX5: out of memory");
        for (int ok = xmlTextReaderMoveToFirstAttribute(rd->r); ok == 1;
             ok = xmlTextReaderMoveToNextAttribute(rd->r)) {
            /* Namespace declarations and attributes of other namespaces are not
             * NX5's. */
            if (xmlTextReaderIsNamespaceDecl(rd->r) == 1 ||
                xmlTextReaderConstNamespaceUri(rd->r) != NULL)
                continue;
            pg_nx5_attr *a = &n->attrs[n->n_attrs++];
            a->name = pg_arena_strdup(rd->arena, (const char *)xmlTextReaderConstLocalName(rd->r));
            a->value = pg_arena_strdup(rd->arena, (const char *)xmlTextReaderConstValue(rd->r));
            if (!a->name || !a->value)
                return pg_errf(PG_ENOMEM, errstr, errstr_size, "NX5: out of memory");
        }
        xmlTextReaderMoveToElement(rd->r);
    }
    if (!n->name)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "NX5: out of memory");
    if (rd->cur) {
        s_flush_text(rd);
        n->parent = rd->cur;
        if (rd->cur->last)
            rd->cur->last->next = n;
        else
            rd->cur->first = n;
        rd->cur->last = n;
        rd->cur->n_children++;
    } else {
        rd->root = n;
    }
    rd->cur = n;
    return 0;
}

static int s_close(s_reader *rd, char *errstr, size_t errstr_size)
{
    pg_nx5_node *n = rd->cur;
    if (!n->first) {
        n->text = pg_arena_strndup(rd->arena, rd->text.len ? (const char *)rd->text.data : "",
                                   rd->text.len);
        if (!n->text)
            return pg_errf(PG_ENOMEM, errstr, errstr_size, "NX5: out of memory");
        n->text_len = rd->text.len;
        pg_buf_reset(&rd->text);
    } else {
        s_flush_text(rd);
    }
    rd->cur = n->parent;
    return 0;
}

/* One reader event. *skip asks the caller to step over the current subtree. */
static int s_event(s_reader *rd, int *skip, char *errstr, size_t errstr_size)
{
    int type = xmlTextReaderNodeType(rd->r);
    switch (type) {
    case XML_READER_TYPE_DOCUMENT_TYPE:
    case XML_READER_TYPE_ENTITY:
    case XML_READER_TYPE_ENTITY_REFERENCE:
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "NX5: DTDs and entity declarations are not allowed");
    case XML_READER_TYPE_ELEMENT: {
        const xmlChar *ns = xmlTextReaderConstNamespaceUri(rd->r);
        if (!ns || strcmp((const char *)ns, PG_NX5_NAMESPACE) != 0) {
            if (!rd->root)
                return pg_errf(PG_EINVALID, errstr, errstr_size,
                               "NX5Exchange: the root element must be NX5Exchange in "
                               "namespace " PG_NX5_NAMESPACE " (found '%s' in '%s')",
                               (const char *)xmlTextReaderConstLocalName(rd->r),
                               ns ? (const char *)ns : "no namespace");
            *skip = 1;
            return 0;
        }
        int empty = xmlTextReaderIsEmptyElement(rd->r);
        int rc = s_open(rd, errstr, errstr_size);
        if (rc == 0 && empty)
            rc = s_close(rd, errstr, errstr_size);
        return rc;
    }
    case XML_READER_TYPE_END_ELEMENT:
        /* Only NX5 elements are entered, so every end seen here is one of ours. */
        return rd->cur ? s_close(rd, errstr, errstr_size) : 0;
    case XML_READER_TYPE_TEXT:
    case XML_READER_TYPE_CDATA:
    case XML_READER_TYPE_WHITESPACE:
    case XML_READER_TYPE_SIGNIFICANT_WHITESPACE: {
        if (!rd->cur)
            return 0;
        const xmlChar *v = xmlTextReaderConstValue(rd->r);
        if (v && pg_buf_puts(&rd->text, (const char *)v) != 0)
            return pg_errf(PG_ENOMEM, errstr, errstr_size, "NX5: out of memory");
        return 0;
    }
    default: /* comments, processing instructions */
        return 0;
    }
}

/* Once the declaration is read: one document is one XML 1.0 file (no declaration is
 * 1.0). libxml2 reads 1.1 documents, and would take what only 1.1 allows. */
static int s_version(s_reader *rd, char *errstr, size_t errstr_size)
{
    const char *v = (const char *)xmlTextReaderConstXmlVersion(rd->r);
    if (!v || strcmp(v, "1.0") == 0)
        return 0;
    return pg_errf(PG_EINVALID, errstr, errstr_size,
                   "NX5: XML version '%.*s' is not allowed (XML 1.0 only)",
                   (int)(strlen(v) > 10 ? 10 : strlen(v)), v);
}

int pg_nx5_parse(pg_arena *arena, const uint8_t *data, size_t size, pg_nx5_node **root,
                 char *errstr, size_t errstr_size)
{
    if (size > PG_NX5_MAX_SIZE)
        return pg_errf(PG_ETOOBIG, errstr, errstr_size,
                       "NX5: document is %zu bytes, more than 8 MiB", size);
    if (size == 0)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "NX5: empty document");
    const char *enc;
    int rc = s_encoding(data, size, &enc, errstr, errstr_size);
    if (rc)
        return rc;
    if (s_has_doctype(data, size))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "NX5: DTDs and entity declarations are not allowed");
    pthread_once(&s_init_once, s_init);

    s_reader rd = {.arena = arena, .text = PG_BUF_INIT};
    /* No NOENT (entities are never substituted), no DTDLOAD/DTDATTR (nothing is
     * fetched), NONET, and libxml2's own size limits (no HUGE). */
    /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): s_encoding set enc or failed */
    rd.r = xmlReaderForMemory((const char *)data, (int)size, NULL, enc,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!rd.r)
        return pg_errf(PG_ENOMEM, errstr, errstr_size, "NX5: cannot create an XML reader");
    xmlTextReaderSetStructuredErrorHandler(rd.r, s_on_error, &rd);
    xmlGenericErrorFunc old_generic = xmlGenericError;
    void *old_generic_ctx = xmlGenericErrorContext;
    xmlSetGenericErrorFunc(&rd, s_on_generic);

    int ret = xmlTextReaderRead(rd.r);
    if (ret == 1)
        rc = s_version(&rd, errstr, errstr_size);
    while (ret == 1 && rc == 0) {
        int skip = 0;
        rc = s_event(&rd, &skip, errstr, errstr_size);
        if (rc == 0)
            ret = skip ? xmlTextReaderNext(rd.r) : xmlTextReaderRead(rd.r);
    }
    /* A reader can stop at an encoding error as if at the end of the input: an
     * element still open means the document did not end. */
    if (rc == 0 && (ret != 0 || rd.cur || rd.xml_error[0])) {
        if (rd.xml_error[0] && rd.xml_error_line > 0)
            rc = pg_errf(PG_EINVALID, errstr, errstr_size, "NX5: not well-formed XML (line %d: %s)",
                         rd.xml_error_line, rd.xml_error);
        else if (rd.xml_error[0])
            rc = pg_errf(PG_EINVALID, errstr, errstr_size, "NX5: not well-formed XML (%s)",
                         rd.xml_error);
        else
            rc = pg_errf(PG_EINVALID, errstr, errstr_size, "NX5: not well-formed XML");
    }
    if (rc == 0 && !rd.root)
        rc = pg_errf(PG_EINVALID, errstr, errstr_size, "NX5: no root element");
    xmlFreeTextReader(rd.r);
    xmlSetGenericErrorFunc(old_generic_ctx, old_generic);
    pg_buf_free(&rd.text);
    if (rc == 0)
        *root = rd.root;
    return rc;
}
