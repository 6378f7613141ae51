//! Layered configuration: built-in defaults, then an optional TOML file, then `GRIDLINE_*`
//! environment variables (nested keys with `__`, e.g. `GRIDLINE_AUTH__ACCESS_TTL_SECS`).
//!
//! Secrets are typed as [`Secret`] so they never reach a log or `print-config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::i18n::Lang;

/// A string that must never be printed: `Debug` and `Serialize` both show `[redacted]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Folder for the embedded database, local photos and signing keys.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to `sqlite://{data_dir}/gridline.db`.
    pub database_url: Option<Secret>,
    /// Maximum database connections in the pool. On PostgreSQL a second pool of up to as many
    /// serves reads of many rows (pull pages, case views) through the native driver and keeps
    /// up to 4 of them open: count twice this per instance against the server's limit.
    pub database_max_connections: u32,
    /// SQLite: how long a write waits for the one writer before it (in turn) before giving up
    /// with 503 `unavailable`, in milliseconds. SQLite has one writer at a time; the others
    /// queue for up to this long instead of being refused.
    pub database_write_wait_ms: u64,
    /// `pretty` for people, `json` for log collectors.
    pub log_format: LogFormat,
    pub auth: AuthConfig,
    pub blob: BlobConfig,
    pub limits: LimitsConfig,
    pub sync: SyncConfig,
    pub photos: PhotosConfig,
    pub deductions: DeductionsConfig,
    pub site: SiteConfig,
    pub console: ConsoleConfig,
    pub notifications: NotificationsConfig,
    pub intake: IntakeConfig,
    pub calendar: CalendarConfig,
}

/// The working day that deadlines in working hours or days count (see `workdays`); the
/// holidays and make-up working days are data (`gridline admin import-calendar`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// When the working day starts, local time (`site.time_zone`), `HH:MM`.
    pub day_start: String,
    /// When it ends, `HH:MM`, after `day_start`.
    pub day_end: String,
    /// The days of the week off unless the calendar names them working days.
    pub weekend: Vec<String>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        Self {
            day_start: "08:30".into(),
            day_end: "17:30".into(),
            weekend: vec!["saturday".into(), "sunday".into()],
        }
    }
}

impl CalendarConfig {
    /// The start, end and weekend days (checked when the configuration loads).
    pub fn parts(
        &self,
    ) -> Option<(
        jiff::civil::Time,
        jiff::civil::Time,
        Vec<jiff::civil::Weekday>,
    )> {
        let time = |t: &str| {
            let minutes = crate::localtime::parse_time_of_day(t)?;
            jiff::civil::Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0).ok()
        };
        let start = time(&self.day_start)?;
        let end = time(&self.day_end)?;
        let weekend = self
            .weekend
            .iter()
            .map(|d| crate::workdays::parse_weekday(d))
            .collect::<Option<Vec<_>>>()?;
        (start < end && weekend.len() < 7).then_some((start, end, weekend))
    }
}

/// Cases from outside the patrol: hotline calls, public reports, transfers, the press,
/// leaders' instructions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeConfig {
    /// How long a caller's name and phone number are kept after the call, days; then they are
    /// erased (the case and its callback outcomes stay).
    pub caller_retention_days: u32,
    /// An open case of the same category within this distance of a new report is suggested
    /// as the case it duplicates, metres.
    pub duplicate_radius_m: f64,
    /// ... if it was received within this many days before the report.
    pub duplicate_days: u32,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            caller_retention_days: 180,
            duplicate_radius_m: 50.0,
            duplicate_days: 7,
        }
    }
}

