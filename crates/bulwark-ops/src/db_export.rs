//! Database snapshots exported for a customer's own copy, taken from the backup, never from
//! production.
//!
//! - `sql` ([`export_sql`]): the plain SQL dump. PostgreSQL and MariaDB/MySQL snapshots store one
//!   (`pg_dump`/`mariadb-dump` output ending with bulwark's completion line); it is streamed as
//!   stored, and an export whose dump lacks the completion line fails (PostgreSQL's `globals.sql`
//!   of roles is not part of it: `--format tar` holds both). A SQLite snapshot stores a
//!   database file: its SQL is written from a private copy of it (schema, then every row as an
//!   `INSERT`, in one transaction, as `sqlite3 .dump` does).
//! - `csv` ([`export_csv`]): the snapshot is restored into a scratch target (a throwaway
//!   PostgreSQL cluster or MariaDB server on a private socket, or a private copy of the SQLite
//!   file, as restore tests make them; removed afterwards), checked against the backup's
//!   fingerprint, then every table — or every query of an export profile — is written as one CSV
//!   file (see [`crate::csv_out`] for the format and how NULL differs from the empty string),
//!   with a `SHA256SUMS` file in `sha256sum` format. Queries must be one statement (each is
//!   prepared first, which admits one only) and run read-only: in a `READ ONLY` transaction
//!   (PostgreSQL; MariaDB also in a read-only session, so an implicit commit cannot lift it), on
//!   a read-only connection with `query_only` (SQLite, which also refuses a statement that
//!   writes). The roles a PostgreSQL dump names are created as `NOLOGIN` roles in the scratch
//!   cluster: the backup's `globals.sql` (passwords) is never replayed.
//!
//! CSV files go into a new directory, or one at a time into a tar stream: a tar entry's size
//! comes first, so each file is spooled to the scratch directory, then appended and removed
//! (memory stays constant; disk holds one CSV at a time).
//!
//! Values are the database's own text: PostgreSQL's output functions (ISO dates, `UTC` time
//! zone, `bytea` as `\x` hex), MariaDB's text protocol (`TIMESTAMP` in UTC), and for SQLite
//! integers and reals in decimal, text as stored, blobs as `\x` hex.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bulwark_repo::Repository;
use bulwark_repo::lock::LockKind;
use bulwark_source::db::mariadb::scratch::ScratchServer;
use bulwark_source::db::mariadb::{self, MariadbTools, driver as my};
use bulwark_source::db::postgres::{self as pg, PgTools, driver as pgd};
use bulwark_source::db::scratch::ScratchCluster;
use bulwark_source::db::sqlite::{self, driver as lite};
use bulwark_source::db::{DbError, DbMeta, DbResult, dump};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::csv_out::CsvWriter;
use crate::database::{SnapshotFileReader, find_db_snapshot, snapshot_file, target_failed};
use crate::error::{Error, Result};
use crate::export::SHA256SUMS;

/// What a database export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbFormat {
    Sql,
    Csv,
}

/// Where CSV files go.
pub enum CsvSink<'a> {
    /// A tar stream: the CSV files, then `SHA256SUMS`.
    Tar(&'a mut dyn Write),
    /// A directory to create (or an empty one), owner-only: the data is the customer's.
    Dir(&'a Path),
}

/// Which CSV files an export writes.
pub enum CsvSelection {
    /// One per table: `schema.table.csv` (PostgreSQL) or `table.csv`.
    EveryTable,
    /// One per `(file name, query)`, e.g. an export profile's.
    Queries(Vec<(String, String)>),
}

/// One file an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedFile {
    pub name: String,
    /// Data rows (CSV files: the header not counted).
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// What a database export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DbExportReport {
    pub snapshot: String,
    pub dataset: Option<String>,
    pub kind: String,
    pub format: DbFormat,
    pub files: Vec<ExportedFile>,
    pub bytes: u64,
    /// SHA-256 of the `SHA256SUMS` file (CSV exports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256sums: Option<String>,
}

