//! Backup: walk the sources in parallel, chunk and save what is new, write trees bottom-up, and
//! finally the snapshot, which alone makes the backup visible.
//!
//! Extended attributes are read for every entry, except where the parent snapshot recorded them
//! and the entry's inode, mtime and ctime are unchanged: setting an attribute or an ACL changes
//! the ctime, so the parent's attributes are still the file's. A file whose size or times
//! differ after it was read changed while being read: it is stored as read and reported.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bulwark_repo::lock::LockKind;
use bulwark_repo::writer::{BlobWriter, adopt_unindexed_packs};
use bulwark_repo::{
    BlobKind, Id, MasterIndex, Node, NodeKind, Repository, Snapshot, Summary, Tree,
};
use bulwark_source::Patterns;
use bulwark_source::files::{node_from_metadata, read_xattrs, unchanged};
use chrono::{DateTime, FixedOffset, Local};
use rayon::prelude::*;

use crate::error::{Error, RepoError, Result};
use crate::progress::{Counter, Progress, Unit};

pub enum BackupSource {
    Paths(Vec<PathBuf>),
    /// One stream stored as a file called `name` at the snapshot's root.
    Stream {
        name: String,
        reader: Box<dyn Read + Send>,
    },
    /// Several streams, read one after another, each stored as a file at the snapshot's root
    /// (a database dump and its globals).
    Streams(Vec<(String, Box<dyn Read + Send>)>),
}

impl Default for BackupSource {
    fn default() -> Self {
        BackupSource::Paths(Vec::new())
    }
}

/// What keeps entries out of a file backup besides the patterns (restic's flags of the same
/// names). A directory left out goes with everything below it.
#[derive(Default, Clone)]
pub struct Filters {
    /// A directory holding a file of this name is left out; with bytes, only when the file
    /// starts with them (`--exclude-if-present NAME[:HEADER]`; `--exclude-caches` is
    /// `CACHEDIR.TAG` with its signature).
    pub if_present: Vec<(OsString, Option<Vec<u8>>)>,
    /// Files larger than this many bytes are left out (`--exclude-larger-than`).
    pub larger_than: Option<u64>,
    /// Do not cross into other file systems below each target (`-x`): a mount point is
    /// stored as an empty directory.
    pub one_file_system: bool,
}

/// The signature a `CACHEDIR.TAG` file starts with (bford.info/cachedir).
pub const CACHEDIR_TAG: (&str, &str) = (
    "CACHEDIR.TAG",
    "Signature: 8a477f597d28d172789f06886806bc55",
);

#[derive(Default)]
pub struct BackupOptions {
    pub source: BackupSource,
    pub excludes: Patterns,
    pub filters: Filters,
    /// Read and chunk everything and count what would be stored, but write nothing: no pack,
    /// no index, no snapshot.
    pub dry_run: bool,
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub time: Option<DateTime<FixedOffset>>,
    pub parent: Option<String>,
    pub dataset: Option<String>,
    pub meta: BTreeMap<String, serde_json::Value>,
    /// Metadata only the end of the sources knows (a dump's fingerprint, taken as its rows went
    /// by): called once every source was read whole, before the snapshot is written, and added
    /// to `meta`. An error fails the backup.
    pub late_meta: Option<LateMeta>,
}

pub type LateMeta = Box<dyn FnOnce() -> Result<BTreeMap<String, serde_json::Value>> + Send>;

