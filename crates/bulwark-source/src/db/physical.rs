//! PostgreSQL physical backups: base backups (read from the data directory or streamed from
//! `pg_basebackup`), the names and timelines of WAL, and private servers that replay archived WAL
//! to a point in time.
//!
//! - A base backup reads the data directory itself when the server runs on this host and its
//!   files are readable (see [`super::datadir`]), and otherwise streams
//!   `pg_basebackup -D - -Ft -X none --checkpoint=fast`: one tar stream of the data directory on
//!   standard output, with `backup_manifest` as its last member. Either way the backup ends only
//!   once the WAL it needs is archived: a base backup that finished is restorable from the
//!   archive. Its start and end LSN and timeline come from the server (the
//!   manifest's `WAL-Ranges`, or `pg_backup_stop`), the cluster's system identifier from
//!   `global/pg_control`.
//! - WAL names: segment `TTTTTTTTXXXXXXXXYYYYYYYY` is number `X * (4 GiB / segment size) + Y` of
//!   timeline `T`; `N.history` lists the timelines N branched from and where. Recovery along
//!   timeline `T` reads each segment from the newest timeline of `T`'s history that had begun by
//!   then ([`Lineage::timeline_of`]).
//! - A replay server is `postgres` started on a restored data directory with `recovery.signal`,
//!   settings given on its command line only (nothing written to the directory's configuration),
//!   a private Unix socket, trust authentication through its own `hba_file`, no TCP listener and
//!   `archive_mode = off`, so it can never archive into the stream it restores from.
//!
//! PostgreSQL 13 or newer (backup manifests); tablespaces other than the default two are refused.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use ::postgres::Client;
use serde::{Deserialize, Serialize};

use super::datadir::{self, DataDirBackup};
use super::dump::collect;
use super::postgres::{PgTools, client_command, connect, describe_error, quote_literal, redact};
use super::scratch::{PG_REDIRECTING, RunAs, scratch_user, server_command};
use super::{DbError, DbResult, tail_lines};
use crate::read_ahead::ReadAhead;

/// The key of [`PhysicalFacts`] in a snapshot's `meta`.
pub const META_KEY: &str = "postgres_physical";

/// The table heartbeats go in, in the dataset's database.
pub const HEARTBEAT_TABLE: &str = "public.bulwark_heartbeat";

// ---------------------------------------------------------------------------------------------
// LSNs, segments, timelines.

/// A WAL location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl FromStr for Lsn {
    type Err = DbError;
    fn from_str(s: &str) -> DbResult<Lsn> {
        let bad = || DbError(format!("'{s}' is not a WAL location (like 0/3000028)"));
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn(((hi as u64) << 32) | lo as u64))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 as u32)
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Segment numbering for one segment size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segments {
    pub size: u64,
}

impl Segments {
    fn per_xlogid(&self) -> u64 {
        0x1_0000_0000 / self.size
    }

    pub fn of(&self, lsn: Lsn) -> u64 {
        lsn.0 / self.size
    }

    /// The first location of segment `segno`.
    pub fn start(&self, segno: u64) -> Lsn {
        Lsn(segno * self.size)
    }

    pub fn name(&self, timeline: u32, segno: u64) -> String {
        format!(
            "{timeline:08X}{:08X}{:08X}",
            segno / self.per_xlogid(),
            segno % self.per_xlogid()
        )
    }

    /// `(timeline, segment number)` of a segment file name (also of a `.partial` one).
    pub fn parse(&self, name: &str) -> Option<(u32, u64)> {
        let base = name.strip_suffix(".partial").unwrap_or(name);
        if base.len() != 24 || !base.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let tli = u32::from_str_radix(&base[..8], 16).ok()?;
        let log = u64::from_str_radix(&base[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&base[16..], 16).ok()?;
        (seg < self.per_xlogid()).then_some((tli, log * self.per_xlogid() + seg))
    }
}

pub fn history_file_name(timeline: u32) -> String {
    format!("{timeline:08X}.history")
}

/// The timeline a `.history` file belongs to.
pub fn history_timeline(name: &str) -> Option<u32> {
    let t = name.strip_suffix(".history")?;
    (t.len() == 8).then(|| u32::from_str_radix(t, 16).ok())?
}

/// One line of a history file: timeline `parent` ended at `switch`, where its child began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Branch {
    pub parent: u32,
    pub switch: Lsn,
}

