//! `bulwark.toml`: the policy as code. Every key of `[policy]` is optional and defaults to the
//! company's commitments (RPO 24 h, RTO 4 h, 30-day retention, quarterly restore tests, yearly
//! drills and reviews, SEV-1/2 updates every 2 h, post-mortems within 10 business days).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::duration::{CalendarDuration, parse_duration};
use crate::retention::{KeepRules, parse_keep_count};
use crate::schedule::Schedule;

/// A place in the configuration file, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Line and column (1-based) of a byte offset.
pub fn locate(text: &str, offset: usize) -> Location {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Location { line, column }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Critical,
    Standard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    Postgres,
    /// MariaDB or MySQL.
    Mariadb,
    Sqlite,
    Files,
    Command,
    /// An S3 bucket or prefix: its objects, with their metadata.
    S3,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    policy: RawPolicy,
    ledger: Option<String>,
    #[serde(default)]
    repositories: BTreeMap<String, Spanned<RawRepository>>,
    #[serde(default)]
    datasets: BTreeMap<String, Spanned<RawDataset>>,
    #[serde(default)]
    roles: BTreeMap<String, Spanned<RawRole>>,
    #[serde(default)]
    notifications: BTreeMap<String, Spanned<RawNotification>>,
    #[serde(default)]
    components: BTreeMap<String, Spanned<RawComponent>>,
    daemon: Option<Spanned<RawDaemon>>,
    drill: Option<Spanned<RawDrill>>,
    #[serde(default)]
    replication: BTreeMap<String, Spanned<crate::replication::RawReplication>>,
    calendar: Option<Spanned<crate::continuity::RawCalendar>>,
    incidents: Option<Spanned<crate::continuity::RawIncidents>>,
    review: Option<Spanned<crate::continuity::RawReview>>,
    status_page: Option<Spanned<crate::continuity::RawStatusPage>>,
    evidence: Option<crate::evidence::RawEvidence>,
    #[serde(default)]
    exports: BTreeMap<String, Spanned<crate::evidence::RawExport>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrill {
    parallel: Option<usize>,
    #[serde(default)]
    targets: BTreeMap<String, Spanned<RawDrillTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrillTarget {
    directory: Option<String>,
    sqlite: Option<String>,
    postgres: Option<String>,
    mariadb: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    datasets: Vec<Spanned<String>>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    jobs_per_repository: Option<usize>,
    max_jitter: Option<String>,
    stuck_after: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    rpo: Option<Spanned<String>>,
    rto: Option<Spanned<String>>,
    retention: Option<Spanned<String>>,
    restore_test_every: Option<Spanned<String>>,
    drill_every: Option<Spanned<String>>,
    review_every: Option<Spanned<String>>,
    status_update_every: Option<Spanned<String>>,
    postmortem_within_business_days: Option<Spanned<u32>>,
    offsite_required_for: Option<Spanned<Vec<Tier>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    url: String,
    region: Option<String>,
    replica_of: Option<Spanned<String>>,
    password_file: Option<String>,
    key_file: Option<String>,
    prune_every: Option<Spanned<String>>,
    /// Who holds a credential that opens it (a key slot's passphrase or key file, or a recovery
    /// share): one person alone must not be able to lose or withhold it.
    #[serde(default)]
    key_holders: Vec<String>,
    /// Fail over to a replica on its own after repeated backend errors (§5 vendor outage).
    auto_failover: Option<Spanned<bool>>,
    auto_failover_after: Option<Spanned<u32>>,
    /// The credential this host uses for it must not be able to delete (`status` checks).
    #[serde(default)]
    append_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    kind: DatasetKind,
    source: Option<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    /// S3: `s3://BUCKET/PREFIX?region=…&endpoint=…`, as repositories take it.
    url: Option<Spanned<String>>,
    /// S3: back up only keys matching one of these (or below a prefix that does).
    #[serde(default)]
    include: Vec<String>,
    tier: Option<Tier>,
    schedule: Spanned<String>,
    repository: Option<Spanned<String>>,
    retention: Option<Spanned<RawRetention>>,
    restore_test: Option<Spanned<RawRestoreTest>>,
    /// PostgreSQL: a file whose first line is the password (else libpq's conventions).
    password_file: Option<String>,
    /// PostgreSQL: `logical` (pg_dump, the default) or `physical` (base backups and WAL).
    method: Option<Spanned<String>>,
    /// Physical: write a heartbeat row into the source this often (see `heartbeat`).
    heartbeat: Option<Spanned<String>>,
    /// Physical: `wal-push` acknowledges from a spool while a background pusher archives ahead.
    wal_async: Option<bool>,
    /// Physical: the spool directory of asynchronous archiving.
    wal_spool: Option<String>,
    /// Physical: `auto`, `direct` or `pg_basebackup` (see [`BaseBackupRead`]).
    base_backup: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    keep_within: Option<String>,
    keep_last: Option<toml::Value>,
    keep_hourly: Option<toml::Value>,
    keep_daily: Option<toml::Value>,
    keep_weekly: Option<toml::Value>,
    keep_monthly: Option<toml::Value>,
    keep_yearly: Option<toml::Value>,
    #[serde(default)]
    keep_tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestoreTest {
    every: Option<String>,
    #[serde(default)]
    checks: Vec<String>,
    scratch: Option<String>,
    max_bytes: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    owner: String,
    #[serde(default)]
    alternates: Vec<String>,
    #[serde(default = "yes")]
    critical: bool,
    #[serde(default)]
    channels: Vec<String>,
    #[serde(default)]
    alternate_channels: Vec<String>,
    email: Option<String>,
    phone: Option<String>,
    on_call: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotification {
    command: Option<Vec<String>>,
    webhook: Option<Spanned<String>>,
    format: Option<Spanned<WebhookFormat>>,
    allow_http: Option<Spanned<bool>>,
    headers: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    email: Option<Spanned<RawEmail>>,
    on: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    to: Spanned<Vec<Spanned<String>>>,
    from: Spanned<String>,
    smtp: Spanned<String>,
    starttls: Option<Spanned<StartTls>>,
    username: Option<String>,
    password_file: Option<Spanned<String>>,
}

/// What a notification is about. A channel hears the events its `on` list names (every event
/// when it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    BackupFailed,
    CopyFailed,
    ForgetFailed,
    PruneFailed,
    LedgerCopyFailed,
    RestoreTestFailed,
    RestoreTestFixed,
    /// A dataset's RPO will be breached before its next scheduled backup can keep it.
    RpoAtRisk,
    RpoBreached,
    /// An off-site replica lags its primary beyond its allowance.
    ReplicaLagging,
    /// A job has run past its expected time.
    JobStuck,
    /// A disaster-recovery drill failed.
    DrillFailed,
    /// A disaster-recovery drill passed after one had failed.
    DrillFixed,
    /// An incident was opened (by hand or by Bulwark).
    IncidentOpened,
    /// A customer-facing incident update: what status subscribers hear.
    IncidentUpdate,
    IncidentResolved,
    /// An incident's next customer update falls due soon (to its owner).
    UpdateDue,
    /// An incident's customer update is overdue (to the owner's alternates).
    UpdateOverdue,
    /// A post-mortem's deadline is near (to the incident's owner).
    PostmortemDue,
    /// A post-mortem is overdue (to the owner's alternates).
    PostmortemOverdue,
    /// A plan review is due.
    ReviewDue,
    /// A repository failed over to its replica on its own (`auto_failover`).
    FailedOver,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 22] = [
        NotifyEvent::BackupFailed,
        NotifyEvent::CopyFailed,
        NotifyEvent::ForgetFailed,
        NotifyEvent::PruneFailed,
        NotifyEvent::LedgerCopyFailed,
        NotifyEvent::RestoreTestFailed,
        NotifyEvent::RestoreTestFixed,
        NotifyEvent::RpoAtRisk,
        NotifyEvent::RpoBreached,
        NotifyEvent::ReplicaLagging,
        NotifyEvent::JobStuck,
        NotifyEvent::DrillFailed,
        NotifyEvent::DrillFixed,
        NotifyEvent::IncidentOpened,
        NotifyEvent::IncidentUpdate,
        NotifyEvent::IncidentResolved,
        NotifyEvent::UpdateDue,
        NotifyEvent::UpdateOverdue,
        NotifyEvent::PostmortemDue,
        NotifyEvent::PostmortemOverdue,
        NotifyEvent::ReviewDue,
        NotifyEvent::FailedOver,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::BackupFailed => "backup_failed",
            NotifyEvent::CopyFailed => "copy_failed",
            NotifyEvent::ForgetFailed => "forget_failed",
            NotifyEvent::PruneFailed => "prune_failed",
            NotifyEvent::LedgerCopyFailed => "ledger_copy_failed",
            NotifyEvent::RestoreTestFailed => "restore_test_failed",
            NotifyEvent::RestoreTestFixed => "restore_test_fixed",
            NotifyEvent::RpoAtRisk => "rpo_at_risk",
            NotifyEvent::RpoBreached => "rpo_breached",
            NotifyEvent::ReplicaLagging => "replica_lagging",
            NotifyEvent::JobStuck => "job_stuck",
            NotifyEvent::DrillFailed => "drill_failed",
            NotifyEvent::DrillFixed => "drill_fixed",
            NotifyEvent::IncidentOpened => "incident_opened",
            NotifyEvent::IncidentUpdate => "incident_update",
            NotifyEvent::IncidentResolved => "incident_resolved",
            NotifyEvent::UpdateDue => "update_due",
            NotifyEvent::UpdateOverdue => "update_overdue",
            NotifyEvent::PostmortemDue => "postmortem_due",
            NotifyEvent::PostmortemOverdue => "postmortem_overdue",
            NotifyEvent::ReviewDue => "review_due",
            NotifyEvent::FailedOver => "failed_over",
        }
    }

    /// For people: "backup failed", "RPO at risk".
    pub fn title(self) -> &'static str {
        match self {
            NotifyEvent::BackupFailed => "backup failed",
            NotifyEvent::CopyFailed => "copy failed",
            NotifyEvent::ForgetFailed => "retention failed",
            NotifyEvent::PruneFailed => "prune failed",
            NotifyEvent::LedgerCopyFailed => "ledger copy failed",
            NotifyEvent::RestoreTestFailed => "restore test failed",
            NotifyEvent::RestoreTestFixed => "restore test passes again",
            NotifyEvent::RpoAtRisk => "RPO at risk",
            NotifyEvent::RpoBreached => "RPO breached",
            NotifyEvent::ReplicaLagging => "replica lagging",
            NotifyEvent::JobStuck => "job stuck",
            NotifyEvent::DrillFailed => "DR drill failed",
            NotifyEvent::DrillFixed => "DR drill passes again",
            NotifyEvent::IncidentOpened => "incident opened",
            NotifyEvent::IncidentUpdate => "incident update",
            NotifyEvent::IncidentResolved => "incident resolved",
            NotifyEvent::UpdateDue => "customer update due",
            NotifyEvent::UpdateOverdue => "customer update overdue",
            NotifyEvent::PostmortemDue => "post-mortem due",
            NotifyEvent::PostmortemOverdue => "post-mortem overdue",
            NotifyEvent::ReviewDue => "plan review due",
            NotifyEvent::FailedOver => "failed over to a replica",
        }
    }

    pub fn parse(s: &str) -> Option<NotifyEvent> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// How a channel delivers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A program run with the message on its standard input.
    Command(Vec<String>),
    /// An HTTP POST of the notice.
    Webhook(Webhook),
    /// A mail through an SMTP server.
    Email(Email),
}

