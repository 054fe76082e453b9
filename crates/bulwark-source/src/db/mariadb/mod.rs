//! MariaDB and MySQL: a consistent logical backup (see [`backup`] for the consistency protocol),
//! and the tools to restore and verify one (here and in [`scratch`]).
//!
//! **Client.** Bulwark's own queries (the global read lock, the snapshot, facts, fingerprints,
//! checks, assertions) go through the `mysql` crate: synchronous like the rest of the sources,
//! built without TLS (no OpenSSL) and with a pure-Rust zlib. A persistent session is what the
//! consistency protocol needs (a lock and a snapshot held open across other work), which the
//! `mariadb` command line client in batch mode cannot give. The dump itself is `mariadb-dump`
//! (`mysqldump` for older clients), the restore the `mariadb` client: they know every object
//! type and every server version's syntax.
//!
//! **Connections** are named by a DSN, `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (also
//! `mariadb://`), with `?socket=PATH` to use a Unix socket instead of TCP. A password comes from
//! the DSN (percent-encoded) or `MYSQL_PWD`. It is never put on a command line or into a child's
//! environment: the client programs read it from a `--defaults-extra-file` written 0600 in a
//! private temporary directory, removed afterwards. Messages show the DSN with the password
//! replaced by `***`. TLS is not supported: use a Unix socket or a trusted network.
//!
//! **Fingerprint.** Every base table's exact row count (`COUNT(*)`), and for tables up to a size
//! limit a content checksum: the sum, as an exact decimal, of the first 64 bits of each row's
//! MD5 over the MD5 of every column's value as a binary string (`CAST(c AS BINARY)`; NULL is
//! marked). It is order-independent, reads no collation, and hashes each column on its own, so a
//! large value can never make the row digest NULL (which `CONCAT` would do beyond
//! `max_allowed_packet`). Values are compared by the text the server gives them, which is what a
//! logical dump carries; sessions use `time_zone = '+00:00'` so `TIMESTAMP`s read the same
//! everywhere. Views, sequences and the rows' history in system-versioned tables are not
//! fingerprinted (the dump holds the current rows); the number of views, routines, triggers,
//! events and sequences is recorded and compared instead.

pub mod backup;
pub mod scratch;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use ::mysql as driver;
use ::mysql::prelude::Queryable;
use ::mysql::{Conn, OptsBuilder, Value};
use serde::{Deserialize, Serialize};

pub use backup::{MariadbBackupOptions, MariadbDump, start_dump};

use super::{DbError, DbResult, Fingerprint, TableFingerprint, tail_lines, truthy};

/// What a MariaDB/MySQL backup records about the database, for compatibility and fidelity checks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MariadbFacts {
    pub database: String,
    /// `VERSION()`, e.g. `10.11.19-MariaDB-0+deb12u1`.
    pub server_version: String,
    /// `MariaDB` or `MySQL`.
    pub flavor: String,
    /// major * 10000 + minor * 100 + patch.
    pub version_num: u32,
    /// The database's default character set and collation (`CREATE DATABASE` on restore).
    pub character_set: String,
    pub collation: String,
    /// Every collation a table or column uses: the restore target must have them all.
    pub collations: Vec<String>,
    /// `@@lower_case_table_names`: a target with another setting may not find the tables.
    pub lower_case_table_names: u32,
    /// Base tables by storage engine.
    pub engines: BTreeMap<String, u64>,
    /// Tables not in InnoDB. Their reads are consistent only because the global read lock was
    /// held until the dump finished (see `read_lock_held_for_dump`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_transactional_tables: Vec<String>,
    /// How long writes were blocked by the global read lock until both snapshots were open, in
    /// milliseconds (with `read_lock_held_for_dump`, they also waited for the whole dump).
    pub read_lock_ms: u64,
    pub read_lock_held_for_dump: bool,
    /// The binary log position of the snapshot (`@@gtid_binlog_pos`, or MySQL's
    /// `@@gtid_executed`), read while the global read lock held commits: where a replica set up
    /// from this dump starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_position: Option<String>,
    /// Accounts named as DEFINER by views, routines, triggers and events (`user@host`): the
    /// restore target needs them for those objects to run.
    pub definers: Vec<String>,
    /// Schema objects that are not tables: `views`, `routines`, `triggers`, `events`,
    /// `sequences` -> how many.
    pub objects: BTreeMap<String, u64>,
    /// Every base table's exact row count, and a checksum for those up to `checksum_max_bytes`.
    pub tables: Fingerprint,
    pub checksum_max_bytes: u64,
    /// The dump's file name in the snapshot.
    pub dump_file: String,
    pub dump_format: String,
    /// `mariadb-dump --version`.
    pub dump_tool_version: String,
}