/// A history file's branches, oldest first (`parentTLI<TAB>switchpoint<TAB>reason` lines).
pub fn parse_history(text: &str) -> DbResult<Vec<Branch>> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let (Some(tli), Some(lsn)) = (f.next(), f.next()) else {
            return Err(DbError(format!("bad history line '{line}'")));
        };
        out.push(Branch {
            parent: tli
                .parse()
                .map_err(|_| DbError(format!("bad timeline in history line '{line}'")))?,
            switch: lsn.parse()?,
        });
    }
    Ok(out)
}

/// A timeline with its history: which timelines came before it and where each ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lineage {
    pub timeline: u32,
    /// The branches that led to `timeline`, oldest first.
    pub branches: Vec<Branch>,
}

impl Lineage {
    pub fn new(timeline: u32, branches: Vec<Branch>) -> Lineage {
        Lineage { timeline, branches }
    }

    /// Whether recovery along this timeline passes through `tli`.
    pub fn includes(&self, tli: u32) -> bool {
        tli == self.timeline || self.branches.iter().any(|b| b.parent == tli)
    }

    /// The timeline recovery along this lineage reads segment `segno` from: the newest one
    /// begun by that segment (a switch point's segment is read from the new timeline).
    pub fn timeline_of(&self, segno: u64, segs: Segments) -> u32 {
        let mut tli = self.timeline;
        for b in self.branches.iter().rev() {
            if segno >= segs.of(b.switch) {
                break;
            }
            tli = b.parent;
        }
        tli
    }

    /// Where recovery along this lineage leaves timeline `tli` (None: it never does).
    pub fn end_of(&self, tli: u32) -> Option<Lsn> {
        self.branches
            .iter()
            .position(|b| b.parent == tli)
            .map(|i| self.branches[i].switch)
    }
}

// ---------------------------------------------------------------------------------------------
// Base backups.

/// What a base backup records about the cluster and itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PhysicalFacts {
    pub server_version: String,
    pub server_version_num: u32,
    pub major: u32,
    /// `pg_control`'s system identifier (as text: JSON numbers lose precision above 2^53).
    pub system_identifier: String,
    /// The WAL stream in the repository (see `bulwark_repo::wal`).
    pub wal_stream: String,
    pub timeline: u32,
    pub start_lsn: Lsn,
    /// Replay must reach this location for the restored cluster to be consistent.
    pub end_lsn: Lsn,
    pub wal_segment_size: u64,
    /// The server's clock when the backup began and when it had ended (its WAL archived).
    pub start_time: chrono::DateTime<chrono::Utc>,
    pub stop_time: chrono::DateTime<chrono::Utc>,
    /// The database the dataset's connection names (its checks and heartbeat run there).
    pub database: String,
    /// The cluster's bootstrap superuser.
    pub superuser: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_directory: Option<String>,
    pub files: u64,
    pub bytes: u64,
    /// Empty when the backup read the data directory itself.
    #[serde(default)]
    pub pg_basebackup_version: String,
    /// Whether the backup read the data directory itself (not through `pg_basebackup`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
}

impl PhysicalFacts {
    pub fn segments(&self) -> Segments {
        Segments {
            size: self.wal_segment_size,
        }
    }

    pub fn system_id(&self) -> u64 {
        self.system_identifier.parse().unwrap_or_default()
    }

    /// The first segment the backup needs.
    pub fn start_segment(&self) -> u64 {
        self.segments().of(self.start_lsn)
    }

    pub fn end_segment(&self) -> u64 {
        self.segments().of(Lsn(self.end_lsn.0.saturating_sub(1)))
    }
}

pub struct BaseBackupOptions {
    pub dsn: String,
    pub tools: PgTools,
    pub read: BaseBackupRead,
}

/// How a base backup reads the cluster's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BaseBackupRead {
    /// The data directory itself when the server runs on this host and its files are readable,
    /// otherwise `pg_basebackup`.
    #[default]
    Auto,
    /// The data directory itself, or fail saying why not.
    Direct,
    /// `pg_basebackup`'s stream, wherever the server runs.
    PgBasebackup,
}

