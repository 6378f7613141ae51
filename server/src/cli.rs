//! The `gridline` command line.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use gridline_sync::Role;
use uuid::Uuid;

use crate::config::Config;
use crate::demo::DemoSite;
use crate::ledger::log::Checkpoint;
use crate::model::UserInput;
use crate::state::AppState;

#[derive(Parser)]
#[command(
    name = "gridline",
    version,
    about = "Gridline: grid-based city inspection server"
)]
pub struct Cli {
    /// TOML configuration file (settings there are overridden by GRIDLINE_* variables).
    #[arg(long, global = true, env = "GRIDLINE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server (migrations are applied at start).
    Serve {
        /// Load a demo subdistrict first (if the database has no zones yet) and print its
        /// logins: `--demo` is Taihe in Chinese, `--demo en` one in English (which also makes
        /// English the site's language).
        #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "zh", value_name = "SITE")]
        demo: Option<DemoSite>,
    },
    /// Load a demo subdistrict into the database (Taihe in Chinese, or `en`) and print its
    /// logins.
    Demo {
        #[arg(value_enum, default_value = "zh", value_name = "SITE")]
        site: DemoSite,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration, secrets redacted.
    PrintConfig,
    /// Print the OpenAPI document (YAML), as committed in openapi.yaml.
    PrintOpenapi,
    /// Administration.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The deduction ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Check a revealed unannounced plan's seal, offline: that the plan, with its nonce, gives
    /// the commitment, that the signed plan log includes it, and that it was committed before
    /// the plan's first finding. Exit 1 and say what fails, if anything does.
    VerifySeal {
        /// The proof as `GET /v1/plans/{id}/seal` serves it (JSON), after the reveal.
        #[arg(long, value_name = "FILE")]
        proof: PathBuf,
        /// The server's Ed25519 public key, base64 of its 32 bytes, as obtained from the
        /// operator (not taken from the proof).
        #[arg(long, value_name = "BASE64")]
        public_key: String,
    },
}

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Recompute the hash chain and check every stored checkpoint (and a saved one) against
    /// the entries; exit 1 and say what is wrong if anything is.
    Verify {
        /// A checkpoint saved earlier, as `GET /v1/ledger/checkpoint` serves it (JSON): the
        /// ledger must still hold exactly the entries it covers.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a user.
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: Option<String>,
        /// The password (at least 8 characters). Prefer GRIDLINE_NEW_PASSWORD to keep it out of shell history.
        #[arg(long, env = "GRIDLINE_NEW_PASSWORD")]
        password: String,
        /// Roles: admin, supervisor, inspector, zone_chief, road_chief, section_chief, squad_member,
        /// hotline_operator.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
    },
    /// Set a user's password and revoke their refresh tokens.
    ResetPassword {
        #[arg(long)]
        username: String,
        #[arg(long, env = "GRIDLINE_NEW_PASSWORD")]
        password: String,
    },
    /// Revoke a device: it is refused at its next request.
    RevokeDevice {
        #[arg(long)]
        device_id: Uuid,
    },
    /// Register a client application of the Open311 façade (a city portal, a civic app) and
    /// print its API key, which is shown this once and kept only as a hash.
    AddOpen311Client {
        /// The application's name, e.g. "City portal".
        #[arg(long)]
        name: String,
    },
    /// Import holidays and make-up working days from a CSV file (`date,kind,name`, kind
    /// `holiday` or `workday`): each year the file names is replaced by its days.
    ImportCalendar {
        /// The file, e.g. `holidays-2027.csv`.
        file: std::path::PathBuf,
    },
    /// Add a new token, receipt and ledger checkpoint signing key; older keys keep verifying.
    RotateKeys,
    /// Make the key file in `auth.key_file` the one in use on the database, when the key file
    /// the servers used is lost for good: every token signed before stops working, and
    /// instances with another key file refuse to start.
    AdoptKeyFile,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::ALL
        .iter()
        .copied()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role `{s}`; use one of {}", names.join(", "))
        })
}

