//! Moving packs between repositories and walking what snapshots reach: the building blocks that
//! off-site copies, healing from a replica and prune share.
//!
//! A pack is named by the BLAKE3 hash of its stored bytes, so a pack that moves verbatim is proved
//! intact on both sides without a key: [`fetch_pack`] hashes what it read before it leaves, and
//! [`land_pack`] reads back and hashes what landed. A pack's own encrypted directory gives its
//! index entry, so an index can always be rebuilt from what landed.

use std::collections::HashSet;

use bytes::Bytes;

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::{Id, IdSet};
use crate::index::{IndexPack, MasterIndex};
use crate::pack;
use crate::repository::Repository;

/// Move one pack verbatim, checking its hash on both sides; returns its index entry.
pub fn copy_pack(src: &Repository, dst: &Repository, id: &Id, size: u64) -> Result<IndexPack> {
    let (data, entry) = fetch_pack(src, id, size)?;
    land_pack(dst, id, data)?;
    Ok(entry)
}

/// Read a pack and prove it is the one its name says, with a readable directory.
pub fn fetch_pack(src: &Repository, id: &Id, size: u64) -> Result<(Bytes, IndexPack)> {
    let name = id.to_hex();
    let data = src.backend().read(FileKind::Pack, &name)?;
    if Id::of_stored(&data) != *id || data.len() as u64 != size {
        return Err(Error::corrupt(
            format!("pack {name} in {}", src.backend().location()),
            "content does not match its name; run `bulwark check --read-data` there",
        ));
    }
    let salt = pack::salt_of(id, &data)?;
    let blobs = pack::parse_directory(src.key(), id, &salt, size, &data)?;
    Ok((
        data,
        IndexPack {
            id: *id,
            salt,
            size,
            blobs,
        },
    ))
}

/// Store a verified pack and read it back to prove it landed intact.
pub fn land_pack(dst: &Repository, id: &Id, data: Bytes) -> Result<()> {
    let name = id.to_hex();
    dst.backend().create(FileKind::Pack, &name, data)?;
    let landed = dst.backend().read(FileKind::Pack, &name)?;
    if Id::of_stored(&landed) != *id {
        return Err(Error::corrupt(
            format!("pack {name} in {}", dst.backend().location()),
            "differs after upload",
        ));
    }
    Ok(())
}

/// Every blob (trees and data) a tree reaches, added to `out`.
pub fn collect_blobs(
    repo: &Repository,
    index: &MasterIndex,
    tree: &Id,
    out: &mut IdSet,
) -> Result<()> {
    // Trees wait on a stack of their own, not on the thread's: a crafted chain of 100,000
    // directories is just 100,000 trees.
    let mut pending = vec![*tree];
    while let Some(tree) = pending.pop() {
        if !out.insert(tree) {
            continue;
        }
        for node in repo.load_tree(index, &tree)?.nodes {
            out.extend(node.content.iter().copied());
            pending.extend(node.subtree);
        }
    }
    Ok(())
}

/// The snapshot meta key under which a re-encrypted copy names the snapshot it came from.
pub const COPIED_FROM: &str = "copied_from";

/// The source snapshot ids that re-encrypted copies in `repo` came from: such a copy has a new
/// id and remembers its origin, so copies stay idempotent.
pub fn copied_origins(repo: &Repository) -> Result<HashSet<String>> {
    let (snapshots, _) = repo.load_snapshots()?;
    Ok(snapshots
        .iter()
        .filter_map(|(_, s)| {
            s.meta
                .get(COPIED_FROM)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .collect())
}