// ---------------------------------------------------------------------------------------------
// Programs.

/// Where the MariaDB programs are: `BULWARK_MARIADB_BINDIR`, else `PATH` and the sbin
/// directories (`mariadbd` lives in /usr/sbin).
#[derive(Clone, Debug)]
pub struct MariadbTools {
    bindir: Option<PathBuf>,
}

/// The dump program, under its current and its pre-10.5 name.
pub const DUMP: &[&str] = &["mariadb-dump", "mysqldump"];
/// The command line client.
pub const CLIENT: &[&str] = &["mariadb", "mysql"];
pub const SERVER: &[&str] = &["mariadbd"];
pub const INSTALL_DB: &[&str] = &["mariadb-install-db"];

impl MariadbTools {
    pub fn locate() -> MariadbTools {
        MariadbTools {
            bindir: std::env::var_os("BULWARK_MARIADB_BINDIR")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
        }
    }

    pub fn in_dir(dir: impl Into<PathBuf>) -> MariadbTools {
        MariadbTools {
            bindir: Some(dir.into()),
        }
    }

    /// The first of `names` found, or an error saying where they were looked for.
    pub fn program(&self, names: &[&str]) -> DbResult<PathBuf> {
        let dirs: Vec<PathBuf> = match &self.bindir {
            Some(d) => vec![d.clone()],
            None => std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
                .collect(),
        };
        for name in names {
            if let Some(p) = dirs
                .iter()
                .map(|d| d.join(name))
                .find(|p| super::postgres::is_executable(p))
            {
                return Ok(p);
            }
        }
        Err(DbError(match &self.bindir {
            Some(d) => format!(
                "{} not found in {} (from BULWARK_MARIADB_BINDIR): install the MariaDB programs there \
                 or point BULWARK_MARIADB_BINDIR at the directory that holds them",
                names[0],
                d.display()
            ),
            None => format!(
                "{} not found on PATH or in /usr/sbin: install MariaDB (Debian: mariadb-client, and \
                 mariadb-server for restore tests) or set BULWARK_MARIADB_BINDIR",
                names[0]
            ),
        }))
    }

    pub fn has(&self, names: &[&str]) -> bool {
        self.program(names).is_ok()
    }

    /// `PROGRAM --version`, trimmed.
    pub fn version(&self, names: &[&str]) -> DbResult<String> {
        let prog = self.program(names)?;
        let out = crate::child::command(&prog)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| DbError(format!("cannot run {}: {e}", prog.display())))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// The version number in a version text (`mariadbd  Ver 10.11.19-MariaDB…` or `10.11.19-…`):
/// major * 10000 + minor * 100 + patch.
pub fn version_num(text: &str) -> Option<u32> {
    let word = text
        .split(|c: char| c.is_whitespace() || c == '-')
        .find(|w| w.contains('.') && w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = word.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some(major * 10000 + minor * 100 + patch)
}

/// `10.11` from a version number.
pub fn major_minor(num: u32) -> String {
    format!("{}.{}", num / 10000, num / 100 % 100)
}

// ---------------------------------------------------------------------------------------------
// Connections.

const DEFAULT_PORT: u16 = 3306;

/// A parsed connection string. `Debug` and `Display` never show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct MariadbDsn {
    pub user: String,
    password: Option<String>,
    pub host: String,
    pub port: u16,
    /// A Unix socket to use instead of TCP.
    pub socket: Option<PathBuf>,
    /// Empty for connections that need no database (server administration).
    pub database: String,
}

/// `dsn` with `password` in its user information (percent-encoded), for a password read from a
/// file; the password never leaves the process except through an option file.
pub fn with_password(dsn: &str, password: &str) -> String {
    let Some(start) = dsn.find("://").map(|i| i + 3) else {
        return dsn.to_string();
    };
    let end = dsn[start..]
        .find(['/', '?'])
        .map_or(dsn.len(), |i| start + i);
    let authority = &dsn[start..end];
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
    let authority = match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or_default();
            format!("{user}:{encoded}@{}", &authority[at + 1..])
        }
        None => format!(":{encoded}@{authority}"),
    };
    format!("{}{authority}{}", &dsn[..start], &dsn[end..])
}

