//! The shared backend for several hosts: PostgreSQL. Appends serialize on the head row
//! (`SELECT ... FOR UPDATE` in the appending transaction).
//!
//! A connection the server dropped (a restart, a failover) is opened again, retrying for up to
//! [`RECONNECT_FOR`], and the statement that failed runs once more, so a server restart costs no
//! event. An append whose commit may have landed just before the connection broke is looked for
//! first, so it is never recorded twice.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Row};

use crate::core::{self, ItemRow, Prepared, Store};
use crate::error::{Error, Result};
use crate::event::{Event, GENESIS, NewEvent, event_from_hashed};
use crate::filter::{EventFilter, Param, where_clause};
use crate::remediation::{Closure, Remediation};
use crate::verify::{Anchor, Columns, RawRow, Verifier, VerifyReport};
use crate::{Ledger, Options, SCHEMA_VERSION};

/// How long a lost connection is retried before the call fails.
pub const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// Serializes schema creation between hosts opening a new database at once ("BULWARK1").
const SCHEMA_LOCK: i64 = 0x4255_4c57_4152_4b31;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ledger_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_events (
    seq         BIGINT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    prev_hash   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    dataset     TEXT,
    repository  TEXT,
    config_hash TEXT,
    host        TEXT NOT NULL,
    recorded_at TEXT COLLATE "C" NOT NULL,
    started     TEXT COLLATE "C" NOT NULL,
    finished    TEXT COLLATE "C" NOT NULL,
    ok          BOOLEAN NOT NULL,
    summary     TEXT NOT NULL,
    details     TEXT NOT NULL,
    canonical   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_events_kind_dataset ON ledger_events (kind, dataset, seq);
CREATE INDEX IF NOT EXISTS ledger_events_dataset_started ON ledger_events (dataset, started);
CREATE TABLE IF NOT EXISTS ledger_head (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_remediations (
    id               TEXT PRIMARY KEY,
    seq              BIGINT NOT NULL,
    dataset          TEXT NOT NULL,
    reason           TEXT NOT NULL,
    event_id         TEXT,
    opened_at        TEXT NOT NULL,
    closed_by        TEXT,
    closed_seq       BIGINT,
    closed_at        TEXT,
    closing_event_id TEXT,
    note             TEXT
);
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the bulwark ledger is append-only';
END
$$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                   WHERE tgname = 'ledger_events_append_only' AND tgrelid = 'ledger_events'::regclass) THEN
        CREATE TRIGGER ledger_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_events
            FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
    END IF;
END
$$;
"#;

const EVENT_COLUMNS: &str = "seq, id, prev_hash, kind, dataset, repository, config_hash, host, recorded_at, started, finished, ok, summary, details, canonical";

const ITEM_COLUMNS: &str = "id, seq, dataset, reason, event_id, opened_at, closed_by, closed_seq, closed_at, closing_event_id, note";

/// A ledger in a PostgreSQL database (its tables live in the connection's search_path).
pub struct PgLedger {
    client: Mutex<Client>,
    url: String,
    location: String,
    host: String,
}

/// Whether an error means the connection is gone (rather than a refused statement).
fn connection_lost(e: &Error, client: &Client) -> bool {
    client.is_closed() || matches!(e, Error::Postgres(p) if p.is_closed())
}

impl PgLedger {
    /// Connects with a libpq-style URL or key=value string (no TLS), creating the tables if the
    /// database has none.
    pub fn connect(url: &str, options: &Options) -> Result<PgLedger> {
        let mut client = Client::connect(url, NoTls)?;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
        tx.batch_execute(SCHEMA)?;
        tx.execute(
            "INSERT INTO ledger_head (one, seq, hash) SELECT 1, 0, $1::text
             WHERE NOT EXISTS (SELECT 1 FROM ledger_head) AND NOT EXISTS (SELECT 1 FROM ledger_events)",
            &[&GENESIS],
        )?;
        tx.execute(
            "INSERT INTO ledger_meta (key, value) VALUES ('schema', $1::text) ON CONFLICT (key) DO NOTHING",
            &[&SCHEMA_VERSION],
        )?;
        let found: String = tx
            .query_one("SELECT value FROM ledger_meta WHERE key = 'schema'", &[])?
            .get(0);
        if found != SCHEMA_VERSION {
            return Err(Error::Schema {
                found,
                expected: SCHEMA_VERSION.into(),
            });
        }
        tx.commit()?;
        Ok(PgLedger {
            client: Mutex::new(client),
            url: url.to_string(),
            location: redact(url),
            host: options.host.clone(),
        })
    }

    /// A new connection in place of a lost one, retried with backoff for [`RECONNECT_FOR`].
    fn reconnect(url: &str, client: &mut Client) -> Result<()> {
        let deadline = Instant::now() + RECONNECT_FOR;
        let mut wait = Duration::from_millis(100);
        loop {
            match Client::connect(url, NoTls) {
                Ok(c) => {
                    *client = c;
                    return Ok(());
                }
                Err(e) if Instant::now() + wait > deadline => return Err(e.into()),
                Err(_) => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Run `f` on the connection; when the connection turns out to be lost, open a new one and
    /// run `f` once more.
    fn with_client<T>(&self, mut f: impl FnMut(&mut Client) -> Result<T>) -> Result<T> {
        let mut client = self
            .client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::retrying(&self.url, &mut client, &mut f)
    }

    fn retrying<T>(
        url: &str,
        client: &mut Client,
        f: &mut impl FnMut(&mut Client) -> Result<T>,
    ) -> Result<T> {
        if client.is_closed() {
            Self::reconnect(url, client)?;
        }
        match f(client) {
            Err(e) if connection_lost(&e, client) => {
                Self::reconnect(url, client)?;
                f(client)
            }
            other => other,
        }
    }

    fn write<T>(&mut self, f: impl Fn(&mut dyn Store, &str) -> Result<T>) -> Result<T> {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let host = &self.host;
        Self::retrying(&self.url, client, &mut |client: &mut Client| {
            let mut tx = client.transaction()?;
            let mut store = PgStore { tx: &mut tx };
            let out = f(&mut store, host)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// A read-only snapshot transaction, for reads that must be consistent across statements.
    fn snapshot<T>(&self, f: impl Fn(&mut postgres::Transaction<'_>) -> Result<T>) -> Result<T> {
        self.with_client(|client| {
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    /// The newest event, read fresh.
    fn newest(&self) -> Result<Option<Event>> {
        self.with_client(|c| {
            c.query_opt(
                "SELECT id, canonical FROM ledger_events ORDER BY seq DESC LIMIT 1",
                &[],
            )?
            .map(|r| event_from_hashed(r.get::<_, &str>(1), r.get::<_, &str>(0)))
            .transpose()
        })
    }
}

/// The URL with its password hidden.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // key=value form.
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, hostpart)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{hostpart}{tail}")
        }
        None => url.to_string(),
    }
}

fn head_record(c: &mut impl GenericClient, lock: bool) -> Result<Option<Anchor>> {
    let sql = if lock {
        "SELECT seq, hash FROM ledger_head WHERE one = 1 FOR UPDATE"
    } else {
        "SELECT seq, hash FROM ledger_head WHERE one = 1"
    };
    Ok(c.query_opt(sql, &[])?.map(|r| Anchor {
        seq: r.get::<_, i64>(0).max(0) as u64,
        id: r.get(1),
    }))
}

fn item_row(r: &Row) -> ItemRow {
    ItemRow {
        id: r.get(0),
        seq: r.get(1),
        dataset: r.get(2),
        reason: r.get(3),
        event_id: r.get(4),
        opened_at: r.get(5),
        closed_by: r.get(6),
        closed_seq: r.get(7),
        closed_at: r.get(8),
        closing_event_id: r.get(9),
        note: r.get(10),
    }
}

fn item_rows(c: &mut impl GenericClient, open_only: bool) -> Result<Vec<ItemRow>> {
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM ledger_remediations{} ORDER BY seq",
        if open_only {
            " WHERE closed_by IS NULL"
        } else {
            ""
        }
    );
    Ok(c.query(sql.as_str(), &[])?.iter().map(item_row).collect())
}

fn to_sql(p: &Param) -> Box<dyn ToSql + Sync> {
    match p {
        Param::Text(s) => Box::new(s.clone()),
        Param::Int(i) => Box::new(*i),
        Param::Bool(b) => Box::new(*b),
    }
}

const NO_PARAMS: [&(dyn ToSql + Sync); 0] = [];

struct PgStore<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
}

impl Store for PgStore<'_, '_> {
    fn lock_head(&mut self) -> Result<Option<Anchor>> {
        head_record(self.tx, true)
    }

    fn last_row(&mut self) -> Result<Option<Anchor>> {
        Ok(self
            .tx
            .query_opt(
                "SELECT seq, id FROM ledger_events ORDER BY seq DESC LIMIT 1",
                &[],
            )?
            .map(|r| Anchor {
                seq: r.get::<_, i64>(0).max(0) as u64,
                id: r.get(1),
            }))
    }

    fn id_at(&mut self, seq: u64) -> Result<Option<String>> {
        Ok(self
            .tx
            .query_opt(
                "SELECT id FROM ledger_events WHERE seq = $1",
                &[&(seq as i64)],
            )?
            .map(|r| r.get(0)))
    }

    fn event_exists(&mut self, id: &str) -> Result<bool> {
        Ok(self
            .tx
            .query_opt("SELECT 1 FROM ledger_events WHERE id = $1", &[&id])?
            .is_some())
    }

    fn insert(&mut self, p: &Prepared) -> Result<()> {
        let c = &p.columns;
        self.tx.execute(
            format!(
                "INSERT INTO ledger_events ({EVENT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            )
            .as_str(),
            &[
                &(p.event.seq as i64),
                &p.event.id,
                &c.prev_hash,
                &c.kind,
                &c.dataset,
                &c.repository,
                &c.config_hash,
                &c.host,
                &c.recorded_at,
                &c.started,
                &c.finished,
                &p.event.ok,
                &c.summary,
                &c.details,
                &p.canonical,
            ],
        )?;
        Ok(())
    }

    fn set_head(&mut self, head: &Anchor) -> Result<()> {
        self.tx.execute(
            "UPDATE ledger_head SET seq = $1, hash = $2 WHERE one = 1",
            &[&(head.seq as i64), &head.id],
        )?;
        Ok(())
    }

    fn remediation(&mut self, id: &str) -> Result<Option<Remediation>> {
        self.tx
            .query_opt(
                format!("SELECT {ITEM_COLUMNS} FROM ledger_remediations WHERE id = $1").as_str(),
                &[&id],
            )?
            .map(|r| item_row(&r).into_item())
            .transpose()
    }

    fn open_item(&mut self, item: &Remediation) -> Result<()> {
        let r = ItemRow::of(item);
        self.tx.execute(
            "INSERT INTO ledger_remediations (id, seq, dataset, reason, event_id, opened_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&r.id, &r.seq, &r.dataset, &r.reason, &r.event_id, &r.opened_at],
        )?;
        Ok(())
    }

    fn close_item(&mut self, id: &str, closure: &Closure) -> Result<()> {
        let n = self.tx.execute(
            "UPDATE ledger_remediations SET closed_by = $2, closed_seq = $3, closed_at = $4, closing_event_id = $5, note = $6
             WHERE id = $1 AND closed_by IS NULL",
            &[
                &id,
                &closure.id,
                &(closure.seq as i64),
                &crate::event::format_time(&closure.closed_at),
                &closure.closing_event_id,
                &closure.note,
            ],
        )?;
        if n != 1 {
            return Err(Error::RemediationClosed(id.to_string()));
        }
        Ok(())
    }
}

impl Ledger for PgLedger {
    fn append(&mut self, event: NewEvent) -> Result<Event> {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let host = &self.host;
        let once = |client: &mut Client| {
            let mut tx = client.transaction()?;
            let mut store = PgStore { tx: &mut tx };
            let out = core::append(&mut store, event.clone(), host)?;
            tx.commit()?;
            Ok(out)
        };
        if client.is_closed() {
            Self::reconnect(&self.url, client)?;
        }
        match once(client) {
            Err(e) if connection_lost(&e, client) => {
                Self::reconnect(&self.url, client)?;
                // The commit may have landed before the connection broke: never record twice.
                if let Some(last) = self.newest()?
                    && last.records(&event)
                {
                    return Ok(last);
                }
                let client = self
                    .client
                    .get_mut()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                once(client)
            }
            other => other,
        }
    }

    fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let (clause, params) = where_clause(filter, |n| format!("${n}"));
        let boxed: Vec<Box<dyn ToSql + Sync>> = params.iter().map(to_sql).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        let rows = self.with_client(|c| {
            Ok(c.query(
                format!("SELECT id, canonical FROM ledger_events{clause}").as_str(),
                &refs,
            )?)
        })?;
        rows.iter()
            .map(|r| event_from_hashed(r.get::<_, &str>(1), r.get::<_, &str>(0)))
            .collect()
    }

    fn get(&self, id: &str) -> Result<Option<Event>> {
        self.with_client(|c| {
            c.query_opt(
                "SELECT id, canonical FROM ledger_events WHERE id = $1",
                &[&id],
            )?
            .map(|r| event_from_hashed(r.get::<_, &str>(1), r.get::<_, &str>(0)))
            .transpose()
        })
    }

    fn head(&self) -> Result<Anchor> {
        self.with_client(|c| head_record(c, false))?
            .ok_or_else(|| Error::Damaged("the head record is missing".into()))
    }

    fn verify(&self) -> Result<VerifyReport> {
        self.snapshot(|tx| {
            let mut verifier = Verifier::new();
            let mut rows = tx.query_raw(
                format!("SELECT {EVENT_COLUMNS} FROM ledger_events ORDER BY seq").as_str(),
                NO_PARAMS,
            )?;
            while let Some(r) = rows.next()? {
                verifier.push(RawRow {
                    seq: r.get(0),
                    id: r.get(1),
                    canonical: r.get(14),
                    columns: Some(Columns {
                        prev_hash: r.get(2),
                        kind: r.get(3),
                        dataset: r.get(4),
                        repository: r.get(5),
                        config_hash: r.get(6),
                        host: r.get(7),
                        recorded_at: r.get(8),
                        started: r.get(9),
                        finished: r.get(10),
                        ok: Some(r.get(11)),
                        summary: r.get(12),
                        details: r.get(13),
                    }),
                    line: None,
                });
            }
            drop(rows);
            let head = head_record(tx, false)?;
            let items = item_rows(tx, false)?
                .into_iter()
                .map(ItemRow::into_item)
                .collect::<Result<Vec<_>>>();
            Ok(crate::finish_verify(verifier, head, items))
        })
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
        self.with_client(|c| item_rows(c, open_only))?
            .into_iter()
            .map(ItemRow::into_item)
            .collect()
    }

    fn export_jsonl(&self) -> Result<Vec<u8>> {
        self.snapshot(|tx| {
            let mut out = Vec::new();
            let mut rows = tx.query_raw(
                "SELECT id, canonical FROM ledger_events ORDER BY seq",
                NO_PARAMS,
            )?;
            while let Some(r) = rows.next()? {
                crate::export_line(&mut out, r.get(0), r.get(1))?;
            }
            Ok(out)
        })
    }

    fn import_jsonl(&mut self, bytes: &[u8]) -> Result<u64> {
        self.write(|s, _| core::import(s, bytes))
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@db:5432/x?sslmode=disable"),
            "postgres://u:***@db:5432/x?sslmode=disable"
        );
        assert_eq!(super::redact("postgres://u@db/x"), "postgres://u@db/x");
        assert_eq!(super::redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(super::redact("host=db user=u"), "host=db user=u");
        assert_eq!(
            super::redact("host=db password=x user=u"),
            "host=db password=*** user=u"
        );
    }
}
