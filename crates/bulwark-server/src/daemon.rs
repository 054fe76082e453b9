//! The daemon: the policy file kept in force, a scheduler that starts each dataset's job when it
//! falls due, and a cached view of where every commitment stands.
//!
//! Scheduling: every poll, the same decisions as `run --due` (`bulwark_app::run::schedule`) say
//! which datasets are due. A due dataset starts when no job of it runs, its repository has a free
//! slot (`daemon.jobs_per_repository`, default 1), its jitter has passed (up to
//! `daemon.max_jitter` after it was first seen due, fixed per dataset and day so datasets on one
//! schedule spread out), and its lease is claimed (so that with several daemons on one PostgreSQL
//! ledger only one runs it). The job is `run` restricted to that dataset's due work: it decides
//! again under the lease, so a slot another node just finished is not run twice. Downtime costs
//! one catch-up run per dataset, not one per missed slot, because a backup is due only while the
//! newest is older than the latest slot.
//!
//! Platform work: the disaster-recovery drill and the replication audits belong to no dataset.
//! They run as one job of their own ([`PLATFORM_JOB`], `run` with `Selection::Platform`, under a
//! lease of its own) when they are due and no dataset is due or running, so that a drill restores
//! from the off-site copies the datasets' jobs just made. A failed platform job is retried after
//! [`PLATFORM_RETRY`] of the daemon's clock, not at every poll.
//!
//! Stopping: draining takes no new job; after the grace period running jobs are asked to stop at
//! their next safe point (a stopped backup leaves no snapshot and its packs are reused by the next
//! run). Reloading: a changed or signalled policy file is read and checked; an invalid one is
//! refused with its located error and the old one stays in force; running jobs finish under the
//! file they started with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bulwark_app::notify::Notice;
use bulwark_app::run::{RunReport, RunRequest, Selection, run, schedule};
use bulwark_app::{Create, Credentials, OpenOptions, PolicyFile, Workspace};
use bulwark_ledger::{EventKind, NewEvent};
use bulwark_ops::{Counter, Progress, Silent, Unit};
use bulwark_policy::compliance::Verdict;
use bulwark_policy::config::NotifyEvent;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::clock::Clock;
use crate::jobs::{Job, Jobs};
use crate::lease::{Lease, Leases};
use crate::metrics::Metrics;
use crate::view::{self, View};

/// How the daemon runs; every interval here can be shortened by tests.
#[derive(Debug, Clone)]
pub struct Timing {
    /// How often the scheduler looks for due work.
    pub poll: Duration,
    /// How often the view (status, pages, metrics) is recomputed.
    pub refresh: Duration,
    /// How long a lease lasts unless renewed; a dead node's job is taken over after this.
    pub lease_ttl: Duration,
    /// How long running jobs may take to finish on their own when the daemon stops.
    pub stop_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_secs(15),
            refresh: Duration::from_secs(15),
            lease_ttl: Duration::from_secs(15),
            stop_grace: Duration::from_secs(30),
        }
    }
}

pub struct DaemonOptions {
    pub credentials: Credentials,
    pub cache: bool,
    pub clock: Arc<dyn Clock>,
    /// This node's name in leases and events (default: host name and process id).
    pub node: String,
    pub timing: Timing,
    /// Create missing repositories and the ledger at start (the embedded default's `--init`).
    pub init: bool,
}

