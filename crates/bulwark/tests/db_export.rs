//! `bulwark export --format sql|csv` and `--profile` on real databases: a SQLite file and a
//! PostgreSQL server started for the test (initdb/pg_ctl, as the `postgres` account when run as
//! root), each export restoring into its own throwaway scratch target. No mocks.
//!
//! - CSV files check with `sha256sum -c SHA256SUMS` (as a directory and from a tar stream);
//!   values with commas, quotes, newlines, tabs, backslashes, unicode, empty strings and NULLs
//!   survive: read back with the csv crate, and (PostgreSQL) loaded back with
//!   `\copy … CSV HEADER` they equal the backed-up rows, NULLs included;
//! - the SQL export loads into a new database (`sqlite3`, `psql`) equal to the backup;
//! - the production database changed (and, for PostgreSQL, stopped) after the backup: every
//!   export still shows the backup's data;
//! - a profile returns one tenant's rows only; a bad query and a writing query fail with one
//!   error line naming the file, leave nothing behind, and are recorded as failed exports.
//!
//! Sizes: 500 bulk PostgreSQL orders by default, 200k with BULWARK_THOROUGH=1 (export times are
//! printed).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use rusqlite::types::Value as SqlValue;
use serde_json::Value;

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}: {text}");
    text
}

fn exports(s: &Site) -> Vec<Value> {
    s.events()
        .into_iter()
        .filter(|e| e["kind"] == "export")
        .collect()
}

#[track_caller]
fn assert_sums_check(dir: &Path) {
    let checked = sh(dir, "sha256sum -c SHA256SUMS");
    assert!(
        checked.contains(": OK") && !checked.contains("FAILED"),
        "{checked}"
    );
}

/// A CSV file as records of fields, read as customers' tools read it.
fn read_csv(path: &Path) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Values that break naive CSV: separators, quotes, line ends, tabs, backslashes, unicode.
const TRICKY: &[&str] = &[
    "comma, \"quoted\" and\nnewline",
    "tab\there \\back\\slash\r\ncrlf",
    "ünïcødé ✓ 日本語 🚀",
    "'single' ;; -- not a comment",
];

// ---------------------------------------------------------------------------------------------
// SQLite.

fn sqlite_shop(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, name TEXT);
         CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, note TEXT,
                              amount REAL, payload BLOB);
         CREATE INDEX orders_tenant ON orders (tenant);
         CREATE VIEW acme_orders AS SELECT * FROM orders WHERE tenant = 'acme';",
    )
    .unwrap();
    for (i, note) in TRICKY.iter().enumerate() {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        c.execute(
            "INSERT INTO orders (tenant, note, amount, payload) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![tenant, note, i as f64 + 0.25, vec![0u8, 255, b',', b'"']],
        )
        .unwrap();
    }
    // The empty string and NULL, side by side.
    c.execute(
        "INSERT INTO orders (tenant, note, amount, payload) VALUES ('acme', '', NULL, NULL)",
        [],
    )
    .unwrap();
    c.execute(
        "INSERT INTO orders (tenant, note, amount, payload) VALUES ('globex', NULL, 0.1, x'')",
        [],
    )
    .unwrap();
    for i in 0..200 {
        let tenant = ["acme", "globex", "initech"][i % 3];
        c.execute(
            "INSERT INTO customers (id, tenant, name) VALUES (?1, ?2, ?3)",
            rusqlite::params![i as i64, tenant, format!("{tenant} customer {i}")],
        )
        .unwrap();
    }
}

fn rows_of(path: &Path, table: &str) -> Vec<Vec<SqlValue>> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut stmt = c
        .prepare(&format!("SELECT * FROM {table} ORDER BY id"))
        .unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get::<_, SqlValue>(i)).collect())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

const SQLITE_PROFILES: &str = r#"
[datasets.shop]
kind = "sqlite"
source = "shop.db"
schedule = "daily at 03:00"

[exports.acme]
dataset = "shop"
files = { "acme-orders.csv" = "SELECT id, note FROM orders WHERE tenant = 'acme' ORDER BY id;", "acme-customers.csv" = "SELECT * FROM customers WHERE tenant = 'acme' ORDER BY id" }

[exports.broken]
dataset = "shop"
files = { "a.csv" = "SELECT id FROM orders", "b.csv" = "SELECT * FROM no_such_table" }

[exports.writer]
dataset = "shop"
files = { "gone.csv" = "DELETE FROM orders RETURNING id" }
"#;

