//! The site's working-day calendar as data: holidays and make-up working days, imported from
//! CSV a year at a time (`POST /v1/calendar`, `gridline admin import-calendar`), read by
//! anyone signed in, and loaded wherever a deadline in working time is counted (dispatch,
//! escalation).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{Any, Executor};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::store::{audit, calendar as store, now_ms, Db};
use crate::workdays::{self, CalendarDay, WorkCalendar, WorkWeek};

/// The calendar of `week` with the days stored.
pub async fn load<'c, E: Executor<'c, Database = Any>>(
    e: E,
    week: &WorkWeek,
) -> Result<WorkCalendar, sqlx::Error> {
    Ok(WorkCalendar::new(week.clone(), store::days(e).await?))
}

/// A day the calendar names, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CalendarDayView {
    /// `2026-10-01`.
    pub date: String,
    /// `holiday` (a day off on a working weekday) or `workday` (a make-up working day, 调休).
    pub kind: String,
    pub name: String,
}

/// The working week and the days of one year that differ from it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CalendarYear {
    pub year: i16,
    /// When the working day starts and ends, local time (`HH:MM`), in `time_zone`.
    pub day_start: String,
    pub day_end: String,
    pub time_zone: String,
    /// The days of the week off (`saturday`, `sunday`), unless named working days below.
    pub weekend: Vec<String>,
    pub days: Vec<CalendarDayView>,
}

fn day_view(d: &CalendarDay) -> CalendarDayView {
    CalendarDayView {
        date: d.date.to_string(),
        kind: if d.working { "workday" } else { "holiday" }.into(),
        name: d.name.clone(),
    }
}

/// The calendar of `year` (anyone signed in).
pub async fn year(db: &Db, week: &WorkWeek, year: i16) -> ApiResult<CalendarYear> {
    if !(1970..=9998).contains(&year) {
        return Err(ApiError::invalid("year", "between 1970 and 9998"));
    }
    let days = store::days(&db.pool).await?;
    Ok(CalendarYear {
        year,
        day_start: week.day_start.strftime("%H:%M").to_string(),
        day_end: week.day_end.strftime("%H:%M").to_string(),
        time_zone: week.tz.iana_name().unwrap_or("UTC").to_owned(),
        weekend: week
            .weekend
            .iter()
            .map(|d| format!("{d:?}").to_lowercase())
            .collect(),
        days: days
            .iter()
            .filter(|d| d.date.year() == year)
            .map(day_view)
            .collect(),
    })
}

/// What an import changed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CalendarImport {
    /// The years the file covered: each now holds exactly the file's days.
    pub years: Vec<i16>,
    pub holidays: usize,
    pub workdays: usize,
    /// Days those years held before, now replaced.
    pub replaced: u64,
}

/// Imports a calendar file (see [`workdays::parse_csv`] for its lines) for `actor` (an admin,
/// checked by the caller; `None`: the operator at the command line): each year the file names
/// is replaced by the file's days of that year, in one transaction, audited. A year not in
/// the file is left as it was. Deadlines already set keep the calendar they were counted on.
pub async fn import(db: &Db, actor: Option<Uuid>, text: &str) -> ApiResult<CalendarImport> {
    let days = workdays::parse_csv(text).map_err(|why| ApiError::invalid("file", why))?;
    if days.is_empty() {
        return Err(ApiError::invalid("file", "no day is listed"));
    }
    let mut by_year: BTreeMap<i16, Vec<&CalendarDay>> = BTreeMap::new();
    for d in &days {
        by_year.entry(d.date.year()).or_default().push(d);
    }
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let mut replaced = 0;
    for (year, days) in &by_year {
        replaced += store::replace_year(tx.conn(), *year, days, now).await?;
    }
    let summary = CalendarImport {
        years: by_year.keys().copied().collect(),
        holidays: days.iter().filter(|d| !d.working).count(),
        workdays: days.iter().filter(|d| d.working).count(),
        replaced,
    };
    let listed: Vec<CalendarDayView> = days.iter().map(day_view).collect();
    audit::record(
        tx.conn(),
        actor,
        "calendar.import",
        "calendar",
        &summary
            .years
            .iter()
            .map(i16::to_string)
            .collect::<Vec<_>>()
            .join(","),
        None::<&()>,
        Some(&listed),
    )
    .await?;
    tx.commit().await?;
    Ok(summary)
}
