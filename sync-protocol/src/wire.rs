//! Sync wire types, protocol version 1.
//!
//! Every type here is what travels as JSON between a phone and the server; `PROTOCOL.md` beside
//! this crate documents them with examples. Timestamps are RFC 3339 strings.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::case::ConflictRecord;
use crate::error::{ErrorBody, ErrorCode};

/// The protocol version this crate speaks. Sent in every push body and pull query.
pub const PROTOCOL_VERSION: u32 = 1;

/// Protocol versions the server accepts; any other gets 426 `unsupported_protocol` and nothing is
/// acknowledged.
pub const SUPPORTED_PROTOCOLS: &[u32] = &[PROTOCOL_VERSION];

/// At most this many operations in one push; more is refused whole (413 `payload_too_large`).
pub const MAX_BATCH_OPS: usize = 500;

/// At most this many bytes in one push body (the JSON as sent); more is refused whole (413
/// `payload_too_large`).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// Default and maximum page size of a pull.
pub const DEFAULT_PULL_LIMIT: u32 = 500;
pub const MAX_PULL_LIMIT: u32 = 1000;

/// Whether the server accepts this protocol version.
pub fn is_supported_protocol(version: u32) -> bool {
    SUPPORTED_PROTOCOLS.contains(&version)
}

/// The endpoint paths of the sync and auth API.
pub mod paths {
    /// `POST`, body [`LoginRequest`](super::LoginRequest) → [`TokenResponse`](super::TokenResponse).
    pub const LOGIN: &str = "/v1/auth/login";
    /// `POST`, body [`RefreshRequest`](super::RefreshRequest) → [`TokenResponse`](super::TokenResponse).
    pub const REFRESH: &str = "/v1/auth/refresh";
    /// `POST` (bearer), body [`EnrolDeviceRequest`](super::EnrolDeviceRequest) →
    /// [`EnrolDeviceResponse`](super::EnrolDeviceResponse).
    pub const DEVICES: &str = "/v1/devices";
    /// `POST` (bearer, device-bound token), body [`PushRequest`](super::PushRequest) →
    /// [`PushResponse`](super::PushResponse).
    pub const SYNC_PUSH: &str = "/v1/sync/push";
    /// `GET` (bearer, device-bound token), query [`PullQuery`](super::PullQuery) →
    /// [`PullResponse`](super::PullResponse).
    pub const SYNC_PULL: &str = "/v1/sync/pull";
    /// tus 1.0.0 photo uploads (`POST` creates; `HEAD`/`PATCH` the `Location` it answers).
    pub const UPLOADS: &str = "/v1/uploads";
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// A signed operation as it travels in a push.
///
/// `op` is the exact JSON text of an [`OperationBody`]; it is signed and hashed as bytes, so no
/// JSON canonicalisation is needed. Receivers parse `op` only after verifying `sig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedOperation {
    /// The JSON text of an [`OperationBody`], exactly as signed.
    pub op: String,
    /// Base64 (standard alphabet, padded) Ed25519 signature over the UTF-8 bytes of `op`.
    pub sig: String,
}

impl SignedOperation {
    /// At most how many bytes this operation adds to a push body: `{"op":"…","sig":"…"},`,
    /// with JSON escaping at most doubling the `op` text. A batch is cut so that these, plus
    /// room for the fields around them, stay within [`MAX_BATCH_BYTES`].
    pub fn push_bytes_bound(&self) -> usize {
        self.op.len() * 2 + self.sig.len() + 32
    }
}

/// What a device signs: one queued operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationBody {
    /// Client-generated UUIDv7; unique across all devices.
    pub op_id: Uuid,
    /// The enrolled device that queued and signed the operation.
    pub device_id: Uuid,
    /// Gapless per-device sequence, starting at 1.
    pub seq: u64,
    /// Lowercase hex SHA-256 of the previous operation's `op` text from this device;
    /// [`GENESIS_HASH`](crate::signing::GENESIS_HASH) (64 zeros) for `seq` 1.
    pub prev: String,
    /// Versioned operation type, e.g. `case.create@1`.
    #[serde(rename = "type")]
    pub op_type: String,
    /// When the device queued the operation (device clock; never used for ordering).
    #[serde(with = "time::serde::rfc3339")]
    pub queued_at: OffsetDateTime,
    /// Type-specific payload; see [`Operation`](crate::ops::Operation).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

