//! Fixtures shared by several specifications (review, ledger, photos, reliability).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gridline_testkit::{new_case, Phone, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

/// Marks every photo declared on `case_id` as received and verified, as the photos upload
/// path does once the bytes have arrived and hash correctly.
pub async fn verify_evidence(app: &TestApp, case_id: Uuid) {
    let hashes: Vec<String> = sqlx::query_scalar(
        "SELECT sha256 FROM case_photos WHERE case_id = $1 AND sha256 NOT IN (SELECT sha256 FROM photos)",
    )
    .bind(case_id.to_string())
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    for sha in hashes {
        sqlx::query(
            "INSERT INTO photos (sha256, status, size, uploaded_by, verified_at, derivatives, \
             derivative_attempts, created_at) VALUES ($1, 'verified', $2, $3, $4, 'ready', $5, $4)",
        )
        .bind(sha)
        .bind(123_456_i64)
        // Uploaded by nobody in particular (a well-formed id that names no user).
        .bind(uuid::Uuid::nil().to_string())
        // Verified now, after the case declared it (as an upload would be).
        .bind(gridline_server::store::now_ms())
        .bind(0_i64)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    }
}

/// An inspector's phone that has captured one case in Z01 with a photo and synced it.
pub async fn synced_case(app: &TestApp) -> (Phone, Uuid) {
    let mut phone = Phone::enrol(app, "inspector1").await;
    let (case_id, payload) = new_case(app.zone("Z01"), 0, "event:0102");
    let op = phone.op("case.create@1", payload);
    let (status, body) = phone.push(app, &[op]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "applied", "{body}");
    (phone, case_id)
}

pub async fn case(app: &TestApp, token: &str, id: Uuid) -> Value {
    let (status, body) = app.get(&format!("/v1/cases/{id}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Asks for a transition at the case's current version.
pub async fn transition(
    app: &TestApp,
    token: &str,
    id: Uuid,
    mut body: Value,
) -> (StatusCode, Value) {
    let version = case(app, &app.login("admin").await, id).await["version"].clone();
    body["base_version"] = version;
    app.post(&format!("/v1/cases/{id}/transitions"), Some(token), &body)
        .await
}

pub async fn must_transition(app: &TestApp, token: &str, id: Uuid, body: Value) -> Value {
    let (status, out) = transition(app, token, id, body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out
}

/// A case filed by supervisor1, its evidence verified.
pub async fn filed_case(app: &TestApp) -> (Phone, Uuid) {
    let (phone, id) = synced_case(app).await;
    verify_evidence(app, id).await;
    let sup = app.login("supervisor1").await;
    must_transition(app, &sup, id, json!({"action": "file"})).await;
    (phone, id)
}

/// Proposes the exposed-garbage deduction on a case; returns the proposal.
pub async fn propose_on_case(app: &TestApp, token: &str, id: Uuid) -> Value {
    let (status, body) = app
        .post(
            "/v1/deductions",
            Some(token),
            &json!({"case_id": id, "rule_code": "INSP-GARBAGE", "note": "bin overflowing"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// A direct deduction from a media report in `zone`, proposed with `token` and approved by
/// supervisor2 (four eyes: the proposer does not approve); returns the ledger entry.
pub async fn media_entry(app: &TestApp, token: &str, zone: Uuid) -> Value {
    let (status, p) = app
        .post(
            "/v1/deductions",
            Some(token),
            &json!({"zone_id": zone, "source": "media", "rule_code": "MEDIA", "note": "evening news"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    approve(app, &app.login("supervisor2").await, &p).await
}

/// Approves `proposal` (a proposal body) and returns the ledger entry; fails unless 200.
pub async fn approve(app: &TestApp, token: &str, proposal: &Value) -> Value {
    let (status, entry) = app
        .post(
            &format!(
                "/v1/deductions/{}/approve",
                proposal["id"].as_str().unwrap()
            ),
            Some(token),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    entry
}

/// `POST /v1/ledger/entries/{entry_id}/reverse`: the status and body.
pub async fn reverse(
    app: &TestApp,
    token: &str,
    entry_id: &str,
    cause: &str,
    reason: &str,
) -> (StatusCode, Value) {
    app.post(
        &format!("/v1/ledger/entries/{entry_id}/reverse"),
        Some(token),
        &json!({"cause": cause, "reason": reason}),
    )
    .await
}

pub async fn current_period(app: &TestApp, token: &str) -> Value {
    let (_, periods) = app.get("/v1/periods", Some(token)).await;
    periods.as_array().unwrap()[0].clone()
}

/// Runs the real `gridline` CLI with `args` against the test server's database, data folder
/// and keys; returns whether it exited successfully and everything it printed.
pub async fn gridline_cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridline-under-test"))
        .args(args)
        .env("GRIDLINE_DATA_DIR", &app.state.config.data_dir)
        .env("GRIDLINE_DATABASE_URL", app.state.config.database_url())
        .env("GRIDLINE_BLOB__BACKEND", "memory")
        .env("GRIDLINE_LOG", "warn")
        .output()
        .await
        .expect("run gridline");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// GET returning the raw bytes.
/// The header an export gives column `key` in English (the tests' language).
pub fn header(key: &str) -> String {
    gridline_server::i18n::text(gridline_server::i18n::Lang::En, &format!("col-{key}"))
}

pub async fn get_bytes(app: &TestApp, path: &str, token: &str) -> (StatusCode, Vec<u8>) {
    let resp = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// An object store that fails every call while switched off, and records where it was asked
/// to write.
#[derive(Debug)]
pub struct SwitchableStore {
    pub inner: Arc<dyn object_store::ObjectStore>,
    pub up: Arc<AtomicBool>,
    /// The location of every `put` and multipart upload started, in order.
    pub written: Arc<Mutex<Vec<String>>>,
    /// While set, only listing fails (as on a bucket whose policy lacks ListBucket).
    pub refuse_listing: Arc<AtomicBool>,
}

impl std::fmt::Display for SwitchableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Switchable({})", self.inner)
    }
}

impl SwitchableStore {
    fn check(&self) -> object_store::Result<()> {
        if self.up.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(object_store::Error::Generic {
                store: "switchable",
                source: "connection refused".into(),
            })
        }
    }

    fn check_listing(&self) -> object_store::Result<()> {
        self.check()?;
        if self.refuse_listing.load(Ordering::Relaxed) {
            return Err(object_store::Error::Generic {
                store: "switchable",
                source: "access denied: s3:ListBucket".into(),
            });
        }
        Ok(())
    }

    fn record(&self, location: &object_store::path::Path) {
        if let Ok(mut written) = self.written.lock() {
            written.push(location.to_string());
        }
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for SwitchableStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.check()?;
        self.record(location);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.check()?;
        self.record(location);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.check()?;
        self.inner.get_opts(location, options).await
    }

    async fn delete(&self, location: &object_store::path::Path) -> object_store::Result<()> {
        self.check()?;
        self.inner.delete(location).await
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        use futures::StreamExt;
        match self.check_listing() {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.check_listing()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy_if_not_exists(from, to).await
    }
}

/// The id of the demo user `username`.
pub async fn user_id(app: &TestApp, username: &str) -> Uuid {
    let id = sqlx::query_scalar::<_, String>("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    Uuid::parse_str(&id).unwrap()
}
