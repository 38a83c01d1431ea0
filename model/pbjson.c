/* Protobuf -> JSON (proto3 JSON mapping), one generic encoder walking protobuf-c
 * descriptors. */
#include "polegate/pbjson.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"
#include "polegate/json.h"

/* The earliest and latest instants proto3 JSON can write: 0001-01-01T00:00:00Z and
 * 9999-12-31T23:59:59.999999999Z. */
#define S_TS_MIN (-62135596800LL)
#define S_TS_MAX (253402300799LL)

static int s_message(const ProtobufCMessage *msg, pg_buf *out);

/* protoc's ToJsonName: drop each '_' and upper-case the letter after it. Field names
 * are ASCII identifiers, so the key needs no escaping. */
static int s_key(const char *name, pg_buf *out)
{
    if (pg_buf_reserve(out, strlen(name) + 3))
        return PG_ENOMEM;
    uint8_t *p = out->data + out->len;
    *p++ = '"';
    int upper = 0;
    for (const char *c = name; *c; c++) {
        if (*c == '_') {
            upper = 1;
            continue;
        }
        *p++ = (uint8_t)((upper && *c >= 'a' && *c <= 'z') ? *c - 'a' + 'A' : *c);
        upper = 0;
    }
    *p++ = '"';
    *p++ = ':';
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}

static int s_base64(const uint8_t *s, size_t n, pg_buf *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (pg_buf_reserve(out, (n + 2) / 3 * 4 + 2))
        return PG_ENOMEM;
    uint8_t *p = out->data + out->len;
    *p++ = '"';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = tab[(v >> 6) & 63];
        *p++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = '=';
        *p++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = tab[(v >> 6) & 63];
        *p++ = '=';
    }
    *p++ = '"';
    out->len = (size_t)(p - out->data);
    out->data[out->len] = '\0';
    return 0;
}

/* The shortest of a few precisions that reads back as the same value, so that a
 * partner's parser gets exactly the number we hold. float32 follows the same search
 * from 6 digits that Google's Python runtime uses. */
static int s_real(double v, int is_float, pg_buf *out)
{
    if (isnan(v))
        return pg_buf_puts(out, "\"NaN\"");
    if (isinf(v))
        return pg_buf_puts(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    /* "-0" reads back as the integer 0 in many parsers (Python's json among them);
     * "-0.0" keeps the sign. */
    if (v == 0 && signbit(v))
        return pg_buf_puts(out, "-0.0");
    char tmp[32];
    int prec = is_float ? 6 : 15;
    int max = is_float ? 9 : 17;
    for (;; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec >= max)
            break;
        double back = strtod(tmp, NULL);
        if (is_float ? (float)back == (float)v : back == v)
            break;
    }
    /* The shortest text of FLT_MAX (3.4028235e+38) reads as a double above FLT_MAX,
     * which strict readers (Google's Python and C# among them) refuse for a float
     * field: write the exact value instead. */
    if (is_float && fabs(strtod(tmp, NULL)) > FLT_MAX)
        snprintf(tmp, sizeof tmp, "%.17g", v);
    return pg_buf_puts(out, tmp);
}

