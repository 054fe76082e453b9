//! Restore tests: restore a snapshot into a scratch target the test creates and removes itself,
//! then check integrity, fidelity against what was recorded at backup, and the dataset's own
//! assertions, timing every phase. The measured restore time runs from the start of the fetch
//! until the last check has passed; it is what the RTO is judged against.
//!
//! - Databases ([`database`]): PostgreSQL into a throwaway cluster (or a scratch database on a
//!   given server), SQLite into a temporary file; fingerprints (row counts and checksums taken in
//!   the dump's own snapshot) prove fidelity.
//! - PostgreSQL physical datasets ([`physical`]): a point-in-time restore to a random target time
//!   in a throwaway server, and the point it reached, measured.
//! - Buckets ([`bucket`]): the file test, and the objects' fingerprint recorded at backup.
//! - Files ([`files`]): a full restore verified chunk by chunk when the snapshot fits the budget;
//!   otherwise a random sample of files up to the budget, each verified against its recorded
//!   chunk hashes, and the test says it was sampled and how much it covered.
//!
//! `Err` only when there is nothing to test (no such snapshot, repository trouble); everything
//! that goes wrong while restoring and checking is a failed check in the report.

mod bucket;
mod database;
mod files;
pub mod physical;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulwark_repo::Repository;
use bulwark_source::db::DbMeta;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::progress::Progress;

pub struct RestoreTestOptions {
    /// Snapshot id or `latest`.
    pub spec: String,
    pub dataset: Option<String>,
    /// SQL that must return true on the restored database.
    pub check_sql: Vec<String>,
    /// Restore into a scratch database on this server instead of a throwaway cluster.
    pub scratch_postgres: Option<String>,
    /// Where scratch targets are made (default: the system's temporary directory).
    pub scratch_dir: Option<PathBuf>,
    /// File snapshots: restore at most this many bytes; larger ones are tested on a sample.
    pub max_bytes: u64,
    /// The seed that picks a file snapshot's sample, or a physical dataset's target time
    /// (default: a fresh one, recorded).
    pub sample_seed: Option<u64>,
    /// Physical datasets: the data loss (target minus the newest heartbeat restored) allowed.
    pub rpo: Option<Duration>,
    /// Physical datasets: the bulwark program the replay's `restore_command` runs (default:
    /// this one).
    pub program: Option<PathBuf>,
}

impl RestoreTestOptions {
    /// A test of `spec` with the defaults: no assertions, a throwaway target in the system's
    /// temporary directory, the policy's default budget.
    pub fn new(spec: impl Into<String>) -> RestoreTestOptions {
        RestoreTestOptions {
            spec: spec.into(),
            dataset: None,
            check_sql: Vec::new(),
            scratch_postgres: None,
            scratch_dir: None,
            max_bytes: bulwark_policy::config::DEFAULT_RESTORE_TEST_MAX_BYTES,
            sample_seed: None,
            rpo: None,
            program: None,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// The check could not run here (e.g. pg_amcheck missing); it does not fail the test.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

/// How much of a file snapshot a sampled test covered.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Sample {
    pub files_tested: u64,
    pub files_total: u64,
    pub bytes_tested: u64,
    pub bytes_total: u64,
    /// Replays the same choice of files.
    pub seed: u64,
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct RestoreTestReport {
    pub passed: bool,
    pub snapshot_id: String,
    pub dataset: Option<String>,
    /// `postgres`, `sqlite`, `files` or `s3`.
    pub kind: String,
    pub snapshot_time: String,
    /// From the start of the fetch until the last check finished: the measured restore time.
    pub duration_s: f64,
    /// Seconds per phase: fetch, prepare (scratch target, alongside the fetch), restore, checks.
    pub phases: BTreeMap<String, f64>,
    /// Bytes restored: the files' content, or the database's dump (for throughput).
    pub bytes: u64,
    pub checks: Vec<CheckResult>,
    /// Set when a file snapshot was larger than the budget and only a sample was restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
    /// Physical datasets: the target time chosen and the point reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<physical::PointInTime>,
    /// Logs kept for a failed test (the scratch cluster's server log, psql's messages).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl RestoreTestReport {
    fn check(&mut self, name: impl Into<String>, passed: bool, detail: impl Into<String>) {
        self.checks.push(CheckResult {
            name: name.into(),
            passed,
            detail: detail.into(),
            skipped: false,
        });
    }

    fn skipped(&mut self, name: &str, detail: impl Into<String>) {
        self.checks.push(CheckResult {
            name: name.into(),
            passed: true,
            detail: detail.into(),
            skipped: true,
        });
    }

    fn phase(&mut self, name: &str, d: Duration) {
        self.phases.insert(name.into(), d.as_secs_f64());
    }

    pub fn failed_checks(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| !c.passed)
    }

    /// One line naming every failed check, for summaries and remediation items.
    pub fn failure_summary(&self) -> String {
        self.failed_checks()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Passed when there are checks and every one passed.
    fn conclude(&mut self) {
        self.passed = !self.checks.is_empty() && self.checks.iter().all(|c| c.passed);
        if !self.passed {
            for c in self.failed_checks() {
                tracing::info!("restore test check {} failed: {}", c.name, c.detail);
            }
        }
    }
}

/// Run a restore test of a database or file snapshot.
pub fn restore_test(
    repo: &Repository,
    opts: &RestoreTestOptions,
    progress: &dyn Progress,
) -> Result<RestoreTestReport> {
    let (id, snap) = repo.find_snapshot(&opts.spec, |s| {
        opts.dataset
            .as_deref()
            .is_none_or(|d| s.dataset.as_deref() == Some(d))
    })?;
    if let Some(d) = &opts.dataset
        && snap.dataset.as_deref() != Some(d.as_str())
    {
        return Err(Error::Invalid(format!(
            "snapshot {} belongs to dataset '{}', not '{d}'",
            id.short(),
            snap.dataset.as_deref().unwrap_or("")
        )));
    }
    let scratch = scratch_base(opts.scratch_dir.as_deref())?;
    if let Some(facts) = crate::wal::facts_of(&snap) {
        let mut report = physical::test(repo, &id, &snap, &facts?, opts, &scratch, progress)?;
        report.conclude();
        return Ok(report);
    }
    if let Some(fingerprint) = crate::bucket::Fingerprint::of(&snap) {
        let mut report = bucket::test(repo, &id, &snap, &fingerprint?, opts, &scratch, progress)?;
        report.conclude();
        return Ok(report);
    }
    let mut report = match DbMeta::from_meta(&snap.meta) {
        Some(meta) => {
            let meta = meta.map_err(|e| Error::corrupt(format!("snapshot {}", id.short()), e))?;
            database::test(repo, &id, &snap, &meta, opts, &scratch, progress)?
        }
        None => files::test(repo, &id, &snap, opts, &scratch, progress)?,
    };
    report.conclude();
    Ok(report)
}

/// The directory scratch targets go in: it must exist (a typo must not scatter restores).
fn scratch_base(configured: Option<&Path>) -> Result<PathBuf> {
    match configured {
        None => Ok(std::env::temp_dir()),
        Some(dir) if dir.is_dir() => Ok(dir.to_path_buf()),
        Some(dir) => Err(Error::Invalid(format!(
            "the restore-test scratch directory {} does not exist",
            dir.display()
        ))),
    }
}

/// Bytes free for an unprivileged writer in the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data, valid when zeroed; `path` is NUL-terminated and `st` is
    // ours to fill.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

fn summarise(diffs: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = diffs
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if diffs.len() > SHOWN {
        s += &format!("; and {} more", diffs.len() - SHOWN);
    }
    s
}
