//! `gridline-field`: the reference phone client as a command line tool.
//!
//! Everything is stored in one SQLite file (`--db`, default `./field.db`). `capture`, `edit`,
//! `comment` and `transition` work offline; `sync` (push, photo uploads, pull) and `upload`
//! (photo uploads alone) talk to the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gridline_sync::client::{
    photo_from_file, Client, ClientError, HttpTransport, LocalPhoto, Store, TokioSleeper,
    UploadReport,
};
use gridline_sync::ops::{
    CaseChanges, CaseCommentV1, CaseCreateV1, CaseEditV1, CaseTransitionV1, CaseVerifyV1, Location,
    Operation, PhotoRole, Severity, TransitionAction,
};
use gridline_sync::wire::EntityKind;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "gridline-field",
    version,
    about = "Gridline reference field client"
)]
struct Cli {
    /// The client's SQLite store.
    #[arg(
        long,
        global = true,
        default_value = "field.db",
        env = "GRIDLINE_FIELD_DB"
    )]
    db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// The datum `--lat` and `--lon` are in (see `gridline_sync::Datum`).
#[derive(Clone, Copy, ValueEnum)]
enum DatumArg {
    /// GPS (the default).
    Wgs84,
    /// A domestic map picker's (Amap, Tencent).
    Gcj02,
    /// Baidu's.
    Bd09,
}

