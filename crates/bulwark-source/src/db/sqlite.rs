//! SQLite: a consistent copy of a live database through the online backup API (all pages in one
//! step, inside one read transaction, so a concurrent writer can neither tear it nor make it start
//! over), fingerprinted on the copy itself: what is recorded is exactly what is stored.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use ::rusqlite as driver;
use ::rusqlite::backup::{Backup, StepResult};
use ::rusqlite::types::ValueRef;
use ::rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use super::{DbError, DbResult, Fingerprint, TableFingerprint, truthy};

/// What a SQLite backup records.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SqliteFacts {
    /// The database's path at backup time.
    pub source: String,
    /// The copy's file name in the snapshot.
    pub file: String,
    pub sqlite_version: String,
    pub page_size: u64,
    pub page_count: u64,
    pub bytes: u64,
    pub journal_mode: String,
    pub user_version: i64,
    pub application_id: i64,
    /// `PRAGMA quick_check` of the copy: "ok" or the problems found.
    pub quick_check: String,
    pub tables: Fingerprint,
}

/// A consistent copy in a temporary directory (removed on drop), and its facts.
pub struct SqliteCopy {
    pub facts: SqliteFacts,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

const BUSY_LIMIT: Duration = Duration::from_secs(120);

/// Copy the live database at `source` with the online backup API and fingerprint the copy.
pub fn consistent_copy(source: &Path) -> DbResult<SqliteCopy> {
    let meta = std::fs::metadata(source)
        .map_err(|e| DbError(format!("cannot back up {}: {e}", source.display())))?;
    if !meta.is_file() {
        return Err(DbError(format!("{} is not a file", source.display())));
    }
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DbError(format!("cannot open {}: {e}", source.display())))?;
    src.busy_timeout(BUSY_LIMIT)?;
    let journal_mode: String = src
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| {
            DbError(format!(
                "{} is not a readable SQLite database: {e}",
                source.display()
            ))
        })?;
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "database.db".into());
    let dir = tempfile::Builder::new()
        .prefix("bulwark-sqlite-")
        .tempdir()
        .map_err(|e| DbError(format!("cannot create a temporary directory: {e}")))?;
    let path = dir.path().join(&name);
    let mut dst = Connection::open(&path)?;
    {
        let backup = Backup::new(&src, &mut dst)?;
        let started = Instant::now();
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    if started.elapsed() > BUSY_LIMIT {
                        return Err(DbError(format!(
                            "{} stayed locked by a writer for {}s: no consistent copy could be taken",
                            source.display(),
                            BUSY_LIMIT.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return Err(DbError(format!("sqlite backup step: {other:?}"))),
            }
        }
    }
    drop(src);
    let quick_check = integrity(&dst, true)?;
    if quick_check != "ok" {
        tracing::warn!("{} fails quick_check: {quick_check}", source.display());
    }
    let tables = fingerprint(&dst)?;
    let pragma =
        |p: &str| -> DbResult<i64> { Ok(dst.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))?) };
    let page_size = pragma("page_size")? as u64;
    let page_count = pragma("page_count")? as u64;
    let facts = SqliteFacts {
        source: std::path::absolute(source)
            .unwrap_or(source.to_path_buf())
            .display()
            .to_string(),
        file: name,
        sqlite_version: ::rusqlite::version().to_string(),
        page_size,
        page_count,
        bytes: page_size * page_count,
        journal_mode,
        user_version: pragma("user_version")?,
        application_id: pragma("application_id")?,
        quick_check,
        tables,
    };
    dst.close().map_err(|(_, e)| DbError::from(e))?;
    Ok(SqliteCopy {
        facts,
        path,
        _dir: dir,
    })
}