pub struct BackupReport {
    /// All zeros in a dry run, which saves no snapshot.
    pub snapshot_id: Id,
    pub parent: Option<Id>,
    pub summary: Summary,
    /// Entries that could not be read, each "path: reason"; the snapshot holds everything else.
    pub unreadable: Vec<String>,
    /// Files that changed while they were read, each "path: what changed"; stored as read.
    pub changed_while_read: Vec<String>,
    /// Problems that did not keep an entry out (attributes that could not be read, ...).
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unmodified: AtomicU64,
    total_bytes: AtomicU64,
    bytes_read: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// An error while archiving one entry: the source's (recorded, skipped) or the repository's (fatal).
enum EntryError {
    Source(io::Error),
    Repo(Error),
}

impl From<io::Error> for EntryError {
    fn from(e: io::Error) -> Self {
        EntryError::Source(e)
    }
}

impl From<Error> for EntryError {
    fn from(e: Error) -> Self {
        EntryError::Repo(e)
    }
}

impl From<RepoError> for EntryError {
    fn from(e: RepoError) -> Self {
        EntryError::Repo(e.into())
    }
}

pub fn backup(
    repo: &Repository,
    opts: BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let started = Instant::now();
    let lock = repo.lock(LockKind::Shared)?;
    let (mut index, condemned) = repo.load_index_for_writing()?;
    if !opts.dry_run {
        let adopted = adopt_unindexed_packs(repo, &mut index, &condemned)?;
        if adopted > 0 {
            tracing::info!("reusing {adopted} packs left by an interrupted backup");
        }
    }
    let host = opts.host.clone().unwrap_or_else(bulwark_repo::host_name);
    let (paths, source) = match opts.source {
        BackupSource::Paths(p) => {
            let targets = absolute_targets(&p)?;
            let paths = targets.iter().map(|t| t.display().to_string()).collect();
            (paths, Source::Tree(PathTrie::new(&targets)))
        }
        BackupSource::Stream { name, reader } => {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(Error::Invalid(format!(
                    "'{name}' is not a valid --stdin-name: give a plain file name"
                )));
            }
            (vec![format!("/{name}")], Source::Stream(name, reader))
        }
        BackupSource::Streams(streams) => {
            let mut seen = std::collections::BTreeSet::new();
            for (name, _) in &streams {
                if name.is_empty()
                    || name.contains('/')
                    || name == "."
                    || name == ".."
                    || !seen.insert(name.as_str())
                {
                    return Err(Error::Invalid(format!(
                        "'{name}' is not a valid stream name: give distinct plain file names"
                    )));
                }
            }
            let paths = streams.iter().map(|(n, _)| format!("/{n}")).collect();
            (paths, Source::Streams(streams))
        }
    };
    let parent = find_parent(
        repo,
        opts.parent.as_deref(),
        opts.dataset.as_deref(),
        &host,
        &paths,
    )?;
    let parent_tree =
        parent
            .as_ref()
            .and_then(|(id, snap)| match repo.load_tree(&index, &snap.tree) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(
                        "parent snapshot {} unusable, reading every file: {e}",
                        id.short()
                    );
                    None
                }
            });
    let counter = progress.start(
        opts.dataset.as_deref().unwrap_or("backup"),
        Unit::Bytes,
        None,
    );
    let archiver = Archiver {
        repo,
        index: &index,
        excludes: &opts.excludes,
        filters: &opts.filters,
        parent_has_xattrs: parent.as_ref().is_some_and(|(_, s)| s.xattrs),
        counters: Counters::default(),
        unreadable: Mutex::new(Vec::new()),
        changed_while_read: Mutex::new(Vec::new()),
        warnings: Mutex::new(Vec::new()),
        buffers: Mutex::new(Vec::new()),
        progress: counter.as_ref(),
        stop: progress,
    };
    let scan_done = AtomicBool::new(false);
    let (root, stats) = std::thread::scope(|scope| {
        if let (true, Source::Tree(_)) = (progress.wants_totals(), &source) {
            let (counter, targets, excludes) = (counter.as_ref(), &paths, &opts.excludes);
            let done = &scan_done;
            scope.spawn(move || scan_totals(targets, excludes, counter, done));
        }
        let written = BlobWriter::run_with(
            repo,
            &index,
            repo.backend().concurrency(),
            opts.dry_run,
            |writer| match source {
                Source::Tree(trie) => {
                    archiver.archive_virtual(writer, Path::new("/"), &trie, parent_tree.as_ref())
                }
                Source::Stream(name, reader) => archiver.archive_stream(writer, &name, reader),
                Source::Streams(streams) => archiver.archive_streams(writer, streams),
            },
        );
        scan_done.store(true, Ordering::Relaxed);
        written
    })?;
    let c = &archiver.counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let unreadable = archiver.unreadable.into_inner().expect("unreadable list");
    let changed_while_read = archiver
        .changed_while_read
        .into_inner()
        .expect("changed list");
    let warnings = archiver.warnings.into_inner().expect("warnings");
    let summary = Summary {
        files_new: load(&c.files_new),
        files_changed: load(&c.files_changed),
        files_unmodified: load(&c.files_unmodified),
        files_unreadable: unreadable.len() as u64,
        dirs_new: load(&c.dirs_new),
        dirs_changed: load(&c.dirs_changed),
        dirs_unmodified: load(&c.dirs_unmodified),
        total_files: load(&c.files_new) + load(&c.files_changed) + load(&c.files_unmodified),
        total_bytes: load(&c.total_bytes),
        bytes_read: load(&c.bytes_read),
        blobs_added: stats.blobs_added,
        bytes_added: stats.bytes_added,
        bytes_added_stored: stats.bytes_stored,
        duration_s: started.elapsed().as_secs_f64(),
        files_changed_while_read: changed_while_read.len() as u64,
    };
    let mut meta = opts.meta;
    if let Some(late) = opts.late_meta {
        meta.extend(late()?);
    }
    let snapshot = Snapshot {
        time: opts.time.unwrap_or_else(|| Local::now().fixed_offset()),
        tree: root,
        paths,
        hostname: host,
        username: bulwark_repo::user_name(),
        uid: Some(bulwark_source::files::current_ids().0),
        gid: Some(bulwark_source::files::current_ids().1),
        tags: opts.tags,
        parent: parent.map(|(id, _)| id),
        excludes: opts.excludes.patterns().to_vec(),
        dataset: opts.dataset,
        program_version: concat!("bulwark ", env!("CARGO_PKG_VERSION")).to_string(),
        summary: Some(summary.clone()),
        original: None,
        xattrs: true,
        meta,
    };
    // Written last: until this object exists, nothing of this backup is visible.
    lock.ensure_fresh()?;
    let snapshot_id = if opts.dry_run {
        Id::default()
    } else {
        repo.save_snapshot(&snapshot)?
    };
    Ok(BackupReport {
        snapshot_id,
        parent: snapshot.parent,
        summary,
        unreadable,
        changed_while_read,
        warnings,
    })
}

