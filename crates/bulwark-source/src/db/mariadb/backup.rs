//! A consistent MariaDB/MySQL backup: `mariadb-dump --single-transaction` and a fingerprint
//! taken in the very same snapshot.
//!
//! # The protocol
//!
//! MariaDB cannot export a snapshot to another session (PostgreSQL's `pg_export_snapshot`), so
//! the dump's transaction and bulwark's own must be made to see the same committed state:
//!
//! 1. A *lock* session takes `FLUSH TABLES WITH READ LOCK` (bounded by `lock_wait_timeout`,
//!    [`LOCK_WAIT_SECS`]). From now on no transaction can commit: the committed state is frozen.
//! 2. A *snapshot* session runs `START TRANSACTION WITH CONSISTENT SNAPSHOT` at REPEATABLE READ:
//!    its read view is the frozen state. The binary log position is read here.
//! 3. `mariadb-dump --single-transaction` is started. It connects not to the server but to a
//!    relay on a Unix socket in a private directory, which passes every byte through to the
//!    server unchanged and parses only packet headers. The relay sees the dump's `SET SESSION
//!    TRANSACTION ISOLATION LEVEL REPEATABLE READ`, then its `START TRANSACTION WITH CONSISTENT
//!    SNAPSHOT`, and then the server's reply to that statement. The server replies only after
//!    the statement has opened the read view, so an OK reply proves that the dump's snapshot
//!    exists — and, the lock still being held, that it is the same frozen state as ours. (The
//!    dump client waits for each reply before sending its next command, so the first server
//!    packet after that query is its reply.) A server error, a dump that exits, or no reply
//!    within a minute fails the backup.
//! 4. `UNLOCK TABLES`: writes resume. Writers were blocked only between steps 1 and 4 — the
//!    start of one client program, in practice tens of milliseconds; [`MariadbFacts::read_lock_ms`]
//!    records it.
//! 5. The facts and the fingerprint (every table's `COUNT(*)` and checksum) are read in the
//!    snapshot session, the dump streams from its own snapshot, and [`DUMP_TRAILER`] is written
//!    once it exited successfully.
//!
//! Both snapshots were opened while no commit could happen, so both see exactly the commits made
//! before step 1, whatever is written afterwards: the fingerprint describes the dump's rows.
//!
//! **Tables not in InnoDB** (MyISAM, Aria, MEMORY, …) have no snapshots: the dump reads whatever
//! they hold when it reaches them. When the database has any, step 4 is deferred until the dump
//! has finished, so they cannot change in between (what `--lock-all-tables` would do), and
//! [`MariadbFacts::read_lock_held_for_dump`] says so: writers wait for the whole dump.
//!
//! **Not covered:** DDL after step 4 (`ALTER TABLE` during the dump) is not blocked: the dump
//! fails with "table definition has changed" or misses the change, and a restore test then
//! reports the difference. The connection does not use TLS, and neither does the relayed dump.
//!
//! **Dump options.** `--routines --triggers --events` for the code, `--hex-blob` so binary data
//! is pure ASCII, `--default-character-set=utf8mb4` so no text is converted lossily,
//! `--order-by-primary` so rows come in key order (yesterday's dump shares most chunks with
//! today's), `--tz-utc` so `TIMESTAMP`s restore to the same instant anywhere. No `--databases`:
//! the dump creates no database and names none, so it restores into any name. No
//! `--master-data`/`--gtid`: a dump must not carry `CHANGE MASTER` or set `gtid_slave_pos` on the
//! target; the position is recorded in the facts instead. Privileges needed: `SELECT`, `SHOW
//! VIEW`, `TRIGGER`, `EVENT`, `LOCK TABLES` and, for the global read lock, `RELOAD`.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::mysql::Conn;
use ::mysql::prelude::Queryable;

use super::{
    DUMP, MariadbDsn, MariadbFacts, MariadbTools, client_command, collations, connect,
    database_charset, definers, describe_error, error_code, fingerprint, list_tables, objects,
    private_dir, server_version,
};
use crate::db::dump::{ChunkSender, DUMP_TRAILER, DumpReader, collect};
use crate::db::{DbError, DbResult, tail_lines};

