//! What the dashboard, the API, the status page and the metrics show, computed in one pass over
//! the workspace and cached: readers never open a repository or verify the ledger themselves, so
//! a crowd of them costs the daemon nothing but serialisation.

use std::collections::{BTreeMap, BTreeSet};

use bulwark_app::Workspace;
use bulwark_app::events::{Details, RestoreTestDetails};
use bulwark_app::status::{StatusReport, status};
use bulwark_ledger::{Event, EventFilter, EventKind, Remediation};
use bulwark_ops::restore_test::{CheckResult, Sample};
use bulwark_policy::compliance::{Verdict, exposure_series};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// A snapshot's id and time.
type Stamp = (String, DateTime<Utc>);

/// How far back the dataset pages look.
pub const HISTORY_DAYS: i64 = 30;
/// Restore tests and events listed per dataset.
const LISTED: usize = 50;

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotPoint {
    pub id: String,
    pub time: DateTime<Utc>,
    pub repository: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExposurePoint {
    pub time: DateTime<Utc>,
    /// Age of the newest backup at that time; absent before the first.
    pub seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreTestPoint {
    pub time: DateTime<Utc>,
    pub passed: bool,
    pub duration_s: f64,
    pub snapshot_id: String,
    pub checks: Vec<CheckResult>,
    pub sample: Option<Sample>,
    pub event: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplicaLag {
    pub repository: String,
    pub region: Option<String>,
    pub newest: Option<DateTime<Utc>>,
    /// How far the replica's newest snapshot is behind the primary's.
    pub lag_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetView {
    pub name: String,
    pub repository: String,
    pub tier: bulwark_policy::config::Tier,
    pub schedule: String,
    pub rpo_seconds: f64,
    pub rto_seconds: f64,
    pub snapshots: Vec<SnapshotPoint>,
    pub exposure: Vec<ExposurePoint>,
    pub restore_tests: Vec<RestoreTestPoint>,
    pub replicas: Vec<ReplicaLag>,
    pub remediations: Vec<Remediation>,
    pub events: Vec<Event>,
}

/// The state of a customer-facing component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    Operational,
    Degraded,
    Outage,
}

/// A component as customers see it: no dataset, repository or reason.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentView {
    pub name: String,
    pub description: Option<String>,
    pub state: ComponentState,
}

pub use bulwark_policy::incident::IncidentState;

/// One message to customers about an incident.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentUpdate {
    pub at: DateTime<Utc>,
    pub state: IncidentState,
    pub message: String,
    /// When service is expected back, as this update said.
    pub eta: Option<DateTime<Utc>>,
}

/// An incident as customers see it: which components it touches and what they were told.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    /// Names of the affected components.
    pub components: Vec<String>,
    /// The state of the newest update.
    pub state: IncidentState,
    pub started: DateTime<Utc>,
    pub resolved: Option<DateTime<Utc>>,
    /// Newest first.
    pub updates: Vec<IncidentUpdate>,
}

/// Everything the public status page shows, and nothing else.
#[derive(Debug, Clone, Serialize)]
pub struct StatusPage {
    pub at: DateTime<Utc>,
    pub components: Vec<ComponentView>,
    /// Open incidents and those resolved in the last [`HISTORY_DAYS`] days, open ones first,
    /// newest first, with their customer updates only. Recomputed with the view, which every
    /// incident request refreshes, so the public page serves from the cache.
    pub incidents: Vec<Incident>,
}

#[derive(Debug, Serialize)]
pub struct View {
    pub at: DateTime<Utc>,
    pub status: StatusReport,
    pub datasets: BTreeMap<String, DatasetView>,
    pub status_page: StatusPage,
    /// The ledger's newest events, newest first.
    pub events: Vec<Event>,
}

/// A component is down when the recovery point of one of its datasets is breached, degraded when
/// any commitment of one is not met or its backups run on a replica after a failover.
pub fn component_state(
    status: &StatusReport,
    datasets: &[String],
    failed_over: &BTreeSet<String>,
) -> ComponentState {
    let mut state = ComponentState::Operational;
    for d in datasets {
        if failed_over.contains(d) {
            state = ComponentState::Degraded;
        }
        let Some(r) = status.datasets.get(d) else {
            continue;
        };
        if r.status
            .aspects
            .iter()
            .any(|a| a.name == "rpo" && a.verdict == Verdict::Breached)
        {
            return ComponentState::Outage;
        }
        if r.status.verdict != Verdict::Met {
            state = ComponentState::Degraded;
        }
    }
    state
}

