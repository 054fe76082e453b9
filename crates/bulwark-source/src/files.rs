//! File system metadata: captured into tree nodes at backup, applied again at restore.
//!
//! Extended attributes (and with them POSIX ACLs and file capabilities, which the kernel
//! exposes as `system.posix_acl_*` and `security.capability`) are read without following
//! symlinks. A file system without attribute support has none; attributes this process may not
//! see (`trusted.*` unless root) are not listed by the kernel and so not stored.

use std::ffi::{CString, OsStr};
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use bulwark_repo::{Node, NodeKind, Xattr};
use filetime::FileTime;

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Describe a file system entry (from `lstat`) as a tree node, without its content.
pub fn node_from_metadata(name: &OsStr, meta: &Metadata) -> Node {
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        NodeKind::File
    } else if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else {
        NodeKind::BlockDevice
    };
    let mut node = Node::new(name, kind);
    node.mode = meta.mode() & 0o7777;
    node.uid = meta.uid();
    node.gid = meta.gid();
    node.mtime_ns = ns(meta.mtime(), meta.mtime_nsec());
    node.ctime_ns = ns(meta.ctime(), meta.ctime_nsec());
    node.inode = meta.ino();
    node.device = meta.dev();
    node.links = meta.nlink();
    if kind == NodeKind::File {
        node.size = meta.len();
    }
    if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        node.rdev = meta.rdev();
    }
    node
}

/// Whether a file is unchanged since `old` was recorded, judged without reading it.
pub fn unchanged(old: &Node, new: &Node) -> bool {
    old.kind == NodeKind::File
        && new.kind == NodeKind::File
        && old.size == new.size
        && old.mtime_ns == new.mtime_ns
        && old.ctime_ns == new.ctime_ns
        && old.inode == new.inode
}

/// Whether an error means "this file system keeps no extended attributes here".
fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENOSYS))
}

/// The extended attributes of `path` (not following a symlink), sorted by name.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        // Removed between listing and reading: it is gone, like a file deleted during a walk.
        if let Some(value) = xattr::get(path, &name)? {
            out.push(Xattr::new(&name, &value));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Set every attribute of `node` on `path` (not following a symlink); one line per failure.
pub fn apply_xattrs(path: &Path, node: &Node) -> Vec<String> {
    let mut problems = Vec::new();
    for x in &node.xattrs {
        let set = x
            .os_name()
            .map_err(|e| e.to_string())
            .and_then(|n| x.value().map(|v| (n, v)).map_err(|e| e.to_string()))
            .and_then(|(n, v)| xattr::set(path, n, &v).map_err(|e| e.to_string()));
        if let Err(e) = set {
            problems.push(format!("attribute {}: {e}", x.name));
        }
    }
    problems
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Create a special file (fifo or device) at `path`.
pub fn make_special(path: &Path, node: &Node) -> io::Result<()> {
    let p = c_path(path)?;
    let kind_bits = match node.kind {
        NodeKind::Fifo => libc::S_IFIFO,
        NodeKind::CharDevice => libc::S_IFCHR,
        NodeKind::BlockDevice => libc::S_IFBLK,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "not a special file",
            ));
        }
    };
    // SAFETY: p is a valid NUL-terminated path.
    check(unsafe {
        libc::mknod(
            p.as_ptr(),
            kind_bits | (node.mode & 0o7777) as libc::mode_t,
            node.rdev as libc::dev_t,
        )
    })
}

/// This process's effective user and group ids.
pub fn current_ids() -> (u32, u32) {
    // SAFETY: geteuid/getegid have no preconditions.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Apply ownership (when root), extended attributes, permissions and times; returns the
/// attributes that could not be set. Ownership goes first: `chown` clears set-uid bits and file
/// capabilities, which the later steps put back. Attributes go before `chmod`: `user.*`
/// attributes need write permission, which a read-only mode would take away.
///
/// An owner or mode the entry already has is not set again: each change is a journaled inode
/// update, and most restored entries were created with the owner and mode they are meant to have.
pub fn apply_metadata(path: &Path, node: &Node, as_root: bool) -> io::Result<Vec<String>> {
    let symlink = node.kind == NodeKind::Symlink;
    let now = std::fs::symlink_metadata(path)?;
    let chown = as_root && (now.uid(), now.gid()) != (node.uid, node.gid);
    if chown {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))?;
    }
    let problems = apply_xattrs(path, node);
    // An access ACL among the attributes rewrites the mode's group bits, and a chown may clear
    // set-uid bits: after either, the mode is set whatever it was.
    let mode_kept = !chown && node.xattrs.is_empty() && now.mode() & 0o7777 == node.mode & 0o7777;
    if !symlink && !mode_kept {
        let p = c_path(path)?;
        // SAFETY: p is a valid NUL-terminated path.
        check(unsafe { libc::chmod(p.as_ptr(), node.mode as libc::mode_t) })?;
    }
    let to_time = |n: i64| {
        FileTime::from_unix_time(
            n.div_euclid(1_000_000_000),
            n.rem_euclid(1_000_000_000) as u32,
        )
    };
    let atime = to_time(node.atime_ns.unwrap_or(node.mtime_ns));
    let mtime = to_time(node.mtime_ns);
    // utimensat on the path itself: never opens the file (a FIFO would block) nor follows links.
    filetime::set_symlink_file_times(path, atime, mtime)?;
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_a_node() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"hello").unwrap();
        let mut node = node_from_metadata(OsStr::new("a"), &std::fs::symlink_metadata(&a).unwrap());
        assert_eq!((node.kind, node.size), (NodeKind::File, 5));
        node.mode = 0o640;
        node.mtime_ns = 1_234_567_890_123_456_789;
        let b = dir.path().join("b");
        std::fs::write(&b, b"hello").unwrap();
        node.xattrs = vec![Xattr::new(OsStr::new("user.k"), b"v\0binary")];
        assert_eq!(
            apply_metadata(&b, &node, false).unwrap(),
            Vec::<String>::new()
        );
        let m = std::fs::symlink_metadata(&b).unwrap();
        let back = node_from_metadata(OsStr::new("a"), &m);
        assert_eq!(back.mode, 0o640);
        assert_eq!(back.mtime_ns, node.mtime_ns);
        assert_eq!(
            ns(m.atime(), m.atime_nsec()),
            node.mtime_ns,
            "atime follows mtime"
        );
        assert_eq!(read_xattrs(&b).unwrap(), node.xattrs);
    }
}
