//! Kill `bulwark backup` with SIGKILL at random instants, over and over, into one repository made
//! with 1 MiB packs so that many packs are written. After every kill the repository must be
//! consistent (`check` ok; unindexed packs are only a warning) and show no new snapshot; at the end
//! a full backup must succeed, verify, restore exactly, and reuse the packs the killed runs left.
//!
//! Kills: 8 by default, 100 with BULWARK_THOROUGH=1. BULWARK_TEST_SEED replays the delays.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bulwark_repo::Id;
use common::*;

/// About 49 MB: two dozen 2 MiB files, half random and half text-like, and a hundred small ones.
fn make_source(root: &Path, seed: u64) -> u64 {
    let mut rng = Prng::new(seed);
    let mut total = 0u64;
    for i in 0..24 {
        let dir = root.join(format!("dir{}", i % 5));
        fs::create_dir_all(&dir).unwrap();
        let data = if i % 2 == 0 {
            rng.bytes(2 << 20)
        } else {
            rng.text(2 << 20)
        };
        total += data.len() as u64;
        fs::write(dir.join(format!("big{i}.dat")), data).unwrap();
    }
    let small = root.join("small");
    fs::create_dir_all(&small).unwrap();
    for i in 0..100 {
        let len = 1 + rng.below(16 << 10) as usize;
        let data = if i % 3 == 0 {
            rng.bytes(len)
        } else {
            rng.text(len)
        };
        total += data.len() as u64;
        fs::write(small.join(format!("f{i:03}.txt")), data).unwrap();
    }
    total
}

const INIT: &[&str] = &["--pack-size-mib", "1", "--chunk-avg-kib", "256"];

fn pack_total(repo: &Repo) -> u64 {
    repo.objects("data").values().sum()
}

/// A snapshot that exists must be complete: every pack verifies and it describes the whole source.
fn assert_complete_snapshot(repo: &Repo, snap: &serde_json::Value, source_bytes: u64) {
    repo.assert_clean();
    assert_eq!(
        snap["summary"]["total_bytes"].as_u64(),
        Some(source_bytes),
        "{snap}"
    );
}

#[test]
fn backups_killed_at_random_instants_leave_a_consistent_reusable_repository() {
    let seed = seed("crash");
    let mut rng = Prng::new(seed);
    let work = tempdir("bulwark-crash-");
    let src = work.path().join("src");
    let source_bytes = make_source(&src, rng.next_u64());

    // A full, uninterrupted run into a repository of its own: how long a run takes, and what a
    // complete backup stores.
    let reference = Repo::init(INIT);
    let started = Instant::now();
    let full = reference.backup(&[&src], &[]);
    let duration = started.elapsed();
    let fresh_stored = pack_total(&reference);
    eprintln!("a full backup takes {duration:?} and stores {fresh_stored} bytes in packs: {full}");
    assert!(
        reference.objects("data").len() >= 10,
        "1 MiB packs: expected many of them"
    );
    drop(reference);

    let repo = Repo::init(INIT);
    let kills = scale(8, 100);
    let mut killed = 0;
    for round in 0..kills {
        let delay = Duration::from_micros(rng.below(duration.as_micros() as u64 + 1));
        let mut child = repo
            .cmd(&[
                std::ffi::OsStr::new("backup"),
                std::ffi::OsStr::new("--json"),
                src.as_os_str(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished_first = child.try_wait().unwrap().is_some();
        if !finished_first {
            child.kill().unwrap(); // SIGKILL
        }
        let out = finish(child);
        let snaps = repo.snapshots();
        eprintln!(
            "round {round}: delay {delay:?}, {} (exit {}), {} packs",
            if finished_first {
                "finished before the kill"
            } else {
                "killed"
            },
            out.code,
            repo.objects("data").len()
        );
        if out.code == 128 + libc::SIGKILL {
            killed += 1;
            // The snapshot is written last; only a kill landing after that, while the process was
            // already exiting, may leave one, and then it must be complete.
            if let Some(s) = snaps.first() {
                eprintln!("round {round}: the kill came after the snapshot was written");
                assert_eq!(snaps.len(), 1);
                assert_complete_snapshot(&repo, s, source_bytes);
            }
        } else {
            out.assert_ok();
            assert_eq!(
                snaps.len(),
                1,
                "a finished backup shows exactly its snapshot: {snaps:?}"
            );
            assert_complete_snapshot(&repo, &snaps[0], source_bytes);
        }
        // Forget any snapshot (as `forget` would), so that every run is a full backup again
        // rather than an incremental one that finishes before the kill.
        for f in files_below(&repo.path.join("snapshots")) {
            fs::remove_file(f).unwrap();
        }
        let (out, report) = repo.check(&[]);
        out.assert_ok();
        assert_eq!(report["ok"], true, "after round {round}: {report}");
        assert_eq!(
            report["errors"],
            serde_json::json!([]),
            "after round {round}: {report}"
        );
        assert_eq!(report["snapshots"], 0, "after round {round}: {report}");
    }
    eprintln!("{killed} of {kills} runs were killed before they finished");

    // What the killed runs left: complete packs, indexed or not.
    let before = repo.objects("data");
    let left_behind: u64 = before.values().sum();
    let last = repo.backup(&[&src], &[]);
    eprintln!("final run: {last}");
    assert_eq!(u64_of(&last, "total_bytes"), source_bytes, "{last}");
    assert_eq!(repo.snapshots().len(), 1);
    repo.assert_clean();
    let target = tempdir("bulwark-crash-restore-");
    let out = repo.restore("latest", target.path(), &["--verify"]);
    out.assert_ok();
    assert_eq!(out.json()["verified"], true, "{}", out.describe());
    assert_same_tree(&src, &restored_at(target.path(), &src), Compare::ALL);

    // Reuse. Every pack a killed run completed holds blobs the final run needs (the data is the
    // same), so the final run must index and use them instead of uploading that data again:
    //  1. each pack present before the final run is still there, unchanged, and in the index;
    //  2. what the final run uploaded plus what was already there is no more than 1.1x what a
    //     fresh full backup of the same data stores (re-uploading the left-behind data would push
    //     the sum towards fresh + left_behind).
    let after = repo.objects("data");
    let lib = repo.open_lib();
    let index = lib.load_index().unwrap();
    for (name, size) in &before {
        assert_eq!(
            after.get(name),
            Some(size),
            "pack {name} changed or vanished"
        );
        assert!(
            index.has_pack(&name.parse::<Id>().unwrap()),
            "pack {name} from a killed run is not indexed"
        );
    }
    let uploaded = u64_of(&last, "bytes_added_stored");
    eprintln!(
        "left behind by killed runs: {left_behind} bytes; final run uploaded {uploaded}; fresh backup stores {fresh_stored}"
    );
    assert!(
        (uploaded + left_behind) as f64 <= 1.1 * fresh_stored as f64,
        "the final run uploaded {uploaded} bytes on top of {left_behind} left by killed runs; \
         a fresh full backup stores {fresh_stored}: data already in complete packs was uploaded again"
    );
    let total: u64 = after.values().sum();
    assert!(
        total as f64 <= 1.15 * fresh_stored as f64,
        "the repository holds {total} bytes of packs for {fresh_stored} bytes of backup"
    );
}
