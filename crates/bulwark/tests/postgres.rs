//! PostgreSQL backups and restore tests against real clusters: each test starts its own server
//! with initdb/pg_ctl (as the `postgres` account when run as root) and the restore tests start
//! their own throwaway clusters. No mocks.
//!
//! - a database with several schemas, json, jsonb, hstore, bytea, arrays, ranges, enums and large
//!   objects, backed up while a writer inserts and updates; restore-test passes; a restore into a
//!   new database equals the source at dump time, table by table;
//! - sabotage: an altered row count, a truncated dump, a failing --check-sql, missing programs,
//!   a major-version mismatch, no scratch account, a server that dies mid-dump: each fails
//!   precisely, never passes;
//! - two days of dumps with ~2% of rows changed: the second adds a small fraction (ratios printed).
//!
//! Sizes: 200k rows by default, 1M with BULWARK_THOROUGH=1 (which also measures spread changes).

mod common;

use std::io::Cursor;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bulwark_source::db::postgres::driver as pgd;
use common::*;
use serde_json::{Value, json};

/// A database worth restoring: several schemas, many types, large objects, roles, a view, a
/// function and a trigger; `rows` narrow rows in public.orders.
fn populate(server: &PgServer, db: &str, rows: u32) {
    server.psql("postgres", &format!("CREATE DATABASE {db}"));
    server.psql(
        "postgres",
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app NOLOGIN; END IF; END $$",
    );
    server.psql(
        db,
        &format!(
            "CREATE EXTENSION hstore;
             CREATE SCHEMA sales AUTHORIZATION app;
             CREATE SCHEMA \"Billing\";
             CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
             CREATE DOMAIN positive AS numeric CHECK (VALUE >= 0);
             CREATE TABLE public.orders (id bigint PRIMARY KEY, customer int NOT NULL, st status, amount positive,
                 created timestamptz, tags text[], doc json, attrs hstore);
             INSERT INTO public.orders
                 SELECT i, i % 1000, (ARRAY['new', 'paid', 'shipped']::status[])[1 + i % 3], i * 1.25,
                        '2024-01-01'::timestamptz + i * interval '1 minute', ARRAY['t' || i % 7, 'x'],
                        json_build_object('i', i, 'k', 'v'), hstore('a', i::text)
                 FROM generate_series(1, {rows}) i;
             CREATE INDEX ON public.orders (customer);
             CREATE TABLE sales.items (order_id bigint REFERENCES public.orders, sku text, qty int, payload jsonb,
                 blob bytea, PRIMARY KEY (order_id, sku));
             ALTER TABLE sales.items OWNER TO app;
             INSERT INTO sales.items SELECT i, 'sku-' || i % 13, i % 5, jsonb_build_object('n', i, 'a', ARRAY[i, -i]),
                 decode(md5(i::text), 'hex') FROM generate_series(1, {items}) i;
             CREATE TABLE \"Billing\".\"Invoice Lines\" (id int, note text, amounts float8[], period int4range,
                 total numeric GENERATED ALWAYS AS (id * 2) STORED);
             INSERT INTO \"Billing\".\"Invoice Lines\" (id, note, amounts, period)
                 SELECT i, 'note ''' || i || E'\\ttab', ARRAY[i / 3.0, 0.1, 'NaN'], int4range(i, i + 10)
                 FROM generate_series(1, 5000) i;
             CREATE TABLE public.events (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), payload text);
             CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.at := now(); RETURN NEW; END $$;
             CREATE TRIGGER events_touch BEFORE INSERT ON public.events FOR EACH ROW EXECUTE FUNCTION touch();
             SELECT lo_from_bytea(0, decode(repeat(md5(g::text), 500), 'hex')) FROM generate_series(1, 3) g;
             CREATE VIEW public.big_orders AS SELECT * FROM public.orders WHERE amount > 1000;
             GRANT SELECT ON public.orders TO app;",
            items = rows / 10
        ),
    );
}

/// Inserts into events and updates random orders, one transaction per round, until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(dsn: &str, rows: u32) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let (s, r, dsn) = (stop.clone(), rounds.clone(), dsn.to_string());
        let thread = std::thread::spawn(move || {
            let mut c = pgd::Client::connect(&dsn, pgd::NoTls).expect("writer connects");
            let mut n: i64 = 0;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let id = 1 + (n * 7919) % rows as i64;
                let mut t = c.transaction().unwrap();
                t.execute(
                    "INSERT INTO public.events (payload) VALUES ($1)",
                    &[&format!("event {n}")],
                )
                .unwrap();
                t.execute(
                    "UPDATE public.orders SET amount = amount + 1, st = 'paid' WHERE id = $1",
                    &[&id],
                )
                .unwrap();
                t.commit().unwrap();
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

#[track_caller]
fn assert_passed(report: &Value) {
    assert_eq!(report["passed"], true, "restore test failed: {report:#}");
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["passed"], true, "{c}");
    }
}

