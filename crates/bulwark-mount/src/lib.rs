//! A repository's snapshots as a read-only file system, through FUSE (`bulwark mount`).
//!
//! # Layout
//! ```text
//! /snapshots/2026-12-01T14:00:05/   one directory per snapshot, named by its time (a second
//! /snapshots/latest -> …            snapshot in the same second gets `-<short id>`); `latest`
//! /ids/1a2b3c4d/                    links to the newest; every snapshot again by its short id
//! ```
//!
//! # Invariants
//! - Read-only: the mount is `ro`, and no operation that changes anything is implemented.
//! - The snapshot list and the index are read once, when the file system is made; a snapshot
//!   taken later appears on the next mount.
//! - Inode numbers are handed out as entries are first looked up and never reused while mounted.
//!   A directory's tree blob is loaded on its first lookup or listing and kept.
//! - A read fetches only the blobs covering the range asked for, located with the index's plain
//!   lengths; the blob read last is kept, so sequential reads fetch each blob once.
//! - Damage is never silent: a blob that is missing or fails authentication is `EIO` (and a log
//!   line), never zeros.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bulwark_repo::{Id, MasterIndex, Node, NodeKind, Repository, Snapshot};
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    ReplyStatfs, Request, SessionACL,
};

/// Nothing under the mount ever changes: the kernel may cache entries and attributes for long.
const TTL: Duration = Duration::from_secs(3600);

/// What an inode stands for.
enum Entry {
    /// `/`, `/snapshots`, `/ids`: fixed directories of named children.
    Fixed {
        children: Vec<(String, INodeNo)>,
        mtime: SystemTime,
    },
    /// `/snapshots/latest`.
    Link { target: String, mtime: SystemTime },
    /// The root of a snapshot: its tree, listed on first use.
    SnapshotRoot {
        tree: Id,
        mtime: SystemTime,
        children: Option<Vec<(String, INodeNo)>>,
    },
    /// An entry of a snapshot's tree.
    Node {
        node: Box<Node>,
        children: Option<Vec<(String, INodeNo)>>,
        /// Where each content blob starts in the file, computed on first read.
        starts: Option<Arc<Vec<u64>>>,
    },
}

/// A file's content as blobs: where each starts, which it is, and the file's size.
struct Layout {
    starts: Arc<Vec<u64>>,
    ids: Vec<Id>,
    size: u64,
}

struct State {
    /// Indexed by inode number; 0 is unused.
    entries: Vec<Option<Entry>>,
    /// The blob read last, for sequential reads.
    last_blob: Option<(Id, Arc<Vec<u8>>)>,
}

pub struct SnapshotFs {
    repo: Arc<Repository>,
    index: Arc<MasterIndex>,
    uid: u32,
    gid: u32,
    state: Mutex<State>,
}

/// Why a file system could not be made or mounted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Repository(#[from] bulwark_repo::Error),
    #[error("cannot mount on {path}: {source}")]
    Mount { path: String, source: io::Error },
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn snapshot_time(s: &Snapshot) -> SystemTime {
    let t = s.time.to_utc();
    time_of(t.timestamp_nanos_opt().unwrap_or(0))
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
    }
}

