//! `gridline-field` uploads the photos of the cases it queued, and resumes when the connection
//! drops: the reference client against the real server, through a TCP proxy that cuts the
//! connection part-way through a photo.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use gridline_sync::client::{
    photo_from_file, Client, HttpTransport, PhotoState, RecordingSleeper, RetryPolicy, Store,
};
use gridline_sync::ops::{CaseCreateV1, Operation, PhotoRole};
use gridline_testkit::kit::capture;
use gridline_testkit::{noisy_jpeg as jpeg, on_both_backends, TestApp};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

on_both_backends!(a_queued_case_s_photos_upload_and_resume_after_cuts_and_a_restart);

/// Client chunk size: several chunks per photo.
const CHUNK: u64 = 64 * 1024;

/// A TCP proxy in front of the server that can cut every connection once a number of bytes has
/// gone from the phone to the server, as a phone losing signal mid-upload.
struct Proxy {
    base: String,
    /// Phone-to-server bytes left before the cut; negative: no limit.
    budget: Arc<AtomicI64>,
    /// After the cut, refuse connections (no signal) instead of serving them again.
    stay_down: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let budget = Arc::new(AtomicI64::new(-1));
        let stay_down = Arc::new(AtomicBool::new(false));
        let down = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let proxy = Proxy {
            base,
            budget: budget.clone(),
            stay_down: stay_down.clone(),
            down: down.clone(),
            cuts: cuts.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((phone, _)) = listener.accept().await else {
                    return;
                };
                if down.load(Ordering::SeqCst) {
                    drop(phone);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (phone_read, phone_write) = phone.into_split();
                let (server_read, server_write) = server.into_split();
                let up = Counted {
                    budget: Some(budget.clone()),
                    stay_down: stay_down.clone(),
                    down: down.clone(),
                    cuts: cuts.clone(),
                };
                let back = Counted {
                    budget: None,
                    ..up.clone()
                };
                tokio::spawn(up.pipe(phone_read, server_write));
                tokio::spawn(back.pipe(server_read, phone_write));
            }
        });
        proxy
    }

    /// Cuts every connection once `bytes` more have gone towards the server.
    fn cut_after(&self, bytes: i64, stay_down: bool) {
        self.stay_down.store(stay_down, Ordering::SeqCst);
        self.down.store(false, Ordering::SeqCst);
        self.budget.store(bytes, Ordering::SeqCst);
    }

    fn heal(&self) {
        self.down.store(false, Ordering::SeqCst);
        self.budget.store(-1, Ordering::SeqCst);
    }

    fn cut_count(&self) -> u64 {
        *self.cuts.borrow()
    }
}

#[derive(Clone)]
struct Counted {
    /// Counts against the budget (the phone-to-server direction only).
    budget: Option<Arc<AtomicI64>>,
    stay_down: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
}

impl Counted {
    async fn pipe(
        self,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
    ) {
        let mut cut = self.cuts.subscribe();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = tokio::select! {
                _ = cut.changed() => return,
                read = from.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
            };
            let mut send = n;
            let mut cutting = false;
            if let Some(budget) = &self.budget {
                let left = budget.load(Ordering::SeqCst);
                if left >= 0 {
                    send = n.min(left as usize);
                    budget.store(left - send as i64, Ordering::SeqCst);
                    cutting = send < n || left - send as i64 == 0;
                }
            }
            if to.write_all(&buf[..send]).await.is_err() {
                return;
            }
            if cutting {
                // Signal lost: every connection drops at once.
                if let Some(budget) = &self.budget {
                    budget.store(-1, Ordering::SeqCst);
                }
                if self.stay_down.load(Ordering::SeqCst) {
                    self.down.store(true, Ordering::SeqCst);
                }
                self.cuts.send_modify(|c| *c += 1);
                return;
            }
        }
    }
}

