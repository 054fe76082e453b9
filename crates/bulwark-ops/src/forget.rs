//! `forget`: decide per history which snapshots the retention rules keep (and why), honour holds,
//! and remove the rest. Data goes only when `prune` runs.
//!
//! With a [`ClockCheck`], snapshots whose claimed time the store's record contradicts are kept,
//! listed in [`ForgetReport::clock_warnings`], and left out of the plan, so that forged dates
//! cannot push honest history out (see `clock_check`).

use std::collections::BTreeMap;

use bulwark_policy::retention::{Candidate, Hold, KeepRules, WithinReference, plan};
use bulwark_policy::{GroupBy, GroupKey, group_by};
use bulwark_repo::holds::HoldRecord;
use bulwark_repo::lock::LockKind;
use bulwark_repo::{FileKind, Id, Repository, Snapshot};

use crate::clock_check::{ClockCheck, ClockWarning};
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
    /// Judge claimed snapshot times against the store's; `None` trusts every claim.
    pub clock_check: Option<ClockCheck>,
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

impl SnapshotDecision {
    fn new(id: &Id, s: &Snapshot, group: &GroupKey, keep: bool, reasons: Vec<String>) -> Self {
        SnapshotDecision {
            id: id.to_hex(),
            short_id: id.short(),
            time: s.time,
            host: s.hostname.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            dataset: s.dataset.clone(),
            group: group.clone(),
            keep,
            reasons,
        }
    }
}

#[derive(Serialize, Debug, Default)]
pub struct ForgetReport {
    pub dry_run: bool,
    pub snapshots: Vec<SnapshotDecision>,
    pub kept: usize,
    pub removed: Vec<String>,
    /// Snapshots kept because their claimed time is not believable.
    pub clock_warnings: Vec<ClockWarning>,
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
        let stored: BTreeMap<String, DateTime<Utc>> = match opts.clock_check {
            Some(_) => repo
                .backend()
                .list_modified(FileKind::Snapshot)?
                .into_iter()
                .collect(),
            None => BTreeMap::new(),
        };
        // A snapshot written after the listing has no record yet: it was written just now.
        let doubt = |id: &Id, s: &Snapshot| {
            let check = opts.clock_check?;
            let at = stored.get(&id.to_hex())?;
            check.judge(id, s.time, s.summary.as_ref().map(|m| m.duration_s), *at)
        };
        let groups = group_by(snapshots, |(_, s)| {
            opts.group_by
                .key(&s.hostname, &s.paths, &s.tags, s.dataset.as_deref())
        });
        for group in groups {
            let (suspicious, trusted): (Vec<_>, Vec<_>) = group
                .items
                .iter()
                .map(|(id, s)| (id, s, doubt(id, s)))
                .partition(|(_, _, w)| w.is_some());
            for (id, s, warning) in suspicious {
                let warning = warning.expect("partitioned on it");
                report.kept += 1;
                report.snapshots.push(SnapshotDecision::new(
                    id,
                    s,
                    &group.key,
                    true,
                    vec![warning.reason()],
                ));
                report.clock_warnings.push(warning);
            }
            if trusted.is_empty() {
                continue;
            }
            let candidates: Vec<Candidate> = trusted
                .iter()
                .map(|(id, s, _)| Candidate {
                    id: id.to_hex(),
                    time: s.time,
                    tags: s.tags.clone(),
                    hold: holds.get(id).copied(),
                })
                .collect();
            let decisions = plan(&opts.rules, &candidates, opts.now, WithinReference::Newest)
                .map_err(|e| Error::Invalid(format!("{} ({})", e, group.key)))?;
            for ((id, s, _), d) in trusted.into_iter().zip(decisions) {
                if d.keep {
                    report.kept += 1;
                } else {
                    report.removed.push(id.to_hex());
                }
                report
                    .snapshots
                    .push(SnapshotDecision::new(id, s, &group.key, d.keep, d.reasons));
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
