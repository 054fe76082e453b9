//! §2 off-site copy and §3 durability: per dataset and replica, how long each backup took to reach
//! the replica (its copy lag) and how old the newest off-site recovery point was at each instant.
//! The tiers the policy requires an off-site copy for are judged on their best replica in another
//! region; the others are reported.

use bulwark_ledger::{Event, EventKind};
use chrono::Duration;

use super::super::history::History;
use super::super::measure::{Arrival, exposure};
use super::super::model::{Chart, ChartKind, EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at, seconds};
use crate::error::Result;
use crate::events::{CopyDetails, Details};

pub struct Offsite;

impl Module for Offsite {
    fn id(&self) -> &'static str {
        "offsite"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let config = h.config();
        let rpo = config.targets.rpo;
        let limit = Duration::from_std(rpo).unwrap_or(Duration::MAX);
        let mut s = Section::new(
            self.id(),
            "Off-site copies and their lag",
            "§2: off-site copy in a separate region for critical customer data. §3: cross-region durability.",
            format!(
                "for {} data, a copy in another region never older than the RPO ({})",
                config
                    .targets
                    .offsite_required_for
                    .iter()
                    .map(|t| format!("{t:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", "),
                bulwark_policy::human(rpo)
            ),
            Mapping::new(&["§2", "§3"], &["A1.2"], &["A.8.13", "A.5.30"]),
        );
        let mut failures = Table::new("Failed copies", &["started", "dataset", "replica", "why"]);
        for d in config.datasets.values() {
            let required = config.targets.offsite_required_for.contains(&d.tier);
            let home = config
                .repositories
                .get(&d.repository)
                .and_then(|r| r.region.clone());
            let replicas: Vec<_> = config.replicas_of(&d.repository).collect();
            if replicas.is_empty() {
                s.subject(Subject {
                    name: d.name.clone(),
                    verdict: if required {
                        Finding::Breached
                    } else {
                        Finding::Informational
                    },
                    target: "a copy in another region".into(),
                    measured: "no replica".into(),
                    reason: format!("repository '{}' has no replica", d.repository),
                    events: Vec::new(),
                });
                continue;
            }
            let mut judged = Vec::new();
            for r in replicas {
                let mut arrivals = Vec::new();
                let mut lags = Vec::new();
                let mut cited: Vec<EventRef> = Vec::new();
                let copies: Vec<&Event> = h
                    .of(EventKind::Copy, Some(&d.name))
                    .filter(|e| e.repository.as_deref() == Some(r.name.as_str()))
                    .collect();
                for e in &copies {
                    if !e.ok {
                        if h.in_period(e) {
                            failures.row(
                                vec![
                                    at(e.started),
                                    d.name.clone(),
                                    r.name.clone(),
                                    e.summary.clone(),
                                ],
                                Some(Finding::AtRisk),
                                vec![EventRef::from(*e)],
                            );
                        }
                        continue;
                    }
                    let Ok(c) = CopyDetails::of(e) else { continue };
                    for id in &c.report.snapshots_copied {
                        if let Some(b) = h.backup_of(id) {
                            arrivals.push(Arrival {
                                arrival: e.finished,
                                point: b.started,
                            });
                            if h.in_period(b) {
                                lags.push((
                                    (e.finished - b.finished).num_milliseconds() as f64 / 1000.0,
                                    e,
                                ));
                            }
                        }
                    }
                }
                // While failed over, backups went straight into the replica.
                for b in h
                    .of(EventKind::Backup, Some(&d.name))
                    .filter(|b| b.ok && b.repository.as_deref() == Some(r.name.as_str()))
                {
                    arrivals.push(Arrival {
                        arrival: b.finished,
                        point: b.started,
                    });
                    if h.in_period(b) {
                        cited.push(b.into());
                    }
                }
                let x = exposure(&arrivals, h.from, h.to, limit);
                let worst_lag = lags.iter().map(|(l, _)| *l).fold(0.0, f64::max);
                cited.extend(
                    lags.iter()
                        .filter(|(l, _)| *l == worst_lag)
                        .map(|(_, e)| EventRef::from(**e)),
                );
                cited.extend(
                    copies
                        .iter()
                        .filter(|e| h.in_period(e))
                        .map(|e| EventRef::from(*e)),
                );
                let elsewhere = r.region.is_some() && r.region != home;
                let verdict = if !required || !elsewhere {
                    Finding::Informational
                } else if !x.any {
                    Finding::Breached
                } else if x.over.is_empty() {
                    Finding::Met
                } else {
                    Finding::Breached
                };
                let reason = if !x.any {
                    "no copy on record".to_string()
                } else if x.over.is_empty() {
                    format!(
                        "the newest off-site copy was never older than {} (worst {} at {})",
                        bulwark_policy::human(rpo),
                        seconds(x.max_s),
                        at(x.max_at)
                    )
                } else {
                    format!(
                        "the off-site copy was older than the RPO {} times; worst {} at {}",
                        x.over.len(),
                        seconds(x.max_s),
                        at(x.max_at)
                    )
                };
                if required && elsewhere {
                    judged.push(verdict);
                }
                s.subject(Subject {
                    name: format!("{} → {}", d.name, r.name),
                    verdict,
                    target: if elsewhere {
                        format!("in region {}", r.region.as_deref().unwrap_or("?"))
                    } else {
                        "same region as the primary: not off-site".into()
                    },
                    measured: format!(
                        "{} snapshots copied in the period; worst lag {}; worst off-site exposure {}",
                        lags.len(),
                        seconds(worst_lag),
                        seconds(x.max_s)
                    ),
                    reason,
                    events: cited,
                });
                s.charts.push(Chart {
                    title: format!("{} on {}: age of the newest off-site copy", d.name, r.name),
                    kind: ChartKind::Series,
                    subject: format!("{} → {}", d.name, r.name),
                    from: h.from,
                    to: h.to,
                    limit_s: rpo.as_secs_f64(),
                    limit_label: format!("RPO {}", bulwark_policy::human(rpo)),
                    points: x.points,
                });
            }
            if required && judged.is_empty() {
                s.subject(Subject {
                    name: d.name.clone(),
                    verdict: Finding::Breached,
                    target: "a copy in another region".into(),
                    measured: "no replica in another region".into(),
                    reason: "every replica is in the primary's region".into(),
                    events: Vec::new(),
                });
            }
        }
        s.measured = format!(
            "{} dataset–replica pairs; {} failed copies in the period",
            s.charts.len(),
            failures.rows.len()
        );
        if !failures.rows.is_empty() {
            s.tables.push(failures);
        }
        s.judge_by_subjects();
        Ok(s)
    }
}
