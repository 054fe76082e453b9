//! Restore tests of PostgreSQL physical datasets: a point-in-time restore to a **random target
//! time** inside the window the repository can restore (from the end of the oldest base backup
//! to the newest archived segment but one, so that a commit after the target is archived),
//! replayed in a throwaway server; then the files against the backup manifest, `pg_amcheck`,
//! the dataset's assertions, and the point reached: PostgreSQL's own stop record, and the
//! newest heartbeat (see `bulwark_source::db::physical::write_heartbeat`), which must not be
//! after the target and whose distance from it is the achieved data loss, judged against the RPO.

use std::path::Path;
use std::time::{Duration, Instant};

use bulwark_repo::lock::LockKind;
use bulwark_repo::wal::WalArchive;
use bulwark_repo::{Id, Repository, Snapshot};
use bulwark_source::db::physical::{self, PhysicalFacts, RecoveryTarget};
use bulwark_source::db::postgres::{self as pg, PgTools};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{RestoreTestOptions, RestoreTestReport};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::wal::{PitrOptions, PitrReport, StreamFiles, choose_base_backup, replay};

/// Where a physical restore test aimed, and what it reached.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct PointInTime {
    pub target: DateTime<Utc>,
    /// Replays the same choice of target.
    pub seed: u64,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub base_backup: String,
    /// PostgreSQL's words on where recovery stopped.
    pub stop: Option<String>,
    pub last_commit: Option<DateTime<Utc>>,
    /// The newest heartbeat in the restored cluster at or before the target.
    pub heartbeat: Option<DateTime<Utc>>,
    /// Target minus that heartbeat: the data loss this restore shows.
    pub data_loss_s: Option<f64>,
}

pub(super) fn test(
    repo: &Repository,
    id: &Id,
    snap: &Snapshot,
    facts: &PhysicalFacts,
    opts: &RestoreTestOptions,
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<RestoreTestReport> {
    let dataset = snap.dataset.clone().unwrap_or_default();
    let mut report = RestoreTestReport {
        snapshot_id: id.to_hex(),
        dataset: snap.dataset.clone(),
        kind: "postgres_physical".into(),
        snapshot_time: snap.time.to_rfc3339(),
        ..Default::default()
    };
    let _lock = repo.lock(LockKind::Shared)?;
    let (_, all) = choose_base_backup(repo, &dataset, "latest", &RecoveryTarget::Latest)?;
    let fixed = opts.spec != "latest";
    let oldest = if fixed { facts } else { &all[0].facts };
    let window_start = oldest.stop_time;
    let archive = WalArchive::new(repo, facts.wal_stream.clone());
    let files = StreamFiles::read(&archive)?;
    let lineage = files.latest_from(facts.timeline);
    let segs = facts.segments();
    let mut along: Vec<(u64, String)> = files
        .files
        .keys()
        .filter_map(|n| {
            let (tli, seg) = segs.parse(n)?;
            (!n.contains('.') && lineage.timeline_of(seg, segs) == tli).then(|| (seg, n.clone()))
        })
        .collect();
    along.sort();
    let window_end = match along.len() {
        0 | 1 => window_start,
        n => archive
            .header(&along[n - 2].1)?
            .archived_at
            .max(window_start),
    };
    let seed = opts
        .sample_seed
        .unwrap_or_else(|| u64::from_le_bytes(bulwark_repo::crypto::random_array()));
    let span = (window_end - window_start).num_milliseconds().max(0) as u64;
    let offset = if span == 0 {
        0
    } else {
        splitmix(seed) % (span + 1)
    };
    let target_time = window_start + chrono::Duration::milliseconds(offset as i64);
    let target = RecoveryTarget::Time(target_time);
    let (chosen, _) = choose_base_backup(
        repo,
        &dataset,
        if fixed { opts.spec.as_str() } else { "latest" },
        &target,
    )?;
    let mut pit = PointInTime {
        target: target_time,
        seed,
        window_start,
        window_end,
        base_backup: chosen.id.to_hex(),
        ..Default::default()
    };
    let work = tempfile::Builder::new()
        .prefix("bulwark-restore-test-")
        .tempdir_in(scratch)
        .map_err(|e| {
            Error::io(
                format!("cannot create a scratch directory in {}", scratch.display()),
                e,
            )
        })?;
    let program = match &opts.program {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| Error::io("cannot tell which bulwark this is", e))?,
    };
    let pitr = PitrOptions {
        dataset: dataset.clone(),
        spec: chosen.id.to_hex(),
        target,
        data_dir: work.path().join("data"),
        program,
        throwaway: true,
        timeout: Duration::from_secs(24 * 3600),
        verify_manifest: true,
    };
    let started = Instant::now();
    let mut pr = PitrReport::default();
    let checked = replay(repo, &chosen, &pitr, &mut pr, progress, |server, pr| {
        let t = Instant::now();
        let mut r = RestoreTestReport::default();
        checks(server, &chosen.facts, opts, pr, &mut pit, &mut r);
        r.phase("checks", t.elapsed());
        r
    });
    report.duration_s = started.elapsed().as_secs_f64();
    if let Some((ok, detail)) = &pr.manifest {
        report.check("manifest", *ok, detail.clone());
    }
    match checked {
        Ok(r) => {
            report.checks.extend(r.checks);
            report.phases.extend(r.phases);
        }
        Err(e) => report.check("recovery", false, e.to_string()),
    }
    for (k, v) in &pr.phases {
        report.phases.insert(k.clone(), *v);
    }
    report.warnings.extend(pr.warnings);
    report.point_in_time = Some(pit);
    Ok(report)
}

