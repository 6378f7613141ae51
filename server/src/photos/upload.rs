//! Uploads: request bodies streamed into the blob store piece by piece, then verified and
//! turned into a photo. Shared by the tus endpoints and the one-request `PUT`.
//!
//! Memory per request is bounded by `photos.chunk_bytes`: a body is cut into pieces of at most
//! that size, each written to the store as it fills. Memory of all requests together is bounded
//! by `photos.receive_budget_bytes`: a request takes room for a piece before reading its bytes
//! (waiting while the budget is spent, so the bytes wait in the socket) and gives it back once
//! the piece is stored. Completion (hash, checks) holds one
//! photo in memory, under the `photos.max_concurrent_decodes` semaphore. No pixel is decoded
//! before the upload is answered (`inspect`); the derivative worker decodes each photo once.
//!
//! A body that carries a whole photo (from offset 0 to the end, as a client on a fast link
//! sends it) of at most a quarter of the receive budget is held whole instead (its room taken
//! at once) and verified from memory: its bytes go to the store once, as the original, never as
//! pieces to be read back. Should it be cut short, what arrived is kept as one piece, as any
//! other body.

use axum::body::{Body, HttpBody};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use gridline_sync::validation::MAX_PHOTO_BYTES;
use gridline_sync::ErrorCode;
use object_store::path::Path;
use object_store::{ObjectStore, WriteMultipart};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::SemaphorePermit;
use tokio::time::Instant;

use super::{inspect, original_path, PhotoService};
use crate::access::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::evidence::Photo;
use crate::store::photos::{self as db, Part, Upload};
use crate::store::{new_id, now_ms};

/// S3 multipart uploads need parts of at least 5 MiB (but the last).
const MULTIPART_CHUNK: usize = 5 * 1024 * 1024;

fn pieces_prefix(upload: uuid::Uuid) -> Path {
    Path::from(format!("uploads/{upload}"))
}

/// Starts an upload of the photo `sha256` of `length` bytes. Refused unless a case in the
/// caller's scope declares the hash. When the photo is already verified the upload is born
/// complete: the same bytes are stored once.
pub async fn create(
    svc: &PhotoService,
    user: &AuthUser,
    sha256: &str,
    length: i64,
    metadata: String,
) -> ApiResult<Upload> {
    if !super::valid_sha256(sha256) {
        return Err(ApiError::invalid(
            "sha256",
            "must be 64 lowercase hexadecimal digits",
        ));
    }
    if length <= 0 {
        return Err(ApiError::invalid("Upload-Length", "must be positive"));
    }
    if length as u64 > MAX_PHOTO_BYTES {
        return Err(too_large(MAX_PHOTO_BYTES));
    }
    check_declared(svc, user, sha256).await?;
    let verified = db::photo(&svc.db.pool, sha256)
        .await?
        .is_some_and(|p| p.status == "verified");
    let now = now_ms();
    let upload = Upload {
        id: new_id(),
        sha256: sha256.to_owned(),
        length,
        received: if verified { length } else { 0 },
        state: if verified { "complete" } else { "receiving" }.to_owned(),
        metadata,
        created_by: user.user_id,
        created_at: now,
        expires_at: now + svc.config.photos.upload_expiry_secs as i64 * 1000,
    };
    db::insert_upload(&svc.db.pool, &upload).await?;
    Ok(upload)
}

pub fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ErrorCode::PhotoTooLarge,
        format!("a photo may be at most {max} bytes"),
    )
    .with_details(json!({ "max_bytes": max }))
}

/// Some case the caller may see rightly declares this photo (`db::rightful_declarations`). The
/// same answer whether nobody declared it or only cases outside the caller's scope did:
/// existence must not leak.
pub async fn check_declared(svc: &PhotoService, user: &AuthUser, sha256: &str) -> ApiResult<()> {
    let scope = user.scope(&svc.db).await?;
    let declared =
        db::rightful_declarations(&svc.db.pool, sha256, user.confidential_reader()).await?;
    if declared.iter().any(|d| scope.contains(d.zone_id)) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::PhotoNotDeclared,
            "no case in your scope declares a photo with this SHA-256",
        ))
    }
}

