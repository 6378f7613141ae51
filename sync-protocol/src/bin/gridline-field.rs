//! `gridline-field`: the reference phone client as a command line tool.
//!
//! Everything is stored in one SQLite file (`--db`, default `./field.db`). `capture`, `edit`,
//! `comment`, `transition`, `verify`, `read`, `start-round`, `checklist` and `track` work
//! offline; `sync` (push, photo uploads, pull) and `upload`
//! (photo uploads alone) talk to the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gridline_sync::client::{
    photo_from_file, Client, ClientError, HttpTransport, LocalPhoto, Store, TokioSleeper,
    UploadReport,
};
use gridline_sync::ops::{
    CaseChanges, CaseCommentV1, CaseCreateV1, CaseEditV1, CaseTransitionV1, CaseVerifyV1,
    ChecklistResponse, Location, Operation, PhotoRole, Severity, TransitionAction,
};
use gridline_sync::plan::{ItemResult, PlanView};
use gridline_sync::wire::EntityKind;
use time::format_description::well_known::Rfc3339;
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
    /// List the inspection plans assigned to this user as last pulled: zones, next
    /// occurrences and checklist items.
    Plans,
    /// Start a round for an occurrence of a plan (offline); prints the round's id.
    StartRound {
        #[arg(long)]
        plan: Uuid,
        /// One of the plan's zones (default: its first).
        #[arg(long)]
        zone: Option<Uuid>,
        /// The occurrence's start, RFC 3339, as `plans` shows it (default: the first one
        /// listed, the one open now or next).
        #[arg(long)]
        occurrence: Option<String>,
    },
    /// Submit a plan's checklist for a round (offline). The photos upload on sync.
    Checklist {
        #[arg(long)]
        plan: Uuid,
        #[arg(long)]
        round: Uuid,
        /// ITEM=pass|fail|na; repeat for each item answered.
        #[arg(long = "answer", value_parser = key_value)]
        answers: Vec<(String, String)>,
        /// ITEM=FILE: a "before" photo of an item; repeat for several.
        #[arg(long = "photo", value_parser = key_value)]
        photos: Vec<(String, String)>,
        /// ITEM=TEXT: a note on an item.
        #[arg(long = "note", value_parser = key_value)]
        notes: Vec<(String, String)>,
        /// Where the failed items were found (needed for a failure that raises a case).
        #[arg(long, allow_negative_numbers = true, requires = "lon")]
        lat: Option<f64>,
        #[arg(long, allow_negative_numbers = true, requires = "lat")]
        lon: Option<f64>,
        #[arg(long, default_value_t = 10.0)]
        accuracy: f64,
    },
    /// Record a round's track (offline) from positions LAT,LON in order.
    Track {
        #[arg(long)]
        round: Uuid,
        /// LAT,LON (WGS-84); repeat for each position.
        #[arg(long = "point", allow_hyphen_values = true, value_parser = lat_lon)]
        points: Vec<(f64, f64)>,
    },
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn lat_lon(s: &str) -> Result<(f64, f64), String> {
    let (lat, lon) = s
        .split_once(',')
        .ok_or_else(|| format!("expected LAT,LON, got {s:?}"))?;
    let num = |t: &str| t.trim().parse::<f64>().map_err(|e| format!("{t:?}: {e}"));
    Ok((num(lat)?, num(lon)?))
}

async fn plan(client: &HttpClient, id: Uuid) -> Result<PlanView, ClientError> {
    client
        .plans()
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| invalid("plan", "no such plan assigned to you (run sync)"))
}

fn invalid(path: &str, message: &str) -> ClientError {
    let mut e = gridline_sync::validation::ValidationErrors::new();
    e.push(path, message);
    ClientError::Invalid(gridline_sync::ops::OperationError::Invalid(e))
}

type HttpClient = Client<HttpTransport, TokioSleeper>;

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

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
        Command::Plans => {
            let client = open(&cli.db, None).await?;
            for p in client.plans().await? {
                let kind = serde_json::to_value(p.kind).unwrap_or_default();
                println!(
                    "{} {} ({}, {}){}",
                    p.id,
                    p.name,
                    kind.as_str().unwrap_or("-"),
                    p.rrule,
                    if p.cancelled_at.is_some() {
                        " CANCELLED"
                    } else {
                        ""
                    }
                );
                for z in &p.zones {
                    println!("  zone       {z}");
                }
                for o in &p.upcoming {
                    println!(
                        "  occurrence {} until {}",
                        fmt_time(o.starts_at),
                        fmt_time(o.ends_at)
                    );
                }
                for i in &p.checklist.items {
                    println!(
                        "  item       {} {:?} weight {}{}{}",
                        i.id,
                        i.label,
                        i.weight,
                        if i.mandatory { " mandatory" } else { "" },
                        i.category_code
                            .as_deref()
                            .map(|c| format!(" raises {c}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        Command::StartRound {
            plan: plan_id,
            zone,
            occurrence,
        } => {
            let client = open(&cli.db, None).await?;
            let plan = plan(&client, plan_id).await?;
            let zone = zone
                .or_else(|| plan.zones.first().copied())
                .ok_or_else(|| invalid("zone", "the plan names no zone"))?;
            let occurrence_at = match occurrence {
                Some(text) => OffsetDateTime::parse(&text, &Rfc3339)
                    .map_err(|e| invalid("occurrence", &e.to_string()))?,
                None => plan
                    .upcoming
                    .first()
                    .map(|o| o.starts_at)
                    .ok_or_else(|| invalid("occurrence", "the plan has no occurrence ahead"))?,
            };
            let (round, entry) = client.start_plan_round(&plan, zone, occurrence_at).await?;
            println!("started round {round} as operation {}", entry.seq);
        }
        Command::Checklist {
            plan: plan_id,
            round,
            answers,
            photos: photo_args,
            notes,
            lat,
            lon,
            accuracy,
        } => {
            let client = open(&cli.db, None).await?;
            let plan = plan(&client, plan_id).await?;
            let location = lat.zip(lon).map(|(lat, lon)| Location {
                lat,
                lon,
                accuracy_m: accuracy,
                datum: Default::default(),
            });
            let mut list = Vec::new();
            for (item, answer) in answers {
                let result = match answer.as_str() {
                    "pass" => ItemResult::Pass,
                    "fail" => ItemResult::Fail,
                    "na" | "not_applicable" => ItemResult::NotApplicable,
                    other => {
                        return Err(invalid(
                            "answer",
                            &format!("{item}={other}: pass, fail or na"),
                        ))
                    }
                };
                let files: Vec<PathBuf> = photo_args
                    .iter()
                    .filter(|(i, _)| *i == item)
                    .map(|(_, f)| PathBuf::from(f))
                    .collect();
                let note = notes
                    .iter()
                    .find(|(i, _)| *i == item)
                    .map(|(_, n)| n.clone());
                list.push((
                    ChecklistResponse {
                        item_id: item,
                        result,
                        note,
                        location: (result == ItemResult::Fail).then_some(location).flatten(),
                        photos: vec![],
                    },
                    photos(&files, PhotoRole::Before)?,
                ));
            }
            let entry = client.submit_checklist(&plan, round, list).await?;
            println!("saved checklist as operation {}", entry.seq);
        }
        Command::Track { round, points } => {
            let client = open(&cli.db, None).await?;
            let entry = client.record_track(round, &points).await?;
            println!(
                "saved track of {} positions as operation {}",
                points.len(),
                entry.seq
            );
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
