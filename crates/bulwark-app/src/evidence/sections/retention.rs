//! §2 retention, as actually kept: replaying every backup and every retention run (`forget`) of
//! the ledger says which snapshots existed at each instant. Judged: no retention run removed the
//! only snapshot of a day younger than the retention window, and at the period's end the kept
//! history reaches back as far as the policy promises (or to the first backup). When the period
//! ends now, the repository is read too, and snapshots the ledger says are kept but that are gone
//! are named.

use std::collections::{BTreeMap, BTreeSet};

use bulwark_ledger::{Event, EventKind};
use chrono::{DateTime, Duration, Utc};

use super::super::history::History;
use super::super::model::{EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at, day, seconds};
use crate::error::Result;
use crate::events::{BackupDetails, Details, ForgetDetails};

pub struct Retention;

/// When a snapshot was taken, and the backup event that took it.
type Taken = (DateTime<Utc>, EventRef);

impl Module for Retention {
    fn id(&self) -> &'static str {
        "retention"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let config = h.config();
        let promised = config.targets.retention;
        let window = Duration::from_std(promised.approximate()).unwrap_or(Duration::MAX);
        let mut s = Section::new(
            self.id(),
            "Retention actually kept",
            "§2: backup retention 30 days, rolling; daily snapshots; longer retention by contract.",
            format!("at least {promised} of daily history kept"),
            Mapping::new(&["§2"], &["A1.2"], &["A.8.13"]),
        );
        let mut removals = Table::new(
            "Snapshots removed by retention in the period",
            &[
                "removed",
                "dataset",
                "snapshot",
                "taken",
                "age",
                "within the window",
            ],
        );
        let ends_now = h.to >= h.now - Duration::hours(1);
        for d in config.datasets.values() {
            let mut alive: BTreeMap<String, (DateTime<Utc>, EventRef)> = BTreeMap::new();
            let mut first: Option<DateTime<Utc>> = None;
            let mut premature = Vec::new();
            let mut removed_in_period = 0;
            let mut cited = Vec::new();
            let events: Vec<&Event> = h
                .events
                .iter()
                .filter(|e| e.dataset.as_deref() == Some(d.name.as_str()) && e.ok)
                .filter(|e| matches!(e.kind, EventKind::Backup | EventKind::Forget))
                .collect();
            for e in events {
                if e.kind == EventKind::Backup {
                    if let Some(id) = BackupDetails::of(e).ok().and_then(|b| b.snapshot_id) {
                        alive.insert(id, (e.started, e.into()));
                        first = Some(first.map_or(e.started, |f| f.min(e.started)));
                    }
                    continue;
                }
                let Ok(f) = ForgetDetails::of(e) else {
                    continue;
                };
                let gone: Vec<(String, Option<Taken>)> = f
                    .removed
                    .iter()
                    .map(|id| (id.clone(), alive.remove(id)))
                    .collect();
                if !h.in_period(e) {
                    continue;
                }
                for (id, taken) in gone {
                    removed_in_period += 1;
                    let young = taken.as_ref().is_some_and(|(t, _)| e.started - *t < window);
                    // The day still has a snapshot: a duplicate of the day went, not the day.
                    let day_kept = taken
                        .as_ref()
                        .is_some_and(|(t, _)| alive.values().any(|(u, _)| day(*u) == day(*t)));
                    let violation = young && !day_kept;
                    let mut refs = vec![EventRef::from(e)];
                    refs.extend(taken.as_ref().map(|(_, r)| r.clone()));
                    if violation {
                        premature.push(id.clone());
                        cited.extend(refs.clone());
                    }
                    removals.row(
                        vec![
                            at(e.started),
                            d.name.clone(),
                            id.chars().take(12).collect(),
                            taken
                                .as_ref()
                                .map_or("not in the ledger".into(), |(t, _)| at(*t)),
                            taken.as_ref().map_or("-".into(), |(t, _)| {
                                seconds((e.started - *t).num_seconds() as f64)
                            }),
                            if violation {
                                "yes: the day's only snapshot".into()
                            } else if young {
                                "yes: the day keeps another".into()
                            } else {
                                "no".to_string()
                            },
                        ],
                        Some(if violation {
                            Finding::Breached
                        } else {
                            Finding::Met
                        }),
                        refs,
                    );
                }
            }
            let oldest = alive.values().map(|(t, _)| *t).min();
            let kept = oldest.map_or(Duration::zero(), |o| h.to - o);
            let expected = first.map_or(Duration::zero(), |f| (h.to - f).min(window));
            cited.extend(
                alive
                    .values()
                    .filter(|(t, _)| Some(*t) == oldest)
                    .map(|(_, r)| r.clone()),
            );
            let mut measured = format!(
                "{} snapshots kept at the period's end, the oldest {} old; {removed_in_period} removed in the period",
                alive.len(),
                seconds(kept.num_seconds() as f64)
            );
            let mut finding = Finding::Met;
            let mut reason = format!(
                "the rules ({}) keep {} of daily history",
                d.retention,
                bulwark_policy::human(bulwark_policy::commitments::daily_history(d))
            );
            if ends_now {
                match missing_from_repository(h, &d.repository, &d.name, &alive) {
                    Ok(missing) if !missing.is_empty() => {
                        finding = Finding::AtRisk;
                        reason = format!(
                            "{} snapshots the ledger shows kept are not in repository '{}' ({}...): removed outside Bulwark's runs",
                            missing.len(),
                            d.repository,
                            missing[0].chars().take(12).collect::<String>()
                        );
                    }
                    Ok(_) => {
                        measured += &format!("; repository '{}' holds every one", d.repository)
                    }
                    Err(e) => measured += &format!("; repository not compared: {e}"),
                }
            }
            if !premature.is_empty() {
                finding = Finding::Breached;
                reason = format!(
                    "{} snapshots were removed while younger than {promised} and the only one of their day",
                    premature.len()
                );
            } else if first.is_none() {
                finding = Finding::Breached;
                reason = "no backup on record".into();
            } else if kept + Duration::days(1) < expected {
                finding = Finding::Breached;
                reason = format!(
                    "the history kept at the period's end reaches back {}, less than the {} promised",
                    seconds(kept.num_seconds() as f64),
                    seconds(expected.num_seconds() as f64)
                );
            }
            s.subject(Subject {
                name: d.name.clone(),
                verdict: finding,
                target: format!("≥ {promised} of daily history"),
                measured,
                reason,
                events: cited,
            });
        }
        s.measured = format!(
            "{} snapshots removed by retention in the period",
            removals.rows.len()
        );
        s.tables.push(removals);
        s.judge_by_subjects();
        Ok(s)
    }
}

/// The snapshots of `alive` that repository `name` no longer holds.
fn missing_from_repository(
    h: &History,
    name: &str,
    dataset: &str,
    alive: &BTreeMap<String, (DateTime<Utc>, EventRef)>,
) -> Result<Vec<String>> {
    let repo = h.ws.repository(name)?;
    let (snaps, _) = repo
        .load_snapshots()
        .map_err(|e| crate::Error::repository(name, e))?;
    let present: BTreeSet<String> = snaps
        .iter()
        .filter(|(_, s)| s.dataset.as_deref() == Some(dataset))
        .map(|(id, _)| id.to_hex())
        .collect();
    Ok(alive
        .keys()
        .filter(|id| !present.contains(*id))
        .cloned()
        .collect())
}