async fn a_queued_case_s_photos_upload_and_resume_after_cuts_and_a_restart(app: TestApp) {
    let proxy = Proxy::start(app.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let first = jpeg(800, 600, seed);
    let second = jpeg(640, 480, seed.wrapping_add(1));
    assert!(first.len() as u64 > 3 * CHUNK && second.len() as u64 > 2 * CHUNK);
    let (first_path, second_path) = (
        dir.path().join("before-1.jpg"),
        dir.path().join("before-2.jpg"),
    );
    std::fs::write(&first_path, &first).unwrap();
    std::fs::write(&second_path, &second).unwrap();
    let db = dir.path().join("field.db");

    let open = |sleeper: Arc<RecordingSleeper>, attempts: u32| {
        let db = db.clone();
        let base = proxy.base.clone();
        async move {
            Client::new(
                Store::open(&db).await.unwrap(),
                HttpTransport::new(&base).unwrap(),
                sleeper,
            )
            .with_policy(RetryPolicy {
                max_attempts: attempts,
                ..RetryPolicy::default()
            })
            .with_upload_chunk(CHUNK)
        }
    };

    // Offline: a case with two photos is captured and queued.
    let client = open(Arc::new(RecordingSleeper::default()), 3).await;
    client
        .enrol(
            &proxy.base,
            "inspector1",
            gridline_server::demo::DEMO_PASSWORD,
            "field phone",
        )
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let photos = vec![
        photo_from_file(&first_path, PhotoRole::Before, now).unwrap(),
        photo_from_file(&second_path, PhotoRole::Before, now).unwrap(),
    ];
    let case = CaseCreateV1 {
        captured_at: now,
        photos: photos.iter().map(|p| p.manifest.clone()).collect(),
        ..capture(app.zone("Z01"), 0, "broken cover")
    };
    let case_id = case.case_id;
    client
        .capture(Operation::CaseCreateV1(case), &photos)
        .await
        .unwrap();
    let (sha1, sha2) = (
        photos[0].manifest.sha256.clone(),
        photos[1].manifest.sha256.clone(),
    );

    // Back in coverage: the push goes through, then the signal dies half-way through the first
    // photo and does not come back. The round gives up; the upload is kept.
    let push = client.push().await.unwrap();
    assert_eq!(push.acked, 1);
    proxy.cut_after(first.len() as i64 / 2, true);
    let err = client.upload_photos().await.unwrap_err();
    assert!(
        matches!(
            err,
            gridline_sync::client::ClientError::Transport(
                gridline_sync::client::TransportError::Network(_)
            )
        ),
        "{err}"
    );
    assert_eq!(proxy.cut_count(), 1);
    let kept = client.store().photo(&sha1).await.unwrap().unwrap();
    assert_eq!(kept.state, PhotoState::Pending);
    assert!(kept.upload_url.is_some(), "the upload URL is stored");
    assert!(
        kept.offset >= CHUNK && kept.offset < first.len() as u64,
        "confirmed offset {} of {}",
        kept.offset,
        first.len()
    );
    let token = app.login("inspector1").await;
    let (_, case) = app.get(&format!("/v1/cases/{case_id}"), Some(&token)).await;
    assert_eq!(case["evidence"]["complete"], false, "{case}");

    // The app is restarted (a new client on the same store). The signal is weak: it drops once
    // more, part-way through the rest; that round resumes by itself and finishes both photos.
    client.store().close().await;
    drop(client);
    proxy.heal();
    let sleeper = Arc::new(RecordingSleeper::default());
    let client = open(sleeper.clone(), 5).await;
    proxy.cut_after(CHUNK as i64 * 3 / 2, false);
    let report = client.sync().await.unwrap();
    assert_eq!(proxy.cut_count(), 2, "the second cut happened");
    assert_eq!(report.upload.uploaded, 2, "{report:?}");
    assert_eq!(report.upload.refused, 0);
    assert!(report.upload.resumed >= 1, "{report:?}");
    assert!(
        report.upload.bytes_sent < (first.len() + second.len()) as u64,
        "the confirmed part of the first photo was not sent again: {report:?}"
    );
    assert!(
        !sleeper.waits().is_empty(),
        "the cut was retried after a backoff"
    );

    // The server verified both photos itself: the case's evidence is complete.
    let (status, case) = app.get(&format!("/v1/cases/{case_id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{case}");
    assert_eq!(case["evidence"]["complete"], true, "{case}");
    let evidence = case["evidence"]["photos"].as_array().unwrap();
    assert_eq!(evidence.len(), 2);
    assert!(evidence.iter().all(|p| p["verified"] == true), "{case}");
    for (sha, bytes) in [(&sha1, &first), (&sha2, &second)] {
        let (status, photo) = app.get(&format!("/v1/photos/{sha}"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{photo}");
        assert_eq!(photo["status"], "verified");
        assert_eq!(photo["size"], bytes.len());
    }
    let status = client.status().await.unwrap();
    assert_eq!((status.photos.uploaded, status.photos.pending), (2, 0));

    // Nothing left: the next sync uploads nothing.
    let again = client.sync().await.unwrap();
    assert_eq!(again.upload, Default::default());
    client.store().close().await;
    app.stop().await;
}
