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
    notifications: BTreeMap<String, Notification>,
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

/// Where failures are announced: a command run with the message on stdin, or a webhook.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    pub command: Option<Vec<String>>,
    pub webhook: Option<String>,
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
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct RestoreTest {
    pub every: Duration,
    pub checks: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub kind: DatasetKind,
    pub source: Option<String>,
    pub paths: Vec<String>,
    pub command: Vec<String>,
    pub exclude: Vec<String>,
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

#[derive(Debug, Clone)]
pub struct Config {
    pub targets: Targets,
    pub ledger: Option<String>,
    pub repositories: BTreeMap<String, Repository>,
    pub datasets: BTreeMap<String, Dataset>,
    pub roles: BTreeMap<String, Role>,
    pub notifications: BTreeMap<String, Notification>,
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
        dur(&p.rpo, "rpo", &mut targets.rpo, &mut locs)?;
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
            repositories.insert(
                name.clone(),
                Repository {
                    name: name.clone(),
                    url: r.url.clone(),
                    region: r.region.clone(),
                    replica_of: r.replica_of.as_ref().map(|s| s.get_ref().clone()),
                    password_file: r.password_file.clone(),
                    key_file: r.key_file.clone(),
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
                DatasetKind::Postgres | DatasetKind::Sqlite if d.source.is_none() => {
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
                    },
                    None,
                ),
                Some(t) => {
                    let every = match &t.get_ref().every {
                        Some(e) => parse_duration(e).map_err(|err| {
                            fail(
                                t.span().start,
                                format!("datasets.{name}.restore_test.every: {err}"),
                            )
                        })?,
                        None => targets.restore_test_every,
                    };
                    (
                        RestoreTest {
                            every,
                            checks: t.get_ref().checks.clone(),
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
        Ok(Config {
            targets,
            ledger: raw.ledger,
            repositories,
            datasets,
            roles,
            notifications: raw.notifications,
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
