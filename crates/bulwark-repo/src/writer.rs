//! Saving blobs: deduplicate, compress, encrypt into packs, upload in the background, and index.
//!
//! Crash safety: a pack becomes visible atomically and only whole. Index files are written every
//! `INDEX_EVERY_PACKS` packs and at the end; packs uploaded after the last index file of a killed
//! run are adopted by the next run from their own directories (see `adopt_unindexed_packs`), so
//! nothing already stored in a complete pack is uploaded twice.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::id::{Id, IdSet};
use crate::index::{IndexFile, IndexPack, MAX_BLOB_LEN, MasterIndex};
use crate::pack::{BlobKind, FinishedPack, PackBuilder};
use crate::repository::Repository;

/// An index file is written once this many packs, or this many blobs, await one: with small
/// files a pack holds a hundred thousand blobs, and an index file is read whole when the index
/// is loaded, so the bound keeps that read's memory to a few MiB.
const INDEX_EVERY_PACKS: usize = 32;
const INDEX_EVERY_BLOBS: usize = 65_536;

#[derive(Default, Debug, Clone, Copy)]
pub struct WriteStats {
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub bytes_stored: u64,
    pub packs_written: u64,
}

pub struct BlobWriter<'r> {
    repo: &'r Repository,
    index: &'r MasterIndex,
    pending: Mutex<IdSet>,
    open_data: Mutex<Vec<PackBuilder>>,
    open_tree: Mutex<Option<PackBuilder>>,
    uploads: Mutex<Option<Sender<FinishedPack>>>,
    uploaded: Mutex<Uploaded>,
    failed: AtomicBool,
    /// Count what would be stored, store nothing.
    dry_run: bool,
    blobs_added: AtomicU64,
    bytes_added: AtomicU64,
    bytes_stored: AtomicU64,
}

#[derive(Default)]
struct Uploaded {
    unindexed: Vec<IndexPack>,
    packs: u64,
    error: Option<Error>,
}