/// The snapshot object as stored.
fn snapshot(repo: &Repo, id: &str) -> Value {
    let out = repo.run(&["cat", "snapshot", id]);
    out.assert_ok();
    out.json()
}

/// Our own fingerprint of one table, computed independently of bulwark with the documented
/// formula, in a session with bulwark's text settings.
/// A table's row count and content checksum, computed here apart from Bulwark's code: every row's
/// `COPY` text under the dump's session settings, XXH3-128 each, summed modulo 2^128.
fn independent_fingerprint(server: &PgServer, db: &str, table: &str) -> (u64, String) {
    let out = Command::new(server.bindir.join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(server.dsn(db))
        .args([
            "-c",
            "SET bytea_output = 'hex'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
             SET TimeZone = 'UTC'; SET extra_float_digits = 1; SET lc_monetary = 'C'; \
             SET search_path = pg_catalog; SET client_encoding = 'UTF8'",
            "-c",
        ])
        .arg(format!("COPY {table} TO STDOUT"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&[u8]> = out.stdout.split(|b| *b == b'\n').collect();
    let (last, rows) = rows.split_last().unwrap();
    assert!(last.is_empty(), "COPY text ends with a newline");
    let sum = rows.iter().fold(0u128, |sum, row| {
        sum.wrapping_add(xxhash_rust::xxh3::xxh3_128(row))
    });
    (rows.len() as u64, format!("xxh3-128-sum:{sum:032x}"))
}

#[test]
fn postgres_backup_under_load_then_restore_test_and_restore() {
    let rows = scale(200_000, 1_000_000);
    let server = PgServer::start();
    let t = Instant::now();
    populate(&server, "orders", rows);
    eprintln!("populated {rows} rows in {:.1}s", t.elapsed().as_secs_f64());
    let repo = Repo::init(&[]);
    let writer = Writer::start(&server.dsn("orders"), rows);
    writer.wait_for(20);
    let before = writer.rounds();
    let t = Instant::now();
    let out = repo.run(&[
        "backup",
        "--json",
        "--postgres",
        &server.dsn("orders"),
        "--dataset",
        "orders-db",
    ]);
    let backup_s = t.elapsed().as_secs_f64();
    let during = writer.rounds() - before;
    let total = writer.finish();
    out.assert_ok();
    let b = out.json();
    eprintln!("backup took {backup_s:.1}s while the writer committed {during} transactions");
    assert!(
        during > 0,
        "the writer must have been writing during the backup"
    );
    assert_eq!(b["database"]["kind"], "postgres");
    assert_eq!(b["database"]["globals"], true, "{b}");
    let id = id_of(&b);

    // The facts recorded with the snapshot.
    let snap = snapshot(&repo, &id);
    assert_eq!(snap["dataset"], "orders-db");
    let facts = &snap["meta"]["database"];
    assert_eq!(facts["kind"], "postgres");
    assert!(facts["major"].as_u64().unwrap() >= 12, "{facts}");
    assert!(
        facts["server_version"]
            .as_str()
            .unwrap()
            .starts_with(&facts["major"].to_string())
    );
    assert!(facts["database_size"].as_u64().unwrap() > 1_000_000);
    assert_eq!(facts["encoding"], "UTF8");
    assert!(facts["extensions"]["hstore"].is_string(), "{facts}");
    assert!(
        strings(&facts["roles"]).contains(&"app".to_string()),
        "{facts}"
    );
    assert_eq!(facts["large_objects"]["rows"], 3);
    let tables = facts["tables"].as_object().unwrap();
    let names: Vec<&str> = tables.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "\"Billing\".\"Invoice Lines\"",
            "public.events",
            "public.orders",
            "sales.items"
        ]
    );
    assert_eq!(tables["public.orders"]["rows"], rows as u64);
    assert_eq!(tables["sales.items"]["rows"], (rows / 10) as u64);
    let events = tables["public.events"]["rows"].as_u64().unwrap();
    assert!(
        events >= before && events <= total,
        "events {events} outside [{before}, {total}]"
    );
    assert!(
        tables.values().all(|t| t["checksum"].is_string()),
        "every table is checksummed: {facts}"
    );

    // Restore test into a throwaway cluster.
    let (out, report) = restore_test(
        &repo,
        "latest",
        &[
            "--dataset",
            "orders-db",
            "--check-sql",
            "SELECT count(*) > 0 FROM orders",
        ],
    );
    out.assert_ok();
    assert_passed(&report);
    for name in [
        "dump-complete",
        "compatibility",
        "restore",
        "integrity",
        "fidelity",
    ] {
        let c = check(&report, name);
        assert!(
            c.get("skipped").is_none(),
            "{name} must really run here: {c}"
        );
    }
    assert_eq!(report["snapshot_id"], id.as_str());
    assert_eq!(report["dataset"], "orders-db");
    let phases = report["phases"].as_object().unwrap();
    for p in ["fetch", "prepare", "restore", "checks"] {
        assert!(phases[p].as_f64().unwrap() >= 0.0, "{report}");
    }
    eprintln!(
        "restore test: {:.1}s, phases {}",
        report["duration_s"].as_f64().unwrap(),
        report["phases"]
    );
    assert!(
        report.get("logs").is_none(),
        "a passing test keeps no logs: {report}"
    );

    // Restore into a new database on the source server: equal to the source at dump time.
    let out = repo.run(&[
        "restore",
        "latest",
        "--json",
        "--dataset",
        "orders-db",
        "--postgres-target",
        &server.dsn("orders_copy"),
    ]);
    out.assert_ok();
    let r = out.json();
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(r["created_database"], true, "{r}");
    for (table, fp) in tables {
        let (n, sum) = independent_fingerprint(&server, "orders_copy", table);
        assert_eq!(n, fp["rows"].as_u64().unwrap(), "{table}: rows");
        assert_eq!(sum, fp["checksum"].as_str().unwrap(), "{table}: checksum");
    }
    // Tables the writer never touched are equal to the live source, row by row.
    for table in ["sales.items", "\"Billing\".\"Invoice Lines\""] {
        let q = format!("SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t");
        assert_eq!(
            server.psql("orders", &q),
            server.psql("orders_copy", &q),
            "{table}"
        );
    }
    let lo = "SELECT string_agg(oid::text || ':' || md5(lo_get(oid)), ',' ORDER BY oid) FROM pg_largeobject_metadata";
    assert_eq!(server.psql("orders", lo), server.psql("orders_copy", lo));
    assert_eq!(
        server.psql(
            "orders_copy",
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'sales'"
        ),
        "app"
    );
    // A second restore into the now non-empty database is refused, touching nothing.
    let out = repo.run(&[
        "restore",
        "latest",
        "--dataset",
        "orders-db",
        "--postgres-target",
        &server.dsn("orders_copy"),
    ]);
    out.assert_code(1).assert_one_error_line();
    assert!(
        out.stderr.contains("already holds 4 tables"),
        "{}",
        out.describe()
    );
}

/// Back up the database through the library with another dump in place of the real one.
fn backup_stream_with_meta(repo: &Repo, snap: &Value, files: Vec<(String, Vec<u8>)>) -> String {
    let lib = repo.open_lib();
    let meta: std::collections::BTreeMap<String, Value> =
        serde_json::from_value(snap["meta"].clone()).unwrap();
    let streams = files
        .into_iter()
        .map(|(n, d)| (n, Box::new(Cursor::new(d)) as Box<dyn std::io::Read + Send>))
        .collect();
    let report = bulwark_ops::backup::backup(
        &lib,
        bulwark_ops::backup::BackupOptions {
            source: bulwark_ops::backup::BackupSource::Streams(streams),
            excludes: bulwark_source::Patterns::new(&[]).unwrap(),
            tags: vec![],
            host: None,
            time: None,
            parent: None,
            dataset: snap["dataset"].as_str().map(str::to_string),
            meta,
            ..Default::default()
        },
        &bulwark_ops::Silent,
    )
    .unwrap();
    report.snapshot_id.to_hex()
}

/// Save a copy of snapshot `id` with `edit` applied to its recorded facts.
fn doctor_snapshot(repo: &Repo, id: &str, edit: impl FnOnce(&mut Value)) -> String {
    let lib = repo.open_lib();
    let (_, mut snap) = lib.find_snapshot(id, |_| true).unwrap();
    let mut facts = snap.meta["database"].clone();
    edit(&mut facts);
    snap.meta.insert("database".into(), facts);
    snap.time += chrono::Duration::seconds(1);
    lib.save_snapshot(&snap).unwrap().to_hex()
}

#[track_caller]
fn assert_failed(out: &Out, report: &Value, name: &str, detail: &str) {
    out.assert_code(1);
    assert_eq!(report["passed"], false, "{report:#}");
    let c = check(report, name);
    assert_eq!(c["passed"], false, "{c}");
    assert!(
        c["detail"].as_str().unwrap().contains(detail),
        "{name}: want {detail:?} in {c}"
    );
    assert!(
        out.stderr.contains(&format!("restore test failed: {name}")),
        "{}",
        out.describe()
    );
}

#[test]
fn postgres_sabotage_is_caught() {
    let rows = scale(20_000, 200_000);
    let server = PgServer::start();
    populate(&server, "shop", rows);
    let repo = Repo::init(&[]);
    let good = id_of(&repo.json(&[
        "backup",
        "--json",
        "--postgres",
        &server.dsn("shop"),
        "--dataset",
        "shop",
    ]));
    let snap = snapshot(&repo, &good);

    // 1. A recorded row count that the dump does not hold.
    let altered = doctor_snapshot(&repo, &good, |f| {
        let n = f["tables"]["public.orders"]["rows"].as_u64().unwrap();
        f["tables"]["public.orders"]["rows"] = (n + 1).into();
    });
    let (out, report) = restore_test(&repo, &altered, &[]);
    assert_failed(
        &out,
        &report,
        "fidelity",
        &format!(
            "public.orders: {rows} rows restored, {} recorded at backup",
            rows + 1
        ),
    );
    assert_eq!(check(&report, "restore")["passed"], true);
    // The scratch cluster's log stays, printed; its data directory does not.
    let logs = strings(&report["logs"]);
    assert!(!logs.is_empty(), "{report}");
    for l in &logs {
        assert!(Path::new(l).is_file(), "log {l} kept");
        assert!(out.stderr.contains(l.as_str()), "{}", out.describe());
    }
    let kept = Path::new(&logs[0]).parent().unwrap();
    assert!(
        !kept.join("data").exists(),
        "the scratch data directory is removed"
    );
    std::fs::remove_dir_all(kept).unwrap();

    // 2. A dump cut off mid-stream, stored with the original's facts.
    let dir = tempdir("bulwark-pgdump-");
    repo.restore(&good, dir.path(), &[]).assert_ok();
    let dump = std::fs::read(dir.path().join("shop.sql")).unwrap();
    let globals = std::fs::read(dir.path().join("globals.sql")).unwrap();
    let cut = dump[..dump.len() / 2].to_vec();
    let truncated = backup_stream_with_meta(
        &repo,
        &snap,
        vec![("globals.sql".into(), globals), ("shop.sql".into(), cut)],
    );
    let (out, report) = restore_test(&repo, &truncated, &[]);
    assert_failed(&out, &report, "dump-complete", "cut short");
    let restore = check(&report, "restore");
    let fidelity = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "fidelity");
    assert!(
        restore["passed"] == false || fidelity.is_some_and(|f| f["passed"] == false),
        "a truncated dump must not restore faithfully: {report:#}"
    );
    cleanup_logs(&report);

    // 3. An assertion that does not hold, and one that does not even run.
    let (out, report) = restore_test(
        &repo,
        &good,
        &[
            "--check-sql",
            "SELECT count(*) > 0 FROM orders",
            "--check-sql",
            "SELECT count(*) > 1000000000 FROM orders",
            "--check-sql",
            "SELECT 1 FROM no_such_table",
        ],
    );
    assert_failed(
        &out,
        &report,
        "check-sql: SELECT count(*) > 1000000000 FROM orders",
        "returned f, not true",
    );
    assert_eq!(
        check(&report, "check-sql: SELECT count(*) > 0 FROM orders")["passed"],
        true
    );
    let c = check(&report, "check-sql: SELECT 1 FROM no_such_table");
    assert_eq!(c["passed"], false);
    assert!(
        c["detail"].as_str().unwrap().contains("does not exist"),
        "{c}"
    );
    assert_eq!(check(&report, "fidelity")["passed"], true);
    cleanup_logs(&report);

    // The same test on a scratch database of an existing server instead: it passes, and the
    // scratch database is gone afterwards.
    let (out, report) = restore_test(
        &repo,
        &good,
        &["--scratch-postgres", &server.dsn("postgres")],
    );
    out.assert_ok();
    assert_passed(&report);
    assert_eq!(
        server.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'bulwark_restore_test_%'"
        ),
        "0"
    );

    // 4. A backup from a newer major version than the local programs.
    let newer = doctor_snapshot(&repo, &good, |f| f["major"] = 99.into());
    let (out, report) = restore_test(&repo, &newer, &[]);
    assert_failed(&out, &report, "compatibility", "PostgreSQL 99");

    // 5. Missing programs: backup and restore test both say which and where.
    let empty = tempdir("bulwark-empty-bindir-");
    let empty_s = empty.path().display().to_string();
    let before = repo.snapshots().len();
    let out = run(repo
        .cmd(&[
            "backup",
            "--postgres",
            &server.dsn("shop"),
            "--dataset",
            "shop",
        ])
        .env("BULWARK_PG_BINDIR", empty.path()));
    out.assert_code(1).assert_one_error_line();
    assert!(
        out.stderr
            .contains(&format!("pg_dump not found in {empty_s}")),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("BULWARK_PG_BINDIR"),
        "{}",
        out.describe()
    );
    assert_eq!(
        repo.snapshots().len(),
        before,
        "no snapshot from a failed backup"
    );
    let out = run(repo
        .cmd(&["restore-test", &good, "--json"])
        .env("BULWARK_PG_BINDIR", empty.path()));
    let report = out.json();
    assert_failed(&out, &report, "scratch", &format!("not found in {empty_s}"));

    // 6. Run as root with no unprivileged account for the scratch cluster.
    if running_as_root() {
        let out = run(repo
            .cmd(&["restore-test", &good, "--json"])
            .env("BULWARK_SCRATCH_USER", "no-such-user-here"));
        let report = out.json();
        assert_failed(&out, &report, "scratch", "no such user");
    }

    // 7. A snapshot that is not a database backup is tested as files.
    let files = tempdir("bulwark-files-");
    std::fs::write(files.path().join("f"), b"x").unwrap();
    let plain = id_of(&repo.backup(&[files.path()], &[]));
    let report = repo.json(&["restore-test", &plain, "--json"]);
    assert_eq!(report["kind"], "files", "{report}");
    assert_eq!(report["passed"], true, "{report}");
}

