//! Documents a case came with from outside the patrol: a leader's scanned instruction, a press
//! clipping, a department's transfer letter. PDF only, at most [`MAX_DOCUMENT_BYTES`],
//! content-addressed in the blob store (`documents/{sha256}`) and listed per case
//! (`case_documents`). A document is evidence: an approved deduction binds its SHA-256 into the
//! ledger entry beside the photos' (`ledger::posting`), and a locked case takes no new one.
//! They are read and added by the people who take reports in (hotline operators, supervisors,
//! admins): a letter may carry names the rest of the roster need not see.

use std::sync::Arc;

use bytes::Bytes;
use gridline_sync::ErrorCode;
use object_store::{path::Path, ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::store::intake::{self as store, DocumentRow};
use crate::store::{audit, cases, now_ms, time_from_ms, Db};

/// The largest document taken, bytes.
pub const MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;

/// A document of a case.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DocumentView {
    pub sha256: String,
    pub size: i64,
    /// The name it was sent with.
    pub filename: String,
    /// `application/pdf`.
    pub media_type: String,
    pub added_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub added_at: OffsetDateTime,
}

fn view(d: DocumentRow) -> DocumentView {
    DocumentView {
        sha256: d.sha256,
        size: d.size,
        filename: d.filename,
        media_type: d.media_type,
        added_by: d.added_by,
        added_at: time_from_ms(d.added_at),
    }
}

fn path(sha256: &str) -> Path {
    Path::from(format!("documents/{sha256}"))
}

/// Whether `bytes` are a whole PDF file: the header in the first kilobyte and the end-of-file
/// marker in the last, as PDF readers look for them.
pub fn is_whole_pdf(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    has(head, b"%PDF-") && has(tail, b"%%EOF")
}

/// A name for the file as sent: its last path part, printable, at most 120 characters.
fn clean_name(filename: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let name: String = base.chars().filter(|c| !c.is_control()).take(120).collect();
    if name.is_empty() {
        "document.pdf".into()
    } else {
        name
    }
}

async fn case_for(db: &Db, user: &AuthUser, case_id: Uuid) -> ApiResult<cases::CaseRow> {
    user.require_any(crate::intake::INTAKE_ROLES)?;
    let case = cases::get(&db.pool, case_id)
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    let mut conn = db.pool.acquire().await?;
    user.scope(db)
        .await?
        .check_case_visible(&mut conn, user, case_id, case.zone_id)
        .await?;
    Ok(case)
}

/// Adds a PDF to case `case_id`: checked, stored by its SHA-256 (the same bytes once), listed
/// on the case and audited. The same document again answers the one already there.
pub async fn add(
    db: &Db,
    blobs: &Arc<dyn ObjectStore>,
    user: &AuthUser,
    case_id: Uuid,
    filename: &str,
    bytes: Bytes,
) -> ApiResult<DocumentView> {
    let case = case_for(db, user, case_id).await?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("body", "the document is empty"));
    }
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("a document may be at most {MAX_DOCUMENT_BYTES} bytes"),
        )
        .with_details(json!({ "max_bytes": MAX_DOCUMENT_BYTES })));
    }
    if !is_whole_pdf(&bytes) {
        return Err(ApiError::invalid(
            "body",
            "not a whole PDF file (no %PDF- header or no %%EOF at its end)",
        ));
    }
    if case.locked_at.is_some() {
        return Err(ApiError::new(
            ErrorCode::EvidenceLocked,
            "an approved deduction locked this case's evidence",
        ));
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if let Some(existing) = store::documents_of(&db.pool, case_id)
        .await?
        .into_iter()
        .find(|d| d.sha256 == sha256)
    {
        return Ok(view(existing));
    }
    // The bytes first: a row never names a document that is not stored.
    blobs
        .put(&path(&sha256), PutPayload::from(bytes.clone()))
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("the document store did not take the file: {e}"),
            )
            .retry_after(5)
        })?;
    let row = DocumentRow {
        case_id,
        sha256,
        size: bytes.len() as i64,
        filename: clean_name(filename),
        media_type: "application/pdf".into(),
        added_by: user.user_id,
        added_at: now_ms(),
    };
    let mut tx = db.begin_write().await?;
    // Under the case's lock, so that an approval in flight either sees it or locks first.
    crate::store::review::lock_cases(&mut tx, &[case_id]).await?;
    let locked = cases::get(tx.conn(), case_id)
        .await?
        .is_some_and(|c| c.locked_at.is_some());
    if locked {
        return Err(ApiError::new(
            ErrorCode::EvidenceLocked,
            "an approved deduction locked this case's evidence",
        ));
    }
    store::insert_document(tx.conn(), &row).await?;
    audit::record(
        tx.conn(),
        Some(user.user_id),
        "case.document",
        "case",
        &case_id.to_string(),
        None::<&serde_json::Value>,
        Some(&json!({ "sha256": row.sha256, "size": row.size, "filename": row.filename })),
    )
    .await?;
    tx.commit().await?;
    Ok(view(row))
}

/// The documents of case `case_id`, oldest first.
pub async fn list(db: &Db, user: &AuthUser, case_id: Uuid) -> ApiResult<Vec<DocumentView>> {
    case_for(db, user, case_id).await?;
    Ok(store::documents_of(&db.pool, case_id)
        .await?
        .into_iter()
        .map(view)
        .collect())
}

/// One document of case `case_id` and its bytes.
pub async fn fetch(
    db: &Db,
    blobs: &Arc<dyn ObjectStore>,
    user: &AuthUser,
    case_id: Uuid,
    sha256: &str,
) -> ApiResult<(DocumentView, Bytes)> {
    case_for(db, user, case_id).await?;
    let row = store::documents_of(&db.pool, case_id)
        .await?
        .into_iter()
        .find(|d| d.sha256 == sha256)
        .ok_or_else(|| ApiError::not_found("document"))?;
    let bytes = blobs
        .get(&path(sha256))
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!("the document store did not answer: {e}"),
            )
            .retry_after(5)
        })?
        .bytes()
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.to_string()).retry_after(5))?;
    Ok((view(row), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pdf_needs_its_header_and_its_end() {
        assert!(is_whole_pdf(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n"));
        assert!(
            !is_whole_pdf(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"),
            "cut short"
        );
        assert!(!is_whole_pdf(b"\x89PNG\r\n\x1a\n%%EOF"), "not a PDF");
        assert!(!is_whole_pdf(b""));
    }

    #[test]
    fn names_keep_their_last_part() {
        assert_eq!(clean_name("C:\\scans\\批示.pdf"), "批示.pdf");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("  "), "document.pdf");
    }
}
