//! The change log that `/v1/sync/pull` reads.
//!
//! A naive `WHERE seq > cursor` over a database sequence skips rows: sequence values are taken
//! before commit, so transaction B (seq 11) can commit and be pulled before transaction A
//! (seq 10) commits, and the puller's cursor has already passed 10. Here sequence numbers come
//! from one counter row that each writing transaction increments *as its last statement*: on
//! PostgreSQL the row lock is held until commit, so the next writer gets a higher number only
//! after this one has committed; on SQLite writers are serialised anyway. Numbers are therefore
//! handed out in commit order, and a reader never sees seq N+1 without seq N.

use gridline_sync::EntityKind;
use sqlx::{Any, AnyConnection, Executor, Row};

use super::decode::{self, Stored};
use super::json_rows::{self, Col, Cols, Reader};
use super::{insert_rows, now_ms, Val};

/// What happened to an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Upsert,
    Tombstone,
}

impl ChangeKind {
    pub const ALL: &'static [ChangeKind] = &[ChangeKind::Upsert, ChangeKind::Tombstone];
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Upsert => "upsert",
            ChangeKind::Tombstone => "tombstone",
        }
    }
}

impl Stored for ChangeKind {
    fn from_text(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == text)
    }
}

/// What a change-log row is about: an entity that pulls carry, or a roster assignment, whose
/// row only tells pullers that someone's scope changed (pulls carry no roster entity; the
/// cursor notices the scope, see `sync::pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeEntity {
    Pulled(EntityKind),
    Roster,
}

impl ChangeEntity {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeEntity::Pulled(kind) => kind.as_str(),
            ChangeEntity::Roster => "roster",
        }
    }
}

impl From<EntityKind> for ChangeEntity {
    fn from(kind: EntityKind) -> Self {
        ChangeEntity::Pulled(kind)
    }
}

