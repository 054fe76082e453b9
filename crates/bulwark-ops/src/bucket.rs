//! Buckets as datasets (`kind = "s3"`): back a bucket or prefix up as a file tree, restore a
//! snapshot into a bucket, and fingerprint what was listed so a restore test can prove it.
//!
//! **Layout.** Each object becomes a file at its key's path (`photos/2026/a.jpg`), relative to
//! the dataset's prefix; the prefixes between become directories, each dated by the newest
//! object below it. A key that cannot be a path (an object `a` beside objects under `a/`, a
//! segment longer than a file name may be, or a key under the escape folder itself) is stored
//! in [`ESCAPED_DIR`] under its key with `/` and `%` percent-encoded (or hashed, when that is too
//! long for a file name), and its key kept in the attribute `user.s3.key`.
//!
//! **Metadata as file metadata, not a sidecar.** Each object's ETag, content headers and user
//! metadata (`x-amz-meta-*`) are extended attributes of its node, in the `user.s3.` namespace
//! (`user.s3.etag`, `user.s3.content-type`, `user.s3.meta.owner`, ...), and its last-modified
//! time is the node's mtime. Why: the metadata lives beside the content it describes, so an
//! unchanged object's node (content *and* metadata) is taken from the parent snapshot without
//! a request; an unchanged subtree stores nothing new (a sidecar listing every object would be
//! rewritten whole each time); `ls`, `diff` and `find` show it; a restore into a directory keeps
//! it as user attributes (`getfattr -d`), verified like any file's; and a restore into a bucket
//! reads it back from the same node. A key, its metadata and content can never disagree.
//!
//! **Protocol of a backup.** One listing of the source (an unreachable endpoint or a missing
//! bucket fails here: no snapshot). An object whose size, ETag and last-modified time equal the
//! parent snapshot's node is not read. Every other object is read with one GET, streamed
//! through the chunker (nothing staged on disk; memory per read: one chunker window), at most
//! `parallel` at once; what is recorded (ETag, time, size, metadata) is the GET response's, the
//! version actually read. An object deleted between listing and reading is left out and listed
//! as unreadable (recorded with the backup), and so is a "folder" marker (a key ending in `/`, which the listing reports without
//! its `/`, so that it cannot be read); any other read failure fails the backup, which stores no snapshot, since a bucket
//! snapshot silently missing objects would be worse than none.
//!
//! **Fingerprint.** The snapshot's `meta.s3` holds the source, the object count, their bytes and
//! a BLAKE3 digest over every (key, size, ETag, attributes), computed from the listing as read.
//! A restore test restores the snapshot into a scratch directory (every byte and attribute
//! verified against the snapshot, as for files) and recomputes the digest from the snapshot's
//! nodes: the two together prove the restored objects are the ones listed at backup time.
//!
//! **Restore into a bucket.** Every file below the selection goes to `target/KEY` with the
//! attributes recorded for it (last-modified and ETag are the store's to set), streamed from the
//! repository (an object larger than one part goes up in parts), at most `parallel` at once.
//! `verify` reads every object back and compares each chunk's keyed hash and the attributes.
//!
//! **Memory.** Independent of object sizes: a backup holds one chunker window (3 × the largest
//! chunk) per object being read; a restore, per object being written, the repository reader's
//! prefetch (8 chunks) and the parts on their way up (see `bulwark_repo::backend::objects`).
//! It grows with the number of objects: the listing and the parent snapshot's nodes are held
//! whole (a few hundred bytes an object). Measured (`bench/s3_dataset.py`): a 512 MiB object
//! backed up and restore-tested in a 139 MiB process, restored into a bucket in 84 MiB.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bulwark_repo::backend::{ObjectAttributes, ObjectInfo};
use bulwark_repo::lock::LockKind;
use bulwark_repo::writer::{BlobWriter, adopt_unindexed_packs};
use bulwark_repo::{
    BlobKind, Id, MasterIndex, Node, NodeKind, Repository, Snapshot, SnapshotFilter, StoreBackend,
    Summary, Tree, Xattr,
};
use bulwark_source::Patterns;
use chrono::{DateTime, FixedOffset, Local};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backup::BackupReport;
use crate::browse;
use crate::database::SnapshotFileReader;
use crate::error::{Error, RepoError, Result};
use crate::progress::{Progress, Unit};
use crate::restore::{Overwrite, verify_content};

