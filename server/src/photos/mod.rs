//! Photo evidence: resumable uploads into the blob store, server-side verification, EXIF
//! metadata, derivatives made by a background worker, short-lived links and integrity flags.
//!
//! Blob layout (one object store, any backend):
//! - `photos/{sha256}`: the original, written once its hash is verified, never altered;
//! - `derivatives/{sha256}/thumb.jpg` and `derivatives/{sha256}/preview.jpg`;
//! - `uploads/{upload id}/{offset:020}-{piece id}`: pieces of an upload in progress.
//!
//! Upload state lives in the database and pieces in the store, so an upload survives a restart
//! and can be resumed through any server process sharing both.

pub mod derive;
pub mod flags;
pub mod inspect;
pub mod link;
pub mod upload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::signer::Signer;
use object_store::ObjectStore;
use tokio::sync::{Notify, Semaphore};

use crate::config::Config;
use crate::evidence::Photo;
use crate::store::{self, now_ms};

/// What the photo operations need: the database, the blob store, the settings and the
/// process-wide machinery. Cheap to clone (every part is shared).
#[derive(Clone)]
pub struct PhotoService {
    pub db: store::Db,
    pub blobs: Arc<dyn ObjectStore>,
    pub config: Arc<Config>,
    pub runtime: Arc<Runtime>,
}

/// Process-wide photo machinery, built with the state.
pub struct Runtime {
    /// Bounds photos held whole at once by verification, reassembled from their pieces
    /// (`photos.max_concurrent_decodes`): memory. (The derivative worker has slots of its own,
    /// as many: it must never hold up verification, see [`in_background`].)
    pub reassembling: Semaphore,
    /// Bytes that receiving upload requests may hold at once (`photos.receive_budget_bytes`):
    /// one permit per byte of a piece buffer, taken before the buffer and returned once the
    /// piece is in the store.
    pub receiving: Semaphore,
    /// Wakes the derivative worker when a photo was just verified here.
    pub verified: Notify,
    /// The sizes of `reassembling` and `receiving`, to tell when they are in use.
    reassemblies: usize,
    receive_budget: usize,
    /// Presigns links when the store is S3.
    pub signer: Option<Arc<dyn Signer>>,
    /// HMAC key of streamed links.
    pub link_key: [u8; 32],
}

impl Runtime {
    /// Whether this process is receiving or verifying photos right now (some of the receive
    /// budget or of the verification places is taken).
    pub fn ingesting(&self) -> bool {
        self.receiving.available_permits() < self.receive_budget
            || self.reassembling.available_permits() < self.reassemblies
    }

    pub fn new(
        config: &crate::config::Config,
        keys: &crate::auth::keys::Keyring,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            reassembling: Semaphore::new(config.photos.max_concurrent_decodes),
            receiving: Semaphore::new(config.photos.receive_budget_bytes),
            reassemblies: config.photos.max_concurrent_decodes,
            receive_budget: config.photos.receive_budget_bytes,
            verified: Notify::new(),
            signer: crate::blob::signer(config)?,
            link_key: link::derive_key(keys),
        })
    }
}

pub fn original_path(sha256: &str) -> Path {
    Path::from(format!("photos/{sha256}"))
}

pub fn derivative_path(sha256: &str, variant: &str) -> Path {
    Path::from(format!("derivatives/{sha256}/{variant}.jpg"))
}

/// `sha256` is 64 lowercase hex digits.
pub fn valid_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The sizes of the photos among `shas` that the server holds (verified), by hash.
pub async fn stored_sizes(
    conn: &mut sqlx::AnyConnection,
    shas: &[String],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    Ok(store::photos::verified_among(conn, shas)
        .await?
        .into_iter()
        .map(|p| (p.sha256, p.size))
        .collect())
}

