//! Building [`CaseView`]s, several at a time (a pull page may carry hundreds).

use std::collections::HashMap;

use uuid::Uuid;

use crate::model::{CaseConflict, CaseEvent, CaseLocation, CasePhoto, CaseView};
use crate::store::cases::{self, CaseRow, ConflictRow};
use crate::store::json_rows::Reader;
use crate::store::time_from_ms;
use crate::store::ReadConn;

pub fn conflict_view(c: &ConflictRow) -> CaseConflict {
    let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    CaseConflict {
        id: c.id,
        case_id: c.case_id,
        op_id: c.op_id,
        user_id: c.user_id,
        field: c.field.clone(),
        base_value: parse(&c.base_value),
        server_value: parse(&c.server_value),
        incoming_value: parse(&c.incoming_value),
        resolution: c.resolution.clone(),
        rule_id: c.rule_id.clone(),
        at: time_from_ms(c.created_at),
    }
}

/// Adds the evidence summary (photos verified, integrity flags) to API views.
pub async fn with_evidence(
    db: &crate::store::Db,
    views: &mut [CaseView],
) -> Result<(), sqlx::Error> {
    for v in views {
        v.evidence = Some(crate::store::photos::evidence(db, v.id).await?);
    }
    Ok(())
}

/// The view of case `id` with its evidence, if `user` may see it (404 otherwise, as if it did
/// not exist).
pub async fn visible_case(
    db: &crate::store::Db,
    user: &crate::access::AuthUser,
    id: Uuid,
) -> crate::error::ApiResult<CaseView> {
    let mut view = case_views(&mut db.reader().await?.reader(), Vec::new(), &[id])
        .await?
        .remove(&id)
        .ok_or_else(|| crate::error::ApiError::not_found("case"))?;
    user.scope(db)
        .await?
        .check_case_visible(&mut *db.pool.acquire().await?, user, id, view.zone_id)
        .await?;
    with_evidence(db, std::slice::from_mut(&mut view)).await?;
    Ok(view)
}

/// Views of the given cases (missing ids are simply absent), with four queries per thousand
/// cases (`store::json_rows`: on SQLite each returns its rows as one JSON value). The photo,
/// event and conflict reads run beside the case read, each on a `spare` connection while there
/// are some ([`crate::store::Db::spare_readers`]), the rest after it on `reader`. Each read
/// sees what had committed when it ran: a view may be newer than the change-log row that named
/// it, never older, and a later row names it again (see `Db::begin_keyed_read`).
pub async fn case_views(
    reader: &mut Reader<'_>,
    spare: Vec<ReadConn>,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, CaseView>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut spare = spare.into_iter();
    let (mut for_photos, mut for_events, mut for_conflicts) =
        (spare.next(), spare.next(), spare.next());
    let (rows, photo_rows, event_rows, conflict_rows) = tokio::try_join!(
        cases::load_many(reader, ids),
        async {
            match for_photos.as_mut() {
                Some(c) => cases::photos_of(&mut c.reader(), ids).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match for_events.as_mut() {
                Some(c) => cases::events_of(&mut c.reader(), ids).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match for_conflicts.as_mut() {
                Some(c) => cases::conflicts_of(&mut c.reader(), ids).await.map(Some),
                None => Ok(None),
            }
        },
    )?;
    drop((for_photos, for_events, for_conflicts));
    let photo_rows = match photo_rows {
        Some(r) => r,
        None => cases::photos_of(reader, ids).await?,
    };
    let event_rows = match event_rows {
        Some(r) => r,
        None => cases::events_of(reader, ids).await?,
    };
    let conflict_rows = match conflict_rows {
        Some(r) => r,
        None => cases::conflicts_of(reader, ids).await?,
    };
    let mut photos: HashMap<Uuid, Vec<CasePhoto>> = HashMap::new();
    for p in photo_rows {
        photos.entry(p.case_id).or_default().push(CasePhoto {
            sha256: p.sha256,
            size: p.size,
            role: p.role,
            captured_at: time_from_ms(p.captured_at),
            gps: p.gps_lat.zip(p.gps_lon).map(|(a, b)| [a, b]),
        });
    }
    let mut events: HashMap<Uuid, Vec<CaseEvent>> = HashMap::new();
    for e in event_rows {
        events.entry(e.case_id).or_default().push(CaseEvent {
            id: e.id,
            version: e.version,
            kind: e.kind,
            actor_id: e.actor_id,
            from_state: e.from_state,
            to_state: e.to_state,
            comment: e.comment,
            at: time_from_ms(e.at),
        });
    }
    let mut conflicts: HashMap<Uuid, Vec<CaseConflict>> = HashMap::new();
    for c in conflict_rows {
        conflicts
            .entry(c.case_id)
            .or_default()
            .push(conflict_view(&c));
    }
    Ok(rows
        .into_values()
        .map(|c| {
            let id = c.id;
            let view = to_view(
                c,
                photos.remove(&id),
                events.remove(&id),
                conflicts.remove(&id),
            );
            (id, view)
        })
        .collect())
}

fn to_view(
    c: CaseRow,
    photos: Option<Vec<CasePhoto>>,
    events: Option<Vec<CaseEvent>>,
    conflicts: Option<Vec<CaseConflict>>,
) -> CaseView {
    CaseView {
        id: c.id,
        zone_id: c.zone_id,
        reporter_id: c.reporter_id,
        source: c.source,
        state: c.state,
        category_code: c.category_code,
        description: c.description,
        severity: c.severity,
        asset_code: c.asset_code,
        location: CaseLocation {
            lat: c.lat,
            lon: c.lon,
            accuracy_m: c.accuracy_m,
        },
        captured_at: time_from_ms(c.captured_at),
        queued_at: time_from_ms(c.queued_at),
        received_at: time_from_ms(c.received_at),
        round_id: c.round_id,
        version: c.version,
        locked: c.locked_at.is_some(),
        flags: c.flags,
        photos: photos.unwrap_or_default(),
        events: events.unwrap_or_default(),
        conflicts: conflicts.unwrap_or_default(),
        evidence: None,
    }
}
