//! §2 RPO and §3 backups: every dataset's recovery-point exposure over the period (how old the
//! newest restorable backup was at each instant), its worst, and every stretch past the RPO,
//! from the ledger's backup events. Failed backups are listed with why.

use bulwark_ledger::{Event, EventKind};
use chrono::Duration;

use super::super::history::History;
use super::super::measure::{Arrival, exposure};
use super::super::model::{Chart, ChartKind, EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at, seconds};
use crate::error::Result;

pub struct Backups;

/// Every successful backup of `dataset` up to the period's end, as recovery points.
pub fn recovery_points<'h>(h: &'h History, dataset: &'h str) -> Vec<(&'h Event, Arrival)> {
    h.of(EventKind::Backup, Some(dataset))
        .filter(|e| e.ok)
        .map(|e| {
            (
                e,
                Arrival {
                    arrival: e.finished,
                    point: e.started,
                },
            )
        })
        .collect()
}

impl Module for Backups {
    fn id(&self) -> &'static str {
        "rpo"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let config = h.config();
        let rpo = config.targets.rpo;
        let limit = Duration::from_std(rpo).unwrap_or(Duration::MAX);
        let mut s = Section::new(
            self.id(),
            "Recovery point: backups and RPO exposure",
            "§2: RPO ≤ 24 hours for customer data. §3: database snapshots are taken at least daily.",
            format!(
                "the newest backup never older than {}",
                bulwark_policy::human(rpo)
            ),
            Mapping::new(&["§2", "§3"], &["A1.2"], &["A.8.13"]),
        );
        let mut failures = Table::new(
            "Failed backups",
            &["started", "dataset", "repository", "why"],
        );
        let mut stretches = Table::new(
            "Stretches past the RPO",
            &["dataset", "from", "until", "length"],
        );
        let mut total = 0;
        for d in config.datasets.values() {
            let points = recovery_points(h, &d.name);
            let arrivals: Vec<Arrival> = points.iter().map(|(_, a)| *a).collect();
            let x = exposure(&arrivals, h.from, h.to, limit);
            let in_period: Vec<&Event> = points
                .iter()
                .map(|(e, _)| *e)
                .filter(|e| h.in_period(e))
                .collect();
            total += in_period.len();
            let failed: Vec<&Event> = h
                .of_in_period(EventKind::Backup, Some(&d.name))
                .filter(|e| !e.ok)
                .collect();
            for e in &failed {
                failures.row(
                    vec![
                        at(e.started),
                        d.name.clone(),
                        e.repository.clone().unwrap_or_default(),
                        e.summary.clone(),
                    ],
                    Some(Finding::Breached),
                    vec![EventRef::from(*e)],
                );
            }
            // The backups that bound each stretch past the RPO are its evidence.
            let mut cited: Vec<EventRef> = Vec::new();
            for (start, end) in &x.over {
                let around: Vec<EventRef> = points
                    .iter()
                    .filter(|(_, a)| a.arrival == *end || a.point + limit == *start)
                    .map(|(e, _)| EventRef::from(*e))
                    .collect();
                stretches.row(
                    vec![
                        d.name.clone(),
                        at(*start),
                        at(*end),
                        seconds((*end - *start).num_seconds() as f64),
                    ],
                    Some(Finding::Breached),
                    around.clone(),
                );
                cited.extend(around);
            }
            let (verdict, reason) = if !x.any {
                (Finding::Breached, "no backup on record".to_string())
            } else if !x.over.is_empty() {
                (
                    Finding::Breached,
                    format!(
                        "past the RPO {} times; worst {} old at {}",
                        x.over.len(),
                        seconds(x.max_s),
                        at(x.max_at)
                    ),
                )
            } else {
                (
                    Finding::Met,
                    format!(
                        "worst exposure {} at {}, within the RPO of {}",
                        seconds(x.max_s),
                        at(x.max_at),
                        bulwark_policy::human(rpo)
                    ),
                )
            };
            cited.extend(in_period.iter().map(|e| EventRef::from(*e)));
            cited.extend(failed.iter().map(|e| EventRef::from(*e)));
            s.subject(Subject {
                name: d.name.clone(),
                verdict,
                target: format!("≤ {}", bulwark_policy::human(rpo)),
                measured: format!(
                    "{} backups ({} failed); worst exposure {}",
                    in_period.len(),
                    failed.len(),
                    seconds(x.max_s)
                ),
                reason,
                events: cited,
            });
            s.charts.push(Chart {
                title: format!("{}: age of the newest backup", d.name),
                kind: ChartKind::Series,
                subject: d.name.clone(),
                from: h.from,
                to: h.to,
                limit_s: rpo.as_secs_f64(),
                limit_label: format!("RPO {}", bulwark_policy::human(rpo)),
                points: x.points,
            });
        }
        s.measured = format!(
            "{total} backups of {} datasets in the period",
            config.datasets.len()
        );
        if !stretches.rows.is_empty() {
            s.tables.push(stretches);
        }
        if !failures.rows.is_empty() {
            s.tables.push(failures);
        }
        s.judge_by_subjects();
        Ok(s)
    }
}
