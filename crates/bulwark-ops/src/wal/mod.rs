//! PostgreSQL physical backups with archived WAL: base backups, archiving (`wal-push`), fetching
//! (`wal-fetch`), point-in-time restores, the WAL chain `check` verifies and the WAL `prune`
//! removes.
//!
//! - A base backup reads the data directory itself on the database host (several files at once,
//!   see `bulwark_source::db::datadir`), or streams `pg_basebackup`'s tar archive, straight into
//!   the repository: each file or directory becomes one of the snapshot, so the snapshot is the
//!   data directory as `pg_basebackup -Fp` would have written it (with `backup_label` and
//!   `backup_manifest`), files are cut into fixed 1 MiB blocks, since relation files change
//!   in place (an unchanged block costs its hashing, nothing stored; base backups taken before
//!   the blocks were fixed, with content-defined chunks, share none with later ones), and a
//!   restore is an ordinary restore of the tree. The snapshot's `meta` holds [`PhysicalFacts`].
//! - WAL lives beside the snapshots (`bulwark_repo::wal`), in the stream of the dataset and the
//!   cluster's system identifier.
//! - A point-in-time restore picks the newest base backup that ended before the target, checks
//!   the archive has no gap on the way, restores it, and replays WAL in a private server
//!   (`bulwark_source::db::physical::ReplayServer`) whose `restore_command` asks this process
//!   for each file over a Unix socket ([`FetchService`]): the server's account never needs the
//!   repository's credentials. Recovery ends promoted.
//! - The chain: a base backup on timeline `t` needs every segment from its start on, each read
//!   from the timeline its lineage says (the newest timeline descending from `t` with a history
//!   file archived), up to the newest archived segment. A missing one is a gap: recovery cannot
//!   pass it.
//! - Retention: a WAL file is kept while a retained base backup can use it (its timeline descends
//!   from the backup's, its segment is not older than the backup's start); history files are
//!   always kept, and so is every file of a stream no base backup uses yet (its first may be
//!   under way). Prune removes WAL only when no other process holds a lock on the repository,
//!   so no restore loses the WAL it is replaying.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bulwark_repo::lock::{LockKind, live_locks};
use bulwark_repo::wal::{self as repo_wal, WalArchive};
use bulwark_repo::writer::{BlobWriter, adopt_unindexed_packs};
use bulwark_repo::{BlobKind, Id, Node, NodeKind, Repository, Snapshot, Summary, Tree};
use bulwark_source::db::datadir::{self, DataDirBackup};
use bulwark_source::db::physical::{
    self, BaseBackupOptions, BaseBackupSource, Lineage, Lsn, PhysicalFacts, RecoveryTarget,
    ReplayOptions, ReplayOutcome, ReplayServer, Segments,
};
use bulwark_source::db::postgres::PgTools;
use chrono::{DateTime, FixedOffset, Local, Utc};
use rayon::prelude::*;
use serde::Serialize;

use crate::backup::BackupReport;
use crate::browse::Selection;
use crate::database::source_failed;
use crate::error::{Error, RepoError, Result};
use crate::progress::{Progress, Unit};
use crate::restore::{RestoreOptions, restore_selection};

mod serve;
pub use serve::{FetchService, fetch_over_socket};

// ---------------------------------------------------------------------------------------------
// Base backups.

pub struct PhysicalBackupOptions {
    pub source: BaseBackupOptions,
    pub dataset: String,
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub time: Option<DateTime<FixedOffset>>,
}

pub struct PhysicalBackupReport {
    pub backup: BackupReport,
    pub facts: PhysicalFacts,
}

