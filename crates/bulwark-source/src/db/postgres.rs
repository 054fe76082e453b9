//! PostgreSQL: a consistent logical backup, and the tools to restore and verify one.
//!
//! A backup opens a `REPEATABLE READ` transaction, exports its snapshot (`pg_export_snapshot()`),
//! records the database's facts inside that snapshot, and keeps the transaction open while
//! `pg_dump --snapshot=ID` and a second connection that imports the snapshot read the very same
//! data. The dump is one plain SQL script, streamed and never staged on disk:
//!
//! 1. `pg_dump --section=pre-data --section=data`, excluding the data of the tables of step 2:
//!    the schema, then sequences, large objects and tables without a column;
//! 2. the rows of every user table, one `COPY … TO STDOUT` each on that connection, in physical
//!    order with synchronized scans off, so that an unchanged table reads the same from its
//!    first block every day and tomorrow's dump shares its chunks with today's. Each table's
//!    rows are counted and hashed as they pass ([`rows`]): the fingerprint costs no second
//!    scan of the database. Key order (`ORDER BY pk`) was measured and dropped: on pgbench
//!    scale 30 its index scan made the read of the largest table 1.6 times as long and the
//!    whole backup 1.2 times. An updated row changes the chunk it was in, in either order; on
//!    a table of 2 M text rows the following days stored within 4% of the same bytes, and on
//!    pgbench's 110:1 compressible rows physical order stored 0.5 and 1.4 MB more a day;
//! 3. `pg_dump --section=post-data` (indexes, constraints, triggers), read by a pg_dump that
//!    runs while step 2 streams, and held in memory until it ends;
//! 4. [`DUMP_TRAILER`], written only when every step succeeded: a dump without it was cut short.
//!
//! The fingerprint is complete only when the dump is ([`StreamedFingerprint`]). The roles and
//! tablespaces a restore needs come from `pg_dumpall --globals-only`, where the user may read
//! them. PostgreSQL 12 or newer.
//!
//! [`rows`]: super::rows

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use ::postgres as driver;
use ::postgres::{Client, NoTls, SimpleQueryMessage};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::Config;

use super::copy_tap::{Tap, TappedStream, open_socket};
use super::dump::{ChunkSender, DUMP_TRAILER, DumpReader, collect};
use super::rows::{self, RowWriter};
use super::{DbError, DbResult, Fingerprint, TableFingerprint, libpq, tail_lines, truthy};

/// Settings that make every value's text form the same on any server and session, so that
/// checksums taken at backup and after a restore agree (and `COPY` output is unambiguous).
const SESSION: &str = "SET bytea_output = 'hex'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
     SET TimeZone = 'UTC'; SET extra_float_digits = 1; SET lc_monetary = 'C'; SET search_path = pg_catalog; \
     SET row_security = off; SET statement_timeout = 0; SET lock_timeout = 0; \
     SET idle_in_transaction_session_timeout = 0";

/// What a PostgreSQL backup records about the database, for compatibility and fidelity checks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PgFacts {
    pub database: String,
    pub server_version: String,
    pub server_version_num: u32,
    pub major: u32,
    /// `pg_database_size` at backup time, in bytes.
    pub database_size: u64,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// `libc`, `icu` or `builtin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icu_locale: Option<String>,
    /// Installed extensions: name -> version.
    pub extensions: BTreeMap<String, String>,
    /// Roles that own or were granted something in this database: a restore needs them.
    pub roles: Vec<String>,
    /// Every user table's exact row count, and a checksum for those up to `checksum_max_bytes`.
    pub tables: Fingerprint,
    /// Large objects: how many, and a checksum of their ids and contents where readable.
    pub large_objects: TableFingerprint,
    pub checksum_max_bytes: u64,
    /// The dump's file name in the snapshot.
    pub dump_file: String,
    pub dump_format: String,
    /// `globals.sql` (roles, tablespaces), when the user could dump them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub globals_file: Option<String>,
    /// Why the globals are missing or partial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub globals_note: Option<String>,
    pub pg_dump_version: String,
}

// ---------------------------------------------------------------------------------------------
// Programs.

/// Where the PostgreSQL programs are: `BULWARK_PG_BINDIR`, else `pg_config --bindir`, else the
/// newest `/usr/lib/postgresql/*/bin`, else `PATH`.
#[derive(Clone, Debug)]
pub struct PgTools {
    bindir: Option<PathBuf>,
    origin: String,
}

