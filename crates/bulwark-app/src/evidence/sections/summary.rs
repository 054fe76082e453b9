//! The front section, what §10 promises on request: the most recent restore test of every
//! dataset (at the end of the period), what it restored, how long it took, and every check it ran.

use bulwark_ledger::{Event, EventKind};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::super::history::History;
use super::super::model::{EventRef, Finding, Mapping, Section, Subject, Table};
use super::super::{Module, at, seconds};
use crate::error::Result;
use crate::events::{Details, RestoreTestDetails};

pub struct Summary;

/// One dataset's most recent restore test.
#[derive(Debug, Clone, Serialize)]
pub struct LatestRestoreTest {
    pub dataset: String,
    pub verdict: Finding,
    pub reason: String,
    /// The most recent test, whatever its outcome, and the most recent that passed.
    pub last: Option<TestSummary>,
    pub last_passed: Option<TestSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestSummary {
    pub event: EventRef,
    pub finished: DateTime<Utc>,
    pub passed: bool,
    pub snapshot_id: String,
    pub snapshot_time: String,
    pub kind: String,
    pub duration_s: f64,
    pub bytes: u64,
    /// `name: passed|FAILED|skipped (detail)` per check.
    pub checks: Vec<String>,
    /// `sampled N of M files` for large file snapshots.
    pub sample: Option<String>,
    pub error: Option<String>,
}

fn summarise(e: &Event) -> TestSummary {
    let d = RestoreTestDetails::of(e).unwrap_or_default();
    TestSummary {
        event: e.into(),
        finished: e.finished,
        passed: e.ok,
        duration_s: d.duration_s(e),
        snapshot_id: d.report.snapshot_id.clone(),
        snapshot_time: d.report.snapshot_time.clone(),
        kind: d.report.kind.clone(),
        bytes: d.report.bytes,
        checks: d
            .report
            .checks
            .iter()
            .map(|c| {
                let state = if c.skipped {
                    "skipped"
                } else if c.passed {
                    "passed"
                } else {
                    "FAILED"
                };
                format!("{}: {state} ({})", c.name, c.detail)
            })
            .collect(),
        sample: d.report.sample.as_ref().map(|s| {
            format!(
                "sampled {} of {} files ({} of {} bytes), seed {}",
                s.files_tested, s.files_total, s.bytes_tested, s.bytes_total, s.seed
            )
        }),
        error: d.error.clone(),
    }
}

/// The most recent restore test of every dataset of the policy file, as of `h.to`.
pub fn latest(h: &History) -> Vec<LatestRestoreTest> {
    let config = h.config();
    let rto = config.targets.rto.as_secs_f64();
    config
        .datasets
        .values()
        .map(|d| {
            let tests: Vec<&Event> = h.of(EventKind::RestoreTest, Some(&d.name)).collect();
            let last = tests.last().map(|e| summarise(e));
            let last_passed = tests.iter().rev().find(|e| e.ok).map(|e| summarise(e));
            let every = d.restore_test.every.as_secs_f64();
            let late_after = every + super::restore_tests::grace(d).num_seconds() as f64;
            let (verdict, reason) = match (&last, &last_passed) {
                (None, _) => (Finding::Breached, "no restore test on record".to_string()),
                (Some(l), _) if !l.passed => (
                    Finding::Breached,
                    format!("the most recent test failed ({})", at(l.finished)),
                ),
                (_, Some(p)) if p.duration_s > rto => (
                    Finding::Breached,
                    format!(
                        "the restore took {}, over the RTO of {}",
                        seconds(p.duration_s),
                        seconds(rto)
                    ),
                ),
                (_, Some(p)) if (h.to - p.finished).num_seconds() as f64 > late_after => (
                    Finding::Breached,
                    format!(
                        "the most recent passing test ({}) is older than the {} promised",
                        at(p.finished),
                        seconds(every)
                    ),
                ),
                (_, Some(p)) => (
                    Finding::Met,
                    format!(
                        "passed {} in {} (RTO {})",
                        at(p.finished),
                        seconds(p.duration_s),
                        seconds(rto)
                    ),
                ),
                (Some(_), None) => (Finding::Breached, "no restore test has passed".into()),
            };
            LatestRestoreTest {
                dataset: d.name.clone(),
                verdict,
                reason,
                last,
                last_passed,
            }
        })
        .collect()
}

impl Module for Summary {
    fn id(&self) -> &'static str {
        "restore_test_summary"
    }

    fn build(&self, h: &History) -> Result<Section> {
        let latest = latest(h);
        let mut s = Section::new(
            self.id(),
            "Most recent restore-test summary",
            "§10: the most recent restore-test summary, on request. §4: successful restores are recorded; failures trigger remediation and re-testing.",
            format!(
                "each dataset restored and checked within its test interval, within RTO {}",
                bulwark_policy::human(h.config().targets.rto)
            ),
            Mapping::new(&["§4", "§10"], &["A1.3"], &["A.8.13", "A.5.30"]),
        );
        let mut table = Table::new(
            "Most recent restore test per dataset",
            &[
                "dataset", "finished", "outcome", "duration", "snapshot", "kind", "checks",
            ],
        );
        for l in &latest {
            let mut events = Vec::new();
            if let Some(t) = &l.last {
                events.push(t.event.clone());
                let mut checks = t.checks.join("; ");
                if let Some(sample) = &t.sample {
                    checks = format!("{checks}; {sample}");
                }
                if let Some(e) = &t.error {
                    checks = format!("{checks}; error: {e}");
                }
                table.row(
                    vec![
                        l.dataset.clone(),
                        at(t.finished),
                        if t.passed { "passed" } else { "FAILED" }.into(),
                        seconds(t.duration_s),
                        t.snapshot_id.chars().take(12).collect(),
                        t.kind.clone(),
                        checks,
                    ],
                    Some(l.verdict),
                    vec![t.event.clone()],
                );
            } else {
                table.row(
                    vec![
                        l.dataset.clone(),
                        "-".into(),
                        "none".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ],
                    Some(l.verdict),
                    Vec::new(),
                );
            }
            if let Some(p) = &l.last_passed
                && l.last.as_ref().is_none_or(|t| t.event != p.event)
            {
                events.push(p.event.clone());
            }
            s.subject(Subject {
                name: l.dataset.clone(),
                verdict: l.verdict,
                target: "a passing test within its interval".into(),
                measured: l.last.as_ref().map_or("none".into(), |t| {
                    format!(
                        "{} {} in {}",
                        if t.passed { "passed" } else { "failed" },
                        at(t.finished),
                        seconds(t.duration_s)
                    )
                }),
                reason: l.reason.clone(),
                events,
            });
        }
        s.tables.push(table);
        let passed = latest.iter().filter(|l| l.verdict == Finding::Met).count();
        s.measured = format!(
            "{passed} of {} datasets have a recent passing restore test",
            latest.len()
        );
        s.judge_by_subjects();
        Ok(s)
    }
}
