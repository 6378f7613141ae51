//! The period report (通报): one printable XLSX sheet a subdistrict office circulates after a
//! period — the ranking, each zone's deductions with the rule's text, the note and the
//! evidence thumbnail, and a sign-off naming the ledger checkpoint it was made from, so that
//! anyone can check later that the report and the ledger agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::ObjectStore;
use rust_xlsxwriter::{Format, FormatAlign, Image, Workbook, Worksheet, XlsxError};
use uuid::Uuid;

use super::{Names, Reader};
use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::i18n::{self, Lang};
use crate::ledger::closing::{scoped_zones, visible_ranking};
use crate::ledger::rankings::Rankings;
use crate::model::Milli;
use crate::store::{ledger as store, ledger_log, reference, Db};

/// Thumbnails larger than this are left out of the report (they are made at 256 px; anything
/// bigger is not a thumbnail).
const MAX_THUMB_BYTES: usize = 512 * 1024;

/// The report of `period_id` as XLSX bytes, and the period's code (for the file name).
pub async fn period_report(
    db: &Db,
    rankings: &Rankings,
    blobs: &Arc<dyn ObjectStore>,
    user: &AuthUser,
    reader: &Reader,
    period_id: Uuid,
) -> ApiResult<(Vec<u8>, String)> {
    let period = reference::period(&db.pool, period_id)
        .await?
        .ok_or_else(|| ApiError::not_found("period"))?;
    let ranking = visible_ranking(db, rankings, user, &period).await?;
    let zones = scoped_zones(db, user, None).await?;
    let names = Names::load(db).await?;
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page =
            store::export_entries(&db.pool, Some(period_id), zones.as_deref(), after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.entry.seq;
        entries.extend(page);
    }
    // Each zone's entries, in chain order; the first evidence photo's thumbnail beside each
    // (an entry's evidence may also name documents, which have none).
    let mut by_zone = ZoneEntries::new();
    for x in entries {
        let evidence: Vec<String> = serde_json::from_str(&x.entry.evidence).unwrap_or_default();
        let mut thumb = None;
        for sha in &evidence {
            thumb = thumbnail(blobs, sha).await;
            if thumb.is_some() {
                break;
            }
        }
        by_zone
            .entry(x.entry.zone_id.clone())
            .or_default()
            .push((x, thumb));
    }
    let checkpoint = ledger_log::latest_checkpoint(&db.pool).await?;
    let report = Report {
        reader,
        names: &names,
        code: &period.code,
        ranking: &ranking,
        by_zone: &by_zone,
        checkpoint: checkpoint.as_ref(),
    };
    let bytes = report.to_xlsx().map_err(ApiError::internal)?;
    Ok((bytes, period.code))
}

/// A thumbnail's bytes, or `None` when it is not (yet) made or cannot be read: the report
/// says so in words rather than failing.
async fn thumbnail(blobs: &Arc<dyn ObjectStore>, sha: &str) -> Option<Vec<u8>> {
    let got = blobs
        .get(&crate::photos::derivative_path(sha, "thumb"))
        .await
        .ok()?;
    let bytes = got.bytes().await.ok()?;
    (bytes.len() <= MAX_THUMB_BYTES).then(|| bytes.to_vec())
}

/// Each zone's entries (by zone id), with the first evidence photo's thumbnail when there is
/// one.
type ZoneEntries = BTreeMap<String, Vec<(store::ExportedEntry, Option<Vec<u8>>)>>;

struct Report<'a> {
    reader: &'a Reader,
    names: &'a Names,
    code: &'a str,
    ranking: &'a crate::ledger::scoring::Ranking,
    by_zone: &'a ZoneEntries,
    checkpoint: Option<&'a crate::ledger::log::Checkpoint>,
}

