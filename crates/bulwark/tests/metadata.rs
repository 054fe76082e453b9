//! What a restore must bring back beyond content, mode, owner and mtime: extended attributes,
//! POSIX ACLs (the `system.posix_acl_*` attributes), file capabilities, and hard links; that
//! `restore --verify` checks them; that reading a tree (which moves access times) does not make
//! a backup store it again; and that a file that changes while it is read is reported.

mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use serde_json::Value;

/// A POSIX ACL in the kernel's xattr form: version 2, then (tag, perm, id) entries sorted by tag.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

const UNDEFINED: u32 = u32::MAX;
const NOBODY: u32 = 65534;

/// `user::rw-,user:nobody:r--,group::r--,mask::r--,other::r--` (what `setfacl -m u:nobody:r` makes).
fn nobody_may_read() -> Vec<u8> {
    acl(&[
        (0x01, 6, UNDEFINED),
        (0x02, 4, NOBODY),
        (0x04, 4, UNDEFINED),
        (0x10, 4, UNDEFINED),
        (0x20, 4, UNDEFINED),
    ])
}

/// Every attribute of `path`, sorted, as the kernel reports them.
fn xattrs(path: &Path) -> Vec<(OsString, Vec<u8>)> {
    let mut v: Vec<_> = xattr::list(path)
        .unwrap()
        .map(|n| {
            let value = xattr::get(path, &n).unwrap().unwrap_or_default();
            (n, value)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn xattrs_acls_capabilities_and_hard_links_come_back_and_are_verified() {
    let work = tempdir("bulwark-xattr-");
    let src = work.path().join("src");
    fs::create_dir_all(src.join("shared/sub")).unwrap();
    let f = src.join("f");
    fs::write(&f, b"with attributes").unwrap();
    xattr::set(&f, "user.k", b"v").unwrap();
    xattr::set(&f, "user.binary", &[0, 1, 2, 255]).unwrap();
    xattr::set(&f, "system.posix_acl_access", &nobody_may_read()).unwrap();
    // A default ACL on a directory: what new files below it inherit.
    let shared = src.join("shared");
    xattr::set(&shared, "system.posix_acl_default", &nobody_may_read()).unwrap();
    xattr::set(&shared, "user.dir", b"on a directory").unwrap();
    let tool = src.join("tool");
    fs::write(&tool, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o755)).unwrap();
    if running_as_root() {
        // cap_net_bind_service=ep, VFS_CAP_REVISION_2.
        let mut cap = 0x0200_0001u32.to_le_bytes().to_vec();
        for word in [1u32 << 10, 0, 0, 0] {
            cap.extend_from_slice(&word.to_le_bytes());
        }
        xattr::set(&tool, "security.capability", &cap).unwrap();
        xattr::set(&tool, "trusted.k", b"root only").unwrap();
    }
    // One file under four names, one of them in another directory.
    let data = Prng::new(3).bytes(300_000);
    let first = src.join("linked");
    fs::write(&first, &data).unwrap();
    for name in ["shared/l2", "shared/sub/l3", "l4"] {
        fs::hard_link(&first, src.join(name)).unwrap();
    }
    assert_eq!(fs::metadata(&first).unwrap().nlink(), 4);

    let repo = Repo::init(&[]);
    let snap = id_of(&repo.backup(&[&src], &[]));
    let target = tempdir("bulwark-xattr-restore-");
    let out = repo.restore(&snap, target.path(), &["--verify"]);
    out.assert_ok();
    assert!(!out.stderr.contains("warning"), "{}", out.describe());
    assert_eq!(out.json()["hardlinks"], 3, "{}", out.describe());
    let back = restored_at(target.path(), &src);
    assert_same_tree(&src, &back, Compare::ALL);
    for rel in ["f", "shared", "tool", "linked", "shared/sub"] {
        assert_eq!(
            xattrs(&back.join(rel)),
            xattrs(&src.join(rel)),
            "attributes of {rel}"
        );
    }
    assert!(!xattrs(&back.join("f")).is_empty());
    let ino = fs::metadata(back.join("linked")).unwrap().ino();
    for name in ["linked", "shared/l2", "shared/sub/l3", "l4"] {
        let m = fs::metadata(back.join(name)).unwrap();
        assert_eq!(
            (m.nlink(), m.ino()),
            (4, ino),
            "{name} is one of four links"
        );
    }
    // A restore of a subtree links what it holds, and nothing outside it.
    let part = tempdir("bulwark-xattr-part-");
    repo.restore(
        &format!("{snap}:{}", shared.display()),
        part.path(),
        &["--verify"],
    )
    .assert_ok();
    let m = fs::metadata(part.path().join("sub/l3")).unwrap();
    assert_eq!(m.nlink(), 2);
    assert_eq!(m.ino(), fs::metadata(part.path().join("l2")).unwrap().ino());
}

/// `--verify` compares attributes: one the restoring user may not set (`trusted.*` needs root)
/// makes the restore fail instead of claiming everything matches.
#[test]
fn verify_reports_attributes_that_could_not_be_restored() {
    if !running_as_root() {
        eprintln!("skipped: needs root to set a trusted.* attribute and drop to nobody");
        return;
    }
    let work = tempdir("bulwark-xattr-verify-");
    let base = work.path().to_path_buf();
    let src = base.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"content").unwrap();
    xattr::set(src.join("f"), "trusted.k", b"root only").unwrap();
    xattr::set(src.join("f"), "user.k", b"anyone").unwrap();
    let repo = Repo::init(&[]);
    let snap = id_of(&repo.backup(&[&src], &[]));
    let target = base.join("target");
    fs::create_dir(&target).unwrap();
    chmod_tree_open(&base);
    chmod_tree_open(&repo.path);
    // The build directory may be out of nobody's reach: run a copy.
    let bin = base.join("bulwark");
    fs::copy(common::bin(), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    // A thread of this test process that forks meanwhile briefly holds the copy open for
    // writing (ETXTBSY until that child execs): wait until it runs.
    for _ in 0..100 {
        match Command::new(&bin).arg("--version").output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => break,
        }
    }
    for dir in [repo.dir.path(), &base] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = run(Command::new(&bin)
        .uid(NOBODY)
        .gid(NOBODY)
        .current_dir("/")
        .env_clear()
        .env("BULWARK_PASSWORD", PASSWORD)
        .arg("-r")
        .arg(&repo.path)
        .args(["restore", &snap, "--verify", "--target"])
        .arg(&target));
    out.assert_code(1);
    assert!(
        out.stderr.contains("trusted.k") && out.stderr.contains("differ"),
        "{}",
        out.describe()
    );
    let f = restored_at(&target, &src.join("f"));
    assert_eq!(
        xattr::get(&f, "user.k").unwrap().as_deref(),
        Some(&b"anyone"[..])
    );
}

/// Reading a tree moves its access times (the first backup's own reads do, under relatime);
/// that alone must not make the next backup store any tree again.
#[test]
fn access_times_do_not_make_trees_new() {
    let work = tempdir("bulwark-atime-");
    let src = work.path().join("src");
    for d in ["a/b/c", "a/d", "e"] {
        fs::create_dir_all(src.join(d)).unwrap();
        fs::write(src.join(d).join("file"), d.as_bytes()).unwrap();
    }
    let atime = |p: &str| {
        let m = fs::metadata(src.join(p)).unwrap();
        (m.atime(), m.atime_nsec(), m.ctime(), m.ctime_nsec())
    };
    let before = (atime("a/b"), atime("e/file"));
    let repo = Repo::init(&[]);
    let first = repo.backup(&[&src], &[]);
    assert!(u64_of(&first, "dirs_new") >= 6, "{first}");
    // Read everything again, as any reader of the tree would.
    for f in files_below(&src) {
        fs::read(&f).unwrap();
    }
    let after = (atime("a/b"), atime("e/file"));
    if (before.0.0, before.0.1) == (after.0.0, after.0.1) {
        eprintln!("note: this file system did not move access times (noatime?)");
    }
    assert_eq!(
        (before.0.2, before.0.3),
        (after.0.2, after.0.3),
        "reads keep the ctime"
    );
    let second = repo.backup(&[&src], &[]);
    assert_eq!(u64_of(&second, "dirs_changed"), 0, "{second}");
    assert_eq!(u64_of(&second, "files_unmodified"), 3, "{second}");
    // Only the directories above the target may differ (/tmp changes as others use it).
    let diff = repo.json(&["diff", &id_of(&first), &id_of(&second), "--json"]);
    let inside: Vec<&Value> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| Path::new(c["path"].as_str().unwrap()).starts_with(&src))
        .collect();
    assert!(
        inside.is_empty(),
        "no tree below the target changed: {diff}"
    );
    assert!(
        u64_of(&second, "blobs_added") <= 2,
        "at most the trees above it: {second}"
    );
    // Restored access times follow the modification time, as restic's do.
    let target = tempdir("bulwark-atime-restore-");
    repo.restore(&id_of(&second), target.path(), &[])
        .assert_ok();
    let m = fs::metadata(restored_at(target.path(), &src.join("e/file"))).unwrap();
    assert_eq!((m.atime(), m.atime_nsec()), (m.mtime(), m.mtime_nsec()));
}

