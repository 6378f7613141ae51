//! Working time: the site's calendar of working days and holidays, and deadlines counted on
//! it. A problem category's time limit is in plain hours, in working hours or in working days
//! ([`TimeLimit`]); a working day is the span from `calendar.day_start` to `calendar.day_end`
//! (local time, `site.time_zone`) on a day that is not a weekend day or a holiday, or that is
//! a make-up working day (调休) the calendar names.
//!
//! A limit of N working days is N times the working day's length of working time, so a case
//! dispatched during working hours is due at the same time of day N working days later, and
//! one dispatched out of hours at the close of the Nth working day. The marks of a limit
//! (50 %, 100 %, 150 %...) are shares of the same working time.

use std::collections::BTreeMap;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

const HOUR_MS: i64 = 3_600_000;

/// How far ahead a deadline is looked for: a calendar with no working day in this many days
/// (every day a holiday) falls back to counting plain time.
const HORIZON_DAYS: usize = 20 * 366;

/// The time a problem category allows for its rectification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeLimit {
    /// Hours by the clock, nights and holidays included.
    Hours(i64),
    /// Hours of working time.
    WorkingHours(i64),
    /// Working days, each the working day's length of working time.
    WorkingDays(i64),
}

impl TimeLimit {
    /// The units a limit is written in, as forms and settings name them.
    pub const UNITS: &'static [&'static str] = &["hours", "working_hours", "working_days"];

    /// The limit of `amount` in `unit` (one of [`TimeLimit::UNITS`]).
    pub fn of(unit: &str, amount: i64) -> Option<TimeLimit> {
        match unit {
            "hours" => Some(TimeLimit::Hours(amount)),
            "working_hours" => Some(TimeLimit::WorkingHours(amount)),
            "working_days" => Some(TimeLimit::WorkingDays(amount)),
            _ => None,
        }
    }

    /// Its unit, one of [`TimeLimit::UNITS`].
    pub fn unit(self) -> &'static str {
        match self {
            TimeLimit::Hours(_) => "hours",
            TimeLimit::WorkingHours(_) => "working_hours",
            TimeLimit::WorkingDays(_) => "working_days",
        }
    }

    /// How many of its unit.
    pub fn amount(self) -> i64 {
        match self {
            TimeLimit::Hours(n) | TimeLimit::WorkingHours(n) | TimeLimit::WorkingDays(n) => n,
        }
    }

    /// The amount if the limit is in plain hours.
    pub fn hours(self) -> Option<i64> {
        matches!(self, TimeLimit::Hours(_)).then_some(self.amount())
    }

    /// The amount if the limit is in working hours.
    pub fn working_hours(self) -> Option<i64> {
        matches!(self, TimeLimit::WorkingHours(_)).then_some(self.amount())
    }

    /// The amount if the limit is in working days.
    pub fn working_days(self) -> Option<i64> {
        matches!(self, TimeLimit::WorkingDays(_)).then_some(self.amount())
    }
}

/// A day the calendar names: a holiday on a working weekday, or a working day on a weekend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarDay {
    pub date: Date,
    /// `false`: a holiday (休); `true`: a make-up working day (班).
    pub working: bool,
    /// What the day is, as the office calls it (国庆节, 调休上班...).
    pub name: String,
}

/// The site's working week: its time zone, the hours of a working day and the days off.
#[derive(Debug, Clone)]
pub struct WorkWeek {
    pub tz: TimeZone,
    pub day_start: Time,
    /// After `day_start`.
    pub day_end: Time,
    pub weekend: Vec<Weekday>,
}

/// The site's working-time calendar: its working week and the days that differ from it.
#[derive(Debug, Clone)]
pub struct WorkCalendar {
    tz: TimeZone,
    day_start: Time,
    day_end: Time,
    weekend: Vec<Weekday>,
    days: BTreeMap<Date, bool>,
}

impl WorkCalendar {
    /// The calendar of `week` with the holidays and make-up working days `days`.
    pub fn new(week: WorkWeek, days: impl IntoIterator<Item = CalendarDay>) -> WorkCalendar {
        WorkCalendar {
            tz: week.tz,
            day_start: week.day_start,
            day_end: week.day_end,
            weekend: week.weekend,
            days: days.into_iter().map(|d| (d.date, d.working)).collect(),
        }
    }

    /// Whether `date` is a working day.
    pub fn is_working_day(&self, date: Date) -> bool {
        self.days
            .get(&date)
            .copied()
            .unwrap_or(!self.weekend.contains(&date.weekday()))
    }

    /// The length of a working day, milliseconds.
    pub fn day_ms(&self) -> i64 {
        let span = self.day_end.since(self.day_start).unwrap_or_default();
        span.total(jiff::Unit::Millisecond).unwrap_or(0.0) as i64
    }