// ---------------------------------------------------------------------------------------------
// Push
// ---------------------------------------------------------------------------------------------

/// `POST /v1/sync/push`: a batch of consecutive operations from one device, in `seq` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PushRequest {
    /// Must be one of [`SUPPORTED_PROTOCOLS`].
    pub protocol: u32,
    /// Must match the device the bearer token is bound to.
    pub device_id: Uuid,
    /// The device's clock at send time, for skew estimation.
    #[serde(with = "time::serde::rfc3339")]
    pub device_time: OffsetDateTime,
    /// Consecutive operations (`seq` n, n+1, …), at most [`MAX_BATCH_OPS`]; a batch whose
    /// seqs are not consecutive is refused whole (422 `invalid_request`).
    pub operations: Vec<SignedOperation>,
    /// The highest `seq` the phone holds a receipt for. Lets the server tell a phone that is
    /// ahead of it (server restored from backup → `sequence_behind`) from a plain gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_through: Option<u64>,
}

/// The outcome of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpStatus {
    /// Applied with no conflict.
    Applied,
    /// An identical replay, no new effect: the same operation processed earlier (a retry;
    /// `first_status` and the other fields repeat the stored result), or a new operation whose
    /// content is already applied under its ids (`first_status` `applied`). Other content under
    /// a taken id is `rejected` with `id_reused`, never `duplicate`.
    Duplicate,
    /// Applied, with one or more recorded conflicts (`conflicts`), visible to both sides.
    Conflict,
    /// Permanently refused (`code`, `message`). Still acknowledged: it never blocks the queue. A
    /// rejected evidence operation is kept on the server for a supervisor to see.
    Rejected,
    /// Stored and acknowledged, but waiting for something it depends on; the final effect
    /// arrives through pull.
    Deferred,
}

impl OpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::Applied => "applied",
            OpStatus::Duplicate => "duplicate",
            OpStatus::Conflict => "conflict",
            OpStatus::Rejected => "rejected",
            OpStatus::Deferred => "deferred",
        }
    }
}

/// The result of one operation in a push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OpResult {
    pub seq: u64,
    pub op_id: Uuid,
    pub status: OpStatus,
    /// For `duplicate`: the status the operation got when it was first processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_status: Option<OpStatus>,
    /// Set for `rejected` (and `deferred`): why.
    #[serde(default)]
    pub code: Option<ErrorCode>,
    /// Human-readable explanation; not for program logic.
    #[serde(default)]
    pub message: Option<String>,
    /// The entity the operation created or changed (e.g. the case id).
    #[serde(default)]
    pub entity_id: Option<Uuid>,
    /// The entity's version after the operation.
    #[serde(default)]
    pub version: Option<i64>,
    /// Conflicts recorded while applying (status `conflict`) or that caused a rejection.
    #[serde(default)]
    pub conflicts: Vec<ConflictRecord>,
}

impl OpResult {
    /// The status that says what happened to the operation: `first_status` for a duplicate.
    pub fn effective_status(&self) -> OpStatus {
        match (self.status, self.first_status) {
            (OpStatus::Duplicate, Some(first)) => first,
            (status, _) => status,
        }
    }
}

/// The server's signed statement that it holds every operation of `device_id` through
/// `acked_through`, the last of which hashes to `last_hash`. The phone keeps every receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    pub device_id: Uuid,
    pub acked_through: u64,
    /// Hash of the operation at `acked_through` ([`GENESIS_HASH`](crate::signing::GENESIS_HASH)
    /// when `acked_through` is 0).
    pub last_hash: String,
    /// UTC, whole seconds (see [`Receipt::signing_bytes`]).
    #[serde(with = "time::serde::rfc3339")]
    pub server_time: OffsetDateTime,
    /// Identifies the server's receipt key (see [`key_id`](crate::signing::key_id)).
    pub key_id: String,
    /// Base64 (standard, padded) Ed25519 signature over [`Receipt::signing_bytes`].
    pub signature: String,
}

/// `POST /v1/sync/push` response (status 200).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PushResponse {
    pub protocol: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub server_time: OffsetDateTime,
    /// One result per operation in the request, in the same order.
    pub results: Vec<OpResult>,
    /// Every operation of this device with `seq` ≤ this has a stored result.
    pub acked_through: u64,
    /// `device_time - server_time` in milliseconds, as the server estimated it.
    pub clock_skew_ms: i64,
    pub receipt: Receipt,
}

