//! `prune`: delete what no snapshot needs, without ever making backups wait.
//!
//! # Protocol (two-phase mark and sweep)
//! 1. **Mark.** Under a maintenance lock (which excludes only other maintenance), find the blobs
//!    every snapshot reaches. Packs holding none are condemned; packs mostly unused are repacked
//!    (their live blobs written to new packs first) and condemned too. The condemnation record
//!    is stored *before* prune lists the live locks; the holders of those locks go into a second
//!    record that replaces the first. Backups and copies read the condemned set after taking
//!    their lock and never deduplicate against condemned packs, so any process that does not
//!    appear in that holder list cannot come to rely on a condemned pack.
//! 2. **Sweep.** A condemnation is swept only when none of its holders still holds a live lock
//!    (a holder that cannot refresh its lock stops before writing a snapshot). Before deleting,
//!    prune re-reads every snapshot and rescues any condemned pack that still holds a blob a
//!    snapshot needs and no live pack has. It then rewrites the index without the packs (new
//!    index file first, old ones removed after), deletes the packs, and finally the record.
//!
//! A prune killed at any instant leaves a repository that checks clean: nothing is deleted
//! before the index stops pointing at it, and every step is redone by the next prune.
//!
//! Archived PostgreSQL WAL is pruned apart (see `crate::wal`): files no retained base backup
//! can use go at once, but only while no other process holds a lock.

use std::collections::BTreeMap;

use bulwark_repo::condemned::Condemnation;
use bulwark_repo::id::IdSet;
use bulwark_repo::index::{IndexFile, IndexPack, MasterIndex};
use bulwark_repo::lock::{LockKind, live_locks};
use bulwark_repo::writer::BlobWriter;
use bulwark_repo::{Error, FileKind, Id, Repository, Result};
use chrono::Utc;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::progress::{Progress, Unit};
use bulwark_repo::transfer::collect_blobs;

pub struct PruneOptions {
    /// Unused space that may remain instead of repacking, as a fraction of the repository after
    /// pruning (restic's measure).
    pub max_unused: f64,
    pub dry_run: bool,
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub packs: usize,
    pub bytes_total: u64,
    pub bytes_used: u64,
    pub bytes_unused: u64,
    /// Packs no snapshot needs, and packs repacked because they were mostly unused.
    pub packs_unused: usize,
    pub packs_to_repack: usize,
    pub bytes_repacked: u64,
    /// What deleting this run's condemned packs frees, net of what repacking wrote.
    pub bytes_to_free: u64,
    pub packs_condemned: usize,
    pub packs_deleted: usize,
    pub bytes_freed: u64,
    pub packs_rescued: usize,
    /// Partial files of killed uploads, older than a day, deleted.
    pub abandoned_writes_removed: usize,
    /// Condemnations left for a later prune, and why.
    pub postponed: Vec<String>,
    /// Archived WAL no retained base backup needs (see `crate::wal`).
    pub wal: crate::wal::WalPruneReport,
}

/// A write still unfinished after this long belongs to no running process.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> crate::Result<PruneReport> {
    let lock = repo.lock(LockKind::Maintenance)?;
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let plan = plan(repo, opts, &mut report)?;
    report.wal = crate::wal::prune_wal(repo, lock.holder(), opts.dry_run)?;
    if opts.dry_run {
        return Ok(report);
    }
    if !plan.condemn.is_empty() {
        repack(repo, &plan, progress)?;
    }
    // Safe point: nothing is condemned yet, and repacked blobs are only duplicates.
    if progress.should_stop() {
        return Err(crate::Error::Interrupted);
    }
    let doomed = plan.condemn;
    // The sweep loads an index of its own; the plan's must not sit beside it.
    drop(plan.keep_index);
    drop(plan.repack);
    if !doomed.is_empty() {
        report.packs_condemned = doomed.len();
        condemn(repo, doomed, lock.holder())?;
    }
    sweep(repo, lock.holder(), &mut report)?;
    report.abandoned_writes_removed = repo.backend().remove_abandoned_writes(ABANDONED_AFTER)?;
    Ok(report)
}

struct Plan {
    /// Every pack to condemn: unused ones and those to repack.
    condemn: Vec<Id>,
    /// Packs to repack, with the blobs to carry over.
    repack: Vec<(IndexPack, Vec<usize>)>,
    /// The index without condemned or repacked packs: what repacking deduplicates against.
    keep_index: MasterIndex,
}

