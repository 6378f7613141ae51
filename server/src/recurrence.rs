//! When an inspection plan falls due: its iCalendar recurrence (RFC 5545 `RRULE`) expanded from
//! a first local start in the site's time zone, by the `rrule` crate. A weekly rule at 09:00
//! stays at 09:00 local time across months and clock changes; the instants it gives are UTC,
//! as everything stored is.

use chrono::TimeZone;
use rrule::{Frequency, RRuleSet, Tz};

/// Most occurrences one expansion returns. With at most [`MAX_PER_DAY`] a day, a range of a
/// year (the longest the API expands) holds fewer, so nothing a caller asks for is cut off.
pub const MAX_OCCURRENCES: u16 = 2500;
/// Most occurrences a rule may give in a day: `FREQ=DAILY` (or rarer) with at most this many
/// `BYHOUR` values and one `BYMINUTE`. An inspection is not due every minute, and the rule's
/// expansion, which walks from the first start, stays cheap.
pub const MAX_PER_DAY: usize = 6;
/// How far past the first start occurrences are expanded (about fifty years).
const HORIZON_MS: i64 = 50 * 366 * 86_400_000;

/// A plan's recurrence, checked.
#[derive(Debug, Clone)]
pub struct Recurrence {
    set: RRuleSet,
}

/// Why a recurrence was refused, for the field it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrenceError {
    /// `rrule`, `dtstart` or `time_zone`.
    pub field: &'static str,
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> RecurrenceError {
    RecurrenceError {
        field,
        message: message.into(),
    }
}

/// `YYYY-MM-DDTHH:MM` as `YYYYMMDDTHHMM00`, or `None`.
fn ical_local(dtstart: &str) -> Option<String> {
    let b = dtstart.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (b.len() == 16
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && digits(0..4)
        && digits(5..7)
        && digits(8..10)
        && digits(11..13)
        && digits(14..16))
    .then(|| {
        format!(
            "{}{}{}T{}{}00",
            &dtstart[0..4],
            &dtstart[5..7],
            &dtstart[8..10],
            &dtstart[11..13],
            &dtstart[14..16]
        )
    })
}