impl<'r> BlobWriter<'r> {
    /// Run `work` with a writer; uploads happen on `uploaders` background threads meanwhile.
    /// Returns what `work` returned once every pack and index file is stored.
    pub fn run<T, E: From<Error>>(
        repo: &'r Repository,
        index: &'r MasterIndex,
        uploaders: usize,
        work: impl FnOnce(&BlobWriter<'r>) -> Result<T, E>,
    ) -> Result<(T, WriteStats), E> {
        Self::run_with(repo, index, uploaders, false, work)
    }

    /// [`BlobWriter::run`], or with `dry_run` a run that compresses and counts every new blob
    /// and pack but writes nothing to the repository.
    pub fn run_with<T, E: From<Error>>(
        repo: &'r Repository,
        index: &'r MasterIndex,
        uploaders: usize,
        dry_run: bool,
        work: impl FnOnce(&BlobWriter<'r>) -> Result<T, E>,
    ) -> Result<(T, WriteStats), E> {
        // Each uploader holds one pack; one more may wait. Finished packs are the bulk of memory.
        let (tx, rx) = bounded::<FinishedPack>(1);
        let writer = BlobWriter {
            repo,
            index,
            pending: Mutex::new(IdSet::default()),
            open_data: Mutex::new(Vec::new()),
            open_tree: Mutex::new(None),
            uploads: Mutex::new(Some(tx)),
            uploaded: Mutex::new(Uploaded::default()),
            failed: AtomicBool::new(false),
            dry_run,
            blobs_added: AtomicU64::new(0),
            bytes_added: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
        };
        let result = std::thread::scope(|scope| {
            for _ in 0..uploaders.max(1) {
                let rx: Receiver<FinishedPack> = rx.clone();
                let w = &writer;
                scope.spawn(move || {
                    for pack in rx {
                        w.store_pack(pack);
                    }
                });
            }
            drop(rx);
            let result = work(&writer)
                .and_then(|value| writer.flush_open_packs().map(|_| value).map_err(E::from));
            // Closing the queue lets the uploaders drain it and stop; the scope waits for them.
            writer.uploads.lock().expect("upload queue").take();
            result
        });
        let value = result?;
        let stats = writer.finish()?;
        Ok((value, stats))
    }

    /// Save a blob unless the repository (or this run) has it already. Returns its id.
    pub fn save(&self, kind: BlobKind, data: &[u8]) -> Result<Id> {
        let id = self.repo.key().blob_id(data);
        self.save_with_id(kind, id, data)?;
        Ok(id)
    }

    /// Whether the blob is known already: stored before this run, or saved during it.
    pub fn has(&self, id: &Id) -> bool {
        self.index.contains(id) || self.pending.lock().expect("pending set").contains(id)
    }

    /// Save a blob whose id the caller computed. Returns whether it was new.
    pub fn save_with_id(&self, kind: BlobKind, id: Id, data: &[u8]) -> Result<bool> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(self.take_error());
        }
        if data.len() > MAX_BLOB_LEN as usize {
            return Err(Error::Invalid(format!(
                "blob of {} bytes is too large",
                data.len()
            )));
        }
        if self.index.contains(&id) || !self.pending.lock().expect("pending set").insert(id) {
            return Ok(false);
        }
        let compressed = compress(data, self.repo.settings().compression_level);
        let payload = compressed.as_deref().unwrap_or(data);
        self.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.bytes_added
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.bytes_stored.fetch_add(
            payload.len() as u64 + crate::crypto::TAG_LEN as u64,
            Ordering::Relaxed,
        );
        let pack_size = self.repo.settings().pack_size as usize;
        let full = match kind {
            BlobKind::Data => {
                // Each thread takes an open pack of its own, so concurrent files interleave across packs.
                let taken = self.open_data.lock().expect("open packs").pop();
                let mut builder =
                    taken.unwrap_or_else(|| PackBuilder::new(self.repo.key(), kind, pack_size));
                builder.add(id, payload, compressed.is_some(), data.len() as u32);
                if builder.size() >= pack_size {
                    Some(builder)
                } else {
                    self.open_data.lock().expect("open packs").push(builder);
                    None
                }
            }
            BlobKind::Tree => {
                let mut slot = self.open_tree.lock().expect("open tree pack");
                let builder =
                    slot.get_or_insert_with(|| PackBuilder::new(self.repo.key(), kind, pack_size));
                builder.add(id, payload, compressed.is_some(), data.len() as u32);
                if builder.size() >= pack_size {
                    slot.take()
                } else {
                    None
                }
            }
        };
        if let Some(builder) = full {
            self.queue(builder)?;
        }
        Ok(true)
    }

    fn queue(&self, builder: PackBuilder) -> Result<()> {
        let pack = builder.finish();
        let sender = self.uploads.lock().expect("upload queue").clone();
        let sender =
            sender.ok_or_else(|| Error::Invalid("blob saved after the writer finished".into()))?;
        sender.send(pack).map_err(|_| self.take_error())
    }

    fn flush_open_packs(&self) -> Result<()> {
        let open: Vec<PackBuilder> =
            std::mem::take(&mut *self.open_data.lock().expect("open packs"));
        for builder in open
            .into_iter()
            .chain(self.open_tree.lock().expect("open tree").take())
        {
            if !builder.is_empty() {
                self.queue(builder)?;
            }
        }
        Ok(())
    }

    fn store_pack(&self, pack: FinishedPack) {
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        if self.dry_run {
            self.uploaded.lock().expect("upload state").packs += 1;
            return;
        }
        let result =
            self.repo
                .backend()
                .create(FileKind::Pack, &pack.id.to_hex(), pack.data.clone());
        let mut up = self.uploaded.lock().expect("upload state");
        match result {
            Ok(_) => {
                up.packs += 1;
                up.unindexed.push(IndexPack {
                    id: pack.id,
                    salt: pack.salt,
                    size: pack.data.len() as u64,
                    blobs: pack.blobs,
                });
                let blobs: usize = up.unindexed.iter().map(|p| p.blobs.len()).sum();
                if up.unindexed.len() >= INDEX_EVERY_PACKS || blobs >= INDEX_EVERY_BLOBS {
                    let file = IndexFile {
                        packs: std::mem::take(&mut up.unindexed),
                        supersedes: Vec::new(),
                    };
                    drop(up);
                    if let Err(e) = self.repo.save_index(&file) {
                        self.fail(e);
                    }
                }
            }
            Err(e) => {
                drop(up);
                self.fail(e);
            }
        }
    }