/// Entry point of the binary; returns the process exit code.
pub async fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::PrintOpenapi = cli.command {
        print!("{}", crate::openapi_yaml());
        return Ok(());
    }
    if let Command::VerifySeal { proof, public_key } = &cli.command {
        return verify_seal(proof, public_key);
    }
    let config = Config::load(cli.config.as_deref())?;
    crate::telemetry::init_logging(config.log_format);
    match cli.command {
        Command::PrintOpenapi | Command::VerifySeal { .. } => Ok(()),
        Command::PrintConfig => {
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Migrate => {
            let state = AppState::build(config).await?;
            println!("migrations applied ({})", state.db.backend.name());
            Ok(())
        }
        Command::Demo { site } => {
            let state = AppState::build(config).await?;
            print_logins(&crate::demo::load(&state, site).await?);
            Ok(())
        }
        Command::Serve { demo } => serve(config, demo).await,
        Command::Admin(cmd) => admin(config, cmd).await,
        Command::Ledger(LedgerCommand::Verify { checkpoint }) => {
            ledger_verify(config, checkpoint.as_deref()).await
        }
    }
}

/// `gridline verify-seal`: needs neither the database nor the configuration.
fn verify_seal(path: &Path, public_key: &str) -> anyhow::Result<()> {
    use base64::Engine;
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let proof: crate::seal::SealProof = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("{} is not a seal as the API serves it: {e}", path.display())
    })?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(public_key.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| anyhow::anyhow!("--public-key: not base64 of an Ed25519 public key"))?;
    let problems = crate::seal::verify(&proof, &key);
    if problems.is_empty() {
        let findings = match proof.first_finding_at {
            Some(at) => format!("before its first finding ({at} ms)"),
            None => "no finding is linked to it yet".to_owned(),
        };
        println!(
            "plan {}: sealed as committed at {} ms (leaf {} of the plan log), {findings}; it \
             verifies",
            proof.content.plan_id, proof.receipt.timestamp, proof.receipt.tree_size
        );
        return Ok(());
    }
    for p in &problems {
        eprintln!("plan {}: {}", proof.content.plan_id, p.describe());
    }
    anyhow::bail!("the seal does not verify")
}

/// `gridline ledger verify`: the hash chain, then the stored checkpoints and the saved one.
async fn ledger_verify(config: Config, checkpoint: Option<&Path>) -> anyhow::Result<()> {
    let saved = match checkpoint {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let cp: Checkpoint = serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a checkpoint as the API serves it: {e}",
                    path.display()
                )
            })?;
            vec![cp]
        }
        None => vec![],
    };
    let state = AppState::build(config).await?;
    let (checked, first_bad) = crate::store::ledger::verify_chain(&state.db.pool).await?;
    let log =
        crate::store::ledger_log::verify_log(&state.db.pool, state.keys.as_ref(), &saved).await?;
    let mut problems = Vec::new();
    if let Some(b) = &first_bad {
        problems.push(format!(
            "ledger broken at entry {} (seq {}): {}; {checked} entries before it are intact",
            b.id, b.seq, b.problem
        ));
    }
    for (cp, problem) in &log.stored_problems {
        problems.push(format!(
            "stored checkpoint of tree size {} (issued at {} ms) does not hold: {}",
            cp.tree_size,
            cp.timestamp,
            problem.describe()
        ));
    }
    for (cp, problem) in saved.iter().zip(&log.given) {
        if let Some(problem) = problem {
            problems.push(format!(
                "checkpoint {} (tree size {}, {} entries in the ledger) does not hold: {}",
                checkpoint
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                cp.tree_size,
                log.entries,
                problem.describe()
            ));
        }
    }
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("\n"));
    }
    let mut ok = format!(
        "ledger ok: {checked} entries, chain intact; {} stored checkpoints hold",
        log.stored
    );
    if let (Some(path), Some(cp)) = (checkpoint, saved.first()) {
        ok.push_str(&format!(
            "; checkpoint {} (tree size {}) holds",
            path.display(),
            cp.tree_size
        ));
    }
    println!("{ok}");
    Ok(())
}