impl Recurrence {
    /// The rule `rrule` (the value of an `RRULE` line, such as `FREQ=WEEKLY;BYDAY=MO`) from
    /// `dtstart` (`YYYY-MM-DDTHH:MM`, local, a year 2000 to 2100) in the IANA zone
    /// `time_zone`. The rule is at most daily, with up to [`MAX_PER_DAY`] hours a day.
    pub fn parse(rrule: &str, dtstart: &str, time_zone: &str) -> Result<Self, RecurrenceError> {
        time_zone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| refuse("time_zone", "not an IANA time zone"))?;
        let start = ical_local(dtstart).ok_or_else(|| refuse("dtstart", "YYYY-MM-DDTHH:MM"))?;
        let local: jiff::civil::DateTime = dtstart
            .parse()
            .map_err(|_| refuse("dtstart", "not a date and time of the calendar"))?;
        if !(2000..=2100).contains(&local.year()) {
            return Err(refuse("dtstart", "a year from 2000 to 2100"));
        }
        let rule = rrule.trim();
        if rule.is_empty()
            || rule.len() > 500
            || rule.contains(['\n', '\r', ':'])
            || rule.to_ascii_uppercase().contains("DTSTART")
        {
            return Err(refuse(
                "rrule",
                "one RRULE value such as FREQ=WEEKLY;BYDAY=MO, at most 500 characters",
            ));
        }
        let parsed: rrule::RRule<rrule::Unvalidated> = rule
            .parse()
            .map_err(|e: rrule::RRuleError| refuse("rrule", e.to_string()))?;
        if matches!(
            parsed.get_freq(),
            Frequency::Hourly | Frequency::Minutely | Frequency::Secondly
        ) {
            return Err(refuse(
                "rrule",
                "at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY)",
            ));
        }
        if !parsed.get_by_second().is_empty()
            || parsed.get_by_minute().len() > 1
            || parsed.get_by_hour().len() > MAX_PER_DAY
        {
            return Err(refuse(
                "rrule",
                format!("at most {MAX_PER_DAY} BYHOUR values, one BYMINUTE and no BYSECOND"),
            ));
        }
        let text = format!("DTSTART;TZID={time_zone}:{start}\nRRULE:{rule}");
        let set: RRuleSet = text
            .parse()
            .map_err(|e: rrule::RRuleError| refuse("dtstart", e.to_string()))?;
        Ok(Recurrence { set })
    }

    /// The starts (Unix ms) in `[from, to)`, in order, at most [`MAX_OCCURRENCES`], none
    /// beyond fifty years after the first start (the expansion walks from it).
    pub fn starts_between(&self, from_ms: i64, to_ms: i64) -> Vec<i64> {
        let to_ms = to_ms.min(self.set.get_dt_start().timestamp_millis() + HORIZON_MS);
        if to_ms <= from_ms {
            return vec![];
        }
        let at = |ms: i64| Tz::UTC.timestamp_millis_opt(ms).single();
        let (Some(from), Some(to)) = (at(from_ms), at(to_ms)) else {
            return vec![];
        };
        let tz = self.set.get_dt_start().timezone();
        self.set
            .clone()
            .after(from.with_timezone(&tz))
            .before(to.with_timezone(&tz))
            .all(MAX_OCCURRENCES)
            .dates
            .into_iter()
            .map(|d| d.timestamp_millis())
            .filter(|ms| (from_ms..to_ms).contains(ms))
            .collect()
    }

    /// Whether an occurrence starts at exactly `at_ms`.
    pub fn starts_at(&self, at_ms: i64) -> bool {
        self.starts_between(at_ms, at_ms + 1) == [at_ms]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        let t =
            time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
                .unwrap();
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn a_weekly_rule_crosses_a_month_in_local_time() {
        // Mondays and Thursdays at 09:00 in Shanghai (UTC+8) from Thursday 26 November 2026.
        let r = Recurrence::parse(
            "FREQ=WEEKLY;BYDAY=MO,TH",
            "2026-11-26T09:00",
            "Asia/Shanghai",
        )
        .unwrap();
        let got = r.starts_between(ms("2026-11-26T00:00:00Z"), ms("2026-12-08T00:00:00Z"));
        let want: Vec<i64> = [
            "2026-11-26T01:00:00Z",
            "2026-11-30T01:00:00Z",
            "2026-12-03T01:00:00Z",
            "2026-12-07T01:00:00Z",
        ]
        .iter()
        .map(|s| ms(s))
        .collect();
        assert_eq!(got, want);
        assert!(r.starts_at(ms("2026-12-03T01:00:00Z")));
        assert!(!r.starts_at(ms("2026-12-03T01:00:01Z")));
    }

    #[test]
    fn the_last_day_of_each_month_and_a_clock_change() {
        // BYMONTHDAY=-1 across a month boundary, in a zone with summer time: 09:00 local is
        // 08:00 UTC in October (BST) and 09:00 UTC in November (GMT).
        let r = Recurrence::parse(
            "FREQ=MONTHLY;BYMONTHDAY=-1",
            "2026-09-30T09:00",
            "Europe/London",
        )
        .unwrap();
        let got = r.starts_between(ms("2026-10-01T00:00:00Z"), ms("2026-12-01T00:00:00Z"));
        assert_eq!(
            got,
            vec![ms("2026-10-31T09:00:00Z"), ms("2026-11-30T09:00:00Z")]
        );
    }

    #[test]
    fn bad_rules_name_their_field() {
        let field = |r: &str, d: &str, z: &str| Recurrence::parse(r, d, z).unwrap_err().field;
        assert_eq!(
            field("FREQ=DAILY", "2026-11-26T09:00", "Mars/Base"),
            "time_zone"
        );
        assert_eq!(
            field("FREQ=DAILY", "2026-11-26 09:00", "Asia/Shanghai"),
            "dtstart"
        );
        assert_eq!(
            field("FREQ=SOMETIMES", "2026-11-26T09:00", "Asia/Shanghai"),
            "rrule"
        );
        assert_eq!(
            field("FREQ=MINUTELY", "2026-11-26T09:00", "Asia/Shanghai"),
            "rrule"
        );
        assert_eq!(
            field(
                "FREQ=DAILY\nDTSTART:20260101T000000Z",
                "2026-11-26T09:00",
                "Asia/Shanghai"
            ),
            "rrule"
        );
    }

    #[test]
    fn an_endless_rule_is_bounded_by_the_range_and_the_horizon() {
        let r = Recurrence::parse(
            "FREQ=DAILY;BYHOUR=8,10,12,14,16,18",
            "2026-01-01T00:00",
            "UTC",
        )
        .unwrap();
        // A year at the most a day is all there: nothing is cut off.
        let year = r.starts_between(ms("2026-01-01T00:00:00Z"), ms("2027-01-01T00:00:00Z"));
        assert_eq!(year.len(), 365 * MAX_PER_DAY);
        assert!(r
            .starts_between(ms("2026-01-02T00:00:00Z"), ms("2026-01-01T00:00:00Z"))
            .is_empty());
        // Far beyond the first start, nothing is expanded.
        assert!(r
            .starts_between(ms("2090-01-01T00:00:00Z"), ms("2090-02-01T00:00:00Z"))
            .is_empty());
    }
}
