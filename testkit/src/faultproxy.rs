//! A seeded TCP fault proxy on 127.0.0.1, for tests of bad networks and dependency outages.
//!
//! Put it between a client and a server (phones and Gridline, or Gridline and PostgreSQL). For
//! each accepted connection it draws one plan from a seeded generator: pass it through, drop it,
//! cut the request or the response at a random byte offset, delay it, or duplicate the first
//! request (replay its bytes on a fresh upstream connection, as a retransmitting middlebox
//! would). It counts every fault it actually injected. [`FaultProxy::set_mode`] switches the
//! whole dependency off (refuse or blackhole every connection, and cut the open ones) and on
//! again.
//!
//! Plans are drawn in accept order, so a seed reproduces the sequence of plans; which request
//! meets which plan still depends on the scheduler.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Per-connection fault probabilities (each in `[0, 1]`; their sum at most 1).
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Closed at once, never reaching upstream.
    pub drop: f64,
    /// The client's bytes are cut off at a random offset; both sides are closed.
    pub cut_request: f64,
    /// The request goes through; the answer is cut off at a random offset.
    pub cut_response: f64,
    /// Held for up to [`Faults::max_delay`] before it is passed on.
    pub delay: f64,
    /// The first request is also replayed on a fresh upstream connection.
    pub duplicate: f64,
    pub max_delay: Duration,
    /// Cuts of requests fall uniformly at or above this many bytes (past a request's headers,
    /// to cut only bodies) and below [`Faults::max_cut_offset`].
    pub min_cut_offset: usize,
    /// Cuts of requests fall uniformly below this many bytes.
    pub max_cut_offset: usize,
    /// Cuts of responses fall uniformly below this many bytes (answers to uploads are a few
    /// hundred bytes: a larger offset would rarely cut them).
    pub max_response_cut_offset: usize,
}

impl Faults {
    /// A clean network.
    pub fn none() -> Faults {
        Faults {
            drop: 0.0,
            cut_request: 0.0,
            cut_response: 0.0,
            delay: 0.0,
            duplicate: 0.0,
            max_delay: Duration::ZERO,
            min_cut_offset: 0,
            max_cut_offset: 1,
            max_response_cut_offset: 1,
        }
    }

    /// A bad 3G link: about half of all connections meet a fault.
    pub fn flaky_network() -> Faults {
        Faults {
            drop: 0.06,
            cut_request: 0.10,
            cut_response: 0.14,
            delay: 0.10,
            duplicate: 0.10,
            max_delay: Duration::from_millis(150),
            min_cut_offset: 0,
            max_cut_offset: 3000,
            max_response_cut_offset: 3000,
        }
    }

    /// [`Faults::flaky_network`] for phones uploading photos in chunks of about `chunk` bytes:
    /// requests are cut anywhere in a chunk, responses anywhere in an upload's short answer.
    pub fn flaky_uploads(chunk: usize) -> Faults {
        Faults {
            max_cut_offset: chunk + 1024,
            max_response_cut_offset: 400,
            ..Faults::flaky_network()
        }
    }
}

/// Whether the proxied dependency is reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connections go through (with the configured faults).
    On,
    /// New connections are accepted and closed at once; open ones are cut.
    Refuse,
    /// New connections are accepted and never answered; open ones are cut.
    Blackhole,
}

/// What the proxy has done so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultCounts {
    pub connections: u64,
    pub dropped: u64,
    pub cut_requests: u64,
    pub cut_responses: u64,
    pub delayed: u64,
    pub duplicated: u64,
    /// Connections refused or blackholed, or cut when the dependency was switched off.
    pub outage_hits: u64,
}

impl FaultCounts {
    /// Every fault injected, of any kind.
    pub fn injected(&self) -> u64 {
        self.dropped
            + self.cut_requests
            + self.cut_responses
            + self.delayed
            + self.duplicated
            + self.outage_hits
    }
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} faults in {} connections ({} dropped, {} requests cut, {} responses cut, \
             {} delayed, {} duplicated, {} outage hits)",
            self.injected(),
            self.connections,
            self.dropped,
            self.cut_requests,
            self.cut_responses,
            self.delayed,
            self.duplicated,
            self.outage_hits
        )
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    dropped: AtomicU64,
    cut_requests: AtomicU64,
    cut_responses: AtomicU64,
    delayed: AtomicU64,
    duplicated: AtomicU64,
    outage_hits: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// One connection's fate.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Pass,
    Drop,
    CutRequest(usize),
    CutResponse(usize),
    Delay(Duration),
    Duplicate,
}

impl Plan {
    fn draw(rng: &mut StdRng, f: &Faults) -> Plan {
        let x: f64 = rng.gen();
        let offset = rng.gen_range(f.min_cut_offset..f.max_cut_offset.max(f.min_cut_offset + 1));
        let response_offset = rng.gen_range(0..f.max_response_cut_offset.max(1));
        let delay = f.max_delay.mul_f64(rng.gen());
        let mut edge = f.drop;
        if x < edge {
            return Plan::Drop;
        }
        edge += f.cut_request;
        if x < edge {
            return Plan::CutRequest(offset);
        }
        edge += f.cut_response;
        if x < edge {
            return Plan::CutResponse(response_offset);
        }
        edge += f.delay;
        if x < edge {
            return Plan::Delay(delay);
        }
        edge += f.duplicate;
        if x < edge {
            return Plan::Duplicate;
        }
        Plan::Pass
    }
}