impl Channel {
    /// `command`, `webhook` or `email`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Command(_) => "command",
            Channel::Webhook(_) => "webhook",
            Channel::Email(_) => "email",
        }
    }
}

/// What a webhook posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// The notice as a JSON object, with a stable `id`.
    #[default]
    Json,
    /// A Slack-compatible message: `text` and `blocks`.
    Slack,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Webhook {
    /// `https://...`, or `http://` to a loopback address (or anywhere with `allow_http`).
    pub url: String,
    pub format: WebhookFormat,
    /// Extra request headers, by name.
    pub headers: BTreeMap<String, HeaderValue>,
}

/// A header's value: written in the policy file, or read from a file when sent (a secret such
/// as a bearer token, which must not live in a version-controlled file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderValue {
    Plain(String),
    /// The file's first line, after `prefix` (e.g. `"Bearer "`).
    SecretFile {
        path: String,
        prefix: String,
    },
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartTls {
    /// STARTTLS or no mail: a server that does not offer it is a failed delivery.
    Required,
    /// STARTTLS when the server offers it, plain text otherwise.
    Opportunistic,
    /// Plain text.
    None,
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// `smtp://`: plain connection, upgraded as `starttls` says.
    StartTls(StartTls),
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Email {
    pub to: Vec<String>,
    pub from: String,
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// A file whose first line is the SMTP password (read when sending).
    pub password_file: Option<String>,
}

/// The SMTP submission port, for `smtp://` without one.
pub const SMTP_SUBMISSION_PORT: u16 = 587;
/// The SMTP-over-TLS port, for `smtps://` without one.
pub const SMTPS_PORT: u16 = 465;

/// Where failures are announced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Notification {
    pub name: String,
    pub channel: Channel,
    /// The events this channel hears.
    pub on: Vec<NotifyEvent>,
    pub location: Location,
}