fn cleanup_logs(report: &Value) {
    if let Some(logs) = report["logs"].as_array()
        && let Some(first) = logs.first()
    {
        let _ = std::fs::remove_dir_all(Path::new(first.as_str().unwrap()).parent().unwrap());
    }
}

#[test]
fn postgres_server_dying_mid_dump_saves_nothing() {
    let rows = scale(200_000, 1_000_000);
    let mut server = PgServer::start();
    populate(&server, "doomed", rows);
    let repo = Repo::init(&[]);
    let mut child = repo
        .cmd(&[
            "backup",
            "--postgres",
            &server.dsn("doomed"),
            "--dataset",
            "doomed",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server as soon as pg_dump is connected: the dump is then under way.
    let mut watcher = pgd::Client::connect(&server.dsn("postgres"), pgd::NoTls).unwrap();
    let t = Instant::now();
    loop {
        let n: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'",
                &[],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "pg_dump never connected"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before pg_dump connected"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    server.stop_immediate();
    let out = finish(child);
    out.assert_code(1);
    assert!(out.stderr.contains("error: "), "{}", out.describe());
    assert!(
        out.stderr.contains("doomed.sql") || out.stderr.contains("pg_dump"),
        "the error names the dump: {}",
        out.describe()
    );
    assert!(
        out.stderr.contains("no snapshot was saved"),
        "{}",
        out.describe()
    );
    assert_eq!(
        repo.snapshots().len(),
        0,
        "a dump cut short is never stored as a snapshot"
    );
}

/// Bytes stored by the second of two daily backups, as a fraction of the first's.
fn two_days(server: &PgServer, db: &str, chunk_kib: &[&str], change: &str) -> Vec<f64> {
    let repos: Vec<Repo> = chunk_kib
        .iter()
        .map(|k| Repo::init(&["--chunk-avg-kib", k]))
        .collect();
    let day1: Vec<u64> = repos
        .iter()
        .map(|r| {
            u64_of(
                &r.json(&[
                    "backup",
                    "--json",
                    "--postgres",
                    &server.dsn(db),
                    "--dataset",
                    db,
                ]),
                "bytes_added_stored",
            )
        })
        .collect();
    server.psql(db, change);
    server.psql(db, "VACUUM public.orders");
    repos
        .iter()
        .zip(day1)
        .map(|(r, first)| {
            let v = r.json(&[
                "backup",
                "--json",
                "--postgres",
                &server.dsn(db),
                "--dataset",
                db,
            ]);
            u64_of(&v, "bytes_added_stored") as f64 / first as f64
        })
        .collect()
}

#[test]
fn postgres_two_days_of_dumps_share_most_chunks() {
    let rows = scale(200_000, 1_000_000);
    let server = PgServer::start();
    populate(&server, "daily", rows);
    // ~2% of rows change in a day, as they do in an order table: 1% of rows updated among the
    // newest tenth (recent orders change status), 1% new orders.
    let hot = format!(
        "UPDATE public.orders SET st = 'shipped', amount = amount + 1 WHERE id > {tail} AND id % 10 = 3;
         INSERT INTO public.orders SELECT i, i % 1000, 'new', i * 1.25, now(), ARRAY['t'], json_build_object('i', i),
             hstore('a', i::text) FROM generate_series({first}, {last}) i;",
        tail = rows - rows / 10,
        first = rows + 1,
        last = rows + rows / 100
    );
    let ratios = two_days(&server, "daily", &["1024", "256"], &hot);
    eprintln!(
        "two days, {rows} rows, ~2% changed (1% recent rows updated, 1% appended): the second dump stores \
         {:.1}% of the first's bytes with 1 MiB chunks (default), {:.1}% with 256 KiB chunks",
        ratios[0] * 100.0,
        ratios[1] * 100.0
    );
    // Chunk boundaries depend on the repository's secret chunker seed: the ratios vary from run to
    // run (seen: 33-42% and 12-24% at 200k rows), hence generous bounds.
    assert!(ratios[0] < 0.7, "1 MiB chunks: {ratios:?}");
    assert!(ratios[1] < 0.35, "256 KiB chunks: {ratios:?}");
    if thorough() {
        // The worst case for any chunked dump: 2% of rows updated uniformly at random.
        populate(&server, "spread", rows);
        let ratios = two_days(
            &server,
            "spread",
            &["1024", "256"],
            "UPDATE public.orders SET amount = amount + 1 WHERE id % 50 = 7",
        );
        eprintln!(
            "two days, {rows} rows, 2% updated uniformly across the table: the second dump stores {:.1}% (1 MiB) \
             and {:.1}% (256 KiB) of the first's bytes",
            ratios[0] * 100.0,
            ratios[1] * 100.0
        );
    }
}

/// Write `text` to a new file with `mode`.
fn secret_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn postgres_passwords_come_from_libpq_files_or_the_policy_file_never_the_dsn() {
    const PASSWORD: &str = "pg-secret-never-shown";
    let server = PgServer::start();
    server.psql(
        "postgres",
        &format!("CREATE ROLE keeper LOGIN PASSWORD '{PASSWORD}'"),
    );
    server.psql("postgres", "CREATE DATABASE vault OWNER keeper");
    server.psql(
        "vault",
        "SET ROLE keeper; CREATE TABLE notes (id int PRIMARY KEY, t text); INSERT INTO notes SELECT i, 'n' || i FROM generate_series(1, 100) i",
    );
    // Only `keeper` must give a password, over TCP: the first matching line wins.
    let hba = server.dir.join("data/pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all keeper 127.0.0.1/32 scram-sha-256\n{rules}"),
    )
    .unwrap();
    server.psql("postgres", "SELECT pg_reload_conf()");

    let work = tempdir("bulwark-pgpass-");
    let dsn = format!("postgres://keeper@127.0.0.1:{}/vault", server.port);
    let repo = Repo::init(&[]);
    let backup = |envs: &[(&str, &Path)], target: &str| {
        let mut c = repo.cmd(&["backup", "--json", "--postgres", target, "--no-globals"]);
        c.env("HOME", work.path());
        for (k, v) in envs {
            c.env(k, v);
        }
        run(&mut c)
    };
    // No password anywhere: a clear failure, nothing saved.
    let out = backup(&[], &dsn);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("password"), "{}", out.describe());

    // ~/.pgpass (HOME points at the work directory), honoured only when private.
    let pgpass = work.path().join(".pgpass");
    secret_file(
        &pgpass,
        &format!(
            "# other\n127.0.0.1:{}:vault:keeper:{PASSWORD}\n",
            server.port
        ),
        0o644,
    );
    backup(&[], &dsn).assert_code(1);
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = backup(&[], &dsn);
    out.assert_ok();
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD));
    std::fs::remove_file(&pgpass).unwrap();

    // PGPASSFILE, and a connection service file naming everything.
    let elsewhere = work.path().join("elsewhere.pgpass");
    secret_file(&elsewhere, &format!("*:*:*:keeper:{PASSWORD}\n"), 0o600);
    backup(&[("PGPASSFILE", &elsewhere)], &dsn).assert_ok();
    let services = work.path().join("services.conf");
    secret_file(
        &services,
        &format!(
            "[vault]\nhost=127.0.0.1\nport={}\ndbname=vault\nuser=keeper\npassword={PASSWORD}\n",
            server.port
        ),
        0o600,
    );
    let out = backup(&[("PGSERVICEFILE", &services)], "service=vault");
    out.assert_ok();
    assert_eq!(out.json()["database"]["database"], "vault");

    // A dataset's password_file in the policy file; the restore test runs on a scratch cluster.
    secret_file(
        &work.path().join("vault.pass"),
        &format!("{PASSWORD}\n"),
        0o600,
    );
    std::fs::write(work.path().join("repo.pass"), PASSWORD_OF_REPO).unwrap();
    std::fs::write(
        work.path().join("bulwark.toml"),
        format!(
            r#"
[repositories.primary]
url = "{}"
password_file = "repo.pass"

[datasets.vault]
kind = "postgres"
source = "{dsn}"
password_file = "vault.pass"
schedule = "daily at 01:00"
restore_test = {{ checks = ["SELECT count(*) = 100 FROM notes"] }}
"#,
            repo.path.display()
        ),
    )
    .unwrap();
    let mut c = bulwark();
    c.args(["run", "vault", "--json", "-c"])
        .arg(work.path().join("bulwark.toml"))
        .env("HOME", work.path());
    let out = run(&mut c);
    out.assert_ok();
    let report = out.json();
    assert_eq!(report["ok"], true, "{report}");
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD));
    let ledger = std::fs::read(work.path().join("bulwark-ledger.sqlite")).unwrap();
    assert!(
        !ledger
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes()),
        "the password never reaches the ledger"
    );
}

