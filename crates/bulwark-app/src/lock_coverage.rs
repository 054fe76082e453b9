//! The Object Lock commitment in `status`: each repository made with `init --object-lock` is
//! judged on its newest recorded proof (`check` events of its lock extensions, see
//! `bulwark_policy::object_lock`).

use bulwark_ledger::{EventFilter, EventKind};
use bulwark_policy::compliance::Verdict;
use bulwark_policy::object_lock::{LockProof, judge};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::events::{Details, LockCheckDetails};
use crate::workspace::Workspace;

#[derive(Debug, Serialize, Clone, PartialEq, Eq)]
pub struct LockCoverage {
    pub repository: String,
    pub verdict: Verdict,
    pub reason: String,
    /// When the newest proof was made.
    pub proven_at: Option<DateTime<Utc>>,
}

/// Every primary repository with Object Lock that opens here, judged at `now`.
pub fn check(ws: &Workspace, now: DateTime<Utc>) -> Result<Vec<LockCoverage>> {
    let mut out = Vec::new();
    for r in ws.config().repositories.values() {
        let locked = ws
            .repository(&r.name)
            .is_ok_and(|repo| repo.settings().object_lock.is_some());
        if !locked {
            continue;
        }
        let newest = ws
            .ledger()
            .events(
                &EventFilter::all()
                    .kind(EventKind::Check)
                    .repository(r.name.as_str())
                    .newest_first(),
            )?
            .into_iter()
            .find_map(|e| {
                let d = LockCheckDetails::of(&e).ok()?;
                // Other checks of the repository carry no lock figures.
                (d.objects > 0 || d.error.is_some() || !e.ok).then_some(LockProof {
                    at: e.finished,
                    ok: e.ok,
                    short: d.short,
                    least_slack_s: d.least_slack_s,
                })
            });
        let (verdict, reason) = judge(newest.as_ref(), r.prune_every, now);
        out.push(LockCoverage {
            repository: r.name.clone(),
            verdict,
            reason,
            proven_at: newest.map(|p| p.at),
        });
    }
    Ok(out)
}