impl MariadbDsn {
    /// Parse `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?socket=PATH]` (or `mariadb://`).
    /// Without a user, the login name; without a password, `MYSQL_PWD` if set.
    pub fn parse(dsn: &str) -> DbResult<MariadbDsn> {
        let bad = |why: &str| {
            DbError(format!(
                "bad MariaDB connection string '{}': {why} (expected mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE, \
                 with ?socket=PATH for a Unix socket)",
                redact(dsn)
            ))
        };
        let rest = dsn
            .strip_prefix("mysql://")
            .or_else(|| dsn.strip_prefix("mariadb://"))
            .ok_or_else(|| bad("it must start with mysql:// or mariadb://"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
                None => (percent_decode(u), None),
            },
            None => (String::new(), None),
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad(&format!("port '{p}' is not a number")))?,
            None => DEFAULT_PORT,
        };
        let mut socket = None;
        for kv in query.into_iter().flat_map(|q| q.split('&')) {
            match kv.split_once('=') {
                Some(("socket", path)) if !path.is_empty() => {
                    socket = Some(PathBuf::from(percent_decode(path)))
                }
                _ => return Err(bad(&format!("unknown parameter '{kv}'"))),
            }
        }
        let database = percent_decode(database);
        if database.is_empty() {
            return Err(bad("no database named"));
        }
        if host.is_empty() && socket.is_none() {
            return Err(bad("no host"));
        }
        Ok(MariadbDsn {
            user: if user.is_empty() {
                bulwark_repo::user_name()
            } else {
                user
            },
            password: password.or_else(|| std::env::var("MYSQL_PWD").ok()),
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host
            },
            port,
            socket,
            database,
        })
    }

    /// A connection through a Unix socket.
    pub fn unix(socket: &Path, user: &str, password: Option<&str>, database: &str) -> MariadbDsn {
        MariadbDsn {
            user: user.into(),
            password: password.map(str::to_string),
            host: "localhost".into(),
            port: DEFAULT_PORT,
            socket: Some(socket.to_path_buf()),
            database: database.into(),
        }
    }

    /// The same server and account, another database (empty: none).
    pub fn with_database(&self, db: &str) -> MariadbDsn {
        MariadbDsn {
            database: db.into(),
            ..self.clone()
        }
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    fn opts(&self) -> OptsBuilder {
        let mut o = OptsBuilder::new()
            .user(Some(&self.user))
            .pass(self.password.as_deref())
            .db_name(Some(&self.database).filter(|d| !d.is_empty()))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(30)))
            // Text forms that do not depend on the server's or the session's defaults.
            .init(vec!["SET time_zone = '+00:00'", "SET NAMES utf8mb4"]);
        o = match &self.socket {
            Some(s) => o.socket(Some(s.to_string_lossy())),
            None => o.ip_or_hostname(Some(&self.host)).tcp_port(self.port),
        };
        o
    }

    /// A `[client]` option file for the client programs (0600, in `dir`): the connection and
    /// the password, which must never be on a command line.
    pub fn write_defaults_file(&self, dir: &Path) -> DbResult<PathBuf> {
        let path = dir.join("client.cnf");
        let mut text = format!("[client]\nuser={}\n", option_value(&self.user));
        if let Some(p) = &self.password {
            text += &format!("password={}\n", option_value(p));
        }
        match &self.socket {
            Some(s) => {
                text += &format!(
                    "protocol=SOCKET\nsocket={}\n",
                    option_value(&s.to_string_lossy())
                )
            }
            None => {
                text += &format!(
                    "protocol=TCP\nhost={}\nport={}\n",
                    option_value(&self.host),
                    self.port
                )
            }
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| DbError(format!("cannot write {}: {e}", path.display())))?;
        f.write_all(text.as_bytes())
            .map_err(|e| DbError(format!("cannot write {}: {e}", path.display())))?;
        Ok(path)
    }
}