const PASSWORD_OF_REPO: &str = common::PASSWORD;

#[test]
fn a_restore_into_a_server_that_is_down_says_the_target_failed() {
    let server = PgServer::start();
    server.psql("postgres", "CREATE DATABASE small");
    server.psql(
        "small",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)",
    );
    let repo = Repo::init(&[]);
    repo.run(&[
        "backup",
        "--postgres",
        &server.dsn("small"),
        "--dataset",
        "small",
    ])
    .assert_ok();
    let down = format!("postgres://postgres@127.0.0.1:{}/restored", free_port());
    let out = repo.run(&[
        "restore",
        "latest",
        "--dataset",
        "small",
        "--postgres-target",
        &down,
    ]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("restore target"), "{}", out.describe());
    assert!(
        !out.stderr.contains("no snapshot was saved"),
        "{}",
        out.describe()
    );
}

/// The checksum snapshots recorded before rows were hashed in the dump's stream: the sum of the
/// first 64 bits of each row text's md5, computed in SQL.
fn md5_sum_fingerprint(server: &PgServer, db: &str, table: &str) -> (u64, String) {
    let out = server.psql(
        db,
        &format!(
            "SET bytea_output = 'hex'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC';
             SET extra_float_digits = 1; SET search_path = pg_catalog;
             SELECT count(*) || '|' || coalesce(sum(('x' || substr(md5(ROW(t.*)::text), 1, 16))::bit(64)::int8::numeric), 0)
             FROM ONLY {table} t"
        ),
    );
    let (n, sum) = out.lines().last().unwrap().split_once('|').unwrap();
    (n.parse().unwrap(), sum.to_string())
}

