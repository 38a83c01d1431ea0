/* Identifier and value rules shared by every format (codes.md): PNC ID, CRO number,
 * postcode, VRM, telephone, countries, money. Pure functions, no allocation. */
#ifndef POLEGATE_CODES_H
#define POLEGATE_CODES_H

#include <stddef.h>
#include <stdint.h>

/* The check letter of a PNC ID or CRO number: "ZABCDEFGHJKLMNPQRTUVWXY"[n % 23]. */
char pg_codes_check_letter(uint64_t n);

/* Validate a long-form PNC ID "YYYY/NNNNNNNC" (check letter over YY + 7-digit serial).
 * 0, or PG_EINVALID with a reason ("check letter is 'X', expected 'F'"). */
int pg_pnc_validate_long(const char *s, char *errstr, size_t errstr_size);
/* Short "YY/NNNNNNC" (serial without leading zeros) -> long, with the century rule:
 * YY not after the two-digit year of ref_year (the record's modification year) is
 * 20YY, else 19YY. out holds 14 bytes. 0 or PG_EINVALID with reason. */
int pg_pnc_short_to_long(const char *s, int ref_year, char out[14], char *errstr,
                         size_t errstr_size);
/* Long -> short ("YY/NNNNNNNC" is at most 11 characters). out holds 12 bytes. 0 or PG_EINVALID. */
int pg_pnc_long_to_short(const char *s, char out[12], char *errstr, size_t errstr_size);

/* Validate a CRO number "NNNNNN/YYC". 0 or PG_EINVALID with reason. */
int pg_cro_validate(const char *s, char *errstr, size_t errstr_size);

/* Normalise a UK postcode in any case and spacing to "OUTWARD INWARD" upper case.
 * out holds 9 bytes. 0 or PG_EINVALID when it is not a UK postcode shape. */
int pg_postcode_normalise(const char *s, char out[9], char *errstr, size_t errstr_size);

/* Normalise a vehicle registration mark: upper case, no spaces; out holds 16 bytes.
 * 0 or PG_EINVALID (empty, too long, or characters other than A-Z 0-9). */
int pg_vrm_normalise(const char *s, char out[16], char *errstr, size_t errstr_size);

/* A telephone number as entered (UK national "07700 900123", "0044...", "+44 ...")
 * to E.164 "+447700900123"; out holds 17 bytes. 0 or PG_EINVALID. */
int pg_phone_to_e164(const char *s, char out[17], char *errstr, size_t errstr_size);

/* ISO 3166-1: alpha-2 <-> alpha-3 ("GB" <-> "GBR"). NULL when the code is not an
 * assigned country code. Returned strings are static. */
const char *pg_country_alpha2_to_alpha3(const char *alpha2);
const char *pg_country_alpha3_to_alpha2(const char *alpha3);

/* A decimal amount string "1250.00" (at most 2 decimal places, non-negative) to minor
 * units (125000). 0 or PG_EINVALID. */
int pg_money_parse(const char *s, int64_t *minor_units, char *errstr, size_t errstr_size);
/* minor units -> "1250.00"; out holds 24 bytes. */
void pg_money_format(int64_t minor_units, char out[24]);

#endif
