//! `check`: the repository's structure (every snapshot's trees complete, every referenced blob
//! indexed, every index entry in an existing pack of the right size) and, with `read_data`, every
//! pack's hash, directory and blobs; the chain of archived WAL of every base backup (gaps), and
//! with `read_data` the WAL files too. On damage it names the packs, the snapshots and the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bulwark_repo::id::IdSet;
use bulwark_repo::index::IndexPack;
use bulwark_repo::lock::LockKind;
use bulwark_repo::pack::{self, PACK_PREFIX_LEN};
use bulwark_repo::tree::MAX_DEPTH;
use bulwark_repo::{BlobKind, Error, FileKind, Id, MasterIndex, NodeKind, Repository, Tree};
use rayon::prelude::*;
use serde::Serialize;

use crate::progress::{Progress, Unit};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// A fraction in (0, 1]: ⌈n·p⌉ packs chosen at random (at least one), different each run.
    Subset(f64),
    /// Group `n` of `of` (restic's `n/t`): the packs whose id falls in that group, so running
    /// 1/5 to 5/5 reads every pack exactly once.
    Group {
        n: u64,
        of: u64,
    },
    /// Packs chosen at random until this many bytes (at least one pack).
    Bytes(u64),
}

impl ReadData {
    /// restic's forms of `--read-data-subset`: `10%`, `1/5`, `50M` (as `bulwark_policy::parse_size`).
    pub fn parse_subset(s: &str) -> std::result::Result<ReadData, String> {
        let bad = || {
            format!(
                "bad --read-data-subset '{s}': give a percentage (10%), a group (1/5) or a size (50M)"
            )
        };
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(bad());
            }
            return Ok(ReadData::Subset(v / 100.0));
        }
        if let Some((n, of)) = s.split_once('/') {
            let (n, of): (u64, u64) = (
                n.trim().parse().map_err(|_| bad())?,
                of.trim().parse().map_err(|_| bad())?,
            );
            if n == 0 || of == 0 || n > of {
                return Err(bad());
            }
            return Ok(ReadData::Group { n, of });
        }
        match bulwark_policy::parse_size(s) {
            Ok(0) | Err(_) => Err(bad()),
            Ok(n) => Ok(ReadData::Bytes(n)),
        }
    }
}

/// The packs a subset reads: random ones in a fresh order per run, or one fixed group.
fn select_subset(packs: Vec<&IndexPack>, how: ReadData) -> Vec<&IndexPack> {
    let word = |key: &[u8; 32], p: &IndexPack| {
        let h = blake3::keyed_hash(key, &p.id.0);
        u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
    };
    match how {
        ReadData::None => Vec::new(),
        ReadData::All => packs,
        ReadData::Group { n, of } => packs
            .into_iter()
            .filter(|p| word(&[0; 32], p) % of == n - 1)
            .collect(),
        ReadData::Subset(_) | ReadData::Bytes(_) => {
            // A fresh key per run: repeated subset checks cover different packs.
            let key: [u8; 32] = bulwark_repo::crypto::random_array();
            let mut shuffled = packs;
            shuffled.sort_by_cached_key(|p| word(&key, p));
            let take = match how {
                ReadData::Subset(f) => (shuffled.len() as f64 * f).ceil() as usize,
                ReadData::Bytes(limit) => {
                    let mut total = 0u64;
                    shuffled
                        .iter()
                        .take_while(|p| {
                            total += p.size;
                            total <= limit
                        })
                        .count()
                }
                _ => unreachable!("handled above"),
            };
            shuffled.truncate(take.max(1));
            shuffled
        }
    }
}

#[derive(Serialize, Default, Debug)]
pub struct CheckReport {
    pub ok: bool,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub snapshots: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub blobs: usize,
    pub damaged_packs: Vec<String>,
    /// `snapshot-id:/path` of every file or tree that cannot be restored intact.
    pub affected: Vec<String>,
    /// Archived PostgreSQL WAL files (their chains are checked; read back with the data).
    pub wal_files: usize,
}

