//! `run`: carry out what the policy file asks, and record every step in the ledger.
//!
//! Per dataset, when due (or when asked for by name or with everything): back up into its
//! repository; copy to each off-site replica (also whenever a replica lacks some of the dataset's
//! snapshots, so a replica that was down catches up on the next tick); apply retention after a
//! backup; run a restore test when one is due (every run re-tests after a failure until one
//! passes, which closes the remediation item the failure opened). Then, per repository used:
//! prune when its own interval has passed or forget removed something; and, when the run did any
//! work, store a copy of the ledger in it and its replicas.
//!
//! One dataset's failure never stops the others. Every failed step is told to the channels that
//! hear it. A run that finds nothing due does nothing but record that it looked: one `run` event.
//! The decisions are `bulwark_policy::due`'s, over facts read here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use bulwark_ledger::{EventFilter, EventKind, Ledger, NewEvent};
use bulwark_ops::Progress;
use bulwark_ops::copy::copy;
use bulwark_ops::forget::{ForgetOptions, forget};
use bulwark_ops::prune::{PruneOptions, prune};
use bulwark_ops::restore_test::restore_test;
use bulwark_policy::GroupBy;
use bulwark_policy::config::{Dataset, NotifyEvent};
use bulwark_policy::due::{self, Due, LastTest};
use bulwark_repo::Repository;
use bulwark_repo::repository::Snapshots;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auto_failover;
use crate::dataset::{backup_dataset, restore_test_options};
use crate::error::{Error, FailureKind, Result};
use crate::events::{
    BackupDetails, ConfigChangeDetails, CopyDetails, Details, DueWork, ForgetDetails,
    LedgerCopyDetails, LockCheckDetails, PruneDetails, RestoreTestDetails, RunDetails,
};
use crate::ledger_copy;
use crate::notify::{self, Notice};
use crate::workspace::Workspace;

/// Which datasets a run covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every dataset, every step.
    All,
    /// Only what the schedules and intervals say is due.
    Due,
    /// What is due among these datasets (and the prunes of their repositories): one job of a
    /// scheduler.
    DueAmong(Vec<String>),
    /// These datasets, every step (a restore test runs for each).
    Named(Vec<String>),
    /// Only the platform-wide work that is due and belongs to no dataset: the disaster-recovery
    /// drill and the replication audits. A scheduler's job, once the datasets are done.
    Platform,
}

impl Selection {
    fn describe(&self) -> String {
        match self {
            Selection::All => "all".into(),
            Selection::Due => "due".into(),
            Selection::DueAmong(n) => format!("due among {}", n.join(",")),
            Selection::Named(n) => n.join(","),
            Selection::Platform => "platform".into(),
        }
    }

    /// Only what is due, not everything.
    fn due_only(&self) -> bool {
        matches!(
            self,
            Selection::Due | Selection::DueAmong(_) | Selection::Platform
        )
    }

    /// Whether the drill and the replication audits are considered.
    fn platform(&self) -> bool {
        matches!(self, Selection::Due | Selection::All | Selection::Platform)
    }

    fn includes(&self, dataset: &str) -> bool {
        match self {
            Selection::All | Selection::Due => true,
            Selection::DueAmong(names) | Selection::Named(names) => {
                names.iter().any(|n| n == dataset)
            }
            Selection::Platform => false,
        }
    }
}

pub struct RunRequest<'a> {
    pub selection: Selection,
    pub now: DateTime<Utc>,
    pub progress: &'a dyn Progress,
    /// Recorded with the run's event: who ran it and under which lease, for a daemon.
    pub context: Option<serde_json::Value>,
}

/// One step of a run, as recorded.
#[derive(Serialize, Debug, Clone)]
pub struct Step {
    /// `backup`, `copy to NAME`, `forget`, `restore test`, `prune`, `ledger copy`, `open NAME`.
    pub step: String,
    pub repository: Option<String>,
    pub ok: bool,
    pub summary: String,
    pub duration_s: f64,
    /// What kind of failure, for failed steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// The ledger event that records the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

#[derive(Serialize, Debug, Default)]
pub struct DatasetRun {
    pub dataset: String,
    pub ok: bool,
    /// Why it ran.
    pub due: Vec<String>,
    pub steps: Vec<Step>,
}

#[derive(Serialize, Debug, Default)]
pub struct RunReport {
    pub ok: bool,
    /// Nothing was due: the run only looked.
    pub nothing_due: bool,
    pub datasets: Vec<DatasetRun>,
    /// Repository-wide maintenance and the ledger's copies.
    pub maintenance: Vec<Step>,
    /// When the next piece of work falls due.
    pub next_due: Option<DateTime<Utc>>,
    /// Incidents Bulwark opened or resolved after the run (`INC-n opened: ...`).
    pub incidents: Vec<String>,
    /// Primaries this run failed over to a replica on its own (`auto_failover`): a long-lived
    /// front-end reopens its workspace to follow.
    pub failed_over: Vec<String>,
}

impl RunReport {
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.datasets
            .iter()
            .flat_map(|d| d.steps.iter())
            .chain(self.maintenance.iter())
    }

    pub fn failures(&self) -> impl Iterator<Item = &Step> {
        self.steps().filter(|s| !s.ok)
    }
}

/// A step's outcome before it is recorded.
struct Outcome {
    summary: String,
    details: serde_json::Value,
    failure: Option<FailureKind>,
}

impl Outcome {
    fn ok(summary: impl Into<String>, details: &impl Details) -> Outcome {
        Outcome {
            summary: summary.into(),
            details: serde_json::to_value(details).expect("details serialise"),
            failure: None,
        }
    }