/* Days since 1970-01-01 -> proleptic Gregorian date (H. Hinnant's civil_from_days). */
static void s_civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* google.protobuf.Timestamp: RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits. */
static int s_timestamp(const ProtobufCMessage *msg, pg_buf *out)
{
    const ProtobufCFieldDescriptor *fs =
        protobuf_c_message_descriptor_get_field(msg->descriptor, 1);
    const ProtobufCFieldDescriptor *fn =
        protobuf_c_message_descriptor_get_field(msg->descriptor, 2);
    if (!fs || !fn)
        return PG_EINVALID;
    int64_t secs = *(const int64_t *)((const char *)msg + fs->offset);
    int32_t nanos = *(const int32_t *)((const char *)msg + fn->offset);
    if (secs < S_TS_MIN || secs > S_TS_MAX || nanos < 0 || nanos > 999999999)
        return PG_EINVALID;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned mo, d;
    s_civil(days, &y, &mo, &d);
    /* "YYYY-MM-DDThh:mm:ss" + up to ".nnnnnnnnn" + "Z", quoted. */
    char tmp[40];
    char *p = tmp;
    unsigned fields[6] = {
        (unsigned)y,         mo, d, (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60),
        (unsigned)(sod % 60)};
    static const char seps[6] = {'-', '-', 'T', ':', ':', 0};
    *p++ = '"';
    for (int i = 0; i < 6; i++) {
        unsigned v = fields[i];
        if (i == 0) {
            *p++ = (char)('0' + v / 1000);
            *p++ = (char)('0' + v / 100 % 10);
        }
        *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        if (seps[i])
            *p++ = seps[i];
    }
    if (nanos) {
        int digits = nanos % 1000000 == 0 ? 3 : nanos % 1000 == 0 ? 6 : 9;
        unsigned frac = (unsigned)nanos;
        for (int k = digits; k < 9; k++)
            frac /= 10;
        *p++ = '.';
        for (int k = digits - 1; k >= 0; k--) {
            p[k] = (char)('0' + frac % 10);
            frac /= 10;
        }
        p += digits;
    }
    *p++ = 'Z';
    *p++ = '"';
    return pg_buf_append(out, tmp, (size_t)(p - tmp));
}

/* Integers are most of what a message holds besides strings: written by hand, as
 * printf would parse its format for each one. quoted: as a JSON string. */
static int s_integer(uint64_t magnitude, int negative, int quoted, pg_buf *out)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    if (quoted)
        *--p = '"';
    do {
        *--p = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (negative)
        *--p = '-';
    if (quoted)
        *--p = '"';
    return pg_buf_append(out, p, (size_t)(tmp + sizeof tmp - p));
}

static int s_signed(int64_t v, int quoted, pg_buf *out)
{
    /* The magnitude of INT64_MIN does not fit an int64_t: negate in unsigned. */
    return v < 0 ? s_integer(0 - (uint64_t)v, 1, quoted, out)
                 : s_integer((uint64_t)v, 0, quoted, out);
}

/* One value of a field; p points at it (the member, or one element of an array). */
static int s_value(const ProtobufCFieldDescriptor *f, const void *p, pg_buf *out)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return s_signed(*(const int32_t *)p, 0, out);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return s_integer(*(const uint32_t *)p, 0, 0, out);
    /* 64-bit integers are strings: a JSON number is a double to most readers. */
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return s_signed(*(const int64_t *)p, 1, out);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return s_integer(*(const uint64_t *)p, 0, 1, out);
    case PROTOBUF_C_TYPE_FLOAT:
        return s_real(*(const float *)p, 1, out);
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_real(*(const double *)p, 0, out);
    case PROTOBUF_C_TYPE_BOOL:
        return pg_buf_puts(out, *(const protobuf_c_boolean *)p ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        /* A value this schema does not know (a newer sender) is written as its
         * number, as the mapping says. */
        if (!ev)
            return s_signed(v, 0, out);
        return pg_json_string(out, ev->name, strlen(ev->name), PG_JSON_STRICT);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s ? pg_json_string(out, s, strlen(s), PG_JSON_STRICT) : pg_buf_puts(out, "\"\"");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        return s_base64(b->data, b->len, out);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? s_message(m, out) : pg_buf_puts(out, "{}");
    }
    }
    return PG_EINVALID;
}

static size_t s_elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

/* Would protobuf-c leave this value off the wire when the field has no presence?
 * Mirrors its field_is_zeroish, so that the JSON and the protobuf of one message
 * always hold the same fields: floats compare by value (-0.0 is dropped too). */
static int s_is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p == NULL;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p == 0;
    default: {
        static const uint8_t zero[8];
        return memcmp(p, zero, s_elem_size(f->type)) == 0;
    }
    }
}

/* Is the field present, i.e. does the proto3 JSON mapping write it? */
static int s_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)msg;
    const void *p = base + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
            return 0;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)
            return *(void *const *)p != NULL;
        return 1;
    }
    switch (f->label) {
    case PROTOBUF_C_LABEL_REQUIRED:
        return 1;
    case PROTOBUF_C_LABEL_REPEATED:
        return *(const size_t *)(base + f->quantifier_offset) > 0;
    case PROTOBUF_C_LABEL_OPTIONAL:
        /* proto2 optional or proto3 `optional`: explicit presence. */
        if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
            const void *v = *(void *const *)p;
            return v != NULL && v != f->default_value;
        }
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset) != 0;
    case PROTOBUF_C_LABEL_NONE:
    default:
        return !s_is_default(f, p);
    }
}

