//! A simulated phone for the reliability scenarios: the reference client over HTTP with a
//! durable outbox, optionally with real photos to upload, and a tally of what its syncs met.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gridline_sync::client::{
    photo_from_file, Client, ClientError, HttpTransport, LocalPhoto, OutboxState, PhotoState,
    Store, TokioSleeper, TransportError,
};
use gridline_sync::ops::{CaseCommentV1, CaseCreateV1, Operation, PhotoManifest, PhotoRole};
use gridline_sync::OpStatus;
use gridline_testkit::kit::{capture, Call, Watch, Watched};
use rand::Rng;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{quick_retries, ExpectedDevice, ExpectedPhoto, UPLOAD_CHUNK};

/// What the phones' requests met: requests that got no answer (refused, reset, cut), 503 +
/// Retry-After answers, and any other 5xx (which must never come).
#[derive(Default)]
pub struct Counts {
    pub network_errors: Arc<AtomicU64>,
    pub unavailable: Arc<AtomicU64>,
    pub server_errors: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Watch for Counts {
    fn after(&self, _call: Call, error: Option<&TransportError>) {
        match error {
            Some(TransportError::Network(_)) => {
                self.network_errors.fetch_add(1, Ordering::Relaxed);
            }
            Some(TransportError::Busy {
                status: 503,
                retry_after: Some(_),
            }) => {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
            }
            Some(e @ TransportError::Busy { status, .. }) if *status >= 500 => {
                if let Ok(mut errors) = self.server_errors.lock() {
                    errors.push(format!("{e:?}"));
                }
            }
            _ => {}
        }
    }
}

/// [`HttpTransport`] counting what its requests met.
pub type CountingTransport = Watched<Counts>;

/// A phone running the reference client: a durable outbox in its own SQLite file, talking HTTP
/// to `base_url` on a fresh connection per request (so network faults meet every request).
pub struct SimPhone {
    pub username: String,
    pub client: Client<CountingTransport, TokioSleeper>,
    pub(super) zone_id: Uuid,
    pub(super) zone_index: usize,
    pub(super) cases: Vec<Uuid>,
    /// New cases carry a real JPEG file (uploaded by the client's sync) instead of a declared
    /// hash whose bytes never come.
    pub(super) with_photos: bool,
    /// The photo files declared so far: (SHA-256, size).
    pub(super) photos: Vec<(String, u64)>,
    pub(super) dir: tempfile::TempDir,
}

impl SimPhone {
    /// Enrols `username` (a demo inspector of zone `zone_index`), retrying until it works or
    /// `deadline` passes.
    pub async fn enrol(
        base_url: &str,
        username: &str,
        zone_id: Uuid,
        zone_index: usize,
        deadline: tokio::time::Instant,
    ) -> SimPhone {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("phone.db"))
            .await
            .expect("phone store");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let transport = Watched {
            inner: HttpTransport::with_client(base_url, http),
            watch: Counts::default(),
        };
        let client = Client::new(store, transport, TokioSleeper)
            .with_policy(quick_retries())
            .with_upload_chunk(UPLOAD_CHUNK);
        loop {
            match client
                .enrol(
                    base_url,
                    username,
                    gridline_server::demo::DEMO_PASSWORD,
                    "sim phone",
                )
                .await
            {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("{username}: enrol failed ({e}); retrying");
                }
                Err(e) => panic!("{username}: could not enrol before the deadline: {e}"),
            }
        }
        SimPhone {
            username: username.to_owned(),
            client,
            zone_id,
            zone_index,
            cases: Vec::new(),
            with_photos: false,
            photos: Vec::new(),
            dir,
        }
    }

    /// From now on every new case declares a real photo, which `sync` uploads.
    pub fn with_photos(mut self) -> SimPhone {
        self.with_photos = true;
        self
    }

    /// Captures `n` operations offline: new cases, and comments on earlier ones.
    pub async fn capture(&mut self, n: usize) {
        for _ in 0..n {
            let comment = !self.cases.is_empty() && rand::thread_rng().gen_bool(0.4);
            let op = if comment {
                let case_id = self.cases[rand::thread_rng().gen_range(0..self.cases.len())];
                Operation::CaseCommentV1(CaseCommentV1 {
                    case_id,
                    comment_id: Uuid::now_v7(),
                    text: "still there".into(),
                })
            } else {
                let case_id = Uuid::now_v7();
                self.cases.push(case_id);
                let photo = self.with_photos.then(|| self.photo_file(case_id));
                if let Some(p) = &photo {
                    self.photos
                        .push((p.manifest.sha256.clone(), p.manifest.size));
                }
                let op = self.new_case(case_id, photo.as_ref());
                self.client
                    .capture(op, photo.as_slice())
                    .await
                    .expect("capture");
                continue;
            };
            self.client.capture(op, &[]).await.expect("capture");
        }
    }

    /// A photo of the case on the phone's disk: a noisy JPEG of a few chunks, unique per case.
    fn photo_file(&self, case_id: Uuid) -> LocalPhoto {
        let seed = u64::from_le_bytes(case_id.as_bytes()[8..].try_into().expect("8 bytes"));
        let bytes = gridline_testkit::noisy_jpeg(160, 120, seed);
        let path = self.dir.path().join(format!("{case_id}.jpg"));
        std::fs::write(&path, bytes).expect("write photo");
        photo_from_file(&path, PhotoRole::Before, OffsetDateTime::now_utc()).expect("photo")
    }

    fn new_case(&self, case_id: Uuid, photo: Option<&LocalPhoto>) -> Operation {
        use sha2::Digest;
        let now = OffsetDateTime::now_utc();
        let manifest = match photo {
            Some(p) => p.manifest.clone(),
            // A declared photo whose bytes never come.
            None => PhotoManifest {
                sha256: hex::encode(sha2::Sha256::digest(case_id.as_bytes())),
                size: 123_456,
                captured_at: now,
                gps: None,
                role: PhotoRole::Before,
            },
        };
        Operation::CaseCreateV1(CaseCreateV1 {
            case_id,
            captured_at: now,
            photos: vec![manifest],
            ..capture(self.zone_id, self.zone_index, "overflowing bin")
        })
    }

    /// One sync; transport trouble is expected here and only reported.
    pub async fn sync(&self) -> Result<gridline_sync::client::SyncReport, ClientError> {
        self.client.sync().await
    }

    /// Requests that got no answer so far.
    pub fn network_errors(&self) -> u64 {
        self.client
            .transport()
            .watch
            .network_errors
            .load(Ordering::Relaxed)
    }

    /// 5xx answers other than 503 with Retry-After: there must be none.
    pub fn server_errors(&self) -> Vec<String> {
        self.client
            .transport()
            .watch
            .server_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Operations not acknowledged yet, plus photos not confirmed verified yet.
    pub async fn pending(&self) -> u64 {
        let status = self.client.status().await.expect("status");
        status.pending + status.photos.pending
    }

    /// Syncs until nothing is pending (operations and photos), or panics at `deadline`.
    pub async fn drain(&self, deadline: tokio::time::Instant) -> SyncTally {
        let mut tally = SyncTally::default();
        loop {
            tally.record(self.sync().await);
            if tally.last_ok && self.pending().await == 0 {
                return tally;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: queue not drained before the deadline ({} pending): {tally:?}",
                self.username,
                self.pending().await
            );
        }
    }

    /// Every photo this phone declared, and whether the server confirmed it verified. None may
    /// have been refused: they are all valid JPEGs declared by applied cases.
    pub async fn expected_photos(&self) -> Vec<ExpectedPhoto> {
        let mut out = Vec::new();
        for (sha, size) in &self.photos {
            let photo = self
                .client
                .store()
                .photo(sha)
                .await
                .expect("photo")
                .expect("declared photo");
            assert_ne!(
                photo.state,
                PhotoState::Refused,
                "{}: photo {sha} refused: {photo:?}",
                self.username
            );
            out.push(ExpectedPhoto {
                sha256: sha.clone(),
                size: *size,
                acknowledged: photo.state == PhotoState::Uploaded,
            });
        }
        out
    }

    /// What the server must hold for this phone.
    pub async fn expected(&self) -> ExpectedDevice {
        let status = self.client.status().await.expect("status");
        let entries = self.client.store().entries().await.expect("entries");
        for e in &entries {
            assert_eq!(
                e.state,
                OutboxState::Acked,
                "{}: seq {}",
                self.username,
                e.seq
            );
            let result = e.result.as_ref().expect("acked with a result");
            assert_eq!(
                result.effective_status(),
                OpStatus::Applied,
                "{} seq {}: {result:?}",
                self.username,
                e.seq
            );
        }
        ExpectedDevice::from_ops(
            status.device_id,
            entries.iter().map(|e| e.signed.clone()).collect(),
        )
    }
}

/// How a phone's syncs went.
#[derive(Debug, Default, Clone)]
pub struct SyncTally {
    pub ok: u64,
    pub failed: u64,
    pub last_ok: bool,
    /// The server once held fewer operations than the phone had receipts for: an
    /// acknowledged operation was lost. Must never happen.
    pub server_was_behind: bool,
    /// Photo uploads continued from where an interrupted one stopped.
    pub uploads_resumed: u64,
    pub errors: HashMap<String, u64>,
}

impl SyncTally {
    pub fn record(&mut self, r: Result<gridline_sync::client::SyncReport, ClientError>) {
        match r {
            Ok(report) => {
                self.ok += 1;
                self.last_ok = true;
                self.server_was_behind |= report.push.server_was_behind;
                self.uploads_resumed += report.upload.resumed;
            }
            Err(e) => {
                self.failed += 1;
                self.last_ok = false;
                if let ClientError::ServerAhead { .. } = e {
                    panic!("the server claims operations the phone never made: {e}");
                }
                let kind = format!("{e}").chars().take(60).collect::<String>();
                *self.errors.entry(kind).or_default() += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &SyncTally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.server_was_behind |= other.server_was_behind;
        self.uploads_resumed += other.uploads_resumed;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}
