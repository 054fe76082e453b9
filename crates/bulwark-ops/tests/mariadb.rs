//! MariaDB backups, restores and restore tests against real servers: each test starts its own
//! source server (mariadb-install-db + mariadbd, as the `mysql` account when run as root, with a
//! binary log) and the restore tests start their own throwaway servers. No mocks.
//!
//! - a database with many column types, utf8mb4 text, binary blobs, a table without a key, views
//!   (one with another DEFINER), a function, a procedure, a trigger, an event and a sequence,
//!   backed up while a writer moves money between accounts and inserts audited events: the
//!   recorded fingerprint equals the restored dump exactly, the cross-table invariants hold in
//!   the restore, the restore test passes, a restore into a new database equals the source;
//! - tables without snapshots (MyISAM) written during the backup: the lock is held for the dump
//!   and the fingerprint still matches;
//! - sabotage: an altered row count, a changed value in the dump, a truncated dump, failing and
//!   erroring assertions, a newer server version: each fails precisely, never passes;
//! - a wrong password, a missing RELOAD privilege, an unreachable server, a missing database,
//!   missing programs: one clear line each, never the password;
//! - names that need quoting everywhere (database, table, columns); the server dying while the
//!   dump is read fails the stream instead of ending it.
//!
//! Sizes: 20k orders by default, 200k with BULWARK_THOROUGH=1.

mod common;

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulwark_ops::Silent;
use bulwark_ops::database::{
    DbBackupReport, DbSource, DbTarget, SnapshotFileReader, backup_database, restore_database,
    snapshot_file,
};
use bulwark_ops::restore_test::{RestoreTestOptions, RestoreTestReport, restore_test};
use bulwark_repo::Repository;
use bulwark_source::db::mariadb::driver::prelude::Queryable;
use bulwark_source::db::mariadb::driver::{Conn, Opts};
use bulwark_source::db::mariadb::{MariadbBackupOptions, MariadbFacts, MariadbTools};
use bulwark_source::db::{DbMeta, META_KEY};
use common::*;

const TOTAL_BALANCE: u64 = 1_000_000;

/// A database worth restoring; `rows` orders.
fn populate(server: &MariaServer, db: &str, rows: u32) {
    server.sql(
        "",
        &format!(
            "CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
             CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app-password';
             GRANT SELECT ON {db}.* TO 'app'@'%';"
        ),
    );
    server.sql(
        db,
        &format!(
            "SET SESSION max_recursive_iterations = 100000000;
             CREATE TABLE orders (id BIGINT PRIMARY KEY, customer INT NOT NULL,
                 status ENUM('new', 'paid', 'shipped') NOT NULL, amount DECIMAL(12, 2), weight DOUBLE,
                 created DATETIME(6), touched TIMESTAMP(3) NULL, tags SET('a', 'b', 'c'), flags BIT(5),
                 doc JSON, note VARCHAR(200), KEY (customer)) ENGINE = InnoDB;
             INSERT INTO orders
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 SELECT i, i % 1000, ELT(1 + i % 3, 'new', 'paid', 'shipped'), i * 1.25, i / 7,
                        '2024-01-01' + INTERVAL i MINUTE + INTERVAL i MICROSECOND, NULL,
                        ELT(1 + i % 4, '', 'a', 'a,b', 'b,c'), i % 32, JSON_OBJECT('i', i, 'k', 'v'),
                        IF(i % 10 = 0, NULL, CONCAT('note ''', i, '\\\\ tab\\t'))
                 FROM n;
             CREATE TABLE items (order_id BIGINT, sku VARCHAR(40), qty INT, title TEXT, payload BLOB,
                 PRIMARY KEY (order_id, sku), FOREIGN KEY (order_id) REFERENCES orders (id)) ENGINE = InnoDB;
             INSERT INTO items
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {items})
                 SELECT i, CONCAT('sku-', i % 13), i % 5, CONCAT('Ünïcødé ✓ 🐘 «', i, '»'),
                        CONCAT(UNHEX(SHA2(i, 256)), 0x00275C0A0D1A, UNHEX(MD5(i)))
                 FROM n;
             CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE = InnoDB;
             INSERT INTO accounts
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
                 SELECT i, {per_account} FROM n;
             CREATE TABLE events (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6), payload VARCHAR(100))
                 ENGINE = InnoDB;
             CREATE TABLE audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, event_id BIGINT NOT NULL) ENGINE = InnoDB;
             CREATE TABLE nokey (a INT, b VARCHAR(10)) ENGINE = InnoDB;
             INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, NULL), (NULL, 'y');
             CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 100;
             CREATE DEFINER = 'app'@'%' SQL SECURITY DEFINER VIEW app_view AS SELECT COUNT(*) AS n FROM orders;
             CREATE FUNCTION order_total(o BIGINT) RETURNS DECIMAL(12, 2) READS SQL DATA
                 RETURN (SELECT amount FROM orders WHERE id = o);
             CREATE PROCEDURE bump(IN o BIGINT) MODIFIES SQL DATA UPDATE orders SET amount = amount + 1 WHERE id = o;
             CREATE TRIGGER events_audit AFTER INSERT ON events FOR EACH ROW INSERT INTO audit (event_id) VALUES (NEW.id);
             CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2037-01-01 00:00:00'
                 DO DELETE FROM events WHERE at < '2000-01-01';
             CREATE SEQUENCE invoice_no START WITH 1000;",
            items = rows / 10,
            per_account = TOTAL_BALANCE / 100
        ),
    );
    assert_eq!(
        server.value(
            db,
            "SELECT CONCAT((SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()), ',',
                (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SEQUENCE'))"
        ),
        "1,1",
        "populated"
    );
}