/// The caller's own upload, or 404 (410 once expired).
pub async fn load(svc: &PhotoService, user: &AuthUser, id: uuid::Uuid) -> ApiResult<Upload> {
    let upload = db::upload(&svc.db.pool, id)
        .await?
        .filter(|u| u.created_by == user.user_id)
        .ok_or_else(|| ApiError::not_found("upload"))?;
    if upload.expires_at <= now_ms() {
        return Err(ApiError::new(
            ErrorCode::UploadExpired,
            "this upload expired; start a new one",
        ));
    }
    Ok(upload)
}

/// Appends a request body to `upload`, which must stand at `offset`. Returns the new offset.
///
/// The work runs in a task of its own so that when the client's connection drops (and the
/// handler with it) the bytes that did arrive are still kept and the offset advanced, ready to
/// resume. Receiving stops after `budget`, keeping what came, so a slow link answers before the
/// request timeout and the client resumes from the offset it is told. With `checksum` (the
/// SHA-256 of the body, tus `Upload-Checksum`) the body is kept only if it is whole and matches.
/// When the receive budget has no room for this body's next piece before `budget` runs out,
/// the answer is 503 with `Retry-After` and nothing of this body is kept. A body that carried
/// the whole photo is verified in the same task (see the module's doc).
///
/// An upload that is complete (its photo verified) takes a body at any offset within its
/// length: the body is read and dropped, and the answer is the full length. Stock tus clients
/// ignore an upload born complete and send the file from 0; so they hear "finished" instead of
/// a conflict (and, the body being read, get the answer rather than a broken pipe).
pub async fn append(
    svc: &PhotoService,
    upload: &Upload,
    offset: i64,
    body: Body,
    checksum: Option<Vec<u8>>,
    budget: std::time::Duration,
) -> ApiResult<Appended> {
    if upload.state == "complete" && (0..=upload.length).contains(&offset) {
        drain(body, upload.length - offset, Instant::now() + budget).await?;
        let verified = db::photo(&svc.db.pool, &upload.sha256)
            .await?
            .filter(|p| p.status == "verified");
        return match verified {
            Some(photo) => Ok(Appended {
                at: upload.length,
                verified: Some(photo),
            }),
            None => Err(offset_mismatch(upload.received)),
        };
    }
    if upload.state != "receiving" || offset != upload.received {
        return Err(offset_mismatch(upload.received));
    }
    let task = tokio::spawn(receive(
        svc.clone(),
        upload.clone(),
        body,
        checksum,
        Instant::now() + budget,
    ));
    task.await.map_err(ApiError::internal)?
}

/// Appends `body` at `offset` within half the request timeout (the rest is left for
/// verification) and, when that completes the upload, verifies the photo. Returns the offset
/// reached. A tus PATCH, and a creation that carries a body, come here.
pub async fn append_and_finish(
    svc: &PhotoService,
    upload: &Upload,
    offset: i64,
    body: Body,
    checksum: Option<Vec<u8>>,
) -> ApiResult<i64> {
    let budget = std::time::Duration::from_millis(svc.config.limits.request_timeout_secs * 500);
    let appended = append(svc, upload, offset, body, checksum, budget).await?;
    if appended.at == upload.length && appended.verified.is_none() {
        finish(svc, upload).await?;
    }
    Ok(appended.at)
}

/// A small photo in one request of `length` bytes (at most `photos.max_single_put_bytes`,
/// received within the request timeout) through the same steps as a resumable upload.
/// Returns the photo, and whether it was verified now (`false`: it already was).
pub async fn put_whole(
    svc: &PhotoService,
    user: &AuthUser,
    sha256: &str,
    length: i64,
    body: Body,
) -> ApiResult<(bool, Photo)> {
    let max = svc.config.photos.max_single_put_bytes;
    if length as u64 > max {
        return Err(too_large(max).with_details(json!({
            "max_bytes": max,
            "hint": "use the resumable upload at /v1/uploads"
        })));
    }
    let upload = create(svc, user, sha256, length, String::new()).await?;
    if upload.state == "complete" {
        let photo = db::photo(&svc.db.pool, sha256)
            .await?
            .ok_or_else(|| ApiError::not_found("photo"))?;
        return Ok((false, photo));
    }
    let budget = std::time::Duration::from_secs(svc.config.limits.request_timeout_secs);
    let appended = match append(svc, &upload, 0, body, None, budget).await {
        Ok(appended) => appended,
        Err(e) => {
            discard(svc, &upload).await?;
            return Err(e);
        }
    };
    if appended.at != length {
        discard(svc, &upload).await?;
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "the body is shorter than its Content-Length",
        ));
    }
    let photo = match appended.verified {
        Some(photo) => photo,
        None => finish(svc, &upload).await?,
    };
    Ok((true, photo))
}