impl Notification {
    pub fn hears(&self, event: NotifyEvent) -> bool {
        self.on.contains(&event)
    }
}

/// The commitments, with where each was set (none: the default).
#[derive(Debug, Clone)]
pub struct Targets {
    pub rpo: Duration,
    pub rto: Duration,
    pub retention: CalendarDuration,
    pub restore_test_every: Duration,
    pub drill_every: Duration,
    pub review_every: Duration,
    pub status_update_every: Duration,
    pub postmortem_within_business_days: u32,
    pub offsite_required_for: Vec<Tier>,
    pub locations: BTreeMap<&'static str, Location>,
}

impl Default for Targets {
    fn default() -> Self {
        let days = |d: u64| Duration::from_secs(d * 86_400);
        Targets {
            rpo: Duration::from_secs(24 * 3600),
            rto: Duration::from_secs(4 * 3600),
            retention: CalendarDuration::days(30),
            restore_test_every: days(90),
            drill_every: days(365),
            review_every: days(365),
            status_update_every: Duration::from_secs(2 * 3600),
            postmortem_within_business_days: 10,
            offsite_required_for: vec![Tier::Critical],
            locations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Repository {
    pub name: String,
    pub url: String,
    pub region: Option<String>,
    pub replica_of: Option<String>,
    pub password_file: Option<String>,
    pub key_file: Option<String>,
    /// How often prune runs on this repository (it also runs after forget removed something).
    pub prune_every: Duration,
    /// The people who hold a credential that opens it (empty: not recorded).
    pub key_holders: Vec<String>,
    /// After this many backups in a row fail because the repository is unavailable, a run fails
    /// over to its replica on its own (`auto_failover = true`; `None`: only by hand).
    pub auto_failover_after: Option<u32>,
    pub location: Location,
    /// This host's credential for it must not be able to delete: a backup host's.
    pub append_only: bool,
}

/// Backups failing in a row before an automatic failover, unless `auto_failover_after` says.
pub const DEFAULT_AUTO_FAILOVER_AFTER: u32 = 3;

/// The default budget of a file dataset's restore test: larger snapshots are sampled.
pub const DEFAULT_RESTORE_TEST_MAX_BYTES: u64 = 1 << 30;

/// How a PostgreSQL dataset is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `pg_dump` of one database, with its fingerprint.
    #[default]
    Logical,
    /// Base backups of the cluster and its archived WAL: point-in-time recovery.
    Physical,
}

/// How a physical dataset's base backups read the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BaseBackupRead {
    /// The data directory itself when the server runs on this host and its files are readable,
    /// otherwise `pg_basebackup`.
    #[default]
    Auto,
    /// The data directory itself, or fail.
    Direct,
    /// `pg_basebackup`, wherever the server runs.
    PgBasebackup,
}

/// Where `bulwark wal-push` keeps its acknowledgements when archiving asynchronously, unless
/// the dataset names a `wal_spool`: `DEFAULT_WAL_SPOOL/<dataset>`.
pub const DEFAULT_WAL_SPOOL: &str = "/var/spool/bulwark";

#[derive(Debug, Clone)]
pub struct RestoreTest {
    pub every: Duration,
    pub checks: Vec<String>,
    /// Where scratch targets go (default: the system's temporary directory).
    pub scratch: Option<String>,
    /// File datasets: restore at most this many bytes; a larger snapshot is tested on a random
    /// sample of its files.
    pub max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub kind: DatasetKind,
    pub source: Option<String>,
    pub paths: Vec<String>,
    pub command: Vec<String>,
    pub exclude: Vec<String>,
    /// S3: the bucket and prefix, with the store's parameters (no credentials: those come from
    /// the environment, as for repositories).
    pub url: Option<String>,
    /// S3: the key patterns backed up (all when empty).
    pub include: Vec<String>,
    pub password_file: Option<String>,
    pub method: Method,
    /// Physical: how often a heartbeat row is written into the source (by `run`).
    pub heartbeat: Option<Duration>,
    pub wal_async: bool,
    pub wal_spool: Option<String>,
    pub base_backup: BaseBackupRead,
    pub tier: Tier,
    pub schedule: Schedule,
    pub repository: String,
    pub retention: KeepRules,
    /// Where the retention override was written, when there is one.
    pub retention_location: Option<Location>,
    pub restore_test: RestoreTest,
    pub restore_test_location: Option<Location>,
    pub location: Location,
    pub schedule_location: Location,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub name: String,
    pub owner: String,
    pub alternates: Vec<String>,
    pub critical: bool,
    /// Notification channels that reach the owner (reminders before a deadline).
    pub channels: Vec<String>,
    /// Channels that reach the alternates (escalation once a deadline has passed).
    pub alternate_channels: Vec<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// How the role is on call (a rota, hours), for people.
    pub on_call: Option<String>,
    pub location: Location,
}

/// A customer-facing service on the status page, and the datasets it stands on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Component {
    pub name: String,
    pub description: Option<String>,
    pub datasets: Vec<String>,
    pub location: Location,
}

/// Where a drill restores a dataset in the secondary region.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillTarget {
    /// An empty (or new) directory.
    Directory(String),
    /// A new SQLite file.
    Sqlite(String),
    /// A PostgreSQL database (new or empty).
    Postgres(String),
    /// A MariaDB/MySQL database (new or empty).
    Mariadb(String),
}

/// How disaster-recovery drills run: how many datasets restore at once, and where (datasets
/// without a target restore into scratch targets, as restore tests do).
#[derive(Debug, Clone)]
pub struct Drill {
    pub parallel: usize,
    pub targets: BTreeMap<String, DrillTarget>,
}

impl Default for Drill {
    fn default() -> Self {
        Drill {
            parallel: 2,
            targets: BTreeMap::new(),
        }
    }
}

