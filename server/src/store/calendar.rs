//! The site's calendar of holidays and make-up working days (`calendar_days`).

use jiff::civil::Date;
use sqlx::{Any, AnyConnection, Executor, Row};

use crate::workdays::CalendarDay;

type R<T> = Result<T, sqlx::Error>;

/// Every day the calendar names, in date order.
pub async fn days<'c, E: Executor<'c, Database = Any>>(e: E) -> R<Vec<CalendarDay>> {
    let rows = sqlx::query("SELECT day, working, name FROM calendar_days ORDER BY day")
        .fetch_all(e)
        .await?;
    rows.iter()
        .map(|r| {
            let day: String = r.try_get("day")?;
            let working: i64 = r.try_get("working")?;
            Ok(CalendarDay {
                date: day
                    .parse::<Date>()
                    .map_err(|_| super::unknown_value("calendar_days.day", &day))?,
                working: match working {
                    0 => false,
                    1 => true,
                    _ => {
                        return Err(super::unknown_value(
                            "calendar_days.working",
                            &working.to_string(),
                        ))
                    }
                },
                name: r.try_get("name")?,
            })
        })
        .collect()
}

/// Replaces the days of `year` with `days` (all of that year). Returns how many days the year
/// held before.
pub async fn replace_year(
    conn: &mut AnyConnection,
    year: i16,
    days: &[&CalendarDay],
    now: i64,
) -> R<u64> {
    let removed = sqlx::query("DELETE FROM calendar_days WHERE day >= $1 AND day < $2")
        .bind(format!("{year:04}-01-01"))
        .bind(format!("{:04}-01-01", year + 1))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    for d in days {
        sqlx::query(
            "INSERT INTO calendar_days (day, working, name, updated_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(d.date.to_string())
        .bind(i64::from(d.working))
        .bind(&d.name)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(removed)
}
