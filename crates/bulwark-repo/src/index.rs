//! The index: which pack holds each blob. Stored as encrypted index files; held in memory as one
//! sorted array of fixed-size entries (48 bytes each) plus a table of packs, so a repository of
//! 100 million blobs needs about 5 GB, not a heap object per blob.

use crate::crypto::{MasterKey, SALT_LEN};
use crate::error::{Error, Result};
use crate::id::{Id, IdMap, IdSet};
use crate::pack::{BlobKind, PackedBlob};

const MAGIC: &[u8; 4] = b"BWI1";

/// One pack's contribution to an index file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPack {
    pub id: Id,
    pub salt: [u8; SALT_LEN],
    pub size: u64,
    pub blobs: Vec<PackedBlob>,
}

/// The contents of one index file. `supersedes` names index files this one replaces (written by
/// index rewrites, which delete those only after this one is stored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
    pub supersedes: Vec<Id>,
}

impl IndexFile {
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        let blobs: usize = self.packs.iter().map(|p| p.blobs.len()).sum();
        let mut out =
            Vec::with_capacity(16 + self.packs.len() * 76 + blobs * PackedBlob::ENCODED_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for id in &self.supersedes {
            out.extend_from_slice(&id.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for pack in &self.packs {
            out.extend_from_slice(&pack.id.0);
            out.extend_from_slice(&pack.salt);
            out.extend_from_slice(&pack.size.to_le_bytes());
            out.extend_from_slice(&(pack.blobs.len() as u32).to_le_bytes());
            for blob in &pack.blobs {
                blob.encode(&mut out);
            }
        }
        let compressed = zstd::bulk::compress(&out, 3).expect("in-memory compression");
        key.seal_object(&compressed)
    }

    pub fn decode(key: &MasterKey, name: &str, stored: &[u8]) -> Result<IndexFile> {
        let what = format!("index/{name}");
        let compressed = key.open_object(&what, stored)?;
        let plain = decompress_bounded(&compressed)
            .map_err(|e| Error::corrupt(&what, format!("decompression: {e}")))?;
        let mut r = Reader {
            buf: &plain,
            what: &what,
        };
        if r.take(4)? != MAGIC {
            return Err(Error::corrupt(&what, "unknown index format"));
        }
        let mut file = IndexFile::default();
        for _ in 0..r.u32()? {
            file.supersedes.push(r.id()?);
        }
        for _ in 0..r.u32()? {
            let id = r.id()?;
            let salt = r.take(SALT_LEN)?.try_into().expect("length taken");
            let size = u64::from_le_bytes(r.take(8)?.try_into().expect("length taken"));
            let count = r.u32()? as usize;
            let raw = r.take(
                count
                    .checked_mul(PackedBlob::ENCODED_LEN)
                    .ok_or_else(|| Error::corrupt(&what, "absurd count"))?,
            )?;
            let blobs: Vec<PackedBlob> = raw
                .chunks_exact(PackedBlob::ENCODED_LEN)
                .map(PackedBlob::decode)
                .collect();
            if blobs.iter().any(|b| b.raw_len > MAX_BLOB_LEN) {
                return Err(Error::corrupt(
                    &what,
                    "an entry claims a blob larger than any blob can be",
                ));
            }
            file.packs.push(IndexPack {
                id,
                salt,
                size,
                blobs,
            });
        }
        if !r.buf.is_empty() {
            return Err(Error::corrupt(&what, "trailing bytes"));
        }
        Ok(file)
    }
}

/// An index file is mostly random ids and salts, which do not compress: its plaintext is never
/// more than a few times its compressed size. A frame that inflates far beyond that (a
/// decompression bomb from a host holding the key) is refused before it exhausts memory.
const MAX_INDEX_EXPANSION: u64 = 8;
const MIN_INDEX_LIMIT: u64 = 64 * 1024;

fn decompress_bounded(compressed: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let limit = (compressed.len() as u64 * MAX_INDEX_EXPANSION).max(MIN_INDEX_LIMIT);
    let mut plain = Vec::new();
    zstd::stream::read::Decoder::new(compressed)?
        .take(limit + 1)
        .read_to_end(&mut plain)?;
    if plain.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "inflates beyond {limit} bytes from {} stored",
            compressed.len()
        )));
    }
    Ok(plain)
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::corrupt(self.what, "truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn id(&mut self) -> Result<Id> {
        Ok(Id(self.take(32)?.try_into().expect("32 bytes")))
    }
}

/// A pack as the in-memory index knows it.
#[derive(Clone, Copy, Debug)]
pub struct PackInfo {
    pub id: Id,
    pub salt: [u8; SALT_LEN],
    pub size: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    id: Id,
    pack: u32,
    offset: u32,
    stored_len: u32,
    /// raw length in the low 30 bits, then the compressed and tree flags.
    raw_and_flags: u32,
}

const RAW_MASK: u32 = (1 << 30) - 1;
const COMPRESSED_BIT: u32 = 1 << 30;
const TREE_BIT: u32 = 1 << 31;

/// Largest blob the index can describe.
pub const MAX_BLOB_LEN: u32 = RAW_MASK;

/// Where to find a blob.
#[derive(Clone, Copy, Debug)]
pub struct BlobLocation {
    pub pack: PackInfo,
    pub blob: PackedBlob,
}

#[derive(Default)]
pub struct MasterIndex {
    packs: Vec<PackInfo>,
    pack_numbers: IdMap<u32>,
    /// Per pack number: condemned by prune, so a blob's other copy, if any, is preferred.
    demoted: Vec<bool>,
    entries: Vec<Entry>,
    sorted: bool,
}

