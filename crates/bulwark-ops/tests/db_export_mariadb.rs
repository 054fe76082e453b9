//! Database exports of a MariaDB backup against real servers: the source server and the
//! throwaway scratch server each export restores into. No mocks.
//!
//! - every table as CSV into a directory: `SHA256SUMS` matches the files; commas, quotes, line
//!   ends, backslashes, utf8mb4, binary, empty strings and NULLs survive (read back with the csv
//!   crate, NULL as an unquoted empty field); the source changed after the backup and stopped
//!   before the export: the export shows the backup's rows;
//! - a query selecting one tenant's rows returns only those; a writing query and a second
//!   statement are refused (read-only, one statement), naming the file;
//! - the SQL export is the stored dump, complete.

mod common;

use std::path::Path;

use bulwark_ops::Silent;
use bulwark_ops::database::backup_database;
use bulwark_ops::db_export::{CsvSelection, CsvSink, export_csv, export_sql};
use common::*;
use sha2::{Digest, Sha256};

const TRICKY: &[&str] = &[
    "comma, \"quoted\" and\nnewline",
    "tab\there \\back\\slash\r\ncrlf",
    "ünïcødé ✓ 日本語 🚀",
];

fn read_csv(path: &Path) -> Vec<Vec<Vec<u8>>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap()
        .byte_records()
        .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
        .collect()
}

#[test]
fn mariadb_csv_and_sql_come_from_the_backup() {
    if !mariadb_available() {
        return;
    }
    let mut server = MariaServer::start();
    server.sql(
        "",
        "CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
    );
    server.sql(
        "shop",
        "CREATE TABLE orders (id INT PRIMARY KEY, tenant VARCHAR(20) NOT NULL, note TEXT,
             amount DECIMAL(10, 2), payload BLOB, created DATETIME);
         CREATE TABLE customers (id INT PRIMARY KEY, tenant VARCHAR(20) NOT NULL, name VARCHAR(50));
         INSERT INTO customers
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 90)
             SELECT i, ELT(1 + i % 3, 'acme', 'globex', 'initech'), CONCAT('customer ', i) FROM n;",
    );
    let mut conn = server.conn("shop");
    {
        use bulwark_source::db::mariadb::driver::prelude::Queryable;
        for (i, note) in TRICKY.iter().enumerate() {
            conn.exec_drop(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, '2026-05-01 12:00:00')",
                (
                    i as i64,
                    if i % 2 == 0 { "acme" } else { "globex" },
                    *note,
                    "1.25",
                    vec![0u8, 255, b',', b'"', b'\n'],
                ),
            )
            .unwrap();
        }
    }
    server.sql(
        "shop",
        "INSERT INTO orders VALUES (10, 'acme', '', NULL, NULL, NULL), (11, 'globex', NULL, 0, '', NULL)",
    );
    let r = repo();
    backup_database(&r.repo, backup_opts(&server.socket_dsn("shop")), &Silent).unwrap();
    // The source changes after the backup, then stops.
    server.sql(
        "shop",
        "DELETE FROM orders; UPDATE customers SET name = 'changed'",
    );
    server.stop();

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("csv");
    let report = export_csv(
        &r.repo,
        "latest",
        Some("shop"),
        &CsvSelection::EveryTable,
        None,
        CsvSink::Dir(&dir),
    )
    .unwrap();
    assert_eq!(report.kind, "mariadb");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 2, "{sums}");
    for line in sums.lines() {
        let (sum, name) = line.split_once("  ").unwrap();
        let data = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(sum, hex::encode(Sha256::digest(&data)), "{name}");
    }
    let orders = read_csv(&dir.join("orders.csv"));
    assert_eq!(orders.len(), 1 + TRICKY.len() + 2, "the backup's rows");
    for (i, tricky) in TRICKY.iter().enumerate() {
        assert_eq!(orders[1 + i][2], tricky.as_bytes());
        assert_eq!(orders[1 + i][4], b"\x00\xff,\"\n");
        assert_eq!(orders[1 + i][5], b"2026-05-01 12:00:00");
    }
    let raw = String::from_utf8_lossy(&std::fs::read(dir.join("orders.csv")).unwrap()).into_owned();
    assert!(raw.contains("\r\n\"10\",\"acme\",\"\",,,\r\n"), "{raw}");
    assert!(
        raw.contains("\r\n\"11\",\"globex\",,\"0.00\",\"\",\r\n"),
        "{raw}"
    );
    let customers = read_csv(&dir.join("customers.csv"));
    assert_eq!(customers.len(), 91);
    assert!(customers.iter().all(|r| r[2] != b"changed"));

    // One tenant's rows, by a query.
    let tenant = out.path().join("acme");
    let report = export_csv(
        &r.repo,
        "latest",
        Some("shop"),
        &CsvSelection::Queries(vec![(
            "acme.csv".into(),
            "SELECT id, name FROM customers WHERE tenant = 'acme' ORDER BY id".into(),
        )]),
        None,
        CsvSink::Dir(&tenant),
    )
    .unwrap();
    assert_eq!(report.files[0].rows, 30);
    let acme = read_csv(&tenant.join("acme.csv"));
    assert_eq!(acme[0], [b"id".to_vec(), b"name".to_vec()]);
    assert!(acme[1..].iter().all(|r| {
        let id: u32 = String::from_utf8_lossy(&r[0]).parse().unwrap();
        id.is_multiple_of(3)
    }));

    // Writing, and a second statement, are refused.
    for (i, (sql, why)) in [
        ("DELETE FROM customers", "READ ONLY"),
        ("SELECT 1; DROP TABLE customers", "syntax"),
    ]
    .iter()
    .enumerate()
    {
        let err = export_csv(
            &r.repo,
            "latest",
            Some("shop"),
            &CsvSelection::Queries(vec![("bad.csv".into(), sql.to_string())]),
            None,
            CsvSink::Dir(&out.path().join(format!("bad{i}"))),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad.csv") && err.contains(why), "{sql}: {err}");
    }

    // SQL: the stored dump, complete.
    let mut sql = Vec::new();
    let report = export_sql(&r.repo, "latest", Some("shop"), None, &mut sql).unwrap();
    assert_eq!(report.bytes, sql.len() as u64);
    let text = String::from_utf8_lossy(&sql);
    assert!(
        text.contains("CREATE TABLE `orders`"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.ends_with("-- bulwark: dump complete\n"));
}
