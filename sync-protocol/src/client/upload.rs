//! Photo uploads: the phone's tus 1.0.0 client (`PROTOCOL.md` §10).
//!
//! For each photo declared by an operation the server has acknowledged and not yet verified:
//!
//! 1. create a tus upload (`POST /v1/uploads`, `Upload-Metadata: sha256 <base64 of hex>`), or
//!    reuse the one stored from an earlier run. A photo the server already has verified is
//!    complete at creation and done at once;
//! 2. after any interruption (and when a stored upload is reused) ask where it stands (`HEAD`);
//! 3. `PATCH` the rest in chunks streamed from disk (the file is never read whole), each with
//!    `Upload-Checksum: sha256 <base64>` so that a chunk cut short is dropped by the server;
//!    chunks are sized to about a second of the link's measured rate ([`ChunkSizer`]), so a
//!    lost connection costs little on a slow link and round trips little on a fast one;
//! 4. count the photo as uploaded only when the server says the upload is complete, which it
//!    says only after hashing the whole file itself and validating it.
//!
//! The upload URL and every offset the server confirms are stored, so a restarted client
//! resumes. Transient failures are retried with the client's [`RetryPolicy`](super::RetryPolicy),
//! asking the offset again before each retry; a verdict on the photo (`hash_mismatch`,
//! `unsupported_media`, …: [`ErrorCode::refuses_photo`]) is recorded on the photo and shown by
//! `status`, and the photo is not tried again. Any other refusal is a fault of the request: the
//! round ends with it and the photo stays pending.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::store::PhotoUpload;
use super::{Client, ClientError, HttpTransport, Sleeper, Transport, TransportError};
use crate::error::{ErrorBody, ErrorCode};
use crate::wire::paths;

pub const TUS_VERSION: &str = "1.0.0";
/// The largest `PATCH` by default (on a fast link; [`ChunkSizer`] makes them smaller on a slow
/// one): a phone's photo in one request, which the server verifies from memory and stores once
/// (it does so for whole files of up to a quarter of its receive budget, 8 MiB by default).
pub const DEFAULT_UPLOAD_CHUNK: u64 = 8 * 1024 * 1024;
/// The smallest `PATCH` the client sizes down to on a slow or failing link.
pub const MIN_UPLOAD_CHUNK: u64 = 32 * 1024;
/// A `PATCH` carries about this much of the link's measured rate.
const CHUNK_SECS: f64 = 1.0;
/// Bytes read from disk at a time, when hashing a chunk and when sending it.
const READ_BUF: u64 = 64 * 1024;

/// One chunk of a photo file: `len` bytes from `offset`, and their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadChunk {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
    pub sha256: [u8; 32],
}

impl UploadChunk {
    /// Hashes `len` bytes of the file from `offset`, reading 64 KiB at a time.
    pub async fn read(path: &Path, offset: u64, len: u64) -> std::io::Result<UploadChunk> {
        let mut file = open_at(path, offset).await?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; READ_BUF.min(len.max(1)) as usize];
        let mut left = len;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            file.read_exact(&mut buf[..want]).await?;
            hasher.update(&buf[..want]);
            left -= want as u64;
        }
        Ok(UploadChunk {
            path: path.to_path_buf(),
            offset,
            len,
            sha256: hasher.finalize().into(),
        })
    }

    /// `sha256 <base64>`, the `Upload-Checksum` of this chunk.
    pub fn checksum_header(&self) -> String {
        format!("sha256 {}", STANDARD.encode(self.sha256))
    }

    /// The chunk's bytes, streamed from disk 64 KiB at a time.
    pub fn stream(
        &self,
    ) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
        struct At {
            file: Option<tokio::fs::File>,
            path: PathBuf,
            offset: u64,
            left: u64,
        }
        let start = At {
            file: None,
            path: self.path.clone(),
            offset: self.offset,
            left: self.len,
        };
        futures_util::stream::unfold(start, |mut at| async move {
            if at.left == 0 {
                return None;
            }
            let stop = |e: std::io::Error, at: At| {
                Some((
                    Err(e),
                    At {
                        file: None,
                        left: 0,
                        ..at
                    },
                ))
            };
            let mut file = match at.file.take() {
                Some(f) => f,
                None => match open_at(&at.path, at.offset).await {
                    Ok(f) => f,
                    Err(e) => return stop(e, at),
                },
            };
            let mut buf = vec![0u8; at.left.min(READ_BUF) as usize];
            match file.read(&mut buf).await {
                Ok(0) => stop(
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the photo file got shorter",
                    ),
                    at,
                ),
                Ok(n) => {
                    buf.truncate(n);
                    at.file = Some(file);
                    at.offset += n as u64;
                    at.left -= n as u64;
                    Some((Ok(buf), at))
                }
                Err(e) => stop(e, at),
            }
        })
    }
}