fn checks(
    server: &mut physical::ReplayServer,
    facts: &PhysicalFacts,
    opts: &RestoreTestOptions,
    pr: &PitrReport,
    pit: &mut PointInTime,
    report: &mut RestoreTestReport,
) {
    let o = &pr.outcome;
    pit.stop = o.stop.clone();
    pit.last_commit = o.last_commit;
    report.check(
        "recovery",
        true,
        format!(
            "replayed {} WAL files to {} and promoted to timeline {} in {:.1}s{}",
            pr.wal_files_fetched,
            o.replayed_lsn,
            o.timeline,
            o.seconds,
            o.stop
                .as_deref()
                .map(|s| format!(": {s}"))
                .unwrap_or_default()
        ),
    );
    let dsn = server.dsn(&facts.database);
    let tools = PgTools::locate();
    if !tools.has("pg_amcheck") {
        report.skipped(
            "integrity",
            "pg_amcheck is not installed: heap and index checks skipped",
        );
    } else {
        match pg::amcheck(&tools, &dsn) {
            Ok(None) => report.check(
                "integrity",
                true,
                format!(
                    "pg_amcheck --heapallindexed of database {}: consistent",
                    facts.database
                ),
            ),
            Ok(Some(found)) => report.check(
                "integrity",
                false,
                format!("pg_amcheck found corruption: {found}"),
            ),
            Err(e) => report.check("integrity", false, e.0),
        }
    }
    match pg::connect(&dsn).and_then(|mut c| physical::heartbeats(&mut c, pit.target)) {
        Ok(None) => report.skipped(
            "point-in-time",
            "the dataset writes no heartbeat: the point reached is PostgreSQL's stop record only",
        ),
        Ok(Some((newest, at_or_before))) => {
            pit.heartbeat = at_or_before;
            pit.data_loss_s =
                at_or_before.map(|h| (pit.target - h).num_milliseconds() as f64 / 1000.0);
            let overshoot = newest.filter(|n| *n > pit.target);
            let loss = pit.data_loss_s;
            let (ok, detail) = match (overshoot, loss, opts.rpo) {
                (Some(n), _, _) => (
                    false,
                    format!(
                        "a heartbeat of {} is restored, after the target {}: recovery went past it",
                        n.to_rfc3339(),
                        pit.target.to_rfc3339()
                    ),
                ),
                (None, None, _) => {
                    report.skipped(
                        "point-in-time",
                        format!(
                            "no heartbeat at or before the target {} yet: the data loss is not measured",
                            pit.target.to_rfc3339()
                        ),
                    );
                    return checks_sql(&dsn, opts, report);
                }
                (None, Some(l), Some(rpo)) if l > rpo.as_secs_f64() => (
                    false,
                    format!(
                        "the newest heartbeat restored is {l:.1}s before the target, more than the RPO of {}s",
                        rpo.as_secs()
                    ),
                ),
                (None, Some(l), _) => (
                    true,
                    format!(
                        "the newest heartbeat restored is {l:.1}s before the target {}, none after it",
                        pit.target.to_rfc3339()
                    ),
                ),
            };
            report.check("point-in-time", ok, detail);
        }
        Err(e) => report.check("point-in-time", false, e.0),
    }
    checks_sql(&dsn, opts, report);
}

/// The dataset's assertions, on its database.
fn checks_sql(dsn: &str, opts: &RestoreTestOptions, report: &mut RestoreTestReport) {
    for sql in &opts.check_sql {
        match pg::connect(dsn).and_then(|mut c| pg::assertion(&mut c, sql)) {
            Ok((ok, detail)) => report.check(format!("check-sql: {sql}"), ok, detail),
            Err(e) => report.check(format!("check-sql: {sql}"), false, e.0),
        }
    }
}

/// A well-mixed number from a seed.
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
