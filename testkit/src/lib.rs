//! What the integration tests (`tests/`) and the benchmark harness (`bench/`) share.
//!
//! A [`TestApp`] runs the real server in-process on `127.0.0.1:0` against a
//! fresh database (SQLite in a temporary folder, or a new PostgreSQL database), loaded with the
//! demo subdistrict, and drives it over HTTP.
//!
//! PostgreSQL tests need `GRIDLINE_TEST_DATABASE_URL` (a URL of a server where the test user may
//! create databases). Without it they skip with a printed reason, unless
//! `GRIDLINE_REQUIRE_SERVICES=1`, which turns the skip into a failure (CI sets it).

use std::collections::HashMap;
use std::net::SocketAddr;

use gridline_server::config::{BlobBackend, Config, Secret};
use gridline_server::AppState;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

pub use gridline_server;

pub mod faultproxy;
pub mod garage;
pub mod kit;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub fn services_required() -> bool {
    std::env::var("GRIDLINE_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (prints why and returns `None`) or, when services are required, fails.
pub fn skip_or_fail(reason: &str) -> Option<()> {
    if services_required() {
        panic!("GRIDLINE_REQUIRE_SERVICES=1 but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

/// The admin URL of the test PostgreSQL server, if configured.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("GRIDLINE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip_or_fail("GRIDLINE_TEST_DATABASE_URL is not set (a PostgreSQL URL for tests)");
            None
        }
    }
}

/// Creates a fresh PostgreSQL database and returns its URL and name.
pub async fn create_postgres_database(admin_url: &str) -> anyhow::Result<(String, String)> {
    use sqlx::Connection;
    let name = format!("gridline_test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::postgres::PgConnection::connect(admin_url).await?;
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str()).await?;
    conn.close().await?;
    let base = match admin_url.rfind('/') {
        Some(i) if i > "postgres://".len() => &admin_url[..i],
        _ => admin_url,
    };
    let (base, query) = match admin_url.find('?') {
        Some(q) => (&base[..base.len().min(q)], &admin_url[q..]),
        None => (base, ""),
    };
    Ok((format!("{base}/{name}{query}"), name))
}

pub async fn drop_postgres_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(admin_url).await {
        let _ = sqlx::Executor::execute(
            &mut conn,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
        )
        .await;
        let _ = conn.close().await;
    }
}

pub struct TestApp {
    pub db: Db,
    /// The Garage the blob store points at, when built with [`TestAppBuilder::garage`].
    pub garage: Option<garage::Garage>,
    pub addr: SocketAddr,
    pub base: String,
    pub state: AppState,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pg: Option<(String, String)>,
    /// Ids of the demo zones by code (`Z01` …).
    pub zones: HashMap<String, Uuid>,
}

/// How to build a [`TestApp`]: which database, which blob store, and changes to the
/// configuration and to the built state. [`TestAppBuilder::spawn`] starts the server.
///
/// ```no_run
/// # async fn example() {
/// use gridline_testkit::{Db, TestApp};
/// let Some(app) = TestApp::builder()
///     .db(Db::Postgres)
///     .config(|c| c.photos.link_ttl_secs = 1)
///     .spawn()
///     .await
/// else {
///     return; // skipped: no PostgreSQL to test against
/// };
/// # }
/// ```
#[must_use = "a builder does nothing until `spawn`"]
pub struct TestAppBuilder<'a> {
    db: Db,
    garage: bool,
    config: Vec<Change<'a, Config>>,
    state: Vec<Change<'a, AppState>>,
}

/// One change a test makes to the configuration or to the built state.
type Change<'a, T> = Box<dyn FnOnce(&mut T) + 'a>;

impl<'a> TestAppBuilder<'a> {
    /// The database: SQLite (the default) or PostgreSQL.
    pub fn db(mut self, db: Db) -> Self {
        self.db = db;
        self
    }

    /// On PostgreSQL (a new database, dropped with the app).
    pub fn postgres(self) -> Self {
        self.db(Db::Postgres)
    }

    /// Photos in a single-node Garage started for this app (kept in [`TestApp::garage`])
    /// instead of the in-memory store.
    pub fn garage(mut self) -> Self {
        self.garage = true;
        self
    }