impl Stored for ChangeEntity {
    fn from_text(text: &str) -> Option<Self> {
        match text {
            "roster" => Some(ChangeEntity::Roster),
            _ => EntityKind::parse(text).map(ChangeEntity::Pulled),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PendingChange {
    pub entity: ChangeEntity,
    pub entity_id: String,
    /// `None` for reference data every phone receives (taxonomy, rules, periods).
    pub zone_id: Option<String>,
    pub kind: ChangeKind,
    /// The one user whose pull reads the row (an inbox entry); `None` for everyone in scope.
    pub user_id: Option<String>,
}

impl PendingChange {
    pub fn upsert(
        entity: impl Into<ChangeEntity>,
        entity_id: impl ToString,
        zone_id: Option<String>,
    ) -> Self {
        Self {
            entity: entity.into(),
            entity_id: entity_id.to_string(),
            zone_id,
            kind: ChangeKind::Upsert,
            user_id: None,
        }
    }
    pub fn tombstone(
        entity: impl Into<ChangeEntity>,
        entity_id: impl ToString,
        zone_id: Option<String>,
    ) -> Self {
        Self {
            entity: entity.into(),
            entity_id: entity_id.to_string(),
            zone_id,
            kind: ChangeKind::Tombstone,
            user_id: None,
        }
    }

    /// Notice `notice` in `user`'s inbox was added or read: a row only `user`'s pull reads.
    pub fn inbox(notice: uuid::Uuid, user: uuid::Uuid) -> Self {
        Self {
            entity: ChangeEntity::Pulled(EntityKind::Notice),
            entity_id: notice.to_string(),
            zone_id: None,
            kind: ChangeKind::Upsert,
            user_id: Some(user.to_string()),
        }
    }
}

impl PendingChange {
    /// Plan `plan` changed for `assignee`, one of its inspectors: a row only their pull reads
    /// (with `plans=true`), so that a confidential plan reaches no one else's phone.
    pub fn plan(plan: uuid::Uuid, assignee: uuid::Uuid, kind: ChangeKind) -> Self {
        Self {
            entity: ChangeEntity::Pulled(EntityKind::Plan),
            entity_id: plan.to_string(),
            zone_id: None,
            kind,
            user_id: Some(assignee.to_string()),
        }
    }
}

/// Appends `changes` to the log. Call this as the last statement of the transaction, to keep
/// the counter row locked for as short a time as possible.
pub async fn append(
    conn: &mut AnyConnection,
    changes: &[PendingChange],
) -> Result<(), sqlx::Error> {
    if changes.is_empty() {
        return Ok(());
    }
    let last: i64 = sqlx::query_scalar(
        "UPDATE counters SET value = value + $1 WHERE name = 'changes' RETURNING value",
    )
    .bind(changes.len() as i64)
    .fetch_one(&mut *conn)
    .await?;
    let first = last - changes.len() as i64 + 1;
    let at = now_ms();
    let rows: Vec<Vec<Val>> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                (first + i as i64).into(),
                c.entity.as_str().into(),
                c.entity_id.clone().into(),
                c.zone_id.clone().into(),
                c.kind.as_str().into(),
                at.into(),
                c.user_id.clone().into(),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "changes",
        &[
            "seq",
            "entity",
            "entity_id",
            "zone_id",
            "kind",
            "at",
            "user_id",
        ],
        &rows,
    )
    .await
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct ChangeRow {
    pub seq: i64,
    #[serde(deserialize_with = "entity")]
    pub entity: ChangeEntity,
    pub entity_id: String,
    pub zone_id: Option<String>,
    #[serde(deserialize_with = "kind")]
    pub kind: ChangeKind,
    /// Set on an inbox row: the user it belongs to.
    #[serde(default)]
    pub user_id: Option<String>,
}

const ENTITY: &str = "changes.entity";
const KIND: &str = "changes.kind";

fn entity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ChangeEntity, D::Error> {
    decode::from_json(d, ENTITY)
}

fn kind<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ChangeKind, D::Error> {
    decode::from_json(d, KIND)
}

const CHANGE_COLUMNS: &str = "seq, entity, entity_id, zone_id, kind, user_id";

/// Changes after `after`, visible to a caller whose scope is `zones` (`None` = every zone),
/// plus global reference data, in commit order.
///
/// With a scope, each zone (and the global rows, `zone_id IS NULL`) is read as its own ordered,
/// limited range of the `changes_zone_seq` index and the ranges are merged: the cost is that of
/// the page, whatever the size of the log and whatever the planner's statistics say. (The
/// plain `zone_id IS NULL OR zone_id IN (…)` filter let PostgreSQL read every row after the
/// cursor and sort them, on every page: a first sync quadratic in the zone's size.) On SQLite
/// the page comes back as one JSON value (see [`super::json_rows`]).
pub async fn since(
    reader: &mut Reader<'_>,
    after: i64,
    zones: Option<&[String]>,
    limit: i64,
) -> Result<Vec<ChangeRow>, sqlx::Error> {
    since_for(reader, after, zones, limit, None, None).await
}

/// The rows of the caller's own that a pull carries besides its zones': its inbox (`notice`
/// rows) and the plans it is assigned to (`plan` rows), each when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnRows {
    pub user: uuid::Uuid,
    pub inbox: bool,
    pub plans: bool,
}

impl OwnRows {
    /// `None` when neither is asked for.
    pub fn of(user: uuid::Uuid, inbox: bool, plans: bool) -> Option<Self> {
        (inbox || plans).then_some(OwnRows { user, inbox, plans })
    }

    /// SQL: the row's entity is one of those asked for (constants, no parameter).
    fn entity_sql(self) -> String {
        match (self.inbox, self.plans) {
            (true, true) => "entity IN ('notice', 'plan')",
            (true, false) => "entity = 'notice'",
            _ => "entity = 'plan'",
        }
        .to_owned()
    }
}

/// [`since`] without the changes of an unannounced inspection hidden from `hidden_from` (its
/// rounds, cases and their conflicts: see `super::cases::hidden_case_sql`); `None` hides
/// nothing. The condition is part of each range, so a page is full whatever it leaves out.
///
/// Inbox rows (those with a `user_id`) are left out, except `inbox_of`'s own, read as one more
/// range (the `changes_user_seq` index).
pub async fn since_for(
    reader: &mut Reader<'_>,
    after: i64,
    zones: Option<&[String]>,
    limit: i64,
    hidden_from: Option<uuid::Uuid>,
    own: Option<OwnRows>,
) -> Result<Vec<ChangeRow>, sqlx::Error> {
    let inbox_of = own.map(|o| o.user);
    let own_entities = own.map_or(String::new(), |o| o.entity_sql());
    let zone_count = zones.map_or(0, <[String]>::len);
    let hidden = match hidden_from {
        None => String::new(),
        Some(_) => {
            let p = format!("${}", 3 + zone_count);
            format!(
                " AND NOT ((entity = 'case' AND {}) OR (entity = 'round' AND {}) \
                 OR (entity = 'conflict' AND EXISTS (SELECT 1 FROM conflicts hk \
                 WHERE hk.id = changes.entity_id AND {})))",
                super::cases::hidden_case_sql("changes.entity_id", &p),
                super::cases::hidden_round_sql("changes.entity_id", &p),
                super::cases::hidden_case_sql("hk.case_id", &p),
            )
        }
    };
    let inbox_param = format!("${}", 3 + zone_count + usize::from(hidden_from.is_some()));
    let sql = match zones {
        None => {
            let audience = match inbox_of {
                None => "user_id IS NULL".to_owned(),
                Some(_) => {
                    format!("(user_id IS NULL OR (user_id = {inbox_param} AND {own_entities}))")
                }
            };
            format!(
                "SELECT {CHANGE_COLUMNS} FROM changes WHERE seq > $1 AND {audience}{hidden} \
                 ORDER BY seq LIMIT $2"
            )
        }
        Some(zones) => {
            let range = |alias: String, rows: &str| {
                format!(
                    "SELECT * FROM (SELECT {CHANGE_COLUMNS} FROM changes WHERE {rows} \
                     AND seq > $1{hidden} ORDER BY seq LIMIT $2) AS {alias}"
                )
            };
            let mut parts = vec![range("g".into(), "zone_id IS NULL AND user_id IS NULL")];
            for i in 0..zones.len() {
                parts.push(range(
                    format!("z{i}"),
                    &format!("zone_id = ${} AND user_id IS NULL", i + 3),
                ));
            }
            if inbox_of.is_some() {
                parts.push(range(
                    "i".into(),
                    &format!("user_id = {inbox_param} AND {own_entities}"),
                ));
            }
            format!(
                "SELECT {CHANGE_COLUMNS} FROM ({}) AS u ORDER BY seq LIMIT $2",
                parts.join(" UNION ALL ")
            )
        }
    };
    match reader {
        Reader::Sqlite(conn) => {
            let cols = ["seq", "entity", "entity_id", "zone_id", "kind", "user_id"].map(Col::Exact);
            let sql = json_rows::sqlite_json_sql(&cols, &format!("({sql}) AS page"), "seq");
            let mut q = sqlx::query_scalar::<_, String>(&sql)
                .bind(after)
                .bind(limit);
            for z in zones.unwrap_or(&[]) {
                q = q.bind(z.clone());
            }
            if let Some(reader) = hidden_from {
                q = q.bind(reader.to_string());
            }
            if let Some(user) = inbox_of {
                q = q.bind(user.to_string());
            }
            json_rows::parse(&q.fetch_one(&mut **conn).await?, "changes")
        }
        Reader::Postgres(conn) => {
            let mut q = sqlx::query(&sql).bind(after).bind(limit);
            for z in zones.unwrap_or(&[]) {
                q = q.bind(z.clone());
            }
            if let Some(reader) = hidden_from {
                q = q.bind(reader.to_string());
            }
            if let Some(user) = inbox_of {
                q = q.bind(user.to_string());
            }
            let rows = q.fetch_all(&mut **conn).await?;
            rows.iter()
                .map(|r| {
                    Ok(ChangeRow {
                        seq: r.int("seq")?,
                        entity: decode::parse(ENTITY, &r.text("entity")?)?,
                        entity_id: r.text("entity_id")?,
                        zone_id: r.opt_text("zone_id")?,
                        kind: decode::parse(KIND, &r.text("kind")?)?,
                        user_id: r.opt_text("user_id")?,
                    })
                })
                .collect()
        }
    }
}

/// The newest sequence number handed out so far.
pub async fn head<'c, E: Executor<'c, Database = Any>>(e: E) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM counters WHERE name = 'changes'")
        .fetch_one(e)
        .await
}

/// The newest sequence number handed out so far, and the position through which the log was
/// compacted ([`head`] and [`pruned_through`] in one round trip).
pub async fn positions<'c, E: Executor<'c, Database = Any>>(
    e: E,
) -> Result<(i64, i64), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT name, value FROM counters WHERE name IN ('changes', 'changes_pruned_through')",
    )
    .fetch_all(e)
    .await?;
    let (mut head, mut pruned) = (None, None);
    for r in rows {
        let value: i64 = r.try_get("value")?;
        match r.try_get::<String, _>("name")?.as_str() {
            "changes" => head = Some(value),
            _ => pruned = Some(value),
        }
    }
    head.zip(pruned).ok_or(sqlx::Error::RowNotFound)
}

