//! Restore: lay out directories, links and empty files, then fetch each needed pack once and write
//! its blobs wherever they belong, then link the other names of hard-linked files, then apply
//! metadata (owners, extended attributes and ACLs, modes, times) bottom-up. `verify` re-reads
//! every file and compares each chunk's keyed hash with the snapshot's, every entry's extended
//! attributes with the snapshot's, and checks that hard links are links.
//!
//! Hard links: files recorded with `links > 1` and the same device and inode are one file. The
//! first such name restored gets the content; every other name with the same content becomes a
//! link to it (a name whose content differs, because the file changed during the backup, is
//! restored as a file of its own).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bulwark_repo::index::BlobLocation;
use bulwark_repo::lock::LockKind;
use bulwark_repo::tree::MAX_DEPTH;
use bulwark_repo::{
    Error, FileKind, Id, MasterIndex, Node, NodeKind, Repository, Result, SnapshotFilter, Tree,
};
use bulwark_source::Patterns;
use bulwark_source::files::{apply_metadata, make_special, read_xattrs, running_as_root};
use rayon::prelude::*;
use serde::Serialize;

use crate::browse::{self, Selection};
use crate::progress::{Counter, Progress, Unit};

#[derive(Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Restore only what matches (with everything below a matching directory).
    pub include: Patterns,
    /// Leave out what matches (with everything below a matching directory).
    pub exclude: Patterns,
    pub overwrite: Overwrite,
    /// Remove entries of the directories restored into that the snapshot does not have.
    pub delete: bool,
    /// `latest` is the latest snapshot this filter takes.
    pub filter: SnapshotFilter,
    pub verify: bool,
}

/// What to do with a file already at a path the restore writes (restic's `--overwrite`).
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it.
    #[default]
    Always,
    /// Keep it when its size and mtime are the snapshot's (its metadata is still applied).
    IfChanged,
    /// Keep anything that is there.
    Never,
}

#[derive(Serialize, Default, Debug)]
pub struct RestoreReport {
    pub snapshot_id: String,
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    /// Of `files`, the names restored as hard links to a file restored under another name.
    pub hardlinks: u64,
    /// Existing files kept by `--overwrite if-changed|never`.
    pub skipped: u64,
    /// Entries removed by `--delete`.
    pub deleted: u64,
    pub bytes: u64,
    pub verified: bool,
    pub files_verified: u64,
    /// Problems that did not stop the restore (metadata that could not be applied, ...).
    pub warnings: Vec<String>,
    /// Files whose content could not be restored or did not verify.
    pub errors: Vec<String>,
}

#[derive(Default)]
struct Plan {
    /// Regular files with content to write, by their place in `metadata` (a node is held once:
    /// a restore of millions of files holds millions of them).
    files: Vec<usize>,
    /// Everything whose metadata is applied once the data is written.
    metadata: Vec<(PathBuf, Node)>,
    /// (link, existing name): made once the content of the existing name is written.
    hardlinks: Vec<(PathBuf, PathBuf)>,
    dirs: u64,
    links: u64,
    skipped: u64,
    deleted: u64,
    warnings: Vec<String>,
}

impl Plan {
    fn absorb(&mut self, other: Plan) {
        let base = self.metadata.len();
        self.files.extend(other.files.into_iter().map(|i| base + i));
        self.metadata.extend(other.metadata);
        self.hardlinks.extend(other.hardlinks);
        self.dirs += other.dirs;
        self.links += other.links;
        self.skipped += other.skipped;
        self.deleted += other.deleted;
        self.warnings.extend(other.warnings);
    }
}

/// Blobs never span more than this gap when fetched together from one pack.
const MAX_READ_GAP: u64 = 1 << 20;
/// Nor span more than this (unless one blob does): what each restoring thread holds of a pack.
const MAX_READ_SPAN: u64 = 8 << 20;

