//! Off-site copies. Between repositories that share a master key (replicas) packs move verbatim:
//! each is hashed before it leaves and read back and hashed after it lands, the destination's
//! index is written next, and each snapshot object last. A copy killed at any instant and run
//! again adopts the packs already landed and sends nothing twice. Into a repository with another
//! key, blobs are decrypted and saved again, and trees rewritten with the new ids.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bulwark_repo::id::{IdMap, IdSet};
use bulwark_repo::index::IndexFile;
use bulwark_repo::lock::{LockGuard, LockKind};
use bulwark_repo::transfer::{COPIED_FROM, collect_blobs, copied_origins, copy_pack};
use bulwark_repo::writer::{BlobWriter, adopt_unindexed_packs};
use bulwark_repo::{
    BlobKind, Error, FileKind, Id, MasterIndex, NodeKind, Repository, Result, Snapshot, Tree,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::progress::{Progress, Unit};

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct CopyReport {
    /// `verbatim` between replicas, `re-encrypted` otherwise.
    pub mode: String,
    pub snapshots_copied: Vec<String>,
    pub snapshots_already_present: usize,
    pub packs_copied: u64,
    pub bytes_copied: u64,
    pub packs_resumed: usize,
}

/// The snapshots `specs` name in `src` (all of them when empty).
fn selected(src: &Repository, specs: &[String]) -> Result<Vec<(Id, Snapshot)>> {
    if specs.is_empty() {
        let (snaps, bad) = src.load_snapshots()?;
        if let Some(e) = bad.into_iter().next() {
            return Err(e);
        }
        return Ok(snaps);
    }
    specs
        .iter()
        .map(|s| src.find_snapshot(s, |_| true))
        .collect()
}

pub fn copy(
    src: &Repository,
    dst: &Repository,
    specs: &[String],
    progress: &dyn Progress,
) -> crate::Result<CopyReport> {
    let _src_lock = src.lock(LockKind::Shared)?;
    let dst_lock = dst.lock(LockKind::Shared)?;
    let src_index = src.load_index()?;
    let (mut dst_index, condemned) = dst.load_index_for_writing()?;
    let mut report = CopyReport {
        packs_resumed: adopt_unindexed_packs(dst, &mut dst_index, &condemned)?,
        ..Default::default()
    };
    let snapshots = selected(src, specs)?;
    if dst.shares_key_with(src) {
        report.mode = "verbatim".into();
        copy_verbatim(
            src,
            dst,
            &src_index,
            dst_index,
            snapshots,
            progress,
            &dst_lock,
            &mut report,
        )?;
    } else {
        report.mode = "re-encrypted".into();
        let copies = copy_reencrypting(src, dst, &src_index, &dst_index, snapshots, &mut report)?;
        dst_lock.ensure_fresh()?;
        for snap in copies {
            report
                .snapshots_copied
                .push(dst.save_snapshot(&snap)?.to_hex());
        }
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn copy_verbatim(
    src: &Repository,
    dst: &Repository,
    src_index: &MasterIndex,
    mut dst_index: MasterIndex,
    snapshots: Vec<(Id, Snapshot)>,
    progress: &dyn Progress,
    dst_lock: &LockGuard,
    report: &mut CopyReport,
) -> crate::Result<()> {
    let present: IdSet = dst.snapshot_ids()?.into_iter().collect();
    for (id, snap) in snapshots {
        if present.contains(&id) {
            report.snapshots_already_present += 1;
            continue;
        }
        let mut blobs = IdSet::default();
        collect_blobs(src, src_index, &snap.tree, &mut blobs)?;
        let mut packs: Vec<(Id, u64)> = Vec::new();
        let mut seen = IdSet::default();
        for blob in &blobs {
            if dst_index.contains(blob) {
                continue;
            }
            let loc = src_index.lookup(blob).ok_or_else(|| {
                Error::corrupt(
                    format!("blob {blob}"),
                    "referenced by the source but not in its index",
                )
            })?;
            if seen.insert(loc.pack.id) {
                packs.push((loc.pack.id, loc.pack.size));
            }
        }
        let counter = progress.start("copy", Unit::Bytes, Some(packs.iter().map(|p| p.1).sum()));
        let copied = Mutex::new(Vec::new());
        let bytes = AtomicU64::new(0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(dst.backend().concurrency().max(2))
            .build()
            .map_err(|e| Error::Invalid(format!("thread pool: {e}")))?;
        pool.install(|| {
            packs
                .par_iter()
                .try_for_each(|(pack_id, size)| -> crate::Result<()> {
                    if progress.should_stop() {
                        return Err(crate::Error::Interrupted);
                    }
                    let landed = copy_pack(src, dst, pack_id, *size)?;
                    bytes.fetch_add(*size, Ordering::Relaxed);
                    counter.inc(*size);
                    copied.lock().expect("copied packs").push(landed);
                    Ok(())
                })
        })?;
        drop(counter);
        let copied = copied.into_inner().expect("copied packs");
        if !copied.is_empty() {
            let file = IndexFile {
                packs: copied,
                supersedes: Vec::new(),
            };
            dst.save_index(&file)?;
            for p in &file.packs {
                dst_index.add_pack(p);
            }
            dst_index.finish();
            report.packs_copied += file.packs.len() as u64;
        }
        report.bytes_copied += bytes.into_inner();
        // The snapshot object itself, byte for byte: same name on both sides.
        let stored = src.backend().read(FileKind::Snapshot, &id.to_hex())?;
        if Id::of_stored(&stored) != id {
            return Err(Error::corrupt(
                format!("snapshot {}", id.short()),
                "content does not match its name",
            )
            .into());
        }
        dst_lock.ensure_fresh()?;
        dst.backend()
            .create(FileKind::Snapshot, &id.to_hex(), stored)?;
        report.snapshots_copied.push(id.to_hex());
    }
    Ok(())
}

fn copy_reencrypting(
    src: &Repository,
    dst: &Repository,
    src_index: &MasterIndex,
    dst_index: &MasterIndex,
    snapshots: Vec<(Id, Snapshot)>,
    report: &mut CopyReport,
) -> Result<Vec<Snapshot>> {
    let done = copied_origins(dst)?;
    let todo: Vec<_> = snapshots
        .into_iter()
        .filter(|(id, _)| {
            let skip = done.contains(&id.to_hex());
            if skip {
                report.snapshots_already_present += 1;
            }
            !skip
        })
        .collect();
    let (new_snaps, stats) =
        BlobWriter::run(dst, dst_index, dst.backend().concurrency(), |writer| {
            let mut rewritten: IdMap<Id> = IdMap::default();
            let mut out = Vec::new();
            for (id, snap) in todo {
                let tree = rewrite_tree(src, src_index, writer, &snap.tree, &mut rewritten)?;
                let mut copy = snap.clone();
                copy.tree = tree;
                copy.parent = None;
                copy.meta
                    .insert(COPIED_FROM.into(), serde_json::json!(id.to_hex()));
                out.push(copy);
            }
            Ok(out)
        })?;
    report.bytes_copied = stats.bytes_stored;
    report.packs_copied = stats.packs_written;
    Ok(new_snaps)
}

/// Re-encrypt a tree and everything below it; returns its id in the destination. Children go
/// before the tree that names them, in post-order on a stack of its own rather than the
/// thread's: a crafted chain of 100,000 directories is just 100,000 trees.
fn rewrite_tree(
    src: &Repository,
    index: &MasterIndex,
    writer: &BlobWriter,
    id: &Id,
    done: &mut IdMap<Id>,
) -> Result<Id> {
    // A tree is pushed unloaded, then again loaded above its pending subtrees.
    let mut stack: Vec<(Id, Option<Tree>)> = vec![(*id, None)];
    while let Some((tree_id, loaded)) = stack.pop() {
        if done.contains_key(&tree_id) {
            continue;
        }
        let Some(mut tree) = loaded else {
            let tree: Tree = src.load_tree(index, &tree_id)?;
            let pending: Vec<Id> = tree.nodes.iter().filter_map(|n| n.subtree).collect();
            stack.push((tree_id, Some(tree)));
            stack.extend(pending.into_iter().map(|sub| (sub, None)));
            continue;
        };
        for node in &mut tree.nodes {
            if node.kind == NodeKind::File {
                let content: Result<Vec<Id>> = node
                    .content
                    .par_iter()
                    .map(|blob| {
                        let loc = index.lookup(blob).ok_or_else(|| {
                            Error::corrupt(format!("blob {blob}"), "not in the source index")
                        })?;
                        writer.save(BlobKind::Data, &src.read_blob(&loc)?)
                    })
                    .collect();
                node.content = content?;
            }
            if let Some(sub) = node.subtree {
                node.subtree = Some(done[&sub]);
            }
        }
        let new = writer.save(BlobKind::Tree, &tree.to_bytes())?;
        done.insert(tree_id, new);
    }
    Ok(done[id])
}