impl PgTools {
    pub fn locate() -> PgTools {
        if let Some(dir) = std::env::var_os("BULWARK_PG_BINDIR").filter(|d| !d.is_empty()) {
            return PgTools {
                bindir: Some(dir.into()),
                origin: "BULWARK_PG_BINDIR".into(),
            };
        }
        if let Ok(out) = crate::child::command("pg_config")
            .arg("--bindir")
            .stderr(Stdio::null())
            .output()
            && out.status.success()
        {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.join("pg_dump").exists() {
                return PgTools {
                    bindir: Some(dir),
                    origin: "pg_config --bindir".into(),
                };
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("pg_dump").exists().then_some((v, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return PgTools {
                bindir: Some(bin),
                origin: "/usr/lib/postgresql".into(),
            };
        }
        PgTools {
            bindir: None,
            origin: "PATH".into(),
        }
    }

    pub fn in_dir(dir: impl Into<PathBuf>) -> PgTools {
        PgTools {
            bindir: Some(dir.into()),
            origin: "the given directory".into(),
        }
    }

    pub fn bindir(&self) -> Option<&Path> {
        self.bindir.as_deref()
    }

    /// The path of program `name`, or an error saying where it was looked for.
    pub fn program(&self, name: &str) -> DbResult<PathBuf> {
        match &self.bindir {
            Some(dir) => {
                let p = dir.join(name);
                if is_executable(&p) {
                    Ok(p)
                } else {
                    Err(DbError(format!(
                        "{name} not found in {} (from {}): install the PostgreSQL programs there, \
                         or set BULWARK_PG_BINDIR to the directory that holds {name}",
                        dir.display(),
                        self.origin
                    )))
                }
            }
            None => std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|d| d.join(name))
                .find(|p| is_executable(p))
                .ok_or_else(|| {
                    DbError(format!(
                        "{name} not found: no PostgreSQL bin directory (BULWARK_PG_BINDIR, pg_config --bindir) \
                         and not on PATH; install PostgreSQL or set BULWARK_PG_BINDIR"
                    ))
                }),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.program(name).is_ok()
    }

    /// `name --version`: the version text and its major number.
    pub fn version(&self, name: &str) -> DbResult<(String, u32)> {
        let prog = self.program(name)?;
        let out = crate::child::command(&prog)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| DbError(format!("cannot run {}: {e}", prog.display())))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // "pg_dump (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)"
        let version = text
            .split_whitespace()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or_default()
            .to_string();
        let major = version
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| {
                DbError(format!(
                    "cannot tell the version of {}: '{text}'",
                    prog.display()
                ))
            })?;
        Ok((version, major))
    }
}

pub(crate) fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

// ---------------------------------------------------------------------------------------------
// Connections.

/// A connection string (`postgres://user@host/db` or `host=… dbname=…`) with libpq's defaults
/// filled in: a connection service (`service=`, `PGSERVICE`), the environment (PGHOST, PGPORT,
/// PGUSER, PGPASSWORD, PGDATABASE; the local socket) and the password file (see [`libpq`]).
pub fn config(dsn: &str) -> DbResult<Config> {
    let (rest, service) = libpq::take_service(dsn);
    let mut c = Config::from_str(&rest).map_err(|e| {
        DbError(format!(
            "bad PostgreSQL connection string '{}': {e}",
            redact(dsn)
        ))
    })?;
    if let Some(name) = service {
        apply_service(&mut c, &name)?;
    }
    if c.get_hosts().is_empty() {
        match std::env::var("PGHOST") {
            Ok(hosts) if !hosts.is_empty() => {
                for h in hosts.split(',') {
                    c.host(h);
                }
            }
            _ if Path::new("/var/run/postgresql").is_dir() => {
                c.host_path("/var/run/postgresql");
            }
            _ => {
                c.host("localhost");
            }
        }
    }
    if c.get_ports().is_empty()
        && let Some(p) = std::env::var("PGPORT").ok().and_then(|p| p.parse().ok())
    {
        c.port(p);
    }
    if c.get_user().is_none() {
        c.user(std::env::var("PGUSER").unwrap_or_else(|_| bulwark_repo::user_name()));
    }
    if c.get_password().is_none()
        && let Ok(p) = std::env::var("PGPASSWORD")
    {
        c.password(p);
    }
    if c.get_dbname().is_none() {
        let db = std::env::var("PGDATABASE")
            .unwrap_or_else(|_| c.get_user().unwrap_or_default().to_string());
        c.dbname(&db);
    }
    if c.get_password().is_none() {
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "localhost".to_string(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        if let Some(p) = libpq::password(
            &host,
            port,
            c.get_dbname().unwrap_or_default(),
            c.get_user().unwrap_or_default(),
        ) {
            c.password(p);
        }
    }
    if c.get_application_name().is_none() {
        c.application_name("bulwark");
    }
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(Duration::from_secs(30));
    }
    Ok(c)
}

/// The settings of a connection service, where the connection string left them unset.
fn apply_service(c: &mut Config, name: &str) -> DbResult<()> {
    let settings = libpq::service(name)?;
    let bad = |k: &str, v: &str| DbError(format!("service '{name}': bad {k} '{v}'"));
    for (k, v) in &settings {
        match k.as_str() {
            "host" | "hostaddr" if c.get_hosts().is_empty() => {
                for h in v.split(',') {
                    if h.starts_with('/') {
                        c.host_path(h);
                    } else {
                        c.host(h);
                    }
                }
            }
            "port" if c.get_ports().is_empty() => {
                c.port(v.parse().map_err(|_| bad(k, v))?);
            }
            "user" if c.get_user().is_none() => {
                c.user(v);
            }
            "dbname" if c.get_dbname().is_none() => {
                c.dbname(v);
            }
            "password" if c.get_password().is_none() => {
                c.password(v.as_str());
            }
            "application_name" if c.get_application_name().is_none() => {
                c.application_name(v);
            }
            "connect_timeout" if c.get_connect_timeout().is_none() => {
                let secs: u64 = v.parse().map_err(|_| bad(k, v))?;
                c.connect_timeout(Duration::from_secs(secs));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `dsn` with `password` set (for a password read from a file): later settings win in libpq's
/// syntax, so it is appended; [`strip_password`] takes it out again for client programs.
pub fn with_password(dsn: &str, password: &str) -> String {
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let encoded: String = password
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let sep = if dsn.contains('?') { '&' } else { '?' };
        format!("{dsn}{sep}password={encoded}")
    } else {
        format!("{dsn} password={}", libpq::quote(password))
    }
}

pub fn connect(dsn: &str) -> DbResult<Client> {
    ::postgres::Config::from(config(dsn)?)
        .connect(NoTls)
        .map_err(|e| {
            DbError(format!(
                "cannot connect to {}: {}",
                redact(dsn),
                describe_error(&e)
            ))
        })
}

/// The database a connection string names (after defaults).
pub fn dbname(dsn: &str) -> DbResult<String> {
    Ok(config(dsn)?.get_dbname().unwrap_or_default().to_string())
}

/// The same server and credentials, another database (for CREATE/DROP DATABASE).
pub fn connect_other_db(dsn: &str, db: &str) -> DbResult<Client> {
    let mut c = config(dsn)?;
    c.dbname(db);
    ::postgres::Config::from(c).connect(NoTls).map_err(|e| {
        DbError(format!(
            "cannot connect to database {db} on {}: {}",
            redact(dsn),
            describe_error(&e)
        ))
    })
}

/// A command for a libpq client program, and the connection string to give it: without the
/// password (which would show in the process list), that going in PGPASSWORD instead.
pub fn client_command(prog: &Path, dsn: &str) -> (Command, String) {
    let (conninfo, password) = strip_password(dsn);
    let mut c = crate::child::command(prog);
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    (c, conninfo)
}

/// A connection string without its password, and the password.
pub fn strip_password(dsn: &str) -> (String, Option<String>) {
    if let Some(rest) = dsn
        .strip_prefix("postgres://")
        .or_else(|| dsn.strip_prefix("postgresql://"))
    {
        let scheme = &dsn[..dsn.len() - rest.len()];
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let mut password = None;
        let authority = match authority.rfind('@') {
            Some(at) => {
                let (userinfo, host) = authority.split_at(at);
                match userinfo.split_once(':') {
                    Some((user, p)) => {
                        password = Some(percent_decode(p));
                        format!("{user}{host}")
                    }
                    None => authority.to_string(),
                }
            }
            None => authority.to_string(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let mut kept = Vec::new();
                for kv in query.split('&') {
                    match kv.strip_prefix("password=") {
                        Some(p) => password = Some(percent_decode(p)),
                        None => kept.push(kv),
                    }
                }
                if kept.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}?{}", kept.join("&"))
                }
            }
            None => tail.to_string(),
        };
        return (format!("{scheme}{authority}{tail}"), password);
    }
    // key = value pairs; a value may be single-quoted, with backslash escapes.
    let b = dsn.as_bytes();
    let (mut i, mut kept, mut password) = (0, String::new(), None);
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &dsn[start..i];
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'=') {
            i += 1;
        }
        let vstart = i;
        let mut value = String::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i] as char);
                i += 1;
            }
            i = (i + 1).min(b.len());
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            value = dsn[vstart..i].to_string();
        }
        if key.is_empty() {
            continue;
        }
        if key == "password" {
            password = Some(value);
        } else {
            if !kept.is_empty() {
                kept.push(' ');
            }
            kept += &dsn[start..i];
        }
    }
    (kept, password)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(hex) = std::str::from_utf8(&b[i + 1..i + 3])
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection string with its password blanked, for messages.
/// `dsn` pointing at database `db` instead (key=value form appended; URL form rewritten).
pub fn with_dbname(dsn: &str, db: &str) -> String {
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        let (base, query) = match dsn.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (dsn, String::new()),
        };
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let host_end = base[scheme_end..]
            .find('/')
            .map(|i| scheme_end + i)
            .unwrap_or(base.len());
        format!("{}/{db}{query}", &base[..host_end])
    } else {
        format!("{dsn} dbname={}", quote_literal(db))
    }
}