    fn failed<D: Details + Default>(e: &Error, with: impl FnOnce(&mut D, String)) -> Outcome {
        let mut d = D::default();
        with(&mut d, e.to_string());
        Outcome {
            summary: e.to_string(),
            details: serde_json::to_value(&d).expect("details serialise"),
            failure: Some(e.kind()),
        }
    }
}

/// What one dataset has to do in this run.
struct Plan<'a> {
    dataset: &'a Dataset,
    primary: Result<Arc<Repository>>,
    backup: Option<String>,
    test: Option<String>,
    /// A heartbeat row is due in the source (physical datasets).
    heartbeat: Option<String>,
    copies: Vec<(String, String)>,
    next: Option<DateTime<Utc>>,
    /// The dataset's snapshots in its repository when the run planned.
    snapshots: Snapshots,
}

struct Runner<'a> {
    ws: &'a Workspace,
    req: &'a RunRequest<'a>,
    due: Vec<DueWork>,
    /// How far the request's clock is from the system's: what the run records (snapshot and
    /// event times) follows the request's clock, so a scheduler with a clock of its own sees
    /// its own decisions reflected.
    offset: chrono::Duration,
    /// Primaries this run failed over (`auto_failover`), with the replica now active: the
    /// workspace's configuration predates them.
    failed_over: std::cell::RefCell<BTreeMap<String, String>>,
}

pub fn run(ws: &Workspace, req: &RunRequest) -> Result<RunReport> {
    if let Selection::Named(names) | Selection::DueAmong(names) = &req.selection {
        for n in names {
            ws.dataset(n)?;
        }
    }
    ledger_copy::refuse_lost_ledger(ws)?;
    record_config_change(ws)?;
    crate::roles::record_changes(ws, req.now)?;
    let mut runner = Runner {
        ws,
        req,
        due: Vec::new(),
        offset: req.now - Utc::now(),
        failed_over: Default::default(),
    };
    let plans = runner.plan()?;
    let mut report = RunReport::default();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut forgot: BTreeSet<String> = BTreeSet::new();
    let mut next = plans.iter().filter_map(|p| p.next).min();
    for plan in plans {
        let found = runner.record_found_snapshots(&plan)?;
        let working = plan.backup.is_some()
            || plan.test.is_some()
            || plan.heartbeat.is_some()
            || !plan.copies.is_empty();
        if !working && plan.primary.is_ok() {
            if !found.is_empty() {
                report.datasets.push(DatasetRun {
                    dataset: plan.dataset.name.clone(),
                    ok: true,
                    due: vec!["snapshots found without their backup events".into()],
                    steps: found,
                });
            }
            continue;
        }
        let mut run = DatasetRun {
            dataset: plan.dataset.name.clone(),
            due: plan
                .backup
                .iter()
                .chain(plan.test.iter())
                .chain(plan.heartbeat.iter())
                .cloned()
                .chain(plan.copies.iter().map(|(_, why)| why.clone()))
                .collect(),
            steps: found,
            ..Default::default()
        };
        if let Some(wrote) = runner.dataset(&plan, &mut run, &mut forgot)? {
            used.insert(wrote);
        }
        run.ok = run.steps.iter().all(|s| s.ok);
        report.datasets.push(run);
    }
    for name in runner.repositories_to_prune(&used, &forgot)? {
        if let Some(step) = runner.prune(&name.0, &name.1)? {
            report.maintenance.push(step);
        }
        // After forget and prune, the locks that retained snapshots need are lengthened.
        if let Some(step) = runner.extend_locks(&name.0)? {
            report.maintenance.push(step);
        }
        used.insert(name.0);
    }
    // A disaster-recovery drill when one is due: from the off-site copies the run just made.
    if req.selection.platform()
        && let Some(step) = runner.drill_if_due()?
    {
        report.maintenance.push(step);
    }
    // Replication audits of the buckets the policy file names, when due.
    if req.selection.platform() {
        report.maintenance.extend(runner.audit_replication()?);
    }
    let worked = report.steps().next().is_some();
    if worked {
        for name in &used {
            report.maintenance.push(runner.copy_ledger(name)?);
        }
    }
    // What falls due next, for a scheduler: the earliest of the datasets' and the prunes'.
    for r in ws
        .config()
        .repositories
        .values()
        .filter(|r| r.replica_of.is_none())
    {
        let last = last_prune(ws.ledger().as_ref(), &r.name)?;
        let at = due::prune(r.prune_every, last, false, req.now).when(req.now);
        next = next.into_iter().chain(at.filter(|t| *t > req.now)).min();
    }
    report.next_due = next;
    report.nothing_due = !worked;
    let ok = report.steps().all(|s| s.ok);
    report.ok = ok;
    let steps = report.steps().count();
    let failed = report.failures().count();
    let finished = runner.clock();
    let details = RunDetails {
        selection: req.selection.describe(),
        due: runner.due,
        steps,
        failed_steps: failed,
        next_due: report.next_due,
        context: req.context.clone(),
        provenance: crate::review::provenance(ws),
    };
    let summary = if !worked {
        "nothing due".to_string()
    } else if failed == 0 {
        format!("{steps} steps done")
    } else {
        format!("{steps} steps, {failed} failed")
    };
    ws.ledger().append(
        details
            .event(summary)
            .config_hash(ws.config_hash())
            .timed(req.now, finished)
            .ok(report.ok),
    )?;
    report.failed_over = runner.failed_over.into_inner().into_keys().collect();
    report.incidents = crate::incident::after_run(ws, req.now);
    Ok(report)
}