/// The database snapshot `spec` (of `dataset`, if given), and its facts.
fn find(
    repo: &Repository,
    spec: &str,
    dataset: Option<&str>,
) -> Result<(bulwark_repo::Id, bulwark_repo::Snapshot, DbMeta)> {
    // `latest` is the latest database snapshot (of `dataset`).
    let latest = spec == "latest";
    let (id, snap) = repo
        .find_snapshot(spec, |s| {
            dataset.is_none_or(|d| s.dataset.as_deref() == Some(d))
                && (!latest || DbMeta::from_meta(&s.meta).is_some())
        })
        .map_err(|e| match e {
            bulwark_repo::Error::NotFound { .. } if latest => bulwark_repo::Error::NotFound {
                what: match dataset {
                    Some(d) => format!("a database snapshot of dataset '{d}'"),
                    None => "a database snapshot".into(),
                },
            },
            e => e,
        })?;
    if let Some(d) = dataset
        && snap.dataset.as_deref() != Some(d)
    {
        return Err(Error::Invalid(format!(
            "snapshot {} belongs to dataset '{}', not '{d}'",
            id.short(),
            snap.dataset.as_deref().unwrap_or("")
        )));
    }
    if snap
        .meta
        .contains_key(bulwark_source::db::physical::META_KEY)
    {
        return Err(Error::Invalid(format!(
            "snapshot {} is a physical PostgreSQL base backup, not a dump: export it with --format tar \
             (SQL and CSV exports need a dataset with method = \"logical\")",
            id.short()
        )));
    }
    if DbMeta::from_meta(&snap.meta).is_none() {
        return Err(Error::Invalid(format!(
            "snapshot {} (dataset '{}') is not a database backup: export it with --format tar or zip",
            id.short(),
            snap.dataset.as_deref().unwrap_or("")
        )));
    }
    find_db_snapshot(repo, &id.to_hex(), dataset)
}

/// Writes everything passing through to `out`, counting and hashing it.
struct Hashing<'a> {
    out: &'a mut dyn Write,
    hash: Sha256,
    bytes: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn writing(e: io::Error) -> Error {
    Error::Target(format!("writing the export: {e}"))
}

/// Streams the plain SQL of database snapshot `spec` (of `dataset`, if given) to `out`.
pub fn export_sql(
    repo: &Repository,
    spec: &str,
    dataset: Option<&str>,
    scratch_dir: Option<&Path>,
    out: &mut dyn Write,
) -> Result<DbExportReport> {
    let (id, snap, meta) = find(repo, spec, dataset)?;
    let _lock = repo.lock(LockKind::Shared)?;
    let index = repo.load_index()?;
    let mut sink = Hashing {
        out,
        hash: Sha256::new(),
        bytes: 0,
    };
    let name = match &meta {
        DbMeta::Postgres(f) => dump_stream(repo, &index, &snap, &f.dump_file, &mut sink)?,
        DbMeta::Mariadb(f) => dump_stream(repo, &index, &snap, &f.dump_file, &mut sink)?,
        DbMeta::Sqlite(f) => {
            let work = work_dir(scratch_dir)?;
            let copy = fetch_sqlite(repo, &index, &snap, &f.file, work.path())?;
            let conn = open_read_only(&copy).map_err(target_failed)?;
            sqlite_sql(&conn, &mut sink).map_err(|e| match e {
                SqlDumpError::Db(e) => Error::Target(format!("reading the SQLite copy: {e}")),
                SqlDumpError::Io(e) => writing(e),
            })?;
            format!("{}.sql", f.file.trim_end_matches(".db"))
        }
    };
    sink.flush().map_err(writing)?;
    Ok(DbExportReport {
        snapshot: id.to_hex(),
        dataset: snap.dataset.clone(),
        kind: meta.kind().into(),
        format: DbFormat::Sql,
        files: vec![ExportedFile {
            name,
            rows: 0,
            bytes: sink.bytes,
            sha256: hex::encode(sink.hash.finalize()),
        }],
        bytes: sink.bytes,
        sha256sums: None,
    })
}