pub fn redact(dsn: &str) -> String {
    let (rest, password) = strip_password(dsn);
    if password.is_none() {
        return rest;
    }
    let Some(after_scheme) = rest.find("://").map(|i| i + 3) else {
        return format!("{rest} password=***");
    };
    let authority_end = rest[after_scheme..]
        .find(['/', '?'])
        .map_or(rest.len(), |i| after_scheme + i);
    match rest[after_scheme..authority_end].rfind('@') {
        Some(at) => {
            let at = after_scheme + at;
            format!("{}:***{}", &rest[..at], &rest[at..])
        }
        None => {
            let sep = if rest.contains('?') { '&' } else { '?' };
            format!("{rest}{sep}password=***")
        }
    }
}

/// A driver error as one line: the server's message, detail and hint, or the connection problem.
pub fn describe_error(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s += &format!(" ({d})");
        }
        if let Some(h) = db.hint() {
            s += &format!(" (hint: {h})");
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s += &format!(": {x}");
        src = x.source();
    }
    s
}

/// `"name"` with inner quotes doubled: safe for any identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'text'` with inner quotes doubled.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------------
// Facts and fingerprints.

/// A user table, as the dump and the fingerprint see it.
#[derive(Clone, Debug)]
pub struct TableInfo {
    /// `schema.table`, each part quoted where needed (`quote_ident`).
    pub name: String,
    pub size: u64,
    /// Columns that `COPY … FROM` takes (not dropped, not generated), quoted.
    pub cols: Vec<String>,
}

/// Every ordinary user table (not system, temporary or extension-owned), by name.
pub fn list_tables(client: &mut Client) -> DbResult<Vec<TableInfo>> {
    let rows = client.query(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                pg_total_relation_size(c.oid)::int8,
                coalesce((SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '{}'::text[])
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND c.relpersistence <> 't'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
         ORDER BY 1",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| TableInfo {
            name: r.get(0),
            size: r.get::<_, i64>(1).max(0) as u64,
            cols: r.get(2),
        })
        .collect())
}

/// One table's exact row count and, if asked, the checksum snapshots recorded before rows were
/// hashed in the dump's stream: the sum of the first 64 bits of each row text's md5, in SQL.
fn table_fingerprint(
    client: &mut Client,
    name: &str,
    checksum: bool,
) -> DbResult<TableFingerprint> {
    if checksum {
        let row = client.query_one(
            &format!(
                "SELECT count(*)::int8, coalesce(sum(('x' || substr(md5(ROW(t.*)::text), 1, 16))::bit(64)::int8::numeric), 0)::text \
                 FROM ONLY {name} t"
            ),
            &[],
        )?;
        Ok(TableFingerprint {
            rows: row.get::<_, i64>(0) as u64,
            checksum: Some(row.get(1)),
        })
    } else {
        let row = client.query_one(&format!("SELECT count(*)::int8 FROM ONLY {name}"), &[])?;
        Ok(TableFingerprint {
            rows: row.get::<_, i64>(0) as u64,
            checksum: None,
        })
    }
}

/// Large objects: their number, and a checksum of ids and contents when they can be read. Must
/// run inside a transaction (it uses a savepoint).
pub fn large_objects(client: &mut Client, checksum: bool) -> DbResult<TableFingerprint> {
    let count: i64 = client
        .query_one("SELECT count(*)::int8 FROM pg_largeobject_metadata", &[])?
        .get(0);
    let mut fp = TableFingerprint {
        rows: count as u64,
        checksum: None,
    };
    if checksum {
        client.batch_execute("SAVEPOINT bulwark_lo")?;
        match client.query_one(
            "SELECT coalesce(sum(('x' || substr(md5(m.oid::text || ':' || md5(lo_get(m.oid))), 1, 16))::bit(64)::int8::numeric), 0)::text \
             FROM pg_largeobject_metadata m",
            &[],
        ) {
            Ok(row) => {
                fp.checksum = Some(row.get(0));
                client.batch_execute("RELEASE SAVEPOINT bulwark_lo")?;
            }
            Err(e) => {
                tracing::info!("large objects are not checksummed: {}", describe_error(&e));
                client.batch_execute("ROLLBACK TO SAVEPOINT bulwark_lo")?;
            }
        }
    }
    Ok(fp)
}