async fn open_at(path: &Path, offset: u64) -> std::io::Result<tokio::fs::File> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(offset)).await?;
    Ok(file)
}

/// A created upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadCreated {
    /// The upload's URL (`Location`), as the server gave it (usually a path).
    pub location: String,
    /// Where it stands: 0, or its length when the server already has the photo verified.
    pub offset: u64,
}

/// What one round of uploads did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Photos the server confirmed verified in this round.
    pub uploaded: u64,
    /// Of those, photos the server already had (complete at creation; no bytes sent).
    pub already_verified: u64,
    /// Of those, uploads continued from an offset the server had kept (after an interruption
    /// or a restart).
    pub resumed: u64,
    /// Photos refused for good in this round (see `status`).
    pub refused: u64,
    /// Photos left for a later round: the server does not know them yet (their operation was
    /// deferred).
    pub waiting: u64,
    /// Bytes of photo data the server confirmed receiving in this round.
    pub bytes_sent: u64,
}

/// Sizes `PATCH`es to the link: about one second (`CHUNK_SECS`) of the rate the last one achieved,
/// between [`MIN_UPLOAD_CHUNK`] and the configured chunk; a failed `PATCH` halves the size.
///
/// A `PATCH` cut off is dropped whole (its `Upload-Checksum` no longer matches), so the bytes a
/// lost connection costs are at most one chunk: on a 1 Mbit/s link a fixed 512 KiB chunk is
/// over 4 s of sending, while a fast link wants big chunks so that round trips do not count.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSizer {
    max: u64,
    next: u64,
}

impl ChunkSizer {
    /// Starts small (two minimum chunks) and grows with the measured rate.
    pub fn new(max: u64) -> Self {
        let max = max.max(1);
        Self {
            max,
            next: (2 * MIN_UPLOAD_CHUNK).min(max),
        }
    }

    /// Bytes for the next `PATCH`.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// A `PATCH` of `bytes` succeeded in `elapsed`.
    pub fn sent(&mut self, bytes: u64, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let target = (bytes as f64 / secs * CHUNK_SECS) as u64;
        self.next = target.clamp(MIN_UPLOAD_CHUNK.min(self.max), self.max);
    }

    /// A `PATCH` failed.
    pub fn failed(&mut self) {
        self.next = (self.next / 2).max(MIN_UPLOAD_CHUNK.min(self.max));
    }
}

/// What to do about a failed upload request.
enum Failure {
    /// Try again after a backoff, asking where the upload stands first.
    Retry(TransportError),
    /// The upload stands elsewhere than we thought (409 `upload_offset_mismatch` with this
    /// offset, or 460 `checksum_mismatch`): ask and continue, no backoff.
    Resync(Option<u64>),
    /// The upload is gone (404) or expired (410): start a new one.
    Restart,
    /// The server refuses the photo for good.
    Refused { code: String, message: String },
    /// Stop this round with the error.
    Fatal(ClientError),
}