/// How long `FLUSH TABLES WITH READ LOCK` may wait for running statements before the backup
/// gives up (while it waits, new writes wait too).
pub const LOCK_WAIT_SECS: u32 = 10;
/// How long the dump may take to open its snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(60);

pub struct MariadbBackupOptions {
    /// `mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?socket=PATH]`.
    pub dsn: String,
    /// Tables up to this size (`DATA_LENGTH`) get a content checksum.
    pub checksum_max_bytes: u64,
    pub tools: MariadbTools,
}

/// A dump under way: its facts (taken in the dump's snapshot) and the dump stream.
pub struct MariadbDump {
    pub facts: MariadbFacts,
    pub dump: DumpReader,
}

/// Start a consistent dump (the protocol is in the module docs) and return its facts and stream.
pub fn start_dump(opts: &MariadbBackupOptions) -> DbResult<MariadbDump> {
    let dsn = MariadbDsn::parse(&opts.dsn)?;
    let dump_prog = opts.tools.program(DUMP)?;
    let dump_tool_version = opts.tools.version(DUMP)?;
    let mut lock = connect(&dsn)?;
    let mut snap = connect(&dsn)?;
    let (server_version, flavor, version_num) = server_version(&mut snap)?;
    let (character_set, collation) = database_charset(&mut snap, &dsn)?;
    let db = dsn.database.clone();
    // The lock session may sit idle through a long dump: it must not time out meanwhile.
    lock.query_drop(format!(
        "SET SESSION lock_wait_timeout = {LOCK_WAIT_SECS}, SESSION wait_timeout = 31536000"
    ))?;
    let dir = private_dir("bulwark-mariadb-dump-")?;

    // 1. Freeze commits. Any error from here on drops `lock`, which releases the lock.
    take_read_lock(&mut lock, &dsn)?;
    let locked = Instant::now();
    // 2. Our snapshot, and what must be read while commits are frozen.
    snap.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")?;
    snap.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")?;
    let binlog_position = binlog_position(&mut snap, &flavor)?;
    let tables = list_tables(&mut snap, &db)?;
    let non_transactional_tables: Vec<String> = tables
        .iter()
        .filter(|t| !t.transactional())
        .map(|t| t.name.clone())
        .collect();
    // 3. The dump, through the relay that confirms its snapshot.
    let relay = SnapshotRelay::start(dir.path(), &dsn)?;
    let via_relay = MariadbDsn::unix(
        &relay.socket,
        &dsn.user,
        dsn.password.as_deref(),
        &dsn.database,
    );
    let defaults = via_relay.write_defaults_file(dir.path())?;
    let mut cmd = client_command(&dump_prog, &defaults);
    cmd.args([
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--order-by-primary",
        "--tz-utc",
        "--skip-dump-date",
        "--max-allowed-packet=1G",
        "--skip-compress",
    ]);
    // The relay reads the dump's commands: no TLS on that (local) hop. MySQL's mysqldump spells
    // it differently and would otherwise write GTID_PURGED, which fails on GTID targets.
    if dump_tool_version.contains("MariaDB") {
        cmd.arg("--skip-ssl");
    } else {
        cmd.args(["--ssl-mode=DISABLED", "--set-gtid-purged=OFF"]);
    }
    let mut child = cmd
        .arg(&db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DbError(format!("cannot run {}: {e}", dump_prog.display())))?;
    let stderr = collect(child.stderr.take().expect("piped"));
    if let Err(why) = relay.wait_for_snapshot(&mut child) {
        let _ = child.kill();
        let _ = child.wait();
        let said = stderr.join().unwrap_or_default();
        let said = tail_lines(&said, 2);
        return Err(DbError(if said.is_empty() {
            format!("the dump's snapshot could not be confirmed: {why}")
        } else {
            format!("the dump's snapshot could not be confirmed: {why}: {said}")
        }));
    }
    // 4. Writes resume, unless tables without snapshots must stay still for the dump.
    let hold_for_dump = !non_transactional_tables.is_empty();
    if !hold_for_dump {
        lock.query_drop("UNLOCK TABLES")?;
    }
    let read_lock_ms = locked.elapsed().as_millis() as u64;
    if hold_for_dump {
        tracing::warn!(
            "{db} has tables without snapshots ({}): writes wait for the global read lock until the dump ends",
            non_transactional_tables.join(", ")
        );
    }
    // 5. Facts and fingerprint in our snapshot.
    let mut engines = std::collections::BTreeMap::new();
    for t in &tables {
        *engines.entry(t.engine.clone()).or_insert(0u64) += 1;
    }
    let limit = opts.checksum_max_bytes;
    let tables_fp = fingerprint(&mut snap, &db, &tables, |t| t.size <= limit)?;
    let lower_case_table_names: Option<u32> =
        snap.query_first("SELECT @@lower_case_table_names")?;
    let facts = MariadbFacts {
        database: db.clone(),
        server_version,
        flavor,
        version_num,
        character_set,
        collation,
        collations: collations(&mut snap, &db)?,
        lower_case_table_names: lower_case_table_names.unwrap_or(0),
        engines,
        non_transactional_tables,
        read_lock_ms,
        read_lock_held_for_dump: hold_for_dump,
        binlog_position,
        definers: definers(&mut snap, &db)?,
        objects: objects(&mut snap, &db)?,
        tables: tables_fp,
        checksum_max_bytes: limit,
        dump_file: format!("{}.sql", crate::db::postgres::file_safe(&db)),
        dump_format:
            "mariadb-dump SQL (--single-transaction --routines --triggers --events --hex-blob \
                      --order-by-primary), without CREATE DATABASE"
                .into(),
        dump_tool_version,
    };
    snap.query_drop("COMMIT")?;
    drop(snap);
    let stdout = child.stdout.take().expect("piped");
    let job = DumpJob {
        child,
        stdout,
        stderr,
        relay,
        held_lock: hold_for_dump.then_some(lock),
        _dir: dir,
    };
    let dump = DumpReader::spawn("mariadb-dump", move |out| job.produce(out));
    Ok(MariadbDump { facts, dump })
}