    /// Changes the configuration before the state is built (applied in the order given, after
    /// the test defaults and the blob store).
    pub fn config(mut self, change: impl FnOnce(&mut Config) + 'a) -> Self {
        self.config.push(Box::new(change));
        self
    }

    /// Changes the built state before the server starts (e.g. putting the blob store behind a
    /// switch).
    pub fn state(mut self, change: impl FnOnce(&mut AppState) + 'a) -> Self {
        self.state.push(Box::new(change));
        self
    }

    /// Starts the demo server, or `None` (skipped) when a service it needs is missing:
    /// PostgreSQL without `GRIDLINE_TEST_DATABASE_URL`, or Garage not installed.
    pub async fn spawn(self) -> Option<TestApp> {
        let garage = if self.garage {
            Some(garage::Garage::start()?)
        } else {
            None
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let db = self.db;
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.blob.backend = BlobBackend::Memory;
        // The tests read English (the English demo); the language tests ask for Chinese.
        config.site.language = gridline_server::i18n::Lang::En;
        // The tests approve deductions through the API without opening the photos; the rule
        // that an approver must have opened them is tested on its own
        // (`ledger::approval::evidence_seen_before_approval::*`).
        config.deductions.require_photo_views = false;
        // Tests drive many requests fast; the rate-limit test sets its own limit.
        config.limits.requests_per_minute = 0;
        if let Some(g) = &garage {
            g.configure(&mut config);
        }
        let mut pg = None;
        if db == Db::Postgres {
            let admin = postgres_admin_url()?;
            let (url, name) = create_postgres_database(&admin)
                .await
                .expect("create test database");
            config.database_url = Some(Secret::new(url));
            pg = Some((admin, name));
        }
        for change in self.config {
            change(&mut config);
        }
        let mut state = AppState::build(config).await.expect("build state");
        for change in self.state {
            change(&mut state);
        }
        gridline_server::demo::load(&state, gridline_server::demo::DemoSite::English)
            .await
            .expect("demo data");
        let zones = gridline_server::store::reference::zones(&state.db.pool, None)
            .await
            .expect("zones")
            .into_iter()
            .map(|z| (z.code, z.id))
            .collect();
        let mut app = TestApp::serve(db, state, dir, zones).await;
        app.garage = garage;
        app.pg = pg;
        Some(app)
    }
}

impl TestApp {
    /// A demo server to build: SQLite and the in-memory blob store unless told otherwise.
    pub fn builder<'a>() -> TestAppBuilder<'a> {
        TestAppBuilder {
            db: Db::Sqlite,
            garage: false,
            config: Vec::new(),
            state: Vec::new(),
        }
    }

    /// The demo server on `db` with the test defaults; `None` when skipped (see
    /// [`TestAppBuilder::spawn`]).
    pub async fn on(db: Db) -> Option<TestApp> {
        Self::builder().db(db).spawn().await
    }

    /// Another server process on its own port sharing this one's database, data folder, keys
    /// and blob store (when the store is shared: local or S3, not memory). With [`halt`] on the
    /// first, it is the same server restarted.
    ///
    /// [`halt`]: TestApp::halt
    pub async fn spawn_sibling(&self) -> TestApp {
        let config = (*self.state.config).clone();
        let state = AppState::build(config).await.expect("build state");
        let dir = tempfile::tempdir().expect("tempdir");
        TestApp::serve(self.db, state, dir, self.zones.clone()).await
    }