/// Streams the dump `name` of the snapshot, failing if it lacks the completion line.
fn dump_stream(
    repo: &Repository,
    index: &bulwark_repo::MasterIndex,
    snap: &bulwark_repo::Snapshot,
    name: &str,
    out: &mut Hashing,
) -> Result<String> {
    let node = snapshot_file(repo, index, snap, name)?;
    let mut reader = SnapshotFileReader::new(repo, index, &node);
    let trailer = dump::DUMP_TRAILER.as_bytes();
    let mut tail: Vec<u8> = Vec::with_capacity(trailer.len() * 2);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = io::Read::read(&mut reader, &mut buf)
            .map_err(|e| Error::corrupt(format!("the dump {name}"), e))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(writing)?;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > trailer.len() {
            tail.drain(..tail.len() - trailer.len());
        }
    }
    if tail != trailer {
        return Err(Error::corrupt(
            format!("the dump {name}"),
            "it does not end with bulwark's completion line (cut short)",
        ));
    }
    Ok(name.to_string())
}

fn work_dir(scratch_dir: Option<&Path>) -> Result<tempfile::TempDir> {
    let base = scratch_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    tempfile::Builder::new()
        .prefix("bulwark-export-")
        .tempdir_in(&base)
        .map_err(|e| {
            Error::io(
                format!("cannot create a scratch directory in {}", base.display()),
                e,
            )
        })
}

fn fetch_sqlite(
    repo: &Repository,
    index: &bulwark_repo::MasterIndex,
    snap: &bulwark_repo::Snapshot,
    name: &str,
    dir: &Path,
) -> Result<PathBuf> {
    let node = snapshot_file(repo, index, snap, name)?;
    let path = dir.join("copy.db");
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    let mut reader = SnapshotFileReader::new(repo, index, &node);
    io::copy(&mut reader, &mut out)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    Ok(path)
}

fn open_read_only(path: &Path) -> DbResult<lite::Connection> {
    let conn = lite::Connection::open_with_flags(
        path,
        lite::OpenFlags::SQLITE_OPEN_READ_ONLY | lite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DbError(format!("cannot open {}: {e}", path.display())))?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

enum SqlDumpError {
    Db(DbError),
    Io(io::Error),
}

impl From<lite::Error> for SqlDumpError {
    fn from(e: lite::Error) -> Self {
        SqlDumpError::Db(e.into())
    }
}

impl From<io::Error> for SqlDumpError {
    fn from(e: io::Error) -> Self {
        SqlDumpError::Io(e)
    }
}

fn sqlite_literal(v: lite::types::ValueRef) -> String {
    use lite::types::ValueRef;
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) if f.is_infinite() => if f > 0.0 { "1e999" } else { "-1e999" }.into(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            // Text with NULs or carriage returns (which SQL shells drop at line ends) as bytes.
            Ok(s) if !s.contains(['\0', '\r']) => format!("'{}'", s.replace('\'', "''")),
            _ => format!("CAST(X'{}' AS TEXT)", hex::encode(t)),
        },
        ValueRef::Blob(b) => format!("X'{}'", hex::encode(b)),
    }
}

/// The SQL of a SQLite database: its tables with their rows, then indexes, triggers and views,
/// in one transaction.
fn sqlite_sql(conn: &lite::Connection, out: &mut dyn Write) -> Result<(), SqlDumpError> {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    writeln!(out, "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;")?;
    let objects: Vec<(String, String, String)> = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL \
             AND name NOT IN ('sqlite_sequence', 'sqlite_stat1', 'sqlite_stat4') \
             ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'trigger' THEN 2 ELSE 3 END, rowid",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (kind, name, sql) in &objects {
        writeln!(out, "{sql};")?;
        if kind == "table" && !sql.starts_with("CREATE VIRTUAL TABLE") {
            table_inserts(conn, &quote(name), out)?;
        }
    }
    let has_sequence: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE name = 'sqlite_sequence'",
        [],
        |r| r.get(0),
    )?;
    if has_sequence {
        writeln!(out, "DELETE FROM sqlite_sequence;")?;
        table_inserts(conn, "sqlite_sequence", out)?;
    }
    writeln!(out, "COMMIT;")?;
    Ok(())
}

