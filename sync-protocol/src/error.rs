//! Stable, machine-readable error codes shared by the server and every client.
//!
//! Clients switch on `code`, never on `message`. A code's meaning never changes; new codes may be
//! added, so clients must treat an unknown code by its HTTP status class.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The one error body every endpoint returns: `{"code": "...", "message": "...", "details": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// Human-readable explanation, for logs and people; not for program logic.
    pub message: String,
    /// Structured extra information (field paths, retry hints, …); `null` when there is none.
    #[serde(default)]
    #[schema(value_type = Object, nullable = true)]
    pub details: serde_json::Value,
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($name:literal, $status:literal), )*) => {
        /// Every error code the API can return, with the HTTP status it travels with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order (for documentation and exhaustive tests).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The stable snake_case name sent on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// The HTTP status this code is sent with.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }
        }
    };
}

error_codes! {
    /// The request body or query could not be parsed or failed validation; `details.path` names
    /// the field.
    InvalidRequest = ("invalid_request", 422),
    /// The body is not valid JSON or the content type is wrong.
    MalformedBody = ("malformed_body", 422),
    /// The body is larger than this endpoint accepts.
    PayloadTooLarge = ("payload_too_large", 413),
    /// No such route or resource (or one the caller may not know exists).
    NotFound = ("not_found", 404),
    /// The route exists but not with this HTTP method.
    MethodNotAllowed = ("method_not_allowed", 405),
    /// No credentials, or credentials that are invalid, expired or revoked.
    Unauthenticated = ("unauthenticated", 401),
    /// Wrong user name or password.
    InvalidCredentials = ("invalid_credentials", 401),
    /// The refresh token is unknown, expired, revoked or was already used.
    InvalidRefreshToken = ("invalid_refresh_token", 401),
    /// The device is revoked or not enrolled for this user.
    DeviceRevoked = ("device_revoked", 401),
    /// Authenticated, but the role or the roster does not allow this.
    Forbidden = ("forbidden", 403),
    /// The resource already exists or the write conflicts with the current state.
    Conflict = ("conflict", 409),
    /// A stale write: the base version the client saw is no longer current.
    StaleVersion = ("stale_version", 409),
    /// A state-machine transition that is not allowed from the current state.
    InvalidTransition = ("invalid_transition", 409),
    /// Too many failed logins or requests; see `Retry-After`.
    RateLimited = ("rate_limited", 429),
    /// The client's protocol version is not supported; nothing was acknowledged.
    UnsupportedProtocol = ("unsupported_protocol", 426),
    /// A per-device sequence gap: resend from `details.resend_from`.
    SequenceGap = ("sequence_gap", 409),
    /// The server's sequence for this device is behind the phone's (e.g. restored from backup):
    /// the phone must resend from `details.resend_from`.
    SequenceBehind = ("sequence_behind", 409),
    /// An operation's signature does not verify against the device's enrolled key.
    BadSignature = ("bad_signature", 422),
    /// An operation's previous-hash does not match the hash of the device's previous operation.
    BrokenChain = ("broken_chain", 422),
    /// The operation type or version is unknown to this server.
    UnsupportedOperation = ("unsupported_operation", 422),
    /// A new operation reuses an id that is already taken: its `op_id`, or a `case_id`,
    /// `comment_id` or `round_id` that already names something with other content. Sent as a
    /// `rejected` push result (acknowledged, kept for supervisors); an identical resend of an
    /// applied operation is a `duplicate` instead.
    IdReused = ("id_reused", 409),
    /// The operation refers to data outside the caller's scope.
    OutOfScope = ("out_of_scope", 403),
    /// The pull cursor is unknown or expired: start again with a full snapshot.
    ResetRequired = ("reset_required", 410),
    /// An import file has errors; `details.errors` lists them by row. Nothing was imported.
    ImportFailed = ("import_failed", 422),
    /// A dependency (database, object store) is unavailable; retry after `Retry-After`.
    Unavailable = ("unavailable", 503),
    /// An unexpected server error; the message says nothing internal.
    Internal = ("internal", 500),
    /// An approved deduction locks this case: its classification and evidence can no longer be
    /// edited (a correction goes through a ledger reversal, not an edit).
    EvidenceLocked = ("evidence_locked", 409),
    /// The case the operation refers to does not exist (or is not visible to the caller).
    CaseNotFound = ("case_not_found", 404),
    /// The case is in a final state (closed, withdrawn, not filed, duplicate) and takes no edits.
    CaseClosed = ("case_closed", 409),
    /// The uploaded bytes do not hash to the SHA-256 they were declared with; nothing was kept.
    HashMismatch = ("hash_mismatch", 422),
    /// Not a photo type the server accepts (JPEG, PNG, WebP, HEIC), judged by its bytes.
    UnsupportedMedia = ("unsupported_media", 415),
    /// The photo file is larger than the server accepts (`details.max_bytes`).
    PhotoTooLarge = ("photo_too_large", 413),
    /// The image has more pixels than the server decodes (`details.max_megapixels`); a
    /// decompression bomb ends here.
    ImageTooLarge = ("image_too_large", 422),
    /// The image ends before its data does (an interrupted copy or upload).
    TruncatedImage = ("truncated_image", 422),
    /// The image data is damaged and cannot be decoded.
    CorruptImage = ("corrupt_image", 422),
    /// No case in the caller's scope declares a photo with this SHA-256.
    PhotoNotDeclared = ("photo_not_declared", 403),
    /// The `Upload-Offset` of a tus request is not where the upload stands; `HEAD` it and resume.
    UploadOffsetMismatch = ("upload_offset_mismatch", 409),
    /// The `Upload-Checksum` of a tus request does not match its body; nothing of it was kept.
    ChecksumMismatch = ("checksum_mismatch", 460),
    /// The partial upload expired and was (or will be) deleted: start a new one.
    UploadExpired = ("upload_expired", 410),
    /// The request's `Tus-Resumable` version is not 1.0.0.
    UnsupportedTusVersion = ("unsupported_tus_version", 412),
    /// The request's `Content-Type` is not the one the endpoint takes (a tus `PATCH` needs
    /// `application/offset+octet-stream`). A fault of the request, not a verdict on the photo.
    UnsupportedContentType = ("unsupported_content_type", 415),
    /// The tus `Upload-Checksum` names an algorithm the server does not support
    /// (`details.supported` lists those it does). A fault of the request, not of the photo.
    UnsupportedChecksumAlgorithm = ("unsupported_checksum_algorithm", 400),
    /// A photo link whose signature does not verify or whose time is over.
    LinkExpired = ("link_expired", 403),
    /// A deduction needs complete evidence: at least one photo, every declared photo received
    /// and verified.
    EvidenceIncomplete = ("evidence_incomplete", 409),
    /// The assessment period is closed: it takes no new ledger entries (a correction posts in
    /// the open period).
    PeriodClosed = ("period_closed", 409),
    /// A deduction proposal with this client-made `proposal_id` exists with different content:
    /// a resend must repeat the first request exactly (a new proposal takes a new id).
    ProposalIdReused = ("proposal_id_reused", 409),
    /// The case already has a pending deduction proposal (`details.proposal_id`): decide that
    /// one first.
    ProposalPending = ("proposal_pending", 409),
    /// The case already has an approved deduction that has not been reversed
    /// (`details.proposal_id`); a correction reverses that entry first.
    CaseAlreadyDeducted = ("case_already_deducted", 409),
    /// A deduction needs a filed case: this one is still `reported`, or was decided not filed,
    /// a duplicate or withdrawn (`details.state`; `details.evidence_complete` and
    /// `details.photos` say where its evidence stands, so that nothing else is learnt later).
    CaseNotFiled = ("case_not_filed", 409),
    /// A case from a hotline call, a public report or a transfer costs points only after an
    /// inspector's on-site visit found the problem, with a photo (`case.verify@1`).
    CaseNotVerified = ("case_not_verified", 409),
    /// Four eyes: the caller proposed this deduction, so someone else must approve it
    /// (`details.proposed_by`).
    SelfApproval = ("self_approval", 403),
    /// The period has not ended yet (`details.ends_at`): only an admin closes it early.
    PeriodNotEnded = ("period_not_ended", 409),
    /// The period still has pending deduction proposals (`details.proposals`): decide them
    /// before closing it, or in the close itself.
    PeriodProposalsPending = ("period_proposals_pending", 409),
    /// The approver has not opened every evidence photo of the deduction (its original or
    /// preview; `details.unviewed` lists their hashes): a decision on points is taken on
    /// evidence seen, not on a thumbnail. A site setting (`deductions.require_photo_views`).
    EvidenceNotViewed = ("evidence_not_viewed", 409),
    /// The notice a read receipt (`notice.read@1`) names is not in the caller's inbox: someone
    /// else's, or none at all.
    NoticeNotFound = ("notice_not_found", 404),
}

