//! Times as the office reads them: in the site's time zone (`site.time_zone`). Instants stay
//! UTC everywhere they are stored or sent to a phone; this is where a local month becomes a
//! pair of instants and an instant becomes a local date and time.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use time::OffsetDateTime;

/// A calendar month written `YYYY-MM`, from the local midnight that starts it to the local
/// midnight that starts the next one, as UTC instants. `None` for anything but a month
/// between 1970 and 9998.
pub fn month_span(tz: &TimeZone, month: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let (year, month) = month.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    let year: i16 = year.parse().ok()?;
    let month: i8 = month.parse().ok()?;
    if !(1970..=9998).contains(&year) {
        return None;
    }
    let first = Date::new(year, month, 1).ok()?;
    let next = first.checked_add(jiff::Span::new().months(1)).ok()?;
    Some((local_midnight(tz, first)?, local_midnight(tz, next)?))
}

/// The month (`YYYY-MM`) that holds the instant `at` in the site's time zone.
pub fn month_of(tz: &TimeZone, at: OffsetDateTime) -> String {
    let local = civil(tz, at.unix_timestamp() * 1000);
    format!("{:04}-{:02}", local.year(), local.month())
}

/// The first instant of `date` in `tz` (its midnight, or the first time the day has where a
/// clock change skips midnight).
fn local_midnight(tz: &TimeZone, date: Date) -> Option<OffsetDateTime> {
    let zoned = date.to_zoned_datetime(tz.clone()).ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(zoned.timestamp().as_nanosecond()).ok()
}

/// The local date and time of the instant `ms` (milliseconds since the Unix epoch).
pub fn civil(tz: &TimeZone, ms: i64) -> DateTime {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    tz.to_datetime(ts)
}

/// The instant `ms` as a person reads it: `2026-12-05 08:30:00` in the site's time zone.
pub fn format(tz: &TimeZone, ms: i64) -> String {
    civil(tz, ms).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// The instant (Unix ms) of a local date and time as a browser's `datetime-local` field sends
/// it (`2026-12-05T08:30`, seconds optional) or of a date's midnight (`2026-12-05`); `None` when it
/// is neither.
pub fn parse_local(tz: &TimeZone, text: &str) -> Option<i64> {
    let text = text.trim();
    let dt: DateTime = match text.parse::<DateTime>() {
        Ok(dt) => dt,
        Err(_) => text
            .parse::<Date>()
            .ok()?
            .to_datetime(jiff::civil::Time::midnight()),
    };
    Some(
        tz.to_ambiguous_zoned_datetime(dt)
            .compatible()
            .ok()?
            .timestamp()
            .as_millisecond(),
    )
}

/// The local date and time of `ms` as a `datetime-local` field shows it: `2026-12-05T08:30`.
pub fn input_value(tz: &TimeZone, ms: i64) -> String {
    civil(tz, ms).strftime("%Y-%m-%dT%H:%M").to_string()
}

/// A time of day written `HH:MM` (00:00 to 23:59) as minutes after midnight; `None` for
/// anything else.
pub fn parse_time_of_day(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Minutes after midnight as `HH:MM`.
pub fn time_of_day(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60)
}

/// The local time of day of the instant `ms`, in minutes after midnight.
pub fn minute_of_day(tz: &TimeZone, ms: i64) -> u16 {
    let t = civil(tz, ms);
    (t.hour() as u16) * 60 + t.minute() as u16
}

/// The next instant after `ms` at which the local clock shows `minutes` after midnight: today
/// if that is still ahead, else tomorrow (a time a clock change skips is taken as the
/// clock reads it afterwards).
pub fn next_time_of_day(tz: &TimeZone, ms: i64, minutes: u16) -> i64 {
    let now = civil(tz, ms);
    let at = jiff::civil::Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0)
        .unwrap_or(jiff::civil::Time::midnight());
    let mut day = now.date();
    if now.time() >= at {
        day = day.tomorrow().unwrap_or(day);
    }
    tz.to_ambiguous_zoned_datetime(day.to_datetime(at))
        .compatible()
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(ms + 86_400_000)
        .max(ms + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    #[test]
    fn a_month_runs_from_local_midnight_to_local_midnight() {
        let (start, end) = month_span(&shanghai(), "2026-12").unwrap();
        assert_eq!(start, time::macros::datetime!(2026-11-30 16:00 UTC));
        assert_eq!(end, time::macros::datetime!(2026-12-31 16:00 UTC));
        let (start, end) = month_span(&TimeZone::UTC, "2027-02").unwrap();
        assert_eq!(start, time::macros::datetime!(2027-02-01 0:00 UTC));
        assert_eq!(end, time::macros::datetime!(2027-03-01 0:00 UTC));
        for bad in [
            "2026-13", "2026-00", "26-12", "2026/12", "2026-1", "", "x-y", "1969-12",
        ] {
            assert!(month_span(&shanghai(), bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn half_past_eleven_at_night_belongs_to_the_local_day() {
        // 2026-11-30 23:30 in Shanghai is 15:30 UTC the same day; 00:30 on 1 December is still
        // 30 November in UTC, and belongs to December here.
        let late = time::macros::datetime!(2026-11-30 15:30 UTC);
        let early = time::macros::datetime!(2026-11-30 16:30 UTC);
        assert_eq!(month_of(&shanghai(), late), "2026-11");
        assert_eq!(month_of(&shanghai(), early), "2026-12");
        assert_eq!(month_of(&TimeZone::UTC, early), "2026-11");
        assert_eq!(
            format(&shanghai(), early.unix_timestamp() * 1000),
            "2026-12-01 00:30:00"
        );
    }

    #[test]
    fn a_clock_change_keeps_the_month_whole() {
        // Europe/Berlin moves its clocks on the last Sunday of March: the month is an hour
        // shorter, and still starts and ends at local midnight.
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let (start, end) = month_span(&berlin, "2027-03").unwrap();
        assert_eq!(start, time::macros::datetime!(2027-02-28 23:00 UTC));
        assert_eq!(end, time::macros::datetime!(2027-03-31 22:00 UTC));
    }

    #[test]
    fn a_local_input_is_read_in_the_site_zone_and_written_back_alike() {
        let tz = shanghai();
        let ms = parse_local(&tz, "2026-12-05T08:30").unwrap();
        assert_eq!(format(&tz, ms), "2026-12-05 08:30:00");
        assert_eq!(input_value(&tz, ms), "2026-12-05T08:30");
        let midnight = parse_local(&tz, "2026-12-05").unwrap();
        assert_eq!(ms - midnight, (8 * 60 + 30) * 60 * 1000);
        assert_eq!(parse_local(&tz, "5 December"), None);
        assert_eq!(parse_local(&tz, "2026-13-01"), None);
    }
}
