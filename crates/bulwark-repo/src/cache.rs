//! A local cache of the repository objects every command reads again and again (index files,
//! snapshots, and the packs holding trees), for repositories where each read is a billed,
//! high-latency request. Caching is safe because these objects never change: each is named by the
//! hash of its bytes, which is checked when an object enters the cache, and everything read
//! back is still decrypted and authenticated. A damaged cache entry is dropped and fetched
//! again; a cache that cannot be written only costs requests, never a command. Like the
//! repository it mirrors, the cache is owner-only: folders 0700, objects 0600.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::backend::FileKind;
use crate::id::Id;

pub struct Cache {
    dir: PathBuf,
    /// Held while a pack is fetched, so threads wanting the same pack fetch it once.
    fetching: Mutex<()>,
    /// Objects offered to `put` whose bytes did not match their names, this command.
    refused: Mutex<HashSet<(FileKind, String)>>,
    /// A cache for one command only lives (and dies) with this.
    _temporary: Option<tempfile::TempDir>,
}

impl Cache {
    /// `BULWARK_CACHE_DIR`, else `$XDG_CACHE_HOME/bulwark`, else `~/.cache/bulwark`.
    pub fn default_base() -> Option<PathBuf> {
        let env = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        env("BULWARK_CACHE_DIR")
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("bulwark")))
            .or_else(|| env("HOME").map(|h| h.join(".cache/bulwark")))
    }

    /// The cache of one repository under `base`.
    pub fn open(base: &Path, repository: &Id) -> std::io::Result<Cache> {
        let dir = base.join(repository.to_hex());
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for kind in [FileKind::Index, FileKind::Snapshot, FileKind::Pack] {
            builder.create(dir.join(kind.dir()))?;
        }
        // A cache made before caches were owner-only is closed off here.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        Ok(Cache {
            dir,
            fetching: Mutex::new(()),
            refused: Mutex::new(HashSet::new()),
            _temporary: None,
        })
    }

    /// An empty cache removed when dropped: each object is fetched from the repository once
    /// and only for this command (what `check` needs to judge the repository, not the cache).
    pub fn temporary(repository: &Id) -> std::io::Result<Cache> {
        let base = tempfile::Builder::new()
            .prefix("bulwark-cache-")
            .tempdir()?;
        let mut cache = Cache::open(base.path(), repository)?;
        cache._temporary = Some(base);
        Ok(cache)
    }

    fn path(&self, kind: FileKind, name: &str) -> PathBuf {
        self.dir.join(kind.dir()).join(name)
    }

    /// A whole cached object, if present and still matching its name.
    pub fn get(&self, kind: FileKind, name: &str) -> Option<Bytes> {
        let data = fs::read(self.path(kind, name)).ok()?;
        if Id::of_stored(&data).to_hex() == name {
            Some(Bytes::from(data))
        } else {
            self.forget(kind, name);
            None
        }
    }

    /// Bytes `range` of a cached object; its hash was checked when it was stored.
    pub fn get_range(
        &self,
        kind: FileKind,
        name: &str,
        range: std::ops::Range<u64>,
    ) -> Option<Bytes> {
        let file = File::open(self.path(kind, name)).ok()?;
        // The range comes from an index entry: check it against the file before allocating it.
        if range.start > range.end || range.end > file.metadata().ok()?.len() {
            return None;
        }
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        file.read_exact_at(&mut buf, range.start).ok()?;
        Some(Bytes::from(buf))
    }

    /// Store an object whose bytes hash to its name; anything else is not cached, and noted.
    pub fn put(&self, kind: FileKind, name: &str, data: &[u8]) {
        if Id::of_stored(data).to_hex() != name {
            self.refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((kind, name.to_string()));
            return;
        }
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let path = self.path(kind, name);
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(data))
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            tracing::warn!("cannot write the cache at {}: {e}", self.dir.display());
        }
    }

    /// Whether `put` was offered damaged bytes for this object during this command.
    pub fn refused(&self, kind: FileKind, name: &str) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(kind, name.to_string()))
    }

    pub fn forget(&self, kind: FileKind, name: &str) {
        let _ = fs::remove_file(self.path(kind, name));
    }

    /// Run `fetch` at most once at a time, for objects that are costly to fetch twice.
    pub fn fetching<T>(&self, fetch: impl FnOnce() -> T) -> T {
        let _one_at_a_time = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
        fetch()
    }

    /// Drop cached objects of `kind` the repository no longer has.
    pub fn retain(&self, kind: FileKind, still_there: impl Fn(&str) -> bool) {
        let Ok(entries) = fs::read_dir(self.dir.join(kind.dir())) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Leftover temporary files of killed runs go too.
            if name.len() != 64 || !still_there(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_come_back_only_while_they_match_their_names() {
        let base = tempfile::tempdir().unwrap();
        let cache = Cache::open(base.path(), &Id::of_stored(b"repo")).unwrap();
        let data = b"an index file, sealed".to_vec();
        let name = Id::of_stored(&data).to_hex();
        cache.put(FileKind::Index, &name, &data);
        assert_eq!(
            cache.get(FileKind::Index, &name).as_deref(),
            Some(&data[..])
        );
        assert_eq!(
            cache.get_range(FileKind::Index, &name, 3..8).as_deref(),
            Some(&data[3..8])
        );
        // A range past the end (a lying index entry) is a miss, not a 4 GiB buffer.
        assert_eq!(
            cache.get_range(FileKind::Index, &name, 3..u32::MAX as u64),
            None
        );
        // Bytes that do not hash to the name are never stored.
        let other = Id::of_stored(b"other").to_hex();
        cache.put(FileKind::Index, &other, b"not other");
        assert_eq!(cache.get(FileKind::Index, &other), None);
        assert!(cache.refused(FileKind::Index, &other));
        assert!(!cache.refused(FileKind::Index, &name));
        // A damaged entry is dropped on read.
        let path = cache.path(FileKind::Index, &name);
        fs::write(&path, b"damaged").unwrap();
        assert_eq!(cache.get(FileKind::Index, &name), None);
        assert!(!path.exists());
        // Entries the repository no longer has are removed.
        cache.put(FileKind::Snapshot, &name, &data);
        cache.retain(FileKind::Snapshot, |_| false);
        assert_eq!(cache.get(FileKind::Snapshot, &name), None);
    }
}