fn classify(e: ClientError) -> Failure {
    let ClientError::Transport(e) = e else {
        return Failure::Fatal(e);
    };
    match e {
        e if e.is_transient() => Failure::Retry(e),
        TransportError::Http { status: 404, .. } | TransportError::Http { status: 410, .. } => {
            Failure::Restart
        }
        TransportError::Http {
            status: 409,
            ref body,
        } if body
            .as_ref()
            .is_none_or(|b| b.code == ErrorCode::UploadOffsetMismatch) =>
        {
            Failure::Resync(
                body.as_ref()
                    .and_then(|b| b.details.get("offset"))
                    .and_then(serde_json::Value::as_u64),
            )
        }
        TransportError::Http { status: 460, .. } => Failure::Resync(None),
        // A fault of the request (a bug of this client), not a verdict on the photo: the photo
        // stays pending and the round ends with the error.
        TransportError::Http {
            status,
            body: Some(ref b),
        } if (400..500).contains(&status) && !b.code.refuses_photo() => Failure::Fatal(e.into()),
        TransportError::Http { status, body } if (400..500).contains(&status) => {
            let (code, message) = match body {
                Some(ErrorBody { code, message, .. }) => (code.as_str().to_owned(), message),
                None => (format!("http_{status}"), String::new()),
            };
            Failure::Refused { code, message }
        }
        e => Failure::Fatal(e.into()),
    }
}

impl<T: Transport, S: Sleeper> Client<T, S> {
    /// Uploads every photo of acknowledged operations that the server has not verified yet,
    /// resuming stored uploads. Refusals are recorded on the photo and counted; a transient
    /// failure that outlasts the retry policy (or a session problem) ends the round with an
    /// error, keeping what the server confirmed for the next round.
    pub async fn upload_photos(&self) -> Result<UploadReport, ClientError> {
        self.enrolled_identity().await?;
        let mut report = UploadReport::default();
        let mut sizer = ChunkSizer::new(self.upload_chunk);
        for photo in self.store.photos_to_upload().await? {
            self.upload_photo(&photo, &mut sizer, &mut report).await?;
        }
        Ok(report)
    }

    async fn refuse(
        &self,
        photo: &PhotoUpload,
        code: &str,
        message: &str,
        report: &mut UploadReport,
    ) -> Result<(), ClientError> {
        self.store
            .mark_photo_refused(&photo.sha256, code, message)
            .await?;
        report.refused += 1;
        Ok(())
    }