/// `details` of a `sequence_gap` / `sequence_behind` error: resend every operation from
/// `resend_from` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResendFrom {
    pub resend_from: u64,
}

impl ResendFrom {
    /// The standard error body for a sequence error (`code` must be `sequence_gap` or
    /// `sequence_behind`).
    pub fn error_body(self, code: ErrorCode, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            code,
            message: message.into(),
            details: serde_json::json!({ "resend_from": self.resend_from }),
        }
    }

    /// Reads `resend_from` out of a sequence error body; `None` for any other body.
    pub fn from_error(body: &ErrorBody) -> Option<Self> {
        if !matches!(
            body.code,
            ErrorCode::SequenceGap | ErrorCode::SequenceBehind
        ) {
            return None;
        }
        serde_json::from_value(body.details.clone()).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Pull
// ---------------------------------------------------------------------------------------------

/// `GET /v1/sync/pull` query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PullQuery {
    pub protocol: u32,
    /// Opaque cursor from the previous page; absent for a full snapshot of the caller's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, default [`DEFAULT_PULL_LIMIT`], at most [`MAX_PULL_LIMIT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `true`: the pull also carries the caller's own inbox (`notice` entities). A phone that
    /// does not ask never receives an entity it may not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<bool>,
    /// `true`: the pull also carries the inspection plans the caller is assigned to (`plan`
    /// entities, with their next occurrences).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plans: Option<bool>,
}

/// Kinds of entity a pull carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Zone,
    Taxonomy,
    Asset,
    Rule,
    Case,
    Conflict,
    Round,
    Period,
    /// A notice in the caller's own inbox (only with [`PullQuery::inbox`]).
    Notice,
    /// An inspection plan the caller is assigned to, with its next occurrences (only with
    /// [`PullQuery::plans`]).
    Plan,
}

impl EntityKind {
    pub const ALL: &'static [EntityKind] = &[
        EntityKind::Zone,
        EntityKind::Taxonomy,
        EntityKind::Asset,
        EntityKind::Rule,
        EntityKind::Case,
        EntityKind::Conflict,
        EntityKind::Round,
        EntityKind::Period,
        EntityKind::Notice,
        EntityKind::Plan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Zone => "zone",
            EntityKind::Taxonomy => "taxonomy",
            EntityKind::Asset => "asset",
            EntityKind::Rule => "rule",
            EntityKind::Case => "case",
            EntityKind::Conflict => "conflict",
            EntityKind::Round => "round",
            EntityKind::Period => "period",
            EntityKind::Notice => "notice",
            EntityKind::Plan => "plan",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// A JSON value kept as the text it came in (a change's `data`). Phones store entities as JSON
/// text, so building a tree of every entity only to write it out again would be wasted: the
/// text is checked to be JSON and kept. Equality compares the values, not the texts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<serde_json::value::RawValue>);

impl RawJson {
    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The value as a tree.
    pub fn to_value(&self) -> serde_json::Value {
        // The text was checked to be JSON when it was made or read.
        serde_json::from_str(self.get()).unwrap_or(serde_json::Value::Null)
    }

    /// The value read as `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> serde_json::Result<T> {
        serde_json::from_str(self.get())
    }
}

impl From<serde_json::Value> for RawJson {
    fn from(v: serde_json::Value) -> Self {
        // A `Value` always serialises (its map keys are strings).
        RawJson(serde_json::value::to_raw_value(&v).expect("a JSON value serialises"))
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.to_value() == other.to_value()
    }
}

/// One change in a pull page.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Create or replace the entity with this version.
    Upsert {
        entity: EntityKind,
        id: String,
        version: i64,
        #[schema(value_type = Object)]
        data: RawJson,
    },
    /// The entity left the caller's scope (it still exists): drop the local copy.
    Remove { entity: EntityKind, id: String },
    /// The entity was deleted: drop the local copy.
    Tombstone { entity: EntityKind, id: String },
}

impl Change {
    pub fn entity(&self) -> EntityKind {
        match self {
            Change::Upsert { entity, .. }
            | Change::Remove { entity, .. }
            | Change::Tombstone { entity, .. } => *entity,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Change::Upsert { id, .. }
            | Change::Remove { id, .. }
            | Change::Tombstone { id, .. } => id,
        }
    }
}

