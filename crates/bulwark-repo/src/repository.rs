//! Opening, creating and reading a repository.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, FileKind, Written};
use crate::cache::Cache;
use crate::chunker::ChunkerParams;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::id::{Id, IdSet};
use crate::index::{BlobLocation, IndexFile, IndexPack, MasterIndex};
use crate::keys::{Credential, KeySlot};
use crate::lock::{LockGuard, LockKind};
use crate::pack::{self, BlobKind};
use crate::snapshot::Snapshot;
use crate::tree::Tree;

/// The `format` field of a repository's plaintext header.
pub const FORMAT: &str = "bulwark-repository";
/// The repository format version this build reads and writes.
pub const VERSION: u32 = 1;

/// Snapshots with their ids.
pub type Snapshots = Vec<(Id, Snapshot)>;

/// What a repository is made of, from the format's own constants and the settings fixed at
/// `init` (the chunker seed stays secret).
#[derive(Serialize, Debug)]
pub struct Description {
    pub id: Id,
    pub format: &'static str,
    pub version: u32,
    pub created: DateTime<Utc>,
    pub chunker: ChunkerDescription,
    pub pack_size: u32,
    pub compression: CompressionDescription,
    pub encryption: &'static str,
    pub object_keys: &'static str,
    pub blob_ids: &'static str,
    pub key_slot_kdf: String,
}

#[derive(Serialize, Debug)]
pub struct ChunkerDescription {
    pub algorithm: &'static str,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    pub seed: &'static str,
}

#[derive(Serialize, Debug)]
pub struct CompressionDescription {
    pub algorithm: &'static str,
    pub level: i32,
}

/// The plaintext `config` object: just enough to know what this is and to find the keys.
#[derive(Serialize, Deserialize, Debug)]
struct Header {
    format: String,
    version: u32,
    id: Id,
    created: DateTime<Utc>,
    /// The sealed [`Settings`], base64.
    settings: String,
}

/// Settings fixed at `init`, stored encrypted: the chunker seed must stay secret.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Settings {
    pub chunker: ChunkerParams,
    pub pack_size: u32,
    pub compression_level: i32,
    /// S3 Object Lock (see `object_lock`); none for most repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<crate::object_lock::ObjectLock>,
}

/// Packs are built in memory: the largest `init` accepts.
pub const MAX_PACK_SIZE: u32 = 512 * 1024 * 1024;

impl Settings {
    /// Settings a repository can work with. The stored ones are sealed, but a host holding the
    /// key could seal anything: a pack size of 4 GiB would be an allocation per backup.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.chunker.validate()?;
        if !(1..=MAX_PACK_SIZE).contains(&self.pack_size) {
            return Err(format!(
                "pack size {} is outside 1..={MAX_PACK_SIZE}",
                self.pack_size
            ));
        }
        if let Some(lock) = self.object_lock
            && !(1..=crate::object_lock::MAX_LOCK_DAYS).contains(&lock.days)
        {
            return Err(format!(
                "object lock days {} are outside 1..={}",
                lock.days,
                crate::object_lock::MAX_LOCK_DAYS
            ));
        }
        if !zstd::compression_level_range().contains(&self.compression_level) {
            return Err(format!(
                "compression level {} is not a zstd level",
                self.compression_level
            ));
        }
        Ok(())
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            chunker: ChunkerParams::with_random_seed(),
            pack_size: 16 * 1024 * 1024,
            compression_level: 3,
            object_lock: None,
        }
    }
}

pub struct Repository {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    id: Id,
    created: DateTime<Utc>,
    settings: Settings,
    key_slot: String,
    cache: Option<Cache>,
}

impl Repository {
    pub fn init(
        backend: Arc<dyn Backend>,
        credential: &Credential,
        settings: Settings,
    ) -> Result<Repository> {
        Self::create(backend, credential, MasterKey::generate(), settings)
    }

    /// A replica of `source`: the same master key and chunking, so packs move between the two
    /// verbatim; its own id and key slots.
    pub fn init_replica(
        backend: Arc<dyn Backend>,
        credential: &Credential,
        source: &Repository,
    ) -> Result<Repository> {
        Self::init_replica_locked(backend, credential, source, None)
    }