#[test]
fn sqlite_csv_sql_and_profiles_come_from_the_backup() {
    let s = site(SQLITE_PROFILES);
    s.run(&["run", "docs"]).assert_ok();
    let db = s.root.join("shop.db");
    sqlite_shop(&db);
    let at_backup = s.root.join("at-backup.db");
    std::fs::copy(&db, &at_backup).unwrap();
    s.run(&["run", "shop"]).assert_ok();
    // Production changes after the backup, and then goes away altogether.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "DELETE FROM orders WHERE tenant = 'globex'; UPDATE customers SET name = 'changed';
         INSERT INTO customers VALUES (1000, 'acme', 'after the backup');",
    )
    .unwrap();
    drop(c);
    std::fs::rename(&db, s.root.join("shop.db.moved")).unwrap();

    // Every table as CSV, into a directory.
    let dir = s.root.join("csv");
    let dir_arg = format!("{}/", dir.display());
    s.run(&[
        "export",
        "latest",
        "--dataset",
        "shop",
        "--format",
        "csv",
        "--out",
        &dir_arg,
    ])
    .assert_ok();
    assert_sums_check(&dir);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Tables only: the view and sqlite_sequence are not tables of the customer's.
    assert_eq!(names, ["SHA256SUMS", "customers.csv", "orders.csv"]);
    let orders = read_csv(&dir.join("orders.csv"));
    assert_eq!(orders[0], ["id", "tenant", "note", "amount", "payload"]);
    let expected = rows_of(&at_backup, "orders");
    assert_eq!(orders.len(), 1 + expected.len());
    for (i, tricky) in TRICKY.iter().enumerate() {
        assert_eq!(orders[1 + i][2], *tricky, "row {i}");
        assert_eq!(orders[1 + i][4], "\\x00ff2c22");
    }
    // NULL is an unquoted empty field, the empty string a quoted one.
    let raw = std::fs::read_to_string(dir.join("orders.csv")).unwrap();
    let n = TRICKY.len();
    assert!(
        raw.contains(&format!("\r\n\"{}\",\"acme\",\"\",,\r\n", n + 1)),
        "{raw}"
    );
    assert!(
        raw.contains(&format!(
            "\r\n\"{}\",\"globex\",,\"0.1\",\"\\x\"\r\n",
            n + 2
        )),
        "{raw}"
    );
    let customers = read_csv(&dir.join("customers.csv"));
    assert_eq!(customers.len(), 201, "the backup's 200 customers");
    assert!(customers.iter().all(|r| r[2] != "changed"));

    // The same as a tar stream on stdout.
    let out = s.run(&["export", "latest", "--dataset", "shop", "--format", "csv"]);
    out.assert_ok();
    let x = s.root.join("from-tar");
    std::fs::create_dir(&x).unwrap();
    std::fs::write(s.root.join("csv.tar"), out.stdout.as_bytes()).unwrap();
    sh(&x, "tar -xf ../csv.tar");
    assert_sums_check(&x);
    assert_eq!(
        std::fs::read(x.join("orders.csv")).unwrap(),
        std::fs::read(dir.join("orders.csv")).unwrap()
    );

    // SQL: loads into a new database equal to the backup.
    let sql = s.root.join("shop.sql");
    let sql_arg = sql.display().to_string();
    s.run(&[
        "export",
        "latest",
        "--dataset",
        "shop",
        "--format",
        "sql",
        "--out",
        &sql_arg,
    ])
    .assert_ok();
    sh(&s.root, "sqlite3 reloaded.db < shop.sql");
    let reloaded = s.root.join("reloaded.db");
    for table in ["orders", "customers"] {
        assert_eq!(
            rows_of(&reloaded, table),
            rows_of(&at_backup, table),
            "{table}"
        );
    }
    let view = sh(
        &s.root,
        "sqlite3 reloaded.db 'SELECT count(*) FROM acme_orders'",
    );
    assert_eq!(view.trim(), (TRICKY.len().div_ceil(2) + 1).to_string());

    // A profile: one tenant's rows, nothing of the others.
    let p = s.root.join("acme");
    let p_arg = format!("{}/", p.display());
    s.run(&["export", "--profile", "acme", "--out", &p_arg])
        .assert_ok();
    assert_sums_check(&p);
    let acme = read_csv(&p.join("acme-customers.csv"));
    assert_eq!(acme[0], ["id", "tenant", "name"]);
    assert_eq!(acme.len(), 1 + 67);
    assert!(acme[1..].iter().all(|r| r[1] == "acme"), "{acme:?}");
    let all_customers = std::fs::read_to_string(p.join("acme-customers.csv")).unwrap();
    assert!(!all_customers.contains("globex") && !all_customers.contains("initech"));
    let acme_orders = read_csv(&p.join("acme-orders.csv"));
    assert_eq!(acme_orders[0], ["id", "note"]);
    assert_eq!(acme_orders.len(), 1 + TRICKY.len().div_ceil(2) + 1);

    // A bad query and a writing one: one error line naming the file, nothing left behind.
    for (profile, file, why) in [
        ("broken", "b.csv", "no such table"),
        ("writer", "gone.csv", "read-only"),
    ] {
        let out_dir = s.root.join(format!("out-{profile}"));
        let arg = format!("{}/", out_dir.display());
        let out = s.run(&["export", "--profile", profile, "--out", &arg]);
        out.assert_code(1).assert_one_error_line();
        assert!(
            out.stderr.contains(file) && out.stderr.contains(why),
            "{}",
            out.describe()
        );
        assert!(!out_dir.exists(), "a failed export leaves nothing behind");
    }
    // A directory that holds something is refused and left as it was; a failed export into an
    // empty one leaves it empty.
    let busy = s.root.join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    let out = s.run(&[
        "export",
        "--profile",
        "acme",
        "--out",
        busy.to_str().unwrap(),
    ]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("not empty"), "{}", out.describe());
    assert_eq!(
        std::fs::read_to_string(busy.join("keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    let empty = s.root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    s.run(&[
        "export",
        "--profile",
        "broken",
        "--out",
        empty.to_str().unwrap(),
    ])
    .assert_code(1)
    .assert_one_error_line();
    assert!(empty.is_dir() && std::fs::read_dir(&empty).unwrap().count() == 0);
    // The backup itself is untouched by the writing query.
    let again = s.root.join("again");
    let again_arg = format!("{}/", again.display());
    s.run(&["export", "--profile", "acme", "--out", &again_arg])
        .assert_ok();
    assert_eq!(
        std::fs::read(again.join("acme-orders.csv")).unwrap(),
        std::fs::read(p.join("acme-orders.csv")).unwrap()
    );

    // Snapshots that are no database, and unknown profiles, are refused clearly.
    let docs = s
        .events()
        .into_iter()
        .rev()
        .find(|e| e["kind"] == "backup" && e["dataset"] == "docs")
        .unwrap();
    let id = docs["details"]["snapshot_id"].as_str().unwrap().to_string();
    let out = s.run(&["export", &id, "--format", "csv"]);
    out.assert_code(1).assert_one_error_line();
    assert!(out.stderr.contains("--format tar"), "{}", out.describe());
    let out = s.run(&["export", "--profile", "acme", &id]);
    out.assert_code(1).assert_one_error_line();
    assert!(
        out.stderr.contains("belongs to dataset 'docs', not 'shop'"),
        "{}",
        out.describe()
    );
    s.run(&["export", "--profile", "nope"])
        .assert_code(2)
        .assert_one_error_line();

    // Every export is recorded, the failed ones as failed with their profile and error.
    let events = exports(&s);
    assert_eq!(events.len(), 11, "{events:#?}");
    let ok: Vec<&Value> = events.iter().filter(|e| e["ok"] == true).collect();
    assert_eq!(ok.len(), 5);
    assert!(ok.iter().all(|e| e["dataset"] == "shop"));
    let profile_event = ok
        .iter()
        .find(|e| e["details"]["profile"] == "acme")
        .unwrap();
    let files = profile_event["details"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert!(
        files
            .iter()
            .any(|f| f["name"] == "acme-customers.csv" && f["rows"] == 67)
    );
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["ok"] == false && e["details"]["profile"].is_string())
        .collect();
    assert_eq!(failed.len(), 5);
    for e in &failed {
        assert_eq!(e["dataset"], "shop");
        let error = e["details"]["error"].as_str().unwrap();
        assert!(
            error.contains(".csv") || error.contains("not empty") || error.contains("belongs to"),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL.

/// A shop with `bulk` plain orders (half of them acme's) besides the tricky ones.
fn pg_shop(server: &PgServer, bulk: u32) {
    server.psql("postgres", "CREATE DATABASE shop");
    server.psql(
        "shop",
        &format!("CREATE ROLE shop_owner NOLOGIN;
         CREATE SCHEMA sales AUTHORIZATION shop_owner;
         CREATE TABLE sales.orders (id int PRIMARY KEY, tenant text NOT NULL, note text, amount numeric,
             payload bytea, tags text[], doc jsonb, created timestamptz);
         CREATE TABLE public.\"Customer List\" (id int PRIMARY KEY, tenant text NOT NULL, name text);
         INSERT INTO public.\"Customer List\" SELECT i, (ARRAY['acme', 'globex', 'initech'])[1 + i % 3],
             'customer ' || i FROM generate_series(1, 300) i;
         INSERT INTO sales.orders SELECT 1000 + i, (ARRAY['acme', 'globex'])[1 + i % 2], 'bulk ' || i, i * 1.5,
             decode(md5(i::text), 'hex'), ARRAY['t' || i, 'x,y'], jsonb_build_object('i', i),
             '2026-01-01T00:00:00Z'::timestamptz + i * interval '1 hour' FROM generate_series(1, {bulk}) i;"
        ),
    );
    let mut inserts = String::new();
    for (i, note) in TRICKY.iter().enumerate() {
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        inserts += &format!(
            "INSERT INTO sales.orders VALUES ({i}, '{tenant}', {}, {i}.25, '\\x00ff2c22', ARRAY['a\"b', NULL, ''], \
             '{{\"k\": \"v,w\"}}', '2026-05-01 12:00:00+02');\n",
            pg_literal(note)
        );
    }
    inserts += "INSERT INTO sales.orders VALUES (100, 'acme', '', NULL, NULL, NULL, NULL, NULL);\n";
    inserts +=
        "INSERT INTO sales.orders VALUES (101, 'globex', NULL, 0, '', '{}', 'null', NULL);\n";
    server.psql("shop", &inserts);
}

fn pg_literal(s: &str) -> String {
    format!(
        "E'{}'",
        s.replace('\\', "\\\\")
            .replace('\'', "\\'")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    )
}

/// A table's rows in COPY text form, ordered: the reference the exports are compared against.
fn pg_rows(server: &PgServer, db: &str, table: &str) -> String {
    server.psql(
        db,
        &format!("SET TimeZone = 'UTC'; COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT"),
    )
}

#[test]
fn postgres_csv_sql_and_profiles_come_from_the_backup_not_production() {
    let mut server = PgServer::start();
    let bulk = scale(500, 200_000);
    pg_shop(&server, bulk);
    let s = site(&format!(
        "\n[datasets.shop]\nkind = \"postgres\"\nsource = \"{}\"\nschedule = \"daily at 03:00\"\n\n\
         [exports.acme]\ndataset = \"shop\"\n\
         files = {{ \"acme-orders.csv\" = \"SELECT id, note, amount FROM sales.orders WHERE tenant = 'acme' ORDER BY id\", \
         \"acme-customers.csv\" = \"SELECT * FROM \\\"Customer List\\\" WHERE tenant = 'acme' ORDER BY id\" }}\n\n\
         [exports.broken]\ndataset = \"shop\"\nfiles = {{ \"bad.csv\" = \"SELECT nosuchcolumn FROM sales.orders\" }}\n\n\
         [exports.writer]\ndataset = \"shop\"\nfiles = {{ \"gone.csv\" = \"DELETE FROM sales.orders RETURNING id\" }}\n",
        server.dsn("shop")
    ));
    let orders_at_backup = pg_rows(&server, "shop", "sales.orders");
    let customers_at_backup = pg_rows(&server, "shop", "public.\"Customer List\"");
    s.run(&["run", "shop"]).assert_ok();
    // Production changes after the backup.
    server.psql(
        "shop",
        "DELETE FROM sales.orders WHERE tenant = 'globex'; UPDATE public.\"Customer List\" SET name = 'changed';",
    );

    let dir = s.root.join("csv");
    let dir_arg = format!("{}/", dir.display());
    let t = std::time::Instant::now();
    let out = s.run(&[
        "export",
        "latest",
        "--dataset",
        "shop",
        "--format",
        "csv",
        "--out",
        &dir_arg,
        "--json",
    ]);
    out.assert_ok();
    let report = out.json();
    eprintln!(
        "exported {} rows ({} bytes of CSV) from a scratch restore in {:.1}s",
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rows"].as_u64().unwrap())
            .sum::<u64>(),
        report["bytes"],
        t.elapsed().as_secs_f64()
    );
    assert_eq!(report["kind"], "postgres");
    assert_sums_check(&dir);
    assert!(dir.join("sales.orders.csv").exists());
    assert!(dir.join("public.Customer%20List.csv").exists());
    let orders = read_csv(&dir.join("sales.orders.csv"));
    assert_eq!(
        orders[0],
        [
            "id", "tenant", "note", "amount", "payload", "tags", "doc", "created"
        ]
    );
    for (i, tricky) in TRICKY.iter().enumerate() {
        let row = orders.iter().find(|r| r[0] == i.to_string()).unwrap();
        assert_eq!(row[2], *tricky);
        assert_eq!(row[4], "\\x00ff2c22");
        assert_eq!(row[5], "{\"a\\\"b\",NULL,\"\"}");
        assert_eq!(row[7], "2026-05-01 10:00:00+00");
    }
    let raw = std::fs::read_to_string(dir.join("sales.orders.csv")).unwrap();
    assert!(raw.contains("\r\n\"100\",\"acme\",\"\",,,,,\r\n"), "{raw}");
    assert!(
        raw.contains("\r\n\"101\",\"globex\",,\"0\",\"\\x\",\"{}\",\"null\",\r\n"),
        "{raw}"
    );

    // Loaded back with PostgreSQL's own CSV reader, the rows equal the backup's, NULLs included.
    server.psql("postgres", "CREATE DATABASE reload");
    server.psql(
        "reload",
        "CREATE TABLE o (id int, tenant text, note text, amount numeric, payload bytea, tags text[], doc jsonb, created timestamptz);
         CREATE TABLE c (id int, tenant text, name text);",
    );
    let copy_in = |table: &str, file: &Path| {
        let out = Command::new(pg_bindir().join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(server.dsn("reload"))
            .arg("-c")
            .arg(format!(
                "\\copy {table} FROM '{}' CSV HEADER",
                file.display()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    copy_in("o", &dir.join("sales.orders.csv"));
    copy_in("c", &dir.join("public.Customer%20List.csv"));
    assert_eq!(pg_rows(&server, "reload", "o"), orders_at_backup);
    assert_eq!(pg_rows(&server, "reload", "c"), customers_at_backup);

    // SQL: the plain dump, restorable with psql.
    let sql = s.root.join("shop.sql");
    let sql_arg = sql.display().to_string();
    s.run(&[
        "export",
        "latest",
        "--dataset",
        "shop",
        "--format",
        "sql",
        "--out",
        &sql_arg,
    ])
    .assert_ok();
    let text = std::fs::read_to_string(&sql).unwrap();
    assert!(
        text.contains("PostgreSQL database dump") && text.ends_with("-- bulwark: dump complete\n")
    );
    server.psql("postgres", "CREATE DATABASE from_sql");
    let out = Command::new(pg_bindir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(server.dsn("from_sql"))
        .arg("-f")
        .arg(&sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pg_rows(&server, "from_sql", "sales.orders"),
        orders_at_backup
    );

    // Production stops: profiles still run, on the backup.
    server.stop_immediate();
    let p = s.root.join("acme.tar");
    let p_arg = p.display().to_string();
    s.run(&["export", "--profile", "acme", "--out", &p_arg])
        .assert_ok();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&p).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the customer's rows are owner-only");
    let x = s.root.join("acme");
    std::fs::create_dir(&x).unwrap();
    sh(&x, "tar -xf ../acme.tar");
    assert_sums_check(&x);
    let customers = read_csv(&x.join("acme-customers.csv"));
    assert_eq!(customers.len(), 1 + 100);
    assert!(
        customers[1..]
            .iter()
            .all(|r| r[1] == "acme" && r[2] != "changed")
    );
    let acme_orders = read_csv(&x.join("acme-orders.csv"));
    assert_eq!(acme_orders[0], ["id", "note", "amount"]);
    assert_eq!(
        acme_orders.len(),
        1 + bulk as usize / 2 + TRICKY.len().div_ceil(2) + 1
    );
    let text = std::fs::read_to_string(x.join("acme-orders.csv")).unwrap();
    assert!(!text.contains("globex") && !text.contains(TRICKY[1].split(' ').next().unwrap()));

    for (profile, file, why) in [
        ("broken", "bad.csv", "nosuchcolumn"),
        ("writer", "gone.csv", "read-only transaction"),
    ] {
        let target = s.root.join(format!("{profile}.tar"));
        let arg = target.display().to_string();
        let out = s.run(&["export", "--profile", profile, "--out", &arg]);
        out.assert_code(1).assert_one_error_line();
        assert!(
            out.stderr.contains(file) && out.stderr.contains(why),
            "{}",
            out.describe()
        );
        assert!(!target.exists(), "a failed export leaves no file");
    }
    let events = exports(&s);
    assert_eq!(events.len(), 5, "{events:#?}");
    assert_eq!(events.iter().filter(|e| e["ok"] == false).count(), 2);
    assert!(
        events
            .iter()
            .all(|e| e["dataset"] == "shop" && e["repository"] == "primary")
    );
}
