//! Several processes on one repository: concurrent backups both succeed and stay consistent; an
//! exclusive lock held through the library turns a backup away with exit 11 naming the holder; a
//! shared lock does not; a lock left by a killed process does not block anyone.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulwark_repo::{Credential, LockKind, Repository, StoreBackend};
use common::*;

fn make_source(root: &Path, seed: u64, shared: &[u8]) {
    let mut rng = Prng::new(seed);
    fs::create_dir_all(root.join("nested")).unwrap();
    for i in 0..6 {
        fs::write(root.join(format!("r{i}.bin")), rng.bytes(1 << 20)).unwrap();
        fs::write(
            root.join("nested").join(format!("t{i}.txt")),
            rng.text(1 << 20),
        )
        .unwrap();
    }
    // The same content in both sources: both processes may store it.
    fs::write(root.join("shared.bin"), shared).unwrap();
}

#[test]
fn two_concurrent_backups_both_succeed() {
    let work = tempdir("bulwark-concurrent-");
    let shared = Prng::new(99).bytes(3 << 20);
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    make_source(&a, 1, &shared);
    make_source(&b, 2, &shared);
    let repo = Repo::init(&["--pack-size-mib", "1", "--chunk-avg-kib", "128"]);
    let spawn = |src: &PathBuf| {
        repo.cmd(&[OsStr::new("backup"), OsStr::new("--json"), src.as_os_str()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ca, cb) = (spawn(&a), spawn(&b));
    let (oa, ob) = (finish(ca), finish(cb));
    oa.assert_ok();
    ob.assert_ok();
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let mut ids: Vec<String> = snaps.iter().map(id_of).collect();
    ids.sort();
    let mut want = vec![id_of(&oa.json()), id_of(&ob.json())];
    want.sort();
    assert_eq!(ids, want);
    repo.assert_clean();
    for (src, out) in [(&a, &oa), (&b, &ob)] {
        let target = tempdir("bulwark-concurrent-restore-");
        repo.restore(&id_of(&out.json()), target.path(), &["--verify"])
            .assert_ok();
        assert_same_tree(src, &restored_at(target.path(), src), Compare::ALL);
    }
}

fn open(repo: &Repo) -> Repository {
    let backend = StoreBackend::local(&repo.path, false).unwrap();
    Repository::open(
        Arc::new(backend),
        &Credential::Passphrase(repo.password.clone()),
    )
    .unwrap()
}

#[test]
fn an_exclusive_lock_turns_a_backup_away_with_exit_11() {
    let work = tempdir("bulwark-locked-");
    let src = work.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"locked out").unwrap();
    let repo = Repo::init(&[]);
    let lib = open(&repo);

    let guard = lib.lock(LockKind::Exclusive).unwrap();
    let out = repo.backup_out(&[&src], &[]);
    out.assert_code(11).assert_one_error_line();
    let pid = std::process::id().to_string();
    assert!(out.stderr.contains("locked"), "{}", out.describe());
    assert!(
        out.stderr.contains(&pid),
        "the message names the holder's pid {pid}:\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains(&bulwark_repo::host_name()),
        "the message names the host:\n{}",
        out.describe()
    );
    assert!(out.stderr.contains("exclusive"), "{}", out.describe());
    assert_eq!(repo.snapshots().len(), 0);
    repo.run(&["check"]).assert_code(11);
    drop(guard);
    assert_eq!(
        files_below(&repo.path.join("locks")).len(),
        0,
        "dropping the guard removes the lock"
    );
    repo.backup(&[&src], &[]);

    // A shared lock lets backups through but keeps out what needs the repository alone.
    let guard = lib.lock(LockKind::Shared).unwrap();
    repo.backup(&[&src], &[]);
    repo.run(&["repair", "index"]).assert_code(11);
    // Key slots change only while nobody else has the repository open.
    let slot = {
        let mut c = repo.cmd(&["key", "add", "--json"]);
        let file = work.path().join("second-pass");
        fs::write(&file, "second passphrase").unwrap();
        c.env("BULWARK_NEW_PASSWORD_FILE", &file);
        let out = run(&mut c);
        out.assert_ok();
        out.json()["id"].as_str().unwrap().to_string()
    };
    repo.run(&["key", "remove", &slot]).assert_code(11);
    drop(guard);
    repo.run(&["key", "remove", &slot]).assert_ok();
    repo.run(&["repair", "index"]).assert_ok();
    assert_eq!(repo.snapshots().len(), 2);
    repo.assert_clean();
}

#[test]
fn a_lock_left_by_a_killed_process_blocks_nobody() {
    let repo = Repo::init(&[]);
    // A backup that waits on a command producing nothing holds its lock until killed. In a process
    // group of its own, so the kill takes its `sleep` too.
    let mut child = repo
        .cmd(&[
            "backup",
            "--stdin-name",
            "slow",
            "--stdin-from-command",
            "--",
            "sleep",
            "600",
        ])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let locks = repo.path.join("locks");
    let started = Instant::now();
    // A lock is published under its final name (64 hex digits) after a staging file.
    let published = |dir: &std::path::Path| {
        files_below(dir)
            .iter()
            .filter(|p| is_hex64(&p.file_name().unwrap().to_string_lossy()))
            .count()
    };
    while published(&locks) == 0 {
        assert!(
            started.elapsed() < WATCHDOG,
            "the backup never took its lock"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended early"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill(2) on the process group we just made.
    let rc = unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    assert_eq!(rc, 0);
    assert_eq!(finish(child).code, 128 + libc::SIGKILL);
    assert_eq!(
        published(&locks),
        1,
        "the killed process leaves its lock behind"
    );
    // The holder is gone: an exclusive lock is granted all the same.
    repo.run(&["repair", "index"]).assert_ok();
    repo.assert_clean();
    assert_eq!(repo.snapshots().len(), 0);
}

/// Commands that finish (or fail) right after taking the lock must not wait for the lock's
/// refresher thread: it has to notice a stop requested before it first waits.
#[test]
fn short_commands_release_their_lock_at_once() {
    let work = tempdir("bulwark-quick-");
    fs::write(work.path().join("f"), b"tiny").unwrap();
    let repo = Repo::init(&[]);
    repo.backup(&[work.path()], &[]);
    for round in 0..10 {
        let out = run_limited(
            &mut repo.cmd(&["ls", "latest"]),
            None,
            Duration::from_secs(30),
        );
        out.assert_ok();
        assert_eq!(
            files_below(&repo.path.join("locks")).len(),
            0,
            "round {round}"
        );
    }
    // Fail right after the lock is taken: a damaged index file.
    let index = files_below(&repo.path.join("index"));
    fs::write(&index[0], b"damaged").unwrap();
    for round in 0..10 {
        let out = run_limited(
            &mut repo.cmd(&["ls", "latest"]),
            None,
            Duration::from_secs(30),
        );
        out.assert_code(1);
        assert_eq!(
            files_below(&repo.path.join("locks")).len(),
            0,
            "round {round}"
        );
    }
}
