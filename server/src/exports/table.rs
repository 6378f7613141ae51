//! Exports as tables: one [`Table`] written as CSV or as an XLSX workbook, so both formats
//! always carry the same rows and numbers. Every CSV the server writes goes through
//! [`Table::to_csv`], which keeps text that a spreadsheet would run as a formula inert.
//!
//! Tables are written for people: headers in the reader's language (the catalogue's `col-*`
//! texts), times in the site's time zone (real dates in XLSX), yes and no in words in CSV. A
//! CSV starts with a UTF-8 byte-order mark, without which Excel and WPS on a Chinese Windows
//! read it as GBK and show Chinese text as mojibake.

use jiff::civil::DateTime;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, XlsxError};

use crate::i18n::{self, Lang};

/// One cell. Numbers stay numbers and times stay times in XLSX (so totals can be summed and
/// dates sorted there).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Num(f64),
    Bool(bool),
    /// A local date and time (see `localtime::civil`).
    Time(DateTime),
    /// Several values (integrity flags, photo hashes): one cell in a table, an array in JSON.
    List(Vec<String>),
    Empty,
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}
impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_owned())
    }
}
impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        v.map(Cell::Text).unwrap_or(Cell::Empty)
    }
}
impl From<i64> for Cell {
    fn from(v: i64) -> Self {
        Cell::Int(v)
    }
}
impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Self {
        v.map(Cell::Int).unwrap_or(Cell::Empty)
    }
}
impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::Num(v)
    }
}
impl From<bool> for Cell {
    fn from(v: bool) -> Self {
        Cell::Bool(v)
    }
}
impl From<Option<DateTime>> for Cell {
    fn from(v: Option<DateTime>) -> Self {
        v.map(Cell::Time).unwrap_or(Cell::Empty)
    }
}

/// How a local time reads in CSV and is formatted in XLSX.
const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
const XLSX_TIME_FORMAT: &str = "yyyy-mm-dd hh:mm:ss";

impl Cell {
    /// The cell as CSV text. Text that a spreadsheet would read as a formula gets a leading
    /// `'` (see [`neutralise_formula`]); numbers are written as they are.
    fn csv_text(&self, lang: Lang) -> String {
        match self {
            Cell::Text(s) => neutralise_formula(s),
            Cell::Int(i) => i.to_string(),
            Cell::Num(n) => n.to_string(),
            Cell::Bool(b) => i18n::text(lang, if *b { "yes" } else { "no" }),
            Cell::Time(t) => t.strftime(TIME_FORMAT).to_string(),
            Cell::List(items) => neutralise_formula(&items.join(" ")),
            Cell::Empty => String::new(),
        }
    }

    /// The cell as a JSON value: booleans as booleans, lists as arrays, times in ISO 8601
    /// (local, without an offset: the export names the time zone beside them).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Text(s) => s.clone().into(),
            Cell::Int(i) => (*i).into(),
            Cell::Num(n) => (*n).into(),
            Cell::Bool(b) => (*b).into(),
            Cell::Time(t) => t.strftime("%Y-%m-%dT%H:%M:%S").to_string().into(),
            Cell::List(items) => items.clone().into(),
            Cell::Empty => serde_json::Value::Null,
        }
    }
}

