//! §4 disaster-recovery drills (and §5 catastrophic loss): every drill of the period, with the RTO
//! and RPO it achieved restoring from the off-site copies alone, and whether one passed often
//! enough (`drill_every`).

use bulwark_ledger::{Event, EventKind};
use chrono::Duration;

use super::super::history::History;
use super::super::measure::coverage;
use super::super::model::{EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at, seconds};
use crate::error::Result;
use crate::events::{Details, DrillDetails};

pub struct Drills;

impl Module for Drills {
    fn id(&self) -> &'static str {
        "drills"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let t = &h.config().targets;
        let mut s = Section::new(
            self.id(),
            "Disaster-recovery drills",
            "§4: a full disaster-recovery drill (failover to a secondary region) at least annually. §5: catastrophic loss is restored from off-site backups.",
            format!(
                "a passing drill every {}, within RTO {}",
                bulwark_policy::human(t.drill_every),
                bulwark_policy::human(t.rto)
            ),
            Mapping::new(&["§4", "§5"], &["A1.3"], &["A.5.30", "A.5.29"]),
        );
        let all: Vec<&Event> = h.of(EventKind::Drill, None).collect();
        let passes: Vec<_> = all.iter().filter(|e| e.ok).map(|e| e.finished).collect();
        let every = Duration::from_std(t.drill_every).unwrap_or(Duration::MAX);
        // Drills run at scheduler ticks once due: an hour to start and finish.
        let cov = coverage(&passes, h.from, h.to, every, Duration::hours(1), "drill");
        let mut table = Table::new(
            "Drills in the period",
            &[
                "started",
                "outcome",
                "RTO achieved",
                "datasets",
                "from",
                "what failed",
            ],
        );
        let mut over = Vec::new();
        let in_period: Vec<&Event> = all.iter().copied().filter(|e| h.in_period(e)).collect();
        for e in &in_period {
            let d = DrillDetails::of(e).unwrap_or_default().report;
            if e.ok && d.wall_s > t.rto.as_secs_f64() {
                over.push(EventRef::from(*e));
            }
            let sources: Vec<String> = d
                .datasets
                .iter()
                .map(|x| {
                    format!(
                        "{} from {} ({}, RPO achieved {})",
                        x.dataset,
                        x.repository,
                        x.region.as_deref().unwrap_or("no region"),
                        x.rpo_achieved_s.map_or("-".into(), seconds)
                    )
                })
                .collect();
            table.row(
                vec![
                    at(e.started),
                    if e.ok { "passed" } else { "FAILED" }.into(),
                    seconds(d.wall_s),
                    d.datasets.len().to_string(),
                    sources.join("; "),
                    if e.ok {
                        String::new()
                    } else {
                        d.failure_summary()
                    },
                ],
                Some(if e.ok {
                    Finding::Met
                } else {
                    Finding::Breached
                }),
                vec![EventRef::from(*e)],
            );
        }
        let (verdict, reason) = if !over.is_empty() {
            (
                Finding::Breached,
                format!("{} drills took longer than the RTO", over.len()),
            )
        } else {
            (cov.finding, cov.reason.clone())
        };
        s.subject(Subject {
            name: "platform".into(),
            verdict,
            target: s.target.clone(),
            measured: format!(
                "{} drills in the period ({} passed); last passed {}",
                in_period.len(),
                in_period.iter().filter(|e| e.ok).count(),
                cov.last_pass.map_or("never".into(), at)
            ),
            reason,
            events: in_period.iter().map(|e| EventRef::from(*e)).collect(),
        });
        s.measured = s.subjects[0].measured.clone();
        s.tables.push(table);
        s.judge_by_subjects();
        Ok(s)
    }
}