struct DatabaseFacts {
    database: String,
    server_version: String,
    server_version_num: u32,
    size: u64,
    encoding: String,
    collate: String,
    ctype: String,
    provider: Option<String>,
    icu_locale: Option<String>,
}

fn database_facts(client: &mut Client) -> DbResult<DatabaseFacts> {
    let r = client.query_one(
        "SELECT d.datname::text, pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text,
                to_jsonb(d) ->> 'datlocprovider', coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale'),
                pg_database_size(d.oid)::int8, current_setting('server_version'), current_setting('server_version_num')::int4
         FROM pg_database d WHERE d.datname = current_database()",
        &[],
    )?;
    let provider: Option<String> = r.get(4);
    Ok(DatabaseFacts {
        database: r.get(0),
        encoding: r.get(1),
        collate: r.get(2),
        ctype: r.get(3),
        provider: provider.map(|p| {
            match p.as_str() {
                "c" => "libc",
                "i" => "icu",
                "b" => "builtin",
                other => other,
            }
            .to_string()
        }),
        icu_locale: r.get(5),
        size: r.get::<_, i64>(6).max(0) as u64,
        server_version: r.get(7),
        server_version_num: r.get::<_, i32>(8) as u32,
    })
}

/// Installed extensions: name -> version.
pub fn extensions(client: &mut Client) -> DbResult<BTreeMap<String, String>> {
    Ok(client
        .query(
            "SELECT extname::text, extversion FROM pg_extension ORDER BY 1",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Roles that own something in this database or were granted something in it.
fn referenced_roles(client: &mut Client) -> DbResult<Vec<String>> {
    const USER_NS: &str = "nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_toast' AND nspname !~ '^pg_temp'";
    let sql = format!(
        "SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' AND oid IN (
            SELECT nspowner FROM pg_namespace WHERE {USER_NS}
            UNION SELECT relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_NS}
            UNION SELECT proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_NS}
            UNION SELECT typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {USER_NS}
            UNION SELECT lomowner FROM pg_largeobject_metadata
            UNION SELECT (aclexplode(relacl)).grantee FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE relacl IS NOT NULL AND {USER_NS}
            UNION SELECT (aclexplode(nspacl)).grantee FROM pg_namespace WHERE nspacl IS NOT NULL AND {USER_NS}
            UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  WHERE proacl IS NOT NULL AND {USER_NS}
            UNION SELECT (aclexplode(lomacl)).grantee FROM pg_largeobject_metadata WHERE lomacl IS NOT NULL
            UNION SELECT defaclrole FROM pg_default_acl
         ) ORDER BY 1"
    );
    Ok(client.query(&sql, &[])?.iter().map(|r| r.get(0)).collect())
}