impl FromStr for BaseBackupRead {
    type Err = DbError;
    fn from_str(s: &str) -> DbResult<BaseBackupRead> {
        match s {
            "auto" => Ok(BaseBackupRead::Auto),
            "direct" => Ok(BaseBackupRead::Direct),
            "pg_basebackup" => Ok(BaseBackupRead::PgBasebackup),
            other => Err(DbError(format!(
                "'{other}' is not auto, direct or pg_basebackup"
            ))),
        }
    }
}

/// What is known about the cluster before its base backup streams.
#[derive(Clone, Debug)]
pub struct ClusterFacts {
    pub server_version: String,
    pub server_version_num: u32,
    pub database: String,
    pub superuser: String,
    pub data_directory: Option<String>,
    pub wal_segment_size: u64,
    pub start_time: chrono::DateTime<chrono::Utc>,
    /// Empty when the backup reads the data directory itself.
    pub pg_basebackup_version: String,
}

/// A base backup under way.
pub struct BaseBackup {
    pub cluster: ClusterFacts,
    pub source: BaseBackupSource,
}

pub enum BaseBackupSource {
    /// Read the stream (a tar archive) to its end, then call [`BaseBackupStream::finish`].
    Stream(BaseBackupStream),
    /// Read the directory's files, then stop the backup.
    DataDir(DataDirBackup),
}

/// `pg_basebackup`'s standard output, read ahead (see [`ReadAhead`]): the server and
/// `pg_basebackup` go on streaming while the backup compresses what they sent before.
pub struct BaseBackupStream {
    child: Child,
    stdout: ReadAhead,
    stderr: Option<std::thread::JoinHandle<String>>,
    dsn: String,
}

impl Read for BaseBackupStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stdout.read(buf)
    }
}

impl Drop for BaseBackupStream {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What `backup_manifest` says about the WAL a backup needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRange {
    pub timeline: u32,
    pub start: Lsn,
    pub end: Lsn,
}

/// The WAL range of a backup manifest (the range on the backup's own timeline).
pub fn manifest_wal_range(manifest: &[u8]) -> DbResult<WalRange> {
    #[derive(Deserialize)]
    struct Range {
        #[serde(rename = "Timeline")]
        timeline: u32,
        #[serde(rename = "Start-LSN")]
        start: Lsn,
        #[serde(rename = "End-LSN")]
        end: Lsn,
    }
    #[derive(Deserialize)]
    struct Manifest {
        #[serde(rename = "WAL-Ranges")]
        wal_ranges: Vec<Range>,
    }
    let m: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| DbError(format!("the backup manifest is unreadable: {e}")))?;
    let first = m.wal_ranges.iter().map(|r| r.start).min();
    let last = m.wal_ranges.iter().max_by_key(|r| r.end);
    match (first, last) {
        (Some(start), Some(last)) => Ok(WalRange {
            timeline: last.timeline,
            start,
            end: last.end,
        }),
        _ => Err(DbError("the backup manifest lists no WAL range".into())),
    }
}

fn setting(client: &mut Client, name: &str) -> DbResult<Option<String>> {
    Ok(client
        .query_opt("SELECT setting FROM pg_settings WHERE name = $1", &[&name])?
        .map(|r| r.get(0)))
}

