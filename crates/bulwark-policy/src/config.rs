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
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotification {
    command: Option<Vec<String>>,
    webhook: Option<String>,
    on: Option<Vec<Spanned<String>>>,
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
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 7] = [
        NotifyEvent::BackupFailed,
        NotifyEvent::CopyFailed,
        NotifyEvent::ForgetFailed,
        NotifyEvent::PruneFailed,
        NotifyEvent::LedgerCopyFailed,
        NotifyEvent::RestoreTestFailed,
        NotifyEvent::RestoreTestFixed,
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
    /// An HTTP POST of the event as JSON.
    Webhook(String),
}

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
    pub location: Location,
}

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
    pub password_file: Option<String>,
    pub method: Method,
    /// Physical: how often a heartbeat row is written into the source (by `run`).
    pub heartbeat: Option<Duration>,
    pub wal_async: bool,
    pub wal_spool: Option<String>,
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
                message,
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
                    location: locate(text, span.start),
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
                && (d.heartbeat.is_some() || d.wal_async.is_some() || d.wal_spool.is_some())
            {
                return Err(fail(
                    at,
                    format!(
                        "datasets.{name}: heartbeat, wal_async and wal_spool need method = \"physical\""
                    ),
                ));
            }
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
                    password_file: d.password_file.clone(),
                    method,
                    heartbeat,
                    wal_async: d.wal_async.unwrap_or(false),
                    wal_spool: d.wal_spool.clone(),
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
                        location: loc,
                    },
                )
            })
            .collect();
        let mut notifications = BTreeMap::new();
        for (name, n) in &raw.notifications {
            let at = n.span().start;
            let raw_n = n.get_ref();
            let channel = match (&raw_n.command, &raw_n.webhook) {
                (Some(argv), None) if !argv.is_empty() && !argv[0].is_empty() => {
                    Channel::Command(argv.clone())
                }
                (Some(_), None) => {
                    return Err(fail(
                        at,
                        format!("notifications.{name}.command: give the program and its arguments"),
                    ));
                }
                (None, Some(url)) => Channel::Webhook(url.clone()),
                (Some(_), Some(_)) => {
                    return Err(fail(
                        at,
                        format!(
                            "notifications.{name}: give either `command` or `webhook`, not both"
                        ),
                    ));
                }
                (None, None) => {
                    return Err(fail(
                        at,
                        format!(
                            "notifications.{name}: give `command = [...]` or `webhook = \"URL\"`"
                        ),
                    ));
                }
            };
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
        Ok(Config {
            targets,
            ledger: raw.ledger,
            repositories,
            datasets,
            roles,
            notifications,
            components,
            daemon,
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
fn parse_short_duration(s: &str, m_is_minutes: bool) -> Result<Duration, String> {
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
        let c = Config::parse("t", BASE).unwrap();
        assert_eq!(
            (c.datasets["db"].method, c.datasets["db"].heartbeat),
            (Method::Logical, None)
        );
        let e = Config::parse("t", &format!("{BASE}heartbeat = \"1m\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("need method = \"physical\""), "{e}");
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
