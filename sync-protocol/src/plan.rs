//! Inspection plans as phones and the server share them: the checklist template a plan carries,
//! the plan as it is pulled by its assignees, and the pure rules over a checklist (validation,
//! the weighted score, the case a failed item raises).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub use crate::ops::ItemResult;
use crate::ops::{ChecklistResponse, RoundKind};
use crate::validation::{check_text, is_category_code, ValidationErrors};
pub use crate::validation::{is_item_id, MAX_CHECKLIST_ITEMS};

/// Longest item label, in characters.
pub const MAX_ITEM_LABEL_CHARS: usize = 200;
/// Largest weight of one item.
pub const MAX_ITEM_WEIGHT: u32 = 100;

/// One thing to check on site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    /// Stable within the checklist: 1 to 32 of `a-z`, `0-9`, `-`, `_`.
    pub id: String,
    pub label: String,
    /// Its share of the score, 1 ..= 100.
    pub weight: u32,
    /// A mandatory item must be answered `pass` or `fail` (never `not_applicable` or left out)
    /// before the checklist counts as complete.
    #[serde(default)]
    pub mandatory: bool,
    /// When set, a `fail` of this item raises a case of this category (taxonomy key), with the
    /// photos taken for the item, without the inspector filing it separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_code: Option<String>,
}

/// A plan's checklist template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checklist {
    pub items: Vec<ChecklistItem>,
}

impl Checklist {
    /// Every problem of the template, with paths under `path` (`checklist.items[2].weight`).
    pub fn validate(&self, path: &str, e: &mut ValidationErrors) {
        if self.items.len() > MAX_CHECKLIST_ITEMS {
            e.push(
                format!("{path}.items"),
                format!("at most {MAX_CHECKLIST_ITEMS} items"),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, item) in self.items.iter().enumerate() {
            let p = format!("{path}.items[{i}]");
            if !is_item_id(&item.id) {
                e.push(
                    format!("{p}.id"),
                    "1 to 32 of a-z, 0-9, '-' and '_'".to_owned(),
                );
            } else if !seen.insert(item.id.as_str()) {
                e.push(format!("{p}.id"), "the same id twice".to_owned());
            }
            check_text(
                e,
                &format!("{p}.label"),
                &item.label,
                MAX_ITEM_LABEL_CHARS,
                true,
            );
            if item.weight == 0 || item.weight > MAX_ITEM_WEIGHT {
                e.push(
                    format!("{p}.weight"),
                    format!("between 1 and {MAX_ITEM_WEIGHT}"),
                );
            }
            if let Some(c) = &item.category_code {
                if !is_category_code(c) {
                    e.push(
                        format!("{p}.category_code"),
                        "a taxonomy key such as event:0102".to_owned(),
                    );
                }
            }
        }
    }

    pub fn item(&self, id: &str) -> Option<&ChecklistItem> {
        self.items.iter().find(|i| i.id == id)
    }
}

/// A finished checklist's score: the weight of the items passed over the weight of the items
/// answered `pass` or `fail`, in per mille (1000 when nothing applied), rounded down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChecklistScore {
    pub score_permille: u32,
    pub items_failed: u32,
    /// Mandatory items answered `fail`.
    pub mandatory_failed: u32,
}

/// The score of `results` (item id, result) against `checklist`; items of other ids count
/// for nothing (validation refuses them).
pub fn score<'a>(
    checklist: &Checklist,
    results: impl IntoIterator<Item = (&'a str, ItemResult)>,
) -> ChecklistScore {
    let (mut passed, mut applied, mut failed, mut mandatory_failed) = (0u64, 0u64, 0u32, 0u32);
    for (id, result) in results {
        let Some(item) = checklist.item(id) else {
            continue;
        };
        match result {
            ItemResult::Pass => {
                passed += u64::from(item.weight);
                applied += u64::from(item.weight);
            }
            ItemResult::Fail => {
                applied += u64::from(item.weight);
                failed += 1;
                if item.mandatory {
                    mandatory_failed += 1;
                }
            }
            ItemResult::NotApplicable => {}
        }
    }
    // Nothing applied (no division) scores full marks.
    let score_permille = (passed * 1000)
        .checked_div(applied)
        .map_or(1000, |s| u32::try_from(s).unwrap_or(1000));
    ChecklistScore {
        score_permille,
        items_failed: failed,
        mandatory_failed,
    }
}

/// The id of the case a failed item raises: the first 16 bytes of
/// `SHA-256("gridline-finding-v1\n" ‖ round id ‖ "\n" ‖ item id)`, marked as a UUID of
/// version 8 (RFC 9562 §5.8). The same round and item give the same case, so a checklist sent
/// again never raises a second one, and a phone can name the case before it syncs.
pub fn finding_case_id(round_id: Uuid, item_id: &str) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"gridline-finding-v1\n")
        .chain_update(round_id.to_string().as_bytes())
        .chain_update(b"\n")
        .chain_update(item_id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The rules of a completed checklist that depend on its template, with paths under `path`
/// (`payload.responses[1].photos`): every item answered is in the template; every mandatory
/// item is answered `pass` or `fail`; a `fail` of an item with a category, which raises a
/// case, carries at least one photo and a location.
pub fn check_against_template(
    checklist: &Checklist,
    responses: &[ChecklistResponse],
    path: &str,
    e: &mut ValidationErrors,
) {
    for (i, r) in responses.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(item) = checklist.item(&r.item_id) else {
            e.push(
                format!("{at}.item_id"),
                "not an item of the plan's checklist",
            );
            continue;
        };
        if r.result == ItemResult::Fail && item.category_code.is_some() {
            if r.photos.is_empty() {
                e.push(
                    format!("{at}.photos"),
                    "a failed item that raises a case needs at least one photo",
                );
            }
            if r.location.is_none() {
                e.push(
                    format!("{at}.location"),
                    "a failed item that raises a case needs a location",
                );
            }
        }
    }
    for item in checklist.items.iter().filter(|i| i.mandatory) {
        let answered = responses
            .iter()
            .any(|r| r.item_id == item.id && r.result != ItemResult::NotApplicable);
        if !answered {
            e.push(
                path,
                format!("mandatory item {:?} must be answered pass or fail", item.id),
            );
        }
    }
}

