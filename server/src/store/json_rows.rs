//! Reading many rows at once: on SQLite as one JSON value per query, on PostgreSQL through the
//! native driver ([`Reader`]).
//!
//! sqlx-sqlite runs SQLite on a worker thread and hands every row to the async side on its own
//! (a channel send and a wake-up per row), and the `Any` driver then converts each row column by
//! column. For a pull page (a thousand cases with their photos and events) that was most of the
//! time on SQLite. So on SQLite the rows are aggregated in the query into one JSON array of
//! objects named by column (`json_group_array(json_object(…))`), and serde reads it straight
//! into typed rows. PostgreSQL keeps plain rows: building the JSON there cost its server more
//! than the conversion saved here (bench/notes/sync.md).
//! Those rows come through sqlx's native PostgreSQL driver, not `Any` ([`super::pg_reads`]), and
//! one decoder per row type ([`Cols`]) reads both drivers' rows.
//!
//! Exactness: text and integers are exact in JSON. Floats are read through text, because
//! SQLite's JSON functions write them with 15 significant digits, which does not give back
//! every double, while `printf('%!.17g')` has the 17 digits that identify any double. [`real`]
//! and [`opt_real`] parse that text.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use sqlx::any::AnyRow;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use super::{anonymous_placeholders, parse_uuid};

pub use super::pg_reads::Reader;

/// The column reads of the row decoders, for the rows of either driver (`Any` for the other
/// reads, native PostgreSQL for [`Reader`]).
pub trait Cols {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn real(&self, col: &str) -> Result<f64, sqlx::Error>;
    fn opt_real(&self, col: &str) -> Result<Option<f64>, sqlx::Error>;
    /// A UUID stored as text; anything else is a decode error.
    fn uuid(&self, col: &str) -> Result<Uuid, sqlx::Error> {
        parse_uuid(col, &self.text(col)?)
    }
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, sqlx::Error> {
        self.opt_text(col)?.map(|t| parse_uuid(col, &t)).transpose()
    }
}

macro_rules! cols_of {
    ($row:ty) => {
        impl Cols for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn real(&self, col: &str) -> Result<f64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_real(&self, col: &str) -> Result<Option<f64>, sqlx::Error> {
                self.try_get(col)
            }
        }
    };
}
cols_of!(AnyRow);
cols_of!(PgRow);