fn take_read_lock(lock: &mut Conn, dsn: &MariadbDsn) -> DbResult<()> {
    lock.query_drop("FLUSH TABLES WITH READ LOCK")
        .map_err(|e| match error_code(&e) {
            Some(1227) | Some(1045) => DbError(format!(
                "{} may not take the global read lock that makes the dump and its fingerprint consistent: \
                 grant it RELOAD ({})",
                dsn.user,
                describe_error(&e)
            )),
            Some(1205) => DbError(format!(
                "could not take the global read lock on {dsn} within {LOCK_WAIT_SECS} s: a long-running \
                 statement or DDL keeps tables open; retry when it has finished ({})",
                describe_error(&e)
            )),
            _ => DbError(format!(
                "FLUSH TABLES WITH READ LOCK on {dsn}: {}",
                describe_error(&e)
            )),
        })
}

/// The binary log position of the snapshot, when the server writes a binary log.
fn binlog_position(conn: &mut Conn, flavor: &str) -> DbResult<Option<String>> {
    let log_bin: Option<u64> = conn.query_first("SELECT @@log_bin")?;
    if log_bin != Some(1) {
        return Ok(None);
    }
    let sql = if flavor == "MariaDB" {
        "SELECT @@gtid_binlog_pos"
    } else {
        "SELECT @@global.gtid_executed"
    };
    let pos: Option<String> = conn.query_first(sql)?;
    Ok(pos.filter(|p| !p.is_empty()))
}

struct DumpJob {
    child: Child,
    stdout: ChildStdout,
    stderr: JoinHandle<String>,
    relay: SnapshotRelay,
    /// The lock session, when the lock is held until the dump has finished.
    held_lock: Option<Conn>,
    /// Holds the option file and the relay's socket.
    _dir: tempfile::TempDir,
}