/// A table's rows as `COPY` text, as the dump copies them and a verification reads them back.
fn copy_rows_query(t: &TableInfo) -> String {
    format!("COPY {} ({}) TO STDOUT", t.name, t.cols.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Backup.

pub struct PgBackupOptions {
    pub dsn: String,
    /// Tables up to this size (`pg_total_relation_size`) get a content checksum.
    pub checksum_max_bytes: u64,
    /// Also dump roles and tablespaces (`pg_dumpall --globals-only`) where permitted.
    pub globals: bool,
    pub tools: PgTools,
}

/// A dump under way: its facts (taken in the dump's snapshot), the globals, and the dump stream.
/// `facts.tables` holds only the tables the dump cannot stream rows of until `fingerprint`
/// completes it, once the dump has been read to its end.
pub struct PgDump {
    pub facts: PgFacts,
    pub globals: Option<Vec<u8>>,
    pub dump: DumpReader,
    pub fingerprint: StreamedFingerprint,
}

/// The fingerprints of the tables whose rows a dump streams, taken as they pass: there once the
/// dump has been read whole.
#[derive(Clone, Default)]
pub struct StreamedFingerprint(Arc<Mutex<Option<Fingerprint>>>);

impl StreamedFingerprint {
    fn set(&self, fp: Fingerprint) {
        *self.0.lock().expect("fingerprint lock") = Some(fp);
    }

    /// Add the streamed tables' fingerprints to `facts`: an error if the dump did not complete.
    pub fn complete(&self, facts: &mut PgFacts) -> DbResult<()> {
        let fp = self.0.lock().expect("fingerprint lock");
        let fp = fp.as_ref().ok_or_else(|| {
            DbError::new("the dump ended before every table's rows were fingerprinted")
        })?;
        facts
            .tables
            .extend(fp.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }
}

/// Start a consistent dump: connect, export a snapshot, record the facts inside it, and return the
/// stream (its producer keeps the snapshot's transaction open until the dump is read to the end).
pub fn start_dump(opts: &PgBackupOptions) -> DbResult<PgDump> {
    let pg_dump = opts.tools.program("pg_dump")?;
    let (dump_version, dump_major) = opts.tools.version("pg_dump")?;
    let rows_config = config(&opts.dsn)?;
    let mut client = connect(&opts.dsn)?;
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    client.batch_execute(SESSION)?;
    let snapshot: String = client.query_one("SELECT pg_export_snapshot()", &[])?.get(0);
    let db = database_facts(&mut client)?;
    let major = db.server_version_num / 10000;
    if major < 12 {
        return Err(DbError(format!(
            "PostgreSQL {} is not supported: bulwark backs up PostgreSQL 12 and newer",
            db.server_version
        )));
    }
    if dump_major < major {
        return Err(DbError(format!(
            "pg_dump {dump_version} cannot dump a PostgreSQL {} server: use pg_dump {major} or newer \
             (set BULWARK_PG_BINDIR to its bin directory)",
            db.server_version
        )));
    }
    let extensions = extensions(&mut client)?;
    let roles = referenced_roles(&mut client)?;
    // A table without a column has no row text to hash (and `COPY` cannot name its columns):
    // pg_dump dumps it, and it is counted here. Every other table's rows are streamed.
    let (streamed, columnless): (Vec<TableInfo>, Vec<TableInfo>) = list_tables(&mut client)?
        .into_iter()
        .partition(|t| !t.cols.is_empty());
    let mut counted = Fingerprint::new();
    for t in &columnless {
        let fp = table_fingerprint(&mut client, &t.name, false)
            .map_err(|e| e.context(format!("counting the rows of {}", t.name)))?;
        counted.insert(t.name.clone(), fp);
    }
    let los = large_objects(&mut client, true)?;
    let fingerprint = StreamedFingerprint::default();
    let job = DumpJob {
        pg_dump,
        rows_config,
        dsn: opts.dsn.clone(),
        snapshot,
        streamed,
        checksum_max_bytes: opts.checksum_max_bytes,
        fingerprint: fingerprint.clone(),
    };
    let dump = DumpReader::spawn("pg-dump", move |out| produce(&mut client, &job, out));
    // pg_dumpall needs no snapshot: it runs while the dump's first pg_dump does, whose output
    // waits in the reader's channel.
    let (globals, globals_note) = if opts.globals {
        dump_globals(&opts.tools, &opts.dsn)
    } else {
        (None, Some("not requested".to_string()))
    };
    let dump_file = format!("{}.sql", file_safe(&db.database));
    let facts = PgFacts {
        database: db.database,
        server_version: db.server_version,
        server_version_num: db.server_version_num,
        major,
        database_size: db.size,
        encoding: db.encoding,
        collate: db.collate,
        ctype: db.ctype,
        locale_provider: db.provider,
        icu_locale: db.icu_locale,
        extensions,
        roles,
        tables: counted,
        large_objects: los,
        checksum_max_bytes: opts.checksum_max_bytes,
        dump_file,
        dump_format: "plain SQL".into(),
        globals_file: globals.as_ref().map(|_| "globals.sql".to_string()),
        globals_note,
        pg_dump_version: dump_version,
    };
    Ok(PgDump {
        facts,
        globals,
        dump,
        fingerprint,
    })
}

pub(crate) fn file_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        "database".into()
    } else {
        s
    }
}

/// `pg_dumpall --globals-only`, falling back to `--no-role-passwords` for users who may not read
/// `pg_authid`; `None` with the reason when neither works.
fn dump_globals(tools: &PgTools, dsn: &str) -> (Option<Vec<u8>>, Option<String>) {
    let prog = match tools.program("pg_dumpall") {
        Ok(p) => p,
        Err(e) => return (None, Some(e.0)),
    };
    let mut last = String::new();
    for extra in [None, Some("--no-role-passwords")] {
        let (mut cmd, conninfo) = client_command(&prog, dsn);
        cmd.arg("--globals-only")
            .arg("--no-password")
            .arg(format!("--dbname={conninfo}"));
        cmd.args(extra);
        match cmd.stdin(Stdio::null()).output() {
            Ok(out) if out.status.success() => {
                let note = extra.map(|_| {
                    "role passwords not included: the user may not read pg_authid".to_string()
                });
                return (Some(out.stdout), note);
            }
            Ok(out) => last = tail_lines(&String::from_utf8_lossy(&out.stderr), 2),
            Err(e) => last = format!("cannot run {}: {e}", prog.display()),
        }
    }
    tracing::warn!("roles and tablespaces are not backed up: {last}");
    (
        None,
        Some(format!("pg_dumpall --globals-only failed: {last}")),
    )
}

struct DumpJob {
    pg_dump: PathBuf,
    /// The connection that reads the tables' rows (step 2).
    rows_config: Config,
    dsn: String,
    snapshot: String,
    /// The tables whose rows the dump copies itself (step 2).
    streamed: Vec<TableInfo>,
    checksum_max_bytes: u64,
    fingerprint: StreamedFingerprint,
}

fn produce(client: &mut Client, job: &DumpJob, out: &mut ChunkSender) -> Result<(), String> {
    let w = |e: io::Error| e.to_string();
    let excluded: Vec<String> = job
        .streamed
        .iter()
        .map(|t| format!("--exclude-table-data={}", t.name))
        .collect();
    let fingerprint = std::thread::scope(|s| {
        // The post-data section (indexes, constraints, triggers: kilobytes, a few megabytes for
        // tens of thousands of indexes) needs only the snapshot, so a third pg_dump reads it
        // while the rows stream, and it is written after them.
        let post_data = s.spawn(|| {
            let mut text = Vec::new();
            run_pg_dump(job, &["post-data"], &[], &mut text).map(|()| text)
        });
        run_pg_dump(job, &["pre-data", "data"], &excluded, out)?;
        let fingerprint = copy_rows(job, out)?;
        let post_data = post_data
            .join()
            .map_err(|_| "the post-data pg_dump thread panicked".to_string())??;
        out.write_all(&post_data).map_err(w)?;
        Ok::<_, String>(fingerprint)
    })?;
    client
        .batch_execute("COMMIT")
        .map_err(|e| format!("closing the dump's snapshot: {}", describe_error(&e)))?;
    job.fingerprint.set(fingerprint);
    out.write_all(DUMP_TRAILER.as_bytes()).map_err(w)?;
    out.flush().map_err(w)
}

/// Step 2 of the dump: every streamed table's rows as a `COPY … FROM stdin` block, read on a
/// second connection in the dump's snapshot, each counted and hashed on the way.
fn copy_rows(job: &DumpJob, out: &mut ChunkSender) -> Result<Fingerprint, String> {
    if job.streamed.is_empty() {
        return Ok(Fingerprint::new());
    }
    out.write_all(
        b"\n--\n-- Table rows (bulwark), read in the dump's snapshot\n--\n\n\
          SET client_encoding = 'UTF8';\n",
    )
    .map_err(|e| e.to_string())?;
    let mut sink = DumpRows {
        out,
        checksum_max_bytes: job.checksum_max_bytes,
        fingerprint: Fingerprint::new(),
    };
    copy_tables(&job.rows_config, &job.snapshot, &job.streamed, &mut sink)?;
    Ok(sink.fingerprint)
}

/// What [`copy_tables`] does with each table's rows.
trait RowSink {
    type Rows: Write + Send + Unpin + 'static;
    /// Where the rows of `t` go.
    fn open(&mut self, t: &TableInfo) -> io::Result<Self::Rows>;
    /// Every row of `t` went to `rows`.
    fn done(&mut self, t: &TableInfo, rows: Self::Rows) -> io::Result<()>;
}

/// The dump's rows: each table a `COPY … FROM stdin` block, counted and hashed on the way.
struct DumpRows<'a> {
    out: &'a mut ChunkSender,
    checksum_max_bytes: u64,
    fingerprint: Fingerprint,
}

