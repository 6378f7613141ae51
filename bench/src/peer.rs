//! The peer: PouchDB Server 4.x (LevelDB adapter, its default), run as a child process on
//! loopback from the script `bench/run.sh` installs with npm.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

pub struct Peer {
    pub base: String,
    child: Child,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Peer {
    /// Starts `node <script>` on a free loopback port and waits (at most 60 s) until it answers.
    pub async fn start(script: &Path) -> anyhow::Result<Peer> {
        let dir = tempfile::tempdir()?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let child = Command::new("node")
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--host",
                "127.0.0.1",
                "--no-stdout-logs",
            ])
            .arg("--dir")
            .arg(dir.path())
            .arg("--config")
            .arg(dir.path().join("config.json"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start the peer: node {}", script.display()))?;
        let peer = Peer {
            base: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
            http: reqwest::Client::new(),
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = peer.http.get(&peer.base).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("the peer did not answer on {} within 60 s", peer.base);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(peer)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new, empty database.
    pub async fn fresh_db(&self, name: &str) -> anyhow::Result<()> {
        let _ = self
            .http
            .delete(self.url(&format!("/{name}")))
            .send()
            .await?;
        self.http
            .put(self.url(&format!("/{name}")))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("create peer database {name}"))?;
        Ok(())
    }

    /// `_bulk_docs` of a body serialised beforehand; fails unless every document was stored.
    pub async fn bulk_docs(&self, db: &str, body: Vec<u8>, count: usize) -> anyhow::Result<Value> {
        post_bulk_docs(
            &self.http,
            &self.url(&format!("/{db}/_bulk_docs")),
            body,
            count,
        )
        .await
    }

    /// One `_changes` page with the documents: `(body bytes, parsed body)`.
    pub async fn changes(
        &self,
        db: &str,
        since: &Value,
        limit: usize,
    ) -> anyhow::Result<(usize, Value)> {
        let since = match since {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let resp = self
            .http
            .get(self.url(&format!("/{db}/_changes")))
            .query(&[
                ("include_docs", "true"),
                ("since", since.as_str()),
                ("limit", limit.to_string().as_str()),
            ])
            .send()
            .await?
            .error_for_status()?;
        let bytes = resp.bytes().await?;
        Ok((bytes.len(), serde_json::from_slice(&bytes)?))
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// POSTs a `_bulk_docs` body to `url` (for callers that hold only a client clone, like the
/// push's concurrent tasks); fails unless all `count` documents were stored.
pub async fn post_bulk_docs(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    count: usize,
) -> anyhow::Result<Value> {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let results: Value = resp.json().await?;
    let ok = results
        .as_array()
        .map(|a| a.iter().filter(|r| r["ok"] == json!(true)).count())
        .unwrap_or(0);
    if !status.is_success() || ok != count {
        bail!("peer stored {ok} of {count} documents ({status})");
    }
    Ok(results)
}