/// Take a base backup of a cluster into `repo`.
pub fn backup_physical(
    repo: &Repository,
    opts: PhysicalBackupOptions,
    progress: &dyn Progress,
) -> Result<PhysicalBackupReport> {
    let started = Instant::now();
    let lock = repo.lock(LockKind::Shared)?;
    let (mut index, condemned) = repo.load_index_for_writing()?;
    adopt_unindexed_packs(repo, &mut index, &condemned)?;
    let bb = physical::start_base_backup(&opts.source).map_err(source_failed)?;
    let cluster = bb.cluster;
    let counter = progress.start(&opts.dataset, Unit::Bytes, None);
    let direct = matches!(bb.source, BaseBackupSource::DataDir(_));
    let (got, stats, range, stop_time) = match bb.source {
        BaseBackupSource::Stream(mut stream) => {
            let stored = BlobWriter::run(repo, &index, repo.backend().concurrency(), |writer| {
                Ingest {
                    writer,
                    counter: counter.as_ref(),
                    stop: progress,
                }
                .tar(&mut stream)
            });
            let (got, stats) = match stored {
                Ok(v) => v,
                // A dying pg_basebackup cuts its stream short: its own words say why.
                Err(e) => return Err(stream.failure().map(Error::Source).unwrap_or(e)),
            };
            let stop_time = stream.finish().map_err(source_failed)?;
            let manifest = got
                .manifest
                .as_deref()
                .ok_or_else(|| Error::Source("pg_basebackup sent no backup_manifest".into()))?;
            let range = physical::manifest_wal_range(manifest).map_err(source_failed)?;
            (got, stats, range, stop_time)
        }
        BaseBackupSource::DataDir(backup) => {
            let ((got, stopped), stats) =
                BlobWriter::run(repo, &index, repo.backend().concurrency(), |writer| {
                    Ingest {
                        writer,
                        counter: counter.as_ref(),
                        stop: progress,
                    }
                    .data_dir(backup)
                })?;
            let range = physical::WalRange {
                timeline: stopped.timeline,
                start: stopped.start_lsn,
                end: stopped.end_lsn,
            };
            (got, stats, range, stopped.stop_time)
        }
    };
    drop(counter);
    let system_id = got
        .system_id
        .ok_or_else(|| Error::Source("the base backup holds no global/pg_control".into()))?;
    let facts = PhysicalFacts {
        server_version: cluster.server_version,
        server_version_num: cluster.server_version_num,
        major: cluster.server_version_num / 10000,
        system_identifier: system_id.to_string(),
        wal_stream: repo_wal::stream_id(repo, &opts.dataset, system_id),
        timeline: range.timeline,
        start_lsn: range.start,
        end_lsn: range.end,
        wal_segment_size: cluster.wal_segment_size,
        start_time: cluster.start_time,
        stop_time,
        database: cluster.database,
        superuser: cluster.superuser,
        data_directory: cluster.data_directory.clone(),
        files: got.files,
        bytes: got.bytes,
        pg_basebackup_version: cluster.pg_basebackup_version,
        direct,
    };
    let summary = Summary {
        files_new: got.files,
        total_files: got.files,
        dirs_new: got.dirs,
        total_bytes: got.bytes,
        bytes_read: got.bytes,
        blobs_added: stats.blobs_added,
        bytes_added: stats.bytes_added,
        bytes_added_stored: stats.bytes_stored,
        duration_s: started.elapsed().as_secs_f64(),
        ..Default::default()
    };
    let snapshot = Snapshot {
        time: opts.time.unwrap_or_else(|| Local::now().fixed_offset()),
        tree: got.root,
        paths: vec![
            cluster
                .data_directory
                .unwrap_or_else(|| format!("/{}", opts.dataset)),
        ],
        hostname: opts.host.unwrap_or_else(bulwark_repo::host_name),
        username: bulwark_repo::user_name(),
        tags: opts.tags,
        parent: None,
        excludes: Vec::new(),
        dataset: Some(opts.dataset),
        program_version: concat!("bulwark ", env!("CARGO_PKG_VERSION")).to_string(),
        summary: Some(summary.clone()),
        meta: BTreeMap::from([(
            physical::META_KEY.to_string(),
            serde_json::to_value(&facts).expect("facts serialise"),
        )]),
        uid: Some(bulwark_source::files::current_ids().0),
        gid: Some(bulwark_source::files::current_ids().1),
        original: None,
        // Neither pg_basebackup's tar nor the data directory's walk carries extended attributes.
        xattrs: false,
    };
    lock.ensure_fresh()?;
    let snapshot_id = repo.save_snapshot(&snapshot)?;
    Ok(PhysicalBackupReport {
        backup: BackupReport {
            snapshot_id,
            parent: None,
            summary,
            unreadable: Vec::new(),
            changed_while_read: Vec::new(),
            warnings: Vec::new(),
        },
        facts,
    })
}

struct Ingest<'a, 'w> {
    writer: &'a BlobWriter<'w>,
    counter: &'a dyn crate::progress::Counter,
    stop: &'a dyn Progress,
}

#[derive(Default)]
struct Ingested {
    root: Id,
    files: u64,
    dirs: u64,
    bytes: u64,
    system_id: Option<u64>,
    manifest: Option<Vec<u8>>,
}

fn tar_error(e: io::Error) -> Error {
    Error::Source(format!("reading the base backup stream: {e}"))
}