impl RowSink for DumpRows<'_> {
    type Rows = RowWriter<ChunkSender>;

    fn open(&mut self, t: &TableInfo) -> io::Result<Self::Rows> {
        write!(
            self.out,
            "\nCOPY {} ({}) FROM stdin;\n",
            t.name,
            t.cols.join(", ")
        )?;
        Ok(RowWriter::new(self.out.fork()?))
    }

    fn done(&mut self, t: &TableInfo, mut rows: Self::Rows) -> io::Result<()> {
        rows.flush()?;
        let digest = rows.finish()?;
        self.out.write_all(b"\\.\n")?;
        self.fingerprint.insert(
            t.name.clone(),
            digest.fingerprint(t.size <= self.checksum_max_bytes),
        );
        Ok(())
    }
}

/// A verification's rows: counted and hashed, then dropped.
#[derive(Default)]
struct CheckedRows {
    fingerprint: Fingerprint,
}

impl RowSink for CheckedRows {
    type Rows = RowWriter<io::Sink>;

    fn open(&mut self, _: &TableInfo) -> io::Result<Self::Rows> {
        Ok(RowWriter::new(io::sink()))
    }

    fn done(&mut self, t: &TableInfo, rows: Self::Rows) -> io::Result<()> {
        let digest = rows.finish()?;
        self.fingerprint
            .insert(t.name.clone(), digest.fingerprint(true));
        Ok(())
    }
}

/// Copy the rows of every table in `tables` (`COPY … TO STDOUT`, [`copy_rows_query`]) to `sink`,
/// on a new connection to `config` that imports `snapshot`.
///
/// That connection is driven asynchronously, in one `block_on` for all tables: the synchronous
/// driver enters its runtime once per `COPY` message, which is once per row, and on a table of
/// ten million rows that took about half of the backup's CPU (4.3 s of user time, 2.3 s without).
/// The rows themselves bypass the driver: a [`Tap`] on the socket hands them to the sink as they
/// arrive (see [`copy_tap`](super::copy_tap)).
fn copy_tables<S: RowSink>(
    config: &Config,
    snapshot: &str,
    tables: &[TableInfo],
    sink: &mut S,
) -> Result<(), String> {
    let db_err = |e: tokio_postgres::Error| describe_error(&e);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the connection's runtime: {e}"))?;
    let tap = Tap::<S::Rows>::default();
    runtime.block_on(async {
        let connecting = |e: String| format!("cannot connect to read the tables' rows: {e}");
        let socket = open_socket(config)
            .await
            .map_err(|e| connecting(e.to_string()))?;
        let (client, connection) = config
            .connect_raw(TappedStream::new(socket, tap.clone()), NoTls)
            .await
            .map_err(|e| connecting(db_err(e)))?;
        let connection = tokio::spawn(connection);
        // A synchronized scan joins another scan of a large table wherever it is, and the
        // rows would start mid-table: off, every copy reads from the first block.
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}; {SESSION}; \
                 SET synchronize_seqscans = off",
                quote_literal(snapshot)
            ))
            .await
            .map_err(|e| format!("importing the snapshot: {}", db_err(e)))?;
        for t in tables {
            // The tap's own failure (the backup stopped, say) is the cause of a broken connection.
            let reading = |e: String| {
                let cause = tap.failure().unwrap_or(e);
                format!("reading the rows of {}: {cause}", t.name)
            };
            tap.open(sink.open(t).map_err(|e| reading(e.to_string()))?);
            let stream = client
                .copy_out(copy_rows_query(t).as_str())
                .await
                .map_err(|e| reading(db_err(e)))?;
            match std::pin::pin!(stream).next().await {
                None => {}
                Some(Err(e)) => return Err(reading(db_err(e))),
                Some(Ok(_)) => return Err(reading("rows went past the tap".into())),
            }
            let rows = tap.close().map_err(reading)?;
            sink.done(t, rows).map_err(|e| reading(e.to_string()))?;
        }
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| format!("closing the rows' snapshot: {}", db_err(e)))?;
        drop(client);
        let _ = connection.await;
        Ok(())
    })
}