/// Reads a body sent to a complete upload and drops it: at most `room` bytes, until `deadline`
/// (then the answer goes out with the rest unread).
async fn drain(body: Body, room: i64, deadline: Instant) -> ApiResult<()> {
    let mut stream = body.into_data_stream();
    let mut seen = 0i64;
    while let Ok(Some(Ok(data))) = tokio::time::timeout_at(deadline, stream.next()).await {
        seen += data.len() as i64;
        if seen > room {
            return Err(past_length());
        }
    }
    Ok(())
}

fn past_length() -> ApiError {
    ApiError::invalid("body", "the body goes past the upload's Upload-Length")
}

/// Where an upload stands after a body.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The new offset.
    pub at: i64,
    /// The body was the whole photo and this is it, verified: nothing is left to [`finish`].
    pub verified: Option<Photo>,
}

pub fn offset_mismatch(at: i64) -> ApiError {
    ApiError::new(
        ErrorCode::UploadOffsetMismatch,
        format!("the upload stands at offset {at}; resume from there"),
    )
    .with_details(json!({ "offset": at }))
}

async fn receive(
    svc: PhotoService,
    upload: Upload,
    body: Body,
    checksum: Option<Vec<u8>>,
    deadline: Instant,
) -> ApiResult<Appended> {
    let from = upload.received;
    // With a `Content-Length` the body's size is known: pieces are no bigger than the body.
    let mut body_left = body.size_hint().exact();
    // A whole photo in one body is one piece, kept in memory (the module's doc).
    let whole_body = from == 0
        && body_left == u64::try_from(upload.length).ok()
        && upload.length as u64 <= whole_body_limit(&svc.config.photos);
    let chunk = if whole_body {
        upload.length as usize
    } else {
        svc.config.photos.chunk_bytes
    };
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    // Permits of the receive budget held for `buf` (its capacity).
    let mut held: Option<SemaphorePermit<'_>> = None;
    let mut pos = from;
    let mut parts: Vec<Part> = Vec::new();
    // The whole photo, when one body brought it all (`whole_body`).
    let mut photo: Option<Bytes> = None;
    let mut hasher = Sha256::new();
    let mut whole = true;
    let read: ApiResult<()> = async {
        loop {
            // Room for the next piece is taken before its bytes are read, so a request waiting
            // for room holds no body bytes: they wait in the socket.
            if buf.capacity() == 0 && body_left != Some(0) && pos < upload.length {
                let size = piece_size(chunk, upload.length - pos, body_left);
                // Out of time waiting for room: 503, and this body is not kept (its offset
                // stays where it was), like any other failure to store it.
                held = Some(budget(&svc, size, deadline).await.ok_or_else(busy)?);
                buf = BytesMut::with_capacity(size);
            }
            let next = match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(next) => next,
                Err(_) => {
                    whole = false;
                    break;
                }
            };
            let data = match next {
                None => break,
                Some(Ok(data)) => data,
                Some(Err(_)) => {
                    // The connection dropped: keep what arrived.
                    whole = false;
                    break;
                }
            };
            if pos + (buf.len() + data.len()) as i64 > upload.length {
                return Err(past_length());
            }
            hasher.update(&data);
            body_left = body_left.map(|n| n.saturating_sub(data.len() as u64));
            // Fill the piece buffer exactly (no doubling growth), hand it to the store when
            // full, and only then start the next: at most one piece per request, and all
            // requests together within the receive budget.
            let mut rest = &data[..];
            while !rest.is_empty() {
                if buf.capacity() == 0 {
                    // A body longer than its Content-Length said, or a frame across pieces.
                    let left = body_left.map(|n| n + rest.len() as u64);
                    let size = piece_size(chunk, upload.length - pos, left);
                    held = Some(budget(&svc, size, deadline).await.ok_or_else(busy)?);
                    buf = BytesMut::with_capacity(size);
                }
                let take = (buf.capacity() - buf.len()).min(rest.len());
                buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buf.len() == buf.capacity() {
                    let piece = std::mem::take(&mut buf).freeze();
                    let len = piece.len() as i64;
                    if whole_body && len == upload.length {
                        // Verified from memory below; its room in the budget stays taken.
                        photo = Some(piece);
                    } else {
                        parts.push(put_piece(&svc, &upload, pos, piece).await?);
                        held = None;
                    }
                    pos += len;
                }
            }
        }
        if !buf.is_empty() {
            let piece = std::mem::take(&mut buf).freeze();
            let len = piece.len() as i64;
            parts.push(put_piece(&svc, &upload, pos, piece).await?);
            pos += len;
        }
        Ok(())
    }
    .await;
    // Held on while the whole photo is in memory.
    let held = held.filter(|_| photo.is_some());
    let discard = |parts: Vec<Part>| {
        let store = svc.blobs.clone();
        async move {
            for p in parts {
                let _ = store.delete(&Path::from(p.object_key)).await;
            }
        }
    };
    if let Err(e) = read {
        discard(parts).await;
        return Err(e);
    }
    let digest = hasher.finalize();
    if let Some(expected) = checksum {
        if !whole || digest.as_slice() != expected.as_slice() {
            discard(parts).await;
            return Err(ApiError::new(
                ErrorCode::ChecksumMismatch,
                "the body does not match its Upload-Checksum (or was cut short); nothing of it was kept",
            ));
        }
    }
    if let Some(photo) = photo {
        // The body was the photo, so its hash is the photo's.
        let verified = finish_whole(&svc, &upload, photo, hex::encode(digest)).await?;
        drop(held);
        // Once this upload holds nothing (see `finish`).
        svc.runtime.verified.notify_one();
        return Ok(Appended {
            at: upload.length,
            verified: Some(verified),
        });
    }
    drop(held);
    if parts.is_empty() {
        return Ok(Appended {
            at: from,
            verified: None,
        });
    }
    let expires_at = now_ms() + svc.config.photos.upload_expiry_secs as i64 * 1000;
    let mut tx = svc.db.begin_write().await?;
    let appended = db::append_parts(tx.conn(), upload.id, from, &parts, expires_at).await?;
    tx.commit().await?;
    if !appended {
        // Another request for this upload got there first.
        discard(parts).await;
        let now_at = db::upload(&svc.db.pool, upload.id)
            .await?
            .map_or(from, |u| u.received);
        return Err(offset_mismatch(now_at));
    }
    Ok(Appended {
        at: pos,
        verified: None,
    })
}

