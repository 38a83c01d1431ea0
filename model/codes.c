/* Identifier and value rules shared by every format (docs/formats/codes.md). */
#include "polegate/codes.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polegate/error.h"

static const char s_check_alphabet[] = "ZABCDEFGHJKLMNPQRTUVWXY";

char pg_codes_check_letter(uint64_t n)
{
    return s_check_alphabet[n % 23];
}

static int s_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static uint64_t s_number(const char *s, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    return v;
}

/* Compare the written check letter with the one computed over n. */
static int s_check(char written, uint64_t n, char *errstr, size_t errstr_size)
{
    char expected = pg_codes_check_letter(n);
    if (written != expected)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "check letter does not match the number");
    return 0;
}

int pg_pnc_validate_long(const char *s, char *errstr, size_t errstr_size)
{
    /* YYYY/NNNNNNNC */
    if (!s || strlen(s) != 13 || !s_digits(s, 4) || s[4] != '/' || !s_digits(s + 5, 7) ||
        !isupper((unsigned char)s[12]))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "must be a PNC ID in long form YYYY/NNNNNNNC");
    uint64_t yy = s_number(s + 2, 2);
    return s_check(s[12], yy * 10000000u + s_number(s + 5, 7), errstr, errstr_size);
}

int pg_pnc_short_to_long(const char *s, int ref_year, char out[14], char *errstr,
                         size_t errstr_size)
{
    /* YY/N..NC, serial 1-7 digits without leading zeros */
    size_t len = s ? strlen(s) : 0;
    size_t serial_len = len >= 5 ? len - 4 : 0;
    if (len < 5 || len > 11 || !s_digits(s, 2) || s[2] != '/' || !s_digits(s + 3, serial_len) ||
        !isupper((unsigned char)s[len - 1]))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "must be a PNC ID in short form YY/NNNNNNNC");
    if (s[3] == '0')
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "short-form PNC serial must not have leading zeros");
    uint64_t yy = s_number(s, 2);
    uint64_t serial = s_number(s + 3, serial_len);
    int rc = s_check(s[len - 1], yy * 10000000u + serial, errstr, errstr_size);
    if (rc)
        return rc;
    int century = (int)yy <= ((ref_year % 100) + 100) % 100 ? 20 : 19;
    snprintf(out, 14, "%02d%02u/%07u%c", century, (unsigned)yy, (unsigned)serial, s[len - 1]);
    return 0;
}

int pg_pnc_long_to_short(const char *s, char out[12], char *errstr, size_t errstr_size)
{
    int rc = pg_pnc_validate_long(s, errstr, errstr_size);
    if (rc)
        return rc;
    snprintf(out, 12, "%.2s/%u%c", s + 2, (unsigned)s_number(s + 5, 7), s[12]);
    return 0;
}

int pg_cro_validate(const char *s, char *errstr, size_t errstr_size)
{
    /* NNNNNN/YYC */
    if (!s || strlen(s) != 10 || !s_digits(s, 6) || s[6] != '/' || !s_digits(s + 7, 2) ||
        !isupper((unsigned char)s[9]))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "must be a CRO number NNNNNN/YYC");
    return s_check(s[9], s_number(s + 7, 2) * 1000000u + s_number(s, 6), errstr, errstr_size);
}

/* The outward codes of the UK: A9, A99, AA9, AA99, A9A, AA9A (pattern letters:
 * A = letter, 9 = digit). */
static int s_shape(const char *s, size_t n, const char *pattern)
{
    if (strlen(pattern) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (pattern[i] == 'A' ? !isupper(c) : !isdigit(c))
            return 0;
    }
    return 1;
}

int pg_postcode_normalise(const char *s, char out[9], char *errstr, size_t errstr_size)
{
    char c[8];
    size_t n = 0;
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == ' ' || *p == '\t')
            continue;
        if (n == 7)
            return pg_errf(PG_EINVALID, errstr, errstr_size, "must be a UK postcode");
        c[n++] = (char)toupper((unsigned char)*p);
    }
    c[n] = 0;
    if (n == 6 && strcmp(c, "GIR0AA") == 0) {
        memcpy(out, "GIR 0AA", 8);
        return 0;
    }
    static const char *const outward[] = {"A9", "A99", "AA9", "AA99", "A9A", "AA9A"};
    int ok = n >= 5 && s_shape(c + n - 3, 3, "9AA");
    int out_ok = 0;
    for (size_t i = 0; ok && i < sizeof outward / sizeof outward[0]; i++)
        out_ok |= s_shape(c, n - 3, outward[i]);
    if (!ok || !out_ok)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "must be a UK postcode");
    snprintf(out, 9, "%.*s %s", (int)(n - 3), c, c + n - 3);
    return 0;
}

int pg_vrm_normalise(const char *s, char out[16], char *errstr, size_t errstr_size)
{
    size_t n = 0;
    for (const char *p = s ? s : ""; *p; p++) {
        int ch = (unsigned char)*p;
        if (ch == ' ' || ch == '\t')
            continue;
        if (!isalnum(ch) || ch >= 0x80)
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "registration mark may hold only letters A-Z and digits");
        if (n == 15)
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "registration mark longer than 15 characters");
        out[n++] = (char)toupper(ch);
    }
    out[n] = 0;
    if (n == 0)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "registration mark is empty");
    return 0;
}