fn table_inserts(
    conn: &lite::Connection,
    quoted: &str,
    out: &mut dyn Write,
) -> Result<(), SqlDumpError> {
    let mut stmt = conn.prepare(&format!("SELECT * FROM {quoted}"))?;
    let n = stmt.column_count();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            values.push(sqlite_literal(row.get_ref(i)?));
        }
        writeln!(out, "INSERT INTO {quoted} VALUES({});", values.join(","))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CSV.

/// A scratch restore of a snapshot, and a read-only session on it.
#[allow(clippy::large_enum_variant)] // one per export
enum Scratch {
    // Fields drop in order: the session before its server.
    Postgres {
        client: pgd::Client,
        _cluster: ScratchCluster,
    },
    Sqlite {
        conn: lite::Connection,
    },
    Mariadb {
        conn: my::Conn,
        _server: ScratchServer,
    },
}

/// A file name for a table: letters, digits, `-` and `_` kept, every other byte as `%XX`
/// (so `schema.table` stays unambiguous and nothing can leave the export).
pub fn table_file_name(parts: &[&str]) -> String {
    let mut name = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            name.push('.');
        }
        for b in part.bytes() {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                name.push(b as char);
            } else {
                name += &format!("%{b:02X}");
            }
        }
    }
    name + ".csv"
}

/// A query as one statement: trailing semicolons and blanks removed.
fn one_statement(sql: &str) -> &str {
    sql.trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

impl Scratch {
    /// Every table, as (file name, query).
    fn tables(&mut self) -> DbResult<Vec<(String, String)>> {
        match self {
            Scratch::Postgres { client, .. } => {
                let rows = client.query(
                    "SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE c.relkind = 'r' AND c.relpersistence <> 't'
                       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
                       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                       AND d.objid = c.oid AND d.deptype = 'e')
                     ORDER BY 1, 2",
                    &[],
                )?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let (schema, table, quoted): (String, String, String) =
                            (r.get(0), r.get(1), r.get(2));
                        (
                            table_file_name(&[&schema, &table]),
                            format!("SELECT * FROM ONLY {quoted}"),
                        )
                    })
                    .collect())
            }
            Scratch::Sqlite { conn } => {
                let names: Vec<String> = conn
                    .prepare(
                        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                         AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
                    )?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(names
                    .iter()
                    .map(|n| {
                        (
                            table_file_name(&[n]),
                            format!("SELECT * FROM \"{}\"", n.replace('"', "\"\"")),
                        )
                    })
                    .collect())
            }
            Scratch::Mariadb { conn, .. } => {
                use my::prelude::Queryable;
                let names: Vec<String> = conn.query(
                    "SELECT table_name FROM information_schema.tables \
                     WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name",
                )?;
                Ok(names
                    .iter()
                    .map(|n| {
                        (
                            table_file_name(&[n]),
                            format!("SELECT * FROM {}", mariadb::quote_ident(n)),
                        )
                    })
                    .collect())
            }
        }
    }

    /// Run `sql` read-only and write its rows (after a header) to `out`. Returns the rows.
    fn query_to_csv<W: Write>(&mut self, sql: &str, out: &mut CsvWriter<W>) -> QueryResult<u64> {
        let sql = one_statement(sql);
        match self {
            Scratch::Postgres { client, .. } => {
                let mut tx = client.build_transaction().read_only(true).start()?;
                let stmt = tx.prepare(sql)?;
                let header: Vec<Option<&str>> =
                    stmt.columns().iter().map(|c| Some(c.name())).collect();
                out.record(&header)?;
                let reader = tx.copy_out(&format!("COPY ({sql}) TO STDOUT"))?;
                let rows = copy_text_to_csv(BufReader::new(reader), out)?;
                tx.rollback()?;
                Ok(rows)
            }
            Scratch::Sqlite { conn } => {
                let tx = conn.unchecked_transaction()?;
                let mut stmt = tx.prepare(sql)?;
                if !stmt.readonly() {
                    return Err(QueryError::Db(DbError::new(
                        "the query writes to the database: exports run read-only queries only",
                    )));
                }
                let header: Vec<Option<String>> = stmt
                    .column_names()
                    .iter()
                    .map(|c| Some(c.to_string()))
                    .collect();
                out.record(&header)?;
                let n = stmt.column_count();
                let mut rows = stmt.query([])?;
                let mut count = 0;
                let mut fields: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
                while let Some(row) = rows.next()? {
                    fields.clear();
                    for i in 0..n {
                        fields.push(sqlite_text(row.get_ref(i)?));
                    }
                    out.record(&fields)?;
                    count += 1;
                }
                drop(rows);
                drop(stmt);
                tx.rollback()?;
                Ok(count)
            }
            Scratch::Mariadb { conn, .. } => {
                use my::prelude::Queryable;
                // Preparing admits one statement only; the rows then come as text.
                let stmt = conn.prep(sql)?;
                let header: Vec<Option<String>> = stmt
                    .columns()
                    .iter()
                    .map(|c| Some(c.name_str().into_owned()))
                    .collect();
                conn.close(stmt)?;
                out.record(&header)?;
                conn.query_drop("START TRANSACTION READ ONLY")?;
                let mut count = 0;
                {
                    let mut result = conn.query_iter(sql)?;
                    let mut fields: Vec<Option<Vec<u8>>> = Vec::new();
                    if let Some(set) = result.iter() {
                        for row in set {
                            let row = row?;
                            fields.clear();
                            for i in 0..row.len() {
                                fields.push(row.as_ref(i).and_then(mariadb_text));
                            }
                            out.record(&fields)?;
                            count += 1;
                        }
                    }
                }
                conn.query_drop("ROLLBACK")?;
                Ok(count)
            }
        }
    }
}