/// The largest photo a single body may bring whole into memory: a quarter of the receive
/// budget, so that a few such bodies fit in it at once.
fn whole_body_limit(config: &crate::config::PhotosConfig) -> u64 {
    (config.receive_budget_bytes / 4) as u64
}

/// The size of the next piece: a chunk, or less when the upload (`upload_left` bytes to go) or
/// the body (`body_left`, when its length is known) ends sooner.
fn piece_size(chunk: usize, upload_left: i64, body_left: Option<u64>) -> usize {
    let upload_left = u64::try_from(upload_left).unwrap_or(0);
    let size = (chunk as u64)
        .min(upload_left)
        .min(body_left.unwrap_or(u64::MAX));
    usize::try_from(size).unwrap_or(chunk).max(1)
}

/// Room for `bytes` in the receive budget, waited for until `deadline`.
async fn budget(
    svc: &PhotoService,
    bytes: usize,
    deadline: Instant,
) -> Option<SemaphorePermit<'_>> {
    let permits = u32::try_from(bytes).ok()?;
    tokio::time::timeout_at(deadline, svc.runtime.receiving.acquire_many(permits))
        .await
        .ok()?
        .ok()
}

/// The answer when the receive budget stays full until a request's receiving time is over.
fn busy() -> ApiError {
    ApiError::unavailable("the server is receiving too many uploads at once; retry later")
}