/// Everything the daemon shows, as of `now`.
pub fn compute(ws: &Workspace, now: DateTime<Utc>) -> bulwark_app::Result<View> {
    let report = status(ws, now)?;
    let config = ws.config();
    // Snapshot times with ids, per repository and dataset.
    let mut by_repo: BTreeMap<String, BTreeMap<String, Vec<Stamp>>> = BTreeMap::new();
    for name in config.repositories.keys() {
        if let Ok(repo) = ws.repository(name)
            && let Ok((snaps, _)) = repo.load_snapshots()
        {
            let entry = by_repo.entry(name.clone()).or_default();
            for (id, s) in snaps {
                if let Some(d) = s.dataset {
                    entry
                        .entry(d)
                        .or_default()
                        .push((id.to_hex(), s.time.to_utc()));
                }
            }
        }
    }
    let from = now - Duration::days(HISTORY_DAYS);
    let mut datasets = BTreeMap::new();
    for d in config.datasets.values() {
        let mut snapshots = Vec::new();
        for (repo, per) in &by_repo {
            for (id, time) in per.get(&d.name).into_iter().flatten() {
                if *time >= from {
                    snapshots.push(SnapshotPoint {
                        id: id.clone(),
                        time: *time,
                        repository: repo.clone(),
                    });
                }
            }
        }
        snapshots.sort_by_key(|s| s.time);
        let primary_times: Vec<DateTime<Utc>> = by_repo
            .get(&d.repository)
            .and_then(|p| p.get(&d.name))
            .map(|v| v.iter().map(|(_, t)| *t).collect())
            .unwrap_or_default();
        let exposure = exposure_series(&primary_times, from, now, Duration::hours(1))
            .into_iter()
            .map(|(time, seconds)| ExposurePoint { time, seconds })
            .collect();
        let ledger = ws.ledger();
        let tests = ledger.events(
            &EventFilter::all()
                .kind(EventKind::RestoreTest)
                .dataset(&d.name)
                .newest_first()
                .limit(LISTED),
        )?;
        let restore_tests = tests
            .iter()
            .rev()
            .map(|e| {
                let details = RestoreTestDetails::of(e).unwrap_or_default();
                RestoreTestPoint {
                    time: e.finished,
                    passed: e.ok,
                    duration_s: details.duration_s(e),
                    snapshot_id: details.report.snapshot_id.clone(),
                    checks: details.report.checks,
                    sample: details.report.sample,
                    event: e.id.clone(),
                }
            })
            .collect();
        let remediations = ledger
            .remediations(false)?
            .into_iter()
            .filter(|r| r.dataset == d.name)
            .collect();
        let mut events = ledger.events(
            &EventFilter::all()
                .dataset(&d.name)
                .newest_first()
                .limit(LISTED),
        )?;
        drop(ledger);
        events.reverse();
        let facts = report.datasets.get(&d.name).map(|r| &r.facts);
        let replicas = facts
            .map(|f| {
                f.replicas
                    .iter()
                    .map(|r| ReplicaLag {
                        repository: r.repository.clone(),
                        region: r.region.clone(),
                        newest: r.newest,
                        lag_seconds: match (f.last_backup, r.newest) {
                            (Some(p), Some(c)) => {
                                Some(((p - c).num_milliseconds() as f64 / 1000.0).max(0.0))
                            }
                            _ => None,
                        },
                    })
                    .collect()
            })
            .unwrap_or_default();
        datasets.insert(
            d.name.clone(),
            DatasetView {
                name: d.name.clone(),
                repository: d.repository.clone(),
                tier: d.tier,
                schedule: d.schedule.to_string(),
                rpo_seconds: config.targets.rpo.as_secs_f64(),
                rto_seconds: config.targets.rto.as_secs_f64(),
                snapshots,
                exposure,
                restore_tests,
                replicas,
                remediations,
                events,
            },
        );
    }
    // Datasets whose declared repository has failed over.
    let failed_over: BTreeSet<String> = ws
        .policy()
        .config
        .datasets
        .values()
        .filter(|d| ws.failovers().iter().any(|f| f.primary == d.repository))
        .map(|d| d.name.clone())
        .collect();
    let components = config
        .components
        .values()
        .map(|c| ComponentView {
            name: c.name.clone(),
            description: c.description.clone(),
            state: component_state(&report, &c.datasets, &failed_over),
        })
        .collect();
    let events = ws
        .ledger()
        .events(&EventFilter::all().newest_first().limit(LISTED))?;
    Ok(View {
        at: now,
        status: report,
        datasets,
        status_page: StatusPage {
            at: now,
            components,
            incidents: public_incidents(ws, now),
        },
        events,
    })
}

/// The incidents customers see (none when the ledger cannot be read: the page still shows the
/// components).
fn public_incidents(ws: &Workspace, now: DateTime<Utc>) -> Vec<Incident> {
    let window = Duration::days(HISTORY_DAYS);
    match bulwark_app::incident::incidents(ws) {
        Ok(all) => bulwark_app::incident::public(ws.config(), &all, now, window)
            .into_iter()
            .map(|i| Incident {
                id: i.id,
                title: i.title,
                components: i.components,
                state: i.state,
                started: i.opened,
                resolved: i.resolved,
                updates: i
                    .updates
                    .into_iter()
                    .map(|u| IncidentUpdate {
                        at: u.at,
                        state: u.state,
                        message: u.message,
                        eta: u.eta,
                    })
                    .collect(),
            })
            .collect(),
        Err(e) => {
            tracing::warn!("the status page could not read the incidents: {e}");
            Vec::new()
        }
    }
}
