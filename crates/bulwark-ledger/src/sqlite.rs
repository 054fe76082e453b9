//! The embedded backend: one SQLite file (WAL mode), appends serialized by BEGIN IMMEDIATE.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{
    Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter,
};

use crate::core::{self, ItemRow, Prepared, Store};
use crate::error::{Error, Result};
use crate::event::{Event, GENESIS, NewEvent, event_from_hashed};
use crate::filter::{EventFilter, Param, where_clause};
use crate::remediation::{Closure, Remediation};
use crate::verify::{Anchor, Columns, RawRow, Verifier, VerifyReport};
use crate::{Ledger, Options, SCHEMA_VERSION};

/// How long a writer waits for another process's append before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ledger_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    prev_hash   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    dataset     TEXT,
    repository  TEXT,
    config_hash TEXT,
    host        TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    started     TEXT NOT NULL,
    finished    TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    summary     TEXT NOT NULL,
    details     TEXT NOT NULL,
    canonical   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_events_kind_dataset ON ledger_events (kind, dataset, seq);
CREATE INDEX IF NOT EXISTS ledger_events_dataset_started ON ledger_events (dataset, started);
CREATE TABLE IF NOT EXISTS ledger_head (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_remediations (
    id               TEXT PRIMARY KEY,
    seq              INTEGER NOT NULL,
    dataset          TEXT NOT NULL,
    reason           TEXT NOT NULL,
    event_id         TEXT,
    opened_at        TEXT NOT NULL,
    closed_by        TEXT,
    closed_seq       INTEGER,
    closed_at        TEXT,
    closing_event_id TEXT,
    note             TEXT
);
CREATE TRIGGER IF NOT EXISTS ledger_events_append_only_update BEFORE UPDATE ON ledger_events
BEGIN
    SELECT RAISE(ABORT, 'the bulwark ledger is append-only');
END;
CREATE TRIGGER IF NOT EXISTS ledger_events_append_only_delete BEFORE DELETE ON ledger_events
BEGIN
    SELECT RAISE(ABORT, 'the bulwark ledger is append-only');
END;
"#;

const EVENT_COLUMNS: &str = "seq, id, prev_hash, kind, dataset, repository, config_hash, host, recorded_at, started, finished, ok, summary, details, canonical";

const ITEM_COLUMNS: &str = "id, seq, dataset, reason, event_id, opened_at, closed_by, closed_seq, closed_at, closing_event_id, note";

/// A ledger in a SQLite file.
pub struct SqliteLedger {
    conn: Connection,
    path: PathBuf,
    host: String,
}

impl SqliteLedger {
    /// Opens the ledger file at `path`, creating it (and its tables) if there is none. A new ledger
    /// file is created owner-only, and SQLite gives its `-wal`, `-shm` and journal files the
    /// database file's mode.
    pub fn open(path: impl AsRef<Path>, options: &Options) -> Result<SqliteLedger> {
        let path = path.as_ref().to_path_buf();
        create_owner_only(&path);
        let conn = Connection::open(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        retry_busy(|| SqliteLedger::prepare(&conn, &path))?;
        Ok(SqliteLedger {
            conn,
            path,
            host: options.host.clone(),
        })
    }

    /// Opens the ledger file at `path`, which must exist: a ledger that went missing is an
    /// error, never silently replaced by an empty one.
    pub fn open_existing(path: impl AsRef<Path>, options: &Options) -> Result<SqliteLedger> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(Error::Missing(path.display().to_string()));
        }
        SqliteLedger::open(path, options)
    }

    /// WAL mode and the schema (both idempotent, so retried as a whole when busy).
    fn prepare(conn: &Connection, path: &Path) -> Result<()> {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
                return Err(Error::Invalid(format!(
                    "{}: cannot use WAL mode (got {mode})",
                    path.display()
                )));
            }
        }
        // Evidence must survive a power cut once append returns.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        tx.execute(
            "INSERT INTO ledger_head (one, seq, hash) SELECT 1, 0, ?1
             WHERE NOT EXISTS (SELECT 1 FROM ledger_head) AND NOT EXISTS (SELECT 1 FROM ledger_events)",
            [GENESIS],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('schema', ?1)",
            [SCHEMA_VERSION],
        )?;
        let found: String = tx.query_row(
            "SELECT value FROM ledger_meta WHERE key = 'schema'",
            [],
            |r| r.get(0),
        )?;
        if found != SCHEMA_VERSION {
            return Err(Error::Schema {
                found,
                expected: SCHEMA_VERSION.into(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a write transaction (BEGIN IMMEDIATE: one writer at a time across processes).
    fn write<T>(&mut self, f: impl FnOnce(&mut dyn Store, &str) -> Result<T>) -> Result<T> {
        let conn = &self.conn;
        let tx = retry_busy(|| {
            Ok(Transaction::new_unchecked(
                conn,
                TransactionBehavior::Immediate,
            )?)
        })?;
        let mut store = SqliteStore { tx: &tx };
        let out = f(&mut store, &self.host)?;
        tx.commit()?;
        Ok(out)
    }

    fn raw_rows(conn: &Connection, mut each: impl FnMut(RawRow)) -> Result<()> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM ledger_events ORDER BY seq"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let ok: i64 = r.get(11)?;
            each(RawRow {
                seq: r.get(0)?,
                id: r.get(1)?,
                canonical: r.get(14)?,
                columns: Some(Columns {
                    prev_hash: r.get(2)?,
                    kind: r.get(3)?,
                    dataset: r.get(4)?,
                    repository: r.get(5)?,
                    config_hash: r.get(6)?,
                    host: r.get(7)?,
                    recorded_at: r.get(8)?,
                    started: r.get(9)?,
                    finished: r.get(10)?,
                    // Anything but 0 and 1 is not what append wrote.
                    ok: match ok {
                        0 => Some(false),
                        1 => Some(true),
                        _ => None,
                    },
                    summary: r.get(12)?,
                    details: r.get(13)?,
                }),
                line: None,
            });
        }
        Ok(())
    }

    fn head_record(conn: &Connection) -> Result<Option<Anchor>> {
        Ok(conn
            .query_row("SELECT seq, hash FROM ledger_head WHERE one = 1", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .optional()?
            .map(|(seq, id)| Anchor {
                seq: seq.max(0) as u64,
                id,
            }))
    }

    fn item_rows(conn: &Connection, open_only: bool) -> Result<Vec<ItemRow>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM ledger_remediations{} ORDER BY seq",
            if open_only {
                " WHERE closed_by IS NULL"
            } else {
                ""
            }
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], item_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ItemRow> {
    Ok(ItemRow {
        id: r.get(0)?,
        seq: r.get(1)?,
        dataset: r.get(2)?,
        reason: r.get(3)?,
        event_id: r.get(4)?,
        opened_at: r.get(5)?,
        closed_by: r.get(6)?,
        closed_seq: r.get(7)?,
        closed_at: r.get(8)?,
        closing_event_id: r.get(9)?,
        note: r.get(10)?,
    })
}

/// Create the ledger file, mode 0600, unless it exists (an empty file is a new database to
/// SQLite). Others sharing a ledger on purpose set its mode themselves. When the file cannot
/// be made (a missing folder, say), opening it fails next and SQLite says why.
fn create_owner_only(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

fn is_busy(e: &Error) -> bool {
    matches!(e, Error::Sqlite(e) if matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    ))
}

/// Runs `f` again while SQLite reports the database busy in ways its busy handler does not
/// cover (changing the journal mode, WAL recovery by another connection), up to [`BUSY_TIMEOUT`].
fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match f() {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => return other,
        }
    }
}

