//! `repair index`: rebuild the index from the packs' own directories, then retire the old index
//! files. The new index is stored before any old one is removed, so a crash at any point leaves a
//! usable repository.

use bulwark_repo::index::IndexFile;
use bulwark_repo::lock::LockKind;
use bulwark_repo::{FileKind, Id, Repository};
use rayon::prelude::*;
use serde::Serialize;

use crate::progress::{Progress, Unit};

#[derive(Serialize, Debug, Default)]
pub struct RepairReport {
    pub packs_indexed: usize,
    pub blobs_indexed: usize,
    pub index_files_removed: usize,
    /// Packs whose directory could not be read; their blobs are not indexed.
    pub unreadable_packs: Vec<String>,
}

pub fn repair_index(repo: &Repository, progress: &dyn Progress) -> crate::Result<RepairReport> {
    let _lock = repo.lock(LockKind::Exclusive)?;
    let old = repo.list_index_files()?;
    let packs = repo.backend().list(FileKind::Pack)?;
    let counter = progress.start("read packs", Unit::Items, Some(packs.len() as u64));
    let results: Vec<_> = packs
        .par_iter()
        .filter_map(|(name, size)| {
            let id: Id = name.parse().ok()?;
            let r = repo.read_pack_directory(&id, *size);
            counter.inc(1);
            Some(r.map_err(|e| format!("{name}: {e}")))
        })
        .collect();
    drop(counter);
    let mut report = RepairReport::default();
    let mut file = IndexFile {
        packs: Vec::new(),
        supersedes: old.iter().filter_map(|n| n.parse().ok()).collect(),
    };
    for r in results {
        match r {
            Ok(pack) => {
                report.blobs_indexed += pack.blobs.len();
                file.packs.push(pack);
            }
            Err(e) => report.unreadable_packs.push(e),
        }
    }
    report.packs_indexed = file.packs.len();
    let new = repo.save_index(&file)?.to_hex();
    for name in old.iter().filter(|n| **n != new) {
        repo.backend().remove(FileKind::Index, name)?;
        report.index_files_removed += 1;
    }
    Ok(report)
}
