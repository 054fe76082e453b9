//! File restore tests.
//!
//! Structure is always checked whole: every tree of the snapshot loads and authenticates, and
//! every chunk of every file is in the index; the files and bytes found must equal what the backup
//! recorded. Then content: a snapshot that fits the budget is restored whole into a scratch
//! directory and every restored byte is re-read and compared chunk by chunk with the snapshot's
//! keyed hashes. A larger one is sampled: files are ordered by a keyed hash of their path under a
//! random seed (recorded in the report, so the same sample can be drawn again) and taken in that
//! order while they fit the budget; each is restored and verified the same way, and the report
//! says how much of the snapshot the test covered.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bulwark_policy::human_size;
use bulwark_repo::lock::LockKind;
use bulwark_repo::{Id, MasterIndex, Node, NodeKind, Repository, Snapshot};

use super::{RestoreTestOptions, RestoreTestReport, Sample, free_bytes};
use crate::browse::{self, Selection};
use crate::database::SnapshotFileReader;
use crate::error::{Error, Result};
use crate::progress::{Progress, Unit};
use crate::restore::{RestoreOptions, restore_selection, verify_file};

/// Room left free on the scratch filesystem beyond what the test writes.
const FREE_MARGIN: u64 = 64 << 20;

pub(super) fn test(
    repo: &Repository,
    id: &Id,
    snap: &Snapshot,
    opts: &RestoreTestOptions,
    scratch: &Path,
    progress: &dyn Progress,
) -> Result<RestoreTestReport> {
    let mut report = RestoreTestReport {
        snapshot_id: id.to_hex(),
        dataset: snap.dataset.clone(),
        kind: "files".into(),
        snapshot_time: snap.time.to_rfc3339(),
        ..Default::default()
    };
    let started = Instant::now();
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;

    let files = match structure(repo, &index, snap, &mut report) {
        Some(files) => files,
        None => {
            report.duration_s = started.elapsed().as_secs_f64();
            return Ok(report);
        }
    };
    report.phase("structure", started.elapsed());
    let total: u64 = files.iter().map(|(_, n)| n.size).sum();
    let wanted = total.min(opts.max_bytes);
    if let Some(free) = free_bytes(scratch)
        && free < wanted.saturating_add(FREE_MARGIN)
    {
        report.check(
            "scratch",
            false,
            format!(
                "{} has {} free, the test needs {} (set restore_test.scratch to a larger filesystem, or lower restore_test.max_bytes)",
                scratch.display(),
                human_size(free),
                human_size(wanted)
            ),
        );
        report.duration_s = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let work = tempfile::Builder::new()
        .prefix("bulwark-restore-test-")
        .tempdir_in(scratch)
        .map_err(|e| {
            Error::Target(format!(
                "cannot create a scratch directory in {}: {e}",
                scratch.display()
            ))
        })?;
    let t = Instant::now();
    if total <= opts.max_bytes {
        whole(
            repo,
            &index,
            id,
            snap,
            &files,
            work.path(),
            progress,
            &mut report,
        )?;
    } else {
        sampled(
            repo,
            &index,
            &files,
            opts,
            work.path(),
            progress,
            &mut report,
        );
    }
    report.phase("restore", t.elapsed());
    // The measured time ends with the last check, before the scratch directory goes.
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Walk every tree; `None` (with the failed check recorded) when the snapshot is damaged.
fn structure(
    repo: &Repository,
    index: &MasterIndex,
    snap: &Snapshot,
    report: &mut RestoreTestReport,
) -> Option<Vec<(PathBuf, Node)>> {
    let mut files = Vec::new();
    let mut trees = 0u64;
    let mut missing = Vec::new();
    let walked = repo.load_tree(index, &snap.tree).and_then(|root| {
        trees += 1;
        browse::walk(repo, index, &root, Path::new("/"), &mut |path, node| {
            match node.kind {
                NodeKind::File => {
                    if let Some(blob) = node.content.iter().find(|b| index.lookup(b).is_none()) {
                        missing.push(format!(
                            "{}: chunk {blob} is not in the index",
                            path.display()
                        ));
                    }
                    files.push((path.to_path_buf(), node.clone()));
                }
                NodeKind::Dir => trees += 1,
                _ => {}
            }
            Ok(())
        })
    });
    match walked {
        Err(e) => {
            report.check(
                "structure",
                false,
                format!("the snapshot's trees cannot be read: {e}"),
            );
            return None;
        }
        Ok(()) if !missing.is_empty() => {
            report.check("structure", false, super::summarise(&missing));
            return None;
        }
        Ok(()) => report.check(
            "structure",
            true,
            format!(
                "{trees} trees read and authenticated; every chunk of {} files is indexed",
                files.len()
            ),
        ),
    }
    let bytes: u64 = files.iter().map(|(_, n)| n.size).sum();
    match &snap.summary {
        Some(s) if s.total_files != files.len() as u64 || s.total_bytes != bytes => report.check(
            "fidelity",
            false,
            format!(
                "the snapshot holds {} files of {bytes} bytes; the backup recorded {} files of {} bytes",
                files.len(),
                s.total_files,
                s.total_bytes
            ),
        ),
        Some(s) => report.check(
            "fidelity",
            true,
            format!("{} files and {} bytes, as recorded at backup", s.total_files, s.total_bytes),
        ),
        None => report.skipped("fidelity", "the snapshot records no summary to compare with"),
    }
    Some(files)
}

/// Restore the whole snapshot and verify every byte.
#[allow(clippy::too_many_arguments)]
fn whole(
    repo: &Repository,
    index: &MasterIndex,
    id: &Id,
    snap: &Snapshot,
    files: &[(PathBuf, Node)],
    target: &Path,
    progress: &dyn Progress,
    report: &mut RestoreTestReport,
) -> Result<()> {
    let sel = Selection {
        id: *id,
        snapshot: snap.clone(),
        path: PathBuf::from("/"),
        node: None,
    };
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        verify: true,
        ..Default::default()
    };
    let r = match restore_selection(repo, index, &sel, &opts, progress) {
        Ok(r) => r,
        Err(e) => {
            report.check("restore", false, e.to_string());
            return Ok(());
        }
    };
    report.warnings.extend(r.warnings.iter().take(20).cloned());
    report.bytes = r.bytes;
    let bytes: u64 = files.iter().map(|(_, n)| n.size).sum();
    if r.verified && r.files == files.len() as u64 && r.bytes == bytes {
        report.check(
            "integrity",
            true,
            format!(
                "all {} files ({}) restored, re-read and matched chunk by chunk",
                r.files_verified,
                human_size(r.bytes)
            ),
        );
    } else {
        let mut why = super::summarise(&r.errors);
        if why.is_empty() {
            why = format!("{} files of {} restored", r.files, files.len());
        }
        report.check("integrity", false, why);
    }
    Ok(())
}

/// Restore and verify a random sample of files that fits the budget.
fn sampled(
    repo: &Repository,
    index: &MasterIndex,
    files: &[(PathBuf, Node)],
    opts: &RestoreTestOptions,
    target: &Path,
    progress: &dyn Progress,
    report: &mut RestoreTestReport,
) {
    let seed = opts
        .sample_seed
        .unwrap_or_else(|| u64::from_le_bytes(bulwark_repo::crypto::random_array()));
    let key = *blake3::hash(&seed.to_le_bytes()).as_bytes();
    let mut order: Vec<(blake3::Hash, usize)> = files
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (blake3::keyed_hash(&key, p.as_os_str().as_bytes()), i))
        .collect();
    order.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut chosen = Vec::new();
    let mut budget = opts.max_bytes;
    for &(_, i) in &order {
        let size = files[i].1.size;
        if size <= budget {
            budget -= size;
            chosen.push(i);
        }
    }
    if chosen.is_empty() {
        // Every file is larger than the budget: the smallest one still proves something.
        if let Some((i, _)) = files.iter().enumerate().min_by_key(|(_, (_, n))| n.size) {
            chosen.push(i);
            report.warnings.push(format!(
                "every file is larger than the budget of {}; testing the smallest",
                human_size(opts.max_bytes)
            ));
        }
    }
    let bytes: u64 = chosen.iter().map(|&i| files[i].1.size).sum();
    let counter = progress.start("restore-test", Unit::Bytes, Some(bytes));
    let mut failures = Vec::new();
    for (n, &i) in chosen.iter().enumerate() {
        let (path, node) = &files[i];
        let out = target.join(n.to_string());
        let result = write_file(repo, index, node, &out)
            .and_then(|()| verify_file(repo, index, &out, node).map_err(Error::from));
        if let Err(e) = result {
            failures.push(format!("{}: {e}", path.display()));
        }
        let _ = std::fs::remove_file(&out);
        counter.inc(node.size);
    }
    drop(counter);
    report.bytes = bytes;
    report.sample = Some(Sample {
        files_tested: chosen.len() as u64,
        files_total: files.len() as u64,
        bytes_tested: bytes,
        bytes_total: files.iter().map(|(_, n)| n.size).sum(),
        seed,
    });
    if failures.is_empty() {
        report.check(
            "integrity",
            true,
            format!(
                "sampled {} of {} files ({} of {}, seed {seed}): each restored, re-read and matched chunk by chunk",
                chosen.len(),
                files.len(),
                human_size(bytes),
                human_size(files.iter().map(|(_, n)| n.size).sum())
            ),
        );
    } else {
        report.check("integrity", false, super::summarise(&failures));
    }
}

fn write_file(repo: &Repository, index: &MasterIndex, node: &Node, out: &Path) -> Result<()> {
    let mut file = std::fs::File::create(out)
        .map_err(|e| Error::Target(format!("cannot create {}: {e}", out.display())))?;
    let mut reader = SnapshotFileReader::new(repo, index, node);
    let n = std::io::copy(&mut reader, &mut file)
        .and_then(|n| file.flush().map(|()| n))
        .map_err(|e| Error::corrupt("restored file", e))?;
    if n != node.size {
        return Err(Error::corrupt(
            "restored file",
            format!("{n} bytes read back, {} in the snapshot", node.size),
        ));
    }
    Ok(())
}