/// Deserialised by hand: serde's derive for an internally tagged enum first buffers every field
/// of every change, `data` included, in a generic tree before it knows the variant. Here each
/// field has one type whatever the variant, so each is read once into its own type and the
/// variant is checked at the end; the wire format is the derive's (a `kind` tag beside the
/// fields, in any order, unknown fields ignored, or the sequence `[kind, entity, id, …]`).
impl<'de> Deserialize<'de> for Change {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, IgnoredAny, MapAccess, SeqAccess, Visitor};

        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Upsert,
            Remove,
            Tombstone,
        }

        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "snake_case")]
        enum Field {
            Kind,
            Entity,
            Id,
            Version,
            Data,
            #[serde(other)]
            Other,
        }

        struct ChangeVisitor;

        impl<'de> Visitor<'de> for ChangeVisitor {
            type Value = Change;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a change (an object with a `kind`)")
            }

            /// `[kind, entity, id]` or `[kind, entity, id, version, data]`, as the derive took.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Change, A::Error> {
                fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
                    seq: &mut A,
                    i: usize,
                ) -> Result<T, A::Error> {
                    seq.next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &"a change"))
                }
                let kind: Kind = next(&mut seq, 0)?;
                let (entity, id) = (next(&mut seq, 1)?, next(&mut seq, 2)?);
                Ok(match kind {
                    Kind::Upsert => Change::Upsert {
                        entity,
                        id,
                        version: next(&mut seq, 3)?,
                        data: next(&mut seq, 4)?,
                    },
                    Kind::Remove => Change::Remove { entity, id },
                    Kind::Tombstone => Change::Tombstone { entity, id },
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Change, A::Error> {
                fn once<T, E: Error>(
                    slot: &mut Option<T>,
                    v: T,
                    name: &'static str,
                ) -> Result<(), E> {
                    if slot.is_some() {
                        return Err(E::duplicate_field(name));
                    }
                    *slot = Some(v);
                    Ok(())
                }
                let (mut kind, mut entity, mut id, mut version, mut data) =
                    (None, None, None, None, None);
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Kind => once(&mut kind, map.next_value::<Kind>()?, "kind")?,
                        Field::Entity => {
                            once(&mut entity, map.next_value::<EntityKind>()?, "entity")?
                        }
                        Field::Id => once(&mut id, map.next_value::<String>()?, "id")?,
                        Field::Version => once(&mut version, map.next_value::<i64>()?, "version")?,
                        Field::Data => once(&mut data, map.next_value::<RawJson>()?, "data")?,
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let kind = kind.ok_or_else(|| A::Error::missing_field("kind"))?;
                let entity = entity.ok_or_else(|| A::Error::missing_field("entity"))?;
                let id = id.ok_or_else(|| A::Error::missing_field("id"))?;
                Ok(match kind {
                    Kind::Upsert => Change::Upsert {
                        entity,
                        id,
                        version: version.ok_or_else(|| A::Error::missing_field("version"))?,
                        data: data.ok_or_else(|| A::Error::missing_field("data"))?,
                    },
                    Kind::Remove => Change::Remove { entity, id },
                    Kind::Tombstone => Change::Tombstone { entity, id },
                })
            }
        }

        d.deserialize_any(ChangeVisitor)
    }
}

/// `GET /v1/sync/pull` response (status 200). A 410 `reset_required` error instead means: push
/// the queue, drop server-derived local state, pull again with no cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PullResponse {
    pub protocol: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub server_time: OffsetDateTime,
    /// In commit order.
    pub changes: Vec<Change>,
    /// Pass back as `cursor` for the next page (also when `has_more` is false, for the next sync).
    pub cursor: String,
    pub has_more: bool,
}

// ---------------------------------------------------------------------------------------------
// Auth and enrolment
// ---------------------------------------------------------------------------------------------

/// Roles on the roster.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Supervisor,
    Inspector,
    ZoneChief,
    RoadChief,
    SectionChief,
    SquadMember,
    /// Takes hotline calls and other reports from outside the patrol, files them as cases and
    /// calls the callers back.
    HotlineOperator,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Role::Admin,
        Role::Supervisor,
        Role::Inspector,
        Role::ZoneChief,
        Role::RoadChief,
        Role::SectionChief,
        Role::SquadMember,
        Role::HotlineOperator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Inspector => "inspector",
            Role::ZoneChief => "zone_chief",
            Role::RoadChief => "road_chief",
            Role::SectionChief => "section_chief",
            Role::SquadMember => "squad_member",
            Role::HotlineOperator => "hotline_operator",
        }
    }

    /// Supervisors and admins decide; everyone else is "inspector-level" for conflict rules.
    pub fn is_supervisor_level(self) -> bool {
        matches!(self, Role::Admin | Role::Supervisor)
    }

    /// Roles that can be assigned a case for rectification.
    pub fn is_assignee_role(self) -> bool {
        matches!(
            self,
            Role::ZoneChief | Role::RoadChief | Role::SectionChief | Role::SquadMember
        )
    }
}