/// One node of `bulwark serve`.
pub struct Daemon {
    policy_path: PathBuf,
    credentials: Credentials,
    cache: bool,
    workspace: RwLock<Arc<Workspace>>,
    pub clock: Arc<dyn Clock>,
    pub node: String,
    pub timing: Timing,
    pub jobs: Jobs,
    pub leases: Arc<dyn Leases>,
    pub metrics: Metrics,
    draining: AtomicBool,
    stopping: AtomicBool,
    view: RwLock<Option<Arc<View>>>,
    /// When each dataset was first seen due in its current period, for the jitter.
    due_since: Mutex<BTreeMap<String, DateTime<Utc>>>,
    /// When the last platform job failed: the next waits [`PLATFORM_RETRY`] after it.
    platform_failed: Mutex<Option<DateTime<Utc>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    refresh_wanted: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    App(#[from] bulwark_app::Error),
    #[error("{0}")]
    Leases(String),
    #[error("no dataset '{0}' in the policy file")]
    NoSuchDataset(String),
    #[error("a job of dataset '{0}' is running already")]
    Busy(String),
    #[error("the daemon is stopping")]
    Stopping,
}

/// The name the platform-wide job (drill, replication audits) runs under in the job list.
pub const PLATFORM_JOB: &str = "(platform)";

/// How long after a failed platform job the next one may start.
pub const PLATFORM_RETRY: chrono::Duration = chrono::Duration::minutes(15);

/// The key a dataset's jobs are leased under.
fn lease_key(dataset: &str) -> String {
    format!("dataset:{dataset}")
}

/// A job's view of the daemon: stop at a safe point when the daemon stops or the lease is lost.
struct JobProgress<'a> {
    daemon: &'a Daemon,
    lost: &'a AtomicBool,
}

impl Progress for JobProgress<'_> {
    fn start(&self, label: &str, unit: Unit, total: Option<u64>) -> Box<dyn Counter> {
        Silent.start(label, unit, total)
    }

    fn should_stop(&self) -> bool {
        self.daemon.stopping.load(Ordering::Relaxed) || self.lost.load(Ordering::Relaxed)
    }
}

impl Daemon {
    pub fn new(
        policy_path: &Path,
        leases: Arc<dyn Leases>,
        opts: DaemonOptions,
    ) -> Result<Arc<Daemon>, DaemonError> {
        let create = if opts.init {
            Create::Everything
        } else {
            Create::Ledger
        };
        let ws = Workspace::open(
            policy_path,
            OpenOptions {
                credentials: opts.credentials.clone(),
                create,
                cache: opts.cache,
            },
        )?;
        if opts.init {
            for o in ws.init_missing()?.iter().filter(|o| o.created) {
                tracing::info!(repository = %o.repository, location = %o.location, "created repository");
            }
        }
        Ok(Arc::new(Daemon {
            policy_path: policy_path.to_path_buf(),
            credentials: opts.credentials,
            cache: opts.cache,
            workspace: RwLock::new(Arc::new(ws)),
            clock: opts.clock,
            node: opts.node,
            timing: opts.timing,
            jobs: Jobs::default(),
            leases,
            metrics: Metrics::default(),
            draining: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            view: RwLock::new(None),
            due_since: Mutex::new(BTreeMap::new()),
            platform_failed: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            refresh_wanted: AtomicBool::new(true),
        }))
    }

    /// The workspace in force now.
    pub fn workspace(&self) -> Arc<Workspace> {
        self.workspace
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn policy_path(&self) -> &Path {
        &self.policy_path
    }

    /// Record what this node does (started, stopped, refused a policy file) in the ledger.
    pub fn record(&self, action: &str, summary: String, ok: bool) {
        let ws = self.workspace();
        let appended = ws.ledger().append(
            NewEvent::new(EventKind::Daemon, summary)
                .config_hash(ws.config_hash())
                .ok(ok)
                .timed(self.clock.now(), self.clock.now())
                .details(json!({ "node": self.node, "action": action })),
        );
        if let Err(e) = appended {
            tracing::error!("ledger: cannot record that the node {action}: {e}");
        }
    }

    /// Read the policy file again; `Ok(true)` when a changed file is now in force. An invalid
    /// file is refused (and the refusal recorded) and the old one stays.
    pub fn reload(&self) -> Result<bool, DaemonError> {
        let current = self.workspace();
        let policy = match PolicyFile::read(&self.policy_path) {
            Ok(p) => p,
            Err(e) => {
                self.metrics.reload_failed();
                tracing::error!(
                    "the policy file was not reloaded: {e}; the previous one stays in force"
                );
                self.record(
                    "refused_policy",
                    format!("refused the changed policy file: {e}"),
                    false,
                );
                return Err(e.into());
            }
        };
        if policy.hash == current.config_hash() {
            return Ok(false);
        }
        let ws = Workspace::with_policy(
            policy,
            OpenOptions {
                credentials: self.credentials.clone(),
                create: Create::Ledger,
                cache: self.cache,
            },
        )
        .inspect_err(|e| {
            self.metrics.reload_failed();
            tracing::error!(
                "the policy file was not reloaded: {e}; the previous one stays in force"
            );
        })?;
        *self.workspace.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ws);
        self.refresh_wanted.store(true, Ordering::Relaxed);
        tracing::info!(file = %self.policy_path.display(), "policy file reloaded");
        Ok(true)
    }