#[test]
fn verification_checks_row_checksums_older_md5_checksums_and_counts_and_names_what_differs() {
    let server = PgServer::start();
    server.psql("postgres", "CREATE DATABASE v");
    server.psql(
        "v",
        "CREATE TABLE keyed (id int PRIMARY KEY, t text, b bytea, at timestamptz);
         INSERT INTO keyed SELECT g, 'row ' || g, decode(md5(g::text), 'hex'), '2026-01-01'::timestamptz + g * interval '1 minute'
           FROM generate_series(1, 3000) g;
         CREATE TABLE heap (v text);
         INSERT INTO heap VALUES ('same'), ('same'), (NULL), (E'tab\there'), (E'line\nbreak'), ('');
         CREATE TABLE old (id int, n numeric);
         INSERT INTO old SELECT g, g / 7.0 FROM generate_series(1, 500) g;
         CREATE TABLE big (id int);
         INSERT INTO big SELECT generate_series(1, 100)",
    );
    let fp = |(rows, checksum): (u64, String)| json!({ "rows": rows, "checksum": checksum });
    let facts = json!({
        "database": "v", "server_version": "15", "server_version_num": 150000, "major": 15,
        "database_size": 0, "encoding": "UTF8", "collate": "C", "ctype": "C",
        "extensions": {}, "roles": [],
        "tables": {
            "public.keyed": fp(independent_fingerprint(&server, "v", "public.keyed")),
            "public.heap": fp(independent_fingerprint(&server, "v", "public.heap")),
            "public.old": fp(md5_sum_fingerprint(&server, "v", "public.old")),
            "public.big": { "rows": 100 },
        },
        "large_objects": { "rows": 0 },
        "checksum_max_bytes": 1 << 20, "dump_file": "v.sql", "dump_format": "plain SQL",
        "ordered_tables": 1, "pg_dump_version": "15",
    });
    let facts: bulwark_source::db::postgres::PgFacts = serde_json::from_value(facts).unwrap();
    let differences = || bulwark_source::db::postgres::verify(&server.dsn("v"), &facts).unwrap();
    assert_eq!(
        differences(),
        Vec::<String>::new(),
        "the untouched database verifies"
    );

    // One change in each table, each kind of fingerprint: every one is found, by name.
    server.psql(
        "v",
        "UPDATE keyed SET b = decode('00', 'hex') WHERE id = 1234;
         UPDATE heap SET v = 'other' WHERE v IS NULL;
         UPDATE old SET n = n + 1 WHERE id = 77;
         DELETE FROM big WHERE id = 1",
    );
    let found = differences();
    assert_eq!(found.len(), 4, "{found:?}");
    for (table, what) in [
        ("public.keyed", "checksum"),
        ("public.heap", "checksum"),
        ("public.old", "checksum"),
        ("public.big", "99"),
    ] {
        assert!(
            found
                .iter()
                .any(|d| d.starts_with(table) && d.contains(what)),
            "{table}: {found:?}"
        );
    }
}