/// `POST /v1/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// An already enrolled device of this user: the tokens are bound to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
}

/// Always `"Bearer"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum TokenType {
    #[default]
    Bearer,
}

/// Tokens from login, refresh or enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Single use: a refresh returns a new one.
    pub refresh_token: String,
    pub token_type: TokenType,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
    pub user: UserInfo,
}

/// `POST /v1/auth/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `POST /v1/devices` (bearer): enrol this phone's signing key. Repeating the same request (same
/// `device_id`, same key) is idempotent, so a phone that lost the response can retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnrolDeviceRequest {
    /// Client-generated UUIDv7; any other version is refused (422 `invalid_request`).
    pub device_id: Uuid,
    /// Base64 (standard, padded) of the 32-byte Ed25519 public key.
    pub public_key: String,
    /// A human name for the device, e.g. "Li Wei's phone".
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceInfo {
    pub device_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// The server's receipt-signing public key, pinned by the phone at enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerKey {
    /// See [`key_id`](crate::signing::key_id).
    pub key_id: String,
    /// Base64 (standard, padded) of the 32-byte Ed25519 public key.
    pub public_key: String,
}

/// `POST /v1/devices` response (201, or 200 for an idempotent repeat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EnrolDeviceResponse {
    pub device: DeviceInfo,
    /// Tokens bound to the device; use these for push and pull.
    pub tokens: TokenResponse,
    /// The key that signs push receipts.
    pub receipt_key: ServerKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_is_tagged_by_kind() {
        let c = Change::Upsert {
            entity: EntityKind::Case,
            id: "x".into(),
            version: 3,
            data: serde_json::json!({"a": 1}).into(),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "upsert", "entity": "case", "id": "x", "version": 3, "data": {"a": 1}})
        );
        let r: Change =
            serde_json::from_str(r#"{"kind":"remove","entity":"zone","id":"z1"}"#).unwrap();
        assert_eq!(r.entity(), EntityKind::Zone);
        assert_eq!(r.id(), "z1");
    }

    /// What serde's derive accepted before [`Change`] was deserialised by hand.
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum DerivedChange {
        Upsert {
            entity: EntityKind,
            id: String,
            version: i64,
            data: serde_json::Value,
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

    impl From<DerivedChange> for Change {
        fn from(d: DerivedChange) -> Change {
            match d {
                DerivedChange::Upsert {
                    entity,
                    id,
                    version,
                    data,
                } => Change::Upsert {
                    entity,
                    id,
                    version,
                    data: data.into(),
                },
                DerivedChange::Remove { entity, id } => Change::Remove { entity, id },
                DerivedChange::Tombstone { entity, id } => Change::Tombstone { entity, id },
            }
        }
    }

    /// The hand-written deserialiser accepts exactly what the derive did, with the same result:
    /// fields in any order, unknown fields ignored, and refuses what it refused.
    #[test]
    fn changes_deserialise_as_the_derive_did() {
        let cases = [
            r#"{"kind":"upsert","entity":"case","id":"x","version":3,"data":{"a":[1,{"b":null}]}}"#,
            r#"{"data":{"a":1},"version":3,"id":"x","entity":"case","kind":"upsert"}"#,
            r#"{"entity":"asset","kind":"remove","id":"A-1","extra":{"x":[1,2]}}"#,
            r#"{"kind":"tombstone","entity":"round","id":"r","version":9}"#,
            r#"{"kind":"upsert","entity":"zone","id":"z","version":1,"data":null}"#,
            r#"{"kind":"upsert","entity":"zone","id":"z","data":{}}"#,
            r#"{"kind":"upsert","entity":"zone","id":"z","version":1}"#,
            r#"{"kind":"remove","id":"z"}"#,
            r#"{"entity":"zone","id":"z"}"#,
            r#"{"kind":"rename","entity":"zone","id":"z"}"#,
            r#"{"kind":"remove","entity":"planet","id":"z"}"#,
            r#"{"kind":"remove","entity":"zone","id":7}"#,
            r#"{"kind":"upsert","entity":"zone","id":"z","version":"1","data":{}}"#,
            r#"{"kind":"remove","kind":"remove","entity":"zone","id":"z"}"#,
            r#"["remove","zone","z"]"#,
            r#""remove""#,
            r#"{}"#,
        ];
        for text in cases {
            let ours = serde_json::from_str::<Change>(text).ok();
            let derived = serde_json::from_str::<DerivedChange>(text)
                .ok()
                .map(Change::from);
            assert_eq!(ours, derived, "{text}");
        }
        // And a whole page of what the server writes.
        let page = PullResponse {
            protocol: 1,
            server_time: OffsetDateTime::UNIX_EPOCH,
            changes: vec![
                Change::Upsert {
                    entity: EntityKind::Case,
                    id: "c".into(),
                    version: 2,
                    data: serde_json::json!({"description": "a \"quoted\" é", "photos": []}).into(),
                },
                Change::Remove {
                    entity: EntityKind::Zone,
                    id: "z".into(),
                },
                Change::Tombstone {
                    entity: EntityKind::Asset,
                    id: "A".into(),
                },
            ],
            cursor: "c1.x".into(),
            has_more: false,
        };
        let text = serde_json::to_string(&page).unwrap();
        assert_eq!(serde_json::from_str::<PullResponse>(&text).unwrap(), page);
    }

    #[test]
    fn entity_and_role_names_match_serde() {
        for k in EntityKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(EntityKind::parse(k.as_str()), Some(*k));
        }
        for r in Role::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn resend_from_round_trips_through_error_body() {
        let body = ResendFrom { resend_from: 42 }.error_body(ErrorCode::SequenceGap, "gap");
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains(r#""details":{"resend_from":42}"#), "{json}");
        let back: ErrorBody = serde_json::from_str(&json).unwrap();
        assert_eq!(
            ResendFrom::from_error(&back),
            Some(ResendFrom { resend_from: 42 })
        );
        let other = ErrorBody {
            code: ErrorCode::Conflict,
            message: String::new(),
            details: serde_json::json!({"resend_from": 1}),
        };
        assert_eq!(ResendFrom::from_error(&other), None);
    }

    #[test]
    fn protocol_md_lists_every_error_code_with_its_status() {
        let doc = include_str!("../PROTOCOL.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
            assert!(doc.contains(&row), "PROTOCOL.md lacks {row}");
        }
    }

    #[test]
    fn every_wire_type_has_an_openapi_schema() {
        use crate::case::{CaseField, CaseState, Resolution};
        use crate::ops::*;
        use crate::validation::FieldError;

        #[derive(utoipa::OpenApi)]
        #[openapi(components(schemas(
            ErrorBody,
            ErrorCode,
            SignedOperation,
            OperationBody,
            PushRequest,
            PushResponse,
            OpResult,
            OpStatus,
            Receipt,
            ResendFrom,
            PullQuery,
            PullResponse,
            Change,
            EntityKind,
            Role,
            LoginRequest,
            TokenResponse,
            TokenType,
            UserInfo,
            RefreshRequest,
            EnrolDeviceRequest,
            EnrolDeviceResponse,
            DeviceInfo,
            ServerKey,
            ConflictRecord,
            CaseField,
            CaseState,
            Resolution,
            FieldError,
            CaseCreateV1,
            CaseEditV1,
            CaseChanges,
            CaseCommentV1,
            CaseTransitionV1,
            RoundStartV1,
            RoundFinishV1,
            PhotoManifest,
            PhotoRole,
            Location,
            GeoPoint,
            Severity,
            TransitionAction,
            RoundKind
        )))]
        struct Doc;

        let doc = serde_json::to_value(<Doc as utoipa::OpenApi>::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["Receipt"]["properties"]["server_time"]["format"],
            "date-time"
        );
        assert!(
            schemas["Change"]["oneOf"].is_array(),
            "{}",
            schemas["Change"]
        );
        assert!(schemas["CaseChanges"]["properties"]["asset_code"].is_object());
    }

    #[test]
    fn token_type_is_bearer() {
        assert_eq!(serde_json::to_value(TokenType::Bearer).unwrap(), "Bearer");
    }
}