/// Walk `targets` ahead of the backup, as restic's scanner does, and tell `counter` how many
/// bytes and files there are, so a terminal can show percent and ETA. Only exclude patterns are
/// applied, so the total is an estimate; it gives up quietly on anything unreadable and stops as
/// soon as the backup is `done`.
fn scan_totals(targets: &[String], excludes: &Patterns, counter: &dyn Counter, done: &AtomicBool) {
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut stack: Vec<PathBuf> = targets.iter().map(PathBuf::from).collect();
    while let Some(path) = stack.pop() {
        if done.load(Ordering::Relaxed) {
            return;
        }
        if excludes.matches(&path) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if meta.is_file() {
            bytes += meta.len();
            files += 1;
        }
    }
    counter.set_total(bytes, files);
}

/// What differs between a file's `lstat` before reading and its `fstat` after reading `read`
/// bytes, if anything.
fn change_while_read(before: &fs::Metadata, after: &fs::Metadata, read: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if before.len() != read || after.len() != read {
        return Some(format!(
            "{} bytes when it was opened, {read} read, {} now; stored as read",
            before.len(),
            after.len()
        ));
    }
    if (before.mtime(), before.mtime_nsec()) != (after.mtime(), after.mtime_nsec())
        || (before.ctime(), before.ctime_nsec()) != (after.ctime(), after.ctime_nsec())
    {
        return Some("modified during the read; stored as read".into());
    }
    None
}

enum Source {
    Tree(PathTrie),
    Stream(String, Box<dyn Read + Send>),
    Streams(Vec<(String, Box<dyn Read + Send>)>),
}

/// Absolute, lexically normalised targets (symlinks in them are not resolved, as the user named
/// them); each must exist.
fn absolute_targets(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::Invalid(
            "nothing to back up: give paths, or --stdin-name".into(),
        ));
    }
    let mut out = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| Error::io(format!("{}", p.display()), e))?;
        let mut clean = PathBuf::from("/");
        for c in abs.components() {
            match c {
                Component::Normal(n) => clean.push(n),
                Component::ParentDir => {
                    clean.pop();
                }
                _ => {}
            }
        }
        fs::symlink_metadata(&clean)
            .map_err(|e| Error::io(format!("cannot back up {}", clean.display()), e))?;
        out.push(clean);
    }
    Ok(out)
}

