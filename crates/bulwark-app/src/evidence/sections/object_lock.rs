//! §3 ransomware immunity: on each repository made with `init --object-lock`, the proofs of the
//! period that every object a retained snapshot needs was locked until that snapshot's earliest
//! forget date (the `check` events of `run`'s lock extensions), judged at the period's end as
//! `status` judges them.

use bulwark_ledger::{Event, EventKind};
use bulwark_policy::object_lock::{LockProof, judge};

use super::super::history::History;
use super::super::model::{EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at};
use crate::error::Result;
use crate::events::{Details, LockCheckDetails};

pub struct ObjectLock;

/// A lock proof, when the event is one (other checks carry no lock figures).
fn proof(e: &Event) -> Option<(LockProof, LockCheckDetails)> {
    let d = LockCheckDetails::of(e).ok()?;
    (d.objects > 0 || d.error.is_some() || !e.ok).then_some((
        LockProof {
            at: e.finished,
            ok: e.ok,
            short: d.short.clone(),
            least_slack_s: d.least_slack_s,
        },
        d,
    ))
}

impl Module for ObjectLock {
    fn id(&self) -> &'static str {
        "object_lock"
    }

    fn kinds(&self) -> Vec<&'static str> {
        vec!["check"]
    }

    fn build(&self, h: &History) -> Result<Section> {
        let mut s = Section::new(
            self.id(),
            "Object Lock: backups a stolen credential cannot delete",
            "§3: 30 days of history and an off-site copy, kept even against whoever holds a backup host's credential.",
            "every object a retained snapshot needs locked until the snapshot's earliest forget date, proven after every prune",
            Mapping::new(&["§3"], &["A1.2"], &["A.8.13"]),
        );
        let mut table = Table::new(
            "Proofs of lock coverage",
            &[
                "repository",
                "at",
                "snapshots",
                "objects",
                "extended",
                "least margin",
                "short",
            ],
        );
        for r in h.ws.config().repositories.values() {
            let locked =
                h.ws.repository(&r.name)
                    .is_ok_and(|repo| repo.settings().object_lock.is_some());
            let proofs: Vec<(&Event, LockProof, LockCheckDetails)> = h
                .of(EventKind::Check, None)
                .filter(|e| e.repository.as_deref() == Some(r.name.as_str()))
                .filter_map(|e| proof(e).map(|(p, d)| (e, p, d)))
                .collect();
            if !locked && proofs.is_empty() {
                continue;
            }
            let mut cited = Vec::new();
            for (e, p, d) in proofs.iter().filter(|(e, ..)| h.in_period(e)) {
                cited.push(EventRef::from(*e));
                table.row(
                    vec![
                        r.name.clone(),
                        at(e.finished),
                        d.snapshots.to_string(),
                        d.objects.to_string(),
                        d.extended.to_string(),
                        p.least_slack_s
                            .map_or("-".into(), |s| format!("{:.1} days", s as f64 / 86_400.0)),
                        if p.short.is_empty() {
                            "-".into()
                        } else {
                            p.short.join(", ")
                        },
                    ],
                    Some(if p.ok {
                        Finding::Met
                    } else {
                        Finding::Breached
                    }),
                    vec![EventRef::from(*e)],
                );
            }
            let newest = proofs.last().map(|(_, p, _)| p.clone());
            let (verdict, reason) = judge(newest.as_ref(), r.prune_every, h.to.min(h.now));
            s.subject(Subject {
                name: r.name.clone(),
                verdict: Finding::from(verdict),
                target: s.target.clone(),
                measured: format!("{} proofs in the period", cited.len()),
                reason,
                events: cited,
            });
        }
        if s.subjects.is_empty() {
            s.subject(Subject {
                name: "repositories".into(),
                verdict: Finding::Informational,
                target: s.target.clone(),
                measured: "no repository uses Object Lock".into(),
                reason: "no repository of the policy file was made with `init --object-lock`"
                    .into(),
                events: Vec::new(),
            });
        }
        s.measured = format!(
            "{} proofs of lock coverage over {} repositories",
            table.rows.len(),
            s.subjects.len()
        );
        s.tables.push(table);
        s.judge_by_subjects();
        Ok(s)
    }
}