    /// A replica whose objects are locked with S3 Object Lock (or not, with `None`): locks
    /// belong to the bucket a repository is in, not to its data, so the source's do not carry.
    pub fn init_replica_locked(
        backend: Arc<dyn Backend>,
        credential: &Credential,
        source: &Repository,
        object_lock: Option<crate::object_lock::ObjectLock>,
    ) -> Result<Repository> {
        let settings = Settings {
            object_lock,
            ..source.settings.clone()
        };
        Self::create(backend, credential, source.key.clone(), settings)
    }

    fn create(
        backend: Arc<dyn Backend>,
        credential: &Credential,
        key: MasterKey,
        settings: Settings,
    ) -> Result<Repository> {
        settings.validate().map_err(Error::Invalid)?;
        match backend.read(FileKind::Config, "config") {
            Ok(_) => {
                return Err(Error::AlreadyExists {
                    location: backend.location().to_string(),
                });
            }
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        // Before any object: every one, the key slot and config included, is locked as written.
        if let Some(lock) = settings.object_lock {
            let client = backend.object_lock().ok_or_else(|| {
                Error::Invalid(format!(
                    "{} cannot lock objects: Object Lock needs an s3:// repository",
                    backend.location()
                ))
            })?;
            client.require_enabled()?;
            client.lock_writes(lock);
        }
        let id = Id::random();
        let slot = KeySlot::wrap(&key, credential, &id)?;
        let key_slot = store_slot(backend.as_ref(), &slot)?;
        let sealed = key.seal_object(&serde_json::to_vec(&settings).expect("settings serialise"));
        let header = Header {
            format: FORMAT.into(),
            version: VERSION,
            id,
            created: Utc::now(),
            settings: B64.encode(sealed),
        };
        let bytes = serde_json::to_vec_pretty(&header).expect("header serialises");
        // The config goes last: a repository exists only once its key slot is safely stored.
        if backend.create(FileKind::Config, "config", Bytes::from(bytes))? == Written::Existed {
            return Err(Error::AlreadyExists {
                location: backend.location().to_string(),
            });
        }
        Ok(Repository {
            backend,
            key,
            id,
            created: header.created,
            settings,
            key_slot,
            cache: None,
        })
    }

    pub fn open(backend: Arc<dyn Backend>, credential: &Credential) -> Result<Repository> {
        let header = read_header(backend.as_ref())?;
        for (name, _) in backend.list(FileKind::Key)? {
            let slot = match read_slot(backend.as_ref(), &name) {
                Ok(slot) => slot,
                Err(e) => {
                    tracing::warn!("skipping key slot {name}: {e}");
                    continue;
                }
            };
            if let Some(key) = slot.unwrap(credential, &header.id)? {
                let sealed = B64
                    .decode(&header.settings)
                    .map_err(|_| Error::corrupt("config", "settings are not base64"))?;
                let plain = key.open_object("config", &sealed)?;
                let settings: Settings =
                    serde_json::from_slice(&plain).map_err(|e| Error::corrupt("config", e))?;
                settings
                    .validate()
                    .map_err(|e| Error::corrupt("config", e))?;
                if let (Some(lock), Some(client)) = (settings.object_lock, backend.object_lock()) {
                    client.lock_writes(lock);
                }
                return Ok(Repository {
                    backend,
                    key,
                    id: header.id,
                    created: header.created,
                    settings,
                    key_slot: name,
                    cache: None,
                });
            }
        }
        Err(Error::WrongKey {
            what: match credential {
                Credential::Passphrase(_) => "passphrase",
                Credential::KeyFile(_) => "key file",
            },
        })
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    pub fn key(&self) -> &MasterKey {
        &self.key
    }
    pub fn id(&self) -> Id {
        self.id
    }
    pub fn created(&self) -> DateTime<Utc> {
        self.created
    }
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    pub fn describe(&self) -> Description {
        let s = &self.settings;
        Description {
            id: self.id,
            format: FORMAT,
            version: VERSION,
            created: self.created,
            chunker: ChunkerDescription {
                algorithm: crate::chunker::ALGORITHM,
                min_size: s.chunker.min_size,
                avg_size: s.chunker.avg_size,
                max_size: s.chunker.max_size,
                seed: "secret",
            },
            pack_size: s.pack_size,
            compression: CompressionDescription {
                algorithm: crate::writer::COMPRESSION,
                level: s.compression_level,
            },
            encryption: crate::crypto::CIPHER,
            object_keys: crate::crypto::OBJECT_KEY_DERIVATION,
            blob_ids: crate::crypto::BLOB_ID_HASH,
            key_slot_kdf: format!(
                "Argon2id (m={} KiB, t={}, p={}) for passphrases; HKDF-SHA256 for key files",
                crate::keys::ARGON2_M_KIB,
                crate::keys::ARGON2_T,
                crate::keys::ARGON2_P
            ),
        }
    }

    /// Whether `other` holds its data under the same master key (a replica), so packs can be
    /// copied between the two without re-encryption.
    pub fn shares_key_with(&self, other: &Repository) -> bool {
        self.key.secret() == other.key.secret()
    }

    /// The key slot this session opened the repository with.
    pub fn key_slot(&self) -> &str {
        &self.key_slot
    }

    /// Take a lock, once the repository is found still where it was opened: storage unmounted,
    /// deleted or replaced under a long-lived handle (a daemon's) must fail the job, not receive
    /// packs and snapshots that no config or key slot will ever open again.
    pub fn lock(&self, kind: LockKind) -> Result<LockGuard> {
        let header = read_header(self.backend.as_ref())?;
        if header.id != self.id {
            return Err(Error::NotBulwark {
                location: self.backend.location().to_string(),
                what: "another repository has replaced the one opened there".into(),
            });
        }
        LockGuard::acquire(self.backend.clone(), &self.key, kind)
    }

    // ---- keys ----

    pub fn add_key(&self, credential: &Credential) -> Result<String> {
        store_slot(
            self.backend.as_ref(),
            &KeySlot::wrap(&self.key, credential, &self.id)?,
        )
    }

    /// Replace the key slot this session opened with one for `credential` (restic's
    /// `key passwd`): the new slot is stored first, so the repository is never without it.
    pub fn replace_own_key(&mut self, credential: &Credential) -> Result<String> {
        let _lock = self.lock(LockKind::Exclusive)?;
        let new = self.add_key(credential)?;
        self.backend.remove(FileKind::Key, &self.key_slot)?;
        self.key_slot = new.clone();
        Ok(new)
    }

    pub fn list_keys(&self) -> Result<Vec<(String, KeySlot)>> {
        let mut out = Vec::new();
        for (name, _) in self.backend.list(FileKind::Key)? {
            out.push((name.clone(), read_slot(self.backend.as_ref(), &name)?));
        }
        out.sort_by_key(|(_, s)| s.created);
        Ok(out)
    }

    /// Removes a key slot, under the exclusive lock: no other process may be opening the
    /// repository with a slot while the set of slots changes.
    pub fn remove_key(&self, id_prefix: &str) -> Result<String> {
        let _lock = self.lock(LockKind::Exclusive)?;
        let keys = self.list_keys()?;
        let name = unique_prefix(keys.iter().map(|(n, _)| n.as_str()), id_prefix, "key")?;
        if name == self.key_slot {
            return Err(Error::Invalid(
                "refusing to remove the key this session opened the repository with; open with another key".into(),
            ));
        }
        self.backend.remove(FileKind::Key, &name)?;
        Ok(name)
    }

    // ---- index ----

    pub fn list_index_files(&self) -> Result<Vec<String>> {
        let names: Vec<String> = self
            .backend
            .list(FileKind::Index)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        if let Some(cache) = &self.cache {
            let listed: HashSet<&str> = names.iter().map(String::as_str).collect();
            cache.retain(FileKind::Index, |n| listed.contains(n));
        }
        Ok(names)
    }

    pub fn read_index_file(&self, name: &str) -> Result<IndexFile> {
        let stored = self.read_whole(FileKind::Index, name)?;
        if Id::of_stored(&stored).to_hex() != name {
            return Err(Error::corrupt(
                format!("index/{name}"),
                "content does not match its name",
            ));
        }
        IndexFile::decode(&self.key, name, &stored)
    }

    /// Load every index file into one in-memory index. Damaged index files are an error: the caller
    /// decides whether to stop (most commands) or rebuild (`repair index`).
    pub fn load_index(&self) -> Result<MasterIndex> {
        let condemned = self.condemned_packs()?;
        let mut index = self.index_of_packs(|_| true)?;
        index.demote(&condemned);
        index.finish();
        if let Some(cache) = &self.cache {
            cache.retain(FileKind::Pack, |n| {
                n.parse::<Id>().is_ok_and(|id| index.has_pack(&id))
            });
        }
        Ok(index)
    }

    /// The index new data is deduplicated against: condemned packs are left out, so nothing new
    /// comes to rely on them. Also returns the condemned set.
    pub fn load_index_for_writing(&self) -> Result<(MasterIndex, IdSet)> {
        let condemned = self.condemned_packs()?;
        let mut index = self.index_of_packs(|p| !condemned.contains(p))?;
        index.finish();
        Ok((index, condemned))
    }

    fn index_of_packs(&self, keep: impl Fn(&Id) -> bool) -> Result<MasterIndex> {
        // An index file that was listed but is gone when read was superseded by a concurrent
        // prune, which stores the replacement before it removes what it replaces: a fresh
        // listing holds the replacement. Only a repository that keeps changing under us for
        // every attempt makes this fail.
        const ATTEMPTS: usize = 5;
        let mut attempt = 1;
        loop {
            match self.index_of_listed_packs(&keep) {
                Err(Error::NotFound { what }) if attempt < ATTEMPTS => {
                    tracing::debug!("{what} went while the index was read; listing again");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn index_of_listed_packs(&self, keep: &impl Fn(&Id) -> bool) -> Result<MasterIndex> {
        let mut index = MasterIndex::default();
        for name in self.list_index_files()? {
            for pack in self.read_index_file(&name)?.packs {
                if keep(&pack.id) {
                    index.add_pack(&pack);
                }
            }
        }
        Ok(index)
    }

    pub fn save_index(&self, file: &IndexFile) -> Result<Id> {
        let stored = file.encode(&self.key);
        let id = Id::of_stored(&stored);
        self.backend
            .create(FileKind::Index, &id.to_hex(), Bytes::from(stored))?;
        Ok(id)
    }

    /// Read a pack's own directory: the ground truth the index is rebuilt from.
    pub fn read_pack_directory(&self, pack: &Id, size: u64) -> Result<IndexPack> {
        let name = pack.to_hex();
        let head =
            self.backend
                .read_range(FileKind::Pack, &name, 0..pack::PACK_PREFIX_LEN as u64)?;
        let salt = pack::salt_of(pack, &head)?;
        let mut tail = self
            .backend
            .read_tail(FileKind::Pack, &name, pack::TAIL_GUESS.min(size))?;
        if tail.len() >= 4 {
            let dir_len =
                u32::from_le_bytes(tail[tail.len() - 4..].try_into().expect("4 bytes")) as u64;
            if dir_len + 4 > tail.len() as u64 && dir_len + 4 <= size {
                tail = self.backend.read_tail(FileKind::Pack, &name, dir_len + 4)?;
            }
        }
        let blobs = pack::parse_directory(&self.key, pack, &salt, size, &tail)?;
        Ok(IndexPack {
            id: *pack,
            salt,
            size,
            blobs,
        })
    }

    // ---- blobs ----

    pub fn read_blob(&self, loc: &BlobLocation) -> Result<Vec<u8>> {
        let start = loc.blob.offset as u64;
        let stored = self.backend.read_range(
            FileKind::Pack,
            &loc.pack.id.to_hex(),
            start..start + loc.blob.stored_len as u64,
        )?;
        loc.blob.open(&self.key, &loc.pack.salt, &stored)
    }

    pub fn load_tree(&self, index: &MasterIndex, id: &Id) -> Result<Tree> {
        let loc = index
            .lookup(id)
            .ok_or_else(|| Error::corrupt(format!("tree {id}"), "not in the index"))?;
        if loc.blob.kind != BlobKind::Tree {
            return Err(Error::corrupt(
                format!("tree {id}"),
                "indexed as data, not a tree",
            ));
        }
        Tree::from_bytes(id, &self.read_tree_blob(&loc)?)
    }

    /// A tree blob, through the cache when there is one: the first tree wanted from a pack
    /// brings the whole pack (trees are packed apart from data, so the pack is all trees).
    fn read_tree_blob(&self, loc: &BlobLocation) -> Result<Vec<u8>> {
        let Some(cache) = &self.cache else {
            return self.read_blob(loc);
        };
        let name = loc.pack.id.to_hex();
        let start = loc.blob.offset as u64;
        let range = start..start + loc.blob.stored_len as u64;
        let cached = cache
            .get_range(FileKind::Pack, &name, range.clone())
            .or_else(|| cache.fetching(|| self.fetch_tree_pack(cache, &name, range)));
        if let Some(stored) = cached {
            match loc.blob.open(&self.key, &loc.pack.salt, &stored) {
                Ok(plain) => return Ok(plain),
                Err(_) => cache.forget(FileKind::Pack, &name),
            }
        }
        self.read_blob(loc)
    }

    /// Bring a whole tree pack into the cache and return `range` of it; another thread may have
    /// brought it meanwhile. A pack whose bytes do not match its name is fetched once only:
    /// its trees are then read one by one, and each is judged by its own authentication.
    fn fetch_tree_pack(&self, cache: &Cache, name: &str, range: Range<u64>) -> Option<Bytes> {
        if let Some(hit) = cache.get_range(FileKind::Pack, name, range.clone()) {
            return Some(hit);
        }
        if cache.refused(FileKind::Pack, name) {
            return None;
        }
        let whole = self.backend.read(FileKind::Pack, name).ok()?;
        cache.put(FileKind::Pack, name, &whole);
        whole
            .get(range.start as usize..range.end as usize)
            .map(Bytes::copy_from_slice)
    }

    /// Keep later reads of index files, snapshots and tree packs local (see [`Cache`]):
    /// in `base`, or with `None` in a temporary cache for this command only.
    pub fn use_cache(&mut self, base: Option<&std::path::Path>) {
        let cache = match base {
            Some(base) => Cache::open(base, &self.id),
            None => Cache::temporary(&self.id),
        };
        match cache {
            Ok(cache) => self.cache = Some(cache),
            Err(e) => tracing::warn!("not caching: {e}"),
        }
    }

    /// A whole immutable object, from the cache when it has it.
    fn read_whole(&self, kind: FileKind, name: &str) -> Result<Bytes> {
        let Some(cache) = &self.cache else {
            return self.backend.read(kind, name);
        };
        if let Some(data) = cache.get(kind, name) {
            return Ok(data);
        }
        let data = self.backend.read(kind, name)?;
        cache.put(kind, name, &data);
        Ok(data)
    }

    // ---- snapshots ----

    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let stored = self
            .key
            .seal_object(&serde_json::to_vec(snapshot).expect("snapshots serialise"));
        let id = Id::of_stored(&stored);
        self.backend
            .create(FileKind::Snapshot, &id.to_hex(), Bytes::from(stored))?;
        Ok(id)
    }

    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let name = id.to_hex();
        let what = format!("snapshot {}", id.short());
        let stored = self.read_whole(FileKind::Snapshot, &name)?;
        if Id::of_stored(&stored) != *id {
            return Err(Error::corrupt(what, "content does not match its name"));
        }
        let plain = self.key.open_object(&what, &stored)?;
        serde_json::from_slice(&plain).map_err(|e| Error::corrupt(what, e))
    }

    pub fn snapshot_ids(&self) -> Result<Vec<Id>> {
        let ids = self
            .backend
            .list(FileKind::Snapshot)?
            .into_iter()
            .map(|(n, _)| {
                n.parse::<Id>()
                    .map_err(|_| Error::corrupt(format!("snapshots/{n}"), "bad name"))
            })
            .collect::<Result<Vec<Id>>>()?;
        if let Some(cache) = &self.cache {
            let listed: HashSet<Id> = ids.iter().copied().collect();
            cache.retain(FileKind::Snapshot, |n| {
                n.parse::<Id>().is_ok_and(|id| listed.contains(&id))
            });
        }
        Ok(ids)
    }

    /// Every readable snapshot, oldest first, and the errors for those that are not.
    pub fn load_snapshots(&self) -> Result<(Snapshots, Vec<Error>)> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for id in self.snapshot_ids()? {
            match self.load_snapshot(&id) {
                Ok(s) => good.push((id, s)),
                Err(e) => bad.push(e),
            }
        }
        good.sort_by_key(|(_, s)| s.time);
        Ok((good, bad))
    }

    /// Resolve `latest`, a full id or a unique prefix of at least 8 hex digits.
    pub fn find_snapshot(
        &self,
        spec: &str,
        filter: impl Fn(&Snapshot) -> bool,
    ) -> Result<(Id, Snapshot)> {
        if spec == "latest" {
            let (snaps, _) = self.load_snapshots()?;
            return snaps
                .into_iter()
                .rev()
                .find(|(_, s)| filter(s))
                .ok_or_else(|| Error::NotFound {
                    what: "a snapshot matching the filter".into(),
                });
        }
        if spec.len() < 8 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "'{}' is not a snapshot: give `latest` or at least 8 hex digits of its id",
                crate::error::one_line(spec)
            )));
        }
        let ids: Vec<String> = self.snapshot_ids()?.iter().map(Id::to_hex).collect();
        let name = unique_prefix(
            ids.iter().map(String::as_str),
            &spec.to_ascii_lowercase(),
            "snapshot",
        )?;
        let id: Id = name.parse()?;
        Ok((id, self.load_snapshot(&id)?))
    }
}