pub fn restore(
    repo: &Repository,
    spec: &str,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> crate::Result<RestoreReport> {
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let sel = browse::select_filtered(repo, &index, spec, None, &opts.filter)?;
    restore_selection(repo, &index, &sel, opts, progress)
}

/// Restore `sel` with an index already loaded, under a lock the caller holds.
pub fn restore_selection(
    repo: &Repository,
    index: &MasterIndex,
    sel: &Selection,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> crate::Result<RestoreReport> {
    fs::create_dir_all(&opts.target).map_err(|e| {
        crate::Error::Target(format!("cannot create {}: {e}", opts.target.display()))
    })?;
    let mut report = RestoreReport {
        snapshot_id: sel.id.to_hex(),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let plan = lay_out(repo, index, sel, opts)?;
    tracing::debug!(entries = plan.metadata.len(), elapsed = ?started.elapsed(), "restore: laid out");
    if !opts.include.is_empty()
        && plan.metadata.is_empty()
        && plan.hardlinks.is_empty()
        && plan.skipped == 0
    {
        return Err(crate::Error::Invalid(format!(
            "--include {} matches nothing in snapshot {}: nothing was restored",
            opts.include.patterns().join(", "),
            sel.id.short()
        )));
    }
    report.skipped = plan.skipped;
    report.deleted = plan.deleted;
    report.warnings.extend(plan.warnings);
    let files: Vec<&(PathBuf, Node)> = plan.files.iter().map(|&i| &plan.metadata[i]).collect();
    // Sizes are as the snapshot claims them (checked against the content when writing).
    let total: u64 = files
        .iter()
        .fold(0, |sum: u64, (_, n)| sum.saturating_add(n.size));
    let counter = progress.start("restore", Unit::Bytes, Some(total));
    write_contents(repo, index, &files, counter.as_ref(), progress, &mut report)?;
    drop(counter);
    tracing::debug!(elapsed = ?started.elapsed(), "restore: contents written");
    report.warnings.extend(make_hard_links(&plan.hardlinks));
    report.hardlinks = plan.hardlinks.len() as u64;
    report.warnings.extend(apply_all_metadata(&plan.metadata));
    tracing::debug!(elapsed = ?started.elapsed(), "restore: metadata applied");
    // Every name of a regular file, hard links included (`hardlinks` says how many are links).
    report.files = (files.len() + plan.hardlinks.len()) as u64;
    report.bytes = total;
    report.dirs = plan.dirs;
    report.links = plan.links;
    if opts.verify {
        let counter = progress.start("verify", Unit::Bytes, Some(total));
        let mut failures: Vec<String> = files
            .par_iter()
            .filter_map(|(path, node)| {
                if progress.should_stop() {
                    return None;
                }
                let r = verify_file(repo, index, path, node);
                counter.inc(node.size);
                r.err().map(|e| format!("{}: {e}", path.display()))
            })
            .collect();
        drop(counter);
        if progress.should_stop() {
            return Err(crate::Error::Interrupted);
        }
        let links: Vec<String> = plan
            .hardlinks
            .iter()
            .filter_map(|(link, original)| verify_hard_link(link, original).err())
            .collect();
        report.files_verified = report.files - (failures.len() + links.len()) as u64;
        failures.extend(links);
        failures.extend(
            plan.metadata
                .par_iter()
                .filter_map(|(path, node)| verify_xattrs(path, node).err())
                .collect::<Vec<_>>(),
        );
        report.verified = failures.is_empty() && report.errors.is_empty();
        report.errors.extend(failures);
    }
    Ok(report)
}

/// Owners, modes and times, once every file is written: non-directories all at once, then
/// directories deepest first, so creating or changing an entry never touches a directory whose
/// times are already set, and a read-only directory is locked only after its contents.
fn apply_all_metadata(entries: &[(PathBuf, Node)]) -> Vec<String> {
    let as_root = running_as_root();
    let apply = |entry: &&(PathBuf, Node)| {
        let (path, node) = (&entry.0, &entry.1);
        match apply_metadata(path, node, as_root) {
            Ok(problems) if problems.is_empty() => None,
            Ok(problems) => Some(format!("{}: {}", path.display(), problems.join("; "))),
            Err(e) => Some(format!("{}: metadata: {e}", path.display())),
        }
    };
    let depth = |(path, node): &&(PathBuf, Node)| match node.kind {
        NodeKind::Dir => path.components().count(),
        _ => usize::MAX,
    };
    let mut entries: Vec<&(PathBuf, Node)> = entries.iter().collect();
    entries.par_sort_by_cached_key(|e| std::cmp::Reverse(depth(e)));
    let mut warnings = Vec::new();
    for level in entries.chunk_by(|a, b| depth(a) == depth(b)) {
        warnings.extend(level.par_iter().filter_map(apply).collect::<Vec<_>>());
    }
    warnings
}

/// Link every other name of a hard-linked file to the name that got its content; where the
/// target cannot hold a link, copy it.
fn make_hard_links(links: &[(PathBuf, PathBuf)]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (link, original) in links {
        if let Err(e) = fs::hard_link(original, link) {
            let copied = fs::copy(original, link).map(|_| ());
            warnings.push(match copied {
                Ok(()) => format!("{}: not a hard link ({e}): copied instead", link.display()),
                Err(c) => format!("{}: cannot link ({e}) nor copy ({c})", link.display()),
            });
        }
    }
    warnings
}

/// The restored entry's extended attributes are the snapshot's. Attributes a security module
/// gives every new file (`security.selinux`, ...) are its business, unless the snapshot has them.
fn verify_xattrs(path: &Path, node: &Node) -> std::result::Result<(), String> {
    let found = read_xattrs(path)
        .map_err(|e| format!("{}: extended attributes unreadable: {e}", path.display()))?;
    let own = |name: &str| !name.starts_with("security.") || name == "security.capability";
    let found: Vec<_> = found
        .into_iter()
        .filter(|f| own(&f.name) || node.xattrs.iter().any(|x| x.name == f.name))
        .collect();
    if found == node.xattrs {
        return Ok(());
    }
    let names = |v: &[bulwark_repo::Xattr]| {
        v.iter()
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    Err(format!(
        "{}: extended attributes differ from the snapshot (restored [{}], snapshot [{}])",
        path.display(),
        names(&found),
        names(&node.xattrs)
    ))
}

fn verify_hard_link(link: &Path, original: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &Path| fs::symlink_metadata(p).map(|m| (m.dev(), m.ino()));
    match (ino(link), ino(original)) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        _ => Err(format!(
            "{}: not a hard link to {}, as in the snapshot",
            link.display(),
            original.display()
        )),
    }
}

/// (device, inode) of hard-linked files -> the first name laid out, and its content.
type HardLinks = HashMap<(u64, u64), (PathBuf, Vec<Id>)>;

struct LayOut<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    opts: &'a RestoreOptions,
    plan: Mutex<Plan>,
    /// Directories outside the include patterns: restored (for their metadata) only if
    /// something included below them made them exist.
    unincluded: Mutex<Vec<(PathBuf, Node)>>,
    hard_links: Mutex<HardLinks>,
}

/// A directory still to lay out.
struct PendingDir {
    node: Node,
    path: PathBuf,
    snap_path: PathBuf,
    included: bool,
    /// The directory it goes into was just created by this restore.
    parent_fresh: bool,
}

fn lay_out(
    repo: &Repository,
    index: &MasterIndex,
    sel: &Selection,
    opts: &RestoreOptions,
) -> Result<Plan> {
    let tree = browse::selected_tree(repo, index, sel)?;
    let snap_base = match &sel.node {
        Some(n) if n.kind != NodeKind::Dir => {
            sel.path.parent().map(Path::to_path_buf).unwrap_or_default()
        }
        _ => sel.path.clone(),
    };
    let everything = opts.include.patterns().is_empty();
    let layout = LayOut {
        repo,
        index,
        opts,
        plan: Mutex::new(Plan::default()),
        unincluded: Mutex::new(Vec::new()),
        hard_links: Mutex::new(HashMap::new()),
    };
    // An empty target cannot hold anything in the way: skip the per-entry checks.
    let empty = fs::read_dir(&opts.target)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    // Level by level, each level's directories in parallel, rather than by recursion: a crafted
    // chain of directories must meet the depth limit, not the end of a thread's stack.
    let mut level = layout.tree(&tree, &opts.target, &snap_base, everything, empty)?;
    let mut depth = 1;
    while !level.is_empty() {
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                "tree",
                format!("directories nest more than {MAX_DEPTH} deep, deeper than any path can be"),
            ));
        }
        let below: Vec<Vec<PendingDir>> = level
            .into_par_iter()
            .map(|dir| layout.subdir(dir))
            .collect::<Result<_>>()?;
        level = below.into_iter().flatten().collect();
        depth += 1;
    }
    let mut plan = layout.plan.into_inner().expect("plan");
    for (path, node) in layout.unincluded.into_inner().expect("unincluded") {
        if path.exists() {
            plan.dirs += 1;
            plan.metadata.push((path, node));
        }
    }
    Ok(plan)
}

