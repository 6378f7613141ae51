//! The server under test as a process of its own (`gridline-under-test serve --demo en`, the real
//! CLI), for figures an in-process server cannot give: its memory (`/proc/<pid>/status`) and
//! its place in another network namespace.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// The server binary: `GRIDLINE_BENCH_SERVER`, else `gridline-under-test` (or `gridline`)
/// beside this executable or one folder up (integration tests run from `target/*/deps`).
pub fn find_server_binary(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = configured {
        return Ok(p.to_path_buf());
    }
    if let Ok(p) = std::env::var("GRIDLINE_BENCH_SERVER") {
        if !p.is_empty() {
            return Ok(PathBuf::from(p));
        }
    }
    let exe = std::env::current_exe()?;
    let mut dirs: Vec<PathBuf> = exe.parent().map(Path::to_path_buf).into_iter().collect();
    if let Some(up) = dirs.first().and_then(|d| d.parent()) {
        dirs.push(up.to_path_buf());
    }
    dirs.iter()
        .flat_map(|d| [d.join("gridline-under-test"), d.join("gridline")])
        .find(|p| p.is_file())
        .context(
            "no server binary: build `gridline-under-test` (cargo build -p gridline-tests) \
             or set GRIDLINE_BENCH_SERVER",
        )
}

/// How to start the server.
pub struct Spawn<'a> {
    pub binary: &'a Path,
    pub data_dir: &'a Path,
    /// `host:port` to listen on.
    pub listen: String,
    pub database_url: &'a str,
    /// Extra `GRIDLINE_*` settings, e.g. the blob store's.
    pub env: Vec<(String, String)>,
    /// Run inside this network namespace (`ip netns exec`).
    pub netns: Option<&'a str>,
}

/// A running server process; killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub pid: u32,
    pub base: String,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the server and waits (at most 60 s) for its "listening on" line.
    pub async fn start(spawn: Spawn<'_>) -> anyhow::Result<ServerProcess> {
        let log = spawn.data_dir.join("server.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let mut cmd = match spawn.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(spawn.binary);
                c
            }
            None => Command::new(spawn.binary),
        };
        cmd.args(["serve", "--demo", "en"])
            .env_remove("GRIDLINE_CONFIG")
            .env("GRIDLINE_DATA_DIR", spawn.data_dir)
            .env("GRIDLINE_LISTEN", &spawn.listen)
            .env("GRIDLINE_DATABASE_URL", spawn.database_url)
            .env("GRIDLINE_LIMITS__REQUESTS_PER_MINUTE", "0")
            .env("GRIDLINE_AUTH__ACCESS_TTL_SECS", "86400")
            .env("GRIDLINE_LOG", "warn")
            .envs(spawn.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("start {}", spawn.binary.display()))?;
        let pid = child.id().context("server pid")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let listening =
            gridline_testkit::kit::until_listening(stdout, Duration::from_secs(60)).await;
        if !listening {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            bail!(
                "the server did not start listening within 60 s; log tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(ServerProcess {
            child,
            pid,
            base: format!("http://{}", spawn.listen),
            log,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Resident memory now, bytes (`VmRSS`).
    pub fn rss(&self) -> Option<u64> {
        status_kb(self.pid, "VmRSS:").map(|kb| kb * 1024)
    }

    /// Peak resident memory since start, bytes (`VmHWM`).
    pub fn peak_rss(&self) -> Option<u64> {
        status_kb(self.pid, "VmHWM:").map(|kb| kb * 1024)
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