async fn put_piece(
    svc: &PhotoService,
    upload: &Upload,
    start: i64,
    piece: Bytes,
) -> ApiResult<Part> {
    let key = format!("uploads/{}/{start:020}-{}", upload.id, new_id().simple());
    let length = piece.len() as i64;
    svc.blobs
        .put(&Path::from(key.as_str()), piece.into())
        .await
        .map_err(store_error)?;
    Ok(Part {
        start,
        length,
        object_key: key,
    })
}

pub fn store_error(e: object_store::Error) -> ApiError {
    tracing::warn!(error = %e, "blob store error");
    ApiError::unavailable("the photo store is unavailable; retry later")
}

/// Turns a fully received upload into a verified photo: reads the pieces back while hashing
/// them, checks the hash the server computed equals the declared one, validates the image, and
/// only then writes the original (`photos/{sha256}`) and records the photo. After a mismatch or
/// an invalid image nothing is kept, the upload is gone, and the error says why.
pub async fn finish(svc: &PhotoService, upload: &Upload) -> ApiResult<Photo> {
    if let Some(photo) = already_verified(svc, upload).await? {
        return Ok(photo);
    }
    // One of the `photos.max_concurrent_decodes` places for a photo held whole.
    let permit = svc
        .runtime
        .reassembling
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let parts = db::parts(&svc.db.pool, upload.id).await?;
    let mut expected = 0;
    for p in &parts {
        if p.start != expected {
            return Err(ApiError::internal(format!(
                "upload {} has a gap at {expected}",
                upload.id
            )));
        }
        expected += p.length;
    }
    if expected != upload.length {
        return Err(offset_mismatch(expected));
    }

    // The pieces, a few read at once, into one buffer: nothing is written to the original's
    // key until the bytes hash right and are a valid photo.
    let mut hasher = Sha256::new();
    let mut whole = BytesMut::with_capacity(upload.length as usize);
    let keys: Vec<String> = parts.iter().map(|p| p.object_key.clone()).collect();
    let store = svc.blobs.clone();
    let mut pieces = futures::stream::iter(keys)
        .map(move |key| {
            let store = store.clone();
            async move { read_piece(store.as_ref(), &key).await }
        })
        .buffered(4);
    while let Some(piece) = pieces.next().await {
        let piece = piece.map_err(store_error)?;
        hasher.update(&piece);
        whole.extend_from_slice(&piece);
    }
    drop(pieces);
    let whole = whole.freeze();
    let inspection = check(svc, upload, &whole, hex::encode(hasher.finalize())).await?;
    let photo = keep(svc, upload, whole, inspection).await?;
    drop(permit);
    // Once this upload holds nothing, so that its derivatives are not made as if photos were
    // still coming in (`super::in_background`).
    svc.runtime.verified.notify_one();
    Ok(photo)
}

/// [`finish`] for a photo that one body brought whole, already hashed (`computed`): the same
/// checks, without a decode permit (its bytes are counted in the receive budget, and the
/// checks decode no pixel).
async fn finish_whole(
    svc: &PhotoService,
    upload: &Upload,
    whole: Bytes,
    computed: String,
) -> ApiResult<Photo> {
    if let Some(photo) = already_verified(svc, upload).await? {
        return Ok(photo);
    }
    let inspection = check(svc, upload, &whole, computed).await?;
    keep(svc, upload, whole, inspection).await
}

/// When another upload already verified the photo, this one completes without its bytes.
async fn already_verified(svc: &PhotoService, upload: &Upload) -> ApiResult<Option<Photo>> {
    let Some(photo) = db::photo(&svc.db.pool, &upload.sha256)
        .await?
        .filter(|p| p.status == "verified")
    else {
        return Ok(None);
    };
    complete(svc, upload, None).await?;
    Ok(Some(photo))
}