impl fmt::Display for MariadbDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pw = if self.password.is_some() { ":***" } else { "" };
        match &self.socket {
            Some(s) => write!(
                f,
                "mysql://{}{pw}@localhost/{}?socket={}",
                self.user,
                self.database,
                s.display()
            ),
            None if self.host.contains(':') => write!(
                f,
                "mysql://{}{pw}@[{}]:{}/{}",
                self.user, self.host, self.port, self.database
            ),
            None => write!(
                f,
                "mysql://{}{pw}@{}:{}/{}",
                self.user, self.host, self.port, self.database
            ),
        }
    }
}

impl fmt::Debug for MariadbDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A DSN with its password blanked, for messages about a DSN that did not parse.
pub fn redact(dsn: &str) -> String {
    if let Some(i) = dsn.find("://") {
        let (scheme, rest) = dsn.split_at(i + 3);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            return format!("{scheme}{}:***{}", &rest[..colon], &rest[at..]);
        }
    }
    dsn.to_string()
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

/// A value for a MariaDB option file: double-quoted, with backslashes and quotes escaped.
fn option_value(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Connect with the driver; the error names the server (never the password) and the cause.
pub fn connect(dsn: &MariadbDsn) -> DbResult<Conn> {
    Conn::new(dsn.opts())
        .map_err(|e| DbError(format!("cannot connect to {dsn}: {}", describe_error(&e))))
}

/// A driver error as one line.
pub fn describe_error(e: &::mysql::Error) -> String {
    match e {
        ::mysql::Error::MySqlError(m) => {
            format!("ERROR {} ({}): {}", m.code, m.state, m.message.trim())
        }
        ::mysql::Error::DriverError(::mysql::DriverError::CouldNotConnect(Some((
            addr,
            why,
            _,
        )))) => format!("could not connect to {addr}: {why}"),
        other => other.to_string().replace('\n', " "),
    }
}

/// The server's error code, if the error is one.
pub fn error_code(e: &::mysql::Error) -> Option<u16> {
    match e {
        ::mysql::Error::MySqlError(m) => Some(m.code),
        _ => None,
    }
}

/// `` `name` `` with inner backticks doubled: safe for any identifier.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// `'text'` with quotes and backslashes escaped (for the default `sql_mode`, and under
/// `NO_BACKSLASH_ESCAPES` a backslash is then merely doubled text, never a quote).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------------
// Facts and fingerprints.

/// A base table as the fingerprint sees it.
#[derive(Clone, Debug)]
pub struct TableInfo {
    pub name: String,
    pub engine: String,
    /// `DATA_LENGTH` from information_schema: an estimate, for the checksum size limit.
    pub size: u64,
}

impl TableInfo {
    pub fn transactional(&self) -> bool {
        self.engine.eq_ignore_ascii_case("InnoDB")
    }
}

/// Every base table of database `db` (also system-versioned ones), by name.
pub fn list_tables(conn: &mut Conn, db: &str) -> DbResult<Vec<TableInfo>> {
    let rows: Vec<(String, Option<String>, Option<u64>)> = conn.exec(
        "SELECT TABLE_NAME, ENGINE, DATA_LENGTH FROM information_schema.TABLES
         WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME",
        (db,),
    )?;
    Ok(rows
        .into_iter()
        .map(|(name, engine, size)| TableInfo {
            name,
            engine: engine.unwrap_or_default(),
            size: size.unwrap_or(0),
        })
        .collect())
}

/// The columns a table's fingerprint reads, quoted, in order: all of them but the period columns
/// of system versioning (the restore sets those anew).
fn fingerprint_columns(conn: &mut Conn, db: &str, table: &str) -> DbResult<Vec<String>> {
    let rows: Vec<(String, Option<String>)> = conn.exec(
        "SELECT COLUMN_NAME, EXTRA FROM information_schema.COLUMNS
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (db, table),
    )?;
    Ok(rows
        .into_iter()
        .filter(|(_, extra)| {
            let e = extra.as_deref().unwrap_or("").to_ascii_uppercase();
            !e.contains("ROW START") && !e.contains("ROW END")
        })
        .map(|(c, _)| quote_ident(&c))
        .collect())
}

/// One table's exact row count and, if asked, its content checksum (see the module docs).
pub fn table_fingerprint(
    conn: &mut Conn,
    db: &str,
    table: &str,
    checksum: bool,
) -> DbResult<TableFingerprint> {
    let from = format!("{}.{}", quote_ident(db), quote_ident(table));
    if !checksum {
        let rows: Option<u64> = conn.query_first(format!("SELECT COUNT(*) FROM {from}"))?;
        return Ok(TableFingerprint {
            rows: rows.unwrap_or(0),
            checksum: None,
        });
    }
    let cols = fingerprint_columns(conn, db, table)?;
    let digests: Vec<String> = cols
        .iter()
        .map(|c| format!("IFNULL(MD5(CAST({c} AS BINARY)), '-')"))
        .collect();
    let row_digest = format!("MD5(CONCAT_WS(',', {}))", digests.join(", "));
    let sql = format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(CAST(CONV(LEFT({row_digest}, 16), 16, 10) AS UNSIGNED)), 0) AS CHAR) \
         FROM {from}"
    );
    let (rows, sum): (u64, String) = conn
        .query_first(sql)?
        .ok_or_else(|| DbError(format!("fingerprinting {table}: no result")))?;
    Ok(TableFingerprint {
        rows,
        checksum: Some(sum),
    })
}