    /// Serves `state` on a free loopback port until [`TestApp::halt`] or [`TestApp::stop`].
    async fn serve(
        db: Db,
        state: AppState,
        dir: tempfile::TempDir,
        zones: HashMap<String, Uuid>,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(gridline_server::run(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        TestApp {
            db,
            garage: None,
            addr,
            base: format!("http://{addr}"),
            state,
            http: reqwest::Client::new(),
            dir,
            shutdown: Some(tx),
            server: Some(server),
            pg: None,
            zones,
        }
    }

    /// Stops serving (as a process would stop) but keeps the database and files for siblings.
    pub async fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub fn zone(&self, code: &str) -> Uuid {
        self.zones[code]
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Logs in a demo user; returns the full token response.
    pub async fn login_full(&self, username: &str) -> Value {
        let (status, body) = self
            .post(
                "/v1/auth/login",
                None,
                &serde_json::json!({"username": username, "password": gridline_server::demo::DEMO_PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body
    }

    /// Logs in a demo user; returns the access token.
    pub async fn login(&self, username: &str) -> String {
        self.login_full(username).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        into_json(req.send().await.expect("request")).await
    }

    /// Every item of a paged listing (`{items, next}`), following `next` through the query
    /// parameter `cursor` (`after` for oldest-first listings, `before` for newest-first ones).
    pub async fn get_pages(&self, path: &str, token: &str, cursor: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let url = match &next {
                Some(n) => format!("{path}{sep}limit=500&{cursor}={n}"),
                None => format!("{path}{sep}limit=500"),
            };
            let (status, body) = self.get(&url, Some(token)).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            items.extend(body["items"].as_array().expect("items").iter().cloned());
            match body["next"].as_str() {
                Some(n) => next = Some(n.to_owned()),
                None => return items,
            }
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, token, body).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, token, body).await
    }

    pub async fn patch(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        self.send(reqwest::Method::PATCH, path, token, body).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        into_json(req.send().await.expect("request")).await
    }

    /// Sends raw bytes with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        into_json(req.send().await.expect("request")).await
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(mut self) {
        self.shutdown_inner().await;
    }

    async fn shutdown_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.state.db.pool.close().await;
        if let Some((admin, name)) = self.pg.take() {
            drop_postgres_database(&admin, &name).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some((admin, name)) = self.pg.take() {
            // Drop runs outside async context: clean up the database on a thread of its own.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_postgres_database(&admin, &name));
                }
            })
            .join();
        }
    }
}

pub async fn into_json(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap_or_default();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

/// Runs each named `async fn(TestApp)` as two tests, `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::TestApp::on($crate::Db::Sqlite).await.expect("sqlite app");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::TestApp::on($crate::Db::Postgres).await else { return };
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// Signs demo user `username` in to the console at `base` (`http://host:port`): a client that
/// does not follow redirects (so that tests see where each answer points) and the session
/// cookie (`name=value`) to send with each request.
pub async fn console_sign_in(
    base: &str,
    username: &str,
) -> anyhow::Result<(reqwest::Client, String)> {
    use anyhow::Context;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let resp = http
        .post(format!("{base}/console/login"))
        .form(&[
            ("username", username),
            ("password", gridline_server::demo::DEMO_PASSWORD),
        ])
        .send()
        .await?;
    anyhow::ensure!(
        resp.status() == StatusCode::SEE_OTHER,
        "{username}'s console sign-in answered {}",
        resp.status()
    );
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("a session cookie")?
        .to_owned();
    Ok((http, cookie))
}

/// A phone driven by hand, operation by operation: for protocol tests that need to send
/// exactly the bytes they mean (gaps, forged signatures, broken chains, replays).
pub struct Phone {
    pub username: String,
    pub device_id: Uuid,
    pub key: ed25519_dalek::SigningKey,
    pub token: String,
    pub seq: u64,
    pub prev: String,
}

impl Phone {
    pub async fn enrol(app: &TestApp, username: &str) -> Phone {
        use base64::Engine;
        let token = app.login(username).await;
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let device_id = Uuid::now_v7();
        let (status, body) = app
            .post(
                "/v1/devices",
                Some(&token),
                &serde_json::json!({
                    "device_id": device_id,
                    "public_key": base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes()),
                    "name": format!("{username}'s test phone"),
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "enrol: {body}");
        Phone {
            username: username.to_owned(),
            device_id,
            key,
            token: body["tokens"]["access_token"]
                .as_str()
                .expect("token")
                .to_owned(),
            seq: 0,
            prev: gridline_sync::signing::GENESIS_HASH.to_owned(),
        }
    }

    /// Signs the next operation in this phone's chain.
    pub fn op(&mut self, op_type: &str, payload: Value) -> gridline_sync::SignedOperation {
        self.op_edited(op_type, payload, |_| {})
    }

    /// Signs the next operation in this phone's chain after `edit` has changed its body (to
    /// reuse an id, say); `seq` and `prev` stay the chain's.
    pub fn op_edited(
        &mut self,
        op_type: &str,
        payload: Value,
        edit: impl FnOnce(&mut gridline_sync::OperationBody),
    ) -> gridline_sync::SignedOperation {
        let mut body = gridline_sync::OperationBody {
            op_id: Uuid::now_v7(),
            device_id: self.device_id,
            seq: self.seq + 1,
            prev: self.prev.clone(),
            op_type: op_type.to_owned(),
            queued_at: time::OffsetDateTime::now_utc(),
            payload,
        };
        edit(&mut body);
        let text = serde_json::to_string(&body).expect("operation body");
        self.sign_text(&text)
    }

    /// Signs `text` exactly as given as the next entry of this phone's queue, whatever it
    /// says (text that is not an operation body included).
    pub fn sign_text(&mut self, text: &str) -> gridline_sync::SignedOperation {
        use base64::Engine;
        use ed25519_dalek::Signer;
        self.seq += 1;
        let sig = self.key.sign(text.as_bytes()).to_bytes();
        self.prev = gridline_sync::signing::op_hash(text);
        gridline_sync::SignedOperation {
            op: text.to_owned(),
            sig: base64::engine::general_purpose::STANDARD.encode(sig),
        }
    }

    pub fn push_body(&self, ops: &[gridline_sync::SignedOperation]) -> Value {
        serde_json::json!({
            "protocol": 1,
            "device_id": self.device_id,
            "device_time": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("time"),
            "operations": ops,
        })
    }

    pub async fn push(
        &self,
        app: &TestApp,
        ops: &[gridline_sync::SignedOperation],
    ) -> (StatusCode, Value) {
        app.post("/v1/sync/push", Some(&self.token), &self.push_body(ops))
            .await
    }

    /// Pulls every page from `cursor`; returns all changes and the last cursor.
    pub async fn pull_all(&self, app: &TestApp, cursor: Option<String>) -> (Vec<Value>, String) {
        let mut cursor = cursor;
        let mut changes = Vec::new();
        for _ in 0..10_000 {
            let mut path = "/v1/sync/pull?protocol=1&limit=200".to_owned();
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = app.get(&path, Some(&self.token)).await;
            assert_eq!(status, StatusCode::OK, "pull: {body}");
            changes.extend(body["changes"].as_array().expect("changes").iter().cloned());
            cursor = Some(body["cursor"].as_str().expect("cursor").to_owned());
            if !body["has_more"].as_bool().expect("has_more") {
                break;
            }
        }
        (changes, cursor.unwrap_or_default())
    }
}

/// A noisy RGB JPEG (noise does not compress: its size grows with the pixel count), the same
/// bytes for the same seed.
pub fn noisy_jpeg(width: u32, height: u32, seed: u64) -> Vec<u8> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, rng.gen()])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .expect("encode a JPEG");
    out
}

/// A `case.create@1` payload for a point inside demo zone `zone` (index 0..8).
pub fn new_case(zone_id: Uuid, zone_index: usize, category: &str) -> (Uuid, Value) {
    let (a, b, c, d) = gridline_server::demo::zone_rect(zone_index);
    let case_id = Uuid::now_v7();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(case_id.as_bytes()))
    };
    (
        case_id,
        serde_json::json!({
            "case_id": case_id,
            "zone_id": zone_id,
            "category_code": category,
            "location": {"lat": (b + d) / 2.0, "lon": (a + c) / 2.0, "accuracy_m": 8.0},
            "description": "overflowing bin",
            "severity": "medium",
            "captured_at": now,
            "photos": [{"sha256": sha, "size": 123456, "captured_at": now, "role": "before"}],
        }),
    )
}

/// An API case view as a pull carries it: API views add the evidence summary, pulls do not.
pub fn without_evidence(mut case: Value) -> Value {
    if let Some(obj) = case.as_object_mut() {
        obj.remove("evidence");
    }
    case
}