/// A file that grows while it is read is stored as read, named on stderr and in the report,
/// counted in the snapshot, and the backup exits 3.
#[test]
fn a_file_that_grows_while_it_is_read_is_reported() {
    let work = tempdir("bulwark-growing-");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("steady"), b"does not change").unwrap();
    let log = src.join("app.log");
    fs::write(&log, Prng::new(9).text(24 << 20)).unwrap();
    let repo = Repo::init(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            let line = vec![b'x'; 64 << 10];
            while !stop.load(Ordering::Relaxed) {
                f.write_all(&line).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let out = repo.backup_out(&[&src], &[]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    out.assert_code(3);
    let report = out.json();
    let changed = strings(&report["changed_while_read"]);
    assert_eq!(changed.len(), 1, "{report}");
    assert!(changed[0].starts_with(log.to_str().unwrap()), "{report}");
    assert!(
        out.stderr.contains("changed while read"),
        "{}",
        out.describe()
    );
    assert_eq!(report["files_changed_while_read"], 1, "{report}");
    let snaps = repo.snapshots();
    assert_eq!(snaps[0]["summary"]["files_changed_while_read"], 1);
    // The next backup reads it again rather than trusting what was torn.
    let next = repo.backup(&[&src], &[]);
    assert_eq!(u64_of(&next, "files_changed"), 1, "{next}");
}
