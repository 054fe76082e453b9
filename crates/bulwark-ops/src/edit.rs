//! Changing snapshots after the fact: `tag` (add, remove or set tags) and `rewrite` (leave out
//! files backed up by mistake, a secret say, and keep the rest).
//!
//! Snapshot objects are named by the hash of their bytes and never change, so a changed
//! snapshot is a new object with `original` naming the first snapshot of its line, as restic
//! records it. The new object is written before the old one is removed, so a prune running
//! meanwhile always sees the trees as used. Holds follow a retagged snapshot (a tag changes
//! nothing a hold protects); a held snapshot is never removed by `rewrite --forget`, since a
//! hold keeps the data as it was. A rewrite stores only new trees: file contents are shared.

use std::path::Path;

use bulwark_repo::holds::HoldRecord;
use bulwark_repo::lock::LockKind;
use bulwark_repo::writer::BlobWriter;
use bulwark_repo::{
    BlobKind, FileKind, Id, MasterIndex, NodeKind, Repository, Snapshot, SnapshotFilter, Tree,
};
use bulwark_source::Patterns;
use serde::Serialize;

use crate::error::{Error, Result};

/// The snapshots named by `specs`, or every snapshot `filter` takes when none is named.
pub fn chosen(
    repo: &Repository,
    specs: &[String],
    filter: &SnapshotFilter,
) -> Result<Vec<(Id, Snapshot)>> {
    if specs.is_empty() {
        let (snaps, bad) = repo.load_snapshots()?;
        if let Some(e) = bad.into_iter().next() {
            return Err(e.into());
        }
        return Ok(snaps
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect());
    }
    specs
        .iter()
        .map(|spec| Ok(repo.find_snapshot(spec, |s| filter.matches(s))?))
        .collect()
}