pub fn check(
    repo: &Repository,
    read_data: ReadData,
    progress: &dyn Progress,
) -> crate::Result<CheckReport> {
    let _lock = repo.lock(LockKind::Shared)?;
    let mut report = CheckReport::default();

    // Index files: damaged ones are errors, the rest still build the index.
    let mut index = MasterIndex::default();
    let mut indexed_packs: BTreeMap<Id, IndexPack> = BTreeMap::new();
    for name in repo.list_index_files()? {
        match repo.read_index_file(&name) {
            Ok(file) => {
                for pack in file.packs {
                    index.add_pack(&pack);
                    indexed_packs.insert(pack.id, pack);
                }
            }
            Err(e) => report.errors.push(format!("{e}")),
        }
    }
    index.finish();
    report.blobs = index.blob_count();

    // Packs: every indexed pack must exist with the size the index records.
    let stored: BTreeMap<Id, u64> = repo
        .backend()
        .list(FileKind::Pack)?
        .into_iter()
        .filter_map(|(name, size)| name.parse().ok().map(|id| (id, size)))
        .collect();
    report.packs = stored.len();
    let mut damaged: BTreeSet<Id> = BTreeSet::new();
    for (id, pack) in &indexed_packs {
        match stored.get(id) {
            None => {
                report.errors.push(format!(
                    "pack {id} is in the index but missing from storage"
                ));
                damaged.insert(*id);
            }
            Some(&size) if size != pack.size => {
                report.errors.push(format!(
                    "pack {id} is {size} bytes, the index says {} (truncated?)",
                    pack.size
                ));
                damaged.insert(*id);
            }
            Some(_) => {}
        }
    }
    let condemned = repo.condemned_packs()?;
    let unindexed = stored
        .keys()
        .filter(|id| !indexed_packs.contains_key(id) && !condemned.contains(id))
        .count();
    if unindexed > 0 {
        report.warnings.push(format!(
            "{unindexed} packs are not in the index (left by an interrupted or running backup); `bulwark repair index` adds them"
        ));
    }

    // Data: hash, directory and every blob of each pack selected.
    let selected = select_subset(indexed_packs.values().collect(), read_data);
    let selected: Vec<&IndexPack> = selected
        .into_iter()
        .filter(|p| !damaged.contains(&p.id))
        .collect();
    report.packs_read = selected.len();
    let counter = progress.start("check packs", Unit::Items, Some(selected.len() as u64));
    let pack_errors: Vec<(Id, String)> = selected
        .par_iter()
        .filter_map(|p| {
            if progress.should_stop() {
                return None;
            }
            let r = read_pack(repo, p);
            counter.inc(1);
            r.err().map(|e| (p.id, e))
        })
        .collect();
    drop(counter);
    if progress.should_stop() {
        return Err(crate::Error::Interrupted);
    }
    for (id, e) in pack_errors {
        report.errors.push(format!("pack {id}: {e}"));
        damaged.insert(id);
    }
    let damaged_blobs: IdSet = indexed_packs
        .values()
        .filter(|p| damaged.contains(&p.id))
        .flat_map(|p| p.blobs.iter().map(|b| b.id))
        .collect();

    // Snapshots: every tree loads, every referenced blob is indexed and not in a damaged pack.
    let (snapshots, bad) = repo.load_snapshots()?;
    report.snapshots = snapshots.len();
    report.errors.extend(bad.iter().map(|e| e.to_string()));
    let walker = Walker {
        repo,
        index: &index,
        damaged_blobs: &damaged_blobs,
        checked_trees: Mutex::new(IdSet::default()),
        problems: Mutex::new(BTreeSet::new()),
        affected: Mutex::new(Vec::new()),
    };
    for (id, snap) in &snapshots {
        walker.tree(&snap.tree, Path::new("/"), &id.short(), true);
    }
    report
        .errors
        .extend(walker.problems.into_inner().expect("problems"));
    let mut affected = walker.affected.into_inner().expect("affected");
    affected.sort();
    affected.dedup();
    report.affected = affected;
    report.damaged_packs = damaged.iter().map(Id::to_hex).collect();
    let wal_read = match read_data {
        ReadData::None => crate::wal::WalRead::None,
        ReadData::All => crate::wal::WalRead::All,
        ReadData::Subset(f) => crate::wal::WalRead::Subset(f),
        // A group's share of the WAL as of the packs (the sample differs, the share does not).
        ReadData::Group { of, .. } => crate::wal::WalRead::Subset(1.0 / of.max(1) as f64),
        // A byte budget is spent on packs.
        ReadData::Bytes(_) => crate::wal::WalRead::None,
    };
    report.wal_files = crate::wal::check_chains(
        repo,
        &snapshots,
        wal_read,
        &mut report.errors,
        &mut report.warnings,
    )?;
    report.ok = report.errors.is_empty();
    Ok(report)
}