/// Notices and their delivery (webhooks, robots, email).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// How often each instance looks for deliveries that are due (milliseconds).
    pub poll_ms: u64,
    /// The SMTP server notices are mailed through, to users with an email address; none: no
    /// email (mails owed are then recorded as failed, so `/metrics` shows them).
    pub smtp: Option<SmtpConfig>,
    /// The marks of a dispatched case's time limit, in percent, at which the accountable
    /// chiefs are told: the first to the section chiefs, the second to the road chiefs, the
    /// third and later to the zone chiefs; under 100 "due soon", from 100 "overdue".
    pub escalation_marks_pct: Vec<u32>,
    /// How often each instance looks for marks passed (milliseconds).
    pub escalation_poll_ms: u64,
    /// When each person's daily digest of notices is mailed, `HH:MM` in the site's time zone
    /// (to those who chose the digest for some kinds, when something waits for it).
    pub digest_time: String,
    /// The rule of the rulebook under which a case that passes the first mark from 100 % (its
    /// deadline) untold is proposed for a deduction for lateness, by the system account, for a
    /// supervisor to decide; `""`: no such proposal. A rule missing from the rulebook in force,
    /// or one that does not apply to the case, proposes nothing (and is logged).
    pub overdue_rule_code: String,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            poll_ms: 1000,
            smtp: None,
            escalation_marks_pct: vec![50, 100, 150],
            escalation_poll_ms: 30_000,
            digest_time: "08:00".into(),
            overdue_rule_code: "OVERDUE".to_owned(),
        }
    }
}

