//! The server killed with SIGKILL at random moments under load from many phones, and
//! restarted: every operation a phone saw acknowledged is stored exactly once, the device
//! sequences match the phones, and no partial state is visible.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gridline_tests::{create_postgres_database, drop_postgres_database, postgres_admin_url};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

use super::{check_exactly_once, seed, SimPhone, SyncTally};

const CRASHES: usize = 24;
const PHONES: usize = 8;
/// The whole run, crashes and drain included, must end within this.
const BUDGET: Duration = Duration::from_secs(90);

/// `gridline-under-test serve` in its own process, on a fixed port and data folder so a
/// restart finds everything where the killed one left it.
struct ServerProcess {
    child: Option<Child>,
    listen: String,
    data_dir: PathBuf,
    database_url: Option<String>,
}

impl ServerProcess {
    fn new(data_dir: &Path, database_url: Option<String>) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        ServerProcess {
            child: None,
            listen: format!("127.0.0.1:{port}"),
            data_dir: data_dir.to_owned(),
            database_url,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Starts the server and waits for its "listening on" line.
    async fn start(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gridline-under-test"));
        cmd.args(["serve", "--demo"])
            .env_remove("GRIDLINE_CONFIG")
            .env_remove("GRIDLINE_DATABASE_URL")
            .env("GRIDLINE_DATA_DIR", &self.data_dir)
            .env("GRIDLINE_LISTEN", &self.listen)
            .env("GRIDLINE_LIMITS__REQUESTS_PER_MINUTE", "0")
            .env("GRIDLINE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        if let Some(url) = &self.database_url {
            cmd.env("GRIDLINE_DATABASE_URL", url);
        }
        let mut child = cmd.spawn().expect("spawn gridline-under-test");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("listening on") {
                    return true;
                }
            }
            false
        })
        .await;
        if listening != Ok(true) {
            let log = std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default();
            let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
            panic!("the server did not start: {listening:?}\n{tail}");
        }
        // Keep reading so the pipe never fills; ends when the process dies.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown hook, no flush, no drain.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("kill -9");
            child.wait().await.expect("reap");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_killed_at_random_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    crash_test(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_killed_at_random_loses_and_duplicates_nothing() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let (url, name) = create_postgres_database(&admin)
        .await
        .expect("test database");
    let dir = tempfile::tempdir().expect("tempdir");
    crash_test(dir.path(), Some(url)).await;
    drop_postgres_database(&admin, &name).await;
}

async fn crash_test(dir: &Path, database_url: Option<String>) {
    let backend = if database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let started = tokio::time::Instant::now();
    let deadline = started + BUDGET;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed(&format!("crash test ({backend})")));
    let mut server = ServerProcess::new(dir, database_url.clone());
    server.start().await;

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
        db.pool.close().await;
        zones
    };
    let zone = |i: usize| {
        zones
            .iter()
            .find(|(c, _)| *c == format!("Z0{}", i + 1))
            .expect("zone")
            .1
    };

    // Phones capture and sync continuously until told to stop, then drain their queues.
    let stop = Arc::new(AtomicBool::new(false));
    let mut phones = Vec::new();
    for i in 0..PHONES {
        phones.push(
            SimPhone::enrol(
                &server.url(),
                &format!("inspector{}", i + 1),
                zone(i / 2),
                i / 2,
                deadline,
            )
            .await,
        );
    }
    // One task drives every phone (the client's store futures are not `Send`).
    let load = futures::future::join_all(phones.into_iter().map(|mut phone| {
        let stop = stop.clone();
        async move {
            let mut tally = SyncTally::default();
            while !stop.load(Ordering::Relaxed) {
                phone.capture(1 + rand::random::<usize>() % 3).await;
                tally.record(phone.sync().await);
            }
            (phone, tally)
        }
    }));
    let crasher = async {
        let mut crashes = 0;
        for _ in 0..CRASHES {
            // Let the load run for a random while, then pull the plug.
            tokio::time::sleep(Duration::from_millis(rng.gen_range(50..700))).await;
            server.kill().await;
            crashes += 1;
            server.start().await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "crash test over budget after {crashes} crashes"
            );
        }
        stop.store(true, Ordering::Relaxed);
        crashes
    };
    let (phones, crashes) = tokio::join!(load, crasher);
    let mut expected = Vec::new();
    let mut tally = SyncTally::default();
    let mut interrupted = 0;
    for (phone, t) in phones {
        tally.merge(&t);
        tally.merge(&phone.drain(deadline).await);
        interrupted += phone.network_errors();
        expected.push(phone.expected().await);
    }
    server.kill().await;

    let db = gridline_server::store::Db::connect(&db_url, 2)
        .await
        .expect("database");
    let checked = check_exactly_once(&db.pool, &expected).await;
    db.pool.close().await;
    println!(
        "crash test ({backend}): {crashes} crashes survived; {} operations from {} phones \
         checked, {} cases; {interrupted} requests cut off or refused and retried; syncs: {} ok, \
         {} failed; {:.1} s",
        checked.operations,
        checked.devices,
        checked.cases,
        tally.ok,
        tally.failed,
        started.elapsed().as_secs_f64()
    );
    assert!(
        !tally.server_was_behind,
        "the server lost operations it had acknowledged"
    );
    assert!(crashes >= 20);
    assert!(
        interrupted >= crashes as u64,
        "only {interrupted} requests met a crash: the crashes did not meet the load"
    );
    assert!(checked.operations >= PHONES * 10, "{checked:?}");
}
