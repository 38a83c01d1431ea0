/* The one JSON string writer: escape and quote, with one rule for bytes that are not
 * UTF-8 (refuse them, or write each as U+FFFD). */
#include <stdint.h>
#include <string.h>

#include "polegate/error.h"
#include "polegate/json.h"

int pg_json_string(pg_buf *out, const void *str, size_t n, pg_json_mode mode)
{
    const uint8_t *s = str;
    size_t start = out->len;
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes \u00XX. Reserving once keeps the loop free of
     * bounds checks. */
    if (pg_buf_reserve(out, n * 6 + 2))
        return PG_ENOMEM;
    uint8_t *p = out->data + out->len;
    *p++ = '"';
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *p++ = c;
            i++;
            continue;
        }
        if (c < 0x80) {
            *p++ = '\\';
            switch (c) {
            case '"':
                *p++ = '"';
                break;
            case '\\':
                *p++ = '\\';
                break;
            case '\b':
                *p++ = 'b';
                break;
            case '\f':
                *p++ = 'f';
                break;
            case '\n':
                *p++ = 'n';
                break;
            case '\r':
                *p++ = 'r';
                break;
            case '\t':
                *p++ = 't';
                break;
            default:
                *p++ = 'u';
                *p++ = '0';
                *p++ = '0';
                *p++ = hex[c >> 4];
                *p++ = hex[c & 15];
            }
            i++;
            continue;
        }
        /* A multi-byte sequence: check it is well-formed (RFC 3629: no overlongs, no
         * surrogates, nothing above U+10FFFF) and copy it as it is. */
        size_t len;
        uint32_t min, cp;
        if ((c & 0xe0) == 0xc0) {
            len = 2, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            len = 0, min = 0, cp = 0;
        }
        int ok = len && n - i >= len;
        for (size_t k = 1; ok && k < len; k++) {
            ok = (s[i + k] & 0xc0) == 0x80;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        ok = ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
        if (!ok && mode == PG_JSON_STRICT) {
            out->len = start; /* as it was */
            out->data[start] = '\0';
            return PG_EINVALID;
        }
        if (!ok) { /* one bad byte: U+FFFD, then go on with the next */
            memcpy(p, "\\ufffd", 6);
            p += 6;
            i++;
            continue;
        }
        memcpy(p, s + i, len);
        p += len;
        i += len;
    }
    *p++ = '"';
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}