/// Cursors at or below this were compacted away and must reset.
pub async fn pruned_through<'c, E: Executor<'c, Database = Any>>(e: E) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM counters WHERE name = 'changes_pruned_through'")
        .fetch_one(e)
        .await
}

/// Compacts the log: rows older than `cutoff` that a later row of the same entity (and, for an
/// inbox row, the same user) supersedes, and tombstones older than `cutoff`, are deleted. The latest row of every live entity stays,
/// so a pull from no cursor still sees everything; a cursor from before the deleted rows must
/// reset (it might have missed a tombstone). Returns the number of rows deleted.
pub async fn prune(conn: &mut AnyConnection, cutoff: i64) -> Result<u64, sqlx::Error> {
    let condition = "at < $1 AND (kind = 'tombstone' OR EXISTS (SELECT 1 FROM changes n \
                     WHERE n.entity = changes.entity AND n.entity_id = changes.entity_id \
                     AND (n.user_id = changes.user_id OR (n.user_id IS NULL AND changes.user_id IS NULL)) \
                     AND n.seq > changes.seq))";
    let max: Option<i64> =
        sqlx::query_scalar(&format!("SELECT MAX(seq) FROM changes WHERE {condition}"))
            .bind(cutoff)
            .fetch_one(&mut *conn)
            .await?;
    let Some(max) = max else { return Ok(0) };
    let done = sqlx::query(&format!("DELETE FROM changes WHERE {condition}"))
        .bind(cutoff)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE counters SET value = CASE WHEN value > $1 THEN value ELSE $1 END WHERE name = 'changes_pruned_through'",
    )
    .bind(max)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