impl Ingest<'_, '_> {
    /// Store every member of the tar stream and build the trees.
    fn tar(&self, reader: impl Read) -> Result<Ingested> {
        let mut archive = tar::Archive::new(reader);
        let mut out = Ingested::default();
        let mut members = Members::default();
        let mut buf = Vec::new();
        for entry in archive.entries().map_err(tar_error)? {
            if self.stop.should_stop() {
                return Err(Error::Interrupted);
            }
            let mut entry = entry.map_err(tar_error)?;
            let path = clean_member_path(&entry.path().map_err(tar_error)?)?;
            let Some(name) = path.file_name().map(OsStr::to_os_string) else {
                continue;
            };
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Directory => NodeKind::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => NodeKind::File,
                tar::EntryType::Symlink => NodeKind::Symlink,
                other => {
                    tracing::warn!(
                        "skipping {} in the base backup: a {other:?}",
                        path.display()
                    );
                    continue;
                }
            };
            let mut node = Node::new(&name, kind);
            node.mode = header.mode().map_err(tar_error)? & 0o7777;
            node.uid = header.uid().map_err(tar_error)? as u32;
            node.gid = header.gid().map_err(tar_error)? as u32;
            let mtime = header.mtime().map_err(tar_error)? as i64 * 1_000_000_000;
            (node.mtime_ns, node.atime_ns, node.ctime_ns) = (mtime, Some(mtime), mtime);
            match kind {
                NodeKind::Dir => {
                    members.dir(path, node);
                    out.dirs += 1;
                    continue;
                }
                NodeKind::Symlink => {
                    let target = entry.link_name().map_err(tar_error)?.ok_or_else(|| {
                        Error::Source(format!("{}: a link without a target", path.display()))
                    })?;
                    node.set_link_target(target.as_os_str());
                }
                _ => {
                    let (content, size) = if path == Path::new("global/pg_control") {
                        let (data, id) = read_control(&mut entry).map_err(tar_error)?;
                        out.system_id = Some(id);
                        self.save_stream(io::Cursor::new(data), &mut buf)
                    } else if path == Path::new("backup_manifest") {
                        let mut data = Vec::new();
                        entry.read_to_end(&mut data).map_err(tar_error)?;
                        let saved = self.save_stream(io::Cursor::new(&data), &mut buf);
                        out.manifest = Some(data);
                        saved
                    } else {
                        self.save_stream(&mut entry, &mut buf)
                    }
                    .map_err(|e| e.into_error(tar_error))?;
                    node.content = content;
                    node.size = size;
                    out.files += 1;
                    out.bytes += size;
                }
            }
            members.add(&path, node);
        }
        out.root = members.save(self.writer)?;
        Ok(out)
    }

    /// Store every member of the data directory, stop the backup, add the `backup_label` and
    /// `backup_manifest` it returns, and build the trees. Files are stored side by side, the
    /// largest first: a large table's 1 GiB segments would otherwise leave one core idle while
    /// one stream is cut into chunks.
    fn data_dir(&self, backup: DataDirBackup) -> Result<(Ingested, datadir::Stopped)> {
        let mut out = Ingested::default();
        let mut members = Members::default();
        let dir = backup.dir().to_path_buf();
        let root_meta = std::fs::metadata(&dir)
            .map_err(|e| Error::Source(format!("cannot read {}: {e}", dir.display())))?;
        let entries = backup.entries().map_err(source_failed)?;
        let mut files = Vec::new();
        for entry in &entries {
            let Some(name) = entry.path.file_name() else {
                continue;
            };
            let mut node = bulwark_source::files::node_from_metadata(name, &entry.meta);
            // Members of a data directory are not hard links of each other; restore none as one.
            (node.inode, node.device, node.links) = (0, 0, 1);
            match node.kind {
                NodeKind::Dir => {
                    members.dir(entry.path.clone(), node);
                    out.dirs += 1;
                }
                NodeKind::Symlink => {
                    let full = dir.join(&entry.path);
                    let target = std::fs::read_link(&full)
                        .map_err(|e| Error::Source(format!("reading {}: {e}", full.display())))?;
                    node.set_link_target(target.as_os_str());
                    members.add(&entry.path, node);
                }
                NodeKind::File => files.push((entry, node)),
                _ => tracing::warn!(
                    "skipping {} in the base backup: not a file, directory or link",
                    entry.path.display()
                ),
            }
        }
        files.sort_by_key(|(e, _)| std::cmp::Reverse(e.meta.len()));
        let stored: Vec<Option<StoredFile>> = files
            .into_par_iter()
            .map_init(Vec::new, |buf, (entry, node)| {
                self.data_dir_file(&dir, entry, node, buf)
            })
            .collect::<Result<_>>()?;
        let mut read = Vec::new();
        for f in stored.into_iter().flatten() {
            out.files += 1;
            out.bytes += f.node.size;
            out.system_id = out.system_id.or(f.system_id);
            members.add(&f.path, f.node);
            read.push(f.read);
        }
        let stopped = backup
            .stop(read, &|| self.stop.should_stop())
            .map_err(|e| {
                if self.stop.should_stop() {
                    Error::Interrupted
                } else {
                    source_failed(e)
                }
            })?;
        let mut buf = Vec::new();
        for (name, data) in [
            ("backup_label", &stopped.backup_label),
            ("backup_manifest", &stopped.backup_manifest),
        ] {
            let mut node = Node::new(OsStr::new(name), NodeKind::File);
            node.mode = 0o600;
            (node.uid, node.gid) = (root_meta.uid(), root_meta.gid());
            let now = stopped.stop_time.timestamp_nanos_opt().unwrap_or_default();
            (node.mtime_ns, node.atime_ns, node.ctime_ns) = (now, Some(now), now);
            let (content, size) = self
                .save_stream(io::Cursor::new(data), &mut buf)
                .map_err(|e| e.into_error(tar_error))?;
            node.content = content;
            node.size = size;
            out.files += 1;
            out.bytes += size;
            members.add(Path::new(name), node);
        }
        out.root = members.save(self.writer)?;
        Ok((out, stopped))
    }

    /// Store one file of the data directory; `None` when it vanished since the walk (a dropped
    /// table: replay removes it anyway).
    fn data_dir_file(
        &self,
        dir: &Path,
        entry: &datadir::Entry,
        mut node: Node,
        buf: &mut Vec<u8>,
    ) -> Result<Option<StoredFile>> {
        if self.stop.should_stop() {
            return Err(Error::Interrupted);
        }
        let full = dir.join(&entry.path);
        let read_error = |e: io::Error| Error::Source(format!("reading {}: {e}", full.display()));
        let Some(mut reader) = datadir::open(dir, entry).map_err(read_error)? else {
            return Ok(None);
        };
        let mut system_id = None;
        let (content, _) = if entry.path == Path::new("global/pg_control") {
            let (data, id) = read_control(&mut reader).map_err(read_error)?;
            system_id = Some(id);
            self.save_stream(io::Cursor::new(data), buf)
        } else {
            self.save_stream(&mut reader, buf)
        }
        .map_err(|e| e.into_error(read_error))?;
        let read = reader.finish();
        node.content = content;
        node.size = read.size();
        Ok(Some(StoredFile {
            path: entry.path.clone(),
            node,
            read,
            system_id,
        }))
    }

    fn save_stream(
        &self,
        reader: impl Read,
        buf: &mut Vec<u8>,
    ) -> std::result::Result<(Vec<Id>, u64), StreamError> {
        let mut content = Vec::new();
        // A data directory's files change in place: fixed blocks (see `fixed_blocks`).
        let each = |window: &[u8], cuts: &[Range<usize>]| -> std::result::Result<(), StreamError> {
            let ids: Vec<Id> = cuts
                .par_iter()
                .map(|r| self.writer.save(BlobKind::Data, &window[r.clone()]))
                .collect::<bulwark_repo::Result<_>>()
                .map_err(|e| StreamError::Repo(e.into()))?;
            content.extend(ids);
            self.counter
                .inc(cuts.iter().map(|r| r.len() as u64).sum::<u64>());
            Ok(())
        };
        let total = bulwark_repo::chunker::fixed_blocks(reader, buf, each)?;
        Ok((content, total))
    }
}

/// Read `global/pg_control` whole, and the cluster's system identifier in it.
fn read_control(reader: &mut impl Read) -> io::Result<(Vec<u8>, u64)> {
    let mut data = Vec::new();
    reader.read_to_end(&mut data)?;
    let id = physical::control_system_identifier(&data)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.0))?;
    Ok((data, id))
}