/// A column read by [`fetch_in`].
#[derive(Debug, Clone, Copy)]
pub enum Col {
    /// Text or an integer.
    Exact(&'static str),
    /// A float (`REAL`, `DOUBLE PRECISION`), read as text; see the module docs.
    Real(&'static str),
}

/// Ids per query: a whole pull page in one statement, far below both backends' limits on bound
/// parameters.
pub const IDS_PER_QUERY: usize = 1000;

impl Col {
    fn name(self) -> &'static str {
        match self {
            Col::Exact(n) | Col::Real(n) => n,
        }
    }
}

/// The SQLite query returning the rows of `SELECT cols FROM {from} ORDER BY {order}` as one JSON
/// array of objects named by column (`[]` when there are none). `from` may hold placeholders.
pub fn sqlite_json_sql(cols: &[Col], from: &str, order: &str) -> String {
    let fields: Vec<String> = cols
        .iter()
        .map(|c| match c {
            Col::Exact(n) => format!("'{n}', {n}"),
            Col::Real(n) => {
                format!("'{n}', CASE WHEN {n} IS NULL THEN NULL ELSE printf('%!.17g', {n}) END")
            }
        })
        .collect();
    // `ORDER BY` inside an aggregate needs SQLite 3.44; sqlx bundles a later one.
    format!(
        "SELECT COALESCE(json_group_array(json_object({}) ORDER BY {order}), '[]') FROM {from}",
        fields.join(", ")
    )
}

/// The rows of `SELECT cols FROM {from} ORDER BY {order}`, where `from` holds one `{}` for a
/// list of ids, read [`IDS_PER_QUERY`] ids per query; rows keep `order` within each query. On
/// SQLite each query returns its rows as one JSON array read as `T` (whose fields are named as
/// the columns); on PostgreSQL `decode` reads each row.
pub async fn fetch_in<T: DeserializeOwned>(
    reader: &mut Reader<'_>,
    cols: &[Col],
    (from, order): (&str, &str),
    ids: &[Uuid],
    decode: fn(&PgRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        match reader {
            Reader::Sqlite(conn) => {
                // Anonymous `?`: see `super::id_list`.
                let from = from.replacen("{}", &anonymous_placeholders(chunk.len()), 1);
                let sql = sqlite_json_sql(cols, &from, order);
                let mut q = sqlx::query_scalar::<_, String>(&sql);
                for id in chunk {
                    q = q.bind(id.to_string());
                }
                out.extend(parse::<T>(&q.fetch_one(&mut **conn).await?, &from)?);
            }
            Reader::Postgres(conn) => {
                let names: Vec<&str> = cols.iter().map(|c| c.name()).collect();
                let rows = super::pg_reads::fetch_in(conn, &names, (from, order), chunk, decode);
                out.extend(rows.await?);
            }
        }
    }
    Ok(out)
}

/// Rows from the JSON text of a [`sqlite_json_sql`] query; `what` names them in the error.
pub fn parse<T: DeserializeOwned>(text: &str, what: &str) -> Result<Vec<T>, sqlx::Error> {
    serde_json::from_str(text)
        .map_err(|e| sqlx::Error::Decode(format!("rows read as JSON ({what}): {e}").into()))
}

/// A float column read as text (see the module docs).
pub fn real<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// A nullable float column read as text.
pub fn opt_real<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let text = Option::<std::borrow::Cow<str>>::deserialize(d)?;
    text.map(|t| t.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// A text column holding JSON, parsed as `T`; text that does not parse is an error, as in the
/// row decoders.
pub fn json_text<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    serde_json::from_str(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every finite double comes back through SQLite's `printf('%!.17g')` and [`real`] bit for
    /// bit as a plain row read gives it (SQLite itself keeps -0.0 as 0); NULL stays NULL; text
    /// with escapes and 64-bit integers stay exact.
    #[test]
    fn sqlite_json_rows_are_exact() {
        #[derive(Debug, serde::Deserialize)]
        struct Row {
            i: i64,
            s: Option<String>,
            #[serde(deserialize_with = "opt_real")]
            x: Option<f64>,
        }
        let mut values: Vec<Option<f64>> = vec![
            None,
            Some(0.0),
            Some(-0.0),
            Some(0.1 + 0.2),
            Some(48.856_614),
            Some(-179.999_999_999_999_97),
            Some(f64::MIN_POSITIVE),
            Some(5e-324),
            Some(f64::MAX),
            Some(f64::MIN),
            Some(1e21),
            Some(123_456_789_012_345_680.0),
        ];
        let mut bits: u64 = 0x9e37_79b9_7f4a_7c15;
        while values.len() < 5000 {
            // xorshift: doubles of every exponent and mantissa.
            bits ^= bits << 13;
            bits ^= bits >> 7;
            bits ^= bits << 17;
            let x = f64::from_bits(bits);
            if x.is_finite() {
                values.push(Some(x));
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let (rows, plain): (Vec<Row>, Vec<Option<f64>>) = rt.block_on(async {
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect("sqlite::memory:")
                .await
                .expect("SQLite in memory");
            sqlx::query("CREATE TABLE t (i BIGINT NOT NULL, s TEXT, x REAL)")
                .execute(&mut conn)
                .await
                .expect("a table");
            for (n, x) in values.iter().enumerate() {
                sqlx::query("INSERT INTO t (i, s, x) VALUES ($1, $2, $3)")
                    .bind(i64::MAX - n as i64)
                    .bind((n % 3 == 0).then(|| format!("\"{n}\" \\ é\n\t")))
                    .bind(*x)
                    .execute(&mut conn)
                    .await
                    .expect("a row");
            }
            let cols = [Col::Exact("i"), Col::Exact("s"), Col::Real("x")];
            let sql = sqlite_json_sql(&cols, "t", "i DESC");
            let text: String = sqlx::query_scalar(&sql)
                .fetch_one(&mut conn)
                .await
                .expect("the JSON");
            let plain = sqlx::query_scalar("SELECT x FROM t ORDER BY i DESC")
                .fetch_all(&mut conn)
                .await
                .expect("plain rows");
            (parse(&text, "t").expect("rows"), plain)
        });
        assert_eq!(rows.len(), values.len());
        assert_eq!(plain.len(), values.len());
        for (n, ((row, x), p)) in rows.iter().zip(&values).zip(&plain).enumerate() {
            assert_eq!(row.i, i64::MAX - n as i64);
            assert_eq!(
                row.s,
                (n % 3 == 0).then(|| format!("\"{n}\" \\ é\n\t")),
                "row {n}"
            );
            assert_eq!(
                row.x.map(f64::to_bits),
                p.map(f64::to_bits),
                "row {n}: {x:?}"
            );
            // Other than -0.0, the value stored.
            if *x != Some(-0.0) {
                assert_eq!(row.x.map(f64::to_bits), x.map(f64::to_bits), "row {n}");
            }
        }
    }
}
