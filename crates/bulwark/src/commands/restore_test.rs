//! `bulwark restore-test`: restore a database or file snapshot into a scratch target, check its
//! integrity, fidelity and assertions, and time it.

use std::path::PathBuf;

use bulwark_ops::restore_test::{RestoreTestOptions, restore_test};

use super::{emit, human_bytes, open, progress};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id (8+ hex digits) or `latest`
    pub snapshot: String,
    /// With `latest`: the latest snapshot of this dataset
    #[arg(long)]
    pub dataset: Option<String>,
    /// SQL that must return true on the restored database (repeatable)
    #[arg(long = "check-sql", value_name = "SQL")]
    pub check_sql: Vec<String>,
    /// Restore into a scratch database on this PostgreSQL server instead of a throwaway local cluster
    #[arg(long, value_name = "DSN")]
    pub scratch_postgres: Option<String>,
    /// Make scratch targets in this directory (default: the system's temporary directory)
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// File snapshots: restore at most this much (e.g. 10GiB); larger ones are tested on a random sample
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub max_bytes: String,
    /// File snapshots: replay the sample of an earlier test
    #[arg(long, value_name = "SEED")]
    pub sample_seed: Option<u64>,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let max_bytes = bulwark_policy::parse_size(&a.max_bytes)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Failure::usage(
                format!("bad --max-bytes '{}'", a.max_bytes),
                "give a size such as 512MiB or 10GiB",
            )
        })?;
    let repo = open(g)?;
    let report = restore_test(
        &repo,
        &RestoreTestOptions {
            spec: a.snapshot,
            dataset: a.dataset,
            check_sql: a.check_sql,
            scratch_postgres: a.scratch_postgres,
            scratch_dir: a.scratch_dir,
            max_bytes,
            sample_seed: a.sample_seed,
            rpo: None,
            program: None,
        },
        progress(g),
    )?;
    emit(g, &report, || {
        let mut t = format!(
            "restore test of snapshot {} ({}{}): {} in {:.1}s",
            &report.snapshot_id[..8],
            report.kind,
            report
                .dataset
                .as_deref()
                .map(|d| format!(", dataset {d}"))
                .unwrap_or_default(),
            if report.passed { "PASSED" } else { "FAILED" },
            report.duration_s
        );
        let phases: Vec<String> = ["structure", "fetch", "prepare", "restore", "checks"]
            .iter()
            .filter_map(|k| report.phases.get(*k).map(|v| format!("{k} {v:.1}s")))
            .collect();
        t += &format!("\nphases: {}", phases.join(", "));
        if let Some(s) = &report.sample {
            t += &format!(
                "\nsampled {} of {} files ({} of {}); replay with --sample-seed {}",
                s.files_tested,
                s.files_total,
                human_bytes(s.bytes_tested),
                human_bytes(s.bytes_total),
                s.seed
            );
        }
        for c in &report.checks {
            let mark = match (c.passed, c.skipped) {
                (_, true) => "skipped",
                (true, false) => "ok",
                (false, false) => "FAILED",
            };
            t += &format!("\n  {mark:<7} {}: {}", c.name, c.detail);
        }
        for w in &report.warnings {
            t += &format!("\nwarning: {w}");
        }
        t
    });
    if report.passed {
        return Ok(0);
    }
    for c in report.failed_checks() {
        eprintln!("restore test failed: {}: {}", c.name, c.detail);
    }
    for l in &report.logs {
        eprintln!("log kept: {l}");
    }
    Ok(1)
}