/// Each round, one transaction: an audited event, money moved between two accounts, an order
/// updated; until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(server: &MariaServer, db: &str, rows: u32, myisam: bool) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), rounds.clone());
        let opts = Opts::from_url(&server.dsn(db)).unwrap();
        let thread = std::thread::spawn(move || {
            let mut c = Conn::new(opts).expect("the writer connects");
            let mut n: u64 = 0;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let (from, to, order) = (
                    1 + n % 100,
                    1 + (n * 37 + 11) % 100,
                    1 + (n * 7919) % rows as u64,
                );
                let sql = if myisam {
                    format!("INSERT INTO plain_log (msg) VALUES ('round {n}')")
                } else {
                    format!(
                        "START TRANSACTION;
                         INSERT INTO events (at, payload) VALUES (NOW(6), 'event {n}');
                         UPDATE accounts SET balance = balance - 7 WHERE id = {from};
                         UPDATE accounts SET balance = balance + 7 WHERE id = {to};
                         UPDATE orders SET status = 'paid', amount = amount + 1, touched = NOW(3) WHERE id = {order};
                         COMMIT"
                    )
                };
                c.query_drop(sql).expect("the writer writes");
                r.fetch_add(1, Ordering::Relaxed);
            }
        });
        Writer {
            stop,
            rounds,
            thread: Some(thread),
        }
    }

    fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    fn wait_for(&self, n: u64) {
        let t = Instant::now();
        while self.rounds() < n {
            assert!(t.elapsed() < Duration::from_secs(60), "the writer is stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("writer thread");
        self.rounds()
    }
}

fn backup(repo: &Repository, dsn: &str) -> bulwark_ops::Result<DbBackupReport> {
    backup_database(repo, backup_opts(dsn), &Silent)
}

fn facts_of(report: &DbBackupReport) -> MariadbFacts {
    match &report.meta {
        DbMeta::Mariadb(f) => f.clone(),
        other => panic!("not a MariaDB backup: {}", other.kind()),
    }
}

fn test_opts(spec: &str, checks: &[&str]) -> RestoreTestOptions {
    RestoreTestOptions {
        check_sql: checks.iter().map(|s| s.to_string()).collect(),
        ..RestoreTestOptions::new(spec)
    }
}

#[track_caller]
fn check<'a>(
    report: &'a RestoreTestReport,
    name: &str,
) -> &'a bulwark_ops::restore_test::CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#?}"))
}

#[track_caller]
fn assert_passed(report: &RestoreTestReport) {
    assert!(report.passed, "restore test failed: {report:#?}");
    for c in &report.checks {
        assert!(c.passed && !c.skipped, "{c:?}");
    }
    assert!(
        report.logs.is_empty(),
        "a passing test keeps no logs: {report:#?}"
    );
}

#[track_caller]
fn assert_failed(report: &RestoreTestReport, name: &str, detail: &str) {
    assert!(!report.passed, "{report:#?}");
    let c = check(report, name);
    assert!(!c.passed, "{c:?}");
    assert!(
        c.detail.contains(detail),
        "{name}: want {detail:?} in {c:?}"
    );
}