/// An SMTP server for email notices.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtps://user:password@host:465` (TLS), `smtp://user:password@host:587?tls=required`
    /// (STARTTLS) or `smtp://host:25` (plain, for a relay on the same machine); the URL form
    /// of lettre's `AsyncSmtpTransport::from_url`.
    pub url: Secret,
    /// The sender, e.g. `Gridline <gridline@example.org>`.
    pub from: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of an access token (JWT), seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh token, seconds.
    pub refresh_ttl_secs: u64,
    pub issuer: String,
    pub audience: String,
    /// File holding the token and receipt signing keys; defaults to `{data_dir}/keys.json`.
    /// Several instances must share it (or a copy of it).
    pub key_file: Option<PathBuf>,
    /// Failed logins for one user name from one client address before that name is locked
    /// out there for a while (other addresses are not).
    pub login_max_failures: u32,
    /// Failed logins from one client address, whatever the user names, before the address is
    /// locked out (against one password tried on many accounts).
    pub login_max_failures_per_address: u32,
    /// Failed logins for one user name from all addresses together before the name is locked
    /// out everywhere (against guessing from many addresses).
    pub login_max_failures_per_user: u32,
    /// How long a lock lasts, and the window failures are counted in, seconds.
    pub login_lockout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobConfig {
    pub backend: BlobBackend,
    /// Folder for the `local` backend; defaults to `{data_dir}/blobs`.
    pub path: Option<PathBuf>,
    pub s3: S3Config,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BlobBackend {
    Local,
    Memory,
    S3,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:3900` for Garage; empty for AWS.
    pub endpoint: String,
    /// The region name signed into every request; Garage refuses any but its `s3_region`.
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Path-style addressing (`endpoint/bucket/key`), needed by Garage and MinIO.
    pub path_style: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest JSON request body, bytes.
    pub max_json_bytes: usize,
    /// A request that takes longer than this is answered 503.
    pub request_timeout_secs: u64,
    /// Authenticated requests per minute per user and per device (0: unlimited), per instance.
    pub requests_per_minute: u32,
    /// How many requests a user or device may make at once before the rate applies.
    pub request_burst: u32,
    /// Addresses of reverse proxies in front of the server. A request from one of them is
    /// taken to come from the address it names in `X-Forwarded-For` (login throttling is
    /// keyed on it); from any other peer that header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// How long deletions are kept as tombstones for pulls; older cursors must reset.
    pub tombstone_retention_days: u32,
    /// Clock skew (device vs server) above which operations are flagged, seconds.
    pub skew_flag_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeductionsConfig {
    /// Four eyes: whoever proposed a deduction may not approve it; another supervisor must.
    /// Turn off only where one person does both (a one-person office).
    pub four_eyes: bool,
    /// The approver must have opened every evidence photo (its original or preview, through a
    /// link or the console) before approving a deduction on it.
    pub require_photo_views: bool,
}

impl Default for DeductionsConfig {
    fn default() -> Self {
        Self {
            four_eyes: true,
            require_photo_views: true,
        }
    }
}

/// The supervisors' console (`/console`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// A session unused this long ends (seconds).
    pub session_idle_secs: u64,
    /// A session ends this long after sign-in however much it is used (seconds).
    pub session_max_secs: u64,
    /// Mark the session cookie `Secure` (browsers then send it over HTTPS only). Turn it on
    /// when the server is reached through TLS, as it should be outside a test bench.
    pub cookie_secure: bool,
    /// Base-map tiles under the console's maps. None (the default): the maps draw zone
    /// boundaries on a plain background and need no other server.
    pub map_tiles: Option<MapTiles>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            session_idle_secs: 4 * 3600,
            session_max_secs: 12 * 3600,
            cookie_secure: false,
            map_tiles: None,
        }
    }
}

/// A raster tile service in the usual XYZ scheme (256-pixel Web Mercator tiles), such as a
/// domestic service for a site in China or one the city runs itself. The browser loads the tiles
/// straight from it; the console's security policy allows its hosts for images and nothing
/// else.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapTiles {
    /// The address of one tile, with `{z}`, `{x}`, `{y}` and optionally `{s}` (a subdomain),
    /// e.g. `https://webrd0{s}.is.autonavi.com/appmaptile?style=8&x={x}&y={y}&z={z}`.
    pub url: String,
    /// The values `{s}` takes, spread over the tiles.
    #[serde(default)]
    pub subdomains: Vec<String>,
    /// The datum the tiles are drawn in: `gcj02` for most services in China, else `wgs84`.
    #[serde(default)]
    pub datum: gridline_sync::Datum,
    /// The credit the tile service asks for, shown under each map.
    #[serde(default)]
    pub attribution: String,
    /// The deepest zoom level the service has.
    #[serde(default = "default_max_zoom")]
    pub max_zoom: u8,
}

fn default_max_zoom() -> u8 {
    18
}

impl MapTiles {
    /// The address of tile `x`, `y` at zoom `z`.
    pub fn tile_url(&self, z: u8, x: u32, y: u32) -> String {
        let s = if self.subdomains.is_empty() {
            String::new()
        } else {
            self.subdomains[(x as usize + y as usize) % self.subdomains.len()].clone()
        };
        self.url
            .replace("{z}", &z.to_string())
            .replace("{x}", &x.to_string())
            .replace("{y}", &y.to_string())
            .replace("{s}", &s)
    }

    /// The origins the tiles come from (`https://host[:port]`), for the security policy.
    pub fn origins(&self) -> Vec<String> {
        let subs: Vec<&str> = if self.subdomains.is_empty() {
            vec![""]
        } else {
            self.subdomains.iter().map(String::as_str).collect()
        };
        let mut out: Vec<String> = subs
            .into_iter()
            .filter_map(|s| {
                let url = self.url.replace("{s}", s);
                let (scheme, rest) = url.split_once("://")?;
                let host = rest.split(['/', '?']).next()?;
                Some(format!("{scheme}://{host}"))
            })
            .collect();
        out.dedup();
        out
    }

    fn check(&self) -> Result<(), String> {
        for part in ["{z}", "{x}", "{y}"] {
            if !self.url.contains(part) {
                return Err(format!("the url must contain {part}"));
            }
        }
        if !(self.url.starts_with("https://") || self.url.starts_with("http://")) {
            return Err("the url must start with https:// or http://".into());
        }
        if self.url.contains("{s}") && self.subdomains.is_empty() {
            return Err("the url has {s}: list the subdomains".into());
        }
        let bad_char =
            |c: char| c.is_whitespace() || matches!(c, ';' | ',' | '\'' | '"' | '{' | '}');
        if self.origins().iter().any(|o| o.chars().any(bad_char)) {
            return Err("the url's host must be a plain host name".into());
        }
        if !(1..=22).contains(&self.max_zoom) {
            return Err("max_zoom must be between 1 and 22".into());
        }
        Ok(())
    }
}

/// The office the server works for: the language it speaks to a reader who names none it
/// knows, and the time zone of everything a person reads or a period is cut by.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// `zh-CN` or `en`: messages, names and export headers for a request whose
    /// `Accept-Language` names neither.
    pub language: Lang,
    /// An IANA time zone (`Asia/Shanghai`): month periods run from local midnight to local
    /// midnight, and exports and pages show times in it. The wire protocol keeps UTC instants.
    pub time_zone: String,
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            language: Lang::ZhCn,
            time_zone: "Asia/Shanghai".into(),
        }
    }
}

