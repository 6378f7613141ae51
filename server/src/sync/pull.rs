//! `GET /v1/sync/pull`: the changes in the caller's scope since a cursor, in commit order.
//!
//! The cursor is opaque to phones. It carries the change-log position and the zones the scope
//! covered when it was issued, so a roster change is noticed at the next pull: zones that left
//! the scope produce `remove`s, and zones that joined are caught up from the start of the log
//! before the pull moves on.
//!
//! A phone that asks for its inbox (`inbox=true`) also gets the caller's own notices: the
//! change log holds one row per inbox entry, written when the notice is recorded and again when
//! it is read, that only its user's pull reads (`changes::since_for`). They page, resume and
//! compact with everything else. A cursor says whether it carried the inbox; one issued without
//! it catches the inbox up from the start of the log, as a zone that joined the scope does.
//! The plans the caller is assigned to come the same way with `plans=true` (`plan` rows, each
//! the plan with its next occurrences).

use std::collections::{HashMap, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gridline_sync::{EntityKind, ErrorCode, PullQuery};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::model::CaseView;
use crate::store::changes::{self, ChangeEntity, ChangeKind, ChangeRow};
use crate::store::Db;
use crate::store::{self, cases, reference};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Cursor {
    /// Position in the change log: everything up to it has been delivered.
    s: i64,
    /// The zones in scope when the cursor was issued; `None` for every zone.
    z: Option<Vec<Uuid>>,
    /// A catch-up of zones that joined the scope: their changes in `(s, until]` still owed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<Catchup>,
    /// The pages up to `s` carried the caller's inbox.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    i: bool,
    /// The pages up to `s` carried the caller's plans.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    p: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Catchup {
    z: Vec<Uuid>,
    s: i64,
    until: i64,
    /// The caller's own rows (inbox, plans) are caught up too (the cursor was issued without
    /// one of them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    i: bool,
}

const CURSOR_PREFIX: &str = "c1.";

fn encode(c: &Cursor) -> String {
    format!(
        "{CURSOR_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
    )
}

fn decode(text: &str) -> Option<Cursor> {
    let b = URL_SAFE_NO_PAD
        .decode(text.strip_prefix(CURSOR_PREFIX)?)
        .ok()?;
    serde_json::from_slice(&b).ok()
}

/// Decodes a cursor and encodes it again; `None` for text that is not one of our cursors.
/// Public for the fuzz target (`fuzz/fuzz_targets/pull_cursor.rs`): cursors come from phones.
pub fn reencode_cursor(text: &str) -> Option<String> {
    decode(text).map(|c| encode(&c))
}

fn reset(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ResetRequired,
        format!(
            "{why}: push your queue, drop server-derived state and pull again without a cursor"
        ),
    )
}

/// A pull page as it goes on the wire: the JSON of [`gridline_sync::PullResponse`] (which the
/// OpenAPI document and phones use), written straight from the case views. Building a
/// `serde_json::Value` tree per case and serialising it again cost more than the queries.
#[derive(Debug, Serialize)]
pub struct PullPage {
    protocol: u32,
    #[serde(with = "time::serde::rfc3339")]
    server_time: time::OffsetDateTime,
    changes: Vec<PageChange>,
    cursor: String,
    has_more: bool,
}

/// [`gridline_sync::Change`] with the entity's state kept as what it was built from.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PageChange {
    Upsert {
        entity: EntityKind,
        id: String,
        version: i64,
        data: Data,
    },
    Remove {
        entity: EntityKind,
        id: String,
    },
    Tombstone {
        entity: EntityKind,
        id: String,
    },
}

/// An upsert's `data`: a case view (nearly every change), or any other entity as JSON.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Data {
    Case(Box<CaseView>),
    Json(serde_json::Value),
}

impl PullPage {
    /// The page as JSON, written into one buffer sized for it.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        // A case view is about 1.3 kB; other changes are small.
        let mut out = Vec::with_capacity(256 + self.changes.len() * 1536);
        serde_json::to_writer(&mut out, self)?;
        Ok(out)
    }
}