/// No Bulwark variable (here `BULWARK_PASSWORD` and `BULWARK_PG_BINDIR`) reaches a PostgreSQL
/// program Bulwark starts: each program of the real directory runs through a wrapper that
/// records its environment, for a backup and a restore test.
#[test]
fn no_bulwark_variable_reaches_a_postgres_program() {
    let server = PgServer::start();
    server.psql("postgres", "CREATE DATABASE small");
    server.psql(
        "small",
        "CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t VALUES (1, 'one')",
    );
    let dir = tempfile::Builder::new()
        .prefix("bulwark-pg-env-")
        .tempdir_in("/tmp")
        .unwrap();
    let records = dir.path().join("records");
    std::fs::create_dir(&records).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(dir.path(), 0o755);
    // The scratch cluster's programs run as an unprivileged account when the tests run as root.
    mode(&records, 0o1777);
    for entry in std::fs::read_dir(pg_bindir()).unwrap() {
        let real = entry.unwrap().path();
        let name = real.file_name().unwrap().to_string_lossy().into_owned();
        let script = dir.path().join(&name);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nenv > '{}/{name}.'$$\nexec '{}' \"$@\"\n",
                records.display(),
                real.display()
            ),
        )
        .unwrap();
        mode(&script, 0o755);
    }
    let repo = Repo::init(&[]);
    let with_wrappers = |args: &[&str]| run(repo.cmd(args).env("BULWARK_PG_BINDIR", dir.path()));
    with_wrappers(&["backup", "--postgres", &server.dsn("small")]).assert_ok();
    let out = with_wrappers(&["restore-test", "latest", "--json"]);
    assert_passed(&out.json());

    let mut ran = Vec::new();
    for entry in std::fs::read_dir(&records).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let env = std::fs::read_to_string(&path).unwrap();
        let leaked: Vec<&str> = env
            .lines()
            .filter(|l| l.starts_with("BULWARK_"))
            .map(|l| l.split('=').next().unwrap_or(l))
            .collect();
        assert!(leaked.is_empty(), "{name} inherited {leaked:?}");
        ran.push(name.split('.').next().unwrap().to_string());
    }
    for program in [
        "pg_dump",
        "pg_dumpall",
        "initdb",
        "pg_ctl",
        "psql",
        "pg_amcheck",
    ] {
        assert!(
            ran.iter().any(|r| r == program),
            "{program} ran through its wrapper (ran: {ran:?})"
        );
    }
}
