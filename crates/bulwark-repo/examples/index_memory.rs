//! How much memory the in-memory index takes per blob: builds an index of N simulated blobs
//! (16 per pack, as with 1 MiB chunks in 16 MiB packs) and reports the resident-set growth.
//!
//! `cargo run --release -p bulwark-repo --example index_memory -- 10000000`

use bulwark_repo::Id;
use bulwark_repo::index::{IndexPack, MasterIndex};
use bulwark_repo::pack::{BlobKind, PackedBlob};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm");
    pages * 4096
}

fn main() {
    let blobs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let before = resident_bytes();
    let mut index = MasterIndex::default();
    let mut n = 0u64;
    let mut pack_no = 0u64;
    while n < blobs {
        let mut pack = IndexPack {
            id: Id(*blake3::hash(&pack_no.to_le_bytes()).as_bytes()),
            salt: [0; 32],
            size: 16 << 20,
            blobs: Vec::with_capacity(16),
        };
        for i in 0..16u32 {
            pack.blobs.push(PackedBlob {
                id: Id(*blake3::hash(&n.to_le_bytes()).as_bytes()),
                kind: BlobKind::Data,
                compressed: true,
                offset: 33 + i * (1 << 20),
                stored_len: 1 << 20,
                raw_len: 1 << 20,
            });
            n += 1;
        }
        index.add_pack(&pack);
        pack_no += 1;
    }
    index.finish();
    let after = resident_bytes();
    let per_blob = (after - before) as f64 / index.blob_count() as f64;
    println!(
        "{} blobs in {} packs: {:.1} MiB resident, {:.1} bytes per blob ({} per entry)",
        index.blob_count(),
        index.packs().len(),
        (after - before) as f64 / (1 << 20) as f64,
        per_blob,
        MasterIndex::BYTES_PER_BLOB
    );
}