fn find_parent(
    repo: &Repository,
    explicit: Option<&str>,
    dataset: Option<&str>,
    host: &str,
    paths: &[String],
) -> Result<Option<(Id, Snapshot)>> {
    if let Some(spec) = explicit {
        return Ok(Some(repo.find_snapshot(spec, |_| true)?));
    }
    match repo.find_snapshot("latest", |s| {
        s.same_source(host, paths) && s.dataset.as_deref() == dataset
    }) {
        Ok(found) => Ok(Some(found)),
        Err(RepoError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The backup targets arranged as a tree of path components below `/`.
#[derive(Default)]
struct PathTrie {
    /// This path is itself a target: archive everything below it.
    target: bool,
    children: BTreeMap<OsString, PathTrie>,
}

impl PathTrie {
    fn new(targets: &[PathBuf]) -> PathTrie {
        let mut root = PathTrie::default();
        for t in targets {
            let mut node = &mut root;
            for c in t.components() {
                if let Component::Normal(name) = c {
                    if node.target {
                        break; // an ancestor is archived whole already
                    }
                    node = node.children.entry(name.to_os_string()).or_default();
                }
            }
            node.target = true;
            node.children.clear();
        }
        root
    }
}

struct Archiver<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    excludes: &'a Patterns,
    filters: &'a Filters,
    /// The parent snapshot's nodes carry attributes that can be reused (see the module docs).
    parent_has_xattrs: bool,
    counters: Counters,
    unreadable: Mutex<Vec<String>>,
    changed_while_read: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
    buffers: Mutex<Vec<Vec<u8>>>,
    progress: &'a dyn Counter,
    stop: &'a dyn Progress,
}

impl Archiver<'_> {
    fn skip(&self, path: &Path, e: &io::Error) {
        // The front-end lists these once, from the report.
        tracing::debug!("skipping {}: {e}", path.display());
        self.unreadable
            .lock()
            .expect("unreadable list")
            .push(format!("{}: {e}", path.display()));
    }

    /// The entry's extended attributes: the parent's when nothing can have changed them.
    fn capture_xattrs(&self, path: &Path, node: &mut Node, old: Option<&Node>) {
        if let Some(o) = old.filter(|o| {
            self.parent_has_xattrs
                && o.kind == node.kind
                && o.inode == node.inode
                && o.ctime_ns == node.ctime_ns
                && o.mtime_ns == node.mtime_ns
        }) {
            node.xattrs = o.xattrs.clone();
            return;
        }
        match read_xattrs(path) {
            Ok(x) => node.xattrs = x,
            Err(e) => {
                tracing::debug!("{}: extended attributes: {e}", path.display());
                self.warnings.lock().expect("warnings").push(format!(
                    "{}: extended attributes not stored: {e}",
                    path.display()
                ));
            }
        }
    }

    fn parent_subtree(&self, parent: Option<&Node>) -> Option<Tree> {
        let id = parent.filter(|n| n.kind == NodeKind::Dir)?.subtree?;
        match self.repo.load_tree(self.index, &id) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("parent tree {id} unreadable, reading everything below it: {e}");
                None
            }
        }
    }

    fn save_tree(&self, writer: &BlobWriter, mut nodes: Vec<Node>) -> Result<Id> {
        let mut tree = Tree { nodes: Vec::new() };
        tree.nodes.append(&mut nodes);
        tree.sort();
        Ok(writer.save(BlobKind::Tree, &tree.to_bytes())?)
    }

    /// The directories above the targets: their own metadata, and only the children on the way.
    fn archive_virtual(
        &self,
        writer: &BlobWriter,
        dir: &Path,
        trie: &PathTrie,
        parent: Option<&Tree>,
    ) -> Result<Id> {
        let nodes: Vec<Option<Node>> = trie
            .children
            .par_iter()
            .map(|(name, child)| {
                let path = dir.join(name);
                let old = parent.and_then(|t| t.find(name));
                if child.target {
                    let device = match fs::symlink_metadata(&path) {
                        Ok(m) => std::os::unix::fs::MetadataExt::dev(&m),
                        Err(e) => {
                            self.skip(&path, &e);
                            return Ok(None);
                        }
                    };
                    return self.archive_entry(writer, &path, name, old, device);
                }
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        self.skip(&path, &e);
                        return Ok(None);
                    }
                };
                let mut node = node_from_metadata(name, &meta);
                node.kind = NodeKind::Dir;
                self.capture_xattrs(&path, &mut node, old);
                let old_tree = self.parent_subtree(old);
                node.subtree =
                    Some(self.archive_virtual(writer, &path, child, old_tree.as_ref())?);
                Ok(Some(node))
            })
            .collect::<Result<_>>()?;
        self.save_tree(writer, nodes.into_iter().flatten().collect())
    }

    /// Archive one entry below a target on file system `device`; `None` when it is left out.
    fn archive_entry(
        &self,
        writer: &BlobWriter,
        path: &Path,
        name: &OsStr,
        old: Option<&Node>,
        device: u64,
    ) -> Result<Option<Node>> {
        if self.stop.should_stop() {
            return Err(Error::Interrupted);
        }
        if self.excludes.matches(path) {
            return Ok(None);
        }
        match self.try_archive_entry(writer, path, name, old, device) {
            Ok(node) => Ok(node),
            Err(EntryError::Source(e)) => {
                self.skip(path, &e);
                Ok(None)
            }
            Err(EntryError::Repo(e)) => Err(e),
        }
    }

    /// Whether a filter leaves this entry out (see [`Filters`]).
    fn filtered_out(&self, path: &Path, node: &Node) -> io::Result<bool> {
        let f = self.filters;
        match node.kind {
            NodeKind::File => Ok(f.larger_than.is_some_and(|max| node.size > max)),
            NodeKind::Dir => {
                for (marker, header) in &f.if_present {
                    let Ok(mut file) = File::open(path.join(marker)) else {
                        continue;
                    };
                    let Some(header) = header else {
                        return Ok(true);
                    };
                    let mut start = vec![0u8; header.len()];
                    if file.read_exact(&mut start).is_ok() && start == *header {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    fn try_archive_entry(
        &self,
        writer: &BlobWriter,
        path: &Path,
        name: &OsStr,
        old: Option<&Node>,
        device: u64,
    ) -> Result<Option<Node>, EntryError> {
        let meta = fs::symlink_metadata(path)?;
        let mut node = node_from_metadata(name, &meta);
        if self.filtered_out(path, &node)? {
            return Ok(None);
        }
        self.capture_xattrs(path, &mut node, old);
        let c = &self.counters;
        let other_fs = self.filters.one_file_system && node.device != device;
        match node.kind {
            NodeKind::File if other_fs => return Ok(None),
            NodeKind::File => {
                match old
                    .filter(|o| unchanged(o, &node) && o.content.iter().all(|id| writer.has(id)))
                {
                    Some(o) => {
                        node.content = o.content.clone();
                        bump(&c.files_unmodified);
                    }
                    None => {
                        let (content, size) = self.read_file(writer, path, &meta)?;
                        node.content = content;
                        node.size = size;
                        let what = if old.is_some() { "changed" } else { "new" };
                        tracing::info!("{what} {}", path.display());
                        bump(if old.is_some() {
                            &c.files_changed
                        } else {
                            &c.files_new
                        });
                    }
                }
                c.total_bytes.fetch_add(node.size, Ordering::Relaxed);
                self.progress.inc(node.size);
                self.progress.item_done();
            }
            NodeKind::Dir => {
                let entries = if other_fs {
                    Vec::new()
                } else {
                    fs::read_dir(path)?
                        .map(|e| e.map(|e| e.file_name()))
                        .collect::<io::Result<Vec<OsString>>>()?
                };
                let old_tree = self.parent_subtree(old);
                let nodes: Vec<Option<Node>> = entries
                    .par_iter()
                    .map(|n| {
                        let prior = old_tree.as_ref().and_then(|t| t.find(n));
                        self.archive_entry(writer, &path.join(n), n, prior, device)
                    })
                    .collect::<Result<_>>()?;
                let id = self.save_tree(writer, nodes.into_iter().flatten().collect())?;
                let prior = old.and_then(|o| o.subtree);
                bump(match prior {
                    None => &c.dirs_new,
                    Some(p) if p == id => &c.dirs_unmodified,
                    Some(_) => &c.dirs_changed,
                });
                node.subtree = Some(id);
            }
            NodeKind::Symlink if other_fs => return Ok(None),
            NodeKind::Symlink => node.set_link_target(fs::read_link(path)?.as_os_str()),
            _ if other_fs => return Ok(None),
            _ => {}
        }
        Ok(Some(node))
    }

    /// Chunk a stream and save its chunks; returns the content ids and the bytes read.
    fn save_stream(
        &self,
        writer: &BlobWriter,
        reader: impl Read,
    ) -> Result<(Vec<Id>, u64), EntryError> {
        let mut buf = self
            .buffers
            .lock()
            .expect("buffer pool")
            .pop()
            .unwrap_or_default();
        let mut content = Vec::new();
        let chunker = self.repo.settings().chunker;
        let result =
            chunker.chunk_stream(reader, &mut buf, |window, cuts| -> Result<(), EntryError> {
                if self.stop.should_stop() {
                    return Err(EntryError::Repo(Error::Interrupted));
                }
                if let [only] = cuts {
                    content.push(writer.save(BlobKind::Data, &window[only.clone()])?);
                } else {
                    let ids: Vec<Id> = cuts
                        .par_iter()
                        .map(|r| writer.save(BlobKind::Data, &window[r.clone()]))
                        .collect::<bulwark_repo::Result<_>>()?;
                    content.extend(ids);
                }
                let n: usize = cuts.iter().map(|r| r.len()).sum();
                self.counters
                    .bytes_read
                    .fetch_add(n as u64, Ordering::Relaxed);
                Ok(())
            });
        self.buffers.lock().expect("buffer pool").push(buf);
        Ok((content, result?))
    }

    /// Read a file's content; a file whose size or times differ afterwards changed meanwhile.
    fn read_file(
        &self,
        writer: &BlobWriter,
        path: &Path,
        before: &fs::Metadata,
    ) -> Result<(Vec<Id>, u64), EntryError> {
        let file = File::open(path)?;
        if self.stop.wants_totals() {
            self.progress.set_message(&path.display().to_string());
        }
        let (content, size) = self.save_stream(writer, &file)?;
        let after = file.metadata()?;
        if let Some(what) = change_while_read(before, &after, size) {
            tracing::debug!("{} changed while it was read: {what}", path.display());
            self.changed_while_read
                .lock()
                .expect("changed list")
                .push(format!("{}: {what}", path.display()));
        }
        Ok((content, size))
    }

    fn archive_stream(
        &self,
        writer: &BlobWriter,
        name: &str,
        reader: Box<dyn Read + Send>,
    ) -> Result<Id> {
        let node = self.stream_node(writer, name, reader)?;
        self.save_tree(writer, vec![node])
    }

    fn archive_streams(
        &self,
        writer: &BlobWriter,
        streams: Vec<(String, Box<dyn Read + Send>)>,
    ) -> Result<Id> {
        let mut nodes = Vec::new();
        for (name, reader) in streams {
            nodes.push(self.stream_node(writer, &name, reader)?);
        }
        self.save_tree(writer, nodes)
    }

    fn stream_node(
        &self,
        writer: &BlobWriter,
        name: &str,
        reader: Box<dyn Read + Send>,
    ) -> Result<Node> {
        let (content, size) = match self.save_stream(writer, reader) {
            Ok(r) => r,
            Err(EntryError::Source(e)) => {
                return Err(Error::Source(format!("reading the stream for {name}: {e}")));
            }
            Err(EntryError::Repo(e)) => return Err(e),
        };
        let now = Local::now();
        let now_ns = now.timestamp_nanos_opt().unwrap_or_default();
        let mut node = Node::new(OsStr::new(name), NodeKind::File);
        node.mode = 0o600;
        (node.uid, node.gid) = bulwark_source::files::current_ids();
        (node.mtime_ns, node.ctime_ns) = (now_ns, now_ns);
        node.size = size;
        node.content = content;
        bump(&self.counters.files_new);
        self.counters.total_bytes.fetch_add(size, Ordering::Relaxed);
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bulwark_repo::backend::StoreBackend;
    use bulwark_repo::keys::Credential;
    use bulwark_repo::repository::Settings;

    use super::*;

    /// A terminal's view of a backup, written down.
    #[derive(Default)]
    struct Recorder {
        totals: Mutex<Vec<(u64, u64)>>,
        messages: Mutex<Vec<String>>,
        items: AtomicU64,
        bytes: AtomicU64,
    }

    impl Counter for &'static Recorder {
        fn inc(&self, n: u64) {
            self.bytes.fetch_add(n, Ordering::Relaxed);
        }
        fn set_message(&self, m: &str) {
            self.messages.lock().unwrap().push(m.to_string());
        }
        fn set_total(&self, amount: u64, items: u64) {
            self.totals.lock().unwrap().push((amount, items));
        }
        fn item_done(&self) {
            self.items.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Progress for &'static Recorder {
        fn start(&self, _label: &str, _unit: Unit, _total: Option<u64>) -> Box<dyn Counter> {
            Box::new(*self)
        }
        fn wants_totals(&self) -> bool {
            true
        }
    }

    fn tree(root: &Path) {
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::create_dir_all(root.join("cache")).unwrap();
        fs::write(root.join("one"), vec![1u8; 1000]).unwrap();
        fs::write(root.join("a/two"), vec![2u8; 20]).unwrap();
        fs::write(root.join("a/b/three"), vec![3u8; 300]).unwrap();
        fs::write(root.join("cache/skipped"), vec![4u8; 5000]).unwrap();
        std::os::unix::fs::symlink("one", root.join("link")).unwrap();
    }

    #[test]
    fn the_scan_ahead_counts_the_bytes_and_files_a_backup_will_read() {
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path());
        let recorder: &'static Recorder = Box::leak(Box::default());
        let excludes = Patterns::new(&["cache".to_string()]).unwrap();
        let targets = [dir.path().display().to_string()];
        scan_totals(&targets, &excludes, &recorder, &AtomicBool::new(false));
        assert_eq!(*recorder.totals.lock().unwrap(), [(1320, 3)]);
        // A backup that finished first needs no total.
        let late: &'static Recorder = Box::leak(Box::default());
        scan_totals(&targets, &excludes, &late, &AtomicBool::new(true));
        assert!(late.totals.lock().unwrap().is_empty());
    }

    #[test]
    fn a_backup_on_a_terminal_reports_each_file_done_and_the_one_being_read() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        tree(&src);
        let (credential, _) = Credential::new_key_file();
        let backend = Arc::new(StoreBackend::local(&dir.path().join("repo"), true).unwrap());
        let repo = Repository::init(backend, &credential, Settings::default()).unwrap();
        let recorder: &'static Recorder = Box::leak(Box::default());
        let report = backup(
            &repo,
            BackupOptions {
                source: BackupSource::Paths(vec![src.clone()]),
                excludes: Patterns::new(&["cache".to_string()]).unwrap(),
                ..Default::default()
            },
            &recorder,
        )
        .unwrap();
        assert_eq!(report.summary.total_files, 3);
        assert_eq!(recorder.items.load(Ordering::Relaxed), 3);
        assert_eq!(recorder.bytes.load(Ordering::Relaxed), 1320);
        let mut read = recorder.messages.lock().unwrap().clone();
        read.sort();
        let expected: Vec<String> = ["a/b/three", "a/two", "one"]
            .iter()
            .map(|p| src.join(p).display().to_string())
            .collect();
        assert_eq!(read, expected);
        let totals = recorder.totals.lock().unwrap();
        assert!(
            totals.is_empty() || *totals == [(1320, 3)],
            "a total, when the scan finished first, is the backup's: {totals:?}"
        );
    }
}