/// A file of the data directory, stored.
struct StoredFile {
    path: PathBuf,
    node: Node,
    read: datadir::ReadFile,
    system_id: Option<u64>,
}

/// The directories and nodes of a base backup as they arrive, saved as trees at the end.
#[derive(Default)]
struct Members {
    children: BTreeMap<PathBuf, Vec<Node>>,
    dirs: BTreeMap<PathBuf, Node>,
}

impl Members {
    fn dir(&mut self, path: PathBuf, node: Node) {
        self.dirs.insert(path.clone(), node);
        self.children.entry(path).or_default();
    }

    fn add(&mut self, path: &Path, node: Node) {
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        self.children.entry(parent).or_default().push(node);
    }

    /// Save the trees bottom-up, the deepest directories first, each into its parent; returns
    /// the root tree.
    fn save(mut self, writer: &BlobWriter) -> Result<Id> {
        let mut order: Vec<PathBuf> = self.children.keys().cloned().collect();
        order.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for path in order {
            if path.as_os_str().is_empty() {
                continue;
            }
            let nodes = self.children.remove(&path).unwrap_or_default();
            let mut tree = Tree { nodes };
            tree.sort();
            let id = writer.save(BlobKind::Tree, &tree.to_bytes())?;
            let mut node = self.dirs.remove(&path).unwrap_or_else(|| {
                let mut n = Node::new(path.file_name().unwrap_or_default(), NodeKind::Dir);
                n.mode = 0o700;
                n
            });
            node.subtree = Some(id);
            self.add(&path, node);
        }
        let mut root = Tree {
            nodes: self.children.remove(Path::new("")).unwrap_or_default(),
        };
        root.sort();
        Ok(writer.save(BlobKind::Tree, &root.to_bytes())?)
    }
}

/// Reading the stream failed (the source's fault), or storing it did (the repository's).
enum StreamError {
    Read(io::Error),
    Repo(Error),
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> StreamError {
        StreamError::Read(e)
    }
}

impl StreamError {
    /// The error, a read failure described by `read`.
    fn into_error(self, read: impl FnOnce(io::Error) -> Error) -> Error {
        match self {
            StreamError::Read(e) => read(e),
            StreamError::Repo(e) => e,
        }
    }
}