impl LayOut<'_> {
    /// Create one directory's entries other than directories, and return those to lay out
    /// next. `fresh`: `dir` was just created by this restore, so nothing can stand in the way
    /// of its entries.
    fn tree(
        &self,
        tree: &Tree,
        dir: &Path,
        snap_dir: &Path,
        included: bool,
        fresh: bool,
    ) -> Result<Vec<PendingDir>> {
        // A name twice in one tree (say a symlink and a directory) could steer writes through the
        // link and out of the target: only a tampered repository has such trees.
        let mut seen = std::collections::HashSet::new();
        let mut plan = Plan::default();
        let mut subdirs = Vec::new();
        for node in &tree.nodes {
            if !node.has_safe_name() {
                return Err(Error::corrupt(
                    "tree",
                    format!("unsafe file name {:?}", node.name),
                ));
            }
            let name = node.os_name()?;
            if !seen.insert(name.clone()) {
                return Err(Error::corrupt(
                    "tree",
                    format!("the name {:?} appears twice in one directory", node.name),
                ));
            }
            let (path, snap_path) = (dir.join(&name), snap_dir.join(&name));
            if self.opts.exclude.matches(&snap_path) {
                continue;
            }
            let included = included || self.opts.include.matches(&snap_path);
            if node.kind == NodeKind::Dir {
                subdirs.push(PendingDir {
                    node: node.clone(),
                    path,
                    snap_path,
                    included,
                    parent_fresh: fresh,
                });
                continue;
            }
            if !included {
                continue;
            }
            if !fresh {
                fs::create_dir_all(dir)
                    .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
                if self.keep_existing(&path, node) {
                    plan.skipped += 1;
                    if self.opts.overwrite == Overwrite::IfChanged {
                        plan.metadata.push((path, node.clone()));
                    }
                    continue;
                }
                remove_existing(&path)?;
            }
            if let Some(key) = node.hard_link_key() {
                let mut seen = self.hard_links.lock().expect("hard links");
                match seen.get(&key) {
                    Some((original, content)) if *content == node.content => {
                        plan.hardlinks.push((path, original.clone()));
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(key, (path.clone(), node.content.clone()));
                    }
                }
            }
            let made = match node.kind {
                NodeKind::File => {
                    // Files with content are created by the first write into them (see write_contents).
                    if node.size == 0 {
                        File::create(&path).map_err(|e| {
                            Error::io(format!("cannot create {}", path.display()), e)
                        })?;
                    }
                    // Its metadata entry is pushed next, below.
                    plan.files.push(plan.metadata.len());
                    Ok(())
                }
                NodeKind::Symlink => {
                    plan.links += 1;
                    std::os::unix::fs::symlink(node.link_target()?, &path)
                }
                NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                    make_special(&path, node)
                }
                NodeKind::Socket | NodeKind::Dir => continue,
            };
            match made {
                Ok(()) => plan.metadata.push((path, node.clone())),
                Err(e) => plan.warnings.push(format!("{}: {e}", path.display())),
            }
        }
        if self.opts.delete && included && !fresh {
            plan.deleted += delete_extra(dir, tree)?;
        }
        self.plan.lock().expect("plan").absorb(plan);
        Ok(subdirs)
    }

    /// Make one directory and lay out its entries; returns its subdirectories.
    fn subdir(&self, dir: PendingDir) -> Result<Vec<PendingDir>> {
        let PendingDir {
            node,
            path,
            snap_path,
            included,
            parent_fresh,
        } = dir;
        let sub = browse::load_subtree(self.repo, self.index, &node)?;
        let existing = if parent_fresh {
            None
        } else {
            fs::symlink_metadata(&path).ok()
        };
        let fresh = match existing {
            Some(m) if m.is_dir() => false,
            // Never descend through a symlink or into a file standing where a directory goes.
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "{} exists and is not a directory; restore into an empty target",
                    path.display()
                )));
            }
            None if included => {
                let made = if parent_fresh {
                    fs::create_dir(&path)
                } else {
                    fs::create_dir_all(&path)
                };
                made.map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
                true
            }
            None => false,
        };
        let below = self.tree(&sub, &path, &snap_path, included, fresh)?;
        if included {
            let mut plan = self.plan.lock().expect("plan");
            plan.dirs += 1;
            plan.metadata.push((path, node));
        } else {
            self.unincluded
                .lock()
                .expect("unincluded")
                .push((path, node));
        }
        Ok(below)
    }
}