pub async fn pull(db: &Db, user: &AuthUser, q: PullQuery) -> ApiResult<PullPage> {
    if !gridline_sync::is_supported_protocol(q.protocol) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedProtocol,
            format!("protocol {} is not supported", q.protocol),
        ));
    }
    user.require_device()?;
    let limit = q.limit.unwrap_or(gridline_sync::DEFAULT_PULL_LIMIT);
    if limit == 0 || limit > gridline_sync::MAX_PULL_LIMIT {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {}", gridline_sync::MAX_PULL_LIMIT),
        ));
    }
    let limit = limit as i64;
    let scope = user.scope(db).await?;
    let now_zones: Option<Vec<Uuid>> = scope.zones().map(|z| z.to_vec());
    // Unannounced inspections reach only supervisors and their authors.
    let hidden_from = user.confidential_reader();
    // One transaction for the page's reads; see `Db::begin_keyed_read`.
    let mut read = db.begin_keyed_read().await?;

    let mut cursor = match q.cursor.as_deref() {
        None | Some("") => Cursor {
            s: 0,
            z: now_zones.clone(),
            c: None,
            i: false,
            p: false,
        },
        Some(text) => decode(text).ok_or_else(|| reset("unknown cursor"))?,
    };
    let (head, pruned) = changes::positions(read.conn()).await?;
    if cursor.s > 0 && cursor.s < pruned {
        return Err(reset("this cursor is older than the change log keeps"));
    }
    if cursor.s > head {
        return Err(reset(
            "this cursor is ahead of the server (restored from a backup?)",
        ));
    }

    let mut out: Vec<PageChange> = Vec::new();
    // Scope changes since the cursor was issued.
    let all_zones: Vec<Uuid> = reference::zones(read.conn(), None)
        .await?
        .into_iter()
        .map(|z| z.id)
        .collect();
    let prev: HashSet<Uuid> = cursor
        .z
        .clone()
        .unwrap_or_else(|| all_zones.clone())
        .into_iter()
        .collect();
    let now: HashSet<Uuid> = now_zones
        .clone()
        .unwrap_or_else(|| all_zones.clone())
        .into_iter()
        .collect();
    let mut removed: Vec<Uuid> = prev.difference(&now).copied().collect();
    removed.sort();
    let mut added: Vec<Uuid> = now.difference(&prev).copied().collect();
    added.sort();
    for zone in &removed {
        out.push(PageChange::Remove {
            entity: EntityKind::Zone,
            id: zone.to_string(),
        });
        for id in cases::ids_in_zone(read.conn(), *zone, hidden_from).await? {
            out.push(PageChange::Remove {
                entity: EntityKind::Case,
                id: id.to_string(),
            });
        }
        let mut after: Option<String> = None;
        loop {
            let page = reference::assets(read.conn(), Some(*zone), after.as_deref(), 1000).await?;
            let done = page.len() < 1000;
            for a in &page {
                out.push(PageChange::Remove {
                    entity: EntityKind::Asset,
                    id: a.code.clone(),
                });
            }
            after = page.last().map(|a| a.code.clone());
            if done {
                break;
            }
        }
    }
    let inbox = q.inbox == Some(true);
    let plans = q.plans == Some(true);
    if let Some(c) = cursor.c.as_mut() {
        c.z.retain(|z| now.contains(z));
        c.i &= inbox || plans;
    }
    // The caller's own rows are owed from the start of the log when the pages so far went
    // without the inbox or the plans now asked for (both are caught up: upserts repeat
    // harmlessly).
    let inbox_owed = ((inbox && !cursor.i) || (plans && !cursor.p)) && cursor.s > 0;
    if (!added.is_empty() || inbox_owed) && cursor.s > 0 {
        let (mut z, i) = match cursor.c.take() {
            Some(c) => (c.z, c.i),
            None => (Vec::new(), false),
        };
        z.extend(added);
        z.sort();
        z.dedup();
        cursor.c = Some(Catchup {
            z,
            s: 0,
            until: cursor.s,
            i: i || inbox_owed,
        });
    }
    cursor.z = now_zones.clone();
    cursor.i = inbox;
    cursor.p = plans;
    if cursor.c.as_ref().is_some_and(|c| c.z.is_empty() && !c.i) {
        cursor.c = None;
    }
    let own = changes::OwnRows::of(user.user_id, inbox, plans);

    let has_more;
    if let Some(mut c) = cursor.c.take() {
        let zones: Vec<String> = c.z.iter().map(|z| z.to_string()).collect();
        let rows: Vec<ChangeRow> = changes::since_for(
            &mut read.reader(),
            c.s,
            Some(&zones),
            limit + 1,
            hidden_from,
            own.filter(|_| c.i),
        )
        .await?
        .into_iter()
        // The global rows were delivered already; only the joined zones and the inbox are owed.
        .filter(|r| r.seq <= c.until && (r.zone_id.is_some() || r.user_id.is_some()))
        .collect();
        let more = rows.len() as i64 > limit;
        let rows: Vec<ChangeRow> = rows.into_iter().take(limit as usize).collect();
        if let Some(last) = rows.last() {
            c.s = last.seq;
        }
        out.extend(render(db, &mut read, &rows, user.user_id).await?);
        if more {
            cursor.c = Some(c);
        }
        // Either more catch-up, or the main position may have moved on meanwhile.
        has_more = true;
    } else {
        let zones: Option<Vec<String>> =
            now_zones.map(|z| z.iter().map(|z| z.to_string()).collect());
        let rows = changes::since_for(
            &mut read.reader(),
            cursor.s,
            zones.as_deref(),
            limit + 1,
            hidden_from,
            own,
        )
        .await?;
        has_more = rows.len() as i64 > limit;
        let rows: Vec<ChangeRow> = rows.into_iter().take(limit as usize).collect();
        if let Some(last) = rows.last() {
            cursor.s = last.seq;
        }
        out.extend(render(db, &mut read, &rows, user.user_id).await?);
    }
    read.commit().await?;
    Ok(PullPage {
        protocol: gridline_sync::PROTOCOL_VERSION,
        server_time: time::OffsetDateTime::now_utc(),
        changes: out,
        cursor: encode(&cursor),
        has_more,
    })
}