/// Read a whole pack and verify it end to end; the error says what is wrong.
fn read_pack(repo: &Repository, pack: &IndexPack) -> std::result::Result<(), String> {
    let data = repo
        .backend()
        .read(FileKind::Pack, &pack.id.to_hex())
        .map_err(|e| e.to_string())?;
    if Id::of_stored(&data) != pack.id {
        return Err("content does not match its name (damaged in storage)".into());
    }
    let salt = pack::salt_of(&pack.id, &data).map_err(|e| e.to_string())?;
    let dir = pack::parse_directory(repo.key(), &pack.id, &salt, data.len() as u64, &data)
        .map_err(|e| e.to_string())?;
    if dir != pack.blobs {
        return Err("its directory disagrees with the index; run `bulwark repair index`".into());
    }
    for b in &dir {
        let range = b.offset as usize..(b.offset + b.stored_len) as usize;
        if range.start < PACK_PREFIX_LEN {
            return Err(format!("blob {} overlaps the pack header", b.id));
        }
        b.open(repo.key(), &salt, &data[range])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

struct Walker<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    damaged_blobs: &'a IdSet,
    checked_trees: Mutex<IdSet>,
    problems: Mutex<BTreeSet<String>>,
    affected: Mutex<Vec<String>>,
}

impl Walker<'_> {
    fn note(&self, snap: &str, path: &Path, problem: String) {
        self.problems.lock().expect("problems").insert(problem);
        self.affected
            .lock()
            .expect("affected")
            .push(format!("{snap}:{}", path.display()));
    }

    /// Walk a tree and everything below it, level by level (each level in parallel) rather than
    /// by recursion: a crafted chain of directories must meet the depth limit, not the end of a
    /// thread's stack. Trees already walked are skipped unless damage must be attributed to paths.
    fn tree(&self, id: &Id, path: &Path, snap: &str, first_visit_only: bool) {
        let mut level = vec![(*id, path.to_path_buf())];
        let mut depth = 0;
        while !level.is_empty() {
            if depth > MAX_DEPTH {
                return self.note(
                    snap,
                    &level[0].1,
                    format!(
                        "snapshot {snap}: directories nest more than {MAX_DEPTH} deep, deeper than any path can be"
                    ),
                );
            }
            level = level
                .par_iter()
                .flat_map_iter(|(id, path)| self.one_tree(id, path, snap, first_visit_only))
                .collect();
            depth += 1;
        }
    }

    /// Check one tree: its names (one safe path component each, none twice), its files'
    /// content and sizes; returns its subtrees with their paths.
    fn one_tree(
        &self,
        id: &Id,
        path: &Path,
        snap: &str,
        first_visit_only: bool,
    ) -> Vec<(Id, PathBuf)> {
        let fresh = self.checked_trees.lock().expect("trees").insert(*id);
        if !fresh && first_visit_only && self.damaged_blobs.is_empty() {
            return Vec::new();
        }
        let loaded = match self.index.lookup(id) {
            None => Err(format!("tree {id} is referenced but not in the index")),
            Some(loc) if loc.blob.kind != BlobKind::Tree => {
                Err(format!("tree {id} is indexed as data"))
            }
            Some(_) if self.damaged_blobs.contains(id) => {
                Err(format!("tree {id} is in a damaged pack"))
            }
            Some(_) => self
                .repo
                .load_tree(self.index, id)
                .map_err(|e| e.to_string()),
        };
        let tree: Tree = match loaded {
            Ok(t) => t,
            Err(problem) => {
                self.note(snap, path, problem);
                return Vec::new();
            }
        };
        // What restore refuses, check reports: names that are not one plain component, or that
        // a directory holds twice (a symlink and a directory called alike could steer writes).
        let mut seen = std::collections::HashSet::new();
        for node in &tree.nodes {
            if !node.has_safe_name() {
                self.note(
                    snap,
                    path,
                    format!("unsafe file name {:?} in {}", node.name, path.display()),
                );
            } else if let Ok(name) = node.os_name()
                && !seen.insert(name)
            {
                self.note(
                    snap,
                    path,
                    format!(
                        "the name {:?} appears twice in {}",
                        node.name,
                        path.display()
                    ),
                );
            }
        }
        tree.nodes
            .par_iter()
            .filter_map(|node| {
                let child: PathBuf = path.join(node.os_name().unwrap_or_default());
                match node.kind {
                    NodeKind::Dir => match node.subtree {
                        Some(sub) => return Some((sub, child)),
                        None => self.note(
                            snap,
                            &child,
                            format!("directory {} has no subtree", child.display()),
                        ),
                    },
                    NodeKind::File => self.file(node, &child, snap),
                    _ => {}
                }
                None
            })
            .collect()
    }

    /// Every blob of a file indexed and undamaged, and adding up to the file's size.
    fn file(&self, node: &bulwark_repo::Node, path: &Path, snap: &str) {
        let mut content = Some(0u64);
        for blob in &node.content {
            match self.index.lookup(blob) {
                None => {
                    content = None;
                    self.note(
                        snap,
                        path,
                        format!("blob {blob} is referenced but not in the index"),
                    );
                }
                Some(loc) => {
                    content = content.map(|c| c + loc.blob.raw_len as u64);
                    if self.damaged_blobs.contains(blob) {
                        self.note(snap, path, format!("blob {blob} is in a damaged pack"));
                    }
                }
            }
        }
        if let Some(content) = content
            && content != node.size
        {
            self.note(
                snap,
                path,
                format!(
                    "{} claims {} bytes but its content holds {content}",
                    path.display(),
                    node.size
                ),
            );
        }
    }
}

impl From<Error> for CheckReport {
    fn from(e: Error) -> Self {
        CheckReport {
            ok: false,
            errors: vec![e.to_string()],
            ..Default::default()
        }
    }
}
