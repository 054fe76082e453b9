//! SIGINT and SIGTERM: a command says it is stopping, stops at a safe point, releases its lock,
//! saves no snapshot, and exits 130 (SIGINT) or 143 (SIGTERM); a second signal quits at once and
//! still removes the lock. The backups read standard input that the test keeps open, so they
//! are certainly still running when the signal comes.

mod common;

use std::io::Write;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use common::*;

const FEED: u8 = 0;
const PAUSE: u8 = 1;
const CLOSE: u8 = 2;

/// Start `backup --stdin-name` on `repo` and feed it random data while `state` is FEED; on
/// PAUSE the pipe stays open without data (the backup waits for more), on CLOSE it is closed.
fn start_stdin_backup(repo: &Repo, state: Arc<AtomicU8>) -> Child {
    let mut child = repo
        .cmd(&["backup", "--json", "--stdin-name", "stream.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bulwark");
    let mut pipe = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let mut rng = Prng::new(7);
        let mut block = vec![0u8; 256 << 10];
        loop {
            match state.load(Ordering::Relaxed) {
                FEED => {
                    rng.fill(&mut block);
                    if pipe.write_all(&block).is_err() {
                        return;
                    }
                }
                PAUSE => std::thread::sleep(Duration::from_millis(20)),
                _ => return,
            }
        }
    });
    child
}

/// Wait until the backup holds its lock and has stored a few MiB.
fn wait_until_running(repo: &Repo, child: &mut Child) {
    let started = Instant::now();
    loop {
        let locked = !repo.objects("locks").is_empty();
        let stored: u64 = repo.objects("data").values().sum();
        if locked && stored > 0 {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before the signal"
        );
        assert!(
            started.elapsed() < WATCHDOG,
            "the backup did not start storing data"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

fn stops_cleanly(sig: i32, name: &str, code: i32) {
    // Packs of 1 MiB, so data lands while the stream is still being read.
    let repo = Repo::init(&["--pack-size-mib", "1", "--chunk-avg-kib", "64"]);
    let state = Arc::new(AtomicU8::new(FEED));
    let mut child = start_stdin_backup(&repo, state.clone());
    wait_until_running(&repo, &mut child);
    signal(&child, sig);
    let out = finish(child);
    state.store(CLOSE, Ordering::Relaxed);
    out.assert_code(code);
    assert!(
        out.stderr.contains(&format!("{name} received: stopping")),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains(&format!("error: stopped by {name} at a safe point")),
        "{}",
        out.describe()
    );
    assert_eq!(repo.objects("locks").len(), 0, "the lock is released");
    assert!(
        repo.snapshots().is_empty(),
        "no snapshot of a stopped backup"
    );
    // Another process may take the repository exclusively at once.
    repo.run(&["repair", "index"]).assert_ok();
}

#[test]
fn sigint_stops_a_backup_at_a_safe_point_with_exit_130() {
    stops_cleanly(libc::SIGINT, "SIGINT", 130);
}

#[test]
fn sigterm_stops_a_backup_at_a_safe_point_with_exit_143() {
    stops_cleanly(libc::SIGTERM, "SIGTERM", 143);
}

/// The backup is stuck reading a silent stdin, so it cannot reach a safe point: the second
/// Ctrl-C quits at once, and the lock still goes.
#[test]
fn a_second_sigint_quits_at_once_and_still_releases_the_lock() {
    let repo = Repo::init(&["--pack-size-mib", "1", "--chunk-avg-kib", "64"]);
    let state = Arc::new(AtomicU8::new(FEED));
    let mut child = start_stdin_backup(&repo, state.clone());
    wait_until_running(&repo, &mut child);
    // Let bulwark drain the pipe and block reading it.
    state.store(PAUSE, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    // The first signal is noted; the process stays, waiting for input.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting for stdin"
    );
    signal(&child, libc::SIGINT);
    let out = finish(child);
    state.store(CLOSE, Ordering::Relaxed);
    out.assert_code(130);
    assert!(
        out.stderr
            .contains("quitting at once (released 1 repository lock)"),
        "{}",
        out.describe()
    );
    assert_eq!(repo.objects("locks").len(), 0, "the lock is released");
    assert!(repo.snapshots().is_empty());
}