impl MasterIndex {
    pub fn add_pack(&mut self, pack: &IndexPack) {
        let number = *self.pack_numbers.entry(pack.id).or_insert_with(|| {
            self.packs.push(PackInfo {
                id: pack.id,
                salt: pack.salt,
                size: pack.size,
            });
            self.demoted.push(false);
            (self.packs.len() - 1) as u32
        });
        self.entries.extend(pack.blobs.iter().map(|b| Entry {
            id: b.id,
            pack: number,
            offset: b.offset,
            stored_len: b.stored_len,
            raw_and_flags: (b.raw_len & RAW_MASK)
                | if b.compressed { COMPRESSED_BIT } else { 0 }
                | if b.kind == BlobKind::Tree {
                    TREE_BIT
                } else {
                    0
                },
        }));
        self.sorted = false;
    }

    /// Prefer other copies of the blobs in these packs (condemned by prune, still readable).
    pub fn demote(&mut self, packs: &IdSet) {
        for (n, p) in self.packs.iter().enumerate() {
            if packs.contains(&p.id) {
                self.demoted[n] = true;
            }
        }
        self.sorted = false;
    }

    /// Sort for lookups; a blob stored in several packs (concurrent backups, repacking) keeps one
    /// location, in a pack that is not demoted when there is one.
    pub fn finish(&mut self) {
        let demoted = &self.demoted;
        self.entries.sort_unstable_by(|a, b| {
            a.id.cmp(&b.id)
                .then(demoted[a.pack as usize].cmp(&demoted[b.pack as usize]))
        });
        self.entries.dedup_by(|a, b| a.id == b.id);
        self.entries.shrink_to_fit();
        self.sorted = true;
    }

    fn find(&self, id: &Id) -> Option<&Entry> {
        debug_assert!(self.sorted, "MasterIndex::finish must run before lookups");
        self.entries
            .binary_search_by(|e| e.id.cmp(id))
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.find(id).is_some()
    }

    pub fn lookup(&self, id: &Id) -> Option<BlobLocation> {
        self.find(id).map(|e| self.location(e))
    }

    fn location(&self, e: &Entry) -> BlobLocation {
        BlobLocation {
            pack: self.packs[e.pack as usize],
            blob: PackedBlob {
                id: e.id,
                kind: if e.raw_and_flags & TREE_BIT != 0 {
                    BlobKind::Tree
                } else {
                    BlobKind::Data
                },
                compressed: e.raw_and_flags & COMPRESSED_BIT != 0,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_and_flags & RAW_MASK,
            },
        }
    }

    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_numbers.contains_key(id)
    }

    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    pub fn blobs(&self) -> impl Iterator<Item = BlobLocation> + '_ {
        self.entries.iter().map(|e| self.location(e))
    }

    /// Bytes of memory per indexed blob, for capacity planning.
    pub const BYTES_PER_BLOB: usize = std::mem::size_of::<Entry>();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8, kind: BlobKind) -> PackedBlob {
        PackedBlob {
            id: Id([n; 32]),
            kind,
            compressed: n.is_multiple_of(2),
            offset: 33 + n as u32,
            stored_len: 100 + n as u32,
            raw_len: 1000 + n as u32,
        }
    }

    #[test]
    fn index_files_round_trip_and_reject_damage() {
        let key = MasterKey::generate();
        let file = IndexFile {
            packs: vec![IndexPack {
                id: Id([9; 32]),
                salt: [3; SALT_LEN],
                size: 4242,
                blobs: vec![blob(1, BlobKind::Data), blob(2, BlobKind::Tree)],
            }],
            supersedes: vec![Id([7; 32])],
        };
        let stored = file.encode(&key);
        assert_eq!(IndexFile::decode(&key, "x", &stored).unwrap(), file);
        let mut bad = stored.clone();
        bad[40] ^= 1;
        assert!(IndexFile::decode(&key, "x", &bad).is_err());
    }

    /// Real index files are mostly random ids: far inside the expansion bound of `decode`.
    #[test]
    fn large_index_files_decode_within_the_expansion_bound() {
        let key = MasterKey::generate();
        let packs: Vec<IndexPack> = (0..200u32)
            .map(|p| IndexPack {
                id: Id::random(),
                salt: [p as u8; SALT_LEN],
                size: 16 << 20,
                blobs: (0..100u32)
                    .map(|b| PackedBlob {
                        id: Id::random(),
                        kind: BlobKind::Data,
                        compressed: b % 3 == 0,
                        offset: 33 + b * 170_000,
                        stored_len: 170_000,
                        raw_len: 1 << 20,
                    })
                    .collect(),
            })
            .collect();
        let file = IndexFile {
            packs,
            supersedes: vec![],
        };
        let stored = file.encode(&key);
        assert_eq!(IndexFile::decode(&key, "x", &stored).unwrap(), file);
        let plain = 4 + 4 + 200 * (76 + 100 * PackedBlob::ENCODED_LEN);
        assert!(
            (plain as u64) < stored.len() as u64 * 2,
            "{plain} plaintext bytes from {} stored",
            stored.len()
        );
    }

    #[test]
    fn lookups_find_every_blob_and_entries_stay_small() {
        let mut index = MasterIndex::default();
        let blobs: Vec<_> = (0..50)
            .map(|n| {
                blob(
                    n,
                    if n % 3 == 0 {
                        BlobKind::Tree
                    } else {
                        BlobKind::Data
                    },
                )
            })
            .collect();
        index.add_pack(&IndexPack {
            id: Id([1; 32]),
            salt: [0; 32],
            size: 1,
            blobs: blobs.clone(),
        });
        index.finish();
        for b in &blobs {
            assert_eq!(index.lookup(&b.id).unwrap().blob, *b);
        }
        assert!(index.lookup(&Id([200; 32])).is_none());
        const { assert!(MasterIndex::BYTES_PER_BLOB <= 48) };
    }
}
