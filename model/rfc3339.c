/* RFC 3339 timestamps with a mandatory offset, and calendar date checks. */
#include <stdio.h>
#include <string.h>

#include "polegate/error.h"
#include "polegate/timeutil.h"

/* H. Hinnant's algorithms (days_from_civil / civil_from_days). */
int64_t pg_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void pg_civil_from_days(int64_t days, int *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (*month <= 2));
}

int pg_date_valid(int year, int month, int day)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= mdays[month - 1] + (month == 2 && leap);
}

/* n digits at s as a number, or -1 when they are not all digits. */
static int s_num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int pg_rfc3339_parse(const char *s, pg_instant *out, char *errstr, size_t errstr_size)
{
    static const char shape[] = "must be an RFC 3339 timestamp with offset "
                                "(YYYY-MM-DDThh:mm:ss[.fff]+hh:mm or Z)";
    size_t len = s ? strlen(s) : 0;
    if (len < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return pg_errf(PG_EINVALID, errstr, errstr_size, "%s", shape);
    int y = s_num(s, 4), mo = s_num(s + 5, 2), d = s_num(s + 8, 2);
    int h = s_num(s + 11, 2), mi = s_num(s + 14, 2), sec = s_num(s + 17, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "%s", shape);
    const char *p = s + 19;
    int32_t nanos = 0;
    if (*p == '.') {
        /* RFC 3339 time-secfrac is "." 1*DIGIT: any number of digits; those past the
         * nanosecond are truncated. */
        size_t nd = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, nd++)
            if (nd < 9)
                nanos = nanos * 10 + (*p - '0');
        if (nd == 0)
            return pg_errf(PG_EINVALID, errstr, errstr_size,
                           "fraction of a second must have at least 1 digit");
        for (; nd < 9; nd++)
            nanos *= 10;
    }
    int offset = 0;
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == 0) {
        offset = 0;
    } else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = s_num(p + 1, 2), om = s_num(p + 4, 2);
        if (oh < 0 || om < 0)
            return pg_errf(PG_EINVALID, errstr, errstr_size, "%s", shape);
        if (oh > 23 || om > 59)
            return pg_errf(PG_EINVALID, errstr, errstr_size, "UTC offset is out of range");
        offset = (oh * 60 + om) * (p[0] == '-' ? -1 : 1);
    } else if (*p == 0) {
        return pg_errf(PG_EINVALID, errstr, errstr_size, "must carry a UTC offset (Z or +hh:mm)");
    } else {
        return pg_errf(PG_EINVALID, errstr, errstr_size, "%s", shape);
    }
    if (!pg_date_valid(y, mo, d))
        return pg_errf(PG_EINVALID, errstr, errstr_size, "date is not a calendar date");
    /* Leap seconds are refused: no system here can represent one. */
    if (h > 23 || mi > 59 || sec > 59)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "time is not a time of day");
    out->seconds =
        pg_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - (int64_t)offset * 60;
    out->nanos = nanos;
    return 0;
}

void pg_rfc3339_format(pg_instant t, int offset_minutes, char out[40])
{
    int64_t local = t.seconds + (int64_t)offset_minutes * 60;
    int64_t days = local / 86400, rem = local % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int y, mo, d;
    pg_civil_from_days(days, &y, &mo, &d);
    int off = offset_minutes < 0 ? -offset_minutes : offset_minutes;
    int32_t nanos = t.nanos < 0 || t.nanos > 999999999 ? 0 : t.nanos;
    snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%03d%c%02d:%02d", y, mo, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60), (int)(nanos / 1000000),
             offset_minutes < 0 ? '-' : '+', off / 60 % 100, off % 60);
}
