//! Packs: immutable objects holding many encrypted blobs and, at their end, an encrypted directory
//! of those blobs, so the index can always be rebuilt from the packs alone.
//!
//! Layout: `version(1) || salt(32) || blob... || sealed directory || directory length (u32 LE)`.
//! Each blob is `AES-256-GCM(pack key, nonce = its offset, aad = blob id)`; the pack key is
//! `HKDF(master, salt)`. The pack's name is the BLAKE3 hash of all its bytes.

use bytes::Bytes;

use crate::crypto::{Cipher, MasterKey, SALT_LEN, TAG_LEN, random_array};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MAX_BLOB_LEN;

const PACK_VERSION: u8 = 1;
pub const PACK_PREFIX_LEN: usize = 1 + SALT_LEN;
const ENTRY_LEN: usize = 1 + 32 + 4 + 4 + 4;
const FLAG_TREE: u8 = 1;
const FLAG_COMPRESSED: u8 = 2;
/// The most a zstd frame can expand: a 4-byte RLE block stands for at most 128 KiB.
const MAX_ZSTD_EXPANSION: u64 = 128 * 1024 / 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    Data,
    Tree,
}

/// Where one blob sits inside its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedBlob {
    pub id: Id,
    pub kind: BlobKind,
    pub compressed: bool,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

impl PackedBlob {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        if self.kind == BlobKind::Tree {
            flags |= FLAG_TREE;
        }
        if self.compressed {
            flags |= FLAG_COMPRESSED;
        }
        out.push(flags);
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }

    pub const ENCODED_LEN: usize = ENTRY_LEN;

    pub fn decode(b: &[u8]) -> PackedBlob {
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        PackedBlob {
            kind: if b[0] & FLAG_TREE != 0 {
                BlobKind::Tree
            } else {
                BlobKind::Data
            },
            compressed: b[0] & FLAG_COMPRESSED != 0,
            id: Id(b[1..33].try_into().expect("32 bytes")),
            offset: u32_at(33),
            stored_len: u32_at(37),
            raw_len: u32_at(41),
        }
    }

    /// Decrypt (and decompress) this blob from its stored bytes, then check its id. The claimed
    /// raw length is checked against what the stored bytes can hold before anything is allocated
    /// for it: directories and index files may come from a host that holds the key.
    pub fn open(&self, key: &MasterKey, salt: &[u8; SALT_LEN], stored: &[u8]) -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        self.open_into(key, salt, stored, &mut Vec::new(), &mut plain)?;
        Ok(plain)
    }

    /// [`PackedBlob::open`] into `plain` (whatever it held is replaced), decrypting in
    /// `scratch`: buffers reused from blob to blob are not fresh pages the kernel must fault
    /// in and zero for every blob.
    pub fn open_into(
        &self,
        key: &MasterKey,
        salt: &[u8; SALT_LEN],
        stored: &[u8],
        scratch: &mut Vec<u8>,
        plain: &mut Vec<u8>,
    ) -> Result<()> {
        let what = || format!("blob {}", self.id);
        let payload_len = stored.len().saturating_sub(TAG_LEN) as u64;
        let raw_len = self.raw_len as u64;
        let fits = if self.compressed {
            raw_len <= payload_len * MAX_ZSTD_EXPANSION
        } else {
            raw_len == payload_len
        };
        if raw_len > MAX_BLOB_LEN as u64 || !fits {
            return Err(Error::corrupt(
                what(),
                format!("claims {raw_len} bytes, which its {payload_len} stored bytes cannot hold"),
            ));
        }
        scratch.clear();
        scratch.extend_from_slice(stored);
        let len = key
            .object_cipher(salt)
            .open_in_place(scratch, self.offset as u64, &self.id.0)
            .map_err(|_| Error::corrupt(what(), "authentication failed"))?;
        scratch.truncate(len);
        if self.compressed {
            plain.clear();
            plain.reserve(self.raw_len as usize);
            decompress_into(scratch, plain)
                .map_err(|e| Error::corrupt(what(), format!("decompression: {e}")))?;
        } else {
            std::mem::swap(scratch, plain);
        }
        if plain.len() != self.raw_len as usize || key.blob_id(plain) != self.id {
            return Err(Error::corrupt(what(), "content does not match its id"));
        }
        Ok(())
    }
}

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompress into `out`'s capacity (no more) with a per-thread context: creating one per blob
/// costs more than small blobs do.
fn decompress_into(data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        slot.as_mut()
            .expect("just set")
            .decompress_to_buffer(data, out)
            .map(|_| ())
    })
}