/// How `bulwark serve` schedules.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Jobs at once per repository.
    pub jobs_per_repository: usize,
    /// A due job starts up to this long late, so datasets on one schedule do not all start at once.
    pub max_jitter: Duration,
    /// A job running longer than this is reported stuck.
    pub stuck_after: Duration,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon {
            jobs_per_repository: 1,
            max_jitter: Duration::from_secs(60),
            stuck_after: Duration::from_secs(6 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub targets: Targets,
    pub ledger: Option<String>,
    pub repositories: BTreeMap<String, Repository>,
    pub datasets: BTreeMap<String, Dataset>,
    pub roles: BTreeMap<String, Role>,
    pub notifications: BTreeMap<String, Notification>,
    /// Customer-facing components, for the status page.
    pub components: BTreeMap<String, Component>,
    pub daemon: Daemon,
    pub drill: Drill,
    /// Buckets and the buckets their provider replicates them to (see [`crate::replication`]).
    pub replication: BTreeMap<String, crate::replication::Replication>,
    /// Incidents, post-mortems, reviews and the status page's subscribers (§7–§9).
    pub continuity: crate::continuity::Continuity,
    pub evidence: crate::evidence::Evidence,
    pub exports: BTreeMap<String, crate::evidence::ExportProfile>,
}

impl Config {
    /// Parse and resolve a configuration. `file` names it in messages.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        let fail = |offset: usize, message: String| {
            let at = locate(text, offset);
            ConfigError {
                file: file.to_string(),
                line: at.line,
                column: at.column,
                message: crate::one_line(&message),
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            fail(offset, e.message().to_string())
        })?;

        let mut targets = Targets::default();
        let p = &raw.policy;
        let dur = |v: &Option<Spanned<String>>,
                   key: &'static str,
                   into: &mut Duration,
                   locs: &mut BTreeMap<&'static str, Location>| {
            if let Some(v) = v {
                *into = parse_duration(v.get_ref())
                    .map_err(|e| fail(v.span().start, format!("policy.{key}: {e}")))?;
                locs.insert(key, locate(text, v.span().start));
            }
            Ok::<(), ConfigError>(())
        };
        let mut locs = BTreeMap::new();
        if let Some(v) = &p.rpo {
            targets.rpo = parse_short_duration(v.get_ref(), false)
                .map_err(|e| fail(v.span().start, format!("policy.rpo: {e}")))?;
            locs.insert("rpo", locate(text, v.span().start));
        }
        dur(&p.rto, "rto", &mut targets.rto, &mut locs)?;
        dur(
            &p.restore_test_every,
            "restore_test_every",
            &mut targets.restore_test_every,
            &mut locs,
        )?;
        dur(
            &p.drill_every,
            "drill_every",
            &mut targets.drill_every,
            &mut locs,
        )?;
        dur(
            &p.review_every,
            "review_every",
            &mut targets.review_every,
            &mut locs,
        )?;
        dur(
            &p.status_update_every,
            "status_update_every",
            &mut targets.status_update_every,
            &mut locs,
        )?;
        if let Some(r) = &p.retention {
            targets.retention = CalendarDuration::parse(r.get_ref())
                .map_err(|e| fail(r.span().start, format!("policy.retention: {e}")))?;
            locs.insert("retention", locate(text, r.span().start));
        }
        if let Some(d) = &p.postmortem_within_business_days {
            targets.postmortem_within_business_days = *d.get_ref();
            locs.insert(
                "postmortem_within_business_days",
                locate(text, d.span().start),
            );
        }
        if let Some(o) = &p.offsite_required_for {
            targets.offsite_required_for = o.get_ref().clone();
            locs.insert("offsite_required_for", locate(text, o.span().start));
        }
        targets.locations = locs;

        let mut repositories = BTreeMap::new();
        for (name, r) in &raw.repositories {
            let span = r.span();
            let r = r.get_ref();
            if let Some(of) = &r.replica_of
                && !raw.repositories.contains_key(of.get_ref())
            {
                return Err(fail(
                    of.span().start,
                    format!(
                        "repositories.{name}.replica_of: no repository named '{}'",
                        of.get_ref()
                    ),
                ));
            }
            let prune_every = match &r.prune_every {
                Some(p) => parse_duration(p.get_ref()).map_err(|e| {
                    fail(
                        p.span().start,
                        format!("repositories.{name}.prune_every: {e}"),
                    )
                })?,
                None => Duration::from_secs(86_400),
            };
            let auto_failover_after = match (&r.auto_failover, &r.auto_failover_after) {
                (Some(on), _) if *on.get_ref() && r.replica_of.is_some() => {
                    return Err(fail(
                        on.span().start,
                        format!(
                            "repositories.{name}.auto_failover: a replica does not fail over; set it on its primary"
                        ),
                    ));
                }
                (Some(on), _)
                    if *on.get_ref()
                        && !raw.repositories.values().any(|o| {
                            o.get_ref().replica_of.as_ref().map(|s| s.get_ref()) == Some(name)
                        }) =>
                {
                    return Err(fail(
                        on.span().start,
                        format!(
                            "repositories.{name}.auto_failover: no repository names it in `replica_of`, so there is nowhere to fail over to"
                        ),
                    ));
                }
                (_, Some(n)) if *n.get_ref() == 0 => {
                    return Err(fail(
                        n.span().start,
                        format!("repositories.{name}.auto_failover_after: must be at least 1"),
                    ));
                }
                (Some(on), n) if *on.get_ref() => Some(
                    n.as_ref()
                        .map_or(DEFAULT_AUTO_FAILOVER_AFTER, |n| *n.get_ref()),
                ),
                _ => None,
            };
            repositories.insert(
                name.clone(),
                Repository {
                    name: name.clone(),
                    url: r.url.clone(),
                    region: r.region.clone(),
                    replica_of: r.replica_of.as_ref().map(|s| s.get_ref().clone()),
                    password_file: r.password_file.clone(),
                    key_file: r.key_file.clone(),
                    prune_every,
                    key_holders: r.key_holders.clone(),
                    auto_failover_after,
                    location: locate(text, span.start),
                    append_only: r.append_only,
                },
            );
        }
        let primaries: Vec<&String> = repositories
            .values()
            .filter(|r| r.replica_of.is_none())
            .map(|r| &r.name)
            .collect();

        let mut datasets = BTreeMap::new();
        for (name, d) in &raw.datasets {
            let at = d.span().start;
            let d = d.get_ref();
            let schedule: Schedule =
                d.schedule
                    .get_ref()
                    .parse()
                    .map_err(|e: crate::schedule::ScheduleError| {
                        fail(
                            d.schedule.span().start,
                            format!("datasets.{name}.schedule: {e}"),
                        )
                    })?;
            let repository = match &d.repository {
                Some(r) if repositories.contains_key(r.get_ref()) => r.get_ref().clone(),
                Some(r) => {
                    return Err(fail(
                        r.span().start,
                        format!(
                            "datasets.{name}.repository: no repository named '{}'",
                            r.get_ref()
                        ),
                    ));
                }
                None => match primaries.as_slice() {
                    [only] => (*only).clone(),
                    [] => {
                        return Err(fail(
                            at,
                            format!("datasets.{name}: no repository is declared"),
                        ));
                    }
                    _ => {
                        return Err(fail(
                            at,
                            format!(
                                "datasets.{name}: several primary repositories; say which with `repository = \"...\"`"
                            ),
                        ));
                    }
                },
            };
            match d.kind {
                DatasetKind::Postgres | DatasetKind::Mariadb | DatasetKind::Sqlite
                    if d.source.is_none() =>
                {
                    return Err(fail(
                        at,
                        format!("datasets.{name}: a {:?} dataset needs `source`", d.kind)
                            .to_lowercase(),
                    ));
                }
                DatasetKind::Files if d.paths.is_empty() => {
                    return Err(fail(
                        at,
                        format!("datasets.{name}: a files dataset needs `paths = [...]`"),
                    ));
                }
                DatasetKind::Command if d.command.is_empty() => {
                    return Err(fail(
                        at,
                        format!("datasets.{name}: a command dataset needs `command = [...]`"),
                    ));
                }
                _ => {}
            }
            crate::bucket::check_s3_keys(name, d.kind, d.url.as_ref(), &d.include)
                .map_err(|(offset, message)| fail(offset.unwrap_or(at), message))?;
            let method = match &d.method {
                None => Method::Logical,
                Some(m) => match (d.kind, m.get_ref().as_str()) {
                    (DatasetKind::Postgres, "logical") => Method::Logical,
                    (DatasetKind::Postgres, "physical") => Method::Physical,
                    (DatasetKind::Postgres, other) => {
                        return Err(fail(
                            m.span().start,
                            format!("datasets.{name}.method: '{other}' is not logical or physical"),
                        ));
                    }
                    _ => {
                        return Err(fail(
                            m.span().start,
                            format!("datasets.{name}.method: only postgres datasets have a method"),
                        ));
                    }
                },
            };
            if method != Method::Physical
                && (d.heartbeat.is_some()
                    || d.wal_async.is_some()
                    || d.wal_spool.is_some()
                    || d.base_backup.is_some())
            {
                return Err(fail(
                    at,
                    format!(
                        "datasets.{name}: heartbeat, wal_async, wal_spool and base_backup need method = \"physical\""
                    ),
                ));
            }
            let base_backup = match d.base_backup.as_ref().map(|b| (b, b.get_ref().as_str())) {
                None | Some((_, "auto")) => BaseBackupRead::Auto,
                Some((_, "direct")) => BaseBackupRead::Direct,
                Some((_, "pg_basebackup")) => BaseBackupRead::PgBasebackup,
                Some((b, other)) => {
                    return Err(fail(
                        b.span().start,
                        format!(
                            "datasets.{name}.base_backup: '{other}' is not auto, direct or pg_basebackup"
                        ),
                    ));
                }
            };
            let heartbeat = match &d.heartbeat {
                None => None,
                Some(h) => Some(parse_short_duration(h.get_ref(), true).map_err(|e| {
                    fail(h.span().start, format!("datasets.{name}.heartbeat: {e}"))
                })?),
            };
            let (retention, retention_location) = match &d.retention {
                None => (
                    KeepRules {
                        within: Some(targets.retention),
                        ..Default::default()
                    },
                    None,
                ),
                Some(r) => (
                    keep_rules(r.get_ref()).map_err(|e| {
                        fail(r.span().start, format!("datasets.{name}.retention: {e}"))
                    })?,
                    Some(locate(text, r.span().start)),
                ),
            };
            let (restore_test, restore_test_location) = match &d.restore_test {
                None => (
                    RestoreTest {
                        every: targets.restore_test_every,
                        checks: Vec::new(),
                        scratch: None,
                        max_bytes: DEFAULT_RESTORE_TEST_MAX_BYTES,
                    },
                    None,
                ),
                Some(t) => {
                    let raw = t.get_ref();
                    let at = |e: String| {
                        fail(t.span().start, format!("datasets.{name}.restore_test.{e}"))
                    };
                    let every = match &raw.every {
                        Some(e) => parse_duration(e).map_err(|err| at(format!("every: {err}")))?,
                        None => targets.restore_test_every,
                    };
                    let max_bytes = match &raw.max_bytes {
                        None => DEFAULT_RESTORE_TEST_MAX_BYTES,
                        Some(toml::Value::Integer(n)) if *n > 0 => *n as u64,
                        Some(toml::Value::String(s)) => crate::size::parse_size(s)
                            .map_err(|err| at(format!("max_bytes: {err}")))?,
                        Some(other) => {
                            return Err(at(format!(
                                "max_bytes: expected a size such as \"10GiB\", not {other}"
                            )));
                        }
                    };
                    if max_bytes == 0 {
                        return Err(at("max_bytes: must be more than 0".into()));
                    }
                    (
                        RestoreTest {
                            every,
                            checks: raw.checks.clone(),
                            scratch: raw.scratch.clone(),
                            max_bytes,
                        },
                        Some(locate(text, t.span().start)),
                    )
                }
            };
            datasets.insert(
                name.clone(),
                Dataset {
                    name: name.clone(),
                    kind: d.kind,
                    source: d.source.clone(),
                    paths: d.paths.clone(),
                    command: d.command.clone(),
                    exclude: d.exclude.clone(),
                    url: d.url.as_ref().map(|u| u.get_ref().clone()),
                    include: d.include.clone(),
                    password_file: d.password_file.clone(),
                    method,
                    heartbeat,
                    wal_async: d.wal_async.unwrap_or(false),
                    wal_spool: d.wal_spool.clone(),
                    base_backup,
                    tier: d.tier.unwrap_or(Tier::Standard),
                    schedule,
                    repository,
                    retention,
                    retention_location,
                    restore_test,
                    restore_test_location,
                    location: locate(text, at),
                    schedule_location: locate(text, d.schedule.span().start),
                },
            );
        }
        let roles = raw
            .roles
            .iter()
            .map(|(name, r)| {
                let loc = locate(text, r.span().start);
                let r = r.get_ref();
                (
                    name.clone(),
                    Role {
                        name: name.clone(),
                        owner: r.owner.clone(),
                        alternates: r.alternates.clone(),
                        critical: r.critical,
                        channels: r.channels.clone(),
                        alternate_channels: r.alternate_channels.clone(),
                        email: r.email.clone(),
                        phone: r.phone.clone(),
                        on_call: r.on_call.clone(),
                        location: loc,
                    },
                )
            })
            .collect();
        let mut notifications = BTreeMap::new();
        for (name, n) in &raw.notifications {
            let at = n.span().start;
            let raw_n = n.get_ref();
            let channel = channel(name, raw_n, at, &fail)?;
            let on = match &raw_n.on {
                None => NotifyEvent::ALL.to_vec(),
                Some(list) => list
                    .iter()
                    .map(|e| {
                        NotifyEvent::parse(e.get_ref()).ok_or_else(|| {
                            let known: Vec<_> =
                                NotifyEvent::ALL.iter().map(|k| k.as_str()).collect();
                            fail(
                                e.span().start,
                                format!(
                                    "notifications.{name}.on: unknown event '{}' (known: {})",
                                    e.get_ref(),
                                    known.join(", ")
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            };
            notifications.insert(
                name.clone(),
                Notification {
                    name: name.clone(),
                    channel,
                    on,
                    location: locate(text, at),
                },
            );
        }
        let mut components = BTreeMap::new();
        for (name, c) in &raw.components {
            let raw_c = c.get_ref();
            for d in &raw_c.datasets {
                if !datasets.contains_key(d.get_ref()) {
                    return Err(fail(
                        d.span().start,
                        format!(
                            "components.{name}.datasets: no dataset named '{}'",
                            d.get_ref()
                        ),
                    ));
                }
            }
            components.insert(
                name.clone(),
                Component {
                    name: name.clone(),
                    description: raw_c.description.clone(),
                    datasets: raw_c.datasets.iter().map(|d| d.get_ref().clone()).collect(),
                    location: locate(text, c.span().start),
                },
            );
        }
        let mut daemon = Daemon::default();
        if let Some(d) = &raw.daemon {
            let at = |e: String| fail(d.span().start, format!("daemon.{e}"));
            let raw_d = d.get_ref();
            if let Some(n) = raw_d.jobs_per_repository {
                if n == 0 {
                    return Err(at("jobs_per_repository: must be at least 1".into()));
                }
                daemon.jobs_per_repository = n;
            }
            if let Some(j) = &raw_d.max_jitter {
                daemon.max_jitter =
                    parse_duration_or_zero(j).map_err(|e| at(format!("max_jitter: {e}")))?;
            }
            if let Some(j) = &raw_d.stuck_after {
                daemon.stuck_after =
                    parse_duration(j).map_err(|e| at(format!("stuck_after: {e}")))?;
            }
        }
        let mut drill = Drill::default();
        if let Some(d) = &raw.drill {
            let raw_d = d.get_ref();
            if let Some(n) = raw_d.parallel {
                if n == 0 {
                    return Err(fail(
                        d.span().start,
                        "drill.parallel: must be at least 1".into(),
                    ));
                }
                drill.parallel = n;
            }
            for (name, t) in &raw_d.targets {
                let at = t.span().start;
                let Some(ds) = datasets.get(name) else {
                    return Err(fail(
                        at,
                        format!("drill.targets.{name}: no dataset named '{name}'"),
                    ));
                };
                let r = t.get_ref();
                let target = match (&r.directory, &r.sqlite, &r.postgres, &r.mariadb) {
                    (Some(p), None, None, None) => DrillTarget::Directory(p.clone()),
                    (None, Some(p), None, None) => DrillTarget::Sqlite(p.clone()),
                    (None, None, Some(dsn), None) => DrillTarget::Postgres(dsn.clone()),
                    (None, None, None, Some(dsn)) => DrillTarget::Mariadb(dsn.clone()),
                    _ => {
                        return Err(fail(
                            at,
                            format!(
                                "drill.targets.{name}: give one of directory, sqlite, postgres, mariadb"
                            ),
                        ));
                    }
                };
                let fits = matches!(
                    (&target, ds.kind),
                    (
                        DrillTarget::Directory(_),
                        DatasetKind::Files | DatasetKind::Command | DatasetKind::S3
                    ) | (DrillTarget::Sqlite(_), DatasetKind::Sqlite)
                        | (DrillTarget::Postgres(_), DatasetKind::Postgres)
                        | (DrillTarget::Mariadb(_), DatasetKind::Mariadb)
                );
                if !fits {
                    return Err(fail(
                        at,
                        format!("drill.targets.{name}: a {:?} dataset cannot restore into that kind of target", ds.kind)
                            .to_lowercase(),
                    ));
                }
                drill.targets.insert(name.clone(), target);
            }
        }
        let mut replication = BTreeMap::new();
        for (name, r) in &raw.replication {
            let pair = crate::replication::resolve(text, name, r)
                .map_err(|(offset, message)| fail(offset, message))?;
            replication.insert(name.clone(), pair);
        }
        let continuity = crate::continuity::resolve(
            crate::continuity::Sections {
                calendar: raw.calendar.as_ref(),
                incidents: raw.incidents.as_ref(),
                review: raw.review.as_ref(),
                status_page: raw.status_page.as_ref(),
            },
            &roles,
            &mut notifications,
            &|name| {
                raw.notifications
                    .get(name)
                    .and_then(|n| n.get_ref().on.as_ref())
                    .and_then(|on| on.first())
                    .map(|e| e.span().start)
            },
            &|name| raw.roles.get(name).map_or(0, |r| r.span().start),
            &fail,
        )?;
        let exports = crate::evidence::exports(&raw.exports, &datasets, text, &fail)?;
        Ok(Config {
            targets,
            ledger: raw.ledger,
            repositories,
            datasets,
            roles,
            notifications,
            components,
            daemon,
            drill,
            replication,
            continuity,
            evidence: crate::evidence::evidence(raw.evidence),
            exports,
        })
    }

    /// Replicas of a repository.
    pub fn replicas_of<'a>(
        &'a self,
        repository: &'a str,
    ) -> impl Iterator<Item = &'a Repository> + 'a {
        self.repositories
            .values()
            .filter(move |r| r.replica_of.as_deref() == Some(repository))
    }
}

/// A duration that may be shorter than an hour: `90s`, `15min`, or any duration the policy file
/// takes (`1h`, `7d`). In a heartbeat, `1m` is a minute (a month would make no sense there).
pub(crate) fn parse_short_duration(s: &str, m_is_minutes: bool) -> Result<Duration, String> {
    let t = s.trim();
    let minutes = t
        .strip_suffix("min")
        .or_else(|| t.strip_suffix('m').filter(|_| m_is_minutes));
    if let Some(n) = minutes.and_then(|n| n.parse::<u64>().ok()) {
        return Ok(Duration::from_secs(n * 60));
    }
    let d = parse_duration_or_zero(t)?;
    if d.is_zero() {
        return Err(format!("'{s}' is no time at all"));
    }
    Ok(d)
}

/// A short duration: `90s`, `0`, or any duration the policy file takes (`1h`).
fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if let Some(secs) = t.strip_suffix('s').and_then(|n| n.parse::<u64>().ok()) {
        return Ok(Duration::from_secs(secs));
    }
    parse_duration(t).map_err(|e| e.to_string())
}

fn keep_rules(r: &RawRetention) -> Result<KeepRules, String> {
    let count = |v: &Option<toml::Value>, key: &str| -> Result<Option<u32>, String> {
        match v {
            None => Ok(None),
            Some(toml::Value::Integer(-1)) => Ok(Some(crate::retention::UNLIMITED)),
            Some(toml::Value::Integer(n)) if *n >= 0 => u32::try_from(*n)
                .map(Some)
                .map_err(|_| format!("{key} is too large")),
            Some(toml::Value::String(s)) => parse_keep_count(s)
                .map(Some)
                .map_err(|e| format!("{key}: {e}")),
            Some(other) => Err(format!(
                "{key} must be a count or \"unlimited\", not {other}"
            )),
        }
    };
    let rules = KeepRules {
        within: r
            .keep_within
            .as_deref()
            .map(CalendarDuration::parse)
            .transpose()
            .map_err(|e| format!("keep_within: {e}"))?,
        last: count(&r.keep_last, "keep_last")?,
        hourly: count(&r.keep_hourly, "keep_hourly")?,
        daily: count(&r.keep_daily, "keep_daily")?,
        weekly: count(&r.keep_weekly, "keep_weekly")?,
        monthly: count(&r.keep_monthly, "keep_monthly")?,
        yearly: count(&r.keep_yearly, "keep_yearly")?,
        tags: r.keep_tags.clone(),
    };
    if rules.is_empty() {
        return Err("keeps nothing: set keep_within and/or keep_* counts".into());
    }
    Ok(rules)
}

/// A channel of `[notifications.NAME]`: exactly one of `command`, `webhook` or `email`, with only
/// the keys that kind takes.
fn channel(
    name: &str,
    raw: &RawNotification,
    at: usize,
    fail: &dyn Fn(usize, String) -> ConfigError,
) -> Result<Channel, ConfigError> {
    let given: Vec<&str> = [
        raw.command.as_ref().map(|_| "command"),
        raw.webhook.as_ref().map(|_| "webhook"),
        raw.email.as_ref().map(|_| "email"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(fail(
            at,
            format!(
                "notifications.{name}: give one of `command`, `webhook` or `email`, not {}",
                given.join(" and ")
            ),
        ));
    }
    if raw.webhook.is_none() {
        let webhook_only = [
            raw.format.as_ref().map(|f| ("format", f.span().start)),
            raw.allow_http
                .as_ref()
                .map(|f| ("allow_http", f.span().start)),
            raw.headers.as_ref().map(|f| ("headers", f.span().start)),
        ];
        if let Some((key, offset)) = webhook_only.into_iter().flatten().next() {
            return Err(fail(
                offset,
                format!("notifications.{name}.{key}: only a webhook channel takes `{key}`"),
            ));
        }
    }
    if let Some(argv) = &raw.command {
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(fail(
                at,
                format!("notifications.{name}.command: give the program and its arguments"),
            ));
        }
        return Ok(Channel::Command(argv.clone()));
    }
    if let Some(url) = &raw.webhook {
        return webhook(name, raw, url, fail).map(Channel::Webhook);
    }
    if let Some(email) = &raw.email {
        return self::email(name, email, fail).map(Channel::Email);
    }
    Err(fail(
        at,
        format!(
            "notifications.{name}: give `command = [...]`, `webhook = \"URL\"` or `email = {{ ... }}`"
        ),
    ))
}

/// Whether `host` (as a URL names it) is this machine's loopback interface.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        // A URL of a scheme other than http(s) keeps an IP address as an opaque name.
        url::Host::Domain(d) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn webhook(
    name: &str,
    raw: &RawNotification,
    url: &Spanned<String>,
    fail: &dyn Fn(usize, String) -> ConfigError,
) -> Result<Webhook, ConfigError> {
    let bad = |m: String| {
        fail(
            url.span().start,
            format!("notifications.{name}.webhook: {m}"),
        )
    };
    let parsed = url::Url::parse(url.get_ref()).map_err(|e| bad(format!("not a URL: {e}")))?;
    let host = parsed
        .host()
        .ok_or_else(|| bad("the URL names no host".into()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL: send them in `headers`, read from a `secret_file`"
                .into(),
        ));
    }
    let allow_http = raw.allow_http.as_ref().is_some_and(|a| *a.get_ref());
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback(&host) => {}
        "http" => {
            return Err(bad(
                "plain http would carry the notice and its headers unencrypted: use https, or set `allow_http = true`"
                    .into(),
            ));
        }
        other => return Err(bad(format!("expected an http(s) URL, not {other}://"))),
    }
    let mut headers = BTreeMap::new();
    for (header, value) in raw.headers.iter().flat_map(|h| h.get_ref()) {
        let bad = |m: String| {
            fail(
                value.span().start,
                format!("notifications.{name}.headers.{header}: {m}"),
            )
        };
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if header.is_empty() || !header.chars().all(token) {
            return Err(bad("not a valid header name".into()));
        }
        let printable = |v: &str| v.chars().all(|c| c == '\t' || (' '..='~').contains(&c));
        let parsed = match value.get_ref() {
            toml::Value::String(v) if printable(v) => HeaderValue::Plain(v.clone()),
            toml::Value::String(_) => {
                return Err(bad("a header value is printable ASCII on one line".into()));
            }
            toml::Value::Table(t) => {
                let path = match t.get("secret_file") {
                    Some(toml::Value::String(p)) if !p.is_empty() => p.clone(),
                    _ => return Err(bad("give `{ secret_file = \"PATH\" }`".into())),
                };
                let prefix = match t.get("prefix") {
                    None => String::new(),
                    Some(toml::Value::String(p)) if printable(p) => p.clone(),
                    Some(_) => return Err(bad("`prefix` is printable ASCII text".into())),
                };
                if let Some(other) = t.keys().find(|k| *k != "secret_file" && *k != "prefix") {
                    return Err(bad(format!(
                        "unknown key `{other}` (expected `secret_file` and `prefix`)"
                    )));
                }
                HeaderValue::SecretFile { path, prefix }
            }
            other => {
                return Err(bad(format!(
                    "expected a string or {{ secret_file = \"PATH\" }}, not {other}"
                )));
            }
        };
        headers.insert(header.clone(), parsed);
    }
    Ok(Webhook {
        url: url.get_ref().clone(),
        format: raw
            .format
            .as_ref()
            .map(|f| *f.get_ref())
            .unwrap_or_default(),
        headers,
    })
}