/// What the snapshots need, judged consistently.
struct Usage {
    used: IdSet,
    snapshots: usize,
    /// Every pack the index files list, read after the snapshots.
    packs: BTreeMap<Id, IndexPack>,
    /// Those packs as one index, condemned ones demoted.
    index: MasterIndex,
}

/// Every blob some snapshot reaches. Snapshots are listed before the index is read: a backup
/// writes its index before its snapshot, so every snapshot seen has its blobs in the index read.
/// Any unreadable snapshot or tree stops prune: deleting on a partial view could destroy data.
fn usage(repo: &Repository) -> Result<Usage> {
    let (snapshots, bad) = repo.load_snapshots()?;
    if let Some(e) = bad.into_iter().next() {
        return Err(Error::Invalid(format!(
            "refusing to prune while a snapshot is unreadable ({e}); run `bulwark check`"
        )));
    }
    let packs = index_packs(repo)?;
    let mut index = MasterIndex::default();
    for p in packs.values() {
        index.add_pack(p);
    }
    index.demote(&repo.condemned_packs()?);
    index.finish();
    let mut used = IdSet::default();
    for (_, snap) in &snapshots {
        collect_blobs(repo, &index, &snap.tree, &mut used)?;
    }
    Ok(Usage {
        used,
        snapshots: snapshots.len(),
        packs,
        index,
    })
}

fn index_packs(repo: &Repository) -> Result<BTreeMap<Id, IndexPack>> {
    let mut packs = BTreeMap::new();
    for name in repo.list_index_files()? {
        for p in repo.read_index_file(&name)?.packs {
            packs.insert(p.id, p);
        }
    }
    Ok(packs)
}

fn plan(repo: &Repository, opts: &PruneOptions, report: &mut PruneReport) -> Result<Plan> {
    let condemned = repo.condemned_packs()?;
    let Usage {
        used,
        snapshots,
        packs,
        index,
    } = usage(repo)?;
    report.snapshots = snapshots;
    let packs: Vec<IndexPack> = packs
        .into_values()
        .filter(|p| !condemned.contains(&p.id))
        .collect();
    report.packs = packs.len();
    // A blob counts as used in the one pack lookups resolve it to.
    let mut candidates = Vec::new();
    let mut condemn = Vec::new();
    for p in &packs {
        let live: Vec<usize> = (0..p.blobs.len())
            .filter(|&i| {
                let b = &p.blobs[i];
                used.contains(&b.id) && index.lookup(&b.id).is_some_and(|l| l.pack.id == p.id)
            })
            .collect();
        // Dead blobs are the waste; a live pack's header and directory are not.
        let live_bytes: u64 = live.iter().map(|&i| p.blobs[i].stored_len as u64).sum();
        let all_bytes: u64 = p.blobs.iter().map(|b| b.stored_len as u64).sum();
        let unused = if live.is_empty() {
            p.size
        } else {
            all_bytes - live_bytes
        };
        report.bytes_total += p.size;
        report.bytes_used += p.size - unused;
        if live.is_empty() {
            condemn.push(p.id);
            report.packs_unused += 1;
            report.bytes_to_free += p.size;
        } else if unused > 0 {
            candidates.push((unused, p, live));
        }
    }
    report.bytes_unused = report.bytes_total - report.bytes_used;
    // Repack the most wasteful packs until what stays unused is within the allowance: a share of
    // the repository as it will be after pruning, as restic counts it (unused <= p/(1-p) * used).
    let allowance = if opts.max_unused >= 1.0 {
        u64::MAX
    } else {
        (report.bytes_used as f64 * opts.max_unused / (1.0 - opts.max_unused)) as u64
    };
    let mut remaining: u64 = candidates.iter().map(|c| c.0).sum();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut repack = Vec::new();
    for (unused, p, live) in candidates {
        if remaining <= allowance {
            break;
        }
        remaining -= unused;
        let live_bytes: u64 = live.iter().map(|&i| p.blobs[i].stored_len as u64).sum();
        report.packs_to_repack += 1;
        report.bytes_repacked += live_bytes;
        report.bytes_to_free += p.size - live_bytes;
        condemn.push(p.id);
        repack.push((p.clone(), live));
    }
    let dropped: IdSet = condemn.iter().copied().collect();
    let mut keep_index = MasterIndex::default();
    for p in packs.iter().filter(|p| !dropped.contains(&p.id)) {
        keep_index.add_pack(p);
    }
    keep_index.finish();
    Ok(Plan {
        condemn,
        repack,
        keep_index,
    })
}