fn run_pg_dump(
    job: &DumpJob,
    sections: &[&str],
    extra: &[String],
    out: &mut dyn Write,
) -> Result<(), String> {
    let section = sections.join(", ");
    let (mut cmd, conninfo) = client_command(&job.pg_dump, &job.dsn);
    let mut child = cmd
        .arg(format!("--dbname={conninfo}"))
        .arg(format!("--snapshot={}", job.snapshot))
        .args(sections.iter().map(|s| format!("--section={s}")))
        .arg("--format=plain")
        .arg("--no-password")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", job.pg_dump.display()))?;
    let stderr = collect(child.stderr.take().expect("piped"));
    let mut stdout = child.stdout.take().expect("piped");
    let copied = io::copy(&mut stdout, out);
    if copied.is_err() {
        let _ = child.kill();
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for pg_dump: {e}"))?;
    let errors = stderr.join().unwrap_or_default();
    copied.map_err(|e| format!("pg_dump ({section}): {e}"))?;
    if !status.success() {
        return Err(format!(
            "pg_dump ({section}) failed ({status}): {}",
            tail_lines(&errors, 3)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Restore.

/// Run `psql` on `dsn` with `input` as the script; psql's messages go to `log`. With `strict`, it
/// stops at the first error (the restore); otherwise errors are reported but not fatal (the
/// globals: some roles already exist). Returns psql's messages from this run.
///
/// Not `--single-transaction`: a plain dump writes its large objects inside its own
/// `BEGIN; … COMMIT;`, whose COMMIT would end the outer transaction half-way. Callers restore into
/// a new database and drop it when the restore fails.
pub fn psql(
    tools: &PgTools,
    dsn: &str,
    input: &mut dyn Read,
    log: &Path,
    strict: bool,
) -> DbResult<String> {
    let prog = tools.program("psql")?;
    let start = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let logf = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| DbError(format!("cannot write {}: {e}", log.display())))?;
    let (mut cmd, conninfo) = client_command(&prog, dsn);
    cmd.args(["--no-psqlrc", "--quiet", "--no-password", "--file=-"])
        .arg(format!("--dbname={conninfo}"))
        .arg(format!(
            "--set=ON_ERROR_STOP={}",
            if strict { 1 } else { 0 }
        ));
    let mut child: Child = cmd
        .env("PGAPPNAME", "bulwark-restore")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::from(logf))
        .spawn()
        .map_err(|e| DbError(format!("cannot run {}: {e}", prog.display())))?;
    let mut stdin = child.stdin.take().expect("piped");
    let fed = io::copy(input, &mut stdin);
    drop(stdin);
    let fed = match fed {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DbError(format!("reading the dump: {e}")));
        }
        other => other,
    };
    let status: ExitStatus = child
        .wait()
        .map_err(|e| DbError(format!("waiting for psql: {e}")))?;
    let messages = read_from(log, start);
    if !status.success() {
        return Err(DbError(format!(
            "psql failed ({status}): {}",
            tail_lines(&error_lines(&messages), 3)
        )));
    }
    if let Err(e) = fed {
        return Err(DbError(format!(
            "psql stopped reading the dump: {e}: {}",
            tail_lines(&messages, 3)
        )));
    }
    Ok(messages)
}

fn read_from(path: &Path, start: u64) -> String {
    let data = fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(data.get(start as usize..).unwrap_or_default()).into_owned()
}

/// psql's ERROR lines that matter when replaying globals: not "already exists".
pub fn unexpected_errors(messages: &str) -> Vec<String> {
    messages
        .lines()
        .filter(|l| l.contains("ERROR") && !l.contains("already exists"))
        .map(str::to_string)
        .collect()
}

/// psql's ERROR lines (with their context), or everything when there are none.
pub fn error_lines(messages: &str) -> String {
    let errs: Vec<&str> = messages
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("FATAL"))
        .collect();
    if errs.is_empty() {
        messages.to_string()
    } else {
        errs.join("\n")
    }
}

/// Create database `name` with the source's encoding and collation.
pub fn create_database(admin: &mut Client, name: &str, f: &PgFacts) -> DbResult<()> {
    let mut sql = format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_ident(name),
        quote_literal(&f.encoding),
        quote_literal(&f.collate),
        quote_literal(&f.ctype)
    );
    if f.locale_provider.as_deref() == Some("icu") {
        sql += &format!(
            " LOCALE_PROVIDER icu ICU_LOCALE {}",
            quote_literal(f.icu_locale.as_deref().unwrap_or("und"))
        );
    }
    admin.batch_execute(&sql).map_err(|e| {
        let msg = describe_error(&e);
        if msg.contains("locale") || msg.contains("collation") || msg.contains("encoding") {
            DbError(format!(
                "the source database's encoding or collation is not available here (backed up with \
                 ENCODING {}, LC_COLLATE {}, LC_CTYPE {}{}): {msg}",
                f.encoding,
                f.collate,
                f.ctype,
                f.icu_locale
                    .as_deref()
                    .map(|l| format!(", ICU locale {l}"))
                    .unwrap_or_default()
            ))
        } else {
            DbError(format!("cannot create database {name}: {msg}"))
        }
    })
}

/// Whether database `name` exists, and if so how many user tables it has.
pub fn database_tables(admin: &mut Client, dsn_of_db: &str, name: &str) -> DbResult<Option<usize>> {
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])?
        .is_some();
    if !exists {
        return Ok(None);
    }
    let mut c = connect(dsn_of_db)?;
    Ok(Some(list_tables(&mut c)?.len()))
}

pub fn drop_database(admin: &mut Client, name: &str, server_major: u32) -> DbResult<()> {
    let force = if server_major >= 13 {
        " WITH (FORCE)"
    } else {
        ""
    };
    admin.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {}{force}",
        quote_ident(name)
    ))?;
    Ok(())
}

pub fn server_major(client: &mut Client) -> DbResult<u32> {
    let v: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])?
        .get(0);
    Ok(v as u32 / 10000)
}

/// Of `roles`, those this server lacks.
pub fn missing_roles(client: &mut Client, roles: &[String]) -> DbResult<Vec<String>> {
    let have: BTreeSet<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(roles
        .iter()
        .filter(|r| !have.contains(*r))
        .cloned()
        .collect())
}

/// Create each role as NOLOGIN (ownership and grants only need it to exist).
pub fn create_roles(client: &mut Client, roles: &[String]) -> DbResult<()> {
    for r in roles {
        client
            .batch_execute(&format!("CREATE ROLE {} NOLOGIN", quote_ident(r)))
            .map_err(|e| DbError(format!("cannot create role {r}: {}", describe_error(&e))))?;
    }
    Ok(())
}

/// The source's extensions this server cannot provide (at the recorded version), described.
pub fn missing_extensions(
    client: &mut Client,
    wanted: &BTreeMap<String, String>,
) -> DbResult<Vec<String>> {
    let mut avail: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in client.query(
        "SELECT name::text, version FROM pg_available_extension_versions",
        &[],
    )? {
        avail.entry(r.get(0)).or_default().push(r.get(1));
    }
    let mut out = Vec::new();
    for (name, version) in wanted {
        match avail.get(name) {
            None => out.push(format!(
                "extension {name} {version} is not available on this server"
            )),
            Some(vs) if !vs.contains(version) => out.push(format!(
                "extension {name} {version} is not available on this server (it offers {})",
                vs.join(", ")
            )),
            Some(_) => {}
        }
    }
    Ok(out)
}