/// The fingerprint of `tables`, with a checksum where `checksum` says so.
pub fn fingerprint(
    conn: &mut Conn,
    db: &str,
    tables: &[TableInfo],
    checksum: impl Fn(&TableInfo) -> bool,
) -> DbResult<Fingerprint> {
    let mut out = Fingerprint::new();
    for t in tables {
        let fp = table_fingerprint(conn, db, &t.name, checksum(t))
            .map_err(|e| e.context(format!("fingerprinting {}", t.name)))?;
        out.insert(t.name.clone(), fp);
    }
    Ok(out)
}

/// How many views, routines, triggers, events and sequences database `db` holds.
pub fn objects(conn: &mut Conn, db: &str) -> DbResult<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for (name, sql) in [
        (
            "views",
            "SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?",
        ),
        (
            "routines",
            "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
        ),
        (
            "triggers",
            "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
        ),
        (
            "events",
            "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?",
        ),
        (
            "sequences",
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'SEQUENCE'",
        ),
    ] {
        let n: Option<u64> = conn.exec_first(sql, (db,))?;
        out.insert(name.to_string(), n.unwrap_or(0));
    }
    Ok(out)
}

/// The accounts named as DEFINER in database `db`, as `user@host`.
pub fn definers(conn: &mut Conn, db: &str) -> DbResult<Vec<String>> {
    let rows: Vec<String> = conn.exec(
        "SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?
         UNION SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?
         UNION SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?
         UNION SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?",
        (db, db, db, db),
    )?;
    let set: BTreeSet<String> = rows.into_iter().filter(|d| !d.is_empty()).collect();
    Ok(set.into_iter().collect())
}

/// Every collation database `db`, its tables and its columns use.
fn collations(conn: &mut Conn, db: &str) -> DbResult<Vec<String>> {
    let rows: Vec<String> = conn.exec(
        "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?
         UNION SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_COLLATION IS NOT NULL
         UNION SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND COLLATION_NAME IS NOT NULL",
        (db, db, db),
    )?;
    let set: BTreeSet<String> = rows.into_iter().collect();
    Ok(set.into_iter().collect())
}

/// The server's identity: (`VERSION()`, flavor, version number).
pub fn server_version(conn: &mut Conn) -> DbResult<(String, String, u32)> {
    let (version, comment): (String, Option<String>) = conn
        .query_first("SELECT VERSION(), @@version_comment")?
        .ok_or_else(|| DbError::new("SELECT VERSION() returned nothing"))?;
    let num = version_num(&version)
        .ok_or_else(|| DbError(format!("cannot tell the server version from '{version}'")))?;
    let maria = version.contains("MariaDB")
        || comment
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().contains("mariadb"));
    let flavor = if maria { "MariaDB" } else { "MySQL" };
    Ok((version, flavor.to_string(), num))
}