/// Marks the upload complete, in the same transaction recording `verified` (a photo just
/// checked and stored) when given, then deletes the upload's pieces, if it has any.
async fn complete(svc: &PhotoService, upload: &Upload, verified: Option<&Photo>) -> ApiResult<()> {
    let mut tx = svc.db.begin_write().await?;
    if let Some(photo) = verified {
        db::record_verified(tx.conn(), photo).await?;
    }
    let had_pieces = db::complete_upload(tx.conn(), upload.id).await?;
    if had_pieces {
        db::schedule_cleanup(tx.conn(), upload.id, now_ms()).await?;
    }
    tx.commit().await?;
    if had_pieces {
        delete_pieces(svc, upload.id).await;
    }
    Ok(())
}

/// The bytes of a whole upload, hashed by the server (`computed`), against the declared hash
/// and the image checks. A refusal forgets the upload (and records why for a bad image).
async fn check(
    svc: &PhotoService,
    upload: &Upload,
    whole: &Bytes,
    computed: String,
) -> ApiResult<inspect::Inspection> {
    if computed != upload.sha256 {
        discard(svc, upload).await?;
        return Err(ApiError::new(
            ErrorCode::HashMismatch,
            "the uploaded bytes do not hash to the declared SHA-256; nothing was kept",
        )
        .with_details(json!({ "declared": upload.sha256, "computed": computed })));
    }
    // No pixel is decoded here (`inspect`'s doc): microseconds, so not worth a blocking thread.
    match inspect::inspect(whole, &svc.config.photos) {
        Ok(inspection) => Ok(inspection),
        Err(rejection) => {
            db::record_rejected(
                &svc.db.pool,
                &upload.sha256,
                upload.length,
                rejection.code.as_str(),
                upload.created_by,
            )
            .await?;
            discard(svc, upload).await?;
            Err(ApiError::new(rejection.code, rejection.message))
        }
    }
}

/// Stores a checked photo as the original, records it verified and completes the upload. The
/// caller wakes the derivative worker once it has let go of the photo's memory.
async fn keep(
    svc: &PhotoService,
    upload: &Upload,
    whole: Bytes,
    inspection: inspect::Inspection,
) -> ApiResult<Photo> {
    put_original(svc.blobs.as_ref(), &original_path(&upload.sha256), whole)
        .await
        .map_err(store_error)?;

    let photo = Photo {
        sha256: upload.sha256.clone(),
        status: "verified".into(),
        error_code: None,
        size: upload.length,
        mime: Some(inspection.kind.mime().into()),
        width: inspection.width.map(i64::from),
        height: inspection.height.map(i64::from),
        exif_taken_at: inspection.exif.taken_at.map(crate::store::time_from_ms),
        exif_lat: inspection.exif.lat,
        exif_lon: inspection.exif.lon,
        orientation: inspection.exif.orientation.map(i64::from),
        make: inspection.exif.make,
        model: inspection.exif.model,
        uploaded_by: upload.created_by,
        verified_at: None,
        derivatives: if inspection.kind.decoded() {
            "pending"
        } else {
            "none"
        }
        .into(),
        derivative_attempts: 0,
        derivative_error: None,
    };
    complete(svc, upload, Some(&photo)).await?;
    let stored = db::photo(&svc.db.pool, &upload.sha256)
        .await?
        .ok_or_else(|| ApiError::internal("verified photo vanished"))?;
    if let Err(e) = super::flag_declaring_cases(svc, &stored).await {
        tracing::warn!(error = %format!("{e:#}"), "cannot compute integrity flags");
    }
    Ok(stored)
}

/// Writes a verified original: one `PUT`, or a multipart upload when it is bigger than a part.
async fn put_original(
    store: &dyn ObjectStore,
    target: &Path,
    bytes: Bytes,
) -> object_store::Result<()> {
    if bytes.len() <= MULTIPART_CHUNK {
        store.put(target, bytes.into()).await?;
        return Ok(());
    }
    let mut put =
        WriteMultipart::new_with_chunk_size(store.put_multipart(target).await?, MULTIPART_CHUNK);
    put.put(bytes);
    put.finish().await?;
    Ok(())
}