/// Check the cluster can be backed up physically, and start its base backup.
pub fn start_base_backup(opts: &BaseBackupOptions) -> DbResult<BaseBackup> {
    let mut client = connect(&opts.dsn)?;
    let row = client.query_one(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int4,
                current_database()::text, (SELECT rolname::text FROM pg_roles WHERE oid = 10),
                pg_size_bytes(current_setting('wal_segment_size'))::int8, (extract(epoch FROM now()) * 1000000)::int8,
                (SELECT count(*)::int8 FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))",
        &[],
    )?;
    let server_version: String = row.get(0);
    let num = row.get::<_, i32>(1) as u32;
    let major = num / 10000;
    if major < 13 {
        return Err(DbError(format!(
            "PostgreSQL {server_version} is not supported for physical backups: they need 13 or newer (backup manifests)"
        )));
    }
    if row.get::<_, i64>(6) > 0 {
        return Err(DbError(
            "the cluster has tablespaces of its own: physical backups of such clusters are not supported yet \
             (use method = \"logical\")"
                .into(),
        ));
    }
    let archive_mode = setting(&mut client, "archive_mode")?.unwrap_or_default();
    let command = setting(&mut client, "archive_command")?.unwrap_or_default();
    let library = setting(&mut client, "archive_library")?.unwrap_or_default();
    if archive_mode == "off" || (command.is_empty() && library.is_empty()) {
        return Err(DbError(format!(
            "the cluster does not archive its WAL (archive_mode = {archive_mode}, archive_command = '{command}'): \
             a physical backup needs it; set archive_mode = on and archive_command = \
             'bulwark wal-push -c POLICY --dataset NAME %p', then restart the server"
        )));
    }
    let data_directory = setting(&mut client, "data_directory")?;
    let mut cluster = ClusterFacts {
        server_version,
        server_version_num: num,
        database: row.get(2),
        superuser: row
            .get::<_, Option<String>>(3)
            .unwrap_or_else(|| "postgres".into()),
        data_directory: data_directory.clone(),
        wal_segment_size: row.get::<_, i64>(4) as u64,
        start_time: from_micros(row.get(5)),
        pg_basebackup_version: String::new(),
    };
    if opts.read != BaseBackupRead::PgBasebackup {
        let local = match &data_directory {
            Some(dir) => match datadir::not_the_servers(&mut client, Path::new(dir))? {
                None => Ok(dir),
                Some(why) => Err(why),
            },
            None => Err("the server names no data_directory".to_string()),
        };
        match (local, opts.read) {
            (Ok(dir), _) => {
                let segments = Segments {
                    size: cluster.wal_segment_size,
                };
                let backup = DataDirBackup::start(client, Path::new(dir), major, segments)?;
                return Ok(BaseBackup {
                    cluster,
                    source: BaseBackupSource::DataDir(backup),
                });
            }
            (Err(why), BaseBackupRead::Direct) => {
                return Err(DbError(format!(
                    "cannot read the cluster's data directory itself: {why} \
                     (hint: run the backup on the database host as a user who can read it, or set base_backup = \"pg_basebackup\")"
                )));
            }
            (Err(why), _) => tracing::info!("base backup through pg_basebackup: {why}"),
        }
    }
    drop(client);
    let prog = opts.tools.program("pg_basebackup")?;
    let (pgb_version, pgb_major) = opts.tools.version("pg_basebackup")?;
    if pgb_major < major {
        return Err(DbError(format!(
            "pg_basebackup {pgb_version} cannot back up a PostgreSQL {} server: set BULWARK_PG_BINDIR \
             to a PostgreSQL {major} bin directory",
            cluster.server_version
        )));
    }
    cluster.pg_basebackup_version = pgb_version;
    let (mut cmd, conninfo) = client_command(&prog, &opts.dsn);
    let mut child = cmd
        .arg(format!("--dbname={conninfo}"))
        .args([
            "--pgdata=-",
            "--format=tar",
            "--wal-method=none",
            "--checkpoint=fast",
            "--no-password",
            "--label=bulwark",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DbError(format!("cannot run {}: {e}", prog.display())))?;
    let stderr = Some(collect(child.stderr.take().expect("piped")));
    let stdout = ReadAhead::spawn("pg_basebackup", child.stdout.take().expect("piped"))
        .map_err(|e| DbError(format!("cannot start reading pg_basebackup: {e}")))?;
    Ok(BaseBackup {
        cluster,
        source: BaseBackupSource::Stream(BaseBackupStream {
            child,
            stdout,
            stderr,
            dsn: opts.dsn.clone(),
        }),
    })
}

impl BaseBackupStream {
    /// Once the stream was read to its end: whether `pg_basebackup` succeeded, and the server's
    /// clock now that the backup's WAL is archived.
    pub fn finish(mut self) -> DbResult<chrono::DateTime<chrono::Utc>> {
        io::copy(&mut self.stdout, &mut io::sink())
            .map_err(|e| DbError(format!("reading pg_basebackup: {e}")))?;
        let status = self
            .child
            .wait()
            .map_err(|e| DbError(format!("waiting for pg_basebackup: {e}")))?;
        let errors = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if !status.success() {
            return Err(DbError(format!(
                "pg_basebackup failed ({status}): {}",
                tail_lines(&errors, 3)
            )));
        }
        let mut client = connect(&self.dsn)?;
        server_clock(&mut client)
    }