fn to_sql(p: &Param) -> rusqlite::types::Value {
    match p {
        Param::Text(s) => rusqlite::types::Value::Text(s.clone()),
        Param::Int(i) => rusqlite::types::Value::Integer(*i),
        Param::Bool(b) => rusqlite::types::Value::Integer(i64::from(*b)),
    }
}

/// The connection, inside BEGIN IMMEDIATE.
struct SqliteStore<'a> {
    tx: &'a Connection,
}

impl Store for SqliteStore<'_> {
    fn lock_head(&mut self) -> Result<Option<Anchor>> {
        // BEGIN IMMEDIATE already holds the database's write lock.
        SqliteLedger::head_record(self.tx)
    }

    fn last_row(&mut self) -> Result<Option<Anchor>> {
        Ok(self
            .tx
            .query_row(
                "SELECT seq, id FROM ledger_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?
            .map(|(seq, id)| Anchor {
                seq: seq.max(0) as u64,
                id,
            }))
    }

    fn id_at(&mut self, seq: u64) -> Result<Option<String>> {
        Ok(self
            .tx
            .query_row(
                "SELECT id FROM ledger_events WHERE seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn event_exists(&mut self, id: &str) -> Result<bool> {
        Ok(self
            .tx
            .query_row(
                "SELECT 1 FROM ledger_events WHERE id = ?1",
                [id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn insert(&mut self, p: &Prepared) -> Result<()> {
        let c = &p.columns;
        self.tx.execute(
            &format!("INSERT INTO ledger_events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
            params![
                p.event.seq as i64,
                p.event.id,
                c.prev_hash,
                c.kind,
                c.dataset,
                c.repository,
                c.config_hash,
                c.host,
                c.recorded_at,
                c.started,
                c.finished,
                p.event.ok,
                c.summary,
                c.details,
                p.canonical
            ],
        )?;
        Ok(())
    }

    fn set_head(&mut self, head: &Anchor) -> Result<()> {
        self.tx.execute(
            "UPDATE ledger_head SET seq = ?1, hash = ?2 WHERE one = 1",
            params![head.seq as i64, head.id],
        )?;
        Ok(())
    }

    fn remediation(&mut self, id: &str) -> Result<Option<Remediation>> {
        self.tx
            .query_row(
                &format!("SELECT {ITEM_COLUMNS} FROM ledger_remediations WHERE id = ?1"),
                [id],
                item_row,
            )
            .optional()?
            .map(ItemRow::into_item)
            .transpose()
    }

    fn open_item(&mut self, item: &Remediation) -> Result<()> {
        let r = ItemRow::of(item);
        self.tx.execute(
            "INSERT INTO ledger_remediations (id, seq, dataset, reason, event_id, opened_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![r.id, r.seq, r.dataset, r.reason, r.event_id, r.opened_at],
        )?;
        Ok(())
    }

    fn close_item(&mut self, id: &str, closure: &Closure) -> Result<()> {
        let n = self.tx.execute(
            "UPDATE ledger_remediations SET closed_by = ?2, closed_seq = ?3, closed_at = ?4, closing_event_id = ?5, note = ?6
             WHERE id = ?1 AND closed_by IS NULL",
            params![
                id,
                closure.id,
                closure.seq as i64,
                crate::event::format_time(&closure.closed_at),
                closure.closing_event_id,
                closure.note
            ],
        )?;
        if n != 1 {
            return Err(Error::RemediationClosed(id.to_string()));
        }
        Ok(())
    }
}

impl Ledger for SqliteLedger {
    fn append(&mut self, event: NewEvent) -> Result<Event> {
        self.write(|s, host| core::append(s, event, host))
    }

    fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let (clause, params) = where_clause(filter, |n| format!("?{n}"));
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT id, canonical FROM ledger_events{clause}"))?;
        let rows = stmt.query_map(params_from_iter(params.iter().map(to_sql)), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, canonical) = row?;
            out.push(event_from_hashed(&canonical, &id)?);
        }
        Ok(out)
    }

    fn get(&self, id: &str) -> Result<Option<Event>> {
        self.conn
            .query_row(
                "SELECT id, canonical FROM ledger_events WHERE id = ?1",
                [id],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?
            .map(|(id, canonical)| event_from_hashed(&canonical, &id))
            .transpose()
    }

    fn head(&self) -> Result<Anchor> {
        SqliteLedger::head_record(&self.conn)?
            .ok_or_else(|| Error::Damaged("the head record is missing".into()))
    }

    fn verify(&self) -> Result<VerifyReport> {
        // One read transaction: a consistent snapshot even while others append.
        let tx = self.conn.unchecked_transaction()?;
        let mut verifier = Verifier::new();
        SqliteLedger::raw_rows(&tx, |row| verifier.push(row))?;
        let head = SqliteLedger::head_record(&tx)?;
        let items = SqliteLedger::item_rows(&tx, false)?
            .into_iter()
            .map(ItemRow::into_item)
            .collect::<Result<Vec<_>>>();
        tx.finish()?;
        Ok(crate::finish_verify(verifier, head, items))
    }

    fn open_remediation(
        &mut self,
        dataset: &str,
        reason: &str,
        event_id: Option<&str>,
    ) -> Result<Remediation> {
        self.write(|s, host| core::open_remediation(s, host, dataset, reason, event_id))
    }

    fn close_remediation(
        &mut self,
        id: &str,
        closing_event_id: Option<&str>,
        note: &str,
    ) -> Result<Remediation> {
        self.write(|s, host| core::close_remediation(s, host, id, closing_event_id, note))
    }

    fn remediations(&self, open_only: bool) -> Result<Vec<Remediation>> {
        SqliteLedger::item_rows(&self.conn, open_only)?
            .into_iter()
            .map(ItemRow::into_item)
            .collect()
    }

    fn export_jsonl(&self) -> Result<Vec<u8>> {
        let tx = self.conn.unchecked_transaction()?;
        let mut stmt = tx.prepare("SELECT id, canonical FROM ledger_events ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let canonical: String = r.get(1)?;
            crate::export_line(&mut out, &id, &canonical)?;
        }
        drop(rows);
        drop(stmt);
        tx.finish()?;
        Ok(out)
    }

    fn import_jsonl(&mut self, bytes: &[u8]) -> Result<u64> {
        self.write(|s, _| core::import(s, bytes))
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}
