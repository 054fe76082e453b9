//! Who runs a job. Every job of the scheduler is claimed with a lease first, so that with several
//! daemons on one PostgreSQL ledger no dataset is backed up twice for the same slot, and a dead
//! node's work is taken over once its lease expires.
//!
//! Protocol (PostgreSQL, [`PgLeases`]): one row per job key in `bulwark_leases` with the holder,
//! a fencing token and an expiry, all times the database server's own (`now()`), so clocks of the
//! nodes never matter. A claim succeeds only where there is no row or its lease has expired, and
//! increments the fencing token; the holder renews well before expiry (every third of the TTL) and
//! gives up its job at the next safe point when a renewal fails; release expires the row at once
//! but keeps its token, so tokens only grow. The token is recorded with the job's events: of two
//! holders that ever overlapped, the ledger shows which one was current. A connection that broke
//! (the server restarted) is opened again on the next call.
//!
//! A single daemon with a SQLite ledger uses [`LocalLeases`]: the same rules in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub key: String,
    pub holder: String,
    pub fencing: i64,
}

pub trait Leases: Send + Sync {
    /// Claim `key` for `ttl`; `None` while another holder's lease has not expired.
    fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, String>;
    /// Extend a held lease; `false` when it was lost (expired and taken, or released).
    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, String>;
    fn release(&self, lease: &Lease);
    /// Who holds `key` now, if anyone.
    fn holder(&self, key: &str) -> Result<Option<Lease>, String>;
}

/// Leases of one process.
pub struct LocalLeases {
    holder: String,
    rows: Mutex<BTreeMap<String, (Lease, Instant)>>,
}

impl LocalLeases {
    pub fn new(holder: impl Into<String>) -> LocalLeases {
        LocalLeases {
            holder: holder.into(),
            rows: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Leases for LocalLeases {
    fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, String> {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let fencing = match rows.get(key) {
            Some((_, expires)) if *expires > now => return Ok(None),
            Some((old, _)) => old.fencing + 1,
            None => 1,
        };
        let lease = Lease {
            key: key.to_string(),
            holder: self.holder.clone(),
            fencing,
        };
        rows.insert(key.to_string(), (lease.clone(), now + ttl));
        Ok(Some(lease))
    }

    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, String> {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        match rows.get_mut(&lease.key) {
            Some((held, expires)) if held == lease && *expires > Instant::now() => {
                *expires = Instant::now() + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn release(&self, lease: &Lease) {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((held, expires)) = rows.get_mut(&lease.key)
            && held == lease
        {
            *expires = Instant::now();
        }
    }

    fn holder(&self, key: &str) -> Result<Option<Lease>, String> {
        let rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        Ok(rows
            .get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(l, _)| l.clone()))
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS bulwark_leases (
    key text PRIMARY KEY,
    holder text NOT NULL,
    fencing bigint NOT NULL,
    expires timestamptz NOT NULL
)";

/// Leases in the PostgreSQL database that holds the ledger.
pub struct PgLeases {
    url: String,
    holder: String,
    client: Mutex<Option<postgres::Client>>,
}

impl PgLeases {
    pub fn connect(url: &str, holder: impl Into<String>) -> Result<PgLeases, String> {
        let leases = PgLeases {
            url: url.to_string(),
            holder: holder.into(),
            client: Mutex::new(None),
        };
        leases.with(|c| c.batch_execute(SCHEMA))?;
        Ok(leases)
    }

    /// Run `f` on the connection, connecting first (again, after a failure).
    fn with<T>(
        &self,
        f: impl Fn(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, String> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        for attempt in 0..2 {
            if slot.is_none() {
                let url = self.url.clone();
                let client = postgres::Client::connect(&url, postgres::NoTls).map_err(|e| {
                    format!(
                        "leases: cannot connect to {}: {}",
                        bulwark_source::db::postgres::redact(&url),
                        bulwark_source::db::postgres::describe_error(&e)
                    )
                })?;
                *slot = Some(client);
            }
            let client = slot.as_mut().expect("connected above");
            match f(client) {
                Ok(v) => return Ok(v),
                // A broken connection (a restarted server) is opened again once.
                Err(e) if attempt == 0 && (e.is_closed() || client.is_closed()) => {
                    *slot = None;
                }
                Err(e) => {
                    if client.is_closed() {
                        *slot = None;
                    }
                    return Err(format!(
                        "leases: {}",
                        bulwark_source::db::postgres::describe_error(&e)
                    ));
                }
            }
        }
        Err("leases: the database connection keeps failing".into())
    }
}

fn interval(ttl: Duration) -> String {
    format!("{} milliseconds", ttl.as_millis())
}

impl Leases for PgLeases {
    fn claim(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, String> {
        let row = self.with(|c| {
            c.query_opt(
                "INSERT INTO bulwark_leases (key, holder, fencing, expires)
                 VALUES ($1, $2, 1, now() + $3::text::interval)
                 ON CONFLICT (key) DO UPDATE
                    SET holder = EXCLUDED.holder, fencing = bulwark_leases.fencing + 1,
                        expires = EXCLUDED.expires
                    WHERE bulwark_leases.expires < now()
                 RETURNING fencing",
                &[&key, &self.holder, &interval(ttl)],
            )
        })?;
        Ok(row.map(|r| Lease {
            key: key.to_string(),
            holder: self.holder.clone(),
            fencing: r.get(0),
        }))
    }

    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, String> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE bulwark_leases SET expires = now() + $4::text::interval
                 WHERE key = $1 AND holder = $2 AND fencing = $3 AND expires > now()",
                &[&lease.key, &lease.holder, &lease.fencing, &interval(ttl)],
            )
        })?;
        Ok(n == 1)
    }

    fn release(&self, lease: &Lease) {
        let done = self.with(|c| {
            c.execute(
                "UPDATE bulwark_leases SET expires = now() - interval '1 second'
                 WHERE key = $1 AND holder = $2 AND fencing = $3",
                &[&lease.key, &lease.holder, &lease.fencing],
            )
        });
        if let Err(e) = done {
            tracing::warn!("could not release the lease on {}: {e}", lease.key);
        }
    }

    fn holder(&self, key: &str) -> Result<Option<Lease>, String> {
        let row = self.with(|c| {
            c.query_opt(
                "SELECT holder, fencing FROM bulwark_leases WHERE key = $1 AND expires > now()",
                &[&key],
            )
        })?;
        Ok(row.map(|r| Lease {
            key: key.to_string(),
            holder: r.get(0),
            fencing: r.get(1),
        }))
    }
}
