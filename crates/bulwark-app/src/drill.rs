//! Disaster-recovery drills: bring every critical dataset back from the off-site copy alone, as
//! if the primary region were gone, and measure what the policy promises.
//!
//! Protocol: for each dataset the drill opens only an off-site replica of its primary (one in
//! another region), with that replica's own credentials; the primary is never contacted. Each
//! dataset restores its newest off-site snapshot into a scratch target (as restore tests do) or
//! into the target the policy file's `[drill.targets]` names for the secondary region, and runs
//! the dataset's checks there: integrity, fidelity against what was recorded at backup, its own
//! SQL assertions. Datasets restore `drill.parallel` at a time, since the RTO is for the whole
//! platform.
//!
//! Judged: the RTO achieved is the wall time from the drill's start to its last passing check;
//! each dataset's RPO achieved is the drill's start minus the time of the snapshot restored. A
//! drill passes when every dataset restored and checked, within the RTO, from data within the
//! RPO. It is one `drill` event in the ledger; a failed drill opens a remediation item that a
//! passing one closes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bulwark_ledger::EventKind;
use bulwark_ops::Progress;
use bulwark_ops::database::{DbTarget, restore_database};
use bulwark_ops::restore::{RestoreOptions, restore};
use bulwark_ops::restore_test::{CheckResult, RestoreTestOptions, restore_test};
use bulwark_policy::config::{Dataset, DrillTarget, NotifyEvent, Tier};
use bulwark_repo::Repository;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dataset::restore_test_options;
use crate::error::{Error, Result};
use crate::events::{Details, DrillDetails};
use crate::notify::{self, Notice};
use crate::workspace::Workspace;

/// The remediation items of failed drills carry this in place of a dataset.
pub const DRILL_SUBJECT: &str = "drill";

/// Which datasets a drill brings back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every critical dataset (the default).
    Critical,
    All,
    Named(Vec<String>),
}

/// Where the drill restores from.
pub enum Source {
    /// Each dataset's off-site replica, as the policy file names it.
    Replicas,
    /// One repository for every dataset (recovery from nothing: the only copy left).
    Repository {
        name: String,
        repo: Arc<Repository>,
        region: Option<String>,
    },
}

pub struct DrillRequest<'a> {
    pub scope: Scope,
    pub source: Source,
    pub now: DateTime<Utc>,
    pub progress: &'a dyn Progress,
}

/// One dataset brought back.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct DrillDataset {
    pub dataset: String,
    pub repository: String,
    pub region: Option<String>,
    pub snapshot_id: Option<String>,
    pub snapshot_time: Option<DateTime<Utc>>,
    /// The drill's start minus the snapshot's time: the data loss a real disaster would cost.
    pub rpo_achieved_s: Option<f64>,
    pub rpo_met: bool,
    /// `scratch`, or the target the policy file names.
    pub target: String,
    /// When it finished, counted from the drill's start.
    pub finished_s: f64,
    pub duration_s: f64,
    pub phases: BTreeMap<String, f64>,
    pub bytes: u64,
    pub checks: Vec<CheckResult>,
    pub passed: bool,
    pub error: Option<String>,
}

/// A whole drill.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct DrillReport {
    pub passed: bool,
    pub started: Option<DateTime<Utc>>,
    /// From the start to the last passing check: the RTO achieved.
    pub wall_s: f64,
    pub rto_target_s: f64,
    pub rto_met: bool,
    pub rpo_target_s: f64,
    pub parallel: usize,
    pub datasets: Vec<DrillDataset>,
}

impl DrillReport {
    /// One line naming what failed.
    pub fn failure_summary(&self) -> String {
        let mut parts: Vec<String> = self
            .datasets
            .iter()
            .filter(|d| !d.passed)
            .map(|d| {
                let why = d.error.clone().unwrap_or_else(|| {
                    d.checks
                        .iter()
                        .filter(|c| !c.passed)
                        .map(|c| format!("{}: {}", c.name, c.detail))
                        .collect::<Vec<_>>()
                        .join("; ")
                });
                let why = if why.is_empty() && !d.rpo_met {
                    "the newest off-site snapshot is older than the RPO".into()
                } else {
                    why
                };
                format!("{}: {why}", d.dataset)
            })
            .collect();
        if !self.rto_met {
            parts.push(format!(
                "the drill took {}, over the RTO",
                bulwark_policy::human(std::time::Duration::from_secs_f64(self.wall_s))
            ));
        }
        parts.join("; ")
    }
}

