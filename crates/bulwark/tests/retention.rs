//! Retention end to end: a year of daily snapshots reduced by the policy's rules, holds, and a
//! prune that never deletes data a snapshot needs — not while backups run beside it, and not when
//! it is killed at any instant.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{Datelike, Duration as Days, NaiveDate, TimeZone, Utc};
use common::*;
use serde_json::Value;

/// A repository opened with a key file: no Argon2 per command, for tests that run hundreds.
struct FastRepo {
    repo: Repo,
    key_file: PathBuf,
}

impl FastRepo {
    fn init(extra: &[&str]) -> FastRepo {
        let repo = Repo::init(extra);
        let key_file = repo.dir.path().join("key");
        repo.run(&["key", "add", "--new-key-file", key_file.to_str().unwrap()])
            .assert_ok();
        FastRepo { repo, key_file }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.repo.cmd(args);
        c.env("BULWARK_KEY_FILE", &self.key_file);
        c
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> Out {
        run(&mut self.cmd(args))
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        out.assert_ok();
        out.json()
    }

    fn snapshot_ids(&self) -> BTreeSet<String> {
        strings_of(&self.json(&["snapshots", "--json"]), "id")
    }

    #[track_caller]
    fn assert_clean(&self) {
        let v = self.json(&["check", "--read-data", "--json"]);
        assert_eq!(v["ok"], true, "check --read-data: {v}");
    }
}

/// Date a snapshot's object as the store would have, had the backup run at its claimed time:
/// `forget` keeps snapshots whose claimed and stored times disagree.
fn stored_at(repo: &FastRepo, id: &str, time: chrono::DateTime<Utc>) {
    let path = repo.repo.path.join("snapshots").join(id);
    set_times(&path, (time.timestamp(), 0), (time.timestamp(), 0));
}

fn strings_of(v: &Value, field: &str) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s[field].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_year_of_daily_snapshots_keeps_exactly_30_days_and_12_months() {
    let repo = FastRepo::init(&["--chunk-avg-kib", "64"]);
    let src = repo.repo.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"daily").unwrap();
    let last = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    let mut by_day = std::collections::BTreeMap::new();
    for back in 0..365 {
        let day = last - Days::days(back);
        let time = Utc.from_utc_datetime(&day.and_hms_opt(2, 0, 0).unwrap());
        std::fs::write(src.join("a"), format!("the data of {day}")).unwrap();
        let out = repo.json(&[
            "backup",
            "--json",
            src.to_str().unwrap(),
            "--time",
            &time.to_rfc3339(),
        ]);
        let id = out["snapshot_id"].as_str().unwrap().to_string();
        stored_at(&repo, &id, time);
        by_day.insert(day, id);
    }
    let plan = repo.json(&[
        "forget",
        "--json",
        "--keep-within",
        "30d",
        "--keep-monthly",
        "12",
        "--dry-run",
    ]);
    assert_eq!(
        repo.snapshot_ids().len(),
        365,
        "--dry-run must change nothing"
    );

    // Expected: every snapshot within 30 days of the newest, and the newest of each of the 12
    // newest months.
    let mut expected = BTreeSet::new();
    for (day, id) in &by_day {
        // Restic keeps what is strictly newer than newest - 30 days: 30 daily snapshots.
        if *day > last - Days::days(30) {
            expected.insert(id.clone());
        }
    }
    let mut months: Vec<(i32, u32)> = by_day.keys().map(|d| (d.year(), d.month())).collect();
    months.dedup();
    for (y, m) in months.iter().rev().take(12) {
        let newest = by_day
            .iter()
            .rev()
            .find(|(d, _)| d.year() == *y && d.month() == *m)
            .unwrap();
        expected.insert(newest.1.clone());
    }
    let decisions = plan["forget"]["snapshots"].as_array().unwrap();
    assert_eq!(decisions.len(), 365);
    let kept: BTreeSet<String> = decisions
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept, expected);
    for d in decisions {
        let reasons = d["reasons"].as_array().unwrap();
        assert_eq!(
            d["keep"] == true,
            !reasons.is_empty(),
            "every kept snapshot says why: {d}"
        );
    }

    let done = repo.json(&[
        "forget",
        "--json",
        "--keep-within",
        "30d",
        "--keep-monthly",
        "12",
        "--prune",
    ]);
    assert_eq!(repo.snapshot_ids(), expected);
    assert!(
        done["prune"]["packs_deleted"].as_u64().unwrap() > 0,
        "{done}"
    );
    repo.assert_clean();
}