/// Where objects whose keys cannot be paths are stored (see the module docs).
pub const ESCAPED_DIR: &str = ".bulwark-s3-keys";
/// The attribute namespace of object metadata.
pub const XATTR_PREFIX: &str = "user.s3.";
/// The key of `meta` in a bucket snapshot that holds its [`Fingerprint`].
pub const META_KEY: &str = "s3";
/// Objects read or written at once by default.
pub const PARALLEL_OBJECTS: usize = 4;
/// The longest name stored as is (file systems allow 255 bytes).
const MAX_NAME: usize = 255;

/// What a bucket snapshot recorded about its source at backup time.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The source, without credentials or query (`s3://bucket/prefix`).
    pub source: String,
    pub objects: u64,
    pub bytes: u64,
    /// BLAKE3 over every (key, size, ETag, attributes), in key order, hex.
    pub digest: String,
}

impl Fingerprint {
    /// The fingerprint a snapshot recorded, if it is a bucket snapshot.
    pub fn of(snapshot: &Snapshot) -> Option<Result<Fingerprint>> {
        let v = snapshot.meta.get(META_KEY)?;
        Some(
            serde_json::from_value(v.clone()).map_err(|e| {
                Error::corrupt("snapshot", format!("unreadable bucket fingerprint: {e}"))
            }),
        )
    }
}

/// One object as the repository holds it: its key, and what its node says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub attributes: ObjectAttributes,
}

impl StoredObject {
    /// The object a node at `path` (relative, `/`-separated) describes.
    pub fn from_node(path: &str, node: &Node) -> StoredObject {
        let mut out = StoredObject {
            key: path.to_string(),
            size: node.size,
            etag: None,
            attributes: Vec::new(),
        };
        for x in &node.xattrs {
            let Some(name) = x.name.strip_prefix(XATTR_PREFIX) else {
                continue;
            };
            let value = String::from_utf8_lossy(&x.value().unwrap_or_default()).into_owned();
            match name {
                "etag" => out.etag = Some(value),
                "key" => out.key = value,
                _ => out.attributes.push((name.to_string(), value)),
            }
        }
        out.attributes.sort();
        out
    }
}

