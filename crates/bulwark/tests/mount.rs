//! `bulwark mount` through the kernel's FUSE: every snapshot readable as files (contents at any
//! offset, modes, times, links), nothing writable, damage an error rather than zeros, and Ctrl-C
//! or `fusermount -u` unmounts cleanly and releases the lock. Skipped where FUSE is missing,
//! unless BULWARK_REQUIRE_FUSE is set (CI sets it).

mod common;

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn fuse_available() -> bool {
    let present = Path::new("/dev/fuse").exists()
        && ["fusermount3", "fusermount"]
            .iter()
            .any(|b| std::process::Command::new(b).arg("-V").output().is_ok());
    if !present && std::env::var_os("BULWARK_REQUIRE_FUSE").is_some() {
        panic!("BULWARK_REQUIRE_FUSE is set but /dev/fuse or fusermount is missing");
    }
    present
}

struct Mounted {
    child: Child,
    at: PathBuf,
}

impl Mounted {
    fn start(repo: &Repo, at: &Path) -> Mounted {
        fs::create_dir_all(at).unwrap();
        let child = repo
            .cmd(&[OsStr::new("mount"), at.as_os_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !at.join("snapshots").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the mount did not appear"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Mounted {
            child,
            at: at.to_path_buf(),
        }
    }

    /// Stop with SIGINT, as Ctrl-C does; the exit code and stderr.
    fn interrupt(mut self) -> (i32, String) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let out = std::mem::replace(
            &mut self.child,
            std::process::Command::new("true").spawn().unwrap(),
        )
        .wait_with_output()
        .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for b in ["fusermount3", "fusermount"] {
            let _ = std::process::Command::new(b)
                .args(["-u", "-z"])
                .arg(&self.at)
                .stderr(Stdio::null())
                .status();
        }
    }
}

use std::ffi::OsStr;

#[test]
fn snapshots_read_back_through_the_kernel_exactly_and_nothing_can_be_written() {
    if !fuse_available() {
        eprintln!("skipped: no FUSE here");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    // Several chunks of 64 KiB on average: reads cross blob boundaries.
    let big = Prng::new(7).bytes(3 << 20);
    fs::write(src.join("big"), &big).unwrap();
    fs::write(src.join("sub/secret"), b"owner only\n").unwrap();
    fs::set_permissions(src.join("sub/secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("../big", src.join("sub/link")).unwrap();
    let repo = Repo::init(&["--chunk-avg-kib", "64"]);
    repo.backup(&[&src], &[]);
    fs::write(src.join("sub/secret"), b"changed\n").unwrap();
    repo.backup(&[&src], &[]);
    let snapshots = repo.snapshots();
    assert_eq!(snapshots.len(), 2);

    let m = Mounted::start(&repo, &work.path().join("mnt"));
    let mut ids: Vec<String> = fs::read_dir(m.at.join("ids"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = snapshots
        .iter()
        .map(|s| s["id"].as_str().unwrap()[..8].to_string())
        .collect();
    expected.sort();
    assert_eq!(ids, expected);
    let latest = m.at.join("snapshots/latest");
    assert!(
        fs::symlink_metadata(&latest)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let inside =
        |snapshot: &Path, rel: &str| snapshot.join(src.strip_prefix("/").unwrap()).join(rel);

    // Contents: whole, and at offsets that straddle chunk boundaries.
    let mounted_big = inside(&latest, "big");
    assert_eq!(fs::read(&mounted_big).unwrap(), big);
    let f = fs::File::open(&mounted_big).unwrap();
    let mut rng = Prng::new(11);
    for _ in 0..40 {
        let offset = rng.below(big.len() as u64);
        let len = 1 + rng.below(300_000) as usize;
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, offset).unwrap();
        let end = (offset as usize + len).min(big.len());
        assert_eq!(&buf[..n], &big[offset as usize..end], "at {offset}+{len}");
    }
    drop(f);
    assert_eq!(
        fs::read(inside(&latest, "sub/secret")).unwrap(),
        b"changed\n"
    );
    assert_eq!(fs::read(inside(&latest, "empty")).unwrap(), b"");
    assert_eq!(
        fs::read_link(inside(&latest, "sub/link")).unwrap(),
        PathBuf::from("../big")
    );
    // The older snapshot, by id, holds the older content.
    let older = snapshots
        .iter()
        .min_by_key(|s| s["time"].as_str().unwrap().to_string())
        .unwrap();
    let by_id = m.at.join("ids").join(&older["id"].as_str().unwrap()[..8]);
    assert_eq!(
        fs::read(inside(&by_id, "sub/secret")).unwrap(),
        b"owner only\n"
    );
    // Metadata as stored.
    let meta = fs::metadata(inside(&latest, "sub/secret")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    let original = fs::metadata(src.join("big")).unwrap();
    let mounted = fs::metadata(&mounted_big).unwrap();
    assert_eq!(mounted.len(), original.len());
    assert_eq!(mounted.modified().unwrap(), original.modified().unwrap());
    // Read-only.
    let refused = fs::write(m.at.join("snapshots/new"), b"x").unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::EROFS), "{refused}");
    let refused = fs::OpenOptions::new()
        .write(true)
        .open(&mounted_big)
        .unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::EROFS), "{refused}");

    // Ctrl-C unmounts and releases the lock.
    let at = m.at.clone();
    let (code, stderr) = m.interrupt();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("unmounted"), "{stderr}");
    assert!(!at.join("snapshots").exists(), "the mount is gone");
    assert!(repo.objects("locks").is_empty(), "no lock is left");
}

#[test]
fn a_damaged_blob_reads_as_an_error_never_as_zeros() {
    if !fuse_available() {
        eprintln!("skipped: no FUSE here");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("data"), Prng::new(3).bytes(1 << 20)).unwrap();
    let repo = Repo::init(&[]);
    repo.backup(&[&src], &[]);
    let (name, size) = repo
        .objects("data")
        .into_iter()
        .max_by_key(|(_, size)| *size)
        .unwrap();
    flip_byte(&repo.pack_path(&name), size / 3);
    let m = Mounted::start(&repo, &work.path().join("mnt"));
    let file =
        m.at.join("snapshots/latest")
            .join(src.strip_prefix("/").unwrap())
            .join("data");
    let err = fs::read(&file).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    // Unmounted from outside: the command notices and exits cleanly.
    let status = std::process::Command::new("fusermount")
        .arg("-u")
        .arg(&m.at)
        .status()
        .or_else(|_| {
            std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(&m.at)
                .status()
        })
        .unwrap();
    assert!(status.success());
    let (code, stderr) = m.interrupt();
    assert_eq!(code, 0, "{stderr}");
}
