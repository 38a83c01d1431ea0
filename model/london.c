/* UK civil time (Europe/London) from the tz database, independent of the process's TZ. */
#include "polegate/timeutil.h"

#include <glib.h>
#include <stdio.h>

#include "polegate/error.h"

/* GTimeZone is immutable once built and its lookups only read it, so one shared
 * instance serves every thread. NULL means tzdata could not be read: we then fall
 * back to the current UK rule (BST from 01:00 UTC on the last Sunday of March to
 * 01:00 UTC on the last Sunday of October), which is right for every date since 1996
 * and better than refusing to run. */
static GTimeZone *s_london;

static GTimeZone *s_zone(void)
{
    static gsize once = 0;
    if (g_once_init_enter(&once)) {
        s_london = g_time_zone_new_identifier("Europe/London");
        g_once_init_leave(&once, 1);
    }
    return s_london;
}

static int64_t s_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* 01:00 UTC on the last Sunday of month m (3 or 10) of year y, in Unix seconds. */
static int64_t s_last_sunday_0100(int64_t y, int m)
{
    int64_t last = pg_days_from_civil(y, m, 31);
    /* 1970-01-01 was a Thursday: weekday 0 = Sunday is (days + 4) mod 7. */
    int64_t wd = ((last + 4) % 7 + 7) % 7;
    return (last - wd) * 86400 + 3600;
}

/* The UTC offset in seconds at Unix time u. Offsets that are not whole minutes
 * (London mean time, -0:01:15, before 1 December 1847) cannot be written in any
 * message we handle; GMT is used for them. */
static int s_offset_seconds(int64_t u)
{
    GTimeZone *tz = s_zone();
    if (tz) {
        gint iv = g_time_zone_find_interval(tz, G_TIME_TYPE_UNIVERSAL, u);
        int off = iv >= 0 ? (int)g_time_zone_get_offset(tz, iv) : 0;
        return off % 60 == 0 ? off : 0;
    }
    int y, m, d;
    pg_civil_from_days(s_floor_div(u, 86400), &y, &m, &d);
    return (u >= s_last_sunday_0100(y, 3) && u < s_last_sunday_0100(y, 10)) ? 3600 : 0;
}

int pg_london_offset(pg_instant t)
{
    return s_offset_seconds(t.seconds) / 60;
}

void pg_instant_to_london(pg_instant t, int *year, int *month, int *day, int *hour, int *min,
                          int *sec)
{
    int64_t local = t.seconds + s_offset_seconds(t.seconds);
    int64_t days = s_floor_div(local, 86400);
    int64_t rem = local - days * 86400;
    pg_civil_from_days(days, year, month, day);
    *hour = (int)(rem / 3600);
    *min = (int)(rem / 60 % 60);
    *sec = (int)(rem % 60);
}

void pg_rfc3339_format_london(pg_instant t, char out[40])
{
    pg_rfc3339_format(t, pg_london_offset(t), out);
}

int pg_london_to_instant(int year, int month, int day, int hour, int min, int sec, pg_instant *out,
                         char *errstr, size_t errstr_size)
{
    if (!pg_date_valid(year, month, day) || hour < 0 || hour > 23 || min < 0 || min > 59 ||
        sec < 0 || sec > 59)
        return pg_errf(PG_EINVALID, errstr, errstr_size, "is not a valid date and time");
    int64_t local = pg_days_from_civil(year, month, day) * 86400 + hour * 3600 + min * 60 + sec;
    /* The offsets in force a day either side bound every offset that can apply at
     * this local time: the UK has never changed its clocks twice within two days. A
     * candidate u = local - offset is real when offset(u) agrees. Two real
     * candidates: the repeated hour, take the earlier instant (summer time). None:
     * the skipped hour. */
    int offs[2] = {s_offset_seconds(local - 86400), s_offset_seconds(local + 86400)};
    int found = 0;
    int64_t best = 0;
    for (int i = 0; i < 2; i++) {
        int64_t u = local - offs[i];
        if (s_offset_seconds(u) != offs[i])
            continue;
        if (!found || u < best)
            best = u;
        found = 1;
    }
    if (!found)
        return pg_errf(PG_EINVALID, errstr, errstr_size,
                       "does not exist in UK time (clocks go forward)");
    out->seconds = best;
    out->nanos = 0;
    return 0;
}