impl LayOut<'_> {
    /// Whether `--overwrite` keeps what stands at `path` instead of the snapshot's `node`.
    fn keep_existing(&self, path: &Path, node: &Node) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(m) = fs::symlink_metadata(path) else {
            return false;
        };
        match self.opts.overwrite {
            Overwrite::Always => false,
            Overwrite::Never => !m.is_dir(),
            Overwrite::IfChanged => {
                node.kind == NodeKind::File
                    && m.is_file()
                    && m.len() == node.size
                    && m.mtime() * 1_000_000_000 + m.mtime_nsec() == node.mtime_ns
            }
        }
    }
}

/// `--delete`: remove what `dir` holds beyond the names in `tree`. Returns how many went.
fn delete_extra(dir: &Path, tree: &Tree) -> Result<u64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut deleted = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        if tree.find(&entry.file_name()).is_some() {
            continue;
        }
        let path = entry.path();
        // remove_dir_all never follows a symlink: a link is removed, not its target.
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
            _ => fs::remove_file(&path),
        };
        removed.map_err(|e| Error::io(format!("cannot delete {}", path.display()), e))?;
        deleted += 1;
    }
    Ok(deleted)
}

fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::Invalid(format!(
            "{} exists and is a directory; restore into an empty target",
            path.display()
        ))),
        // Replace rather than overwrite in place: the old file may be hard-linked elsewhere.
        Ok(_) => fs::remove_file(path)
            .map_err(|e| Error::io(format!("cannot replace {}", path.display()), e)),
        Err(_) => Ok(()),
    }
}