/// A tar member's path made relative and plain; `..` or an absolute path is refused.
fn clean_member_path(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(Error::Source(format!(
                    "the base backup holds an unsafe path '{}'",
                    p.display()
                )));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Base backups of a dataset, and the WAL chain.

/// A base backup snapshot with its facts.
#[derive(Clone)]
pub struct BaseBackupSnapshot {
    pub id: Id,
    pub snapshot: Snapshot,
    pub facts: PhysicalFacts,
}

/// The physical facts of a snapshot, if it is a base backup.
pub fn facts_of(snap: &Snapshot) -> Option<Result<PhysicalFacts>> {
    let v = snap.meta.get(physical::META_KEY)?;
    Some(
        serde_json::from_value(v.clone())
            .map_err(|e| Error::corrupt("a base backup snapshot", format!("its facts: {e}"))),
    )
}

/// Every base backup among `snapshots`, oldest first.
pub fn base_backups(snapshots: &[(Id, Snapshot)]) -> Vec<BaseBackupSnapshot> {
    let mut out: Vec<BaseBackupSnapshot> = snapshots
        .iter()
        .filter_map(|(id, s)| match facts_of(s)? {
            Ok(facts) => Some(BaseBackupSnapshot {
                id: *id,
                snapshot: s.clone(),
                facts,
            }),
            Err(e) => {
                tracing::warn!("snapshot {}: {e}", id.short());
                None
            }
        })
        .collect();
    out.sort_by_key(|b| b.facts.stop_time);
    out
}

/// One stream's archived files and timelines, read once.
pub struct StreamFiles {
    pub files: BTreeMap<String, u64>,
    /// Timeline -> its lineage, for every history file archived (and timeline 1).
    pub lineages: BTreeMap<u32, Lineage>,
}

impl StreamFiles {
    pub fn read(archive: &WalArchive) -> Result<StreamFiles> {
        let files: BTreeMap<String, u64> = archive.list()?.into_iter().collect();
        let mut lineages = BTreeMap::from([(1, Lineage::new(1, Vec::new()))]);
        for name in files.keys() {
            if let Some(tli) = physical::history_timeline(name) {
                let text = archive.fetch(name)?.unwrap_or_default();
                let branches = physical::parse_history(&String::from_utf8_lossy(&text))
                    .map_err(|e| Error::corrupt(format!("WAL history file {name}"), e))?;
                lineages.insert(tli, Lineage::new(tli, branches));
            }
        }
        Ok(StreamFiles { files, lineages })
    }

    /// The timeline recovery from timeline `tli` follows by default (`latest`): the newest one
    /// whose history passes through `tli`.
    pub fn latest_from(&self, tli: u32) -> Lineage {
        self.lineages
            .values()
            .filter(|l| l.includes(tli))
            .max_by_key(|l| l.timeline)
            .cloned()
            .unwrap_or_else(|| Lineage::new(tli, Vec::new()))
    }

    /// The newest segment archived along `lineage`: `(segment number, file name)`.
    pub fn newest_along(&self, lineage: &Lineage, segs: Segments) -> Option<(u64, String)> {
        self.files
            .keys()
            .filter_map(|n| {
                let (tli, seg) = segs.parse(n)?;
                (!n.ends_with(".partial")
                    && lineage.includes(tli)
                    && lineage.timeline_of(seg, segs) == tli)
                    .then(|| (seg, n.clone()))
            })
            .max()
    }
}

/// What the archive holds for one base backup: how far it can be restored, and the first gap.
#[derive(Serialize, Debug, Clone)]
pub struct Chain {
    pub snapshot: String,
    pub timeline: u32,
    pub start_segment: String,
    /// The newest segment recovery can reach without a gap.
    pub reaches: Option<String>,
    /// The first missing segment before the newest archived one.
    pub gap: Option<String>,
    /// The gap falls before the backup's end: it cannot even become consistent.
    pub unrestorable: bool,
}

/// Follow `b`'s lineage from its first segment to the newest archived one.
pub fn chain_of(b: &BaseBackupSnapshot, files: &StreamFiles) -> Chain {
    let segs = b.facts.segments();
    let lineage = files.latest_from(b.facts.timeline);
    let start = b.facts.start_segment();
    let newest = files
        .newest_along(&lineage, segs)
        .map(|(s, _)| s)
        .unwrap_or(start)
        .max(b.facts.end_segment());
    let mut reaches = None;
    let mut gap = None;
    for seg in start..=newest {
        let name = segs.name(lineage.timeline_of(seg, segs), seg);
        if files.files.contains_key(&name) {
            reaches = Some(name);
        } else {
            gap = Some((seg, name));
            break;
        }
    }
    Chain {
        snapshot: b.id.to_hex(),
        timeline: b.facts.timeline,
        start_segment: segs.name(b.facts.timeline, start),
        reaches,
        unrestorable: gap
            .as_ref()
            .is_some_and(|(s, _)| *s <= b.facts.end_segment()),
        gap: gap.map(|(_, n)| n),
    }
}

/// `check`'s part: every base backup's chain, and (with `read_all`) every WAL file read back.
pub fn check_chains(
    repo: &Repository,
    snapshots: &[(Id, Snapshot)],
    read: WalRead,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<usize> {
    let backups = base_backups(snapshots);
    let streams = repo_wal::streams(repo)?;
    let used: BTreeSet<&str> = backups
        .iter()
        .map(|b| b.facts.wal_stream.as_str())
        .collect();
    for (stream, files) in &streams {
        if !used.contains(stream.as_str()) {
            warnings.push(format!(
                "{} archived WAL files belong to a stream no base backup uses yet",
                files.len()
            ));
        }
    }
    let mut by_stream: BTreeMap<&str, Vec<&BaseBackupSnapshot>> = BTreeMap::new();
    for b in &backups {
        by_stream.entry(&b.facts.wal_stream).or_default().push(b);
    }
    for (stream, bs) in by_stream {
        let archive = WalArchive::new(repo, stream);
        let files = match StreamFiles::read(&archive) {
            Ok(f) => f,
            Err(e) => {
                errors.push(format!("WAL of dataset '{}': {e}", dataset_of(bs[0])));
                continue;
            }
        };
        for b in bs {
            let c = chain_of(b, &files);
            let who = format!(
                "base backup {} of dataset '{}' (timeline {}, from {})",
                b.id.short(),
                dataset_of(b),
                b.facts.timeline,
                c.start_segment
            );
            match (&c.gap, c.unrestorable) {
                (Some(g), true) => errors.push(format!(
                    "{who} cannot be restored: WAL segment {g}, which it needs to become consistent, is missing"
                )),
                (Some(g), false) => errors.push(format!(
                    "{who}: WAL segment {g} is missing, so recovery cannot pass {} (it reaches {})",
                    gap_lsn(g, b.facts.segments()),
                    c.reaches.as_deref().unwrap_or("nothing")
                )),
                (None, _) => {}
            }
        }
        let names: Vec<&String> = match read {
            WalRead::None => Vec::new(),
            WalRead::All => files.files.keys().collect(),
            WalRead::Subset(f) => {
                let key: [u8; 32] = bulwark_repo::crypto::random_array();
                files
                    .files
                    .keys()
                    .filter(|n| {
                        let h = blake3::keyed_hash(&key, n.as_bytes());
                        let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
                        (x as f64 / u64::MAX as f64) < f
                    })
                    .collect()
            }
        };
        let bad: Vec<String> = names
            .par_iter()
            .filter_map(|n| archive.fetch(n).err().map(|e| e.to_string()))
            .collect();
        errors.extend(bad);
    }
    Ok(streams.values().map(Vec::len).sum())
}

/// How much archived WAL `check` reads back.
#[derive(Clone, Copy, Debug)]
pub enum WalRead {
    None,
    All,
    Subset(f64),
}

fn dataset_of(b: &BaseBackupSnapshot) -> &str {
    b.snapshot.dataset.as_deref().unwrap_or("")
}

fn gap_lsn(name: &str, segs: Segments) -> String {
    segs.parse(name)
        .map(|(_, s)| segs.start(s).to_string())
        .unwrap_or_default()
}

/// Prune's part: remove the WAL no retained base backup can use (see the module docs).
#[derive(Serialize, serde::Deserialize, Debug, Default, Clone, PartialEq)]
pub struct WalPruneReport {
    pub files_deleted: usize,
    pub bytes_freed: u64,
    /// Why nothing was removed, when so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postponed: Option<String>,
}

pub fn prune_wal(repo: &Repository, me: Id, dry_run: bool) -> Result<WalPruneReport> {
    let mut report = WalPruneReport::default();
    let streams = repo_wal::streams(repo)?;
    if streams.is_empty() {
        return Ok(report);
    }
    let others = live_locks(repo.backend().as_ref(), repo.key())?
        .into_iter()
        .filter(|(_, l)| l.holder != me)
        .count();
    if others > 0 && !dry_run {
        report.postponed = Some(format!(
            "WAL is pruned when no other process holds a lock ({others} do)"
        ));
        return Ok(report);
    }
    let (snapshots, bad) = repo.load_snapshots()?;
    if let Some(e) = bad.into_iter().next() {
        return Err(Error::Invalid(format!(
            "refusing to prune WAL while a snapshot is unreadable ({e}); run `bulwark check`"
        )));
    }
    let backups = base_backups(&snapshots);
    for stream in streams.keys() {
        let mine: Vec<&BaseBackupSnapshot> = backups
            .iter()
            .filter(|b| &b.facts.wal_stream == stream)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let archive = WalArchive::new(repo, stream.clone());
        let files = StreamFiles::read(&archive)?;
        let segs = mine[0].facts.segments();
        for (name, size) in &files.files {
            if physical::history_timeline(name).is_some() {
                continue;
            }
            let Some((tli, seg)) = segs.parse(name.split('.').next().unwrap_or(name)) else {
                continue;
            };
            let lineage = files.lineages.get(&tli);
            let needed = mine.iter().any(|b| {
                let descends = match lineage {
                    Some(l) => l.includes(b.facts.timeline),
                    // Unknown ancestry: keep it.
                    None => true,
                };
                descends && seg >= b.facts.start_segment()
            });
            if !needed {
                if !dry_run {
                    archive.remove(name)?;
                }
                report.files_deleted += 1;
                report.bytes_freed += size;
            }
        }
    }
    Ok(report)
}

/// When the newest WAL of `dataset` was archived: the newest segment of the stream of its
/// newest base backup (`None` without base backups or WAL).
pub fn newest_archived(repo: &Repository, dataset: &str) -> Result<Option<DateTime<Utc>>> {
    let (snapshots, _) = repo.load_snapshots()?;
    let backups = base_backups(&snapshots);
    let Some(b) = backups
        .iter()
        .rev()
        .find(|b| b.snapshot.dataset.as_deref() == Some(dataset))
    else {
        return Ok(None);
    };
    let archive = WalArchive::new(repo, b.facts.wal_stream.clone());
    let segs = b.facts.segments();
    let newest = archive
        .list()?
        .into_iter()
        .filter_map(|(n, _)| segs.parse(&n).map(|k| (k, n)))
        .max();
    match newest {
        Some((_, name)) => Ok(Some(archive.header(&name)?.archived_at)),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Point-in-time restores.

pub struct PitrOptions {
    pub dataset: String,
    /// `latest` (the base backup is chosen by the target) or a base backup's snapshot id.
    pub spec: String,
    pub target: RecoveryTarget,
    pub data_dir: PathBuf,
    /// The bulwark program the server's `restore_command` runs (`wal-fetch --socket`).
    pub program: PathBuf,
    /// A throwaway replay (restore tests): no fsync; the server is left running for checks.
    pub throwaway: bool,
    /// How long replay may take.
    pub timeout: Duration,
    /// Check the restored files against the backup manifest before replaying.
    pub verify_manifest: bool,
}

#[derive(Serialize, Debug, Default, Clone)]
pub struct PitrReport {
    pub snapshot_id: String,
    pub dataset: String,
    /// When the base backup ended (server clock): the earliest point it restores to.
    pub base_backup_stop: String,
    pub target: String,
    pub data_dir: String,
    pub outcome: ReplayOutcome,
    pub wal_files_fetched: u64,
    pub wal_bytes_fetched: u64,
    /// Of the files fetched, those read ahead while the server replayed the one before.
    pub wal_files_ahead: u64,
    /// How long the server waited for this process's answers, in all (seconds).
    pub wal_wait_s: f64,
    /// The program the server's `restore_command` ran.
    pub wal_fetch_program: String,
    pub phases: BTreeMap<String, f64>,
    pub duration_s: f64,
    /// `pg_verifybackup` of the restored files: passed, and its word (absent: not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<(bool, String)>,
    pub warnings: Vec<String>,
}

/// The base backups of `dataset` and the one a restore to `target` starts from.
pub fn choose_base_backup(
    repo: &Repository,
    dataset: &str,
    spec: &str,
    target: &RecoveryTarget,
) -> Result<(BaseBackupSnapshot, Vec<BaseBackupSnapshot>)> {
    let (snapshots, _) = repo.load_snapshots()?;
    let all: Vec<BaseBackupSnapshot> = base_backups(&snapshots)
        .into_iter()
        .filter(|b| b.snapshot.dataset.as_deref() == Some(dataset))
        .collect();
    if all.is_empty() {
        return Err(Error::Repo(RepoError::NotFound {
            what: format!("a base backup of dataset '{dataset}'"),
        }));
    }
    let chosen = if spec == "latest" {
        let fits = |b: &&BaseBackupSnapshot| match target {
            RecoveryTarget::Latest => true,
            RecoveryTarget::Time(t) => b.facts.stop_time <= *t,
            RecoveryTarget::Lsn(l) => b.facts.end_lsn <= *l,
        };
        all.iter().rev().find(fits).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "no base backup of dataset '{dataset}' ends before {target}: the earliest restorable point is {} \
                 (LSN {})",
                all[0].facts.stop_time.to_rfc3339(),
                all[0].facts.end_lsn
            ))
        })?
    } else {
        let (id, _) = repo.find_snapshot(spec, |_| true)?;
        all.iter().find(|b| b.id == id).cloned().ok_or_else(|| {
            Error::Invalid(format!(
                "snapshot {} is not a base backup of dataset '{dataset}'",
                id.short()
            ))
        })?
    };
    Ok((chosen, all))
}