/// Why a query's CSV could not be written: the database refused it, or the output failed.
enum QueryError {
    Db(DbError),
    Io(io::Error),
}

type QueryResult<T> = std::result::Result<T, QueryError>;

impl From<io::Error> for QueryError {
    fn from(e: io::Error) -> Self {
        QueryError::Io(e)
    }
}

impl From<pgd::Error> for QueryError {
    fn from(e: pgd::Error) -> Self {
        // An error of the COPY stream arrives as an io error wrapping the server's.
        QueryError::Db(e.into())
    }
}

impl From<lite::Error> for QueryError {
    fn from(e: lite::Error) -> Self {
        QueryError::Db(e.into())
    }
}

impl From<my::Error> for QueryError {
    fn from(e: my::Error) -> Self {
        QueryError::Db(e.into())
    }
}

fn sqlite_text(v: lite::types::ValueRef) -> Option<Vec<u8>> {
    use lite::types::ValueRef;
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string().into_bytes()),
        ValueRef::Real(f) => Some(format!("{f:?}").into_bytes()),
        ValueRef::Text(t) => Some(t.to_vec()),
        ValueRef::Blob(b) => Some(format!("\\x{}", hex::encode(b)).into_bytes()),
    }
}

fn mariadb_text(v: &my::Value) -> Option<Vec<u8>> {
    match v {
        my::Value::NULL => None,
        my::Value::Bytes(b) => Some(b.clone()),
        other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}

/// PostgreSQL's COPY text format (tab-separated, `\N` for NULL, backslash escapes) to CSV.
fn copy_text_to_csv<W: Write>(mut input: impl BufRead, out: &mut CsvWriter<W>) -> QueryResult<u64> {
    let mut line = Vec::new();
    let mut fields: Vec<Option<Vec<u8>>> = Vec::new();
    let mut rows = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(copy_error)? == 0 {
            return Ok(rows);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        fields.clear();
        for raw in line.split(|&b| b == b'\t') {
            fields.push(if raw == b"\\N" {
                None
            } else {
                Some(unescape_copy_text(raw))
            });
        }
        out.record(&fields)?;
        rows += 1;
    }
}

/// A read error of the COPY stream is usually the server's error (e.g. a read-only violation).
fn copy_error(e: io::Error) -> QueryError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<pgd::Error>())
    {
        Some(pg) => QueryError::Db(DbError(pg::describe_error(pg))),
        None => QueryError::Db(DbError(format!("reading the rows: {e}"))),
    }
}

