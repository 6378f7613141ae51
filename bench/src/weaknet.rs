//! Scenario `weaknet`: a phone uploads its photos over a bad link; time until all are verified,
//! and the photo bytes it had to send again.
//!
//! The link (needs root, `ip`, `tc` and `nft`): the server runs as a process in a network
//! namespace of its own, joined to this one by a veth pair. Both ends are shaped to
//! `weak_rate_kbit` with `tc tbf`; nftables in the server's namespace drops `weak_loss_pct` %
//! of the packets in each direction at random (`numgen random`); every `weak_disconnect_every`
//! for `weak_disconnect_for`, every TCP packet either way is answered with a reset, so open
//! connections break and new ones are refused, as when a phone loses its signal. Without
//! `weak_netns` (the smoke test, no root needed) the server runs on loopback behind
//! [`gridline_testkit::faultproxy`], which only emulates the disconnects: no rate limit, no loss.
//!
//! The phone is the reference client (`gridline_sync::client`, its SQLite outbox and tus
//! upload with resume) with its default chunk size, wrapped in a transport that counts the
//! bytes of every `PATCH` body it starts to send. Bytes re-sent = those bytes minus the photo
//! bytes: an upper bound, since a `PATCH` cut part-way is counted whole. The veth counters give
//! the link-level bytes (TCP/IP headers and retransmissions included) for context.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use gridline_sync::client::{
    photo_from_file, Client, HttpTransport, Store, TokioSleeper, TransportError,
    DEFAULT_UPLOAD_CHUNK,
};
use gridline_sync::ops::{CaseCreateV1, Operation, PhotoRole};

use super::jpeg;
use super::process::{self, ServerProcess, Spawn};
use super::{Options, Report, Row};
use gridline_testkit::faultproxy::{FaultProxy, Faults, Mode};
use gridline_testkit::kit::{capture, Call, Watch, Watched};

const TARGET_RESENT_PCT: f64 = 5.0;

/// Counts what the phone sends in upload bodies.
#[derive(Default)]
struct PatchCounts {
    /// Body bytes of every `PATCH` started.
    patch_bytes: AtomicU64,
    patches: AtomicU64,
    failed_patches: AtomicU64,
}