impl DumpJob {
    fn produce(mut self, out: &mut ChunkSender) -> Result<(), String> {
        let copied = io::copy(&mut self.stdout, out);
        if copied.is_err() {
            let _ = self.child.kill();
        }
        let status = self
            .child
            .wait()
            .map_err(|e| format!("waiting for mariadb-dump: {e}"))?;
        let errors = self.stderr.join().unwrap_or_default();
        let relayed = self.relay.finish();
        let unlocked = match self.held_lock.take() {
            Some(mut lock) => lock.query_drop("UNLOCK TABLES").map_err(|e| {
                format!(
                    "the global read lock was lost during the dump ({}): tables without snapshots may have \
                     changed under it",
                    describe_error(&e)
                )
            }),
            None => Ok(()),
        };
        copied.map_err(|e| format!("mariadb-dump: {e}"))?;
        if !status.success() {
            return Err(format!(
                "mariadb-dump failed ({status}): {}",
                tail_lines(&errors, 3)
            ));
        }
        relayed.map_err(|e| format!("relaying the dump's connection: {e}"))?;
        unlocked?;
        out.write_all(DUMP_TRAILER.as_bytes())
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// The relay that confirms the dump's snapshot.

enum RelayEvent {
    /// The server acknowledged the dump's `START TRANSACTION WITH CONSISTENT SNAPSHOT`.
    SnapshotOpen,
    Failed(String),
}

/// Where the dump's conversation is, as far as the snapshot is concerned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Before the dump asked for REPEATABLE READ.
    Connected,
    /// It asked for REPEATABLE READ; its snapshot has not been asked for.
    RepeatableRead,
    /// `START TRANSACTION WITH CONSISTENT SNAPSHOT` sent: the next server packet is its reply.
    AwaitingReply,
    /// Decided: nothing more is parsed.
    Done,
}

struct SnapshotRelay {
    socket: PathBuf,
    events: Receiver<RelayEvent>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl SnapshotRelay {
    /// Listen on `dir/dump.sock` and relay the first connection to the server of `upstream`.
    fn start(dir: &Path, upstream: &MariadbDsn) -> DbResult<SnapshotRelay> {
        let socket = dir.join("dump.sock");
        let listener = UnixListener::bind(&socket)
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .map_err(|e| DbError(format!("cannot listen on {}: {e}", socket.display())))?;
        let (tx, events) = channel();
        let upstream = upstream.clone();
        let thread = std::thread::Builder::new()
            .name("mariadb-relay".into())
            .spawn(move || serve(listener, &upstream, tx))
            .map_err(|e| DbError(format!("cannot start the dump relay: {e}")))?;
        Ok(SnapshotRelay {
            socket,
            events,
            thread: Some(thread),
        })
    }

    /// Wait until the server has acknowledged the dump's snapshot; the error says why not.
    fn wait_for_snapshot(&self, child: &mut Child) -> Result<(), String> {
        let deadline = Instant::now() + SNAPSHOT_WAIT;
        loop {
            match self.events.recv_timeout(Duration::from_millis(10)) {
                Ok(RelayEvent::SnapshotOpen) => return Ok(()),
                Ok(RelayEvent::Failed(why)) => return Err(why),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        // A last event may have raced the exit.
                        if let Ok(RelayEvent::Failed(why)) = self.events.try_recv() {
                            return Err(why);
                        }
                        return Err(format!("mariadb-dump exited ({status}) first"));
                    }
                    if Instant::now() > deadline {
                        return Err(format!(
                            "no reply to its START TRANSACTION within {} s",
                            SNAPSHOT_WAIT.as_secs()
                        ));
                    }
                }
            }
        }
    }

    /// Wait for the relay to end (the dump closed its connection).
    fn finish(mut self) -> Result<(), String> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("the relay thread panicked".into()),
            None => Ok(()),
        }
    }
}