/// The digest of a fingerprint over objects in key order.
pub fn digest(objects: &[StoredObject]) -> String {
    let mut h = blake3::Hasher::new();
    for o in objects {
        h.update(o.key.as_bytes());
        h.update(b"\0");
        h.update(o.size.to_string().as_bytes());
        h.update(b"\0");
        h.update(o.etag.as_deref().unwrap_or("").as_bytes());
        for (k, v) in &o.attributes {
            h.update(b"\0");
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
        }
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

/// A bucket location for people and snapshots: without its query (endpoint, region).
pub fn display_url(url: &str) -> String {
    url.split_once('?').map_or(url, |(u, _)| u).to_string()
}

/// Whether `key` is selected: some include pattern matches it or a prefix of it (when there are
/// includes), and no exclude pattern does.
fn selected(key: &str, include: &Patterns, exclude: &Patterns) -> bool {
    let paths: Vec<String> = key
        .match_indices('/')
        .map(|(i, _)| &key[..i])
        .chain([key])
        .map(|p| format!("/{p}"))
        .collect();
    let any = |p: &Patterns| paths.iter().any(|path| p.matches(Path::new(path)));
    (include.is_empty() || any(include)) && !any(exclude)
}

pub struct BucketBackupOptions {
    /// `s3://BUCKET/PREFIX?region=…&endpoint=…` (credentials from the environment, as for
    /// repositories), `file://DIR` or a directory.
    pub url: String,
    pub include: Patterns,
    pub exclude: Patterns,
    pub dataset: Option<String>,
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub time: Option<DateTime<FixedOffset>>,
    /// Objects read at once.
    pub parallel: usize,
}

impl BucketBackupOptions {
    pub fn new(url: impl Into<String>) -> BucketBackupOptions {
        BucketBackupOptions {
            url: url.into(),
            include: Patterns::default(),
            exclude: Patterns::default(),
            dataset: None,
            tags: Vec::new(),
            host: None,
            time: None,
            parallel: PARALLEL_OBJECTS,
        }
    }
}

/// Where each listed object goes in the tree.
enum Slot {
    Object(usize),
    Dir(BTreeMap<String, Slot>),
}

/// The file name of an escaped key.
fn escaped_name(key: &str) -> String {
    let encoded = key.replace('%', "%25").replace('/', "%2F");
    if encoded.len() <= MAX_NAME {
        encoded
    } else {
        format!("{}.key", blake3::hash(key.as_bytes()).to_hex())
    }
}

/// Place every object (sorted by key) in a tree of directories; see the module docs.
fn layout(objects: &[ObjectInfo]) -> BTreeMap<String, Slot> {
    let mut root: BTreeMap<String, Slot> = BTreeMap::new();
    let mut escaped = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        let segments: Vec<&str> = o.key.split('/').collect();
        if segments[0] == ESCAPED_DIR || segments.iter().any(|s| s.len() > MAX_NAME) {
            escaped.push(i);
            continue;
        }
        let (last, dirs) = segments.split_last().expect("split yields one segment");
        let mut dir = &mut root;
        for s in dirs {
            let slot = dir
                .entry(s.to_string())
                .or_insert_with(|| Slot::Dir(BTreeMap::new()));
            if let Slot::Object(j) = slot {
                escaped.push(*j);
                *slot = Slot::Dir(BTreeMap::new());
            }
            let Slot::Dir(d) = slot else { unreachable!() };
            dir = d;
        }
        match dir.get(*last) {
            Some(Slot::Dir(_)) => escaped.push(i),
            _ => {
                dir.insert(last.to_string(), Slot::Object(i));
            }
        }
    }
    if !escaped.is_empty() {
        let names = escaped
            .into_iter()
            .map(|i| (escaped_name(&objects[i].key), Slot::Object(i)))
            .collect();
        root.insert(ESCAPED_DIR.to_string(), Slot::Dir(names));
    }
    root
}

/// Every node of a tree by its path (relative, `/`-separated).
fn nodes_by_path(
    repo: &Repository,
    index: &MasterIndex,
    tree: &Tree,
) -> bulwark_repo::Result<HashMap<String, Node>> {
    let mut out = HashMap::new();
    browse::walk(repo, index, tree, Path::new(""), &mut |path, node| {
        out.insert(path.to_string_lossy().into_owned(), node.clone());
        Ok(())
    })?;
    Ok(out)
}

fn nanos(t: DateTime<chrono::Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or_default()
}

fn object_xattrs(
    escaped_key: Option<&str>,
    etag: Option<&str>,
    attrs: &[(String, String)],
) -> Vec<Xattr> {
    let mut out: Vec<Xattr> = attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(etag.map(|e| ("etag", e)))
        .chain(escaped_key.map(|k| ("key", k)))
        .map(|(k, v)| Xattr::new(OsStr::new(&format!("{XATTR_PREFIX}{k}")), v.as_bytes()))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A failure while an object is chunked: reading it (the source's) or storing it (the job's).
enum Chunking {
    Read(std::io::Error),
    Job(Error),
}

impl From<std::io::Error> for Chunking {
    fn from(e: std::io::Error) -> Self {
        Chunking::Read(e)
    }
}

impl From<RepoError> for Chunking {
    fn from(e: RepoError) -> Self {
        Chunking::Job(e.into())
    }
}

#[derive(Default)]
struct Counts {
    new: AtomicU64,
    changed: AtomicU64,
    unmodified: AtomicU64,
    bytes_read: AtomicU64,
}

/// Back a bucket or prefix up (see the module docs for the protocol).
pub fn backup_bucket(
    repo: &Repository,
    opts: BucketBackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let started = Instant::now();
    let source_url = display_url(&opts.url);
    let source_err = |e: RepoError| Error::Source(format!("s3 source {source_url}: {e}"));
    let bucket = StoreBackend::bucket(&opts.url).map_err(source_err)?;
    let listed: Vec<ObjectInfo> = bucket
        .list_objects()
        .map_err(source_err)?
        .into_iter()
        .filter(|o| selected(&o.key, &opts.include, &opts.exclude))
        .collect();

    let lock = repo.lock(LockKind::Shared)?;
    let (mut index, condemned) = repo.load_index_for_writing()?;
    let adopted = adopt_unindexed_packs(repo, &mut index, &condemned)?;
    if adopted > 0 {
        tracing::info!("reusing {adopted} packs left by an interrupted backup");
    }
    let host = opts.host.clone().unwrap_or_else(bulwark_repo::host_name);
    let paths = vec![source_url.clone()];
    let parent = match repo.find_snapshot("latest", |s| {
        s.paths == paths && s.dataset == opts.dataset && s.meta.contains_key(META_KEY)
    }) {
        Ok(found) => Some(found),
        Err(RepoError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let old = match &parent {
        Some((id, snap)) => match repo
            .load_tree(&index, &snap.tree)
            .and_then(|t| nodes_by_path(repo, &index, &t))
        {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!(
                    "parent snapshot {} unusable, reading every object: {e}",
                    id.short()
                );
                HashMap::new()
            }
        },
        None => HashMap::new(),
    };

    let tree = layout(&listed);
    // The placement of each object: its path in the tree and whether its key was escaped.
    let mut placed: Vec<(String, bool)> = vec![(String::new(), false); listed.len()];
    fn place(dir: &BTreeMap<String, Slot>, base: &str, placed: &mut [(String, bool)]) {
        for (name, slot) in dir {
            let path = if base.is_empty() {
                name.clone()
            } else {
                format!("{base}/{name}")
            };
            match slot {
                Slot::Object(i) => placed[*i] = (path.clone(), base == ESCAPED_DIR),
                Slot::Dir(d) => place(d, &path, placed),
            }
        }
    }
    place(&tree, "", &mut placed);

    let total: u64 = listed.iter().map(|o| o.size).sum();
    let counter = progress.start(
        opts.dataset.as_deref().unwrap_or("bucket"),
        Unit::Bytes,
        Some(total),
    );
    let counts = Counts::default();
    let unreadable = Mutex::new(Vec::new());
    let buffers: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let (built, stats) = BlobWriter::run_with(
        repo,
        &index,
        repo.backend().concurrency(),
        false,
        |writer| -> Result<(Id, Fingerprint, [u64; 3])> {
            let read_one = |i: usize| -> Result<Option<Node>> {
                if progress.should_stop() {
                    return Err(Error::Interrupted);
                }
                let o = &listed[i];
                let (path, escaped) = &placed[i];
                let name = path.rsplit('/').next().unwrap_or(path);
                let prior = old.get(path).filter(|n| n.kind == NodeKind::File);
                if let Some(p) = prior {
                    let before = StoredObject::from_node(path, p);
                    if p.size == o.size
                        && p.mtime_ns == nanos(o.modified)
                        && before.key == o.key
                        && before.etag == o.etag
                        && p.content.iter().all(|id| writer.has(id))
                    {
                        let mut node = p.clone();
                        node.name = name.to_string();
                        node.name_raw = None;
                        counts.unmodified.fetch_add(1, Ordering::Relaxed);
                        counter.inc(o.size);
                        return Ok(Some(node));
                    }
                }
                let reader = match bucket.get_object(&o.key) {
                    Ok(r) => r,
                    Err(RepoError::NotFound { .. }) => {
                        unreadable
                            .lock()
                            .expect("unreadable")
                            .push(format!(
                                "{}: gone when read (deleted after the listing, or a \"folder\" marker: a key ending in '/'); left out",
                                o.key
                            ));
                        return Ok(None);
                    }
                    Err(e) => return Err(source_err(e)),
                };
                let (info, attributes) = (reader.info.clone(), reader.attributes.clone());
                let mut buf = buffers.lock().expect("buffers").pop().unwrap_or_default();
                let mut content = Vec::new();
                let chunked = repo.settings().chunker.chunk_stream(
                    reader,
                    &mut buf,
                    |window, cuts| -> Result<(), Chunking> {
                        if progress.should_stop() {
                            return Err(Chunking::Job(Error::Interrupted));
                        }
                        for r in cuts {
                            content.push(writer.save(BlobKind::Data, &window[r.clone()])?);
                        }
                        let n: u64 = cuts.iter().map(|r| r.len() as u64).sum();
                        counts.bytes_read.fetch_add(n, Ordering::Relaxed);
                        counter.inc(n);
                        Ok(())
                    },
                );
                buffers.lock().expect("buffers").push(buf);
                let size = match chunked {
                    Ok(n) => n,
                    // The reader's message names the object and the store.
                    Err(Chunking::Read(e)) => return Err(Error::Source(e.to_string())),
                    Err(Chunking::Job(e)) => return Err(e),
                };
                if size != info.size {
                    return Err(Error::Source(format!(
                        "{}: {} bytes read of the {} its response announced",
                        o.key, size, info.size
                    )));
                }
                let mut node = Node::new(OsStr::new(name), NodeKind::File);
                node.mode = 0o644;
                (node.uid, node.gid) = bulwark_source::files::current_ids();
                node.mtime_ns = nanos(info.modified);
                node.ctime_ns = node.mtime_ns;
                node.size = size;
                node.content = content;
                node.xattrs = object_xattrs(
                    escaped.then_some(o.key.as_str()),
                    info.etag.as_deref(),
                    &attributes,
                );
                let c = if prior.is_some() {
                    &counts.changed
                } else {
                    &counts.new
                };
                c.fetch_add(1, Ordering::Relaxed);
                Ok(Some(node))
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(opts.parallel.max(1))
                .thread_name(|i| format!("bulwark-s3-get-{i}"))
                .build()
                .map_err(|e| Error::Invalid(format!("cannot start the readers: {e}")))?;
            let nodes: Vec<Option<Node>> = pool.install(|| {
                (0..listed.len())
                    .into_par_iter()
                    .map(read_one)
                    .collect::<Result<_>>()
            })?;
            let mut dirs = [0u64; 3];
            let (root, _) = save_dirs(writer, &tree, "", &nodes, &old, &mut dirs)?;
            let mut objects: Vec<StoredObject> = nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| Some(StoredObject::from_node(&placed[i].0, n.as_ref()?)))
                .collect();
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            let fingerprint = Fingerprint {
                source: source_url.clone(),
                objects: objects.len() as u64,
                bytes: objects.iter().map(|o| o.size).sum(),
                digest: digest(&objects),
            };
            Ok((root, fingerprint, dirs))
        },
    )?;
    drop(counter);
    let (root, fingerprint, dirs) = built;
    let unreadable = unreadable.into_inner().expect("unreadable");
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let summary = Summary {
        files_new: load(&counts.new),
        files_changed: load(&counts.changed),
        files_unmodified: load(&counts.unmodified),
        files_unreadable: unreadable.len() as u64,
        dirs_new: dirs[0],
        dirs_changed: dirs[1],
        dirs_unmodified: dirs[2],
        total_files: fingerprint.objects,
        total_bytes: fingerprint.bytes,
        bytes_read: load(&counts.bytes_read),
        blobs_added: stats.blobs_added,
        bytes_added: stats.bytes_added,
        bytes_added_stored: stats.bytes_stored,
        duration_s: started.elapsed().as_secs_f64(),
        files_changed_while_read: 0,
    };
    let mut meta = BTreeMap::new();
    meta.insert(
        META_KEY.to_string(),
        serde_json::to_value(&fingerprint).expect("a fingerprint serialises"),
    );
    let snapshot = Snapshot {
        time: opts.time.unwrap_or_else(|| Local::now().fixed_offset()),
        tree: root,
        paths,
        hostname: host,
        username: bulwark_repo::user_name(),
        uid: Some(bulwark_source::files::current_ids().0),
        gid: Some(bulwark_source::files::current_ids().1),
        tags: opts.tags,
        parent: parent.as_ref().map(|(id, _)| *id),
        excludes: opts.exclude.patterns().to_vec(),
        dataset: opts.dataset,
        program_version: concat!("bulwark ", env!("CARGO_PKG_VERSION")).to_string(),
        summary: Some(summary.clone()),
        original: None,
        xattrs: true,
        meta,
    };
    // Written last: until this object exists, nothing of this backup is visible.
    lock.ensure_fresh()?;
    let snapshot_id = repo.save_snapshot(&snapshot)?;
    Ok(BackupReport {
        snapshot_id,
        parent: snapshot.parent,
        summary,
        unreadable,
        changed_while_read: Vec::new(),
        warnings: Vec::new(),
    })
}

/// Save the directories of `dir` bottom-up; returns the tree's id and its newest mtime.
/// `dirs` counts new, changed and unmodified directories against the parent snapshot.
fn save_dirs(
    writer: &BlobWriter,
    dir: &BTreeMap<String, Slot>,
    base: &str,
    objects: &[Option<Node>],
    old: &HashMap<String, Node>,
    dirs: &mut [u64; 3],
) -> Result<(Id, i64)> {
    let mut nodes = Vec::new();
    let mut newest = 0i64;
    for (name, slot) in dir {
        let path = if base.is_empty() {
            name.clone()
        } else {
            format!("{base}/{name}")
        };
        match slot {
            Slot::Object(i) => {
                if let Some(n) = &objects[*i] {
                    newest = newest.max(n.mtime_ns);
                    nodes.push(n.clone());
                }
            }
            Slot::Dir(d) => {
                let (id, mtime) = save_dirs(writer, d, &path, objects, old, dirs)?;
                let prior = old.get(&path).and_then(|n| n.subtree);
                dirs[match prior {
                    None => 0,
                    Some(p) if p != id => 1,
                    Some(_) => 2,
                }] += 1;
                let mut node = Node::new(OsStr::new(name), NodeKind::Dir);
                node.mode = 0o755;
                (node.uid, node.gid) = bulwark_source::files::current_ids();
                (node.mtime_ns, node.ctime_ns) = (mtime, mtime);
                node.subtree = Some(id);
                newest = newest.max(mtime);
                nodes.push(node);
            }
        }
    }
    let mut tree = Tree { nodes };
    tree.sort();
    Ok((writer.save(BlobKind::Tree, &tree.to_bytes())?, newest))
}

pub struct BucketRestoreOptions {
    /// The target bucket and prefix, as [`BucketBackupOptions::url`].
    pub target: String,
    /// Restore only keys matching (or below a prefix matching) one of these.
    pub include: Patterns,
    pub exclude: Patterns,
    /// An object already at a key: replaced (always), kept when its size and ETag are the
    /// snapshot's (if-changed), or kept whatever it holds (never).
    pub overwrite: Overwrite,
    /// `latest` is the latest snapshot this filter takes.
    pub filter: SnapshotFilter,
    /// `latest` is the latest snapshot of this dataset.
    pub dataset: Option<String>,
    pub verify: bool,
    /// Objects written at once.
    pub parallel: usize,
}

#[derive(Serialize, Debug, Default)]
pub struct BucketRestoreReport {
    pub snapshot_id: String,
    /// The target, without its query.
    pub target: String,
    pub objects: u64,
    pub bytes: u64,
    /// Objects already in the target and kept (`overwrite`).
    pub skipped: u64,
    pub verified: bool,
    pub objects_verified: u64,
    /// Objects that could not be written or did not verify.
    pub errors: Vec<String>,
}

/// Restore a snapshot (or `ID:PATH` inside one) into a bucket; see the module docs.
pub fn restore_to_bucket(
    repo: &Repository,
    spec: &str,
    opts: &BucketRestoreOptions,
    progress: &dyn Progress,
) -> Result<BucketRestoreReport> {
    let target_url = display_url(&opts.target);
    let target_err = |e: RepoError| Error::Target(format!("s3 target {target_url}: {e}"));
    let target = StoreBackend::bucket(&opts.target).map_err(target_err)?;
    // One listing first: a missing bucket or an unreachable endpoint fails before any write,
    // and it says what is there already.
    let existing: HashMap<String, ObjectInfo> = target
        .list_objects()
        .map_err(target_err)?
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let spec = match &opts.dataset {
        None => spec.to_string(),
        Some(d) => {
            let (snap, path) = browse::split_spec(spec);
            let (id, _) = repo.find_snapshot(snap, |s| {
                opts.filter.matches(s) && s.dataset.as_deref() == Some(d.as_str())
            })?;
            match path {
                Some(p) => format!("{}:{p}", id.to_hex()),
                None => id.to_hex(),
            }
        }
    };
    let sel = browse::select_filtered(repo, &index, &spec, None, &opts.filter)?;
    let tree = browse::selected_tree(repo, &index, &sel)?;
    let mut files: Vec<(StoredObject, Node)> = Vec::new();
    browse::walk(repo, &index, &tree, Path::new(""), &mut |path, node| {
        if node.kind == NodeKind::File {
            let o = StoredObject::from_node(&path.to_string_lossy(), node);
            if selected(&o.key, &opts.include, &opts.exclude) {
                files.push((o, node.clone()));
            }
        }
        Ok(())
    })?;
    let mut report = BucketRestoreReport {
        snapshot_id: sel.id.to_hex(),
        target: target_url,
        ..Default::default()
    };
    files.retain(|(o, _)| {
        let keep = match (opts.overwrite, existing.get(&o.key)) {
            (_, None) | (Overwrite::Always, _) => true,
            (Overwrite::Never, Some(_)) => false,
            (Overwrite::IfChanged, Some(there)) => {
                there.size != o.size || there.etag.is_none() || there.etag != o.etag
            }
        };
        report.skipped += !keep as u64;
        keep
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.parallel.max(1))
        .thread_name(|i| format!("bulwark-s3-put-{i}"))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the writers: {e}")))?;
    let total: u64 = files.iter().map(|(o, _)| o.size).sum();
    let counter = progress.start("restore", Unit::Bytes, Some(total));
    let written: Vec<std::result::Result<u64, String>> = pool.install(|| {
        files
            .par_iter()
            .map(|(o, node)| {
                if progress.should_stop() {
                    return Err(format!("{}: interrupted", o.key));
                }
                let mut reader = SnapshotFileReader::new(repo, &index, node);
                let n = target
                    .put_object(&o.key, &mut reader, &o.attributes)
                    .map_err(|e| format!("{}: {e}", o.key))?;
                counter.inc(n);
                Ok(n)
            })
            .collect()
    });
    drop(counter);
    if progress.should_stop() {
        return Err(Error::Interrupted);
    }
    for w in written {
        match w {
            Ok(n) => {
                report.objects += 1;
                report.bytes += n;
            }
            Err(e) => report.errors.push(e),
        }
    }
    if opts.verify && report.errors.is_empty() {
        let failures: Vec<String> = pool.install(|| {
            files
                .par_iter()
                .filter_map(|(o, node)| verify_object(repo, &index, &target, o, node).err())
                .collect()
        });
        report.objects_verified = report.objects - failures.len() as u64;
        report.verified = failures.is_empty();
        report.errors.extend(failures);
    }
    Ok(report)
}

/// Read an object back: every chunk's keyed hash and every recorded attribute must be the
/// snapshot's, and it may carry no user metadata the snapshot lacks.
fn verify_object(
    repo: &Repository,
    index: &MasterIndex,
    target: &StoreBackend,
    o: &StoredObject,
    node: &Node,
) -> std::result::Result<(), String> {
    let reader = target
        .get_object(&o.key)
        .map_err(|e| format!("{}: cannot read it back: {e}", o.key))?;
    let found = reader.attributes.clone();
    let differs =
        o.attributes
            .iter()
            .filter(|a| !found.contains(a))
            .chain(found.iter().filter(|(k, _)| {
                k.starts_with("meta.") && !o.attributes.iter().any(|(n, _)| n == k)
            }))
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>();
    if !differs.is_empty() {
        return Err(format!(
            "{}: attributes differ from the snapshot: {}",
            o.key,
            differs.join(", ")
        ));
    }
    verify_content(repo, index, reader, node).map_err(|e| format!("{}: {e}", o.key))
}

/// The fingerprint of a snapshot's nodes, as [`backup_bucket`] computed it from the source.
pub fn fingerprint_of_tree(
    repo: &Repository,
    index: &MasterIndex,
    tree: &Tree,
    source: &str,
) -> Result<Fingerprint> {
    let mut objects = Vec::new();
    browse::walk(repo, index, tree, Path::new(""), &mut |path, node| {
        if node.kind == NodeKind::File {
            objects.push(StoredObject::from_node(&path.to_string_lossy(), node));
        }
        Ok(())
    })?;
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Fingerprint {
        source: source.to_string(),
        objects: objects.len() as u64,
        bytes: objects.iter().map(|o| o.size).sum(),
        digest: digest(&objects),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn obj(key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 1,
            etag: None,
            modified: Utc::now(),
        }
    }

    fn paths(dir: &BTreeMap<String, Slot>, base: &str, out: &mut Vec<String>) {
        for (name, slot) in dir {
            let p = format!("{base}/{name}");
            match slot {
                Slot::Object(_) => out.push(p),
                Slot::Dir(d) => paths(d, &p, out),
            }
        }
    }

    #[test]
    fn keys_that_cannot_be_paths_are_escaped_and_the_rest_keep_their_paths() {
        let long = format!("d/{}", "x".repeat(300));
        let keys = [
            "a",
            "a/b",
            "c/d/e",
            ".bulwark-s3-keys/f",
            "%/g",
            long.as_str(),
        ];
        let mut listed: Vec<ObjectInfo> = keys.iter().map(|k| obj(k)).collect();
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        let mut out = Vec::new();
        paths(&layout(&listed), "", &mut out);
        out.sort();
        let hashed = format!(
            "/.bulwark-s3-keys/{}.key",
            blake3::hash(long.as_bytes()).to_hex()
        );
        let mut want = vec![
            "/%/g".to_string(),
            "/.bulwark-s3-keys/.bulwark-s3-keys%2Ff".into(),
            "/.bulwark-s3-keys/a".into(),
            hashed,
            "/a/b".into(),
            "/c/d/e".into(),
        ];
        want.sort();
        assert_eq!(out, want);
    }

    #[test]
    fn include_and_exclude_patterns_select_keys_and_everything_below_prefixes() {
        let p = |v: &[&str]| {
            Patterns::new(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        let (none, inc, exc) = (p(&[]), p(&["/photos"]), p(&["*.tmp", "/photos/raw"]));
        assert!(selected("photos/2026/a.jpg", &inc, &none));
        assert!(!selected("docs/a.pdf", &inc, &none));
        assert!(!selected("photos/raw/a.cr2", &inc, &exc));
        assert!(!selected("x/y.tmp", &none, &exc));
        assert!(selected("x/y.txt", &none, &exc));
    }

    #[test]
    fn the_digest_covers_keys_sizes_tags_and_attributes() {
        let o = StoredObject {
            key: "k".into(),
            size: 3,
            etag: Some("\"e\"".into()),
            attributes: vec![("content-type".into(), "text/plain".into())],
        };
        let base = digest(std::slice::from_ref(&o));
        for changed in [
            StoredObject {
                key: "j".into(),
                ..o.clone()
            },
            StoredObject {
                size: 4,
                ..o.clone()
            },
            StoredObject {
                etag: None,
                ..o.clone()
            },
            StoredObject {
                attributes: vec![],
                ..o.clone()
            },
        ] {
            assert_ne!(digest(&[changed]), base);
        }
    }
}
