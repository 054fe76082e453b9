//! SQLite backups and restore tests: a consistent copy of a live database while another
//! connection keeps writing (WAL and rollback-journal modes), a restore test that passes, a
//! restore that verifies, and sabotage (altered row count, truncated copy, failing assertion)
//! that fails precisely.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulwark_source::db::sqlite::driver::Connection;
use common::*;
use serde_json::Value;

fn create(path: &Path, journal: &str, rows: u32) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(&format!(
        "PRAGMA journal_mode = {journal};
         CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, balance REAL, avatar BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO accounts SELECT i, 'user ' || i, i * 0.5, randomblob(16) FROM n;
         CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT, msg TEXT);
         CREATE INDEX accounts_name ON accounts (name);
         CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
         INSERT INTO kv VALUES ('a', 1), ('b', 'two'), ('c', x'0304'), ('d', NULL), ('e', 2.5);"
    ))
    .unwrap();
}

struct Writer {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Another connection writing in small transactions until stopped.
    fn start(path: &Path) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let (s, r, path) = (stop.clone(), rounds.clone(), path.to_path_buf());
        let thread = std::thread::spawn(move || {
            let mut c = Connection::open(&path).unwrap();
            c.busy_timeout(Duration::from_secs(30)).unwrap();
            let mut n = 0i64;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let t = c.transaction().unwrap();
                t.execute(
                    "INSERT INTO log (at, msg) VALUES (datetime('now'), ?1)",
                    [format!("event {n}")],
                )
                .unwrap();
                t.execute(
                    "UPDATE accounts SET balance = balance + 1 WHERE id = ?1",
                    [1 + (n * 7919) % 1000],
                )
                .unwrap();
                t.commit().unwrap();
                r.fetch_add(1, Ordering::Relaxed);
            }
        });
        Writer {
            stop,
            rounds,
            thread,
        }
    }

    fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let rounds = self.rounds.clone();
        self.thread.join().expect("writer");
        rounds.load(Ordering::Relaxed)
    }
}

fn restore_test(repo: &Repo, spec: &str, extra: &[&str]) -> (Out, Value) {
    let mut args = vec!["restore-test", spec, "--json"];
    args.extend_from_slice(extra);
    let out = repo.run(&args);
    let v = out.json();
    (out, v)
}

#[track_caller]
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

#[test]
fn sqlite_live_backup_restore_test_and_restore() {
    let rows = scale(100_000, 1_000_000);
    for journal in ["wal", "delete"] {
        let dir = tempdir("bulwark-sqlite-");
        let db = dir.path().join("app.db");
        create(&db, journal, rows);
        let repo = Repo::init(&[]);
        let writer = Writer::start(&db);
        let t = Instant::now();
        while writer.rounds() < 20 {
            assert!(t.elapsed() < Duration::from_secs(30), "writer stuck");
            std::thread::sleep(Duration::from_millis(2));
        }
        let before = writer.rounds();
        let db_s = db.display().to_string();
        let out = repo.run(&["backup", "--json", "--sqlite", &db_s, "--dataset", "app-db"]);
        let during = writer.rounds() - before;
        let total = writer.finish();
        out.assert_ok();
        let b = out.json();
        eprintln!("{journal}: backup while the writer committed {during} transactions");
        assert_eq!(b["database"]["kind"], "sqlite");
        assert_eq!(b["database"]["quick_check"], "ok");
        let id = id_of(&b);
        let snap = repo.run(&["cat", "snapshot", &id]).json();
        let tables = &snap["meta"]["database"]["tables"];
        assert_eq!(tables["accounts"]["rows"], rows as u64);
        assert_eq!(tables["kv"]["rows"], 5);
        let logged = tables["log"]["rows"].as_u64().unwrap();
        assert!(
            logged >= before && logged <= total,
            "log rows {logged} outside [{before}, {total}]"
        );

        let (out, report) = restore_test(
            &repo,
            "latest",
            &[
                "--dataset",
                "app-db",
                "--check-sql",
                &format!("SELECT count(*) = {rows} FROM accounts"),
            ],
        );
        out.assert_ok();
        assert_eq!(report["passed"], true, "{report:#}");
        for name in ["restore", "integrity", "fidelity"] {
            assert_eq!(check(&report, name)["passed"], true, "{report:#}");
        }
        eprintln!(
            "{journal}: restore test {:.2}s, phases {}",
            report["duration_s"].as_f64().unwrap(),
            report["phases"]
        );

        let target = dir.path().join("restored.db");
        let target_s = target.display().to_string();
        let r = repo.json(&[
            "restore",
            "latest",
            "--json",
            "--dataset",
            "app-db",
            "--sqlite-target",
            &target_s,
        ]);
        assert_eq!(r["verified"], true, "{r}");
        let c = Connection::open(&target).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as u64, logged);
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        // An existing target is never overwritten.
        let out = repo.run(&[
            "restore",
            "latest",
            "--dataset",
            "app-db",
            "--sqlite-target",
            &target_s,
        ]);
        out.assert_code(1).assert_one_error_line();
        assert!(out.stderr.contains("exists"), "{}", out.describe());
    }
}