/// Why the platform-wide work ([`Selection::Platform`]) is due at `now`: the drill, and each
/// replication pair whose audit is due. Empty: nothing is. Reads the ledger; records nothing.
pub fn platform_due(ws: &Workspace, now: DateTime<Utc>) -> Result<Vec<String>> {
    let mut out: Vec<String> = drill_due(ws, now)?
        .map(|reason| format!("drill: {reason}"))
        .into_iter()
        .collect();
    let pairs = &ws.config().replication;
    if !pairs.is_empty() {
        let last = crate::replication::last_audits(ws)?;
        for pair in pairs.values() {
            if bulwark_policy::replication::audit_due(
                pair,
                last.get(&pair.name).map(|a| a.time),
                now,
            ) {
                out.push(format!("replication audit {}", pair.name));
            }
        }
    }
    Ok(out)
}

/// Why a drill is due (never yet, the last failed, or the last is `drill_every` old), when one is
/// and the policy file has critical datasets to drill.
fn drill_due(ws: &Workspace, now: DateTime<Utc>) -> Result<Option<String>> {
    let last = ws
        .ledger()
        .last(&EventKind::Drill, None, false)?
        .map(|e| LastTest {
            finished: e.finished,
            passed: e.ok,
        });
    let Due::Now { reason } = due::drill(ws.config().targets.drill_every, last, now) else {
        return Ok(None);
    };
    let critical = ws
        .config()
        .datasets
        .values()
        .any(|d| d.tier == bulwark_policy::config::Tier::Critical);
    Ok(critical.then_some(reason))
}

/// When a dataset's work falls due, as a `--due` run would decide at that instant.
#[derive(Serialize, Debug, Clone)]
pub struct DatasetDue {
    pub dataset: String,
    pub repository: String,
    /// Why it is due now (empty: not due).
    pub due: Vec<String>,
    /// When it next falls due, when not due now.
    pub next: Option<DateTime<Utc>>,
    /// The repository could not be read: the dataset is due so that a run reports why.
    pub error: Option<String>,
}

/// What is due, dataset by dataset: what a scheduler waits for. Reads the repositories and the
/// ledger; records nothing.
pub fn schedule(ws: &Workspace, now: DateTime<Utc>) -> Result<Vec<DatasetDue>> {
    let req = RunRequest {
        selection: Selection::Due,
        now,
        progress: &bulwark_ops::Silent,
        context: None,
    };
    let mut runner = Runner {
        ws,
        req: &req,
        due: Vec::new(),
        offset: chrono::Duration::zero(),
        failed_over: Default::default(),
    };
    let plans = runner.plan()?;
    Ok(plans
        .into_iter()
        .map(|p| DatasetDue {
            dataset: p.dataset.name.clone(),
            repository: p.dataset.repository.clone(),
            due: p
                .backup
                .iter()
                .chain(p.test.iter())
                .chain(p.heartbeat.iter())
                .cloned()
                .chain(p.copies.iter().map(|(_, why)| why.clone()))
                .collect(),
            next: p.next,
            error: p.primary.err().map(|e| e.to_string()),
        })
        .collect())
}

/// A changed policy file is itself an event: the ledger says which configuration each run kept.
fn record_config_change(ws: &Workspace) -> Result<()> {
    let mut ledger = ws.ledger();
    let last = ledger.last(&EventKind::ConfigChange, None, true)?;
    let hash = ws.config_hash();
    if last.as_ref().and_then(|e| e.config_hash.as_deref()) != Some(hash) {
        let details = ConfigChangeDetails {
            path: ws.path().display().to_string(),
            hash: hash.to_string(),
        };
        ledger.append(
            details
                .event(format!(
                    "policy file {} is now {}",
                    ws.path().display(),
                    &hash[..12]
                ))
                .config_hash(hash),
        )?;
    }
    Ok(())
}

fn last_prune(ledger: &dyn Ledger, repository: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(ledger
        .events(
            &EventFilter::all()
                .kind(EventKind::Prune)
                .repository(repository)
                .ok(true)
                .newest_first()
                .limit(1),
        )?
        .pop()
        .map(|e| e.finished))
}

/// The snapshots of `dataset` in `repo`.
fn dataset_snapshots(repo: &Repository, dataset: &str) -> bulwark_repo::Result<Snapshots> {
    let (snaps, _) = repo.load_snapshots()?;
    Ok(snaps
        .into_iter()
        .filter(|(_, s)| s.dataset.as_deref() == Some(dataset))
        .collect())
}

fn hex_ids(snapshots: &Snapshots) -> Vec<String> {
    snapshots.iter().map(|(id, _)| id.to_hex()).collect()
}

