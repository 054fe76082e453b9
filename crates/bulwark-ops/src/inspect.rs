//! Looking into snapshots without restoring them: `diff` (what changed between two), `find`
//! (which snapshots hold a path) and `stats` (how large they are restored, and in storage).
//! Identical subtrees have identical ids, so a diff skips them unread and a walk over many
//! snapshots reads each (tree, path) once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bulwark_repo::id::IdSet;
use bulwark_repo::lock::LockKind;
use bulwark_repo::transfer::collect_blobs;
use bulwark_repo::{Id, MasterIndex, Node, NodeKind, Repository, SnapshotFilter, Tree};
use bulwark_source::Patterns;
use chrono::DateTime;
use serde::Serialize;

use crate::edit::chosen;
use crate::error::Result;

/// One difference: `+` added, `-` removed, `M` content changed, `T` type changed, `U` only
/// metadata (mode, owner, times, attributes) changed.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub change: char,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: NodeKind,
}

#[derive(Serialize, Debug, Default)]
pub struct DiffStats {
    pub files_added: u64,
    pub files_removed: u64,
    pub files_changed: u64,
    pub dirs_added: u64,
    pub dirs_removed: u64,
    pub others_added: u64,
    pub others_removed: u64,
    pub metadata_changed: u64,
    pub bytes_added: u64,
    pub bytes_removed: u64,
}

#[derive(Serialize, Debug, Default)]
pub struct DiffReport {
    pub from: String,
    pub to: String,
    pub changes: Vec<Change>,
    pub stats: DiffStats,
}

pub fn diff(repo: &Repository, from: &str, to: &str) -> Result<DiffReport> {
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let (a_id, a) = repo.find_snapshot(from, |_| true)?;
    let (b_id, b) = repo.find_snapshot(to, |_| true)?;
    let mut d = Differ {
        repo,
        index: &index,
        report: DiffReport {
            from: a_id.to_hex(),
            to: b_id.to_hex(),
            ..Default::default()
        },
    };
    d.trees(Some(&a.tree), Some(&b.tree), Path::new("/"))?;
    Ok(d.report)
}

struct Differ<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    report: DiffReport,
}