    /// The reason the stream failed, when `pg_basebackup` has exited unsuccessfully.
    pub fn failure(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(s)) if !s.success() => {
                let errors = self
                    .stderr
                    .take()
                    .and_then(|h| h.join().ok())
                    .unwrap_or_default();
                Some(format!(
                    "pg_basebackup failed ({s}): {}",
                    tail_lines(&errors, 3)
                ))
            }
            _ => None,
        }
    }
}

/// The server's clock.
pub(super) fn server_clock(client: &mut Client) -> DbResult<chrono::DateTime<chrono::Utc>> {
    let now: i64 = client
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8",
            &[],
        )?
        .get(0);
    Ok(from_micros(now))
}

/// A time the server gave as microseconds since the epoch (the driver is built without chrono).
pub fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// The system identifier in a `pg_control` file's first bytes.
pub fn control_system_identifier(pg_control: &[u8]) -> DbResult<u64> {
    pg_control
        .get(..8)
        .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
        .ok_or_else(|| DbError("pg_control is too short".into()))
}

/// The system identifier of the data directory `dir` (from `global/pg_control`).
pub fn data_directory_system_identifier(dir: &Path) -> DbResult<u64> {
    let path = dir.join("global/pg_control");
    let bytes =
        fs::read(&path).map_err(|e| DbError(format!("cannot read {}: {e}", path.display())))?;
    control_system_identifier(&bytes)
}

// ---------------------------------------------------------------------------------------------
// Heartbeats.

/// Write one heartbeat row (the server's `now()`) into [`HEARTBEAT_TABLE`], creating the table
/// when missing. Returns the time written.
pub fn write_heartbeat(dsn: &str) -> DbResult<chrono::DateTime<chrono::Utc>> {
    let mut c = connect(dsn)?;
    c.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (at timestamptz NOT NULL PRIMARY KEY)"
    ))
    .map_err(|e| DbError(format!("heartbeat table: {}", describe_error(&e))))?;
    let row = c
        .query_one(
            &format!(
                "INSERT INTO {HEARTBEAT_TABLE} (at) VALUES (clock_timestamp()) \
                 RETURNING (extract(epoch FROM at) * 1000000)::int8"
            ),
            &[],
        )
        .map_err(|e| DbError(format!("writing a heartbeat: {}", describe_error(&e))))?;
    Ok(from_micros(row.get(0)))
}

/// The newest heartbeat, and the newest at or before some instant.
pub type Heartbeats = (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// The newest heartbeat, and the newest at or before `at`, in a (restored) database: `None`
/// when it has no heartbeat table.
pub fn heartbeats(
    client: &mut Client,
    at: chrono::DateTime<chrono::Utc>,
) -> DbResult<Option<Heartbeats>> {
    let exists: bool = client
        .query_one(
            &format!(
                "SELECT to_regclass({}) IS NOT NULL",
                quote_literal(HEARTBEAT_TABLE)
            ),
            &[],
        )?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client.query_one(
        &format!(
            "SELECT (extract(epoch FROM max(at)) * 1000000)::int8, \
                    (extract(epoch FROM max(at) FILTER (WHERE at <= $1::text::timestamptz)) * 1000000)::int8 \
             FROM {HEARTBEAT_TABLE}"
        ),
        &[&at.to_rfc3339()],
    )?;
    let at = |i: usize| row.get::<_, Option<i64>>(i).map(from_micros);
    Ok(Some((at(0), at(1))))
}

// ---------------------------------------------------------------------------------------------
// Replay servers.

/// Shared buffers for a replay: the whole restored cluster and an eighth more when memory
/// allows, a quarter of this machine's (or its control group's) memory at most, PostgreSQL's
/// default 128 MB at least.
fn replay_shared_buffers(data_bytes: u64) -> u64 {
    const DEFAULT: u64 = 128 << 20;
    let limit = memory_limit().map_or(DEFAULT, |m| m / 4);
    data_bytes
        .saturating_add(data_bytes / 8)
        .min(limit)
        .max(DEFAULT)
}

/// The memory this process may use: the machine's, or less if its control group says so.
fn memory_limit() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?
        * 1024;
    let group = fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    Some(group.map_or(total, |g| g.min(total)))
}

