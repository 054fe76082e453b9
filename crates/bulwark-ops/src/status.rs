//! Gathering the facts a status verdict is made of: snapshots in the repositories (the ground
//! truth for recovery points) and restore tests and remediation items from the ledger.

use std::collections::BTreeMap;

use bulwark_ledger::{EventKind, Ledger};
use bulwark_policy::compliance::{DatasetFacts, ReplicaFact, RestoreTestFact};
use bulwark_policy::config::{Config, Dataset};
use bulwark_repo::{Repository, Result, Snapshot};
use chrono::{DateTime, Utc};

/// Snapshot times per dataset in one repository, oldest first.
pub type DatasetTimes = BTreeMap<String, Vec<DateTime<Utc>>>;

pub fn dataset_times(repo: &Repository) -> Result<DatasetTimes> {
    let (snaps, _) = repo.load_snapshots()?;
    let mut out: DatasetTimes = BTreeMap::new();
    for (_, s) in snaps {
        let Snapshot { dataset, time, .. } = s;
        if let Some(d) = dataset {
            out.entry(d).or_default().push(time.to_utc());
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

/// The restore-test facts of one ledger event, if it is one.
pub fn restore_test_fact(e: &bulwark_ledger::Event) -> RestoreTestFact {
    RestoreTestFact {
        time: e.finished,
        passed: e.ok,
        duration_s: e.details["duration_s"]
            .as_f64()
            .unwrap_or_else(|| (e.finished - e.started).num_milliseconds() as f64 / 1000.0),
    }
}

/// `times` holds, per repository name, what `dataset_times` found there (absent: unreachable).
pub fn facts(
    config: &Config,
    d: &Dataset,
    times: &BTreeMap<String, DatasetTimes>,
    ledger: &dyn Ledger,
) -> std::result::Result<DatasetFacts, bulwark_ledger::Error> {
    let primary = times.get(&d.repository).and_then(|t| t.get(&d.name));
    let replicas = config
        .replicas_of(&d.repository)
        .map(|r| ReplicaFact {
            repository: r.name.clone(),
            region: r.region.clone(),
            newest: times
                .get(&r.name)
                .and_then(|t| t.get(&d.name))
                .and_then(|v| v.last().copied()),
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
        last_backup: primary.and_then(|v| v.last().copied()),
        oldest_backup: primary.and_then(|v| v.first().copied()),
        snapshots: primary.map_or(0, Vec::len),
        replicas,
        last_restore_test: last.as_ref().map(restore_test_fact),
        last_passed_restore_test: passed.as_ref().map(restore_test_fact),
        open_remediations: open,
    })
}