    fn fail(&self, e: Error) {
        let mut up = self.uploaded.lock().expect("upload state");
        if up.error.is_none() {
            up.error = Some(e);
        }
        self.failed.store(true, Ordering::Relaxed);
    }

    fn take_error(&self) -> Error {
        let mut up = self.uploaded.lock().expect("upload state");
        up.error
            .take()
            .unwrap_or_else(|| Error::Backend("an earlier upload failed".into()))
    }

    fn finish(self) -> Result<WriteStats> {
        let up = self.uploaded.into_inner().expect("upload state");
        if let Some(e) = up.error {
            return Err(e);
        }
        if !up.unindexed.is_empty() {
            self.repo.save_index(&IndexFile {
                packs: up.unindexed,
                supersedes: Vec::new(),
            })?;
        }
        Ok(WriteStats {
            blobs_added: self.blobs_added.into_inner(),
            bytes_added: self.bytes_added.into_inner(),
            bytes_stored: self.bytes_stored.into_inner(),
            packs_written: up.packs,
        })
    }
}

/// The compressor of stored blobs.
pub const COMPRESSION: &str = "zstd";

/// Below this size a blob is compressed without probing first.
const PROBE_ABOVE: usize = 128 * 1024;
const PROBE_LEN: usize = 32 * 1024;

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// zstd-compress `data`, or `None` when that would not make it smaller. Large blobs are probed
/// with a fast pass over a sample first, so incompressible data (media, archives, encrypted
/// files) costs almost nothing.
fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, compressor) = slot.as_mut()?;
        if data.len() > PROBE_ABOVE {
            let sample = &data[data.len() / 2..data.len() / 2 + PROBE_LEN];
            let probe = zstd::bulk::compress(sample, 1).ok()?;
            if probe.len() * 100 >= PROBE_LEN * 98 {
                return None;
            }
        }
        compressor
            .compress(data)
            .ok()
            .filter(|c| c.len() < data.len())
    })
}

/// Packs in storage that no index file lists: left by a killed run, or still being written by a
/// running one. Either way they are complete (packs appear atomically) and safe to index.
/// Condemned packs (`skip`) are not orphans: prune has them in hand.
pub fn unindexed_packs(
    repo: &Repository,
    index: &MasterIndex,
    skip: &IdSet,
) -> Result<Vec<(Id, u64)>> {
    let mut out = Vec::new();
    for (name, size) in repo.backend().list(FileKind::Pack)? {
        match name.parse::<Id>() {
            Ok(id) if !index.has_pack(&id) && !skip.contains(&id) => out.push((id, size)),
            Ok(_) => {}
            Err(_) => tracing::warn!("ignoring stray object data/{name}"),
        }
    }
    Ok(out)
}

/// Index the packs a killed run left behind, so this run reuses their blobs. Damaged ones are
/// skipped with a warning: `check` reports them, and their blobs are simply stored again.
pub fn adopt_unindexed_packs(
    repo: &Repository,
    index: &mut MasterIndex,
    condemned: &IdSet,
) -> Result<usize> {
    let orphans = unindexed_packs(repo, index, condemned)?;
    if orphans.is_empty() {
        return Ok(0);
    }
    let mut file = IndexFile::default();
    for (id, size) in orphans {
        match repo.read_pack_directory(&id, size) {
            Ok(pack) => file.packs.push(pack),
            Err(e) => tracing::warn!("not reusing pack {id}: {e}"),
        }
    }
    let adopted = file.packs.len();
    if adopted > 0 {
        repo.save_index(&file)?;
        for pack in &file.packs {
            index.add_pack(pack);
        }
        index.finish();
    }
    Ok(adopted)
}