/// Write the live blobs of the packs being repacked into new packs.
fn repack(repo: &Repository, plan: &Plan, progress: &dyn Progress) -> crate::Result<()> {
    if plan.repack.is_empty() {
        return Ok(());
    }
    let counter = progress.start("repack", Unit::Items, Some(plan.repack.len() as u64));
    BlobWriter::run(
        repo,
        &plan.keep_index,
        repo.backend().concurrency(),
        |writer| {
            plan.repack
                .par_iter()
                .try_for_each(|(p, live)| -> crate::Result<()> {
                    if progress.should_stop() {
                        return Err(crate::Error::Interrupted);
                    }
                    let data = repo.backend().read(FileKind::Pack, &p.id.to_hex())?;
                    if Id::of_stored(&data) != p.id {
                        return Err(Error::corrupt(
                            format!("pack {}", p.id),
                            "damaged; run `bulwark check --read-data` before pruning",
                        )
                        .into());
                    }
                    for &i in live {
                        let b = &p.blobs[i];
                        let range = b.offset as usize..(b.offset + b.stored_len) as usize;
                        let plain = b.open(repo.key(), &p.salt, &data[range])?;
                        writer.save_with_id(b.kind, b.id, &plain)?;
                    }
                    counter.inc(1);
                    Ok(())
                })
        },
    )?;
    drop(counter);
    Ok(())
}

/// Record a condemnation, then the lock holders who might not have seen it (see the protocol).
fn condemn(repo: &Repository, packs: Vec<Id>, me: Id) -> Result<()> {
    let first = Condemnation {
        time: Utc::now(),
        packs,
        holders: Vec::new(),
    };
    let first_name = repo.save_condemnation(&first)?;
    complete_holders(repo, first_name, first, me).map(drop)
}

/// Replace a record that has no holder list with one listing every live holder but us; returns
/// the completed record and its name.
fn complete_holders(
    repo: &Repository,
    name: String,
    mut record: Condemnation,
    me: Id,
) -> Result<(String, Condemnation)> {
    record.holders = live_locks(repo.backend().as_ref(), repo.key())?
        .into_iter()
        .map(|(_, l)| l.holder)
        .filter(|h| *h != me)
        .collect();
    // A record needs at least one holder entry to count as complete: our own id stands for "none".
    if record.holders.is_empty() {
        record.holders.push(me);
    }
    let completed = repo.save_condemnation(&record)?;
    repo.backend().remove(FileKind::Condemned, &name)?;
    Ok((completed, record))
}