/// Turns change-log rows into changes carrying each entity's current state (one per entity,
/// at the position of its latest row). Notices are `reader`'s inbox entries.
async fn render(
    db: &store::Db,
    read: &mut store::KeyedRead,
    rows: &[ChangeRow],
    reader: Uuid,
) -> ApiResult<Vec<PageChange>> {
    let mut latest: HashMap<(ChangeEntity, &str), usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        latest.insert((r.entity, r.entity_id.as_str()), i);
    }
    let rows: Vec<&ChangeRow> = rows
        .iter()
        .enumerate()
        .filter(|(i, r)| latest[&(r.entity, r.entity_id.as_str())] == *i)
        .map(|(_, r)| r)
        .collect();

    let case_ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.entity == ChangeEntity::Pulled(EntityKind::Case))
        .filter_map(|r| Uuid::parse_str(&r.entity_id).ok())
        .collect();
    let spare = db.spare_readers(3);
    let mut views = crate::sync::view::case_views(&mut read.reader(), spare, &case_ids).await?;
    let conn = read.conn();
    let rulebooks = if rows
        .iter()
        .any(|r| r.entity == ChangeEntity::Pulled(EntityKind::Rule))
    {
        reference::rulebooks(&db.pool).await?
    } else {
        vec![]
    };
    let taxonomy = if rows
        .iter()
        .any(|r| r.entity == ChangeEntity::Pulled(EntityKind::Taxonomy))
    {
        reference::taxonomy(&mut *conn).await?
    } else {
        vec![]
    };
    let notice_ids: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.entity == ChangeEntity::Pulled(EntityKind::Notice))
        .filter_map(|r| Uuid::parse_str(&r.entity_id).ok())
        .collect();
    let mut inbox: HashMap<Uuid, crate::notify::NoticeView> = if notice_ids.is_empty() {
        HashMap::new()
    } else {
        store::notices::inbox_entries(&mut *conn, reader, &notice_ids)
            .await?
            .iter()
            .map(|r| (r.notice.id, crate::notify::inbox_view(r)))
            .collect()
    };

    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        // A roster row carries nothing: the cursor notices the scope it changed.
        let ChangeEntity::Pulled(entity) = r.entity else {
            continue;
        };
        if r.kind == ChangeKind::Tombstone {
            out.push(PageChange::Tombstone {
                entity,
                id: r.entity_id.clone(),
            });
            continue;
        }
        let uuid = Uuid::parse_str(&r.entity_id).ok();
        let data: Option<(i64, Data)> = match entity {
            EntityKind::Case => uuid
                .and_then(|id| views.remove(&id))
                .map(|v| (v.version, Data::Case(Box::new(v)))),
            EntityKind::Zone => match uuid {
                Some(id) => reference::zone(&mut *conn, id)
                    .await?
                    .map(|z| (z.version, json(&z))),
                None => None,
            },
            EntityKind::Taxonomy => taxonomy
                .iter()
                .find(|t| t.key == r.entity_id)
                .map(|t| (r.seq, json(t))),
            EntityKind::Asset => reference::asset(&mut *conn, &r.entity_id)
                .await?
                .map(|a| (r.seq, json(&a))),
            EntityKind::Rule => rulebooks
                .iter()
                .find(|b| Some(b.id) == uuid)
                .map(|b| (b.version, json(b))),
            EntityKind::Period => match uuid {
                Some(id) => reference::period(&mut *conn, id)
                    .await?
                    .map(|p| (r.seq, json(&p))),
                None => None,
            },
            EntityKind::Conflict => match uuid {
                Some(id) => cases::conflict(&mut *conn, id)
                    .await?
                    .map(|c| (1, json(&crate::sync::view::conflict_view(&c)))),
                None => None,
            },
            EntityKind::Round => store::sync::round_view(&mut *conn, &r.entity_id)
                .await?
                .map(|v| (r.seq, json(&v))),
            EntityKind::Notice => uuid
                .and_then(|id| inbox.remove(&id))
                .map(|n| (r.seq, json(&n))),
            // A plan row is the assignee's own; one they were taken off reads as a tombstone.
            EntityKind::Plan => match uuid {
                Some(id) => store::plans::load(&mut *conn, id, "")
                    .await?
                    .filter(|p| p.assignees.contains(&reader))
                    .map(|p| crate::plans::view(&p, store::now_ms()))
                    .transpose()?
                    .map(|v| (v.version, json(&v))),
                None => None,
            },
        };
        out.push(match data {
            Some((version, data)) => PageChange::Upsert {
                entity,
                id: r.entity_id.clone(),
                version,
                data,
            },
            None => PageChange::Tombstone {
                entity,
                id: r.entity_id.clone(),
            },
        });
    }
    Ok(out)
}

