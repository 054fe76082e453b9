//! `bulwark dump`: one file of a snapshot to stdout, or a directory (or the whole snapshot) as
//! a tar archive, entries named by their snapshot paths without the leading `/`.

use std::io::{self, Write};
use std::path::Path;

use bulwark_ops::browse;
use bulwark_ops::database::SnapshotFileReader;
use bulwark_repo::lock::LockKind;
use bulwark_repo::{MasterIndex, Node, NodeKind, Repository};

use super::{FilterArgs, open};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// Snapshot id (8+ hex digits) or `latest`
    pub snapshot: String,
    /// The file or directory to dump (`/` for everything)
    pub path: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let repo = open(g)?;
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let sel = browse::select_filtered(
        &repo,
        &index,
        &a.snapshot,
        Some(&a.path),
        &a.filter.filter(),
    )?;
    let out = io::BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let written = match &sel.node {
        Some(n) if n.kind == NodeKind::File => {
            let mut out = out;
            io::copy(&mut SnapshotFileReader::new(&repo, &index, n), &mut out)
                .and_then(|_| out.flush())
        }
        Some(n) if n.kind != NodeKind::Dir => {
            return Err(Failure::usage(
                format!("{} is a {:?}, not a file or directory", a.path, n.kind),
                "dump a file, or a directory as a tar archive",
            ));
        }
        _ => tar(&repo, &index, &sel, out),
    };
    match written {
        // A reader that stopped early (`| head`) is its own business.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Failure::new(
            1,
            format!("dump of {} failed: {e}", a.path),
            Some(
                "check where stdout goes, and run `bulwark check --read-data` if the snapshot is damaged",
            ),
        )),
        Ok(()) => Ok(0),
    }
}

fn tar(
    repo: &Repository,
    index: &MasterIndex,
    sel: &browse::Selection,
    out: impl Write,
) -> io::Result<()> {
    let tree = browse::selected_tree(repo, index, sel).map_err(io::Error::other)?;
    let mut builder = tar::Builder::new(out);
    let mut failure = None;
    let walked = browse::walk(repo, index, &tree, &sel.path, &mut |path, node| {
        if let Err(e) = append(&mut builder, repo, index, path, node) {
            failure = Some(e);
            return Err(bulwark_repo::Error::Invalid("stopped".into()));
        }
        Ok(())
    });
    if let Some(e) = failure {
        return Err(e);
    }
    walked.map_err(io::Error::other)?;
    builder.into_inner()?.flush()
}

fn append(
    builder: &mut tar::Builder<impl Write>,
    repo: &Repository,
    index: &MasterIndex,
    path: &Path,
    node: &Node,
) -> io::Result<()> {
    let name = path.strip_prefix("/").unwrap_or(path);
    let mut h = tar::Header::new_gnu();
    h.set_mode(node.mode);
    h.set_uid(node.uid as u64);
    h.set_gid(node.gid as u64);
    h.set_mtime(node.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
    if !node.user.is_empty() {
        h.set_username(&node.user)?;
    }
    if !node.group.is_empty() {
        h.set_groupname(&node.group)?;
    }
    h.set_size(0);
    match node.kind {
        NodeKind::File => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(node.size);
            builder.append_data(&mut h, name, SnapshotFileReader::new(repo, index, node))
        }
        NodeKind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            builder.append_data(&mut h, name, io::empty())
        }
        NodeKind::Symlink => {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = node.link_target().map_err(io::Error::other)?;
            builder.append_link(&mut h, name, target)
        }
        NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
            h.set_entry_type(match node.kind {
                NodeKind::Fifo => tar::EntryType::Fifo,
                NodeKind::CharDevice => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            });
            let (major, minor) = (libc::major(node.rdev as _), libc::minor(node.rdev as _));
            h.set_device_major(major)?;
            h.set_device_minor(minor)?;
            builder.append_data(&mut h, name, io::empty())
        }
        // A socket cannot be archived; tar leaves them out too.
        NodeKind::Socket => Ok(()),
    }
}