/// Where and how to replay: the restored data directory and the recovery settings.
pub struct ReplayOptions {
    pub data: PathBuf,
    /// A private directory for the socket, the server's log and its `hba_file`.
    pub work: PathBuf,
    /// The shell command PostgreSQL runs to fetch each WAL file (`%f`, `%p`).
    pub restore_command: String,
    pub target: RecoveryTarget,
    /// Throwaway replays: no fsync, no autovacuum.
    pub throwaway: bool,
    /// Size of the restored data directory, which sizes the replay's shared buffers.
    pub data_bytes: u64,
    pub superuser: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RecoveryTarget {
    /// The end of the archive.
    Latest,
    Time(chrono::DateTime<chrono::Utc>),
    Lsn(Lsn),
}

impl fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryTarget::Latest => write!(f, "the end of the archive"),
            RecoveryTarget::Time(t) => write!(f, "{}", t.to_rfc3339()),
            RecoveryTarget::Lsn(l) => write!(f, "LSN {l}"),
        }
    }
}

/// A `postgres` process replaying WAL into a restored data directory; stopped on drop.
pub struct ReplayServer {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    superuser: String,
    running: bool,
}

/// Where a replay ended.
#[derive(Serialize, Debug, Clone, Default)]
pub struct ReplayOutcome {
    /// The new timeline after promotion.
    pub timeline: u32,
    /// The last location replayed.
    pub replayed_lsn: String,
    /// The last transaction replayed, by its commit time.
    pub last_commit: Option<chrono::DateTime<chrono::Utc>>,
    /// PostgreSQL's own words on where it stopped.
    pub stop: Option<String>,
    pub seconds: f64,
}

