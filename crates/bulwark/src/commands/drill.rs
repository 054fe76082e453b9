//! `bulwark drill`: bring the critical datasets (or all, or those named) back from the off-site
//! replicas alone, check them, and judge the RTO and RPO achieved (see `bulwark_app::drill`).

use bulwark_app::Create;
use bulwark_app::drill::{DrillReport, DrillRequest, Scope, Source, drill};

use super::{emit, progress, workspace};
use crate::CliResult;
use crate::cli::{ConfigArg, Global};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Every dataset, not only the critical ones
    #[arg(long, conflicts_with = "datasets")]
    pub all: bool,
    /// Only these datasets
    pub datasets: Vec<String>,
}

fn secs(s: f64) -> String {
    bulwark_policy::human(std::time::Duration::from_secs_f64(s.max(0.0)))
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let scope = if a.all {
        Scope::All
    } else if a.datasets.is_empty() {
        Scope::Critical
    } else {
        Scope::Named(a.datasets)
    };
    let ws = workspace(g, &a.config.config, Create::Nothing)?;
    let report = drill(
        &ws,
        &DrillRequest {
            scope,
            source: Source::Replicas,
            now: chrono::Utc::now(),
            progress: progress(g),
        },
    )?;
    emit(g, &report, || render(&report));
    Ok(if report.passed { 0 } else { 1 })
}

/// The drill's report for a person: one line per dataset, then the verdict.
pub fn render(report: &DrillReport) -> String {
    let mut t = String::new();
    for d in &report.datasets {
        t += &format!(
            "{} {:<16} from {:<10} {:<24} {:>7}  RPO achieved {}\n",
            super::mark(d.passed),
            d.dataset,
            d.repository,
            d.target,
            secs(d.duration_s),
            d.rpo_achieved_s.map(secs).unwrap_or_else(|| "-".into())
        );
        if let Some(e) = &d.error {
            t += &format!("       {e}\n");
        }
        for c in d.checks.iter().filter(|c| !c.passed) {
            t += &format!("       {}: {}\n", c.name, c.detail);
        }
    }
    t += &format!(
        "{}: RTO achieved {} (target {}), {} datasets, {} at a time",
        if report.passed {
            "drill passed"
        } else {
            "DRILL FAILED"
        },
        secs(report.wall_s),
        secs(report.rto_target_s),
        report.datasets.len(),
        report.parallel
    );
    t
}