/// Spreadsheets (Excel, LibreOffice, WPS) run a CSV cell that starts with `=`, `+`, `-` or `@`
/// as a formula, some of them after a leading tab or carriage return: a case description such
/// as `=HYPERLINK(...)` would become a live link in a supervisor's spreadsheet. Such text gets a
/// leading `'`, which spreadsheets show as text (OWASP's advice on CSV injection). XLSX cells
/// are written as typed strings and need nothing.
fn neutralise_formula(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The byte-order mark a CSV starts with (UTF-8).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The sheet's name in a workbook.
    pub name: String,
    /// The language of the headers and of yes and no.
    pub lang: Lang,
    /// Column keys: `col-{key}` in the catalogue is the header a person reads; JSON exports
    /// use the key itself.
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

/// The content type of an XLSX workbook.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

impl Table {
    /// The table as a file: CSV (`xlsx` false) or XLSX, with its content type and the file
    /// name `{stem}.csv` or `{stem}.xlsx`.
    pub fn encode(
        &self,
        xlsx: bool,
        stem: &str,
    ) -> Result<(Vec<u8>, &'static str, String), crate::error::ApiError> {
        use crate::error::ApiError;
        if xlsx {
            let bytes = self.to_xlsx().map_err(ApiError::internal)?;
            Ok((bytes, XLSX, format!("{stem}.xlsx")))
        } else {
            let bytes = self.to_csv().map_err(ApiError::internal)?;
            Ok((bytes, "text/csv; charset=utf-8", format!("{stem}.csv")))
        }
    }

    /// The headers in the table's language.
    pub fn headers(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|key| i18n::text(self.lang, &format!("col-{key}")))
            .collect()
    }

    pub fn to_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(BOM.to_vec());
        w.write_record(self.headers())?;
        for row in &self.rows {
            w.write_record(row.iter().map(|c| c.csv_text(self.lang)))?;
        }
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    }

    pub fn to_xlsx(&self) -> Result<Vec<u8>, XlsxError> {
        let mut book = Workbook::new();
        let bold = Format::new().set_bold();
        let time = Format::new().set_num_format(XLSX_TIME_FORMAT);
        let sheet = book.add_worksheet();
        sheet.set_name(&self.name)?;
        for (c, h) in self.headers().iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, h, &bold)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, cell) in row.iter().enumerate() {
                let c = c as u16;
                match cell {
                    Cell::Text(s) => {
                        sheet.write_string(r, c, s)?;
                    }
                    Cell::Int(i) => {
                        sheet.write_number(r, c, *i as f64)?;
                    }
                    Cell::Num(n) => {
                        sheet.write_number(r, c, *n)?;
                    }
                    Cell::Bool(b) => {
                        sheet.write_boolean(r, c, *b)?;
                    }
                    Cell::Time(t) => {
                        sheet.write_datetime_with_format(r, c, excel_time(t)?, &time)?;
                    }
                    Cell::List(items) => {
                        sheet.write_string(r, c, items.join(" "))?;
                    }
                    Cell::Empty => {}
                }
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        sheet.set_autofit_max_width(400);
        sheet.autofit();
        book.save_to_buffer()
    }
}

fn excel_time(t: &DateTime) -> Result<ExcelDateTime, XlsxError> {
    let year = u16::try_from(t.year()).map_err(|_| XlsxError::DateTimeRangeError(t.to_string()))?;
    ExcelDateTime::from_ymd(year, t.month() as u8, t.day() as u8)?.and_hms(
        t.hour() as u16,
        t.minute() as u8,
        t.second() as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(columns: Vec<&'static str>, rows: Vec<Vec<Cell>>) -> Table {
        Table {
            name: "t".into(),
            lang: Lang::En,
            columns,
            rows,
        }
    }

    #[test]
    fn csv_starts_with_a_bom_quotes_and_keeps_empty_cells() {
        let t = table(
            vec!["zone", "note", "score"],
            vec![vec!["x, y".into(), Cell::Empty, 1.5.into()]],
        );
        let csv = t.to_csv().unwrap();
        assert!(csv.starts_with(BOM));
        assert_eq!(
            String::from_utf8(csv[3..].to_vec()).unwrap(),
            "Zone code,Note,Score\n\"x, y\",,1.5\n"
        );
        assert!(t.to_xlsx().unwrap().starts_with(b"PK"));
    }

    #[test]
    fn headers_yes_and_no_and_times_read_in_the_tables_language() {
        let at = jiff::civil::date(2026, 12, 1).at(0, 30, 0, 0);
        let mut t = table(
            vec!["zone", "locked", "captured_at"],
            vec![vec!["Z01".into(), true.into(), Cell::Time(at)]],
        );
        t.lang = Lang::ZhCn;
        let csv = String::from_utf8(t.to_csv().unwrap()[3..].to_vec()).unwrap();
        assert_eq!(
            csv,
            "片区代码,已锁定,拍摄时间\nZ01,是,2026-12-01 00:30:00\n"
        );
        assert_eq!(Cell::Time(at).to_json(), "2026-12-01T00:30:00");
        assert_eq!(
            Cell::List(vec!["a".into(), "b".into()]).to_json(),
            serde_json::json!(["a", "b"])
        );
    }

    #[test]
    fn csv_text_that_would_run_as_a_formula_is_kept_inert() {
        let t = table(
            vec!["note"],
            ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "a=1", "1-2"]
                .into_iter()
                .map(|s| vec![s.into()])
                .chain([
                    vec![Cell::Num(-1.5)],
                    vec![Cell::Int(-2)],
                    vec![Cell::List(vec!["=x".into()])],
                ])
                .collect(),
        );
        let csv = t.to_csv().unwrap();
        let mut reader = csv::Reader::from_reader(&csv[3..]);
        let cells: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
        assert_eq!(
            cells,
            [
                "'=1+1",
                "'+1",
                "'-1",
                "'@SUM(A1)",
                "'\t=1",
                "'\r=1",
                "a=1",
                "1-2",
                "-1.5",
                "-2",
                "'=x"
            ]
        );
    }
}