/// Accumulates blobs for one pack; encryption happens as blobs are added.
pub struct PackBuilder {
    cipher: Cipher,
    salt: [u8; SALT_LEN],
    buf: Vec<u8>,
    blobs: Vec<PackedBlob>,
    kind: BlobKind,
}

pub struct FinishedPack {
    pub id: Id,
    pub salt: [u8; SALT_LEN],
    pub data: Bytes,
    pub blobs: Vec<PackedBlob>,
}

impl PackBuilder {
    pub fn new(key: &MasterKey, kind: BlobKind, capacity: usize) -> PackBuilder {
        let salt: [u8; SALT_LEN] = random_array();
        let mut buf = Vec::with_capacity(capacity + capacity / 8);
        buf.push(PACK_VERSION);
        buf.extend_from_slice(&salt);
        PackBuilder {
            cipher: key.object_cipher(&salt),
            salt,
            buf,
            blobs: Vec::new(),
            kind,
        }
    }

    pub fn kind(&self) -> BlobKind {
        self.kind
    }

    pub fn size(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Add a blob; `payload` is the plaintext, or its zstd frame when `compressed`.
    pub fn add(&mut self, id: Id, payload: &[u8], compressed: bool, raw_len: u32) {
        let offset = self.buf.len();
        self.buf.extend_from_slice(payload);
        self.cipher
            .seal_tail(&mut self.buf, offset, offset as u64, &id.0);
        self.blobs.push(PackedBlob {
            id,
            kind: self.kind,
            compressed,
            offset: offset as u32,
            stored_len: (payload.len() + TAG_LEN) as u32,
            raw_len,
        });
    }

    pub fn finish(mut self) -> FinishedPack {
        let start = self.buf.len();
        self.buf
            .extend_from_slice(&(self.blobs.len() as u32).to_le_bytes());
        for blob in &self.blobs {
            blob.encode(&mut self.buf);
        }
        self.cipher.seal_directory(&mut self.buf, start);
        let dir_len = (self.buf.len() - start) as u32;
        self.buf.extend_from_slice(&dir_len.to_le_bytes());
        let data = Bytes::from(self.buf);
        FinishedPack {
            id: Id::of_stored(&data),
            salt: self.salt,
            data,
            blobs: self.blobs,
        }
    }
}

/// Read a pack's directory from its tail (`tail` must hold at least the directory and length),
/// given the salt from its first bytes.
pub fn parse_directory(
    key: &MasterKey,
    pack: &Id,
    salt: &[u8; SALT_LEN],
    pack_len: u64,
    tail: &[u8],
) -> Result<Vec<PackedBlob>> {
    let damaged = |d: &str| Error::corrupt(format!("pack {pack}"), d);
    if tail.len() < 4 {
        return Err(damaged("too short to hold a directory"));
    }
    let dir_len = u32::from_le_bytes(tail[tail.len() - 4..].try_into().expect("4 bytes")) as usize;
    if dir_len + 4 > tail.len() || (dir_len + 4 + PACK_PREFIX_LEN) as u64 > pack_len {
        return Err(damaged(
            "directory length points outside the pack (truncated?)",
        ));
    }
    let mut dir = tail[tail.len() - 4 - dir_len..tail.len() - 4].to_vec();
    let len = key
        .object_cipher(salt)
        .open_directory(&mut dir)
        .map_err(|_| damaged("directory authentication failed"))?;
    let dir = &dir[..len];
    if dir.len() < 4 {
        return Err(damaged("directory too short"));
    }
    let count = u32::from_le_bytes(dir[..4].try_into().expect("4 bytes")) as usize;
    if dir.len() != 4 + count * ENTRY_LEN {
        return Err(damaged("directory size does not match its entry count"));
    }
    let data_end = pack_len - 4 - dir_len as u64;
    let blobs: Vec<PackedBlob> = dir[4..]
        .chunks_exact(ENTRY_LEN)
        .map(PackedBlob::decode)
        .collect();
    if blobs.iter().any(|b| {
        (b.offset as u64) < PACK_PREFIX_LEN as u64
            || b.offset as u64 + b.stored_len as u64 > data_end.min(u32::MAX as u64)
    }) {
        return Err(damaged("directory entry points outside the pack"));
    }
    if blobs.iter().any(|b| b.raw_len > MAX_BLOB_LEN) {
        return Err(damaged(
            "directory entry claims a blob larger than any blob can be",
        ));
    }
    Ok(blobs)
}

/// How many bytes to fetch from a pack's end to be likely to get its whole directory in one read.
pub const TAIL_GUESS: u64 = 64 * 1024;

/// The salt stored at a pack's start.
pub fn salt_of(pack: &Id, head: &[u8]) -> Result<[u8; SALT_LEN]> {
    if head.len() < PACK_PREFIX_LEN || head[0] != PACK_VERSION {
        return Err(Error::corrupt(format!("pack {pack}"), "bad header"));
    }
    Ok(head[1..PACK_PREFIX_LEN].try_into().expect("length checked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_round_trip_through_their_directory() {
        let key = MasterKey::generate();
        let mut builder = PackBuilder::new(&key, BlobKind::Data, 1 << 20);
        let blobs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + i as usize]).collect();
        for b in &blobs {
            builder.add(key.blob_id(b), b, false, b.len() as u32);
        }
        let pack = builder.finish();
        assert_eq!(pack.id, Id::of_stored(&pack.data));
        let salt = salt_of(&pack.id, &pack.data).unwrap();
        let dir =
            parse_directory(&key, &pack.id, &salt, pack.data.len() as u64, &pack.data).unwrap();
        assert_eq!(dir, pack.blobs);
        for (entry, plain) in dir.iter().zip(&blobs) {
            let range = entry.offset as usize..(entry.offset + entry.stored_len) as usize;
            assert_eq!(
                &entry.open(&key, &salt, &pack.data[range.clone()]).unwrap(),
                plain
            );
            let mut bad = pack.data[range].to_vec();
            bad[3] ^= 1;
            assert!(entry.open(&key, &salt, &bad).is_err());
        }
        let truncated = &pack.data[..pack.data.len() - 10];
        assert!(parse_directory(&key, &pack.id, &salt, truncated.len() as u64, truncated).is_err());
    }

    /// The expansion bound in `open` must admit the most compressible blobs there are.
    #[test]
    fn blobs_of_zeros_open_at_every_level() {
        let key = MasterKey::generate();
        let zeros = vec![0u8; 4 << 20];
        for level in [1, 3, 19, 22] {
            let frame = zstd::bulk::compress(&zeros, level).unwrap();
            let mut builder = PackBuilder::new(&key, BlobKind::Data, 1 << 20);
            builder.add(key.blob_id(&zeros), &frame, true, zeros.len() as u32);
            let pack = builder.finish();
            let b = pack.blobs[0];
            let stored = &pack.data[b.offset as usize..(b.offset + b.stored_len) as usize];
            assert_eq!(
                b.open(&key, &pack.salt, stored).unwrap(),
                zeros,
                "level {level}"
            );
            let mut inflated = b;
            inflated.raw_len = (b.stored_len - TAG_LEN as u32) * MAX_ZSTD_EXPANSION as u32 + 1;
            assert!(inflated.open(&key, &pack.salt, stored).is_err());
        }
    }
}