async fn read_piece(store: &dyn ObjectStore, key: &str) -> object_store::Result<Bytes> {
    store.get(&Path::from(key)).await?.bytes().await
}

/// Forgets an upload: its row and its pieces.
pub async fn discard(svc: &PhotoService, upload: &Upload) -> ApiResult<()> {
    let mut tx = svc.db.begin_write().await?;
    db::delete_upload(tx.conn(), upload.id).await?;
    db::schedule_cleanup(tx.conn(), upload.id, now_ms()).await?;
    tx.commit().await?;
    delete_pieces(svc, upload.id).await;
    Ok(())
}

/// Deletes whatever pieces of the upload the store holds, including any a crashed request
/// wrote without recording, then the record that they were to be deleted. When the store
/// refuses (to list or to delete), the failure is logged and counted in
/// `gridline_upload_cleanup_failures_total`, and the record stays for [`cleanup_expired`] to
/// try again. Returns whether the pieces are gone.
async fn delete_pieces(svc: &PhotoService, upload: uuid::Uuid) -> bool {
    match delete_prefix(svc.blobs.as_ref(), &pieces_prefix(upload)).await {
        Ok(()) => {
            if let Err(e) = db::cleanup_done(&svc.db.pool, upload).await {
                // The pieces are gone; a later run deletes nothing and then the record.
                tracing::warn!(%upload, error = %e, "cannot record an upload's clean-up");
            }
            true
        }
        Err(e) => {
            tracing::warn!(%upload, error = %e, "cannot delete an upload's pieces; will retry");
            metrics::counter!("gridline_upload_cleanup_failures_total").increment(1);
            if let Err(e) = db::cleanup_failed(&svc.db.pool, upload, &e.to_string()).await {
                tracing::warn!(%upload, error = %e, "cannot record an upload's clean-up");
            }
            false
        }
    }
}

/// Deletes every object under `prefix`: listed first, then deleted in bulk where the store can
/// (S3 `DeleteObjects`), not one request per piece.
async fn delete_prefix(store: &dyn ObjectStore, prefix: &Path) -> object_store::Result<()> {
    use futures::TryStreamExt;
    let listed: Vec<Path> = store
        .list(Some(prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await?;
    if listed.is_empty() {
        return Ok(());
    }
    let mut deleted =
        store.delete_stream(futures::stream::iter(listed.into_iter().map(Ok)).boxed());
    while let Some(result) = deleted.next().await {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The upload clean-up job: deletes expired uploads, complete or not, with their pieces, then
/// tries again the piece deletions the store refused before (oldest first, stopping at the
/// first refusal: the store is likely refusing them all). Returns how many uploads expired.
pub async fn cleanup_expired(svc: &PhotoService) -> anyhow::Result<usize> {
    let expired = delete_expired(svc).await?;
    for upload in db::pending_cleanups(&svc.db.pool, 100).await? {
        if !delete_pieces(svc, upload).await {
            break;
        }
    }
    Ok(expired)
}

/// Deletes expired uploads, complete or not, with their pieces. Returns how many.
async fn delete_expired(svc: &PhotoService) -> anyhow::Result<usize> {
    let mut total = 0;
    loop {
        let expired = db::expired_uploads(&svc.db.pool, now_ms(), 100).await?;
        if expired.is_empty() {
            return Ok(total);
        }
        for id in expired {
            if let Some(upload) = db::upload(&svc.db.pool, id).await? {
                discard(svc, &upload)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                total += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_a_chunk_or_what_is_left_of_the_upload_or_the_body() {
        const MIB: usize = 1024 * 1024;
        assert_eq!(piece_size(MIB, 4_000_000, None), MIB);
        assert_eq!(piece_size(MIB, 4_000_000, Some(512 * 1024)), 512 * 1024);
        assert_eq!(piece_size(MIB, 1000, Some(512 * 1024)), 1000);
        assert_eq!(piece_size(MIB, 1000, None), 1000);
        // Never a zero-sized piece, whatever the caller passes.
        assert_eq!(piece_size(MIB, 0, Some(0)), 1);
    }
}
