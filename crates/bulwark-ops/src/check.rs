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
use bulwark_repo::{BlobKind, Error, FileKind, Id, MasterIndex, NodeKind, Repository, Tree};
use rayon::prelude::*;
use serde::Serialize;

use crate::progress::{Progress, Unit};

#[derive(Clone, Copy, Debug)]
pub enum ReadData {
    None,
    All,
    /// A fraction in (0, 1]: a deterministic-per-run random subset of the packs.
    Subset(f64),
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
    let selected: Vec<&IndexPack> = match read_data {
        ReadData::None => Vec::new(),
        ReadData::All => indexed_packs.values().collect(),
        ReadData::Subset(f) => {
            // A fresh key per run: repeated subset checks cover different packs.
            let key: [u8; 32] = bulwark_repo::crypto::random_array();
            indexed_packs
                .values()
                .filter(|p| {
                    let h = blake3::keyed_hash(&key, &p.id.0);
                    let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
                    (x as f64 / u64::MAX as f64) < f
                })
                .collect()
        }
    };
    let selected: Vec<&IndexPack> = selected
        .into_iter()
        .filter(|p| !damaged.contains(&p.id))
        .collect();
    report.packs_read = selected.len();
    let counter = progress.start("check packs", Unit::Items, Some(selected.len() as u64));
    let pack_errors: Vec<(Id, String)> = selected
        .par_iter()
        .filter_map(|p| {
            let r = read_pack(repo, p);
            counter.inc(1);
            r.err().map(|e| (p.id, e))
        })
        .collect();
    drop(counter);
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

    /// Walk a tree. Trees already walked are skipped unless damage must be attributed to paths.
    fn tree(&self, id: &Id, path: &Path, snap: &str, first_visit_only: bool) {
        let fresh = self.checked_trees.lock().expect("trees").insert(*id);
        if !fresh && first_visit_only && self.damaged_blobs.is_empty() {
            return;
        }
        let tree: Tree = match self.index.lookup(id) {
            None => {
                return self.note(
                    snap,
                    path,
                    format!("tree {id} is referenced but not in the index"),
                );
            }
            Some(loc) if loc.blob.kind != BlobKind::Tree => {
                return self.note(snap, path, format!("tree {id} is indexed as data"));
            }
            Some(_) if self.damaged_blobs.contains(id) => {
                return self.note(snap, path, format!("tree {id} is in a damaged pack"));
            }
            Some(_) => match self.repo.load_tree(self.index, id) {
                Ok(t) => t,
                Err(e) => return self.note(snap, path, e.to_string()),
            },
        };
        tree.nodes.par_iter().for_each(|node| {
            let child: PathBuf = path.join(node.os_name().unwrap_or_default());
            match node.kind {
                NodeKind::Dir => match node.subtree {
                    Some(sub) => self.tree(&sub, &child, snap, first_visit_only),
                    None => self.note(
                        snap,
                        &child,
                        format!("directory {} has no subtree", child.display()),
                    ),
                },
                NodeKind::File => {
                    for blob in &node.content {
                        if !self.index.contains(blob) {
                            self.note(
                                snap,
                                &child,
                                format!("blob {blob} is referenced but not in the index"),
                            );
                        } else if self.damaged_blobs.contains(blob) {
                            self.note(snap, &child, format!("blob {blob} is in a damaged pack"));
                        }
                    }
                }
                _ => {}
            }
        });
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