int pg_phone_to_e164(const char *s, char out[17], char *errstr, size_t errstr_size)
{
    /* Collect digits, dropping the separators people type; "+44 (0)20 ..." keeps
     * the UK trunk 0 in brackets, which E.164 drops. */
    char d[40];
    size_t n = 0;
    int plus = 0;
    const char *p = s ? s : "";
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '+') {
        plus = 1;
        p++;
    }
    for (; *p; p++) {
        if (strncmp(p, "(0)", 3) == 0 && plus && n > 0) {
            p += 2;
            continue;
        }
        if (*p == ' ' || *p == '-' || *p == '.' || *p == '(' || *p == ')' || *p == '\t')
            continue;
        if (!isdigit((unsigned char)*p) || n == sizeof d - 1)
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "not a telephone number (only digits, spaces, '-', '.', "
                           "brackets and a leading '+')");
        d[n++] = *p;
    }
    d[n] = 0;
    const char *intl; /* country code onwards */
    if (plus)
        intl = d;
    else if (n >= 2 && d[0] == '0' && d[1] == '0')
        intl = d + 2;
    else if (n >= 1 && d[0] == '0') {
        /* UK national: trunk 0 then a 9 or 10 digit national significant number */
        if (n - 1 < 9 || n - 1 > 10 || d[1] == '0')
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "UK national number must be 0 followed by 9 or 10 digits");
        snprintf(out, 17, "+44%.10s", d + 1);
        return 0;
    } else
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "must be a UK national number (0...) or international (+... or 00...)");
    size_t m = strlen(intl);
    if (m < 7 || m > 15 || intl[0] == '0')
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "international number must have a country code and 7-15 digits");
    if (intl[0] == '4' && intl[1] == '4' && (m - 2 < 9 || m - 2 > 10 || intl[2] == '0'))
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "UK number must be +44 followed by 9 or 10 digits");
    snprintf(out, 17, "+%.15s", intl);
    return 0;
}

typedef struct s_country {
    char alpha2[3];
    char alpha3[4];
} s_country;

static const s_country s_countries[] = {
#include "countries.inc"
};

#define S_NCOUNTRIES (sizeof s_countries / sizeof s_countries[0])

static int s_cmp_alpha2(const void *key, const void *elem)
{
    return strcmp(key, ((const s_country *)elem)->alpha2);
}

const char *pg_country_alpha2_to_alpha3(const char *alpha2)
{
    if (!alpha2 || strlen(alpha2) != 2)
        return NULL;
    const s_country *c =
        bsearch(alpha2, s_countries, S_NCOUNTRIES, sizeof(s_country), s_cmp_alpha2);
    return c ? c->alpha3 : NULL;
}

const char *pg_country_alpha3_to_alpha2(const char *alpha3)
{
    if (!alpha3 || strlen(alpha3) != 3)
        return NULL;
    for (size_t i = 0; i < S_NCOUNTRIES; i++)
        if (memcmp(alpha3, s_countries[i].alpha3, 3) == 0)
            return s_countries[i].alpha2;
    return NULL;
}

int pg_money_parse(const char *s, int64_t *minor_units, char *errstr, size_t errstr_size)
{
    const char *p = s ? s : "";
    int64_t whole = 0;
    size_t nwhole = 0;
    /* whole * 100 + 99 must fit in int64 */
    const int64_t limit = (INT64_MAX - 99) / 100;
    for (; isdigit((unsigned char)*p); p++, nwhole++) {
        if (whole > (limit - (*p - '0')) / 10)
            return pg_errf(PG_EINVALID, errstr, errstr_size, "amount is too large");
        whole = whole * 10 + (*p - '0');
    }
    int64_t frac = 0;
    size_t nfrac = 0;
    if (*p == '.') {
        /* Count every digit but accumulate only two: a long fraction is an error,
         * never an overflow. */
        for (p++; isdigit((unsigned char)*p); p++, nfrac++)
            if (nfrac < 2)
                frac = frac * 10 + (*p - '0');
        if (nfrac == 0 || nfrac > 2)
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "amount must have 1 or 2 decimal places after '.'");
    }
    if (nwhole == 0 || *p)
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "amount must be a non-negative decimal string like \"1250.00\"");
    *minor_units = whole * 100 + (nfrac == 1 ? frac * 10 : frac);
    return 0;
}

void pg_money_format(int64_t minor_units, char out[24])
{
    /* Negative amounts are not valid input, but format them faithfully anyway. */
    uint64_t u = minor_units < 0 ? (uint64_t)0 - (uint64_t)minor_units : (uint64_t)minor_units;
    snprintf(out, 24, "%s%llu.%02u", minor_units < 0 ? "-" : "", (unsigned long long)(u / 100),
             (unsigned)(u % 100));
}
