//! Exports as tables: one [`Table`] written as CSV or as an XLSX workbook, so both formats
//! always carry the same rows and numbers. Every CSV the server writes goes through
//! [`Table::to_csv`], which keeps text that a spreadsheet would run as a formula inert.

use rust_xlsxwriter::{Format, Workbook, XlsxError};

/// One cell. Numbers stay numbers in XLSX (so totals can be summed there).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    Num(f64),
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

impl Cell {
    /// The cell as CSV text. Text that a spreadsheet would read as a formula gets a leading
    /// `'` (see [`neutralise_formula`]); numbers are written as they are.
    fn csv_text(&self) -> String {
        match self {
            Cell::Text(s) => neutralise_formula(s),
            Cell::Int(i) => i.to_string(),
            Cell::Num(n) => n.to_string(),
            Cell::Empty => String::new(),
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

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: &'static str,
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn to_csv(&self) -> Result<Vec<u8>, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(&self.headers)?;
        for row in &self.rows {
            w.write_record(row.iter().map(Cell::csv_text))?;
        }
        w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
    }

    pub fn to_xlsx(&self) -> Result<Vec<u8>, XlsxError> {
        let mut book = Workbook::new();
        let bold = Format::new().set_bold();
        let sheet = book.add_worksheet();
        sheet.set_name(self.name)?;
        for (c, h) in self.headers.iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, *h, &bold)?;
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
                    Cell::Empty => {}
                }
            }
        }
        book.save_to_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_keeps_empty_cells() {
        let t = Table {
            name: "t",
            headers: vec!["a", "b", "c"],
            rows: vec![vec!["x, y".into(), Cell::Empty, 1.5.into()]],
        };
        assert_eq!(
            String::from_utf8(t.to_csv().unwrap()).unwrap(),
            "a,b,c\n\"x, y\",,1.5\n"
        );
        assert!(t.to_xlsx().unwrap().starts_with(b"PK"));
    }

    #[test]
    fn csv_text_that_would_run_as_a_formula_is_kept_inert() {
        let t = Table {
            name: "t",
            headers: vec!["a"],
            rows: ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "a=1", "1-2"]
                .into_iter()
                .map(|s| vec![s.into()])
                .chain([vec![Cell::Num(-1.5)], vec![Cell::Int(-2)]])
                .collect(),
        };
        let csv = t.to_csv().unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_slice());
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
                "-2"
            ]
        );
    }
}