/// Compare the restored database at `dsn` with the facts recorded at backup: every table's row
/// count and (where recorded) checksum, and the large objects. Returns the differences.
///
/// Tables whose checksum is a row digest are read back with `COPY` on a second, tapped
/// connection ([`copy_tables`]) in this connection's snapshot; the rest are counted here.
pub fn verify(dsn: &str, facts: &PgFacts) -> DbResult<Vec<String>> {
    let rows_config = config(dsn)?;
    let mut client = connect(dsn)?;
    let client = &mut client;
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    client.batch_execute(SESSION)?;
    let mut restored = Fingerprint::new();
    let mut copied = Vec::new();
    for t in list_tables(client)? {
        let recorded = facts
            .tables
            .get(&t.name)
            .and_then(|f| f.checksum.as_deref());
        let fp = match recorded {
            Some(c) if rows::is_row_checksum(c) && !t.cols.is_empty() => {
                copied.push(t);
                continue;
            }
            Some(_) => table_fingerprint(client, &t.name, true),
            None => table_fingerprint(client, &t.name, false),
        }
        .map_err(|e| e.context(format!("fingerprinting {}", t.name)))?;
        restored.insert(t.name, fp);
    }
    if !copied.is_empty() {
        let snapshot: String = client.query_one("SELECT pg_export_snapshot()", &[])?.get(0);
        let mut sink = CheckedRows::default();
        copy_tables(&rows_config, &snapshot, &copied, &mut sink).map_err(DbError)?;
        restored.extend(sink.fingerprint);
    }
    let los = large_objects(client, facts.large_objects.checksum.is_some())?;
    client.batch_execute("COMMIT")?;
    let mut diffs = super::compare(&facts.tables, &restored);
    let want = &facts.large_objects;
    if los.rows != want.rows {
        diffs.push(format!(
            "large objects: {} restored, {} recorded at backup",
            los.rows, want.rows
        ));
    } else if let (Some(a), Some(b)) = (&want.checksum, &los.checksum)
        && a != b
    {
        diffs.push(format!(
            "large objects: content checksum {b} differs from {a} recorded at backup"
        ));
    }
    Ok(diffs)
}

/// Run an assertion: its first row's first column must be true.
pub fn assertion(client: &mut Client, sql: &str) -> DbResult<(bool, String)> {
    let msgs = client.simple_query(sql)?;
    for m in msgs {
        if let SimpleQueryMessage::Row(r) = m {
            return Ok(match r.get(0) {
                Some(v) if truthy(v) => (true, format!("returned {v}")),
                Some(v) => (false, format!("returned {v}, not true")),
                None => (false, "returned NULL, not true".to_string()),
            });
        }
    }
    Ok((false, "returned no rows".to_string()))
}

/// `pg_amcheck` (heap and B-tree checks, every index entry looked up) on one database of a server
/// reached at `dsn`. `Ok(None)` when clean; `Ok(Some(report))` when corruption was found.
pub fn amcheck(tools: &PgTools, dsn: &str) -> DbResult<Option<String>> {
    let prog = tools.program("pg_amcheck")?;
    let (mut cmd, conninfo) = client_command(&prog, dsn);
    let out = cmd
        .args(["--install-missing", "--heapallindexed", "--no-password"])
        .arg(conninfo)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DbError(format!("cannot run {}: {e}", prog.display())))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Ok(None),
        Some(2) => Ok(Some(tail_lines(&text, 5))),
        _ => Err(DbError(format!(
            "pg_amcheck failed ({}): {}",
            out.status,
            tail_lines(&text, 3)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(
            redact("postgres://app:s3cret@db1/orders"),
            "postgres://app:***@db1/orders"
        );
        assert_eq!(
            redact("postgres://app@db1/orders"),
            "postgres://app@db1/orders"
        );
        assert_eq!(
            redact("host=x password=y dbname=z"),
            "host=x dbname=z password=***"
        );
        assert_eq!(
            redact("host=x password='a b\\' c' dbname=z"),
            "host=x dbname=z password=***"
        );
        assert_eq!(
            redact("postgres://app:p@ss@db1/orders"),
            "postgres://app:***@db1/orders"
        );
        let with = with_password("postgres://db1/orders?sslmode=disable", "s3 cr&t");
        assert!(!redact(&with).contains("s3"), "{}", redact(&with));
        assert_eq!(strip_password(&with).1.as_deref(), Some("s3 cr&t"));
        let with = with_password("host=db1 dbname=orders", "it's");
        assert_eq!(strip_password(&with).1.as_deref(), Some("it's"));
        assert!(!redact(&with).contains("it"), "{}", redact(&with));
    }

    #[test]
    fn passwords_go_to_the_environment() {
        let s = |d: &str| strip_password(d);
        assert_eq!(
            s("postgres://app:s%40cret@db1:5432/orders"),
            (
                "postgres://app@db1:5432/orders".into(),
                Some("s@cret".into())
            )
        );
        assert_eq!(
            s("postgres://app@db1/orders"),
            ("postgres://app@db1/orders".into(), None)
        );
        assert_eq!(
            s("postgresql://db1/orders?user=app&password=x&sslmode=disable"),
            (
                "postgresql://db1/orders?user=app&sslmode=disable".into(),
                Some("x".into())
            )
        );
        assert_eq!(
            s("host=/tmp password='it\\'s me' dbname=x"),
            ("host=/tmp dbname=x".into(), Some("it's me".into()))
        );
        assert_eq!(
            s("host=h port=5 dbname=x"),
            ("host=h port=5 dbname=x".into(), None)
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn missing_programs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let tools = PgTools::in_dir(dir.path());
        let err = tools.program("pg_dump").unwrap_err().to_string();
        assert!(err.contains("pg_dump not found in"), "{err}");
        assert!(err.contains("BULWARK_PG_BINDIR"), "{err}");
    }
}
