//! The table a run prints: one row per figure, its reference from the same run, the ratio.

use std::fmt::Write;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub backend: String,
    pub measure: String,
    pub value: f64,
    /// What the figure is compared with, e.g. "limit: plain batched INSERT".
    pub reference: String,
    pub reference_value: Option<f64>,
    /// How the ratio is taken: `value / reference` unless the measure is lower-is-better.
    pub lower_is_better: bool,
    /// The target as text, and whether it was met (`None` when there is no target).
    pub target: String,
    pub met: Option<bool>,
}

impl Row {
    pub fn new(scenario: &str, backend: &str, measure: &str, value: f64) -> Row {
        Row {
            scenario: scenario.into(),
            backend: backend.into(),
            measure: measure.into(),
            value,
            reference: "—".into(),
            reference_value: None,
            lower_is_better: false,
            target: "—".into(),
            met: None,
        }
    }

    pub fn reference(mut self, name: &str, value: Option<f64>) -> Row {
        self.reference = name.into();
        self.reference_value = value;
        self
    }

    pub fn lower_is_better(mut self) -> Row {
        self.lower_is_better = true;
        self
    }

    /// Gridline's figure relative to the reference: > 1 means better than the reference when
    /// higher is better; for times it is `value / reference` (< 1 means faster).
    pub fn ratio(&self) -> Option<f64> {
        let r = self.reference_value?;
        (r > 0.0 && r.is_finite()).then(|| self.value / r)
    }

    pub fn target(mut self, text: &str, met: Option<bool>) -> Row {
        self.target = text.into();
        self.met = met;
        self
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn push(&mut self, row: Row) {
        eprintln!(
            "  {} {} {}: {} (ref {})",
            row.scenario,
            row.backend,
            row.measure,
            fmt_num(row.value),
            row.reference_value
                .map(fmt_num)
                .unwrap_or_else(|| "—".into())
        );
        self.rows.push(row);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("  note: {text}");
        self.notes.push(text);
    }

    /// A Markdown table, ready to paste into BENCHMARKS.md.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| scenario | db | measure | Gridline | reference | reference figure | ratio | target | met |\n\
             |---|---|---|---:|---|---:|---:|---|---|\n",
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.backend,
                r.measure,
                fmt_num(r.value),
                r.reference,
                r.reference_value.map(fmt_num).unwrap_or_else(|| "—".into()),
                r.ratio()
                    .map(|x| format!("{x:.2}×"))
                    .unwrap_or_else(|| "—".into()),
                r.target,
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "—",
                },
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "\n- {n}");
        }
        out
    }
}

/// Three significant digits, thousands separated: 20,000 / 812 / 3.14 / 0.0412.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    if x.abs() >= 1000.0 {
        let s = format!("{:.0}", x.round());
        let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{sign}{grouped}")
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_easily() {
        assert_eq!(fmt_num(20000.4), "20,000");
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(812.2), "812");
        assert_eq!(fmt_num(2.71), "2.71");
        assert_eq!(fmt_num(0.04123), "0.041");
        assert_eq!(fmt_num(f64::NAN), "n/a");
    }
}