/// A declaration of a photo the server already holds must give the size it has: the hash
/// names those bytes, and a case that declares them with another size did not take them.
/// `stored` comes from [`stored_sizes`]; the message says which photo disagrees.
pub fn check_declared_sizes(
    stored: &HashMap<String, i64>,
    declared: &[&gridline_sync::ops::PhotoManifest],
) -> Result<(), String> {
    for photo in declared {
        if let Some(size) = stored.get(&photo.sha256) {
            if *size as u64 != photo.size {
                return Err(format!(
                    "photo {} is declared with {} bytes, but the photo with that SHA-256 has {size}",
                    photo.sha256, photo.size
                ));
            }
        }
    }
    Ok(())
}

/// The hashes of the photos a raw operation payload declares (`photos[].sha256`, and a
/// checklist's `responses[].photos[].sha256`), for loading what [`check_declared_sizes`]
/// needs before the operations are applied.
pub fn declared_hashes(payload: &serde_json::Value) -> impl Iterator<Item = String> + '_ {
    let responses = payload
        .get("responses")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten();
    std::iter::once(payload)
        .chain(responses)
        .filter_map(|holder| holder.get("photos")?.as_array())
        .flatten()
        .filter_map(|p| p.get("sha256")?.as_str().map(str::to_owned))
}