#[test]
fn sqlite_sabotage_is_caught() {
    let dir = tempdir("bulwark-sqlite-");
    let db = dir.path().join("app.db");
    create(&db, "wal", 5_000);
    let repo = Repo::init(&[]);
    let good = id_of(&repo.json(&[
        "backup",
        "--json",
        "--sqlite",
        &db.display().to_string(),
        "--dataset",
        "app-db",
    ]));

    // A recorded row count the copy does not hold.
    let lib = repo.open_lib();
    let (_, mut snap) = lib.find_snapshot(&good, |_| true).unwrap();
    snap.meta.get_mut("database").unwrap()["tables"]["accounts"]["rows"] = 4_999.into();
    let altered = lib.save_snapshot(&snap).unwrap().to_hex();
    let (out, report) = restore_test(&repo, &altered, &[]);
    out.assert_code(1);
    assert_eq!(report["passed"], false);
    let c = check(&report, "fidelity");
    assert_eq!(c["passed"], false);
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("accounts: 5000 rows restored, 4999 recorded at backup"),
        "{c}"
    );
    assert!(
        out.stderr.contains("restore test failed: fidelity"),
        "{}",
        out.describe()
    );

    // A copy cut short, stored with the original's facts.
    let files = tempdir("bulwark-sqlite-files-");
    repo.restore(&good, files.path(), &[]).assert_ok();
    let data = std::fs::read(files.path().join("app.db")).unwrap();
    let lib = repo.open_lib();
    let (_, snap) = lib.find_snapshot(&good, |_| true).unwrap();
    let cut = data[..data.len() / 2].to_vec();
    let report = bulwark_ops::backup::backup(
        &lib,
        bulwark_ops::backup::BackupOptions {
            source: bulwark_ops::backup::BackupSource::Stream {
                name: "app.db".into(),
                reader: Box::new(std::io::Cursor::new(cut)),
            },
            excludes: bulwark_source::Patterns::new(&[]).unwrap(),
            tags: vec![],
            host: None,
            time: None,
            parent: None,
            dataset: Some("app-db".into()),
            meta: snap.meta.clone(),
            ..Default::default()
        },
        &bulwark_ops::Silent,
    )
    .unwrap();
    let (out, report) = restore_test(&repo, &report.snapshot_id.to_hex(), &[]);
    out.assert_code(1);
    assert_eq!(report["passed"], false, "{report:#}");
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        failed.contains(&"integrity") || failed.contains(&"fidelity"),
        "{report:#}"
    );

    // An assertion that does not hold.
    let (out, report) = restore_test(
        &repo,
        &good,
        &["--check-sql", "SELECT count(*) > 5000 FROM accounts"],
    );
    out.assert_code(1);
    let c = check(&report, "check-sql: SELECT count(*) > 5000 FROM accounts");
    assert_eq!(c["passed"], false);
    assert_eq!(c["detail"], "returned 0, not true");
    assert_eq!(check(&report, "fidelity")["passed"], true);

    // Not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![42u8; 8192]).unwrap();
    let out = repo.run(&["backup", "--sqlite", &junk.display().to_string()]);
    out.assert_code(1).assert_one_error_line();
    assert!(
        out.stderr.contains("not a readable SQLite database"),
        "{}",
        out.describe()
    );
}
