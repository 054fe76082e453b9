//! §2 RTO and §4 restore testing: every restore test of the period with its measured duration
//! against the RTO, whether tests passed often enough (each dataset's own interval), and the
//! failures with the re-tests that followed.

use bulwark_ledger::{Event, EventKind};
use chrono::Duration;

use super::super::history::History;
use super::super::measure::coverage;
use super::super::model::{
    Chart, ChartKind, ChartPoint, EventRef, Finding, Mapping, Section, Subject, Table,
};
use super::super::{Module, at, seconds};
use crate::error::Result;
use crate::events::{Details, RestoreTestDetails};

pub struct RestoreTests;

/// How late a restore test may pass and still be on time: tests run at the dataset's scheduled
/// runs once `every` has passed, so up to one schedule interval late, plus an hour to finish.
pub fn grace(d: &bulwark_policy::config::Dataset) -> Duration {
    Duration::from_std(d.schedule.max_interval()).unwrap_or(Duration::zero()) + Duration::hours(1)
}

impl Module for RestoreTests {
    fn id(&self) -> &'static str {
        "restore_tests"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let config = h.config();
        let rto = config.targets.rto;
        let mut s = Section::new(
            self.id(),
            "Restore tests against the RTO",
            "§2: RTO ≤ 4 hours. §4: a representative database restore at least quarterly; successful restores are recorded, failures trigger remediation tickets and re-testing.",
            format!(
                "every dataset restored and checked at its test interval, each restore within {}",
                bulwark_policy::human(rto)
            ),
            Mapping::new(&["§2", "§4"], &["A1.3"], &["A.8.13", "A.5.30"]),
        );
        let mut table = Table::new(
            "Restore tests in the period",
            &[
                "finished",
                "dataset",
                "outcome",
                "duration",
                "RTO",
                "snapshot",
                "failed checks",
            ],
        );
        let mut total = 0;
        for d in config.datasets.values() {
            let all: Vec<&Event> = h.of(EventKind::RestoreTest, Some(&d.name)).collect();
            let passes: Vec<_> = all.iter().filter(|e| e.ok).map(|e| e.finished).collect();
            let every = Duration::from_std(d.restore_test.every).unwrap_or(Duration::MAX);
            let cov = coverage(&passes, h.from, h.to, every, grace(d), "restore test");
            let in_period: Vec<&Event> = all.iter().copied().filter(|e| h.in_period(e)).collect();
            total += in_period.len();
            let mut over_rto = Vec::new();
            let mut points = Vec::new();
            for e in &in_period {
                let details = RestoreTestDetails::of(e).unwrap_or_default();
                let duration = details.duration_s(e);
                let over = e.ok && duration > rto.as_secs_f64();
                if over {
                    over_rto.push(EventRef::from(*e));
                }
                let failed: Vec<String> = details
                    .report
                    .checks
                    .iter()
                    .filter(|c| !c.passed && !c.skipped)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .chain(details.error.clone().filter(|_| !e.ok))
                    .collect();
                table.row(
                    vec![
                        at(e.finished),
                        d.name.clone(),
                        if e.ok { "passed" } else { "FAILED" }.into(),
                        seconds(duration),
                        if over { "over" } else { "within" }.into(),
                        details.report.snapshot_id.chars().take(12).collect(),
                        failed.join("; "),
                    ],
                    Some(if !e.ok || over {
                        Finding::Breached
                    } else {
                        Finding::Met
                    }),
                    vec![EventRef::from(*e)],
                );
                points.push(ChartPoint {
                    time: e.finished,
                    value_s: Some(duration),
                    ok: Some(e.ok),
                });
            }
            let failures = in_period.iter().filter(|e| !e.ok).count();
            // A failure still unanswered by a passing test at the period's end is open work.
            let unanswered = all.last().is_some_and(|e| !e.ok && h.in_period(e));
            let (verdict, reason) = if !over_rto.is_empty() {
                (
                    Finding::Breached,
                    format!(
                        "{} passing restores took longer than the RTO of {}",
                        over_rto.len(),
                        bulwark_policy::human(rto)
                    ),
                )
            } else if cov.finding == Finding::Breached {
                (Finding::Breached, cov.reason.clone())
            } else if unanswered {
                (
                    Finding::AtRisk,
                    "the last test of the period failed and no re-test has passed yet".into(),
                )
            } else if failures > 0 {
                (
                    Finding::Met,
                    format!(
                        "{}; {failures} failures, each followed by a passing re-test",
                        cov.reason
                    ),
                )
            } else {
                (Finding::Met, cov.reason.clone())
            };
            s.subject(Subject {
                name: d.name.clone(),
                verdict,
                target: format!(
                    "every {}, within {}",
                    bulwark_policy::human(d.restore_test.every),
                    bulwark_policy::human(rto)
                ),
                measured: format!(
                    "{} tests ({} failed), longest gap {}",
                    in_period.len(),
                    failures,
                    seconds(cov.longest_s)
                ),
                reason,
                events: in_period.iter().map(|e| EventRef::from(*e)).collect(),
            });
            s.charts.push(Chart {
                title: format!("{}: restore durations", d.name),
                kind: ChartKind::Bars,
                subject: d.name.clone(),
                from: h.from,
                to: h.to,
                limit_s: rto.as_secs_f64(),
                limit_label: format!("RTO {}", bulwark_policy::human(rto)),
                points,
            });
        }
        s.measured = format!("{total} restore tests in the period");
        s.tables.push(table);
        s.judge_by_subjects();
        Ok(s)
    }
}