/// Computes and stores the EXIF integrity flags of a verified photo for every case declaring it.
pub async fn flag_declaring_cases(svc: &PhotoService, photo: &Photo) -> anyhow::Result<()> {
    let exif = flags::ExifFacts {
        taken_at: photo.exif_taken_at.map(store::ms_from_time),
        lat: photo.exif_lat,
        lon: photo.exif_lon,
    };
    let declarations = store::photos::declarations(&svc.db.pool, &photo.sha256).await?;
    let mut computed = Vec::with_capacity(declarations.len());
    for d in &declarations {
        let zone = store::reference::zone(&svc.db.pool, d.zone_id).await?;
        let boundary = zone.as_ref().map(|z| &z.boundary);
        computed.push((
            d.case_id,
            flags::for_case(&exif, d, boundary, &svc.config.photos),
        ));
    }
    let mut tx = svc.db.begin_write().await?;
    for (case_id, f) in &computed {
        store::photos::store_flags(tx.conn(), *case_id, &photo.sha256, f).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The background work of the photo pipeline; aborted when dropped.
pub struct Background {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts the derivative worker and the expired-upload cleanup.
pub fn spawn_background(svc: PhotoService) -> Background {
    let worker = tokio::spawn(derivative_worker(svc.clone()));
    let cleanup = tokio::spawn(async move {
        let every = Duration::from_secs(svc.config.photos.cleanup_interval_secs.max(1));
        loop {
            if let Err(e) = upload::cleanup_expired(&svc).await {
                tracing::warn!(error = %format!("{e:#}"), "upload cleanup failed");
            }
            tokio::time::sleep(every).await;
        }
    });
    Background {
        tasks: vec![worker, cleanup],
    }
}

/// Makes the derivatives of verified photos, a few at a time (one while photos are being
/// received or verified). It polls the database (so work
/// left by a stopped process, or verified by another process, is found) and is woken early
/// when this process verifies a photo. A failed attempt is retried with growing delays up to
/// `derivative_max_attempts`, then the photo is marked `failed`; a photo whose data does not
/// decode is marked `undecodable` at once (the verdict would not change).
async fn derivative_worker(svc: PhotoService) {
    let poll = Duration::from_secs(svc.config.photos.worker_poll_secs.max(1));
    let max = svc.config.photos.max_concurrent_decodes;
    let slots = Arc::new(Semaphore::new(max));
    loop {
        let wait = tokio::time::timeout(poll, svc.runtime.verified.notified());
        let running = max - slots.available_permits();
        // While photos are coming in, one derivative at a time (and that one at the lowest
        // priority, see `in_background`): memory and CPU go to receiving them first.
        let allowed = if svc.runtime.ingesting() { 1 } else { max };
        let free = allowed.saturating_sub(running) as i64;
        if free > 0 {
            // A lease comfortably longer than one attempt: a crashed attempt is retried after it.
            match store::photos::claim_derivative_work(&svc.db, free, 10 * 60_000).await {
                Ok(claimed) => {
                    for (sha, attempt) in claimed {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let svc = svc.clone();
                        tokio::spawn(async move {
                            make_derivatives(&svc, &sha, attempt).await;
                            drop(permit);
                            // Another claim may now fit.
                            svc.runtime.verified.notify_one();
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "derivative worker cannot claim work"),
            }
        }
        let _ = wait.await;
    }
}

/// Stores both derivatives of a photo (the same bytes whoever makes them: overwriting is harmless).
async fn put_derivatives(
    svc: &PhotoService,
    sha: &str,
    made: derive::Derivatives,
) -> anyhow::Result<()> {
    svc.blobs
        .put(&derivative_path(sha, "thumb"), made.thumb.into())
        .await?;
    svc.blobs
        .put(&derivative_path(sha, "preview"), made.preview.into())
        .await?;
    Ok(())
}

async fn make_derivatives(svc: &PhotoService, sha: &str, attempt: i64) {
    let result = async {
        let original = svc.blobs.get(&original_path(sha)).await?.bytes().await?;
        let config = svc.config.photos.clone();
        // Made while photos are coming in: at the lowest priority, so receiving them comes
        // first (`in_background`).
        let lowly = svc.runtime.ingesting();
        match in_background(lowly, move || derive::make(&original, &config)).await?? {
            Ok(made) => put_derivatives(svc, sha, made).await.map(|()| None),
            Err(rejection) => Ok(Some(rejection)),
        }
    }
    .await;
    let outcome = match result {
        Ok(None) => store::photos::derivatives_ready(&svc.db.pool, sha).await,
        // Decoding gives the same verdict every time: no retry.
        Ok(Some(rejection)) => {
            tracing::warn!(sha256 = sha, code = rejection.code.as_str(), reason = %rejection.message, "photo data cannot be decoded");
            let reason = format!("{}: {}", rejection.code.as_str(), rejection.message);
            store::photos::derivatives_undecodable(&svc.db.pool, sha, &reason).await
        }
        Err(e) => {
            let max = i64::from(svc.config.photos.derivative_max_attempts);
            let retry_at =
                (attempt < max).then(|| now_ms() + 1000 * (1_i64 << attempt.clamp(0, 10)));
            tracing::warn!(sha256 = sha, attempt, error = %format!("{e:#}"), "derivatives failed");
            store::photos::derivatives_failed(&svc.db.pool, sha, &format!("{e:#}"), retry_at).await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(sha256 = sha, error = %e, "cannot record derivative outcome");
    }
}

/// Runs CPU-heavy background work (derivatives). With `lowly`, on one long-lived thread at
/// the lowest CPU priority (nice 19), where such jobs queue one after another: it takes only
/// the CPU that receiving and verifying photos leave over, so a derivative started during a
/// burst of uploads waits for the burst to pass (on an idle CPU it still runs at full speed).
/// Otherwise on the blocking pool at normal priority: only work started while photos are
/// coming in is lowered, so other load on the machine cannot starve derivatives for long.
/// One long-lived thread, not a thread per job: a lowered priority cannot be raised again
/// without privileges, and each new thread may take a malloc arena of its own and keep what it
/// freed (a thread per job grew the server's memory: bench/notes/photos-upload.md).
pub async fn in_background<T: Send + 'static>(
    lowly: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = move || {
        let _ = tx.send(work());
    };
    match lowly.then(lowly_thread).flatten() {
        Some(thread) => thread
            .send(Box::new(job))
            .map_err(|_| anyhow::anyhow!("the low-priority thread is gone"))?,
        None => drop(tokio::task::spawn_blocking(job)),
    }
    rx.await
        .map_err(|_| anyhow::anyhow!("the background work stopped without an answer (a panic)"))
}

type Job = Box<dyn FnOnce() + Send>;

/// The queue of the low-priority thread, started on first use (`None` if it cannot be).
fn lowly_thread() -> Option<&'static std::sync::mpsc::Sender<Job>> {
    static THREAD: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    THREAD
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let started = std::thread::Builder::new()
                .name("gridline-lowly".into())
                .spawn(move || {
                    lower_priority();
                    for job in rx {
                        // A panicking job answers nothing (its sender is dropped); the thread
                        // goes on with the next.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            match started {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the low-priority thread");
                    None
                }
            }
        })
        .as_ref()
}

/// Lowers the calling thread to nice 19. On Linux the nice value belongs to the thread
/// (`setpriority(2)`, "Bugs"), so only this thread is lowered; elsewhere it would lower the
/// whole process, so it is left alone. A failure only means normal priority.
fn lower_priority() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = rustix::process::setpriority_process(None, 19) {
        tracing::debug!(error = %e, "cannot lower a background thread's priority");
    }
}

/// A photo `user` may see: one they uploaded, or one a case in their scope declares (and that
/// is not hidden from them). Anything else is 404, as if it did not exist.
pub async fn visible_photo(
    db: &crate::store::Db,
    user: &crate::access::AuthUser,
    sha256: &str,
) -> crate::error::ApiResult<crate::evidence::Photo> {
    use crate::error::ApiError;
    let photo = crate::store::photos::photo(&db.pool, sha256)
        .await?
        .ok_or_else(|| ApiError::not_found("photo"))?;
    if photo.uploaded_by == user.user_id {
        return Ok(photo);
    }
    let scope = user.scope(db).await?;
    let holders =
        crate::store::photos::rightful_declarations(&db.pool, sha256, user.confidential_reader())
            .await?;
    if !holders.iter().any(|d| scope.contains(d.zone_id)) {
        return Err(ApiError::not_found("photo"));
    }
    Ok(photo)
}

/// Variant `variant` (`original`, `thumb` or `preview`) of a photo `user` may see, to show
/// them: its media type and bytes, the view recorded as the API's links record theirs. 404 for
/// an unknown variant, a photo they may not see, or one not stored (a thumbnail not made yet).
pub async fn open_for_view(
    db: &crate::store::Db,
    blobs: &dyn ObjectStore,
    user: &crate::access::AuthUser,
    sha256: &str,
    variant: &str,
) -> crate::error::ApiResult<(String, object_store::GetResult)> {
    use crate::error::ApiError;
    let path = match variant {
        "original" => original_path(sha256),
        "thumb" | "preview" => derivative_path(sha256, variant),
        _ => return Err(ApiError::not_found("photo")),
    };
    let photo = visible_photo(db, user, sha256).await?;
    let mime = match variant {
        "original" => photo
            .mime
            .unwrap_or_else(|| "application/octet-stream".into()),
        _ => "image/jpeg".into(),
    };
    let object = blobs.get(&path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => ApiError::not_found("photo"),
        e => upload::store_error(e),
    })?;
    store::photos::log_view(&db.pool, user.user_id, sha256, variant).await?;
    Ok((mime, object))
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn lowly_background_work_runs_at_the_lowest_priority_and_leaves_the_caller_alone() {
        use rustix::process::getpriority_process;
        let before = getpriority_process(None).unwrap();
        let nice = |lowly| super::in_background(lowly, || getpriority_process(None).unwrap());
        assert_eq!(nice(true).await.unwrap(), 19);
        assert_eq!(nice(false).await.unwrap(), before);
        assert_eq!(getpriority_process(None).unwrap(), before);
    }

    #[tokio::test]
    async fn a_panic_in_background_work_is_an_error_and_the_next_job_runs() {
        for lowly in [true, false] {
            let out = super::in_background(lowly, || -> u8 { panic!("boom") }).await;
            assert!(out.is_err());
            assert_eq!(super::in_background(lowly, || 7).await.unwrap(), 7);
        }
    }

    #[tokio::test]
    async fn receiving_or_verifying_photos_counts_as_ingesting() {
        let config = crate::config::Config::default();
        let keys = crate::auth::keys::Keyring::ephemeral().unwrap();
        let photos = super::Runtime::new(&config, &keys).unwrap();
        assert!(!photos.ingesting());
        let receiving = photos.receiving.acquire_many(1000).await.unwrap();
        assert!(photos.ingesting());
        drop(receiving);
        let verifying = photos.reassembling.acquire().await.unwrap();
        assert!(photos.ingesting());
        drop(verifying);
        assert!(!photos.ingesting());
    }
}