impl ReplayServer {
    /// Start `postgres` on `opts.data` (which must hold a restored base backup), as the scratch
    /// account when this process is root.
    pub fn start(tools: &PgTools, opts: &ReplayOptions) -> DbResult<ReplayServer> {
        let postgres = tools.program("postgres")?;
        let run_as = scratch_user()?;
        let socket = opts.work.join("socket");
        let log = opts.work.join("replay.log");
        let hba = opts.work.join("pg_hba.conf");
        let conf = opts.work.join("postgresql.conf");
        let io = |what: &str, e: io::Error| DbError(format!("{what}: {e}"));
        fs::create_dir_all(&socket).map_err(|e| io("cannot create the socket directory", e))?;
        fs::write(&hba, "local all all trust\n").map_err(|e| io("cannot write pg_hba.conf", e))?;
        fs::write(opts.data.join("recovery.signal"), b"")
            .map_err(|e| io("cannot write recovery.signal", e))?;
        fs::create_dir_all(opts.data.join("pg_wal/archive_status"))
            .map_err(|e| io("cannot create pg_wal", e))?;
        let own_conf = opts.data.join("postgresql.conf");
        if !own_conf.exists() {
            // Debian keeps the configuration outside the data directory.
            fs::write(&conf, "").map_err(|e| io("cannot write postgresql.conf", e))?;
        }
        fs::File::create(&log).map_err(|e| io("cannot create the replay log", e))?;
        if let Some(u) = &run_as {
            chown_tree(&opts.data, u)?;
            for p in [&opts.work, &socket, &hba, &log, &conf] {
                if p.exists() {
                    std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).map_err(|e| {
                        DbError(format!("cannot give {} to {}: {e}", p.display(), u.name))
                    })?;
                }
            }
        }
        let mut settings: Vec<(String, String)> = vec![
            ("data_directory".into(), opts.data.display().to_string()),
            ("hba_file".into(), hba.display().to_string()),
            ("listen_addresses".into(), String::new()),
            (
                "unix_socket_directories".into(),
                socket.display().to_string(),
            ),
            ("port".into(), "5432".into()),
            ("archive_mode".into(), "off".into()),
            ("hot_standby".into(), "off".into()),
            ("lc_messages".into(), "C".into()),
            ("logging_collector".into(), "off".into()),
            ("log_destination".into(), "stderr".into()),
            ("restore_command".into(), opts.restore_command.clone()),
            ("recovery_target_timeline".into(), "latest".into()),
        ];
        if !own_conf.exists() {
            settings.push(("config_file".into(), conf.display().to_string()));
        }
        match &opts.target {
            RecoveryTarget::Latest => {}
            RecoveryTarget::Time(t) => {
                settings.push((
                    "recovery_target_time".into(),
                    t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
                ));
                settings.push(("recovery_target_action".into(), "promote".into()));
            }
            RecoveryTarget::Lsn(l) => {
                settings.push(("recovery_target_lsn".into(), l.to_string()));
                settings.push(("recovery_target_action".into(), "promote".into()));
            }
        }
        // Redo is one process: every page it evicts is a write it waits for, and every
        // restartpoint on the way flushes what the end-of-recovery checkpoint flushes anyway.
        settings.extend([
            (
                "shared_buffers".into(),
                format!("{}MB", replay_shared_buffers(opts.data_bytes) >> 20),
            ),
            ("max_wal_size".into(), "64GB".into()),
            ("checkpoint_timeout".into(), "1d".into()),
        ]);
        if opts.throwaway {
            for (k, v) in [("fsync", "off"), ("autovacuum", "off")] {
                settings.push((k.into(), v.into()));
            }
        }
        let logf = fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .map_err(|e| io("cannot open the replay log", e))?;
        let mut cmd = server_command(&postgres, &opts.work, run_as.as_ref(), PG_REDIRECTING);
        cmd.arg("-D").arg(&opts.data);
        for (k, v) in &settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        cmd.stdout(Stdio::from(logf.try_clone().map_err(|e| io("log", e))?))
            .stderr(Stdio::from(logf));
        let child = cmd
            .spawn()
            .map_err(|e| DbError(format!("cannot run {}: {e}", postgres.display())))?;
        Ok(ReplayServer {
            child,
            socket,
            log,
            superuser: opts.superuser.clone(),
            running: true,
        })
    }

    pub fn dsn(&self, db: &str) -> String {
        format!(
            "host={} port=5432 user={} dbname={db}",
            self.socket.display(),
            self.superuser
        )
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last lines of the server's log, for messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        tail_lines(&text, lines)
    }

    /// Wait until recovery has ended and the server accepts connections (promoted), or it has
    /// exited (recovery failed), or `limit` has passed.
    pub fn wait_promoted(&mut self, db: &str, limit: Duration) -> DbResult<ReplayOutcome> {
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| DbError(format!("waiting for postgres: {e}")))?
            {
                self.running = false;
                return Err(DbError(format!(
                    "recovery failed: the server exited ({status}): {}",
                    self.recovery_error()
                )));
            }
            if let Ok(mut c) = connect(&self.dsn(db))
                && let Ok(row) = c.query_one("SELECT pg_is_in_recovery()", &[])
                && !row.get::<_, bool>(0)
            {
                // The timeline of the WAL written now (the last checkpoint may predate promotion).
                let r = c.query_one(
                    "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8,
                            coalesce(pg_last_wal_replay_lsn(), pg_current_wal_lsn())::text,
                            (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::int8",
                    &[],
                )?;
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                let said = |what: &str| {
                    log.lines()
                        .rfind(|l| l.contains(what))
                        .map(|l| l.split_once(":  ").map_or(l, |(_, m)| m).trim().to_string())
                };
                let stop = said("recovery stopping").or_else(|| said("last completed transaction"));
                return Ok(ReplayOutcome {
                    timeline: r.get::<_, i64>(0) as u32,
                    replayed_lsn: r.get(1),
                    last_commit: r.get::<_, Option<i64>>(2).map(from_micros),
                    stop,
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            if started.elapsed() > limit {
                return Err(DbError(format!(
                    "recovery did not finish within {}s: {}",
                    limit.as_secs(),
                    self.log_tail(3)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log's FATAL or PANIC lines (else its tail): why recovery failed.
    fn recovery_error(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let fatal: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("FATAL") || l.contains("PANIC"))
            .collect();
        if fatal.is_empty() {
            tail_lines(&text, 3)
        } else {
            tail_lines(&fatal.join("\n"), 2)
        }
    }

    /// Stop with a fast shutdown (a shutdown checkpoint: the directory is left clean).
    pub fn stop(&mut self) -> DbResult<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        // SAFETY: kill sends a signal to our own child, by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(DbError(format!(
                        "the server did not shut down cleanly ({status}): {}",
                        self.log_tail(2)
                    )))
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(DbError("the server did not shut down within 120s".into()))
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            // SAFETY: as in stop: an immediate shutdown of our own child.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGQUIT);
            }
            let _ = self.child.wait();
        }
    }
}

