//! A single-node Garage (S3-compatible store) on loopback for tests: a temporary folder, free
//! ports, a fixed test key and one bucket; stopped when dropped.
//!
//! The binary is `GRIDLINE_GARAGE_BIN`, else `garage` on the `PATH` or in `~/.cargo/bin`. When
//! it is absent the test skips with a printed reason, unless `GRIDLINE_REQUIRE_SERVICES=1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gridline_server::config::{BlobBackend, Config, Secret};

pub const KEY_ID: &str = "GK0123456789abcdef01234567";
pub const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const BUCKET: &str = "gridline-test";
pub const REGION: &str = "garage";

pub struct Garage {
    child: Child,
    bin: PathBuf,
    config: PathBuf,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn find_binary() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("GRIDLINE_GARAGE_BIN") {
        if !bin.is_empty() && Path::new(&bin).exists() {
            return Some(PathBuf::from(bin));
        }
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("garage"));
    let in_cargo = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/garage"));
    on_path.chain(in_cargo).find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Garage {
    /// Starts Garage, or `None` (skipped) when it is not installed.
    pub fn start() -> Option<Garage> {
        let Some(bin) = find_binary() else {
            crate::skip_or_fail("garage is not installed (set GRIDLINE_GARAGE_BIN)")?;
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
                secret = "ab".repeat(32),
            ),
        )
        .expect("write garage config");
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start garage");
        let garage = Garage {
            child,
            bin,
            config,
            endpoint: format!("http://127.0.0.1:{s3}"),
            _dir: dir,
        };
        garage.wait_until_up();
        let node = garage.cli(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap_or("").to_owned();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage.cli(&[
            "key", "import", "--yes", "-n", "gridline", KEY_ID, SECRET_KEY,
        ]);
        garage.cli(&["bucket", "create", BUCKET]);
        garage.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", KEY_ID,
        ]);
        Some(garage)
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(&self.bin)
                .arg("-c")
                .arg(&self.config)
                .args(["status"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "garage did not start in 30 s");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs a `garage` command against this node; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run garage");
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Points a server configuration at this Garage's bucket.
    pub fn configure(&self, config: &mut Config) {
        config.blob.backend = BlobBackend::S3;
        config.blob.s3.endpoint = self.endpoint.clone();
        config.blob.s3.region = REGION.into();
        config.blob.s3.bucket = BUCKET.into();
        config.blob.s3.access_key_id = KEY_ID.into();
        config.blob.s3.secret_access_key = Secret::new(SECRET_KEY);
        config.blob.s3.path_style = true;
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `GRIDLINE_*` settings that point a server process at `g`'s bucket.
pub fn server_env(g: &Garage) -> Vec<(String, String)> {
    [
        ("GRIDLINE_BLOB__BACKEND", "s3"),
        ("GRIDLINE_BLOB__S3__ENDPOINT", g.endpoint.as_str()),
        ("GRIDLINE_BLOB__S3__REGION", REGION),
        ("GRIDLINE_BLOB__S3__BUCKET", BUCKET),
        ("GRIDLINE_BLOB__S3__ACCESS_KEY_ID", KEY_ID),
        ("GRIDLINE_BLOB__S3__SECRET_ACCESS_KEY", SECRET_KEY),
        ("GRIDLINE_BLOB__S3__PATH_STYLE", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