fn print_logins(logins: &[crate::demo::DemoLogin]) {
    println!(
        "Demo logins (password for all: {}):",
        crate::demo::DEMO_PASSWORD
    );
    for l in logins {
        let zone = l.zone.as_deref().unwrap_or("all zones");
        println!("  {:<16} {:<14} {}", l.username, l.role.as_str(), zone);
    }
}

async fn serve(mut config: Config, demo: Option<DemoSite>) -> anyhow::Result<()> {
    let listen = config.listen;
    if demo == Some(DemoSite::English) {
        config.site.language = crate::i18n::Lang::En;
    }
    let state = AppState::build(config).await?;
    if let Some(site) = demo {
        print_logins(&crate::demo::load(&state, site).await?);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen} (setting `listen`): {e}"))?;
    tracing::info!(%listen, backend = state.db.backend.name(), "gridline listening");
    println!("Gridline listening on http://{listen} (API docs at http://{listen}/docs)");
    crate::run(listener, state, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

async fn admin(config: Config, cmd: AdminCommand) -> anyhow::Result<()> {
    if let AdminCommand::RotateKeys = cmd {
        let kid = crate::auth::keys::Keyring::rotate(&config.key_file())?;
        println!("new signing key {kid}; restart the servers to sign with it");
        return Ok(());
    }
    if let AdminCommand::AdoptKeyFile = cmd {
        let db = crate::store::Db::connect(&config.database_url(), 1).await?;
        let keys = crate::auth::keys::Keyring::load_or_create(&config.key_file())?;
        keys.adopt(&db).await?;
        println!(
            "signing key {} of {} is now the key in use; restart the servers",
            keys.current.kid,
            config.key_file().display()
        );
        return Ok(());
    }
    let state = AppState::build(config).await?;
    let err = |e: crate::error::ApiError| anyhow::anyhow!("{}", e.message);
    match cmd {
        AdminCommand::CreateUser {
            username,
            display_name,
            password,
            roles,
        } => {
            let display_name = display_name.unwrap_or_else(|| username.clone());
            let user = crate::accounts::create_user(
                &state.db,
                None,
                UserInput {
                    username,
                    display_name,
                    password,
                    roles,
                },
            )
            .await
            .map_err(err)?;
            println!("created user {} ({})", user.username, user.id);
        }
        AdminCommand::ResetPassword { username, password } => {
            let user = crate::store::users::by_username(&state.db.pool, &username)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user named {username}"))?;
            crate::accounts::set_password(&state.db, None, user.id, password)
                .await
                .map_err(err)?;
            println!("password of {username} reset; their refresh tokens are revoked");
        }
        AdminCommand::RevokeDevice { device_id } => {
            let info = crate::accounts::revoke_device(
                &state.db,
                crate::accounts::Revoker::Operator,
                device_id,
            )
            .await
            .map_err(err)?;
            println!("device {} of user {} revoked", info.device_id, info.user_id);
        }
        AdminCommand::AddOpen311Client { name } => {
            let (client, key) = crate::open311::add_client(&state.db, None, &name)
                .await
                .map_err(err)?;
            println!(
                "Open311 client {} registered ({}); its api_key, shown only now:\n{key}",
                client.name, client.id
            );
        }
        AdminCommand::ImportCalendar { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let done = crate::workcalendar::import(&state.db, None, &text)
                .await
                .map_err(err)?;
            println!(
                "calendar imported: {} holidays and {} make-up working days for {} ({} days replaced)",
                done.holidays,
                done.workdays,
                done.years
                    .iter()
                    .map(i16::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                done.replaced
            );
        }
        AdminCommand::RotateKeys | AdminCommand::AdoptKeyFile => {}
    }
    Ok(())
}