fn unique_prefix<'a>(
    names: impl Iterator<Item = &'a str>,
    prefix: &str,
    what: &str,
) -> Result<String> {
    let matches: Vec<&str> = names.filter(|n| n.starts_with(prefix)).collect();
    match matches.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Error::NotFound {
            what: format!("{what} '{prefix}'"),
        }),
        _ => Err(Error::Invalid(format!(
            "{what} prefix '{prefix}' is ambiguous: give more digits"
        ))),
    }
}

fn read_header(backend: &dyn Backend) -> Result<Header> {
    let bytes = match backend.read(FileKind::Config, "config") {
        Ok(b) => b,
        Err(Error::NotFound { .. }) => {
            return Err(Error::NoRepository {
                location: backend.location().to_string(),
            });
        }
        Err(e) => return Err(e),
    };
    let not_ours = |what: String| Error::NotBulwark {
        location: backend.location().to_string(),
        what,
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) if bytes.starts_with(b"[repository]") => {
            return Err(not_ours("its config is a borg repository's".into()));
        }
        // restic's config is encrypted: bytes that are no JSON at all.
        Err(_) if !bytes.iter().take(64).all(|b| b.is_ascii()) => {
            return Err(not_ours(
                "its config is binary, as a restic repository's is".into(),
            ));
        }
        Err(e) => return Err(Error::corrupt("config", e)),
    };
    match value.get("format").and_then(|f| f.as_str()) {
        Some(FORMAT) => {}
        Some(other) => return Err(not_ours(format!("its config says format '{other}'"))),
        None => return Err(not_ours("its config names no format".into())),
    }
    let header: Header = serde_json::from_value(value).map_err(|e| Error::corrupt("config", e))?;
    if header.version != VERSION {
        return Err(Error::Invalid(format!(
            "repository format version {} is not supported by this bulwark (supports {VERSION})",
            header.version
        )));
    }
    Ok(header)
}

/// The plaintext facts about a repository, readable without a key.
pub fn describe_header(backend: &dyn Backend) -> Result<serde_json::Value> {
    let h = read_header(backend)?;
    Ok(
        serde_json::json!({ "format": h.format, "version": h.version, "id": h.id, "created": h.created }),
    )
}

fn store_slot(backend: &dyn Backend, slot: &KeySlot) -> Result<String> {
    let bytes = serde_json::to_vec_pretty(slot).expect("key slots serialise");
    let name = Id::of_stored(&bytes).to_hex();
    backend.create(FileKind::Key, &name, Bytes::from(bytes))?;
    Ok(name)
}

fn read_slot(backend: &dyn Backend, name: &str) -> Result<KeySlot> {
    let bytes = backend.read(FileKind::Key, name)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(format!("keys/{name}"), e))
}