/// Refuse, before restoring anything, a target the archive cannot reach (see [`chain_of`]).
fn precheck(
    b: &BaseBackupSnapshot,
    files: &StreamFiles,
    archive: &WalArchive,
    target: &RecoveryTarget,
) -> Result<()> {
    let c = chain_of(b, files);
    let Some(gap) = &c.gap else {
        return Ok(());
    };
    let segs = b.facts.segments();
    let at = gap_lsn(gap, segs);
    if c.unrestorable {
        return Err(Error::Invalid(format!(
            "base backup {} cannot be restored: WAL segment {gap}, which it needs to become consistent, is not in \
             the archive",
            b.id.short()
        )));
    }
    let limit: Lsn = at.parse().unwrap_or_default();
    let past = match target {
        RecoveryTarget::Latest => true,
        RecoveryTarget::Lsn(l) => *l > limit,
        RecoveryTarget::Time(t) => match &c.reaches {
            Some(last) => archive.header(last).map(|h| *t >= h.archived_at)?,
            None => true,
        },
    };
    if past {
        return Err(Error::Invalid(format!(
            "WAL segment {gap} is missing from the archive: recovery cannot pass LSN {at}, so {target} is out of \
             reach from base backup {} (restore to a point before the gap)",
            b.id.short()
        )));
    }
    Ok(())
}