impl From<DatumArg> for gridline_sync::Datum {
    fn from(d: DatumArg) -> Self {
        match d {
            DatumArg::Wgs84 => gridline_sync::Datum::Wgs84,
            DatumArg::Gcj02 => gridline_sync::Datum::Gcj02,
            DatumArg::Bd09 => gridline_sync::Datum::Bd09,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum SeverityArg {
    Low,
    Medium,
    High,
}

impl From<SeverityArg> for Severity {
    fn from(s: SeverityArg) -> Self {
        match s {
            SeverityArg::Low => Severity::Low,
            SeverityArg::Medium => Severity::Medium,
            SeverityArg::High => Severity::High,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ActionArg {
    Withdraw,
    ReportRectified,
}

#[derive(Subcommand)]
enum Command {
    /// Create this device's key and id, and enrol it with the server.
    Enrol {
        #[arg(long)]
        server: String,
        #[arg(long)]
        username: String,
        #[arg(long, env = "GRIDLINE_PASSWORD")]
        password: String,
        #[arg(long, default_value = "gridline-field")]
        name: String,
    },
    /// Log in again with tokens bound to this device (when the session expired).
    Login {
        #[arg(long, env = "GRIDLINE_PASSWORD")]
        password: String,
    },
    /// Queue a new case (offline).
    Capture {
        #[arg(long)]
        zone: Uuid,
        #[arg(long)]
        category: String,
        #[arg(long, allow_negative_numbers = true)]
        lat: f64,
        #[arg(long, allow_negative_numbers = true)]
        lon: f64,
        #[arg(long, default_value_t = 10.0)]
        accuracy: f64,
        /// The datum of --lat and --lon; the server stores WGS-84.
        #[arg(long, value_enum, default_value = "wgs84")]
        datum: DatumArg,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, value_enum, default_value = "medium")]
        severity: SeverityArg,
        /// 16-digit asset code.
        #[arg(long)]
        asset: Option<String>,
        #[arg(long)]
        round: Option<Uuid>,
        /// A photo file; repeat for several.
        #[arg(long = "photo")]
        photos: Vec<PathBuf>,
    },
    /// Queue an edit of a case's mutable fields (offline).
    Edit {
        #[arg(long = "case")]
        case_id: Uuid,
        /// Defaults to the version in the local mirror (1 for a case created here, not pulled yet).
        #[arg(long)]
        base_version: Option<i64>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_enum)]
        severity: Option<SeverityArg>,
        /// A 16-digit asset code, or "none" to clear it.
        #[arg(long)]
        asset: Option<String>,
    },
    /// Queue a comment on a case (offline).
    Comment {
        #[arg(long = "case")]
        case_id: Uuid,
        #[arg(long)]
        text: String,
    },
    /// Queue a transition request (offline).
    Transition {
        #[arg(long = "case")]
        case_id: Uuid,
        #[arg(long, value_enum)]
        action: ActionArg,
        #[arg(long)]
        base_version: Option<i64>,
        #[arg(long)]
        comment: Option<String>,
        /// An "after" photo; repeat for several.
        #[arg(long = "photo")]
        photos: Vec<PathBuf>,
    },
    /// Queue an on-site verification of a case reported by the public (offline).
    Verify {
        #[arg(long = "case")]
        case_id: Uuid,
        /// The problem is not there as reported (default: it is).
        #[arg(long)]
        not_found: bool,
        #[arg(long, allow_negative_numbers = true)]
        lat: f64,
        #[arg(long, allow_negative_numbers = true)]
        lon: f64,
        #[arg(long, default_value_t = 10.0)]
        accuracy: f64,
        #[arg(long)]
        comment: Option<String>,
        /// A "verification" photo; repeat for several (at least one when found).
        #[arg(long = "photo")]
        photos: Vec<PathBuf>,
    },
    /// Push the queue, upload the photos of acknowledged operations, then pull.
    Sync,
    /// Upload (or resume uploading) the photos of acknowledged operations.
    Upload,
    /// Show the queue and the last receipt.
    Status,
    /// Show operations the server answered with a conflict or a rejection.
    Conflicts,
    /// List the cases in the local mirror.
    Cases,
    /// List the inbox as last pulled, newest first (`*` marks an unread notice).
    Inbox,
    /// Mark a notice of the inbox read (offline; the receipt is pushed on the next sync).
    Read {
        #[arg(long = "notice")]
        notice_id: Uuid,
    },
}

type HttpClient = Client<HttpTransport, TokioSleeper>;

async fn open(db: &std::path::Path, server: Option<&str>) -> Result<HttpClient, ClientError> {
    let store = Store::open(db).await?;
    let url = match server {
        Some(url) => url.to_owned(),
        None => store
            .identity()
            .await?
            .map(|i| i.server_url)
            .ok_or(ClientError::NotEnrolled)?,
    };
    Ok(Client::new(store, HttpTransport::new(&url)?, TokioSleeper))
}

fn photos(paths: &[PathBuf], role: PhotoRole) -> Result<Vec<LocalPhoto>, ClientError> {
    let now = OffsetDateTime::now_utc();
    paths
        .iter()
        .map(|p| photo_from_file(p, role, now))
        .collect()
}

fn print_upload(r: &UploadReport) {
    println!(
        "photos: {} uploaded ({} already on the server, {} resumed, {} bytes sent), {} refused{}",
        r.uploaded,
        r.already_verified,
        r.resumed,
        r.bytes_sent,
        r.refused,
        if r.waiting > 0 {
            format!(", {} waiting for the server", r.waiting)
        } else {
            String::new()
        }
    );
    if r.refused > 0 {
        println!("see `gridline-field status` for why photos were refused");
    }
}

async fn base_version(
    client: &HttpClient,
    case_id: Uuid,
    given: Option<i64>,
) -> Result<i64, ClientError> {
    if let Some(v) = given {
        return Ok(v);
    }
    let mirrored = client
        .store()
        .mirror_get(EntityKind::Case, &case_id.to_string())
        .await?;
    Ok(mirrored.map_or(1, |m| m.version))
}

async fn run(cli: Cli) -> Result<(), ClientError> {
    match cli.command {
        Command::Enrol {
            server,
            username,
            password,
            name,
        } => {
            let client = open(&cli.db, Some(&server)).await?;
            let id = client.enrol(&server, &username, &password, &name).await?;
            println!(
                "enrolled device {} for {username} at {server}",
                id.device_id
            );
        }
        Command::Login { password } => {
            open(&cli.db, None).await?.login(&password).await?;
            println!("logged in");
        }
        Command::Capture {
            zone,
            category,
            lat,
            lon,
            accuracy,
            datum,
            description,
            severity,
            asset,
            round,
            photos: paths,
        } => {
            let client = open(&cli.db, None).await?;
            let local = photos(&paths, PhotoRole::Before)?;
            let case_id = Uuid::now_v7();
            let op = Operation::CaseCreateV1(CaseCreateV1 {
                case_id,
                zone_id: zone,
                category_code: category,
                location: Location {
                    lat,
                    lon,
                    accuracy_m: accuracy,
                    datum: datum.into(),
                },
                asset_code: asset,
                description,
                severity: severity.into(),
                captured_at: OffsetDateTime::now_utc(),
                photos: local.iter().map(|p| p.manifest.clone()).collect(),
                round_id: round,
            });
            let entry = client.capture(op, &local).await?;
            println!("saved case {case_id} as operation {}", entry.seq);
        }
        Command::Edit {
            case_id,
            base_version: given,
            category,
            description,
            severity,
            asset,
        } => {
            let client = open(&cli.db, None).await?;
            let op = Operation::CaseEditV1(CaseEditV1 {
                case_id,
                base_version: base_version(&client, case_id, given).await?,
                changes: CaseChanges {
                    category_code: category,
                    description,
                    severity: severity.map(Into::into),
                    asset_code: asset.map(|a| (a != "none").then_some(a)),
                },
            });
            let entry = client.capture(op, &[]).await?;
            println!("saved edit as operation {}", entry.seq);
        }
        Command::Comment { case_id, text } => {
            let client = open(&cli.db, None).await?;
            let op = Operation::CaseCommentV1(CaseCommentV1 {
                case_id,
                comment_id: Uuid::now_v7(),
                text,
            });
            let entry = client.capture(op, &[]).await?;
            println!("saved comment as operation {}", entry.seq);
        }
        Command::Transition {
            case_id,
            action,
            base_version: given,
            comment,
            photos: paths,
        } => {
            let client = open(&cli.db, None).await?;
            let local = photos(&paths, PhotoRole::After)?;
            let op = Operation::CaseTransitionV1(CaseTransitionV1 {
                case_id,
                base_version: base_version(&client, case_id, given).await?,
                action: match action {
                    ActionArg::Withdraw => TransitionAction::Withdraw,
                    ActionArg::ReportRectified => TransitionAction::ReportRectified,
                },
                comment,
                photos: local.iter().map(|p| p.manifest.clone()).collect(),
            });
            let entry = client.capture(op, &local).await?;
            println!("saved transition as operation {}", entry.seq);
        }
        Command::Verify {
            case_id,
            not_found,
            lat,
            lon,
            accuracy,
            comment,
            photos: paths,
        } => {
            let client = open(&cli.db, None).await?;
            let local = photos(&paths, PhotoRole::Verification)?;
            let op = Operation::CaseVerifyV1(CaseVerifyV1 {
                case_id,
                verification_id: Uuid::now_v7(),
                found: !not_found,
                location: Location {
                    lat,
                    lon,
                    accuracy_m: accuracy,
                    datum: Default::default(),
                },
                verified_at: OffsetDateTime::now_utc(),
                comment,
                photos: local.iter().map(|p| p.manifest.clone()).collect(),
            });
            let entry = client.capture(op, &local).await?;
            println!("saved verification as operation {}", entry.seq);
        }
        Command::Sync => {
            let client = open(&cli.db, None).await?;
            let r = client.sync().await?;
            println!(
                "pushed: {} acknowledged ({} conflicts, {} rejected) in {} requests{}",
                r.push.acked,
                r.push.conflicts,
                r.push.rejected,
                r.push.requests,
                if r.push.unverified_receipt {
                    "; WARNING: a receipt did not verify"
                } else {
                    ""
                }
            );
            if let Some(n) = r.push.resent_from {
                println!("resent from seq {n} at the server's request");
            }
            print_upload(&r.upload);
            println!(
                "pulled: {} changes in {} pages{}",
                r.pull.changes,
                r.pull.pages,
                if r.pull.reset { " (full reset)" } else { "" }
            );
        }
        Command::Upload => {
            let client = open(&cli.db, None).await?;
            print_upload(&client.upload_photos().await?);
        }
        Command::Status => {
            let s = open(&cli.db, None).await?.status().await?;
            println!("device      {}", s.device_id);
            println!("server      {}", s.server_url);
            println!("user        {}", s.username.as_deref().unwrap_or("-"));
            println!("enrolled    {}", s.enrolled);
            println!("last seq    {} ({})", s.last_seq, s.last_hash);
            println!("pending     {}", s.pending);
            println!("acked       {}", s.acked);
            println!("conflicts   {}", s.conflicts);
            println!("rejected    {}", s.rejected);
            println!("deferred    {}", s.deferred);
            if let Some(skew) = s.clock_skew_ms {
                println!("clock skew  {skew} ms");
            }
            match s.last_receipt {
                Some(r) => println!(
                    "receipt     through {} at {} ({})",
                    r.receipt.acked_through,
                    r.receipt.server_time,
                    if r.verified {
                        "verified"
                    } else {
                        "NOT VERIFIED"
                    }
                ),
                None => println!("receipt     none yet"),
            }
            println!(
                "photos      {} uploaded, {} to upload, {} refused",
                s.photos.uploaded, s.photos.pending, s.photos.refused
            );
            for p in &s.refused_photos {
                println!(
                    "  refused   {} ({}): {}{}",
                    p.sha256,
                    p.path,
                    p.error_code.as_deref().unwrap_or("-"),
                    p.error_message
                        .as_deref()
                        .filter(|m| !m.is_empty())
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                );
            }
        }
        Command::Conflicts => {
            let client = open(&cli.db, None).await?;
            for c in client.conflicts().await? {
                println!(
                    "#{} {} {}: {}{}",
                    c.seq,
                    c.op_type,
                    c.status.as_str(),
                    c.code.map(|c| c.as_str()).unwrap_or("-"),
                    c.message.map(|m| format!(" ({m})")).unwrap_or_default()
                );
                for r in c.records {
                    println!(
                        "    {}: base {} server {} yours {} -> {:?} [{}]",
                        r.field.as_str(),
                        r.base_value,
                        r.server_value,
                        r.incoming_value,
                        r.resolution,
                        r.rule_id
                    );
                }
            }
            for c in client.mirror(EntityKind::Conflict).await? {
                println!("server conflict {} v{}: {}", c.id, c.version, c.data);
            }
        }
        Command::Cases => {
            let client = open(&cli.db, None).await?;
            for c in client.mirror(EntityKind::Case).await? {
                println!("{} v{} {}", c.id, c.version, c.data);
            }
        }
        Command::Inbox => {
            let client = open(&cli.db, None).await?;
            for n in client.inbox().await? {
                let read = match (n.read_at, n.read_pending) {
                    (None, _) => "*".to_owned(),
                    (Some(at), false) => format!("read {at}"),
                    (Some(at), true) => format!("read {at} (not synced)"),
                };
                println!(
                    "{} {} {} case {} {}",
                    n.id,
                    n.created_at,
                    n.kind,
                    n.case_id
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    read
                );
            }
        }
        Command::Read { notice_id } => {
            let client = open(&cli.db, None).await?;
            let entry = client.mark_read(notice_id).await?;
            println!("saved read receipt as operation {}", entry.seq);
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