/// How `tag` changes each snapshot's tags: `set` replaces them, then `remove` and `add` apply.
#[derive(Default, Debug)]
pub struct TagChange {
    pub set: Option<Vec<String>>,
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

#[derive(Serialize, Debug, Default)]
pub struct Changed {
    pub old: String,
    pub new: String,
}

#[derive(Serialize, Debug, Default)]
pub struct TagReport {
    pub changed: Vec<Changed>,
    pub unchanged: usize,
}

pub fn tag(
    repo: &Repository,
    specs: &[String],
    filter: &SnapshotFilter,
    change: &TagChange,
) -> Result<TagReport> {
    let _lock = repo.lock(LockKind::Shared)?;
    let holds = repo.holds()?;
    let mut report = TagReport::default();
    for (id, snap) in chosen(repo, specs, filter)? {
        let mut tags = change.set.clone().unwrap_or_else(|| snap.tags.clone());
        tags.retain(|t| !change.remove.contains(t));
        for t in &change.add {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        if tags == snap.tags {
            report.unchanged += 1;
            continue;
        }
        let new = Snapshot {
            tags,
            original: Some(snap.original.unwrap_or(id)),
            ..snap
        };
        let new_id = repo.save_snapshot(&new)?;
        for (_, h) in holds.iter().filter(|(_, h)| h.snapshot == id) {
            repo.add_hold(&HoldRecord {
                snapshot: new_id,
                ..h.clone()
            })?;
        }
        repo.remove_holds(&id)?;
        repo.backend().remove(FileKind::Snapshot, &id.to_hex())?;
        report.changed.push(Changed {
            old: id.to_hex(),
            new: new_id.to_hex(),
        });
    }
    Ok(report)
}

pub struct RewriteOptions {
    pub exclude: Patterns,
    /// Remove each original once its rewrite is saved.
    pub forget: bool,
    /// Say what would be left out, write nothing.
    pub dry_run: bool,
}

#[derive(Serialize, Debug, Default)]
pub struct Rewritten {
    pub old: String,
    /// Absent in a dry run.
    pub new: Option<String>,
    /// Every path left out (a directory stands for what it held).
    pub removed: Vec<String>,
    pub files_removed: u64,
    pub bytes_removed: u64,
    pub forgotten: bool,
}

#[derive(Serialize, Debug, Default)]
pub struct RewriteReport {
    pub rewritten: Vec<Rewritten>,
    /// Snapshots the patterns left as they were.
    pub unchanged: usize,
}

pub fn rewrite(
    repo: &Repository,
    specs: &[String],
    filter: &SnapshotFilter,
    opts: &RewriteOptions,
) -> Result<RewriteReport> {
    if opts.exclude.is_empty() {
        return Err(Error::Invalid(
            "nothing to rewrite: give --exclude patterns".into(),
        ));
    }
    let lock = repo.lock(LockKind::Shared)?;
    let (index, _) = repo.load_index_for_writing()?;
    let chosen = chosen(repo, specs, filter)?;
    if opts.forget && !opts.dry_run {
        let now = chrono::Utc::now();
        let holds = repo.holds()?;
        if let Some((id, _)) = chosen.iter().find(|(id, _)| {
            holds
                .iter()
                .any(|(_, h)| h.snapshot == *id && h.is_active(now))
        }) {
            return Err(Error::Invalid(format!(
                "snapshot {} is held: a hold keeps its data as it is; rewrite without --forget, or remove the hold first",
                id.short()
            )));
        }
    }
    let mut report = RewriteReport::default();
    // New snapshots are saved once every new tree is stored and indexed, after the writer ends.
    let (pending, _) = BlobWriter::run_with(
        repo,
        &index,
        repo.backend().concurrency(),
        opts.dry_run,
        |writer| -> Result<Vec<(Id, Snapshot, Rewritten)>> {
            let mut pending = Vec::new();
            for (id, snap) in chosen {
                let mut done = Rewritten {
                    old: id.to_hex(),
                    ..Default::default()
                };
                let tree = prune_tree(
                    repo,
                    &index,
                    writer,
                    &snap.tree,
                    Path::new("/"),
                    &opts.exclude,
                    &mut done,
                )?;
                if tree == snap.tree {
                    report.unchanged += 1;
                    continue;
                }
                let mut summary = snap.summary.clone();
                if let Some(s) = &mut summary {
                    s.total_files = s.total_files.saturating_sub(done.files_removed);
                    s.total_bytes = s.total_bytes.saturating_sub(done.bytes_removed);
                }
                let new = Snapshot {
                    tree,
                    summary,
                    original: Some(snap.original.unwrap_or(id)),
                    ..snap
                };
                pending.push((id, new, done));
            }
            Ok(pending)
        },
    )?;
    for (id, new, mut done) in pending {
        if !opts.dry_run {
            lock.ensure_fresh()?;
            done.new = Some(repo.save_snapshot(&new)?.to_hex());
            if opts.forget {
                repo.backend().remove(FileKind::Snapshot, &id.to_hex())?;
                done.forgotten = true;
            }
        }
        report.rewritten.push(done);
    }
    Ok(report)
}

/// `tree` without what `exclude` matches; the id of the tree that remains.
fn prune_tree(
    repo: &Repository,
    index: &MasterIndex,
    writer: &BlobWriter,
    id: &Id,
    path: &Path,
    exclude: &Patterns,
    done: &mut Rewritten,
) -> Result<Id> {
    let tree = repo.load_tree(index, id)?;
    let mut kept = Vec::with_capacity(tree.nodes.len());
    let mut changed = false;
    for mut node in tree.nodes {
        let child = path.join(node.os_name()?);
        if exclude.matches(&child) {
            changed = true;
            done.removed.push(child.display().to_string());
            count_removed(repo, index, &node, done)?;
            continue;
        }
        if node.kind == NodeKind::Dir
            && let Some(sub) = node.subtree
        {
            let new = prune_tree(repo, index, writer, &sub, &child, exclude, done)?;
            if new != sub {
                node.subtree = Some(new);
                changed = true;
            }
        }
        kept.push(node);
    }
    if !changed {
        return Ok(*id);
    }
    Ok(writer.save(BlobKind::Tree, &Tree { nodes: kept }.to_bytes())?)
}

fn count_removed(
    repo: &Repository,
    index: &MasterIndex,
    node: &bulwark_repo::Node,
    done: &mut Rewritten,
) -> Result<()> {
    match (node.kind, node.subtree) {
        (NodeKind::File, _) => {
            done.files_removed += 1;
            done.bytes_removed += node.size;
        }
        (NodeKind::Dir, Some(sub)) => {
            for n in repo.load_tree(index, &sub)?.nodes {
                count_removed(repo, index, &n, done)?;
            }
        }
        _ => {}
    }
    Ok(())
}