impl Config {
    /// The site's working week (`calendar`, in `site.time_zone`; checked when the
    /// configuration loads, the defaults otherwise).
    pub fn work_week(&self) -> crate::workdays::WorkWeek {
        let (day_start, day_end, weekend) = self
            .calendar
            .parts()
            .or_else(|| CalendarConfig::default().parts())
            .unwrap_or((
                jiff::civil::Time::midnight(),
                jiff::civil::Time::MAX,
                Vec::new(),
            ));
        crate::workdays::WorkWeek {
            tz: self.site.tz(),
            day_start,
            day_end,
            weekend,
        }
    }
}

impl SiteConfig {
    /// The site's time zone (checked when the configuration loads; UTC if it is unknown).
    pub fn tz(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhotosConfig {
    /// Largest photo accepted, megapixels (width × height / 1e6); also bounds decoding.
    pub max_megapixels: f64,
    /// Largest one-request upload (`PUT /v1/photos/{sha256}`), bytes; bigger photos use tus.
    pub max_single_put_bytes: u64,
    /// Size of the pieces a request body is cut into in the blob store, bytes: the most one
    /// upload request holds in memory, except a body that brings a whole photo of at most a
    /// quarter of `receive_budget_bytes`, which is held whole, verified from memory and stored
    /// once as the original.
    pub chunk_bytes: usize,
    /// Bytes all receiving upload requests together may hold in memory, bytes. A request waits
    /// for room before it takes each piece; one that finds none before its receiving time ends
    /// answers 503 with `Retry-After` and keeps nothing of that body (its offset stays where it
    /// was). At least `chunk_bytes`.
    pub receive_budget_bytes: usize,
    /// A partial upload untouched for this long expires and is deleted, seconds.
    pub upload_expiry_secs: u64,
    /// How often expired uploads are looked for, seconds.
    pub cleanup_interval_secs: u64,
    /// Photos decoded at once by the derivative worker (one, at the lowest CPU priority, while
    /// photos are coming in), and photos reassembled from pieces and checked at once when
    /// their uploads complete: bounds memory.
    pub max_concurrent_decodes: usize,
    /// How often the derivative worker looks for pending photos, seconds.
    pub worker_poll_secs: u64,
    /// Attempts at making a photo's derivatives before it is marked failed.
    pub derivative_max_attempts: u32,
    /// Longest side of the thumbnail and of the preview, pixels.
    pub thumb_px: u32,
    pub preview_px: u32,
    /// Lifetime of a link to a photo, seconds.
    pub link_ttl_secs: u64,
    /// EXIF capture time further than this from the claimed capture time is flagged, seconds.
    pub exif_time_tolerance_secs: u64,
    /// EXIF times carry no zone unless the camera wrote `OffsetTimeOriginal`; this offset from
    /// UTC is assumed otherwise, minutes (480: China Standard Time).
    pub exif_default_utc_offset_minutes: i32,
    /// EXIF position further than this from the claimed position is flagged, metres.
    pub exif_gps_tolerance_m: f64,
}

impl Default for PhotosConfig {
    fn default() -> Self {
        Self {
            max_megapixels: 50.0,
            max_single_put_bytes: 4 * 1024 * 1024,
            chunk_bytes: 1024 * 1024,
            receive_budget_bytes: 32 * 1024 * 1024,
            upload_expiry_secs: 24 * 3600,
            cleanup_interval_secs: 600,
            max_concurrent_decodes: 2,
            worker_poll_secs: 5,
            derivative_max_attempts: 5,
            thumb_px: 256,
            preview_px: 1600,
            link_ttl_secs: 300,
            exif_time_tolerance_secs: 600,
            exif_default_utc_offset_minutes: 480,
            exif_gps_tolerance_m: 200.0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 10,
            database_write_wait_ms: 10_000,
            log_format: LogFormat::Pretty,
            auth: AuthConfig::default(),
            blob: BlobConfig::default(),
            limits: LimitsConfig::default(),
            sync: SyncConfig::default(),
            photos: PhotosConfig::default(),
            deductions: DeductionsConfig::default(),
            site: SiteConfig::default(),
            console: ConsoleConfig::default(),
            notifications: NotificationsConfig::default(),
            intake: IntakeConfig::default(),
            calendar: CalendarConfig::default(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            issuer: "gridline".into(),
            audience: "gridline-api".into(),
            key_file: None,
            login_max_failures: 5,
            login_max_failures_per_address: 20,
            login_max_failures_per_user: 50,
            login_lockout_secs: 300,
        }
    }
}

impl Default for BlobConfig {
    fn default() -> Self {
        Self {
            backend: BlobBackend::Local,
            path: None,
            s3: S3Config::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_json_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            requests_per_minute: 600,
            request_burst: 120,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            tombstone_retention_days: 30,
            skew_flag_secs: 300,
        }
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "database_max_connections",
    "database_write_wait_ms",
    "log_format",
    "auth",
    "blob",
    "limits",
    "sync",
    "photos",
    "deductions",
    "site",
    "console",
];

/// A configuration error that names the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `file` (if given, it must exist), then `GRIDLINE_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only variables naming a setting: GRIDLINE_LOG, GRIDLINE_CONFIG and the test harness's
        // variables share the prefix but are not settings.
        figment = figment.merge(
            Env::prefixed("GRIDLINE_")
                .filter(|key| {
                    let key = key.as_str().to_ascii_lowercase();
                    let top = key.split("__").next().unwrap_or("");
                    TOP_LEVEL_KEYS.contains(&top)
                })
                .split("__"),
        );
        let config: Config = figment.extract().map_err(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                e.path.join(".")
            };
            let mut msg = e.to_string();
            if !key.is_empty() && !msg.contains(&key) {
                msg = format!("setting `{key}`: {msg}");
            }
            ConfigError(msg)
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("setting `{key}`: {why}")));
        if let Some(url) = &self.database_url {
            let url = url.expose();
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres:")
                || url.starts_with("postgresql:"))
            {
                return bad("database_url", "must start with sqlite: or postgres://");
            }
        }
        if self.auth.access_ttl_secs < 30 || self.auth.access_ttl_secs > 24 * 3600 {
            return bad("auth.access_ttl_secs", "must be between 30 and 86400");
        }
        if self.auth.refresh_ttl_secs < self.auth.access_ttl_secs {
            return bad(
                "auth.refresh_ttl_secs",
                "must not be shorter than auth.access_ttl_secs",
            );
        }
        if self.auth.login_max_failures == 0 {
            return bad("auth.login_max_failures", "must be at least 1");
        }
        if self.auth.login_max_failures_per_address == 0 {
            return bad("auth.login_max_failures_per_address", "must be at least 1");
        }
        if self.auth.login_max_failures_per_user < self.auth.login_max_failures {
            return bad(
                "auth.login_max_failures_per_user",
                "must be at least auth.login_max_failures",
            );
        }
        if !(60..=7 * 86_400).contains(&self.console.session_idle_secs) {
            return bad("console.session_idle_secs", "must be between 60 and 604800");
        }
        if self.console.session_max_secs < self.console.session_idle_secs {
            return bad(
                "console.session_max_secs",
                "must not be shorter than console.session_idle_secs",
            );
        }
        if !(50..=60_000).contains(&self.notifications.poll_ms) {
            return bad("notifications.poll_ms", "must be between 50 and 60000");
        }
        let marks = &self.notifications.escalation_marks_pct;
        if marks.len() > 10 || marks.iter().any(|m| !(1..=1000).contains(m)) {
            return bad(
                "notifications.escalation_marks_pct",
                "at most 10 marks, each between 1 and 1000 (percent of the time limit)",
            );
        }
        if crate::localtime::parse_time_of_day(&self.notifications.digest_time).is_none() {
            return bad(
                "notifications.digest_time",
                "must be a time of day as HH:MM, 00:00 to 23:59",
            );
        }
        if !(50..=3_600_000).contains(&self.notifications.escalation_poll_ms) {
            return bad(
                "notifications.escalation_poll_ms",
                "must be between 50 and 3600000",
            );
        }
        if !(1..=3650).contains(&self.intake.caller_retention_days) {
            return bad("intake.caller_retention_days", "must be between 1 and 3650");
        }
        let radius = self.intake.duplicate_radius_m;
        if !(radius.is_finite() && (1.0..=5000.0).contains(&radius)) {
            return bad("intake.duplicate_radius_m", "must be between 1 and 5000");
        }
        if !(1..=365).contains(&self.intake.duplicate_days) {
            return bad("intake.duplicate_days", "must be between 1 and 365");
        }
        if let Some(smtp) = &self.notifications.smtp {
            if smtp.from.parse::<lettre::message::Mailbox>().is_err() {
                return bad(
                    "notifications.smtp.from",
                    "must be a mailbox such as Gridline <gridline@example.org>",
                );
            }
            let transport =
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(smtp.url.expose());
            if transport.is_err() {
                return bad(
                    "notifications.smtp.url",
                    "must be an smtp:// or smtps:// URL, e.g. smtps://user:password@mail.example.org",
                );
            }
        }
        if let Some(tiles) = &self.console.map_tiles {
            if let Err(why) = tiles.check() {
                return bad("console.map_tiles", &why);
            }
        }
        if jiff::tz::TimeZone::get(&self.site.time_zone).is_err() {
            return bad(
                "site.time_zone",
                "must be an IANA time zone such as Asia/Shanghai or UTC",
            );
        }
        if self.calendar.parts().is_none() {
            return bad(
                "calendar",
                "day_start and day_end must be HH:MM with the start first, and weekend a list of \
                 fewer than seven day names (saturday, sunday...)",
            );
        }
        if self.database_max_connections == 0 {
            return bad("database_max_connections", "must be at least 1");
        }
        if !(1..=600_000).contains(&self.database_write_wait_ms) {
            return bad("database_write_wait_ms", "must be between 1 and 600000");
        }
        if self.limits.max_json_bytes < 1024 {
            return bad("limits.max_json_bytes", "must be at least 1024");
        }
        if self.limits.request_timeout_secs == 0 {
            return bad("limits.request_timeout_secs", "must be at least 1");
        }
        if self.photos.chunk_bytes < 64 * 1024 || self.photos.chunk_bytes > 16 * 1024 * 1024 {
            return bad("photos.chunk_bytes", "must be between 65536 and 16777216");
        }
        if self.photos.receive_budget_bytes < self.photos.chunk_bytes
            || self.photos.receive_budget_bytes > 1 << 30
        {
            return bad(
                "photos.receive_budget_bytes",
                "must be at least photos.chunk_bytes and at most 1073741824",
            );
        }
        if self.photos.max_concurrent_decodes == 0 {
            return bad("photos.max_concurrent_decodes", "must be at least 1");
        }
        if self.photos.max_megapixels <= 0.0 {
            return bad("photos.max_megapixels", "must be positive");
        }
        if self.blob.backend == BlobBackend::S3 {
            if self.blob.s3.bucket.is_empty() {
                return bad("blob.s3.bucket", "is required when blob.backend = \"s3\"");
            }
            if self.blob.s3.access_key_id.is_empty() {
                return bad(
                    "blob.s3.access_key_id",
                    "is required when blob.backend = \"s3\"",
                );
            }
        }
        Ok(())
    }

    /// The database URL in effect (the embedded SQLite file unless configured).
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}/gridline.db?mode=rwc", self.data_dir.display()),
        }
    }

    pub fn key_file(&self) -> PathBuf {
        self.auth
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys.json"))
    }

    pub fn blob_path(&self) -> PathBuf {
        self.blob
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("blobs"))
    }

    /// The effective configuration as TOML, with every secret redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut value = toml::Value::try_from(self).unwrap_or(toml::Value::String(String::new()));
        if let (Some(url), Some(table)) = (&self.database_url, value.as_table_mut()) {
            table.insert(
                "database_url".into(),
                toml::Value::String(redact_url(url.expose())),
            );
        }
        toml::to_string_pretty(&value).unwrap_or_default()
    }
}

/// Hides the password of a `scheme://user:password@host/db` URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:[redacted]{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://u:pw@h/db"),
            "postgres://u:[redacted]@h/db"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
    }
}