/// A mailbox as mail headers write it: `user@domain` or `Name <user@domain>`.
fn check_mailbox(mailbox: &str) -> Result<(), String> {
    let address = match mailbox.trim().strip_suffix('>') {
        Some(rest) => rest
            .rsplit_once('<')
            .map(|(_, a)| a)
            .ok_or("an unmatched `>`")?,
        None => mailbox.trim(),
    };
    let (user, domain) = address.rsplit_once('@').ok_or("no `@domain`")?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[],;:\"@\\".contains(c))
    };
    if !plain(user) {
        return Err(format!("'{user}' is not a mailbox name"));
    }
    let label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let literal = domain
        .strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    if !literal && !domain.split('.').all(label) {
        return Err(format!("'{domain}' is not a domain"));
    }
    Ok(())
}

fn email(
    name: &str,
    raw: &Spanned<RawEmail>,
    fail: &dyn Fn(usize, String) -> ConfigError,
) -> Result<Email, ConfigError> {
    let e = raw.get_ref();
    let bad = |offset: usize, key: &str, m: String| {
        fail(offset, format!("notifications.{name}.email.{key}: {m}"))
    };
    if e.to.get_ref().is_empty() {
        return Err(bad(
            e.to.span().start,
            "to",
            "name at least one recipient".into(),
        ));
    }
    for to in e.to.get_ref() {
        check_mailbox(to.get_ref()).map_err(|m| bad(to.span().start, "to", m))?;
    }
    check_mailbox(e.from.get_ref()).map_err(|m| bad(e.from.span().start, "from", m))?;
    let smtp_at = e.smtp.span().start;
    let url = url::Url::parse(e.smtp.get_ref())
        .map_err(|err| bad(smtp_at, "smtp", format!("not a URL: {err}")))?;
    let (security, default_port) = match (url.scheme(), &e.starttls) {
        ("smtp", starttls) => (
            SmtpSecurity::StartTls(
                starttls
                    .as_ref()
                    .map_or(StartTls::Required, |s| *s.get_ref()),
            ),
            SMTP_SUBMISSION_PORT,
        ),
        ("smtps", None) => (SmtpSecurity::ImplicitTls, SMTPS_PORT),
        ("smtps", Some(s)) => {
            return Err(bad(
                s.span().start,
                "starttls",
                "an smtps:// server speaks TLS from the start: drop `starttls`".into(),
            ));
        }
        (other, _) => {
            return Err(bad(
                smtp_at,
                "smtp",
                format!("expected smtp://HOST[:PORT] or smtps://HOST[:PORT], not {other}://"),
            ));
        }
    };
    let host = url
        .host()
        .ok_or_else(|| bad(smtp_at, "smtp", "the URL names no host".into()))?;
    if !url.username().is_empty()
        || url.password().is_some()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
    {
        return Err(bad(
            smtp_at,
            "smtp",
            "give only smtp://HOST[:PORT]; the account goes in `username` and `password_file`"
                .into(),
        ));
    }
    match (&e.username, &e.password_file) {
        (Some(_), None) => {
            return Err(fail(
                raw.span().start,
                format!("notifications.{name}.email: `username` needs `password_file`"),
            ));
        }
        (None, Some(p)) => {
            return Err(bad(
                p.span().start,
                "password_file",
                "a password needs its `username`".into(),
            ));
        }
        (Some(_), Some(p))
            if !is_loopback(&host)
                && !matches!(
                    security,
                    SmtpSecurity::ImplicitTls | SmtpSecurity::StartTls(StartTls::Required)
                ) =>
        {
            return Err(bad(
                p.span().start,
                "password_file",
                "the password would cross the network unencrypted: use starttls = \"required\" or smtps://"
                    .into(),
            ));
        }
        _ => {}
    }
    let host = match host {
        url::Host::Ipv6(ip) => ip.to_string(),
        other => other.to_string(),
    };
    Ok(Email {
        to: e.to.get_ref().iter().map(|t| t.get_ref().clone()).collect(),
        from: e.from.get_ref().clone(),
        host,
        port: url.port().unwrap_or(default_port),
        security,
        username: e.username.clone(),
        password_file: e.password_file.as_ref().map(|p| p.get_ref().clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[repositories.r]\nurl = \"/r\"\n[datasets.db]\nkind = \"postgres\"\nsource = \"x\"\nschedule = \"daily at 02:00\"\n";

    #[test]
    fn physical_datasets_and_short_durations() {
        let c = Config::parse("t", &format!("[policy]\nrpo = \"15min\"\n{BASE}method = \"physical\"\nheartbeat = \"1m\"\nwal_async = true\n")).unwrap();
        assert_eq!(c.targets.rpo, Duration::from_secs(900));
        let d = &c.datasets["db"];
        assert_eq!(
            (d.method, d.heartbeat, d.wal_async),
            (Method::Physical, Some(Duration::from_secs(60)), true)
        );
        assert_eq!(d.base_backup, BaseBackupRead::Auto);
        for (text, read) in [
            ("direct", BaseBackupRead::Direct),
            ("pg_basebackup", BaseBackupRead::PgBasebackup),
        ] {
            let c = Config::parse(
                "t",
                &format!("{BASE}method = \"physical\"\nbase_backup = \"{text}\"\n"),
            )
            .unwrap();
            assert_eq!(c.datasets["db"].base_backup, read);
        }
        let c = Config::parse("t", BASE).unwrap();
        assert_eq!(
            (c.datasets["db"].method, c.datasets["db"].heartbeat),
            (Method::Logical, None)
        );
        let e = Config::parse("t", &format!("{BASE}heartbeat = \"1m\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("need method = \"physical\""), "{e}");
        let e = Config::parse("t", &format!("{BASE}base_backup = \"direct\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("need method = \"physical\""), "{e}");
        let e = Config::parse(
            "t",
            &format!("{BASE}method = \"physical\"\nbase_backup = \"rsync\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'rsync' is not auto, direct or pg_basebackup"),
            "{e}"
        );
        let e = Config::parse("t", &format!("{BASE}method = \"wal\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not logical or physical"), "{e}");
        let files = "[repositories.r]\nurl = \"/r\"\n[datasets.f]\nkind = \"files\"\npaths = [\"/x\"]\nschedule = \"daily at 02:00\"\nmethod = \"physical\"\n";
        assert!(
            Config::parse("t", files)
                .unwrap_err()
                .to_string()
                .contains("only postgres")
        );
    }
}