fn unescape_copy_text(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' || i == raw.len() {
            out.push(b);
            continue;
        }
        let c = raw[i];
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = (c - b'0') as u32;
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let hex_digit = |d: Option<&u8>| (*d? as char).to_digit(16);
                match hex_digit(raw.get(i)) {
                    Some(h) => {
                        i += 1;
                        let mut v = h;
                        if let Some(l) = hex_digit(raw.get(i)) {
                            v = v * 16 + l;
                            i += 1;
                        }
                        out.push(v as u8);
                    }
                    None => out.push(b'x'),
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Restore snapshot `spec` into a scratch target and write its tables, or `selection`'s queries,
/// as CSV files to `sink`.
pub fn export_csv(
    repo: &Repository,
    spec: &str,
    dataset: Option<&str>,
    selection: &CsvSelection,
    scratch_dir: Option<&Path>,
    sink: CsvSink,
) -> Result<DbExportReport> {
    let (id, snap, meta) = find(repo, spec, dataset)?;
    if let CsvSink::Dir(dir) = &sink {
        // Refused before the (long) restore rather than after it.
        refuse_busy_dir(dir)?;
    }
    let work = work_dir(scratch_dir)?;
    let mut scratch = {
        // Held while the snapshot is read: nothing it needs may be pruned meanwhile.
        let _lock = repo.lock(LockKind::Shared)?;
        let index = repo.load_index()?;
        restore_scratch(repo, &index, &snap, &meta, scratch_dir, work.path())?
    };
    let queries = match selection {
        CsvSelection::EveryTable => scratch.tables().map_err(target_failed)?,
        CsvSelection::Queries(q) => q.clone(),
    };
    let mut files = Vec::new();
    let mut sums = String::new();
    let mut emit = |scratch: &mut Scratch, name: &str, sql: &str, out: &mut dyn Write| {
        let file = write_csv(scratch, name, sql, out)?;
        sums += &format!("{}  {name}\n", file.sha256);
        files.push(file);
        Ok::<_, Error>(())
    };
    match sink {
        CsvSink::Dir(dir) => {
            let created_dir = make_export_dir(dir)?;
            // A failed export removes what it wrote (and the directory, if it made it).
            let mut written: Vec<PathBuf> = Vec::new();
            let result = (|| {
                for (name, sql) in &queries {
                    let path = dir.join(name);
                    let mut file = new_private_file(&path)?;
                    written.push(path);
                    emit(&mut scratch, name, sql, &mut file)?;
                }
                Ok(())
            })()
            .and_then(|()| {
                let path = dir.join(SHA256SUMS);
                let mut file = new_private_file(&path)?;
                written.push(path);
                file.write_all(sums.as_bytes()).map_err(writing)
            });
            if let Err(e) = result {
                for path in &written {
                    let _ = fs::remove_file(path);
                }
                if created_dir {
                    let _ = fs::remove_dir(dir);
                }
                return Err(e);
            }
        }
        CsvSink::Tar(out) => {
            let mut tar = tar::Builder::new(out);
            let spool = work.path().join("spool.csv");
            for (name, sql) in &queries {
                let mut file = new_private_file(&spool)?;
                emit(&mut scratch, name, sql, &mut file)?;
                drop(file);
                let mut file = File::open(&spool).map_err(writing)?;
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                h.set_size(file.metadata().map_err(writing)?.len());
                h.set_mtime(snap.time.timestamp().max(0) as u64);
                tar.append_data(&mut h, name, &mut file).map_err(writing)?;
                fs::remove_file(&spool).map_err(writing)?;
            }
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(sums.len() as u64);
            h.set_mtime(snap.time.timestamp().max(0) as u64);
            tar.append_data(&mut h, SHA256SUMS, sums.as_bytes())
                .map_err(writing)?;
            tar.into_inner().and_then(|w| w.flush()).map_err(writing)?;
        }
    }
    let bytes = files.iter().map(|f| f.bytes).sum();
    Ok(DbExportReport {
        snapshot: id.to_hex(),
        dataset: snap.dataset.clone(),
        kind: meta.kind().into(),
        format: DbFormat::Csv,
        files,
        bytes,
        sha256sums: Some(hex::encode(Sha256::digest(sums.as_bytes()))),
    })
}

/// One query's rows as a CSV file written to `out`.
fn write_csv(
    scratch: &mut Scratch,
    name: &str,
    sql: &str,
    out: &mut dyn Write,
) -> Result<ExportedFile> {
    let mut csv = CsvWriter::new(BufWriter::with_capacity(1 << 16, out));
    let rows = scratch.query_to_csv(sql, &mut csv).map_err(|e| match e {
        QueryError::Db(e) => Error::Invalid(format!("{name}: the query failed: {e}")),
        QueryError::Io(e) => writing(e),
    })?;
    let (_, bytes, sha256, _) = csv.finish().map_err(writing)?;
    Ok(ExportedFile {
        name: name.to_string(),
        rows,
        bytes,
        sha256,
    })
}

/// An existing `dir` that holds anything is not written into.
fn refuse_busy_dir(dir: &Path) -> Result<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(Error::Invalid(format!(
                "{} is not empty: export into a new or empty directory",
                dir.display()
            ))),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// Make `dir` (owner-only), or accept it empty. Returns whether it was made.
fn make_export_dir(dir: &Path) -> Result<bool> {
    match fs::read_dir(dir) {
        Ok(_) => refuse_busy_dir(dir).map(|()| false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map(|_| true)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e)),
        Err(e) => Err(Error::io(format!("cannot read {}", dir.display()), e)),
    }
}

