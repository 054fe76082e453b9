//! `bulwark mount`: every snapshot as a read-only file system until Ctrl-C (or `fusermount -u`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bulwark_mount::{Error as MountError, SnapshotFs, mount};
use bulwark_repo::lock::LockKind;

use super::open;
use crate::CliResult;
use crate::cli::Global;
use crate::failure::{FAILED, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// An empty directory to mount on
    pub mountpoint: PathBuf,
    /// Let other users than the one mounting read it (FUSE's allow_other; needs
    /// `user_allow_other` in /etc/fuse.conf unless run as root)
    #[arg(long)]
    pub allow_other: bool,
}

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    if !a.mountpoint.is_dir() {
        return Err(Failure::usage(
            format!("{} is not a directory", a.mountpoint.display()),
            "create an empty directory to mount on",
        ));
    }
    let repo = Arc::new(open(g)?);
    // Held while mounted: a prune elsewhere waits rather than deleting what is being read.
    let _lock = repo.lock(LockKind::Shared)?;
    let index = Arc::new(repo.load_index()?);
    let fs = SnapshotFs::new(repo, index).map_err(|e| match e {
        MountError::Repository(e) => Failure::from(e),
        other => Failure::new(FAILED, other.to_string(), None),
    })?;
    let session = mount(fs, &a.mountpoint, a.allow_other).map_err(|e| {
        Failure::new(
            FAILED,
            e.to_string(),
            Some("install fuse3 (fusermount3), check that /dev/fuse exists, and mount on an empty directory"),
        )
    })?;
    if !g.quiet {
        eprintln!(
            "snapshots mounted read-only on {}; Ctrl-C (or `fusermount -u {}`) unmounts",
            a.mountpoint.display(),
            a.mountpoint.display()
        );
    }
    while !crate::signals::stop_requested() && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let unmounted = if session.guard.is_finished() {
        session.join()
    } else {
        session.umount_and_join()
    };
    unmounted.map_err(|e| {
        Failure::new(
            FAILED,
            format!("unmounting {}: {e}", a.mountpoint.display()),
            Some("run `fusermount -u MOUNTPOINT` once nothing uses it"),
        )
    })?;
    if !g.quiet {
        eprintln!("unmounted {}", a.mountpoint.display());
    }
    Ok(0)
}