    /// The working time `limit` allows, milliseconds; `None` for a limit in plain hours.
    pub fn working_ms(&self, limit: TimeLimit) -> Option<i64> {
        match limit {
            TimeLimit::Hours(_) => None,
            TimeLimit::WorkingHours(h) => Some(h.saturating_mul(HOUR_MS)),
            TimeLimit::WorkingDays(d) => Some(d.saturating_mul(self.day_ms())),
        }
    }

    /// The deadline of a case dispatched at `start` (Unix ms) with `limit`.
    pub fn deadline(&self, start: i64, limit: TimeLimit) -> i64 {
        self.mark(start, limit, 100)
    }

    /// The instant `pct` percent of `limit` has passed since `start`.
    pub fn mark(&self, start: i64, limit: TimeLimit, pct: i64) -> i64 {
        match (limit, self.working_ms(limit)) {
            (TimeLimit::Hours(h), _) => start + h.saturating_mul(HOUR_MS) * pct / 100,
            (_, Some(working)) => self.after_working(start, working.saturating_mul(pct) / 100),
            (_, None) => start,
        }
    }

    /// The instant at which `working` milliseconds of working time have passed since `start`.
    pub fn after_working(&self, start: i64, working: i64) -> i64 {
        if working <= 0 {
            return start;
        }
        let mut left = working;
        let mut date = self.local_date(start);
        for _ in 0..HORIZON_DAYS {
            if self.is_working_day(date) {
                if let (Some(open), Some(close)) = (
                    self.instant(date, self.day_start),
                    self.instant(date, self.day_end),
                ) {
                    let from = open.max(start);
                    if from < close {
                        if left <= close - from {
                            return from + left;
                        }
                        left -= close - from;
                    }
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        start + working
    }

    fn local_date(&self, ms: i64) -> Date {
        crate::localtime::civil(&self.tz, ms).date()
    }

    /// The instant of the local `time` on `date` (a time a clock change skips is read as the
    /// clock after the change reads it).
    fn instant(&self, date: Date, time: Time) -> Option<i64> {
        let zoned = self.tz.to_zoned_datetime(date.to_datetime(time)).ok()?;
        Some(zoned.timestamp().as_millisecond())
    }
}

/// A weekday written in English (`saturday`, `sun`...), as the settings name them.
pub fn parse_weekday(text: &str) -> Option<Weekday> {
    let t = text.trim().to_ascii_lowercase();
    let days = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];
    days.iter()
        .find(|(name, _)| t.len() >= 3 && name.starts_with(&t))
        .map(|(_, d)| *d)
}

/// The most days one calendar file may hold (about ten years of holidays and make-up days).
pub const MAX_IMPORT_DAYS: usize = 2000;

/// Reads a calendar file: a header `date,kind,name`, then one day per line: the date
/// (`2026-10-01`), `holiday` (or `休`) or `workday` (or `班`), and the day's name. Errors name
/// the line.
pub fn parse_csv(text: &str) -> Result<Vec<CalendarDay>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect::<Vec<_>>();
    if headers.first().map(String::as_str) != Some("date")
        || headers.get(1).map(String::as_str) != Some("kind")
    {
        return Err("line 1: the header must be date,kind,name".into());
    }
    let mut days: BTreeMap<Date, CalendarDay> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let date: Date = record
            .get(0)
            .unwrap_or("")
            .parse()
            .map_err(|_| format!("line {line}: the date must read like 2026-10-01"))?;
        if !(1970..=9998).contains(&date.year()) {
            return Err(format!(
                "line {line}: the year must be between 1970 and 9998"
            ));
        }
        let working = match record.get(1).unwrap_or("").to_ascii_lowercase().as_str() {
            "holiday" | "休" => false,
            "workday" | "班" => true,
            _ => {
                return Err(format!(
                    "line {line}: the kind must be holiday (休) or workday (班)"
                ))
            }
        };
        let name = record.get(2).unwrap_or("").to_owned();
        if name.chars().count() > 100 {
            return Err(format!(
                "line {line}: the name is longer than 100 characters"
            ));
        }
        if days.contains_key(&date) {
            return Err(format!("line {line}: {date} is listed twice"));
        }
        days.insert(
            date,
            CalendarDay {
                date,
                working,
                name,
            },
        );
        if days.len() > MAX_IMPORT_DAYS {
            return Err(format!("more than {MAX_IMPORT_DAYS} days"));
        }
    }
    Ok(days.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn shanghai() -> TimeZone {
        TimeZone::get("Asia/Shanghai").unwrap()
    }

    fn at(d: Date, h: i8, m: i8) -> i64 {
        shanghai()
            .to_zoned_datetime(d.at(h, m, 0, 0))
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    /// 08:30–17:30, Saturday and Sunday off, Monday 2026-12-21 a holiday and Sunday
    /// 2026-12-27 a make-up working day.
    fn office() -> WorkCalendar {
        WorkCalendar::new(
            WorkWeek {
                tz: shanghai(),
                day_start: time(8, 30, 0, 0),
                day_end: time(17, 30, 0, 0),
                weekend: vec![Weekday::Saturday, Weekday::Sunday],
            },
            parse_csv("date,kind,name\n2026-12-21,holiday,冬至\n2026-12-27,班,调休\n").unwrap(),
        )
    }

    #[test]
    fn working_days_skip_the_weekend_and_the_holiday() {
        let cal = office();
        // Friday 15:00, two working days: 2.5 h on Friday, none on the weekend or on Monday's
        // holiday, 9 h on Tuesday, 6.5 h on Wednesday.
        let friday = date(2026, 12, 18);
        let start = at(friday, 15, 0);
        let limit = TimeLimit::WorkingDays(2);
        assert_eq!(cal.deadline(start, limit), at(date(2026, 12, 23), 15, 0));
        assert_eq!(cal.mark(start, limit, 50), at(date(2026, 12, 22), 15, 0));
        assert_eq!(cal.mark(start, limit, 150), at(date(2026, 12, 24), 15, 0));
        // Half the span by the clock would have fallen in the night before the holiday.
        let linear = start + (cal.deadline(start, limit) - start) / 2;
        assert_eq!(linear, at(date(2026, 12, 21), 3, 0));
    }

    #[test]
    fn a_make_up_working_day_counts_and_out_of_hours_starts_at_the_next_opening() {
        let cal = office();
        // Saturday 2026-12-26 at 20:00: Sunday the 27th is a make-up working day, so one
        // working day ends at its close.
        let start = at(date(2026, 12, 26), 20, 0);
        assert_eq!(
            cal.deadline(start, TimeLimit::WorkingDays(1)),
            at(date(2026, 12, 27), 17, 30)
        );
        // Four working hours from Thursday 16:00: 1.5 h, then 2.5 h on Friday.
        let start = at(date(2026, 12, 24), 16, 0);
        assert_eq!(
            cal.deadline(start, TimeLimit::WorkingHours(4)),
            at(date(2026, 12, 25), 11, 0)
        );
        assert!(!cal.is_working_day(date(2026, 12, 21)));
        assert!(cal.is_working_day(date(2026, 12, 27)));
        assert!(!cal.is_working_day(date(2026, 12, 26)));
    }

    #[test]
    fn plain_hours_count_the_clock() {
        let cal = office();
        let start = at(date(2026, 12, 18), 15, 0);
        assert_eq!(
            cal.deadline(start, TimeLimit::Hours(24)),
            start + 24 * HOUR_MS
        );
        assert_eq!(
            cal.mark(start, TimeLimit::Hours(24), 50),
            start + 12 * HOUR_MS
        );
    }

    #[test]
    fn a_calendar_without_working_days_falls_back_to_the_clock() {
        let all = vec![
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ];
        let week = WorkWeek {
            tz: shanghai(),
            day_start: time(8, 0, 0, 0),
            day_end: time(9, 0, 0, 0),
            weekend: all,
        };
        let cal = WorkCalendar::new(week, []);
        let start = at(date(2026, 12, 18), 15, 0);
        assert_eq!(
            cal.deadline(start, TimeLimit::WorkingHours(2)),
            start + 2 * HOUR_MS
        );
    }

    #[test]
    fn the_file_is_checked_line_by_line() {
        assert!(parse_csv("day,kind\n").unwrap_err().contains("header"));
        let e = parse_csv("date,kind,name\n2026-10-01,holiday,国庆\n2026-13-01,holiday,x\n")
            .unwrap_err();
        assert!(e.starts_with("line 3"), "{e}");
        let e = parse_csv("date,kind,name\n2026-10-01,rest,x\n").unwrap_err();
        assert!(e.contains("holiday (休) or workday (班)"), "{e}");
        let e = parse_csv("date,kind,name\n2026-10-01,休,国庆\n2026-10-01,休,国庆\n").unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let days = parse_csv(
            "\u{feff}Date,Kind,Name\r\n2026-10-01, 休 ,国庆节\r\n\r\n2026-10-11,workday,调休\r\n",
        )
        .unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].name, "国庆节");
        assert!(!days[0].working && days[1].working);
        assert_eq!(parse_weekday("Sat"), Some(Weekday::Saturday));
        assert_eq!(parse_weekday("s"), None);
        assert_eq!(parse_weekday("sunday"), Some(Weekday::Sunday));
    }
}
