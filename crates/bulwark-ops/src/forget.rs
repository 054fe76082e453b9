//! `forget`: decide per history which snapshots the retention rules keep (and why), honour holds,
//! and remove the rest. Data goes only when `prune` runs.

use std::collections::BTreeMap;

use bulwark_policy::retention::{Candidate, Hold, KeepRules, WithinReference, plan};
use bulwark_policy::{GroupBy, GroupKey, group_by};
use bulwark_repo::holds::HoldRecord;
use bulwark_repo::lock::LockKind;
use bulwark_repo::{FileKind, Id, Repository, Snapshot};

use crate::error::{Error, Result};
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;

pub struct ForgetOptions {
    pub rules: KeepRules,
    pub group_by: GroupBy,
    /// Only snapshots of this dataset.
    pub dataset: Option<String>,
    /// Snapshots to remove by name instead of by rules.
    pub explicit: Vec<String>,
    pub dry_run: bool,
    pub now: DateTime<Utc>,
}

#[derive(Serialize, Debug)]
pub struct SnapshotDecision {
    pub id: String,
    pub short_id: String,
    pub time: DateTime<FixedOffset>,
    pub host: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub dataset: Option<String>,
    pub group: GroupKey,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Serialize, Debug, Default)]
pub struct ForgetReport {
    pub dry_run: bool,
    pub snapshots: Vec<SnapshotDecision>,
    pub kept: usize,
    pub removed: Vec<String>,
}

/// The strongest active hold on each snapshot.
fn active_holds(holds: &[(String, HoldRecord)], now: DateTime<Utc>) -> BTreeMap<Id, Hold> {
    let mut out: BTreeMap<Id, Hold> = BTreeMap::new();
    for (_, h) in holds.iter().filter(|(_, h)| h.is_active(now)) {
        let hold = h.until.map_or(Hold::Indefinite, Hold::Until);
        let stronger = match (out.get(&h.snapshot), hold) {
            (None, _) | (_, Hold::Indefinite) => true,
            (Some(Hold::Until(a)), Hold::Until(b)) => b > *a,
            (Some(Hold::Indefinite), _) => false,
        };
        if stronger {
            out.insert(h.snapshot, hold);
        }
    }
    out
}

pub fn forget(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    let _lock = repo.lock(LockKind::Shared)?;
    let holds = active_holds(&repo.holds()?, opts.now);
    let mut report = ForgetReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if !opts.explicit.is_empty() {
        for spec in &opts.explicit {
            let (id, _) = repo.find_snapshot(spec, |_| true)?;
            if let Some(h) = holds.get(&id) {
                return Err(Error::Invalid(format!(
                    "snapshot {} is under a {}; remove the hold first",
                    id.short(),
                    h.reason()
                )));
            }
            report.removed.push(id.to_hex());
        }
    } else {
        let (snapshots, bad) = repo.load_snapshots()?;
        if let Some(e) = bad.into_iter().next() {
            return Err(e.into());
        }
        let snapshots: Vec<(Id, Snapshot)> = snapshots
            .into_iter()
            .filter(|(_, s)| opts.dataset.is_none() || s.dataset == opts.dataset)
            .collect();
        let groups = group_by(snapshots, |(_, s)| {
            opts.group_by
                .key(&s.hostname, &s.paths, &s.tags, s.dataset.as_deref())
        });
        for group in groups {
            let candidates: Vec<Candidate> = group
                .items
                .iter()
                .map(|(id, s)| Candidate {
                    id: id.to_hex(),
                    time: s.time,
                    tags: s.tags.clone(),
                    hold: holds.get(id).copied(),
                })
                .collect();
            let decisions = plan(&opts.rules, &candidates, opts.now, WithinReference::Newest)
                .map_err(|e| Error::Invalid(format!("{} ({})", e, group.key)))?;
            for ((id, s), d) in group.items.iter().zip(decisions) {
                if d.keep {
                    report.kept += 1;
                } else {
                    report.removed.push(id.to_hex());
                }
                report.snapshots.push(SnapshotDecision {
                    id: id.to_hex(),
                    short_id: id.short(),
                    time: s.time,
                    host: s.hostname.clone(),
                    paths: s.paths.clone(),
                    tags: s.tags.clone(),
                    dataset: s.dataset.clone(),
                    group: group.key.clone(),
                    keep: d.keep,
                    reasons: d.reasons,
                });
            }
        }
    }
    if !opts.dry_run {
        for id in &report.removed {
            repo.backend().remove(FileKind::Snapshot, id)?;
        }
    }
    Ok(report)
}