    /// Open the workspace again (a job failed a repository over: the failover is in force from
    /// now on, and the workspace's configuration is computed when it opens).
    fn reopen(&self) {
        let opened = PolicyFile::read(&self.policy_path).and_then(|policy| {
            Workspace::with_policy(
                policy,
                OpenOptions {
                    credentials: self.credentials.clone(),
                    create: Create::Ledger,
                    cache: self.cache,
                },
            )
        });
        match opened {
            Ok(ws) => {
                *self.workspace.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ws);
                self.refresh_wanted.store(true, Ordering::Relaxed);
            }
            Err(e) => tracing::error!("the workspace could not be reopened after a failover: {e}"),
        }
    }

    /// The jitter of `dataset` today: a fixed share of `max` derived from its name and the day.
    fn jitter(dataset: &str, day: chrono::NaiveDate, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        let h = blake3::hash(format!("{dataset}@{day}").as_bytes());
        let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
        Duration::from_millis(x % max.as_millis().max(1) as u64)
    }

    /// One pass of the scheduler: start a job for every dataset that is due and free to run.
    /// Blocking: it reads the repositories.
    pub fn tick(self: &Arc<Self>) -> Result<Vec<Job>, DaemonError> {
        if self.draining.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let ws = self.workspace();
        let now = self.clock.now();
        // Once a month is over, its evidence pack is filed (idempotent; see evidence::monthly).
        match bulwark_app::evidence::monthly::file_last_month(&ws, now) {
            Ok(Some(filed)) => tracing::info!(filed = %filed, "evidence pack filed"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "the monthly evidence pack could not be filed"),
        }
        let dues = schedule(&ws, now)?;
        let limit = ws.config().daemon.jobs_per_repository;
        let max_jitter = ws.config().daemon.max_jitter;
        let mut started = Vec::new();
        let datasets_idle = dues.iter().all(|d| d.due.is_empty());
        for d in dues {
            let mut since = self.due_since.lock().unwrap_or_else(|p| p.into_inner());
            if d.due.is_empty() {
                since.remove(&d.dataset);
                continue;
            }
            let first = *since.entry(d.dataset.clone()).or_insert(now);
            drop(since);
            let wait = chrono::Duration::from_std(Self::jitter(
                &d.dataset,
                first.date_naive(),
                max_jitter,
            ))
            .unwrap_or_default();
            if now < first + wait
                || self.jobs.runs(&d.dataset)
                || self.jobs.on(&d.repository) >= limit
            {
                continue;
            }
            let Some(lease) = self
                .leases
                .claim(&lease_key(&d.dataset), self.timing.lease_ttl)
                .map_err(DaemonError::Leases)?
            else {
                continue;
            };
            self.due_since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&d.dataset);
            tracing::debug!(dataset = %d.dataset, reasons = ?d.due, "due");
            started.push(self.spawn_job(
                &ws,
                &d.dataset,
                &d.repository,
                Selection::DueAmong(vec![d.dataset.clone()]),
                "schedule",
                lease,
            ));
        }
        if datasets_idle && self.jobs.running().is_empty() {
            started.extend(self.start_platform_job(&ws, now)?);
        }
        Ok(started)
    }

    /// The drill and the replication audits, when due and not held back by a recent failure.
    fn start_platform_job(
        self: &Arc<Self>,
        ws: &Arc<Workspace>,
        now: DateTime<Utc>,
    ) -> Result<Option<Job>, DaemonError> {
        let failed = *self
            .platform_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if failed.is_some_and(|t| now < t + PLATFORM_RETRY) {
            return Ok(None);
        }
        let reasons = bulwark_app::run::platform_due(ws, now)?;
        if reasons.is_empty() {
            return Ok(None);
        }
        let Some(lease) = self
            .leases
            .claim(&lease_key(PLATFORM_JOB), self.timing.lease_ttl)
            .map_err(DaemonError::Leases)?
        else {
            return Ok(None);
        };
        tracing::debug!(reasons = ?reasons, "platform work due");
        Ok(Some(self.spawn_job(
            ws,
            PLATFORM_JOB,
            "",
            Selection::Platform,
            "schedule",
            lease,
        )))
    }

    /// Run a dataset now, as asked through the API by `caller`: every step, a restore test
    /// included. The request itself is a ledger event naming the caller.
    pub fn trigger(self: &Arc<Self>, dataset: &str, caller: &str) -> Result<Job, DaemonError> {
        if self.draining.load(Ordering::Relaxed) {
            return Err(DaemonError::Stopping);
        }
        let ws = self.workspace();
        let d = ws
            .config()
            .datasets
            .get(dataset)
            .ok_or_else(|| DaemonError::NoSuchDataset(dataset.to_string()))?;
        let lease = self
            .leases
            .claim(&lease_key(dataset), self.timing.lease_ttl)
            .map_err(DaemonError::Leases)?
            .ok_or_else(|| DaemonError::Busy(dataset.to_string()))?;
        ws.ledger()
            .append(
                NewEvent::new(
                    EventKind::ApiCall,
                    format!("{caller} asked for a run of {dataset}"),
                )
                .dataset(dataset)
                .config_hash(ws.config_hash())
                .details(json!({ "caller": caller, "action": "run", "node": self.node })),
            )
            .map_err(|e| DaemonError::App(e.into()))?;
        let repository = d.repository.clone();
        Ok(self.spawn_job(
            &ws,
            dataset,
            &repository,
            Selection::Named(vec![dataset.to_string()]),
            &format!("api:{caller}"),
            lease,
        ))
    }

    fn spawn_job(
        self: &Arc<Self>,
        ws: &Arc<Workspace>,
        dataset: &str,
        repository: &str,
        selection: Selection,
        trigger: &str,
        lease: Lease,
    ) -> Job {
        let job = self.jobs.start(
            dataset,
            repository,
            trigger,
            Some(lease.clone()),
            self.clock.now(),
        );
        self.metrics.set_running(self.jobs.running().len());
        let daemon = self.clone();
        let ws = ws.clone();
        let id = job.id;
        let dataset = dataset.to_string();
        let trigger = trigger.to_string();
        let handle = std::thread::Builder::new()
            .name(format!("job-{dataset}"))
            .spawn(move || daemon.run_job(&ws, id, &dataset, &trigger, selection, lease))
            .expect("the job thread starts");
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        job
    }

    fn run_job(
        &self,
        ws: &Workspace,
        id: u64,
        dataset: &str,
        trigger: &str,
        selection: Selection,
        lease: Lease,
    ) {
        let started = Instant::now();
        let lost = AtomicBool::new(false);
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            s.spawn(|| self.keep_lease(&lease, &done, &lost));
            let progress = JobProgress {
                daemon: self,
                lost: &lost,
            };
            let result = run(
                ws,
                &RunRequest {
                    selection,
                    now: self.clock.now(),
                    progress: &progress,
                    context: Some(json!({
                        "node": self.node,
                        "trigger": trigger,
                        "lease": { "key": lease.key, "fencing": lease.fencing },
                    })),
                },
            );
            done.store(true, Ordering::Relaxed);
            result
        });
        self.leases.release(&lease);
        let seconds = started.elapsed().as_secs_f64();
        let (ok, summary) = match &result {
            Ok(r) => (r.ok, summarise(r)),
            Err(e) => (false, e.to_string()),
        };
        if let Ok(r) = &result
            && !r.failed_over.is_empty()
        {
            tracing::warn!(primaries = ?r.failed_over, "failed over to a replica on its own");
            self.reopen();
        }
        // One structured line per job.
        if ok {
            tracing::info!(target: "bulwark::job", dataset, trigger, ok, duration_s = seconds, fencing = lease.fencing, summary = %summary, "job finished");
        } else {
            tracing::warn!(target: "bulwark::job", dataset, trigger, ok, duration_s = seconds, fencing = lease.fencing, summary = %summary, "job failed");
        }
        if dataset == PLATFORM_JOB {
            *self
                .platform_failed
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = (!ok).then(|| self.clock.now());
        }
        self.metrics.job_finished(dataset, seconds, ok);
        self.jobs.finish(id, ok, summary, self.clock.now());
        self.metrics.set_running(self.jobs.running().len());
        self.refresh_wanted.store(true, Ordering::Relaxed);
    }

    /// Renew `lease` every third of its life until `done`; on a failed renewal, mark it `lost`
    /// so the job stops at its next safe point.
    fn keep_lease(&self, lease: &Lease, done: &AtomicBool, lost: &AtomicBool) {
        let every = self.timing.lease_ttl / 3;
        let mut last = Instant::now();
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50).min(every));
            if last.elapsed() < every {
                continue;
            }
            last = Instant::now();
            match self.leases.renew(lease, self.timing.lease_ttl) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(key = %lease.key, "the lease was lost; stopping the job at its next safe point");
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
                // A passing database hiccup: the lease is still ours until it expires.
                Err(e) => tracing::warn!(key = %lease.key, "could not renew the lease: {e}"),
            }
        }
    }

    /// Recompute the view, the metrics and what they imply (notices of commitments at risk or
    /// breached, lagging replicas, stuck jobs). Blocking.
    pub fn refresh(&self) -> Result<Arc<View>, DaemonError> {
        self.refresh_wanted.store(false, Ordering::Relaxed);
        let ws = self.workspace();
        let view = Arc::new(view::compute(&ws, self.clock.now())?);
        self.metrics.update(&view);
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = Some(view.clone());
        for notice in self.notices(&ws, &view) {
            self.raise(&ws, &notice);
        }
        self.keep_incidents(&ws, &view);
        Ok(view)
    }

    /// Automatic incidents opened and resolved by what the view judged, reminders to their
    /// owners (escalated to the alternates once overdue), missed updates recorded: by one node
    /// at a time, under a short lease.
    fn keep_incidents(&self, ws: &Workspace, view: &View) {
        match self.leases.claim("incidents", Duration::from_secs(120)) {
            Ok(Some(lease)) => {
                let breaks = bulwark_app::incident::Breaks::of(ws, &view.status);
                if let Err(e) = bulwark_app::incident::reconcile(ws, &breaks, view.at) {
                    tracing::warn!("automatic incidents were not updated: {e}");
                }
                if let Err(e) = bulwark_app::incident::remind(ws, view.at) {
                    tracing::warn!("incident reminders failed: {e}");
                }
                if let Err(e) = bulwark_app::review::remind(ws, view.at) {
                    tracing::warn!("review reminder failed: {e}");
                }
                self.leases.release(&lease);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("incidents: {e}"),
        }
    }

    /// What the view says people should hear. Each notice is about one episode (the newest
    /// backup it was judged on, the job), so it goes out once however often it is raised.
    fn notices(&self, ws: &Workspace, view: &View) -> Vec<Notice> {
        let mut out = Vec::new();
        for (name, d) in &view.status.datasets {
            let repository = ws
                .config()
                .datasets
                .get(name)
                .map(|c| c.repository.clone())
                .unwrap_or_default();
            let newest = d.facts.last_backup.map_or_else(
                || "no backup".to_string(),
                |t| format!("newest backup {}", t.to_rfc3339()),
            );
            for a in &d.status.aspects {
                let event = match (a.name, a.verdict) {
                    ("rpo", Verdict::AtRisk) => NotifyEvent::RpoAtRisk,
                    ("rpo", Verdict::Breached) => NotifyEvent::RpoBreached,
                    ("offsite", Verdict::AtRisk | Verdict::Breached) => NotifyEvent::ReplicaLagging,
                    _ => continue,
                };
                let about = if event == NotifyEvent::ReplicaLagging {
                    let replica = d
                        .facts
                        .replicas
                        .iter()
                        .map(|r| format!("{}@{:?}", r.repository, r.newest))
                        .collect::<Vec<_>>()
                        .join(",");
                    format!("{newest}; replicas {replica}")
                } else {
                    newest.clone()
                };
                out.push(
                    Notice::new(
                        event,
                        about,
                        format!("bulwark: {name}: {}: {}", a.name, a.reason),
                    )
                    .dataset(name)
                    .repository(&repository),
                );
            }
        }
        let stuck_after = chrono::Duration::from_std(ws.config().daemon.stuck_after)
            .unwrap_or(chrono::Duration::MAX);
        for job in self.jobs.running() {
            if view.at - job.started > stuck_after {
                out.push(
                    Notice::new(
                        NotifyEvent::JobStuck,
                        format!(
                            "job {} on {} started {}",
                            job.id,
                            self.node,
                            job.started.to_rfc3339()
                        ),
                        format!(
                            "bulwark: {}: a job has run since {}, longer than {}",
                            job.dataset,
                            job.started.format("%Y-%m-%d %H:%M UTC"),
                            bulwark_policy::human(ws.config().daemon.stuck_after)
                        ),
                    )
                    .dataset(&job.dataset)
                    .repository(&job.repository),
                );
            }
        }
        out
    }

    /// Send a notice once across nodes: under a short lease on it.
    fn raise(&self, ws: &Workspace, notice: &Notice) {
        let key = format!("notice:{}", notice.id());
        match self.leases.claim(&key, Duration::from_secs(120)) {
            Ok(Some(lease)) => {
                if let Err(e) = bulwark_app::notify::send(ws, notice) {
                    tracing::warn!("notifications could not be recorded: {e}");
                }
                self.leases.release(&lease);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("notice {}: {e}", notice.headline()),
        }
    }

    /// Whether a refresh was asked for (a job finished, the policy file changed).
    pub fn refresh_wanted(&self) -> bool {
        self.refresh_wanted.load(Ordering::Relaxed)
    }

    /// The last computed view.
    pub fn view(&self) -> Option<Arc<View>> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Take no new job.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Ask running jobs to stop at their next safe point.
    pub fn stop_jobs(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Wait until no job runs, at most `timeout`; whether they all ended.
    pub fn wait_for_jobs(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.jobs.running().is_empty() {
                let threads: Vec<_> =
                    std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
                for t in threads {
                    let _ = t.join();
                }
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop: drain, let running jobs finish within the grace period, then stop them at a safe
    /// point and wait for them.
    pub fn shut_down(&self) {
        self.drain();
        if !self.wait_for_jobs(self.timing.stop_grace) {
            tracing::info!("stopping running jobs at their next safe point");
            self.stop_jobs();
            self.wait_for_jobs(Duration::from_secs(3600));
        }
    }
}

fn summarise(r: &RunReport) -> String {
    if r.nothing_due {
        return "nothing due".into();
    }
    let failed: Vec<String> = r
        .failures()
        .map(|s| format!("{}: {}", s.step, s.summary))
        .collect();
    if failed.is_empty() {
        format!("{} steps done", r.steps().count())
    } else {
        failed.join("; ")
    }
}