/// A plan as its assignees pull it (entity `plan`) and the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    pub id: Uuid,
    pub name: String,
    /// `periodic` or `unannounced`.
    pub kind: RoundKind,
    /// The iCalendar recurrence rule (RFC 5545 `RRULE` value), e.g. `FREQ=WEEKLY;BYDAY=MO`.
    pub rrule: String,
    /// The first occurrence's local start, `YYYY-MM-DDTHH:MM`.
    pub dtstart: String,
    /// The IANA time zone `dtstart` and the rule are read in (the site's).
    pub time_zone: String,
    /// How long each occurrence stays open, in minutes.
    pub window_minutes: u32,
    pub zones: Vec<Uuid>,
    /// Work categories in scope; empty means every category.
    pub categories: Vec<String>,
    pub assignees: Vec<Uuid>,
    pub checklist: Checklist,
    pub created_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub cancelled_at: Option<OffsetDateTime>,
    /// Unannounced plans: when the plan and its findings were made visible to the inspected
    /// zones.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revealed_at: Option<OffsetDateTime>,
    /// Unannounced plans: the hex SHA-256 commitment appended to the plan log at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment: Option<String>,
    pub version: i64,
    /// The next occurrences (at most ten), as phones show them.
    #[serde(default)]
    pub upcoming: Vec<Occurrence>,
}

/// One occurrence of a plan: open from `starts_at` until `ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Occurrence {
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, weight: u32, mandatory: bool) -> ChecklistItem {
        ChecklistItem {
            id: id.into(),
            label: id.into(),
            weight,
            mandatory,
            category_code: None,
        }
    }

    #[test]
    fn the_score_weighs_passes_over_answered_items() {
        let c = Checklist {
            items: vec![item("a", 3, true), item("b", 1, false), item("c", 6, false)],
        };
        let s = score(
            &c,
            [
                ("a", ItemResult::Pass),
                ("b", ItemResult::Fail),
                ("c", ItemResult::NotApplicable),
            ],
        );
        assert_eq!(s.score_permille, 750);
        assert_eq!((s.items_failed, s.mandatory_failed), (1, 0));
        let s = score(&c, [("a", ItemResult::Fail)]);
        assert_eq!((s.score_permille, s.mandatory_failed), (0, 1));
        assert_eq!(score(&c, []).score_permille, 1000);
    }

    #[test]
    fn a_finding_case_id_is_stable_and_differs_per_item() {
        let round = Uuid::parse_str("0190f1b0-0000-7000-8000-000000000001").unwrap();
        let a = finding_case_id(round, "cover");
        assert_eq!(a, finding_case_id(round, "cover"));
        assert_ne!(a, finding_case_id(round, "lights"));
        assert_eq!(a.get_version_num(), 8);
    }

    #[test]
    fn a_checklist_answers_the_template_and_documents_its_findings() {
        use crate::ops::{Location, PhotoManifest, PhotoRole};
        let mut cover = item("cover", 3, true);
        cover.category_code = Some("event:0102".into());
        let c = Checklist {
            items: vec![cover, item("lights", 1, false)],
        };
        let response = |id: &str, result: ItemResult| ChecklistResponse {
            item_id: id.into(),
            result,
            note: None,
            location: None,
            photos: vec![],
        };
        let check = |responses: &[ChecklistResponse]| {
            let mut e = ValidationErrors::new();
            check_against_template(&c, responses, "responses", &mut e);
            e
        };
        let e = check(&[
            response("cover", ItemResult::Fail),
            response("ghost", ItemResult::Pass),
        ]);
        for p in [
            "responses[0].photos",
            "responses[0].location",
            "responses[1].item_id",
        ] {
            assert!(e.has(p), "{p}: {e}");
        }
        let e = check(&[response("cover", ItemResult::NotApplicable)]);
        assert!(e.has("responses"), "the mandatory item: {e}");
        assert!(check(&[]).has("responses"));

        let mut documented = response("cover", ItemResult::Fail);
        documented.location = Some(Location {
            lat: 25.0,
            lon: 102.7,
            accuracy_m: 5.0,
            datum: Default::default(),
        });
        documented.photos = vec![PhotoManifest {
            sha256: "ab".repeat(32),
            size: 10,
            captured_at: OffsetDateTime::UNIX_EPOCH,
            gps: None,
            role: PhotoRole::Before,
        }];
        assert!(check(&[documented]).is_empty());
        // An optional item may be left out; a pass needs no evidence.
        assert!(check(&[response("cover", ItemResult::Pass)]).is_empty());
    }

    #[test]
    fn a_bad_template_names_each_field() {
        let mut bad = item("Bad Id", 0, false);
        bad.category_code = Some("nope".into());
        let c = Checklist {
            items: vec![bad, item("x", 1, false), item("x", 1, false)],
        };
        let mut e = ValidationErrors::new();
        c.validate("checklist", &mut e);
        for p in [
            "checklist.items[0].id",
            "checklist.items[0].weight",
            "checklist.items[0].category_code",
            "checklist.items[2].id",
        ] {
            assert!(e.has(p), "{p}: {e}");
        }
    }
}