    async fn upload_photo(
        &self,
        photo: &PhotoUpload,
        sizer: &mut ChunkSizer,
        report: &mut UploadReport,
    ) -> Result<(), ClientError> {
        let sha = photo.sha256.as_str();
        let path = Path::new(&photo.path);
        // The file must still be the one declared; the server checks the hash itself.
        match tokio::fs::metadata(path).await {
            Err(e) => {
                return self
                    .refuse(photo, "file_missing", &e.to_string(), report)
                    .await
            }
            Ok(m) if m.len() != photo.size => {
                let message = format!(
                    "the file has {} bytes; {} were declared",
                    m.len(),
                    photo.size
                );
                return self.refuse(photo, "file_changed", &message, report).await;
            }
            Ok(_) => {}
        }
        let mut location = photo.upload_url.clone();
        // A stored upload may stand further than we recorded: ask before sending.
        let mut ask = location.is_some();
        let mut offset = photo.offset;
        let mut resumed = false;
        // Failed attempts in a row, for the backoff; reset by progress.
        let mut failures = 0u32;
        loop {
            let failure = match location.clone() {
                None => match self
                    .authorised_with(false, |token| {
                        self.transport.upload_create(token, sha, photo.size)
                    })
                    .await
                {
                    Ok(created) if created.offset >= photo.size => {
                        self.store.mark_photo_uploaded(sha).await?;
                        report.uploaded += 1;
                        report.already_verified += 1;
                        return Ok(());
                    }
                    Ok(created) => {
                        self.store
                            .set_photo_upload(sha, Some(&created.location), created.offset)
                            .await?;
                        location = Some(created.location);
                        offset = created.offset;
                        ask = false;
                        continue;
                    }
                    Err(e) => classify(e),
                },
                Some(loc) if ask => {
                    match self
                        .authorised_with(false, |token| self.transport.upload_offset(token, &loc))
                        .await
                    {
                        Ok(at) => {
                            ask = false;
                            resumed |= at > 0;
                            offset = at.min(photo.size);
                            self.store.set_photo_offset(sha, offset).await?;
                            continue;
                        }
                        Err(e) => classify(e),
                    }
                }
                Some(loc) => {
                    // Every byte there but not confirmed verified: an empty PATCH at the end
                    // asks the server to finish (it answers 409 at this offset if it has).
                    let len = (photo.size - offset).min(sizer.next());
                    let chunk = match UploadChunk::read(path, offset, len).await {
                        Ok(c) => c,
                        Err(e) => {
                            return self
                                .refuse(photo, "file_changed", &e.to_string(), report)
                                .await
                        }
                    };
                    let started = std::time::Instant::now();
                    match self
                        .authorised_with(false, |token| {
                            self.transport.upload_patch(token, &loc, &chunk)
                        })
                        .await
                    {
                        Ok(at) => {
                            if at > offset {
                                report.bytes_sent += at - offset;
                                failures = 0;
                                sizer.sent(at - offset, started.elapsed());
                            }
                            offset = at.min(photo.size);
                            if at >= photo.size {
                                break;
                            }
                            self.store.set_photo_offset(sha, offset).await?;
                            continue;
                        }
                        Err(e) => classify(e),
                    }
                }
            };
            match failure {
                Failure::Retry(e) => {
                    sizer.failed();
                    if failures + 1 >= self.policy.max_attempts {
                        return Err(e.into());
                    }
                    let wait = self
                        .policy
                        .delay(failures, e.retry_after(), rand::random::<f64>());
                    self.sleeper.sleep(wait).await;
                    failures += 1;
                    ask = location.is_some();
                }
                Failure::Resync(Some(at)) if at >= photo.size && offset >= photo.size => {
                    // Our empty PATCH at the end was refused because the upload takes no
                    // more: it is complete, so the server verified the photo.
                    break;
                }
                Failure::Resync(_) => {
                    failures += 1;
                    if failures >= self.policy.max_attempts {
                        return Err(ClientError::Photo {
                            path: photo.path.clone(),
                            message: "the upload makes no progress".into(),
                        });
                    }
                    ask = true;
                }
                Failure::Restart => {
                    failures += 1;
                    if failures >= self.policy.max_attempts {
                        return Err(ClientError::Photo {
                            path: photo.path.clone(),
                            message: "the server keeps losing the upload".into(),
                        });
                    }
                    location = None;
                    offset = 0;
                    resumed = false;
                    self.store.set_photo_upload(sha, None, 0).await?;
                }
                Failure::Refused { code, .. }
                    if code == ErrorCode::PhotoNotDeclared.as_str()
                        && photo.op_status.as_deref() == Some("deferred") =>
                {
                    report.waiting += 1;
                    return Ok(());
                }
                Failure::Refused { code, message } => {
                    return self.refuse(photo, &code, &message, report).await;
                }
                Failure::Fatal(e) => return Err(e),
            }
        }
        self.store.mark_photo_uploaded(sha).await?;
        report.uploaded += 1;
        if resumed {
            report.resumed += 1;
        }
        Ok(())
    }
}

// ---- HTTP ---------------------------------------------------------------------------------

fn network(e: reqwest::Error) -> TransportError {
    TransportError::Network(e.to_string())
}

/// An unsuccessful tus response. A 404 or 410 here means the upload is gone, never a pull
/// reset (a `HEAD` answer has no body to tell them apart).
async fn tus_error(response: reqwest::Response) -> TransportError {
    let status = response.status().as_u16();
    match HttpTransport::error_from(response).await {
        TransportError::ResetRequired => TransportError::Http { status, body: None },
        e => e,
    }
}

fn offset_header(response: &reqwest::Response) -> Result<u64, TransportError> {
    response
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| TransportError::BadResponse("no valid Upload-Offset".into()))
}