impl Report<'_> {
    fn t(&self, key: &str, args: &[(&str, &str)]) -> String {
        i18n::lookup(self.reader.lang, key, args).unwrap_or_else(|| key.to_owned())
    }

    /// A ranked zone's name in the reader's language.
    fn zone_name(&self, z: &crate::ledger::scoring::ZoneScore) -> String {
        match self.names.zone_name(&z.zone_id, self.reader.lang) {
            super::Cell::Text(name) => name,
            _ => z.zone_name.clone(),
        }
    }

    fn col(&self, key: &str) -> String {
        i18n::text(self.reader.lang, &format!("col-{key}"))
    }

    fn to_xlsx(&self) -> Result<Vec<u8>, XlsxError> {
        let mut book = Workbook::new();
        let sheet = book.add_worksheet();
        sheet.set_name(if self.reader.lang == Lang::ZhCn {
            "通报"
        } else {
            "report"
        })?;
        sheet.set_landscape();
        sheet.set_paper_size(9); // A4
        sheet.set_print_fit_to_pages(1, 0);
        for (c, width) in [10, 24, 30, 12, 10, 10, 10, 36, 36, 14].iter().enumerate() {
            sheet.set_column_width(c as u16, *width)?;
        }
        let mut row = self.head(sheet)?;
        row = self.ranking_table(sheet, row + 1)?;
        row = self.deductions(sheet, row + 1)?;
        self.signoff(sheet, row + 1)?;
        book.save_to_buffer()
    }

    fn head(&self, sheet: &mut Worksheet) -> Result<u32, XlsxError> {
        let title = Format::new().set_bold().set_font_size(16);
        sheet.write_string_with_format(
            0,
            0,
            self.t("report-title", &[("period", self.code)]),
            &title,
        )?;
        let now = crate::localtime::format(&self.reader.tz, crate::store::now_ms());
        let tz = self.reader.tz.iana_name().unwrap_or("UTC").to_owned();
        sheet.write_string(
            1,
            0,
            self.t("report-subtitle", &[("at", &now), ("tz", &tz)]),
        )?;
        Ok(2)
    }

    fn ranking_table(&self, sheet: &mut Worksheet, mut row: u32) -> Result<u32, XlsxError> {
        let heading = Format::new().set_bold().set_font_size(13);
        let bold = Format::new()
            .set_bold()
            .set_border(rust_xlsxwriter::FormatBorder::Thin);
        let cell = Format::new().set_border(rust_xlsxwriter::FormatBorder::Thin);
        sheet.write_string_with_format(row, 0, self.t("report-ranking", &[]), &heading)?;
        row += 1;
        for (c, key) in [
            "rank",
            "zone_name",
            "zone",
            "score",
            "deductions",
            "entries",
            "reversals",
        ]
        .iter()
        .enumerate()
        {
            sheet.write_string_with_format(row, c as u16, self.col(key), &bold)?;
        }
        for z in &self.ranking.zones {
            row += 1;
            sheet.write_number_with_format(row, 0, z.rank as f64, &cell)?;
            sheet.write_string_with_format(row, 1, self.zone_name(z), &cell)?;
            sheet.write_string_with_format(row, 2, &z.zone_code, &cell)?;
            sheet.write_number_with_format(row, 3, z.score, &cell)?;
            sheet.write_number_with_format(row, 4, z.deductions, &cell)?;
            sheet.write_number_with_format(row, 5, z.entries as f64, &cell)?;
            sheet.write_number_with_format(row, 6, z.reversals as f64, &cell)?;
        }
        Ok(row + 1)
    }

    fn deductions(&self, sheet: &mut Worksheet, mut row: u32) -> Result<u32, XlsxError> {
        let heading = Format::new().set_bold().set_font_size(13);
        let zone_heading = Format::new().set_bold();
        let bold = Format::new()
            .set_bold()
            .set_border(rust_xlsxwriter::FormatBorder::Thin);
        let cell = Format::new()
            .set_border(rust_xlsxwriter::FormatBorder::Thin)
            .set_text_wrap()
            .set_align(FormatAlign::Top);
        sheet.write_string_with_format(row, 0, self.t("report-deductions", &[]), &heading)?;
        row += 1;
        if self.by_zone.is_empty() {
            sheet.write_string(row, 0, self.t("report-none", &[]))?;
            return Ok(row + 1);
        }
        let lang = self.reader.lang;
        for z in &self.ranking.zones {
            let Some(entries) = self.by_zone.get(&z.zone_id) else {
                continue;
            };
            let total: i64 = entries
                .iter()
                .map(|(x, _)| x.entry.weighted_points_milli)
                .sum();
            let count = entries.len().to_string();
            let points = Milli::to_f64(total).to_string();
            let title = self.t(
                "report-zone",
                &[
                    ("zone", &self.zone_name(z)),
                    ("code", &z.zone_code),
                    ("count", &count),
                    ("points", &points),
                ],
            );
            sheet.write_string_with_format(row, 0, title, &zone_heading)?;
            row += 1;
            let columns = [
                "seq",
                "found_at",
                "rule_text",
                "source_name",
                "raw_points",
                "coefficient",
                "weighted_points",
                "note",
                "case_description",
                "thumbnail",
            ];
            for (c, key) in columns.iter().enumerate() {
                sheet.write_string_with_format(row, c as u16, self.col(key), &bold)?;
            }
            for (x, thumb) in entries {
                row += 1;
                let e = &x.entry;
                let rule = self
                    .names
                    .rule_text(e.rulebook_version, &e.rule_code, lang)
                    .unwrap_or_else(|| e.rule_code.clone());
                let rule = match &e.reason {
                    Some(reason) if e.kind == "reversal" => {
                        format!("{}: {rule} ({reason})", i18n::name(lang, "entry", &e.kind))
                    }
                    _ => rule,
                };
                sheet.write_number_with_format(row, 0, e.seq as f64, &cell)?;
                sheet.write_string_with_format(
                    row,
                    1,
                    crate::localtime::format(&self.reader.tz, e.found_at),
                    &cell,
                )?;
                sheet.write_string_with_format(row, 2, rule, &cell)?;
                sheet.write_string_with_format(
                    row,
                    3,
                    i18n::name(lang, "source", &e.source),
                    &cell,
                )?;
                sheet.write_number_with_format(row, 4, Milli::to_f64(e.raw_points_milli), &cell)?;
                sheet.write_number_with_format(
                    row,
                    5,
                    Milli::to_f64(e.coefficient_milli),
                    &cell,
                )?;
                sheet.write_number_with_format(
                    row,
                    6,
                    Milli::to_f64(e.weighted_points_milli),
                    &cell,
                )?;
                sheet.write_string_with_format(
                    row,
                    7,
                    x.note.clone().unwrap_or_default(),
                    &cell,
                )?;
                sheet.write_string_with_format(
                    row,
                    8,
                    x.case_description.clone().unwrap_or_default(),
                    &cell,
                )?;
                sheet.write_blank(row, 9, &cell)?;
                if let Some(bytes) = thumb {
                    // A thumbnail that is not an image the writer knows is left out: the
                    // hashes in the ledger export still name the evidence.
                    if let Ok(image) = Image::new_from_buffer(bytes) {
                        sheet.set_row_height(row, 64)?;
                        sheet.insert_image_fit_to_cell(row, 9, &image, true)?;
                    }
                }
            }
            row += 2;
        }
        Ok(row)
    }

    fn signoff(&self, sheet: &mut Worksheet, row: u32) -> Result<u32, XlsxError> {
        let heading = Format::new().set_bold().set_font_size(13);
        sheet.write_string_with_format(row, 0, self.t("report-signoff", &[]), &heading)?;
        let text = match self.checkpoint {
            Some(c) => {
                let size = c.tree_size.to_string();
                let at = crate::localtime::format(&self.reader.tz, c.timestamp);
                self.t(
                    "report-signoff-text",
                    &[
                        ("size", &size),
                        ("root", &c.root_hash),
                        ("key", &c.key_id),
                        ("at", &at),
                    ],
                )
            }
            None => self.t("report-no-checkpoint", &[]),
        };
        sheet.write_string(row + 1, 0, text)?;
        Ok(row + 2)
    }
}