impl SnapshotFs {
    /// The file system of every snapshot in `repo`, with `index` to find their blobs.
    pub fn new(repo: Arc<Repository>, index: Arc<MasterIndex>) -> Result<SnapshotFs, Error> {
        let (mut snapshots, _damaged) = repo.load_snapshots()?;
        snapshots.sort_by_key(|(id, s)| (s.time, *id));
        let mut entries: Vec<Option<Entry>> = vec![None, None];
        let mut push = |e: Entry| {
            entries.push(Some(e));
            INodeNo(entries.len() as u64 - 1)
        };
        let mut by_time: Vec<(String, INodeNo)> = Vec::new();
        let mut by_id: Vec<(String, INodeNo)> = Vec::new();
        let mut newest: Option<(String, SystemTime)> = None;
        for (id, s) in &snapshots {
            let mtime = snapshot_time(s);
            let ino = push(Entry::SnapshotRoot {
                tree: s.tree,
                mtime,
                children: None,
            });
            let mut name = s.time.format("%Y-%m-%dT%H:%M:%S").to_string();
            if by_time.iter().any(|(n, _)| *n == name) {
                name = format!("{name}-{}", id.short());
            }
            newest = Some((name.clone(), mtime));
            by_time.push((name, ino));
            by_id.push((id.short().to_string(), ino));
        }
        let now = SystemTime::now();
        if let Some((target, mtime)) = newest {
            let link = push(Entry::Link { target, mtime });
            by_time.push(("latest".into(), link));
        }
        let snapshots_dir = push(Entry::Fixed {
            children: by_time,
            mtime: now,
        });
        let ids_dir = push(Entry::Fixed {
            children: by_id,
            mtime: now,
        });
        entries[1] = Some(Entry::Fixed {
            children: vec![("ids".into(), ids_dir), ("snapshots".into(), snapshots_dir)],
            mtime: now,
        });
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(SnapshotFs {
            repo,
            index,
            uid,
            gid,
            state: Mutex::new(State {
                entries,
                last_blob: None,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir_attr(&self, ino: INodeNo, mtime: SystemTime) -> FileAttr {
        FileAttr {
            ino,
            size: 0,
            blocks: 0,
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn attr(&self, ino: INodeNo, e: &Entry) -> FileAttr {
        match e {
            Entry::Fixed { mtime, .. } | Entry::SnapshotRoot { mtime, .. } => {
                self.dir_attr(ino, *mtime)
            }
            Entry::Link { target, mtime } => FileAttr {
                size: target.len() as u64,
                kind: FileType::Symlink,
                perm: 0o777,
                nlink: 1,
                ..self.dir_attr(ino, *mtime)
            },
            Entry::Node { node, .. } => {
                let mtime = time_of(node.mtime_ns);
                FileAttr {
                    ino,
                    size: node.size,
                    blocks: node.size.div_ceil(512),
                    atime: node.atime_ns.map_or(mtime, time_of),
                    mtime,
                    ctime: time_of(node.ctime_ns),
                    crtime: mtime,
                    kind: file_type(node.kind),
                    perm: (node.mode & 0o7777) as u16,
                    nlink: if node.kind == NodeKind::Dir {
                        2
                    } else {
                        node.links.max(1) as u32
                    },
                    uid: node.uid,
                    gid: node.gid,
                    rdev: node.rdev as u32,
                    blksize: 4096,
                    flags: 0,
                }
            }
        }
    }

    /// The children of directory `ino`, loading its tree on first use.
    fn children(&self, ino: INodeNo) -> Result<Vec<(String, INodeNo)>, Errno> {
        let tree = {
            let state = self.state();
            match state.entries.get(ino.0 as usize).and_then(Option::as_ref) {
                None => return Err(Errno::ENOENT),
                Some(Entry::Fixed { children, .. })
                | Some(Entry::SnapshotRoot {
                    children: Some(children),
                    ..
                })
                | Some(Entry::Node {
                    children: Some(children),
                    ..
                }) => return Ok(children.clone()),
                Some(Entry::SnapshotRoot { tree, .. }) => *tree,
                Some(Entry::Node { node, .. }) if node.kind == NodeKind::Dir => {
                    node.subtree.ok_or(Errno::EIO)?
                }
                Some(_) => return Err(Errno::ENOTDIR),
            }
        };
        // Loaded without the lock held: other requests go on meanwhile.
        let loaded = self.repo.load_tree(&self.index, &tree).map_err(|e| {
            tracing::error!("tree {} cannot be read: {e}", tree.short());
            Errno::EIO
        })?;
        let mut state = self.state();
        let mut listed = Vec::with_capacity(loaded.nodes.len());
        for node in loaded.nodes {
            let name = node.name.clone();
            state.entries.push(Some(Entry::Node {
                node: Box::new(node),
                children: None,
                starts: None,
            }));
            listed.push((name, INodeNo(state.entries.len() as u64 - 1)));
        }
        match state.entries[ino.0 as usize].as_mut() {
            // Another request listed it first: keep its inodes, drop ours (never looked up).
            Some(Entry::SnapshotRoot {
                children: Some(c), ..
            })
            | Some(Entry::Node {
                children: Some(c), ..
            }) => return Ok(c.clone()),
            Some(Entry::SnapshotRoot { children, .. }) | Some(Entry::Node { children, .. }) => {
                *children = Some(listed.clone());
            }
            _ => {}
        }
        Ok(listed)
    }

    /// Where each content blob of file `ino` starts, its content ids and its size.
    fn layout(&self, ino: INodeNo) -> Result<Layout, Errno> {
        let mut state = self.state();
        let Some(Some(Entry::Node { node, starts, .. })) = state.entries.get_mut(ino.0 as usize)
        else {
            return Err(Errno::ENOENT);
        };
        if node.kind != NodeKind::File {
            return Err(Errno::EISDIR);
        }
        if starts.is_none() {
            let mut at = 0u64;
            let mut list = Vec::with_capacity(node.content.len());
            for id in &node.content {
                list.push(at);
                let loc = self.index.lookup(id).ok_or_else(|| {
                    tracing::error!("blob {} of {} is in no index", id.short(), node.name);
                    Errno::EIO
                })?;
                at += loc.blob.raw_len as u64;
            }
            *starts = Some(Arc::new(list));
        }
        Ok(Layout {
            starts: starts.clone().expect("just set"),
            ids: node.content.clone(),
            size: node.size,
        })
    }

    fn blob(&self, id: &Id) -> Result<Arc<Vec<u8>>, Errno> {
        if let Some((last, data)) = &self.state().last_blob
            && last == id
        {
            return Ok(data.clone());
        }
        let loc = self.index.lookup(id).ok_or(Errno::EIO)?;
        let data = Arc::new(self.repo.read_blob(&loc).map_err(|e| {
            tracing::error!("blob {} cannot be read: {e}", id.short());
            Errno::EIO
        })?);
        self.state().last_blob = Some((*id, data.clone()));
        Ok(data)
    }

    fn read_range(&self, ino: INodeNo, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let Layout {
            starts,
            ids,
            size: file_size,
        } = self.layout(ino)?;
        let end = offset.saturating_add(size as u64).min(file_size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        if offset >= end {
            return Ok(out);
        }
        // The blob holding `offset`: the last that starts at or before it.
        let first = starts.partition_point(|&s| s <= offset).saturating_sub(1);
        for (i, id) in ids.iter().enumerate().skip(first) {
            let start = starts[i];
            if start >= end {
                break;
            }
            let data = self.blob(id)?;
            let from = offset.saturating_sub(start) as usize;
            let to = ((end - start) as usize).min(data.len());
            if from < to {
                out.extend_from_slice(&data[from..to]);
            }
        }
        Ok(out)
    }
}

impl Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let children = match self.children(parent) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let Some((_, ino)) = children.iter().find(|(n, _)| OsStr::new(n) == name) else {
            return reply.error(Errno::ENOENT);
        };
        let state = self.state();
        match state.entries[ino.0 as usize].as_ref() {
            Some(e) => reply.entry(&TTL, &self.attr(*ino, e), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let state = self.state();
        match state.entries.get(ino.0 as usize).and_then(Option::as_ref) {
            Some(e) => reply.attr(&TTL, &self.attr(ino, e)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let state = self.state();
        match state.entries.get(ino.0 as usize).and_then(Option::as_ref) {
            Some(Entry::Link { target, .. }) => reply.data(target.as_bytes()),
            Some(Entry::Node { node, .. }) if node.kind == NodeKind::Symlink => {
                reply.data(node.link_target.as_deref().unwrap_or("").as_bytes())
            }
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.layout(ino) {
            // Contents never change under the mount: let the kernel keep its page cache.
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_range(ino, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let children = match self.children(ino) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let kinds: BTreeMap<u64, FileType> = {
            let state = self.state();
            children
                .iter()
                .map(|(_, c)| {
                    let kind = match state.entries[c.0 as usize].as_ref() {
                        Some(Entry::Link { .. }) => FileType::Symlink,
                        Some(Entry::Node { node, .. }) => file_type(node.kind),
                        _ => FileType::Directory,
                    };
                    (c.0, kind)
                })
                .collect()
        };
        let dots = [(".".to_string(), ino), ("..".to_string(), INodeNo::ROOT)];
        for (i, (name, child)) in dots
            .iter()
            .chain(children.iter())
            .enumerate()
            .skip(offset as usize)
        {
            let kind = kinds.get(&child.0).copied().unwrap_or(FileType::Directory);
            if reply.add(*child, i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = self.state().entries.len() as u64;
        reply.statfs(0, 0, 0, files, 0, 4096, 255, 4096);
    }
}

/// Mount `fs` on `mountpoint` (read-only, in the background); unmounted when the returned session
/// is dropped or `umount_and_join` is called. `allow_other` lets other users in, as FUSE's option
/// of that name does.
pub fn mount(
    fs: SnapshotFs,
    mountpoint: &Path,
    allow_other: bool,
) -> Result<fuser::BackgroundSession, Error> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::FSName("bulwark".into()),
        MountOption::Subtype("bulwark".into()),
    ];
    config.acl = if allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    fuser::spawn_mount(fs, mountpoint, &config).map_err(|source| Error::Mount {
        path: mountpoint.display().to_string(),
        source,
    })
}