struct Target {
    file: usize,
    offset: u64,
}

/// Write every file's content, a pack at a time; a stop request is honoured between packs.
fn write_contents(
    repo: &Repository,
    index: &MasterIndex,
    files: &[&(PathBuf, Node)],
    progress: &dyn Counter,
    stop: &dyn Progress,
    report: &mut RestoreReport,
) -> crate::Result<()> {
    // pack -> blob (by offset, then id: a crafted index may put two blobs at one offset, and
    // each must be opened as itself) -> where it goes
    type Blobs = BTreeMap<(u32, Id), (BlobLocation, Vec<Target>)>;
    let mut by_pack: BTreeMap<Id, Blobs> = BTreeMap::new();
    let failures = Mutex::new(Vec::new());
    // A file whose content does not add up to its size is not restored at all: its size is
    // not believed (a crafted 2^62) and its content is not what the snapshot says it is.
    let mut skipped = vec![false; files.len()];
    for (i, (path, node)) in files.iter().enumerate() {
        let mut locations = Vec::with_capacity(node.content.len());
        for id in &node.content {
            locations.push(index.lookup(id).ok_or_else(|| {
                Error::corrupt(
                    format!("blob {id}"),
                    format!("needed by {} but not in the index", path.display()),
                )
            })?);
        }
        let content: u64 = locations.iter().map(|l| l.blob.raw_len as u64).sum();
        if content != node.size {
            failures.lock().expect("failures").push(format!(
                "{}: the snapshot says {} bytes but its content holds {content}; not restored",
                path.display(),
                node.size
            ));
            skipped[i] = true;
            continue;
        }
        let mut offset = 0u64;
        for loc in locations {
            by_pack
                .entry(loc.pack.id)
                .or_default()
                .entry((loc.blob.offset, loc.blob.id))
                .or_insert_with(|| (loc, Vec::new()))
                .1
                .push(Target { file: i, offset });
            offset += loc.blob.raw_len as u64;
        }
    }
    let written_end: Vec<AtomicU64> = files.iter().map(|_| AtomicU64::new(0)).collect();
    let write_packs = || {
        by_pack
            .into_par_iter()
            .try_for_each(|(pack, blobs)| -> crate::Result<()> {
                if stop.should_stop() {
                    return Err(crate::Error::Interrupted);
                }
                let blobs: Vec<_> = blobs.into_values().collect();
                let (mut scratch, mut plain) = (Vec::new(), Vec::new());
                for group in read_groups(&blobs) {
                    let start = blobs[group.start].0.blob.offset as u64;
                    // The last blob by offset need not end last: index entries may overlap.
                    let end = blobs[group.clone()]
                        .iter()
                        .map(|(loc, _)| loc.blob.offset as u64 + loc.blob.stored_len as u64)
                        .max()
                        .unwrap_or(start);
                    let data =
                        repo.backend()
                            .read_range(FileKind::Pack, &pack.to_hex(), start..end)?;
                    let mut open: BTreeMap<usize, File> = BTreeMap::new();
                    for (loc, targets) in &blobs[group] {
                        let at = (loc.blob.offset as u64 - start) as usize;
                        loc.blob.open_into(
                            repo.key(),
                            &loc.pack.salt,
                            &data[at..at + loc.blob.stored_len as usize],
                            &mut scratch,
                            &mut plain,
                        )?;
                        let zeros = plain.iter().all(|&b| b == 0);
                        for t in targets {
                            progress.inc(plain.len() as u64);
                            if zeros {
                                continue;
                            }
                            let path = &files[t.file].0;
                            let file = match open.entry(t.file) {
                                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                                std::collections::btree_map::Entry::Vacant(v) => {
                                    match OpenOptions::new()
                                        .write(true)
                                        .create(true)
                                        .truncate(false)
                                        .open(path)
                                    {
                                        Ok(f) => v.insert(f),
                                        Err(e) => {
                                            failures
                                                .lock()
                                                .expect("failures")
                                                .push(format!("{}: {e}", path.display()));
                                            continue;
                                        }
                                    }
                                }
                            };
                            file.write_all_at(&plain, t.offset).map_err(|e| {
                                Error::io(format!("cannot write {}", path.display()), e)
                            })?;
                            written_end[t.file]
                                .fetch_max(t.offset + plain.len() as u64, Ordering::Relaxed);
                        }
                    }
                }
                Ok(())
            })
    };
    // A remote store answers each read a round trip later: with one read per core the cores
    // wait on the network. Twice as many readers as cores (within what the store takes at once)
    // keeps them busy; each holds a read of up to MAX_READ_SPAN, so more would only cost memory
    // (S3 on loopback, 2 cores: 2 readers 6.3 s, 4 readers 4.3-4.7 s and 150 MB, 8 readers
    // 4.4-4.7 s and 190 MB).
    if repo.backend().remote() {
        let cores = rayon::current_num_threads();
        rayon::ThreadPoolBuilder::new()
            .num_threads((2 * cores).min(repo.backend().concurrency()).max(cores))
            .build()
            .map_err(|e| Error::Invalid(format!("the restore's thread pool: {e}")))?
            .install(write_packs)?;
    } else {
        write_packs()?;
    }
    // Zero chunks were skipped: a file ending in them (or made only of them) is sized here,
    // leaving holes, so sparse files stay sparse.
    for (i, (path, node)) in files.iter().enumerate() {
        if !skipped[i] && node.size > written_end[i].load(Ordering::Relaxed) {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .and_then(|f| f.set_len(node.size))
                .map_err(|e| Error::io(format!("cannot size {}", path.display()), e))?;
        }
    }
    report
        .errors
        .extend(failures.into_inner().expect("failures"));
    Ok(())
}