fn selected<'a>(ws: &'a Workspace, scope: &Scope) -> Result<Vec<&'a Dataset>> {
    let all = ws.config().datasets.values();
    Ok(match scope {
        Scope::Critical => all.filter(|d| d.tier == Tier::Critical).collect(),
        Scope::All => all.collect(),
        Scope::Named(names) => names
            .iter()
            .map(|n| ws.dataset(n))
            .collect::<Result<Vec<_>>>()?,
    })
}

/// The off-site replica of `d`'s primary: another region's, else any replica.
fn replica_of(ws: &Workspace, d: &Dataset) -> Result<(String, Arc<Repository>, Option<String>)> {
    let config = ws.config();
    let region = config
        .repositories
        .get(&d.repository)
        .and_then(|r| r.region.clone());
    let mut candidates: Vec<_> = config.replicas_of(&d.repository).collect();
    candidates.sort_by_key(|r| r.region.is_none() || r.region == region);
    let mut errors = Vec::new();
    for r in candidates {
        match ws.repository(&r.name) {
            Ok(repo) => return Ok((r.name.clone(), repo, r.region.clone())),
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(Error::Invalid(if errors.is_empty() {
        format!(
            "repository '{}' has no off-site replica to drill from",
            d.repository
        )
    } else {
        errors.join("; ")
    }))
}

fn check(name: &str, passed: bool, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name: name.into(),
        passed,
        detail: detail.into(),
        skipped: false,
    }
}

/// Restore one dataset as the drill asks and check it.
fn bring_back(
    ws: &Workspace,
    d: &Dataset,
    source: &Source,
    progress: &dyn Progress,
    start: Instant,
    now: DateTime<Utc>,
) -> DrillDataset {
    let t = Instant::now();
    let mut out = DrillDataset {
        dataset: d.name.clone(),
        target: "scratch".into(),
        ..Default::default()
    };
    let result = (|| -> Result<()> {
        let (name, repo, region) = match source {
            Source::Replicas => replica_of(ws, d)?,
            Source::Repository { name, repo, region } => {
                (name.clone(), repo.clone(), region.clone())
            }
        };
        out.repository = name.clone();
        out.region = region;
        let (id, snap) = repo
            .find_snapshot("latest", |s| s.dataset.as_deref() == Some(d.name.as_str()))
            .map_err(|e| Error::repository(&name, e))?;
        out.snapshot_id = Some(id.to_hex());
        let time = snap.time.to_utc();
        out.snapshot_time = Some(time);
        let age = (now - time).num_milliseconds() as f64 / 1000.0;
        out.rpo_achieved_s = Some(age.max(0.0));
        out.rpo_met = age <= ws.config().targets.rpo.as_secs_f64();
        match ws.config().drill.targets.get(&d.name) {
            None => {
                let opts = RestoreTestOptions {
                    spec: id.to_hex(),
                    ..restore_test_options(ws, d)
                };
                let r = restore_test(&repo, &opts, progress)
                    .map_err(|e| Error::repository(&name, e))?;
                out.phases = r.phases;
                out.bytes = r.bytes;
                out.checks = r.checks;
            }
            Some(target) => restore_into(ws, d, &repo, &name, &id.to_hex(), target, &mut out)?,
        }
        Ok(())
    })();
    if let Err(e) = result {
        out.error = Some(e.to_string());
    }
    out.duration_s = t.elapsed().as_secs_f64();
    out.finished_s = start.elapsed().as_secs_f64();
    out.passed = out.error.is_none()
        && !out.checks.is_empty()
        && out.checks.iter().all(|c| c.passed)
        && out.rpo_met;
    out
}

/// Restore into the secondary region's own target and check it there.
fn restore_into(
    ws: &Workspace,
    d: &Dataset,
    repo: &Repository,
    name: &str,
    id: &str,
    target: &DrillTarget,
    out: &mut DrillDataset,
) -> Result<()> {
    let fail = |e: bulwark_ops::Error| Error::repository(name, e);
    let t = Instant::now();
    match target {
        DrillTarget::Directory(dir) => {
            let dir = ws.resolve(dir);
            out.target = format!("directory {}", dir.display());
            if std::fs::read_dir(&dir).is_ok_and(|mut e| e.next().is_some()) {
                return Err(Error::Invalid(format!(
                    "the drill target {} is not empty: a drill never overwrites",
                    dir.display()
                )));
            }
            let r = restore(
                repo,
                id,
                &RestoreOptions {
                    target: dir.clone(),
                    verify: true,
                    ..RestoreOptions::default()
                },
                &bulwark_ops::Silent,
            )
            .map_err(fail)?;
            out.bytes = r.bytes;
            out.checks.push(check(
                "integrity",
                r.verified && r.errors.is_empty(),
                format!(
                    "{} files restored into {} and re-read",
                    r.files_verified,
                    dir.display()
                ),
            ));
            let (_, snap) = repo
                .find_snapshot(id, |_| true)
                .map_err(|e| Error::repository(name, e))?;
            let fidelity = snap
                .summary
                .is_none_or(|s| s.total_files == r.files && s.total_bytes == r.bytes);
            out.checks.push(check(
                "fidelity",
                fidelity,
                format!("{} files, {} bytes restored", r.files, r.bytes),
            ));
        }
        DrillTarget::Sqlite(path) | DrillTarget::Postgres(path) | DrillTarget::Mariadb(path) => {
            let (db_target, label) = match target {
                DrillTarget::Sqlite(p) => {
                    let p = ws.resolve(p);
                    (
                        DbTarget::Sqlite { path: p.clone() },
                        format!("sqlite {}", p.display()),
                    )
                }
                DrillTarget::Postgres(dsn) => (
                    DbTarget::Postgres {
                        dsn: dsn.clone(),
                        create_roles: true,
                    },
                    format!("postgres {}", bulwark_source::db::postgres::redact(dsn)),
                ),
                _ => (
                    DbTarget::Mariadb { dsn: path.clone() },
                    format!("mariadb {}", bulwark_source::db::mariadb::redact(path)),
                ),
            };
            out.target = label;
            let r = restore_database(repo, id, Some(&d.name), &db_target).map_err(fail)?;
            out.checks.push(check(
                "fidelity",
                r.verified,
                if r.verified {
                    "every table's row count and checksum match the backup".to_string()
                } else {
                    r.differences.join("; ")
                },
            ));
            for sql in &d.restore_test.checks {
                out.checks.push(assertion(target, ws, sql));
            }
        }
    }
    out.phases
        .insert("restore".into(), t.elapsed().as_secs_f64());
    Ok(())
}

/// The dataset's own SQL assertion, run on the drill's target.
fn assertion(target: &DrillTarget, ws: &Workspace, sql: &str) -> CheckResult {
    use bulwark_source::db::{mariadb, postgres, sqlite};
    let name = format!("check-sql: {sql}");
    let r = match target {
        DrillTarget::Sqlite(p) => {
            sqlite::open(&ws.resolve(p)).and_then(|c| sqlite::assertion(&c, sql))
        }
        DrillTarget::Postgres(dsn) => {
            postgres::connect(dsn).and_then(|mut c| postgres::assertion(&mut c, sql))
        }
        DrillTarget::Mariadb(dsn) => mariadb::MariadbDsn::parse(dsn)
            .and_then(|d| mariadb::connect(&d))
            .and_then(|mut c| mariadb::assertion(&mut c, sql)),
        DrillTarget::Directory(_) => {
            return check(&name, false, "SQL checks need a database target");
        }
    };
    match r {
        Ok((ok, detail)) => check(&name, ok, detail),
        Err(e) => check(&name, false, e.0),
    }
}

/// Run a drill and record it.
pub fn drill(ws: &Workspace, req: &DrillRequest) -> Result<DrillReport> {
    let datasets = selected(ws, &req.scope)?;
    if datasets.is_empty() {
        return Err(Error::Invalid(
            "no dataset to drill: mark critical datasets `tier = \"critical\"`, or name them"
                .into(),
        ));
    }
    let parallel = ws.config().drill.parallel.max(1);
    let started = Instant::now();
    let queue = Mutex::new(datasets.iter().copied().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..parallel.min(datasets.len()) {
            s.spawn(|| {
                while let Some(d) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() {
                    let r = bring_back(ws, d, &req.source, req.progress, started, req.now);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by(|a, b| a.dataset.cmp(&b.dataset));
    let targets = &ws.config().targets;
    let wall_s = results.iter().map(|r| r.finished_s).fold(0.0, f64::max);
    let rto_met = wall_s <= targets.rto.as_secs_f64();
    let report = DrillReport {
        passed: rto_met && results.iter().all(|r| r.passed),
        started: Some(req.now),
        wall_s,
        rto_target_s: targets.rto.as_secs_f64(),
        rto_met,
        rpo_target_s: targets.rpo.as_secs_f64(),
        parallel,
        datasets: results,
    };
    record(ws, &report, req.now)?;
    Ok(report)
}

fn record(ws: &Workspace, report: &DrillReport, now: DateTime<Utc>) -> Result<()> {
    let summary = if report.passed {
        format!(
            "drill passed: {} datasets back from off-site in {} (RTO {})",
            report.datasets.len(),
            bulwark_policy::human(std::time::Duration::from_secs_f64(report.wall_s)),
            bulwark_policy::human(ws.config().targets.rto)
        )
    } else {
        format!("drill failed: {}", report.failure_summary())
    };
    let finished = now + chrono::Duration::milliseconds((report.wall_s * 1000.0) as i64);
    let mut ledger = ws.ledger();
    let event = ledger.append(
        DrillDetails {
            report: report.clone(),
        }
        .event(summary.clone())
        .config_hash(ws.config_hash())
        .timed(now, finished)
        .ok(report.passed),
    )?;
    let open: Vec<_> = ledger
        .remediations(true)?
        .into_iter()
        .filter(|r| r.dataset == DRILL_SUBJECT)
        .collect();
    let fixed = report.passed && !open.is_empty();
    if report.passed {
        for r in open {
            ledger.close_remediation(&r.id, Some(&event.id), "a drill passed")?;
        }
    } else if open.is_empty() {
        ledger.open_remediation(DRILL_SUBJECT, &summary, Some(&event.id))?;
    }
    drop(ledger);
    let tell = |what: NotifyEvent, message: String| {
        let notice = Notice::new(what, event.id.clone(), message);
        if let Err(e) = notify::send(ws, &notice) {
            tracing::warn!("notifications could not be recorded: {e}");
        }
    };
    if !report.passed {
        tell(NotifyEvent::DrillFailed, format!("bulwark: {summary}"));
    } else if fixed {
        tell(NotifyEvent::DrillFixed, format!("bulwark: {summary}"));
    }
    Ok(())
}

/// The last drill and the last passed one, as judgements need them.
pub fn drill_facts(
    ws: &Workspace,
) -> Result<(
    Option<bulwark_policy::compliance::DrillFact>,
    Option<bulwark_policy::compliance::DrillFact>,
)> {
    let ledger = ws.ledger();
    let fact = |e: &bulwark_ledger::Event| bulwark_policy::compliance::DrillFact {
        time: e.finished,
        passed: e.ok,
        wall_s: DrillDetails::of(e).map_or(0.0, |d| d.report.wall_s),
    };
    let last = ledger
        .last(&EventKind::Drill, None, false)?
        .map(|e| fact(&e));
    let passed = ledger
        .last(&EventKind::Drill, None, true)?
        .map(|e| fact(&e));
    Ok((last, passed))
}