enum Upstream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Upstream {
    fn connect(dsn: &MariadbDsn) -> io::Result<Upstream> {
        if let Some(s) = &dsn.socket {
            return UnixStream::connect(s).map(Upstream::Unix);
        }
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in (dsn.host.as_str(), dsn.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(30)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(Upstream::Tcp(s));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_clone(&self) -> io::Result<Upstream> {
        Ok(match self {
            Upstream::Tcp(s) => Upstream::Tcp(s.try_clone()?),
            Upstream::Unix(s) => Upstream::Unix(s.try_clone()?),
        })
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Upstream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Upstream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

impl Read for Upstream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Upstream::Tcp(s) => s.read(buf),
            Upstream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Upstream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Upstream::Tcp(s) => s.write(buf),
            Upstream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn serve(
    listener: UnixListener,
    upstream: &MariadbDsn,
    tx: Sender<RelayEvent>,
) -> Result<(), String> {
    let fail = |tx: &Sender<RelayEvent>, why: String| {
        let _ = tx.send(RelayEvent::Failed(why.clone()));
        Err(why)
    };
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    let client = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return fail(&tx, "mariadb-dump never connected".into());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return fail(&tx, format!("accepting the dump's connection: {e}")),
        }
    };
    drop(listener);
    let server = match Upstream::connect(upstream) {
        Ok(s) => s,
        Err(e) => return fail(&tx, format!("cannot connect to {upstream}: {e}")),
    };
    let io_err = |e: io::Error| e.to_string();
    client.set_nonblocking(false).map_err(io_err)?;
    let phase = Arc::new(Mutex::new(Phase::Connected));
    let (client_in, server_out) = (client.try_clone().map_err(io_err)?, server);
    let (server_in, client_out) = (server_out.try_clone().map_err(io_err)?, client);
    let up = {
        let (phase, tx) = (phase.clone(), tx.clone());
        std::thread::Builder::new()
            .name("mariadb-relay-up".into())
            .spawn(move || relay_commands(client_in, server_out, &phase, &tx))
            .map_err(|e| e.to_string())?
    };
    let down = relay_replies(server_in, client_out, &phase, &tx);
    let up = up
        .join()
        .unwrap_or_else(|_| Err("the relay panicked".into()));
    if *phase.lock().unwrap_or_else(|p| p.into_inner()) != Phase::Done {
        let _ = tx.send(RelayEvent::Failed(
            "the dump's connection ended before its snapshot was acknowledged".into(),
        ));
    }
    down.and(up)
}

/// Client to server: forward everything; until decided, watch the commands (packets with
/// sequence number 0 and command byte 0x03, COM_QUERY) for the isolation level and the snapshot.
fn relay_commands(
    mut from: UnixStream,
    mut to: Upstream,
    phase: &Mutex<Phase>,
    tx: &Sender<RelayEvent>,
) -> Result<(), String> {
    let mut scanner = PacketScanner::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading from mariadb-dump: {e}")),
        };
        let mut p = phase.lock().unwrap_or_else(|p| p.into_inner());
        if *p != Phase::Done {
            scanner.feed(&buf[..n], |seq, payload| {
                if seq != 0 || payload.first() != Some(&0x03) {
                    return;
                }
                let text = String::from_utf8_lossy(&payload[1..]).to_ascii_uppercase();
                let text = text.trim_start();
                if text.starts_with("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ") {
                    if *p == Phase::Connected {
                        *p = Phase::RepeatableRead;
                    }
                } else if text.starts_with("START TRANSACTION") && *p != Phase::Done {
                    if *p == Phase::RepeatableRead && text.contains("WITH CONSISTENT SNAPSHOT") {
                        *p = Phase::AwaitingReply;
                    } else {
                        *p = Phase::Done;
                        let _ = tx.send(RelayEvent::Failed(format!(
                            "the dump started its transaction without a consistent snapshot at REPEATABLE READ \
                             ({})",
                            text.chars().take(80).collect::<String>()
                        )));
                    }
                }
            });
        }
        // The phase is set before the query reaches the server, hence before any reply exists.
        drop(p);
        to.write_all(&buf[..n])
            .map_err(|e| format!("writing to the server: {e}"))?;
    }
    to.shutdown_write();
    Ok(())
}

