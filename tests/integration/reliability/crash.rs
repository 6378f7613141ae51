//! The server killed with SIGKILL at random moments under load from many phones and a
//! supervisor, and restarted. The phones capture cases with real photos, sync and upload them
//! (tus, resuming); the supervisor files synced cases, proposes deductions and approves them,
//! retrying every failure. Afterwards: every operation a phone saw acknowledged is stored
//! exactly once and the device sequences match the phones; every photo whose upload was
//! acknowledged is verified in the database and in the blob store (read directly) with bytes
//! hashing to its name; each approved proposal posted exactly one ledger entry and every
//! acknowledged approval is there; the ledger chain verifies (in the database, through
//! `GET /v1/ledger/verify` and with the real `gridline ledger verify`); and no partial state
//! is visible (cases, uploads, approvals).
//!
//! SQLite runs with the local-disk blob store under the data folder; PostgreSQL with Garage
//! (S3), as in production, when Garage is installed (else the local disk, or a failure when
//! `GRIDLINE_REQUIRE_SERVICES=1`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gridline_server::config::Config;
use gridline_testkit::garage::{self, Garage};
use gridline_testkit::kit::until_listening;
use gridline_testkit::{create_postgres_database, drop_postgres_database, postgres_admin_url};
use rand::{Rng, SeedableRng};
use tokio::process::{Child, Command};
use uuid::Uuid;

use super::supervisor::Supervisor;
use super::{check_exactly_once, check_ledger, check_photos, seed, SimPhone, SyncTally};

const CRASHES: usize = 24;
const PHONES: usize = 8;
/// Operations the phones make at least.
const MIN_OPERATIONS: usize = PHONES * 10;
/// Cases the supervisor takes through filing, proposal and approval.
const DEDUCTIONS: usize = 40;
/// The whole run, crashes and drain included, must end within this.
const BUDGET: Duration = Duration::from_secs(150);

/// `gridline-under-test serve` in its own process, on a fixed port and data folder so a
/// restart finds everything where the killed one left it.
pub(super) struct ServerProcess {
    child: Option<Child>,
    listen: String,
    data_dir: PathBuf,
    database_url: Option<String>,
    /// More `GRIDLINE_*` settings (the blob store).
    env: Vec<(String, String)>,
}