/// Restore `b` into `opts.data_dir`, then replay with a private server and run `then` on it
/// while it runs (a restore stops it; a restore test checks it). The service answering the
/// server's `restore_command` runs meanwhile.
pub fn replay<T>(
    repo: &Repository,
    b: &BaseBackupSnapshot,
    opts: &PitrOptions,
    report: &mut PitrReport,
    progress: &dyn Progress,
    then: impl FnOnce(&mut ReplayServer, &mut PitrReport) -> T,
) -> Result<T> {
    let started = Instant::now();
    let archive = WalArchive::new(repo, b.facts.wal_stream.clone());
    let files = StreamFiles::read(&archive)?;
    precheck(b, &files, &archive, &opts.target)?;
    report.snapshot_id = b.id.to_hex();
    report.dataset = opts.dataset.clone();
    report.base_backup_stop = b.facts.stop_time.to_rfc3339();
    report.target = opts.target.to_string();
    report.data_dir = opts.data_dir.display().to_string();
    // The data directory: new or empty, private.
    if std::fs::read_dir(&opts.data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::Invalid(format!(
            "{} is not empty: restore a data directory into a new or empty directory",
            opts.data_dir.display()
        )));
    }
    std::fs::create_dir_all(&opts.data_dir)
        .and_then(|_| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&opts.data_dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|e| Error::Target(format!("cannot create {}: {e}", opts.data_dir.display())))?;
    let index = repo.load_index()?;
    let sel = Selection {
        id: b.id,
        snapshot: b.snapshot.clone(),
        path: PathBuf::from("/"),
        node: None,
    };
    let restored = restore_selection(
        repo,
        &index,
        &sel,
        &RestoreOptions {
            target: opts.data_dir.clone(),
            verify: false,
            ..RestoreOptions::default()
        },
        progress,
    )?;
    drop(index);
    if !restored.errors.is_empty() {
        return Err(Error::corrupt(
            format!("base backup {}", b.id.short()),
            restored.errors.join("; "),
        ));
    }
    report.warnings.extend(restored.warnings);
    let tools = PgTools::locate();
    if opts.verify_manifest {
        report.manifest = match physical::verify_backup(&tools, &opts.data_dir) {
            Ok(Some(Ok(m))) => Some((true, m)),
            Ok(Some(Err(m))) => Some((false, m)),
            Ok(None) => None,
            Err(e) => Some((false, e.0)),
        };
    }
    report
        .phases
        .insert("fetch".into(), started.elapsed().as_secs_f64());
    let t_replay = Instant::now();
    let work = tempfile::Builder::new()
        .prefix("bulwark-replay-")
        .tempdir_in(short_temp_dir())
        .map_err(|e| Error::io("cannot create a directory for the replay", e))?;
    let run_as =
        bulwark_source::db::scratch::scratch_user().map_err(crate::database::target_failed)?;
    let socket = work.path().join("wal.sock");
    let service = FetchService::bind(
        WalArchive::new(repo, b.facts.wal_stream.clone()),
        &socket,
        b.facts.segments(),
        opts.data_dir.join("pg_wal").join(".bulwark-ahead"),
        run_as.as_ref().map(|u| (u.uid, u.gid)),
    )?;
    if let Some(u) = &run_as {
        for p in [work.path(), socket.as_path()] {
            std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid))
                .map_err(|e| Error::io(format!("cannot give {} to {}", p.display(), u.name), e))?;
        }
    }
    let (client, restore_command) = restore_command(&opts.program, &socket);
    report.wal_fetch_program = client.display().to_string();
    let replay_opts = ReplayOptions {
        data: opts.data_dir.clone(),
        work: work.path().to_path_buf(),
        restore_command,
        target: opts.target.clone(),
        throwaway: opts.throwaway,
        data_bytes: b.facts.bytes,
        superuser: b.facts.superuser.clone(),
    };
    std::thread::scope(|s| {
        s.spawn(|| service.serve());
        let result = (|| {
            let mut server = ReplayServer::start(&tools, &replay_opts)
                .map_err(crate::database::target_failed)?;
            let outcome = server
                .wait_promoted(&b.facts.database, opts.timeout)
                .map_err(|e| {
                    let missing = service.missing.lock().expect("missing").clone();
                    let segment = missing.iter().rev().find(|n| !n.contains('.'));
                    match segment {
                        Some(m) => Error::Target(format!(
                            "{}; the last WAL file it asked for and the archive lacks is {m}",
                            e.0
                        )),
                        None => Error::Target(e.0),
                    }
                });
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    let log = work.path().join("replay.log");
                    if let Ok(kept) = tempfile::Builder::new()
                        .prefix("bulwark-replay-log-")
                        .tempfile()
                    {
                        let _ = std::fs::copy(&log, kept.path());
                        if let Ok((_, p)) = kept.keep() {
                            report
                                .warnings
                                .push(format!("the replay's log is kept in {}", p.display()));
                        }
                    }
                    return Err(e);
                }
            };
            report.outcome = outcome;
            report
                .phases
                .insert("replay".into(), t_replay.elapsed().as_secs_f64());
            Ok(then(&mut server, report))
        })();
        service.shut();
        result
    })
    .inspect(|_| {
        report.wal_files_fetched = service.fetched.load(Ordering::Relaxed);
        report.wal_bytes_fetched = service.bytes.load(Ordering::Relaxed);
        report.wal_files_ahead = service.fetched_ahead.load(Ordering::Relaxed);
        report.wal_wait_s = service.waited_ns.load(Ordering::Relaxed) as f64 / 1e9;
        report.duration_s = started.elapsed().as_secs_f64();
    })
}