fn json<T: Serialize>(v: &T) -> Data {
    Data::Json(serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            s: 42,
            z: Some(vec![Uuid::nil()]),
            c: Some(Catchup {
                z: vec![],
                s: 1,
                until: 42,
                i: true,
            }),
            i: true,
            p: true,
        };
        assert_eq!(decode(&encode(&c)), Some(c));
        assert_eq!(decode("c1.!!!"), None);
        assert_eq!(decode("42"), None);
    }

    fn sample_case() -> CaseView {
        use crate::model::{CaseConflict, CaseEvent, CaseLocation, CasePhoto};
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_000_000)
            .expect("a time");
        CaseView {
            id: Uuid::now_v7(),
            zone_id: Uuid::now_v7(),
            reporter_id: Uuid::now_v7(),
            source: "phone".into(),
            state: gridline_sync::case::CaseState::Reported,
            category_code: "event:0102".into(),
            description: "A \"quoted\" crack\nand a line break, é".into(),
            severity: gridline_sync::ops::Severity::High,
            asset_code: None,
            location: CaseLocation {
                lat: 48.8566,
                lon: 2.3522,
                accuracy_m: 4.5,
            },
            captured_at: at,
            queued_at: at,
            received_at: at,
            round_id: Some(Uuid::now_v7()),
            version: 3,
            locked: false,
            flags: vec!["clock_skew".into()],
            photos: vec![CasePhoto {
                sha256: "ab".repeat(32),
                size: 123_456,
                role: "before".into(),
                captured_at: at,
                gps: Some([48.1, 2.2]),
            }],
            events: vec![CaseEvent {
                id: Uuid::now_v7(),
                version: 1,
                kind: "created".into(),
                actor_id: Uuid::now_v7(),
                from_state: None,
                to_state: Some("reported".into()),
                comment: None,
                at,
            }],
            conflicts: vec![CaseConflict {
                id: Uuid::now_v7(),
                case_id: Uuid::now_v7(),
                op_id: Uuid::now_v7(),
                user_id: Uuid::now_v7(),
                field: "description".into(),
                base_value: serde_json::json!("a"),
                server_value: serde_json::json!({"b": [1, 2.5, null]}),
                incoming_value: serde_json::Value::Null,
                resolution: "server_kept".into(),
                rule_id: "lww".into(),
                at,
            }],
            evidence: None,
        }
    }

    /// The page written straight from case views is the protocol's `PullResponse`, with each
    /// case's `data` equal to the view's JSON (what the page carried before).
    #[test]
    fn pages_are_pull_responses_with_the_views_as_data() {
        let case = sample_case();
        let zone = serde_json::json!({"id": "z", "name": "Zone 1", "version": 2});
        let page = PullPage {
            protocol: gridline_sync::PROTOCOL_VERSION,
            server_time: case.received_at,
            changes: vec![
                PageChange::Remove {
                    entity: EntityKind::Asset,
                    id: "A-1".into(),
                },
                PageChange::Upsert {
                    entity: EntityKind::Case,
                    id: case.id.to_string(),
                    version: case.version,
                    data: Data::Case(Box::new(case.clone())),
                },
                PageChange::Upsert {
                    entity: EntityKind::Zone,
                    id: "z".into(),
                    version: 2,
                    data: Data::Json(zone.clone()),
                },
                PageChange::Tombstone {
                    entity: EntityKind::Case,
                    id: "gone".into(),
                },
            ],
            cursor: "c1.abc".into(),
            has_more: true,
        };
        let parsed: gridline_sync::PullResponse =
            serde_json::from_slice(&page.to_json().expect("JSON")).expect("a PullResponse");
        let expected = gridline_sync::PullResponse {
            protocol: gridline_sync::PROTOCOL_VERSION,
            server_time: case.received_at,
            changes: vec![
                gridline_sync::Change::Remove {
                    entity: EntityKind::Asset,
                    id: "A-1".into(),
                },
                gridline_sync::Change::Upsert {
                    entity: EntityKind::Case,
                    id: case.id.to_string(),
                    version: case.version,
                    data: serde_json::to_value(&case).expect("a value").into(),
                },
                gridline_sync::Change::Upsert {
                    entity: EntityKind::Zone,
                    id: "z".into(),
                    version: 2,
                    data: zone.into(),
                },
                gridline_sync::Change::Tombstone {
                    entity: EntityKind::Case,
                    id: "gone".into(),
                },
            ],
            cursor: "c1.abc".into(),
            has_more: true,
        };
        assert_eq!(parsed, expected);
    }
}