/// Give a whole directory tree to `user`.
pub fn chown_tree(root: &Path, user: &RunAs) -> DbResult<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(user.uid), Some(user.gid))
            .map_err(|e| DbError(format!("cannot give {} to {}: {e}", p.display(), user.name)))?;
        let meta = fs::symlink_metadata(&p)
            .map_err(|e| DbError(format!("cannot read {}: {e}", p.display())))?;
        if meta.is_dir() {
            for e in fs::read_dir(&p)
                .map_err(|e| DbError(format!("cannot list {}: {e}", p.display())))?
            {
                stack.push(
                    e.map_err(|e| DbError(format!("cannot list {}: {e}", p.display())))?
                        .path(),
                );
            }
        }
    }
    Ok(())
}

/// Whether `pg_verifybackup` is here; if so, check the restored directory against its manifest
/// (every file's size and checksum; WAL is checked by replay, not here).
pub fn verify_backup(tools: &PgTools, data: &Path) -> DbResult<Option<Result<String, String>>> {
    let Ok(prog) = tools.program("pg_verifybackup") else {
        return Ok(None);
    };
    let out = crate::child::command(&prog)
        .arg("--no-parse-wal")
        .arg("--quiet")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DbError(format!("cannot run {}: {e}", prog.display())))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Some(if out.status.success() {
        Ok("pg_verifybackup: every file matches the backup manifest".into())
    } else {
        Err(format!("pg_verifybackup: {}", tail_lines(&text, 3)))
    }))
}

/// `redact`, re-exported for messages about physical datasets.
pub fn describe_dsn(dsn: &str) -> String {
    redact(dsn)
}

/// Settings of a running cluster by name, for messages about archiving.
pub fn settings(dsn: &str, names: &[&str]) -> DbResult<BTreeMap<String, String>> {
    let mut c = connect(dsn)?;
    let mut out = BTreeMap::new();
    for n in names {
        if let Some(v) = setting(&mut c, n)? {
            out.insert(n.to_string(), v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_and_segment_names_round_trip() {
        let l: Lsn = "1/A3000028".parse().unwrap();
        assert_eq!(l.0, 0x1_A300_0028);
        assert_eq!(l.to_string(), "1/A3000028");
        assert!("nope".parse::<Lsn>().is_err());
        let s = Segments { size: 16 << 20 };
        let seg = s.of(l);
        assert_eq!(s.name(1, seg), "0000000100000001000000A3");
        assert_eq!(s.parse("0000000100000001000000A3"), Some((1, seg)));
        assert_eq!(s.parse("0000000200000001000000A3.partial"), Some((2, seg)));
        assert_eq!(s.parse("000000010000000100000100"), None, "past 0xFF");
        let big = Segments { size: 64 << 20 };
        assert_eq!(big.name(1, big.of(l)), "000000010000000100000028");
    }

    #[test]
    fn lineages_read_each_segment_from_the_right_timeline() {
        let s = Segments { size: 16 << 20 };
        let h = parse_history(
            "1\t0/5000000\tbefore 2026-01-01\n\n2\t0/9800000\tno recovery target specified\n",
        )
        .unwrap();
        assert_eq!(
            h,
            vec![
                Branch {
                    parent: 1,
                    switch: Lsn(0x500_0000)
                },
                Branch {
                    parent: 2,
                    switch: Lsn(0x980_0000)
                }
            ]
        );
        let l = Lineage::new(3, h);
        assert_eq!(l.timeline_of(4, s), 1);
        assert_eq!(
            l.timeline_of(5, s),
            2,
            "a switch point's segment comes from the new timeline"
        );
        assert_eq!(l.timeline_of(8, s), 2);
        assert_eq!(l.timeline_of(9, s), 3);
        assert_eq!(l.timeline_of(100, s), 3);
        assert!(l.includes(1) && l.includes(3) && !l.includes(4));
        assert_eq!(l.end_of(2), Some(Lsn(0x980_0000)));
        assert_eq!(l.end_of(3), None);
        assert!(parse_history("x y").is_err());
    }

    #[test]
    fn manifests_give_the_wal_range() {
        let m = br#"{"PostgreSQL-Backup-Manifest-Version": 1, "Files": [],
            "WAL-Ranges": [{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }],
            "Manifest-Checksum": "x"}"#;
        let r = manifest_wal_range(m).unwrap();
        assert_eq!(
            (r.timeline, r.start, r.end),
            (1, Lsn(0x200_0028), Lsn(0x200_0100))
        );
        assert!(manifest_wal_range(b"{}").is_err());
    }
}