fn sweep(repo: &Repository, me: Id, report: &mut PruneReport) -> Result<()> {
    let records = repo.condemnations()?;
    if records.is_empty() {
        return Ok(());
    }
    let live: IdSet = live_locks(repo.backend().as_ref(), repo.key())?
        .into_iter()
        .map(|(_, l)| l.holder)
        .filter(|h| *h != me)
        .collect();
    let mut due: Vec<(String, Condemnation)> = Vec::new();
    for (name, record) in records {
        // Left by a prune killed between its two writes: complete it now. Its incomplete form was
        // already visible to every process that started since, so the completed record is judged
        // like one this prune wrote itself.
        let (name, record) = if record.holders.is_empty() {
            complete_holders(repo, name, record, me)?
        } else {
            (name, record)
        };
        if let Some(h) = record.holders.iter().find(|h| live.contains(h)) {
            report.postponed.push(format!(
                "{} packs wait for a process that was running when they were marked (lock holder {})",
                record.packs.len(),
                h.short()
            ));
        } else {
            due.push((name, record));
        }
    }
    if due.is_empty() {
        return Ok(());
    }
    let doomed: IdSet = due
        .iter()
        .flat_map(|(_, r)| r.packs.iter().copied())
        .collect();
    let stored: BTreeMap<Id, u64> = repo
        .backend()
        .list(FileKind::Pack)?
        .into_iter()
        .filter_map(|(n, s)| n.parse().ok().map(|id| (id, s)))
        .collect();

    // Rescue: a blob some snapshot needs that only a doomed pack holds keeps its pack alive.
    let all_condemned = repo.condemned_packs()?;
    let Usage {
        used,
        packs: indexed,
        ..
    } = usage(repo)?;
    let mut live_index = MasterIndex::default();
    for p in indexed.values().filter(|p| !all_condemned.contains(&p.id)) {
        live_index.add_pack(p);
    }
    live_index.finish();
    let mut rescued: Vec<IndexPack> = Vec::new();
    for id in &doomed {
        let Some(&size) = stored.get(id) else {
            continue;
        };
        let p = match indexed.get(id) {
            Some(p) => p.clone(),
            None => repo.read_pack_directory(id, size)?,
        };
        if p.blobs
            .iter()
            .any(|b| used.contains(&b.id) && !live_index.contains(&b.id))
        {
            rescued.push(p);
        }
    }
    report.packs_rescued = rescued.len();
    let rescued_ids: IdSet = rescued.iter().map(|p| p.id).collect();
    let delete: Vec<Id> = doomed
        .iter()
        .filter(|id| !rescued_ids.contains(id))
        .copied()
        .collect();
    let delete_set: IdSet = delete.iter().copied().collect();

    // The index stops pointing at the packs before any of them goes.
    let mut affected = Vec::new();
    let mut rewritten = IndexFile::default();
    for name in repo.list_index_files()? {
        let file = repo.read_index_file(&name)?;
        if file.packs.iter().any(|p| delete_set.contains(&p.id)) {
            rewritten.packs.extend(
                file.packs
                    .into_iter()
                    .filter(|p| !delete_set.contains(&p.id)),
            );
            affected.push(name);
        }
    }
    // Rescued packs a killed sweep had already unindexed go back into the index.
    rewritten
        .packs
        .extend(rescued.into_iter().filter(|p| !indexed.contains_key(&p.id)));
    if !affected.is_empty() || !rewritten.packs.is_empty() {
        rewritten.supersedes = affected.iter().filter_map(|n| n.parse().ok()).collect();
        let new = repo.save_index(&rewritten)?.to_hex();
        for name in affected.iter().filter(|n| **n != new) {
            repo.backend().remove(FileKind::Index, name)?;
        }
    }
    for id in &delete {
        if let Some(size) = stored.get(id) {
            repo.backend().remove(FileKind::Pack, &id.to_hex())?;
            report.packs_deleted += 1;
            report.bytes_freed += size;
        }
    }
    for (name, _) in due {
        repo.backend().remove(FileKind::Condemned, &name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bulwark_repo::backend::StoreBackend;
    use bulwark_repo::keys::Credential;
    use bulwark_repo::pack::BlobKind;
    use bulwark_repo::repository::Settings;

    use super::*;
    use crate::progress::Silent;

    /// A repository with one stored pack that no snapshot needs.
    fn repository_with_an_unused_pack(root: &std::path::Path) -> (Repository, Id) {
        let (credential, _) = Credential::new_key_file();
        let backend = Arc::new(StoreBackend::local(root, true).unwrap());
        let repo = Repository::init(backend, &credential, Settings::default()).unwrap();
        let index = repo.load_index().unwrap();
        BlobWriter::run(&repo, &index, 1, |w| w.save(BlobKind::Data, b"orphan")).unwrap();
        let packs = index_packs(&repo).unwrap();
        assert_eq!(packs.len(), 1);
        let pack = *packs.keys().next().unwrap();
        (repo, pack)
    }

    #[test]
    fn a_condemnation_left_without_holders_is_completed_and_swept_by_one_prune() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, pack) = repository_with_an_unused_pack(&dir.path().join("repo"));
        // What a prune killed between its two condemnation writes leaves.
        repo.save_condemnation(&Condemnation {
            time: Utc::now(),
            packs: vec![pack],
            holders: Vec::new(),
        })
        .unwrap();
        let opts = PruneOptions {
            max_unused: 0.0,
            dry_run: false,
        };
        let report = prune(&repo, &opts, &Silent).unwrap();
        assert_eq!(report.postponed, Vec::<String>::new());
        assert_eq!(report.packs_deleted, 1, "{report:?}");
        assert!(repo.condemnations().unwrap().is_empty());
        assert!(index_packs(&repo).unwrap().is_empty());
    }

    #[test]
    fn a_completed_condemnation_waits_for_a_process_that_was_running_when_it_was_marked() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, pack) = repository_with_an_unused_pack(&dir.path().join("repo"));
        repo.save_condemnation(&Condemnation {
            time: Utc::now(),
            packs: vec![pack],
            holders: Vec::new(),
        })
        .unwrap();
        // A backup that started before the record was completed may rely on the pack.
        let backup = repo.lock(LockKind::Shared).unwrap();
        let opts = PruneOptions {
            max_unused: 0.0,
            dry_run: false,
        };
        let report = prune(&repo, &opts, &Silent).unwrap();
        assert_eq!(report.packs_deleted, 0, "{report:?}");
        assert_eq!(report.postponed.len(), 1, "{report:?}");
        drop(backup);
        let report = prune(&repo, &opts, &Silent).unwrap();
        assert_eq!(report.packs_deleted, 1, "{report:?}");
        assert_eq!(report.postponed, Vec::<String>::new());
    }
}