/// A running proxy; it stops (and cuts its connections) when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
    mode: watch::Sender<Mode>,
    faults: Arc<Mutex<Faults>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, seed: u64, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        let counters = Arc::new(Counters::default());
        let (mode, _) = watch::channel(Mode::On);
        let faults = Arc::new(Mutex::new(faults));
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            StdRng::seed_from_u64(seed),
            faults.clone(),
            counters.clone(),
            mode.clone(),
        ));
        FaultProxy {
            addr,
            counters,
            mode,
            faults,
            accept,
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the dependency on or off; switching off cuts every open connection.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Changes the fault mix for connections accepted from now on.
    pub fn set_faults(&self, faults: Faults) {
        if let Ok(mut f) = self.faults.lock() {
            *f = faults;
        }
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FaultCounts {
            connections: get(&c.connections),
            dropped: get(&c.dropped),
            cut_requests: get(&c.cut_requests),
            cut_responses: get(&c.cut_responses),
            delayed: get(&c.delayed),
            duplicated: get(&c.duplicated),
            outage_hits: get(&c.outage_hits),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Connection tasks watch `mode`; they end when its sender goes away with `self`.
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mut rng: StdRng,
    faults: Arc<Mutex<Faults>>,
    counters: Arc<Counters>,
    mode: watch::Sender<Mode>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        bump(&counters.connections);
        let rx = mode.subscribe();
        let now = *rx.borrow();
        match now {
            Mode::Refuse => {
                bump(&counters.outage_hits);
                drop(client);
            }
            Mode::Blackhole => {
                bump(&counters.outage_hits);
                tokio::spawn(hold_until_mode_changes(client, rx));
            }
            Mode::On => {
                let f = faults.lock().map(|f| *f).unwrap_or_else(|_| Faults::none());
                let plan = Plan::draw(&mut rng, &f);
                tokio::spawn(connection(client, upstream, plan, counters.clone(), rx));
            }
        }
    }
}

async fn hold_until_mode_changes(client: TcpStream, mut rx: watch::Receiver<Mode>) {
    while rx.changed().await.is_ok() {
        if *rx.borrow() != Mode::Blackhole {
            break;
        }
    }
    drop(client);
}

/// Resolves when the dependency is switched off or the proxy is dropped.
async fn switched_off(rx: &mut watch::Receiver<Mode>) {
    while rx.changed().await.is_ok() {
        if *rx.borrow() != Mode::On {
            return;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    /// The source closed (or failed): this direction is finished.
    Done,
    /// A fault cut the connection: close both sides now.
    Cut,
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    plan: Plan,
    counters: Arc<Counters>,
    mut rx: watch::Receiver<Mode>,
) {
    match plan {
        Plan::Drop => {
            bump(&counters.dropped);
            return;
        }
        Plan::Delay(d) => {
            bump(&counters.delayed);
            tokio::time::sleep(d).await;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // The client's bytes so far, for a replay once the first answer starts.
    let sent = Arc::new(Mutex::new(Vec::<u8>::new()));
    let request_cut = match plan {
        Plan::CutRequest(n) => Some(n),
        _ => None,
    };
    let response_cut = match plan {
        Plan::CutResponse(n) => Some(n),
        _ => None,
    };
    let duplicate = matches!(plan, Plan::Duplicate);
    let c2s = pipe(cr, sw, request_cut, duplicate.then(|| sent.clone()), || {});
    let replay = {
        let sent = sent.clone();
        let counters = counters.clone();
        move || {
            if duplicate {
                let bytes = sent.lock().map(|b| b.clone()).unwrap_or_default();
                if !bytes.is_empty() {
                    bump(&counters.duplicated);
                    tokio::spawn(replay_request(upstream, bytes));
                }
            }
        }
    };
    let s2c = pipe(sr, cw, response_cut, None, replay);
    tokio::pin!(c2s, s2c);
    let (mut c_done, mut s_done) = (false, false);
    loop {
        tokio::select! {
            flow = &mut c2s, if !c_done => {
                if flow == Flow::Cut {
                    bump(&counters.cut_requests);
                    break;
                }
                c_done = true;
            }
            flow = &mut s2c, if !s_done => {
                if flow == Flow::Cut {
                    bump(&counters.cut_responses);
                    break;
                }
                s_done = true;
            }
            _ = switched_off(&mut rx) => {
                bump(&counters.outage_hits);
                break;
            }
        }
        if c_done && s_done {
            break;
        }
    }
}

/// Copies `from` to `to` until the source closes, or until `cut_at` bytes have passed (then
/// [`Flow::Cut`]). `record` keeps a copy of the bytes; `on_first` runs once, when the first bytes
/// arrive.
async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    cut_at: Option<usize>,
    record: Option<Arc<Mutex<Vec<u8>>>>,
    on_first: impl FnOnce(),
) -> Flow {
    let mut on_first = Some(on_first);
    let mut passed = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return Flow::Done;
            }
            Ok(n) => n,
        };
        if let Some(f) = on_first.take() {
            f();
        }
        let mut chunk = &buf[..n];
        let mut cut = false;
        if let Some(limit) = cut_at {
            if passed + chunk.len() >= limit {
                chunk = &chunk[..limit - passed];
                cut = true;
            }
        }
        if let Some(rec) = &record {
            if let Ok(mut r) = rec.lock() {
                if r.len() < 4 * 1024 * 1024 {
                    r.extend_from_slice(chunk);
                }
            }
        }
        if to.write_all(chunk).await.is_err() {
            return Flow::Done;
        }
        passed += chunk.len();
        if cut {
            let _ = to.flush().await;
            return Flow::Cut;
        }
    }
}

/// Sends `bytes` again on a new upstream connection and reads the answer away, for at most a
/// few seconds (a kept-alive connection is never closed by the server).
async fn replay_request(upstream: SocketAddr, bytes: Vec<u8>) {
    let work = async {
        let mut s = TcpStream::connect(upstream).await.ok()?;
        s.write_all(&bytes).await.ok()?;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return Some(());
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), work).await;
}