/* protoc-c has no map type: a map<K,V> field is a repeated nested "<Name>Entry"
 * message with key = 1 and value = 2, which JSON writes as an object. */
static int s_is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return 0;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    if (d->n_fields != 2 || d->fields[0].id != 1 || d->fields[1].id != 2 ||
        strcmp(d->fields[0].name, "key") != 0 || strcmp(d->fields[1].name, "value") != 0)
        return 0;
    /* The entry is named after the field in CamelCase, e.g. "tags" -> TagsEntry. */
    const char *sn = d->short_name;
    const char *fn = f->name;
    int upper = 1;
    for (; *fn; fn++) {
        if (*fn == '_') {
            upper = 1;
            continue;
        }
        char want = (upper && *fn >= 'a' && *fn <= 'z') ? (char)(*fn - 'a' + 'A') : *fn;
        if (*sn++ != want)
            return 0;
        upper = 0;
    }
    return strcmp(sn, "Entry") == 0;
}

/* A map key is always a JSON string. */
static int s_map_key(const ProtobufCFieldDescriptor *kf, const void *p, pg_buf *out)
{
    int rc;
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING:
        rc = s_value(kf, p, out);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        rc = pg_buf_puts(out, *(const protobuf_c_boolean *)p ? "\"true\"" : "\"false\"");
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = s_value(kf, p, out); /* already quoted */
        break;
    default:
        if ((rc = pg_buf_putc(out, '"')) || (rc = s_value(kf, p, out)) ||
            (rc = pg_buf_putc(out, '"')))
            return rc;
    }
    return rc ? rc : pg_buf_putc(out, ':');
}

static int s_map(const ProtobufCFieldDescriptor *f, const void *const *entries, size_t n,
                 pg_buf *out)
{
    const ProtobufCMessageDescriptor *d = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &d->fields[0], *vf = &d->fields[1];
    int rc = pg_buf_putc(out, '{');
    for (size_t i = 0; i < n && !rc; i++) {
        const char *e = entries[i];
        if (i && (rc = pg_buf_putc(out, ',')))
            break;
        if (!(rc = s_map_key(kf, e + kf->offset, out)))
            rc = s_value(vf, e + vf->offset, out);
    }
    return rc ? rc : pg_buf_putc(out, '}');
}

static int s_field(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f, pg_buf *out)
{
    const char *base = (const char *)msg;
    int rc = s_key(f->name, out);
    if (rc)
        return rc;
    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return s_value(f, base + f->offset, out);
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    const char *arr = *(char *const *)(base + f->offset);
    if (s_is_map(f))
        return s_map(f, (const void *const *)arr, n, out);
    size_t size = s_elem_size(f->type);
    if ((rc = pg_buf_putc(out, '[')))
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (i && (rc = pg_buf_putc(out, ',')))
            return rc;
        if ((rc = s_value(f, arr + i * size, out)))
            return rc;
    }
    return pg_buf_putc(out, ']');
}

static int s_message(const ProtobufCMessage *msg, pg_buf *out)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    if (strcmp(d->name, "google.protobuf.Timestamp") == 0)
        return s_timestamp(msg, out);
    int rc = pg_buf_putc(out, '{');
    int first = 1;
    for (unsigned i = 0; i < d->n_fields && !rc; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!s_present(msg, f))
            continue;
        if (!first && (rc = pg_buf_putc(out, ',')))
            break;
        first = 0;
        rc = s_field(msg, f, out);
    }
    return rc ? rc : pg_buf_putc(out, '}');
}

int pg_pbjson_encode(const ProtobufCMessage *msg, pg_buf *out)
{
    size_t mark = out->len;
    int rc = s_message(msg, out);
    if (rc) {
        /* Leave the buffer as it was: callers append lines one after another. */
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
    }
    return rc;
}