/// Server to client: forward everything; the first packet read after the snapshot query went
/// out is its reply: OK (0x00) or ERR (0xFF).
fn relay_replies(
    mut from: Upstream,
    mut to: UnixStream,
    phase: &Mutex<Phase>,
    tx: &Sender<RelayEvent>,
) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut reply: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading from the server: {e}")),
        };
        {
            let mut p = phase.lock().unwrap_or_else(|p| p.into_inner());
            if *p == Phase::AwaitingReply {
                reply.extend_from_slice(&buf[..n.min(16)]);
                // OK: header and 0x00; ERR: header, 0xff and a two-byte error code.
                let event = match reply.get(4) {
                    Some(0x00) => Some(RelayEvent::SnapshotOpen),
                    Some(0xff) if reply.len() >= 7 => Some(RelayEvent::Failed(format!(
                        "the server refused the dump's START TRANSACTION (error {})",
                        u16::from_le_bytes([reply[5], reply[6]])
                    ))),
                    Some(0xff) | None => None,
                    Some(other) => Some(RelayEvent::Failed(format!(
                        "unexpected reply 0x{other:02x} to the dump's START TRANSACTION"
                    ))),
                };
                if let Some(e) = event {
                    *p = Phase::Done;
                    let _ = tx.send(e);
                }
            }
        }
        to.write_all(&buf[..n])
            .map_err(|e| format!("writing to mariadb-dump: {e}"))?;
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Splits a stream of client/server protocol packets (3-byte little-endian length, 1-byte
/// sequence number, payload) and reports each packet's sequence number and payload prefix.
#[derive(Default)]
struct PacketScanner {
    header: Vec<u8>,
    remaining: usize,
    prefix: Vec<u8>,
    want: usize,
    seq: u8,
    reported: bool,
}

/// Enough of a payload to recognise the statements the relay looks for.
const PREFIX: usize = 128;

impl PacketScanner {
    fn feed(&mut self, mut data: &[u8], mut on_packet: impl FnMut(u8, &[u8])) {
        while !data.is_empty() {
            if self.header.len() < 4 {
                let take = (4 - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.header.len() < 4 {
                    return;
                }
                self.remaining =
                    u32::from_le_bytes([self.header[0], self.header[1], self.header[2], 0])
                        as usize;
                self.seq = self.header[3];
                self.want = self.remaining.min(PREFIX);
                self.prefix.clear();
                self.reported = false;
            }
            let take = self.remaining.min(data.len());
            if self.prefix.len() < self.want {
                let more = (self.want - self.prefix.len()).min(take);
                self.prefix.extend_from_slice(&data[..more]);
            }
            data = &data[take..];
            self.remaining -= take;
            if !self.reported && self.prefix.len() == self.want {
                self.reported = true;
                on_packet(self.seq, &self.prefix);
            }
            if self.remaining == 0 {
                self.header.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len() as u32;
        let mut p = n.to_le_bytes()[..3].to_vec();
        p.push(seq);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn scanner_finds_packets_across_any_split() {
        let mut stream = packet(1, &[0x85; 40]);
        stream.extend(packet(0, b"\x03SELECT 1"));
        stream.extend(packet(0, &[0u8; 0]));
        let mut big = vec![0x03];
        big.extend(vec![b'x'; 70_000]);
        stream.extend(packet(0, &big));
        stream.extend(packet(0, b"\x03START TRANSACTION"));
        for split in [1, 3, 4, 5, 7, 100, 65536, stream.len()] {
            let mut s = PacketScanner::default();
            let mut seen = Vec::new();
            for chunk in stream.chunks(split) {
                s.feed(chunk, |seq, p| {
                    seen.push((seq, p.len(), p.first().copied()))
                });
            }
            assert_eq!(
                seen,
                vec![
                    (1, 40, Some(0x85)),
                    (0, 9, Some(0x03)),
                    (0, 0, None),
                    (0, PREFIX, Some(0x03)),
                    (0, 18, Some(0x03)),
                ],
                "split {split}"
            );
        }
    }
}