impl ServerProcess {
    pub(super) fn new(
        data_dir: &Path,
        database_url: Option<String>,
        env: Vec<(String, String)>,
    ) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        ServerProcess {
            child: None,
            listen: format!("127.0.0.1:{port}"),
            data_dir: data_dir.to_owned(),
            database_url,
            env,
        }
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Starts the server and waits for its "listening on" line.
    pub(super) async fn start(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridline-under-test"));
        cmd.args(["serve", "--demo", "en"])
            .env_remove("GRIDLINE_CONFIG")
            .env_remove("GRIDLINE_DATABASE_URL")
            .env("GRIDLINE_DATA_DIR", &self.data_dir)
            .env("GRIDLINE_LISTEN", &self.listen)
            .env("GRIDLINE_LIMITS__REQUESTS_PER_MINUTE", "0")
            // One supervisor at the desk proposes and approves: a one-person office. It works
            // through the API alone and never opens a photo (what the crash test checks is
            // that nothing is lost or duplicated, not how carefully the evidence is read).
            .env("GRIDLINE_DEDUCTIONS__FOUR_EYES", "false")
            .env("GRIDLINE_DEDUCTIONS__REQUIRE_PHOTO_VIEWS", "false")
            .env("GRIDLINE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        if let Some(url) = &self.database_url {
            cmd.env("GRIDLINE_DATABASE_URL", url);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("spawn gridline-under-test");
        let stdout = child.stdout.take().expect("stdout");
        let listening = until_listening(stdout, Duration::from_secs(30)).await;
        if !listening {
            let log = std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
            let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
            panic!("the server did not start listening within 30 s\n{tail}");
        }
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown hook, no flush, no drain.
    pub(super) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("kill -9");
            child.wait().await.expect("reap");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_killed_at_random_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    crash_test(dir.path(), None, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_killed_at_random_loses_and_duplicates_nothing() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    // Production runs PostgreSQL with an S3 store: Garage here, when installed.
    let garage = Garage::start();
    let (url, name) = create_postgres_database(&admin)
        .await
        .expect("test database");
    let dir = tempfile::tempdir().expect("tempdir");
    crash_test(dir.path(), Some(url), garage.as_ref()).await;
    drop_postgres_database(&admin, &name).await;
}

/// Runs the real `gridline ledger verify` against the data the server left; returns whether
/// it succeeded and what it printed.
async fn ledger_verify_cli(dir: &Path, db_url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gridline-under-test"))
        .args(["ledger", "verify"])
        .env_remove("GRIDLINE_CONFIG")
        .env("GRIDLINE_DATA_DIR", dir)
        .env("GRIDLINE_DATABASE_URL", db_url)
        .env("GRIDLINE_BLOB__BACKEND", "memory")
        .env("GRIDLINE_LOG", "warn")
        .output()
        .await
        .expect("run gridline ledger verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn crash_test(dir: &Path, database_url: Option<String>, garage: Option<&Garage>) {
    let backend = match (&database_url, garage) {
        (None, _) => "sqlite, local disk",
        (Some(_), None) => "postgres, local disk",
        (Some(_), Some(_)) => "postgres, garage",
    };
    let started = tokio::time::Instant::now();
    let deadline = started + BUDGET;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed(&format!("crash test ({backend})")));
    let mut server = ServerProcess::new(
        dir,
        database_url.clone(),
        garage.map(garage::server_env).unwrap_or_default(),
    );
    server.start().await;
    let url = server.url();

    let db_url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/gridline.db", dir.display()));
    let zones = {
        let db = gridline_server::store::Db::connect(&db_url, 1)
            .await
            .expect("database");
        let zones: Vec<(String, Uuid)> = gridline_server::store::reference::zones(&db.pool, None)
            .await
            .expect("zones")
            .into_iter()
            .map(|z| (z.code, z.id))
            .collect();
        db.close().await;
        zones
    };
    let zone = |i: usize| {
        zones
            .iter()
            .find(|(c, _)| *c == format!("Z0{}", i + 1))
            .expect("zone")
            .1
    };

    // Phones capture cases with photos and sync (push, upload, pull) continuously until told
    // to stop, then drain their queues; the supervisor works on what they synced.
    let stop = Arc::new(AtomicBool::new(false));
    let mut phones = Vec::new();
    for i in 0..PHONES {
        phones.push(
            SimPhone::enrol(
                &url,
                &format!("inspector{}", i + 1),
                zone(i / 2),
                i / 2,
                deadline,
            )
            .await
            .with_photos(),
        );
    }
    // (syncs that succeeded, operations captured), for the crasher to wait on.
    let progress = Arc::new(tokio::sync::watch::Sender::new((0u64, 0u64)));
    // One task drives every phone (the client's store futures are not `Send`).
    let load = futures::future::join_all(phones.into_iter().map(|mut phone| {
        let stop = stop.clone();
        let progress = progress.clone();
        async move {
            let mut tally = SyncTally::default();
            while !stop.load(Ordering::Relaxed) {
                let n = 1 + rand::random::<usize>() % 3;
                phone.capture(n).await;
                let synced = phone.sync().await;
                let ok = u64::from(synced.is_ok());
                tally.record(synced);
                progress.send_modify(|(syncs, ops)| {
                    *syncs += ok;
                    *ops += n as u64;
                });
            }
            (phone, tally)
        }
    }));
    let desk = async {
        let mut supervisor = Supervisor::new(&url, DEDUCTIONS);
        while !stop.load(Ordering::Relaxed) {
            supervisor.round().await;
            // A person at a desk, not a loop: a short pause between rounds.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        supervisor
    };
    let crasher = async {
        let mut crashes = 0;
        let mut seen = progress.subscribe();
        for _ in 0..CRASHES {
            // Let the load run for a random while, and until some phone has synced since the
            // last restart (on a slow machine a restart can take longer than the wait), then
            // pull the plug.
            let synced = seen.borrow_and_update().0;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(50..700))).await;
            tokio::time::timeout_at(deadline, seen.wait_for(|(s, _)| *s > synced))
                .await
                .expect("no phone synced before the deadline")
                .expect("progress");
            server.kill().await;
            crashes += 1;
            server.start().await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "crash test over budget after {crashes} crashes"
            );
        }
        // Enough load for the checks to mean something, however slow the machine.
        tokio::time::timeout_at(
            deadline,
            seen.wait_for(|(_, ops)| *ops >= MIN_OPERATIONS as u64),
        )
        .await
        .expect("too few operations before the deadline")
        .expect("progress");
        stop.store(true, Ordering::Relaxed);
        crashes
    };
    let (phones, mut supervisor, crashes) = tokio::join!(load, desk, crasher);
    let mut expected = Vec::new();
    let mut photos = Vec::new();
    let mut tally = SyncTally::default();
    let mut interrupted = 0;
    let mut server_errors = Vec::new();
    for (phone, t) in phones {
        tally.merge(&t);
        tally.merge(&phone.drain(deadline).await);
        interrupted += phone.network_errors();
        server_errors.extend(phone.server_errors());
        expected.push(phone.expected().await);
        photos.extend(phone.expected_photos().await);
    }
    supervisor.drain(deadline).await;
    let (_, verify) = {
        let token = gridline_testkit::into_json(
            reqwest::Client::new()
                .post(format!("{url}/v1/auth/login"))
                .json(&serde_json::json!({
                    "username": "supervisor1",
                    "password": gridline_server::demo::DEMO_PASSWORD,
                }))
                .send()
                .await
                .expect("login"),
        )
        .await
        .1["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        gridline_testkit::into_json(
            reqwest::Client::new()
                .get(format!("{url}/v1/ledger/verify"))
                .bearer_auth(token)
                .send()
                .await
                .expect("verify"),
        )
        .await
    };
    server.kill().await;

    let db = gridline_server::store::Db::connect(&db_url, 2)
        .await
        .expect("database");
    let checked = check_exactly_once(&db.pool, &expected).await;
    let blobs = {
        let mut config = Config {
            data_dir: dir.to_owned(),
            ..Config::default()
        };
        if let Some(g) = garage {
            g.configure(&mut config);
        }
        gridline_server::blob::open(&config).expect("blob store")
    };
    let photo_check = check_photos(&db.pool, blobs.as_ref(), &photos).await;
    let ledger = check_ledger(&db.pool, &supervisor.approvals).await;
    db.close().await;
    let (cli_ok, cli_out) = ledger_verify_cli(dir, &db_url).await;
    println!(
        "crash test ({backend}): {crashes} crashes survived; {} operations from {} phones \
         checked, {} cases; {} photos uploaded and verified in the store ({} uploads resumed \
         after an interruption, {} upload rows checked); {} approvals acknowledged, {} ledger entries, chain intact; \
         {interrupted} phone requests and {} supervisor requests cut off or refused and \
         retried; syncs: {} ok, {} failed; {:.1} s",
        checked.operations,
        checked.devices,
        checked.cases,
        photo_check.acknowledged,
        tally.uploads_resumed,
        photo_check.uploads,
        ledger.acknowledged,
        ledger.entries,
        supervisor.failed_requests,
        tally.ok,
        tally.failed,
        started.elapsed().as_secs_f64()
    );
    assert!(
        !tally.server_was_behind,
        "the server lost operations it had acknowledged"
    );
    assert!(
        server_errors.is_empty(),
        "phones got 5xx answers other than 503 + Retry-After: {server_errors:?}"
    );
    assert!(
        supervisor.wrong.is_empty(),
        "the supervisor got answers it must not: {:#?}",
        supervisor.wrong
    );
    assert!(crashes >= 20);
    assert!(
        interrupted >= crashes as u64,
        "only {interrupted} requests met a crash: the crashes did not meet the load"
    );
    assert!(checked.operations >= MIN_OPERATIONS, "{checked:?}");
    // Drained: every photo declared was uploaded and acknowledged.
    let unacked: Vec<_> = photos.iter().filter(|p| !p.acknowledged).collect();
    assert!(unacked.is_empty(), "photos never uploaded: {unacked:?}");
    assert!(photo_check.acknowledged >= PHONES * 3, "{photo_check:?}");
    assert_eq!(ledger.acknowledged, DEDUCTIONS, "{ledger:?}");
    assert_eq!(verify["ok"], true, "GET /v1/ledger/verify: {verify}");
    assert_eq!(verify["checked"], ledger.entries, "{verify}");
    assert!(cli_ok, "gridline ledger verify failed: {cli_out}");
    assert!(
        cli_out.contains(&format!("{} entries", ledger.entries)),
        "{cli_out}"
    );
}