fn new_private_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))
}

/// Restore the snapshot into a scratch target below `work` and open a session on it, having
/// checked the restore against the backup's fingerprint.
fn restore_scratch(
    repo: &Repository,
    index: &bulwark_repo::MasterIndex,
    snap: &bulwark_repo::Snapshot,
    meta: &DbMeta,
    scratch_dir: Option<&Path>,
    work: &Path,
) -> Result<Scratch> {
    let differs = |d: Vec<String>| {
        Error::corrupt(
            "the scratch restore",
            format!("it differs from the backup: {}", d.join("; ")),
        )
    };
    match meta {
        DbMeta::Postgres(f) => {
            let tools = PgTools::locate();
            let (version, major) = tools.version("postgres").map_err(target_failed)?;
            if major < f.major {
                return Err(Error::Invalid(format!(
                    "the local PostgreSQL programs are {version}, older than the backup's {}: set \
                     BULWARK_PG_BINDIR to a PostgreSQL {} (or newer) bin directory",
                    f.server_version, f.major
                )));
            }
            // In the scratch directory itself: the cluster's account cannot enter `work`.
            let cluster = match scratch_dir {
                Some(dir) => ScratchCluster::start_in(&tools, Some(dir)),
                None => ScratchCluster::start(&tools),
            }
            .map_err(target_failed)?;
            let mut admin = cluster.connect("postgres").map_err(target_failed)?;
            // Owners and grantees as NOLOGIN roles: the backup's globals (passwords) stay out.
            let missing = pg::missing_roles(&mut admin, &f.roles).map_err(target_failed)?;
            pg::create_roles(&mut admin, &missing).map_err(target_failed)?;
            pg::create_database(&mut admin, &f.database, f).map_err(target_failed)?;
            let node = snapshot_file(repo, index, snap, &f.dump_file)?;
            let mut reader = SnapshotFileReader::new(repo, index, &node);
            let log = cluster.root().join("restore.log");
            pg::psql(&tools, &cluster.dsn(&f.database), &mut reader, &log, true)
                .map_err(|e| Error::Target(format!("restoring into the scratch cluster: {e}")))?;
            let diffs = pg::verify(&cluster.dsn(&f.database), f).map_err(target_failed)?;
            if !diffs.is_empty() {
                return Err(differs(diffs));
            }
            let mut client = cluster.connect(&f.database).map_err(target_failed)?;
            client
                .batch_execute(
                    "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; \
                     SET bytea_output = 'hex'",
                )
                .map_err(|e| target_failed(e.into()))?;
            Ok(Scratch::Postgres {
                _cluster: cluster,
                client,
            })
        }
        DbMeta::Sqlite(f) => {
            let path = fetch_sqlite(repo, index, snap, &f.file, work)?;
            let conn = open_read_only(&path).map_err(target_failed)?;
            let diffs = bulwark_source::db::compare(
                &f.tables,
                &sqlite::fingerprint(&conn).map_err(target_failed)?,
            );
            if !diffs.is_empty() {
                return Err(differs(diffs));
            }
            Ok(Scratch::Sqlite { conn })
        }
        DbMeta::Mariadb(f) => {
            let tools = MariadbTools::locate();
            let server =
                ScratchServer::start(&tools, f.lower_case_table_names).map_err(target_failed)?;
            let mut admin = server.connect("").map_err(target_failed)?;
            let (problems, _) = mariadb::compatibility(&mut admin, f).map_err(target_failed)?;
            if !problems.is_empty() {
                return Err(Error::Invalid(format!(
                    "the local MariaDB server cannot restore this backup: {}",
                    problems.join("; ")
                )));
            }
            mariadb::create_database(&mut admin, &f.database, f).map_err(target_failed)?;
            let missing =
                mariadb::missing_accounts(&mut admin, &f.definers).map_err(target_failed)?;
            mariadb::create_definers(&mut admin, &missing, &f.database).map_err(target_failed)?;
            let node = snapshot_file(repo, index, snap, &f.dump_file)?;
            let mut reader = SnapshotFileReader::new(repo, index, &node);
            let log = server.root().join("restore.log");
            mariadb::run_client(&tools, &server.dsn(&f.database), &mut reader, &log)
                .map_err(|e| Error::Target(format!("restoring into the scratch server: {e}")))?;
            let mut conn = server.connect(&f.database).map_err(target_failed)?;
            let diffs = mariadb::verify(&mut conn, &f.database, f).map_err(target_failed)?;
            if !diffs.is_empty() {
                return Err(differs(diffs));
            }
            use my::prelude::Queryable;
            conn.query_drop("SET time_zone = '+00:00'")
                .and_then(|_| conn.query_drop("SET SESSION TRANSACTION READ ONLY"))
                .map_err(|e| target_failed(e.into()))?;
            Ok(Scratch::Mariadb {
                _server: server,
                conn,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_unescapes() {
        assert_eq!(
            unescape_copy_text(b"a\\tb\\nc\\\\d\\r\\101\\x41z"),
            b"a\tb\nc\\d\rAAz"
        );
        let mut csv = CsvWriter::new(Vec::new());
        let rows = copy_text_to_csv(&b"1\t\\N\tx,y\n2\t\t\"q\"\n"[..], &mut csv)
            .ok()
            .unwrap();
        assert_eq!(rows, 2);
        let (out, ..) = csv.finish().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"1\",,\"x,y\"\r\n\"2\",\"\",\"\"\"q\"\"\"\r\n"
        );
    }

    #[test]
    fn table_names_stay_plain_files() {
        assert_eq!(table_file_name(&["public", "orders"]), "public.orders.csv");
        assert_eq!(
            table_file_name(&["Billing", "Invoice Lines/../x"]),
            "Billing.Invoice%20Lines%2F%2E%2E%2Fx.csv"
        );
        assert_eq!(one_statement(" SELECT 1 ;; \n"), "SELECT 1");
    }
}