impl HttpTransport {
    /// The URL of an upload: `location` as is when absolute, else on this server.
    fn upload_url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            self.url(location)
        }
    }

    pub(crate) async fn tus_create(
        &self,
        access_token: String,
        sha256: &str,
        length: u64,
    ) -> Result<UploadCreated, TransportError> {
        let response = self
            .http
            .post(self.url(paths::UPLOADS))
            .bearer_auth(access_token)
            .header("tus-resumable", TUS_VERSION)
            .header("upload-length", length)
            .header(
                "upload-metadata",
                format!("sha256 {}", STANDARD.encode(sha256)),
            )
            .send()
            .await
            .map_err(network)?;
        if !response.status().is_success() {
            return Err(tus_error(response).await);
        }
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| TransportError::BadResponse("no Location".into()))?;
        Ok(UploadCreated {
            location,
            offset: offset_header(&response)?,
        })
    }

    pub(crate) async fn tus_head(
        &self,
        access_token: String,
        location: &str,
    ) -> Result<u64, TransportError> {
        let response = self
            .http
            .head(self.upload_url(location))
            .bearer_auth(access_token)
            .header("tus-resumable", TUS_VERSION)
            .header(reqwest::header::CACHE_CONTROL, "no-store")
            .send()
            .await
            .map_err(network)?;
        if !response.status().is_success() {
            return Err(tus_error(response).await);
        }
        offset_header(&response)
    }

    pub(crate) async fn tus_patch(
        &self,
        access_token: String,
        location: &str,
        chunk: &UploadChunk,
    ) -> Result<u64, TransportError> {
        let response = self
            .http
            .patch(self.upload_url(location))
            .bearer_auth(access_token)
            .header("tus-resumable", TUS_VERSION)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/offset+octet-stream",
            )
            .header("upload-offset", chunk.offset)
            .header("upload-checksum", chunk.checksum_header())
            .header(reqwest::header::CONTENT_LENGTH, chunk.len)
            .body(reqwest::Body::wrap_stream(chunk.stream()))
            .send()
            .await
            .map_err(network)?;
        if !response.status().is_success() {
            return Err(tus_error(response).await);
        }
        offset_header(&response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn chunks_follow_the_link_rate_within_bounds() {
        use std::time::Duration;
        let mut s = ChunkSizer::new(DEFAULT_UPLOAD_CHUNK);
        assert_eq!(s.next(), 2 * MIN_UPLOAD_CHUNK);
        // 1 Mbit/s: 125 kB a second.
        s.sent(
            64 * 1024,
            Duration::from_secs_f64(64.0 * 1024.0 / 125_000.0),
        );
        assert!((124_000..=126_000).contains(&s.next()), "{}", s.next());
        s.failed();
        assert!((62_000..=63_000).contains(&s.next()), "{}", s.next());
        s.failed();
        s.failed();
        assert_eq!(s.next(), MIN_UPLOAD_CHUNK);
        // A fast link: the configured chunk.
        s.sent(100_000, Duration::from_millis(5));
        assert_eq!(s.next(), DEFAULT_UPLOAD_CHUNK);
        // A configured chunk below the minimum is kept as it is.
        let mut tiny = ChunkSizer::new(1000);
        assert_eq!(tiny.next(), 1000);
        tiny.sent(1000, Duration::from_secs(10));
        tiny.failed();
        assert_eq!(tiny.next(), 1000);
    }

    #[tokio::test]
    async fn chunks_are_hashed_and_streamed_from_their_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.bin");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let chunk = UploadChunk::read(&path, 70_000, 100_000).await.unwrap();
        let expected: [u8; 32] = Sha256::digest(&bytes[70_000..170_000]).into();
        assert_eq!(chunk.sha256, expected);
        let pieces: Vec<Vec<u8>> = chunk.stream().map(|p| p.unwrap()).collect::<Vec<_>>().await;
        assert!(pieces.iter().all(|p| p.len() as u64 <= READ_BUF));
        assert_eq!(pieces.concat(), &bytes[70_000..170_000]);
        // Past the end of the file: an error, not a short chunk.
        assert!(UploadChunk::read(&path, 150_000, 100_000).await.is_err());
        let empty = UploadChunk::read(&path, 200_000, 0).await.unwrap();
        assert_eq!(empty.sha256, <[u8; 32]>::from(Sha256::digest(b"")));
    }
}