impl Differ<'_> {
    fn load(&self, id: Option<&Id>) -> Result<Tree> {
        Ok(match id {
            Some(id) => self.repo.load_tree(self.index, id)?,
            None => Tree::default(),
        })
    }

    fn trees(&mut self, a: Option<&Id>, b: Option<&Id>, path: &Path) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let (ta, tb) = (self.load(a)?, self.load(b)?);
        let mut names: BTreeMap<Vec<u8>, (Option<&Node>, Option<&Node>)> = BTreeMap::new();
        use std::os::unix::ffi::OsStringExt;
        for n in &ta.nodes {
            names.entry(n.os_name()?.into_vec()).or_default().0 = Some(n);
        }
        for n in &tb.nodes {
            names.entry(n.os_name()?.into_vec()).or_default().1 = Some(n);
        }
        for (name, pair) in names {
            let child = path.join(std::ffi::OsString::from_vec(name));
            match pair {
                (Some(old), None) => self.one_side('-', old, &child)?,
                (None, Some(new)) => self.one_side('+', new, &child)?,
                (Some(old), Some(new)) if old.kind != new.kind => {
                    self.note('T', new, &child);
                    self.count('-', old);
                    self.count('+', new);
                }
                (Some(old), Some(new)) => {
                    if old.kind == NodeKind::File && old.content != new.content {
                        self.note('M', new, &child);
                        self.report.stats.files_changed += 1;
                        self.report.stats.bytes_removed += old.size;
                        self.report.stats.bytes_added += new.size;
                    } else if !same_metadata(old, new) {
                        self.note('U', new, &child);
                        self.report.stats.metadata_changed += 1;
                    }
                    if old.kind == NodeKind::Dir {
                        self.trees(old.subtree.as_ref(), new.subtree.as_ref(), &child)?;
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    /// An entry only one side has, and everything below it.
    fn one_side(&mut self, change: char, node: &Node, path: &Path) -> Result<()> {
        self.note(change, node, path);
        self.count(change, node);
        if node.kind == NodeKind::Dir && node.subtree.is_some() {
            let sub = self.load(node.subtree.as_ref())?;
            for n in &sub.nodes {
                self.one_side(change, n, &path.join(n.os_name()?))?;
            }
        }
        Ok(())
    }

    fn note(&mut self, change: char, node: &Node, path: &Path) {
        self.report.changes.push(Change {
            change,
            path: path.display().to_string(),
            kind: node.kind,
        });
    }

    fn count(&mut self, change: char, node: &Node) {
        let s = &mut self.report.stats;
        let added = change == '+';
        match node.kind {
            NodeKind::File if added => {
                s.files_added += 1;
                s.bytes_added += node.size;
            }
            NodeKind::File => {
                s.files_removed += 1;
                s.bytes_removed += node.size;
            }
            NodeKind::Dir if added => s.dirs_added += 1,
            NodeKind::Dir => s.dirs_removed += 1,
            _ if added => s.others_added += 1,
            _ => s.others_removed += 1,
        }
    }
}

/// Whether two nodes of the same kind differ only in what identifies them in one backup
/// (inode, device, ctime, link count) and not in what a restore brings back.
fn same_metadata(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime_ns == b.mtime_ns
        && a.size == b.size
        && a.xattrs == b.xattrs
        && a.link_target == b.link_target
        && a.link_target_raw == b.link_target_raw
        && a.rdev == b.rdev
}

#[derive(Serialize, Debug, Clone)]
pub struct Found {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    pub size: u64,
    pub mtime: String,
}

#[derive(Serialize, Debug)]
pub struct FoundIn {
    pub snapshot: String,
    pub time: String,
    pub hostname: String,
    pub matches: Vec<Found>,
}

/// Every entry whose path matches `patterns` (the syntax of `--exclude`), per snapshot that
/// has any: those named, or every snapshot `filter` takes.
pub fn find(
    repo: &Repository,
    patterns: &Patterns,
    specs: &[String],
    filter: &SnapshotFilter,
) -> Result<Vec<FoundIn>> {
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let mut memo: HashMap<(Id, PathBuf), Vec<Found>> = HashMap::new();
    let mut out = Vec::new();
    for (id, snap) in chosen(repo, specs, filter)? {
        let matches = find_in(
            repo,
            &index,
            patterns,
            &snap.tree,
            Path::new("/"),
            &mut memo,
        )?;
        if !matches.is_empty() {
            out.push(FoundIn {
                snapshot: id.to_hex(),
                time: snap.time.to_rfc3339(),
                hostname: snap.hostname.clone(),
                matches,
            });
        }
    }
    Ok(out)
}

fn find_in(
    repo: &Repository,
    index: &MasterIndex,
    patterns: &Patterns,
    tree: &Id,
    path: &Path,
    memo: &mut HashMap<(Id, PathBuf), Vec<Found>>,
) -> Result<Vec<Found>> {
    let key = (*tree, path.to_path_buf());
    if let Some(hit) = memo.get(&key) {
        return Ok(hit.clone());
    }
    let mut found = Vec::new();
    for node in repo.load_tree(index, tree)?.nodes {
        let child = path.join(node.os_name()?);
        if patterns.matches(&child) {
            found.push(Found {
                path: child.display().to_string(),
                kind: node.kind,
                size: node.size,
                mtime: DateTime::from_timestamp_nanos(node.mtime_ns).to_rfc3339(),
            });
        }
        if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
            found.extend(find_in(repo, index, patterns, &sub, &child, memo)?);
        }
    }
    memo.insert(key, found.clone());
    Ok(found)
}

/// `stats --mode`: restic's two main measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsMode {
    /// What restoring the snapshots would write: files and their bytes, each snapshot counted.
    RestoreSize,
    /// What the snapshots occupy in storage: their distinct blobs, before and after compression.
    RawData,
}

#[derive(Serialize, Debug, Default)]
pub struct StatsReport {
    pub mode: String,
    pub snapshots: usize,
    /// restore-size: files (each name of a hard link counted) and directories.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dirs: Option<u64>,
    /// restore-size: the bytes a restore writes; raw-data: the distinct blobs' bytes.
    pub total_size: u64,
    /// raw-data: how many distinct blobs, and their size as stored (compressed, encrypted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<u64>,
}

pub fn stats(
    repo: &Repository,
    specs: &[String],
    filter: &SnapshotFilter,
    mode: StatsMode,
) -> Result<StatsReport> {
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let chosen = chosen(repo, specs, filter)?;
    let mut report = StatsReport {
        snapshots: chosen.len(),
        ..Default::default()
    };
    match mode {
        StatsMode::RestoreSize => {
            report.mode = "restore-size".into();
            let mut memo: HashMap<Id, (u64, u64, u64)> = HashMap::new();
            let (mut files, mut dirs) = (0, 0);
            for (_, snap) in &chosen {
                let (f, d, b) = restore_size(repo, &index, &snap.tree, &mut memo)?;
                files += f;
                dirs += d;
                report.total_size += b;
            }
            (report.files, report.dirs) = (Some(files), Some(dirs));
        }
        StatsMode::RawData => {
            report.mode = "raw-data".into();
            let mut blobs = IdSet::default();
            for (_, snap) in &chosen {
                collect_blobs(repo, &index, &snap.tree, &mut blobs)?;
            }
            let mut stored = 0u64;
            for id in &blobs {
                if let Some(loc) = index.lookup(id) {
                    report.total_size += loc.blob.raw_len as u64;
                    stored += loc.blob.stored_len as u64;
                }
            }
            report.blobs = Some(blobs.len() as u64);
            report.stored_size = Some(stored);
        }
    }
    Ok(report)
}

/// (files, directories, bytes) below a tree.
fn restore_size(
    repo: &Repository,
    index: &MasterIndex,
    tree: &Id,
    memo: &mut HashMap<Id, (u64, u64, u64)>,
) -> Result<(u64, u64, u64)> {
    if let Some(&hit) = memo.get(tree) {
        return Ok(hit);
    }
    let mut total = (0, 0, 0);
    for node in repo.load_tree(index, tree)?.nodes {
        match (node.kind, node.subtree) {
            (NodeKind::File, _) => {
                total.0 += 1;
                total.2 += node.size;
            }
            (NodeKind::Dir, Some(sub)) => {
                let (f, d, b) = restore_size(repo, index, &sub, memo)?;
                total = (total.0 + f, total.1 + d + 1, total.2 + b);
            }
            _ => {}
        }
    }
    memo.insert(*tree, total);
    Ok(total)
}