/// Remove the directory of the logs a failed test kept (they must exist).
fn cleanup_logs(report: &RestoreTestReport) {
    assert!(
        !report.logs.is_empty(),
        "a failed test keeps its logs: {report:#?}"
    );
    for l in &report.logs {
        assert!(std::path::Path::new(l).is_file(), "log {l} kept");
    }
    let dir = std::path::Path::new(&report.logs[0]).parent().unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o700,
        "the scratch directory (its socket, its logs) is private"
    );
    assert!(
        !dir.join("data").exists(),
        "the scratch data directory is removed"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The snapshot's dump, read back.
fn read_dump(repo: &Repository, spec: &str, name: &str) -> Vec<u8> {
    let (_, snap) = repo.find_snapshot(spec, |_| true).unwrap();
    let index = repo.load_index().unwrap();
    let node = snapshot_file(repo, &index, &snap, name).unwrap();
    let mut out = Vec::new();
    SnapshotFileReader::new(repo, &index, &node)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Store `dump` as a new snapshot carrying the facts of `spec`.
fn store_with_facts(repo: &Repository, spec: &str, name: &str, dump: Vec<u8>) -> String {
    let (_, snap) = repo.find_snapshot(spec, |_| true).unwrap();
    let streams = vec![(
        name.to_string(),
        Box::new(Cursor::new(dump)) as Box<dyn Read + Send>,
    )];
    let report = bulwark_ops::backup::backup(
        repo,
        bulwark_ops::backup::BackupOptions {
            source: bulwark_ops::backup::BackupSource::Streams(streams),
            excludes: bulwark_source::Patterns::new(&[]).unwrap(),
            tags: vec![],
            host: None,
            time: None,
            parent: None,
            dataset: snap.dataset.clone(),
            meta: snap.meta.clone(),
            ..Default::default()
        },
        &Silent,
    )
    .unwrap();
    report.snapshot_id.to_hex()
}

/// Save a copy of snapshot `spec` with `edit` applied to its recorded facts.
fn doctor(repo: &Repository, spec: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let (_, mut snap) = repo.find_snapshot(spec, |_| true).unwrap();
    let mut facts = snap.meta[META_KEY].clone();
    edit(&mut facts);
    snap.meta.insert(META_KEY.into(), facts);
    snap.time += chrono::Duration::seconds(1);
    repo.save_snapshot(&snap).unwrap().to_hex()
}

/// `CHECKSUM TABLE` (the server's own, independent of bulwark's fingerprint).
fn server_checksum(server: &MariaServer, db: &str, table: &str) -> String {
    let row: Option<(String, Option<u64>)> = server
        .conn(db)
        .query_first(format!("CHECKSUM TABLE `{table}` EXTENDED"))
        .unwrap();
    format!("{:?}", row.unwrap().1)
}

#[test]
fn mariadb_backup_under_load_restores_exactly() {
    if !mariadb_available() {
        return;
    }
    let rows = scale(20_000, 200_000);
    let server = MariaServer::start();
    let t = Instant::now();
    populate(&server, "shop", rows);
    eprintln!(
        "populated {rows} orders in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let r = repo();
    let writer = Writer::start(&server, "shop", rows, false);
    writer.wait_for(20);
    let before = writer.rounds();
    let t = Instant::now();
    let report = backup(&r.repo, &server.dsn("shop")).expect("backup");
    let backup_s = t.elapsed().as_secs_f64();
    let during = writer.rounds() - before;
    let total = writer.finish();
    let f = facts_of(&report);
    eprintln!(
        "backup took {backup_s:.2}s ({} bytes) while the writer committed {during} transactions; writes \
         were blocked for {} ms",
        report.backup.summary.bytes_read, f.read_lock_ms
    );
    assert!(
        during > 0,
        "the writer must have been writing during the backup"
    );

    // The facts recorded with the snapshot.
    assert_eq!(f.database, "shop");
    assert_eq!(f.flavor, "MariaDB");
    assert!(f.server_version.contains("MariaDB"), "{f:?}");
    assert_eq!(
        (f.character_set.as_str(), f.collation.as_str()),
        ("utf8mb4", "utf8mb4_unicode_ci")
    );
    assert!(
        f.collations.contains(&"utf8mb4_unicode_ci".to_string()),
        "{f:?}"
    );
    assert_eq!(f.engines, BTreeMap::from([("InnoDB".to_string(), 6)]));
    assert!(f.non_transactional_tables.is_empty() && !f.read_lock_held_for_dump);
    assert!(
        f.binlog_position.is_some(),
        "the source writes a binary log: {f:?}"
    );
    assert!(
        f.definers.contains(&"app@%".to_string()),
        "{:?}",
        f.definers
    );
    let objects: Vec<(&str, u64)> = f.objects.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        objects,
        [
            ("events", 1),
            ("routines", 2),
            ("sequences", 1),
            ("triggers", 1),
            ("views", 2)
        ]
    );
    let names: Vec<&str> = f.tables.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["accounts", "audit", "events", "items", "nokey", "orders"]
    );
    assert_eq!(f.tables["orders"].rows, rows as u64);
    assert_eq!(f.tables["items"].rows, (rows / 10) as u64);
    assert_eq!(f.tables["nokey"].rows, 4);
    let events = f.tables["events"].rows;
    assert!(
        events >= before && events <= total,
        "events {events} outside [{before}, {total}]"
    );
    assert_eq!(
        f.tables["audit"].rows, events,
        "the trigger's rows are in the same snapshot"
    );
    assert!(f.tables.values().all(|t| t.checksum.is_some()), "{f:?}");
    let stored = &r.repo.load_snapshot(&report.backup.snapshot_id).unwrap();
    assert_eq!(stored.dataset.as_deref(), Some("shop"));
    assert_eq!(stored.meta[META_KEY]["kind"], "mariadb");

    // The restore test: a throwaway server, the dump restored and checked, invariants asserted.
    let t = Instant::now();
    let checks = [
        format!("SELECT SUM(balance) = {TOTAL_BALANCE} FROM accounts"),
        "SELECT (SELECT COUNT(*) FROM audit) = (SELECT COUNT(*) FROM events)".to_string(),
        format!("SELECT COUNT(*) = {rows} FROM orders"),
        "SELECT order_total(2) = 2.50 OR order_total(2) > 2.50".to_string(),
        format!("SELECT n = {rows} FROM app_view"),
        "SELECT NEXTVAL(invoice_no) = 1000".to_string(),
        "SELECT COUNT(*) = 1 FROM information_schema.EVENTS WHERE EVENT_NAME = 'nightly'"
            .to_string(),
    ];
    let check_refs: Vec<&str> = checks.iter().map(String::as_str).collect();
    let rt = restore_test(&r.repo, &test_opts("latest", &check_refs), &Silent).unwrap();
    eprintln!(
        "restore test: {:.2}s measured ({:.2}s wall), phases {:?}",
        rt.duration_s,
        t.elapsed().as_secs_f64(),
        rt.phases
    );
    assert_passed(&rt);
    for name in [
        "dump-complete",
        "compatibility",
        "restore",
        "integrity",
        "fidelity",
    ] {
        check(&rt, name);
    }
    assert_eq!(rt.kind, "mariadb");
    assert_eq!(rt.snapshot_id, report.backup.snapshot_id.to_hex());
    for p in ["fetch", "prepare", "restore", "checks"] {
        assert!(rt.phases.contains_key(p), "{rt:?}");
    }

    // Restore into a new database on the source server: it equals the source at dump time.
    let restored = restore_database(
        &r.repo,
        "latest",
        Some("shop"),
        &DbTarget::Mariadb {
            dsn: server.dsn("shop_copy"),
        },
    )
    .expect("restore");
    assert!(restored.verified, "{restored:?}");
    assert!(restored.created_database, "{restored:?}");
    assert_eq!(
        restored.target,
        format!("mysql://root@127.0.0.1:{}/shop_copy", server.port)
    );
    // Tables the writer never touched equal the live source by the server's own checksum.
    for table in ["items", "nokey"] {
        assert_eq!(
            server_checksum(&server, "shop", table),
            server_checksum(&server, "shop_copy", table),
            "{table}"
        );
    }
    for q in [
        "SELECT HEX(CONCAT_WS('|', title, HEX(payload))) FROM items WHERE order_id = 17",
        "SELECT COUNT(*) FROM items WHERE title LIKE '%🐘%'",
        // The writer changes only status, amount and touched.
        "SELECT HEX(GROUP_CONCAT(CONCAT_WS('|', id, weight, created, tags, flags + 0, doc, note) ORDER BY id)) \
         FROM orders WHERE id <= 200",
    ] {
        assert_eq!(server.value("shop", q), server.value("shop_copy", q), "{q}");
    }
    assert_eq!(
        server.value("shop_copy", "SELECT SUM(balance) FROM accounts"),
        TOTAL_BALANCE.to_string()
    );
    assert_eq!(
        server.value("shop_copy", "SELECT COUNT(*) FROM events"),
        events.to_string()
    );
    for q in [
        "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop_copy'",
        "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'shop_copy'",
        "SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'shop_copy' AND TABLE_NAME = 'app_view'",
    ] {
        assert_eq!(
            server.value("shop", &q.replace("shop_copy", "shop")),
            server.value("shop_copy", q),
            "{q}"
        );
    }
    // A second restore into the now non-empty database is refused, touching nothing.
    let err = restore_database(
        &r.repo,
        "latest",
        Some("shop"),
        &DbTarget::Mariadb {
            dsn: server.dsn("shop_copy"),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("already holds"), "{err}");
}

#[test]
fn mariadb_tables_without_snapshots_stay_consistent() {
    if !mariadb_available() {
        return;
    }
    let server = MariaServer::start();
    populate(&server, "shop", 2_000);
    server.sql(
        "shop",
        "CREATE TABLE plain_log (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(50)) ENGINE = MyISAM;
         CREATE TABLE scratchpad (k INT PRIMARY KEY, v TEXT) ENGINE = Aria;
         INSERT INTO scratchpad VALUES (1, 'one'), (2, 'two');",
    );
    let r = repo();
    let writer = Writer::start(&server, "shop", 2_000, true);
    writer.wait_for(20);
    let report = backup(&r.repo, &server.dsn("shop")).expect("backup");
    let total = writer.finish();
    let f = facts_of(&report);
    assert!(f.read_lock_held_for_dump, "{f:?}");
    assert_eq!(f.non_transactional_tables, ["plain_log", "scratchpad"]);
    assert_eq!(f.engines["MyISAM"], 1);
    assert_eq!(f.engines["Aria"], 1);
    let logged = f.tables["plain_log"].rows;
    assert!(logged >= 20 && logged <= total, "{logged} of {total}");
    let rt = restore_test(&r.repo, &test_opts("latest", &[]), &Silent).unwrap();
    assert_passed(&rt);
    // The lock is gone: the server takes writes again.
    server.sql("shop", "INSERT INTO plain_log (msg) VALUES ('after')");
}

#[test]
fn mariadb_sabotage_is_caught() {
    if !mariadb_available() {
        return;
    }
    let rows = scale(2_000, 50_000);
    let server = MariaServer::start();
    populate(&server, "shop", rows);
    let r = repo();
    let good = backup(&r.repo, &server.socket_dsn("shop"))
        .expect("backup through the socket")
        .backup
        .snapshot_id
        .to_hex();
    let dump_name = "shop.sql";
    let dump = read_dump(&r.repo, &good, dump_name);
    let text = String::from_utf8_lossy(&dump);
    assert!(
        text.ends_with(bulwark_source::db::dump::DUMP_TRAILER),
        "the dump is complete"
    );
    assert!(
        !text.contains("CREATE DATABASE") && !text.contains("USE `"),
        "the dump names no database"
    );
    assert!(
        !text.contains("CHANGE MASTER") && !text.contains("gtid_slave_pos"),
        "no replication state"
    );

    // 1. A recorded row count that the dump does not hold.
    let altered = doctor(&r.repo, &good, |f| {
        let n = f["tables"]["orders"]["rows"].as_u64().unwrap();
        f["tables"]["orders"]["rows"] = (n + 1).into();
    });
    let rt = restore_test(&r.repo, &test_opts(&altered, &[]), &Silent).unwrap();
    assert_failed(
        &rt,
        "fidelity",
        &format!(
            "orders: {rows} rows restored, {} recorded at backup",
            rows + 1
        ),
    );
    assert!(check(&rt, "restore").passed);
    cleanup_logs(&rt);

    // 2. One value changed inside the dump, same row count: the checksum tells.
    let needle = "Ünïcødé ✓ 🐘 «17»";
    assert!(text.contains(needle), "the dump holds the text as text");
    let tampered = text.replacen(needle, "Ünïcødé ✓ 🐘 «71»", 1).into_bytes();
    let id = store_with_facts(&r.repo, &good, dump_name, tampered);
    let rt = restore_test(&r.repo, &test_opts(&id, &[]), &Silent).unwrap();
    assert_failed(&rt, "fidelity", "items: content checksum");
    assert!(check(&rt, "dump-complete").passed && check(&rt, "restore").passed);
    cleanup_logs(&rt);

    // 3. A dump cut off mid-stream, stored with the original's facts.
    let id = store_with_facts(&r.repo, &good, dump_name, dump[..dump.len() / 2].to_vec());
    let rt = restore_test(&r.repo, &test_opts(&id, &[]), &Silent).unwrap();
    assert_failed(&rt, "dump-complete", "cut short");
    assert!(
        !check(&rt, "restore").passed
            || rt.checks.iter().any(|c| c.name == "fidelity" && !c.passed),
        "a truncated dump must not restore faithfully: {rt:#?}"
    );
    cleanup_logs(&rt);

    // 4. An assertion that does not hold, and one that does not even run.
    let rt = restore_test(
        &r.repo,
        &test_opts(
            &good,
            &[
                "SELECT COUNT(*) > 0 FROM orders",
                "SELECT COUNT(*) > 1000000000 FROM orders",
                "SELECT 1 FROM no_such_table",
            ],
        ),
        &Silent,
    )
    .unwrap();
    assert_failed(
        &rt,
        "check-sql: SELECT COUNT(*) > 1000000000 FROM orders",
        "returned 0, not true",
    );
    assert!(check(&rt, "check-sql: SELECT COUNT(*) > 0 FROM orders").passed);
    assert_failed(
        &rt,
        "check-sql: SELECT 1 FROM no_such_table",
        "doesn't exist",
    );
    assert!(check(&rt, "fidelity").passed && check(&rt, "integrity").passed);
    cleanup_logs(&rt);

    // 5. A backup of a newer server than the local programs.
    let newer = doctor(&r.repo, &good, |f| {
        f["version_num"] = 990_000.into();
        f["server_version"] = "99.0.0-MariaDB".into();
    });
    let rt = restore_test(&r.repo, &test_opts(&newer, &[]), &Silent).unwrap();
    assert_failed(
        &rt,
        "compatibility",
        "older than the backup's MariaDB 99.0.0-MariaDB",
    );
    cleanup_logs(&rt);

    // 6. The same backup restores into an explicit target only if that is empty or new.
    server.sql(
        "",
        "CREATE DATABASE occupied; CREATE TABLE occupied.t (x INT)",
    );
    let err = restore_database(
        &r.repo,
        &good,
        None,
        &DbTarget::Mariadb {
            dsn: server.dsn("occupied"),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("database occupied on the target already holds 1"),
        "{err}"
    );
    let err = restore_database(
        &r.repo,
        &good,
        None,
        &DbTarget::Sqlite {
            path: "/tmp/x.db".into(),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("use --mariadb-target"), "{err}");
}

#[test]
fn mariadb_connection_problems_are_one_clear_line() {
    if !mariadb_available() {
        return;
    }
    let server = MariaServer::start();
    populate(&server, "shop", 100);
    let password = r#"p"a\ss #w'd ü"#;
    let encoded = "p%22a%5Css%20%23w%27d%20%C3%BC";
    server.sql(
        "",
        &format!(
            "CREATE USER 'backup'@'%' IDENTIFIED BY '{}';
             GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD ON *.* TO 'backup'@'%';
             CREATE USER 'weak'@'%' IDENTIFIED BY 'weak-pw';
             GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON shop.* TO 'weak'@'%';",
            password.replace('\\', "\\\\").replace('\'', "''")
        ),
    );
    let r = repo();
    let at = format!("127.0.0.1:{}", server.port);
    // The least privileges, a password full of quoting hazards: it works.
    let ok = backup(&r.repo, &format!("mysql://backup:{encoded}@{at}/shop"))
        .expect("backup as 'backup'");
    assert_eq!(facts_of(&ok).tables["orders"].rows, 100);

    let expect_error = |dsn: &str, want: &str, secret: &str| {
        let before = r.repo.snapshot_ids().unwrap().len();
        let err = match backup(&r.repo, dsn) {
            Ok(_) => panic!("backup of {dsn} succeeded"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "want {want:?} in: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
        assert!(!err.contains(secret), "the password leaked: {err}");
        assert_eq!(
            r.repo.snapshot_ids().unwrap().len(),
            before,
            "no snapshot from a failed backup"
        );
        err
    };
    let err = expect_error(
        &format!("mysql://backup:wrong-secret-123@{at}/shop"),
        "Access denied for user 'backup'",
        "wrong-secret-123",
    );
    assert!(
        err.contains(&format!("mysql://backup:***@{at}/shop")),
        "{err}"
    );
    expect_error(
        &format!("mysql://weak:weak-pw@{at}/shop"),
        "weak may not take the global read lock",
        "weak-pw",
    );
    expect_error(
        &format!("mysql://backup:{encoded}@{at}/nope"),
        "Unknown database 'nope'",
        "p\"a",
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    expect_error(
        &format!("mysql://backup:top-secret@127.0.0.1:{closed}/shop"),
        &format!("cannot connect to mysql://backup:***@127.0.0.1:{closed}/shop"),
        "top-secret",
    );
    expect_error(
        "mysql://backup:top-secret@127.0.0.1:notaport/shop",
        "not a number",
        "top-secret",
    );
    // Missing programs are named, with where they were looked for.
    let empty = tempfile::tempdir().unwrap();
    let mut opts = backup_opts(&server.dsn("shop"));
    if let DbSource::Mariadb(o) = &mut opts.source {
        o.tools = MariadbTools::in_dir(empty.path());
    }
    let err = backup_database(&r.repo, opts, &Silent)
        .err()
        .expect("no mariadb-dump")
        .to_string();
    assert!(err.contains("mariadb-dump not found in"), "{err}");
}

#[test]
fn mariadb_odd_names_and_a_server_dying_mid_dump() {
    if !mariadb_available() {
        return;
    }
    let mut server = MariaServer::start();
    // Names that need quoting everywhere: in SQL, in the DSN and on mariadb-dump's command line.
    server.sql(
        "",
        "SET SESSION max_recursive_iterations = 100000;
         CREATE DATABASE `odd-db ü`;
         CREATE TABLE `odd-db ü`.`we``ird tbl` (`the key` INT PRIMARY KEY, `v'al` LONGBLOB);
         INSERT INTO `odd-db ü`.`we``ird tbl`
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             SELECT i, REPEAT(UNHEX(SHA2(i, 256)), 64) FROM n;",
    );
    let dsn = format!("mysql://root@127.0.0.1:{}/odd-db%20%C3%BC", server.port);
    let opts = MariadbBackupOptions {
        dsn: dsn.clone(),
        checksum_max_bytes: 1 << 30,
        tools: MariadbTools::locate(),
    };
    let mut whole = bulwark_source::db::mariadb::start_dump(&opts).expect("start the dump");
    let mut text = Vec::new();
    whole.dump.read_to_end(&mut text).expect("a complete dump");
    assert_eq!(whole.facts.database, "odd-db ü");
    assert_eq!(whole.facts.dump_file, "odd-db ü.sql");
    assert_eq!(whole.facts.tables["we`ird tbl"].rows, 3000);
    assert!(whole.facts.tables["we`ird tbl"].checksum.is_some());
    assert!(text.ends_with(bulwark_source::db::dump::DUMP_TRAILER.as_bytes()));

    let r = repo();
    backup(&r.repo, &dsn).expect("backup");
    assert_passed(
        &restore_test(
            &r.repo,
            &test_opts("latest", &["SELECT COUNT(*) = 3000 FROM `we``ird tbl`"]),
            &Silent,
        )
        .unwrap(),
    );

    // The server dies while the dump is being read: the stream fails, it never just ends.
    let mut dying = bulwark_source::db::mariadb::start_dump(&opts).expect("start the dump");
    let mut first = vec![0u8; 64 * 1024];
    dying.dump.read_exact(&mut first).expect("the dump starts");
    server.stop();
    let mut rest = Vec::new();
    let err = dying
        .dump
        .read_to_end(&mut rest)
        .expect_err("a dump cut short must fail");
    let err = err.to_string();
    assert!(err.contains("mariadb-dump"), "{err}");
    assert!(
        !rest.ends_with(bulwark_source::db::dump::DUMP_TRAILER.as_bytes()),
        "no completion line after a failure"
    );
    assert!(
        first.len() + rest.len() < text.len(),
        "the server died before the dump was complete"
    );
}