pub fn open(path: &Path) -> DbResult<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| DbError(format!("cannot open {}: {e}", path.display())))?;
    c.busy_timeout(BUSY_LIMIT)?;
    Ok(c)
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Every table's row count and an order-independent checksum of its rows (the wrapping sum of the
/// first 64 bits of each row's BLAKE3 over a typed encoding of its values).
pub fn fingerprint(conn: &Connection) -> DbResult<Fingerprint> {
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Fingerprint::new();
    for name in names {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {}", quote_ident(&name)))?;
        let ncols = stmt.column_count();
        let mut rows = stmt.query([])?;
        let (mut count, mut sum) = (0u64, 0u64);
        while let Some(r) = rows.next()? {
            let mut h = blake3::Hasher::new();
            for i in 0..ncols {
                match r.get_ref(i)? {
                    ValueRef::Null => h.update(&[0]),
                    ValueRef::Integer(v) => h.update(&[1]).update(&v.to_le_bytes()),
                    ValueRef::Real(f) => h.update(&[2]).update(&f.to_bits().to_le_bytes()),
                    ValueRef::Text(t) => h
                        .update(&[3])
                        .update(&(t.len() as u64).to_le_bytes())
                        .update(t),
                    ValueRef::Blob(b) => h
                        .update(&[4])
                        .update(&(b.len() as u64).to_le_bytes())
                        .update(b),
                };
            }
            let digest = h.finalize();
            let first: [u8; 8] = digest.as_bytes()[..8].try_into().expect("8 bytes");
            sum = sum.wrapping_add(u64::from_le_bytes(first));
            count += 1;
        }
        out.insert(
            name,
            TableFingerprint {
                rows: count,
                checksum: Some(format!("{sum:016x}")),
            },
        );
    }
    Ok(out)
}

/// `PRAGMA integrity_check` (or `quick_check`): "ok", or the problems found joined by "; ".
pub fn integrity(conn: &Connection, quick: bool) -> DbResult<String> {
    let pragma = if quick {
        "PRAGMA quick_check(20)"
    } else {
        "PRAGMA integrity_check(20)"
    };
    let lines: Vec<String> = conn
        .prepare(pragma)?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(lines.join("; "))
}

/// Run an assertion: its first row's first column must be true.
pub fn assertion(conn: &Connection, sql: &str) -> DbResult<(bool, String)> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let Some(row) = rows.next()? else {
        return Ok((false, "returned no rows".into()));
    };
    let (ok, shown) = match row.get_ref(0)? {
        ValueRef::Null => (false, "NULL".to_string()),
        ValueRef::Integer(i) => (i != 0, i.to_string()),
        ValueRef::Real(f) => (f != 0.0, f.to_string()),
        ValueRef::Text(t) => {
            let t = String::from_utf8_lossy(t).into_owned();
            (truthy(&t), t)
        }
        ValueRef::Blob(_) => (false, "a blob".to_string()),
    };
    Ok((
        ok,
        if ok {
            format!("returned {shown}")
        } else {
            format!("returned {shown}, not true")
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_and_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB, r REAL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO t SELECT i, 'row ' || i, randomblob(8), i / 3.0 FROM n;
             CREATE TABLE \"odd \"\"name\" (x);",
        )
        .unwrap();
        let copy = consistent_copy(&db).unwrap();
        assert_eq!(copy.facts.tables["t"].rows, 1000);
        assert_eq!(copy.facts.tables["odd \"name"].rows, 0);
        assert_eq!(copy.facts.quick_check, "ok");
        assert_eq!(copy.facts.journal_mode, "wal");
        let again = fingerprint(&open(&copy.path).unwrap()).unwrap();
        assert_eq!(again, copy.facts.tables);
        c.execute("UPDATE t SET v = 'changed' WHERE id = 500", [])
            .unwrap();
        let live = fingerprint(&c).unwrap();
        assert_eq!(live["t"].rows, 1000);
        assert_ne!(live["t"].checksum, copy.facts.tables["t"].checksum);
        assert!(assertion(&c, "SELECT count(*) = 1000 FROM t").unwrap().0);
        assert!(!assertion(&c, "SELECT count(*) > 1000 FROM t").unwrap().0);
        assert!(consistent_copy(&dir.path().join("missing.db")).is_err());
        std::fs::write(dir.path().join("junk.db"), vec![7u8; 4096]).unwrap();
        let err = consistent_copy(&dir.path().join("junk.db"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a"), "{err}");
    }
}