impl ErrorCode {
    /// A verdict on a photo itself: sending the same photo again cannot succeed, so a phone
    /// records it on the photo and stops trying. Any other error of an upload request is about
    /// the request or the moment, never about the photo.
    pub fn refuses_photo(self) -> bool {
        matches!(
            self,
            ErrorCode::HashMismatch
                | ErrorCode::UnsupportedMedia
                | ErrorCode::PhotoTooLarge
                | ErrorCode::ImageTooLarge
                | ErrorCode::TruncatedImage
                | ErrorCode::CorruptImage
                | ErrorCode::PhotoNotDeclared
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            let back: ErrorCode = serde_json::from_value(json).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn only_verdicts_on_a_photo_refuse_it() {
        assert!(ErrorCode::UnsupportedMedia.refuses_photo());
        assert!(ErrorCode::HashMismatch.refuses_photo());
        for request_fault in [
            ErrorCode::UnsupportedContentType,
            ErrorCode::UnsupportedChecksumAlgorithm,
            ErrorCode::InvalidRequest,
            ErrorCode::UnsupportedTusVersion,
        ] {
            assert!(!request_fault.refuses_photo(), "{request_fault}");
        }
    }

    #[test]
    fn statuses_are_errors() {
        for code in ErrorCode::ALL {
            assert!((400..600).contains(&code.http_status()), "{code}");
        }
    }
}