impl Watch for PatchCounts {
    fn before(&self, call: Call) {
        if let Call::UploadPatch { len } = call {
            self.patch_bytes.fetch_add(len, Ordering::Relaxed);
            self.patches.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn after(&self, call: Call, error: Option<&TransportError>) {
        if matches!(call, Call::UploadPatch { .. }) && error.is_some() {
            self.failed_patches.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("run {program}"))?;
    ensure!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// A server namespace joined to this one by a shaped veth pair; removed when dropped (the
/// namespace takes its end of the pair, its nftables table and its qdisc with it).
struct NetLab {
    ns: String,
    host_if: String,
    ns_if: String,
    host_ip: String,
    ns_ip: String,
}

impl NetLab {
    fn create(rate_kbit: u32, loss_pct: u32) -> anyhow::Result<NetLab> {
        let id = std::process::id() % 100_000;
        let net = 1 + id % 250;
        let lab = NetLab {
            ns: format!("gridline-weak-{id}"),
            host_if: format!("glw{id}h"),
            ns_if: format!("glw{id}n"),
            host_ip: format!("10.213.{net}.1"),
            ns_ip: format!("10.213.{net}.2"),
        };
        sh("ip", &["netns", "add", &lab.ns]).context("a network namespace (needs root)")?;
        let (ns, h, n) = (lab.ns.as_str(), lab.host_if.as_str(), lab.ns_if.as_str());
        let nsx = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns];
            all.extend_from_slice(args);
            sh("ip", &all)
        };
        sh("ip", &["link", "add", h, "type", "veth", "peer", "name", n])?;
        sh("ip", &["link", "set", n, "netns", ns])?;
        sh(
            "ip",
            &["addr", "add", &format!("{}/30", lab.host_ip), "dev", h],
        )?;
        sh("ip", &["link", "set", h, "up"])?;
        nsx(&["ip", "addr", "add", &format!("{}/30", lab.ns_ip), "dev", n])?;
        nsx(&["ip", "link", "set", n, "up"])?;
        nsx(&["ip", "link", "set", "lo", "up"])?;
        // Half a second of queue at the link rate, as a phone modem buffers.
        let rate = format!("{rate_kbit}kbit");
        let tbf = [
            "root", "tbf", "rate", &rate, "burst", "16kb", "latency", "500ms",
        ];
        let mut host_tc = vec!["qdisc", "add", "dev", h];
        host_tc.extend_from_slice(&tbf);
        sh("tc", &host_tc).context("tc tbf")?;
        let mut ns_tc = vec!["tc", "qdisc", "add", "dev", n];
        ns_tc.extend_from_slice(&tbf);
        nsx(&ns_tc)?;
        let rules = format!(
            "table inet weak {{
  chain loss_in {{ type filter hook input priority 0; iifname \"{n}\" numgen random mod 100 < {loss_pct} drop; }}
  chain loss_out {{ type filter hook output priority 0; oifname \"{n}\" numgen random mod 100 < {loss_pct} drop; }}
  chain cut_in {{ type filter hook input priority -10; }}
  chain cut_out {{ type filter hook output priority -10; }}
}}"
        );
        let file = std::env::temp_dir().join(format!("{}.nft", lab.ns));
        std::fs::write(&file, rules)?;
        let loaded = nsx(&["nft", "-f", &file.display().to_string()]);
        let _ = std::fs::remove_file(&file);
        loaded.context("nftables (nf_tables in the kernel and the `nft` tool)")?;
        Ok(lab)
    }

    /// Starts or ends a disconnect: every TCP packet either way answered with a reset.
    fn cut(&self, on: bool) -> anyhow::Result<()> {
        let nft = |args: &[&str]| {
            let mut all = vec!["netns", "exec", self.ns.as_str(), "nft"];
            all.extend_from_slice(args);
            sh("ip", &all)
        };
        if on {
            // The resets this namespace sends must get out; everything else is refused.
            nft(&[
                "add", "rule", "inet", "weak", "cut_out", "tcp", "flags", "rst", "accept",
            ])?;
            for chain in ["cut_out", "cut_in"] {
                nft(&[
                    "add", "rule", "inet", "weak", chain, "meta", "l4proto", "tcp", "reject",
                    "with", "tcp", "reset",
                ])?;
            }
        } else {
            nft(&["flush", "chain", "inet", "weak", "cut_in"])?;
            nft(&["flush", "chain", "inet", "weak", "cut_out"])?;
        }
        Ok(())
    }

    /// Bytes this end of the veth pair has sent towards the server.
    fn tx_bytes(&self) -> u64 {
        std::fs::read_to_string(format!(
            "/sys/class/net/{}/statistics/tx_bytes",
            self.host_if
        ))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        let _ = sh("ip", &["netns", "del", &self.ns]);
        let _ = sh("ip", &["link", "del", &self.host_if]);
    }
}

/// The link between the phone and the server.
enum Link {
    Shaped(NetLab),
    Proxy(FaultProxy),
}

impl Link {
    fn cut(&self, on: bool) -> anyhow::Result<()> {
        match self {
            Link::Shaped(lab) => lab.cut(on),
            Link::Proxy(p) => {
                p.set_mode(if on { Mode::Refuse } else { Mode::On });
                Ok(())
            }
        }
    }
}

pub async fn run(opts: &Options, report: &mut Report) -> anyhow::Result<()> {
    let o = &opts.photos;
    let binary = process::find_server_binary(o.server_bin.as_deref())?;
    let dir = tempfile::tempdir()?;
    let server_dir = dir.path().join("server");
    std::fs::create_dir_all(&server_dir)?;
    let lab = if o.weak_netns {
        let (rate, loss) = (o.weak_rate_kbit, o.weak_loss_pct);
        match tokio::task::spawn_blocking(move || NetLab::create(rate, loss)).await? {
            Ok(lab) => Some(lab),
            Err(e) => {
                report.note(format!(
                    "weaknet: not measured: cannot build the shaped link ({e:#}); it needs root, \
                     iproute2 and nftables (bench/run.sh installs them); `--weak-loopback` runs \
                     the disconnects only, without root"
                ));
                return Ok(());
            }
        }
    } else {
        None
    };
    let port = process::free_port()?;
    let listen = match &lab {
        Some(l) => format!("{}:{port}", l.ns_ip),
        None => format!("127.0.0.1:{port}"),
    };
    let db_url = format!("sqlite://{}/gridline.db?mode=rwc", server_dir.display());
    let server = ServerProcess::start(Spawn {
        binary: &binary,
        data_dir: &server_dir,
        listen: listen.clone(),
        database_url: &db_url,
        env: vec![("GRIDLINE_BLOB__BACKEND".into(), "local".into())],
        netns: lab.as_ref().map(|l| l.ns.as_str()),
    })
    .await?;
    let link = match lab {
        Some(l) => Link::Shaped(l),
        None => Link::Proxy(FaultProxy::start(listen.parse()?, 7, Faults::none()).await),
    };
    let base = match &link {
        Link::Shaped(_) => server.base.clone(),
        Link::Proxy(p) => p.url(),
    };
    let result = phone_run(opts, dir.path(), &db_url, &base, &link).await;
    server.stop().await;
    drop(link);
    let run = result?;

    let photo_bytes = run.photo_bytes as f64;
    let resent = run.patch_bytes.saturating_sub(run.photo_bytes) as f64;
    let resent_pct = 100.0 * resent / photo_bytes;
    let shaped = matches!(run.mode, "shaped");
    let at_rate = shaped.then(|| photo_bytes * 8.0 / (f64::from(o.weak_rate_kbit) * 1000.0));
    report.push(
        Row::new(
            "weaknet",
            "sqlite",
            "s until all verified",
            run.elapsed.as_secs_f64(),
        )
        .reference("the photo bytes at the link rate", at_rate)
        .lower_is_better(),
    );
    report.push(
        Row::new("weaknet", "sqlite", "% photo bytes re-sent", resent_pct)
            .reference("—", None)
            .lower_is_better()
            .target("< 5 %", Some(resent_pct < TARGET_RESENT_PCT)),
    );
    let emulated = if shaped {
        format!(
            "between network namespaces: {} kbit/s each way (tc tbf), {} % loss each way \
             (nftables numgen), a {:.1} s disconnect every {:.0} s (TCP resets both ways)",
            o.weak_rate_kbit,
            o.weak_loss_pct,
            o.weak_disconnect_for.as_secs_f64(),
            o.weak_disconnect_every.as_secs_f64()
        )
    } else {
        format!(
            "on loopback through a proxy: NO rate limit, NO loss; a {:.2} s disconnect every {:.2} s \
             (connections cut, new ones refused)",
            o.weak_disconnect_for.as_secs_f64(),
            o.weak_disconnect_every.as_secs_f64()
        )
    };
    report.note(format!(
        "weaknet: {} photos ({:.1} MB), PATCHes of at most {} KiB, {emulated}; all verified in {:.1} s over {} sync rounds ({} ended by an error), \
         {} disconnects; {} PATCHes ({} failed) carried {:.2} MB of body = {:.2} MB ({resent_pct:.1} %) beyond the photos \
         (a cut PATCH counted whole); link-level bytes phone→server {}",
        run.photos,
        photo_bytes / 1e6,
        o.weak_chunk.unwrap_or(DEFAULT_UPLOAD_CHUNK) / 1024,
        run.elapsed.as_secs_f64(),
        run.rounds,
        run.failed_rounds,
        run.cuts,
        run.patches,
        run.failed_patches,
        run.patch_bytes as f64 / 1e6,
        resent / 1e6,
        match run.link_bytes {
            Some(b) => format!(
                "{:.2} MB ({:.1} % over the photo bytes: headers, retransmissions, requests)",
                b as f64 / 1e6,
                100.0 * (b as f64 - photo_bytes) / photo_bytes
            ),
            None => "not measured (loopback)".into(),
        }
    ));
    Ok(())
}

struct PhoneRun {
    mode: &'static str,
    photos: usize,
    photo_bytes: u64,
    elapsed: Duration,
    rounds: usize,
    failed_rounds: usize,
    cuts: u64,
    patches: u64,
    failed_patches: u64,
    patch_bytes: u64,
    link_bytes: Option<u64>,
}

async fn phone_run(
    opts: &Options,
    dir: &Path,
    db_url: &str,
    base: &str,
    link: &Link,
) -> anyhow::Result<PhoneRun> {
    let o = &opts.photos;
    let size = o.photo_bytes;
    let count = o.weak_photos;
    let photos = tokio::task::spawn_blocking(move || {
        let image = jpeg::base_image(size)?;
        jpeg::photos(&image, size, 0, count)
    })
    .await??;
    let zone = {
        let conn = gridline_server::store::Db::connect(db_url, 1).await?;
        let z = super::phones::zone_ids(&conn.pool).await?;
        conn.pool.close().await;
        *z.get("Z01").context("zone Z01")?
    };

    let client = Client::new(
        Store::open(&dir.join("phone.db")).await?,
        Watched {
            inner: HttpTransport::new(base)?,
            watch: PatchCounts::default(),
        },
        TokioSleeper,
    )
    .with_upload_chunk(o.weak_chunk.unwrap_or(DEFAULT_UPLOAD_CHUNK));
    client
        .enrol(
            base,
            "inspector1",
            gridline_server::demo::DEMO_PASSWORD,
            "weaknet phone",
        )
        .await?;
    let now = time::OffsetDateTime::now_utc();
    let mut photo_bytes = 0;
    for (i, p) in photos.iter().enumerate() {
        let path = dir.join(format!("photo-{i}.jpg"));
        std::fs::write(&path, &p.bytes)?;
        let local = photo_from_file(&path, PhotoRole::Before, now)?;
        photo_bytes += local.manifest.size;
        client
            .capture(
                Operation::CaseCreateV1(CaseCreateV1 {
                    captured_at: now,
                    photos: vec![local.manifest.clone()],
                    ..capture(zone, 0, &format!("weak network photo {i}"))
                }),
                &[local],
            )
            .await?;
    }
    drop(photos);
    let pushed = client.push().await?;
    ensure!(
        pushed.acked as usize == count,
        "{} of {count} cases acknowledged",
        pushed.acked
    );

    let link_before = match link {
        Link::Shaped(lab) => Some(lab.tx_bytes()),
        Link::Proxy(_) => None,
    };
    let cuts = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let expected =
        Duration::from_secs_f64(photo_bytes as f64 * 8.0 / (f64::from(o.weak_rate_kbit) * 1000.0));
    let deadline = opts.deadline.max(expected * 3);
    let (every, length) = (o.weak_disconnect_every, o.weak_disconnect_for);
    let run = async {
        let mut rounds = 0;
        let mut failed_rounds = 0;
        loop {
            rounds += 1;
            if let Err(e) = client.upload_photos().await {
                failed_rounds += 1;
                eprintln!("  weaknet: round {rounds} ended: {e}");
            }
            let counts = client.store().photo_counts().await?;
            ensure!(counts.refused == 0, "the server refused a photo");
            if counts.pending == 0 {
                return anyhow::Ok((rounds, failed_rounds));
            }
            // The phone's next sync.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let disconnects = async {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = link.cut(true) {
                return e;
            }
            cuts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(length).await;
            if let Err(e) = link.cut(false) {
                return e;
            }
        }
    };
    let outcome = tokio::time::timeout(deadline, async {
        tokio::select! {
            r = run => r,
            e = disconnects => Err(e),
        }
    })
    .await;
    // Whatever happened, the link is whole again.
    let _ = link.cut(false);
    let (rounds, failed_rounds) = match outcome {
        Ok(r) => r?,
        Err(_) => bail!(
            "the photos were not all verified in {} s",
            deadline.as_secs()
        ),
    };
    let elapsed = start.elapsed();
    let link_bytes = match (link, link_before) {
        (Link::Shaped(lab), Some(before)) => Some(lab.tx_bytes() - before),
        _ => None,
    };
    let t = client.transport();
    Ok(PhoneRun {
        mode: if link_bytes.is_some() {
            "shaped"
        } else {
            "loopback"
        },
        photos: count,
        photo_bytes,
        elapsed,
        rounds,
        failed_rounds,
        cuts: cuts.load(Ordering::Relaxed),
        patches: t.watch.patches.load(Ordering::Relaxed),
        failed_patches: t.watch.failed_patches.load(Ordering::Relaxed),
        patch_bytes: t.watch.patch_bytes.load(Ordering::Relaxed),
        link_bytes,
    })
}