#[test]
fn a_held_snapshot_survives_every_rule_until_its_hold_ends() {
    let repo = FastRepo::init(&[]);
    let src = repo.repo.dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut ids = Vec::new();
    for day in 1..=5 {
        std::fs::write(src.join("f"), format!("day {day}")).unwrap();
        let t = format!("2026-03-0{day}T02:00:00Z");
        let id =
            repo.json(&["backup", "--json", src.to_str().unwrap(), "--time", &t])["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string();
        stored_at(&repo, &id, t.parse().unwrap());
        ids.push(id);
    }
    repo.json(&["hold", "add", &ids[0], "--reason", "litigation 7", "--json"]);
    // `hold add` refuses an end in the past; a hold that has since expired protects nothing.
    let out = repo.run(&["hold", "add", &ids[1], "--until", "2000-01-01"]);
    assert_eq!(out.code, 2, "{}", out.describe());
    repo.repo
        .open_lib()
        .add_hold(&bulwark_repo::holds::HoldRecord {
            snapshot: ids[1].parse().unwrap(),
            until: Some("2000-01-01T00:00:00Z".parse().unwrap()),
            reason: "expired".into(),
            created: "1999-01-01T00:00:00Z".parse().unwrap(),
            by: "test".into(),
        })
        .unwrap();
    let out = repo.run(&["forget", &ids[0][..8]]);
    assert_eq!(out.code, 1, "{}", out.describe());
    assert!(out.stderr.contains("hold"), "{}", out.describe());
    repo.json(&["forget", "--json", "--keep-last", "1"]);
    let left = repo.snapshot_ids();
    assert_eq!(left, BTreeSet::from([ids[0].clone(), ids[4].clone()]));
    repo.json(&["hold", "remove", &ids[0], "--json"]);
    repo.json(&["forget", "--json", "--keep-last", "1", "--prune"]);
    assert_eq!(repo.snapshot_ids(), BTreeSet::from([ids[4].clone()]));
    // Forgetting needs rules or names: no rule at all must not mean "forget everything".
    let out = repo.run(&["forget"]);
    assert_eq!(out.code, 2, "{}", out.describe());
    repo.assert_clean();
}

/// Files some of which every day shares, some new each day: prune then has work and live data.
fn write_day(dir: &Path, rng: &mut Prng, day: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..6 {
        let keep = dir.join(format!("stable-{i}"));
        if !keep.exists() {
            std::fs::write(&keep, rng.bytes(120_000)).unwrap();
        }
    }
    for i in 0..4 {
        std::fs::write(
            dir.join(format!("daily-{i}")),
            rng.bytes(90_000 + (day as usize % 7) * 1000),
        )
        .unwrap();
    }
}

/// Every remaining snapshot restores and verifies.
fn assert_all_restore(repo: &FastRepo, scratch: &Path) {
    for id in repo.snapshot_ids() {
        let target = scratch.join(&id[..12]);
        let out = repo.run(&[
            "restore",
            &id[..12],
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ]);
        out.assert_ok();
        std::fs::remove_dir_all(&target).unwrap();
    }
}

#[test]
fn prune_beside_concurrent_backups_never_loses_a_needed_blob() {
    let seed = seed("prune_beside_concurrent_backups");
    let mut rng = Prng::new(seed);
    let repo = FastRepo::init(&["--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let base = repo.repo.dir.path().to_path_buf();
    let (a, b) = (base.join("host-a"), base.join("host-b"));
    for day in 0..4 {
        write_day(&a, &mut rng, day);
        write_day(&b, &mut rng, day);
        repo.json(&["backup", "--json", a.to_str().unwrap(), "--host", "a"]);
        repo.json(&["backup", "--json", b.to_str().unwrap(), "--host", "b"]);
    }
    let rounds = scale(4, 40);
    for day in 4..4 + rounds {
        write_day(&a, &mut rng, day);
        write_day(&b, &mut rng, day);
        let spawn = |args: &[&str]| {
            repo.cmd(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let backup_a = spawn(&["backup", a.to_str().unwrap(), "--host", "a"]);
        let prune = spawn(&[
            "forget",
            "--keep-last",
            "2",
            "--group-by",
            "host",
            "--prune",
            "--max-unused",
            "0%",
        ]);
        let backup_b = spawn(&["backup", b.to_str().unwrap(), "--host", "b"]);
        for (what, child) in [
            ("backup a", backup_a),
            ("prune", prune),
            ("backup b", backup_b),
        ] {
            let out = finish(child);
            // A concurrent maintenance run may be refused with "locked" (exit 11); nothing else.
            assert!(
                out.code == 0 || (what == "prune" && out.code == 11),
                "{what}: {}",
                out.describe()
            );
        }
        repo.assert_clean();
    }
    assert_all_restore(&repo, &base.join("restores"));
    // --max-unused is a share of the repository after pruning, as restic measures it.
    repo.json(&["forget", "--json", "--keep-last", "1", "--group-by", "host"]);
    let everything = repo.json(&["prune", "--json", "--dry-run", "--max-unused", "100%"]);
    assert_eq!(everything["packs_to_repack"], 0, "{everything}");
    let plan = repo.json(&["prune", "--json", "--dry-run", "--max-unused", "10%"]);
    let n = |k: &str| plan[k].as_u64().unwrap_or_else(|| panic!("{k} in {plan}"));
    let left_unused = n("bytes_total") - n("bytes_to_free") - n("bytes_used");
    assert!(
        n("bytes_unused") > 0,
        "forgetting left nothing unused: {plan}"
    );
    assert!(
        left_unused * 9 <= n("bytes_used"),
        "{left_unused} unused bytes left is over 10% of what remains: {plan}"
    );
    // With nothing else running, a prune finishes every postponed deletion.
    let done = repo.json(&["prune", "--json", "--max-unused", "0%"]);
    assert_eq!(done["postponed"], serde_json::json!([]), "{done}");
    let again = repo.json(&["prune", "--json", "--dry-run", "--max-unused", "0%"]);
    assert_eq!(again["packs_unused"], 0, "{again}");
    repo.assert_clean();
    assert_all_restore(&repo, &base.join("restores"));
}

#[test]
fn prune_killed_at_any_instant_leaves_a_clean_repository_and_finishes_next_time() {
    let seed = seed("prune_killed");
    let mut rng = Prng::new(seed);
    let repo = FastRepo::init(&["--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let base = repo.repo.dir.path().to_path_buf();
    let src = base.join("src");
    let kills = scale(6, 60);
    for round in 0..kills {
        for day in 0..3 {
            write_day(&src, &mut rng, round * 3 + day);
            repo.json(&["backup", "--json", src.to_str().unwrap()]);
        }
        repo.json(&["forget", "--json", "--keep-last", "2"]);
        let kept = repo.snapshot_ids();
        // Time a dry run's worth of work to spread the kill points over a real prune.
        let started = Instant::now();
        repo.json(&["prune", "--json", "--dry-run"]);
        let span = started.elapsed() * 3;
        let mut child = repo
            .cmd(&["prune", "--max-unused", "0%"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        thread::sleep(
            span.mul_f64(rng.below(1000) as f64 / 1000.0)
                .max(Duration::from_millis(1)),
        );
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(repo.snapshot_ids(), kept);
        repo.assert_clean();
    }
    assert_all_restore(&repo, &base.join("restores"));
    let done = repo.json(&["prune", "--json", "--max-unused", "0%"]);
    assert_eq!(done["postponed"], serde_json::json!([]), "{done}");
    let again = repo.json(&["prune", "--json", "--dry-run", "--max-unused", "0%"]);
    assert_eq!(again["packs_unused"], 0, "{again}");
    assert_eq!(again["packs_to_repack"], 0, "{again}");
    repo.assert_clean();
    assert_all_restore(&repo, &base.join("restores"));
}

#[test]
fn prune_removes_partial_writes_of_killed_runs_once_they_are_a_day_old() {
    let repo = FastRepo::init(&[]);
    let base = repo.repo.dir.path().to_path_buf();
    let src = base.join("src");
    write_day(&src, &mut Prng::new(seed("abandoned")), 0);
    repo.json(&["backup", "--json", src.to_str().unwrap()]);
    let root = &repo.repo.path;
    let (old, fresh) = (
        root.join("data/ab/abandoned#1"),
        root.join("index/uploading#2"),
    );
    fs::create_dir_all(old.parent().unwrap()).unwrap();
    fs::write(&old, b"half a pack").unwrap();
    fs::write(&fresh, b"half an index").unwrap();
    let two_days_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 2 * 86400;
    set_times(&old, (two_days_ago, 0), (two_days_ago, 0));
    let report = repo.json(&["prune", "--json"]);
    assert_eq!(report["abandoned_writes_removed"], 1, "{report}");
    assert!(!old.exists(), "the day-old partial write is gone");
    assert!(
        fresh.exists(),
        "a write that may still be running is left alone"
    );
    repo.repo.assert_clean();
}