/// Split a pack's needed blobs (sorted by offset) into runs worth fetching in one read.
fn read_groups(blobs: &[(BlobLocation, Vec<Target>)]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=blobs.len() {
        let split = i == blobs.len() || {
            let (first, prev, next) =
                (&blobs[start].0.blob, &blobs[i - 1].0.blob, &blobs[i].0.blob);
            let gap =
                (next.offset as u64).saturating_sub(prev.offset as u64 + prev.stored_len as u64);
            let span =
                (next.offset as u64 + next.stored_len as u64).saturating_sub(first.offset as u64);
            gap > MAX_READ_GAP || span > MAX_READ_SPAN
        };
        if split {
            groups.push(start..i);
            start = i;
        }
    }
    groups
}

/// Re-read a restored file and compare every chunk's keyed hash with the snapshot's.
pub fn verify_file(repo: &Repository, index: &MasterIndex, path: &Path, node: &Node) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io("cannot reopen", e))?;
    verify_content(repo, index, file, node)
}

/// Read restored content to its end and compare every chunk's keyed hash with the snapshot's.
pub fn verify_content(
    repo: &Repository,
    index: &MasterIndex,
    mut file: impl Read,
    node: &Node,
) -> Result<()> {
    let mut buf = Vec::new();
    for (n, id) in node.content.iter().enumerate() {
        let loc = index
            .lookup(id)
            .ok_or_else(|| Error::corrupt(format!("blob {id}"), "not in the index"))?;
        buf.resize(loc.blob.raw_len as usize, 0);
        file.read_exact(&mut buf)
            .map_err(|e| Error::corrupt("restored file", format!("chunk {n}: {e}")))?;
        if repo.key().blob_id(&buf) != *id {
            return Err(Error::corrupt(
                "restored file",
                format!("chunk {n} differs from the snapshot"),
            ));
        }
    }
    let mut rest = [0u8; 1];
    match file.read(&mut rest) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::corrupt(
            "restored file",
            "longer than in the snapshot",
        )),
        Err(e) => Err(Error::io("cannot reread", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_repo::BlobKind;
    use bulwark_repo::index::PackInfo;
    use bulwark_repo::pack::PackedBlob;

    fn blobs(spans: &[(u32, u32)]) -> Vec<(BlobLocation, Vec<Target>)> {
        spans
            .iter()
            .enumerate()
            .map(|(i, &(offset, stored_len))| {
                let blob = PackedBlob {
                    id: Id([i as u8; 32]),
                    kind: BlobKind::Data,
                    compressed: false,
                    offset,
                    stored_len,
                    raw_len: stored_len,
                };
                let pack = PackInfo {
                    id: Id([0; 32]),
                    salt: Default::default(),
                    size: 1 << 30,
                };
                (BlobLocation { pack, blob }, Vec::new())
            })
            .collect()
    }

    #[test]
    fn read_groups_join_near_blobs_and_bound_what_one_read_holds() {
        const MIB: u32 = 1 << 20;
        // Six touching 3 MiB blobs: no read spans more than 8 MiB.
        let touching: Vec<_> = (0..6).map(|i| (i * 3 * MIB, 3 * MIB)).collect();
        assert_eq!(read_groups(&blobs(&touching)), vec![0..2, 2..4, 4..6]);
        // A gap under 1 MiB is read through; a wider one splits.
        let gaps = [(0, MIB), (MIB + MIB / 2, MIB), (4 * MIB, MIB)];
        assert_eq!(read_groups(&blobs(&gaps)), vec![0..2, 2..3]);
        // A blob larger than the span is read alone, whole.
        let large = [(0, MIB), (MIB, 12 * MIB), (13 * MIB, MIB)];
        assert_eq!(read_groups(&blobs(&large)), vec![0..1, 1..2, 2..3]);
    }
}
