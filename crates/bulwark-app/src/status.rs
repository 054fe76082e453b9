//! `status`: where every commitment stands. Facts come from the repositories (the ground truth
//! for recovery points: snapshots that exist, not events that say so) and from the ledger
//! (restore tests, remediation items); `bulwark_policy::compliance` judges them against a clock.
//! The ledger itself is judged too: a chain that does not verify, or that disagrees with its
//! copies in the repositories, is breached evidence.

use std::collections::BTreeMap;

use bulwark_ledger::{Anchor, EventKind, Ledger, Problem};
use bulwark_policy::compliance::{
    Aspect, DatasetFacts, DatasetStatus, PlatformFacts, ReplicaFact, RestoreTestFact, Verdict,
    evaluate, evaluate_platform, rto_projection,
};
use bulwark_policy::config::{Config, Dataset};
use bulwark_repo::Repository;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::events::{Details, RestoreTestDetails};
use crate::ledger_copy::{self, CopyCheck};
use crate::workspace::Workspace;

/// A snapshot's time and the bytes of its files.
pub type Stamp = (DateTime<Utc>, u64);

/// Snapshot times and sizes per dataset in one repository, oldest first.
pub type DatasetTimes = BTreeMap<String, Vec<Stamp>>;

pub fn dataset_times(repo: &Repository) -> bulwark_repo::Result<DatasetTimes> {
    let (snaps, _) = repo.load_snapshots()?;
    let mut out: DatasetTimes = BTreeMap::new();
    for (_, s) in snaps {
        if let Some(d) = s.dataset {
            let size = s.summary.as_ref().map_or(0, |x| x.total_bytes);
            out.entry(d).or_default().push((s.time.to_utc(), size));
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|(t, _)| *t);
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct DatasetReport {
    #[serde(flatten)]
    pub status: DatasetStatus,
    pub facts: DatasetFacts,
}

#[derive(Debug, Serialize)]
pub struct LedgerStatus {
    pub verdict: Verdict,
    pub reason: String,
    pub location: String,
    pub head: Anchor,
    /// What the chain's own verification found.
    pub problems: Vec<Problem>,
    /// The newest copy in each repository, compared with the live chain.
    pub copies: Vec<CopyCheck>,
}

/// The commitments of the platform as a whole, and the facts they were judged on.
#[derive(Debug, Serialize)]
pub struct PlatformReport {
    pub aspects: Vec<Aspect>,
    pub facts: PlatformFacts,
}

#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub verdict: Verdict,
    pub at: DateTime<Utc>,
    pub datasets: BTreeMap<String, DatasetReport>,
    pub platform: PlatformReport,
    /// Each `[replication.NAME]` pair judged on its newest audit.
    pub replication: BTreeMap<String, ReplicationReport>,
    /// Primaries whose backups go to a replica now, since when, and why.
    pub failovers: Vec<crate::failover::Failover>,
    pub ledger: LedgerStatus,
    /// Repositories that could not be read, and why.
    pub unreachable: Vec<String>,
    /// Repositories marked `append_only`, each judged on this host's credential.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub append_only: Vec<crate::append_only::AppendOnlyCheck>,
    /// Repositories with S3 Object Lock, each judged on its newest proof of lock coverage.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lock_coverage: Vec<crate::lock_coverage::LockCoverage>,
}

/// One bucket and its replica: the verdict, and the audit it was judged on.
#[derive(Debug, Serialize)]
pub struct ReplicationReport {
    pub status: Aspect,
    pub last_audit: Option<bulwark_policy::replication::AuditFact>,
}

/// A restore test event as the judgement needs it.
pub fn restore_test_fact(e: &bulwark_ledger::Event) -> RestoreTestFact {
    let duration_s = RestoreTestDetails::of(e)
        .map(|d| d.duration_s(e))
        .unwrap_or_else(|_| (e.finished - e.started).num_milliseconds() as f64 / 1000.0);
    let bytes = RestoreTestDetails::of(e)
        .ok()
        .map(|d| d.report.bytes)
        .filter(|b| *b > 0);
    RestoreTestFact {
        time: e.finished,
        passed: e.ok,
        duration_s,
        bytes,
    }
}

/// The facts about `d`: `times` holds, per repository name, what [`dataset_times`] found there
/// (absent: unreachable).
pub fn facts(
    config: &Config,
    d: &Dataset,
    times: &BTreeMap<String, DatasetTimes>,
    ledger: &dyn Ledger,
) -> Result<DatasetFacts> {
    let primary = times.get(&d.repository).and_then(|t| t.get(&d.name));
    let replicas = config
        .replicas_of(&d.repository)
        .map(|r| ReplicaFact {
            repository: r.name.clone(),
            region: r.region.clone(),
            newest: times
                .get(&r.name)
                .and_then(|t| t.get(&d.name))
                .and_then(|v| v.last().map(|(t, _)| *t)),
        })
        .collect();
    let last = ledger.last(&EventKind::RestoreTest, Some(&d.name), false)?;
    let passed = ledger.last(&EventKind::RestoreTest, Some(&d.name), true)?;
    let open = ledger
        .remediations(true)?
        .into_iter()
        .filter(|r| r.dataset == d.name)
        .count();
    Ok(DatasetFacts {
        last_backup: primary.and_then(|v| v.last().map(|(t, _)| *t)),
        oldest_backup: primary.and_then(|v| v.first().map(|(t, _)| *t)),
        size_bytes: primary.and_then(|v| v.last().map(|(_, b)| *b)),
        snapshots: primary.map_or(0, Vec::len),
        replicas,
        last_restore_test: last.as_ref().map(restore_test_fact),
        last_passed_restore_test: passed.as_ref().map(restore_test_fact),
        open_remediations: open,
        last_wal: None,
    })
}

/// Judge the ledger: its own chain, and its copies.
pub fn ledger_status(ws: &Workspace) -> Result<LedgerStatus> {
    let (report, head) = {
        let ledger = ws.ledger();
        (ledger.verify()?, ledger.head()?)
    };
    let copies = ledger_copy::check(ws);
    let tampered: Vec<&CopyCheck> = copies.iter().filter(|c| c.shows_tampering()).collect();
    let (verdict, reason) = if !report.is_ok() {
        (
            Verdict::Breached,
            format!("the chain does not verify: {}", report.problems[0]),
        )
    } else if let Some(c) = tampered.first() {
        (
            Verdict::Breached,
            format!(
                "the live ledger disagrees with its copy in '{}': {}",
                c.repository,
                describe(c)
            ),
        )
    } else if head.seq > 0 && copies.iter().all(|c| c.agreement.is_none()) {
        let why = if copies.iter().any(|c| c.error.is_some()) {
            "no repository could be read to compare the ledger with its copies"
        } else {
            "no repository holds a copy of the ledger yet"
        };
        (Verdict::AtRisk, why.to_string())
    } else if let Some(c) = copies.iter().find(|c| c.error.is_some()) {
        (
            Verdict::AtRisk,
            format!(
                "the copy in '{}' could not be checked: {}",
                c.repository,
                c.error.as_deref().unwrap_or_default()
            ),
        )
    } else {
        (
            Verdict::Met,
            format!(
                "{} events verify, and agree with {} copies",
                head.seq,
                copies.iter().filter(|c| c.agreement.is_some()).count()
            ),
        )
    };
    Ok(LedgerStatus {
        verdict,
        reason,
        location: ws.ledger_location().display(),
        head,
        problems: report.problems,
        copies,
    })
}

/// One line for a copy's agreement.
pub fn describe(c: &CopyCheck) -> String {
    use ledger_copy::Agreement::*;
    match (&c.agreement, &c.error) {
        (Some(Matches), _) => format!(
            "matches (copy holds events 1 to {})",
            c.head.as_ref().map_or(0, |h| h.seq)
        ),
        (
            Some(Diverged {
                seq,
                live_id,
                copy_id,
            }),
            _,
        ) => format!(
            "event {seq} differs: the copy has {}, the live ledger {}",
            short(copy_id),
            short(live_id)
        ),
        (
            Some(Truncated {
                live_head,
                copy_head,
            }),
            _,
        ) => format!(
            "the live ledger ends at event {live_head}, the copy holds {copy_head}: events were removed"
        ),
        (Some(CopyInvalid { reason }), _) => format!("the copy does not verify: {reason}"),
        (None, Some(e)) => format!("not checked: {e}"),
        (None, None) => "no copy".into(),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

pub fn status(ws: &Workspace, now: DateTime<Utc>) -> Result<StatusReport> {
    let config = ws.config();
    let mut times = BTreeMap::new();
    let mut unreachable = Vec::new();
    for name in config.repositories.keys() {
        match ws
            .repository(name)
            .and_then(|r| dataset_times(&r).map_err(|e| crate::Error::repository(name, e)))
        {
            Ok(t) => {
                times.insert(name.clone(), t);
            }
            Err(e) => unreachable.push(e.to_string()),
        }
    }
    let mut datasets = BTreeMap::new();
    let mut verdict = Verdict::Met;
    for d in config.datasets.values() {
        let mut facts = facts(config, d, &times, ws.ledger().as_ref())?;
        if times.contains_key(&d.repository) {
            facts.last_wal = crate::wal::last_wal(ws, d);
        }
        let status = evaluate(config, d, &facts, now);
        verdict = verdict.max(status.verdict);
        datasets.insert(d.name.clone(), DatasetReport { status, facts });
    }
    let platform = platform(ws, &datasets, now)?;
    for a in &platform.aspects {
        verdict = verdict.max(a.verdict);
    }
    let mut replication = BTreeMap::new();
    let mut audits = crate::replication::last_audits(ws)?;
    for pair in config.replication.values() {
        let last_audit = audits.remove(&pair.name);
        let status = bulwark_policy::replication::evaluate(pair, last_audit.as_ref(), now);
        verdict = verdict.max(status.verdict);
        replication.insert(pair.name.clone(), ReplicationReport { status, last_audit });
    }
    let ledger = ledger_status(ws)?;
    verdict = verdict.max(ledger.verdict);
    let append_only = crate::append_only::check(ws);
    for c in &append_only {
        verdict = verdict.max(c.verdict);
    }
    let lock_coverage = crate::lock_coverage::check(ws, now)?;
    for c in &lock_coverage {
        verdict = verdict.max(c.verdict);
    }
    Ok(StatusReport {
        verdict,
        at: now,
        datasets,
        platform,
        replication,
        failovers: ws.failovers().to_vec(),
        ledger,
        unreachable,
        append_only,
        lock_coverage,
    })
}

/// The drill and the RTO projection: each dataset's current size over the throughput its
/// newest measured restore (restore test or drill) achieved.
fn platform(
    ws: &Workspace,
    datasets: &BTreeMap<String, DatasetReport>,
    now: DateTime<Utc>,
) -> Result<PlatformReport> {
    let (last_drill, last_passed_drill) = crate::drill::drill_facts(ws)?;
    let drilled: BTreeMap<String, f64> = last_passed_drill
        .as_ref()
        .and_then(|_| {
            let e = ws.ledger().last(&EventKind::Drill, None, true).ok()??;
            crate::events::DrillDetails::of(&e).ok()
        })
        .map(|d| {
            d.report
                .datasets
                .iter()
                .filter(|x| x.passed && x.duration_s > 0.0 && x.bytes > 0)
                .map(|x| (x.dataset.clone(), x.bytes as f64 / x.duration_s))
                .collect()
        })
        .unwrap_or_default();
    let items: Vec<(u64, f64)> = datasets
        .iter()
        .filter_map(|(name, d)| {
            let size = d.facts.size_bytes?;
            let rate = d
                .facts
                .last_passed_restore_test
                .as_ref()
                .and_then(RestoreTestFact::throughput)
                .or_else(|| drilled.get(name).copied())?;
            Some((size, rate))
        })
        .collect();
    let facts = PlatformFacts {
        last_drill,
        last_passed_drill,
        rto_projection_s: rto_projection(&items, ws.config().drill.parallel),
    };
    let mut aspects = evaluate_platform(ws.config(), &facts, now);
    aspects.extend(crate::incident::aspects(ws, now)?);
    Ok(PlatformReport { aspects, facts })
}