/// The program PostgreSQL's `restore_command` runs to ask the service at `socket` for a WAL
/// file, and the command: `bulwark-wal-fetch` beside `program` when it is there (it starts in a
/// millisecond, where the whole `bulwark` program takes several, and the server waits for it
/// once per segment), else `program wal-fetch`.
fn restore_command(program: &Path, socket: &Path) -> (PathBuf, String) {
    let socket = shell_quote(&socket.display().to_string());
    let helper = program.with_file_name("bulwark-wal-fetch");
    if helper.is_file() {
        let command = format!(
            "{} --socket {socket} %f %p",
            shell_quote(&helper.display().to_string())
        );
        return (helper, command);
    }
    let command = format!(
        "{} wal-fetch --socket {socket} %f %p",
        shell_quote(&program.display().to_string())
    );
    (program.to_path_buf(), command)
}

/// A point-in-time restore into a data directory, left stopped cleanly and promoted.
pub fn restore_physical(
    repo: &Repository,
    opts: &PitrOptions,
    progress: &dyn Progress,
) -> Result<PitrReport> {
    let _lock = repo.lock(LockKind::Shared)?;
    let (chosen, _) = choose_base_backup(repo, &opts.dataset, &opts.spec, &opts.target)?;
    let mut report = PitrReport::default();
    let stopped = replay(
        repo,
        &chosen,
        opts,
        &mut report,
        progress,
        |server, report| {
            let stopped = server.stop();
            // The new timeline's history file goes into the archive once the cluster runs with
            // archiving again (this replay ran with archive_mode = off).
            let ready = opts.data_dir.join(format!(
                "pg_wal/archive_status/{}.ready",
                physical::history_file_name(report.outcome.timeline)
            ));
            if opts
                .data_dir
                .join("pg_wal")
                .join(physical::history_file_name(report.outcome.timeline))
                .exists()
                && let Err(e) = std::fs::write(&ready, b"")
            {
                report.warnings.push(format!(
                    "cannot mark the new timeline's history for archiving: {e}"
                ));
            }
            stopped
        },
    )?;
    stopped.map_err(crate::database::target_failed)?;
    if let Some(u) =
        bulwark_source::db::scratch::scratch_user().map_err(crate::database::target_failed)?
    {
        physical::chown_tree(&opts.data_dir, &u).map_err(crate::database::target_failed)?;
    }
    Ok(report)
}

/// `'text'` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The temporary directory, unless its path is too long for Unix socket paths; then /tmp.
fn short_temp_dir() -> PathBuf {
    let t = std::env::temp_dir();
    if t.as_os_str().len() > 60 {
        PathBuf::from("/tmp")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(timeline: u32, start: u64, end: u64) -> BaseBackupSnapshot {
        let segs = Segments { size: 16 << 20 };
        let snapshot: Snapshot = serde_json::from_value(serde_json::json!({
            "time": "2026-01-01T00:00:00Z", "tree": Id::default(), "paths": ["/data"],
            "hostname": "h", "username": "u", "program_version": "test", "dataset": "db"
        }))
        .unwrap();
        BaseBackupSnapshot {
            id: Id::default(),
            snapshot,
            facts: PhysicalFacts {
                server_version: "15".into(),
                server_version_num: 150000,
                major: 15,
                system_identifier: "1".into(),
                wal_stream: "s".into(),
                timeline,
                start_lsn: segs.start(start),
                end_lsn: Lsn(segs.start(end).0 + 100),
                wal_segment_size: segs.size,
                start_time: Utc::now(),
                stop_time: Utc::now(),
                database: "postgres".into(),
                superuser: "postgres".into(),
                data_directory: None,
                files: 1,
                bytes: 1,
                pg_basebackup_version: "15".into(),
                direct: false,
            },
        }
    }

    fn files(names: &[&str], histories: &[(u32, &str)]) -> StreamFiles {
        let mut lineages = BTreeMap::from([(1, Lineage::new(1, Vec::new()))]);
        for (tli, text) in histories {
            lineages.insert(
                *tli,
                Lineage::new(*tli, physical::parse_history(text).unwrap()),
            );
        }
        StreamFiles {
            files: names.iter().map(|n| (n.to_string(), 1)).collect(),
            lineages,
        }
    }

    #[test]
    fn chains_follow_timelines_and_stop_at_the_first_gap() {
        let b = backup(1, 2, 3);
        let whole = files(
            &[
                "000000010000000000000002",
                "000000010000000000000003",
                "000000010000000000000004",
                "000000010000000000000005.partial",
                "000000020000000000000005",
                "000000020000000000000006",
                "00000002.history",
            ],
            &[(2, "1\t0/5800000\tbefore 2026-01-01\n")],
        );
        let c = chain_of(&b, &whole);
        assert_eq!(
            (c.gap, c.reaches.as_deref()),
            (None, Some("000000020000000000000006"))
        );
        // Timeline 1's own segment 5 is not what recovery along timeline 2 reads.
        let gap = files(
            &[
                "000000010000000000000002",
                "000000010000000000000003",
                "000000010000000000000004",
                "000000010000000000000005",
                "000000020000000000000006",
                "00000002.history",
            ],
            &[(2, "1\t0/5800000\tbefore 2026-01-01\n")],
        );
        let c = chain_of(&b, &gap);
        assert_eq!(c.gap.as_deref(), Some("000000020000000000000005"));
        assert!(!c.unrestorable);
        let early = files(
            &["000000010000000000000002", "000000010000000000000004"],
            &[],
        );
        let c = chain_of(&b, &early);
        assert_eq!(c.gap.as_deref(), Some("000000010000000000000003"));
        assert!(c.unrestorable, "the backup's own end is missing");
    }
}
