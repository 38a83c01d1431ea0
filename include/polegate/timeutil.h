/* Instants, dates and UK civil time: RFC 3339 for ATX, Europe/London local time for
 * NX5 (independent of the process's TZ), partial dates. */
#ifndef POLEGATE_TIMEUTIL_H
#define POLEGATE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* An absolute instant: seconds since the Unix epoch plus nanoseconds (0..999999999),
 * like google.protobuf.Timestamp. */
typedef struct pg_instant {
    int64_t seconds;
    int32_t nanos;
} pg_instant;

/* Parse RFC 3339 with a mandatory offset ("2026-03-29T02:30:00.000+01:00", "...Z").
 * Fraction optional, any number of digits (those past nanoseconds truncated). Rejects
 * impossible dates and times. 0 or
 * PG_EINVALID with reason. */
int pg_rfc3339_parse(const char *s, pg_instant *out, char *errstr, size_t errstr_size);
/* Format t as RFC 3339 with the given UTC offset in minutes, milliseconds always
 * written: "2026-03-29T02:30:00.000+01:00". out holds 40 bytes. */
void pg_rfc3339_format(pg_instant t, int offset_minutes, char out[40]);

/* The Europe/London UTC offset in minutes (0 or 60) in force at instant t. */
int pg_london_offset(pg_instant t);
/* Format t as RFC 3339 in Europe/London local time with its offset. */
void pg_rfc3339_format_london(pg_instant t, char out[40]);

/* Local UK civil time -> instant. In the hour that repeats when BST ends the time is
 * read as BST (the first occurrence); a time in the hour skipped when BST starts is
 * PG_EINVALID. */
int pg_london_to_instant(int year, int month, int day, int hour, int min, int sec, pg_instant *out,
                         char *errstr, size_t errstr_size);
/* Instant -> local UK civil time fields. */
void pg_instant_to_london(pg_instant t, int *year, int *month, int *day, int *hour, int *min,
                          int *sec);

/* Is y-m-d a real calendar date (Gregorian, years 1-9999)? */
int pg_date_valid(int year, int month, int day);

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (any int64 range
 * that fits an int year). */
int64_t pg_days_from_civil(int64_t year, int month, int day);
void pg_civil_from_days(int64_t days, int *year, int *month, int *day);

/* Milliseconds since the epoch (CLOCK_REALTIME): for what is written down. */
int64_t pg_time_wall_ms(void);
/* Milliseconds of CLOCK_MONOTONIC: for intervals and deadlines, never written down. */
int64_t pg_time_mono_ms(void);

#endif