/// A database's default character set and collation; an error when it does not exist.
fn database_charset(conn: &mut Conn, dsn: &MariadbDsn) -> DbResult<(String, String)> {
    let row: Option<(String, String)> = conn.exec_first(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        (&dsn.database,),
    )?;
    row.ok_or_else(|| {
        DbError(format!(
            "database {} does not exist on {dsn} (or the account may not see it)",
            dsn.database
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Restore and verification.

/// Run the `mariadb` client on `dsn` with `input` as the script; its messages go to `log`. It
/// stops at the first error. Returns its messages from this run.
pub fn run_client(
    tools: &MariadbTools,
    dsn: &MariadbDsn,
    input: &mut dyn Read,
    log: &Path,
) -> DbResult<String> {
    let prog = tools.program(CLIENT)?;
    let dir = private_dir("bulwark-mariadb-client-")?;
    let defaults = dsn.write_defaults_file(dir.path())?;
    let start = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let logf = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| DbError(format!("cannot write {}: {e}", log.display())))?;
    let mut child = client_command(&prog, &defaults)
        .args([
            "--batch",
            "--default-character-set=utf8mb4",
            "--max-allowed-packet=1G",
        ])
        .arg(format!("--database={}", dsn.database))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::from(logf))
        .spawn()
        .map_err(|e| DbError(format!("cannot run {}: {e}", prog.display())))?;
    let mut stdin = child.stdin.take().expect("piped");
    let fed = io::copy(input, &mut stdin);
    drop(stdin);
    let status = child
        .wait()
        .map_err(|e| DbError(format!("waiting for {}: {e}", prog.display())))?;
    let data = fs::read(log).unwrap_or_default();
    let messages =
        String::from_utf8_lossy(data.get(start as usize..).unwrap_or_default()).into_owned();
    if !status.success() {
        return Err(DbError(format!(
            "{} failed ({status}): {}",
            prog.file_name().unwrap_or_default().to_string_lossy(),
            tail_lines(&messages, 3)
        )));
    }
    match fed {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(DbError(format!("reading the dump: {e}")))
        }
        Err(e) => Err(DbError(format!(
            "the client stopped reading the dump: {e}: {}",
            tail_lines(&messages, 3)
        ))),
        Ok(_) => Ok(messages),
    }
}

/// A command for a client program reading its connection from `defaults` (which must be the
/// first option), with the client environment variables that could redirect it removed.
pub fn client_command(prog: &Path, defaults: &Path) -> Command {
    let mut c = crate::child::command(prog);
    c.arg(format!("--defaults-extra-file={}", defaults.display()));
    for v in [
        "MYSQL_PWD",
        "MYSQL_HOST",
        "MYSQL_TCP_PORT",
        "MYSQL_UNIX_PORT",
        "MYSQL_HISTFILE",
    ] {
        c.env_remove(v);
    }
    c
}

/// A temporary directory only this user can enter (for option files and sockets).
pub fn private_dir(prefix: &str) -> DbResult<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(super::scratch::scratch_base())
        .map_err(|e| DbError(format!("cannot create a temporary directory: {e}")))?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .map_err(|e| DbError(format!("cannot restrict {}: {e}", dir.path().display())))?;
    Ok(dir)
}

/// Create database `name` with the source's character set and collation.
pub fn create_database(admin: &mut Conn, name: &str, f: &MariadbFacts) -> DbResult<()> {
    admin
        .query_drop(format!(
            "CREATE DATABASE {} CHARACTER SET {} COLLATE {}",
            quote_ident(name),
            quote_ident(&f.character_set),
            quote_ident(&f.collation)
        ))
        .map_err(|e| {
            DbError(format!(
                "cannot create database {name}: {}",
                describe_error(&e)
            ))
        })
}

pub fn drop_database(admin: &mut Conn, name: &str) -> DbResult<()> {
    admin.query_drop(format!("DROP DATABASE IF EXISTS {}", quote_ident(name)))?;
    Ok(())
}

/// Whether database `name` exists, and if so how many tables, views and routines it holds.
pub fn database_contents(admin: &mut Conn, name: &str) -> DbResult<Option<u64>> {
    let exists: Option<String> = admin.exec_first(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        (name,),
    )?;
    if exists.is_none() {
        return Ok(None);
    }
    let n: Option<u64> = admin.exec_first(
        "SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?)
              + (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?)
              + (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?)",
        (name, name, name),
    )?;
    Ok(Some(n.unwrap_or(0)))
}

/// What keeps this server from restoring the backup faithfully (empty: nothing), and what
/// merely deserves a warning.
pub fn compatibility(conn: &mut Conn, f: &MariadbFacts) -> DbResult<(Vec<String>, Vec<String>)> {
    let (version, flavor, num) = server_version(conn)?;
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    if num / 100 < f.version_num / 100 {
        problems.push(format!(
            "the server runs {flavor} {version}, older than the backup's {} {}: a dump restores into the same \
             or a newer version",
            f.flavor, f.server_version
        ));
    } else if num / 100 > f.version_num / 100 || flavor != f.flavor {
        warnings.push(format!(
            "restoring a {} {} dump into {flavor} {}",
            f.flavor,
            major_minor(f.version_num),
            major_minor(num)
        ));
    }
    let have: BTreeSet<String> = conn
        .query::<String, _>("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")?
        .into_iter()
        .collect();
    let missing: Vec<&String> = f.collations.iter().filter(|c| !have.contains(*c)).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "collations the backup uses are not available: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let lctn: Option<u32> = conn.query_first("SELECT @@lower_case_table_names")?;
    if lctn != Some(f.lower_case_table_names) {
        warnings.push(format!(
            "lower_case_table_names is {} here, {} at the backup: table names may resolve differently",
            lctn.unwrap_or(0),
            f.lower_case_table_names
        ));
    }
    Ok((problems, warnings))
}

/// `user@host` split at the last `@`.
fn split_account(account: &str) -> (&str, &str) {
    account.rsplit_once('@').unwrap_or((account, "%"))
}

/// Of `accounts` (`user@host`), those this server lacks.
pub fn missing_accounts(conn: &mut Conn, accounts: &[String]) -> DbResult<Vec<String>> {
    let mut out = Vec::new();
    for a in accounts {
        let (user, host) = split_account(a);
        let found: Option<u64> = conn.exec_first(
            "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?",
            (user, host),
        )?;
        if found.unwrap_or(0) == 0 {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// Create each account locked (it can never log in) with every privilege on database `db`, so
/// that the views, routines and triggers it defines work on a throwaway server.
pub fn create_definers(conn: &mut Conn, accounts: &[String], db: &str) -> DbResult<()> {
    for a in accounts {
        let (user, host) = split_account(a);
        let acct = format!("{}@{}", quote_literal(user), quote_literal(host));
        conn.query_drop(format!("CREATE USER IF NOT EXISTS {acct} ACCOUNT LOCK"))
            .and_then(|_| conn.query_drop(format!("GRANT ALL ON {}.* TO {acct}", quote_ident(db))))
            .map_err(|e| DbError(format!("cannot create account {a}: {}", describe_error(&e))))?;
    }
    Ok(())
}

/// Compare a restored database with the facts recorded at backup: every table's row count and
/// (where recorded) checksum, and the number of each kind of schema object. Returns the
/// differences.
pub fn verify(conn: &mut Conn, db: &str, f: &MariadbFacts) -> DbResult<Vec<String>> {
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")?;
    let tables = list_tables(conn, db)?;
    let restored = fingerprint(conn, db, &tables, |t| {
        f.tables.get(&t.name).is_some_and(|r| r.checksum.is_some())
    })?;
    let objs = objects(conn, db)?;
    conn.query_drop("COMMIT")?;
    let mut diffs = super::compare(&f.tables, &restored);
    for (kind, want) in &f.objects {
        let got = objs.get(kind).copied().unwrap_or(0);
        if got != *want {
            diffs.push(format!("{kind}: {got} restored, {want} recorded at backup"));
        }
    }
    Ok(diffs)
}

/// `CHECK TABLE … EXTENDED` of every base table: the problems found (empty: all OK). Engines
/// that cannot check (e.g. MEMORY) say so in a note, which is not a problem.
pub fn check_tables(conn: &mut Conn, db: &str) -> DbResult<(usize, Vec<String>)> {
    let tables = list_tables(conn, db)?;
    let mut problems = Vec::new();
    for group in tables.chunks(64) {
        let names: Vec<String> = group
            .iter()
            .map(|t| format!("{}.{}", quote_ident(db), quote_ident(&t.name)))
            .collect();
        let rows: Vec<(String, String, String, String)> =
            conn.query(format!("CHECK TABLE {} EXTENDED", names.join(", ")))?;
        for (table, _op, kind, text) in rows {
            let bad = match kind.to_ascii_lowercase().as_str() {
                "error" => true,
                "status" => !text.eq_ignore_ascii_case("OK"),
                _ => false,
            };
            if bad {
                problems.push(format!("{table}: {kind}: {text}"));
            }
        }
    }
    Ok((tables.len(), problems))
}

/// Run an assertion: its first row's first column must be true.
pub fn assertion(conn: &mut Conn, sql: &str) -> DbResult<(bool, String)> {
    let row: Option<::mysql::Row> = conn.query_first(sql)?;
    let Some(row) = row else {
        return Ok((false, "returned no rows".into()));
    };
    let (ok, shown) = match row.as_ref(0) {
        None | Some(Value::NULL) => (false, "NULL".to_string()),
        Some(Value::Int(i)) => (*i != 0, i.to_string()),
        Some(Value::UInt(i)) => (*i != 0, i.to_string()),
        Some(Value::Float(x)) => (*x != 0.0, x.to_string()),
        Some(Value::Double(x)) => (*x != 0.0, x.to_string()),
        Some(Value::Bytes(b)) => {
            let t = String::from_utf8_lossy(b).into_owned();
            (truthy(&t), t)
        }
        Some(other) => (false, other.as_sql(false)),
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
    fn a_password_from_a_file_joins_the_dsn() {
        for dsn in [
            "mysql://app@db1:3307/shop",
            "mysql://app:old@db1/shop?socket=/s",
            "mysql://db1/shop",
        ] {
            let with = with_password(dsn, "p@ss:w/rd %");
            let d = MariadbDsn::parse(&with).unwrap();
            assert_eq!(d.password.as_deref(), Some("p@ss:w/rd %"), "{with}");
            assert_eq!(d.database, "shop");
            assert!(!redact(&with).contains("p@ss"), "{}", redact(&with));
        }
    }

    #[test]
    fn dsns_parse_and_never_show_passwords() {
        let d = MariadbDsn::parse("mysql://app:s%40c%3Aret@db1:3307/shop").unwrap();
        assert_eq!(
            (
                d.user.as_str(),
                d.host.as_str(),
                d.port,
                d.database.as_str()
            ),
            ("app", "db1", 3307, "shop")
        );
        assert_eq!(d.password.as_deref(), Some("s@c:ret"));
        assert_eq!(d.to_string(), "mysql://app:***@db1:3307/shop");
        assert!(!format!("{d:?}").contains("s@c"));
        let s =
            MariadbDsn::parse("mariadb://root@localhost/x?socket=/run/mysqld/mysqld.sock").unwrap();
        assert_eq!(
            s.socket.as_deref(),
            Some(Path::new("/run/mysqld/mysqld.sock"))
        );
        assert_eq!(s.port, 3306);
        let v6 = MariadbDsn::parse("mysql://u@[::1]:3310/d").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 3310));
        assert_eq!(v6.with_database("").database, "");
        for (bad, why) in [
            ("postgres://u@h/d", "mysql://"),
            ("mysql://u:pw@h:port/d", "not a number"),
            ("mysql://u:pw@h/", "no database"),
            ("mysql://u:pw@h/d?ssl=1", "unknown parameter"),
        ] {
            let e = MariadbDsn::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains(":pw@"), "{e}");
        }
        assert_eq!(redact("mysql://a:b@h/d"), "mysql://a:***@h/d");
        assert_eq!(redact("mysql://a@h/d"), "mysql://a@h/d");
    }

    #[test]
    fn option_files_hold_any_password() {
        let dir = private_dir("bulwark-test-").unwrap();
        let d = MariadbDsn::unix(Path::new("/tmp/s"), "u", Some("a\"b\\c #d"), "x");
        let p = d.write_defaults_file(dir.path()).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.contains("password=\"a\\\"b\\\\c #d\"\n"), "{text}");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn versions_and_quoting() {
        assert_eq!(
            version_num("mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu"),
            Some(101119)
        );
        assert_eq!(version_num("8.0.36"), Some(80036));
        assert_eq!(version_num("no digits"), None);
        assert_eq!(major_minor(101119), "10.11");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_literal("it's \\"), "'it''s \\\\'");
        assert_eq!(split_account("app@%"), ("app", "%"));
        assert_eq!(split_account("we@ird@localhost"), ("we@ird", "localhost"));
    }

    #[test]
    fn missing_programs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let tools = MariadbTools::in_dir(dir.path());
        let err = tools.program(DUMP).unwrap_err().to_string();
        assert!(err.contains("mariadb-dump not found in"), "{err}");
        assert!(err.contains("BULWARK_MARIADB_BINDIR"), "{err}");
    }
}