impl<'a> Runner<'a> {
    fn selected(&self) -> Vec<&'a Dataset> {
        self.ws
            .config()
            .datasets
            .values()
            .filter(|d| self.req.selection.includes(&d.name))
            .collect()
    }

    /// Decide, per dataset, what is due and why.
    fn plan(&mut self) -> Result<Vec<Plan<'a>>> {
        let now = self.req.now;
        let mut plans = Vec::new();
        for d in self.selected() {
            let primary = self.ws.repository(&d.repository);
            let snapshots = match &primary {
                Ok(repo) => dataset_snapshots(repo, &d.name)
                    .map_err(|e| Error::repository(&d.repository, e))?,
                Err(_) => Vec::new(),
            };
            let newest = snapshots.iter().map(|(_, s)| s.time.to_utc()).max();
            let ids = hex_ids(&snapshots);
            let last_test = self
                .ws
                .ledger()
                .last(&EventKind::RestoreTest, Some(&d.name), false)?
                .map(|e| LastTest {
                    finished: e.finished,
                    passed: e.ok,
                });
            let (backup, test) = match &self.req.selection {
                // A platform run selects no dataset; it would judge one as `--due` does.
                Selection::Due | Selection::DueAmong(_) | Selection::Platform => (
                    due::backup(&d.schedule, newest, now),
                    due::restore_test(d.restore_test.every, last_test, now),
                ),
                Selection::All => (
                    Due::now("every dataset was asked for"),
                    due::restore_test(d.restore_test.every, last_test, now),
                ),
                Selection::Named(_) => (
                    Due::now("named on the command line"),
                    Due::now("named on the command line"),
                ),
            };
            let mut copies = Vec::new();
            if backup.is_now() || test.is_now() || !self.req.selection.due_only() {
                // Copies follow whatever the dataset does.
            } else if let Ok(repo) = &primary {
                for r in self.ws.config().replicas_of(&d.repository) {
                    let Ok(replica) = self.ws.repository(&r.name) else {
                        copies.push((
                            r.name.clone(),
                            format!("replica '{}' could not be opened", r.name),
                        ));
                        continue;
                    };
                    if !replica.shares_key_with(repo) {
                        continue;
                    }
                    let there: BTreeSet<String> = replica
                        .snapshot_ids()
                        .map(|v| v.iter().map(|i| i.to_hex()).collect())
                        .unwrap_or_default();
                    let lacking = ids.iter().filter(|i| !there.contains(*i)).count();
                    if lacking > 0 {
                        copies.push((
                            r.name.clone(),
                            format!("replica '{}' lacks {lacking} snapshots", r.name),
                        ));
                    }
                }
            }
            let heartbeat = crate::wal::heartbeat_due(self.ws, d, now);
            let next = [&backup, &test]
                .into_iter()
                .chain(heartbeat.as_ref())
                .filter_map(|d| d.when(now))
                .filter(|t| *t > now)
                .min();
            let heartbeat = heartbeat.and_then(|h| match h {
                Due::Now { reason } => Some(format!("heartbeat: {reason}")),
                _ => None,
            });
            let reason = |d: &Due| match d {
                Due::Now { reason } => Some(reason.clone()),
                _ => None,
            };
            let (backup, test) = (reason(&backup), reason(&test));
            for (work, why) in [("backup", &backup), ("restore_test", &test)] {
                if let Some(why) = why {
                    self.due.push(DueWork {
                        dataset: Some(d.name.clone()),
                        repository: Some(d.repository.clone()),
                        work: work.into(),
                        reason: why.clone(),
                    });
                }
            }
            for (replica, why) in &copies {
                self.due.push(DueWork {
                    dataset: Some(d.name.clone()),
                    repository: Some(replica.clone()),
                    work: "copy".into(),
                    reason: why.clone(),
                });
            }
            plans.push(Plan {
                dataset: d,
                primary,
                backup,
                test,
                heartbeat,
                copies,
                next,
                snapshots,
            });
        }
        Ok(plans)
    }

    /// Record the snapshots of the plan's dataset that no backup event names and that are newer
    /// than the newest one that does: a node stopped between saving a snapshot and recording
    /// it (the run that takes its work over finds the snapshot and has no backup to do), or a
    /// backup was made outside `run`. Without this the ledger would lack evidence of a snapshot
    /// the repository holds. Each becomes an ok backup event marked `found`, started at the
    /// snapshot's time (or now, for one from the future).
    fn record_found_snapshots(&self, plan: &Plan) -> Result<Vec<Step>> {
        let d = plan.dataset;
        let newest = self
            .ws
            .ledger()
            .last(&EventKind::Backup, Some(&d.name), true)?;
        let newest_id = newest
            .as_ref()
            .and_then(|e| BackupDetails::of(e).ok()?.snapshot_id);
        let mut found: Vec<_> = plan
            .snapshots
            .iter()
            .filter(|(id, s)| {
                newest.as_ref().is_none_or(|e| s.time.to_utc() > e.started)
                    && newest_id.as_deref() != Some(id.to_hex().as_str())
            })
            .collect();
        // Usually none is left: the newest event names the newest snapshot. Otherwise the
        // events of a day before the newest are read too, for backups that overlapped it.
        if let (Some(newest), false) = (&newest, found.is_empty()) {
            let filter = EventFilter::all()
                .kind(EventKind::Backup)
                .dataset(&d.name)
                .ok(true)
                .since(newest.started - chrono::Duration::days(1));
            let recorded: BTreeSet<String> = self
                .ws
                .ledger()
                .events(&filter)?
                .iter()
                .filter_map(|e| BackupDetails::of(e).ok()?.snapshot_id)
                .collect();
            found.retain(|(id, _)| !recorded.contains(&id.to_hex()));
        }
        found.sort_by_key(|(_, s)| s.time);
        let mut steps = Vec::new();
        for (id, snap) in found {
            let outcome = Outcome::ok(
                format!(
                    "snapshot {} found in the repository without its backup event; recorded now",
                    id.short()
                ),
                &BackupDetails {
                    snapshot_id: Some(id.to_hex()),
                    parent: snap.parent.map(|p| p.to_hex()),
                    summary: snap.summary.clone(),
                    cipher: Some(bulwark_repo::crypto::CIPHER.to_string()),
                    found: true,
                    ..Default::default()
                },
            );
            let started = (snap.time.to_utc().min(self.clock()), Instant::now());
            steps.push(self.record(
                EventKind::Backup,
                "record found snapshot",
                Some(&d.name),
                &d.repository,
                started,
                outcome,
                None,
            )?);
        }
        Ok(steps)
    }

    /// Record a step as a ledger event and as a step of the report; tell who hears a failure.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        kind: EventKind,
        step: &str,
        dataset: Option<&str>,
        repository: &str,
        started: (DateTime<Utc>, Instant),
        outcome: Outcome,
        failed_event: Option<NotifyEvent>,
    ) -> Result<Step> {
        let ok = outcome.failure.is_none();
        let mut e = NewEvent::new(kind, outcome.summary.clone())
            .config_hash(self.ws.config_hash())
            .timed(started.0, self.clock())
            .ok(ok)
            .details(outcome.details)
            .repository(repository);
        if let Some(d) = dataset {
            e = e.dataset(d);
        }
        let event = self.ws.ledger().append(e)?;
        if let (false, Some(what)) = (ok, failed_event) {
            self.tell(
                what,
                dataset,
                Some(repository),
                &event.id,
                &format!("{step} failed: {}", outcome.summary),
            );
        }
        Ok(Step {
            step: step.to_string(),
            repository: Some(repository.to_string()),
            ok,
            summary: outcome.summary,
            duration_s: started.1.elapsed().as_secs_f64(),
            failure: outcome.failure,
            event: Some(event.id),
        })
    }

    /// Tell the channels that hear `event`; `about` (the ledger event of the step, or the run)
    /// makes the notice unique.
    fn tell(
        &self,
        event: NotifyEvent,
        dataset: Option<&str>,
        repository: Option<&str>,
        about: &str,
        what: &str,
    ) {
        let subject = dataset.map_or_else(String::new, |d| format!(" {d}:"));
        let notice = Notice {
            event,
            dataset: dataset.map(str::to_string),
            repository: repository.map(str::to_string),
            about: about.to_string(),
            message: format!("bulwark:{subject} {what}"),
            at: self.clock(),
        };
        if let Err(e) = notify::send(self.ws, &notice) {
            tracing::warn!("notifications could not be recorded: {e}");
        }
    }

    /// Now, by the request's clock.
    fn clock(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    fn start(&self) -> (DateTime<Utc>, Instant) {
        (self.clock(), Instant::now())
    }

    /// Run one dataset's steps; the repository it wrote, if any.
    fn dataset(
        &self,
        plan: &Plan,
        run: &mut DatasetRun,
        forgot: &mut BTreeSet<String>,
    ) -> Result<Option<String>> {
        let d = plan.dataset;
        let name = d.name.as_str();
        // A primary this run already failed over: straight to the replica.
        let active = self.failed_over.borrow().get(&d.repository).cloned();
        if let Some(active) = active {
            self.backup_after_failover(d, &active, run)?;
            return Ok(Some(active));
        }
        let primary = match &plan.primary {
            Ok(p) => p.clone(),
            Err(e) => {
                run.steps.push(Step {
                    step: format!("open {}", d.repository),
                    repository: Some(d.repository.clone()),
                    ok: false,
                    summary: e.to_string(),
                    duration_s: 0.0,
                    failure: Some(e.kind()),
                    event: None,
                });
                if plan.backup.is_some() {
                    // The backup that was due failed; recorded, so a streak can be counted.
                    let failed = Outcome::failed::<BackupDetails>(e, |b, m| {
                        b.error = Some(m);
                        b.unavailable = auto_failover::unavailable(e.kind());
                    });
                    self.record(
                        EventKind::Backup,
                        "backup",
                        Some(name),
                        &d.repository,
                        self.start(),
                        failed,
                        None,
                    )?;
                }
                self.tell(
                    NotifyEvent::BackupFailed,
                    Some(name),
                    Some(&d.repository),
                    &format!("run at {}", self.req.now.to_rfc3339()),
                    &format!("cannot open repository: {e}"),
                );
                return self.fail_over_if_due(d, run);
            }
        };
        // One heartbeat row per run: the point-in-time restore tests measure against them.
        if d.heartbeat.is_some()
            && let Err(e) = crate::wal::heartbeat(self.ws, d)
        {
            run.steps.push(Step {
                step: "heartbeat".into(),
                repository: None,
                ok: false,
                summary: e.to_string(),
                duration_s: 0.0,
                failure: Some(e.kind()),
                event: None,
            });
        }
        let progress = self.req.progress;
        let mut backed_up = false;
        if plan.backup.is_some() {
            let step = self.backup(d, &primary, &d.repository)?;
            let failed = !step.ok;
            let unavailable = step.failure.is_some_and(auto_failover::unavailable);
            run.steps.push(step);
            if unavailable {
                return self.fail_over_if_due(d, run);
            }
            if failed {
                return Ok(Some(d.repository.clone()));
            }
            backed_up = true;
        }
        // Off-site copies.
        let copy_all = backed_up || plan.test.is_some() || !self.req.selection.due_only();
        let ids = if copy_all || !plan.copies.is_empty() {
            dataset_snapshots(&primary, name)
                .map(|s| hex_ids(&s))
                .map_err(|e| Error::repository(&d.repository, e))?
        } else {
            Vec::new()
        };
        for r in self.ws.config().replicas_of(&d.repository) {
            if !copy_all && !plan.copies.iter().any(|(n, _)| n == &r.name) {
                continue;
            }
            let t = self.start();
            let outcome = match self.ws.repository(&r.name).and_then(|replica| {
                copy(&primary, &replica, &ids, progress).map_err(|e| Error::repository(&r.name, e))
            }) {
                Ok(c) => Outcome::ok(
                    format!(
                        "{} snapshots, {} packs copied",
                        c.snapshots_copied.len(),
                        c.packs_copied
                    ),
                    &CopyDetails {
                        report: c,
                        error: None,
                    },
                ),
                Err(e) => Outcome::failed::<CopyDetails>(&e, |d, m| d.error = Some(m)),
            };
            run.steps.push(self.record(
                EventKind::Copy,
                &format!("copy to {}", r.name),
                Some(name),
                &r.name,
                t,
                outcome,
                Some(NotifyEvent::CopyFailed),
            )?);
        }
        // Retention, after new history arrived.
        if backed_up {
            let t = self.start();
            let result = forget(
                &primary,
                &ForgetOptions {
                    rules: d.retention.clone(),
                    group_by: GroupBy {
                        host: true,
                        paths: true,
                        tags: false,
                        dataset: true,
                    },
                    dataset: Some(name.to_string()),
                    explicit: Vec::new(),
                    dry_run: false,
                    now: self.req.now,
                    clock_check: Some(bulwark_ops::clock_check::ClockCheck {
                        clock_offset: self.offset,
                        ..Default::default()
                    }),
                },
            )
            .map_err(|e| Error::repository(&d.repository, e));
            let outcome = match result {
                Ok(r) => {
                    if !r.removed.is_empty() {
                        forgot.insert(d.repository.clone());
                    }
                    Outcome::ok(
                        format!("kept {}, removed {}", r.kept, r.removed.len()),
                        &ForgetDetails {
                            kept: r.kept,
                            removed: r.removed,
                            error: None,
                        },
                    )
                }
                Err(e) => Outcome::failed::<ForgetDetails>(&e, |d, m| d.error = Some(m)),
            };
            run.steps.push(self.record(
                EventKind::Forget,
                "forget",
                Some(name),
                &d.repository,
                t,
                outcome,
                Some(NotifyEvent::ForgetFailed),
            )?);
        }
        if plan.test.is_some() {
            run.steps.push(self.restore_test(d, &primary)?);
        }
        Ok(Some(d.repository.clone()))
    }

    /// Back `d` up into `repo` (named `repository`) and record it.
    fn backup(&self, d: &Dataset, repo: &Repository, repository: &str) -> Result<Step> {
        let t = self.start();
        let outcome = match backup_dataset(self.ws, d, repo, self.req.progress, self.clock()) {
            Ok(r) => {
                let s = &r.summary;
                Outcome::ok(
                    format!(
                        "snapshot {}: {} files, {} added",
                        r.snapshot_id.short(),
                        s.total_files,
                        bulwark_policy::human_size(s.bytes_added_stored)
                    ),
                    &BackupDetails {
                        snapshot_id: Some(r.snapshot_id.to_hex()),
                        parent: r.parent.map(|p| p.to_hex()),
                        summary: Some(r.summary.clone()),
                        unreadable: r.unreadable.clone(),
                        error: None,
                        cipher: Some(bulwark_repo::crypto::CIPHER.to_string()),
                        key_slot: Some(repo.key_slot().to_string()),
                        unavailable: false,
                        found: false,
                    },
                )
            }
            Err(e) => Outcome::failed::<BackupDetails>(&e, |b, m| {
                b.error = Some(m);
                b.unavailable = auto_failover::unavailable(e.kind());
            }),
        };
        self.record(
            EventKind::Backup,
            "backup",
            Some(&d.name),
            repository,
            t,
            outcome,
            Some(NotifyEvent::BackupFailed),
        )
    }

    /// After a backup found `d`'s repository unavailable: fail it over when `auto_failover`
    /// says so (see `crate::auto_failover`) and back up into the replica at once.
    fn fail_over_if_due(&self, d: &Dataset, run: &mut DatasetRun) -> Result<Option<String>> {
        let t = self.start();
        let failover = match auto_failover::consider(self.ws, &d.repository) {
            Ok(None) => return Ok(None),
            Ok(Some(f)) => f,
            Err(e) => {
                run.steps.push(Step {
                    step: "failover".into(),
                    repository: Some(d.repository.clone()),
                    ok: false,
                    summary: e.to_string(),
                    duration_s: t.1.elapsed().as_secs_f64(),
                    failure: Some(e.kind()),
                    event: None,
                });
                return Ok(None);
            }
        };
        run.steps.push(Step {
            step: format!("failover to {}", failover.active),
            repository: Some(failover.active.clone()),
            ok: true,
            summary: failover.reason.clone(),
            duration_s: t.1.elapsed().as_secs_f64(),
            failure: None,
            event: Some(failover.event.clone()),
        });
        self.tell(
            NotifyEvent::FailedOver,
            None,
            Some(&failover.active),
            &failover.event,
            &format!(
                "backups of '{}' now go to '{}' ({}); run `bulwark failback` once it is back",
                failover.primary, failover.active, failover.reason
            ),
        );
        self.failed_over
            .borrow_mut()
            .insert(failover.primary.clone(), failover.active.clone());
        self.backup_after_failover(d, &failover.active, run)?;
        Ok(Some(failover.active))
    }

    /// Back `d` up into `active`, the replica its primary failed over to during this run. Its
    /// copies and retention follow from the next run, whose configuration knows the failover.
    fn backup_after_failover(&self, d: &Dataset, active: &str, run: &mut DatasetRun) -> Result<()> {
        let step = match self.ws.repository(active) {
            Ok(repo) => self.backup(d, &repo, active)?,
            Err(e) => Step {
                step: format!("open {active}"),
                repository: Some(active.to_string()),
                ok: false,
                summary: e.to_string(),
                duration_s: 0.0,
                failure: Some(e.kind()),
                event: None,
            },
        };
        run.steps.push(step);
        Ok(())
    }

    fn restore_test(&self, d: &Dataset, primary: &Repository) -> Result<Step> {
        let name = d.name.as_str();
        let t = self.start();
        let result = restore_test(
            primary,
            &restore_test_options(self.ws, d),
            self.req.progress,
        )
        .map_err(|e| Error::repository(&d.repository, e));
        let outcome = match result {
            Ok(r) if r.passed => Outcome::ok(
                format!(
                    "passed in {:.1}s{}",
                    r.duration_s,
                    r.sample.as_ref().map_or(String::new(), |s| format!(
                        " (sampled {} of {} files)",
                        s.files_tested, s.files_total
                    ))
                ),
                &RestoreTestDetails {
                    report: r,
                    error: None,
                },
            ),
            Ok(r) => {
                let summary = format!("restore test failed: {}", r.failure_summary());
                Outcome {
                    summary: summary.clone(),
                    details: serde_json::to_value(RestoreTestDetails {
                        report: r,
                        error: Some(summary),
                    })
                    .expect("details serialise"),
                    failure: Some(FailureKind::Check),
                }
            }
            Err(e) => Outcome::failed::<RestoreTestDetails>(&e, |d, m| d.error = Some(m)),
        };
        let step = self.record(
            EventKind::RestoreTest,
            "restore test",
            Some(name),
            &d.repository,
            t,
            outcome,
            Some(NotifyEvent::RestoreTestFailed),
        )?;
        let mut ledger = self.ws.ledger();
        let open: Vec<_> = ledger
            .remediations(true)?
            .into_iter()
            .filter(|r| r.dataset == name)
            .collect();
        if step.ok {
            let fixed = !open.is_empty();
            for r in open {
                ledger.close_remediation(&r.id, step.event.as_deref(), "a restore test passed")?;
            }
            drop(ledger);
            if fixed {
                self.tell(
                    NotifyEvent::RestoreTestFixed,
                    Some(name),
                    Some(&d.repository),
                    step.event.as_deref().unwrap_or_default(),
                    "a restore test passed again; the remediation item is closed",
                );
            }
        } else if open.is_empty() {
            ledger.open_remediation(name, &step.summary, step.event.as_deref())?;
        }
        Ok(step)
    }

    /// Run a drill when one is due (never yet, the last failed, or the last is `drill_every` old).
    fn drill_if_due(&mut self) -> Result<Option<Step>> {
        let Some(reason) = drill_due(self.ws, self.req.now)? else {
            return Ok(None);
        };
        self.due.push(DueWork {
            dataset: None,
            repository: None,
            work: "drill".into(),
            reason,
        });
        let t = self.start();
        let result = crate::drill::drill(
            self.ws,
            &crate::drill::DrillRequest {
                scope: crate::drill::Scope::Critical,
                source: crate::drill::Source::Replicas,
                now: self.clock(),
                progress: self.req.progress,
            },
        );
        let (ok, summary, failure) = match result {
            Ok(r) if r.passed => (true, format!("passed in {:.1}s", r.wall_s), None),
            Ok(r) => (false, r.failure_summary(), Some(FailureKind::Check)),
            Err(e) => (false, e.to_string(), Some(e.kind())),
        };
        let event = self
            .ws
            .ledger()
            .last(&EventKind::Drill, None, false)?
            .map(|e| e.id);
        Ok(Some(Step {
            step: "drill".into(),
            repository: None,
            ok,
            summary,
            duration_s: t.1.elapsed().as_secs_f64(),
            failure,
            event,
        }))
    }

    /// Each `[replication.NAME]` pair whose audit is due: compared and recorded.
    fn audit_replication(&mut self) -> Result<Vec<Step>> {
        let t = self.start();
        let outcomes = crate::replication::audit_pairs(
            self.ws,
            &[],
            self.req.selection.due_only(),
            self.clock(),
        )?;
        let mut steps = Vec::new();
        for o in outcomes {
            self.due.push(DueWork {
                dataset: None,
                repository: None,
                work: format!("replication audit {}", o.name),
                reason: "audit due".into(),
            });
            let (ok, summary, failure) = match (&o.audit, &o.error) {
                (Some(a), _) if a.in_sync() => (
                    true,
                    format!("all {} objects replicated", a.source_objects),
                    None,
                ),
                (Some(a), _) => (
                    false,
                    format!(
                        "{} missing and {} differing of {} objects",
                        a.missing, a.differing, a.source_objects
                    ),
                    Some(FailureKind::Check),
                ),
                (None, e) => (
                    false,
                    e.clone().unwrap_or_default(),
                    Some(FailureKind::Backend),
                ),
            };
            let event = self
                .ws
                .ledger()
                .last(&EventKind::ReplicationAudit, None, false)?
                .map(|e| e.id);
            steps.push(Step {
                step: format!("replication audit {}", o.name),
                repository: None,
                ok,
                summary,
                duration_s: t.1.elapsed().as_secs_f64(),
                failure,
                event,
            });
        }
        Ok(steps)
    }

    /// The primaries whose prune is due, with the reason.
    fn repositories_to_prune(
        &mut self,
        used: &BTreeSet<String>,
        forgot: &BTreeSet<String>,
    ) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for r in self
            .ws
            .config()
            .repositories
            .values()
            .filter(|r| r.replica_of.is_none())
        {
            // A `--due` run prunes every repository whose prune is due; a scheduler's job, those
            // of its datasets; any other run, those it used.
            let considered = match &self.req.selection {
                Selection::Due => true,
                Selection::DueAmong(_) => self.selected().iter().any(|d| d.repository == r.name),
                _ => used.contains(&r.name),
            };
            if !considered {
                continue;
            }
            let last = last_prune(self.ws.ledger().as_ref(), &r.name)?;
            if let Due::Now { reason } =
                due::prune(r.prune_every, last, forgot.contains(&r.name), self.req.now)
            {
                self.due.push(DueWork {
                    dataset: None,
                    repository: Some(r.name.clone()),
                    work: "prune".into(),
                    reason: reason.clone(),
                });
                out.push((r.name.clone(), reason));
            }
        }
        Ok(out)
    }

    fn prune(&self, name: &str, reason: &str) -> Result<Option<Step>> {
        let t = self.start();
        let result = self.ws.repository(name).and_then(|repo| {
            prune(
                &repo,
                &PruneOptions {
                    max_unused: 0.05,
                    dry_run: false,
                },
                self.req.progress,
            )
            .map_err(|e| Error::repository(name, e))
        });
        let outcome = match result {
            Ok(r) => Outcome::ok(
                format!(
                    "deleted {} packs ({})",
                    r.packs_deleted,
                    bulwark_policy::human_size(r.bytes_freed)
                ),
                &PruneDetails {
                    report: r,
                    reason: Some(reason.to_string()),
                    error: None,
                },
            ),
            Err(e) => Outcome::failed::<PruneDetails>(&e, |d, m| d.error = Some(m)),
        };
        Ok(Some(self.record(
            EventKind::Prune,
            "prune",
            None,
            name,
            t,
            outcome,
            Some(NotifyEvent::PruneFailed),
        )?))
    }

    /// On an Object Lock repository, lengthen every lock a retained snapshot needs and prove the
    /// coverage (`check --locks --extend-locks`); nothing on other repositories.
    fn extend_locks(&self, name: &str) -> Result<Option<Step>> {
        let Ok(repo) = self.ws.repository(name) else {
            return Ok(None);
        };
        if repo.settings().object_lock.is_none() {
            return Ok(None);
        }
        let t = self.start();
        let outcome = match bulwark_ops::object_lock::check_locks(&repo, self.clock(), true) {
            Ok(r) => {
                let details = LockCheckDetails {
                    snapshots: r.snapshots,
                    objects: r.objects,
                    extended: r.extended,
                    least_slack_s: r.least_slack_s,
                    short: r.short.iter().map(|s| s.short_id.clone()).collect(),
                    error: None,
                };
                if r.ok {
                    Outcome::ok(
                        format!(
                            "{} objects of {} snapshots locked long enough ({} extended)",
                            r.objects, r.snapshots, r.extended
                        ),
                        &details,
                    )
                } else {
                    Outcome {
                        summary: format!(
                            "{} snapshots not locked long enough: {}",
                            r.short.len(),
                            details.short.join(", ")
                        ),
                        details: serde_json::to_value(&details).expect("details serialise"),
                        failure: Some(FailureKind::Check),
                    }
                }
            }
            Err(e) => Outcome::failed::<LockCheckDetails>(&Error::repository(name, e), |d, m| {
                d.error = Some(m)
            }),
        };
        Ok(Some(self.record(
            EventKind::Check,
            "lock extension",
            None,
            name,
            t,
            outcome,
            None,
        )?))
    }

    /// Store the ledger in `name` and its replicas, and apply the copies' retention.
    fn copy_ledger(&self, name: &str) -> Result<Step> {
        let t = self.start();
        let (jsonl, head) = {
            let ledger = self.ws.ledger();
            (ledger.export_jsonl()?, ledger.head()?)
        };
        let mut details = LedgerCopyDetails {
            head_seq: head.seq,
            head_id: head.id.clone(),
            ..Default::default()
        };
        let stored = self.ws.repository(name).and_then(|repo| {
            let id = ledger_copy::store(
                &repo,
                jsonl,
                self.ws.policy().bytes.clone(),
                &bulwark_ops::Silent,
            )
            .map_err(|e| Error::repository(name, e))?;
            ledger_copy::apply_retention(&repo, self.req.now)
                .map_err(|e| Error::repository(name, e))?;
            Ok((repo, id))
        });
        let outcome = match stored {
            Ok((repo, id)) => {
                details.snapshot_id = Some(id.to_hex());
                let mut failed = BTreeMap::new();
                for r in self.ws.config().replicas_of(name) {
                    let copied = self.ws.repository(&r.name).and_then(|replica| {
                        copy(&repo, &replica, &[id.to_hex()], &bulwark_ops::Silent)
                            .map_err(|e| Error::repository(&r.name, e))?;
                        ledger_copy::apply_retention(&replica, self.req.now)
                            .map_err(|e| Error::repository(&r.name, e))
                    });
                    match copied {
                        Ok(_) => details.replicas.push(r.name.clone()),
                        Err(e) => {
                            failed.insert(r.name.clone(), e.to_string());
                        }
                    }
                }
                details.failed_replicas = failed.clone();
                if failed.is_empty() {
                    Outcome::ok(
                        format!(
                            "ledger (seq {}) stored as snapshot {}",
                            head.seq,
                            id.short()
                        ),
                        &details,
                    )
                } else {
                    let summary = format!(
                        "ledger stored as snapshot {}, but not on {}",
                        id.short(),
                        failed
                            .iter()
                            .map(|(k, v)| format!("{k} ({v})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    details.error = Some(summary.clone());
                    Outcome {
                        summary,
                        details: serde_json::to_value(&details).expect("details serialise"),
                        failure: Some(FailureKind::Other),
                    }
                }
            }
            Err(e) => {
                details.error = Some(e.to_string());
                Outcome {
                    summary: e.to_string(),
                    details: serde_json::to_value(&details).expect("details serialise"),
                    failure: Some(e.kind()),
                }
            }
        };
        self.record(
            EventKind::LedgerCopy,
            "ledger copy",
            None,
            name,
            t,
            outcome,
            Some(NotifyEvent::LedgerCopyFailed),
        )
    }
}
